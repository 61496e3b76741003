// Step hashes and recoveries (issue 12): rank 0's SHA-256 of the parameters after each step, which prove a job's
// bits the same through any history of membership changes, and the client request that reads them back.

/// The SHA-256 of a job's parameters after one optimizer step.
public struct StepHash: Codable, Hashable, Sendable {
    /// The step (1 = after the first optimizer step).
    public var step: Int
    /// Lowercase hex, 64 characters (`ParameterStore.sha256()`).
    public var sha256: String
    /// When the rank finished the step, in milliseconds since the Unix epoch (the rank's clock).
    public var timeMS: Int64

    /// A step's hash.
    public init(step: Int, sha256: String, timeMS: Int64) {
        self.step = step
        self.sha256 = sha256
        self.timeMS = timeMS
    }

    enum CodingKeys: String, CodingKey { case step, sha256, timeMS = "time_ms" }

    /// Whether `text` is a SHA-256 as lowercase hex.
    public static func isDigest(_ text: String) -> Bool {
        text.utf8.count == 64 && text.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
    }
}

/// Worker → coordinator: rank 0's step hashes since its previous commit, sent just before that commit; after a
/// (re-)registration, every hash of the steps it committed in the job (a coordinator that was down missed some).
public struct StepHashes: HeaderOnlyBody {
    /// `step_hashes`.
    public static let type = MessageType.stepHashes
    /// The job.
    public var job: JobID
    /// The ring generation of the newest of them.
    public var generation: UInt64
    /// The hashes, by increasing step.
    public var hashes: [StepHash]

    /// A report.
    public init(job: JobID, generation: UInt64, hashes: [StepHash]) {
        self.job = job
        self.generation = generation
        self.hashes = hashes
    }

    /// Requires steps ≥ 1 and well-formed digests.
    public func validate() throws(ProtocolError) {
        for (i, hash) in hashes.enumerated() {
            try require(hash.step >= 1, Self.type, "hashes[\(i)].step", "\(hash.step) is below 1")
            try require(StepHash.isDigest(hash.sha256), Self.type, "hashes[\(i)].sha256",
                        "'\(hash.sha256.prefix(80))' is not 64 lowercase hex digits")
        }
    }
}

/// Client → coordinator: a job's step hashes. Reply: `hashes_reply`.
public struct HashesRequest: HeaderOnlyBody {
    /// `hashes`.
    public static let type = MessageType.hashes
    /// The job.
    public var job: JobID

    /// A request.
    public init(job: JobID) { self.job = job }
}

/// Coordinator → client: a job's stored step hashes, by step (the first reported for each step), and the steps
/// whose later reports disagreed with it.
public struct HashesReply: HeaderOnlyBody {
    /// `hashes_reply`.
    public static let type = MessageType.hashesReply
    /// The job.
    public var job: JobID
    /// One hash a step (the first reported), by increasing step.
    public var hashes: [StepHash]
    /// Steps reported again with another hash (a redone step that came out different).
    public var mismatches: [Int]

    /// A reply.
    public init(job: JobID, hashes: [StepHash], mismatches: [Int]) {
        self.job = job
        self.hashes = hashes
        self.mismatches = mismatches
    }
}
