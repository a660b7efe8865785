// SPDX-License-Identifier: MIT
// AVX-512 kernels of the K-quant search (kquant.h). Scoring: 16 candidates a vector, one
// lane each, up to two vectors side by side in one pass over the sub-block's values; each lane
// performs the scalar reference's operations in its order (an IEEE division, the clamp as
// max/min with the same NaN rule, the 1.5 * 2^23 rounding, separate multiplies and adds: GCC
// in ISO C mode never fuses them), so every score is the reference's bit for bit. Coding: the
// same operations on 16 values a vector. Compiled with the AVX-512 flags and called only when
// cpuid reports AVX-512.
#if defined(__x86_64__)
#include <immintrin.h>

#include "tensor/kquant.h"

#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

// The running sums of one vector of 16 candidates.
typedef struct lane_sums {
    __m512 scale, min;
    __mmask16 divide; // lanes whose scale is not 0 (the others code every value as 0)
    __m512 err, q, qq;
    __m512d qx_lo, qx_hi; // sum_qx of lanes 0..7 and 8..15
} lane_sums;

static inline __attribute__((always_inline)) void lane_start(lane_sums *s,
                                                             const kquant_candidates *c, int first)
{
    int live = c->count - first;
    __mmask16 mask = (__mmask16)(live >= 16 ? 0xFFFF : (1u << live) - 1);
    s->scale = _mm512_maskz_loadu_ps(mask, c->scale + first);
    s->min = _mm512_maskz_loadu_ps(mask, c->min + first);
    // scale != 0.0f, true for NaN as in C (unordered or not equal).
    s->divide = _mm512_cmp_ps_mask(s->scale, _mm512_setzero_ps(), _CMP_NEQ_UQ);
    s->err = s->q = s->qq = _mm512_setzero_ps();
    s->qx_lo = s->qx_hi = _mm512_setzero_pd();
}

// One value x (broadcast, and as a double) into the lanes' sums.
static inline __attribute__((always_inline)) void lane_step(lane_sums *s, __m512 x, __m512d xd,
                                                            __m512 lo, __m512 hi, bool sums)
{
    const __m512 big = _mm512_set1_ps(12582912.0f);
    __m512 t = _mm512_maskz_div_ps(s->divide, _mm512_add_ps(x, s->min), s->scale);
    // round_clamp: v > lo ? v : lo, then v < hi ? v : hi (max/min return the second operand
    // when the first is NaN), then the round trip through 1.5 * 2^23.
    t = _mm512_min_ps(_mm512_max_ps(t, lo), hi);
    __m512 q = _mm512_sub_ps(_mm512_add_ps(t, big), big);
    __m512 e = _mm512_sub_ps(x, _mm512_sub_ps(_mm512_mul_ps(s->scale, q), s->min));
    s->err = _mm512_add_ps(s->err, _mm512_mul_ps(e, e));
    if (!sums)
        return;
    s->q = _mm512_add_ps(s->q, q);
    s->qq = _mm512_add_ps(s->qq, _mm512_mul_ps(q, q));
    __m512d q_lo = _mm512_cvtps_pd(_mm512_castps512_ps256(q));
    __m512d q_hi = _mm512_cvtps_pd(
        _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(q), 1)));
    s->qx_lo = _mm512_add_pd(s->qx_lo, _mm512_mul_pd(q_lo, xd));
    s->qx_hi = _mm512_add_pd(s->qx_hi, _mm512_mul_pd(q_hi, xd));
}

