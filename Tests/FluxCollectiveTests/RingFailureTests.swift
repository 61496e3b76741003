import Foundation
import Synchronization
import Testing
@testable import FluxCollective
import FluxProtocol
import FluxWire

@Suite struct RingFailureTests {
    /// Generation 2 binds fresh endpoints: libzmq closes sockets asynchronously, so a neighbour's new socket could
    /// still reach an old one bound on a reused port and its first frames be lost (docs/architecture.md).
    @Test func allReduce_stalledPeer_othersFailWithPeerTimeoutThenReformGenerationTwo() throws {
        let endpoints = loopbackEndpoints(3)
        let endpoints2 = loopbackEndpoints(2)
        let closed = Arrivals()
        let outcomes = onThreads(3) { rank -> (first: CollectiveError?, elapsed: Duration, second: RankOutcome?) in
            do {
                let context = try ZMQContext()
                let ring = ringMember(rank, endpoints: endpoints, timeout: .seconds(1))
                let communicator = try RingCommunicator(context: context, ring: ring)
                if rank == 2 {
                    // Stalled: joins the ring but never takes part, then leaves.
                    Thread.sleep(forTimeInterval: 1.5)
                    communicator.close()
                    return (nil, .zero, nil)
                }
                var values = input(rank: rank, count: 10_000)
                let start = ContinuousClock.now
                var first: CollectiveError?
                do {
                    try values.withUnsafeMutableBufferPointer { buffer throws(CollectiveError) in
                        try communicator.allReduce(buffer)
                    }
                } catch { first = error as? CollectiveError ?? .transport(operation: "?", reason: "\(error)") }
                let elapsed = ContinuousClock.now - start
                #expect(!communicator.isUsable)
                closed.arriveAndWait(count: 2)
                // Generation 2 of the survivors, in the same processes, right after the failure.
                let ring2 = ringMember(rank, endpoints: endpoints2, generation: 2, timeout: .seconds(5))
                let next = try RingCommunicator(context: context, ring: ring2)
                defer { next.close() }
                var outcome = RankOutcome()
                values = input(rank: rank, count: 10_000)
                do {
                    try values.withUnsafeMutableBufferPointer { buffer throws(CollectiveError) in
                        try next.allReduce(buffer)
                    }
                } catch { outcome.error = error as? CollectiveError ?? .transport(operation: "?", reason: "\(error)") }
                outcome.values = values
                return (first, elapsed, outcome)
            } catch {
                return (.transport(operation: "setup", reason: "\(error)"), .zero, nil)
            }
        }
        for rank in 0..<2 {
            let (first, elapsed, second) = outcomes[rank]
            guard case .peerTimeout = first else {
                Issue.record("rank \(rank) should fail with peerTimeout, got \(String(describing: first))")
                continue
            }
            print("rank \(rank) failed after \(elapsed) (timeout 1 s): \(first!)")
            #expect(second?.error == nil, "\(String(describing: second?.error))")
            let exact = second?.values == expectedSum(ranks: 2, count: 10_000)
            #expect(exact, "rank \(rank): generation 2 sum")
        }
    }

    @Test func allReduce_afterFailure_throwsUnusable() throws {
        let context = try ZMQContext()
        let endpoints = loopbackEndpoints(2)
        let communicator = try RingCommunicator(context: context, ring: ringMember(0, endpoints: endpoints,
                                                                                 timeout: .milliseconds(200)))
        var values: [Float] = [1, 2, 3]
        #expect(throws: CollectiveError.self) {
            try values.withUnsafeMutableBufferPointer { buffer throws(CollectiveError) in
                try communicator.allReduce(buffer)
            }
        }
        do {
            try values.withUnsafeMutableBufferPointer { buffer throws(CollectiveError) in
                try communicator.allReduce(buffer)
            }
            Issue.record("a failed communicator must refuse further operations")
        } catch {
            guard case .unusable = error else { Issue.record("expected unusable, got \(error)"); return }
        }
    }

    @Test func ring_invalidDescription_listsEveryIssue() throws {
        let context = try ZMQContext()
        let ring = Ring(job: "j", generation: 1, rank: 5, size: 2, localEndpoint: "", rightEndpoint: "",
                        security: .none, timeout: .zero, subChunkBytes: 6)
        #expect(throws: CollectiveError.invalidRing(ring.issues)) { try RingCommunicator(context: context, ring: ring) }
        #expect(ring.issues.count == 4)
    }
}

