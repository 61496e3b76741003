import Foundation
import FluxClient
import FluxProtocol
import FluxTestKit
import FluxViT
import Testing

/// Every system test, one at a time: each starts its own daemons, and two clusters at once on 2 cores would make
/// heartbeats and timings tell about the machine instead of the code.
@Suite(.serialized) enum SystemTests {}

/// A local cluster for one test: `fluxctl up` in a fresh state dir, real `fluxd` processes on loopback, stopped by
/// pid (only the ones it started) when the test ends. Every wait has a deadline and names what did not happen.
final class TestCluster {
    let directory: URL
    let client: FluxClient

    init(workers: Int) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("flux-sys-\(UUID().uuidString.prefix(8))")
        let up = try BuiltTool.run("fluxctl", ["up", "--workers", "\(workers)", "--state-dir", directory.path,
                                               "--threads-per-worker", "1", "--timeout", "60"])
        guard up.status == 0 else { throw KitError("fluxctl up failed (\(up.status)): \(up.stderr)\(up.stdout)") }
        client = try FluxClient.local(stateDirectory: directory)
    }

    var local: LocalCluster { LocalCluster(directory: directory, fluxd: BuiltTool.url("fluxd")) }

    /// Submits a spec and returns the job id.
    func submit(_ yaml: String) throws -> JobID {
        let file = directory.appendingPathComponent("job-\(UUID().uuidString.prefix(6)).yaml")
        try yaml.write(to: file, atomically: true, encoding: .utf8)
        let result = try BuiltTool.run("fluxctl", ["submit", file.path, "--json", "--state-dir", directory.path])
        guard result.status == 0, let data = result.stdout.data(using: .utf8),
              let object = try JSONSerialization.jsonObject(with: data) as? [String: String], let job = object["job"] else {
            throw KitError("fluxctl submit failed (\(result.status)): \(result.stderr)")
        }
        return JobID(rawValue: job)
    }

    /// Waits until `condition` holds, polling; fails with `what` and the daemons' logs after `seconds`.
    func eventually(_ what: String, within seconds: Double, _ condition: () throws -> Bool) throws {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            // A KitError is a verdict (the job failed): say it now rather than at the deadline.
            do { if try condition() { return } } catch let error as KitError { throw error } catch {}
            usleep(100_000)
        }
        throw KitError("\(what) did not happen within \(seconds) s\n\(logs())")
    }

    func status(_ job: JobID) throws -> JobStatus {
        guard let status = try client.status(job).first else { throw KitError("no status for \(job)") }
        return status
    }

    /// Waits for the job to succeed.
    func waitForSuccess(_ job: JobID, within seconds: Double) throws {
        try eventually("job \(job) succeeding", within: seconds) {
            let status = try self.status(job)
            if status.state == .failed || status.state == .cancelled {
                throw KitError("job \(job) ended \(status.state): \(status.message ?? "")\n\(logs())")
            }
            return status.state == .succeeded
        }
    }

    /// The final parameters of a job (its newest checkpoint's `model.safetensors`).
    func finalParameters(_ job: JobID) throws -> [String: [Float]] {
        guard let newest = try client.checkpoints(job).last else { throw KitError("job \(job) stored no checkpoint") }
        let file = try SafeTensors.read(path: newest.path + "/model.safetensors")
        var result: [String: [Float]] = [:]
        for (name, value) in file.tensors { if case let .float(t) = value { result[name] = t.scalars } }
        return result
    }

    /// The last rank of the job's first generation (not rank 0, which reports progress), as its `generation` event
    /// lists the members in rank order.
    func lastRankOfFirstGeneration(_ job: JobID) throws -> WorkerInfo {
        let members = try client.events(job).first { $0.kind == "generation" }?.text ?? ""
        let ranked = try client.workers().compactMap { worker in
            members.range(of: worker.workerID.rawValue).map { (worker, $0.lowerBound) }
        }
        guard let last = ranked.max(by: { $0.1 < $1.1 })?.0 else { throw KitError("no member of \(job) in '\(members)'") }
        return last
    }

    func logs() -> String {
        let folder = directory.appendingPathComponent("logs")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
        return names.sorted().map { name in
            let text = (try? String(contentsOf: folder.appendingPathComponent(name), encoding: .utf8)) ?? ""
            return "--- \(name) (last lines)\n" + text.split(separator: "\n").suffix(25).joined(separator: "\n")
        }.joined(separator: "\n")
    }

    deinit {
        _ = local.down(timeout: 10)
        try? FileManager.default.removeItem(at: directory)
    }
}

