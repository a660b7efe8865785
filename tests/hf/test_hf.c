// SPDX-License-Identifier: MIT
// Tests of src/hf, the Hugging Face readers: config.json (the reference fields, defaults,
// every validation error naming the file and the field), where a model's files are, the
// shard list of a folder with and without an index, the safetensors header parser against
// hostile input (every truncation, forged lengths, offsets, shapes, dtypes, overlaps, random
// flips), headers read from files, and allocation failures.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "hf/hf_fixtures.h"
#include "util.h"

#include "base/alloc.h"
#include "hf/hf.h"

// ---- config.json ----

static void parse_config(const char *json, hf_config *cfg)
{
    garlic_error err = {0};
    if (hf_config_parse(json, strlen(json), "config.json", cfg, &err))
        fail_msg("%s", err.message);
}

static void test_config_reference(void **state)
{
    (void)state;
    hf_config cfg;
    parse_config(qwen3_14b_fp8, &cfg);
    assert_string_equal(cfg.arch->name, "Qwen3ForCausalLM");
    assert_true(cfg.arch->qk_norm);
    assert_false(cfg.arch->qkv_bias);
    const model_hparams *hp = &cfg.hp;
    assert_int_equal(hp->n_layer, 40);
    assert_int_equal(hp->dim, 5120);
    assert_int_equal(hp->n_head, 40);
    assert_int_equal(hp->n_head_kv, 8);
    assert_int_equal(hp->head_dim_k, 128);
    assert_int_equal(hp->head_dim_v, 128);
    assert_int_equal(hp->ffn, 17408);
    assert_int_equal(hp->n_vocab, 151936);
    assert_int_equal(hp->n_ctx_train, 40960);
    assert_true(hp->rope_base == 1000000.0f);
    assert_true(hp->rms_eps == 1e-6f);
    assert_string_equal(cfg.storage.dense, "BF16");
    assert_int_equal(cfg.storage.dense_size, 2);
    assert_int_equal(cfg.storage.quant, HF_QUANT_FP8);
    assert_string_equal(cfg.storage.fp8, "F8_E4M3");
    assert_int_equal(cfg.storage.block_n, 128);
    assert_int_equal(cfg.storage.block_k, 128);
    assert_false(cfg.tied);
    assert_false(cfg.attn_bias);
}

// Defaults: KV heads are the heads, head_dim is dim / heads, the context 2048, F32 without a
// dtype; "dtype" stands for torch_dtype, model_type for a missing architectures list.
static void test_config_defaults(void **state)
{
    (void)state;
    hf_config cfg;
    parse_config("{\"model_type\": \"llama\", \"hidden_size\": 64, \"num_hidden_layers\": 2, "
                 "\"num_attention_heads\": 4, \"intermediate_size\": 128, \"vocab_size\": 100, "
                 "\"tie_word_embeddings\": true}",
                 &cfg);
    assert_string_equal(cfg.arch->name, "LlamaForCausalLM");
    assert_int_equal(cfg.hp.n_head_kv, 4);
    assert_int_equal(cfg.hp.head_dim_k, 16);
    assert_int_equal(cfg.hp.n_ctx_train, 2048);
    assert_true(cfg.hp.rope_base == 10000.0f);
    assert_string_equal(cfg.storage.dense, "F32");
    assert_int_equal(cfg.storage.quant, HF_QUANT_NONE);
    assert_true(cfg.tied);
    parse_config("{\"architectures\": [\"Qwen2ForCausalLM\"], \"hidden_size\": 64, "
                 "\"num_hidden_layers\": 1, \"num_attention_heads\": 4, \"intermediate_size\": 8,"
                 " \"vocab_size\": 10, \"dtype\": \"float16\", \"quantization_config\": "
                 "{\"quant_method\": \"awq\", \"bits\": 4, \"group_size\": -1}}",
                 &cfg);
    assert_true(cfg.arch->qkv_bias);
    assert_string_equal(cfg.storage.dense, "F16");
    assert_int_equal(cfg.storage.quant, HF_QUANT_INT);
    assert_int_equal(cfg.storage.bits, 4);
    assert_int_equal(cfg.storage.group, 0);
    assert_string_equal(cfg.storage.qname, "INT4");
}

