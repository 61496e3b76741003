// Backward passes of RMSNorm, LayerNorm and bias+GELU (flux_kernels_backward.h). Two passes per
// norm row (the reductions, then the element update), both from L1 for C = 384.
#include "dispatch.h"
#include "flux_kernels.h"
#include "flux_kernels_backward.h"
#include "flux_vmath.h"

// ---------------------------------------------------------------------------------------------
// Portable.
// ---------------------------------------------------------------------------------------------

static inline float sum8(const float *a) {
    return ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]));
}

static void rmsnorm_bwd_portable(int rows, int cols, const float *x, int ldx, const float *w,
                                 const float *rstd, const float *dy, int lddy, float *dx, int lddx,
                                 float *dw) {
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * ldx;
        const float *dyr = dy + (size_t)r * lddy;
        const float rs = rstd[r];
        float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        int c = 0;
        for (; c + 8 <= cols; c += 8)
            for (int j = 0; j < 8; j++) acc[j] += (dyr[c + j] * w[c + j]) * xr[c + j];
        for (int j = 0; c < cols; c++, j++) acc[j] += (dyr[c] * w[c]) * xr[c];
        // dx = rs·g − x·k with k = rs³·Σ(g·x)/n.
        const float k = (float)((double)rs * rs * rs * (double)sum8(acc) / (double)cols);
        if (dw)  // before dx: dx may be dy
            for (c = 0; c < cols; c++) dw[c] += dyr[c] * (xr[c] * rs);
        if (dx) {
            float *dxr = dx + (size_t)r * lddx;
            for (c = 0; c < cols; c++) dxr[c] += rs * (dyr[c] * w[c]) - xr[c] * k;
        }
    }
}

static void layernorm_bwd_portable(int rows, int cols, const float *x, int ldx, const float *w,
                                   const float *mean, const float *rstd, const float *dy, int lddy,
                                   float *dx, int lddx, float *dw, float *db) {
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * ldx;
        const float *dyr = dy + (size_t)r * lddy;
        const float m = mean[r], rs = rstd[r];
        float ad[8] = {0}, ag[8] = {0}, agd[8] = {0};
        int c = 0;
        for (; c + 8 <= cols; c += 8)
            for (int j = 0; j < 8; j++) {
                float d = xr[c + j] - m, g = dyr[c + j] * w[c + j];
                ad[j] += d;
                ag[j] += g;
                agd[j] += g * d;
            }
        for (int j = 0; c < cols; c++, j++) {
            float d = xr[c] - m, g = dyr[c] * w[c];
            ad[j] += d;
            ag[j] += g;
            agd[j] += g * d;
        }
        const double n = (double)cols;
        const double sd = sum8(ad), sg = sum8(ag), sgd = sum8(agd);
        const float corr = (float)(sd / n);                           // exact re-centring
        const float mg = (float)(sg / n);                             // mean(g)
        const float mgx = (float)((double)rs * (sgd - (sd / n) * sg) / n);  // mean(g·x̂)
        // dw, db before dx: dx may be dy. Separate loops so each vectorises.
        if (dw)
            for (c = 0; c < cols; c++) dw[c] += dyr[c] * (((xr[c] - m) - corr) * rs);
        if (db)
            for (c = 0; c < cols; c++) db[c] += dyr[c];
        if (dx) {
            float *dxr = dx + (size_t)r * lddx;
            for (c = 0; c < cols; c++) {
                float xh = ((xr[c] - m) - corr) * rs;
                dxr[c] += rs * ((dyr[c] * w[c] - mg) - xh * mgx);
            }
        }
    }
}

static void bias_gelu_bwd_portable(int rows, int cols, const float *pre, const float *dy, int kind,
                                   float *dx, float *dbias) {
    for (int r = 0; r < rows; r++) {
        const float *pr = pre + (size_t)r * cols;
        const float *dyr = dy + (size_t)r * cols;
        float *dxr = dx + (size_t)r * cols;
        if (kind == FLUX_GELU_TANH)
            for (int c = 0; c < cols; c++) dxr[c] = dyr[c] * fx_gelu_tanh_grad(pr[c]);
        else
            for (int c = 0; c < cols; c++) dxr[c] = dyr[c] * fx_gelu_erf_grad(pr[c]);
        if (dbias)
            for (int c = 0; c < cols; c++) dbias[c] += dxr[c];
    }
}

