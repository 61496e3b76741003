import Foundation
import FluxClient
import FluxProtocol
import FluxTestKit
import Testing

/// Real `fluxd` processes on loopback training the tiny model on real encoded videos (issue 10, tests 1 and 2).
@Suite(.serialized) struct ElasticTrainingTests {
    /// Parameters after the same job on 1 and on 2 workers differ only by fp32 reduction order (amplified by AdamW
    /// for near-zero gradients; see `relativeDistance`).
    static let tolerance = 1e-2

    @Test func twoWorkerJob_finishes_parametersEqualOneWorkerRun() throws {
        let one = try TestCluster(workers: 1)
        let jobOne = try one.submit(SystemData.spec(name: "one", steps: 12, min: 1, max: 1))
        try one.waitForSuccess(jobOne, within: 120)
        let single = try one.finalParameters(jobOne)

        let two = try TestCluster(workers: 2)
        let jobTwo = try two.submit(SystemData.spec(name: "two", steps: 12, min: 2, max: 2))
        try two.waitForSuccess(jobTwo, within: 120)
        #expect(try two.status(jobTwo).workers == 2)
        let double = try two.finalParameters(jobTwo)
        #expect(!single.isEmpty && single.keys.sorted() == double.keys.sorted())
        let distance = relativeDistance(single, double)
        #expect(distance <= Self.tolerance,
                "1 vs 2 workers: relative distance \(distance), max scaled difference \(maxScaledDifference(single, double))")
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
        // The last rank of generation 1 (not rank 0, which reports progress).
        let members = try cluster.client.events(job).first { $0.kind == "generation" }?.text ?? ""
        let victim = workers.map(\.workerID).filter { members.contains($0.rawValue) }
            .max { members.range(of: $0.rawValue)!.lowerBound < members.range(of: $1.rawValue)!.lowerBound }!
        let victimPID = pids[victim]!
        #expect(kill(victimPID, SIGKILL) == 0)
        try cluster.waitForSuccess(job, within: 180)

        let events = try cluster.client.events(job)
        #expect(events.contains { $0.kind == "worker_lost" && $0.worker == victim }, "\(events.map(\.text))")
        #expect(events.contains { $0.kind == "rollback" })
        #expect(events.filter { $0.kind == "generation" }.count >= 2)
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
