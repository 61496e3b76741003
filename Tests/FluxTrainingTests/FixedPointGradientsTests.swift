import Foundation
import FluxTensor
import Testing

@testable import FluxTraining

/// The order-independent exact sum of gradient buffers (issue 12), by seeded random cases.
@Suite struct FixedPointGradientsTests {
    typealias F = FixedPointGradients

    /// A reproducible generator (SplitMix64).
    struct Seeded: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    /// Gradient-like values: mostly small, some spanning many orders of magnitude, some exact zeros.
    static func buffer(_ count: Int, _ rng: inout Seeded) -> [Float] {
        (0..<count).map { _ in
            switch Int.random(in: 0..<10, using: &rng) {
            case 0: 0
            case 1: Float.random(in: -1...1, using: &rng) * pow(2, Float(Int.random(in: -60...10, using: &rng)))
            default: Float.random(in: -1e-3...1e-3, using: &rng)
            }
        }
    }

    /// The exact sum of `buffers` grouped as `groups` (each group summed on its own, then the groups' integers added).
    static func exactSum(_ buffers: [[Float]], groups: [[Int]]) -> [Float] {
        let count = buffers[0].count
        var exponents = [Float](repeating: F.zeroExponent, count: F.blockCount(count))
        for b in buffers { F.mergeExponents(of: b, count: count, into: &exponents) }
        var total = [Int64](repeating: 0, count: count)
        for group in groups {
            var partial = [Int64](repeating: 0, count: count)
            for index in group { F.accumulate(buffers[index], count: count, exponents: exponents, into: &partial) }
            for i in 0..<count { total[i] &+= partial[i] }
        }
        var out = [Float](repeating: .nan, count: count)
        F.convert(total, count: count, exponents: exponents, into: &out)
        return out
    }

    @Test(arguments: [1, 2, 3, 5, 8]) func sum_anyOrderAndGrouping_sameBits(buffers n: Int) {
        var rng = Seeded(state: UInt64(n))
        let count = 2 * F.blockSize + 37
        let buffers = (0..<n).map { _ in Self.buffer(count, &rng) }
        let reference = Self.exactSum(buffers, groups: [Array(0..<n)])
        for trial in 0..<6 {
            var order = Array(0..<n)
            order.shuffle(using: &rng)
            let cut = n == 1 ? 1 : Int.random(in: 1..<n, using: &rng)
            let grouped = trial % 2 == 0 ? [Array(order)] : [Array(order[..<cut]), Array(order[cut...])]
            let result = Self.exactSum(buffers, groups: grouped)
            let same = result.map(\.bitPattern) == reference.map(\.bitPattern)
            #expect(same, "order \(order), groups \(grouped)")
        }
        // And it is the true sum, up to the grid and one fp32 rounding.
        for i in stride(from: 0, to: count, by: 97) {
            let exact = buffers.reduce(0.0) { $0 + Double($1[i]) }
            #expect(abs(Double(reference[i]) - exact) <= abs(exact) * 1e-7 + Double(n) * pow(2, -40), "element \(i)")
        }
    }

    @Test func roundTrip_oneBuffer_withinHalfAGridStep() {
        var rng = Seeded(state: 42)
        let count = 3 * F.blockSize
        let values = Self.buffer(count, &rng)
        let back = Self.exactSum([values], groups: [[0]])
        var exponents = [Float](repeating: F.zeroExponent, count: F.blockCount(count))
        F.mergeExponents(of: values, count: count, into: &exponents)
        for i in 0..<count {
            let step = pow(2.0, Double(exponents[i / F.blockSize]) - Double(F.precision))
            let error = abs(Double(back[i]) - Double(values[i]))
            #expect(error <= step / 2 + Double(values[i].ulp) / 2, "element \(i): \(values[i]) → \(back[i])")
        }
    }

