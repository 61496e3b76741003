import FluxTensor

// The forward pass of spec §4 as an explicit chain (llm.c style). All threads of the pool run
// the chain on their own rows (ComputeContext.rows); barriers stand only where data crosses rows:
// after the patch embedding (selection compares frames), after selection (gathering), and once per
// block after q/k/v are complete (attention reads every key). The qkv buffer alternates between
// two slots per block so that the next block's projections never overwrite keys a slower thread
// is still reading.

/// Buffer slots of the model's workspace.
private enum Slot {
    static let patches = 0, embed = 1, pos = 2, posScratch = 3, x = 4, xn = 5, qkvEven = 6, qkvOdd = 7
    static let attn = 8, hidden = 9, importance = 10, patchWeight = 11, kept = 12
    static let threadScratch = 16  // + thread index
    static let capture = 64  // + capture index
}

extension FluxViTModel {
    /// Runs the model on `video` [B, 3, T, H, W] (normalized as spec §4 says).
    ///
    /// - Parameters:
    ///   - budget: tokens to keep by group token selection (spec §4.2); nil or ≥ N keeps all.
    ///   - head: which head to use; nil picks the head whose training budget is nearest the
    ///     number of tokens the model sees.
    ///   - captureIntermediates: also return named activations (tests, debugging).
    /// - Throws: `ModelError` for a clip the model cannot take (shape, size, frames, budget).
    public func forward(
        video: Tensor, budget: Int? = nil, head: Int? = nil, captureIntermediates: Bool = false
    ) throws(ModelError) -> ForwardOutput {
        let geometry = try geometry(of: video, budget: budget)
        let chosenHead = head ?? config.defaultHead(forTokens: geometry.kept)
        guard (0..<FluxViTConfig.headCount).contains(chosenHead) else { throw .headOutOfRange(head: chosenHead) }
        preparePositionEmbedding(geometry)
        preparePatchWeight()
        let buffers = Buffers(model: self, geometry: geometry, capture: captureIntermediates)
        video.scalars.withUnsafeBufferPointer { pixels in
            pool.run { ctx in
                self.embedPatches(ctx, geometry, pixels.baseAddress!, buffers)
                ctx.barrier()
                if geometry.selecting { self.selectTokens(ctx, geometry, budget: budget!, buffers) }
                ctx.barrier()
                self.gatherTokens(ctx, geometry, buffers)
                for block in 0..<self.config.depth {
                    self.blockForward(ctx, block: block, geometry, buffers,
                                      .inference(block: block, buffers, channels: self.config.embedDim))
                }
                ctx.barrier()
                self.poolAndClassify(ctx, geometry, head: chosenHead, buffers)
            }
        }
        return buffers.output(geometry, head: chosenHead)
    }
}

/// Sizes of one forward call.
struct Geometry {
    let B, T, H, W, h, w, N: Int
    /// Patch tokens kept per sample.
    let kept: Int
    let selecting: Bool
    /// Tokens per sample in the blocks (cls + kept).
    var n: Int { kept + 1 }
    /// Rows of the residual stream.
    var rows: Int { B * n }
}

/// Pointers into the workspace for one call. Every thread reads them; each writes its own rows.
struct Buffers: @unchecked Sendable {
    let patches, embed, pos, x, xn, attn, hidden, importance, patchWeight: UnsafeMutablePointer<Float>
    let qkv: [UnsafeMutablePointer<Float>]
    let kept: UnsafeMutablePointer<Int>
    let threadScratch: [UnsafeMutablePointer<Float>]
    let logits, feature, proj0, proj1: UnsafeMutablePointer<Float>
    /// Named capture buffers (empty unless intermediates were asked for).
    let captures: [String: (UnsafeMutablePointer<Float>, [Int])]
    let model: FluxViTModel

