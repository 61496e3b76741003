// RMSNorm and LayerNorm forward (flux_kernels.h), one row at a time: a row of C = 384 floats is
// 1.5 KiB, so the statistics pass and the output pass both read it from L1 and the kernel costs
// one read of x and one write of y from memory.
//
// Statistics are accumulated in fp32 with 32 (AVX2) or 8 (portable) partial sums; only the final
// per-row scalars (mean, 1/sqrt) are formed in double, which is free.
//
// LayerNorm centring is exact even for nearly constant rows (1000 + 1e-3 noise): pass 1 takes a
// pivot m1 = fp32 mean; pass 2 accumulates d = x − m1 (exact by Sterbenz when x ≈ m1) as Σd and
// Σd²; the residual c = Σd/n corrects the pivot (Chan–Golub–LeVeque corrected two-pass), so the
// mean is m1 + c to far below one fp32 ulp of m1, var = Σd²/n − c², and the output uses
// (x − m1) − c. A plain fp32 mean would be off by up to ½ulp(1000) = 3e−5, i.e. ~5% of the
// centred values in that example.
#include <math.h>

#include "dispatch.h"
#include "flux_kernels.h"
#include "flux_vmath.h"

static inline float rms_rstd(double sumsq, int cols, float eps) {
    return (float)(1.0 / sqrt(sumsq / (double)cols + (double)eps));
}

static inline float ln_rstd(double s1, double s2, int cols, float eps, double *c_out) {
    double c = s1 / (double)cols;
    double var = s2 / (double)cols - c * c;
    if (!(var > 0.0)) var = var < 0.0 ? 0.0 : var;  // clamp rounding below 0, keep NaN
    *c_out = c;
    return (float)(1.0 / sqrt(var + (double)eps));
}

// ---------------------------------------------------------------------------------------------
// Portable.
// ---------------------------------------------------------------------------------------------

static void rmsnorm_portable(int rows, int cols, const float *x, int ldx, const float *w, float eps,
                             float *y, int ldy, float *rstd) {
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * ldx;
        float *yr = y + (size_t)r * ldy;
        float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        int c = 0;
        for (; c + 8 <= cols; c += 8)
            for (int j = 0; j < 8; j++) acc[j] += xr[c + j] * xr[c + j];
        for (int j = 0; c < cols; c++, j++) acc[j] += xr[c] * xr[c];
        float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
        float rs = rms_rstd(s, cols, eps);
        if (rstd) rstd[r] = rs;
        if (yr == xr)  // in place: spelled out so the loop still vectorises (no overlap check)
            for (c = 0; c < cols; c++) yr[c] = (yr[c] * rs) * w[c];
        else
            for (c = 0; c < cols; c++) yr[c] = (xr[c] * rs) * w[c];
    }
}

static void layernorm_portable(int rows, int cols, const float *x, int ldx, const float *w,
                               const float *b, float eps, float *y, int ldy, float *mean,
                               float *rstd) {
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * ldx;
        float *yr = y + (size_t)r * ldy;
        float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        int c = 0;
        for (; c + 8 <= cols; c += 8)
            for (int j = 0; j < 8; j++) acc[j] += xr[c + j];
        for (int j = 0; c < cols; c++, j++) acc[j] += xr[c];
        float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
        float m1 = (float)((double)s / (double)cols);

        float a1[8] = {0, 0, 0, 0, 0, 0, 0, 0}, a2[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        c = 0;
        for (; c + 8 <= cols; c += 8)
            for (int j = 0; j < 8; j++) {
                float d = xr[c + j] - m1;
                a1[j] += d;
                a2[j] += d * d;
            }
        for (int j = 0; c < cols; c++, j++) {
            float d = xr[c] - m1;
            a1[j] += d;
            a2[j] += d * d;
        }
        float s1 = ((a1[0] + a1[4]) + (a1[1] + a1[5])) + ((a1[2] + a1[6]) + (a1[3] + a1[7]));
        float s2 = ((a2[0] + a2[4]) + (a2[1] + a2[5])) + ((a2[2] + a2[6]) + (a2[3] + a2[7]));
        double cd;
        float rs = ln_rstd(s1, s2, cols, eps, &cd);
        float corr = (float)cd;
        if (mean) mean[r] = (float)((double)m1 + cd);
        if (rstd) rstd[r] = rs;
        if (yr == xr)  // in place: spelled out so the loop still vectorises (no overlap check)
            for (c = 0; c < cols; c++) yr[c] = (((yr[c] - m1) - corr) * rs) * w[c] + b[c];
        else
            for (c = 0; c < cols; c++) yr[c] = (((xr[c] - m1) - corr) * rs) * w[c] + b[c];
    }
}

