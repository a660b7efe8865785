// SPDX-License-Identifier: MIT
// `garlic bench MODEL --streams 1,2,4,8,16 [-p 128] [-n 64] [-t N] [--kv-type T]
// [--prefix N] [--json]`: the server's engine measured in-process, like llama.cpp's
// llama-batched-bench. For each stream count, that many requests with distinct random
// prompts of -p tokens each generate -n tokens (end-of-generation ignored) at once through
// the engine (cli/local.h); reported are the prompt phase (until every stream has its first
// token), the aggregate decode rate after it, and the whole run. --prefix N then measures the time to
// first token of a request whose first N tokens an earlier request computed (prefix cache)
// against that earlier request's.
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/threadpool.h"
#include "cli/bench.h"
#include "cli/cli.h"
#include "cli/local.h"
#include "engine/engine.h"
#include "model/model.h"
#include "registry/registry.h"

// One stream: its request and the times its reader saw.
typedef struct stream {
    engine_request *r;
    pthread_t reader;
    double t_submit, t_first, t_end;
    uint32_t generated;
    int error;
    char message[256];
} stream;

// Reads a stream to its end, noting when its first text and its end arrived.
static void *read_stream(void *arg)
{
    stream *s = arg;
    for (;;) {
        engine_chunk c;
        if (!engine_request_next(s->r, &c, 1000))
            continue;
        double now = garlic_now();
        if (s->t_first == 0 && (c.len || c.choice_done))
            s->t_first = now;
        if (c.error) {
            s->error = c.error;
            snprintf(s->message, sizeof s->message, "%s", c.error_message);
        }
        if (c.choice_done)
            s->generated = c.output_tokens;
        if (c.all_done) {
            s->t_end = now;
            return NULL;
        }
    }
}

// Random token ids in [3, n_vocab) after BOS (1), from seed.
static void random_prompt(int32_t *ids, uint32_t n, uint32_t n_vocab, uint64_t seed)
{
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
    ids[0] = 1;
    for (uint32_t i = 1; i < n; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        ids[i] = (int32_t)(3 + x % (n_vocab - 3));
    }
}

// Submits the streams' prompts (n_prompt tokens each) together, waits for every answer.
static int run_streams(registry_model *m, stream *st, uint32_t n, int32_t *const *prompts,
                       uint32_t n_prompt, uint32_t max_tokens, garlic_error *err)
{
    for (uint32_t i = 0; i < n; i++) {
        engine_request_params p = {.prompt = prompts[i], .n_prompt = n_prompt, .n_choices = 1};
        p.generation.sampling = sampler_params_default(registry_model_weights(m)->hp.n_vocab);
        p.generation.sampling.temperature = 0;
        p.generation.max_tokens = max_tokens;
        p.generation.ignore_eos = true;
        memset(&st[i], 0, sizeof st[i]);
        st[i].r = engine_request_new(&p, err);
        if (!st[i].r)
            return err->code;
    }
    int rc = GARLIC_OK;
    uint32_t started = 0;
    for (uint32_t i = 0; i < n && rc == GARLIC_OK; i++, started++) {
        st[i].t_submit = garlic_now();
        rc = registry_submit(m, st[i].r, err);
        if (rc == GARLIC_OK && pthread_create(&st[i].reader, NULL, read_stream, &st[i]) != 0) {
            engine_request_cancel(st[i].r);
            rc = garlic_error_set(err, GARLIC_ENOMEM, "cannot start a reader thread");
        }
        if (rc != GARLIC_OK)
            break;
    }
    for (uint32_t i = 0; i < started; i++) {
        pthread_join(st[i].reader, NULL);
        if (st[i].error && rc == GARLIC_OK)
            rc = garlic_error_set(err, st[i].error, "%s", st[i].message);
    }
    for (uint32_t i = 0; i < n; i++)
        engine_request_release(st[i].r);
    return rc;
}

typedef struct batch_row {
    uint32_t npl;
    double t_pp, s_pp, t_tg, s_tg, t, s;
} batch_row;

