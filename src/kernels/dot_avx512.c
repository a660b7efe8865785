// SPDX-License-Identifier: MIT
// AVX-512 (F/BW/DQ/VL) + VNNI dot products and matrix products, compiled with the AVX-512
// flags and chosen at run time only when cpuid reports those extensions. Weights paired with
// Q8_0 (Q4_0, Q5_0, Q8_0, IQ4_NL) go eight blocks per step through dpbusd against activation
// rows rearranged once per call ("prepared"), in register tiles of 2 weight x 6 activation
// rows; K-quant super-blocks go 64 values at a time, dpwssd applying the sub-block scales to
// maddubs's pair sums, in tiles of 1 x 8. Each tile kernel is written once over its shape and
// its single dot is the 1 x 1 tile, so every pair's result is the same in any batch. The
// other types keep kernels over 1 or 4 activation rows, as in the AVX2 file.
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

// ---- weights x Q8_0: Q4_0, Q5_0, Q8_0, IQ4_NL, by a matrix product on prepared activations ----
//
// Eight blocks (256 values) per step, each block's integer sum spread over two dword lanes:
// lanes 4i, 4i + 1 hold block i and lanes 4i + 2, 4i + 3 block 4 + i (i = 0..3). Four
// operands x0..x3 hold values 0..7, 8..15, 16..23 and 24..31 of every block in those lanes,
// so four dpbusd leave all eight blocks' sums in one register and one multiply-add applies
// their scales. dpbusd multiplies unsigned by signed bytes: weight codes carry an offset o
// that makes them unsigned (Q4_0 stores q + 8 already) and the sums start from
// -o * sum(a). The activation side (operands, starting sums, scales spread over the lanes) is
// rearranged once per tile of activation rows into a buffer on the stack, "prepared", and
// then read by every weight row. Blocks are gathered from their packed layout by word
// permutes of 128-byte windows that reach no byte past the row's last block. Rows are split
// into chunks of GEMM_CHUNK values whose float sums are added in order; every shape of tile,
// the single dot included, does each pair's arithmetic the same way.
//
// Q4_K goes through the same product (KIND_Q4_K): a super-block is one step, its eight
// sub-blocks of 32 take the place of the eight blocks, and the activation is a Q8_K
// super-block. Lanes 4L, 4L + 1 hold sub-block 2L and lanes 4L + 2, 4L + 3 sub-block 2L + 1
// (L = 0..3): operand i, 128-bit lane L, is values 8i..8i+7 of sub-block 2L, then of
// sub-block 2L + 1 (the low and high nibbles of code bytes 32L + 8i .. 32L + 8i + 7). The
// weights give two float factors per lane, d * sc and -dmin * m of its sub-block; the prepared
// activation gives d_a and d_a times the sum of the lane's 16 activation codes, so a pair
// adds float(sums) * (d * sc) * d_a and -dmin * m * d_a * (code sum): four dpbusd, one
// conversion, one multiply and two multiply-adds a super-block.
//
// Q6_K too (KIND_Q6_K): each of the 16 lanes holds one sub-block of 16 (operand i, lane m:
// values 16m + 4i .. 16m + 4i + 3), the factors are d * sc and -32 * d * sc (the codes' offset
// applied like Q4_K's minimums).

// KIND_*_PACKED: rows in the packed layouts of pack_q4_0, pack_q8_0, pack_q4_k, pack_q6_k.
enum legacy_kind {
    KIND_Q4_0, KIND_Q5_0, KIND_Q8_0, KIND_IQ4_NL, KIND_Q4_0_PACKED, KIND_Q8_0_PACKED, KIND_Q4_K,
    KIND_Q4_K_PACKED, KIND_Q6_K, KIND_Q6_K_PACKED
};

// Bytes per step (256 values), and the offset that makes codes unsigned (K-quants: none).
static const int legacy_step_bytes[] = {
    8 * sizeof(block_q4_0), 8 * sizeof(block_q5_0), 8 * sizeof(block_q8_0),
    8 * sizeof(block_iq4_nl), 8 * sizeof(block_q4_0), 8 * sizeof(block_q8_0),
    sizeof(block_q4_k), sizeof(block_q4_k), sizeof(block_q6_k), sizeof(block_q6_k)};
static const int legacy_offsets[] = {8, 16, 128, 128, 8, 128, 0, 0, 0, 0};

// The K-quant kinds: whole super-blocks, a minimum term per lane, Q8_K activations.
ALWAYS_INLINE bool kind_k(enum legacy_kind kind)
{
    return kind >= KIND_Q4_K;
}

ALWAYS_INLINE bool kind_k6(enum legacy_kind kind)
{
    return kind == KIND_Q6_K || kind == KIND_Q6_K_PACKED;
}

enum {
    K_PREFETCH = 8192,            // bytes ahead a single K-quant row prefetches
    GEMM_STEP = 256,              // values per step
    GEMM_CHUNK = 8192,            // values per chunk
    GEMM_STEP_BYTES = 6 * 64,     // prepared bytes per step and activation row
    GEMM_ROWS = 2,                // weight rows per register tile
    GEMM_ACTS = 6,                // activation rows per register tile
    GEMM_PANEL_BYTES = 384 << 10, // weight bytes per panel (stays in L2)
};

// Word indices for the gathers: out word i takes word idx[i] of a 128-byte window.
// 18-byte blocks (Q4_0, IQ4_NL): codes of blocks 0..3 from byte 0 and of blocks 4..7 from
// byte 16; the eight scales spread over their lanes.
static const uint16_t idx_qs18a[32] __attribute__((aligned(64))) = {
    1,  2,  3,  4,  5,  6,  7,  8,  10, 11, 12, 13, 14, 15, 16, 17,
    19, 20, 21, 22, 23, 24, 25, 26, 28, 29, 30, 31, 32, 33, 34, 35,
};
static const uint16_t idx_qs18b[32] __attribute__((aligned(64))) = {
    29, 30, 31, 32, 33, 34, 35, 36, 38, 39, 40, 41, 42, 43, 44, 45,
    47, 48, 49, 50, 51, 52, 53, 54, 56, 57, 58, 59, 60, 61, 62, 63,
};
static const uint16_t idx_d18[32] __attribute__((aligned(64))) = {
    0, 0, 36, 36, 9, 9, 45, 45, 18, 18, 54, 54, 27, 27, 63, 63,
    0, 0, 0,  0,  0, 0, 0,  0,  0,  0,  0,  0,  0,  0,  0,  0,
};
// 22-byte blocks (Q5_0): codes of blocks 0..3 from byte 0 and 4..7 from byte 48; then, from
// the same two windows (blended by lane), the spread scales in words 0..15 and the fifth
// bits qh of blocks 0, 4, 1, 5, 2, 6, 3, 7 in words 16..31.
static const uint16_t idx_qs22a[32] __attribute__((aligned(64))) = {
    3,  4,  5,  6,  7,  8,  9,  10, 14, 15, 16, 17, 18, 19, 20, 21,
    25, 26, 27, 28, 29, 30, 31, 32, 36, 37, 38, 39, 40, 41, 42, 43,
};
static const uint16_t idx_qs22b[32] __attribute__((aligned(64))) = {
    23, 24, 25, 26, 27, 28, 29, 30, 34, 35, 36, 37, 38, 39, 40, 41,
    45, 46, 47, 48, 49, 50, 51, 52, 56, 57, 58, 59, 60, 61, 62, 63,
};
static const uint16_t idx_dqh22a[32] __attribute__((aligned(64))) = {
    0, 0, 0, 0, 11, 11, 0, 0, 22, 22, 0, 0, 33, 33, 0, 0,
    1, 2, 0, 0, 12, 13, 0, 0, 23, 24, 0, 0, 34, 35, 0, 0,
};
static const uint16_t idx_dqh22b[32] __attribute__((aligned(64))) = {
    0, 0, 20, 20, 0, 0, 31, 31, 0, 0, 42, 42, 0, 0, 53, 53,
    0, 0, 21, 22, 0, 0, 32, 33, 0, 0, 43, 44, 0, 0, 54, 55,
};
// 34-byte blocks (Q8_0): values 0..15 of blocks 0..3 from byte 0 (4..7: from byte 136) and
// values 16..31 from byte 8 (4..7: from byte 144); the scales of blocks 0..3 (4..7) from
// byte 0 (136), one per four words.
static const uint16_t idx_lo34[32] __attribute__((aligned(64))) = {
    1,  2,  3,  4,  5,  6,  7,  8,  18, 19, 20, 21, 22, 23, 24, 25,
    35, 36, 37, 38, 39, 40, 41, 42, 52, 53, 54, 55, 56, 57, 58, 59,
};
static const uint16_t idx_hi34[32] __attribute__((aligned(64))) = {
    5,  6,  7,  8,  9,  10, 11, 12, 22, 23, 24, 25, 26, 27, 28, 29,
    39, 40, 41, 42, 43, 44, 45, 46, 56, 57, 58, 59, 60, 61, 62, 63,
};
static const uint16_t idx_d34[32] __attribute__((aligned(64))) = {
    0, 0, 0, 0, 17, 17, 17, 17, 34, 34, 34, 34, 51, 51, 51, 51,
    0, 0, 0, 0, 0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,
};

