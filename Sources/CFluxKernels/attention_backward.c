// Backward of the fused single-head attention (flux_attention_backward.h), flash-attention-2
// style on the CPU: the probabilities are recomputed tile by tile from q, k and the forward's lse,
// and nothing n_queries × n_keys is ever stored.
//
// Math (one head, query rows i of this call, all keys j):
//   P = exp(scale·q·kᵀ − lse)      D_i = Σ_c dout_ic·out_ic
//   dS = P ⊙ (dout·vᵀ − D)
//   dq  = scale·dS·k   (overwritten)    dk += scale·dSᵀ·q    dv += Pᵀ·dout
//
// AVX2+FMA path. The tiles are oriented keys × queries (transposed scores): then every one of the
// five products is a 6×16 register-tile loop (12 ymm accumulators; per step 2 vector loads,
// 6 broadcasts, 12 FMAs) whose operands are plain packed rows or panels:
//   1. Once per call: Ks = scale·k and v are packed as contiguous rows [keys][dp] (dp = head_dim
//      rounded up to 8, zero padded; keys padded to a multiple of 6 with zero rows), and private
//      fp32 accumulators dKa, dVa [keys][dp] are zeroed.
//   2. Query rows go in super-blocks of BW_QB (96). Each is packed as column chunks of 16 (q, dout:
//      [chunk][query][16]) and as transposed panels of 16 queries (qᵀ, doutᵀ: [panel][head_dim][16]);
//      lse and −D become per-query vectors (padding queries get lse = +inf, hence P = 0). The
//      super-block's dQ accumulator [queries][dp] stays in L1/L2.
//   3. For each key block of BW_KB (96) keys, for each tile of 6 keys:
//        Sᵀ   = Ks·qᵀ per panel of 16 queries; epilogue P = e^(−(lse − S)) on the 12 accumulators
//             (Cody–Waite, degree-5 polynomial: 12 independent chains), stored as P[key][query];
//        dPᵀ  = v·doutᵀ with the accumulators started at −D; epilogue dS = P·(dP − D);
//        dV, dK rows of the 6 keys += P·dout, dS·q, reducing over the super-block's queries while
//             the 6 rows of P and dS are hot in L1;
//      then dQ += dSᵀ·Ks over the block's keys (6 queries × 16 columns, reducing over 96 keys).
//      The per-key arrays (4·n_keys·dp floats) come from L3 once per super-block, so each tile
//      prefetches its dK/dV rows and the next tile's k/v rows.
//   4. dq = dQ at the end of each super-block; dk += scale·dKa and dv += dVa at the end of the call.
// Per 8 (query, key) pairs at head_dim 64 the products issue 40 FMAs and the exponential plus the
// dS product ~10 more FMA-pipe operations. Measured single-threaded on Zen 3 (n = 2049, head_dim
// 64, 10·n²·d flops): ~95–100% of OpenBLAS sgemm's rate (2048×384×1536), ~93% with 1025 query rows
// per call; ~60% at n = 197 (partial tiles and per-call packing).
//
// Accuracy: y = lse − S is a single rounding of the fp32 score difference (its error is relative
// to y, not to |lse|), and e^(−y) is good to ~3 ulp, so large logits (1e3 and beyond) cost nothing
// beyond the unavoidable rounding of the fp32 dot product S itself. y is clamped to [−88, 88]
// (P = 0 exactly beyond ~87.3, finite for an inconsistent lse); NaN propagates. Ks = scale·k is
// exact for power-of-two scales and otherwise one rounding per element (the forward likewise
// scales q).
//
// Portable path: query rows in groups of 4 against one key at a time (each k, v row and dk, dv row
// is touched once per group), fp32 dot products in 8 partial sums, expf of the same single-rounding
// difference (same stability), scratch 4·head_dim floats. It runs at ~5–8 GFLOP/s here.
#include "flux_attention_backward.h"
#include "dispatch.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if FLUX_HAVE_X86
#include <immintrin.h>
#endif

#define BW_MR 6     // keys per register tile (Sᵀ, dPᵀ, dK, dV); queries per tile (dQ)
#define BW_NR 16    // queries per transposed panel; columns per register tile
#ifndef BW_QB
#define BW_QB 96    // queries per super-block (multiple of 48 = lcm(6, 16))
#endif
#ifndef BW_KB
#define BW_KB 96    // keys per key block (multiple of 6)
#endif
#define BW_LDQ BW_QB  // row stride of the P / dS tiles [key][query]
#define BW_PORT_G 4   // query rows per group in the portable path

#define BW_PRAGMA(x) _Pragma(#x)
#if defined(__clang__)
#define BW_UNROLL(n) BW_PRAGMA(clang loop unroll_count(n))
#elif defined(__GNUC__)
#define BW_UNROLL(n) BW_PRAGMA(GCC unroll n)
#else
#define BW_UNROLL(n)
#endif

static size_t bw_round_up(size_t x, size_t m) { return (x + m - 1) / m * m; }

// Scratch layout (floats; every section starts on a 64-byte boundary).
typedef struct {
    size_t ks, vr, dka, dva, qt, dot, qr, dor, dqa, pt, st, lse, negd, total;
} bw_layout;

