// SPDX-License-Identifier: MIT
// AVX-512 VNNI kernels for the weight types of 32-value blocks (ggml's "legacy" quants, MXFP4
// and garlic's own Q4_Z), compiled with the AVX-512 flags and chosen at run time only when
// cpuid reports them. Those paired with Q8_0 activations (Q4_0, Q5_0, Q8_0, IQ4_NL, MXFP4,
// Q4_Z) go through the lane product of dot_avx512.h: this file gathers eight blocks' codes and
// scales (and Q4_Z's zero points) into its operands (word permutes of 128-byte windows, or
// for MXFP4's odd-sized blocks one 16-byte load a block, that reach no byte past the row's
// last block), prepares the Q8_0 activation rows, and keeps the packed layouts of Q4_0, Q8_0,
// MXFP4 and Q4_Z, which load without permutes. Q4_1 and Q5_1 (Q8_1 activations) keep kernels over
// 1 or 4 activation rows, as in the AVX2 file.
#if defined(__x86_64__)
#include "kernels/dot_avx512.h"

// lo in lanes 0..7, hi in lanes 8..15.
ALWAYS_INLINE __m512 join_scales(float lo, float hi)
{
    return _mm512_insertf32x8(_mm512_set1_ps(lo), _mm256_set1_ps(hi), 1);
}

// 16 in byte j where bit j of the little-endian 32-bit word at p is set, else 0.
ALWAYS_INLINE __m256i fifth_bits(const uint8_t *p)
{
    uint32_t word;
    memcpy(&word, p, 4);
    return _mm256_maskz_set1_epi8((__mmask32)word, 16);
}

// ---- weights x Q8_0: Q4_0, Q5_0, Q8_0, IQ4_NL, MXFP4, by the lane product ----

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
// 20-byte blocks (Q4_Z): the 16 code bytes of block i from byte 20i + 4 (word 10i + 2), for
// blocks 0..3 from the window at byte 0 and for blocks 4..7 with the same indices from the
// window at byte 80 (block 4's start); then from bytes 0..63 (words 0..31: blocks 0..3) and
// 80..143 (words 32..63: blocks 4..7), each lane's block's scale and zero point word.
static const uint16_t idx_qs20[32] __attribute__((aligned(64))) = {
    2,  3,  4,  5,  6,  7,  8,  9,  12, 13, 14, 15, 16, 17, 18, 19,
    22, 23, 24, 25, 26, 27, 28, 29, 32, 33, 34, 35, 36, 37, 38, 39,
};
static const uint16_t idx_dz20[32] __attribute__((aligned(64))) = {
    0,  1,  0,  1,  32, 33, 32, 33, 10, 11, 10, 11, 42, 43, 42, 43,
    20, 21, 20, 21, 52, 53, 52, 53, 30, 31, 30, 31, 62, 63, 62, 63,
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
ALWAYS_INLINE __m512 halves16(__m512i v) { return _mm512_cvtph_ps(_mm512_castsi512_si256(v)); }

// Operands from the codes of blocks 0..3 (lo/hi: values 0..15 / 16..31, block i in 128-bit
// lane i) and of blocks 4..7.
ALWAYS_INLINE void interleave_blocks(__m512i lo_a, __m512i hi_a, __m512i lo_b, __m512i hi_b,
                                     __m512i x[4])
{
    x[0] = _mm512_unpacklo_epi64(lo_a, lo_b);
    x[1] = _mm512_unpackhi_epi64(lo_a, lo_b);
    x[2] = _mm512_unpacklo_epi64(hi_a, hi_b);
    x[3] = _mm512_unpackhi_epi64(hi_a, hi_b);
}

// Operands from 16 packed nibble bytes per block (block i of raw_a in 128-bit lane i, block
// 4 + i of raw_b): low nibbles are values 0..15, high ones 16..31.
ALWAYS_INLINE void nibble_operands(__m512i raw_a, __m512i raw_b, __m512i x[4])
{
    split_nibbles(_mm512_unpacklo_epi64(raw_a, raw_b), _mm512_unpackhi_epi64(raw_a, raw_b), x);
}

// Eight 34-byte blocks from p (nblk present, the rest zero): signed codes and scales.
ALWAYS_INLINE lane_operands q8_0_blocks(const uint8_t *p, int nblk)
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
    lane_operands s;
    interleave_blocks(lo_a, hi_a, lo_b, hi_b, s.x);
    s.d = halves16(d16);
    return s;
}

