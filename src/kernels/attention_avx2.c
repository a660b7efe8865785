// SPDX-License-Identifier: MIT
// AVX2 attention scores over Q8_0 cache rows (kernel_dot_rows_q8_0): the queries arrive
// converted to Q8_0 once, and each cache row's blocks meet them with the int8 product
// (_mm256_maddubs_epi16 on |k| and q with k's sign, widened by _mm256_madd_epi16) instead of
// being dequantized to floats. A (query, block) pair is a segment; eight segments' integer
// sums come out of one reduction tree, then the block scales are applied in float and the
// blocks added in order, exactly as the scalar reference does. Compiled with -mavx2 -mfma
// -mf16c and chosen at run time only when cpuid reports them.
#if defined(__x86_64__)
#include <immintrin.h>
#include <stddef.h>

#include "kernels/variants.h"
#include "tensor/quants.h"

#define ALWAYS_INLINE static inline __attribute__((always_inline))

// Segments one pass prepares: heads are split into passes of at most this many segments.
enum { SEGMENTS = 64, GROUPS = SEGMENTS / 8 };

// The per-call operands of one pass: segment s = b * heads + j is block b of query j, and
// group g holds segments 8g..8g+7. Segments past the pass's last are zero.
typedef struct pass {
    __m256i q[SEGMENTS];       // the queries' codes
    __m256i block[GROUPS];     // the cache block of each lane's segment
    float dq[SEGMENTS];        // the queries' block scales
    uint16_t offset[SEGMENTS]; // byte offset of each segment's cache block
    float p[SEGMENTS];         // a row's scaled block products
} pass;

// The sums of the 8 int32 lanes of each of v[0..7], in lanes 0..7.
ALWAYS_INLINE __m256i sums8(const __m256i v[8])
{
    __m256i w[4], u[2];
    for (int p = 0; p < 4; p++)
        w[p] = _mm256_add_epi32(_mm256_unpacklo_epi32(v[2 * p], v[2 * p + 1]),
                                _mm256_unpackhi_epi32(v[2 * p], v[2 * p + 1]));
    for (int p = 0; p < 2; p++)
        u[p] = _mm256_add_epi32(_mm256_unpacklo_epi64(w[2 * p], w[2 * p + 1]),
                                _mm256_unpackhi_epi64(w[2 * p], w[2 * p + 1]));
    return _mm256_add_epi32(_mm256_permute2x128_si256(u[0], u[1], 0x20),
                            _mm256_permute2x128_si256(u[0], u[1], 0x31));
}

// Prepares the segments of `heads` queries (heads * nb at most SEGMENTS).
static void pass_prepare(pass *ps, const uint8_t *q, size_t q_stride, int64_t heads, int64_t nb)
{
    int64_t n_seg = heads * nb;
    int groups = (int)(n_seg + 7) / 8;
    for (int s = 0; s < 8 * groups; s++) {
        if (s >= n_seg) {
            ps->q[s] = _mm256_setzero_si256(), ps->dq[s] = 0.0f, ps->offset[s] = 0;
            continue;
        }
        int64_t b = s / heads, j = s % heads;
        const block_q8_0 *blk = (const block_q8_0 *)(q + (size_t)j * q_stride) + b;
        ps->q[s] = _mm256_loadu_si256((const __m256i *)blk->qs);
        ps->dq[s] = _cvtsh_ss(blk->d);
        ps->offset[s] = (uint16_t)(b * sizeof(block_q8_0));
    }
    for (int g = 0; g < groups; g++) {
        int32_t block[8];
        for (int k = 0; k < 8; k++)
            block[k] = 8 * g + k < n_seg ? (int32_t)((8 * g + k) / heads) : 0;
        ps->block[g] = _mm256_loadu_si256((const __m256i *)block);
    }
}

