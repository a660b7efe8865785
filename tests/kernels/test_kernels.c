// SPDX-License-Identifier: MIT
// Tests of src/kernels: activation conversion against hand-computed blocks (and the SIMD
// converters byte for byte against the scalar ones), every scalar
// reference dot product against the double-precision dot of the dequantized operands (and of
// the unquantized activations, within the activation format's rounding), every SIMD variant
// this CPU runs against the reference on random data, the matrix product against row-by-row
// dots, and the float helpers. Tests of one variant are registered once per variant (their
// cmocka state says which) and skip, counted in the summary, when this CPU lacks its
// instruction set (GARLIC_CPU=scalar or avx2 caps what is detected). Tolerances are stated
// where they are asserted.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#include "kernels/kernels.h"
#include "kernels/variants.h"
#include "tensor/quants.h"
#include "tensor/types.h"

static const uint32_t weight_types[] = {
    TENSOR_TYPE_F32,     TENSOR_TYPE_F16,    TENSOR_TYPE_BF16,   TENSOR_TYPE_Q4_0,
    TENSOR_TYPE_Q4_1,    TENSOR_TYPE_Q5_0,   TENSOR_TYPE_Q5_1,   TENSOR_TYPE_Q8_0,
    TENSOR_TYPE_Q2_K,    TENSOR_TYPE_Q3_K,   TENSOR_TYPE_Q4_K,   TENSOR_TYPE_Q5_K,
    TENSOR_TYPE_Q6_K,    TENSOR_TYPE_IQ4_NL, TENSOR_TYPE_IQ4_XS, TENSOR_TYPE_MXFP4,
    TENSOR_TYPE_F8_E4M3, TENSOR_TYPE_Q4_Z,
};
enum { N_WEIGHT_TYPES = sizeof weight_types / sizeof weight_types[0] };

// Float rounding in the scale products and the summation order are the only allowed
// differences between two dots of the same operands (integer block sums are exact):
// |a - b| <= SUM_RTOL * sum_i |w_i * a_i|. That is 2e-6, about 34 float ulps of the mass:
// observed differences stay below 1.5e-7 (printed by the tests), while a scale that is off
// by 1e-4 in one term already fails.
#define SUM_RTOL 2e-6

static const kernel_variant variant_ids[KERNEL_VARIANT_COUNT] = {
    KERNEL_VARIANT_REF, KERNEL_VARIANT_AVX2, KERNEL_VARIANT_AVX512};

// The instruction set a variant needs, for skip messages.
static const char *variant_isa(kernel_variant v)
{
    switch (v) {
    case KERNEL_VARIANT_AVX2: return "AVX2 + FMA + F16C";
    case KERNEL_VARIANT_AVX512: return "AVX-512 F/BW/DQ/VL + VNNI";
    default: return "nothing beyond x86-64";
    }
}

// The variant a test runs on (its cmocka state); skips the test (counted) when this CPU, as
// capped by GARLIC_CPU, cannot run it.
static kernel_variant test_variant(void **state)
{
    kernel_variant v = *(const kernel_variant *)*state;
    if (!kernel_variant_available(v)) {
        print_message("skipped: this CPU has no %s (variant %s)\n", variant_isa(v),
                      kernel_variant_label(v));
        skip();
    }
    return v;
}

static size_t row_bytes(uint32_t type, int64_t n)
{
    uint64_t bytes = 0;
    assert_true(tensor_row_size(type, (uint64_t)n, &bytes));
    return (size_t)bytes;
}

// Byte offsets of the half-float fields in one block of each quantized weight type.
static int half_fields(uint32_t type, int offsets[2])
{
    switch (type) {
    case TENSOR_TYPE_Q4_0:
    case TENSOR_TYPE_Q5_0:
    case TENSOR_TYPE_Q8_0:
    case TENSOR_TYPE_IQ4_NL:
    case TENSOR_TYPE_IQ4_XS:
    case TENSOR_TYPE_Q4_Z: offsets[0] = 0; return 1;
    case TENSOR_TYPE_Q4_1:
    case TENSOR_TYPE_Q5_1:
    case TENSOR_TYPE_Q4_K:
    case TENSOR_TYPE_Q5_K: offsets[0] = 0, offsets[1] = 2; return 2;
    case TENSOR_TYPE_Q2_K: offsets[0] = 80, offsets[1] = 82; return 2;
    case TENSOR_TYPE_Q3_K: offsets[0] = 108; return 1;
    case TENSOR_TYPE_Q6_K: offsets[0] = 208; return 1;
    default: return 0;
    }
}

// Fills rows of weights. Mode 0 quantizes normal random values (what real files look
// like); mode 1 (quantized types only) fills random bytes, so every bit pattern of codes
// and sub-block scales occurs, with the half scales set to moderate positive values (and
// MXFP4's exponent bytes to scales 2^-12 .. 2^-3, where real weights' lie; F8_E4M3's float
// scales to +-(0.001 .. 0.011), its NaN codes 0x7F and 0xFF to 0x7E and 0xFE: a NaN would
// make both sides of a comparison NaN, which no tolerance check can fail on; they have a
// test of their own). Q4_Z's zero points take every byte, its pad byte too.
static void fill_weights(test_rng *rng, uint32_t type, int mode, void *dst, int64_t n_values)
{
    const tensor_type_traits *tr = tensor_type_get(type);
    if (mode == 1 && tr->is_quantized) {
        uint8_t *bytes = dst;
        size_t size = row_bytes(type, n_values);
        for (size_t i = 0; i < size; i++)
            bytes[i] = (uint8_t)test_rng_u64(rng);
        int offsets[2];
        int count = half_fields(type, offsets);
        for (size_t b = 0; b < size / tr->type_size; b++) {
            for (int k = 0; k < count; k++) {
                uint16_t h = tensor_f32_to_f16(0.001f + 0.01f * test_rng_uniform(rng));
                memcpy(bytes + b * tr->type_size + offsets[k], &h, 2);
            }
            if (type == TENSOR_TYPE_MXFP4)
                bytes[b * tr->type_size] = (uint8_t)(116 + test_rng_u64(rng) % 10);
            if (type == TENSOR_TYPE_F8_E4M3) {
                block_f8_e4m3 *blk = (block_f8_e4m3 *)(bytes + b * tr->type_size);
                float d = 0.001f + 0.01f * test_rng_uniform(rng);
                memcpy(&blk->d, &(float){test_rng_u64(rng) & 1 ? d : -d}, sizeof d);
                for (int j = 0; j < QK_F8; j++)
                    blk->qs[j] -= (blk->qs[j] & 0x7F) == 0x7F; // NaN -> +-448
            }
        }
        return;
    }
    float *x = malloc((size_t)n_values * sizeof *x);
    assert_non_null(x);
    for (int64_t i = 0; i < n_values; i++)
        x[i] = test_rng_normal(rng);
    tr->quantize(x, dst, n_values);
    free(x);
}

static void fill_normal(test_rng *rng, float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = test_rng_normal(rng) * (test_rng_uniform(rng) < 0.02f ? 8.0f : 1.0f);
}

static float *dequantize_row(uint32_t type, const void *src, int64_t n)
{
    float *out = malloc((size_t)n * sizeof *out);
    assert_non_null(out);
    tensor_type_get(type)->dequantize(src, out, n);
    return out;
}

// ---- 1. activation conversion by hand ----

