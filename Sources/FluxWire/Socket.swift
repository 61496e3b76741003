import CZeroMQ
import Foundation

/// A libzmq socket with one owner.
///
/// Contract: libzmq sockets are not thread-safe, so `Socket` is deliberately not `Sendable`: the compiler
/// lets a socket move to another thread only when nothing else can still reach it (Swift 6 region
/// isolation), which is "one thread at a time, by construction". It is a class rather than a `~Copyable`
/// struct so that a `Poller` can hold several and closures can borrow one (docs/architecture.md, FluxWire).
/// The socket keeps its `ZMQContext` alive and is closed by `close()`, by `ZMQContext.withSocket`, or when
/// the last reference goes away; using a closed socket is a programmer error (a precondition).
public final class Socket {
    private let raw: UnsafeMutableRawPointer
    /// The pattern of this socket.
    public let type: SocketType
    /// The context that made it.
    public let context: ZMQContext
    /// Whether `close()` has run.
    public private(set) var isClosed = false

    /// Wraps a socket `context` just made; only `ZMQContext.makeSocket` calls this.
    init(raw: UnsafeMutableRawPointer, type: SocketType, context: ZMQContext) {
        self.raw = raw
        self.type = type
        self.context = context
    }

    deinit {
        if !isClosed { zmq_close(raw) }
    }

    /// The libzmq handle; traps when the socket is closed.
    var handle: UnsafeMutableRawPointer {
        precondition(!isClosed, "use of a closed \(type) socket")
        return raw
    }

    /// Closes the socket. Messages still queued are delivered for up to its linger. Idempotent.
    public func close() {
        guard !isClosed else { return }
        isClosed = true
        zmq_close(raw)
    }

    // MARK: Endpoints

    /// Binds to `endpoint` and returns the endpoint actually bound, which names the port libzmq chose for
    /// `tcp://127.0.0.1:*`.
    @discardableResult
    public func bind(_ endpoint: String) throws -> String {
        guard zmq_bind(handle, endpoint) == 0 else { throw WireError.lastCall("zmq_bind", target: endpoint) }
        return try lastEndpoint()
    }

    /// Connects to `endpoint`; libzmq connects (and reconnects) in the background.
    public func connect(_ endpoint: String) throws {
        guard zmq_connect(handle, endpoint) == 0 else { throw WireError.lastCall("zmq_connect", target: endpoint) }
    }

    /// Stops listening on `endpoint` (as returned by `bind`).
    public func unbind(_ endpoint: String) throws {
        guard zmq_unbind(handle, endpoint) == 0 else { throw WireError.lastCall("zmq_unbind", target: endpoint) }
    }

    /// Drops the connection to `endpoint`.
    public func disconnect(_ endpoint: String) throws {
        guard zmq_disconnect(handle, endpoint) == 0 else {
            throw WireError.lastCall("zmq_disconnect", target: endpoint)
        }
    }

    /// The endpoint of the last `bind` or `connect` (ZMQ_LAST_ENDPOINT).
    public func lastEndpoint() throws -> String {
        var buffer = [CChar](repeating: 0, count: 1024)
        var size = buffer.count
        guard zmq_getsockopt(handle, ZMQ_LAST_ENDPOINT, &buffer, &size) == 0 else {
            throw WireError.lastCall("zmq_getsockopt", target: "ZMQ_LAST_ENDPOINT")
        }
        return zString(buffer)
    }

    // MARK: Sending

    /// Sends `frames` as one multipart message, waiting up to `timeout` (nil: as long as it takes) for room.
    ///
    /// - Throws: `WireError.timedOut` when the deadline passes with nothing sent; `WireError.unroutable` from
    ///   a ROUTER with `routerMandatory` whose first frame names no connected peer.
    public func send(_ frames: [Frame], timeout: Duration? = nil) throws {
        precondition(!frames.isEmpty, "a message has at least one frame")
        _ = try sendParts(frames.count, timeout: timeout, nonBlocking: false) { index, message in
            try Self.initialize(&message, copying: frames[index].bytes)
        }
    }

