// Private: the vector math shared by elementwise.c and backward.c — e^(−y), the normal CDF Φ
// (GELU erf) and the logistic sigmoid σ (GELU tanh), each as a portable scalar function written
// to auto-vectorise (no branches, no libm) and as an AVX2+FMA 8-lane twin using the same
// algorithm.
//
// Why not erf / tanh directly: ½x(1 + erf(x/√2)) and ½x(1 + tanh(u)) lose all relative precision
// for negative x, where 1 + erf and 1 + tanh cancel. The identities
//   ½(1 + erf(x/√2)) = Φ(x) = ½·erfc(−x/√2)      ½(1 + tanh(u)) = σ(2u) = 1 / (1 + e^(−2u))
// are exact, and evaluating erfc(|x|/√2) and e^(−|2u|) directly keeps GELU accurate in relative
// terms down the negative tail, where PyTorch's fp32 form has only ~3e−8·|x| absolute accuracy.
// Both saturate exactly (Φ, σ → 0 or 1) for large |x|, give no inf or NaN for finite input, and
// return x·½ (sign of zero kept) for tiny x. Measured against double references over a dense
// sweep of fp32 (harness, not in the repo): |Φ − Φ_ref| ≤ 7.5e−8 and |σ − σ_ref| ≤ 9e−8, i.e. erf
// and tanh to ≤ 1.8e−7 absolute; GELU erf ≤ 3.3e−7 relative everywhere it is a normal float;
// GELU tanh ≤ 1.1e−6 relative where |y| ≥ 1e−3, growing as ~1.3e−7·|z| further down the negative
// tail (the fp32 rounding of z = 2u; absolute error there < 2e−9).
//
// erfc(a), a = |x|/√2 ≥ 0, follows the classic construction (cf. N. Juffa's erfcf):
//   erfc(a) = e^(−a²) · (1 + p(q)) / (1 + 2a),   q = (a − 2)/(a + 2) ∈ [−1, 1)
// with p a degree-9 polynomial fitted here (relative error 1.3e−8 on a ∈ [0, 10.1]; beyond that
// erfc underflows in fp32). e^(−x²/2) is taken as e^(−hi)·(1 − lo) with x²/2 = hi + lo split
// exactly (FMA, or a double product in the portable code), because erfc's relative condition
// number is 2a² and rounding a² would cost ~1e−5 relative at a = 10. For |x| < 1 a separate odd
// polynomial gives Φ = ½ + x·S(x²) (see FX_PHI_SMALL), which halves the absolute error there.
#ifndef FLUX_VMATH_H
#define FLUX_VMATH_H

#include <stdint.h>
#include <string.h>

#include "dispatch.h"

#define FX_LOG2E 1.44269504088896341f
#define FX_LN2_HI 0.693359375f        // few mantissa bits: n·LN2_HI is exact for |n| < 2^9
#define FX_LN2_LO (-2.12194440e-4f)
#define FX_EXP_YMAX 88.0f             // e^(−y) for y beyond is returned as 0 (2^-127 scale)
#define FX_2SQRT2 2.82842712474619010f         // 2√2: q = (a−2)/(a+2) = (|x| − 2√2)/(|x| + 2√2)
#define FX_INV_SQRT_2PI 0.39894228040143268f
#define FX_GELU_TANH_K2 1.59576912160573071f   // 2·√(2/π)
#define FX_GELU_TANH_K2C 0.0713548162726002527f // 2·√(2/π)·0.044715
#define FX_GELU_TANH_K6C 0.214064448817800758f  // 3 · FX_GELU_TANH_K2C
#define FX_GELU_ERF_XMAX 15.0f        // |x| beyond: Φ is exactly 0 or 1 in fp32

