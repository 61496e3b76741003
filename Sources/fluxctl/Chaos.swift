import ArgumentParser
import Foundation
import FluxClient
import FluxJobs
import FluxProtocol
import FluxVideo

extension ChaosPlan.Step: ExpressibleByArgument {
    public init?(argument: String) {
        if argument == "random" { self = .random } else if let step = Int(argument) { self = .at(step) } else { return nil }
    }
}

struct ChaosCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chaos",
        abstract: "Run a job undisturbed, then again with faults, on local clusters; compare the parameters' hashes step by step.",
        discussion: """
            Each run gets its own local cluster (a coordinator and --workers workers in a folder of its own, never your \
            .flux). The faults fire once the job reports that many steps done; STEP may be `random` (drawn from --seed). \
            The spec runs with step_hashes on, workers.min 1 and workers.max --workers plus the added workers. \
            With `reduction: exact` the hashes must match at every step; exit status 1 names the first step that \
            differs (or lacks a hash). Each fault's recovery is timed from the fault to the first step of the ring formed \
            after it.
            """)

    @Argument(help: "The job spec (YAML).") var file: String
    @Option(help: "Workers each run starts with.") var workers: Int = 2
    @Option(name: .customLong("kill-worker"), help: ArgumentHelp("SIGKILL a worker of the ring at this step.", valueName: "step|random"))
    var killWorker: [ChaosPlan.Step] = []
    @Option(name: .customLong("add-worker"), help: ArgumentHelp("Start one more worker at this step.", valueName: "step|random"))
    var addWorker: [ChaosPlan.Step] = []
    @Option(name: .customLong("stop-worker"), help: ArgumentHelp("SIGTERM a worker of the ring at this step (it leaves at its next commit).", valueName: "step|random"))
    var stopWorker: [ChaosPlan.Step] = []
    @Option(name: .customLong("kill-coordinator"), help: ArgumentHelp("SIGKILL the coordinator at this step and start it again.", valueName: "step|random"))
    var killCoordinator: [ChaosPlan.Step] = []
    @Option(help: "Seed for random steps and for which worker a fault takes.") var seed: UInt64 = 1
    @Option(help: "Compute threads per worker.") var threadsPerWorker: Int = 1
    @Option(help: "Where the two clusters live (default: a new folder under the temporary directory, removed at the end).")
    var workDir: String?
    @Flag(help: "Keep the clusters' folders (logs, store, checkpoints) after the runs.") var keep = false
    @Option(help: "Seconds each run may take.") var timeout: Double = 900
    @Flag(help: "Output JSON for scripts.") var json = false

    func validate() throws {
        guard workers >= 1 else { throw ValidationError("--workers must be at least 1") }
        guard threadsPerWorker >= 1 else { throw ValidationError("--threads-per-worker must be at least 1") }
    }

    func run() throws {
        try reportingErrors {
            var spec = try JobSpec.load(path: file)
            let total: Int
            switch (spec.training.length, spec.data) {
            case let (.steps(steps), _): total = steps
            case let (.epochs, .synthetic(count)): total = spec.totalSteps(datasetCount: count)
            case let (.epochs, .manifests(train, _, root)):
                total = spec.totalSteps(datasetCount: try Manifest.load(path: train, root: root).entries.count)
            }
            let requested = killWorker.map { (ChaosFault.Kind.killWorker, $0) } + addWorker.map { (.addWorker, $0) }
                + stopWorker.map { (.stopWorker, $0) } + killCoordinator.map { (.killCoordinator, $0) }
            let plan = try ChaosPlan(requested, totalSteps: total, workers: workers, seed: seed)
            spec.stepHashes = true
            spec.workers = JobSpec.WorkerRange(min: 1, max: min(JobSpec.maxWorkers, workers + plan.addedWorkers))
            let base = URL(fileURLWithPath: workDir ?? FileManager.default.temporaryDirectory
                .appendingPathComponent("flux-chaos-\(getpid())").path)
            let runner = ChaosRunner(specYAML: spec.canonicalYAML, workers: workers, threads: threadsPerWorker,
                                     base: base, seed: seed, timeout: timeout, quiet: json)
            let faults = plan.faults.isEmpty ? "none" : plan.faults.map(\.description).joined(separator: ", ")
            if !json {
                print("chaos: '\(spec.name)' (reduction \(spec.reduction.rawValue)), \(total) steps on \(workers) worker(s) × \(threadsPerWorker) thread(s); faults: \(faults) (seed \(seed))")
                fflush(nil)
            }
            defer { if !keep { try? FileManager.default.removeItem(at: base) } }
            let undisturbed = try runner.run(label: "undisturbed", faults: [])
            let faulted = try runner.run(label: "faulted", faults: plan.faults)
            // The job's own count (a manifest's unreadable videos make epochs shorter than its line count).
            let steps = undisturbed.status.total > 0 ? undisturbed.status.total : total
            let comparison = HashComparison(undisturbed: undisturbed.hashes, faulted: faulted.hashes, totalSteps: steps)
            if json {
                try printJSON(ChaosJSON(undisturbed: undisturbed, faulted: faulted, comparison: comparison, total: steps))
            } else {
                printReport(undisturbed: undisturbed, faulted: faulted, comparison: comparison, total: steps)
                if keep { print("clusters kept in \(base.path)/{undisturbed,faulted} (logs/, coordinator.sqlite, jobs/)") }
            }
            if !comparison.matches { throw ExitCode.failure }
        }
    }

    func printReport(undisturbed: ChaosRunner.Outcome, faulted: ChaosRunner.Outcome, comparison: HashComparison,
                     total: Int) {
        let a = Dictionary(undisturbed.hashes.hashes.map { ($0.step, $0.sha256) }, uniquingKeysWith: { x, _ in x })
        let b = Dictionary(faulted.hashes.hashes.map { ($0.step, $0.sha256) }, uniquingKeysWith: { x, _ in x })
        // Every step of a short job; around the faults, the first difference and the end of a long one.
        var shown = Set<Int>()
        if total <= 40 {
            shown = Set(1...max(1, total))
        } else {
            let marks = faulted.injected.map(\.firedAt) + [comparison.firstDifference].compactMap { $0 } + [1, total]
            for mark in marks { for step in (mark - 2)...(mark + 2) where (1...total).contains(step) { shown.insert(step) } }
        }
        print("")
        print(pad("STEP", 7) + pad("UNDISTURBED", 20) + pad("FAULTED", 20) + "")
        var previous = 0
        for step in shown.sorted() {
            if step > previous + 1 { print(pad("…", 7)) }
            previous = step
            let x = a[step], y = b[step]
            let mark = x == nil || y == nil ? "missing" : x == y ? "=" : "DIFFERS"
            let faults = faulted.injected.filter { $0.firedAt == step }.map { "← \($0.fault.kind.rawValue)" }
            print(pad(String(step), 7) + pad(x.map { String($0.prefix(16)) + "…" } ?? "-", 20)
                  + pad(y.map { String($0.prefix(16)) + "…" } ?? "-", 20) + ([mark] + faults).joined(separator: " "))
        }
        if !faulted.injected.isEmpty {
            print("")
            print(pad("FAULT", 18) + pad("AT STEP", 9) + pad("RECOVERY", 10) + "WHAT")
            for injected in faulted.injected {
                let recovery = injected.recovery.map { String(format: "%.2f s", $0) } ?? "none"
                print(pad(injected.fault.kind.rawValue, 18) + pad(String(injected.firedAt), 9) + pad(recovery, 10) + injected.what)
            }
            if let p50 = faulted.status.recoveryP50, let p95 = faulted.status.recoveryP95 {
                print(String(format: "coordinator's recoveries: %d, p50 %.2f s, p95 %.2f s (disruption seen → first step of the new ring)",
                             faulted.status.recoveries ?? 0, p50, p95))
            }
        }
        print("")
        print(String(format: "undisturbed: %@ in %.1f s; faulted: %@ in %.1f s", undisturbed.status.state.rawValue,
                     undisturbed.seconds, faulted.status.state.rawValue, faulted.seconds))
        if comparison.matches {
            print("MATCH: \(comparison.verdict); final parameters \(a[total].map { String($0.prefix(16)) } ?? "?")…")
        } else {
            FileHandle.standardError.write(Data("MISMATCH: \(comparison.verdict)\n".utf8))
        }
    }
}

