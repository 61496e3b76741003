import Foundation
import FluxCollective
import FluxJobs
import FluxProtocol
import FluxTraining
import FluxWire
import Logging

/// What the control thread tells a running rank, and what the rank waits on (one lock, one condition).
final class RankMailbox: @unchecked Sendable {
    private let condition = NSCondition()
    private var ring: RingFormed?
    private var stopReason: String?
    private var leaving = false
    private var checkpoint: CheckpointTransfer?
    private var active: (generation: UInt64, context: ZMQContext)?

    /// A new generation: a rank blocked in an operation of an older one is woken by closing that one's context.
    func announce(_ ring: RingFormed) {
        condition.lock()
        defer { condition.unlock() }
        guard ring.generation > (self.ring?.generation ?? 0) else { return }
        self.ring = ring
        if let active, active.generation < ring.generation { active.context.close() }
        condition.broadcast()
    }

    /// Stop the task (cancelled, job ended, or this worker left).
    func stop(reason: String) {
        condition.lock()
        defer { condition.unlock() }
        stopReason = stopReason ?? reason
        active?.context.close()
        condition.broadcast()
    }

    /// Leave at the next commit (SIGTERM).
    func leave() {
        condition.lock()
        leaving = true
        condition.broadcast()
        condition.unlock()
    }

    /// A checkpoint to resume from (no member held the state).
    func provide(_ transfer: CheckpointTransfer) {
        condition.lock()
        checkpoint = transfer
        condition.broadcast()
        condition.unlock()
    }

    var isLeaving: Bool { condition.withLock { leaving } }
    var stopped: String? { condition.withLock { stopReason } }
    func newerRing(than generation: UInt64) -> Bool { condition.withLock { (ring?.generation ?? 0) > generation } }
    func takeCheckpoint() -> CheckpointTransfer? {
        condition.withLock {
            defer { checkpoint = nil }
            return checkpoint
        }
    }

    /// Registers the context of the generation being run, so a newer announcement can interrupt it.
    func activate(generation: UInt64, context: ZMQContext) -> Bool {
        condition.withLock {
            guard stopReason == nil, (ring?.generation ?? 0) <= generation else { return false }
            active = (generation, context)
            return true
        }
    }

    func deactivate() { condition.withLock { active = nil } }

    /// Waits for a generation newer than `generation`, or nil once stopped.
    func waitForRing(newerThan generation: UInt64) -> RingFormed? {
        condition.lock()
        defer { condition.unlock() }
        while stopReason == nil, (ring?.generation ?? 0) <= generation { condition.wait() }
        return stopReason == nil ? ring : nil
    }

    /// Waits until stopped (after a `leave`).
    func waitForStop(timeout: TimeInterval) {
        condition.lock()
        defer { condition.unlock() }
        let deadline = Date().addingTimeInterval(timeout)
        while stopReason == nil, condition.wait(until: deadline) {}
    }
}

/// One training rank of an elastic job (design §4), run on a thread of its own (never the cooperative pool).
///
/// It builds the run from the spec, then per generation: makes the ring, takes rank 0's committed state over the
/// ring's broadcast when it lacks it, trains with commits every `commit_every` steps, and on a broken ring or a
/// newer generation rolls back to its commit and waits for the next ring. It never restarts its process.
final class TrainingRank: @unchecked Sendable {
    let job: JobID
    let specYAML: String
    let threads: Int
    let keys: CurveKeyPair?
    let dataEndpoint: String
    let mailbox = RankMailbox()
    let send: @Sendable (Message) -> Void
    let logger: Logger
    /// The step of the last commit, for re-registration after a coordinator restart.
    let committedStep = LockedValue(0)
    /// The hashes of the steps this worker committed as rank 0 (`step_hashes`), sent again after a re-registration:
    /// a coordinator that was down missed the ones sent meanwhile.
    let committedHashes = LockedValue<(generation: UInt64, hashes: [StepHash])>((0, []))

    /// Every committed step hash, for a coordinator this worker (re-)registered with; nil when there are none.
    func hashReplay() -> Message? {
        let (generation, hashes) = committedHashes.get()
        return hashes.isEmpty ? nil : .stepHashes(StepHashes(job: job, generation: generation, hashes: hashes))
    }

    init(job: JobID, specYAML: String, threads: Int, keys: CurveKeyPair?, dataEndpoint: String, logger: Logger,
         send: @escaping @Sendable (Message) -> Void) {
        self.job = job
        self.specYAML = specYAML
        self.threads = threads
        self.keys = keys
        self.dataEndpoint = dataEndpoint
        self.logger = logger
        self.send = send
    }

    private func log(_ text: String, level: String = "info") {
        logger.info("\(job): \(text)")
        send(.log(JobLog(job: job, level: level, text: text)))
    }

