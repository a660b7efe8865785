// SPDX-License-Identifier: MIT
// `garlic serve` under tensor parallelism. Rank 0's engine (the leader) runs the scheduler,
// HTTP and sampling as one process would; before each forward call it sends the step to the
// other ranks as a flat batch (model_flatten_batch: tokens, positions, sequences, attended
// positions, block tables, output rows) together with the block copies its KV pool made since
// the last step (copies on write of shared prefix blocks, which the pool reports through
// kv_cache_set_mirror). The other ranks' engines (followers) run no scheduler: engine_follow
// receives each step, repeats the copies in its own pool and runs model_forward_flat, whose
// all-reduces and gathers keep the ranks in step, until the leader's engine stops. Every
// rank's pool has the same configuration (the same plan of the same share shapes), so the
// block numbers the leader sends name the same rows on every rank.
//
// A step on the wire: a tp_header (dist_broadcast_idle: followers wait for it asleep, since a
// server may be idle for hours; an idle leader sends a heartbeat header every
// ENGINE_TP_HEARTBEAT s, followed by one dist_heartbeat on every rank, so that a hung rank
// is noticed by the watchdog and a silent leader by its followers), then, for a step, one
// broadcast of 32-bit words: tokens, pos, seq, n_pos (n_tokens each), table_start
// (2 n_seqs), tables (n_tables), out (n_out), copies (4 n_copies: window, to, from, rows).
#include <assert.h>
#include <stdio.h>
#include <string.h>

#include "base/buffer.h"
#include "dist/dist.h"
#include "engine/internal.h"

enum { TP_STEP = 1, TP_STOP = 2, TP_BEAT = 3 };

typedef struct tp_header {
    uint32_t kind; // TP_STEP, TP_STOP or TP_BEAT
    uint32_t n_tokens, n_seqs, n_out, n_tables, n_copies;
    uint32_t hidden; // model_flat_batch.hidden
    uint32_t reserved;
} tp_header;
static_assert(sizeof(tp_header) == 32, "tp_header is eight 32-bit words");

// The words of a step's arrays (tp_header's sizes), or 0 when they overflow.
static size_t step_words(const tp_header *h)
{
    uint64_t n = 4ull * h->n_tokens + 2ull * h->n_seqs + h->n_tables + h->n_out +
        4ull * h->n_copies;
    return n < (1ull << 29) ? (size_t)n : 0; // (bytes stay below 2^31: one broadcast)
}

void engine_tp_record_copy(void *ctx, bool window, uint32_t to, uint32_t from, uint32_t n_rows)
{
    engine *e = ctx;
    if (garlic_grow(&e->tp_copies, &e->tp_copies_cap, e->n_tp_copies + 4, sizeof *e->tp_copies)) {
        // The followers could no longer repeat rank 0's pool: nothing more is computed.
        pthread_mutex_lock(&e->mu);
        if (!atomic_load(&e->failed))
            snprintf(e->failure, sizeof e->failure,
                     "%s: out of memory recording a KV block copy for the other ranks", e->name);
        pthread_mutex_unlock(&e->mu);
        atomic_store(&e->failed, true);
        return;
    }
    uint32_t *c = e->tp_copies + e->n_tp_copies;
    c[0] = window, c[1] = to, c[2] = from, c[3] = n_rows;
    e->n_tp_copies += 4;
}

// Appends n words of from at *at.
static void put(uint32_t **at, const void *from, size_t n)
{
    if (n) // (from may be NULL when there is nothing: no copies, no logit rows)
        memcpy(*at, from, n * sizeof **at);
    *at += n;
}

int engine_tp_forward(engine *e, const model_batch *b, const float **logits, garlic_error *err)
{
    model_flat_batch fb;
    int rc = model_flatten_batch(e->state, e->kv, b, &fb, err);
    if (rc) // (nothing was sent: the followers never see a step the leader refused)
        return rc;
    tp_header h = {.kind = TP_STEP,
                   .n_tokens = fb.n_tokens,
                   .n_seqs = fb.n_seqs,
                   .n_out = fb.n_out,
                   .n_tables = fb.n_tables,
                   .n_copies = (uint32_t)(e->n_tp_copies / 4),
                   .hidden = fb.hidden};
    size_t words = step_words(&h);
    if (!words || garlic_grow(&e->tp_words, &e->tp_words_cap, words, sizeof *e->tp_words))
        return garlic_error_set(err, GARLIC_ENOMEM, "%s: no memory for a step of %u tokens",
                                e->name, fb.n_tokens);
    uint32_t *at = e->tp_words;
    put(&at, fb.tokens, fb.n_tokens);
    put(&at, fb.pos, fb.n_tokens);
    put(&at, fb.seq, fb.n_tokens);
    put(&at, fb.n_pos, fb.n_tokens);
    put(&at, fb.table_start, 2 * (size_t)fb.n_seqs);
    put(&at, fb.tables, fb.n_tables);
    put(&at, fb.out, fb.n_out);
    put(&at, e->tp_copies, e->n_tp_copies);
    dist_broadcast_idle(&h, sizeof h);
    dist_broadcast(e->tp_words, words * sizeof *e->tp_words);
    e->n_tp_copies = 0;
    return model_forward_flat(e->state, e->kv, &fb, logits, err);
}

