@testable import FluxTraining

/// The exact sum's reference path, in plain Swift, step by step: accumulate each buffer's integers on the grid in
/// int64, pack them into the ring's 7-byte integers, unpack, convert back. The trainer's C kernels
/// (`quantizeAndPack`, `convertPacked`) must give the same bits, and the properties of the grid are tested here.
extension FixedPointGradients {
    /// Adds each value's integer on its block's grid to `sums`: round-half-even(x · 2^(precision − e)).
    static func accumulate(
        _ values: UnsafePointer<Float>, count: Int, exponents: UnsafePointer<Float>, into sums: UnsafeMutablePointer<Int64>,
        precision: Int = precision
    ) {
        for block in 0..<blockCount(count) where exponents[block] > zeroExponent {
            let scale = Double(sign: .plus, exponent: precision - Int(exponents[block]), significand: 1)
            for i in (block * blockSize)..<min(count, (block + 1) * blockSize) {
                sums[i] &+= Int64((Double(values[i]) * scale).rounded(.toNearestOrEven))
            }
        }
    }

    /// Writes each sum back as fp32: Float(Double(sum) · 2^(e − precision)); blocks without a value get zeros.
    static func convert(
        _ sums: UnsafePointer<Int64>, count: Int, exponents: UnsafePointer<Float>, into values: UnsafeMutablePointer<Float>,
        precision: Int = precision
    ) {
        for block in 0..<blockCount(count) {
            let exponent = exponents[block]
            let scale = Double(sign: .plus, exponent: Int(exponent) - precision, significand: 1)
            for i in (block * blockSize)..<min(count, (block + 1) * blockSize) {
                values[i] = exponent > zeroExponent ? Float(Double(sums[i]) * scale) : 0
            }
        }
    }

    /// Writes `count` sums, each in −2^55 ..< 2^55, as 7-byte little-endian two's-complement integers.
    static func pack56(_ sums: UnsafePointer<Int64>, count: Int, into bytes: UnsafeMutableRawPointer) {
        for i in 0..<count {
            for k in 0..<7 {
                bytes.storeBytes(of: UInt8(truncatingIfNeeded: UInt64(bitPattern: sums[i]) >> (8 * UInt64(k))),
                                 toByteOffset: 7 * i + k, as: UInt8.self)
            }
        }
    }

    /// Reads `count` 7-byte integers, sign-extended to Int64.
    static func unpack56(_ bytes: UnsafeRawPointer, count: Int, into sums: UnsafeMutablePointer<Int64>) {
        for i in 0..<count {
            var value: UInt64 = 0
            for k in 0..<7 { value |= UInt64(bytes.load(fromByteOffset: 7 * i + k, as: UInt8.self)) << (8 * UInt64(k)) }
            sums[i] = Int64(bitPattern: value << 8) >> 8
        }
    }
}
