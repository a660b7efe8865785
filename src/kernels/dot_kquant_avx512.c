// SPDX-License-Identifier: MIT
// AVX-512 VNNI kernels for the weight types of 256-value super-blocks against Q8_K
// activations (the K-quants and IQ4_XS), compiled with the AVX-512 flags and chosen at run
// time only when cpuid reports them. Q4_K and Q6_K go through the lane product of
// dot_avx512.h (a super-block is one step; this file makes its operands and lane factors,
// prepares the Q8_K activation rows, and keeps packed layouts that load without permutes).
// Q2_K, Q3_K and Q5_K have register tiles of 1 weight x 8 activation rows of their own, the
// sub-block scales applied by dpwssd to maddubs's pair sums; IQ4_XS keeps a kernel over 1 or
// 4 activation rows, as in the AVX2 file.
#if defined(__x86_64__)
#include "kernels/blocks.h"
#include "kernels/dot_avx512.h"

// ---- Q4_K and Q6_K x Q8_K, by the lane product ----

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

// The lane factors of a Q4_K super-block: d * sc and -dmin * m of each lane's sub-block
// (lane pairs 0-1, 2-3, ... are sub-blocks 0, 1, ...); both products are exact in float.
ALWAYS_INLINE void k4_lane_factors(const block_q4_k *blk, lane_operands *s)
{
    uint64_t sc8, m8;
    kernel_k4_scales(blk->scales, &sc8, &m8);
    __m128i sc = _mm_cvtsi64_si128((long long)sc8), m = _mm_cvtsi64_si128((long long)m8);
    sc = _mm_unpacklo_epi8(sc, sc), m = _mm_unpacklo_epi8(m, m);
    s->d = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(sc)),
                         _mm512_set1_ps(half(blk->d)));
    s->m = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(m)),
                         _mm512_set1_ps(-half(blk->dmin)));
}

// A plain Q4_K super-block as operands: operand i, 128-bit lane L, is code qword 4L + i
// twice, its low nibbles then its high ones.
ALWAYS_INLINE lane_operands q4_k_operands(const uint8_t *p, int nblk)
{
    (void)nblk; // always 8: a super-block is one step
    const block_q4_k *blk = (const block_q4_k *)p;
    const __m512i low4 = _mm512_set1_epi8(0x0F), shifts = _mm512_setr_epi64(0, 4, 0, 4, 0, 4, 0, 4);
    __m512i q0 = _mm512_loadu_si512((const void *)blk->qs);
    __m512i q1 = _mm512_loadu_si512((const void *)(blk->qs + 64));
    lane_operands s;
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) {
        __m512i idx = _mm512_setr_epi64(i, i, 4 + i, 4 + i, 8 + i, 8 + i, 12 + i, 12 + i);
        s.x[i] = _mm512_and_si512(_mm512_srlv_epi64(_mm512_permutex2var_epi64(q0, idx, q1), shifts),
                                  low4);
    }
    k4_lane_factors(blk, &s);
    return s;
}

// The packed Q4_K layout: d, dmin and the scales as stored, then the code bytes as two
// 64-byte registers whose low nibbles are operands 0 and 1 and high nibbles operands 2 and 3
// (as packed Q4_0). Rows keep their size.
static void pack_q4_k(const void *row, void *dst, int64_t n)
{
    const block_q4_k *src = row;
    block_q4_k *out = dst;
    for (int64_t b = 0; b < n / QK_K; b++) {
        block_q4_k blk = src[b];
        lane_operands s = q4_k_operands((const uint8_t *)&blk, 8);
        join_nibbles(s.x, blk.qs);
        out[b] = blk;
    }
}

ALWAYS_INLINE lane_operands q4_k_packed_operands(const uint8_t *p, int nblk)
{
    (void)nblk; // always 8: a super-block is one step
    const block_q4_k *blk = (const block_q4_k *)p;
    lane_operands s;
    split_nibbles(_mm512_loadu_si512((const void *)blk->qs),
                  _mm512_loadu_si512((const void *)(blk->qs + 64)), s.x);
    k4_lane_factors(blk, &s);
    return s;
}