void engine_tp_stop(engine *e)
{
    assert(e->cfg.tp_role == ENGINE_TP_LEADER);
    (void)e;
    tp_header h = {.kind = TP_STOP};
    dist_broadcast_idle(&h, sizeof h);
}

void engine_tp_beats_start(engine *e)
{
    pthread_mutex_lock(&e->mu);
    e->tp_beats = e->cfg.tp_role == ENGINE_TP_LEADER;
    pthread_cond_broadcast(&e->cv); // (an idle scheduler now waits with a time limit)
    pthread_mutex_unlock(&e->mu);
}

void engine_tp_heartbeat(engine *e)
{
    assert(e->cfg.tp_role == ENGINE_TP_LEADER);
    (void)e;
    tp_header h = {.kind = TP_BEAT};
    dist_broadcast_idle(&h, sizeof h);
    dist_heartbeat();
}

// A follower's step: the copies first (the leader made them before this step), then the
// forward call over the arrays of words.
static int follow_step(engine *e, const tp_header *h, const uint32_t *words, garlic_error *err)
{
    const uint32_t *at = words;
    model_flat_batch fb = {.n_tokens = h->n_tokens,
                           .n_seqs = h->n_seqs,
                           .n_out = h->n_out,
                           .n_tables = h->n_tables,
                           .hidden = h->hidden != 0};
    fb.tokens = (const int32_t *)at, at += h->n_tokens;
    fb.pos = at, at += h->n_tokens;
    fb.seq = at, at += h->n_tokens;
    fb.n_pos = at, at += h->n_tokens;
    fb.table_start = at, at += 2 * (size_t)h->n_seqs;
    fb.tables = at, at += h->n_tables;
    fb.out = at, at += h->n_out;
    for (uint32_t i = 0; i < h->n_copies; i++, at += 4) {
        int rc = kv_cache_copy_rows_of(e->kv, at[0] != 0, at[1], at[2], at[3], err);
        if (rc)
            return rc;
    }
    const float *logits; // (every rank gets them whole; the leader alone samples)
    return model_forward_flat(e->state, e->kv, &fb, &logits, err);
}

int engine_follow(engine *e, garlic_error *err)
{
    if (e->cfg.tp_role != ENGINE_TP_FOLLOWER)
        return garlic_error_set(err, GARLIC_EINVAL, "%s: not a tensor-parallel follower", e->name);
    // The leader, idle, beats every ENGINE_TP_HEARTBEAT s: nothing for that long plus the
    // collectives' timeout means it died or hangs (without a timeout, wait as long as it takes).
    double timeout = dist_timeout(), limit = timeout > 0 ? ENGINE_TP_HEARTBEAT + timeout : 0;
    for (;;) {
        tp_header h;
        dist_broadcast_idle_within(&h, sizeof h, limit);
        if (h.kind == TP_STOP)
            return GARLIC_OK;
        if (h.kind == TP_BEAT) {
            dist_heartbeat();
            continue;
        }
        size_t words = step_words(&h);
        if (h.kind != TP_STEP || !words)
            return garlic_error_set(err, GARLIC_EINVAL,
                                    "%s: rank %u received a message it does not know (kind %u)",
                                    e->name, dist_rank(), h.kind);
        if (garlic_grow(&e->tp_words, &e->tp_words_cap, words, sizeof *e->tp_words))
            return garlic_error_set(err, GARLIC_ENOMEM, "%s: rank %u: no memory for a step",
                                    e->name, dist_rank());
        dist_broadcast(e->tp_words, words * sizeof *e->tp_words);
        int rc = follow_step(e, &h, e->tp_words, err);
        if (rc) {
            garlic_error what = *err;
            return garlic_error_set(err, rc,
                                    "%s: rank %u cannot compute rank 0's step (its KV pool or "
                                    "state differs): %s",
                                    e->name, dist_rank(), what.message);
        }
    }
}