// The fifth bits of eight Q5_0 blocks, qh words of blocks 0, 4, 1, 5, 2, 6, 3, 7 in the
// high 256 bits of dqh, added (as 16) to the operands' codes.
ALWAYS_INLINE void add_fifth_bits(__m512i dqh, __m512i x[4])
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

// The nibble operands of eight blocks of 16 code bytes each, as nibble_operands makes them:
// raw0 (bytes 0..63), for i = 0..3, codes 0..7 of block i then of block 4 + i; raw1 (64..127)
// codes 8..15 likewise. Packed Q4_0 and MXFP4 store these first.
static void pack_nibble_operands(uint8_t tmp[128], const uint8_t *const qs[8])
{
    for (int i = 0; i < 4; i++) {
        memcpy(tmp + 16 * i, qs[i], 8);
        memcpy(tmp + 16 * i + 8, qs[4 + i], 8);
        memcpy(tmp + 64 + 16 * i, qs[i] + 8, 8);
        memcpy(tmp + 64 + 16 * i + 8, qs[4 + i] + 8, 8);
    }
}

// The packed Q4_0 layout: every whole group of eight blocks of a row (144 bytes) is stored
// as the operands' bytes, in the order nibble_operands makes them (raw0: for i = 0..3 codes
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
        const uint8_t *qs[8];
        for (int i = 0; i < 8; i++)
            qs[i] = x[i].qs;
        pack_nibble_operands(tmp, qs);
        for (int i = 0; i < 8; i++)
            memcpy(tmp + 128 + 2 * i, &x[d_order[i]].d, 2);
        memcpy(out, tmp, sizeof tmp);
    }
    memmove(out, b + g, (size_t)(nb - g) * sizeof(block_q4_0));
}

// The packed Q8_0 layout: every whole group of eight blocks of a row (272 bytes) is stored
// as the four operands q8_0_operands makes (codes made unsigned, 256 bytes), then the eight
// half scales in the order 0, 4, 1, 5, 2, 6, 3, 7; blocks after the last whole group stay.
static void pack_q8_0(const void *row, void *dst, int64_t n)
{
    static const int d_order[8] = {0, 4, 1, 5, 2, 6, 3, 7};
    const uint8_t *src = row;
    uint8_t *out = dst;
    int64_t nb = n / QK8_0, g = 0;
    for (; g + 8 <= nb; g += 8) {
        const uint8_t *p = src + (size_t)g * sizeof(block_q8_0);
        lane_operands v = q8_0_blocks(p, 8);
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

// A whole group of eight packed Q8_0 blocks.
ALWAYS_INLINE lane_operands q8_0_group_packed(const uint8_t *p)
{
    lane_operands s;
#pragma GCC unroll 8
    for (int i = 0; i < 4; i++)
        s.x[i] = _mm512_loadu_si512((const void *)(p + 64 * i));
    s.d = packed_scales(p + 256);
    return s;
}

// A whole group of eight packed Q4_0 blocks: the same operands and scales q4_0_operands makes from the plain
// layout.
ALWAYS_INLINE lane_operands q4_0_group_packed(const uint8_t *p)
{
    lane_operands s;
    split_nibbles(_mm512_loadu_si512((const void *)p), _mm512_loadu_si512((const void *)(p + 64)),
                  s.x);
    s.d = packed_scales(p + 128);
    return s;
}

// The operands of each layout's step (lane_operands_fn): eight blocks at p, nblk present.

// Q4_0 and IQ4_NL (18-byte blocks): the codes as they are stored.
ALWAYS_INLINE lane_operands blocks18_operands(const uint8_t *p, int nblk)
{
    int end = nblk * (int)sizeof(block_q4_0);
    __m512i a0 = load_upto(p, 0, end), a1 = load_upto(p, 64, end);
    lane_operands s;
    nibble_operands(_mm512_permutex2var_epi16(a0, _mm512_load_si512(idx_qs18a), a1),
                    gather_words(p, 16, end, idx_qs18b), s.x);
    s.d = halves16(_mm512_permutex2var_epi16(a0, _mm512_load_si512(idx_d18), a1));
    return s;
}

// Q4_0: codes q + 8, unsigned as stored.
ALWAYS_INLINE lane_operands q4_0_operands(const uint8_t *p, int nblk)
{
    return blocks18_operands(p, nblk);
}

// Packed Q4_0 rows: the blocks after the last whole group of eight are plain.
ALWAYS_INLINE lane_operands q4_0_packed_operands(const uint8_t *p, int nblk)
{
    return nblk == 8 ? q4_0_group_packed(p) : blocks18_operands(p, nblk);
}

// IQ4_NL: the grid values plus 128, as unsigned bytes.
ALWAYS_INLINE lane_operands iq4_nl_operands(const uint8_t *p, int nblk)
{
    lane_operands s = blocks18_operands(p, nblk);
    const __m512i grid = _mm512_xor_si512(
        _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)tensor_iq4_nl_values)),
        _mm512_set1_epi8((char)0x80));