// The lane factors of a Q6_K super-block: d * sc and -32 * d * sc of lane m's sub-block m.
ALWAYS_INLINE void k6_lane_factors(const block_q6_k *blk, lane_operands *s)
{
    __m512 sc = _mm512_cvtepi32_ps(
        _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)blk->scales)));
    s->d = _mm512_mul_ps(sc, _mm512_set1_ps(half(blk->d)));
    s->m = _mm512_mul_ps(s->d, _mm512_set1_ps(-32.0f));
}

// Q6_K operand i from 256 codes in value order (four registers of 64): lane m is dword
// 4 * (m % 4) + i of register m / 4, i.e. values 16m + 4i .. 16m + 4i + 3.
ALWAYS_INLINE __m512i k6_operand(const __m512i v[4], int i)
{
    __m512i idx = _mm512_setr_epi32(i, 4 + i, 8 + i, 12 + i, 16 + i, 20 + i, 24 + i, 28 + i, i,
                                    4 + i, 8 + i, 12 + i, 16 + i, 20 + i, 24 + i, 28 + i);
    __m512i t01 = _mm512_permutex2var_epi32(v[0], idx, v[1]);
    __m512i t23 = _mm512_permutex2var_epi32(v[2], idx, v[3]);
    return _mm512_inserti64x4(t01, _mm512_castsi512_si256(t23), 1);
}

// A plain Q6_K super-block as operands: the codes in value order (as q6_unpack makes them),
// then k6_operand.
ALWAYS_INLINE lane_operands q6_k_operands(const uint8_t *p, int nblk)
{
    (void)nblk; // always 8: a super-block is one step
    const block_q6_k *blk = (const block_q6_k *)p;
    __m512i q[4];
    q6_unpack(blk, 0, &q[0]);
    q6_unpack(blk, 1, &q[2]);
    lane_operands s;
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++)
        s.x[i] = k6_operand(q, i);
    k6_lane_factors(blk, &s);
    return s;
}

// The packed Q6_K layout: 128 bytes whose low nibbles are the low four bits of operands 0
// and 1 and high nibbles those of operands 2 and 3 (as packed Q4_K), then 64 bytes whose bit
// pair 2i holds the top two bits of operand i, then the scales and d as stored.
static void pack_q6_k(const void *row, void *dst, int64_t n)
{
    const block_q6_k *src = row;
    block_q6_k *out = dst;
    const __m512i low4 = _mm512_set1_epi8(0x0F), top2 = _mm512_set1_epi8(0x30);
    for (int64_t b = 0; b < n / QK_K; b++) {
        block_q6_k blk = src[b];
        lane_operands s = q6_k_operands((const uint8_t *)&blk, 8);
        __m512i lo[4], hi = _mm512_setzero_si512();
        for (int i = 0; i < 4; i++) {
            lo[i] = _mm512_and_si512(s.x[i], low4);
            // Top bits (x & 0x30) down to bit pair 2i: x >> 4 << 2i, within each byte.
            __m512i t = _mm512_srli_epi16(_mm512_and_si512(s.x[i], top2), 4);
            hi = _mm512_or_si512(hi, _mm512_slli_epi16(t, 2 * i));
        }
        uint8_t *codes = (uint8_t *)&blk; // ql, then qh: 192 bytes
        join_nibbles(lo, codes);
        _mm512_storeu_si512((void *)(codes + 128), hi);
        out[b] = blk;
    }
}

ALWAYS_INLINE lane_operands q6_k_packed_operands(const uint8_t *p, int nblk)
{
    (void)nblk; // always 8: a super-block is one step
    const block_q6_k *blk = (const block_q6_k *)p;
    const __m512i top2 = _mm512_set1_epi8(0x30);
    __m512i hi = _mm512_loadu_si512((const void *)(p + 128));
    lane_operands s;
    split_nibbles(_mm512_loadu_si512((const void *)p), _mm512_loadu_si512((const void *)(p + 64)),
                  s.x);
    s.x[0] = _mm512_or_si512(s.x[0], _mm512_and_si512(_mm512_slli_epi16(hi, 4), top2));
    s.x[1] = _mm512_or_si512(s.x[1], _mm512_and_si512(_mm512_slli_epi16(hi, 2), top2));
    s.x[2] = _mm512_or_si512(s.x[2], _mm512_and_si512(hi, top2));
    s.x[3] = _mm512_or_si512(s.x[3], _mm512_and_si512(_mm512_srli_epi16(hi, 2), top2));
    k6_lane_factors(blk, &s);
    return s;
}

