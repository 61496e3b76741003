/// A counter-based random stream (SplitMix64): its numbers are a pure function of the key it was
/// made from, so every worker, thread and resume that asks for the same key draws the same values.
/// The keyed streams of the project (`KeyedRandom`, `StepRandom`, the synthetic scenes' streams)
/// are built on it.
public struct CounterRandom: Sendable, RandomNumberGenerator {
    private var state: UInt64

    /// The stream whose state starts at `state`.
    public init(state: UInt64) { self.state = state }

    /// The stream for `seed` and the key `parts`, each part mixed in turn.
    public init(seed: UInt64, parts: [UInt64]) {
        var h = seed &* 0x9E37_79B9_7F4A_7C15
        for part in parts { h = Self.mix(h ^ (part &+ 0x632B_E59B_D9B4_E019)) }
        state = h
    }

    /// SplitMix64's finalizer.
    public static func mix(_ value: UInt64) -> UInt64 {
        var z = value
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        return Self.mix(state)
    }

    /// Uniform integer in 0 ..< bound.
    public mutating func below(_ bound: Int) -> Int { Int(next() % UInt64(bound)) }

    /// Uniform in [0, 1).
    public mutating func unit() -> Double { Double(next() >> 11) / Double(1 << 53) }
}