static inline __attribute__((always_inline)) void
lane_finish(const lane_sums *s, kquant_candidates *c, int first, bool sums)
{
    int live = c->count - first;
    __mmask16 mask = (__mmask16)(live >= 16 ? 0xFFFF : (1u << live) - 1);
    _mm512_mask_storeu_ps(c->err + first, mask, s->err);
    if (!sums)
        return;
    // The code sums are exact integers in float (below 2^24), so converting them is too.
    _mm512_mask_storeu_pd(c->sum_q + first, (__mmask8)mask,
                          _mm512_cvtps_pd(_mm512_castps512_ps256(s->q)));
    _mm512_mask_storeu_pd(
        c->sum_q + first + 8, (__mmask8)(mask >> 8),
        _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(s->q), 1))));
    _mm512_mask_storeu_pd(c->sum_qq + first, (__mmask8)mask,
                          _mm512_cvtps_pd(_mm512_castps512_ps256(s->qq)));
    _mm512_mask_storeu_pd(
        c->sum_qq + first + 8, (__mmask8)(mask >> 8),
        _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(s->qq), 1))));
    _mm512_mask_storeu_pd(c->sum_qx + first, (__mmask8)mask, s->qx_lo);
    _mm512_mask_storeu_pd(c->sum_qx + first + 8, (__mmask8)(mask >> 8), s->qx_hi);
}

// Scores candidates first..first+16*n_vec-1 (n_vec 1 or 2, a constant after inlining).
static inline __attribute__((always_inline)) void score_vectors(const float *x, int n, int lowest,
                                                                int highest, kquant_candidates *c,
                                                                int first, int n_vec, bool sums)
{
    const __m512 lo = _mm512_set1_ps((float)lowest), hi = _mm512_set1_ps((float)highest);
    lane_sums s[2];
#pragma GCC unroll 2
    for (int v = 0; v < n_vec; v++)
        lane_start(&s[v], c, first + 16 * v);
    for (int i = 0; i < n; i++) {
        __m512 xv = _mm512_set1_ps(x[i]);
        __m512d xd = _mm512_set1_pd((double)x[i]);
#pragma GCC unroll 2
        for (int v = 0; v < n_vec; v++)
            lane_step(&s[v], xv, xd, lo, hi, sums);
    }
#pragma GCC unroll 2
    for (int v = 0; v < n_vec; v++)
        lane_finish(&s[v], c, first + 16 * v, sums);
}

static void score_avx512(const float *x, int n, int lowest, int highest, kquant_candidates *c,
                         bool sums)
{
    int first = 0;
    for (; c->count - first > 16; first += 32) {
        if (sums)
            score_vectors(x, n, lowest, highest, c, first, 2, true);
        else
            score_vectors(x, n, lowest, highest, c, first, 2, false);
    }
    if (first < c->count) {
        if (sums)
            score_vectors(x, n, lowest, highest, c, first, 1, true);
        else
            score_vectors(x, n, lowest, highest, c, first, 1, false);
    }
}

// Codes 16 values at a time with the operations of lane_step.
static void codes_avx512(const float *x, int n, int lowest, int highest, float scale, float min,
                         uint8_t *idx)
{
    const __m512 lo = _mm512_set1_ps((float)lowest), hi = _mm512_set1_ps((float)highest);
    const __m512 big = _mm512_set1_ps(12582912.0f);
    const __m512 scale_v = _mm512_set1_ps(scale), min_v = _mm512_set1_ps(min);
    __mmask16 divide = scale != 0.0f ? 0xFFFF : 0;
    for (int i = 0; i + 16 <= n; i += 16) {
        __m512 xm = _mm512_add_ps(_mm512_loadu_ps(x + i), min_v);
        __m512 t = _mm512_min_ps(_mm512_max_ps(_mm512_maskz_div_ps(divide, xm, scale_v), lo), hi);
        __m512i q = _mm512_cvtps_epi32(_mm512_sub_ps(_mm512_add_ps(t, big), big));
        q = _mm512_sub_epi32(q, _mm512_set1_epi32(lowest));
        _mm_storeu_si128((__m128i *)(idx + i), _mm512_cvtepi32_epi8(q));
    }
}

const kquant_kernels tensor_kquant_avx512 = {score_avx512, codes_avx512};
#endif