static void expect_config_error(const char *json, int code, const char *needle)
{
    hf_config cfg;
    garlic_error err = {0};
    int rc = hf_config_parse(json, strlen(json), "cfg/config.json", &cfg, &err);
    if (rc != code || !strstr(err.message, needle) || !strstr(err.message, "cfg/config.json"))
        fail_msg("expected %d with '%s', got %d: %s", code, needle, rc, err.message);
}

static void test_config_errors(void **state)
{
    (void)state;
    // Edits of the reference config: from -> to gives code with needle in the message.
    static const struct {
        const char *from, *to;
        int code;
        const char *needle;
    } edits[] = {
        {"\"num_hidden_layers\": 40,", "", GARLIC_EFORMAT, "num_hidden_layers is missing"},
        {"\"num_hidden_layers\": 40", "\"num_hidden_layers\": \"40\"", GARLIC_EFORMAT,
         "num_hidden_layers must be an integer"},
        {"\"hidden_size\": 5120", "\"hidden_size\": -5120", GARLIC_EFORMAT, "hidden_size"},
        {"\"hidden_size\": 5120", "\"hidden_size\": 5120.5", GARLIC_EFORMAT, "hidden_size"},
        {"\"vocab_size\": 151936", "\"vocab_size\": 1e300", GARLIC_EFORMAT, "vocab_size"},
        {"\"intermediate_size\": 17408,", "", GARLIC_EFORMAT, "intermediate_size is missing"},
        {"\"num_key_value_heads\": 8", "\"num_key_value_heads\": 7", GARLIC_EFORMAT,
         "num_key_value_heads 7 does not divide"},
        {"\"head_dim\": 128", "\"head_dim\": 0", GARLIC_EFORMAT, "head_dim"},
        {"\"max_position_embeddings\": 40960", "\"max_position_embeddings\": 99999999999",
         GARLIC_EFORMAT, "max_position_embeddings"},
        {"Qwen3ForCausalLM", "GPT2LMHeadModel", GARLIC_EUNSUPPORTED,
         "architectures 'GPT2LMHeadModel' is not supported"},
        {"[\"Qwen3ForCausalLM\"]", "\"Qwen3ForCausalLM\"", GARLIC_EFORMAT,
         "architectures must be a list"},
        {"\"tie_word_embeddings\": false", "\"tie_word_embeddings\": 0", GARLIC_EFORMAT,
         "tie_word_embeddings must be true or false"},
        {"\"bfloat16\"", "\"int3\"", GARLIC_EUNSUPPORTED, "torch_dtype 'int3'"},
        {"\"fp8\"", "\"bitsandbytes\"", GARLIC_EUNSUPPORTED, "quant_method 'bitsandbytes'"},
        {"\"quant_method\": \"fp8\"", "\"quant_method\": 8", GARLIC_EFORMAT,
         "quantization_config.quant_method"},
        {"[128, 128]", "[128]", GARLIC_EFORMAT, "weight_block_size"},
        {"[128, 128]", "[0, 128]", GARLIC_EFORMAT, "weight_block_size"},
        {"\"e4m3\"", "\"e3m4\"", GARLIC_EUNSUPPORTED, "quantization_config.fmt 'e3m4'"},
        {"\"rope_theta\": 1000000", "\"rope_theta\": -1", GARLIC_EFORMAT, "rope_theta"},
    };
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++)
        expect_config_error(edited(qwen3_14b_fp8, edits[i].from, edits[i].to), edits[i].code,
                            edits[i].needle);
    expect_config_error("[1, 2]", GARLIC_EFORMAT, "not a JSON object");
    expect_config_error("{\"hidden_size\": 5120", GARLIC_EFORMAT, "not a JSON object");
    expect_config_error("{}", GARLIC_EFORMAT, "architectures is missing");
    expect_config_error("{\"model_type\": \"bert\"}", GARLIC_EUNSUPPORTED, "model_type 'bert'");
}

// ---- files and folders ----

