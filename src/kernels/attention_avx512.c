// SPDX-License-Identifier: MIT
// AVX-512 VNNI attention scores over Q8_0 cache rows (kernel_dot_rows_q8_0): the queries
// arrive converted to Q8_0 once, and each cache row's blocks meet them with vpdpbusd, the
// int8 product, instead of being dequantized to floats. A (query, block) pair is a segment;
// sixteen segments' integer sums come out of one reduction tree, then the block scales are
// applied in float and the blocks added in order, exactly as the scalar reference does.
// Compiled with the AVX-512 flags and chosen at run time only when cpuid reports them.
#if defined(__x86_64__)
#include <stddef.h>

#include "kernels/dot_avx512.h"

// Segments one pass prepares: heads are split into passes of at most this many segments.
enum { SEGMENTS = 64, GROUPS = SEGMENTS / 16 };

// The per-call operands of one pass: segment s = b * heads + j is block b of query j.
// Group g's vector m (a = m / 4, i = m % 4) holds segment 16g + 8a + i in its low 256 bits
// and 16g + 8a + 4 + i in its high ones, the order in which sums16 returns segments 16g..
// 16g + 15 in lanes 0..15. Segments past the pass's last are zero (their sums are unused).
typedef struct pass {
    __m512i q[GROUPS][8];   // the queries' codes
    __m512i block[GROUPS];  // the cache block of each lane's segment
    float dq[GROUPS * 16];  // the queries' block scales, by segment
    uint16_t lo[GROUPS][8]; // byte offset of the cache block in each vector's low half
    uint16_t hi[GROUPS][8]; // ... and in its high half
    float p[GROUPS * 16];   // a row's scaled block products, by segment
} pass;

// The sums of the 8 int32 lanes of each 256-bit half of v[0..7], as laid out in `pass`:
// lane k of the result is segment k's.
ALWAYS_INLINE __m512i sums16(const __m512i v[8])
{
    __m512i w[4], u[2];
    for (int p = 0; p < 4; p++)
        w[p] = _mm512_add_epi32(_mm512_unpacklo_epi32(v[2 * p], v[2 * p + 1]),
                                _mm512_unpackhi_epi32(v[2 * p], v[2 * p + 1]));
    for (int p = 0; p < 2; p++)
        u[p] = _mm512_add_epi32(_mm512_unpacklo_epi64(w[2 * p], w[2 * p + 1]),
                                _mm512_unpackhi_epi64(w[2 * p], w[2 * p + 1]));
    return _mm512_add_epi32(_mm512_shuffle_i32x4(u[0], u[1], 0x88),
                            _mm512_shuffle_i32x4(u[0], u[1], 0xDD));
}

// The codes of segment s (zero past the last one), and the byte offset of its cache block.
static __m256i segment(const uint8_t *q, size_t q_stride, int64_t heads, int64_t n_seg, int s,
                       uint16_t *offset, float *dq)
{
    if (s >= n_seg) {
        *offset = 0, *dq = 0.0f;
        return _mm256_setzero_si256();
    }
    int64_t b = s / heads, j = s % heads;
    const block_q8_0 *blk = (const block_q8_0 *)(q + (size_t)j * q_stride) + b;
    *offset = (uint16_t)(b * sizeof(block_q8_0));
    *dq = half(blk->d);
    return _mm256_loadu_si256((const __m256i *)blk->qs);
}

// Prepares the groups of `heads` queries' segments (heads * nb at most SEGMENTS).
static void pass_prepare(pass *ps, const uint8_t *q, size_t q_stride, int64_t heads, int64_t nb)
{
    int64_t n_seg = heads * nb;
    for (int g = 0; g < (int)(n_seg + 15) / 16; g++) {
        int32_t block[16];
        for (int m = 0; m < 8; m++) {
            int s_lo = 16 * g + 8 * (m / 4) + m % 4, s_hi = s_lo + 4;
            __m256i lo = segment(q, q_stride, heads, n_seg, s_lo, &ps->lo[g][m], &ps->dq[s_lo]);
            __m256i hi = segment(q, q_stride, heads, n_seg, s_hi, &ps->hi[g][m], &ps->dq[s_hi]);
            ps->q[g][m] = join256(lo, hi);
        }
        for (int k = 0; k < 16; k++)
            block[k] = 16 * g + k < n_seg ? (int32_t)((16 * g + k) / heads) : 0;
        ps->block[g] = _mm512_loadu_si512(block);
    }
}

