import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import FluxClient
import FluxCoordinator
import FluxProtocol
import FluxSweep
import FluxTestKit
import Testing

/// The reference sweep, computed once per process on one worker: a tiny motion model trained by the cluster, then
/// swept with `checkpoint: {job: …}`. The checkpoint folder is copied out so other clusters can sweep it by path.
enum SweepFixture {
    struct Reference {
        let checkpoint: URL
        let report: SweepReport
    }

    static let reference: Result<Reference, KitError> = {
        do {
            let cluster = try TestCluster(workers: 1)
            let training = try cluster.submit(SystemData.spec(name: "to-train", steps: 16, min: 1, max: 1))
            try cluster.waitForSuccess(training, within: 180)
            guard let newest = try cluster.client.checkpoints(training).last else { throw KitError("no checkpoint") }
            let copy = FileManager.default.temporaryDirectory.appendingPathComponent("flux-sys-ckpt-\(getpid())")
            try? FileManager.default.removeItem(at: copy)
            try FileManager.default.copyItem(at: URL(fileURLWithPath: newest.path), to: copy)
            let sweep = try cluster.submit(spec(checkpoint: "{job: \(training.rawValue)}"))
            try cluster.waitForSuccess(sweep, within: 300)
            return .success(Reference(checkpoint: copy, report: try report(cluster, sweep)))
        } catch let error as KitError {
            return .failure(error)
        } catch {
            return .failure(KitError("\(error)"))
        }
    }()

    /// 3 budgets × 9 samplings of the tiny motion model, 2×3 views, on the system data's validation videos.
    static func spec(checkpoint: String, name: String = "to") -> String {
        """
        kind: sweep
        name: \(name)
        checkpoint: \(checkpoint)
        data:
          eval: \(SystemData.folder.path)/val.csv
        budgets: [32, 64, 128]
        candidates:
          frames: [2, 4, 8]
          sizes: [32, 48, 64]
        selection: group
        views: 2x3
        standard: {frames: 8, size: 64}

        """
    }

    static func report(_ cluster: TestCluster, _ job: JobID) throws -> SweepReport {
        guard let data = try cluster.client.results(job).report else { throw KitError("\(job) has no report") }
        return try JSONDecoder().decode(SweepReport.self, from: data)
    }

    /// What must be identical between two runs of the same sweep: every cell's metrics and its scores' digest.
    static func numbers(_ report: SweepReport) -> [String] {
        report.grid.map { "\($0.cell.index) \($0.cell.budget) \($0.cell.candidate.label) \($0.eval) \($0.scoresDigest ?? "-")" }
    }