/// `chaos --json`.
struct ChaosJSON: Encodable {
    struct Fault: Encodable {
        var kind: String
        var step: Int
        var fired_at_step: Int
        var time_ms: Int64
        var recovery_seconds: Double?
        var what: String
    }
    struct Run: Encodable {
        var job: String
        var state: String
        var seconds: Double
        var hashes: [String: String]
        var faults: [Fault]
        var recoveries: Int?
        var recovery_p50_seconds: Double?
        var recovery_p95_seconds: Double?
    }
    var total_steps: Int
    var undisturbed: Run
    var faulted: Run
    var match: Bool
    var first_differing_step: Int?
    var missing_steps: [Int]
    var verdict: String

    init(undisturbed: ChaosRunner.Outcome, faulted: ChaosRunner.Outcome, comparison: HashComparison, total: Int) {
        func run(_ outcome: ChaosRunner.Outcome) -> Run {
            Run(job: outcome.job.rawValue, state: outcome.status.state.rawValue, seconds: outcome.seconds,
                hashes: Dictionary(outcome.hashes.hashes.map { (String($0.step), $0.sha256) }, uniquingKeysWith: { x, _ in x }),
                faults: outcome.injected.map {
                    Fault(kind: $0.fault.kind.rawValue, step: $0.fault.step, fired_at_step: $0.firedAt, time_ms: $0.timeMS,
                          recovery_seconds: $0.recovery, what: $0.what)
                },
                recoveries: outcome.status.recoveries, recovery_p50_seconds: outcome.status.recoveryP50,
                recovery_p95_seconds: outcome.status.recoveryP95)
        }
        total_steps = total
        self.undisturbed = run(undisturbed)
        self.faulted = run(faulted)
        match = comparison.matches
        first_differing_step = comparison.firstDifference
        missing_steps = Array(Set(comparison.missingUndisturbed + comparison.missingFaulted)).sorted()
        verdict = comparison.verdict
    }
}

