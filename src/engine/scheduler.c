// SPDX-License-Identifier: MIT
// An engine's scheduler: one thread that owns the engine's KV block pool and run state and
// serves every request at once (continuous batching). Each step:
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
// An embed request is one sequence that only prefills: its chunks' hidden states are pooled
// as they are computed and, after its last token, its normalized vector ends it. It shares
// no cached prefix (every token must be pooled), and where attention is not causal (an
// encoder) its whole input is one chunk and its blocks are never published.
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/buffer.h"
#include "base/clock.h"
#include "engine/internal.h"

// One choice of a request: its tokens so far, its block table and its generation state.
typedef struct sched_seq {
    engine *e;
    engine_request *r;
    uint32_t choice;
    engine_params params; // the request's, with this choice's seed
    engine_seq *gen;
    engine_stats stats;
    kv_seq kv;
    int32_t *tokens; // (cap) prompt then generated tokens
    uint32_t n_tokens, cap;
    uint32_t n_computed; // positions whose K and V are in the pool
    uint32_t chunk;      // tokens of this step's batch
    uint64_t order;      // admission order: preemption takes the newest first
    double t_start;      // when its prompt started computing
    double t_last;       // when its previous token came out (0 before the first)
    uint32_t output_tokens;
    bool started;  // admitted at least once (engine state and order exist)
    float *pooled; // (dim) an embed request's pooled hidden states so far, else NULL
} sched_seq;

typedef struct sched {
    engine *e;
    sched_seq **running; // (parallel) in admission order
    uint32_t n_running;
    sched_seq **waiting; // (waiting_cap) FIFO; preempted sequences go to the front
    uint32_t n_waiting;
    size_t waiting_cap;
    uint64_t next_order;
    uint64_t preemptions;
    uint32_t max_batch;
    // The batch (max_batch tokens, parallel sequences).
    int32_t *b_tokens;
    uint32_t *b_pos, *b_seq, *b_out;
    const kv_seq **b_seqs;
    sched_seq **b_owner; // (parallel) the sequence of each b_seqs entry (NULL once ended)
    uint32_t *b_row;     // (parallel) its logits row, or UINT32_MAX
    uint32_t *b_first;   // (parallel) its first token in the batch
    uint32_t n_b_seqs;
    bool b_hidden; // an embed sequence is in the batch: keep the hidden states
} sched;

// Calls an optional hook of e's.
static void hook(void (*fn)(void *user), const engine *e)
{
    if (fn)
        fn(e->cfg.hooks.user);
}

// Counts a request's end with the hooks (for the statistics).
static void stats_request(const engine *e, uint64_t prompt, bool cancelled)
{
    if (e->cfg.hooks.request_done)
        e->cfg.hooks.request_done(e->cfg.hooks.user, prompt, cancelled);
}

// ---- sequences ----

// emit: a choice's text goes to its channel; a cancelled request stops.
static int on_text(void *user, const char *text, size_t len)
{
    sched_seq *q = user;
    if (engine_request_append_text(q->r, q->choice, text, len) != GARLIC_OK)
        atomic_store(&q->r->cancel, true);
    return atomic_load(&q->r->cancel) ? 1 : 0;
}

// on_token: timing for the statistics and the token for logprobs.
static int on_token(void *user, int32_t token, const sampler_logprobs *lp)
{
    sched_seq *q = user;
    double now = garlic_now();
    bool first = q->t_last == 0;
    if (first)
        engine_request_first_token(q->r, q->choice, now - q->r->t_submit);
    const engine_hooks *h = &q->e->cfg.hooks;
    if (h->token)
        h->token(h->user, now - (first ? q->r->t_submit : q->t_last), first);
    q->t_last = now;
    q->output_tokens++;
    if (lp && engine_request_append_token(q->r, q->choice, token, lp) != GARLIC_OK)
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
    kv_seq_deinit(S->e->kv, &q->kv);
    engine_seq_free(q->gen);
    garlic_free(q->pooled);
    garlic_free(q->tokens);
    garlic_free(q);
}

