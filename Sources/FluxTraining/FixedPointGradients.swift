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
/// Bounds (docs/architecture.md): |x| < 2^e, so each integer is below 2^p in magnitude and keeps p bits relative to
/// its block's largest power of two (fp32 keeps 24). The ring carries the sums as 56-bit integers (`pack56`: 7 bytes,
/// so exact sends less than twice fp32's bytes), so a sum of S buffers must stay below 2^55: p =
/// `precision(summands: S)` = min(50, 55 − ⌈log2 S⌉), which is 50 up to 32 buffers and at least 43 for the most,
/// `maxSummands` = 2^12. Values more than p bits below their block's largest round to a multiple of 2^(e − p) (as
/// small gradients already do in an fp32 sum with a large neighbour).
public enum FixedPointGradients {
    /// Values per block (one exponent each).
    public static let blockSize = 1024
    /// Bits each value keeps below its block's bound 2^e, at most (`precision(summands:)` for a sum of many).
    public static let precision = 50

    /// The bits each of `summands` buffers keeps so that their sum stays below 2^55 (a packed 56-bit integer).
    public static func precision(summands: Int) -> Int {
        let bits = Int.bitWidth - max(0, summands - 1).leadingZeroBitCount  // ⌈log2 summands⌉
        return min(precision, 55 - bits)
    }
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

    /// A rank's half of the exact sum in one pass: for every
    /// value, the sum over `slots` of its integer on its block's grid, written as a 7-byte integer into `packed`
    /// (7 · count bytes); blocks with no nonzero value anywhere get zeros. The sum must fit 56 bits: `precision` =
    /// `precision(summands:)` of the job's slot count.
    public static func quantizeAndPack(
        _ slots: [UnsafePointer<Float>], count: Int, exponents: UnsafePointer<Float>, precision: Int,
        into packed: UnsafeMutableRawPointer
    ) {
        // In increasing block order: a call writes its last element with 7 bytes, the others with 8 that the next
        // element overwrites.
        let pointers = slots.map { Optional($0) }
        for block in 0..<blockCount(count) {
            let range = (block * blockSize)..<min(count, (block + 1) * blockSize)
            let exponent = exponents[block]
            guard exponent > zeroExponent, !slots.isEmpty else {
                (packed + 7 * range.lowerBound).initializeMemory(as: UInt8.self, repeating: 0, count: 7 * range.count)
                continue
            }
            let scale = Double(sign: .plus, exponent: precision - Int(exponent), significand: 1)
            FixedPointKernels.quantizeAndPack(pointers, offset: range.lowerBound, count: range.count, scale: scale,
                                              into: packed + 7 * range.lowerBound)
        }
    }

    /// Each 7-byte sum of `packed` back to fp32 on its block's grid: Float(Double(sum) · 2^(e − precision)); blocks
    /// without a value get zeros.
    public static func convertPacked(
        _ packed: UnsafeRawPointer, count: Int, exponents: UnsafePointer<Float>, precision: Int,
        into values: UnsafeMutablePointer<Float>
    ) {
        for block in 0..<blockCount(count) {
            let range = (block * blockSize)..<min(count, (block + 1) * blockSize)
            let exponent = exponents[block]
            guard exponent > zeroExponent else {
                (values + range.lowerBound).update(repeating: 0, count: range.count)
                continue
            }
            let scale = Double(sign: .plus, exponent: Int(exponent) - precision, significand: 1)
            FixedPointKernels.unpackAndConvert(packed + 7 * range.lowerBound, count: range.count, scale: scale,
                                               into: values + range.lowerBound)
        }
    }
}
