import Foundation
import FluxTensor
import FluxTestKit
import FluxViT
import Testing

/// `fluxctl infer` as a user runs it: a real process, its output file and its error text.
@Suite struct FluxCtlInferTests {
    /// The fluxctl built beside this test bundle (`swift build --build-tests` builds both).
    static var fluxctl: URL { BuiltTool.url("fluxctl") }

    static func run(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        try BuiltTool.run("fluxctl", arguments)
    }

    @Test func infer_tensorFile_writesTheGoldenOutputs() throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.fluxctl.path), "build fluxctl first (make test does)")
        let folder = GoldenParityTests.folder
        let caseName = "forward_t6_s12_b1_k30_tanh.safetensors"
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("flux-infer-\(UUID().uuidString).safetensors").path
        defer { try? FileManager.default.removeItem(atPath: output) }
        let result = try Self.run([
            "infer", "--model", GoldenParityTests.tinyConfigPath,
            "--weights", folder.appendingPathComponent("tiny_weights.safetensors").path,
            "--input-tensor", folder.appendingPathComponent(caseName).path, "--budget", "30", "--head", "1",
            "--output", output, "--json", "--threads", "2",
        ])
        #expect(result.status == 0, "stderr: \(result.stderr)")
        let json = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
        #expect(json?["head"] as? Int == 1)
        #expect(json?["kept_tokens"] as? Int == 30)
        let top = ((json?["samples"] as? [[String: Any]])?.first?["top5"] as? [[String: Any]]) ?? []
        #expect(top.count == 5)

        let golden = try Goldens.load(caseName, in: folder)
        let written = try SafeTensors.read(path: output)
        for name in ["logits", "feature", "proj0", "proj1"] {
            expectClose(try written.float(name, in: output), try golden.float("\(name).1", in: caseName), name)
        }
        #expect(try written.ints("kept", in: output).values == (try golden.ints("kept", in: caseName).values))
    }

    @Test func infer_badInputs_printTheProblemAndTheFix() throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.fluxctl.path), "build fluxctl first (make test does)")
        let badYAML = FileManager.default.temporaryDirectory.appendingPathComponent("flux-bad-\(UUID().uuidString).yaml")
        try "preset: fluxvit-small\nqkv_bias: true\n".write(to: badYAML, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: badYAML) }

        let yaml = try Self.run(["infer", "--model", badYAML.path, "--random-clip"])
        #expect(yaml.status != 0)
        #expect(yaml.stderr.contains("qkv_bias: only false is supported"), "\(yaml.stderr)")

        let video = try Self.run(["infer", "--model", GoldenParityTests.tinyConfigPath, "/nonexistent/clip.mp4"])
        #expect(video.status != 0)
        #expect(video.stderr.contains("/nonexistent/clip.mp4"), "\(video.stderr)")

        let size = try Self.run(["infer", "--model", GoldenParityTests.tinyConfigPath, "--random-clip", "--frames", "4", "--size", "10"])
        #expect(size.status != 0)
        #expect(size.stderr.contains("not a multiple of patch_size 4"), "\(size.stderr)")

        let weights = try Self.run(["infer", "--model", GoldenParityTests.tinyConfigPath, "--weights", "/nonexistent.safetensors", "--random-clip"])
        #expect(weights.status != 0)
        #expect(weights.stderr.contains("/nonexistent.safetensors"), "\(weights.stderr)")
    }
}
