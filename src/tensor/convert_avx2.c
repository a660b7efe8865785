// SPDX-License-Identifier: MIT
// AVX2 + F16C half and bfloat16 to float conversion, 8 values at a time. Compiled with
// -mavx2 -mfma -mf16c (the Makefile gives *_avx2.c those flags) and called only when cpuid
// reports AVX2 and F16C (see dequantize.c). Bit-identical to the scalar conversions.
#if defined(__x86_64__)
#include <immintrin.h>

#include "tensor/quants.h"

void tensor_dequantize_f16_avx2(const void *src, float *dst, int64_t n)
{
    const uint16_t *h = src;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(h + i))));
    for (; i < n; i++)
        dst[i] = tensor_f16_to_f32(h[i]);
}

// Eight values at a time, rounded to nearest even by vcvtps2ph; eight that hold a NaN go
// through the scalar conversion, which sets the quiet bit and keeps the payload's top bits
// its own way.
void tensor_quantize_f16_avx2(const float *src, void *dst, int64_t n)
{
    uint16_t *h = dst;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 x = _mm256_loadu_ps(src + i);
        if (_mm256_movemask_ps(_mm256_cmp_ps(x, x, _CMP_UNORD_Q))) {
            tensor_quantize_f16_ref(src + i, h + i, 8);
            continue;
        }
        _mm_storeu_si128((__m128i *)(h + i),
                         _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    }
    tensor_quantize_f16_ref(src + i, h + i, n - i);
}

void tensor_dequantize_bf16_avx2(const void *src, float *dst, int64_t n)
{
    const uint16_t *h = src;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(h + i)));
        _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16)));
    }
    for (; i < n; i++)
        dst[i] = tensor_bf16_to_f32(h[i]);
}
#endif