// ---------------------------------------------------------------------------------------------
// AVX2 + FMA.
// ---------------------------------------------------------------------------------------------
#if FLUX_HAVE_X86

FLUX_TARGET_AVX2
static void rmsnorm_bwd_avx2(int rows, int cols, const float *x, int ldx, const float *w,
                             const float *rstd, const float *dy, int lddy, float *dx, int lddx,
                             float *dw) {
    const __m256i tmask = fx8_tail_mask(cols & 7);
    const int c8 = cols & ~7;
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * ldx;
        const float *dyr = dy + (size_t)r * lddy;
        const float rsf = rstd[r];
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
        int c = 0;
        for (; c + 16 <= cols; c += 16) {
            __m256 g0 = _mm256_mul_ps(_mm256_loadu_ps(dyr + c), _mm256_loadu_ps(w + c));
            __m256 g1 = _mm256_mul_ps(_mm256_loadu_ps(dyr + c + 8), _mm256_loadu_ps(w + c + 8));
            a0 = _mm256_fmadd_ps(g0, _mm256_loadu_ps(xr + c), a0);
            a1 = _mm256_fmadd_ps(g1, _mm256_loadu_ps(xr + c + 8), a1);
        }
        for (; c < c8; c += 8) {
            __m256 g0 = _mm256_mul_ps(_mm256_loadu_ps(dyr + c), _mm256_loadu_ps(w + c));
            a0 = _mm256_fmadd_ps(g0, _mm256_loadu_ps(xr + c), a0);
        }
        if (c < cols) {
            __m256 g1 = _mm256_mul_ps(_mm256_maskload_ps(dyr + c, tmask), _mm256_maskload_ps(w + c, tmask));
            a1 = _mm256_fmadd_ps(g1, _mm256_maskload_ps(xr + c, tmask), a1);
        }
        const float s = fx8_hsum(_mm256_add_ps(a0, a1));
        const __m256 k = _mm256_set1_ps((float)((double)rsf * rsf * rsf * (double)s / (double)cols));
        const __m256 rs = _mm256_set1_ps(rsf);
        float *dxr = dx ? dx + (size_t)r * lddx : NULL;
        for (c = 0; c < c8; c += 8) {
            __m256 d = _mm256_loadu_ps(dyr + c), xv = _mm256_loadu_ps(xr + c);
            if (dxr) {
                __m256 g = _mm256_mul_ps(d, _mm256_loadu_ps(w + c));
                __m256 v = _mm256_fnmadd_ps(xv, k, _mm256_mul_ps(rs, g));
                _mm256_storeu_ps(dxr + c, _mm256_add_ps(_mm256_loadu_ps(dxr + c), v));
            }
            if (dw)
                _mm256_storeu_ps(dw + c, _mm256_fmadd_ps(d, _mm256_mul_ps(xv, rs), _mm256_loadu_ps(dw + c)));
        }
        if (c < cols) {
            __m256 d = _mm256_maskload_ps(dyr + c, tmask), xv = _mm256_maskload_ps(xr + c, tmask);
            if (dxr) {
                __m256 g = _mm256_mul_ps(d, _mm256_maskload_ps(w + c, tmask));
                __m256 v = _mm256_fnmadd_ps(xv, k, _mm256_mul_ps(rs, g));
                _mm256_maskstore_ps(dxr + c, tmask, _mm256_add_ps(_mm256_maskload_ps(dxr + c, tmask), v));
            }
            if (dw)
                _mm256_maskstore_ps(dw + c, tmask, _mm256_fmadd_ps(d, _mm256_mul_ps(xv, rs),
                                                                   _mm256_maskload_ps(dw + c, tmask)));
        }
    }
}

