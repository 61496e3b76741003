import COpenBLAS
import Foundation
import FluxTensor

/// The values attention pooling, the classifier and the projectors compute for one sample, laid
/// out in one region: thread scratch for inference, the tape for training (the backward reads them).
struct PoolValues {
    let q0, qStats, qn, q, u, z, kStats, vStats, probs, pooled, f, fcStats, fn: UnsafeMutablePointer<Float>
    /// Per projector m: W_m f + b_m [D], LayerNorm stats [2], LayerNorm output [D], ‖·‖ [1].
    let projPre, projStats, projLN, projNorm: [UnsafeMutablePointer<Float>]

    /// Floats one sample needs.
    static func count(config c: FluxViTConfig, tokens n: Int) -> Int {
        let C = c.embedDim, D = c.clipEmbedDim, H = c.attnPoolNumHeads
        return 4 * C + 2 + 2 * H * C + 4 * n + n * H + C + 2 * D + 2 + 2 * (2 * D + 3) + 16
    }

    init(at base: UnsafeMutablePointer<Float>, config c: FluxViTConfig, tokens n: Int) {
        let C = c.embedDim, D = c.clipEmbedDim, H = c.attnPoolNumHeads
        var cursor = base
        func take(_ count: Int) -> UnsafeMutablePointer<Float> {
            defer { cursor += count }
            return cursor
        }
        q0 = take(C); qStats = take(2); qn = take(C); q = take(C); u = take(H * C); z = take(H * C)
        kStats = take(2 * n); vStats = take(2 * n); probs = take(n * H); pooled = take(C); f = take(D)
        fcStats = take(2); fn = take(D)
        var pre: [UnsafeMutablePointer<Float>] = [], stats: [UnsafeMutablePointer<Float>] = []
        var ln: [UnsafeMutablePointer<Float>] = [], norms: [UnsafeMutablePointer<Float>] = []
        for _ in 0..<2 {
            pre.append(take(D)); stats.append(take(2)); ln.append(take(D)); norms.append(take(1))
        }
        projPre = pre; projStats = stats; projLN = ln; projNorm = norms
    }
}

extension FluxViTModel {
    /// Attention pooling, classifier and alignment projections of `head` (spec §4.5–4.7), one
    /// sample per thread at a time. `saved(b)` gives where sample b's values go when training.
    ///
    /// With a single query, the key and value projections fold into the query and the weighted
    /// mean (the softmax weights sum to 1), so no n×C×C GEMM is needed:
    /// scoresₕ = LN_k(x)·(W_k,hᵀ qₕ)·scale (q·b_k is constant over keys and cancels in the
    /// softmax) and outₕ = W_v,h (Σᵢ pᵢ LN_v(xᵢ)) + b_v,h. Same function, rounding aside.
    func poolAndClassify(
        _ ctx: ComputeContext, _ g: Geometry, head j: Int, _ buf: Buffers,
        saved: ((Int) -> PoolValues)? = nil
    ) {
        let c = config, C = c.embedDim, D = c.clipEmbedDim, K = c.numClasses, heads = c.attnPoolNumHeads
        let dh = c.poolHeadDim, n = g.n, pw = poolWeights[j]
        for b in ctx.items(g.B) {
            let x = buf.x + b * n * C
            let normed = buf.threadScratch[ctx.index]  // [n, C]
            let v = saved?(b) ?? PoolValues(at: normed + n * C, config: c, tokens: n)
            let scores = v.probs

            for ch in 0..<C { v.q0[ch] = 0 }
            for i in 0..<n { for ch in 0..<C { v.q0[ch] += x[i * C + ch] } }
            for ch in 0..<C { v.q0[ch] /= Float(n) }
            LayerNorm.forward(rows: 1, cols: C, x: v.q0, ldx: C, weight: pw.normQ, bias: pw.normQBias, eps: 1e-5,
                              y: v.qn, ldy: C, mean: v.qStats, rstd: v.qStats + 1)
            Linear.forwardVector(inFeatures: C, outFeatures: C, x: v.qn, weight: pw.q, bias: pw.qBias, y: v.q)

            // u[h] = scale · W_k[h rows]ᵀ · q[h]
            let scale = 1 / Float(dh).squareRoot()
            for h in 0..<heads {
                cblas_sgemv(CblasRowMajor, CblasTrans, Int32(dh), Int32(C), scale, pw.k + h * dh * C, Int32(C),
                            v.q + h * dh, 1, 0, v.u + h * C, 1)
            }
            LayerNorm.forward(rows: n, cols: C, x: x, ldx: C, weight: pw.normK, bias: pw.normKBias, eps: 1e-5,
                              y: normed, ldy: C, mean: v.kStats, rstd: v.kStats + n)
            BLAS.sgemm(transB: true, m: n, n: heads, k: C, a: normed, lda: C, b: v.u, ldb: C, c: scores, ldc: heads)
            // Softmax over the n keys, per head (a column of scores).
            for h in 0..<heads {
                var maxScore = -Float.infinity
                for i in 0..<n { maxScore = max(maxScore, scores[i * heads + h]) }
                var sum: Float = 0
                for i in 0..<n {
                    let e = Foundation.exp(scores[i * heads + h] - maxScore)
                    scores[i * heads + h] = e
                    sum += e
                }
                for i in 0..<n { scores[i * heads + h] /= sum }
            }
            LayerNorm.forward(rows: n, cols: C, x: x, ldx: C, weight: pw.normV, bias: pw.normVBias, eps: 1e-5,
                              y: normed, ldy: C, mean: v.vStats, rstd: v.vStats + n)
            // z[h] = Σᵢ p[i][h] · LN_v(x)[i]
            BLAS.sgemm(transA: true, m: heads, n: C, k: n, a: scores, lda: heads, b: normed, ldb: C, c: v.z, ldc: C)
            for h in 0..<heads {
                Linear.forwardVector(inFeatures: C, outFeatures: dh, x: v.z + h * C, weight: pw.v + h * dh * C,
                                     bias: pw.vBias + h * dh, y: v.pooled + h * dh)
            }
            Linear.forwardVector(inFeatures: C, outFeatures: D, x: v.pooled, weight: pw.proj, bias: pw.projBias, y: v.f)
            (buf.feature + b * D).update(from: v.f, count: D)

            // logits = head_j(LN_fc(f)).
            LayerNorm.forward(rows: 1, cols: D, x: v.f, ldx: D, weight: shared.fcNorm, bias: shared.fcNormBias, eps: 1e-5,
                              y: v.fn, ldy: D, mean: v.fcStats, rstd: v.fcStats + 1)
            Linear.forwardVector(inFeatures: D, outFeatures: K, x: v.fn, weight: shared.head[j], bias: shared.headBias[j],
                                 y: buf.logits + b * K)

            // proj m = l2normalize(LN_m(W_m f + b_m)).
            for (m, target) in [buf.proj0, buf.proj1].enumerated() {
                let dec = shared.projectors[m]
                Linear.forwardVector(inFeatures: D, outFeatures: D, x: v.f, weight: dec.weight, bias: dec.bias, y: v.projPre[m])
                LayerNorm.forward(rows: 1, cols: D, x: v.projPre[m], ldx: D, weight: dec.norm, bias: dec.normBias, eps: 1e-5,
                                  y: v.projLN[m], ldy: D, mean: v.projStats[m], rstd: v.projStats[m] + 1)
                var norm: Float = 0
                for d in 0..<D { norm += v.projLN[m][d] * v.projLN[m][d] }
                v.projNorm[m][0] = max(norm.squareRoot(), 1e-12)
                for d in 0..<D { target[b * D + d] = v.projLN[m][d] / v.projNorm[m][0] }
            }
        }
    }
}