    /// The store's account of a finished sweep: one result per unit, and no unit dispatched after it was done.
    static func auditStore(_ cluster: TestCluster, _ job: JobID, units: Int) throws {
        let events = try cluster.client.events(job)
        var done = Set<String>()
        for event in events {
            let unit = event.text.split(separator: " ").first.map(String.init) ?? ""
            if event.kind == "cell_done" {
                #expect(!done.contains(unit), "\(unit) stored twice: \(event.text)")
                done.insert(unit)
            }
            if event.kind == "cell_dispatched" { #expect(!done.contains(unit), "\(unit) dispatched after it was done") }
        }
        #expect(done.count == units)
        _ = cluster.local.down(timeout: 10)
        let store = try Store(path: cluster.directory.appendingPathComponent("coordinator.sqlite").path)
        let rows = try store.cellResults(job: job)
        #expect(rows.count == units && Set(rows.map(\.unit)).count == units)
    }
}

extension SystemTests {
    /// Token Optimization sweeps on real `fluxd` processes (issue 11).
    @Suite struct SweepTests {
        @Test func sweepOnThreeWorkers_givesExactlyTheNumbersOfOneWorker() throws {
            let reference = try SweepFixture.reference.get()
            #expect(reference.report.grid.count == 27)
            #expect(reference.report.budgets.count == 3)
            let cluster = try TestCluster(workers: 3)
            let job = try cluster.submit(SweepFixture.spec(checkpoint: reference.checkpoint.path))
            try cluster.waitForSuccess(job, within: 300)
            let report = try SweepFixture.report(cluster, job)
            #expect(SweepFixture.numbers(report) == SweepFixture.numbers(reference.report))
            #expect(try cluster.status(job).done == 27)
            // The report and plot are in the job's artifacts.
            let artifacts = cluster.directory.appendingPathComponent("jobs/\(job.rawValue)/artifacts")
            for name in ["report.json", "report.md", "report.csv", "report.txt", "plot.svg"] {
                #expect(FileManager.default.fileExists(atPath: artifacts.appendingPathComponent(name).path), "\(name)")
            }
            // Every format of `fluxctl results` parses, and the plot is valid XML with both series.
            let dir = cluster.directory.path
            let csv = try BuiltTool.run("fluxctl", ["results", job.rawValue, "--format", "csv", "--state-dir", dir])
            let rows = csv.stdout.split(separator: "\n")
            #expect(csv.status == 0 && rows.count == 28 && rows[0].hasPrefix("index,budget,frames,size"), "\(csv.stdout)")
            let json = try BuiltTool.run("fluxctl", ["results", job.rawValue, "--format", "json", "--state-dir", dir])
            #expect(try JSONDecoder().decode(SweepReport.self, from: Data(json.stdout.utf8)).grid.count == 27)
            let markdown = try BuiltTool.run("fluxctl", ["results", job.rawValue, "--format", "markdown", "--state-dir", dir])
            #expect(markdown.stdout.contains("| 32 |") && markdown.stdout.hasPrefix("## "), "\(markdown.stdout)")
            let svg = cluster.directory.appendingPathComponent("plot.svg")
            let table = try BuiltTool.run("fluxctl", ["results", job.rawValue, "--plot", svg.path, "--state-dir", dir])
            #expect(table.status == 0 && table.stdout.contains("Per budget"), "\(table.stdout)")
            let parser = XMLParser(data: try Data(contentsOf: svg))
            #expect(parser.parse(), "plot.svg is not well-formed XML: \(String(describing: parser.parserError))")
            let plot = try String(contentsOf: svg, encoding: .utf8)
            #expect(plot.contains("standard") && plot.contains("TO"))

            // One cell on 3 workers is split in 3 dataset shards: the merged scores are the same bits.
            let single = SweepFixture.spec(checkpoint: reference.checkpoint.path, name: "one-cell")
                .replacingOccurrences(of: "budgets: [32, 64, 128]", with: "budgets: [128]")
                .replacingOccurrences(of: "frames: [2, 4, 8]", with: "frames: [8]")
                .replacingOccurrences(of: "sizes: [32, 48, 64]", with: "sizes: [64]")
            let split = try cluster.submit(single)
            try cluster.waitForSuccess(split, within: 120)
            #expect(try cluster.client.events(split).contains { $0.kind == "started" && $0.text.contains("3 shards") })
            let shardReport = try SweepFixture.report(cluster, split)
            let whole = reference.report.grid.first { $0.cell.budget == 128 && $0.cell.candidate.label == "8×64" }
            #expect(shardReport.grid.count == 1 && shardReport.grid.first?.scoresDigest == whole?.scoresDigest)
            #expect(shardReport.grid.first?.eval == whole?.eval)
            try SweepFixture.auditStore(cluster, job, units: 27)
        }

        @Test func workerKilledMidSweep_sweepCompletes_sameNumbers_noCellStoredTwice() throws {
            let reference = try SweepFixture.reference.get()
            let cluster = try TestCluster(workers: 3)
            let job = try cluster.submit(SweepFixture.spec(checkpoint: reference.checkpoint.path))
            try cluster.eventually("3 cells done", within: 120) { try cluster.status(job).done >= 3 }
            let busy = try cluster.client.workers().first { $0.task?.job == job }
            let victim = try #require(busy)
            #expect(kill(Int32(victim.pid ?? 0), SIGKILL) == 0)
            try cluster.waitForSuccess(job, within: 300)
            let events = try cluster.client.events(job)
            #expect(events.contains { $0.kind == "cell_requeued" && $0.worker == victim.workerID }, "\(events.map(\.text))")
            #expect(SweepFixture.numbers(try SweepFixture.report(cluster, job)) == SweepFixture.numbers(reference.report))
            try SweepFixture.auditStore(cluster, job, units: 27)
        }

