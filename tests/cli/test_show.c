// SPDX-License-Identifier: MIT
// `garlic show` end to end: runs the binary on synthesized and shared files, checks the
// text and JSON output, and checks that damaged files give exit status 1 and a message
// naming the file, while usage errors give 2.
#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/synth.h"
#include "tensor/types.h"
#include "util.h"

static const char *make_model(const char *name, uint32_t type)
{
    model_synth_params p;
    model_synth_params_default(&p);
    p.type = type;
    const char *path = test_temp_path(name);
    garlic_error err;
    if (model_synth_write(&p, path, &err))
        fail_msg("%s", err.message);
    return path;
}

static cJSON *show_json(const char *path, const char *extra)
{
    char *out, *err;
    int rc = test_run(&out, &err, "%s show --json %s '%s'", test_garlic(), extra, path);
    if (rc != 0)
        fail_msg("show --json %s: exit %d: %s", path, rc, err);
    cJSON *root = cJSON_Parse(out);
    if (!root)
        fail_msg("show --json %s: not JSON: %.200s", path, out);
    free(out), free(err);
    return root;
}

static double num(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v))
        fail_msg("no number '%s'", key);
    return v->valuedouble;
}

static void test_text_output(void **state)
{
    (void)state;
    const char *path = make_model("q8.gguf", TENSOR_TYPE_Q8_0);
    char *out, *err;
    assert_int_equal(test_run(&out, &err, "%s show '%s'", test_garlic(), path), 0);
    const char *expect[] = {"architecture           llama",      "context length         512",
                            "layers                 2",          "KV heads               2",
                            "head dim (K)           32",         "Q8_0 \u00d716, F32 \u00d75",
                            "vocabulary             512 tokens", "bos 1 '<s>'",
                            "chat template          no",         "per token              512 B",
                            "at 512                 256.00 KiB"};
    for (size_t i = 0; i < sizeof expect / sizeof expect[0]; i++)
        if (!strstr(out, expect[i]))
            fail_msg("missing '%s' in:\n%s", expect[i], out);
    free(out), free(err);
    assert_int_equal(test_run(&out, NULL, "%s show --tensors '%s'", test_garlic(), path), 0);
    assert_non_null(strstr(out, "blk.1.ffn_down.weight"));
    assert_non_null(strstr(out, "768 x 256"));
    free(out);
}

// A DeepSeek-V3-shaped file: the latent attention, what its cache holds (K rows only: 3
// layers x (64 + 32) x 2 bytes a position), the shared expert's width from its count, and
// the routing, in text and JSON.
static void test_deepseek(void **state)
{
    (void)state;
    model_synth_params p;
    model_synth_params_default(&p);
    p.arch = "deepseek2", p.dim = 128, p.n_layer = 3, p.n_head = 4, p.head_dim = 64;
    p.rope_dims = 32, p.v_head_dim = 32, p.q_lora_rank = 64, p.kv_lora_rank = 64, p.ffn = 256;
    p.n_dense_lead = 1, p.n_expert = 16, p.n_expert_used = 4, p.ffn_exp = 32;
    p.n_shared_experts = 1, p.n_expert_groups = 4, p.n_group_used = 2, p.gating_func = 2;
    p.expert_bias = true, p.expert_norm = true, p.expert_scale = 2.5f;
    p.rope_yarn = 4, p.rope_orig_ctx = 128, p.yarn_log_mul = 0.1f;
    const char *path = test_temp_path("ds.gguf");
    garlic_error e;
    if (model_synth_write(&p, path, &e))
        fail_msg("%s", e.message);
    char *out, *err;
    assert_int_equal(test_run(&out, &err, "%s show '%s'", test_garlic(), path), 0);
    const char *expect[] = {
        "KV heads               1",
        "head dim (K)           96",
        "head dim (V)           64",
        "scaling yarn x4 (original context 128), YaRN log multiplier 0.1",
        "latent attention       latent 64 + RoPE key 32 cached per position (no V rows)",
        "heads' query, value    64, 32; queries of rank 64",
        "16, 4 used per token (4 groups, 2 used)",
        "shared expert          32 wide, 1 shared experts",
        "expert routing         sigmoid, exp_probs_b bias, weights normed, weights x2.5",
        "leading dense layers   1",
        "per token              576 B",
    };
    for (size_t i = 0; i < sizeof expect / sizeof expect[0]; i++)
        if (!strstr(out, expect[i]))
            fail_msg("missing '%s' in:\n%s", expect[i], out);
    free(out), free(err);
    cJSON *root = show_json(path, "");
    const cJSON *mla = cJSON_GetObjectItem(root, "latent_attention");
    assert_true(num(mla, "q_lora_rank") == 64 && num(mla, "kv_lora_rank") == 64);
    assert_true(num(mla, "key_length_mla") == 64 && num(mla, "value_length_mla") == 32);
    assert_true(num(root, "kv_bytes_per_token_f16") == 576);
    cJSON_Delete(root);
}