    init(model: FluxViTModel, geometry g: Geometry, capture: Bool) {
        self.model = model
        let c = model.config
        let C = c.embedDim, P3 = 3 * c.patchSize * c.patchSize, ws = model.workspace
        patches = ws.buffer(Slot.patches, count: g.B * g.N * P3)
        embed = ws.buffer(Slot.embed, count: g.B * g.N * C)
        pos = ws.buffer(Slot.pos, count: (1 + g.N) * C)
        x = ws.buffer(Slot.x, count: g.rows * C)
        xn = ws.buffer(Slot.xn, count: g.rows * C)
        qkv = [ws.buffer(Slot.qkvEven, count: g.rows * 3 * C), ws.buffer(Slot.qkvOdd, count: g.rows * 3 * C)]
        attn = ws.buffer(Slot.attn, count: g.rows * C)
        hidden = ws.buffer(Slot.hidden, count: g.rows * c.hiddenDim)
        importance = ws.buffer(Slot.importance, count: g.B * g.N)
        patchWeight = ws.buffer(Slot.patchWeight, count: C * P3)
        // Int indices live in a float slot's memory (same size, never read as floats).
        kept = UnsafeMutableRawPointer(ws.buffer(Slot.kept, count: 2 * g.B * g.kept))
            .bindMemory(to: Int.self, capacity: g.B * g.kept)
        let attentionScratch = Attention.scratchCount(keys: g.n, headDim: c.headDim)
        let poolingScratch = g.n * C + PoolValues.count(config: c, tokens: g.n)
        threadScratch = (0..<model.pool.threadCount).map {
            ws.buffer(Slot.threadScratch + $0, count: max(attentionScratch, poolingScratch))
        }
        let D = c.clipEmbedDim
        let outputs = ws.buffer(Slot.threadScratch + model.pool.threadCount, count: g.B * (c.numClasses + 3 * D))
        logits = outputs
        feature = outputs + g.B * c.numClasses
        proj0 = feature + g.B * D
        proj1 = proj0 + g.B * D
        var captures: [String: (UnsafeMutablePointer<Float>, [Int])] = [:]
        if capture {
            var shapes: [(String, [Int])] = [
                ("patch_embed", [g.B, g.N, C]), ("pos_embed", [1 + g.N, C]), ("tokens", [g.B, g.n, C]),
            ]
            for i in 0..<c.depth {
                shapes += [("blocks.\(i).attn.out", [g.B, g.n, C]), ("blocks.\(i).out", [g.B, g.n, C])]
            }
            for (i, (name, shape)) in shapes.enumerated() {
                captures[name] = (ws.buffer(Slot.capture + i, count: shape.reduce(1, *)), shape)
            }
        }
        self.captures = captures
    }

    /// Copies rows into a capture buffer, if that activation is being captured.
    func capture(_ name: String, rows: Range<Int>, from source: UnsafePointer<Float>, ld: Int, cols: Int,
                 bias: UnsafePointer<Float>? = nil) {
        guard let (target, _) = captures[name] else { return }
        for r in rows {
            for c in 0..<cols { target[r * cols + c] = source[r * ld + c] + (bias?[c] ?? 0) }
        }
    }

    func output(_ g: Geometry, head: Int) -> ForwardOutput {
        let c = model.config
        func tensor(_ p: UnsafeMutablePointer<Float>, _ shape: [Int]) -> Tensor {
            Tensor(shape: shape, scalars: Array(UnsafeBufferPointer(start: p, count: shape.reduce(1, *))))
        }
        var intermediates: [String: Tensor] = [:]
        for (name, (p, shape)) in captures { intermediates[name] = tensor(p, shape) }
        let keptLists: [[Int]]? = g.selecting
            ? (0..<g.B).map { b in Array(UnsafeBufferPointer(start: kept + b * g.kept, count: g.kept)) }
            : nil
        return ForwardOutput(
            logits: tensor(logits, [g.B, c.numClasses]), feature: tensor(feature, [g.B, c.clipEmbedDim]),
            proj0: tensor(proj0, [g.B, c.clipEmbedDim]), proj1: tensor(proj1, [g.B, c.clipEmbedDim]),
            head: head, sampledTokens: g.N, keptTokens: g.kept, kept: keptLists, intermediates: intermediates)
    }
}

extension FluxViTModel {
    /// Rebuilds the GPE'd and resized position table when the grid or the parameters changed.
    func preparePositionEmbedding(_ g: Geometry) {
        let key = [g.T, g.h, g.w]
        if cachedPositionGrid == key { return }
        let c = config, C = c.embedDim
        let out = workspace.buffer(Slot.pos, count: (1 + g.N) * C)
        let scratch = workspace.buffer(
            Slot.posScratch,
            count: PositionEmbedding.scratchCount(baseFrames: c.numFrames, baseGrid: c.baseGrid, frames: g.T, channels: C))
        let p = parameters
        let pos = p.pointer("pos_embed"), gw = p.pointer("gpe_proj.depthwise_conv.weight")
        let gb = p.pointer("gpe_proj.depthwise_conv.bias")
        pool.run { ctx in
            PositionEmbedding.compute(
                pos: pos, gpeWeight: gw, gpeBias: gb, baseFrames: c.numFrames, baseGrid: c.baseGrid, frames: g.T,
                height: g.h, width: g.w, channelCount: C, channels: ctx.rows(C), scratch: scratch, out: out)
        }
        cachedPositionGrid = key
    }

