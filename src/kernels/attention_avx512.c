// SPDX-License-Identifier: MIT
// AVX-512 VNNI attention scores over Q8_0 cache rows (kernel_dot_rows_q8_0): the queries
// arrive converted to Q8_0 once, and each cache row's blocks meet them with vpdpbusd, the
// int8 product, instead of being dequantized to floats. Rows go in tiles of 16, one per lane:
// a query's block against 16 rows gives 16 integer sums from one reduction tree, then the
// block scales are applied in float and the blocks added in order, exactly as the scalar
// reference does, and each query's 16 scores are one store.
// Compiled with the AVX-512 flags and chosen at run time only when cpuid reports them.
#if defined(__x86_64__)
#include <stddef.h>

#include "kernels/dot_avx512.h"

// Widest row the tile keeps prepared (blocks of 32); wider ones go to the scalar reference.
enum { MAX_BLOCKS = 32 };

// The sums of the 8 int32 lanes of each 256-bit half of v[0..7], where v[m] (a = m / 4,
// i = m % 4) holds row 8a + i of a tile in its low half and row 8a + 4 + i in its high one:
// lane k of the result is row k's sum.
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

// The scores of up to 16 rows (`live`; the tile's other lanes repeat the last row and are
// not stored) for every query: the rows' blocks are prepared once (|k|, the sign mask and
// the scales of 16 rows in lanes), then for each query and block vpdpbusd of |k| and q with
// k's sign, sixteen rows' sums at once, times both scales, added over the blocks in order.
static void tile(const uint8_t *q, size_t q_stride, int64_t n_q, const uint8_t *rows, size_t pitch,
                 int live, int64_t nb, float scale, float *out, int64_t out_stride)
{
    __m512i ku[MAX_BLOCKS][8];
    __mmask64 neg[MAX_BLOCKS][8];
    __m512 dk[MAX_BLOCKS];
    const uint8_t *lo[8], *hi[8];
    int32_t offset[16];
    for (int k = 0; k < 16; k++)
        offset[k] = (int32_t)((size_t)(k < live ? k : live - 1) * pitch);
    for (int m = 0; m < 8; m++) {
        int r = 8 * (m / 4) + m % 4;
        lo[m] = rows + offset[r] + offsetof(block_q8_0, qs);
        hi[m] = rows + offset[r + 4] + offsetof(block_q8_0, qs);
    }
    __m512i row_offsets = _mm512_loadu_si512(offset);
    for (int64_t b = 0; b < nb; b++) {
        size_t at = (size_t)b * sizeof(block_q8_0);
        for (int m = 0; m < 8; m++) {
            __m512i k = join256(_mm256_loadu_si256((const __m256i *)(lo[m] + at)),
                                _mm256_loadu_si256((const __m256i *)(hi[m] + at)));
            ku[b][m] = _mm512_abs_epi8(k);
            neg[b][m] = _mm512_movepi8_mask(k);
        }
        // Each lane's 32-bit word from its row's block start: the half scale in its low bits.
        __m512i words = _mm512_i32gather_epi32(row_offsets, rows + at, 1);
        dk[b] = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(words));
    }
    __mmask16 keep = (__mmask16)((1u << live) - 1);
    for (int64_t j = 0; j < n_q; j++) {
        const block_q8_0 *qj = (const block_q8_0 *)(q + (size_t)j * q_stride);
        __m512 acc = _mm512_setzero_ps();
        for (int64_t b = 0; b < nb; b++) {
            __m512i qb = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)qj[b].qs));
            __m512i v[8];
            for (int m = 0; m < 8; m++)
                v[m] = _mm512_dpbusd_epi32(
                    _mm512_setzero_si512(), ku[b][m],
                    _mm512_mask_sub_epi8(qb, neg[b][m], _mm512_setzero_si512(), qb));
            __m512 p = _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(half(qj[b].d)), dk[b]),
                                     _mm512_cvtepi32_ps(sums16(v)));
            acc = _mm512_add_ps(acc, p);
        }
        _mm512_mask_storeu_ps(out + j * out_stride, keep,
                              _mm512_mul_ps(_mm512_set1_ps(scale), acc));
    }
}

void kernel_dot_rows_q8_0_avx512(const void *q, size_t q_stride, int64_t n_q, const void *rows,
                                 size_t pitch, int64_t n_rows, int64_t n, float scale, float *out,
                                 int64_t out_stride)
{
    int64_t nb = n / QK8_0;
    if (nb > MAX_BLOCKS || pitch > (size_t)INT32_MAX / 16) {
        kernel_dot_rows_q8_0_ref(q, q_stride, n_q, rows, pitch, n_rows, n, scale, out, out_stride);
        return;
    }
    for (int64_t r0 = 0; r0 < n_rows; r0 += 16)
        tile(q, q_stride, n_q, (const uint8_t *)rows + (size_t)r0 * pitch, pitch,
             (int)(n_rows - r0 < 16 ? n_rows - r0 : 16), nb, scale, out + r0, out_stride);
}

// Up to eight queries' sums over the rows at once, one block (32 values, two vectors) at a
// time: the block's codes are converted to floats once per row and meet each query's weight
// times the block's scale in an FMA, rows in order, as the reference does it.
ALWAYS_INLINE void axpy_q8_0_group(float *y, int64_t y_stride, const float *w, int64_t w_stride,
                                   const void *rows, size_t pitch, int64_t n_rows, int64_t n,
                                   int NQ)
{
    for (int64_t b = 0; b < n / QK8_0; b++) {
        __m512 acc[8][2];
#pragma GCC unroll 8
        for (int h = 0; h < NQ; h++)
            for (int k = 0; k < 2; k++)
                acc[h][k] = _mm512_loadu_ps(y + h * y_stride + b * QK8_0 + 16 * k);
        const uint8_t *blk = (const uint8_t *)rows + (size_t)b * sizeof(block_q8_0);
        for (int64_t r = 0; r < n_rows; r++, blk += pitch) {
            const block_q8_0 *x = (const block_q8_0 *)blk;
            __m512 v0 = _mm512_cvtepi32_ps(
                _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)x->qs)));
            __m512 v1 = _mm512_cvtepi32_ps(
                _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(x->qs + 16))));
            float d = half(x->d);
#pragma GCC unroll 8
            for (int h = 0; h < NQ; h++) {
                __m512 c = _mm512_set1_ps(w[h * w_stride + r] * d);
                acc[h][0] = _mm512_fmadd_ps(c, v0, acc[h][0]);
                acc[h][1] = _mm512_fmadd_ps(c, v1, acc[h][1]);
            }
        }
#pragma GCC unroll 8
        for (int h = 0; h < NQ; h++)
            for (int k = 0; k < 2; k++)
                _mm512_storeu_ps(y + h * y_stride + b * QK8_0 + 16 * k, acc[h][k]);
    }
}

void kernel_axpy_rows_q8_0_avx512(float *y, int64_t y_stride, int64_t n_q, const float *w,
                                  int64_t w_stride, const void *rows, size_t pitch, int64_t n_rows,
                                  int64_t n)
{
    for (int64_t j0 = 0; j0 < n_q; j0 += 8) {
        float *yj = y + j0 * y_stride;
        const float *wj = w + j0 * w_stride;
#define GROUP(NQ) axpy_q8_0_group(yj, y_stride, wj, w_stride, rows, pitch, n_rows, n, NQ)
        BY_GROUP_SIZE(n_q - j0, GROUP);
#undef GROUP
    }
}
#endif
