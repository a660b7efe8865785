// SPDX-License-Identifier: MIT
// The model synthesizer and the model description: shapes, metadata, determinism, the
// built-in vocabulary, type fallbacks, weight statistics, and model_info on the result.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf.h"
#include "model/info.h"
#include "model/synth.h"
#include "tensor/types.h"
#include "util.h"

static gguf_file *synth_open(const model_synth_params *p, const char *name)
{
    garlic_error err = {0};
    const char *path = test_temp_path(name);
    if (model_synth_write(p, path, &err) != GARLIC_OK)
        fail_msg("model_synth_write: %s", err.message);
    gguf_file *f = gguf_open(path, &err);
    if (!f)
        fail_msg("gguf_open: %s", err.message);
    return f;
}

static void expect_shape(const gguf_file *f, const char *name, uint64_t ne0, uint64_t ne1)
{
    const gguf_tensor *t = gguf_find_tensor(f, name);
    if (!t)
        fail_msg("missing tensor %s", name);
    assert_int_equal(t->ne[0], ne0);
    assert_int_equal(t->ne[1], ne1);
}

static void test_llama_shape_a(void **state)
{
    (void)state;
    model_synth_params p;
    model_synth_params_default(&p);
    gguf_file *f = synth_open(&p, "a.gguf");
    assert_int_equal(f->n_tensors, 3 + 2 * 9);
    expect_shape(f, "token_embd.weight", 256, 512);
    expect_shape(f, "output.weight", 256, 512);
    expect_shape(f, "output_norm.weight", 256, 1);
    expect_shape(f, "blk.1.attn_q.weight", 256, 256);
    expect_shape(f, "blk.1.attn_k.weight", 256, 64);
    expect_shape(f, "blk.1.attn_v.weight", 256, 64);
    expect_shape(f, "blk.0.attn_output.weight", 256, 256);
    expect_shape(f, "blk.0.ffn_gate.weight", 256, 768);
    expect_shape(f, "blk.0.ffn_down.weight", 768, 256);
    model_info info;
    garlic_error err;
    assert_int_equal(model_info_read(f, &info, &err), 0);
    assert_string_equal(info.arch, "llama");
    assert_int_equal(info.context_length, 512);
    assert_int_equal(info.embedding_length, 256);
    assert_int_equal(info.block_count, 2);
    assert_int_equal(info.head_count, 8);
    assert_int_equal(info.head_count_kv, 2);
    assert_int_equal(info.key_length, 32);
    assert_int_equal(info.vocab_size, 512);
    assert_string_equal(info.tokenizer_model, "llama");
    assert_int_equal(info.special[0].id, 1); // bos
    // 2 x layers x kv_heads x head_dim x 2 bytes
    assert_int_equal(info.kv_bytes_per_token_f16, 2 * 2 * 2 * 32 * 2);
    uint64_t params = 2 * 256 * 512 + 256 +
        2 * (2 * 256 + 2 * 256 * 256 + 2 * 256 * 64 + 3 * 256 * 768);
    assert_int_equal(info.n_params, params);
    assert_int_equal(info.weight_bytes, params * 4);
    assert_int_equal(info.type_tensors[TENSOR_TYPE_F32], 21);

    // Matrices are N(0, 0.02), norms 1 + N(0, 0.1).
    const gguf_tensor *t = gguf_find_tensor(f, "blk.0.ffn_up.weight");
    const float *w = t->data;
    double sum = 0, sq = 0;
    for (uint64_t i = 0; i < t->n_elements; i++)
        sum += w[i], sq += (double)w[i] * w[i];
    double mean = sum / (double)t->n_elements, sd = sqrt(sq / (double)t->n_elements - mean * mean);
    assert_true(fabs(mean) < 1e-3 && fabs(sd - 0.02) < 1e-3);
    t = gguf_find_tensor(f, "blk.0.ffn_norm.weight");
    w = t->data;
    sum = 0;
    for (uint64_t i = 0; i < t->n_elements; i++)
        sum += w[i];
    assert_true(fabs(sum / 256 - 1.0) < 0.03);
    gguf_close(f);
}