static bw_layout bw_make_layout(int n_keys, int head_dim) {
    size_t npad = bw_round_up((size_t)(n_keys > 0 ? n_keys : 1), BW_MR);
    size_t d = (size_t)(head_dim > 0 ? head_dim : 1);
    size_t dp = bw_round_up(d, 8);
    bw_layout L;
    size_t off = 0;
    L.ks = off; off += bw_round_up(npad * dp, 16);
    L.vr = off; off += bw_round_up(npad * dp, 16);
    L.dka = off; off += bw_round_up(npad * dp, 16);
    L.dva = off; off += bw_round_up(npad * dp, 16);
    L.qt = off; off += bw_round_up((size_t)BW_QB * d, 16);
    L.dot = off; off += bw_round_up((size_t)BW_QB * d, 16);
    L.qr = off; off += bw_round_up((size_t)BW_QB * dp, 16);
    L.dor = off; off += bw_round_up((size_t)BW_QB * dp, 16);
    L.dqa = off; off += bw_round_up((size_t)BW_QB * dp, 16);
    L.pt = off; off += bw_round_up((size_t)BW_KB * BW_LDQ, 16);
    L.st = off; off += bw_round_up((size_t)BW_KB * BW_LDQ, 16);
    L.lse = off; off += bw_round_up(BW_QB, 16);
    L.negd = off; off += bw_round_up(BW_QB, 16);
    L.total = off + 16;  // + slack to realign a scratch that is not 64-byte aligned
    return L;
}

size_t flux_attention_backward_scratch_floats(int n_keys, int head_dim) {
    bw_layout L = bw_make_layout(n_keys, head_dim);
    size_t portable = (size_t)BW_PORT_G * (size_t)(head_dim > 0 ? head_dim : 1) + 16;
    return L.total > portable ? L.total : portable;
}

// ---------------------------------------------------------------------------------------------
// Portable fallback.
// ---------------------------------------------------------------------------------------------

