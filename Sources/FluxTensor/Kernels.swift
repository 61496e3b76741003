import CFluxKernels
import COpenBLAS

// Swift faces of the C kernels in CFluxKernels. Each works on a row range in the caller's thread;
// see flux_kernels.h for the exact contracts. Spec sections are given per kernel.

/// RMSNorm over the last axis (spec §4.1, §4.4): y = x / √(mean(x²) + ε) ⊙ w. x, y: [rows, cols].
public enum RMSNorm {
    /// In place allowed (y == x with equal ld). rstd, if given, receives 1/√(mean(x²)+ε) per row.
    @inline(__always)
    public static func forward(
        rows: Int, cols: Int, x: UnsafePointer<Float>, ldx: Int, weight: UnsafePointer<Float>, eps: Float,
        y: UnsafeMutablePointer<Float>, ldy: Int, rstd: UnsafeMutablePointer<Float>? = nil
    ) {
        guard rows > 0 else { return }
        flux_rmsnorm_forward(Int32(rows), Int32(cols), x, Int32(ldx), weight, eps, y, Int32(ldy), rstd)
    }

    /// dX += rstd·(g − x̂·mean(g ⊙ x̂)) with g = dY ⊙ w, x̂ = x·rstd; dWeight += Σ_rows dY ⊙ x̂.
    /// dX may be nil (only dWeight wanted) or equal dY. Reference: the chain rule through
    /// y = x·(mean(x²)+ε)^(−½)·w, as PyTorch's autograd of the same expression.
    @inline(__always)
    public static func backward(
        rows: Int, cols: Int, x: UnsafePointer<Float>, ldx: Int, weight: UnsafePointer<Float>, rstd: UnsafePointer<Float>,
        dY: UnsafePointer<Float>, lddY: Int, dX: UnsafeMutablePointer<Float>?, lddX: Int, dWeight: UnsafeMutablePointer<Float>?
    ) {
        guard rows > 0 else { return }
        flux_rmsnorm_backward(Int32(rows), Int32(cols), x, Int32(ldx), weight, rstd, dY, Int32(lddY), dX, Int32(lddX), dWeight)
    }
}

/// LayerNorm over the last axis (spec §4.5–4.7), biased variance. x, y: [rows, cols].
public enum LayerNorm {
    /// In place allowed. mean and rstd, if given, receive the per-row statistics.
    @inline(__always)
    public static func forward(
        rows: Int, cols: Int, x: UnsafePointer<Float>, ldx: Int, weight: UnsafePointer<Float>,
        bias: UnsafePointer<Float>, eps: Float, y: UnsafeMutablePointer<Float>, ldy: Int,
        mean: UnsafeMutablePointer<Float>? = nil, rstd: UnsafeMutablePointer<Float>? = nil
    ) {
        guard rows > 0 else { return }
        flux_layernorm_forward(
            Int32(rows), Int32(cols), x, Int32(ldx), weight, bias, eps, y, Int32(ldy), mean, rstd)
    }

    /// dX += rstd·(g − mean(g) − x̂·mean(g ⊙ x̂)), g = dY ⊙ w; dWeight += Σ dY ⊙ x̂; dBias += Σ dY.
    /// Reference: https://cs231n.github.io/ (batch-norm derivation, per row instead of per column).
    @inline(__always)
    public static func backward(
        rows: Int, cols: Int, x: UnsafePointer<Float>, ldx: Int, weight: UnsafePointer<Float>, mean: UnsafePointer<Float>,
        rstd: UnsafePointer<Float>, dY: UnsafePointer<Float>, lddY: Int, dX: UnsafeMutablePointer<Float>?, lddX: Int,
        dWeight: UnsafeMutablePointer<Float>?, dBias: UnsafeMutablePointer<Float>?
    ) {
        guard rows > 0 else { return }
        flux_layernorm_backward(
            Int32(rows), Int32(cols), x, Int32(ldx), weight, mean, rstd, dY, Int32(lddY), dX, Int32(lddX), dWeight, dBias)
    }
}

/// Which GELU (spec §2): the exact erf form, or PyTorch's tanh approximation that the released
/// checkpoints were trained with.
public enum GELUKind: String, Sendable, CaseIterable, Codable {
    case erf
    case tanh
}

