import FluxTraining

extension JobSpec {
    /// Steps per epoch on `datasetCount` clips: whole global batches, as `Trainer` counts them.
    public func stepsPerEpoch(datasetCount: Int) -> Int {
        datasetCount / training.globalBatch
    }

    /// The steps the job runs: `steps` when given, else epochs × steps per epoch.
    public func totalSteps(datasetCount: Int) -> Int {
        switch training.length {
        case let .steps(steps): steps
        case let .epochs(epochs): epochs * stepsPerEpoch(datasetCount: datasetCount)
        }
    }

    /// The epochs for `TrainingConfig.epochs`: `epochs` when given; for a `steps` job, the fewest epochs that
    /// cover the steps, ceil(steps / steps per epoch).
    ///
    /// `Trainer` spreads its learning-rate schedule over epochs × steps per epoch, so a `steps` job whose steps
    /// are not a whole number of epochs stops (after `totalSteps(datasetCount:)`) before the cosine reaches
    /// `final_lr`, exactly as `fluxctl train --steps` does. A dataset smaller than one batch counts as one step
    /// an epoch here; `Trainer` rejects it.
    public func epochs(datasetCount: Int) -> Int {
        switch training.length {
        case let .steps(steps):
            let perEpoch = max(1, stepsPerEpoch(datasetCount: datasetCount))
            return (steps + perEpoch - 1) / perEpoch
        case let .epochs(epochs):
            return epochs
        }
    }

    /// The `Trainer`'s settings for this job on `datasetCount` training clips (needed for `steps` jobs: see
    /// `epochs(datasetCount:)`). `checkpointDirectory` stays nil: where checkpoints go is the runner's choice.
    public func trainingConfig(datasetCount: Int) -> TrainingConfig {
        var config = TrainingConfig()
        config.seed = training.seed
        config.globalBatch = training.globalBatch
        config.epochs = epochs(datasetCount: datasetCount)
        config.labelSmoothing = Float(training.labelSmoothing)
        config.optimizer.baseLearningRate = training.learningRate
        config.optimizer.finalLearningRate = training.finalLearningRate
        config.optimizer.warmupIterations = training.warmup
        config.optimizer.weightDecay = training.weightDecay
        config.optimizer.layerDecay = training.layerDecay
        config.optimizer.clipGradNorm = training.clipGrad
        config.checkpointEvery = checkpointEvery
        config.reduction = reduction
        config.slots = training.slots ?? 0
        return config
    }

    /// The Flux grid planner of `train.frames`, `train.resolutions` and `train.tokens` (spec §5).
    /// - Throws: `PlannerError` only for a spec built by hand: `parse` has already checked the ranges.
    public func samplingPlanner() throws(PlannerError) -> SamplingPlanner {
        try SamplingPlanner(
            frames: training.frames, resolutions: training.resolutions, patchSize: modelConfig.patchSize,
            tokenRange: training.tokens)
    }
}
