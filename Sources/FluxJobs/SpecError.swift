/// One problem with a job or sweep spec, at the dotted path of its field (`train.global_batch`).
public struct FieldIssue: Equatable, Sendable, CustomStringConvertible {
    /// The field's path, YAML key names joined by dots; a section (`train`) for problems between its keys.
    public var path: String
    /// What is wrong and, where it helps, how to fix it.
    public var message: String

    /// Creates an issue at `path`.
    public init(path: String, message: String) {
        self.path = path
        self.message = message
    }

    /// `path: message`.
    public var description: String { "\(path): \(message)" }
}

/// A job or sweep spec that cannot be used.
public enum SpecError: Error, Equatable, CustomStringConvertible {
    /// Every problem found in `source` (a file path, "job spec" or "sweep spec"), all to be fixed together.
    case invalid(source: String, issues: [FieldIssue])
    /// The text is not YAML, or not a mapping of keys to values.
    case malformed(source: String, reason: String)
    /// The spec file could not be read.
    case unreadable(path: String, reason: String)

    /// The source, then one issue a line (`  train.global_batch: must be ≥ 1, got 0`).
    public var description: String {
        switch self {
        case let .invalid(source, issues):
            let count = issues.count == 1 ? "1 issue" : "\(issues.count) issues"
            return (["\(source) is invalid (\(count)):"] + issues.map { "  \($0)" }).joined(separator: "\n")
        case let .malformed(source, reason):
            return "\(source) is not a YAML mapping of keys to values: \(reason)"
        case let .unreadable(path, reason):
            return "cannot read spec file '\(path)': \(reason). Check the path and permissions."
        }
    }
}
