// SPDX-License-Identifier: MIT
// Quantized weights on the device: every supported type is read 32 values (a "chunk") at a
// time, from the same block bytes as in the file (tensor/quants.h), and rebuilt with the
// scale products in the order tensor/dequantize.c forms them, so a dequantized value equals
// the CPU's bit for bit. Two kernels use that: a mat-vec kernel for a few tokens (one warp a
// weight row, lanes over the row's chunks, up to CUDA_MATVEC_MAX_TOK activation rows of
// floats staged through shared memory, a warp reduction at the end) and a dequantizer to F16
// rows, which cuda.c feeds to cuBLAS for prompts. Block fields are read with the widest loads
// their alignment allows (load_words): blocks of 34, 22, 17 or 210 bytes leave their halves
// and words unaligned.
#include <assert.h>

#include "backend/cuda/common.cuh"
#include "backend/cuda/internal.h"

// Tensor type ids (tensor/types.h) of the types handled here.
enum {
    T_Q4_0 = 2,
    T_Q4_1 = 3,
    T_Q5_0 = 6,
    T_Q5_1 = 7,
    T_Q8_0 = 8,
    T_Q2_K = 10,
    T_Q3_K = 11,
    T_Q4_K = 12,
    T_Q5_K = 13,
    T_Q6_K = 14,
    T_IQ4_NL = 20,
    T_IQ4_XS = 23,
    T_MXFP4 = 39,
    T_F8_E4M3 = 64,
    T_Q4_Z = 65,
};

// tensor_iq4_nl_values and tensor_mxfp4_values (doubled E2M1 values), in constant memory
// for the device and as plain tables for the host.
#define GARLIC_IQ4_GRID                                                                            \
    {                                                                                              \
        -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113                   \
    }
#define GARLIC_MXFP4_GRID                                                                          \
    {                                                                                              \
        0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12                                    \
    }
__constant__ int8_t iq4_grid_dev[16] = GARLIC_IQ4_GRID;
__constant__ int8_t mxfp4_grid_dev[16] = GARLIC_MXFP4_GRID;
#ifndef __CUDA_ARCH__
static const int8_t iq4_grid_host[16] = GARLIC_IQ4_GRID;
static const int8_t mxfp4_grid_host[16] = GARLIC_MXFP4_GRID;
#endif

static GARLIC_HD float iq4_grid(int i)
{
#ifdef __CUDA_ARCH__
    return (float)iq4_grid_dev[i];
#else
    return (float)iq4_grid_host[i];
#endif
}

static GARLIC_HD float mxfp4_grid(int i)
{
#ifdef __CUDA_ARCH__
    return (float)mxfp4_grid_dev[i];
#else
    return (float)mxfp4_grid_host[i];
#endif
}

// Bytes per block and values per block of each type.
template <int T> struct traits;
template <> struct traits<T_Q4_0> {
    enum { bytes = 18, values = 32 };
};
template <> struct traits<T_Q4_1> {
    enum { bytes = 20, values = 32 };
};
template <> struct traits<T_Q5_0> {
    enum { bytes = 22, values = 32 };
};
template <> struct traits<T_Q5_1> {
    enum { bytes = 24, values = 32 };
};
template <> struct traits<T_Q8_0> {
    enum { bytes = 34, values = 32 };
};
template <> struct traits<T_IQ4_NL> {
    enum { bytes = 18, values = 32 };
};
template <> struct traits<T_MXFP4> {
    enum { bytes = 17, values = 32 };
};
template <> struct traits<T_F8_E4M3> {
    enum { bytes = 36, values = 32 };
};
template <> struct traits<T_Q4_Z> {
    enum { bytes = 20, values = 32 };
};
template <> struct traits<T_Q2_K> {
    enum { bytes = 84, values = 256 };
};
template <> struct traits<T_Q3_K> {
    enum { bytes = 110, values = 256 };
};
template <> struct traits<T_Q4_K> {
    enum { bytes = 144, values = 256 };
};
template <> struct traits<T_Q5_K> {
    enum { bytes = 176, values = 256 };
};
template <> struct traits<T_Q6_K> {
    enum { bytes = 210, values = 256 };
};
template <> struct traits<T_IQ4_XS> {
    enum { bytes = 136, values = 256 };
};

