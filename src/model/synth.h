// SPDX-License-Identifier: MIT
// The model synthesizer: writes a random-weight Llama-family GGUF of any shape and weight
// type, deterministic from a seed, so that tests need no downloaded model and benchmarks
// can use realistic sizes (e.g. the TinyLlama-1.1B shape). The vocabulary is copied from a
// tokenizer GGUF, or else a small SentencePiece-style vocabulary is generated (a WordPiece
// one for the encoders, bert and nomic-bert).
#ifndef GARLIC_MODEL_SYNTH_H
#define GARLIC_MODEL_SYNTH_H

#include <stdbool.h>
#include <stdint.h>

#include "base/error.h"

typedef struct model_synth_params {
    const char *arch; // "llama", "qwen2" (Q/K/V bias), "qwen3" (Q/K norms), "qwen3moe",
                      // "qwen2moe" (experts; llama with experts is Mixtral), "gemma3",
                      // "phi3" (fused Q/K/V and gate/up), "gpt-oss" (experts, sinks),
                      // "deepseek2" (multi-head latent attention and experts), "bert" and
                      // "nomic-bert" (encoders: embeddings only, a built-in WordPiece vocab)
    const char *name; // general.name; NULL for "garlic-synth"
    uint32_t dim;     // embedding length
    uint32_t n_layer;
    uint32_t n_head;
    uint32_t n_head_kv;        // grouped-query attention when < n_head
    uint32_t head_dim;         // 0: dim / n_head (deepseek2: a head's query, no-RoPE part
                               // and RoPE part: attention.key_length_mla)
    uint32_t ffn;              // feed-forward (SwiGLU) width
    uint32_t context;          // trained context length
    uint32_t vocab;            // vocabulary size when no tokenizer file is given
    uint32_t type;             // tensor_type of the 2-D weights
    int32_t output_type;       // tensor_type of output.weight, -1: same as type
    int32_t more_bits_type;    // tensor_type of attn_v and ffn_down in the layers that a
                               // "_M" K-quant mixture gives more bits (the first and last
                               // eighth, every third between), -1: same as type
    bool tied;                 // no output.weight (the embedding is reused)
    uint32_t n_expert;         // experts per layer (0: dense FFN)
    uint32_t n_expert_used;    // experts a token runs
    uint32_t ffn_exp;          // an expert's width (0: ffn)
    uint32_t ffn_shexp;        // the shared expert's width (0: none; qwen2moe needs one)
    int32_t expert_type;       // tensor_type of the experts' matrices, -1: same as type
    uint32_t n_shared_experts; // expert_shared_count: a shared expert n experts wide
    uint32_t n_dense_lead;     // leading_dense_block_count: first layers with a dense FFN
    uint32_t n_expert_groups;  // expert_group_count (0: no groups)
    uint32_t n_group_used;     // expert_group_used_count
    uint32_t gating_func;      // expert_gating_func: 0 not written, 1 softmax, 2 sigmoid
    bool expert_bias;          // exp_probs_b.bias: a bias steering the choice of experts
    bool expert_norm;          // expert_weights_norm true (false is not written)
    float expert_scale;        // expert_weights_scale, 0: not written
    // Multi-head latent attention (deepseek2, which needs rope_dims: a head's RoPE part);
    // the KV head count written is 1.
    uint32_t q_lora_rank;       // attention.q_lora_rank (0: one attn_q, as DeepSeek-V2-Lite)
    uint32_t kv_lora_rank;      // attention.kv_lora_rank, the cached latent
    uint32_t v_head_dim;        // attention.value_length_mla (0: head_dim - rope_dims)
    float rope_theta;           // 0: 10000
    float rope_linear;          // linear RoPE scaling factor (rope.scaling.*), 0: none
    float rope_yarn;            // YaRN RoPE scaling factor (rope.scaling.*), 0: none
    float yarn_log_mul;         // rope.scaling.yarn_log_multiplier (YaRN; DeepSeek's 0.1 x
                                // mscale_all_dim), 0: not written
    uint32_t rope_orig_ctx;     // rope.scaling.original_context_length (phi3: where LongRoPE's
                                // long factors start; YaRN: the trained context), 0: context
    uint32_t rope_dims;         // rope.dimension_count, 0: the head size
    uint32_t sliding_window;    // attention.sliding_window (gemma3, phi3), 0: none (gpt-oss,
                                // which always has one: 128)
    float rope_theta_swa;       // rope.freq_base_swa of gemma3's sliding layers, 0: 10000
    float final_softcap;        // final_logit_softcapping (gemma3), 0: none
    bool longrope;              // rope_factors_long/short and rope.scaling.attn_factor (phi3)
    float rms_eps;              // 0: 1e-5 (encoders: attention.layer_norm_epsilon, 0: 1e-12)
    int32_t pooling;            // pooling_type written (model_pooling), -1: none (encoders
                                // always write one: mean when -1)
    const char *tokenizer_path; // copy tokenizer.* keys from this GGUF, or NULL
    uint64_t seed;
    // Called after each tensor is generated, with the tensor bytes done so far and in all
    // (NULL: no progress); progress_user is handed back.
    void (*progress)(void *progress_user, uint64_t done, uint64_t total);
    void *progress_user;
} model_synth_params;

// Fills p with shape A of the shared test models (dim 256, 2 layers, 8 heads, 2 KV heads,
// FFN 768, context 512, vocab 512, F32, llama).
void model_synth_params_default(model_synth_params *p);

// Writes the model to path. Matrices are N(0, 0.02), norms 1 + N(0, 0.1), biases N(0, 0.5),
// LongRoPE factors 1 + |N(0, 0.25)| (short) and 1 + |N(0, 4)| (long); 1-D tensors stay F32.
// A matrix whose rows are not a multiple of the type's block size falls back to Q8_0, F16 or
// F32 (as llama-quantize does). Fails with a message naming the parameter or file at fault.
int model_synth_write(const model_synth_params *p, const char *path, garlic_error *err);

#endif