static void test_act_q8_0_block(void **state)
{
    (void)state;
    float x[32];
    int8_t want[32];
    for (int j = 0; j < 32; j++)
        x[j] = (float)(j - 16), want[j] = (int8_t)(j - 16);
    // amax = 127, so d = 1 and q = x rounded to nearest, halves to even (as the reference's
    // x86 code rounds).
    x[0] = -127.0f, want[0] = -127;
    x[1] = 2.5f, want[1] = 2;
    x[2] = -3.5f, want[2] = -4;
    x[3] = 0.49f, want[3] = 0;
    x[4] = 126.5f, want[4] = 126;
    block_q8_0 blk;
    kernel_act_convert(TENSOR_TYPE_Q4_0, x, &blk, 32);
    assert_int_equal(blk.d, 0x3C00); // 1.0 as half
    assert_memory_equal(blk.qs, want, 32);

    // Q8_1 adds s = d * sum(q) as half.
    block_q8_1 blk1;
    kernel_act_convert(TENSOR_TYPE_Q4_1, x, &blk1, 32);
    int sum = 0;
    for (int j = 0; j < 32; j++)
        sum += want[j];
    assert_int_equal(blk1.d, 0x3C00);
    assert_memory_equal(blk1.qs, want, 32);
    assert_int_equal(blk1.s, tensor_f32_to_f16((float)sum));

    // A scale that is not 1: amax = 2.54 gives d = 0.02 (stored as half) and q = x / 0.02.
    for (int j = 0; j < 32; j++)
        x[j] = 0.02f * (float)(j * 8 - 127);
    kernel_act_convert(TENSOR_TYPE_Q8_0, x, &blk, 32);
    assert_int_equal(blk.d, tensor_f32_to_f16(2.54f / 127.0f));
    for (int j = 0; j < 32; j++)
        assert_int_equal(blk.qs[j], j * 8 - 127);

    // An all-zero block has d = 0 and q = 0.
    memset(x, 0, sizeof x);
    kernel_act_convert(TENSOR_TYPE_Q8_0, x, &blk, 32);
    assert_int_equal(blk.d, 0);
    for (int j = 0; j < 32; j++)
        assert_int_equal(blk.qs[j], 0);
}

static void test_act_q8_k_block(void **state)
{
    (void)state;
    float x[QK_K];
    int8_t want[QK_K];
    for (int j = 0; j < QK_K; j++)
        x[j] = (float)(j % 7 - 3), want[j] = (int8_t) - (j % 7 - 3);
    // max = +127 (signed), so iscale = -1, d = -1 and q = nearest-even(-x).
    x[10] = 127.0f, want[10] = -127;
    x[11] = 2.5f, want[11] = -2;
    x[12] = 3.5f, want[12] = -4;
    x[13] = -0.5f, want[13] = 0;
    x[14] = -127.0f, want[14] = 127; // same magnitude after the max: the first one wins
    block_q8_k blk;
    kernel_act_convert(TENSOR_TYPE_Q4_K, x, &blk, QK_K);
    assert_true(blk.d == -1.0f);
    assert_memory_equal(blk.qs, want, QK_K);
    for (int s = 0; s < QK_K / 16; s++) {
        int sum = 0;
        for (int j = 0; j < 16; j++)
            sum += want[16 * s + j];
        assert_int_equal(blk.bsums[s], sum);
    }
    // A negative max gives a positive d: max = -254, d = 2, q = nearest-even(x / 2).
    for (int j = 0; j < QK_K; j++)
        x[j] = (float)(2 * (j % 11) - 10), want[j] = (int8_t)(j % 11 - 5);
    x[0] = -254.0f, want[0] = -127;
    x[1] = 5.0f, want[1] = 2;
    kernel_act_convert(TENSOR_TYPE_Q6_K, x, &blk, QK_K);
    assert_true(blk.d == 2.0f);
    assert_memory_equal(blk.qs, want, QK_K);
}

static void test_act_float_formats(void **state)
{
    (void)state;
    const float x[4] = {1.0f + 0x1p-11f, 1.0f + 3 * 0x1p-11f, 1.0f + 0x1p-8f, 1.0f + 3 * 0x1p-8f};
    uint16_t h[4];
    kernel_act_convert(TENSOR_TYPE_F16, x, h, 4);
    assert_int_equal(h[0], 0x3C00); // a tie rounds to the even neighbour
    assert_int_equal(h[1], 0x3C02);
    kernel_act_convert(TENSOR_TYPE_BF16, x, h, 4);
    assert_int_equal(h[2], 0x3F80);
    assert_int_equal(h[3], 0x3F82);
    float f[4];
    kernel_act_convert(TENSOR_TYPE_F32, x, f, 4);
    assert_memory_equal(f, x, sizeof f);
}

// Fills n values (a multiple of 256) with cases that stress rounding: normal values, blocks
// whose scale is exactly 1 with codes at .5 ties, all-zero blocks, equal magnitudes of both
// signs, and values beyond half-float range or in its subnormal range.
static void fill_act_cases(test_rng *rng, float *x, int64_t n)
{
    fill_normal(rng, x, n);
    for (int64_t b = 0; b < n / 256; b++) {
        float *blk = x + 256 * b;
        switch (b % 5) {
        case 0:
            for (int j = 0; j < 256; j++)
                blk[j] = (float)((int)(test_rng_u64(rng) % 255) - 127) + 0.5f * (float)(j % 2);
            blk[0] = 127.0f, blk[32] = -127.0f;
            break;
        case 1: memset(blk, 0, 256 * sizeof *blk); break;
        case 2: blk[7] = -50.0f, blk[9] = 50.0f, blk[100] = -50.0f; break;
        case 3:
            for (int j = 0; j < 256; j += 3)
                blk[j] *= 1e-6f;
            blk[5] = 70000.0f;
            break;
        default: break;
        }
    }
}

static void test_act_variants_exact(void **state)
{
    kernel_variant v = test_variant(state);
    test_rng rng;
    test_rng_seed(&rng, 55);
    const uint32_t types[] = {TENSOR_TYPE_Q4_0, TENSOR_TYPE_Q4_1, TENSOR_TYPE_Q4_K,
                              TENSOR_TYPE_F16,  TENSOR_TYPE_BF16, TENSOR_TYPE_F32};
    const int64_t n = 256 * 10;
    float *x = malloc((size_t)n * sizeof *x);
    uint8_t *want = malloc((size_t)n * 4), *got = malloc((size_t)n * 4);
    assert_true(x && want && got);
    for (int rep = 0; rep < 4; rep++) {
        fill_act_cases(&rng, x, n);
        for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
            size_t bytes = kernel_act_row_size(types[t], n);
            kernel_act_convert_variant(KERNEL_VARIANT_REF, types[t], x, want, n);
            kernel_act_convert_variant(v, types[t], x, got, n);
            if (memcmp(want, got, bytes) != 0)
                fail_msg("%s activation conversion for %s differs from the scalar one",
                         kernel_variant_label(v), tensor_type_get(types[t])->name);
        }
    }
    free(x), free(want), free(got);
}

static void test_type_table(void **state)
{
    (void)state;
    for (int t = 0; t < N_WEIGHT_TYPES; t++) {
        uint32_t type = weight_types[t];
        assert_true(kernel_supports(type));
        const tensor_type_traits *tr = tensor_type_get(type);
        int64_t n = 512;
        assert_int_equal(kernel_act_row_size(type, n), row_bytes(kernel_act_type(type), n));
        assert_non_null(tr->dequantize);
    }
    assert_int_equal(kernel_act_type(TENSOR_TYPE_Q4_1), TENSOR_TYPE_Q8_1);
    assert_int_equal(kernel_act_type(TENSOR_TYPE_IQ4_XS), TENSOR_TYPE_Q8_K);
    assert_int_equal(kernel_act_type(TENSOR_TYPE_MXFP4), TENSOR_TYPE_Q8_0);
    assert_int_equal(kernel_act_type(TENSOR_TYPE_F8_E4M3), TENSOR_TYPE_F32);
    assert_int_equal(kernel_act_type(TENSOR_TYPE_Q4_Z), TENSOR_TYPE_Q8_0);
    assert_false(kernel_supports(TENSOR_TYPE_Q8_K));
    assert_false(kernel_supports(TENSOR_TYPE_IQ2_XXS));
    assert_false(kernel_supports(TENSOR_TYPE_COUNT));
    assert_false(kernel_supports(0xFFFFFFFFu));
    printf("kernel variant in use: %s\n", kernel_variant_name());
}

// ---- 2. the references against dequantized math ----