/// Bias plus GELU, fused (spec §4.4 MLP): x ← GELU(x + bias) in place. x: [rows, cols], ld = cols.
public enum GELU {
    /// pre, if given, receives x + bias before the activation, for the backward pass.
    @inline(__always)
    public static func forward(
        rows: Int, cols: Int, x: UnsafeMutablePointer<Float>, bias: UnsafePointer<Float>, kind: GELUKind,
        pre: UnsafeMutablePointer<Float>? = nil
    ) {
        guard rows > 0 else { return }
        flux_bias_gelu_forward(Int32(rows), Int32(cols), x, bias, kind.code, pre)
    }

    /// dX = dY ⊙ GELU′(pre) (overwritten; dX may equal dY); dBias += Σ_rows dX. pre: x + bias
    /// as the forward saved it. All [rows, cols] with ld = cols.
    @inline(__always)
    public static func backward(
        rows: Int, cols: Int, pre: UnsafePointer<Float>, dY: UnsafePointer<Float>, kind: GELUKind,
        dX: UnsafeMutablePointer<Float>, dBias: UnsafeMutablePointer<Float>?
    ) {
        guard rows > 0 else { return }
        flux_bias_gelu_backward(Int32(rows), Int32(cols), pre, dY, kind.code, dX, dBias)
    }
}

extension GELUKind {
    var code: Int32 { Int32(self == .tanh ? FLUX_GELU_TANH : FLUX_GELU_ERF) }
}

/// Elementwise helpers of the block (spec §4.4).
public enum Elementwise {
    /// Residual with LayerScale: x += γ ⊙ (y + bias). x, y: [rows, cols].
    @inline(__always)
    public static func residualScaleAdd(
        rows: Int, cols: Int, x: UnsafeMutablePointer<Float>, ldx: Int, y: UnsafePointer<Float>, ldy: Int,
        bias: UnsafePointer<Float>?, gamma: UnsafePointer<Float>
    ) {
        guard rows > 0 else { return }
        flux_residual_scale_add(Int32(rows), Int32(cols), x, Int32(ldx), y, Int32(ldy), bias, gamma)
    }

    /// Per-channel scale and shift (GPE, LPE): y = x ⊙ w + b, or y += x ⊙ w + b.
    @inline(__always)
    public static func scaleShift(
        rows: Int, cols: Int, x: UnsafePointer<Float>, ldx: Int, weight: UnsafePointer<Float>,
        bias: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, ldy: Int, accumulate: Bool
    ) {
        guard rows > 0 else { return }
        flux_scale_shift(Int32(rows), Int32(cols), x, Int32(ldx), weight, bias, y, Int32(ldy), accumulate ? 1 : 0)
    }
}

/// Which code path the C kernels take.
public enum KernelDispatch {
    /// True when the AVX2+FMA kernels run (CPU support and not forced portable).
    public static var usesAVX2: Bool { flux_kernels_uses_avx2() != 0 }
    /// Forces the portable fallback on the calling thread only (tests compare both paths; run the
    /// model with one thread to use it there). FLUX_PORTABLE_KERNELS=1 forces it process-wide.
    public static func forcePortable(_ portable: Bool) { flux_kernels_set_portable(portable ? 1 : 0) }

    /// The code paths chosen at run time, as one string (`flux avx2 · openblas Haswell`): two processes with the same
    /// signature and thread count compute the same bits, which `reduction: exact` relies on.
    public static var signature: String {
        let core = openblas_get_corename().map { String(cString: $0) } ?? "?"
        return "flux \(usesAVX2 ? "avx2" : "portable") · openblas \(core)"
    }
}

/// Multi-head self-attention core for one head (spec §4.4): out = softmax(scale·q·kᵀ)·v, fused and
/// tiled so that the n×n score matrix never exists (flash-attention style, online softmax).
public enum Attention {
    /// Scratch floats one call needs.
    public static func scratchCount(keys: Int, headDim: Int) -> Int {
        flux_attention_scratch_floats(Int32(keys), Int32(headDim))
    }