// Σ a[c]·b[c] in 8 interleaved partial sums (vectorisable without reassociation flags).
static inline float bw_dot(const float *a, const float *b, int n) {
    float acc[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
    int c = 0;
    for (; c + 8 <= n; c += 8)
        for (int u = 0; u < 8; u++) acc[u] += a[c + u] * b[c + u];
    float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (; c < n; c++) s += a[c] * b[c];
    return s;
}

static void bw_portable(int n_queries, int n_keys, int d, const float *q, int ldq, const float *k,
                        int ldk, const float *v, int ldv, const float *out, int ldo,
                        const float *lse, const float *dout, int lddo, float scale, float *dq,
                        int lddq, float *dk, int lddk, float *dv, int lddv, float *scratch) {
    float *dqa = scratch;  // [BW_PORT_G][d]
    for (int i0 = 0; i0 < n_queries; i0 += BW_PORT_G) {
        int nr = n_queries - i0 < BW_PORT_G ? n_queries - i0 : BW_PORT_G;
        const float *qr[BW_PORT_G], *gr[BW_PORT_G];
        float dd[BW_PORT_G];
        double ll[BW_PORT_G];
        for (int r = 0; r < nr; r++) {
            qr[r] = q + (size_t)(i0 + r) * ldq;
            gr[r] = dout + (size_t)(i0 + r) * lddo;
            const float *orow = out + (size_t)(i0 + r) * ldo;
            double acc = 0.0;
            for (int c = 0; c < d; c++) acc += (double)gr[r][c] * (double)orow[c];
            dd[r] = (float)acc;
            ll[r] = (double)lse[i0 + r];
            for (int c = 0; c < d; c++) dqa[(size_t)r * d + c] = 0.0f;
        }
        for (int j = 0; j < n_keys; j++) {
            const float *kj = k + (size_t)j * ldk;
            const float *vj = v + (size_t)j * ldv;
            float p[BW_PORT_G], ds[BW_PORT_G];
            for (int r = 0; r < nr; r++) {
                float s = bw_dot(qr[r], kj, d), g = bw_dot(gr[r], vj, d);
                // (double)s·scale is exact: the subtraction is the only rounding before expf.
                float x = (float)((double)s * (double)scale - ll[r]);
                x = x > 88.0f ? 88.0f : x;  // inconsistent lse: finite; NaN kept
                p[r] = expf(x);
                ds[r] = p[r] * (g - dd[r]);
            }
            float *dkj = dk + (size_t)j * lddk;
            float *dvj = dv + (size_t)j * lddv;
            for (int r = 0; r < nr; r++) {
                float a = ds[r], b = p[r], as = ds[r] * scale;
                float *acc = dqa + (size_t)r * d;
                const float *qrow = qr[r], *grow = gr[r];
                for (int c = 0; c < d; c++) {
                    acc[c] += a * kj[c];
                    dkj[c] += as * qrow[c];
                    dvj[c] += b * grow[c];
                }
            }
        }
        for (int r = 0; r < nr; r++) {
            float *dst = dq + (size_t)(i0 + r) * lddq;
            for (int c = 0; c < d; c++) dst[c] = dqa[(size_t)r * d + c] * scale;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// AVX2 + FMA.
// ---------------------------------------------------------------------------------------------

#if FLUX_HAVE_X86

#define BW_INLINE static inline __attribute__((always_inline)) FLUX_TARGET_AVX2
#ifdef BW_PROFILE  // keeps the three kernels apart in a profile
#define BW_NOINLINE __attribute__((noinline))
#else
#define BW_NOINLINE
#endif

// e^r ≈ 1 + r + C2 r² + … + C5 r⁵ on |r| ≤ ln2/2: minimax for relative error (7.4e−8 in exact
// arithmetic, 1.8e−7 ≈ 3 ulp with these fp32 coefficients in Horner/FMA form).
#define BW_EXP_C5 0x1.10d0bcp-7f
#define BW_EXP_C4 0x1.574f8ap-5f
#define BW_EXP_C3 0x1.5556c4p-3f
#define BW_EXP_C2 0x1.fffd7ep-2f

/// e^(−y). y is clamped to [−88, 88] (NaN kept): y ≥ 87.34 gives exactly 0 (2^n built with
/// n = −127 is +0), y = −88 gives a finite 1.65e38. Range reduction with a single fp32 ln2
/// (|ln2 − fl(ln2)| = 1.9e−9, i.e. < 2.5e−7 absolute on r for |n| ≤ 127).
BW_INLINE __m256 bw8_exp_neg(__m256 y) {
    const __m256 shifter = _mm256_set1_ps(12582912.0f + 127.0f);  // 1.5·2^23 + 127
    y = _mm256_max_ps(_mm256_set1_ps(-88.0f), y);  // (max/min return the 2nd operand on NaN)
    y = _mm256_min_ps(_mm256_set1_ps(88.0f), y);
    __m256 t = _mm256_fnmadd_ps(y, _mm256_set1_ps(1.44269504088896341f), shifter);
    __m256 n = _mm256_sub_ps(t, shifter);
    __m256 r = _mm256_fnmsub_ps(n, _mm256_set1_ps(0.693147180559945309f), y);  // −n·ln2 − y
    const __m256 one = _mm256_set1_ps(1.0f);
    __m256 p = _mm256_set1_ps(BW_EXP_C5);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(BW_EXP_C4));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(BW_EXP_C3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(BW_EXP_C2));
    p = _mm256_fmadd_ps(p, r, one);
    p = _mm256_fmadd_ps(p, r, one);
    __m256i sb = _mm256_slli_epi32(_mm256_castps_si256(t), 23);  // (n + 127) << 23 = 2^n
    return _mm256_mul_ps(p, _mm256_castsi256_ps(sb));
}

// Sᵀ / P and dPᵀ / dS for one tile of 6 keys against `npan` panels of 16 queries.
//   ks, vr: the tile's 6 packed key rows (stride dp) of scale·k and v.
//   qt, dot: qᵀ and doutᵀ panels [npan][d][16].  lse, negd: per-query lse and −D.
//   pt, st: P and dS rows of the 6 keys (stride BW_LDQ), columns 16p ..< 16p + 16.
//   nvalid < 6: rows >= nvalid are padding keys, their P (hence dS) is forced to 0.
BW_INLINE void bw_sdp_impl(int d, int dp, const float *ks, const float *vr, const float *qt,
                           const float *dot, int npan, const float *lse, const float *negd,
                           float *pt, float *st, int nvalid) {
    const float *k0 = ks, *k1 = ks + dp, *k2 = ks + 2 * (size_t)dp, *k3 = ks + 3 * (size_t)dp;
    const float *k4 = ks + 4 * (size_t)dp, *k5 = ks + 5 * (size_t)dp;
    const float *v0 = vr, *v1 = vr + dp, *v2 = vr + 2 * (size_t)dp, *v3 = vr + 3 * (size_t)dp;
    const float *v4 = vr + 4 * (size_t)dp, *v5 = vr + 5 * (size_t)dp;
    for (int p = 0; p < npan; p++) {
        const size_t col = (size_t)p * BW_NR;
        // Sᵀ tile: c[r][h] = Σ_c ks[r][c]·qᵀ[c][16p + 8h ..].
        {
            const float *b = qt + (size_t)p * d * BW_NR;
            __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
            __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
            __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
            __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
            __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
            __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
            BW_UNROLL(4)
            for (int c = 0; c < d; c++) {
                __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
                __m256 x;
                x = _mm256_broadcast_ss(k0 + c); c00 = _mm256_fmadd_ps(x, b0, c00); c01 = _mm256_fmadd_ps(x, b1, c01);
                x = _mm256_broadcast_ss(k1 + c); c10 = _mm256_fmadd_ps(x, b0, c10); c11 = _mm256_fmadd_ps(x, b1, c11);
                x = _mm256_broadcast_ss(k2 + c); c20 = _mm256_fmadd_ps(x, b0, c20); c21 = _mm256_fmadd_ps(x, b1, c21);
                x = _mm256_broadcast_ss(k3 + c); c30 = _mm256_fmadd_ps(x, b0, c30); c31 = _mm256_fmadd_ps(x, b1, c31);
                x = _mm256_broadcast_ss(k4 + c); c40 = _mm256_fmadd_ps(x, b0, c40); c41 = _mm256_fmadd_ps(x, b1, c41);
                x = _mm256_broadcast_ss(k5 + c); c50 = _mm256_fmadd_ps(x, b0, c50); c51 = _mm256_fmadd_ps(x, b1, c51);
                b += BW_NR;
            }
            const __m256 l0 = _mm256_load_ps(lse + col), l1 = _mm256_load_ps(lse + col + 8);
            c00 = bw8_exp_neg(_mm256_sub_ps(l0, c00)); c01 = bw8_exp_neg(_mm256_sub_ps(l1, c01));
            c10 = bw8_exp_neg(_mm256_sub_ps(l0, c10)); c11 = bw8_exp_neg(_mm256_sub_ps(l1, c11));
            c20 = bw8_exp_neg(_mm256_sub_ps(l0, c20)); c21 = bw8_exp_neg(_mm256_sub_ps(l1, c21));
            c30 = bw8_exp_neg(_mm256_sub_ps(l0, c30)); c31 = bw8_exp_neg(_mm256_sub_ps(l1, c31));
            c40 = bw8_exp_neg(_mm256_sub_ps(l0, c40)); c41 = bw8_exp_neg(_mm256_sub_ps(l1, c41));
            c50 = bw8_exp_neg(_mm256_sub_ps(l0, c50)); c51 = bw8_exp_neg(_mm256_sub_ps(l1, c51));
            if (nvalid < BW_MR) {
                const __m256 z = _mm256_setzero_ps();
                if (nvalid <= 1) { c10 = z; c11 = z; }
                if (nvalid <= 2) { c20 = z; c21 = z; }
                if (nvalid <= 3) { c30 = z; c31 = z; }
                if (nvalid <= 4) { c40 = z; c41 = z; }
                c50 = z; c51 = z;
            }
            float *o = pt + col;
            _mm256_store_ps(o + 0 * BW_LDQ, c00); _mm256_store_ps(o + 0 * BW_LDQ + 8, c01);
            _mm256_store_ps(o + 1 * BW_LDQ, c10); _mm256_store_ps(o + 1 * BW_LDQ + 8, c11);
            _mm256_store_ps(o + 2 * BW_LDQ, c20); _mm256_store_ps(o + 2 * BW_LDQ + 8, c21);
            _mm256_store_ps(o + 3 * BW_LDQ, c30); _mm256_store_ps(o + 3 * BW_LDQ + 8, c31);
            _mm256_store_ps(o + 4 * BW_LDQ, c40); _mm256_store_ps(o + 4 * BW_LDQ + 8, c41);
            _mm256_store_ps(o + 5 * BW_LDQ, c50); _mm256_store_ps(o + 5 * BW_LDQ + 8, c51);
        }
        // dPᵀ tile started at −D: c[r][h] = Σ_c v[r][c]·doutᵀ[c][..] − D; then dS = P·c.
        {
            const float *b = dot + (size_t)p * d * BW_NR;
            const __m256 n0 = _mm256_load_ps(negd + col), n1 = _mm256_load_ps(negd + col + 8);
            __m256 c00 = n0, c01 = n1, c10 = n0, c11 = n1, c20 = n0, c21 = n1;
            __m256 c30 = n0, c31 = n1, c40 = n0, c41 = n1, c50 = n0, c51 = n1;
            BW_UNROLL(4)
            for (int c = 0; c < d; c++) {
                __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
                __m256 x;
                x = _mm256_broadcast_ss(v0 + c); c00 = _mm256_fmadd_ps(x, b0, c00); c01 = _mm256_fmadd_ps(x, b1, c01);
                x = _mm256_broadcast_ss(v1 + c); c10 = _mm256_fmadd_ps(x, b0, c10); c11 = _mm256_fmadd_ps(x, b1, c11);
                x = _mm256_broadcast_ss(v2 + c); c20 = _mm256_fmadd_ps(x, b0, c20); c21 = _mm256_fmadd_ps(x, b1, c21);
                x = _mm256_broadcast_ss(v3 + c); c30 = _mm256_fmadd_ps(x, b0, c30); c31 = _mm256_fmadd_ps(x, b1, c31);
                x = _mm256_broadcast_ss(v4 + c); c40 = _mm256_fmadd_ps(x, b0, c40); c41 = _mm256_fmadd_ps(x, b1, c41);
                x = _mm256_broadcast_ss(v5 + c); c50 = _mm256_fmadd_ps(x, b0, c50); c51 = _mm256_fmadd_ps(x, b1, c51);
                b += BW_NR;
            }
            const float *pp = pt + col;
            float *o = st + col;
#define BW_DS(r, x0, x1)                                                                          \
    _mm256_store_ps(o + (r) * BW_LDQ, _mm256_mul_ps(x0, _mm256_load_ps(pp + (r) * BW_LDQ)));      \
    _mm256_store_ps(o + (r) * BW_LDQ + 8, _mm256_mul_ps(x1, _mm256_load_ps(pp + (r) * BW_LDQ + 8)))
            BW_DS(0, c00, c01); BW_DS(1, c10, c11); BW_DS(2, c20, c21);
            BW_DS(3, c30, c31); BW_DS(4, c40, c41); BW_DS(5, c50, c51);
#undef BW_DS
        }
    }
}

BW_NOINLINE FLUX_TARGET_AVX2 static void bw_sdp(int d, int dp, const float *ks, const float *vr, const float *qt,
                                    const float *dot, int npan, const float *lse, const float *negd,
                                    float *pt, float *st, int nvalid) {
    if (d == 64)
        bw_sdp_impl(64, 64, ks, vr, qt, dot, npan, lse, negd, pt, st, nvalid);
    else
        bw_sdp_impl(d, dp, ks, vr, qt, dot, npan, lse, negd, pt, st, nvalid);
}

// acc[6 rows][dp] (stride dp) += Σ_{q < nq} a[r][q] (stride BW_LDQ) · b[q][0 ..< dp], b in column
// chunks (chunk c0 of width w = 16, or 8 for the last, at b + c0·BW_QB as [query][w]).
// Used for dV (a = P, b = dout) and dK (a = dS, b = q) of one 6-key tile.
BW_INLINE void bw_rank_update_impl(int dp, int nq, const float *a, const float *b, float *acc) {
    int c0 = 0;
    for (; c0 + 16 <= dp; c0 += 16) {
        float *o = acc + c0;
        __m256 c00 = _mm256_load_ps(o + 0 * (size_t)dp), c01 = _mm256_load_ps(o + 0 * (size_t)dp + 8);
        __m256 c10 = _mm256_load_ps(o + 1 * (size_t)dp), c11 = _mm256_load_ps(o + 1 * (size_t)dp + 8);
        __m256 c20 = _mm256_load_ps(o + 2 * (size_t)dp), c21 = _mm256_load_ps(o + 2 * (size_t)dp + 8);
        __m256 c30 = _mm256_load_ps(o + 3 * (size_t)dp), c31 = _mm256_load_ps(o + 3 * (size_t)dp + 8);
        __m256 c40 = _mm256_load_ps(o + 4 * (size_t)dp), c41 = _mm256_load_ps(o + 4 * (size_t)dp + 8);
        __m256 c50 = _mm256_load_ps(o + 5 * (size_t)dp), c51 = _mm256_load_ps(o + 5 * (size_t)dp + 8);
        const float *bb = b + (size_t)c0 * BW_QB;
        BW_UNROLL(4)
        for (int q = 0; q < nq; q++) {
            __m256 b0 = _mm256_load_ps(bb), b1 = _mm256_load_ps(bb + 8);
            __m256 x;
            x = _mm256_broadcast_ss(a + 0 * BW_LDQ + q); c00 = _mm256_fmadd_ps(x, b0, c00); c01 = _mm256_fmadd_ps(x, b1, c01);
            x = _mm256_broadcast_ss(a + 1 * BW_LDQ + q); c10 = _mm256_fmadd_ps(x, b0, c10); c11 = _mm256_fmadd_ps(x, b1, c11);
            x = _mm256_broadcast_ss(a + 2 * BW_LDQ + q); c20 = _mm256_fmadd_ps(x, b0, c20); c21 = _mm256_fmadd_ps(x, b1, c21);
            x = _mm256_broadcast_ss(a + 3 * BW_LDQ + q); c30 = _mm256_fmadd_ps(x, b0, c30); c31 = _mm256_fmadd_ps(x, b1, c31);
            x = _mm256_broadcast_ss(a + 4 * BW_LDQ + q); c40 = _mm256_fmadd_ps(x, b0, c40); c41 = _mm256_fmadd_ps(x, b1, c41);
            x = _mm256_broadcast_ss(a + 5 * BW_LDQ + q); c50 = _mm256_fmadd_ps(x, b0, c50); c51 = _mm256_fmadd_ps(x, b1, c51);
            bb += 16;
        }
        _mm256_store_ps(o + 0 * (size_t)dp, c00); _mm256_store_ps(o + 0 * (size_t)dp + 8, c01);
        _mm256_store_ps(o + 1 * (size_t)dp, c10); _mm256_store_ps(o + 1 * (size_t)dp + 8, c11);
        _mm256_store_ps(o + 2 * (size_t)dp, c20); _mm256_store_ps(o + 2 * (size_t)dp + 8, c21);
        _mm256_store_ps(o + 3 * (size_t)dp, c30); _mm256_store_ps(o + 3 * (size_t)dp + 8, c31);
        _mm256_store_ps(o + 4 * (size_t)dp, c40); _mm256_store_ps(o + 4 * (size_t)dp + 8, c41);
        _mm256_store_ps(o + 5 * (size_t)dp, c50); _mm256_store_ps(o + 5 * (size_t)dp + 8, c51);
    }
    if (c0 < dp) {  // final 8 columns
        float *o = acc + c0;
        __m256 c00 = _mm256_load_ps(o + 0 * (size_t)dp), c10 = _mm256_load_ps(o + 1 * (size_t)dp);
        __m256 c20 = _mm256_load_ps(o + 2 * (size_t)dp), c30 = _mm256_load_ps(o + 3 * (size_t)dp);
        __m256 c40 = _mm256_load_ps(o + 4 * (size_t)dp), c50 = _mm256_load_ps(o + 5 * (size_t)dp);
        const float *bb = b + (size_t)c0 * BW_QB;
        for (int q = 0; q < nq; q++) {
            __m256 b0 = _mm256_load_ps(bb);
            c00 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 0 * BW_LDQ + q), b0, c00);
            c10 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 1 * BW_LDQ + q), b0, c10);
            c20 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 2 * BW_LDQ + q), b0, c20);
            c30 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 3 * BW_LDQ + q), b0, c30);
            c40 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 4 * BW_LDQ + q), b0, c40);
            c50 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 5 * BW_LDQ + q), b0, c50);
            bb += 8;
        }
        _mm256_store_ps(o + 0 * (size_t)dp, c00); _mm256_store_ps(o + 1 * (size_t)dp, c10);
        _mm256_store_ps(o + 2 * (size_t)dp, c20); _mm256_store_ps(o + 3 * (size_t)dp, c30);
        _mm256_store_ps(o + 4 * (size_t)dp, c40); _mm256_store_ps(o + 5 * (size_t)dp, c50);
    }
}

