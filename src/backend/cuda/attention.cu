// SPDX-License-Identifier: MIT
// Attention over the paged KV cache on the device. Each token attends positions
// [lo, n_pos) of its sequence, lo = n_pos - window under a sliding window (else 0), found
// through its sequence's block table (full or window blocks); scores are scale * q . k,
// softmaxed with the head's sink as one more logit that has no value. Two kernels:
//   - decode (few tokens, or tokens of many sequences): one block per (token, query head,
//     split of the positions), four warps walking the split's positions with an online
//     softmax, then a second kernel merges the splits (flash-decoding), so one long context
//     still spreads over the device;
//   - prompts: one block per (tile of up to CUDA_ATT_TILE_Q consecutive tokens of one
//     sequence, query head); 32 positions' K and V rows are converted to floats in shared
//     memory once and read by every query of the tile, each query keeping its own online
//     softmax (no buffer grows with the square of the context).
// Rows are read in the cache's type (F16, Q8_0, FP8 E4M3, F32) and converted as
// kv_row_load does.
#include "backend/cuda/common.cuh"
#include "backend/cuda/internal.h"

enum { ATT_WARPS = 4, TILE_K = 32, HEAD_LANES = CUDA_MAX_HEAD / 32 };

// Value idx of a cache row of type.
static GARLIC_HD float kv_value(int type, const uint8_t *row, uint32_t idx)
{
    switch (type) {
    case CUDA_KV_F32: return ((const float *)row)[idx];
    case CUDA_KV_F16: return __half2float(((const __half *)row)[idx]);
    case CUDA_KV_FP8: return e4m3_value(row[idx]);
    default: {
        const uint8_t *blk = row + (uint64_t)(idx / 32) * 34;
        return mul_rn(load_half(blk), (float)(int8_t)blk[2 + idx % 32]);
    }
    }
}

// The row of position p in a table, or NULL where the table holds no block for it.
static __device__ __forceinline__ const uint8_t *position_row(const uint8_t *base,
                                                              uint64_t row_bytes, uint32_t bt,
                                                              const uint32_t *table, uint32_t p)
{
    uint32_t block = table[p / bt];
    if (block == 0xFFFFFFFFu)
        return NULL;
    return base + ((uint64_t)block * bt + p % bt) * row_bytes;
}

static __device__ __forceinline__ const uint32_t *token_table(const cuda_batch &b,
                                                              const cuda_attention &a, uint32_t t)
{
    return b.tables + b.table_start[2 * b.seq[t] + (a.window_table ? 1 : 0)];
}

static __device__ __forceinline__ uint32_t window_lo(uint32_t n_pos, uint32_t window)
{
    return window && n_pos > window ? n_pos - window : 0;
}

// exp(m - top), 0 when m is -inf (an empty part).
static __device__ __forceinline__ float rescale(float m, float top)
{
    return m == -INFINITY ? 0.0f : expf(m - top);
}

