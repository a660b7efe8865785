// SPDX-License-Identifier: MIT
// Sampler tests: parameter validation, greedy argmax and its tie rule, seed determinism, the
// temperature distribution (a chi-square bound over many seeded draws), the exact candidate
// sets of top-k, top-p and min-p, the penalty and bias formulas, logprobs against a double
// reference, no allocation per sample, allocation failures, the end-token set and the stop
// matcher (pieces, prefixes held and released, overlaps, UTF-8, and a randomized reference).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "sampler/sampler.h"
#include "util.h"

// A sampler for params that must be valid.
static sampler *new_ok(const sampler_params *p)
{
    garlic_error err = {0};
    sampler *s = sampler_new(p, &err);
    if (!s)
        fail_msg("sampler_new: %s", err.message);
    return s;
}

// Params with every truncation off: plain softmax at temperature t.
static sampler_params plain_params(int32_t n_vocab, float t, uint64_t seed)
{
    sampler_params p = sampler_params_default(n_vocab);
    p.temperature = t;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.seed = seed;
    return p;
}

static void random_logits(test_rng *r, float *v, size_t n, float scale)
{
    for (size_t i = 0; i < n; i++)
        v[i] = scale * test_rng_normal(r);
}

// The lowest id with the highest logit: the rule greedy decoding must follow.
static int32_t reference_argmax(const float *v, size_t n)
{
    size_t best = 0;
    for (size_t i = 1; i < n; i++)
        if (v[i] > v[best])
            best = i;
    return (int32_t)best;
}

// ---- parameters ----

// Expects sampler_new to refuse p with a message that mentions field.
static void expect_invalid(const sampler_params *p, const char *field)
{
    garlic_error err = {0};
    sampler *s = sampler_new(p, &err);
    if (s)
        fail_msg("params with a bad %s were accepted", field);
    assert_int_equal(err.code, GARLIC_EINVAL);
    if (!strstr(err.message, field))
        fail_msg("message for a bad %s does not name it: %s", field, err.message);
}

static void test_params(void **state)
{
    (void)state;
    sampler_params d = sampler_params_default(100);
    assert_int_equal(d.n_vocab, 100);
    assert_true(d.temperature == 0.8f && d.top_k == 40 && d.top_p == 0.95f);
    assert_true(d.min_p == 0.05f && d.repeat_penalty == 1.0f && d.repeat_last_n == 64);
    assert_true(d.presence_penalty == 0.0f && d.frequency_penalty == 0.0f);
    assert_true(d.n_logit_bias == 0 && d.seed == SAMPLER_SEED_RANDOM);
    garlic_error err = {0};
    assert_int_equal(sampler_params_validate(&d, &err), GARLIC_OK);

    sampler_params p;
    p = d, p.n_vocab = 0, expect_invalid(&p, "n_vocab");
    p = d, p.temperature = NAN, expect_invalid(&p, "temperature");
    p = d, p.temperature = INFINITY, expect_invalid(&p, "temperature");
    p = d, p.top_k = -1, expect_invalid(&p, "top_k");
    p = d, p.top_p = 0.0f, expect_invalid(&p, "top_p");
    p = d, p.top_p = 1.5f, expect_invalid(&p, "top_p");
    p = d, p.top_p = NAN, expect_invalid(&p, "top_p");
    p = d, p.min_p = -0.1f, expect_invalid(&p, "min_p");
    p = d, p.min_p = 1.1f, expect_invalid(&p, "min_p");
    p = d, p.min_p = NAN, expect_invalid(&p, "min_p");
    p = d, p.repeat_penalty = 0.0f, expect_invalid(&p, "repeat_penalty");
    p = d, p.repeat_penalty = NAN, expect_invalid(&p, "repeat_penalty");
    p = d, p.repeat_last_n = -1, expect_invalid(&p, "repeat_last_n");
    p = d, p.repeat_last_n = SAMPLER_MAX_REPEAT_LAST_N + 1, expect_invalid(&p, "repeat_last_n");
    p = d, p.presence_penalty = NAN, expect_invalid(&p, "presence_penalty");
    p = d, p.frequency_penalty = -INFINITY, expect_invalid(&p, "frequency_penalty");
    p = d, p.n_logit_bias = 1, expect_invalid(&p, "logit_bias");
    sampler_bias bad_id[] = {{.token = 3, .bias = 1.0f}, {.token = 100, .bias = 1.0f}};
    p = d, p.logit_bias = bad_id, p.n_logit_bias = 2, expect_invalid(&p, "logit_bias token 100");
    sampler_bias neg_id[] = {{.token = -1, .bias = 1.0f}};
    p = d, p.logit_bias = neg_id, p.n_logit_bias = 1, expect_invalid(&p, "logit_bias token -1");
    sampler_bias nan_bias[] = {{.token = 5, .bias = NAN}};
    p = d, p.logit_bias = nan_bias, p.n_logit_bias = 1, expect_invalid(&p, "logit_bias");
    sampler_bias inf_bias[] = {{.token = 5, .bias = INFINITY}};
    p = d, p.logit_bias = inf_bias, p.n_logit_bias = 1, expect_invalid(&p, "logit_bias");
    assert_null(sampler_new(NULL, &err));
    assert_int_equal(err.code, GARLIC_EINVAL);

    // Edges that are valid: greedy by a negative temperature, min_p 1, top_p 1, a ban.
    sampler_bias ban[] = {{.token = 99, .bias = -INFINITY}};
    p = d, p.temperature = -1.0f, p.min_p = 1.0f, p.top_p = 1.0f, p.repeat_last_n = 0;
    p.logit_bias = ban, p.n_logit_bias = 1;
    sampler_free(new_ok(&p));
    sampler_free(NULL);
}

// ---- greedy ----

