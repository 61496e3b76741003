import FluxProtocol

// Token Optimization sweeps in the machine (design §5): a sweep's units go to idle workers one at a time, beside
// training jobs in the same priority order; a unit whose worker dies, leaves or comes back without it is queued
// again; a straggling unit gets a second run on an idle worker once nothing else waits; the first result of a unit
// is stored and every later one is acknowledged and dropped, so a finished unit is never stored or run again.

extension CoordinatorMachine {
    /// A unit that failed this often (retryable failures, lost workers) fails the sweep.
    static let maxAttempts = 4
    /// Cells are split into at most this many shards.
    static let maxShards = 16

    /// The job a worker's task message is about.
    static func job(of message: Message) -> JobID? {
        switch message {
        case let .progress(report): report.job
        case let .taskFinished(finished): finished.job
        case let .taskFailed(failed): failed.job
        case let .leave(leave): leave.job
        default: nil
        }
    }

    /// A task message of a sweep's unit.
    mutating func handleSweep(_ message: Message, job jobID: JobID, from id: WorkerID, now: Double) -> [CoordinatorAction] {
        switch message {
        case let .taskFinished(finished): return cellFinished(finished, by: id, now: now)
        case let .taskFailed(failed): return cellFailed(failed, by: id, now: now)
        case .leave:
            workers[id]?.leaving = true
            return [.persistWorker(id)] + releaseRuns(of: id, except: nil, why: "it left the cluster", now: now)
                + schedule(now: now)
        default: return []
        }
    }

    /// Hands idle workers the sweep's pending units, up to its `max` workers; starts it when it was queued.
    mutating func dispatch(_ jobID: JobID, now: Double) -> [CoordinatorAction] {
        guard var job = jobs[jobID], var sweep = job.sweep, !job.isTerminal else { return [] }
        var idle = idleWorkers()
        guard !idle.isEmpty else { return [] }
        var actions: [CoordinatorAction] = []
        if job.state == .queued {
            // More workers than cells: split each cell by dataset shard so every worker gets a part.
            let free = min(idle.count, job.requirements.maxWorkers)
            sweep.shards = max(1, min(Self.maxShards, (free + sweep.cells - 1) / max(sweep.cells, 1)))
            job.state = .running
            job.message = nil
            job.total = sweep.cells
            let split = sweep.shards > 1 ? ", each split in \(sweep.shards) shards" : ""
            actions.append(.event(jobID, kind: "started", worker: nil,
                                  text: "started: \(sweep.cells) cell(s)\(split) on up to \(free) worker(s)"))
        }
        var busy = Set(sweep.running.values.flatMap { $0.map(\.worker) }).count
        while busy < job.requirements.maxWorkers, !idle.isEmpty, let unit = sweep.takePending() {
            let worker = idle.removeFirst()
            actions += run(unit, of: jobID, on: worker, sweep: &sweep, now: now, why: nil)
            busy += 1
        }
        job.sweep = sweep
        jobs[jobID] = job
        actions.append(.persistJob(jobID))
        return actions
    }

    /// Sends `unit` to `worker` and records the run.
    private mutating func run(
        _ unit: Int, of jobID: JobID, on worker: WorkerID, sweep: inout SweepProgress, now: Double, why: String?
    ) -> [CoordinatorAction] {
        let task = sweep.task(unit)
        sweep.running[unit, default: []].append(.init(worker: worker, since: now))
        sweep.attempts[unit, default: 0] += 1
        workers[worker]?.job = jobID
        workers[worker]?.task = task
        let spec = jobs[jobID]!.requirements.specYAML
        return [
            .send(worker, .assign(Assign(job: jobID, task: task, kind: .evaluationCell, specYAML: spec,
                                         cell: sweep.cell(unit)))),
            .event(jobID, kind: "cell_dispatched", worker: worker,
                   text: "\(task) (unit \(unit)) to \(worker)\(why.map { ": \($0)" } ?? "")"),
        ]
    }

    private mutating func cellFinished(_ finished: TaskFinished, by id: WorkerID, now: Double) -> [CoordinatorAction] {
        let ack: CoordinatorAction = .send(id, .stopTask(StopTask(job: finished.job, task: finished.task,
                                                                  reason: "result received")))
        if workers[id]?.job == finished.job, workers[id]?.task == finished.task {
            workers[id]?.job = nil
            workers[id]?.task = nil
        }
        guard var job = jobs[finished.job], var sweep = job.sweep, job.state == .running,
              let unit = sweep.unit(finished.task), !sweep.done.contains(unit) else {
            // A duplicate (a straggler's twin, or a replay after a restart): acknowledged, never stored again.
            return [ack] + schedule(now: now)
        }
        var actions: [CoordinatorAction] = [.storeCellResult(job.id, unit: unit, worker: id, finished), ack]
        let runs = sweep.running.removeValue(forKey: unit) ?? []
        if let mine = runs.first(where: { $0.worker == id }) {
            sweep.durations.append(now - mine.since)
            if sweep.durations.count > 256 { sweep.durations.removeFirst() }
        }
        // Its twin on another worker is no longer needed.
        for other in runs where other.worker != id && workers[other.worker]?.task == finished.task {
            workers[other.worker]?.job = nil
            workers[other.worker]?.task = nil
            actions.append(.send(other.worker, .stopTask(StopTask(job: job.id, task: finished.task,
                                                                  reason: "\(id) finished it first"))))
        }
        sweep.markDone(unit)
        job.done = sweep.cellsDone
        job.sweep = sweep
        jobs[job.id] = job
        actions += [.persistJob(job.id),
                    .event(job.id, kind: "cell_done", worker: id, text: "\(finished.task) (unit \(unit)) done by \(id)")]
        if sweep.isComplete {
            actions.append(.sweepFinished(job.id))
            return actions + end(job.id, state: .succeeded, kind: "succeeded",
                                 text: "all \(sweep.cells) cell(s) done", now: now)
        }
        return actions + schedule(now: now)
    }