static void test_config_read(void **state)
{
    (void)state;
    const char *dir = make_dir("read");
    write_text(dir, "config.json", qwen3_14b_fp8);
    hf_folder folder;
    garlic_error err = {0};
    assert_int_equal(hf_folder_find(dir, &folder, &err), 0);
    assert_string_equal(folder.dir, dir);
    char want[1024];
    snprintf(want, sizeof want, "%s/config.json", dir);
    assert_string_equal(folder.config, want);
    hf_config cfg;
    assert_int_equal(hf_config_read(folder.config, &cfg, &err), 0);
    assert_int_equal(cfg.hp.n_layer, 40);
    // A file: its folder is the one holding it ("." for a bare name).
    assert_int_equal(hf_folder_find(want, &folder, &err), 0);
    assert_string_equal(folder.dir, dir);
    assert_string_equal(folder.config, want);
    assert_int_equal(hf_folder_find("/", &folder, &err), 0);
    assert_string_equal(folder.config, "//config.json");
    // Missing things are named.
    assert_int_equal(hf_folder_find(test_temp_path("nowhere"), &folder, &err), GARLIC_EIO);
    assert_non_null(strstr(err.message, "nowhere"));
    assert_int_equal(hf_config_read(test_temp_path("none.json"), &cfg, &err), GARLIC_EIO);
    assert_non_null(strstr(err.message, "none.json"));
    assert_int_equal(hf_config_read(dir, &cfg, &err), GARLIC_EIO); // a folder
    write_text(dir, "bad.json", "{\"hidden_size\": 1}");
    snprintf(want, sizeof want, "%s/bad.json", dir);
    assert_int_equal(hf_config_read(want, &cfg, &err), GARLIC_EFORMAT);
    assert_non_null(strstr(err.message, "bad.json: architectures is missing"));
}

static const char shard_a[] =
    "{\"embed\": {\"dtype\": \"BF16\", \"shape\": [100, 64], \"data_offsets\": [0, 12800]}}";

static void test_shards(void **state)
{
    (void)state;
    // Without an index: every *.safetensors, sorted; other files are not weights.
    const char *dir = make_dir("glob");
    write_shard(dir, "b.safetensors", shard_a, 12800);
    write_shard(dir, "a.safetensors", shard_a, 12800);
    write_file(dir, "x.safetensors.txt", "x", 1);
    write_file(dir, ".safetensors", "x", 1);
    hf_shards s;
    garlic_error err = {0};
    char want[1024];
    assert_int_equal(hf_shards_list(dir, &s, &err), 0);
    assert_int_equal(s.n, 2);
    snprintf(want, sizeof want, "%s/a.safetensors", dir);
    assert_string_equal(s.paths[0], want);
    snprintf(want, sizeof want, "%s/b.safetensors", dir);
    assert_string_equal(s.paths[1], want);
    hf_shards_deinit(&s);
    // With an index: the files it names, once each, in order of first mention.
    write_text(dir, "model.safetensors.index.json",
               "{\"weight_map\": {\"x\": \"b.safetensors\", \"y\": \"c.safetensors\", "
               "\"z\": \"b.safetensors\"}}");
    assert_int_equal(hf_shards_list(dir, &s, &err), 0);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.paths[0], want);
    snprintf(want, sizeof want, "%s/c.safetensors", dir);
    assert_string_equal(s.paths[1], want);
    hf_shards_deinit(&s);
    static const char *const bad[] = {
        "{\"weight_map\": {\"w\": \"../x\"}}", "{\"weight_map\": {\"w\": \"..\"}}",
        "{\"weight_map\": {\"w\": 3}}", "{\"weight_map\": {\"w\": \"\"}}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_text(dir, "model.safetensors.index.json", bad[i]);
        assert_int_equal(hf_shards_list(dir, &s, &err), GARLIC_EFORMAT);
        assert_non_null(strstr(err.message, "weight_map"));
        hf_shards_deinit(&s);
    }
    write_text(dir, "model.safetensors.index.json", "{\"weight_map\": 3}");
    assert_int_equal(hf_shards_list(dir, &s, &err), GARLIC_EFORMAT);
    assert_non_null(strstr(err.message, "model.safetensors.index.json"));
    hf_shards_deinit(&s);
    // A folder without weights; a folder that is not there.
    assert_int_equal(hf_shards_list(make_dir("empty"), &s, &err), 0);
    assert_int_equal(s.n, 0);
    hf_shards_deinit(&s);
    assert_int_equal(hf_shards_list(test_temp_path("nowhere"), &s, &err), GARLIC_EIO);
    hf_shards_deinit(&s);
}

// ---- safetensors headers ----

// What a parse reported: every tensor (names and dtypes copied) and the sums.
typedef struct seen {
    size_t n_tensors;
    uint64_t n_params, n_params_norm, tensor_bytes;
    hf_tensor tensors[8]; // (n_tensors, at most 8 kept) name and dtype point to the copies
    char names[8][64], dtypes[8][16];
} seen;

