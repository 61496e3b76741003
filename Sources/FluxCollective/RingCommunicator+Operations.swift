import FluxProtocol

extension RingCommunicator {
    /// Replaces `buffer` on every rank by the element-wise sum, average or maximum over the ranks' buffers.
    ///
    /// Reduce-scatter then all-gather over n chunks, each cut into sub-chunks of at most `ring.subChunkBytes`: a
    /// sub-chunk is sent on as soon as it has been reduced, so sending, receiving and reducing overlap. Any length
    /// works, including 0 and lengths below the ring size (some chunks are then empty); every rank must pass the
    /// same length. All ranks end with bit-identical values: each chunk is reduced on one rank and copied to the
    /// others.
    ///
    /// - Throws: `CollectiveError.peerTimeout` when a neighbour is dead or stalled, `.protocolMismatch` when ranks
    ///   disagree on the operation or the length, `.transport` when libzmq fails, `.unusable` after a failure.
    public func allReduce(
        _ buffer: UnsafeMutableBufferPointer<Float>, op: ReduceOperation = .sum
    ) throws(CollectiveError) {
        try allReduce(buffer, trailer: UnsafeMutableBufferPointer(start: nil, count: 0), op: op)
    }

    /// All-reduces `buffer` followed by `trailer` as one logical buffer in one operation: a few extra values (a
    /// step's sample count, loss sums and non-finite flag) travel with the gradients without copying the gradients
    /// into a larger buffer. No frame spans the two.
    public func allReduce(
        _ buffer: UnsafeMutableBufferPointer<Float>, trailer: UnsafeMutableBufferPointer<Float>,
        op: ReduceOperation = .sum
    ) throws(CollectiveError) {
        let segments = Segments(buffer, trailer: trailer)
        let n = ring.size
        if n == 1 {
            if failure != nil { throw CollectiveError.unusable(reason: "it was closed") }
            // A sum or average over one rank is the buffer itself. maximum(x, x) is x too, except that a NaN
            // becomes the canonical NaN, as on larger rings.
            if op == .max {
                for part in [buffer, trailer] where part.count > 0 {
                    RingKernels.maximum(into: part.baseAddress!, from: part.baseAddress!, count: part.count)
                }
            }
            completeLocally()
            return
        }
        let layout = RingLayout(total: segments.total, ranks: n, maximumElements: ring.subChunkBytes / 4,
                                boundary: buffer.count)
        let (reduce, completing): (Apply, Apply) = switch op {
        case .sum: (.add(scale: nil), .add(scale: nil))
        case .average: (.add(scale: nil), .add(scale: 1 / Float(n)))
        case .max: (.maximum, .maximum)
        }
        try execute(allReducePlan(name: "all-reduce", layout: layout, reduce: reduce, completing: completing),
                    on: segments)
    }

    /// Replaces `buffer` on every rank by the element-wise wrapping (`&+`) sum over the ranks' buffers: the exact
    /// all-reduce.
    ///
    /// Integer addition is associative, so unlike an fp32 sum the result does not depend on how the ring groups
    /// the ranks: gradients converted to 64-bit fixed point on a grid shared by all ranks reduce to the same bits
    /// on any number of workers. The sum wraps on overflow (it is the true sum whenever that fits in 64 bits; the
    /// caller's grid leaves the headroom). Pipelined like the fp32 all-reduce, with sub-chunks of at most
    /// `ring.subChunkBytes`. Frames carry the int64 element kind, so a neighbour running an fp32 operation at the
    /// same point fails the call with `.protocolMismatch` instead of being mixed in.
    ///
    /// - Throws: as `allReduce(_:op:)`.
    public func allReduce(_ buffer: UnsafeMutableBufferPointer<Int64>) throws(CollectiveError) {
        if ring.size == 1 {
            if failure != nil { throw CollectiveError.unusable(reason: "it was closed") }
            completeLocally()
            return
        }
        let layout = RingLayout(total: buffer.count, ranks: ring.size,
                                maximumElements: max(1, ring.subChunkBytes / 8))
        let plan = allReducePlan(name: "int64 all-reduce", layout: layout, reduce: .addInt64, completing: .addInt64)
        try execute(plan, on: Segments(buffer))
    }

    /// The exact all-reduce of packed 56-bit integers: `bytes` holds `bytes.count / 7` little-endian two's-complement
    /// integers of 7 bytes each, replaced on every rank by their sum modulo 2^56 (the true sum whenever it lies in
    /// −2^55 ..< 2^55; the caller's grid leaves that headroom). Like `allReduce(_: Int64)`, with 7 bytes an element
    /// instead of 8, so `reduction: exact` sends less than twice fp32's bytes; frames carry the int56 element kind.
    ///
    /// - Throws: as `allReduce(_:op:)`; `.invalidArgument` when the byte count is not a multiple of 7.
    public func allReduce(packed56 bytes: UnsafeMutableRawBufferPointer) throws(CollectiveError) {
        guard bytes.count % 7 == 0 else {
            throw .invalidArgument("a packed 56-bit buffer of \(bytes.count) bytes is not a whole number of 7-byte integers")
        }
        if ring.size == 1 {
            if failure != nil { throw CollectiveError.unusable(reason: "it was closed") }
            completeLocally()
            return
        }
        let layout = RingLayout(total: bytes.count / 7, ranks: ring.size, maximumElements: max(1, ring.subChunkBytes / 7))
        let plan = allReducePlan(name: "int56 all-reduce", layout: layout, reduce: .addPacked56, completing: .addPacked56)
        try execute(plan, on: Segments(packed56: bytes.baseAddress, count: bytes.count / 7))
    }

