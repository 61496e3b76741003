import Foundation
import FluxJobs
import FluxProtocol
import FluxSweep
import FluxTraining
import FluxTransport
import FluxWire
import Logging
import ServiceLifecycle
import Synchronization

/// Where and how the coordinator listens.
public struct CoordinatorOptions: Sendable {
    /// The state dir: SQLite store, lock, pid, keys, allowlists, checkpoints.
    public var stateDirectory: URL
    /// The worker endpoint (ROUTER), design §1 default port 7400.
    public var workerEndpoint = "tcp://127.0.0.1:7400"
    /// The client endpoint (ROUTER), default port 7401.
    public var clientEndpoint = "tcp://127.0.0.1:7401"
    /// Plain TCP (loopback only); otherwise CURVE with `DIR/keys/coordinator.key` and the two allowlists.
    public var insecure = false
    /// Liveness and grace settings.
    public var settings = CoordinatorMachine.Settings()
    /// Checkpoints kept per job.
    public var keepCheckpoints = 3

    /// Options for a state dir.
    public init(stateDirectory: URL) { self.stateDirectory = stateDirectory }
}

/// The coordinator daemon's I/O shell (design §1): binds the worker and client endpoints, feeds what arrives to
/// `CoordinatorMachine`, carries out its actions (messages, store writes, checkpoint files), and answers clients
/// from the machine and the store. One thread owns every socket (style §E); input never stops it: undecodable
/// messages are answered with `error`, counted and logged at a limited rate.
public final class Coordinator: Service, Sendable {
    private let options: CoordinatorOptions
    private let logger: Logger
    private let stopRequested = Atomic<Bool>(false)

    /// A coordinator with these options (nothing is opened until `run`).
    public init(options: CoordinatorOptions, logger: Logger) {
        self.options = options
        self.logger = logger
    }

