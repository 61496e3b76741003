import Foundation
import FluxCollective
import FluxProtocol
import FluxWire
import Synchronization


/// The endpoints of a loopback ring of `size` ranks.
func loopbackEndpoints(_ size: Int) -> [String] {
    do {
        return try LoopbackPorts.free(size).map { "tcp://127.0.0.1:\($0)" }
    } catch {
        fatalError("no free loopback ports for the test ring: \(error)")
    }
}

/// Key pairs for a CURVE ring.
func keyPairs(_ size: Int) throws -> [CurveKeyPair] { try (0..<size).map { _ in try CurveKeyPair.generate() } }

/// Rank `rank`'s description in a ring over `endpoints`.
func ringMember(
    _ rank: Int, endpoints: [String], generation: UInt64 = 1, job: JobID = "job-test", keys: [CurveKeyPair]? = nil,
    timeout: Duration = .seconds(5), subChunkBytes: Int = 64 * 1024
) -> Ring {
    let n = endpoints.count
    let security: Ring.Security = keys.map {
        .curve(keys: $0[rank], leftPublicKey: $0[(rank + n - 1) % n].publicKey,
               rightPublicKey: $0[(rank + 1) % n].publicKey)
    } ?? .none
    return Ring(job: job, generation: generation, rank: rank, size: n, localEndpoint: endpoints[rank],
                rightEndpoint: endpoints[(rank + 1) % n], security: security, timeout: timeout,
                subChunkBytes: subChunkBytes)
}

/// Runs `body(rank)` on `count` threads at once and returns each one's result, in rank order.
///
/// Every ring operation has its own deadline, so the ranks always return; if one ever does not within
/// `deadline`, the test process stops with a message instead of hanging the suite.
func onThreads<T: Sendable>(_ count: Int, deadline: TimeInterval = 300, _ body: @escaping @Sendable (Int) -> T) -> [T] {
    let results = Mutex<[Int: T]>([:])
    let group = DispatchGroup()
    for rank in 0..<count {
        group.enter()
        let thread = Thread {
            let value = body(rank)
            results.withLock { $0[rank] = value }
            group.leave()
        }
        thread.stackSize = 1 << 20
        thread.start()
    }
    guard group.wait(timeout: .now() + deadline) == .success else {
        let done = results.withLock { $0.keys.sorted() }
        fatalError("onThreads: ranks \(Set(0..<count).subtracting(done).sorted()) still running after \(deadline) s")
    }
    return results.withLock { dict in (0..<count).map { dict[$0]! } }
}

/// Rank r's integer-valued input: element i is ((i · 7 + r · 13) mod 101) − 50, so sums are exact in fp32.
func input(rank: Int, count: Int) -> [Float] {
    (0..<count).map { Float((($0 &* 7 &+ rank &* 13) % 101) - 50) }
}

/// The exact element-wise sum of every rank's `input`.
func expectedSum(ranks: Int, count: Int) -> [Float] {
    var sum = [Float](repeating: 0, count: count)
    for r in 0..<ranks {
        let x = input(rank: r, count: count)
        for i in 0..<count { sum[i] += x[i] }
    }
    return sum
}

/// What one rank of a threaded test saw.
struct RankOutcome: Sendable {
    var values: [Float] = []
    var error: CollectiveError?
    var counters = RingCounters()
}

/// Runs `body(rank, communicator)` on every rank of a fresh ring of `size` (each rank on its own thread, with its own
/// context and communicator, closed afterwards) and returns each rank's result, in rank order.
func onRing<T: Sendable>(
    _ size: Int, endpoints: [String]? = nil, subChunkBytes: Int = 64 * 1024, timeout: Duration = .seconds(5),
    _ body: @escaping @Sendable (Int, RingCommunicator) throws(CollectiveError) -> T
) -> [Result<T, CollectiveError>] {
    let endpoints = endpoints ?? loopbackEndpoints(size)
    return onThreads(size) { rank in
        do {
            let context = try ZMQContext()
            let ring = ringMember(rank, endpoints: endpoints, timeout: timeout, subChunkBytes: subChunkBytes)
            let communicator = try RingCommunicator(context: context, ring: ring)
            defer { communicator.close() }
            return .success(try body(rank, communicator))
        } catch let error as CollectiveError {
            return .failure(error)
        } catch {
            return .failure(.transport(operation: "test setup", reason: "\(error)"))
        }
    }
}

/// nil when `actual == expected`, else where they first differ: short enough to read in a failure message.
func firstDifference<T: Equatable>(_ actual: [T], _ expected: [T]) -> String? {
    guard actual.count == expected.count else { return "\(actual.count) elements, expected \(expected.count)" }
    guard let i = actual.indices.first(where: { actual[$0] != expected[$0] }) else { return nil }
    return "element \(i): \(actual[i]), expected \(expected[i])"
}
