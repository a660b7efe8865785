// SPDX-License-Identifier: MIT
// The sampling chain after bias and penalties: greedy argmax, or candidates -> top-k ->
// top-p -> min-p -> a temperature softmax -> one draw from the PRNG. Nothing sorts the whole
// vocabulary: top-k is one pass against a heap of k (O(n log k)), and top-p without top-k
// tries the best 64 and otherwise runs a quickselect on probability mass (expected O(n)).
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

// Makes h[0..n) a heap whose root is its worst-ranked element.
static void heapify(sampler_candidate *h, size_t n)
{
    for (size_t i = n / 2; i-- > 0;)
        sift_down(h, n, i);
}

// Sorts the heap h[0..n) best first: the worst goes last, then the next worst, and so on.
static void heap_sort(sampler_candidate *h, size_t n)
{
    for (size_t end = n; end > 1; end--) {
        cand_swap(&h[0], &h[end - 1]);
        sift_down(h, end - 1, 0);
    }
}

// Moves the m (1 <= m <= n) best-ranked of c[0..n) to c[0..m), best first; c[m..n) keeps the
// rest in no particular order. O(n log m): a heap of the best m seen so far, then heapsort.
static void select_top(sampler_candidate *c, size_t n, size_t m)
{
    heapify(c, m);
    for (size_t i = m; i < n; i++) {
        if (cand_before(&c[i], &c[0])) {
            cand_swap(&c[0], &c[i]);
            sift_down(c, m, 0);
        }
    }
    heap_sort(c, m);
}

// The lowest id with the highest value in v[0..n), or GARLIC_EINVAL if all are -inf.
static int32_t argmax(const float *v, size_t n)
{
    size_t best = 0;
    float top = v[0];
    for (size_t i = 1; i < n; i++) {
        if (v[i] > top) {
            top = v[i];
            best = i;
        }
    }
    return top == -INFINITY ? GARLIC_EINVAL : (int32_t)best;
}

// A processed logit as a candidate's: +inf becomes the largest float, so that softmax
// arithmetic stays finite.
static inline float candidate_logit(float v) { return v > FLT_MAX ? FLT_MAX : v; }

// Fills s->cand with every token that is not banned, in id order. Returns how many there are
// and their top logit.
static size_t collect_all(sampler *s, float *max)
{
    size_t n = 0, n_vocab = (size_t)s->params.n_vocab;
    float top = -INFINITY;
    for (size_t i = 0; i < n_vocab; i++) {
        float v = s->processed[i];
        if (v == -INFINITY)
            continue;
        v = candidate_logit(v);
        top = v > top ? v : top;
        s->cand[n++] = (sampler_candidate){.id = (int32_t)i, .logit = v, .weight = 0.0f};
    }
    *max = top;
    return n;
}

// Fills s->cand with the k best tokens that are not banned (fewer if fewer remain), best
// first, straight from the processed logits: one pass against a heap of k. Returns how many.
static size_t collect_top_k(sampler *s, size_t k)
{
    sampler_candidate *c = s->cand;
    size_t n = 0, n_vocab = (size_t)s->params.n_vocab;
    for (size_t i = 0; i < n_vocab; i++) {
        float v = s->processed[i];
        if (v == -INFINITY)
            continue;
        sampler_candidate next = {.id = (int32_t)i, .logit = candidate_logit(v)};
        if (n < k) {
            c[n++] = next;
            if (n == k)
                heapify(c, k);
        } else if (cand_before(&next, &c[0])) {
            c[0] = next;
            sift_down(c, k, 0);
        }
    }
    if (n < k)
        heapify(c, n);
    heap_sort(c, n);
    return n;
}

// Swaps into c[lo] the median of c[lo], c[mid] and c[hi - 1] by rank (a quickselect pivot).
static void median_to_front(sampler_candidate *c, size_t lo, size_t hi)
{
    size_t mid = lo + (hi - lo) / 2, last = hi - 1;
    if (cand_before(&c[mid], &c[lo]))
        cand_swap(&c[mid], &c[lo]);
    if (cand_before(&c[last], &c[mid])) {
        cand_swap(&c[last], &c[mid]);
        if (cand_before(&c[mid], &c[lo]))
            cand_swap(&c[mid], &c[lo]);
    }
    cand_swap(&c[lo], &c[mid]);
}

// Reorders c[lo..hi) around the pivot at c[lo]: better-ranked ones first. Returns where the
// pivot ends up.
static size_t partition(sampler_candidate *c, size_t lo, size_t hi)
{
    size_t store = lo + 1;
    for (size_t i = lo + 1; i < hi; i++)
        if (cand_before(&c[i], &c[lo]))
            cand_swap(&c[i], &c[store++]);
    cand_swap(&c[lo], &c[store - 1]);
    return store - 1;
}

// Moves to the front of c[0..n) the smallest best-ranked set whose weights sum to at least
// target (> 0), in no particular order, and returns its size. A quickselect on probability
// mass: expected O(n) whatever the size of the set.
static size_t select_mass(sampler_candidate *c, size_t n, double target)
{
    size_t lo = 0, hi = n; // the answer is in (lo, hi]; c[0..lo) holds target - need
    double need = target;
    while (hi - lo > 1) {
        median_to_front(c, lo, hi);
        size_t p = partition(c, lo, hi);
        double above = 0.0;
        for (size_t i = lo; i < p; i++)
            above += c[i].weight;
        if (above >= need) {
            hi = p;
            continue;
        }
        need -= above + c[p].weight;
        if (need <= 0.0)
            return p + 1;
        lo = p + 1;
    }
    return hi;
}

// Keeps the smallest best-ranked set of c[0..n) whose probability (softmax at temperature 1)
// reaches top_p, including the candidate that crosses it; returns its size. When c is sorted
// that is a prefix scan. Otherwise the best 64 are selected first (enough for most real
// distributions, and they stay best-first), then a quickselect on mass finds larger sets.
static size_t truncate_top_p(sampler_candidate *c, size_t n, float max, float top_p, bool sorted)
{
    double total = 0.0;
    for (size_t i = 0; i < n; i++) {
        c[i].weight = expf(c[i].logit - max);
        total += c[i].weight;
    }
    double target = (double)top_p * total;
    size_t m = sorted || n < TOP_P_FIRST_PREFIX ? n : TOP_P_FIRST_PREFIX;
    if (!sorted)
        select_top(c, n, m);
    double sum = 0.0;
    for (size_t i = 0; i < m; i++) {
        sum += c[i].weight;
        if (sum >= target)
            return i + 1;
    }
    return m == n ? n : select_mass(c, n, target);
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

    float max = -INFINITY;
    bool sorted = p->top_k > 0 && p->top_k < p->n_vocab;
    size_t n = sorted ? collect_top_k(s, (size_t)p->top_k) : collect_all(s, &max);
    if (n == 0)
        return GARLIC_EINVAL;
    if (sorted)
        max = s->cand[0].logit;
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
