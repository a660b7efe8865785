// SPDX-License-Identifier: MIT
// The architectures garlic runs and what sets them apart. Adding one that fits the
// Llama-family forward pass (pre-norm, RoPE, grouped-query attention, gated FFN or experts)
// is a new row here; one that needs new steps adds a field here and the step in forward.c
// (attention, dense FFN) or moe.c (experts). A layer has experts when the file gives it a
// router (ffn_gate_inp), so Mixtral is the llama row. A field left out is false or 0: the
// Llama behaviour.
#include <stdio.h>
#include <string.h>

#include "model/model.h"

static const model_arch archs[] = {
    // Llama 1/2/3, Mistral, the fine-tunes that reuse the llama name, and Mixtral (experts
    // chosen by softmax then top k, their weights renormalized).
    {.name = "llama", .expert_norm = true},
    // Qwen2 / Qwen2.5: biases on Q, K and V; NeoX-style RoPE.
    {.name = "qwen2", .rope_neox = true, .qkv_bias = true},
    // Qwen3 (dense): per-head RMSNorm of Q and K before RoPE; NeoX-style RoPE.
    {.name = "qwen3", .rope_neox = true, .qk_norm = true},
    // Qwen3-MoE (Qwen3-30B-A3B, Qwen3-Coder): Qwen3's attention, experts in every layer,
    // the top k weights renormalized.
    {.name = "qwen3moe", .rope_neox = true, .qk_norm = true, .expert_norm = true},
    // Qwen1.5-MoE / Qwen2-MoE: Qwen2's attention; experts not renormalized, plus a shared
    // expert scaled by its own sigmoid gate.
    {.name = "qwen2moe", .rope_neox = true, .qkv_bias = true, .shared_gate = true},
    // Gemma 3 (text): the embedding scaled by sqrt(dim); per-head Q/K norms; each block's
    // output normed before the residual; GeGLU; NeoX RoPE. Five sliding-window layers with
    // their own RoPE (base 10000, unscaled) then one global layer; the 27B (62 layers) scales
    // queries by 1 / sqrt(dim / n_head).
    {.name = "gemma3",
     .rope_neox = true,
     .qk_norm = true,
     .act = MODEL_ACT_GELU,
     .embd_scale = true,
     .post_norms = true,
     .wide_query_layers = 62,
     .sliding_window = true,
     .swa_period = 6,
     .swa_rope = true},
    // Phi-3 / Phi-3.5 / Phi-4 (dense): Q, K and V in one matrix, gate and up in one; NeoX
    // RoPE, LongRoPE factors (rope_factors_long/short) where the file has them. A window
    // (attention.sliding_window, 0 on Phi-4) applies to every layer, as in the reference
    // implementation; llama.cpp d32676d77 ignores it.
    {.name = "phi3",
     .rope_neox = true,
     .sliding_window = true,
     .swa_period = 0,
     .fused_qkv = true,
     .fused_up = true},
    // gpt-oss: biases on Q, K, V and the output projection; a learned sink logit per head;
    // sliding-window and full attention alternate (layer 0 slides), one RoPE (YaRN) for both;
    // the FFN's norm is called post_attention_norm; experts in every layer, chosen by the
    // biased router's top k and weighted by the softmax of those logits, with biases and the
    // clamped SwiGLU.
    {.name = "gpt-oss",
     .rope_neox = true,
     .qkv_bias = true,
     .act = MODEL_ACT_SWIGLU_OAI,
     .router = MODEL_ROUTER_TOPK_SOFTMAX,
     .expert_biases = true,
     .sliding_window = true,
     .swa_period = 2,
     .o_bias = true,
     .attn_sinks = true,
     .router_logit_bias = true,
     .ffn_norm = "post_attention_norm.weight"},
    // DeepSeek-V2/V3/R1, Kimi-K2: multi-head latent attention with a RoPE part of its own,
    // YaRN's magnitude in the attention scale; leading dense layers, then experts beside
    // shared ones (the router, groups, bias, norm and scale are the file's).
    {.name = "deepseek2", .mla = true, .yarn_attn_scale = true},
    // BERT encoders (all-MiniLM, bge, e5...): learned positions, biases on every projection,
    // a GELU FFN without a gate, post-norm blocks, attention over the whole input.
    {.name = "bert",
     .qkv_bias = true,
     .o_bias = true,
     .act = MODEL_ACT_GELU,
     .encoder = true,
     .pos_embd = true,
     .ffn_ungated = true},
    // nomic-embed-text: BERT's post-norm encoder with NeoX RoPE instead of learned positions,
    // one fused Q/K/V matrix and a SwiGLU FFN, no biases.
    {.name = "nomic-bert", .rope_neox = true, .fused_qkv = true, .encoder = true},
};

const model_arch *model_arch_find(const char *name)
{
    for (size_t i = 0; i < sizeof archs / sizeof archs[0]; i++)
        if (strcmp(archs[i].name, name) == 0)
            return &archs[i];
    return NULL;
}

const char *model_pooling_name(model_pooling p)
{
    static const char *const names[MODEL_POOLING_COUNT] = {
        [MODEL_POOLING_NONE] = "none", [MODEL_POOLING_MEAN] = "mean", [MODEL_POOLING_CLS] = "cls",
        [MODEL_POOLING_LAST] = "last", [MODEL_POOLING_RANK] = "rank",
    };
    return (unsigned)p < MODEL_POOLING_COUNT ? names[p] : "?";
}

const char *model_arch_names(void)
{
    static char names[256];
    if (!names[0])
        for (size_t i = 0, n = 0; i < sizeof archs / sizeof archs[0]; i++)
            n += (size_t)snprintf(names + n, sizeof names - n, "%s%s", i ? ", " : "",
                                  archs[i].name);
    return names;
}