static void test_json_output(void **state)
{
    (void)state;
    const char *path = make_model("f16.gguf", TENSOR_TYPE_F16);
    cJSON *root = show_json(path, "--tensors");
    assert_string_equal(cJSON_GetObjectItem(root, "architecture")->valuestring, "llama");
    assert_true(num(root, "block_count") == 2);
    assert_true(num(root, "head_count") == 8);
    assert_true(num(root, "kv_bytes_per_token_f16") == 512);
    assert_true(num(root, "kv_bytes_at_context_f16") == 512 * 512);
    assert_true(num(root, "kv_full_bytes_per_token_f16") == 512); // no sliding window
    assert_true(num(root, "kv_window_bytes_per_token_f16") == 0);
    assert_true(num(root, "kv_window_layers") == 0 && num(root, "kv_window") == 0);
    const cJSON *types = cJSON_GetObjectItem(root, "weight_types");
    assert_true(num(types, "F16") == 16 && num(types, "F32") == 5);
    double bpw = num(root, "bits_per_weight");
    assert_true(bpw > 15.9 && bpw < 16.1);
    const cJSON *tensors = cJSON_GetObjectItem(root, "tensors");
    assert_int_equal(cJSON_GetArraySize(tensors), 21);
    const cJSON *tok = cJSON_GetObjectItem(root, "tokenizer");
    assert_true(num(tok, "vocab_size") == 512);
    cJSON_Delete(root);
}

// Sliding windows: which layers have one (gemma3: every sixth layer is global; phi3: all),
// the sliding layers' RoPE base, LongRoPE, the soft cap; in text and JSON.
static void test_sliding_windows(void **state)
{
    (void)state;
    model_synth_params p;
    model_synth_params_default(&p);
    p.arch = "gemma3", p.n_layer = 13, p.sliding_window = 16, p.final_softcap = 30, p.tied = true;
    const char *path = test_temp_path("gemma3.gguf");
    garlic_error e;
    if (model_synth_write(&p, path, &e))
        fail_msg("%s", e.message);
    char *out, *err;
    assert_int_equal(test_run(&out, &err, "%s show '%s'", test_garlic(), path), 0);
    const char *expect[] = {
        "sliding window         16 tokens, 11 of 13 layers (global: 5, 11), RoPE base 10000",
        "final logit soft cap   30"};
    for (size_t i = 0; i < sizeof expect / sizeof expect[0]; i++)
        if (!strstr(out, expect[i]))
            fail_msg("missing '%s' in:\n%s", expect[i], out);
    free(out), free(err);
    cJSON *root = show_json(path, "");
    assert_true(num(root, "sliding_window") == 16 && num(root, "sliding_window_layers") == 11);
    assert_true(num(cJSON_GetObjectItem(root, "rope"), "freq_base_swa") == 10000);
    cJSON_Delete(root);
    model_synth_params_default(&p);
    p.arch = "phi3", p.sliding_window = 64, p.context = 4096, p.rope_orig_ctx = 1024;
    p.longrope = true;
    path = test_temp_path("phi3.gguf");
    if (model_synth_write(&p, path, &e))
        fail_msg("%s", e.message);
    assert_int_equal(test_run(&out, &err, "%s show '%s'", test_garlic(), path), 0);
    if (!strstr(out, "sliding window         64 tokens, all 2 layers") ||
        !strstr(out, "(original context 1024), LongRoPE factors, attention factor 1.09"))
        fail_msg("phi3:\n%s", out);
    free(out), free(err);
}

// gpt-oss: every other layer slides (layer 0 first), and the sinks are shown.
static void test_gpt_oss(void **state)
{
    (void)state;
    model_synth_params p;
    model_synth_params_default(&p);
    p.arch = "gpt-oss", p.n_layer = 5, p.n_expert = 4, p.n_expert_used = 2, p.sliding_window = 16;
    char path[1024];
    snprintf(path, sizeof path, "%s", test_temp_path("gpt-oss.gguf"));
    garlic_error e;
    if (model_synth_write(&p, path, &e))
        fail_msg("%s", e.message);
    char *out, *err;
    assert_int_equal(test_run(&out, &err, "%s show '%s'", test_garlic(), path), 0);
    const char *expect[] = {"architecture           gpt-oss",
                            "sliding window         16 tokens, 3 of 5 layers (global: 1, 3)",
                            "attention sinks        yes"};
    for (size_t i = 0; i < sizeof expect / sizeof expect[0]; i++)
        if (!strstr(out, expect[i]))
            fail_msg("missing '%s' in:\n%s", expect[i], out);
    free(out), free(err);
    cJSON *root = show_json(path, "");
    assert_true(num(root, "sliding_window") == 16 && num(root, "sliding_window_layers") == 3);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(root, "attention_sinks")));
    cJSON_Delete(root);
    const char *plain = make_model("plain.gguf", TENSOR_TYPE_F32);
    snprintf(path, sizeof path, "%s", plain);
    assert_int_equal(test_run(&out, &err, "%s show '%s'", test_garlic(), path), 0);
    assert_null(strstr(out, "sinks"));
    free(out), free(err);
}

