import Foundation
import FluxTensor

/// Order-independent exact summation of gradients (issue 12): the sum of many fp32 gradient buffers that is the
/// same bits however the buffers are grouped and in whatever order they are added — so a job's parameters do not
/// depend on how many workers computed them.
///
/// A float sum is not associative; an integer sum is. Each buffer is cut into blocks of `blockSize` values. Every
/// block gets one exponent e, the largest over all buffers (workers agree on it with a max all-reduce, which is
/// exact), such that every value of the block is below 2^e in magnitude. Each value x then becomes the integer
/// round(x · 2^(precision − e)) (round half to even), the integers of all buffers are summed (in any order, by
/// any grouping: the result is the same), and the sum is converted back once: Float(Double(sum) · 2^(e − precision)).
///
/// Bounds (docs/architecture.md): |x| < 2^e, so each integer is below 2^precision = 2^50 in magnitude and keeps 50
/// bits relative to its block's largest power of two (fp32 keeps 24); a sum of at most `maxSummands` = 2^12 of them
/// stays below 2^62 < 2^63, so it cannot overflow. Values more than 50 bits below their block's largest round to a
/// multiple of 2^(e − 50) (as small gradients already do in an fp32 sum with a large neighbour).
public enum FixedPointGradients {
    /// Values per block (one exponent each).
    public static let blockSize = 1024
    /// Bits each value keeps below its block's bound 2^e.
    public static let precision = 50
    /// The most buffers one sum may hold without overflow: 2^(62 − precision).
    public static let maxSummands = 1 << 12
    /// The exponent of a block with no nonzero value (below any real one; merges by max).
    public static let zeroExponent: Float = -100_000
    /// The exponent of a block holding a NaN or an infinity (above any real one, so a max all-reduce spreads it).
    public static let nonFiniteExponent: Float = 100_000

    /// Blocks of a buffer of `count` values.
    public static func blockCount(_ count: Int) -> Int { (count + blockSize - 1) / blockSize }

    /// Raises `exponents[b]` (a `blockCount(count)` array) to each block's bound of `values`: the e with
    /// max |x| < 2^e (`frexp`'s exponent), `nonFiniteExponent` for a block with a NaN or infinity.
    public static func mergeExponents(
        of values: UnsafePointer<Float>, count: Int, into exponents: UnsafeMutablePointer<Float>
    ) {
        for block in 0..<blockCount(count) {
            let start = block * blockSize
            let (largest, nonFinite) = FixedPointKernels.blockMax(values + start, count: min(count, start + blockSize) - start)
            let exponent: Float = nonFinite ? nonFiniteExponent : largest == 0 ? zeroExponent : Float(largest.exponent + 1)
            exponents[block] = max(exponents[block], exponent)
        }
    }

    /// Whether any block holds a non-finite value.
    public static func hasNonFinite(_ exponents: UnsafeBufferPointer<Float>) -> Bool {
        exponents.contains { $0 >= nonFiniteExponent || $0.isNaN }
    }

    /// Adds each value's integer on its block's grid to `sums` (exact, wrapping only past `maxSummands` buffers).
    /// Every block's exponent must bound the block (`mergeExponents` over all buffers) and be finite.
    public static func accumulate(
        _ values: UnsafePointer<Float>, count: Int, exponents: UnsafePointer<Float>, into sums: UnsafeMutablePointer<Int64>
    ) {
        for block in 0..<blockCount(count) {
            let exponent = exponents[block]
            guard exponent > zeroExponent else { continue }  // no nonzero value anywhere in this block
            let scale = Double(sign: .plus, exponent: precision - Int(exponent), significand: 1)
            // Exact: x · 2^k is exact in Double (24-bit significand), its magnitude below 2^50; rounded half to even.
            let start = block * blockSize
            FixedPointKernels.accumulate(values + start, count: min(count, start + blockSize) - start, scale: scale,
                                         into: sums + start)
        }
    }

    /// Writes each sum back as fp32: Float(Double(sum) · 2^(e − precision)); blocks without a value get zeros.
    public static func convert(
        _ sums: UnsafePointer<Int64>, count: Int, exponents: UnsafePointer<Float>, into values: UnsafeMutablePointer<Float>
    ) {
        for block in 0..<blockCount(count) {
            let exponent = exponents[block]
            let range = (block * blockSize)..<min(count, (block + 1) * blockSize)
            guard exponent > zeroExponent else {
                for i in range { values[i] = 0 }
                continue
            }
            let scale = Double(sign: .plus, exponent: Int(exponent) - precision, significand: 1)
            FixedPointKernels.convert(sums + range.lowerBound, count: range.count, scale: scale, into: values + range.lowerBound)
        }
    }
}
