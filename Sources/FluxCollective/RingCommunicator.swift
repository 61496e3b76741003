import Foundation
import FluxProtocol
import FluxWire

/// The sockets of one rank in one ring generation, and the collectives over them: all-reduce (sum, average or
/// maximum) on flat fp32 buffers, the exact all-reduce (wrapping sum) on flat int64 buffers, broadcast and barrier
/// (docs/architecture.md, "FluxCollective").
///
/// Contract:
/// - Synchronous: every operation blocks the calling thread until this rank's part is done, and it belongs to one
///   thread at a time (it owns libzmq sockets, so it is not `Sendable`).
/// - Every rank of the ring runs the same operations in the same order; each carries (job, generation, sequence)
///   in its frames. Frames of another job or generation are dropped and counted (`counters.staleFrames`), so are
///   messages that are not ring frames (`counters.invalidFrames`).
/// - An operation that hears nothing from its left neighbour (or cannot send to its right one) for `ring.timeout`
///   throws `CollectiveError.peerTimeout`; it never hangs. After any thrown error the communicator is unusable and
///   has closed its sockets; a new one (same endpoint or another, generation + 1) can be made at once.
/// - Payloads are lent to libzmq without copying; an operation returns only once libzmq has released them, so the
///   caller may change its buffer as soon as a call returns or throws.
public final class RingCommunicator {
    /// The ring this communicator serves.
    public let ring: Ring
    /// What was dropped so far, and how many operations completed.
    public private(set) var counters = RingCounters()
    /// The endpoint actually bound (nil for a ring of one).
    public let boundEndpoint: String?
    /// The ZAP domain of ring endpoints; its allowlist holds the left neighbour's key.
    public static let zapDomain = "flux-ring"

    private let context: ZMQContext
    private var pull: Socket?
    private var push: Socket?
    /// Disconnection events of `pull` (the left neighbour) and `push` (the right one).
    private var leftMonitor: SocketMonitor?
    private var rightMonitor: SocketMonitor?
    /// When each neighbour's connection closed, if it did.
    private var leftGone: ContinuousClock.Instant?
    private var rightGone: ContinuousClock.Instant?
    /// How long an operation still waits for a neighbour whose connection closed (frames it sent before may
    /// still be queued) before it fails with `peerDisconnected`.
    static let disconnectGrace: Duration = .milliseconds(200)
    private var ownAuthenticator: Authenticator?
    private let tracker = SendTracker()
    private let jobTag: UInt64
    private var sequence: UInt64 = 0
    /// The error that made the communicator unusable (or `.unusable` after `close()`).
    var failure: CollectiveError?

    /// Binds `ring.localEndpoint` and connects to `ring.rightEndpoint`; returns without waiting for the neighbours
    /// (the first operation waits for them, up to `ring.timeout`).
    ///
    /// With CURVE security the endpoint accepts only `leftPublicKey`, through `authenticator` (this context's ZAP
    /// handler, whose `flux-ring` domain allowlist is replaced) or, when none is given, a handler this communicator
    /// starts in `context` and stops at `close()`. A bind that finds the address still in use (the previous
    /// generation's socket is closing) is retried until `ring.timeout`.
    ///
    /// - Throws: `CollectiveError.invalidRing` for an unusable description, `.transport` when libzmq refuses.
    public init(context: ZMQContext, ring: Ring, authenticator: Authenticator? = nil) throws(CollectiveError) {
        let issues = ring.issues
        guard issues.isEmpty else { throw .invalidRing(issues) }
        self.ring = ring
        self.context = context
        self.jobTag = RingFrameHeader.jobTag(for: ring.job)
        guard ring.size > 1 else {
            boundEndpoint = nil
            return
        }
        do {
            let pull = try context.makeSocket(.pull)
            let push = try context.makeSocket(.push)
            self.pull = pull
            self.push = push
            // Frames queued per direction: enough to keep several sub-chunks in flight, bounded so a slow peer
            // pushes back instead of growing memory. A larger frame than ours is not ring traffic: libzmq drops
            // the connection that sends it.
            try pull.set([.linger(.zero), .receiveHighWaterMark(Self.highWaterMark),
                          .maximumMessageSize(max(ring.subChunkBytes, RingFrameHeader.byteCount) + 64)])
            try push.set([.linger(.zero), .sendHighWaterMark(Self.highWaterMark),
                          .reconnectInterval(.milliseconds(20), maximum: .milliseconds(200))])
            if case let .curve(keys, leftKey, rightKey) = ring.security {
                let allowlist = Allowlist(keys: [leftKey])
                if let authenticator {
                    authenticator.setAllowlist(allowlist, for: Self.zapDomain)
                } else {
                    ownAuthenticator = try Authenticator(context: context, allowlists: [Self.zapDomain: allowlist])
                }
                try pull.makeCurveServer(keys: keys, domain: Self.zapDomain)
                try push.makeCurveClient(keys: keys, serverKey: rightKey)
            }
            // A killed neighbour's connection closes at once (the kernel closes its sockets): watch for it, so the
            // operation fails in milliseconds instead of after `ring.timeout` (design §4).
            leftMonitor = try pull.monitor(.disconnections)
            rightMonitor = try push.monitor(.disconnections)
            boundEndpoint = try Self.bind(pull, ring.localEndpoint, within: ring.timeout)
            try push.connect(ring.rightEndpoint)
        } catch let error as CollectiveError {
            pull?.close()
            push?.close()
            ownAuthenticator?.stop()
            throw error
        } catch {
            pull?.close()
            push?.close()
            ownAuthenticator?.stop()
            throw .transport(operation: "ring formation (rank \(ring.rank) of \(ring.size))", reason: "\(error)")
        }
    }

