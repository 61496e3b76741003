
import COpenBLAS
import FluxTensor

// Training: the forward of spec §4 keeping what its backward needs (the tape), and the backward
// as an explicit reverse chain (llm.c style). Spec §5: one budget's activations are alive at a
// time — each budget's backward runs right after its forward, and the next forward reuses the tape.
//
// Threads: the same SPMD layout as the forward. Rows are split across threads; each thread
// accumulates parameter gradients into its own full-size buffer (thread 0 into the store's), and
// the buffers are summed at the end of the backward in a fixed order, so gradients do not depend
// on timing. Attention's dk/dv gather contributions from every query row: per-thread private dk/dv,
// a barrier, then each thread sums the rows it owns.

/// Tape slots in the training workspace (separate from the inference workspace).
///
/// A slot is (family << 32) | index, so the per-thread and per-block families can never run into each other (with
/// fixed offsets, 51 threads' private buffers reached the next family's range: a 64-core worker corrupted its tape).
private enum TapeSlot {
    static let raw = 0, rstdBefore = 1, rstdAfter = 2, embedPre = 3, pool = 4, xFinal = 5
    static let dx = 6, dEmbed = 7, dxn = 8, dHidden = 9, dqkv = 10, dHeads = 11, dPos = 12
    static let dGrid = 14, dTimed = 15, dPatchWeight = 16, zeroBias = 17

    private static func slot(_ family: Int, _ index: Int) -> Int {
        precondition((0..<(1 << 31)).contains(index), "tape slot index \(index) out of range")
        return family << 32 | index
    }
    /// Thread t's private key/value gradients for blocks of `parity`.
    static func privateDKV(thread t: Int, parity: Int) -> Int { slot(1, 2 * t + parity) }
    /// Thread t's (t ≥ 1) private parameter gradients.
    static func threadGradients(_ t: Int) -> Int { slot(2, t) }
    static func headScratch(_ t: Int) -> Int { slot(3, t) }
    static func attentionScratch(_ t: Int) -> Int { slot(4, t) }
    static func dProjected(_ t: Int) -> Int { slot(5, t) }
    static func dNormed(_ t: Int) -> Int { slot(6, t) }
    /// Block i's field (0 ..< 16).
    static func block(_ i: Int, field: Int) -> Int {
        precondition((0..<16).contains(field), "block tape field \(field) out of range")
        return slot(7, 16 * i + field)
    }
}

/// What `backward` needs from the loss for the forward just run.
public struct OutputGradients {
    /// d loss / d logits of the head that ran: [B, K].
    public var logits: Tensor
    /// d loss / d proj_m(f) for projector m (spec §5: projector 0 on f₁, projector 1 on f₂), if any.
    public var projection: (index: Int, gradient: Tensor)?

    public init(logits: Tensor, projection: (index: Int, gradient: Tensor)? = nil) {
        self.logits = logits
        self.projection = projection
    }
}

/// A training forward's record, valid until the next training forward.
struct TapeRecord {
    let geometry: Geometry
    let head: Int
}

extension FluxViTModel {
    /// Forward pass that keeps activations for `backward(_:)` (spec §5). Same outputs as
    /// `forward(video:budget:head:)`.
    public func trainingForward(video: Tensor, budget: Int?, head: Int) throws(ModelError) -> ForwardOutput {
        let geometry = try geometry(of: video, budget: budget)
        guard (0..<FluxViTConfig.headCount).contains(head) else { throw .headOutOfRange(head: head) }
        preparePositionEmbedding(geometry)
        preparePatchWeight()
        let buffers = Buffers(model: self, geometry: geometry, capture: false)
        let tape = Tape(model: self, geometry: geometry)
        video.scalars.withUnsafeBufferPointer { pixels in
            pool.run { ctx in
                self.embedPatches(ctx, geometry, pixels.baseAddress!, buffers, save: tape.patch)
                ctx.barrier()
                if geometry.selecting { self.selectTokens(ctx, geometry, budget: budget!, buffers) }
                ctx.barrier()
                self.gatherTokens(ctx, geometry, buffers)
                for block in 0..<self.config.depth {
                    self.blockForward(ctx, block: block, geometry, buffers, tape.blockIO(block, buffers))
                }
                let rows = ctx.rows(geometry.rows), C = self.config.embedDim
                (tape.xFinal + rows.lowerBound * C).update(from: buffers.x + rows.lowerBound * C, count: rows.count * C)
                ctx.barrier()
                self.poolAndClassify(ctx, geometry, head: head, buffers, saved: tape.poolValues)
            }
        }
        tapeRecord = TapeRecord(geometry: geometry, head: head)
        return buffers.output(geometry, head: head)
    }

