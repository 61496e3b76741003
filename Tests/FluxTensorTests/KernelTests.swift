import Foundation
import FluxTensor
import FluxTestKit
import Testing

/// The C kernels against plain double-precision references, on both dispatch paths.
@Suite(.serialized) struct KernelTests {
    static let paths: [Bool] = [false, true]  // portable forced?

    func withPath(_ portable: Bool, _ body: () throws -> Void) rethrows {
        KernelDispatch.forcePortable(portable)
        defer { KernelDispatch.forcePortable(false) }
        try body()
    }

    @Test(arguments: paths)
    func attention_matchesNaiveSoftmax(portable: Bool) {
        withPath(portable) {
            var random = TestRandom(seed: 1)
            for (queries, keys, dim, logitScale) in [(1, 1, 1, Float(1)), (5, 17, 16, 1), (33, 65, 32, 1), (70, 129, 64, 1),
                                                     (9, 40, 64, 300), (4, 3, 80, 1), (3, 7, 3, 1)] {
                let ld = dim * 3 + 5  // strided rows, as q/k/v sit inside one qkv buffer
                let q = random.tensor([queries, ld], scale: logitScale), k = random.tensor([keys, ld]), v = random.tensor([keys, ld])
                var out = Tensor(shape: [queries, dim])
                var lse = Tensor(shape: [queries])
                var scratch = [Float](repeating: 0, count: Attention.scratchCount(keys: keys, headDim: dim) + 16)
                let scale = 1 / Float(dim).squareRoot()
                q.scalars.withUnsafeBufferPointer { qp in k.scalars.withUnsafeBufferPointer { kp in v.scalars.withUnsafeBufferPointer { vp in
                    out.scalars.withUnsafeMutableBufferPointer { op in lse.scalars.withUnsafeMutableBufferPointer { lp in
                        scratch.withUnsafeMutableBufferPointer { sp in
                            let aligned = UnsafeMutableRawPointer(sp.baseAddress!).alignedUp(toMultipleOf: 64)
                                .assumingMemoryBound(to: Float.self)
                            Attention.forward(
                                queries: queries, keys: keys, headDim: dim, q: qp.baseAddress!, ldq: ld, k: kp.baseAddress!,
                                ldk: ld, v: vp.baseAddress!, ldv: ld, scale: scale, out: op.baseAddress!, ldo: dim,
                                lse: lp.baseAddress!, scratch: aligned)
                        }
                    } }
                } } }
                var expected = Tensor(shape: [queries, dim]), expectedLSE = Tensor(shape: [queries])
                for i in 0..<queries {
                    var scores = [Double](repeating: 0, count: keys)
                    for j in 0..<keys {
                        var s = 0.0
                        for d in 0..<dim { s += Double(q.scalars[i * ld + d]) * Double(k.scalars[j * ld + d]) }
                        scores[j] = s * Double(scale)
                    }
                    let m = scores.max()!
                    let sum = scores.reduce(0) { $0 + exp($1 - m) }
                    expectedLSE.scalars[i] = Float(m + log(sum))
                    for d in 0..<dim {
                        var acc = 0.0
                        for j in 0..<keys { acc += exp(scores[j] - m) / sum * Double(v.scalars[j * ld + d]) }
                        expected.scalars[i * dim + d] = Float(acc)
                    }
                }
                expectClose(out, expected, "attention \(queries)×\(keys)×\(dim) scale \(logitScale)", tolerance: 1e-5)
                expectClose(lse, expectedLSE, "lse \(queries)×\(keys)×\(dim)", tolerance: 1e-5)
            }
        }
    }

