import Foundation
import FluxTensor
import FluxTraining
import FluxVideo

/// The glue between training and video (style §A): a manifest of videos as a `ClipSource`.
///
/// Contract (see `ClipSource`): step s of epoch e takes the s-th global batch of the permutation
/// from (seed, e); rank r of n takes the r-th near-equal slice; every sample's frame indices, crop
/// and flip come from `StepRandom` keyed by (seed, epoch, step, sample index, purpose), never by
/// rank — so the same step yields the same clips on any number of workers. A video that cannot be
/// read is skipped and reported in `RankBatch.skipped` (and `unreadable`), never replaced.
public final class VideoDataset: ClipSource {
    public let manifest: Manifest
    public let seed: UInt64
    /// Random resized crop and flip (training) or the centre test view (no augmentation).
    public let augment: Bool
    /// Decoder threads per video (frame threads).
    public let decoderThreads: Int
    /// Random horizontal flips in training; off for data whose labels depend on left and right
    /// (motion direction, Something-Something, the synthetic motion dataset).
    public let flip: Bool
    /// Scale range of the random resized crop (spec §6: 0.08–1).
    public let cropScale: ClosedRange<Double>
    /// Videos that could not be read so far: manifest line, path and FFmpeg's reason.
    public private(set) var unreadable: [(line: Int, path: String, reason: String)] = []

    public init(manifest: Manifest, seed: UInt64, augment: Bool, flip: Bool = true,
                cropScale: ClosedRange<Double> = 0.08...1, decoderThreads: Int = 1) {
        self.manifest = manifest
        self.flip = flip
        self.cropScale = cropScale
        self.seed = seed
        self.augment = augment
        self.decoderThreads = decoderThreads
    }

    public var count: Int { manifest.entries.count }

    public func batch(
        epoch: Int, step: Int, rank: Int, worldSize: Int, globalBatch: Int, plan: SamplingPlan
    ) throws -> RankBatch {
        let slice = Sharding.slice(count: count, seed: seed, epoch: epoch, step: step, globalBatch: globalBatch,
                                   rank: rank, worldSize: worldSize)
        var samples: [Sample] = []
        var skipped: [Int] = []
        for index in slice {
            if let sample = trainingSample(index: index, epoch: epoch, step: step, plan: plan) {
                samples.append(sample)
            } else {
                skipped.append(index)
            }
        }
        return RankBatch(samples: samples, skipped: skipped)
    }

    /// Sample `index` as training sees it at (epoch, step): random segment frames, and with
    /// `augment` a random resized crop and flip; nil (and recorded) when the video cannot be read.
    public func trainingSample(index: Int, epoch: Int, step: Int, plan: SamplingPlan) -> Sample? {
        let entry = manifest.entries[index]
        do {
            let reader = try VideoReader(path: entry.url.path, threads: decoderThreads)
            var frames = StepRandom(seed: seed, epoch: epoch, step: step, index: index, purpose: .frames)
            let draws = (0..<plan.frames).map { _ in frames.unit() }
            let indices = FrameSampling.trainingIndices(frameCount: reader.frameCount, count: plan.frames, unitDraws: draws)
            let clip: Tensor
            if augment {
                var crop = StepRandom(seed: seed, epoch: epoch, step: step, index: index, purpose: .crop)
                let rect = ClipTransforms.randomResizedCrop(
                    frameWidth: reader.width, frameHeight: reader.height, scale: cropScale, using: &crop)
                var coin = StepRandom(seed: seed, epoch: epoch, step: step, index: index, purpose: .flip)
                clip = try reader.clip(at: indices, size: plan.resolution, crop: rect, flip: flip && coin.unit() < 0.5)
            } else {
                clip = try reader.testClip(at: indices, size: plan.resolution)
            }
            return Sample(clip: clip, label: entry.label)
        } catch {
            unreadable.append((entry.line, entry.path, "\(error)"))
            return nil
        }
    }

    /// Sample `index` as evaluation sees it: `frames` at the middle of their segments, the centre
    /// crop of the short-side resize to `size`. Nil (and recorded) when unreadable.
    public func testSample(index: Int, frames: Int, size: Int) -> Sample? {
        let entry = manifest.entries[index]
        do {
            let reader = try VideoReader(path: entry.url.path, threads: decoderThreads)
            let indices = FrameSampling.testIndices(frameCount: reader.frameCount, count: frames)
            return Sample(clip: try reader.testClip(at: indices, size: size), label: entry.label)
        } catch {
            unreadable.append((entry.line, entry.path, "\(error)"))
            return nil
        }
    }
}

/// One video as the model's input, for inference.
public enum VideoClip {
    /// `frames` frames at the middle of their segments (spec §6, one test clip), centre crop of the
    /// short-side resize to `size`, normalized: [1, 3, frames, size, size].
    public static func test(path: String, frames: Int, size: Int, threads: Int = 2) throws -> Tensor {
        let reader = try VideoReader(path: path, threads: threads)
        let indices = FrameSampling.testIndices(frameCount: reader.frameCount, count: frames)
        let clip = try reader.testClip(at: indices, size: size)
        return clip.reshaped([1] + clip.shape)
    }
}