FLUX_TARGET_AVX2
static void layernorm_bwd_avx2(int rows, int cols, const float *x, int ldx, const float *w,
                               const float *mean, const float *rstd, const float *dy, int lddy,
                               float *dx, int lddx, float *dw, float *db) {
    const __m256i tmask = fx8_tail_mask(cols & 7);
    const __m256 tmaskf = _mm256_castsi256_ps(tmask);
    const int c8 = cols & ~7;
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * ldx;
        const float *dyr = dy + (size_t)r * lddy;
        const __m256 m = _mm256_set1_ps(mean[r]);
        const float rsf = rstd[r];
        __m256 ad = _mm256_setzero_ps(), ag = _mm256_setzero_ps(), agd = _mm256_setzero_ps();
        __m256 bd = _mm256_setzero_ps(), bg = _mm256_setzero_ps(), bgd = _mm256_setzero_ps();
        int c = 0;
        for (; c + 16 <= cols; c += 16) {
            __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(xr + c), m);
            __m256 d1 = _mm256_sub_ps(_mm256_loadu_ps(xr + c + 8), m);
            __m256 g0 = _mm256_mul_ps(_mm256_loadu_ps(dyr + c), _mm256_loadu_ps(w + c));
            __m256 g1 = _mm256_mul_ps(_mm256_loadu_ps(dyr + c + 8), _mm256_loadu_ps(w + c + 8));
            ad = _mm256_add_ps(ad, d0);
            bd = _mm256_add_ps(bd, d1);
            ag = _mm256_add_ps(ag, g0);
            bg = _mm256_add_ps(bg, g1);
            agd = _mm256_fmadd_ps(g0, d0, agd);
            bgd = _mm256_fmadd_ps(g1, d1, bgd);
        }
        for (; c < c8; c += 8) {
            __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(xr + c), m);
            __m256 g0 = _mm256_mul_ps(_mm256_loadu_ps(dyr + c), _mm256_loadu_ps(w + c));
            ad = _mm256_add_ps(ad, d0);
            ag = _mm256_add_ps(ag, g0);
            agd = _mm256_fmadd_ps(g0, d0, agd);
        }
        if (c < cols) {
            __m256 d1 = _mm256_and_ps(_mm256_sub_ps(_mm256_maskload_ps(xr + c, tmask), m), tmaskf);
            __m256 g1 = _mm256_mul_ps(_mm256_maskload_ps(dyr + c, tmask), _mm256_maskload_ps(w + c, tmask));
            bd = _mm256_add_ps(bd, d1);
            bg = _mm256_add_ps(bg, g1);
            bgd = _mm256_fmadd_ps(g1, d1, bgd);
        }
        const double n = (double)cols;
        const double sd = fx8_hsum(_mm256_add_ps(ad, bd));
        const double sg = fx8_hsum(_mm256_add_ps(ag, bg));
        const double sgd = fx8_hsum(_mm256_add_ps(agd, bgd));
        const __m256 corr = _mm256_set1_ps((float)(sd / n));
        const __m256 mg = _mm256_set1_ps((float)(sg / n));
        const __m256 mgx = _mm256_set1_ps((float)((double)rsf * (sgd - (sd / n) * sg) / n));
        const __m256 rs = _mm256_set1_ps(rsf);
        float *dxr = dx ? dx + (size_t)r * lddx : NULL;
        for (c = 0; c < cols; c += 8) {
            const int tail = c + 8 > cols;
            __m256 xv, d, wv;
            if (!tail) {
                xv = _mm256_loadu_ps(xr + c);
                d = _mm256_loadu_ps(dyr + c);
                wv = _mm256_loadu_ps(w + c);
            } else {
                xv = _mm256_maskload_ps(xr + c, tmask);
                d = _mm256_maskload_ps(dyr + c, tmask);
                wv = _mm256_maskload_ps(w + c, tmask);
            }
            __m256 xh = _mm256_mul_ps(_mm256_sub_ps(_mm256_sub_ps(xv, m), corr), rs);
            if (dxr) {
                __m256 g = _mm256_sub_ps(_mm256_mul_ps(d, wv), mg);
                __m256 v = _mm256_mul_ps(rs, _mm256_fnmadd_ps(xh, mgx, g));
                if (!tail)
                    _mm256_storeu_ps(dxr + c, _mm256_add_ps(_mm256_loadu_ps(dxr + c), v));
                else
                    _mm256_maskstore_ps(dxr + c, tmask, _mm256_add_ps(_mm256_maskload_ps(dxr + c, tmask), v));
            }
            if (dw) {
                if (!tail)
                    _mm256_storeu_ps(dw + c, _mm256_fmadd_ps(d, xh, _mm256_loadu_ps(dw + c)));
                else
                    _mm256_maskstore_ps(dw + c, tmask, _mm256_fmadd_ps(d, xh, _mm256_maskload_ps(dw + c, tmask)));
            }
            if (db) {
                if (!tail)
                    _mm256_storeu_ps(db + c, _mm256_add_ps(d, _mm256_loadu_ps(db + c)));
                else
                    _mm256_maskstore_ps(db + c, tmask, _mm256_add_ps(d, _mm256_maskload_ps(db + c, tmask)));
            }
        }
    }
}

