// SPDX-License-Identifier: MIT
// What a GGUF file says about its model, read from metadata and tensor infos without
// touching the weights: architecture and hyper-parameters, parameter count, weight-type
// mix, tokenizer summary, KV cache cost. `garlic show` prints it; the planner and the
// loader start from it.
#ifndef GARLIC_MODEL_INFO_H
#define GARLIC_MODEL_INFO_H

#include <stdbool.h>
#include <stdint.h>

#include "gguf/gguf.h"
#include "tensor/types.h"

typedef struct model_special_token {
    const char *role; // "bos", "eos", ... (static)
    int64_t id;       // token id, or -1 when the file names none
} model_special_token;

enum { MODEL_SPECIAL_COUNT = 8 };

typedef struct model_info {
    char arch[64];         // general.architecture ("llama", "qwen2", ...), "" if absent
    char name[256];        // general.name, "" if absent
    uint64_t file_size;    // bytes
    uint64_t n_params;     // sum of all tensors' element counts
    uint64_t weight_bytes; // sum of all tensors' data bytes
    uint32_t type_tensors[TENSOR_TYPE_COUNT]; // tensors per weight type
    uint64_t type_params[TENSOR_TYPE_COUNT];  // elements per weight type
    // Hyper-parameters ("<arch>.*" keys); 0 where the file does not say.
    uint64_t context_length;
    uint64_t embedding_length;
    uint64_t block_count; // layers
    uint64_t feed_forward_length;
    uint64_t head_count;
    uint64_t head_count_kv; // = head_count when absent
    uint64_t key_length;    // per head; = embedding_length / head_count when absent
    uint64_t value_length;
    uint64_t rope_dimension_count;
    float rope_freq_base;           // 10000 when absent
    float rope_scale_factor;        // 0 when absent
    char rope_scaling_type[32];     // "none", "linear", "yarn", ... ("" when absent)
    uint64_t rope_original_context; // rope.scaling.original_context_length, 0 when absent
    bool has_rope_freqs;            // a rope_freqs.weight tensor is present
    bool has_expert_bias;           // a blk.*.exp_probs_b.bias tensor is present
    float rope_yarn_log_mul;        // rope.scaling.yarn_log_multiplier, 0 when absent
    bool has_attn_sinks;            // attn_sinks tensors are present (gpt-oss)
    bool has_rope_factors;          // rope_factors_long/short tensors (LongRoPE) are present
    float rope_attn_factor;         // rope.scaling.attn_factor, 0 when absent
    float rope_freq_base_swa;       // rope.freq_base_swa, 0 when absent
    float rms_epsilon;              // 0 when absent
    float norm_epsilon;             // attention.layer_norm_epsilon, 0 when absent
    int64_t pooling_type;           // pooling_type (0 none, 1 mean, 2 cls, 3 last, 4 rank),
                                    // -1 when absent
    int causal;                     // attention.causal: 1 or 0 as the file says, -1 absent
    uint64_t token_type_count;      // tokenizer.ggml.token_type_count, 0 when absent
    float attention_scale;          // attention.scale, 0 when absent
    float final_logit_softcapping;  // 0 when absent
    // Sliding-window attention.
    uint64_t sliding_window;           // attention.sliding_window, 0 when absent
    uint64_t sliding_window_pattern;   // attention.sliding_window_pattern (a period)
    bool has_sliding_window_pattern;   // ... is present as a number
    bool sliding_window_pattern_array; // ... is present as a per-layer array
    uint64_t n_swa_layers; // layers that slide, by the architecture's pattern (0: none, or an
                           // architecture garlic does not know)
    // Multi-head latent attention (DeepSeek-V2/V3); 0 when absent.
    uint64_t q_lora_rank;
    uint64_t kv_lora_rank;
    uint64_t key_length_mla;   // a head's query and key before absorption (no-RoPE + RoPE)
    uint64_t value_length_mla; // a head's value after attn_v_b
    // Mixture of experts; 0 when absent.
    uint64_t expert_count;
    uint64_t expert_used_count;
    uint64_t expert_feed_forward_length;
    uint64_t expert_shared_feed_forward_length;
    uint64_t expert_shared_count;
    uint64_t leading_dense_block_count;
    uint64_t expert_group_count;
    uint64_t expert_group_used_count;
    uint64_t expert_gating_func; // 1 softmax, 2 sigmoid (DeepSeek files)
    float expert_weights_scale;
    int expert_weights_norm; // 1 or 0 as the file says, -1 when absent
    // Tokenizer.
    char tokenizer_model[32]; // tokenizer.ggml.model ("llama", "gpt2", ...)
    char tokenizer_pre[64];   // tokenizer.ggml.pre, "" when absent
    uint64_t vocab_size;      // entries in tokenizer.ggml.tokens
    uint64_t n_merges;        // entries in tokenizer.ggml.merges
    model_special_token special[MODEL_SPECIAL_COUNT];
    bool has_chat_template;
    uint64_t chat_template_len;
    uint64_t kv_bytes_per_token_f16; // 2 (K and V) x layers x kv_heads x head_dim x 2 bytes;
                                     // multi-head latent attention: layers x key_length x 2
                                     // (one K row holds the latent and the RoPE key)
} model_info;

// Fills info from an open file. Never fails on missing keys (they stay 0 or ""); fails with
// GARLIC_EFORMAT when a key has an impossible type or value, naming the key.
int model_info_read(const gguf_file *f, model_info *info, garlic_error *err);

// The text of token id from tokenizer.ggml.tokens, or false if out of range.
bool model_info_token_text(const gguf_file *f, int64_t id, gguf_string *out);

#endif
