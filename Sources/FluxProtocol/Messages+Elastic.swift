// Messages of elastic training and job diagnosis (design §4): a broken ring, a worker leaving, log lines, and the
// client requests that read a job's events and checkpoints. Field names travel snake_case.

/// Worker → coordinator: a ring operation of `generation` failed on this rank; the rank has rolled back to its
/// last commit and waits for the next generation.
public struct RingBroken: HeaderOnlyBody {
    /// `ring_broken`.
    public static let type = MessageType.ringBroken
    /// The job.
    public var job: JobID
    /// The generation whose operation failed.
    public var generation: UInt64
    /// The reporting rank.
    public var rank: Int
    /// The worker this rank suspects (its left neighbour it stopped hearing from), if it can tell.
    public var suspect: WorkerID?
    /// True when libzmq saw the suspect's connection close (a dead process), false for a silent peer (a timeout).
    public var disconnected: Bool
    /// What failed, for the job's events.
    public var reason: String

    /// A report.
    public init(
        job: JobID, generation: UInt64, rank: Int, suspect: WorkerID? = nil, disconnected: Bool, reason: String
    ) {
        self.job = job
        self.generation = generation
        self.rank = rank
        self.suspect = suspect
        self.disconnected = disconnected
        self.reason = reason
    }

    /// Requires a non-negative rank.
    public func validate() throws(ProtocolError) {
        try require(rank >= 0, Self.type, "rank", "\(rank) is negative")
    }
}

/// Worker → coordinator: this worker leaves the job's ring (it was sent SIGTERM) at its commit of `step`; it exits
/// once the next generation is formed without it.
public struct Leave: HeaderOnlyBody {
    /// `leave`.
    public static let type = MessageType.leave
    /// The job.
    public var job: JobID
    /// The commit at which it leaves.
    public var step: Int

    /// A leave notice.
    public init(job: JobID, step: Int) {
        self.job = job
        self.step = step
    }

    /// Requires a non-negative step.
    public func validate() throws(ProtocolError) {
        try require(step >= 0, Self.type, "step", "\(step) is negative")
    }
}

/// Worker → coordinator: a line for the job's log (`fluxctl logs`).
public struct JobLog: HeaderOnlyBody {
    /// `log`.
    public static let type = MessageType.log
    /// The job.
    public var job: JobID
    /// `debug`, `info`, `warning` or `error`.
    public var level: String
    /// The text, one line.
    public var text: String

    /// A log line.
    public init(job: JobID, level: String = "info", text: String) {
        self.job = job
        self.level = level
        self.text = text
    }
}

/// Client → coordinator: a job's events (state changes, generations, rollbacks, losses of workers). Reply:
/// `events_reply`.
public struct EventsRequest: HeaderOnlyBody {
    /// `events`.
    public static let type = MessageType.events
    /// The job.
    public var job: JobID

    /// An events request.
    public init(job: JobID) { self.job = job }
}

/// One event of a job.
public struct JobEvent: Codable, Hashable, Sendable {
    /// Increasing within the coordinator's store.
    public var id: UInt64
    /// When, in milliseconds since the Unix epoch.
    public var timeMS: Int64
    /// What kind (`submitted`, `started`, `generation`, `rollback`, `worker_lost`, `joined`, `left`, `waiting`,
    /// `checkpoint`, `succeeded`, `failed`, `cancelled`).
    public var kind: String
    /// The worker it concerns, if any.
    public var worker: WorkerID?
    /// A sentence for people.
    public var text: String

    /// An event.
    public init(id: UInt64, timeMS: Int64, kind: String, worker: WorkerID? = nil, text: String) {
        self.id = id
        self.timeMS = timeMS
        self.kind = kind
        self.worker = worker
        self.text = text
    }

    enum CodingKeys: String, CodingKey { case id, timeMS = "time_ms", kind, worker, text }
}

/// Coordinator → client: a job's events, oldest first.
public struct EventsReply: HeaderOnlyBody {
    /// `events_reply`.
    public static let type = MessageType.eventsReply
    /// The job.
    public var job: JobID
    /// The events.
    public var events: [JobEvent]

    /// A reply.
    public init(job: JobID, events: [JobEvent]) {
        self.job = job
        self.events = events
    }
}

/// Client → coordinator: a job's stored checkpoints. Reply: `checkpoints_reply`.
public struct CheckpointsRequest: HeaderOnlyBody {
    /// `checkpoints`.
    public static let type = MessageType.checkpoints
    /// The job.
    public var job: JobID

    /// A request.
    public init(job: JobID) { self.job = job }
}

/// One stored checkpoint.
public struct CheckpointInfo: Codable, Hashable, Sendable {
    /// Its step.
    public var step: Int
    /// The folder on the coordinator's host (it holds `model.safetensors`).
    public var path: String
    /// When it was written, in milliseconds since the Unix epoch.
    public var timeMS: Int64

    /// A checkpoint entry.
    public init(step: Int, path: String, timeMS: Int64) {
        self.step = step
        self.path = path
        self.timeMS = timeMS
    }

    enum CodingKeys: String, CodingKey { case step, path, timeMS = "time_ms" }
}

/// Coordinator → client: the job's checkpoints, oldest first.
public struct CheckpointsReply: HeaderOnlyBody {
    /// `checkpoints_reply`.
    public static let type = MessageType.checkpointsReply
    /// The job.
    public var job: JobID
    /// The checkpoints.
    public var checkpoints: [CheckpointInfo]

    /// A reply.
    public init(job: JobID, checkpoints: [CheckpointInfo]) {
        self.job = job
        self.checkpoints = checkpoints
    }
}
