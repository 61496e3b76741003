import Foundation

// Messages on the coordinator's worker endpoint (design §1, §3, §4). Field names travel snake_case.

/// Worker → coordinator: join the cluster, or re-join after a reconnect or a coordinator restart.
public struct Register: HeaderOnlyBody {
    /// `register`.
    public static let type = MessageType.register
    /// The worker's stable id (kept in its state dir).
    public var workerID: WorkerID
    /// The worker's data endpoint for ring traffic, as peers reach it (`tcp://10.0.0.5:7410`).
    public var dataEndpoint: String
    /// The worker's CURVE public key (Z85, 40 characters); nil on an `--insecure` loopback cluster.
    public var publicKey: String?
    /// Cores the worker runs a task with.
    public var cores: Int
    /// The worker's Flux release (`0.3.0`), for logs and the `workers` listing.
    public var version: String
    /// The task the worker is still running when it re-registers, so a restarted coordinator can adopt it.
    public var runningTask: TaskRef?
    /// The worker's process id and host name, for `fluxctl workers` and diagnosis.
    public var pid: Int?
    public var host: String?
    /// The step of the running task's last commit, when re-registering with one.
    public var committedStep: Int?
    /// The code paths its kernels chose at run time (`flux avx2 · openblas Haswell`), for `reduction: exact`.
    public var kernels: String?

    /// A registration.
    public init(
        workerID: WorkerID, dataEndpoint: String, publicKey: String? = nil, cores: Int, version: String,
        runningTask: TaskRef? = nil, pid: Int? = nil, host: String? = nil, committedStep: Int? = nil,
        kernels: String? = nil
    ) {
        self.workerID = workerID
        self.dataEndpoint = dataEndpoint
        self.publicKey = publicKey
        self.cores = cores
        self.version = version
        self.runningTask = runningTask
        self.pid = pid
        self.host = host
        self.committedStep = committedStep
        self.kernels = kernels
    }

    enum CodingKeys: String, CodingKey {
        case workerID = "worker_id", dataEndpoint = "data_endpoint", publicKey = "public_key", cores, version
        case runningTask = "running_task", pid, host, committedStep = "committed_step", kernels
    }

    /// Requires a non-empty id and endpoint and at least one core.
    public func validate() throws(ProtocolError) {
        try require(!workerID.rawValue.isEmpty, Self.type, "worker_id", "empty")
        try require(!dataEndpoint.isEmpty, Self.type, "data_endpoint", "empty")
        try require(cores >= 1, Self.type, "cores", "\(cores) is not positive")
    }
}

/// A task within a job.
public struct TaskRef: Codable, Hashable, Sendable {
    /// The job.
    public var job: JobID
    /// The task within it.
    public var task: TaskID
    /// A reference.
    public init(job: JobID, task: TaskID) {
        self.job = job
        self.task = task
    }
}

/// Coordinator → worker: the registration is accepted; heartbeat at this interval.
public struct Registered: HeaderOnlyBody {
    /// `registered`.
    public static let type = MessageType.registered
    /// The worker's id, echoed.
    public var workerID: WorkerID
    /// How often each side sends a heartbeat, in milliseconds (1000 by default).
    public var heartbeatIntervalMS: Int
    /// After this many missed heartbeats a peer is dead (3 by default).
    public var heartbeatMisses: Int
    /// The coordinator's Flux release.
    public var coordinatorVersion: String

    /// An acceptance.
    public init(
        workerID: WorkerID, heartbeatIntervalMS: Int = 1000, heartbeatMisses: Int = 3, coordinatorVersion: String
    ) {
        self.workerID = workerID
        self.heartbeatIntervalMS = heartbeatIntervalMS
        self.heartbeatMisses = heartbeatMisses
        self.coordinatorVersion = coordinatorVersion
    }

    enum CodingKeys: String, CodingKey {
        case workerID = "worker_id", heartbeatIntervalMS = "heartbeat_interval_ms"
        case heartbeatMisses = "heartbeat_misses", coordinatorVersion = "coordinator_version"
    }