static void test_greedy(void **state)
{
    (void)state;
    enum { N = 1000 };
    static float logits[N];
    test_rng r;
    test_rng_seed(&r, 1);
    sampler_params p = sampler_params_default(N);
    p.temperature = 0.0f;
    sampler *s = new_ok(&p);
    for (int round = 0; round < 50; round++) {
        random_logits(&r, logits, N, 3.0f);
        if (round % 2) { // plant ties for the maximum, the lowest must win
            float top = logits[reference_argmax(logits, N)] + 1.0f;
            logits[700] = logits[123] = logits[900] = top;
        }
        int32_t want = reference_argmax(logits, N);
        assert_int_equal(sampler_sample(s, logits), want);
        if (round % 2)
            assert_int_equal(want, 123);
    }
    // Ties everywhere: id 0. NaN counts as -inf; all -inf is an error.
    for (int i = 0; i < N; i++)
        logits[i] = 0.5f;
    assert_int_equal(sampler_sample(s, logits), 0);
    logits[0] = NAN;
    assert_int_equal(sampler_sample(s, logits), 1);
    for (int i = 0; i < N; i++)
        logits[i] = -INFINITY;
    assert_int_equal(sampler_sample(s, logits), GARLIC_EINVAL);
    logits[N - 1] = INFINITY;
    assert_int_equal(sampler_sample(s, logits), N - 1);
    sampler_free(s);

    // A negative temperature is greedy too, whatever the other settings.
    p = sampler_params_default(N);
    p.temperature = -0.5f;
    p.top_k = 5;
    s = new_ok(&p);
    random_logits(&r, logits, N, 1.0f);
    assert_int_equal(sampler_sample(s, logits), reference_argmax(logits, N));
    sampler_free(s);
}

// top_k = 1 at any temperature is greedy, ties included.
static void test_top_k_one_is_greedy(void **state)
{
    (void)state;
    enum { N = 512 };
    static float logits[N];
    test_rng r;
    test_rng_seed(&r, 2);
    sampler_params p = sampler_params_default(N);
    p.top_k = 1;
    p.temperature = 1.5f;
    p.seed = 77;
    sampler *s = new_ok(&p);
    for (int round = 0; round < 100; round++) {
        random_logits(&r, logits, N, 1.0f);
        if (round % 3 == 0)
            logits[400] = logits[17] = logits[reference_argmax(logits, N)];
        assert_int_equal(sampler_sample(s, logits), reference_argmax(logits, N));
    }
    sampler_free(s);
}

// ---- seeds ----

// Draws n tokens from s over a fixed sequence of random logits rows.
static void draw_sequence(sampler *s, int32_t n_vocab, int32_t *out, int n)
{
    test_rng r;
    test_rng_seed(&r, 99);
    float *logits = malloc((size_t)n_vocab * sizeof *logits);
    for (int i = 0; i < n; i++) {
        random_logits(&r, logits, (size_t)n_vocab, 1.0f);
        out[i] = sampler_sample(s, logits);
        assert_true(out[i] >= 0 && out[i] < n_vocab);
        sampler_accept(s, out[i]);
    }
    free(logits);
}

static void test_seed(void **state)
{
    (void)state;
    enum { V = 300, N = 200 };
    int32_t a[N], b[N], c[N];
    sampler_params p = sampler_params_default(V);
    p.seed = 1234;
    p.repeat_penalty = 1.1f;
    p.top_k = 0; // exercises top-p's growing selection
    sampler *s1 = new_ok(&p), *s2 = new_ok(&p);
    draw_sequence(s1, V, a, N);
    draw_sequence(s2, V, b, N);
    assert_memory_equal(a, b, sizeof a);
    sampler_reset(s1); // a reset rewinds history and PRNG
    draw_sequence(s1, V, c, N);
    assert_memory_equal(a, c, sizeof a);
    assert_int_equal(sampler_seed(s1), 1234);
    sampler_free(s2);

    p.seed = 1235;
    s2 = new_ok(&p);
    draw_sequence(s2, V, b, N);
    int same = 0;
    for (int i = 0; i < N; i++)
        same += a[i] == b[i];
    if (same > N / 2)
        fail_msg("seeds 1234 and 1235 agree on %d of %d tokens", same, N);
    sampler_free(s2);

    // A random seed is reported, and reusing it reproduces the sequence.
    p.seed = SAMPLER_SEED_RANDOM;
    s2 = new_ok(&p);
    draw_sequence(s2, V, b, N);
    p.seed = sampler_seed(s2);
    sampler *s3 = new_ok(&p);
    draw_sequence(s3, V, c, N);
    assert_memory_equal(b, c, sizeof b);
    sampler_free(s1);
    sampler_free(s2);
    sampler_free(s3);
}

// ---- distributions ----

// Pearson's chi-square statistic of counts[0..n) against probabilities prob[0..n).
static double chi_square(const long *counts, const double *prob, int n, long draws)
{
    double x2 = 0.0;
    for (int i = 0; i < n; i++) {
        double expected = prob[i] * (double)draws;
        double d = (double)counts[i] - expected;
        x2 += d * d / expected;
    }
    return x2;
}

static void check_temperature(float t)
{
    enum { V = 6 };
    const long draws = 200000;
    const float logits[V] = {1.0f, 0.5f, 0.0f, -0.5f, 2.0f, 1.0f};
    double prob[V], z = 0.0;
    for (int i = 0; i < V; i++)
        z += prob[i] = exp((double)logits[i] / t);
    for (int i = 0; i < V; i++)
        prob[i] /= z;
    sampler_params p = plain_params(V, t, 42);
    sampler *s = new_ok(&p);
    long counts[V] = {0};
    for (long i = 0; i < draws; i++) {
        int32_t tok = sampler_sample(s, logits);
        assert_true(tok >= 0 && tok < V);
        counts[tok]++;
    }
    // 5 degrees of freedom: P(chi2 > 30) is about 1.5e-5, and the seed is fixed.
    double x2 = chi_square(counts, prob, V, draws);
    print_message("  temperature %.2f: chi-square %.2f (5 dof)\n", (double)t, x2);
    assert_true(x2 < 30.0);
    sampler_free(s);
}

