import CZeroMQ
import Foundation
import Synchronization

/// The one libzmq context of a process (or of a test): it makes every `Socket` and owns the I/O threads.
///
/// Contract: a context is shared freely across threads (libzmq contexts are thread-safe), while each socket
/// it makes belongs to one thread at a time. Every socket keeps its context alive, so the context is
/// terminated (`zmq_ctx_term`) only after its last socket has been closed, when the last reference goes
/// away. `close()` is the explicit shutdown: blocking calls on its sockets in any thread return
/// `WireError.contextTerminated` at once, and no new socket can be made.
public final class ZMQContext: Sendable {
    /// The `void *` libzmq context; immutable after `init`, and libzmq's context calls are thread-safe.
    nonisolated(unsafe) let handle: UnsafeMutableRawPointer
    /// The linger every new socket starts with (see `init`).
    public let defaultLinger: Duration
    private let counter = Atomic<Int>(0)
    private let closed = Atomic<Bool>(false)
    /// How many `Authenticator`s are running in this context (0 or 1: each binds the one ZAP endpoint).
    let runningAuthenticators = Atomic<Int>(0)

    /// Makes a context with `ioThreads` I/O threads.
    ///
    /// - Parameter defaultLinger: how long a closed socket keeps trying to deliver queued messages. libzmq's
    ///   own default (forever) makes termination hang on an unreachable peer, so sockets start with this
    ///   bounded value instead; set `.linger` per socket to change it.
    public init(ioThreads: Int = 1, defaultLinger: Duration = .milliseconds(500)) throws {
        guard let handle = zmq_ctx_new() else { throw WireError.lastCall("zmq_ctx_new", target: "a new context") }
        if ioThreads != 1, zmq_ctx_set(handle, ZMQ_IO_THREADS, Int32(ioThreads)) != 0 {
            let error = WireError.lastCall("zmq_ctx_set(ZMQ_IO_THREADS)", target: "\(ioThreads)")
            zmq_ctx_term(handle)
            throw error
        }
        self.handle = handle
        self.defaultLinger = defaultLinger
    }

    deinit {
        // Every socket holds its context, so none is open here and zmq_ctx_term cannot block on one.
        _ = retryingInterrupts { zmq_ctx_term(handle) }
    }

    /// Makes a socket of `type`, owned by the caller's thread until it hands the socket over.
    public func makeSocket(_ type: SocketType) throws -> Socket {
        guard !closed.load(ordering: .acquiring) else { throw WireError.contextTerminated(call: "zmq_socket") }
        guard let raw = zmq_socket(handle, type.rawValue) else {
            throw WireError.lastCall("zmq_socket", target: "a \(type) socket")
        }
        let socket = Socket(raw: raw, type: type, context: self)
        try socket.set(.linger(defaultLinger))
        return socket
    }

    /// Runs `body` with a new socket of `type` and closes the socket when `body` returns or throws (style §E:
    /// scoped resources, as NIO's `executeThenClose`).
    public func withSocket<Result>(_ type: SocketType, _ body: (Socket) throws -> Result) throws -> Result {
        let socket = try makeSocket(type)
        defer { socket.close() }
        return try body(socket)
    }

    /// Shuts the context down: blocking calls on its sockets return `WireError.contextTerminated`, new sockets
    /// cannot be made. Idempotent. The context itself is terminated once its last socket is closed.
    public func close() {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        _ = zmq_ctx_shutdown(handle)
    }

    /// Whether `close()` has been called.
    public var isClosed: Bool { closed.load(ordering: .acquiring) }

    /// A fresh inproc endpoint name, unique within this context (`inproc://flux.<purpose>.<n>`).
    func uniqueInprocEndpoint(_ purpose: String) -> String {
        let n = counter.wrappingAdd(1, ordering: .relaxed).newValue
        return "inproc://flux.\(purpose).\(n)"
    }
}
