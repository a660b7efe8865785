// SPDX-License-Identifier: MIT
// AVX-512 (F/BW/DQ/VL) + VNNI dot products, compiled with the AVX-512 flags and chosen at
// run time only when cpuid reports those extensions. Legacy 32-value blocks are handled two
// to a 512-bit register, with VNNI's dpbusd doing the byte products; K-quant super-blocks go
// 64 values at a time, with dpwssd applying the sub-block scales to int16 pair sums. As in
// the AVX2 file, every kernel is written once over 1 or 4 activation rows so the x4 matmul
// kernels do exactly the arithmetic of the single dots.
#if defined(__x86_64__)
#include <immintrin.h>
#include <string.h>

#include "kernels/blocks.h"
#include "kernels/variants.h"
#include "tensor/quants.h"

#define ALWAYS_INLINE static inline __attribute__((always_inline))

ALWAYS_INLINE float half(uint16_t h)
{
    return _cvtsh_ss(h);
}

// Activation row k of a group (act rows are stride bytes apart).
ALWAYS_INLINE const void *act_row(const void *act, size_t stride, int k)
{
    return (const uint8_t *)act + (size_t)k * stride;
}

// lo in the low 256 bits, hi in the high ones.
ALWAYS_INLINE __m512i join256(__m256i lo, __m256i hi)
{
    return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

// lo in lanes 0..7, hi in lanes 8..15.
ALWAYS_INLINE __m512 join_scales(float lo, float hi)
{
    return _mm512_insertf32x8(_mm512_set1_ps(lo), _mm256_set1_ps(hi), 1);
}

// The 32 nibbles of 16 bytes in value order: low nibbles (values 0..15) then high ones.
ALWAYS_INLINE __m256i nibbles32(const uint8_t *qs)
{
    __m128i raw = _mm_loadu_si128((const __m128i *)qs);
    __m128i mask = _mm_set1_epi8(0x0F);
    return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(raw, 4), mask), _mm_and_si128(raw, mask));
}

// 16 in byte j where bit j of the little-endian 32-bit word at p is set, else 0.
ALWAYS_INLINE __m256i fifth_bits(const uint8_t *p)
{
    uint32_t word;
    memcpy(&word, p, 4);
    return _mm256_maskz_set1_epi8((__mmask32)word, 16);
}

// ---- weights x Q8_0: Q4_0, Q5_0, Q8_0, IQ4_NL ----

enum legacy_kind { KIND_Q4_0, KIND_Q5_0, KIND_Q8_0, KIND_IQ4_NL };

static const size_t legacy_sizes[] = {sizeof(block_q4_0), sizeof(block_q5_0), sizeof(block_q8_0),
                                      sizeof(block_iq4_nl)};

// The 32 signed codes of block b.
ALWAYS_INLINE __m256i legacy_codes(const void *w, int64_t b, enum legacy_kind kind)
{
    switch (kind) {
    case KIND_Q4_0:
        return _mm256_sub_epi8(nibbles32(((const block_q4_0 *)w)[b].qs), _mm256_set1_epi8(8));
    case KIND_Q5_0: {
        const block_q5_0 *blk = &((const block_q5_0 *)w)[b];
        __m256i q = _mm256_or_si256(nibbles32(blk->qs), fifth_bits(blk->qh));
        return _mm256_sub_epi8(q, _mm256_set1_epi8(16));
    }
    case KIND_Q8_0:
        return _mm256_loadu_si256((const __m256i *)((const block_q8_0 *)w)[b].qs);
    default: {
        const __m256i grid = _mm256_broadcastsi128_si256(
            _mm_loadu_si128((const __m128i *)tensor_iq4_nl_values));
        return _mm256_shuffle_epi8(grid, nibbles32(((const block_iq4_nl *)w)[b].qs));
    }
    }
}

// The 64 signed codes of blocks b and b + 1 (only b when `pair` is false: the upper half is
// zero). Q4_0 pairs unpack both blocks' nibbles at once and put the 128-bit lanes in value
// order (b lo, b hi, b+1 lo, b+1 hi) with one lane shuffle.
ALWAYS_INLINE __m512i legacy_codes2(const void *w, int64_t b, bool pair, enum legacy_kind kind)
{
    if (kind == KIND_Q4_0 && pair) {
        const block_q4_0 *x = (const block_q4_0 *)w + b;
        __m256i raw = _mm256_inserti128_si256(
            _mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)x[0].qs)),
            _mm_loadu_si128((const __m128i *)x[1].qs), 1);
        const __m256i low4 = _mm256_set1_epi8(0x0F);
        __m512i z = join256(_mm256_and_si256(raw, low4),
                            _mm256_and_si256(_mm256_srli_epi16(raw, 4), low4));
        z = _mm512_shuffle_i64x2(z, z, _MM_SHUFFLE(3, 1, 2, 0));
        return _mm512_sub_epi8(z, _mm512_set1_epi8(8));
    }
    __m256i x1 = pair ? legacy_codes(w, b + 1, kind) : _mm256_setzero_si256();
    return join256(legacy_codes(w, b, kind), x1);
}

// The half scales at p and p + stride (bytes) as floats in lanes 0 and 1.
ALWAYS_INLINE __m128 half_pair(const void *p, size_t stride)
{
    uint16_t lo, hi;
    memcpy(&lo, p, 2);
    memcpy(&hi, (const uint8_t *)p + stride, 2);
    return _mm_cvtph_ps(_mm_cvtsi32_si128((int)(lo | ((uint32_t)hi << 16))));
}