    /// Requires a positive interval and miss count.
    public func validate() throws(ProtocolError) {
        try require(heartbeatIntervalMS >= 1, Self.type, "heartbeat_interval_ms",
                    "\(heartbeatIntervalMS) is not positive")
        try require(heartbeatMisses >= 1, Self.type, "heartbeat_misses", "\(heartbeatMisses) is not positive")
    }
}

/// Coordinator → worker: the registration is refused (key not allowed, id taken, version mismatch).
public struct Rejected: HeaderOnlyBody {
    /// `rejected`.
    public static let type = MessageType.rejected
    /// Why, as a code.
    public var code: ErrorCode
    /// Why, for the worker's log: what and how to fix it.
    public var message: String

    /// A refusal.
    public init(code: ErrorCode, message: String) {
        self.code = code
        self.message = message
    }
}

/// Both ways on the worker endpoint: I am alive. A peer is dead after `heartbeat_misses` intervals of silence.
public struct Heartbeat: HeaderOnlyBody {
    /// `heartbeat`.
    public static let type = MessageType.heartbeat
    /// Counts up from 0 per sender and connection, for logs and loss diagnosis; receivers do not require order.
    public var sequence: UInt64

    /// A heartbeat.
    public init(sequence: UInt64) { self.sequence = sequence }
}

/// Which cell (or shard of a cell) of a sweep an evaluation task computes.
public struct EvaluationCell: Codable, Hashable, Sendable {
    /// The cell's index in the sweep's expansion (FluxJobs expands a sweep spec in one documented order).
    public var index: Int
    /// The dataset shard this task scores, in `0..<shardCount`.
    public var shard: Int
    /// How many shards the cell's dataset is split into.
    public var shardCount: Int

    /// A cell shard.
    public init(index: Int, shard: Int = 0, shardCount: Int = 1) {
        self.index = index
        self.shard = shard
        self.shardCount = shardCount
    }

    enum CodingKeys: String, CodingKey { case index, shard, shardCount = "shard_count" }
}

/// Coordinator → worker: run this task. A training rank then waits for `ring_formed`.
public struct Assign: HeaderOnlyBody {
    /// `assign`.
    public static let type = MessageType.assign
    /// The job.
    public var job: JobID
    /// The task within the job.
    public var task: TaskID
    /// A training rank or an evaluation cell.
    public var kind: TaskKind
    /// The job spec as validated YAML text (FluxJobs parses it; the protocol carries it opaque).
    public var specYAML: String
    /// For an evaluation cell: which one; nil for a training rank.
    public var cell: EvaluationCell?

    /// An assignment.
    public init(job: JobID, task: TaskID, kind: TaskKind, specYAML: String, cell: EvaluationCell? = nil) {
        self.job = job
        self.task = task
        self.kind = kind
        self.specYAML = specYAML
        self.cell = cell
    }

    enum CodingKeys: String, CodingKey { case job, task, kind, specYAML = "spec_yaml", cell }

    /// Requires a cell exactly for evaluation tasks, with its shard in range.
    public func validate() throws(ProtocolError) {
        switch (kind, cell) {
        case (.trainingRank, .some):
            throw .invalidField(type: Self.type.rawValue, field: "cell", reason: "present on a training_rank task")
        case (.evaluationCell, .none):
            throw .invalidField(type: Self.type.rawValue, field: "cell", reason: "missing on an evaluation_cell task")
        case let (.evaluationCell, .some(cell)):
            try require(cell.index >= 0, Self.type, "cell.index", "\(cell.index) is negative")
            try require(cell.shardCount >= 1, Self.type, "cell.shard_count", "\(cell.shardCount) is not positive")
            try require((0..<cell.shardCount).contains(cell.shard), Self.type, "cell.shard",
                        "\(cell.shard) is outside 0..<\(cell.shardCount)")
        case (.trainingRank, .none):
            break
        }
    }
}

