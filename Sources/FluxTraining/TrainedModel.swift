import Foundation
import FluxViT

/// A model with trained weights, loaded the way evaluation names it: weights as a safetensors file or a checkpoint
/// folder, and the model as a YAML path, a preset name, or (for a checkpoint) the model it was trained as.
public struct TrainedModel {
    /// The loaded model.
    public let model: FluxViTModel
    /// The safetensors file the parameters came from.
    public let weightsPath: String
    /// Where the config came from: the YAML path, `preset NAME`, or the checkpoint's `state.json`.
    public let configSource: String

    /// Loads `weights` into a model of `model`.
    ///
    /// - Parameters:
    ///   - model: a model YAML path (ending in .yaml or .yml, or containing '/'), a preset name, or nil to take the
    ///     model from the checkpoint's `state.json` (`model_yaml`).
    ///   - weights: a safetensors file (spec §3 names); a checkpoint folder (its `model.safetensors`); or a folder
    ///     of checkpoints such as `OUT/checkpoints` (the newest one).
    /// - Throws: `CheckpointError` for weights that are neither, for no model to build, or for a checkpoint of
    ///   another model; `ConfigError` for a bad model name or YAML; `WeightsError` naming every mismatched tensor.
    public static func load(model: String?, weights: String, threads: Int = 2) throws -> TrainedModel {
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: weights, isDirectory: &isFolder) else {
            throw CheckpointError.noWeights(path: weights)
        }
        var weightsPath = weights
        var saved: (yaml: String, path: String)?
        if isFolder.boolValue {
            var folder = URL(fileURLWithPath: weights)
            let fm = FileManager.default
            if !fm.fileExists(atPath: folder.appendingPathComponent("model.safetensors").path),
               let newest = Checkpoint.latest(in: folder) {
                folder = newest
            }
            weightsPath = folder.appendingPathComponent("model.safetensors").path
            guard fm.fileExists(atPath: weightsPath) else { throw CheckpointError.noWeights(path: weights) }
            let statePath = folder.appendingPathComponent("state.json").path
            if let data = fm.contents(atPath: statePath) {
                let state: SavedModel
                do {
                    state = try JSONDecoder().decode(SavedModel.self, from: data)
                } catch {
                    throw CheckpointError.corrupt(path: statePath, reason: "\(error)")
                }
                if state.formatVersion != Checkpoint.formatVersion {
                    throw CheckpointError.version(path: folder.path, found: state.formatVersion, expected: Checkpoint.formatVersion)
                }
                saved = (state.modelYAML, statePath)
            }
        }
        let config: FluxViTConfig
        let configSource: String
        if let model {
            config = try Self.config(named: model)
            configSource = Self.namesFile(model) ? model : "preset \(model)"
            if let saved, let savedConfig = try? FluxViTConfig.parse(yaml: saved.yaml), savedConfig != config {
                throw CheckpointError.otherModel(path: saved.path, saved: saved.yaml, current: config.yaml)
            }
        } else if let saved {
            config = try FluxViTConfig.parse(yaml: saved.yaml, source: "'\(saved.path)' (model_yaml)")
            configSource = saved.path
        } else {
            throw CheckpointError.noModel(weights: weights)
        }
        let net = try FluxViTModel(config: config, threads: threads)
        try net.loadWeights(path: weightsPath)
        return TrainedModel(model: net, weightsPath: weightsPath, configSource: configSource)
    }

    /// The config `name` stands for: a model YAML file when it ends in .yaml or .yml or contains '/', else a preset.
    public static func config(named name: String) throws(ConfigError) -> FluxViTConfig {
        namesFile(name) ? try FluxViTConfig.load(path: name) : try FluxViTConfig.preset(name)
    }

    /// The part of a checkpoint's `state.json` that evaluation needs (a training state's other fields may be absent).
    private struct SavedModel: Decodable {
        var formatVersion: Int
        var modelYAML: String

        enum CodingKeys: String, CodingKey {
            case formatVersion = "format_version", modelYAML = "model_yaml"
        }
    }

    private static func namesFile(_ name: String) -> Bool {
        name.contains("/") || name.hasSuffix(".yaml") || name.hasSuffix(".yml")
    }
}