static GARLIC_HD float mul(float a, float b) { return mul_rn(a, b); }

// tensor_k4_scale_min: sub-block i's 6-bit scale and min of a Q4_K/Q5_K scales array.
static GARLIC_HD void k4_scale_min(const uint8_t *s, int i, int *sc, int *m)
{
    if (i < 4) {
        *sc = s[i] & 63;
        *m = s[i + 4] & 63;
    } else {
        *sc = (s[i + 4] & 0x0F) | ((s[i - 4] >> 6) << 4);
        *m = (s[i + 4] >> 4) | ((s[i] >> 6) << 4);
    }
}

// tensor_k3_scale: sub-block i's 6-bit scale code of a Q3_K scales array.
static GARLIC_HD int k3_scale(const uint8_t *s, int i)
{
    int low = i < 8 ? s[i] & 0x0F : s[i - 8] >> 4;
    int high = (s[8 + i % 4] >> (2 * (i / 4))) & 3;
    return low | (high << 4);
}

// N bytes (a multiple of 4) at p, known to be A-byte aligned, as little-endian words: on the
// device with the widest loads A allows (the loads, not the arithmetic, bound these kernels),
// on the host with memcpy after checking the alignment that the device relies on. Alignments
// follow from the block sizes: device rows start at multiples of the row bytes from a
// 256-byte aligned allocation, so a block of B bytes starts at a multiple of gcd(B, 256)
// (Q4_K 144, Q5_K 176: 16; IQ4_XS 136: 8; Q4_1, Q4_Z, Q2_K, F8_E4M3: 4; MXFP4 17: 1; the
// others 2).
template <int N, int A> static GARLIC_HD void load_words(const uint8_t *p, uint32_t *w)
{
#ifdef __CUDA_ARCH__
    if (A >= 16) {
        GARLIC_UNROLL
        for (int i = 0; i < N / 16; i++) {
            uint4 q = ((const uint4 *)p)[i];
            w[4 * i] = q.x, w[4 * i + 1] = q.y, w[4 * i + 2] = q.z, w[4 * i + 3] = q.w;
        }
    } else if (A >= 4) {
        GARLIC_UNROLL
        for (int i = 0; i < N / 4; i++)
            w[i] = ((const uint32_t *)p)[i];
    } else if (A >= 2) {
        const uint16_t *h = (const uint16_t *)p;
        GARLIC_UNROLL
        for (int i = 0; i < N / 4; i++)
            w[i] = (uint32_t)h[2 * i] | ((uint32_t)h[2 * i + 1] << 16);
    } else {
        GARLIC_UNROLL
        for (int i = 0; i < N / 4; i++)
            w[i] = load_u32(p + 4 * i);
    }
#else
    assert((uintptr_t)p % A == 0);
    memcpy(w, p, N);
#endif
}

// Byte i of words loaded by load_words.
static GARLIC_HD uint32_t byte_of(const uint32_t *w, int i)
{
    return (w[i >> 2] >> (8 * (i & 3))) & 0xFFu;
}

// A half at a 2-byte aligned address.
static GARLIC_HD float half_at(const uint8_t *p)
{
#ifdef __CUDA_ARCH__
    return half_bits_to_float(*(const uint16_t *)p);
#else
    assert((uintptr_t)p % 2 == 0);
    return load_half(p);
#endif
}

