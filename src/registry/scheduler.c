// SPDX-License-Identifier: MIT
// The scheduler of a loaded model: one thread that owns the model's KV block pool and run
// state and serves every request of the model at once (continuous batching). Each step:
//   1. drops cancelled sequences (their blocks go back to the pool),
//   2. admits waiting sequences, then queued requests, while the running count is below
//      --parallel and the prompt's blocks (minus those the prefix cache holds) can be had
//      with a block of headroom per running sequence,
//   3. forms one batch: every decoding sequence's next token, then prompt chunks of the
//      sequences still prefilling, up to the step's token budget (chunked prefill),
//   4. takes the batch's new blocks, preempting the newest sequences when the pool runs out
//      (their blocks are released and they are recomputed later, mostly from the prefix
//      cache; their sampler state is kept, so their output does not change),
//   5. runs one forward pass over the batch and commits the written blocks (full blocks are
//      published in the prefix cache),
//   6. samples each sequence that reached the end of its known tokens with its own sampler
//      and streams the text to its request's channel.
// Each choice of a request (OpenAI's n) is a sequence of its own. See docs/kvcache.md.
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "registry/internal.h"

// One choice of a request: its tokens so far, its block table and its generation state.
typedef struct sched_seq {
    registry_request *r;
    uint32_t choice;
    engine_params params;   // the request's, with this choice's seed and the token hook
    engine_seq *gen;
    engine_stats stats;
    kv_seq kv;
    int32_t *tokens;        // (cap) prompt then generated tokens
    uint32_t n_tokens, cap;
    uint32_t n_computed;    // positions whose K and V are in the pool
    uint32_t chunk;         // tokens of this step's batch
    uint64_t order;         // admission order: preemption takes the newest first
    double t_start;         // when its prompt started computing
    double t_last;          // when its previous token came out (0 before the first)
    uint32_t output_tokens;
    bool started;           // admitted at least once (engine state and order exist)
} sched_seq;

typedef struct sched {
    registry_model *m;
    sched_seq **running;    // (parallel) in admission order
    uint32_t n_running;
    sched_seq **waiting;    // (waiting_cap) FIFO; preempted sequences go to the front
    uint32_t n_waiting, waiting_cap;
    uint64_t next_order;
    uint64_t preemptions;
    uint32_t max_batch;
    // The batch (max_batch tokens, parallel sequences).
    int32_t *b_tokens;
    uint32_t *b_pos, *b_seq, *b_out;
    const kv_seq **b_seqs;
    sched_seq **b_owner;    // (parallel) the sequence of each b_seqs entry (NULL once ended)
    uint32_t *b_row;        // (parallel) its logits row, or UINT32_MAX
    uint32_t n_b_seqs;
} sched;

// ---- sequences ----

// emit: a choice's text goes to its channel; a cancelled request stops.
static int on_text(void *user, const char *text, size_t len)
{
    sched_seq *q = user;
    if (registry_request_append_text(q->r, q->choice, text, len) != GARLIC_OK)
        atomic_store(&q->r->cancel, true);
    return atomic_load(&q->r->cancel) ? 1 : 0;
}

// on_token: timing for the statistics and the token for logprobs.
static int on_token(void *user, int32_t token, const sampler_logprobs *lp)
{
    sched_seq *q = user;
    double now = garlic_now();
    bool first = q->t_last == 0;
    registry_stats_token(q->r->reg, now - (first ? q->r->t_submit : q->t_last), first);
    q->t_last = now;
    q->output_tokens++;
    if (lp && registry_request_append_token(q->r, q->choice, token, lp) != GARLIC_OK)
        atomic_store(&q->r->cancel, true);
    return atomic_load(&q->r->cancel) ? 1 : 0;
}

static void seq_free(sched *S, sched_seq *q)
{
    if (!q)
        return;
    for (uint32_t s = 0; s < S->n_b_seqs; s++) // a batch in flight forgets it
        if (S->b_owner[s] == q)
            S->b_owner[s] = NULL;
    kv_seq_deinit(S->m->kv, &q->kv);
    engine_seq_free(q->gen);
    garlic_free(q->tokens);
    garlic_free(q);
}