// A sequence for choice c of r, not yet admitted. Its token array holds the prompt plus
// every token the context leaves room for, so generation never allocates.
static sched_seq *seq_new(sched *S, engine_request *r, uint32_t c, garlic_error *err)
{
    engine *e = S->e;
    sched_seq *q = garlic_calloc(1, sizeof *q);
    if (!q) {
        garlic_error_set(err, GARLIC_ENOMEM, "out of memory");
        return NULL;
    }
    q->e = e, q->r = r, q->choice = c;
    q->params = r->generation;
    if (r->seeded)
        q->params.sampling.seed += c;
    q->stats = (engine_stats){.finish = ENGINE_FINISH_CANCEL};
    q->cap = e->cfg.n_ctx + 1;
    q->tokens = garlic_malloc(q->cap * sizeof *q->tokens);
    kv_seq_init(&q->kv);
    bool constrained = q->params.grammar != NULL && !r->embed;
    if (q->tokens && constrained &&
        engine_grammar_prepare(&e->grammar, e->cfg.tok, &e->end_tokens, err) != GARLIC_OK) {
        seq_free(S, q);
        return NULL;
    }
    // An embedding needs no sampler, only its pooled vector.
    if (r->embed && q->tokens)
        q->pooled = garlic_calloc(e->cfg.weights->hp.dim, sizeof *q->pooled);
    else if (q->tokens)
        q->gen = engine_seq_new(e->cfg.tok, &q->params, &e->end_tokens, &e->grammar, err);
    if (!q->tokens || !(q->gen || q->pooled) ||
        kv_seq_reserve(e->kv, &q->kv, e->cfg.n_ctx, err) != GARLIC_OK) {
        if (!q->tokens || (r->embed && !q->pooled))
            garlic_error_set(err, GARLIC_ENOMEM, "out of memory");
        seq_free(S, q);
        return NULL;
    }
    memcpy(q->tokens, r->prompt, r->n_prompt * sizeof *q->tokens);
    q->n_tokens = (uint32_t)r->n_prompt;
    if (q->gen)
        engine_seq_prompt(q->gen, q->tokens, q->n_tokens);
    return q;
}

// Ends q's choice (its stats say how) and frees it. The request's statistics are counted
// and the scheduler's reference dropped with its last choice.
static void seq_end(sched *S, sched_seq *q)
{
    engine_request *r = q->r;
    bool cancelled = q->stats.finish == ENGINE_FINISH_CANCEL;
    r->cancelled_any |= cancelled;
    if (--r->n_live == 0)
        stats_request(S->e, r->n_prompt, r->cancelled_any);
    if (!r->failed)
        engine_request_end_choice(r, q->choice, &q->stats, q->output_tokens);
    seq_free(S, q);
    if (r->n_live == 0)
        engine_request_unref(r);
}

// ---- lists ----

static void remove_at(sched_seq **list, uint32_t *n, uint32_t i)
{
    memmove(&list[i], &list[i + 1], (*n - i - 1) * sizeof *list);
    (*n)--;
}