// Prepares one Q8_K activation row's len values (whole super-blocks) from a into dst for the
// lane product: x0..x3 (Q4_K: operand i, 128-bit lane L, is code qwords 8L + i and
// 8L + 4 + i; Q6_K (k6): dword lane m is code dword 4m + i), d_a times each lane's code sum,
// and d_a in every lane.
ALWAYS_INLINE void prepare_q8_k(const block_q8_k *a, int64_t len, bool k6, uint8_t *dst)
{
    for (int64_t b = 0; b < len / QK_K; b++, dst += LANE_PREP_STEP) {
        const int8_t *qs = a[b].qs;
        __m512i v[4], sum = _mm512_setzero_si512();
        for (int j = 0; j < 4; j++)
            v[j] = _mm512_loadu_si512((const void *)(qs + 64 * j));
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) {
            __m512i x;
            if (k6) {
                x = k6_operand(v, i);
            } else {
                __m512i idx = _mm512_setr_epi64(i, 4 + i, 8 + i, 12 + i, i, 4 + i, 8 + i, 12 + i);
                x = _mm512_mask_blend_epi64(0xF0, _mm512_permutex2var_epi64(v[0], idx, v[1]),
                                            _mm512_permutex2var_epi64(v[2], idx, v[3]));
            }
            _mm512_store_si512((void *)(dst + 64 * i), x);
            sum = _mm512_dpbusd_epi32(sum, _mm512_set1_epi8(1), x);
        }
        __m512 da = _mm512_set1_ps(a[b].d);
        _mm512_store_ps((void *)(dst + 256), _mm512_mul_ps(_mm512_cvtepi32_ps(sum), da));
        _mm512_store_ps((void *)(dst + 320), da);
    }
}

static void prepare_q4_k(const void *act, int64_t len, void *dst)
{
    prepare_q8_k(act, len, false, dst);
}

static void prepare_q6_k(const void *act, int64_t len, void *dst)
{
    prepare_q8_k(act, len, true, dst);
}

static void strip_q4_k(const kernel_strip *s)
{
    lane_strip(s, q4_k_operands, sizeof(block_q4_k), LANE_KQUANT);
}

static void strip_q4_k_packed(const kernel_strip *s)
{
    lane_strip(s, q4_k_packed_operands, sizeof(block_q4_k), LANE_KQUANT);
}

static void strip_q6_k(const kernel_strip *s)
{
    lane_strip(s, q6_k_operands, sizeof(block_q6_k), LANE_KQUANT);
}

static void strip_q6_k_packed(const kernel_strip *s)
{
    lane_strip(s, q6_k_packed_operands, sizeof(block_q6_k), LANE_KQUANT);
}

// ---- K-quants x Q8_K: shared pieces ----

// 32 int16 lanes: lanes 16g..16g+15 hold scales[first + g] (two sub-blocks of 32 values).
ALWAYS_INLINE __m512i scales_2x16(const int16_t *scales, int first)
{
    return join256(_mm256_set1_epi16(scales[first]), _mm256_set1_epi16(scales[first + 1]));
}

