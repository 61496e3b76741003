import Foundation

// Messages on the coordinator's client endpoint (fluxctl and FluxClient). A client sends one request and
// waits for its reply (the reply type, or `error`) before sending the next.

/// Client → coordinator: submit a job. Reply: `submitted`, or `error` with `invalid_spec`.
public struct Submit: HeaderOnlyBody {
    /// `submit`.
    public static let type = MessageType.submit
    /// The job or sweep spec as YAML text; the coordinator validates it with FluxJobs.
    public var specYAML: String

    /// A submission.
    public init(specYAML: String) { self.specYAML = specYAML }

    enum CodingKeys: String, CodingKey { case specYAML = "spec_yaml" }
}

/// Coordinator → client: the job is queued under this id.
public struct Submitted: HeaderOnlyBody {
    /// `submitted`.
    public static let type = MessageType.submitted
    /// The new job's id.
    public var job: JobID

    /// A receipt.
    public init(job: JobID) { self.job = job }
}

/// Client → coordinator: the state of one job, or of every job when `job` is nil. Reply: `status_reply`.
public struct StatusRequest: HeaderOnlyBody {
    /// `status`.
    public static let type = MessageType.status
    /// The job, or nil for all jobs.
    public var job: JobID?

    /// A status request.
    public init(job: JobID? = nil) { self.job = job }
}

/// One job as `status_reply` reports it.
public struct JobStatus: Codable, Hashable, Sendable {
    /// The job's id.
    public var job: JobID
    /// The job's name from its spec.
    public var name: String
    /// Training or sweep.
    public var kind: JobKind
    /// Queued, running, succeeded, failed or cancelled.
    public var state: JobState
    /// The current ring generation of a training job; nil for sweeps and jobs not yet started.
    public var generation: UInt64?
    /// Workers currently running the job's tasks.
    public var workers: Int
    /// Units done: steps for training, cells for a sweep.
    public var done: Int
    /// Units in all; 0 when unknown.
    public var total: Int
    /// The latest notable event (`rank 2 lost; generation 3 formed`), if any.
    public var message: String?
    /// Recent mean training losses, oldest first (at most 100), for training jobs.
    public var losses: [Double]?
    /// Clips per second over the last reports, for training jobs.
    public var rate: Double?
    /// The step of the last commit the ranks reported.
    public var committedStep: Int?
    /// For a sweep: cells being computed now.
    public var running: Int?
    /// For a sweep: cells not started yet (`done + running + pending = total`).
    public var pending: Int?
    /// For a sweep: seconds to the end at the pace of the cells finished so far; nil before the first.
    public var etaSeconds: Double?
    /// For a training job with `reduction: exact`: why its parameters are no longer bit-reproducible (its workers
    /// differ in thread count or kernels); nil while they are.
    public var notReproducible: String?
    /// For a training job: how many recoveries it went through (a lost, added or leaving worker, a broken ring, a
    /// coordinator restart), and their durations' median and 95th percentile in seconds (from the disruption the
    /// coordinator saw to the first step of the ring formed after it); nil before the first.
    public var recoveries: Int?
    public var recoveryP50: Double?
    public var recoveryP95: Double?

    /// A job's status.
    public init(
        job: JobID, name: String, kind: JobKind, state: JobState, generation: UInt64? = nil, workers: Int,
        done: Int, total: Int, message: String? = nil, losses: [Double]? = nil, rate: Double? = nil,
        committedStep: Int? = nil, running: Int? = nil, pending: Int? = nil, etaSeconds: Double? = nil,
        notReproducible: String? = nil, recoveries: Int? = nil, recoveryP50: Double? = nil, recoveryP95: Double? = nil
    ) {
        self.job = job
        self.name = name
        self.kind = kind
        self.state = state
        self.generation = generation
        self.workers = workers
        self.done = done
        self.total = total
        self.message = message
        self.losses = losses
        self.rate = rate
        self.committedStep = committedStep
        self.running = running
        self.pending = pending
        self.etaSeconds = etaSeconds
        self.notReproducible = notReproducible
        self.recoveries = recoveries
        self.recoveryP50 = recoveryP50
        self.recoveryP95 = recoveryP95
    }

    enum CodingKeys: String, CodingKey {
        case job, name, kind, state, generation, workers, done, total, message, losses, rate, running, pending
        case committedStep = "committed_step", etaSeconds = "eta_seconds", notReproducible = "not_reproducible"
        case recoveries, recoveryP50 = "recovery_p50_seconds", recoveryP95 = "recovery_p95_seconds"
    }
}

