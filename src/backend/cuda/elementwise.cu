// SPDX-License-Identifier: MIT
// The CUDA backend's row and element kernels: RMSNorm (one block per row, the sum of squares
// in double as model_rmsnorm), RoPE, the gated activations (SiLU, GELU in ggml's F16 steps,
// gpt-oss's clamped SwiGLU), additions, activation rows to F16/BF16 for cuBLAS, and the KV
// store, which converts each token's K and V rows to the cache's type exactly as
// kv_row_store does (F16 and Q8_0 round to nearest even, FP8 as kv_fp8_from_f32). Products
// that the CPU rounds one at a time are written with __fmul_rn/__fadd_rn so that nvcc does
// not fuse them into an FMA: these kernels then match the CPU's results bit for bit, except
// where a library function (expf, tanhf) differs in its last bit.
#include "backend/cuda/common.cuh"
#include "backend/cuda/internal.h"

// out[row] = x[row] * (1 / sqrt(mean(x[row]^2) + eps)) * w, one block of 256 per row.
__global__ void rmsnorm_kernel(float *out, const float *x, const float *w, uint32_t dim, float eps)
{
    const float *xr = x + (uint64_t)blockIdx.x * dim;
    float *o = out + (uint64_t)blockIdx.x * dim;
    double ss = 0;
    for (uint32_t i = threadIdx.x; i < dim; i += blockDim.x)
        ss += (double)xr[i] * xr[i];
    ss = warp_sum_double(ss);
    __shared__ double part[32];
    __shared__ float scale_s;
    if ((threadIdx.x & 31) == 0)
        part[threadIdx.x >> 5] = ss;
    __syncthreads();
    if (threadIdx.x == 0) {
        double total = 0;
        for (unsigned i = 0; i < blockDim.x / 32; i++)
            total += part[i];
        scale_s = (float)(1.0 / sqrt(total / (double)dim + (double)eps));
    }
    __syncthreads();
    float scale = scale_s;
    for (uint32_t i = threadIdx.x; i < dim; i += blockDim.x)
        o[i] = __fmul_rn(__fmul_rn(xr[i], scale), w[i]);
}

extern "C" cudaError_t cuda_launch_rmsnorm(cudaStream_t stream, float *out, const float *x,
                                           const float *w, uint32_t rows, uint32_t dim, float eps)
{
    if (rows == 0 || dim == 0)
        return cudaSuccess;
    // rows <= 2^31 - 1 (the x dimension's limit): a row count is a uint32 of tokens x heads.
    rmsnorm_kernel<<<rows, 256, 0, stream>>>(out, x, w, dim, eps);
    return cudaGetLastError();
}

// One block per (token, head); threads over the n_rot / 2 pairs.
__global__ void rope_kernel(float *x, uint32_t n_heads, uint32_t head_dim, uint32_t n_pairs,
                            bool neox, const float *cos_t, const float *sin_t)
{
    uint32_t token = blockIdx.x / n_heads, head = blockIdx.x % n_heads;
    float *v = x + ((uint64_t)token * n_heads + head) * head_dim;
    const float *c = cos_t + (uint64_t)token * n_pairs, *s = sin_t + (uint64_t)token * n_pairs;
    for (uint32_t i = threadIdx.x; i < n_pairs; i += blockDim.x) {
        uint32_t a = neox ? i : 2 * i, b = neox ? i + n_pairs : 2 * i + 1;
        float x0 = v[a], x1 = v[b];
        v[a] = __fsub_rn(__fmul_rn(x0, c[i]), __fmul_rn(x1, s[i]));
        v[b] = __fadd_rn(__fmul_rn(x0, s[i]), __fmul_rn(x1, c[i]));
    }
}

extern "C" cudaError_t cuda_launch_rope(cudaStream_t stream, float *x, uint32_t n_tok,
                                        uint32_t n_heads, uint32_t head_dim, uint32_t n_rot,
                                        bool neox, const float *cos_t, const float *sin_t)
{
    uint64_t blocks = (uint64_t)n_tok * n_heads;
    if (blocks == 0 || n_rot < 2)
        return cudaSuccess;
    if (blocks > 0x7FFFFFFFu)
        return cudaErrorInvalidConfiguration;
    uint32_t n_pairs = n_rot / 2;
    unsigned threads = n_pairs < 128 ? ((n_pairs + 31) / 32) * 32 : 128;
    rope_kernel<<<(unsigned)blocks, threads, 0, stream>>>(x, n_heads, head_dim, n_pairs, neox,
                                                          cos_t, sin_t);
    return cudaGetLastError();
}

