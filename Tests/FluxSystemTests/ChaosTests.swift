import Foundation
import FluxClient
import FluxProtocol
import FluxTestKit
import Testing

/// `fluxctl chaos`'s plan and verdict, without processes.
@Suite struct ChaosPlanTests {
    static func reply(_ hashes: [Int: String], mismatches: [Int] = []) -> HashesReply {
        HashesReply(job: "j", hashes: hashes.keys.sorted().map { StepHash(step: $0, sha256: hashes[$0]!, timeMS: 0) },
                    mismatches: mismatches)
    }

    @Test func plan_givenSteps_sortedByStep_tiesInTheOrderGiven() throws {
        let plan = try ChaosPlan([(.killCoordinator, .at(9)), (.killWorker, .at(4)), (.addWorker, .at(9))],
                                 totalSteps: 20, workers: 2, seed: 1)
        #expect(plan.faults == [ChaosFault(.killWorker, at: 4), ChaosFault(.killCoordinator, at: 9),
                                ChaosFault(.addWorker, at: 9)])
        #expect(plan.addedWorkers == 1)
    }

    @Test func plan_faultsThatLeaveNoWorker_refused_inTheOrderTheyFire() throws {
        // 2 workers: a kill at 3 and a stop at 9 would leave none, unless a worker is added between them.
        #expect(throws: ChaosError.noWorkersLeft(fault: "stop-worker@9", workers: 2)) {
            try ChaosPlan([(.stopWorker, .at(9)), (.killWorker, .at(3))], totalSteps: 20, workers: 2, seed: 1)
        }
        #expect(try ChaosPlan([(.stopWorker, .at(9)), (.killWorker, .at(3)), (.addWorker, .at(5))], totalSteps: 20,
                              workers: 2, seed: 1).faults.count == 3)
        #expect(try ChaosPlan([(.killCoordinator, .at(4))], totalSteps: 20, workers: 1, seed: 1).faults.count == 1)
    }

    @Test func plan_randomSteps_sameSeedSameSteps_withinTheJob() throws {
        let requested: [(ChaosFault.Kind, ChaosPlan.Step)] = Array(repeating: (.killWorker, .random), count: 50)
        let a = try ChaosPlan(requested, totalSteps: 30, workers: 60, seed: 7), b = try ChaosPlan(requested, totalSteps: 30, workers: 60, seed: 7)
        #expect(a == b)
        #expect(a.faults.allSatisfy { (2...29).contains($0.step) })
        #expect(Set(a.faults.map(\.step)).count > 10, "drawn, not constant")
        #expect(try ChaosPlan(requested, totalSteps: 30, workers: 60, seed: 8) != a)
    }

    @Test func plan_stepOutsideTheJob_namesTheFaultAndTheRange() {
        #expect(throws: ChaosError.stepOutOfRange(fault: "kill-worker", step: 20, total: 20)) {
            try ChaosPlan([(.killWorker, .at(20))], totalSteps: 20, workers: 2, seed: 1)
        }
        let text = "\(ChaosError.stepOutOfRange(fault: "kill-worker", step: 20, total: 20))"
        #expect(text.contains("--kill-worker 20") && text.contains("1…19"))
    }

    @Test func comparison_sameHashes_match() {
        let hashes = [1: "a", 2: "b", 3: "c"]
        let comparison = HashComparison(undisturbed: Self.reply(hashes), faulted: Self.reply(hashes), totalSteps: 3)
        #expect(comparison.matches && comparison.verdict == "all 3 steps match")
    }

    @Test func comparison_firstDifferenceNamed_evenWhenLaterOnesAgreeAgain() {
        let comparison = HashComparison(undisturbed: Self.reply([1: "a", 2: "b", 3: "c", 4: "d"]),
                                        faulted: Self.reply([1: "a", 2: "x", 3: "y", 4: "d"]), totalSteps: 4)
        #expect(!comparison.matches && comparison.firstDifference == 2)
        #expect(comparison.verdict == "hashes differ: the first differing step is 2")
    }

    @Test func comparison_missingStep_orStepRedoneWithOtherBits_isNoMatch() {
        let missing = HashComparison(undisturbed: Self.reply([1: "a", 2: "b", 3: "c"]),
                                     faulted: Self.reply([1: "a", 3: "c"]), totalSteps: 3)
        #expect(!missing.matches && missing.missingFaulted == [2] && missing.verdict.contains("no hash for step 2"))
        let redone = HashComparison(undisturbed: Self.reply([1: "a", 2: "b"]),
                                    faulted: Self.reply([1: "a", 2: "b"], mismatches: [2]), totalSteps: 2)
        #expect(!redone.matches && redone.verdict.contains("step 2 was redone"))
    }
}

extension SystemTests {
    /// `fluxctl chaos` end to end: two local clusters of real `fluxd` processes each, real videos.
    @Suite struct ChaosTests {
        static func spec(reduction: String) throws -> URL {
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("flux-chaos-\(UUID().uuidString.prefix(8)).yaml")
            try SystemData.spec(name: "chaos-\(reduction)", steps: 40, min: 1, max: 3, reduction: reduction)
                .write(to: file, atomically: true, encoding: .utf8)
            return file
        }

