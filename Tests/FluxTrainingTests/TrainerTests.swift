import Foundation
import FluxTensor
import FluxTestKit
import FluxTraining
import FluxViT
import Testing

@Suite struct TrainerTests {
    static func tinyConfig() throws -> FluxViTConfig {
        try FluxViTConfig.load(path: GradientParityTests.repository.appendingPathComponent("configs/models/tiny-test.yaml").path)
    }

    static func planner(fixed: Bool = false) throws -> SamplingPlanner {
        fixed
            ? try SamplingPlanner(frames: [4], resolutions: [8], patchSize: 4, tokenRange: 1...1000)
            : try SamplingPlanner(frames: [2, 4, 6], resolutions: [8, 12], patchSize: 4, tokenRange: 8...60)
    }

    static func trainer(seed: UInt64 = 1, directory: URL? = nil, source: SyntheticClips? = nil,
                        configure: (inout TrainingConfig) -> Void = { _ in }) throws -> Trainer {
        let model = try FluxViTModel(config: try tinyConfig(), threads: 2)
        Initialization.initialize(model.parameters, seed: seed)
        model.parametersChanged()
        var config = TrainingConfig()
        config.seed = seed
        config.globalBatch = 4
        config.epochs = 3
        config.optimizer.warmupIterations = 2
        config.optimizer.clipGradNorm = 1
        config.checkpointDirectory = directory
        configure(&config)
        let clips = source ?? SyntheticClips(count: 8, classes: 5, seed: seed)
        return try Trainer(model: model, config: config, planner: try planner(), source: clips)
    }

    static func temporaryDirectory() -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("flux-ckpt-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    static func parameters(_ trainer: Trainer) -> [Float] {
        Array(UnsafeBufferPointer(start: trainer.model.parameters.values, count: trainer.model.parameters.count))
    }

    @Test func resume_threeSaveLoadThree_isBitIdenticalToSixStraight() throws {
        let straight = try Self.trainer()
        try straight.train(steps: 6)

        let directory = Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let first = try Self.trainer(directory: directory)
        try first.train(steps: 3)
        try first.saveCheckpoint()
        let second = try Self.trainer(seed: 1, directory: directory)
        #expect(try second.resumeIfPossible())
        #expect(second.state.step == 3)
        try second.train(steps: 3)
        #expect(Self.parameters(second) == Self.parameters(straight))
        #expect(second.state == straight.state)
    }

