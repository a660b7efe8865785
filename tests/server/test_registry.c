// SPDX-License-Identifier: MIT
// The registry in-process: naming and lookup, loading on first use, a request's chunks and
// per-choice ends, cancellation within one token, the bounded queue, and parsing checks of
// api_request_parse that need no server.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "api/api.h"
#include "base/alloc.h"
#include "model/synth.h"
#include "registry/registry.h"
#include "util.h"

static char model_path[600];

static int setup(void **state)
{
    (void)state;
    synth_params p;
    synth_params_default(&p);
    p.context = 2048;
    snprintf(model_path, sizeof model_path, "%s", test_temp_path("registry-model.gguf"));
    garlic_error err;
    return synth_write(&p, model_path, &err) ? -1 : 0;
}

static registry *new_registry_with(const registry_config *c)
{
    registry_config cfg = *c;
    garlic_error err = {0};
    registry *reg = registry_new(&cfg, &err);
    assert_non_null(reg);
    assert_int_equal(registry_add(reg, model_path, "m", &err), GARLIC_OK);
    return reg;
}

static registry *new_registry(uint32_t max_queue)
{
    registry_config cfg = {.n_ctx = 2048, .max_queue = max_queue, .n_threads = 1,
                           .kv_type = KV_TYPE_F16, .parallel = 1};
    garlic_error err = {0};
    registry *reg = registry_new(&cfg, &err);
    assert_non_null(reg);
    assert_int_equal(registry_add(reg, model_path, "m", &err), GARLIC_OK);
    return reg;
}

// The model "m" of reg, loaded.
static registry_model *acquire(registry *reg)
{
    registry_model *m = registry_find(reg, "m");
    double seconds;
    garlic_error err = {0};
    assert_int_equal(registry_model_acquire(m, &seconds, &err), GARLIC_OK);
    return m;
}

static engine_request *new_request(uint32_t max_tokens, uint32_t n_choices)
{
    static const int32_t prompt[] = {1, 300, 301, 302};
    static const sampler_bias no_eos = {.token = 2, .bias = -INFINITY};
    engine_request_params p = {.prompt = prompt, .n_prompt = 4, .n_choices = n_choices,
                                 .seeded = true};
    p.generation.sampling = sampler_params_default(512);
    p.generation.sampling.seed = 5;
    p.generation.sampling.logit_bias = &no_eos;
    p.generation.sampling.n_logit_bias = 1;
    p.generation.max_tokens = max_tokens;
    garlic_error err = {0};
    engine_request *r = engine_request_new(&p, &err);
    assert_non_null(r);
    return r;
}

static void test_names_and_loading(void **state)
{
    (void)state;
    registry *reg = new_registry(4);
    garlic_error err = {0};
    assert_int_equal(registry_add(reg, model_path, NULL, &err), GARLIC_OK);
    assert_non_null(registry_find(reg, "registry-model"));
    assert_int_equal(registry_add(reg, model_path, "m", &err), GARLIC_EINVAL);
    assert_non_null(strstr(err.message, "exists already"));
    assert_int_equal(registry_add(reg, "/nonexistent.gguf", NULL, &err), GARLIC_EIO);
    registry_model *m = registry_find(reg, "m");
    assert_false(registry_model_loaded(m));
    double seconds;
    assert_int_equal(registry_model_acquire(m, &seconds, &err), GARLIC_OK);
    assert_true(registry_model_loaded(m));
    assert_int_equal(registry_model_n_ctx(m), 2048);
    assert_null(registry_model_template(m, NULL, NULL, NULL));
    registry_stats st;
    registry_stats_get(reg, &st);
    assert_int_equal(st.models_loaded, 1);
    registry_free(reg);
}

// Every choice's text arrives, then its end with max_tokens output tokens.
static void test_choices(void **state)
{
    (void)state;
    registry *reg = new_registry(4);
    registry_model *m = acquire(reg);
    garlic_error err = {0};
    engine_request *r = new_request(6, 3);
    assert_int_equal(registry_submit(m, r, &err), GARLIC_OK);
    uint32_t ends = 0;
    for (;;) {
        engine_chunk c;
        if (!engine_request_next(r, &c, 1000))
            continue;
        assert_int_equal(c.error, GARLIC_OK);
        if (c.choice_done) {
            assert_int_equal(c.choice, ends);
            assert_int_equal(c.output_tokens, 6);
            assert_int_equal(c.finish, ENGINE_FINISH_LENGTH);
            ends++;
        }
        if (c.all_done)
            break;
    }
    assert_int_equal(ends, 3);
    engine_request_release(r);
    registry_free(reg);
}