// A sequence for choice c of r, not yet admitted. Its token array holds the prompt plus
// every token the context leaves room for, so generation never allocates.
static sched_seq *seq_new(sched *S, registry_request *r, uint32_t c, garlic_error *err)
{
    registry_model *m = S->m;
    sched_seq *q = garlic_calloc(1, sizeof *q);
    if (!q) {
        garlic_error_set(err, GARLIC_ENOMEM, "out of memory");
        return NULL;
    }
    q->r = r, q->choice = c;
    q->params = r->engine;
    q->params.on_token = on_token;
    q->params.end_tokens = &m->end_tokens;
    if (r->seeded)
        q->params.sampling.seed += c;
    q->stats = (engine_stats){.finish = ENGINE_FINISH_CANCEL, .unevaluated = -1};
    q->cap = m->n_ctx + 1;
    q->tokens = garlic_malloc(q->cap * sizeof *q->tokens);
    kv_seq_init(&q->kv);
    q->gen = q->tokens ? engine_seq_new(m->tok, &q->params, err) : NULL;
    if (!q->tokens || !q->gen || kv_seq_reserve(m->kv, &q->kv, m->n_ctx, err) != GARLIC_OK) {
        if (!q->tokens)
            garlic_error_set(err, GARLIC_ENOMEM, "out of memory");
        seq_free(S, q);
        return NULL;
    }
    memcpy(q->tokens, r->prompt, r->n_prompt * sizeof *q->tokens);
    q->n_tokens = (uint32_t)r->n_prompt;
    engine_seq_prompt(q->gen, q->tokens, q->n_tokens);
    return q;
}

// Ends q's choice (its stats say how) and frees it. The request's statistics are counted
// and the scheduler's reference dropped with its last choice.
static void seq_end(sched *S, sched_seq *q)
{
    registry_request *r = q->r;
    bool cancelled = q->stats.finish == ENGINE_FINISH_CANCEL;
    r->cancelled_any |= cancelled;
    if (--r->n_live == 0)
        registry_stats_request(S->m->reg, r->n_prompt, r->cancelled_any);
    if (!r->failed)
        registry_request_end_choice(r, q->choice, &q->stats, q->output_tokens);
    seq_free(S, q);
    if (r->n_live == 0)
        registry_request_unref(r);
}

// ---- lists ----

static void remove_at(sched_seq **list, uint32_t *n, uint32_t i)
{
    memmove(&list[i], &list[i + 1], (*n - i - 1) * sizeof *list);
    (*n)--;
}

static int waiting_push(sched *S, sched_seq *q, bool front, garlic_error *err)
{
    if (S->n_waiting == S->waiting_cap) {
        uint32_t cap = S->waiting_cap ? S->waiting_cap * 2 : 16;
        sched_seq **w = garlic_realloc(S->waiting, cap * sizeof *w);
        if (!w)
            return garlic_error_set(err, GARLIC_ENOMEM, "out of memory");
        S->waiting = w, S->waiting_cap = cap;
    }
    if (front) {
        memmove(&S->waiting[1], &S->waiting[0], S->n_waiting * sizeof *S->waiting);
        S->waiting[0] = q;
    } else {
        S->waiting[S->n_waiting] = q;
    }
    S->n_waiting++;
    return GARLIC_OK;
}

// Fails request r: every sequence of it is dropped, its stream ends with the error.
static void fail_request(sched *S, registry_request *r, int code, const char *message)
{
    if (!r->failed)
        registry_request_fail(r, code, message);
    r->failed = true;
    for (uint32_t i = S->n_running; i-- > 0;)
        if (S->running[i]->r == r) {
            sched_seq *q = S->running[i];
            remove_at(S->running, &S->n_running, i);
            seq_end(S, q);
        }
    for (uint32_t i = S->n_waiting; i-- > 0;)
        if (S->waiting[i]->r == r) {
            sched_seq *q = S->waiting[i];
            remove_at(S->waiting, &S->n_waiting, i);
            seq_end(S, q);
        }
}

// ---- admission ----