// Blocks b and b + 1 (only b when `pair` is false) against `rows` activation rows: |x| times
// sign(x) * a, with dpbusd; the two blocks' scale products are spread over their 8 lanes each.
ALWAYS_INLINE void legacy_pair(const void *w, const void *act, size_t stride, int64_t b,
                               bool pair, int rows, enum legacy_kind kind, __m512 *acc)
{
    const __m512i spread = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
    __m512i x = legacy_codes2(w, b, pair, kind);
    __m512i ax = _mm512_abs_epi8(x);
    __mmask64 neg = _mm512_movepi8_mask(x);
    size_t w_step = pair ? legacy_sizes[kind] : 0, a_step = pair ? sizeof(block_q8_0) : 0;
    __m128 dw = half_pair((const uint8_t *)w + (size_t)b * legacy_sizes[kind], w_step);
#pragma GCC unroll 16
    for (int k = 0; k < rows; k++) {
        const block_q8_0 *y = (const block_q8_0 *)act_row(act, stride, k) + b;
        __m256i a1 = pair ? _mm256_loadu_si256((const __m256i *)y[1].qs) : _mm256_setzero_si256();
        __m512i a = join256(_mm256_loadu_si256((const __m256i *)y[0].qs), a1);
        a = _mm512_mask_sub_epi8(a, neg, _mm512_setzero_si512(), a);
        __m512i p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), ax, a);
        __m128 d = _mm_mul_ps(dw, half_pair(&y->d, a_step));
        __m512 scale = _mm512_permutexvar_ps(spread, _mm512_castps128_ps512(d));
        acc[k] = _mm512_fmadd_ps(scale, _mm512_cvtepi32_ps(p), acc[k]);
    }
}

// The 8 half scales at p, p + stride, ..., p + 7 * stride as floats. Gathered with integer
// loads and shifts, which keep the vector pipes free for the products.
ALWAYS_INLINE __m256 half8(const void *p, size_t stride)
{
    uint64_t lo = 0, hi = 0;
    for (int i = 0; i < 4; i++) {
        uint16_t a, c;
        memcpy(&a, (const uint8_t *)p + (size_t)i * stride, 2);
        memcpy(&c, (const uint8_t *)p + (size_t)(i + 4) * stride, 2);
        lo |= (uint64_t)a << (16 * i);
        hi |= (uint64_t)c << (16 * i);
    }
    __m128i h = _mm_unpacklo_epi64(_mm_cvtsi64_si128((long long)lo),
                                   _mm_cvtsi64_si128((long long)hi));
    return _mm256_cvtph_ps(h);
}

// Blocks b .. b + 7 against `rows` activation rows: as legacy_pair, with the eight scale
// products of a row formed in one multiply and spread to each pair's lanes by a permute.
ALWAYS_INLINE void legacy_octet(const void *w, const void *act, size_t stride, int64_t b,
                                int rows, enum legacy_kind kind, __m512 *acc0, __m512 *acc1)
{
    const __m512i spread = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
    __m512i ax[4];
    __mmask64 neg[4];
#pragma GCC unroll 16
    for (int p = 0; p < 4; p++) {
        __m512i x = legacy_codes2(w, b + 2 * p, true, kind);
        ax[p] = _mm512_abs_epi8(x);
        neg[p] = _mm512_movepi8_mask(x);
    }
    __m256 dw = half8((const uint8_t *)w + (size_t)b * legacy_sizes[kind], legacy_sizes[kind]);
#pragma GCC unroll 16
    for (int k = 0; k < rows; k++) {
        const block_q8_0 *y = (const block_q8_0 *)act_row(act, stride, k) + b;
        __m512 d = _mm512_castps256_ps512(_mm256_mul_ps(dw, half8(&y->d, sizeof *y)));
#pragma GCC unroll 16
        for (int p = 0; p < 4; p++) {
            __m512i a = join256(_mm256_loadu_si256((const __m256i *)y[2 * p].qs),
                                _mm256_loadu_si256((const __m256i *)y[2 * p + 1].qs));
            a = _mm512_mask_sub_epi8(a, neg[p], _mm512_setzero_si512(), a);
            __m512i prod = _mm512_dpbusd_epi32(_mm512_setzero_si512(), ax[p], a);
            __m512i lanes = _mm512_add_epi32(spread, _mm512_set1_epi32(2 * p));
            __m512 scale = _mm512_permutexvar_ps(lanes, d);
            __m512 *acc = p % 2 ? &acc1[k] : &acc0[k];
            *acc = _mm512_fmadd_ps(scale, _mm512_cvtepi32_ps(prod), *acc);
        }
    }
}

// The dots of one weight row with `rows` activation rows: eight blocks per step, two per
// register, alternating between two accumulators.
ALWAYS_INLINE void legacy_rows(const void *w, const void *act, size_t stride, int64_t n,
                               int rows, enum legacy_kind kind, float *out)
{
    __m512 acc0[4], acc1[4];
    for (int k = 0; k < 4; k++)
        acc0[k] = acc1[k] = _mm512_setzero_ps();
    int64_t nb = n / 32, b = 0;
    for (; b + 7 < nb; b += 8)
        legacy_octet(w, act, stride, b, rows, kind, acc0, acc1);
    for (; b + 1 < nb; b += 2)
        legacy_pair(w, act, stride, b, true, rows, kind, acc0);
    if (b < nb)
        legacy_pair(w, act, stride, b, false, rows, kind, acc1);
#pragma GCC unroll 16
    for (int k = 0; k < rows; k++)
        out[k] = _mm512_reduce_add_ps(_mm512_add_ps(acc0[k], acc1[k]));
}

