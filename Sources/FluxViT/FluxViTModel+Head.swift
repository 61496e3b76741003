import Foundation
import COpenBLAS
import FluxTensor

extension FluxViTModel {
    /// Attention pooling, classifier and alignment projections of `head` (spec §4.5–4.7), one
    /// sample per thread at a time.
    ///
    /// With a single query, the key and value projections fold into the query and the weighted
    /// mean (the softmax weights sum to 1), so no n×C×C GEMM is needed:
    /// scoresₕ = LN_k(x)·(W_k,hᵀ qₕ)·scale (q·b_k is constant over keys and cancels in the
    /// softmax) and outₕ = W_v,h (Σᵢ pᵢ LN_v(xᵢ)) + b_v,h. Same function, rounding aside.
    func poolAndClassify(_ ctx: ComputeContext, _ g: Geometry, head j: Int, _ buf: Buffers) {
        let c = config, C = c.embedDim, D = c.clipEmbedDim, K = c.numClasses, heads = c.attnPoolNumHeads
        let dh = c.poolHeadDim, n = g.n, p = parameters
        let name = "clip_projector.\(j)."
        for b in ctx.items(g.B) {
            let x = buf.x + b * n * C
            // Scratch layout: normed [n, C] | scores [n, heads] | u [heads, C] | z [heads, C] | vectors.
            let normed = buf.threadScratch[ctx.index]
            let scores = normed + n * C
            let u = scores + n * heads
            let z = u + heads * C
            let q0 = z + heads * C, qn = q0 + C, q = qn + C, pooled = q + C
            let f = pooled + C, fn = f + D, tmp = fn + D

            for ch in 0..<C { q0[ch] = 0 }
            for i in 0..<n { for ch in 0..<C { q0[ch] += x[i * C + ch] } }
            for ch in 0..<C { q0[ch] /= Float(n) }
            LayerNorm.forward(
                rows: 1, cols: C, x: q0, ldx: C, weight: p.pointer(name + "norm1_q.weight"),
                bias: p.pointer(name + "norm1_q.bias"), eps: 1e-5, y: qn, ldy: C)
            Linear.forwardVector(
                inFeatures: C, outFeatures: C, x: qn, weight: p.pointer(name + "cross_attn.q.weight"),
                bias: p.pointer(name + "cross_attn.q_bias"), y: q)

            // u[h] = scale · W_k[h rows]ᵀ · q[h]
            let wk = p.pointer(name + "cross_attn.k.weight")
            let scale = 1 / Float(dh).squareRoot()
            for h in 0..<heads {
                cblas_sgemv(
                    CblasRowMajor, CblasTrans, Int32(dh), Int32(C), scale, wk + h * dh * C, Int32(C), q + h * dh, 1, 0,
                    u + h * C, 1)
            }
            LayerNorm.forward(
                rows: n, cols: C, x: x, ldx: C, weight: p.pointer(name + "norm1_k.weight"),
                bias: p.pointer(name + "norm1_k.bias"), eps: 1e-5, y: normed, ldy: C)
            BLAS.sgemm(transB: true, m: n, n: heads, k: C, a: normed, lda: C, b: u, ldb: C, c: scores, ldc: heads)
            // Softmax over the n keys, per head (column of scores).
            for h in 0..<heads {
                var maxScore = -Float.infinity
                for i in 0..<n { maxScore = max(maxScore, scores[i * heads + h]) }
                var sum: Float = 0
                for i in 0..<n {
                    let e = (scores[i * heads + h] - maxScore).exp
                    scores[i * heads + h] = e
                    sum += e
                }
                for i in 0..<n { scores[i * heads + h] /= sum }
            }
            LayerNorm.forward(
                rows: n, cols: C, x: x, ldx: C, weight: p.pointer(name + "norm1_v.weight"),
                bias: p.pointer(name + "norm1_v.bias"), eps: 1e-5, y: normed, ldy: C)
            // z[h] = Σᵢ p[i][h] · LN_v(x)[i]
            BLAS.sgemm(transA: true, m: heads, n: C, k: n, a: scores, lda: heads, b: normed, ldb: C, c: z, ldc: C)
            let wv = p.pointer(name + "cross_attn.v.weight"), bv = p.pointer(name + "cross_attn.v_bias")
            for h in 0..<heads {
                Linear.forwardVector(
                    inFeatures: C, outFeatures: dh, x: z + h * C, weight: wv + h * dh * C, bias: bv + h * dh,
                    y: pooled + h * dh)
            }
            Linear.forwardVector(
                inFeatures: C, outFeatures: D, x: pooled, weight: p.pointer(name + "cross_attn.proj.weight"),
                bias: p.pointer(name + "cross_attn.proj.bias"), y: f)
            (buf.feature + b * D).update(from: f, count: D)

            // logits = head_j(LN_fc(f)).
            LayerNorm.forward(
                rows: 1, cols: D, x: f, ldx: D, weight: p.pointer("fc_norm.weight"), bias: p.pointer("fc_norm.bias"),
                eps: 1e-5, y: fn, ldy: D)
            Linear.forwardVector(
                inFeatures: D, outFeatures: K, x: fn, weight: p.pointer("head.\(j).weight"),
                bias: p.pointer("head.\(j).bias"), y: buf.logits + b * K)

            // proj m = l2normalize(LN_m(W_m f + b_m)).
            for (m, target) in [buf.proj0, buf.proj1].enumerated() {
                let dec = "final_clip_decoder_for_projs.\(m)."
                Linear.forwardVector(
                    inFeatures: D, outFeatures: D, x: f, weight: p.pointer(dec + "head.weight"),
                    bias: p.pointer(dec + "head.bias"), y: tmp)
                LayerNorm.forward(
                    rows: 1, cols: D, x: tmp, ldx: D, weight: p.pointer(dec + "norm.weight"),
                    bias: p.pointer(dec + "norm.bias"), eps: 1e-5, y: tmp, ldy: D)
                var norm: Float = 0
                for d in 0..<D { norm += tmp[d] * tmp[d] }
                let inv = 1 / max(norm.squareRoot(), 1e-12)
                for d in 0..<D { target[b * D + d] = tmp[d] * inv }
            }
        }
    }
}

extension Float {
    fileprivate var exp: Float { Foundation.exp(self) }
}