// Bytes [from, from + 64) of p, zero from byte `end` on (nothing past it is read).
ALWAYS_INLINE __m512i load_upto(const uint8_t *p, int from, int end)
{
    int count = end - from;
    if (count >= 64)
        return _mm512_loadu_si512((const void *)(p + from));
    if (count <= 0)
        return _mm512_setzero_si512();
    return _mm512_maskz_loadu_epi8((__mmask64)((1ull << count) - 1), p + from);
}

// The words idx of the 128-byte window at p + from (bytes from `end` on read as zero).
ALWAYS_INLINE __m512i gather_words(const uint8_t *p, int from, int end, const uint16_t *idx)
{
    return _mm512_permutex2var_epi16(load_upto(p, from, end), _mm512_load_si512(idx),
                                     load_upto(p, from + 64, end));
}

// The 16 half scales in the low 256 bits of v as floats.
ALWAYS_INLINE __m512 halves16(__m512i v)
{
    return _mm512_cvtph_ps(_mm512_castsi512_si256(v));
}

typedef struct gemm_ops {
    __m512i x[4]; // values 0..7, 8..15, 16..23, 24..31 of the eight blocks, in lane order
    __m512 d;     // the blocks' scales in their lanes
    __m512 m;     // Q4_K: -dmin * m of each lane's sub-block
} gemm_ops;

// Operands from the codes of blocks 0..3 (lo/hi: values 0..15 / 16..31, block i in 128-bit
// lane i) and of blocks 4..7.
ALWAYS_INLINE void gemm_interleave(__m512i lo_a, __m512i hi_a, __m512i lo_b, __m512i hi_b,
                                   __m512i x[4])
{
    x[0] = _mm512_unpacklo_epi64(lo_a, lo_b);
    x[1] = _mm512_unpackhi_epi64(lo_a, lo_b);
    x[2] = _mm512_unpacklo_epi64(hi_a, hi_b);
    x[3] = _mm512_unpackhi_epi64(hi_a, hi_b);
}

// Operands 0 and 1 from the low nibbles of raw0 and raw1, 2 and 3 from their high ones (the
// layout of gemm_nibbles and of the packed Q4_0, Q4_K and Q6_K rows); join_nibbles is the
// inverse.
ALWAYS_INLINE void split_nibbles(__m512i raw0, __m512i raw1, __m512i x[4])
{
    const __m512i low4 = _mm512_set1_epi8(0x0F);
    x[0] = _mm512_and_si512(raw0, low4);
    x[1] = _mm512_and_si512(raw1, low4);
    x[2] = _mm512_and_si512(_mm512_srli_epi16(raw0, 4), low4);
    x[3] = _mm512_and_si512(_mm512_srli_epi16(raw1, 4), low4);
}

// Stores operands of four bits as split_nibbles reads them: 128 bytes at dst.
ALWAYS_INLINE void join_nibbles(const __m512i x[4], uint8_t *dst)
{
    _mm512_storeu_si512((void *)dst, _mm512_or_si512(x[0], _mm512_slli_epi16(x[2], 4)));
    _mm512_storeu_si512((void *)(dst + 64), _mm512_or_si512(x[1], _mm512_slli_epi16(x[3], 4)));
}

// Operands from 16 packed nibble bytes per block (block i of raw_a in 128-bit lane i, block
// 4 + i of raw_b): low nibbles are values 0..15, high ones 16..31.
ALWAYS_INLINE void gemm_nibbles(__m512i raw_a, __m512i raw_b, __m512i x[4])
{
    split_nibbles(_mm512_unpacklo_epi64(raw_a, raw_b), _mm512_unpackhi_epi64(raw_a, raw_b), x);
}

// Eight 34-byte blocks from p (nblk present, the rest zero): signed codes and scales.
ALWAYS_INLINE gemm_ops gemm_q8_0_blocks(const uint8_t *p, int nblk)
{
    int end = nblk * (int)sizeof(block_q8_0);
    __m512i a0 = load_upto(p, 0, end), a1 = load_upto(p, 64, end);
    __m512i b0 = load_upto(p, 136, end), b1 = load_upto(p, 200, end);
    const __m512i idx_lo = _mm512_load_si512(idx_lo34), idx_d = _mm512_load_si512(idx_d34);
    __m512i lo_a = _mm512_permutex2var_epi16(a0, idx_lo, a1);
    __m512i lo_b = _mm512_permutex2var_epi16(b0, idx_lo, b1);
    __m512i hi_a = gather_words(p, 8, end, idx_hi34);
    __m512i hi_b = gather_words(p, 144, end, idx_hi34);
    __m512i d16 = _mm512_mask_blend_epi16(0xCCCCCCCC, _mm512_permutex2var_epi16(a0, idx_d, a1),
                                          _mm512_permutex2var_epi16(b0, idx_d, b1));
    gemm_ops s;
    gemm_interleave(lo_a, hi_a, lo_b, hi_b, s.x);
    s.d = halves16(d16);
    return s;
}

// The fifth bits of eight Q5_0 blocks, qh words of blocks 0, 4, 1, 5, 2, 6, 3, 7 in the
// high 256 bits of dqh, added (as 16) to the operands' codes.
ALWAYS_INLINE void gemm_fifth_bits(__m512i dqh, __m512i x[4])
{
    // Byte q of every qh word into qword q: qword q is then the bit mask of operand q.
    const __m256i by_byte = _mm256_broadcastsi128_si256(
        _mm_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15));
    __m256i t = _mm256_shuffle_epi8(_mm512_extracti64x4_epi64(dqh, 1), by_byte);
    t = _mm256_permutevar8x32_epi32(t, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    __m128i m01 = _mm256_castsi256_si128(t), m23 = _mm256_extracti128_si256(t, 1);
    const uint64_t masks[4] = {
        (uint64_t)_mm_cvtsi128_si64(m01), (uint64_t)_mm_extract_epi64(m01, 1),
        (uint64_t)_mm_cvtsi128_si64(m23), (uint64_t)_mm_extract_epi64(m23, 1)};
#pragma GCC unroll 8
    for (int q = 0; q < 4; q++)
        x[q] = _mm512_or_si512(x[q], _mm512_maskz_set1_epi8((__mmask64)masks[q], 16));
}

// The packed Q4_0 layout: every whole group of eight blocks of a row (144 bytes) is stored
// as the operands' bytes, in the order gemm_nibbles makes them (raw0: for i = 0..3 codes
// 0..7 of block i then of block 4 + i; raw1: codes 8..15 likewise), then the eight half
// scales in the order 0, 4, 1, 5, 2, 6, 3, 7. Blocks after the last whole group stay as they
// are. Rows keep their size, so row offsets do not change; the loads need no permutes.
static void pack_q4_0(const void *row, void *dst, int64_t n)
{
    static const int d_order[8] = {0, 4, 1, 5, 2, 6, 3, 7};
    const block_q4_0 *b = row;
    uint8_t *out = dst;
    int64_t nb = n / QK4_0, g = 0;
    for (; g + 8 <= nb; g += 8, out += 8 * sizeof(block_q4_0)) {
        const block_q4_0 *x = b + g;
        uint8_t tmp[8 * sizeof(block_q4_0)];
        for (int i = 0; i < 4; i++) {
            memcpy(tmp + 16 * i, x[i].qs, 8);
            memcpy(tmp + 16 * i + 8, x[4 + i].qs, 8);
            memcpy(tmp + 64 + 16 * i, x[i].qs + 8, 8);
            memcpy(tmp + 64 + 16 * i + 8, x[4 + i].qs + 8, 8);
        }
        for (int i = 0; i < 8; i++)
            memcpy(tmp + 128 + 2 * i, &x[d_order[i]].d, 2);
        memcpy(out, tmp, sizeof tmp);
    }
    memmove(out, b + g, (size_t)(nb - g) * sizeof(block_q4_0));
}

