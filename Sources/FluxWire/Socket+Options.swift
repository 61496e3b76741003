import CZeroMQ
import Foundation

/// A socket option with a typed value. Durations are rounded up to whole milliseconds.
public enum SocketOption: Sendable {
    /// How long `close` keeps delivering queued messages; nil waits forever (libzmq's default, which can hang
    /// context termination), `.zero` drops them at once.
    case linger(Duration?)
    /// Outbound messages queued per peer before sends wait (ZMQ_SNDHWM); 0 means no limit.
    case sendHighWaterMark(Int)
    /// Inbound messages queued per peer before libzmq stops reading (ZMQ_RCVHWM); 0 means no limit.
    case receiveHighWaterMark(Int)
    /// ZMTP heartbeats: a PING every `interval`; the connection is dropped when no traffic arrives within
    /// `timeout`; `ttl` asks the peer to drop us after that long without a PING from us.
    case heartbeat(interval: Duration, timeout: Duration, ttl: Duration)
    /// First reconnect delay and, when `maximum` is larger, the cap of its exponential backoff.
    case reconnectInterval(Duration, maximum: Duration)
    /// A ROUTER fails sends to unknown peers (`WireError.unroutable`) instead of dropping them silently.
    case routerMandatory(Bool)
    /// The identity a DEALER presents to a ROUTER (1–255 bytes, not starting with a zero byte).
    case routingID([UInt8])
    /// Queue messages only to completed connections (ZMQ_IMMEDIATE).
    case immediate(Bool)
    /// Outbound connections use IPv6 too (ZMQ_IPV6).
    case ipv6(Bool)
    /// Largest inbound message accepted; larger ones drop the connection (ZMQ_MAXMSGSIZE); nil: no limit.
    case maximumMessageSize(Int?)

    /// The option's `ZMQ_*` name, for errors.
    var name: String {
        switch self {
        case .linger: "ZMQ_LINGER"
        case .sendHighWaterMark: "ZMQ_SNDHWM"
        case .receiveHighWaterMark: "ZMQ_RCVHWM"
        case .heartbeat: "ZMQ_HEARTBEAT_IVL/TIMEOUT/TTL"
        case .reconnectInterval: "ZMQ_RECONNECT_IVL/IVL_MAX"
        case .routerMandatory: "ZMQ_ROUTER_MANDATORY"
        case .routingID: "ZMQ_ROUTING_ID"
        case .immediate: "ZMQ_IMMEDIATE"
        case .ipv6: "ZMQ_IPV6"
        case .maximumMessageSize: "ZMQ_MAXMSGSIZE"
        }
    }
}

extension Socket {
    /// Sets one option.
    public func set(_ option: SocketOption) throws {
        switch option {
        case let .linger(duration):
            try setInt(ZMQ_LINGER, try duration.map { try cInt(milliseconds($0), option.name) } ?? -1, name: option.name)
        case let .sendHighWaterMark(count):
            try setInt(ZMQ_SNDHWM, try cInt(count, option.name), name: option.name)
        case let .receiveHighWaterMark(count):
            try setInt(ZMQ_RCVHWM, try cInt(count, option.name), name: option.name)
        case let .heartbeat(interval, timeout, ttl):
            try setInt(ZMQ_HEARTBEAT_IVL, try cInt(milliseconds(interval), "ZMQ_HEARTBEAT_IVL"), name: "ZMQ_HEARTBEAT_IVL")
            try setInt(ZMQ_HEARTBEAT_TIMEOUT, try cInt(milliseconds(timeout), "ZMQ_HEARTBEAT_TIMEOUT"), name: "ZMQ_HEARTBEAT_TIMEOUT")
            try setInt(ZMQ_HEARTBEAT_TTL, try cInt(milliseconds(ttl), "ZMQ_HEARTBEAT_TTL"), name: "ZMQ_HEARTBEAT_TTL")
        case let .reconnectInterval(interval, maximum):
            try setInt(ZMQ_RECONNECT_IVL, try cInt(milliseconds(interval), "ZMQ_RECONNECT_IVL"), name: "ZMQ_RECONNECT_IVL")
            try setInt(ZMQ_RECONNECT_IVL_MAX, try cInt(milliseconds(maximum), "ZMQ_RECONNECT_IVL_MAX"), name: "ZMQ_RECONNECT_IVL_MAX")
        case let .routerMandatory(on):
            try setInt(ZMQ_ROUTER_MANDATORY, on ? 1 : 0, name: option.name)
        case let .routingID(bytes):
            try setBytes(ZMQ_ROUTING_ID, bytes, name: option.name)
        case let .immediate(on):
            try setInt(ZMQ_IMMEDIATE, on ? 1 : 0, name: option.name)
        case let .ipv6(on):
            try setInt(ZMQ_IPV6, on ? 1 : 0, name: option.name)
        case let .maximumMessageSize(limit):
            var value = Int64(limit ?? -1)
            guard zmq_setsockopt(handle, ZMQ_MAXMSGSIZE, &value, MemoryLayout<Int64>.size) == 0 else {
                throw WireError.lastCall("zmq_setsockopt", target: "\(option.name) = \(value)")
            }
        }
    }

    /// Sets several options in order, stopping at the first that fails.
    public func set(_ options: [SocketOption]) throws {
        for option in options { try set(option) }
    }

    /// Reads an integer option (for tests and diagnostics), e.g. `ZMQ_LINGER`.
    public func intOption(_ option: Int32) throws -> Int32 {
        var value: Int32 = 0
        var size = MemoryLayout<Int32>.size
        guard zmq_getsockopt(handle, option, &value, &size) == 0 else {
            throw WireError.lastCall("zmq_getsockopt", target: "option \(option)")
        }
        return value
    }

    /// Sets an `int` option, with the option's name and value in the error.
    /// `value` as the C int libzmq takes; out of range (a duration over about 24.8 days, a count over 2³¹ − 1) is a
    /// typed error, not a trap.
    func cInt(_ value: Int, _ name: String) throws -> Int32 {
        guard let exact = Int32(exactly: value) else {
            throw WireError.callFailed(call: "zmq_setsockopt", target: "\(name) = \(value)", errno: EINVAL,
                                       reason: "out of range for a C int (at most \(Int32.max))")
        }
        return exact
    }

    func setInt(_ option: Int32, _ value: Int32, name: String) throws {
        var value = value
        guard zmq_setsockopt(handle, option, &value, MemoryLayout<Int32>.size) == 0 else {
            throw WireError.lastCall("zmq_setsockopt", target: "\(name) = \(value)")
        }
    }

    /// Sets a binary option (keys, routing ids, domains).
    func setBytes(_ option: Int32, _ bytes: [UInt8], name: String) throws {
        let rc = bytes.withUnsafeBytes { zmq_setsockopt(handle, option, $0.baseAddress, $0.count) }
        guard rc == 0 else { throw WireError.lastCall("zmq_setsockopt", target: "\(name) (\(bytes.count) bytes)") }
    }
}
