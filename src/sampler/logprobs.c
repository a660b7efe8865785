// SPDX-License-Identifier: MIT
// Log-probabilities for OpenAI's logprobs and top_logprobs: a log-softmax over a whole logits
// row and the few most likely tokens, found with a small insertion list instead of a sort.
// The sampler reports them for the logits after logit bias and penalties, at temperature 1
// and before any truncation, so they describe the model's (biased) view, not the draw's.
#include <float.h>
#include <math.h>

#include "sampler/internal.h"

// Inserts (token, logit) into top[0..*n) kept best-first with room for cap entries.
static void top_insert(sampler_token_logprob *top, size_t *n, size_t cap, int32_t token,
                       float logit)
{
    if (*n == cap && !sampler_ranks_before(logit, token, top[*n - 1].logprob, top[*n - 1].token))
        return;
    size_t i = *n < cap ? (*n)++ : cap - 1;
    while (i > 0 && sampler_ranks_before(logit, token, top[i - 1].logprob, top[i - 1].token)) {
        top[i] = top[i - 1];
        i--;
    }
    top[i] = (sampler_token_logprob){.token = token, .logprob = logit};
}

// A logit as the log-softmax sees it: NaN is -inf, +inf is the largest float.
static inline float clean_logit(float v)
{
    return isnan(v) ? -INFINITY : v > FLT_MAX ? FLT_MAX : v;
}

int sampler_logprobs_compute(const float *logits, int32_t n_vocab, int32_t token, size_t n_top,
                             sampler_logprobs *out, garlic_error *err)
{
    if (!logits || n_vocab <= 0)
        return garlic_error_set(err, GARLIC_EINVAL, "sampler: logprobs of an empty logits row");
    if (token < 0 || token >= n_vocab)
        return garlic_error_set(err, GARLIC_EINVAL,
                                "sampler: logprobs token %d is outside the vocabulary (0..%d)",
                                (int)token, (int)n_vocab - 1);
    if (n_top > SAMPLER_MAX_TOP_LOGPROBS || n_top > (size_t)n_vocab)
        return garlic_error_set(err, GARLIC_EINVAL,
                                "sampler: top_logprobs is %zu, must be at most %d and at most "
                                "the vocabulary size",
                                n_top, SAMPLER_MAX_TOP_LOGPROBS);
    // Pass 1: the maximum and the best n_top (their logits are kept in .logprob for now).
    float max = -INFINITY;
    out->n_top = 0;
    for (int32_t i = 0; i < n_vocab; i++) {
        float v = clean_logit(logits[i]);
        max = v > max ? v : max;
        if (n_top > 0)
            top_insert(out->top, &out->n_top, n_top, i, v);
    }
    out->chosen.token = token;
    if (max == -INFINITY) { // every token banned: nothing has any probability
        out->chosen.logprob = -INFINITY;
        for (size_t i = 0; i < out->n_top; i++)
            out->top[i].logprob = -INFINITY;
        return GARLIC_OK;
    }
    // Pass 2: log Z = max + log(sum exp(logit - max)), and the sum is at least 1.
    double sum = 0.0;
    for (int32_t i = 0; i < n_vocab; i++)
        sum += expf(clean_logit(logits[i]) - max);
    double log_sum = log(sum);
    out->chosen.logprob = (float)((double)(clean_logit(logits[token]) - max) - log_sum);
    for (size_t i = 0; i < out->n_top; i++)
        out->top[i].logprob = (float)((double)(out->top[i].logprob - max) - log_sum);
    return GARLIC_OK;
}

int sampler_logprobs_last(const sampler *s, int32_t token, size_t n_top, sampler_logprobs *out,
                          garlic_error *err)
{
    if (!s->have_processed)
        return garlic_error_set(err, GARLIC_EINVAL,
                                "sampler: logprobs asked for before any token was sampled");
    return sampler_logprobs_compute(s->processed, s->params.n_vocab, token, n_top, out, err);
}