    /// q: [queries, headDim] (ld ldq), k, v: [keys, headDim] (ld ldk, ldv), out: [queries, headDim]
    /// (ld ldo). lse, if given, receives log Σ exp(scores) per query row, for the backward pass.
    @inline(__always)
    public static func forward(
        queries: Int, keys: Int, headDim: Int, q: UnsafePointer<Float>, ldq: Int, k: UnsafePointer<Float>,
        ldk: Int, v: UnsafePointer<Float>, ldv: Int, scale: Float, out: UnsafeMutablePointer<Float>, ldo: Int,
        lse: UnsafeMutablePointer<Float>?, scratch: UnsafeMutablePointer<Float>
    ) {
        guard queries > 0 else { return }
        flux_attention_forward(
            Int32(queries), Int32(keys), Int32(headDim), q, Int32(ldq), k, Int32(ldk), v, Int32(ldv), scale, out,
            Int32(ldo), lse, scratch)
    }

    /// Scratch floats one backward call needs.
    public static func backwardScratchCount(keys: Int, headDim: Int) -> Int {
        flux_attention_backward_scratch_floats(Int32(keys), Int32(headDim))
    }

    /// Flash-attention backward (probabilities recomputed from `lse`): dQ for the call's query rows
    /// is overwritten; dK and dV for all keys are accumulated, so threads splitting query rows give
    /// each its own dK/dV and sum them. Reference: Dao, "FlashAttention-2", Algorithm 2.
    @inline(__always)
    public static func backward(
        queries: Int, keys: Int, headDim: Int, q: UnsafePointer<Float>, ldq: Int, k: UnsafePointer<Float>, ldk: Int,
        v: UnsafePointer<Float>, ldv: Int, out: UnsafePointer<Float>, ldo: Int, lse: UnsafePointer<Float>,
        dOut: UnsafePointer<Float>, lddOut: Int, scale: Float, dQ: UnsafeMutablePointer<Float>, lddQ: Int,
        dK: UnsafeMutablePointer<Float>, lddK: Int, dV: UnsafeMutablePointer<Float>, lddV: Int,
        scratch: UnsafeMutablePointer<Float>
    ) {
        guard queries > 0 else { return }
        flux_attention_backward(
            Int32(queries), Int32(keys), Int32(headDim), q, Int32(ldq), k, Int32(ldk), v, Int32(ldv), out, Int32(ldo), lse,
            dOut, Int32(lddOut), scale, dQ, Int32(lddQ), dK, Int32(lddK), dV, Int32(lddV), scratch)
    }
}

/// The fixed-point passes of the exact gradient reduction (FluxTraining's `FixedPointGradients`), in C with AVX2 and a
/// portable fallback that give the same bits.
public enum FixedPointKernels {
    /// The largest |x| among the finite values of `x[0..<count]`, and whether any is NaN or infinite.
    public static func blockMax(_ x: UnsafePointer<Float>, count: Int) -> (maxAbs: Float, nonFinite: Bool) {
        var m: Float = 0
        var bad: Int32 = 0
        flux_fixed_block_max(x, Int32(count), &m, &bad)
        return (m, bad != 0)
    }

    /// packed[7i ..< 7i+7] = Σ_s round-half-even(slots[s][offset + i] · scale) as a 7-byte little-endian integer
    /// (|sum| < 2^55), for i in 0..<count.
    public static func quantizeAndPack(
        _ slots: [UnsafePointer<Float>?], offset: Int, count: Int, scale: Double, into packed: UnsafeMutableRawPointer
    ) {
        slots.withUnsafeBufferPointer { pointers in
            flux_fixed_quantize_pack(pointers.baseAddress, Int32(slots.count), offset, Int32(count), scale,
                                     packed.assumingMemoryBound(to: UInt8.self))
        }
    }

    /// out[i] = Float(Double(v) · scale), v the sign-extended 7-byte integer at packed + 7i.
    public static func unpackAndConvert(_ packed: UnsafeRawPointer, count: Int, scale: Double, into out: UnsafeMutablePointer<Float>) {
        flux_fixed_unpack_convert(packed.assumingMemoryBound(to: UInt8.self), Int32(count), scale, out)
    }
}
