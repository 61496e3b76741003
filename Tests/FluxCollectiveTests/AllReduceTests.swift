import Foundation
import Testing
@testable import FluxCollective
import FluxProtocol
import FluxWire

@Suite struct AllReduceTests {
    /// Runs one all-reduce of `count` elements on `size` threads, each with its own context.
    func reduce(size: Int, count: Int, op: ReduceOperation = .sum, curve: Bool = false,
                subChunkBytes: Int = 64 * 1024, endpoints: [String]? = nil) throws -> [RankOutcome] {
        let endpoints = endpoints ?? loopbackEndpoints(size)
        let keys = curve ? try keyPairs(size) : nil
        return onThreads(size) { rank in
            var outcome = RankOutcome()
            do {
                let context = try ZMQContext()
                let ring = ringMember(rank, endpoints: endpoints, keys: keys, subChunkBytes: subChunkBytes)
                let communicator = try RingCommunicator(context: context, ring: ring)
                defer { communicator.close() }
                var values = input(rank: rank, count: count)
                try values.withUnsafeMutableBufferPointer { buffer throws(CollectiveError) in
                    try communicator.allReduce(buffer, op: op)
                }
                outcome.values = values
                outcome.counters = communicator.counters
            } catch let error as CollectiveError {
                outcome.error = error
            } catch {
                outcome.error = .transport(operation: "test setup", reason: "\(error)")
            }
            return outcome
        }
    }

    static let cases: [(Int, Int)] = {
        var cases: [(Int, Int)] = []
        for size in 1...8 {
            for count in Set([0, 1, size - 1, size, size + 1, 7, 97, 16_411, 100_003]).sorted() where count >= 0 {
                cases.append((size, count))
            }
        }
        return cases
    }()

    @Test(arguments: cases)
    func allReduce_anyLengthAndRingSize_sumsExactly(size: Int, count: Int) throws {
        let outcomes = try reduce(size: size, count: count, subChunkBytes: 4096)
        let expected = expectedSum(ranks: size, count: count)
        for (rank, outcome) in outcomes.enumerated() {
            #expect(outcome.error == nil, "rank \(rank): \(outcome.error.map { "\($0)" } ?? "")")
            let exact = outcome.values == expected
            #expect(exact, "rank \(rank) of \(size), \(count) elements")
        }
    }

    @Test(arguments: [2, 4])
    func allReduce_millionElements_sumsExactly(size: Int) throws {
        let outcomes = try reduce(size: size, count: 1 << 20, subChunkBytes: Ring.defaultSubChunkBytes)
        let expected = expectedSum(ranks: size, count: 1 << 20)
        for outcome in outcomes {
            #expect(outcome.error == nil)
            let exact = outcome.values == expected
            #expect(exact)
        }
    }

    @Test func allReduce_average_isBitIdenticalOnEveryRank() throws {
        let outcomes = try reduce(size: 3, count: 1001, op: .average)
        let expected = expectedSum(ranks: 3, count: 1001).map { $0 * (1 / Float(3)) }
        for outcome in outcomes {
            #expect(outcome.error == nil)
            let exact = outcome.values == expected
            let identical = outcome.values.map(\.bitPattern) == outcomes[0].values.map(\.bitPattern)
            #expect(exact && identical)
        }
    }

    @Test func allReduce_curve_sumsExactly() throws {
        let outcomes = try reduce(size: 3, count: 50_001, curve: true)
        let expected = expectedSum(ranks: 3, count: 50_001)
        for outcome in outcomes {
            #expect(outcome.error == nil, "\(outcome.error.map { "\($0)" } ?? "")")
            let exact = outcome.values == expected
            #expect(exact)
        }
    }

    @Test(arguments: [false, true])
    func allReduce_sameHostIPCEndpoints_sumsExactly(curve: Bool) throws {
        let job = JobID("job-ipc-\(getpid())-\(curve)")
        let endpoints = (0..<3).map { Ring.sameHostEndpoint(job: job, generation: 1, rank: $0) }
        #expect(endpoints.allSatisfy { $0.hasPrefix("ipc:///tmp/flux-ring-") && $0.utf8.count < 107 })
        #expect(Set(endpoints).count == 3)
        let outcomes = try reduce(size: 3, count: 300_007, curve: curve, endpoints: endpoints)
        let expected = expectedSum(ranks: 3, count: 300_007)
        for (rank, outcome) in outcomes.enumerated() {
            #expect(outcome.error == nil, "rank \(rank): \(outcome.error.map { "\($0)" } ?? "")")
            let exact = outcome.values == expected
            #expect(exact, "rank \(rank)")
        }
    }
}