// How far one unquantized activation x may lie from its converted value, given the block's
// float scale where there is one.
static double act_error(uint32_t act_type, const float *x, int64_t i)
{
    double ax = fabs((double)x[i]);
    switch (act_type) {
    case TENSOR_TYPE_F16: return ax * 0x1p-11 + 0x1p-25;
    case TENSOR_TYPE_BF16: return ax * 0x1p-8;
    case TENSOR_TYPE_Q8_0:
    case TENSOR_TYPE_Q8_1: {
        // q = round(x / d): at most d/2 away, plus 127 * |d - half(d)| <= 127 * d * 2^-11.
        int64_t b0 = i / 32 * 32;
        double amax = 0.0;
        for (int64_t j = b0; j < b0 + 32; j++)
            amax = fmax(amax, fabs((double)x[j]));
        return amax / 127.0 * (0.5 + 127.0 * 0x1p-11) * 1.001 + ax * 1e-6;
    }
    case TENSOR_TYPE_Q8_K: {
        int64_t b0 = i / QK_K * QK_K;
        double amax = 0.0;
        for (int64_t j = b0; j < b0 + QK_K; j++)
            amax = fmax(amax, fabs((double)x[j]));
        return amax / 127.0 * 0.5001 + ax * 1e-6;
    }
    default: return ax * 1e-7;
    }
}

// Bound on |ref - dequantized dot| from Q8_1's s, a half rounding of d * sum(q) with the
// unrounded d: per block |m| * (|s| 2^-11 + |sum q| |d - half(d)|), with slack.
static double q8_1_s_error(uint32_t type, const void *w, const void *act, int64_t n)
{
    if (kernel_act_type(type) != TENSOR_TYPE_Q8_1)
        return 0.0;
    const block_q8_1 *y = act;
    double err = 0.0;
    for (int64_t b = 0; b < n / 32; b++) {
        uint16_t m_half;
        // d then m lead both Q4_1 and Q5_1 blocks
        memcpy(&m_half, (const uint8_t *)w + (size_t)b * tensor_type_get(type)->type_size + 2, 2);
        int sum = 0;
        for (int j = 0; j < 32; j++)
            sum += y[b].qs[j];
        double s = fabs((double)tensor_f16_to_f32(y[b].s));
        double d = fabs((double)tensor_f16_to_f32(y[b].d));
        double m = fabs((double)tensor_f16_to_f32(m_half));
        err += m * (s * 0x1p-11 + abs(sum) * d * 0x1p-11) * 1.5;
    }
    return err;
}

// Checks one reference dot of a random row for type, n values, weight mode; returns the
// error against the dequantized dot relative to the mass.
static double check_ref_once(test_rng *rng, uint32_t type, int64_t n, int mode)
{
    uint32_t act_type = kernel_act_type(type);
    void *w = malloc(row_bytes(type, n));
    void *act = malloc(kernel_act_row_size(type, n));
    float *x = malloc((size_t)n * sizeof *x);
    assert_true(w && act && x);
    fill_weights(rng, type, mode, w, n);
    fill_normal(rng, x, n);
    kernel_act_convert(type, x, act, n);
    float *wf = dequantize_row(type, w, n), *af = dequantize_row(act_type, act, n);
    double exact = 0.0, mass = 0.0, vs_x = 0.0, x_err = 0.0;
    for (int64_t i = 0; i < n; i++) {
        exact += (double)wf[i] * af[i];
        mass += fabs((double)wf[i] * af[i]);
        vs_x += (double)wf[i] * x[i];
        x_err += fabs((double)wf[i]) * act_error(act_type, x, i);
    }
    double got = kernel_variant_dot(KERNEL_VARIANT_REF, type, w, act, n);
    double tol = SUM_RTOL * mass + q8_1_s_error(type, w, act, n) + 1e-30;
    if (fabs(got - exact) > tol)
        fail_msg("%s n=%lld mode %d: ref %.9g, dequantized %.9g, tolerance %.3g",
                 tensor_type_get(type)->name, (long long)n, mode, got, exact, tol);
    // Against the unquantized activations: the activation format's rounding, summed.
    if (fabs(got - vs_x) > tol + x_err)
        fail_msg("%s n=%lld: ref %.9g, w.x %.9g, tolerance %.3g", tensor_type_get(type)->name,
                 (long long)n, got, vs_x, tol + x_err);
    free(w), free(act), free(x), free(wf), free(af);
    return fabs(got - exact) / (mass + 1e-30);
}

static void test_ref_vs_dequantized(void **state)
{
    (void)state;
    test_rng rng;
    test_rng_seed(&rng, 11);
    const int64_t lengths[] = {256, 1024, 4096};
    for (int t = 0; t < N_WEIGHT_TYPES; t++) {
        double worst = 0.0;
        for (int l = 0; l < 3; l++) {
            for (int rep = 0; rep < 4; rep++)
                worst = fmax(worst, check_ref_once(&rng, weight_types[t], lengths[l], rep % 2));
        }
        print_message("ref %-7s worst |ref - dequantized| / mass = %.2g\n",
                      tensor_type_get(weight_types[t])->name, worst);
    }
}

// ---- 3. SIMD variants against the reference ----

// The lengths to try for a type: odd block counts, short and long rows.
static int test_lengths(uint32_t type, int64_t out[6])
{
    uint32_t block = tensor_type_get(type)->block_size;
    if (block == 1) {
        const int64_t plain[6] = {5, 64, 100, 1003, 4096, 5632};
        memcpy(out, plain, sizeof plain);
    } else if (block == 32) {
        // 8288: past the AVX-512 kernels' chunk of 8192 values, with a partial last step.
        const int64_t legacy[6] = {32, 96, 800, 2048, 5632, 8288};
        memcpy(out, legacy, sizeof legacy);
    } else {
        const int64_t k[6] = {256, 768, 1280, 2304, 4096, 5632};
        memcpy(out, k, sizeof k);
    }
    return 6;
}

// Compares variant v's dot with the reference on random rows; returns the worst error
// relative to the mass sum |w_i a_i|.
static double check_variant_type(test_rng *rng, kernel_variant v, uint32_t type)
{
    int64_t lengths[6];
    int count = test_lengths(type, lengths);
    double worst = 0.0;
    for (int l = 0; l < count; l++) {
        int64_t n = lengths[l];
        void *w = malloc(row_bytes(type, n)), *act = malloc(kernel_act_row_size(type, n));
        float *x = malloc((size_t)n * sizeof *x);
        assert_true(w && act && x);
        for (int rep = 0; rep < 4; rep++) {
            fill_weights(rng, type, rep % 2, w, n);
            fill_normal(rng, x, n);
            kernel_act_convert(type, x, act, n);
            float *wf = dequantize_row(type, w, n);
            float *af = dequantize_row(kernel_act_type(type), act, n);
            double mass = 1e-30;
            for (int64_t i = 0; i < n; i++)
                mass += fabs((double)wf[i] * af[i]);
            double want = kernel_variant_dot(KERNEL_VARIANT_REF, type, w, act, n);
            double got = kernel_variant_dot(v, type, w, act, n);
            double rel = fabs(got - want) / mass;
            if (rel > SUM_RTOL)
                fail_msg("%s %s n=%lld mode %d: %.9g, ref %.9g (error %.3g of the mass)",
                         kernel_variant_label(v), tensor_type_get(type)->name, (long long)n,
                         rep % 2, got, want, rel);
            worst = fmax(worst, rel);
            free(wf), free(af);
        }
        free(w), free(act), free(x);
    }
    return worst;
}

static void test_variants_vs_ref(void **state)
{
    kernel_variant v = test_variant(state);
    test_rng rng;
    test_rng_seed(&rng, 22);
    int checked = 0;
    for (int t = 0; t < N_WEIGHT_TYPES; t++) {
        uint32_t type = weight_types[t];
        if (!kernel_variant_type_ops(v, type, true)) {
            print_message("%s has no %s kernel of its own (uses a lower variant)\n",
                          kernel_variant_label(v), tensor_type_get(type)->name);
            continue;
        }
        double worst = check_variant_type(&rng, v, type);
        print_message("%-11s %-7s worst |simd - ref| / mass = %.2g\n", kernel_variant_label(v),
                      tensor_type_get(type)->name, worst);
        checked++;
    }
    print_message("%d %s dot products checked against the reference\n", checked,
                  kernel_variant_label(v));
}

