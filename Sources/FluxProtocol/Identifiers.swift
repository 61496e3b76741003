/// A string-valued id or code that travels in JSON as a plain string: literals, `init(_:)` and `description` for free.
public protocol StringIdentifier: RawRepresentable, Codable, Hashable, Comparable, Sendable,
    ExpressibleByStringLiteral, CustomStringConvertible where RawValue == String
{
    /// Wraps a raw value.
    init(rawValue: String)
}

extension StringIdentifier {
    /// Wraps a raw value.
    public init(_ rawValue: String) { self.init(rawValue: rawValue) }
    /// Wraps a literal.
    public init(stringLiteral value: String) { self.init(rawValue: value) }
    /// The raw value itself.
    public var description: String { rawValue }
    /// Ordered by raw value (listings and deterministic iteration).
    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// A job's id, chosen by the coordinator when the job is submitted (for example `j-000042`).
public struct JobID: StringIdentifier {
    /// The id as it travels in JSON.
    public var rawValue: String
    /// Wraps an id.
    public init(rawValue: String) { self.rawValue = rawValue }
}

/// A worker's stable id, kept in the worker's state dir so a restarted coordinator recognises it.
public struct WorkerID: StringIdentifier {
    /// The id as it travels in JSON.
    public var rawValue: String
    /// Wraps an id.
    public init(rawValue: String) { self.rawValue = rawValue }
}

/// A task's id within its job: a training rank's slot or an evaluation cell (for example `cell-17`).
public struct TaskID: StringIdentifier {
    /// The id as it travels in JSON.
    public var rawValue: String
    /// Wraps an id.
    public init(rawValue: String) { self.rawValue = rawValue }
}

/// The code of an `error` or `rejected` message: an open set, so a newer peer's codes still decode.
public struct ErrorCode: StringIdentifier {
    /// The code as it travels in JSON (snake_case).
    public var rawValue: String
    /// Wraps a code.
    public init(rawValue: String) { self.rawValue = rawValue }

    /// The request's `type` is unknown to the receiver.
    public static let unknownType: ErrorCode = "unknown_type"
    /// The request's `v` is not the receiver's version.
    public static let unsupportedVersion: ErrorCode = "unsupported_version"
    /// The request exceeds the receiver's size limits.
    public static let tooLarge: ErrorCode = "too_large"
    /// The request is malformed or has invalid fields.
    public static let badRequest: ErrorCode = "bad_request"
    /// The job spec does not validate; the message lists every issue with its field path.
    public static let invalidSpec: ErrorCode = "invalid_spec"
    /// The named job or worker does not exist.
    public static let notFound: ErrorCode = "not_found"
    /// The sender's public key is not on the allowlist, or its worker id is already taken.
    public static let unauthorized: ErrorCode = "unauthorized"
    /// The request is valid but cannot be done in the current state (cancelling a finished job).
    public static let conflict: ErrorCode = "conflict"
    /// The receiver failed for its own reasons; its log says why.
    public static let `internal`: ErrorCode = "internal"
}

/// A job's state as the coordinator reports it: an open set, so a newer coordinator's states still decode.
public struct JobState: StringIdentifier {
    /// The state as it travels in JSON.
    public var rawValue: String
    /// Wraps a state.
    public init(rawValue: String) { self.rawValue = rawValue }

    /// Waiting for workers.
    public static let queued: JobState = "queued"
    /// Running on at least `min` workers.
    public static let running: JobState = "running"
    /// Finished; results are stored.
    public static let succeeded: JobState = "succeeded"
    /// Gave up; the job's logs say why.
    public static let failed: JobState = "failed"
    /// Cancelled by a client.
    public static let cancelled: JobState = "cancelled"
}

/// A worker's state as the coordinator reports it: an open set.
public struct WorkerState: StringIdentifier {
    /// The state as it travels in JSON.
    public var rawValue: String
    /// Wraps a state.
    public init(rawValue: String) { self.rawValue = rawValue }

    /// Registered and without a task.
    public static let idle: WorkerState = "idle"
    /// Running a task.
    public static let busy: WorkerState = "busy"
    /// Missed too many heartbeats.
    public static let dead: WorkerState = "dead"
}

/// What a task is.
public enum TaskKind: String, Codable, Sendable, CaseIterable {
    /// One rank of an elastic training job (design §4).
    case trainingRank = "training_rank"
    /// One cell (or one shard of a cell) of a Token Optimization sweep (design §5).
    case evaluationCell = "evaluation_cell"
}

/// What a job is.
public enum JobKind: String, Codable, Sendable, CaseIterable {
    /// Elastic data-parallel training.
    case training
    /// A Token Optimization sweep.
    case sweep
}

/// Whether ring traffic between workers is encrypted (design §3).
public enum RingSecurity: String, Codable, Sendable, CaseIterable {
    /// CURVE on the data endpoints, with the keys the coordinator hands out (the default).
    case curve
    /// Plain TCP, for a trusted private network; logged at start.
    case none
}
