import Foundation
import FluxClient
import FluxProtocol
import FluxTestKit
import Testing

extension SystemTests {
    /// Real `fluxd` processes on loopback training the tiny model on real encoded videos (issue 10, tests 1 and 2).
    @Suite struct ElasticTrainingTests {
        /// Parameters after the same job on 1 and on 2 workers differ only by fp32 reduction order (amplified by AdamW
        /// for near-zero gradients; see `relativeDistance`).
        static let tolerance = 1e-2

        /// With `reduction: fast` the two runs differ by fp32 reduction order only; with `exact` they are the same bits.
        @Test(arguments: ["fast", "exact"]) func twoWorkerJob_finishes_parametersEqualOneWorkerRun(reduction: String) throws {
            let one = try TestCluster(workers: 1)
            let jobOne = try one.submit(SystemData.spec(name: "one", steps: 12, min: 1, max: 1, reduction: reduction))
            try one.waitForSuccess(jobOne, within: 120)
            let single = try one.finalParameters(jobOne)

            let two = try TestCluster(workers: 2)
            let jobTwo = try two.submit(SystemData.spec(name: "two", steps: 12, min: 2, max: 2, reduction: reduction))
            try two.waitForSuccess(jobTwo, within: 120)
            #expect(try two.status(jobTwo).workers == 2)
            let double = try two.finalParameters(jobTwo)
            #expect(!single.isEmpty && single.keys.sorted() == double.keys.sorted())
            if reduction == "exact" {
                #expect(single.keys.allSatisfy { single[$0]!.map(\.bitPattern) == double[$0]!.map(\.bitPattern) },
                        "1 vs 2 workers with reduction exact: relative distance \(relativeDistance(single, double))")
            } else {
                let distance = relativeDistance(single, double)
                #expect(distance <= Self.tolerance,
                        "1 vs 2 workers: relative distance \(distance), max scaled difference \(maxScaledDifference(single, double))")
            }
        }

        @Test func sigkillOneOfThree_survivorsGoOnWithoutRestart_andMatchUndisturbedRun() throws {
            let steps = 45
            let cluster = try TestCluster(workers: 3)
            let job = try cluster.submit(SystemData.spec(name: "kill", steps: steps, min: 2, max: 3))
            try cluster.eventually("the job reaching step 10 on 3 workers", within: 120) {
                let status = try cluster.status(job)
                return status.workers == 3 && status.done >= 10
            }
            let workers = try cluster.client.workers()
            let pids = Dictionary(uniqueKeysWithValues: workers.map { ($0.workerID, Int32($0.pid ?? 0)) })
            let victim = try cluster.lastRankOfFirstGeneration(job).workerID
            let victimPID = pids[victim]!
            #expect(kill(victimPID, SIGKILL) == 0)
            try cluster.waitForSuccess(job, within: 180)

            let events = try cluster.client.events(job)
            // Found by its closed ring connection (libzmq's disconnect event), not by 3 missed heartbeats.
            #expect(events.contains { $0.kind == "worker_lost" && $0.worker == victim && $0.text.contains("ring connection closed") },
                    "\(events.map(\.text))")
            #expect(events.contains { $0.kind == "rollback" })
            #expect(events.filter { $0.kind == "generation" }.count >= 2)
            // The recovery was timed, and `fluxctl status` says how long it took.
            #expect(events.contains { $0.kind == "recovered" }, "\(events.map(\.text))")
            let status = try BuiltTool.run("fluxctl", ["status", job.rawValue, "--state-dir", cluster.directory.path])
            #expect(status.stdout.contains("recoveries: ") && status.stdout.contains(", p50 ") && status.stdout.contains(" p95 "), "\(status.stdout)")
            let json = try BuiltTool.run("fluxctl", ["status", job.rawValue, "--json", "--state-dir", cluster.directory.path])
            let object = (try? JSONSerialization.jsonObject(with: Data(json.stdout.utf8))) as? [String: Any] ?? [:]
            #expect((object["recoveries"] as? Int ?? 0) >= 1 && object["recovery_p50_seconds"] is Double
                    && object["recovery_p95_seconds"] is Double, "\(json.stdout)")
            // No survivor restarted: the same processes are alive.
            for (worker, pid) in pids where worker != victim {
                #expect(LocalCluster.isAlive(pid), "survivor \(worker) (pid \(pid)) is not running")
            }
            #expect(try cluster.client.workers().filter { $0.workerID != victim }.allSatisfy { pids[$0.workerID] == Int32($0.pid ?? -1) })
            let disturbed = try cluster.finalParameters(job)

            let reference = try TestCluster(workers: 1)
            let undisturbed = try reference.submit(SystemData.spec(name: "reference", steps: steps, min: 1, max: 1))
            try reference.waitForSuccess(undisturbed, within: 180)
            let reference1 = try reference.finalParameters(undisturbed)
            let distance = relativeDistance(disturbed, reference1)
            // Reduction-order noise grows with steps: the same job undisturbed on 3 workers and on 1 measured 0.033 after
            // 45 steps (the killed run 0.028); a skipped, doubled or mis-sharded step moves far more.
            #expect(distance <= 0.06,
                    "killed vs undisturbed: relative distance \(distance), max scaled difference \(maxScaledDifference(disturbed, reference1))")
        }
    }

    /// Joins and coordinator restarts (issue 10, tests 3 and 4).
    @Suite struct ElasticJoinAndRestartTests {
        @Test func workerAddedMidJob_isAdmitted_receivesState_andTrains() throws {
            let steps = 90  // long enough that the job is still running when the added worker has registered
            let cluster = try TestCluster(workers: 1)
            let job = try cluster.submit(SystemData.spec(name: "join", steps: steps, min: 1, max: 2, reduction: "exact"))
            try cluster.eventually("the job reaching step 6 on 1 worker", within: 120) { try cluster.status(job).done >= 6 }
            let add = try BuiltTool.run("fluxctl", ["up", "--add", "1", "--state-dir", cluster.directory.path,
                                                    "--threads-per-worker", "1"])
            #expect(add.status == 0, "fluxctl up --add 1: \(add.stderr)")
            try cluster.eventually("a second worker admitted", within: 60) { try cluster.status(job).workers == 2 }
            try cluster.waitForSuccess(job, within: 180)
            let events = try cluster.client.events(job)
            #expect(events.contains { $0.kind == "joined" }, "\(events.map(\.text))")
            #expect(events.contains { $0.kind == "generation" && $0.text.contains("2 rank(s)") })
            // The joiner received the state and trained: its log says so.
            let lines = try cluster.client.logs(job).lines.map(\.text)
            #expect(lines.filter { $0.contains("generation 2: rank 1 of 2") }.count == 1, "\(lines)")
            let joined = try cluster.finalParameters(job)

            let reference = try TestCluster(workers: 1)
            let undisturbed = try reference.submit(SystemData.spec(name: "reference", steps: steps, min: 1, max: 1,
                                                                   reduction: "exact"))
            try reference.waitForSuccess(undisturbed, within: 180)
            let expected = try reference.finalParameters(undisturbed)
            // With reduction exact the join changes no bit.
            #expect(expected.keys.allSatisfy { expected[$0]!.map(\.bitPattern) == joined[$0]?.map(\.bitPattern) },
                    "joined vs undisturbed: relative distance \(relativeDistance(joined, expected))")
        }

        @Test func coordinatorKilledAndRestarted_jobKeepsTrainingAndFinishes_nothingLost() throws {
            let cluster = try TestCluster(workers: 2)
            let job = try cluster.submit(SystemData.spec(name: "restart", steps: 120, min: 2, max: 2, reduction: "exact"))
            let waiting = try cluster.submit(SystemData.spec(name: "queued", steps: 3, min: 3, max: 3))
            try cluster.eventually("the job reaching step 5", within: 120) { try cluster.status(job).done >= 5 }
            let coordinator = try #require(cluster.local.coordinatorPID)
            let workerPIDs = cluster.local.workerPIDs.map(\.1)
            #expect(kill(coordinator, SIGKILL) == 0)
            try cluster.eventually("the coordinator process gone", within: 10) { !LocalCluster.isAlive(coordinator) }
            let before = try SystemData.lastLoggedStep(cluster.directory)
            // Training does not wait for the coordinator: the workers' own logs go on while it is down.
            try cluster.eventually("training going on without the coordinator", within: 60) {
                try SystemData.lastLoggedStep(cluster.directory) > before
            }
            let up = try BuiltTool.run("fluxctl", ["up", "--workers", "2", "--state-dir", cluster.directory.path])
            #expect(up.status == 0, "fluxctl up after the kill: \(up.stderr)")
            #expect(cluster.local.coordinatorPID != coordinator)
            try cluster.waitForSuccess(job, within: 180)
            #expect(cluster.local.workerPIDs.map(\.1).sorted() == workerPIDs.sorted(), "no worker restarted")
            let jobs = try cluster.client.status().map(\.job)
            #expect(jobs.contains(job) && jobs.contains(waiting), "jobs after the restart: \(jobs)")
            #expect(try cluster.status(waiting).state == .queued)
            #expect(try cluster.client.checkpoints(job).last?.step == 120)
            // With reduction exact, the same bits as the job undisturbed on one worker.
            let restarted = try cluster.finalParameters(job)
            let reference = try TestCluster(workers: 1)
            let undisturbed = try reference.submit(SystemData.spec(name: "reference", steps: 120, min: 1, max: 1,
                                                                   reduction: "exact"))
            try reference.waitForSuccess(undisturbed, within: 180)
            let expected = try reference.finalParameters(undisturbed)
            #expect(!expected.isEmpty && expected.keys.allSatisfy { expected[$0]!.map(\.bitPattern) == restarted[$0]?.map(\.bitPattern) },
                    "restarted vs undisturbed: relative distance \(relativeDistance(restarted, expected))")
        }
    }
}

