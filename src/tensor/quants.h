// SPDX-License-Identifier: MIT
// The packed blocks of the quantized GGUF weight types, byte for byte as they lie in a
// GGUF file (little-endian; scales are IEEE half floats kept as raw uint16_t bits), and of
// garlic's own in-memory types (F8_E4M3, Q4_Z). Each struct says how a value is rebuilt from
// its block; dequantize.c and quantize.c in this folder implement exactly that, and kernels/
// reads the same structs.
#ifndef GARLIC_TENSOR_QUANTS_H
#define GARLIC_TENSOR_QUANTS_H

#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "tensor/types.h"

// Blocks are read and written in place, multi-byte fields included.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "GGUF blocks need a little-endian host");

// Values per block of the legacy types and per super-block of the K-quants.
enum { QK4_0 = 32, QK4_1 = 32, QK5_0 = 32, QK5_1 = 32, QK8_0 = 32, QK8_1 = 32 };
enum { QK_K = 256, QK4_NL = 32, QK_MXFP4 = 32 };

// Q4_0: blocks of 32, x = d * (q - 8), q in 0..15; 4.5 bits per weight.
// qs[j] holds value j in its low nibble and value j + 16 in its high nibble.
typedef struct block_q4_0 {
    uint16_t d;            // scale (half)
    uint8_t qs[QK4_0 / 2]; // (32) nibbles
} block_q4_0;
static_assert(sizeof(block_q4_0) == 18, "block_q4_0 size");

// Q4_1: blocks of 32, x = d * q + m, q in 0..15; 5 bits per weight. Nibbles as Q4_0.
typedef struct block_q4_1 {
    uint16_t d;            // scale (half)
    uint16_t m;            // offset, the block's minimum (half)
    uint8_t qs[QK4_1 / 2]; // (32) nibbles
} block_q4_1;
static_assert(sizeof(block_q4_1) == 20, "block_q4_1 size");

// Q5_0: blocks of 32, x = d * (q - 16), q in 0..31; 5.5 bits per weight. The low four
// bits are nibbles as in Q4_0; bit j of the little-endian u32 qh is bit 4 of value j.
typedef struct block_q5_0 {
    uint16_t d;            // scale (half)
    uint8_t qh[4];         // fifth bits of the 32 values
    uint8_t qs[QK5_0 / 2]; // (32) low nibbles
} block_q5_0;
static_assert(sizeof(block_q5_0) == 22, "block_q5_0 size");

// Q5_1: blocks of 32, x = d * q + m, q in 0..31; 6 bits per weight. Bits as Q5_0.
typedef struct block_q5_1 {
    uint16_t d;            // scale (half)
    uint16_t m;            // offset (half)
    uint8_t qh[4];         // fifth bits of the 32 values
    uint8_t qs[QK5_1 / 2]; // (32) low nibbles
} block_q5_1;
static_assert(sizeof(block_q5_1) == 24, "block_q5_1 size");

// Q8_0: blocks of 32, x = d * q, q in -127..127; 8.5 bits per weight.
typedef struct block_q8_0 {
    uint16_t d;       // scale (half)
    int8_t qs[QK8_0]; // (32)
} block_q8_0;
static_assert(sizeof(block_q8_0) == 34, "block_q8_0 size");

// Q8_1: blocks of 32, x = d * q, plus s = d * sum(q) for kernels that pair it with
// offset types (Q4_1, Q5_1); 9 bits per weight. Used for activations.
typedef struct block_q8_1 {
    uint16_t d;       // scale (half)
    uint16_t s;       // d * sum of qs (half)
    int8_t qs[QK8_1]; // (32)
} block_q8_1;
static_assert(sizeof(block_q8_1) == 36, "block_q8_1 size");

// Q2_K: super-blocks of 256 = 16 sub-blocks of 16. x = d*sc * q - dmin*m, q in 0..3,
// sc and m 4-bit per sub-block; 2.625 bits per weight. Value 128*h + 32*j + l (h < 2,
// j < 4, l < 32) is bits 2j..2j+1 of qs[32*h + l]; sub-blocks are in value order.
typedef struct block_q2_k {
    uint8_t scales[QK_K / 16]; // (16) low nibble sc, high nibble m
    uint8_t qs[QK_K / 4];      // (64) 2-bit values
    uint16_t d;                // super-block scale of the sc (half)
    uint16_t dmin;             // super-block scale of the m (half)
} block_q2_k;
static_assert(sizeof(block_q2_k) == 84, "block_q2_k size");