// 32 int16 lanes: lane i holds sc16[first + i / 8] (four sub-blocks of 16 values), where
// sc16 holds 16 int16 scales in its low 256 bits.
ALWAYS_INLINE __m512i scales_4x8(__m512i sc16, int first)
{
    const __m512i step = _mm512_set_epi16(3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1,
                                          1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
    return _mm512_permutexvar_epi16(_mm512_add_epi16(step, _mm512_set1_epi16((short)first)), sc16);
}

// 64 activation codes of row k, super-block b, from value offset.
ALWAYS_INLINE __m512i load_act64(const void *act, size_t stride, int k, int64_t b, int offset)
{
    const block_q8_k *y = (const block_q8_k *)act_row(act, stride, k) + b;
    return _mm512_loadu_si512((const void *)(y->qs + offset));
}

// ---- Q5_K x Q8_K ----

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

// Scales lined up with packed chunk sums (kq_tile's paired kinds, sub-blocks of 32). x_c, the
// int32 sums of four products of chunk c (values 64c .. 64c + 63; int32 lanes 0-7 are its
// first sub-block, 8-15 its second), are packed two chunks to a register: packssdw(x0, x1)
// and packssdw(x2, x3), whose 128-bit lane L holds four sums of the first chunk (its int32
// lanes 4L..4L+3), then four of the second. scv[0] and scv[1] give each int16 lane of the two
// packs its sub-block's scale, from int16 lanes 0..7 of sc.
ALWAYS_INLINE void paired_scales(__m512i sc, __m512i scv[2])
{
    const __m512i idx = _mm512_set_epi16(3, 3, 3, 3, 1, 1, 1, 1, 3, 3, 3, 3, 1, 1, 1, 1, 2, 2, 2, 2,
                                         0, 0, 0, 0, 2, 2, 2, 2, 0, 0, 0, 0);
    scv[0] = _mm512_permutexvar_epi16(idx, sc);
    scv[1] = _mm512_permutexvar_epi16(_mm512_add_epi16(idx, _mm512_set1_epi16(4)), sc);
}

// The 64 codes of chunk c (values 64c..64c+63) of a Q5_K block.
ALWAYS_INLINE __m512i k4_chunk(const uint8_t *qs, const uint8_t *qh, int c)
{
    const __m256i low4 = _mm256_set1_epi8(0x0F), one = _mm256_set1_epi8(1);
    __m256i raw = _mm256_loadu_si256((const __m256i *)(qs + 32 * c));
    __m256i lo = _mm256_and_si256(raw, low4);
    __m256i hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), low4);
    __m256i bits = _mm256_loadu_si256((const __m256i *)qh);
    __m256i bit_lo = _mm256_and_si256(_mm256_srli_epi16(bits, 2 * c), one);
    __m256i bit_hi = _mm256_and_si256(_mm256_srli_epi16(bits, 2 * c + 1), one);
    lo = _mm256_or_si256(lo, _mm256_slli_epi16(bit_lo, 4));
    hi = _mm256_or_si256(hi, _mm256_slli_epi16(bit_hi, 4));
    return join256(lo, hi);
}

// ---- Q2_K and Q3_K x Q8_K (sub-blocks of 16) ----

// The two-bit codes of values 128h + 32j .. 128h + 32j + 31 (raw = qs[32h .. 32h + 31]).
ALWAYS_INLINE __m256i crumbs32(__m256i raw, int j)
{
    return _mm256_and_si256(_mm256_srli_epi16(raw, 2 * j), _mm256_set1_epi8(3));
}

// The three-bit codes (0..7) of values 128h + 32j .. + 31.
ALWAYS_INLINE __m256i q3_codes(__m256i raw, __m256i hm, int h, int j)
{
    __m256i high = _mm256_and_si256(_mm256_srli_epi16(hm, 4 * h + j), _mm256_set1_epi8(1));
    return _mm256_or_si256(crumbs32(raw, j), _mm256_slli_epi16(high, 2));
}

// ---- Q2_K, Q3_K and Q5_K x Q8_K: register tiles ----
//
// One super-block per step. A weight row's block unpacks into four registers of 64 unsigned
// codes, the sub-block scales lined up with maddubs's int16 pair sums (applied by dpwssd;
// Q5_K: with packed vpdpbusd sums, kq_paired), the factors of the activation's bsums (mins,
// or the scales times the code offset) and two float scales. A tile unpacks each of its
// rows' blocks once for all its activation rows. Every pair does the same arithmetic in any
// tile shape, so results equal the single dot.

// (Q4_K and Q6_K go through the lane product.)
enum kq_kind { KQ_Q2_K, KQ_Q3_K, KQ_Q5_K };

static const size_t kq_sizes[] = {sizeof(block_q2_k), sizeof(block_q3_k), sizeof(block_q5_k)};

