// SPDX-License-Identifier: MIT
// An engine's life: engine_new allocates the KV pool, the run state and the queue and starts
// the scheduler (scheduler.c); submitters queue requests under the engine's lock; readers of
// /metrics copy the counters the scheduler publishes after each step.
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "engine/internal.h"

const char *engine_finish_name(engine_finish f)
{
    static const char *const names[ENGINE_FINISH_COUNT] = {[ENGINE_FINISH_LENGTH] = "length",
                                                           [ENGINE_FINISH_STOP] = "stop",
                                                           [ENGINE_FINISH_CONTEXT] = "length",
                                                           [ENGINE_FINISH_CANCEL] = "cancel"};
    return (unsigned)f < ENGINE_FINISH_COUNT ? names[f] : "unknown";
}

// Checks the sizes of cfg: the pool must hold one whole context.
static int check_config(const engine_config *cfg, uint32_t block_tokens, garlic_error *err)
{
    const char *name = cfg->name ? cfg->name : "engine";
    if (!cfg->weights || !cfg->tok)
        return garlic_error_set(err, GARLIC_EINVAL, "%s: an engine needs a model and a tokenizer",
                                name);
    if (cfg->n_ctx == 0 || cfg->parallel == 0 || cfg->kv_blocks == 0)
        return garlic_error_set(err, GARLIC_EINVAL,
                                "%s: the context (%u), running sequences "
                                "(%u) and KV blocks (%u) must not be 0",
                                name, cfg->n_ctx, cfg->parallel, cfg->kv_blocks);
    if ((uint64_t)cfg->kv_blocks * block_tokens < (uint64_t)cfg->n_ctx)
        return garlic_error_set(err, GARLIC_EINVAL,
                                "%s: a KV pool of %u positions cannot hold "
                                "one context of %u",
                                name, cfg->kv_blocks * block_tokens, cfg->n_ctx);
    return GARLIC_OK;
}

// The pool's configuration: window blocks as given, or enough for parallel sequences and
// steps of step_tokens. Fails when they cannot hold one sequence's window and step (a
// request could then never run).
static int pool_config(const engine_config *cfg, uint32_t block_tokens, uint32_t step_tokens,
                       kv_cache_config *kc, garlic_error *err)
{
    *kc = model_kv_config(cfg->weights, cfg->kv_type, block_tokens, cfg->kv_blocks);
    kc->n_window_blocks = cfg->kv_window_blocks
        ? cfg->kv_window_blocks
        : kv_window_blocks_for(kc, cfg->parallel, step_tokens);
    uint32_t one = kv_window_blocks_for(kc, 1, step_tokens);
    one = one < cfg->kv_blocks ? one : cfg->kv_blocks;
    if (kv_cache_window_blocks(kc, cfg->kv_blocks) < one)
        return garlic_error_set(err, GARLIC_EINVAL,
                                "%s: %u window blocks cannot hold one "
                                "sequence's window of %u positions and a step of %u (%u blocks)",
                                cfg->name ? cfg->name : "engine", cfg->kv_window_blocks,
                                kc->windows.window, step_tokens, one);
    return GARLIC_OK;
}

