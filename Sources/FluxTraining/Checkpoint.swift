import Foundation
import FluxFiles
import FluxViT

/// The training state a checkpoint restores exactly (besides parameters and moments).
public struct TrainingState: Codable, Equatable, Sendable {
    /// Format of this record; a checkpoint of another format is refused with a hint.
    public var formatVersion: Int = Checkpoint.formatVersion
    /// Optimizer steps taken (= global step index of the next step).
    public var step: Int
    /// Epoch of the next step, and the next step's index within it (the data cursor).
    public var epoch: Int
    public var stepInEpoch: Int
    public var seed: UInt64
    /// Steps skipped in a row for a non-finite loss or gradient, and in total.
    public var nonFiniteStreak: Int = 0
    public var nonFiniteSteps: Int = 0
    /// Unreadable samples skipped so far.
    public var skippedSamples: Int = 0
    /// The model YAML, so a checkpoint of another shape is caught before tensors are compared.
    public var modelYAML: String

    enum CodingKeys: String, CodingKey {
        case formatVersion = "format_version", step, epoch, stepInEpoch = "step_in_epoch", seed
        case nonFiniteStreak = "non_finite_streak", nonFiniteSteps = "non_finite_steps"
        case skippedSamples = "skipped_samples", modelYAML = "model_yaml"
    }
}

/// A checkpoint folder: `model.safetensors` (spec §3 names), `optimizer.safetensors`
/// (`exp_avg.NAME`, `exp_avg_sq.NAME`) and `state.json`. Written as a temporary folder whose files
/// and the folder itself are fsynced, then renamed into place, so a crash leaves either the old
/// checkpoint or the new one, never half of one.
public enum Checkpoint {
    public static let formatVersion = 1

    /// The folder name of step `step` (sorts by step).
    public static func folderName(step: Int) -> String { String(format: "step-%09d", step) }

    /// Writes a checkpoint into `directory/step-NNNNNNNNN` and keeps only the newest `keep`.
    @discardableResult
    public static func save(
        model: FluxViTModel, optimizer: AdamW, state: TrainingState, in directory: URL, keep: Int
    ) throws(CheckpointError) -> URL {
        try write(files: files(model: model, optimizer: optimizer, state: state), step: state.step,
                  in: directory, keep: keep)
    }

