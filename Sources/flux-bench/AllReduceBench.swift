import ArgumentParser
import Foundation
import FluxCollective
import FluxProtocol
import FluxWire

/// `flux-bench allreduce`: a ring all-reduce of `--floats` fp32 over `--ranks` processes on loopback.
///
/// Launches one `flux-bench ring-member` process per rank (all on 127.0.0.1, ports chosen free), waits for their
/// JSON lines and reports rank 0's median time with the algorithm and bus bandwidths (GB = 10⁹ bytes): algbw =
/// 4·floats / median, busbw = algbw · 2(n − 1)/n, as nccl-tests and tools/anchors/gloo_bench.py define them.
struct AllReduceBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "allreduce",
        abstract: "Time a ring all-reduce over N processes on loopback (median, algbw, busbw).")

    @Option(help: "Ranks (one process each).") var ranks: Int = 2
    @Option(help: "fp32 elements in the buffer.") var floats: Int = 22_000_000
    @Option(help: "Ring security: curve or none.") var security: String = "curve"
    @Option(help: "Timed runs (median reported).") var runs: Int = 5
    @Option(help: "Untimed warm-up runs.") var warmup: Int = 1
    @Option(help: "Largest payload per ring frame, in bytes.") var subChunkBytes: Int = Ring.defaultSubChunkBytes
    @Option(help: "Transport between the ranks: tcp (127.0.0.1) or ipc (Unix domain sockets).") var transport = "tcp"
    @Flag(help: "Print one JSON object.") var json = false

    func validate() throws {
        guard (1...Ring.maximumSize).contains(ranks) else {
            throw ValidationError("--ranks must be 1...\(Ring.maximumSize)")
        }
        guard floats >= 0 else { throw ValidationError("--floats must not be negative") }
        guard security == "curve" || security == "none" else { throw ValidationError("--security is curve or none") }
    }

    func run() throws {
        let endpoints = transport == "ipc"
            ? (0..<ranks).map {
                Ring.sameHostEndpoint(job: JobID("flux-bench-\(getpid())"), generation: 1, rank: $0)
            }
            : try LoopbackPorts.free(ranks).map { "tcp://127.0.0.1:\($0)" }
        let secrets = security == "curve" ? try (0..<ranks).map { _ in try CurveKeyPair.generate().secretKey.z85 } : []
        let executable = URL(fileURLWithPath: ProcessInfo.processInfo.arguments[0]).resolvingSymlinksInPath()
        var children: [(Process, Pipe)] = []
        for rank in 0..<ranks {
            let process = Process()
            process.executableURL = executable
            process.arguments = [
                "ring-member", "--endpoints", endpoints.joined(separator: ","), "--rank", "\(rank)",
                "--floats", "\(floats)", "--runs", "\(runs)", "--warmup", "\(warmup)",
                "--sub-chunk-bytes", "\(subChunkBytes)",
            ] + (secrets.isEmpty ? [] : ["--secret-keys", secrets.joined(separator: ",")])
            let out = Pipe()
            process.standardOutput = out
            try process.run()
            children.append((process, out))
        }
        var reports: [[String: Any]] = []
        for (process, out) in children {
            let data = out.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            let line = String(decoding: data, as: UTF8.self).split(separator: "\n").last { $0.hasPrefix("{") }
            guard process.terminationStatus == 0, let line,
                  let report = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            else {
                throw ValidationError("a ring member failed (status \(process.terminationStatus)): "
                    + String(decoding: data, as: UTF8.self))
            }
            reports.append(report)
        }
        let times = reports[0]["runs_s"] as? [Double] ?? []
        let median = medianOf(times)
        let bytes = Double(floats) * 4
        let algbw = median > 0 ? bytes / median / 1e9 : 0
        let busbw = algbw * 2 * Double(ranks - 1) / Double(ranks)
        let correct = reports.allSatisfy { $0["correct"] as? Bool == true }
        // CPU seconds of all ranks' processes (every thread) per operation: a figure the machine's other load
        // hardly changes, unlike the wall-clock median.
        let cpuPerRun = reports.map { $0["cpu_s"] as? [Double] ?? [] }
        let cpuTotals = (0..<(cpuPerRun.map(\.count).min() ?? 0)).map { run in cpuPerRun.reduce(0) { $0 + $1[run] } }
        let cpuMedian = medianOf(cpuTotals)
        if json {
            try printJSON([
                "bench": "allreduce", "engine": "flux", "ranks": ranks, "floats": floats, "bytes": Int(bytes),
                "security": security, "median_s": median, "runs_s": times, "algbw_gb_per_s": algbw,
                "busbw_gb_per_s": busbw, "correct": correct, "sub_chunk_bytes": subChunkBytes, "transport": transport,
                "cpu_s_all_ranks": cpuMedian,
            ])
        } else {
            print(String(format: "flux ring all-reduce, %d ranks, %d floats (%.1f MB), %@: median %.4f s, "
                + "algbw %.2f GB/s, busbw %.2f GB/s%@", ranks, floats, bytes / 1e6, security, median, algbw, busbw,
                correct ? "" : " — RESULT WRONG"))
        }
        if !correct { throw ExitCode.failure }
    }
}