// Minimax coefficients, highest degree first, of p(q) ≈ (1 + 2a)·e^(a²)·erfc(a) − 1.
#define FX_ERFC_P9 (-0x1.a412f0p-12f)
#define FX_ERFC_P8 (-0x1.426e3cp-10f)
#define FX_ERFC_P7 (0x1.58574ap-10f)
#define FX_ERFC_P6 (0x1.1ad834p-7f)
#define FX_ERFC_P5 (-0x1.081b3cp-7f)
#define FX_ERFC_P4 (-0x1.bc0ab0p-5f)
#define FX_ERFC_P3 (0x1.4ffc40p-3f)
#define FX_ERFC_P2 (-0x1.540848p-3f)
#define FX_ERFC_P1 (-0x1.7bf616p-4f)
#define FX_ERFC_P0 (0x1.1ba03ap-2f)

// Φ(x) = ½ + x·S(x²/2) for |x| < FX_PHI_SMALL (relative error of x·S 3.4e−8; the variable is
// x²/2 because that is already computed, rounded, for the exponential). Near 0 the erfc route
// would leave Φ = 1 − ½erfc with ~2.5 ulp(½) of absolute error; this keeps it at ~1 ulp.
#define FX_PHI_SMALL 1.0f
#define FX_PHI_S5 (-0x1.00d512p-12f)
#define FX_PHI_S4 (0x1.dbff0ap-10f)
#define FX_PHI_S3 (-0x1.36fd40p-7f)
#define FX_PHI_S2 (0x1.46ce4cp-5f)
#define FX_PHI_S1 (-0x1.105832p-3f)
#define FX_PHI_S0 (0x1.988454p-2f)

// e^r ≈ 1 + r·(1 + r·(C2 + r·(C3 + r·(C4 + r·(C5 + r·C6))))) on |r| ≤ ln2/2, fitted here:
// relative error 1.7e−8 with these fp32 coefficients (6 FMAs).
#define FX_EXP_C6 (0x1.6ae726p-10f)
#define FX_EXP_C5 (0x1.126786p-7f)
#define FX_EXP_C4 (0x1.555822p-5f)
#define FX_EXP_C3 (0x1.55541ap-3f)
#define FX_EXP_C2 (0x1.fffffcp-2f)

// ---------------------------------------------------------------------------------------------
// Portable scalar versions. Branch-free (ternaries become selects) so loops over them vectorise.
// ---------------------------------------------------------------------------------------------

static inline float fx_min(float a, float b) { return a < b ? a : b; }
static inline float fx_max(float a, float b) { return a > b ? a : b; }

/// e^(−y) for y ≥ 0 (or NaN); 0 for y > FX_EXP_YMAX.
static inline float fx_exp_neg(float y) {
    y = y > FX_EXP_YMAX ? FX_EXP_YMAX : y;
    const float shifter = 12582912.0f + 127.0f;  // see fx8_exp_neg
    float t = shifter - y * FX_LOG2E;
    float n = t - shifter;
    float r = -y - n * FX_LN2_HI;
    r = r - n * FX_LN2_LO;
    float p = FX_EXP_C6;
    p = p * r + FX_EXP_C5;
    p = p * r + FX_EXP_C4;
    p = p * r + FX_EXP_C3;
    p = p * r + FX_EXP_C2;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    uint32_t ti;
    memcpy(&ti, &t, sizeof ti);
    uint32_t sb = ti << 23;  // low mantissa bits of t hold n + 127: the exponent of 2^n
    float sc;
    memcpy(&sc, &sb, sizeof sc);
    return p * sc;
}

/// p(q) of the erfc approximation.
static inline float fx_erfc_poly(float q) {
    float p = FX_ERFC_P9;
    p = p * q + FX_ERFC_P8;
    p = p * q + FX_ERFC_P7;
    p = p * q + FX_ERFC_P6;
    p = p * q + FX_ERFC_P5;
    p = p * q + FX_ERFC_P4;
    p = p * q + FX_ERFC_P3;
    p = p * q + FX_ERFC_P2;
    p = p * q + FX_ERFC_P1;
    p = p * q + FX_ERFC_P0;
    return p;
}