@Suite struct RingHygieneTests {
    /// Bytes that are not ring frames, and ring frames of an old generation or another job, sent by an intruder
    /// straight to rank 0's endpoint: all dropped and counted, and the sums stay exact (the stale frame claims the
    /// exact place of rank 1's first frame, with values that would show if it were used).
    @Test func allReduce_garbageAndOldGeneration_droppedAndCounted() throws {
        let endpoints = loopbackEndpoints(2)
        let count = 1000
        let intruderContext = try ZMQContext()
        let intruder = try intruderContext.makeSocket(.push)
        defer { intruder.close() }
        try intruder.connect(endpoints[0])
        func frame(generation: UInt64, job: JobID) -> [Frame] {
            // Rank 1's first frame of an all-reduce of 1000 elements: reduce-scatter step 0, chunk 1 = 500..<1000.
            let header = RingFrameHeader(operation: .reduceScatter, jobTag: RingFrameHeader.jobTag(for: job),
                                         generation: generation, sequence: 0, step: 0, chunk: 1, senderRank: 1,
                                         elementOffset: 500, elementCount: 500)
            let payload = [Float](repeating: 1e6, count: 500).withUnsafeBytes { Array($0) }
            return [Frame(header.encoded), Frame(payload)]
        }
        try intruder.send(["not a ring frame"])
        try intruder.send([Frame([UInt8](repeating: 0xff, count: 64)), "x"])
        try intruder.send(frame(generation: 0, job: "job-test"))
        try intruder.send(frame(generation: 1, job: "another-job"))
        let outcomes = onThreads(2) { rank in
            var outcome = RankOutcome()
            do {
                let context = try ZMQContext()
                let communicator = try RingCommunicator(context: context, ring: ringMember(rank, endpoints: endpoints))
                defer { communicator.close() }
                // Repeat until rank 0 has seen all four intruding messages; rank 0 decides and broadcasts.
                for _ in 0..<50 {
                    var values = input(rank: rank, count: count)
                    try values.withUnsafeMutableBufferPointer { buffer throws(CollectiveError) in
                        try communicator.allReduce(buffer)
                    }
                    outcome.values = values
                    let seen = communicator.counters.invalidFrames + communicator.counters.staleFrames
                    var more: [Float] = [rank == 0 && seen < 4 ? 1 : 0]
                    try more.withUnsafeMutableBufferPointer { buffer throws(CollectiveError) in
                        try communicator.broadcast(buffer, root: 0)
                    }
                    if more[0] == 0 { break }
                    Thread.sleep(forTimeInterval: 0.01)
                }
                outcome.counters = communicator.counters
            } catch {
                outcome.error = error as? CollectiveError ?? .transport(operation: "setup", reason: "\(error)")
            }
            return outcome
        }
        for outcome in outcomes {
            #expect(outcome.error == nil, "\(String(describing: outcome.error))")
            let exact = outcome.values == expectedSum(ranks: 2, count: count)
            #expect(exact)
        }
        #expect(outcomes[0].counters.invalidFrames == 2)
        #expect(outcomes[0].counters.staleFrames == 2)
    }
}