/// Coordinator → worker: stop this task now (job cancelled, or the worker left the job's ring).
public struct StopTask: HeaderOnlyBody {
    /// `stop_task`.
    public static let type = MessageType.stopTask
    /// The job.
    public var job: JobID
    /// The task.
    public var task: TaskID
    /// Why, for the worker's log.
    public var reason: String

    /// A stop order.
    public init(job: JobID, task: TaskID, reason: String) {
        self.job = job
        self.task = task
        self.reason = reason
    }
}

/// A ring neighbour: where to connect and which key to accept.
public struct RingPeer: Codable, Hashable, Sendable {
    /// The neighbour's worker id.
    public var workerID: WorkerID
    /// The neighbour's data endpoint.
    public var endpoint: String
    /// The neighbour's CURVE public key (Z85); nil when `ring_security` is `none`.
    public var publicKey: String?

    /// A neighbour.
    public init(workerID: WorkerID, endpoint: String, publicKey: String? = nil) {
        self.workerID = workerID
        self.endpoint = endpoint
        self.publicKey = publicKey
    }

    enum CodingKeys: String, CodingKey { case workerID = "worker_id", endpoint, publicKey = "public_key" }
}

/// Coordinator → worker: generation `generation` of the job's ring is formed; this worker is `rank`.
///
/// Every ring operation of this generation carries (job, generation, operation sequence) in its
/// `RingFrameHeader`; frames of another generation are dropped.
public struct RingFormed: HeaderOnlyBody {
    /// `ring_formed`.
    public static let type = MessageType.ringFormed
    /// The job.
    public var job: JobID
    /// The generation, counting up from 1 per job; a new one replaces every older one.
    public var generation: UInt64
    /// This worker's rank in `0..<worldSize`.
    public var rank: Int
    /// The number of ranks.
    public var worldSize: Int
    /// The rank before this one (rank − 1 mod n): ring data arrives from it.
    public var left: RingPeer
    /// The rank after this one (rank + 1 mod n): ring data goes to it.
    public var right: RingPeer
    /// Whether ring traffic is encrypted.
    public var ringSecurity: RingSecurity
    /// The committed step every rank resumes from (rank 0 broadcasts the state to ranks that lack it).
    public var resumeStep: Int

    /// A ring announcement.
    public init(
        job: JobID, generation: UInt64, rank: Int, worldSize: Int, left: RingPeer, right: RingPeer,
        ringSecurity: RingSecurity = .curve, resumeStep: Int
    ) {
        self.job = job
        self.generation = generation
        self.rank = rank
        self.worldSize = worldSize
        self.left = left
        self.right = right
        self.ringSecurity = ringSecurity
        self.resumeStep = resumeStep
    }

    enum CodingKeys: String, CodingKey {
        case job, generation, rank, worldSize = "world_size", left, right, ringSecurity = "ring_security"
        case resumeStep = "resume_step"
    }

    /// Requires a rank inside the world, a non-negative step and, under CURVE, both neighbours' keys.
    public func validate() throws(ProtocolError) {
        try require(worldSize >= 1, Self.type, "world_size", "\(worldSize) is not positive")
        try require((0..<worldSize).contains(rank), Self.type, "rank", "\(rank) is outside 0..<\(worldSize)")
        try require(resumeStep >= 0, Self.type, "resume_step", "\(resumeStep) is negative")
        if ringSecurity == .curve {
            try require(left.publicKey != nil, Self.type, "left.public_key", "missing while ring_security is curve")
            try require(right.publicKey != nil, Self.type, "right.public_key", "missing while ring_security is curve")
        }
    }
}

/// Worker → coordinator: this rank kept an in-memory commit of `step` (joiners are admitted at commits).
public struct Commit: HeaderOnlyBody {
    /// `commit`.
    public static let type = MessageType.commit
    /// The job.
    public var job: JobID
    /// The ring generation the commit was made in.
    public var generation: UInt64
    /// The rank that committed.
    public var rank: Int
    /// The number of optimizer steps done when committing.
    public var step: Int