// The 32 values of a block of 32 (chunk c of the row) into v.
template <int T> static GARLIC_HD void block32_values(const uint8_t *row, uint32_t c, float *v)
{
    const uint8_t *b = row + (uint64_t)c * traits<T>::bytes;
    uint32_t w[8];
    if (T == T_Q4_0 || T == T_IQ4_NL) {
        float d = half_at(b);
        load_words<16, 2>(b + 2, w);
        GARLIC_UNROLL
        for (int j = 0; j < 16; j++) {
            int lo = byte_of(w, j) & 0x0F, hi = byte_of(w, j) >> 4;
            v[j] = T == T_Q4_0 ? mul(d, (float)(lo - 8)) : mul(d, iq4_grid(lo));
            v[j + 16] = T == T_Q4_0 ? mul(d, (float)(hi - 8)) : mul(d, iq4_grid(hi));
        }
    } else if (T == T_Q4_1) {
        float d = half_at(b), m = half_at(b + 2);
        load_words<16, 4>(b + 4, w);
        GARLIC_UNROLL
        for (int j = 0; j < 16; j++) {
            v[j] = add_rn(mul(d, (float)(byte_of(w, j) & 0x0F)), m);
            v[j + 16] = add_rn(mul(d, (float)(byte_of(w, j) >> 4)), m);
        }
    } else if (T == T_Q5_0 || T == T_Q5_1) {
        const int off = T == T_Q5_0 ? 2 : 4;
        float d = half_at(b), m = T == T_Q5_1 ? half_at(b + 2) : 0.0f;
        uint32_t qh;
        load_words<4, off>(b + off, &qh);
        load_words<16, off>(b + off + 4, w);
        GARLIC_UNROLL
        for (int j = 0; j < 32; j++) {
            int low = j < 16 ? byte_of(w, j) & 0x0F : byte_of(w, j - 16) >> 4;
            int q = low | (int)(((qh >> j) & 1) << 4);
            v[j] = T == T_Q5_0 ? mul(d, (float)(q - 16)) : add_rn(mul(d, (float)q), m);
        }
    } else if (T == T_Q8_0) {
        float d = half_at(b);
        load_words<32, 2>(b + 2, w);
        GARLIC_UNROLL
        for (int j = 0; j < 32; j++)
            v[j] = mul(d, (float)(int8_t)byte_of(w, j));
    } else if (T == T_MXFP4) {
        uint32_t e = b[0];
        float d = bits_float(e < 2 ? 0x00200000u << e : (e - 1) << 23);
        load_words<16, 1>(b + 1, w);
        GARLIC_UNROLL
        for (int j = 0; j < 16; j++) {
            v[j] = mul(d, mxfp4_grid(byte_of(w, j) & 0x0F));
            v[j + 16] = mul(d, mxfp4_grid(byte_of(w, j) >> 4));
        }
    } else if (T == T_F8_E4M3) {
        uint32_t dw;
        load_words<4, 4>(b, &dw);
        float d = bits_float(dw);
        load_words<32, 4>(b + 4, w);
        GARLIC_UNROLL
        for (int j = 0; j < 32; j++)
            v[j] = mul(d, e4m3_value(byte_of(w, j)));
    } else if (T == T_Q4_Z) {
        float d = half_at(b);
        int z = b[2];
        load_words<16, 4>(b + 4, w);
        GARLIC_UNROLL
        for (int j = 0; j < 16; j++) {
            v[j] = mul(d, (float)((int)(byte_of(w, j) & 0x0F) - z));
            v[j + 16] = mul(d, (float)((int)(byte_of(w, j) >> 4) - z));
        }
    }
}