extension SystemTests {
    /// SIGTERM (issue 10): a worker finishes its step, leaves at its next commit and exits; the others go on.
    @Suite struct GracefulLeaveTests {
        @Test func sigtermOneOfThree_leavesAtCommit_exits_othersFinish() throws {
            let cluster = try TestCluster(workers: 3)
            let job = try cluster.submit(SystemData.spec(name: "leave", steps: 45, min: 1, max: 3))
            try cluster.eventually("the job reaching step 6 on 3 workers", within: 120) {
                let status = try cluster.status(job)
                return status.workers == 3 && status.done >= 6
            }
            let workers = try cluster.client.workers()
            let leaver = try cluster.lastRankOfFirstGeneration(job)
            let pid = Int32(leaver.pid ?? 0)
            let others = workers.filter { $0.workerID != leaver.workerID }.map { Int32($0.pid ?? 0) }
            #expect(kill(pid, SIGTERM) == 0)
            try cluster.eventually("the SIGTERMed worker exiting", within: 30) { !LocalCluster.isAlive(pid) }
            try cluster.waitForSuccess(job, within: 180)
            let events = try cluster.client.events(job)
            #expect(events.contains { $0.kind == "left" && $0.worker == leaver.workerID }, "\(events.map(\.text))")
            #expect(!events.contains { $0.kind == "worker_lost" }, "a leave is not a loss: \(events.map(\.text))")
            #expect(others.allSatisfy(LocalCluster.isAlive), "the others never restarted")
            let log = (try? String(contentsOf: cluster.directory.appendingPathComponent("logs/w\(SystemData.folderIndex(of: pid, in: cluster)).log"),
                                   encoding: .utf8)) ?? ""
            #expect(log.contains("leaving at the commit of step") && log.contains("exiting"), "\(log.suffix(800))")
        }
    }
}

