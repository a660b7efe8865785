// SPDX-License-Identifier: MIT
// The sampling chain after bias and penalties: greedy argmax, or candidates -> top-k ->
// top-p -> min-p -> a temperature softmax -> one draw from the PRNG. Nothing sorts the whole
// vocabulary unless it must: top-k is a heap selection of k (O(n log k)), and top-p without
// top-k selects a growing best-first prefix until it holds enough probability mass.
#include <float.h>
#include <math.h>

#include "sampler/internal.h"

enum { TOP_P_FIRST_PREFIX = 64 }; // top-p's first guess at how many candidates it needs

static inline bool cand_before(const sampler_candidate *a, const sampler_candidate *b)
{
    return sampler_ranks_before(a->logit, a->id, b->logit, b->id);
}

static inline void cand_swap(sampler_candidate *a, sampler_candidate *b)
{
    sampler_candidate t = *a;
    *a = *b;
    *b = t;
}

// Restores the heap below i in h[0..n), a heap whose root is its worst-ranked element.
static void sift_down(sampler_candidate *h, size_t n, size_t i)
{
    for (;;) {
        size_t worst = i, left = 2 * i + 1, right = left + 1;
        if (left < n && cand_before(&h[worst], &h[left]))
            worst = left;
        if (right < n && cand_before(&h[worst], &h[right]))
            worst = right;
        if (worst == i)
            return;
        cand_swap(&h[i], &h[worst]);
        i = worst;
    }
}

// Moves the m (1 <= m <= n) best-ranked of c[0..n) to c[0..m), best first; c[m..n) keeps the
// rest in no particular order. O(n log m): a heap of the best m seen so far, then heapsort.
static void select_top(sampler_candidate *c, size_t n, size_t m)
{
    for (size_t i = m / 2; i-- > 0;)
        sift_down(c, m, i);
    for (size_t i = m; i < n; i++) {
        if (cand_before(&c[i], &c[0])) {
            cand_swap(&c[0], &c[i]);
            sift_down(c, m, 0);
        }
    }
    for (size_t end = m; end > 1; end--) { // the worst goes last, leaving best-first order
        cand_swap(&c[0], &c[end - 1]);
        sift_down(c, end - 1, 0);
    }
}

// The lowest id with the highest value in v[0..n), or GARLIC_EINVAL if all are -inf.
static int32_t argmax(const float *v, size_t n)
{
    size_t best = 0;
    for (size_t i = 1; i < n; i++)
        if (v[i] > v[best])
            best = i;
    return v[best] == -INFINITY ? GARLIC_EINVAL : (int32_t)best;
}

// Fills s->cand with every token that is not banned, in id order, +inf clamped to FLT_MAX so
// that softmax arithmetic stays finite. Returns how many there are and their top logit.
static size_t fill_candidates(sampler *s, float *max)
{
    size_t n = 0, n_vocab = (size_t)s->params.n_vocab;
    float top = -INFINITY;
    for (size_t i = 0; i < n_vocab; i++) {
        float v = s->processed[i];
        if (v == -INFINITY)
            continue;
        v = fminf(v, FLT_MAX);
        top = fmaxf(top, v);
        s->cand[n++] = (sampler_candidate){.id = (int32_t)i, .logit = v, .weight = 0.0f};
    }
    *max = top;
    return n;
}

// Keeps the smallest best-first prefix of c[0..n) whose probability (softmax at temperature 1)
// reaches top_p, including the candidate that crosses it. Leaves c best-first; returns the
// prefix's length. When c is not sorted yet it selects 64, 256, ... best until one suffices.
static size_t truncate_top_p(sampler_candidate *c, size_t n, float max, float top_p,
                             bool sorted)
{
    double total = 0.0;
    for (size_t i = 0; i < n; i++) {
        c[i].weight = expf(c[i].logit - max);
        total += c[i].weight;
    }
    double target = (double)top_p * total;
    size_t m = sorted || n < TOP_P_FIRST_PREFIX ? n : TOP_P_FIRST_PREFIX;
    for (;;) {
        if (!sorted)
            select_top(c, n, m);
        double sum = 0.0;
        for (size_t i = 0; i < m; i++) {
            sum += c[i].weight;
            if (sum >= target)
                return i + 1;
        }
        if (m == n) // rounding left the target out of reach: keep everything
            return n;
        m = m > n / 4 ? n : m * 4;
    }
}

// Keeps, in order, the candidates whose probability is at least min_p times the top one's,
// that is exp(logit - max) >= min_p. Returns how many remain (the top one always does).
static size_t truncate_min_p(sampler_candidate *c, size_t n, float max, float min_p)
{
    size_t kept = 0;
    for (size_t i = 0; i < n; i++)
        if (expf(c[i].logit - max) >= min_p)
            c[kept++] = c[i];
    return kept;
}

// Draws one of c[0..n) with probability proportional to exp((logit - max) / temperature).
static int32_t draw(sampler *s, sampler_candidate *c, size_t n, float max)
{
    float temperature = s->params.temperature;
    double total = 0.0;
    for (size_t i = 0; i < n; i++) {
        c[i].weight = expf((c[i].logit - max) / temperature);
        total += c[i].weight;
    }
    double target = sampler_rng_uniform(s->rng) * total;
    double sum = 0.0;
    size_t last = 0;
    for (size_t i = 0; i < n; i++) {
        if (c[i].weight <= 0.0f)
            continue;
        sum += c[i].weight;
        if (target < sum)
            return c[i].id;
        last = i;
    }
    return c[last].id; // rounding put target at the very end: the last possible candidate
}

int32_t sampler_sample(sampler *s, const float *logits)
{
    const sampler_params *p = &s->params;
    sampler_apply(s, logits, s->processed);
    s->have_processed = true;
    s->n_cand = 0;
    if (p->temperature <= 0.0f)
        return argmax(s->processed, (size_t)p->n_vocab);

    float max;
    size_t n = fill_candidates(s, &max);
    if (n == 0)
        return GARLIC_EINVAL;
    bool sorted = false;
    if (p->top_k > 0 && (size_t)p->top_k < n) {
        select_top(s->cand, n, (size_t)p->top_k);
        n = (size_t)p->top_k;
        sorted = true;
    }
    if (p->top_p < 1.0f)
        n = truncate_top_p(s->cand, n, max, p->top_p, sorted);
    if (p->min_p > 0.0f)
        n = truncate_min_p(s->cand, n, max, p->min_p);
    s->n_cand = n;
    return draw(s, s->cand, n, max);
}

size_t sampler_last_candidates(const sampler *s, int32_t *ids, size_t cap)
{
    for (size_t i = 0; i < s->n_cand && i < cap; i++)
        ids[i] = s->cand[i].id;
    return s->n_cand;
}