/// Φ(x) (normal CDF); *gauss_out receives e^(−x²/2) (the unnormalised normal density, for the
/// backward pass). NaN x gives an unspecified Φ; callers multiply by x, so NaN propagates.
static inline float fx_normcdf(float x, float *gauss_out) {
    float ax = fx_min(x < 0.0f ? -x : x, FX_GELU_ERF_XMAX);
    double sq = 0.5 * ((double)ax * (double)ax);  // exact: 24×24-bit product
    float hi = (float)sq;
    float lo = (float)(sq - (double)hi);
    float e = fx_exp_neg(hi);
    e = e - e * lo;                                // e^(−(hi+lo)) = e^(−x²/2)
    float q = (ax - FX_2SQRT2) / (ax + FX_2SQRT2);  // (a−2)/(a+2), a = |x|/√2
    float p = fx_erfc_poly(q);
    float ed = e / (FX_2SQRT2 * ax + 2.0f);         // e^(−a²) / (2·(1 + 2a))
    float h = p * ed + ed;                          // ½·erfc(a)
    float sp = FX_PHI_S5;  // S(x²/2), hi = x²/2 rounded
    sp = sp * hi + FX_PHI_S4;
    sp = sp * hi + FX_PHI_S3;
    sp = sp * hi + FX_PHI_S2;
    sp = sp * hi + FX_PHI_S1;
    sp = sp * hi + FX_PHI_S0;
    float small = x * sp + 0.5f;
    *gauss_out = e;
    return ax < FX_PHI_SMALL ? small : x < 0.0f ? h : 1.0f - h;
}

/// σ(z) = 1/(1 + e^(−z)); *ds_out receives σ(z)·(1 − σ(z)).
static inline float fx_sigmoid(float z, float *ds_out) {
    float e = fx_exp_neg(z < 0.0f ? -z : z);   // e^(−|z|)
    float r = 1.0f / (1.0f + e);
    float er = e * r;
    *ds_out = er * r;
    return z < 0.0f ? er : r;
}

static inline float fx_gelu_erf(float x) {
    float g;
    return x * fx_normcdf(x, &g);
}

static inline float fx_gelu_tanh(float x) {
    float ds;
    float z = x * (FX_GELU_TANH_K2 + FX_GELU_TANH_K2C * (x * x));  // 2·√(2/π)·(x + 0.044715x³)
    return x * fx_sigmoid(z, &ds);
}

/// d/dx GELU_erf = Φ(x) + x·φ(x).
static inline float fx_gelu_erf_grad(float x) {
    float g;
    float cdf = fx_normcdf(x, &g);
    return cdf + x * (g * FX_INV_SQRT_2PI);
}

/// d/dx GELU_tanh = σ(z) + x·σ(z)(1 − σ(z))·z'(x), z = 2·√(2/π)·(x + 0.044715x³).
static inline float fx_gelu_tanh_grad(float x) {
    float ds;
    float z = x * (FX_GELU_TANH_K2 + FX_GELU_TANH_K2C * (x * x));
    float s = fx_sigmoid(z, &ds);
    // ds is exactly 0 once |x| > ~15; clamping keeps x·z' finite so 0·z' is not NaN.
    float xc = fx_max(fx_min(x, 32.0f), -32.0f);
    float dz = FX_GELU_TANH_K2 + FX_GELU_TANH_K6C * (xc * xc);
    return s + xc * ds * dz;
}

// ---------------------------------------------------------------------------------------------
// AVX2 + FMA versions.
// ---------------------------------------------------------------------------------------------
#if FLUX_HAVE_X86
#include <immintrin.h>

#define FX_AVX2_INLINE static inline __attribute__((always_inline)) FLUX_TARGET_AVX2

/// A splat constant read from memory at each use instead of living in a register. The erf path
/// needs ~30 constants, more than the 16 ymm registers, and clang then rematerialises each one
/// with a broadcast that takes an FP pipe slot; as an FMA memory operand it uses a load port
/// instead (erf GELU +15%). The empty asm only hides the table's contents from the optimiser.
#define FX8_MEM_CONST(val)                                                                       \
    (__extension__({                                                                            \
        static const float fx_k_[8] __attribute__((aligned(32))) = {val, val, val, val,        \
                                                                    val, val, val, val};       \
        const float *fx_p_ = fx_k_;                                                             \
        __asm__("" : "+r"(fx_p_));                                                              \
        _mm256_load_ps(fx_p_);                                                                  \
    }))