// The packed Q8_0 layout: every whole group of eight blocks of a row (272 bytes) is stored
// as the four operands gemm_weights makes (codes made unsigned, 256 bytes), then the eight
// half scales in the order 0, 4, 1, 5, 2, 6, 3, 7; blocks after the last whole group stay.
static void pack_q8_0(const void *row, void *dst, int64_t n)
{
    static const int d_order[8] = {0, 4, 1, 5, 2, 6, 3, 7};
    const uint8_t *src = row;
    uint8_t *out = dst;
    int64_t nb = n / QK8_0, g = 0;
    for (; g + 8 <= nb; g += 8) {
        const uint8_t *p = src + (size_t)g * sizeof(block_q8_0);
        gemm_ops v = gemm_q8_0_blocks(p, 8);
        uint8_t tmp[8 * sizeof(block_q8_0)];
        for (int i = 0; i < 4; i++)
            _mm512_storeu_si512((void *)(tmp + 64 * i),
                                _mm512_xor_si512(v.x[i], _mm512_set1_epi8((char)0x80)));
        for (int i = 0; i < 8; i++)
            memcpy(tmp + 256 + 2 * i, p + (size_t)d_order[i] * sizeof(block_q8_0), 2);
        memcpy(out + (size_t)g * sizeof(block_q8_0), tmp, sizeof tmp);
    }
    memmove(out + (size_t)g * sizeof(block_q8_0), src + (size_t)g * sizeof(block_q8_0),
            (size_t)(nb - g) * sizeof(block_q8_0));
}

// The eight scales stored at p in the order 0, 4, 1, 5, 2, 6, 3, 7, spread over their lanes.
ALWAYS_INLINE __m512 packed_scales(const uint8_t *p)
{
    __m256 d8 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
    return _mm512_permutexvar_ps(_mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7),
                                 _mm512_castps256_ps512(d8));
}

// Eight packed Q8_0 blocks.
ALWAYS_INLINE gemm_ops gemm_q8_0_packed(const uint8_t *p)
{
    gemm_ops s;
#pragma GCC unroll 8
    for (int i = 0; i < 4; i++)
        s.x[i] = _mm512_loadu_si512((const void *)(p + 64 * i));
    s.d = packed_scales(p + 256);
    return s;
}

// Eight packed Q4_0 blocks: the same operands and scales gemm_weights makes from the plain
// layout.
ALWAYS_INLINE gemm_ops gemm_q4_0_packed(const uint8_t *p)
{
    gemm_ops s;
    split_nibbles(_mm512_loadu_si512((const void *)p), _mm512_loadu_si512((const void *)(p + 64)),
                  s.x);
    s.d = packed_scales(p + 128);
    return s;
}

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
ALWAYS_INLINE void k4_lane_factors(const block_q4_k *blk, gemm_ops *s)
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
ALWAYS_INLINE gemm_ops gemm_q4_k_plain(const uint8_t *p)
{
    const block_q4_k *blk = (const block_q4_k *)p;
    const __m512i low4 = _mm512_set1_epi8(0x0F), shifts = _mm512_setr_epi64(0, 4, 0, 4, 0, 4, 0, 4);
    __m512i q0 = _mm512_loadu_si512((const void *)blk->qs);
    __m512i q1 = _mm512_loadu_si512((const void *)(blk->qs + 64));
    gemm_ops s;
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
        gemm_ops s = gemm_q4_k_plain((const uint8_t *)&blk);
        join_nibbles(s.x, blk.qs);
        out[b] = blk;
    }
}

ALWAYS_INLINE gemm_ops gemm_q4_k_packed(const uint8_t *p)
{
    const block_q4_k *blk = (const block_q4_k *)p;
    gemm_ops s;
    split_nibbles(_mm512_loadu_si512((const void *)blk->qs),
                  _mm512_loadu_si512((const void *)(blk->qs + 64)), s.x);
    k4_lane_factors(blk, &s);
    return s;
}

// The lane factors of a Q6_K super-block: d * sc and -32 * d * sc of lane m's sub-block m.
ALWAYS_INLINE void k6_lane_factors(const block_q6_k *blk, gemm_ops *s)
{
    __m512 sc = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)blk->scales)));
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
ALWAYS_INLINE gemm_ops gemm_q6_k_plain(const uint8_t *p)
{
    const block_q6_k *blk = (const block_q6_k *)p;
    __m512i q[4];
    q6_unpack(blk, 0, &q[0]);
    q6_unpack(blk, 1, &q[2]);
    gemm_ops s;
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
        gemm_ops s = gemm_q6_k_plain((const uint8_t *)&blk);
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

ALWAYS_INLINE gemm_ops gemm_q6_k_packed(const uint8_t *p)
{
    const block_q6_k *blk = (const block_q6_k *)p;
    const __m512i top2 = _mm512_set1_epi8(0x30);
    __m512i hi = _mm512_loadu_si512((const void *)(p + 128));
    gemm_ops s;
    split_nibbles(_mm512_loadu_si512((const void *)p), _mm512_loadu_si512((const void *)(p + 64)),
                  s.x);
    s.x[0] = _mm512_or_si512(s.x[0], _mm512_and_si512(_mm512_slli_epi16(hi, 4), top2));
    s.x[1] = _mm512_or_si512(s.x[1], _mm512_and_si512(_mm512_slli_epi16(hi, 2), top2));
    s.x[2] = _mm512_or_si512(s.x[2], _mm512_and_si512(hi, top2));
    s.x[3] = _mm512_or_si512(s.x[3], _mm512_and_si512(_mm512_srli_epi16(hi, 2), top2));
    k6_lane_factors(blk, &s);
    return s;
}

// Eight weight blocks of kind from p (nblk present): codes made unsigned by the kind's
// offset, and scales.
ALWAYS_INLINE gemm_ops gemm_weights(const uint8_t *p, int nblk, enum legacy_kind kind)
{
    if (kind == KIND_Q4_K) // whole super-blocks only
        return gemm_q4_k_plain(p);
    if (kind == KIND_Q4_K_PACKED)
        return gemm_q4_k_packed(p);
    if (kind == KIND_Q6_K)
        return gemm_q6_k_plain(p);
    if (kind == KIND_Q6_K_PACKED)
        return gemm_q6_k_packed(p);
    if (kind == KIND_Q4_0_PACKED) {
        if (nblk == 8)
            return gemm_q4_0_packed(p);
        kind = KIND_Q4_0; // the blocks after the last whole group are plain
    }
    if (kind == KIND_Q8_0_PACKED) {
        if (nblk == 8)
            return gemm_q8_0_packed(p);
        kind = KIND_Q8_0;
    }
    gemm_ops s;
    if (kind == KIND_Q8_0) {
        s = gemm_q8_0_blocks(p, nblk);
#pragma GCC unroll 8
        for (int i = 0; i < 4; i++)
            s.x[i] = _mm512_xor_si512(s.x[i], _mm512_set1_epi8((char)0x80));
        return s;
    }
    int end = nblk * legacy_step_bytes[kind] / 8;
    if (kind == KIND_Q5_0) {
        __m512i a0 = load_upto(p, 0, end), a1 = load_upto(p, 64, end);
        __m512i b0 = load_upto(p, 48, end), b1 = load_upto(p, 112, end);
        gemm_nibbles(_mm512_permutex2var_epi16(a0, _mm512_load_si512(idx_qs22a), a1),
                     _mm512_permutex2var_epi16(b0, _mm512_load_si512(idx_qs22b), b1), s.x);
        __m512i dqh = _mm512_mask_blend_epi16(
            0xCCCCCCCC, _mm512_permutex2var_epi16(a0, _mm512_load_si512(idx_dqh22a), a1),
            _mm512_permutex2var_epi16(b0, _mm512_load_si512(idx_dqh22b), b1));
        gemm_fifth_bits(dqh, s.x);
        s.d = halves16(dqh);
        return s;
    }
    __m512i a0 = load_upto(p, 0, end), a1 = load_upto(p, 64, end);
    gemm_nibbles(_mm512_permutex2var_epi16(a0, _mm512_load_si512(idx_qs18a), a1),
                 gather_words(p, 16, end, idx_qs18b), s.x);
    s.d = halves16(_mm512_permutex2var_epi16(a0, _mm512_load_si512(idx_d18), a1));
    if (kind == KIND_IQ4_NL) {
        // The grid plus 128, as unsigned bytes.
        const __m512i grid = _mm512_xor_si512(
            _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)tensor_iq4_nl_values)),
            _mm512_set1_epi8((char)0x80));
#pragma GCC unroll 8
        for (int i = 0; i < 4; i++)
            s.x[i] = _mm512_shuffle_epi8(grid, s.x[i]);
    }
    return s;
}

