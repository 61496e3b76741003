import Foundation

/// The `type` of a message: one per message of docs/protocol.md, spelled snake_case on the wire.
public enum MessageType: String, Codable, Sendable, CaseIterable {
    // Worker ⇄ coordinator (the worker endpoint).
    /// Worker → coordinator: join, or re-join after a reconnect.
    case register
    /// Coordinator → worker: registration accepted.
    case registered
    /// Coordinator → worker: registration refused.
    case rejected
    /// Both ways on the worker endpoint: liveness.
    case heartbeat
    /// Coordinator → worker: run a task.
    case assign
    /// Coordinator → worker: stop a task.
    case stopTask = "stop_task"
    /// Coordinator → worker: a training ring's generation, with this worker's rank and neighbours.
    case ringFormed = "ring_formed"
    /// Worker → coordinator: a rank kept an in-memory commit.
    case commit
    /// Both ways: checkpoint files (rank 0 → coordinator to save; coordinator → worker to resume).
    case checkpoint
    /// Coordinator → worker: a checkpoint is durably written.
    case checkpointSaved = "checkpoint_saved"
    /// Worker → coordinator: how far a task is.
    case progress
    /// Worker → coordinator: a task ended well, with its results.
    case taskFinished = "task_finished"
    /// Worker → coordinator: a task ended badly.
    case taskFailed = "task_failed"
    /// Worker → coordinator: a ring operation failed; the rank rolled back and waits for a new generation.
    case ringBroken = "ring_broken"
    /// Worker → coordinator: the worker leaves its job's ring at a commit.
    case leave
    /// Worker → coordinator: a line of the job's log.
    case log
    /// Worker → coordinator: rank 0's SHA-256 of the parameters after each step.
    case stepHashes = "step_hashes"

    // Client ⇄ coordinator (the client endpoint).
    /// Client → coordinator: submit a job spec.
    case submit
    /// Coordinator → client: the new job's id.
    case submitted
    /// Client → coordinator: ask for jobs' states.
    case status
    /// Coordinator → client: jobs' states.
    case statusReply = "status_reply"
    /// Client → coordinator: ask for a job's log lines.
    case logs
    /// Coordinator → client: log lines.
    case logsReply = "logs_reply"
    /// Client → coordinator: cancel a job.
    case cancel
    /// Coordinator → client: the job is cancelled.
    case cancelled
    /// Client → coordinator: list the workers.
    case workers
    /// Coordinator → client: the workers.
    case workersReply = "workers_reply"
    /// Client → coordinator: ask for a job's step hashes.
    case hashes
    /// Coordinator → client: a job's step hashes.
    case hashesReply = "hashes_reply"
    /// Client → coordinator: ask for a job's results.
    case results
    /// Coordinator → client: result rows.
    case resultsReply = "results_reply"
    /// Client → coordinator: ask for a job's events.
    case events
    /// Coordinator → client: a job's events.
    case eventsReply = "events_reply"
    /// Client → coordinator: ask for a job's checkpoints.
    case checkpoints
    /// Coordinator → client: a job's checkpoints.
    case checkpointsReply = "checkpoints_reply"

    /// Any direction, as a reply: a request could not be served.
    case error
}

/// One message's body: the fields of its JSON header plus the binary frames that follow the header.
///
/// Bodies are decoded by their own `Codable` schema only, never through a general object deserializer. A body's
/// initializer checks that the binary frames match what the header announces.
public protocol MessageBody: Sendable, Equatable {
    /// The header fields (without `v` and `type`), as they travel in JSON.
    associatedtype Header: Codable & Sendable
    /// The message type this body travels as.
    static var type: MessageType { get }
    /// The header fields of this body.
    var header: Header { get }
    /// The binary frames that follow the header frame, in order.
    var binaryFrames: [Data] { get }
    /// Builds a body from a decoded header and the binary frames that followed it, checking both.
    init(header: Header, binaryFrames: [Data]) throws(ProtocolError)
}

/// A body that is all header: no binary frames, and its fields are its own JSON schema.
public protocol HeaderOnlyBody: MessageBody, Codable where Header == Self {
    /// Checks values that JSON types cannot express (ranges, consistency); the default accepts everything.
    func validate() throws(ProtocolError)
}

extension HeaderOnlyBody {
    /// The body itself.
    public var header: Self { self }
    /// None: a header-only body has no binary frames.
    public var binaryFrames: [Data] { [] }
    /// Checks that no binary frames follow and that the values are valid.
    public init(header: Self, binaryFrames: [Data]) throws(ProtocolError) {
        try expectFrames(binaryFrames, count: 0, type: Self.type)
        try header.validate()
        self = header
    }
    /// Accepts every value.
    public func validate() throws(ProtocolError) {}
}