/// Lanes [0, n) set, n in [0, 8].
FX_AVX2_INLINE __m256i fx8_tail_mask(int n) {
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), idx);
}

FX_AVX2_INLINE float fx8_hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

FX_AVX2_INLINE __m256 fx8_abs(__m256 x) {
    return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x);
}

/// e^(−y) for y ≥ 0; 0 for y > FX_EXP_YMAX (and for NaN).
FX_AVX2_INLINE __m256 fx8_exp_neg(__m256 y) {
    // Shifter 1.5·2^23 + 127: t = shifter − y·log2(e) rounds to an integer n (+127) held in the
    // low mantissa bits of t, so (bits(t) << 23) is already the biased exponent of 2^n; n = −127
    // (y clamped to 88) gives bits 0, i.e. e^(−y) = +0.
    const __m256 shifter = _mm256_set1_ps(12582912.0f + 127.0f);
    y = _mm256_min_ps(y, _mm256_set1_ps(FX_EXP_YMAX));
    __m256 t = _mm256_fnmadd_ps(y, _mm256_set1_ps(FX_LOG2E), shifter);
    __m256 n = _mm256_sub_ps(t, shifter);
    __m256 r = _mm256_fnmsub_ps(n, _mm256_set1_ps(FX_LN2_HI), y);  // −y − n·ln2_hi
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(FX_LN2_LO), r);
    const __m256 one = _mm256_set1_ps(1.0f);
    __m256 p = _mm256_set1_ps(FX_EXP_C6);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(FX_EXP_C5));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(FX_EXP_C4));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(FX_EXP_C3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(FX_EXP_C2));
    p = _mm256_fmadd_ps(p, r, one);
    p = _mm256_fmadd_ps(p, r, one);
    __m256i sb = _mm256_slli_epi32(_mm256_castps_si256(t), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(sb));
}

FX_AVX2_INLINE __m256 fx8_erfc_poly(__m256 q) {
    __m256 p = FX8_MEM_CONST(FX_ERFC_P9);
    p = _mm256_fmadd_ps(p, q, FX8_MEM_CONST(FX_ERFC_P8));
    p = _mm256_fmadd_ps(p, q, FX8_MEM_CONST(FX_ERFC_P7));
    p = _mm256_fmadd_ps(p, q, FX8_MEM_CONST(FX_ERFC_P6));
    p = _mm256_fmadd_ps(p, q, FX8_MEM_CONST(FX_ERFC_P5));
    p = _mm256_fmadd_ps(p, q, FX8_MEM_CONST(FX_ERFC_P4));
    p = _mm256_fmadd_ps(p, q, FX8_MEM_CONST(FX_ERFC_P3));
    p = _mm256_fmadd_ps(p, q, FX8_MEM_CONST(FX_ERFC_P2));
    p = _mm256_fmadd_ps(p, q, FX8_MEM_CONST(FX_ERFC_P1));
    p = _mm256_fmadd_ps(p, q, FX8_MEM_CONST(FX_ERFC_P0));
    return p;
}