    private func fail(_ reason: String, retryable: Bool) {
        logger.error("\(job): \(reason)")
        send(.log(JobLog(job: job, level: "error", text: reason)))
        send(.taskFailed(TaskFailed(job: job, task: "train", reason: reason, retryable: retryable)))
    }

    /// The rank's whole life; returns when the task finished, failed, was stopped or left.
    func run() {
        let spec: JobSpec
        let run: TrainingAssembly
        do {
            spec = try JobSpec.parse(yaml: specYAML, source: "job \(job)")
            run = try TrainingAssembly(spec: spec, threads: threads)
        } catch {
            fail("\(error)", retryable: false)
            return
        }
        let trainer = run.trainer
        var commit = trainer.commit()
        var hasState = false
        var generation: UInt64 = 0
        log("ready: \(run.totalSteps) steps of \(spec.training.globalBatch) clips, \(run.model.parameters.slots.reduce(0) { $0 + $1.count }) parameters")
        while let ring = mailbox.waitForRing(newerThan: generation) {
            generation = ring.generation
            if let transfer = mailbox.takeCheckpoint() {
                do {
                    let folder = try Self.unpack(transfer)
                    try trainer.resume(from: folder)
                    try? FileManager.default.removeItem(at: folder)
                    commit = trainer.commit()
                    hasState = true
                    log("resumed from the coordinator's checkpoint of step \(transfer.step)")
                } catch {
                    fail("cannot resume from the checkpoint of step \(transfer.step): \(error)", retryable: false)
                    return
                }
            }
            let context: ZMQContext
            do { context = try ZMQContext() } catch {
                fail("cannot make a ZeroMQ context: \(error)", retryable: true)
                return
            }
            guard mailbox.activate(generation: generation, context: context) else {
                context.close()
                continue
            }
            defer { mailbox.deactivate() }
            let outcome = train(run: run, spec: spec, ring: ring, context: context, commit: &commit, hasState: &hasState)
            context.close()
            switch outcome {
            case .finished, .left, .failed: return
            case .interrupted: continue
            }
        }
        logger.info("\(job): stopped (\(mailbox.stopped ?? "stop"))")
    }

    enum Outcome { case finished, left, failed, interrupted }

    private func train(run: TrainingAssembly, spec: JobSpec, ring formed: RingFormed, context: ZMQContext,
                       commit: inout TrainingCommit, hasState: inout Bool) -> Outcome {
        let trainer = run.trainer
        let generation = formed.generation
        let security: Ring.Security
        if formed.ringSecurity == .curve, let keys, let left = formed.left.publicKey, let right = formed.right.publicKey,
           let leftKey = try? CurveKey(z85: left), let rightKey = try? CurveKey(z85: right) {
            security = .curve(keys: keys, leftPublicKey: leftKey, rightPublicKey: rightKey)
        } else {
            security = .none
        }
        let description = Ring(
            job: job, generation: generation, rank: formed.rank, size: formed.worldSize,
            localEndpoint: RingEndpoint.forGeneration(base: dataEndpoint, generation: generation),
            rightEndpoint: formed.right.endpoint, security: security, timeout: .seconds(10))
        do {
            let ringCommunicator = try RingCommunicator(context: context, ring: description)
            defer { ringCommunicator.close() }
            let start = Date()
            try StateSync.synchronize(communicator: ringCommunicator, trainer: trainer, commit: &commit, hasState: hasState)
            hasState = true
            trainer.rollback(to: commit)
            trainer.reducer = RingAllReduce(communicator: ringCommunicator)
            log(String(format: "generation %llu: rank %d of %d from step %d (ready in %.2f s)", generation, formed.rank,
                       formed.worldSize, trainer.state.step, Date().timeIntervalSince(start)))
            var lastReport = Date.distantPast
            // This generation's step hashes since its last commit (rolled back with the steps if the ring breaks).
            var hashes: [StepHash] = []
            let hashing = spec.stepHashes && formed.rank == 0
            var clips = 0
            var clock = Date()
            while trainer.state.step < run.totalSteps {
                if mailbox.newerRing(than: generation) || mailbox.stopped != nil { throw Interrupted() }
                let report = try trainer.step()
                clips += report.samples
                let step = trainer.state.step
                if hashing {
                    hashes.append(StepHash(step: step, sha256: trainer.model.parameters.sha256(),
                                           timeMS: Int64(Date().timeIntervalSince1970 * 1000)))
                }
                if report.skippedNonFinite {
                    log("step \(report.step): non-finite loss or gradient; step skipped by every rank", level: "warning")
                }
                if formed.rank == 0, Date().timeIntervalSince(lastReport) >= 0.2 || step == run.totalSteps {
                    let elapsed = Date().timeIntervalSince(clock)
                    send(.progress(ProgressReport(job: job, task: "train", done: step, total: run.totalSteps,
                                                  loss: report.meanLoss, rate: Double(clips) / max(elapsed, 1e-9),
                                                  generation: generation)))
                    lastReport = Date()
                    if elapsed > 5 { clips = 0; clock = Date() }
                }
                if step % spec.commitEvery == 0 || step == run.totalSteps {
                    commit = trainer.commit()
                    committedStep.set(step)
                    if !hashes.isEmpty {
                        send(.stepHashes(StepHashes(job: job, generation: generation, hashes: hashes)))
                        committedHashes.update { log in
                            log.generation = generation
                            log.hashes += hashes
                            if log.hashes.count > 100_000 { log.hashes.removeFirst(log.hashes.count - 100_000) }
                        }
                        hashes = []
                    }
                    logger.info("\(job): committed step \(step) (generation \(generation), rank \(formed.rank))")
                    send(.commit(Commit(job: job, generation: generation, rank: formed.rank, step: step)))
                    if mailbox.isLeaving, step < run.totalSteps {
                        ringCommunicator.close(flushing: .seconds(2))
                        log("leaving at the commit of step \(step)")
                        send(.leave(Leave(job: job, step: step)))
                        mailbox.waitForStop(timeout: 5)
                        return .left
                    }
                }
                if formed.rank == 0, spec.checkpointEvery > 0, step % spec.checkpointEvery == 0, step < run.totalSteps {
                    sendCheckpoint(trainer: trainer, generation: generation)
                }
            }
            // The last operation's frames may still be on their way to a neighbour: let them leave.
            ringCommunicator.close(flushing: .seconds(2))
            if formed.rank == 0 { sendCheckpoint(trainer: trainer, generation: generation) }
            if let videos = run.videos, !videos.unreadable.isEmpty {
                let first = videos.unreadable[0]
                log("\(videos.unreadable.count) unreadable video(s) skipped, e.g. line \(first.line) '\(first.path)': \(first.reason)",
                    level: "warning")
            }
            send(.taskFinished(TaskFinished(job: job, task: "train", metrics: ["steps": Double(trainer.state.step)])))
            log("finished at step \(trainer.state.step)")
            return .finished
        } catch is Interrupted {
            trainer.rollback(to: commit)
            return .interrupted
        } catch let error as ReductionError {
            if case let .peerDisconnected(rank) = error {
                return broken(error: "\(error)", formed: formed, commit: commit, trainer: trainer, disconnectedRank: rank)
            }
            return broken(error: "\(error)", formed: formed, commit: commit, trainer: trainer)
        } catch let error as CollectiveError {
            if case let .peerDisconnected(rank, _, _) = error {
                return broken(error: "\(error)", formed: formed, commit: commit, trainer: trainer, disconnectedRank: rank)
            }
            return broken(error: "\(error)", formed: formed, commit: commit, trainer: trainer)
        } catch {
            fail("\(error)", retryable: false)
            return .failed
        }
    }