@Suite struct BroadcastAndBarrierTests {
    @Test(arguments: [1, 2, 3, 5])
    func broadcast_fromEveryRoot_copiesRootBuffer(size: Int) throws {
        let endpoints = loopbackEndpoints(size)
        let count = 30_011
        let outcomes = onThreads(size) { rank -> [RankOutcome] in
            var outcomes: [RankOutcome] = []
            do {
                let context = try ZMQContext()
                let communicator = try RingCommunicator(context: context, ring: ringMember(rank, endpoints: endpoints,
                                                                                         subChunkBytes: 8192))
                defer { communicator.close() }
                for root in 0..<size {
                    var values = input(rank: rank, count: count)
                    var outcome = RankOutcome()
                    do {
                        try values.withUnsafeMutableBufferPointer { buffer throws(CollectiveError) in
                            try communicator.broadcast(buffer, root: root)
                        }
                        try communicator.barrier()
                    } catch {
                        outcome.error = error as? CollectiveError ?? .transport(operation: "?", reason: "\(error)")
                    }
                    outcome.values = values
                    outcomes.append(outcome)
                }
            } catch {
                outcomes.append(RankOutcome(error: .transport(operation: "setup", reason: "\(error)")))
            }
            return outcomes
        }
        for rank in 0..<size {
            #expect(outcomes[rank].count == size)
            for (root, outcome) in outcomes[rank].enumerated() {
                #expect(outcome.error == nil)
                let copied = outcome.values == input(rank: root, count: count)
                #expect(copied, "rank \(rank), root \(root)")
            }
        }
    }

    /// No rank leaves the barrier before the last one has entered: the late rank writes a flag before entering,
    /// and every rank reads it after leaving.
    @Test func barrier_lateRank_nobodyLeavesEarly() throws {
        let endpoints = loopbackEndpoints(4)
        let entered = SharedFlag()
        let outcomes = onThreads(4) { rank -> Bool? in
            do {
                let context = try ZMQContext()
                let communicator = try RingCommunicator(context: context, ring: ringMember(rank, endpoints: endpoints))
                defer { communicator.close() }
                if rank == 2 {
                    Thread.sleep(forTimeInterval: 0.3)
                    entered.set()
                }
                try communicator.barrier()
                return entered.isSet
            } catch {
                return nil
            }
        }
        #expect(outcomes == [true, true, true, true])
    }
}

/// Threads that wait for each other (the coordinator's role between two generations).
final class Arrivals: Sendable {
    private let arrived = Mutex(0)
    func arriveAndWait(count: Int) {
        arrived.withLock { $0 += 1 }
        while arrived.withLock({ $0 }) < count { Thread.sleep(forTimeInterval: 0.001) }
    }
}

/// A flag set by one thread and read by others.
final class SharedFlag: Sendable {
    private let value = Mutex(false)
    func set() { value.withLock { $0 = true } }
    var isSet: Bool { value.withLock { $0 } }
}

/// The last operation of a job: a rank that finished it and closes its ring at once must not take frames its
/// neighbour still needs with it. (A guard: here a plain close delivered them too, but libzmq promises nothing
/// with linger 0, and the workers' last frames are what `close(flushing:)` is for.)
@Suite struct RingCloseTests {
    static func broadcastThenClose(ipc: Bool) -> [Bool] {
        let job = JobID("job-close-\(getpid())")
        let endpoints = ipc ? (0..<2).map { Ring.sameHostEndpoint(job: job, generation: 1, rank: $0) } : loopbackEndpoints(2)
        let count = 4 << 20
        return onThreads(2) { rank -> Bool in
            do {
                let context = try ZMQContext()
                defer { context.close() }
                let communicator = try RingCommunicator(context: context, ring: ringMember(rank, endpoints: endpoints, job: job))
                // The root's part ends once its frames are queued; the receiver, slow to start, still reads them.
                if rank == 0 { Thread.sleep(forTimeInterval: 0.3) }
                var values = [Float](repeating: rank == 1 ? 3 : 0, count: count)
                try values.withUnsafeMutableBufferPointer { buffer throws(CollectiveError) in
                    try communicator.broadcast(buffer, root: 1)
                }
                if rank == 1 {
                    communicator.close(flushing: .seconds(5))
                    return true
                }
                communicator.close()
                return values.allSatisfy { $0 == 3 }
            } catch {
                return false
            }
        }
    }

    @Test(arguments: [false, true]) func broadcast_rootClosesAtOnceFlushing_receiverGetsEveryFrame(ipc: Bool) {
        for _ in 0..<3 { #expect(Self.broadcastThenClose(ipc: ipc) == [true, true]) }
    }
}
