import ArgumentParser
import Foundation
import FluxTensor
import FluxTraining
import FluxViT

/// `flux-bench train-step`: one full Flux training step (three budgets forward and backward, AdamW).
struct TrainStepBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train-step", abstract: "Time one Flux training step and report peak resident memory.")

    @Option(help: "Model preset or model YAML path.") var preset: String = "fluxvit-small"
    @Option(help: "Frames.") var frames: Int = 8
    @Option(help: "Square frame size in pixels.") var size: Int = 224
    @Option(help: "The three training budgets, largest first.") var budgets: String = "2048,1024,512"
    @Option(help: "Batch size.") var batch: Int = 1
    @Option(help: "Compute threads.") var threads: Int = 2
    @Option(help: "Timed steps (median reported).") var runs: Int = 5
    @Option(help: "Untimed warm-up steps.") var warmup: Int = 1
    @Flag(help: "Print one JSON object.") var json = false

    func run() throws {
        var config = preset.hasSuffix(".yaml") ? try FluxViTConfig.load(path: preset) : try FluxViTConfig.preset(preset)
        let budgetList = budgets.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard budgetList.count == 3 else { throw ValidationError("--budgets needs three numbers, largest first") }
        config.budgets = budgetList
        let model = try FluxViTModel(config: config, threads: threads)
        Initialization.initialize(model.parameters, seed: 0)
        model.parametersChanged()
        let optimizer = AdamW(store: model.parameters, config: OptimizerConfig())
        let clips = SyntheticClips(count: batch, classes: config.numClasses, seed: 1)
        let video = Tensor.stacked((0..<batch).map { clips.clip(index: $0, frames: frames, size: size) })
        let labels = (0..<batch).map { $0 % config.numClasses }
        let p = model.parameters
        var loss = 0.0
        var residentAfterStep: [Int] = []
        let (median, all) = try medianSeconds(runs: runs, warmup: warmup) {
            p.gradients.update(repeating: 0, count: p.count)
            let result = try FluxStep.accumulateGradients(
                model: model, video: video, labels: labels, budgets: budgetList, labelSmoothing: 0.1)
            let inverse = 1 / Float(batch)
            for i in 0..<p.count { p.gradients[i] *= inverse }
            optimizer.update(learningRate: 1e-4)
            model.parametersChanged()
            loss = result.meanTotal
            residentAfterStep.append(residentBytes())
        }
        let rss = peakResidentBytes()
        // What `step_hashes` adds to rank 0's step: the SHA-256 of every parameter.
        let (hashMedian, _) = try medianSeconds(runs: runs, warmup: 1) { _ = p.sha256() }
        if json {
            try printJSON([
                "bench": "train_step", "preset": preset, "median_s": median, "runs_s": all, "peak_rss_bytes": rss,
                "frames": frames, "size": size, "budgets": budgetList, "batch": batch, "threads": threads, "loss": loss,
                "rss_after_step_bytes": residentAfterStep, "parameter_sha256_s": hashMedian, "parameters": p.count,
            ])
        } else {
            print("""
                train-step \(preset) batch \(batch) · \(frames)×\(size)² · budgets \(budgetList) · \(threads) threads
                  median \(String(format: "%.3f", median)) s over \(runs) steps · peak RSS \(String(format: "%.2f", Double(rss) / 1e9)) GB · loss \(String(format: "%.3f", loss))
                  parameter SHA-256 (step_hashes) \(String(format: "%.3f", hashMedian)) s for \(p.count) parameters
                """)
        }
    }
}
