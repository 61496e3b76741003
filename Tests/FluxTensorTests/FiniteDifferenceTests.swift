import Foundation
import FluxTensor
import FluxTestKit
import Testing

/// Every kernel's backward against central finite differences of L = Σ out·dOut (style §F.3),
/// on both dispatch paths.
@Suite(.serialized) struct FiniteDifferenceTests {
    static let paths: [Bool] = [false, true]

    func withPath(_ portable: Bool, _ body: () throws -> Void) rethrows {
        KernelDispatch.forcePortable(portable)
        defer { KernelDispatch.forcePortable(false) }
        try body()
    }

    /// Σ a·b in Double.
    static func dot(_ a: [Float], _ b: [Float]) -> Double { zip(a, b).reduce(0) { $0 + Double($1.0) * Double($1.1) } }

    @Test(arguments: paths)
    func rmsNorm_backward(portable: Bool) {
        withPath(portable) {
            var random = TestRandom(seed: 11)
            let rows = 3, cols = 13
            var x = random.tensor([rows, cols]).scalars, w = random.tensor([cols]).scalars
            let dY = random.tensor([rows, cols]).scalars
            func forward(_ x: [Float], _ w: [Float]) -> ([Float], [Float]) {
                var y = [Float](repeating: 0, count: rows * cols), rstd = [Float](repeating: 0, count: rows)
                RMSNorm.forward(rows: rows, cols: cols, x: x, ldx: cols, weight: w, eps: 1e-6, y: &y, ldy: cols, rstd: &rstd)
                return (y, rstd)
            }
            let (_, rstd) = forward(x, w)
            var dX = [Float](repeating: 0, count: rows * cols), dW = [Float](repeating: 0, count: cols)
            RMSNorm.backward(rows: rows, cols: cols, x: x, ldx: cols, weight: w, rstd: rstd, dY: dY, lddY: cols, dX: &dX, lddX: cols, dWeight: &dW)
            let wCopy = w
            expectGradient("rmsnorm dX", input: &x, analytic: dX) { Self.dot(forward($0, wCopy).0, dY) }
            let xCopy = x
            expectGradient("rmsnorm dW", input: &w, analytic: dW) { Self.dot(forward(xCopy, $0).0, dY) }
        }
    }

    @Test(arguments: paths)
    func layerNorm_backward(portable: Bool) {
        withPath(portable) {
            var random = TestRandom(seed: 12)
            let rows = 3, cols = 11
            var x = random.tensor([rows, cols]).scalars, w = random.tensor([cols]).scalars, b = random.tensor([cols]).scalars
            let dY = random.tensor([rows, cols]).scalars
            func forward(_ x: [Float], _ w: [Float], _ b: [Float]) -> ([Float], [Float], [Float]) {
                var y = [Float](repeating: 0, count: rows * cols)
                var mean = [Float](repeating: 0, count: rows), rstd = [Float](repeating: 0, count: rows)
                LayerNorm.forward(rows: rows, cols: cols, x: x, ldx: cols, weight: w, bias: b, eps: 1e-5, y: &y, ldy: cols, mean: &mean, rstd: &rstd)
                return (y, mean, rstd)
            }
            let (_, mean, rstd) = forward(x, w, b)
            var dX = [Float](repeating: 0, count: rows * cols), dW = [Float](repeating: 0, count: cols), dB = [Float](repeating: 0, count: cols)
            LayerNorm.backward(rows: rows, cols: cols, x: x, ldx: cols, weight: w, mean: mean, rstd: rstd, dY: dY, lddY: cols,
                               dX: &dX, lddX: cols, dWeight: &dW, dBias: &dB)
            let (w0, b0, x0) = (w, b, x)
            expectGradient("layernorm dX", input: &x, analytic: dX) { Self.dot(forward($0, w0, b0).0, dY) }
            expectGradient("layernorm dW", input: &w, analytic: dW) { Self.dot(forward(x0, $0, b0).0, dY) }
            expectGradient("layernorm dB", input: &b, analytic: dB) { Self.dot(forward(x0, w0, $0).0, dY) }
        }
    }