// The 32 values of sub-block s (values 32s .. 32s + 31) of a super-block of 256 into v.
template <int T> static GARLIC_HD void block256_values(const uint8_t *b, int s, float *v)
{
    uint32_t w[8], w2[8];
    if (T == T_Q2_K) {
        float d = half_at(b + 80), dmin = half_at(b + 82);
        int h = s / 4, j = s % 4;
        load_words<32, 4>(b + 16 + 32 * h, w);
        float scale[2], min[2];
        GARLIC_UNROLL
        for (int i = 0; i < 2; i++) {
            scale[i] = mul(d, (float)(b[2 * s + i] & 0x0F));
            min[i] = mul(dmin, (float)(b[2 * s + i] >> 4));
        }
        GARLIC_UNROLL
        for (int l = 0; l < 32; l++) {
            int q = (byte_of(w, l) >> (2 * j)) & 3;
            v[l] = sub_rn(mul(scale[l / 16], (float)q), min[l / 16]);
        }
    } else if (T == T_Q3_K) {
        float d = half_at(b + 108);
        int h = s / 4, j = s % 4;
        load_words<32, 2>(b, w2);              // hmask
        load_words<32, 2>(b + 32 + 32 * h, w); // qs
        float scale0 = mul(d, (float)(k3_scale(b + 96, 2 * s) - 32));
        float scale1 = mul(d, (float)(k3_scale(b + 96, 2 * s + 1) - 32));
        GARLIC_UNROLL
        for (int l = 0; l < 32; l++) {
            int low = (byte_of(w, l) >> (2 * j)) & 3;
            int high = (byte_of(w2, l) >> (4 * h + j)) & 1;
            v[l] = mul(l < 16 ? scale0 : scale1, (float)(low + 4 * high - 4));
        }
    } else if (T == T_Q4_K || T == T_Q5_K) {
        float d = half_at(b), dmin = half_at(b + 2);
        int sc, m;
        k4_scale_min(b + 4, s, &sc, &m);
        float scale = mul(d, (float)sc), min = mul(dmin, (float)m);
        int cc = s / 2, upper = s % 2;
        load_words<32, 16>(b + (T == T_Q4_K ? 16 : 48) + 32 * cc, w);
        if (T == T_Q5_K)
            load_words<32, 16>(b + 16, w2); // qh
        GARLIC_UNROLL
        for (int l = 0; l < 32; l++) {
            uint32_t byte = byte_of(w, l);
            int q = upper ? byte >> 4 : byte & 0x0F;
            if (T == T_Q5_K)
                q |= ((byte_of(w2, l) >> (2 * cc + upper)) & 1) << 4;
            v[l] = sub_rn(mul(scale, (float)q), min);
        }
    } else if (T == T_Q6_K) {
        float d = half_at(b + 208);
        int h = s / 4, k = s % 4;
        float scale0 = mul(d, (float)(int8_t)b[192 + 2 * s]);
        float scale1 = mul(d, (float)(int8_t)b[192 + 2 * s + 1]);
        load_words<32, 2>(b + 64 * h + 32 * (k & 1), w); // ql
        load_words<32, 2>(b + 128 + 32 * h, w2);         // qh
        GARLIC_UNROLL
        for (int l = 0; l < 32; l++) {
            uint32_t byte = byte_of(w, l);
            int low = k < 2 ? byte & 0x0F : byte >> 4;
            int high = (byte_of(w2, l) >> (2 * k)) & 3;
            v[l] = mul(l < 16 ? scale0 : scale1, (float)((low | (high << 4)) - 32));
        }
    } else if (T == T_IQ4_XS) {
        float d = half_at(b);
        uint32_t scales_h = load_u16(b + 2);
        int low = (b[4 + s / 2] >> (4 * (s % 2))) & 0x0F;
        int high = (scales_h >> (2 * s)) & 3;
        float scale = mul(d, (float)((low | (high << 4)) - 32));
        load_words<16, 8>(b + 8 + 16 * s, w);
        GARLIC_UNROLL
        for (int j = 0; j < 16; j++) {
            v[j] = mul(scale, iq4_grid(byte_of(w, j) & 0x0F));
            v[j + 16] = mul(scale, iq4_grid(byte_of(w, j) >> 4));
        }
    }
}

// The 32 values of chunk c of a row (values 32c .. 32c + 31) into v.
template <int T> static GARLIC_HD void chunk_values(const uint8_t *row, uint32_t c, float *v)
{
    if (traits<T>::values == 32)
        block32_values<T>(row, c, v);
    else
        block256_values<T>(row + (uint64_t)(c / 8) * traits<T>::bytes, (int)(c % 8), v);
}

