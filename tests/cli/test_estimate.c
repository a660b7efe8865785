// SPDX-License-Identifier: MIT
// `garlic estimate` end to end: the worked example of ../shared/reference/memory in text and
// JSON, a synthesized GGUF whose weights line is its file size, and the exit statuses: 1 with
// a message naming the file and field for bad models, 2 for usage errors.
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "model/synth.h"
#include "tensor/types.h"
#include "util.h"

static cJSON *estimate_json(const char *args)
{
    char *out, *err;
    int rc = test_run(&out, &err, "%s estimate --json %s", test_garlic(), args);
    if (rc != 0)
        fail_msg("estimate --json %s: exit %d: %s", args, rc, err);
    cJSON *root = cJSON_Parse(out);
    if (!root)
        fail_msg("estimate --json %s: not JSON: %.200s", args, out);
    free(out), free(err);
    return root;
}

static double num(const cJSON *o, const char *path)
{
    char key[64];
    const char *dot = strchr(path, '.');
    if (dot) {
        snprintf(key, sizeof key, "%.*s", (int)(dot - path), path);
        return num(cJSON_GetObjectItemCaseSensitive(o, key), dot + 1);
    }
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, path);
    if (!cJSON_IsNumber(v))
        fail_msg("no number '%s'", path);
    return v->valuedouble;
}

static void test_reference_text(void **state)
{
    (void)state;
    skip_without_shared();
    char *out, *err;
    const char *cfg = test_shared_path("reference/memory/qwen3-14b-fp8/config.json");
    assert_int_equal(test_run(&out, &err,
                              "%s estimate '%s' --ctx 32768 --kv-type fp8 "
                              "--budget 28.8GB",
                              test_garlic(), cfg),
                     0);
    const char *expect[] = {"Qwen3ForCausalLM", "14,768,307,200",
                            "14,767,882,240",   "16,327,782,400",
                            "13,212,057,600",   "F32 scales",
                            "3,225,600",        "per token                      81,920",
                            "2,684,354,560",    "assumed: from config.json",
                            "128x128 block",    "Fixed overhead",
                            "Budget",           "max --parallel at ctx 32768",
                            "sizing rule"};
    for (size_t i = 0; i < sizeof expect / sizeof expect[0]; i++)
        if (!strstr(out, expect[i]))
            fail_msg("missing '%s' in:\n%s", expect[i], out);
    free(out), free(err);
}

static void test_reference_json(void **state)
{
    (void)state;
    skip_without_shared();
    char args[1024];
    snprintf(args, sizeof args,
             "'%s' --ctx 32768 --parallel 1 --kv-type f16 --budget 28.8GB --threads 4",
             test_shared_path("reference/memory/qwen3-14b-fp8"));
    cJSON *root = estimate_json(args);
    assert_string_equal(cJSON_GetObjectItem(root, "source")->valuestring, "config.json");
    assert_true(num(root, "weights.parameters") == 14768307200.0);
    assert_true(num(root, "weights.parameters_without_norms") == 14767882240.0);
    assert_true(num(root, "weights.bytes") == 16327782400.0);
    assert_true(num(root, "kv_cache.bytes_per_token") == 163840);
    assert_true(num(root, "kv_cache.data_bytes") == 2 * 2684354560.0);
    assert_true(num(root, "kv_cache.blocks") == 2048);
    assert_true(num(root, "compute.n_threads") == 4);
    assert_true(num(root, "compute.max_batch") == 512);
    assert_true(num(root, "budget.bytes") == 28800000000.0);
    double total = num(root, "weights.bytes") + num(root, "kv_cache.bytes") +
        num(root, "compute.bytes") + num(root, "overhead_bytes");
    assert_true(num(root, "total_bytes") == total);
    assert_true(num(root, "budget.max_parallel") == 2);
    const cJSON *types = cJSON_GetObjectItem(cJSON_GetObjectItem(root, "weights"), "types");
    assert_int_equal(cJSON_GetArraySize(types), 3);
    cJSON_Delete(root);
}