// One stream count on the registry (sized for the largest): a warm-up, then the measured run.
static int measure(const bench_options *o, uint32_t npl, registry_model *m, batch_row *row,
                   garlic_error *err)
{
    uint32_t n_vocab = registry_model_weights(m)->hp.n_vocab;
    stream *st = garlic_calloc(npl, sizeof *st);
    int32_t **prompts = garlic_calloc(npl, sizeof *prompts);
    int rc = st && prompts ? GARLIC_OK : garlic_error_set(err, GARLIC_ENOMEM, "out of memory");
    for (uint32_t i = 0; rc == GARLIC_OK && i < npl; i++) {
        prompts[i] = garlic_malloc(o->n_prompt * sizeof **prompts);
        if (!prompts[i])
            rc = garlic_error_set(err, GARLIC_ENOMEM, "out of memory");
        else
            random_prompt(prompts[i], o->n_prompt, n_vocab, 1000 * npl + i);
    }
    if (rc == GARLIC_OK) // warm-up: wakes the threads, touches the scratch
        rc = run_streams(m, st, 1, prompts, o->n_prompt < 8 ? o->n_prompt : 8, 2, err);
    // Fresh prompts for the measured run, so the prefix cache holds nothing of them.
    for (uint32_t i = 0; rc == GARLIC_OK && i < npl; i++)
        random_prompt(prompts[i], o->n_prompt, n_vocab, 77777 + 1000 * npl + i);
    if (rc == GARLIC_OK)
        rc = run_streams(m, st, npl, prompts, o->n_prompt, o->n_gen, err);
    if (rc == GARLIC_OK) {
        double t0 = st[0].t_submit, first = 0, end = 0;
        uint64_t generated = 0;
        for (uint32_t i = 0; i < npl; i++) {
            first = st[i].t_first > first ? st[i].t_first : first;
            end = st[i].t_end > end ? st[i].t_end : end;
            generated += st[i].generated;
        }
        // After `first` every stream is decoding; each has produced one token by then.
        *row = (batch_row){.npl = npl, .t_pp = first - t0, .t_tg = end - first, .t = end - t0};
        row->s_pp = (double)npl * o->n_prompt / row->t_pp;
        row->s_tg = (double)(generated - npl) / row->t_tg;
        row->s = (double)npl * (o->n_prompt + o->n_gen) / row->t;
    }
    for (uint32_t i = 0; prompts && i < npl; i++)
        garlic_free(prompts[i]);
    garlic_free(prompts);
    garlic_free(st);
    return rc;
}

// Loads the model for stream counts up to parallel, each of n_ctx positions (kv_tokens: the
// pool's positions, 0: one context).
static int open_local(const bench_options *o, uint32_t parallel, uint32_t n_ctx, uint32_t kv_tokens,
                      cli_local *l, garlic_error *err)
{
    registry_config cfg = {.n_ctx = n_ctx,
                           .max_queue = BENCH_MAX_STREAMS,
                           .parallel = parallel,
                           .kv_tokens = kv_tokens,
                           .n_threads = o->threads,
                           .kv_type = o->kv_type};
    int rc = cli_local_device(o->device, o->gpu_layers, &cfg, err);
    return rc ? rc : cli_local_open(l, o->model_path, &cfg, err);
}

