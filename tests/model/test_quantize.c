// SPDX-License-Identifier: MIT
// The quantization mixtures (model/quantize.h): names and aliases, the type each gives a
// tensor, checked rule by rule against llama-quantize's choices written out by hand here (the
// "more bits" layers of a 22-layer and an 8-layer model, output.weight and a tied token_embd,
// the 8-expert and 70B bumps, MXFP4_MOE's experts, the fallbacks for rows that are not whole
// blocks, the tensors no mixture touches), and the parallel row conversion: the same bytes as
// the single-threaded converters on any thread count, and refusals that name the tensor.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/threadpool.h"
#include "gguf/gguf.h"
#include "model/quantize.h"
#include "model/synth.h"
#include "tensor/quants.h"
#include "tensor/types.h"
#include "util.h"

static model_quant_mix mix_named(const char *name)
{
    model_quant_mix mix;
    garlic_error err;
    if (model_quant_mix_parse(name, &mix, &err) != GARLIC_OK)
        fail_msg("%s: %s", name, err.message);
    return mix;
}

// The type mix gives a matrix of ne0 x ne1 called name; keep_type F32.
static uint32_t type2(const char *mix, const model_quant_model *m, const char *name, uint64_t ne0,
                      uint64_t ne1)
{
    model_quant_mix x = mix_named(mix);
    uint64_t ne[2] = {ne0, ne1};
    return model_quant_mix_type(&x, m, name, ne, 2, TENSOR_TYPE_F32).type;
}

static const char *type_name(uint32_t t) { return tensor_type_get(t)->name; }