// GELU (tanh approximation) in ggml's F16 steps, as kernels.c's gelu_f16_steps.
static GARLIC_HD float gelu_f16_steps(float x)
{
    if (x <= -10.0f)
        return 0.0f;
    if (x >= 10.0f)
        return x;
    float h = __half2float(__float2half_rn(x));
    // 0.5f * h * (1.0f + tanhf(c * h * (1.0f + 0.044715f * h * h))), left to right
    float inner = add_rn(1.0f, mul_rn(mul_rn(0.044715f, h), h));
    float arg = mul_rn(mul_rn(0.79788456080286535587989211986876f, h), inner);
    float g = mul_rn(mul_rn(0.5f, h), add_rn(1.0f, tanhf(arg)));
    return __half2float(__float2half_rn(g));
}

__global__ void gated_kernel(int act, float *gate, const float *up, uint64_t n)
{
    for (uint64_t i = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (uint64_t)gridDim.x * blockDim.x) {
        float g = gate[i], u = up[i];
        if (act == CUDA_ACT_SILU) {
            gate[i] = __fmul_rn(__fdiv_rn(g, __fadd_rn(1.0f, expf(-g))), u);
        } else if (act == CUDA_ACT_GELU) {
            gate[i] = __fmul_rn(gelu_f16_steps(g), u);
        } else {
            const float alpha = 1.702f, limit = 7.0f;
            float xc = limit < g ? limit : g;
            float yc = u < -limit ? -limit : limit < u ? limit : u;
            float sig = __fdiv_rn(xc, __fadd_rn(1.0f, expf(__fmul_rn(alpha, -xc))));
            gate[i] = __fmul_rn(sig, __fadd_rn(yc, 1.0f));
        }
    }
}

extern "C" cudaError_t cuda_launch_gated(cudaStream_t stream, int act, float *gate, const float *up,
                                         uint64_t n)
{
    if (n == 0)
        return cudaSuccess;
    gated_kernel<<<grid_for(n, 256), 256, 0, stream>>>(act, gate, up, n);
    return cudaGetLastError();
}

__global__ void add_kernel(float *x, const float *y, uint64_t n)
{
    for (uint64_t i = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (uint64_t)gridDim.x * blockDim.x)
        x[i] = __fadd_rn(x[i], y[i]);
}

extern "C" cudaError_t cuda_launch_add(cudaStream_t stream, float *x, const float *y, uint64_t n)
{
    if (n == 0)
        return cudaSuccess;
    add_kernel<<<grid_for(n, 256), 256, 0, stream>>>(x, y, n);
    return cudaGetLastError();
}

__global__ void add_bias_kernel(float *y, uint64_t ldy, const float *bias, uint32_t n_out,
                                uint32_t n_tok)
{
    uint64_t n = (uint64_t)n_out * n_tok;
    for (uint64_t i = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (uint64_t)gridDim.x * blockDim.x) {
        uint64_t t = i / n_out, r = i % n_out;
        y[t * ldy + r] = __fadd_rn(y[t * ldy + r], bias[r]);
    }
}

extern "C" cudaError_t cuda_launch_add_bias(cudaStream_t stream, float *y, uint64_t ldy,
                                            const float *bias, uint32_t n_out, uint32_t n_tok)
{
    uint64_t n = (uint64_t)n_out * n_tok;
    if (n == 0)
        return cudaSuccess;
    add_bias_kernel<<<grid_for(n, 256), 256, 0, stream>>>(y, ldy, bias, n_out, n_tok);
    return cudaGetLastError();
}

__global__ void to_half_kernel(const float *x, uint64_t in_stride, uint32_t n_tok, uint64_t n,
                               void *dst, bool bf16)
{
    uint64_t total = n * n_tok;
    for (uint64_t i = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (uint64_t)gridDim.x * blockDim.x) {
        float v = x[(i / n) * in_stride + i % n];
        if (bf16)
            ((__nv_bfloat16 *)dst)[i] = __float2bfloat16_rn(v);
        else
            ((__half *)dst)[i] = __float2half_rn(v);
    }
}

