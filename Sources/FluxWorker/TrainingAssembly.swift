import Foundation
import FluxData
import FluxJobs
import FluxTraining
import FluxVideo
import FluxViT

/// A training run put together from a job spec: the model, its data, the planner and the `Trainer`, the same on
/// every rank (a rank differs only by the reducer the ring gives it).
public struct TrainingAssembly {
    /// The model being trained.
    public let model: FluxViTModel
    /// The loop (its reducer is local until a ring replaces it).
    public let trainer: Trainer
    /// Steps of the whole job.
    public let totalSteps: Int
    /// The training videos, when the job trains on manifests (for unreadable-video reports).
    public let videos: VideoDataset?

    /// Builds everything the spec names: reads manifests (not the videos), initializes or loads the weights.
    ///
    /// - Throws: the spec's, the manifest's, the checkpoint's or the model's own typed error, which names the file
    ///   and the fix; a worker reports it as a non-retryable task failure.
    public init(spec: JobSpec, threads: Int) throws {
        let model = try FluxViTModel(config: spec.modelConfig, threads: threads)
        let source: ClipSource
        switch spec.data {
        case let .manifests(train, _, root):
            let manifest = try Manifest.load(path: train, root: root)
            try manifest.validate(classCount: spec.modelConfig.numClasses)
            let dataset = VideoDataset(
                manifest: manifest, seed: spec.training.seed, augment: true,
                flip: spec.training.flip, cropScale: spec.training.cropScale...1)
            videos = dataset
            source = dataset
        case let .synthetic(count):
            videos = nil
            source = SyntheticClips(count: count, classes: spec.modelConfig.numClasses, seed: spec.training.seed)
        }
        var runConfig = spec.trainingConfig(datasetCount: source.count)
        runConfig.checkpointEvery = 0  // the worker sends checkpoints to the coordinator instead
        runConfig.checkpointDirectory = nil
        let trainer = try Trainer(model: model, config: runConfig, planner: try spec.samplingPlanner(), source: source)
        switch spec.initialWeights {
        case let .seed(seed):
            Initialization.initialize(model.parameters, seed: seed)
            model.parametersChanged()
        case let .checkpoint(path):
            // Weights (and moments) of another run; the step starts again at 0.
            try trainer.resume(from: URL(fileURLWithPath: path))
            var fresh = trainer.commit()
            fresh.state.step = 0
            fresh.state.epoch = 0
            fresh.state.stepInEpoch = 0
            fresh.state.nonFiniteStreak = 0
            fresh.state.nonFiniteSteps = 0
            fresh.state.skippedSamples = 0
            fresh.optimizerStep = 0
            trainer.rollback(to: fresh)
        }
        self.model = model
        self.trainer = trainer
        self.totalSteps = spec.totalSteps(datasetCount: source.count)
    }
}