/// One pooling head's parameters (spec §3 `clip_projector.j.*`), as offsets into the store's
/// buffers; `at(base)` gives pointers into the values or a gradient buffer of the same layout.
struct PoolSlots {
    let normQ, normQBias, normK, normKBias, normV, normVBias, q, qBias, k, kBias, v, vBias, proj, projBias: Int

    init(_ p: ParameterStore, head j: Int) {
        let n = "clip_projector.\(j)."
        func o(_ s: String) -> Int { p.slot(n + s)!.offset }
        normQ = o("norm1_q.weight"); normQBias = o("norm1_q.bias"); normK = o("norm1_k.weight")
        normKBias = o("norm1_k.bias"); normV = o("norm1_v.weight"); normVBias = o("norm1_v.bias")
        q = o("cross_attn.q.weight"); qBias = o("cross_attn.q_bias"); k = o("cross_attn.k.weight")
        kBias = o("cross_attn.k_bias"); v = o("cross_attn.v.weight"); vBias = o("cross_attn.v_bias")
        proj = o("cross_attn.proj.weight"); projBias = o("cross_attn.proj.bias")
    }

    func at(_ base: UnsafeMutablePointer<Float>) -> PoolPointers {
        PoolPointers(
            normQ: base + normQ, normQBias: base + normQBias, normK: base + normK, normKBias: base + normKBias,
            normV: base + normV, normVBias: base + normVBias, q: base + q, qBias: base + qBias, k: base + k,
            kBias: base + kBias, v: base + v, vBias: base + vBias, proj: base + proj, projBias: base + projBias)
    }
}

struct PoolPointers {
    let normQ, normQBias, normK, normKBias, normV, normVBias, q, qBias, k, kBias, v, vBias, proj, projBias: UnsafeMutablePointer<Float>
}

/// Parameters every head shares or picks from: fc_norm, the classifiers, the projectors.
struct SharedSlots {
    struct Projector { let weight, bias, norm, normBias: Int }
    let fcNorm, fcNormBias: Int
    let head, headBias: [Int]
    let projectors: [Projector]

    init(_ p: ParameterStore) {
        func o(_ s: String) -> Int { p.slot(s)!.offset }
        fcNorm = o("fc_norm.weight"); fcNormBias = o("fc_norm.bias")
        head = (0..<3).map { o("head.\($0).weight") }
        headBias = (0..<3).map { o("head.\($0).bias") }
        projectors = (0..<2).map { m in
            let n = "final_clip_decoder_for_projs.\(m)."
            return Projector(weight: o(n + "head.weight"), bias: o(n + "head.bias"), norm: o(n + "norm.weight"), normBias: o(n + "norm.bias"))
        }
    }

    func at(_ base: UnsafeMutablePointer<Float>) -> SharedPointers {
        SharedPointers(
            fcNorm: base + fcNorm, fcNormBias: base + fcNormBias, head: head.map { base + $0 }, headBias: headBias.map { base + $0 },
            projectors: projectors.map {
                SharedPointers.Projector(weight: base + $0.weight, bias: base + $0.bias, norm: base + $0.norm, normBias: base + $0.normBias)
            })
    }
}

struct SharedPointers {
    struct Projector { let weight, bias, norm, normBias: UnsafeMutablePointer<Float> }
    let fcNorm, fcNormBias: UnsafeMutablePointer<Float>
    let head, headBias: [UnsafeMutablePointer<Float>]
    let projectors: [Projector]
}
