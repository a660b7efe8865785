// SPDX-License-Identifier: MIT
// Tests of src/planner: the worked example of ../shared/reference/memory (parameter count,
// FP8 weights by type, KV bytes per token, the note's concurrency rule), that the plan's KV
// and compute figures equal what kv_cache_new and model_state_new allocate, the budget
// answers at their edges, sizes with suffixes, weights derived from config.json per
// architecture and quantization, folders of shards with and without an index (their
// weights and mapped bytes), GGUF files, a model with sliding-window layers (the KV figures
// of each kind, the pool and an engine started from the plan), and allocation failures. The
// Hugging Face readers themselves (config.json validation, safetensors headers) are tested
// in tests/hf.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "hf/hf_fixtures.h"
#include "util.h"

#include "base/alloc.h"
#include "base/threadpool.h"
#include "engine/engine.h"
#include "hf/hf.h"
#include "kvcache/kvcache.h"
#include "model/info.h"
#include "model/model.h"
#include "model/synth.h"
#include "planner/planner.h"
#include "tokenizer/tokenizer.h"

static const planner_weight_type *find_type(const planner_input *in, const char *name, bool scales)
{
    for (uint32_t i = 0; i < in->weights.n_types; i++)
        if (strcmp(in->weights.types[i].name, name) == 0 && in->weights.types[i].scales == scales)
            return &in->weights.types[i];
    fail_msg("no weight type %s%s", name, scales ? " scales" : "");
    return NULL;
}

static void parse_config(const char *json, planner_input *in)
{
    garlic_error err = {0};
    hf_config cfg;
    if (hf_config_parse(json, strlen(json), "config.json", &cfg, &err) ||
        planner_from_hf_config(&cfg, "config.json", in, &err))
        fail_msg("%s", err.message);
}

static planner_config config_for(uint32_t ctx, uint32_t parallel, kv_type type, uint64_t budget)
{
    planner_config cfg;
    planner_config_default(&cfg);
    cfg.ctx = ctx, cfg.parallel = parallel, cfg.kv_type = type, cfg.budget = budget;
    cfg.n_threads = 8; // fixed, so the figures do not depend on the machine
    return cfg;
}

static void check_reference(const planner_input *in)
{
    assert_string_equal(in->arch, "Qwen3ForCausalLM");
    assert_int_equal(in->source, PLANNER_SOURCE_HF_CONFIG);
    assert_int_equal(in->weights.n_params, 14768307200ull);
    assert_int_equal(in->weights.n_params - in->weights.n_params_norm, 14767882240ull);
    assert_int_equal(in->weights.n_params_norm, 424960);
    // FP8 linear layers, 128x128 block scales, BF16 embeddings, head and norms.
    assert_int_equal(in->weights.tensor_bytes, 16327782400ull);
    assert_int_equal(in->weights.mapping_bytes, 0);
    const planner_weight_type *fp8 = find_type(in, "F8_E4M3", false);
    assert_int_equal(fp8->n_elements, 13212057600ull);
    assert_int_equal(fp8->bytes, 13212057600ull);
    assert_int_equal(fp8->n_tensors, 40 * 7);
    const planner_weight_type *bf16 = find_type(in, "BF16", false);
    assert_int_equal(bf16->n_elements, 1555824640ull + 424960); // embeddings, head, norms
    assert_int_equal(bf16->bytes, 2 * 1555824640ull + 2 * 424960);
    const planner_weight_type *scales = find_type(in, "F32", true);
    assert_int_equal(scales->n_elements, 806400);
    assert_int_equal(scales->bytes, 3225600);
    assert_non_null(strstr(in->assumption, "F8_E4M3"));
    assert_non_null(strstr(in->assumption, "128x128"));
    assert_non_null(strstr(in->assumption, "BF16"));

    garlic_error err = {0};
    planner_plan p;
    planner_config cfg = config_for(32768, 1, KV_TYPE_FP8_E4M3, 0);
    assert_int_equal(planner_plan_make(in, &cfg, &p, &err), 0);
    assert_int_equal(p.kv_bytes_per_token, 81920);
    assert_int_equal(p.kv_blocks, 2048);
    assert_int_equal(p.kv_data_bytes, 2684354560ull);
    kv_cache_config kc = planner_kv_config(in, KV_TYPE_FP8_E4M3, 16);
    uint64_t pool = 0;
    assert_int_equal(kv_cache_bytes_for(&kc, 2048, &pool, &err), 0);
    assert_int_equal(p.kv_bytes, pool);
    assert_int_equal(p.kv_bytes_per_seq, pool);
    assert_int_equal(p.weight_bytes, 16327782400ull);
    assert_int_equal(p.total_bytes,
                     p.weight_bytes + p.kv_bytes + p.scratch_bytes + planner_overhead(in));
    assert_int_equal(p.overhead_bytes,
                     PLANNER_PROCESS_OVERHEAD + 151936ull * PLANNER_TOKEN_BYTES +
                         151936ull * PLANNER_MERGE_BYTES);
    cfg.kv_type = KV_TYPE_F16;
    assert_int_equal(planner_plan_make(in, &cfg, &p, &err), 0);
    assert_int_equal(p.kv_bytes_per_token, 163840);
    assert_int_equal(p.kv_data_bytes, 2 * 2684354560ull);
    cfg.ctx = 0; // the server's default: the trained context (40960), at most 4096
    assert_int_equal(planner_plan_make(in, &cfg, &p, &err), 0);
    assert_int_equal(p.cfg.ctx, 4096);
}