    /// The plan of an all-reduce over `layout`: `reduce` applies received chunks at reduce-scatter steps before
    /// the last, `completing` at the last (where an average scales), then all-gather copies.
    private func allReducePlan(name: String, layout: RingLayout, reduce: Apply, completing: Apply) -> Plan {
        let n = ring.size, r = ring.rank
        // Reduce-scatter step s (0 ..< n−1): send chunk r−s, receive chunk r−s−1 and reduce it. All-gather step
        // s (n−1 ..< 2(n−1)): send chunk r+1−(s−n+1), receive chunk r−(s−n+1) and copy it. The chunk received
        // at step s is the one sent at step s+1, so each sub-chunk is forwarded as soon as it is applied.
        func mod(_ x: Int) -> Int { ((x % n) + n) % n }
        let steps = 2 * (n - 1)
        func receivedChunk(_ s: Int) -> Int { s < n - 1 ? mod(r - s - 1) : mod(r - (s - n + 1)) }
        func operation(_ s: Int) -> RingFrameHeader.Operation { s < n - 1 ? .reduceScatter : .allGather }
        let first = mod(r)
        var plan = Plan(name: name, initialSends: [], receives: [])
        plan.initialSends = layout.chunks[first].map {
            (.reduceScatter, Transfer(step: 0, chunk: UInt32(first), range: $0))
        }
        for s in 0..<steps {
            let chunk = receivedChunk(s)
            let apply: Apply = s < n - 2 ? reduce : s == n - 2 ? completing : .copy
            for range in layout.chunks[chunk] {
                plan.receives.append(Receive(
                    transfer: Transfer(step: UInt32(s), chunk: UInt32(chunk), range: range),
                    operation: operation(s), apply: apply,
                    forward: s + 1 < steps ? (operation(s + 1), UInt32(s + 1)) : nil))
            }
        }
        return plan
    }

    /// Replaces `buffer` on every rank by `root`'s buffer (e.g. the committed state after a re-form, design §4).
    ///
    /// Pipelined along the ring: the root sends sub-chunks to its right neighbour, and every other rank copies each
    /// sub-chunk into place and passes it on, except the root's left neighbour, the last one.
    public func broadcast(_ buffer: UnsafeMutableBufferPointer<Float>, root: Int = 0) throws(CollectiveError) {
        guard (0..<ring.size).contains(root) else {
            throw .invalidArgument("broadcast root \(root) is outside the ring of \(ring.size) ranks")
        }
        if ring.size == 1 {
            if failure != nil { throw CollectiveError.unusable(reason: "it was closed") }
            completeLocally()
            return
        }
        let segments = Segments(buffer, trailer: UnsafeMutableBufferPointer(start: nil, count: 0))
        let pieces = RingLayout(total: buffer.count, ranks: 1, maximumElements: ring.subChunkBytes / 4).chunks[0]
        let transfers = pieces.enumerated().map { Transfer(step: 0, chunk: UInt32($0.offset), range: $0.element) }
        var plan = Plan(name: "broadcast from rank \(root)", initialSends: [], receives: [])
        if ring.rank == root {
            plan.initialSends = transfers.map { (.broadcast, $0) }
        } else {
            let forwards = ring.right != root
            plan.receives = transfers.map {
                Receive(transfer: $0, operation: .broadcast, apply: .copy, forward: forwards ? (.broadcast, 0) : nil)
            }
        }
        try execute(plan, on: segments)
    }

    /// Returns once every rank of the ring has entered the barrier.
    ///
    /// Two passes of a token around the ring: rank 0 sends step 0, which every rank passes on once it has entered;
    /// when it is back at rank 0 everyone has entered, and rank 0 sends step 1, which every rank passes on and
    /// leaves.
    public func barrier() throws(CollectiveError) {
        if ring.size == 1 {
            if failure != nil { throw CollectiveError.unusable(reason: "it was closed") }
            completeLocally()
            return
        }
        let segments = Segments.empty
        func token(_ step: UInt32) -> Transfer { Transfer(step: step, chunk: 0, range: 0..<0) }
        var plan = Plan(name: "barrier", initialSends: [], receives: [])
        if ring.rank == 0 {
            plan.initialSends = [(.barrier, token(0))]
            plan.receives = [
                Receive(transfer: token(0), operation: .barrier, apply: .none, forward: (.barrier, 1)),
                Receive(transfer: token(1), operation: .barrier, apply: .none, forward: nil),
            ]
        } else {
            plan.receives = [
                Receive(transfer: token(0), operation: .barrier, apply: .none, forward: (.barrier, 0)),
                Receive(transfer: token(1), operation: .barrier, apply: .none, forward: (.barrier, 1)),
            ]
        }
        try execute(plan, on: segments)
    }
}
