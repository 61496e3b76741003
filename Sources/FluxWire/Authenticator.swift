import CZeroMQ
import Foundation
import Synchronization

/// The ZAP handler (RFC 27) of one `ZMQContext`: a thread that owns a REP socket on
/// `inproc://zeromq.zap.01`, allows CURVE clients whose public key is on the allowlist of the server
/// socket's domain, and refuses everyone else (unknown keys, NULL and PLAIN peers).
///
/// Contract: `init` returns once the thread is bound and ready (style §E, as czmq's zactor), so a CURVE
/// server made afterwards is never left without a handler. Refusals are counted (`refusals`) and logged to
/// `log` at most once per `logInterval` with the count since the previous line. Handshakes that never reach
/// ZAP — a plain peer against a CURVE server fails on the mechanism — are counted too for sockets passed to
/// `watch(_:)`. `stop()` (or the last reference going away) ends the thread and closes its sockets.
public final class Authenticator: Sendable {
    /// The ZAP domain `Socket.makeCurveServer` uses by default.
    public static let defaultDomain = "flux"
    /// Where libzmq sends ZAP requests.
    public static let zapEndpoint = "inproc://zeromq.zap.01"

    private let context: ZMQContext
    private let state: State
    private let control: Mutex<Socket?>
    private let finished = DispatchSemaphore(value: 0)

    /// Shared between the caller and the handler thread.
    final class State: Sendable {
        /// Allowlists by ZAP domain, swapped whole by `setAllowlist`.
        let allowlists: Mutex<[String: Allowlist]>
        /// Refusals counted by the thread.
        let refusals = Atomic<Int>(0)
        /// Clients allowed by the thread.
        let accepted = Atomic<Int>(0)
        /// Where rate-limited lines go.
        let log: @Sendable (String) -> Void
        /// The shortest time between two log lines.
        let logInterval: Duration

        /// The state a new handler starts with.
        init(allowlists: [String: Allowlist], log: @escaping @Sendable (String) -> Void, logInterval: Duration) {
            self.allowlists = Mutex(allowlists)
            self.log = log
            self.logInterval = logInterval
        }
    }

