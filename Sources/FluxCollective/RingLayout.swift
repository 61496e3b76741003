import FluxProtocol

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

/// A caller's buffer plus an optional trailer, seen as one logical buffer of `kind` elements (main elements first).
/// The kind travels in every frame, and a receiver refuses frames of the other kind.
struct Segments {
    let kind: RingFrameHeader.ElementKind
    let main: UnsafeMutableRawPointer?
    let mainCount: Int
    let trailer: UnsafeMutableRawPointer?
    let trailerCount: Int

    /// An fp32 buffer followed by an fp32 trailer (either may be empty).
    init(_ main: UnsafeMutableBufferPointer<Float>, trailer: UnsafeMutableBufferPointer<Float>) {
        kind = .float32
        self.main = main.baseAddress.map(UnsafeMutableRawPointer.init)
        mainCount = main.count
        self.trailer = trailer.baseAddress.map(UnsafeMutableRawPointer.init)
        trailerCount = trailer.count
    }

    /// An int64 buffer, without trailer.
    init(_ main: UnsafeMutableBufferPointer<Int64>) {
        kind = .int64
        self.main = main.baseAddress.map(UnsafeMutableRawPointer.init)
        mainCount = main.count
        trailer = nil
        trailerCount = 0
    }

    /// A buffer of `count` packed 56-bit integers (7 bytes each), without trailer.
    init(packed56 main: UnsafeMutableRawPointer?, count: Int) {
        kind = .int56
        self.main = main
        mainCount = count
        trailer = nil
        trailerCount = 0
    }

    /// No elements (a barrier).
    static var empty: Segments {
        Segments(UnsafeMutableBufferPointer(start: nil, count: 0),
                 trailer: UnsafeMutableBufferPointer(start: nil, count: 0))
    }

    var total: Int { mainCount + trailerCount }

    /// The address of logical element `offset` (a sub-chunk never spans the boundary, so its elements follow).
    func pointer(at offset: Int) -> UnsafeMutableRawPointer {
        offset < mainCount ? main! + kind.byteWidth * offset : trailer! + kind.byteWidth * (offset - mainCount)
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

    /// `target[i] = maximum(target[i], source[i])` for `count` elements; `source` may be unaligned.
    ///
    /// IEEE 754-2019 `maximum`, made exactly commutative and associative so the result does not depend on the
    /// order in which ranks combine: NaN if either is NaN (always the canonical quiet NaN, whatever the inputs'
    /// payloads), and +0 is larger than −0. (Swift's `Float.maximum` is `maxNum`: it drops a NaN, which would hide
    /// a rank's non-finite value.)
    static func maximum(into target: UnsafeMutablePointer<Float>, from source: UnsafeRawPointer, count: Int) {
        // Explicit SIMD: the NaN tests make the scalar loop branch, and then the compiler does not vectorize it.
        let t = UnsafeMutableRawPointer(target)
        var i = 0
        while i + 16 <= count {
            let a = t.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<Float>.self)
            let b = source.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<Float>.self)
            var m = a.replacing(with: b, where: b .> a)
            // −0 == +0, so the comparison alone keeps whichever came first; their sum is +0 unless both are −0.
            m.replace(with: a + b, where: (a .== 0) .& (b .== 0))
            m.replace(with: .nan, where: (a .!= a) .| (b .!= b))
            t.storeBytes(of: m, toByteOffset: 4 * i, as: SIMD16<Float>.self)
            i += 16
        }
        while i < count {
            let a = target[i], b = source.loadUnaligned(fromByteOffset: 4 * i, as: Float.self)
            target[i] = a.isNaN || b.isNaN ? .nan : a == 0 && b == 0 ? a + b : b > a ? b : a
            i += 1
        }
    }

    /// Adds `count` packed 56-bit integers of `source` to those of `target` (7 bytes each, little-endian, modulo
    /// 2^56: the low 56 bits of the int64 sum, whose sign the reader restores by sign extension).
    static func addPacked56(into target: UnsafeMutableRawPointer, from source: UnsafeRawPointer, count: Int) {
        let mask: UInt64 = 0x00FF_FFFF_FFFF_FFFF
        var i = 0
        // Groups of 8 elements (56 bytes): every load before any store, 8-byte stores whose 8th byte the next
        // element's store overwrites, and the group's last element stored as 7 bytes. So no load ever reads bytes a
        // store of another width just wrote (one element at a time, each load overlapped the previous store: a
        // store-forwarding stall per element, 16 ns an element in the profile).
        while i + 8 < count {  // element i + 8 exists, so the 8-byte load of element i + 7 stays inside the buffers
            let o = 7 * i
            var a = SIMD8<UInt64>(), b = SIMD8<UInt64>()
            for k in 0..<8 {
                a[k] = target.loadUnaligned(fromByteOffset: o + 7 * k, as: UInt64.self)
                b[k] = source.loadUnaligned(fromByteOffset: o + 7 * k, as: UInt64.self)
            }
            let sum = (a &+ b) & mask
            for k in 0..<7 { target.storeBytes(of: sum[k], toByteOffset: o + 7 * k, as: UInt64.self) }
            target.storeBytes(of: UInt32(truncatingIfNeeded: sum[7]), toByteOffset: o + 49, as: UInt32.self)
            target.storeBytes(of: UInt16(truncatingIfNeeded: sum[7] >> 32), toByteOffset: o + 53, as: UInt16.self)
            target.storeBytes(of: UInt8(truncatingIfNeeded: sum[7] >> 48), toByteOffset: o + 55, as: UInt8.self)
            i += 8
        }
        while i < count {
            let o = 7 * i
            var a: UInt64 = 0, b: UInt64 = 0
            for k in 0..<7 {
                a |= UInt64(target.load(fromByteOffset: o + k, as: UInt8.self)) << (8 * UInt64(k))
                b |= UInt64(source.load(fromByteOffset: o + k, as: UInt8.self)) << (8 * UInt64(k))
            }
            let sum = a &+ b
            for k in 0..<7 { target.storeBytes(of: UInt8(truncatingIfNeeded: sum >> (8 * UInt64(k))), toByteOffset: o + k, as: UInt8.self) }
            i += 1
        }
    }

    /// `target[i] &+= source[i]` for `count` elements; `source` may be unaligned.
    ///
    /// Wrapping two's-complement addition is associative and commutative, so the ring's sum is exact and the same
    /// in any order (and when the true sum fits in 64 bits, as the caller's fixed-point grid ensures, it is that sum).
    static func add(into target: UnsafeMutablePointer<Int64>, from source: UnsafeRawPointer, count: Int) {
        for i in 0..<count {
            target[i] &+= source.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self)
        }
    }

    /// `target[i] *= scale` for `count` elements.
    static func scale(_ target: UnsafeMutablePointer<Float>, count: Int, by scale: Float) {
        for i in 0..<count { target[i] *= scale }
    }
}