/// Φ(x); *gauss receives e^(−x²/2).
FX_AVX2_INLINE __m256 fx8_normcdf(__m256 x, __m256 *gauss) {
    __m256 ax = _mm256_min_ps(fx8_abs(x), _mm256_set1_ps(FX_GELU_ERF_XMAX));
    __m256 hax = _mm256_mul_ps(ax, _mm256_set1_ps(0.5f));
    __m256 hi = _mm256_mul_ps(hax, ax);
    __m256 lo = _mm256_fmsub_ps(hax, ax, hi);                       // x²/2 − hi, exact
    __m256 e = fx8_exp_neg(hi);
    e = _mm256_fnmadd_ps(e, lo, e);                                 // e^(−x²/2)
    __m256 c = _mm256_set1_ps(FX_2SQRT2);
    __m256 q = _mm256_div_ps(_mm256_sub_ps(ax, c), _mm256_add_ps(ax, c));
    __m256 p = fx8_erfc_poly(q);
    __m256 ed = _mm256_div_ps(e, _mm256_fmadd_ps(c, ax, _mm256_set1_ps(2.0f)));
    __m256 h = _mm256_fmadd_ps(p, ed, ed);                          // ½·erfc(|x|/√2)
    __m256 big = _mm256_blendv_ps(_mm256_sub_ps(_mm256_set1_ps(1.0f), h), h, x);  // by sign of x
    __m256 sp = FX8_MEM_CONST(FX_PHI_S5);  // S(x²/2)
    sp = _mm256_fmadd_ps(sp, hi, FX8_MEM_CONST(FX_PHI_S4));
    sp = _mm256_fmadd_ps(sp, hi, FX8_MEM_CONST(FX_PHI_S3));
    sp = _mm256_fmadd_ps(sp, hi, FX8_MEM_CONST(FX_PHI_S2));
    sp = _mm256_fmadd_ps(sp, hi, FX8_MEM_CONST(FX_PHI_S1));
    sp = _mm256_fmadd_ps(sp, hi, FX8_MEM_CONST(FX_PHI_S0));
    __m256 small = _mm256_fmadd_ps(x, sp, _mm256_set1_ps(0.5f));
    __m256 is_small = _mm256_cmp_ps(ax, FX8_MEM_CONST(FX_PHI_SMALL), _CMP_LT_OQ);
    *gauss = e;
    return _mm256_blendv_ps(big, small, is_small);
}

/// σ(z); *ds receives σ(1 − σ).
FX_AVX2_INLINE __m256 fx8_sigmoid(__m256 z, __m256 *ds) {
    __m256 e = fx8_exp_neg(fx8_abs(z));  // e^(−|z|)
    __m256 r = _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_add_ps(_mm256_set1_ps(1.0f), e));
    __m256 er = _mm256_mul_ps(e, r);
    *ds = _mm256_mul_ps(er, r);
    return _mm256_blendv_ps(r, er, z);  // by the sign bit of z (z = −0 gives er = r = ½)
}

FX_AVX2_INLINE __m256 fx8_gelu_erf(__m256 x) {
    __m256 g;
    return _mm256_mul_ps(x, fx8_normcdf(x, &g));
}

FX_AVX2_INLINE __m256 fx8_gelu_tanh_z(__m256 x) {
    __m256 x2 = _mm256_mul_ps(x, x);
    return _mm256_mul_ps(x, _mm256_fmadd_ps(_mm256_set1_ps(FX_GELU_TANH_K2C), x2,
                                            _mm256_set1_ps(FX_GELU_TANH_K2)));
}

FX_AVX2_INLINE __m256 fx8_gelu_tanh(__m256 x) {
    __m256 ds;
    return _mm256_mul_ps(x, fx8_sigmoid(fx8_gelu_tanh_z(x), &ds));
}

FX_AVX2_INLINE __m256 fx8_gelu_erf_grad(__m256 x) {
    __m256 g;
    __m256 cdf = fx8_normcdf(x, &g);
    return _mm256_fmadd_ps(x, _mm256_mul_ps(g, _mm256_set1_ps(FX_INV_SQRT_2PI)), cdf);
}

FX_AVX2_INLINE __m256 fx8_gelu_tanh_grad(__m256 x) {
    __m256 ds;
    __m256 s = fx8_sigmoid(fx8_gelu_tanh_z(x), &ds);
    __m256 xc = _mm256_max_ps(_mm256_min_ps(x, _mm256_set1_ps(32.0f)), _mm256_set1_ps(-32.0f));
    __m256 dz = _mm256_fmadd_ps(_mm256_set1_ps(FX_GELU_TANH_K6C), _mm256_mul_ps(xc, xc),
                                _mm256_set1_ps(FX_GELU_TANH_K2));
    return _mm256_fmadd_ps(_mm256_mul_ps(xc, ds), dz, s);
}

#endif  // FLUX_HAVE_X86

#endif