// Starts (or resumes) q: shares the cached prefix of its known tokens and joins the running
// list. Every token but the last may come from the cache; the rest are computed.
static int admit(sched *S, sched_seq *q, garlic_error *err)
{
    uint32_t shared = 0;
    int rc = kv_seq_share_prefix(S->m->kv, &q->kv, q->tokens, q->n_tokens - 1, &shared, err);
    if (rc)
        return rc;
    q->n_computed = shared;
    if (!q->started) {
        q->started = true;
        q->order = S->next_order++;
        q->t_start = garlic_now();
    }
    // Keep admission order in the running list (preemption scans from its end).
    uint32_t i = S->n_running;
    while (i > 0 && S->running[i - 1]->order > q->order)
        i--;
    memmove(&S->running[i + 1], &S->running[i], (S->n_running - i) * sizeof *S->running);
    S->running[i] = q;
    S->n_running++;
    return GARLIC_OK;
}

// Whether q may start now: a running slot, and its blocks plus one block of headroom per
// running sequence are free or reclaimable.
static bool can_admit(sched *S, const sched_seq *q)
{
    return S->n_running < S->m->parallel &&
           kv_cache_can_admit_prompt(S->m->kv, q->tokens, q->n_tokens - 1, q->n_tokens,
                                     S->n_running);
}

// Moves the request at the head of the queue into the waiting list, one sequence per
// choice. Returns false when the queue is empty.
static bool take_queued(sched *S)
{
    registry_model *m = S->m;
    pthread_mutex_lock(&m->mu);
    if (m->count == 0) {
        pthread_mutex_unlock(&m->mu);
        return false;
    }
    registry_request *r = m->queue[m->head];
    m->head = (m->head + 1) % m->queue_cap;
    m->count--;
    m->busy = true;
    pthread_mutex_unlock(&m->mu);

    garlic_error err = {0};
    r->n_live = r->n_choices;
    for (uint32_t c = 0; c < r->n_choices; c++) {
        sched_seq *q = seq_new(S, r, c, &err);
        if (q && waiting_push(S, q, false, &err) != GARLIC_OK) {
            seq_free(S, q);
            q = NULL;
        }
        if (!q) {
            r->n_live = c; // the choices created so far end through fail_request
            registry_request_fail(r, err.code, err.message);
            r->failed = true;
            if (c == 0) {
                registry_stats_request(m->reg, r->n_prompt, false);
                registry_request_unref(r);
            } else {
                fail_request(S, r, err.code, err.message);
            }
            return true;
        }
    }
    return true;
}

// Admits waiting sequences in order, then queued requests, while they fit. A cancelled
// waiting sequence ends here without computing anything.
static void admit_waiting(sched *S)
{
    for (;;) {
        // A request leaves the queue only when a running slot is free, so that the queue
        // (and its limit) holds everything not yet started.
        if (S->n_waiting == 0 && (S->n_running >= S->m->parallel || !take_queued(S)))
            return;
        if (S->n_waiting == 0)
            continue;
        sched_seq *q = S->waiting[0];
        if (atomic_load(&q->r->cancel)) {
            remove_at(S->waiting, &S->n_waiting, 0);
            seq_end(S, q);
            continue;
        }
        if (!can_admit(S, q))
            return;
        remove_at(S->waiting, &S->n_waiting, 0);
        garlic_error err = {0};
        if (admit(S, q, &err) != GARLIC_OK) {
            waiting_push(S, q, true, &err); // the list had room for it a moment ago
            fail_request(S, q->r, err.code, err.message);
            return;
        }
    }
}

// ---- one step ----

// Takes running sequence i out of the batch and back to the front of the waiting list; its
// blocks are released (published ones stay cached for its return).
static void preempt(sched *S, uint32_t i)
{
    sched_seq *q = S->running[i];
    remove_at(S->running, &S->n_running, i);
    kv_seq_release(S->m->kv, &q->kv);
    q->n_computed = 0;
    q->chunk = 0;
    S->preemptions++;
    garlic_error err = {0};
    if (waiting_push(S, q, true, &err) != GARLIC_OK) {
        // No memory to remember it: the request fails rather than hang.
        q->r->failed = true;
        registry_request_fail(q->r, err.code, "out of memory while preempting the request");
        seq_end(S, q);
    }
}

