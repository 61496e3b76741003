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

    // MARK: ReduceOperation.max

    /// Input `source` for the maximum: varied values, plus elements where the ranks hold −0 and +0, only −0, a
    /// NaN (its payload naming the rank) or −∞.
    static func maxInput(source: Int, count: Int) -> [Float] {
        (0..<count).map { i in
            switch i % 11 {
            case 3: source % 2 == 0 ? -0.0 : 0.0
            case 4: -0.0
            case 5: source == i % 4 ? Float(nan: UInt32(source + 1), signaling: false) : Float(source)
            case 7: source == 1 ? -.infinity : -Float(source) - 0.5
            default: Float(((i &* 7 &+ source &* 13) % 101) - 50) * 0.37
            }
        }
    }

    /// The maximum as `ReduceOperation.max` documents it, written independently of the kernel: the canonical NaN
    /// when any value is NaN, else the largest with −0 below +0.
    static func referenceMax(_ values: [Float]) -> Float {
        if values.contains(where: \.isNaN) { return .nan }
        return values.max { $0 < $1 || ($0 == $1 && $0.sign == .minus && $1.sign == .plus) }!
    }

    /// Rank r all-reduces with `.max` the input of source `order[r]`, followed by `trailerCount` of its values.
    static func reduceMax(order: [Int], count: Int, trailerCount: Int = 0) -> [Result<[Float], CollectiveError>] {
        onRing(order.count, subChunkBytes: 4096) { rank, communicator throws(CollectiveError) in
            var values = maxInput(source: order[rank], count: count + trailerCount)
            var trailer = Array(values.suffix(trailerCount))
            values.removeLast(trailerCount)
            try values.withUnsafeMutableBufferPointer { buffer throws(CollectiveError) in
                try trailer.withUnsafeMutableBufferPointer { tail throws(CollectiveError) in
                    try communicator.allReduce(buffer, trailer: tail, op: .max)
                }
            }
            return values + trailer
        }
    }

    static func expectedMax(sources: Int, count: Int) -> [UInt32] {
        let inputs = (0..<sources).map { maxInput(source: $0, count: count) }
        return (0..<count).map { i in referenceMax(inputs.map { $0[i] }).bitPattern }
    }

    static let maxCases: [(Int, Int)] = (1...5).flatMap { size in
        Set([0, 1, 7, max(size - 1, 0), 100_003]).sorted().map { (size, $0) }
    }

    @Test(arguments: maxCases)
    func allReduceMax_anyLengthAndRingSize_isTheElementWiseMaximumOnEveryRank(size: Int, count: Int) throws {
        let expected = Self.expectedMax(sources: size, count: count)
        for (rank, outcome) in Self.reduceMax(order: Array(0..<size), count: count).enumerated() {
            let bits = try outcome.get().map(\.bitPattern)
            #expect(firstDifference(bits, expected) == nil, "rank \(rank) of \(size), \(count) elements")
        }
    }

    @Test func allReduceMax_ranksInAnotherOrder_giveTheSameBits() throws {
        let expected = Self.expectedMax(sources: 4, count: 10_007)
        for order in [[0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1]] {
            for outcome in Self.reduceMax(order: order, count: 10_007) {
                let bits = try outcome.get().map(\.bitPattern)
                #expect(firstDifference(bits, expected) == nil, "order \(order)")
            }
        }
    }

    @Test func allReduceMax_withTrailer_reducesBothParts() throws {
        let expected = Self.expectedMax(sources: 3, count: 1000 + 5)
        for outcome in Self.reduceMax(order: [0, 1, 2], count: 1000, trailerCount: 5) {
            let bits = try outcome.get().map(\.bitPattern)
            #expect(firstDifference(bits, expected) == nil)
        }
    }

    @Test func maximumKernel_nanAndSignedZeros_sameBitsInEitherOrder() {
        let nan1 = Float(nan: 1, signaling: false), nan2 = Float(nan: 2, signaling: true)
        let a0: [Float] = [1, -1, 0, -0.0, -0.0, nan1, 3, nan1, -.infinity, .infinity, 2, 5, 0]
        let b0: [Float] = [2, -2, -0.0, 0, -0.0, 3, nan2, nan2, -7, 1, .greatestFiniteMagnitude, 5, 0]
        let expected0: [Float] = [2, -1, 0, 0, -0.0, .nan, .nan, .nan, -7, .infinity, .greatestFiniteMagnitude, 5, 0]
        // 39 elements: two 16-wide SIMD blocks and a scalar tail, each seeing every case.
        let a = a0 + a0 + a0, b = b0 + b0 + b0, expected = expected0 + expected0 + expected0
        func maximum(_ x: [Float], _ y: [Float]) -> [UInt32] {
            var target = x
            // y's bytes at an odd address, as libzmq may place a payload.
            var bytes = [UInt8](repeating: 0, count: 1 + 4 * y.count)
            y.withUnsafeBytes { source in
                bytes.withUnsafeMutableBytes { $0.baseAddress!.advanced(by: 1).copyMemory(
                    from: source.baseAddress!, byteCount: source.count) }
            }
            bytes.withUnsafeBytes { source in
                target.withUnsafeMutableBufferPointer {
                    RingKernels.maximum(into: $0.baseAddress!, from: source.baseAddress! + 1, count: y.count)
                }
            }
            return target.map(\.bitPattern)
        }
        #expect(maximum(a, b) == expected.map(\.bitPattern))
        #expect(maximum(b, a) == expected.map(\.bitPattern))
        #expect(Float.nan.bitPattern == 0x7FC0_0000)
    }
}