// A NaN weight makes a sum NaN: every variant's dot and product of an F8_E4M3 row holding one
// of the NaN codes 0x7F, 0xFF (anywhere: first block, last block, past a chunk) is NaN, and the
// other rows of the product stay finite. (SIMD conversions through F16 would read the codes
// as +-480.)
static void test_f8_nan_codes(void **state)
{
    kernel_variant v = test_variant(state);
    test_rng rng;
    test_rng_seed(&rng, 55);
    enum { ROWS = 5, N_ACT = 7 };
    const int64_t n = 8288;
    const int64_t where[] = {0, 31, 4000, 8192, 8287};
    size_t wb = row_bytes(TENSOR_TYPE_F8_E4M3, n), ab = kernel_act_row_size(TENSOR_TYPE_F8_E4M3, n);
    uint8_t *w = malloc(wb * ROWS), *act = malloc(ab * N_ACT);
    float *x = malloc((size_t)n * sizeof *x), *y = malloc(ROWS * N_ACT * sizeof *y);
    assert_true(w && act && x && y);
    for (int b = 0; b < N_ACT; b++) {
        fill_normal(&rng, x, n);
        kernel_act_convert_variant(v, TENSOR_TYPE_F8_E4M3, x, act + (size_t)b * ab, n);
    }
    for (size_t i = 0; i < sizeof where / sizeof where[0]; i++) {
        fill_weights(&rng, TENSOR_TYPE_F8_E4M3, 1, w, n * ROWS);
        int64_t r = (int64_t)i % ROWS;
        block_f8_e4m3 *blk = (block_f8_e4m3 *)(w + (size_t)r * wb) + where[i] / QK_F8;
        blk->qs[where[i] % QK_F8] = i % 2 ? 0xFF : 0x7F;
        if (!isnan(kernel_variant_dot(v, TENSOR_TYPE_F8_E4M3, w + (size_t)r * wb, act, n)))
            fail_msg("%s: a NaN code at %lld: the dot is not NaN", kernel_variant_label(v),
                     (long long)where[i]);
        for (int64_t n_act = 1; n_act <= N_ACT; n_act += 3) {
            kernel_matmul_variant(v, TENSOR_TYPE_F8_E4M3, false, w, n, 0, ROWS, act, n_act, y,
                                  ROWS);
            for (int64_t b = 0; b < n_act; b++)
                for (int64_t k = 0; k < ROWS; k++)
                    if (isnan(y[b * ROWS + k]) != (k == r))
                        fail_msg("%s: NaN code in row %lld at %lld, n_act %lld: y[%lld][%lld] = "
                                 "%g",
                                 kernel_variant_label(v), (long long)r, (long long)where[i],
                                 (long long)n_act, (long long)b, (long long)k,
                                 (double)y[b * ROWS + k]);
        }
    }
    free(w), free(act), free(x), free(y);
}

// ---- 4. matrix product against row-by-row dots ----

// For a variant: rows [r0, r1) of a product with n_act activation rows equal that variant's
// single dots exactly (every register tile does each pair's arithmetic the way the dot does,
// so a row's result does not depend on the batch it is in) and the reference within SUM_RTOL
// of the mass; outputs outside those rows stay untouched. 37 rows from 1 to 35 and n_act from
// 1 to 64 leave partial tiles of every shape; ldy is wider than the matrix.
static void check_matmul(test_rng *rng, kernel_variant v, uint32_t type, int64_t n_act, int64_t n)
{
    const int64_t rows = 37, r0 = 1, r1 = rows - 2, ldy = 41;
    size_t wb = row_bytes(type, n), ab = kernel_act_row_size(type, n);
    uint8_t *w = malloc(wb * rows), *act = malloc(ab * (size_t)n_act);
    float *x = malloc((size_t)n * sizeof *x), *y = malloc((size_t)(ldy * n_act) * sizeof *y);
    double *mass = malloc((size_t)(rows * n_act) * sizeof *mass);
    assert_true(w && act && x && y && mass);
    // Random codes and sub-block scales (mode 1): every bit pattern, and no quantizer search.
    fill_weights(rng, type, 1, w, n * rows);
    for (int64_t b = 0; b < n_act; b++) {
        fill_normal(rng, x, n);
        kernel_act_convert(type, x, act + (size_t)b * ab, n);
    }
    float *af = dequantize_row(kernel_act_type(type), act, n * n_act);
    for (int64_t r = r0; r < r1; r++) {
        float *wf = dequantize_row(type, w + (size_t)r * wb, n);
        for (int64_t b = 0; b < n_act; b++) {
            double m = 1e-30;
            for (int64_t i = 0; i < n; i++)
                m += fabs((double)wf[i] * af[b * n + i]);
            mass[r * n_act + b] = m;
        }
        free(wf);
    }
    free(af);
    for (int64_t i = 0; i < ldy * n_act; i++)
        y[i] = -12345.0f;
    kernel_matmul_variant(v, type, false, w, n, r0, r1, act, n_act, y, ldy);
    for (int64_t b = 0; b < n_act; b++) {
        for (int64_t r = 0; r < ldy; r++) {
            float got = y[b * ldy + r];
            bool in = r >= r0 && r < r1;
            const uint8_t *wr = w + (size_t)r * wb, *ar = act + (size_t)b * ab;
            float want = in ? kernel_variant_dot(v, type, wr, ar, n) : -12345.0f;
            if (got != want)
                fail_msg("%s %s n=%lld n_act=%lld: y[%lld][%lld] = %.9g, dot %.9g",
                         kernel_variant_label(v), tensor_type_get(type)->name, (long long)n,
                         (long long)n_act, (long long)b, (long long)r, got, want);
            if (!in)
                continue;
            double exact = kernel_variant_dot(KERNEL_VARIANT_REF, type, wr, ar, n);
            if (fabs(got - exact) > SUM_RTOL * mass[r * n_act + b])
                fail_msg("%s %s n=%lld n_act=%lld: y[%lld][%lld] = %.9g, ref %.9g",
                         kernel_variant_label(v), tensor_type_get(type)->name, (long long)n,
                         (long long)n_act, (long long)b, (long long)r, got, exact);
        }
    }
    free(w), free(act), free(x), free(y), free(mass);
}

// Row lengths for the product test: one with a partial last step, and for the types of
// 32-value blocks, one past the kernels' 8192-value chunks.
static int64_t matmul_length(uint32_t type, bool long_row)
{
    uint32_t block = tensor_type_get(type)->block_size;
    if (block == QK_K)
        return long_row ? 8448 : 768;
    if (block == 32)
        return long_row ? 8288 : 416;
    return long_row ? 8200 : 100;
}

static void test_matmul_vs_dot(void **state)
{
    kernel_variant v = test_variant(state);
    test_rng rng;
    test_rng_seed(&rng, 33);
    const int64_t batch[] = {1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 33, 64};
    enum { N_BATCH = sizeof batch / sizeof batch[0] };
    for (int t = 0; t < N_WEIGHT_TYPES; t++) {
        for (int k = 0; k < N_BATCH; k++) {
            // Long rows with a few batch sizes only: they cost the scalar variant time.
            bool long_row = batch[k] == 3 || batch[k] == 9;
            check_matmul(&rng, v, weight_types[t], batch[k],
                         matmul_length(weight_types[t], long_row));
        }
    }
}

// The public entry points use the active variant.
static void test_public_matmul(void **state)
{
    (void)state;
    test_rng rng;
    test_rng_seed(&rng, 34);
    enum { ROWS = 6, N_ACT = 5 };
    const int64_t n = 512, rows = ROWS, n_act = N_ACT;
    for (int t = 0; t < N_WEIGHT_TYPES; t++) {
        uint32_t type = weight_types[t];
        size_t wb = row_bytes(type, n), ab = kernel_act_row_size(type, n);
        uint8_t *w = malloc(wb * rows), *act = malloc(ab * n_act);
        float *x = malloc(n * sizeof *x), y0[ROWS * N_ACT], y1[ROWS * N_ACT];
        assert_true(w && act && x);
        fill_weights(&rng, type, 0, w, n * rows);
        for (int64_t b = 0; b < n_act; b++) {
            fill_normal(&rng, x, n);
            kernel_act_convert(type, x, act + (size_t)b * ab, n);
        }
        kernel_matmul(type, w, n, 0, rows, act, n_act, y0, rows);
        kernel_matmul_variant(kernel_variant_active(), type, false, w, n, 0, rows, act, n_act, y1,
                              rows);
        assert_memory_equal(y0, y1, sizeof y0);
        assert_true(kernel_dot(type, w, act, n) == y0[0]);
        free(w), free(act), free(x);
    }
}