    @Test func checkpoints_keepTheNewestK_andLeaveNoTemporaryFolders() throws {
        let directory = Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let trainer = try Self.trainer(directory: directory) { $0.checkpointEvery = 1; $0.keepCheckpoints = 2 }
        try trainer.train(steps: 5)
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted()
        #expect(names == [Checkpoint.folderName(step: 4), Checkpoint.folderName(step: 5)])
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.appendingPathComponent(names[1]).path).sorted()
        #expect(files == ["model.safetensors", "optimizer.safetensors", "state.json"])
    }

    @Test func checkpoint_ofAnotherConfig_namesTheTensors_andChangesNothing() throws {
        let directory = Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let trainer = try Self.trainer(directory: directory)
        try trainer.train(steps: 1)
        let folder = try #require(try trainer.saveCheckpoint())

        var other = try Self.tinyConfig()
        other.numClasses = 7
        let model = try FluxViTModel(config: other, threads: 1)
        let optimizer = AdamW(store: model.parameters, config: OptimizerConfig())
        let before = Array(UnsafeBufferPointer(start: model.parameters.values, count: model.parameters.count))
        do {
            _ = try Checkpoint.load(from: folder, model: model, optimizer: optimizer)
            Issue.record("loading a checkpoint of another config must fail")
        } catch {
            #expect("\(error)".contains("head.0.weight: expected [7, 32], file has [5, 32]"), "\(error)")
        }
        #expect(Array(UnsafeBufferPointer(start: model.parameters.values, count: model.parameters.count)) == before)

        // A truncated checkpoint: a typed error, nothing overwritten.
        let weights = folder.appendingPathComponent("model.safetensors")
        let data = try Data(contentsOf: weights)
        try data.prefix(data.count / 2).write(to: weights)
        let same = try Self.trainer(directory: directory)
        let untouched = Self.parameters(same)
        #expect(throws: CheckpointError.self) { try same.resume(from: folder) }
        #expect(Self.parameters(same) == untouched)
    }

    @Test func nonFiniteLoss_skipsTheStepEverywhere_thenFailsAfterTheLimit() throws {
        let source = SyntheticClips(count: 8, classes: 5, seed: 1)
        source.amplitude = .nan
        let trainer = try Self.trainer(source: source) { $0.maxNonFiniteStreak = 3 }
        let before = Self.parameters(trainer)
        let first = try trainer.step()
        #expect(first.skippedNonFinite)
        #expect(first.nonFiniteBudget == 0, "the largest budget runs first and sees the NaN")
        #expect(Self.parameters(trainer) == before, "a skipped step keeps the last good state")
        _ = try trainer.step()
        #expect(throws: TrainingError.nonFiniteStreak(steps: 3, limit: 3)) { _ = try trainer.step() }
        #expect(trainer.state.nonFiniteSteps == 3)
    }

    @Test func unreadableSamples_areSkippedAndCounted_neverReplaced() throws {
        let source = SyntheticClips(count: 8, classes: 5, seed: 1)
        let firstBatch = source.permutation(epoch: 0).prefix(4)
        source.unreadable = [firstBatch.first!]
        let trainer = try Self.trainer(source: source)
        let report = try trainer.step()
        #expect(report.samples == 3 && report.skippedSamples == 1)
        #expect(trainer.state.skippedSamples == 1)
    }

    @Test func labelsOutOfRange_areTypedErrors() throws {
        let model = try FluxViTModel(config: try Self.tinyConfig(), threads: 1)
        let video = Tensor(shape: [2, 3, 2, 8, 8])
        #expect(throws: TrainingError.labelOutOfRange(label: 9, classes: 5)) {
            try FluxStep.accumulateGradients(model: model, video: video, labels: [1, 9], budgets: [24, 16, 8], labelSmoothing: 0.1)
        }
        #expect(throws: TrainingError.labelCount(labels: 1, clips: 2)) {
            try FluxStep.accumulateGradients(model: model, video: video, labels: [1], budgets: [24, 16, 8], labelSmoothing: 0.1)
        }
    }

    @Test func gradientSums_doNotDependOnHowTheBatchIsSplit() throws {
        let model = try FluxViTModel(config: try Self.tinyConfig(), threads: 2)
        Initialization.initialize(model.parameters, seed: 4)
        model.parametersChanged()
        let clips = SyntheticClips(count: 4, classes: 5, seed: 4)
        let samples = (0..<4).map { clips.clip(index: $0, frames: 4, size: 12) }
        let labels = [0, 1, 2, 3]
        let p = model.parameters
        p.gradients.update(repeating: 0, count: p.count)
        _ = try FluxStep.accumulateGradients(model: model, video: .stacked(samples), labels: labels, budgets: [24, 16, 8], labelSmoothing: 0.1)
        let whole = Array(UnsafeBufferPointer(start: p.gradients, count: p.count))
        p.gradients.update(repeating: 0, count: p.count)
        _ = try FluxStep.accumulateGradients(model: model, video: .stacked(Array(samples[0..<2])), labels: [0, 1], budgets: [24, 16, 8], labelSmoothing: 0.1)
        _ = try FluxStep.accumulateGradients(model: model, video: .stacked(Array(samples[2..<4])), labels: [2, 3], budgets: [24, 16, 8], labelSmoothing: 0.1)
        let split = Array(UnsafeBufferPointer(start: p.gradients, count: p.count))
        expectClose(Tensor(shape: [p.count], scalars: split), Tensor(shape: [p.count], scalars: whole), "gradient sums, 4 vs 2 + 2", tolerance: 1e-5)
    }

    @Test func tinyModel_overfitsAHandfulOfClips() throws {
        let model = try FluxViTModel(config: try Self.tinyConfig(), threads: 2)
        Initialization.initialize(model.parameters, seed: 7)
        model.parametersChanged()
        var config = TrainingConfig()
        config.seed = 7
        config.globalBatch = 4
        config.epochs = 200
        config.labelSmoothing = 0
        config.optimizer.baseLearningRate = 3e-3
        config.optimizer.finalLearningRate = 1e-4
        config.optimizer.warmupIterations = 5
        config.optimizer.weightDecay = 0
        let clips = SyntheticClips(count: 4, classes: 4, seed: 7)
        let trainer = try Trainer(model: model, config: config, planner: try Self.planner(fixed: true), source: clips)
        var losses: [Double] = []
        try trainer.train(progress: { losses.append($0.losses[0]) })  // head 0's cross-entropy
        let first = losses.prefix(3).reduce(0, +) / 3, last = losses.suffix(3).reduce(0, +) / 3
        #expect(last < 0.1 * first, "cross-entropy fell from \(first) to \(last)")
        let video = Tensor.stacked((0..<4).map { clips.clip(index: $0, frames: 4, size: 8) })
        let out = try model.forward(video: video, budget: 24, head: 0)
        let predictions = (0..<4).map { b in (0..<5).max { out.logits.scalars[b * 5 + $0] < out.logits.scalars[b * 5 + $1] }! }
        #expect(predictions == [0, 1, 2, 3], "training top-1 must reach 100%")
    }
}

