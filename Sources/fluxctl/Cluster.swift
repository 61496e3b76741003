import ArgumentParser
import Foundation
import FluxClient
import FluxJobs
import FluxProtocol
import FluxSweep
import FluxTraining
import FluxWire

/// Where a client command finds its cluster: `--state-dir` (default `.flux/` or `FLUX_STATE_DIR`), or a remote
/// coordinator with `--coordinator ENDPOINT --key FILE --coordinator-key FILE`.
struct ClusterOptions: ParsableArguments {
    @Option(help: "The cluster's state dir (default: FLUX_STATE_DIR or .flux).") var stateDir: String?
    @Option(help: "A remote coordinator's client endpoint (instead of --state-dir).") var coordinator: String?
    @Option(help: "This client's key file (with --coordinator).") var key: String?
    @Option(help: "The coordinator's public key file (with --coordinator).") var coordinatorKey: String?
    @Flag(help: "Output JSON for scripts.") var json = false

    var directory: URL {
        URL(fileURLWithPath: stateDir ?? ProcessInfo.processInfo.environment["FLUX_STATE_DIR"] ?? ".flux")
    }

    func client() throws -> FluxClient {
        if let coordinator {
            guard let key, let coordinatorKey else {
                return try FluxClient(endpoint: coordinator, keys: nil, serverKey: nil)
            }
            return try FluxClient(endpoint: coordinator, keys: try CurveKeyPair.load(keyFile: key),
                                  serverKey: try CurveKeyPair.loadPublicKey(coordinatorKey))
        }
        return try FluxClient.local(stateDirectory: directory)
    }
}

/// Prints JSON for `--json`.
func printJSON<T: Encodable>(_ value: T) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

/// Runs a client command, turning its typed errors into one `error:` line and exit status 1.
func reportingErrors(_ body: () throws -> Void) throws {
    do { try body() } catch let error as ExitCode { throw error } catch {
        FileHandle.standardError.write(Data("error: \(error)\n".utf8))
        throw ExitCode.failure
    }
}

/// The `fluxd` next to this `fluxctl`.
func fluxdExecutable() -> URL {
    let me = URL(fileURLWithPath: (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0])
    return me.deletingLastPathComponent().appendingPathComponent("fluxd")
}

struct Up: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Start a local cluster: a coordinator and N workers on this machine (keys generated, loopback).",
        discussion: "Idempotent: on a state dir whose daemons died it starts what is missing. --add K adds workers to a running cluster (they join running jobs at their next commit).")

    @Option(help: "Workers to run.") var workers: Int = 2
    @Option(help: "Workers to add to those running.") var add: Int = 0
    @Option(help: "Compute threads per worker.") var threadsPerWorker: Int = 1
    @Option(help: "State dir (default: FLUX_STATE_DIR or .flux).") var stateDir: String?
    @Flag(help: "Plain TCP on loopback, no keys.") var insecure = false
    @Option(help: "Seconds to wait for the workers to register.") var timeout: Double = 60

    func run() throws {
        try reportingErrors {
            let directory = URL(fileURLWithPath: stateDir ?? ProcessInfo.processInfo.environment["FLUX_STATE_DIR"] ?? ".flux")
            let cluster = LocalCluster(directory: directory, fluxd: fluxdExecutable())
            let expected = try cluster.up(workers: workers, add: add, threadsPerWorker: threadsPerWorker, insecure: insecure)
            let client = try FluxClient.local(stateDirectory: directory, timeout: .seconds(2))
            let deadline = Date().addingTimeInterval(timeout)
            var alive = 0
            while Date() < deadline {
                alive = ((try? client.workers()) ?? []).filter { $0.state != .dead }.count
                if alive >= expected { break }
                usleep(100_000)
            }
            guard alive >= expected else {
                throw ValidationError("only \(alive) of \(expected) workers registered within \(Int(timeout)) s; see \(directory.path)/logs/")
            }
            print("cluster up in \(directory.path): coordinator pid \(cluster.coordinatorPID ?? 0), \(alive) workers")
        }
    }
}