    deinit { close() }

    /// Makes glibc's malloc keep freed blocks of up to 32 MiB mapped instead of returning them to the kernel.
    ///
    /// libzmq allocates every received frame larger than its 8 KiB batch with malloc; glibc serves blocks above
    /// its mmap threshold with fresh mappings, so each sub-chunk costs page faults and zeroed pages in the I/O
    /// thread (perf: about a tenth of the ring's CPU time). Raising the thresholds recycles the same heap memory.
    /// Process-wide, so the process's owner (the worker, flux-bench) calls it once at start; a library call never
    /// changes it by itself.
    public static func keepReceiveBuffersMapped() {
        #if os(Linux)
        _ = glibcMallopt(-3, 32 << 20)  // M_MMAP_THRESHOLD (<malloc.h>, not exported by the Glibc module)
        _ = glibcMallopt(-1, 256 << 20)  // M_TRIM_THRESHOLD
        #endif
    }

    /// Messages queued per direction before senders wait.
    static let highWaterMark = 32

    private static func bind(_ socket: Socket, _ endpoint: String, within timeout: Duration) throws -> String {
        let deadline = ContinuousClock.now + timeout
        while true {
            do {
                return try socket.bind(endpoint)
            } catch let WireError.callFailed(_, _, code, _) where code == EADDRINUSE && ContinuousClock.now < deadline {
                Thread.sleep(forTimeInterval: 0.01)
            }
        }
    }

    /// Closes the sockets and stops the handler it started. Idempotent.
    ///
    /// - Parameter flushing: how long frames still queued for the right neighbour may take to leave. The default
    ///   drops them (a broken or superseded ring); a rank that completed the job's last operation flushes, since
    ///   its neighbours may still be reading what it sent.
    public func close(flushing: Duration = .zero) {
        if flushing > .zero { try? push?.set(.linger(flushing)) }
        pull?.stopMonitor()
        push?.stopMonitor()
        leftMonitor?.close()
        rightMonitor?.close()
        leftMonitor = nil
        rightMonitor = nil
        pull?.close()
        push?.close()
        pull = nil
        push = nil
        ownAuthenticator?.stop()
        ownAuthenticator = nil
        if failure == nil { failure = .unusable(reason: "it was closed") }
        // (An operation's own failure stays recorded: it is what `.unusable` reports later.)
        // Closing with linger 0 makes libzmq drop queued messages, which releases lent payloads. The caller may
        // reuse its buffer once we return, so never return while libzmq still reads from it: after 5 s, say so
        // and keep waiting (the I/O thread finishes the close; only a wedged libzmq would keep us here).
        if !tracker.waitUntilReleased(deadline: ContinuousClock.now + .seconds(5)) {
            FileHandle.standardError.write(Data(
                "flux ring: libzmq still holds a lent buffer 5 s after closing the ring; waiting for it\n".utf8))
            _ = tracker.waitUntilReleased(deadline: .now + .seconds(365 * 24 * 3600))
        }
    }

    /// Counts an operation of a ring of one, which has nothing to exchange.
    func completeLocally() {
        sequence += 1
        counters.operations += 1
    }

    /// Whether no operation failed and `close()` has not run.
    public var isUsable: Bool { failure == nil }

    // MARK: The engine shared by every operation

    /// One frame of an operation: its ring step, chunk (or sub-chunk) index and element range.
    struct Transfer {
        var step: UInt32
        var chunk: UInt32
        var range: Range<Int>
    }

    /// What to do with a received frame.
    enum Apply {
        /// Add fp32 into place (reduce-scatter), times `scale` when given.
        case add(scale: Float?)
        /// Keep the fp32 element-wise maximum (reduce-scatter of `ReduceOperation.max`).
        case maximum
        /// Add int64 into place, wrapping (reduce-scatter of the exact all-reduce).
        case addInt64
        /// Add packed 56-bit integers into place, modulo 2^56.
        case addPacked56
        /// Copy into place (all-gather, broadcast).
        case copy
        /// Nothing (barrier).
        case none
    }

