// SPDX-License-Identifier: MIT
// The weight-type traits table (one row per GGUF type id and per type of garlic's own,
// designated initializers) and the lookups over it, plus the IEEE half and bfloat16
// conversions every other file uses. The conversions are plain bit manipulation, so they give
// the same bits on every CPU and compiler; the converters themselves live in dequantize.c and
// quantize.c.
#include "tensor/types.h"

#include <string.h>
#include <strings.h>

#include "tensor/quants.h"

// Types garlic can only describe have NULL converters; ids absent from the format (4, 5,
// 31..33, 36..38) have no name and are unknown to tensor_type_get. Rows flagged internal
// (the last field) are garlic's own layouts, which no GGUF file may carry.
static const tensor_type_traits type_table[TENSOR_TYPE_COUNT] = {
    [TENSOR_TYPE_F32] = {"F32", 1, 4, false, tensor_dequantize_f32, tensor_quantize_f32, false},
    [TENSOR_TYPE_F16] = {"F16", 1, 2, false, tensor_dequantize_f16, tensor_quantize_f16, false},
    [TENSOR_TYPE_Q4_0] = {"Q4_0", QK4_0, sizeof(block_q4_0), true, tensor_dequantize_q4_0,
                          tensor_quantize_q4_0, false},
    [TENSOR_TYPE_Q4_1] = {"Q4_1", QK4_1, sizeof(block_q4_1), true, tensor_dequantize_q4_1,
                          tensor_quantize_q4_1, false},
    [TENSOR_TYPE_Q5_0] = {"Q5_0", QK5_0, sizeof(block_q5_0), true, tensor_dequantize_q5_0,
                          tensor_quantize_q5_0, false},
    [TENSOR_TYPE_Q5_1] = {"Q5_1", QK5_1, sizeof(block_q5_1), true, tensor_dequantize_q5_1,
                          tensor_quantize_q5_1, false},
    [TENSOR_TYPE_Q8_0] = {"Q8_0", QK8_0, sizeof(block_q8_0), true, tensor_dequantize_q8_0,
                          tensor_quantize_q8_0, false},
    [TENSOR_TYPE_Q8_1] = {"Q8_1", QK8_1, sizeof(block_q8_1), true, tensor_dequantize_q8_1,
                          tensor_quantize_q8_1, false},
    [TENSOR_TYPE_Q2_K] = {"Q2_K", QK_K, sizeof(block_q2_k), true, tensor_dequantize_q2_k,
                          tensor_quantize_q2_k, false},
    [TENSOR_TYPE_Q3_K] = {"Q3_K", QK_K, sizeof(block_q3_k), true, tensor_dequantize_q3_k,
                          tensor_quantize_q3_k, false},
    [TENSOR_TYPE_Q4_K] = {"Q4_K", QK_K, sizeof(block_q4_k), true, tensor_dequantize_q4_k,
                          tensor_quantize_q4_k, false},
    [TENSOR_TYPE_Q5_K] = {"Q5_K", QK_K, sizeof(block_q5_k), true, tensor_dequantize_q5_k,
                          tensor_quantize_q5_k, false},
    [TENSOR_TYPE_Q6_K] = {"Q6_K", QK_K, sizeof(block_q6_k), true, tensor_dequantize_q6_k,
                          tensor_quantize_q6_k, false},
    [TENSOR_TYPE_Q8_K] = {"Q8_K", QK_K, sizeof(block_q8_k), true, tensor_dequantize_q8_k,
                          tensor_quantize_q8_k, false},
    [TENSOR_TYPE_IQ2_XXS] = {"IQ2_XXS", QK_K, 66, true, NULL, NULL, false},
    [TENSOR_TYPE_IQ2_XS] = {"IQ2_XS", QK_K, 74, true, NULL, NULL, false},
    [TENSOR_TYPE_IQ3_XXS] = {"IQ3_XXS", QK_K, 98, true, NULL, NULL, false},
    [TENSOR_TYPE_IQ1_S] = {"IQ1_S", QK_K, 50, true, NULL, NULL, false},
    [TENSOR_TYPE_IQ4_NL] = {"IQ4_NL", QK4_NL, sizeof(block_iq4_nl), true, tensor_dequantize_iq4_nl,
                            tensor_quantize_iq4_nl, false},
    [TENSOR_TYPE_IQ3_S] = {"IQ3_S", QK_K, 110, true, NULL, NULL, false},
    [TENSOR_TYPE_IQ2_S] = {"IQ2_S", QK_K, 82, true, NULL, NULL, false},
    [TENSOR_TYPE_IQ4_XS] = {"IQ4_XS", QK_K, sizeof(block_iq4_xs), true, tensor_dequantize_iq4_xs,
                            tensor_quantize_iq4_xs, false},
    [TENSOR_TYPE_I8] = {"I8", 1, 1, false, NULL, NULL, false},
    [TENSOR_TYPE_I16] = {"I16", 1, 2, false, NULL, NULL, false},
    [TENSOR_TYPE_I32] = {"I32", 1, 4, false, NULL, NULL, false},
    [TENSOR_TYPE_I64] = {"I64", 1, 8, false, NULL, NULL, false},
    [TENSOR_TYPE_F64] = {"F64", 1, 8, false, NULL, NULL, false},
    [TENSOR_TYPE_IQ1_M] = {"IQ1_M", QK_K, 56, true, NULL, NULL, false},
    [TENSOR_TYPE_BF16] = {"BF16", 1, 2, false, tensor_dequantize_bf16, tensor_quantize_bf16, false},
    [TENSOR_TYPE_TQ1_0] = {"TQ1_0", QK_K, 54, true, NULL, NULL, false},
    [TENSOR_TYPE_TQ2_0] = {"TQ2_0", QK_K, 66, true, NULL, NULL, false},
    [TENSOR_TYPE_MXFP4] = {"MXFP4", QK_MXFP4, sizeof(block_mxfp4), true, tensor_dequantize_mxfp4,
                           tensor_quantize_mxfp4, false},
    // garlic's own (internal): Hugging Face FP8 and AWQ/GPTQ weights, repacked at load
    [TENSOR_TYPE_F8_E4M3] = {"F8_E4M3", QK_F8, sizeof(block_f8_e4m3), true,
                             tensor_dequantize_f8_e4m3, tensor_quantize_f8_e4m3, true},
    [TENSOR_TYPE_Q4_Z] = {"Q4_Z", QK4_Z, sizeof(block_q4_z), true, tensor_dequantize_q4_z,
                          tensor_quantize_q4_z, true},
};

