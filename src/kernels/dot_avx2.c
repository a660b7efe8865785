// SPDX-License-Identifier: MIT
// AVX2 + FMA + F16C dot products (compiled with -mavx2 -mfma -mf16c; chosen at run time
// only when cpuid reports them). Integer parts use the classic AVX2 idiom: bytes multiplied
// by _mm256_maddubs_epi16 (unsigned x signed, pairs summed to int16, never saturating for
// these code ranges) and widened with _mm256_madd_epi16; the block scales are applied in float
// with FMA. Each kernel is written once over "rows" activation rows (1 or 4, a constant after
// inlining), so the x4 matmul kernels do exactly the arithmetic of the single dots.
#if defined(__x86_64__)
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "kernels/blocks.h"
#include "kernels/variants.h"
#include "tensor/quants.h"

#define ALWAYS_INLINE static inline __attribute__((always_inline))

ALWAYS_INLINE float half(uint16_t h) { return _cvtsh_ss(h); }

// The sum of the 8 lanes.
ALWAYS_INLINE float hsum_ps(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// Activation row k of a group (act rows are act_stride bytes apart).
ALWAYS_INLINE const void *act_row(const void *act, size_t stride, int k)
{
    return (const uint8_t *)act + (size_t)k * stride;
}

// The 32 nibbles of 16 bytes in value order: low nibbles (values 0..15) then high ones.
ALWAYS_INLINE __m256i nibbles32(const uint8_t *qs)
{
    __m128i raw = _mm_loadu_si128((const __m128i *)qs);
    __m128i mask = _mm_set1_epi8(0x0F);
    __m128i lo = _mm_and_si128(raw, mask);
    __m128i hi = _mm_and_si128(_mm_srli_epi16(raw, 4), mask);
    return _mm256_set_m128i(hi, lo);
}

// 0xFF in byte j where bit j of the 32-bit little-endian word at p is set.
ALWAYS_INLINE __m256i bits_to_bytes(const uint8_t *p)
{
    uint32_t word;
    memcpy(&word, p, 4);
    const __m256i spread = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2,
                                            2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    __m256i bytes = _mm256_shuffle_epi8(_mm256_set1_epi32((int)word), spread);
    return _mm256_cmpeq_epi8(_mm256_and_si256(bytes, bit), bit);
}

// Sums of products of unsigned bytes u and signed bytes s, four per 32-bit lane.
ALWAYS_INLINE __m256i dot_u8_i8(__m256i u, __m256i s)
{
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

// ---- weights x Q8_0: Q4_0, Q5_0, Q8_0, IQ4_NL, MXFP4 ----

enum legacy_kind { KIND_Q4_0, KIND_Q5_0, KIND_Q8_0, KIND_IQ4_NL, KIND_MXFP4 };

// The 32 signed weight codes of block b (the scale is applied separately).
ALWAYS_INLINE __m256i legacy_codes(const void *w, int64_t b, enum legacy_kind kind)
{
    switch (kind) {
    case KIND_Q4_0:
        return _mm256_sub_epi8(nibbles32(((const block_q4_0 *)w)[b].qs), _mm256_set1_epi8(8));
    case KIND_Q5_0: {
        const block_q5_0 *blk = &((const block_q5_0 *)w)[b];
        __m256i fifth = _mm256_and_si256(bits_to_bytes(blk->qh), _mm256_set1_epi8(16));
        return _mm256_sub_epi8(_mm256_or_si256(nibbles32(blk->qs), fifth), _mm256_set1_epi8(16));
    }
    case KIND_Q8_0: return _mm256_loadu_si256((const __m256i *)((const block_q8_0 *)w)[b].qs);
    case KIND_MXFP4: {
        const __m256i grid = _mm256_broadcastsi128_si256(
            _mm_loadu_si128((const __m128i *)tensor_mxfp4_values));
        return _mm256_shuffle_epi8(grid, nibbles32(((const block_mxfp4 *)w)[b].qs));
    }
    default: {
        const __m256i grid = _mm256_broadcastsi128_si256(
            _mm_loadu_si128((const __m128i *)tensor_iq4_nl_values));
        return _mm256_shuffle_epi8(grid, nibbles32(((const block_iq4_nl *)w)[b].qs));
    }
    }
}

// The scale d of block b: the first field of every one of these block types, a half float
// but for MXFP4's exponent byte.
ALWAYS_INLINE float legacy_scale(const void *w, int64_t b, enum legacy_kind kind)
{
    static const size_t sizes[] = {sizeof(block_q4_0), sizeof(block_q5_0), sizeof(block_q8_0),
                                   sizeof(block_iq4_nl)};
    if (kind == KIND_MXFP4)
        return tensor_mxfp4_scale(((const block_mxfp4 *)w)[b].e);
    uint16_t d;
    memcpy(&d, (const uint8_t *)w + (size_t)b * sizes[kind], 2);
    return half(d);
}

// One block against `rows` activation rows: signed codes x via |x| and sign(a, x).
ALWAYS_INLINE void legacy_block(const void *w, const void *act, size_t stride, int64_t b, int rows,
                                enum legacy_kind kind, __m256 *acc)
{
    __m256i x = legacy_codes(w, b, kind);
    __m256i ax = _mm256_sign_epi8(x, x);
    float dx = legacy_scale(w, b, kind);
#pragma GCC unroll 16
    for (int k = 0; k < rows; k++) {
        const block_q8_0 *y = (const block_q8_0 *)act_row(act, stride, k) + b;
        __m256i a = _mm256_loadu_si256((const __m256i *)y->qs);
        __m256 p = _mm256_cvtepi32_ps(dot_u8_i8(ax, _mm256_sign_epi8(a, x)));
        acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(dx * half(y->d)), p, acc[k]);
    }
}

// The dots of one weight row with `rows` activation rows; blocks alternate between two
// accumulators to hide the FMA latency.
ALWAYS_INLINE void legacy_rows(const void *w, const void *act, size_t stride, int64_t n, int rows,
                               enum legacy_kind kind, float *out)
{
    __m256 acc0[4], acc1[4];
    for (int k = 0; k < 4; k++)
        acc0[k] = acc1[k] = _mm256_setzero_ps();
    int64_t nb = n / 32, b = 0;
    for (; b + 1 < nb; b += 2) {
        legacy_block(w, act, stride, b, rows, kind, acc0);
        legacy_block(w, act, stride, b + 1, rows, kind, acc1);
    }
    if (b < nb)
        legacy_block(w, act, stride, b, rows, kind, acc0);
#pragma GCC unroll 16
    for (int k = 0; k < rows; k++)
        out[k] = hsum_ps(_mm256_add_ps(acc0[k], acc1[k]));
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

static void dot_iq4_nl_q8_0_x4(const void *w, const void *a, size_t stride, int64_t n, float out[4])
{
    legacy_rows(w, a, stride, n, 4, KIND_IQ4_NL, out);
}

static float dot_mxfp4_q8_0(const void *w, const void *a, int64_t n)
{
    float out;
    legacy_rows(w, a, 0, n, 1, KIND_MXFP4, &out);
    return out;
}

static void dot_mxfp4_q8_0_x4(const void *w, const void *a, size_t stride, int64_t n, float out[4])
{
    legacy_rows(w, a, stride, n, 4, KIND_MXFP4, out);
}

// ---- Q4_Z x Q8_0: x = d * (q - z), z the block's zero point ----

// The dots of one Q4_Z row with `rows` Q8_0 rows: sum (q - z) * a as sum q * a (unsigned
// codes by maddubs) minus z times the activations' sums (maddubs by ones, then madd by z:
// no int16 product of z can overflow), exact in int32 per block; blocks alternate between
// two accumulators as in legacy_rows.
ALWAYS_INLINE void q4_z_block(const void *w, const void *act, size_t stride, int64_t b, int rows,
                              __m256 *acc)
{
    const block_q4_z *blk = &((const block_q4_z *)w)[b];
    __m256i q = nibbles32(blk->qs);
    __m256i z = _mm256_set1_epi16(blk->z);
    float dx = half(blk->d);
#pragma GCC unroll 16
    for (int k = 0; k < rows; k++) {
        const block_q8_0 *y = (const block_q8_0 *)act_row(act, stride, k) + b;
        __m256i a = _mm256_loadu_si256((const __m256i *)y->qs);
        __m256i zsum = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), a), z);
        __m256i p = _mm256_sub_epi32(dot_u8_i8(q, a), zsum);
        acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(dx * half(y->d)), _mm256_cvtepi32_ps(p), acc[k]);
    }
}