// ---------------------------------------------------------------------------------------------
// AVX2 + FMA.
// ---------------------------------------------------------------------------------------------
#if FLUX_HAVE_X86

FLUX_TARGET_AVX2
static void rmsnorm_avx2(int rows, int cols, const float *x, int ldx, const float *w, float eps,
                         float *y, int ldy, float *rstd) {
    const __m256i tmask = fx8_tail_mask(cols & 7);
    const int c8 = cols & ~7;
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * ldx;
        float *yr = y + (size_t)r * ldy;
        __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
        __m256 s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
        int c = 0;
        for (; c + 32 <= cols; c += 32) {
            __m256 v0 = _mm256_loadu_ps(xr + c), v1 = _mm256_loadu_ps(xr + c + 8);
            __m256 v2 = _mm256_loadu_ps(xr + c + 16), v3 = _mm256_loadu_ps(xr + c + 24);
            s0 = _mm256_fmadd_ps(v0, v0, s0);
            s1 = _mm256_fmadd_ps(v1, v1, s1);
            s2 = _mm256_fmadd_ps(v2, v2, s2);
            s3 = _mm256_fmadd_ps(v3, v3, s3);
        }
        for (; c < c8; c += 8) {
            __m256 v = _mm256_loadu_ps(xr + c);
            s0 = _mm256_fmadd_ps(v, v, s0);
        }
        if (c < cols) {
            __m256 v = _mm256_maskload_ps(xr + c, tmask);
            s1 = _mm256_fmadd_ps(v, v, s1);
        }
        float s = fx8_hsum(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
        float rsf = rms_rstd(s, cols, eps);
        if (rstd) rstd[r] = rsf;
        const __m256 rs = _mm256_set1_ps(rsf);
        c = 0;
        for (; c + 16 <= cols; c += 16) {
            __m256 v0 = _mm256_mul_ps(_mm256_loadu_ps(xr + c), rs);
            __m256 v1 = _mm256_mul_ps(_mm256_loadu_ps(xr + c + 8), rs);
            _mm256_storeu_ps(yr + c, _mm256_mul_ps(v0, _mm256_loadu_ps(w + c)));
            _mm256_storeu_ps(yr + c + 8, _mm256_mul_ps(v1, _mm256_loadu_ps(w + c + 8)));
        }
        for (; c < c8; c += 8) {
            __m256 v = _mm256_mul_ps(_mm256_loadu_ps(xr + c), rs);
            _mm256_storeu_ps(yr + c, _mm256_mul_ps(v, _mm256_loadu_ps(w + c)));
        }
        if (c < cols) {
            __m256 v = _mm256_mul_ps(_mm256_maskload_ps(xr + c, tmask), rs);
            _mm256_maskstore_ps(yr + c, tmask, _mm256_mul_ps(v, _mm256_maskload_ps(w + c, tmask)));
        }
    }
}

