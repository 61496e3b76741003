import FluxCoordinator
import FluxProtocol
import Testing

/// Recoveries (fault → the first step of the ring formed after it) and step hashes, as the machine decides them.
@Suite struct RecoveryMachineTests {
    typealias Kit = CoordinatorMachineTests

    static func progress(step: Int, generation: UInt64?) -> Message {
        .progress(ProgressReport(job: "j1", task: "train", done: step, total: 100, loss: 1, rate: 1, generation: generation))
    }

    static func hash(_ step: Int) -> StepHash {
        StepHash(step: step, sha256: String(repeating: String(step % 10), count: 64), timeMS: Int64(step))
    }

    @Test func workerKilled_recoveryTimedFromTheLossToTheNewRingsFirstStep() {
        var machine = CoordinatorMachine()
        for id in ["w0", "w1", "w2"] { _ = machine.register(Kit.register(id), now: 0) }
        _ = machine.submit("j1", requirements: Kit.requirements(min: 2, max: 3), now: 0)
        _ = machine.handle(Self.progress(step: 5, generation: 1), from: "w0", now: 1)
        #expect(machine.jobs["j1"]?.recoveries == nil, "the first generation's start is no recovery")
        _ = machine.handle(.ringBroken(RingBroken(job: "j1", generation: 1, rank: 2, suspect: "w1", disconnected: true,
                                                  reason: "closed")), from: "w2", now: 10)
        #expect(machine.jobs["j1"]?.generation == 2)
        // A late report of the old ring does not end the recovery; the new ring's first step does.
        _ = machine.handle(Self.progress(step: 6, generation: 1), from: "w0", now: 10.5)
        #expect(machine.jobs["j1"]?.recoveries == nil)
        let actions = machine.handle(Self.progress(step: 6, generation: 2), from: "w0", now: 11.25)
        #expect(machine.jobs["j1"]?.recoveries == [1.25])
        #expect(Kit.events(actions) == ["recovered"])
        #expect(machine.jobs["j1"]?.disruptedAt == nil)
        // Later steps are not recoveries.
        #expect(Kit.events(machine.handle(Self.progress(step: 7, generation: 2), from: "w0", now: 12)).isEmpty)
    }

    @Test func joinAndLeave_eachARecovery_percentilesByNearestRank() {
        var machine = CoordinatorMachine()
        _ = machine.register(Kit.register("w0"), now: 0)
        _ = machine.submit("j1", requirements: Kit.requirements(min: 1, max: 3), now: 0)
        _ = machine.register(Kit.register("w1"), now: 1)
        // The joiner is admitted at rank 0's commit: the pause starts there.
        _ = machine.handle(.commit(Commit(job: "j1", generation: 1, rank: 0, step: 10)), from: "w0", now: 2)
        _ = machine.handle(Self.progress(step: 11, generation: 2), from: "w0", now: 2.5)
        _ = machine.handle(.leave(Leave(job: "j1", step: 20)), from: "w1", now: 5)
        _ = machine.handle(Self.progress(step: 21, generation: 3), from: "w0", now: 9)
        #expect(machine.jobs["j1"]?.recoveries == [0.5, 4])
        let percentiles = machine.jobs["j1"]?.recoveryPercentiles
        #expect(percentiles?.p50 == 0.5 && percentiles?.p95 == 4)
    }

    @Test func coordinatorRestart_recoveryEndsAtTheFirstReportedStep() {
        var first = CoordinatorMachine()
        for id in ["w0", "w1"] { _ = first.register(Kit.register(id), now: 0) }
        _ = first.submit("j1", requirements: Kit.requirements(min: 1, max: 2), now: 0)
        var restarted = CoordinatorMachine()
        restarted.restore(jobs: Array(first.jobs.values), now: 500)
        for id in ["w0", "w1"] {
            var message = Kit.register(id)
            message.runningTask = TaskRef(job: "j1", task: "train")
            _ = restarted.register(message, now: 501)
        }
        let actions = restarted.handle(Self.progress(step: 30, generation: 1), from: "w0", now: 502)
        #expect(restarted.jobs["j1"]?.recoveries == [2])
        #expect(Kit.events(actions) == ["recovered"])
    }

    @Test func stepHashes_fromARankOfTheJob_stored_fromOthersIgnored() {
        var machine = CoordinatorMachine()
        for id in ["w0", "w1", "w9"] { _ = machine.register(Kit.register(id), now: 0) }
        _ = machine.submit("j1", requirements: Kit.requirements(min: 2, max: 2), now: 0)
        let hashes = StepHashes(job: "j1", generation: 1, hashes: [Self.hash(1), Self.hash(2)])
        let stored = machine.handle(.stepHashes(hashes), from: "w0", now: 1)
        #expect(stored == [.storeStepHashes("j1", worker: "w0", hashes.hashes)])
        #expect(machine.handle(.stepHashes(hashes), from: "w9", now: 1).isEmpty, "w9 never trained j1")
        // A rank of the job that was declared lost no longer speaks for it (it comes back as a new process).
        _ = machine.handle(.ringBroken(RingBroken(job: "j1", generation: 1, rank: 0, suspect: "w1", disconnected: true,
                                                  reason: "closed")), from: "w0", now: 2)
        #expect(machine.handle(.stepHashes(hashes), from: "w1", now: 3).isEmpty)
        #expect(machine.handle(.stepHashes(hashes), from: "w0", now: 3).count == 1)
    }
}