static float dot_q4_0_q8_0(const void *w, const void *a, int64_t n)
{
    float out;
    legacy_rows(w, a, 0, n, 1, KIND_Q4_0, &out);
    return out;
}

static void dot_q4_0_q8_0_x4(const void *w, const void *a, size_t stride, int64_t n, float out[4])
{
    legacy_rows(w, a, stride, n, 4, KIND_Q4_0, out);
}

static float dot_q5_0_q8_0(const void *w, const void *a, int64_t n)
{
    float out;
    legacy_rows(w, a, 0, n, 1, KIND_Q5_0, &out);
    return out;
}

static void dot_q5_0_q8_0_x4(const void *w, const void *a, size_t stride, int64_t n, float out[4])
{
    legacy_rows(w, a, stride, n, 4, KIND_Q5_0, out);
}

static float dot_q8_0_q8_0(const void *w, const void *a, int64_t n)
{
    float out;
    legacy_rows(w, a, 0, n, 1, KIND_Q8_0, &out);
    return out;
}

static void dot_q8_0_q8_0_x4(const void *w, const void *a, size_t stride, int64_t n, float out[4])
{
    legacy_rows(w, a, stride, n, 4, KIND_Q8_0, out);
}

static float dot_iq4_nl_q8_0(const void *w, const void *a, int64_t n)
{
    float out;
    legacy_rows(w, a, 0, n, 1, KIND_IQ4_NL, &out);
    return out;
}

static void dot_iq4_nl_q8_0_x4(const void *w, const void *a, size_t stride, int64_t n,
                               float out[4])
{
    legacy_rows(w, a, stride, n, 4, KIND_IQ4_NL, out);
}

// ---- offset weights x Q8_1: Q4_1, Q5_1 (x = d q + m, so the dot gains m * s) ----

// The 32 unsigned codes of Q4_1/Q5_1 block b (five: Q5_1), its d and m through d and m.
ALWAYS_INLINE __m256i offset_codes(const void *w, int64_t b, bool five, float *d, float *m)
{
    if (five) {
        const block_q5_1 *blk = &((const block_q5_1 *)w)[b];
        *d = half(blk->d), *m = half(blk->m);
        return _mm256_or_si256(nibbles32(blk->qs), fifth_bits(blk->qh));
    }
    const block_q4_1 *blk = &((const block_q4_1 *)w)[b];
    *d = half(blk->d), *m = half(blk->m);
    return nibbles32(blk->qs);
}

// The dots of one Q4_1/Q5_1 row with `rows` Q8_1 rows, two blocks per register by dpbusd,
// plus m * s per block in scalar float.
ALWAYS_INLINE void offset_rows(const void *w, const void *act, size_t stride, int64_t n,
                               int rows, bool five, float *out)
{
    __m512 acc[4];
    float mins[4] = {0};
    for (int k = 0; k < 4; k++)
        acc[k] = _mm512_setzero_ps();
    int64_t nb = n / 32;
    for (int64_t b = 0; b < nb; b += 2) {
        bool pair = b + 1 < nb;
        float d0, m0, d1 = 0.0f, m1 = 0.0f;
        __m256i q0 = offset_codes(w, b, five, &d0, &m0);
        __m256i q1 = pair ? offset_codes(w, b + 1, five, &d1, &m1) : _mm256_setzero_si256();
        __m512i q = join256(q0, q1);
#pragma GCC unroll 16
        for (int k = 0; k < rows; k++) {
            const block_q8_1 *y = (const block_q8_1 *)act_row(act, stride, k) + b;
            __m256i a1 = pair ? _mm256_loadu_si256((const __m256i *)y[1].qs)
                              : _mm256_setzero_si256();
            __m512i a = join256(_mm256_loadu_si256((const __m256i *)y[0].qs), a1);
            __m512i p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q, a);
            float s1 = pair ? d1 * half(y[1].d) : 0.0f;
            acc[k] = _mm512_fmadd_ps(join_scales(d0 * half(y[0].d), s1), _mm512_cvtepi32_ps(p),
                                     acc[k]);
            mins[k] += m0 * half(y[0].s);
            if (pair)
                mins[k] += m1 * half(y[1].s);
        }
    }
#pragma GCC unroll 16
    for (int k = 0; k < rows; k++)
        out[k] = _mm512_reduce_add_ps(acc[k]) + mins[k];
}

static float dot_q4_1_q8_1(const void *w, const void *a, int64_t n)
{
    float out;
    offset_rows(w, a, 0, n, 1, false, &out);
    return out;
}

static void dot_q4_1_q8_1_x4(const void *w, const void *a, size_t stride, int64_t n, float out[4])
{
    offset_rows(w, a, stride, n, 4, false, out);
}

static float dot_q5_1_q8_1(const void *w, const void *a, int64_t n)
{
    float out;
    offset_rows(w, a, 0, n, 1, true, &out);
    return out;
}

static void dot_q5_1_q8_1_x4(const void *w, const void *a, size_t stride, int64_t n, float out[4])
{
    offset_rows(w, a, stride, n, 4, true, out);
}

// ---- K-quants x Q8_K: shared pieces ----

// 32 int16 lanes: lanes 16g..16g+15 hold scales[first + g] (two sub-blocks of 32 values).
ALWAYS_INLINE __m512i scales_2x16(const int16_t *scales, int first)
{
    return join256(_mm256_set1_epi16(scales[first]), _mm256_set1_epi16(scales[first + 1]));
}