engine *engine_new(const engine_config *cfg, garlic_error *err)
{
    uint32_t block_tokens = cfg->block_tokens ? cfg->block_tokens : KV_DEFAULT_BLOCK_TOKENS;
    uint32_t step_tokens = cfg->step_tokens ? cfg->step_tokens : ENGINE_DEFAULT_STEP_TOKENS;
    kv_cache_config kc;
    if (check_config(cfg, block_tokens, err) != GARLIC_OK ||
        pool_config(cfg, block_tokens, step_tokens, &kc, err) != GARLIC_OK)
        return NULL;
    engine *e = garlic_calloc(1, sizeof *e);
    if (!e) {
        garlic_error_set(err, GARLIC_ENOMEM, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&e->mu, NULL);
    garlic_cond_init(&e->cv); // (CLOCK_MONOTONIC: the leader's idle wait is timed)
    atomic_init(&e->cancel_all, false);
    atomic_init(&e->failed, false);
    e->cfg = *cfg;
    e->cfg.block_tokens = block_tokens;
    e->cfg.step_tokens = step_tokens;
    e->cfg.max_queue = cfg->max_queue ? cfg->max_queue : ENGINE_DEFAULT_MAX_QUEUE;
    e->name = garlic_strndup(cfg->name ? cfg->name : "model", SIZE_MAX);
    e->cfg.name = e->name;
    engine_end_tokens(cfg->tok, &e->end_tokens);
    model_state_config sc = {.n_ctx = cfg->n_ctx,
                             .max_batch = e->cfg.step_tokens,
                             .logit_rows = cfg->parallel,
                             .pool = cfg->pool,
                             .n_threads = cfg->n_threads ? cfg->n_threads
                                                         : thread_pool_default_threads(),
                             .device = cfg->device,
                             .device_layers = cfg->device_layers,
                             .upload_progress = cfg->upload_progress,
                             .upload_progress_ctx = cfg->upload_progress_ctx};
    e->queue_cap = e->cfg.max_queue;
    e->queue = garlic_calloc(e->queue_cap, sizeof *e->queue);
    e->seq_info = garlic_calloc(cfg->parallel, sizeof *e->seq_info);
    if (!e->name || !e->queue || !e->seq_info) {
        garlic_error_set(err, GARLIC_ENOMEM, "out of memory");
        engine_free(e);
        return NULL;
    }
    if (!(e->kv = kv_cache_new(&kc, err)) ||
        !(e->state = model_state_new(cfg->weights, &sc, err))) {
        engine_free(e);
        return NULL;
    }
    kv_cache_stats st = kv_cache_get_stats(e->kv);
    e->snap = (engine_counters){.parallel = cfg->parallel,
                                .block_tokens = block_tokens,
                                .kv_blocks = st.n_blocks,
                                .kv_free = st.n_free,
                                .kv_window_blocks = st.n_window_blocks,
                                .kv_window_free = st.n_window_free,
                                .kv_bytes = st.bytes,
                                .kv_window_bytes = st.window_bytes};
    if (cfg->tp_role == ENGINE_TP_LEADER)
        kv_cache_set_mirror(e->kv, &(kv_mirror){.copy = engine_tp_record_copy, .ctx = e});
    // (a follower runs no scheduler: engine_follow computes what the leader's sends)
    if (cfg->tp_role != ENGINE_TP_FOLLOWER && engine_sched_start(e, err) != GARLIC_OK) {
        engine_free(e);
        return NULL;
    }
    return e;
}

void engine_stop(engine *e) { engine_sched_stop(e); }

void engine_free(engine *e)
{
    if (!e)
        return;
    engine_sched_stop(e);
    engine_grammar_deinit(&e->grammar);
    model_state_free(e->state);
    kv_cache_free(e->kv);
    garlic_free(e->tp_copies);
    garlic_free(e->tp_words);
    garlic_free(e->queue);
    garlic_free(e->seq_info);
    garlic_free(e->name);
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->cv);
    garlic_free(e);
}

uint32_t engine_max_embed_tokens(const engine *e)
{
    const model *m = e->cfg.weights;
    uint32_t most = m->hp.causal ? e->cfg.n_ctx : model_state_max_batch(e->state);
    most = most < e->cfg.n_ctx ? most : e->cfg.n_ctx;
    // Learned positions (BERT) end with the table's rows.
    return m->arch->pos_embd && m->hp.n_ctx_train < most ? m->hp.n_ctx_train : most;
}

// What only an embed request or only a generation may ask of the model.
static int check_kind(const engine *e, const engine_request *r, garlic_error *err)
{
    const model *m = e->cfg.weights;
    if (!r->embed && model_embeddings_only(m))
        return garlic_error_set(err, GARLIC_EINVAL,
                                "%s: the model computes embeddings only (an encoder, or "
                                "attention that is not causal); it cannot generate text",
                                e->name);
    if (!r->embed)
        return GARLIC_OK;
    if (m->hp.pooling == MODEL_POOLING_RANK)
        return garlic_error_set(err, GARLIC_EINVAL,
                                "%s: the model's pooling is 'rank' (a reranker), which "
                                "garlic does not compute",
                                e->name);
    uint32_t most = engine_max_embed_tokens(e);
    if (r->n_prompt > most)
        return garlic_error_set(err, GARLIC_EINVAL,
                                "%s: the input has %zu tokens; the model embeds at most %u (%s)",
                                e->name, r->n_prompt, most,
                                most < e->cfg.n_ctx ? "one step's tokens: its attention sees "
                                                      "the whole input at once"
                                                    : "its context");
    return GARLIC_OK;
}