        static func chaos(_ arguments: [String]) throws -> (status: Int32, json: [String: Any], stderr: String) {
            let result = try BuiltTool.run("fluxctl", ["chaos"] + arguments + ["--json"])
            let json = (try? JSONSerialization.jsonObject(with: Data(result.stdout.utf8))) as? [String: Any] ?? [:]
            return (result.status, json, result.stderr)
        }

        @Test func exact_workerKilled_workerAdded_coordinatorKilled_hashesMatchAtEveryStep() throws {
            let file = try Self.spec(reduction: "exact")
            defer { try? FileManager.default.removeItem(at: file) }
            let run = try Self.chaos([file.path, "--workers", "2", "--kill-worker", "6", "--add-worker", "14",
                                      "--kill-coordinator", "24"])
            #expect(run.status == 0, "fluxctl chaos: \(run.stderr)")
            #expect(run.json["match"] as? Bool == true, "\(run.json["verdict"] ?? run.stderr)")
            #expect(run.json["total_steps"] as? Int == 40)
            let faulted = run.json["faulted"] as? [String: Any] ?? [:]
            let hashes = faulted["hashes"] as? [String: String] ?? [:]
            let undisturbed = (run.json["undisturbed"] as? [String: Any])?["hashes"] as? [String: String] ?? [:]
            #expect(hashes.count == 40 && hashes == undisturbed)
            let faults = faulted["faults"] as? [[String: Any]] ?? []
            #expect(faults.map { $0["kind"] as? String } == ["kill-worker", "add-worker", "kill-coordinator"])
            // Every fault fired mid-job and was followed by a recovery the coordinator timed.
            for fault in faults {
                let step = fault["fired_at_step"] as? Int ?? 0
                #expect((1..<40).contains(step), "\(fault)")
                #expect((fault["recovery_seconds"] as? Double).map { $0 >= 0 && $0 < 60 } == true, "\(fault)")
            }
            #expect((faulted["recoveries"] as? Int ?? 0) >= 2)
            #expect(faulted["recovery_p50_seconds"] is Double && faulted["recovery_p95_seconds"] is Double)
        }

        @Test func fast_workerKilled_hashesDiffer_exitStatusOneNamesTheFirstStep() throws {
            let file = try Self.spec(reduction: "fast")
            defer { try? FileManager.default.removeItem(at: file) }
            let run = try Self.chaos([file.path, "--workers", "3", "--kill-worker", "9"])
            #expect(run.status == 1)
            #expect(run.json["match"] as? Bool == false)
            // Fast sums change with the world size: the first step redone by 2 workers differs, none before the last
            // commit before the fault (commits every 3 steps; the job may be a few steps past the one it reported).
            let first = run.json["first_differing_step"] as? Int ?? 0
            let fired = ((run.json["faulted"] as? [String: Any])?["faults"] as? [[String: Any]])?.first?["fired_at_step"] as? Int ?? 0
            #expect(first > fired - 3 && first <= fired + 8, "first differing \(first), fault at \(fired)")
            #expect((run.json["verdict"] as? String)?.contains("first differing step is \(first)") == true)
        }

        @Test func badFaultStep_refusedBeforeAnyClusterStarts() throws {
            let file = try Self.spec(reduction: "exact")
            defer { try? FileManager.default.removeItem(at: file) }
            let run = try BuiltTool.run("fluxctl", ["chaos", file.path, "--kill-worker", "40"])
            #expect(run.status != 0 && run.stderr.contains("--kill-worker 40") && run.stderr.contains("1…39"), "\(run.stderr)")
            let alone = try BuiltTool.run("fluxctl", ["chaos", file.path, "--workers", "1", "--kill-worker", "5"])
            #expect(alone.status != 0 && alone.stderr.contains("without workers"), "\(alone.stderr)")
        }
    }
}

/// `LocalCluster.isAlive`, which `up` and `chaos` use to decide whether to start a daemon again.
@Suite struct LocalClusterAliveTests {
    @Test func zombie_isNotAlive_soAKilledDaemonIsRestartedAtOnce() throws {
        var pid: pid_t = 0
        let argv: [UnsafeMutablePointer<CChar>?] = [strdup("/bin/true"), nil]
        defer { argv.forEach { free($0) } }
        #expect(posix_spawn(&pid, "/bin/true", nil, nil, argv, environ) == 0)
        defer { var status: Int32 = 0; waitpid(pid, &status, 0) }
        // Not reaped yet: it stays a zombie, which kill(pid, 0) still finds.
        let deadline = Date().addingTimeInterval(10)
        while LocalCluster.isAlive(pid), Date() < deadline { usleep(10_000) }
        #expect(kill(pid, 0) == 0, "the child is a zombie until waited for")
        #expect(!LocalCluster.isAlive(pid), "a zombie counts as dead")
        #expect(LocalCluster.isAlive(getpid()))
    }
}
