import Foundation

/// Size limits a receiver enforces before parsing anything.
public struct ProtocolLimits: Sendable, Equatable {
    /// The most bytes all frames of one message may add up to (1 GiB: a FluxViT-S checkpoint with its AdamW state
    /// is about 270 MB).
    public var maxMessageBytes: Int
    /// The most bytes the header frame may have (1 MiB: headers carry job specs and listings, never tensors).
    public var maxHeaderBytes: Int
    /// The most binary frames after the header.
    public var maxFrames: Int

    /// Limits; the defaults suit the coordinator's worker endpoint.
    public init(maxMessageBytes: Int = 1 << 30, maxHeaderBytes: Int = 1 << 20, maxFrames: Int = 4096) {
        self.maxMessageBytes = maxMessageBytes
        self.maxHeaderBytes = maxHeaderBytes
        self.maxFrames = maxFrames
    }

    /// The defaults.
    public static let standard = ProtocolLimits()
}

/// Turns messages into multipart frames and back (docs/protocol.md): one compact JSON header frame
/// `{"v":1,"type":"…",…}` followed by the body's binary frames.
///
/// Pure Swift with no transport: FluxWire moves the frames. Decoding goes through each message type's own
/// `Codable` schema (never a general object deserializer), ignores unknown header fields, checks the limits
/// before parsing and the binary frames against the header after it, and throws only `ProtocolError`.
public struct MessageCodec: Sendable {
    /// The protocol version this build speaks, sent as `v`.
    public static let version = 1

    /// The limits `decode` enforces.
    public var limits: ProtocolLimits

    /// A codec with these limits.
    public init(limits: ProtocolLimits = .standard) { self.limits = limits }

    /// The frames of `message`: the header frame, then the body's binary frames (shared, not copied).
    public func encode(_ message: Message) -> [Data] {
        Self.frames(of: message.body)
    }

    /// The header frame of `message`: compact JSON, `v` then `type` then the body's fields in sorted order.
    public func encodeHeader(_ message: Message) -> Data {
        Self.headerFrame(of: message.body)
    }

    /// The message in `frames`, checked against the limits, the schema of its type and its binary frames.
    public func decode(frames: [Data]) throws(ProtocolError) -> Message {
        guard let head = frames.first else { throw .emptyMessage }
        guard frames.count - 1 <= limits.maxFrames else {
            throw .tooManyFrames(count: frames.count - 1, limit: limits.maxFrames)
        }
        guard head.count <= limits.maxHeaderBytes else {
            throw .headerTooLarge(bytes: head.count, limit: limits.maxHeaderBytes)
        }
        var total = 0
        for frame in frames {
            total += frame.count
            guard total <= limits.maxMessageBytes else {
                throw .messageTooLarge(bytes: frames.reduce(0) { $0 + $1.count }, limit: limits.maxMessageBytes)
            }
        }
        let pending: PendingMessage
        do {
            pending = try Self.decoder().decode(HeaderEnvelope.self, from: head).pending
        } catch let error as ProtocolError {
            throw error
        } catch let error as DecodingError {
            throw .malformedHeader(reason: Self.syntaxReason(error))
        } catch {
            throw .malformedHeader(reason: "\(error)")
        }
        return try pending.build(Array(frames.dropFirst()))
    }

    // MARK: - Internals

    static func frames<B: MessageBody>(of body: B) -> [Data] {
        [headerFrame(of: body)] + body.binaryFrames
    }

    static func headerFrame<B: MessageBody>(of body: B) -> Data {
        let fields: Data
        do {
            fields = try encoder().encode(body.header)
        } catch {
            // Our headers hold strings, integers, booleans and doubles (non-finite ones as strings): encoding
            // them cannot fail, so a failure is a programming error in a header type.
            preconditionFailure("encoding a '\(B.type.rawValue)' header failed: \(error)")
        }
        // Written by hand so `v` and `type` always lead (sortedKeys would put `type` after other fields).
        var frame = Data("{\"v\":\(version),\"type\":\"\(B.type.rawValue)\"".utf8)
        precondition(fields.first == UInt8(ascii: "{") && fields.last == UInt8(ascii: "}"), "header is not an object")
        if fields.count > 2 {
            frame.append(UInt8(ascii: ","))
            frame.append(fields.dropFirst())
        } else {
            frame.append(UInt8(ascii: "}"))
        }
        return frame
    }

    /// A fresh encoder per call: JSONEncoder is a class with mutable settings, and a new one costs little beside
    /// the encoding itself.
    static func encoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return encoder
    }

    static func decoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(
            positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return decoder
    }

    static func syntaxReason(_ error: DecodingError) -> String {
        switch error {
        case let .dataCorrupted(context):
            let underlying = (context.underlyingError as? CustomStringConvertible)?.description ?? ""
            return "not valid JSON (\(context.debugDescription)\(underlying.isEmpty ? "" : ": " + underlying))"
        default:
            return "not a JSON object (\(describe(error).reason))"
        }
    }
}

/// Reads `v` and `type`, then the body's fields with the schema of that type, in one parse of the header.
struct HeaderEnvelope: Decodable {
    let pending: PendingMessage

    enum Keys: String, CodingKey { case v, type }

    init(from decoder: any Decoder) throws {
        let container: KeyedDecodingContainer<Keys>
        do {
            container = try decoder.container(keyedBy: Keys.self)
        } catch {
            throw ProtocolError.malformedHeader(reason: "the header is JSON but not an object")
        }
        let version: Int
        do {
            version = try container.decode(Int.self, forKey: .v)
        } catch DecodingError.keyNotFound {
            throw ProtocolError.malformedHeader(reason: "no \"v\" field")
        } catch {
            throw ProtocolError.malformedHeader(reason: "\"v\" is not an integer")
        }
        guard version == MessageCodec.version else {
            throw ProtocolError.unsupportedVersion(found: version, supported: MessageCodec.version)
        }
        let typeName: String
        do {
            typeName = try container.decode(String.self, forKey: .type)
        } catch DecodingError.keyNotFound {
            throw ProtocolError.malformedHeader(reason: "no \"type\" field")
        } catch {
            throw ProtocolError.malformedHeader(reason: "\"type\" is not a string")
        }
        guard let type = MessageType(rawValue: typeName) else { throw ProtocolError.unknownType(typeName) }
        pending = try type.pendingMessage(from: decoder)
    }
}
