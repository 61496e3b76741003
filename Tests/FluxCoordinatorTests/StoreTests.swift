import Foundation
import FluxCoordinator
import FluxProtocol
import Testing

/// The coordinator's SQLite store, for real (GRDB): what one turn commits is there after reopening.
@Suite struct StoreTests {
    @Test func commit_thenReopen_jobsEventsWorkersAndCheckpointsSurvive() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("flux-store-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("coordinator.sqlite").path

        var machine = CoordinatorMachine()
        _ = machine.register(Register(workerID: "w0", dataEndpoint: "ipc:///tmp/w0", cores: 1, version: "t", pid: 42,
                                      host: "node"), now: 0)
        _ = machine.submit("j-000001", requirements: JobRequirements(
            name: "job", minWorkers: 1, maxWorkers: 1, ringSecurity: .none, specYAML: "name: job\n"), now: 0)
        do {
            let store = try Store(path: path)
            try store.commit(jobs: Array(machine.jobs.values),
                             events: [("j-000001", "submitted", nil, "submitted"), ("j-000001", "started", "w0", "started")],
                             workers: Array(machine.workers.values))
            try store.addCheckpoint(job: "j-000001", step: 20, path: "/x/step-000000020")
            try store.appendLog(job: "j-000001", level: "info", text: "hello")
        }
        let reopened = try Store(path: path)
        let jobs = try reopened.jobs()
        #expect(jobs.map(\.id) == ["j-000001"] && jobs.first?.state == .running && jobs.first?.members == ["w0"])
        #expect(try reopened.events(job: "j-000001").map(\.kind) == ["submitted", "started"])
        #expect(try reopened.checkpoints(job: "j-000001").map(\.step) == [20])
        #expect(try reopened.logs(job: "j-000001", after: 0, limit: 10).map(\.text) == ["hello"])
        let workers = try reopened.workerRows()
        #expect(workers.count == 1 && workers[0].id == "w0" && workers[0].state == "alive" && workers[0].pid == 42)
    }
}

extension StoreTests {
    @Test func stepHashes_firstPerStepKept_anotherHashIsAMismatch_repeatsAreNot() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("flux-store-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let store = try Store(path: folder.appendingPathComponent("coordinator.sqlite").path)
        let a = String(repeating: "a", count: 64), b = String(repeating: "b", count: 64)
        let first = try store.addStepHashes(job: "j1", worker: "w0", hashes: [
            StepHash(step: 1, sha256: a, timeMS: 10), StepHash(step: 2, sha256: a, timeMS: 20)])
        #expect(first.isEmpty)
        // The same hashes again (a replay after a coordinator restart): nothing new.
        #expect(try store.addStepHashes(job: "j1", worker: "w0", hashes: [StepHash(step: 2, sha256: a, timeMS: 30)]).isEmpty)
        let again = try store.addStepHashes(job: "j1", worker: "w1", hashes: [StepHash(step: 2, sha256: b, timeMS: 40)])
        #expect(again.count == 1 && again.first?.step == 2 && again.first?.first == a && again.first?.reported == b)
        let stored = try store.stepHashes(job: "j1")
        #expect(stored.hashes.map(\.step) == [1, 2] && stored.hashes.map(\.sha256) == [a, a])
        #expect(stored.mismatches == [2])
        #expect(try store.stepHashes(job: "j2").hashes.isEmpty)
    }
}