enum { KQ_ROWS = 1, KQ_ACTS = 8 };

// Q5_K: chunk sums by vpdpbusd, packed in pairs and scaled (paired_scales): 6 multiplies for
// 4 chunks instead of 8 (maddubs and dpwssd each); it made Q4_K prompts 5-10 % faster before
// Q4_K moved to the lane product.
ALWAYS_INLINE bool kq_paired(enum kq_kind kind) { return kind == KQ_Q5_K; }

typedef struct kq_block {
    __m512i q[4];   // codes of values 64c .. 64c + 63
    __m512i scv[4]; // their sub-block scales, one per int16 pair sum (kq_paired: per pack)
    __m256i m16;    // the factors of the 16 bsums
    float d, d_b;   // the scales of the integer sum and of the bsums term
} kq_block;

// One weight super-block of kind at p, unpacked.
ALWAYS_INLINE kq_block kq_unpack(const uint8_t *p, enum kq_kind kind)
{
    kq_block k;
    switch (kind) {
    case KQ_Q5_K: {
        // x = d * sc * q - dmin * m per sub-block of 32.
        const block_q5_k *blk = (const block_q5_k *)p;
        __m512i sc;
        k4_unpack(blk->scales, &sc, &k.m16);
#pragma GCC unroll 8
        for (int c = 0; c < 4; c++)
            k.q[c] = k4_chunk(blk->qs, blk->qh, c);
        paired_scales(sc, k.scv);
        k.d = half(blk->d), k.d_b = -half(blk->dmin);
        return k;
    }
    case KQ_Q2_K: {
        // x = d * sc * q - dmin * m per sub-block of 16.
        const block_q2_k *blk = (const block_q2_k *)p;
        __m128i packed = _mm_loadu_si128((const __m128i *)blk->scales);
        __m256i sc16 = _mm256_cvtepu8_epi16(_mm_and_si128(packed, _mm_set1_epi8(0x0F)));
        k.m16 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(packed, 4), _mm_set1_epi8(0x0F)));
#pragma GCC unroll 8
        for (int h = 0; h < 2; h++) {
            __m256i raw = _mm256_loadu_si256((const __m256i *)(blk->qs + 32 * h));
            k.q[2 * h] = join256(crumbs32(raw, 0), crumbs32(raw, 1));
            k.q[2 * h + 1] = join256(crumbs32(raw, 2), crumbs32(raw, 3));
#pragma GCC unroll 8
            for (int g = 0; g < 2; g++)
                k.scv[2 * h + g] = scales_4x8(_mm512_castsi256_si512(sc16), 8 * h + 4 * g);
        }
        k.d = half(blk->d), k.d_b = -half(blk->dmin);
        return k;
    }
    default: {
        // Q3_K: x = d * (sc - 32) * (q - 4): codes 0..7, the -4 through the bsums.
        const block_q3_k *blk = (const block_q3_k *)p;
        uint8_t codes6[16];
        kernel_k3_scales(blk->scales, codes6);
        k.m16 = _mm256_sub_epi16(_mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)codes6)),
                                 _mm256_set1_epi16(32));
        __m256i hm = _mm256_loadu_si256((const __m256i *)blk->hmask);
#pragma GCC unroll 8
        for (int h = 0; h < 2; h++) {
            __m256i raw = _mm256_loadu_si256((const __m256i *)(blk->qs + 32 * h));
            k.q[2 * h] = join256(q3_codes(raw, hm, h, 0), q3_codes(raw, hm, h, 1));
            k.q[2 * h + 1] = join256(q3_codes(raw, hm, h, 2), q3_codes(raw, hm, h, 3));
#pragma GCC unroll 8
            for (int g = 0; g < 2; g++)
                k.scv[2 * h + g] = scales_4x8(_mm512_castsi256_si512(k.m16), 8 * h + 4 * g);
        }
        k.d = half(blk->d), k.d_b = -4.0f * k.d;
        return k;
    }
    }
}