/// Every message of protocol version 1 (docs/protocol.md has one entry per case).
public enum Message: Sendable, Equatable {
    /// Worker → coordinator: join, or re-join after a reconnect.
    case register(Register)
    /// Coordinator → worker: registration accepted.
    case registered(Registered)
    /// Coordinator → worker: registration refused.
    case rejected(Rejected)
    /// Both ways on the worker endpoint: liveness.
    case heartbeat(Heartbeat)
    /// Coordinator → worker: run a task.
    case assign(Assign)
    /// Coordinator → worker: stop a task.
    case stopTask(StopTask)
    /// Coordinator → worker: a training ring's generation.
    case ringFormed(RingFormed)
    /// Worker → coordinator: a rank kept an in-memory commit.
    case commit(Commit)
    /// Both ways: checkpoint files.
    case checkpoint(CheckpointTransfer)
    /// Coordinator → worker: a checkpoint is durably written.
    case checkpointSaved(CheckpointSaved)
    /// Worker → coordinator: how far a task is.
    case progress(ProgressReport)
    /// Worker → coordinator: a task ended well.
    case taskFinished(TaskFinished)
    /// Worker → coordinator: a task ended badly.
    case taskFailed(TaskFailed)
    /// Client → coordinator: submit a job spec.
    case submit(Submit)
    /// Coordinator → client: the new job's id.
    case submitted(Submitted)
    /// Client → coordinator: ask for jobs' states.
    case status(StatusRequest)
    /// Coordinator → client: jobs' states.
    case statusReply(StatusReply)
    /// Client → coordinator: ask for a job's log lines.
    case logs(LogsRequest)
    /// Coordinator → client: log lines.
    case logsReply(LogsReply)
    /// Client → coordinator: cancel a job.
    case cancel(CancelRequest)
    /// Coordinator → client: the job is cancelled.
    case cancelled(Cancelled)
    /// Client → coordinator: list the workers.
    case workers(WorkersRequest)
    /// Coordinator → client: the workers.
    case workersReply(WorkersReply)
    /// Client → coordinator: ask for a job's results.
    case results(ResultsRequest)
    /// Coordinator → client: result rows.
    case resultsReply(ResultsReply)
    /// Worker → coordinator: a ring operation failed.
    case ringBroken(RingBroken)
    /// Worker → coordinator: leaving at a commit.
    case leave(Leave)
    /// Worker → coordinator: a job log line.
    case log(JobLog)
    /// Client → coordinator: a job's events.
    case events(EventsRequest)
    /// Coordinator → client: events.
    case eventsReply(EventsReply)
    /// Client → coordinator: a job's checkpoints.
    case checkpoints(CheckpointsRequest)
    /// Coordinator → client: checkpoints.
    case checkpointsReply(CheckpointsReply)
    /// Worker → coordinator: rank 0's step hashes.
    case stepHashes(StepHashes)
    /// Client → coordinator: a job's step hashes.
    case hashes(HashesRequest)
    /// Coordinator → client: a job's step hashes.
    case hashesReply(HashesReply)
    /// A request could not be served.
    case error(ErrorReply)

    /// The body, whatever its type.
    public var body: any MessageBody {
        switch self {
        case let .register(b): b
        case let .registered(b): b
        case let .rejected(b): b
        case let .heartbeat(b): b
        case let .assign(b): b
        case let .stopTask(b): b
        case let .ringFormed(b): b
        case let .commit(b): b
        case let .checkpoint(b): b
        case let .checkpointSaved(b): b
        case let .progress(b): b
        case let .taskFinished(b): b
        case let .taskFailed(b): b
        case let .submit(b): b
        case let .submitted(b): b
        case let .status(b): b
        case let .statusReply(b): b
        case let .logs(b): b
        case let .logsReply(b): b
        case let .cancel(b): b
        case let .cancelled(b): b
        case let .workers(b): b
        case let .workersReply(b): b
        case let .results(b): b
        case let .resultsReply(b): b
        case let .ringBroken(b): b
        case let .leave(b): b
        case let .log(b): b
        case let .events(b): b
        case let .eventsReply(b): b
        case let .checkpoints(b): b
        case let .checkpointsReply(b): b
        case let .stepHashes(b): b
        case let .hashes(b): b
        case let .hashesReply(b): b
        case let .error(b): b
        }
    }

    /// The message's type, as its header names it.
    public var type: MessageType { Swift.type(of: body).type }
}

