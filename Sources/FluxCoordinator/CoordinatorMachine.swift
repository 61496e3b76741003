import FluxProtocol

/// What a job needs from the cluster, taken from its validated spec by the shell (the machine never parses YAML).
public struct JobRequirements: Sendable, Equatable, Codable {
    /// The spec's `name`.
    public var name: String
    /// The fewest workers it trains on; below this for longer than the grace period, it fails.
    public var minWorkers: Int
    /// The most workers it takes.
    public var maxWorkers: Int
    /// Higher runs first; equal priorities run in submission order.
    public var priority: Int
    /// `ring_security`.
    public var ringSecurity: RingSecurity
    /// The validated spec, as `assign` carries it.
    public var specYAML: String
    /// Training or sweep.
    public var kind: JobKind
    /// For a sweep: the cells of its expansion (0 for training).
    public var cells: Int
    /// A training job with `reduction: exact`: its workers must agree on threads and kernels to stay bit-reproducible.
    public var exact: Bool

    /// Requirements.
    public init(name: String, minWorkers: Int, maxWorkers: Int, priority: Int = 0, ringSecurity: RingSecurity = .curve,
                specYAML: String, kind: JobKind = .training, cells: Int = 0, exact: Bool = false) {
        self.name = name
        self.minWorkers = minWorkers
        self.maxWorkers = maxWorkers
        self.priority = priority
        self.ringSecurity = ringSecurity
        self.specYAML = specYAML
        self.kind = kind
        self.cells = cells
        self.exact = exact
    }

    /// A sweep's requirements: it runs on 1 to `maxWorkers` workers.
    public static func sweep(name: String, cells: Int, maxWorkers: Int, priority: Int = 0, specYAML: String) -> Self {
        JobRequirements(name: name, minWorkers: 1, maxWorkers: maxWorkers, priority: priority, specYAML: specYAML,
                        kind: .sweep, cells: cells)
    }

    enum CodingKeys: String, CodingKey {
        case name, minWorkers, maxWorkers, priority, ringSecurity, specYAML, kind, cells, exact
    }

    /// Records stored before sweeps existed have neither `kind` nor `cells`: they are training jobs.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        minWorkers = try c.decode(Int.self, forKey: .minWorkers)
        maxWorkers = try c.decode(Int.self, forKey: .maxWorkers)
        priority = try c.decode(Int.self, forKey: .priority)
        ringSecurity = try c.decode(RingSecurity.self, forKey: .ringSecurity)
        specYAML = try c.decode(String.self, forKey: .specYAML)
        kind = try c.decodeIfPresent(JobKind.self, forKey: .kind) ?? .training
        cells = try c.decodeIfPresent(Int.self, forKey: .cells) ?? 0
        exact = try c.decodeIfPresent(Bool.self, forKey: .exact) ?? false
    }
}

/// A registered worker as the coordinator sees it.
public struct WorkerEntry: Sendable, Equatable {
    public var id: WorkerID
    public var dataEndpoint: String
    public var publicKey: String?
    public var cores: Int
    public var version: String
    public var pid: Int?
    public var host: String?
    /// Its kernels' run-time code paths (`Register.kernels`).
    public var kernels: String?
    /// When the coordinator last heard from it (seconds on the machine's clock).
    public var lastSeen: Double
    /// False once it missed too many heartbeats or its process was seen to end.
    public var alive: Bool
    /// The job it works for (a training member or joiner, or a sweep's cell).
    public var job: JobID?
    /// For a sweep: the cell task it computes.
    public var task: TaskID?
    /// It announced it leaves (SIGTERM): never scheduled again.
    public var leaving: Bool
}

