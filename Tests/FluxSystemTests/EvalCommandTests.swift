import Foundation
import FluxTestKit
import FluxViT
import Testing

extension SystemTests {
    /// `fluxctl eval`: one setting over a manifest of real videos, as the official eval script runs it.
    @Suite struct EvalCommandTests {
        /// A temporary folder holding seeded tiny-motion weights (`weights.safetensors`), the same weights as a
        /// checkpoint folder (`checkpoint/`: model.safetensors and a state.json naming the model) and a manifest
        /// of the 8 validation videos plus one file of garbage bytes on line 10.
        static func setUp() throws -> (folder: URL, manifest: String, weights: String, checkpoint: String, model: String) {
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("flux-eval-\(UUID().uuidString.prefix(8))")
            let checkpoint = folder.appendingPathComponent("checkpoint")
            try FileManager.default.createDirectory(at: checkpoint, withIntermediateDirectories: true)
            let modelPath = SystemData.repository.appendingPathComponent("configs/models/tiny-motion.yaml").path
            let config = try FluxViTConfig.load(path: modelPath)
            let net = try FluxViTModel(config: config, threads: 1)
            Initialization.initialize(net.parameters, seed: 7)
            let weights = folder.appendingPathComponent("weights.safetensors").path
            try net.parameters.save(path: weights)
            try net.parameters.save(path: checkpoint.appendingPathComponent("model.safetensors").path)
            // What `fluxctl eval` reads of a training state: the format and the model.
            let state: [String: Any] = ["format_version": 1, "step": 0, "model_yaml": config.yaml]
            try JSONSerialization.data(withJSONObject: state).write(to: checkpoint.appendingPathComponent("state.json"))

            let garbage = folder.appendingPathComponent("garbage.mp4")
            try Data((0..<2048).map { UInt8(truncatingIfNeeded: $0 &* 31) }).write(to: garbage)
            let validation = try String(contentsOf: SystemData.folder.appendingPathComponent("val.csv"), encoding: .utf8)
            let lines = validation.split(separator: "\n").dropFirst().map { SystemData.folder.path + "/" + $0 }
            #expect(lines.count == 8)
            let manifest = folder.appendingPathComponent("eval.csv").path
            try (["path,label"] + lines + ["\(garbage.path),1"]).joined(separator: "\n")
                .write(toFile: manifest, atomically: true, encoding: .utf8)
            return (folder, manifest, weights, checkpoint.path, modelPath)
        }

        @Test func eval_json_reportsScoresTokensGMACsAndTheUnreadableVideo() throws {
            let (folder, manifest, weights, checkpoint, model) = try Self.setUp()
            defer { try? FileManager.default.removeItem(at: folder) }
            let setting = ["--data", manifest, "--frames", "8", "--size", "64", "--budget", "64", "--views", "2x3", "--json"]
            let result = try BuiltTool.run("fluxctl", ["eval", "--model", model, "--weights", weights] + setting)
            #expect(result.status == 0, "\(result.stderr)")
            let object = try #require(
                try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any], "\(result.stdout)")
            #expect(Set(object.keys) == ["top1", "top5", "videos", "unreadable", "sampled_tokens", "kept_tokens", "head",
                                        "gmacs", "views", "seconds", "per_class"])
            #expect(object["videos"] as? Int == 8)
            #expect(object["views"] as? Int == 6)
            // 8 frames of (64/16)² = 16 tokens: 128 sampled; 4 groups of 2 frames keep int(64/128 · 32) = 16 each.
            #expect(object["sampled_tokens"] as? Int == 128 && object["kept_tokens"] as? Int == 64)
            #expect(object["head"] as? Int == 2, "budgets 128/96/64: head 2 is nearest 64 tokens")
            let config = try FluxViTConfig.load(path: model)
            let gmacs = MACCount.forwardGMACs(config: config, sampledTokens: 128, keptTokens: 64)
            #expect(abs((object["gmacs"] as? Double ?? 0) - gmacs) < 1e-12)
            let top1 = try #require(object["top1"] as? Double), top5 = try #require(object["top5"] as? Double)
            #expect(0 <= top1 && top1 <= top5 && top5 <= 1)
            #expect((object["per_class"] as? [Any])?.count == 4)
            let unreadable = try #require(object["unreadable"] as? [[String: Any]])
            #expect(unreadable.count == 1)
            #expect(unreadable.first?["line"] as? Int == 10)
            #expect((unreadable.first?["path"] as? String)?.hasSuffix("garbage.mp4") == true)
            #expect((unreadable.first?["reason"] as? String)?.contains("cannot open video") == true, "\(unreadable)")

            // A checkpoint folder names its own model: the same weights give the same scores.
            let again = try BuiltTool.run("fluxctl", ["eval", "--weights", checkpoint] + setting)
            #expect(again.status == 0, "\(again.stderr)")
            let second = try #require(try JSONSerialization.jsonObject(with: Data(again.stdout.utf8)) as? [String: Any])
            #expect(second["top1"] as? Double == top1 && second["top5"] as? Double == top5)
            #expect((second["per_class"] as? [Any]).map { "\($0)" } == (object["per_class"] as? [Any]).map { "\($0)" })
        }

        @Test func eval_missingManifest_failsNamingThePath() throws {
            let (folder, _, weights, _, model) = try Self.setUp()
            defer { try? FileManager.default.removeItem(at: folder) }
            let missing = folder.appendingPathComponent("no-such-manifest.csv").path
            let result = try BuiltTool.run("fluxctl", ["eval", "--model", model, "--weights", weights, "--data", missing,
                                                       "--frames", "8", "--size", "64"])
            #expect(result.status != 0)
            #expect(result.stderr.contains("error: cannot read '\(missing)'"), "\(result.stderr)")
            #expect(result.stdout.isEmpty)
        }

        @Test func eval_weightsFileWithoutModel_failsSayingHowToNameIt() throws {
            let (folder, manifest, weights, _, _) = try Self.setUp()
            defer { try? FileManager.default.removeItem(at: folder) }
            let result = try BuiltTool.run("fluxctl", ["eval", "--weights", weights, "--data", manifest,
                                                       "--frames", "8", "--size", "64"])
            #expect(result.status != 0)
            #expect(result.stderr.contains("holds weights but no model config: name the model with --model"), "\(result.stderr)")
        }
    }
}
