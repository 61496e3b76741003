/// How a flat buffer of `total` elements is cut for a ring of `ranks`: n near-equal contiguous chunks (chunk c is
/// elements ⌊total·c/n⌋ ..< ⌊total·(c+1)/n⌋, so sizes differ by at most one and may be zero), each cut into
/// sub-chunks of at most `maximumElements`, with an extra cut at `boundary` (where the caller's main buffer ends
/// and its trailer begins) so that no sub-chunk spans two memory regions.
///
/// Every rank computes the same layout from the same numbers, and a receiver checks each frame's offset and count
/// against it (a buffer of another length is a `CollectiveError.protocolMismatch`).
struct RingLayout: Equatable {
    /// Per chunk, its sub-chunks' element ranges in the logical buffer, in order.
    let chunks: [[Range<Int>]]

    /// The layout of `total` elements over `ranks` chunks.
    init(total: Int, ranks: Int, maximumElements: Int, boundary: Int? = nil) {
        precondition(total >= 0 && ranks >= 1 && maximumElements >= 1, "invalid ring layout")
        var chunks: [[Range<Int>]] = []
        chunks.reserveCapacity(ranks)
        for c in 0..<ranks {
            let start = total * c / ranks, end = total * (c + 1) / ranks
            var cuts = [start]
            if let boundary, boundary > start, boundary < end { cuts.append(boundary) }
            cuts.append(end)
            var pieces: [Range<Int>] = []
            for (from, to) in zip(cuts, cuts.dropFirst()) {
                var position = from
                while position < to {
                    let next = min(position + maximumElements, to)
                    pieces.append(position..<next)
                    position = next
                }
            }
            chunks.append(pieces)
        }
        self.chunks = chunks
    }
}

/// A caller's buffer plus an optional trailer, seen as one logical fp32 buffer (main elements first).
struct Segments {
    let main: UnsafeMutablePointer<Float>?
    let mainCount: Int
    let trailer: UnsafeMutablePointer<Float>?
    let trailerCount: Int

    var total: Int { mainCount + trailerCount }

    /// The address of logical element `offset` (a sub-chunk never spans the boundary, so its elements follow).
    func pointer(at offset: Int) -> UnsafeMutablePointer<Float> {
        offset < mainCount ? main! + offset : trailer! + (offset - mainCount)
    }
}

/// The element-wise kernels of the ring, on payloads that may sit at any byte address in libzmq's buffers.
enum RingKernels {
    /// `target[i] += source[i]` (times `scale` when given) for `count` elements; `source` may be unaligned.
    static func add(
        into target: UnsafeMutablePointer<Float>, from source: UnsafeRawPointer, count: Int, scale: Float?
    ) {
        let t = UnsafeMutableRawPointer(target)
        var i = 0
        if let scale {
            while i + 16 <= count {
                let a = t.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<Float>.self)
                let b = source.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<Float>.self)
                t.storeBytes(of: (a + b) * scale, toByteOffset: 4 * i, as: SIMD16<Float>.self)
                i += 16
            }
            while i < count {
                target[i] = (target[i] + source.loadUnaligned(fromByteOffset: 4 * i, as: Float.self)) * scale
                i += 1
            }
        } else {
            while i + 16 <= count {
                let a = t.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<Float>.self)
                let b = source.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<Float>.self)
                t.storeBytes(of: a + b, toByteOffset: 4 * i, as: SIMD16<Float>.self)
                i += 16
            }
            while i < count {
                target[i] += source.loadUnaligned(fromByteOffset: 4 * i, as: Float.self)
                i += 1
            }
        }
    }

    /// `target[i] *= scale` for `count` elements.
    static func scale(_ target: UnsafeMutablePointer<Float>, count: Int, by scale: Float) {
        for i in 0..<count { target[i] *= scale }
    }
}
