import Foundation
import FluxTensor
import FluxViT

/// How a training run goes (spec §5 plus the loop's own settings).
public struct TrainingConfig: Sendable {
    public var seed: UInt64 = 0
    /// Samples per step across all ranks: fixed by the job, not by the world size (design §4).
    public var globalBatch: Int = 8
    public var epochs: Int = 1
    public var labelSmoothing: Float = 0.1
    public var optimizer = OptimizerConfig()
    /// A checkpoint every this many steps (0: none), the newest `keepCheckpoints` kept.
    public var checkpointEvery: Int = 0
    public var keepCheckpoints: Int = 3
    public var checkpointDirectory: URL?
    /// The job fails after this many non-finite steps in a row.
    public var maxNonFiniteStreak: Int = 5

    public init() {}
}

/// A rank's in-memory commit: everything a step depends on, so rolling back to it and training on
/// gives the same steps again.
public struct TrainingCommit: Sendable {
    /// The training state (step and data cursor) at the commit.
    public var state: TrainingState
    /// AdamW's step count.
    public var optimizerStep: Int
    /// The flat parameter buffer, the store's layout.
    public var parameters: [Float]
    /// AdamW's first and second moments, the store's layout.
    public var expAvg: [Float]
    public var expAvgSq: [Float]

    /// A commit.
    public init(state: TrainingState, optimizerStep: Int, parameters: [Float], expAvg: [Float], expAvgSq: [Float]) {
        self.state = state
        self.optimizerStep = optimizerStep
        self.parameters = parameters
        self.expAvg = expAvg
        self.expAvgSq = expAvgSq
    }
}

/// What one step did, for progress displays and logs.
public struct StepReport: Sendable {
    public var step: Int
    public var epoch: Int
    public var plan: SamplingPlan
    /// Mean per sample of ce.0, ce.1, ce.2, align.1, align.2 over the global batch.
    public var losses: [Double]
    public var samples: Int
    public var skippedSamples: Int
    public var learningRate: Double
    public var gradientNorm: Double
    /// True when the step was skipped because some rank saw a non-finite value.
    public var skippedNonFinite: Bool
    /// The budget (0, 1, 2) that produced a non-finite value on this rank, if any.
    public var nonFiniteBudget: Int?
    public var seconds: Double
    public var samplesPerSecond: Double { Double(samples) / max(seconds, 1e-9) }
    public var meanLoss: Double { losses.reduce(0, +) }
}

/// The training loop over a `ClipSource` and a `GradientReducer` (spec §5, design §4), the same on
/// one process and on every rank of a ring.
///
/// Per step: plan the Flux grid from (seed, epoch, step); take this rank's slice of the global
/// batch; accumulate the Flux loss's gradients (sums over samples); reduce gradients together with
/// the sample count, loss sums and a non-finite flag; then every rank divides by the *reduced*
/// sample count and applies the same AdamW step — or, if any rank flagged a non-finite value, every
/// rank skips the step together.
public final class Trainer {
    public let model: FluxViTModel
    public let config: TrainingConfig
    public let optimizer: AdamW
    public let planner: SamplingPlanner
    public let source: ClipSource
    /// The reducer of the current ring generation; an elastic worker replaces it at each new generation.
    public var reducer: GradientReducer
    public let stepsPerEpoch: Int
    public let schedule: LearningRateSchedule
    public private(set) var state: TrainingState

    public init(model: FluxViTModel, config: TrainingConfig, planner: SamplingPlanner, source: ClipSource,
                reducer: GradientReducer = LocalReducer()) throws(TrainingError) {
        guard config.globalBatch >= 1, source.count >= config.globalBatch else {
            throw .datasetTooSmall(samples: source.count, globalBatch: config.globalBatch)
        }
        self.model = model
        self.config = config
        self.planner = planner
        self.source = source
        self.reducer = reducer
        optimizer = AdamW(store: model.parameters, config: config.optimizer)
        stepsPerEpoch = source.count / config.globalBatch
        schedule = LearningRateSchedule(config: config.optimizer, totalIterations: config.epochs * stepsPerEpoch)
        state = TrainingState(step: 0, epoch: 0, stepInEpoch: 0, seed: config.seed, modelYAML: model.config.yaml)
    }

    /// Total steps of the run (epochs × steps per epoch).
    public var totalSteps: Int { config.epochs * stepsPerEpoch }

    /// Restores the newest checkpoint of the configured directory, if there is one.
    @discardableResult
    public func resumeIfPossible() throws -> Bool {
        guard let directory = config.checkpointDirectory, let latest = Checkpoint.latest(in: directory) else { return false }
        try resume(from: latest)
        return true
    }

    /// Restores a checkpoint folder (parameters, moments, step, data cursor).
    public func resume(from folder: URL) throws {
        state = try Checkpoint.load(from: folder, model: model, optimizer: optimizer)
    }

    /// Writes a checkpoint now (to the configured directory).
    @discardableResult
    public func saveCheckpoint() throws -> URL? {
        guard let directory = config.checkpointDirectory else { return nil }
        return try Checkpoint.save(model: model, optimizer: optimizer, state: state, in: directory, keep: config.keepCheckpoints)
    }

