import Foundation

/// The fixed 64-byte little-endian header in front of every ring data payload (docs/protocol.md, "Ring data
/// frames").
///
/// Ring traffic goes worker → worker on the data endpoints and carries raw little-endian chunks (fp32, or int64 for
/// exact reductions), so it has no JSON: the header names the operation (job, generation, operation sequence), the
/// element kind, where it is in the ring (step, chunk, sender rank) and which elements of the flat buffer the payload
/// holds. A sender writes the header into a small buffer (`encode(into:)`, or `encoded`) and sends the payload
/// zero-copy as a second frame; a receiver validates the header with `init(decoding:)` and the payload with
/// `validatePayload(byteCount:)`, or both at once with `decode(header:payload:)`. A payload may also follow the header
/// in the same frame (`decode(frame:)`).
///
/// Decoding reads bytes at fixed offsets; it never allocates and never goes through Foundation's JSON.
public struct RingFrameHeader: Hashable, Sendable {
    /// The collective operation a frame belongs to.
    public enum Operation: UInt8, Sendable, CaseIterable {
        /// Reduce-scatter phase of an all-reduce: the receiver adds the payload into its chunk.
        case reduceScatter = 1
        /// All-gather phase of an all-reduce: the receiver copies the payload into its chunk.
        case allGather = 2
        /// Broadcast from rank 0 (committed state after a re-form): the receiver copies and forwards.
        case broadcast = 3
        /// Barrier: no payload (element count 0).
        case barrier = 4
    }

    /// What the payload's elements are (byte 6, formerly reserved: fp32 is 0, so every version-1 frame written
    /// before int64 existed is still a valid fp32 frame).
    public enum ElementKind: UInt8, Sendable, CaseIterable {
        /// Little-endian IEEE 754 binary32.
        case float32 = 0
        /// Little-endian two's-complement 64-bit integers (exact all-reduce of fixed-point gradients).
        case int64 = 1
        /// Little-endian two's-complement 56-bit integers, 7 bytes each, summed modulo 2^56 (the packed fixed-point
        /// gradients of `reduction: exact`: 7 bytes an element keep its wire under twice fp32's).
        case int56 = 2

        /// Bytes per element.
        public var byteWidth: Int {
            switch self {
            case .float32: 4
            case .int64: 8
            case .int56: 7
            }
        }
    }

    /// The header's size in bytes.
    public static let byteCount = 64
    /// The first four bytes, `FXRG`, read as a little-endian UInt32.
    public static let magic: UInt32 = 0x4752_5846
    /// The header version this build writes and accepts.
    public static let version: UInt8 = 1

    /// The operation.
    public var operation: Operation
    /// What the payload's elements are; element offset and count are in elements of this kind.
    public var elementKind: ElementKind
    /// The job's tag: `jobTag(for:)` of its id.
    public var jobTag: UInt64
    /// The ring generation (`ring_formed`'s `generation`).
    public var generation: UInt64
    /// The operation's sequence number within the generation, counting up from 0 on every rank in step.
    public var sequence: UInt64
    /// The ring step within the operation (0 ..< 2(n−1) for an all-reduce).
    public var step: UInt32
    /// The chunk index (0 ..< n), or the sub-chunk's index for broadcast.
    public var chunk: UInt32
    /// The sender's rank.
    public var senderRank: UInt32
    /// The payload's first element in the flat buffer.
    public var elementOffset: UInt64
    /// The payload's number of elements (payload bytes = `elementKind.byteWidth` × this).
    public var elementCount: UInt64

    /// A header.
    public init(
        operation: Operation, elementKind: ElementKind = .float32, jobTag: UInt64, generation: UInt64,
        sequence: UInt64, step: UInt32, chunk: UInt32, senderRank: UInt32, elementOffset: UInt64, elementCount: UInt64
    ) {
        self.operation = operation
        self.elementKind = elementKind
        self.jobTag = jobTag
        self.generation = generation
        self.sequence = sequence
        self.step = step
        self.chunk = chunk
        self.senderRank = senderRank
        self.elementOffset = elementOffset
        self.elementCount = elementCount
    }

    /// The payload's size in bytes (`elementKind.byteWidth` × `elementCount`).
    public var payloadByteCount: Int { Int(elementCount) * elementKind.byteWidth }