// Bytes of one row of n values of type T.
template <int T> static __host__ __device__ uint64_t row_bytes(uint64_t n)
{
    return n / traits<T>::values * traits<T>::bytes;
}

// Mat-vec blocks: MATVEC_WARPS weight rows, one a warp. The input rows are staged through
// shared memory 32 chunks (1024 values) at a time, loaded coalesced by the whole block and
// laid out 36 floats a chunk: each lane reads its chunk as 8 float4 loads, and the 144-byte
// pitch puts the 8 lanes of each quarter-warp phase on different banks (read from global
// memory directly, each lane's 128 contiguous bytes would touch 32 cache lines per load).
enum { MATVEC_WARPS = 8, STAGE_PITCH = 36 };

// y[t][row] for every token t: lane l takes chunk l of each stage of the row.
template <int T>
__global__ void __launch_bounds__(MATVEC_WARPS * 32)
    matvec_kernel(const uint8_t *w, uint64_t n_in, uint64_t n_out, const float *x,
                  uint64_t in_stride, uint32_t n_tok, float *y, uint64_t ldy)
{
    __shared__ __align__(16) float xs[CUDA_MATVEC_MAX_TOK][32 * STAGE_PITCH];
    uint64_t row = (uint64_t)blockIdx.x * MATVEC_WARPS + threadIdx.x / 32;
    uint32_t lane = threadIdx.x & 31;
    bool live = row < n_out; // (warp-uniform; no early return: every thread stages inputs)
    const uint8_t *wr = w + (live ? row : 0) * row_bytes<T>(n_in);
    uint64_t n_chunks = n_in / 32;
    float acc[CUDA_MATVEC_MAX_TOK];
#pragma unroll
    for (int t = 0; t < CUDA_MATVEC_MAX_TOK; t++)
        acc[t] = 0.0f;
    float v[32];
    for (uint64_t c0 = 0; c0 < n_chunks; c0 += 32) {
        uint32_t stage = n_chunks - c0 < 32 ? (uint32_t)(n_chunks - c0) : 32;
        uint32_t values = stage * 32;
        __syncthreads(); // every warp is done with the previous stage
        for (uint32_t i = threadIdx.x; i < n_tok * values; i += blockDim.x) {
            uint32_t t = i / values, k = i % values;
            xs[t][(k / 32) * STAGE_PITCH + k % 32] = x[t * in_stride + c0 * 32 + k];
        }
        __syncthreads();
        if (!live || lane >= stage)
            continue;
        chunk_values<T>(wr, (uint32_t)(c0 + lane), v);
#pragma unroll
        for (int t = 0; t < CUDA_MATVEC_MAX_TOK; t++) {
            if (t >= (int)n_tok)
                break;
            const float4 *xr = (const float4 *)&xs[t][lane * STAGE_PITCH];
            float sum = 0.0f;
#pragma unroll
            for (int j = 0; j < 8; j++) {
                float4 f = xr[j];
                sum = fmaf(v[4 * j], f.x, sum);
                sum = fmaf(v[4 * j + 1], f.y, sum);
                sum = fmaf(v[4 * j + 2], f.z, sum);
                sum = fmaf(v[4 * j + 3], f.w, sum);
            }
            acc[t] += sum;
        }
    }
    if (!live)
        return;
#pragma unroll
    for (int t = 0; t < CUDA_MATVEC_MAX_TOK; t++) {
        if (t >= (int)n_tok)
            break;
        float total = warp_sum(acc[t]);
        if (lane == 0)
            y[t * ldy + row] = total;
    }
}

