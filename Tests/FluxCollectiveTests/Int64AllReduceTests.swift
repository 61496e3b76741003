import Foundation
import Testing
@testable import FluxCollective
import FluxProtocol

/// The exact all-reduce: a wrapping Int64 sum, the same bits on every rank and for any order of the ranks.
@Suite struct Int64AllReduceTests {
    /// Element i of input `source`: two of three elements are about ±2⁶¹ (signs alternating with the source, so at
    /// most 3 of 5 agree and the sum stays below 2⁶³), the third is small. Any fp64 path would round the large
    /// values' low bits away and lose the small ones entirely next to them.
    static func input(source: Int, count: Int) -> [Int64] {
        (0..<count).map { i in
            let noise = Int64((i &* 7919 &+ source &* 104_729) % 1_000_003)
            if i % 3 == 2 { return Int64(source + 1) * 12_345 - noise }
            let large = (Int64(1) << 61) - 2 * noise - 1
            return (i + source) % 2 == 0 ? large : -large
        }
    }

    /// The sum of the inputs of `sources`, computed in Int128 and required to fit in Int64.
    static func exactSum(sources: Int, count: Int) throws -> [Int64] {
        var sum = [Int128](repeating: 0, count: count)
        for source in 0..<sources {
            for (i, x) in input(source: source, count: count).enumerated() { sum[i] += Int128(x) }
        }
        return try sum.map { try #require(Int64(exactly: $0)) }
    }

    /// Rank r all-reduces the input of source `order[r]`.
    static func reduce(
        order: [Int], count: Int, subChunkBytes: Int, endpoints: [String]? = nil
    ) -> [Result<[Int64], CollectiveError>] {
        onRing(order.count, endpoints: endpoints, subChunkBytes: subChunkBytes) {
            rank, communicator throws(CollectiveError) in
            var values = input(source: order[rank], count: count)
            try values.withUnsafeMutableBufferPointer { buffer throws(CollectiveError) in
                try communicator.allReduce(buffer)
            }
            return values
        }
    }

    static let cases: [(Int, Int)] = (1...5).flatMap { size in
        Set([0, 1, 7, max(size - 1, 0), 100_003]).sorted().map { (size, $0) }
    }

    @Test(arguments: cases)
    func allReduceInt64_anyLengthAndRingSize_sumsExactlyOnEveryRank(size: Int, count: Int) throws {
        let expected = try Self.exactSum(sources: size, count: count)
        // 4096-byte sub-chunks: 512 elements a frame, so 100 003 elements make dozens of frames per chunk.
        let outcomes = Self.reduce(order: Array(0..<size), count: count, subChunkBytes: 4096)
        for (rank, outcome) in outcomes.enumerated() {
            let values = try outcome.get()
            #expect(firstDifference(values, expected) == nil, "rank \(rank) of \(size), \(count) elements")
        }
        // The large values are not fp64 numbers (2⁶¹ − 1 rounds to 2⁶¹): a float path could not produce this sum.
        let large = Self.input(source: 0, count: 1)[0]
        #expect(Int64(Double(large)) != large)
    }

    @Test(arguments: [3, 5])
    func allReduceInt64_ranksInAnotherOrder_giveTheSameBits(size: Int) throws {
        let count = 100_003
        let identity = Self.reduce(order: Array(0..<size), count: count, subChunkBytes: 4096)
        let reversed = Self.reduce(order: Array((0..<size).reversed()), count: count, subChunkBytes: 4096)
        let rotated = Self.reduce(order: (0..<size).map { ($0 + 2) % size }, count: count, subChunkBytes: 4096)
        let expected = try Self.exactSum(sources: size, count: count)
        for outcome in identity + reversed + rotated {
            let values = try outcome.get()
            #expect(firstDifference(values, expected) == nil)
        }
    }

    /// Sub-chunks of fewer than 8 bytes still carry one element each (4 and 12 are valid `subChunkBytes`).
    @Test(arguments: [4, 12])
    func allReduceInt64_subChunkBelowTwoFloats_sendsOneElementPerFrame(subChunkBytes: Int) throws {
        let expected = try Self.exactSum(sources: 3, count: 37)
        for outcome in Self.reduce(order: [0, 1, 2], count: 37, subChunkBytes: subChunkBytes) {
            let values = try outcome.get()
            #expect(firstDifference(values, expected) == nil)
        }
    }

    /// Partial sums that overflow wrap, and wrap back: the result is the true sum whenever it fits (the first four
    /// elements, whichever rank starts each chunk); a sum that does not fit wraps as `&+` does (the last).
    @Test func allReduceInt64_partialSumsOverflow_wrapBackToTheExactSum() throws {
        let inputs: [[Int64]] = [[.max, .min, .max, .min, .max], [.max, .max, 1, -1, 1], [-.max, .max, .min, 1, 0]]
        let outcomes = onRing(3, subChunkBytes: 8) { rank, communicator throws(CollectiveError) in
            var values = inputs[rank]
            try values.withUnsafeMutableBufferPointer { buffer throws(CollectiveError) in
                try communicator.allReduce(buffer)
            }
            return values
        }
        let expected = (0..<5).map { i in inputs.reduce(Int64(0)) { $0 &+ $1[i] } }
        #expect(expected == [.max, .max - 1, 0, .min, .min])
        for outcome in outcomes {
            let values = try outcome.get()
            #expect(firstDifference(values, expected) == nil)
        }
    }

    @Test func allReduceInt64_sameHostIPCEndpoints_sumsExactly() throws {
        let job = JobID("job-int64-ipc-\(getpid())")
        let endpoints = (0..<3).map { Ring.sameHostEndpoint(job: job, generation: 1, rank: $0) }
        let expected = try Self.exactSum(sources: 3, count: 100_003)
        for outcome in Self.reduce(order: [0, 1, 2], count: 100_003, subChunkBytes: 64 * 1024, endpoints: endpoints) {
            let values = try outcome.get()
            #expect(firstDifference(values, expected) == nil)
        }
    }

    /// A rank running the int64 all-reduce while its neighbour runs the fp32 one on as many elements (so every
    /// offset and count agree) fails with `protocolMismatch` naming both kinds: the element kind in the ring
    /// header keeps int64 bits from ever being added as fp32, or the reverse. (A rank that fails first closes its
    /// sockets at once and may drop its own unsent frame, so its neighbour may see it vanish instead.)
    @Test func allReduceInt64_neighbourRunsFloat32_failsWithProtocolMismatch() throws {
        let outcomes = onRing(2, timeout: .seconds(2)) { rank, communicator throws(CollectiveError) -> Int in
            try communicator.barrier()
            if rank == 0 {
                var values = [Int64](repeating: 1 << 40, count: 1000)
                try values.withUnsafeMutableBufferPointer { buffer throws(CollectiveError) in
                    try communicator.allReduce(buffer)
                }
            } else {
                var values = [Float](repeating: 1, count: 1000)
                try values.withUnsafeMutableBufferPointer { buffer throws(CollectiveError) in
                    try communicator.allReduce(buffer)
                }
            }
            return rank
        }
        var mismatches = 0
        for (rank, outcome) in outcomes.enumerated() {
            switch outcome {
            case let .failure(.protocolMismatch(left, _, expected, found)):
                mismatches += 1
                #expect(left == 1 - rank)
                let (mine, theirs) = rank == 0 ? ("int64", "float32") : ("float32", "int64")
                #expect(expected.contains("of \(mine)") && found.contains("of \(theirs)"), "\(expected) / \(found)")
            case .failure(.peerDisconnected), .failure(.peerTimeout):
                break
            default:
                Issue.record("rank \(rank) should fail with protocolMismatch, got \(outcome)")
            }
        }
        #expect(mismatches >= 1)
    }

    @Test func addKernel_unalignedSource_wrapsElementWise() {
        let a: [Int64] = [1, .max, -5, .min, 0, 42, -42, 7, 8, 9]
        let b: [Int64] = [2, 1, 5, -1, 0, -42, 42, -7, 1 << 62, -(1 << 62)]
        var target = a
        // Bytes of b starting at an odd address, as libzmq may place a payload.
        var bytes = [UInt8](repeating: 0, count: 1 + 8 * b.count)
        b.withUnsafeBytes { source in bytes.withUnsafeMutableBytes { $0.baseAddress!.advanced(by: 1).copyMemory(
            from: source.baseAddress!, byteCount: source.count) } }
        bytes.withUnsafeBytes { source in
            target.withUnsafeMutableBufferPointer {
                RingKernels.add(into: $0.baseAddress!, from: source.baseAddress! + 1, count: b.count)
            }
        }
        #expect(target == zip(a, b).map { $0 &+ $1 })
    }
}