static void test_reference_inline(void **state)
{
    (void)state;
    planner_input in;
    parse_config(qwen3_14b_fp8, &in);
    check_reference(&in);
}

static void test_reference_file(void **state)
{
    (void)state;
    skip_without_shared();
    const char *path = test_shared_path("reference/memory/qwen3-14b-fp8/config.json");
    planner_input in;
    garlic_error err = {0};
    if (planner_from_path(path, &in, &err))
        fail_msg("%s", err.message);
    check_reference(&in);
    // The folder works too (no safetensors there: the weights are derived).
    path = test_shared_path("reference/memory/qwen3-14b-fp8");
    assert_int_equal(planner_from_hf(path, &in, &err), 0);
    check_reference(&in);
}

// The note's rule: floor((28.8 GB - S) / K), with S = 15.77 GB and K = 2.5 as it rounds them:
// 5 (5.21 before flooring). The note's 5.21 = 13.03 / 2.5 divides by 2.5 GB (10^9); with K
// the exact 2.5 GiB (2,684,354,560 bytes) of one 32,768-token FP8 sequence it is 4 (4.85).
static void test_concurrency_rule(void **state)
{
    (void)state;
    uint64_t budget = 0, kv_note = 2500000000ull, kv = 2684354560ull;
    assert_true(planner_parse_size("28.8GB", &budget));
    assert_int_equal(budget, 28800000000ull);
    uint64_t s = 15770000000ull;
    assert_int_equal(planner_sequences_for_budget(budget, s, kv_note), 5);
    double exact = (double)(budget - s) / (double)kv_note;
    assert_true(exact > 5.21 && exact < 5.22);
    assert_int_equal(planner_sequences_for_budget(budget, s, kv), 4);
    assert_int_equal(planner_sequences_for_budget(s, budget, kv), 0);
    assert_int_equal(planner_sequences_for_budget(budget, s, 0), 0);

    // The planner's own answer with its weights assumption (16.33 GB static before scratch
    // and overhead): 4 sequences of 32,768 positions, and the edges are exact.
    planner_input in;
    parse_config(qwen3_14b_fp8, &in);
    planner_plan p, q;
    garlic_error err = {0};
    planner_config cfg = config_for(32768, 1, KV_TYPE_FP8_E4M3, budget);
    assert_int_equal(planner_plan_make(&in, &cfg, &p, &err), 0);
    assert_true(p.fits);
    assert_int_equal(p.max_parallel, 4);
    assert_int_equal(p.max_parallel,
                     planner_sequences_for_budget(budget, p.static_bytes, p.kv_bytes_per_seq));
    cfg.parallel = p.max_parallel;
    assert_int_equal(planner_plan_make(&in, &cfg, &q, &err), 0);
    assert_true(q.total_bytes <= budget);
    cfg.parallel = p.max_parallel + 1;
    assert_int_equal(planner_plan_make(&in, &cfg, &q, &err), 0);
    assert_true(q.total_bytes > budget);
    assert_false(q.fits);
    // Largest context at parallel 1.
    cfg.parallel = 1;
    cfg.ctx = p.max_ctx;
    assert_int_equal(planner_plan_make(&in, &cfg, &q, &err), 0);
    assert_true(q.total_bytes <= budget);
    cfg.ctx = p.max_ctx + 1;
    assert_int_equal(planner_plan_make(&in, &cfg, &q, &err), 0);
    assert_true(q.total_bytes > budget);
    // A budget below the weights: nothing fits.
    cfg = config_for(32768, 1, KV_TYPE_FP8_E4M3, 10000000000ull);
    assert_int_equal(planner_plan_make(&in, &cfg, &p, &err), 0);
    assert_false(p.fits);
    assert_int_equal(p.max_parallel, 0);
    assert_int_equal(p.max_ctx, 0);
    assert_int_equal(p.budget_blocks, 0);
}