    /// A commit notice.
    public init(job: JobID, generation: UInt64, rank: Int, step: Int) {
        self.job = job
        self.generation = generation
        self.rank = rank
        self.step = step
    }

    /// Requires a non-negative rank and step.
    public func validate() throws(ProtocolError) {
        try require(rank >= 0, Self.type, "rank", "\(rank) is negative")
        try require(step >= 0, Self.type, "step", "\(step) is negative")
    }
}

/// One file of a checkpoint folder (`model.safetensors`, `optimizer.safetensors`, `state.json`).
public struct CheckpointFile: Equatable, Sendable {
    /// The file name: one path component, no `/`, `\`, NUL, `.` or `..` (the coordinator writes it to disk).
    public var name: String
    /// The file's bytes, sent as one binary frame.
    public var contents: Data

    /// A file.
    public init(name: String, contents: Data) {
        self.name = name
        self.contents = contents
    }
}

/// Both ways: a checkpoint folder's files. Rank 0 sends one every `checkpoint_every` steps for the coordinator
/// to write atomically; the coordinator sends one to a worker after `assign` to resume a job.
public struct CheckpointTransfer: MessageBody {
    /// `checkpoint`.
    public static let type = MessageType.checkpoint
    /// The job.
    public var job: JobID
    /// The ring generation that produced the state.
    public var generation: UInt64
    /// The number of optimizer steps in the state.
    public var step: Int
    /// The files, one binary frame each, in this order.
    public var files: [CheckpointFile]

    /// A checkpoint.
    public init(job: JobID, generation: UInt64, step: Int, files: [CheckpointFile]) {
        self.job = job
        self.generation = generation
        self.step = step
        self.files = files
    }

    /// The JSON header: metadata plus each file's name and size.
    public struct Header: Codable, Sendable {
        /// The job.
        public var job: JobID
        /// The generation.
        public var generation: UInt64
        /// The step.
        public var step: Int
        /// One entry per binary frame.
        public var files: [Entry]

        /// A file's name and size.
        public struct Entry: Codable, Sendable {
            /// The file name.
            public var name: String
            /// The file's size in bytes (its frame's length).
            public var bytes: Int
        }
    }

    /// The header fields.
    public var header: Header {
        Header(job: job, generation: generation, step: step,
               files: files.map { Header.Entry(name: $0.name, bytes: $0.contents.count) })
    }

    /// The files' contents.
    public var binaryFrames: [Data] { files.map(\.contents) }

    /// Checks one frame per file, each of its announced size, and safe, distinct file names.
    public init(header: Header, binaryFrames: [Data]) throws(ProtocolError) {
        try expectFrames(binaryFrames, count: header.files.count, type: Self.type)
        try require(header.step >= 0, Self.type, "step", "\(header.step) is negative")
        var seen = Set<String>()
        var files: [CheckpointFile] = []
        for (index, (entry, frame)) in zip(header.files, binaryFrames).enumerated() {
            let name = entry.name
            try require(isSafeFileName(name), Self.type, "files[\(index)].name",
                        "'\(name)' is not a plain file name (1–255 bytes, no '/', '\\', NUL, '.' or '..')")
            try require(seen.insert(name).inserted, Self.type, "files[\(index)].name", "'\(name)' appears twice")
            guard frame.count == entry.bytes else {
                throw .frameSizeMismatch(
                    type: Self.type.rawValue, frame: index, expected: entry.bytes, found: frame.count)
            }
            files.append(CheckpointFile(name: name, contents: frame))
        }
        self.init(job: header.job, generation: header.generation, step: header.step, files: files)
    }
}

/// A name the coordinator may create inside a checkpoint folder.
func isSafeFileName(_ name: String) -> Bool {
    let bytes = name.utf8
    return (1...255).contains(bytes.count) && name != "." && name != ".."
        && !bytes.contains(UInt8(ascii: "/")) && !bytes.contains(UInt8(ascii: "\\")) && !bytes.contains(0)
}