ALWAYS_INLINE void q4_z_rows(const void *w, const void *act, size_t stride, int64_t n, int rows,
                             float *out)
{
    __m256 acc0[4], acc1[4];
    for (int k = 0; k < 4; k++)
        acc0[k] = acc1[k] = _mm256_setzero_ps();
    int64_t nb = n / QK4_Z, b = 0;
    for (; b + 1 < nb; b += 2) {
        q4_z_block(w, act, stride, b, rows, acc0);
        q4_z_block(w, act, stride, b + 1, rows, acc1);
    }
    if (b < nb)
        q4_z_block(w, act, stride, b, rows, acc0);
#pragma GCC unroll 16
    for (int k = 0; k < rows; k++)
        out[k] = hsum_ps(_mm256_add_ps(acc0[k], acc1[k]));
}

static float dot_q4_z_q8_0(const void *w, const void *a, int64_t n)
{
    float out;
    q4_z_rows(w, a, 0, n, 1, &out);
    return out;
}

static void dot_q4_z_q8_0_x4(const void *w, const void *a, size_t stride, int64_t n, float out[4])
{
    q4_z_rows(w, a, stride, n, 4, out);
}

// ---- offset weights x Q8_1: Q4_1, Q5_1 (x = d q + m, so the dot gains m * s) ----

// The dots of one Q4_1/Q5_1 row with `rows` Q8_1 rows: unsigned codes by maddubs, plus
// m * s per block in scalar float.
ALWAYS_INLINE void offset_rows(const void *w, const void *act, size_t stride, int64_t n, int rows,
                               bool five, float *out)
{
    __m256 acc[4];
    float mins[4] = {0};
    for (int k = 0; k < 4; k++)
        acc[k] = _mm256_setzero_ps();
    for (int64_t b = 0; b < n / 32; b++) {
        __m256i q;
        uint16_t dh, mh;
        if (five) {
            const block_q5_1 *blk = &((const block_q5_1 *)w)[b];
            __m256i fifth = _mm256_and_si256(bits_to_bytes(blk->qh), _mm256_set1_epi8(16));
            q = _mm256_or_si256(nibbles32(blk->qs), fifth);
            dh = blk->d, mh = blk->m;
        } else {
            const block_q4_1 *blk = &((const block_q4_1 *)w)[b];
            q = nibbles32(blk->qs);
            dh = blk->d, mh = blk->m;
        }
        float dx = half(dh), mx = half(mh);
#pragma GCC unroll 16
        for (int k = 0; k < rows; k++) {
            const block_q8_1 *y = (const block_q8_1 *)act_row(act, stride, k) + b;
            __m256i a = _mm256_loadu_si256((const __m256i *)y->qs);
            __m256 p = _mm256_cvtepi32_ps(dot_u8_i8(q, a));
            acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(dx * half(y->d)), p, acc[k]);
            mins[k] += mx * half(y->s);
        }
    }
#pragma GCC unroll 16
    for (int k = 0; k < rows; k++)
        out[k] = hsum_ps(acc[k]) + mins[k];
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

// ---- Q4_K x Q8_K ----

// The eight 6-bit scales (byte i of *sc) and mins of a Q4_K/Q5_K block; mins come back as 16
// int16, each repeated for the two bsums of its sub-block.
ALWAYS_INLINE void k4_unpack(const uint8_t *packed, uint64_t *sc, __m256i *mins16)
{
    uint64_t m;
    kernel_k4_scales(packed, sc, &m);
    __m128i mv = _mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)m));
    *mins16 = _mm256_set_m128i(_mm_unpackhi_epi16(mv, mv), _mm_unpacklo_epi16(mv, mv));
}

