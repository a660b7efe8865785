// SPDX-License-Identifier: MIT
// The CUDA backend's kernels as its C side (cuda.c) calls them: one launcher per operation,
// compiled by nvcc in elementwise.cu, matmul.cu and attention.cu. This header is read by
// both compilers, so it uses plain C types only; every pointer named "device" is device
// memory, every launcher queues its kernels on `stream` and returns the launch's error
// (cudaSuccess, or what cudaGetLastError says). Nothing here allocates or synchronizes.
#ifndef GARLIC_BACKEND_CUDA_INTERNAL_H
#define GARLIC_BACKEND_CUDA_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

// KV element types on the device, the values of kvcache.h's kv_type (the .cu files do not
// include the C headers): F16, Q8_0 (34-byte blocks of 32), FP8 E4M3, F32.
enum { CUDA_KV_F16 = 0, CUDA_KV_Q8_0 = 1, CUDA_KV_FP8 = 2, CUDA_KV_F32 = 3 };

// Gated activations, the values of model.h's model_act.
enum { CUDA_ACT_SILU = 0, CUDA_ACT_GELU = 1, CUDA_ACT_SWIGLU_OAI = 2 };

// The largest head (K or V) the attention kernels take (a lane holds head / 32 values).
enum { CUDA_MAX_HEAD = 256 };
// Tokens up to which a product runs the mat-vec kernels (above: dequantize + cuBLAS).
enum { CUDA_MATVEC_MAX_TOK = 8 };
// Query tokens of one tile of the prompt attention kernel.
enum { CUDA_ATT_TILE_Q = 16 };

// The batch of one forward call as begin left it in device memory (see backend_batch).
typedef struct cuda_batch {
    uint32_t n_tok, n_seq;
    const uint32_t *pos;         // (n_tok) device
    const uint32_t *n_pos;       // (n_tok) device
    const uint32_t *seq;         // (n_tok) device
    const uint32_t *table_start; // (2 n_seq) device
    const uint32_t *tables;      // (n_tables) device
    // Tiles for the prompt attention: runs of at most CUDA_ATT_TILE_Q consecutive tokens of
    // one sequence; tile i is tokens [tile_first[i], tile_first[i] + tile_count[i]).
    const uint32_t *tile_first, *tile_count; // (n_tiles) device
    uint32_t n_tiles;
    uint32_t max_n_pos; // the largest n_pos of the batch (host copy)
} cuda_batch;

// Where one bound layer's rows live: (blocks of its kind, block_tokens, row bytes).
typedef struct cuda_kv_layer {
    uint8_t *k, *v; // device; v NULL when the pool has no V rows
    uint64_t k_row_bytes, v_row_bytes;
    uint32_t block_tokens;
    int type; // CUDA_KV_*
} cuda_kv_layer;

// One attention call (backend_attention on the device).
typedef struct cuda_attention {
    const float *q; // (n_tok, n_head * hd_k) device
    float *out;     // (n_tok, n_head * hd_v) device
    cuda_kv_layer kv;
    bool window_table; // read table 1 (window blocks) of each sequence
    uint32_t window;   // 0: every position
    uint32_t n_head, n_head_kv, hd_k, hd_v;
    float scale;
    const float *sinks; // (n_head) device, or NULL
    float *partial;     // (n_tok, n_head, n_splits, hd_v + 2) device scratch for the splits
    uint32_t n_splits;  // splits of the positions (decode kernel); 1..CUDA_MAX_SPLITS
} cuda_attention;

enum { CUDA_MAX_SPLITS = 64, CUDA_SPLIT_POSITIONS = 256 };

cudaError_t cuda_launch_rmsnorm(cudaStream_t stream, float *out, const float *x, const float *w,
                                uint32_t rows, uint32_t dim, float eps);
// RoPE over n_tok rows of n_heads * head_dim floats with the (n_tok, n_rot / 2) tables.
cudaError_t cuda_launch_rope(cudaStream_t stream, float *x, uint32_t n_tok, uint32_t n_heads,
                             uint32_t head_dim, uint32_t n_rot, bool neox, const float *cos_t,
                             const float *sin_t);
cudaError_t cuda_launch_gated(cudaStream_t stream, int act, float *gate, const float *up,
                              uint64_t n);
cudaError_t cuda_launch_add(cudaStream_t stream, float *x, const float *y, uint64_t n);
// y[t * ldy + r] += bias[r] for t < n_tok, r < n_out.
cudaError_t cuda_launch_add_bias(cudaStream_t stream, float *y, uint64_t ldy, const float *bias,
                                 uint32_t n_out, uint32_t n_tok);
// n_tok rows of n floats (in_stride apart) to n_tok contiguous rows of F16 (bf16: BF16).
cudaError_t cuda_launch_to_half(cudaStream_t stream, const float *x, uint64_t in_stride,
                                uint32_t n_tok, uint64_t n, void *dst, bool bf16);
// Stores each token's K and V row (n_head_kv * hd floats, contiguous rows) at its position's
// block and offset of the token's table.
cudaError_t cuda_launch_kv_store(cudaStream_t stream, const cuda_batch *b, const cuda_kv_layer *kv,
                                 bool window_table, const float *k, uint32_t k_values,
                                 const float *v, uint32_t v_values);
// Attention: the split decode kernel and its reduction, or the tiled prompt kernel.
cudaError_t cuda_launch_attention(cudaStream_t stream, const cuda_batch *b, const cuda_attention *a,
                                  bool tiled);

// Whether the mat-vec and dequantizing kernels take weights of this tensor type.
bool cuda_quant_supported(uint32_t type);
// y[t * ldy + r] = dot(w row r, x row t) for r < n_out, t < n_tok <= CUDA_MATVEC_MAX_TOK:
// w holds n_out rows of n_in values of type (quantized), x rows of floats in_stride apart.
cudaError_t cuda_launch_matvec(cudaStream_t stream, uint32_t type, const void *w, uint64_t n_in,
                               uint64_t n_out, const float *x, uint64_t in_stride, uint32_t n_tok,
                               float *y, uint64_t ldy);
// Dequantizes `rows` rows of n_in values of type at w into F16 rows at dst (contiguous).
cudaError_t cuda_launch_dequant_f16(cudaStream_t stream, uint32_t type, const void *w,
                                    uint64_t n_in, uint64_t rows, void *dst);

// Host twins of device code, for tests without a GPU (the same source compiled for the host):
// the 32 values of chunk `chunk` of a row of weight type (false for a type the kernels do not
// read), FP8 encoding as the KV store does it, GELU in F16 steps, and value idx of a KV row.
bool cuda_host_chunk_values(uint32_t type, const void *row, uint32_t chunk, float *v);
uint8_t cuda_host_fp8_from_f32(float f);
float cuda_host_gelu(float x);
float cuda_host_kv_value(int type, const void *row, uint32_t idx);

#ifdef __cplusplus
}
#endif

#endif
