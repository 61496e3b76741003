/// A growable set of named fp32 buffers reused across calls, so that steady-state forwards
/// allocate nothing: a buffer is reallocated only when a call needs more than it holds.
final class Workspace {
    private var buffers: [Int: (pointer: UnsafeMutablePointer<Float>, capacity: Int)] = [:]

    deinit { for (_, b) in buffers { b.pointer.deallocate() } }

    /// Buffer `slot` with room for at least `count` floats (64-byte aligned, zero-filled when first
    /// allocated). Contents are kept while the capacity suffices; `zeroed` clears `count` floats.
    func buffer(_ slot: Int, count: Int, zeroed: Bool = false) -> UnsafeMutablePointer<Float> {
        if let existing = buffers[slot], existing.capacity >= count {
            if zeroed { existing.pointer.update(repeating: 0, count: count) }
            return existing.pointer
        }
        buffers[slot]?.pointer.deallocate()
        let pointer = Self.allocate(count)
        buffers[slot] = (pointer, max(count, 16))
        return pointer
    }

    private static func allocate(_ count: Int) -> UnsafeMutablePointer<Float> {
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(count, 16) * 4, alignment: 64)
        let p = raw.bindMemory(to: Float.self, capacity: max(count, 16))
        p.initialize(repeating: 0, count: max(count, 16))
        return p
    }
}