// Adds to acc[k] one super-block's d * d_a * isum - dmin * d_a * sum(m * bsums).
ALWAYS_INLINE void k_finish(const block_q8_k *y, float d, float dmin, __m256i isum, __m256i mins16,
                            __m256 *acc)
{
    __m256i bs = _mm256_loadu_si256((const __m256i *)y->bsums);
    __m256 msum = _mm256_cvtepi32_ps(_mm256_madd_epi16(bs, mins16));
    *acc = _mm256_fmadd_ps(_mm256_set1_ps(d * y->d), _mm256_cvtepi32_ps(isum), *acc);
    *acc = _mm256_fnmadd_ps(_mm256_set1_ps(dmin * y->d), msum, *acc);
}

// Chunk c (values 64c .. 64c + 63) of a Q4_K/Q5_K super-block against `rows` rows:
// isum[k] += sc_2c * sum(lo * a) + sc_2c+1 * sum(hi * a).
ALWAYS_INLINE void q4_k_chunk(const uint8_t *qs, __m256i hbits, bool five, uint64_t sc, int c,
                              const void *act, size_t stride, int64_t b, int rows, __m256i *isum)
{
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    __m256i raw = _mm256_loadu_si256((const __m256i *)(qs + 32 * c));
    __m256i lo = _mm256_and_si256(raw, low4);
    __m256i hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), low4);
    if (five) {
        const __m256i sixteen = _mm256_set1_epi8(16);
        __m256i bit_lo = _mm256_set1_epi8((char)(1 << (2 * c)));
        __m256i bit_hi = _mm256_set1_epi8((char)(1 << (2 * c + 1)));
        lo = _mm256_or_si256(
            lo,
            _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(hbits, bit_lo), bit_lo), sixteen));
        hi = _mm256_or_si256(
            hi,
            _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(hbits, bit_hi), bit_hi), sixteen));
    }
    __m256i sc_lo = _mm256_set1_epi16((short)((sc >> (16 * c)) & 0xFF));
    __m256i sc_hi = _mm256_set1_epi16((short)((sc >> (16 * c + 8)) & 0xFF));
#pragma GCC unroll 16
    for (int k = 0; k < rows; k++) {
        const int8_t *a = ((const block_q8_k *)act_row(act, stride, k))[b].qs + 64 * c;
        __m256i p_lo = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)a));
        __m256i p_hi = _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(a + 32)));
        isum[k] = _mm256_add_epi32(
            isum[k],
            _mm256_add_epi32(_mm256_madd_epi16(p_lo, sc_lo), _mm256_madd_epi16(p_hi, sc_hi)));
    }
}

// The dots of one Q4_K/Q5_K row (five: Q5_K) with `rows` Q8_K rows: integer sums per
// super-block, scales by madd, mins through the bsums.
ALWAYS_INLINE void q4_k_rows(const void *w, const void *act, size_t stride, int64_t n, int rows,
                             bool five, float *out)
{
    __m256 acc[4];
    for (int k = 0; k < 4; k++)
        acc[k] = _mm256_setzero_ps();
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
        uint64_t sc;
        __m256i mins16;
        k4_unpack(scales, &sc, &mins16);
        __m256i isum[4];
        for (int k = 0; k < 4; k++)
            isum[k] = _mm256_setzero_si256();
        __m256i hbits = five ? _mm256_loadu_si256((const __m256i *)qh) : _mm256_setzero_si256();
        // One row: unroll everything. Four rows: keep the chunk loop, or the unrolled body
        // would spill the 16 AVX2 registers.
        if (rows == 1) {
#pragma GCC unroll 16
            for (int c = 0; c < 4; c++)
                q4_k_chunk(qs, hbits, five, sc, c, act, stride, b, rows, isum);
        } else {
#pragma GCC unroll 1
            for (int c = 0; c < 4; c++)
                q4_k_chunk(qs, hbits, five, sc, c, act, stride, b, rows, isum);
        }
        float d = half(dh), dmin = half(dminh);
#pragma GCC unroll 16
        for (int k = 0; k < rows; k++)
            k_finish((const block_q8_k *)act_row(act, stride, k) + b, d, dmin, isum[k], mins16,
                     &acc[k]);
    }
#pragma GCC unroll 16
    for (int k = 0; k < rows; k++)
        out[k] = hsum_ps(acc[k]);
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

// ---- sub-blocks of 16 (Q6_K, Q2_K, Q3_K) x Q8_K ----

// isum[k] += sc[2t] * sum(codes[t] lo * a) + sc[2t+1] * sum(codes[t] hi * a) for step t.
ALWAYS_INLINE void k16_step(const __m256i codes[2][4], const int8_t *sc, int t, const void *act,
                            size_t stride, int64_t b, int rows, __m256i *isum)
{
    int h = t / 4, j = t % 4;
    __m256i scv = _mm256_set_m128i(_mm_set1_epi16(sc[2 * t + 1]), _mm_set1_epi16(sc[2 * t]));
#pragma GCC unroll 16
    for (int k = 0; k < rows; k++) {
        const int8_t *a = ((const block_q8_k *)act_row(act, stride, k))[b].qs + 32 * t;
        __m256i p = _mm256_maddubs_epi16(codes[h][j], _mm256_loadu_si256((const __m256i *)a));
        isum[k] = _mm256_add_epi32(isum[k], _mm256_madd_epi16(p, scv));
    }
}

// sum over the 16 sub-blocks s of sc[s] * sum(code * a), codes[h][j] holding the codes of
// values 128h + 32j .. + 31 (sub-blocks 8h + 2j and 8h + 2j + 1); into isum[k]. One row
// unrolls everything; four rows keep the loop, or the body would spill the 16 registers.
ALWAYS_INLINE void k16_isum(const __m256i codes[2][4], const int8_t *sc, const void *act,
                            size_t stride, int64_t b, int rows, __m256i *isum)
{
    if (rows == 1) {
#pragma GCC unroll 16
        for (int t = 0; t < 8; t++)
            k16_step(codes, sc, t, act, stride, b, rows, isum);
    } else {
#pragma GCC unroll 1
        for (int t = 0; t < 8; t++)
            k16_step(codes, sc, t, act, stride, b, rows, isum);
    }
}