static void test_sizes(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        uint64_t bytes;
    } good[] = {
        {"0", 0},
        {"1234", 1234},
        {"28.8GB", 28800000000ull},
        {"28.8gb", 28800000000ull},
        {"28.8G", 28800000000ull},
        {"24GiB", 24ull << 30},
        {"512M", 512000000},
        {"512MiB", 512ull << 20},
        {"1.5KiB", 1536},
        {"2TB", 2000000000000ull},
        {"3K", 3000},
        {"7B", 7},
        {"1TiB", 1ull << 40},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        uint64_t b = 1;
        if (!planner_parse_size(good[i].text, &b) || b != good[i].bytes)
            fail_msg("'%s': %llu", good[i].text, (unsigned long long)b);
    }
    static const char *const bad[] = {"",     "GB",   "-1",  "12XB", "1e30GB",
                                      "1 GB", "GiB1", "nan", ".5G",  "20000000000TB"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t b;
        if (planner_parse_size(bad[i], &b))
            fail_msg("'%s' accepted as %llu", bad[i], (unsigned long long)b);
    }
}

// Architectures and defaults: KV heads default to the heads, head_dim to dim / heads, tied
// embeddings drop the LM head, Qwen2 has q/k/v biases, Llama and Mistral have neither biases
// nor q/k norms.
static void test_architectures(void **state)
{
    (void)state;
    planner_input in;
    parse_config("{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 64, "
                 "\"num_hidden_layers\": 2, \"num_attention_heads\": 4, "
                 "\"intermediate_size\": 128, \"vocab_size\": 100, \"torch_dtype\": \"float16\", "
                 "\"tie_word_embeddings\": true}",
                 &in);
    assert_int_equal(in.hp.n_head_kv, 4);
    assert_int_equal(in.hp.head_dim_k, 16);
    assert_int_equal(in.hp.n_ctx_train, 2048);
    // embed + 2 x (4 x 64x64 + 3 x 64x128 + 2 x 64) + 64, no LM head
    uint64_t params = 6400 + 2 * (4 * 4096 + 3 * 8192 + 128) + 64;
    assert_int_equal(in.weights.n_params, params);
    assert_int_equal(in.weights.tensor_bytes, 2 * params);
    assert_string_equal(in.weights.types[0].name, "F16");
    assert_int_equal(in.weights.n_types, 1);

    parse_config("{\"architectures\": [\"MistralForCausalLM\"], \"hidden_size\": 64, "
                 "\"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"head_dim\": 32, "
                 "\"num_key_value_heads\": 2, \"intermediate_size\": 128, \"vocab_size\": 100}",
                 &in);
    // F32 when torch_dtype is absent; q 128x64, k and v 64x64, o 64x128; untied head.
    params = 2 * 6400 + 2 * (8192 + 2 * 4096 + 8192 + 3 * 8192 + 128) + 64;
    assert_int_equal(in.weights.n_params, params);
    assert_int_equal(in.weights.tensor_bytes, 4 * params);
    assert_int_equal(in.hp.head_dim_k, 32);

    parse_config("{\"architectures\": [\"Qwen2ForCausalLM\"], \"hidden_size\": 64, "
                 "\"num_hidden_layers\": 1, \"num_attention_heads\": 4, "
                 "\"num_key_value_heads\": 2, \"intermediate_size\": 128, \"vocab_size\": 100, "
                 "\"torch_dtype\": \"bfloat16\", \"tie_word_embeddings\": true}",
                 &in);
    // q 64x64, k and v 32x64, o 64x64, biases 64 + 32 + 32.
    params = 6400 + (4096 + 2 * 2048 + 4096 + 3 * 8192 + 128 + 128) + 64;
    assert_int_equal(in.weights.n_params, params);

    // GPTQ 4-bit, groups of 32: packed weights, F16 scales and packed zeros per group.
    parse_config("{\"model_type\": \"llama\", \"hidden_size\": 64, \"num_hidden_layers\": 1, "
                 "\"num_attention_heads\": 4, \"intermediate_size\": 128, \"vocab_size\": 100, "
                 "\"torch_dtype\": \"float16\", \"quantization_config\": {\"quant_method\": "
                 "\"gptq\", \"bits\": 4, \"group_size\": 32}}",
                 &in);
    const planner_weight_type *q4 = find_type(&in, "INT4", false);
    assert_int_equal(q4->n_elements, 4 * 4096 + 3 * 8192);
    assert_int_equal(q4->bytes, (4 * 4096 + 3 * 8192) / 2);
    assert_int_equal(find_type(&in, "F16", true)->n_elements,
                     4 * 2 * 64 + 2 * 2 * 128 + 4 * 64); // groups x rows per matrix
    assert_non_null(strstr(in.assumption, "4-bit"));
}