    /// Runs until SIGTERM/SIGINT (a graceful shutdown) or `stop()`.
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
                thread.name = "flux-coordinator"
                thread.start()
            }
        } onGracefulShutdown: { [self] in
            stop()
        }
    }

    /// Asks the loop to finish (idempotent).
    public func stop() { stopRequested.store(true, ordering: .releasing) }

    // MARK: - The loop

    private func serve() throws {
        let directory = options.stateDirectory
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        } catch {
            throw CoordinatorError.stateDirectory(path: directory.path, reason: "\(error)")
        }
        let lock = try StateDirectoryLock(directory: directory)
        defer { withExtendedLifetime(lock) {} }
        try "\(getpid())\n".write(to: directory.appendingPathComponent("coordinator.pid"), atomically: true, encoding: .utf8)
        let store = try Store(path: directory.appendingPathComponent("coordinator.sqlite").path)
        var machine = CoordinatorMachine(settings: options.settings)
        let clock = ContinuousClock()
        let start = clock.now
        func now() -> Double {
            let elapsed = (clock.now - start).components
            return Double(elapsed.seconds) + Double(elapsed.attoseconds) / 1e18
        }
        let restored = try store.jobs().filter { !$0.isTerminal }
        machine.restore(jobs: try store.jobs(), now: now())
        if !restored.isEmpty { logger.info("restored \(restored.count) unfinished job(s) from the store") }

        let context = try ZMQContext()
        defer { context.close() }
        let workers = try context.makeSocket(.router)
        let clients = try context.makeSocket(.router)
        var authenticator: Authenticator?
        if options.insecure {
            for endpoint in [options.workerEndpoint, options.clientEndpoint] where !Self.isLoopback(endpoint) {
                throw CoordinatorError.insecureNotLoopback(endpoint: endpoint)
            }
            logger.warning("--insecure: plain TCP on loopback, no keys checked")
        } else {
            let keys = try Self.loadKeys(directory)
            authenticator = try Authenticator(
                context: context,
                allowlists: ["flux-workers": keys.workers, "flux-clients": keys.clients]
            ) { [logger] line in logger.warning("\(line)") }
            try workers.makeCurveServer(keys: keys.pair, domain: "flux-workers")
            try clients.makeCurveServer(keys: keys.pair, domain: "flux-clients")
        }
        defer { authenticator?.stop() }
        try workers.set([.linger(.zero), .routerMandatory(false), .maximumMessageSize(2 << 30)])
        try clients.set([.linger(.zero), .routerMandatory(false), .maximumMessageSize(64 << 20)])
        do {
            _ = try workers.bind(options.workerEndpoint)
            _ = try clients.bind(options.clientEndpoint)
        } catch {
            throw CoordinatorError.endpoint("\(options.workerEndpoint) / \(options.clientEndpoint)", reason: "\(error)")
        }
        // Plain (NULL) peers never reach ZAP: watch the handshakes so they are counted and logged too.
        if let authenticator {
            try authenticator.watch(workers)
            try authenticator.watch(clients)
        }
        logger.info("coordinator ready: workers \(options.workerEndpoint), clients \(options.clientEndpoint), state \(directory.path)")

        var shell = Shell(store: store, workers: workers, logger: logger, directory: directory,
                          keep: options.keepCheckpoints)
        var poller = Poller()
        poller.add(workers)
        poller.add(clients)
        var allowlistsRead = Date()
        var lastTick = -Double.infinity
        while !stopRequested.load(ordering: .acquiring) {
            if let authenticator, Date().timeIntervalSince(allowlistsRead) > 0.5 {
                reloadChangedAllowlists(authenticator, since: allowlistsRead)
                allowlistsRead = Date()
            }
            let ready = try poller.poll(timeout: .milliseconds(50))
            if ready.isReadable(workers) {
                while let frames = try workers.tryReceive() {
                    shell.workerMessage(frames, machine: &machine, now: now())
                }
            }
            if ready.isReadable(clients) {
                while let frames = try clients.tryReceive() {
                    shell.clientRequest(frames, socket: clients, machine: &machine, now: now())
                }
            }
            // The machine's clock work (heartbeats, liveness, grace periods) needs no finer grain than 20 ms.
            if now() - lastTick >= 0.02 {
                lastTick = now()
                shell.perform(machine.tick(now: lastTick), machine: &machine)
            }
            shell.flush(machine)
        }
        shell.flush(machine)
        logger.info("coordinator stopping")
    }

    /// Allowlists edited while running (`fluxctl up --add` appends worker keys) take effect without a restart.
    private func reloadChangedAllowlists(_ authenticator: Authenticator, since: Date) {
        for (file, domain) in [("workers.allow", "flux-workers"), ("clients.allow", "flux-clients")] {
            let path = options.stateDirectory.appendingPathComponent(file).path
            guard let modified = (try? FileManager.default.attributesOfItem(atPath: path))?[.modificationDate] as? Date,
                  modified >= since.addingTimeInterval(-1) else { continue }
            do { try authenticator.reloadAllowlist(from: path, for: domain) } catch {
                logger.error("cannot reload \(file): \(error); keeping the previous list")
            }
        }
    }

    static func isLoopback(_ endpoint: String) -> Bool {
        endpoint.hasPrefix("tcp://127.") || endpoint.hasPrefix("tcp://localhost:") || endpoint.hasPrefix("ipc://")
            || endpoint.hasPrefix("inproc://")
    }

    /// The coordinator's key pair and allowlists from `DIR/keys/` and `DIR/*.allow`.
    static func loadKeys(_ directory: URL) throws -> (pair: CurveKeyPair, workers: Allowlist, clients: Allowlist) {
        let keyFile = directory.appendingPathComponent("keys/coordinator.key").path
        do {
            let pair = try CurveKeyPair.load(keyFile: keyFile)
            let workers = try Allowlist.load(path: directory.appendingPathComponent("workers.allow").path)
            let clients = try Allowlist.load(path: directory.appendingPathComponent("clients.allow").path)
            return (pair, workers, clients)
        } catch {
            throw CoordinatorError.keys(reason: "cannot load the coordinator's keys or allowlists in '\(directory.path)': \(error)")
        }
    }
}