// After a cancel, the worker produces at most one more token.
static void test_cancel_within_one_token(void **state)
{
    (void)state;
    registry *reg = new_registry(4);
    registry_model *m = acquire(reg);
    garlic_error err = {0};
    engine_request *r = new_request(1500, 1);
    assert_int_equal(registry_submit(m, r, &err), GARLIC_OK);
    size_t text = 0;
    engine_chunk c;
    while (text < 10)
        if (engine_request_next(r, &c, 1000))
            text += c.len;
    engine_request_cancel(r);
    registry_stats before;
    registry_stats_get(reg, &before);
    do {
        while (!engine_request_next(r, &c, 1000)) {
        }
    } while (!c.all_done);
    registry_stats after;
    registry_stats_get(reg, &after);
    assert_true(after.generated_tokens - before.generated_tokens <= 1);
    assert_int_equal(c.finish, ENGINE_FINISH_CANCEL);
    assert_true(c.output_tokens < 1500);
    assert_int_equal(after.requests_cancelled, 1);
    engine_request_release(r);
    registry_free(reg);
}

// A full queue refuses; a drained registry refuses; releasing queued requests is clean.
static void test_queue_limit(void **state)
{
    (void)state;
    registry *reg = new_registry(2);
    registry_model *m = acquire(reg);
    garlic_error err = {0};
    engine_request *rs[4];
    for (int i = 0; i < 4; i++)
        rs[i] = new_request(1500, 1);
    assert_int_equal(registry_submit(m, rs[0], &err), GARLIC_OK);
    for (int i = 0; i < 100 && registry_model_queue_length(m) > 0; i++) {
        engine_chunk c;
        engine_request_next(rs[0], &c, 10);
    }
    assert_int_equal(registry_submit(m, rs[1], &err), GARLIC_OK);
    assert_int_equal(registry_submit(m, rs[2], &err), GARLIC_OK);
    assert_int_equal(registry_submit(m, rs[3], &err), GARLIC_EFULL);
    assert_non_null(strstr(err.message, "try again later"));
    for (int i = 0; i < 4; i++)
        engine_request_release(rs[i]);
    registry_drain(reg, 0);
    engine_request *late = new_request(4, 1);
    assert_int_equal(registry_submit(m, late, &err), GARLIC_ESTOPPED);
    engine_request_release(late);
    registry_free(reg);
}

// ---- continuous batching ----

enum { MAX_OUT = 256 };

typedef struct run_result {
    int32_t ids[MAX_OUT];
    uint32_t n;
    engine_finish finish;
} run_result;

// A greedy request for prompt (EOS banned, max_tokens tokens, token ids reported).
static engine_request *greedy_request(const int32_t *prompt, size_t n_prompt, uint32_t max_tokens)
{
    static const sampler_bias no_eos = {.token = 2, .bias = -INFINITY};
    engine_request_params p = {.prompt = prompt, .n_prompt = n_prompt, .n_choices = 1};
    p.generation.sampling = sampler_params_default(512);
    p.generation.sampling.temperature = 0;
    p.generation.sampling.logit_bias = &no_eos;
    p.generation.sampling.n_logit_bias = 1;
    p.generation.max_tokens = max_tokens;
    p.generation.logprobs = true;
    garlic_error err = {0};
    engine_request *r = engine_request_new(&p, &err);
    assert_non_null(r);
    return r;
}

// Reads r to its end, collecting its token ids.
static void collect(engine_request *r, run_result *out)
{
    memset(out, 0, sizeof *out);
    for (;;) {
        engine_chunk c;
        if (!engine_request_next(r, &c, 1000))
            continue;
        assert_int_equal(c.error, GARLIC_OK);
        for (size_t i = 0; i < c.n_tokens && out->n < MAX_OUT; i++)
            out->ids[out->n++] = c.tokens[i].id;
        if (c.choice_done)
            out->finish = c.finish;
        if (c.all_done)
            break;
    }
}