// Facts about the shared files stated in their READMEs.
static void test_shared_models(void **state)
{
    (void)state;
    skip_without_shared();
    char path[4096];
    snprintf(path, sizeof path, "%s", test_shared_path("models/stories260K.gguf"));
    cJSON *root = show_json(path, "");
    assert_true(num(root, "block_count") == 5 && num(root, "embedding_length") == 64);
    assert_true(num(root, "head_count") == 8 && num(root, "head_count_kv") == 4);
    assert_true(num(root, "context_length") == 2048);
    assert_true(num(root, "kv_bytes_per_token_f16") == 2 * 5 * 4 * 8 * 2);
    assert_true(num(cJSON_GetObjectItem(root, "tokenizer"), "vocab_size") == 512);
    cJSON_Delete(root);
    snprintf(path, sizeof path, "%s", test_shared_path("models/synth-llama-a-Q4_K_M.gguf"));
    root = show_json(path, "");
    const cJSON *types = cJSON_GetObjectItem(root, "weight_types");
    assert_non_null(cJSON_GetObjectItem(types, "Q4_K"));
    assert_non_null(cJSON_GetObjectItem(types, "Q6_K"));
    cJSON_Delete(root);
    snprintf(path, sizeof path, "%s", test_shared_path("models/synth-llama-ropefreqs-a-F32.gguf"));
    root = show_json(path, "");
    assert_true(
        cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(root, "rope"), "freqs_tensor")));
    cJSON_Delete(root);
}

// show succeeds on every .gguf under shared/models and shared/tokenizer.
static void test_every_shared_file(void **state)
{
    (void)state;
    skip_without_shared();
    const char *dirs[2] = {"models", "tokenizer"};
    int count = 0;
    for (int d = 0; d < 2; d++) {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s", test_shared_path(dirs[d]));
        DIR *dh = opendir(dir);
        assert_non_null(dh);
        struct dirent *e;
        while ((e = readdir(dh))) {
            size_t n = strlen(e->d_name);
            if (n < 5 || strcmp(e->d_name + n - 5, ".gguf") != 0)
                continue;
            char *out, *err;
            int rc = test_run(&out, &err, "%s show '%s/%s'", test_garlic(), dir, e->d_name);
            if (rc != 0 || !strstr(out, "vocabulary"))
                fail_msg("show %s: exit %d: %s", e->d_name, rc, err);
            free(out), free(err);
            count++;
        }
        closedir(dh);
    }
    assert_true(count >= 30);
}

static void expect_failure(const char *temp_path, const char *fragment)
{
    char path[1024], *out, *err;
    snprintf(path, sizeof path, "%s", temp_path); // test_run reuses the temp-path buffer
    int rc = test_run(&out, &err, "%s show '%s'", test_garlic(), path);
    if (rc != 1 || !strstr(err, path) || !strstr(err, fragment))
        fail_msg("show %s: exit %d, stderr '%s' (wanted '%s')", path, rc, err, fragment);
    free(out), free(err);
}

static void test_damaged_files(void **state)
{
    (void)state;
    const char *good = make_model("good.gguf", TENSOR_TYPE_Q4_0);
    size_t size;
    char *image = test_read_file(good, &size);
    const char *bad = test_temp_path("damaged.gguf");
    test_write_file(bad, image, size / 2);
    expect_failure(bad, "past the end of the file");
    test_write_file(bad, image, 100);
    expect_failure(bad, "more than the file's 100 bytes");
    test_write_file(bad, image, 2000);
    expect_failure(bad, "offset");
    memset(image + 16, 0xff, 8); // n_kv forged huge
    test_write_file(bad, image, size);
    expect_failure(bad, "more than the file");
    test_write_file(bad, "GGUF", 4);
    expect_failure(bad, "too small");
    test_write_file(bad, "not a model at all, just some text", 34);
    expect_failure(bad, "not a GGUF file");
    expect_failure(test_temp_path("missing.gguf"), "cannot open");
    free(image);
    char *out, *err;
    assert_int_equal(test_run(&out, &err, "%s show", test_garlic()), 2);
    free(out), free(err);
    assert_int_equal(test_run(&out, &err, "%s show --bogus '%s'", test_garlic(), good), 2);
    assert_non_null(strstr(err, "--bogus"));
    free(out), free(err);
    assert_int_equal(test_run(&out, &err, "%s frobnicate", test_garlic()), 2);
    free(out), free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_output),       cmocka_unit_test(test_json_output),
        cmocka_unit_test(test_deepseek),          cmocka_unit_test(test_shared_models),
        cmocka_unit_test(test_every_shared_file), cmocka_unit_test(test_damaged_files),
        cmocka_unit_test(test_sliding_windows),   cmocka_unit_test(test_gpt_oss),
    };
    return cmocka_run_group_tests_name("show", tests, NULL, NULL);
}