/// One job's bookkeeping: for training, members in rank order, generation, commits, progress; for a sweep, its
/// units (`sweep`).
public struct JobRecord: Sendable, Equatable, Codable {
    public var id: JobID
    public var requirements: JobRequirements
    public var state: JobState
    /// Submission order, for FIFO among equal priorities.
    public var sequence: Int
    /// Workers of the current generation, in rank order.
    public var members: [WorkerID]
    /// Workers assigned and waiting to be admitted at the next commit.
    public var joining: [WorkerID]
    /// Workers that hold this job's state (they trained in an earlier generation).
    public var trained: Set<WorkerID>
    /// The current generation (0: never formed).
    public var generation: UInt64
    /// The newest step any rank reported committing.
    public var committedStep: Int
    /// The newest checkpoint the coordinator stored.
    public var checkpointStep: Int?
    /// Steps done and in all, as rank 0 reports them.
    public var done: Int
    public var total: Int
    /// Recent mean losses (at most 100).
    public var losses: [Double]
    public var rate: Double?
    /// Why it waits or why it ended.
    public var message: String?
    /// Since when it has had fewer than `minWorkers` members while running (nil when enough).
    public var belowMinSince: Double?
    /// Ranks that reported the task finished.
    public var finished: Set<WorkerID>
    /// A sweep's units; nil for training.
    public var sweep: SweepProgress?
    /// `reduction: exact` only: why the job stopped being bit-reproducible (said once, in events and status).
    public var notReproducible: String?
    /// Since when the ring is disrupted (a worker lost, leaving or admitted, a broken ring, a coordinator restart):
    /// the recovery ends with the first step of the ring formed after it. Seconds on the machine's clock.
    public var disruptedAt: Double?
    /// Each recovery's duration in seconds, oldest first (at most 1,000; nil until the first).
    public var recoveries: [Double]?

    /// The median and 95th percentile of `recoveries` (nearest rank), nil before the first.
    public var recoveryPercentiles: (p50: Double, p95: Double)? {
        guard let times = recoveries?.sorted(), !times.isEmpty else { return nil }
        func rank(_ p: Double) -> Double { times[max(0, Int((p * Double(times.count)).rounded(.up)) - 1)] }
        return (rank(0.5), rank(0.95))
    }

    /// A new queued job.
    public init(id: JobID, requirements: JobRequirements, sequence: Int) {
        self.id = id
        self.requirements = requirements
        self.state = .queued
        self.sequence = sequence
        self.members = []
        self.joining = []
        self.trained = []
        self.generation = 0
        self.committedStep = 0
        self.checkpointStep = nil
        self.done = 0
        self.total = 0
        self.losses = []
        self.rate = nil
        self.message = nil
        self.belowMinSince = nil
        self.finished = []
        self.sweep = requirements.kind == .sweep ? SweepProgress(cells: requirements.cells) : nil
    }

    /// Whether the job has ended.
    public var isTerminal: Bool { [.succeeded, .failed, .cancelled].contains(state) }
}

/// What the coordinator's shell must do after a decision.
public enum CoordinatorAction: Sendable, Equatable {
    /// Send a message to a worker.
    case send(WorkerID, Message)
    /// Record an event of a job (the store keeps it; `fluxctl events` and `explain` read it).
    case event(JobID, kind: String, worker: WorkerID?, text: String)
    /// The job's row changed: persist it.
    case persistJob(JobID)
    /// A worker registered, died or left: persist its row.
    case persistWorker(WorkerID)
    /// Send the job's newest stored checkpoint to this worker (it resumes from it; no member holds the state).
    case sendCheckpoint(WorkerID, JobID, step: Int)
    /// Store rank 0's step hashes (the first hash of a step stays; a different one for the same step is a mismatch).
    case storeStepHashes(JobID, worker: WorkerID, [StepHash])
    /// Store a sweep unit's scores, in the same transaction as the job row that marks it done.
    case storeCellResult(JobID, unit: Int, worker: WorkerID, TaskFinished)
    /// Every unit of a sweep is done: write its report and plot to the job's artifacts.
    case sweepFinished(JobID)
}

/// The coordinator's decisions (design §1, §4) as a value: worker liveness, scheduling, ring generations,
/// commits, joins, leaves and failures. Time is passed in (seconds on any monotonic clock), so every decision is
/// tested with scripted events, without sockets or sleeps; the `Coordinator` shell does the I/O.
public struct CoordinatorMachine: Sendable {
    /// Liveness and failure settings.
    public struct Settings: Sendable, Equatable {
        /// Heartbeat interval, seconds.
        public var heartbeatInterval: Double = 1
        /// A worker is dead after this many intervals of silence.
        public var heartbeatMisses: Int = 3
        /// After a restart, members have this long to re-register before they count as lost (at least the heartbeat
        /// timeout): a worker that lost the coordinator reconnects with a backoff of up to 5 s, and a job whose last
        /// rank comes back late must not be ended without the final checkpoint that rank replays.
        public var restoreWindow: Double = 10
        /// A running job fails after this long below its `min` workers.
        public var gracePeriod: Double = 30
        /// A sweep unit running this many times the median unit's duration gets a second run on an idle worker…
        public var stragglerFactor: Double = 3
        /// …and at least this many seconds longer than the median.
        public var stragglerMinimum: Double = 10
        /// The coordinator's release, for `registered`.
        public var version: String = "0.4.0"
        /// Settings.
        public init() {}
    }