/// The effects of the coordinator: what the machine's actions and the requests need from sockets and the store.
private struct Shell {
    let store: Store
    let workers: Socket
    let logger: Logger
    let directory: URL
    let keep: Int
    var dropped = 0
    let codec = MessageCodec()
    /// Each worker's current ROUTER routing id, and the reverse.
    var routes: [WorkerID: Frame] = [:]
    var senders: [Frame: WorkerID] = [:]
    var lastDropLog = ContinuousClock.now - .seconds(10)
    /// Store writes of this turn of the loop, committed together by `flush` (one transaction, not one per action).
    var pendingJobs = Set<JobID>()
    var pendingWorkers = Set<WorkerID>()
    var pendingEvents: [(job: JobID, kind: String, worker: WorkerID?, text: String)] = []
    var pendingResults: [CellResultRow] = []
    /// Sweeps' specs, cells and finished cells' metrics, built on first use (also after a restart).
    var sweeps: [JobID: SweepContext] = [:]

    /// Writes this turn's job rows and events in one transaction. Called before any reply that reports them.
    mutating func flush(_ machine: CoordinatorMachine) {
        guard !pendingJobs.isEmpty || !pendingEvents.isEmpty || !pendingWorkers.isEmpty || !pendingResults.isEmpty
        else { return }
        do {
            try store.commit(jobs: pendingJobs.compactMap { machine.jobs[$0] }, events: pendingEvents,
                             workers: pendingWorkers.compactMap { machine.workers[$0] }, results: pendingResults)
        } catch {
            logger.error("\(error)")
        }
        pendingJobs = []
        pendingEvents = []
        pendingWorkers = []
        pendingResults = []
    }

    init(store: Store, workers: Socket, logger: Logger, directory: URL, keep: Int) {
        self.store = store
        self.workers = workers
        self.logger = logger
        self.directory = directory
        self.keep = keep
    }

    mutating func drop(_ what: String) {
        dropped += 1
        if ContinuousClock.now - lastDropLog > .seconds(1) {
            lastDropLog = .now
            logger.warning("dropped \(what) (\(dropped) dropped so far)")
        }
    }

    // MARK: Workers

    mutating func workerMessage(_ frames: [Frame], machine: inout CoordinatorMachine, now: Double) {
        guard frames.count >= 2 else { return drop("a worker message without a routing id") }
        let route = frames[0]
        let message: Message
        do {
            message = try codec.decode(Array(frames.dropFirst()))
        } catch {
            drop("a worker message: \(error)")
            try? workers.send(.error(ErrorReply(error)), to: route)
            return
        }
        if case let .register(register) = message {
            if let old = routes[register.workerID] { senders[old] = nil }
            routes[register.workerID] = route
            senders[route] = register.workerID
            logger.info("worker \(register.workerID) registered (\(register.dataEndpoint), pid \(register.pid.map(String.init) ?? "?"))")
            perform(machine.register(register, now: now), machine: &machine)
            return
        }
        guard let worker = senders[route], machine.workers[worker] != nil else {
            // A worker we do not know (we restarted, or it was declared dead): it must register again.
            try? workers.send(.error(ErrorReply(code: .notFound, message: "register first", inReplyTo: message.type.rawValue)), to: route)
            return
        }
        switch message {
        case .heartbeat:
            if machine.workers[worker]?.alive == false {
                try? workers.send(.error(ErrorReply(code: .notFound, message: "declared dead; register again",
                                                    inReplyTo: "heartbeat")), to: route)
            } else {
                perform(machine.heard(from: worker, now: now), machine: &machine)
            }
        case let .log(line):
            try? store.appendLog(job: line.job, level: line.level, text: "[\(worker)] \(line.text)")
            perform(machine.heard(from: worker, now: now), machine: &machine)
        case let .checkpoint(transfer):
            storeCheckpoint(transfer, from: worker, machine: &machine)
            perform(machine.heard(from: worker, now: now), machine: &machine)
        default:
            perform(machine.handle(message, from: worker, now: now), machine: &machine)
        }
    }