static void test_plan_errors(void **state)
{
    (void)state;
    planner_input in;
    parse_config(qwen3_14b_fp8, &in);
    planner_plan p;
    garlic_error err = {0};
    planner_config cfg = config_for(1024, 0, KV_TYPE_F16, 0);
    assert_int_equal(planner_plan_make(&in, &cfg, &p, &err), GARLIC_EINVAL);
    assert_non_null(strstr(err.message, "parallel"));
    cfg = config_for(PLANNER_MAX_CTX + 1, 1, KV_TYPE_F16, 0);
    assert_int_equal(planner_plan_make(&in, &cfg, &p, &err), GARLIC_EINVAL);
    cfg = config_for(PLANNER_MAX_CTX, 1 << 20, KV_TYPE_F16, 0);
    assert_int_equal(planner_plan_make(&in, &cfg, &p, &err), GARLIC_EINVAL);
    assert_non_null(strstr(err.message, "too large"));
    // Q8_0 needs head dimensions that are multiples of 32.
    parse_config("{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 128, "
                 "\"num_hidden_layers\": 2, \"num_attention_heads\": 2, "
                 "\"intermediate_size\": 128, \"vocab_size\": 100}",
                 &in);
    cfg = config_for(64, 1, KV_TYPE_Q8_0, 0);
    assert_int_equal(planner_plan_make(&in, &cfg, &p, &err), 0); // head dim 64
    parse_config("{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 96, "
                 "\"num_hidden_layers\": 2, \"num_attention_heads\": 2, "
                 "\"intermediate_size\": 128, \"vocab_size\": 100}",
                 &in);
    assert_int_equal(planner_plan_make(&in, &cfg, &p, &err), GARLIC_EUNSUPPORTED);
}

// ---- GGUF: the plan equals what the allocating code takes ----

static const char *synth_model(const char *name, const char *arch, uint32_t type)
{
    model_synth_params sp;
    model_synth_params_default(&sp);
    sp.arch = arch;
    sp.type = type;
    const char *path = test_temp_path(name);
    garlic_error err;
    if (model_synth_write(&sp, path, &err))
        fail_msg("%s", err.message);
    return path;
}

static void test_gguf_exact(void **state)
{
    (void)state;
    const char *path = synth_model("q8.gguf", "qwen3", TENSOR_TYPE_Q8_0);
    planner_input in;
    garlic_error err = {0};
    assert_int_equal(planner_from_path(path, &in, &err), 0);
    assert_int_equal(in.source, PLANNER_SOURCE_GGUF);
    assert_string_equal(in.arch, "qwen3");
    model *m = model_load(path, &err);
    assert_non_null(m);
    assert_memory_equal(&in.hp, &m->hp, sizeof in.hp);
    model_info info;
    assert_int_equal(model_info_read(m->file, &info, &err), 0);
    assert_int_equal(in.weights.n_params, info.n_params);
    assert_int_equal(in.weights.tensor_bytes, info.weight_bytes);
    assert_int_equal(in.weights.tensor_bytes + in.weights.mapping_bytes, m->file->size);
    assert_int_equal(find_type(&in, "Q8_0", false)->n_elements, info.type_params[TENSOR_TYPE_Q8_0]);
    assert_int_equal(find_type(&in, "F32", false)->n_tensors, info.type_tensors[TENSOR_TYPE_F32]);

    static const kv_type types[] = {KV_TYPE_F16, KV_TYPE_Q8_0, KV_TYPE_FP8_E4M3, KV_TYPE_F32};
    static const uint32_t ctxs[] = {1, 16, 17, 512};
    for (size_t t = 0; t < 4; t++)
        for (size_t c = 0; c < 4; c++) {
            planner_config cfg = config_for(ctxs[c], 3, types[t], 0);
            cfg.max_batch = 64, cfg.logit_rows = 64, cfg.n_threads = 2;
            planner_plan p;
            assert_int_equal(planner_plan_make(&in, &cfg, &p, &err), 0);
            assert_int_equal(p.kv_blocks, 3 * ((ctxs[c] + 15) / 16));
            kv_cache_config kc = model_kv_config(m, types[t], 16, p.kv_blocks);
            kv_cache *kv = kv_cache_new(&kc, &err);
            assert_non_null(kv);
            assert_int_equal(p.kv_bytes, kv_cache_bytes(kv));
            kv_cache_free(kv);
            model_state_config sc = {
                .n_ctx = ctxs[c], .max_batch = 64, .logit_rows = 64, .n_threads = 2};
            model_state *s = model_state_new(m, &sc, &err);
            assert_non_null(s);
            assert_int_equal(p.scratch_bytes, model_state_bytes(s));
            model_state_free(s);
            assert_int_equal(p.weight_bytes, m->file->size);
        }
    model_free(m);

    // A damaged file: the error names it.
    size_t size;
    uint8_t *bytes = test_read_file(path, &size);
    assert_non_null(bytes);
    const char *cut = test_temp_path("cut.gguf");
    assert_int_equal(test_write_file(cut, bytes, size / 2), 0);
    free(bytes);
    assert_int_not_equal(planner_from_path(cut, &in, &err), 0);
    assert_non_null(strstr(err.message, "cut.gguf"));
}