    public let settings: Settings
    public internal(set) var workers: [WorkerID: WorkerEntry] = [:]
    public internal(set) var jobs: [JobID: JobRecord] = [:]
    private var nextSequence = 0
    /// Unfinished jobs in scheduling order (priority, then submission), kept sorted as jobs come and go, so a
    /// decision costs O(unfinished jobs), not a sort of every job ever submitted.
    private var active: [JobID] = []
    private var lastHeartbeat = -Double.infinity
    /// When jobs were restored from the store (members that never re-register are lost after the timeout).
    var restoredAt: Double?

    /// An empty cluster.
    public init(settings: Settings = Settings()) { self.settings = settings }

    /// The id and task name every training rank uses.
    public static let trainingTask: TaskID = "train"

    // MARK: - Restart

    /// Adopts jobs read from the store after a restart; their members must re-register within the heartbeat
    /// timeout or count as lost.
    public mutating func restore(jobs restored: [JobRecord], now: Double) {
        for var job in restored {
            // Times of the previous process's clock mean nothing on this one: the grace period starts again.
            if job.belowMinSince != nil { job.belowMinSince = now }
            // A restart interrupts what the coordinator sees of a running job; it recovers at its next reported step.
            job.disruptedAt = job.state == .running && job.sweep == nil ? now : nil
            if var sweep = job.sweep {
                for unit in sweep.running.keys { sweep.running[unit] = sweep.running[unit]!.map { .init(worker: $0.worker, since: now) } }
                job.sweep = sweep
            }
            jobs[job.id] = job
            nextSequence = max(nextSequence, job.sequence + 1)
            if !job.isTerminal { activate(job.id) }
        }
        restoredAt = now
    }

    // MARK: - Workers

    /// A worker registered (first time, after a reconnect, or after a coordinator restart).
    public mutating func register(_ message: Register, now: Double) -> [CoordinatorAction] {
        let id = message.workerID
        var entry = workers[id] ?? WorkerEntry(
            id: id, dataEndpoint: message.dataEndpoint, publicKey: message.publicKey, cores: message.cores,
            version: message.version, pid: message.pid, host: message.host, kernels: message.kernels, lastSeen: now,
            alive: true, job: nil, task: nil, leaving: false)
        entry.dataEndpoint = message.dataEndpoint
        entry.publicKey = message.publicKey
        entry.cores = message.cores
        entry.version = message.version
        entry.pid = message.pid
        entry.host = message.host
        entry.kernels = message.kernels
        entry.lastSeen = now
        entry.alive = true
        entry.leaving = false  // a registration is a new process or session
        var actions: [CoordinatorAction] = [
            .persistWorker(id),
            .send(id, .registered(Registered(
                workerID: id, heartbeatIntervalMS: Int(settings.heartbeatInterval * 1000),
                heartbeatMisses: settings.heartbeatMisses, coordinatorVersion: settings.version)))
        ]
        // Adopt the task it still runs when its job still counts it; otherwise tell it to drop the task.
        let previousJob = entry.job
        entry.job = nil
        entry.task = nil
        if let running = message.runningTask {
            if let job = jobs[running.job], job.sweep != nil {
                workers[id] = entry
                actions += adoptCell(running, by: id, now: now)
                entry = workers[id]!
            } else if let job = jobs[running.job], !job.isTerminal, job.members.contains(id) || job.joining.contains(id) {
                entry.job = job.id
                if let step = message.committedStep, step > job.committedStep {
                    jobs[job.id]?.committedStep = step
                }
            } else {
                actions.append(.send(id, .stopTask(StopTask(
                    job: running.job, task: running.task, reason: "the job no longer counts this worker"))))
            }
        }
        workers[id] = entry
        // It came back without the task a job counts it for (a new process, or the coordinator restarted): it no
        // longer trains that job.
        var stale = Set(jobs.values.filter { !$0.isTerminal && ($0.members.contains(id) || $0.joining.contains(id)) }
            .map(\.id))
        if let previousJob { stale.insert(previousJob) }
        for jobID in stale.sorted() where jobID != entry.job {
            actions += lose(id, from: jobID, why: "it re-registered without its task", now: now)
        }
        actions += releaseRuns(of: id, except: entry.task.map { TaskRef(job: entry.job!, task: $0) },
                               why: "it re-registered without that task", now: now)
        actions += schedule(now: now)
        return actions
    }