#pragma GCC unroll 8
    for (int i = 0; i < 4; i++)
        s.x[i] = _mm512_shuffle_epi8(grid, s.x[i]);
    return s;
}

// MXFP4 (17-byte blocks): the exponent byte of block i is byte 17i, in word 17i / 2 of the
// 128-byte window of a step, the low byte for even i and the high one for odd i. Out dword
// lane L takes that word of the block the lane product puts there (0, 0, 4, 4, 1, 1, 5, 5,
// ...), and mxfp4_shift moves the byte down.
static const uint16_t idx_e17[32] __attribute__((aligned(64))) = {
    0,  0, 0,  0, 34, 0, 34, 0, 8,  0, 8,  0, 42, 0, 42, 0,
    17, 0, 17, 0, 51, 0, 51, 0, 25, 0, 25, 0, 59, 0, 59, 0,
};
static const uint32_t mxfp4_shift[16]
    __attribute__((aligned(64))) = {0, 0, 0, 0, 8, 8, 8, 8, 0, 0, 0, 0, 8, 8, 8, 8};

// The MXFP4 scales 2^(e - 128) of the exponent bytes in the dword lanes of e, bit for bit
// tensor_mxfp4_scale: (e - 1) << 23 for e >= 2, the subnormals 2^-128 and 2^-127 below.
ALWAYS_INLINE __m512 mxfp4_scales(__m512i e)
{
    __m512i normal = _mm512_slli_epi32(_mm512_sub_epi32(e, _mm512_set1_epi32(1)), 23);
    __m512i subnormal = _mm512_sllv_epi32(_mm512_set1_epi32(0x00200000), e);
    __mmask16 big = _mm512_cmpge_epu32_mask(e, _mm512_set1_epi32(2));
    return _mm512_castsi512_ps(_mm512_mask_blend_epi32(big, subnormal, normal));
}

// The doubled E2M1 values plus 128, as unsigned bytes, of the MXFP4 codes in x.
ALWAYS_INLINE void mxfp4_values(__m512i x[4])
{
    const __m512i grid = _mm512_xor_si512(
        _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)tensor_mxfp4_values)),
        _mm512_set1_epi8((char)0x80));
#pragma GCC unroll 8
    for (int i = 0; i < 4; i++)
        x[i] = _mm512_shuffle_epi8(grid, x[i]);
}

// The 16 code bytes of MXFP4 block i at p, or zeros for a block past the nblk present.
ALWAYS_INLINE __m128i mxfp4_codes(const uint8_t *p, int i, int nblk)
{
    if (i >= nblk)
        return _mm_setzero_si128();
    return _mm_loadu_si128((const __m128i *)(p + i * (int)sizeof(block_mxfp4) + 1));
}

// MXFP4: the grid values plus 128 (offset 128, as IQ4_NL), blocks i and 4 + i in 128-bit
// lane i of the raw codes.
ALWAYS_INLINE lane_operands mxfp4_operands(const uint8_t *p, int nblk)
{
    int end = nblk * (int)sizeof(block_mxfp4);
    __m512i raw_a = join256(_mm256_set_m128i(mxfp4_codes(p, 1, nblk), mxfp4_codes(p, 0, nblk)),
                            _mm256_set_m128i(mxfp4_codes(p, 3, nblk), mxfp4_codes(p, 2, nblk)));
    __m512i raw_b = join256(_mm256_set_m128i(mxfp4_codes(p, 5, nblk), mxfp4_codes(p, 4, nblk)),
                            _mm256_set_m128i(mxfp4_codes(p, 7, nblk), mxfp4_codes(p, 6, nblk)));
    lane_operands s;
    nibble_operands(raw_a, raw_b, s.x);
    mxfp4_values(s.x);
    __m512i words = gather_words(p, 0, end, idx_e17);
    __m512i e = _mm512_and_si512(_mm512_srlv_epi32(words, _mm512_load_si512(mxfp4_shift)),
                                 _mm512_set1_epi32(0xFF));
    s.d = mxfp4_scales(e);
    return s;
}

