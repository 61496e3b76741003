// Fixed-point passes of the exact gradient reduction (FluxTraining's FixedPointGradients, issue 12): the largest
// magnitude of a block, summing slots on an integer grid into packed 7-byte integers, converting them back. The AVX2 and portable
// variants give the same bits: both round with the same double-precision "magic number" addition.
#include "flux_kernels.h"
#include "dispatch.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#if FLUX_HAVE_X86
#include <immintrin.h>
#endif

// 1.5 · 2^52: adding it to a double v with |v| < 2^51 rounds v to an integer (round half to even, the default
// mode) in the low bits of the sum's significand; subtracting the constant's bits yields that integer.
static const double magic = 6755399441055744.0;

static inline int64_t round_to_int64(double v) {
    double t = v + magic;
    int64_t bits, base;
    memcpy(&bits, &t, 8);
    memcpy(&base, &magic, 8);
    return bits - base;
}

static void block_max_portable(const float *x, int n, float *max_abs, int *nonfinite) {
    float m = 0;
    int bad = 0;
    for (int i = 0; i < n; i++) {
        float a = fabsf(x[i]);
        if (!(a <= FLT_MAX)) bad = 1;  // NaN or infinity
        else if (a > m) m = a;
    }
    *max_abs = m;
    *nonfinite = bad;
}

// Wrapping addition (as the ring's int64 sum): signed overflow would be undefined in C.
static inline int64_t wrapping_add(int64_t a, int64_t b) { return (int64_t)((uint64_t)a + (uint64_t)b); }

#if FLUX_HAVE_X86
FLUX_TARGET_AVX2
static void block_max_avx2(const float *x, int n, float *max_abs, int *nonfinite) {
    const __m256 sign = _mm256_set1_ps(-0.0f), top = _mm256_set1_ps(FLT_MAX);
    __m256 m = _mm256_setzero_ps(), bad = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 a = _mm256_andnot_ps(sign, _mm256_loadu_ps(x + i));
        bad = _mm256_or_ps(bad, _mm256_cmp_ps(a, top, _CMP_NLE_UQ));  // > FLT_MAX or unordered (NaN)
        m = _mm256_max_ps(m, a);
    }
    float lanes[8];
    _mm256_storeu_ps(lanes, m);
    float best = 0;
    for (int k = 0; k < 8; k++) best = lanes[k] > best ? lanes[k] : best;
    int anybad = _mm256_movemask_ps(bad) != 0;
    for (; i < n; i++) {
        float a = fabsf(x[i]);
        if (!(a <= FLT_MAX)) anybad = 1;
        else if (a > best) best = a;
    }
    *max_abs = best;
    *nonfinite = anybad;
}

#endif

// Packed 56-bit integers: 7 little-endian bytes each. Writing 8 bytes at packed + 7i in increasing i lets each
// element's 8th byte be overwritten by the next one's first; the last element of a call is written with 7 bytes, so
// nothing past it is touched.
static inline void store56(uint8_t *p, int64_t v, int last) {
    uint64_t u = (uint64_t)v;
    if (last) memcpy(p, &u, 7); else memcpy(p, &u, 8);
}

static inline int64_t load56(const uint8_t *p, int last) {
    uint64_t u = 0;
    if (last) memcpy(&u, p, 7); else memcpy(&u, p, 8);
    return (int64_t)(u << 8) >> 8;
}

static void quantize_pack_portable(const float *const *slots, int nslots, long offset, int n, double scale, uint8_t *packed) {
    for (int i = 0; i < n; i++) {
        int64_t sum = 0;
        for (int s = 0; s < nslots; s++) sum = wrapping_add(sum, round_to_int64((double)slots[s][offset + i] * scale));
        store56(packed + 7 * (size_t)i, sum, i == n - 1);
    }
}

#if FLUX_HAVE_X86
FLUX_TARGET_AVX2
static void quantize_pack_avx2(const float *const *slots, int nslots, long offset, int n, double scale, uint8_t *packed) {
    const __m256d sc = _mm256_set1_pd(scale), mg = _mm256_set1_pd(magic);
    const __m256i base = _mm256_castpd_si256(mg);
    int i = 0;
    int64_t lanes[4];
    for (; i + 4 < n; i += 4) {  // strictly before the last element, which gets a 7-byte store below
        __m256i sum = _mm256_setzero_si256();
        for (int s = 0; s < nslots; s++) {
            __m256d v = _mm256_mul_pd(_mm256_cvtps_pd(_mm_loadu_ps(slots[s] + offset + i)), sc);
            sum = _mm256_add_epi64(sum, _mm256_sub_epi64(_mm256_castpd_si256(_mm256_add_pd(v, mg)), base));
        }
        _mm256_storeu_si256((__m256i *)lanes, sum);
        for (int k = 0; k < 4; k++) store56(packed + 7 * (size_t)(i + k), lanes[k], 0);
    }
    for (; i < n; i++) {
        int64_t sum = 0;
        for (int s = 0; s < nslots; s++) sum = wrapping_add(sum, round_to_int64((double)slots[s][offset + i] * scale));
        store56(packed + 7 * (size_t)i, sum, i == n - 1);
    }
}
#endif

void flux_fixed_quantize_pack(const float *const *slots, int nslots, long offset, int n, double scale, uint8_t *packed) {
#if FLUX_HAVE_X86
    if (flux_dispatch_avx2()) { quantize_pack_avx2(slots, nslots, offset, n, scale, packed); return; }
#endif
    quantize_pack_portable(slots, nslots, offset, n, scale, packed);
}

void flux_fixed_unpack_convert(const uint8_t *packed, int n, double scale, float *out) {
    for (int i = 0; i < n; i++) out[i] = (float)((double)load56(packed + 7 * (size_t)i, i == n - 1) * scale);
}

void flux_fixed_block_max(const float *x, int n, float *max_abs, int *nonfinite) {
#if FLUX_HAVE_X86
    if (flux_dispatch_avx2()) { block_max_avx2(x, n, max_abs, nonfinite); return; }
#endif
    block_max_portable(x, n, max_abs, nonfinite);
}