// 32 int16 lanes: lanes 16g..16g+15 hold lane first + g of sc (int16 scales in the low lanes).
ALWAYS_INLINE __m512i scales_2x16v(__m512i sc, int first)
{
    const __m512i step = _mm512_set_epi16(1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0,
                                          0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    return _mm512_permutexvar_epi16(_mm512_add_epi16(step, _mm512_set1_epi16((short)first)), sc);
}

// 32 int16 lanes: lane i holds sc16[first + i / 8] (four sub-blocks of 16 values), where
// sc16 holds 16 int16 scales in its low 256 bits.
ALWAYS_INLINE __m512i scales_4x8(__m512i sc16, int first)
{
    const __m512i step = _mm512_set_epi16(3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1,
                                          1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
    return _mm512_permutexvar_epi16(_mm512_add_epi16(step, _mm512_set1_epi16((short)first)),
                                    sc16);
}

// Adds d * d_a * isum (16 lanes) to acc and the 8 lanes of d_b * d_a * corr to acc_b.
ALWAYS_INLINE void k_finish(float d, float d_b, const block_q8_k *y, __m512i isum, __m256i corr,
                            __m512 *acc, __m256 *acc_b)
{
    *acc = _mm512_fmadd_ps(_mm512_set1_ps(d * y->d), _mm512_cvtepi32_ps(isum), *acc);
    *acc_b = _mm256_fmadd_ps(_mm256_set1_ps(d_b * y->d), _mm256_cvtepi32_ps(corr), *acc_b);
}

ALWAYS_INLINE __m256i load_bsums(const block_q8_k *y)
{
    return _mm256_loadu_si256((const __m256i *)y->bsums);
}

// 64 activation codes of row k, super-block b, from value offset.
ALWAYS_INLINE __m512i load_act64(const void *act, size_t stride, int k, int64_t b, int offset)
{
    const block_q8_k *y = (const block_q8_k *)act_row(act, stride, k) + b;
    return _mm512_loadu_si512((const void *)(y->qs + offset));
}

// The final sum of a row's two accumulators.
ALWAYS_INLINE float k_total(__m512 acc, __m256 acc_b)
{
    return _mm512_reduce_add_ps(acc) + _mm512_reduce_add_ps(_mm512_castps256_ps512(acc_b));
}

// ---- Q4_K and Q5_K x Q8_K ----

// The eight 6-bit scales of a Q4_K/Q5_K block as int16 lanes 0..7 of *sc, and the mins as
// 16 int16, each repeated for the two bsums of its sub-block.
ALWAYS_INLINE void k4_unpack(const uint8_t *packed, __m512i *sc, __m256i *mins16)
{
    uint64_t sc8, m8;
    kernel_k4_scales(packed, &sc8, &m8);
    *sc = _mm512_castsi128_si512(_mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)sc8)));
    __m128i mv = _mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)m8));
    *mins16 = _mm256_set_m128i(_mm_unpackhi_epi16(mv, mv), _mm_unpacklo_epi16(mv, mv));
}

// The 64 codes of chunk c (values 64c..64c+63) of a Q4_K/Q5_K block.
ALWAYS_INLINE __m512i k4_chunk(const uint8_t *qs, const uint8_t *qh, int c, bool five)
{
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    __m256i raw = _mm256_loadu_si256((const __m256i *)(qs + 32 * c));
    __m256i lo = _mm256_and_si256(raw, low4);
    __m256i hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), low4);
    if (five) {
        const __m256i one = _mm256_set1_epi8(1);
        __m256i bits = _mm256_loadu_si256((const __m256i *)qh);
        __m256i bit_lo = _mm256_and_si256(_mm256_srli_epi16(bits, 2 * c), one);
        __m256i bit_hi = _mm256_and_si256(_mm256_srli_epi16(bits, 2 * c + 1), one);
        lo = _mm256_or_si256(lo, _mm256_slli_epi16(bit_lo, 4));
        hi = _mm256_or_si256(hi, _mm256_slli_epi16(bit_hi, 4));
    }
    return join256(lo, hi);
}

// The dots of one Q4_K/Q5_K row (five: Q5_K) with `rows` Q8_K rows: 64 values per step,
// scales applied by dpwssd, mins through the bsums.
ALWAYS_INLINE void q4_k_rows(const void *w, const void *act, size_t stride, int64_t n, int rows,
                             bool five, float *out)
{
    __m512 acc[4];
    __m256 acc_m[4];
    for (int k = 0; k < 4; k++)
        acc[k] = _mm512_setzero_ps(), acc_m[k] = _mm256_setzero_ps();
    for (int64_t b = 0; b < n / QK_K; b++) {
        const uint8_t *qs, *qh = NULL, *scales;
        uint16_t dh, dminh;
        if (five) {
            const block_q5_k *blk = &((const block_q5_k *)w)[b];
            qs = blk->qs, qh = blk->qh, scales = blk->scales, dh = blk->d, dminh = blk->dmin;
        } else {
            const block_q4_k *blk = &((const block_q4_k *)w)[b];
            qs = blk->qs, scales = blk->scales, dh = blk->d, dminh = blk->dmin;
        }
        __m512i sc;
        __m256i mins16;
        k4_unpack(scales, &sc, &mins16);
        __m512i isum[4];
        for (int k = 0; k < 4; k++)
            isum[k] = _mm512_setzero_si512();
#pragma GCC unroll 16
        for (int c = 0; c < 4; c++) {
            __m512i q = k4_chunk(qs, qh, c, five);
            __m512i scv = scales_2x16v(sc, 2 * c);
#pragma GCC unroll 16
            for (int k = 0; k < rows; k++) {
                __m512i p = _mm512_maddubs_epi16(q, load_act64(act, stride, k, b, 64 * c));
                isum[k] = _mm512_add_epi32(isum[k], _mm512_madd_epi16(p, scv));
            }
        }
        float d = half(dh), dmin = half(dminh);
#pragma GCC unroll 16
        for (int k = 0; k < rows; k++) {
            const block_q8_k *y = (const block_q8_k *)act_row(act, stride, k) + b;
            __m256i msum = _mm256_madd_epi16(load_bsums(y), mins16);
            k_finish(d, -dmin, y, isum[k], msum, &acc[k], &acc_m[k]);
        }
    }
#pragma GCC unroll 16
    for (int k = 0; k < rows; k++)
        out[k] = k_total(acc[k], acc_m[k]);
}

