import Foundation
import Testing

/// `fluxctl train --local` as a user runs it: checkpoints, metrics, resume, Ctrl-C.
@Suite struct FluxCtlTrainTests {
    static let arguments = [
        "train", "--local", "--model", GoldenParityTests.tinyConfigPath, "--synthetic", "32", "--batch", "8",
        "--epochs", "1000", "--frames", "4,6", "--resolutions", "8,12", "--threads", "2",
    ]

    static func temporaryFolder() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("flux-train-\(UUID().uuidString)").path
    }

    @Test func train_writesCheckpointsAndMetrics_andResumesWhereItStopped() throws {
        try #require(FileManager.default.isExecutableFile(atPath: FluxCtlInferTests.fluxctl.path), "build fluxctl first (make test does)")
        let out = Self.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: out) }
        let first = try FluxCtlInferTests.run(Self.arguments + ["--out", out, "--steps", "3", "--val-every", "2"])
        #expect(first.status == 0, "\(first.stderr)")
        #expect(first.stdout.contains("validation") && first.stdout.contains("budget 24"), "\(first.stdout)")
        #expect(first.stderr.contains("validation after step 2: top-1 "), "\(first.stderr)")
        let metrics = try String(contentsOfFile: out + "/metrics.jsonl", encoding: .utf8).split(separator: "\n")
        #expect(metrics.count == 5, "3 steps, a validation line after step 2 and one at the end")
        #expect(metrics.filter { $0.contains(#""kind":"validation""#) && $0.contains(#""step":2"#) }.count == 1)
        #expect(FileManager.default.fileExists(atPath: out + "/checkpoints/step-000000003/state.json"))

        let second = try FluxCtlInferTests.run(Self.arguments + ["--out", out, "--steps", "2", "--resume"])
        #expect(second.status == 0, "\(second.stderr)")
        #expect(second.stderr.contains("resumed from step 3"), "\(second.stderr)")
        #expect(FileManager.default.fileExists(atPath: out + "/checkpoints/step-000000005/state.json"))
    }

    @Test func train_ctrlC_savesACheckpointAndStopsCleanly() throws {
        try #require(FileManager.default.isExecutableFile(atPath: FluxCtlInferTests.fluxctl.path), "build fluxctl first (make test does)")
        let out = Self.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: out) }
        let process = Process()
        process.executableURL = FluxCtlInferTests.fluxctl
        process.arguments = Self.arguments + ["--out", out]
        let err = Pipe()
        process.standardError = err
        process.standardOutput = Pipe()
        try process.run()
        // Wait for the first step's metrics line (an event, not a sleep), then interrupt.
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline, ((try? String(contentsOfFile: out + "/metrics.jsonl", encoding: .utf8)) ?? "").isEmpty {
            usleep(20_000)
        }
        kill(process.processIdentifier, SIGINT)
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "\(stderr)")
        #expect(stderr.contains("stopped by Ctrl-C"), "\(stderr)")
        let checkpoints = (try? FileManager.default.contentsOfDirectory(atPath: out + "/checkpoints")) ?? []
        #expect(checkpoints.count == 1 && checkpoints[0].hasPrefix("step-"), "\(checkpoints)")
    }

    @Test func train_onAMissingManifest_namesIt() throws {
        try #require(FileManager.default.isExecutableFile(atPath: FluxCtlInferTests.fluxctl.path), "build fluxctl first (make test does)")
        let result = try FluxCtlInferTests.run(["train", "--local", "--model", GoldenParityTests.tinyConfigPath, "--train", "/nonexistent/train.csv"])
        #expect(result.status != 0)
        #expect(result.stderr.contains("/nonexistent/train.csv"), "\(result.stderr)")
    }
}
