// SPDX-License-Identifier: MIT
// Dequantizers: packed GGUF blocks (layouts in quants.h) to float. Each one is bit-exact
// with the reference (gguf-py's dequantize, which agrees with ggml's): the scale products
// are formed in float in the same order ("d * sc" first, then "* q", then "- m"), so
// every rounding matches. These are the scalar truth that faster paths are tested against.
#include <stdatomic.h>
#include <string.h>

#include "base/cpu.h"
#include "tensor/quants.h"

// Fused multiply-add would skip a rounding and break bit-exactness; GCC in ISO C mode
// never contracts, clang does unless told not to.
#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

const int8_t tensor_iq4_nl_values[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                         1,    13,   25,  38,  53,  69,  89,  113};

const int8_t tensor_mxfp4_values[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

static inline float half_at(const uint16_t *p) { return tensor_f16_to_f32(*p); }

void tensor_dequantize_f32(const void *src, float *dst, int64_t n)
{
    memcpy(dst, src, (size_t)n * sizeof(float));
}

void tensor_dequantize_f16_ref(const void *src, float *dst, int64_t n)
{
    const uint16_t *h = src;
    for (int64_t i = 0; i < n; i++)
        dst[i] = tensor_f16_to_f32(h[i]);
}

void tensor_dequantize_bf16_ref(const void *src, float *dst, int64_t n)
{
    const uint16_t *h = src;
    for (int64_t i = 0; i < n; i++)
        dst[i] = tensor_bf16_to_f32(h[i]);
}

typedef void (*dequantize_fn)(const void *src, float *dst, int64_t n);

// The half and bfloat16 converters of one instruction set.
typedef struct half_converters {
    dequantize_fn f16, bf16;
    void (*f16_from)(const float *src, void *dst, int64_t n); // floats to halves
} half_converters;

// The converters of the best instruction set this CPU runs (the SIMD ones exist only on
// x86-64), chosen on first use and then fixed; a race between first callers is benign,
// each stores the same choice.
static const half_converters *half_converters_chosen(void)
{
    static const half_converters by_isa[] = {
        {tensor_dequantize_f16_ref, tensor_dequantize_bf16_ref, tensor_quantize_f16_ref},
#if defined(__x86_64__)
        {tensor_dequantize_f16_avx2, tensor_dequantize_bf16_avx2, tensor_quantize_f16_avx2},
        {tensor_dequantize_f16_avx512, tensor_dequantize_bf16_avx512, tensor_quantize_f16_avx2},
#endif
    };
    static _Atomic int chosen = -1;
    int c = atomic_load_explicit(&chosen, memory_order_relaxed);
    if (c < 0) {
        c = 0;
#if defined(__x86_64__)
        const cpu_features *cpu = cpu_features_get();
        c = cpu->avx512 ? 2 : cpu->avx2 ? 1 : 0;
#endif
        atomic_store_explicit(&chosen, c, memory_order_relaxed);
    }
    return &by_isa[c];
}

void tensor_dequantize_f16(const void *src, float *dst, int64_t n)
{
    half_converters_chosen()->f16(src, dst, n);
}

void tensor_dequantize_bf16(const void *src, float *dst, int64_t n)
{
    half_converters_chosen()->bf16(src, dst, n);
}

void tensor_quantize_f16(const float *src, void *dst, int64_t n)
{
    half_converters_chosen()->f16_from(src, dst, n);
}

// x = d * (q - 8)
void tensor_dequantize_q4_0(const void *src, float *dst, int64_t n)
{
    const block_q4_0 *blocks = src;
    for (int64_t b = 0; b < n / QK4_0; b++, dst += QK4_0) {
        float d = half_at(&blocks[b].d);
        for (int j = 0; j < QK4_0 / 2; j++) {
            dst[j] = d * (float)((blocks[b].qs[j] & 0x0F) - 8);
            dst[j + QK4_0 / 2] = d * (float)((blocks[b].qs[j] >> 4) - 8);
        }
    }
}

// x = d * q + m
void tensor_dequantize_q4_1(const void *src, float *dst, int64_t n)
{
    const block_q4_1 *blocks = src;
    for (int64_t b = 0; b < n / QK4_1; b++, dst += QK4_1) {
        float d = half_at(&blocks[b].d);
        float m = half_at(&blocks[b].m);
        for (int j = 0; j < QK4_1 / 2; j++) {
            dst[j] = d * (float)(blocks[b].qs[j] & 0x0F) + m;
            dst[j + QK4_1 / 2] = d * (float)(blocks[b].qs[j] >> 4) + m;
        }
    }
}

static inline uint32_t u32_le(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

// The 5-bit value j of a Q5_0/Q5_1 block (0..31).
static inline int q5_value(const uint8_t *qs, uint32_t qh, int j)
{
    int low = j < 16 ? qs[j] & 0x0F : qs[j - 16] >> 4;
    return low | (int)(((qh >> j) & 1) << 4);
}

// x = d * (q - 16)
void tensor_dequantize_q5_0(const void *src, float *dst, int64_t n)
{
    const block_q5_0 *blocks = src;
    for (int64_t b = 0; b < n / QK5_0; b++, dst += QK5_0) {
        float d = half_at(&blocks[b].d);
        uint32_t qh = u32_le(blocks[b].qh);
        for (int j = 0; j < QK5_0; j++)
            dst[j] = d * (float)(q5_value(blocks[b].qs, qh, j) - 16);
    }
}

// x = d * q + m
void tensor_dequantize_q5_1(const void *src, float *dst, int64_t n)
{
    const block_q5_1 *blocks = src;
    for (int64_t b = 0; b < n / QK5_1; b++, dst += QK5_1) {
        float d = half_at(&blocks[b].d);
        float m = half_at(&blocks[b].m);
        uint32_t qh = u32_le(blocks[b].qh);
        for (int j = 0; j < QK5_1; j++)
            dst[j] = d * (float)q5_value(blocks[b].qs, qh, j) + m;
    }
}

// x = d * q for the `count` codes of one block of 8-bit codes.
static inline void scale_codes(float d, const int8_t *qs, int count, float *dst)
{
    for (int j = 0; j < count; j++)
        dst[j] = d * (float)qs[j];
}

void tensor_dequantize_q8_0(const void *src, float *dst, int64_t n)
{
    const block_q8_0 *blocks = src;
    for (int64_t b = 0; b < n / QK8_0; b++, dst += QK8_0)
        scale_codes(half_at(&blocks[b].d), blocks[b].qs, QK8_0, dst);
}

// (s is only a helper for dot products.)
void tensor_dequantize_q8_1(const void *src, float *dst, int64_t n)
{
    const block_q8_1 *blocks = src;
    for (int64_t b = 0; b < n / QK8_1; b++, dst += QK8_1)
        scale_codes(half_at(&blocks[b].d), blocks[b].qs, QK8_1, dst);
}

// x = (d * sc) * q - (dmin * m), per sub-block of 16.
void tensor_dequantize_q2_k(const void *src, float *dst, int64_t n)
{
    const block_q2_k *blocks = src;
    for (int64_t b = 0; b < n / QK_K; b++, dst += QK_K) {
        const block_q2_k *blk = &blocks[b];
        float d = half_at(&blk->d);
        float dmin = half_at(&blk->dmin);
        for (int i = 0; i < QK_K; i++) {
            int h = i / 128, j = (i % 128) / 32, l = i % 32;
            int sub = i / 16;
            float scale = d * (float)(blk->scales[sub] & 0x0F);
            float min = dmin * (float)(blk->scales[sub] >> 4);
            int q = (blk->qs[32 * h + l] >> (2 * j)) & 3;
            dst[i] = scale * (float)q - min;
        }
    }
}

// x = (d * (sc - 32)) * (q - 4), per sub-block of 16; a set hmask bit means q >= 4.
void tensor_dequantize_q3_k(const void *src, float *dst, int64_t n)
{
    const block_q3_k *blocks = src;
    for (int64_t b = 0; b < n / QK_K; b++, dst += QK_K) {
        const block_q3_k *blk = &blocks[b];
        float d = half_at(&blk->d);
        float scale[QK_K / 16];
        for (int s = 0; s < QK_K / 16; s++)
            scale[s] = d * (float)(tensor_k3_scale(blk->scales, s) - 32);
        for (int i = 0; i < QK_K; i++) {
            int h = i / 128, j = (i % 128) / 32, l = i % 32;
            int low = (blk->qs[32 * h + l] >> (2 * j)) & 3;
            int high = (blk->hmask[l] >> (4 * h + j)) & 1;
            dst[i] = scale[i / 16] * (float)(low + 4 * high - 4);
        }
    }
}

// Q4_K and Q5_K share their scales: x = (d * sc) * q - (dmin * m), per sub-block of 32.
static void k4_scales(const uint8_t *packed, float d, float dmin, float *scale, float *min)
{
    for (int s = 0; s < QK_K / 32; s++) {
        uint8_t sc, m;
        tensor_k4_scale_min(packed, s, &sc, &m);
        scale[s] = d * (float)sc;
        min[s] = dmin * (float)m;
    }
}

void tensor_dequantize_q4_k(const void *src, float *dst, int64_t n)
{
    const block_q4_k *blocks = src;
    for (int64_t b = 0; b < n / QK_K; b++, dst += QK_K) {
        const block_q4_k *blk = &blocks[b];
        float scale[QK_K / 32], min[QK_K / 32];
        k4_scales(blk->scales, half_at(&blk->d), half_at(&blk->dmin), scale, min);
        for (int i = 0; i < QK_K; i++) {
            int c = i / 64, l = i % 32;
            uint8_t byte = blk->qs[32 * c + l];
            int q = (i % 64) < 32 ? byte & 0x0F : byte >> 4;
            dst[i] = scale[i / 32] * (float)q - min[i / 32];
        }
    }
}

void tensor_dequantize_q5_k(const void *src, float *dst, int64_t n)
{
    const block_q5_k *blocks = src;
    for (int64_t b = 0; b < n / QK_K; b++, dst += QK_K) {
        const block_q5_k *blk = &blocks[b];
        float scale[QK_K / 32], min[QK_K / 32];
        k4_scales(blk->scales, half_at(&blk->d), half_at(&blk->dmin), scale, min);
        for (int i = 0; i < QK_K; i++) {
            int c = i / 64, l = i % 32, upper = (i % 64) >= 32;
            uint8_t byte = blk->qs[32 * c + l];
            int q = upper ? byte >> 4 : byte & 0x0F;
            q |= ((blk->qh[l] >> (2 * c + upper)) & 1) << 4;
            dst[i] = scale[i / 32] * (float)q - min[i / 32];
        }
    }
}

// x = (d * sc) * (q - 32), per sub-block of 16.
void tensor_dequantize_q6_k(const void *src, float *dst, int64_t n)
{
    const block_q6_k *blocks = src;
    for (int64_t b = 0; b < n / QK_K; b++, dst += QK_K) {
        const block_q6_k *blk = &blocks[b];
        float d = half_at(&blk->d);
        for (int i = 0; i < QK_K; i++) {
            int h = i / 128, k = (i % 128) / 32, l = i % 32;
            // k = 0, 1, 2, 3: low nibble of ql[l], ql[l+32], then high nibble of each
            uint8_t byte = blk->ql[64 * h + 32 * (k & 1) + l];
            int low = k < 2 ? byte & 0x0F : byte >> 4;
            int high = (blk->qh[32 * h + l] >> (2 * k)) & 3;
            float scale = d * (float)blk->scales[i / 16];
            dst[i] = scale * (float)((low | (high << 4)) - 32);
        }
    }
}

// x = d * q with a float d.
void tensor_dequantize_q8_k(const void *src, float *dst, int64_t n)
{
    const block_q8_k *blocks = src;
    for (int64_t b = 0; b < n / QK_K; b++, dst += QK_K)
        scale_codes(blocks[b].d, blocks[b].qs, QK_K, dst);
}

// Writes the 32 values d * grid[q] of 16 bytes of Q4_0-ordered nibbles.
static inline void iq4_nibbles(const uint8_t *qs, float d, float *dst)
{
    for (int j = 0; j < 16; j++) {
        dst[j] = d * (float)tensor_iq4_nl_values[qs[j] & 0x0F];
        dst[j + 16] = d * (float)tensor_iq4_nl_values[qs[j] >> 4];
    }
}

// x = d * grid[q]
void tensor_dequantize_iq4_nl(const void *src, float *dst, int64_t n)
{
    const block_iq4_nl *blocks = src;
    for (int64_t b = 0; b < n / QK4_NL; b++, dst += QK4_NL)
        iq4_nibbles(blocks[b].qs, half_at(&blocks[b].d), dst);
}

// x = (d * (ls - 32)) * grid[q], per sub-block of 32.
void tensor_dequantize_iq4_xs(const void *src, float *dst, int64_t n)
{
    const block_iq4_xs *blocks = src;
    for (int64_t b = 0; b < n / QK_K; b++, dst += QK_K) {
        const block_iq4_xs *blk = &blocks[b];
        float d = half_at(&blk->d);
        unsigned scales_h = blk->scales_h;
        for (int s = 0; s < QK_K / 32; s++) {
            int low = (blk->scales_l[s / 2] >> (4 * (s % 2))) & 0x0F;
            int high = (scales_h >> (2 * s)) & 3;
            float scale = d * (float)((low | (high << 4)) - 32);
            iq4_nibbles(blk->qs + 16 * s, scale, dst + 32 * s);
        }
    }
}

// x = scale(e) * values[q]: a power of two times a small integer, so every value is exact
// (the largest exponents overflow to inf, as in the reference).
void tensor_dequantize_mxfp4(const void *src, float *dst, int64_t n)
{
    const block_mxfp4 *blocks = src;
    for (int64_t b = 0; b < n / QK_MXFP4; b++, dst += QK_MXFP4) {
        float d = tensor_mxfp4_scale(blocks[b].e);
        for (int j = 0; j < QK_MXFP4 / 2; j++) {
            dst[j] = d * (float)tensor_mxfp4_values[blocks[b].qs[j] & 0x0F];
            dst[j + QK_MXFP4 / 2] = d * (float)tensor_mxfp4_values[blocks[b].qs[j] >> 4];
        }
    }
}

// x = d * e4m3(q): one float rounding of the product (NaN codes give NaN).
void tensor_dequantize_f8_e4m3(const void *src, float *dst, int64_t n)
{
    const block_f8_e4m3 *blocks = src;
    for (int64_t b = 0; b < n / QK_F8; b++, dst += QK_F8) {
        float d = blocks[b].d;
        for (int j = 0; j < QK_F8; j++)
            dst[j] = d * tensor_f8_e4m3_value(blocks[b].qs[j]);
    }
}

// x = d * (q - z): exact, a half times an integer of at most nine bits fits a float.
void tensor_dequantize_q4_z(const void *src, float *dst, int64_t n)
{
    const block_q4_z *blocks = src;
    for (int64_t b = 0; b < n / QK4_Z; b++, dst += QK4_Z) {
        float d = half_at(&blocks[b].d);
        int z = blocks[b].z;
        for (int j = 0; j < QK4_Z / 2; j++) {
            dst[j] = d * (float)((blocks[b].qs[j] & 0x0F) - z);
            dst[j + QK4_Z / 2] = d * (float)((blocks[b].qs[j] >> 4) - z);
        }
    }
}
