// SPDX-License-Identifier: MIT
// A request and its output channel. The scheduler appends text and tokens to the channel of
// each choice it generates (choices may run at the same time) and marks choices done; the
// submitter takes what is there by swapping buffers with the channel, so steady-state
// streaming copies each byte once and allocates only when a buffer must grow.
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/buffer.h"
#include "base/clock.h"
#include "engine/internal.h"

static void request_free(engine_request *r)
{
    if (!r)
        return;
    for (size_t i = 0; r->stops && i < r->generation.n_stops; i++)
        garlic_free(r->stops[i]);
    garlic_free(r->stops);
    garlic_free(r->bias);
    grammar_free(r->grammar);
    garlic_free(r->prompt);
    for (size_t c = 0; c < ENGINE_MAX_CHOICES; c++) {
        garlic_free(r->ch[c].embedding);
        garlic_free(r->ch[c].text);
        garlic_free(r->ch[c].tokens);
    }
    garlic_free(r->taken_text);
    garlic_free(r->taken_tokens);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    garlic_free(r);
}

// Copies the prompt, stop strings and logit biases of p into r.
static int request_copy(engine_request *r, const engine_request_params *p, garlic_error *err)
{
    r->prompt = garlic_malloc(p->n_prompt * sizeof *r->prompt);
    if (!r->prompt)
        return garlic_error_set(err, GARLIC_ENOMEM, "out of memory");
    memcpy(r->prompt, p->prompt, p->n_prompt * sizeof *r->prompt);
    r->n_prompt = p->n_prompt;
    if (p->generation.n_stops) {
        r->stops = garlic_calloc(p->generation.n_stops, sizeof *r->stops);
        if (!r->stops)
            return garlic_error_set(err, GARLIC_ENOMEM, "out of memory");
        for (size_t i = 0; i < p->generation.n_stops; i++) {
            r->stops[i] = garlic_strndup(p->generation.stops[i], SIZE_MAX);
            if (!r->stops[i])
                return garlic_error_set(err, GARLIC_ENOMEM, "out of memory");
        }
    }
    r->generation.stops = (const char *const *)r->stops;
    size_t n_bias = p->generation.sampling.n_logit_bias;
    if (n_bias) {
        r->bias = garlic_calloc(n_bias, sizeof *r->bias);
        if (!r->bias)
            return garlic_error_set(err, GARLIC_ENOMEM, "out of memory");
        memcpy(r->bias, p->generation.sampling.logit_bias, n_bias * sizeof *r->bias);
    }
    r->generation.sampling.logit_bias = r->bias;
    return GARLIC_OK;
}