extern "C" cudaError_t cuda_launch_to_half(cudaStream_t stream, const float *x, uint64_t in_stride,
                                           uint32_t n_tok, uint64_t n, void *dst, bool bf16)
{
    if (n == 0 || n_tok == 0)
        return cudaSuccess;
    to_half_kernel<<<grid_for(n * n_tok, 256), 256, 0, stream>>>(x, in_stride, n_tok, n, dst, bf16);
    return cudaGetLastError();
}

// The row of (block, offset) in one layer's rows.
static __device__ __forceinline__ uint8_t *
kv_row(uint8_t *base, uint64_t row_bytes, uint32_t block_tokens, uint32_t block, uint32_t offset)
{
    return base + ((uint64_t)block * block_tokens + offset) * row_bytes;
}

// Converts n floats to one row of type at dst with the block's threads (a multiple of 32).
static __device__ void store_row(int type, uint8_t *dst, const float *src, uint32_t n)
{
    if (type == CUDA_KV_F32) {
        for (uint32_t i = threadIdx.x; i < n; i += blockDim.x)
            ((float *)dst)[i] = src[i];
    } else if (type == CUDA_KV_F16) {
        for (uint32_t i = threadIdx.x; i < n; i += blockDim.x)
            ((__half *)dst)[i] = __float2half_rn(src[i]);
    } else if (type == CUDA_KV_FP8) {
        for (uint32_t i = threadIdx.x; i < n; i += blockDim.x)
            dst[i] = e4m3_from_float(src[i]);
    } else { // Q8_0: one warp per block of 32, d = amax / 127, q = rint(x * (127 / amax))
        uint32_t lane = threadIdx.x & 31, warps = blockDim.x / 32;
        for (uint32_t blk = threadIdx.x / 32; blk < n / 32; blk += warps) {
            float x = src[blk * 32 + lane];
            float amax = warp_max(fabsf(x));
            float d = __fdiv_rn(amax, 127.0f);
            float id = amax != 0.0f ? __fdiv_rn(127.0f, amax) : 0.0f;
            uint8_t *b = dst + (uint64_t)blk * 34;
            b[2 + lane] = (uint8_t)(int8_t)__float2int_rn(__fmul_rn(x, id));
            if (lane == 0) {
                unsigned short h = __half_as_ushort(__float2half_rn(d));
                b[0] = (uint8_t)(h & 0xFF);
                b[1] = (uint8_t)(h >> 8);
            }
        }
    }
}

// One block per (token, K or V).
__global__ void kv_store_kernel(cuda_batch b, cuda_kv_layer kv, bool window_table, const float *k,
                                uint32_t k_values, const float *v, uint32_t v_values)
{
    uint32_t t = blockIdx.x;
    bool is_v = blockIdx.y == 1;
    uint32_t pos = b.pos[t], seq = b.seq[t];
    const uint32_t *table = b.tables + b.table_start[2 * seq + (window_table ? 1 : 0)];
    uint32_t block = table[pos / kv.block_tokens], offset = pos % kv.block_tokens;
    if (is_v)
        store_row(kv.type, kv_row(kv.v, kv.v_row_bytes, kv.block_tokens, block, offset),
                  v + (uint64_t)t * v_values, v_values);
    else
        store_row(kv.type, kv_row(kv.k, kv.k_row_bytes, kv.block_tokens, block, offset),
                  k + (uint64_t)t * k_values, k_values);
}

extern "C" cudaError_t cuda_launch_kv_store(cudaStream_t stream, const cuda_batch *b,
                                            const cuda_kv_layer *kv, bool window_table,
                                            const float *k, uint32_t k_values, const float *v,
                                            uint32_t v_values)
{
    if (b->n_tok == 0)
        return cudaSuccess;
    dim3 grid(b->n_tok, kv->v && v ? 2 : 1);
    kv_store_kernel<<<grid, 128, 0, stream>>>(*b, *kv, window_table, k, k_values, v, v_values);
    return cudaGetLastError();
}

extern "C" uint8_t cuda_host_fp8_from_f32(float f) { return e4m3_from_float(f); }

extern "C" float cuda_host_gelu(float x) { return gelu_f16_steps(x); }
