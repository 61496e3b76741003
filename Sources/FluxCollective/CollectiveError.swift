import FluxWire

/// Why a collective operation or a ring formation failed. After any of these the `RingCommunicator` is unusable:
/// close it and form the next generation.
public enum CollectiveError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Nothing arrived from (or nothing could be sent to) `rank` for `waited` during operation `sequence`.
    case peerTimeout(rank: Int, operation: String, sequence: UInt64, waited: Duration)
    /// The connection to neighbour `rank` closed during the operation and nothing more came (its process died: the
    /// kernel closes a killed process's sockets, and libzmq reports it at once).
    case peerDisconnected(rank: Int, operation: String, sequence: UInt64)
    /// The left neighbour `rank` sent a frame of this generation that does not fit the running operation: its
    /// buffer has another length, it runs another operation, or it is out of step.
    case protocolMismatch(rank: Int, operation: String, expected: String, found: String)
    /// The ring description is unusable (every issue listed).
    case invalidRing([String])
    /// The caller's arguments do not fit the ring (e.g. a broadcast root outside it).
    case invalidArgument(String)
    /// A libzmq call failed (`reason` is FluxWire's description, with libzmq's own reason).
    case transport(operation: String, reason: String)
    /// The communicator failed earlier or was closed.
    case unusable(reason: String)

    /// What failed, where, and how to fix it.
    public var description: String {
        switch self {
        case let .peerTimeout(rank, operation, sequence, waited):
            return "ring \(operation) #\(sequence) made no progress with rank \(rank) for \(waited): the peer is dead, "
                + "stalled or unreachable. Roll back to the last commit and form the next ring generation."
        case let .peerDisconnected(rank, operation, sequence):
            return "ring \(operation) #\(sequence): the connection to rank \(rank) closed: the peer's process is gone. "
                + "Roll back to the last commit and form the next ring generation."
        case let .protocolMismatch(rank, operation, expected, found):
            return "ring \(operation): rank \(rank) sent \(found) where \(expected) was expected. Every rank must "
                + "run the same operations in the same order on buffers of the same length."
        case let .invalidRing(issues):
            return "invalid ring description: " + issues.joined(separator: "; ")
                + ". Check the ring_formed message that produced it."
        case let .invalidArgument(reason):
            return "invalid collective call: \(reason)."
        case let .transport(operation, reason):
            return "ring \(operation) failed in the transport: \(reason)"
        case let .unusable(reason):
            return "the ring communicator is unusable (\(reason)). Close it and form the next generation."
        }
    }
}