    @Test(arguments: paths)
    func norms_matchDoubleReference(portable: Bool) {
        withPath(portable) {
            var random = TestRandom(seed: 2)
            for cols in [1, 3, 8, 9, 64, 384] {
                let rows = 5, ld = cols + 3
                var x = random.tensor([rows, ld])
                if cols == 384 { for c in 0..<cols { x.scalars[c] = 1000 + 1e-3 * x.scalars[c] } }  // nearly constant row
                let w = random.tensor([cols]), b = random.tensor([cols])
                var rms = Tensor(shape: [rows, cols]), ln = Tensor(shape: [rows, cols])
                x.scalars.withUnsafeBufferPointer { xp in w.scalars.withUnsafeBufferPointer { wp in b.scalars.withUnsafeBufferPointer { bp in
                    rms.scalars.withUnsafeMutableBufferPointer { rp in
                        RMSNorm.forward(rows: rows, cols: cols, x: xp.baseAddress!, ldx: ld, weight: wp.baseAddress!, eps: 1e-6, y: rp.baseAddress!, ldy: cols)
                    }
                    ln.scalars.withUnsafeMutableBufferPointer { lp in
                        LayerNorm.forward(rows: rows, cols: cols, x: xp.baseAddress!, ldx: ld, weight: wp.baseAddress!, bias: bp.baseAddress!, eps: 1e-5, y: lp.baseAddress!, ldy: cols)
                    }
                } } }
                var rmsRef = Tensor(shape: [rows, cols]), lnRef = Tensor(shape: [rows, cols])
                for r in 0..<rows {
                    let row = (0..<cols).map { Double(x.scalars[r * ld + $0]) }
                    let ms = row.reduce(0) { $0 + $1 * $1 } / Double(cols)
                    let mean = row.reduce(0, +) / Double(cols)
                    let variance = row.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(cols)
                    for c in 0..<cols {
                        rmsRef.scalars[r * cols + c] = Float(row[c] / (ms + 1e-6).squareRoot() * Double(w.scalars[c]))
                        lnRef.scalars[r * cols + c] = Float((row[c] - mean) / (variance + 1e-5).squareRoot() * Double(w.scalars[c]) + Double(b.scalars[c]))
                    }
                }
                expectClose(rms, rmsRef, "rmsnorm cols \(cols)", tolerance: 1e-5)
                expectClose(ln, lnRef, "layernorm cols \(cols)", tolerance: 1e-4)
            }
        }
    }

