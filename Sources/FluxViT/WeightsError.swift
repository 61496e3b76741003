/// One problem between a weights file and the model's parameters.
public enum WeightIssue: Equatable, Sendable, CustomStringConvertible {
    case missing(name: String, shape: [Int])
    case unexpected(name: String, shape: [Int])
    case misshaped(name: String, expected: [Int], found: [Int])

    public var description: String {
        switch self {
        case let .missing(name, shape): "\(name): missing (the model needs \(shape))"
        case let .unexpected(name, shape): "\(name): unexpected \(shape), not a parameter of this model"
        case let .misshaped(name, expected, found): "\(name): expected \(expected), file has \(found)"
        }
    }
}

/// A weights or tensor file that cannot be used.
public enum WeightsError: Error, Equatable, CustomStringConvertible {
    /// Every missing, unexpected and mis-shaped tensor of `path`, together.
    case mismatch(path: String, [WeightIssue])
    case unreadable(path: String, reason: String)
    case unwritable(path: String, reason: String)
    case badFormat(path: String, reason: String)
    case missingKey(path: String, key: String, available: [String])

    public var description: String {
        switch self {
        case let .mismatch(path, issues):
            let shown = issues.prefix(40).map { "  - \($0)" }.joined(separator: "\n")
            let more = issues.count > 40 ? "\n  … and \(issues.count - 40) more" : ""
            return "weights '\(path)' do not fit the model config (\(issues.count) problem\(issues.count == 1 ? "" : "s")):\n\(shown)\(more)\nCheck that the model YAML matches the checkpoint (embed_dim, depth, num_classes, …)."
        case let .unreadable(path, reason):
            return "cannot read '\(path)': \(reason). Check the path and permissions."
        case let .unwritable(path, reason):
            return "cannot write '\(path)': \(reason). Check that the folder exists and is writable."
        case let .badFormat(path, reason):
            return "'\(path)' is not a usable safetensors file: \(reason)."
        case let .missingKey(path, key, available):
            return "'\(path)' has no tensor '\(key)' (it has: \(available.prefix(20).joined(separator: ", "))). Name another with --key."
        }
    }
}