// An R x C tile over n values: R weight rows from w (ws bytes apart; rows past nr repeat the
// last) and C Q8_K rows from act (as bytes apart; rows past nc repeat the last); stores the
// nr x nc dots at y[k * ldy + r].
ALWAYS_INLINE void kq_tile(const uint8_t *w, size_t ws, int nr, const uint8_t *act, size_t as,
                           int nc, int64_t n, float *y, int64_t ldy, int R, int C,
                           enum kq_kind kind)
{
    __m512 acc[KQ_ROWS][KQ_ACTS];
    __m256 acc_b[KQ_ROWS][KQ_ACTS];
    const uint8_t *rows[KQ_ROWS], *acts[KQ_ACTS];
    tile_rows(rows, w, ws, nr, R);
    tile_rows(acts, act, as, nc, C);
#pragma GCC unroll 8
    for (int r = 0; r < KQ_ROWS; r++)
#pragma GCC unroll 8
        for (int k = 0; k < KQ_ACTS; k++)
            acc[r][k] = _mm512_setzero_ps(), acc_b[r][k] = _mm256_setzero_ps();
    size_t size = kq_sizes[kind], ahead = (size_t)R * ws;
    for (int64_t b = 0; b < n / QK_K; b++) {
        kq_block blk[KQ_ROWS];
        __m512 d[KQ_ROWS];
        __m256 d_b[KQ_ROWS];
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) {
            const uint8_t *p = rows[r] + (size_t)b * size;
            if (R > 1)
                prefetch_lines(p + ahead, size);
            blk[r] = kq_unpack(p, kind);
            d[r] = _mm512_set1_ps(blk[r].d), d_b[r] = _mm256_set1_ps(blk[r].d_b);
        }
#pragma GCC unroll 8
        for (int k = 0; k < C; k++) {
            const block_q8_k *yb = (const block_q8_k *)acts[k] + b;
            __m512i isum[KQ_ROWS];
#pragma GCC unroll 8
            for (int r = 0; r < R; r++)
                isum[r] = _mm512_setzero_si512();
            if (kq_paired(kind)) {
                // Sums of four products (|sum| <= 4 * 31 * 127, int16 range) per int32 lane,
                // packed two chunks to a register, then scaled by paired_scales.
                __m512i x[KQ_ROWS][4];
#pragma GCC unroll 4
                for (int c = 0; c < 4; c++) {
                    __m512i a = _mm512_loadu_si512((const void *)(yb->qs + 64 * c));
#pragma GCC unroll 8
                    for (int r = 0; r < R; r++)
                        x[r][c] = _mm512_dpbusd_epi32(_mm512_setzero_si512(), blk[r].q[c], a);
                }
#pragma GCC unroll 8
                for (int r = 0; r < R; r++) {
                    isum[r] = _mm512_dpwssd_epi32(isum[r], _mm512_packs_epi32(x[r][0], x[r][1]),
                                                  blk[r].scv[0]);
                    isum[r] = _mm512_dpwssd_epi32(isum[r], _mm512_packs_epi32(x[r][2], x[r][3]),
                                                  blk[r].scv[1]);
                }
            } else {
#pragma GCC unroll 4
                for (int c = 0; c < 4; c++) {
                    __m512i a = _mm512_loadu_si512((const void *)(yb->qs + 64 * c));
#pragma GCC unroll 8
                    for (int r = 0; r < R; r++)
                        isum[r] = _mm512_dpwssd_epi32(isum[r], _mm512_maddubs_epi16(blk[r].q[c], a),
                                                      blk[r].scv[c]);
                }
            }
            __m256i bsums = _mm256_loadu_si256((const __m256i *)yb->bsums);
            __m512 yd = _mm512_set1_ps(yb->d);
#pragma GCC unroll 8
            for (int r = 0; r < R; r++) {
                __m256i corr = _mm256_madd_epi16(bsums, blk[r].m16);
                acc[r][k] = _mm512_fmadd_ps(_mm512_mul_ps(d[r], yd), _mm512_cvtepi32_ps(isum[r]),
                                            acc[r][k]);
                acc_b[r][k] = _mm256_fmadd_ps(_mm256_mul_ps(d_b[r], _mm512_castps512_ps256(yd)),
                                              _mm256_cvtepi32_ps(corr), acc_b[r][k]);
            }
        }
    }
    tile_finish(y, ldy, true, &acc[0][0], &acc_b[0][0], KQ_ACTS, R, C, nr, nc);
}