    /// Any message from a worker shows it is alive.
    public mutating func heard(from id: WorkerID, now: Double) -> [CoordinatorAction] {
        guard var entry = workers[id] else { return [] }
        entry.lastSeen = now
        workers[id] = entry
        return []
    }

    /// Whether a worker is registered (the shell asks unknown senders to register).
    public func isRegistered(_ id: WorkerID) -> Bool { workers[id]?.alive == true }

    // MARK: - Jobs

    /// The id the next submitted job gets (`j-000001`, …): unique across restarts, since restored jobs advance it.
    public var nextJobID: JobID { JobID(rawValue: String(format: "j-%06d", nextSequence + 1)) }

    /// A validated job was submitted under `id`.
    public mutating func submit(_ id: JobID, requirements: JobRequirements, now: Double) -> [CoordinatorAction] {
        jobs[id] = JobRecord(id: id, requirements: requirements, sequence: nextSequence)
        nextSequence += 1
        activate(id)
        var actions: [CoordinatorAction] = [
            .persistJob(id),
            .event(id, kind: "submitted", worker: nil,
                   text: "submitted '\(requirements.name)' for \(requirements.minWorkers)–\(requirements.maxWorkers) workers"),
        ]
        actions += schedule(now: now)
        if let job = jobs[id], job.state == .queued, job.message == nil {
            let text = "waiting for workers: \(idleWorkers().count) free of the \(requirements.minWorkers) it needs"
            jobs[id]?.message = text
            actions += [.persistJob(id), .event(id, kind: "waiting", worker: nil, text: text)]
        }
        return actions
    }

    /// Why a cancellation cannot be done.
    public enum CancelRefusal: Error, Equatable {
        case notFound
        case alreadyEnded(JobState)
    }

    /// A client cancels a job.
    public mutating func cancel(_ id: JobID, now: Double) -> Result<[CoordinatorAction], CancelRefusal> {
        guard let job = jobs[id] else { return .failure(.notFound) }
        guard !job.isTerminal else { return .failure(.alreadyEnded(job.state)) }
        return .success(end(id, state: .cancelled, kind: "cancelled", text: "cancelled by a client", now: now))
    }

    // MARK: - Worker messages

    /// A message from a registered worker about its task.
    public mutating func handle(_ message: Message, from id: WorkerID, now: Double) -> [CoordinatorAction] {
        var actions = heard(from: id, now: now)
        if let job = Self.job(of: message), jobs[job]?.sweep != nil {
            return actions + handleSweep(message, job: job, from: id, now: now)
        }
        switch message {
        case let .commit(commit): actions += committed(commit, by: id, now: now)
        case let .progress(report): actions += progressed(report, by: id, now: now)
        case let .stepHashes(report): actions += stepHashes(report, by: id)
        case let .ringBroken(report): actions += ringBroken(report, by: id, now: now)
        case let .leave(leave): actions += left(leave, by: id, now: now)
        case let .taskFinished(finished): actions += taskFinished(finished, by: id, now: now)
        case let .taskFailed(failed): actions += taskFailed(failed, by: id, now: now)
        default: break
        }
        return actions
    }

    /// The shell stored a checkpoint that rank 0 sent.
    public mutating func checkpointStored(job id: JobID, step: Int) -> [CoordinatorAction] {
        guard var job = jobs[id] else { return [] }
        job.checkpointStep = max(job.checkpointStep ?? 0, step)
        jobs[id] = job
        return [.persistJob(id), .event(id, kind: "checkpoint", worker: nil, text: "checkpoint of step \(step) stored")]
    }

    private mutating func committed(_ commit: Commit, by id: WorkerID, now: Double) -> [CoordinatorAction] {
        guard var job = jobs[commit.job], job.state == .running, commit.generation == job.generation else { return [] }
        job.committedStep = max(job.committedStep, commit.step)
        jobs[job.id] = job
        // Joiners are admitted at a commit boundary of rank 0 (design §4).
        guard commit.rank == 0, !job.joining.isEmpty, job.members.first == id else { return [.persistJob(job.id)] }
        let joiners = job.joining
        job.members += joiners
        job.joining = []
        job.disruptedAt = job.disruptedAt ?? now
        jobs[job.id] = job
        var actions: [CoordinatorAction] = joiners.map {
            .event(job.id, kind: "joined", worker: $0, text: "\($0) admitted at the commit of step \(commit.step)")
        }
        actions += form(job.id, now: now)
        return actions
    }

