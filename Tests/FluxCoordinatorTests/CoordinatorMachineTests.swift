import FluxCoordinator
import FluxProtocol
import Testing

/// The coordinator's decisions, driven by scripted events with time passed in: no sockets, no sleeps (style §F.5).
@Suite struct CoordinatorMachineTests {
    static func register(_ id: String) -> Register {
        Register(workerID: WorkerID(rawValue: id), dataEndpoint: "ipc:///tmp/\(id)", publicKey: nil, cores: 1, version: "t")
    }

    static func requirements(min: Int, max: Int, priority: Int = 0) -> JobRequirements {
        JobRequirements(name: "job", minWorkers: min, maxWorkers: max, priority: priority, ringSecurity: .none,
                        specYAML: "name: job\n")
    }

    /// The `ring_formed` messages among actions, by worker.
    static func rings(_ actions: [CoordinatorAction]) -> [WorkerID: RingFormed] {
        var rings: [WorkerID: RingFormed] = [:]
        for case let .send(worker, .ringFormed(ring)) in actions { rings[worker] = ring }
        return rings
    }

    static func events(_ actions: [CoordinatorAction]) -> [String] {
        actions.compactMap { if case let .event(_, kind, _, _) = $0 { kind } else { nil } }
    }

    @Test func submit_tooFewWorkers_waitsAndSaysWhy() {
        var machine = CoordinatorMachine()
        _ = machine.register(Self.register("w0"), now: 0)
        let actions = machine.submit("j1", requirements: Self.requirements(min: 2, max: 2), now: 0)
        #expect(machine.jobs["j1"]?.state == .queued)
        #expect(Self.events(actions).contains("waiting"))
        #expect(machine.jobs["j1"]?.message == "waiting for workers: 1 free of the 2 it needs")
        let more = machine.register(Self.register("w1"), now: 0.5)
        #expect(machine.jobs["j1"]?.state == .running)
        let rings = Self.rings(more)
        #expect(rings.count == 2)
        #expect(rings["w0"]?.rank == 0 && rings["w1"]?.rank == 1 && rings["w0"]?.generation == 1)
        #expect(rings["w0"]?.right.workerID == "w1" && rings["w0"]?.left.workerID == "w1")
    }

    @Test func assignPrecedesRingFormed_forEveryMember() {
        var machine = CoordinatorMachine()
        _ = machine.register(Self.register("w0"), now: 0)
        let actions = machine.submit("j1", requirements: Self.requirements(min: 1, max: 1), now: 0)
        let kinds = actions.compactMap { if case let .send(_, message) = $0 { message.type } else { nil } }
        #expect(kinds == [.assign, .ringFormed])
    }

    @Test func workerSilent_threeMissedHeartbeats_survivorsGetNextGeneration() {
        var machine = CoordinatorMachine()
        for id in ["w0", "w1", "w2"] { _ = machine.register(Self.register(id), now: 0) }
        _ = machine.submit("j1", requirements: Self.requirements(min: 2, max: 3), now: 0)
        #expect(machine.jobs["j1"]?.members == ["w0", "w1", "w2"])
        for t in stride(from: 0.5, through: 3.0, by: 0.5) {
            _ = machine.heard(from: "w0", now: t)
            _ = machine.heard(from: "w2", now: t)
            #expect(Self.rings(machine.tick(now: t)).isEmpty, "nothing changes at \(t) s")
        }
        _ = machine.heard(from: "w0", now: 3.2)
        _ = machine.heard(from: "w2", now: 3.2)
        let actions = machine.tick(now: 3.2)
        let rings = Self.rings(actions)
        #expect(Set(rings.keys) == ["w0", "w2"])
        #expect(rings["w0"]?.generation == 2 && rings["w0"]?.worldSize == 2)
        #expect(Self.events(actions).contains("worker_lost"))
        #expect(machine.workers["w1"]?.alive == false)
    }