    @Test func extremes_zerosSubnormalsAndLargestFloats_roundTripExactly() {
        let count = 4 * F.blockSize
        var values = [Float](repeating: 0, count: count)
        // Block 0: zeros only. Block 1: subnormals. Block 2: the largest floats. Block 3: mixed signs near 1.
        for i in 0..<F.blockSize {
            values[F.blockSize + i] = Float.leastNonzeroMagnitude * Float(i % 7) * (i % 2 == 0 ? 1 : -1)
            values[2 * F.blockSize + i] = Float.greatestFiniteMagnitude / Float(1 + i % 3) * (i % 2 == 0 ? 1 : -1)
            values[3 * F.blockSize + i] = Float(i) / 1000 - 0.5
        }
        let back = Self.exactSum([values], groups: [[0]])
        // Equal as numbers (an integer sum has no −0: a −0 comes back as +0).
        let mismatches = values.indices.filter { back[$0] != values[$0] }
        #expect(mismatches.isEmpty, "\(mismatches.count) differ, first at \(mismatches.first ?? -1)")
    }

    @Test(arguments: [Float.nan, .infinity, -.infinity]) func nonFinite_marksItsBlock(value: Float) {
        var values = [Float](repeating: 1, count: 2 * F.blockSize)
        values[F.blockSize + 5] = value
        var exponents = [Float](repeating: F.zeroExponent, count: 2)
        F.mergeExponents(of: values, count: values.count, into: &exponents)
        #expect(exponents[0] == 1 && exponents[1] == F.nonFiniteExponent)
        #expect(exponents.withUnsafeBufferPointer(F.hasNonFinite))
        // Merged with a finite buffer (a max all-reduce), the mark survives.
        var merged = [Float](repeating: F.zeroExponent, count: 2)
        F.mergeExponents(of: [Float](repeating: 3, count: 2 * F.blockSize), count: 2 * F.blockSize, into: &merged)
        for b in 0..<2 { merged[b] = max(merged[b], exponents[b]) }
        #expect(merged.withUnsafeBufferPointer(F.hasNonFinite))
    }

    @Test func bound_maxSummandsOfLargestValues_doNotOverflow() {
        // Every value at the top of its grid: 2^12 of them sum to just below 2^62.
        let values = [Float](repeating: Float(1).nextDown, count: 8)
        var exponents = [Float](repeating: F.zeroExponent, count: 1)
        F.mergeExponents(of: values, count: 8, into: &exponents)
        var sums = [Int64](repeating: 0, count: 8)
        for _ in 0..<F.maxSummands { F.accumulate(values, count: 8, exponents: exponents, into: &sums) }
        #expect(sums.allSatisfy { $0 > 0 && $0 < Int64(1) << 62 })
        var out = [Float](repeating: 0, count: 8)
        F.convert(sums, count: 8, exponents: exponents, into: &out)
        #expect(out.allSatisfy { abs($0 - Float(F.maxSummands) * Float(1).nextDown) <= 1e-3 })
    }

    @Test func kernels_avx2AndPortable_sameBits() {
        var rng = Seeded(state: 9)
        let count = 3 * F.blockSize + 5
        var buffers = (0..<3).map { _ in Self.buffer(count, &rng) }
        // Exact ties of the grid (x · 2^k = n + 0.5) round half to even on both paths.
        for i in 0..<8 { buffers[0][i] = Float(i) + 0.5 }
        buffers[0][8] = 1_048_576  // makes the block's grid step 2^-29, so small values tie often
        let avx2 = Self.exactSum(buffers, groups: [[0, 1, 2]])
        KernelDispatch.forcePortable(true)
        defer { KernelDispatch.forcePortable(false) }
        let portable = Self.exactSum(buffers, groups: [[0, 1, 2]])
        #expect(avx2.map(\.bitPattern) == portable.map(\.bitPattern))
        var exponents = [Float](repeating: F.zeroExponent, count: F.blockCount(count))
        F.mergeExponents(of: buffers[0], count: count, into: &exponents)
        #expect(exponents[0] == 21)
    }
}

extension FixedPointGradientsTests {
    @Test func precision_keepsEverySumBelow2To55_andAtLeast43Bits() {
        #expect(F.precision(summands: 1) == 50 && F.precision(summands: 16) == 50 && F.precision(summands: 32) == 50)
        #expect(F.precision(summands: 33) == 49 && F.precision(summands: 4096) == 43)
        for summands in [1, 2, 3, 31, 32, 33, 100, 1000, 4096] {
            let p = F.precision(summands: summands)
            // S values each below 2^p sum below S · 2^p ≤ 2^55.
            #expect(Double(summands) * pow(2, Double(p)) <= pow(2, 55), "\(summands) summands at \(p) bits")
            #expect(p >= 43)
        }
    }