    /// Reorders the patch projection weight from (out, channel, row, column) to the pixel order of
    /// the flattened patch (row, column, channel), so the projection is one GEMM (spec §4.1).
    func preparePatchWeight() {
        if patchWeightIsCurrent { return }
        let c = config, C = c.embedDim, P = c.patchSize, P3 = 3 * P * P
        let source = parameters.pointer("patch_embed.proj.weight")
        let target = workspace.buffer(Slot.patchWeight, count: C * P3)
        for o in 0..<C {
            for ch in 0..<3 {
                for r in 0..<P {
                    for col in 0..<P {
                        target[o * P3 + (r * P + col) * 3 + ch] = source[o * P3 + ch * P * P + r * P + col]
                    }
                }
            }
        }
        patchWeightIsCurrent = true
    }

    /// Patch embedding with dual RMSNorm (spec §4.1) for this thread's share of the B·N patches.
    /// With `save` (training), also keeps the raw patches, fc output and both norms' 1/rms.
    func embedPatches(_ ctx: ComputeContext, _ g: Geometry, _ video: UnsafePointer<Float>, _ buf: Buffers,
                      save: PatchSaves? = nil) {
        let c = config, C = c.embedDim, P = c.patchSize, P3 = 3 * P * P
        let rows = ctx.rows(g.B * g.N)
        guard !rows.isEmpty else { return }
        let plane = g.H * g.W
        let rawBase = save?.raw ?? buf.patches
        for row in rows {
            let b = row / g.N, token = row % g.N
            let t = token / (g.h * g.w), py = token % (g.h * g.w) / g.w, px = token % g.w
            let dst = rawBase + row * P3
            for ch in 0..<3 {
                let frame = video + ((b * 3 + ch) * g.T + t) * plane
                for r in 0..<P {
                    let line = frame + (py * P + r) * g.W + px * P
                    for col in 0..<P { dst[(r * P + col) * 3 + ch] = line[col] }
                }
            }
        }
        let p = parameters, count = rows.count, r0 = rows.lowerBound
        let patches = buf.patches + r0 * P3, embed = buf.embed + r0 * C
        let projected = (save?.embedPre ?? buf.embed) + r0 * C
        RMSNorm.forward(
            rows: count, cols: P3, x: rawBase + r0 * P3, ldx: P3, weight: p.pointer("patch_embed.norm_before.weight"),
            eps: 1e-6, y: patches, ldy: P3, rstd: save.map { $0.rstdBefore + r0 })
        let bias = p.pointer("patch_embed.proj.bias")
        for r in 0..<count { (projected + r * C).update(from: bias, count: C) }
        Linear.forward(
            rows: count, inFeatures: P3, outFeatures: C, x: patches, ldx: P3, weight: buf.patchWeight, y: projected, ldy: C,
            accumulate: true)
        RMSNorm.forward(
            rows: count, cols: C, x: projected, ldx: C, weight: p.pointer("patch_embed.norm.weight"), eps: 1e-6, y: embed,
            ldy: C, rstd: save.map { $0.rstdAfter + r0 })
        buf.capture("patch_embed", rows: rows, from: buf.embed, ld: C, cols: C)
        if ctx.index == 0 { buf.capture("pos_embed", rows: 0..<(1 + g.N), from: buf.pos, ld: C, cols: C) }
    }

    /// Group token selection (spec §4.2), one sample per thread at a time.
    func selectTokens(_ ctx: ComputeContext, _ g: Geometry, budget: Int, _ buf: Buffers) {
        let C = config.embedDim, L = g.h * g.w
        for b in ctx.items(g.B) {
            let importance = buf.importance + b * g.N
            TokenSelection.importance(
                embed: buf.embed + b * g.N * C, frames: g.T, tokensPerFrame: L, channels: C, into: importance)
            let kept = TokenSelection.select(importance: importance, frames: g.T, tokensPerFrame: L, budget: budget)
            for (i, index) in kept.enumerated() { buf.kept[b * g.kept + i] = index }
        }
    }

