import ArgumentParser
import Foundation
import FluxClient
import FluxJobs
import FluxProtocol
import FluxWorker

struct Plan: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Dry-run a job spec: its steps, each rank's slice of the global batch at every world size, the Flux grids of the first steps, memory per worker.",
        discussion: "Rejects what `fluxctl submit` would reject, and reads the training manifest (not the videos).")

    @Argument(help: "The job spec file.") var file: String
    @Option(help: "Show this world size only (default: every size from workers.min to workers.max).") var workers: Int?

    func run() throws {
        try reportingErrors {
            let spec = try JobSpec.load(path: file)
            if let workers, !(1...JobSpec.maxWorkers).contains(workers) {
                throw ValidationError("--workers must be in 1...\(JobSpec.maxWorkers), got \(workers)")
            }
            let plan = try JobPlan(spec: spec, workers: workers)
            let m = spec.modelConfig
            print("job '\(spec.name)': \(m.embedDim)-wide, depth \(m.depth), \(plan.parameters) parameters, budgets \(m.budgets)")
            print("data: \(plan.samples) clips; \(plan.stepsPerEpoch) steps an epoch of \(spec.training.globalBatch) clips; "
                  + "\(plan.totalSteps) steps (\(plan.epochs) epoch\(plan.epochs == 1 ? "" : "s"))")
            print("commits every \(spec.commitEvery) steps; checkpoints every \(spec.checkpointEvery == 0 ? "—" : "\(spec.checkpointEvery)") steps and at the end; ring: \(spec.ringSecurity.rawValue)")
            print("first steps' Flux grids: " + plan.firstGrids.enumerated().map {
                "step \($0.offset): \($0.element.frames)×\($0.element.resolution)² (\($0.element.tokens) tokens)"
            }.joined(separator: ", "))
            print("")
            print(pad("WORKERS", 9) + pad("CLIPS PER RANK", 26) + "PEAK MEMORY PER WORKER (≈)")
            for split in plan.splits {
                let clips = split.rankClips.map(String.init).joined(separator: " ")
                print(pad("\(split.worldSize)", 9) + pad(clips, 26)
                      + String(format: "%.2f GB", Double(split.peakBytesPerWorker) / 1e9))
            }
        }
    }
}

struct Explain: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Why a job waits, failed or rolled back: the first cause, the worker, its last log lines, what to do.")
    @Argument(help: "The job id.") var job: String
    @OptionGroup var cluster: ClusterOptions

    func run() throws {
        try reportingErrors {
            let client = try cluster.client()
            let id = JobID(rawValue: job)
            guard let status = try client.status(id).first else { return }
            let events = try client.events(id)
            let lines = try client.logs(id).lines
            print(Explanation(status: status, events: events, lines: lines).text)
        }
    }
}

/// The explanation `fluxctl explain` prints, built from a job's status, events and log lines.
struct Explanation {
    let status: JobStatus
    let events: [JobEvent]
    let lines: [LogLine]

    var text: String {
        var out: [String] = ["\(status.job) '\(status.name)' is \(status.state) (step \(status.done)/\(status.total), "
                             + "\(status.workers) worker\(status.workers == 1 ? "" : "s"), generation \(status.generation ?? 0))."]
        switch status.state {
        case .queued:
            out.append("It waits: \(status.message ?? "for workers").")
            out.append("What to do: start workers (`fluxctl up --add N` on a local cluster, `fluxd worker` elsewhere), or lower workers.min.")
        case .failed:
            let cause = events.first { $0.kind == "failed" }
            out.append("First cause: \(cause?.text ?? status.message ?? "unknown")")
            if let worker = cause?.worker { out += lastLines(of: worker) }
            out.append("What to do: \(advice(for: cause?.text ?? status.message ?? ""))")
        default:
            if status.state == .running, let message = status.message { out.append("Now: \(message)") }
        }
        let losses = events.filter { $0.kind == "worker_lost" }
        if !losses.isEmpty {
            out.append("Rollbacks: \(losses.count) worker\(losses.count == 1 ? "" : "s") lost during the job:")
            for event in losses {
                let next = events.first { $0.id > event.id && $0.kind == "generation" }
                out.append("  \(timeText(event.timeMS)) \(event.text)" + (next.map { "; then \($0.text)" } ?? ""))
                if let worker = event.worker { out += lastLines(of: worker).map { "  " + $0 } }
            }
        }
        return out.joined(separator: "\n")
    }

    func lastLines(of worker: WorkerID) -> [String] {
        let mine = lines.filter { $0.text.hasPrefix("[\(worker)]") }.suffix(5)
        guard !mine.isEmpty else { return ["Its log has no lines for this job."] }
        return ["Its last log lines:"] + mine.map { "  \(timeText($0.timeMS)) \($0.level) \($0.text)" }
    }

    func advice(for cause: String) -> String {
        if cause.contains("fewer than") { return "start more workers, or lower workers.min, then submit again." }
        if cause.contains("manifest") || cause.contains("cannot open") || cause.contains("cannot read")
            || cause.contains("No such file") {
            return "check the data paths in the spec (they must exist on every worker), then submit again."
        }
        if cause.contains("non-finite") { return "lower train.lr or set train.clip_grad, then submit again." }
        if cause.contains("checkpoint") { return "check init.checkpoint: it must be a checkpoint folder of this model." }
        return "read the worker's log lines above; `fluxctl logs \(status.job)` has the rest."
    }
}
