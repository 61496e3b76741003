// Fused elementwise kernels (flux_kernels.h): bias + GELU, residual + LayerScale, scale/shift.
// GELU uses the cancellation-free forms x·Φ(x) and x·σ(2u); see flux_vmath.h.
#include "dispatch.h"
#include "flux_kernels.h"
#include "flux_vmath.h"

// ---------------------------------------------------------------------------------------------
// Portable.
// ---------------------------------------------------------------------------------------------

static void bias_gelu_portable(int rows, int cols, float *x, const float *bias, int kind,
                               float *pre) {
    for (int r = 0; r < rows; r++) {
        float *xr = x + (size_t)r * cols;
        float *pr = pre ? pre + (size_t)r * cols : NULL;
        if (pr && bias)
            for (int c = 0; c < cols; c++) pr[c] = xr[c] + bias[c];
        else if (pr)
            for (int c = 0; c < cols; c++) pr[c] = xr[c];
        if (kind == FLUX_GELU_TANH) {
            if (bias)
                for (int c = 0; c < cols; c++) xr[c] = fx_gelu_tanh(xr[c] + bias[c]);
            else
                for (int c = 0; c < cols; c++) xr[c] = fx_gelu_tanh(xr[c]);
        } else {
            if (bias)
                for (int c = 0; c < cols; c++) xr[c] = fx_gelu_erf(xr[c] + bias[c]);
            else
                for (int c = 0; c < cols; c++) xr[c] = fx_gelu_erf(xr[c]);
        }
    }
}

static void residual_portable(int rows, int cols, float *x, int ldx, const float *y, int ldy,
                              const float *bias, const float *gamma) {
    for (int r = 0; r < rows; r++) {
        float *xr = x + (size_t)r * ldx;
        const float *yr = y + (size_t)r * ldy;
        if (bias && gamma)
            for (int c = 0; c < cols; c++) xr[c] += gamma[c] * (yr[c] + bias[c]);
        else if (gamma)
            for (int c = 0; c < cols; c++) xr[c] += gamma[c] * yr[c];
        else if (bias)
            for (int c = 0; c < cols; c++) xr[c] += yr[c] + bias[c];
        else
            for (int c = 0; c < cols; c++) xr[c] += yr[c];
    }
}

static void scale_shift_portable(int rows, int cols, const float *x, int ldx, const float *w,
                                 const float *b, float *y, int ldy, int accumulate) {
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * ldx;
        float *yr = y + (size_t)r * ldy;
        if (accumulate)
            for (int c = 0; c < cols; c++) yr[c] += xr[c] * (w ? w[c] : 1.0f) + (b ? b[c] : 0.0f);
        else
            for (int c = 0; c < cols; c++) yr[c] = xr[c] * (w ? w[c] : 1.0f) + (b ? b[c] : 0.0f);
    }
}

// ---------------------------------------------------------------------------------------------
// AVX2 + FMA.
// ---------------------------------------------------------------------------------------------
#if FLUX_HAVE_X86

// One GELU body per kind. One vector per iteration: the GELU needs ~15 constants, and two
// vectors in flight make clang rematerialise them with broadcasts that compete for FP pipes.
#define FX_DEFINE_BIAS_GELU_AVX2(NAME, GELU8)                                                   \
    FLUX_TARGET_AVX2                                                                            \
    static void NAME(int rows, int cols, float *x, const float *bias, float *pre) {             \
        const __m256i tmask = fx8_tail_mask(cols & 7);                                          \
        const int c8 = cols & ~7;                                                               \
        for (int r = 0; r < rows; r++) {                                                        \
            float *xr = x + (size_t)r * cols;                                                   \
            float *pr = pre ? pre + (size_t)r * cols : NULL;                                    \
            int c = 0;                                                                          \
            for (; c < c8; c += 8) {                                                            \
                __m256 v = _mm256_loadu_ps(xr + c);                                             \
                if (bias) v = _mm256_add_ps(v, _mm256_loadu_ps(bias + c));                      \
                if (pr) _mm256_storeu_ps(pr + c, v);                                            \
                _mm256_storeu_ps(xr + c, GELU8(v));                                             \
            }                                                                                   \
            if (c < cols) {                                                                     \
                __m256 v = _mm256_maskload_ps(xr + c, tmask);                                   \
                if (bias) v = _mm256_add_ps(v, _mm256_maskload_ps(bias + c, tmask));            \
                if (pr) _mm256_maskstore_ps(pr + c, tmask, v);                                  \
                _mm256_maskstore_ps(xr + c, tmask, GELU8(v));                                   \
            }                                                                                   \
        }                                                                                       \
    }

FX_DEFINE_BIAS_GELU_AVX2(bias_gelu_erf_avx2, fx8_gelu_erf)
FX_DEFINE_BIAS_GELU_AVX2(bias_gelu_tanh_avx2, fx8_gelu_tanh)