/// Coordinator → client: the requested jobs' states, newest first.
public struct StatusReply: HeaderOnlyBody {
    /// `status_reply`.
    public static let type = MessageType.statusReply
    /// The jobs.
    public var jobs: [JobStatus]

    /// A status reply.
    public init(jobs: [JobStatus]) { self.jobs = jobs }
}

/// Client → coordinator: a job's log lines with ids after `after`. Reply: `logs_reply`.
public struct LogsRequest: HeaderOnlyBody {
    /// `logs`.
    public static let type = MessageType.logs
    /// The job.
    public var job: JobID
    /// Return lines with ids greater than this (0 for the first page; then the previous reply's `next`).
    public var after: UInt64
    /// At most this many lines (the coordinator may return fewer).
    public var limit: Int

    /// A log request.
    public init(job: JobID, after: UInt64 = 0, limit: Int = 1000) {
        self.job = job
        self.after = after
        self.limit = limit
    }

    /// Requires a positive limit.
    public func validate() throws(ProtocolError) {
        try require(limit >= 1, Self.type, "limit", "\(limit) is not positive")
    }
}

/// One line of a job's log.
public struct LogLine: Codable, Hashable, Sendable {
    /// The line's id, increasing within a job.
    public var id: UInt64
    /// When it was logged, in milliseconds since the Unix epoch.
    public var timeMS: Int64
    /// `debug`, `info`, `warning` or `error`.
    public var level: String
    /// The text.
    public var text: String

    /// A log line.
    public init(id: UInt64, timeMS: Int64, level: String, text: String) {
        self.id = id
        self.timeMS = timeMS
        self.level = level
        self.text = text
    }

    enum CodingKeys: String, CodingKey { case id, timeMS = "time_ms", level, text }
}

/// Coordinator → client: log lines in id order.
public struct LogsReply: HeaderOnlyBody {
    /// `logs_reply`.
    public static let type = MessageType.logsReply
    /// The job.
    public var job: JobID
    /// The lines.
    public var lines: [LogLine]
    /// The cursor for the next request's `after` (the last line's id, or the request's `after` when empty).
    public var next: UInt64

    /// A log reply.
    public init(job: JobID, lines: [LogLine], next: UInt64) {
        self.job = job
        self.lines = lines
        self.next = next
    }
}

/// Client → coordinator: cancel a job. Reply: `cancelled`, or `error` with `not_found` or `conflict`.
public struct CancelRequest: HeaderOnlyBody {
    /// `cancel`.
    public static let type = MessageType.cancel
    /// The job.
    public var job: JobID

    /// A cancellation.
    public init(job: JobID) { self.job = job }
}

/// Coordinator → client: the job is cancelled (its tasks are being stopped).
public struct Cancelled: HeaderOnlyBody {
    /// `cancelled`.
    public static let type = MessageType.cancelled
    /// The job.
    public var job: JobID
    /// Its state now (`cancelled`).
    public var state: JobState

    /// A confirmation.
    public init(job: JobID, state: JobState = .cancelled) {
        self.job = job
        self.state = state
    }
}

/// Client → coordinator: list the registered workers. Reply: `workers_reply`.
public struct WorkersRequest: HeaderOnlyBody {
    /// `workers`.
    public static let type = MessageType.workers

    /// A listing request.
    public init() {}
}

/// One worker as `workers_reply` reports it.
public struct WorkerInfo: Codable, Hashable, Sendable {
    /// Its stable id.
    public var workerID: WorkerID
    /// Its data endpoint.
    public var dataEndpoint: String
    /// Its cores.
    public var cores: Int
    /// Its Flux release.
    public var version: String
    /// Idle, busy or dead.
    public var state: WorkerState
    /// The task it runs, if any.
    public var task: TaskRef?
    /// Milliseconds since the coordinator last heard from it.
    public var lastSeenMS: Int64
    /// Its process id and host, as it registered them.
    public var pid: Int?
    public var host: String?

    /// A worker's entry.
    public init(
        workerID: WorkerID, dataEndpoint: String, cores: Int, version: String, state: WorkerState,
        task: TaskRef? = nil, lastSeenMS: Int64, pid: Int? = nil, host: String? = nil
    ) {
        self.workerID = workerID
        self.dataEndpoint = dataEndpoint
        self.cores = cores
        self.version = version
        self.state = state
        self.task = task
        self.lastSeenMS = lastSeenMS
        self.pid = pid
        self.host = host
    }