static int waiting_push(sched *S, sched_seq *q, bool front, garlic_error *err)
{
    if (garlic_grow(&S->waiting, &S->waiting_cap, S->n_waiting + 1, sizeof *S->waiting))
        return garlic_error_set(err, GARLIC_ENOMEM, "out of memory");
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
static void fail_request(sched *S, engine_request *r, int code, const char *message)
{
    if (!r->failed)
        engine_request_fail(r, code, message);
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

// Fails everything the scheduler holds or the queue has with the engine's failure (its
// model's files changed). Returns false when there was nothing to fail.
static bool fail_all(sched *S, const char *message)
{
    engine *e = S->e;
    bool any = S->n_running || S->n_waiting;
    while (S->n_running) // fail_request takes every sequence of the request out
        fail_request(S, S->running[S->n_running - 1]->r, GARLIC_EIO, message);
    while (S->n_waiting)
        fail_request(S, S->waiting[S->n_waiting - 1]->r, GARLIC_EIO, message);
    for (;;) {
        pthread_mutex_lock(&e->mu);
        engine_request *r = NULL;
        if (e->count) {
            r = e->queue[e->head];
            e->head = (e->head + 1) % e->queue_cap;
            e->count--;
        }
        pthread_mutex_unlock(&e->mu);
        if (!r)
            return any;
        any = true;
        engine_request_fail(r, GARLIC_EIO, message);
        stats_request(e, r->n_prompt, false);
        engine_request_unref(r);
    }
}

// ---- admission ----

// Starts (or resumes) q: shares the cached prefix of its known tokens and joins the running
// list. Every token but the last may come from the cache; the rest are computed.
static int admit(sched *S, sched_seq *q, garlic_error *err)
{
    uint32_t shared = 0;
    int rc = q->pooled
        ? GARLIC_OK // an embedding pools every token: nothing is shared
        : kv_seq_share_prefix(S->e->kv, &q->kv, q->tokens, q->n_tokens - 1, &shared, err);
    if (rc)
        return rc;
    q->n_computed = shared;
    if (!q->started) {
        q->started = true;
        q->stats.n_cached = shared;
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

// Whether q may start now: a running slot, and its blocks (its window blocks at their peak
// for steps of max_batch tokens) plus one block of headroom per running sequence are free or
// reclaimable.
static bool can_admit(sched *S, const sched_seq *q)
{
    return S->n_running < S->e->cfg.parallel &&
        kv_cache_can_admit_prompt(S->e->kv, q->tokens, q->n_tokens - 1, q->n_tokens, S->max_batch,
                                  S->n_running);
}

// Moves the request at the head of the queue into the waiting list, one sequence per
// choice. Returns false when the queue is empty.
static bool take_queued(sched *S)
{
    engine *e = S->e;
    pthread_mutex_lock(&e->mu);
    if (e->count == 0) {
        pthread_mutex_unlock(&e->mu);
        return false;
    }
    engine_request *r = e->queue[e->head];
    e->head = (e->head + 1) % e->queue_cap;
    e->count--;
    e->busy = true;
    pthread_mutex_unlock(&e->mu);

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
            engine_request_fail(r, err.code, err.message);
            r->failed = true;
            if (c == 0) {
                stats_request(e, r->n_prompt, false);
                engine_request_unref(r);
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
        if (S->n_waiting == 0 && (S->n_running >= S->e->cfg.parallel || !take_queued(S)))
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
    kv_seq_release(S->e->kv, &q->kv);
    q->n_computed = 0;
    q->chunk = 0;
    if (q->pooled) // pooled again from its first token when it returns
        memset(q->pooled, 0, S->e->cfg.weights->hp.dim * sizeof *q->pooled);
    S->preemptions++;
    garlic_error err = {0};
    if (waiting_push(S, q, true, &err) != GARLIC_OK) {
        // No memory to remember it: the request fails rather than hang.
        q->r->failed = true;
        engine_request_fail(q->r, err.code, "out of memory while preempting the request");
        seq_end(S, q);
    }
}

// Ends cancelled running sequences (all of them after engine_cancel_all).
static void drop_cancelled(sched *S)
{
    if (atomic_load(&S->e->cancel_all)) {
        for (uint32_t i = 0; i < S->n_running; i++)
            engine_request_cancel(S->running[i]->r);
        for (uint32_t i = 0; i < S->n_waiting; i++)
            engine_request_cancel(S->waiting[i]->r);
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
// chunks (blocks of each kind), preempting the newest sequences while it cannot. Returns the
// batch's token count.
static uint32_t plan_step(sched *S)
{
    kv_cache *kv = S->e->kv;
    bool causal = S->e->cfg.weights->hp.causal; // else an input is one chunk or waits
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
            if (q->chunk == 0 && budget > 0 && (causal || left <= budget)) {
                q->chunk = left < budget ? left : budget;
                budget -= q->chunk;
            }
            need += kv_seq_blocks_needed(kv, &q->kv, q->chunk);
        }
        if (kv_cache_has_blocks(kv, need) || S->n_running <= 1)
            return S->max_batch - budget;
        preempt(S, S->n_running - 1);
    }
}

// Appends every chunk's tokens to its block table and fills the batch arrays. A failure
// (which plan_step's accounting rules out) fails the sequence's request.
static uint32_t build_batch(sched *S, uint32_t *n_seqs, uint32_t *n_out)
{
    kv_cache *kv = S->e->kv;
    uint32_t n = 0;
    *n_seqs = 0, *n_out = 0;
    S->b_hidden = false;
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
        S->b_first[s] = n;
        S->b_hidden |= q->pooled != NULL;
        for (uint32_t j = 0; j < q->chunk; j++, n++) {
            S->b_tokens[n] = q->tokens[q->n_computed + j];
            S->b_pos[n] = q->n_computed + j;
            S->b_seq[n] = s;
        }
        if (q->n_computed + q->chunk == q->n_tokens && !q->pooled) {
            S->b_row[s] = *n_out;
            S->b_out[(*n_out)++] = n - 1;
        }
    }
    S->n_b_seqs = *n_seqs;
    return n;
}

// Takes q out of the running list and ends it.
static void finish_running(sched *S, sched_seq *q)
{
    for (uint32_t i = 0; i < S->n_running; i++)
        if (S->running[i] == q) {
            remove_at(S->running, &S->n_running, i);
            break;
        }
    seq_end(S, q);
}

// An embed sequence's step: pools the hidden states of its chunk (rows from first in the
// batch); after its last token, the normalized vector goes to its channel and it ends.
static void embed_step(sched *S, sched_seq *q, const float *hidden, uint32_t first)
{
    const model_hparams *hp = &S->e->cfg.weights->hp;
    model_pool_rows(hp->pooling, hidden + (size_t)first * hp->dim, hp->dim, q->chunk,
                    q->n_computed - q->chunk, q->n_tokens, hp->dim, q->pooled);
    if (q->n_computed < q->n_tokens)
        return;
    model_pool_finish(hp->pooling, q->pooled, q->n_tokens, hp->dim);
    model_embed_normalize(q->pooled, hp->dim);
    q->stats.n_prompt = q->n_tokens;
    q->stats.prompt_seconds = garlic_now() - q->t_start;
    q->stats.finish = ENGINE_FINISH_STOP;
    if (engine_request_set_embedding(q->r, q->choice, q->pooled, hp->dim) != GARLIC_OK) {
        fail_request(S, q->r, GARLIC_ENOMEM, "out of memory");
        return;
    }
    finish_running(S, q);
}

// Samples the sequences whose chunk reached their last known token (embed sequences pool
// their chunk instead). Those that end leave the running list.
static void sample_step(sched *S, const float *logits, const float *hidden, uint32_t n_seqs)
{
    engine *e = S->e;
    uint32_t V = e->cfg.weights->hp.n_vocab;
    // Blocks written with attention that is not causal depend on the whole input: they are
    // never published for another sequence to share.
    bool publish_blocks = e->cfg.weights->hp.causal;
    for (uint32_t s = 0; s < n_seqs; s++) {
        sched_seq *q = S->b_owner[s];
        if (!q)
            continue; // ended with its request earlier in this loop
        q->n_computed += q->chunk;
        garlic_error err = {0};
        if (publish_blocks && kv_seq_commit(e->kv, &q->kv, q->n_computed, &err) != GARLIC_OK) {
            fail_request(S, q->r, err.code, err.message);
            continue;
        }
        if (q->pooled) {
            embed_step(S, q, hidden, S->b_first[s]);
            continue;
        }
        if (q->n_computed < q->n_tokens)
            continue; // more prompt to go
        if (q->stats.n_prompt == 0) {
            q->stats.n_prompt = (uint32_t)q->r->n_prompt;
            q->stats.prompt_seconds = garlic_now() - q->t_start;
        }
        int32_t next;
        uint32_t left = q->n_tokens < e->cfg.n_ctx ? e->cfg.n_ctx - q->n_tokens : 0;
        int rc = engine_seq_step(q->gen, logits + (size_t)S->b_row[s] * V, left, on_text, on_token,
                                 q, &next, &q->stats, &err);
        if (rc != GARLIC_OK) {
            fail_request(S, q->r, rc, err.message[0] ? err.message : garlic_error_name(rc));
            continue;
        }
        if (next >= 0) {
            q->tokens[q->n_tokens++] = next;
            continue;
        }
        q->stats.generate_seconds = garlic_now() - q->t_start - q->stats.prompt_seconds;
        finish_running(S, q);
    }
}

// Publishes the scheduler's counts for /metrics and /api/ps.
static void publish(sched *S)
{
    engine *e = S->e;
    kv_cache_stats st = kv_cache_get_stats(e->kv);
    pthread_mutex_lock(&e->mu);
    e->snap.running = S->n_running;
    if (S->n_running > e->snap.peak_running)
        e->snap.peak_running = S->n_running;
    e->snap.waiting = S->n_waiting;
    e->snap.kv_used = st.n_used;
    e->snap.kv_cached = st.n_cached;
    e->snap.kv_free = st.n_free;
    e->snap.kv_window_used = st.n_window_used;
    e->snap.kv_window_cached = st.n_window_cached;
    e->snap.kv_window_free = st.n_window_free;
    e->snap.kv_used_bytes = st.used_bytes;
    e->snap.prefix_hits = st.prefix_hits;
    e->snap.prefix_misses = st.prefix_misses;
    e->snap.evictions = st.evictions;
    e->snap.preemptions = S->preemptions;
    e->n_seq_info = 0;
    for (uint32_t i = 0; i < S->n_running && e->seq_info; i++) {
        const sched_seq *q = S->running[i];
        engine_seq_info *o = &e->seq_info[e->n_seq_info++];
        memcpy(o->label, q->r->label, sizeof o->label);
        o->choice = q->choice;
        o->tokens = q->n_tokens;
        o->kv_blocks = q->kv.n_blocks;
    }
    e->busy = S->n_running || S->n_waiting || e->count;
    pthread_mutex_unlock(&e->mu);
}

// One step: returns false when there was nothing to do.
static bool step(sched *S)
{
    if (atomic_load(&S->e->failed)) { // its files changed: nothing runs any more
        char message[sizeof S->e->failure];
        engine_failure(S->e, message, sizeof message);
        fail_all(S, message);
        return false;
    }
    drop_cancelled(S);
    admit_waiting(S);
    if (S->n_running == 0 && S->n_waiting > 0) {
        // Nothing runs, so every block is free or reclaimable: the head cannot ever fit.
        // (engine_submit and the pool's size rule this out; never wait on it forever.)
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
    model_batch b = {.n_tokens = n_tok,
                     .tokens = S->b_tokens,
                     .pos = S->b_pos,
                     .seq = S->b_seq,
                     .seqs = S->b_seqs,
                     .n_seqs = n_seqs,
                     .out = S->b_out,
                     .n_out = n_out,
                     .hidden = S->b_hidden};
    const float *logits = NULL;
    garlic_error err = {0};
    hook(S->e->cfg.hooks.compute_begin, S->e); // a shared pool is taken in turns
    int rc = S->e->cfg.tp_role == ENGINE_TP_LEADER
        ? engine_tp_forward(S->e, &b, &logits, &err)
        : model_forward_batch(S->e->state, S->e->kv, &b, &logits, &err);
    hook(S->e->cfg.hooks.compute_end, S->e);
    // A file that changed under the pass gave it zeros or other bytes: nothing it computed
    // is sampled, and everything fails (the next step).
    if (rc == GARLIC_OK && engine_check_files(S->e, &err) != GARLIC_OK) {
        S->n_b_seqs = 0;
        return true;
    }
    if (rc != GARLIC_OK) {
        // A batch the scheduler built is always valid; if not, fail its requests rather
        // than loop on it.
        for (uint32_t s = 0; s < n_seqs; s++)
            if (S->b_owner[s])
                fail_request(S, S->b_owner[s]->r, err.code, err.message);
        S->n_b_seqs = 0;
        return true;
    }
    sample_step(S, logits, model_state_hidden(S->e->state), n_seqs);
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
    engine *e = S->e;
    for (;;) {
        bool worked = step(S);
        publish(S);
        if (worked)
            continue;
        hook(e->cfg.hooks.compute_idle, e); // nothing to run: nobody need wait for this engine
        pthread_mutex_lock(&e->mu);
        while (e->count == 0 && !e->stop && S->n_waiting == 0) {
            if (!e->tp_beats) {
                pthread_cond_wait(&e->cv, &e->mu);
            } else if (garlic_cond_wait_for(&e->cv, &e->mu, ENGINE_TP_HEARTBEAT) != 0) {
                pthread_mutex_unlock(&e->mu); // (idle that long: are the other ranks alive?)
                engine_tp_heartbeat(e);
                pthread_mutex_lock(&e->mu);
            }
        }
        bool stop = e->stop && e->count == 0;
        pthread_mutex_unlock(&e->mu);
        if (stop && S->n_waiting == 0 && S->n_running == 0)
            break;
    }
    end_all(S);
    publish(S);
    hook(e->cfg.hooks.compute_idle, e);
    if (e->cfg.tp_role == ENGINE_TP_LEADER)
        engine_tp_stop(e);
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
    garlic_free(S->b_first);
    garlic_free(S);
}

// Allocates the scheduler's arrays and starts its thread (once, from engine_new, after the
// pool, the run state and the queue exist).
int engine_sched_start(engine *e, garlic_error *err)
{
    sched *S = garlic_calloc(1, sizeof *S);
    if (!S)
        return garlic_error_set(err, GARLIC_ENOMEM, "out of memory");
    e->sched = S;
    S->e = e;
    uint32_t parallel = e->cfg.parallel;
    S->max_batch = model_state_max_batch(e->state);
    S->running = garlic_calloc(parallel, sizeof *S->running);
    S->b_tokens = garlic_calloc(S->max_batch, sizeof *S->b_tokens);
    S->b_pos = garlic_calloc(S->max_batch, sizeof *S->b_pos);
    S->b_seq = garlic_calloc(S->max_batch, sizeof *S->b_seq);
    S->b_out = garlic_calloc(parallel, sizeof *S->b_out);
    S->b_seqs = garlic_calloc(parallel, sizeof *S->b_seqs);
    S->b_owner = garlic_calloc(parallel, sizeof *S->b_owner);
    S->b_row = garlic_calloc(parallel, sizeof *S->b_row);
    S->b_first = garlic_calloc(parallel, sizeof *S->b_first);
    if (!S->running || !S->b_tokens || !S->b_pos || !S->b_seq || !S->b_out || !S->b_seqs ||
        !S->b_owner || !S->b_row || !S->b_first)
        return garlic_error_set(err, GARLIC_ENOMEM, "out of memory");
    if (pthread_create(&e->thread, NULL, scheduler_main, S) != 0)
        return garlic_error_set(err, GARLIC_ENOMEM, "%s: cannot start its scheduler thread",
                                e->name);
    e->thread_started = true;
    return GARLIC_OK;
}

// Cancels everything, lets the scheduler end it, joins the thread and frees its state.
void engine_sched_stop(engine *e)
{
    if (e->thread_started) {
        engine_cancel_all(e);
        pthread_mutex_lock(&e->mu);
        e->stop = true;
        pthread_cond_broadcast(&e->cv);
        pthread_mutex_unlock(&e->mu);
        pthread_join(e->thread, NULL);
        e->thread_started = false;
    }
    sched_free(e->sched);
    e->sched = NULL;
}