    /// Starts the handler thread for `context` with one allowlist per ZAP domain.
    ///
    /// - Parameter log: receives each rate-limited refusal line (default: stderr).
    /// - Throws: `WireError.authenticatorUnavailable` if another handler is bound in this context.
    public init(
        context: ZMQContext, allowlists: [String: Allowlist], logInterval: Duration = .seconds(1),
        log: @escaping @Sendable (String) -> Void = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }
    ) throws {
        self.context = context
        let state = State(allowlists: allowlists, log: log, logInterval: logInterval)
        self.state = state
        let controlEndpoint = context.uniqueInprocEndpoint("zap-control")
        let ready = DispatchSemaphore(value: 0)
        let startError = Mutex<WireError?>(nil)
        let finished = self.finished
        let thread = Thread {
            Self.run(context: context, state: state, controlEndpoint: controlEndpoint) { error in
                startError.withLock { $0 = error }
                ready.signal()
            }
            finished.signal()
        }
        thread.name = "flux-zap"
        // The control pair first (inproc connects before the bind): if it fails, no thread has been started that
        // nothing could stop.
        let socket = try context.makeSocket(.pair)
        try socket.connect(controlEndpoint)
        thread.start()
        ready.wait()
        if let error = startError.withLock({ $0 }) {
            finished.wait()
            throw error
        }
        control = Mutex(socket)
        context.runningAuthenticators.add(1, ordering: .releasing)
    }

    /// Starts a handler for the default domain only.
    public convenience init(
        context: ZMQContext, allowlist: Allowlist, logInterval: Duration = .seconds(1),
        log: @escaping @Sendable (String) -> Void = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }
    ) throws {
        try self.init(context: context, allowlists: [Self.defaultDomain: allowlist], logInterval: logInterval, log: log)
    }

    deinit { stop() }

    /// Monitor endpoints of the watched sockets, by socket.
    private let watched = Mutex<[ObjectIdentifier: String]>([:])

    /// Refusals so far (ZAP 400 answers plus failed handshakes on watched sockets).
    public var refusals: Int { state.refusals.load(ordering: .acquiring) }

    /// Clients allowed so far.
    public var accepted: Int { state.accepted.load(ordering: .acquiring) }

    /// Replaces the allowlist of `domain`; the next handshake uses it, established connections stay.
    public func setAllowlist(_ allowlist: Allowlist, for domain: String = Authenticator.defaultDomain) {
        state.allowlists.withLock { $0[domain] = allowlist }
    }

    /// Re-reads the allowlist of `domain` from `path`. On a malformed file it throws and keeps the old list.
    public func reloadAllowlist(from path: String, for domain: String = Authenticator.defaultDomain) throws {
        setAllowlist(try Allowlist.load(path: path), for: domain)
    }

    /// Counts and logs failed handshakes of `socket` (a CURVE server) that never reach ZAP, such as plain
    /// peers. Call from the socket's owning thread; it uses the socket's monitor (one per socket).
    public func watch(_ socket: Socket) throws {
        let endpoint = try socket.startMonitor([.handshakes])
        let reply: [Frame]
        do { reply = try command(["WATCH", Frame(endpoint)]) } catch {
            socket.stopMonitor()
            throw error
        }
        guard reply.first?.string == "OK" else {
            socket.stopMonitor()
            throw WireError.authenticatorUnavailable(reason: reply.dropFirst().first?.string ?? "no reply")
        }
        watched.withLock { $0[ObjectIdentifier(socket)] = endpoint }
    }

    /// Stops watching `socket` (before closing it): its monitor ends and the handler forgets it. Idempotent.
    public func unwatch(_ socket: Socket) {
        guard let endpoint = watched.withLock({ $0.removeValue(forKey: ObjectIdentifier(socket)) }) else { return }
        socket.stopMonitor()
        _ = try? command(["UNWATCH", Frame(endpoint)])
    }

    /// Stops the handler thread and waits for it; later handshakes on CURVE servers of the context fail.
    /// Idempotent.
    public func stop() {
        let socket = control.withLock { socket -> Socket? in
            let taken = socket
            socket = nil
            return taken
        }
        guard let socket else { return }
        _ = try? socket.send(["STOP"], timeout: .seconds(5))
        _ = try? socket.receive(timeout: .seconds(5))
        socket.close()
        // The handler polls with a timeout only while a log line is pending; if STOP never reached it, closing
        // the context is what wakes it, so say so rather than hang silently.
        while finished.wait(timeout: .now() + 10) == .timedOut {
            state.log("flux-zap: the ZAP handler has not stopped after 10 s; waiting (closing the ZMQ context ends it)")
        }
        context.runningAuthenticators.subtract(1, ordering: .releasing)
    }

    private func command(_ frames: [Frame]) throws -> [Frame] {
        try control.withLock { socket in
            guard let socket else { throw WireError.authenticatorUnavailable(reason: "it was stopped") }
            try socket.send(frames, timeout: .seconds(5))
            return try socket.receive(timeout: .seconds(5))
        }
    }

    // MARK: The handler thread

    private static func run(
        context: ZMQContext, state: State, controlEndpoint: String, started: (WireError?) -> Void
    ) {
        let zap: Socket, control: Socket
        do {
            zap = try context.makeSocket(.rep)
            try zap.set(.linger(.zero))
            control = try context.makeSocket(.pair)
            try control.set(.linger(.zero))
            try control.bind(controlEndpoint)
            do {
                try zap.bind(zapEndpoint)
            } catch let error as WireError {
                throw WireError.authenticatorUnavailable(reason: "\(error)")
            }
        } catch {
            started(error as? WireError ?? .authenticatorUnavailable(reason: "\(error)"))
            return
        }
        started(nil)

        var log = RefusalLog(interval: state.logInterval)
        var monitors: [SocketMonitor] = []
        var poller = Poller()
        poller.add(zap)
        poller.add(control)
        func refuse(_ reason: String) {
            state.refusals.add(1, ordering: .releasing)
            if let line = log.refused(reason, at: .now) { state.log(line) }
        }
        loop: while true {
            let timeout = log.nextFlush.map { max(.zero, $0 - .now) }
            let ready: Poller.Result
            do {
                ready = try poller.poll(timeout: timeout)
            } catch {
                // A closed context is the normal way out; anything else would leave CURVE servers refusing every
                // client with no reason given, so it is logged.
                if case .contextTerminated = error as? WireError {} else {
                    state.log("flux-zap: polling failed (\(error)); the ZAP handler stops and CURVE handshakes fail")
                }
                break
            }
            if let line = log.flush(at: .now) { state.log(line) }
            if ready.isReadable(control), let frames = try? control.receive(timeout: .zero) {
                switch frames.first?.string {
                case "STOP":
                    if let line = log.flush(at: .now, force: true) { state.log(line) }
                    _ = try? control.send(["OK"], timeout: .seconds(1))
                    break loop
                case "UNWATCH" where frames.count == 2:
                    if let index = monitors.firstIndex(where: { $0.endpoint == frames[1].string }) {
                        poller.remove(monitors[index].socket)
                        monitors[index].close()
                        monitors.remove(at: index)
                    }
                    _ = try? control.send(["OK"], timeout: .seconds(1))
                case "WATCH" where frames.count == 2:
                    do {
                        let monitor = try SocketMonitor(context: context, endpoint: frames[1].string)
                        monitors.append(monitor)
                        poller.add(monitor.socket)
                        _ = try? control.send(["OK"], timeout: .seconds(1))
                    } catch {
                        _ = try? control.send(["ERROR", Frame("\(error)")], timeout: .seconds(1))
                    }
                default:
                    _ = try? control.send(["ERROR", "unknown command"], timeout: .seconds(1))
                }
            }
            if ready.isReadable(zap), let frames = try? zap.receive(timeout: .zero) {
                guard let request = ZAPRequest(frames: frames) else {
                    // A REP must answer every request; libzmq never sends short ones, but answer anyway.
                    let reply: [Frame] = ["1.0", "", "500", "malformed ZAP request", "", Frame([UInt8]())]
                    _ = try? zap.send(reply, timeout: .seconds(1))
                    continue
                }
                let decision = ZAPDecision.decide(request, allowlists: state.allowlists.withLock { $0 })
                // Count before replying: the client learns of the refusal only from the reply.
                if decision.isAllowed {
                    state.accepted.add(1, ordering: .releasing)
                } else {
                    refuse("\(request.mechanism) peer from \(request.address) (domain '\(request.domain)'): "
                        + decision.text)
                }
                do {
                    try zap.send(request.reply(decision), timeout: .seconds(1))
                } catch {
                    state.log("flux-zap: could not answer the ZAP request of \(request.address): \(error)")
                }
            }
            for monitor in monitors where ready.isReadable(monitor.socket) {
                while let event = try? monitor.next(timeout: .zero) {
                    // ZAP refusals are counted above; these never reached ZAP.
                    if event.kind == .handshakeFailedProtocol || event.kind == .handshakeFailedNoDetail {
                        refuse("handshake on \(event.endpoint) failed: \(event.explanation)")
                    }
                }
            }
        }
        for monitor in monitors { monitor.close() }
        zap.close()
        control.close()
    }
}