    /// Adds the gradients of the last `trainingForward` into `parameters.gradients` (the caller
    /// zeroes them once per step). Token selection is not differentiated: only kept tokens get
    /// gradient.
    public func backward(_ gradients: OutputGradients) {
        guard let record = tapeRecord else { preconditionFailure("backward without a trainingForward") }
        let g = record.geometry, c = config
        precondition(gradients.logits.shape == [g.B, c.numClasses], "dLogits must be [B, K]")
        let buffers = Buffers(model: self, geometry: g, capture: false)
        let tape = Tape(model: self, geometry: g)
        // Extra threads' buffers start zeroed and are cleared again when summed.
        let threadGradients = (0..<pool.threadCount).map { t in
            t == 0 ? parameters.gradients : trainingWorkspace.buffer(TapeSlot.threadGradients(t), count: parameters.count)
        }
        let projector = gradients.projection?.index
        let dProjection: [Float]? = gradients.projection?.gradient.scalars
        gradients.logits.scalars.withUnsafeBufferPointer { dLogits in
            dProjection.withUnsafeBufferPointerIfPresent { dProj in
                pool.run { ctx in
                    let grads = threadGradients[ctx.index]
                    self.headBackward(ctx, g, head: record.head, tape: tape, dLogits: dLogits.baseAddress!,
                                      projector: projector, dProjection: dProj, grads: grads)
                    ctx.barrier()
                    for block in (0..<c.depth).reversed() {
                        self.blockBackward(ctx, block: block, g, buffers, tape, grads: grads)
                    }
                    self.gatherBackward(ctx, g, buffers, tape, grads: grads)
                    ctx.barrier()
                    self.patchBackward(ctx, g, buffers, tape, grads: grads)
                    self.positionBackward(ctx, g, tape, grads: grads)
                    ctx.barrier()
                    self.sumThreadGradients(ctx, threadGradients)
                }
            }
        }
    }

    /// Validates a clip and derives the call's sizes (shared by both forwards).
    func geometry(of video: Tensor, budget: Int?) throws(ModelError) -> Geometry {
        try geometry(shape: video.shape, budget: budget)
    }

    /// The geometry of a clip of `shape` [B, 3, T, H, W], without the clip.
    func geometry(shape: [Int], budget: Int?) throws(ModelError) -> Geometry {
        guard shape.count == 5, shape[1] == 3, shape[0] >= 1 else { throw .badInputShape(shape: shape) }
        let (B, T, H, W) = (shape[0], shape[2], shape[3], shape[4])
        let P = config.patchSize
        guard T >= 1 else { throw .tooFewFrames(frames: T) }
        guard H >= P, W >= P, H % P == 0, W % P == 0 else {
            throw .sizeNotMultipleOfPatch(height: H, width: W, patchSize: P)
        }
        guard H == W else { throw .notSquare(height: H, width: W) }
        if let budget, budget < 1 { throw .budgetBelowOne(budget: budget) }
        let (h, w) = (H / P, W / P)
        let L = h * w, N = T * L
        let selecting = budget.map { $0 < N } ?? false
        if selecting, T % 2 != 0 { throw .oddFramesWithBudget(frames: T, budget: budget!) }
        let kept = selecting
            ? TokenSelection.groupCount(frames: T) * TokenSelection.keptPerGroup(frames: T, tokensPerFrame: L, budget: budget!)
            : N
        return Geometry(B: B, T: T, H: H, W: W, h: h, w: w, N: N, kept: kept, selecting: selecting)
    }
}

/// Pointers into the training workspace for one geometry.
struct Tape {
    let patch: PatchSaves
    let xFinal, pool: UnsafeMutablePointer<Float>
    let poolStride: Int
    let config: FluxViTConfig
    let geometry: Geometry
    let workspace: Workspace
    // Backward scratch.
    let dx, dEmbed, dxn, dHidden, dqkv, dHeads, dPos, dGrid, dTimed, dPatchWeight: UnsafeMutablePointer<Float>
    /// Per thread and block parity: this thread's partial d k | d v over all rows [R, 2C].
    let privateDKV: [[UnsafeMutablePointer<Float>]]
    let blocks: [BlockTape]
    /// Per thread: scratch for the head backward, the attention backward, the patch backward.
    let headScratch, attentionScratch, dProjected, dNormed: [UnsafeMutablePointer<Float>]
    /// Hd zeros: GELU of an input that already holds its bias.
    let zeroBias: UnsafeMutablePointer<Float>