// The four 32-value groups j of half h: codes 0..63 (the -32 is applied through bsums).
ALWAYS_INLINE void q6_unpack(const block_q6_k *blk, int h, __m256i v[4])
{
    const __m256i low4 = _mm256_set1_epi8(0x0F), top2 = _mm256_set1_epi8(0x30);
    __m256i ql0 = _mm256_loadu_si256((const __m256i *)(blk->ql + 64 * h));
    __m256i ql1 = _mm256_loadu_si256((const __m256i *)(blk->ql + 64 * h + 32));
    __m256i qh = _mm256_loadu_si256((const __m256i *)(blk->qh + 32 * h));
    v[0] = _mm256_or_si256(_mm256_and_si256(ql0, low4),
                           _mm256_and_si256(_mm256_slli_epi16(qh, 4), top2));
    v[1] = _mm256_or_si256(_mm256_and_si256(ql1, low4),
                           _mm256_and_si256(_mm256_slli_epi16(qh, 2), top2));
    v[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), low4),
                           _mm256_and_si256(qh, top2));
    v[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), low4),
                           _mm256_and_si256(_mm256_srli_epi16(qh, 2), top2));
}

// The dots of one Q6_K row with `rows` Q8_K rows: x = d * sc * (q - 32), the -32 applied
// as 32 * sum(sc * bsums).
ALWAYS_INLINE void q6_k_rows(const void *w, const void *act, size_t stride, int64_t n, int rows,
                             float *out)
{
    __m256 acc[4];
    for (int k = 0; k < 4; k++)
        acc[k] = _mm256_setzero_ps();
    for (int64_t b = 0; b < n / QK_K; b++) {
        const block_q6_k *blk = &((const block_q6_k *)w)[b];
        __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)blk->scales));
        __m256i isum[4];
        for (int k = 0; k < 4; k++)
            isum[k] = _mm256_setzero_si256();
        __m256i v[2][4];
        q6_unpack(blk, 0, v[0]);
        q6_unpack(blk, 1, v[1]);
        k16_isum(v, blk->scales, act, stride, b, rows, isum);
        float d = half(blk->d);
#pragma GCC unroll 16
        for (int k = 0; k < rows; k++) {
            const block_q8_k *y = (const block_q8_k *)act_row(act, stride, k) + b;
            __m256i bs = _mm256_loadu_si256((const __m256i *)y->bsums);
            __m256i corr = _mm256_slli_epi32(_mm256_madd_epi16(bs, sc16), 5); // 32 * sc * bsum
            __m256 total = _mm256_cvtepi32_ps(_mm256_sub_epi32(isum[k], corr));
            acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(d * y->d), total, acc[k]);
        }
    }
#pragma GCC unroll 16
    for (int k = 0; k < rows; k++)
        out[k] = hsum_ps(acc[k]);
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

// x = d*sc * q - dmin*m per sub-block of 16.
ALWAYS_INLINE void q2_k_rows(const void *w, const void *act, size_t stride, int64_t n, int rows,
                             float *out)
{
    __m256 acc[4];
    for (int k = 0; k < 4; k++)
        acc[k] = _mm256_setzero_ps();
    for (int64_t b = 0; b < n / QK_K; b++) {
        const block_q2_k *blk = &((const block_q2_k *)w)[b];
        int8_t sc[16];
        __m128i packed = _mm_loadu_si128((const __m128i *)blk->scales);
        _mm_storeu_si128((__m128i *)sc, _mm_and_si128(packed, _mm_set1_epi8(0x0F)));
        __m256i m16 = _mm256_cvtepu8_epi16(
            _mm_and_si128(_mm_srli_epi16(packed, 4), _mm_set1_epi8(0x0F)));
        __m256i codes[2][4];
#pragma GCC unroll 16
        for (int h = 0; h < 2; h++) {
            __m256i raw = _mm256_loadu_si256((const __m256i *)(blk->qs + 32 * h));
#pragma GCC unroll 16
            for (int j = 0; j < 4; j++)
                codes[h][j] = crumbs32(raw, j);
        }
        __m256i isum[4];
        for (int k = 0; k < 4; k++)
            isum[k] = _mm256_setzero_si256();
        k16_isum(codes, sc, act, stride, b, rows, isum);
        float d = half(blk->d), dmin = half(blk->dmin);
#pragma GCC unroll 16
        for (int k = 0; k < rows; k++)
            k_finish((const block_q8_k *)act_row(act, stride, k) + b, d, dmin, isum[k], m16,
                     &acc[k]);
    }
#pragma GCC unroll 16
    for (int k = 0; k < rows; k++)
        out[k] = hsum_ps(acc[k]);
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

// x = d * (sc - 32) * (q - 4): codes q in 0..7 by maddubs, the -4 through the bsums.
ALWAYS_INLINE void q3_k_rows(const void *w, const void *act, size_t stride, int64_t n, int rows,
                             float *out)
{
    __m256 acc[4];
    for (int k = 0; k < 4; k++)
        acc[k] = _mm256_setzero_ps();
    for (int64_t b = 0; b < n / QK_K; b++) {
        const block_q3_k *blk = &((const block_q3_k *)w)[b];
        uint8_t codes6[16];
        int8_t sc[16];
        kernel_k3_scales(blk->scales, codes6);
        __m128i centred = _mm_sub_epi8(_mm_loadu_si128((const __m128i *)codes6), _mm_set1_epi8(32));
        _mm_storeu_si128((__m128i *)sc, centred);
        __m256i sc16 = _mm256_cvtepi8_epi16(centred);
        __m256i hm = _mm256_loadu_si256((const __m256i *)blk->hmask);
        __m256i codes[2][4];
#pragma GCC unroll 16
        for (int h = 0; h < 2; h++) {
            __m256i raw = _mm256_loadu_si256((const __m256i *)(blk->qs + 32 * h));
#pragma GCC unroll 16
            for (int j = 0; j < 4; j++) {
                __m256i high = _mm256_and_si256(_mm256_srli_epi16(hm, 4 * h + j),
                                                _mm256_set1_epi8(1));
                codes[h][j] = _mm256_or_si256(crumbs32(raw, j), _mm256_slli_epi16(high, 2));
            }
        }
        __m256i isum[4];
        for (int k = 0; k < 4; k++)
            isum[k] = _mm256_setzero_si256();
        k16_isum(codes, sc, act, stride, b, rows, isum);
        float d = half(blk->d);
#pragma GCC unroll 16
        for (int k = 0; k < rows; k++) {
            const block_q8_k *y = (const block_q8_k *)act_row(act, stride, k) + b;
            __m256i bs = _mm256_loadu_si256((const __m256i *)y->bsums);
            __m256i corr = _mm256_slli_epi32(_mm256_madd_epi16(bs, sc16), 2); // 4 * sc * bsum
            __m256 total = _mm256_cvtepi32_ps(_mm256_sub_epi32(isum[k], corr));
            acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(d * y->d), total, acc[k]);
        }
    }
#pragma GCC unroll 16
    for (int k = 0; k < rows; k++)
        out[k] = hsum_ps(acc[k]);
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
// sign(x) * a into maddubs, the sub-block scales by madd.
ALWAYS_INLINE void iq4_xs_rows(const void *w, const void *act, size_t stride, int64_t n, int rows,
                               float *out)
{
    const __m256i grid = _mm256_broadcastsi128_si256(
        _mm_loadu_si128((const __m128i *)tensor_iq4_nl_values));
    __m256 acc[4];
    for (int k = 0; k < 4; k++)
        acc[k] = _mm256_setzero_ps();
    for (int64_t b = 0; b < n / QK_K; b++) {
        const block_iq4_xs *blk = &((const block_iq4_xs *)w)[b];
        __m256i isum[4];
        for (int k = 0; k < 4; k++)
            isum[k] = _mm256_setzero_si256();
#pragma GCC unroll 16
        for (int s = 0; s < 8; s++) {
            int low = (blk->scales_l[s / 2] >> (4 * (s % 2))) & 0x0F;
            int high = (blk->scales_h >> (2 * s)) & 3;
            __m256i scv = _mm256_set1_epi16((short)((low | (high << 4)) - 32));
            __m256i x = _mm256_shuffle_epi8(grid, nibbles32(blk->qs + 16 * s));
            __m256i ax = _mm256_sign_epi8(x, x);
#pragma GCC unroll 16
            for (int k = 0; k < rows; k++) {
                const int8_t *a = ((const block_q8_k *)act_row(act, stride, k))[b].qs + 32 * s;
                __m256i sa = _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)a), x);
                isum[k] = _mm256_add_epi32(isum[k],
                                           _mm256_madd_epi16(_mm256_maddubs_epi16(ax, sa), scv));
            }
        }
        float d = half(blk->d);