static void test_architectures(void **state)
{
    (void)state;
    model_synth_params p;
    model_synth_params_default(&p);
    p.arch = "qwen2", p.tied = true, p.head_dim = 64, p.n_head = 4;
    gguf_file *f = synth_open(&p, "qwen2.gguf");
    assert_null(gguf_find_tensor(f, "output.weight"));
    expect_shape(f, "blk.0.attn_q.bias", 256, 1);
    expect_shape(f, "blk.1.attn_k.bias", 128, 1);
    model_info info;
    assert_int_equal(model_info_read(f, &info, NULL), 0);
    assert_int_equal(info.key_length, 64);
    gguf_close(f);
    model_synth_params_default(&p);
    p.arch = "qwen3";
    f = synth_open(&p, "qwen3.gguf");
    expect_shape(f, "blk.0.attn_q_norm.weight", 32, 1);
    expect_shape(f, "blk.1.attn_k_norm.weight", 32, 1);
    gguf_close(f);
}

// gemma3 and phi3 carry the tensors and keys llama.cpp's converter writes for them.
static void test_gemma3_phi3(void **state)
{
    (void)state;
    model_synth_params p;
    model_synth_params_default(&p);
    p.arch = "gemma3", p.n_layer = 7, p.n_head = 4, p.head_dim = 64, p.tied = true;
    p.sliding_window = 8, p.rope_linear = 8, p.final_softcap = 30, p.rope_theta_swa = 20000;
    gguf_file *f = synth_open(&p, "gemma3.gguf");
    assert_int_equal(f->n_tensors, 2 + 7 * 13);
    assert_null(gguf_find_tensor(f, "output.weight"));
    expect_shape(f, "blk.6.post_attention_norm.weight", 256, 1);
    expect_shape(f, "blk.6.post_ffw_norm.weight", 256, 1);
    expect_shape(f, "blk.0.attn_q_norm.weight", 64, 1);
    expect_shape(f, "blk.0.attn_q.weight", 256, 256);
    expect_shape(f, "blk.0.attn_output.weight", 256, 256);
    model_info info;
    assert_int_equal(model_info_read(f, &info, NULL), 0);
    assert_int_equal(info.sliding_window, 8);
    assert_int_equal(info.n_swa_layers, 6); // layer 5 is global
    assert_true(info.rope_freq_base_swa == 20000 && info.final_logit_softcapping == 30);
    assert_string_equal(info.rope_scaling_type, "linear");
    assert_true(info.rope_scale_factor == 8 && info.key_length == 64);
    gguf_close(f);

    model_synth_params_default(&p);
    p.arch = "phi3", p.context = 4096, p.rope_orig_ctx = 256, p.longrope = true;
    p.rope_dims = 16;
    f = synth_open(&p, "phi3.gguf");
    assert_int_equal(f->n_tensors, 5 + 2 * 6);
    expect_shape(f, "blk.1.attn_qkv.weight", 256, 256 + 2 * 64);
    expect_shape(f, "blk.1.ffn_up.weight", 256, 2 * 768);
    assert_null(gguf_find_tensor(f, "blk.0.ffn_gate.weight"));
    assert_null(gguf_find_tensor(f, "blk.0.attn_q.weight"));
    expect_shape(f, "rope_factors_long.weight", 8, 1);
    expect_shape(f, "rope_factors_short.weight", 8, 1);
    const float *lf = gguf_find_tensor(f, "rope_factors_long.weight")->data;
    for (int i = 0; i < 8; i++)
        assert_true(lf[i] >= 1.0f);
    assert_int_equal(model_info_read(f, &info, NULL), 0);
    assert_true(info.has_rope_factors && info.rope_original_context == 256);
    assert_true(fabs(info.rope_attn_factor - sqrt(1 + log(16.0) / log(256.0))) < 1e-6);
    assert_int_equal(info.rope_dimension_count, 16);
    // The key is written even without a window (0), as the converter does for Phi-4.
    assert_non_null(gguf_find_kv(f, "phi3.attention.sliding_window"));
    assert_int_equal(info.sliding_window, 0);
    gguf_close(f);
}