// Q3_K: super-blocks of 256 = 16 sub-blocks of 16. x = d * (sc - 32) * (q - 4), q in 0..7,
// sc 6-bit per sub-block; 3.4375 bits per weight. Value 128*h + 32*j + l takes its low two
// bits from bits 2j..2j+1 of qs[32*h + l] and its third bit from bit 4h+j of hmask[l].
// Scale i: low four bits in scales[i % 8] (low nibble for i < 8, high nibble otherwise),
// top two bits in bits 2*(i/4)..+1 of scales[8 + i % 4].
typedef struct block_q3_k {
    uint8_t hmask[QK_K / 8]; // (32) third bits
    uint8_t qs[QK_K / 4];    // (64) low two bits
    uint8_t scales[12];      // 16 x 6-bit scales, packed as above
    uint16_t d;              // super-block scale (half)
} block_q3_k;
static_assert(sizeof(block_q3_k) == 110, "block_q3_k size");

// Q4_K: super-blocks of 256 = 8 sub-blocks of 32. x = d*sc * q - dmin*m, q in 0..15,
// sc and m 6-bit per sub-block; 4.5 bits per weight. Value 64*c + l (l < 32) is the low
// nibble of qs[32*c + l], value 64*c + 32 + l its high nibble. Scales (sc_i, m_i): for
// i < 4 the low six bits of scales[i] and scales[i + 4]; for i >= 4 the low and high
// nibbles of scales[i + 4], with their top two bits in the top bits of scales[i - 4] and
// scales[i].
typedef struct block_q4_k {
    uint16_t d;           // super-block scale of the sc (half)
    uint16_t dmin;        // super-block scale of the m (half)
    uint8_t scales[12];   // 8 x (6-bit sc, 6-bit m), packed as above
    uint8_t qs[QK_K / 2]; // (128) nibbles
} block_q4_k;
static_assert(sizeof(block_q4_k) == 144, "block_q4_k size");

// Q5_K: as Q4_K with q in 0..31; 5.5 bits per weight. Value 64*c + l takes bit 4 from
// bit 2c of qh[l], value 64*c + 32 + l from bit 2c+1.
typedef struct block_q5_k {
    uint16_t d;           // super-block scale of the sc (half)
    uint16_t dmin;        // super-block scale of the m (half)
    uint8_t scales[12];   // packed as Q4_K
    uint8_t qh[QK_K / 8]; // (32) fifth bits
    uint8_t qs[QK_K / 2]; // (128) low nibbles
} block_q5_k;
static_assert(sizeof(block_q5_k) == 176, "block_q5_k size");

// Q6_K: super-blocks of 256 = 16 sub-blocks of 16. x = d * sc * (q - 32), q in 0..63,
// sc a signed 8-bit scale per sub-block; 6.5625 bits per weight. In half h (128 values),
// for l < 32: values l and l+64 are the low and high nibble of ql[64h + l], values l+32
// and l+96 those of ql[64h + 32 + l]; values l, l+32, l+64 and l+96 take their top two
// bits from bits 0-1, 2-3, 4-5 and 6-7 of qh[32h + l].
typedef struct block_q6_k {
    uint8_t ql[QK_K / 2];     // (128) low four bits
    uint8_t qh[QK_K / 4];     // (64) top two bits
    int8_t scales[QK_K / 16]; // (16)
    uint16_t d;               // super-block scale (half)
} block_q6_k;
static_assert(sizeof(block_q6_k) == 210, "block_q6_k size");

// Q8_K: super-blocks of 256, x = d * q with a float d; bsums are the sums of each 16
// values' q, for the K-quant dot products. Used for activations; 9.125 bits per weight.
typedef struct block_q8_k {
    float d;                  // scale (float, not half)
    int8_t qs[QK_K];          // (256)
    int16_t bsums[QK_K / 16]; // (16)
} block_q8_k;
static_assert(sizeof(block_q8_k) == 292, "block_q8_k size");

