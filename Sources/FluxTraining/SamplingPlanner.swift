import FluxTensor

/// The Flux grid of one step: every sample of the step's batch is sampled this way (spec §5).
public struct SamplingPlan: Equatable, Sendable {
    public var frames: Int
    public var resolution: Int
    /// Patch tokens T·(R/P)².
    public var tokens: Int

    public init(frames: Int, resolution: Int, tokens: Int) {
        self.frames = frames
        self.resolution = resolution
        self.tokens = tokens
    }
}

/// Counter-based random numbers: a pure function of (seed, epoch, step, index, purpose), so that
/// any number of workers draw the same values (design §4). SplitMix64 finalizer over a mixed key.
public struct StepRandom: Sendable, RandomNumberGenerator {
    private var stream: CounterRandom

    public init(seed: UInt64, epoch: Int, step: Int, index: Int = 0, purpose: Purpose) {
        stream = CounterRandom(seed: seed, parts: [UInt64(bitPattern: Int64(epoch)), UInt64(bitPattern: Int64(step)),
                                                   UInt64(bitPattern: Int64(index)), purpose.rawValue])
    }

    /// What a stream is for; each purpose gets independent numbers.
    public enum Purpose: UInt64, Sendable {
        case grid = 1, frames = 2, crop = 3, flip = 4, permutation = 5
    }

    public mutating func next() -> UInt64 { stream.next() }

    /// Uniform integer in 0 ..< bound.
    public mutating func below(_ bound: Int) -> Int { stream.below(bound) }

    /// Uniform in [0, 1).
    public mutating func unit() -> Double { stream.unit() }
}

/// Draws each step's (frames, resolution) under the token limits (spec §5).
public struct SamplingPlanner: Equatable, Sendable {
    public let frameChoices: [Int]
    public let resolutionChoices: [Int]
    public let patchSize: Int
    public let tokenRange: ClosedRange<Int>
    /// The (T, R) pairs whose token count lies in range.
    public let feasible: [SamplingPlan]

    /// Rejects ranges that no (T, R) satisfies, naming the ranges.
    public init(frames: [Int], resolutions: [Int], patchSize: Int, tokenRange: ClosedRange<Int>) throws(PlannerError) {
        guard !frames.isEmpty, !resolutions.isEmpty else { throw .empty }
        if let bad = resolutions.first(where: { $0 % patchSize != 0 || $0 < patchSize }) {
            throw .resolutionNotMultiple(resolution: bad, patchSize: patchSize)
        }
        frameChoices = frames
        resolutionChoices = resolutions
        self.patchSize = patchSize
        self.tokenRange = tokenRange
        var feasible: [SamplingPlan] = []
        for t in frames {
            for r in resolutions {
                let tokens = t * (r / patchSize) * (r / patchSize)
                if tokenRange.contains(tokens) { feasible.append(SamplingPlan(frames: t, resolution: r, tokens: tokens)) }
            }
        }
        guard !feasible.isEmpty else {
            throw .infeasible(frames: frames, resolutions: resolutions, tokenRange: tokenRange)
        }
        self.feasible = feasible
    }

    /// The official ranges: T ∈ {6, 8, …, 24}, R ∈ {112, 140, …, 336}, tokens in [2048, 8192].
    public static func official(patchSize: Int = 14) throws(PlannerError) -> SamplingPlanner {
        try SamplingPlanner(
            frames: Array(stride(from: 6, through: 24, by: 2)), resolutions: Array(stride(from: 112, through: 336, by: 28)),
            patchSize: patchSize, tokenRange: 2048...8192)
    }

    /// The plan of (epoch, step): uniform T and R, redrawn until the token count is in range.
    public func plan(seed: UInt64, epoch: Int, step: Int) -> SamplingPlan {
        var random = StepRandom(seed: seed, epoch: epoch, step: step, purpose: .grid)
        while true {
            let t = frameChoices[random.below(frameChoices.count)]
            let r = resolutionChoices[random.below(resolutionChoices.count)]
            let tokens = t * (r / patchSize) * (r / patchSize)
            if tokenRange.contains(tokens) { return SamplingPlan(frames: t, resolution: r, tokens: tokens) }
        }
    }
}

/// A sampling configuration that cannot work.
public enum PlannerError: Error, Equatable, CustomStringConvertible {
    case empty
    case resolutionNotMultiple(resolution: Int, patchSize: Int)
    case infeasible(frames: [Int], resolutions: [Int], tokenRange: ClosedRange<Int>)

    public var description: String {
        switch self {
        case .empty: "flux sampling needs at least one frame count and one resolution"
        case let .resolutionNotMultiple(r, p): "resolution \(r) is not a positive multiple of patch_size \(p)"
        case let .infeasible(f, r, range):
            "no frame count in \(f) with a resolution in \(r) gives a token count in \(range.lowerBound)…\(range.upperBound); widen the ranges or the token limits"
        }
    }
}