// gpt-oss as llama.cpp's converter writes it: the sinks, the output and router biases, the
// experts' biases, post_attention_norm for the FFN's norm, the window and the YaRN keys.
static void test_gpt_oss(void **state)
{
    (void)state;
    model_synth_params p;
    model_synth_params_default(&p);
    p.arch = "gpt-oss", p.dim = 64, p.n_layer = 3, p.n_head = 4, p.n_head_kv = 2;
    p.head_dim = 32, p.ffn = 96, p.n_expert = 4, p.n_expert_used = 2;
    p.rope_yarn = 32, p.rope_orig_ctx = 4096;
    gguf_file *f = synth_open(&p, "gpt-oss.gguf");
    assert_int_equal(f->n_tensors, 3 + 3 * 19);
    expect_shape(f, "blk.0.attn_q.weight", 64, 128);
    expect_shape(f, "blk.0.attn_q.bias", 128, 1);
    expect_shape(f, "blk.1.attn_v.bias", 64, 1);
    expect_shape(f, "blk.2.attn_output.bias", 64, 1);
    expect_shape(f, "blk.0.attn_sinks.weight", 4, 1);
    expect_shape(f, "blk.0.post_attention_norm.weight", 64, 1);
    assert_null(gguf_find_tensor(f, "blk.0.ffn_norm.weight"));
    expect_shape(f, "blk.1.ffn_gate_inp.bias", 4, 1);
    expect_shape(f, "blk.1.ffn_gate_exps.bias", 96, 4);
    expect_shape(f, "blk.1.ffn_up_exps.bias", 96, 4);
    expect_shape(f, "blk.1.ffn_down_exps.bias", 64, 4);
    const gguf_tensor *down = gguf_find_tensor(f, "blk.2.ffn_down_exps.weight");
    assert_non_null(down);
    assert_int_equal(down->ne[0], 96);
    assert_int_equal(down->ne[1], 64);
    assert_int_equal(down->ne[2], 4);
    model_info info;
    assert_int_equal(model_info_read(f, &info, NULL), 0);
    assert_int_equal(info.expert_feed_forward_length, 96); // always written for gpt-oss
    assert_int_equal(info.sliding_window, 128);            // gpt-oss's, when not given
    assert_int_equal(info.n_swa_layers, 2);                // layers 0 and 2
    assert_true(info.has_attn_sinks);
    assert_string_equal(info.rope_scaling_type, "yarn");
    assert_true(info.rope_scale_factor == 32.0f);
    assert_int_equal(info.rope_original_context, 4096);
    float beta;
    assert_int_equal(gguf_get_f32(f, "gpt-oss.rope.scaling.yarn_beta_fast", &beta), GARLIC_OK);
    assert_true(beta == 32.0f);
    gguf_close(f);
    model_synth_params_default(&p);
    f = synth_open(&p, "llama-nosinks.gguf");
    assert_int_equal(model_info_read(f, &info, NULL), 0);
    assert_false(info.has_attn_sinks);
    gguf_close(f);
}

static void test_deterministic(void **state)
{
    (void)state;
    model_synth_params p;
    model_synth_params_default(&p);
    p.dim = 64, p.n_head = 4, p.ffn = 128, p.vocab = 400, p.type = TENSOR_TYPE_Q8_0;
    garlic_error err;
    const char *names[3] = {"s1.gguf", "s2.gguf", "s3.gguf"};
    for (int i = 0; i < 3; i++) {
        p.seed = i == 2 ? 9 : 1;
        assert_int_equal(model_synth_write(&p, test_temp_path(names[i]), &err), 0);
    }
    size_t n1, n2, n3;
    char *a = test_read_file(test_temp_path(names[0]), &n1);
    char *b = test_read_file(test_temp_path(names[1]), &n2);
    char *c = test_read_file(test_temp_path(names[2]), &n3);
    assert_int_equal(n1, n2);
    assert_memory_equal(a, b, n1);
    assert_int_equal(n1, n3);
    assert_memory_not_equal(a, c, n1);
    free(a), free(b), free(c);
}

// Every type garlic can produce; K-quant rows that are not a multiple of 256 fall back.
static void test_types_and_fallback(void **state)
{
    (void)state;
    model_synth_params p;
    model_synth_params_default(&p);
    p.n_layer = 1;
    for (uint32_t type = 0; type < TENSOR_TYPE_COUNT; type++) {
        const tensor_type_traits *t = tensor_type_get(type);
        // Not the activation-only types, nor garlic's own in-memory ones (no GGUF carries
        // them; tests/cli/test_synth checks that synth refuses them).
        if (!t || !t->quantize || t->internal || type == TENSOR_TYPE_Q8_1 ||
            type == TENSOR_TYPE_Q8_K)
            continue;
        p.type = type;
        gguf_file *f = synth_open(&p, "typed.gguf");
        assert_int_equal(gguf_find_tensor(f, "blk.0.attn_q.weight")->type, type);
        // ffn_down rows are 768 long: a multiple of 256 as well as 32.
        assert_int_equal(gguf_find_tensor(f, "blk.0.ffn_down.weight")->type, type);
        assert_int_equal(gguf_find_tensor(f, "output_norm.weight")->type, TENSOR_TYPE_F32);
        gguf_close(f);
    }
    p.type = TENSOR_TYPE_Q4_K, p.dim = 96, p.n_head = 3, p.n_head_kv = 1, p.ffn = 256;
    gguf_file *f = synth_open(&p, "fallback.gguf");
    assert_int_equal(gguf_find_tensor(f, "blk.0.attn_q.weight")->type, TENSOR_TYPE_Q8_0);
    assert_int_equal(gguf_find_tensor(f, "blk.0.ffn_down.weight")->type, TENSOR_TYPE_Q4_K);
    gguf_close(f);
}