/// Coordinator → worker: the checkpoint of `step` is durably written.
public struct CheckpointSaved: HeaderOnlyBody {
    /// `checkpoint_saved`.
    public static let type = MessageType.checkpointSaved
    /// The job.
    public var job: JobID
    /// The step of the saved checkpoint.
    public var step: Int

    /// An acknowledgement.
    public init(job: JobID, step: Int) {
        self.job = job
        self.step = step
    }
}

/// Worker → coordinator: how far a task is (a training rank reports steps, an evaluation cell videos).
public struct ProgressReport: HeaderOnlyBody {
    /// `progress`.
    public static let type = MessageType.progress
    /// The job.
    public var job: JobID
    /// The task.
    public var task: TaskID
    /// Units done: optimizer steps for training, videos scored for a cell.
    public var done: Int
    /// Units in all; 0 when unknown.
    public var total: Int
    /// The latest training loss; nil for evaluation. Non-finite values travel as the strings "nan", "inf", "-inf".
    public var loss: Double?
    /// Units per second over the last report interval.
    public var rate: Double?
    /// Training: the ring generation of the step reported (the coordinator times recoveries by it).
    public var generation: UInt64?

    /// A progress report.
    public init(job: JobID, task: TaskID, done: Int, total: Int, loss: Double? = nil, rate: Double? = nil,
                generation: UInt64? = nil) {
        self.job = job
        self.task = task
        self.done = done
        self.total = total
        self.loss = loss
        self.rate = rate
        self.generation = generation
    }

    /// Requires non-negative counts.
    public func validate() throws(ProtocolError) {
        try require(done >= 0, Self.type, "done", "\(done) is negative")
        try require(total >= 0, Self.type, "total", "\(total) is negative")
    }
}

/// A named fp32 tensor travelling as one binary frame of little-endian fp32 scalars.
public struct NamedTensor: Equatable, Sendable {
    /// The tensor's name (`scores`).
    public var name: String
    /// Its shape; the frame holds the product of the entries × 4 bytes.
    public var shape: [Int]
    /// Its scalars as little-endian fp32 bytes, row-major.
    public var data: Data

    /// A tensor from raw little-endian fp32 bytes.
    public init(name: String, shape: [Int], data: Data) {
        self.name = name
        self.shape = shape
        self.data = data
    }

    /// A tensor from scalars; `scalars.count` must equal the product of `shape`.
    public init(name: String, shape: [Int], scalars: [Float]) {
        precondition(shape.reduce(1, *) == scalars.count, "shape \(shape) does not hold \(scalars.count) scalars")
        var data = Data(count: scalars.count * 4)
        data.withUnsafeMutableBytes { raw in
            for (i, value) in scalars.enumerated() {
                raw.storeBytes(of: value.bitPattern.littleEndian, toByteOffset: i * 4, as: UInt32.self)
            }
        }
        self.init(name: name, shape: shape, data: data)
    }

    /// The scalars, read from the little-endian bytes.
    public var scalars: [Float] {
        data.withUnsafeBytes { raw in
            (0..<raw.count / 4).map {
                Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self)))
            }
        }
    }
}

/// Worker → coordinator: a task ended well, with its metrics and result tensors (a cell's per-video scores).
public struct TaskFinished: MessageBody {
    /// `task_finished`.
    public static let type = MessageType.taskFinished
    /// The job.
    public var job: JobID
    /// The task.
    public var task: TaskID
    /// Scalar results by name (`accuracy`, `gflops`, `final_loss`).
    public var metrics: [String: Double]
    /// Result tensors, one fp32 binary frame each, in this order.
    public var tensors: [NamedTensor]
    /// For an evaluation cell: the videos it could not read (named in the sweep's report, never dropped silently).
    public var unreadable: [UnreadableVideoReport]?