/// Runs one job on a fresh local cluster, firing faults at their steps; the I/O half of `fluxctl chaos`.
struct ChaosRunner {
    let specYAML: String
    let workers: Int
    let threads: Int
    let base: URL
    let seed: UInt64
    let timeout: Double
    let quiet: Bool

    struct Injected {
        var fault: ChaosFault
        /// The step the job had reported when the fault fired.
        var firedAt: Int
        var timeMS: Int64
        var what: String
        /// Seconds from the fault to the first `recovered` event after it.
        var recovery: Double?
    }

    struct Outcome {
        var job: JobID
        var status: JobStatus
        var hashes: HashesReply
        var injected: [Injected]
        var seconds: Double
    }

    static func nowMS() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    func say(_ text: String) {
        guard !quiet else { return }
        if isatty(STDERR_FILENO) != 0 { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
        FileHandle.standardError.write(Data("  \(text)\n".utf8))
    }

    func run(label: String, faults: [ChaosFault]) throws -> Outcome {
        let directory = base.appendingPathComponent(label)
        try? FileManager.default.removeItem(at: directory)
        let cluster = LocalCluster(directory: directory, fluxd: fluxdExecutable())
        defer { _ = cluster.down(timeout: 10) }
        try cluster.up(workers: workers, threadsPerWorker: threads)
        let client = try FluxClient.local(stateDirectory: directory, timeout: .seconds(2))
        let deadline = Date().addingTimeInterval(timeout)
        func fail(_ reason: String) -> ChaosError {
            .runFailed(run: label, reason: "\(reason) (logs: \(directory.path)/logs/; --keep keeps them)")
        }
        while ((try? client.workers()) ?? []).filter({ $0.state != .dead }).count < workers {
            guard Date() < deadline else { throw fail("the workers did not register") }
            usleep(100_000)
        }
        let job = try client.submit(specYAML: specYAML)
        say("\(label): \(job) submitted on \(workers) worker(s)")
        let start = Date()
        var random = SplitMix64(seed: seed)
        var injected: [Injected] = []
        var pending = faults[...]
        var last: JobStatus?
        let interactive = isatty(STDERR_FILENO) != 0
        while true {
            guard Date() < deadline else { throw fail("\(job) did not end within \(Int(timeout)) s") }
            if let status = try? client.status(job).first {
                last = status
                if [.succeeded, .failed, .cancelled].contains(status.state) { break }
            }
            while let fault = pending.first, let status = last, status.state == .running, status.done >= fault.step {
                pending.removeFirst()
                let what = try inject(fault, job: job, cluster: cluster, client: client, random: &random, deadline: deadline)
                injected.append(Injected(fault: fault, firedAt: status.done, timeMS: Self.nowMS(), what: what))
                say("step \(status.done): \(what)")
            }
            if !quiet, interactive, let status = last {
                FileHandle.standardError.write(Data("\r\u{1B}[K\(label): \(statusLine(status))".utf8))
            }
            usleep(50_000)
        }
        if interactive, !quiet { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
        guard let status = last, status.state == .succeeded else {
            throw fail("\(job) ended \(last?.state.rawValue ?? "?"): \(last?.message ?? "")")
        }
        if let fault = pending.first { throw fail("\(job) ended before \(fault) fired (it reported step \(status.done))") }
        let events = try client.events(job)
        let hashes = try client.hashes(job)
        // A fault's recovery: to the first `recovered` event after it (the coordinator's clock, on this host).
        for index in injected.indices {
            if let event = events.first(where: { $0.kind == "recovered" && $0.timeMS >= injected[index].timeMS }) {
                injected[index].recovery = Double(event.timeMS - injected[index].timeMS) / 1000
            }
        }
        let seconds = Date().timeIntervalSince(start)
        say(String(format: "%@: %@ succeeded in %.1f s, %d step hashes", label, job.rawValue, seconds, hashes.hashes.count))
        return Outcome(job: job, status: status, hashes: hashes, injected: injected, seconds: seconds)
    }

    /// Fires one fault; returns what it did.
    func inject(_ fault: ChaosFault, job: JobID, cluster: LocalCluster, client: FluxClient, random: inout SplitMix64,
                deadline: Date) throws -> String {
        switch fault.kind {
        case .killWorker, .stopWorker:
            // A running member of the job's ring, among the processes this run started.
            let ours = Dictionary(cluster.workerPIDs.map { (Int($0.1), $0.1) }, uniquingKeysWith: { x, _ in x })
            var members: [WorkerInfo] = []
            while members.isEmpty {
                members = ((try? client.workers()) ?? [])
                    .filter { $0.state == .busy && $0.task?.job == job && $0.pid.map { ours[$0] != nil } == true }
                    .sorted { $0.workerID.rawValue < $1.workerID.rawValue }
                if members.isEmpty {
                    guard Date() < deadline else { throw ChaosError.noVictim(fault: fault.kind.rawValue, step: fault.step) }
                    usleep(50_000)
                }
            }
            let victim = members[Int(random.next() % UInt64(members.count))]
            let pid = Int32(victim.pid!)
            let signal = fault.kind == .killWorker ? SIGKILL : SIGTERM
            kill(pid, signal)
            return fault.kind == .killWorker
                ? "killed worker \(victim.workerID) (pid \(pid), SIGKILL)"
                : "stopped worker \(victim.workerID) (pid \(pid), SIGTERM: it leaves at its next commit)"
        case .addWorker:
            let pid = try cluster.addWorker(threadsPerWorker: threads)
            return "added a worker (pid \(pid)); it joins at the next commit"
        case .killCoordinator:
            guard let pid = cluster.coordinatorPID else { throw ChaosError.runFailed(run: "faulted", reason: "no coordinator to kill") }
            kill(pid, SIGKILL)
            while LocalCluster.isAlive(pid), Date() < deadline { usleep(10_000) }
            let restarted = try cluster.startCoordinator()
            return "killed the coordinator (pid \(pid), SIGKILL) and started it again (pid \(restarted))"
        }
    }
}