// ---- 5. float helpers ----

static void check_float_ops(test_rng *rng, kernel_variant v, int64_t n)
{
    const kernel_float_ops *ops = kernel_variant_float_ops(v);
    const kernel_float_ops *ref = kernel_variant_float_ops(KERNEL_VARIANT_REF);
    float *a = malloc((size_t)n * sizeof *a), *b = malloc((size_t)n * sizeof *b);
    float *y0 = malloc((size_t)n * sizeof *y0), *y1 = malloc((size_t)n * sizeof *y1);
    uint16_t *h = malloc((size_t)n * sizeof *h);
    assert_true(a && b && y0 && y1 && h);
    fill_normal(rng, a, n);
    fill_normal(rng, b, n);
    fill_normal(rng, y0, n);
    kernel_act_f16_ref(b, h, n);
    double mass = 1e-30, mass_h = 1e-30;
    for (int64_t i = 0; i < n; i++) {
        mass += fabs((double)a[i] * b[i]);
        mass_h += fabs((double)a[i] * tensor_f16_to_f32(h[i]));
    }
    assert_true(fabs((double)ops->dot_f32(a, b, n) - ref->dot_f32(a, b, n)) <= SUM_RTOL * mass);
    assert_true(fabs((double)ops->dot_f32_f16(a, h, n) - ref->dot_f32_f16(a, h, n)) <=
                SUM_RTOL * mass_h);
    // axpy: a fused multiply-add may skip one rounding: |diff| <= 2^-23 (|y| + |a x|).
    const float alpha = 0.37f;
    for (int pass = 0; pass < 2; pass++) {
        memcpy(y1, y0, (size_t)n * sizeof *y1);
        float *y2 = malloc((size_t)n * sizeof *y2);
        assert_non_null(y2);
        memcpy(y2, y0, (size_t)n * sizeof *y2);
        if (pass == 0) {
            ops->axpy_f32(y1, alpha, b, n);
            ref->axpy_f32(y2, alpha, b, n);
        } else {
            ops->axpy_f16(y1, alpha, h, n);
            ref->axpy_f16(y2, alpha, h, n);
        }
        for (int64_t i = 0; i < n; i++) {
            double bound = 0x1p-23 * (fabs((double)y0[i]) + fabs((double)alpha * b[i]) * 1.01);
            if (fabs((double)y1[i] - y2[i]) > bound)
                fail_msg("%s axpy pass %d n=%lld i=%lld: %.9g vs %.9g", kernel_variant_label(v),
                         pass, (long long)n, (long long)i, y1[i], y2[i]);
        }
        free(y2);
    }
    free(a), free(b), free(y0), free(y1), free(h);
}

// The attention row kernels for n_q queries: dot_rows equals the scaled dot of every pair
// within the sum tolerance, axpy_rows the sum of the rows' axpys within the rounding each
// step may skip, and each query's result does not depend on how many queries share the call
// (bit for bit: a token's attention must not depend on its batch).
static void check_row_ops(test_rng *rng, kernel_variant v, int64_t n, int64_t n_rows, int64_t n_q)
{
    const kernel_float_ops *ops = kernel_variant_float_ops(v);
    const kernel_float_ops *ref = kernel_variant_float_ops(KERNEL_VARIANT_REF);
    int64_t pitch = n + 5; // rows apart by more than their length, as attention reads them
    int64_t q_stride = n + 3, w_stride = n_rows + 2, y_stride = n + 1;
    const float scale = 0.125f;
    float *q = malloc((size_t)(q_stride * n_q) * sizeof *q);
    float *rows = malloc((size_t)(pitch * n_rows) * sizeof *rows);
    float *w = malloc((size_t)(w_stride * n_q) * sizeof *w);
    float *out = malloc((size_t)(w_stride * n_q) * sizeof *out), one[16];
    float *y0 = malloc((size_t)(y_stride * n_q) * sizeof *y0);
    float *y1 = malloc((size_t)(y_stride * n_q) * sizeof *y1);
    float *y2 = malloc((size_t)(y_stride * n_q) * sizeof *y2);
    float *y3 = malloc((size_t)n * sizeof *y3);
    assert_true(q && rows && w && out && y0 && y1 && y2 && y3 && n_rows <= 16);
    fill_normal(rng, q, q_stride * n_q);
    fill_normal(rng, rows, pitch * n_rows);
    fill_normal(rng, w, w_stride * n_q);
    fill_normal(rng, y0, y_stride * n_q);
    ops->dot_rows_f32(q, q_stride, n_q, rows, pitch, n_rows, n, scale, out, w_stride);
    for (int64_t j = 0; j < n_q; j++) {
        const float *qj = q + j * q_stride;
        ops->dot_rows_f32(qj, q_stride, 1, rows, pitch, n_rows, n, scale, one, 0);
        for (int64_t r = 0; r < n_rows; r++) {
            double mass = 1e-30;
            for (int64_t i = 0; i < n; i++)
                mass += fabs((double)qj[i] * rows[r * pitch + i]) * scale;
            double want = scale * ref->dot_f32(qj, rows + r * pitch, n);
            float got = out[j * w_stride + r];
            if (fabs(got - want) > SUM_RTOL * mass)
                fail_msg("%s dot_rows n=%lld query %lld row %lld: %.9g vs %.9g",
                         kernel_variant_label(v), (long long)n, (long long)j, (long long)r, got,
                         want);
            if (got != one[r])
                fail_msg("%s dot_rows n=%lld query %lld row %lld: %.9g alone, %.9g among %lld",
                         kernel_variant_label(v), (long long)n, (long long)j, (long long)r, one[r],
                         got, (long long)n_q);
        }
    }
    memcpy(y1, y0, (size_t)(y_stride * n_q) * sizeof *y1);
    memcpy(y2, y0, (size_t)(y_stride * n_q) * sizeof *y2);
    ops->axpy_rows_f32(y1, y_stride, n_q, w, w_stride, rows, pitch, n_rows, n);
    ref->axpy_rows_f32(y2, y_stride, n_q, w, w_stride, rows, pitch, n_rows, n);
    for (int64_t j = 0; j < n_q; j++) {
        memcpy(y3, y0 + j * y_stride, (size_t)n * sizeof *y3);
        ops->axpy_rows_f32(y3, 0, 1, w + j * w_stride, 0, rows, pitch, n_rows, n);
        for (int64_t i = 0; i < n; i++) {
            double mass = fabs((double)y0[j * y_stride + i]);
            for (int64_t r = 0; r < n_rows; r++)
                mass += fabs((double)w[j * w_stride + r] * rows[r * pitch + i]);
            float got = y1[j * y_stride + i], want = y2[j * y_stride + i];
            if (fabs((double)got - want) > 0x1p-22 * (double)(n_rows + 1) * mass)
                fail_msg("%s axpy_rows n=%lld query %lld i=%lld: %.9g vs %.9g",
                         kernel_variant_label(v), (long long)n, (long long)j, (long long)i, got,
                         want);
            if (got != y3[i])
                fail_msg("%s axpy_rows n=%lld query %lld i=%lld: %.9g alone, %.9g among %lld",
                         kernel_variant_label(v), (long long)n, (long long)j, (long long)i, y3[i],
                         got, (long long)n_q);
        }
    }
    // F16 rows: the same results as the float kernels on the rows converted (exactly).
    uint16_t *halves = malloc((size_t)(pitch * n_rows) * sizeof *halves);
    float *out16 = malloc((size_t)(w_stride * n_q) * sizeof *out16);
    assert_true(halves && out16);
    for (int64_t i = 0; i < pitch * n_rows; i++) {
        halves[i] = tensor_f32_to_f16(rows[i]);
        rows[i] = tensor_f16_to_f32(halves[i]);
    }
    ops->dot_rows_f32(q, q_stride, n_q, rows, pitch, n_rows, n, scale, out, w_stride);
    ops->dot_rows_f16(q, q_stride, n_q, halves, pitch, n_rows, n, scale, out16, w_stride);
    for (int64_t j = 0; j < n_q; j++)
        for (int64_t r = 0; r < n_rows; r++)
            if (out16[j * w_stride + r] != out[j * w_stride + r])
                fail_msg("%s dot_rows_f16 n=%lld query %lld row %lld: %.9g, as floats %.9g",
                         kernel_variant_label(v), (long long)n, (long long)j, (long long)r,
                         out16[j * w_stride + r], out[j * w_stride + r]);
    memcpy(y1, y0, (size_t)(y_stride * n_q) * sizeof *y1);
    memcpy(y2, y0, (size_t)(y_stride * n_q) * sizeof *y2);
    ops->axpy_rows_f32(y1, y_stride, n_q, w, w_stride, rows, pitch, n_rows, n);
    ops->axpy_rows_f16(y2, y_stride, n_q, w, w_stride, halves, pitch, n_rows, n);
    for (int64_t j = 0; j < n_q; j++)
        for (int64_t i = 0; i < n; i++)
            if (y2[j * y_stride + i] != y1[j * y_stride + i])
                fail_msg("%s axpy_rows_f16 n=%lld query %lld i=%lld: %.9g, as floats %.9g",
                         kernel_variant_label(v), (long long)n, (long long)j, (long long)i,
                         y2[j * y_stride + i], y1[j * y_stride + i]);
    free(halves), free(out16);
    free(q), free(rows), free(w), free(out), free(y0), free(y1), free(y2), free(y3);
}

