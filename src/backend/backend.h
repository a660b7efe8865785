// SPDX-License-Identifier: MIT
// The operations a forward pass needs, at the level of whole operations (a group of matrix
// products by weight type, attention over the paged KV cache, norms, RoPE, the gated
// activation), one implementation per device: the CPU (cpu.c, over kernels/) and CUDA
// (cuda/, built with `make GARLIC_CUDA=1`). The forward pass (model/forward.c) is written
// once over this table; a state whose first N layers run on a device keeps one set of
// activation buffers per backend and copies the residual stream where the layers change
// hands.
//
// Buffers. Every float pointer an operation takes is the backend's own memory: host memory
// for the CPU, device memory (backend_alloc) for CUDA. A forward call's positions and block
// tables are handed over once (begin), in host memory; the backend copies what it needs.
// Weights are named by their model_tensor (host rows in the mapping): a device backend
// keeps its copy of each tensor it was given with backend_upload, found by the tensor's
// address, and refuses nothing at run time (the forward pass asks backend_supports first).
//
// Ordering. Operations of one backend run in the order they are called (a CUDA backend
// queues them on one stream); to_host and finish wait for everything queued before them.
#ifndef GARLIC_BACKEND_H
#define GARLIC_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "kvcache/kvcache.h"
#include "model/model.h"

typedef struct backend backend;

// What a device is and holds; the planner reads it. Bytes are measured, not guessed: the
// context and library workspaces are what creating the backend took from the device.
typedef struct backend_device_info {
    char name[128];         // "NVIDIA H100 80GB HBM3", "cpu"
    int index;              // the device's number (cuda:N)
    int cc_major, cc_minor; // compute capability (0 for the CPU)
    uint64_t total_bytes;   // device memory
    uint64_t free_bytes;    // free now
    uint64_t context_bytes; // taken by the context, the stream and cuBLAS's workspace
    uint64_t weight_bytes;  // taken by uploaded weights
    uint64_t kv_bytes;      // taken by the KV rows of the layers it holds
    uint64_t scratch_bytes; // taken by activation buffers (backend_alloc)
    double bandwidth_gbs;   // memory bandwidth measured at creation (0: not measured)
} backend_device_info;

// One product of a group: y = w . in (+ bias), rows of n_tok tokens. Matrices of one group
// read the same input (q, k, v; gate, up).
typedef struct backend_matmul {
    const model_tensor *w;    // (n_out rows of n_in values), uploaded
    float *y;                 // (n_tok, ldy) the backend's buffer
    uint64_t ldy;             // floats between rows of y
    const model_tensor *bias; // (n_out) F32, uploaded, or NULL
} backend_matmul;

// The positions of one forward call, shared by every operation of the call. Host memory,
// valid during the call; begin copies what the backend needs.
typedef struct backend_batch {
    uint32_t n_tok, n_seq;
    const uint32_t *pos;   // (n_tok) each token's position in its sequence
    const uint32_t *n_pos; // (n_tok) the token attends positions [0, n_pos) of its sequence
                           // (causal: pos + 1), less what a sliding window leaves out
    const uint32_t *seq;   // (n_tok) its sequence, < n_seq
    // Block tables: sequence s's table for full layers starts at tables[table_start[2 s]],
    // for window layers at tables[table_start[2 s + 1]]; entry i is the block of positions
    // [i * block_tokens, (i + 1) * block_tokens). A token's own K/V row is stored at
    // (table[pos / block_tokens], pos % block_tokens).
    const uint32_t *table_start; // (2 n_seq)
    const uint32_t *tables;
    uint32_t n_tables;   // entries in tables
    kv_cache *kv;        // the pool of the call (bound with kv_bind)
    uint32_t n_out;      // rows whose logits the call returns
    const uint32_t *out; // (n_out) their tokens, < n_tok (gather_rows)
    // RoPE: cos and sin of each (table, token, pair): rope_cos[(t * rope_stride) + b * half + i]
    // (the magnitude already folded in), for n_rope tables of n_tok tokens.
    const float *rope_cos, *rope_sin;
    uint32_t half, n_rope;
    uint64_t rope_stride;
} backend_batch;

// One layer's attention: the cache layer, its shape and its rules.
typedef struct backend_attention {
    uint32_t layer;     // the KV cache's layer
    bool window_blocks; // its rows live in window blocks (table 1 of the batch)
    uint32_t window;    // attends the last `window` positions (its own included); 0: all
    uint32_t n_head, n_head_kv, head_dim_k, head_dim_v;
    float scale;               // of q . k, before the softmax
    const model_tensor *sinks; // (n_head) F32: one more logit per head, with no value; or NULL
} backend_attention;