    @Test(arguments: paths)
    func gelu_bothKinds_matchDoubleReference(portable: Bool) {
        withPath(portable) {
            var random = TestRandom(seed: 3)
            let rows = 3, cols = 37
            var x = random.tensor([rows, cols], scale: 4)
            x.scalars[0] = 0; x.scalars[1] = 12; x.scalars[2] = -12; x.scalars[3] = 1e4; x.scalars[4] = -1e4; x.scalars[5] = 1e-8
            let bias = random.tensor([cols], scale: 0.1)
            for kind in GELUKind.allCases {
                var y = x
                y.scalars.withUnsafeMutableBufferPointer { yp in bias.scalars.withUnsafeBufferPointer { bp in
                    GELU.forward(rows: rows, cols: cols, x: yp.baseAddress!, bias: bp.baseAddress!, kind: kind)
                } }
                let expected = Tensor(shape: [rows, cols], scalars: (0..<rows * cols).map { i in
                    let v = Double(x.scalars[i]) + Double(bias.scalars[i % cols])
                    switch kind {
                    case .erf: return Float(0.5 * v * (1 + erf(v / 2.0.squareRoot())))
                    case .tanh: return Float(0.5 * v * (1 + tanh((2 / Double.pi).squareRoot() * (v + 0.044715 * v * v * v))))
                    }
                })
                // Relative to each value's own size: the 1e4 inputs must pass through exactly.
                for i in 0..<y.count {
                    #expect(abs(y.scalars[i] - expected.scalars[i]) <= 1e-6 * max(1, abs(expected.scalars[i])),
                            "gelu \(kind) at \(x.scalars[i]): \(y.scalars[i]) vs \(expected.scalars[i])")
                }
            }
        }
    }

    @Test(arguments: paths)
    func residualAndScaleShift_matchReference(portable: Bool) {
        withPath(portable) {
            var random = TestRandom(seed: 4)
            let rows = 4, cols = 19
            let x0 = random.tensor([rows, cols]), y = random.tensor([rows, cols])
            let bias = random.tensor([cols]), gamma = random.tensor([cols])
            var x = x0
            x.scalars.withUnsafeMutableBufferPointer { xp in y.scalars.withUnsafeBufferPointer { yp in
                bias.scalars.withUnsafeBufferPointer { bp in gamma.scalars.withUnsafeBufferPointer { gp in
                    Elementwise.residualScaleAdd(rows: rows, cols: cols, x: xp.baseAddress!, ldx: cols, y: yp.baseAddress!, ldy: cols, bias: bp.baseAddress!, gamma: gp.baseAddress!)
                } }
            } }
            let expected = Tensor(shape: [rows, cols], scalars: (0..<rows * cols).map {
                x0.scalars[$0] + gamma.scalars[$0 % cols] * (y.scalars[$0] + bias.scalars[$0 % cols])
            })
            expectClose(x, expected, "residual", tolerance: 1e-6)

            var shifted = y
            shifted.scalars.withUnsafeMutableBufferPointer { sp in x0.scalars.withUnsafeBufferPointer { xp in
                gamma.scalars.withUnsafeBufferPointer { wp in bias.scalars.withUnsafeBufferPointer { bp in
                    Elementwise.scaleShift(rows: rows, cols: cols, x: xp.baseAddress!, ldx: cols, weight: wp.baseAddress!, bias: bp.baseAddress!, y: sp.baseAddress!, ldy: cols, accumulate: true)
                } }
            } }
            let expectedShift = Tensor(shape: [rows, cols], scalars: (0..<rows * cols).map {
                y.scalars[$0] + x0.scalars[$0] * gamma.scalars[$0 % cols] + bias.scalars[$0 % cols]
            })
            expectClose(shifted, expectedShift, "scale shift", tolerance: 1e-6)
        }
    }
}

@Suite struct ComputePoolTests {
    @Test func run_everyThreadOnce_rowsCoverTheRangeExactly() {
        for threads in [1, 2, 3] {
            let pool = ComputePool(threads: threads)
            var seen = [Int](repeating: 0, count: 101)
            var visits = [Int](repeating: 0, count: threads)
            seen.withUnsafeMutableBufferPointer { s in
                visits.withUnsafeMutableBufferPointer { v in
                    pool.run { ctx in
                        v[ctx.index] += 1
                        for r in ctx.rows(101) { s[r] += 1 }
                        ctx.barrier()
                    }
                }
            }
            #expect(seen.allSatisfy { $0 == 1 })
            #expect(visits.allSatisfy { $0 == 1 })
        }
    }

    @Test func pool_droppedRightAfterCreation_stopsCleanly() {
        // Regression: workers once held the pool unowned and trapped when it died before they ran.
        for _ in 0..<50 {
            let pool = ComputePool(threads: 2)
            _ = pool.threadCount
        }
        let survivor = ComputePool(threads: 2)
        var ran = 0
        survivor.run { ctx in if ctx.index == 0 { ran += 1 } }
        #expect(ran == 1)
    }

    @Test func barrier_ordersPhases() {
        let pool = ComputePool(threads: 2)
        var data = [Int](repeating: 0, count: 2)
        var observed = [Int](repeating: 0, count: 2)
        for _ in 0..<200 {
            data.withUnsafeMutableBufferPointer { d in observed.withUnsafeMutableBufferPointer { o in
                pool.run { ctx in
                    d[ctx.index] = ctx.index + 1
                    ctx.barrier()
                    o[ctx.index] = d[1 - ctx.index]
                }
            } }
            #expect(observed == [2, 1])
            data = [0, 0]
        }
    }
}