// Multi-head latent attention (deepseek2): the pool holds one K row of latent and RoPE key
// per position and layer and no V rows; the plan says so, and says what is allocated.
static void test_gguf_mla(void **state)
{
    (void)state;
    model_synth_params sp;
    model_synth_params_default(&sp);
    sp.arch = "deepseek2", sp.n_layer = 3, sp.n_head = 4, sp.head_dim = 64, sp.rope_dims = 32;
    sp.q_lora_rank = 64, sp.kv_lora_rank = 96, sp.n_dense_lead = 1, sp.n_expert = 4;
    sp.n_expert_used = 2, sp.ffn_exp = 64, sp.n_shared_experts = 1;
    const char *path = test_temp_path("mla.gguf");
    garlic_error err = {0};
    if (model_synth_write(&sp, path, &err))
        fail_msg("%s", err.message);
    planner_input in;
    assert_int_equal(planner_from_path(path, &in, &err), 0);
    model *m = model_load(path, &err);
    assert_non_null(m);
    static const kv_type types[] = {KV_TYPE_F16, KV_TYPE_Q8_0, KV_TYPE_FP8_E4M3, KV_TYPE_F32};
    static const uint64_t bytes_per_row[] = {128 * 2, 4 * 34, 128, 128 * 4}; // 96 + 32 values
    for (size_t t = 0; t < 4; t++) {
        planner_config cfg = config_for(100, 2, types[t], 0);
        cfg.max_batch = 32, cfg.logit_rows = 4, cfg.n_threads = 2;
        planner_plan p;
        assert_int_equal(planner_plan_make(&in, &cfg, &p, &err), 0);
        assert_int_equal(p.kv_bytes_per_token, 3 * bytes_per_row[t]);
        kv_cache_config kc = model_kv_config(m, types[t], 16, p.kv_blocks);
        assert_int_equal(kc.head_dim_v, 0);
        kv_cache *kv = kv_cache_new(&kc, &err);
        assert_non_null(kv);
        assert_int_equal(p.kv_bytes, kv_cache_bytes(kv));
        kv_cache_free(kv);
        model_state_config sc = {.n_ctx = 100, .max_batch = 32, .logit_rows = 4, .n_threads = 2};
        model_state *s = model_state_new(m, &sc, &err);
        assert_non_null(s);
        assert_int_equal(p.scratch_bytes, model_state_bytes(s));
        model_state_free(s);
    }
    model_free(m);
}

