// SPDX-License-Identifier: MIT
// KV element types: names, row sizes, and storing and loading one row of floats as F16, Q8_0,
// FP8 E4M3 or F32. F16 uses the conversion of src/tensor, Q8_0 the activation conversion of
// src/kernels (the 34-byte blocks of tensor/quants.h, rounded as the reference rounds K and
// V); FP8 E4M3 is converted here, bit by bit, with round to nearest even and saturation,
// because no weight type uses it yet.
#include <math.h>
#include <pthread.h>
#include <string.h>

#include "kernels/kernels.h"
#include "kvcache/kvcache.h"
#include "tensor/types.h"

static const char *const type_names[KV_TYPE_COUNT] = {
    [KV_TYPE_F16] = "f16",
    [KV_TYPE_Q8_0] = "q8_0",
    [KV_TYPE_FP8_E4M3] = "fp8",
    [KV_TYPE_F32] = "f32",
};

bool kv_type_parse(const char *name, kv_type *out)
{
    if (strcmp(name, "fp8_e4m3") == 0) {
        *out = KV_TYPE_FP8_E4M3;
        return true;
    }
    for (int i = 0; i < KV_TYPE_COUNT; i++) {
        if (strcmp(name, type_names[i]) == 0) {
            *out = (kv_type)i;
            return true;
        }
    }
    return false;
}

const char *kv_type_name(kv_type type)
{
    return (unsigned)type < KV_TYPE_COUNT ? type_names[type] : "?";
}

// The tensor type that stores rows of a KV type other than FP8 (tensor/ converts those).
static uint32_t storage_type(kv_type type)
{
    return type == KV_TYPE_F16 ? TENSOR_TYPE_F16
        : type == KV_TYPE_Q8_0 ? TENSOR_TYPE_Q8_0
                               : TENSOR_TYPE_F32;
}

bool kv_row_size(kv_type type, uint64_t n, uint64_t *bytes)
{
    if (type == KV_TYPE_FP8_E4M3) {
        *bytes = n;
        return true;
    }
    return (unsigned)type < KV_TYPE_COUNT && tensor_row_size(storage_type(type), n, bytes);
}

// Float -> E4M3. With E the float's biased exponent and M its 24-bit significand (implicit
// bit included), the E4M3 code of a magnitude is M scaled to units of the code's last
// mantissa bit: shift 20 for normal results (the code's exponent field then follows from E),
// more for subnormal ones. Rounding carries into the exponent naturally; codes above 0x7E
// (448) saturate.
uint8_t kv_fp8_from_f32(float f)
{
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    uint8_t sign = (uint8_t)((bits >> 24) & 0x80);
    uint32_t abs = bits & 0x7FFFFFFFu;
    if (abs > 0x7F800000u)
        return sign | 0x7F; // NaN
    if (abs >= 0x7F800000u)
        return sign | 0x7E; // infinity saturates to 448
    uint32_t exponent = abs >> 23;
    if (exponent == 0)
        return sign; // float subnormals are far below E4M3's smallest step (2^-9)
    uint32_t significand = (abs & 0x7FFFFFu) | 0x800000u;
    uint32_t shift = 20, base = 0;
    if (exponent >= 121) {
        base = (exponent - 121) << 3; // result exponent field - 1, in mantissa units
    } else {
        shift = 141 - exponent; // 2^-9 units: significand * 2^(exponent - 150 + 9)
        if (shift > 25)
            return sign; // below a quarter of the smallest step
    }
    uint32_t q = significand >> shift;
    uint32_t rest = significand & ((1u << shift) - 1);
    uint32_t half = 1u << (shift - 1);
    if (rest > half || (rest == half && (q & 1)))
        q++;
    uint32_t code = base + q;
    if (code > 0x7E)
        code = 0x7E;
    return (uint8_t)(sign | code);
}

float kv_fp8_to_f32(uint8_t code)
{
    uint32_t exponent = (code >> 3) & 0x0F, mantissa = code & 0x07;
    float magnitude;
    if (exponent == 0x0F && mantissa == 0x07) {
        magnitude = NAN;
    } else if (exponent == 0) {
        magnitude = ldexpf((float)mantissa, -9);
    } else {
        uint32_t bits = ((exponent + 120) << 23) | (mantissa << 20);
        memcpy(&magnitude, &bits, sizeof magnitude);
    }
    return (code & 0x80) ? -magnitude : magnitude;
}

void kv_row_store(kv_type type, void *dst, const float *src, uint64_t n)
{
    if (type == KV_TYPE_FP8_E4M3) {
        uint8_t *b = dst;
        for (uint64_t i = 0; i < n; i++)
            b[i] = kv_fp8_from_f32(src[i]);
    } else if (type == KV_TYPE_Q8_0) {
        // As the reference stores K and V: the activation conversion (round half to even).
        kernel_act_convert(TENSOR_TYPE_Q8_0, src, dst, (int64_t)n);
    } else if ((unsigned)type < KV_TYPE_COUNT) {
        tensor_type_get(storage_type(type))->quantize(src, dst, (int64_t)n);
    }
}

// Every E4M3 code decoded once, for row loads (attention reads FP8 rows through it).
static float fp8_table[256];
static pthread_once_t fp8_once = PTHREAD_ONCE_INIT;

static void fp8_table_init(void)
{
    for (int c = 0; c < 256; c++)
        fp8_table[c] = kv_fp8_to_f32((uint8_t)c);
}

void kv_row_load(kv_type type, const void *src, float *dst, uint64_t n)
{
    if (type == KV_TYPE_FP8_E4M3) {
        pthread_once(&fp8_once, fp8_table_init);
        const uint8_t *b = src;
        for (uint64_t i = 0; i < n; i++)
            dst[i] = fp8_table[b[i]];
    } else if ((unsigned)type < KV_TYPE_COUNT) {
        tensor_type_get(storage_type(type))->dequantize(src, dst, (int64_t)n);
    }
}
