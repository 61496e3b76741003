import Foundation
import FluxClient
import FluxProtocol
import FluxTestKit
import FluxTraining
import FluxViT
import Testing

extension SystemTests {
    /// `reduction: exact` (issue 12): the same parameter bits on any number of workers, and through a SIGKILL.
    @Suite struct ExactTrainingTests {
        static func bits(_ parameters: [String: [Float]]) -> [String: [UInt32]] {
            parameters.mapValues { $0.map(\.bitPattern) }
        }

        /// `ParameterStore.sha256()` of a checkpoint's parameters: the tiny model's layout, filled from the tensors.
        static func sha256(_ bits: [String: [UInt32]]) throws -> String {
            let config = try FluxViTConfig.load(path: SystemData.repository.path + "/configs/models/tiny-motion.yaml")
            let store = ParameterStore(config: config)
            for slot in store.slots {
                guard let values = bits[slot.name], values.count == slot.count else { return "missing \(slot.name)" }
                for (i, value) in values.enumerated() { store.values[slot.offset + i] = Float(bitPattern: value) }
            }
            return store.sha256()
        }

        /// A job on `workers` workers: its final parameters' bits and its step hashes.
        static func run(workers: Int, steps: Int, security: String) throws -> (bits: [String: [UInt32]], hashes: [StepHash]) {
            let cluster = try TestCluster(workers: workers)
            let job = try cluster.submit(SystemData.spec(name: "exact-\(workers)", steps: steps, min: workers,
                                                         max: workers, reduction: "exact", security: security))
            try cluster.waitForSuccess(job, within: 180)
            let status = try cluster.status(job)
            let events = try cluster.client.events(job)
            #expect(status.workers == workers,
                    "\(status.message ?? "")\n\(events.map { "\($0.kind): \($0.text)" }.joined(separator: "\n"))\n\(cluster.logs())")
            let hashes = try cluster.client.hashes(job)
            #expect(hashes.mismatches.isEmpty)
            // `fluxctl events --hashes` lists them among the events, one `step_hash` a step.
            let listed = try BuiltTool.run("fluxctl", ["events", job.rawValue, "--hashes", "--json", "--state-dir", cluster.directory.path])
            let rows = (try? JSONSerialization.jsonObject(with: Data(listed.stdout.utf8))) as? [[String: Any]] ?? []
            let stepHashes = rows.filter { $0["kind"] as? String == "step_hash" }.compactMap { $0["text"] as? String }
            #expect(stepHashes.count == steps && stepHashes.contains("step 1: sha256 \(hashes.hashes[0].sha256)"),
                    "\(listed.stderr)\(stepHashes.prefix(2))")
            return (bits(try cluster.finalParameters(job)), hashes.hashes)
        }

        @Test(arguments: ["curve", "none"]) func oneToFourWorkers_identicalHashesAfterEveryStep(security: String) throws {
            let steps = 20
            let one = try Self.run(workers: 1, steps: steps, security: security)
            #expect(!one.bits.isEmpty)
            #expect(one.hashes.map(\.step) == Array(1...steps), "one hash a step")
            for workers in [2, 3, 4] {
                let other = try Self.run(workers: workers, steps: steps, security: security)
                let differing = zip(one.hashes, other.hashes).first { $0.sha256 != $1.sha256 }?.0.step
                #expect(other.hashes.count == steps && differing == nil,
                        "\(workers) workers vs 1 (\(security)): first differing step \(differing.map(String.init) ?? "none"), \(other.hashes.count) hashes")
                let tensors = one.bits.keys.filter { one.bits[$0] != other.bits[$0] }.sorted()
                #expect(tensors.isEmpty, "\(workers) workers vs 1 (\(security)): \(tensors.count) tensors differ, e.g. \(tensors.prefix(3))")
            }
            // The last step's hash is the stored final checkpoint's.
            #expect(try one.hashes.last?.sha256 == Self.sha256(one.bits))
        }

        @Test func sigkillOneOfThree_exact_matchesUndisturbedRunBitForBit() throws {
            let steps = 30
            let cluster = try TestCluster(workers: 3)
            let job = try cluster.submit(SystemData.spec(name: "exact-kill", steps: steps, min: 2, max: 3, reduction: "exact"))
            try cluster.eventually("the job reaching step 8 on 3 workers", within: 120) {
                let status = try cluster.status(job)
                return status.workers == 3 && status.done >= 8
            }
            let victim = try cluster.lastRankOfFirstGeneration(job)
            #expect(kill(Int32(victim.pid ?? 0), SIGKILL) == 0)
            try cluster.waitForSuccess(job, within: 180)
            #expect(try cluster.client.events(job).contains { $0.kind == "rollback" })
            let disturbed = Self.bits(try cluster.finalParameters(job))
            #expect(try cluster.client.hashes(job).mismatches.isEmpty, "redone steps give the same bits")

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