// One thread per chunk of 32 values: rows of n_in values to F16 (row-major, contiguous).
template <int T>
__global__ void dequant_f16_kernel(const uint8_t *w, uint64_t n_in, uint64_t rows, __half *dst)
{
    uint64_t per_row = n_in / 32, total = per_row * rows;
    float v[32];
    for (uint64_t i = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (uint64_t)gridDim.x * blockDim.x) {
        uint64_t r = i / per_row, c = i % per_row;
        chunk_values<T>(w + r * row_bytes<T>(n_in), (uint32_t)c, v);
        __half *out = dst + r * n_in + c * 32;
#pragma unroll
        for (int j = 0; j < 32; j += 2)
            *(__half2 *)(out + j) = __floats2half2_rn(v[j], v[j + 1]);
    }
}

template <int T>
static cudaError_t launch_type(cudaStream_t stream, bool matvec, const void *w, uint64_t n_in,
                               uint64_t n_out, const float *x, uint64_t in_stride, uint32_t n_tok,
                               float *y, uint64_t ldy, void *dst)
{
    if (n_in % traits<T>::values)
        return cudaErrorInvalidValue;
    if (matvec) {
        uint64_t blocks = (n_out + MATVEC_WARPS - 1) / MATVEC_WARPS;
        if (blocks > 0x7FFFFFFFu)
            return cudaErrorInvalidConfiguration;
        matvec_kernel<T><<<(unsigned)blocks, MATVEC_WARPS * 32, 0, stream>>>(
            (const uint8_t *)w, n_in, n_out, x, in_stride, n_tok, y, ldy);
    } else {
        dequant_f16_kernel<T><<<grid_for(n_in / 32 * n_out, 256), 256, 0, stream>>>(
            (const uint8_t *)w, n_in, n_out, (__half *)dst);
    }
    return cudaGetLastError();
}

// Runs launch_type for the type's template, or fails for an unknown type.
static cudaError_t dispatch(cudaStream_t stream, uint32_t type, bool matvec, const void *w,
                            uint64_t n_in, uint64_t n_out, const float *x, uint64_t in_stride,
                            uint32_t n_tok, float *y, uint64_t ldy, void *dst)
{
    switch (type) {
    case T_Q4_0:
        return launch_type<T_Q4_0>(stream, matvec, w, n_in, n_out, x, in_stride, n_tok, y, ldy,
                                   dst);
    case T_Q4_1:
        return launch_type<T_Q4_1>(stream, matvec, w, n_in, n_out, x, in_stride, n_tok, y, ldy,
                                   dst);
    case T_Q5_0:
        return launch_type<T_Q5_0>(stream, matvec, w, n_in, n_out, x, in_stride, n_tok, y, ldy,
                                   dst);
    case T_Q5_1:
        return launch_type<T_Q5_1>(stream, matvec, w, n_in, n_out, x, in_stride, n_tok, y, ldy,
                                   dst);
    case T_Q8_0:
        return launch_type<T_Q8_0>(stream, matvec, w, n_in, n_out, x, in_stride, n_tok, y, ldy,
                                   dst);
    case T_Q2_K:
        return launch_type<T_Q2_K>(stream, matvec, w, n_in, n_out, x, in_stride, n_tok, y, ldy,
                                   dst);
    case T_Q3_K:
        return launch_type<T_Q3_K>(stream, matvec, w, n_in, n_out, x, in_stride, n_tok, y, ldy,
                                   dst);
    case T_Q4_K:
        return launch_type<T_Q4_K>(stream, matvec, w, n_in, n_out, x, in_stride, n_tok, y, ldy,
                                   dst);
    case T_Q5_K:
        return launch_type<T_Q5_K>(stream, matvec, w, n_in, n_out, x, in_stride, n_tok, y, ldy,
                                   dst);
    case T_Q6_K:
        return launch_type<T_Q6_K>(stream, matvec, w, n_in, n_out, x, in_stride, n_tok, y, ldy,
                                   dst);
    case T_IQ4_NL:
        return launch_type<T_IQ4_NL>(stream, matvec, w, n_in, n_out, x, in_stride, n_tok, y, ldy,
                                     dst);
    case T_IQ4_XS:
        return launch_type<T_IQ4_XS>(stream, matvec, w, n_in, n_out, x, in_stride, n_tok, y, ldy,
                                     dst);
    case T_MXFP4:
        return launch_type<T_MXFP4>(stream, matvec, w, n_in, n_out, x, in_stride, n_tok, y, ldy,
                                    dst);
    case T_F8_E4M3:
        return launch_type<T_F8_E4M3>(stream, matvec, w, n_in, n_out, x, in_stride, n_tok, y, ldy,
                                      dst);
    case T_Q4_Z:
        return launch_type<T_Q4_Z>(stream, matvec, w, n_in, n_out, x, in_stride, n_tok, y, ldy,
                                   dst);
    default: return cudaErrorInvalidValue;
    }
}