@Suite struct PlannerAndRandomTests {
    @Test func planner_rejectsRangesNoGridSatisfies() {
        #expect(throws: PlannerError.self) {
            try SamplingPlanner(frames: [2], resolutions: [8], patchSize: 4, tokenRange: 100...200)
        }
        #expect(throws: PlannerError.resolutionNotMultiple(resolution: 10, patchSize: 4)) {
            try SamplingPlanner(frames: [2], resolutions: [10], patchSize: 4, tokenRange: 1...200)
        }
        #expect(throws: Never.self) { try SamplingPlanner.official() }
    }

    @Test func plan_isAPureFunctionOfSeedEpochStep_andStaysInRange() throws {
        let planner = try SamplingPlanner.official()
        var seen = Set<Int>()
        for step in 0..<200 {
            let plan = planner.plan(seed: 3, epoch: 1, step: step)
            #expect(plan == planner.plan(seed: 3, epoch: 1, step: step))
            #expect((2048...8192).contains(plan.tokens))
            seen.insert(plan.frames * 1000 + plan.resolution)
        }
        #expect(seen.count > 10, "the grid must vary across steps")
        #expect(planner.plan(seed: 3, epoch: 1, step: 0) != planner.plan(seed: 4, epoch: 1, step: 0)
                || planner.plan(seed: 3, epoch: 1, step: 1) != planner.plan(seed: 4, epoch: 1, step: 1))
    }

    @Test func globalBatch_isSplitIntoNearEqualRankSlices_coveringItOnce() throws {
        let clips = SyntheticClips(count: 20, classes: 3, seed: 2)
        let plan = SamplingPlan(frames: 2, resolution: 8, tokens: 8)
        for world in 1...4 {
            var labels: [Int] = []
            for rank in 0..<world {
                let batch = try clips.batch(epoch: 0, step: 1, rank: rank, worldSize: world, globalBatch: 7, plan: plan)
                #expect(abs(batch.samples.count - 7 / world) <= 1)
                labels += batch.samples.map(\.label)
            }
            let whole = try clips.batch(epoch: 0, step: 1, rank: 0, worldSize: 1, globalBatch: 7, plan: plan)
            #expect(labels == whole.samples.map(\.label))
        }
    }
}

@Suite struct InitializationTests {
    @Test func sinCosPositionTable_matchesTheReference() throws {
        let name = "init_stats.safetensors"
        let golden = try Goldens.load(name, in: GradientParityTests.folder)
        let small = try FluxViTConfig.preset("fluxvit-small")
        var table = [Float](repeating: 0, count: small.posEmbedRows * small.embedDim)
        table.withUnsafeMutableBufferPointer { Initialization.sinCosTable(config: small, into: $0.baseAddress!) }
        let C = small.embedDim
        let head = Tensor(shape: [41, C], scalars: Array(table[0..<(41 * C)]))
        let tail = Tensor(shape: [5, C], scalars: Array(table[((small.posEmbedRows - 5) * C)...]))
        // The reference computes the table in float32 step by step; compare to 1e-5 absolute.
        expectClose(head, try golden.float("pos_embed.head", in: name), "pos_embed rows 0…40", tolerance: 1e-5)
        expectClose(tail, try golden.float("pos_embed.tail", in: name), "pos_embed last rows", tolerance: 1e-5)

        let tinyTrain = try FluxViTConfig.load(
            path: GradientParityTests.repository.appendingPathComponent("configs/models/tiny-train.yaml").path)
        let store = ParameterStore(config: tinyTrain)
        Initialization.initialize(store, seed: 3)
        expectClose(store.tensor("pos_embed"), try golden.float("pos_embed.tiny_train", in: name), "tiny-train pos_embed", tolerance: 1e-5)
    }
}

