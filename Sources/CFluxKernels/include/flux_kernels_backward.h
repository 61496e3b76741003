// Backward passes of the norm and GELU kernels in flux_kernels.h. Same conventions: rows of
// `cols` floats, leading dimensions `ld*` >= cols, single-threaded, AVX2+FMA or portable chosen
// at run time (flux_kernels_set_portable applies).
//
// Parameter gradients (dw, db, dbias) are ACCUMULATED (+=) over the rows of the call; when the
// Swift side splits rows across threads each thread needs its own buffers, summed afterwards.
// Any of dw / db / dbias may be NULL when not needed.
#ifndef FLUX_KERNELS_BACKWARD_H
#define FLUX_KERNELS_BACKWARD_H

#ifdef __cplusplus
extern "C" {
#endif

/// RMSNorm backward for y = x·rstd ⊙ w with rstd from flux_rmsnorm_forward:
///   dx[r][c] += rstd·(g[c] − x̂[c]·mean(g ⊙ x̂)),  g = dy ⊙ w,  x̂ = x·rstd
///   dw[c]    += Σ_r dy[r][c]·x̂[r][c]
/// dx may be NULL (only dw wanted). dx must not overlap x; dx == dy (same ld) is allowed and
/// gives dy + gradient.
void flux_rmsnorm_backward(int rows, int cols, const float *x, int ldx, const float *w,
                           const float *rstd, const float *dy, int lddy, float *dx, int lddx,
                           float *dw);

/// LayerNorm backward for y = (x − mean)·rstd ⊙ w + b with mean, rstd from
/// flux_layernorm_forward:
///   dx[r][c] += rstd·(g[c] − mean(g) − x̂[c]·mean(g ⊙ x̂)),  g = dy ⊙ w,  x̂ = (x − mean)·rstd
///   dw[c]    += Σ_r dy·x̂,   db[c] += Σ_r dy
/// The row is re-centred exactly around the given (rounded fp32) mean, so nearly constant rows
/// keep full precision. dx may be NULL; dx == dy (same ld) is allowed, other overlaps are not.
void flux_layernorm_backward(int rows, int cols, const float *x, int ldx, const float *w,
                             const float *mean, const float *rstd, const float *dy, int lddy,
                             float *dx, int lddx, float *dw, float *db);

/// Backward of flux_bias_gelu_forward: pre = x + bias (its `pre` output), all rows × cols with
/// ld = cols.
///   dx[r][c] = dy[r][c]·GELU'(pre[r][c])   (overwritten; dx == dy allowed)
///   dbias[c] += Σ_r dx[r][c]
void flux_bias_gelu_backward(int rows, int cols, const float *pre, const float *dy, int kind,
                             float *dx, float *dbias);

#ifdef __cplusplus
}
#endif

#endif