    private mutating func progressed(_ report: ProgressReport, by id: WorkerID, now: Double) -> [CoordinatorAction] {
        guard var job = jobs[report.job], job.state == .running, job.members.first == id else { return [] }
        var actions: [CoordinatorAction] = []
        // The first step of the current generation ends a recovery (a report of an older ring does not).
        if let since = job.disruptedAt, report.generation == job.generation {
            let seconds = max(0, now - since)
            var times = job.recoveries ?? []
            times.append(seconds)
            if times.count > 1000 { times.removeFirst(times.count - 1000) }
            job.recoveries = times
            job.disruptedAt = nil
            actions += [.persistJob(job.id), .event(job.id, kind: "recovered", worker: nil, text: String(
                format: "recovered in %.2f s: step %d done by generation %llu (%d rank(s))", seconds, report.done,
                job.generation, job.members.count))]
        }
        job.done = report.done
        job.total = report.total
        if let loss = report.loss {
            job.losses.append(loss)
            if job.losses.count > 100 { job.losses.removeFirst(job.losses.count - 100) }
        }
        job.rate = report.rate
        jobs[job.id] = job
        return actions
    }

    private func stepHashes(_ report: StepHashes, by id: WorkerID) -> [CoordinatorAction] {
        // From a worker that held the job's state (a rank of some generation); the store keeps the first per step.
        guard let job = jobs[report.job], job.sweep == nil, job.trained.contains(id) || job.members.contains(id),
              !report.hashes.isEmpty else { return [] }
        return [.storeStepHashes(job.id, worker: id, report.hashes)]
    }

    private mutating func ringBroken(_ report: RingBroken, by id: WorkerID, now: Double) -> [CoordinatorAction] {
        guard let job = jobs[report.job], job.state == .running, report.generation == job.generation else { return [] }
        jobs[job.id]?.disruptedAt = job.disruptedAt ?? now
        var actions: [CoordinatorAction] = [
            .event(job.id, kind: "rollback", worker: id,
                   text: "rank \(report.rank) (\(id)) rolled back to its last commit: \(report.reason)")
        ]
        if report.disconnected, let suspect = report.suspect, job.members.contains(suspect), suspect != id {
            // The connection closed: the process is gone. Declare it now rather than after missed heartbeats.
            let why = "its ring connection closed (reported by \(id))"
            actions += declareDead(suspect, why: why, now: now)
            // Declared dead earlier, or never re-registered after a restart: still a member, so remove it here.
            if jobs[job.id]?.members.contains(suspect) == true { actions += lose(suspect, from: job.id, why: why, now: now) }
        } else {
            // A silent peer: the heartbeats decide whether it is dead; until then re-form the same members.
            actions += form(job.id, now: now)
        }
        return actions
    }

    private mutating func left(_ leave: Leave, by id: WorkerID, now: Double) -> [CoordinatorAction] {
        workers[id]?.leaving = true
        workers[id]?.job = nil
        workers[id]?.task = nil
        guard var job = jobs[leave.job], !job.isTerminal else { return [.persistWorker(id)] }
        if job.members.contains(id) { job.disruptedAt = job.disruptedAt ?? now }
        job.members.removeAll { $0 == id }
        job.joining.removeAll { $0 == id }
        jobs[job.id] = job
        var actions: [CoordinatorAction] = [
            .persistWorker(id),
            .event(job.id, kind: "left", worker: id, text: "\(id) left at the commit of step \(leave.step)"),
            .send(id, .stopTask(StopTask(job: job.id, task: Self.trainingTask, reason: "left the ring"))),
        ]
        actions += reform(after: job.id, now: now)
        return actions
    }

    private mutating func taskFinished(_ finished: TaskFinished, by id: WorkerID, now: Double) -> [CoordinatorAction] {
        guard var job = jobs[finished.job], job.state == .running, job.members.contains(id) else { return [] }
        job.finished.insert(id)
        if let steps = finished.metrics["steps"], steps.isFinite, let done = Int(exactly: steps.rounded()), done >= 0 {
            job.done = done
        }
        jobs[job.id] = job
        // Rank 0 ends the job: it sent the final checkpoint first, and every rank stops at the same step.
        guard job.members.first == id else { return [.persistJob(job.id)] }
        return end(job.id, state: .succeeded, kind: "succeeded", text: "finished after step \(job.done)", now: now)
    }

