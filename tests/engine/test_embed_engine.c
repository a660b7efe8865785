// SPDX-License-Identifier: MIT
// Embed requests through the engine: several inputs of different lengths submitted at once
// run batched (several sequences a step, a causal model's long inputs in chunks) and each comes back as the vector model_forward_hidden, the
// model's pooling and normalization give for it alone; an encoder refuses to generate and
// refuses an input longer than one step; a decoder serves both kinds of request.
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/threadpool.h"
#include "engine/engine.h"
#include "model/model.h"
#include "model/synth.h"
#include "tokenizer/tokenizer.h"
#include "util.h"

enum { N_INPUTS = 7, N_CTX = 256 };

static thread_pool *pool;

// The first forward pass waits until every input is submitted, so that the rest are queued
// together and must share the following steps.
static atomic_bool released;

static atomic_uint passes; // forward passes of the current engine

static void hold_first_step(void *user)
{
    (void)user;
    atomic_fetch_add(&passes, 1);
    while (!atomic_load(&released)) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
}

static int setup(void **state)
{
    (void)state;
    garlic_error err = {0};
    pool = thread_pool_new(2, &err);
    return pool ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    thread_pool_free(pool);
    return 0;
}

// A synthesized model of arch with the pooling given (-1: the file's default).
static model *synth_model(const char *arch, int pooling, uint32_t n_head_kv)
{
    model_synth_params p;
    model_synth_params_default(&p);
    p.arch = arch, p.dim = 64, p.n_layer = 2, p.n_head = 4, p.n_head_kv = n_head_kv;
    p.ffn = 128, p.context = N_CTX, p.vocab = 400, p.pooling = pooling, p.seed = 7;
    char name[96];
    snprintf(name, sizeof name, "embed-%s-%d.gguf", arch, pooling);
    const char *path = test_temp_path(name);
    garlic_error err = {0};
    model *m = NULL;
    if (model_synth_write(&p, path, &err) || !(m = model_load(path, &err)))
        fail_msg("%s: %s", arch, err.message);
    model_prefault(m, NULL, NULL);
    return m;
}

// Input i: a length between 1 and ~90 tokens of ids in [5, 400).
static uint32_t make_input(int i, int32_t *ids)
{
    uint32_t n = (uint32_t)(1 + (i * 37) % 90);
    for (uint32_t j = 0; j < n; j++)
        ids[j] = (int32_t)(5 + (i * 131 + j * 17) % 395);
    return n;
}

// The vector of one input computed alone, outside the engine.
static void solo_vector(const model *m, const int32_t *ids, uint32_t n, float *out)
{
    garlic_error err = {0};
    model_state_config cfg = {.n_ctx = N_CTX, .max_batch = N_CTX, .logit_rows = 1, .pool = pool};
    model_state *s = model_state_new(m, &cfg, &err);
    kv_cache *kv = s ? model_kv_new_single(m, KV_TYPE_F32, N_CTX, &err) : NULL;
    kv_seq seq;
    kv_seq_init(&seq);
    const float *hidden;
    if (!kv || kv_seq_reserve(kv, &seq, N_CTX, &err) ||
        model_forward_hidden(s, kv, &seq, ids, n, &hidden, &err))
        fail_msg("solo: %s", err.message);
    memset(out, 0, m->hp.dim * sizeof *out);
    model_pool_rows(m->hp.pooling, hidden, m->hp.dim, n, 0, n, m->hp.dim, out);
    model_pool_finish(m->hp.pooling, out, n, m->hp.dim);
    model_embed_normalize(out, m->hp.dim);
    kv_seq_deinit(kv, &seq);
    kv_cache_free(kv);
    model_state_free(s);
}

static engine *start(const model *m, tokenizer *tok, uint32_t step, uint32_t kv_tokens)
{
    engine_config cfg = {.name = "embed",
                         .weights = m,
                         .tok = tok,
                         .kv_type = KV_TYPE_F32,
                         .kv_blocks = (kv_tokens + KV_DEFAULT_BLOCK_TOKENS - 1) /
                             KV_DEFAULT_BLOCK_TOKENS,
                         .n_ctx = N_CTX,
                         .parallel = 4,
                         .step_tokens = step,
                         .pool = pool,
                         .hooks = {.compute_begin = hold_first_step}};
    garlic_error err = {0};
    engine *e = engine_new(&cfg, &err);
    if (!e)
        fail_msg("engine_new: %s", err.message);
    return e;
}

static engine_request *embed_request(const int32_t *ids, uint32_t n)
{
    engine_request_params p = {.prompt = ids, .n_prompt = n, .n_choices = 1, .embed = true};
    garlic_error err = {0};
    engine_request *r = engine_request_new(&p, &err);
    if (!r)
        fail_msg("engine_request_new: %s", err.message);
    return r;
}

