import FluxProtocol
import FluxWire

/// One rank's view of a ring generation: who it is, where it listens, whom it sends to, and how traffic is
/// secured. A value: the coordinator's `ring_formed` (docs/protocol.md) carries everything in it.
///
/// Contract: every rank of a generation uses the same `job`, `generation`, `size` and `subChunkBytes`; rank r
/// binds `localEndpoint` and connects to rank (r + 1) mod `size`'s endpoint, `rightEndpoint`. A ring of one rank
/// has no peers, binds nothing and never touches the network.
public struct Ring: Sendable, Equatable {
    /// The job the ring serves; its 64-bit tag travels in every ring frame.
    public var job: JobID
    /// The generation: frames of any other generation are dropped and counted.
    public var generation: UInt64
    /// This rank, 0 ..< `size`.
    public var rank: Int
    /// Ranks in the ring, 1 ... `Ring.maximumSize`.
    public var size: Int
    /// Where this rank listens for its left neighbour (e.g. `tcp://10.0.0.5:7500`).
    public var localEndpoint: String
    /// Where the right neighbour, rank (rank + 1) mod size, listens.
    public var rightEndpoint: String
    /// CURVE (default in deployments, design §3) or plain TCP for a trusted private network.
    public var security: Security
    /// How long an operation may wait for its next frame (or for room to send) before it fails with
    /// `CollectiveError.peerTimeout`.
    public var timeout: Duration
    /// The largest payload of one ring frame, in bytes (a multiple of 4): chunks are split into sub-chunks of at
    /// most this size, so sending, receiving and adding overlap. (An int64 frame carries at least one element, 8
    /// bytes, even when this is 4.)
    public var subChunkBytes: Int

    /// The largest ring `RingCommunicator` supports.
    public static let maximumSize = 64
    /// The default `subChunkBytes`: 1 MiB (fewest CPU seconds per all-reduce among 512 KiB–4 MiB over ipc,
    /// docs/benchmarks.md).
    public static let defaultSubChunkBytes = 1024 * 1024

    /// The endpoint a rank should bind when every rank of its ring runs on the same host: a Unix domain socket
    /// (`ipc://`) in `directory`, named after the job, generation and rank.
    ///
    /// Same-host ranks exchange every byte through the kernel twice (send and receive copies) whichever transport
    /// they use, but a Unix stream socket skips TCP's per-segment work: raw ZeroMQ PUSH/PULL moves about twice as
    /// much over `ipc://` as over loopback TCP, and the ring all-reduce needs about a fifth fewer CPU seconds
    /// (docs/benchmarks.md). CURVE works the same over `ipc://`. Ranks on different hosts keep `tcp://`
    /// endpoints. The name stays within the 107 bytes of a socket path for any `directory` of up to 60 bytes.
    public static func sameHostEndpoint(
        job: JobID, generation: UInt64, rank: Int, directory: String = "/tmp"
    ) -> String {
        let tag = String(RingFrameHeader.jobTag(for: job), radix: 16)
        let base = directory.hasSuffix("/") ? String(directory.dropLast()) : directory
        return "ipc://\(base)/flux-ring-\(tag)-g\(generation)-r\(rank).sock"
    }

    /// A ring member's description.
    public init(
        job: JobID, generation: UInt64, rank: Int, size: Int, localEndpoint: String, rightEndpoint: String,
        security: Security, timeout: Duration = .seconds(10), subChunkBytes: Int = Ring.defaultSubChunkBytes
    ) {
        self.job = job
        self.generation = generation
        self.rank = rank
        self.size = size
        self.localEndpoint = localEndpoint
        self.rightEndpoint = rightEndpoint
        self.security = security
        self.timeout = timeout
        self.subChunkBytes = subChunkBytes
    }

    /// The rank this one receives from.
    public var left: Int { (rank + size - 1) % size }
    /// The rank this one sends to.
    public var right: Int { (rank + 1) % size }

    /// Every problem with the description, empty when it is usable.
    public var issues: [String] {
        var issues: [String] = []
        if size < 1 || size > Ring.maximumSize { issues.append("size \(size) is outside 1...\(Ring.maximumSize)") }
        if rank < 0 || rank >= max(size, 1) { issues.append("rank \(rank) is outside 0..<\(size)") }
        if subChunkBytes < 4 || subChunkBytes % 4 != 0 {
            issues.append("subChunkBytes \(subChunkBytes) is not a positive multiple of 4")
        }
        if timeout <= .zero { issues.append("timeout \(timeout) is not positive") }
        if size > 1 && (localEndpoint.isEmpty || rightEndpoint.isEmpty) {
            issues.append("a ring of \(size) ranks needs a local and a right endpoint")
        }
        return issues
    }

    /// How ring traffic is secured (design §3, `ring_security`).
    public enum Security: Sendable, Equatable {
        /// Plain TCP (`ring_security: none`), for trusted private networks: no encryption, no authentication.
        case none
        /// CURVE: this rank's key pair; it accepts only the left neighbour's public key on its endpoint and trusts only
        /// the right neighbour's key when it connects.
        case curve(keys: CurveKeyPair, leftPublicKey: CurveKey, rightPublicKey: CurveKey)

        /// The job spec's `ring_security` value this corresponds to.
        public var mode: RingSecurity {
            switch self {
            case .none: .none
            case .curve: .curve
            }
        }
    }
}

/// How an all-reduce combines the ranks' buffers.
public enum ReduceOperation: Sendable, Equatable {
    /// The element-wise sum.
    case sum
    /// The element-wise sum divided by the ring size (computed once, by the rank that owns each chunk, so every
    /// rank holds bit-identical results).
    case average
    /// The element-wise maximum (IEEE 754-2019 `maximum`): NaN when any rank holds NaN at that element (the
    /// canonical quiet NaN), and +0 above −0, so the result does not depend on the order of the ranks. For example,
    /// the ranks agree with it on a shared exponent per block before the exact int64 all-reduce.
    case max
}

/// What a `RingCommunicator` dropped instead of using, by reason.
public struct RingCounters: Sendable, Equatable {
    /// Messages that are not ring frames: wrong frame count, a header that does not decode, a payload of the
    /// wrong size.
    public var invalidFrames = 0
    /// Well-formed frames of another job or generation, or of an earlier operation of this one.
    public var staleFrames = 0
    /// Operations completed.
    public var operations = 0

    /// No drops yet.
    public init() {}
}