BW_NOINLINE FLUX_TARGET_AVX2 static void bw_rank_update(int dp, int nq, const float *a, const float *b,
                                            float *acc) {
    if (dp == 64)
        bw_rank_update_impl(64, nq, a, b, acc);
    else
        bw_rank_update_impl(dp, nq, a, b, acc);
}

// dqa[6 queries][dp] (stride dp) += Σ_{j < nk} st[j][q0 + r] (stride BW_LDQ) · ks[j][0 ..< dp].
BW_INLINE void bw_dq_impl(int dp, int nk, const float *s, const float *ks, float *acc) {
    int c0 = 0;
    for (; c0 + 16 <= dp; c0 += 16) {
        float *o = acc + c0;
        __m256 c00 = _mm256_load_ps(o + 0 * (size_t)dp), c01 = _mm256_load_ps(o + 0 * (size_t)dp + 8);
        __m256 c10 = _mm256_load_ps(o + 1 * (size_t)dp), c11 = _mm256_load_ps(o + 1 * (size_t)dp + 8);
        __m256 c20 = _mm256_load_ps(o + 2 * (size_t)dp), c21 = _mm256_load_ps(o + 2 * (size_t)dp + 8);
        __m256 c30 = _mm256_load_ps(o + 3 * (size_t)dp), c31 = _mm256_load_ps(o + 3 * (size_t)dp + 8);
        __m256 c40 = _mm256_load_ps(o + 4 * (size_t)dp), c41 = _mm256_load_ps(o + 4 * (size_t)dp + 8);
        __m256 c50 = _mm256_load_ps(o + 5 * (size_t)dp), c51 = _mm256_load_ps(o + 5 * (size_t)dp + 8);
        const float *bb = ks + c0;
        const float *a = s;
        BW_UNROLL(4)
        for (int j = 0; j < nk; j++) {
            __m256 b0 = _mm256_load_ps(bb), b1 = _mm256_load_ps(bb + 8);
            __m256 x;
            x = _mm256_broadcast_ss(a + 0); c00 = _mm256_fmadd_ps(x, b0, c00); c01 = _mm256_fmadd_ps(x, b1, c01);
            x = _mm256_broadcast_ss(a + 1); c10 = _mm256_fmadd_ps(x, b0, c10); c11 = _mm256_fmadd_ps(x, b1, c11);
            x = _mm256_broadcast_ss(a + 2); c20 = _mm256_fmadd_ps(x, b0, c20); c21 = _mm256_fmadd_ps(x, b1, c21);
            x = _mm256_broadcast_ss(a + 3); c30 = _mm256_fmadd_ps(x, b0, c30); c31 = _mm256_fmadd_ps(x, b1, c31);
            x = _mm256_broadcast_ss(a + 4); c40 = _mm256_fmadd_ps(x, b0, c40); c41 = _mm256_fmadd_ps(x, b1, c41);
            x = _mm256_broadcast_ss(a + 5); c50 = _mm256_fmadd_ps(x, b0, c50); c51 = _mm256_fmadd_ps(x, b1, c51);
            bb += dp;
            a += BW_LDQ;
        }
        _mm256_store_ps(o + 0 * (size_t)dp, c00); _mm256_store_ps(o + 0 * (size_t)dp + 8, c01);
        _mm256_store_ps(o + 1 * (size_t)dp, c10); _mm256_store_ps(o + 1 * (size_t)dp + 8, c11);
        _mm256_store_ps(o + 2 * (size_t)dp, c20); _mm256_store_ps(o + 2 * (size_t)dp + 8, c21);
        _mm256_store_ps(o + 3 * (size_t)dp, c30); _mm256_store_ps(o + 3 * (size_t)dp + 8, c31);
        _mm256_store_ps(o + 4 * (size_t)dp, c40); _mm256_store_ps(o + 4 * (size_t)dp + 8, c41);
        _mm256_store_ps(o + 5 * (size_t)dp, c50); _mm256_store_ps(o + 5 * (size_t)dp + 8, c51);
    }
    if (c0 < dp) {
        float *o = acc + c0;
        __m256 c00 = _mm256_load_ps(o + 0 * (size_t)dp), c10 = _mm256_load_ps(o + 1 * (size_t)dp);
        __m256 c20 = _mm256_load_ps(o + 2 * (size_t)dp), c30 = _mm256_load_ps(o + 3 * (size_t)dp);
        __m256 c40 = _mm256_load_ps(o + 4 * (size_t)dp), c50 = _mm256_load_ps(o + 5 * (size_t)dp);
        const float *bb = ks + c0;
        const float *a = s;
        for (int j = 0; j < nk; j++) {
            __m256 b0 = _mm256_load_ps(bb);
            c00 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 0), b0, c00);
            c10 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 1), b0, c10);
            c20 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 2), b0, c20);
            c30 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 3), b0, c30);
            c40 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 4), b0, c40);
            c50 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 5), b0, c50);
            bb += dp;
            a += BW_LDQ;
        }
        _mm256_store_ps(o + 0 * (size_t)dp, c00); _mm256_store_ps(o + 1 * (size_t)dp, c10);
        _mm256_store_ps(o + 2 * (size_t)dp, c20); _mm256_store_ps(o + 3 * (size_t)dp, c30);
        _mm256_store_ps(o + 4 * (size_t)dp, c40); _mm256_store_ps(o + 5 * (size_t)dp, c50);
    }
}