    private func broken(error: String, formed: RingFormed, commit: TrainingCommit, trainer: Trainer,
                        disconnectedRank: Int? = nil) -> Outcome {
        trainer.rollback(to: commit)
        // An operation interrupted by a newer generation or a stop is not a broken ring.
        if mailbox.newerRing(than: formed.generation) || mailbox.stopped != nil { return .interrupted }
        log("ring of generation \(formed.generation) broke (\(error)); rolled back to the commit of step \(commit.state.step)",
            level: "warning")
        // The neighbour that closed its connection, else the left one we stopped hearing from.
        let left = (formed.rank + formed.worldSize - 1) % formed.worldSize
        let suspect = disconnectedRank.map { $0 == left ? formed.left.workerID : formed.right.workerID } ?? formed.left.workerID
        send(.ringBroken(RingBroken(job: job, generation: formed.generation, rank: formed.rank, suspect: suspect,
                                    disconnected: disconnectedRank != nil, reason: error)))
        return .interrupted
    }

    private func sendCheckpoint(trainer: Trainer, generation: UInt64) {
        do {
            let files = try trainer.checkpointFiles().map { CheckpointFile(name: $0.name, contents: $0.contents) }
            send(.checkpoint(CheckpointTransfer(job: job, generation: generation, step: trainer.state.step, files: files)))
        } catch {
            log("cannot encode the checkpoint of step \(trainer.state.step): \(error)", level: "error")
        }
    }

    /// Writes a received checkpoint to a temporary folder `Checkpoint.load` reads.
    static func unpack(_ transfer: CheckpointTransfer) throws -> URL {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("flux-resume-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        for file in transfer.files { try file.contents.write(to: folder.appendingPathComponent(file.name)) }
        return folder
    }

    struct Interrupted: Error {}
}

/// A value behind a lock, read from other threads.
final class LockedValue<Value: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value
    init(_ value: Value) { self.value = value }
    func set(_ newValue: Value) { lock.withLock { value = newValue } }
    func update(_ body: (inout Value) -> Void) { lock.withLock { body(&value) } }
    func get() -> Value { lock.withLock { value } }
}