// A "_M" mixture: more_bits_type for attn_v and ffn_down of layers 0, 1, 4, 7, ..., 19, 20,
// 21 of 22 (as llama-quantize lays out Q4_K_M), the base type for the rest.
static void test_more_bits_layers(void **state)
{
    (void)state;
    model_synth_params p;
    model_synth_params_default(&p);
    p.n_layer = 22, p.dim = 256, p.ffn = 256, p.n_head = 2, p.n_head_kv = 1;
    p.type = TENSOR_TYPE_Q4_K, p.output_type = p.more_bits_type = TENSOR_TYPE_Q6_K;
    gguf_file *f = synth_open(&p, "mixture.gguf");
    const bool more[22] = {[0] = 1,  [1] = 1,  [4] = 1,  [7] = 1,  [10] = 1,
                           [13] = 1, [16] = 1, [19] = 1, [20] = 1, [21] = 1};
    for (int l = 0; l < 22; l++) {
        char name[64];
        uint32_t want = more[l] ? TENSOR_TYPE_Q6_K : TENSOR_TYPE_Q4_K;
        snprintf(name, sizeof name, "blk.%d.attn_v.weight", l);
        assert_int_equal(gguf_find_tensor(f, name)->type, want);
        snprintf(name, sizeof name, "blk.%d.ffn_down.weight", l);
        assert_int_equal(gguf_find_tensor(f, name)->type, want);
        snprintf(name, sizeof name, "blk.%d.attn_k.weight", l);
        assert_int_equal(gguf_find_tensor(f, name)->type, TENSOR_TYPE_Q4_K);
    }
    assert_int_equal(gguf_find_tensor(f, "output.weight")->type, TENSOR_TYPE_Q6_K);
    assert_int_equal(gguf_find_tensor(f, "token_embd.weight")->type, TENSOR_TYPE_Q4_K);
    gguf_close(f);
}

