// SPDX-License-Identifier: MIT
// The engine on its own, with no registry: a synthesized model and its tokenizer, engines
// whose KV pools are sized here (whole blocks of 16 positions), requests given to
// engine_submit. Covers a request's chunks and per-choice ends, cancellation within one
// token, what submit refuses (too long, queue full, stopped), continuous batching (concurrent
// answers equal solo ones, preemption in a small pool, the prefix cache, blocks freed on
// cancel), the hooks, wake_at_end, the timing fields, bad configurations, and allocation
// failures in engine_new, engine_request_new and the scheduler.
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/threadpool.h"
#include "engine/engine.h"
#include "model/model.h"
#include "model/synth.h"
#include <cjson/cJSON.h>

#include "sampler/grammar.h"
#include "tokenizer/tokenizer.h"
#include "util.h"

static model *weights;
static tokenizer *tok;
static thread_pool *pool; // the compute pool the engines borrow (one engine at a time)

static int setup(void **state)
{
    (void)state;
    model_synth_params p;
    model_synth_params_default(&p);
    p.context = 2048;
    char path[600];
    snprintf(path, sizeof path, "%s", test_temp_path("engine-model.gguf"));
    garlic_error err = {0};
    if (model_synth_write(&p, path, &err) || !(weights = model_load(path, &err)) ||
        !(tok = tokenizer_load(weights->file, &err)) || !(pool = thread_pool_new(2, &err))) {
        print_error("setup: %s\n", err.message);
        return -1;
    }
    model_prefault(weights, NULL, NULL); // as every load that computes does
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    thread_pool_free(pool);
    tokenizer_free(tok);
    model_free(weights);
    return 0;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

// An engine over the test model: contexts of n_ctx positions, a KV pool of kv_tokens
// positions (rounded up to whole blocks), parallel running sequences, the shared pool.
static engine_config config(uint32_t n_ctx, uint32_t kv_tokens, uint32_t parallel)
{
    uint32_t blocks = (kv_tokens + KV_DEFAULT_BLOCK_TOKENS - 1) / KV_DEFAULT_BLOCK_TOKENS;
    return (engine_config){.name = "m",
                           .weights = weights,
                           .tok = tok,
                           .kv_type = KV_TYPE_F16,
                           .kv_blocks = blocks,
                           .n_ctx = n_ctx,
                           .parallel = parallel,
                           .pool = pool};
}

static engine *start(const engine_config *cfg)
{
    garlic_error err = {0};
    engine *e = engine_new(cfg, &err);
    if (!e)
        fail_msg("engine_new: %s", err.message);
    return e;
}

// One sequence at a time with a whole context of 2,048 positions.
static engine *start_solo(uint32_t max_queue)
{
    engine_config cfg = config(2048, 2048, 1);
    cfg.max_queue = max_queue;
    return start(&cfg);
}

// Submits r, which must be accepted.
static void submit(engine *e, engine_request *r)
{
    garlic_error err = {0};
    if (engine_submit(e, r, &err) != GARLIC_OK)
        fail_msg("engine_submit: %s", err.message);
}

// Reads r until at least bytes of text came.
static void read_text(engine_request *r, size_t bytes)
{
    engine_chunk c;
    size_t text = 0;
    while (text < bytes)
        if (engine_request_next(r, &c, 1000)) {
            assert_false(c.all_done);
            text += c.len;
        }
}

// Every choice's text arrives, then its end with max_tokens output tokens.
static void test_choices(void **state)
{
    (void)state;
    engine *e = start_solo(4);
    engine_request *r = test_request_new(6, 3);
    submit(e, r);
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
    engine_free(e);
}

// ---- hooks ----

// What the hooks saw. The counts are atomic: the hooks run on the scheduler's thread.
typedef struct hook_log {
    _Atomic(engine *) e;   // set once engine_new returned (compute_idle reads its counters)
    atomic_int in_compute; // 1 between compute_begin and compute_end
    atomic_uint begins, ends, idles;
    atomic_uint misplaced; // a begin inside a pass, an end outside one, an idle while
                           // a pass or a sequence runs
    atomic_uint tokens, firsts, bad_latencies;
    atomic_uint requests, cancelled;
    atomic_ullong prompt_tokens;
    atomic_uint last_prompt;
    atomic_bool last_cancelled;
} hook_log;

static void on_compute_begin(void *user)
{
    hook_log *h = user;
    if (atomic_fetch_add(&h->in_compute, 1) != 0)
        atomic_fetch_add(&h->misplaced, 1);
    atomic_fetch_add(&h->begins, 1);
}

static void on_compute_end(void *user)
{
    hook_log *h = user;
    if (atomic_fetch_sub(&h->in_compute, 1) != 1)
        atomic_fetch_add(&h->misplaced, 1);
    atomic_fetch_add(&h->ends, 1);
}

static void on_compute_idle(void *user)
{
    hook_log *h = user;
    engine *e = atomic_load(&h->e);
    engine_counters c = {0};
    if (e)
        engine_counters_get(e, &c); // published just before this call
    if (atomic_load(&h->in_compute) != 0 || c.running != 0)
        atomic_fetch_add(&h->misplaced, 1);
    atomic_fetch_add(&h->idles, 1);
}

static void on_token(void *user, double latency, bool first)
{
    hook_log *h = user;
    atomic_fetch_add(&h->tokens, 1);
    atomic_fetch_add(&h->firsts, first ? 1u : 0u);
    if (!(latency >= 0))
        atomic_fetch_add(&h->bad_latencies, 1);
}

static void on_request_done(void *user, uint64_t prompt_tokens, bool cancelled)
{
    hook_log *h = user;
    atomic_fetch_add(&h->prompt_tokens, prompt_tokens);
    atomic_store(&h->last_prompt, (unsigned)prompt_tokens);
    atomic_store(&h->last_cancelled, cancelled);
    atomic_fetch_add(&h->cancelled, cancelled ? 1u : 0u);
    atomic_fetch_add(&h->requests, 1);
}

static engine_hooks hooks_for(hook_log *h)
{
    return (engine_hooks){.user = h,
                          .compute_begin = on_compute_begin,
                          .compute_end = on_compute_end,
                          .compute_idle = on_compute_idle,
                          .token = on_token,
                          .request_done = on_request_done};
}

// An engine as config() makes it, reporting to h.
static engine *start_hooked(hook_log *h, uint32_t n_ctx, uint32_t kv_tokens, uint32_t parallel)
{
    engine_config cfg = config(n_ctx, kv_tokens, parallel);
    cfg.hooks = hooks_for(h);
    return start(&cfg);
}

// Waits up to two seconds for *count to reach at least want.
static bool wait_count(atomic_uint *count, unsigned want)
{
    for (int i = 0; i < 400 && atomic_load(count) < want; i++)
        sleep_ms(5);
    return atomic_load(count) >= want;
}

// After a cancel, the scheduler produces at most one more token; the request ends
// cancelled and is counted so.
static void test_cancel_within_one_token(void **state)
{
    (void)state;
    static hook_log h;
    engine *e = start_hooked(&h, 2048, 2048, 1);
    engine_request *r = test_request_new(1500, 1);
    submit(e, r);
    read_text(r, 10);
    engine_request_cancel(r);
    unsigned before = atomic_load(&h.tokens);
    engine_chunk c;
    test_request_finish(r, 60, &c);
    unsigned after = atomic_load(&h.tokens);
    assert_true(after - before <= 1);
    assert_int_equal(c.finish, ENGINE_FINISH_CANCEL);
    assert_true(c.output_tokens < 1500);
    assert_int_equal(atomic_load(&h.cancelled), 1);
    engine_request_release(r);
    engine_free(e);
}

// The hooks: token once per output token (first once per choice), request_done once per
// request with its prompt length and whether it was cancelled, compute_begin and
// compute_end paired around every forward pass, compute_idle only when nothing runs.
static void test_hooks(void **state)
{
    (void)state;
    static hook_log h;
    engine *e = start_hooked(&h, 2048, 4 * 2048, 4);
    atomic_store(&h.e, e);
    assert_true(wait_count(&h.idles, 1)); // nothing to run yet
    assert_int_equal(atomic_load(&h.begins), 0);

    engine_request *r = test_request_new(6, 3);
    submit(e, r);
    engine_chunk c;
    test_request_finish(r, 60, &c);
    engine_request_release(r);
    assert_int_equal(atomic_load(&h.tokens), 3 * 6);
    assert_int_equal(atomic_load(&h.firsts), 3);
    assert_int_equal(atomic_load(&h.requests), 1);
    assert_int_equal(atomic_load(&h.prompt_tokens), 4);
    assert_false(atomic_load(&h.last_cancelled));
    assert_true(atomic_load(&h.begins) >= 1);
    assert_true(atomic_load(&h.begins) <= 6); // one pass computes every choice's token
    assert_int_equal(atomic_load(&h.begins), atomic_load(&h.ends));

    // A longer prompt, cancelled while it generates.
    int32_t prompt[12] = {1};
    for (int j = 1; j < 12; j++)
        prompt[j] = 40 + 3 * j;
    engine_request_params p = {.prompt = prompt, .n_prompt = 12, .n_choices = 1};
    p.generation.sampling = sampler_params_default(512);
    p.generation.ignore_eos = true;
    garlic_error err = {0};
    r = engine_request_new(&p, &err);
    assert_non_null(r);
    unsigned idles = atomic_load(&h.idles), tokens = atomic_load(&h.tokens);
    submit(e, r);
    read_text(r, 10);
    engine_request_cancel(r);
    test_request_finish(r, 60, &c);
    engine_request_release(r);
    assert_int_equal(c.finish, ENGINE_FINISH_CANCEL);
    assert_int_equal(atomic_load(&h.tokens) - tokens, c.output_tokens);
    assert_int_equal(atomic_load(&h.firsts), 4);
    assert_int_equal(atomic_load(&h.requests), 2);
    assert_int_equal(atomic_load(&h.last_prompt), 12);
    assert_true(atomic_load(&h.last_cancelled));
    assert_int_equal(atomic_load(&h.cancelled), 1);
    assert_int_equal(atomic_load(&h.prompt_tokens), 4 + 12);
    assert_true(wait_count(&h.idles, idles + 1)); // idle again once it ended

    atomic_store(&h.e, NULL); // engine_free's last idle call must not read a freed engine
    engine_free(e);
    assert_int_equal(atomic_load(&h.begins), atomic_load(&h.ends));
    assert_int_equal(atomic_load(&h.in_compute), 0);
    assert_int_equal(atomic_load(&h.misplaced), 0);
    assert_int_equal(atomic_load(&h.bad_latencies), 0);
}

// ---- what submit refuses ----

// A full queue refuses with GARLIC_EFULL; requests released while queued or running are
// cleaned up.
static void test_queue_limit(void **state)
{
    (void)state;
    engine *e = start_solo(2);
    garlic_error err = {0};
    engine_request *rs[4];
    for (int i = 0; i < 4; i++)
        rs[i] = test_request_new(1500, 1);
    submit(e, rs[0]);
    for (int i = 0; i < 100 && engine_queue_length(e) > 0; i++) {
        engine_chunk c;
        engine_request_next(rs[0], &c, 10);
    }
    submit(e, rs[1]);
    submit(e, rs[2]);
    assert_int_equal(engine_queue_length(e), 2);
    assert_int_equal(engine_submit(e, rs[3], &err), GARLIC_EFULL);
    assert_non_null(strstr(err.message, "try again later"));
    assert_non_null(strstr(err.message, "m: 2 requests are waiting"));
    for (int i = 0; i < 4; i++)
        engine_request_release(rs[i]);
    engine_free(e);
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

// A greedy request for prompt (EOS banned, max_tokens tokens (0: until the context is full),
// token ids reported).
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

// A prompt of n_ctx tokens or more is refused with the sizes in the message; one token
// less is served and gets exactly one token before the context is full.
static void test_prompt_too_long(void **state)
{
    (void)state;
    engine_config cfg = config(64, 64, 1);
    engine *e = start(&cfg);
    int32_t prompt[100] = {1};
    for (int j = 1; j < 100; j++)
        prompt[j] = 3 + (17 * j) % 500;
    garlic_error err = {0};
    const size_t refused[] = {64, 100};
    for (size_t i = 0; i < 2; i++) {
        engine_request *r = greedy_request(prompt, refused[i], 1);
        assert_int_equal(engine_submit(e, r, &err), GARLIC_EINVAL);
        char sizes[64];
        snprintf(sizes, sizeof sizes, "m: the prompt has %zu tokens", refused[i]);
        assert_non_null(strstr(err.message, sizes));
        assert_non_null(strstr(err.message, "the context holds 64"));
        engine_request_release(r);
    }
    engine_request *r = greedy_request(prompt, 63, 0);
    submit(e, r);
    engine_chunk c;
    test_request_finish(r, 60, &c);
    assert_int_equal(c.output_tokens, 1);
    assert_int_equal(c.finish, ENGINE_FINISH_CONTEXT);
    engine_request_release(r);
    engine_free(e);
}

// engine_stop ends the running and the queued request (cancelled); then submit refuses with
// GARLIC_ESTOPPED and the counters stay readable, every block back in the pool (free or
// cached).
static void test_stop(void **state)
{
    (void)state;
    engine *e = start_solo(4);
    engine_request *running = test_request_new(1500, 1), *queued = test_request_new(1500, 1);
    submit(e, running);
    submit(e, queued);
    read_text(running, 10);
    engine_stop(e);
    engine_chunk c;
    test_request_finish(running, 60, &c);
    assert_int_equal(c.finish, ENGINE_FINISH_CANCEL);
    assert_true(c.output_tokens < 1500);
    test_request_finish(queued, 60, &c);
    assert_int_equal(c.finish, ENGINE_FINISH_CANCEL);
    assert_int_equal(c.output_tokens, 0);
    engine_request *late = test_request_new(4, 1);
    garlic_error err = {0};
    assert_int_equal(engine_submit(e, late, &err), GARLIC_ESTOPPED);
    assert_non_null(strstr(err.message, "m: the engine is stopping"));
    engine_counters k;
    engine_counters_get(e, &k);
    assert_int_equal(k.kv_blocks, 128);
    assert_int_equal(k.kv_used, 0);
    assert_int_equal(k.kv_free + k.kv_cached, 128);
    assert_int_equal(k.running, 0);
    assert_int_equal(k.waiting, 0);
    assert_int_equal(k.peak_running, 1);
    assert_int_equal(k.parallel, 1);
    engine_request_release(late);
    engine_request_release(running);
    engine_request_release(queued);
    engine_free(e);
}

// ---- continuous batching ----

enum { MAX_OUT = 256 };

typedef struct run_result {
    int32_t ids[MAX_OUT];
    uint32_t n;
    engine_finish finish;
} run_result;

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

// Runs each prompt alone on a fresh engine (one sequence at a time).
static void run_solo(const int32_t prompts[][64], const size_t *lens, int n, uint32_t max_tokens,
                     run_result *out)
{
    engine_config cfg = config(512, 512, 1);
    engine *e = start(&cfg);
    for (int i = 0; i < n; i++) {
        engine_request *r = greedy_request(prompts[i], lens[i], max_tokens);
        submit(e, r);
        collect(r, &out[i]);
        engine_request_release(r);
    }
    engine_free(e);
}

// Submits every prompt at once and collects every answer.
static void run_together(engine *e, const int32_t prompts[][64], const size_t *lens, int n,
                         uint32_t max_tokens, run_result *out)
{
    engine_request *rs[16];
    for (int i = 0; i < n; i++) {
        rs[i] = greedy_request(prompts[i], lens[i], max_tokens);
        submit(e, rs[i]);
    }
    for (int i = 0; i < n; i++) {
        collect(rs[i], &out[i]);
        engine_request_release(rs[i]);
    }
}

// The scheduler's counts as of the step after the last answer ended (the counts are
// published after each step, so they may trail the answers by one step).
static void settled_counters(engine *e, engine_counters *k)
{
    for (int i = 0; i < 1000; i++) {
        engine_counters_get(e, k);
        if (k->running == 0 && k->waiting == 0 && k->kv_used == 0)
            return;
        sleep_ms(2);
    }
}

static void assert_same_outputs(const run_result *a, const run_result *b, int n, uint32_t len)
{
    for (int i = 0; i < n; i++) {
        assert_int_equal(a[i].n, len);
        assert_int_equal(b[i].n, len);
        for (uint32_t j = 0; j < len; j++)
            if (a[i].ids[j] != b[i].ids[j])
                fail_msg("request %d: token %u is %d alone and %d when batched", i, j, a[i].ids[j],
                         b[i].ids[j]);
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
    engine_config cfg = config(512, 16 * 512, 16);
    cfg.step_tokens = 64;
    engine *e = start(&cfg);
    run_together(e, prompts, lens, N, LEN, together);
    assert_same_outputs(solo, together, N, LEN);
    engine_counters k;
    settled_counters(e, &k);
    assert_int_equal(k.kv_used, 0); // every finished sequence gave its blocks back
    assert_int_equal(k.running, 0);
    assert_true(k.peak_running >= 8); // they really ran side by side
    engine_free(e);
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
    engine_config cfg = config(256, 512, 10);
    cfg.step_tokens = 64;
    engine *e = start(&cfg);
    run_together(e, prompts, lens, N, LEN, together);
    assert_same_outputs(solo, together, N, LEN);
    engine_counters k;
    settled_counters(e, &k);
    print_message("pool of %u blocks: %llu preemptions\n", k.kv_blocks,
                  (unsigned long long)k.preemptions);
    assert_int_equal(k.kv_blocks, 32);
    assert_true(k.preemptions > 0);
    assert_int_equal(k.kv_used, 0);
    engine_free(e);
}

// A request sharing a 1,000-token prefix with an earlier one reuses its blocks (prefix
// hits) and produces the same tokens as on an engine without that cache.
static void test_prefix_cache(void **state)
{
    (void)state;
    enum { PREFIX = 1000, LEN = 20 };
    static int32_t a[PREFIX + 8], b[PREFIX + 8];
    for (int j = 0; j < PREFIX; j++)
        a[j] = b[j] = j == 0 ? 1 : (int32_t)(3 + (j * 37 + j / 7) % 509);
    for (int j = 0; j < 8; j++)
        a[PREFIX + j] = 100 + j, b[PREFIX + j] = 200 + 3 * j;
    engine_config cfg = config(2048, 4 * 2048, 4);
    run_result fresh, first, second;
    engine *cold = start(&cfg);
    engine_request *r = greedy_request(b, PREFIX + 8, LEN);
    submit(cold, r);
    collect(r, &fresh);
    engine_request_release(r);
    engine_free(cold);

    engine *e = start(&cfg);
    r = greedy_request(a, PREFIX + 8, LEN);
    submit(e, r);
    collect(r, &first);
    engine_request_release(r);
    engine_counters k;
    engine_counters_get(e, &k);
    uint64_t hits_before = k.prefix_hits;
    r = greedy_request(b, PREFIX + 8, LEN);
    submit(e, r);
    collect(r, &second);
    engine_request_release(r);
    engine_counters_get(e, &k);
    // 62 full blocks of 16 lie inside the shared 1,000 tokens.
    assert_int_equal(k.prefix_hits - hits_before, PREFIX / 16);
    assert_same_outputs(&fresh, &second, 1, LEN);
    engine_free(e);
}

// A cancelled request's blocks go back to the pool at the next step.
static void test_cancel_frees_blocks(void **state)
{
    (void)state;
    static hook_log h;
    engine *e = start_hooked(&h, 2048, 4 * 2048, 32);
    engine_request *r = test_request_new(1500, 4);
    submit(e, r);
    read_text(r, 20);
    engine_counters k;
    engine_counters_get(e, &k);
    assert_int_equal(k.running, 4);
    assert_true(k.kv_used >= 4);
    engine_request_release(r); // as the server does when the client goes away
    for (int i = 0; i < 500; i++) {
        engine_counters_get(e, &k);
        if (k.running == 0 && k.kv_used == 0)
            break;
        sleep_ms(2);
    }
    assert_int_equal(k.running, 0);
    assert_int_equal(k.kv_used, 0);
    assert_true(wait_count(&h.requests, 1));
    assert_int_equal(atomic_load(&h.cancelled), 1);
    engine_free(e);
}

// ---- what a reader gets ----

enum { MAX_TEXT = 8192 };

// What one choice delivered.
typedef struct choice_text {
    char text[MAX_TEXT];
    size_t len;
    uint32_t output_tokens;
    engine_finish finish;
    bool done;
    double first_token_seconds;
} choice_text;

// Reads r to its end, each choice's text into out[choice]. Returns the chunks that carried
// text.
static unsigned read_choices(engine_request *r, choice_text *out, uint32_t n_choices)
{
    memset(out, 0, n_choices * sizeof *out);
    unsigned chunks = 0;
    for (;;) {
        engine_chunk c;
        if (!engine_request_next(r, &c, 1000))
            continue;
        assert_int_equal(c.error, GARLIC_OK);
        assert_true(c.choice < n_choices);
        choice_text *t = &out[c.choice];
        assert_false(t->done);
        assert_true(t->len + c.len < MAX_TEXT);
        memcpy(t->text + t->len, c.text, c.len);
        t->len += c.len;
        chunks += c.len > 0;
        if (c.choice_done) {
            t->done = true;
            t->output_tokens = c.output_tokens;
            t->finish = c.finish;
            t->first_token_seconds = c.first_token_seconds;
        }
        if (c.all_done)
            return chunks;
    }
}

// A wake_at_end request delivers the same text as a normal one, each choice ending with
// choice_done, without a wake-up per token.
static void test_wake_at_end(void **state)
{
    (void)state;
    enum { LEN = 40 };
    engine_config cfg = config(512, 2 * 512, 2);
    engine *e = start(&cfg);
    static choice_text normal[2], whole[2];
    engine_request *r = test_request_new(LEN, 2);
    submit(e, r);
    unsigned normal_chunks = read_choices(r, normal, 2);
    engine_request_release(r);

    engine_request_params p;
    test_request_params(&p, LEN, 2);
    p.wake_at_end = true;
    garlic_error err = {0};
    r = engine_request_new(&p, &err);
    assert_non_null(r);
    submit(e, r);
    unsigned whole_chunks = read_choices(r, whole, 2);
    engine_request_release(r);
    print_message("text chunks: %u streamed, %u with wake_at_end\n", normal_chunks, whole_chunks);
    for (int i = 0; i < 2; i++) {
        assert_true(normal[i].done && whole[i].done);
        assert_true(whole[i].len > 0);
        assert_int_equal(whole[i].len, normal[i].len);
        assert_memory_equal(whole[i].text, normal[i].text, normal[i].len);
        assert_int_equal(whole[i].output_tokens, LEN);
        assert_int_equal(whole[i].finish, ENGINE_FINISH_LENGTH);
    }
    assert_true(whole_chunks < LEN); // not a wake-up per token
    engine_free(e);
}

// first_token_seconds is positive and no longer than the request took as a whole.
static void test_first_token_seconds(void **state)
{
    (void)state;
    engine_config cfg = config(2048, 2 * 2048, 2);
    engine *e = start(&cfg);
    static choice_text out[3];
    double t0 = garlic_now();
    engine_request *r = test_request_new(8, 3);
    submit(e, r);
    read_choices(r, out, 3);
    double total = garlic_now() - t0;
    engine_request_release(r);
    for (int i = 0; i < 3; i++) {
        assert_true(out[i].first_token_seconds > 0);
        assert_true(out[i].first_token_seconds <= total);
        assert_int_equal(out[i].output_tokens, 8);
    }
    engine_free(e);
}

// ---- sliding-window layers ----

// prompt, then greedy tokens (EOS banned, the first highest logit) through model_forward on
// a pool that keeps every layer's rows in full blocks: what the engine's window pool must
// reproduce.
static void greedy_full_pool(const int32_t *prompt, size_t n, uint32_t max_tokens, run_result *out)
{
    garlic_error err = {0};
    model_state_config sc = {.n_ctx = 512, .max_batch = 64, .logit_rows = 1, .n_threads = 1};
    model_state *s = model_state_new(weights, &sc, &err);
    kv_cache_config kc = model_kv_config(weights, KV_TYPE_F16, 16, 512 / 16 + 1);
    memset(&kc.windows, 0, sizeof kc.windows);
    kv_cache *kv = kv_cache_new(&kc, &err);
    assert_non_null(s);
    assert_non_null(kv);
    kv_seq seq;
    kv_seq_init(&seq);
    memset(out, 0, sizeof *out);
    int32_t tokens[512];
    memcpy(tokens, prompt, n * sizeof *tokens);
    const float *logits = NULL;
    for (uint32_t at = 0, len = (uint32_t)n; at < len;) {
        uint32_t chunk = len - at < 64 ? len - at : 64;
        assert_int_equal(model_forward(s, kv, &seq, tokens + at, chunk, at, false, &logits, &err),
                         GARLIC_OK);
        at += chunk;
        if (at < len || out->n == max_tokens)
            continue;
        int32_t best = 0;
        for (uint32_t v = 1; v < weights->hp.n_vocab; v++)
            if (v != 2 && (best == 2 || logits[v] > logits[best]))
                best = (int32_t)v;
        out->ids[out->n++] = best;
        tokens[len++] = best;
    }
    kv_seq_deinit(kv, &seq);
    kv_cache_free(kv);
    model_state_free(s);
}

// The model's second layer gets a sliding window (a test-only change of an architecture that
// has none). Greedy answers of an engine, alone and ten at a time in a window pool too small
// for them (its window blocks run out, not its full ones: sequences wait and are preempted),
// equal model_forward's on a pool that keeps every row; a prefix shares its window blocks;
// engine_new refuses a window pool that cannot hold one sequence's window and step.
static void test_window_layers(void **state)
{
    (void)state;
    enum { N = 10, LEN = 150, WINDOW = 24 };
    weights->layers[1].window = WINDOW;
    int32_t prompts[N][64];
    size_t lens[N];
    for (int i = 0; i < N; i++)
        lens[i] = make_prompt(i + 3, prompts[i], 64);
    static run_result ref[N], solo[N], together[N];
    for (int i = 0; i < N; i++)
        greedy_full_pool(prompts[i], lens[i], LEN, &ref[i]);
    run_solo(prompts, lens, N, LEN, solo);
    assert_same_outputs(ref, solo, N, LEN);

    // Full blocks for every sequence at once; 10 window blocks, where one sequence takes up
    // to 3 between steps and 4 more for a step of 64.
    engine_config cfg = config(256, 10 * 256, 10);
    cfg.step_tokens = 64;
    cfg.kv_window_blocks = 10;
    engine *e = start(&cfg);
    run_together(e, prompts, lens, N, LEN, together);
    assert_same_outputs(solo, together, N, LEN);
    engine_counters k;
    settled_counters(e, &k);
    print_message("10 window blocks for 10 sequences: %llu preemptions, %llu full evictions\n",
                  (unsigned long long)k.preemptions, (unsigned long long)k.evictions);
    assert_int_equal(k.kv_blocks, 160);
    assert_int_equal(k.kv_window_blocks, 10);
    assert_true(k.preemptions > 0);
    assert_int_equal(k.kv_used + k.kv_window_used, 0);
    assert_int_equal(k.kv_window_free + k.kv_window_cached, 10);
    assert_true(k.kv_window_bytes > 0 && k.kv_window_bytes < k.kv_bytes);
    engine_free(e);
    // By default, enough for every running sequence: 10 x (3 + 1) + 64 / 16 - 1 = 43.
    cfg.kv_window_blocks = 0;
    e = start(&cfg);
    engine_counters_get(e, &k);
    assert_int_equal(k.kv_window_blocks, 43);
    engine_free(e);
    cfg.kv_window_blocks = 6;
    garlic_error err = {0};
    assert_null(engine_new(&cfg, &err));
    assert_non_null(strstr(err.message, "m: 6 window blocks cannot hold one sequence's window"));

    // A 1,000-token prefix: the second prompt shares its 62 full blocks and the window blocks
    // before their end, and answers as an engine that never saw the first.
    enum { PREFIX = 1000, SHORT = 20 };
    static int32_t a[PREFIX + 8], b[PREFIX + 8];
    for (int j = 0; j < PREFIX; j++)
        a[j] = b[j] = j == 0 ? 1 : (int32_t)(3 + (j * 37 + j / 7) % 509);
    for (int j = 0; j < 8; j++)
        a[PREFIX + j] = 100 + j, b[PREFIX + j] = 200 + 3 * j;
    engine_config big = config(2048, 4 * 2048, 4);
    run_result fresh, second;
    engine *cold = start(&big);
    engine_request *r = greedy_request(b, PREFIX + 8, SHORT);
    submit(cold, r);
    collect(r, &fresh);
    engine_request_release(r);
    engine_free(cold);
    e = start(&big);
    r = greedy_request(a, PREFIX + 8, SHORT);
    submit(e, r);
    collect(r, &second);
    engine_request_release(r);
    engine_counters_get(e, &k);
    uint64_t hits = k.prefix_hits;
    r = greedy_request(b, PREFIX + 8, SHORT);
    submit(e, r);
    collect(r, &second);
    engine_request_release(r);
    engine_counters_get(e, &k);
    assert_int_equal(k.prefix_hits - hits, PREFIX / 16);
    assert_same_outputs(&fresh, &second, 1, SHORT);
    engine_free(e);
    weights->layers[1].window = 0;
}

// ---- bad configurations and requests ----

// engine_new refuses what cannot work, with a message naming the engine and the sizes.
// A reasoning budget: inside the block (here from the start) the budget's tokens come, then
// the closing token is forced, and generation goes on after it; <think> opens a block again.
static void test_reasoning_budget(void **state)
{
    (void)state;
    engine *e = start_solo(4);
    static const int32_t prompt[] = {1, 300, 301, 302};
    for (int budget = 0; budget <= 6; budget += 3) {
        engine_request_params p = {.prompt = prompt, .n_prompt = 4, .n_choices = 1};
        static const sampler_bias no_eos = {.token = 2, .bias = -INFINITY};
        p.generation.sampling = sampler_params_default(512);
        p.generation.sampling.temperature = 0;
        p.generation.sampling.logit_bias = &no_eos;
        p.generation.sampling.n_logit_bias = 1;
        p.generation.max_tokens = 20;
        p.generation.logprobs = true;
        p.generation.limit_reasoning = true;
        p.generation.reasoning_budget = (uint32_t)budget;
        p.generation.think_open = -1;
        p.generation.think_close = 509; // a token the greedy run does not pick by itself
        p.generation.starts_in_reasoning = true;
        garlic_error err = {0};
        engine_request *r = engine_request_new(&p, &err);
        assert_non_null(r);
        submit(e, r);
        run_result out;
        collect(r, &out);
        engine_request_release(r);
        assert_int_equal(out.n, 20);
        assert_int_equal(out.ids[budget], 509); // the block ends after budget tokens
        for (int i = 0; i < budget; i++)
            assert_int_not_equal(out.ids[i], 509);
    }
    engine_free(e);
}

// A grammar through the engine: every choice's text matches it, and generation stops when
// the grammar is whole.
static void test_grammar_in_engine(void **state)
{
    (void)state;
    engine *e = start_solo(4);
    const char *gbnf = "root ::= \"yes\" | \"no\" | [a-c]{2,4}";
    for (int i = 0; i < 8; i++) {
        engine_request_params p;
        test_request_params(&p, 40, 2);
        p.generation.sampling.temperature = 1.5f;
        p.generation.sampling.seed = (uint64_t)i;
        garlic_error err = {0};
        p.grammar = grammar_new(gbnf, strlen(gbnf), &err);
        assert_non_null(p.grammar);
        engine_request *r = engine_request_new(&p, &err);
        assert_non_null(r);
        submit(e, r);
        char text[2][128] = {{0}};
        size_t len[2] = {0};
        for (bool all = false; !all;) {
            engine_chunk c;
            if (!engine_request_next(r, &c, 1000))
                continue;
            assert_int_equal(c.error, GARLIC_OK);
            assert_true(len[c.choice] + c.len < sizeof text[0]);
            memcpy(text[c.choice] + len[c.choice], c.text, c.len);
            len[c.choice] += c.len;
            all = c.all_done;
        }
        engine_request_release(r);
        for (int k = 0; k < 2; k++) {
            const char *t = text[k];
            while (*t == ' ') // the space a SentencePiece piece starts with
                t++;
            bool ok = !strcmp(t, "yes") || !strcmp(t, "no") ||
                (strlen(t) >= 2 && strlen(t) <= 4 && strspn(t, "abc") == strlen(t));
            if (!ok)
                fail_msg("choice %d of run %d: '%s' does not match %s", k, i, text[k], gbnf);
        }
    }
    engine_free(e);
}

// Constrained output from a random-weight model always parses and validates: 200 trials over
// schemas of every kind the API sends (nested objects, enums, arrays with bounds, anyOf,
// integer ranges), random temperatures and seeds, and token budgets from tight to loose.
static void test_schema_trials(void **state)
{
    (void)state;
    static const char *const schemas[] = {
        "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"},\"age\":"
        "{\"type\":\"integer\",\"minimum\":0,\"maximum\":120}},\"required\":[\"name\",\"age\"]}",
        "{\"type\":\"array\",\"items\":{\"enum\":[\"red\",\"green\",7,null]},\"minItems\":1,"
        "\"maxItems\":4}",
        "{\"type\":\"object\",\"properties\":{\"p\":{\"type\":\"object\",\"properties\":{\"x\":"
        "{\"type\":\"number\"},\"ok\":{\"type\":\"boolean\"}},\"required\":[\"x\",\"ok\"]}},"
        "\"required\":[\"p\"]}",
        "{\"anyOf\":[{\"type\":\"string\",\"maxLength\":5},{\"type\":\"integer\"},"
        "{\"const\":\"fixed\"}]}",
        "{\"type\":\"object\",\"properties\":{\"tags\":{\"type\":\"array\",\"items\":"
        "{\"type\":\"string\",\"minLength\":1}}},\"required\":[\"tags\"],"
        "\"additionalProperties\":false}",
    };
    engine *e = start_solo(4);
    test_rng rng;
    test_rng_seed(&rng, 77);
    for (int trial = 0; trial < 200; trial++) {
        size_t k = (size_t)trial % (sizeof schemas / sizeof schemas[0]);
        cJSON *schema = cJSON_Parse(schemas[k]);
        garlic_error err = {0};
        engine_request_params p;
        test_request_params(&p, 40 + (uint32_t)(test_rng_u64(&rng) % 100), 1);
        p.generation.sampling.n_logit_bias = 0; // the end token is the grammar's to allow
        p.generation.sampling.temperature = 0.2f + 2.0f * test_rng_uniform(&rng);
        p.generation.sampling.seed = test_rng_u64(&rng);
        p.grammar = grammar_from_json_schema(schema, &err);
        assert_non_null(p.grammar);
        engine_request *r = engine_request_new(&p, &err);
        assert_non_null(r);
        submit(e, r);
        char text[4096];
        size_t len = 0;
        engine_finish finish = ENGINE_FINISH_CANCEL;
        for (bool all = false; !all;) {
            engine_chunk c;
            if (!engine_request_next(r, &c, 1000))
                continue;
            assert_int_equal(c.error, GARLIC_OK);
            assert_true(len + c.len < sizeof text);
            memcpy(text + len, c.text, c.len);
            len += c.len;
            if (c.choice_done)
                finish = c.finish;
            all = c.all_done;
        }
        text[len] = '\0';
        engine_request_release(r);
        cJSON *doc = cJSON_Parse(text);
        if (!doc || finish != ENGINE_FINISH_STOP)
            fail_msg("trial %d (schema %zu, %u tokens): finish %d, '%s' does not parse", trial, k,
                     p.generation.max_tokens, (int)finish, text);
        const cJSON *v;
        switch (k) { // the schema's constraints, checked on the document
        case 0:
            assert_true(cJSON_IsString(cJSON_GetObjectItem(doc, "name")));
            v = cJSON_GetObjectItem(doc, "age");
            assert_true(cJSON_IsNumber(v) && v->valuedouble == (int)v->valuedouble &&
                        v->valuedouble >= 0 && v->valuedouble <= 120);
            break;
        case 1:
            assert_true(cJSON_IsArray(doc) && cJSON_GetArraySize(doc) >= 1 &&
                        cJSON_GetArraySize(doc) <= 4);
            cJSON_ArrayForEach(v, doc)
                assert_true(cJSON_IsNull(v) || (cJSON_IsNumber(v) && v->valuedouble == 7) ||
                            (cJSON_IsString(v) &&
                             (!strcmp(v->valuestring, "red") || !strcmp(v->valuestring, "green"))));
            break;
        case 2:
            v = cJSON_GetObjectItem(doc, "p");
            assert_true(cJSON_IsNumber(cJSON_GetObjectItem(v, "x")));
            assert_true(cJSON_IsBool(cJSON_GetObjectItem(v, "ok")));
            break;
        case 3:
            assert_true((cJSON_IsString(doc) && strlen(doc->valuestring) <= 5) ||
                        (cJSON_IsNumber(doc) && doc->valuedouble == (long long)doc->valuedouble) ||
                        (cJSON_IsString(doc) && !strcmp(doc->valuestring, "fixed")));
            break;
        default:
            assert_int_equal(cJSON_GetArraySize(doc), 1);
            cJSON_ArrayForEach(v, cJSON_GetObjectItem(doc, "tags"))
                assert_true(cJSON_IsString(v) && v->valuestring[0]);
        }
        cJSON_Delete(doc);
        cJSON_Delete(schema);
    }
    engine_free(e);
}

static void test_bad_configs(void **state)
{
    (void)state;
    const engine_config good = config(2048, 2048, 1);
    engine_config cases[8];
    const char *messages[8];
    size_t n = 0;
    cases[n] = good, cases[n].weights = NULL;
    messages[n++] = "m: an engine needs a model and a tokenizer";
    cases[n] = good, cases[n].tok = NULL, cases[n].name = NULL;
    messages[n++] = "engine: an engine needs a model and a tokenizer";
    cases[n] = good, cases[n].parallel = 0;
    messages[n++] = "m: the context (2048), running sequences (0) and KV blocks (128) must not "
                    "be 0";
    cases[n] = good, cases[n].n_ctx = 0;
    messages[n++] = "the context (0)";
    cases[n] = good, cases[n].kv_blocks = 0;
    messages[n++] = "KV blocks (0)";
    cases[n] = good, cases[n].kv_blocks = 127;
    messages[n++] = "m: a KV pool of 2032 positions cannot hold one context of 2048";
    cases[n] = good, cases[n].block_tokens = 32, cases[n].kv_blocks = 63;
    messages[n++] = "m: a KV pool of 2016 positions cannot hold one context of 2048";
    for (size_t i = 0; i < n; i++) {
        garlic_error err = {0};
        engine *e = engine_new(&cases[i], &err);
        if (e)
            fail_msg("case %zu: engine_new accepted a bad config", i);
        assert_int_equal(err.code, GARLIC_EINVAL);
        if (!strstr(err.message, messages[i]))
            fail_msg("case %zu: '%s' does not say '%s'", i, err.message, messages[i]);
    }
}

// engine_request_new refuses a request without a prompt or with 0 or too many choices.
static void test_bad_requests(void **state)
{
    (void)state;
    static const int32_t prompt[] = {1, 300};
    const engine_request_params cases[] = {
        {.prompt = prompt, .n_prompt = 0, .n_choices = 1},
        {.prompt = prompt, .n_prompt = 2, .n_choices = 0},
        {.prompt = prompt, .n_prompt = 2, .n_choices = ENGINE_MAX_CHOICES + 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        garlic_error err = {0};
        assert_null(engine_request_new(&cases[i], &err));
        assert_int_equal(err.code, GARLIC_EINVAL);
        assert_non_null(strstr(err.message, "a request needs a prompt and 1 to 16 choices"));
    }
}

// ---- allocation failures (run under make test-asan for the leaks) ----

static void *make_engine(const void *cfg, garlic_error *err) { return engine_new(cfg, err); }

static void *make_request(const void *params, garlic_error *err)
{
    return engine_request_new(params, err);
}

// Calls make(arg) with its first allocation failing, then its second, and so on until it
// succeeds; each failure must be a clean GARLIC_ENOMEM with a message. Returns what was made.
static void *make_failing_in_turn(void *(*make)(const void *arg, garlic_error *err),
                                  const void *arg, const char *name)
{
    void *made = NULL;
    long n = 0;
    for (; n < 100000 && !made; n++) {
        garlic_error err = {0};
        garlic_alloc_fail_after(n);
        made = make(arg, &err);
        garlic_alloc_fail_reset();
        if (!made && (err.code != GARLIC_ENOMEM || !err.message[0]))
            fail_msg("%s: allocation %ld failed: code %s, '%s'", name, n,
                     garlic_error_name(err.code), err.message);
    }
    if (!made)
        fail_msg("%s: fails with %ld allocations", name, n);
    print_message("%s succeeds from %ld allocations on\n", name, n - 1);
    return made;
}

// Every allocation of engine_new fails in turn (its own compute pool included): each is a
// clean GARLIC_ENOMEM, and the engine made at last serves a request.
static void test_engine_new_allocation_failures(void **state)
{
    (void)state;
    engine_config cfg = config(256, 512, 2);
    cfg.pool = NULL;
    cfg.n_threads = 2;
    cfg.step_tokens = 64;
    engine *e = make_failing_in_turn(make_engine, &cfg, "engine_new");
    engine_request *r = test_request_new(4, 1);
    submit(e, r);
    engine_chunk c;
    test_request_finish(r, 60, &c);
    assert_int_equal(c.output_tokens, 4);
    engine_request_release(r);
    engine_free(e);
}

// Every allocation of engine_request_new fails in turn (prompt, stop strings, logit biases):
// each is a clean GARLIC_ENOMEM, and the request made at last is served with its copies.
static void test_request_new_allocation_failures(void **state)
{
    (void)state;
    int32_t prompt[] = {1, 300, 301, 302};
    char stop_a[] = "zzz", stop_b[] = "qqqq";
    const char *stops[] = {stop_a, stop_b};
    sampler_bias bias[] = {{.token = 2, .bias = -INFINITY}, {.token = 7, .bias = 1}};
    engine_request_params p = {
        .prompt = prompt, .n_prompt = 4, .n_choices = 2, .label = "alloc-failures"};
    p.generation.sampling = sampler_params_default(512);
    p.generation.sampling.logit_bias = bias;
    p.generation.sampling.n_logit_bias = 2;
    p.generation.stops = stops;
    p.generation.n_stops = 2;
    p.generation.max_tokens = 5;
    engine_request *r = make_failing_in_turn(make_request, &p, "engine_request_new");
    // The request holds copies: the caller's arrays may change once it returned.
    memset(prompt, 0, sizeof prompt);
    stop_a[0] = stop_b[0] = '\0';
    bias[0].token = 0;
    engine *e = start_solo(4);
    submit(e, r);
    static choice_text out[2];
    read_choices(r, out, 2);
    for (int i = 0; i < 2; i++)
        assert_int_equal(out[i].output_tokens, 5);
    engine_request_release(r);
    engine_free(e);
}

// Every allocation the scheduler makes for a request (its sequences, their samplers, block
// tables and stop matchers, the output channels) fails in turn: the request ends (with an
// error, or cancelled when its output could not be kept), no block stays taken, and the
// engine goes on serving. The counter is set before submit and reset after the stream ended;
// this thread allocates nothing in between, so only the scheduler's allocations count.
static void test_scheduler_allocation_failures(void **state)
{
    (void)state;
    static hook_log h;
    engine *e = start_hooked(&h, 512, 2 * 512, 2);
    static const char *const stops[] = {"zzz"};
    engine_request_params p;
    test_request_params(&p, 8, 2);
    p.generation.stops = stops;
    p.generation.n_stops = 1;
    p.generation.logprobs = true;
    p.generation.top_logprobs = 2;
    bool clean = false;
    long n = 0;
    unsigned errors = 0, cancels = 0;
    for (; n < 10000 && !clean; n++) {
        garlic_error err = {0};
        engine_request *r = engine_request_new(&p, &err);
        assert_non_null(r);
        garlic_alloc_fail_after(n);
        submit(e, r);
        unsigned done = 0, finished = 0;
        bool failed = false;
        double deadline = garlic_now() + 60;
        for (;;) {
            engine_chunk c;
            if (garlic_now() > deadline) {
                garlic_alloc_fail_reset();
                fail_msg("allocation %ld failed: the request did not end", n);
            }
            if (!engine_request_next(r, &c, 100))
                continue;
            if (c.error != GARLIC_OK) {
                if (c.error != GARLIC_ENOMEM || !c.error_message[0]) {
                    garlic_alloc_fail_reset();
                    fail_msg("allocation %ld failed: code %s, '%s'", n, garlic_error_name(c.error),
                             c.error_message);
                }
                failed = true;
            }
            if (c.choice_done) {
                done++;
                finished += c.finish == ENGINE_FINISH_LENGTH && c.output_tokens == 8;
            }
            if (c.all_done)
                break;
        }
        garlic_alloc_fail_reset();
        engine_request_release(r);
        errors += failed;
        cancels += !failed && finished < 2;
        clean = !failed && finished == 2;
        engine_counters k;
        settled_counters(e, &k);
        if (k.kv_used != 0 || k.running != 0 || k.waiting != 0)
            fail_msg("allocation %ld failed: %u blocks used, %u running, %u waiting after the "
                     "request ended",
                     n, k.kv_used, k.running, k.waiting);
        assert_true(wait_count(&h.requests, (unsigned)n + 1)); // each request counted once
        assert_int_equal(atomic_load(&h.requests), n + 1);
    }
    assert_true(clean);
    print_message("a request runs clean from %ld allocations on (%u failed, %u cancelled)\n", n - 1,
                  errors, cancels);
    engine_free(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_choices),
        cmocka_unit_test(test_cancel_within_one_token),
        cmocka_unit_test(test_hooks),
        cmocka_unit_test(test_queue_limit),
        cmocka_unit_test(test_prompt_too_long),
        cmocka_unit_test(test_stop),
        cmocka_unit_test(test_concurrent_equals_solo),
        cmocka_unit_test(test_small_pool_preempts),
        cmocka_unit_test(test_prefix_cache),
        cmocka_unit_test(test_cancel_frees_blocks),
        cmocka_unit_test(test_window_layers),
        cmocka_unit_test(test_wake_at_end),
        cmocka_unit_test(test_first_token_seconds),
        cmocka_unit_test(test_reasoning_budget),
        cmocka_unit_test(test_grammar_in_engine),
        cmocka_unit_test(test_schema_trials),
        cmocka_unit_test(test_bad_configs),
        cmocka_unit_test(test_bad_requests),
        cmocka_unit_test(test_engine_new_allocation_failures),
        cmocka_unit_test(test_request_new_allocation_failures),
        cmocka_unit_test(test_scheduler_allocation_failures),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
