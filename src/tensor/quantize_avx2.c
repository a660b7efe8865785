// SPDX-License-Identifier: MIT
// AVX2 kernels of the K-quant search (kquant.h). Scoring: 8 candidates a vector, one lane
// each, two vectors side by side in one pass over the sub-block's values; each lane performs
// the scalar reference's operations in its order (an IEEE division, the clamp as max/min with
// the same NaN rule, the 1.5 * 2^23 rounding, separate multiplies and adds: GCC in ISO C mode
// never fuses them), so every score is the reference's bit for bit. Coding: the same
// operations on 8 values a vector. Compiled with -mavx2 -mfma -mf16c and called only when
// cpuid reports AVX2.
#if defined(__x86_64__)
#include <immintrin.h>

#include "tensor/kquant.h"

#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

// The running sums of one vector of 8 candidates.
typedef struct lane_sums {
    __m256 scale, min;
    __m256 divide; // all ones in lanes whose scale is not 0 (the others code every value as 0)
    __m256 err, q, qq;
    __m256d qx_lo, qx_hi; // sum_qx of lanes 0..3 and 4..7
} lane_sums;

#define INLINE static inline __attribute__((always_inline))

// All ones in the lanes below live (0..8).
INLINE __m256i live_mask(int live)
{
    const __m256i index = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(live), index);
}

INLINE void lane_start(lane_sums *s, const kquant_candidates *c, int first)
{
    __m256i mask = live_mask(c->count - first);
    s->scale = _mm256_maskload_ps(c->scale + first, mask);
    s->min = _mm256_maskload_ps(c->min + first, mask);
    // scale != 0.0f, true for NaN as in C (unordered or not equal).
    s->divide = _mm256_cmp_ps(s->scale, _mm256_setzero_ps(), _CMP_NEQ_UQ);
    s->err = s->q = s->qq = _mm256_setzero_ps();
    s->qx_lo = s->qx_hi = _mm256_setzero_pd();
}

// One value x (broadcast, and as a double) into the lanes' sums.
INLINE void lane_step(lane_sums *s, __m256 x, __m256d xd, __m256 lo, __m256 hi, bool sums)
{
    const __m256 big = _mm256_set1_ps(12582912.0f);
    // Lanes with scale 0 take t = +0 (the division's result masked off).
    __m256 t = _mm256_and_ps(_mm256_div_ps(_mm256_add_ps(x, s->min), s->scale), s->divide);
    // round_clamp: v > lo ? v : lo, then v < hi ? v : hi (max/min return the second operand
    // when the first is NaN), then the round trip through 1.5 * 2^23.
    t = _mm256_min_ps(_mm256_max_ps(t, lo), hi);
    __m256 q = _mm256_sub_ps(_mm256_add_ps(t, big), big);
    __m256 e = _mm256_sub_ps(x, _mm256_sub_ps(_mm256_mul_ps(s->scale, q), s->min));
    s->err = _mm256_add_ps(s->err, _mm256_mul_ps(e, e));
    if (!sums)
        return;
    s->q = _mm256_add_ps(s->q, q);
    s->qq = _mm256_add_ps(s->qq, _mm256_mul_ps(q, q));
    __m256d q_lo = _mm256_cvtps_pd(_mm256_castps256_ps128(q));
    __m256d q_hi = _mm256_cvtps_pd(_mm256_extractf128_ps(q, 1));
    s->qx_lo = _mm256_add_pd(s->qx_lo, _mm256_mul_pd(q_lo, xd));
    s->qx_hi = _mm256_add_pd(s->qx_hi, _mm256_mul_pd(q_hi, xd));
}