// One row's scores for the pass's heads: each group's 16 integer sums (|k| times q with k's
// sign, by vpdpbusd), times the queries' and the row's block scales, then the blocks added
// in order per head.
static void pass_row(pass *ps, const uint8_t *row, int64_t heads, int64_t nb, float scale,
                     float *out, int64_t out_stride)
{
    float dk[SEGMENTS];
    for (int64_t b = 0; b < nb; b++)
        dk[b] = half(((const block_q8_0 *)row)[b].d);
    __m512 dk16 = _mm512_loadu_ps(dk); // (only the first nb lanes are read when nb <= 16)
    int groups = (int)((heads * nb + 15) / 16);
    const uint8_t *qs = row + offsetof(block_q8_0, qs);
    for (int g = 0; g < groups; g++) {
        __m512i v[8];
        for (int m = 0; m < 8; m++) {
            __m256i k_lo = _mm256_loadu_si256((const __m256i *)(qs + ps->lo[g][m]));
            __m256i k_hi = _mm256_loadu_si256((const __m256i *)(qs + ps->hi[g][m]));
            __m512i k = join256(k_lo, k_hi);
            __mmask64 neg = _mm512_movepi8_mask(k);
            __m512i q = _mm512_mask_sub_epi8(ps->q[g][m], neg, _mm512_setzero_si512(), ps->q[g][m]);
            v[m] = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_abs_epi8(k), q);
        }
        __m512 dk_lane = nb <= 16 ? _mm512_permutexvar_ps(ps->block[g], dk16)
                                  : _mm512_i32gather_ps(ps->block[g], dk, 4);
        __m512 p = _mm512_mul_ps(_mm512_mul_ps(_mm512_loadu_ps(ps->dq + 16 * g), dk_lane),
                                 _mm512_cvtepi32_ps(sums16(v)));
        _mm512_storeu_ps(ps->p + 16 * g, p);
    }
    for (int64_t j0 = 0; j0 < heads; j0 += 16) {
        __mmask16 live = (__mmask16)(heads - j0 >= 16 ? 0xFFFF : (1u << (heads - j0)) - 1);
        __m512 sum = _mm512_setzero_ps();
        for (int64_t b = 0; b < nb; b++)
            sum = _mm512_add_ps(sum, _mm512_maskz_loadu_ps(live, ps->p + b * heads + j0));
        float s[16];
        _mm512_storeu_ps(s, _mm512_mul_ps(_mm512_set1_ps(scale), sum));
        for (int64_t j = 0; j < 16 && j0 + j < heads; j++)
            out[(j0 + j) * out_stride] = s[j];
    }
}

void kernel_dot_rows_q8_0_avx512(const void *q, size_t q_stride, int64_t n_q, const void *rows,
                                 size_t pitch, int64_t n_rows, int64_t n, float scale, float *out,
                                 int64_t out_stride)
{
    int64_t nb = n / QK8_0;
    if (nb > SEGMENTS) {
        kernel_dot_rows_q8_0_ref(q, q_stride, n_q, rows, pitch, n_rows, n, scale, out, out_stride);
        return;
    }
    int64_t per_pass = SEGMENTS / nb;
    pass ps __attribute__((aligned(64)));
    for (int64_t j0 = 0; j0 < n_q; j0 += per_pass) {
        int64_t heads = n_q - j0 < per_pass ? n_q - j0 : per_pass;
        pass_prepare(&ps, (const uint8_t *)q + (size_t)j0 * q_stride, q_stride, heads, nb);
        for (int64_t r = 0; r < n_rows; r++)
            pass_row(&ps, (const uint8_t *)rows + (size_t)r * pitch, heads, nb, scale,
                     out + j0 * out_stride + r, out_stride);
    }
}
#endif
