import ArgumentParser
import Foundation
import FluxClient
import FluxProtocol
import FluxTransport
import FluxWire

/// `flux-bench coordinator`: the coordinator daemon's own costs (design §6), measured against a real `fluxd
/// coordinator` process with CURVE on both endpoints:
/// - heartbeats: `--workers` simulated workers (DEALER sockets in this process, each with an allowlisted key) register
///   and heartbeat once a second; the coordinator's CPU time over `--seconds` (from /proc) as a fraction of a core;
/// - dispatches: `--jobs` empty jobs (1 worker each) are submitted while the simulated workers hold back; then the
///   workers answer every `ring_formed` with `task_finished` at once, and the clock runs until the last job's
///   assignment: tasks dispatched per second, store writes and all;
/// - sweep cells: one sweep of `--cells`-ish empty cells (a fake checkpoint, no videos), every cell answered with an
///   empty `task_finished` at once: cells dispatched per second from submission to the sweep's end, each result stored.
struct CoordinatorBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "coordinator", abstract: "Coordinator CPU with heartbeating workers, and task dispatches per second.")

    @Option(help: "Simulated workers.") var workers: Int = 64
    @Option(help: "Seconds of heartbeats measured.") var seconds: Double = 10
    @Option(help: "Empty jobs dispatched.") var jobs: Int = 2000
    @Option(help: "Budgets of the empty sweep (21 cells each).") var sweepBudgets: Int = 100
    @Flag(help: "Print one JSON object.") var json = false

    func run() throws {
        let directory = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("flux-coordinator-bench-\(getpid())")
        try FileManager.default.createDirectory(at: directory.appendingPathComponent("keys"), withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let server = try CurveKeyPair.generate()
        _ = try server.save(name: "coordinator", in: directory.appendingPathComponent("keys"))
        let client = try CurveKeyPair.generate()
        let workerKeys = try (0..<workers).map { _ in try CurveKeyPair.generate() }
        try workerKeys.map(\.publicKey.z85).joined(separator: "\n")
            .write(to: directory.appendingPathComponent("workers.allow"), atomically: true, encoding: .utf8)
        try client.publicKey.z85.write(to: directory.appendingPathComponent("clients.allow"), atomically: true, encoding: .utf8)
        let ports = try LoopbackPorts.free(2)
        let workerEndpoint = "tcp://127.0.0.1:\(ports[0])", clientEndpoint = "tcp://127.0.0.1:\(ports[1])"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
            .deletingLastPathComponent().appendingPathComponent("fluxd")
        process.arguments = ["coordinator", "--state-dir", directory.path, "--worker-endpoint", workerEndpoint,
                             "--client-endpoint", clientEndpoint, "--log-level", "warning"]
        process.standardError = FileHandle.nullDevice
        try process.run()
        defer { process.terminate(); process.waitUntilExit() }

        let context = try ZMQContext()
        let codec = MessageCodec()
        var sockets: [Socket] = []
        for (index, keys) in workerKeys.enumerated() {
            let socket = try context.makeSocket(.dealer)
            try socket.set([.linger(.zero)])
            try socket.makeCurveClient(keys: keys, serverKey: server.publicKey)
            try socket.connect(workerEndpoint)
            try socket.send(.register(Register(workerID: WorkerID(rawValue: String(format: "sim-%03d", index)),
                                               dataEndpoint: "tcp://127.0.0.1:\(20000 + index * 8)",
                                               publicKey: keys.publicKey.z85, cores: 1, version: "bench")))
            sockets.append(socket)
        }
        var poller = Poller()
        for socket in sockets { poller.add(socket) }
        // Wait for every registration.
        var registered = Set<Int>()
        let deadline = Date().addingTimeInterval(30)
        while registered.count < workers, Date() < deadline {
            let ready = try poller.poll(timeout: .milliseconds(100))
            for (index, socket) in sockets.enumerated() where ready.isReadable(socket) {
                while let frames = try socket.tryReceive() {
                    if case .registered = try codec.decode(frames) { registered.insert(index) }
                }
            }
        }
        guard registered.count == workers else { throw ValidationError("only \(registered.count) of \(workers) registered") }

        // Heartbeats: every worker once a second, the coordinator's CPU over the window.
        let cpuStart = Self.cpuSeconds(pid: process.processIdentifier)
        let start = Date()
        var next = Date()
        var sequence: UInt64 = 0
        while Date().timeIntervalSince(start) < seconds {
            if Date() >= next {
                sequence += 1
                for socket in sockets { try socket.send(.heartbeat(Heartbeat(sequence: sequence))) }
                next = next.addingTimeInterval(1)
            }
            let ready = try poller.poll(timeout: .milliseconds(50))
            for socket in sockets where ready.isReadable(socket) { while try socket.tryReceive() != nil {} }
        }
        let wall = Date().timeIntervalSince(start)
        let heartbeatFraction = (Self.cpuSeconds(pid: process.processIdentifier) - cpuStart) / wall

        // Dispatches: submit while the workers hold back their answers, then answer as fast as assignments come.
        let fluxClient = try FluxClient(endpoint: clientEndpoint, keys: client, serverKey: server.publicKey)
        let spec = """
            name: empty
            model: {img_size: 8, patch_size: 4, num_frames: 2, embed_dim: 8, depth: 1, num_heads: 1, mlp_ratio: 1, attn_pool_num_heads: 1, clip_embed_dim: 4, num_classes: 2, budgets: [8, 6, 4]}
            data: {synthetic: 4}
            train: {global_batch: 1, steps: 1}
            workers: {min: 1, max: 1}
            ring_security: none
            """
        var held: [(Socket, Message)] = []
        let submitStart = Date()
        var lastBeat = Date()
        func beatIfDue() throws {
            guard Date().timeIntervalSince(lastBeat) >= 0.5 else { return }
            lastBeat = Date()
            sequence += 1
            for socket in sockets { try socket.send(.heartbeat(Heartbeat(sequence: sequence))) }
        }
        for _ in 0..<jobs {
            _ = try fluxClient.submit(specYAML: spec)
            try beatIfDue()
            for socket in sockets {
                while let frames = try socket.tryReceive() {
                    if case let .ringFormed(formed) = try codec.decode(frames) { held.append((socket, .ringFormed(formed))) }
                }
            }
        }
        FileHandle.standardError.write(Data("submitted \(jobs) jobs in \(String(format: "%.2f", Date().timeIntervalSince(submitStart))) s\n".utf8))
        let dispatchStart = Date()
        var dispatched = 0
        func answer(_ socket: Socket, _ formed: RingFormed) throws {
            dispatched += 1
            try socket.send(.taskFinished(TaskFinished(job: formed.job, task: "train")))
        }
        for (socket, message) in held { if case let .ringFormed(formed) = message { try answer(socket, formed) } }
        let dispatchDeadline = Date().addingTimeInterval(300)
        while dispatched < jobs, Date() < dispatchDeadline {
            try beatIfDue()
            let ready = try poller.poll(timeout: .milliseconds(100))
            for socket in sockets where ready.isReadable(socket) {
                while let frames = try socket.tryReceive() {
                    if case let .ringFormed(formed) = try codec.decode(frames) { try answer(socket, formed) }
                }
            }
        }
        let dispatchSeconds = Date().timeIntervalSince(dispatchStart)

        // Sweep cells: answered as fast as they are assigned; the clock runs from submission to the sweep's end.
        let checkpoint = directory.appendingPathComponent("checkpoint")
        try FileManager.default.createDirectory(at: checkpoint, withIntermediateDirectories: true)
        let modelYAML = "{img_size: 32, patch_size: 4, num_frames: 8, embed_dim: 8, depth: 1, num_heads: 1, mlp_ratio: 1, attn_pool_num_heads: 1, clip_embed_dim: 4, num_classes: 2, budgets: [64, 32, 16]}"
        let state: [String: Any] = ["format_version": 1, "step": 0, "epoch": 0, "step_in_epoch": 0, "seed": 0,
                                    "non_finite_streak": 0, "non_finite_steps": 0, "skipped_samples": 0,
                                    "model_yaml": modelYAML]
        try JSONSerialization.data(withJSONObject: state).write(to: checkpoint.appendingPathComponent("state.json"))
        try Data().write(to: checkpoint.appendingPathComponent("model.safetensors"))
        try "".write(to: directory.appendingPathComponent("empty.csv"), atomically: true, encoding: .utf8)
        let sweep = """
            kind: sweep
            name: empty-cells
            checkpoint: \(checkpoint.path)
            data: {eval: \(directory.appendingPathComponent("empty.csv").path)}
            budgets: [\((1...sweepBudgets).map { String($0 * 10) }.joined(separator: ", "))]
            candidates: {frames: [2, 4, 6, 8], sizes: [8, 12, 16, 20, 24]}
            standard: {frames: 8, size: 32}
            """
        let sweepStart = Date()
        let sweepJob = try fluxClient.submit(specYAML: sweep)
        var cells = 0
        var sweepDone = false
        let sweepDeadline = Date().addingTimeInterval(300)
        while !sweepDone, Date() < sweepDeadline {
            try beatIfDue()
            let ready = try poller.poll(timeout: .milliseconds(100))
            for socket in sockets where ready.isReadable(socket) {
                while let frames = try socket.tryReceive() {
                    guard case let .assign(assign) = try codec.decode(frames), assign.kind == .evaluationCell else { continue }
                    cells += 1
                    try socket.send(.taskFinished(TaskFinished(job: assign.job, task: assign.task)))
                }
            }
            if ready.isEmpty || cells % 500 == 0 {
                sweepDone = try fluxClient.status(sweepJob).first?.state == .succeeded
            }
        }
        let sweepSeconds = Date().timeIntervalSince(sweepStart)
        for socket in sockets { socket.close() }
        let result: [String: Any] = [
            "bench": "coordinator", "workers": workers, "heartbeat_seconds": wall,
            "heartbeat_core_fraction": heartbeatFraction, "jobs": jobs, "dispatched": dispatched,
            "dispatch_seconds": dispatchSeconds, "dispatches_per_s": Double(dispatched) / dispatchSeconds,
            "sweep_cells": cells, "sweep_seconds": sweepSeconds, "sweep_completed": sweepDone,
            "cells_per_s": Double(cells) / sweepSeconds,
        ]
        if json {
            print(String(decoding: try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys]), as: UTF8.self))
        } else {
            print(String(format: "%d heartbeating workers: %.2f%% of a core; %d dispatches in %.2f s: %.0f/s", workers,
                         100 * heartbeatFraction, dispatched, dispatchSeconds, Double(dispatched) / dispatchSeconds))
            print(String(format: "sweep of %d empty cells in %.2f s: %.0f cells/s%@", cells, sweepSeconds,
                         Double(cells) / sweepSeconds, sweepDone ? "" : " (did not complete)"))
        }
    }

    /// utime + stime of a process, seconds (/proc/PID/stat fields 14 and 15).
    static func cpuSeconds(pid: Int32) -> Double {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = text.lastIndex(of: ")") else { return 0 }
        let fields = text[text.index(after: close)...].split(separator: " ")
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        return ((Double(fields[11]) ?? 0) + (Double(fields[12]) ?? 0)) / ticks
    }
}
