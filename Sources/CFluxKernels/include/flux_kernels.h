// Hot loops of the FluxViT compute core, in C with explicit SIMD.
//
// Every function works on a range of rows and is single-threaded: the Swift side splits rows
// across its fixed thread pool (style §E), so nothing here spawns threads or allocates.
// Each public function picks, once per process, an AVX2+FMA variant (compiled with
// __attribute__((target("avx2,fma")))) when the CPU has it, else a portable C fallback.
// `flux_kernels_set_portable(1)` forces the fallback on the calling thread (tests compare both
// paths); FLUX_PORTABLE_KERNELS=1 in the environment forces it for the whole process.
//
// Shapes use the spec's letters: rows of `cols` floats; a leading dimension `ld*` is the
// distance in floats between the starts of consecutive rows (>= cols).
#ifndef FLUX_KERNELS_H
#define FLUX_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// 1 when the AVX2+FMA variants are in use, 0 for the portable fallback.
int flux_kernels_uses_avx2(void);
/// Forces the portable fallback (1) or restores automatic dispatch (0) on the calling thread only.
void flux_kernels_set_portable(int portable);

// ---------------------------------------------------------------------------------------------
// Attention (spec §4.4): out = softmax(scale · q·kᵀ) · v for one head of one sample.
// ---------------------------------------------------------------------------------------------

/// Floats of scratch that `flux_attention_forward` needs for `n_keys` keys of `head_dim`.
size_t flux_attention_scratch_floats(int n_keys, int head_dim);

/// Fused attention for `n_queries` query rows against all `n_keys` keys of one head: scores,
/// the numerically stable softmax and p·v in cache-sized tiles (flash-attention style, online
/// softmax), never materialising the n_queries × n_keys score matrix.
///   q: row i at q + i*ldq (head_dim floats); k: row j at k + j*ldk; v: row j at v + j*ldv.
///   out: row i at out + i*ldo (head_dim floats), overwritten.
///   lse: if not NULL, lse[i] = log(sum_j exp(scale·q_i·k_j)) (natural log, the max included),
///        kept for the backward pass.
///   scratch: at least flux_attention_scratch_floats(n_keys, head_dim) floats, 64-byte aligned.
void flux_attention_forward(int n_queries, int n_keys, int head_dim,
                            const float *q, int ldq, const float *k, int ldk,
                            const float *v, int ldv, float scale,
                            float *out, int ldo, float *lse, float *scratch);

// ---------------------------------------------------------------------------------------------
// Norms (spec §4): computed in fp32, statistics accumulated in fp32.
// ---------------------------------------------------------------------------------------------

/// RMSNorm per row: y = x / sqrt(mean(x²) + eps) ⊙ w. In place allowed (y == x, same ld).
/// rstd: if not NULL, rstd[r] = 1 / sqrt(mean(x²) + eps).
void flux_rmsnorm_forward(int rows, int cols, const float *x, int ldx, const float *w, float eps,
                          float *y, int ldy, float *rstd);

/// LayerNorm per row: y = (x − mean) / sqrt(var + eps) ⊙ w + b (biased variance).
/// In place allowed. mean, rstd: if not NULL, the per-row statistics.
void flux_layernorm_forward(int rows, int cols, const float *x, int ldx, const float *w,
                            const float *b, float eps, float *y, int ldy, float *mean, float *rstd);

// ---------------------------------------------------------------------------------------------
// Elementwise, fused.
// ---------------------------------------------------------------------------------------------

/// GELU kinds: the exact erf form and PyTorch's tanh approximation
/// 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
enum { FLUX_GELU_ERF = 0, FLUX_GELU_TANH = 1 };

/// x[r][c] = GELU(x[r][c] + bias[c]) in place (x has ld = cols). pre: if not NULL, receives
/// x + bias before the activation (rows × cols, ld = cols), for the backward pass.
void flux_bias_gelu_forward(int rows, int cols, float *x, const float *bias, int kind, float *pre);

/// Residual with LayerScale: x[r][c] += gamma[c] · (y[r][c] + bias[c]). bias may be NULL.
void flux_residual_scale_add(int rows, int cols, float *x, int ldx, const float *y, int ldy,
                             const float *bias, const float *gamma);

/// Per-channel scale and shift: y[r][c] = x[r][c]·w[c] + b[c], or y += that when accumulate != 0.
void flux_scale_shift(int rows, int cols, const float *x, int ldx, const float *w, const float *b,
                      float *y, int ldy, int accumulate);

/// Fixed-point passes of the exact gradient reduction (issue 12). max_abs: the largest |x| of x[0..<n] among finite
/// values; nonfinite: 1 when some x is NaN or infinite.
void flux_fixed_block_max(const float *x, int n, float *max_abs, int *nonfinite);
/// The sum over the `nslots` buffers of round_half_even(slots[s][offset + i] · scale) (scale a power of two), written
/// as a 7-byte little-endian two's-complement integer at packed + 7i (the sum must lie in −2^55 ..< 2^55). One pass:
/// no int64 buffer.
void flux_fixed_quantize_pack(const float *const *slots, int nslots, long offset, int n, double scale, uint8_t *packed);
/// out[i] = (float)((double)v · scale), v the sign-extended 7-byte integer at packed + 7i.
void flux_fixed_unpack_convert(const uint8_t *packed, int n, double scale, float *out);

#ifdef __cplusplus
}
#endif

#endif