    mutating func storeCheckpoint(_ transfer: CheckpointTransfer, from worker: WorkerID, machine: inout CoordinatorMachine) {
        let folder = directory.appendingPathComponent("jobs/\(transfer.job.rawValue)/checkpoints")
        do {
            let path = try Checkpoint.write(files: transfer.files.map { ($0.name, $0.contents) }, step: transfer.step,
                                            in: folder, keep: keep)
            try store.addCheckpoint(job: transfer.job, step: transfer.step, path: path.path)
            try? workers.send(.checkpointSaved(CheckpointSaved(job: transfer.job, step: transfer.step)),
                              to: routes[worker] ?? Frame([]))
            perform(machine.checkpointStored(job: transfer.job, step: transfer.step), machine: &machine)
        } catch {
            logger.error("checkpoint of \(transfer.job) step \(transfer.step) from \(worker) not stored: \(error)")
            try? store.appendEvent(job: transfer.job, kind: "checkpoint_failed", worker: worker, text: "\(error)")
        }
    }

    // MARK: Actions

    mutating func perform(_ actions: [CoordinatorAction], machine: inout CoordinatorMachine) {
        for action in actions {
            switch action {
            case let .send(worker, message):
                guard let route = routes[worker] else { continue }
                do { try workers.send(message, to: route) } catch {
                    logger.warning("cannot send \(message.type.rawValue) to \(worker): \(error)")
                }
            case let .event(job, kind, worker, text):
                logger.info("\(job): \(text)")
                pendingEvents.append((job, kind, worker, text))
            case let .persistJob(id):
                pendingJobs.insert(id)
            case let .persistWorker(id):
                pendingWorkers.insert(id)
            case let .sendCheckpoint(worker, job, step):
                sendCheckpoint(job: job, step: step, to: worker)
            case let .storeStepHashes(job, worker, hashes):
                do {
                    for mismatch in try store.addStepHashes(job: job, worker: worker, hashes: hashes) {
                        let text = "step \(mismatch.step) reported again with other bits: \(mismatch.reported.prefix(16))… by \(worker), first \(mismatch.first.prefix(16))…"
                        logger.warning("\(job): \(text)")
                        pendingEvents.append((job, "hash_mismatch", worker, text))
                    }
                } catch {
                    logger.error("\(job): step hashes from \(worker) not stored: \(error)")
                }
            case let .storeCellResult(_, unit, worker, finished):
                pendingResults.append(CellResultRow(unit: unit, worker: worker, result: finished))
            case let .sweepFinished(job):
                flush(machine)
                writeArtifacts(job, machine: machine)
            }
        }
    }

    /// The sweep's context, with every finished cell summarized.
    mutating func sweepContext(_ job: JobRecord) throws -> SweepContext {
        var context = try sweeps[job.id] ?? SweepContext(specYAML: job.requirements.specYAML)
        if context.finished.count < (job.sweep?.cellCounts.done ?? 0) {
            context.absorb(try store.cellResults(job: job.id), shards: job.sweep?.shards ?? 1)
        }
        sweeps[job.id] = context
        return context
    }

    /// Writes a finished sweep's report (text, Markdown, CSV, JSON) and plot to `DIR/jobs/ID/artifacts/`.
    mutating func writeArtifacts(_ id: JobID, machine: CoordinatorMachine) {
        guard let job = machine.jobs[id] else { return }
        let folder = directory.appendingPathComponent("jobs/\(id.rawValue)/artifacts")
        do {
            try sweepContext(job).report(job: id).writeArtifacts(to: folder)
            pendingEvents.append((id, "report", nil, "report and plot written to \(folder.path)"))
        } catch {
            logger.error("\(id): cannot write the sweep's report: \(error)")
            pendingEvents.append((id, "report_failed", nil, "cannot write the report: \(error)"))
        }
    }