@Suite struct EvaluationTests {
    @Test func accuracy_countsTop1AndTop5PerBudget_andSkipsUnreadable() throws {
        let model = try FluxViTModel(config: try TrainerTests.tinyConfig(), threads: 1)
        Initialization.initialize(model.parameters, seed: 2)
        model.parametersChanged()
        let clips = SyntheticClips(count: 6, classes: 5, seed: 2)
        let budgets = model.config.budgets
        // The model's own top class per sample and budget, one sample at a time (independent of the batching).
        let predicted: [[Int]] = try (0..<6).map { i in
            let clip = clips.clip(index: i, frames: 4, size: 8)
            return try budgets.indices.map { j in
                let logits = try model.forward(video: clip.reshaped([1] + clip.shape), budget: budgets[j], head: j).logits.scalars
                return logits.indices.max { logits[$0] < logits[$1] || (logits[$0] == logits[$1] && $0 > $1) }!
            }
        }
        // Even samples are labelled with budget 0's prediction (top-1 right), odd ones with another class.
        let labels = (0..<6).map { $0 % 2 == 0 ? predicted[$0][0] : (predicted[$0][0] + 1) % 5 }
        let (accuracies, unreadable) = try Evaluation.accuracy(model: model, count: 6, batch: 4) { i in
            i == 3 ? nil : Sample(clip: clips.clip(index: i, frames: 4, size: 8), label: labels[i])
        }
        #expect(unreadable == 1)
        #expect(accuracies.map(\.budget) == [24, 16, 8] && accuracies.map(\.head) == [0, 1, 2])
        let readable = [0, 1, 2, 4, 5]
        for (j, accuracy) in accuracies.enumerated() {
            let expected = Double(readable.filter { predicted[$0][j] == labels[$0] }.count) / 5
            #expect(accuracy.samples == 5 && accuracy.top1 == expected, "budget \(budgets[j]): top-1 \(accuracy.top1), expected \(expected)")
            #expect(accuracy.top5 == 1, "5 classes: top-5 is always right")
        }
        #expect(accuracies[0].top1 == 0.6, "samples 0, 2, 4 right at budget 0, samples 1 and 5 wrong")

        let path = FileManager.default.temporaryDirectory.appendingPathComponent("flux-metrics-\(UUID().uuidString).jsonl").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let log = try MetricsLog(path: path)
        log.append(step: 3, accuracies: accuracies)
        let line = try #require(try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").first)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(json["kind"] as? String == "validation" && json["step"] as? Int == 3)
    }
}

@Suite struct ProgressLineTests {
    @Test func render_showsStepBarLossRateAndETA() {
        let line = ProgressLine(total: 200, width: 10).render(step: 50, loss: 1.23456, clipsPerSecond: 3.21, elapsed: 30)
        #expect(line == "step  50/200 ██········ loss 1.2346 · 3.2 clips/s · ETA 1m30s")
        // Resumed after step 40: 10 steps in 30 s, 150 to go.
        let resumed = ProgressLine(total: 200, width: 10, firstStep: 40).render(step: 50, loss: 1, clipsPerSecond: 1, elapsed: 30)
        #expect(resumed.hasSuffix("ETA 7m30s"), "\(resumed)")
        #expect(ProgressLine.duration(3725) == "1h02m")
        #expect(ProgressLine.duration(7) == "7s")
    }

    @Test func render_videos_showsCountBarRateAndETA() {
        let line = ProgressLine(total: 80, width: 8).render(done: 20, unit: "videos", elapsed: 10)
        #expect(line == "videos 20/80 ██······ 2.0 videos/s · ETA 30s")
    }

    @Test func train_stopsBetweenStepsWhenAsked() throws {
        let trainer = try TrainerTests.trainer()
        var calls = 0
        let ran = try trainer.train(shouldStop: { calls += 1; return calls > 2 })
        #expect(ran == 2 && trainer.state.step == 2)
    }
}