// Prepares `steps` steps (the last one of nblk_last blocks) of one Q8_0 activation row from a
// into dst (GEMM_STEP_BYTES per step): x0..x3, the starting sums -offset * (four-byte sums of
// the codes) and the spread scales.
static void gemm_prepare(const uint8_t *a, int steps, int nblk_last, int offset, uint8_t *dst)
{
    const __m512i off = _mm512_set1_epi8((char)offset);
    for (int s = 0; s < steps; s++) {
        gemm_ops v = gemm_q8_0_blocks(a + (size_t)s * 8 * sizeof(block_q8_0),
                                      s + 1 < steps ? 8 : nblk_last);
        __m512i sum = _mm512_setzero_si512();
#pragma GCC unroll 8
        for (int i = 0; i < 4; i++) {
            _mm512_store_si512((void *)(dst + 64 * i), v.x[i]);
            sum = _mm512_dpbusd_epi32(sum, off, v.x[i]);
        }
        _mm512_store_si512((void *)(dst + 256), _mm512_sub_epi32(_mm512_setzero_si512(), sum));
        _mm512_store_ps((void *)(dst + 320), v.d);
        dst += GEMM_STEP_BYTES;
    }
}

// Prepares `steps` super-blocks of one Q8_K activation row from a into dst for the K-quant
// kinds: x0..x3 (Q4_K: operand i, 128-bit lane L, is code qwords 8L + i and 8L + 4 + i; Q6_K
// (k6): dword lane m is code dword 4m + i), d_a times each lane's code sum, and d_a in every
// lane.
static void gemm_prepare_k(const block_q8_k *a, int steps, bool k6, uint8_t *dst)
{
    for (int s = 0; s < steps; s++, dst += GEMM_STEP_BYTES) {
        const int8_t *qs = a[s].qs;
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
        __m512 da = _mm512_set1_ps(a[s].d);
        _mm512_store_ps((void *)(dst + 256), _mm512_mul_ps(_mm512_cvtepi32_ps(sum), da));
        _mm512_store_ps((void *)(dst + 320), da);
    }
}

// Which tile shapes get their own code: every act count up to GEMM_ACTS in optimized builds;
// in sanitizer builds only the full tile and the single pair, which keeps their compile time
// short (a smaller tile then computes duplicated rows and stores only its own). The arithmetic
// of a pair does not depend on the shape, so neither do results.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_UNDEFINED__)
#define GEMM_FEW_SHAPES 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(undefined_behavior_sanitizer)
#define GEMM_FEW_SHAPES 1
#endif
#endif
#ifndef GEMM_FEW_SHAPES
#define GEMM_FEW_SHAPES 0
#endif

// One chunk of the rows' values, with its activation rows prepared.
typedef struct gemm_chunk {
    const uint8_t *prep; // prepared activation rows, row_bytes apart
    size_t row_bytes;
    int steps, nblk_last; // steps in the chunk, blocks in its last step
    bool first;           // the chunk starts the rows: store sums rather than add them
} gemm_chunk;

// An R x C register tile over a chunk: R weight rows from w (ws bytes apart, at the chunk's
// first block; rows past nr repeat the last) and C prepared activation rows (acts past nc
// repeat the last). Adds (or stores) each of the nr x nc pairs' chunk sums to y[k * ldy + r].
ALWAYS_INLINE void gemm_tile(const uint8_t *w, size_t ws, int nr, const gemm_chunk *ch, int nc,
                             float *y, int64_t ldy, int R, int C, enum legacy_kind kind)
{
    const uint8_t *prep = ch->prep;
    size_t row_bytes = ch->row_bytes;
    int steps = ch->steps, nblk_last = ch->nblk_last;
    bool first = ch->first;
    __m512 acc[GEMM_ROWS][GEMM_ACTS];
    const uint8_t *rows[GEMM_ROWS], *acts[GEMM_ACTS];
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
        rows[r] = w + (size_t)(r < nr ? r : nr - 1) * ws;
#pragma GCC unroll 8
    for (int k = 0; k < C; k++)
        acts[k] = prep + (size_t)(k < nc ? k : nc - 1) * row_bytes;
#pragma GCC unroll 8
    for (int r = 0; r < GEMM_ROWS; r++)
#pragma GCC unroll 8
        for (int k = 0; k < GEMM_ACTS; k++)
            acc[r][k] = _mm512_setzero_ps();
    size_t w_step = (size_t)legacy_step_bytes[kind], ahead = (size_t)R * ws;
    for (int s = 0; s < steps; s++) {
        int nblk = s + 1 < steps ? 8 : nblk_last;
        gemm_ops wv[GEMM_ROWS];
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) {
            const uint8_t *p = rows[r] + (size_t)s * w_step;
            // The next tile's rows: short interleaved row streams are ones the hardware
            // prefetcher does not follow (a single row streams in order and needs no help).
            for (size_t line = 0; R > 1 && line < w_step; line += 64)
                _mm_prefetch((const char *)(p + ahead + line), _MM_HINT_T0);
            // A single K-quant row: prefetching K_PREFETCH bytes ahead made Q4_K_M decoding
            // 29.6 -> 34.3 t/s on one thread (it made Q4_0 and Q8_0 slower: not for them).
            for (size_t line = 0; R == 1 && kind_k(kind) && line < w_step; line += 64)
                _mm_prefetch((const char *)(p + K_PREFETCH + line), _MM_HINT_T0);
            wv[r] = gemm_weights(p, nblk, kind);
        }
        size_t step_off = (size_t)s * GEMM_STEP_BYTES;
#pragma GCC unroll 8
        for (int k = 0; k < C; k++) {
            const uint8_t *pk = acts[k] + step_off;
            __m512i a[4];
#pragma GCC unroll 8
            for (int i = 0; i < 4; i++)
                a[i] = _mm512_load_si512((const void *)(pk + 64 * i));
            // K-quants: no offset; bytes 256.. are d_a times the lanes' code sums.
            __m512i base = kind_k(kind) ? _mm512_setzero_si512()
                                         : _mm512_load_si512((const void *)(pk + 256));
            __m512 lane_sums = kind_k(kind) ? _mm512_load_ps((const void *)(pk + 256))
                                            : _mm512_setzero_ps();
            __m512 da = _mm512_load_ps((const void *)(pk + 320));
#pragma GCC unroll 8
            for (int r = 0; r < R; r++) {
                __m512i p = _mm512_dpbusd_epi32(base, wv[r].x[0], a[0]);
                p = _mm512_dpbusd_epi32(p, wv[r].x[1], a[1]);
                p = _mm512_dpbusd_epi32(p, wv[r].x[2], a[2]);
                p = _mm512_dpbusd_epi32(p, wv[r].x[3], a[3]);
                acc[r][k] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), _mm512_mul_ps(wv[r].d, da),
                                            acc[r][k]);
                if (kind_k(kind))
                    acc[r][k] = _mm512_fmadd_ps(wv[r].m, lane_sums, acc[r][k]);
            }
        }
    }
#pragma GCC unroll 8
    for (int k = 0; k < C; k++) {
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) {
            // Constant bounds keep acc in registers; a tile's repeated pairs are not stored.
            if (k >= nc || r >= nr)
                continue;
            float sum = _mm512_reduce_add_ps(acc[r][k]);
            y[k * ldy + r] = first ? sum : y[k * ldy + r] + sum;
        }
    }
}

// A tile of nr <= GEMM_ROWS weight rows and nc <= GEMM_ACTS activation rows by the smallest
// shape with code of its own that covers it.
ALWAYS_INLINE void gemm_tile_any(const uint8_t *w, size_t ws, int nr, const gemm_chunk *ch,
                                 int nc, float *y, int64_t ldy, enum legacy_kind kind)
{
    static_assert(GEMM_ROWS == 2 && GEMM_ACTS == 6, "one case per shape");
    if (nr == 1 && nc == 1) {
        gemm_tile(w, ws, 1, ch, 1, y, ldy, 1, 1, kind);
        return;
    }
    int c = GEMM_FEW_SHAPES ? 6 : nc <= 2 ? 2 : nc <= 4 ? nc : 6;
    switch (c) {
    case 2: gemm_tile(w, ws, nr, ch, nc, y, ldy, GEMM_ROWS, 2, kind); return;
    case 3: gemm_tile(w, ws, nr, ch, nc, y, ldy, GEMM_ROWS, 3, kind); return;
    case 4: gemm_tile(w, ws, nr, ch, nc, y, ldy, GEMM_ROWS, 4, kind); return;
    default: gemm_tile(w, ws, nr, ch, nc, y, ldy, GEMM_ROWS, 6, kind); return;
    }
}

