import ArgumentParser
import Dispatch
import Foundation
import FluxData
import FluxVideo
import FluxTensor
import FluxTraining
import FluxViT
import Synchronization

/// `fluxctl train --local`: the training core in this process, the same loop the workers run.
struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a FluxViT model in this process (--local).",
        discussion: """
            Checkpoints go to OUT/checkpoints (the newest 3 kept), metrics to OUT/metrics.jsonl (one JSON \
            object a line). Ctrl-C saves a checkpoint and stops cleanly; --resume continues from the newest one. \
            At the end, validation top-1 is printed for each training budget with its head. \
            --train and --val are manifests of videos (path,label CSV; paths relative to --root, by default \
            the manifest's folder); unreadable videos are skipped and reported. --synthetic N trains on N \
            reproducible random clips instead (no video needed).
            """)

    @Flag(help: "Train in this process (cluster training arrives with the coordinator).") var local = false
    @Option(help: "Model YAML (configs/models/*.yaml).") var model: String
    @Option(help: "Training manifest (path,label CSV).") var train: String?
    @Option(help: "Validation manifest.") var val: String?
    @Option(help: "Dataset root (default: the manifest's folder).") var root: String?
    @Option(help: "Train on N synthetic clips instead of a manifest (validation: N/4 others).") var synthetic: Int?
    @Option(help: "Output folder for checkpoints and the metrics log.") var out: String = "flux-run"
    @Flag(help: "Continue from the newest checkpoint in OUT.") var resume = false
    @Option(help: "Stop after this many steps (default: all epochs).") var steps: Int?
    @Option(help: "Epochs.") var epochs: Int = 1
    @Option(help: "Global batch (clips per step).") var batch: Int = 4
    @Option(help: "Flux frame counts to draw from, e.g. 6,8,10 (default: the model's num_frames).") var frames: String?
    @Option(help: "Flux resolutions to draw from (multiples of patch_size), e.g. 112,140.") var resolutions: String?
    @Option(help: "Token range min,max for the drawn grid.") var tokens: String = "1,1000000"
    @Option(help: "Training budgets, largest first (default: the model's).") var budgets: String?
    @Option(help: "Base learning rate.") var lr: Double = 1e-3
    @Option(help: "Final learning rate of the cosine schedule.") var finalLr: Double = 1e-6
    @Option(help: "Warm-up iterations.") var warmup: Int = 5
    @Option(help: "Weight decay.") var weightDecay: Double = 0.05
    @Option(help: "Layer-wise learning-rate decay.") var layerDecay: Double = 0.75
    @Option(help: "Clip the global gradient norm to this.") var clipGrad: Double?
    @Option(help: "Label smoothing.") var labelSmoothing: Float = 0.1
    @Option(help: "Checkpoint every N steps (0: only at the end and on Ctrl-C).") var checkpointEvery: Int = 0
    @Option(help: "Also validate every N steps (0: only at the end); each result is a metrics line.") var valEvery: Int = 0
    @Flag(name: .customLong("no-flip"), help: "No random horizontal flips (for labels that depend on left and right, e.g. motion direction).") var noFlip = false
    @Option(help: "Smallest area fraction of the random resized crop.") var cropScale: Double = 0.08
    @Option(help: "Seed.") var seed: UInt64 = 0
    @Option(help: "Compute threads.") var threads: Int = 2

    func validate() throws {
        guard local else { throw ValidationError("only --local training exists so far: add --local") }
        if train == nil && synthetic == nil { throw ValidationError("give --train MANIFEST (with --val) or --synthetic N") }
        if let synthetic, synthetic < batch { throw ValidationError("--synthetic \(synthetic) is fewer clips than one --batch \(batch)") }
        if valEvery < 0 { throw ValidationError("--val-every must be 0 (only at the end) or a positive step count") }
    }

    func run() throws {
        do {
            try runTraining()
        } catch {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            throw ExitCode.failure
        }
    }

    private func list(_ text: String, _ name: String) throws -> [Int] {
        let values = text.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !values.isEmpty, values.allSatisfy({ $0 != nil }) else { throw ValidationError("\(name) must be integers separated by commas, got '\(text)'") }
        return values.map { $0! }
    }

    private func runTraining() throws {
        var modelConfig = try FluxViTConfig.load(path: model)
        if let budgets { modelConfig.budgets = try list(budgets, "--budgets") }
        try modelConfig.validate(source: "'\(model)' with --budgets")
        let net = try FluxViTModel(config: modelConfig, threads: threads)
        Initialization.initialize(net.parameters, seed: seed)
        net.parametersChanged()

        let tokenRange = try list(tokens, "--tokens")
        guard tokenRange.count == 2, tokenRange[0] <= tokenRange[1] else { throw ValidationError("--tokens takes min,max") }
        let planner = try SamplingPlanner(
            frames: try list(frames ?? "\(modelConfig.numFrames)", "--frames"), resolutions: try list(resolutions ?? "\(modelConfig.imgSize)", "--resolutions"),
            patchSize: modelConfig.patchSize, tokenRange: tokenRange[0]...tokenRange[1])

        var config = TrainingConfig()
        config.seed = seed
        config.globalBatch = batch
        config.epochs = epochs
        config.labelSmoothing = labelSmoothing
        config.optimizer.baseLearningRate = lr
        config.optimizer.finalLearningRate = finalLr
        config.optimizer.warmupIterations = warmup
        config.optimizer.weightDecay = weightDecay
        config.optimizer.layerDecay = layerDecay
        config.optimizer.clipGradNorm = clipGrad
        config.checkpointEvery = checkpointEvery
        let outURL = URL(fileURLWithPath: out)
        config.checkpointDirectory = outURL.appendingPathComponent("checkpoints")
        try FileManager.default.createDirectory(at: outURL, withIntermediateDirectories: true)

        let source: ClipSource
        var videos: VideoDataset?
        var validationVideos: VideoDataset?
        if let train {
            let manifest = try Manifest.load(path: train, root: root)
            try manifest.validate(classCount: modelConfig.numClasses)
            let dataset = VideoDataset(manifest: manifest, seed: seed, augment: true, flip: !noFlip,
                                       cropScale: cropScale...1)
            videos = dataset
            source = dataset
            if let val {
                let valManifest = try Manifest.load(path: val, root: root)
                try valManifest.validate(classCount: modelConfig.numClasses)
                validationVideos = VideoDataset(manifest: valManifest, seed: seed, augment: false)
            }
        } else {
            source = SyntheticClips(count: synthetic ?? 0, classes: modelConfig.numClasses, seed: seed)
        }
        let count = source.count
        let trainer = try Trainer(model: net, config: config, planner: planner, source: source)
        if resume {
            guard try trainer.resumeIfPossible() else { throw TrainCommandError.nothingToResume(folder: config.checkpointDirectory!.path) }
            note("resumed from step \(trainer.state.step)")
        }
        let metrics = try MetricsLog(path: outURL.appendingPathComponent("metrics.jsonl").path)

        // Validation: the middle feasible grid, one test clip a video (or N/4 other synthetic clips).
        let validationPlan = planner.feasible[planner.feasible.count / 2]
        let validate: (() throws -> [Evaluation.Accuracy])?
        if let validationVideos {
            validate = {
                try Evaluation.accuracy(model: net, count: validationVideos.count, batch: batch) { i in
                    validationVideos.testSample(index: i, frames: validationPlan.frames, size: validationPlan.resolution)
                }.accuracies
            }
        } else if train == nil {
            let validation = SyntheticClips(count: max(count / 4, batch), classes: modelConfig.numClasses, seed: seed &+ 1_000_003)
            validate = {
                try Evaluation.accuracy(model: net, count: validation.count, batch: batch) { i in
                    Sample(clip: validation.clip(index: i, frames: validationPlan.frames, size: validationPlan.resolution),
                           label: i % modelConfig.numClasses)
                }.accuracies
            }
        } else {
            validate = nil
        }

        let stop = StopFlag()
        signal(SIGINT, SIG_IGN)
        let interrupt = DispatchSource.makeSignalSource(signal: SIGINT, queue: .global())
        interrupt.setEventHandler { stop.set() }
        interrupt.resume()
        defer { interrupt.cancel(); signal(SIGINT, SIG_DFL) }

        let total = steps.map { min($0, trainer.totalSteps - trainer.state.step) } ?? (trainer.totalSteps - trainer.state.step)
        note("training \(modelConfig.embedDim)-wide, depth \(modelConfig.depth), on \(count) \(train == nil ? "synthetic clips" : "videos"): \(total) steps of \(batch) clips, budgets \(modelConfig.budgets)")
        let line = ProgressLine(total: trainer.state.step + total, firstStep: trainer.state.step)
        let interactive = isatty(STDERR_FILENO) != 0
        let start = Date()
        var clips = 0
        var validationSeconds = 0.0   // kept out of clips/s and the ETA
        try trainer.train(steps: total, shouldStop: { stop.isSet }) { report in
            metrics.append(report)
            clips += report.samples
            let training = Date().timeIntervalSince(start) - validationSeconds
            let text = line.render(step: report.step + 1, loss: report.meanLoss,
                                   clipsPerSecond: Double(clips) / training, elapsed: training)
            if interactive {
                FileHandle.standardError.write(Data("\r\(text)".utf8))
            } else if (report.step + 1) % 10 == 0 || report.step + 1 == line.total {
                FileHandle.standardError.write(Data("\(text)\n".utf8))
            }
            if valEvery > 0, let validate, (report.step + 1) % valEvery == 0, report.step + 1 < line.total {
                // Between steps the model holds the weights just updated; the metrics line keeps the curve.
                let validationStart = Date()
                let accuracies = try validate()
                validationSeconds += Date().timeIntervalSince(validationStart)
                metrics.append(step: report.step + 1, accuracies: accuracies)
                let top1 = accuracies.map { String(format: "%.1f%%", $0.top1 * 100) }.joined(separator: " / ")
                if interactive { FileHandle.standardError.write(Data("\n".utf8)) }
                note("validation after step \(report.step + 1): top-1 \(top1) (budgets \(accuracies.map(\.budget)))")
            }
            if report.skippedNonFinite {
                note("step \(report.step): non-finite loss or gradient at budget \(report.nonFiniteBudget.map(String.init) ?? "?"); step skipped")
            }
        }
        if interactive { FileHandle.standardError.write(Data("\n".utf8)) }
        if let folder = try trainer.saveCheckpoint() { note("checkpoint: \(folder.path)") }
        if stop.isSet {
            note("stopped by Ctrl-C after step \(trainer.state.step); continue with --resume")
            return
        }

        if let videos, !videos.unreadable.isEmpty {
            note("\(videos.unreadable.count) unreadable video(s) skipped, e.g. line \(videos.unreadable[0].line) '\(videos.unreadable[0].path)': \(videos.unreadable[0].reason)")
        }
        guard let validate else {
            note("no --val manifest: skipping validation")
            return
        }
        let accuracies = try validate()
        metrics.append(step: trainer.state.step, accuracies: accuracies)
        print("validation (\(accuracies.first?.samples ?? 0) clips, \(validationPlan.frames)×\(validationPlan.resolution)²):")
        for a in accuracies {
            print("  budget \(String(a.budget).padding(toLength: 6, withPad: " ", startingAt: 0)) head \(a.head)  top-1 \(String(format: "%5.1f", a.top1 * 100))%  top-5 \(String(format: "%5.1f", a.top5 * 100))%")
        }
    }

    private func note(_ text: String) { FileHandle.standardError.write(Data("\(text)\n".utf8)) }
}

/// Set from the signal handler's queue, read by the training loop between steps.
final class StopFlag: Sendable {
    private let flag = Atomic<Bool>(false)
    func set() { flag.store(true, ordering: .relaxed) }
    var isSet: Bool { flag.load(ordering: .relaxed) }
}

enum TrainCommandError: Error, CustomStringConvertible {
    case nothingToResume(folder: String)

    var description: String {
        switch self {
        case let .nothingToResume(f): "--resume: no checkpoint in '\(f)'; run without --resume to start"
        }
    }
}