    /// The 64-bit tag of a job id in ring headers: FNV-1a 64 of its UTF-8 bytes.
    ///
    /// Ring frames carry a fixed-size tag instead of the id. A worker runs one task at a time and checks the
    /// generation too, so the tag only has to tell a stray frame of another job apart; FNV-1a is fixed here as
    /// part of the wire format.
    public static func jobTag(for job: JobID) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in job.rawValue.utf8 {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01b3
        }
        return hash
    }

    /// Writes the 64 header bytes at the start of `buffer`, which must hold at least `byteCount` bytes.
    public func encode(into buffer: UnsafeMutableRawBufferPointer) {
        precondition(buffer.count >= Self.byteCount, "a ring header needs \(Self.byteCount) bytes, got \(buffer.count)")
        buffer.storeBytes(of: Self.magic.littleEndian, toByteOffset: 0, as: UInt32.self)
        buffer.storeBytes(of: Self.version, toByteOffset: 4, as: UInt8.self)
        buffer.storeBytes(of: operation.rawValue, toByteOffset: 5, as: UInt8.self)
        buffer.storeBytes(of: elementKind.rawValue, toByteOffset: 6, as: UInt8.self)
        buffer.storeBytes(of: UInt8(0), toByteOffset: 7, as: UInt8.self)
        buffer.storeBytes(of: jobTag.littleEndian, toByteOffset: 8, as: UInt64.self)
        buffer.storeBytes(of: generation.littleEndian, toByteOffset: 16, as: UInt64.self)
        buffer.storeBytes(of: sequence.littleEndian, toByteOffset: 24, as: UInt64.self)
        buffer.storeBytes(of: step.littleEndian, toByteOffset: 32, as: UInt32.self)
        buffer.storeBytes(of: chunk.littleEndian, toByteOffset: 36, as: UInt32.self)
        buffer.storeBytes(of: senderRank.littleEndian, toByteOffset: 40, as: UInt32.self)
        buffer.storeBytes(of: UInt32(0), toByteOffset: 44, as: UInt32.self)
        buffer.storeBytes(of: elementOffset.littleEndian, toByteOffset: 48, as: UInt64.self)
        buffer.storeBytes(of: elementCount.littleEndian, toByteOffset: 56, as: UInt64.self)
    }

    /// The 64 header bytes as a frame of their own (the payload goes as the next frame).
    public var encoded: Data {
        var data = Data(count: Self.byteCount)
        data.withUnsafeMutableBytes { encode(into: $0) }
        return data
    }

    /// Reads and validates the header at the start of `bytes` (magic, version, operation, element kind, reserved
    /// bytes, and counts that fit); bytes after the first 64 are not looked at.
    public init(decoding bytes: UnsafeRawBufferPointer) throws(ProtocolError) {
        guard bytes.count >= Self.byteCount else { throw .ringFrameTooShort(bytes: bytes.count) }
        func u64(_ offset: Int) -> UInt64 {
            UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
        }
        func u32(_ offset: Int) -> UInt32 {
            UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
        }
        let magic = u32(0)
        guard magic == Self.magic else { throw .ringBadMagic(found: magic) }
        let version = bytes[4]
        guard version == Self.version else { throw .ringUnsupportedVersion(found: version, supported: Self.version) }
        guard let operation = Operation(rawValue: bytes[5]) else { throw .ringUnknownOperation(bytes[5]) }
        guard let elementKind = ElementKind(rawValue: bytes[6]) else {
            throw .ringInvalidField(field: "element kind (byte 6)",
                                    reason: "\(bytes[6]) is unknown (known: 0 fp32, 1 int64, 2 int56)")
        }
        guard bytes[7] == 0 else { throw .ringInvalidField(field: "reserved (byte 7)", reason: "not zero") }
        guard u32(44) == 0 else { throw .ringInvalidField(field: "reserved (bytes 44–47)", reason: "not zero") }
        let offset = u64(48)
        let count = u64(56)
        // width × count must be an Int byte count, and offset + count must not wrap.
        guard count <= UInt64(Int.max / elementKind.byteWidth) else {
            throw .ringInvalidField(field: "element_count", reason: "\(count) elements exceed any buffer")
        }
        guard offset <= UInt64.max - count else {
            throw .ringInvalidField(field: "element_offset", reason: "\(offset) + \(count) elements overflow")
        }
        guard operation != .barrier || count == 0 else {
            throw .ringInvalidField(field: "element_count", reason: "\(count) on a barrier, which carries no payload")
        }
        self.init(
            operation: operation, elementKind: elementKind, jobTag: u64(8), generation: u64(16), sequence: u64(24),
            step: u32(32), chunk: u32(36), senderRank: u32(40), elementOffset: offset, elementCount: count)
    }

    /// Reads and validates the header at the start of `data`.
    public init(decoding data: Data) throws(ProtocolError) {
        let result: Result<RingFrameHeader, ProtocolError> = data.withUnsafeBytes { raw in
            do throws(ProtocolError) {
                return .success(try RingFrameHeader(decoding: raw))
            } catch {
                return .failure(error)
            }
        }
        self = try result.get()
    }

    /// Throws `ringPayloadMismatch` unless a payload of `byteCount` bytes is exactly `elementCount` elements of
    /// `elementKind`.
    public func validatePayload(byteCount: Int) throws(ProtocolError) {
        guard byteCount == payloadByteCount else {
            throw .ringPayloadMismatch(expectedBytes: payloadByteCount, found: byteCount)
        }
    }

    /// The header of a two-frame ring message: `header` must be exactly 64 bytes, `payload` match its count.
    public static func decode(header: Data, payload: Data) throws(ProtocolError) -> RingFrameHeader {
        guard header.count == byteCount else {
            throw header.count < byteCount
                ? .ringFrameTooShort(bytes: header.count)
                : .ringInvalidField(field: "header frame", reason: "\(header.count) bytes instead of \(byteCount)")
        }
        let decoded = try RingFrameHeader(decoding: header)
        try decoded.validatePayload(byteCount: payload.count)
        return decoded
    }

    /// The header and payload of a one-frame ring message (header then payload); the payload is a slice of
    /// `frame`, not a copy.
    public static func decode(frame: Data) throws(ProtocolError) -> (header: RingFrameHeader, payload: Data) {
        let decoded = try RingFrameHeader(decoding: frame)
        let payload = frame.dropFirst(byteCount)
        try decoded.validatePayload(byteCount: payload.count)
        return (decoded, payload)
    }
}