// The packed MXFP4 layout: every whole group of eight blocks of a row (136 bytes) is stored
// as the operands' nibbles in the order nibble_operands makes them (as packed Q4_0: raw0, for
// i = 0..3 codes 0..7 of block i then of block 4 + i; raw1: codes 8..15 likewise), then the
// eight exponent bytes in the order 0, 4, 1, 5, 2, 6, 3, 7. Blocks after the last whole group
// stay as they are.
static void pack_mxfp4(const void *row, void *dst, int64_t n)
{
    static const int e_order[8] = {0, 4, 1, 5, 2, 6, 3, 7};
    const block_mxfp4 *b = row;
    uint8_t *out = dst;
    int64_t nb = n / QK_MXFP4, g = 0;
    for (; g + 8 <= nb; g += 8, out += 8 * sizeof(block_mxfp4)) {
        const block_mxfp4 *x = b + g;
        uint8_t tmp[8 * sizeof(block_mxfp4)];
        const uint8_t *qs[8];
        for (int i = 0; i < 8; i++)
            qs[i] = x[i].qs;
        pack_nibble_operands(tmp, qs);
        for (int i = 0; i < 8; i++)
            tmp[128 + i] = x[e_order[i]].e;
        memcpy(out, tmp, sizeof tmp);
    }
    memmove(out, b + g, (size_t)(nb - g) * sizeof(block_mxfp4));
}

// Packed MXFP4 rows: a whole group loads as two vectors and eight exponent bytes (each
// doubled into its two lanes); the blocks after the last whole group are plain.
ALWAYS_INLINE lane_operands mxfp4_packed_operands(const uint8_t *p, int nblk)
{
    if (nblk < 8)
        return mxfp4_operands(p, nblk);
    lane_operands s;
    split_nibbles(_mm512_loadu_si512((const void *)p), _mm512_loadu_si512((const void *)(p + 64)),
                  s.x);
    mxfp4_values(s.x);
    uint64_t e8;
    memcpy(&e8, p + 128, 8);
    __m128i e = _mm_cvtsi64_si128((long long)e8);
    s.d = mxfp4_scales(_mm512_cvtepu8_epi32(_mm_unpacklo_epi8(e, e)));
    return s;
}

// Q4_Z (20-byte blocks): the codes q as stored (unsigned), the scales, and the zero points
// (each lane's dword z, its high word 0, as the tile's multiply-add of int16 pairs wants).
ALWAYS_INLINE lane_operands q4_z_operands(const uint8_t *p, int nblk)
{
    int end = nblk * (int)sizeof(block_q4_z);
    __m512i a0 = load_upto(p, 0, end), a1 = load_upto(p, 64, end);
    __m512i b0 = load_upto(p, 80, end), b1 = load_upto(p, 144, end);
    const __m512i idx_qs = _mm512_load_si512(idx_qs20);
    lane_operands s;
    nibble_operands(_mm512_permutex2var_epi16(a0, idx_qs, a1),
                    _mm512_permutex2var_epi16(b0, idx_qs, b1), s.x);
    __m512i dz = _mm512_permutex2var_epi16(a0, _mm512_load_si512(idx_dz20), b0);
    s.d = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(dz));
    s.z = _mm512_and_si512(_mm512_srli_epi32(dz, 16), _mm512_set1_epi32(0xFF));
    return s;
}

// The packed Q4_Z layout: every whole group of eight blocks of a row (160 bytes) is stored as
// the operands' nibbles in the order nibble_operands makes them (as packed Q4_0), then the
// eight half scales and the eight zero points, each in the order 0, 4, 1, 5, 2, 6, 3, 7, then
// eight zero bytes. Blocks after the last whole group stay as they are.
static void pack_q4_z(const void *row, void *dst, int64_t n)
{
    static const int order[8] = {0, 4, 1, 5, 2, 6, 3, 7};
    const block_q4_z *b = row;
    uint8_t *out = dst;
    int64_t nb = n / QK4_Z, g = 0;
    for (; g + 8 <= nb; g += 8, out += 8 * sizeof(block_q4_z)) {
        const block_q4_z *x = b + g;
        uint8_t tmp[8 * sizeof(block_q4_z)] = {0};
        const uint8_t *qs[8];
        for (int i = 0; i < 8; i++)
            qs[i] = x[i].qs;
        pack_nibble_operands(tmp, qs);
        for (int i = 0; i < 8; i++) {
            memcpy(tmp + 128 + 2 * i, &x[order[i]].d, 2);
            tmp[144 + i] = x[order[i]].z;
        }
        memcpy(out, tmp, sizeof tmp);
    }
    memmove(out, b + g, (size_t)(nb - g) * sizeof(block_q4_z));
}