    private mutating func cellFailed(_ failed: TaskFailed, by id: WorkerID, now: Double) -> [CoordinatorAction] {
        guard let job = jobs[failed.job], let sweep = job.sweep, job.state == .running,
              let unit = sweep.unit(failed.task), sweep.running[unit]?.contains(where: { $0.worker == id }) == true
        else { return [] }
        if !failed.retryable {
            return end(job.id, state: .failed, kind: "failed", text: "\(failed.task) failed on \(id): \(failed.reason)",
                       worker: id, now: now)
        }
        return releaseRuns(of: id, except: nil, why: "it gave up \(failed.task): \(failed.reason)", now: now)
            + schedule(now: now)
    }

    /// Takes `worker` off the sweep units it runs (but `except`), queueing each again unless another run goes on.
    mutating func releaseRuns(of worker: WorkerID, except kept: TaskRef?, why: String, now: Double) -> [CoordinatorAction] {
        var actions: [CoordinatorAction] = []
        for jobID in jobs.keys.sorted() {
            guard var job = jobs[jobID], var sweep = job.sweep, !job.isTerminal else { continue }
            let mine = sweep.running.filter { $0.value.contains { $0.worker == worker } }.keys.sorted()
            var changed = false
            for unit in mine where !(kept?.job == jobID && kept?.task == sweep.task(unit)) {
                sweep.running[unit]!.removeAll { $0.worker == worker }
                if sweep.running[unit]!.isEmpty { sweep.running[unit] = nil }
                changed = true
                if (sweep.attempts[unit] ?? 0) >= Self.maxAttempts, sweep.running[unit] == nil {
                    jobs[jobID]!.sweep = sweep
                    return actions + end(jobID, state: .failed, kind: "failed",
                                         text: "\(sweep.task(unit)) was lost \(Self.maxAttempts) times; last: \(worker) \(why)",
                                         now: now)
                }
                sweep.requeue(unit)
                actions.append(.event(jobID, kind: "cell_requeued", worker: worker,
                                      text: "\(sweep.task(unit)) (unit \(unit)) queued again: \(worker) \(why)"))
            }
            guard changed else { continue }
            job.sweep = sweep
            jobs[jobID] = job
            actions.append(.persistJob(jobID))
        }
        return actions
    }

    /// A worker re-registered while computing a unit: keep it on the unit, or tell it to stop.
    mutating func adoptCell(_ running: TaskRef, by id: WorkerID, now: Double) -> [CoordinatorAction] {
        guard var job = jobs[running.job], var sweep = job.sweep, job.state == .running,
              let unit = sweep.unit(running.task), !sweep.done.contains(unit) else {
            return [.send(id, .stopTask(StopTask(job: running.job, task: running.task,
                                                 reason: "the sweep no longer needs this cell")))]
        }
        if sweep.running[unit]?.contains(where: { $0.worker == id }) != true {
            sweep.requeued.removeAll { $0 == unit }
            sweep.running[unit, default: []].append(.init(worker: id, since: now))
        }
        workers[id]?.job = job.id
        workers[id]?.task = running.task
        job.sweep = sweep
        jobs[job.id] = job
        return [.persistJob(job.id)]
    }

    /// After a restart's re-registration window: units whose worker did not come back with them are queued again.
    mutating func releaseUnadopted(_ jobID: JobID, now: Double) -> [CoordinatorAction] {
        guard let sweep = jobs[jobID]?.sweep else { return [] }
        var actions: [CoordinatorAction] = []
        for (unit, runs) in sweep.running.sorted(by: { $0.key < $1.key }) {
            for run in runs where !(workers[run.worker]?.alive == true && workers[run.worker]?.job == jobID
                                    && workers[run.worker]?.task == sweep.task(unit)) {
                actions += releaseRuns(of: run.worker, except: nil,
                                       why: "did not re-register after the coordinator restarted", now: now)
            }
        }
        return actions
    }

    /// Straggler detection: once nothing waits and a worker is idle, a unit running far longer than the median
    /// finished unit gets a second run; whichever ends first counts.
    mutating func sweepTick(now: Double) -> [CoordinatorAction] {
        var actions: [CoordinatorAction] = []
        for jobID in jobs.keys.sorted() {
            guard var job = jobs[jobID], var sweep = job.sweep, job.state == .running, !sweep.hasPending,
                  sweep.durations.count >= 2, let median = sweep.medianDuration else { continue }
            var idle = idleWorkers()
            guard !idle.isEmpty else { continue }
            let limit = max(settings.stragglerFactor * median, median + settings.stragglerMinimum)
            for (unit, runs) in sweep.running.sorted(by: { $0.key < $1.key }) where runs.count == 1 && !idle.isEmpty {
                let age = now - runs[0].since
                guard age > limit else { continue }
                let worker = idle.removeFirst()
                actions += run(unit, of: jobID, on: worker, sweep: &sweep, now: now,
                               why: String(format: "straggler: %.0f s on %@ against a median of %.1f s", age,
                                           runs[0].worker.rawValue, median))
            }
            job.sweep = sweep
            jobs[jobID] = job
            if !actions.isEmpty { actions.append(.persistJob(jobID)) }
        }
        return actions
    }
}