    @Test func ringBroken_disconnected_declaresSuspectDeadAtOnce() {
        var machine = CoordinatorMachine()
        for id in ["w0", "w1", "w2"] { _ = machine.register(Self.register(id), now: 0) }
        _ = machine.submit("j1", requirements: Self.requirements(min: 2, max: 3), now: 0)
        let report = RingBroken(job: "j1", generation: 1, rank: 2, suspect: "w1", disconnected: true, reason: "closed")
        let actions = machine.handle(.ringBroken(report), from: "w2", now: 0.3)
        #expect(Set(Self.rings(actions).keys) == ["w0", "w2"])
        #expect(machine.jobs["j1"]?.generation == 2)
        // The other neighbour's report of the same generation changes nothing.
        let late = machine.handle(.ringBroken(RingBroken(job: "j1", generation: 1, rank: 0, suspect: "w2",
                                                         disconnected: false, reason: "timeout")), from: "w0", now: 0.4)
        #expect(Self.rings(late).isEmpty)
        #expect(machine.jobs["j1"]?.generation == 2)
    }

    @Test func belowMin_waitsThenFailsAfterGrace() {
        var settings = CoordinatorMachine.Settings()
        settings.gracePeriod = 10
        var machine = CoordinatorMachine(settings: settings)
        for id in ["w0", "w1"] { _ = machine.register(Self.register(id), now: 0) }
        _ = machine.submit("j1", requirements: Self.requirements(min: 2, max: 2), now: 0)
        _ = machine.heard(from: "w0", now: 3)
        let lost = machine.tick(now: 3.5)
        #expect(Self.events(lost).contains("waiting"))
        #expect(machine.jobs["j1"]?.state == .running)
        for t in stride(from: 4.0, through: 13.0, by: 1.0) { _ = machine.heard(from: "w0", now: t); _ = machine.tick(now: t) }
        #expect(machine.jobs["j1"]?.state == .running)
        _ = machine.heard(from: "w0", now: 14)
        let failed = machine.tick(now: 14)
        #expect(machine.jobs["j1"]?.state == .failed)
        #expect(failed.contains(.send("w0", .stopTask(StopTask(job: "j1", task: "train", reason: machine.jobs["j1"]!.message!)))))
    }

    @Test func belowMin_newWorkerRegisters_reformsAtOnce() {
        var machine = CoordinatorMachine()
        for id in ["w0", "w1"] { _ = machine.register(Self.register(id), now: 0) }
        _ = machine.submit("j1", requirements: Self.requirements(min: 2, max: 2), now: 0)
        _ = machine.heard(from: "w0", now: 3)
        _ = machine.tick(now: 3.5)
        let actions = machine.register(Self.register("w2"), now: 4)
        let rings = Self.rings(actions)
        #expect(Set(rings.keys) == ["w0", "w2"])
        #expect(rings["w2"]?.generation == 2)
    }

    @Test func join_admittedAtRankZeroCommit() {
        var machine = CoordinatorMachine()
        _ = machine.register(Self.register("w0"), now: 0)
        _ = machine.submit("j1", requirements: Self.requirements(min: 1, max: 2), now: 0)
        let joined = machine.register(Self.register("w1"), now: 1)
        #expect(Self.rings(joined).isEmpty, "a joiner waits for a commit")
        #expect(machine.jobs["j1"]?.joining == ["w1"])
        #expect(joined.contains { if case .send("w1", .assign) = $0 { true } else { false } })
        let notZero = machine.handle(.commit(Commit(job: "j1", generation: 1, rank: 0, step: 10)), from: "w0", now: 2)
        let rings = Self.rings(notZero)
        #expect(rings["w1"]?.rank == 1 && rings["w0"]?.rank == 0 && rings["w0"]?.generation == 2)
        #expect(rings["w1"]?.resumeStep == 10)
    }

    @Test func leave_removesWorkerAndStopsItsTask() {
        var machine = CoordinatorMachine()
        for id in ["w0", "w1", "w2"] { _ = machine.register(Self.register(id), now: 0) }
        _ = machine.submit("j1", requirements: Self.requirements(min: 1, max: 3), now: 0)
        let actions = machine.handle(.leave(Leave(job: "j1", step: 20)), from: "w1", now: 1)
        #expect(Set(Self.rings(actions).keys) == ["w0", "w2"])
        #expect(actions.contains { if case .send("w1", .stopTask) = $0 { true } else { false } })
        #expect(machine.workers["w1"]?.leaving == true)
        _ = machine.submit("j2", requirements: Self.requirements(min: 1, max: 1), now: 2)
        #expect(machine.jobs["j2"]?.members.contains("w1") == false, "a leaving worker is never scheduled again")
    }