// Submits every input at once and checks each vector against its solo computation.
static void check_batched(const char *arch, int pooling, uint32_t step, uint32_t kv_tokens)
{
    model *m = synth_model(arch, pooling, strcmp(arch, "qwen3") == 0 ? 2 : 4);
    garlic_error err = {0};
    tokenizer *tok = tokenizer_load(m->file, &err);
    assert_non_null(tok);
    atomic_store(&released, false);
    atomic_store(&passes, 0);
    engine *e = start(m, tok, step, kv_tokens);
    int32_t ids[N_INPUTS][128];
    uint32_t lens[N_INPUTS];
    engine_request *r[N_INPUTS];
    for (int i = 0; i < N_INPUTS; i++) {
        lens[i] = make_input(i, ids[i]);
        r[i] = embed_request(ids[i], lens[i]);
        if (engine_submit(e, r[i], &err))
            fail_msg("%s: submit %d: %s", arch, i, err.message);
    }
    atomic_store(&released, true);
    uint32_t dim = m->hp.dim;
    float *got = calloc((size_t)N_INPUTS * dim, sizeof *got), *want = calloc(dim, sizeof *want);
    assert_true(got && want);
    for (int i = 0; i < N_INPUTS; i++) {
        engine_chunk c;
        while (engine_request_next(r[i], &c, 1000) == 0 || !c.choice_done) {
            if (c.error)
                fail_msg("%s: input %d: %s", arch, i, c.error_message);
        }
        assert_int_equal(c.n_embd, dim);
        assert_int_equal(c.stats.n_prompt, lens[i]);
        memcpy(got + (size_t)i * dim, c.embedding, dim * sizeof *got);
        engine_request_release(r[i]);
    }
    engine_counters k;
    engine_counters_get(e, &k);
    unsigned n_passes = atomic_load(&passes);
    engine_free(e); // the solo runs below borrow its compute pool
    double worst = 0;
    for (int i = 0; i < N_INPUTS; i++) {
        solo_vector(m, ids[i], lens[i], want);
        for (uint32_t d = 0; d < dim; d++)
            worst = fmax(worst, fabs((double)got[(size_t)i * dim + d] - want[d]));
    }
    print_message("%s pooling %s, steps of %u: worst |batched - solo| %.2e, %u forward passes "
                  "for %d inputs, preemptions %llu\n",
                  arch, model_pooling_name(m->hp.pooling), step, worst, n_passes, N_INPUTS,
                  (unsigned long long)k.preemptions);
    if (worst > 1e-5)
        fail_msg("%s: batched vectors differ from solo ones by %.3g", arch, worst);
    // The inputs shared steps: fewer passes than inputs, though the longest spans several.
    if (step >= 128)
        assert_true(n_passes < N_INPUTS);
    free(got);
    free(want);
    tokenizer_free(tok);
    model_free(m);
}

static void test_bert_mean(void **state)
{
    (void)state;
    check_batched("bert", MODEL_POOLING_MEAN, 128, 4 * N_CTX);
}

static void test_nomic_cls(void **state)
{
    (void)state;
    check_batched("nomic-bert", MODEL_POOLING_CLS, 128, 4 * N_CTX);
}

// A causal model's inputs span steps of 16 tokens and are pooled chunk by chunk (last
// token, and mean), in a pool that holds only one context plus a block.
static void test_decoder_chunks(void **state)
{
    (void)state;
    check_batched("qwen3", MODEL_POOLING_LAST, 16, 4 * N_CTX);
    check_batched("qwen3", MODEL_POOLING_MEAN, 16, N_CTX + 16);
}

// A greedy generation of max_tokens on e (the end token banned); its ids into out.
static uint32_t generate(engine *e, const int32_t *prompt, size_t n, uint32_t max_tokens,
                         int32_t *out, engine_request **started)
{
    static const sampler_bias no_eos = {.token = 2, .bias = -INFINITY};
    engine_request_params p = {.prompt = prompt, .n_prompt = n, .n_choices = 1};
    p.generation.sampling = sampler_params_default(400);
    p.generation.sampling.temperature = 0;
    p.generation.sampling.logit_bias = &no_eos;
    p.generation.sampling.n_logit_bias = 1;
    p.generation.max_tokens = max_tokens;
    p.generation.logprobs = true;
    garlic_error err = {0};
    engine_request *r = engine_request_new(&p, &err);
    if (!r || engine_submit(e, r, &err))
        fail_msg("generate: %s", err.message);
    if (started) { // the caller reads it later
        *started = r;
        return 0;
    }
    uint32_t k = 0;
    for (;;) {
        engine_chunk c;
        if (!engine_request_next(r, &c, 1000))
            continue;
        assert_int_equal(c.error, GARLIC_OK);
        for (size_t i = 0; i < c.n_tokens; i++)
            out[k++] = c.tokens[i].id;
        if (c.all_done)
            break;
    }
    engine_request_release(r);
    return k;
}