    /// Sends `frames` if the socket can take them now; returns false (nothing sent) if it cannot.
    public func trySend(_ frames: [Frame]) throws -> Bool {
        precondition(!frames.isEmpty, "a message has at least one frame")
        return try sendParts(frames.count, timeout: nil, nonBlocking: true) { index, message in
            try Self.initialize(&message, copying: frames[index].bytes)
        }
    }

    /// Sends `header` frames followed by `buffer` as the last frame without copying the buffer: libzmq reads
    /// it in place and releases it when done (`zmq_msg_init_data` with a free callback that keeps the buffer
    /// alive until then). Worth it for large payloads; for a few bytes the callback costs more than a copy.
    public func sendZeroCopy(_ buffer: ZeroCopyBuffer, after header: [Frame] = [], timeout: Duration? = nil) throws {
        _ = try sendParts(header.count + 1, timeout: timeout, nonBlocking: false) { index, message in
            if index < header.count {
                try Self.initialize(&message, copying: header[index].bytes)
                return
            }
            let owner = Unmanaged.passRetained(buffer).toOpaque()
            let rc = zmq_msg_init_data(&message, buffer.base, buffer.count, { _, hint in
                // Runs on a libzmq I/O thread (or the sender's) once the bytes are no longer needed.
                if let hint { Unmanaged<ZeroCopyBuffer>.fromOpaque(hint).release() }
            }, owner)
            if rc != 0 {
                Unmanaged<ZeroCopyBuffer>.fromOpaque(owner).release()
                throw WireError.lastCall("zmq_msg_init_data", target: "a \(buffer.count)-byte buffer")
            }
        }
    }