FLUX_TARGET_AVX2
static void residual_avx2(int rows, int cols, float *x, int ldx, const float *y, int ldy,
                          const float *bias, const float *gamma) {
    const __m256i tmask = fx8_tail_mask(cols & 7);
    const int c8 = cols & ~7;
    const __m256 one = _mm256_set1_ps(1.0f);
    for (int r = 0; r < rows; r++) {
        float *xr = x + (size_t)r * ldx;
        const float *yr = y + (size_t)r * ldy;
        int c = 0;
        for (; c + 16 <= cols; c += 16) {
            __m256 y0 = _mm256_loadu_ps(yr + c), y1 = _mm256_loadu_ps(yr + c + 8);
            if (bias) {
                y0 = _mm256_add_ps(y0, _mm256_loadu_ps(bias + c));
                y1 = _mm256_add_ps(y1, _mm256_loadu_ps(bias + c + 8));
            }
            __m256 g0 = gamma ? _mm256_loadu_ps(gamma + c) : one;
            __m256 g1 = gamma ? _mm256_loadu_ps(gamma + c + 8) : one;
            _mm256_storeu_ps(xr + c, _mm256_fmadd_ps(g0, y0, _mm256_loadu_ps(xr + c)));
            _mm256_storeu_ps(xr + c + 8, _mm256_fmadd_ps(g1, y1, _mm256_loadu_ps(xr + c + 8)));
        }
        for (; c < c8; c += 8) {
            __m256 y0 = _mm256_loadu_ps(yr + c);
            if (bias) y0 = _mm256_add_ps(y0, _mm256_loadu_ps(bias + c));
            __m256 g0 = gamma ? _mm256_loadu_ps(gamma + c) : one;
            _mm256_storeu_ps(xr + c, _mm256_fmadd_ps(g0, y0, _mm256_loadu_ps(xr + c)));
        }
        if (c < cols) {
            __m256 y0 = _mm256_maskload_ps(yr + c, tmask);
            if (bias) y0 = _mm256_add_ps(y0, _mm256_maskload_ps(bias + c, tmask));
            __m256 g0 = gamma ? _mm256_maskload_ps(gamma + c, tmask) : one;
            _mm256_maskstore_ps(xr + c, tmask,
                                _mm256_fmadd_ps(g0, y0, _mm256_maskload_ps(xr + c, tmask)));
        }
    }
}

FLUX_TARGET_AVX2
static void scale_shift_avx2(int rows, int cols, const float *x, int ldx, const float *w,
                             const float *b, float *y, int ldy, int accumulate) {
    const __m256i tmask = fx8_tail_mask(cols & 7);
    const int c8 = cols & ~7;
    const __m256 one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * ldx;
        float *yr = y + (size_t)r * ldy;
        int c = 0;
        for (; c < c8; c += 8) {
            __m256 wv = w ? _mm256_loadu_ps(w + c) : one;
            __m256 bv = b ? _mm256_loadu_ps(b + c) : zero;
            __m256 v = _mm256_fmadd_ps(_mm256_loadu_ps(xr + c), wv, bv);
            if (accumulate) v = _mm256_add_ps(_mm256_loadu_ps(yr + c), v);
            _mm256_storeu_ps(yr + c, v);
        }
        if (c < cols) {
            __m256 wv = w ? _mm256_maskload_ps(w + c, tmask) : one;
            __m256 bv = b ? _mm256_maskload_ps(b + c, tmask) : zero;
            __m256 v = _mm256_fmadd_ps(_mm256_maskload_ps(xr + c, tmask), wv, bv);
            if (accumulate) v = _mm256_add_ps(_mm256_maskload_ps(yr + c, tmask), v);
            _mm256_maskstore_ps(yr + c, tmask, v);
        }
    }
}

#endif  // FLUX_HAVE_X86

// ---------------------------------------------------------------------------------------------
// Public entry points.
// ---------------------------------------------------------------------------------------------

void flux_bias_gelu_forward(int rows, int cols, float *x, const float *bias, int kind, float *pre) {
    if (rows <= 0 || cols <= 0) return;
#if FLUX_HAVE_X86
    if (flux_dispatch_avx2()) {
        if (kind == FLUX_GELU_TANH)
            bias_gelu_tanh_avx2(rows, cols, x, bias, pre);
        else
            bias_gelu_erf_avx2(rows, cols, x, bias, pre);
        return;
    }
#endif
    bias_gelu_portable(rows, cols, x, bias, kind, pre);
}

void flux_residual_scale_add(int rows, int cols, float *x, int ldx, const float *y, int ldy,
                             const float *bias, const float *gamma) {
    if (rows <= 0 || cols <= 0) return;
#if FLUX_HAVE_X86
    if (flux_dispatch_avx2()) {
        residual_avx2(rows, cols, x, ldx, y, ldy, bias, gamma);
        return;
    }
#endif
    residual_portable(rows, cols, x, ldx, y, ldy, bias, gamma);
}

void flux_scale_shift(int rows, int cols, const float *x, int ldx, const float *w, const float *b,
                      float *y, int ldy, int accumulate) {
    if (rows <= 0 || cols <= 0) return;
#if FLUX_HAVE_X86
    if (flux_dispatch_avx2()) {
        scale_shift_avx2(rows, cols, x, ldx, w, b, y, ldy, accumulate);
        return;
    }
#endif
    scale_shift_portable(rows, cols, x, ldx, w, b, y, ldy, accumulate);
}
