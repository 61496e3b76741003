// Backward pass of the fused attention of flux_kernels.h (spec §4.4), for training.
#ifndef FLUX_ATTENTION_BACKWARD_H
#define FLUX_ATTENTION_BACKWARD_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Floats of scratch that `flux_attention_backward` needs.
size_t flux_attention_backward_scratch_floats(int n_keys, int head_dim);

/// Backward of out = softmax(scale·q·kᵀ)·v for query rows 0 ..< n_queries of one head against all
/// n_keys keys, given the forward's `out` and `lse` (log-sum-exp of the scaled scores per query row)
/// and the gradient `dout`. Recomputes the probabilities tile by tile (flash-attention backward);
/// nothing n_queries × n_keys is stored.
///   dq: rows 0 ..< n_queries, OVERWRITTEN.
///   dk, dv: rows 0 ..< n_keys, ACCUMULATED (+=): the caller splits query rows across threads,
///   gives each thread private dk/dv buffers and sums them.
/// Leading dimensions as in the forward; scratch 64-byte aligned, at least
/// flux_attention_backward_scratch_floats(n_keys, head_dim) floats. Single-threaded, allocates nothing.
void flux_attention_backward(int n_queries, int n_keys, int head_dim,
                             const float *q, int ldq, const float *k, int ldk, const float *v, int ldv,
                             const float *out, int ldo, const float *lse, const float *dout, int lddo,
                             float scale, float *dq, int lddq, float *dk, int lddk, float *dv, int lddv,
                             float *scratch);

#ifdef __cplusplus
}
#endif

#endif