// Time to first token of a prompt whose first `prefix` tokens an earlier request computed,
// against that earlier request's and against an unrelated prompt's of the same length.
static int measure_prefix(const bench_options *o, garlic_error *err)
{
    uint32_t n = o->prefix + 16;
    cli_local l;
    if (open_local(o, 1, n + 16, 0, &l, err) != GARLIC_OK)
        return err->code;
    registry_model *m = l.m;
    uint32_t n_vocab = registry_model_weights(m)->hp.n_vocab;
    int32_t *a = garlic_malloc(n * sizeof *a), *b = garlic_malloc(n * sizeof *b);
    int32_t *c = garlic_malloc(n * sizeof *c);
    int rc = a && b && c ? GARLIC_OK : garlic_error_set(err, GARLIC_ENOMEM, "out of memory");
    stream st;
    double ttft[3] = {0};
    if (rc == GARLIC_OK) {
        random_prompt(a, n, n_vocab, 4242);
        memcpy(b, a, o->prefix * sizeof *b);
        random_prompt(b + o->prefix, 16, n_vocab, 99);
        b[o->prefix] = a[o->prefix] == 5 ? 6 : 5; // differs right after the prefix
        random_prompt(c, n, n_vocab, 31337);
        int32_t *warm[1] = {c};
        rc = run_streams(m, &st, 1, warm, 8, 2, err); // warm-up
        int32_t *order[3] = {a, b, c};
        for (int i = 0; i < 3 && rc == GARLIC_OK; i++) {
            rc = run_streams(m, &st, 1, &order[i], n, 1, err);
            ttft[i] = st.t_first - st.t_submit;
        }
    }
    if (rc == GARLIC_OK && o->json)
        printf("{\"prefix\": %u, \"prompt\": %u, \"ttft_first_s\": %.6f, \"ttft_shared_s\": %.6f, "
               "\"ttft_unrelated_s\": %.6f, \"ratio\": %.4f}\n",
               o->prefix, n, ttft[0], ttft[1], ttft[2], ttft[1] / ttft[0]);
    else if (rc == GARLIC_OK)
        printf("\nprefix cache: %u-token prompts sharing their first %u tokens\n"
               "  time to first token: first %.1f ms, second (shared prefix) %.1f ms = %.1f %% "
               "of the first; unrelated prompt %.1f ms\n",
               n, o->prefix, ttft[0] * 1e3, ttft[1] * 1e3, 100 * ttft[1] / ttft[0], ttft[2] * 1e3);
    garlic_free(a), garlic_free(b), garlic_free(c);
    cli_local_close(&l);
    return rc;
}

int cli_bench_batch_run(const bench_options *opts)
{
    const bench_options o = *opts;
    garlic_error err = {0};
    uint32_t max_npl = 0;
    for (uint32_t i = 0; i < o.n_streams; i++)
        max_npl = o.streams[i] > max_npl ? o.streams[i] : max_npl;
    uint32_t n_ctx = o.n_prompt + o.n_gen + 16;
    cli_local l;
    if (open_local(&o, max_npl, n_ctx, max_npl * n_ctx, &l, &err) != GARLIC_OK) {
        fprintf(stderr, "garlic bench: %s\n", err.message);
        return 1;
    }
    registry_model *m = l.m;
    batch_row rows[BENCH_MAX_STREAM_COUNTS];
    int rc = GARLIC_OK;
    if (!o.json)
        printf(
            "garlic batched decoding: %s, %d threads, prompt %u, generate %u per stream\n\n"
            "| %5s | %8s | %9s | %8s | %9s | %8s | %9s | %8s |\n"
            "|-------|----------|-----------|----------|-----------|----------|-----------|----------|\n",
            o.model_path, o.threads, o.n_prompt, o.n_gen, "B", "T_PP s", "S_PP t/s", "T_TG s",
            "S_TG t/s", "T s", "S t/s", "TG x 1st");
    for (uint32_t i = 0; i < o.n_streams && rc == GARLIC_OK; i++) {
        rc = measure(&o, o.streams[i], m, &rows[i], &err);
        if (rc == GARLIC_OK && !o.json)
            printf("| %5u | %8.3f | %9.2f | %8.3f | %9.2f | %8.3f | %9.2f | %8.2f |\n", rows[i].npl,
                   rows[i].t_pp, rows[i].s_pp, rows[i].t_tg, rows[i].s_tg, rows[i].t, rows[i].s,
                   rows[i].s_tg / rows[0].s_tg);
        fflush(stdout);
    }
    if (rc == GARLIC_OK && o.json) {
        printf("[");
        for (uint32_t i = 0; i < o.n_streams; i++)
            printf("%s\n {\"pp\": %u, \"tg\": %u, \"pl\": %u, \"t_pp\": %.6f, \"speed_pp\": %.4f, "
                   "\"t_tg\": %.6f, \"speed_tg\": %.4f, \"t\": %.6f, \"speed\": %.4f}",
                   i ? "," : "", o.n_prompt, o.n_gen, rows[i].npl, rows[i].t_pp, rows[i].s_pp,
                   rows[i].t_tg, rows[i].s_tg, rows[i].t, rows[i].s);
        printf("\n]\n");
    }
    cli_local_close(&l);
    if (rc == GARLIC_OK && o.prefix)
        rc = measure_prefix(&o, &err);
    if (rc != GARLIC_OK) {
        fprintf(stderr, "garlic bench: %s\n", err.message);
        return 1;
    }
    return 0;
}