BW_NOINLINE FLUX_TARGET_AVX2 static void bw_dq(int dp, int nk, const float *s, const float *ks, float *acc) {
    if (dp == 64)
        bw_dq_impl(64, nk, s, ks, acc);
    else
        bw_dq_impl(dp, nk, s, ks, acc);
}

FLUX_TARGET_AVX2 static inline float bw_hsum(__m256 x) {
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    return _mm_cvtss_f32(h);
}

// Asks for the cache lines of n floats from p (64-byte aligned).
FLUX_TARGET_AVX2 static inline void bw_prefetch(const float *p, int n) {
    for (int i = 0; i < n; i += 16) _mm_prefetch((const char *)(p + i), _MM_HINT_T0);
}

// Asks for the cache lines of one row of n floats at any alignment.
FLUX_TARGET_AVX2 static inline void bw_prefetch_row(const float *row, int n) {
    const char *b = (const char *)row, *e = (const char *)(row + n);
    for (const char *c = b; c < e; c += 64) _mm_prefetch(c, _MM_HINT_T0);
    _mm_prefetch(e - 1, _MM_HINT_T0);
}

// Packs rows [0, n) of src (stride ld, d floats) times `mul` into dst [npad][dp], zero padded.
FLUX_TARGET_AVX2 static void bw_pack_rows(int n, int npad, int d, int dp, const float *src, int ld,
                                          float mul, float *dst) {
    const __m256 m = _mm256_set1_ps(mul);
    for (int j = 0; j < npad; j++) {
        float *o = dst + (size_t)j * dp;
        if (j >= n) {
            for (int c = 0; c < dp; c += 8) _mm256_store_ps(o + c, _mm256_setzero_ps());
            continue;
        }
        const float *s = src + (size_t)j * ld;
        int c = 0;
        for (; c + 8 <= d; c += 8) _mm256_store_ps(o + c, _mm256_mul_ps(m, _mm256_loadu_ps(s + c)));
        for (; c < dp; c++) o[c] = c < d ? s[c] * mul : 0.0f;
    }
}