    /// One expected frame from the left neighbour, what to do with it, and the operation and step under which to
    /// send the same region on to the right afterwards (nil: not forwarded).
    struct Receive {
        var transfer: Transfer
        var operation: RingFrameHeader.Operation
        var apply: Apply
        var forward: (operation: RingFrameHeader.Operation, step: UInt32)?
    }

    /// A plan: frames sent at once, then frames expected in order.
    struct Plan {
        var name: String
        var initialSends: [(RingFrameHeader.Operation, Transfer)]
        var receives: [Receive]
    }

    /// Runs one operation of the current sequence; on failure closes everything and rethrows.
    func execute(_ plan: Plan, on segments: Segments) throws(CollectiveError) {
        if let failure { throw CollectiveError.unusable(reason: "\(failure)") }
        defer { sequence += 1 }
        do throws(CollectiveError) {
            try pump(plan, segments)
            // The caller may write its buffer once we return: wait until libzmq has released every lent payload.
            if !tracker.waitUntilReleased(deadline: ContinuousClock.now + ring.timeout) {
                throw CollectiveError.peerTimeout(rank: ring.right, operation: plan.name, sequence: sequence,
                                                  waited: ring.timeout)
            }
            counters.operations += 1
        } catch {
            failure = error
            close()
            throw error
        }
    }

    private func pump(_ plan: Plan, _ segments: Segments) throws(CollectiveError) {
        guard let pull, let push else { throw .unusable(reason: "its sockets are closed") }
        var queue: [(RingFrameHeader.Operation, Transfer)] = plan.initialSends
        queue.reserveCapacity(plan.initialSends.count + plan.receives.count)
        var head = 0
        var next = 0
        var lastProgress = ContinuousClock.now
        var poller = Poller()
        do {
            while next < plan.receives.count || head < queue.count {
                var progressed = false
                while head < queue.count {
                    let (operation, transfer) = queue[head]
                    guard try send(operation, transfer, segments, on: push) else { break }
                    head += 1
                    progressed = true
                }
                // Receive a few frames, then go back to sending, so forwarded sub-chunks leave early.
                var batch = 0
                while next < plan.receives.count, batch < 4 {
                    let expected = plan.receives[next]
                    let outcome = try pull.tryReceiveBorrowing { message throws(CollectiveError) in
                        try self.accept(message, expected: expected, plan: plan, segments: segments)
                    }
                    guard let outcome else { break }
                    batch += 1
                    if outcome {
                        if let forward = expected.forward {
                            var forwarded = expected.transfer
                            forwarded.step = forward.step
                            queue.append((forward.operation, forwarded))
                        }
                        next += 1
                        progressed = true
                    }
                }
                let now = ContinuousClock.now
                if progressed {
                    lastProgress = now
                    continue
                }
                noteDisconnections(now)
                let waitingOnLeft = next < plan.receives.count, waitingOnRight = head < queue.count
                if waitingOnLeft, let gone = leftGone, now - max(gone, lastProgress) >= Self.disconnectGrace {
                    throw CollectiveError.peerDisconnected(rank: ring.left, operation: plan.name, sequence: sequence)
                }
                if waitingOnRight, let gone = rightGone, now - max(gone, lastProgress) >= Self.disconnectGrace {
                    throw CollectiveError.peerDisconnected(rank: ring.right, operation: plan.name, sequence: sequence)
                }
                // Nothing to do: block in zmq_poll rather than spin (spinning measured worse: the caller's thread
                // then competes with libzmq's I/O threads for the 2 cores, docs/benchmarks.md).
                let remaining = ring.timeout - (now - lastProgress)
                if remaining <= .zero {
                    let waitingOnLeft = next < plan.receives.count
                    throw CollectiveError.peerTimeout(
                        rank: waitingOnLeft ? ring.left : ring.right, operation: plan.name, sequence: sequence,
                        waited: ring.timeout)
                }
                poller.add(pull, for: next < plan.receives.count ? .readable : [])
                poller.add(push, for: head < queue.count ? .writable : [])
                if let leftMonitor { poller.add(leftMonitor.socket) }
                if let rightMonitor { poller.add(rightMonitor.socket) }
                let gone = leftGone != nil || rightGone != nil
                _ = try poller.poll(timeout: gone ? min(remaining, .milliseconds(20)) : remaining)
            }
        } catch let error as CollectiveError {
            throw error
        } catch {
            throw .transport(operation: plan.name, reason: "\(error)")
        }
    }