// Decode: grid (n_tok * n_head, n_splits), ATT_WARPS warps. Writes (max, sum, acc[hd_v])
// of its split to a.partial.
__global__ void __launch_bounds__(ATT_WARPS * 32) attn_split_kernel(cuda_batch b, cuda_attention a)
{
    __shared__ float q_s[CUDA_MAX_HEAD];
    __shared__ float warp_m[ATT_WARPS], warp_l[ATT_WARPS];
    __shared__ float warp_acc[ATT_WARPS][CUDA_MAX_HEAD];
    uint32_t t = blockIdx.x / a.n_head, h = blockIdx.x % a.n_head;
    uint32_t kh = h / (a.n_head / a.n_head_kv), split = blockIdx.y;
    uint32_t warp = threadIdx.x / 32, lane = threadIdx.x & 31;
    uint32_t n_pos = b.n_pos[t], lo = window_lo(n_pos, a.window);
    uint32_t per = (n_pos - lo + a.n_splits - 1) / a.n_splits;
    uint32_t p0 = lo + split * per, p1 = p0 + per < n_pos ? p0 + per : n_pos;
    const float *q = a.q + ((uint64_t)t * a.n_head + h) * a.hd_k;
    for (uint32_t d = threadIdx.x; d < a.hd_k; d += blockDim.x)
        q_s[d] = q[d];
    __syncthreads();
    const uint32_t *table = token_table(b, a, t);
    const cuda_kv_layer &kv = a.kv;
    const uint8_t *v_base = kv.v ? kv.v : kv.k; // no V rows: the values are the K rows
    uint64_t v_row_bytes = kv.v ? kv.v_row_bytes : kv.k_row_bytes;
    float m = -INFINITY, l = 0.0f, acc[HEAD_LANES];
#pragma unroll
    for (int i = 0; i < HEAD_LANES; i++)
        acc[i] = 0.0f;
    for (uint32_t p = p0 + warp; p < p1; p += ATT_WARPS) {
        const uint8_t *krow = position_row(kv.k, kv.k_row_bytes, kv.block_tokens, table, p);
        const uint8_t *vrow = position_row(v_base, v_row_bytes, kv.block_tokens, table, p);
        if (!krow) // (warp-uniform) a window position already given back: never attended
            continue;
        float part = 0.0f;
        for (uint32_t d = lane; d < a.hd_k; d += 32)
            part = fmaf(q_s[d], kv_value(kv.type, krow, kh * a.hd_k + d), part);
        float s = warp_sum(part) * a.scale;
        float top = fmaxf(m, s), corr = rescale(m, top), e = expf(s - top);
        l = l * corr + e;
#pragma unroll
        for (int i = 0; i < HEAD_LANES; i++) {
            uint32_t d = lane + 32 * i;
            if (d < a.hd_v)
                acc[i] = acc[i] * corr + e * kv_value(kv.type, vrow, kh * a.hd_v + d);
        }
        m = top;
    }
    if (lane == 0) {
        warp_m[warp] = m;
        warp_l[warp] = l;
    }
#pragma unroll
    for (int i = 0; i < HEAD_LANES; i++)
        if (lane + 32 * i < a.hd_v)
            warp_acc[warp][lane + 32 * i] = acc[i];
    __syncthreads();
    float top = -INFINITY;
    for (int w = 0; w < ATT_WARPS; w++)
        top = fmaxf(top, warp_m[w]);
    float *out = a.partial + (((uint64_t)t * a.n_head + h) * a.n_splits + split) * (a.hd_v + 2);
    if (threadIdx.x == 0) {
        float sum = 0.0f;
        for (int w = 0; w < ATT_WARPS; w++)
            sum += warp_l[w] * rescale(warp_m[w], top);
        out[0] = top;
        out[1] = sum;
    }
    for (uint32_t d = threadIdx.x; d < a.hd_v; d += blockDim.x) {
        float sum = 0.0f;
        for (int w = 0; w < ATT_WARPS; w++)
            sum += warp_acc[w][d] * rescale(warp_m[w], top);
        out[2 + d] = sum;
    }
}

// Merges the splits of one (token, head) with its sink: grid n_tok * n_head.
__global__ void attn_merge_kernel(cuda_attention a)
{
    uint32_t th = blockIdx.x, h = th % a.n_head;
    const float *part = a.partial + (uint64_t)th * a.n_splits * (a.hd_v + 2);
    float top = a.sinks ? a.sinks[h] : -INFINITY;
    for (uint32_t s = 0; s < a.n_splits; s++)
        top = fmaxf(top, part[s * (a.hd_v + 2)]);
    float sum = a.sinks ? expf(a.sinks[h] - top) : 0.0f;
    for (uint32_t s = 0; s < a.n_splits; s++)
        sum += part[s * (a.hd_v + 2) + 1] * rescale(part[s * (a.hd_v + 2)], top);
    float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
    float *out = a.out + (uint64_t)th * a.hd_v;
    for (uint32_t d = threadIdx.x; d < a.hd_v; d += blockDim.x) {
        float acc = 0.0f;
        for (uint32_t s = 0; s < a.n_splits; s++)
            acc += part[s * (a.hd_v + 2) + 2 + d] * rescale(part[s * (a.hd_v + 2)], top);
        out[d] = acc * inv;
    }
}

enum { QUERIES_PER_WARP = CUDA_ATT_TILE_Q / ATT_WARPS };