    enum CodingKeys: String, CodingKey {
        case workerID = "worker_id", dataEndpoint = "data_endpoint", cores, version, state, task
        case lastSeenMS = "last_seen_ms", pid, host
    }
}

/// Coordinator → client: the workers, ordered by id.
public struct WorkersReply: HeaderOnlyBody {
    /// `workers_reply`.
    public static let type = MessageType.workersReply
    /// The workers.
    public var workers: [WorkerInfo]

    /// A listing.
    public init(workers: [WorkerInfo]) { self.workers = workers }
}

/// Client → coordinator: a job's results. Reply: `results_reply`.
public struct ResultsRequest: HeaderOnlyBody {
    /// `results`.
    public static let type = MessageType.results
    /// The job.
    public var job: JobID

    /// A results request.
    public init(job: JobID) { self.job = job }
}

/// One row of results: a sweep cell (or a training job's final evaluation) and its metrics.
public struct ResultRow: Codable, Hashable, Sendable {
    /// What the row is about (`budget=1024 frames=8 size=224 method=flux view=center`, or `final`).
    public var cell: String
    /// Metrics by name (`accuracy`, `gflops`).
    public var metrics: [String: Double]

    /// A row.
    public init(cell: String, metrics: [String: Double]) {
        self.cell = cell
        self.metrics = metrics
    }
}

/// Coordinator → client: the job's result rows so far (finished cells only) and, for a sweep, the whole report as
/// JSON (FluxSweep's `SweepReport`) in one binary frame, since per-class accuracies of a large grid outgrow a header.
public struct ResultsReply: MessageBody {
    /// `results_reply`.
    public static let type = MessageType.resultsReply
    /// The job.
    public var job: JobID
    /// The rows.
    public var rows: [ResultRow]
    /// The report as UTF-8 JSON, for sweeps; nil for jobs without one.
    public var report: Data?

    /// A results reply.
    public init(job: JobID, rows: [ResultRow], report: Data? = nil) {
        self.job = job
        self.rows = rows
        self.report = report
    }

    /// The JSON header: the rows, and the size of the report frame when one follows.
    public struct Header: Codable, Sendable {
        /// The job.
        public var job: JobID
        /// The rows.
        public var rows: [ResultRow]
        /// Bytes of the one binary frame holding the report; nil or absent when none follows.
        public var reportBytes: Int?

        enum CodingKeys: String, CodingKey { case job, rows, reportBytes = "report_bytes" }
    }

    /// The header fields.
    public var header: Header { Header(job: job, rows: rows, reportBytes: report?.count) }

    /// The report, when there is one.
    public var binaryFrames: [Data] { report.map { [$0] } ?? [] }

    /// Checks that exactly the announced report frame follows.
    public init(header: Header, binaryFrames: [Data]) throws(ProtocolError) {
        try expectFrames(binaryFrames, count: header.reportBytes == nil ? 0 : 1, type: Self.type)
        if let bytes = header.reportBytes {
            try require(bytes >= 0, Self.type, "report_bytes", "\(bytes) is negative")
            guard binaryFrames[0].count == bytes else {
                throw .frameSizeMismatch(type: Self.type.rawValue, frame: 0, expected: bytes, found: binaryFrames[0].count)
            }
        }
        self.init(job: header.job, rows: header.rows, report: binaryFrames.first)
    }
}

/// Any direction, as a reply: the request could not be served.
public struct ErrorReply: HeaderOnlyBody {
    /// `error`.
    public static let type = MessageType.error
    /// What kind of failure.
    public var code: ErrorCode
    /// What failed, where, and how to fix it.
    public var message: String
    /// The `type` of the request this answers, when the receiver could read it.
    public var inReplyTo: String?

    /// An error reply.
    public init(code: ErrorCode, message: String, inReplyTo: String? = nil) {
        self.code = code
        self.message = message
        self.inReplyTo = inReplyTo
    }

    /// The reply a daemon sends for a request it cannot decode.
    public init(_ error: ProtocolError) {
        var inReplyTo: String?
        switch error {
        case let .unknownType(type): inReplyTo = type
        case let .invalidField(type, _, _), let .frameCountMismatch(type, _, _), let .frameSizeMismatch(type, _, _, _),
            let .tensorNotFloat32(type, _, _):
            inReplyTo = type
        default: break
        }
        self.init(code: error.replyCode, message: error.description, inReplyTo: inReplyTo)
    }

    enum CodingKeys: String, CodingKey { case code, message, inReplyTo = "in_reply_to" }
}
