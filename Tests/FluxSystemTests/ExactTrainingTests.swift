import Foundation
import FluxClient
import FluxProtocol
import FluxTestKit
import Testing

extension SystemTests {
    /// `reduction: exact` (issue 12): the same parameter bits on any number of workers, and through a SIGKILL.
    @Suite struct ExactTrainingTests {
        static func bits(_ parameters: [String: [Float]]) -> [String: [UInt32]] {
            parameters.mapValues { $0.map(\.bitPattern) }
        }

        static func run(workers: Int, steps: Int, security: String) throws -> [String: [UInt32]] {
            let cluster = try TestCluster(workers: workers)
            let job = try cluster.submit(SystemData.spec(name: "exact-\(workers)", steps: steps, min: workers,
                                                         max: workers, reduction: "exact", security: security))
            try cluster.waitForSuccess(job, within: 180)
            let status = try cluster.status(job)
            let events = try cluster.client.events(job)
            #expect(status.workers == workers,
                    "\(status.message ?? "")\n\(events.map { "\($0.kind): \($0.text)" }.joined(separator: "\n"))\n\(cluster.logs())")
            return bits(try cluster.finalParameters(job))
        }

        @Test(arguments: ["curve", "none"]) func oneToThreeWorkers_identicalParameters(security: String) throws {
            let one = try Self.run(workers: 1, steps: 12, security: security)
            #expect(!one.isEmpty)
            for workers in [2, 3] {
                let other = try Self.run(workers: workers, steps: 12, security: security)
                let differing = one.keys.filter { one[$0] != other[$0] }.sorted()
                #expect(differing.isEmpty, "\(workers) workers vs 1 (\(security)): \(differing.count) tensors differ, e.g. \(differing.prefix(3))")
            }
        }

        @Test func sigkillOneOfThree_exact_matchesUndisturbedRunBitForBit() throws {
            let steps = 30
            let cluster = try TestCluster(workers: 3)
            let job = try cluster.submit(SystemData.spec(name: "exact-kill", steps: steps, min: 2, max: 3, reduction: "exact"))
            try cluster.eventually("the job reaching step 8 on 3 workers", within: 120) {
                let status = try cluster.status(job)
                return status.workers == 3 && status.done >= 8
            }
            let members = try cluster.client.events(job).first { $0.kind == "generation" }?.text ?? ""
            let workers = try cluster.client.workers()
            let victim = try #require(workers.filter { members.contains($0.workerID.rawValue) }
                .max { members.range(of: $0.workerID.rawValue)!.lowerBound < members.range(of: $1.workerID.rawValue)!.lowerBound })
            #expect(kill(Int32(victim.pid ?? 0), SIGKILL) == 0)
            try cluster.waitForSuccess(job, within: 180)
            #expect(try cluster.client.events(job).contains { $0.kind == "rollback" })
            let disturbed = Self.bits(try cluster.finalParameters(job))

            let reference = try TestCluster(workers: 1)
            let undisturbed = try reference.submit(SystemData.spec(name: "exact-ref", steps: steps, min: 1, max: 1,
                                                                   reduction: "exact"))
            try reference.waitForSuccess(undisturbed, within: 180)
            let expected = Self.bits(try reference.finalParameters(undisturbed))
            let differing = expected.keys.filter { expected[$0] != disturbed[$0] }.sorted()
            #expect(!expected.isEmpty && differing.isEmpty, "killed vs undisturbed: \(differing.count) tensors differ")
        }

        @Test func joinerWithOtherThreadCount_jobGoesOn_andSaysItIsNoLongerReproducible() throws {
            let cluster = try TestCluster(workers: 1)
            let job = try cluster.submit(SystemData.spec(name: "mixed", steps: 90, min: 1, max: 2, reduction: "exact"))
            try cluster.eventually("the job reaching step 6", within: 120) { try cluster.status(job).done >= 6 }
            #expect(try cluster.status(job).notReproducible == nil)
            let add = try BuiltTool.run("fluxctl", ["up", "--add", "1", "--state-dir", cluster.directory.path,
                                                    "--threads-per-worker", "2"])
            #expect(add.status == 0, "fluxctl up --add 1: \(add.stderr)")
            try cluster.eventually("the 2-thread worker admitted", within: 60) { try cluster.status(job).workers == 2 }
            try cluster.waitForSuccess(job, within: 180)
            let said = try cluster.client.events(job).filter { $0.kind == "not_reproducible" }
            #expect(said.count == 1 && said.first?.text.contains("2 thread(s)") == true, "\(said.map(\.text))")
            let status = try BuiltTool.run("fluxctl", ["status", job.rawValue, "--json", "--state-dir", cluster.directory.path])
            let object = try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any]
            #expect((object?["not_reproducible"] as? String)?.contains("thread(s)") == true, "\(status.stdout)")
        }
    }
}