extension SystemTests {
    /// A job that ends while the coordinator is down is not lost: the workers replay its last checkpoint and its
    /// end after re-registering with the restarted coordinator.
    @Suite struct EndWhileCoordinatorDownTests {
        @Test func jobFinishesWhileCoordinatorDown_isRecordedAfterRestart() throws {
            let steps = 45
            let cluster = try TestCluster(workers: 2)
            let job = try cluster.submit(SystemData.spec(name: "ends-alone", steps: steps, min: 2, max: 2))
            try cluster.eventually("the job reaching step 5", within: 120) { try cluster.status(job).done >= 5 }
            let coordinator = try #require(cluster.local.coordinatorPID)
            #expect(kill(coordinator, SIGKILL) == 0)
            try cluster.eventually("the workers finishing the job on their own", within: 120) {
                try SystemData.lastLoggedStep(cluster.directory) >= steps
            }
            let up = try BuiltTool.run("fluxctl", ["up", "--workers", "2", "--state-dir", cluster.directory.path])
            #expect(up.status == 0, "\(up.stderr)")
            try cluster.waitForSuccess(job, within: 60)
            #expect(try cluster.client.checkpoints(job).last?.step == steps, "the final checkpoint was replayed and stored")
            let workers = try cluster.client.workers()
            #expect(workers.count == 2 && workers.allSatisfy { $0.state == .idle }, "\(workers)")
        }
    }
}