#define assert_type(got, want)                                                                     \
    do {                                                                                           \
        uint32_t got_ = (got), want_ = (want);                                                     \
        if (got_ != want_)                                                                         \
            fail_msg("%s: %s, want %s", #got, type_name(got_), type_name(want_));                  \
    } while (0)

static void test_mix_names(void **state)
{
    (void)state;
    static const struct {
        const char *name, *canonical;
        uint32_t file_type, type;
    } cases[] = {
        {"Q4_K_M", "Q4_K_M", 15, TENSOR_TYPE_Q4_K},   {"q4_k_m", "Q4_K_M", 15, TENSOR_TYPE_Q4_K},
        {"Q4_K", "Q4_K_M", 15, TENSOR_TYPE_Q4_K},     {"Q5_K", "Q5_K_M", 17, TENSOR_TYPE_Q5_K},
        {"Q3_K", "Q3_K_M", 12, TENSOR_TYPE_Q3_K},     {"Q8_0", "Q8_0", 7, TENSOR_TYPE_Q8_0},
        {"Q4_0", "Q4_0", 2, TENSOR_TYPE_Q4_0},        {"F32", "F32", 0, TENSOR_TYPE_F32},
        {"F16", "F16", 1, TENSOR_TYPE_F16},           {"BF16", "BF16", 32, TENSOR_TYPE_BF16},
        {"Q6_K", "Q6_K", 18, TENSOR_TYPE_Q6_K},       {"IQ4_XS", "IQ4_XS", 30, TENSOR_TYPE_IQ4_XS},
        {"IQ4_NL", "IQ4_NL", 25, TENSOR_TYPE_IQ4_NL}, {"MXFP4", "MXFP4_MOE", 38, TENSOR_TYPE_MXFP4},
        {"Q2_K", "Q2_K", 10, TENSOR_TYPE_Q2_K},       {"Q5_K_S", "Q5_K_S", 16, TENSOR_TYPE_Q5_K},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        model_quant_mix m = mix_named(cases[i].name);
        assert_string_equal(m.name, cases[i].canonical);
        assert_int_equal(m.file_type, cases[i].file_type);
        assert_int_equal(m.type, cases[i].type);
    }
    model_quant_mix m;
    garlic_error err;
    assert_int_equal(model_quant_mix_parse("Q4_K_X", &m, &err), GARLIC_ENOTFOUND);
    assert_non_null(strstr(err.message, "'Q4_K_X'"));
    assert_non_null(strstr(err.message, "Q4_K_M")); // the names are listed
    assert_int_equal(model_quant_mix_parse("IQ2_XXS", &m, &err), GARLIC_EUNSUPPORTED);
    assert_non_null(strstr(err.message, "IQ2_XXS"));
    assert_int_equal(model_quant_mix_parse("Q2_K_S", &m, &err), GARLIC_EUNSUPPORTED);
    assert_non_null(strstr(err.message, "importance matrix"));
    assert_int_equal(model_quant_mix_parse(NULL, &m, &err), GARLIC_ENOTFOUND);
}

// TinyLlama's shape: 22 layers, 32 heads over 4 KV heads.
static const model_quant_model tinyllama = {"llama", 22, 32, 4, 0, true};

// Q4_K_M gives Q6_K to output.weight and to attn_v and ffn_down in layers 0, 1 (the first
// eighth: 22 / 8 = 2), 19, 20, 21 (from 7 * 22 / 8 = 19) and every third between counted from
// layer 2 (4, 7, 10, 13, 16); Q4_K elsewhere, token_embd included.
static void test_q4_k_m_layers(void **state)
{
    (void)state;
    static const bool more[22] = {[0] = 1,  [1] = 1,  [4] = 1,  [7] = 1,  [10] = 1,
                                  [13] = 1, [16] = 1, [19] = 1, [20] = 1, [21] = 1};
    const model_quant_model *m = &tinyllama;
    for (int mixture = 0; mixture < 2; mixture++) {
        const char *mix = mixture ? "Q5_K_M" : "Q4_K_M";
        uint32_t base = mixture ? TENSOR_TYPE_Q5_K : TENSOR_TYPE_Q4_K;
        for (int l = 0; l < 22; l++) {
            char v[64], down[64], q[64], gate[64], out[64];
            snprintf(v, sizeof v, "blk.%d.attn_v.weight", l);
            snprintf(down, sizeof down, "blk.%d.ffn_down.weight", l);
            snprintf(q, sizeof q, "blk.%d.attn_q.weight", l);
            snprintf(gate, sizeof gate, "blk.%d.ffn_gate.weight", l);
            snprintf(out, sizeof out, "blk.%d.attn_output.weight", l);
            uint32_t want = more[l] ? TENSOR_TYPE_Q6_K : base;
            assert_type(type2(mix, m, v, 2048, 256), want);
            assert_type(type2(mix, m, down, 5632, 2048), want);
            assert_type(type2(mix, m, q, 2048, 2048), base);
            assert_type(type2(mix, m, gate, 2048, 5632), base);
            assert_type(type2(mix, m, out, 2048, 2048), base);
        }
        assert_type(type2(mix, m, "output.weight", 2048, 32000), TENSOR_TYPE_Q6_K);
        assert_type(type2(mix, m, "token_embd.weight", 2048, 32000), base);
    }
    // 8 layers: the first and last eighth are layers 0 and 7, then every third from 1: 3, 6.
    model_quant_model eight = {"llama", 8, 8, 2, 0, true};
    for (int l = 0; l < 8; l++) {
        char v[64];
        snprintf(v, sizeof v, "blk.%d.attn_v.weight", l);
        bool want_more = l == 0 || l == 3 || l == 6 || l == 7;
        assert_type(type2("Q4_K_M", &eight, v, 256, 64),
                    want_more ? TENSOR_TYPE_Q6_K : TENSOR_TYPE_Q4_K);
    }
}

// A model without output.weight reads its logits through token_embd, which is then typed as
// the output: Q6_K in the K-quant and legacy mixtures, Q8_0 stays Q8_0.
static void test_output_and_tied(void **state)
{
    (void)state;
    model_quant_model tied = tinyllama;
    tied.has_output = false;
    assert_type(type2("Q4_K_M", &tied, "token_embd.weight", 2048, 32000), TENSOR_TYPE_Q6_K);
    assert_type(type2("Q4_0", &tied, "token_embd.weight", 2048, 32000), TENSOR_TYPE_Q6_K);
    assert_type(type2("Q8_0", &tied, "token_embd.weight", 2048, 32000), TENSOR_TYPE_Q8_0);
    assert_type(type2("Q4_0", &tinyllama, "token_embd.weight", 2048, 32000), TENSOR_TYPE_Q4_0);
    assert_type(type2("Q4_0", &tinyllama, "output.weight", 2048, 32000), TENSOR_TYPE_Q6_K);
    assert_type(type2("Q8_0", &tinyllama, "output.weight", 2048, 32000), TENSOR_TYPE_Q8_0);
    assert_type(type2("Q5_1", &tinyllama, "output.weight", 2048, 32000), TENSOR_TYPE_Q6_K);
    assert_type(type2("IQ4_XS", &tinyllama, "output.weight", 2048, 32000), TENSOR_TYPE_Q6_K);
    // Rows that are not whole blocks of the mixture's base type: Q8_0 for the output.
    assert_type(type2("Q4_K_M", &tinyllama, "output.weight", 288, 32000), TENSOR_TYPE_Q8_0);
    // The plain float mixtures type every matrix alike.
    assert_type(type2("F16", &tinyllama, "output.weight", 2048, 32000), TENSOR_TYPE_F16);
    assert_type(type2("BF16", &tied, "token_embd.weight", 2048, 32000), TENSOR_TYPE_BF16);
    assert_type(type2("F16", &tinyllama, "blk.0.ffn_down.weight", 40, 64), TENSOR_TYPE_F16);
}

// What no mixture quantizes: 1-D tensors (a trailing 1 does not count), norms, the router,
// positional embeddings, biases, integer tables. They keep the type they came with.
static void test_kept(void **state)
{
    (void)state;
    model_quant_mix mix = mix_named("Q4_K_M");
    const model_quant_model *m = &tinyllama;
    uint64_t ne[3] = {2048, 1, 1}, mat[2] = {2048, 64};
    model_quant_choice c = model_quant_mix_type(&mix, m, "blk.0.attn_norm.weight", ne, 1,
                                                TENSOR_TYPE_F32);
    assert_false(c.quantized);
    assert_type(c.type, TENSOR_TYPE_F32);
    c = model_quant_mix_type(&mix, m, "blk.0.attn_q.weight", ne, 2, TENSOR_TYPE_BF16);
    assert_false(c.quantized); // {2048, 1} is a vector
    assert_type(c.type, TENSOR_TYPE_BF16);
    const char *kept[] = {"blk.3.ffn_gate_inp.weight", "blk.0.attn_q_norm.weight",
                          "position_embd.weight", "blk.1.attn_q.bias", "v.patch_embd.weight"};
    for (size_t i = 0; i < sizeof kept / sizeof kept[0]; i++) {
        c = model_quant_mix_type(&mix, m, kept[i], mat, 2, TENSOR_TYPE_F16);
        if (c.quantized || c.type != TENSOR_TYPE_F16)
            fail_msg("%s was given %s", kept[i], type_name(c.type));
    }
    c = model_quant_mix_type(&mix, m, "blk.0.ffn_gate_tid2eid.weight", mat, 2, TENSOR_TYPE_I32);
    assert_false(c.quantized);
    c = model_quant_mix_type(&mix, m, "blk.0.some_table.weight", mat, 2, TENSOR_TYPE_I32);
    assert_false(c.quantized); // an integer table whatever its name
    c = model_quant_mix_type(&mix, m, "blk.0.attn_q.weight", mat, 2, TENSOR_TYPE_F16);
    assert_true(c.quantized);
    assert_false(c.fallback);
    assert_type(c.type, TENSOR_TYPE_Q4_K);
}

// Rows that are not whole blocks: Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0, Q2_K/Q3_K -> Q4_0,
// IQ4_XS -> IQ4_NL; F16 when not even blocks of 32 fit.
static void test_fallback(void **state)
{
    (void)state;
    const model_quant_model *m = &tinyllama;
    model_quant_mix mix = mix_named("Q4_K_M");
    uint64_t ne[2] = {96, 64};
    model_quant_choice c = model_quant_mix_type(&mix, m, "blk.2.attn_q.weight", ne, 2, 0);
    assert_true(c.fallback);
    assert_type(c.type, TENSOR_TYPE_Q5_0);
    c = model_quant_mix_type(&mix, m, "blk.0.ffn_down.weight", ne, 2, 0); // Q6_K layer
    assert_true(c.fallback);
    assert_type(c.type, TENSOR_TYPE_Q8_0);
    ne[0] = 40;
    c = model_quant_mix_type(&mix, m, "blk.2.attn_q.weight", ne, 2, 0);
    assert_true(c.fallback);
    assert_type(c.type, TENSOR_TYPE_F16);
    assert_type(type2("Q5_K_S", m, "blk.2.attn_q.weight", 96, 64), TENSOR_TYPE_Q5_1);
    assert_type(type2("Q3_K_S", m, "blk.2.attn_q.weight", 96, 64), TENSOR_TYPE_Q4_0);
    assert_type(type2("Q2_K", m, "blk.2.attn_q.weight", 96, 64), TENSOR_TYPE_Q4_0);
    assert_type(type2("IQ4_XS", m, "blk.2.attn_q.weight", 96, 64), TENSOR_TYPE_IQ4_NL);
    assert_type(type2("Q4_0", m, "blk.2.attn_q.weight", 48, 64), TENSOR_TYPE_F16);
    assert_type(type2("Q8_0", m, "blk.2.attn_q.weight", 96, 64), TENSOR_TYPE_Q8_0);
    c = model_quant_mix_type(&mix, m, "blk.2.attn_q.weight", (uint64_t[]){256, 64}, 2, 0);
    assert_false(c.fallback);
}

// The other mixtures' rules, each named by the case that shows it.
static void test_other_mixtures(void **state)
{
    (void)state;
    model_quant_model m32 = {"llama", 32, 32, 8, 0, true}; // grouped queries: 4 per KV head
    model_quant_model mha = {"llama", 32, 32, 32, 0, true};
    // Q2_K: attn_v Q4_K with 4+ queries per KV head, else Q3_K; ffn_down and attn_output Q3_K.
    assert_type(type2("Q2_K", &m32, "blk.9.attn_v.weight", 4096, 1024), TENSOR_TYPE_Q4_K);
    assert_type(type2("Q2_K", &mha, "blk.9.attn_v.weight", 4096, 4096), TENSOR_TYPE_Q3_K);
    assert_type(type2("Q2_K", &m32, "blk.9.ffn_down.weight", 11008, 4096), TENSOR_TYPE_Q3_K);
    assert_type(type2("Q2_K", &m32, "blk.9.attn_output.weight", 4096, 4096), TENSOR_TYPE_Q3_K);
    assert_type(type2("Q2_K", &m32, "blk.9.attn_q.weight", 4096, 4096), TENSOR_TYPE_Q2_K);
    // Q3_K_M: attn_v Q5_K in layers 0-1 then Q4_K; ffn_down Q5_K in the first sixteenth
    // (layers 0-1 of 32) then Q4_K; attn_output Q4_K.
    assert_type(type2("Q3_K_M", &m32, "blk.1.attn_v.weight", 4096, 1024), TENSOR_TYPE_Q5_K);
    assert_type(type2("Q3_K_M", &m32, "blk.2.attn_v.weight", 4096, 1024), TENSOR_TYPE_Q4_K);
    assert_type(type2("Q3_K_M", &m32, "blk.1.ffn_down.weight", 11008, 4096), TENSOR_TYPE_Q5_K);
    assert_type(type2("Q3_K_M", &m32, "blk.2.ffn_down.weight", 11264, 4096), TENSOR_TYPE_Q4_K);
    assert_type(type2("Q3_K_M", &m32, "blk.2.attn_output.weight", 4096, 4096), TENSOR_TYPE_Q4_K);
    assert_type(type2("Q3_K_M", &m32, "blk.2.attn_k.weight", 4096, 1024), TENSOR_TYPE_Q3_K);
    // Q3_K_L: attn_v, ffn_down and attn_output Q5_K.
    assert_type(type2("Q3_K_L", &m32, "blk.20.attn_v.weight", 4096, 1024), TENSOR_TYPE_Q5_K);
    assert_type(type2("Q3_K_L", &m32, "blk.20.ffn_down.weight", 11264, 4096), TENSOR_TYPE_Q5_K);
    assert_type(type2("Q3_K_L", &m32, "blk.20.attn_output.weight", 4096, 4096), TENSOR_TYPE_Q5_K);
    // Q4_K_S: attn_v Q5_K in layers 0-3, ffn_down Q5_K in the first eighth (0-3 of 32).
    assert_type(type2("Q4_K_S", &m32, "blk.3.attn_v.weight", 4096, 1024), TENSOR_TYPE_Q5_K);
    assert_type(type2("Q4_K_S", &m32, "blk.4.attn_v.weight", 4096, 1024), TENSOR_TYPE_Q4_K);
    assert_type(type2("Q4_K_S", &m32, "blk.3.ffn_down.weight", 11264, 4096), TENSOR_TYPE_Q5_K);
    assert_type(type2("Q4_K_S", &m32, "blk.4.ffn_down.weight", 11264, 4096), TENSOR_TYPE_Q4_K);
    // IQ4_NL / IQ4_XS: attn_v Q5_K with grouped queries, ffn_down Q5_K in the first eighth.
    assert_type(type2("IQ4_XS", &m32, "blk.9.attn_v.weight", 4096, 1024), TENSOR_TYPE_Q5_K);
    assert_type(type2("IQ4_XS", &mha, "blk.9.attn_v.weight", 4096, 4096), TENSOR_TYPE_IQ4_XS);
    assert_type(type2("IQ4_NL", &m32, "blk.3.ffn_down.weight", 11264, 4096), TENSOR_TYPE_Q5_K);
    assert_type(type2("IQ4_NL", &m32, "blk.4.ffn_down.weight", 11264, 4096), TENSOR_TYPE_IQ4_NL);
    // Q6_K and Q5_K_S and the legacy types: one type but for the output.
    assert_type(type2("Q6_K", &m32, "blk.0.attn_v.weight", 4096, 1024), TENSOR_TYPE_Q6_K);
    assert_type(type2("Q5_K_S", &m32, "blk.0.ffn_down.weight", 11264, 4096), TENSOR_TYPE_Q5_K);
    assert_type(type2("Q4_0", &m32, "blk.0.ffn_down.weight", 11008, 4096), TENSOR_TYPE_Q4_0);
    assert_type(type2("Q5_1", &m32, "blk.0.attn_v.weight", 4096, 1024), TENSOR_TYPE_Q5_1);
}

// Eight experts (Mixtral): attn_v and attn_k Q8_0, attn_output Q5_K; the experts' ffn_down
// take the layer from their name. 80-layer llama with grouped queries (70B): Q3_K/Q4_K attn_v
// become Q5_K. MXFP4_MOE: the experts' 3-D matrices MXFP4, every other matrix Q8_0.
static void test_experts_and_70b(void **state)
{
    (void)state;
    model_quant_model mixtral = {"llama", 32, 32, 8, 8, true};
    assert_type(type2("Q4_K_M", &mixtral, "blk.5.attn_v.weight", 4096, 1024), TENSOR_TYPE_Q8_0);
    assert_type(type2("Q4_K_M", &mixtral, "blk.5.attn_k.weight", 4096, 1024), TENSOR_TYPE_Q8_0);
    assert_type(type2("Q4_K_M", &mixtral, "blk.5.attn_output.weight", 4096, 4096),
                TENSOR_TYPE_Q5_K);
    assert_type(type2("Q5_K_M", &mixtral, "blk.5.attn_output.weight", 4096, 4096),
                TENSOR_TYPE_Q5_K);
    assert_type(type2("Q4_K_M", &mixtral, "blk.5.attn_q.weight", 4096, 4096), TENSOR_TYPE_Q4_K);
    model_quant_mix q4km = mix_named("Q4_K_M");
    uint64_t exps[3] = {14336, 4096, 8};
    assert_type(
        model_quant_mix_type(&q4km, &mixtral, "blk.3.ffn_down_exps.weight", exps, 3, 0).type,
        TENSOR_TYPE_Q6_K); // layer 3 of 32: the first eighth
    assert_type(
        model_quant_mix_type(&q4km, &mixtral, "blk.5.ffn_down_exps.weight", exps, 3, 0).type,
        TENSOR_TYPE_Q4_K);

    model_quant_model llama70 = {"llama", 80, 64, 8, 0, true};
    assert_type(type2("Q4_K_M", &llama70, "blk.11.attn_v.weight", 8192, 1024), TENSOR_TYPE_Q5_K);
    assert_type(type2("Q4_K_M", &llama70, "blk.12.attn_v.weight", 8192, 1024), TENSOR_TYPE_Q6_K);
    assert_type(type2("Q3_K_M", &llama70, "blk.11.attn_v.weight", 8192, 1024), TENSOR_TYPE_Q5_K);
    model_quant_model llama65 = {"llama", 80, 64, 64, 0, true}; // no grouped queries: 65B
    assert_type(type2("Q4_K_M", &llama65, "blk.11.attn_v.weight", 8192, 8192), TENSOR_TYPE_Q4_K);

    model_quant_model oss = {"gpt-oss", 24, 64, 8, 32, true};
    model_quant_mix mxfp4 = mix_named("MXFP4_MOE");
    uint64_t up[3] = {2880, 2880, 32};
    assert_type(model_quant_mix_type(&mxfp4, &oss, "blk.0.ffn_up_exps.weight", up, 3, 0).type,
                TENSOR_TYPE_MXFP4);
    assert_type(type2("MXFP4_MOE", &oss, "blk.0.attn_q.weight", 2880, 4096), TENSOR_TYPE_Q8_0);
    assert_type(type2("MXFP4_MOE", &oss, "output.weight", 2880, 201088), TENSOR_TYPE_Q8_0);
    assert_type(type2("MXFP4_MOE", &oss, "token_embd.weight", 2880, 201088), TENSOR_TYPE_Q8_0);
    assert_type(type2("MXFP4_MOE", &oss, "blk.0.ffn_gate_inp.weight", 2880, 32),
                TENSOR_TYPE_F32); // the router stays
}

// The model facts read from a synthesized file: counts and whether output.weight exists.
static void test_model_read(void **state)
{
    (void)state;
    model_synth_params p;
    model_synth_params_default(&p);
    p.n_layer = 3, p.n_head = 8, p.n_head_kv = 2, p.dim = 64, p.ffn = 96, p.vocab = 400;
    const char *path = test_temp_path("facts.gguf");
    garlic_error err;
    for (int tied = 0; tied < 2; tied++) {
        p.tied = tied;
        if (model_synth_write(&p, path, &err))
            fail_msg("%s", err.message);
        gguf_file *f = gguf_open(path, &err);
        assert_non_null(f);
        model_quant_model m;
        assert_int_equal(model_quant_model_read(f, &m, &err), GARLIC_OK);
        assert_string_equal(m.arch, "llama");
        assert_int_equal(m.n_layer, 3);
        assert_int_equal(m.n_head, 8);
        assert_int_equal(m.n_head_kv, 2);
        assert_int_equal(m.n_expert, 0);
        assert_int_equal(m.has_output, !tied);
        gguf_close(f);
    }
}

// Random rows of n values, N(0, 1) scaled by a per-row factor (so blocks differ).
static float *random_rows(uint64_t rows, uint64_t n, uint64_t seed)
{
    float *x = malloc(rows * n * sizeof *x);
    assert_non_null(x);
    test_rng rng;
    test_rng_seed(&rng, seed);
    for (uint64_t r = 0; r < rows; r++) {
        float scale = 0.01f + test_rng_uniform(&rng);
        for (uint64_t i = 0; i < n; i++)
            x[r * n + i] = scale * test_rng_normal(&rng);
    }
    return x;
}

// model_quant_convert on 1, 2 and 3 threads gives the bytes the type's own quantizer gives the
// whole tensor, for rows both shorter and longer than a thread's chunk; from a quantized
// source the values decoded are the source's exactly (to F32) or requantized from them.
static void test_convert_threads(void **state)
{
    (void)state;
    static const uint32_t types[] = {TENSOR_TYPE_Q8_0,   TENSOR_TYPE_Q4_K, TENSOR_TYPE_Q6_K,
                                     TENSOR_TYPE_IQ4_NL, TENSOR_TYPE_F16,  TENSOR_TYPE_BF16};
    static const uint64_t shapes[][2] = {{256, 37}, {70144, 3}};
    garlic_error err;
    thread_pool *pools[3] = {NULL, thread_pool_new(2, &err), thread_pool_new(3, &err)};
    assert_non_null(pools[1]);
    assert_non_null(pools[2]);
    for (size_t s = 0; s < 2; s++) {
        uint64_t n = shapes[s][0], rows = shapes[s][1];
        float *x = random_rows(rows, n, 11 + s);
        for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
            const tensor_type_traits *tr = tensor_type_get(types[t]);
            uint64_t row_bytes;
            assert_true(tensor_row_size(types[t], n, &row_bytes));
            uint8_t *want = malloc(row_bytes * rows), *got = malloc(row_bytes * rows);
            tr->quantize(x, want, (int64_t)(n * rows));
            for (int p = 0; p < 3; p++) {
                memset(got, 0xA5, row_bytes * rows);
                if (model_quant_convert(pools[p], "t", TENSOR_TYPE_F32, x, types[t], got, n, rows,
                                        &err))
                    fail_msg("%s", err.message);
                if (memcmp(want, got, row_bytes * rows) != 0)
                    fail_msg("%s, rows of %llu, pool %d: bytes differ", tr->name,
                             (unsigned long long)n, p);
            }
            // Back to F32: exactly the type's dequantization.
            float *back = malloc(n * rows * sizeof *back), *ref = malloc(n * rows * sizeof *ref);
            tr->dequantize(want, ref, (int64_t)(n * rows));
            if (model_quant_convert(pools[2], "t", types[t], want, TENSOR_TYPE_F32, back, n, rows,
                                    &err))
                fail_msg("%s", err.message);
            assert_memory_equal(back, ref, n * rows * sizeof *ref);
            // Requantized: the quantizer of what the source decodes to.
            uint8_t *requant = malloc(n * rows), *requant_ref = malloc(n * rows);
            uint64_t q4_bytes;
            assert_true(tensor_row_size(TENSOR_TYPE_Q4_0, n, &q4_bytes));
            tensor_quantize_q4_0(ref, requant_ref, (int64_t)(n * rows));
            if (model_quant_convert(pools[1], "t", types[t], want, TENSOR_TYPE_Q4_0, requant, n,
                                    rows, &err))
                fail_msg("%s", err.message);
            assert_memory_equal(requant, requant_ref, q4_bytes * rows);
            free(back), free(ref), free(requant), free(requant_ref), free(want), free(got);
        }
        free(x);
    }
    thread_pool_free(pools[1]);
    thread_pool_free(pools[2]);
}