    /// Builds the residual stream: cls then the kept patch tokens, each plus its position (§4.3).
    func gatherTokens(_ ctx: ComputeContext, _ g: Geometry, _ buf: Buffers) {
        let C = config.embedDim
        let cls = parameters.pointer("cls_token")
        let rows = ctx.rows(g.rows)
        for row in rows {
            let b = row / g.n, i = row % g.n
            let dst = buf.x + row * C
            if i == 0 {
                for c in 0..<C { dst[c] = cls[c] + buf.pos[c] }
            } else {
                let token = g.selecting ? buf.kept[b * g.kept + i - 1] : i - 1
                let src = buf.embed + (b * g.N + token) * C, pos = buf.pos + (1 + token) * C
                for c in 0..<C { dst[c] = src[c] + pos[c] }
            }
        }
        buf.capture("tokens", rows: rows, from: buf.x, ld: C, cols: C)
    }

    /// One transformer block (spec §4.4) on this thread's rows, with one barrier, writing its
    /// intermediate values where `io` says (shared scratch for inference, the tape for training).
    func blockForward(_ ctx: ComputeContext, block i: Int, _ g: Geometry, _ buf: Buffers, _ io: BlockIO) {
        let c = config, C = c.embedDim, C3 = 3 * C, Hd = c.hiddenDim, wt = blocks[i]
        let rows = ctx.rows(g.rows)
        let r0 = rows.lowerBound, count = rows.count
        let x = buf.x + r0 * C, xn = buf.xn + r0 * C, qkv = io.qkvRaw + r0 * C3, qk = io.qk + r0 * io.ldqk
        let hidden = (io.pre ?? buf.hidden) + r0 * Hd
        if let saved = io.xIn { (saved + r0 * C).update(from: x, count: count * C) }

        // x̂ = RMSNorm₁(x); [q k v] = x̂·W_qkvᵀ; q, k ← RMSNorm over all C channels.
        RMSNorm.forward(rows: count, cols: C, x: x, ldx: C, weight: wt.norm1, eps: 1e-6, y: xn, ldy: C, rstd: io.rstd1.map { $0 + r0 })
        Linear.forward(rows: count, inFeatures: C, outFeatures: C3, x: xn, ldx: C, weight: wt.qkv, y: qkv, ldy: C3)
        RMSNorm.forward(rows: count, cols: C, x: qkv, ldx: C3, weight: wt.qNorm, eps: 1e-6, y: qk, ldy: io.ldqk, rstd: io.rstdQ.map { $0 + r0 })
        RMSNorm.forward(rows: count, cols: C, x: qkv + C, ldx: C3, weight: wt.kNorm, eps: 1e-6, y: qk + C, ldy: io.ldqk, rstd: io.rstdK.map { $0 + r0 })
        ctx.barrier()

        // Per head softmax(q·kᵀ/√d)·v for this thread's query rows, sample by sample.
        let dh = c.headDim, scale = 1 / Float(dh).squareRoot()
        let scratch = buf.threadScratch[ctx.index]
        var row = r0
        while row < rows.upperBound {
            let b = row / g.n, sampleEnd = min((b + 1) * g.n, rows.upperBound)
            let keys = io.qk + b * g.n * io.ldqk, values = io.qkvRaw + b * g.n * C3 + 2 * C
            for head in 0..<c.numHeads {
                Attention.forward(
                    queries: sampleEnd - row, keys: g.n, headDim: dh, q: io.qk + row * io.ldqk + head * dh, ldq: io.ldqk,
                    k: keys + C + head * dh, ldk: io.ldqk, v: values + head * dh, ldv: C3, scale: scale,
                    out: io.heads + row * C + head * dh, ldo: C, lse: io.lse.map { $0 + head * g.rows + row }, scratch: scratch)
            }
            row = sampleEnd
        }
        // out = (heads + LPE(v))·W_projᵀ + b; x += γ₁ ⊙ out.
        let mixed = io.mixed + r0 * C, projOut = io.projOut + r0 * C
        if io.mixed != io.heads { mixed.update(from: io.heads + r0 * C, count: count * C) }
        Elementwise.scaleShift(
            rows: count, cols: C, x: qkv + 2 * C, ldx: C3, weight: wt.lpeWeight, bias: wt.lpeBias, y: mixed, ldy: C,
            accumulate: true)
        Linear.forward(rows: count, inFeatures: C, outFeatures: C, x: mixed, ldx: C, weight: wt.proj, y: projOut, ldy: C)
        if !buf.captures.isEmpty { buf.capture("blocks.\(i).attn.out", rows: rows, from: io.projOut, ld: C, cols: C, bias: wt.projBias) }
        Elementwise.residualScaleAdd(rows: count, cols: C, x: x, ldx: C, y: projOut, ldy: C, bias: wt.projBias, gamma: wt.gamma1)

        // x += γ₂ ⊙ fc2(GELU(fc1(RMSNorm₂(x)))).
        let mlpOut = io.mlpOut + r0 * C
        RMSNorm.forward(rows: count, cols: C, x: x, ldx: C, weight: wt.norm2, eps: 1e-6, y: xn, ldy: C, rstd: io.rstd2.map { $0 + r0 })
        Linear.forward(rows: count, inFeatures: C, outFeatures: Hd, x: xn, ldx: C, weight: wt.fc1, y: hidden, ldy: Hd)
        if io.pre != nil {
            // Keep fc1's output plus bias for the backward; GELU of it goes to the shared buffer.
            let activated = buf.hidden + r0 * Hd
            activated.update(from: hidden, count: count * Hd)
            GELU.forward(rows: count, cols: Hd, x: activated, bias: wt.fc1Bias, kind: c.gelu, pre: hidden)
            Linear.forward(rows: count, inFeatures: Hd, outFeatures: C, x: activated, ldx: Hd, weight: wt.fc2, y: mlpOut, ldy: C)
        } else {
            GELU.forward(rows: count, cols: Hd, x: hidden, bias: wt.fc1Bias, kind: c.gelu)
            Linear.forward(rows: count, inFeatures: Hd, outFeatures: C, x: hidden, ldx: Hd, weight: wt.fc2, y: mlpOut, ldy: C)
        }
        Elementwise.residualScaleAdd(rows: count, cols: C, x: x, ldx: C, y: mlpOut, ldy: C, bias: wt.fc2Bias, gamma: wt.gamma2)
        if !buf.captures.isEmpty { buf.capture("blocks.\(i).out", rows: rows, from: buf.x, ld: C, cols: C) }
    }
}

