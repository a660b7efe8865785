// SPDX-License-Identifier: MIT
// AVX2 activation conversion, bit-identical to the scalar converters in act.c (the tests
// compare the bytes): the same scalar scale arithmetic, then 8 lanes at a time for the
// codes. Every format rounds to nearest even, as the reference's x86 code does.
#if defined(__x86_64__)
#include <immintrin.h>
#include <string.h>

#include "kernels/variants.h"
#include "tensor/quants.h"

static inline float hmax_ps(__m256 v)
{
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

static inline int hsum_epi32(__m256i v)
{
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(s);
}

static inline __m256 abs_ps(__m256 v) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v); }

// Packs 32 int32 codes (in -128..127) to 32 bytes in order.
static inline void store_i8x32(int8_t *dst, const __m256i q[4])
{
    __m256i w01 = _mm256_packs_epi32(q[0], q[1]), w23 = _mm256_packs_epi32(q[2], q[3]);
    __m256i b = _mm256_packs_epi16(w01, w23);
    b = _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256((__m256i *)dst, b);
}

// One block of 32 as act.c codes it; returns the float scale, the code sum in *sum.
static float code_block32(const float *x, uint16_t *d_half, int8_t *qs, int *sum)
{
    __m256 v[4], amax = _mm256_setzero_ps();
    for (int i = 0; i < 4; i++) {
        v[i] = _mm256_loadu_ps(x + 8 * i);
        amax = _mm256_max_ps(amax, abs_ps(v[i]));
    }
    float max = hmax_ps(amax), d = max / 127.0f;
    float id = max != 0.0f ? 127.0f / max : 0.0f;
    __m256i q[4], total = _mm256_setzero_si256();
    for (int i = 0; i < 4; i++) {
        q[i] = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v[i], _mm256_set1_ps(id)),
                                                  _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        total = _mm256_add_epi32(total, q[i]);
    }
    store_i8x32(qs, q);
    *d_half = tensor_f32_to_f16(d);
    *sum = hsum_epi32(total);
    return d;
}

void kernel_act_q8_0_avx2(const float *x, void *dst, int64_t n)
{
    block_q8_0 *out = dst;
    int sum;
    for (int64_t b = 0; b < n / QK8_0; b++)
        code_block32(x + b * QK8_0, &out[b].d, out[b].qs, &sum);
}

void kernel_act_q8_1_avx2(const float *x, void *dst, int64_t n)
{
    block_q8_1 *out = dst;
    for (int64_t b = 0; b < n / QK8_1; b++) {
        int sum;
        float d = code_block32(x + b * QK8_1, &out[b].d, out[b].qs, &sum);
        out[b].s = tensor_f32_to_f16((float)sum * d);
    }
}

// The first value of largest magnitude in 256 values (act.c's `max`), given that magnitude.
static float first_of_magnitude(const float *x, float amax)
{
    for (int i = 0; i < QK_K; i += 8) {
        __m256 hit = _mm256_cmp_ps(abs_ps(_mm256_loadu_ps(x + i)), _mm256_set1_ps(amax),
                                   _CMP_EQ_OQ);
        int mask = _mm256_movemask_ps(hit);
        if (mask)
            return x[i + __builtin_ctz((unsigned)mask)];
    }
    return 0.0f;
}

static void code_block_k(const float *x, block_q8_k *out)
{
    __m256 amax_v = _mm256_setzero_ps();
    for (int i = 0; i < QK_K; i += 8)
        amax_v = _mm256_max_ps(amax_v, abs_ps(_mm256_loadu_ps(x + i)));
    float amax = hmax_ps(amax_v);
    if (amax == 0.0f) {
        memset(out, 0, sizeof *out);
        return;
    }
    float iscale = -127.0f / first_of_magnitude(x, amax);
    const __m256i cap = _mm256_set1_epi32(127);
    for (int g = 0; g < QK_K / 32; g++) {
        __m256i q[4];
        for (int i = 0; i < 4; i++) {
            __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + 32 * g + 8 * i), _mm256_set1_ps(iscale));
            q[i] = _mm256_min_epi32(_mm256_cvtps_epi32(v), cap);
        }
        store_i8x32(out->qs + 32 * g, q);
        out->bsums[2 * g] = (int16_t)hsum_epi32(_mm256_add_epi32(q[0], q[1]));
        out->bsums[2 * g + 1] = (int16_t)hsum_epi32(_mm256_add_epi32(q[2], q[3]));
    }
    out->d = 1.0f / iscale;
}

void kernel_act_q8_k_avx2(const float *x, void *dst, int64_t n)
{
    block_q8_k *out = dst;
    for (int64_t b = 0; b < n / QK_K; b++)
        code_block_k(x + b * QK_K, &out[b]);
}

// F16 converts as the weights' own quantizer does (tensor/'s F16C variant).
void kernel_act_f16_avx2(const float *x, void *dst, int64_t n)
{
    tensor_quantize_f16_avx2(x, dst, n);
}
#endif
