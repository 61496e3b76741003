import CZeroMQ
import Foundation

extension Socket {
    /// Makes this socket a CURVE server with `keys`, whose clients are checked by the ZAP handler
    /// (`Authenticator`) of this context under `domain`.
    ///
    /// Sets ZMQ_CURVE_SERVER, ZMQ_CURVE_SECRETKEY, ZMQ_ZAP_DOMAIN and ZMQ_ZAP_ENFORCE_DOMAIN. Without
    /// enforcement libzmq 4.3 *accepts every client* when no ZAP handler is bound; with it, it refuses them
    /// all. Debian's libzmq declares the option only under its draft API (the CZeroMQ shim defines it as 93)
    /// and the call's result is checked: if this libzmq rejects it, the socket is accepted only while an
    /// `Authenticator` runs in the context, and otherwise the call throws.
    /// Call before `bind`.
    public func makeCurveServer(keys: CurveKeyPair, domain: String = Authenticator.defaultDomain) throws {
        try requireCurve()
        precondition(!domain.isEmpty, "a CURVE server needs a ZAP domain, or libzmq skips authentication")
        try setInt(ZMQ_CURVE_SERVER, 1, name: "ZMQ_CURVE_SERVER")
        try setBytes(ZMQ_CURVE_SECRETKEY, keys.secretKey.bytes, name: "ZMQ_CURVE_SECRETKEY")
        try setBytes(ZMQ_ZAP_DOMAIN, Array(domain.utf8), name: "ZMQ_ZAP_DOMAIN")
        do {
            try setInt(ZMQ_ZAP_ENFORCE_DOMAIN, 1, name: "ZMQ_ZAP_ENFORCE_DOMAIN")
        } catch let WireError.callFailed(call, target, code, reason) where code == EINVAL {
            // The documented fallback: enforcement by construction, since the handler is already bound.
            guard context.runningAuthenticators.load(ordering: .acquiring) > 0 else {
                throw WireError.callFailed(call: call, target: target, errno: code, reason: reason
                    + "; this libzmq cannot enforce the ZAP domain, so start the Authenticator before making "
                    + "CURVE servers")
            }
        }
    }

    /// Makes this socket a CURVE client that presents `keys` and trusts only a server with `serverKey`.
    /// Call before `connect`.
    public func makeCurveClient(keys: CurveKeyPair, serverKey: CurveKey) throws {
        try requireCurve()
        try setBytes(ZMQ_CURVE_SERVERKEY, serverKey.bytes, name: "ZMQ_CURVE_SERVERKEY")
        try setBytes(ZMQ_CURVE_PUBLICKEY, keys.publicKey.bytes, name: "ZMQ_CURVE_PUBLICKEY")
        try setBytes(ZMQ_CURVE_SECRETKEY, keys.secretKey.bytes, name: "ZMQ_CURVE_SECRETKEY")
    }

    /// Connects to `endpoint` and waits until the ZMTP handshake (security included) has succeeded.
    ///
    /// It watches this socket's monitor, so a refusal is reported instead of libzmq's silent retries: on a
    /// refusal the connection is dropped (no more retries) and the call throws.
    /// Uses the socket's monitor while it runs (libzmq allows one per socket).
    ///
    /// - Throws: `WireError.authenticationFailed` when the server refuses our key, or one end uses CURVE and
    ///   the other not, or the server key is wrong; `WireError.handshakeFailed` for other handshake failures;
    ///   `WireError.timedOut` when nothing is decided within `timeout` (e.g. nobody listens).
    public func connect(_ endpoint: String, handshakeWithin timeout: Duration) throws {
        let monitor = try self.monitor(.handshakes)
        defer {
            stopMonitor()
            monitor.close()
        }
        try connect(endpoint)
        let deadline = ContinuousClock.now + timeout
        while true {
            let remaining = deadline - ContinuousClock.now
            guard remaining > .zero, let event = try monitor.next(timeout: remaining) else {
                try? disconnect(endpoint)
                throw WireError.timedOut(operation: "the handshake with \(endpoint)", after: timeout)
            }
            // Only this connection's events: the socket may hold others, whose handshakes say nothing about this one.
            guard event.endpoint == endpoint else { continue }
            if event.kind == .handshakeSucceeded { return }
            guard event.isHandshakeFailure else { continue }
            try? disconnect(endpoint)
            if event.isSecurityRefusal {
                throw WireError.authenticationFailed(endpoint: endpoint, reason: event.explanation)
            }
            throw WireError.handshakeFailed(endpoint: endpoint, reason: event.explanation)
        }
    }
}