// A model with sliding-window layers (here a llama model whose odd layers get a window of
// 256, as gemma3 and gpt-oss set theirs): the plan gives the KV bytes per token of each kind,
// full blocks for the contexts and window blocks for the running sequences and the step, and
// its pool figure is what kv_cache_new, and an engine started as the server starts it,
// allocate. Without the windows the plan is the all-full one, whose data is larger by
// exactly the window layers' rows of the blocks saved.
static void test_window_plan(void **state)
{
    (void)state;
    model_synth_params sp;
    model_synth_params_default(&sp);
    sp.n_layer = 6, sp.context = 4096;
    const char *path = test_temp_path("window-plan.gguf");
    garlic_error err = {0};
    if (model_synth_write(&sp, path, &err))
        fail_msg("%s", err.message);
    model *m = model_load(path, &err);
    assert_non_null(m);
    planner_input flat, in;
    assert_int_equal(planner_from_model(m, path, &flat, &err), 0);
    for (uint32_t l = 1; l < 6; l += 2)
        m->layers[l].window = 256;
    assert_int_equal(planner_from_model(m, path, &in, &err), 0);
    assert_int_equal(kv_windows_count(&in.windows, 6), 3);
    assert_int_equal(kv_windows_count(&flat.windows, 6), 0);
    static const kv_type types[] = {KV_TYPE_F16, KV_TYPE_Q8_0, KV_TYPE_F32};
    for (size_t t = 0; t < 3; t++) {
        planner_config cfg = config_for(4096, 4, types[t], 0);
        cfg.running = 4, cfg.max_batch = 512, cfg.logit_rows = 4, cfg.n_threads = 2;
        planner_plan p, q;
        assert_int_equal(planner_plan_make(&in, &cfg, &p, &err), 0);
        assert_int_equal(planner_plan_make(&flat, &cfg, &q, &err), 0);
        uint64_t row = 0, k_row, v_row; // K + V of one layer and position
        kv_cache_config kc = planner_kv_config(&in, types[t], 16);
        assert_int_equal(kv_cache_row_bytes(&kc, &k_row, &v_row, &err), 0);
        row = k_row + v_row;
        assert_int_equal(p.n_window_layers, 3);
        assert_int_equal(p.window, 256);
        assert_int_equal(p.kv_bytes_per_token, 6 * row);
        assert_int_equal(p.kv_full_bytes_per_token, 3 * row);
        assert_int_equal(p.kv_window_bytes_per_token, 3 * row);
        assert_int_equal(p.kv_blocks, 1024);
        // 4 x (floor((256 + 13) / 16) + 1 + 1) + 512 / 16 - 1
        assert_int_equal(p.kv_window_blocks, 4 * 18 + 31);
        assert_int_equal(p.kv_data_bytes, 1024ull * 16 * 3 * row + 103ull * 16 * 3 * row);
        assert_int_equal(q.n_window_layers, 0);
        assert_int_equal(q.kv_window_blocks, 0);
        assert_int_equal(q.kv_full_bytes_per_token, q.kv_bytes_per_token);
        assert_int_equal(q.kv_data_bytes - p.kv_data_bytes, (1024ull - 103) * 16 * 3 * row);
        assert_true(p.total_bytes < q.total_bytes);
        assert_int_equal(q.total_bytes - p.total_bytes, q.kv_bytes - p.kv_bytes);
        // The pool as the server makes it.
        kc = model_kv_config(m, types[t], 16, p.kv_blocks);
        kc.n_window_blocks = p.kv_window_blocks;
        kv_cache *kv = kv_cache_new(&kc, &err);
        assert_non_null(kv);
        assert_int_equal(kv_cache_bytes(kv), p.kv_bytes);
        assert_int_equal(kv_cache_get_stats(kv).n_window_blocks, p.kv_window_blocks);
        kv_cache_free(kv);
        // One sequence: its blocks of the context, and the window blocks of one sequence.
        kc.n_window_blocks = kv_window_blocks_for(&kc, 1, 512);
        uint64_t one;
        assert_int_equal(kv_cache_bytes_for(&kc, 256, &one, &err), 0);
        assert_int_equal(p.kv_bytes_per_seq, one);
    }
    // The engine the registry starts from the plan (running sequences, step, blocks; the
    // window blocks left to it) allocates the planned pool too.
    planner_config cfg = config_for(4096, 4, KV_TYPE_F16, 0);
    cfg.running = 4, cfg.max_batch = 512, cfg.logit_rows = 4, cfg.n_threads = 2;
    planner_plan p;
    assert_int_equal(planner_plan_make(&in, &cfg, &p, &err), 0);
    tokenizer *tok = tokenizer_load(m->file, &err);
    thread_pool *pool = thread_pool_new(2, &err);
    assert_non_null(tok);
    assert_non_null(pool);
    engine_config ec = {.name = "w",
                        .weights = m,
                        .tok = tok,
                        .kv_type = KV_TYPE_F16,
                        .kv_blocks = p.kv_blocks,
                        .n_ctx = 4096,
                        .parallel = p.cfg.running,
                        .step_tokens = p.cfg.max_batch,
                        .pool = pool};
    for (int given = 0; given < 2; given++) {
        ec.kv_window_blocks = given ? p.kv_window_blocks : 0;
        engine *e = engine_new(&ec, &err);
        if (!e)
            fail_msg("%s", err.message);
        engine_counters k;
        engine_counters_get(e, &k);
        assert_int_equal(k.kv_bytes, p.kv_bytes);
        assert_int_equal(k.kv_window_blocks, p.kv_window_blocks);
        assert_true(k.kv_window_bytes > 103ull * 16 * p.kv_window_bytes_per_token);
        engine_free(e);
    }
    thread_pool_free(pool);
    tokenizer_free(tok);
    model_free(m);
}

static void test_gguf_shared(void **state)
{
    (void)state;
    skip_without_shared();
    planner_input in;
    garlic_error err = {0};
    const char *path = test_shared_path("models/stories260K.gguf");
    if (planner_from_path(path, &in, &err))
        fail_msg("%s", err.message);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(in.weights.tensor_bytes + in.weights.mapping_bytes, (uint64_t)sb.st_size);
}

// ---- safetensors headers into the weights table ----

// The tensors of a header grouped by type: scales apart, norms counted, bytes summed.
static void test_safetensors_weights(void **state)
{
    (void)state;
    size_t size;
    uint8_t *buf = st_image(st_good, 5, 52, &size);
    planner_weights w = {0};
    garlic_error err = {0};
    if (hf_safetensors_parse(buf, size, size, "t.safetensors", planner_weights_add_hf_tensor, &w,
                             &err))
        fail_msg("%s", err.message);
    free(buf);
    assert_int_equal(w.n_tensors, 5);
    assert_int_equal(w.n_params, 4 + 32 + 0 + 1);
    assert_int_equal(w.n_params_norm, 4);
    assert_int_equal(w.tensor_bytes, 52);
    assert_int_equal(w.mapping_bytes, 0); // the caller's to add (test_folders)
    planner_input in = {.weights = w};
    assert_int_equal(find_type(&in, "F32", true)->bytes, 4);
    assert_int_equal(find_type(&in, "F8_E4M3", false)->n_elements, 32);
    assert_int_equal(find_type(&in, "BF16", false)->n_elements, 4);
}

// ---- folders of shards ----

