// SPDX-License-Identifier: MIT
// The K-quant quantizers' variants (Q2_K..Q6_K: the batched search with the scalar, AVX2 and
// AVX-512 scoring kernels, and the one the traits table holds) write the _ref quantizers'
// bytes exactly, on thousands of random super-blocks and on the hard cases: all zeros,
// constant rows, one value alone, negative-only and positive-only rows, huge magnitudes (up
// to FLT_MAX, where the squared errors overflow), tiny ones and subnormals, huge and tiny
// values in one sub-block, values on the code grid and halfway between codes (ties of the
// rounding and of the search), arbitrary finite float bit patterns, and even infinities and
// NaN, which the quantizers' contract leaves unspecified (1608 super-blocks per type). A
// variant this CPU (as capped by GARLIC_CPU) lacks is skipped, and says so.
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#include "tensor/quants.h"
#include "tensor/types.h"

enum { SUPER = 256, N_RANDOM = 1536, N_KINDS = 18 };

// A random finite float: random sign, mantissa and exponent (subnormals and zero included).
static float any_finite(test_rng *r)
{
    uint32_t u = (uint32_t)test_rng_u64(r);
    if (((u >> 23) & 0xFF) == 0xFF)
        u &= ~(1u << 23); // exponent 0xFE: the largest finite binade
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

// 2^e for e in [lo, hi], as a float (subnormal below -126).
static float power_of_two(test_rng *r, int lo, int hi)
{
    return ldexpf(1.0f, lo + (int)(test_rng_u64(r) % (uint64_t)(hi - lo + 1)));
}

// One super-block of the hard case `kind` (0..N_KINDS-1).
static void fill_case(float *x, int kind, test_rng *r)
{
    float scale = power_of_two(r, -149, 127);
    float d = power_of_two(r, -30, 30) * (1.0f + (float)(test_rng_u64(r) % 8) / 8.0f);
    float sign = test_rng_u64(r) & 1 ? -1.0f : 1.0f;
    for (int i = 0; i < SUPER; i++) {
        float u = test_rng_uniform(r);
        switch (kind) {
        case 0: // all zeros, both signs
            x[i] = i % 3 ? 0.0f : -0.0f;
            break;
        case 1: // a constant of any magnitude
            x[i] = sign * scale;
            break;
        case 2: // one value alone
            x[i] = i == 37 ? sign * scale * 1.5f : 0.0f;
            break;
        case 3: // negative only
            x[i] = -(u + 0.01f) * 0.1f;
            break;
        case 4: // positive only
            x[i] = (u + 0.01f) * 3.0f;
            break;
        case 5: // subnormals only
            x[i] = (u - 0.5f) * 0x1p-127f;
            break;
        case 6: // near the top of the float range
            x[i] = (u - 0.5f) * FLT_MAX;
            break;
        case 7: // huge and tiny in every sub-block
            x[i] = (u - 0.5f) * power_of_two(r, -149, 127);
            break;
        case 8: // on a grid of step d: ties between candidate scales
            x[i] = d * (float)((int)(u * 64.0f) - 32);
            break;
        case 9: // halfway between codes: ties of the rounding
            x[i] = d * ((float)((int)(u * 16.0f) - 8) + 0.5f);
            break;
        case 10: // a few distinct values
            x[i] = sign * (float)((int)(u * 3.0f)) * scale * 0.25f;
            break;
        case 11: // sub-blocks of wildly different magnitudes, some zero
            x[i] = (i / 16) % 4 == 0 ? 0.0f : (u - 0.5f) * ldexpf(1.0f, 10 * ((i / 16) % 7) - 60);
            break;
        case 12: // arbitrary finite bit patterns
            x[i] = any_finite(r);
            break;
        case 13: // a bell curve with outliers, as weights look
            x[i] = test_rng_normal(r) * 0.02f * (u < 0.01f ? 8.0f : 1.0f);
            break;
        case 14: // tiny normals
            x[i] = (u - 0.3f) * 0x1p-120f;
            break;
        case 15: // a constant with one different value per sub-block
            x[i] = i % 16 == 5 ? -sign * d : sign * d * 0.5f;
            break;
        case 16: // outside the quantizers' contract (finite input), still the same bytes:
            // infinities and NaN among ordinary values
            x[i] = u < 0.05f ? (u < 0.02f ? NAN : sign * INFINITY) : u - 0.5f;
            break;
        default: // ... and sub-blocks of nothing else
            x[i] = (i / 16) % 3 == 0 ? NAN : (i / 16) % 3 == 1 ? INFINITY : -INFINITY;
            break;
        }
    }
}

// The rows every variant is checked on: every hard case a few times, then random rows of
// every kind mixed with uniform [-1, 1) ones at random magnitudes.
static float *make_rows(int64_t *n_out)
{
    int64_t n_blocks = 4 * N_KINDS + N_RANDOM;
    float *x = malloc((size_t)n_blocks * SUPER * sizeof *x);
    assert_non_null(x);
    test_rng r;
    test_rng_seed(&r, 20261205);
    for (int64_t b = 0; b < n_blocks; b++) {
        float *blk = x + b * SUPER;
        if (b < 4 * N_KINDS) {
            fill_case(blk, (int)(b % N_KINDS), &r);
        } else if (b % 2) {
            fill_case(blk, (int)(test_rng_u64(&r) % N_KINDS), &r);
        } else {
            float scale = power_of_two(&r, -100, 100);
            for (int i = 0; i < SUPER; i++)
                blk[i] = (2.0f * test_rng_uniform(&r) - 1.0f) * scale;
        }
    }
    *n_out = n_blocks * SUPER;
    return x;
}

typedef struct kquant_case {
    tensor_type type;
    void (*ref)(const float *, void *, int64_t);
} kquant_case;

static const kquant_case kquants[] = {
    {TENSOR_TYPE_Q2_K, tensor_quantize_q2_k_ref}, {TENSOR_TYPE_Q3_K, tensor_quantize_q3_k_ref},
    {TENSOR_TYPE_Q4_K, tensor_quantize_q4_k_ref}, {TENSOR_TYPE_Q5_K, tensor_quantize_q5_k_ref},
    {TENSOR_TYPE_Q6_K, tensor_quantize_q6_k_ref},
};

// The rows and each type's reference bytes, made once for all the tests (the group's state).
typedef struct reference_set {
    float *x;
    int64_t n;
    uint8_t *want[sizeof kquants / sizeof kquants[0]];
} reference_set;

static int make_references(void **state)
{
    reference_set *set = calloc(1, sizeof *set);
    assert_non_null(set);
    set->x = make_rows(&set->n);
    for (size_t k = 0; k < sizeof kquants / sizeof kquants[0]; k++) {
        const tensor_type_traits *tr = tensor_type_get(kquants[k].type);
        set->want[k] = malloc((size_t)(set->n / SUPER) * tr->type_size);
        assert_non_null(set->want[k]);
        kquants[k].ref(set->x, set->want[k], set->n);
    }
    *state = set;
    return 0;
}

static int free_references(void **state)
{
    reference_set *set = *state;
    for (size_t k = 0; k < sizeof kquants / sizeof kquants[0]; k++)
        free(set->want[k]);
    free(set->x);
    free(set);
    return 0;
}

// Fails with the first block where got differs from want, naming the type and who wrote it.
static void check_blocks(const char *who, const tensor_type_traits *tr, const uint8_t *want,
                         const uint8_t *got, int64_t n_blocks)
{
    for (int64_t b = 0; b < n_blocks; b++) {
        const uint8_t *w = want + b * tr->type_size, *g = got + b * tr->type_size;
        if (memcmp(w, g, tr->type_size) == 0)
            continue;
        uint32_t at = 0;
        while (w[at] == g[at])
            at++;
        fail_msg("%s %s: super-block %lld (hard case %lld) differs from the reference at byte "
                 "%u (%02x, reference %02x)",
                 tr->name, who, (long long)b, (long long)(b < 4 * N_KINDS ? b % N_KINDS : -1), at,
                 g[at], w[at]);
    }
}

// Quantizes the rows to every K-quant with variant v (or, for TENSOR_QUANT_VARIANT_COUNT, the
// traits table's quantizer) and compares with the references.
static void check_variant(const reference_set *set, int v)
{
    int64_t n_blocks = set->n / SUPER;
    const char *who = v < TENSOR_QUANT_VARIANT_COUNT
        ? tensor_quant_variant_name((tensor_quant_variant)v)
        : "traits quantizer";
    for (size_t k = 0; k < sizeof kquants / sizeof kquants[0]; k++) {
        const tensor_type_traits *tr = tensor_type_get(kquants[k].type);
        uint8_t *got = malloc((size_t)n_blocks * tr->type_size);
        assert_non_null(got);
        memset(got, 0xA5, (size_t)n_blocks * tr->type_size);
        if (v < TENSOR_QUANT_VARIANT_COUNT)
            assert_true(tensor_quantize_variant(kquants[k].type, (tensor_quant_variant)v, set->x,
                                                got, set->n));
        else
            tr->quantize(set->x, got, set->n);
        check_blocks(who, tr, set->want[k], got, n_blocks);
        free(got);
    }
}

static void test_scalar(void **state) { check_variant(*state, TENSOR_QUANT_SCALAR); }

// A SIMD variant; skipped, and counted, when this CPU lacks its instruction set.
static void check_simd_variant(const reference_set *set, tensor_quant_variant v)
{
    if (!tensor_quant_variant_available(v)) {
        print_message("skipped: this CPU (as GARLIC_CPU caps it) has no %s\n",
                      tensor_quant_variant_name(v));
        skip();
    }
    check_variant(set, v);
}

static void test_avx2(void **state) { check_simd_variant(*state, TENSOR_QUANT_AVX2); }

static void test_avx512(void **state) { check_simd_variant(*state, TENSOR_QUANT_AVX512); }

// The quantizers the traits table holds (the best variant this CPU runs).
static void test_traits_quantizers(void **state)
{
    check_variant(*state, TENSOR_QUANT_VARIANT_COUNT);
}

// The comparisons above can fail: changing one value of a bell-curve super-block changes the
// reference's bytes of every type (so a variant that misread a value would be caught), and
// tensor_quantize_variant refuses types other than the K-quants.
static void test_reference_sensitive(void **state)
{
    (void)state;
    float x[SUPER];
    test_rng r;
    test_rng_seed(&r, 7);
    for (int i = 0; i < SUPER; i++)
        x[i] = test_rng_normal(&r);
    for (size_t k = 0; k < sizeof kquants / sizeof kquants[0]; k++) {
        const tensor_type_traits *tr = tensor_type_get(kquants[k].type);
        uint8_t a[256], b[256];
        assert_true(tr->type_size <= sizeof a);
        kquants[k].ref(x, a, SUPER);
        float keep = x[100];
        x[100] = keep * 1.25f + 0.5f;
        kquants[k].ref(x, b, SUPER);
        x[100] = keep;
        if (memcmp(a, b, tr->type_size) == 0)
            fail_msg("%s: the reference's bytes do not depend on value 100", tr->name);
    }
    uint8_t out[64];
    assert_false(tensor_quantize_variant(TENSOR_TYPE_Q8_0, TENSOR_QUANT_SCALAR, x, out, 32));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scalar),
        cmocka_unit_test(test_avx2),
        cmocka_unit_test(test_avx512),
        cmocka_unit_test(test_traits_quantizers),
        cmocka_unit_test(test_reference_sensitive),
    };
    return cmocka_run_group_tests(tests, make_references, free_references);
}