static float dot_q4_k_q8_k(const void *w, const void *a, int64_t n)
{
    float out;
    q4_k_rows(w, a, 0, n, 1, false, &out);
    return out;
}

static void dot_q4_k_q8_k_x4(const void *w, const void *a, size_t stride, int64_t n, float out[4])
{
    q4_k_rows(w, a, stride, n, 4, false, out);
}

static float dot_q5_k_q8_k(const void *w, const void *a, int64_t n)
{
    float out;
    q4_k_rows(w, a, 0, n, 1, true, &out);
    return out;
}

static void dot_q5_k_q8_k_x4(const void *w, const void *a, size_t stride, int64_t n, float out[4])
{
    q4_k_rows(w, a, stride, n, 4, true, out);
}

// ---- Q6_K x Q8_K ----

// Codes 0..63 of half h as two registers: values 128h + 0..63 and 128h + 64..127.
ALWAYS_INLINE void q6_unpack(const block_q6_k *blk, int h, __m512i v[2])
{
    const __m256i low4 = _mm256_set1_epi8(0x0F), top2 = _mm256_set1_epi8(0x30);
    __m256i ql0 = _mm256_loadu_si256((const __m256i *)(blk->ql + 64 * h));
    __m256i ql1 = _mm256_loadu_si256((const __m256i *)(blk->ql + 64 * h + 32));
    __m256i qh = _mm256_loadu_si256((const __m256i *)(blk->qh + 32 * h));
    __m256i v0 = _mm256_or_si256(_mm256_and_si256(ql0, low4),
                                 _mm256_and_si256(_mm256_slli_epi16(qh, 4), top2));
    __m256i v1 = _mm256_or_si256(_mm256_and_si256(ql1, low4),
                                 _mm256_and_si256(_mm256_slli_epi16(qh, 2), top2));
    __m256i v2 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), low4),
                                 _mm256_and_si256(qh, top2));
    __m256i v3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), low4),
                                 _mm256_and_si256(_mm256_srli_epi16(qh, 2), top2));
    v[0] = join256(v0, v1);
    v[1] = join256(v2, v3);
}

// x = d * sc * (q - 32): sum sc * q * a by dpwssd, minus 32 * sum sc * bsums.
ALWAYS_INLINE void q6_k_rows(const void *w, const void *act, size_t stride, int64_t n, int rows,
                             float *out)
{
    __m512 acc[4];
    __m256 acc_c[4];
    for (int k = 0; k < 4; k++)
        acc[k] = _mm512_setzero_ps(), acc_c[k] = _mm256_setzero_ps();
    for (int64_t b = 0; b < n / QK_K; b++) {
        const block_q6_k *blk = &((const block_q6_k *)w)[b];
        __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)blk->scales));
        __m512i sc512 = _mm512_castsi256_si512(sc16);
        __m512i isum[4];
        for (int k = 0; k < 4; k++)
            isum[k] = _mm512_setzero_si512();
#pragma GCC unroll 16
        for (int h = 0; h < 2; h++) {
            __m512i v[2];
            q6_unpack(blk, h, v);
#pragma GCC unroll 16
            for (int g = 0; g < 2; g++) {
                __m512i scv = scales_4x8(sc512, 8 * h + 4 * g);
#pragma GCC unroll 16
                for (int k = 0; k < rows; k++) {
                    __m512i a = load_act64(act, stride, k, b, 128 * h + 64 * g);
                    isum[k] = _mm512_dpwssd_epi32(isum[k], _mm512_maddubs_epi16(v[g], a), scv);
                }
            }
        }
        float d = half(blk->d);
#pragma GCC unroll 16
        for (int k = 0; k < rows; k++) {
            const block_q8_k *y = (const block_q8_k *)act_row(act, stride, k) + b;
            __m256i corr = _mm256_madd_epi16(load_bsums(y), sc16);
            k_finish(d, -32.0f * d, y, isum[k], corr, &acc[k], &acc_c[k]);
        }
    }
#pragma GCC unroll 16
    for (int k = 0; k < rows; k++)
        out[k] = k_total(acc[k], acc_c[k]);
}

static float dot_q6_k_q8_k(const void *w, const void *a, int64_t n)
{
    float out;
    q6_k_rows(w, a, 0, n, 1, &out);
    return out;
}

static void dot_q6_k_q8_k_x4(const void *w, const void *a, size_t stride, int64_t n, float out[4])
{
    q6_k_rows(w, a, stride, n, 4, out);
}

// ---- Q2_K and Q3_K x Q8_K (sub-blocks of 16) ----

