// SPDX-License-Identifier: MIT
// The sampler's parameters, lifecycle and the first two links of the chain: logit bias and
// the penalties over a ring of recently accepted tokens. The ring keeps a count per distinct
// token, updated in O(1) per accepted token, so penalties cost O(repeat_last_n) per sample
// instead of a pass over the vocabulary. chain.c does the rest of the chain.
#include <math.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "base/alloc.h"
#include "sampler/internal.h"

sampler_params sampler_params_default(int32_t n_vocab)
{
    return (sampler_params){.n_vocab = n_vocab,
                            .temperature = 0.8f,
                            .top_k = 40,
                            .top_p = 0.95f,
                            .min_p = 0.05f,
                            .repeat_penalty = 1.0f,
                            .repeat_last_n = 64,
                            .presence_penalty = 0.0f,
                            .frequency_penalty = 0.0f,
                            .logit_bias = NULL,
                            .n_logit_bias = 0,
                            .seed = SAMPLER_SEED_RANDOM};
}

// Checks the logit_bias list against the vocabulary.
static int validate_bias(const sampler_params *p, garlic_error *err)
{
    if (p->n_logit_bias > 0 && !p->logit_bias)
        return garlic_error_set(err, GARLIC_EINVAL, "sampler: logit_bias is NULL with %zu entries",
                                p->n_logit_bias);
    for (size_t i = 0; i < p->n_logit_bias; i++) {
        const sampler_bias *b = &p->logit_bias[i];
        if (b->token < 0 || b->token >= p->n_vocab)
            return garlic_error_set(err, GARLIC_EINVAL,
                                    "sampler: logit_bias token %d is outside the vocabulary "
                                    "(0..%d)",
                                    (int)b->token, (int)p->n_vocab - 1);
        if (isnan(b->bias) || b->bias == INFINITY)
            return garlic_error_set(err, GARLIC_EINVAL,
                                    "sampler: logit_bias for token %d is %g, must be finite or "
                                    "-inf (a ban)",
                                    (int)b->token, (double)b->bias);
    }
    return GARLIC_OK;
}

int sampler_params_validate(const sampler_params *p, garlic_error *err)
{
    if (p->n_vocab <= 0)
        return garlic_error_set(err, GARLIC_EINVAL, "sampler: n_vocab is %d, must be > 0",
                                (int)p->n_vocab);
    if (!isfinite(p->temperature))
        return garlic_error_set(err, GARLIC_EINVAL,
                                "sampler: temperature is %g, must be a finite number",
                                (double)p->temperature);
    if (p->top_k < 0)
        return garlic_error_set(err, GARLIC_EINVAL, "sampler: top_k is %d, must be >= 0 (0 = off)",
                                (int)p->top_k);
    if (!(p->top_p > 0.0f && p->top_p <= 1.0f))
        return garlic_error_set(err, GARLIC_EINVAL,
                                "sampler: top_p is %g, must be in (0, 1] (1 = off)",
                                (double)p->top_p);
    if (!(p->min_p >= 0.0f && p->min_p <= 1.0f))
        return garlic_error_set(err, GARLIC_EINVAL,
                                "sampler: min_p is %g, must be in [0, 1] (0 = off)",
                                (double)p->min_p);
    if (!(p->repeat_penalty > 0.0f && isfinite(p->repeat_penalty)))
        return garlic_error_set(err, GARLIC_EINVAL,
                                "sampler: repeat_penalty is %g, must be > 0 (1 = off)",
                                (double)p->repeat_penalty);
    if (p->repeat_last_n < 0 || p->repeat_last_n > SAMPLER_MAX_REPEAT_LAST_N)
        return garlic_error_set(err, GARLIC_EINVAL,
                                "sampler: repeat_last_n is %d, must be in 0..%d",
                                (int)p->repeat_last_n, SAMPLER_MAX_REPEAT_LAST_N);
    if (!isfinite(p->presence_penalty))
        return garlic_error_set(err, GARLIC_EINVAL,
                                "sampler: presence_penalty is %g, must be a finite number",
                                (double)p->presence_penalty);
    if (!isfinite(p->frequency_penalty))
        return garlic_error_set(err, GARLIC_EINVAL,
                                "sampler: frequency_penalty is %g, must be a finite number",
                                (double)p->frequency_penalty);
    return validate_bias(p, err);
}

// Whether any penalty would change a logit (otherwise no history is kept at all).
static bool penalties_active(const sampler_params *p)
{
    return p->repeat_last_n > 0 &&
        (p->repeat_penalty != 1.0f || p->presence_penalty != 0.0f || p->frequency_penalty != 0.0f);
}

// A seed from the kernel, or from the clock if getrandom is unavailable.
static uint64_t random_seed(void)
{
    uint64_t seed;
    if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) == (ssize_t)sizeof seed)
        return seed;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    x ^= (uint64_t)(uintptr_t)&ts;
    return sampler_splitmix64(&x);
}

