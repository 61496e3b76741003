import ArgumentParser
import Foundation
import FluxData
import FluxSweep
import FluxTraining
import FluxVideo
import FluxViT

/// `fluxctl eval`: one evaluation setting on one machine, as the official eval script runs it.
struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Score a manifest of videos with trained weights: top-1, top-5, tokens, GMACs.",
        discussion: """
            Each video is scored from --views CxK views (C temporal clips × K spatial crops: 1 is the centre, \
            3 are start, centre and end along the long side after resizing the short side to --size), one \
            forward batch per video; its prediction is the mean of the views' softmax (spec §6). GMACs are \
            billions of multiply-accumulates of one view, as the official tables count GFLOPs (spec §7). \
            Unreadable videos are listed with their manifest line and FFmpeg's reason, and not counted. \
            --weights is a safetensors file or a checkpoint folder (without --model, the checkpoint's \
            state.json names the model).
            """)

    @Option(help: "Model YAML (configs/models/*.yaml) or preset name (fluxvit-small); default: the checkpoint's.")
    var model: String?

    @Option(help: "Weights: a safetensors file (spec §3 names), a checkpoint folder, or a folder of checkpoints (the newest).")
    var weights: String

    @Option(help: "Manifest of videos ('path,label' CSV or 'path label' lines).")
    var data: String

    @Option(help: "Frames sampled per view (T).")
    var frames: Int

    @Option(help: "Crop size in pixels (R), a multiple of the patch size.")
    var size: Int

    @Option(help: "Tokens to keep by token selection (default: all).")
    var budget: Int?

    @Option(help: "Head 0, 1 or 2 (default: the head whose training budget is nearest the kept tokens).")
    var head: Int?

    @Option(help: "Views per video: temporal clips × spatial crops (1 or 3), e.g. 4x3.")
    var views: String = "1x1"

    @Option(help: ArgumentHelp("Folder that relative video paths are under (default: the manifest's folder).", valueName: "dir"))
    var root: String?

    @Option(help: "Compute and decoder threads.")
    var threads: Int = 2

    @Option(help: "Score only the first N videos of the manifest.")
    var limit: Int?

    @Flag(help: "Print one JSON object instead of a report.")
    var json = false

    func validate() throws {
        if threads < 1 { throw ValidationError("--threads must be at least 1") }
        if frames < 1 { throw ValidationError("--frames must be at least 1") }
        if size < 1 { throw ValidationError("--size must be a positive number of pixels") }
        if let limit, limit < 1 { throw ValidationError("--limit must be at least 1") }
        _ = try viewCounts()
    }

    /// (clips, crops) from "CxK" (or "C×K").
    private func viewCounts() throws -> (clips: Int, crops: Int) {
        let parts = views.lowercased().split(whereSeparator: { $0 == "x" || $0 == "×" }).map { Int($0) }
        guard parts.count == 2, let clips = parts[0], let crops = parts[1], clips >= 1, crops == 1 || crops == 3 else {
            throw ValidationError("--views takes CLIPSxCROPS with at least 1 clip and 1 or 3 crops (e.g. 1x1, 4x3), got '\(views)'")
        }
        return (clips, crops)
    }

    func run() throws {
        try reportingErrors { try evaluate() }
    }

    private func evaluate() throws {
        let manifest = try Manifest.load(path: data, root: root)
        let trained = try TrainedModel.load(model: model, weights: weights, threads: threads)
        let (clips, crops) = try viewCounts()
        let setting = ViewSetting(frames: frames, size: size, budget: budget, head: head, clips: clips, crops: crops)
        let tokens = try VideoEvaluator.tokens(model: trained.model, setting: setting)
        let count = min(limit ?? manifest.entries.count, manifest.entries.count)

        let line = ProgressLine(total: count)
        let interactive = isatty(STDERR_FILENO) != 0
        let start = Date()
        let scores = try VideoEvaluator.scores(
            model: trained.model, manifest: manifest, videos: Array(0..<count), setting: setting,
            decoderThreads: threads
        ) { done, total in
            let text = line.render(done: done, unit: "videos", elapsed: Date().timeIntervalSince(start))
            if interactive {
                FileHandle.standardError.write(Data("\r\(text)".utf8))
            } else if done % max(1, total / 10) == 0 || done == total {
                FileHandle.standardError.write(Data("\(text)\n".utf8))
            }
        }
        let seconds = Date().timeIntervalSince(start)
        if interactive { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }

        let metrics = CellMetrics(scores: scores)
        let gmacs = MACCount.forwardGMACs(config: trained.model.config, sampledTokens: tokens.sampled, keptTokens: tokens.kept)
        if json {
            let object: [String: Any] = [
                "top1": metrics.top1, "top5": metrics.top5, "videos": metrics.videos,
                "unreadable": scores.unreadable.map { ["line": $0.line, "path": $0.path, "reason": $0.reason] as [String: Any] },
                "sampled_tokens": tokens.sampled, "kept_tokens": tokens.kept, "head": tokens.head,
                "gmacs": gmacs, "views": setting.views, "seconds": seconds,
                "per_class": metrics.perClass.map { $0.map { $0 as Any } ?? NSNull() },
            ]
            let encoded = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            print(String(decoding: encoded, as: UTF8.self))
            return
        }
        let percent = { (x: Double) in String(format: "%6.2f%%", x * 100) }
        print("\(data): \(frames)×\(size)², \(clips)×\(crops) views, weights \(trained.weightsPath)")
        print("top-1    \(percent(metrics.top1))")
        print("top-5    \(percent(metrics.top5))")
        print("videos   \(metrics.videos) scored, \(scores.unreadable.count) unreadable")
        for video in scores.unreadable {
            print("  line \(video.line) '\(video.path)': \(video.reason)")
        }
        print("tokens   \(tokens.kept) of \(tokens.sampled) kept\(budget.map { " (budget \($0))" } ?? ""), head \(tokens.head)")
        print("GMACs    \(String(format: "%.3f", gmacs)) per view × \(setting.views) views = \(String(format: "%.3f", gmacs * Double(setting.views))) per video")
        print("seconds  \(String(format: "%.2f", seconds))")
    }
}