struct Down: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Stop the local cluster's daemons (SIGTERM, then SIGKILL after a timeout).")
    @Option(help: "State dir (default: FLUX_STATE_DIR or .flux).") var stateDir: String?

    func run() throws {
        let directory = URL(fileURLWithPath: stateDir ?? ProcessInfo.processInfo.environment["FLUX_STATE_DIR"] ?? ".flux")
        let stopped = LocalCluster(directory: directory, fluxd: fluxdExecutable()).down()
        print("stopped \(stopped.count) daemon(s)")
    }
}

struct SubmitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "submit", abstract: "Submit a job spec (YAML).")
    @Argument(help: "The job spec file.") var file: String
    @Flag(help: "Wait for the job to end, with a live progress line.") var wait = false
    @OptionGroup var cluster: ClusterOptions

    func run() throws {
        try reportingErrors {
            // A sweep spec (`kind: sweep`) goes the same way as a training job spec.
            let text = (try? String(contentsOfFile: file, encoding: .utf8)) ?? ""
            let (name, yaml): (String, String)
            if SweepSpec.isSweep(yaml: text) {
                let spec = try SweepSpec.load(path: file)
                (name, yaml) = (spec.name, spec.canonicalYAML)
            } else {
                let spec = try JobSpec.load(path: file)
                (name, yaml) = (spec.name, spec.canonicalYAML)
            }
            let client = try cluster.client()
            let job = try client.submit(specYAML: yaml)
            if cluster.json { try printJSON(["job": job.rawValue]) } else { print("submitted \(job) (\(name))") }
            fflush(nil)  // the job id before the progress lines on stderr
            if wait { try follow(client: client, job: job, quiet: cluster.json) }
        }
    }
}

struct SweepCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sweep", abstract: "Submit a Token Optimization sweep (YAML with `kind: sweep`).",
        discussion: "The same as `fluxctl submit` for a sweep spec; --wait follows it and prints the results table.")
    @Argument(help: "The sweep spec file (configs/sweeps/).") var file: String
    @Flag(help: "Wait for the sweep to end, then print its results.") var wait = false
    @Option(help: ArgumentHelp("Sweep this checkpoint instead of the spec's: a job id (its newest stored checkpoint) or a checkpoint folder.", valueName: "job-or-folder"))
    var checkpoint: String?
    @OptionGroup var cluster: ClusterOptions

    func run() throws {
        try reportingErrors {
            var spec = try SweepSpec.load(path: file)
            if let checkpoint {
                let isFolder = FileManager.default.fileExists(atPath: checkpoint)
                spec.checkpoint = isFolder || !checkpoint.hasPrefix("j-")
                    ? .path(URL(fileURLWithPath: checkpoint).standardizedFileURL.path) : .job(checkpoint)
            }
            let client = try cluster.client()
            let job = try client.submit(specYAML: spec.canonicalYAML)
            if cluster.json { try printJSON(["job": job.rawValue]) } else { print("submitted \(job) (sweep \(spec.name))") }
            fflush(nil)
            guard wait else { return }
            try follow(client: client, job: job, quiet: cluster.json)
            if !cluster.json {
                print(try JSONDecoder().decode(SweepReport.self, from: client.results(job).report ?? Data()).render(.table))
                print("artifacts (report, plot.svg): \(cluster.directory.path)/jobs/\(job)/artifacts/")
            }
        }
    }
}

