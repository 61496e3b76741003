import ArgumentParser
import Foundation
import FluxData
import FluxTensor
import FluxViT

/// `fluxctl infer`: one forward pass on a clip, top-5 classes, optional outputs file.
struct Infer: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a FluxViT model on a video or a clip tensor and print the top-5 classes.",
        discussion: """
            The clip tensor (--input-tensor) is B×3×T×H×W, already normalized with the ImageNet mean \
            and std. --output writes logits (B×K), feature (B×D) and the alignment projections proj0, \
            proj1 (B×D) of the chosen head as safetensors.
            """)

    @Argument(help: "A video file (anything FFmpeg decodes): --frames at segment middles, centre crop of --size.")
    var video: String?

    @Option(help: "Model YAML (configs/models/*.yaml).")
    var model: String

    @Option(help: "Weights (safetensors, spec §3 names). Without it, parameters are initialized from --seed: a demo only.")
    var weights: String?

    @Option(name: .customLong("input-tensor"), help: "Clip tensor file (safetensors).")
    var inputTensor: String?

    @Option(help: "Key of the clip in --input-tensor.")
    var key: String = "video"

    @Flag(name: .customLong("random-clip"), help: "Run on a random normalized clip of --frames × --size².")
    var randomClip = false

    @Option(help: "Frames to sample (video or random clip).")
    var frames: Int = 8

    @Option(help: "Square frame size in pixels (video or random clip).")
    var size: Int = 224

    @Option(help: "Tokens to keep by token selection (default: all).")
    var budget: Int?

    @Option(help: "Head 0, 1 or 2 (default: the head whose training budget is nearest the tokens seen).")
    var head: Int?

    @Option(name: .customLong("class-names"), help: "File with one class name a line.")
    var classNames: String?

    @Option(help: "Write logits, feature, proj0, proj1 to this safetensors file.")
    var output: String?

    @Option(help: "Compute threads.")
    var threads: Int = 2

    @Option(help: "Seed for initialization without --weights and for --random-clip.")
    var seed: UInt64 = 0

    @Flag(help: "Print one JSON object instead of a table.")
    var json = false

    func validate() throws {
        if threads < 1 { throw ValidationError("--threads must be at least 1") }
        if frames < 1 { throw ValidationError("--frames must be at least 1") }
        let inputs = [video != nil, inputTensor != nil, randomClip].filter { $0 }.count
        if inputs != 1 { throw ValidationError("give exactly one input: a video file, --input-tensor FILE, or --random-clip") }
    }

    func run() throws {
        do {
            try infer()
        } catch let error as ValidationError {
            throw error
        } catch {
            // Typed errors carry what failed and the fix; print them plainly, not as a crash.
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            throw ExitCode.failure
        }
    }

    private func infer() throws {
        let inference = try Inference(modelPath: model, weightsPath: weights, seed: seed, classNamesPath: classNames, threads: threads)
        if weights == nil {
            FileHandle.standardError.write(Data("note: no --weights given: parameters are initialized from seed \(seed) (spec §5), so the classes below mean nothing.\n".utf8))
        }
        let clip: Tensor
        if let video {
            clip = try VideoClip.test(path: video, frames: frames, size: size, threads: threads)
        } else if let inputTensor {
            clip = try Inference.readClip(path: inputTensor, key: key)
        } else {
            var random = KeyedRandom(seed: seed, key: "random-clip")
            clip = Tensor(shape: [1, 3, frames, size, size], scalars: (0..<(3 * frames * size * size)).map { _ in random.normal() })
        }
        let start = Date()
        let result = try inference.model.forward(video: clip, budget: budget, head: head)
        let seconds = Date().timeIntervalSince(start)
        let gmacs = MACCount.forwardGMACs(config: inference.model.config, sampledTokens: result.sampledTokens, keptTokens: result.keptTokens)
        if let path = output {
            try Inference.writeOutput(result, to: path, metadata: ["head": "\(result.head)", "model": model])
        }
        let ranked = inference.topClasses(result)
        if json {
            let samples = ranked.map { top in
                ["top5": top.map { r -> [String: Any] in
                    var entry: [String: Any] = ["class": r.index, "probability": Double(r.probability)]
                    if let name = r.name { entry["name"] = name }
                    return entry
                }]
            }
            let object: [String: Any] = [
                "head": result.head, "sampled_tokens": result.sampledTokens, "kept_tokens": result.keptTokens,
                "gmacs": gmacs, "seconds": seconds, "samples": samples,
            ]
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            print("head \(result.head) · \(result.keptTokens) of \(result.sampledTokens) tokens · \(String(format: "%.1f", gmacs)) GMACs · \(String(format: "%.2f", seconds)) s")
            for (b, top) in ranked.enumerated() {
                if ranked.count > 1 { print("clip \(b):") }
                for (rank, r) in top.enumerated() {
                    let label = r.name ?? "class \(r.index)"
                    let padded = label.padding(toLength: max(label.count, 32), withPad: " ", startingAt: 0)
                    print("  \(rank + 1). \(padded) \(String(format: "%6.2f", r.probability * 100))%")
                }
            }
        }
    }
}