    @Test func priority_higherRunsFirst_thenSubmissionOrder() {
        var machine = CoordinatorMachine()
        _ = machine.submit("low", requirements: Self.requirements(min: 1, max: 1, priority: 0), now: 0)
        _ = machine.submit("high", requirements: Self.requirements(min: 1, max: 1, priority: 5), now: 0)
        _ = machine.submit("low2", requirements: Self.requirements(min: 1, max: 1, priority: 0), now: 0)
        _ = machine.register(Self.register("w0"), now: 1)
        #expect(machine.jobs["high"]?.state == .running)
        _ = machine.register(Self.register("w1"), now: 1)
        #expect(machine.jobs["low"]?.state == .running)
        #expect(machine.jobs["low2"]?.state == .queued)
    }

    @Test func finished_rankZero_endsJobAndFreesWorkers() {
        var machine = CoordinatorMachine()
        for id in ["w0", "w1"] { _ = machine.register(Self.register(id), now: 0) }
        _ = machine.submit("j1", requirements: Self.requirements(min: 2, max: 2), now: 0)
        _ = machine.handle(.taskFinished(TaskFinished(job: "j1", task: "train", metrics: ["steps": 60])), from: "w0", now: 5)
        #expect(machine.jobs["j1"]?.state == .succeeded)
        #expect(machine.workers.values.allSatisfy { $0.job == nil })
        #expect(machine.cancel("j1", now: 6) == .failure(.alreadyEnded(.succeeded)))
    }

    @Test func restart_membersReRegister_jobAdopted_missingOneLost() {
        var first = CoordinatorMachine()
        for id in ["w0", "w1", "w2"] { _ = first.register(Self.register(id), now: 0) }
        _ = first.submit("j1", requirements: Self.requirements(min: 2, max: 3), now: 0)
        _ = first.handle(.commit(Commit(job: "j1", generation: 1, rank: 0, step: 30)), from: "w0", now: 1)
        var restarted = CoordinatorMachine()
        restarted.restore(jobs: Array(first.jobs.values), now: 100)
        for id in ["w0", "w2"] {
            var message = Self.register(id)
            message.runningTask = TaskRef(job: "j1", task: "train")
            message.committedStep = 40
            let actions = restarted.register(message, now: 100.5)
            #expect(!actions.contains { if case .send(_, .stopTask) = $0 { true } else { false } })
        }
        #expect(restarted.jobs["j1"]?.committedStep == 40)
        #expect(Self.rings(restarted.tick(now: 101)).isEmpty, "training goes on while members re-register")
        // Members have the restore window (10 s) to come back; one that does not is lost after it.
        for t in stride(from: 101.5, through: 110, by: 1) {
            _ = restarted.heard(from: "w0", now: t)
            _ = restarted.heard(from: "w2", now: t)
            #expect(Self.rings(restarted.tick(now: t)).isEmpty, "still waiting for w1 at \(t) s")
        }
        _ = restarted.heard(from: "w0", now: 110.4)
        _ = restarted.heard(from: "w2", now: 110.4)
        let actions = restarted.tick(now: 110.5)
        let rings = Self.rings(actions)
        #expect(Set(rings.keys) == ["w0", "w2"])
        #expect(rings["w0"]?.generation == 2)
    }

    @Test func restart_memberBackWithoutItsTask_isLost_andTheJobReforms() {
        var first = CoordinatorMachine()
        for id in ["w0", "w1"] { _ = first.register(Self.register(id), now: 0) }
        _ = first.submit("j1", requirements: Self.requirements(min: 1, max: 2), now: 0)
        var restarted = CoordinatorMachine()
        restarted.restore(jobs: Array(first.jobs.values), now: 50)
        var w0 = Self.register("w0")
        w0.runningTask = TaskRef(job: "j1", task: "train")
        _ = restarted.register(w0, now: 50.1)
        let actions = restarted.register(Self.register("w1"), now: 50.2)  // a new process: no task
        #expect(restarted.jobs["j1"]?.members == ["w0"] || Self.rings(actions)["w0"] != nil)
        #expect(Self.events(actions).contains("worker_lost"))
    }