#pragma GCC unroll 16
        for (int k = 0; k < rows; k++) {
            const block_q8_k *y = (const block_q8_k *)act_row(act, stride, k) + b;
            acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(d * y->d), _mm256_cvtepi32_ps(isum[k]), acc[k]);
        }
    }
#pragma GCC unroll 16
    for (int k = 0; k < rows; k++)
        out[k] = hsum_ps(acc[k]);
}

static float dot_iq4_xs_q8_k(const void *w, const void *a, int64_t n)
{
    float out;
    iq4_xs_rows(w, a, 0, n, 1, &out);
    return out;
}

static void dot_iq4_xs_q8_k_x4(const void *w, const void *a, size_t stride, int64_t n, float out[4])
{
    iq4_xs_rows(w, a, stride, n, 4, out);
}

// ---- F8_E4M3 x F32: x = d * e4m3(q) ----
//
// An E4M3 code's sign and seven other bits moved into an F16 (sign to bit 15, the rest to
// bits 7..13) are its value times 2^-8, exactly, subnormals included (F16's exponent bias is
// E4M3's plus 8), so F16C turns codes into floats and the block's d * 2^8 scales them into
// the weights, which then multiply the activations by FMA. (d * 2^8 is exact for every scale
// below 2^120; FP8 checkpoints' scales are near 1e-3.) Such a conversion reads the NaN codes
// 0x7F and 0xFF as +-480: instead a row that has one gets NaN, as the reference does (a NaN
// weight makes the sum NaN), from a running maximum of the codes' magnitudes.

// The weights of the 16 codes at p, times 2^-8: lanes 0..7 in *lo, 8..15 in *hi.
ALWAYS_INLINE void e4m3_16(const uint8_t *p, __m256 *lo, __m256 *hi)
{
    // Sign-extended, shifted by 7: bit 15 is the sign (from bit 8), bit 14 the sign again.
    __m256i h = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)p));
    h = _mm256_and_si256(_mm256_slli_epi16(h, 7), _mm256_set1_epi16((short)0xBF80));
    *lo = _mm256_cvtph_ps(_mm256_castsi256_si128(h));
    *hi = _mm256_cvtph_ps(_mm256_extracti128_si256(h, 1));
}

// Byte-wise max of *seen and the 32 codes at p doubled (the sign dropped): a NaN code's
// magnitude 0x7F doubles to 0xFE, every other one to 0xFC at most.
ALWAYS_INLINE void e4m3_nan_scan(const uint8_t *p, __m256i *seen)
{
    __m256i c = _mm256_loadu_si256((const __m256i *)p);
    *seen = _mm256_max_epu8(*seen, _mm256_add_epi8(c, c));
}

// Whether a scan saw a NaN code.
ALWAYS_INLINE bool e4m3_nan_seen(__m256i seen)
{
    return _mm256_movemask_epi8(_mm256_cmpeq_epi8(seen, _mm256_set1_epi8((char)0xFE))) != 0;
}