    /// Parses a sweep spec, resolves its checkpoint to a folder and expands its cells.
    func sweepRequirements(_ yaml: String) throws -> JobRequirements {
        var spec = try SweepSpec.parse(yaml: yaml, source: "the submitted sweep")
        if case let .job(name) = spec.checkpoint {
            let source = JobID(rawValue: name)
            guard let newest = try store.checkpoints(job: source).last else {
                throw SweepSubmissionError.unknownCheckpoint(
                    "job '\(name)' has no stored checkpoint (`fluxctl checkpoints \(name)`; a training job stores its final one when it ends)")
            }
            spec.checkpoint = .path(newest.path)
        }
        let model = try SweepContext.model(of: spec)
        let cells = try spec.cells(model: model)
        return .sweep(name: spec.name, cells: cells.count, maxWorkers: spec.maxWorkers, priority: spec.priority,
                      specYAML: spec.canonicalYAML)
    }

    func sendCheckpoint(job: JobID, step: Int, to worker: WorkerID) {
        let folder = directory.appendingPathComponent("jobs/\(job.rawValue)/checkpoints/\(Checkpoint.folderName(step: step))")
        do {
            let files = try ["model.safetensors", "optimizer.safetensors", "state.json"].map {
                CheckpointFile(name: $0, contents: try Data(contentsOf: folder.appendingPathComponent($0)))
            }
            guard let route = routes[worker] else { return }
            try workers.send(.checkpoint(CheckpointTransfer(job: job, generation: 0, step: step, files: files)), to: route)
        } catch {
            logger.error("cannot send the checkpoint of step \(step) of \(job) to \(worker): \(error)")
        }
    }

    // MARK: Clients

    mutating func clientRequest(_ frames: [Frame], socket: Socket, machine: inout CoordinatorMachine, now: Double) {
        guard frames.count >= 2 else { return drop("a client message without a routing id") }
        let route = frames[0]
        let reply: Message
        do {
            let request = try codec.decode(Array(frames.dropFirst()))
            flush(machine)
            reply = answer(request, machine: &machine, now: now)
            flush(machine)
        } catch {
            drop("a client request: \(error)")
            reply = .error(ErrorReply(error))
        }
        do { try socket.send(reply, to: route) } catch { logger.warning("cannot answer a client: \(error)") }
    }

