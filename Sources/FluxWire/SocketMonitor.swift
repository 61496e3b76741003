import CZeroMQ
import Foundation

/// One event from a socket monitor (`zmq_socket_monitor`): what happened, libzmq's value and the endpoint.
public struct MonitorEvent: Sendable, Equatable, CustomStringConvertible {
    /// What happened.
    public enum Kind: Sendable, Equatable {
        /// A connection to a peer was made (connecting side).
        case connected
        /// A connect is waiting to be retried.
        case connectDelayed
        /// A connect was retried (`value`: the reconnect interval in ms).
        case connectRetried
        /// A bind succeeded.
        case listening
        /// A bind failed (`value`: errno).
        case bindFailed
        /// A connection from a peer was accepted (binding side).
        case accepted
        /// Accepting a connection failed (`value`: errno).
        case acceptFailed
        /// A connection's file descriptor was closed.
        case closed
        /// Closing a file descriptor failed.
        case closeFailed
        /// A connection was lost.
        case disconnected
        /// The monitor was stopped (`stopMonitor`, or the socket closed).
        case monitorStopped
        /// The handshake failed before a security mechanism said why (e.g. no ZAP handler with enforcement).
        case handshakeFailedNoDetail
        /// The ZMTP handshake (security included) completed.
        case handshakeSucceeded
        /// The handshake broke the protocol; `value` is a `ZMQ_PROTOCOL_ERROR_*` code.
        case handshakeFailedProtocol
        /// The server's authenticator refused us; `value` is the ZAP status code (e.g. 400).
        case handshakeFailedAuth
        /// An event this build does not name.
        case other(UInt16)
    }

    /// What happened.
    public var kind: Kind
    /// The event's value: a file descriptor, errno, reconnect interval, protocol error or ZAP status code.
    public var value: UInt32
    /// The endpoint it concerns.
    public var endpoint: String

    /// An event.
    public init(kind: Kind, value: UInt32, endpoint: String) {
        self.kind = kind
        self.value = value
        self.endpoint = endpoint
    }

    /// Parses the two frames a monitor sends: 6 bytes (event as u16, value as u32, native byte order) and the
    /// endpoint. Nil if the frames do not have that shape.
    public init?(frames: [Frame]) {
        guard frames.count == 2, frames[0].count == 6 else { return nil }
        let b = frames[0].bytes
        let event = UInt16(b[0]) | UInt16(b[1]) << 8
        value = UInt32(b[2]) | UInt32(b[3]) << 8 | UInt32(b[4]) << 16 | UInt32(b[5]) << 24
        endpoint = frames[1].string
        kind = Self.kind(of: Int32(event))
        if case .other = kind { kind = .other(event) }
    }

    private static func kind(of event: Int32) -> Kind {
        switch event {
        case ZMQ_EVENT_CONNECTED: .connected
        case ZMQ_EVENT_CONNECT_DELAYED: .connectDelayed
        case ZMQ_EVENT_CONNECT_RETRIED: .connectRetried
        case ZMQ_EVENT_LISTENING: .listening
        case ZMQ_EVENT_BIND_FAILED: .bindFailed
        case ZMQ_EVENT_ACCEPTED: .accepted
        case ZMQ_EVENT_ACCEPT_FAILED: .acceptFailed
        case ZMQ_EVENT_CLOSED: .closed
        case ZMQ_EVENT_CLOSE_FAILED: .closeFailed
        case ZMQ_EVENT_DISCONNECTED: .disconnected
        case ZMQ_EVENT_MONITOR_STOPPED: .monitorStopped
        case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL: .handshakeFailedNoDetail
        case ZMQ_EVENT_HANDSHAKE_SUCCEEDED: .handshakeSucceeded
        case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL: .handshakeFailedProtocol
        case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH: .handshakeFailedAuth
        default: .other(0)
        }
    }

    /// Whether this is one of the three handshake failures.
    public var isHandshakeFailure: Bool {
        kind == .handshakeFailedAuth || kind == .handshakeFailedProtocol || kind == .handshakeFailedNoDetail
    }

    /// Whether the failure means the two ends disagree on security (a refused key, plain against CURVE, a
    /// wrong server key) rather than a broken peer.
    public var isSecurityRefusal: Bool {
        switch kind {
        case .handshakeFailedAuth: return true
        case .handshakeFailedProtocol:
            return [ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH, ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC,
                    ZMQ_PROTOCOL_ERROR_ZMTP_KEY_EXCHANGE].contains(Int32(bitPattern: value))
        default: return false
        }
    }

    /// A sentence for logs and errors, e.g. "the server refused our key (ZAP status 400)".
    public var explanation: String {
        switch kind {
        case .handshakeFailedAuth: return "the server's authenticator refused this peer (ZAP status \(value))"
        case .handshakeFailedProtocol: return Self.protocolError(Int32(bitPattern: value))
        case .handshakeFailedNoDetail:
            let reason = String(cString: zmq_strerror(Int32(bitPattern: value)))
            return "the handshake failed without detail (errno \(value): \(reason)); "
                + "a CURVE server refuses everyone when its ZAP handler is not running"
        default: return "\(kind) (value \(value))"
        }
    }