// The whole product for one kind: chunks of the rows' values, panels of weight rows, tiles of
// GEMM_ACTS activation rows prepared once per panel, register tiles of GEMM_ROWS weight rows
// (one row at a time for a single activation row, so the weights stream in order).
ALWAYS_INLINE void gemm_legacy(const void *w, size_t ws, int64_t rows, const void *act,
                               size_t as, int64_t n_act, int64_t n, float *y, int64_t ldy,
                               enum legacy_kind kind)
{
    enum { CHUNK_STEPS = GEMM_CHUNK / GEMM_STEP, ROW_BYTES = CHUNK_STEPS * GEMM_STEP_BYTES };
    uint8_t prep[GEMM_ACTS * ROW_BYTES] __attribute__((aligned(64)));
    const uint8_t *wb = w, *ab = act;
    size_t step_bytes = (size_t)legacy_step_bytes[kind];
    int64_t nb = n / 32;
    int64_t tr = n_act == 1 ? 1 : GEMM_ROWS;
    for (int64_t c0 = 0; c0 < nb; c0 += GEMM_CHUNK / 32) {
        int64_t cb = nb - c0 < GEMM_CHUNK / 32 ? nb - c0 : GEMM_CHUNK / 32; // blocks
        gemm_chunk ch = {.prep = prep, .row_bytes = ROW_BYTES, .steps = (int)((cb + 7) / 8),
                         .first = c0 == 0};
        ch.nblk_last = (int)(cb - 8 * (ch.steps - 1));
        int64_t panel = (int64_t)(GEMM_PANEL_BYTES * 8 / (cb * (int64_t)step_bytes)) / tr * tr;
        panel = panel < tr ? tr : panel;
        for (int64_t p0 = 0; p0 < rows; p0 += panel) {
            int64_t p1 = p0 + panel < rows ? p0 + panel : rows;
            for (int64_t b = 0; b < n_act; b += GEMM_ACTS) {
                int nc = (int)(n_act - b < GEMM_ACTS ? n_act - b : GEMM_ACTS);
                for (int k = 0; k < nc; k++) {
                    const uint8_t *ak = ab + (size_t)(b + k) * as;
                    if (kind_k(kind))
                        gemm_prepare_k((const block_q8_k *)ak + c0 / 8, ch.steps, kind_k6(kind),
                                       prep + (size_t)k * ROW_BYTES);
                    else
                        gemm_prepare(ak + (size_t)c0 * sizeof(block_q8_0), ch.steps,
                                     ch.nblk_last, legacy_offsets[kind], prep + (size_t)k * ROW_BYTES);
                }
                for (int64_t r = p0; r < p1; r += tr) {
                    int nr = (int)(p1 - r < tr ? p1 - r : tr);
                    gemm_tile_any(wb + (size_t)r * ws + (size_t)c0 / 8 * step_bytes, ws, nr, &ch, nc,
                                  y + b * ldy + r, ldy, kind);
                }
            }
        }
    }
}

// The single dot of a product kernel: its 1 x 1 product.
ALWAYS_INLINE float single_dot(kernel_gemm_fn gemm, const void *w, const void *a, int64_t n)
{
    float out = 0.0f;
    gemm(w, 0, 1, a, 0, 1, n, &out, 0);
    return out;
}

// The product for one weight type, and its single dot as a 1 x 1 product.
static void gemm_q4_0_q8_0(const void *w, size_t ws, int64_t rows, const void *act, size_t as,
                           int64_t n_act, int64_t n, float *y, int64_t ldy)
{
    gemm_legacy(w, ws, rows, act, as, n_act, n, y, ldy, KIND_Q4_0);
}

static void gemm_q4_0_packed_q8_0(const void *w, size_t ws, int64_t rows, const void *act,
                                  size_t as, int64_t n_act, int64_t n, float *y, int64_t ldy)
{
    gemm_legacy(w, ws, rows, act, as, n_act, n, y, ldy, KIND_Q4_0_PACKED);
}

static float dot_q4_0_q8_0(const void *w, const void *a, int64_t n)
{
    return single_dot(gemm_q4_0_q8_0, w, a, n);
}

static void gemm_q4_k_q8_k(const void *w, size_t ws, int64_t rows, const void *act, size_t as,
                           int64_t n_act, int64_t n, float *y, int64_t ldy)
{
    gemm_legacy(w, ws, rows, act, as, n_act, n, y, ldy, KIND_Q4_K);
}

static void gemm_q4_k_packed_q8_k(const void *w, size_t ws, int64_t rows, const void *act,
                                  size_t as, int64_t n_act, int64_t n, float *y, int64_t ldy)
{
    gemm_legacy(w, ws, rows, act, as, n_act, n, y, ldy, KIND_Q4_K_PACKED);
}

static float dot_q4_k_q8_k(const void *w, const void *a, int64_t n)
{
    return single_dot(gemm_q4_k_q8_k, w, a, n);
}

static void gemm_q6_k_q8_k(const void *w, size_t ws, int64_t rows, const void *act, size_t as,
                           int64_t n_act, int64_t n, float *y, int64_t ldy)
{
    gemm_legacy(w, ws, rows, act, as, n_act, n, y, ldy, KIND_Q6_K);
}

static void gemm_q6_k_packed_q8_k(const void *w, size_t ws, int64_t rows, const void *act,
                                  size_t as, int64_t n_act, int64_t n, float *y, int64_t ldy)
{
    gemm_legacy(w, ws, rows, act, as, n_act, n, y, ldy, KIND_Q6_K_PACKED);
}

static float dot_q6_k_q8_k(const void *w, const void *a, int64_t n)
{
    return single_dot(gemm_q6_k_q8_k, w, a, n);
}

static void gemm_q5_0_q8_0(const void *w, size_t ws, int64_t rows, const void *act, size_t as,
                           int64_t n_act, int64_t n, float *y, int64_t ldy)
{
    gemm_legacy(w, ws, rows, act, as, n_act, n, y, ldy, KIND_Q5_0);
}

static float dot_q5_0_q8_0(const void *w, const void *a, int64_t n)
{
    return single_dot(gemm_q5_0_q8_0, w, a, n);
}

static void gemm_q8_0_q8_0(const void *w, size_t ws, int64_t rows, const void *act, size_t as,
                           int64_t n_act, int64_t n, float *y, int64_t ldy)
{
    gemm_legacy(w, ws, rows, act, as, n_act, n, y, ldy, KIND_Q8_0);
}

static void gemm_q8_0_packed_q8_0(const void *w, size_t ws, int64_t rows, const void *act,
                                  size_t as, int64_t n_act, int64_t n, float *y, int64_t ldy)
{
    gemm_legacy(w, ws, rows, act, as, n_act, n, y, ldy, KIND_Q8_0_PACKED);
}

static float dot_q8_0_q8_0(const void *w, const void *a, int64_t n)
{
    return single_dot(gemm_q8_0_q8_0, w, a, n);
}

static void gemm_iq4_nl_q8_0(const void *w, size_t ws, int64_t rows, const void *act, size_t as,
                             int64_t n_act, int64_t n, float *y, int64_t ldy)
{
    gemm_legacy(w, ws, rows, act, as, n_act, n, y, ldy, KIND_IQ4_NL);
}

