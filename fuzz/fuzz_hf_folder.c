// SPDX-License-Identifier: MIT
// libFuzzer target for a whole Hugging Face folder as a model (src/hf/model.c): the input is
// "config.json text NUL safetensors bytes" (without a NUL, the input is the safetensors file
// and a small Llama config is used). Both are written into a folder of this process and opened
// as model_load opens a folder: config read, header parsed, every tensor mapped, found, made
// (repacked, permuted, stacked) and bound. Every tensor a load accepts is read whole, so that
// a bounds bug shows up under ASan/UBSan.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hf/hf.h"
#include "model/model.h"

static const char default_config[] =
    "{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":32,\"num_hidden_layers\":1,"
    "\"num_attention_heads\":2,\"num_key_value_heads\":1,\"intermediate_size\":64,"
    "\"vocab_size\":64,\"torch_dtype\":\"float32\"}";

static char dir[64];

static int write_file(const char *name, const void *data, size_t size)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t n = fwrite(data, 1, size, f);
    return fclose(f) == 0 && n == size ? 0 : -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/garlic-fuzz-hf-XXXXXX");
        if (!mkdtemp(dir))
            abort();
    }
    const uint8_t *nul = memchr(data, 0, size);
    const void *config = nul ? (const void *)data : default_config;
    size_t config_len = nul ? (size_t)(nul - data) : sizeof default_config - 1;
    const uint8_t *weights = nul ? nul + 1 : data;
    size_t weights_len = nul ? size - (size_t)(nul + 1 - data) : size;
    if (write_file("config.json", config, config_len) ||
        write_file("model.safetensors", weights, weights_len))
        abort();
    garlic_error err;
    gguf_file *f = hf_open(dir, NULL, &err);
    if (!f)
        return 0;
    volatile uint8_t sink = 0;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const uint8_t *p = f->tensors[i].data;
        for (uint64_t b = 0; p && b < f->tensors[i].nbytes; b++)
            sink ^= p[b];
    }
    (void)sink;
    model *m = model_load_file(f, &err); // takes f
    model_free(m);
    return 0;
}