// Prompt i of a set: BOS then tokens from a per-prompt pattern, of a per-prompt length.
static size_t make_prompt(int i, int32_t *ids, size_t cap)
{
    size_t n = 5 + (size_t)(i * 7) % 50;
    n = n < cap ? n : cap;
    ids[0] = 1;
    for (size_t j = 1; j < n; j++)
        ids[j] = (int32_t)(3 + (i * 131 + (int)j * 17 + (int)(j * j) * (i + 3)) % 509);
    return n;
}

// Runs each prompt alone on a fresh registry (one sequence at a time).
static void run_solo(const int32_t prompts[][64], const size_t *lens, int n, uint32_t max_tokens,
                     run_result *out)
{
    registry_config cfg = {.n_ctx = 512, .n_threads = 2, .parallel = 1};
    registry *reg = new_registry_with(&cfg);
    registry_model *m = acquire(reg);
    garlic_error err = {0};
    for (int i = 0; i < n; i++) {
        engine_request *r = greedy_request(prompts[i], lens[i], max_tokens);
        assert_int_equal(registry_submit(m, r, &err), GARLIC_OK);
        collect(r, &out[i]);
        engine_request_release(r);
    }
    registry_free(reg);
}

// Submits every prompt at once and collects every answer.
static void run_together(registry *reg, const int32_t prompts[][64], const size_t *lens, int n,
                         uint32_t max_tokens, run_result *out)
{
    registry_model *m = acquire(reg);
    garlic_error err = {0};
    engine_request *rs[16];
    for (int i = 0; i < n; i++) {
        rs[i] = greedy_request(prompts[i], lens[i], max_tokens);
        assert_int_equal(registry_submit(m, rs[i], &err), GARLIC_OK);
    }
    for (int i = 0; i < n; i++) {
        collect(rs[i], &out[i]);
        engine_request_release(rs[i]);
    }
}