// Prompts: grid (n_tiles, n_head), ATT_WARPS warps, dynamic shared memory for the tile's
// queries (TILE_Q x hd_k), K rows (TILE_K x (hd_k + 1): the pad keeps lanes that read
// different rows on different banks) and V rows (TILE_K x hd_v).
__global__ void __launch_bounds__(ATT_WARPS * 32) attn_tile_kernel(cuda_batch b, cuda_attention a)
{
    extern __shared__ float shared[];
    uint32_t hd_k = a.hd_k, hd_v = a.hd_v, k_pitch = hd_k + 1;
    float *q_s = shared, *k_s = q_s + CUDA_ATT_TILE_Q * hd_k, *v_s = k_s + TILE_K * k_pitch;
    uint32_t first = b.tile_first[blockIdx.x], count = b.tile_count[blockIdx.x];
    uint32_t h = blockIdx.y, kh = h / (a.n_head / a.n_head_kv);
    uint32_t warp = threadIdx.x / 32, lane = threadIdx.x & 31;
    uint32_t lo_min = 0xFFFFFFFFu, hi = 0;
    for (uint32_t i = 0; i < count; i++) {
        uint32_t n_pos = b.n_pos[first + i], lo = window_lo(n_pos, a.window);
        lo_min = lo < lo_min ? lo : lo_min;
        hi = n_pos > hi ? n_pos : hi;
    }
    for (uint32_t i = threadIdx.x; i < CUDA_ATT_TILE_Q * hd_k; i += blockDim.x) {
        uint32_t qi = i / hd_k, d = i % hd_k;
        q_s[i] = qi < count ? a.q[((uint64_t)(first + qi) * a.n_head + h) * hd_k + d] : 0.0f;
    }
    const uint32_t *table = token_table(b, a, first); // the tile's tokens share a sequence
    const cuda_kv_layer &kv = a.kv;
    const uint8_t *v_base = kv.v ? kv.v : kv.k;
    uint64_t v_row_bytes = kv.v ? kv.v_row_bytes : kv.k_row_bytes;
    float m[QUERIES_PER_WARP], l[QUERIES_PER_WARP], acc[QUERIES_PER_WARP][HEAD_LANES];
    uint32_t q_lo[QUERIES_PER_WARP], q_hi[QUERIES_PER_WARP];
#pragma unroll
    for (int j = 0; j < QUERIES_PER_WARP; j++) {
        uint32_t qi = warp * QUERIES_PER_WARP + j;
        q_hi[j] = qi < count ? b.n_pos[first + qi] : 0;
        q_lo[j] = window_lo(q_hi[j], a.window);
        m[j] = -INFINITY;
        l[j] = 0.0f;
#pragma unroll
        for (int i = 0; i < HEAD_LANES; i++)
            acc[j][i] = 0.0f;
    }
    for (uint32_t p0 = lo_min; p0 < hi; p0 += TILE_K) {
        __syncthreads(); // the previous tile's rows are read by every warp
        for (uint32_t i = threadIdx.x; i < TILE_K * hd_k; i += blockDim.x) {
            uint32_t r = i / hd_k, d = i % hd_k, p = p0 + r;
            const uint8_t *row = p < hi
                ? position_row(kv.k, kv.k_row_bytes, kv.block_tokens, table, p)
                : NULL;
            k_s[r * k_pitch + d] = row ? kv_value(kv.type, row, kh * hd_k + d) : 0.0f;
        }
        for (uint32_t i = threadIdx.x; i < TILE_K * hd_v; i += blockDim.x) {
            uint32_t r = i / hd_v, d = i % hd_v, p = p0 + r;
            const uint8_t *row = p < hi
                ? position_row(v_base, v_row_bytes, kv.block_tokens, table, p)
                : NULL;
            v_s[i] = row ? kv_value(kv.type, row, kh * hd_v + d) : 0.0f;
        }
        __syncthreads();
        // Lane r scores position p0 + r against the warp's queries at once (each K value read
        // from shared memory serves all of them); the weights then multiply the V rows, each V
        // value read once for all the queries.
        uint32_t p = p0 + lane;
        const float *kr = k_s + lane * k_pitch, *qw = q_s + warp * QUERIES_PER_WARP * hd_k;
        float s[QUERIES_PER_WARP], e[QUERIES_PER_WARP];
#pragma unroll
        for (int j = 0; j < QUERIES_PER_WARP; j++)
            s[j] = 0.0f;
        for (uint32_t d = 0; d < hd_k; d++) {
            float k = kr[d];
#pragma unroll
            for (int j = 0; j < QUERIES_PER_WARP; j++)
                s[j] = fmaf(qw[j * hd_k + d], k, s[j]);
        }
#pragma unroll
        for (int j = 0; j < QUERIES_PER_WARP; j++) {
            // Outside the query's range (or past the tile's queries: q_hi is 0) nothing counts.
            bool valid = p >= q_lo[j] && p < q_hi[j];
            s[j] = valid ? s[j] * a.scale : -INFINITY;
            e[j] = 0.0f;
            float tile_max = warp_max(s[j]);
            if (tile_max == -INFINITY) // (warp-uniform) no position of this tile
                continue;
            float top = fmaxf(m[j], tile_max), corr = rescale(m[j], top);
            e[j] = valid ? expf(s[j] - top) : 0.0f;
            l[j] = l[j] * corr + warp_sum(e[j]);
#pragma unroll
            for (int i = 0; i < HEAD_LANES; i++)
                acc[j][i] *= corr;
            m[j] = top;
        }
        for (int r = 0; r < TILE_K; r++) {
            float er[QUERIES_PER_WARP];
#pragma unroll
            for (int j = 0; j < QUERIES_PER_WARP; j++)
                er[j] = __shfl_sync(0xffffffffu, e[j], r);
#pragma unroll
            for (int i = 0; i < HEAD_LANES; i++) {
                uint32_t d = lane + 32 * i;
                if (d >= hd_v)
                    continue;
                float v = v_s[r * hd_v + d];
#pragma unroll
                for (int j = 0; j < QUERIES_PER_WARP; j++)
                    acc[j][i] = fmaf(er[j], v, acc[j][i]);
            }
        }
    }
#pragma unroll
    for (int j = 0; j < QUERIES_PER_WARP; j++) {
        uint32_t qi = warp * QUERIES_PER_WARP + j;
        if (qi >= count)
            continue;
        float top = m[j], sum = l[j];
        if (a.sinks) {
            float sink = a.sinks[h];
            float next = fmaxf(top, sink), corr = rescale(top, next);
            sum = sum * corr + expf(sink - next);
#pragma unroll
            for (int i = 0; i < HEAD_LANES; i++)
                acc[j][i] *= corr;
        }
        float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
        float *out = a.out + ((uint64_t)(first + qi) * a.n_head + h) * hd_v;
#pragma unroll
        for (int i = 0; i < HEAD_LANES; i++)
            if (lane + 32 * i < hd_v)
                out[lane + 32 * i] = acc[j][i] * inv;
    }
}