// The dots of one F8_E4M3 row with `rows` (1 or 2) F32 rows: per row four accumulators, one
// for each eighth of the block's values, so that a single row's FMAs do not wait on each
// other; at most two rows keep their eight accumulators and the four weights in registers.
ALWAYS_INLINE void f8_rows(const void *w, const void *act, size_t stride, int64_t n, int rows,
                           float *out)
{
    __m256 acc[2][4];
    __m256i seen = _mm256_setzero_si256();
#pragma GCC unroll 8
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < 4; i++)
            acc[k][i] = _mm256_setzero_ps();
    const block_f8_e4m3 *blk = w;
    for (int64_t b = 0; b < n / QK_F8; b++) {
        __m256 x[4], scale = _mm256_set1_ps(blk[b].d * 256.0f);
        e4m3_16(blk[b].qs, &x[0], &x[1]);
        e4m3_16(blk[b].qs + 16, &x[2], &x[3]);
        e4m3_nan_scan(blk[b].qs, &seen);
#pragma GCC unroll 8
        for (int i = 0; i < 4; i++)
            x[i] = _mm256_mul_ps(x[i], scale);
#pragma GCC unroll 8
        for (int k = 0; k < rows; k++) {
            const float *a = (const float *)act_row(act, stride, k) + b * QK_F8;
#pragma GCC unroll 8
            for (int i = 0; i < 4; i++)
                acc[k][i] = _mm256_fmadd_ps(x[i], _mm256_loadu_ps(a + 8 * i), acc[k][i]);
        }
    }
    bool nan = e4m3_nan_seen(seen);
#pragma GCC unroll 8
    for (int k = 0; k < rows; k++) {
        __m256 s = _mm256_add_ps(_mm256_add_ps(acc[k][0], acc[k][1]),
                                 _mm256_add_ps(acc[k][2], acc[k][3]));
        out[k] = nan ? NAN : hsum_ps(s);
    }
}

static float dot_f8_e4m3_f32(const void *w, const void *a, int64_t n)
{
    float out;
    f8_rows(w, a, 0, n, 1, &out);
    return out;
}

// Four rows as two pairs: each block's weights are made twice instead of four times.
static void dot_f8_e4m3_f32_x4(const void *w, const void *a, size_t stride, int64_t n, float out[4])
{
    f8_rows(w, a, stride, n, 2, out);
    f8_rows(w, act_row(a, stride, 2), stride, n, 2, out + 2);
}

// ---- plain float formats ----

enum float_kind { FMT_F32, FMT_F16, FMT_BF16 };

// 8 values from index i of a row in format kind, as floats.
ALWAYS_INLINE __m256 load8(const void *p, int64_t i, enum float_kind kind)
{
    switch (kind) {
    case FMT_F32: return _mm256_loadu_ps((const float *)p + i);
    case FMT_F16:
        return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)p + i)));
    default: {
        __m128i raw = _mm_loadu_si128((const __m128i *)((const uint16_t *)p + i));
        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(raw), 16));
    }
    }
}

// Value i of a row in format kind.
ALWAYS_INLINE float load1(const void *p, int64_t i, enum float_kind kind)
{
    switch (kind) {
    case FMT_F32: return ((const float *)p)[i];
    case FMT_F16: return half(((const uint16_t *)p)[i]);
    default: return tensor_bf16_to_f32(((const uint16_t *)p)[i]);
    }
}

// sum x[i] * y_k[i] for `rows` (1 or 2) rows y_k, y_stride bytes apart, with four
// accumulators of 8 lanes per row; x and y in formats kx and ky. Two rows at most, so that
// eight accumulators and the loaded x fit the 16 AVX2 registers.
ALWAYS_INLINE void float_rows(const void *x, enum float_kind kx, const void *y, size_t y_stride,
                              enum float_kind ky, int64_t n, int rows, float *out)
{
    __m256 acc[2][4];
#pragma GCC unroll 16
    for (int k = 0; k < 2; k++)
        for (int j = 0; j < 4; j++)
            acc[k][j] = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
#pragma GCC unroll 16
        for (int j = 0; j < 4; j++) {
            __m256 xv = load8(x, i + 8 * j, kx);
#pragma GCC unroll 16
            for (int k = 0; k < rows; k++)
                acc[k][j] = _mm256_fmadd_ps(xv, load8(act_row(y, y_stride, k), i + 8 * j, ky),
                                            acc[k][j]);
        }
    }
    for (; i + 8 <= n; i += 8) {
        __m256 xv = load8(x, i, kx);
#pragma GCC unroll 16
        for (int k = 0; k < rows; k++)
            acc[k][0] = _mm256_fmadd_ps(xv, load8(act_row(y, y_stride, k), i, ky), acc[k][0]);
    }
#pragma GCC unroll 16
    for (int k = 0; k < rows; k++) {
        float tail = 0.0f;
        for (int64_t t = i; t < n; t++)
            tail += load1(x, t, kx) * load1(act_row(y, y_stride, k), t, ky);
        __m256 s = _mm256_add_ps(_mm256_add_ps(acc[k][0], acc[k][1]),
                                 _mm256_add_ps(acc[k][2], acc[k][3]));
        out[k] = hsum_ps(s) + tail;
    }
}

// One row of float_rows.
ALWAYS_INLINE float float_dot(const void *x, enum float_kind kx, const void *y, enum float_kind ky,
                              int64_t n)
{
    float out;
    float_rows(x, kx, y, 0, ky, n, 1, &out);
    return out;
}

// Four rows as two pairs: x is loaded twice instead of four times.
ALWAYS_INLINE void float_dot_x4(const void *x, enum float_kind kind, const void *y, size_t y_stride,
                                int64_t n, float out[4])
{
    float_rows(x, kind, y, y_stride, kind, n, 2, out);
    float_rows(x, kind, act_row(y, y_stride, 2), y_stride, kind, n, 2, out + 2);
}

static float dot_f32_f32(const void *w, const void *a, int64_t n)
{
    return float_dot(w, FMT_F32, a, FMT_F32, n);
}

static void dot_f32_f32_x4(const void *w, const void *a, size_t stride, int64_t n, float out[4])
{
    float_dot_x4(w, FMT_F32, a, stride, n, out);
}

static float dot_f16_f16(const void *w, const void *a, int64_t n)
{
    return float_dot(w, FMT_F16, a, FMT_F16, n);
}

static void dot_f16_f16_x4(const void *w, const void *a, size_t stride, int64_t n, float out[4])
{
    float_dot_x4(w, FMT_F16, a, stride, n, out);
}