// max_f32 equals the scalar maximum for every length and any position of the largest value,
// and passes over NaN.
static void check_max(test_rng *rng, kernel_variant v)
{
    const kernel_float_ops *ops = kernel_variant_float_ops(v);
    float x[80];
    fill_normal(rng, x, 80);
    for (int64_t n = 1; n <= 80; n++)
        for (int64_t at = 0; at < n; at += 7) {
            float keep = x[at];
            x[at] = 1e6f + (float)n;
            float want = -INFINITY;
            for (int64_t i = 0; i < n; i++)
                want = x[i] > want ? x[i] : want;
            if (ops->max_f32(x, n) != want)
                fail_msg("%s max_f32 n=%lld: %.9g vs %.9g", kernel_variant_label(v), (long long)n,
                         ops->max_f32(x, n), want);
            x[at] = keep;
        }
    float nan_first[3] = {NAN, -3.0f, -5.0f};
    assert_true(ops->max_f32(nan_first, 3) == -3.0f);
    assert_true(ops->max_f32(x, 0) == -INFINITY);
}

// exp_sum and swiglu against expf: every value within 4 float ulps (the polynomial's error
// plus roundings), the sum within the float rounding of n additions; the ends of the range
// (underflow, overflow to inf, NaN) keep their meaning.
static void check_exp_ops(test_rng *rng, kernel_variant v, int64_t n)
{
    const kernel_float_ops *ops = kernel_variant_float_ops(v);
    float *x = malloc((size_t)n * sizeof *x), *e = malloc((size_t)n * sizeof *e);
    float *g = malloc((size_t)n * sizeof *g), *u = malloc((size_t)n * sizeof *u);
    assert_true(x && e && g && u);
    fill_normal(rng, x, n);
    fill_normal(rng, u, n);
    for (int64_t i = 0; i < n; i++)
        x[i] *= 20.0f; // scores spread over e^-60 .. e^60
    float max = x[0];
    for (int64_t i = 1; i < n; i++)
        max = x[i] > max ? x[i] : max;
    memcpy(e, x, (size_t)n * sizeof *e);
    memcpy(g, x, (size_t)n * sizeof *g);
    double want_sum = 0;
    float sum = ops->exp_sum_f32(e, n, max);
    for (int64_t i = 0; i < n; i++) {
        float d = x[i] - max; // rounded to float, as every variant does
        double want = exp((double)d);
        want_sum += want;
        if (want > 1e-37 && fabs(e[i] - want) > 4 * 0x1p-23 * want)
            fail_msg("%s exp n=%lld i=%lld exp(%.9g): %.9g vs %.9g", kernel_variant_label(v),
                     (long long)n, (long long)i, d, e[i], want);
        if (want <= 1e-37 && !(e[i] >= 0 && e[i] < 1e-36f))
            fail_msg("%s exp(%.9g) = %.9g", kernel_variant_label(v), d, e[i]);
    }
    if (fabs(sum - want_sum) > 1e-6 * (double)(n + 4) * want_sum)
        fail_msg("%s exp sum n=%lld: %.9g vs %.9g", kernel_variant_label(v), (long long)n, sum,
                 want_sum);
    ops->swiglu_f32(g, u, n);
    for (int64_t i = 0; i < n; i++) {
        double want = (double)x[i] / (1.0 + exp(-(double)x[i])) * u[i];
        if (fabs(g[i] - want) > 6 * 0x1p-23 * fabs(want) + 1e-37)
            fail_msg("%s swiglu n=%lld i=%lld silu(%.9g) * %.9g: %.9g vs %.9g",
                     kernel_variant_label(v), (long long)n, (long long)i, x[i], u[i], g[i], want);
    }
    const float ends[4] = {-200.0f, 200.0f, NAN, 0.0f}, one_up[4] = {1, 1, 1, 1};
    float ge[4], ee[4];
    memcpy(ge, ends, sizeof ends);
    ops->swiglu_f32(ge, one_up, 4);
    assert_true(ge[0] == 0.0f && ge[1] == 200.0f && isnan(ge[2]) && ge[3] == 0.0f);
    memcpy(ee, ends, sizeof ends);
    ops->exp_sum_f32(ee, 4, 0.0f);
    assert_true(ee[0] >= 0.0f && ee[0] < 1e-36f && ee[3] == 1.0f && isnan(ee[2]));
    assert_true(isinf(ee[1]));
    free(x), free(e), free(g), free(u);
}

// Packed rows (a variant's own layout, where it has one) give exactly the plain rows'
// products: row lengths with and without leftover blocks, 1 to 13 activation rows, row
// ranges that start anywhere; packing in place gives the same bytes. Registered for the
// variants that have packed layouts (the test fails if one has none).
static void test_packed_matmul(void **state)
{
    kernel_variant v = test_variant(state);
    test_rng rng;
    test_rng_seed(&rng, 45);
    int checked = 0;
    for (uint32_t type = 0; type < TENSOR_TYPE_COUNT; type++) {
        const kernel_type_ops *ops = kernel_variant_type_ops(v, type, true);
        if (!ops || !ops->pack)
            continue;
        const tensor_type_traits *tr = tensor_type_get(type);
        const int64_t lengths[] = {256, 288, 2048, 2080, 8192 + 288}; // the last: two chunks
        for (int l = 0; l < 5; l++) {
            int64_t n = lengths[l] / tr->block_size * tr->block_size, rows = 37;
            size_t rb = row_bytes(type, n);
            uint8_t *w = malloc(rb * rows), *pw = malloc(rb * rows);
            size_t as = kernel_act_row_size(type, n);
            uint8_t *act = malloc(as * 13);
            float *x = malloc((size_t)n * sizeof *x);
            float *y0 = calloc((size_t)(rows * 13), sizeof *y0);
            float *y1 = calloc((size_t)(rows * 13), sizeof *y1);
            assert_true(w && pw && act && x && y0 && y1);
            fill_weights(&rng, type, 1, w, rows * n); // every code and nibble pattern
            for (int b = 0; b < 13; b++) {
                fill_normal(&rng, x, n);
                kernel_act_convert_variant(v, type, x, act + (size_t)b * as, n);
            }
            for (int64_t r = 0; r < rows; r++)
                ops->pack(w + (size_t)r * rb, pw + (size_t)r * rb, n);
            for (int64_t n_act = 1; n_act <= 13; n_act += 3) {
                for (int64_t r0 = 0; r0 < rows; r0 += 11) {
                    int64_t r1 = r0 + 11 < rows ? r0 + 11 : rows;
                    kernel_matmul_variant(v, type, false, w, n, r0, r1, act, n_act, y0, rows);
                    kernel_matmul_variant(v, type, true, pw, n, r0, r1, act, n_act, y1, rows);
                }
                assert_memory_equal(y0, y1, (size_t)(rows * n_act) * sizeof *y0);
            }
            for (int64_t r = 0; r < rows; r++) // in place
                ops->pack(w + (size_t)r * rb, w + (size_t)r * rb, n);
            assert_memory_equal(w, pw, rb * rows);
            free(w), free(pw), free(act), free(x), free(y0), free(y1);
            checked++;
        }
    }
    if (!checked)
        fail_msg("%s has no packed layout: register test_packed_matmul for it no more",
                 kernel_variant_label(v));
    print_message("%d packed products of %s checked\n", checked, kernel_variant_label(v));
}

