/// A growable set of named fp32 buffers reused across calls, so that steady-state forwards
/// allocate nothing: a buffer is reallocated only when a call needs more than it holds.
final class Workspace {
    private var buffers: [UnsafeMutablePointer<Float>] = []
    private var capacities: [Int] = []

    deinit { for b in buffers { b.deallocate() } }

    /// Buffer `slot` with room for at least `count` floats (64-byte aligned). Contents are kept
    /// only while the capacity suffices; callers overwrite before reading.
    func buffer(_ slot: Int, count: Int) -> UnsafeMutablePointer<Float> {
        while buffers.count <= slot {
            buffers.append(Self.allocate(16))
            capacities.append(16)
        }
        if capacities[slot] < count {
            buffers[slot].deallocate()
            buffers[slot] = Self.allocate(count)
            capacities[slot] = count
        }
        return buffers[slot]
    }

    private static func allocate(_ count: Int) -> UnsafeMutablePointer<Float> {
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(count, 16) * 4, alignment: 64)
        let p = raw.bindMemory(to: Float.self, capacity: max(count, 16))
        p.initialize(repeating: 0, count: max(count, 16))
        return p
    }
}