extern "C" bool cuda_quant_supported(uint32_t type)
{
    switch (type) {
    case T_Q4_0:
    case T_Q4_1:
    case T_Q5_0:
    case T_Q5_1:
    case T_Q8_0:
    case T_Q2_K:
    case T_Q3_K:
    case T_Q4_K:
    case T_Q5_K:
    case T_Q6_K:
    case T_IQ4_NL:
    case T_IQ4_XS:
    case T_MXFP4:
    case T_F8_E4M3:
    case T_Q4_Z: return true;
    default: return false;
    }
}

extern "C" cudaError_t cuda_launch_matvec(cudaStream_t stream, uint32_t type, const void *w,
                                          uint64_t n_in, uint64_t n_out, const float *x,
                                          uint64_t in_stride, uint32_t n_tok, float *y,
                                          uint64_t ldy)
{
    if (n_tok == 0 || n_out == 0)
        return cudaSuccess;
    if (n_tok > CUDA_MATVEC_MAX_TOK)
        return cudaErrorInvalidValue;
    return dispatch(stream, type, true, w, n_in, n_out, x, in_stride, n_tok, y, ldy, NULL);
}

extern "C" cudaError_t cuda_launch_dequant_f16(cudaStream_t stream, uint32_t type, const void *w,
                                               uint64_t n_in, uint64_t rows, void *dst)
{
    if (rows == 0)
        return cudaSuccess;
    return dispatch(stream, type, false, w, n_in, rows, NULL, 0, 0, NULL, 0, dst);
}

extern "C" bool cuda_host_chunk_values(uint32_t type, const void *row, uint32_t chunk, float *v)
{
    const uint8_t *r = (const uint8_t *)row;
    switch (type) {
    case T_Q4_0: chunk_values<T_Q4_0>(r, chunk, v); return true;
    case T_Q4_1: chunk_values<T_Q4_1>(r, chunk, v); return true;
    case T_Q5_0: chunk_values<T_Q5_0>(r, chunk, v); return true;
    case T_Q5_1: chunk_values<T_Q5_1>(r, chunk, v); return true;
    case T_Q8_0: chunk_values<T_Q8_0>(r, chunk, v); return true;
    case T_Q2_K: chunk_values<T_Q2_K>(r, chunk, v); return true;
    case T_Q3_K: chunk_values<T_Q3_K>(r, chunk, v); return true;
    case T_Q4_K: chunk_values<T_Q4_K>(r, chunk, v); return true;
    case T_Q5_K: chunk_values<T_Q5_K>(r, chunk, v); return true;
    case T_Q6_K: chunk_values<T_Q6_K>(r, chunk, v); return true;
    case T_IQ4_NL: chunk_values<T_IQ4_NL>(r, chunk, v); return true;
    case T_IQ4_XS: chunk_values<T_IQ4_XS>(r, chunk, v); return true;
    case T_MXFP4: chunk_values<T_MXFP4>(r, chunk, v); return true;
    case T_F8_E4M3: chunk_values<T_F8_E4M3>(r, chunk, v); return true;
    case T_Q4_Z: chunk_values<T_Q4_Z>(r, chunk, v); return true;
    default: return false;
    }
}