static float dot_iq4_nl_q8_0(const void *w, const void *a, int64_t n)
{
    return single_dot(gemm_iq4_nl_q8_0, w, a, n);
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
#pragma GCC unroll 8
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

// 32 int16 lanes: lane i holds sc16[first + i / 8] (four sub-blocks of 16 values), where
// sc16 holds 16 int16 scales in its low 256 bits.
ALWAYS_INLINE __m512i scales_4x8(__m512i sc16, int first)
{
    const __m512i step = _mm512_set_epi16(3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1,
                                          1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
    return _mm512_permutexvar_epi16(_mm512_add_epi16(step, _mm512_set1_epi16((short)first)),
                                    sc16);
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
    const __m512i idx = _mm512_set_epi16(3, 3, 3, 3, 1, 1, 1, 1, 3, 3, 3, 3, 1, 1, 1, 1, 2, 2, 2,
                                         2, 0, 0, 0, 0, 2, 2, 2, 2, 0, 0, 0, 0);
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

// (Q4_K and Q6_K go through the legacy product: KIND_Q4_K, KIND_Q6_K.)
enum kq_kind { KQ_Q2_K, KQ_Q3_K, KQ_Q5_K };

static const size_t kq_sizes[] = {sizeof(block_q2_k), sizeof(block_q3_k), sizeof(block_q5_k)};

enum { KQ_ROWS = 1, KQ_ACTS = 8 };

// Q5_K: chunk sums by vpdpbusd, packed in pairs and scaled (paired_scales): 6 multiplies for
// 4 chunks instead of 8 (maddubs and dpwssd each); it made Q4_K prompts 5-10 % faster before
// Q4_K moved to the legacy product.
ALWAYS_INLINE bool kq_paired(enum kq_kind kind)
{
    return kind == KQ_Q5_K;
}

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
    const uint8_t *rows[KQ_ROWS];
    const block_q8_k *acts[KQ_ACTS];
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
        rows[r] = w + (size_t)(r < nr ? r : nr - 1) * ws;
#pragma GCC unroll 8
    for (int k = 0; k < C; k++)
        acts[k] = (const block_q8_k *)(act + (size_t)(k < nc ? k : nc - 1) * as);
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
            for (size_t line = 0; R > 1 && line < size; line += 64)
                _mm_prefetch((const char *)(p + ahead + line), _MM_HINT_T0);
            blk[r] = kq_unpack(p, kind);
            d[r] = _mm512_set1_ps(blk[r].d), d_b[r] = _mm256_set1_ps(blk[r].d_b);
        }
#pragma GCC unroll 8
        for (int k = 0; k < C; k++) {
            const block_q8_k *yb = acts[k] + b;
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
                        isum[r] = _mm512_dpwssd_epi32(
                            isum[r], _mm512_maddubs_epi16(blk[r].q[c], a), blk[r].scv[c]);
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
#pragma GCC unroll 8
    for (int k = 0; k < C; k++) {
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) {
            if (k >= nc || r >= nr)
                continue;
            __m256 b8 = acc_b[r][k];
            __m128 b4 = _mm_add_ps(_mm256_castps256_ps128(b8), _mm256_extractf128_ps(b8, 1));
            b4 = _mm_add_ps(b4, _mm_movehl_ps(b4, b4));
            b4 = _mm_add_ss(b4, _mm_movehdup_ps(b4));
            y[k * ldy + r] = _mm512_reduce_add_ps(acc[r][k]) + _mm_cvtss_f32(b4);
        }
    }
}

// A tile of nr <= KQ_ROWS rows and nc <= KQ_ACTS acts by the smallest shape with code of its
// own that covers it (in sanitizer builds: the single pair or the full tile).
ALWAYS_INLINE void kq_tile_any(const void *w, size_t ws, int nr, const void *act, size_t as,
                               int nc, int64_t n, float *y, int64_t ldy, enum kq_kind kind)
{
    static_assert(KQ_ACTS == 8, "one case per shape");
    if (nr == 1 && nc == 1) {
        kq_tile(w, ws, 1, act, as, 1, n, y, ldy, 1, 1, kind);
        return;
    }
    int c = GEMM_FEW_SHAPES ? 8 : nc <= 2 ? 2 : nc <= 4 ? 4 : 8;
    switch (c) {
    case 2: kq_tile(w, ws, nr, act, as, nc, n, y, ldy, KQ_ROWS, 2, kind); return;
    case 4: kq_tile(w, ws, nr, act, as, nc, n, y, ldy, KQ_ROWS, 4, kind); return;
    default: kq_tile(w, ws, nr, act, as, nc, n, y, ldy, KQ_ROWS, 8, kind); return;
    }
}

static void tile_q2_k_q8_k(const void *w, size_t ws, int nr, const void *act, size_t as, int nc,
                           int64_t n, float *y, int64_t ldy)
{
    kq_tile_any(w, ws, nr, act, as, nc, n, y, ldy, KQ_Q2_K);
}

static float dot_q2_k_q8_k(const void *w, const void *a, int64_t n)
{
    float out = 0.0f;
    tile_q2_k_q8_k(w, 0, 1, a, 0, 1, n, &out, 0);
    return out;
}

static void tile_q3_k_q8_k(const void *w, size_t ws, int nr, const void *act, size_t as, int nc,
                           int64_t n, float *y, int64_t ldy)
{
    kq_tile_any(w, ws, nr, act, as, nc, n, y, ldy, KQ_Q3_K);
}

static float dot_q3_k_q8_k(const void *w, const void *a, int64_t n)
{
    float out = 0.0f;
    tile_q3_k_q8_k(w, 0, 1, a, 0, 1, n, &out, 0);
    return out;
}

static void tile_q5_k_q8_k(const void *w, size_t ws, int nr, const void *act, size_t as, int nc,
                           int64_t n, float *y, int64_t ldy)
{
    kq_tile_any(w, ws, nr, act, as, nc, n, y, ldy, KQ_Q5_K);
}

static float dot_q5_k_q8_k(const void *w, const void *a, int64_t n)
{
    float out = 0.0f;
    tile_q5_k_q8_k(w, 0, 1, a, 0, 1, n, &out, 0);
    return out;
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

// ---- F16 x F16: float tiles over converted activation rows ----
//
// An F16 x F16 product is exact in float, so F16 weights multiply in float: activation rows
// (F16, as the reference rounds them) are converted to float once per tile of F16_ACTS rows
// and chunk of F16_CHUNK values, and each weight value once per tile. A pair keeps two
// 16-lane sums (even and odd steps of 16 values; a last step of 16 goes to the first, a
// partial one to the second), reduced per chunk and added in chunk order; the single row
// (decoding) streams each weight row whole, converting the activation as it reads it, with
// the same arithmetic, so results do not depend on the batch.

enum {
    F16_ROWS = 4,                // weight rows per register tile (x F16_ACTS x 2 sums)
    F16_ACTS = 3,                // activation rows per register tile
    F16_CHUNK = 2048,            // values per chunk
    F16_PANEL_BYTES = 256 << 10, // weight bytes per panel
};

// An R x C tile over the len values of a chunk: weight rows from w (ws bytes apart; rows past
// nr repeat the last), converted activation rows from prep (pstride floats apart). Adds (or
// stores, first) each pair's chunk sum to y[k * ldy + r].
// (halves: prep is one F16 activation row, converted as it is read.)
ALWAYS_INLINE __m512 f16_act16(const void *prep, size_t pstride, int k, int64_t i,
                               __mmask16 mask, bool halves)
{
    if (halves)
        return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, (const uint16_t *)prep + i));
    const float *p = (const float *)prep + (size_t)k * pstride + i;
    return mask == 0xFFFF ? _mm512_loadu_ps(p) : _mm512_maskz_loadu_ps(mask, p);
}

ALWAYS_INLINE void f16_tile(const uint8_t *w, size_t ws, int nr, const void *prep,
                            size_t pstride, int nc, int64_t len, bool first, float *y,
                            int64_t ldy, int R, int C, bool halves)
{
    __m512 acc[F16_ROWS][F16_ACTS][2];
    const uint16_t *rows[F16_ROWS];
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
        rows[r] = (const uint16_t *)(w + (size_t)(r < nr ? r : nr - 1) * ws);
#pragma GCC unroll 8
    for (int r = 0; r < F16_ROWS; r++)
#pragma GCC unroll 8
        for (int k = 0; k < F16_ACTS; k++)
            acc[r][k][0] = acc[r][k][1] = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= len; i += 32) {
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            __m512 wv[F16_ROWS];
#pragma GCC unroll 8
            for (int r = 0; r < R; r++)
                wv[r] = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(rows[r] + i + 16 * h)));
#pragma GCC unroll 8
            for (int k = 0; k < C; k++) {
                __m512 a = f16_act16(prep, pstride, k, i + 16 * h, 0xFFFF, halves);
#pragma GCC unroll 8
                for (int r = 0; r < R; r++)
                    acc[r][k][h] = _mm512_fmadd_ps(wv[r], a, acc[r][k][h]);
            }
        }
    }
    // The last 1..31 values: a whole step of 16 into the first sums, the rest (masked) into
    // the second.
    for (int h = 0; i < len; h++, i += 16) {
        __mmask16 mask = len - i >= 16 ? 0xFFFF : (__mmask16)((1u << (len - i)) - 1);
        __m512 wv[F16_ROWS];
#pragma GCC unroll 8
        for (int r = 0; r < R; r++)
            wv[r] = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, rows[r] + i));
#pragma GCC unroll 8
        for (int k = 0; k < C; k++) {
            __m512 a = f16_act16(prep, pstride, k, i, mask, halves);
#pragma GCC unroll 8
            for (int r = 0; r < R; r++)
                acc[r][k][h] = _mm512_fmadd_ps(wv[r], a, acc[r][k][h]);
        }
    }
#pragma GCC unroll 8
    for (int k = 0; k < C; k++) {
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) {
            if (k >= nc || r >= nr)
                continue;
            float sum = _mm512_reduce_add_ps(_mm512_add_ps(acc[r][k][0], acc[r][k][1]));
            y[k * ldy + r] = first ? sum : y[k * ldy + r] + sum;
        }
    }
}

ALWAYS_INLINE void f16_tile_any(const uint8_t *w, size_t ws, int nr, const float *prep,
                                size_t pstride, int nc, int64_t len, bool first, float *y,
                                int64_t ldy)
{
    static_assert(F16_ROWS == 4 && F16_ACTS == 3, "one case per shape");
    if (nr == 1 && nc == 1) {
        f16_tile(w, ws, 1, prep, pstride, 1, len, first, y, ldy, 1, 1, false);
        return;
    }
    int c = GEMM_FEW_SHAPES ? 3 : nc;
    switch (c) {
    case 1: f16_tile(w, ws, nr, prep, pstride, nc, len, first, y, ldy, F16_ROWS, 1, false); return;
    case 2: f16_tile(w, ws, nr, prep, pstride, nc, len, first, y, ldy, F16_ROWS, 2, false); return;
    default: f16_tile(w, ws, nr, prep, pstride, nc, len, first, y, ldy, F16_ROWS, 3, false); return;
    }
}