int engine_submit(engine *e, engine_request *r, garlic_error *err)
{
    if (e->cfg.tp_role == ENGINE_TP_FOLLOWER)
        return garlic_error_set(err, GARLIC_EUNSUPPORTED,
                                "%s: a tensor-parallel follower takes no requests (rank 0 does)",
                                e->name);
    int rc = check_kind(e, r, err);
    if (rc)
        return rc;
    if (!r->embed && r->n_prompt >= e->cfg.n_ctx)
        return garlic_error_set(err, GARLIC_EINVAL,
                                "%s: the prompt has %zu tokens; the context "
                                "holds %u, with room for at least one generated token",
                                e->name, r->n_prompt, e->cfg.n_ctx);
    r->t_submit = garlic_now();
    pthread_mutex_lock(&e->mu);
    if (e->stop) {
        pthread_mutex_unlock(&e->mu);
        return garlic_error_set(err, GARLIC_ESTOPPED, "%s: the engine is stopping", e->name);
    }
    if (atomic_load(&e->failed)) {
        garlic_error_set(err, GARLIC_EIO, "%s", e->failure);
        pthread_mutex_unlock(&e->mu);
        return GARLIC_EIO;
    }
    if (e->count == e->queue_cap) {
        pthread_mutex_unlock(&e->mu);
        return garlic_error_set(err, GARLIC_EFULL,
                                "%s: %u requests are waiting already; "
                                "try again later",
                                e->name, e->queue_cap);
    }
    atomic_fetch_add(&r->refs, 1);
    e->queue[(e->head + e->count) % e->queue_cap] = r;
    e->count++;
    e->busy = true;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
    return GARLIC_OK;
}

// Running and waiting sequences are the scheduler's: their requests are reached through the
// cancel flags, which the scheduler sets for everything it holds when it sees cancel_all.
void engine_cancel_all(engine *e)
{
    pthread_mutex_lock(&e->mu);
    for (uint32_t i = 0; i < e->count; i++)
        engine_request_cancel(e->queue[(e->head + i) % e->queue_cap]);
    atomic_store(&e->cancel_all, true);
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

int engine_check_files(engine *e, garlic_error *err)
{
    garlic_error why = {0};
    if (!atomic_load(&e->failed) && model_files_check(e->cfg.weights, &why) == GARLIC_OK)
        return GARLIC_OK;
    bool first = false;
    char message[sizeof e->failure];
    pthread_mutex_lock(&e->mu);
    if (!atomic_load(&e->failed)) {
        snprintf(e->failure, sizeof e->failure,
                 "model '%.100s' failed: its file changed on disk (%.300s); it is reloaded for "
                 "the next request",
                 e->name, why.message);
        atomic_store(&e->failed, true);
        first = true;
    }
    snprintf(message, sizeof message, "%s", e->failure);
    pthread_cond_broadcast(&e->cv); // the scheduler fails what it holds
    pthread_mutex_unlock(&e->mu);
    if (first && e->cfg.hooks.failed)
        e->cfg.hooks.failed(e->cfg.hooks.user, message);
    return garlic_error_set(err, GARLIC_EIO, "%s", message);
}

void engine_failure(engine *e, char *out, size_t cap)
{
    pthread_mutex_lock(&e->mu);
    snprintf(out, cap, "%s", atomic_load(&e->failed) ? e->failure : "");
    pthread_mutex_unlock(&e->mu);
}

bool engine_idle(engine *e)
{
    pthread_mutex_lock(&e->mu);
    bool idle = e->count == 0 && !e->busy;
    pthread_mutex_unlock(&e->mu);
    return idle;
}

uint32_t engine_n_ctx(const engine *e) { return e->cfg.n_ctx; }

uint32_t engine_queue_length(engine *e)
{
    pthread_mutex_lock(&e->mu);
    uint32_t n = e->count;
    pthread_mutex_unlock(&e->mu);
    return n;
}

void engine_counters_get(engine *e, engine_counters *out)
{
    pthread_mutex_lock(&e->mu);
    *out = e->snap;
    out->waiting += e->count;
    pthread_mutex_unlock(&e->mu);
}

size_t engine_sequences(engine *e, engine_seq_info *out, size_t cap)
{
    pthread_mutex_lock(&e->mu);
    size_t n = e->n_seq_info < cap ? e->n_seq_info : cap;
    if (n)
        memcpy(out, e->seq_info, n * sizeof *out);
    pthread_mutex_unlock(&e->mu);
    return n;
}