    private static func initialize(_ message: inout zmq_msg_t, copying bytes: [UInt8]) throws {
        guard zmq_msg_init_size(&message, bytes.count) == 0 else {
            throw WireError.lastCall("zmq_msg_init_size", target: "a \(bytes.count)-byte frame")
        }
        if !bytes.isEmpty {
            bytes.withUnsafeBytes { zmq_msg_data(&message).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        }
    }

    /// Sends `count` parts built by `build`. The first part decides: once libzmq accepts it, the rest of a
    /// multipart message is accepted too (libzmq queues messages atomically), so only the first may wait.
    private func sendParts(
        _ count: Int, timeout: Duration?, nonBlocking: Bool, build: (Int, inout zmq_msg_t) throws -> Void
    ) throws -> Bool {
        let socket = handle
        let deadline = timeout.map { ContinuousClock.now + $0 }
        var message = zmq_msg_t()
        try build(0, &message)
        let firstFlags = count > 1 ? ZMQ_SNDMORE : 0
        while true {
            let waits = timeout == nil && !nonBlocking
            if zmq_msg_send(&message, socket, firstFlags | (waits ? 0 : ZMQ_DONTWAIT)) >= 0 { break }
            let code = zmq_errno()
            if code == EINTR { continue }
            if code == EAGAIN, !waits {
                if !nonBlocking, let deadline, try wait(for: Int16(ZMQ_POLLOUT), until: deadline) { continue }
                zmq_msg_close(&message)
                if nonBlocking { return false }
                throw WireError.timedOut(operation: "send on a \(type) socket", after: timeout ?? .zero)
            }
            zmq_msg_close(&message)
            if code == EHOSTUNREACH, type == .router {
                throw WireError.unroutable(routingID: count > 0 ? firstFrameBytes(build) : [])
            }
            throw WireError.lastCall("zmq_msg_send", target: "a \(type) socket")
        }
        for index in 1..<count {
            var part = zmq_msg_t()
            try build(index, &part)
            let flags = index < count - 1 ? ZMQ_SNDMORE : 0
            if retryingInterrupts({ zmq_msg_send(&part, socket, flags) }) < 0 {
                zmq_msg_close(&part)
                throw WireError.lastCall("zmq_msg_send", target: "part \(index) on a \(type) socket")
            }
        }
        return true
    }

    private func firstFrameBytes(_ build: (Int, inout zmq_msg_t) throws -> Void) -> [UInt8] {
        var message = zmq_msg_t()
        guard (try? build(0, &message)) != nil else { return [] }
        defer { zmq_msg_close(&message) }
        return Array(UnsafeRawBufferPointer(start: zmq_msg_data(&message), count: zmq_msg_size(&message)))
    }

    // MARK: Receiving

    /// Receives one multipart message, waiting up to `timeout` (nil: as long as it takes).
    ///
    /// - Throws: `WireError.timedOut` when nothing arrives in time.
    public func receive(timeout: Duration? = nil) throws -> [Frame] {
        guard let frames = try receiveParts(timeout: timeout, nonBlocking: false) else {
            throw WireError.timedOut(operation: "receive on a \(type) socket", after: timeout ?? .zero)
        }
        return frames
    }

    /// Receives one multipart message if one is queued; nil if none is.
    public func tryReceive() throws -> [Frame]? {
        try receiveParts(timeout: nil, nonBlocking: true)
    }

    private func receiveParts(timeout: Duration?, nonBlocking: Bool) throws -> [Frame]? {
        let socket = handle
        let deadline = timeout.map { ContinuousClock.now + $0 }
        let waits = timeout == nil && !nonBlocking
        var message = zmq_msg_t()
        zmq_msg_init(&message)
        defer { zmq_msg_close(&message) }
        while zmq_msg_recv(&message, socket, waits ? 0 : ZMQ_DONTWAIT) < 0 {
            let code = zmq_errno()
            if code == EINTR { continue }
            if code == EAGAIN, !waits {
                if nonBlocking { return nil }
                if let deadline, try wait(for: Int16(ZMQ_POLLIN), until: deadline) { continue }
                return nil
            }
            throw WireError.lastCall("zmq_msg_recv", target: "a \(type) socket")
        }
        var frames = [Self.frame(of: &message)]
        // The other parts of a multipart message arrive with the first, so these never wait.
        while zmq_msg_more(&message) == 1 {
            if retryingInterrupts({ zmq_msg_recv(&message, socket, 0) }) < 0 {
                throw WireError.lastCall("zmq_msg_recv", target: "part \(frames.count) on a \(type) socket")
            }
            frames.append(Self.frame(of: &message))
        }
        return frames
    }

    private static func frame(of message: inout zmq_msg_t) -> Frame {
        let size = zmq_msg_size(&message)
        guard size > 0, let data = zmq_msg_data(&message) else { return Frame([]) }
        return Frame([UInt8](unsafeUninitializedCapacity: size) { buffer, initialized in
            buffer.baseAddress!.update(from: data.assumingMemoryBound(to: UInt8.self), count: size)
            initialized = size
        })
    }

    /// Waits until the socket has `events` or `deadline` passes; returns whether the events came.
    private func wait(for events: Int16, until deadline: ContinuousClock.Instant) throws -> Bool {
        while true {
            let remaining = deadline - ContinuousClock.now
            if remaining <= .zero { return false }
            var item = zmq_pollitem_t(socket: handle, fd: 0, events: events, revents: 0)
            let rc = zmq_poll(&item, 1, milliseconds(remaining))
            if rc < 0 {
                if zmq_errno() == EINTR { continue }
                throw WireError.lastCall("zmq_poll", target: "a \(type) socket")
            }
            if rc > 0 {
                // A ROUTER always polls writable; back off briefly so a full peer does not make us spin.
                if events == Int16(ZMQ_POLLOUT), type == .router { Thread.sleep(forTimeInterval: 0.001) }
                return true
            }
        }
    }
}

@available(*, unavailable, message: "a Socket belongs to one thread; hand it over, or give each thread its own")
extension Socket: Sendable {}

/// `duration` in whole milliseconds, rounded up so a short wait never becomes a non-blocking poll.
func milliseconds(_ duration: Duration) -> Int {
    let (seconds, attoseconds) = duration.components
    return Int(seconds) * 1000 + Int((attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000)
}