    private mutating func taskFailed(_ failed: TaskFailed, by id: WorkerID, now: Double) -> [CoordinatorAction] {
        guard let job = jobs[failed.job], job.state == .running,
              job.members.contains(id) || job.joining.contains(id) else { return [] }
        if failed.retryable {
            // The worker gave up its task (a local problem): drop it from the job and go on without it.
            if job.members.contains(id) { jobs[job.id]?.disruptedAt = job.disruptedAt ?? now }
            workers[id]?.job = nil
            jobs[job.id]?.members.removeAll { $0 == id }
            jobs[job.id]?.joining.removeAll { $0 == id }
            return [.event(job.id, kind: "worker_lost", worker: id, text: "\(id) gave up its task: \(failed.reason)")]
                + reform(after: job.id, now: now)
        }
        return end(job.id, state: .failed, kind: "failed", text: "\(id) failed: \(failed.reason)", worker: id, now: now)
    }

    // MARK: - Time

    /// Heartbeats out, dead workers found, grace periods enforced, queued jobs started.
    public mutating func tick(now: Double) -> [CoordinatorAction] {
        var actions: [CoordinatorAction] = []
        if now - lastHeartbeat >= settings.heartbeatInterval {
            lastHeartbeat = now
            for id in workers.keys.sorted() where workers[id]!.alive {
                actions.append(.send(id, .heartbeat(Heartbeat(sequence: 0))))
            }
        }
        let timeout = settings.heartbeatInterval * Double(settings.heartbeatMisses)
        for id in workers.keys.sorted() where workers[id]!.alive && now - workers[id]!.lastSeen > timeout {
            actions += declareDead(id, why: "missed \(settings.heartbeatMisses) heartbeats", now: now)
        }
        // Members restored from the store that never re-registered.
        if let restoredAt, now - restoredAt > max(timeout, settings.restoreWindow) {
            for id in jobs.keys.sorted() {
                guard let job = jobs[id], !job.isTerminal else { continue }
                for member in job.members + job.joining where workers[member]?.job != id {
                    actions += lose(member, from: id, why: "did not re-register after the coordinator restarted", now: now)
                }
                actions += releaseUnadopted(id, now: now)
            }
            self.restoredAt = nil
        }
        for id in jobs.keys.sorted() {
            guard let job = jobs[id], job.state == .running, let since = job.belowMinSince,
                  now - since > settings.gracePeriod else { continue }
            actions += end(id, state: .failed, kind: "failed",
                           text: "fewer than \(job.requirements.minWorkers) workers for \(Int(settings.gracePeriod)) s (\(job.members.count) left)",
                           now: now)
        }
        actions += sweepTick(now: now)
        actions += schedule(now: now)
        return actions
    }

    // MARK: - Decisions

    private mutating func declareDead(_ id: WorkerID, why: String, now: Double) -> [CoordinatorAction] {
        guard var entry = workers[id], entry.alive else { return [] }
        entry.alive = false
        let job = entry.job
        entry.job = nil
        entry.task = nil
        workers[id] = entry
        guard let job else { return [.persistWorker(id)] }
        if jobs[job]?.sweep != nil { return [.persistWorker(id)] + releaseRuns(of: id, except: nil, why: why, now: now) }
        return [.persistWorker(id)] + lose(id, from: job, why: why, now: now)
    }

    /// A member or joiner of `job` is gone: re-form without it, or wait for workers, and say so.
    private mutating func lose(_ id: WorkerID, from jobID: JobID, why: String, now: Double) -> [CoordinatorAction] {
        guard var job = jobs[jobID], !job.isTerminal, job.members.contains(id) || job.joining.contains(id) else {
            return []
        }
        let wasMember = job.members.contains(id)
        if wasMember { job.disruptedAt = job.disruptedAt ?? now }
        job.members.removeAll { $0 == id }
        job.joining.removeAll { $0 == id }
        job.trained.remove(id)  // if it comes back, it is a new process without the state
        jobs[jobID] = job
        var actions: [CoordinatorAction] = [.event(jobID, kind: "worker_lost", worker: id, text: "\(id) lost: \(why)")]
        if wasMember, !job.finished.isEmpty {
            // Other ranks already finished the last step: the training is complete, only rank 0's final report
            // (and its final checkpoint) was lost with it. Re-forming would wait for ranks that have ended.
            let stored = job.checkpointStep.map { "the newest stored checkpoint is step \($0)" } ?? "no checkpoint was stored"
            return actions + end(jobID, state: .succeeded, kind: "succeeded",
                                 text: "finished (ranks \(job.finished.sorted().map(\.rawValue).joined(separator: ", ")) reported the last step); \(id) was lost before its final report, \(stored)",
                                 now: now)
        }
        if wasMember {
            actions.append(.event(jobID, kind: "rollback", worker: nil,
                                  text: "the survivors roll back to their last commit (step \(job.committedStep) or later) and redo the steps after it"))
            actions += reform(after: jobID, now: now)
        }
        return actions
    }