static void test_temperature_distribution(void **state)
{
    (void)state;
    check_temperature(1.0f);
    check_temperature(0.5f);
    check_temperature(2.0f);
}

// Draws from logits n times; allowed[i] says whether token i may come out; every allowed
// token must come out at least once.
static void check_draws(sampler *s, const float *logits, const bool *allowed, int v, int n)
{
    int seen[64] = {0};
    assert_true(v <= 64);
    for (int i = 0; i < n; i++) {
        int32_t tok = sampler_sample(s, logits);
        assert_true(tok >= 0 && tok < v);
        if (!allowed[tok])
            fail_msg("token %d was drawn but lies outside the kept set", (int)tok);
        seen[tok]++;
    }
    for (int i = 0; i < v; i++)
        if (allowed[i] && !seen[i])
            fail_msg("token %d is in the kept set but was never drawn in %d draws", i, n);
}

static void test_top_p_min_p_sets(void **state)
{
    (void)state;
    enum { V = 5 };
    // Probabilities 0.4, 0.3, 0.2, 0.06, 0.04 spread over ids out of order.
    const int order[V] = {3, 0, 4, 1, 2};
    const double prob[V] = {0.4, 0.3, 0.2, 0.06, 0.04};
    float logits[V];
    for (int i = 0; i < V; i++)
        logits[order[i]] = (float)log(prob[i]);

    sampler_params p = plain_params(V, 1.0f, 5);
    p.top_p = 0.85f; // 0.4 + 0.3 < 0.85 <= 0.4 + 0.3 + 0.2: the top three
    sampler *s = new_ok(&p);
    bool top3[V] = {[3] = true, [0] = true, [4] = true};
    check_draws(s, logits, top3, V, 3000);
    int32_t ids[V];
    assert_int_equal(sampler_last_candidates(s, ids, V), 3);
    assert_int_equal(ids[0], 3);
    assert_int_equal(ids[1], 0);
    assert_int_equal(ids[2], 4);
    sampler_free(s);

    p = plain_params(V, 1.0f, 6);
    p.top_p = 0.35f; // the top one alone already holds 0.4
    s = new_ok(&p);
    bool top1[V] = {[3] = true};
    check_draws(s, logits, top1, V, 200);
    sampler_free(s);

    p = plain_params(V, 1.0f, 7);
    p.min_p = 0.12f; // keeps p >= 0.048: all but 0.04
    s = new_ok(&p);
    bool above[V] = {[3] = true, [0] = true, [4] = true, [1] = true};
    check_draws(s, logits, above, V, 5000);
    sampler_free(s);

    p = plain_params(V, 2.0f, 8);
    p.min_p = 0.6f; // keeps p >= 0.24 at temperature 1, whatever the temperature
    s = new_ok(&p);
    bool two[V] = {[3] = true, [0] = true};
    check_draws(s, logits, two, V, 1000);
    sampler_free(s);

    // top-k 4, then top-p over the four renormalized (0.4/0.96 + 0.3/0.96 = 0.729 < 0.75).
    p = plain_params(V, 1.0f, 9);
    p.top_k = 4;
    p.top_p = 0.75f;
    s = new_ok(&p);
    check_draws(s, logits, top3, V, 3000);
    sampler_free(s);
}

typedef struct ranked {
    float logit;
    int32_t id;
} ranked;