// Stores 8 float lanes (exact integers below 2^24) as doubles, the lanes below live only.
INLINE void store_as_doubles(double *dst, __m256 v, int live)
{
    __m256i mask = live_mask(live);
    __m256i mask_lo = _mm256_cvtepi32_epi64(_mm256_castsi256_si128(mask));
    __m256i mask_hi = _mm256_cvtepi32_epi64(_mm256_extracti128_si256(mask, 1));
    _mm256_maskstore_pd(dst, mask_lo, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
    _mm256_maskstore_pd(dst + 4, mask_hi, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
}

INLINE void lane_finish(const lane_sums *s, kquant_candidates *c, int first, bool sums)
{
    int live = c->count - first;
    __m256i mask = live_mask(live);
    _mm256_maskstore_ps(c->err + first, mask, s->err);
    if (!sums)
        return;
    store_as_doubles(c->sum_q + first, s->q, live);
    store_as_doubles(c->sum_qq + first, s->qq, live);
    __m256i mask_lo = _mm256_cvtepi32_epi64(_mm256_castsi256_si128(mask));
    __m256i mask_hi = _mm256_cvtepi32_epi64(_mm256_extracti128_si256(mask, 1));
    _mm256_maskstore_pd(c->sum_qx + first, mask_lo, s->qx_lo);
    _mm256_maskstore_pd(c->sum_qx + first + 4, mask_hi, s->qx_hi);
}

// Scores candidates first..first+8*n_vec-1 (n_vec 1 or 2, a constant after inlining).
INLINE void score_vectors(const float *x, int n, int lowest, int highest, kquant_candidates *c,
                          int first, int n_vec, bool sums)
{
    const __m256 lo = _mm256_set1_ps((float)lowest), hi = _mm256_set1_ps((float)highest);
    lane_sums s[2];
#pragma GCC unroll 2
    for (int v = 0; v < n_vec; v++)
        lane_start(&s[v], c, first + 8 * v);
    for (int i = 0; i < n; i++) {
        __m256 xv = _mm256_set1_ps(x[i]);
        __m256d xd = _mm256_set1_pd((double)x[i]);
#pragma GCC unroll 2
        for (int v = 0; v < n_vec; v++)
            lane_step(&s[v], xv, xd, lo, hi, sums);
    }
#pragma GCC unroll 2
    for (int v = 0; v < n_vec; v++)
        lane_finish(&s[v], c, first + 8 * v, sums);
}

static void score_avx2(const float *x, int n, int lowest, int highest, kquant_candidates *c,
                       bool sums)
{
    int first = 0;
    for (; c->count - first > 8; first += 16) {
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
static void codes_avx2(const float *x, int n, int lowest, int highest, float scale, float min,
                       uint8_t *idx)
{
    const __m256 lo = _mm256_set1_ps((float)lowest), hi = _mm256_set1_ps((float)highest);
    const __m256 big = _mm256_set1_ps(12582912.0f);
    const __m256 scale_v = _mm256_set1_ps(scale), min_v = _mm256_set1_ps(min);
    const __m256 divide = _mm256_castsi256_ps(_mm256_set1_epi32(scale != 0.0f ? -1 : 0));
    const __m256i offset = _mm256_set1_epi32(lowest);
    for (int i = 0; i + 16 <= n; i += 16) {
        __m256i q[2];
        for (int h = 0; h < 2; h++) {
            __m256 xm = _mm256_add_ps(_mm256_loadu_ps(x + i + 8 * h), min_v);
            __m256 t = _mm256_and_ps(_mm256_div_ps(xm, scale_v), divide);
            t = _mm256_min_ps(_mm256_max_ps(t, lo), hi);
            q[h] = _mm256_sub_epi32(_mm256_cvtps_epi32(_mm256_sub_ps(_mm256_add_ps(t, big), big)),
                                    offset);
        }
        // Codes fit a byte: pack to 16-bit then 8-bit lanes and undo the packs' lane interleave.
        __m256i words = _mm256_permute4x64_epi64(_mm256_packs_epi32(q[0], q[1]), 0xD8);
        __m128i bytes = _mm_packus_epi16(_mm256_castsi256_si128(words),
                                         _mm256_extracti128_si256(words, 1));
        _mm_storeu_si128((__m128i *)(idx + i), bytes);
    }
}

const kquant_kernels tensor_kquant_avx2 = {score_avx2, codes_avx2};
#endif