#define FX_DEFINE_BIAS_GELU_BWD_AVX2(NAME, GRAD8)                                               \
    FLUX_TARGET_AVX2                                                                            \
    static void NAME(int rows, int cols, const float *pre, const float *dy, float *dx,          \
                     float *dbias) {                                                            \
        const __m256i tmask = fx8_tail_mask(cols & 7);                                          \
        const int c8 = cols & ~7;                                                               \
        for (int r = 0; r < rows; r++) {                                                        \
            const float *pr = pre + (size_t)r * cols;                                           \
            const float *dyr = dy + (size_t)r * cols;                                           \
            float *dxr = dx + (size_t)r * cols;                                                 \
            int c = 0;                                                                          \
            for (; c < c8; c += 8) {                                                            \
                __m256 v = _mm256_mul_ps(_mm256_loadu_ps(dyr + c), GRAD8(_mm256_loadu_ps(pr + c))); \
                _mm256_storeu_ps(dxr + c, v);                                                   \
                if (dbias) _mm256_storeu_ps(dbias + c, _mm256_add_ps(_mm256_loadu_ps(dbias + c), v)); \
            }                                                                                   \
            if (c < cols) {                                                                     \
                __m256 v = _mm256_mul_ps(_mm256_maskload_ps(dyr + c, tmask),                    \
                                         GRAD8(_mm256_maskload_ps(pr + c, tmask)));             \
                _mm256_maskstore_ps(dxr + c, tmask, v);                                         \
                if (dbias)                                                                      \
                    _mm256_maskstore_ps(dbias + c, tmask,                                       \
                                        _mm256_add_ps(_mm256_maskload_ps(dbias + c, tmask), v)); \
            }                                                                                   \
        }                                                                                       \
    }

FX_DEFINE_BIAS_GELU_BWD_AVX2(bias_gelu_erf_bwd_avx2, fx8_gelu_erf_grad)
FX_DEFINE_BIAS_GELU_BWD_AVX2(bias_gelu_tanh_bwd_avx2, fx8_gelu_tanh_grad)

#endif  // FLUX_HAVE_X86

// ---------------------------------------------------------------------------------------------
// Public entry points.
// ---------------------------------------------------------------------------------------------

void flux_rmsnorm_backward(int rows, int cols, const float *x, int ldx, const float *w,
                           const float *rstd, const float *dy, int lddy, float *dx, int lddx,
                           float *dw) {
    if (rows <= 0 || cols <= 0) return;
#if FLUX_HAVE_X86
    if (flux_dispatch_avx2()) {
        rmsnorm_bwd_avx2(rows, cols, x, ldx, w, rstd, dy, lddy, dx, lddx, dw);
        return;
    }
#endif
    rmsnorm_bwd_portable(rows, cols, x, ldx, w, rstd, dy, lddy, dx, lddx, dw);
}

void flux_layernorm_backward(int rows, int cols, const float *x, int ldx, const float *w,
                             const float *mean, const float *rstd, const float *dy, int lddy,
                             float *dx, int lddx, float *dw, float *db) {
    if (rows <= 0 || cols <= 0) return;
#if FLUX_HAVE_X86
    if (flux_dispatch_avx2()) {
        layernorm_bwd_avx2(rows, cols, x, ldx, w, mean, rstd, dy, lddy, dx, lddx, dw, db);
        return;
    }
#endif
    layernorm_bwd_portable(rows, cols, x, ldx, w, mean, rstd, dy, lddy, dx, lddx, dw, db);
}

void flux_bias_gelu_backward(int rows, int cols, const float *pre, const float *dy, int kind,
                             float *dx, float *dbias) {
    if (rows <= 0 || cols <= 0) return;
#if FLUX_HAVE_X86
    if (flux_dispatch_avx2()) {
        if (kind == FLUX_GELU_TANH)
            bias_gelu_tanh_bwd_avx2(rows, cols, pre, dy, dx, dbias);
        else
            bias_gelu_erf_bwd_avx2(rows, cols, pre, dy, dx, dbias);
        return;
    }
#endif
    bias_gelu_bwd_portable(rows, cols, pre, dy, kind, dx, dbias);
}