// Ends cancelled running sequences (all of them after registry_worker_cancel_all).
static void drop_cancelled(sched *S)
{
    if (atomic_load(&S->m->cancel_all)) {
        for (uint32_t i = 0; i < S->n_running; i++)
            registry_request_cancel(S->running[i]->r);
        for (uint32_t i = 0; i < S->n_waiting; i++)
            registry_request_cancel(S->waiting[i]->r);
    }
    for (uint32_t i = S->n_running; i-- > 0;) {
        sched_seq *q = S->running[i];
        if (!atomic_load(&q->r->cancel))
            continue;
        remove_at(S->running, &S->n_running, i);
        q->stats.finish = ENGINE_FINISH_CANCEL;
        seq_end(S, q);
    }
}

// Chooses each running sequence's chunk: one token for those decoding, then prompt chunks
// in admission order while the step's budget lasts. Then makes sure the pool can hold the
// chunks, preempting the newest sequences while it cannot. Returns the batch's token count.
static uint32_t plan_step(sched *S)
{
    kv_cache *kv = S->m->kv;
    for (;;) {
        uint32_t budget = S->max_batch, need = 0;
        for (uint32_t i = 0; i < S->n_running; i++) {
            sched_seq *q = S->running[i];
            q->chunk = q->n_tokens - q->n_computed == 1 ? 1 : 0;
            budget -= q->chunk;
        }
        for (uint32_t i = 0; i < S->n_running; i++) {
            sched_seq *q = S->running[i];
            uint32_t left = q->n_tokens - q->n_computed;
            if (q->chunk == 0 && budget > 0) {
                q->chunk = left < budget ? left : budget;
                budget -= q->chunk;
            }
            need += kv_seq_blocks_needed(kv, &q->kv, q->chunk);
        }
        kv_cache_stats st = kv_cache_get_stats(kv);
        if (need <= st.n_free + st.n_cached || S->n_running <= 1)
            return S->max_batch - budget;
        preempt(S, S->n_running - 1);
    }
}

// Appends every chunk's tokens to its block table and fills the batch arrays. A failure
// (which plan_step's accounting rules out) fails the sequence's request.
static uint32_t build_batch(sched *S, uint32_t *n_seqs, uint32_t *n_out)
{
    kv_cache *kv = S->m->kv;
    uint32_t n = 0;
    *n_seqs = 0, *n_out = 0;
    for (uint32_t i = 0; i < S->n_running; i++) {
        sched_seq *q = S->running[i];
        if (q->chunk == 0)
            continue;
        garlic_error err = {0};
        if (kv_seq_append(kv, &q->kv, q->tokens + q->n_computed, q->chunk, &err) != GARLIC_OK) {
            q->chunk = 0;
            continue; // retried next step (the pool had no block after all)
        }
        uint32_t s = (*n_seqs)++;
        S->b_seqs[s] = &q->kv;
        S->b_owner[s] = q;
        S->b_row[s] = UINT32_MAX;
        for (uint32_t j = 0; j < q->chunk; j++, n++) {
            S->b_tokens[n] = q->tokens[q->n_computed + j];
            S->b_pos[n] = q->n_computed + j;
            S->b_seq[n] = s;
        }
        if (q->n_computed + q->chunk == q->n_tokens) {
            S->b_row[s] = *n_out;
            S->b_out[(*n_out)++] = n - 1;
        }
    }
    S->n_b_seqs = *n_seqs;
    return n;
}

