/// Everything that can be wrong with a message or a ring data frame on the wire.
///
/// Each case names what failed and where (the message type, the field path or the frame index); `description`
/// adds how to fix it. Daemons never die on these: they drop the message, count it and log at a limited rate,
/// and answer only `unknownType` with an `error` message (`replyCode` gives the code to send).
public enum ProtocolError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A message with no frames at all.
    case emptyMessage
    /// The message's frames add up to more bytes than the limit; rejected before parsing.
    case messageTooLarge(bytes: Int, limit: Int)
    /// The header frame alone is larger than the header limit; rejected before parsing.
    case headerTooLarge(bytes: Int, limit: Int)
    /// More binary frames than the limit; rejected before parsing.
    case tooManyFrames(count: Int, limit: Int)
    /// The header frame is not a JSON object with an integer `v` and a string `type`.
    case malformedHeader(reason: String)
    /// The header's `v` is not a version this build speaks.
    case unsupportedVersion(found: Int, supported: Int)
    /// The header's `type` names no message this version knows.
    case unknownType(String)
    /// A header field is missing, has the wrong JSON type or an invalid value; `field` is its path (`left.endpoint`).
    case invalidField(type: String, field: String, reason: String)
    /// The number of binary frames after the header differs from what the header announces.
    case frameCountMismatch(type: String, expected: Int, found: Int)
    /// A binary frame's length differs from what the header announces; `frame` counts binary frames from 0.
    case frameSizeMismatch(type: String, frame: Int, expected: Int, found: Int)
    /// A tensor frame whose length is not a multiple of 4 bytes (tensors are little-endian fp32).
    case tensorNotFloat32(type: String, frame: Int, bytes: Int)
    /// A ring data frame shorter than `RingFrameHeader.byteCount` where a header was expected.
    case ringFrameTooShort(bytes: Int)
    /// A ring data frame that does not start with the magic `FXRG`.
    case ringBadMagic(found: UInt32)
    /// A ring data frame of a header version this build does not speak.
    case ringUnsupportedVersion(found: UInt8, supported: UInt8)
    /// A ring data frame whose operation byte names no known operation.
    case ringUnknownOperation(UInt8)
    /// A ring data frame header field holding a value it may not (reserved bytes, counts that overflow, …).
    case ringInvalidField(field: String, reason: String)
    /// A ring payload whose byte count differs from the header's element count × element width (4 or 8).
    case ringPayloadMismatch(expectedBytes: Int, found: Int)

    /// The `error` code a daemon sends back for this error (it answers only `unknownType`; the rest are dropped).
    public var replyCode: ErrorCode {
        switch self {
        case .unknownType: .unknownType
        case .unsupportedVersion, .ringUnsupportedVersion: .unsupportedVersion
        case .messageTooLarge, .headerTooLarge, .tooManyFrames: .tooLarge
        default: .badRequest
        }
    }

    /// What failed, where, and how to fix it.
    public var description: String {
        switch self {
        case .emptyMessage:
            "empty message: a message needs at least a header frame. Send the frames `MessageCodec.encode` returns."
        case let .messageTooLarge(bytes, limit):
            "message of \(bytes) bytes exceeds the limit of \(limit) bytes. Raise the receiver's message limit "
                + "(ProtocolLimits.maxMessageBytes) or send smaller messages."
        case let .headerTooLarge(bytes, limit):
            "header frame of \(bytes) bytes exceeds the limit of \(limit) bytes. Large data belongs in binary frames; "
                + "for a larger job spec raise ProtocolLimits.maxHeaderBytes."
        case let .tooManyFrames(count, limit):
            "message has \(count) binary frames, more than the limit of \(limit). Raise ProtocolLimits.maxFrames "
                + "or send fewer, larger frames."
        case let .malformedHeader(reason):
            "malformed header frame: \(reason). The first frame must be a JSON object {\"v\":1,\"type\":…} "
                + "(docs/protocol.md); check that the peer is a Flux daemon or client."
        case let .unsupportedVersion(found, supported):
            "protocol version \(found) received, this build speaks version \(supported).\n"
                + "---> HINT: run the same Flux release on the coordinator, every worker and fluxctl "
                + "(compare `fluxctl --version` on each machine)."
        case let .unknownType(type):
            "unknown message type '\(type)' for protocol version \(MessageCodec.version). "
                + "The peer may be newer; run the same Flux release everywhere (docs/protocol.md lists the types)."
        case let .invalidField(type, field, reason):
            "'\(type)' message: field '\(field)': \(reason). Fix the sender; docs/protocol.md gives each field's type."
        case let .frameCountMismatch(type, expected, found):
            "'\(type)' message: the header announces \(expected) binary frames but \(found) follow. Frames may have "
                + "been split or merged; send one frame per announced tensor or file."
        case let .frameSizeMismatch(type, frame, expected, found):
            "'\(type)' message: binary frame \(frame) has \(found) bytes, the header announces \(expected). "
                + "The frame may be truncated or belong to another entry."
        case let .tensorNotFloat32(type, frame, bytes):
            "'\(type)' message: tensor frame \(frame) has \(bytes) bytes, not a multiple of 4; tensors travel as "
                + "little-endian fp32. Convert the tensor to fp32 before sending."
        case let .ringFrameTooShort(bytes):
            "ring data frame of \(bytes) bytes is shorter than the \(RingFrameHeader.byteCount)-byte ring header. "
                + "Only FluxCollective should send to a worker's data endpoint."
        case let .ringBadMagic(found):
            "ring data frame starts with 0x\(String(found, radix: 16)), not the magic 'FXRG'. Only FluxCollective "
                + "should send to a worker's data endpoint."
        case let .ringUnsupportedVersion(found, supported):
            "ring data frame of header version \(found), this build speaks \(supported).\n"
                + "---> HINT: run the same Flux release on every worker of the job."
        case let .ringUnknownOperation(raw):
            "ring data frame names unknown operation \(raw) (known: 1 reduce-scatter, 2 all-gather, 3 broadcast, "
                + "4 barrier). Run the same Flux release on every worker of the job."
        case let .ringInvalidField(field, reason):
            "ring data frame: field '\(field)': \(reason). The sender is out of step or not a Flux worker."
        case let .ringPayloadMismatch(expectedBytes, found):
            "ring payload of \(found) bytes, the header announces \(expectedBytes) (element count × element "
                + "width). The frame was truncated or paired with the wrong header."
        }
    }
}