// The strip of a Q2_K, Q3_K or Q5_K product (whole rows, so the tiles store their sums):
// row by row, each by the smallest tile shape with code of its own that covers the strip's
// activation rows (in sanitizer builds: the single pair or the full tile).
ALWAYS_INLINE void kq_strip(const kernel_strip *s, enum kq_kind kind)
{
    static_assert(KQ_ROWS == 1 && KQ_ACTS == 8, "one case per shape");
    int nc = s->n_act, c = nc == 1 ? 1 : FEW_SHAPES ? 8 : nc <= 2 ? 2 : nc <= 4 ? 4 : 8;
    size_t ws = s->w_stride, as = s->act_stride;
    for (int64_t r = 0; r < s->rows; r++) {
        const uint8_t *w = s->w + (size_t)r * ws;
        float *y = s->y + r;
        switch (c) {
        case 1: kq_tile(w, ws, 1, s->act, as, 1, s->len, y, s->ldy, 1, 1, kind); break;
        case 2: kq_tile(w, ws, 1, s->act, as, nc, s->len, y, s->ldy, KQ_ROWS, 2, kind); break;
        case 4: kq_tile(w, ws, 1, s->act, as, nc, s->len, y, s->ldy, KQ_ROWS, 4, kind); break;
        default: kq_tile(w, ws, 1, s->act, as, nc, s->len, y, s->ldy, KQ_ROWS, 8, kind); break;
        }
    }
}

static void strip_q2_k(const kernel_strip *s) { kq_strip(s, KQ_Q2_K); }

static void strip_q3_k(const kernel_strip *s) { kq_strip(s, KQ_Q3_K); }

static void strip_q5_k(const kernel_strip *s) { kq_strip(s, KQ_Q5_K); }

// ---- IQ4_XS x Q8_K: x = d * (ls - 32) * grid[q] per sub-block of 32 ----

// The dots of one IQ4_XS row with `rows` Q8_K rows: grid values by byte shuffle, |x| and
// sign(x) * a into maddubs, the sub-block scales by dpwssd.
ALWAYS_INLINE void iq4_xs_rows(const void *w, const void *act, size_t stride, int64_t n, int rows,
                               float *out)
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

static void dot_iq4_xs_q8_k_x4(const void *w, const void *a, size_t stride, int64_t n, float out[4])
{
    iq4_xs_rows(w, a, stride, n, 4, out);
}

// The K-quants' single dots are their products' 1 x 1 case (NULL dot).
const kernel_type_ops kernel_avx512_kquant_type_ops[TENSOR_TYPE_COUNT] = {
    [TENSOR_TYPE_Q2_K] = {.product = {.strip = strip_q2_k,
                                      .tile_rows = KQ_ROWS,
                                      .tile_acts = KQ_ACTS}},
    [TENSOR_TYPE_Q3_K] = {.product = {.strip = strip_q3_k,
                                      .tile_rows = KQ_ROWS,
                                      .tile_acts = KQ_ACTS}},
    [TENSOR_TYPE_Q4_K] = {.product = LANE_PRODUCT(strip_q4_k, prepare_q4_k),
                          .pack = pack_q4_k,
                          .packed = LANE_PRODUCT(strip_q4_k_packed, prepare_q4_k)},
    [TENSOR_TYPE_Q5_K] = {.product = {.strip = strip_q5_k,
                                      .tile_rows = KQ_ROWS,
                                      .tile_acts = KQ_ACTS}},
    [TENSOR_TYPE_Q6_K] = {.product = LANE_PRODUCT(strip_q6_k, prepare_q6_k),
                          .pack = pack_q6_k,
                          .packed = LANE_PRODUCT(strip_q6_k_packed, prepare_q6_k)},
    [TENSOR_TYPE_IQ4_XS] = {.dot = dot_iq4_xs_q8_k, .product = KERNEL_BY_DOTS(dot_iq4_xs_q8_k_x4)},
};
#endif
