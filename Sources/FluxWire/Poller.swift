import CZeroMQ
import Foundation

/// Waits on several sockets at once (`zmq_poll`). Like its sockets it belongs to one thread.
///
/// ```swift
/// var poller = Poller()
/// poller.add(router, for: .readable)
/// poller.add(control, for: .readable)
/// let ready = try poller.poll(timeout: .seconds(1))
/// if ready.isReadable(router) { … }
/// ```
public struct Poller {
    /// What to wait for.
    public struct Events: OptionSet, Sendable {
        /// The raw `ZMQ_POLL*` bits.
        public let rawValue: Int16
        /// Creates events from `ZMQ_POLL*` bits.
        public init(rawValue: Int16) { self.rawValue = rawValue }
        /// A message can be received.
        public static let readable = Events(rawValue: Int16(ZMQ_POLLIN))
        /// A message can be sent.
        public static let writable = Events(rawValue: Int16(ZMQ_POLLOUT))
    }

    /// Which sockets were ready after one `poll`.
    public struct Result {
        fileprivate let sockets: [Socket]
        fileprivate let revents: [Int16]

        /// Whether `socket` can receive.
        public func isReadable(_ socket: Socket) -> Bool { has(socket, .readable) }

        /// Whether `socket` can send.
        public func isWritable(_ socket: Socket) -> Bool { has(socket, .writable) }

        /// The readable sockets, in the order they were added.
        public var readable: [Socket] {
            sockets.indices.filter { revents[$0] & Events.readable.rawValue != 0 }.map { sockets[$0] }
        }

        /// Whether nothing was ready (the timeout passed).
        public var isEmpty: Bool { revents.allSatisfy { $0 == 0 } }

        private func has(_ socket: Socket, _ events: Events) -> Bool {
            guard let index = sockets.firstIndex(where: { $0 === socket }) else { return false }
            return revents[index] & events.rawValue != 0
        }
    }

    private var sockets: [Socket] = []
    private var items: [zmq_pollitem_t] = []

    /// An empty poller.
    public init() {}

    /// Watches `socket` for `events`; adding a socket again replaces its events.
    public mutating func add(_ socket: Socket, for events: Events = .readable) {
        if let index = sockets.firstIndex(where: { $0 === socket }) {
            items[index].events = events.rawValue
            return
        }
        sockets.append(socket)
        items.append(zmq_pollitem_t(socket: socket.handle, fd: 0, events: events.rawValue, revents: 0))
    }

    /// Stops watching `socket`.
    public mutating func remove(_ socket: Socket) {
        guard let index = sockets.firstIndex(where: { $0 === socket }) else { return }
        sockets.remove(at: index)
        items.remove(at: index)
    }

    /// Waits until at least one socket is ready or `timeout` passes (nil: no limit; `.zero`: just look).
    public mutating func poll(timeout: Duration?) throws -> Result {
        let deadline = timeout.map { ContinuousClock.now + $0 }
        for socket in sockets { precondition(!socket.isClosed, "a Poller holds a closed \(socket.type) socket") }
        while true {
            let wait = deadline.map { max(0, milliseconds(max(.zero, $0 - ContinuousClock.now))) } ?? -1
            for index in items.indices { items[index].revents = 0 }
            let rc = items.withUnsafeMutableBufferPointer { zmq_poll($0.baseAddress, Int32($0.count), wait) }
            if rc >= 0 { return Result(sockets: sockets, revents: items.map(\.revents)) }
            if zmq_errno() != EINTR { throw WireError.lastCall("zmq_poll", target: "\(sockets.count) sockets") }
        }
    }
}
