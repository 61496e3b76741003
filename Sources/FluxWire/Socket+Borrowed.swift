import CZeroMQ
import Foundation
import Synchronization

/// Counts the borrowed payloads (`Socket.trySend(header:borrowing:tracker:)`) that libzmq still holds.
///
/// Contract: each borrowed send adds one before libzmq sees the bytes, and libzmq's free callback (on an I/O
/// thread, or on the sender's) subtracts one once it will never read them again. Memory lent to libzmq may be
/// written or freed only when `outstanding` is back to zero (`waitUntilReleased`).
public final class SendTracker: Sendable {
    private let count = Atomic<Int>(0)

    /// A tracker with nothing outstanding.
    public init() {}

    /// Borrowed payloads libzmq has not released yet.
    public var outstanding: Int { count.load(ordering: .acquiring) }

    /// Waits until every borrowed payload is released or `deadline` passes; returns whether all were.
    /// Spins briefly, then sleeps in short steps: the release usually follows the last byte written to the kernel.
    public func waitUntilReleased(deadline: ContinuousClock.Instant) -> Bool {
        var spins = 0
        while count.load(ordering: .acquiring) > 0 {
            if ContinuousClock.now >= deadline { return false }
            spins += 1
            if spins < 200 { sched_yield() } else { usleep(50) }
        }
        return true
    }

    fileprivate func retain() { count.add(1, ordering: .relaxed) }

    fileprivate func release() { count.subtract(1, ordering: .releasing) }
}

/// The frames of one received message, borrowed from libzmq for the duration of a closure.
public struct BorrowedMessage {
    /// The first frames' bytes (at most `BorrowedMessage.maximumParts`), valid only inside the closure.
    public let parts: [UnsafeRawBufferPointer]
    /// How many frames the message had (more than `parts.count` when it had too many to keep).
    public let partCount: Int

    /// The most frames kept; further frames of a message are received and discarded (and counted in
    /// `partCount`).
    public static let maximumParts = 4
}

extension Socket {
    /// Sends `header` (copied) and `payload` (lent, not copied) as one two-frame message if the socket can take it
    /// now; returns false, with nothing sent and nothing lent, if it cannot.
    ///
    /// The payload's memory must stay valid and unchanged until `tracker.outstanding` is back to zero: libzmq
    /// reads it later on its I/O thread (the hot path of the ring all-reduce, docs/architecture.md).
    public func trySend(
        header: UnsafeRawBufferPointer, borrowing payload: UnsafeRawBufferPointer, tracker: SendTracker
    ) throws -> Bool {
        let socket = handle
        var first = zmq_msg_t()
        guard zmq_msg_init_size(&first, header.count) == 0 else {
            throw WireError.lastCall("zmq_msg_init_size", target: "a \(header.count)-byte header frame")
        }
        if header.count > 0 { zmq_msg_data(&first).copyMemory(from: header.baseAddress!, byteCount: header.count) }
        while zmq_msg_send(&first, socket, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 {
            let code = zmq_errno()
            if code == EINTR { continue }
            zmq_msg_close(&first)
            if code == EAGAIN { return false }
            throw WireError.lastCall("zmq_msg_send", target: "a header frame on a \(type) socket")
        }
        // libzmq queues a multipart message atomically: once the first part is in, the second never waits.
        var second = zmq_msg_t()
        if payload.count == 0 {
            zmq_msg_init(&second)
        } else {
            tracker.retain()
            let hint = Unmanaged.passRetained(tracker).toOpaque()
            let base = UnsafeMutableRawPointer(mutating: payload.baseAddress!)
            let rc = zmq_msg_init_data(&second, base, payload.count, {
                _, hint in
                if let hint {
                    let tracker = Unmanaged<SendTracker>.fromOpaque(hint)
                    tracker.takeUnretainedValue().release()
                    tracker.release()
                }
            }, hint)
            if rc != 0 {
                tracker.release()
                Unmanaged<SendTracker>.fromOpaque(hint).release()
                throw WireError.lastCall("zmq_msg_init_data", target: "a \(payload.count)-byte payload")
            }
        }
        if retryingInterrupts({ zmq_msg_send(&second, socket, 0) }) < 0 {
            zmq_msg_close(&second)  // runs the free callback: the payload is no longer lent
            throw WireError.lastCall("zmq_msg_send", target: "a payload frame on a \(type) socket")
        }
        return true
    }

    /// Sends `header` alone (one frame, copied) if the socket can take it now; returns false if it cannot.
    public func trySend(header: UnsafeRawBufferPointer) throws -> Bool {
        let socket = handle
        var message = zmq_msg_t()
        guard zmq_msg_init_size(&message, header.count) == 0 else {
            throw WireError.lastCall("zmq_msg_init_size", target: "a \(header.count)-byte frame")
        }
        if header.count > 0 { zmq_msg_data(&message).copyMemory(from: header.baseAddress!, byteCount: header.count) }
        while zmq_msg_send(&message, socket, ZMQ_DONTWAIT) < 0 {
            let code = zmq_errno()
            if code == EINTR { continue }
            zmq_msg_close(&message)
            if code == EAGAIN { return false }
            throw WireError.lastCall("zmq_msg_send", target: "a frame on a \(type) socket")
        }
        return true
    }

    /// Receives one message if one is queued and passes its frames to `body` without copying them; nil if none
    /// is queued. The bytes are valid only inside `body`.
    public func tryReceiveBorrowing<Result>(_ body: (BorrowedMessage) throws -> Result) throws -> Result? {
        let socket = handle
        let messages = UnsafeMutablePointer<zmq_msg_t>.allocate(capacity: BorrowedMessage.maximumParts)
        var initialized = 0
        defer {
            for index in 0..<initialized { zmq_msg_close(messages + index) }
            messages.deallocate()
        }
        zmq_msg_init(messages)
        initialized = 1
        while zmq_msg_recv(messages, socket, ZMQ_DONTWAIT) < 0 {
            let code = zmq_errno()
            if code == EINTR { continue }
            if code == EAGAIN { return nil }
            throw WireError.lastCall("zmq_msg_recv", target: "a \(type) socket")
        }
        var partCount = 1
        var last = messages
        while zmq_msg_more(last) == 1 {
            let slot: UnsafeMutablePointer<zmq_msg_t>
            if initialized < BorrowedMessage.maximumParts {
                slot = messages + initialized
                zmq_msg_init(slot)
                initialized += 1
            } else {
                // Too many frames: reuse the last slot for the rest; they are discarded.
                slot = messages + (BorrowedMessage.maximumParts - 1)
            }
            if retryingInterrupts({ zmq_msg_recv(slot, socket, 0) }) < 0 {
                throw WireError.lastCall("zmq_msg_recv", target: "part \(partCount) on a \(type) socket")
            }
            partCount += 1
            last = slot
        }
        var parts: [UnsafeRawBufferPointer] = []
        parts.reserveCapacity(initialized)
        for index in 0..<min(initialized, partCount) {
            let message = messages + index
            parts.append(UnsafeRawBufferPointer(start: zmq_msg_data(message), count: zmq_msg_size(message)))
        }
        return try body(BorrowedMessage(parts: parts, partCount: partCount))
    }
}