static void test_gguf(void **state)
{
    (void)state;
    model_synth_params p;
    model_synth_params_default(&p);
    p.type = TENSOR_TYPE_Q4_K;
    const char *path = test_temp_path("q4k.gguf");
    garlic_error e;
    if (model_synth_write(&p, path, &e))
        fail_msg("%s", e.message);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    char args[1024];
    snprintf(args, sizeof args, "'%s' --ctx 100 --parallel 3 --kv-type q8_0", path);
    cJSON *root = estimate_json(args);
    assert_string_equal(cJSON_GetObjectItem(root, "source")->valuestring, "gguf");
    assert_true(num(root, "weights.bytes") == (double)sb.st_size);
    assert_true(num(root, "kv_cache.blocks") == 3 * 7);
    assert_true(num(root, "hparams.n_layer") == 2);
    // No layer has a sliding window: every byte per token is a full layer's, no window blocks.
    assert_true(num(root, "kv_cache.full_bytes_per_token") ==
                num(root, "kv_cache.bytes_per_token"));
    assert_true(num(root, "kv_cache.window_bytes_per_token") == 0);
    assert_true(num(root, "kv_cache.window_layers") == 0);
    assert_true(num(root, "kv_cache.window_blocks") == 0);
    assert_null(cJSON_GetObjectItem(root, "budget"));
    cJSON_Delete(root);
    char *out;
    assert_int_equal(test_run(&out, NULL, "%s estimate '%s'", test_garlic(), path), 0);
    assert_non_null(strstr(out, "header and metadata (mapped)"));
    assert_non_null(strstr(out, "Q4_K"));
    assert_null(strstr(out, "window")); // as before windows existed
    free(out);
}

// Latent attention (deepseek2): the KV cache is K rows of latent + RoPE key per layer and
// position, 2 layers x (64 + 32) x 2 bytes at F16, and the text says there are no V rows.
static void test_gguf_mla(void **state)
{
    (void)state;
    model_synth_params p;
    model_synth_params_default(&p);
    p.arch = "deepseek2", p.n_head = 4, p.head_dim = 64, p.rope_dims = 32, p.kv_lora_rank = 64;
    p.n_dense_lead = 1, p.n_expert = 4, p.n_expert_used = 2, p.ffn_exp = 64;
    const char *path = test_temp_path("mla.gguf");
    garlic_error e;
    if (model_synth_write(&p, path, &e))
        fail_msg("%s", e.message);
    char args[1024];
    snprintf(args, sizeof args, "'%s' --ctx 100", path);
    cJSON *root = estimate_json(args);
    assert_true(num(root, "kv_cache.bytes_per_token") == 2 * 96 * 2);
    assert_true(num(root, "hparams.kv_lora_rank") == 64);
    cJSON_Delete(root);
    char *out;
    assert_int_equal(test_run(&out, NULL, "%s estimate '%s'", test_garlic(), path), 0);
    assert_non_null(strstr(out, "K rows of latent 64 + RoPE 32, no V rows"));
    free(out);
}

static void expect_status(int status, const char *needle, const char *fmt, const char *arg)
{
    char cmd[2048], *out, *err;
    snprintf(cmd, sizeof cmd, fmt, arg);
    int rc = test_run(&out, &err, "%s estimate %s", test_garlic(), cmd);
    if (rc != status || !strstr(err, needle))
        fail_msg("estimate %s: exit %d (expected %d), stderr: %s", cmd, rc, status, err);
    free(out), free(err);
}