    @Test(arguments: paths)
    func gelu_backward_bothKinds(portable: Bool) {
        withPath(portable) {
            var random = TestRandom(seed: 13)
            let rows = 2, cols = 9
            for kind in GELUKind.allCases {
                var x = random.tensor([rows, cols], scale: 2).scalars, bias = random.tensor([cols], scale: 0.3).scalars
                let dY = random.tensor([rows, cols]).scalars
                func forward(_ x: [Float], _ bias: [Float]) -> [Float] {
                    var y = x
                    GELU.forward(rows: rows, cols: cols, x: &y, bias: bias, kind: kind)
                    return y
                }
                var pre = x
                var ignored = x
                GELU.forward(rows: rows, cols: cols, x: &ignored, bias: bias, kind: kind, pre: &pre)
                var dX = [Float](repeating: 0, count: rows * cols), dB = [Float](repeating: 0, count: cols)
                GELU.backward(rows: rows, cols: cols, pre: pre, dY: dY, kind: kind, dX: &dX, dBias: &dB)
                let (x0, b0) = (x, bias)
                expectGradient("gelu \(kind) dX", input: &x, analytic: dX, eps: 1e-3) { Self.dot(forward($0, b0), dY) }
                expectGradient("gelu \(kind) dBias", input: &bias, analytic: dB, eps: 1e-3) { Self.dot(forward(x0, $0), dY) }
            }
        }
    }

    @Test(arguments: paths)
    func attention_backward(portable: Bool) {
        withPath(portable) {
            var random = TestRandom(seed: 14)
            for (n, d) in [(5, 8), (19, 16), (3, 3)] {
                var q = random.tensor([n, d]).scalars, k = random.tensor([n, d]).scalars, v = random.tensor([n, d]).scalars
                let dOut = random.tensor([n, d]).scalars
                let scale = 1 / Float(d).squareRoot()
                func forward(_ q: [Float], _ k: [Float], _ v: [Float]) -> ([Float], [Float]) {
                    var out = [Float](repeating: 0, count: n * d), lse = [Float](repeating: 0, count: n)
                    var scratch = [Float](repeating: 0, count: Attention.scratchCount(keys: n, headDim: d) + 16)
                    scratch.withUnsafeMutableBufferPointer { s in
                        let aligned = UnsafeMutableRawPointer(s.baseAddress!).alignedUp(toMultipleOf: 64).assumingMemoryBound(to: Float.self)
                        Attention.forward(queries: n, keys: n, headDim: d, q: q, ldq: d, k: k, ldk: d, v: v, ldv: d, scale: scale,
                                          out: &out, ldo: d, lse: &lse, scratch: aligned)
                    }
                    return (out, lse)
                }
                let (out, lse) = forward(q, k, v)
                var dQ = [Float](repeating: 0, count: n * d), dK = dQ, dV = dQ
                var scratch = [Float](repeating: 0, count: Attention.backwardScratchCount(keys: n, headDim: d) + 16)
                // Two calls over split query rows, as two threads would make them.
                let half = n / 2
                scratch.withUnsafeMutableBufferPointer { s in
                    let aligned = UnsafeMutableRawPointer(s.baseAddress!).alignedUp(toMultipleOf: 64).assumingMemoryBound(to: Float.self)
                    for (start, count) in [(0, half), (half, n - half)] where count > 0 {
                        q.withUnsafeBufferPointer { qp in out.withUnsafeBufferPointer { op in lse.withUnsafeBufferPointer { lp in
                            dOut.withUnsafeBufferPointer { gp in dQ.withUnsafeMutableBufferPointer { dq in
                                Attention.backward(
                                    queries: count, keys: n, headDim: d, q: qp.baseAddress! + start * d, ldq: d, k: k, ldk: d, v: v, ldv: d,
                                    out: op.baseAddress! + start * d, ldo: d, lse: lp.baseAddress! + start, dOut: gp.baseAddress! + start * d,
                                    lddOut: d, scale: scale, dQ: dq.baseAddress! + start * d, lddQ: d, dK: &dK, lddK: d, dV: &dV, lddV: d,
                                    scratch: aligned)
                            } }
                        } } }
                    }
                }
                let (q0, k0, v0) = (q, k, v)
                expectGradient("attention dQ \(n)×\(d)", input: &q, analytic: dQ) { Self.dot(forward($0, k0, v0).0, dOut) }
                expectGradient("attention dK \(n)×\(d)", input: &k, analytic: dK) { Self.dot(forward(q0, $0, v0).0, dOut) }
                expectGradient("attention dV \(n)×\(d)", input: &v, analytic: dV) { Self.dot(forward(q0, k0, $0).0, dOut) }
            }
        }
    }
}