    /// The files of a checkpoint folder as bytes: `model.safetensors`, `optimizer.safetensors`, `state.json`
    /// (what rank 0 sends the coordinator in a `checkpoint` message).
    public static func files(
        model: FluxViTModel, optimizer: AdamW, state: TrainingState
    ) throws(CheckpointError) -> [(name: String, contents: Data)] {
        let params = model.parameters
        var moments: [String: SafeTensors.Value] = [:]
        for slot in params.slots {
            let avg = Array(UnsafeBufferPointer(start: optimizer.expAvg + slot.offset, count: slot.count))
            let sq = Array(UnsafeBufferPointer(start: optimizer.expAvgSq + slot.offset, count: slot.count))
            moments["exp_avg.\(slot.name)"] = .float(.init(shape: slot.shape, scalars: avg))
            moments["exp_avg_sq.\(slot.name)"] = .float(.init(shape: slot.shape, scalars: sq))
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        do {
            return [
                ("model.safetensors", try SafeTensors.encode(params.file(metadata: ["format": "\(formatVersion)"]))),
                ("optimizer.safetensors", try SafeTensors.encode(.init(
                    tensors: moments, metadata: ["format": "\(formatVersion)", "step": "\(optimizer.step)"]))),
                ("state.json", try encoder.encode(state)),
            ]
        } catch {
            throw .unwritable(path: "step \(state.step)", reason: "cannot encode: \(error)")
        }
    }

    /// Writes checkpoint files into `directory/step-NNNNNNNNN` atomically and keeps only the newest `keep`.
    ///
    /// The files go to a temporary folder, each file and the folder are fsynced, then the folder is renamed into
    /// place. Replacing a folder of the same step renames the old one aside first and removes it last; a crash in
    /// between leaves it as `.replaced-step-NNNNNNNNN`, which `latest(in:)` puts back.
    @discardableResult
    public static func write(
        files: [(name: String, contents: Data)], step: Int, in directory: URL, keep: Int
    ) throws(CheckpointError) -> URL {
        let fm = FileManager.default
        let final = directory.appendingPathComponent(folderName(step: step))
        let pid = ProcessInfo.processInfo.processIdentifier
        let temporary = directory.appendingPathComponent(".tmp-\(folderName(step: step))-\(pid)")
        let replaced = directory.appendingPathComponent(".replaced-\(folderName(step: step))")
        do {
            try fm.createDirectory(at: directory, withIntermediateDirectories: true)
            try? fm.removeItem(at: temporary)
            try fm.createDirectory(at: temporary, withIntermediateDirectories: false)
            for file in files { try write(file.contents, to: temporary.appendingPathComponent(file.name)) }
            try fsync(path: temporary.path)
            let replacing = fm.fileExists(atPath: final.path)
            if replacing {
                try? fm.removeItem(at: replaced)
                try rename(final, to: replaced)
            }
            try rename(temporary, to: final)
            try fsync(path: directory.path)
            if replacing { try? fm.removeItem(at: replaced) }
        } catch let error as CheckpointError {
            try? fm.removeItem(at: temporary)
            throw error
        } catch {
            try? fm.removeItem(at: temporary)
            throw .unwritable(path: final.path, reason: (error as NSError).localizedDescription)
        }
        prune(directory, keep: keep)
        return final
    }

    private static func rename(_ source: URL, to destination: URL) throws(CheckpointError) {
        guard Foundation.rename(source.path, destination.path) == 0 else {
            throw .unwritable(path: destination.path, reason: "rename: \(String(cString: strerror(errno)))")
        }
    }

    /// The newest complete checkpoint folder in `directory`, if any.
    public static func latest(in directory: URL) -> URL? {
        var names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        // A replacement interrupted between its two renames: the old folder is whole; put it back.
        for name in names where name.hasPrefix(".replaced-step-") {
            let original = String(name.dropFirst(".replaced-".count))
            if !names.contains(original),
               Foundation.rename(directory.appendingPathComponent(name).path,
                                 directory.appendingPathComponent(original).path) == 0 {
                names.append(original)
            }
        }
        return names.filter { $0.hasPrefix("step-") }.sorted().last.map { directory.appendingPathComponent($0) }
    }

    /// Restores parameters, moments and the optimizer step from `folder`; returns the state.
    /// Nothing is changed unless the whole checkpoint fits the model.
    public static func load(from folder: URL, model: FluxViTModel, optimizer: AdamW) throws(CheckpointError) -> TrainingState {
        let statePath = folder.appendingPathComponent("state.json").path
        guard let data = FileManager.default.contents(atPath: statePath) else {
            throw .incomplete(path: folder.path, missing: "state.json")
        }
        let state: TrainingState
        do {
            state = try JSONDecoder().decode(TrainingState.self, from: data)
        } catch {
            throw .corrupt(path: statePath, reason: "\(error)")
        }
        guard state.formatVersion == formatVersion else {
            throw .version(path: folder.path, found: state.formatVersion, expected: formatVersion)
        }
        let modelPath = folder.appendingPathComponent("model.safetensors").path
        let optimizerPath = folder.appendingPathComponent("optimizer.safetensors").path
        do {
            let weights = try SafeTensors.read(path: modelPath)
            let moments = try SafeTensors.read(path: optimizerPath)
            var issues: [WeightIssue] = []
            for slot in model.parameters.slots {
                for key in ["exp_avg.\(slot.name)", "exp_avg_sq.\(slot.name)"] {
                    switch moments.tensors[key] {
                    case .float(let t)? where t.shape == slot.shape: break
                    case let value?: issues.append(.misshaped(name: key, expected: slot.shape, found: value.shape))
                    case nil: issues.append(.missing(name: key, shape: slot.shape))
                    }
                }
            }
            // Name every mismatched tensor first; then refuse a same-shaped model of another config.
            let weightIssues = model.parameters.issues(with: weights.tensors)
            if !weightIssues.isEmpty { throw WeightsError.mismatch(path: modelPath, weightIssues) }
            if !issues.isEmpty { throw WeightsError.mismatch(path: optimizerPath, issues) }
            if let saved = try? FluxViTConfig.parse(yaml: state.modelYAML), saved != model.config {
                throw CheckpointError.otherModel(path: folder.path, saved: state.modelYAML, current: model.config.yaml)
            }
            try model.parameters.load(weights, path: modelPath)
            for slot in model.parameters.slots {
                if case let .float(avg)? = moments.tensors["exp_avg.\(slot.name)"],
                   case let .float(sq)? = moments.tensors["exp_avg_sq.\(slot.name)"] {
                    avg.scalars.withUnsafeBufferPointer { (optimizer.expAvg + slot.offset).update(from: $0.baseAddress!, count: slot.count) }
                    sq.scalars.withUnsafeBufferPointer { (optimizer.expAvgSq + slot.offset).update(from: $0.baseAddress!, count: slot.count) }
                }
            }
        } catch let error as WeightsError {
            throw .weights(error)
        } catch let error as CheckpointError {
            throw error
        } catch {
            throw .corrupt(path: folder.path, reason: "\(error)")
        }
        model.parametersChanged()
        optimizer.restore(step: state.step)
        return state
    }

    private static func write(_ data: Data, to url: URL) throws(CheckpointError) {
        do { try AtomicFile.writeSynced(data, to: url.path) } catch { throw .unwritable(path: url.path, reason: "\(error)") }
    }

    private static func fsync(path: String) throws(CheckpointError) {
        do { try AtomicFile.syncDirectory(URL(fileURLWithPath: path)) } catch {
            throw .unwritable(path: path, reason: "\(error)")
        }
    }

    private static func prune(_ directory: URL, keep: Int) {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? [])
            .filter { $0.hasPrefix("step-") }.sorted()
        for name in names.dropLast(max(keep, 1)) {
            try? FileManager.default.removeItem(at: directory.appendingPathComponent(name))
        }
    }
}

