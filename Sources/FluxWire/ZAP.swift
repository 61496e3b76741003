import Foundation

/// A ZAP request (RFC 27) as libzmq sends it to `inproc://zeromq.zap.01`.
public struct ZAPRequest: Equatable, Sendable {
    /// Protocol version, "1.0".
    public var version: String
    /// Opaque id echoed in the reply.
    public var requestID: [UInt8]
    /// The server socket's ZAP domain.
    public var domain: String
    /// The peer's IP address.
    public var address: String
    /// The server socket's routing id for the connection.
    public var identity: [UInt8]
    /// "NULL", "PLAIN" or "CURVE".
    public var mechanism: String
    /// For CURVE, one credential: the client's 32-byte long-term public key.
    public var credentials: [[UInt8]]

    /// Parses the frames of a request; nil when there are fewer than six.
    public init?(frames: [Frame]) {
        guard frames.count >= 6 else { return nil }
        version = frames[0].string
        requestID = frames[1].bytes
        domain = frames[2].string
        address = frames[3].string
        identity = frames[4].bytes
        mechanism = frames[5].string
        credentials = frames.dropFirst(6).map(\.bytes)
    }

    /// The reply frames for `decision`: version, request id, status code, status text, user id, metadata.
    public func reply(_ decision: ZAPDecision) -> [Frame] {
        ["1.0", Frame(requestID), Frame(String(decision.status)), Frame(decision.text), Frame(decision.userID),
         Frame([UInt8]())]
    }
}

/// What the ZAP handler answers: 200 with a user id, or 400 with the reason it logs.
public struct ZAPDecision: Equatable, Sendable {
    /// 200 (allowed) or 400 (refused).
    public var status: Int
    /// The status text sent to libzmq (and logged for refusals).
    public var text: String
    /// For 200, the label of the allowed key (or its Z85 text); libzmq exposes it as the "User-Id" property.
    public var userID: String

    /// Whether the peer is allowed.
    public var isAllowed: Bool { status == 200 }

    /// Decides a request against the allowlists by domain: only CURVE clients whose key is listed for the
    /// request's domain get 200. Pure, so the policy is tested without sockets.
    public static func decide(_ request: ZAPRequest, allowlists: [String: Allowlist]) -> ZAPDecision {
        guard request.version == "1.0" else {
            return ZAPDecision(status: 400, text: "unsupported ZAP version '\(request.version)'", userID: "")
        }
        guard let allowlist = allowlists[request.domain] else {
            return ZAPDecision(status: 400, text: "no allowlist for domain '\(request.domain)'", userID: "")
        }
        guard request.mechanism == "CURVE" else {
            return ZAPDecision(status: 400, text: "\(request.mechanism) peer refused: CURVE required", userID: "")
        }
        guard request.credentials.count == 1, let key = try? CurveKey(bytes: request.credentials[0]) else {
            return ZAPDecision(status: 400, text: "malformed CURVE credentials", userID: "")
        }
        guard let label = allowlist.label(of: key) else {
            return ZAPDecision(status: 400, text: "key \(key.z85) is not in the allowlist", userID: "")
        }
        return ZAPDecision(status: 200, text: "OK", userID: label.isEmpty ? key.z85 : label)
    }
}

/// Counts refusals and decides when to log them: at most one line per `interval`, saying how many were
/// refused since the previous line and the latest reason (style §C: counted, rate-limited). Time is an
/// argument, so it is tested without sleeping.
public struct RefusalLog: Sendable {
    /// The shortest time between two lines.
    public let interval: Duration
    /// Refusals ever counted.
    public private(set) var total = 0
    /// Refusals not yet reported in a line.
    public private(set) var pending = 0
    private var latest = ""
    private var lastLine: ContinuousClock.Instant?

    /// A log that writes at most one line per `interval`.
    public init(interval: Duration = .seconds(1)) { self.interval = interval }

    /// Counts one refusal for `reason`; returns the line to log now, or nil if a line went out less than
    /// `interval` ago (the refusal is then reported by a later line).
    public mutating func refused(_ reason: String, at now: ContinuousClock.Instant) -> String? {
        total += 1
        pending += 1
        latest = reason
        return flush(at: now)
    }

    /// The line for refusals still pending, if `interval` has passed since the last line (or `force`).
    public mutating func flush(at now: ContinuousClock.Instant, force: Bool = false) -> String? {
        guard pending > 0 else { return nil }
        if !force, let lastLine, now - lastLine < interval { return nil }
        let line = "fluxwire: refused \(pending) connection attempt\(pending == 1 ? "" : "s")"
            + (lastLine == nil ? "" : " since the last report") + " (\(total) in all); latest: \(latest)"
        pending = 0
        lastLine = now
        return line
    }

    /// When pending refusals may next be reported; nil when none are pending.
    public var nextFlush: ContinuousClock.Instant? {
        guard pending > 0 else { return nil }
        return lastLine.map { $0 + interval }
    }
}
