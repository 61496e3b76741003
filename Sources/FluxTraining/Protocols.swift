import FluxTensor

/// What one rank contributes to a step's reduction, besides its gradients.
public struct StepTotals: Equatable, Sendable {
    /// Samples this rank processed (after skipping unreadable ones).
    public var samples: Double
    /// Sum over samples of each loss term (ce.0, ce.1, ce.2, align.1, align.2).
    public var lossSums: [Double]
    /// 1 when this rank saw a non-finite loss or gradient.
    public var nonFinite: Double

    public init(samples: Double, lossSums: [Double], nonFinite: Bool) {
        self.samples = samples
        self.lossSums = lossSums
        self.nonFinite = nonFinite ? 1 : 0
    }
}

/// Sums the gradient buffer across ranks, together with the step's totals, in one collective.
///
/// Contract (the ring all-reduce implements it later; `LocalReducer` now):
/// - Synchronous, on the caller's own thread; returns when every rank holds the same sums.
/// - `gradients` (count floats) is replaced by the element-wise sum over ranks; `totals` by the
///   sum of every rank's totals (the non-finite flag is therefore > 0 if any rank saw one).
/// - Throws `ReductionError` when a peer is lost or the ring's generation changes; the caller
///   then rolls back to its last commit. Nothing is partially applied that the caller relies on.
public protocol GradientReducer: AnyObject {
    /// Ranks taking part (1 for local training).
    var worldSize: Int { get }
    /// This caller's rank.
    var rank: Int { get }
    func allReduce(gradients: UnsafeMutablePointer<Float>, count: Int, totals: inout StepTotals) throws(ReductionError)
}

/// Why a reduction did not complete.
public enum ReductionError: Error, Equatable, CustomStringConvertible {
    case peerLost(rank: Int, reason: String)
    /// The connection to neighbour `rank` closed: its process is gone.
    case peerDisconnected(rank: Int)
    case generationChanged(from: UInt64, to: UInt64)
    case timedOut(seconds: Double)

    public var description: String {
        switch self {
        case let .peerLost(rank, reason): "ring peer \(rank) was lost: \(reason); rolling back to the last commit"
        case let .peerDisconnected(rank): "ring peer \(rank)'s connection closed (its process is gone); rolling back to the last commit"
        case let .generationChanged(from, to): "ring generation changed from \(from) to \(to); rolling back to the last commit"
        case let .timedOut(s): "ring operation timed out after \(s) s; rolling back to the last commit"
        }
    }
}

/// The one-process reducer: the sums are this rank's own values.
public final class LocalReducer: ExactGradientReducer {
    public let worldSize = 1
    public let rank = 0
    public init() {}
    public func allReduce(gradients: UnsafeMutablePointer<Float>, count: Int, totals: inout StepTotals) throws(ReductionError) {}
    public func allReduceMax(_ values: UnsafeMutableBufferPointer<Float>) throws(ReductionError) {}
    public func allReduceSum(packed56 bytes: UnsafeMutableRawBufferPointer) throws(ReductionError) {}
}

/// A reducer that can also do what `.exact` reduction needs: an element-wise max (of block exponents; exact and
/// order-free) and an exact integer sum (of fixed-point gradients) across ranks. Same contract as `allReduce`.
public protocol ExactGradientReducer: GradientReducer {
    /// Replaces `values` on every rank by the element-wise maximum over the ranks.
    func allReduceMax(_ values: UnsafeMutableBufferPointer<Float>) throws(ReductionError)
    /// Replaces the 7-byte little-endian two's-complement integers of `bytes` (`FixedPointGradients.quantizeAndPack`)
    /// on every rank by their element-wise sum over the ranks, modulo 2^56.
    func allReduceSum(packed56 bytes: UnsafeMutableRawBufferPointer) throws(ReductionError)
}

/// One training sample: a normalized clip [3, T, R, R] and its label.
public struct Sample: Sendable {
    public var clip: Tensor
    public var label: Int
    public init(clip: Tensor, label: Int) {
        self.clip = clip
        self.label = label
    }
}

/// What a rank processes in one step.
public struct RankBatch: Sendable {
    /// The samples that could be read, in global order.
    public var samples: [Sample]
    /// Global indices of samples that could not be read: skipped and counted, never replaced.
    public var skipped: [Int]
    public init(samples: [Sample], skipped: [Int]) {
        self.samples = samples
        self.skipped = skipped
    }
}

/// Where a step's clips come from.
///
/// Contract: `batch(epoch:step:rank:worldSize:globalBatch:plan:)` returns this rank's near-equal slice of
/// the fixed global batch of that step (its size is the training config's: sources never hold their own) — the r-th of `worldSize` contiguous slices of the epoch
/// permutation from (seed, epoch) — decoded at the plan's frames and resolution, with every random
/// choice keyed by (seed, epoch, step, sample index, purpose), never by rank. Deterministic: the
/// same arguments give the same samples. Unreadable samples are listed in `skipped`.
public protocol ClipSource: AnyObject {
    /// Samples in one epoch.
    var count: Int { get }
    func batch(epoch: Int, step: Int, rank: Int, worldSize: Int, globalBatch: Int, plan: SamplingPlan) throws -> RankBatch
}

/// The deterministic sharding of design §4, shared by every `ClipSource`: epoch e's order is a
/// permutation from (seed, e) alone; step s takes the s-th global batch of it; rank r of n takes
/// the r-th near-equal contiguous slice.
public enum Sharding {
    /// Epoch `epoch`'s order of the `count` sample indices (Fisher–Yates over `StepRandom`).
    public static func permutation(count: Int, seed: UInt64, epoch: Int) -> [Int] {
        var order = Array(0..<count)
        var random = StepRandom(seed: seed, epoch: epoch, step: 0, purpose: .permutation)
        for i in stride(from: count - 1, to: 0, by: -1) { order.swapAt(i, random.below(i + 1)) }
        return order
    }

    /// The sample indices rank `rank` of `worldSize` processes at (epoch, step), in global order.
    public static func slice(count: Int, seed: UInt64, epoch: Int, step: Int, globalBatch: Int, rank: Int,
                             worldSize: Int) -> ArraySlice<Int> {
        let order = permutation(count: count, seed: seed, epoch: epoch)
        let start = step * globalBatch
        return order[(start + globalBatch * rank / worldSize)..<(start + globalBatch * (rank + 1) / worldSize)]
    }
}