/// A checkpoint that cannot be written or used.
public enum CheckpointError: Error, CustomStringConvertible {
    case unwritable(path: String, reason: String)
    case incomplete(path: String, missing: String)
    case corrupt(path: String, reason: String)
    case version(path: String, found: Int, expected: Int)
    case otherModel(path: String, saved: String, current: String)
    case weights(WeightsError)
    /// Weights to evaluate that are neither a safetensors file nor a checkpoint folder.
    case noWeights(path: String)
    /// A weights file that carries no model config, and no model was named.
    case noModel(weights: String)

    public var description: String {
        switch self {
        case let .unwritable(path, reason): "cannot write checkpoint '\(path)': \(reason). Check free space and permissions."
        case let .incomplete(path, missing): "checkpoint '\(path)' is incomplete: \(missing) is missing. Resume from an earlier checkpoint."
        case let .corrupt(path, reason): "checkpoint '\(path)' is damaged: \(reason). Resume from an earlier checkpoint."
        case let .version(path, found, expected):
            "checkpoint '\(path)' has format \(found); this build reads format \(expected).\n---> HINT: resume with the Flux version that wrote it, or start again."
        case let .otherModel(path, saved, current):
            "checkpoint '\(path)' is of another model:\n\(saved)\nthis run's model:\n\(current)Use the model YAML the checkpoint was trained with."
        case let .weights(error): "\(error)"
        case let .noWeights(path):
            "no weights at '\(path)': give a safetensors file, a checkpoint folder (holding model.safetensors) or a folder of checkpoints (step-NNNNNNNNN)."
        case let .noModel(weights):
            "'\(weights)' holds weights but no model config: name the model with --model (a model YAML such as configs/models/fluxvit-small.yaml, or a preset name such as fluxvit-small), or give a checkpoint folder, whose state.json names it."
        }
    }
}
