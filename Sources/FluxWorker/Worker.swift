import Foundation
import FluxFiles
import FluxCollective
import FluxProtocol
import FluxTransport
import FluxWire
import Logging
import ServiceLifecycle
import Synchronization

/// Where a worker finds its coordinator and how it serves ring traffic.
public struct WorkerOptions: Sendable {
    /// The coordinator's worker endpoint (`tcp://10.0.0.1:7400`).
    public var coordinator: String
    /// The worker's state dir: its stable id and its keys.
    public var stateDirectory: URL
    /// Where ring peers reach this worker: `tcp://HOST:PORT` (it uses PORT…PORT+7) or `ipc://PATH` on one host.
    public var dataEndpoint: String
    /// Compute threads for a task.
    public var threads = 2
    /// Plain TCP to the coordinator (loopback only); otherwise CURVE with `DIR/worker.key` and the coordinator's
    /// public key `DIR/coordinator.pub`.
    public var insecure = false
    /// The heartbeat interval until the coordinator says otherwise, seconds.
    public var heartbeatInterval = 1.0

    /// Options.
    public init(coordinator: String, stateDirectory: URL, dataEndpoint: String) {
        self.coordinator = coordinator
        self.stateDirectory = stateDirectory
        self.dataEndpoint = dataEndpoint
    }
}

/// The worker daemon's I/O shell (design §1, §3): registers under the stable id of its state dir, heartbeats, runs
/// one task at a time on a thread of its own, forwards the task's messages, and survives a lost coordinator: it
/// keeps training (the ring is peer to peer), reconnects with backoff and re-registers with its running task.
///
/// SIGTERM (graceful shutdown): a worker with a task leaves at the task's next commit, then exits; an idle one exits
/// at once.
public final class Worker: Service, Sendable {
    private let options: WorkerOptions
    private let logger: Logger
    private let shutdown = Atomic<Bool>(false)

    /// A worker (nothing is opened until `run`).
    public init(options: WorkerOptions, logger: Logger) {
        self.options = options
        self.logger = logger
    }