engine_request *engine_request_new(const engine_request_params *p, garlic_error *err)
{
    if (p->n_prompt == 0 || p->n_choices == 0 || p->n_choices > ENGINE_MAX_CHOICES ||
        (p->embed && p->n_choices != 1)) {
        garlic_error_set(err, GARLIC_EINVAL,
                         "a request needs a prompt and 1 to %d choices (an embedding, 1)",
                         ENGINE_MAX_CHOICES);
        return NULL;
    }
    engine_request *r = garlic_calloc(1, sizeof *r);
    if (!r) {
        garlic_error_set(err, GARLIC_ENOMEM, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&r->mu, NULL);
    garlic_cond_init(&r->cv);
    atomic_init(&r->cancel, false);
    atomic_init(&r->refs, 1);
    r->generation = p->generation; // its pointers are replaced by the copies' in request_copy
    r->generation.stops = NULL;
    r->generation.sampling.logit_bias = NULL;
    r->n_choices = p->n_choices;
    r->seeded = p->seeded;
    r->wake_at_end = p->wake_at_end;
    r->embed = p->embed;
    snprintf(r->label, sizeof r->label, "%s", p->label ? p->label : "");
    if (request_copy(r, p, err) != GARLIC_OK) {
        request_free(r); // frees the stop strings copied so far (the rest are NULL)
        return NULL;
    }
    r->grammar = p->grammar; // taken: freed with the request
    r->generation.grammar = r->grammar;
    return r;
}

void engine_request_unref(engine_request *r)
{
    if (r && atomic_fetch_sub(&r->refs, 1) == 1)
        request_free(r);
}

void engine_request_cancel(engine_request *r) { atomic_store(&r->cancel, true); }

bool engine_request_cancelled(const engine_request *r) { return atomic_load(&r->cancel); }

void engine_request_release(engine_request *r)
{
    if (!r)
        return;
    engine_request_cancel(r);
    engine_request_unref(r);
}

// Scheduler side: appends text to a choice. GARLIC_ENOMEM when it cannot grow.
int engine_request_append_text(engine_request *r, uint32_t choice, const char *text, size_t len)
{
    pthread_mutex_lock(&r->mu);
    choice_channel *ch = &r->ch[choice];
    bool ok = garlic_grow(&ch->text, &ch->cap, ch->len + len + 1, 1) == GARLIC_OK;
    if (ok) {
        memcpy(ch->text + ch->len, text, len);
        ch->len += len;
        ch->text[ch->len] = '\0';
        if (!r->wake_at_end)
            pthread_cond_signal(&r->cv);
    }
    pthread_mutex_unlock(&r->mu);
    return ok ? GARLIC_OK : GARLIC_ENOMEM;
}

// Scheduler side: records a generated token of a choice with its log-probabilities.
int engine_request_append_token(engine_request *r, uint32_t choice, int32_t id,
                                const sampler_logprobs *lp)
{
    pthread_mutex_lock(&r->mu);
    choice_channel *ch = &r->ch[choice];
    bool ok = garlic_grow(&ch->tokens, &ch->tokens_cap, ch->n_tokens + 1, sizeof *ch->tokens) ==
        GARLIC_OK;
    if (ok) {
        engine_token *t = &ch->tokens[ch->n_tokens++];
        t->id = id;
        t->lp = *lp;
    }
    pthread_mutex_unlock(&r->mu);
    return ok ? GARLIC_OK : GARLIC_ENOMEM;
}

// Scheduler side: when a choice's first output token came, in seconds from submit.
void engine_request_first_token(engine_request *r, uint32_t choice, double seconds)
{
    pthread_mutex_lock(&r->mu);
    r->ch[choice].first_token_seconds = seconds;
    pthread_mutex_unlock(&r->mu);
}

void engine_request_end_choice(engine_request *r, uint32_t choice, const engine_stats *stats,
                               uint32_t output_tokens)
{
    pthread_mutex_lock(&r->mu);
    r->ch[choice].output_tokens = output_tokens;
    r->ch[choice].done = true;
    r->ch[choice].finish = stats->finish;
    r->ch[choice].stats = *stats;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

int engine_request_set_embedding(engine_request *r, uint32_t choice, const float *v, uint32_t n)
{
    float *copy = garlic_malloc((size_t)n * sizeof *copy);
    if (!copy)
        return GARLIC_ENOMEM;
    memcpy(copy, v, (size_t)n * sizeof *copy);
    pthread_mutex_lock(&r->mu);
    garlic_free(r->ch[choice].embedding);
    r->ch[choice].embedding = copy;
    r->ch[choice].n_embd = n;
    pthread_mutex_unlock(&r->mu);
    return GARLIC_OK;
}

// Ends the request with an error; the message is copied.
void engine_request_fail(engine_request *r, int code, const char *message)
{
    pthread_mutex_lock(&r->mu);
    r->error = code;
    snprintf(r->error_message, sizeof r->error_message, "%s", message);
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

// Moves the current choice's pending output into the submitter's buffers (under r->mu).
static void take(engine_request *r, choice_channel *ch, engine_chunk *out)
{
    char *text = ch->text;
    size_t cap = ch->cap;
    ch->text = r->taken_text, ch->cap = r->taken_cap;
    r->taken_text = text, r->taken_cap = cap;
    out->text = text ? text : "";
    out->len = ch->len;
    ch->len = 0;
    engine_token *tokens = ch->tokens;
    size_t tcap = ch->tokens_cap;
    ch->tokens = r->taken_tokens, ch->tokens_cap = r->taken_tokens_cap;
    r->taken_tokens = tokens, r->taken_tokens_cap = tcap;
    out->tokens = tokens;
    out->n_tokens = ch->n_tokens;
    ch->n_tokens = 0;
}

// Fills out from the channel if anything is ready (under r->mu); true if so.
static bool try_take(engine_request *r, engine_chunk *out)
{
    memset(out, 0, sizeof *out);
    out->text = "";
    if (r->error) {
        out->all_done = true;
        out->error = r->error;
        out->error_message = r->error_message;
        return true;
    }
    if (r->next_choice >= r->n_choices) {
        out->all_done = true;
        return true;
    }
    choice_channel *ch = &r->ch[r->next_choice];
    out->choice = r->next_choice;
    if (ch->len == 0 && ch->n_tokens == 0 && !ch->done)
        return false;
    take(r, ch, out);
    if (ch->done) {
        out->choice_done = true;
        out->finish = ch->finish;
        out->stats = ch->stats;
        out->output_tokens = ch->output_tokens;
        out->first_token_seconds = ch->first_token_seconds;
        out->embedding = ch->embedding;
        out->n_embd = ch->n_embd;
        r->next_choice++;
        out->all_done = r->next_choice >= r->n_choices;
    }
    return true;
}

int engine_request_next(engine_request *r, engine_chunk *out, int timeout_ms)
{
    pthread_mutex_lock(&r->mu);
    bool ready = try_take(r, out);
    if (!ready && timeout_ms > 0) {
        garlic_cond_wait_for(&r->cv, &r->mu, timeout_ms / 1000.0);
        ready = try_take(r, out);
    }
    pthread_mutex_unlock(&r->mu);
    return ready ? 1 : 0;
}
