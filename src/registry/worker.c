// SPDX-License-Identifier: MIT
// The worker of a loaded model: one thread that takes requests from the model's bounded FIFO
// queue and runs them one at a time through engine_generate, choice after choice, writing
// text and tokens into each request's channel. It owns the model's run state. The
// continuous-batching scheduler of the next issue replaces this file.
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "registry/internal.h"

// emit: the text of the current choice goes to the channel; a cancelled request stops.
static int on_text(void *user, const char *text, size_t len)
{
    registry_request *r = user;
    if (registry_request_append_text(r, text, len) != GARLIC_OK)
        atomic_store(&r->cancel, true);
    return atomic_load(&r->cancel) ? 1 : 0;
}

// on_token: timing for the statistics, the token for logprobs; checks for cancellation so a
// disconnected client stops generation within one token even while text is held back.
static int on_token(void *user, int32_t token, const sampler_logprobs *lp)
{
    registry_request *r = user;
    double now = garlic_now();
    bool first = r->t_last == 0;
    registry_stats_token(r->reg, now - (first ? r->t_submit : r->t_last), first);
    r->t_last = now;
    r->output_tokens++;
    if (lp && registry_request_append_token(r, token, lp) != GARLIC_OK)
        atomic_store(&r->cancel, true);
    return atomic_load(&r->cancel) ? 1 : 0;
}

// Runs one choice of r: its output goes to the channel. Returns the engine's code and fills
// stats and err.
static int run_choice(registry_model *m, registry_request *r, uint32_t c, engine_stats *stats,
                      garlic_error *err)
{
    pthread_mutex_lock(&r->mu);
    r->current = c;
    pthread_mutex_unlock(&r->mu);
    *stats = (engine_stats){.finish = ENGINE_FINISH_CANCEL, .unevaluated = -1};
    r->output_tokens = 0;
    if (atomic_load(&r->cancel))
        return GARLIC_OK;
    engine_params ep = r->engine;
    ep.on_token = on_token;
    ep.end_tokens = &m->end_tokens;
    if (r->seeded)
        ep.sampling.seed += c;
    uint32_t pos = 0;
    return engine_generate(m->state, m->tok, r->prompt, r->n_prompt, &pos, &ep, on_text, r, stats,
                           err);
}

// Runs every choice of r on m's run state; the channel gets the output or the error. The
// statistics are updated before the last end is published, so a client that has seen its
// answer end also sees it counted.
static void run_request(registry_model *m, registry_request *r)
{
    bool cancelled = false;
    for (uint32_t c = 0; c < r->n_choices; c++) {
        engine_stats stats;
        garlic_error err = {0};
        int rc = run_choice(m, r, c, &stats, &err);
        bool last = rc != GARLIC_OK || c + 1 == r->n_choices;
        cancelled |= stats.finish == ENGINE_FINISH_CANCEL;
        if (last)
            registry_stats_request(m->reg, r->n_prompt, cancelled);
        if (rc != GARLIC_OK) {
            registry_request_fail(r, rc, err.message[0] ? err.message : garlic_error_name(rc));
            return;
        }
        registry_request_end_choice(r, c, &stats, r->output_tokens);
    }
}

static void *worker_main(void *arg)
{
    registry_model *m = arg;
    for (;;) {
        pthread_mutex_lock(&m->mu);
        while (m->count == 0 && !m->stop)
            pthread_cond_wait(&m->cv, &m->mu);
        if (m->count == 0) {
            pthread_mutex_unlock(&m->mu);
            return NULL;
        }
        registry_request *r = m->queue[m->head];
        m->head = (m->head + 1) % m->queue_cap;
        m->count--;
        m->running = r;
        pthread_mutex_unlock(&m->mu);

        r->t_last = 0;
        run_request(m, r);

        pthread_mutex_lock(&m->mu);
        m->running = NULL;
        pthread_cond_broadcast(&m->cv);
        pthread_mutex_unlock(&m->mu);
        registry_request_unref(r);
    }
}

// Allocates the queue and starts the thread (called once, under load_mu).
int registry_worker_start(registry_model *m, garlic_error *err)
{
    m->queue_cap = m->reg->cfg.max_queue ? m->reg->cfg.max_queue : 64;
    m->queue = garlic_calloc(m->queue_cap, sizeof *m->queue);
    if (!m->queue)
        return garlic_error_set(err, GARLIC_ENOMEM, "out of memory");
    if (pthread_create(&m->thread, NULL, worker_main, m) != 0)
        return garlic_error_set(err, GARLIC_ENOMEM, "%s: cannot start its worker thread", m->name);
    m->thread_started = true;
    return GARLIC_OK;
}

// Cancels everything queued or running on m; the worker finishes them at once.
void registry_worker_cancel_all(registry_model *m)
{
    pthread_mutex_lock(&m->mu);
    for (uint32_t i = 0; i < m->count; i++)
        registry_request_cancel(m->queue[(m->head + i) % m->queue_cap]);
    if (m->running)
        registry_request_cancel(m->running);
    pthread_mutex_unlock(&m->mu);
}

bool registry_worker_idle(registry_model *m)
{
    pthread_mutex_lock(&m->mu);
    bool idle = m->count == 0 && !m->running;
    pthread_mutex_unlock(&m->mu);
    return idle;
}

// Cancels everything, lets the worker empty its queue and joins it.
void registry_worker_stop(registry_model *m)
{
    if (!m->thread_started)
        return;
    registry_worker_cancel_all(m);
    pthread_mutex_lock(&m->mu);
    m->stop = true;
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
    pthread_join(m->thread, NULL);
    m->thread_started = false;
}

int registry_submit(registry_model *m, registry_request *r, garlic_error *err)
{
    if (atomic_load(&m->reg->stopped))
        return garlic_error_set(err, REGISTRY_ESTOPPED, "the server is shutting down");
    if (!atomic_load_explicit(&m->loaded, memory_order_acquire))
        return garlic_error_set(err, GARLIC_EINVAL, "%s: not loaded", m->name);
    r->reg = m->reg;
    r->t_submit = garlic_now();
    pthread_mutex_lock(&m->mu);
    if (m->count == m->queue_cap) {
        pthread_mutex_unlock(&m->mu);
        return garlic_error_set(err, REGISTRY_EFULL, "%s: %u requests are waiting already; "
                                "try again later", m->name, m->queue_cap);
    }
    atomic_fetch_add(&r->refs, 1);
    m->queue[(m->head + m->count) % m->queue_cap] = r;
    m->count++;
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