static float dot_bf16_bf16(const void *w, const void *a, int64_t n)
{
    return float_dot(w, FMT_BF16, a, FMT_BF16, n);
}

static void dot_bf16_bf16_x4(const void *w, const void *a, size_t stride, int64_t n, float out[4])
{
    float_dot_x4(w, FMT_BF16, a, stride, n, out);
}

static float helper_dot_f32(const float *a, const float *b, int64_t n)
{
    return float_dot(a, FMT_F32, b, FMT_F32, n);
}

static float helper_dot_f32_f16(const float *a, const uint16_t *b, int64_t n)
{
    return float_dot(a, FMT_F32, b, FMT_F16, n);
}

// y += a * x for x in format kind, 8 lanes at a time, the tail in scalar.
ALWAYS_INLINE void float_axpy(float *y, float a, const void *x, enum float_kind kind, int64_t n)
{
    __m256 va = _mm256_set1_ps(a);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, load8(x, i, kind), _mm256_loadu_ps(y + i)));
    for (; i < n; i++)
        y[i] += a * load1(x, i, kind);
}

static void helper_axpy_f32(float *y, float a, const float *x, int64_t n)
{
    float_axpy(y, a, x, FMT_F32, n);
}

static void helper_axpy_f16(float *y, float a, const uint16_t *x, int64_t n)
{
    float_axpy(y, a, x, FMT_F16, n);
}

// out_j[r] = scale * (q_j . rows[r]), a dot per pair (F16 rows converted as they load).
ALWAYS_INLINE void dot_rows(const float *q, int64_t q_stride, int64_t n_q, const void *rows,
                            enum float_kind kind, int64_t pitch, int64_t n_rows, int64_t n,
                            float scale, float *out, int64_t out_stride)
{
    size_t row_bytes = (size_t)pitch * (kind == FMT_F32 ? 4 : 2);
    for (int64_t j = 0; j < n_q; j++)
        for (int64_t r = 0; r < n_rows; r++)
            out[j * out_stride + r] = scale *
                float_dot(q + j * q_stride, FMT_F32, act_row(rows, row_bytes, (int)r), kind, n);
}

static void helper_dot_rows_f32(const float *q, int64_t q_stride, int64_t n_q, const float *rows,
                                int64_t pitch, int64_t n_rows, int64_t n, float scale, float *out,
                                int64_t out_stride)
{
    dot_rows(q, q_stride, n_q, rows, FMT_F32, pitch, n_rows, n, scale, out, out_stride);
}

static void helper_dot_rows_f16(const float *q, int64_t q_stride, int64_t n_q, const uint16_t *rows,
                                int64_t pitch, int64_t n_rows, int64_t n, float scale, float *out,
                                int64_t out_stride)
{
    dot_rows(q, q_stride, n_q, rows, FMT_F16, pitch, n_rows, n, scale, out, out_stride);
}

// y_j += sum_r w_j[r] * rows[r]: each 8-lane slice of y_j stays in a register across the rows.
ALWAYS_INLINE void axpy_rows(float *y, int64_t y_stride, int64_t n_q, const float *w,
                             int64_t w_stride, const void *rows, enum float_kind kind,
                             int64_t pitch, int64_t n_rows, int64_t n)
{
    size_t row_bytes = (size_t)pitch * (kind == FMT_F32 ? 4 : 2);
    for (int64_t j = 0; j < n_q; j++, y += y_stride, w += w_stride) {
        int64_t i = 0;
        for (; i + 8 <= n; i += 8) {
            __m256 acc = _mm256_loadu_ps(y + i);
            for (int64_t r = 0; r < n_rows; r++)
                acc = _mm256_fmadd_ps(_mm256_set1_ps(w[r]),
                                      load8(act_row(rows, row_bytes, (int)r), i, kind), acc);
            _mm256_storeu_ps(y + i, acc);
        }
        for (; i < n; i++)
            for (int64_t r = 0; r < n_rows; r++)
                y[i] += w[r] * load1(act_row(rows, row_bytes, (int)r), i, kind);
    }
}

static void helper_axpy_rows_f32(float *y, int64_t y_stride, int64_t n_q, const float *w,
                                 int64_t w_stride, const float *rows, int64_t pitch, int64_t n_rows,
                                 int64_t n)
{
    axpy_rows(y, y_stride, n_q, w, w_stride, rows, FMT_F32, pitch, n_rows, n);
}

static void helper_axpy_rows_f16(float *y, int64_t y_stride, int64_t n_q, const float *w,
                                 int64_t w_stride, const uint16_t *rows, int64_t pitch,
                                 int64_t n_rows, int64_t n)
{
    axpy_rows(y, y_stride, n_q, w, w_stride, rows, FMT_F16, pitch, n_rows, n);
}

// The largest of x[0..n); NaN values are passed over, as the scalar comparison does (maxps
// returns its second operand when either is NaN).
static float helper_max_f32(const float *x, int64_t n)
{
    __m256 m = _mm256_set1_ps(-INFINITY);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        m = _mm256_max_ps(_mm256_loadu_ps(x + i), m);
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    float max = _mm_cvtss_f32(h);
    for (; i < n; i++)
        max = x[i] > max ? x[i] : max;
    return max;
}

// exp(x) = 2^k * e^t with k = round(x / ln 2) and t = x - k ln 2 (ln 2 in two parts, |t| <=
// 0.35), e^t by its degree-7 Taylor polynomial (error below 1e-8). x is clamped to [-104, 89],
// past which the result is 0 or inf anyway, and 2^k is applied as two normal powers of two
// so that tiny results round to subnormals or 0 and huge ones to inf; NaN stays NaN.
ALWAYS_INLINE __m256 exp8(__m256 x)
{
    x = _mm256_min_ps(_mm256_set1_ps(89.0f), _mm256_max_ps(_mm256_set1_ps(-104.0f), x));
    __m256 k = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 t = _mm256_fnmadd_ps(k, _mm256_set1_ps(0.693359375f), x);
    t = _mm256_fnmadd_ps(k, _mm256_set1_ps(-2.12194440e-4f), t);
    __m256 p = _mm256_set1_ps(1.0f / 5040);
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(1.0f / 720));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(1.0f / 120));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(1.0f / 24));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(1.0f / 6));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(1.0f));
    __m256i k1 = _mm256_cvtps_epi32(k), k0 = _mm256_srai_epi32(k1, 1);
    k1 = _mm256_sub_epi32(k1, k0);
    const __m256i bias = _mm256_set1_epi32(127);
    __m256 e0 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k0, bias), 23));
    __m256 e1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k1, bias), 23));
    return _mm256_mul_ps(_mm256_mul_ps(p, e0), e1);
}