struct KitError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Real encoded videos for the system tests, made once per process by `fluxctl dataset synth`.
enum SystemData {
    static let folder: URL = {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("flux-sys-data-\(getpid())")
        let result = try? BuiltTool.run("fluxctl", ["dataset", "synth", "--out", folder.path, "--classes", "4",
                                                    "--videos-per-class", "12", "--seed", "1"])
        precondition(result?.status == 0, "fluxctl dataset synth failed: \(result?.stderr ?? "not run")")
        return folder
    }()

    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// The highest step any worker's own log reports committing (`fluxd` logs each commit at debug; progress lines
    /// at info carry "step N"): read from `DIR/logs/w*.log`, which the workers write without the coordinator.
    static func lastLoggedStep(_ directory: URL) throws -> Int {
        let folder = directory.appendingPathComponent("logs")
        var best = 0
        for name in try FileManager.default.contentsOfDirectory(atPath: folder.path) where name.hasPrefix("w") {
            let text = try String(contentsOf: folder.appendingPathComponent(name), encoding: .utf8)
            for line in text.split(separator: "\n") {
                guard let range = line.range(of: "committed step ") else { continue }
                best = max(best, Int(line[range.upperBound...].prefix { $0.isNumber }) ?? 0)
            }
        }
        return best
    }

    /// The index N of the `workers/wN` folder whose worker has `pid`.
    static func folderIndex(of pid: Int32, in cluster: TestCluster) -> Int {
        for folder in cluster.local.workerDirectories {
            let text = (try? String(contentsOf: folder.appendingPathComponent("worker.pid"), encoding: .utf8)) ?? ""
            if Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)) == pid { return Int(folder.lastPathComponent.dropFirst()) ?? -1 }
        }
        return -1
    }

    /// A job on the tiny motion model and these videos.
    static func spec(name: String, steps: Int, min: Int, max: Int, commitEvery: Int = 3,
                     reduction: String = "fast", security: String = "curve") -> String {
        """
        name: \(name)
        model: \(repository.path)/configs/models/tiny-motion.yaml
        init: {seed: 7}
        data:
          train: \(folder.path)/train.csv
        train:
          global_batch: 8
          steps: \(steps)
          seed: 7
          lr: 3e-3
          warmup: 2
          layer_decay: 1
          flip: false
          crop_scale: 1
        workers: {min: \(min), max: \(max)}
        commit_every: \(commitEvery)
        checkpoint_every: 0
        ring_security: \(security)
        reduction: \(reduction)

        """
    }
}

/// ‖a − b‖ / ‖a‖ over all parameters: AdamW turns fp32 reduction-order noise in near-zero gradients into
/// lr-sized steps for those few elements, so the element-wise maximum says little; a sharding or rollback bug moves
/// every parameter and shows here.
func relativeDistance(_ a: [String: [Float]], _ b: [String: [Float]]) -> Double {
    var difference = 0.0, norm = 0.0
    for (name, x) in a {
        guard let y = b[name], y.count == x.count else { return .infinity }
        for i in x.indices {
            difference += (Double(x[i]) - Double(y[i])) * (Double(x[i]) - Double(y[i]))
            norm += Double(x[i]) * Double(x[i])
        }
    }
    return (difference / max(norm, 1e-30)).squareRoot()
}

/// The largest |a − b| over every tensor, scaled as style §F.2 does.
func maxScaledDifference(_ a: [String: [Float]], _ b: [String: [Float]]) -> Double {
    var worst = 0.0
    for (name, x) in a {
        guard let y = b[name], y.count == x.count else { return .infinity }
        let scale = max(1, x.map { abs(Double($0)) }.max() ?? 0)
        for i in x.indices { worst = max(worst, abs(Double(x[i]) - Double(y[i])) / scale) }
    }
    return worst
}