// Samples the sequences whose chunk reached their last known token. Those that end leave
// the running list.
static void sample_step(sched *S, const float *logits, uint32_t n_seqs)
{
    registry_model *m = S->m;
    uint32_t V = m->weights->hp.n_vocab;
    for (uint32_t s = 0; s < n_seqs; s++) {
        sched_seq *q = S->b_owner[s];
        if (!q)
            continue; // ended with its request earlier in this loop
        q->n_computed += q->chunk;
        garlic_error err = {0};
        if (kv_seq_commit(m->kv, &q->kv, q->n_computed, &err) != GARLIC_OK) {
            fail_request(S, q->r, err.code, err.message);
            continue;
        }
        if (q->n_computed < q->n_tokens)
            continue; // more prompt to go
        if (q->stats.n_prompt == 0) {
            q->stats.n_prompt = (uint32_t)q->r->n_prompt;
            q->stats.prompt_seconds = garlic_now() - q->t_start;
        }
        q->stats.unevaluated = -1;
        int32_t next;
        bool full = q->n_tokens >= m->n_ctx;
        int rc = engine_seq_step(q->gen, logits + (size_t)S->b_row[s] * V, full, on_text, q, &next,
                                 &q->stats, &err);
        if (rc != GARLIC_OK) {
            fail_request(S, q->r, rc, err.message[0] ? err.message : garlic_error_name(rc));
            continue;
        }
        if (next >= 0) {
            q->tokens[q->n_tokens++] = next;
            continue;
        }
        q->stats.generate_seconds = garlic_now() - q->t_start - q->stats.prompt_seconds;
        for (uint32_t i = 0; i < S->n_running; i++)
            if (S->running[i] == q) {
                remove_at(S->running, &S->n_running, i);
                break;
            }
        seq_end(S, q);
    }
}

// Publishes the scheduler's counts for /metrics and /api/ps.
static void publish(sched *S)
{
    registry_model *m = S->m;
    kv_cache_stats st = kv_cache_get_stats(m->kv);
    pthread_mutex_lock(&m->mu);
    m->snap.running = S->n_running;
    if (S->n_running > m->snap.peak_running)
        m->snap.peak_running = S->n_running;
    m->snap.waiting = S->n_waiting;
    m->snap.kv_used = st.n_used;
    m->snap.kv_cached = st.n_cached;
    m->snap.kv_free = st.n_free;
    m->snap.prefix_hits = st.prefix_hits;
    m->snap.prefix_misses = st.prefix_misses;
    m->snap.evictions = st.evictions;
    m->snap.preemptions = S->preemptions;
    m->n_seq_info = 0;
    for (uint32_t i = 0; i < S->n_running && m->seq_info; i++) {
        const sched_seq *q = S->running[i];
        registry_seq_info *o = &m->seq_info[m->n_seq_info++];
        memcpy(o->label, q->r->label, sizeof o->label);
        o->choice = q->choice;
        o->tokens = q->n_tokens;
        o->kv_blocks = q->kv.n_blocks;
    }
    m->busy = S->n_running || S->n_waiting || m->count;
    pthread_mutex_unlock(&m->mu);
}

// One step: returns false when there was nothing to do.
static bool step(sched *S)
{
    drop_cancelled(S);
    admit_waiting(S);
    if (S->n_running == 0 && S->n_waiting > 0) {
        // Nothing runs, so every block is free or reclaimable: the head cannot ever fit.
        // (registry_submit and the pool's size rule this out; never wait on it forever.)
        sched_seq *q = S->waiting[0];
        fail_request(S, q->r, GARLIC_ENOMEM, "the request needs more KV blocks than the pool has");
        return true;
    }
    if (S->n_running == 0)
        return false;
    uint32_t n_tok = plan_step(S);
    uint32_t n_seqs, n_out;
    n_tok = n_tok ? build_batch(S, &n_seqs, &n_out) : 0;
    if (n_tok == 0)
        return true;
    model_batch b = {.n_tokens = n_tok, .tokens = S->b_tokens, .pos = S->b_pos, .seq = S->b_seq,
                     .seqs = S->b_seqs, .n_seqs = n_seqs, .out = S->b_out, .n_out = n_out};
    const float *logits = NULL;
    garlic_error err = {0};
    registry_compute_begin(S->m); // the pool is shared with the other models, in fair turns
    int rc = model_forward_batch(S->m->state, S->m->kv, &b, &logits, &err);
    registry_compute_end(S->m);
    if (rc != GARLIC_OK) {
        // A batch the scheduler built is always valid; if not, fail its requests rather
        // than loop on it.
        for (uint32_t s = 0; s < n_seqs; s++)
            if (S->b_owner[s])
                fail_request(S, S->b_owner[s]->r, err.code, err.message);
        S->n_b_seqs = 0;
        return true;
    }
    sample_step(S, logits, n_seqs);
    S->n_b_seqs = 0;
    return true;
}