/// Polls a job's status until it ends, drawing a progress line (a TTY rewrites it in place); exit 1 if it failed.
func follow(client: FluxClient, job: JobID, quiet: Bool) throws {
    let interactive = isatty(STDERR_FILENO) != 0
    var lastPrinted = Date.distantPast
    var lastEvent: UInt64 = 0
    var since: (step: Int, time: Date)?
    while true {
        guard let status = try client.status(job).first else { return }
        if since == nil, status.state == .running, status.total > 0 { since = (status.done, Date()) }
        for event in try client.events(job) where event.id > lastEvent {
            lastEvent = event.id
            if !quiet, ["started", "generation", "worker_lost", "rollback", "joined", "left", "waiting", "failed",
                        "not_reproducible", "recovered", "hash_mismatch"].contains(event.kind) {
                if interactive { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
                FileHandle.standardError.write(Data("  \(event.text)\n".utf8))
            }
        }
        if [.succeeded, .failed, .cancelled].contains(status.state) {
            if !quiet {
                if interactive { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
                print("\(job) \(status.state)\(status.message.map { ": \($0)" } ?? "")")
            }
            if status.state != .succeeded { throw ExitCode.failure }
            return
        }
        if !quiet, interactive || Date().timeIntervalSince(lastPrinted) >= 5 {
            let line = statusLine(status, since: since)
            FileHandle.standardError.write(Data((interactive ? "\r\u{1B}[K\(line)" : "\(line)\n").utf8))
            lastPrinted = Date()
        }
        usleep(250_000)
    }
}

/// `step 40/60 ████····· loss 1.23 · 31.0 clips/s · ETA 12s · 2 workers · gen 3`; the ETA is paced by the steps
/// seen since `since` (the first status this client saw).
func statusLine(_ status: JobStatus, since: (step: Int, time: Date)? = nil) -> String {
    guard status.state == .running, status.total > 0 else {
        return "\(status.job) \(status.state)\(status.message.map { ": \($0)" } ?? "")"
    }
    if status.kind == .sweep { return sweepLine(status) }
    let bar = ProgressLine(total: status.total, firstStep: since?.step ?? 0)
    let elapsed = since.map { Date().timeIntervalSince($0.time) } ?? 0
    let text = bar.render(step: status.done, loss: status.losses?.last ?? .nan, clipsPerSecond: status.rate ?? 0,
                          elapsed: elapsed)
    return text + " · \(status.workers) worker\(status.workers == 1 ? "" : "s") · gen \(status.generation ?? 0)"
        + (status.notReproducible == nil ? "" : " · not bit-reproducible")
}

/// `cells 12/40 █████······ 3 running · 25 pending · ETA 1m05s · 2 workers`.
func sweepLine(_ status: JobStatus) -> String {
    let width = 24
    let filled = status.total == 0 ? 0 : width * status.done / status.total
    let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
    let eta = status.etaSeconds.map { " · ETA \(durationText($0))" } ?? ""
    return "cells \(status.done)/\(status.total) \(bar) \(status.running ?? 0) running · \(status.pending ?? 0) pending\(eta)"
        + " · \(status.workers) worker\(status.workers == 1 ? "" : "s")"
}

func durationText(_ seconds: Double) -> String {
    let s = Int(seconds.rounded())
    return s >= 3600 ? "\(s / 3600)h\(String(format: "%02d", s % 3600 / 60))m" : s >= 60 ? "\(s / 60)m\(String(format: "%02d", s % 60))s" : "\(s)s"
}

struct Results: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "A sweep's results: per budget the standard sampling and the TO best, then the whole grid.",
        discussion: "Works while the sweep runs (finished cells only). The report and plot of a finished sweep are also in the job's artifacts folder.")
    @Argument(help: "The sweep's job id.") var job: String
    @Option(help: "table, csv, json or markdown.") var format: ReportFormat = .table
    @Option(help: "Also write the accuracy-against-GMACs plot to this SVG file.") var plot: String?
    @OptionGroup var cluster: ClusterOptions

    func run() throws {
        try reportingErrors {
            let reply = try cluster.client().results(JobID(rawValue: job))
            guard let data = reply.report else {
                throw ValidationError("\(job) is not a sweep: it has no report (`fluxctl status \(job)`)")
            }
            let report = try JSONDecoder().decode(SweepReport.self, from: data)
            print(report.render(cluster.json ? .json : format))
            if let plot {
                try Data(SweepPlot.svg(report).utf8).write(to: URL(fileURLWithPath: plot))
                FileHandle.standardError.write(Data("plot written to \(plot)\n".utf8))
            }
        }
    }
}