    @Test func rankZeroLostAfterOthersFinished_jobSucceedsAndSaysWhatWasLost() {
        var machine = CoordinatorMachine()
        for id in ["w0", "w1"] { _ = machine.register(Self.register(id), now: 0) }
        _ = machine.submit("j1", requirements: Self.requirements(min: 1, max: 2), now: 0)
        _ = machine.checkpointStored(job: "j1", step: 40)
        _ = machine.handle(.taskFinished(TaskFinished(job: "j1", task: "train", metrics: ["steps": 60])), from: "w1", now: 5)
        #expect(machine.jobs["j1"]?.state == .running, "rank 1's report alone does not end the job")
        let actions = machine.handle(.ringBroken(RingBroken(job: "j1", generation: 1, rank: 1, suspect: "w0",
                                                            disconnected: true, reason: "closed")), from: "w1", now: 6)
        #expect(machine.jobs["j1"]?.state == .succeeded)
        #expect(machine.jobs["j1"]?.message?.contains("newest stored checkpoint is step 40") == true)
        #expect(Self.rings(actions).isEmpty, "no generation is formed from ranks that have ended")
    }

    @Test func leftWorker_registeringAgain_isScheduledAgain() {
        var machine = CoordinatorMachine()
        for id in ["w0", "w1"] { _ = machine.register(Self.register(id), now: 0) }
        _ = machine.submit("j1", requirements: Self.requirements(min: 1, max: 2), now: 0)
        _ = machine.handle(.leave(Leave(job: "j1", step: 5)), from: "w1", now: 1)
        #expect(machine.jobs["j1"]?.members == ["w0"])
        _ = machine.register(Self.register("w1"), now: 2)  // restarted by `fluxctl up`
        #expect(machine.jobs["j1"]?.joining == ["w1"], "the restarted worker is scheduled again (joins at the next commit)")
    }

    @Test func taskFinished_nonFiniteSteps_doesNotCrash() {
        var machine = CoordinatorMachine()
        _ = machine.register(Self.register("w0"), now: 0)
        _ = machine.submit("j1", requirements: Self.requirements(min: 1, max: 1), now: 0)
        for steps in [Double.nan, .infinity, 1e300, -5] {
            _ = machine.handle(.taskFinished(TaskFinished(job: "j1", task: "train", metrics: ["steps": steps])),
                               from: "w1", now: 1)
        }
        _ = machine.handle(.taskFinished(TaskFinished(job: "j1", task: "train", metrics: ["steps": .nan])), from: "w0", now: 1)
        #expect(machine.jobs["j1"]?.state == .succeeded && machine.jobs["j1"]?.done == 0)
    }

    @Test func restore_gracePeriodStartsAgainOnTheNewClock() {
        var settings = CoordinatorMachine.Settings()
        settings.gracePeriod = 10
        var first = CoordinatorMachine(settings: settings)
        for id in ["w0", "w1"] { _ = first.register(Self.register(id), now: 0) }
        _ = first.submit("j1", requirements: Self.requirements(min: 2, max: 2), now: 0)
        _ = first.heard(from: "w0", now: 1000)
        _ = first.tick(now: 1000)  // w1 lost long ago by this clock: below min since 1000
        #expect(first.jobs["j1"]?.belowMinSince == 1000)
        var restarted = CoordinatorMachine(settings: settings)
        restarted.restore(jobs: Array(first.jobs.values), now: 0)
        #expect(restarted.jobs["j1"]?.belowMinSince == 0)
    }