// n F16 values from a to floats at dst.
static void f16_to_floats(const uint16_t *a, int64_t n, float *dst)
{
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 mask = n - i >= 16 ? 0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(dst + i, mask, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, a + i)));
    }
}

static void gemm_f16_f16(const void *w, size_t ws, int64_t rows, const void *act, size_t as,
                         int64_t n_act, int64_t n, float *y, int64_t ldy)
{
    const uint8_t *wb = w, *ab = act;
    if (n_act == 1) {
        // One activation row: each weight row whole, in order, the activation converted as
        // it is read (a converted copy of a long row would not stay in L1).
        const uint16_t *a = act;
        for (int64_t r = 0; r < rows; r++)
            for (int64_t c0 = 0; c0 < n; c0 += F16_CHUNK)
                f16_tile(wb + (size_t)r * ws + (size_t)c0 * 2, ws, 1, a + c0, 0, 1,
                         n - c0 < F16_CHUNK ? n - c0 : F16_CHUNK, c0 == 0, y + r, ldy, 1, 1, true);
        return;
    }
    float prep[F16_ACTS * F16_CHUNK] __attribute__((aligned(64)));
    const int64_t tr = F16_ROWS;
    for (int64_t c0 = 0; c0 < n; c0 += F16_CHUNK) {
        int64_t len = n - c0 < F16_CHUNK ? n - c0 : F16_CHUNK;
        int64_t panel = (int64_t)(F16_PANEL_BYTES / (2 * len)) / tr * tr;
        panel = panel < tr ? tr : panel;
        for (int64_t p0 = 0; p0 < rows; p0 += panel) {
            int64_t p1 = p0 + panel < rows ? p0 + panel : rows;
            for (int64_t b = 0; b < n_act; b += F16_ACTS) {
                int nc = (int)(n_act - b < F16_ACTS ? n_act - b : F16_ACTS);
                for (int k = 0; k < nc; k++)
                    f16_to_floats((const uint16_t *)(ab + (size_t)(b + k) * as) + c0, len,
                                  prep + (size_t)k * F16_CHUNK);
                for (int64_t r = p0; r < p1; r += tr) {
                    int nr = (int)(p1 - r < tr ? p1 - r : tr);
                    f16_tile_any(wb + (size_t)r * ws + (size_t)c0 * 2, ws, nr, prep, F16_CHUNK,
                                 nc, len, c0 == 0, y + b * ldy + r, ldy);
                }
            }
        }
    }
}

// F16 rows are copied as they are: packing only moves them into the huge-page mapping.
static void pack_f16(const void *row, void *dst, int64_t n)
{
    memcpy(dst, row, (size_t)n * 2);
}

static float dot_f16_f16(const void *w, const void *a, int64_t n)
{
    return single_dot(gemm_f16_f16, w, a, n);
}

// ---- plain float formats ----

enum float_kind { FMT_F32, FMT_F16, FMT_BF16 };

// 16 values from index i, the lanes outside `mask` zero.
// (A full mask, constant where this is inlined, gives plain loads: masked ones are slower on
// Zen 4.)
ALWAYS_INLINE __m512 load16(const void *p, int64_t i, enum float_kind kind, __mmask16 mask)
{
    const uint16_t *half_p = (const uint16_t *)p + i;
    if (kind == FMT_F32)
        return mask == 0xFFFF ? _mm512_loadu_ps((const float *)p + i)
                              : _mm512_maskz_loadu_ps(mask, (const float *)p + i);
    __m256i raw = mask == 0xFFFF ? _mm256_loadu_si256((const __m256i *)half_p)
                                 : _mm256_maskz_loadu_epi16(mask, half_p);
    if (kind == FMT_F16)
        return _mm512_cvtph_ps(raw);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(raw), 16));
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
    for (; i + 16 <= n; i += 16) {
        __m512 xv = load16(x, i, kx, 0xFFFF);
#pragma GCC unroll 16
        for (int k = 0; k < rows; k++) {
            __m512 yv = load16(act_row(y, y_stride, k), i, ky, 0xFFFF);
            acc[k][0] = _mm512_fmadd_ps(xv, yv, acc[k][0]);
        }
    }
    if (i < n) {
        __mmask16 mask = (__mmask16)((1u << (n - i)) - 1);
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
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i, _mm512_fmadd_ps(va, load16(x, i, kind, 0xFFFF),
                                                _mm512_loadu_ps(y + i)));
    if (i < n) {
        __mmask16 mask = (__mmask16)((1u << (n - i)) - 1);
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

// Transposes the 16 x 16 floats of v in place (v[r] lane c becomes v[c] lane r).
ALWAYS_INLINE void transpose16(__m512 v[16])
{
    __m512 t[16];
#pragma GCC unroll 16
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(v[i], v[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(v[i], v[i + 1]);
    }
    // u[4j + m], 128-bit lane k: column 4k + m of rows 4j..4j + 3.
#pragma GCC unroll 16
    for (int j = 0; j < 16; j += 4) {
        __m512d a = _mm512_castps_pd(t[j]), b = _mm512_castps_pd(t[j + 2]);
        __m512d c = _mm512_castps_pd(t[j + 1]), d = _mm512_castps_pd(t[j + 3]);
        v[j] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, b));
        v[j + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, b));
        v[j + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(c, d));
        v[j + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(c, d));
    }
#pragma GCC unroll 16
    for (int m = 0; m < 4; m++) {
        __m512 a0 = _mm512_shuffle_f32x4(v[m], v[4 + m], _MM_SHUFFLE(2, 0, 2, 0));
        __m512 a1 = _mm512_shuffle_f32x4(v[m], v[4 + m], _MM_SHUFFLE(3, 1, 3, 1));
        __m512 b0 = _mm512_shuffle_f32x4(v[8 + m], v[12 + m], _MM_SHUFFLE(2, 0, 2, 0));
        __m512 b1 = _mm512_shuffle_f32x4(v[8 + m], v[12 + m], _MM_SHUFFLE(3, 1, 3, 1));
        t[m] = _mm512_shuffle_f32x4(a0, b0, _MM_SHUFFLE(2, 0, 2, 0));      // column m
        t[8 + m] = _mm512_shuffle_f32x4(a0, b0, _MM_SHUFFLE(3, 1, 3, 1));  // column 8 + m
        t[4 + m] = _mm512_shuffle_f32x4(a1, b1, _MM_SHUFFLE(2, 0, 2, 0));  // column 4 + m
        t[12 + m] = _mm512_shuffle_f32x4(a1, b1, _MM_SHUFFLE(3, 1, 3, 1)); // column 12 + m
    }
#pragma GCC unroll 16
    for (int i = 0; i < 16; i++)
        v[i] = t[i];
}

enum { ROWS_MAX_N = 256 }; // the widest head the transposed path takes

// out_j[r] = scale * (q_j . rows[r]). Up to 16 rows of a head of up to 256 values (a multiple
// of 16) are transposed once into columns, so that each query's 16 scores build up in one
// register, value by value, in four interleaved sums; other shapes take a dot per pair.
static void helper_dot_rows_f32(const float *q, int64_t q_stride, int64_t n_q, const float *rows,
                                int64_t pitch, int64_t n_rows, int64_t n, float scale,
                                float *out, int64_t out_stride)
{
    if (n % 16 || n > ROWS_MAX_N || n_rows > 16 || n_rows < 1) {
        for (int64_t j = 0; j < n_q; j++)
            for (int64_t r = 0; r < n_rows; r++) {
                float d;
                float_rows(q + j * q_stride, FMT_F32, rows + r * pitch, 0, FMT_F32, n, 1, &d);
                out[j * out_stride + r] = scale * d;
            }
        return;
    }
    float cols[ROWS_MAX_N * 16] __attribute__((aligned(64))); // cols[d * 16 + r] = rows[r][d]
    for (int64_t c = 0; c < n; c += 16) {
        __m512 v[16];
#pragma GCC unroll 16
        for (int r = 0; r < 16; r++)
            v[r] = r < n_rows ? _mm512_loadu_ps(rows + r * pitch + c) : _mm512_setzero_ps();
        transpose16(v);
#pragma GCC unroll 16
        for (int m = 0; m < 16; m++)
            _mm512_store_ps(cols + (c + m) * 16, v[m]);
    }
    __mmask16 mask = (__mmask16)((1u << n_rows) - 1);
    for (int64_t j = 0; j < n_q; j++) {
        const float *qj = q + j * q_stride;
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int64_t d = 0; d < n; d += 4) {
            a0 = _mm512_fmadd_ps(_mm512_set1_ps(qj[d]), _mm512_load_ps(cols + d * 16), a0);
            a1 = _mm512_fmadd_ps(_mm512_set1_ps(qj[d + 1]), _mm512_load_ps(cols + d * 16 + 16), a1);
            a2 = _mm512_fmadd_ps(_mm512_set1_ps(qj[d + 2]), _mm512_load_ps(cols + d * 16 + 32), a2);
            a3 = _mm512_fmadd_ps(_mm512_set1_ps(qj[d + 3]), _mm512_load_ps(cols + d * 16 + 48), a3);
        }
        __m512 s = _mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3));
        _mm512_mask_storeu_ps(out + j * out_stride, mask, _mm512_mul_ps(s, _mm512_set1_ps(scale)));
    }
}