    private static func protocolError(_ code: Int32) -> String {
        switch code {
        case ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH:
            "the two ends use different security mechanisms (one CURVE, the other plain)"
        case ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC:
            "a CURVE box did not decrypt (a wrong server public key, or a corrupted message)"
        case ZMQ_PROTOCOL_ERROR_ZMTP_KEY_EXCHANGE: "the CURVE key exchange failed"
        case ZMQ_PROTOCOL_ERROR_ZMTP_UNEXPECTED_COMMAND, ZMQ_PROTOCOL_ERROR_ZMTP_INVALID_SEQUENCE:
            "the peer sent handshake commands out of order"
        case ZMQ_PROTOCOL_ERROR_ZAP_UNSPECIFIED ... ZMQ_PROTOCOL_ERROR_ZAP_INVALID_METADATA:
            "the ZAP handler answered malformed (protocol error 0x\(String(code, radix: 16)))"
        default: "ZMTP protocol error 0x\(String(code, radix: 16))"
        }
    }

    /// "kind value endpoint".
    public var description: String { "\(kind) \(value) \(endpoint)" }
}

/// The receiving end of a socket monitor: a PAIR socket connected to the monitored socket's inproc endpoint.
///
/// Contract: one monitor per socket at a time (libzmq replaces an earlier one). The PAIR is connected before
/// `Socket.monitor` returns, so no event after that point is lost. Events arrive in order. Like a socket, a
/// monitor belongs to one thread.
public final class SocketMonitor {
    /// The PAIR socket the events arrive on (poll it with a `Poller` beside other sockets).
    public let socket: Socket
    /// The inproc endpoint the monitored socket publishes on.
    public let endpoint: String

    /// Connects a PAIR in `context` to a monitor endpoint that `Socket.startMonitor` opened (possibly in
    /// another thread).
    public init(context: ZMQContext, endpoint: String) throws {
        socket = try context.makeSocket(.pair)
        try socket.set(.linger(.zero))
        try socket.connect(endpoint)
        self.endpoint = endpoint
    }

    /// The next event, waiting up to `timeout` (nil: as long as it takes); nil when the time passed.
    public func next(timeout: Duration?) throws -> MonitorEvent? {
        let frames: [Frame]
        do {
            frames = try socket.receive(timeout: timeout)
        } catch WireError.timedOut {
            return nil
        }
        guard let event = MonitorEvent(frames: frames) else {
            throw WireError.handshakeFailed(endpoint: endpoint, reason: "malformed monitor event \(frames)")
        }
        return event
    }

    /// Closes the receiving end.
    public func close() { socket.close() }
}

/// Event masks for `Socket.monitor`.
public struct MonitorEvents: OptionSet, Sendable {
    /// The `ZMQ_EVENT_*` bits.
    public let rawValue: Int32
    /// Creates a mask from `ZMQ_EVENT_*` bits.
    public init(rawValue: Int32) { self.rawValue = rawValue }
    /// Connection life: connected, disconnected, accepted, closed, listening.
    public static let connections = MonitorEvents(rawValue: ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED
        | ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_CLOSED | ZMQ_EVENT_LISTENING)
    /// Handshake outcomes: succeeded and the three failures.
    public static let handshakes = MonitorEvents(rawValue: ZMQ_EVENT_HANDSHAKE_SUCCEEDED
        | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL)
    /// A connection of the socket ended (the peer closed it, or its process died and the kernel closed it).
    public static let disconnections = MonitorEvents(rawValue: ZMQ_EVENT_DISCONNECTED)
    /// Everything libzmq reports.
    public static let all = MonitorEvents(rawValue: ZMQ_EVENT_ALL)
}

extension Socket {
    /// Starts publishing `events` on a fresh inproc endpoint and returns it, for a `SocketMonitor` made in
    /// another thread (events are dropped until one connects).
    public func startMonitor(_ events: MonitorEvents = .all) throws -> String {
        let endpoint = context.uniqueInprocEndpoint("monitor")
        guard zmq_socket_monitor(handle, endpoint, events.rawValue) == 0 else {
            throw WireError.lastCall("zmq_socket_monitor", target: endpoint)
        }
        return endpoint
    }

    /// Stops publishing monitor events.
    public func stopMonitor() {
        _ = zmq_socket_monitor(handle, nil, 0)
    }

    /// Monitors this socket: the returned monitor receives `events` from now on.
    public func monitor(_ events: MonitorEvents = .all) throws -> SocketMonitor {
        try SocketMonitor(context: context, endpoint: startMonitor(events))
    }
}
