import ArgumentParser
import Foundation
import FluxTensor
import FluxViT

/// `flux-bench forward`: one FluxViT forward pass, batch 1, fp32, random weights and clip.
struct ForwardBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "forward", abstract: "Time FluxViT's forward pass (median of --runs after --warmup).")

    @Option(help: "Model preset (fluxvit-small, fluxvit-base) or a model YAML path.")
    var preset: String = "fluxvit-small"
    @Option(help: "Frames.") var frames: Int = 8
    @Option(help: "Square frame size in pixels.") var size: Int = 224
    @Option(help: "Token budget (default: all tokens).") var budget: Int?
    @Option(help: "Batch size.") var batch: Int = 1
    @Option(help: "Compute threads.") var threads: Int = 2
    @Option(help: "Timed runs (median reported).") var runs: Int = 5
    @Option(help: "Untimed warm-up runs.") var warmup: Int = 1
    @Flag(help: "Print one JSON object.") var json = false

    func run() throws {
        let config = preset.hasSuffix(".yaml") ? try FluxViTConfig.load(path: preset) : try FluxViTConfig.preset(preset)
        let model = try FluxViTModel(config: config, threads: threads)
        Initialization.initialize(model.parameters, seed: 0)
        model.parametersChanged()
        var random = KeyedRandom(seed: 1, key: "bench-clip")
        let clip = Tensor(
            shape: [batch, 3, frames, size, size],
            scalars: (0..<(batch * 3 * frames * size * size)).map { _ in random.normal() })
        var last: ForwardOutput?
        let (median, all) = try medianSeconds(runs: runs, warmup: warmup) {
            last = try model.forward(video: clip, budget: budget)
        }
        let out = last!
        let gmacs = Double(batch) * MACCount.forwardGMACs(config: config, sampledTokens: out.sampledTokens, keptTokens: out.keptTokens)
        let rate = 2 * gmacs / median
        if json {
            try printJSON([
                "bench": "forward", "preset": preset, "median_s": median, "runs_s": all, "gmacs": gmacs,
                "gflop_per_s": rate, "threads": threads, "batch": batch, "frames": frames, "size": size,
                "sampled_tokens": out.sampledTokens, "tokens": out.keptTokens, "budget": budget as Any? ?? NSNull(),
                "kernels": KernelDispatch.usesAVX2 ? "avx2" : "portable", "peak_rss_bytes": peakResidentBytes(),
            ])
        } else {
            print("""
                forward \(preset) batch \(batch) · \(frames)×\(size)² · \(out.keptTokens) of \(out.sampledTokens) tokens · \(threads) threads · kernels \(KernelDispatch.usesAVX2 ? "AVX2+FMA" : "portable")
                  median \(String(format: "%.3f", median)) s over \(runs) runs · \(String(format: "%.1f", gmacs)) GMACs · \(String(format: "%.1f", rate)) GFLOP/s
                """)
        }
    }
}