    /// Runs until shut down.
    public func run() async throws {
        try await withGracefulShutdownHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, Error>) in
                let thread = Thread { [self] in
                    do {
                        try serve()
                        continuation.resume()
                    } catch {
                        continuation.resume(throwing: error)
                    }
                }
                thread.name = "flux-worker"
                thread.start()
            }
        } onGracefulShutdown: { [self] in
            shutdown.store(true, ordering: .releasing)
        }
    }

    /// The worker's stable id: read from `DIR/worker-id`, made once.
    public static func stableID(in directory: URL) throws -> WorkerID {
        let file = directory.appendingPathComponent("worker-id")
        if let text = try? String(contentsOf: file, encoding: .utf8) {
            let id = text.trimmingCharacters(in: .whitespacesAndNewlines)
            if !id.isEmpty { return WorkerID(rawValue: id) }
        }
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let id = "w-" + String(UInt32.random(in: 0...UInt32.max), radix: 16)
        try AtomicFile.write(id + "\n", to: file)
        return WorkerID(rawValue: id)
    }

    // MARK: - The loop

    private func serve() throws {
        let directory = options.stateDirectory
        let id = try Self.stableID(in: directory)
        var keys: CurveKeyPair?
        var coordinatorKey: CurveKey?
        if options.insecure {
            let loopback = ["tcp://127.", "tcp://localhost:", "ipc://", "inproc://"]
            guard loopback.contains(where: options.coordinator.hasPrefix) else {
                throw WorkerError.insecureNotLoopback(endpoint: options.coordinator)
            }
        } else {
            do {
                keys = try CurveKeyPair.load(keyFile: directory.appendingPathComponent("worker.key").path)
                coordinatorKey = try CurveKeyPair.loadPublicKey(directory.appendingPathComponent("coordinator.pub").path)
            } catch {
                throw WorkerError.keys(directory: directory.path, reason: "\(error)")
            }
        }
        RingCommunicator.keepReceiveBuffersMapped()
        let context = try ZMQContext()
        defer { context.close() }
        let outbox = Outbox()
        var link = Link(options: options, id: id, keys: keys, coordinatorKey: coordinatorKey, context: context,
                        logger: logger)
        try link.connect()
        var rank: (task: TrainingRank, thread: Thread, job: JobID)?
        var evaluation: (task: EvaluationTask, thread: Thread)?
        // A cell assigned while the previous one is still stopping waits for it: both would share the cached model.
        var queuedCell: (assign: Assign, cell: EvaluationCell)?
        let sweeps = SweepCache()
        func startCell(_ assign: Assign, _ cell: EvaluationCell) {
            let task = EvaluationTask(assign: assign, cell: cell, cache: sweeps, threads: options.threads,
                                      logger: logger) { outbox.post($0) }
            let thread = Thread { task.run() }
            thread.name = "flux-cell"
            thread.stackSize = 8 << 20
            thread.start()
            evaluation = (task, thread)
            link.runningTask = { [weak task] in task.map { (TaskRef(job: $0.job, task: $0.task), 0) } }
        }
        var leaving = false
        logger.info("worker \(id) started (data endpoint \(options.dataEndpoint), \(options.threads) threads)")

        while true {
            if shutdown.load(ordering: .acquiring), !leaving {
                leaving = true
                if let rank {
                    logger.info("SIGTERM: leaving \(rank.job) at the next commit")
                    rank.task.mailbox.leave()
                } else if let current = evaluation {
                    // A cell is cheap to redo elsewhere: stop it now and say so, so the coordinator queues it again.
                    logger.info("SIGTERM: leaving \(current.task.job) (\(current.task.task) goes back to the queue)")
                    current.task.stop()
                    link.send(.leave(Leave(job: current.task.job, step: 0)))
                } else {
                    break
                }
            }
            // What the task has to say (before deciding to exit: its last messages must go out).
            for message in outbox.drain() { link.send(message) }
            if let current = rank, current.thread.isFinished {
                for message in outbox.drain() { link.send(message) }
                rank = nil
                if leaving { break }
            }
            if let current = evaluation, current.thread.isFinished {
                for message in outbox.drain() { link.send(message) }
                evaluation = nil
                link.runningTask = { nil }
                if leaving { break }
                if let next = queuedCell {
                    queuedCell = nil
                    startCell(next.assign, next.cell)
                }
            }
            for message in link.receive(timeout: .milliseconds(20)) {
                switch message {
                case let .assign(assign) where assign.kind == .evaluationCell:
                    guard let cell = assign.cell, !leaving else { continue }
                    if let current = evaluation, !current.thread.isFinished {
                        if current.task.job == assign.job, current.task.task == assign.task, !current.task.isStopped { continue }
                        current.task.stop()
                        queuedCell = (assign, cell)
                        continue
                    }
                    startCell(assign, cell)
                case let .assign(assign):
                    if let current = rank, !current.thread.isFinished {
                        // Already running this job: nothing to do, unless that rank is stopping (then start anew).
                        if current.job == assign.job, current.task.mailbox.stopped == nil { continue }
                        current.task.mailbox.stop(reason: "assigned again")
                    }
                    let task = TrainingRank(
                        job: assign.job, specYAML: assign.specYAML, threads: options.threads, keys: keys,
                        dataEndpoint: options.dataEndpoint, logger: logger) { outbox.post($0) }
                    let thread = Thread { task.run() }
                    thread.name = "flux-rank"
                    thread.stackSize = 8 << 20
                    thread.start()
                    rank = (task, thread, assign.job)
                    link.runningTask = { [weak task] in
                        task.map { (TaskRef(job: $0.job, task: "train"), $0.committedStep.get()) }
                    }
                    // Kept past the task's end: its last hashes went out just before `task_finished`, which a
                    // coordinator that was down then also gets again.
                    link.hashReplay = { task.hashReplay() }
                case let .ringFormed(formed):
                    if let current = rank, current.job == formed.job { current.task.mailbox.announce(formed) }
                case let .stopTask(stop):
                    if let current = evaluation, current.task.job == stop.job, current.task.task == stop.task {
                        current.task.stop()
                    }
                    if queuedCell?.assign.job == stop.job, queuedCell?.assign.task == stop.task { queuedCell = nil }
                    if let current = rank, current.job == stop.job, stop.task == "train" {
                        logger.info("\(stop.job): stop (\(stop.reason))")
                        current.task.mailbox.stop(reason: stop.reason)
                    }
                case let .checkpoint(transfer):
                    if let current = rank, current.job == transfer.job { current.task.mailbox.provide(transfer) }
                default:
                    break
                }
            }
            link.maintain()
        }
        rank?.task.mailbox.stop(reason: "worker exiting")
        logger.info("worker \(id) exiting")
    }
}

/// Messages from the task thread to the control thread.
final class Outbox: Sendable {
    private let queue = Mutex<[Message]>([])
    func post(_ message: Message) { queue.withLock { $0.append(message) } }
    func drain() -> [Message] { queue.withLock { messages in defer { messages = [] }; return messages } }
}

/// What stops a worker from starting.
public enum WorkerError: Error, CustomStringConvertible {
    case keys(directory: String, reason: String)
    case insecureNotLoopback(endpoint: String)

    public var description: String {
        switch self {
        case let .keys(directory, reason):
            "the worker's keys in '\(directory)' cannot be used: \(reason). It needs worker.key and coordinator.pub there (`fluxctl up` writes them), or --insecure on loopback."
        case let .insecureNotLoopback(endpoint):
            "--insecure with coordinator '\(endpoint)': plain TCP is allowed on loopback only."
        }
    }
}