// On a decoder, embed requests and a generation share steps (the batch keeps hidden states
// and logits at once): the generated tokens and the vectors equal those computed alone.
static void test_mixed_with_generation(void **state)
{
    (void)state;
    model *m = synth_model("qwen3", MODEL_POOLING_LAST, 2);
    garlic_error err = {0};
    tokenizer *tok = tokenizer_load(m->file, &err);
    atomic_store(&released, false);
    engine *e = start(m, tok, 64, 4 * N_CTX);
    int32_t prompt[12], ids[3][128], mixed[16], alone[16];
    for (int i = 0; i < 12; i++)
        prompt[i] = 10 + 7 * i;
    engine_request *g;
    generate(e, prompt, 12, 16, NULL, &g);
    engine_request *r[3];
    uint32_t lens[3];
    for (int i = 0; i < 3; i++) {
        lens[i] = make_input(i + 2, ids[i]);
        r[i] = embed_request(ids[i], lens[i]);
        if (engine_submit(e, r[i], &err))
            fail_msg("submit: %s", err.message);
    }
    atomic_store(&released, true);
    uint32_t dim = m->hp.dim, n_mixed = 0;
    float got[3][64], want[64];
    assert_true(dim <= 64);
    for (int i = 0; i < 3; i++) {
        engine_chunk c;
        while (engine_request_next(r[i], &c, 1000) == 0 || !c.choice_done)
            if (c.error)
                fail_msg("input %d: %s", i, c.error_message);
        memcpy(got[i], c.embedding, dim * sizeof(float));
        engine_request_release(r[i]);
    }
    for (;;) {
        engine_chunk c;
        if (!engine_request_next(g, &c, 1000))
            continue;
        assert_int_equal(c.error, GARLIC_OK);
        for (size_t i = 0; i < c.n_tokens; i++)
            mixed[n_mixed++] = c.tokens[i].id;
        if (c.all_done)
            break;
    }
    engine_request_release(g);
    uint32_t n_alone = generate(e, prompt, 12, 16, alone, NULL);
    engine_free(e);
    assert_int_equal(n_mixed, 16);
    assert_int_equal(n_alone, 16);
    assert_memory_equal(mixed, alone, sizeof mixed);
    for (int i = 0; i < 3; i++) {
        solo_vector(m, ids[i], lens[i], want);
        for (uint32_t d = 0; d < dim; d++)
            if (fabs((double)got[i][d] - want[d]) > 1e-5)
                fail_msg("input %d value %u: %g beside a generation, %g alone", i, d, got[i][d],
                         want[d]);
    }
    tokenizer_free(tok);
    model_free(m);
}

// An encoder refuses to generate, and refuses an input longer than one step; a decoder with
// embeddings takes both kinds of request.
static void test_refusals(void **state)
{
    (void)state;
    model *m = synth_model("bert", -1, 4);
    garlic_error err = {0};
    tokenizer *tok = tokenizer_load(m->file, &err);
    atomic_store(&released, true);
    engine *e = start(m, tok, 32, 4 * N_CTX);
    int32_t ids[64];
    for (int i = 0; i < 64; i++)
        ids[i] = 5 + i;
    engine_request_params gp = {.prompt = ids, .n_prompt = 8, .n_choices = 1};
    engine_request *g = engine_request_new(&gp, &err);
    assert_int_equal(engine_submit(e, g, &err), GARLIC_EINVAL);
    assert_non_null(strstr(err.message, "embeddings only"));
    engine_request_release(g);
    engine_request *r = embed_request(ids, 33);
    assert_int_equal(engine_submit(e, r, &err), GARLIC_EINVAL);
    assert_non_null(strstr(err.message, "at most 32"));
    engine_request_release(r);
    assert_int_equal(engine_max_embed_tokens(e), 32);
    assert_int_equal(m->hp.pooling, MODEL_POOLING_MEAN); // an encoder's default
    engine_request_params two = {.prompt = ids, .n_prompt = 4, .n_choices = 2, .embed = true};
    assert_null(engine_request_new(&two, &err));
    engine_free(e);
    tokenizer_free(tok);
    model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bert_mean),      cmocka_unit_test(test_nomic_cls),
        cmocka_unit_test(test_decoder_chunks), cmocka_unit_test(test_mixed_with_generation),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