static void test_errors(void **state)
{
    (void)state;
    const char *dir = test_temp_path("hf");
    mkdir(dir, 0755);
    char cfg[1024];
    snprintf(cfg, sizeof cfg, "%s/config.json", dir);
    const char *text = "{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 64, "
                       "\"num_attention_heads\": 4, \"intermediate_size\": 128, "
                       "\"vocab_size\": 100}";
    assert_int_equal(test_write_file(cfg, text, strlen(text)), 0);
    expect_status(1, "config.json: num_hidden_layers is missing", "'%s'", dir);
    char st[1024];
    snprintf(st, sizeof st, "%s/model.safetensors", dir);
    assert_int_equal(test_write_file(st, "\x10\0\0\0\0\0\0\0{}", 10), 0);
    text = "{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 64, "
           "\"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"intermediate_size\": 128, "
           "\"vocab_size\": 100}";
    assert_int_equal(test_write_file(cfg, text, strlen(text)), 0);
    expect_status(1, "model.safetensors: header length 16 exceeds the file", "'%s'", dir);
    expect_status(1, "nowhere.gguf", "'%s'", test_temp_path("nowhere.gguf"));
    expect_status(2, "usage", "%s", "");
    expect_status(2, "unknown option '--frobnicate'", "x.gguf --frobnicate%s", "");
    expect_status(2, "--budget: '12XB'", "x.gguf --budget 12XB%s", "");
    expect_status(2, "--kv-type: 'q4'", "x.gguf --kv-type q4%s", "");
    expect_status(2, "--ctx", "x.gguf --ctx 0%s", "");
    expect_status(2, "--parallel", "x.gguf --parallel%s", "");
}

// --device: the GPU's share (here with no device: --gpu-memory and --gpu-layers given), and
// the refusals.
static void test_device(void **state)
{
    (void)state;
    model_synth_params p;
    model_synth_params_default(&p);
    p.n_layer = 4;
    char path[600];
    snprintf(path, sizeof path, "%s", test_temp_path("gpu.gguf"));
    garlic_error e;
    assert_int_equal(model_synth_write(&p, path, &e), GARLIC_OK);
    char args[800];
    snprintf(args, sizeof args, "'%s' --device cuda --gpu-layers 2 --gpu-overhead 1MB", path);
    cJSON *root = estimate_json(args);
    const cJSON *gpu = cJSON_GetObjectItemCaseSensitive(root, "gpu");
    assert_non_null(gpu);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(gpu, "gpu_layers")->valuedouble, 2);
    assert_false(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(gpu, "output")));
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(gpu, "overhead_bytes")->valuedouble, 1000000);
    double total = cJSON_GetObjectItemCaseSensitive(root, "total_bytes")->valuedouble;
    double on_gpu = cJSON_GetObjectItemCaseSensitive(gpu, "weight_bytes")->valuedouble;
    double host = cJSON_GetObjectItemCaseSensitive(gpu, "host_weight_bytes")->valuedouble;
    double weights = cJSON_GetObjectItemCaseSensitive(
                         cJSON_GetObjectItemCaseSensitive(root, "weights"), "bytes")
                         ->valuedouble;
    assert_true(on_gpu > 0 && on_gpu < weights && total > 0);
    assert_true(on_gpu + host == weights);
    cJSON_Delete(root);
    // auto with 8 GB: every layer and the output.
    snprintf(args, sizeof args, "'%s' --gpu-memory 8GB", path);
    root = estimate_json(args);
    gpu = cJSON_GetObjectItemCaseSensitive(root, "gpu");
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(gpu, "gpu_layers")->valuedouble, 4);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(gpu, "output")));
    cJSON_Delete(root);
    expect_status(1, "--gpu-layers auto needs the GPU's memory", "'%s' --device cuda", path);
    expect_status(1, "--device: unknown device \"tpu\"", "'%s' --device tpu", path);
    expect_status(1, "--gpu-layers: \"x\" is not a layer count",
                  "'%s' --gpu-layers x --gpu-memory 1GB", path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_text), cmocka_unit_test(test_reference_json),
        cmocka_unit_test(test_gguf),           cmocka_unit_test(test_gguf_mla),
        cmocka_unit_test(test_errors),         cmocka_unit_test(test_device),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