// Packed Q4_Z rows: a whole group loads as two vectors of nibbles, eight scales and eight zero
// points (each doubled into its two lanes); the blocks after the last whole group are plain.
ALWAYS_INLINE lane_operands q4_z_packed_operands(const uint8_t *p, int nblk)
{
    if (nblk < 8)
        return q4_z_operands(p, nblk);
    lane_operands s;
    split_nibbles(_mm512_loadu_si512((const void *)p), _mm512_loadu_si512((const void *)(p + 64)),
                  s.x);
    s.d = packed_scales(p + 128);
    uint64_t z8;
    memcpy(&z8, p + 144, 8);
    __m128i z = _mm_cvtsi64_si128((long long)z8);
    s.z = _mm512_cvtepu8_epi32(_mm_unpacklo_epi8(z, z));
    return s;
}

// Q5_0 (22-byte blocks): codes q + 16 with the fifth bits.
ALWAYS_INLINE lane_operands q5_0_operands(const uint8_t *p, int nblk)
{
    int end = nblk * (int)sizeof(block_q5_0);
    __m512i a0 = load_upto(p, 0, end), a1 = load_upto(p, 64, end);
    __m512i b0 = load_upto(p, 48, end), b1 = load_upto(p, 112, end);
    lane_operands s;
    nibble_operands(_mm512_permutex2var_epi16(a0, _mm512_load_si512(idx_qs22a), a1),
                    _mm512_permutex2var_epi16(b0, _mm512_load_si512(idx_qs22b), b1), s.x);
    __m512i dqh = _mm512_mask_blend_epi16(
        0xCCCCCCCC, _mm512_permutex2var_epi16(a0, _mm512_load_si512(idx_dqh22a), a1),
        _mm512_permutex2var_epi16(b0, _mm512_load_si512(idx_dqh22b), b1));
    add_fifth_bits(dqh, s.x);
    s.d = halves16(dqh);
    return s;
}

// Q8_0: codes q + 128, made unsigned.
ALWAYS_INLINE lane_operands q8_0_operands(const uint8_t *p, int nblk)
{
    lane_operands s = q8_0_blocks(p, nblk);
#pragma GCC unroll 8
    for (int i = 0; i < 4; i++)
        s.x[i] = _mm512_xor_si512(s.x[i], _mm512_set1_epi8((char)0x80));
    return s;
}

// Packed Q8_0 rows: the blocks after the last whole group of eight are plain.
ALWAYS_INLINE lane_operands q8_0_packed_operands(const uint8_t *p, int nblk)
{
    return nblk == 8 ? q8_0_group_packed(p) : q8_0_operands(p, nblk);
}

// Prepares one Q8_0 activation row's len values from a into dst (LANE_PREP_STEP bytes a
// step): x0..x3, the starting sums -offset * (four-byte sums of the codes) and the spread
// scales, for weight codes that carry `offset`.
ALWAYS_INLINE void prepare_q8_0(const uint8_t *a, int64_t len, int offset, uint8_t *dst)
{
    const __m512i off = _mm512_set1_epi8((char)offset);
    int64_t nb = len / 32;
    for (int64_t b = 0; b < nb; b += 8, a += 8 * sizeof(block_q8_0), dst += LANE_PREP_STEP) {
        lane_operands v = q8_0_blocks(a, nb - b < 8 ? (int)(nb - b) : 8);
        __m512i sum = _mm512_setzero_si512();
#pragma GCC unroll 8
        for (int i = 0; i < 4; i++) {
            _mm512_store_si512((void *)(dst + 64 * i), v.x[i]);
            sum = _mm512_dpbusd_epi32(sum, off, v.x[i]);
        }
        _mm512_store_si512((void *)(dst + 256), _mm512_sub_epi32(_mm512_setzero_si512(), sum));
        _mm512_store_ps((void *)(dst + 320), v.d);
    }
}

// The prepares for codes with offset 8 (Q4_0), 16 (Q5_0) and 128 (Q8_0, IQ4_NL, MXFP4), and
// with 1 for zero points (Q4_Z: the starting sums are then -sum(a) per lane).
static void prepare_offset1(const void *act, int64_t len, void *dst)
{
    prepare_q8_0(act, len, 1, dst);
}

