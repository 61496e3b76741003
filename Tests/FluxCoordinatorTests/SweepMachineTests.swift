import Foundation
import FluxCoordinator
import FluxProtocol
import Testing

/// Sweeps in the coordinator's machine: dispatch, sharding, loss, stragglers, duplicates and restarts, by scripted
/// events with time passed in.
@Suite struct SweepMachineTests {
    typealias T = CoordinatorMachineTests

    static func assigns(_ actions: [CoordinatorAction]) -> [WorkerID: Assign] {
        var out: [WorkerID: Assign] = [:]
        for case let .send(worker, .assign(assign)) in actions { out[worker] = assign }
        return out
    }

    static func stored(_ actions: [CoordinatorAction]) -> [Int] {
        actions.compactMap { if case let .storeCellResult(_, unit, _, _) = $0 { unit } else { nil } }
    }

    static func finish(_ machine: inout CoordinatorMachine, _ assign: Assign, by worker: WorkerID, now: Double)
        -> [CoordinatorAction]
    {
        machine.handle(.taskFinished(TaskFinished(job: assign.job, task: assign.task)), from: worker, now: now)
    }

    @Test func sweep_threeWorkersFiveCells_runsEveryCellOnceAndSucceeds() {
        var machine = CoordinatorMachine()
        for id in ["w0", "w1", "w2"] { _ = machine.register(T.register(id), now: 0) }
        var running = Self.assigns(machine.submit("s1", requirements: .sweep(name: "s", cells: 5, maxWorkers: 8, specYAML: "kind: sweep\n"), now: 0))
        #expect(running.count == 3)
        #expect(Set(running.values.map(\.task)) == ["cell-0", "cell-1", "cell-2"])
        #expect(running.values.allSatisfy { $0.kind == .evaluationCell && $0.cell?.shardCount == 1 })
        var stored: [Int] = []
        var t = 1.0
        var finished = false
        while let (worker, assign) = running.sorted(by: { $0.key < $1.key }).first {
            running[worker] = nil
            let actions = Self.finish(&machine, assign, by: worker, now: t)
            stored += Self.stored(actions)
            running.merge(Self.assigns(actions)) { $1 }
            finished = actions.contains(.sweepFinished("s1"))
            t += 1
        }
        #expect(stored.sorted() == [0, 1, 2, 3, 4])
        #expect(finished)
        #expect(machine.jobs["s1"]?.state == .succeeded)
        #expect(machine.workers.values.allSatisfy { $0.job == nil })
    }

    @Test func sweep_moreWorkersThanCells_splitsCellsIntoShards() {
        var machine = CoordinatorMachine()
        for id in ["w0", "w1", "w2", "w3"] { _ = machine.register(T.register(id), now: 0) }
        let assigns = Self.assigns(machine.submit("s1", requirements: .sweep(name: "s", cells: 2, maxWorkers: 8, specYAML: "kind: sweep\n"), now: 0))
        #expect(machine.jobs["s1"]?.sweep?.shards == 2)
        #expect(Set(assigns.values.map(\.task)) == ["cell-0.0", "cell-0.1", "cell-1.0", "cell-1.1"])
        #expect(assigns.values.allSatisfy { $0.cell?.shardCount == 2 })
    }

