import FluxTensor

/// An in-memory `ClipSource` of reproducible random clips, for tests and benchmarks: sample i's
/// clip is a pure function of (seed, i) at any (T, R), so every rank and every resume sees the
/// same data. Labels are i mod classes. The epoch permutation comes from (seed, epoch).
public final class SyntheticClips: ClipSource {
    public let count: Int
    public let classes: Int
    public let seed: UInt64
    /// Sample indices that "cannot be read" (skipped and counted, never replaced).
    public var unreadable: Set<Int> = []
    /// Scale of each clip's values; a non-finite value poisons every clip (tests the skip path).
    public var amplitude: Float = 1

    public init(count: Int, classes: Int, seed: UInt64) {
        self.count = count
        self.classes = classes
        self.seed = seed
    }

    /// The epoch's order of sample indices, from (seed, epoch) only.
    public func permutation(epoch: Int) -> [Int] { Sharding.permutation(count: count, seed: seed, epoch: epoch) }

    public func batch(
        epoch: Int, step: Int, rank: Int, worldSize: Int, globalBatch: Int, plan: SamplingPlan
    ) throws -> RankBatch {
        let slice = Sharding.slice(count: count, seed: seed, epoch: epoch, step: step, globalBatch: globalBatch,
                                   rank: rank, worldSize: worldSize)
        var samples: [Sample] = []
        var skipped: [Int] = []
        for index in slice {
            if unreadable.contains(index) {
                skipped.append(index)
                continue
            }
            samples.append(Sample(clip: clip(index: index, frames: plan.frames, size: plan.resolution), label: index % classes))
        }
        return RankBatch(samples: samples, skipped: skipped)
    }

    /// Sample `index` at T frames of size² pixels: [3, T, size, size].
    public func clip(index: Int, frames: Int, size: Int) -> Tensor {
        var random = StepRandom(seed: seed, epoch: 0, step: 0, index: index, purpose: .crop)
        let count = 3 * frames * size * size
        var values = [Float](repeating: 0, count: count)
        for i in 0..<count { values[i] = (Float(random.unit()) * 2 - 1) * 1.7 * amplitude }
        return Tensor(shape: [3, frames, size, size], scalars: values)
    }
}
