// SPDX-License-Identifier: MIT
// Inputs shared by the Hugging Face reader tests (tests/hf) and the planner tests that read
// whole folders through them (tests/planner): the reference config.json of
// ../shared/reference/memory/qwen3-14b-fp8, a text editor for hostile variants, safetensors
// images built from a header, and files and folders in the temporary directory.
#ifndef GARLIC_TESTS_HF_FIXTURES_H
#define GARLIC_TESTS_HF_FIXTURES_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util.h"

// The reference config.json, inline so that the arithmetic is checked even without
// ../shared (the planner's test_reference_file reads the real file).
static const char qwen3_14b_fp8[] =
    "{\"architectures\": [\"Qwen3ForCausalLM\"], \"attention_bias\": false, \"head_dim\": 128,"
    " \"hidden_act\": \"silu\", \"hidden_size\": 5120, \"intermediate_size\": 17408,"
    " \"max_position_embeddings\": 40960, \"model_type\": \"qwen3\", \"num_attention_heads\": 40,"
    " \"num_hidden_layers\": 40, \"num_key_value_heads\": 8, \"rms_norm_eps\": 1e-06,"
    " \"rope_scaling\": null, \"rope_theta\": 1000000, \"tie_word_embeddings\": false,"
    " \"torch_dtype\": \"bfloat16\", \"vocab_size\": 151936, \"quantization_config\":"
    " {\"activation_scheme\": \"dynamic\", \"fmt\": \"e4m3\", \"quant_method\": \"fp8\","
    " \"weight_block_size\": [128, 128]}}";

// base with the first occurrence of from replaced by to (one static buffer).
static inline const char *edited(const char *base, const char *from, const char *to)
{
    static char buf[4096];
    const char *at = strstr(base, from);
    assert_non_null(at);
    snprintf(buf, sizeof buf, "%.*s%s%s", (int)(at - base), base, to, at + strlen(from));
    return buf;
}

// A safetensors header of five tensors: a norm, an FP8 matrix and its scale, an empty
// tensor and a scalar; 52 bytes of data.
static const char st_good[] =
    "{\"__metadata__\": {\"format\": \"pt\"}, "
    "\"model.norm.weight\": {\"dtype\": \"BF16\", \"shape\": [4], \"data_offsets\": [0, 8]}, "
    "\"layers.0.q_proj.weight\": {\"dtype\": \"F8_E4M3\", \"shape\": [4, 8], "
    "\"data_offsets\": [8, 40]}, "
    "\"layers.0.q_proj.weight_scale_inv\": {\"dtype\": \"F32\", \"shape\": [1, 1], "
    "\"data_offsets\": [40, 44]}, "
    "\"empty\": {\"dtype\": \"F16\", \"shape\": [0, 3], \"data_offsets\": [44, 44]}, "
    "\"scalar\": {\"dtype\": \"I64\", \"shape\": [], \"data_offsets\": [44, 52]}}";

// A safetensors image: length, header (padded with pad spaces), data_len bytes of zeros.
// The caller frees it with free().
static inline uint8_t *st_image(const char *header, size_t pad, size_t data_len, size_t *size)
{
    size_t n = strlen(header) + pad;
    *size = 8 + n + data_len;
    uint8_t *buf = calloc(1, *size);
    assert_non_null(buf);
    for (int i = 0; i < 8; i++)
        buf[i] = (uint8_t)((uint64_t)n >> (8 * i));
    memcpy(buf + 8, header, strlen(header));
    memset(buf + 8 + strlen(header), ' ', pad);
    return buf;
}

// A folder in the test's temporary directory (created if needed).
static inline const char *make_dir(const char *name)
{
    const char *dir = test_temp_path(name);
    mkdir(dir, 0755);
    return dir;
}

static inline void write_file(const char *dir, const char *name, const void *data, size_t size)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    assert_int_equal(test_write_file(path, data, size), 0);
}

static inline void write_text(const char *dir, const char *name, const char *text)
{
    write_file(dir, name, text, strlen(text));
}

// dir/name: a safetensors file of header and data_len bytes of data.
static inline void write_shard(const char *dir, const char *name, const char *header,
                               size_t data_len)
{
    size_t size;
    uint8_t *buf = st_image(header, 0, data_len, &size);
    write_file(dir, name, buf, size);
    free(buf);
}

#endif