extension ReportFormat: ExpressibleByArgument {}

struct Jobs: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the jobs, newest first.")
    @OptionGroup var cluster: ClusterOptions

    func run() throws {
        try reportingErrors {
            let jobs = try cluster.client().status()
            if cluster.json { return try printJSON(jobs) }
            print(pad("JOB", 10) + pad("NAME", 18) + pad("STATE", 11) + pad("STEP", 12) + pad("WORKERS", 8) + "GEN")
            for job in jobs {
                print(pad(job.job.rawValue, 10) + pad(job.name, 18) + pad(job.state.rawValue, 11)
                      + pad("\(job.done)/\(job.total)", 12) + pad("\(job.workers)", 8) + "\(job.generation ?? 0)")
            }
        }
    }
}

func pad(_ text: String, _ width: Int) -> String {
    text.count >= width ? String(text.prefix(width - 1)) + " " : text + String(repeating: " ", count: width - text.count)
}

/// `status --json`: the fields scripts rely on.
struct StatusJSON: Encodable {
    var job: String
    var name: String
    var state: String
    var step: Int
    var total_steps: Int
    var generation: UInt64
    var world_size: Int
    var losses: [Double]
    var committed_step: Int?
    var message: String?
    var kind: String
    /// Sweeps: `step`/`total_steps` count cells; these count cells being computed and waiting.
    var running: Int?
    var pending: Int?
    var eta_seconds: Double?
    /// `reduction: exact` jobs: why they are no longer bit-reproducible, when they are not.
    var not_reproducible: String?
    /// Training: recoveries so far and their durations' median and 95th percentile.
    var recoveries: Int?
    var recovery_p50_seconds: Double?
    var recovery_p95_seconds: Double?
}

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "A job's state; --follow draws a live progress line until it ends.")
    @Argument(help: "The job id.") var job: String
    @Flag(help: "Follow until the job ends.") var follow = false
    @OptionGroup var cluster: ClusterOptions

    func run() throws {
        try reportingErrors {
            let client = try cluster.client()
            if follow { return try fluxctl.follow(client: client, job: JobID(rawValue: job), quiet: cluster.json) }
            guard let status = try client.status(JobID(rawValue: job)).first else { return }
            if cluster.json {
                return try printJSON(StatusJSON(
                    job: status.job.rawValue, name: status.name, state: status.state.rawValue, step: status.done,
                    total_steps: status.total, generation: status.generation ?? 0, world_size: status.workers,
                    losses: status.losses ?? [], committed_step: status.committedStep, message: status.message,
                    kind: status.kind.rawValue, running: status.running, pending: status.pending,
                    eta_seconds: status.etaSeconds, not_reproducible: status.notReproducible,
                    recoveries: status.recoveries, recovery_p50_seconds: status.recoveryP50,
                    recovery_p95_seconds: status.recoveryP95))
            }
            print(statusLine(status))
            if let count = status.recoveries, let p50 = status.recoveryP50, let p95 = status.recoveryP95 {
                print(String(format: "recoveries: %d, p50 %.2f s, p95 %.2f s (fault seen → first step of the new ring)",
                             count, p50, p95))
            }
            if let why = status.notReproducible { print("not bit-reproducible: \(why)") }
        }
    }
}

struct Logs: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "A job's log lines (from every worker).")
    @Argument(help: "The job id.") var job: String
    @Flag(help: "Keep printing new lines until the job ends.") var follow = false
    @OptionGroup var cluster: ClusterOptions

    func run() throws {
        try reportingErrors {
            let client = try cluster.client()
            var after: UInt64 = 0
            while true {
                let reply = try client.logs(JobID(rawValue: job), after: after)
                for line in reply.lines {
                    print("\(timeText(line.timeMS)) \(line.level) \(line.text)")
                }
                after = reply.next
                guard follow else { return }
                if reply.lines.isEmpty {
                    if let status = try client.status(JobID(rawValue: job)).first,
                       [.succeeded, .failed, .cancelled].contains(status.state) { return }
                    usleep(300_000)
                }
            }
        }
    }
}