    /// After a member left: a new generation with the rest (and any joiners) when enough remain, else wait.
    private mutating func reform(after jobID: JobID, now: Double) -> [CoordinatorAction] {
        guard var job = jobs[jobID], job.state == .running else { return [] }
        job.members += job.joining
        job.joining = []
        jobs[jobID] = job
        if job.members.count >= job.requirements.minWorkers {
            return form(jobID, now: now)
        }
        // Fill from idle workers if there are enough; otherwise the survivors hold their commits and wait.
        let idle = idleWorkers()
        if job.members.count + idle.count >= job.requirements.minWorkers {
            let take = idle.prefix(job.requirements.maxWorkers - job.members.count)
            var actions = assign(Array(take), to: jobID)
            jobs[jobID]?.members += take
            actions += form(jobID, now: now)
            return actions
        }
        let since = jobs[jobID]?.belowMinSince ?? now
        jobs[jobID]?.belowMinSince = since
        let text = "waiting for workers: \(job.members.count) of min \(job.requirements.minWorkers); fails after \(Int(settings.gracePeriod)) s"
        jobs[jobID]?.message = text
        return [.persistJob(jobID), .event(jobID, kind: "waiting", worker: nil, text: text)]
    }

    /// Announces the next generation of `jobID` to its members.
    private mutating func form(_ jobID: JobID, now: Double) -> [CoordinatorAction] {
        guard var job = jobs[jobID], !job.members.isEmpty else { return [] }
        job.generation += 1
        job.belowMinSince = nil
        job.message = nil
        let members = job.members.compactMap { workers[$0] }
        var actions: [CoordinatorAction] = []
        // Nobody holds the state (every member is new): rank 0 resumes from the newest stored checkpoint.
        if job.trained.isDisjoint(with: job.members), let step = job.checkpointStep, let first = job.members.first {
            actions.append(.sendCheckpoint(first, jobID, step: step))
        }
        job.trained.formUnion(job.members)
        jobs[jobID] = job
        actions += checkReproducible(jobID, members: members)
        let plan = RingPlanner.plan(
            job: jobID, generation: job.generation,
            members: members.map { ($0.id, $0.dataEndpoint, $0.publicKey) },
            security: job.requirements.ringSecurity, resumeStep: job.committedStep)
        actions += plan.map { .send($0.0, .ringFormed($0.1)) }
        actions.append(.persistJob(jobID))
        actions.append(.event(jobID, kind: "generation", worker: nil,
                              text: "generation \(job.generation): \(members.count) rank(s) [\(members.map(\.id.rawValue).joined(separator: ", "))], from the commit of step \(job.committedStep)"))
        return actions
    }

    /// A `reduction: exact` job whose ring mixes thread counts or kernels no longer gives the same bits as on one
    /// worker (each slot's gradient depends on both): it trains on, and says so once.
    private mutating func checkReproducible(_ jobID: JobID, members: [WorkerEntry]) -> [CoordinatorAction] {
        guard let job = jobs[jobID], job.requirements.exact, job.notReproducible == nil else { return [] }
        let kinds = Set(members.map { "\($0.cores) thread(s), \($0.kernels ?? "unknown kernels")" })
        guard kinds.count > 1 else { return [] }
        let why = "its workers differ: " + members.map { "\($0.id) \($0.cores) thread(s), \($0.kernels ?? "unknown kernels")" }
            .joined(separator: "; ")
        jobs[jobID]?.notReproducible = why
        return [.persistJob(jobID), .event(jobID, kind: "not_reproducible", worker: nil,
                                           text: "no longer bit-reproducible (reduction exact): \(why)")]
    }

