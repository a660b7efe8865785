// SPDX-License-Identifier: MIT
// Device helpers the CUDA kernels share: warp reductions, unaligned little-endian loads of
// quant block fields (a Q8_0 block is 34 bytes, so its half scale is only 2-byte aligned,
// and a MXFP4 block is 17 bytes, so nothing in it is), the half and E4M3 conversions the
// CPU reference uses, and grid sizes that never exceed the hardware's limits.
#ifndef GARLIC_BACKEND_CUDA_COMMON_CUH
#define GARLIC_BACKEND_CUDA_COMMON_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>
#include <string.h>

// Functions marked GARLIC_HD also compile for the host, where the CUDA tests check them
// against the CPU's code without a GPU (cuda_host_* in internal.h).
#define GARLIC_HD __host__ __device__ __forceinline__

// "#pragma unroll" for loops of GARLIC_HD functions: the device compiler's; the host compiler
// has no such pragma (and would warn).
#ifdef __CUDA_ARCH__
#define GARLIC_UNROLL _Pragma("unroll")
#else
#define GARLIC_UNROLL
#endif

// Float bits and one rounding per operation on both sides: the intrinsics on the device
// (nvcc would otherwise fuse a product and a sum into an FMA), plain operators on the host
// (the host compiler contracts nothing for x86-64 without -mfma).
static GARLIC_HD float bits_float(uint32_t u)
{
#ifdef __CUDA_ARCH__
    return __uint_as_float(u);
#else
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
#endif
}

static GARLIC_HD uint32_t float_bits(float f)
{
#ifdef __CUDA_ARCH__
    return __float_as_uint(f);
#else
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
#endif
}

static GARLIC_HD float mul_rn(float a, float b)
{
#ifdef __CUDA_ARCH__
    return __fmul_rn(a, b);
#else
    return a * b;
#endif
}

static GARLIC_HD float add_rn(float a, float b)
{
#ifdef __CUDA_ARCH__
    return __fadd_rn(a, b);
#else
    return a + b;
#endif
}

static GARLIC_HD float sub_rn(float a, float b)
{
#ifdef __CUDA_ARCH__
    return __fsub_rn(a, b);
#else
    return a - b;
#endif
}

static __device__ __forceinline__ float warp_sum(float v)
{
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

static __device__ __forceinline__ double warp_sum_double(double v)
{
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

static __device__ __forceinline__ float warp_max(float v)
{
    for (int o = 16; o > 0; o >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// A little-endian u16 / u32 / f32 at any byte address (block fields are not aligned).
static GARLIC_HD uint32_t load_u16(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8);
}

static GARLIC_HD uint32_t load_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static GARLIC_HD float half_bits_to_float(uint32_t bits)
{
    return __half2float(__ushort_as_half((unsigned short)bits));
}

static GARLIC_HD float load_half(const uint8_t *p) { return half_bits_to_float(load_u16(p)); }

static GARLIC_HD float load_f32(const uint8_t *p) { return bits_float(load_u32(p)); }

// The value of an OCP FP8 E4M3 code (tensor_f8_e4m3_value, kv_fp8_to_f32): NaN for 0x7F and
// 0xFF, subnormals m/8 * 2^-6.
static GARLIC_HD float e4m3_value(uint32_t code)
{
    uint32_t sign = (code & 0x80u) << 24, e = (code >> 3) & 0x0Fu, m = code & 7u;
    if ((code & 0x7Fu) == 0x7Fu)
        return bits_float(sign | 0x7FC00000u);
    if (e)
        return bits_float(sign | ((e + 120u) << 23) | (m << 20));
    return bits_float(float_bits((float)m * 0x1p-9f) | sign);
}

// Float -> E4M3 exactly as kv_fp8_from_f32 (kvcache/rows.c): round to nearest even,
// saturate to +-448, NaN to 0x7F with the sign, float subnormals to a signed zero.
static GARLIC_HD uint8_t e4m3_from_float(float f)
{
    uint32_t bits = float_bits(f);
    uint32_t sign = (bits >> 24) & 0x80u;
    uint32_t mag = bits & 0x7FFFFFFFu;
    if (mag > 0x7F800000u)
        return (uint8_t)(sign | 0x7Fu);
    if (mag >= 0x7F800000u)
        return (uint8_t)(sign | 0x7Eu);
    uint32_t exponent = mag >> 23;
    if (exponent == 0)
        return (uint8_t)sign;
    uint32_t significand = (mag & 0x7FFFFFu) | 0x800000u;
    uint32_t shift = 20, base = 0;
    if (exponent >= 121) {
        base = (exponent - 121) << 3;
    } else {
        shift = 141 - exponent;
        if (shift > 25)
            return (uint8_t)sign;
    }
    uint32_t q = significand >> shift;
    uint32_t rest = significand & ((1u << shift) - 1);
    uint32_t halfway = 1u << (shift - 1);
    if (rest > halfway || (rest == halfway && (q & 1)))
        q++;
    uint32_t code = base + q;
    if (code > 0x7Eu)
        code = 0x7Eu;
    return (uint8_t)(sign | code);
}

// Blocks for a grid-stride loop over n items of `threads` threads each: enough to fill the
// device, never more than the x dimension allows.
static inline unsigned grid_for(uint64_t n, unsigned threads)
{
    uint64_t blocks = (n + threads - 1) / threads;
    if (blocks > 65535u * 16u)
        blocks = 65535u * 16u;
    return blocks ? (unsigned)blocks : 1u;
}

#endif