FLUX_TARGET_AVX2 static void attention_backward_avx2(
    int n_queries, int n_keys, int d, const float *q, int ldq, const float *k, int ldk,
    const float *v, int ldv, const float *out, int ldo, const float *lse, const float *dout,
    int lddo, float scale, float *dq, int lddq, float *dk, int lddk, float *dv, int lddv,
    float *scratch) {
    bw_layout L = bw_make_layout(n_keys, d);
    scratch = (float *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);  // contract: already aligned
    const int npad = (int)bw_round_up((size_t)n_keys, BW_MR);
    const int dp = (int)bw_round_up((size_t)d, 8);
    float *ks = scratch + L.ks, *vr = scratch + L.vr, *dka = scratch + L.dka, *dva = scratch + L.dva;
    float *qt = scratch + L.qt, *dot = scratch + L.dot, *qr = scratch + L.qr, *dor = scratch + L.dor;
    float *dqa = scratch + L.dqa, *pt = scratch + L.pt, *st = scratch + L.st;
    float *lsev = scratch + L.lse, *negd = scratch + L.negd;

    bw_pack_rows(n_keys, npad, d, dp, k, ldk, scale, ks);
    bw_pack_rows(n_keys, npad, d, dp, v, ldv, 1.0f, vr);
    memset(dka, 0, (size_t)npad * dp * sizeof(float));
    memset(dva, 0, (size_t)npad * dp * sizeof(float));

    for (int i0 = 0; i0 < n_queries; i0 += BW_QB) {
        const int nq = n_queries - i0 < BW_QB ? n_queries - i0 : BW_QB;
        const int nq6 = (int)bw_round_up((size_t)nq, BW_MR);
        const int npan = (nq6 + BW_NR - 1) / BW_NR;
        const int nqp = npan * BW_NR;  // <= BW_QB
        // q and dout as column chunks (chunk c0 of width w at c0·BW_QB, [query][w]) and as
        // transposed panels, lse and −D; padding queries get zeros, lse = +inf (P = 0), D = 0.
        for (int i = 0; i < nqp; i++) {
            const int valid = i < nq;
            const float *qrow = valid ? q + (size_t)(i0 + i) * ldq : NULL;
            const float *grow = valid ? dout + (size_t)(i0 + i) * lddo : NULL;
            for (int c0 = 0; c0 < dp; c0 += 16) {
                const int w = dp - c0 >= 16 ? 16 : 8;
                float *qo = qr + (size_t)c0 * BW_QB + (size_t)i * w;
                float *go = dor + (size_t)c0 * BW_QB + (size_t)i * w;
                if (valid && c0 + w <= d) {
                    _mm256_store_ps(qo, _mm256_loadu_ps(qrow + c0));
                    _mm256_store_ps(go, _mm256_loadu_ps(grow + c0));
                    if (w == 16) {
                        _mm256_store_ps(qo + 8, _mm256_loadu_ps(qrow + c0 + 8));
                        _mm256_store_ps(go + 8, _mm256_loadu_ps(grow + c0 + 8));
                    }
                } else {
                    for (int c = 0; c < w; c++) {
                        qo[c] = valid && c0 + c < d ? qrow[c0 + c] : 0.0f;
                        go[c] = valid && c0 + c < d ? grow[c0 + c] : 0.0f;
                    }
                }
            }
            float *qd = qt + (size_t)(i / BW_NR) * d * BW_NR + (i % BW_NR);
            float *gd = dot + (size_t)(i / BW_NR) * d * BW_NR + (i % BW_NR);
            if (valid) {
                const float *orow = out + (size_t)(i0 + i) * ldo;
                for (int c = 0; c < d; c++) {
                    qd[(size_t)c * BW_NR] = qrow[c];
                    gd[(size_t)c * BW_NR] = grow[c];
                }
                __m256 acc = _mm256_setzero_ps();
                int c = 0;
                for (; c + 8 <= d; c += 8)
                    acc = _mm256_fmadd_ps(_mm256_loadu_ps(grow + c), _mm256_loadu_ps(orow + c), acc);
                float dsum = bw_hsum(acc);
                for (; c < d; c++) dsum += grow[c] * orow[c];
                lsev[i] = lse[i0 + i];
                negd[i] = -dsum;
            } else {
                for (int c = 0; c < d; c++) {
                    qd[(size_t)c * BW_NR] = 0.0f;
                    gd[(size_t)c * BW_NR] = 0.0f;
                }
                lsev[i] = INFINITY;
                negd[i] = 0.0f;
            }
        }
        memset(dqa, 0, (size_t)nq6 * dp * sizeof(float));

        // The next super-block's q, dout and out rows (strided, probably not cached) are fetched a
        // few rows per key tile while this one computes.
        const int next0 = i0 + BW_QB;
        const int nnext = n_queries - next0 < BW_QB ? n_queries - next0 : BW_QB;
        const int rows_per_tile = nnext > 0 ? (nnext * BW_MR + npad - 1) / npad : 0;
        for (int j0 = 0; j0 < n_keys; j0 += BW_KB) {
            const int nk = n_keys - j0 < BW_KB ? n_keys - j0 : BW_KB;
            const int ntile = (nk + BW_MR - 1) / BW_MR;
            for (int t = 0; t < ntile; t++) {
                const int j = j0 + t * BW_MR;
                const int r0 = (j / BW_MR) * rows_per_tile;
                for (int r = r0; r < r0 + rows_per_tile && r < nnext; r++) {
                    bw_prefetch_row(q + (size_t)(next0 + r) * ldq, d);
                    bw_prefetch_row(dout + (size_t)(next0 + r) * lddo, d);
                    bw_prefetch_row(out + (size_t)(next0 + r) * ldo, d);
                }
                const int nvalid = n_keys - j < BW_MR ? n_keys - j : BW_MR;
                float *ptt = pt + (size_t)t * BW_MR * BW_LDQ, *stt = st + (size_t)t * BW_MR * BW_LDQ;
                // The per-key arrays (~4·n_keys·dp floats) are swept once per super-block and come
                // from L3: fetch this tile's dV/dK rows (used after the scores) and the next
                // tile's k/v rows now.
                bw_prefetch(dva + (size_t)j * dp, BW_MR * dp);
                bw_prefetch(dka + (size_t)j * dp, BW_MR * dp);
                if (j + BW_MR < npad) {
                    bw_prefetch(ks + (size_t)(j + BW_MR) * dp, BW_MR * dp);
                    bw_prefetch(vr + (size_t)(j + BW_MR) * dp, BW_MR * dp);
                }
                bw_sdp(d, dp, ks + (size_t)j * dp, vr + (size_t)j * dp, qt, dot, npan, lsev, negd,
                       ptt, stt, nvalid);
                bw_rank_update(dp, nq, ptt, dor, dva + (size_t)j * dp);
                bw_rank_update(dp, nq, stt, qr, dka + (size_t)j * dp);
            }
            for (int r0 = 0; r0 < nq6; r0 += BW_MR)
                bw_dq(dp, ntile * BW_MR, st + r0, ks + (size_t)j0 * dp, dqa + (size_t)r0 * dp);
        }

        for (int i = 0; i < nq; i++) {
            const float *src = dqa + (size_t)i * dp;
            float *dst = dq + (size_t)(i0 + i) * lddq;
            for (int c = 0; c < d; c++) dst[c] = src[c];
        }
    }

    const __m256 vscale = _mm256_set1_ps(scale);
    for (int j = 0; j < n_keys; j++) {
        const float *a = dka + (size_t)j * dp, *b = dva + (size_t)j * dp;
        float *x = dk + (size_t)j * lddk, *y = dv + (size_t)j * lddv;
        int c = 0;
        for (; c + 8 <= d; c += 8) {
            _mm256_storeu_ps(x + c, _mm256_fmadd_ps(vscale, _mm256_load_ps(a + c), _mm256_loadu_ps(x + c)));
            _mm256_storeu_ps(y + c, _mm256_add_ps(_mm256_load_ps(b + c), _mm256_loadu_ps(y + c)));
        }
        for (; c < d; c++) {
            x[c] += scale * a[c];
            y[c] += b[c];
        }
    }
}