// IQ4_NL: blocks of 32, x = d * tensor_iq4_nl_values[q], q in 0..15, a fixed non-linear
// grid; 4.5 bits per weight. Nibbles as Q4_0.
typedef struct block_iq4_nl {
    uint16_t d;             // scale (half)
    uint8_t qs[QK4_NL / 2]; // (32) grid indices
} block_iq4_nl;
static_assert(sizeof(block_iq4_nl) == 18, "block_iq4_nl size");

// IQ4_XS: super-blocks of 256 = 8 sub-blocks of 32, x = d * (ls - 32) * grid[q], ls a
// 6-bit scale per sub-block (low four bits in nibble i%2 of scales_l[i/2], top two in bits
// 2i..2i+1 of scales_h); 4.25 bits per weight. Sub-block i's nibbles are qs[16i..16i+15],
// laid out as in Q4_0.
typedef struct block_iq4_xs {
    uint16_t d;                  // super-block scale (half)
    uint16_t scales_h;           // top two bits of the 8 scales
    uint8_t scales_l[QK_K / 64]; // (4) low four bits of the 8 scales
    uint8_t qs[QK_K / 2];        // (128) grid indices
} block_iq4_xs;
static_assert(sizeof(block_iq4_xs) == 136, "block_iq4_xs size");

// MXFP4 (OCP microscaling FP4): blocks of 32, x = 2^(e - 127) * fp4[q], q a 4-bit E2M1 code
// (sign bit, two exponent bits, one mantissa bit: 0, 0.5, 1, 1.5, 2, 3, 4, 6 and their
// negatives) and e an E8M0 exponent byte; 4.25 bits per weight. Stored as ggml does it: the
// table holds the doubled values (tensor_mxfp4_values, integers) and the scale is halved to
// match, x = tensor_mxfp4_scale(e) * tensor_mxfp4_values[q]. Nibbles as Q4_0.
typedef struct block_mxfp4 {
    uint8_t e;                // shared exponent (E8M0)
    uint8_t qs[QK_MXFP4 / 2]; // (32) E2M1 codes
} block_mxfp4;
static_assert(sizeof(block_mxfp4) == 17, "block_mxfp4 size");

// F8_E4M3 (garlic's own, never in a GGUF file): blocks of 32, x = d * e4m3(q), q an OCP FP8
// E4M3 byte (sign, four exponent bits of bias 7, three mantissa bits; subnormals; 0x7F and
// 0xFF are NaN, no infinities), d an F32 scale; 9 bits per weight. Holds the FP8 weights of
// Hugging Face folders with their scales (per block of 128 x 128, per row or per tensor)
// repeated into each block, so the values are exactly the file's.
enum { QK_F8 = 32 };
typedef struct block_f8_e4m3 {
    float d;           // scale
    uint8_t qs[QK_F8]; // (32) E4M3 codes
} block_f8_e4m3;
static_assert(sizeof(block_f8_e4m3) == 36, "block_f8_e4m3 size");

// Q4_Z (garlic's own, never in a GGUF file): blocks of 32, x = d * (q - z), q in 0..15, z an
// integer zero point in 0..255, d a half scale; nibbles as Q4_0 (the low nibble of qs[j] is
// value j, the high one value j + 16); 5 bits per weight. Holds AWQ and GPTQ 4-bit weights
// exactly: their groups (32, 64, 128... columns) share d and z, repeated into each block.
enum { QK4_Z = 32 };
typedef struct block_q4_z {
    uint16_t d;            // scale (half)
    uint8_t z;             // zero point
    uint8_t pad;           // 0
    uint8_t qs[QK4_Z / 2]; // (32) nibbles
} block_q4_z;
static_assert(sizeof(block_q4_z) == 20, "block_q4_z size");

// The 16 grid points of IQ4_NL and IQ4_XS, in increasing order.
extern const int8_t tensor_iq4_nl_values[16];

// The E2M1 values of the 16 MXFP4 codes, doubled (code 8 is -0, stored here as 0).
extern const int8_t tensor_mxfp4_values[16];