// The public packing entry points use the active variant's layouts.
static void test_public_packed(void **state)
{
    (void)state;
    test_rng rng;
    test_rng_seed(&rng, 46);
    int packs = 0;
    enum { ROWS = 5, N_ACT = 3 };
    const int64_t n = 512;
    for (uint32_t type = 0; type < TENSOR_TYPE_COUNT; type++) {
        if (!kernel_supports(type) || !kernel_packs(type))
            continue;
        const kernel_type_ops *ops = kernel_variant_type_ops(kernel_variant_active(), type, false);
        assert_non_null(ops->pack);
        size_t rb = row_bytes(type, n), as = kernel_act_row_size(type, n);
        uint8_t *w = malloc(rb * ROWS), *pw = malloc(rb * ROWS), *act = malloc(as * N_ACT);
        float *x = malloc(n * sizeof *x), y0[ROWS * N_ACT], y1[ROWS * N_ACT];
        assert_true(w && pw && act && x);
        fill_weights(&rng, type, 1, w, n * ROWS);
        for (int b = 0; b < N_ACT; b++) {
            fill_normal(&rng, x, n);
            kernel_act_convert(type, x, act + (size_t)b * as, n);
        }
        kernel_pack_rows(type, w, pw, ROWS, n);
        kernel_matmul(type, w, n, 0, ROWS, act, N_ACT, y0, ROWS);
        kernel_matmul_packed(type, pw, n, 0, ROWS, act, N_ACT, y1, ROWS);
        assert_memory_equal(y0, y1, sizeof y0);
        free(w), free(pw), free(act), free(x);
        packs++;
    }
    print_message("%s packs %d types\n", kernel_variant_name(), packs);
}

static void test_float_helpers(void **state)
{
    kernel_variant v = test_variant(state);
    test_rng rng;
    test_rng_seed(&rng, 44);
    const int64_t lengths[] = {1, 7, 16, 33, 64, 100, 128, 256, 1003, 4096};
    for (int l = 0; l < 10; l++) {
        check_float_ops(&rng, v, lengths[l]);
        for (int64_t rows = 1; rows <= 16; rows += 5)
            for (int64_t n_q = 1; n_q <= 11; n_q += 5)
                check_row_ops(&rng, v, lengths[l], rows, n_q);
        check_exp_ops(&rng, v, lengths[l]);
    }
    check_max(&rng, v);
}

// Attention over Q8_0 cache rows: a variant's dot_rows_q8_0 and axpy_rows_q8_0 equal the
// scalar reference exactly (int8 sums are exact; the float steps are the same ones in the same
// order, FMA where the reference calls fmaf), and the reference is the float product of the
// dequantized rows within the rounding of the sums.
// K rows hold every code (-128 included) and random scales; queries come from the Q8_0
// conversion; rows sit 2 bytes off any wider alignment (a block's F16 scale needs 2, as a KV
// row of blocks of 34 bytes always has); head counts and widths cover one and
// several passes, sixteen-segment groups and leftovers, and widths past the SIMD's 64 blocks.
static void check_q8_0_rows(test_rng *rng, kernel_variant v, int64_t n, int64_t n_q, int64_t n_rows)
{
    const kernel_float_ops *ops = kernel_variant_float_ops(v);
    size_t q_bytes = row_bytes(TENSOR_TYPE_Q8_0, n), q_stride = q_bytes + 34;
    size_t pitch = q_bytes + 6;
    const float scale = 0.125f;
    int64_t out_stride = n_rows + 3;
    float *x = malloc((size_t)n * sizeof *x), *k = malloc((size_t)n * sizeof *k);
    uint8_t *q = calloc((size_t)n_q, q_stride), *rows = calloc((size_t)n_rows, pitch);
    float *got = malloc((size_t)(n_q * out_stride) * sizeof *got);
    float *want = malloc((size_t)(n_q * out_stride) * sizeof *want);
    assert_true(x && k && q && rows && got && want);
    for (int64_t j = 0; j < n_q; j++) {
        fill_normal(rng, x, n);
        kernel_act_convert_variant(KERNEL_VARIANT_REF, TENSOR_TYPE_Q8_0, x, q + j * q_stride, n);
    }
    for (int64_t r = 0; r < n_rows; r++) {
        block_q8_0 *blk = (block_q8_0 *)(rows + r * pitch);
        for (int64_t b = 0; b < n / QK8_0; b++) {
            blk[b].d = tensor_f32_to_f16(0.001f +
                                         (float)((uint32_t)test_rng_u64(rng) % 1000) * 1e-4f);
            for (int i = 0; i < QK8_0; i++)
                blk[b].qs[i] = (int8_t)(uint8_t)(uint32_t)test_rng_u64(rng);
        }
    }
    for (size_t i = 0; i < (size_t)(n_q * out_stride); i++)
        got[i] = want[i] = -1.0f;
    ops->dot_rows_q8_0(q, q_stride, n_q, rows, pitch, n_rows, n, scale, got, out_stride);
    kernel_dot_rows_q8_0_ref(q, q_stride, n_q, rows, pitch, n_rows, n, scale, want, out_stride);
    for (int64_t j = 0; j < n_q; j++) {
        tensor_type_get(TENSOR_TYPE_Q8_0)->dequantize(q + j * q_stride, x, n);
        for (int64_t r = 0; r < out_stride; r++) {
            float g = got[j * out_stride + r], w = want[j * out_stride + r];
            if (g != w || (r >= n_rows && g != -1.0f))
                fail_msg("%s dot_rows_q8_0 n=%lld heads %lld query %lld row %lld: %.9g vs "
                         "scalar %.9g",
                         kernel_variant_label(v), (long long)n, (long long)n_q, (long long)j,
                         (long long)r, g, w);
            if (r >= n_rows)
                continue;
            tensor_type_get(TENSOR_TYPE_Q8_0)->dequantize(rows + r * pitch, k, n);
            double exact = 0, mass = 1e-30;
            for (int64_t i = 0; i < n; i++)
                exact += (double)x[i] * k[i], mass += fabs((double)x[i] * k[i]);
            if (fabs(w - scale * exact) > 1e-5 * scale * mass)
                fail_msg("dot_rows_q8_0_ref n=%lld query %lld row %lld: %.9g, dequantized %.9g",
                         (long long)n, (long long)j, (long long)r, w, scale * exact);
        }
    }
    // The weighted sum of the rows: exactly the reference, and the dequantized rows' sum in
    // double within the rounding of n_rows float steps.
    int64_t y_stride = n + 5;
    float *w = malloc((size_t)(n_q * out_stride) * sizeof *w);
    float *y0 = malloc((size_t)(n_q * y_stride) * sizeof *y0);
    float *y1 = malloc((size_t)(n_q * y_stride) * sizeof *y1);
    float *y2 = malloc((size_t)(n_q * y_stride) * sizeof *y2);
    assert_true(w && y0 && y1 && y2);
    fill_normal(rng, w, n_q * out_stride);
    fill_normal(rng, y0, n_q * y_stride);
    memcpy(y1, y0, (size_t)(n_q * y_stride) * sizeof *y1);
    memcpy(y2, y0, (size_t)(n_q * y_stride) * sizeof *y2);
    ops->axpy_rows_q8_0(y1, y_stride, n_q, w, out_stride, rows, pitch, n_rows, n);
    kernel_axpy_rows_q8_0_ref(y2, y_stride, n_q, w, out_stride, rows, pitch, n_rows, n);
    float *deq = malloc((size_t)(n * n_rows) * sizeof *deq);
    assert_true(deq);
    for (int64_t r = 0; r < n_rows; r++)
        tensor_type_get(TENSOR_TYPE_Q8_0)->dequantize(rows + r * pitch, deq + r * n, n);
    for (int64_t j = 0; j < n_q; j++)
        for (int64_t i = 0; i < y_stride; i++) {
            size_t at = (size_t)(j * y_stride + i);
            if (y1[at] != y2[at] || (i >= n && y1[at] != y0[at]))
                fail_msg("%s axpy_rows_q8_0 n=%lld heads %lld query %lld value %lld: %.9g vs "
                         "scalar %.9g",
                         kernel_variant_label(v), (long long)n, (long long)n_q, (long long)j,
                         (long long)i, y1[at], y2[at]);
            if (i >= n)
                continue;
            double exact = y0[at], mass = fabs((double)y0[at]);
            for (int64_t r = 0; r < n_rows; r++) {
                double t = (double)w[j * out_stride + r] * deq[r * n + i];
                exact += t, mass += fabs(t);
            }
            if (fabs(y2[at] - exact) > 1e-5 * mass)
                fail_msg("axpy_rows_q8_0_ref n=%lld query %lld value %lld: %.9g, in double %.9g",
                         (long long)n, (long long)j, (long long)i, y2[at], exact);
        }
    free(w), free(y0), free(y1), free(y2), free(deq);
    free(x), free(k), free(q), free(rows), free(got), free(want);
}