const tensor_type_traits *tensor_type_get(uint32_t type)
{
    if (type >= TENSOR_TYPE_COUNT || !type_table[type].name)
        return NULL;
    return &type_table[type];
}

bool tensor_type_from_name(const char *name, tensor_type *out)
{
    if (!name)
        return false;
    for (uint32_t t = 0; t < TENSOR_TYPE_COUNT; t++) {
        if (type_table[t].name && strcasecmp(type_table[t].name, name) == 0) {
            *out = (tensor_type)t;
            return true;
        }
    }
    return false;
}

bool tensor_row_size(uint32_t type, uint64_t n, uint64_t *bytes)
{
    const tensor_type_traits *tr = tensor_type_get(type);
    if (!tr || n % tr->block_size != 0)
        return false;
    uint64_t size;
    if (__builtin_mul_overflow(n / tr->block_size, (uint64_t)tr->type_size, &size))
        return false;
    *bytes = size;
    return true;
}

static inline uint32_t float_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float bits_float(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

// Exact: every half is a float. Subnormal halves are normalized; inf and NaN keep their
// sign and payload (a NaN's payload moves to the top of the float's mantissa).
float tensor_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1F;
    uint32_t mant = h & 0x3FF;
    if (exp == 0x1F)
        return bits_float(sign | 0x7F800000u | (mant << 13));
    if (exp != 0)
        return bits_float(sign | ((exp + 112) << 23) | (mant << 13)); // rebias 15 -> 127
    if (mant == 0)
        return bits_float(sign);
    // Subnormal: mant * 2^-24. Shift the leading one up to bit 10 and drop it.
    uint32_t fexp = 113;
    while (!(mant & 0x400)) {
        mant <<= 1;
        fexp--;
    }
    return bits_float(sign | (fexp << 23) | ((mant & 0x3FF) << 13));
}

// Rounds v >> shift to nearest, ties to even (shift in 1..31).
static inline uint32_t shift_round_even(uint32_t v, uint32_t shift)
{
    uint32_t kept = v >> shift;
    uint32_t rest = v & ((1u << shift) - 1);
    uint32_t half = 1u << (shift - 1);
    if (rest > half || (rest == half && (kept & 1)))
        kept++;
    return kept;
}

// Round to nearest even. Values from 65520 up become inf; NaN becomes a quiet NaN that
// keeps the sign and the top ten payload bits (what x86's F16C instructions do).
uint16_t tensor_f32_to_f16(float f)
{
    uint32_t u = float_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    uint32_t a = u & 0x7FFFFFFFu;
    if (a > 0x7F800000u)
        return (uint16_t)(sign | 0x7E00 | ((a >> 13) & 0x3FF));
    if (a >= 0x477FF000u) // 65520: halfway between 65504 and 65536 rounds to inf
        return (uint16_t)(sign | 0x7C00);
    if (a >= 0x38800000u) { // 2^-14, the smallest normal half
        uint32_t rebased = a - ((uint32_t)(127 - 15) << 23);
        return (uint16_t)(sign | shift_round_even(rebased, 13)); // a carry bumps the exponent
    }
    if (a <= 0x33000000u) // 2^-25 and below: half of the smallest subnormal, ties to zero
        return sign;
    // Subnormal half: the value in units of 2^-24 is mant * 2^(exp - 126).
    uint32_t exp = a >> 23;
    uint32_t mant = (a & 0x7FFFFFu) | 0x800000u;
    return (uint16_t)(sign | shift_round_even(mant, 126 - exp));
}

float tensor_bf16_to_f32(uint16_t h) { return bits_float((uint32_t)h << 16); }

// Round to nearest even; a NaN keeps its sign and top payload bits and is made quiet
// (bit 6 of the bf16 set), as gguf-py and ggml do.
uint16_t tensor_f32_to_bf16(float f)
{
    uint32_t u = float_bits(f);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u)
        return (uint16_t)((u >> 16) | 0x40);
    return (uint16_t)((u + 0x7FFFu + ((u >> 16) & 1)) >> 16);
}