static void prepare_offset8(const void *act, int64_t len, void *dst)
{
    prepare_q8_0(act, len, 8, dst);
}

static void prepare_offset16(const void *act, int64_t len, void *dst)
{
    prepare_q8_0(act, len, 16, dst);
}

static void prepare_offset128(const void *act, int64_t len, void *dst)
{
    prepare_q8_0(act, len, 128, dst);
}

// The strips, one per layout.
static void strip_q4_0(const kernel_strip *s)
{
    lane_strip(s, q4_0_operands, 8 * sizeof(block_q4_0), LANE_OFFSET);
}

static void strip_q4_0_packed(const kernel_strip *s)
{
    lane_strip(s, q4_0_packed_operands, 8 * sizeof(block_q4_0), LANE_OFFSET);
}

static void strip_q5_0(const kernel_strip *s)
{
    lane_strip(s, q5_0_operands, 8 * sizeof(block_q5_0), LANE_OFFSET);
}

static void strip_q8_0(const kernel_strip *s)
{
    lane_strip(s, q8_0_operands, 8 * sizeof(block_q8_0), LANE_OFFSET);
}

static void strip_q8_0_packed(const kernel_strip *s)
{
    lane_strip(s, q8_0_packed_operands, 8 * sizeof(block_q8_0), LANE_OFFSET);
}

static void strip_iq4_nl(const kernel_strip *s)
{
    lane_strip(s, iq4_nl_operands, 8 * sizeof(block_iq4_nl), LANE_OFFSET);
}

static void strip_mxfp4(const kernel_strip *s)
{
    lane_strip(s, mxfp4_operands, 8 * sizeof(block_mxfp4), LANE_OFFSET);
}

static void strip_mxfp4_packed(const kernel_strip *s)
{
    lane_strip(s, mxfp4_packed_operands, 8 * sizeof(block_mxfp4), LANE_OFFSET);
}

static void strip_q4_z(const kernel_strip *s)
{
    lane_strip(s, q4_z_operands, 8 * sizeof(block_q4_z), LANE_ZERO_POINT);
}

static void strip_q4_z_packed(const kernel_strip *s)
{
    lane_strip(s, q4_z_packed_operands, 8 * sizeof(block_q4_z), LANE_ZERO_POINT);
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
ALWAYS_INLINE void offset_rows(const void *w, const void *act, size_t stride, int64_t n, int rows,
                               bool five, float *out)
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

// Their single dots are their products' 1 x 1 case (NULL dot).
const kernel_type_ops kernel_avx512_legacy_type_ops[TENSOR_TYPE_COUNT] = {
    [TENSOR_TYPE_Q4_0] = {.product = LANE_PRODUCT(strip_q4_0, prepare_offset8),
                          .pack = pack_q4_0,
                          .packed = LANE_PRODUCT(strip_q4_0_packed, prepare_offset8)},
    [TENSOR_TYPE_Q4_1] = {.dot = dot_q4_1_q8_1, .product = KERNEL_BY_DOTS(dot_q4_1_q8_1_x4)},
    [TENSOR_TYPE_Q5_0] = {.product = LANE_PRODUCT(strip_q5_0, prepare_offset16)},
    [TENSOR_TYPE_Q5_1] = {.dot = dot_q5_1_q8_1, .product = KERNEL_BY_DOTS(dot_q5_1_q8_1_x4)},
    [TENSOR_TYPE_Q8_0] = {.product = LANE_PRODUCT(strip_q8_0, prepare_offset128),
                          .pack = pack_q8_0,
                          .packed = LANE_PRODUCT(strip_q8_0_packed, prepare_offset128)},
    [TENSOR_TYPE_IQ4_NL] = {.product = LANE_PRODUCT(strip_iq4_nl, prepare_offset128)},
    [TENSOR_TYPE_MXFP4] = {.product = LANE_PRODUCT(strip_mxfp4, prepare_offset128),
                           .pack = pack_mxfp4,
                           .packed = LANE_PRODUCT(strip_mxfp4_packed, prepare_offset128)},
    [TENSOR_TYPE_Q4_Z] = {.product = LANE_PRODUCT(strip_q4_z, prepare_offset1),
                          .pack = pack_q4_z,
                          .packed = LANE_PRODUCT(strip_q4_z_packed, prepare_offset1)},
};
#endif
