import CZeroMQ
import Foundation

/// Everything FluxWire reports: a failed libzmq call with its own reason, a deadline that passed, a refused
/// handshake, and bad key or allowlist files. Each `description` says what failed, where, and how to fix it.
public enum WireError: Error, CustomStringConvertible, Equatable, Sendable {
    /// A libzmq call failed; `target` is what it was called on (an endpoint, an option name) and `reason` is
    /// `zmq_strerror(errno)`.
    case callFailed(call: String, target: String, errno: Int32, reason: String)
    /// The context was shut down (`ZMQContext.close()`) while a socket was in use (`ETERM`).
    case contextTerminated(call: String)
    /// A send, receive or handshake did not complete before its deadline.
    case timedOut(operation: String, after: Duration)
    /// A ROUTER socket with `routerMandatory` was asked to send to a peer it does not know (`EHOSTUNREACH`).
    case unroutable(routingID: [UInt8])
    /// The peer at `endpoint` refused our credentials, or we and it use different security mechanisms.
    case authenticationFailed(endpoint: String, reason: String)
    /// The ZMTP handshake with `endpoint` failed for a reason other than authentication.
    case handshakeFailed(endpoint: String, reason: String)
    /// This libzmq was built without CURVE (`zmq_has("curve")` is 0).
    case curveUnavailable
    /// A CURVE key given as text is not 40 Z85 characters that decode to 32 bytes.
    case invalidKey(text: String, problem: String)
    /// A key file cannot be read or is malformed; `line` is 1-based, 0 when the whole file is at fault.
    case keyFile(path: String, line: Int, problem: String)
    /// Writing a key file would overwrite one that exists.
    case keyFileExists(path: String)
    /// An allowlist has malformed lines; every one is listed so they can be fixed together.
    case allowlist(path: String, issues: [AllowlistIssue])
    /// A key pair name is unusable as a file name.
    case invalidKeyName(String)
    /// A file could not be read or written.
    case io(path: String, operation: String, reason: String)
    /// The ZAP handler could not start (another one is bound in this context, or its thread failed).
    case authenticatorUnavailable(reason: String)

    /// A `callFailed` (or `contextTerminated`) built from the current `zmq_errno()`.
    static func lastCall(_ call: String, target: String) -> WireError {
        let code = zmq_errno()
        if code == ETERM { return .contextTerminated(call: call) }
        return .callFailed(call: call, target: target, errno: code, reason: String(cString: zmq_strerror(code)))
    }

    /// What failed, where, and how to fix it.
    public var description: String {
        switch self {
        case let .callFailed(call, target, code, reason):
            return "\(call) failed on \(target): \(reason) (errno \(code)). Check the endpoint or option value."
        case let .contextTerminated(call):
            return "\(call) was interrupted: the ZMQContext was closed. Close sockets before closing the context."
        case let .timedOut(operation, after):
            return "\(operation) did not complete within \(after). Check that the peer is running and reachable."
        case let .unroutable(routingID):
            return "no connected peer has routing id \(Frame(routingID).printable); it disconnected or never "
                + "connected. Drop the message or wait for the peer to reconnect."
        case let .authenticationFailed(endpoint, reason):
            return "authentication with \(endpoint) failed: \(reason). Check that this client's public key is in "
                + "the server's allowlist and that the client uses CURVE with the server's public key."
        case let .handshakeFailed(endpoint, reason):
            return "the ZMTP handshake with \(endpoint) failed: \(reason). Check that both ends run ZMTP 3 and "
                + "that the server's ZAP handler is running."
        case .curveUnavailable:
            return "this libzmq was built without CURVE security (zmq_has(\"curve\") is 0). Install a libzmq "
                + "built with libsodium or its TweetNaCl fallback (Debian: libzmq5)."
        case let .invalidKey(text, problem):
            return "'\(text)' is not a CURVE key: \(problem). A key is 40 Z85 characters (as written by "
                + "`fluxctl keys generate`)."
        case let .keyFile(path, line, problem):
            let place = line > 0 ? "\(path):\(line)" : path
            return "\(place): \(problem). Regenerate the pair with `fluxctl keys generate NAME --force` if it is "
                + "damaged."
        case let .keyFileExists(path):
            return "\(path) exists; refusing to overwrite a key. Pass --force to replace it (peers that allow "
                + "the old public key must then be given the new one)."
        case let .allowlist(path, issues):
            let lines = issues.map { "  \(path):\($0.line): \($0.problem)" }.joined(separator: "\n")
            return "allowlist \(path) has \(issues.count) malformed line(s):\n\(lines)\nEach line holds one "
                + "40-character Z85 public key (the content of a NAME.pub), optionally followed by a label; "
                + "lines starting with '#' and blank lines are ignored."
        case let .invalidKeyName(name):
            return "'\(name)' cannot name a key pair: use letters, digits, '.', '-' and '_', not starting with '.'."
        case let .io(path, operation, reason):
            return "cannot \(operation) \(path): \(reason). Check the path and its permissions."
        case let .authenticatorUnavailable(reason):
            return "the ZAP authenticator could not start: \(reason). Run one Authenticator per ZMQContext."
        }
    }
}

/// One malformed allowlist line.
public struct AllowlistIssue: Equatable, Sendable {
    /// 1-based line number.
    public var line: Int
    /// What is wrong with it.
    public var problem: String

    /// An issue on `line`.
    public init(line: Int, problem: String) {
        self.line = line
        self.problem = problem
    }
}

/// Retries a libzmq call while it fails with `EINTR` (a signal arrived), returning its final result.
@inline(__always)
func retryingInterrupts(_ call: () -> Int32) -> Int32 {
    while true {
        let rc = call()
        if rc != -1 || zmq_errno() != EINTR { return rc }
    }
}