static int ranked_compare(const void *a, const void *b)
{
    const ranked *x = a, *y = b;
    if (x->logit != y->logit)
        return x->logit > y->logit ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

// Sorts logits best-first with ids (lowest id first on ties) into r.
static void rank_all(const float *logits, int n, ranked *r)
{
    for (int i = 0; i < n; i++)
        r[i] = (ranked){.logit = logits[i], .id = i};
    qsort(r, (size_t)n, sizeof *r, ranked_compare);
}

static int id_compare(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

enum { LARGE_V = 5000 };

// Runs one sample with p over logits (LARGE_V entries) and returns the candidates it kept
// in ids, in id order.
static size_t kept_ids(const sampler_params *p, const float *logits, int32_t *ids)
{
    sampler *s = new_ok(p);
    sampler_sample(s, logits);
    size_t n = sampler_last_candidates(s, ids, LARGE_V);
    sampler_free(s);
    qsort(ids, n, sizeof *ids, id_compare);
    return n;
}

// top-k and top-p keep exactly the best-ranked sets on a 5000-token vocabulary; large top-p
// sets need the quickselect on mass.
static void test_large_top_k_top_p(void **state)
{
    (void)state;
    static float logits[LARGE_V];
    static ranked r[LARGE_V];
    static int32_t ids[LARGE_V], want_ids[LARGE_V];
    test_rng rng;
    test_rng_seed(&rng, 3);
    random_logits(&rng, logits, LARGE_V, 2.0f);
    logits[10] = logits[20] = logits[30] = 3.0f; // ties inside the kept sets
    rank_all(logits, LARGE_V, r);

    sampler_params p = plain_params(LARGE_V, 1.0f, 1);
    p.top_k = 40; // best first, exactly the 40 best
    sampler *s = new_ok(&p);
    sampler_sample(s, logits);
    assert_int_equal(sampler_last_candidates(s, ids, LARGE_V), 40);
    for (int i = 0; i < 40; i++)
        assert_int_equal(ids[i], r[i].id);
    sampler_free(s);

    const float top_ps[] = {0.2f, 0.3f, 0.5f, 0.9f, 0.99f};
    for (size_t t = 0; t < sizeof top_ps / sizeof top_ps[0]; t++) {
        double z = 0.0, sum = 0.0;
        for (int i = 0; i < LARGE_V; i++)
            z += exp((double)r[i].logit - (double)r[0].logit);
        size_t want = 0;
        while (sum < (double)top_ps[t] * z)
            sum += exp((double)r[want++].logit - (double)r[0].logit);
        for (size_t i = 0; i < want; i++)
            want_ids[i] = r[i].id;
        qsort(want_ids, want, sizeof *want_ids, id_compare);
        p = plain_params(LARGE_V, 1.0f, 1);
        p.top_p = top_ps[t];
        size_t got = kept_ids(&p, logits, ids);
        print_message("  top_p %.2f keeps %zu of %d\n", (double)top_ps[t], got, LARGE_V);
        assert_int_equal(got, want);
        assert_memory_equal(ids, want_ids, want * sizeof *ids);
    }
}

// Ties broken by id in the quickselect, and min-p's threshold, on a 5000-token vocabulary.
static void test_large_ties_min_p(void **state)
{
    (void)state;
    static float logits[LARGE_V];
    static int32_t ids[LARGE_V];
    // All logits equal: weights of exactly 1 sum without rounding, so top-p 0.4999 keeps
    // exactly ids 0..2499.
    for (int i = 0; i < LARGE_V; i++)
        logits[i] = 0.25f;
    sampler_params p = plain_params(LARGE_V, 1.0f, 1);
    p.top_p = 0.4999f;
    assert_int_equal(kept_ids(&p, logits, ids), 2500);
    for (int i = 0; i < 2500; i++)
        assert_int_equal(ids[i], i);

    // min-p alone: every token with logit >= max + log(min_p).
    test_rng rng;
    test_rng_seed(&rng, 4);
    random_logits(&rng, logits, LARGE_V, 2.0f);
    p = plain_params(LARGE_V, 1.0f, 1);
    p.min_p = 0.05f;
    float top = logits[reference_argmax(logits, LARGE_V)];
    size_t got = kept_ids(&p, logits, ids), k = 0;
    for (int i = 0; i < LARGE_V; i++) {
        if (expf(logits[i] - top) >= 0.05f) {
            assert_true(k < got);
            assert_int_equal(ids[k++], i);
        }
    }
    assert_int_equal(got, k);
}

// top_k at or above the vocabulary size changes nothing; +inf logits take all the mass.
static void test_edges(void **state)
{
    (void)state;
    enum { V = 200, N = 100 };
    int32_t a[N], b[N];
    sampler_params p = plain_params(V, 0.9f, 21);
    sampler *s = new_ok(&p);
    draw_sequence(s, V, a, N);
    sampler_free(s);
    p.top_k = V;
    s = new_ok(&p);
    draw_sequence(s, V, b, N);
    assert_memory_equal(a, b, sizeof a);
    sampler_free(s);

    float logits[V];
    for (int i = 0; i < V; i++)
        logits[i] = (float)(i % 7);
    logits[50] = logits[150] = INFINITY;
    bool allowed[V] = {[50] = true, [150] = true};
    int hits[2] = {0};
    p = sampler_params_default(V);
    p.seed = 3;
    s = new_ok(&p);
    for (int i = 0; i < 400; i++) {
        int32_t tok = sampler_sample(s, logits);
        assert_true(tok >= 0 && tok < V && allowed[tok]);
        hits[tok == 150]++;
    }
    assert_true(hits[0] > 100 && hits[1] > 100);
    sampler_free(s);
}

// ---- penalties and bias ----

static void test_penalties(void **state)
{
    (void)state;
    enum { V = 8 };
    const float logits[V] = {1.0f, 2.0f, -1.0f, 3.0f, 0.0f, -2.0f, 0.5f, 4.0f};
    float out[V];
    sampler_params p = sampler_params_default(V);
    p.repeat_penalty = 1.5f;
    p.presence_penalty = 0.5f;
    p.frequency_penalty = 0.25f;
    p.repeat_last_n = 4;
    sampler *s = new_ok(&p);
    const int32_t history[] = {7, 1, 1, 2, 1, -5, 99, 4}; // -5 and 99 are ignored
    sampler_accept_many(s, history, 8);
    // The window holds the last 4 valid tokens: 1, 2, 1, 4 (7 and the first 1 left it).
    sampler_apply(s, logits, out);
    float want[V];
    memcpy(want, logits, sizeof want);
    want[1] = 2.0f / 1.5f - 0.5f - 0.25f * 2;
    want[2] = -1.0f * 1.5f - 0.5f - 0.25f * 1;
    want[4] = 0.0f * 1.5f - 0.5f - 0.25f * 1;
    for (int i = 0; i < V; i++)
        assert_float_equal(out[i], want[i], 1e-6);

    sampler_accept(s, 7); // slides 1 out of the window: counts 2:1, 1:1, 4:1, 7:1
    sampler_apply(s, logits, out);
    assert_float_equal(out[1], 2.0f / 1.5f - 0.75f, 1e-6);
    assert_float_equal(out[7], 4.0f / 1.5f - 0.75f, 1e-6);
    assert_float_equal(out[0], 1.0f, 0);

    // In place, and greedy sees the penalized values: 7 (4.0) drops below 3 (3.0).
    float inplace[V];
    memcpy(inplace, logits, sizeof inplace);
    sampler_apply(s, inplace, inplace);
    assert_memory_equal(inplace, out, sizeof out);

    sampler_reset(s); // forgets the history
    sampler_apply(s, logits, out);
    assert_memory_equal(out, logits, sizeof out);
    sampler_free(s);

    p.temperature = 0.0f;
    p.repeat_penalty = 2.0f;
    p.presence_penalty = 0.0f;
    p.frequency_penalty = 0.0f;
    s = new_ok(&p);
    assert_int_equal(sampler_sample(s, logits), 7);
    sampler_accept(s, 7);
    assert_int_equal(sampler_sample(s, logits), 3);
    sampler_free(s);
}

static void test_logit_bias(void **state)
{
    (void)state;
    enum { V = 6 };
    const float logits[V] = {0.0f, 1.0f, 2.0f, 0.5f, -1.0f, 1.9f};
    sampler_bias bias[] = {
        {.token = 2, .bias = -INFINITY}, {.token = 4, .bias = 1.5f}, {.token = 4, .bias = 0.25f}};
    sampler_params p = sampler_params_default(V);
    p.temperature = 0.0f;
    p.logit_bias = bias;
    p.n_logit_bias = 3;
    sampler *s = new_ok(&p);
    bias[0].bias = 100.0f; // the sampler keeps its own copy
    float out[V];
    sampler_apply(s, logits, out);
    assert_true(out[2] == -INFINITY);
    assert_float_equal(out[4], 0.75f, 1e-6); // duplicates add up
    assert_int_equal(sampler_sample(s, logits), 5);
    sampler_free(s);

    // A banned token is never drawn, even when it dominates.
    bias[0].bias = -INFINITY;
    p = plain_params(V, 1.0f, 11);
    p.logit_bias = bias;
    p.n_logit_bias = 1;
    s = new_ok(&p);
    float loud[V] = {0.0f, 0.0f, 30.0f, 0.0f, 0.0f, 0.0f};
    bool allowed[V] = {true, true, false, true, true, true};
    check_draws(s, loud, allowed, V, 2000);
    // Everything banned: no token.
    float none[V] = {-INFINITY, -INFINITY, 5.0f, -INFINITY, -INFINITY, NAN};
    assert_int_equal(sampler_sample(s, none), GARLIC_EINVAL);
    sampler_free(s);
}

// ---- logprobs ----

static void test_logprobs(void **state)
{
    (void)state;
    enum { V = 50 };
    float logits[V];
    test_rng r;
    test_rng_seed(&r, 4);
    random_logits(&r, logits, V, 2.0f);
    logits[7] = logits[31] = 6.0f; // a tie at the top: 7 first
    logits[9] = -INFINITY;
    double z = 0.0;
    for (int i = 0; i < V; i++)
        z += exp((double)logits[i]);
    sampler_logprobs lp;
    garlic_error err = {0};
    assert_int_equal(sampler_logprobs_compute(logits, V, 12, 5, &lp, &err), GARLIC_OK);
    assert_int_equal(lp.chosen.token, 12);
    assert_float_equal(lp.chosen.logprob, (double)logits[12] - log(z), 1e-5);
    ranked rk[V];
    rank_all(logits, V, rk);
    assert_int_equal(lp.n_top, 5);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(lp.top[i].token, rk[i].id);
        assert_float_equal(lp.top[i].logprob, (double)rk[i].logit - log(z), 1e-5);
    }
    assert_int_equal(lp.top[0].token, 7);
    assert_int_equal(lp.top[1].token, 31);
    assert_int_equal(sampler_logprobs_compute(logits, V, 9, 0, &lp, &err), GARLIC_OK);
    assert_true(lp.chosen.logprob == -INFINITY && lp.n_top == 0);

    assert_int_equal(sampler_logprobs_compute(logits, V, V, 1, &lp, &err), GARLIC_EINVAL);
    assert_int_equal(sampler_logprobs_compute(logits, V, 0, 21, &lp, &err), GARLIC_EINVAL);
    assert_non_null(strstr(err.message, "top_logprobs"));

    // From a sampler: after bias and penalties, before temperature.
    sampler_bias bias[] = {{.token = 7, .bias = -INFINITY}};
    sampler_params p = plain_params(V, 0.3f, 3);
    p.logit_bias = bias;
    p.n_logit_bias = 1;
    sampler *s = new_ok(&p);
    assert_int_equal(sampler_logprobs_last(s, 0, 1, &lp, &err), GARLIC_EINVAL);
    int32_t tok = sampler_sample(s, logits);
    assert_int_equal(sampler_logprobs_last(s, tok, 3, &lp, &err), GARLIC_OK);
    z -= exp((double)logits[7]);
    assert_float_equal(lp.chosen.logprob, (double)logits[tok] - log(z), 1e-5);
    assert_int_equal(lp.top[0].token, 31);
    assert_int_equal(lp.top[1].token, rk[2].id);
    sampler_free(s);

    // Every token banned: all -inf, no NaN.
    for (int i = 0; i < V; i++)
        logits[i] = -INFINITY;
    assert_int_equal(sampler_logprobs_compute(logits, V, 3, 2, &lp, &err), GARLIC_OK);
    assert_true(lp.chosen.logprob == -INFINITY && lp.top[1].logprob == -INFINITY);
    assert_int_equal(lp.top[0].token, 0);
}

// ---- memory ----

// Sampling, accepting, logprobs and stop matching allocate nothing once built.
static void test_no_allocation(void **state)
{
    (void)state;
    enum { V = 4096 };
    static float logits[V];
    test_rng r;
    test_rng_seed(&r, 5);
    sampler_bias bias[] = {{.token = 5, .bias = -INFINITY}};
    sampler_params configs[4];
    configs[0] = sampler_params_default(V);
    configs[1] = plain_params(V, 0.7f, 1);
    configs[1].top_p = 0.9f;
    configs[2] = plain_params(V, 0.0f, 1);
    configs[3] = sampler_params_default(V);
    configs[3].repeat_penalty = 1.2f;
    configs[3].presence_penalty = 0.1f;
    configs[3].logit_bias = bias;
    configs[3].n_logit_bias = 1;
    const char *stops[] = {"STOP", "\n\n"};
    garlic_error err = {0};
    sampler_stop *m = sampler_stop_new(stops, 2, &err);
    assert_non_null(m);
    for (int c = 0; c < 4; c++) {
        sampler *s = new_ok(&configs[c]);
        garlic_alloc_fail_after(0);
        for (int i = 0; i < 100; i++) {
            random_logits(&r, logits, V, 3.0f);
            int32_t tok = sampler_sample(s, logits);
            assert_true(tok >= 0 && tok < V);
            sampler_logprobs lp;
            assert_int_equal(sampler_logprobs_last(s, tok, 20, &lp, &err), GARLIC_OK);
            sampler_accept(s, tok);
            sampler_stop_result out;
            assert_int_equal(sampler_stop_feed(m, "some text S", 11, &out, &err), GARLIC_OK);
        }
        sampler_reset(s);
        sampler_stop_reset(m);
        garlic_alloc_fail_reset();
        sampler_free(s);
    }
    sampler_stop_free(m);
}

// Every allocation failure while building gives NULL and GARLIC_ENOMEM, and leaks nothing.
static void test_alloc_failures(void **state)
{
    (void)state;
    sampler_bias bias[] = {{.token = 1, .bias = 2.0f}};
    sampler_params p = sampler_params_default(1000);
    p.repeat_penalty = 1.1f;
    p.logit_bias = bias;
    p.n_logit_bias = 1;
    for (long n = 0;; n++) {
        garlic_error err = {0};
        garlic_alloc_fail_after(n);
        sampler *s = sampler_new(&p, &err);
        garlic_alloc_fail_reset();
        if (s) {
            assert_true(n >= 7);
            sampler_free(s);
            break;
        }
        assert_int_equal(err.code, GARLIC_ENOMEM);
    }
    const char *stops[] = {"x"};
    for (long n = 0;; n++) {
        garlic_error err = {0};
        garlic_alloc_fail_after(n);
        sampler_stop *m = sampler_stop_new(stops, 1, &err);
        garlic_alloc_fail_reset();
        if (m) {
            sampler_stop_free(m);
            break;
        }
        assert_int_equal(err.code, GARLIC_ENOMEM);
    }
    // A piece too large for the buffer grows it; a failed growth is GARLIC_ENOMEM.
    garlic_error err = {0};
    sampler_stop *m = sampler_stop_new(stops, 1, &err);
    static char big[10000];
    memset(big, 'a', sizeof big);
    sampler_stop_result out;
    garlic_alloc_fail_after(0);
    assert_int_equal(sampler_stop_feed(m, big, sizeof big, &out, &err), GARLIC_ENOMEM);
    garlic_alloc_fail_reset();
    assert_int_equal(sampler_stop_feed(m, big, sizeof big, &out, &err), GARLIC_OK);
    assert_int_equal(out.len, sizeof big);
    assert_memory_equal(out.text, big, sizeof big);
    sampler_stop_free(m);
}

// ---- end tokens ----

static void test_end_tokens(void **state)
{
    (void)state;
    sampler_end_tokens e;
    sampler_end_tokens_init(&e);
    garlic_error err = {0};
    assert_false(sampler_is_end(&e, 2));
    assert_int_equal(sampler_end_tokens_add(&e, 2, &err), GARLIC_OK);
    assert_int_equal(sampler_end_tokens_add(&e, 128009, &err), GARLIC_OK);
    assert_int_equal(sampler_end_tokens_add(&e, 2, &err), GARLIC_OK);
    assert_int_equal(sampler_end_tokens_add(&e, -1, &err), GARLIC_OK); // "no such token"
    assert_int_equal(e.n, 2);
    assert_true(sampler_is_end(&e, 2) && sampler_is_end(&e, 128009));
    assert_false(sampler_is_end(&e, 3) || sampler_is_end(&e, -1));
    for (int32_t t = 1000; e.n < SAMPLER_MAX_END_TOKENS; t++)
        assert_int_equal(sampler_end_tokens_add(&e, t, &err), GARLIC_OK);
    assert_int_equal(sampler_end_tokens_add(&e, 5, &err), GARLIC_EINVAL);
    assert_int_equal(sampler_end_tokens_add(&e, 2, &err), GARLIC_OK); // already there
}

// ---- stop strings ----

typedef struct stream_result {
    char text[1024]; // everything emitted, feeds and flush
    int index;       // the stop string hit, or -1
    int stopped_at;  // the piece whose feed stopped, or -1
} stream_result;

// Streams pieces (a NULL-terminated list) through a matcher for stops and flushes.
static stream_result run_stream(const char *const *stops, size_t n_stops, const char *const *pieces)
{
    garlic_error err = {0};
    sampler_stop *m = sampler_stop_new(stops, n_stops, &err);
    if (!m)
        fail_msg("sampler_stop_new: %s", err.message);
    stream_result res = {.index = -1, .stopped_at = -1};
    size_t len = 0;
    sampler_stop_result out;
    for (int i = 0; pieces[i]; i++) {
        assert_int_equal(sampler_stop_feed(m, pieces[i], strlen(pieces[i]), &out, &err), GARLIC_OK);
        assert_true(len + out.len < sizeof res.text);
        memcpy(res.text + len, out.text, out.len);
        len += out.len;
        if (out.stopped && res.stopped_at < 0) {
            res.stopped_at = i;
            res.index = out.index;
        }
    }
    sampler_stop_flush(m, &out);
    assert_true(len + out.len < sizeof res.text);
    memcpy(res.text + len, out.text, out.len);
    res.text[len + out.len] = '\0';
    if (res.stopped_at >= 0)
        assert_true(out.stopped && out.len == 0);
    sampler_stop_free(m);
    return res;
}

#define PIECES(...) ((const char *const[]){__VA_ARGS__, NULL})

static void test_stop_basic(void **state)
{
    (void)state;
    const char *eos[] = {"</s>"};
    stream_result r = run_stream(eos, 1, PIECES("Hello", " wor", "ld<", "/s", ">tail", "more"));
    assert_string_equal(r.text, "Hello world");
    assert_int_equal(r.stopped_at, 4);
    assert_int_equal(r.index, 0);

    // A prefix is held, then released when the next piece rules the stop string out.
    garlic_error err = {0};
    const char *hashes[] = {"###"};
    sampler_stop *m = sampler_stop_new(hashes, 1, &err);
    sampler_stop_result out;
    sampler_stop_feed(m, "a#", 2, &out, &err);
    assert_int_equal(out.len, 1);
    assert_memory_equal(out.text, "a", 1);
    sampler_stop_feed(m, "#", 1, &out, &err);
    assert_int_equal(out.len, 0);
    sampler_stop_feed(m, "b", 1, &out, &err);
    assert_int_equal(out.len, 3);
    assert_memory_equal(out.text, "##b", 3);
    assert_false(out.stopped);
    // Held at the end of generation: flush releases it, once.
    sampler_stop_feed(m, "c##", 3, &out, &err);
    assert_int_equal(out.len, 1);
    sampler_stop_flush(m, &out);
    assert_int_equal(out.len, 2);
    assert_memory_equal(out.text, "##", 2);
    sampler_stop_flush(m, &out);
    assert_int_equal(out.len, 0);
    // Stop, then nothing more; a reset starts over.
    sampler_stop_feed(m, "x###y", 5, &out, &err);
    assert_true(out.stopped && out.len == 1 && out.index == 0);
    sampler_stop_feed(m, "z", 1, &out, &err);
    assert_true(out.stopped && out.len == 0);
    sampler_stop_reset(m);
    sampler_stop_feed(m, "z", 1, &out, &err);
    assert_true(!out.stopped && out.len == 1 && out.index == -1);
    sampler_stop_free(m);

    // No stop strings: text passes straight through.
    r = run_stream(NULL, 0, PIECES("abc", "", "def"));
    assert_string_equal(r.text, "abcdef");
    assert_int_equal(r.stopped_at, -1);
}

static void test_stop_overlaps(void **state)
{
    (void)state;
    const char *abc[] = {"abc"};
    stream_result r = run_stream(abc, 1, PIECES("aabc"));
    assert_string_equal(r.text, "a");
    r = run_stream(abc, 1, PIECES("a", "a", "b", "c"));
    assert_string_equal(r.text, "a");
    r = run_stream(abc, 1, PIECES("ab", "ab", "abc!"));
    assert_string_equal(r.text, "abab");
    const char *abac[] = {"abac"};
    r = run_stream(abac, 1, PIECES("ab", "ab", "ac"));
    assert_string_equal(r.text, "ab");
    r = run_stream(abac, 1, PIECES("ab", "ab", "ad"));
    assert_string_equal(r.text, "ababad");
    assert_int_equal(r.stopped_at, -1);

    // Several strings: the first to complete wins, the longest of those completing together.
    const char *two[] = {"foo", "bar"};
    r = run_stream(two, 2, PIECES("xxba", "rfoo"));
    assert_string_equal(r.text, "xx");
    assert_int_equal(r.index, 1);
    const char *nested[] = {"abcd", "bc"};
    r = run_stream(nested, 2, PIECES("abcd"));
    assert_string_equal(r.text, "a");
    assert_int_equal(r.index, 1);
    const char *suffix[] = {"c", "abc"};
    r = run_stream(suffix, 2, PIECES("xa", "bc"));
    assert_string_equal(r.text, "x");
    assert_int_equal(r.index, 1);
    const char *user[] = {"\nUser:", "\n\n"};
    r = run_stream(user, 2, PIECES("Sure.", "\n", "Use", "d it.\n", "User", ": hi"));
    assert_string_equal(r.text, "Sure.\nUsed it.");
    assert_int_equal(r.index, 0);
}

static void test_stop_utf8(void **state)
{
    (void)state;
    const char *stops[] = {"世界", "→"};
    stream_result r = run_stream(stops, 2, PIECES("你好", "世", "界!"));
    assert_string_equal(r.text, "你好");
    assert_int_equal(r.index, 0);
    r = run_stream(stops, 2, PIECES("你好", "世", "人"));
    assert_string_equal(r.text, "你好世人");
    r = run_stream(stops, 2, PIECES("a ", "→ b"));
    assert_string_equal(r.text, "a ");
    assert_int_equal(r.index, 1);
    // A stop string can split a character across pieces (bytes, not characters, are matched).
    r = run_stream(stops, 2, PIECES("x\xe4\xb8", "\x96\xe7\x95\x8cy"));
    assert_string_equal(r.text, "x");

    // Every emitted chunk is whole UTF-8 when the pieces are.
    garlic_error err = {0};
    sampler_stop *m = sampler_stop_new(stops, 2, &err);
    const char *pieces[] = {"é", "世", "ö", "世", "界"};
    sampler_stop_result out;
    for (int i = 0; i < 5; i++) {
        sampler_stop_feed(m, pieces[i], strlen(pieces[i]), &out, &err);
        for (size_t j = 0; j < out.len;) { // lead bytes only at chunk starts
            unsigned char c = (unsigned char)out.text[j];
            assert_true(c < 0x80 || c >= 0xc0);
            j += c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
            assert_true(j <= out.len);
        }
    }
    assert_true(out.stopped);
    sampler_stop_free(m);
}

static void test_stop_validation(void **state)
{
    (void)state;
    garlic_error err = {0};
    const char *empty[] = {"ok", ""};
    assert_null(sampler_stop_new(empty, 2, &err));
    assert_int_equal(err.code, GARLIC_EINVAL);
    assert_non_null(strstr(err.message, "stop string 1 is empty"));
    const char *null_one[] = {NULL};
    assert_null(sampler_stop_new(null_one, 1, &err));
    assert_null(sampler_stop_new(NULL, 1, &err));
    const char *bad_utf8[] = {"a\xff"};
    assert_null(sampler_stop_new(bad_utf8, 1, &err));
    assert_non_null(strstr(err.message, "UTF-8"));
    static char longest[SAMPLER_STOP_MAX_LENGTH + 2];
    memset(longest, 'x', SAMPLER_STOP_MAX_LENGTH);
    const char *max_len[] = {longest};
    sampler_stop *m = sampler_stop_new(max_len, 1, &err);
    assert_non_null(m);
    sampler_stop_free(m);
    longest[SAMPLER_STOP_MAX_LENGTH] = 'x';
    assert_null(sampler_stop_new(max_len, 1, &err));
    assert_non_null(strstr(err.message, "longer than"));
    const char *many[SAMPLER_STOP_MAX_STRINGS + 1];
    for (int i = 0; i <= SAMPLER_STOP_MAX_STRINGS; i++)
        many[i] = "s";
    m = sampler_stop_new(many, SAMPLER_STOP_MAX_STRINGS, &err);
    assert_non_null(m);
    sampler_stop_free(m);
    assert_null(sampler_stop_new(many, SAMPLER_STOP_MAX_STRINGS + 1, &err));
    assert_non_null(strstr(err.message, "stop strings"));
}

// Where the stop rule says the stream ends: the earliest end of any stop string in text, the
// longest string among those ending there. Returns the emitted length and sets *index.
static size_t reference_stop(const char *text, size_t n, char stops[][8], int n_stops, int *index)
{
    *index = -1;
    for (size_t end = 1; end <= n; end++) {
        size_t best = 0;
        for (int i = 0; i < n_stops; i++) {
            size_t len = strlen(stops[i]);
            if (len <= end && len > best && memcmp(text + end - len, stops[i], len) == 0) {
                best = len;
                *index = i;
            }
        }
        if (best)
            return end - best;
    }
    return n;
}

// Random texts over a small alphabet, random stop strings and random piece boundaries: the
// emitted text always equals the reference's, however the text is cut.
static void test_stop_random(void **state)
{
    (void)state;
    test_rng r;
    test_rng_seed(&r, 6);
    for (int round = 0; round < 3000; round++) {
        char stops[4][8];
        const char *ptrs[4];
        int n_stops = 1 + (int)(test_rng_u64(&r) % 4);
        for (int i = 0; i < n_stops; i++) {
            size_t len = 1 + test_rng_u64(&r) % 6;
            for (size_t j = 0; j < len; j++)
                stops[i][j] = (char)('a' + test_rng_u64(&r) % 3);
            stops[i][len] = '\0';
            ptrs[i] = stops[i];
        }
        char text[64];
        size_t n = test_rng_u64(&r) % sizeof text;
        for (size_t j = 0; j < n; j++)
            text[j] = (char)('a' + test_rng_u64(&r) % 3 + (test_rng_u64(&r) % 8 == 0));
        int want_index;
        size_t want = reference_stop(text, n, stops, n_stops, &want_index);

        garlic_error err = {0};
        sampler_stop *m = sampler_stop_new(ptrs, (size_t)n_stops, &err);
        assert_non_null(m);
        char got[64];
        size_t got_len = 0;
        sampler_stop_result out = {.index = -1};
        for (size_t pos = 0; pos < n;) {
            size_t cut = 1 + test_rng_u64(&r) % 5;
            cut = cut > n - pos ? n - pos : cut;
            assert_int_equal(sampler_stop_feed(m, text + pos, cut, &out, &err), GARLIC_OK);
            memcpy(got + got_len, out.text, out.len);
            got_len += out.len;
            pos += cut;
        }
        bool stopped = out.stopped;
        int index = out.index;
        sampler_stop_flush(m, &out);
        memcpy(got + got_len, out.text, out.len);
        got_len += out.len;
        if (got_len != want || memcmp(got, text, want) != 0 || stopped != (want_index >= 0) ||
            index != want_index)
            fail_msg("round %d: text '%.*s': emitted %zu bytes (index %d), want %zu (index %d)",
                     round, (int)n, text, got_len, index, want, want_index);
        sampler_stop_free(m);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_params),
        cmocka_unit_test(test_greedy),
        cmocka_unit_test(test_top_k_one_is_greedy),
        cmocka_unit_test(test_seed),
        cmocka_unit_test(test_temperature_distribution),
        cmocka_unit_test(test_top_p_min_p_sets),
        cmocka_unit_test(test_large_top_k_top_p),
        cmocka_unit_test(test_large_ties_min_p),
        cmocka_unit_test(test_edges),
        cmocka_unit_test(test_penalties),
        cmocka_unit_test(test_logit_bias),
        cmocka_unit_test(test_logprobs),
        cmocka_unit_test(test_no_allocation),
        cmocka_unit_test(test_alloc_failures),
        cmocka_unit_test(test_end_tokens),
        cmocka_unit_test(test_stop_basic),
        cmocka_unit_test(test_stop_overlaps),
        cmocka_unit_test(test_stop_utf8),
        cmocka_unit_test(test_stop_validation),
        cmocka_unit_test(test_stop_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