static int collect(void *user, const hf_tensor *t, garlic_error *err)
{
    (void)err;
    seen *s = user;
    if (s->n_tensors < 8) {
        size_t i = s->n_tensors;
        s->tensors[i] = *t;
        snprintf(s->names[i], sizeof s->names[i], "%s", t->name);
        snprintf(s->dtypes[i], sizeof s->dtypes[i], "%s", t->dtype);
        s->tensors[i].name = s->names[i], s->tensors[i].dtype = s->dtypes[i];
    }
    s->n_tensors++;
    s->n_params += t->scales ? 0 : t->n_elements;
    s->n_params_norm += t->norm && !t->scales ? t->n_elements : 0;
    s->tensor_bytes += t->bytes;
    return GARLIC_OK;
}

static const hf_tensor *find_tensor(const seen *s, const char *name)
{
    for (size_t i = 0; i < s->n_tensors && i < 8; i++)
        if (strcmp(s->tensors[i].name, name) == 0)
            return &s->tensors[i];
    fail_msg("no tensor %s", name);
    return NULL;
}

static int st_parse(const uint8_t *buf, size_t size, seen *s, garlic_error *err)
{
    // An exactly-sized copy, so that ASan sees any read past the end.
    uint8_t *copy = malloc(size ? size : 1);
    assert_non_null(copy);
    memcpy(copy, buf, size);
    *s = (seen){0};
    int rc = hf_safetensors_parse(copy, size, size, "t.safetensors", collect, s, err);
    free(copy);
    return rc;
}

static void test_safetensors_good(void **state)
{
    (void)state;
    size_t size;
    uint8_t *buf = st_image(st_good, 5, 52, &size);
    seen s;
    garlic_error err = {0};
    if (st_parse(buf, size, &s, &err))
        fail_msg("%s", err.message);
    assert_int_equal(s.n_tensors, 5);
    assert_int_equal(s.n_params, 4 + 32 + 0 + 1);
    assert_int_equal(s.n_params_norm, 4);
    assert_int_equal(s.tensor_bytes, 52);
    assert_int_equal(size - s.tensor_bytes, 8 + strlen(st_good) + 5); // header and padding
    const hf_tensor *scale = find_tensor(&s, "layers.0.q_proj.weight_scale_inv");
    assert_true(scale->scales);
    assert_string_equal(scale->dtype, "F32");
    assert_int_equal(scale->bytes, 4);
    const hf_tensor *q = find_tensor(&s, "layers.0.q_proj.weight");
    assert_false(q->scales);
    assert_false(q->norm);
    assert_string_equal(q->dtype, "F8_E4M3");
    assert_int_equal(q->dtype_size, 1);
    assert_int_equal(q->n_dims, 2);
    assert_int_equal(q->shape[0], 4);
    assert_int_equal(q->shape[1], 8);
    assert_int_equal(q->n_elements, 32);
    assert_int_equal(q->begin, 8);
    assert_int_equal(q->end, 40);
    assert_true(find_tensor(&s, "model.norm.weight")->norm);
    assert_int_equal(find_tensor(&s, "scalar")->n_dims, 0);
    assert_int_equal(find_tensor(&s, "scalar")->n_elements, 1);
    assert_int_equal(find_tensor(&s, "empty")->bytes, 0);
    free(buf);
    // A hole between tensors is allowed: bytes of the file besides the tensors.
    buf = st_image(st_good, 0, 60, &size);
    assert_int_equal(st_parse(buf, size, &s, &err), 0);
    assert_int_equal(size - s.tensor_bytes, 8 + strlen(st_good) + 8);
    free(buf);
}

static void expect_st_error(const char *header, size_t data_len, const char *needle)
{
    size_t size;
    uint8_t *buf = st_image(header, 0, data_len, &size);
    seen s;
    garlic_error err = {0};
    int rc = st_parse(buf, size, &s, &err);
    free(buf);
    if (rc != GARLIC_EFORMAT || !strstr(err.message, needle) ||
        !strstr(err.message, "t.safetensors"))
        fail_msg("expected a format error with '%s', got %d: %s", needle, rc, err.message);
}