static void test_q8_0_rows(void **state)
{
    kernel_variant v = test_variant(state);
    test_rng rng;
    test_rng_seed(&rng, 45);
    const int64_t widths[] = {32, 64, 96, 128, 256, 576, 2048, 2080};
    const int64_t heads[] = {1, 3, 8, 13, 40};
    for (int w = 0; w < 8; w++)
        for (int h = 0; h < 5; h++)
            for (int64_t n_rows = 1; n_rows <= 16; n_rows += 15)
                check_q8_0_rows(&rng, v, widths[w], heads[h], n_rows);
}

// The public helpers agree with the active variant.
static void test_public_float_helpers(void **state)
{
    (void)state;
    float a[3] = {1, 2, 3}, b[3] = {4, 5, 6};
    assert_true(kernel_dot_f32(a, b, 3) == 32.0f);
    kernel_axpy_f32(a, 2.0f, b, 3);
    assert_true(a[0] == 9.0f && a[1] == 12.0f && a[2] == 15.0f);
}

// GELU (tanh form) in double, the exact value kernel_geglu_f32 rounds.
static double gelu_exact(double x)
{
    return 0.5 * x * (1.0 + tanh(sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
}

// GeGLU in ggml's F16 steps: its GELU depends on x only through x's F16 value, is itself an
// F16 value within the roundings of the exact GELU, scales exactly with up, and is 0 below
// -10 and x above 10. A GELU computed in float throughout fails the first two.
static void test_geglu_f16_steps(void **state)
{
    (void)state;
    test_rng rng;
    test_rng_seed(&rng, 77);
    enum { N = 4096 };
    static float x[N], y[N], y_next[N], y_up[N], up[N], one[N];
    for (int i = 0; i < N; i++) {
        x[i] = test_rng_normal(&rng) * (i % 4 ? 2.0f : 0.05f), up[i] = test_rng_normal(&rng);
        one[i] = 1.0f;
        // The next float towards zero rounds to the same F16 value unless x is on an F16 step.
        y_next[i] = nextafterf(x[i], 0.0f);
    }
    memcpy(y, x, sizeof y);
    memcpy(y_up, x, sizeof y_up);
    kernel_geglu_f32(y, one, N);
    kernel_geglu_f32(y_next, one, N);
    kernel_geglu_f32(y_up, up, N);
    int same_step = 0;
    for (int i = 0; i < N; i++) {
        float h = tensor_f16_to_f32(tensor_f32_to_f16(x[i]));
        if (tensor_f16_to_f32(tensor_f32_to_f16(nextafterf(x[i], 0.0f))) == h) {
            same_step++;
            if (y_next[i] != y[i])
                fail_msg("geglu(%.9g) = %.9g but geglu(%.9g) = %.9g (same F16 input %.9g)", x[i],
                         y[i], nextafterf(x[i], 0.0f), y_next[i], h);
        }
        if (tensor_f16_to_f32(tensor_f32_to_f16(y[i])) != y[i])
            fail_msg("geglu(%.9g) = %.9g is not an F16 value", x[i], y[i]);
        // Two F16 roundings: of x (half an F16 step of x, times the slope, at most 1.13) and
        // of the result (half a step of it), with a float's slack.
        double want = gelu_exact(h), in_step = ldexp(fabs(h), -11) * 1.13;
        if (fabs(y[i] - gelu_exact(x[i])) > in_step + ldexp(fabs(want), -11) + 1e-7)
            fail_msg("geglu(%.9g) = %.9g, exact GELU %.9g", x[i], y[i], gelu_exact(x[i]));
        if (y_up[i] != y[i] * up[i])
            fail_msg("geglu(%.9g) * %.9g = %.9g, not %.9g", x[i], up[i], y_up[i], y[i] * up[i]);
    }
    assert_true(same_step > N / 2);
    float ends[4] = {-10.0f, -30.0f, 10.0f, 25.0f};
    kernel_geglu_f32(ends, one, 4);
    assert_true(ends[0] == 0.0f && ends[1] == 0.0f && ends[2] == 10.0f && ends[3] == 25.0f);
}

// A test of one variant: named after the test and the variant, the variant as its state.
#define VARIANT_TEST(f, v, label)                                                                  \
    {                                                                                              \
#f " " label, f, NULL, NULL, (void *)&variant_ids[v]                                       \
    }

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_act_q8_0_block),
        cmocka_unit_test(test_act_q8_k_block),
        cmocka_unit_test(test_act_float_formats),
        VARIANT_TEST(test_act_variants_exact, KERNEL_VARIANT_AVX2, "avx2"),
        VARIANT_TEST(test_act_variants_exact, KERNEL_VARIANT_AVX512, "avx512_vnni"),
        cmocka_unit_test(test_type_table),
        cmocka_unit_test(test_ref_vs_dequantized),
        VARIANT_TEST(test_variants_vs_ref, KERNEL_VARIANT_AVX2, "avx2"),
        VARIANT_TEST(test_variants_vs_ref, KERNEL_VARIANT_AVX512, "avx512_vnni"),
        VARIANT_TEST(test_f8_nan_codes, KERNEL_VARIANT_REF, "scalar"),
        VARIANT_TEST(test_f8_nan_codes, KERNEL_VARIANT_AVX2, "avx2"),
        VARIANT_TEST(test_f8_nan_codes, KERNEL_VARIANT_AVX512, "avx512_vnni"),
        VARIANT_TEST(test_matmul_vs_dot, KERNEL_VARIANT_REF, "scalar"),
        VARIANT_TEST(test_matmul_vs_dot, KERNEL_VARIANT_AVX2, "avx2"),
        VARIANT_TEST(test_matmul_vs_dot, KERNEL_VARIANT_AVX512, "avx512_vnni"),
        cmocka_unit_test(test_public_matmul),
        VARIANT_TEST(test_packed_matmul, KERNEL_VARIANT_AVX512, "avx512_vnni"),
        cmocka_unit_test(test_public_packed),
        VARIANT_TEST(test_float_helpers, KERNEL_VARIANT_REF, "scalar"),
        VARIANT_TEST(test_float_helpers, KERNEL_VARIANT_AVX2, "avx2"),
        VARIANT_TEST(test_float_helpers, KERNEL_VARIANT_AVX512, "avx512_vnni"),
        VARIANT_TEST(test_q8_0_rows, KERNEL_VARIANT_REF, "scalar"),
        VARIANT_TEST(test_q8_0_rows, KERNEL_VARIANT_AVX2, "avx2"),
        VARIANT_TEST(test_q8_0_rows, KERNEL_VARIANT_AVX512, "avx512_vnni"),
        cmocka_unit_test(test_public_float_helpers),
        cmocka_unit_test(test_geglu_f16_steps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