    @Test func sweep_workerDies_itsCellIsDispatchedAgainAndStoredOnce() {
        var machine = CoordinatorMachine()
        for id in ["w0", "w1"] { _ = machine.register(T.register(id), now: 0) }
        let first = Self.assigns(machine.submit("s1", requirements: .sweep(name: "s", cells: 3, maxWorkers: 8, specYAML: "kind: sweep\n"), now: 0))
        #expect(first["w1"]?.task == "cell-1")
        // w1 goes silent; w0 keeps working.
        var actions = Self.finish(&machine, first["w0"]!, by: "w0", now: 1)
        #expect(Self.assigns(actions)["w0"]?.task == "cell-2")
        _ = machine.heard(from: "w0", now: 3.5)
        actions = machine.tick(now: 3.5)
        #expect(T.events(actions).contains("cell_requeued"))
        actions = Self.finish(&machine, Assign(job: "s1", task: "cell-2", kind: .evaluationCell, specYAML: "", cell: .init(index: 2)), by: "w0", now: 4)
        #expect(Self.assigns(actions)["w0"]?.task == "cell-1", "the lost cell goes to the next free worker")
        // w1 comes back (a new process) and replays its result of cell-1: stored once, the twin is told to stop.
        _ = machine.register(T.register("w1"), now: 5)
        actions = Self.finish(&machine, first["w1"]!, by: "w1", now: 5.1)
        #expect(Self.stored(actions) == [1])
        #expect(actions.contains(.send("w0", .stopTask(StopTask(job: "s1", task: "cell-1", reason: "w1 finished it first")))))
        #expect(machine.jobs["s1"]?.state == .succeeded)
        // w0's late result of the same cell is acknowledged and not stored again.
        actions = Self.finish(&machine, first["w1"]!, by: "w0", now: 6)
        #expect(Self.stored(actions).isEmpty)
        #expect(actions.contains(.send("w0", .stopTask(StopTask(job: "s1", task: "cell-1", reason: "result received")))))
    }

    @Test func sweep_straggler_getsASecondRunOnceNothingWaits() {
        var settings = CoordinatorMachine.Settings()
        settings.heartbeatInterval = 100  // liveness out of the way
        var machine = CoordinatorMachine(settings: settings)
        for id in ["w0", "w1"] { _ = machine.register(T.register(id), now: 0) }
        var running = Self.assigns(machine.submit("s1", requirements: .sweep(name: "s", cells: 4, maxWorkers: 8, specYAML: "kind: sweep\n"), now: 0))
        // w0 finishes cells 0, 2, 3 in 1 s each; w1 sits on cell 1.
        var t = 1.0
        while let assign = running["w0"] {
            let actions = Self.finish(&machine, assign, by: "w0", now: t)
            running["w0"] = Self.assigns(actions)["w0"]
            t += 1
        }
        #expect(machine.jobs["s1"]?.sweep?.running.keys.sorted() == [1])
        #expect(Self.assigns(machine.tick(now: 5)).isEmpty, "not yet far behind")
        let actions = machine.tick(now: 13)
        #expect(Self.assigns(actions)["w0"]?.task == "cell-1")
        #expect(T.events(actions).contains("cell_dispatched"))
        #expect(machine.jobs["s1"]?.sweep?.running[1]?.count == 2)
    }

    @Test func sweep_priorities_trainingJobFirstThenSweepTakesTheRest() {
        var machine = CoordinatorMachine()
        for id in ["w0", "w1", "w2"] { _ = machine.register(T.register(id), now: 0) }
        _ = machine.submit("s1", requirements: .sweep(name: "s", cells: 10, maxWorkers: 8, priority: 0, specYAML: "kind: sweep\n"), now: 0)
        #expect(machine.workers.values.filter { $0.job == "s1" }.count == 3)
        // A higher-priority training job takes workers as their cells finish.
        _ = machine.submit("j2", requirements: T.requirements(min: 1, max: 1, priority: 5), now: 0.1)
        let cell = machine.workers["w0"]!.task!
        let actions = Self.finish(&machine, Assign(job: "s1", task: cell, kind: .evaluationCell, specYAML: "", cell: .init(index: 0)), by: "w0", now: 1)
        #expect(Self.assigns(actions)["w0"]?.job == "j2")
        #expect(machine.jobs["j2"]?.state == .running)
    }