    /// Records disconnection events that arrived since the last look.
    private func noteDisconnections(_ now: ContinuousClock.Instant) {
        while let frames = try? leftMonitor?.socket.tryReceive(), MonitorEvent(frames: frames)?.kind == .disconnected {
            leftGone = leftGone ?? now
        }
        while let frames = try? rightMonitor?.socket.tryReceive(), MonitorEvent(frames: frames)?.kind == .disconnected {
            rightGone = rightGone ?? now
        }
    }

    /// Sends one frame if the right neighbour's queue has room.
    private func send(
        _ operation: RingFrameHeader.Operation, _ transfer: Transfer, _ segments: Segments, on push: Socket
    ) throws -> Bool {
        let header = RingFrameHeader(
            operation: operation, elementKind: segments.kind, jobTag: jobTag, generation: ring.generation,
            sequence: sequence, step: transfer.step, chunk: transfer.chunk, senderRank: UInt32(ring.rank),
            elementOffset: UInt64(transfer.range.lowerBound), elementCount: UInt64(transfer.range.count))
        return try withUnsafeTemporaryAllocation(byteCount: RingFrameHeader.byteCount, alignment: 8) { bytes in
            header.encode(into: bytes)
            if operation == .barrier { return try push.trySend(header: UnsafeRawBufferPointer(bytes)) }
            let payload = UnsafeRawBufferPointer(
                start: transfer.range.isEmpty ? nil : segments.pointer(at: transfer.range.lowerBound),
                count: segments.kind.byteWidth * transfer.range.count)
            return try push.trySend(header: UnsafeRawBufferPointer(bytes), borrowing: payload, tracker: tracker)
        }
    }

    /// Checks a received message against the expected frame and applies it; returns false when it was dropped.
    private func accept(
        _ message: BorrowedMessage, expected: Receive, plan: Plan, segments: Segments
    ) throws(CollectiveError) -> Bool {
        guard message.partCount <= 2, message.parts[0].count == RingFrameHeader.byteCount,
              let header = try? RingFrameHeader(decoding: message.parts[0])
        else {
            counters.invalidFrames += 1
            return false
        }
        let payload = message.partCount == 2 ? message.parts[1] : UnsafeRawBufferPointer(start: nil, count: 0)
        guard payload.count == header.payloadByteCount else {
            counters.invalidFrames += 1
            return false
        }
        guard header.jobTag == jobTag, header.generation == ring.generation, header.sequence >= sequence else {
            counters.staleFrames += 1
            return false
        }
        let transfer = expected.transfer
        let wanted = "\(expected.operation) #\(sequence) of \(segments.kind) step \(transfer.step) chunk "
            + "\(transfer.chunk) elements \(transfer.range)"
        // A frame of the other element kind is refused like one of another length: adding int64 bits as fp32 (or
        // the reverse) would corrupt the result without any other sign.
        guard header.sequence == sequence, header.operation == expected.operation,
              header.elementKind == segments.kind, header.step == transfer.step,
              header.chunk == transfer.chunk, header.senderRank == UInt32(ring.left),
              header.elementOffset == UInt64(transfer.range.lowerBound),
              header.elementCount == UInt64(transfer.range.count)
        else {
            let offset = Int(clamping: header.elementOffset), count = Int(clamping: header.elementCount)
            let found = "\(header.operation) #\(header.sequence) of \(header.elementKind) step \(header.step) chunk "
                + "\(header.chunk) elements \(offset)..<\(offset &+ count) from rank \(header.senderRank)"
            throw .protocolMismatch(rank: ring.left, operation: plan.name, expected: wanted, found: found)
        }
        guard !transfer.range.isEmpty, let source = payload.baseAddress else { return true }
        let target = segments.pointer(at: transfer.range.lowerBound)
        switch expected.apply {
        case let .add(scale):
            RingKernels.add(into: target.assumingMemoryBound(to: Float.self), from: source,
                            count: transfer.range.count, scale: scale)
        case .maximum:
            RingKernels.maximum(into: target.assumingMemoryBound(to: Float.self), from: source,
                                count: transfer.range.count)
        case .addInt64:
            RingKernels.add(into: target.assumingMemoryBound(to: Int64.self), from: source,
                            count: transfer.range.count)
        case .addPacked56:
            RingKernels.addPacked56(into: target, from: source, count: transfer.range.count)
        case .copy:
            target.copyMemory(from: source, byteCount: payload.count)
        case .none:
            break
        }
        return true
    }
}

@available(*, unavailable, message: "a RingCommunicator owns libzmq sockets; use it from one thread")
extension RingCommunicator: Sendable {}

#if os(Linux)
@_silgen_name("mallopt")
private func glibcMallopt(_ parameter: Int32, _ value: Int32) -> Int32
#endif
