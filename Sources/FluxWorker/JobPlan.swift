import Foundation
import FluxJobs
import FluxTraining
import FluxVideo
import FluxViT

/// What a job would do, without running it (`fluxctl plan`): the data it reads, its steps, each rank's slice of
/// the global batch at every world size it may run at, the Flux grids of its first steps, and a memory estimate.
public struct JobPlan: Sendable {
    /// One world size's split of the global batch.
    public struct Split: Sendable {
        public var worldSize: Int
        /// Clips each rank takes per step (rank order).
        public var rankClips: [Int]
        /// Estimated peak resident memory of one worker, bytes.
        public var peakBytesPerWorker: Int
    }

    public var samples: Int
    public var stepsPerEpoch: Int
    public var totalSteps: Int
    public var epochs: Int
    public var parameters: Int
    /// The grids (frames × resolution², tokens) of the first steps.
    public var firstGrids: [SamplingPlan]
    public var splits: [Split]

    /// Plans `spec`, reading its manifest (not its videos); `workers` restricts the world sizes shown to one.
    ///
    /// - Throws: what the worker would fail with: an unreadable manifest, a dataset smaller than one global batch.
    public init(spec: JobSpec, workers: Int? = nil, grids: Int = 5) throws {
        switch spec.data {
        case let .manifests(train, _, root):
            let manifest = try Manifest.load(path: train, root: root)
            try manifest.validate(classCount: spec.modelConfig.numClasses)
            samples = manifest.entries.count
        case let .synthetic(count):
            samples = count
        }
        guard samples >= spec.training.globalBatch else {
            throw TrainingError.datasetTooSmall(samples: samples, globalBatch: spec.training.globalBatch)
        }
        stepsPerEpoch = spec.stepsPerEpoch(datasetCount: samples)
        totalSteps = spec.totalSteps(datasetCount: samples)
        epochs = spec.epochs(datasetCount: samples)
        parameters = ParameterStore.layout(for: spec.modelConfig).reduce(0) { $0 + $1.1.reduce(1, *) }
        let planner = try spec.samplingPlanner()
        let perEpoch = max(stepsPerEpoch, 1)
        firstGrids = (0..<min(grids, totalSteps)).map {
            planner.plan(seed: spec.training.seed, epoch: $0 / perEpoch, step: $0 % perEpoch)
        }
        let sizes = workers.map { [$0] } ?? Array(spec.workers.min...spec.workers.max)
        let maxTokens = planner.feasible.map(\.tokens).max() ?? 0
        let batch = spec.training.globalBatch
        let model = spec.modelConfig
        let parameters = parameters
        splits = sizes.map { n in
            let clips = (0..<n).map { r in batch * (r + 1) / n - batch * r / n }
            return Split(worldSize: n, rankClips: clips,
                         peakBytesPerWorker: Self.peakBytes(parameters: parameters, clips: clips.max() ?? 0,
                                                            tokens: maxTokens, model: model))
        }
    }

    /// A rough estimate: parameters, gradients, both AdamW moments and the in-memory commit of all three (7 floats
    /// a parameter), plus about 16 saved C-wide vectors a token a block for backward, for the rank's clips at the
    /// largest feasible grid, plus a 200 MB process baseline.
    static func peakBytes(parameters: Int, clips: Int, tokens: Int, model: FluxViTConfig) -> Int {
        let state = 7 * 4 * parameters
        let activations = clips * tokens * model.embedDim * model.depth * 16 * 4
        return state + activations + 200 << 20
    }
}