func timeText(_ ms: Int64) -> String {
    let formatter = DateFormatter()
    formatter.dateFormat = "HH:mm:ss.SSS"
    return formatter.string(from: Date(timeIntervalSince1970: Double(ms) / 1000))
}

struct Events: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "A job's events: generations, rollbacks, lost and joined workers, recoveries.")
    @Argument(help: "The job id.") var job: String
    @Flag(help: "Also list the parameters' SHA-256 after every step (jobs with step_hashes), as `step_hash` events.")
    var hashes = false
    @OptionGroup var cluster: ClusterOptions

    func run() throws {
        try reportingErrors {
            let client = try cluster.client()
            var events = try client.events(JobID(rawValue: job))
            if hashes {
                // Step hashes are kept beside the events (one row a step); listed among them by time.
                let reply = try client.hashes(JobID(rawValue: job))
                let steps = reply.hashes.map {
                    JobEvent(id: 0, timeMS: $0.timeMS, kind: "step_hash",
                             text: "step \($0.step): sha256 \($0.sha256)\(reply.mismatches.contains($0.step) ? " (also reported with other bits)" : "")")
                }
                events = (events + steps).enumerated().sorted { ($0.element.timeMS, $0.offset) < ($1.element.timeMS, $1.offset) }
                    .map(\.element)
            }
            if cluster.json { return try printJSON(events) }
            for event in events { print("\(timeText(event.timeMS)) \(pad(event.kind, 12))\(event.text)") }
        }
    }
}

struct Cancel: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Cancel a job.")
    @Argument(help: "The job id.") var job: String
    @OptionGroup var cluster: ClusterOptions

    func run() throws {
        try reportingErrors {
            try cluster.client().cancel(JobID(rawValue: job))
            print("cancelled \(job)")
        }
    }
}

/// `workers --json`: one entry a worker.
struct WorkerJSON: Encodable {
    var id: String
    var pid: Int?
    var host: String?
    var state: String
    var job: String?
    var data_endpoint: String
    var last_seen_ms: Int64
}

struct Workers: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "The registered workers.")
    @OptionGroup var cluster: ClusterOptions

    func run() throws {
        try reportingErrors {
            let workers = try cluster.client().workers()
            if cluster.json {
                return try printJSON(workers.map {
                    WorkerJSON(id: $0.workerID.rawValue, pid: $0.pid, host: $0.host, state: $0.state.rawValue,
                               job: $0.task?.job.rawValue, data_endpoint: $0.dataEndpoint, last_seen_ms: $0.lastSeenMS)
                })
            }
            print(pad("WORKER", 14) + pad("STATE", 7) + pad("JOB", 10) + pad("PID", 8) + pad("HOST", 14) + "SEEN")
            for w in workers {
                print(pad(w.workerID.rawValue, 14) + pad(w.state.rawValue, 7) + pad(w.task?.job.rawValue ?? "-", 10)
                      + pad(w.pid.map(String.init) ?? "?", 8) + pad(w.host ?? "?", 14) + "\(w.lastSeenMS) ms ago")
            }
        }
    }
}

/// `checkpoints --json`: one entry a checkpoint.
struct CheckpointJSON: Encodable {
    var step: Int
    var path: String
}

struct Checkpoints: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "A job's stored checkpoints (folders holding model.safetensors).")
    @Argument(help: "The job id.") var job: String
    @OptionGroup var cluster: ClusterOptions

    func run() throws {
        try reportingErrors {
            let checkpoints = try cluster.client().checkpoints(JobID(rawValue: job))
            if cluster.json { return try printJSON(checkpoints.map { CheckpointJSON(step: $0.step, path: $0.path) }) }
            for c in checkpoints { print("step \(pad(String(c.step), 8))\(c.path)") }
        }
    }
}