    init(model: FluxViTModel, geometry g: Geometry) {
        let c = model.config, C = c.embedDim, P3 = 3 * c.patchSize * c.patchSize, ws = model.trainingWorkspace
        workspace = ws
        config = c
        geometry = g
        patch = PatchSaves(
            raw: ws.buffer(TapeSlot.raw, count: g.B * g.N * P3), rstdBefore: ws.buffer(TapeSlot.rstdBefore, count: g.B * g.N),
            rstdAfter: ws.buffer(TapeSlot.rstdAfter, count: g.B * g.N), embedPre: ws.buffer(TapeSlot.embedPre, count: g.B * g.N * C))
        xFinal = ws.buffer(TapeSlot.xFinal, count: g.rows * C)
        poolStride = PoolValues.count(config: c, tokens: g.n)
        pool = ws.buffer(TapeSlot.pool, count: g.B * poolStride)
        dx = ws.buffer(TapeSlot.dx, count: g.rows * C)
        dEmbed = ws.buffer(TapeSlot.dEmbed, count: g.B * g.N * C)
        dxn = ws.buffer(TapeSlot.dxn, count: g.rows * C)
        dHidden = ws.buffer(TapeSlot.dHidden, count: g.rows * c.hiddenDim)
        dqkv = ws.buffer(TapeSlot.dqkv, count: g.rows * 3 * C)
        dHeads = ws.buffer(TapeSlot.dHeads, count: g.rows * C)
        let threads = model.pool.threadCount
        dPos = ws.buffer(TapeSlot.dPos, count: threads * (1 + g.N) * C)
        let F = c.numFrames, G = c.baseGrid
        dGrid = ws.buffer(TapeSlot.dGrid, count: F * G * G * C)
        dTimed = ws.buffer(TapeSlot.dTimed, count: g.T * G * G * C)
        dPatchWeight = ws.buffer(TapeSlot.dPatchWeight, count: threads * C * P3)
        zeroBias = ws.buffer(TapeSlot.zeroBias, count: c.hiddenDim, zeroed: true)
        blocks = (0..<c.depth).map { BlockTape(ws, block: $0, rows: g.rows, config: c) }
        privateDKV = (0..<threads).map { t in (0..<2).map { ws.buffer(TapeSlot.privateDKV(thread: t, parity: $0), count: 2 * g.rows * C) } }
        let D = c.clipEmbedDim, H = c.attnPoolNumHeads, n = g.n
        headScratch = (0..<threads).map { ws.buffer(TapeSlot.headScratch($0), count: 3 * D + 4 * C + 2 * H * C + n * H + 2 * n * C + 64) }
        let attention = Attention.backwardScratchCount(keys: g.n, headDim: c.headDim)
        attentionScratch = (0..<threads).map { ws.buffer(TapeSlot.attentionScratch($0), count: attention) }
        let share = (g.B * g.N + threads - 1) / threads + 1
        dProjected = (0..<threads).map { ws.buffer(TapeSlot.dProjected($0), count: share * C) }
        dNormed = (0..<threads).map { ws.buffer(TapeSlot.dNormed($0), count: share * P3) }
    }

    func poolValues(_ b: Int) -> PoolValues {
        PoolValues(at: pool + b * poolStride, config: config, tokens: geometry.n)
    }

    /// Block i's saved values (allocated before any thread runs: the workspace is not thread-safe).
    func block(_ i: Int) -> BlockTape { blocks[i] }

    func blockIO(_ i: Int, _ buf: Buffers) -> BlockIO {
        let s = block(i)
        return BlockIO(
            qkvRaw: s.qkvRaw, qk: s.qk, ldqk: 2 * config.embedDim, heads: s.heads, lse: s.lse, mixed: buf.attn,
            projOut: s.projOut, mlpOut: s.mlpOut, xIn: s.xIn, rstd1: s.rstd1, rstdQ: s.rstdQ, rstdK: s.rstdK,
            rstd2: s.rstd2, pre: s.pre)
    }
}

/// One block's saved activations (see `BlockIO`).
struct BlockTape {
    let xIn, qkvRaw, qk, heads, lse, projOut, mlpOut, pre, rstd1, rstdQ, rstdK, rstd2: UnsafeMutablePointer<Float>

    init(_ ws: Workspace, block i: Int, rows R: Int, config c: FluxViTConfig) {
        let C = c.embedDim
        func base(_ field: Int) -> Int { TapeSlot.block(i, field: field) }
        xIn = ws.buffer(base(0), count: R * C)
        qkvRaw = ws.buffer(base(1), count: R * 3 * C)
        qk = ws.buffer(base(2), count: R * 2 * C)
        heads = ws.buffer(base(3), count: R * C)
        lse = ws.buffer(base(4), count: R * c.numHeads)
        projOut = ws.buffer(base(5), count: R * C)
        mlpOut = ws.buffer(base(6), count: R * C)
        pre = ws.buffer(base(7), count: R * c.hiddenDim)
        rstd1 = ws.buffer(base(8), count: R)
        rstdQ = ws.buffer(base(9), count: R)
        rstdK = ws.buffer(base(10), count: R)
        rstd2 = ws.buffer(base(11), count: R)
    }
}