    @Test func sweep_coordinatorRestart_keepsDoneCellsAndAdoptsRunningOnes() throws {
        var machine = CoordinatorMachine()
        for id in ["w0", "w1"] { _ = machine.register(T.register(id), now: 0) }
        let first = Self.assigns(machine.submit("s1", requirements: .sweep(name: "s", cells: 4, maxWorkers: 8, specYAML: "kind: sweep\n"), now: 0))
        let next = Self.assigns(Self.finish(&machine, first["w0"]!, by: "w0", now: 1))
        #expect(next["w0"]?.task == "cell-2")
        // Restart: a new machine from the stored records; w0 re-registers with cell-2, w1 never comes back.
        var restarted = CoordinatorMachine()
        restarted.restore(jobs: Array(machine.jobs.values), now: 100)
        var w0 = T.register("w0")
        w0.runningTask = TaskRef(job: "s1", task: "cell-2")
        let adopted = restarted.register(w0, now: 100.5)
        #expect(Self.assigns(adopted).isEmpty, "w0 keeps computing cell-2")
        #expect(restarted.workers["w0"]?.task == "cell-2")
        _ = restarted.heard(from: "w0", now: 110.5)
        let later = restarted.tick(now: 110.6)
        #expect(T.events(later).contains("cell_requeued"), "w1's cell-1 is queued again")
        #expect(restarted.jobs["s1"]?.sweep?.done == [0])
        // The done cell is never dispatched again.
        var dispatched: [TaskID] = []
        var actions = Self.finish(&restarted, next["w0"]!, by: "w0", now: 105)
        while let assign = Self.assigns(actions)["w0"] {
            dispatched.append(assign.task)
            actions = Self.finish(&restarted, assign, by: "w0", now: 106)
        }
        #expect(dispatched == ["cell-1", "cell-3"])
        #expect(restarted.jobs["s1"]?.state == .succeeded)
    }

    @Test func sweep_nonRetryableFailure_failsTheSweepWithTheReason() {
        var machine = CoordinatorMachine()
        _ = machine.register(T.register("w0"), now: 0)
        let first = Self.assigns(machine.submit("s1", requirements: .sweep(name: "s", cells: 2, maxWorkers: 8, specYAML: "kind: sweep\n"), now: 0))
        _ = machine.handle(.taskFailed(TaskFailed(job: "s1", task: first["w0"]!.task, reason: "cannot read manifest 'x.csv'",
                                                  retryable: false)), from: "w0", now: 1)
        #expect(machine.jobs["s1"]?.state == .failed)
        #expect(machine.jobs["s1"]?.message?.contains("x.csv") == true)
        #expect(machine.workers["w0"]?.job == nil)
    }

    @Test func sweepProgress_taskIDs_roundTrip() {
        var sweep = SweepProgress(cells: 3)
        #expect(sweep.unit(sweep.task(2)) == 2)
        sweep.shards = 4
        #expect(sweep.task(9) == "cell-2.1")
        #expect(sweep.unit("cell-2.1") == 9)
        #expect(sweep.unit("cell-3.0") == nil && sweep.unit("cell-2") == nil && sweep.unit("train") == nil)
    }
}

@Suite struct SweepProgressCodingTests {
    @Test func encode_doneUnits_travelAsRunsAndReadBack() throws {
        var sweep = SweepProgress(cells: 10)
        for unit in [0, 1, 2, 5, 7, 8] { sweep.markDone(unit) }
        let data = try JSONEncoder().encode(sweep)
        #expect(String(decoding: data, as: UTF8.self).contains("\"done\":[[0,2],[5,5],[7,8]]"))
        let back = try JSONDecoder().decode(SweepProgress.self, from: data)
        #expect(back == sweep && back.cellsDone == 6)
    }

    @Test func decode_plainListOfDoneUnits_stillReads() throws {
        let text = #"{"cells":3,"shards":1,"done":[0,2],"running":{},"requeued":[],"cursor":3,"attempts":{},"durations":[]}"#
        let sweep = try JSONDecoder().decode(SweepProgress.self, from: Data(text.utf8))
        #expect(sweep.done == [0, 2] && sweep.cellsDone == 2)
    }
}