// Ends everything the scheduler holds (shutdown).
static void end_all(sched *S)
{
    while (S->n_running) {
        sched_seq *q = S->running[--S->n_running];
        seq_end(S, q);
    }
    while (S->n_waiting) {
        sched_seq *q = S->waiting[--S->n_waiting];
        seq_end(S, q);
    }
}

static void *scheduler_main(void *arg)
{
    sched *S = arg;
    registry_model *m = S->m;
    for (;;) {
        bool worked = step(S);
        publish(S);
        if (worked)
            continue;
        registry_compute_idle(m); // nothing to run: other models need not wait for this one
        pthread_mutex_lock(&m->mu);
        while (m->count == 0 && !m->stop && S->n_waiting == 0)
            pthread_cond_wait(&m->cv, &m->mu);
        bool stop = m->stop && m->count == 0;
        pthread_mutex_unlock(&m->mu);
        if (stop && S->n_waiting == 0 && S->n_running == 0)
            break;
    }
    end_all(S);
    publish(S);
    registry_compute_idle(m);
    return NULL;
}

static void sched_free(sched *S)
{
    if (!S)
        return;
    end_all(S);
    garlic_free(S->running);
    garlic_free(S->waiting);
    garlic_free(S->b_tokens);
    garlic_free(S->b_pos);
    garlic_free(S->b_seq);
    garlic_free(S->b_out);
    garlic_free(S->b_seqs);
    garlic_free(S->b_owner);
    garlic_free(S->b_row);
    garlic_free(S);
}

// Allocates the queue and the scheduler's arrays and starts the thread (called once, under
// load_mu, after the pool and the run state exist).
int registry_worker_start(registry_model *m, garlic_error *err)
{
    m->queue_cap = m->reg->cfg.max_queue ? m->reg->cfg.max_queue : 64;
    m->queue = garlic_calloc(m->queue_cap, sizeof *m->queue);
    m->head = m->count = 0;
    m->stop = m->busy = false; // a model loaded again after an unload starts afresh
    atomic_store(&m->cancel_all, false);
    sched *S = garlic_calloc(1, sizeof *S);
    if (!m->queue || !S) {
        garlic_free(S);
        return garlic_error_set(err, GARLIC_ENOMEM, "out of memory");
    }
    m->sched = S;
    S->m = m;
    S->max_batch = model_state_max_batch(m->state);
    S->running = garlic_calloc(m->parallel, sizeof *S->running);
    S->b_tokens = garlic_calloc(S->max_batch, sizeof *S->b_tokens);
    S->b_pos = garlic_calloc(S->max_batch, sizeof *S->b_pos);
    S->b_seq = garlic_calloc(S->max_batch, sizeof *S->b_seq);
    S->b_out = garlic_calloc(m->parallel, sizeof *S->b_out);
    S->b_seqs = garlic_calloc(m->parallel, sizeof *S->b_seqs);
    S->b_owner = garlic_calloc(m->parallel, sizeof *S->b_owner);
    S->b_row = garlic_calloc(m->parallel, sizeof *S->b_row);
    registry_seq_info *info = garlic_calloc(m->parallel, sizeof *info);
    pthread_mutex_lock(&m->mu);
    garlic_free(m->seq_info);
    m->seq_info = info;
    m->n_seq_info = 0;
    pthread_mutex_unlock(&m->mu);
    if (!S->running || !S->b_tokens || !S->b_pos || !S->b_seq || !S->b_out || !S->b_seqs ||
        !S->b_owner || !S->b_row || !m->seq_info)
        return garlic_error_set(err, GARLIC_ENOMEM, "out of memory");
    kv_cache_stats st = kv_cache_get_stats(m->kv);
    m->snap = (registry_model_stats){.parallel = m->parallel,
                                     .block_tokens = kv_cache_get_config(m->kv)->block_tokens,
                                     .kv_blocks = st.n_blocks, .kv_free = st.n_free,
                                     .kv_bytes = kv_cache_bytes(m->kv)};
    if (pthread_create(&m->thread, NULL, scheduler_main, S) != 0)
        return garlic_error_set(err, GARLIC_ENOMEM, "%s: cannot start its scheduler thread",
                                m->name);
    m->thread_started = true;
    return GARLIC_OK;
}