// y_j += sum_r w_j[r] * rows[r] for NQ queries: each 16-lane slice of the NQ outputs stays in
// registers across the rows, and each row slice is loaded once for all of them.
ALWAYS_INLINE void axpy_rows_group(float *y, int64_t y_stride, const float *w, int64_t w_stride,
                                   const float *rows, int64_t pitch, int64_t n_rows, int64_t n,
                                   int NQ)
{
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 mask = n - i >= 16 ? 0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        __m512 acc[8];
#pragma GCC unroll 8
        for (int j = 0; j < NQ; j++)
            acc[j] = _mm512_maskz_loadu_ps(mask, y + j * y_stride + i);
        for (int64_t r = 0; r < n_rows; r++) {
            __m512 v = _mm512_maskz_loadu_ps(mask, rows + r * pitch + i);
#pragma GCC unroll 8
            for (int j = 0; j < NQ; j++)
                acc[j] = _mm512_fmadd_ps(_mm512_set1_ps(w[j * w_stride + r]), v, acc[j]);
        }
#pragma GCC unroll 8
        for (int j = 0; j < NQ; j++)
            _mm512_mask_storeu_ps(y + j * y_stride + i, mask, acc[j]);
    }
}

static void helper_axpy_rows_f32(float *y, int64_t y_stride, int64_t n_q, const float *w,
                                 int64_t w_stride, const float *rows, int64_t pitch,
                                 int64_t n_rows, int64_t n)
{
    for (int64_t j = 0; j < n_q; j += 8) {
        float *yj = y + j * y_stride;
        const float *wj = w + j * w_stride;
        switch (n_q - j < 8 ? n_q - j : 8) {
        case 1: axpy_rows_group(yj, y_stride, wj, w_stride, rows, pitch, n_rows, n, 1); break;
        case 2: axpy_rows_group(yj, y_stride, wj, w_stride, rows, pitch, n_rows, n, 2); break;
        case 3: axpy_rows_group(yj, y_stride, wj, w_stride, rows, pitch, n_rows, n, 3); break;
        case 4: axpy_rows_group(yj, y_stride, wj, w_stride, rows, pitch, n_rows, n, 4); break;
        case 5: axpy_rows_group(yj, y_stride, wj, w_stride, rows, pitch, n_rows, n, 5); break;
        case 6: axpy_rows_group(yj, y_stride, wj, w_stride, rows, pitch, n_rows, n, 6); break;
        case 7: axpy_rows_group(yj, y_stride, wj, w_stride, rows, pitch, n_rows, n, 7); break;
        default: axpy_rows_group(yj, y_stride, wj, w_stride, rows, pitch, n_rows, n, 8); break;
        }
    }
}

// exp(x) as dot_avx2.c's exp8 computes it, 16 lanes at a time (scalef applies 2^k).
ALWAYS_INLINE __m512 exp16(__m512 x)
{
    x = _mm512_min_ps(_mm512_set1_ps(89.0f), _mm512_max_ps(_mm512_set1_ps(-104.0f), x));
    __m512 k = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 t = _mm512_fnmadd_ps(k, _mm512_set1_ps(0.693359375f), x);
    t = _mm512_fnmadd_ps(k, _mm512_set1_ps(-2.12194440e-4f), t);
    __m512 p = _mm512_set1_ps(1.0f / 5040);
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.0f / 720));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.0f / 120));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.0f / 24));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.0f / 6));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, k);
}

static float helper_exp_sum_f32(float *x, int64_t n, float max)
{
    __m512 sum = _mm512_setzero_ps(), m = _mm512_set1_ps(max);
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 mask = n - i >= 16 ? 0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        __m512 e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(mask, x + i), m));
        _mm512_mask_storeu_ps(x + i, mask, e);
        sum = _mm512_mask_add_ps(sum, mask, sum, e);
    }
    return _mm512_reduce_add_ps(sum);
}

static void helper_swiglu_f32(float *gate, const float *up, int64_t n)
{
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 mask = n - i >= 16 ? 0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        __m512 g = _mm512_maskz_loadu_ps(mask, gate + i), u = _mm512_maskz_loadu_ps(mask, up + i);
        __m512 e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), g));
        __m512 out = _mm512_mul_ps(_mm512_div_ps(g, _mm512_add_ps(_mm512_set1_ps(1.0f), e)), u);
        _mm512_mask_storeu_ps(gate + i, mask, out);
    }
}

const kernel_type_ops kernel_avx512_type_ops[TENSOR_TYPE_COUNT] = {
    [TENSOR_TYPE_F32] = {.dot = dot_f32_f32, .dot_x4 = dot_f32_f32_x4},
    [TENSOR_TYPE_F16] = {.dot = dot_f16_f16, .gemm = gemm_f16_f16, .pack = pack_f16,
                         .gemm_packed = gemm_f16_f16},
    [TENSOR_TYPE_BF16] = {.dot = dot_bf16_bf16, .dot_x4 = dot_bf16_bf16_x4},
    [TENSOR_TYPE_Q4_0] = {.dot = dot_q4_0_q8_0, .gemm = gemm_q4_0_q8_0, .pack = pack_q4_0,
                          .gemm_packed = gemm_q4_0_packed_q8_0},
    [TENSOR_TYPE_Q4_1] = {.dot = dot_q4_1_q8_1, .dot_x4 = dot_q4_1_q8_1_x4},
    [TENSOR_TYPE_Q5_0] = {.dot = dot_q5_0_q8_0, .gemm = gemm_q5_0_q8_0},
    [TENSOR_TYPE_Q5_1] = {.dot = dot_q5_1_q8_1, .dot_x4 = dot_q5_1_q8_1_x4},
    [TENSOR_TYPE_Q8_0] = {.dot = dot_q8_0_q8_0, .gemm = gemm_q8_0_q8_0, .pack = pack_q8_0,
                          .gemm_packed = gemm_q8_0_packed_q8_0},
    [TENSOR_TYPE_Q2_K] = {.dot = dot_q2_k_q8_k, .tile = tile_q2_k_q8_k,
                          .tile_rows = KQ_ROWS, .tile_acts = KQ_ACTS},
    [TENSOR_TYPE_Q3_K] = {.dot = dot_q3_k_q8_k, .tile = tile_q3_k_q8_k,
                          .tile_rows = KQ_ROWS, .tile_acts = KQ_ACTS},
    [TENSOR_TYPE_Q4_K] = {.dot = dot_q4_k_q8_k, .gemm = gemm_q4_k_q8_k, .pack = pack_q4_k,
                          .gemm_packed = gemm_q4_k_packed_q8_k},
    [TENSOR_TYPE_Q5_K] = {.dot = dot_q5_k_q8_k, .tile = tile_q5_k_q8_k,
                          .tile_rows = KQ_ROWS, .tile_acts = KQ_ACTS},
    [TENSOR_TYPE_Q6_K] = {.dot = dot_q6_k_q8_k, .gemm = gemm_q6_k_q8_k, .pack = pack_q6_k,
                          .gemm_packed = gemm_q6_k_packed_q8_k},
    [TENSOR_TYPE_IQ4_NL] = {.dot = dot_iq4_nl_q8_0, .gemm = gemm_iq4_nl_q8_0},
    [TENSOR_TYPE_IQ4_XS] = {.dot = dot_iq4_xs_q8_k, .dot_x4 = dot_iq4_xs_q8_k_x4},
};

const kernel_float_ops kernel_avx512_float_ops = {
    .dot_f32 = helper_dot_f32,
    .dot_f32_f16 = helper_dot_f32_f16,
    .axpy_f32 = helper_axpy_f32,
    .axpy_f16 = helper_axpy_f16,
    .dot_rows_f32 = helper_dot_rows_f32,
    .axpy_rows_f32 = helper_axpy_rows_f32,
    .exp_sum_f32 = helper_exp_sum_f32,
    .swiglu_f32 = helper_swiglu_f32,
};
#endif