    private mutating func assign(_ ids: [WorkerID], to jobID: JobID) -> [CoordinatorAction] {
        guard let job = jobs[jobID] else { return [] }
        return ids.map { id in
            workers[id]?.job = jobID
            return .send(id, .assign(Assign(job: jobID, task: Self.trainingTask, kind: .trainingRank,
                                            specYAML: job.requirements.specYAML)))
        }
    }

    func idleWorkers() -> [WorkerID] {
        workers.values.filter { $0.alive && $0.job == nil && !$0.leaving }.map(\.id).sorted()
    }

    /// Ends a job and frees its workers.
    mutating func end(
        _ jobID: JobID, state: JobState, kind: String, text: String, worker: WorkerID? = nil, now: Double
    ) -> [CoordinatorAction] {
        guard var job = jobs[jobID] else { return [] }
        var actions: [CoordinatorAction] = []
        for id in job.members + job.joining where workers[id]?.job == jobID {
            workers[id]?.job = nil
            // Also to ranks that finished: it acknowledges their `task_finished` (they stop replaying it).
            actions.append(.send(id, .stopTask(StopTask(job: jobID, task: Self.trainingTask, reason: text))))
        }
        if var sweep = job.sweep {
            for unit in sweep.running.keys.sorted() {
                for run in sweep.running[unit]! where workers[run.worker]?.job == jobID {
                    workers[run.worker]?.job = nil
                    workers[run.worker]?.task = nil
                    actions.append(.send(run.worker, .stopTask(StopTask(job: jobID, task: sweep.task(unit), reason: text))))
                }
            }
            sweep.running = [:]
            job.sweep = sweep
        }
        job.state = state
        job.message = text
        job.belowMinSince = nil
        job.joining = []
        jobs[jobID] = job
        if let index = active.firstIndex(of: jobID) { active.remove(at: index) }
        actions += [.persistJob(jobID), .event(jobID, kind: kind, worker: worker, text: text)]
        return actions + schedule(now: now)
    }

    /// Inserts a job into `active` at its place in the scheduling order.
    private mutating func activate(_ id: JobID) {
        guard let job = jobs[id] else { return }
        let key = (job.requirements.priority, -job.sequence)
        var low = 0, high = active.count
        while low < high {
            let mid = (low + high) / 2
            let other = jobs[active[mid]]!
            if (other.requirements.priority, -other.sequence) > key { low = mid + 1 } else { high = mid }
        }
        active.insert(id, at: low)
    }

    /// Starts queued jobs (by priority, then submission) and hands idle workers to running jobs below `max`.
    mutating func schedule(now: Double) -> [CoordinatorAction] {
        var actions: [CoordinatorAction] = []
        var idleCount = idleWorkers().count
        for id in active {
            // Nothing left to hand out: no job can start or grow (a queued job said why it waits when submitted).
            if idleCount == 0 { break }
            let job = jobs[id]!
            if job.sweep != nil {
                actions += dispatch(id, now: now)
                idleCount = idleWorkers().count
                continue
            }
            let idle = idleWorkers()
            let needed = job.requirements.minWorkers
            switch job.state {
            case .queued:
                guard idle.count >= needed else {
                    let text = "waiting for workers: \(idle.count) free of the \(needed) it needs"
                    if job.message != text {
                        jobs[job.id]?.message = text
                        actions += [.persistJob(job.id), .event(job.id, kind: "waiting", worker: nil, text: text)]
                    }
                    continue
                }
                let take = Array(idle.prefix(job.requirements.maxWorkers))
                idleCount -= take.count
                actions += assign(take, to: job.id)
                jobs[job.id]?.members = take
                jobs[job.id]?.state = .running
                actions.append(.event(job.id, kind: "started", worker: nil, text: "started on \(take.count) worker(s)"))
                actions += form(job.id, now: now)
            case .running:
                let room = job.requirements.maxWorkers - job.members.count - job.joining.count
                guard room > 0, !idle.isEmpty else { continue }
                let take = Array(idle.prefix(room))
                idleCount -= take.count
                actions += assign(take, to: job.id)
                if job.members.count < needed {
                    // Below min: no commit boundary to wait for; re-form at once.
                    jobs[job.id]?.members += take
                    if jobs[job.id]!.members.count >= needed {
                        actions += form(job.id, now: now)
                    }
                } else {
                    jobs[job.id]?.joining += take
                    actions += take.map {
                        .event(job.id, kind: "joining", worker: $0, text: "\($0) assigned; admitted at the next commit")
                    }
                }
            default:
                continue
            }
        }
        return actions
    }
}