// The two-bit codes of values 128h + 32j .. 128h + 32j + 31 (raw = qs[32h .. 32h + 31]).
ALWAYS_INLINE __m256i crumbs32(__m256i raw, int j)
{
    return _mm256_and_si256(_mm256_srli_epi16(raw, 2 * j), _mm256_set1_epi8(3));
}

// isum[k] += sum over sub-blocks sc[s] * sum(code * a), codes[h][g] holding values
// 128h + 64g .. 128h + 64g + 63 (sub-blocks 8h + 4g .. 8h + 4g + 3).
ALWAYS_INLINE void k16_isum(const __m512i codes[2][2], __m512i sc512, const void *act,
                            size_t stride, int64_t b, int rows, __m512i *isum)
{
#pragma GCC unroll 16
    for (int h = 0; h < 2; h++) {
#pragma GCC unroll 16
        for (int g = 0; g < 2; g++) {
            __m512i scv = scales_4x8(sc512, 8 * h + 4 * g);
#pragma GCC unroll 16
            for (int k = 0; k < rows; k++) {
                __m512i a = load_act64(act, stride, k, b, 128 * h + 64 * g);
                isum[k] = _mm512_dpwssd_epi32(isum[k], _mm512_maddubs_epi16(codes[h][g], a), scv);
            }
        }
    }
}

// x = d*sc * q - dmin*m per sub-block of 16.
ALWAYS_INLINE void q2_k_rows(const void *w, const void *act, size_t stride, int64_t n, int rows,
                             float *out)
{
    __m512 acc[4];
    __m256 acc_m[4];
    for (int k = 0; k < 4; k++)
        acc[k] = _mm512_setzero_ps(), acc_m[k] = _mm256_setzero_ps();
    for (int64_t b = 0; b < n / QK_K; b++) {
        const block_q2_k *blk = &((const block_q2_k *)w)[b];
        __m128i packed = _mm_loadu_si128((const __m128i *)blk->scales);
        __m256i sc16 = _mm256_cvtepu8_epi16(_mm_and_si128(packed, _mm_set1_epi8(0x0F)));
        __m256i m16 = _mm256_cvtepu8_epi16(
            _mm_and_si128(_mm_srli_epi16(packed, 4), _mm_set1_epi8(0x0F)));
        __m512i codes[2][2];
#pragma GCC unroll 16
        for (int h = 0; h < 2; h++) {
            __m256i raw = _mm256_loadu_si256((const __m256i *)(blk->qs + 32 * h));
            codes[h][0] = join256(crumbs32(raw, 0), crumbs32(raw, 1));
            codes[h][1] = join256(crumbs32(raw, 2), crumbs32(raw, 3));
        }
        __m512i isum[4];
        for (int k = 0; k < 4; k++)
            isum[k] = _mm512_setzero_si512();
        k16_isum(codes, _mm512_castsi256_si512(sc16), act, stride, b, rows, isum);
        float d = half(blk->d), dmin = half(blk->dmin);
#pragma GCC unroll 16
        for (int k = 0; k < rows; k++) {
            const block_q8_k *y = (const block_q8_k *)act_row(act, stride, k) + b;
            __m256i msum = _mm256_madd_epi16(load_bsums(y), m16);
            k_finish(d, -dmin, y, isum[k], msum, &acc[k], &acc_m[k]);
        }
    }
#pragma GCC unroll 16
    for (int k = 0; k < rows; k++)
        out[k] = k_total(acc[k], acc_m[k]);
}

static float dot_q2_k_q8_k(const void *w, const void *a, int64_t n)
{
    float out;
    q2_k_rows(w, a, 0, n, 1, &out);
    return out;
}

static void dot_q2_k_q8_k_x4(const void *w, const void *a, size_t stride, int64_t n, float out[4])
{
    q2_k_rows(w, a, stride, n, 4, out);
}

// The three-bit codes (0..7) of values 128h + 32j .. + 31.
ALWAYS_INLINE __m256i q3_codes(__m256i raw, __m256i hm, int h, int j)
{
    __m256i high = _mm256_and_si256(_mm256_srli_epi16(hm, 4 * h + j), _mm256_set1_epi8(1));
    return _mm256_or_si256(crumbs32(raw, j), _mm256_slli_epi16(high, 2));
}

// x = d * (sc - 32) * (q - 4): codes 0..7 by maddubs, the -4 through the bsums.
ALWAYS_INLINE void q3_k_rows(const void *w, const void *act, size_t stride, int64_t n, int rows,
                             float *out)
{
    __m512 acc[4];
    __m256 acc_c[4];
    for (int k = 0; k < 4; k++)
        acc[k] = _mm512_setzero_ps(), acc_c[k] = _mm256_setzero_ps();
    for (int64_t b = 0; b < n / QK_K; b++) {
        const block_q3_k *blk = &((const block_q3_k *)w)[b];
        uint8_t codes6[16];
        kernel_k3_scales(blk->scales, codes6);
        __m256i sc16 = _mm256_sub_epi16(
            _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)codes6)), _mm256_set1_epi16(32));
        __m256i hm = _mm256_loadu_si256((const __m256i *)blk->hmask);
        __m512i codes[2][2];
#pragma GCC unroll 16
        for (int h = 0; h < 2; h++) {
            __m256i raw = _mm256_loadu_si256((const __m256i *)(blk->qs + 32 * h));
            codes[h][0] = join256(q3_codes(raw, hm, h, 0), q3_codes(raw, hm, h, 1));
            codes[h][1] = join256(q3_codes(raw, hm, h, 2), q3_codes(raw, hm, h, 3));
        }
        __m512i isum[4];
        for (int k = 0; k < 4; k++)
            isum[k] = _mm512_setzero_si512();
        k16_isum(codes, _mm512_castsi256_si512(sc16), act, stride, b, rows, isum);
        float d = half(blk->d);