/// `flux-bench ring-member`: one rank of a loopback ring, for `allreduce` and for the fault tests.
///
/// Forms generation 1 over `--endpoints` as `--rank`, then either times `--runs` all-reduces (a barrier before
/// each; prints one JSON line with `runs_s` and whether the last result was the exact sum) or, with `--repeat K`,
/// runs K checked all-reduces printing `op N ok` lines. On a failure it prints a JSON line with the error and how
/// long the failing operation took; with `--reform-endpoints` it then forms generation 2 over those endpoints as
/// `--reform-rank` and runs one checked all-reduce.
struct RingMember: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ring-member", abstract: "One rank of a loopback ring (used by allreduce and the tests).",
        shouldDisplay: false)

    @Option(help: "Every rank's endpoint, comma-separated, in rank order.") var endpoints: String
    @Option(help: "This rank.") var rank: Int
    @Option(help: "fp32 elements.") var floats: Int
    @Option(help: "Timed runs.") var runs: Int = 5
    @Option(help: "Untimed warm-up runs.") var warmup: Int = 1
    @Option(help: "Checked all-reduces to run instead of timing (fault tests).") var `repeat`: Int?
    @Option(help: "Every rank's CURVE secret key (Z85), comma-separated; plain TCP without.") var secretKeys: String?
    @Option(help: "Operation timeout in seconds.") var timeout: Double = 10
    @Option(help: "Largest payload per ring frame, in bytes.") var subChunkBytes: Int = Ring.defaultSubChunkBytes
    @Option(help: "Endpoints of generation 2 after a failure.") var reformEndpoints: String?
    @Option(help: "This process's rank in generation 2.") var reformRank: Int?

    func run() throws {
        if ProcessInfo.processInfo.environment["FLUX_RING_NO_MALLOPT"] == nil {
            RingCommunicator.keepReceiveBuffersMapped()
        }
        let context = try ZMQContext()
        let list = endpoints.split(separator: ",").map(String.init)
        let secrets = try secretKeys?.split(separator: ",").map {
            try CurveKeyPair(secretKey: CurveKey(z85: String($0)))
        }
        let ring = member(rank: rank, endpoints: list, generation: 1, keys: secrets)
        var values = [Float](repeating: 0, count: floats)
        fill(&values, rank: rank)
        let communicator = try RingCommunicator(context: context, ring: ring)
        if let count = `repeat` {
            for op in 0..<count {
                fill(&values, rank: rank)
                let start = ContinuousClock.now
                do {
                    try values.withUnsafeMutableBufferPointer { try communicator.allReduce($0) }
                } catch {
                    let elapsed = ContinuousClock.now - start
                    try printJSON(["event": "failed", "op": op, "error": "\(error)", "kind": kind(error),
                                   "elapsed_s": seconds(elapsed)])
                    communicator.close()
                    try reform(context: context, keys: secrets)
                    return
                }
                let correct = isExactSum(values, ranks: list.count)
                FileHandle.standardOutput.write(Data("op \(op) \(correct ? "ok" : "WRONG")\n".utf8))
            }
            try printJSON(["event": "done", "ops": count])
            return
        }
        var times: [Double] = []
        var cpuTimes: [Double] = []
        for run in 0..<(warmup + runs) {
            fill(&values, rank: rank)
            try communicator.barrier()
            let start = ContinuousClock.now
            let cpuStart = processCPUSeconds()
            try values.withUnsafeMutableBufferPointer { try communicator.allReduce($0) }
            if run >= warmup {
                times.append(seconds(ContinuousClock.now - start))
                cpuTimes.append(processCPUSeconds() - cpuStart)
            }
        }
        try printJSON(["rank": rank, "runs_s": times, "cpu_s": cpuTimes,
                       "correct": isExactSum(values, ranks: list.count),
                       "counters": ["invalid": communicator.counters.invalidFrames,
                                    "stale": communicator.counters.staleFrames]])
        communicator.close()
    }

    private func reform(context: ZMQContext, keys: [CurveKeyPair]?) throws {
        guard let reformEndpoints, let reformRank else { return }
        let list = reformEndpoints.split(separator: ",").map(String.init)
        // The survivors keep their key pairs; generation 2 uses the keys of the processes that remain, in order.
        let survivors = keys.map { Array($0.prefix(list.count)) }
        let ring = member(rank: reformRank, endpoints: list, generation: 2, keys: survivors)
        let start = ContinuousClock.now
        let communicator = try RingCommunicator(context: context, ring: ring)
        var values = [Float](repeating: 0, count: floats)
        fill(&values, rank: reformRank)
        try values.withUnsafeMutableBufferPointer { try communicator.allReduce($0) }
        try printJSON(["event": "reformed", "generation": 2, "correct": isExactSum(values, ranks: list.count),
                       "elapsed_s": seconds(ContinuousClock.now - start),
                       "stale": communicator.counters.staleFrames])
        communicator.close()
    }

    private func member(rank: Int, endpoints: [String], generation: UInt64, keys: [CurveKeyPair]?) -> Ring {
        let n = endpoints.count
        let security: Ring.Security = keys.map {
            .curve(keys: $0[rank], leftPublicKey: $0[(rank + n - 1) % n].publicKey,
                   rightPublicKey: $0[(rank + 1) % n].publicKey)
        } ?? .none
        return Ring(job: "flux-bench", generation: generation, rank: rank, size: n, localEndpoint: endpoints[rank],
                    rightEndpoint: endpoints[(rank + 1) % n], security: security, timeout: .seconds(timeout),
                    subChunkBytes: subChunkBytes)
    }

    private func kind(_ error: Error) -> String {
        guard let error = error as? CollectiveError else { return "other" }
        switch error {
        case .peerTimeout: return "peerTimeout"
        case .peerDisconnected: return "peerDisconnected"
        case .protocolMismatch: return "protocolMismatch"
        case .invalidRing: return "invalidRing"
        case .invalidArgument: return "invalidArgument"
        case .transport: return "transport"
        case .unusable: return "unusable"
        }
    }
}

/// Rank r's integer-valued input (exact sums in fp32): element i is ((i mod 101) + r) − 50.
func fill(_ values: inout [Float], rank: Int) {
    for i in values.indices { values[i] = Float(i % 101 + rank - 50) }
}

/// Whether `values` is the exact sum of `fill` over `ranks` ranks.
func isExactSum(_ values: [Float], ranks: Int) -> Bool {
    let offset = ranks * (ranks - 1) / 2
    for i in values.indices where values[i] != Float(ranks * (i % 101 - 50) + offset) { return false }
    return true
}

/// The median of `values` (0 when empty).
func medianOf(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    guard !sorted.isEmpty else { return 0 }
    return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
}

/// CPU time this process (all its threads, user and system) has used so far, in seconds.
func processCPUSeconds() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
}

func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

