import Foundation
import FluxTensor

/// What `fluxctl infer` does, as a library call: load a model, run it on a clip, rank classes.
public struct Inference {
    /// One ranked class.
    public struct Ranked: Sendable, Equatable {
        public var index: Int
        public var name: String?
        public var probability: Float
    }

    /// The model being run.
    public let model: FluxViTModel
    /// Class names, if a names file was given (one per line).
    public let classNames: [String]?

    /// Loads `modelPath` (YAML) and `weightsPath` (safetensors); with no weights, initializes
    /// from `seed` as for training from scratch (spec §5) — useful only for demos and benchmarks.
    public init(modelPath: String, weightsPath: String?, seed: UInt64 = 0, classNamesPath: String? = nil,
                threads: Int = 2) throws {
        let config = try FluxViTConfig.load(path: modelPath)
        let model = try FluxViTModel(config: config, threads: threads)
        if let weightsPath {
            try model.loadWeights(path: weightsPath)
        } else {
            Initialization.initialize(model.parameters, seed: seed)
            model.parametersChanged()
        }
        self.model = model
        if let classNamesPath {
            self.classNames = try Self.readClassNames(path: classNamesPath, expected: config.numClasses)
        } else {
            self.classNames = nil
        }
    }

    /// Reads a class-names file: one name a line, blank lines ignored, exactly `expected` names.
    public static func readClassNames(path: String, expected: Int) throws(InferenceError) -> [String] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw .unreadableClassNames(path: path)
        }
        let names = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }
        guard names.count == expected else {
            throw .classNameCount(path: path, found: names.count, expected: expected)
        }
        return names
    }

    /// Reads a clip tensor B×3×T×H×W from a safetensors file, key `key`.
    public static func readClip(path: String, key: String) throws -> Tensor {
        let file = try SafeTensors.read(path: path)
        let tensor = try file.float(key, in: path)
        if tensor.shape.count == 4 { return tensor.reshaped([1] + tensor.shape) }  // one clip without batch axis
        return tensor
    }

    /// The `count` most probable classes of each sample's logits (softmax), best first.
    public func topClasses(_ output: ForwardOutput, count: Int = 5) -> [[Ranked]] {
        let K = model.config.numClasses
        return (0..<output.logits.shape[0]).map { b in
            let row = Array(output.logits.scalars[b * K..<(b + 1) * K])
            let maxLogit = row.max() ?? 0
            let exps = row.map { Foundation.exp($0 - maxLogit) }
            let sum = exps.reduce(0, +)
            return exps.enumerated().sorted { $0.element > $1.element || ($0.element == $1.element && $0.offset < $1.offset) }
                .prefix(count).map { Ranked(index: $0.offset, name: classNames?[$0.offset], probability: $0.element / sum) }
        }
    }

    /// Writes `logits`, `feature`, `proj0`, `proj1` (and `kept` when selection ran) to `path`.
    public static func writeOutput(_ output: ForwardOutput, to path: String, metadata: [String: String]) throws {
        var tensors: [String: SafeTensors.Value] = [
            "logits": .float(output.logits), "feature": .float(output.feature),
            "proj0": .float(output.proj0), "proj1": .float(output.proj1),
        ]
        if let kept = output.kept {
            tensors["kept"] = .int(shape: [kept.count, output.keptTokens], values: kept.flatMap { $0 })
        }
        try SafeTensors.write(SafeTensors.File(tensors: tensors, metadata: metadata), to: path)
    }
}

/// Inference input that cannot be used.
public enum InferenceError: Error, Equatable, CustomStringConvertible {
    case unreadableClassNames(path: String)
    case classNameCount(path: String, found: Int, expected: Int)

    public var description: String {
        switch self {
        case let .unreadableClassNames(path):
            "cannot read class names '\(path)': check the path (one class name a line)."
        case let .classNameCount(path, found, expected):
            "'\(path)' names \(found) classes but the model has \(expected) (num_classes); give one name a line for each class."
        }
    }
}