static const char tiny_config[] =
    "{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 64, \"num_hidden_layers\": 2, "
    "\"num_attention_heads\": 4, \"intermediate_size\": 128, \"vocab_size\": 100, "
    "\"torch_dtype\": \"bfloat16\"}";
static const char shard_a[] =
    "{\"embed\": {\"dtype\": \"BF16\", \"shape\": [100, 64], \"data_offsets\": [0, 12800]}}";
static const char shard_b[] =
    "{\"norm\": {\"dtype\": \"F32\", \"shape\": [64], \"data_offsets\": [0, 256]}, "
    "\"w\": {\"dtype\": \"F8_E4M3\", \"shape\": [128, 64], \"data_offsets\": [256, 8448]}}";

static void test_folders(void **state)
{
    (void)state;
    // Without an index: every *.safetensors of the folder.
    const char *dir = make_dir("glob");
    write_text(dir, "config.json", tiny_config);
    write_shard(dir, "model-00001-of-00002.safetensors", shard_a, 12800);
    write_shard(dir, "model-00002-of-00002.safetensors", shard_b, 8448);
    planner_input in;
    garlic_error err = {0};
    if (planner_from_path(dir, &in, &err))
        fail_msg("%s", err.message);
    assert_int_equal(in.source, PLANNER_SOURCE_SAFETENSORS);
    assert_int_equal(in.n_files, 2);
    assert_int_equal(in.weights.n_params, 6400 + 64 + 8192);
    assert_int_equal(in.weights.n_params_norm, 64);
    assert_int_equal(in.weights.tensor_bytes, 12800 + 256 + 8192);
    assert_int_equal(in.weights.mapping_bytes, 16 + strlen(shard_a) + strlen(shard_b));
    assert_string_equal(in.assumption, "");
    assert_int_equal(in.hp.n_layer, 2);

    // With an index: only the files it names; a missing one is an error naming it.
    dir = make_dir("indexed");
    write_text(dir, "config.json", tiny_config);
    write_shard(dir, "a.safetensors", shard_a, 12800);
    write_shard(dir, "unlisted.safetensors", shard_b, 8448);
    write_text(dir, "model.safetensors.index.json",
               "{\"metadata\": {}, \"weight_map\": {\"embed\": \"a.safetensors\", "
               "\"x\": \"a.safetensors\"}}");
    char config[1024];
    snprintf(config, sizeof config, "%s/config.json", dir);
    assert_int_equal(planner_from_path(config, &in, &err), 0);
    assert_int_equal(in.n_files, 1);
    assert_int_equal(in.weights.tensor_bytes, 12800);
    write_text(dir, "model.safetensors.index.json",
               "{\"weight_map\": {\"embed\": \"a.safetensors\", \"w\": \"b.safetensors\"}}");
    assert_int_equal(planner_from_path(dir, &in, &err), GARLIC_EIO);
    assert_non_null(strstr(err.message, "b.safetensors"));
    write_text(dir, "model.safetensors.index.json", "{\"weight_map\": {\"w\": \"../x\"}}");
    assert_int_equal(planner_from_path(dir, &in, &err), GARLIC_EFORMAT);
    assert_non_null(strstr(err.message, "weight_map"));
    write_text(dir, "model.safetensors.index.json", "{\"weight_map\": 3}");
    assert_int_equal(planner_from_path(dir, &in, &err), GARLIC_EFORMAT);
    assert_non_null(strstr(err.message, "model.safetensors.index.json"));

    // A malformed shard: the error names the file and the field.
    dir = make_dir("bad");
    write_text(dir, "config.json", tiny_config);
    write_shard(dir, "m.safetensors", edited(shard_b, "[256, 8448]", "[256, 8447]"), 8448);
    assert_int_equal(planner_from_path(dir, &in, &err), GARLIC_EFORMAT);
    assert_non_null(strstr(err.message, "m.safetensors"));
    assert_non_null(strstr(err.message, "tensor 'w'"));
    write_shard(dir, "m.safetensors", shard_b, 100); // shorter than the offsets say
    assert_int_equal(planner_from_path(dir, &in, &err), GARLIC_EFORMAT);
    assert_non_null(strstr(err.message, "data ends at byte"));

    // Missing files and fields.
    assert_int_equal(planner_from_path(test_temp_path("nowhere"), &in, &err), GARLIC_EIO);
    assert_non_null(strstr(err.message, "nowhere"));
    dir = make_dir("nolayers");
    write_text(dir, "config.json", edited(tiny_config, "\"num_hidden_layers\": 2, ", ""));
    assert_int_equal(planner_from_path(dir, &in, &err), GARLIC_EFORMAT);
    assert_non_null(strstr(err.message, "nolayers/config.json: num_hidden_layers is missing"));
}

