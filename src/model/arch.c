// SPDX-License-Identifier: MIT
// The architectures garlic runs and what sets them apart. Adding one that fits the
// Llama-family forward pass (pre-norm, RoPE, grouped-query attention, SwiGLU) is a new row
// here; one that needs new steps adds a flag here and the step in forward.c.
#include <string.h>

#include "model/model.h"

static const model_arch archs[] = {
    // Llama 1/2/3, Mistral, and the fine-tunes that reuse the llama name.
    {.name = "llama", .rope_neox = false, .qkv_bias = false, .qk_norm = false},
    // Qwen2 / Qwen2.5: biases on Q, K and V; NeoX-style RoPE.
    {.name = "qwen2", .rope_neox = true, .qkv_bias = true, .qk_norm = false},
    // Qwen3 (dense): per-head RMSNorm of Q and K before RoPE; NeoX-style RoPE.
    {.name = "qwen3", .rope_neox = true, .qkv_bias = false, .qk_norm = true},
};

const model_arch *model_arch_find(const char *name)
{
    for (size_t i = 0; i < sizeof archs / sizeof archs[0]; i++)
        if (strcmp(archs[i].name, name) == 0)
            return &archs[i];
    return NULL;
}