#endif  // FLUX_HAVE_X86

// Caller notes:
//   - scratch: flux_attention_backward_scratch_floats(n_keys, head_dim) floats per concurrent
//     call (per thread), 64-byte aligned. Dominated by four [keys][round8(head_dim)] arrays
//     (packed scale·k, v and the dk, dv accumulators): ≈ 16·n_keys·round8(head_dim) bytes plus
//     ~200 KB at head_dim 64 (per-super-block buffers), e.g. 2.2 MB for n_keys 2049, 3.3 MB for
//     3137. Contents need not be initialised and are garbage afterwards.
//   - Each call packs all of k and v and adds into all of dk and dv (O(n_keys·head_dim)), so
//     give each call many query rows (a contiguous range per thread), ideally multiples of 96.
//   - dq may alias q or dout with the same leading dimension (each super-block of query rows is
//     packed before its dq rows are written). dk and dv must not overlap any input or dq.
void flux_attention_backward(int n_queries, int n_keys, int head_dim, const float *q, int ldq,
                             const float *k, int ldk, const float *v, int ldv, const float *out,
                             int ldo, const float *lse, const float *dout, int lddo, float scale,
                             float *dq, int lddq, float *dk, int lddk, float *dv, int lddv,
                             float *scratch) {
    if (n_queries <= 0 || head_dim <= 0) return;
    if (n_keys <= 0) {  // empty softmax: out = 0 does not depend on q
        for (int i = 0; i < n_queries; i++)
            for (int c = 0; c < head_dim; c++) dq[(size_t)i * lddq + c] = 0.0f;
        return;
    }
#if FLUX_HAVE_X86
    if (flux_dispatch_avx2()) {
        attention_backward_avx2(n_queries, n_keys, head_dim, q, ldq, k, ldk, v, ldv, out, ldo, lse,
                                dout, lddo, scale, dq, lddq, dk, lddk, dv, lddv, scratch);
        return;
    }
#endif
    bw_portable(n_queries, n_keys, head_dim, q, ldq, k, ldk, v, ldv, out, ldo, lse, dout, lddo,
                scale, dq, lddq, dk, lddk, dv, lddv, scratch);
}