    /// Random scripts of joins, deaths and commits: a job's generation never goes back, no worker is in two jobs,
    /// ranks are unique and dense.
    @Test(arguments: 0..<40) func randomScript_invariantsHold(seed: Int) {
        var random = SplitMix(seed: UInt64(seed))
        var machine = CoordinatorMachine()
        var generations: [JobID: UInt64] = [:]
        var now = 0.0
        var alive: Set<String> = []
        for step in 0..<200 {
            now += 0.25
            switch random.next() % 6 {
            case 0:
                let id = "w\(random.next() % 6)"
                alive.insert(id)
                _ = machine.register(Self.register(id), now: now)
            case 1:
                if let id = alive.randomElement(using: &random) { alive.remove(id) }
            case 2:
                let min = Int(random.next() % 2) + 1
                _ = machine.submit(JobID(rawValue: "j\(step)"), requirements: Self.requirements(min: min, max: min + 1), now: now)
            case 3:
                for job in machine.jobs.values where job.state == .running {
                    if let first = job.members.first {
                        _ = machine.handle(.commit(Commit(job: job.id, generation: job.generation, rank: 0, step: step)),
                                           from: first, now: now)
                    }
                }
            default:
                break
            }
            for id in alive { _ = machine.heard(from: WorkerID(rawValue: id), now: now) }
            let actions = machine.tick(now: now)
            // Each announced generation gives every rank exactly once to one worker.
            let announced = Dictionary(grouping: Self.rings(actions).values) { "\($0.job.rawValue)/\($0.generation)" }
            for (_, rings) in announced {
                #expect(rings.map(\.rank).sorted() == Array(0..<rings[0].worldSize))
            }
            var owner: [WorkerID: JobID] = [:]
            for job in machine.jobs.values {
                #expect(job.generation >= generations[job.id] ?? 0)
                generations[job.id] = job.generation
                guard !job.isTerminal else { continue }
                for member in job.members + job.joining {
                    #expect(owner[member] == nil, "\(member) is in \(owner[member]!.rawValue) and \(job.id.rawValue)")
                    owner[member] = job.id
                }
                #expect(Set(job.members).count == job.members.count)
            }
        }
    }
}

struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed &+ 0x9E37_79B9_7F4A_7C15 }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Suite struct ReproducibilityTests {
    @Test func exactJob_joinerWithOtherThreads_trainsOnAndSaysSoOnce() {
        var machine = CoordinatorMachine()
        var w0 = CoordinatorMachineTests.register("w0")
        w0.kernels = "flux avx2 · openblas Haswell"
        _ = machine.register(w0, now: 0)
        var requirements = CoordinatorMachineTests.requirements(min: 1, max: 3)
        requirements.exact = true
        let started = machine.submit("j1", requirements: requirements, now: 0)
        #expect(!CoordinatorMachineTests.events(started).contains("not_reproducible"))
        var same = CoordinatorMachineTests.register("w1")
        same.kernels = w0.kernels
        _ = machine.register(same, now: 1)
        _ = machine.handle(.commit(Commit(job: "j1", generation: 1, rank: 0, step: 3)), from: "w0", now: 1.5)
        #expect(machine.jobs["j1"]?.notReproducible == nil, "the same threads and kernels stay reproducible")
        var other = CoordinatorMachineTests.register("w2")
        other.cores = 2
        other.kernels = w0.kernels
        _ = machine.register(other, now: 2)
        let joined = machine.handle(.commit(Commit(job: "j1", generation: 2, rank: 0, step: 6)), from: "w0", now: 2.5)
        #expect(CoordinatorMachineTests.events(joined).filter { $0 == "not_reproducible" }.count == 1)
        #expect(machine.jobs["j1"]?.state == .running && machine.jobs["j1"]?.members.count == 3)
        #expect(machine.jobs["j1"]?.notReproducible?.contains("w2 2 thread(s)") == true)
        // Said once: a later generation does not repeat it.
        let again = machine.handle(.ringBroken(RingBroken(job: "j1", generation: 3, rank: 0, suspect: nil,
                                                          disconnected: false, reason: "t")), from: "w0", now: 3)
        #expect(!CoordinatorMachineTests.events(again).contains("not_reproducible"))
    }

    @Test func fastJob_mixedWorkers_saysNothing() {
        var machine = CoordinatorMachine()
        _ = machine.register(CoordinatorMachineTests.register("w0"), now: 0)
        var other = CoordinatorMachineTests.register("w1")
        other.cores = 4
        _ = machine.register(other, now: 0)
        let actions = machine.submit("j1", requirements: CoordinatorMachineTests.requirements(min: 2, max: 2), now: 0)
        #expect(!CoordinatorMachineTests.events(actions).contains("not_reproducible"))
        #expect(machine.jobs["j1"]?.notReproducible == nil)
    }
}