FLUX_TARGET_AVX2
static void layernorm_avx2(int rows, int cols, const float *x, int ldx, const float *w,
                           const float *b, float eps, float *y, int ldy, float *mean, float *rstd) {
    const __m256i tmask = fx8_tail_mask(cols & 7);
    const __m256 tmaskf = _mm256_castsi256_ps(tmask);
    const int c8 = cols & ~7;
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * ldx;
        float *yr = y + (size_t)r * ldy;

        // Pass 1: pivot m1 = fp32 mean.
        __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
        __m256 s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
        int c = 0;
        for (; c + 32 <= cols; c += 32) {
            s0 = _mm256_add_ps(s0, _mm256_loadu_ps(xr + c));
            s1 = _mm256_add_ps(s1, _mm256_loadu_ps(xr + c + 8));
            s2 = _mm256_add_ps(s2, _mm256_loadu_ps(xr + c + 16));
            s3 = _mm256_add_ps(s3, _mm256_loadu_ps(xr + c + 24));
        }
        for (; c < c8; c += 8) s0 = _mm256_add_ps(s0, _mm256_loadu_ps(xr + c));
        if (c < cols) s1 = _mm256_add_ps(s1, _mm256_maskload_ps(xr + c, tmask));
        float sum = fx8_hsum(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
        const float m1f = (float)((double)sum / (double)cols);
        const __m256 m1 = _mm256_set1_ps(m1f);

        // Pass 2: Σd and Σd², d = x − m1.
        __m256 d0 = _mm256_setzero_ps(), d1 = _mm256_setzero_ps();
        __m256 q0 = _mm256_setzero_ps(), q1 = _mm256_setzero_ps();
        c = 0;
        for (; c + 16 <= cols; c += 16) {
            __m256 a = _mm256_sub_ps(_mm256_loadu_ps(xr + c), m1);
            __m256 bb = _mm256_sub_ps(_mm256_loadu_ps(xr + c + 8), m1);
            d0 = _mm256_add_ps(d0, a);
            d1 = _mm256_add_ps(d1, bb);
            q0 = _mm256_fmadd_ps(a, a, q0);
            q1 = _mm256_fmadd_ps(bb, bb, q1);
        }
        for (; c < c8; c += 8) {
            __m256 a = _mm256_sub_ps(_mm256_loadu_ps(xr + c), m1);
            d0 = _mm256_add_ps(d0, a);
            q0 = _mm256_fmadd_ps(a, a, q0);
        }
        if (c < cols) {
            __m256 a = _mm256_and_ps(_mm256_sub_ps(_mm256_maskload_ps(xr + c, tmask), m1), tmaskf);
            d1 = _mm256_add_ps(d1, a);
            q1 = _mm256_fmadd_ps(a, a, q1);
        }
        float sd = fx8_hsum(_mm256_add_ps(d0, d1));
        float sq = fx8_hsum(_mm256_add_ps(q0, q1));
        double cd;
        float rsf = ln_rstd(sd, sq, cols, eps, &cd);
        if (mean) mean[r] = (float)((double)m1f + cd);
        if (rstd) rstd[r] = rsf;
        const __m256 corr = _mm256_set1_ps((float)cd);
        const __m256 rs = _mm256_set1_ps(rsf);

        // Pass 3: y = ((x − m1) − c)·rstd·w + b.
        c = 0;
        for (; c + 16 <= cols; c += 16) {
            __m256 a = _mm256_sub_ps(_mm256_sub_ps(_mm256_loadu_ps(xr + c), m1), corr);
            __m256 bb = _mm256_sub_ps(_mm256_sub_ps(_mm256_loadu_ps(xr + c + 8), m1), corr);
            a = _mm256_mul_ps(a, rs);
            bb = _mm256_mul_ps(bb, rs);
            _mm256_storeu_ps(yr + c, _mm256_fmadd_ps(a, _mm256_loadu_ps(w + c), _mm256_loadu_ps(b + c)));
            _mm256_storeu_ps(yr + c + 8, _mm256_fmadd_ps(bb, _mm256_loadu_ps(w + c + 8),
                                                         _mm256_loadu_ps(b + c + 8)));
        }
        for (; c < c8; c += 8) {
            __m256 a = _mm256_sub_ps(_mm256_sub_ps(_mm256_loadu_ps(xr + c), m1), corr);
            a = _mm256_mul_ps(a, rs);
            _mm256_storeu_ps(yr + c, _mm256_fmadd_ps(a, _mm256_loadu_ps(w + c), _mm256_loadu_ps(b + c)));
        }
        if (c < cols) {
            __m256 a = _mm256_sub_ps(_mm256_sub_ps(_mm256_maskload_ps(xr + c, tmask), m1), corr);
            a = _mm256_mul_ps(a, rs);
            __m256 v = _mm256_fmadd_ps(a, _mm256_maskload_ps(w + c, tmask), _mm256_maskload_ps(b + c, tmask));
            _mm256_maskstore_ps(yr + c, tmask, v);
        }
    }
}

#endif  // FLUX_HAVE_X86

// ---------------------------------------------------------------------------------------------
// Public entry points.
// ---------------------------------------------------------------------------------------------

void flux_rmsnorm_forward(int rows, int cols, const float *x, int ldx, const float *w, float eps,
                          float *y, int ldy, float *rstd) {
    if (rows <= 0 || cols <= 0) return;
#if FLUX_HAVE_X86
    if (flux_dispatch_avx2()) {
        rmsnorm_avx2(rows, cols, x, ldx, w, eps, y, ldy, rstd);
        return;
    }
#endif
    rmsnorm_portable(rows, cols, x, ldx, w, eps, y, ldy, rstd);
}

void flux_layernorm_forward(int rows, int cols, const float *x, int ldx, const float *w,
                            const float *b, float eps, float *y, int ldy, float *mean, float *rstd) {
    if (rows <= 0 || cols <= 0) return;
#if FLUX_HAVE_X86
    if (flux_dispatch_avx2()) {
        layernorm_avx2(rows, cols, x, ldx, w, b, eps, y, ldy, mean, rstd);
        return;
    }
#endif
    layernorm_portable(rows, cols, x, ldx, w, b, eps, y, ldy, mean, rstd);
}