// Dynamic shared memory of attn_tile_kernel for heads of hd_k and hd_v values.
static size_t tile_shared_bytes(uint32_t hd_k, uint32_t hd_v)
{
    return sizeof(float) *
        ((size_t)CUDA_ATT_TILE_Q * hd_k + (size_t)TILE_K * (hd_k + 1) + (size_t)TILE_K * hd_v);
}

extern "C" cudaError_t cuda_launch_attention(cudaStream_t stream, const cuda_batch *b,
                                             const cuda_attention *a, bool tiled)
{
    if (b->n_tok == 0)
        return cudaSuccess;
    if (a->hd_k > CUDA_MAX_HEAD || a->hd_v > CUDA_MAX_HEAD || a->n_head_kv == 0 ||
        a->n_head % a->n_head_kv)
        return cudaErrorInvalidValue;
    if (tiled) {
        if (b->n_tiles == 0 || a->n_head > 65535)
            return cudaErrorInvalidConfiguration;
        size_t bytes = tile_shared_bytes(a->hd_k, a->hd_v);
        if (bytes > 48 * 1024) {
            cudaError_t e = cudaFuncSetAttribute(
                attn_tile_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes);
            if (e != cudaSuccess)
                return e;
        }
        dim3 grid(b->n_tiles, a->n_head);
        attn_tile_kernel<<<grid, ATT_WARPS * 32, bytes, stream>>>(*b, *a);
        return cudaGetLastError();
    }
    uint64_t pairs = (uint64_t)b->n_tok * a->n_head;
    if (pairs > 0x7FFFFFFFu || a->n_splits == 0 || a->n_splits > CUDA_MAX_SPLITS)
        return cudaErrorInvalidConfiguration;
    dim3 grid((unsigned)pairs, a->n_splits);
    attn_split_kernel<<<grid, ATT_WARPS * 32, 0, stream>>>(*b, *a);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess)
        return e;
    attn_merge_kernel<<<(unsigned)pairs, 128, 0, stream>>>(*a);
    return cudaGetLastError();
}

extern "C" float cuda_host_kv_value(int type, const void *row, uint32_t idx)
{
    return kv_value(type, (const uint8_t *)row, idx);
}