#pragma GCC unroll 16
        for (int k = 0; k < rows; k++) {
            const block_q8_k *y = (const block_q8_k *)act_row(act, stride, k) + b;
            __m256i corr = _mm256_madd_epi16(load_bsums(y), sc16);
            k_finish(d, -4.0f * d, y, isum[k], corr, &acc[k], &acc_c[k]);
        }
    }
#pragma GCC unroll 16
    for (int k = 0; k < rows; k++)
        out[k] = k_total(acc[k], acc_c[k]);
}

static float dot_q3_k_q8_k(const void *w, const void *a, int64_t n)
{
    float out;
    q3_k_rows(w, a, 0, n, 1, &out);
    return out;
}

static void dot_q3_k_q8_k_x4(const void *w, const void *a, size_t stride, int64_t n, float out[4])
{
    q3_k_rows(w, a, stride, n, 4, out);
}

// ---- IQ4_XS x Q8_K: x = d * (ls - 32) * grid[q] per sub-block of 32 ----

// The dots of one IQ4_XS row with `rows` Q8_K rows: grid values by byte shuffle, |x| and
// sign(x) * a into maddubs, the sub-block scales by dpwssd.
ALWAYS_INLINE void iq4_xs_rows(const void *w, const void *act, size_t stride, int64_t n,
                               int rows, float *out)
{
    const __m256i grid = _mm256_broadcastsi128_si256(
        _mm_loadu_si128((const __m128i *)tensor_iq4_nl_values));
    __m512 acc[4];
    for (int k = 0; k < 4; k++)
        acc[k] = _mm512_setzero_ps();
    for (int64_t b = 0; b < n / QK_K; b++) {
        const block_iq4_xs *blk = &((const block_iq4_xs *)w)[b];
        int16_t ls[8];
#pragma GCC unroll 16
        for (int s = 0; s < 8; s++) {
            int low = (blk->scales_l[s / 2] >> (4 * (s % 2))) & 0x0F;
            int high = (blk->scales_h >> (2 * s)) & 3;
            ls[s] = (int16_t)((low | (high << 4)) - 32);
        }
        __m512i isum[4];
        for (int k = 0; k < 4; k++)
            isum[k] = _mm512_setzero_si512();
#pragma GCC unroll 16
        for (int p = 0; p < 4; p++) {
            __m512i x = join256(_mm256_shuffle_epi8(grid, nibbles32(blk->qs + 32 * p)),
                                _mm256_shuffle_epi8(grid, nibbles32(blk->qs + 32 * p + 16)));
            __m512i ax = _mm512_abs_epi8(x);
            __mmask64 neg = _mm512_movepi8_mask(x);
            __m512i scv = scales_2x16(ls, 2 * p);
#pragma GCC unroll 16
            for (int k = 0; k < rows; k++) {
                __m512i a = load_act64(act, stride, k, b, 64 * p);
                a = _mm512_mask_sub_epi8(a, neg, _mm512_setzero_si512(), a);
                isum[k] = _mm512_dpwssd_epi32(isum[k], _mm512_maddubs_epi16(ax, a), scv);
            }
        }
        float d = half(blk->d);
#pragma GCC unroll 16
        for (int k = 0; k < rows; k++) {
            const block_q8_k *y = (const block_q8_k *)act_row(act, stride, k) + b;
            acc[k] = _mm512_fmadd_ps(_mm512_set1_ps(d * y->d), _mm512_cvtepi32_ps(isum[k]), acc[k]);
        }
    }
#pragma GCC unroll 16
    for (int k = 0; k < rows; k++)
        out[k] = _mm512_reduce_add_ps(acc[k]);
}

static float dot_iq4_xs_q8_k(const void *w, const void *a, int64_t n)
{
    float out;
    iq4_xs_rows(w, a, 0, n, 1, &out);
    return out;
}

static void dot_iq4_xs_q8_k_x4(const void *w, const void *a, size_t stride, int64_t n,
                               float out[4])
{
    iq4_xs_rows(w, a, stride, n, 4, out);
}

// ---- plain float formats ----

enum float_kind { FMT_F32, FMT_F16, FMT_BF16 };

// 16 values from index i, the lanes outside `mask` zero.
ALWAYS_INLINE __m512 load16(const void *p, int64_t i, enum float_kind kind, __mmask16 mask)
{
    switch (kind) {
    case FMT_F32: return _mm512_maskz_loadu_ps(mask, (const float *)p + i);
    case FMT_F16:
        return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, (const uint16_t *)p + i));
    default: {
        __m256i raw = _mm256_maskz_loadu_epi16(mask, (const uint16_t *)p + i);
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(raw), 16));
    }
    }
}

