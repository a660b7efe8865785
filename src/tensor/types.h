// SPDX-License-Identifier: MIT
// Weight types and the one type-traits table. The numeric ids are the ones GGUF files
// store (the ggml type ids), so a tensor's type field indexes this table directly. Every
// id a GGUF file may carry has a name, a block size and bytes per block, so that garlic can
// describe any file; dequantize and quantize are set where garlic implements them. A few
// ids past the GGUF ones are garlic's own layouts for weights of Hugging Face folders
// (flagged internal): they live only in memory, and the GGUF reader and writer refuse them.
#ifndef GARLIC_TENSOR_TYPES_H
#define GARLIC_TENSOR_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum tensor_type {
    TENSOR_TYPE_F32 = 0,
    TENSOR_TYPE_F16 = 1,
    TENSOR_TYPE_Q4_0 = 2,
    TENSOR_TYPE_Q4_1 = 3,
    // 4, 5: Q4_2, Q4_3 (removed from the format)
    TENSOR_TYPE_Q5_0 = 6,
    TENSOR_TYPE_Q5_1 = 7,
    TENSOR_TYPE_Q8_0 = 8,
    TENSOR_TYPE_Q8_1 = 9,
    TENSOR_TYPE_Q2_K = 10,
    TENSOR_TYPE_Q3_K = 11,
    TENSOR_TYPE_Q4_K = 12,
    TENSOR_TYPE_Q5_K = 13,
    TENSOR_TYPE_Q6_K = 14,
    TENSOR_TYPE_Q8_K = 15,
    TENSOR_TYPE_IQ2_XXS = 16,
    TENSOR_TYPE_IQ2_XS = 17,
    TENSOR_TYPE_IQ3_XXS = 18,
    TENSOR_TYPE_IQ1_S = 19,
    TENSOR_TYPE_IQ4_NL = 20,
    TENSOR_TYPE_IQ3_S = 21,
    TENSOR_TYPE_IQ2_S = 22,
    TENSOR_TYPE_IQ4_XS = 23,
    TENSOR_TYPE_I8 = 24,
    TENSOR_TYPE_I16 = 25,
    TENSOR_TYPE_I32 = 26,
    TENSOR_TYPE_I64 = 27,
    TENSOR_TYPE_F64 = 28,
    TENSOR_TYPE_IQ1_M = 29,
    TENSOR_TYPE_BF16 = 30,
    // 31..33: removed repacked Q4_0 variants
    TENSOR_TYPE_TQ1_0 = 34,
    TENSOR_TYPE_TQ2_0 = 35,
    // 36..38: removed repacked IQ4_NL variants
    TENSOR_TYPE_MXFP4 = 39,
    TENSOR_TYPE_GGUF_COUNT = 40, // the GGUF ids garlic knows are below this
    // 40..63: left to GGUF's own new types (ggml has since added NVFP4 = 40, Q1_0 = 41 and
    // Q2_0 = 42, which garlic reads as unknown types, not as its own below).
    // garlic's own layouts, made at load for weights of Hugging Face folders and never
    // written to or read from GGUF files (the GGUF reader and writer refuse them); their ids
    // are stored nowhere, so moving them is a renumbering:
    TENSOR_TYPE_F8_E4M3 = 64, // FP8 E4M3 in blocks of 32 with an F32 scale (block_f8_e4m3)
    TENSOR_TYPE_Q4_Z = 65,    // 4-bit with an integer zero point (AWQ, GPTQ): block_q4_z
    TENSOR_TYPE_COUNT = 66
} tensor_type;

// Converts n values (n a multiple of the type's block size) from the packed blocks at src
// to floats at dst. Exact: the result equals the reference dequantization bit for bit.
typedef void (*tensor_dequantize_fn)(const void *src, float *dst, int64_t n);

// Converts n floats (n a multiple of the block size) to packed blocks at dst.
typedef void (*tensor_quantize_fn)(const float *src, void *dst, int64_t n);

typedef struct tensor_type_traits {
    const char *name;                // "Q4_K", as GGUF tools print it
    uint32_t block_size;             // values per block (1 for plain types)
    uint32_t type_size;              // bytes per block
    bool is_quantized;               // block-quantized (not F32/F16/BF16/integers)
    tensor_dequantize_fn dequantize; // NULL where garlic cannot decode the type
    tensor_quantize_fn quantize;     // NULL where garlic cannot produce the type
    bool internal;                   // garlic's own layout, never in a GGUF file
} tensor_type_traits;

// The traits of a type id, or NULL if the id is unknown (neither a GGUF type garlic knows nor
// one of its own).
const tensor_type_traits *tensor_type_get(uint32_t type);

// The type whose name is `name` (case-insensitive, "q4_k" or "Q4_K"); returns false if none.
bool tensor_type_from_name(const char *name, tensor_type *out);

// Bytes taken by a row of n values of type: false if the type is unknown, n is not a
// multiple of its block size, or the size overflows.
bool tensor_row_size(uint32_t type, uint64_t n, uint64_t *bytes);

// IEEE half and bfloat16 conversions (round to nearest even; NaN stays NaN).
float tensor_f16_to_f32(uint16_t h);
uint16_t tensor_f32_to_f16(float f);
float tensor_bf16_to_f32(uint16_t h);
uint16_t tensor_f32_to_bf16(float f);

#endif
