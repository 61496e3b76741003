import Foundation
import FluxData
import FluxJobs
import FluxProtocol
import FluxTraining
import FluxVideo
import FluxViT
import Logging
import Synchronization

/// One unit of a Token Optimization sweep on the worker (design §5): a cell (budget × sampling), or one dataset
/// shard of it, scored video by video on the eval manifest (and the `choose_on` one), sent back as per-video
/// scores in a `task_finished`. Runs on its own thread; `stop()` ends it between two videos.
final class EvaluationTask: Sendable {
    let job: JobID
    let task: TaskID
    let cell: EvaluationCell
    private let specYAML: String
    private let cache: SweepCache
    private let threads: Int
    private let logger: Logger
    private let post: @Sendable (Message) -> Void
    private let stopped = Atomic<Bool>(false)

    init(assign: Assign, cell: EvaluationCell, cache: SweepCache, threads: Int, logger: Logger,
         post: @escaping @Sendable (Message) -> Void) {
        self.job = assign.job
        self.task = assign.task
        self.cell = cell
        self.specYAML = assign.specYAML
        self.cache = cache
        self.threads = threads
        self.logger = logger
        self.post = post
    }

    /// Videos scored per evaluator call (each is still its own forward batch, so the scores do not depend on it).
    static let videosPerCall = 8

    /// Ends the task within its next few videos; nothing is sent for it.
    func stop() { stopped.store(true, ordering: .releasing) }
    var isStopped: Bool { stopped.load(ordering: .acquiring) }

    /// The videos of a list of `count` this shard scores: a contiguous near-equal part.
    static func shard(count: Int, shard: Int, of shards: Int) -> Range<Int> {
        (count * shard / shards)..<(count * (shard + 1) / shards)
    }

    func run() {
        let started = Date()
        do {
            let sweep = try cache.sweep(specYAML: specYAML, threads: threads)
            guard sweep.cells.indices.contains(cell.index) else {
                throw EvaluationTaskError.noSuchCell(cell.index, count: sweep.cells.count)
            }
            let setting = sweep.spec.viewSetting(for: sweep.cells[cell.index])
            let lists = [("eval", sweep.eval)] + (sweep.chooseOn.map { [("choose_on", $0)] } ?? [])
            let total = lists.reduce(0) { $0 + Self.shard(count: $1.1.entries.count, shard: cell.shard, of: cell.shardCount).count }
            var done = 0
            var lastReport = Date()
            var tensors: [NamedTensor] = []
            var unreadable: [UnreadableVideoReport] = []
            for (split, manifest) in lists {
                var parts: [VideoScores] = []
                // A few videos a call: a stop is honoured within them, and the evaluator's per-call checks (the
                // setting, every label of the manifest) are not repeated for every video.
                let indices = Array(Self.shard(count: manifest.entries.count, shard: cell.shard, of: cell.shardCount))
                for start in stride(from: 0, to: indices.count, by: Self.videosPerCall) {
                    if isStopped { return }
                    let chunk = Array(indices[start..<min(start + Self.videosPerCall, indices.count)])
                    parts.append(try VideoEvaluator.scores(model: sweep.model, manifest: manifest, videos: chunk,
                                                           setting: setting))
                    done += chunk.count
                    if Date().timeIntervalSince(lastReport) >= 0.5 {
                        lastReport = Date()
                        post(.progress(ProgressReport(job: job, task: task, done: done, total: total,
                                                      rate: Double(done) / max(Date().timeIntervalSince(started), 1e-3))))
                    }
                }
                let scores = VideoScores.merged(parts)
                let K = sweep.model.config.numClasses
                tensors += [
                    NamedTensor(name: "\(split).videos", shape: [scores.videos.count], scalars: scores.videos.map { Float($0) }),
                    NamedTensor(name: "\(split).labels", shape: [scores.labels.count], scalars: scores.labels.map { Float($0) }),
                    NamedTensor(name: "\(split).probabilities", shape: [scores.videos.count, K], scalars: scores.probabilities),
                ]
                unreadable += scores.unreadable.map {
                    UnreadableVideoReport(split: split, index: $0.index, path: $0.path, line: $0.line, reason: $0.reason)
                }
            }
            if isStopped { return }
            post(.taskFinished(TaskFinished(
                job: job, task: task,
                metrics: ["videos": Double(done - unreadable.count), "unreadable": Double(unreadable.count),
                          "seconds": Date().timeIntervalSince(started)],
                tensors: tensors, unreadable: unreadable)))
        } catch {
            // Bad input (spec, checkpoint, manifest, a setting the model cannot take) fails the same on any worker.
            logger.error("\(job) \(task): \(error)")
            post(.taskFailed(TaskFailed(job: job, task: task, reason: "\(error)", retryable: false)))
        }
    }
}

/// What a worker keeps between the cells of one sweep: the parsed spec, the model with the checkpoint's weights,
/// the cells and the manifests, so a sweep of many cells loads them once.
final class SweepCache: Sendable {
    struct Sweep: @unchecked Sendable {
        let spec: SweepSpec
        let model: FluxViTModel
        let cells: [SweepCell]
        let eval: Manifest
        let chooseOn: Manifest?
    }

    private let current = Mutex<(yaml: String, sweep: Sweep)?>(nil)

    func sweep(specYAML: String, threads: Int) throws -> Sweep {
        if let hit = current.withLock({ $0?.yaml == specYAML ? $0?.sweep : nil }) { return hit }
        let spec = try SweepSpec.parse(yaml: specYAML, source: "the sweep spec")
        guard case let .path(folder) = spec.checkpoint else { throw EvaluationTaskError.unresolvedCheckpoint }
        // The checkpoint's own model (its state.json), with its weights, as `fluxctl eval` loads it.
        let model = try TrainedModel.load(model: nil, weights: folder, threads: threads).model
        let config = model.config
        let eval = try Manifest.load(path: spec.data.eval, root: spec.data.root)
        let chooseOn = try spec.data.chooseOn.map { try Manifest.load(path: $0, root: spec.data.root) }
        let sweep = Sweep(spec: spec, model: model, cells: try spec.cells(model: config), eval: eval, chooseOn: chooseOn)
        current.withLock { $0 = (specYAML, sweep) }
        return sweep
    }
}

enum EvaluationTaskError: Error, CustomStringConvertible {
    case noSuchCell(Int, count: Int)
    case unresolvedCheckpoint

    var description: String {
        switch self {
        case let .noSuchCell(index, count): "cell \(index) does not exist: the sweep has \(count) cells"
        case .unresolvedCheckpoint: "the sweep's checkpoint names a job; the coordinator resolves it to a folder before assigning cells"
        }
    }
}