// What model_quant_convert refuses, naming the tensor: a value that is not finite (and the first
// row holding one) for a quantized type, a type garlic cannot decode or write, rows that are
// not whole blocks. A float type keeps NaN and inf.
static void test_convert_refuses(void **state)
{
    (void)state;
    garlic_error err;
    thread_pool *pool = thread_pool_new(2, &err);
    assert_non_null(pool);
    enum { N = 64, ROWS = 9 };
    float x[N * ROWS] = {0};
    x[5 * N + 17] = NAN;
    x[7 * N + 3] = INFINITY;
    uint8_t out[N * ROWS * 4];
    assert_int_equal(model_quant_convert(pool, "blk.0.attn_q.weight", TENSOR_TYPE_F32, x,
                                         TENSOR_TYPE_Q8_0, out, N, ROWS, &err),
                     GARLIC_EINVAL);
    assert_non_null(strstr(err.message, "blk.0.attn_q.weight"));
    assert_non_null(strstr(err.message, "row 5 "));
    assert_int_equal(
        model_quant_convert(pool, "t", TENSOR_TYPE_F32, x, TENSOR_TYPE_F16, out, N, ROWS, &err),
        GARLIC_OK);
    assert_int_equal(model_quant_convert(pool, "iq2", TENSOR_TYPE_IQ2_XXS, out, TENSOR_TYPE_Q8_0,
                                         out, 256, 1, &err),
                     GARLIC_EUNSUPPORTED);
    assert_non_null(strstr(err.message, "IQ2_XXS"));
    assert_int_equal(
        model_quant_convert(pool, "t", TENSOR_TYPE_F32, x, TENSOR_TYPE_IQ1_S, out, 256, 1, &err),
        GARLIC_EUNSUPPORTED);
    assert_int_equal(model_quant_convert(pool, "narrow", TENSOR_TYPE_F32, x, TENSOR_TYPE_Q4_K, out,
                                         N, ROWS, &err),
                     GARLIC_EINVAL);
    assert_non_null(strstr(err.message, "narrow"));
    thread_pool_free(pool);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mix_names),       cmocka_unit_test(test_q4_k_m_layers),
        cmocka_unit_test(test_output_and_tied), cmocka_unit_test(test_kept),
        cmocka_unit_test(test_fallback),        cmocka_unit_test(test_other_mixtures),
        cmocka_unit_test(test_experts_and_70b), cmocka_unit_test(test_model_read),
        cmocka_unit_test(test_convert_threads), cmocka_unit_test(test_convert_refuses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
