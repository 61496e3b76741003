import Foundation
import FluxProtocol
import FluxWire

/// FluxProtocol messages over FluxWire sockets: the codec's frames as libzmq frames, both ways.
///
/// The daemons and the client share these few lines; the codec stays pure (no libzmq) and the transport stays
/// message-agnostic (style §A).
extension Socket {
    /// Sends a message (a DEALER's or REQ's peer gets it whole, or nothing).
    public func send(_ message: Message, codec: MessageCodec = MessageCodec(), timeout: Duration? = nil) throws {
        try send(codec.encode(message).map { Frame($0) }, timeout: timeout)
    }

    /// Sends a message to the peer a ROUTER knows by `routingID`.
    public func send(_ message: Message, to routingID: Frame, codec: MessageCodec = MessageCodec()) throws {
        try send([routingID] + codec.encode(message).map { Frame($0) }, timeout: .milliseconds(100))
    }
}

/// Decodes received frames, keeping what failed countable.
extension MessageCodec {
    /// The message in libzmq frames.
    public func decode(_ frames: [Frame]) throws(ProtocolError) -> Message {
        try decode(frames: frames.map { Data($0.bytes) })
    }
}