static void test_safetensors_hostile(void **state)
{
    (void)state;
    const char *c = st_good;
    expect_st_error(edited(c, "\"BF16\"", "\"BF17\""), 52, "unknown dtype 'BF17'");
    expect_st_error(edited(c, "\"dtype\": \"BF16\", ", ""), 52, "dtype missing");
    expect_st_error(edited(c, "\"shape\": [4]", "\"shape\": [-4]"), 52, "shape holds");
    expect_st_error(edited(c, "\"shape\": [4]", "\"shape\": [4.5]"), 52, "shape holds");
    expect_st_error(edited(c, "\"shape\": [4]", "\"shape\": 4"), 52, "shape missing");
    expect_st_error(edited(c, "\"shape\": [4]", "\"shape\": [1,1,1,1,1,1,1,1,4]"), 52,
                    "over 8 dimensions");
    expect_st_error(edited(c, "\"shape\": [4]", "\"shape\": [4294967296, 4294967296, 4]"), 52,
                    "overflows");
    expect_st_error(edited(c, "\"shape\": [4]", "\"shape\": [4294967296, 2147483648]"), 52,
                    "size overflows");
    expect_st_error(edited(c, "[0, 8]", "[8, 0]"), 52, "data_offsets must be");
    expect_st_error(edited(c, "[0, 8]", "[0]"), 52, "data_offsets must be");
    expect_st_error(edited(c, "[0, 8]", "[0, \"8\"]"), 52, "data_offsets must be");
    expect_st_error(edited(c, "[0, 8]", "[0, 9]"), 52, "span 9 bytes");
    expect_st_error(edited(c, "[44, 52]", "[52, 60]"), 52, "data ends at byte 60");
    expect_st_error(edited(c, "[44, 52]", "[44, 18446744073709551616]"), 52,
                    "data_offsets must be");
    expect_st_error(edited(c, "[8, 40]", "[4, 36]"), 52, "overlap");
    expect_st_error(edited(c, "{\"format\": \"pt\"}", "[1]"), 52, "__metadata__");
    expect_st_error(edited(c, "{\"dtype\": \"I64\"", "[{\"dtype\": \"I64\""), 52, "JSON");
    expect_st_error("[]", 0, "not a JSON object");
    expect_st_error("{\"a\": 1}", 0, "tensor 'a': not an object");
    expect_st_error("{} x", 0, "bytes after the header");
    expect_st_error("{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}} ", 3,
                    "data ends at byte 4");

    // Forged lengths.
    uint8_t small[16] = {0};
    seen s;
    garlic_error err = {0};
    small[0] = 9; // 9 bytes of header in a 16-byte file
    assert_int_equal(st_parse(small, 16, &s, &err), GARLIC_EFORMAT);
    assert_non_null(strstr(err.message, "exceeds the file"));
    memset(small, 0xff, 8);
    assert_int_equal(st_parse(small, 16, &s, &err), GARLIC_EFORMAT);
    memset(small, 0, 8);
    small[5] = 1; // 2^40 bytes of header
    assert_int_equal(
        hf_safetensors_parse(small, 8, UINT64_MAX, "big.safetensors", collect, &s, &err),
        GARLIC_EFORMAT);
    assert_non_null(strstr(err.message, "exceeds the limit"));
    small[0] = 0x20, memset(small + 1, 0, 7);
    assert_int_equal(hf_safetensors_parse(small, 16, 1000, "t.safetensors", collect, &s, &err),
                     GARLIC_EFORMAT);
    assert_non_null(strstr(err.message, "truncated"));
    assert_int_equal(st_parse(small, 5, &s, &err), GARLIC_EFORMAT);
    assert_non_null(strstr(err.message, "too short"));

    // Every truncation of a good file fails cleanly (the data section shrinks with it).
    size_t size;
    uint8_t *buf = st_image(st_good, 2, 52, &size);
    for (size_t n = 0; n < size; n++)
        if (st_parse(buf, n, &s, &err) != GARLIC_EFORMAT)
            fail_msg("truncation at %zu accepted", n);
    // Random byte flips: never a crash, and a success stays inside its data section.
    test_rng rng;
    test_rng_seed(&rng, 7);
    uint8_t *flipped = malloc(size);
    assert_non_null(flipped);
    for (int i = 0; i < 3000; i++) {
        memcpy(flipped, buf, size);
        int n_flips = 1 + (int)(test_rng_u64(&rng) % 4);
        for (int f = 0; f < n_flips; f++)
            flipped[test_rng_u64(&rng) % size] ^= (uint8_t)(1 + test_rng_u64(&rng) % 255);
        if (st_parse(flipped, size, &s, &err) != GARLIC_OK)
            continue;
        uint64_t header = 0;
        for (int b = 7; b >= 0; b--)
            header = header << 8 | flipped[b];
        assert_true(s.tensor_bytes <= size - 8 - header);
        for (size_t t = 0; t < s.n_tensors && t < 8; t++)
            assert_true(s.tensors[t].end <= size - 8 - header);
    }
    free(flipped);
    free(buf);
}

