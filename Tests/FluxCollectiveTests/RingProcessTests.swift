import Foundation
import Testing
import FluxTestKit
import Synchronization

/// A child process whose stdout is collected as it arrives.
final class RunningTool: Sendable {
    let process: Process
    private let output = TextBuffer()

    init(_ name: String, _ arguments: [String]) throws {
        let process = Process()
        process.executableURL = BuiltTool.url(name)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.standardError
        self.process = process
        let output = self.output
        pipe.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            output.text.withLock { $0 += String(decoding: data, as: UTF8.self) }
        }
        try process.run()
    }

    var stdout: String { output.text.withLock { $0 } }

    /// The JSON lines printed so far.
    var events: [[String: Any]] {
        stdout.split(separator: "\n").filter { $0.hasPrefix("{") }.compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
    }

    func kill() { if process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) } }
}

/// Text appended by one thread and read by others.
final class TextBuffer: Sendable {
    let text = Mutex("")
}


@Suite struct RingProcessTests {
    /// Three `flux-bench ring-member` processes all-reduce in a loop; one is SIGKILLed mid-job. The two others fail
    /// with a typed error (their JSON line names it and how long the failing operation took): `peerDisconnected`,
    /// from libzmq's disconnect event, not the 1 s deadline; then they form generation 2 between themselves on new
    /// endpoints and all-reduce exactly.
    @Test func allReduce_processKilled_survivorsFailTypedThenReform() throws {
        try #require(BuiltTool.exists("flux-bench"), "flux-bench is not built: `make test` builds it (swift build)")
        let first = loopbackEndpoints(3).joined(separator: ",")
        let second = loopbackEndpoints(2).joined(separator: ",")
        let members = try (0..<3).map { rank in
            try RunningTool("flux-bench", [
                "ring-member", "--endpoints", first, "--rank", "\(rank)", "--floats", "300000", "--repeat", "100000",
                "--timeout", "1", "--sub-chunk-bytes", "65536",
            ] + (rank < 2 ? ["--reform-endpoints", second, "--reform-rank", "\(rank)"] : []))
        }
        defer { members.forEach { $0.kill() } }
        #expect(eventually(within: .seconds(15)) { members.allSatisfy { $0.stdout.contains("op 3 ok") } })
        members[2].kill()
        #expect(eventually(within: .seconds(15)) {
            members.prefix(2).allSatisfy { $0.events.contains { $0["event"] as? String == "reformed" } }
        })
        for member in members.prefix(2) {
            let failed = member.events.first { $0["event"] as? String == "failed" }
            let reformed = member.events.first { $0["event"] as? String == "reformed" }
            #expect(failed?["kind"] as? String == "peerDisconnected", "\(member.stdout)")
            #expect(reformed?["correct"] as? Bool == true, "\(member.stdout)")
            #expect(!member.stdout.contains("WRONG"))
            print("survivor: failed after \(failed?["elapsed_s"] ?? "?") s (timeout 1 s); generation 2 formed and "
                + "reduced in \(reformed?["elapsed_s"] ?? "?") s")
        }
    }
}
