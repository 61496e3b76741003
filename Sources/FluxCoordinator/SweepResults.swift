import Foundation
import FluxJobs
import FluxProtocol
import FluxSweep
import FluxTraining
import FluxViT

/// What the coordinator knows of a sweep beyond the machine's counts: its spec, the model it evaluates, its cells,
/// and the metrics of the cells finished so far (each computed once from the stored unit scores).
struct SweepContext {
    let spec: SweepSpec
    let model: FluxViTConfig
    let cells: [SweepCell]
    /// Metrics of finished cells, by cell index.
    var finished: [Int: CellResult] = [:]
    /// Unreadable videos seen so far, once each (every cell meets the same ones).
    var unreadable: Set<UnreadableVideo> = []

    /// Reads a resolved spec (as the job record holds it) and its checkpoint's model.
    init(specYAML: String) throws {
        spec = try SweepSpec.parse(yaml: specYAML, source: "the stored sweep spec")
        model = try Self.model(of: spec)
        cells = try spec.cells(model: model)
    }

    /// The model a checkpoint folder holds (its `state.json` keeps the model YAML).
    static func model(of spec: SweepSpec) throws -> FluxViTConfig {
        guard case let .path(folder) = spec.checkpoint else {
            throw SweepSubmissionError.unresolved(spec.name)
        }
        let stateFile = URL(fileURLWithPath: folder).appendingPathComponent("state.json")
        guard let data = try? Data(contentsOf: stateFile) else {
            throw SweepSubmissionError.unknownCheckpoint(
                "'\(folder)' is not a checkpoint folder: cannot read \(stateFile.path). Give a folder that holds model.safetensors and state.json (`fluxctl checkpoints JOB` lists a job's), or `checkpoint: {job: JOB}`.")
        }
        let state: TrainingState
        do { state = try JSONDecoder().decode(TrainingState.self, from: data) } catch {
            throw SweepSubmissionError.unknownCheckpoint("\(stateFile.path) does not decode as a checkpoint's state: \(error)")
        }
        guard FileManager.default.fileExists(atPath: URL(fileURLWithPath: folder).appendingPathComponent("model.safetensors").path) else {
            throw SweepSubmissionError.unknownCheckpoint("'\(folder)' has no model.safetensors: not a complete checkpoint")
        }
        return try FluxViTConfig.parse(yaml: state.modelYAML, source: stateFile.path)
    }

    /// Adds the stored units of every cell whose units are all done and not yet summarized.
    mutating func absorb(_ rows: [CellResultRow], shards: Int) {
        let byCell = Dictionary(grouping: rows) { $0.unit / max(shards, 1) }
        for (index, units) in byCell where finished[index] == nil && units.count == shards && cells.indices.contains(index) {
            let results = units.map(\.result)
            let eval = Self.scores(results, split: "eval", classes: model.numClasses)
            let choose = spec.data.chooseOn == nil ? nil : Self.scores(results, split: "choose_on", classes: model.numClasses)
            finished[index] = CellResult(cell: cells[index], eval: CellMetrics(scores: eval),
                                         chooseOn: choose.map(CellMetrics.init(scores:)), scoresDigest: eval.digest)
            for report in results.flatMap({ $0.unreadable ?? [] }) {
                unreadable.insert(UnreadableVideo(index: report.index, path: report.path, line: report.line,
                                                  reason: "\(report.split == "eval" ? "" : "[\(report.split)] ")\(report.reason)"))
            }
        }
    }

    /// The merged per-video scores of one split over a cell's shards.
    static func scores(_ results: [TaskFinished], split: String, classes: Int) -> VideoScores {
        VideoScores.merged(results.map { result in
            func tensor(_ name: String) -> [Float] { result.tensors.first { $0.name == "\(split).\(name)" }?.scalars ?? [] }
            let videos = tensor("videos").map { Int($0) }, labels = tensor("labels").map { Int($0) }
            let probabilities = tensor("probabilities")
            guard probabilities.count == videos.count * classes, labels.count == videos.count else {
                return VideoScores(classes: classes)
            }
            let unreadable = (result.unreadable ?? []).filter { $0.split == split }.map {
                UnreadableVideo(index: $0.index, path: $0.path, line: $0.line, reason: $0.reason)
            }
            return VideoScores(classes: classes, videos: videos, labels: labels, probabilities: probabilities,
                               unreadable: unreadable)
        })
    }

    /// The report of the cells finished so far.
    func report(job: JobID) -> SweepReport {
        let checkpoint: String = if case let .path(path) = spec.checkpoint { path } else { "?" }
        return SweepReport(
            name: spec.name, job: job.rawValue,
            model: "\(model.embedDim)-dim, \(model.depth) blocks, patch \(model.patchSize), \(model.numClasses) classes",
            checkpoint: checkpoint, selection: spec.selection.rawValue,
            views: "\(spec.views.clips)×\(spec.views.crops)", standard: spec.standardCandidate(model: model),
            budgets: spec.budgets, cellsTotal: cells.count,
            results: finished.keys.sorted().map { finished[$0]! },
            unreadable: unreadable.sorted { ($0.line, $0.path) < ($1.line, $1.path) },
            chosenOn: spec.data.chooseOn == nil ? SweepReport.evalBasis : SweepReport.chooseOnBasis,
            cellsPerBudget: Dictionary(grouping: cells, by: \.budget).mapValues(\.count))
    }
}

/// A sweep submission the coordinator cannot accept.
enum SweepSubmissionError: Error, CustomStringConvertible {
    case unresolved(String)
    case unknownCheckpoint(String)
    case unknownJob(String)

    var description: String {
        switch self {
        case let .unresolved(name): "sweep '\(name)': its checkpoint was not resolved to a folder"
        case let .unknownCheckpoint(text): "unknown checkpoint: \(text)"
        case let .unknownJob(text): text
        }
    }
}