/// What the patch embedding keeps for its backward (training).
struct PatchSaves {
    /// [B·N, 3P²] raw patch pixels, (row, column, channel) order.
    let raw: UnsafeMutablePointer<Float>
    /// [B·N]: 1/rms of the raw patches and of the projection output.
    let rstdBefore, rstdAfter: UnsafeMutablePointer<Float>
    /// [B·N, C]: projection output plus bias, before the second norm.
    let embedPre: UnsafeMutablePointer<Float>
}

/// Where one block writes its intermediate values. For inference they share scratch buffers
/// (q, k normalized in place; LPE added in place); for training each block gets its own, kept
/// for the backward pass (spec §5: one budget's activations alive at a time).
struct BlockIO {
    /// [R, 3C]: x̂·W_qkvᵀ (q, k before their norms; v).
    let qkvRaw: UnsafeMutablePointer<Float>
    /// Normalized q (columns 0 ..< C) and k (C ..< 2C), row stride `ldqk`.
    let qk: UnsafeMutablePointer<Float>
    let ldqk: Int
    /// [R, C]: concatenated heads before LPE.
    let heads: UnsafeMutablePointer<Float>
    /// [heads, R]: log-sum-exp of each head's scores per row (training only).
    let lse: UnsafeMutablePointer<Float>?
    /// [R, C]: heads + LPE(v), the input of the output projection (may equal `heads`).
    let mixed: UnsafeMutablePointer<Float>
    /// [R, C]: mixed·W_projᵀ (no bias).
    let projOut: UnsafeMutablePointer<Float>
    /// [R, C]: fc2's output (no bias).
    let mlpOut: UnsafeMutablePointer<Float>
    /// Training only: the block's input, the norms' 1/rms per row, fc1's output plus bias.
    let xIn: UnsafeMutablePointer<Float>?
    let rstd1, rstdQ, rstdK, rstd2: UnsafeMutablePointer<Float>?
    let pre: UnsafeMutablePointer<Float>?

    /// Inference: everything in the shared scratch buffers, qkv alternating per block.
    static func inference(block i: Int, _ buf: Buffers, channels C: Int) -> BlockIO {
        let qkv = buf.qkv[i % 2]
        return BlockIO(
            qkvRaw: qkv, qk: qkv, ldqk: 3 * C, heads: buf.attn, lse: nil, mixed: buf.attn, projOut: buf.xn,
            mlpOut: buf.attn, xIn: nil, rstd1: nil, rstdQ: nil, rstdK: nil, rstd2: nil, pre: nil)
    }
}