extension MessageType {
    /// Decodes this type's header from `decoder` and returns what turns it and the binary frames into a message.
    func pendingMessage(from decoder: any Decoder) throws -> PendingMessage {
        switch self {
        case .register: try .decoding(Register.self, from: decoder, Message.register)
        case .registered: try .decoding(Registered.self, from: decoder, Message.registered)
        case .rejected: try .decoding(Rejected.self, from: decoder, Message.rejected)
        case .heartbeat: try .decoding(Heartbeat.self, from: decoder, Message.heartbeat)
        case .assign: try .decoding(Assign.self, from: decoder, Message.assign)
        case .stopTask: try .decoding(StopTask.self, from: decoder, Message.stopTask)
        case .ringFormed: try .decoding(RingFormed.self, from: decoder, Message.ringFormed)
        case .commit: try .decoding(Commit.self, from: decoder, Message.commit)
        case .checkpoint: try .decoding(CheckpointTransfer.self, from: decoder, Message.checkpoint)
        case .checkpointSaved: try .decoding(CheckpointSaved.self, from: decoder, Message.checkpointSaved)
        case .progress: try .decoding(ProgressReport.self, from: decoder, Message.progress)
        case .taskFinished: try .decoding(TaskFinished.self, from: decoder, Message.taskFinished)
        case .taskFailed: try .decoding(TaskFailed.self, from: decoder, Message.taskFailed)
        case .submit: try .decoding(Submit.self, from: decoder, Message.submit)
        case .submitted: try .decoding(Submitted.self, from: decoder, Message.submitted)
        case .status: try .decoding(StatusRequest.self, from: decoder, Message.status)
        case .statusReply: try .decoding(StatusReply.self, from: decoder, Message.statusReply)
        case .logs: try .decoding(LogsRequest.self, from: decoder, Message.logs)
        case .logsReply: try .decoding(LogsReply.self, from: decoder, Message.logsReply)
        case .cancel: try .decoding(CancelRequest.self, from: decoder, Message.cancel)
        case .cancelled: try .decoding(Cancelled.self, from: decoder, Message.cancelled)
        case .workers: try .decoding(WorkersRequest.self, from: decoder, Message.workers)
        case .workersReply: try .decoding(WorkersReply.self, from: decoder, Message.workersReply)
        case .results: try .decoding(ResultsRequest.self, from: decoder, Message.results)
        case .resultsReply: try .decoding(ResultsReply.self, from: decoder, Message.resultsReply)
        case .ringBroken: try .decoding(RingBroken.self, from: decoder, Message.ringBroken)
        case .leave: try .decoding(Leave.self, from: decoder, Message.leave)
        case .log: try .decoding(JobLog.self, from: decoder, Message.log)
        case .events: try .decoding(EventsRequest.self, from: decoder, Message.events)
        case .eventsReply: try .decoding(EventsReply.self, from: decoder, Message.eventsReply)
        case .checkpoints: try .decoding(CheckpointsRequest.self, from: decoder, Message.checkpoints)
        case .checkpointsReply: try .decoding(CheckpointsReply.self, from: decoder, Message.checkpointsReply)
        case .stepHashes: try .decoding(StepHashes.self, from: decoder, Message.stepHashes)
        case .hashes: try .decoding(HashesRequest.self, from: decoder, Message.hashes)
        case .hashesReply: try .decoding(HashesReply.self, from: decoder, Message.hashesReply)
        case .error: try .decoding(ErrorReply.self, from: decoder, Message.error)
        }
    }
}

/// A decoded header waiting for its binary frames.
struct PendingMessage {
    let build: ([Data]) throws(ProtocolError) -> Message

    static func decoding<B: MessageBody>(
        _: B.Type, from decoder: any Decoder, _ wrap: @escaping (B) -> Message
    ) throws(ProtocolError) -> PendingMessage {
        let header: B.Header
        do {
            header = try B.Header(from: decoder)
        } catch let error as ProtocolError {
            throw error
        } catch let error as DecodingError {
            let (field, reason) = describe(error)
            throw .invalidField(type: B.type.rawValue, field: field, reason: reason)
        } catch {
            // Foundation's JSONDecoder throws its internal error, without the field's path, for a number that
            // does not fit its field (−1 for a UInt64, 1e300 for an Int).
            throw .invalidField(
                type: B.type.rawValue, field: unnamedField,
                reason: "a number does not fit its field (negative for an unsigned field, or out of range): \(error)")
        }
        return PendingMessage { frames throws(ProtocolError) in wrap(try B(header: header, binaryFrames: frames)) }
    }
}

/// The field path (`left.endpoint`, `jobs[2].state`) and a short reason for a decoding error.
func describe(_ error: DecodingError) -> (field: String, reason: String) {
    func path(_ keys: [any CodingKey]) -> String {
        var text = ""
        for key in keys {
            if let index = key.intValue, key.stringValue.hasPrefix("Index ") || key.stringValue == "\(index)" {
                text += "[\(index)]"
            } else {
                text += text.isEmpty ? key.stringValue : "." + key.stringValue
            }
        }
        return text
    }
    switch error {
    case let .keyNotFound(key, context):
        return (path(context.codingPath + [key]), "missing")
    case let .valueNotFound(type, context):
        return (path(context.codingPath), "null where a \(type) is required")
    case let .typeMismatch(type, context):
        return (path(context.codingPath), "expected a \(type)")
    case let .dataCorrupted(context):
        return (path(context.codingPath), context.debugDescription)
    @unknown default:
        return ("", "\(error)")
    }
}

/// The field path reported when the JSON decoder does not name the field.
let unnamedField = "(a number field)"

/// Throws `frameCountMismatch` unless exactly `count` binary frames followed the header.
func expectFrames(_ frames: [Data], count: Int, type: MessageType) throws(ProtocolError) {
    guard frames.count == count else {
        throw .frameCountMismatch(type: type.rawValue, expected: count, found: frames.count)
    }
}

/// Throws `invalidField` unless `condition` holds.
func require(
    _ condition: Bool, _ type: MessageType, _ field: @autoclosure () -> String, _ reason: @autoclosure () -> String
) throws(ProtocolError) {
    if !condition { throw .invalidField(type: type.rawValue, field: field(), reason: reason()) }
}
