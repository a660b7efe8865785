// SPDX-License-Identifier: MIT
// A loaded transformer: hyper-parameters, weights (pointers into the GGUF mapping, never
// copied) and the forward pass over a batch of tokens. The architecture specifics (RoPE
// style, optional biases and norms) come from one table in arch.c; the forward pass reads
// them as data. The run state holds the KV cache and every scratch buffer, sized once at
// creation, so decoding allocates nothing per token.
#ifndef GARLIC_MODEL_H
#define GARLIC_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "base/error.h"
#include "base/threadpool.h"
#include "gguf/gguf.h"

// What differs between Llama-family architectures. One row per architecture in arch.c.
typedef struct model_arch {
    const char *name;   // general.architecture
    bool rope_neox;     // rotate (x[i], x[i + n_rot/2]) instead of adjacent pairs
    bool qkv_bias;      // attn_{q,k,v}.bias are expected (loaded when present in any case)
    bool qk_norm;       // per-head RMSNorm of Q and K (attn_{q,k}_norm) before RoPE
} model_arch;

// The architecture row for name, or NULL.
const model_arch *model_arch_find(const char *name);

typedef enum model_rope_scaling {
    MODEL_ROPE_SCALING_NONE,
    MODEL_ROPE_SCALING_LINEAR,
    MODEL_ROPE_SCALING_YARN,
    MODEL_ROPE_SCALING_COUNT
} model_rope_scaling;

typedef struct model_hparams {
    uint32_t n_vocab;
    uint32_t n_ctx_train;   // trained context length
    uint32_t dim;           // embedding length
    uint32_t n_layer;
    uint32_t n_head;
    uint32_t n_head_kv;
    uint32_t head_dim_k;    // attention.key_length (default dim / n_head)
    uint32_t head_dim_v;    // attention.value_length
    uint32_t ffn;           // feed-forward width
    uint32_t n_rot;         // rope.dimension_count (default head_dim_k)
    float rope_base;        // rope.freq_base
    model_rope_scaling rope_scaling;
    float rope_factor;      // rope.scaling.factor (1 when none)
    uint32_t rope_ctx_orig; // rope.scaling.original_context_length (YaRN)
    float rope_attn_factor; // rope.scaling.attn_factor (YaRN, default 1)
    float rms_eps;
} model_hparams;

typedef struct model_tensor {
    const void *data;  // rows of n_in values, contiguous, inside the mapping
    uint32_t type;     // tensor_type
    uint64_t n_in;     // ne[0]: values per row
    uint64_t n_out;    // ne[1]: rows
} model_tensor;

typedef struct model_layer {
    model_tensor attn_norm;            // (dim) F32
    model_tensor wq, wk, wv, wo;       // (dim -> n_head*hd_k), (dim -> n_kv*hd_k), ..., (n_head*hd_v -> dim)
    model_tensor bq, bk, bv;           // optional biases; data NULL when absent
    model_tensor q_norm, k_norm;       // optional (head_dim_k) per-head norms
    model_tensor ffn_norm;             // (dim)
    model_tensor w_gate, w_up, w_down; // (dim -> ffn), (dim -> ffn), (ffn -> dim)
} model_layer;

typedef struct model {
    gguf_file *file;          // owns the mapping every tensor points into
    const model_arch *arch;
    model_hparams hp;
    model_tensor token_embd;  // (dim x n_vocab)
    model_tensor output_norm; // (dim)
    model_tensor output;      // (dim x n_vocab); token_embd when tied
    const float *rope_freqs;  // (n_rot / 2) per-pair divisors, or NULL
    model_layer *layers;      // (n_layer)
} model;

// Opens and validates a model: the architecture is known, every required tensor exists with
// the shape the hyper-parameters imply and a type garlic can compute with. Errors name the
// file and the key or tensor at fault.
model *model_load(const char *path, garlic_error *err);
void model_free(model *m);

// KV cache element types.
typedef enum model_kv_type {
    MODEL_KV_F32,
    MODEL_KV_F16,
    MODEL_KV_Q8_0,
    MODEL_KV_COUNT
} model_kv_type;

// Parses "f32", "f16" or "q8_0"; false otherwise.
bool model_kv_type_parse(const char *name, model_kv_type *out);

typedef struct model_state model_state;

typedef struct model_state_config {
    uint32_t n_ctx;        // positions the KV cache holds
    uint32_t max_batch;    // tokens one forward call may take
    uint32_t logit_rows;   // logits rows one call may return: 1, or up to max_batch for
                           // all_logits calls (each row is n_vocab floats)
    model_kv_type kv_type;
    int n_threads;         // compute pool size (the caller included)
} model_state_config;

// The run state of one sequence: a KV cache, scratch for cfg->max_batch tokens and a compute
// pool, all allocated here. Fails with a message for impossible sizes or out of memory.
model_state *model_state_new(const model *m, const model_state_config *cfg, garlic_error *err);
void model_state_free(model_state *s);

// Bytes the state allocated (KV cache plus scratch), for reports.
uint64_t model_state_bytes(const model_state *s);
uint32_t model_state_n_ctx(const model_state *s);
uint32_t model_state_max_batch(const model_state *s);
const model *model_state_model(const model_state *s);

// Runs tokens[0..n) at positions pos0.. through the model, writing their K and V into the
// cache. Returns a pointer to the logits (valid until the next call): n_vocab floats for the
// last token, or n x n_vocab (row per token) when all_logits. Fails (GARLIC_EINVAL) when n is
// 0 or above max_batch, all_logits with n above logit_rows, pos0 + n exceeds n_ctx, or a
// token id is out of range. Allocates nothing.
int model_forward(model_state *s, const int32_t *tokens, uint32_t n, uint32_t pos0,
                  bool all_logits, const float **logits, garlic_error *err);

#endif
