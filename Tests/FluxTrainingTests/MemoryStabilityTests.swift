import Foundation
import FluxTestKit
import Testing

/// The training step allocates nothing that grows with the step count: resident memory after
/// step 10 equals that after step 2 within a small tolerance. Measured in a separate process
/// (flux-bench), so other tests running in parallel cannot disturb it.
@Suite struct MemoryStabilityTests {
    @Test func residentMemory_afterStep10_matchesStep2() throws {
        let executable = BuiltTool.url("flux-bench")
        try #require(BuiltTool.exists("flux-bench"), "build flux-bench first (make test does)")
        let process = Process()
        process.executableURL = executable
        process.arguments = [
            "train-step", "--preset", GradientParityTests.repository.appendingPathComponent("configs/models/tiny-test.yaml").path,
            "--frames", "8", "--size", "16", "--budgets", "100,64,32", "--batch", "2", "--runs", "10", "--warmup", "0", "--json",
        ]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        let json = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let rss = try #require(json["rss_after_step_bytes"] as? [Int])
        try #require(rss.count == 10)
        let growth = rss[9] - rss[1]
        #expect(growth <= 256 * 1024, "resident memory grew by \(growth) bytes from step 2 to step 10: \(rss)")
    }
}