typedef struct backend_ops {
    const char *name; // "cpu", "cuda"
    void (*free)(backend *be);
    void (*info)(backend *be, backend_device_info *out);

    // Memory of the backend: activation buffers and copies across (bytes).
    void *(*alloc)(backend *be, size_t bytes, garlic_error *err);
    void (*release)(backend *be, void *p);
    int (*to_device)(backend *be, void *dst, const void *src, size_t bytes, garlic_error *err);
    int (*to_host)(backend *be, void *dst, const void *src, size_t bytes, garlic_error *err);

    // Weights: a copy of t (its rows, or F32 values of a norm or bias) kept until drop or free.
    // A type the backend cannot multiply is refused with a message naming it. A tensor
    // uploaded again (two run states of one model) is held once and counted: it stays until
    // dropped as many times. drop of a tensor not held does nothing.
    int (*upload)(backend *be, const model_tensor *t, garlic_error *err);
    void (*drop)(backend *be, const model_tensor *t);
    // Whether the backend runs layer l of m (its types, its kind of attention and FFN);
    // else a message saying what it lacks.
    bool (*supports)(backend *be, const model *m, uint32_t l, garlic_error *err);

    // The KV rows of layers [first, first + n) of kv live on the device, addressed as the
    // pool addresses them (layer, block, offset). Several pools may be bound at once (one per
    // run state); binding a pool bound already with the same layers does nothing (the forward
    // pass binds its pool at every call). Blocks the pool copies (copy on write) are
    // copied there too, and the rows are freed when the pool is (kv_cache_set_mirror's copy
    // and gone).
    int (*kv_bind)(backend *be, kv_cache *kv, uint32_t first, uint32_t n, garlic_error *err);

    // One forward call: begin, operations, finish (which waits and reports a device error).
    int (*begin)(backend *be, const backend_batch *b, garlic_error *err);
    // out[r] = x[r] / rms(x[r]) * w for rows r < rows of dim values (out == x allowed).
    void (*rmsnorm)(backend *be, float *out, const float *x, const model_tensor *w, uint32_t rows,
                    uint32_t dim, float eps);
    void (*matmul)(backend *be, const float *in, uint64_t in_stride, uint32_t n_tok,
                   const backend_matmul *items, int n_items);
    // RoPE over n_heads heads of head_dim values (the first n_rot rotated) of each token's row
    // of n_heads * head_dim values, with table `table` of the batch.
    void (*rope)(backend *be, float *x, uint32_t n_heads, uint32_t head_dim, uint32_t n_rot,
                 bool neox, uint32_t table);
    // Stores each token's K and V row (n_head_kv * head_dim floats) in the cache.
    void (*kv_store)(backend *be, const backend_attention *a, const float *k, const float *v);
    // out = softmax(scale q . K) V for each token and query head, over its positions.
    void (*attention)(backend *be, const backend_attention *a, const float *q, float *out);
    // gate = act(gate) * up (n values).
    void (*gated_act)(backend *be, model_act act, float *gate, const float *up, size_t n);
    // dst row i = src row out[i] of the batch, for i < n_out (rows of dim floats).
    void (*gather_rows)(backend *be, float *dst, const float *src, uint32_t dim);
    // x += y (n values).
    void (*add)(backend *be, float *x, const float *y, size_t n);
    int (*finish)(backend *be, garlic_error *err);

    // Sleep: frees the device's copies of the weights and the KV rows but remembers what was
    // uploaded (the host keeps the weights); wake uploads them again. KV rows are lost.
    int (*sleep)(backend *be, garlic_error *err);
    int (*wake)(backend *be, garlic_error *err);
} backend_ops;

struct backend {
    const backend_ops *ops;
};

// A device named "cpu" or "cuda", "cuda:N". Fails with a message when garlic was built
// without CUDA, when there is no such device, or when the driver fails.
int backend_parse_device(const char *name, int *cuda_index, garlic_error *err);

// --gpu-layers: a layer count (0 to 1000000) into *layers, or -1 for "auto" or NULL (not
// given). GARLIC_EINVAL with a message naming the flag otherwise.
int backend_parse_layers(const char *text, int64_t *layers, garlic_error *err);

// A CUDA backend on device `index` (NULL and a message when built without CUDA or when the
// device cannot be opened).
backend *backend_cuda_new(int index, garlic_error *err);

// Whether this build has the CUDA backend.
bool backend_cuda_built(void);

// The CPU backend standing in for a device (tests): a run state given it as its device runs
// the device's layers through it in buffers of their own, with the hand-overs a device
// needs, so that the forward pass's split is tested where there is no GPU. One state each.
backend *backend_cpu_standin_new(garlic_error *err);

static inline void backend_free(backend *be)
{
    if (be)
        be->ops->free(be);
}

#endif