        @Test func coordinatorKilledMidSweep_restarted_sweepCompletes_sameNumbers() throws {
            let reference = try SweepFixture.reference.get()
            let cluster = try TestCluster(workers: 3)
            let job = try cluster.submit(SweepFixture.spec(checkpoint: reference.checkpoint.path))
            try cluster.eventually("3 cells done", within: 120) { try cluster.status(job).done >= 3 }
            let coordinator = try #require(cluster.local.coordinatorPID)
            #expect(kill(coordinator, SIGKILL) == 0)
            try cluster.eventually("the coordinator process gone", within: 10) { !LocalCluster.isAlive(coordinator) }
            let up = try BuiltTool.run("fluxctl", ["up", "--workers", "3", "--state-dir", cluster.directory.path])
            #expect(up.status == 0, "fluxctl up after the kill: \(up.stderr)")
            try cluster.waitForSuccess(job, within: 300)
            #expect(SweepFixture.numbers(try SweepFixture.report(cluster, job)) == SweepFixture.numbers(reference.report))
            try SweepFixture.auditStore(cluster, job, units: 27)
        }

        @Test func badSweeps_unknownCheckpointAndImpossibleBudget_refusedWithReasons() throws {
            let cluster = try TestCluster(workers: 1)
            let missing = try BuiltTool.run("fluxctl", ["sweep", try write(cluster, SweepFixture.spec(checkpoint: "/nonexistent/ckpt")),
                                                        "--state-dir", cluster.directory.path])
            #expect(missing.status != 0)
            #expect(missing.stderr.contains("unknown checkpoint") && missing.stderr.contains("/nonexistent/ckpt"), "\(missing.stderr)")
            let noJob = try BuiltTool.run("fluxctl", ["sweep", try write(cluster, SweepFixture.spec(checkpoint: "{job: j-000099}")),
                                                      "--state-dir", cluster.directory.path])
            #expect(noJob.status != 0 && noJob.stderr.contains("j-000099"), "\(noJob.stderr)")
            let reference = try SweepFixture.reference.get()
            let none = SweepFixture.spec(checkpoint: reference.checkpoint.path).replacingOccurrences(of: "budgets: [32, 64, 128]", with: "budgets: [4]")
                .replacingOccurrences(of: "selection: group", with: "selection: none")
            let impossible = try BuiltTool.run("fluxctl", ["sweep", try write(cluster, none), "--state-dir", cluster.directory.path])
            #expect(impossible.status != 0 && impossible.stderr.contains("budgets"), "\(impossible.stderr)")
        }

        @Test func unreadableVideos_areCountedAndNamedInTheReport() throws {
            let reference = try SweepFixture.reference.get()
            let cluster = try TestCluster(workers: 2)
            // A manifest with one garbage file among real videos.
            let folder = cluster.directory.appendingPathComponent("data")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            try Data("not a video".utf8).write(to: folder.appendingPathComponent("broken.mp4"))
            let lines = try String(contentsOf: SystemData.folder.appendingPathComponent("val.csv"), encoding: .utf8)
                .split(separator: "\n").dropFirst().prefix(4).map { line -> String in
                    let parts = line.split(separator: ",")
                    return "\(SystemData.folder.path)/\(parts[0]),\(parts[1])"
                }
            try (["path,label"] + lines + ["\(folder.path)/broken.mp4,1"]).joined(separator: "\n").write(
                to: folder.appendingPathComponent("eval.csv"), atomically: true, encoding: .utf8)
            let spec = SweepFixture.spec(checkpoint: reference.checkpoint.path, name: "broken")
                .replacingOccurrences(of: "\(SystemData.folder.path)/val.csv", with: folder.appendingPathComponent("eval.csv").path)
            let job = try cluster.submit(spec)
            try cluster.waitForSuccess(job, within: 300)
            let report = try SweepFixture.report(cluster, job)
            #expect(report.unreadable.count == 1 && report.unreadable.first?.path.contains("broken.mp4") == true)
            #expect(report.grid.allSatisfy { $0.eval.videos == 4 && $0.eval.unreadable == 1 })
            let table = try BuiltTool.run("fluxctl", ["results", job.rawValue, "--state-dir", cluster.directory.path])
            #expect(table.status == 0 && table.stdout.contains("broken.mp4"), "\(table.stdout)\(table.stderr)")
        }

        func write(_ cluster: TestCluster, _ yaml: String) throws -> String {
            let file = cluster.directory.appendingPathComponent("sweep-\(UUID().uuidString.prefix(6)).yaml")
            try yaml.write(to: file, atomically: true, encoding: .utf8)
            return file.path
        }
    }
}