    mutating func answer(_ request: Message, machine: inout CoordinatorMachine, now: Double) -> Message {
        do {
            switch request {
            case let .submit(submit) where SweepSpec.isSweep(yaml: submit.specYAML):
                let requirements: JobRequirements
                do { requirements = try sweepRequirements(submit.specYAML) } catch {
                    return .error(ErrorReply(code: .invalidSpec, message: "\(error)", inReplyTo: "submit"))
                }
                let id = machine.nextJobID
                perform(machine.submit(id, requirements: requirements, now: now), machine: &machine)
                return .submitted(Submitted(job: id))
            case let .submit(submit):
                let spec: JobSpec
                do {
                    spec = try JobSpec.parse(yaml: submit.specYAML, source: "the submitted spec")
                } catch {
                    return .error(ErrorReply(code: .invalidSpec, message: "\(error)", inReplyTo: "submit"))
                }
                let id = machine.nextJobID
                let requirements = JobRequirements(
                    name: spec.name, minWorkers: spec.workers.min, maxWorkers: spec.workers.max,
                    priority: spec.priority, ringSecurity: spec.ringSecurity == .none ? .none : .curve,
                    specYAML: spec.canonicalYAML, exact: spec.reduction == .exact)
                perform(machine.submit(id, requirements: requirements, now: now), machine: &machine)
                return .submitted(Submitted(job: id))
            case let .status(status):
                let jobs = machine.jobs.values.filter { status.job == nil || $0.id == status.job }
                    .sorted { $0.sequence > $1.sequence }
                if let id = status.job, jobs.isEmpty { return notFound(id, "status") }
                return .statusReply(StatusReply(jobs: jobs.map { Self.status($0, machine: machine) }))
            case let .logs(request):
                guard machine.jobs[request.job] != nil else { return notFound(request.job, "logs") }
                let lines = try store.logs(job: request.job, after: request.after, limit: min(request.limit, 5000))
                return .logsReply(LogsReply(job: request.job, lines: lines, next: lines.last?.id ?? request.after))
            case let .events(request):
                guard machine.jobs[request.job] != nil else { return notFound(request.job, "events") }
                return .eventsReply(EventsReply(job: request.job, events: try store.events(job: request.job)))
            case let .hashes(request):
                guard machine.jobs[request.job] != nil else { return notFound(request.job, "hashes") }
                let stored = try store.stepHashes(job: request.job)
                return .hashesReply(HashesReply(job: request.job, hashes: stored.hashes, mismatches: stored.mismatches))
            case let .checkpoints(request):
                guard machine.jobs[request.job] != nil else { return notFound(request.job, "checkpoints") }
                return .checkpointsReply(CheckpointsReply(job: request.job, checkpoints: try store.checkpoints(job: request.job)))
            case let .cancel(request):
                switch machine.cancel(request.job, now: now) {
                case let .success(actions):
                    perform(actions, machine: &machine)
                    return .cancelled(Cancelled(job: request.job))
                case .failure(.notFound):
                    return notFound(request.job, "cancel")
                case let .failure(.alreadyEnded(state)):
                    return .error(ErrorReply(code: .conflict, message: "job \(request.job) already ended (\(state))",
                                             inReplyTo: "cancel"))
                }
            case .workers:
                return .workersReply(WorkersReply(workers: machine.workers.values.sorted { $0.id.rawValue < $1.id.rawValue }.map {
                    WorkerInfo(workerID: $0.id, dataEndpoint: $0.dataEndpoint, cores: $0.cores, version: $0.version,
                               state: !$0.alive ? .dead : ($0.job == nil ? .idle : .busy),
                               task: $0.job.map { [task = $0.task] job in TaskRef(job: job, task: task ?? CoordinatorMachine.trainingTask) },
                               lastSeenMS: Int64(max(0, now - $0.lastSeen) * 1000), pid: $0.pid, host: $0.host)
                }))
            case let .results(request):
                guard let job = machine.jobs[request.job] else { return notFound(request.job, "results") }
                guard job.sweep != nil else { return .resultsReply(ResultsReply(job: request.job, rows: [])) }
                let report = try sweepContext(job).report(job: job.id)
                let rows = report.grid.map { result in
                    ResultRow(cell: "budget=\(result.cell.budget) frames=\(result.cell.candidate.frames) size=\(result.cell.candidate.size)",
                              metrics: ["top1": result.eval.top1, "top5": result.eval.top5, "gmacs": result.cell.gmacs,
                                        "kept_tokens": Double(result.cell.keptTokens)])
                }
                return .resultsReply(ResultsReply(job: job.id, rows: rows, report: Data(report.render(.json).utf8)))
            default:
                return .error(ErrorReply(code: .badRequest, message: "'\(request.type.rawValue)' is not a client request",
                                         inReplyTo: request.type.rawValue))
            }
        } catch {
            logger.error("\(error)")
            return .error(ErrorReply(code: .internal, message: "\(error)", inReplyTo: request.type.rawValue))
        }
    }

    func notFound(_ job: JobID, _ type: String) -> Message {
        .error(ErrorReply(code: .notFound, message: "no job '\(job)'; `fluxctl jobs` lists them", inReplyTo: type))
    }

    static func status(_ job: JobRecord, machine: CoordinatorMachine) -> JobStatus {
        if let sweep = job.sweep {
            let counts = sweep.cellCounts
            let busy = machine.workers.values.filter { $0.job == job.id }.count
            return JobStatus(job: job.id, name: job.requirements.name, kind: .sweep, state: job.state, workers: busy,
                             done: counts.done, total: sweep.cells, message: job.message,
                             running: counts.running, pending: counts.pending,
                             etaSeconds: job.isTerminal ? nil : sweep.eta(parallel: busy))
        }
        return JobStatus(job: job.id, name: job.requirements.name, kind: .training, state: job.state,
                  generation: job.generation == 0 ? nil : job.generation, workers: job.members.count, done: job.done,
                  total: job.total, message: job.message, losses: job.losses, rate: job.rate,
                  committedStep: job.committedStep, notReproducible: job.notReproducible,
                  recoveries: job.recoveries?.count, recoveryP50: job.recoveryPercentiles?.p50,
                  recoveryP95: job.recoveryPercentiles?.p95)
    }
}