// Cancels everything queued or running on m; the scheduler ends them at its next step.
// Running and waiting sequences are the scheduler's: their requests are reached through the
// cancel flags, which the HTTP side set or the drain sets here through the queue and the
// list the scheduler publishes.
void registry_worker_cancel_all(registry_model *m)
{
    pthread_mutex_lock(&m->mu);
    for (uint32_t i = 0; i < m->count; i++)
        registry_request_cancel(m->queue[(m->head + i) % m->queue_cap]);
    atomic_store(&m->cancel_all, true);
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
}

bool registry_worker_idle(registry_model *m)
{
    pthread_mutex_lock(&m->mu);
    bool idle = m->count == 0 && !m->busy;
    pthread_mutex_unlock(&m->mu);
    return idle;
}

// Cancels everything, lets the scheduler end it and joins the thread.
void registry_worker_stop(registry_model *m)
{
    if (m->thread_started) {
        registry_worker_cancel_all(m);
        pthread_mutex_lock(&m->mu);
        m->stop = true;
        pthread_cond_broadcast(&m->cv);
        pthread_mutex_unlock(&m->mu);
        pthread_join(m->thread, NULL);
        m->thread_started = false;
    }
    sched_free(m->sched);
    m->sched = NULL;
    // The counters outlive the pool (they are totals since start); the gauges go to zero.
    pthread_mutex_lock(&m->mu);
    m->retired.prefix_hits += m->snap.prefix_hits;
    m->retired.prefix_misses += m->snap.prefix_misses;
    m->retired.evictions += m->snap.evictions;
    m->retired.preemptions += m->snap.preemptions;
    uint32_t peak = m->snap.peak_running > m->retired.peak_running ? m->snap.peak_running
                                                                   : m->retired.peak_running;
    m->snap = (registry_model_stats){0};
    m->retired.peak_running = peak;
    m->n_seq_info = 0;
    pthread_mutex_unlock(&m->mu);
}

int registry_submit(registry_model *m, registry_request *r, garlic_error *err)
{
    if (atomic_load(&m->reg->stopped))
        return garlic_error_set(err, GARLIC_ESTOPPED, "the server is shutting down");
    if (!atomic_load_explicit(&m->loaded, memory_order_acquire))
        return garlic_error_set(err, GARLIC_EINVAL, "%s: not loaded", m->name);
    if (r->n_prompt >= m->n_ctx)
        return garlic_error_set(err, GARLIC_EINVAL, "%s: the prompt has %zu tokens; the context "
                                "holds %u, with room for at least one generated token",
                                m->name, r->n_prompt, m->n_ctx);
    r->reg = m->reg;
    r->t_submit = garlic_now();
    pthread_mutex_lock(&m->mu);
    if (m->count == m->queue_cap) {
        pthread_mutex_unlock(&m->mu);
        return garlic_error_set(err, GARLIC_EFULL, "%s: %u requests are waiting already; "
                                "try again later", m->name, m->queue_cap);
    }
    atomic_fetch_add(&r->refs, 1);
    m->queue[(m->head + m->count) % m->queue_cap] = r;
    m->count++;
    m->busy = true;
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
    return GARLIC_OK;
}

uint32_t registry_model_queue_length(registry_model *m)
{
    pthread_mutex_lock(&m->mu);
    uint32_t n = m->count;
    pthread_mutex_unlock(&m->mu);
    return n;
}

void registry_model_stats_get(registry_model *m, registry_model_stats *out)
{
    pthread_mutex_lock(&m->mu);
    *out = m->snap;
    out->waiting += m->count;
    out->prefix_hits += m->retired.prefix_hits;
    out->prefix_misses += m->retired.prefix_misses;
    out->evictions += m->retired.evictions;
    out->preemptions += m->retired.preemptions;
    if (m->retired.peak_running > out->peak_running)
        out->peak_running = m->retired.peak_running;
    pthread_mutex_unlock(&m->mu);
}

size_t registry_model_sequences(registry_model *m, registry_seq_info *out, size_t cap)
{
    pthread_mutex_lock(&m->mu);
    size_t n = m->n_seq_info < cap ? m->n_seq_info : cap;
    if (n)
        memcpy(out, m->seq_info, n * sizeof *out);
    pthread_mutex_unlock(&m->mu);
    return n;
}