    /// Copies parameters, optimizer moments and the training state (the data cursor included) into
    /// memory: the commit an elastic rank rolls back to when its ring breaks (design §4).
    public func commit() -> TrainingCommit {
        let count = model.parameters.count
        return TrainingCommit(
            state: state, optimizerStep: optimizer.step,
            parameters: Array(UnsafeBufferPointer(start: model.parameters.values, count: count)),
            expAvg: Array(UnsafeBufferPointer(start: optimizer.expAvg, count: count)),
            expAvgSq: Array(UnsafeBufferPointer(start: optimizer.expAvgSq, count: count)))
    }

    /// Restores a commit of this model's shape exactly: the next step is the commit's step.
    public func rollback(to commit: TrainingCommit) {
        let count = model.parameters.count
        precondition(commit.parameters.count == count, "a commit of another model: \(commit.parameters.count) vs \(count) parameters")
        commit.parameters.withUnsafeBufferPointer { model.parameters.values.update(from: $0.baseAddress!, count: count) }
        commit.expAvg.withUnsafeBufferPointer { optimizer.expAvg.update(from: $0.baseAddress!, count: count) }
        commit.expAvgSq.withUnsafeBufferPointer { optimizer.expAvgSq.update(from: $0.baseAddress!, count: count) }
        optimizer.restore(step: commit.optimizerStep)
        model.parametersChanged()
        state = commit.state
    }

    /// The checkpoint folder's files as bytes (for the `checkpoint` message; `Checkpoint.write` puts them on disk).
    public func checkpointFiles() throws(CheckpointError) -> [(name: String, contents: Data)] {
        try Checkpoint.files(model: model, optimizer: optimizer, state: state)
    }

    /// Runs one step.
    public func step() throws -> StepReport {
        let start = DispatchTime.now().uptimeNanoseconds
        let plan = planner.plan(seed: config.seed, epoch: state.epoch, step: state.stepInEpoch)
        let batch = try source.batch(epoch: state.epoch, step: state.stepInEpoch, rank: reducer.rank,
                                     worldSize: reducer.worldSize, globalBatch: config.globalBatch, plan: plan)
        let params = model.parameters
        params.gradients.update(repeating: 0, count: params.count)
        var totals = StepTotals(samples: 0, lossSums: [0, 0, 0, 0, 0], nonFinite: false)
        var nonFiniteBudget: Int?
        if !batch.samples.isEmpty {
            let video = Tensor.stacked(batch.samples.map(\.clip))
            let loss = try FluxStep.accumulateGradients(
                model: model, video: video, labels: batch.samples.map(\.label), budgets: model.config.budgets,
                labelSmoothing: config.labelSmoothing)
            nonFiniteBudget = loss.nonFiniteBudget
            totals = StepTotals(samples: Double(batch.samples.count), lossSums: loss.terms, nonFinite: loss.nonFiniteBudget != nil)
        }
        try reducer.allReduce(gradients: params.gradients, count: params.count, totals: &totals)

        let lr = schedule.value(at: state.step)
        var norm = 0.0
        let skip = totals.nonFinite > 0 || totals.samples == 0
        if skip {
            state.nonFiniteStreak += 1
            state.nonFiniteSteps += 1
        } else {
            let inverse = Float(1 / totals.samples)
            for i in 0..<params.count { params.gradients[i] *= inverse }
            norm = optimizer.update(learningRate: lr)
            model.parametersChanged()
            state.nonFiniteStreak = 0
        }
        state.skippedSamples += batch.skipped.count
        let report = StepReport(
            step: state.step, epoch: state.epoch, plan: plan,
            losses: totals.lossSums.map { $0 / max(totals.samples, 1) }, samples: Int(totals.samples),
            skippedSamples: batch.skipped.count, learningRate: lr, gradientNorm: norm, skippedNonFinite: skip,
            nonFiniteBudget: nonFiniteBudget, seconds: Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        advance()
        if skip, state.nonFiniteStreak >= config.maxNonFiniteStreak {
            throw TrainingError.nonFiniteStreak(steps: state.nonFiniteStreak, limit: config.maxNonFiniteStreak)
        }
        if config.checkpointEvery > 0, state.step % config.checkpointEvery == 0 { try saveCheckpoint() }
        return report
    }

    /// Runs `steps` steps (default: to the end of the run), calling `progress` after each, until
    /// `shouldStop` says so (checked between steps, e.g. after Ctrl-C). Returns the steps run.
    @discardableResult
    public func train(steps: Int? = nil, shouldStop: () -> Bool = { false }, progress: (StepReport) throws -> Void = { _ in }) throws -> Int {
        let target = min(totalSteps, state.step + (steps ?? totalSteps))
        var ran = 0
        while state.step < target, !shouldStop() {
            try progress(try step())
            ran += 1
        }
        return ran
    }

    private func advance() {
        state.step += 1
        state.stepInEpoch += 1
        if state.stepInEpoch >= stepsPerEpoch {
            state.stepInEpoch = 0
            state.epoch += 1
        }
    }
}