// One row's scores for the pass's heads: each group's 8 integer sums, times the queries' and
// the row's block scales, then the blocks added in order per head.
static void pass_row(pass *ps, const uint8_t *row, int64_t heads, int64_t nb, float scale,
                     float *out, int64_t out_stride)
{
    float dk[SEGMENTS];
    for (int64_t b = 0; b < nb; b++)
        dk[b] = _cvtsh_ss(((const block_q8_0 *)row)[b].d);
    int groups = (int)((heads * nb + 7) / 8);
    const uint8_t *qs = row + offsetof(block_q8_0, qs);
    const __m256i ones = _mm256_set1_epi16(1);
    for (int g = 0; g < groups; g++) {
        __m256i v[8];
        for (int m = 0; m < 8; m++) {
            __m256i k = _mm256_loadu_si256((const __m256i *)(qs + ps->offset[8 * g + m]));
            __m256i q = _mm256_sign_epi8(ps->q[8 * g + m], k);
            v[m] = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_abs_epi8(k), q), ones);
        }
        __m256 dk_lane = _mm256_i32gather_ps(dk, ps->block[g], 4);
        __m256 p = _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(ps->dq + 8 * g), dk_lane),
                                 _mm256_cvtepi32_ps(sums8(v)));
        _mm256_storeu_ps(ps->p + 8 * g, p);
    }
    for (int64_t j = 0; j < heads; j++) {
        float sum = 0.0f;
        for (int64_t b = 0; b < nb; b++)
            sum += ps->p[b * heads + j];
        out[j * out_stride] = scale * sum;
    }
}

void kernel_dot_rows_q8_0_avx2(const void *q, size_t q_stride, int64_t n_q, const void *rows,
                               size_t pitch, int64_t n_rows, int64_t n, float scale, float *out,
                               int64_t out_stride)
{
    int64_t nb = n / QK8_0;
    if (nb > SEGMENTS) {
        kernel_dot_rows_q8_0_ref(q, q_stride, n_q, rows, pitch, n_rows, n, scale, out, out_stride);
        return;
    }
    int64_t per_pass = SEGMENTS / nb;
    pass ps;
    for (int64_t j0 = 0; j0 < n_q; j0 += per_pass) {
        int64_t heads = n_q - j0 < per_pass ? n_q - j0 : per_pass;
        pass_prepare(&ps, (const uint8_t *)q + (size_t)j0 * q_stride, q_stride, heads, nb);
        for (int64_t r = 0; r < n_rows; r++)
            pass_row(&ps, (const uint8_t *)rows + (size_t)r * pitch, heads, nb, scale,
                     out + j0 * out_stride + r, out_stride);
    }
}

// Two queries' sums over the rows at once, one block (32 values, four vectors) at a time: the
// block's codes are converted to floats once per row and meet each query's weight times the
// block's scale in an FMA, rows in order, as the reference does it.
void kernel_axpy_rows_q8_0_avx2(float *y, int64_t y_stride, int64_t n_q, const float *w,
                                int64_t w_stride, const void *rows, size_t pitch, int64_t n_rows,
                                int64_t n)
{
    for (int64_t j0 = 0; j0 < n_q; j0 += 2) {
        int heads = n_q - j0 < 2 ? (int)(n_q - j0) : 2;
        for (int64_t b = 0; b < n / QK8_0; b++) {
            __m256 acc[2][4];
            for (int h = 0; h < heads; h++)
                for (int k = 0; k < 4; k++)
                    acc[h][k] = _mm256_loadu_ps(y + (j0 + h) * y_stride + b * QK8_0 + 8 * k);
            const uint8_t *blk = (const uint8_t *)rows + (size_t)b * sizeof(block_q8_0);
            for (int64_t r = 0; r < n_rows; r++, blk += pitch) {
                const block_q8_0 *x = (const block_q8_0 *)blk;
                __m256 v[4];
                for (int k = 0; k < 4; k++)
                    v[k] = _mm256_cvtepi32_ps(
                        _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(x->qs + 8 * k))));
                float d = _cvtsh_ss(x->d);
                for (int h = 0; h < heads; h++) {
                    __m256 c = _mm256_set1_ps(w[(j0 + h) * w_stride + r] * d);
                    for (int k = 0; k < 4; k++)
                        acc[h][k] = _mm256_fmadd_ps(c, v[k], acc[h][k]);
                }
            }
            for (int h = 0; h < heads; h++)
                for (int k = 0; k < 4; k++)
                    _mm256_storeu_ps(y + (j0 + h) * y_stride + b * QK8_0 + 8 * k, acc[h][k]);
        }
    }
}
#endif
