// SPDX-License-Identifier: MIT
// AVX-512 half and bfloat16 to float conversion, 16 values at a time. Compiled with the
// AVX-512 flags (the Makefile gives *_avx512.c those flags) and called only when cpuid
// reports AVX-512 F/BW/DQ/VL (see dequantize.c). Bit-identical to the scalar conversions.
#if defined(__x86_64__)
#include <immintrin.h>

#include "tensor/quants.h"

void tensor_dequantize_f16_avx512(const void *src, float *dst, int64_t n)
{
    const uint16_t *h = src;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(h + i))));
    for (; i < n; i++)
        dst[i] = tensor_f16_to_f32(h[i]);
}

void tensor_dequantize_bf16_avx512(const void *src, float *dst, int64_t n)
{
    const uint16_t *h = src;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512i wide = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(h + i)));
        _mm512_storeu_ps(dst + i, _mm512_castsi512_ps(_mm512_slli_epi32(wide, 16)));
    }
    for (; i < n; i++)
        dst[i] = tensor_bf16_to_f32(h[i]);
}
#endif