// sum x[i] * y_k[i] for `rows` rows y_k (y_stride bytes apart), four accumulators per row.
ALWAYS_INLINE void float_rows(const void *x, enum float_kind kx, const void *y, size_t y_stride,
                              enum float_kind ky, int64_t n, int rows, float *out)
{
    __m512 acc[4][4];
#pragma GCC unroll 16
    for (int k = 0; k < 4; k++)
        for (int j = 0; j < 4; j++)
            acc[k][j] = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) {
#pragma GCC unroll 16
        for (int j = 0; j < 4; j++) {
            __m512 xv = load16(x, i + 16 * j, kx, 0xFFFF);
#pragma GCC unroll 16
            for (int k = 0; k < rows; k++) {
                __m512 yv = load16(act_row(y, y_stride, k), i + 16 * j, ky, 0xFFFF);
                acc[k][j] = _mm512_fmadd_ps(xv, yv, acc[k][j]);
            }
        }
    }
    for (; i < n; i += 16) {
        __mmask16 mask = n - i >= 16 ? 0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        __m512 xv = load16(x, i, kx, mask);
#pragma GCC unroll 16
        for (int k = 0; k < rows; k++) {
            __m512 yv = load16(act_row(y, y_stride, k), i, ky, mask);
            acc[k][0] = _mm512_fmadd_ps(xv, yv, acc[k][0]);
        }
    }
#pragma GCC unroll 16
    for (int k = 0; k < rows; k++) {
        __m512 s = _mm512_add_ps(_mm512_add_ps(acc[k][0], acc[k][1]),
                                 _mm512_add_ps(acc[k][2], acc[k][3]));
        out[k] = _mm512_reduce_add_ps(s);
    }
}

static float dot_f32_f32(const void *w, const void *a, int64_t n)
{
    float out;
    float_rows(w, FMT_F32, a, 0, FMT_F32, n, 1, &out);
    return out;
}

static void dot_f32_f32_x4(const void *w, const void *a, size_t stride, int64_t n, float out[4])
{
    float_rows(w, FMT_F32, a, stride, FMT_F32, n, 4, out);
}

static float dot_bf16_bf16(const void *w, const void *a, int64_t n)
{
    float out;
    float_rows(w, FMT_BF16, a, 0, FMT_BF16, n, 1, &out);
    return out;
}

static void dot_bf16_bf16_x4(const void *w, const void *a, size_t stride, int64_t n, float out[4])
{
    float_rows(w, FMT_BF16, a, stride, FMT_BF16, n, 4, out);
}

static float helper_dot_f32(const float *a, const float *b, int64_t n)
{
    float out;
    float_rows(a, FMT_F32, b, 0, FMT_F32, n, 1, &out);
    return out;
}

static float helper_dot_f32_f16(const float *a, const uint16_t *b, int64_t n)
{
    float out;
    float_rows(a, FMT_F32, b, 0, FMT_F16, n, 1, &out);
    return out;
}

// y += a * x for x in format kind, 16 lanes at a time, the tail masked.
ALWAYS_INLINE void float_axpy(float *y, float a, const void *x, enum float_kind kind, int64_t n)
{
    __m512 va = _mm512_set1_ps(a);
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 mask = n - i >= 16 ? 0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        __m512 yv = _mm512_maskz_loadu_ps(mask, y + i);
        _mm512_mask_storeu_ps(y + i, mask, _mm512_fmadd_ps(va, load16(x, i, kind, mask), yv));
    }
}

static void helper_axpy_f32(float *y, float a, const float *x, int64_t n)
{
    float_axpy(y, a, x, FMT_F32, n);
}

static void helper_axpy_f16(float *y, float a, const uint16_t *x, int64_t n)
{
    float_axpy(y, a, x, FMT_F16, n);
}

const kernel_type_ops kernel_avx512_type_ops[TENSOR_TYPE_COUNT] = {
    [TENSOR_TYPE_F32] = {dot_f32_f32, dot_f32_f32_x4},
    // No F16 entry: the AVX2 kernels stand in. The 16-lane vcvtph2ps runs at half rate on
    // Zen 4, which made 512-bit F16 dots slower than 256-bit ones there (bench_kernels).
    [TENSOR_TYPE_BF16] = {dot_bf16_bf16, dot_bf16_bf16_x4},
    [TENSOR_TYPE_Q4_0] = {dot_q4_0_q8_0, dot_q4_0_q8_0_x4},
    [TENSOR_TYPE_Q4_1] = {dot_q4_1_q8_1, dot_q4_1_q8_1_x4},
    [TENSOR_TYPE_Q5_0] = {dot_q5_0_q8_0, dot_q5_0_q8_0_x4},
    [TENSOR_TYPE_Q5_1] = {dot_q5_1_q8_1, dot_q5_1_q8_1_x4},
    [TENSOR_TYPE_Q8_0] = {dot_q8_0_q8_0, dot_q8_0_q8_0_x4},
    [TENSOR_TYPE_Q2_K] = {dot_q2_k_q8_k, dot_q2_k_q8_k_x4},
    [TENSOR_TYPE_Q3_K] = {dot_q3_k_q8_k, dot_q3_k_q8_k_x4},
    [TENSOR_TYPE_Q4_K] = {dot_q4_k_q8_k, dot_q4_k_q8_k_x4},
    [TENSOR_TYPE_Q5_K] = {dot_q5_k_q8_k, dot_q5_k_q8_k_x4},
    [TENSOR_TYPE_Q6_K] = {dot_q6_k_q8_k, dot_q6_k_q8_k_x4},
    [TENSOR_TYPE_IQ4_NL] = {dot_iq4_nl_q8_0, dot_iq4_nl_q8_0_x4},
    [TENSOR_TYPE_IQ4_XS] = {dot_iq4_xs_q8_k, dot_iq4_xs_q8_k_x4},
};

const kernel_float_ops kernel_avx512_float_ops = {
    .dot_f32 = helper_dot_f32,
    .dot_f32_f16 = helper_dot_f32_f16,
    .axpy_f32 = helper_axpy_f32,
    .axpy_f16 = helper_axpy_f16,
};
#endif
