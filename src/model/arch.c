// SPDX-License-Identifier: MIT
// The architectures garlic runs and what sets them apart. Adding one that fits the
// Llama-family forward pass (pre-norm, RoPE, grouped-query attention, gated FFN or experts)
// is a new row here; one that needs new steps adds a field here and the step in forward.c
// (attention, dense FFN) or moe.c (experts). A layer has experts when the file gives it a
// router (ffn_gate_inp), so Mixtral is the llama row.
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
    // gpt-oss: biases on Q, K, V and the output projection; a learned sink logit per head;
    // sliding-window and full attention alternate (layer 0 has the window); the FFN's norm is
    // called post_attention_norm; experts in every layer, chosen by the biased router's top k
    // and weighted by the softmax of those logits, with biases and the clamped SwiGLU.
    {.name = "gpt-oss",
     .rope_neox = true,
     .qkv_bias = true,
     .act = MODEL_ACT_SWIGLU_OAI,
     .router = MODEL_ROUTER_TOPK_SOFTMAX,
     .expert_biases = true,
     .o_bias = true,
     .attn_sinks = true,
     .router_logit_bias = true,
     .ffn_norm = "post_attention_norm.weight",
     .swa_period = 2},
};

const model_arch *model_arch_find(const char *name)
{
    for (size_t i = 0; i < sizeof archs / sizeof archs[0]; i++)
        if (strcmp(archs[i].name, name) == 0)
            return &archs[i];
    return NULL;
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

bool model_arch_layer_windowed(const model_arch *arch, int64_t pattern, uint32_t l)
{
    if (!arch->swa_period)
        return false;
    uint64_t period = pattern >= 0 ? (uint64_t)pattern : arch->swa_period;
    return period == 0 || l % period < period - 1;
}