// Allocates s's arrays for its (already copied) params; GARLIC_ENOMEM if any fails.
static int allocate_scratch(sampler *s, const sampler_params *p, garlic_error *err)
{
    size_t n = (size_t)p->n_vocab;
    s->processed = garlic_calloc(n, sizeof *s->processed);
    s->cand = garlic_calloc(n, sizeof *s->cand);
    if (p->n_logit_bias > 0)
        s->bias = garlic_calloc(p->n_logit_bias, sizeof *s->bias);
    if (!s->processed || !s->cand || (p->n_logit_bias > 0 && !s->bias))
        goto nomem;
    if (s->ring_cap > 0) {
        s->ring = garlic_calloc(s->ring_cap, sizeof *s->ring);
        s->seen_tokens = garlic_calloc(s->ring_cap, sizeof *s->seen_tokens);
        s->seen_counts = garlic_calloc(s->ring_cap, sizeof *s->seen_counts);
        s->seen_slot = garlic_calloc(n, sizeof *s->seen_slot);
        if (!s->ring || !s->seen_tokens || !s->seen_counts || !s->seen_slot)
            goto nomem;
        for (size_t i = 0; i < n; i++)
            s->seen_slot[i] = -1;
    }
    return GARLIC_OK;
nomem:
    return garlic_error_set(err, GARLIC_ENOMEM,
                            "sampler: out of memory for a vocabulary of %zu tokens", n);
}

sampler *sampler_new(const sampler_params *p, garlic_error *err)
{
    if (!p) {
        garlic_error_set(err, GARLIC_EINVAL, "sampler: no parameters");
        return NULL;
    }
    if (sampler_params_validate(p, err) != GARLIC_OK)
        return NULL;
    sampler *s = garlic_calloc(1, sizeof *s);
    if (!s) {
        garlic_error_set(err, GARLIC_ENOMEM, "sampler: out of memory");
        return NULL;
    }
    s->params = *p;
    s->ring_cap = penalties_active(p) ? (size_t)p->repeat_last_n : 0;
    if (allocate_scratch(s, p, err) != GARLIC_OK) {
        sampler_free(s);
        return NULL;
    }
    if (p->n_logit_bias > 0)
        memcpy(s->bias, p->logit_bias, p->n_logit_bias * sizeof *s->bias);
    s->n_bias = p->n_logit_bias;
    s->params.logit_bias = s->bias;
    s->seed = p->seed == SAMPLER_SEED_RANDOM ? random_seed() : p->seed;
    sampler_rng_seed(s->rng_start, s->seed);
    sampler_reset(s);
    return s;
}

void sampler_free(sampler *s)
{
    if (!s)
        return;
    garlic_free(s->bias);
    garlic_free(s->ring);
    garlic_free(s->seen_tokens);
    garlic_free(s->seen_counts);
    garlic_free(s->seen_slot);
    garlic_free(s->processed);
    garlic_free(s->cand);
    garlic_free(s);
}

void sampler_reset(sampler *s)
{
    for (size_t i = 0; i < s->n_seen; i++)
        s->seen_slot[s->seen_tokens[i]] = -1;
    s->n_seen = 0;
    s->ring_len = 0;
    s->ring_head = 0;
    s->have_processed = false;
    s->n_cand = 0;
    memcpy(s->rng, s->rng_start, sizeof s->rng);
}

uint64_t sampler_seed(const sampler *s) { return s->seed; }

// Takes one occurrence of token out of the distinct-token counts.
static void seen_remove(sampler *s, int32_t token)
{
    int32_t slot = s->seen_slot[token];
    if (--s->seen_counts[slot] > 0)
        return;
    size_t last = s->n_seen - 1; // swap the last entry into the freed slot
    s->seen_tokens[slot] = s->seen_tokens[last];
    s->seen_counts[slot] = s->seen_counts[last];
    s->seen_slot[s->seen_tokens[slot]] = slot;
    s->seen_slot[token] = -1;
    s->n_seen = last;
}

// Adds one occurrence of token to the distinct-token counts.
static void seen_add(sampler *s, int32_t token)
{
    int32_t slot = s->seen_slot[token];
    if (slot >= 0) {
        s->seen_counts[slot]++;
        return;
    }
    s->seen_slot[token] = (int32_t)s->n_seen;
    s->seen_tokens[s->n_seen] = token;
    s->seen_counts[s->n_seen] = 1;
    s->n_seen++;
}

void sampler_accept(sampler *s, int32_t token)
{
    if (s->ring_cap == 0 || token < 0 || token >= s->params.n_vocab)
        return;
    if (s->ring_len == s->ring_cap) { // full: the oldest token leaves the window
        seen_remove(s, s->ring[s->ring_head]);
        s->ring[s->ring_head] = token;
        s->ring_head = (s->ring_head + 1) % s->ring_cap;
    } else {
        s->ring[(s->ring_head + s->ring_len) % s->ring_cap] = token;
        s->ring_len++;
    }
    seen_add(s, token);
}

void sampler_accept_many(sampler *s, const int32_t *tokens, size_t n)
{
    for (size_t i = 0; i < n; i++)
        sampler_accept(s, tokens[i]);
}

// Applies the repeat penalty, then presence and frequency, to each token in the history.
static void apply_penalties(const sampler *s, float *out)
{
    const sampler_params *p = &s->params;
    for (size_t i = 0; i < s->n_seen; i++) {
        int32_t token = s->seen_tokens[i];
        float count = (float)s->seen_counts[i];
        float v = out[token];
        v = v > 0.0f ? v / p->repeat_penalty : v * p->repeat_penalty;
        v -= p->presence_penalty + p->frequency_penalty * count;
        out[token] = v;
    }
}

void sampler_apply(const sampler *s, const float *logits, float *out)
{
    size_t n = (size_t)s->params.n_vocab;
    for (size_t i = 0; i < n; i++)
        out[i] = isnan(logits[i]) ? -INFINITY : logits[i];
    for (size_t i = 0; i < s->n_bias; i++) {
        float v = out[s->bias[i].token] + s->bias[i].bias;
        out[s->bias[i].token] = isnan(v) ? -INFINITY : v; // a ban beats a +inf logit
    }
    apply_penalties(s, out);
}