    /// A finished task.
    public init(job: JobID, task: TaskID, metrics: [String: Double] = [:], tensors: [NamedTensor] = [],
                unreadable: [UnreadableVideoReport]? = nil) {
        self.job = job
        self.task = task
        self.metrics = metrics
        self.tensors = tensors
        self.unreadable = unreadable
    }

    /// The JSON header: metrics plus each tensor's name and shape.
    public struct Header: Codable, Sendable {
        /// The job.
        public var job: JobID
        /// The task.
        public var task: TaskID
        /// Scalar results.
        public var metrics: [String: Double]
        /// One entry per binary frame.
        public var tensors: [Entry]
        /// Videos an evaluation cell could not read.
        public var unreadable: [UnreadableVideoReport]?

        /// A tensor's name and shape.
        public struct Entry: Codable, Sendable {
            /// The name.
            public var name: String
            /// The shape.
            public var shape: [Int]
        }
    }

    /// The header fields.
    public var header: Header {
        Header(job: job, task: task, metrics: metrics,
               tensors: tensors.map { Header.Entry(name: $0.name, shape: $0.shape) }, unreadable: unreadable)
    }

    /// The tensors' bytes.
    public var binaryFrames: [Data] { tensors.map(\.data) }

    /// Checks one fp32 frame per tensor of exactly the bytes its shape needs.
    public init(header: Header, binaryFrames: [Data]) throws(ProtocolError) {
        try expectFrames(binaryFrames, count: header.tensors.count, type: Self.type)
        var tensors: [NamedTensor] = []
        for (index, (entry, frame)) in zip(header.tensors, binaryFrames).enumerated() {
            let bytes = try tensorBytes(shape: entry.shape, type: Self.type, field: "tensors[\(index)].shape")
            guard frame.count % 4 == 0 else {
                throw .tensorNotFloat32(type: Self.type.rawValue, frame: index, bytes: frame.count)
            }
            guard frame.count == bytes else {
                throw .frameSizeMismatch(type: Self.type.rawValue, frame: index, expected: bytes, found: frame.count)
            }
            tensors.append(NamedTensor(name: entry.name, shape: entry.shape, data: frame))
        }
        self.init(job: header.job, task: header.task, metrics: header.metrics, tensors: tensors,
                  unreadable: header.unreadable)
    }
}

/// A video an evaluation cell could not read: which list (`eval` or `choose_on`), where in it, and why.
public struct UnreadableVideoReport: Codable, Hashable, Sendable {
    /// `eval` or `choose_on`.
    public var split: String
    /// The video's index in that manifest.
    public var index: Int
    /// Its path as the manifest gives it.
    public var path: String
    /// The manifest line.
    public var line: Int
    /// What failed.
    public var reason: String

    /// An unreadable video.
    public init(split: String, index: Int, path: String, line: Int, reason: String) {
        self.split = split
        self.index = index
        self.path = path
        self.line = line
        self.reason = reason
    }
}

/// The byte count of an fp32 tensor of `shape`, or `invalidField` for negative or overflowing dimensions.
func tensorBytes(shape: [Int], type: MessageType, field: String) throws(ProtocolError) -> Int {
    var bytes = 4
    for dimension in shape {
        try require(dimension >= 0, type, field, "dimension \(dimension) is negative")
        let (product, overflow) = bytes.multipliedReportingOverflow(by: dimension)
        try require(!overflow, type, field, "\(shape) holds more bytes than an Int counts")
        bytes = product
    }
    return bytes
}

/// Worker → coordinator: a task ended badly.
public struct TaskFailed: HeaderOnlyBody {
    /// `task_failed`.
    public static let type = MessageType.taskFailed
    /// The job.
    public var job: JobID
    /// The task.
    public var task: TaskID
    /// What failed, where, and how to fix it (the error's description).
    public var reason: String
    /// Whether running the task again may succeed (a lost peer) or not (an unreadable dataset).
    public var retryable: Bool

    /// A failure report.
    public init(job: JobID, task: TaskID, reason: String, retryable: Bool) {
        self.job = job
        self.task = task
        self.reason = reason
        self.retryable = retryable
    }
}