// The scale of an MXFP4 block with exponent byte e: 2^(e - 128), half of E8M0's 2^(e - 127)
// because the table is doubled. Exact; e = 0 and 1 give the subnormals 2^-128 and 2^-127,
// and e = 255 (E8M0's NaN, which ggml rejects in files) gives 2^127 as in ggml.
static inline float tensor_mxfp4_scale(uint8_t e)
{
    uint32_t bits = e < 2 ? 0x00200000u << e : (uint32_t)(e - 1) << 23;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

// The value of an OCP FP8 E4M3 code, exactly: (1 + m/8) * 2^(e - 7) for an exponent field e
// of 1..15 and mantissa field m, m/8 * 2^-6 for e = 0 (subnormals; 0x80 is -0), NaN for 0x7F
// and 0xFF (E4M3 has no infinities; the largest finite value is 448).
static inline float tensor_f8_e4m3_value(uint8_t code)
{
    uint32_t sign = (uint32_t)(code & 0x80) << 24, e = (code >> 3) & 0x0F, m = code & 7;
    uint32_t bits;
    if ((code & 0x7F) == 0x7F) {
        bits = sign | 0x7FC00000u;
    } else if (e) {
        bits = sign | ((e + 120) << 23) | (m << 20); // rebias 7 -> 127
    } else {
        float sub = (float)m * 0x1p-9f; // exact
        memcpy(&bits, &sub, sizeof bits);
        bits |= sign;
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

// Value i's 6-bit scale and min in a Q4_K/Q5_K scales array (i < 8).
static inline void tensor_k4_scale_min(const uint8_t *scales, int i, uint8_t *sc, uint8_t *m)
{
    if (i < 4) {
        *sc = scales[i] & 63;
        *m = scales[i + 4] & 63;
    } else {
        *sc = (uint8_t)((scales[i + 4] & 0x0F) | ((scales[i - 4] >> 6) << 4));
        *m = (uint8_t)((scales[i + 4] >> 4) | ((scales[i] >> 6) << 4));
    }
}

// Sub-block i's 6-bit scale code (0..63, before subtracting 32) in a Q3_K scales array.
static inline int tensor_k3_scale(const uint8_t *scales, int i)
{
    int low = i < 8 ? scales[i] & 0x0F : scales[i - 8] >> 4;
    int high = (scales[8 + i % 4] >> (2 * (i / 4))) & 3;
    return low | (high << 4);
}

// The per-type converters behind the traits table (tensor_type_get(t)->dequantize and
// ->quantize); callable directly where the type is known. n is a multiple of the block
// size. Dequantizers are bit-exact with the reference (gguf-py / ggml; for garlic's own
// types, the formula of their block's comment with one float rounding). Quantizers take
// finite inputs and never divide by zero: an all-zero block comes out all zero.
void tensor_dequantize_f32(const void *src, float *dst, int64_t n);
void tensor_dequantize_f16(const void *src, float *dst, int64_t n);
void tensor_dequantize_bf16(const void *src, float *dst, int64_t n);
// The scalar truth and the per-ISA variants of the two above (x86-64 only for the latter;
// call a variant only when cpu_features_get() reports its ISA).
void tensor_dequantize_f16_ref(const void *src, float *dst, int64_t n);
void tensor_dequantize_bf16_ref(const void *src, float *dst, int64_t n);
void tensor_dequantize_f16_avx2(const void *src, float *dst, int64_t n);
void tensor_dequantize_bf16_avx2(const void *src, float *dst, int64_t n);
void tensor_dequantize_f16_avx512(const void *src, float *dst, int64_t n);
void tensor_dequantize_bf16_avx512(const void *src, float *dst, int64_t n);
void tensor_dequantize_q4_0(const void *src, float *dst, int64_t n);
void tensor_dequantize_q4_1(const void *src, float *dst, int64_t n);
void tensor_dequantize_q5_0(const void *src, float *dst, int64_t n);
void tensor_dequantize_q5_1(const void *src, float *dst, int64_t n);
void tensor_dequantize_q8_0(const void *src, float *dst, int64_t n);
void tensor_dequantize_q8_1(const void *src, float *dst, int64_t n);
void tensor_dequantize_q2_k(const void *src, float *dst, int64_t n);
void tensor_dequantize_q3_k(const void *src, float *dst, int64_t n);
void tensor_dequantize_q4_k(const void *src, float *dst, int64_t n);
void tensor_dequantize_q5_k(const void *src, float *dst, int64_t n);
void tensor_dequantize_q6_k(const void *src, float *dst, int64_t n);
void tensor_dequantize_q8_k(const void *src, float *dst, int64_t n);
void tensor_dequantize_iq4_nl(const void *src, float *dst, int64_t n);
void tensor_dequantize_iq4_xs(const void *src, float *dst, int64_t n);
void tensor_dequantize_mxfp4(const void *src, float *dst, int64_t n);
void tensor_dequantize_f8_e4m3(const void *src, float *dst, int64_t n);
void tensor_dequantize_q4_z(const void *src, float *dst, int64_t n);

void tensor_quantize_f32(const float *src, void *dst, int64_t n);
void tensor_quantize_f16(const float *src, void *dst, int64_t n);
// Its scalar truth and AVX2 + F16C variant (bit-identical, NaN included).
void tensor_quantize_f16_ref(const float *src, void *dst, int64_t n);
void tensor_quantize_f16_avx2(const float *src, void *dst, int64_t n);
void tensor_quantize_bf16(const float *src, void *dst, int64_t n);
void tensor_quantize_q4_0(const float *src, void *dst, int64_t n);
void tensor_quantize_q4_1(const float *src, void *dst, int64_t n);
void tensor_quantize_q5_0(const float *src, void *dst, int64_t n);
void tensor_quantize_q5_1(const float *src, void *dst, int64_t n);
void tensor_quantize_q8_0(const float *src, void *dst, int64_t n);
void tensor_quantize_q8_1(const float *src, void *dst, int64_t n);
void tensor_quantize_q2_k(const float *src, void *dst, int64_t n);
void tensor_quantize_q3_k(const float *src, void *dst, int64_t n);
void tensor_quantize_q4_k(const float *src, void *dst, int64_t n);
void tensor_quantize_q5_k(const float *src, void *dst, int64_t n);
void tensor_quantize_q6_k(const float *src, void *dst, int64_t n);
// The K-quant quantizers above search each sub-block's scales with a scoring kernel of one
// instruction set, chosen on first use from cpu_features_get(). The _ref twins are the
// scalar truth (one candidate scale at a time); every variant writes their bytes exactly.
void tensor_quantize_q2_k_ref(const float *src, void *dst, int64_t n);
void tensor_quantize_q3_k_ref(const float *src, void *dst, int64_t n);
void tensor_quantize_q4_k_ref(const float *src, void *dst, int64_t n);
void tensor_quantize_q5_k_ref(const float *src, void *dst, int64_t n);
void tensor_quantize_q6_k_ref(const float *src, void *dst, int64_t n);

typedef enum tensor_quant_variant {
    TENSOR_QUANT_SCALAR, // the batched search with a scalar kernel (any CPU)
    TENSOR_QUANT_AVX2,   // x86-64 with AVX2 + FMA + F16C
    TENSOR_QUANT_AVX512, // x86-64 with AVX-512 F/BW/DQ/VL
    TENSOR_QUANT_VARIANT_COUNT
} tensor_quant_variant;

// True when this CPU (as capped by GARLIC_CPU) runs variant v.
bool tensor_quant_variant_available(tensor_quant_variant v);

// "scalar", "avx2", "avx512".
const char *tensor_quant_variant_name(tensor_quant_variant v);

// Quantizes n values (a multiple of 256) to type (a K-quant, Q2_K..Q6_K) with variant v,
// which must be available, for tests and benches; false (nothing written) for other types.
bool tensor_quantize_variant(uint32_t type, tensor_quant_variant v, const float *src, void *dst,
                             int64_t n);
void tensor_quantize_q8_k(const float *src, void *dst, int64_t n);
void tensor_quantize_iq4_nl(const float *src, void *dst, int64_t n);
void tensor_quantize_iq4_xs(const float *src, void *dst, int64_t n);
void tensor_quantize_mxfp4(const float *src, void *dst, int64_t n);
void tensor_quantize_f8_e4m3(const float *src, void *dst, int64_t n);
void tensor_quantize_q4_z(const float *src, void *dst, int64_t n);

#endif
