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
    /// How gradients are summed across samples and ranks.
    public var reduction: GradientReduction = .fast
    /// `.exact` only: the global batch is cut into this many slots (0: `defaultSlots(globalBatch:)`).
    public var slots: Int = 0

    public init() {}

    /// The slots of an exact reduction: at most 16, one sample each for a batch of 16 or fewer. More slots allow
    /// more workers (a worker with no slot idles); fewer make each slot a larger forward batch.
    public static func defaultSlots(globalBatch: Int) -> Int { max(1, min(globalBatch, 16)) }

    /// The slot count this run uses.
    public var slotCount: Int { slots > 0 ? min(slots, globalBatch) : Self.defaultSlots(globalBatch: globalBatch) }
}

/// How a step's gradients are summed (issue 12).
public enum GradientReduction: String, Sendable, CaseIterable {
    /// Each rank sums its samples in one batch and the ring sums fp32: fastest; the result depends on the world size
    /// in the last bits (float addition is not associative).
    case fast
    /// The global batch is cut into fixed slots of sample indices; each slot's gradient is computed on its own
    /// (the same wherever it runs) and summed exactly in fixed point (`FixedPointGradients`): the parameters after
    /// every step are the same bits on any number of workers.
    case exact
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
    /// `.exact` reduction's buffers, kept between steps (hundreds of MB for FluxViT-S: allocating them every step
    /// costs page faults): this rank's slot gradients one after another, and the packed sums.
    private var slotStore: [Float] = []
    /// The sums as the ring carries them: 7 bytes each (`FixedPointGradients.quantizeAndPack`).
    private var packedSums: [UInt8] = []

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
        if config.reduction == .exact { return try exactStep() }
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
        return try finish(plan: plan, totals: totals, skipped: batch.skipped.count, nonFiniteBudget: nonFiniteBudget,
                          start: start)
    }

    /// The slots rank `rank` of `worldSize` computes: a near-equal contiguous part of `0..<slots`.
    public static func slots(rank: Int, worldSize: Int, slots: Int) -> Range<Int> {
        (slots * rank / worldSize)..<(slots * (rank + 1) / worldSize)
    }

    /// One step with `.exact` reduction: each of this rank's slots is forwarded and back-propagated on its own (so
    /// its gradient is the same on any rank), the block exponents are max-reduced across ranks, every slot is added
    /// onto that grid as integers, the integers are summed across ranks and converted back once.
    private func exactStep() throws -> StepReport {
        guard let exact = reducer as? ExactGradientReducer else {
            throw TrainingError.exactReductionUnsupported(reducer: "\(type(of: reducer))")
        }
        let start = DispatchTime.now().uptimeNanoseconds
        let plan = planner.plan(seed: config.seed, epoch: state.epoch, step: state.stepInEpoch)
        let params = model.parameters
        let count = params.count
        let slotCount = config.slotCount
        let precision = FixedPointGradients.precision(summands: slotCount)
        var totals = StepTotals(samples: 0, lossSums: [0, 0, 0, 0, 0], nonFinite: false)
        var nonFiniteBudget: Int?
        var skipped = 0
        var exponents = [Float](repeating: FixedPointGradients.zeroExponent,
                                count: FixedPointGradients.blockCount(count))
        let mySlots = Self.slots(rank: reducer.rank, worldSize: reducer.worldSize, slots: slotCount)
        // Every slot's gradient but the last waits in `slotStore` for the exponents; the last stays in place.
        let stored = max(0, mySlots.count - 1) * count
        if slotStore.count < stored { slotStore = [Float](repeating: 0, count: stored) }
        var computed = 0
        var lastInPlace = false
        for slot in mySlots {
            let batch = try source.batch(epoch: state.epoch, step: state.stepInEpoch, rank: slot, worldSize: slotCount,
                                         globalBatch: config.globalBatch, plan: plan)
            skipped += batch.skipped.count
            guard !batch.samples.isEmpty else { continue }
            if lastInPlace {
                slotStore.withUnsafeMutableBufferPointer { store in
                    (store.baseAddress! + computed * count).update(from: params.gradients, count: count)
                }
                computed += 1
            }
            params.gradients.update(repeating: 0, count: count)
            let loss = try FluxStep.accumulateGradients(
                model: model, video: Tensor.stacked(batch.samples.map(\.clip)), labels: batch.samples.map(\.label),
                budgets: model.config.budgets, labelSmoothing: config.labelSmoothing)
            nonFiniteBudget = nonFiniteBudget ?? loss.nonFiniteBudget
            totals.samples += Double(batch.samples.count)
            for (i, term) in loss.terms.enumerated() { totals.lossSums[i] += term }
            if loss.nonFiniteBudget != nil { totals.nonFinite = 1 }
            FixedPointGradients.mergeExponents(of: params.gradients, count: count, into: &exponents)
            lastInPlace = true
        }
        // The totals (sample count exact, loss sums for the log, the non-finite flag) ride on the fp32 path.
        try reducer.allReduce(gradients: params.gradients, count: 0, totals: &totals)
        try exponents.withUnsafeMutableBufferPointer { try exact.allReduceMax($0) }
        let finite = totals.nonFinite == 0 && !exponents.withUnsafeBufferPointer(FixedPointGradients.hasNonFinite)
        if finite && totals.samples > 0 {
            // This rank's slots summed on the agreed grid in one pass, packed as the ring carries them (7 bytes:
            // every sum of the job's slots is below 2^55), summed over the ranks, converted back once.
            if packedSums.count != 7 * count { packedSums = [UInt8](repeating: 0, count: 7 * count) }
            slotStore.withUnsafeBufferPointer { store in
                let slots = (0..<computed).map { UnsafePointer(store.baseAddress! + $0 * count) }
                    + (lastInPlace ? [UnsafePointer(params.gradients)] : [])
                packedSums.withUnsafeMutableBytes { packed in
                    FixedPointGradients.quantizeAndPack(slots, count: count, exponents: exponents, precision: precision,
                                                        into: packed.baseAddress!)
                }
            }
            if reducer.worldSize > 1 { try packedSums.withUnsafeMutableBytes { try exact.allReduceSum(packed56: $0) } }
            packedSums.withUnsafeBytes { packed in
                FixedPointGradients.convertPacked(packed.baseAddress!, count: count, exponents: exponents,
                                                  precision: precision, into: params.gradients)
            }
        } else {
            totals.nonFinite = max(totals.nonFinite, 1)
        }
        return try finish(plan: plan, totals: totals, skipped: skipped, nonFiniteBudget: nonFiniteBudget, start: start)
    }

    /// Applies a reduced step (or skips it), advances the cursor, and reports.
    private func finish(
        plan: SamplingPlan, totals: StepTotals, skipped: Int, nonFiniteBudget: Int?, start: UInt64
    ) throws -> StepReport {
        let params = model.parameters
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
        state.skippedSamples += skipped
        let report = StepReport(
            step: state.step, epoch: state.epoch, plan: plan,
            losses: totals.lossSums.map { $0 / max(totals.samples, 1) }, samples: Int(totals.samples),
            skippedSamples: skipped, learningRate: lr, gradientNorm: norm, skippedNonFinite: skip,
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
