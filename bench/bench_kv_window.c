// SPDX-License-Identifier: MIT
// The memory plan of a model with sliding-window layers against what the process holds. A
// synthesized llama model (dim 1024, 8 layers, 8 KV heads of 128, Q8_0) whose layers get a
// window of 256 but every fourth (as a test does: no architecture has windows in its files
// yet) is served by an engine sized exactly as the registry sizes it (planner_plan_make, 2
// running sequences of 2048 positions, F16 KV); two requests fill both contexts; then the RSS
// (/proc/self/status) is compared with the plan, and the same for the model without windows.
// Reported, never asserted.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/threadpool.h"
#include "engine/engine.h"
#include "model/model.h"
#include "model/synth.h"
#include "planner/planner.h"
#include "tensor/types.h"
#include "tokenizer/tokenizer.h"

enum { CTX = 2048, SEQS = 2, WINDOW = 256, LAYERS = 8 };

// The process's resident bytes.
static double rss_bytes(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    double kib = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %lf kB", &kib) == 1)
            break;
    if (f)
        fclose(f);
    return kib * 1024;
}

// Runs SEQS requests whose prompts fill the context but one position (one token each,
// nothing shared) on an engine sized by the plan; returns false on any failure.
static bool fill(const model *m, const tokenizer *tok, thread_pool *pool, const planner_plan *p)
{
    garlic_error err = {0};
    engine_config ec = {.name = "kv-window",
                        .weights = m,
                        .tok = tok,
                        .kv_type = p->cfg.kv_type,
                        .kv_blocks = p->kv_blocks,
                        .kv_window_blocks = p->kv_window_blocks,
                        .n_ctx = p->cfg.ctx,
                        .parallel = p->cfg.running,
                        .step_tokens = p->cfg.max_batch,
                        .pool = pool};
    engine *e = engine_new(&ec, &err);
    if (!e) {
        printf("engine_new: %s\n", err.message);
        return false;
    }
    static int32_t prompts[SEQS][CTX];
    engine_request *rs[SEQS];
    for (int i = 0; i < SEQS; i++) {
        prompts[i][0] = 1;
        for (int j = 1; j < CTX - 1; j++)
            prompts[i][j] = 3 + (i * 7919 + j * 31) % 500;
        engine_request_params rp = {.prompt = prompts[i], .n_prompt = CTX - 1, .n_choices = 1};
        rp.generation.sampling = sampler_params_default(512);
        rp.generation.sampling.temperature = 0;
        rp.generation.max_tokens = 1;
        rs[i] = engine_request_new(&rp, &err);
        if (!rs[i] || engine_submit(e, rs[i], &err) != GARLIC_OK) {
            printf("request: %s\n", err.message);
            return false;
        }
    }
    bool ok = true;
    for (int i = 0; i < SEQS; i++) {
        engine_chunk c;
        do {
            while (!engine_request_next(rs[i], &c, 1000)) {
            }
        } while (!c.all_done);
        ok &= c.error == GARLIC_OK;
        engine_request_release(rs[i]);
    }
    engine_counters k;
    engine_counters_get(e, &k);
    printf("  pool: %u full blocks, %u window blocks; %llu preemptions\n", k.kv_blocks,
           k.kv_window_blocks, (unsigned long long)k.preemptions);
    // The rows stay resident after the requests end (cached): measure with the engine alive.
    double rss = rss_bytes();
    printf("  RSS %.1f MiB, planned %.1f MiB: RSS / plan %.3f\n", rss / 1048576,
           (double)p->total_bytes / 1048576, rss / (double)p->total_bytes);
    engine_free(e);
    return ok;
}

static void run(const char *path, bool windows)
{
    garlic_error err = {0};
    double before = rss_bytes();
    model *m = model_load(path, &err);
    tokenizer *tok = m ? tokenizer_load(m->file, &err) : NULL;
    thread_pool *pool = tok ? thread_pool_new(2, &err) : NULL;
    if (!pool) {
        printf("%s\n", err.message);
        return;
    }
    for (uint32_t l = 0; l < LAYERS && windows; l++)
        m->layers[l].window = l % 4 == 3 ? 0 : WINDOW;
    model_prefault(m, NULL, NULL);
    planner_input in;
    planner_plan p;
    planner_config cfg;
    planner_config_default(&cfg);
    cfg.ctx = CTX, cfg.parallel = cfg.running = SEQS, cfg.n_threads = 2;
    if (planner_from_model(m, path, &in, &err) || planner_plan_make(&in, &cfg, &p, &err)) {
        printf("plan: %s\n", err.message);
        return;
    }
    printf("%s: %u of %u layers with a window of %u\n", windows ? "windows" : "no windows",
           p.n_window_layers, LAYERS, p.window);
    printf("  plan: weights %.1f MiB, KV %.1f MiB (window blocks %.1f MiB), compute %.1f MiB, "
           "overhead %.1f MiB\n",
           (double)p.weight_bytes / 1048576, (double)p.kv_bytes / 1048576,
           (double)p.kv_window_blocks * 16 * (double)p.kv_window_bytes_per_token / 1048576,
           (double)p.scratch_bytes / 1048576, (double)p.overhead_bytes / 1048576);
    double t0 = garlic_now();
    if (!fill(m, tok, pool, &p))
        printf("  the requests failed\n");
    printf("  RSS before the load %.1f MiB; %.1f s\n", before / 1048576, garlic_now() - t0);
    thread_pool_free(pool);
    tokenizer_free(tok);
    model_free(m);
}

int main(void)
{
    const char *build = getenv("BUILD") ? getenv("BUILD") : "build";
    char path[1024];
    snprintf(path, sizeof path, "%s/bench/kv-window.gguf", build);
    model_synth_params sp;
    model_synth_params_default(&sp);
    sp.dim = 1024, sp.n_layer = LAYERS, sp.n_head = 8, sp.n_head_kv = 8, sp.ffn = 2048;
    sp.context = CTX, sp.type = TENSOR_TYPE_Q8_0;
    garlic_error err = {0};
    if (model_synth_write(&sp, path, &err)) {
        printf("synth: %s\n", err.message);
        return 0;
    }
    run(path, true);
    run(path, false);
    remove(path);
    return 0;
}