extension FluxViTModel {
    /// Classifier, projector and attention-pooling backward, one sample per thread at a time;
    /// writes d x_final into tape.dx (rows of that sample).
    func headBackward(
        _ ctx: ComputeContext, _ g: Geometry, head j: Int, tape: Tape, dLogits: UnsafePointer<Float>,
        projector: Int?, dProjection: UnsafePointer<Float>?, grads: UnsafeMutablePointer<Float>
    ) {
        let c = config, C = c.embedDim, D = c.clipEmbedDim, K = c.numClasses, H = c.attnPoolNumHeads
        let dh = c.poolHeadDim, n = g.n
        let w = shared, dw = sharedSlots.at(grads), pw = poolWeights[j], dp = poolSlots[j].at(grads)
        let scratch = tape.headScratch[ctx.index]
        for b in ctx.items(g.B) {
            let v = tape.poolValues(b)
            let x = tape.xFinal + b * n * C, dx = tape.dx + b * n * C
            // Scratch: df [D] | dfn [D] | dPre [D] | do [C] | dz [H·C] | dq [C] | dqn [C] | dq0 [C] | y [H·C]
            //          | dS [n·H] | normed [n·C] | dNormed [n·C]
            let df = scratch, dfn = df + D, dPre = dfn + D, dPooled = dPre + D, dz = dPooled + C, dq = dz + H * C
            let dqn = dq + C, dq0 = dqn + C, y = dq0 + C, dS = y + H * C, normed = dS + n * H, dNormed = normed + n * C
            for d in 0..<D { df[d] = 0 }

            // logits = W_j·LN_fc(f) + b_j
            let dl = dLogits + b * K
            cblas_sger(CblasRowMajor, Int32(K), Int32(D), 1, dl, 1, v.fn, 1, dw.head[j], Int32(D))
            for k in 0..<K { dw.headBias[j][k] += dl[k] }
            cblas_sgemv(CblasRowMajor, CblasTrans, Int32(K), Int32(D), 1, w.head[j], Int32(D), dl, 1, 0, dfn, 1)
            LayerNorm.backward(rows: 1, cols: D, x: v.f, ldx: D, weight: w.fcNorm, mean: v.fcStats, rstd: v.fcStats + 1, dY: dfn, lddY: D, dX: df, lddX: D, dWeight: dw.fcNorm, dBias: dw.fcNormBias)

            // proj m = l2n(LN_m(W_m f + b_m))
            if let m = projector, let dProjection {
                let dec = w.projectors[m], ddec = dw.projectors[m]
                let y = v.projLN[m], norm = v.projNorm[m][0], gOut = dProjection + b * D
                // Through y/‖y‖: dy = (g − ŷ(ŷ·g)) / ‖y‖ with ŷ = y/‖y‖.
                var dot: Float = 0
                for d in 0..<D { dot += y[d] / norm * gOut[d] }
                for d in 0..<D { dfn[d] = (gOut[d] - y[d] / norm * dot) / norm }
                for d in 0..<D { dPre[d] = 0 }
                LayerNorm.backward(rows: 1, cols: D, x: v.projPre[m], ldx: D, weight: dec.norm, mean: v.projStats[m], rstd: v.projStats[m] + 1, dY: dfn, lddY: D, dX: dPre, lddX: D, dWeight: ddec.norm, dBias: ddec.normBias)
                cblas_sger(CblasRowMajor, Int32(D), Int32(D), 1, dPre, 1, v.f, 1, ddec.weight, Int32(D))
                for d in 0..<D { ddec.bias[d] += dPre[d] }
                cblas_sgemv(CblasRowMajor, CblasTrans, Int32(D), Int32(D), 1, dec.weight, Int32(D), dPre, 1, 1, df, 1)
            }

            // f = W_proj·pooled + b
            cblas_sger(CblasRowMajor, Int32(D), Int32(C), 1, df, 1, v.pooled, 1, dp.proj, Int32(C))
            for d in 0..<D { dp.projBias[d] += df[d] }
            cblas_sgemv(CblasRowMajor, CblasTrans, Int32(D), Int32(C), 1, pw.proj, Int32(C), df, 1, 0, dPooled, 1)
            // pooled_h = W_v,h z_h + b_v,h
            for h in 0..<H {
                let rowsW = h * dh * C
                cblas_sger(CblasRowMajor, Int32(dh), Int32(C), 1, dPooled + h * dh, 1, v.z + h * C, 1, dp.v + rowsW, Int32(C))
                for d in 0..<dh { dp.vBias[h * dh + d] += dPooled[h * dh + d] }
                cblas_sgemv(CblasRowMajor, CblasTrans, Int32(dh), Int32(C), 1, pw.v + rowsW, Int32(C), dPooled + h * dh, 1,
                            0, dz + h * C, 1)
            }
            // z_h = Σᵢ p_ih vnᵢ: dVN = P·dZ; dP_ih = dz_h·vnᵢ.
            LayerNorm.forward(rows: n, cols: C, x: x, ldx: C, weight: pw.normV, bias: pw.normVBias, eps: 1e-5, y: normed, ldy: C)
            BLAS.sgemm(m: n, n: C, k: H, a: v.probs, lda: H, b: dz, ldb: C, c: dNormed, ldc: C)
            BLAS.sgemm(transB: true, m: n, n: H, k: C, a: normed, lda: C, b: dz, ldb: C, c: dS, ldc: H)
            for i in 0..<n * C { dx[i] = 0 }
            LayerNorm.backward(rows: n, cols: C, x: x, ldx: C, weight: pw.normV, mean: v.vStats, rstd: v.vStats + n, dY: dNormed, lddY: C, dX: dx, lddX: C, dWeight: dp.normV, dBias: dp.normVBias)
            // Softmax: dS = P ⊙ (dP − Σᵢ P dP), per head.
            for h in 0..<H {
                var dot: Float = 0
                for i in 0..<n { dot += v.probs[i * H + h] * dS[i * H + h] }
                for i in 0..<n { dS[i * H + h] = v.probs[i * H + h] * (dS[i * H + h] - dot) }
            }
            // scores = LN_k(x)·u_h with u_h = scale·W_k,hᵀ q_h: dKN = dS·U; y_h = Σᵢ dS_ih knᵢ.
            LayerNorm.forward(rows: n, cols: C, x: x, ldx: C, weight: pw.normK, bias: pw.normKBias, eps: 1e-5, y: normed, ldy: C)
            BLAS.sgemm(m: n, n: C, k: H, a: dS, lda: H, b: v.u, ldb: C, c: dNormed, ldc: C)
            BLAS.sgemm(transA: true, m: H, n: C, k: n, a: dS, lda: H, b: normed, ldb: C, c: y, ldc: C)
            LayerNorm.backward(rows: n, cols: C, x: x, ldx: C, weight: pw.normK, mean: v.kStats, rstd: v.kStats + n, dY: dNormed, lddY: C, dX: dx, lddX: C, dWeight: dp.normK, dBias: dp.normKBias)
            // dq_h = scale·W_k,h y_h; dW_k,h += scale·q_h ⊗ y_h (d b_k is exactly 0: it cancels in the softmax).
            let scale = 1 / Float(dh).squareRoot()
            for h in 0..<H {
                let rowsW = h * dh * C
                cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(dh), Int32(C), scale, pw.k + rowsW, Int32(C), y + h * C, 1, 0,
                            dq + h * dh, 1)
                cblas_sger(CblasRowMajor, Int32(dh), Int32(C), scale, v.q + h * dh, 1, y + h * C, 1, dp.k + rowsW, Int32(C))
            }
            // q = W_q qn + b_q; qn = LN_q(q0); q0 = mean of the rows.
            cblas_sger(CblasRowMajor, Int32(C), Int32(C), 1, dq, 1, v.qn, 1, dp.q, Int32(C))
            for ch in 0..<C { dp.qBias[ch] += dq[ch] }
            cblas_sgemv(CblasRowMajor, CblasTrans, Int32(C), Int32(C), 1, pw.q, Int32(C), dq, 1, 0, dqn, 1)
            for ch in 0..<C { dq0[ch] = 0 }
            LayerNorm.backward(rows: 1, cols: C, x: v.q0, ldx: C, weight: pw.normQ, mean: v.qStats, rstd: v.qStats + 1, dY: dqn, lddY: C, dX: dq0, lddX: C, dWeight: dp.normQ, dBias: dp.normQBias)
            let inverse = 1 / Float(n)
            for i in 0..<n { for ch in 0..<C { dx[i * C + ch] += dq0[ch] * inverse } }
        }
    }

    /// One block's backward on this thread's rows: tape.dx holds d x_out on entry, d x_in on exit.
    func blockBackward(_ ctx: ComputeContext, block i: Int, _ g: Geometry, _ buf: Buffers, _ tape: Tape,
                       grads: UnsafeMutablePointer<Float>) {
        let c = config, C = c.embedDim, C3 = 3 * C, Hd = c.hiddenDim, wt = blocks[i], gw = blockSlots[i].at(grads)
        let s = tape.block(i)
        let rows = ctx.rows(g.rows), r0 = rows.lowerBound, count = rows.count
        let dx = tape.dx + r0 * C, xIn = s.xIn + r0 * C
        let xMid = buf.x + r0 * C, xn = buf.xn + r0 * C, dxn = tape.dxn + r0 * C
        let hidden = buf.hidden + r0 * Hd, dHidden = tape.dHidden + r0 * Hd
        let projOut = s.projOut + r0 * C, mlpOut = s.mlpOut + r0 * C, pre = s.pre + r0 * Hd

        // Recompute x_mid = x_in + γ₁ ⊙ (projOut + b) and RMSNorm₂(x_mid).
        xMid.update(from: xIn, count: count * C)
        Elementwise.residualScaleAdd(rows: count, cols: C, x: xMid, ldx: C, y: projOut, ldy: C, bias: wt.projBias, gamma: wt.gamma1)
        RMSNorm.forward(rows: count, cols: C, x: xMid, ldx: C, weight: wt.norm2, eps: 1e-6, y: xn, ldy: C)

        // x_out = x_mid + γ₂ ⊙ (mlpOut + b₂).
        scaledResidualBackward(rows: count, cols: C, dOut: dx, y: mlpOut, bias: wt.fc2Bias, gamma: wt.gamma2,
                               dBranch: dxn, dGamma: gw.gamma2, dBias: gw.fc2Bias)
        // mlpOut = GELU(pre)·W₂ᵀ
        hidden.update(from: pre, count: count * Hd)
        GELU.forward(rows: count, cols: Hd, x: hidden, bias: tape.zeroBias, kind: c.gelu)
        BLAS.sgemm(transA: true, m: C, n: Hd, k: count, a: dxn, lda: C, b: hidden, ldb: Hd, beta: 1, c: gw.fc2, ldc: Hd)
        BLAS.sgemm(m: count, n: Hd, k: C, a: dxn, lda: C, b: wt.fc2, ldb: Hd, c: dHidden, ldc: Hd)
        GELU.backward(rows: count, cols: Hd, pre: pre, dY: dHidden, kind: c.gelu, dX: dHidden, dBias: gw.fc1Bias)
        // pre = RMSNorm₂(x_mid)·W₁ᵀ + b₁
        BLAS.sgemm(transA: true, m: Hd, n: C, k: count, a: dHidden, lda: Hd, b: xn, ldb: C, beta: 1, c: gw.fc1, ldc: C)
        BLAS.sgemm(m: count, n: C, k: Hd, a: dHidden, lda: Hd, b: wt.fc1, ldb: C, c: dxn, ldc: C)
        // d x_mid = dx + RMSNorm₂ backward (in place into dx).
        RMSNorm.backward(rows: count, cols: C, x: xMid, ldx: C, weight: wt.norm2, rstd: s.rstd2 + r0, dY: dxn, lddY: C, dX: dx, lddX: C, dWeight: gw.norm2)

        // x_mid = x_in + γ₁ ⊙ (projOut + b_proj); projOut = mixed·W_projᵀ, mixed = heads + LPE(v).
        scaledResidualBackward(rows: count, cols: C, dOut: dx, y: projOut, bias: wt.projBias, gamma: wt.gamma1,
                               dBranch: dxn, dGamma: gw.gamma1, dBias: gw.projBias)
        let mixed = buf.attn + r0 * C, qkv = s.qkvRaw + r0 * C3
        mixed.update(from: s.heads + r0 * C, count: count * C)
        Elementwise.scaleShift(rows: count, cols: C, x: qkv + 2 * C, ldx: C3, weight: wt.lpeWeight, bias: wt.lpeBias,
                               y: mixed, ldy: C, accumulate: true)
        BLAS.sgemm(transA: true, m: C, n: C, k: count, a: dxn, lda: C, b: mixed, ldb: C, beta: 1, c: gw.proj, ldc: C)
        let dHeads = tape.dHeads + r0 * C
        BLAS.sgemm(m: count, n: C, k: C, a: dxn, lda: C, b: wt.proj, ldb: C, c: dHeads, ldc: C)
        // LPE: d v += d mixed ⊙ w_lpe; d w_lpe += Σ d mixed ⊙ v; d b_lpe += Σ d mixed.
        let dqkv = tape.dqkv + r0 * C3
        for r in 0..<count {
            let dm = dHeads + r * C, v = qkv + r * C3 + 2 * C, dv = dqkv + r * C3 + 2 * C
            for ch in 0..<C {
                dv[ch] = dm[ch] * wt.lpeWeight[ch]
                gw.lpeWeight[ch] += dm[ch] * v[ch]
                gw.lpeBias[ch] += dm[ch]
            }
        }

        // Attention: this thread's query rows give dq (its rows) and partial dk, dv (all rows).
        let dh = c.headDim, scale = 1 / Float(dh).squareRoot()
        // Parity: another thread may still be summing the previous block's buffers.
        let privateKV = tape.privateDKV[ctx.index][i % 2]  // [R, 2C]: dk | dv
        privateKV.update(repeating: 0, count: g.rows * 2 * C)
        let scratch = tape.attentionScratch[ctx.index]
        var row = r0
        while row < rows.upperBound {
            let b = row / g.n, sampleEnd = min((b + 1) * g.n, rows.upperBound)
            let first = b * g.n
            for head in 0..<c.numHeads {
                Attention.backward(queries: sampleEnd - row, keys: g.n, headDim: dh, q: s.qk + row * 2 * C + head * dh, ldq: 2 * C, k: s.qk + first * 2 * C + C + head * dh, ldk: 2 * C, v: s.qkvRaw + first * C3 + 2 * C + head * dh, ldv: C3, out: s.heads + row * C + head * dh, ldo: C, lse: s.lse + head * g.rows + row, dOut: tape.dHeads + row * C + head * dh, lddOut: C, scale: scale, dQ: tape.dqkv + row * C3 + head * dh, lddQ: C3, dK: privateKV + first * 2 * C + head * dh, lddK: 2 * C, dV: privateKV + first * 2 * C + C + head * dh, lddV: 2 * C, scratch: scratch)
            }
            row = sampleEnd
        }
        ctx.barrier()
        // Sum every thread's dk, dv for this thread's rows (fixed order).
        for r in rows {
            let target = tape.dqkv + r * C3
            for ch in 0..<C { target[C + ch] = 0 }
            for t in 0..<ctx.count {
                let source = tape.privateDKV[t][i % 2] + r * 2 * C
                for ch in 0..<C { target[C + ch] += source[ch] }
                for ch in 0..<C { target[2 * C + ch] += source[C + ch] }
            }
        }
        // q, k ← RMSNorm(q_raw), RMSNorm(k_raw): to the raw projections, in place.
        let qkRaw = buf.qkv[0] + r0 * 2 * C  // scratch: d q_raw | d k_raw
        for r in 0..<count { for ch in 0..<(2 * C) { qkRaw[r * 2 * C + ch] = 0 } }
        RMSNorm.backward(rows: count, cols: C, x: qkv, ldx: C3, weight: wt.qNorm, rstd: s.rstdQ + r0, dY: dqkv, lddY: C3, dX: qkRaw, lddX: 2 * C, dWeight: gw.qNorm)
        RMSNorm.backward(rows: count, cols: C, x: qkv + C, ldx: C3, weight: wt.kNorm, rstd: s.rstdK + r0, dY: dqkv + C, lddY: C3, dX: qkRaw + C, lddX: 2 * C, dWeight: gw.kNorm)
        for r in 0..<count {
            (dqkv + r * C3).update(from: qkRaw + r * 2 * C, count: 2 * C)
        }
        // qkv = RMSNorm₁(x_in)·W_qkvᵀ
        RMSNorm.forward(rows: count, cols: C, x: xIn, ldx: C, weight: wt.norm1, eps: 1e-6, y: xn, ldy: C)
        BLAS.sgemm(transA: true, m: C3, n: C, k: count, a: dqkv, lda: C3, b: xn, ldb: C, beta: 1, c: gw.qkv, ldc: C)
        BLAS.sgemm(m: count, n: C, k: C3, a: dqkv, lda: C3, b: wt.qkv, ldb: C, c: dxn, ldc: C)
        RMSNorm.backward(rows: count, cols: C, x: xIn, ldx: C, weight: wt.norm1, rstd: s.rstd1 + r0, dY: dxn, lddY: C, dX: dx, lddX: C, dWeight: gw.norm1)
        // The next (earlier) block reads only this thread's rows of dx, but its attention
        // backward reads every row of its own tape, which no thread writes: no barrier needed here.
    }

    /// out = x + γ ⊙ (y + b): dBranch = dOut ⊙ γ, dγ += Σ dOut ⊙ (y + b), db += Σ dBranch. dOut is unchanged.
    func scaledResidualBackward(rows: Int, cols: Int, dOut: UnsafePointer<Float>, y: UnsafePointer<Float>,
                                bias: UnsafePointer<Float>, gamma: UnsafePointer<Float>, dBranch: UnsafeMutablePointer<Float>,
                                dGamma: UnsafeMutablePointer<Float>, dBias: UnsafeMutablePointer<Float>) {
        for r in 0..<rows {
            let d = dOut + r * cols, yr = y + r * cols, out = dBranch + r * cols
            for ch in 0..<cols {
                dGamma[ch] += d[ch] * (yr[ch] + bias[ch])
                out[ch] = d[ch] * gamma[ch]
                dBias[ch] += out[ch]
            }
        }
    }

    /// Tokens → patch embeddings, cls and the position table: scatter d x to their sources.
    func gatherBackward(_ ctx: ComputeContext, _ g: Geometry, _ buf: Buffers, _ tape: Tape, grads: UnsafeMutablePointer<Float>) {
        let C = config.embedDim
        let dCls = grads + parameters.slot("cls_token")!.offset
        let dPos = tape.dPos + ctx.index * (1 + g.N) * C
        for k in 0..<((1 + g.N) * C) { dPos[k] = 0 }
        // d embed of unkept tokens is 0: clear this thread's share of the patch rows first.
        let patchRows = ctx.rows(g.B * g.N)
        for k in (patchRows.lowerBound * C)..<(patchRows.upperBound * C) { tape.dEmbed[k] = 0 }
        ctx.barrier()
        for row in ctx.rows(g.rows) {
            let b = row / g.n, i = row % g.n, d = tape.dx + row * C
            if i == 0 {
                for ch in 0..<C { dCls[ch] += d[ch]; dPos[ch] += d[ch] }
            } else {
                let token = g.selecting ? buf.kept[b * g.kept + i - 1] : i - 1
                let target = tape.dEmbed + (b * g.N + token) * C, pos = dPos + (1 + token) * C
                for ch in 0..<C { target[ch] = d[ch]; pos[ch] += d[ch] }
            }
        }
    }

    /// Patch embedding backward (both norms and the projection) on this thread's patch rows.
    func patchBackward(_ ctx: ComputeContext, _ g: Geometry, _ buf: Buffers, _ tape: Tape, grads: UnsafeMutablePointer<Float>) {
        let c = config, C = c.embedDim, P = c.patchSize, P3 = 3 * P * P
        let rows = ctx.rows(g.B * g.N), r0 = rows.lowerBound, count = rows.count
        let p = parameters
        func grad(_ name: String) -> UnsafeMutablePointer<Float> { grads + p.slot(name)!.offset }
        let dW = tape.dPatchWeight + ctx.index * C * P3
        for k in 0..<(C * P3) { dW[k] = 0 }
        if count > 0 {
            let dProjected = tape.dProjected[ctx.index]
            dProjected.update(repeating: 0, count: count * C)
            RMSNorm.backward(rows: count, cols: C, x: tape.patch.embedPre + r0 * C, ldx: C, weight: p.pointer("patch_embed.norm.weight"), rstd: tape.patch.rstdAfter + r0, dY: tape.dEmbed + r0 * C, lddY: C, dX: dProjected, lddX: C, dWeight: grad("patch_embed.norm.weight"))
            let dBias = grad("patch_embed.proj.bias")
            for r in 0..<count { for ch in 0..<C { dBias[ch] += dProjected[r * C + ch] } }
            // Normalized patches are recomputed from the raw ones.
            let normed = buf.patches + r0 * P3
            RMSNorm.forward(rows: count, cols: P3, x: tape.patch.raw + r0 * P3, ldx: P3, weight: p.pointer("patch_embed.norm_before.weight"),
                            eps: 1e-6, y: normed, ldy: P3)
            BLAS.sgemm(transA: true, m: C, n: P3, k: count, a: dProjected, lda: C, b: normed, ldb: P3, beta: 1, c: dW, ldc: P3)
            let dNormed = tape.dNormed[ctx.index]
            BLAS.sgemm(m: count, n: P3, k: C, a: dProjected, lda: C, b: buf.patchWeight, ldb: P3, c: dNormed, ldc: P3)
            RMSNorm.backward(rows: count, cols: P3, x: tape.patch.raw + r0 * P3, ldx: P3, weight: p.pointer("patch_embed.norm_before.weight"), rstd: tape.patch.rstdBefore + r0, dY: dNormed, lddY: P3, dX: nil, lddX: P3, dWeight: grad("patch_embed.norm_before.weight"))
        }
        // Back to the (out, channel, row, column) layout of patch_embed.proj.weight.
        let dProj = grad("patch_embed.proj.weight")
        for o in 0..<C {
            for ch in 0..<3 {
                for r in 0..<P {
                    for col in 0..<P { dProj[o * P3 + ch * P * P + r * P + col] += dW[o * P3 + (r * P + col) * 3 + ch] }
                }
            }
        }
    }

    /// Position table backward: sum the threads' d table, then the adjoints of the resizes and
    /// of GPE, for this thread's channels.
    func positionBackward(_ ctx: ComputeContext, _ g: Geometry, _ tape: Tape, grads: UnsafeMutablePointer<Float>) {
        ctx.barrier()
        let c = config, C = c.embedDim, F = c.numFrames, G = c.baseGrid, channels = ctx.rows(C)
        let p = parameters
        let dPosEmbed = grads + p.slot("pos_embed")!.offset
        let dGpeW = grads + p.slot("gpe_proj.depthwise_conv.weight")!.offset
        let dGpeB = grads + p.slot("gpe_proj.depthwise_conv.bias")!.offset
        let pos = p.pointer("pos_embed"), gpeW = p.pointer("gpe_proj.depthwise_conv.weight")
        let table = tape.dPos  // thread 0's table receives the sum
        for t in 1..<ctx.count {
            let other = tape.dPos + t * (1 + g.N) * C
            for r in 0..<(1 + g.N) { for ch in channels { table[r * C + ch] += other[r * C + ch] } }
        }
        for ch in channels { dPosEmbed[ch] += table[ch] }  // cls entry: no GPE, no resize
        let dOut = table + C
        let dGrid = tape.dGrid  // [F, G, G, C]
        for r in 0..<(F * G * G) { for ch in channels { dGrid[r * C + ch] = 0 } }
        let sameTime = g.T == F, sameSpace = g.h == G && g.w == G
        // Space: adjoint of bicubic G×G → h×w, into d timed [T, G, G, C].
        let dTimed = sameSpace ? dOut : tape.dTimed
        if !sameSpace {
            for r in 0..<(g.T * G * G) { for ch in channels { dTimed[r * C + ch] = 0 } }
            let rowTaps = Resize.cubicTaps(inSize: G, outSize: g.h), colTaps = Resize.cubicTaps(inSize: G, outSize: g.w)
            for t in 0..<g.T {
                for oy in 0..<g.h {
                    for ox in 0..<g.w {
                        let d = dOut + ((t * g.h + oy) * g.w + ox) * C
                        for a in 0..<4 {
                            for bb in 0..<4 {
                                let weight = rowTaps[oy].weight[a] * colTaps[ox].weight[bb]
                                let target = dTimed + ((t * G + rowTaps[oy].index[a]) * G + colTaps[ox].index[bb]) * C
                                for ch in channels { target[ch] += weight * d[ch] }
                            }
                        }
                    }
                }
            }
        }
        // Time: adjoint of linear F → T.
        if sameTime {
            for r in 0..<(F * G * G) { for ch in channels { dGrid[r * C + ch] = dTimed[r * C + ch] } }
        } else {
            let inner = G * G
            for (t, taps) in Resize.linearTaps(inSize: F, outSize: g.T).enumerated() {
                for s in 0..<inner {
                    let d = dTimed + (t * inner + s) * C
                    let a = dGrid + (taps.index[0] * inner + s) * C, b = dGrid + (taps.index[1] * inner + s) * C
                    for ch in channels {
                        a[ch] += taps.weight[0] * d[ch]
                        b[ch] += taps.weight[1] * d[ch]
                    }
                }
            }
        }
        // GPE: grid = pe ⊙ w + b.
        for r in 0..<(F * G * G) {
            let d = dGrid + r * C, pe = pos + (1 + r) * C, dpe = dPosEmbed + (1 + r) * C
            for ch in channels {
                dpe[ch] += d[ch] * gpeW[ch]
                dGpeW[ch] += d[ch] * pe[ch]
                dGpeB[ch] += d[ch]
            }
        }
    }

    /// Adds threads 1… gradient buffers into the store's, this thread's share of the range, and
    /// clears them.
    func sumThreadGradients(_ ctx: ComputeContext, _ buffers: [UnsafeMutablePointer<Float>]) {
        guard buffers.count > 1 else { return }
        let range = ctx.rows(parameters.count)
        let target = buffers[0]
        for t in 1..<buffers.count {
            let source = buffers[t]
            for i in range {
                target[i] += source[i]
                source[i] = 0
            }
        }
    }
}

extension Optional where Wrapped == [Float] {
    /// Calls `body` with the array's buffer pointer, or with nil.
    func withUnsafeBufferPointerIfPresent<R>(_ body: (UnsafePointer<Float>?) throws -> R) rethrows -> R {
        switch self {
        case let .some(array): try array.withUnsafeBufferPointer { try body($0.baseAddress) }
        case .none: try body(nil)
        }
    }
}
