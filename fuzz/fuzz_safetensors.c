// SPDX-License-Identifier: MIT
// libFuzzer target for the Hugging Face readers (src/hf) and the planner on top of them: the
// input is parsed as a whole safetensors file (8-byte header length, JSON header, data)
// into the planner's weights table, and, when it starts with '{', as a config.json too,
// then planned. Every accepted result is checked for consistency, so that a bounds or
// accounting bug shows up as a crash under ASan/UBSan.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hf/hf.h"
#include "planner/planner.h"

static void check_weights(const planner_weights *w, size_t size)
{
    uint64_t bytes = 0;
    for (uint32_t i = 0; i < w->n_types; i++)
        bytes += w->types[i].bytes;
    if (bytes != w->tensor_bytes || w->tensor_bytes > size || w->n_params_norm > w->n_params)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    // An exactly-sized copy, so that ASan sees any read past the end.
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    planner_weights w = {0};
    garlic_error err;
    if (hf_safetensors_parse(buf, size, size, "fuzz.safetensors", planner_weights_add_hf_tensor, &w,
                             &err) == GARLIC_OK)
        check_weights(&w, size);
    hf_config cfg;
    planner_input in;
    if (size && buf[0] == '{' &&
        hf_config_parse((const char *)buf, size, "config.json", &cfg, &err) == GARLIC_OK &&
        planner_from_hf_config(&cfg, "config.json", &in, &err) == GARLIC_OK) {
        // Not planner_config_default: it reads /proc/cpuinfo for the thread count.
        planner_config pc = {.ctx = 64,
                             .parallel = 2,
                             .kv_type = KV_TYPE_FP8_E4M3,
                             .block_tokens = 16,
                             .max_batch = 8,
                             .logit_rows = 8,
                             .n_threads = 2,
                             .budget = 1ull << 30};
        planner_plan plan;
        planner_plan_make(&in, &pc, &plan, &err);
    }
    free(buf);
    return 0;
}
