import Foundation
import Testing
@testable import FluxCollective
import FluxProtocol

/// The packed exact all-reduce of `reduction: exact`: 7-byte integers summed modulo 2^56, the same bits on every rank
/// and for any order of the ranks.
@Suite struct Packed56AllReduceTests {
    /// Element i of source s: values near ±2^53 (a sum of 4 stays below 2^55) with small ones between.
    static func input(source: Int, count: Int) -> [Int64] {
        (0..<count).map { i in
            let noise = Int64((i &* 7919 &+ source &* 104_729) % 1_000_003)
            if i % 3 == 2 { return Int64(source + 1) * 12_345 - noise }
            let large = (Int64(1) << 53) - 2 * noise - 1
            return (i + source) % 2 == 0 ? large : -large
        }
    }

    static func pack(_ values: [Int64]) -> [UInt8] {
        values.flatMap { value in (0..<7).map { UInt8(truncatingIfNeeded: UInt64(bitPattern: value) >> (8 * UInt64($0))) } }
    }

    static func unpack(_ bytes: [UInt8]) -> [Int64] {
        stride(from: 0, to: bytes.count, by: 7).map { o in
            var v: UInt64 = 0
            for k in 0..<7 { v |= UInt64(bytes[o + k]) << (8 * UInt64(k)) }
            return Int64(bitPattern: v << 8) >> 8
        }
    }

    /// `communicator.allReduce(packed56:)` on an array (its closure cannot throw a typed error).
    static func allReduce(_ bytes: inout [UInt8], _ communicator: RingCommunicator) throws(CollectiveError) {
        var failure: CollectiveError?
        bytes.withUnsafeMutableBytes { buffer in
            do throws(CollectiveError) { try communicator.allReduce(packed56: buffer) } catch { failure = error }
        }
        if let failure { throw failure }
    }

    static func reduce(order: [Int], count: Int, subChunkBytes: Int) -> [Result<[Int64], CollectiveError>] {
        onRing(order.count, subChunkBytes: subChunkBytes) { rank, communicator throws(CollectiveError) in
            var bytes = pack(input(source: order[rank], count: count))
            try allReduce(&bytes, communicator)
            return unpack(bytes)
        }
    }

    static let cases: [(Int, Int)] = (1...4).flatMap { size in Set([0, 1, 2, 7, 100_003]).sorted().map { (size, $0) } }

    @Test(arguments: cases)
    func allReducePacked56_anyLengthAndRingSize_sumsExactlyOnEveryRank(size: Int, count: Int) throws {
        var expected = [Int64](repeating: 0, count: count)
        for source in 0..<size { for (i, x) in Self.input(source: source, count: count).enumerated() { expected[i] += x } }
        // 4096-byte sub-chunks: 585 elements (4095 bytes) a frame, so frames start at odd byte offsets of the buffer.
        for (rank, outcome) in Self.reduce(order: Array(0..<size), count: count, subChunkBytes: 4096).enumerated() {
            #expect(firstDifference(try outcome.get(), expected) == nil, "rank \(rank) of \(size), \(count) elements")
        }
    }

    @Test func allReducePacked56_ranksInAnotherOrder_giveTheSameBits() throws {
        let a = try Self.reduce(order: [0, 1, 2], count: 10_007, subChunkBytes: 4096).map { try $0.get() }
        let b = try Self.reduce(order: [2, 0, 1], count: 10_007, subChunkBytes: 4096).map { try $0.get() }
        #expect(a.allSatisfy { $0 == a[0] } && b.allSatisfy { $0 == a[0] })
    }

    @Test func addKernel_wrapsModulo2To56_andLeavesTheNextElementAlone() {
        // Two elements: the first overflows 2^55 − 1 + 1 → −2^55; the second must be untouched by the first's carry.
        var target = Self.pack([(Int64(1) << 55) - 1, -3])
        let source = Self.pack([1, 5])
        target.withUnsafeMutableBytes { t in
            source.withUnsafeBytes { s in RingKernels.addPacked56(into: t.baseAddress!, from: s.baseAddress!, count: 2) }
        }
        #expect(Self.unpack(target) == [-(Int64(1) << 55), 2])
    }

    @Test(arguments: [1, 8, 9, 16, 17, 37]) func addKernel_anyCount_matchesIntegerSums(count: Int) {
        var rng = SystemRandomNumberGenerator()
        let a = (0..<count).map { _ in Int64.random(in: -(1 << 54)...(1 << 54), using: &rng) }
        let b = (0..<count).map { _ in Int64.random(in: -(1 << 54)...(1 << 54), using: &rng) }
        var target = Self.pack(a) + [0xEE]  // a guard byte past the end
        let source = Self.pack(b)
        target.withUnsafeMutableBytes { t in
            source.withUnsafeBytes { s in RingKernels.addPacked56(into: t.baseAddress!, from: s.baseAddress!, count: count) }
        }
        #expect(Self.unpack(Array(target.dropLast())) == zip(a, b).map { $0 + $1 } && target.last == 0xEE)
    }

    @Test func allReducePacked56_notAWholeNumberOfElements_isRefused() throws {
        let outcomes = onRing(2) { _, communicator throws(CollectiveError) in
            var bytes = [UInt8](repeating: 0, count: 15)
            try Self.allReduce(&bytes, communicator)
            return true
        }
        for outcome in outcomes {
            guard case .failure(.invalidArgument) = outcome else { Issue.record("expected invalidArgument, got \(outcome)"); continue }
        }
    }
}