// The scheduler's counts as of the step after the last answer ended (the counts are
// published after each step, so they may trail the answers by one step).
static void settled_stats(registry *reg, registry_stats *st)
{
    for (int i = 0; i < 1000; i++) {
        registry_stats_get(reg, st);
        if (st->kv.running == 0 && st->kv.waiting == 0 && st->kv.kv_used == 0)
            return;
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
}

static void assert_same_outputs(const run_result *a, const run_result *b, int n, uint32_t len)
{
    for (int i = 0; i < n; i++) {
        assert_int_equal(a[i].n, len);
        assert_int_equal(b[i].n, len);
        for (uint32_t j = 0; j < len; j++)
            if (a[i].ids[j] != b[i].ids[j])
                fail_msg("request %d: token %u is %d alone and %d when batched", i, j,
                         a[i].ids[j], b[i].ids[j]);
    }
}

// 16 concurrent greedy requests with different prompts produce exactly the tokens each
// produces alone, and the scheduler really batched them (several sequences per step).
static void test_concurrent_equals_solo(void **state)
{
    (void)state;
    enum { N = 16, LEN = 40 };
    int32_t prompts[N][64];
    size_t lens[N];
    for (int i = 0; i < N; i++)
        lens[i] = make_prompt(i, prompts[i], 64);
    static run_result solo[N], together[N];
    run_solo(prompts, lens, N, LEN, solo);
    registry_config cfg = {.n_ctx = 512, .n_threads = 2, .parallel = 16, .step_tokens = 64};
    registry *reg = new_registry_with(&cfg);
    run_together(reg, prompts, lens, N, LEN, together);
    assert_same_outputs(solo, together, N, LEN);
    registry_stats st;
    settled_stats(reg, &st);
    assert_int_equal(st.kv.kv_used, 0); // every finished sequence gave its blocks back
    assert_int_equal(st.kv.running, 0);
    assert_true(st.kv.peak_running >= 8); // they really ran side by side
    registry_free(reg);
}

// A pool with room for two sequences serves ten concurrent requests: they wait for blocks,
// get preempted when the pool runs out mid-generation, are recomputed, and all produce their
// solo outputs.
static void test_small_pool_preempts(void **state)
{
    (void)state;
    enum { N = 10, LEN = 150 };
    int32_t prompts[N][64];
    size_t lens[N];
    for (int i = 0; i < N; i++)
        lens[i] = make_prompt(i + 3, prompts[i], 64);
    static run_result solo[N], together[N];
    run_solo(prompts, lens, N, LEN, solo);
    // A sequence takes at most 54 + 150 positions (13 blocks); the pool holds 32 blocks.
    registry_config cfg = {.n_ctx = 256, .kv_tokens = 512, .n_threads = 2, .parallel = 10,
                           .step_tokens = 64};
    registry *reg = new_registry_with(&cfg);
    run_together(reg, prompts, lens, N, LEN, together);
    assert_same_outputs(solo, together, N, LEN);
    registry_stats st;
    settled_stats(reg, &st);
    print_message("pool of %u blocks: %llu preemptions\n", st.kv.kv_blocks,
                  (unsigned long long)st.kv.preemptions);
    assert_int_equal(st.kv.kv_blocks, 32);
    assert_true(st.kv.preemptions > 0);
    assert_int_equal(st.kv.kv_used, 0);
    registry_free(reg);
}

// A request sharing a 1,000-token prefix with an earlier one reuses its blocks (prefix
// hits) and produces the same tokens as on a registry without that cache.
static void test_prefix_cache(void **state)
{
    (void)state;
    enum { PREFIX = 1000, LEN = 20 };
    static int32_t a[PREFIX + 8], b[PREFIX + 8];
    for (int j = 0; j < PREFIX; j++)
        a[j] = b[j] = j == 0 ? 1 : (int32_t)(3 + (j * 37 + j / 7) % 509);
    for (int j = 0; j < 8; j++)
        a[PREFIX + j] = 100 + j, b[PREFIX + j] = 200 + 3 * j;
    registry_config cfg = {.n_ctx = 2048, .n_threads = 2};
    garlic_error err = {0};
    run_result fresh, first, second;
    registry *cold = new_registry_with(&cfg);
    registry_model *m = acquire(cold);
    engine_request *r = greedy_request(b, PREFIX + 8, LEN);
    assert_int_equal(registry_submit(m, r, &err), GARLIC_OK);
    collect(r, &fresh);
    engine_request_release(r);
    registry_free(cold);

    registry *reg = new_registry_with(&cfg);
    m = acquire(reg);
    r = greedy_request(a, PREFIX + 8, LEN);
    assert_int_equal(registry_submit(m, r, &err), GARLIC_OK);
    collect(r, &first);
    engine_request_release(r);
    registry_stats st;
    registry_stats_get(reg, &st);
    uint64_t hits_before = st.kv.prefix_hits;
    r = greedy_request(b, PREFIX + 8, LEN);
    assert_int_equal(registry_submit(m, r, &err), GARLIC_OK);
    collect(r, &second);
    engine_request_release(r);
    registry_stats_get(reg, &st);
    // 62 full blocks of 16 lie inside the shared 1,000 tokens.
    assert_int_equal(st.kv.prefix_hits - hits_before, PREFIX / 16);
    assert_same_outputs(&fresh, &second, 1, LEN);
    registry_free(reg);
}

// A cancelled request's blocks go back to the pool at the next step.
static void test_cancel_frees_blocks(void **state)
{
    (void)state;
    registry_config cfg = {.n_ctx = 2048, .n_threads = 1};
    registry *reg = new_registry_with(&cfg);
    registry_model *m = acquire(reg);
    garlic_error err = {0};
    engine_request *r = new_request(1500, 4);
    assert_int_equal(registry_submit(m, r, &err), GARLIC_OK);
    engine_chunk c;
    size_t text = 0;
    while (text < 20)
        if (engine_request_next(r, &c, 1000))
            text += c.len;
    engine_counters ms;
    registry_model_stats_get(m, &ms);
    assert_int_equal(ms.running, 4);
    assert_true(ms.kv_used >= 4);
    engine_request_release(r); // as the server does when the client goes away
    for (int i = 0; i < 500; i++) {
        registry_model_stats_get(m, &ms);
        if (ms.running == 0 && ms.kv_used == 0)
            break;
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
    assert_int_equal(ms.running, 0);
    assert_int_equal(ms.kv_used, 0);
    registry_stats st;
    registry_stats_get(reg, &st);
    assert_int_equal(st.requests_cancelled, 1);
    registry_free(reg);
}

// Parsing without a server: each kind, defaults, field errors naming the field.
static void test_parse(void **state)
{
    (void)state;
    api_request r;
    api_error err = {0};
    const char *chat = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":"
                       "\"text\",\"text\":\"a\"},{\"type\":\"text\",\"text\":\"b\"}]}],\"stop\":"
                       "\"x\",\"seed\":3,\"logit_bias\":{\"7\":-100}}";
    assert_int_equal(api_request_parse(API_KIND_OPENAI_CHAT, chat, strlen(chat), &r, &err), GARLIC_OK);
    char *messages = cJSON_PrintUnformatted(r.messages);
    assert_string_equal(messages, "[{\"role\":\"user\",\"content\":\"ab\"}]");
    cJSON_free(messages);
    assert_int_equal(r.n_stops, 1);
    assert_true(r.seeded);
    assert_int_equal(r.sampling.n_logit_bias, 1);
    assert_true(isinf(r.bias[0].bias));
    assert_int_equal(r.n, 1);
    assert_false(r.stream);
    api_request_deinit(&r);
    const char *gen = "{\"model\":\"m\",\"prompt\":\"p\",\"options\":{\"num_predict\":-1,\"seed\":-1}}";
    assert_int_equal(api_request_parse(API_KIND_OLLAMA_GENERATE, gen, strlen(gen), &r, &err), GARLIC_OK);
    assert_true(r.stream); // Ollama streams by default
    assert_int_equal(r.max_tokens, 0);
    assert_false(r.seeded);
    api_request_deinit(&r);
    const char *bad = "{\"model\":\"m\",\"prompt\":\"p\",\"options\":{\"top_k\":1.5}}";
    assert_int_equal(api_request_parse(API_KIND_OLLAMA_GENERATE, bad, strlen(bad), &r, &err),
                     GARLIC_EINVAL);
    assert_string_equal(err.param, "options.top_k");
    assert_int_equal(err.status, 400);
    api_request_deinit(&r);
    const char *ids = "{\"model\":\"m\",\"prompt\":[1,2,3]}";
    assert_int_equal(api_request_parse(API_KIND_OPENAI_COMPLETION, ids, strlen(ids), &r, &err),
                     GARLIC_OK);
    assert_int_equal(r.n_prompt_ids, 3);
    api_request_deinit(&r);
}

static void *json_malloc(size_t size)
{
    return garlic_malloc(size);
}

// Every allocation of parsing a request and building a registry request fails in turn:
// each failure is a clean error (no crash; no leak under ASan), and eventually it succeeds.
static void test_allocation_failures(void **state)
{
    (void)state;
    cJSON_Hooks hooks = {.malloc_fn = json_malloc, .free_fn = garlic_free};
    cJSON_InitHooks(&hooks);
    const char *body = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":"
                       "\"text\",\"text\":\"a\"}],\"name\":\"x\"}],\"stop\":[\"x\",\"y\"],"
                       "\"logit_bias\":{\"7\":1},\"tools\":[{\"type\":\"function\"}]}";
    bool done = false;
    for (long n = 0; n < 10000 && !done; n++) {
        api_request r;
        api_error err = {0};
        garlic_alloc_fail_after(n);
        int rc = api_request_parse(API_KIND_OPENAI_CHAT, body, strlen(body), &r, &err);
        engine_request *req = NULL;
        if (rc == GARLIC_OK) {
            int32_t prompt[1] = {1};
            engine_request_params p = {.prompt = prompt, .n_prompt = 1, .n_choices = 1};
            p.generation.sampling = r.sampling;
            p.generation.stops = (const char *const *)r.stops;
            p.generation.n_stops = r.n_stops;
            garlic_error gerr;
            req = engine_request_new(&p, &gerr);
            done = req != NULL;
        }
        garlic_alloc_fail_reset();
        assert_true(rc == GARLIC_OK || rc == GARLIC_ENOMEM || rc == GARLIC_EINVAL);
        engine_request_release(req);
        api_request_deinit(&r);
    }
    assert_true(done);
    cJSON_InitHooks(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_and_loading),
        cmocka_unit_test(test_choices),
        cmocka_unit_test(test_cancel_within_one_token),
        cmocka_unit_test(test_queue_limit),
        cmocka_unit_test(test_concurrent_equals_solo),
        cmocka_unit_test(test_small_pool_preempts),
        cmocka_unit_test(test_prefix_cache),
        cmocka_unit_test(test_cancel_frees_blocks),
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_allocation_failures),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