    @Test func pack56_roundTripsEveryValueInRange() {
        let values: [Int64] = [0, 1, -1, 255, -256, (1 << 55) - 1, -(1 << 55), 123_456_789_012_345, -98_765_432_109_876]
        var bytes = [UInt8](repeating: 0xAB, count: 7 * values.count)
        var back = [Int64](repeating: 0, count: values.count)
        values.withUnsafeBufferPointer { v in
            bytes.withUnsafeMutableBytes { F.pack56(v.baseAddress!, count: values.count, into: $0.baseAddress!) }
        }
        bytes.withUnsafeBytes { b in back.withUnsafeMutableBufferPointer { F.unpack56(b.baseAddress!, count: values.count, into: $0.baseAddress!) } }
        #expect(back == values)
        #expect(bytes[0..<7] == [0, 0, 0, 0, 0, 0, 0] && bytes[14..<21] == [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF])
    }

    @Test func maxSummandsOfLargestValues_atTheirPrecision_fit56Bits() {
        let p = F.precision(summands: F.maxSummands)
        let values: [Float] = Array(repeating: Float(1).nextDown, count: 8)
        var exponents = [Float](repeating: F.zeroExponent, count: 1)
        F.mergeExponents(of: values, count: 8, into: &exponents)
        var sums = [Int64](repeating: 0, count: 8)
        for _ in 0..<F.maxSummands { F.accumulate(values, count: 8, exponents: exponents, into: &sums, precision: p) }
        #expect(sums.allSatisfy { $0 > 0 && $0 < Int64(1) << 55 })
    }
}

extension FixedPointGradientsTests {
    /// The trainer's one-pass path gives the bytes and floats of the reference path (accumulate, pack56, unpack56,
    /// convert), on AVX2 and portable kernels, with a zero block and a length that is no multiple of 4.
    @Test(arguments: [false, true]) func quantizeAndPack_matchesAccumulateThenPack(portable: Bool) {
        KernelDispatch.forcePortable(portable)
        defer { KernelDispatch.forcePortable(false) }
        var rng = Seeded(state: 11)
        let count = 3 * F.blockSize + 7
        var buffers = (0..<3).map { _ in Self.buffer(count, &rng) }
        for b in buffers.indices { for i in F.blockSize..<(2 * F.blockSize) { buffers[b][i] = 0 } }  // a zero block
        for i in 0..<8 { buffers[0][i] = Float(i) + 0.5 }  // ties of the grid
        var exponents = [Float](repeating: F.zeroExponent, count: F.blockCount(count))
        for b in buffers { F.mergeExponents(of: b, count: count, into: &exponents) }
        let p = F.precision(summands: 3)
        var sums = [Int64](repeating: 0, count: count)
        for b in buffers { F.accumulate(b, count: count, exponents: exponents, into: &sums, precision: p) }
        var reference = [UInt8](repeating: 0, count: 7 * count)
        reference.withUnsafeMutableBytes { F.pack56(sums, count: count, into: $0.baseAddress!) }
        var packed = [UInt8](repeating: 0xCD, count: 7 * count + 1)  // one guard byte past the end
        buffers[0].withUnsafeBufferPointer { a in buffers[1].withUnsafeBufferPointer { b in buffers[2].withUnsafeBufferPointer { c in
            packed.withUnsafeMutableBytes {
                F.quantizeAndPack([a.baseAddress!, b.baseAddress!, c.baseAddress!], count: count, exponents: exponents,
                                  precision: p, into: $0.baseAddress!)
            }
        } } }
        #expect(Array(packed[..<(7 * count)]) == reference)
        #expect(packed[7 * count] == 0xCD, "nothing written past the last element")
        var viaInt64 = [Float](repeating: .nan, count: count), direct = [Float](repeating: .nan, count: count)
        F.convert(sums, count: count, exponents: exponents, into: &viaInt64, precision: p)
        packed.withUnsafeBytes { F.convertPacked($0.baseAddress!, count: count, exponents: exponents, precision: p, into: &direct) }
        #expect(direct.map(\.bitPattern) == viaInt64.map(\.bitPattern))
    }
}