// The lanes below count (of 8) set.
ALWAYS_INLINE __m256i lanes8(int64_t count)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)count),
                              _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

static float helper_exp_sum_f32(float *x, int64_t n, float max)
{
    __m256 sum = _mm256_setzero_ps(), m = _mm256_set1_ps(max);
    for (int64_t i = 0; i < n; i += 8) {
        __m256i mask = lanes8(n - i);
        __m256 e = exp8(_mm256_sub_ps(_mm256_maskload_ps(x + i, mask), m));
        e = _mm256_and_ps(e, _mm256_castsi256_ps(mask));
        _mm256_maskstore_ps(x + i, mask, e);
        sum = _mm256_add_ps(sum, e);
    }
    return hsum_ps(sum);
}

static void helper_swiglu_f32(float *gate, const float *up, int64_t n)
{
    for (int64_t i = 0; i < n; i += 8) {
        __m256i mask = lanes8(n - i);
        __m256 g = _mm256_maskload_ps(gate + i, mask), u = _mm256_maskload_ps(up + i, mask);
        __m256 e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), g));
        __m256 out = _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(_mm256_set1_ps(1.0f), e)), u);
        _mm256_maskstore_ps(gate + i, mask, out);
    }
}

const kernel_type_ops kernel_avx2_type_ops[TENSOR_TYPE_COUNT] = {
    [TENSOR_TYPE_F32] = {.dot = dot_f32_f32, .product = KERNEL_BY_DOTS(dot_f32_f32_x4)},
    [TENSOR_TYPE_F16] = {.dot = dot_f16_f16, .product = KERNEL_BY_DOTS(dot_f16_f16_x4)},
    [TENSOR_TYPE_BF16] = {.dot = dot_bf16_bf16, .product = KERNEL_BY_DOTS(dot_bf16_bf16_x4)},
    [TENSOR_TYPE_Q4_0] = {.dot = dot_q4_0_q8_0, .product = KERNEL_BY_DOTS(dot_q4_0_q8_0_x4)},
    [TENSOR_TYPE_Q4_1] = {.dot = dot_q4_1_q8_1, .product = KERNEL_BY_DOTS(dot_q4_1_q8_1_x4)},
    [TENSOR_TYPE_Q5_0] = {.dot = dot_q5_0_q8_0, .product = KERNEL_BY_DOTS(dot_q5_0_q8_0_x4)},
    [TENSOR_TYPE_Q5_1] = {.dot = dot_q5_1_q8_1, .product = KERNEL_BY_DOTS(dot_q5_1_q8_1_x4)},
    [TENSOR_TYPE_Q8_0] = {.dot = dot_q8_0_q8_0, .product = KERNEL_BY_DOTS(dot_q8_0_q8_0_x4)},
    [TENSOR_TYPE_Q2_K] = {.dot = dot_q2_k_q8_k, .product = KERNEL_BY_DOTS(dot_q2_k_q8_k_x4)},
    [TENSOR_TYPE_Q3_K] = {.dot = dot_q3_k_q8_k, .product = KERNEL_BY_DOTS(dot_q3_k_q8_k_x4)},
    [TENSOR_TYPE_Q4_K] = {.dot = dot_q4_k_q8_k, .product = KERNEL_BY_DOTS(dot_q4_k_q8_k_x4)},
    [TENSOR_TYPE_Q5_K] = {.dot = dot_q5_k_q8_k, .product = KERNEL_BY_DOTS(dot_q5_k_q8_k_x4)},
    [TENSOR_TYPE_Q6_K] = {.dot = dot_q6_k_q8_k, .product = KERNEL_BY_DOTS(dot_q6_k_q8_k_x4)},
    [TENSOR_TYPE_IQ4_NL] = {.dot = dot_iq4_nl_q8_0, .product = KERNEL_BY_DOTS(dot_iq4_nl_q8_0_x4)},
    [TENSOR_TYPE_IQ4_XS] = {.dot = dot_iq4_xs_q8_k, .product = KERNEL_BY_DOTS(dot_iq4_xs_q8_k_x4)},
    [TENSOR_TYPE_MXFP4] = {.dot = dot_mxfp4_q8_0, .product = KERNEL_BY_DOTS(dot_mxfp4_q8_0_x4)},
    [TENSOR_TYPE_F8_E4M3] = {.dot = dot_f8_e4m3_f32, .product = KERNEL_BY_DOTS(dot_f8_e4m3_f32_x4)},
    [TENSOR_TYPE_Q4_Z] = {.dot = dot_q4_z_q8_0, .product = KERNEL_BY_DOTS(dot_q4_z_q8_0_x4)},
};

const kernel_float_ops kernel_avx2_float_ops = {
    .dot_f32 = helper_dot_f32,
    .dot_f32_f16 = helper_dot_f32_f16,
    .axpy_f32 = helper_axpy_f32,
    .axpy_f16 = helper_axpy_f16,
    .dot_rows_f32 = helper_dot_rows_f32,
    .axpy_rows_f32 = helper_axpy_rows_f32,
    .dot_rows_f16 = helper_dot_rows_f16,
    .axpy_rows_f16 = helper_axpy_rows_f16,
    .max_f32 = helper_max_f32,
    .dot_rows_q8_0 = kernel_dot_rows_q8_0_avx2,
    .axpy_rows_q8_0 = kernel_axpy_rows_q8_0_avx2,
    .exp_sum_f32 = helper_exp_sum_f32,
    .swiglu_f32 = helper_swiglu_f32,
};
#endif