static void test_bad_params(void **state)
{
    (void)state;
    model_synth_params p;
    garlic_error err;
    const char *path = test_temp_path("bad.gguf");
    model_synth_params_default(&p);
    p.arch = "gpt9";
    assert_int_equal(model_synth_write(&p, path, &err), GARLIC_EINVAL);
    assert_non_null(strstr(err.message, "gpt9"));
    model_synth_params_default(&p);
    p.n_head_kv = 3;
    assert_int_equal(model_synth_write(&p, path, &err), GARLIC_EINVAL);
    model_synth_params_default(&p);
    p.vocab = 10;
    assert_int_equal(model_synth_write(&p, path, &err), GARLIC_EINVAL);
    model_synth_params_default(&p);
    p.type = TENSOR_TYPE_IQ2_XXS;
    assert_int_equal(model_synth_write(&p, path, &err), GARLIC_EUNSUPPORTED);
    model_synth_params_default(&p);
    p.more_bits_type = TENSOR_TYPE_IQ2_XXS;
    assert_int_equal(model_synth_write(&p, path, &err), GARLIC_EUNSUPPORTED);
    assert_non_null(strstr(err.message, "more-bits"));
    // Keys only some architectures carry, and shapes llama.cpp would not load.
    model_synth_params_default(&p);
    p.sliding_window = 16;
    assert_int_equal(model_synth_write(&p, path, &err), GARLIC_EINVAL);
    assert_non_null(strstr(err.message, "no sliding window"));
    model_synth_params_default(&p);
    p.arch = "gemma3", p.longrope = true, p.rope_orig_ctx = 256;
    assert_int_equal(model_synth_write(&p, path, &err), GARLIC_EINVAL);
    model_synth_params_default(&p);
    p.arch = "phi3", p.longrope = true; // no original context
    assert_int_equal(model_synth_write(&p, path, &err), GARLIC_EINVAL);
    // The original context is phi3's and YaRN's (not linear scaling's), the log multiplier
    // YaRN's; with YaRN both are written.
    model_synth_params_default(&p);
    p.rope_orig_ctx = 128, p.rope_linear = 4;
    assert_int_equal(model_synth_write(&p, path, &err), GARLIC_EINVAL);
    assert_non_null(strstr(err.message, "original context"));
    p.rope_orig_ctx = 0, p.yarn_log_mul = 0.1f;
    assert_int_equal(model_synth_write(&p, path, &err), GARLIC_EINVAL);
    assert_non_null(strstr(err.message, "log multiplier"));
    p.rope_linear = 0, p.rope_yarn = 4, p.rope_orig_ctx = 128;
    gguf_file *f = synth_open(&p, "yarn.gguf");
    model_info info;
    assert_int_equal(model_info_read(f, &info, NULL), 0);
    assert_string_equal(info.rope_scaling_type, "yarn");
    assert_true(info.rope_original_context == 128 && info.rope_scale_factor == 4);
    assert_true(info.rope_yarn_log_mul == 0.1f);
    gguf_close(f);
    model_synth_params_default(&p);
    p.arch = "phi3", p.head_dim = 64;
    assert_int_equal(model_synth_write(&p, path, &err), GARLIC_EINVAL);
    model_synth_params_default(&p);
    p.rope_dims = 7;
    assert_int_equal(model_synth_write(&p, path, &err), GARLIC_EINVAL);
    model_synth_params_default(&p);
    p.final_softcap = 30;
    assert_int_equal(model_synth_write(&p, path, &err), GARLIC_EINVAL);
    // gpt-oss needs experts, an output matrix of its own and no shared expert; RoPE scaling
    // is one kind.
    model_synth_params_default(&p);
    p.arch = "gpt-oss";
    assert_int_equal(model_synth_write(&p, path, &err), GARLIC_EINVAL);
    assert_non_null(strstr(err.message, "--experts"));
    p.n_expert = 4, p.n_expert_used = 2, p.tied = true;
    assert_int_equal(model_synth_write(&p, path, &err), GARLIC_EINVAL);
    assert_non_null(strstr(err.message, "tied"));
    p.tied = false, p.ffn_shexp = 64;
    assert_int_equal(model_synth_write(&p, path, &err), GARLIC_EINVAL);
    model_synth_params_default(&p);
    p.rope_yarn = 4, p.rope_linear = 2;
    assert_int_equal(model_synth_write(&p, path, &err), GARLIC_EINVAL);
    assert_non_null(strstr(err.message, "YaRN"));
    model_synth_params_default(&p);
    p.rope_orig_ctx = 256; // llama: only with YaRN
    assert_int_equal(model_synth_write(&p, path, &err), GARLIC_EINVAL);
    p.rope_yarn = 4;
    assert_int_equal(model_synth_write(&p, path, &err), GARLIC_OK);
    model_synth_params_default(&p);
    p.tokenizer_path = test_temp_path("does-not-exist.gguf");
    assert_int_equal(model_synth_write(&p, path, &err), GARLIC_EIO);
    assert_non_null(strstr(err.message, "does-not-exist"));
}

// The vocabulary of a shared tokenizer file is copied whole.
static void test_tokenizer_copy(void **state)
{
    (void)state;
    skip_without_shared();
    model_synth_params p;
    model_synth_params_default(&p);
    p.n_layer = 1;
    char tok[4096];
    snprintf(tok, sizeof tok, "%s", test_shared_path("tokenizer/ggml-vocab-gpt-2.gguf"));
    p.tokenizer_path = tok;
    gguf_file *f = synth_open(&p, "gpt2.gguf");
    model_info info;
    assert_int_equal(model_info_read(f, &info, NULL), 0);
    assert_int_equal(info.vocab_size, 50257);
    assert_string_equal(info.tokenizer_model, "gpt2");
    assert_true(info.n_merges > 40000);
    expect_shape(f, "token_embd.weight", 256, 50257);
    gguf_close(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_llama_shape_a),
        cmocka_unit_test(test_architectures),
        cmocka_unit_test(test_gemma3_phi3),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_types_and_fallback),
        cmocka_unit_test(test_bad_params),
        cmocka_unit_test(test_tokenizer_copy),
        cmocka_unit_test(test_more_bits_layers),
        cmocka_unit_test(test_gpt_oss),
    };
    return cmocka_run_group_tests_name("synth", tests, NULL, NULL);
}