// A callback's failure stops the parse and is what it returns.
static int refuse_scales(void *user, const hf_tensor *t, garlic_error *err)
{
    (void)user;
    return t->scales ? garlic_error_set(err, GARLIC_EUNSUPPORTED, "no scales: %s", t->name) : 0;
}

static void test_safetensors_files(void **state)
{
    (void)state;
    const char *dir = make_dir("files");
    write_shard(dir, "good.safetensors", st_good, 52);
    char path[1024];
    snprintf(path, sizeof path, "%s/good.safetensors", dir);
    seen s = {0};
    uint64_t file_size = 0;
    garlic_error err = {0};
    assert_int_equal(hf_safetensors_read(path, collect, &s, &file_size, &err), 0);
    assert_int_equal(s.n_tensors, 5);
    assert_int_equal(file_size, 8 + strlen(st_good) + 52);
    assert_int_equal(hf_safetensors_read(path, refuse_scales, NULL, &file_size, &err),
                     GARLIC_EUNSUPPORTED);
    assert_string_equal(err.message, "no scales: layers.0.q_proj.weight_scale_inv");
    // The length is checked against the file before the header is read.
    write_file(dir, "long.safetensors", "\x10\0\0\0\0\0\0\0{}", 10);
    snprintf(path, sizeof path, "%s/long.safetensors", dir);
    assert_int_equal(hf_safetensors_read(path, collect, &s, &file_size, &err), GARLIC_EFORMAT);
    assert_non_null(strstr(err.message, "long.safetensors: header length 16 exceeds the file"));
    write_file(dir, "short.safetensors", "\x02\0\0", 3);
    snprintf(path, sizeof path, "%s/short.safetensors", dir);
    assert_int_equal(hf_safetensors_read(path, collect, &s, &file_size, &err), GARLIC_EFORMAT);
    assert_non_null(strstr(err.message, "too short"));
    snprintf(path, sizeof path, "%s/none.safetensors", dir);
    assert_int_equal(hf_safetensors_read(path, collect, &s, &file_size, &err), GARLIC_EIO);
    assert_non_null(strstr(err.message, "none.safetensors"));
}

// Every allocation failing in turn: a clean GARLIC_ENOMEM (or success), nothing leaked.
static void test_alloc_failures(void **state)
{
    (void)state;
    const char *dir = make_dir("alloc");
    write_text(dir, "config.json", qwen3_14b_fp8);
    write_shard(dir, "a.safetensors", st_good, 52);
    write_shard(dir, "b.safetensors", shard_a, 12800);
    char config[1024], shard[1024];
    snprintf(config, sizeof config, "%s/config.json", dir);
    snprintf(shard, sizeof shard, "%s/a.safetensors", dir);
    for (int pass = 0; pass < 2; pass++) { // without and with an index
        bool done = false;
        for (long n = 0; n < 200 && !done; n++) {
            hf_config cfg;
            hf_shards s;
            seen seen_tensors = {0};
            uint64_t size;
            garlic_error err = {0};
            garlic_alloc_fail_after(n);
            int rc = hf_config_read(config, &cfg, &err);
            if (!rc)
                rc = hf_shards_list(dir, &s, &err);
            else
                s = (hf_shards){0};
            if (!rc)
                rc = hf_safetensors_read(shard, collect, &seen_tensors, &size, &err);
            garlic_alloc_fail_reset();
            if (rc == GARLIC_OK)
                done = s.n == 2;
            else if (rc != GARLIC_ENOMEM)
                fail_msg("failing allocation %ld: %d %s", n, rc, err.message);
            hf_shards_deinit(&s);
        }
        assert_true(done);
        write_text(dir, "model.safetensors.index.json",
                   "{\"weight_map\": {\"x\": \"a.safetensors\", \"y\": \"b.safetensors\"}}");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_reference),
        cmocka_unit_test(test_config_defaults),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_config_read),
        cmocka_unit_test(test_shards),
        cmocka_unit_test(test_safetensors_good),
        cmocka_unit_test(test_safetensors_hostile),
        cmocka_unit_test(test_safetensors_files),
        cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