// Every allocation failing in turn: a clean GARLIC_ENOMEM (or success), nothing leaked.
// The GPU's share of a plan (estimate --device, the registry's --gpu-layers auto): the first
// layers' weights (as the loaded model counts what a device uploads) and KV rows, the output
// with every layer, the host keeping the rest; auto takes as many layers as fit to the byte.
static void test_device_plan(void **state)
{
    (void)state;
    const char *path = synth_model("device-plan.gguf", "llama", TENSOR_TYPE_Q8_0);
    garlic_error err = {0};
    planner_input *in = malloc(sizeof *in);
    assert_non_null(in);
    assert_int_equal(planner_from_model_path(path, NULL, in, &err), GARLIC_OK);
    assert_true(in->layers_known);
    planner_config cfg;
    planner_config_default(&cfg);
    planner_plan plan;
    assert_int_equal(planner_plan_make(in, &cfg, &plan, &err), GARLIC_OK);
    model *m = model_load(path, &err);
    assert_non_null(m);
    uint32_t n = m->hp.n_layer;
    planner_device_plan all, none, two;
    assert_int_equal(planner_device_plan_make(in, &plan, n, UINT32_MAX, 0, 1000, &all, &err), 0);
    assert_int_equal(planner_device_plan_make(in, &plan, 0, UINT32_MAX, 0, 1000, &none, &err), 0);
    uint64_t weights = model_device_layer_bytes(m, n); // (the output's)
    for (uint32_t l = 0; l < n; l++)
        weights += model_device_layer_bytes(m, l);
    assert_int_equal(all.layers, n);
    assert_true(all.output);
    assert_int_equal(all.weight_bytes, weights);
    assert_int_equal(all.kv_bytes, plan.kv_data_bytes); // every layer's rows (no windows)
    assert_int_equal(all.overhead_bytes, 1000);
    assert_int_equal(all.host_weight_bytes, plan.weight_bytes - weights);
    assert_int_equal(all.total_bytes,
                     all.weight_bytes + all.kv_bytes + all.scratch_bytes + all.overhead_bytes);
    assert_int_equal(none.total_bytes, 0);
    assert_int_equal(none.host_weight_bytes, plan.weight_bytes);
    assert_true(n >= 2);
    assert_int_equal(planner_device_plan_make(in, &plan, 1, UINT32_MAX, 0, 0, &two, &err), 0);
    assert_int_equal(two.weight_bytes, model_device_layer_bytes(m, 0));
    assert_int_equal(two.kv_bytes, plan.kv_data_bytes / n);
    assert_false(two.output);
    // auto: memory for exactly one layer (after the buffers, the overhead and 256 MiB), then a
    // byte less.
    uint64_t memory = two.weight_bytes + two.kv_bytes + plan.scratch_bytes + 1000 +
        (UINT64_C(256) << 20);
    planner_device_plan fit;
    assert_int_equal(planner_device_plan_make(in, &plan, -1, UINT32_MAX, memory, 1000, &fit, &err),
                     0);
    assert_int_equal(fit.layers, 1);
    assert_true(fit.fits);
    assert_int_equal(
        planner_device_plan_make(in, &plan, -1, UINT32_MAX, memory - 1, 1000, &fit, &err), 0);
    assert_int_equal(fit.layers, 0);
    assert_int_equal(planner_device_plan_make(in, &plan, -1, 1, UINT64_MAX / 4, 0, &fit, &err), 0);
    assert_int_equal(fit.layers, 1); // at most the layers the device can run
    model_free(m);
    free(in);
}

static void test_alloc_failures(void **state)
{
    (void)state;
    const char *dir = make_dir("alloc");
    write_text(dir, "config.json", tiny_config);
    write_shard(dir, "model-00001-of-00002.safetensors", shard_a, 12800);
    write_shard(dir, "model-00002-of-00002.safetensors", shard_b, 8448);
    write_text(dir, "model.safetensors.index.json",
               "{\"weight_map\": {\"embed\": \"model-00001-of-00002.safetensors\", "
               "\"w\": \"model-00002-of-00002.safetensors\"}}");
    bool done = false;
    for (long n = 0; n < 200 && !done; n++) {
        planner_input in;
        garlic_error err = {0};
        garlic_alloc_fail_after(n);
        int rc = planner_from_path(dir, &in, &err);
        garlic_alloc_fail_reset();
        if (rc == GARLIC_OK)
            done = true;
        else if (rc != GARLIC_ENOMEM)
            fail_msg("failing allocation %ld: %d %s", n, rc, err.message);
    }
    assert_true(done);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_inline), cmocka_unit_test(test_reference_file),
        cmocka_unit_test(test_concurrency_rule), cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_architectures),    cmocka_unit_test(test_plan_errors),
        cmocka_unit_test(test_gguf_exact),       cmocka_unit_test(test_gguf_mla),
        cmocka_unit_test(test_gguf_shared),      cmocka_unit_test(test_safetensors_weights),
        cmocka_unit_test(test_folders),          cmocka_unit_test(test_alloc_failures),
        cmocka_unit_test(test_window_plan),      cmocka_unit_test(test_device_plan),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
