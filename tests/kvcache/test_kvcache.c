// SPDX-License-Identifier: MIT
// Tests of src/kvcache: FP8 E4M3 conversion (all 256 codes, ties, saturation, a brute-force
// nearest-code reference), row round trips of every KV type with stated error bounds, budget
// arithmetic, allocation to exhaustion and back, random block-table operations over many
// sequences with invariant and content checks (also under forced hash collisions and with a
// sliding-window layer), prefix sharing, LRU eviction order, copy-on-truncate, window blocks
// (released as a sequence grows, shared with a prefix only while cached, evicted with their
// full block, refused rewinds, admission, the pool-size bound by brute force, a window
// model's pool against an all-full one), and allocation failures at every step.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#include "base/alloc.h"
#include "kvcache/kvcache.h"

static float bits_float(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static kv_cache *make_cache(kv_type type, uint32_t n_layer, uint32_t n_head_kv, uint32_t head_dim,
                            uint32_t block_tokens, uint32_t n_blocks)
{
    kv_cache_config cfg = {.n_layer = n_layer,
                           .n_head_kv = n_head_kv,
                           .head_dim_k = head_dim,
                           .head_dim_v = head_dim,
                           .block_tokens = block_tokens,
                           .type = type,
                           .n_blocks = n_blocks};
    garlic_error err = {0};
    kv_cache *c = kv_cache_new(&cfg, &err);
    if (!c)
        print_message("kv_cache_new: %s\n", err.message);
    assert_non_null(c);
    return c;
}

static void assert_consistent(const kv_cache *c)
{
    garlic_error err = {0};
    int rc = kv_cache_check(c, &err);
    if (rc)
        print_message("%s\n", err.message);
    assert_int_equal(rc, GARLIC_OK);
    kv_cache_stats st = kv_cache_get_stats(c);
    assert_int_equal(st.n_free + st.n_cached + st.n_used, st.n_blocks);
}

// ---- 1. FP8 E4M3 ----

// The value of an E4M3 code by the definition, in double; NaN for 0x7F/0xFF.
static double fp8_reference_value(unsigned code)
{
    unsigned e = (code >> 3) & 15, m = code & 7;
    double v = e == 15 && m == 7 ? NAN
        : e == 0                 ? ldexp(m / 8.0, -6)
                                 : ldexp(1 + m / 8.0, (int)e - 7);
    return code & 0x80 ? -v : v;
}

static void test_fp8_all_codes(void **state)
{
    (void)state;
    for (unsigned code = 0; code < 256; code++) {
        float f = kv_fp8_to_f32((uint8_t)code);
        double want = fp8_reference_value(code);
        if ((code & 0x7F) == 0x7F) {
            assert_true(isnan(f));
            assert_int_equal(kv_fp8_from_f32(f), code);
            continue;
        }
        assert_true((double)f == want);
        assert_int_equal(signbit(f) != 0, (code & 0x80) != 0); // -0 keeps its sign
        assert_int_equal(kv_fp8_from_f32(f), code);
    }
    // Strictly increasing over the finite positive codes; the largest is 448.
    for (unsigned code = 1; code <= 0x7E; code++)
        assert_true(kv_fp8_to_f32((uint8_t)code) > kv_fp8_to_f32((uint8_t)(code - 1)));
    assert_true(kv_fp8_to_f32(0x7E) == 448.0f);
    assert_true(kv_fp8_to_f32(0x01) == ldexpf(1, -9));
    assert_true(kv_fp8_to_f32(0x08) == ldexpf(1, -6));
}

static void test_fp8_special_values(void **state)
{
    (void)state;
    const struct {
        float in;
        uint8_t out;
    } cases[] = {
        {0.0f, 0x00},          {-0.0f, 0x80},      {1.0f, 0x38},     {-2.0f, 0xC0},
        {448.0f, 0x7E},        {464.0f, 0x7E}, // the tie between 448 and (unrepresentable) 480: even, and saturated
        {479.0f, 0x7E},        {480.0f, 0x7E},     {1e9f, 0x7E},     {-1e30f, 0xFE},
        {INFINITY, 0x7E},      {-INFINITY, 0xFE},  {0x1p-9f, 0x01},  {0x1p-10f, 0x00},
        {0x1.0002p-10f, 0x01}, {0x3p-10f, 0x02},   {0x5p-10f, 0x02}, {0x7p-10f, 0x04},
        {0x1p-149f, 0x00},     {-0x1p-126f, 0x80}, {1.0625f, 0x38},  {1.1875f, 0x3A},
        {1.0626f, 0x39},       {0x1.ep-7f, 0x08}, // 15/16 of 2^-6 rounds up across the subnormal/normal border
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t got = kv_fp8_from_f32(cases[i].in);
        if (got != cases[i].out)
            print_message("fp8(%a) = 0x%02X, want 0x%02X\n", (double)cases[i].in, got,
                          cases[i].out);
        assert_int_equal(got, cases[i].out);
    }
    assert_int_equal(kv_fp8_from_f32(NAN), 0x7F);
    assert_int_equal(kv_fp8_from_f32(-NAN), 0xFF);
}

// The nearest finite code to x by search (ties to the even code), saturating at 448.
static uint8_t fp8_reference_encode(float x)
{
    uint8_t sign = signbit(x) ? 0x80 : 0;
    double a = fabs((double)x);
    if (a >= 448)
        return sign | 0x7E;
    unsigned best = 0;
    double best_err = INFINITY;
    for (unsigned code = 0; code <= 0x7E; code++) {
        double err = fabs(fp8_reference_value(code) - a);
        if (err < best_err || (err == best_err && (code & 1) == 0)) {
            best = code;
            best_err = err;
        }
    }
    return (uint8_t)(sign | best);
}

static void test_fp8_rounding(void **state)
{
    (void)state;
    // Midpoints between neighbours go to the even code; one ulp either side goes the other way.
    for (unsigned code = 0; code < 0x7E; code++) {
        float lo = kv_fp8_to_f32((uint8_t)code), hi = kv_fp8_to_f32((uint8_t)(code + 1));
        float mid = (lo + hi) / 2; // exact: the neighbours differ in at most 4 leading bits
        assert_true((double)mid * 2 == (double)lo + hi);
        uint8_t even = (uint8_t)((code & 1) ? code + 1 : code);
        assert_int_equal(kv_fp8_from_f32(mid), even);
        assert_int_equal(kv_fp8_from_f32(-mid), even | 0x80);
        assert_int_equal(kv_fp8_from_f32(nextafterf(mid, 0)), code);
        assert_int_equal(kv_fp8_from_f32(nextafterf(mid, INFINITY)), code + 1);
    }
    // A sweep of float bit patterns of both signs against the brute-force reference.
    for (uint64_t bits = 0; bits < 0x7F800000u; bits += 4099) {
        for (int sign = 0; sign < 2; sign++) {
            float x = bits_float((uint32_t)bits | (sign ? 0x80000000u : 0));
            uint8_t got = kv_fp8_from_f32(x), want = fp8_reference_encode(x);
            if (got != want)
                print_message("fp8(%a) = 0x%02X, reference 0x%02X\n", (double)x, got, want);
            assert_int_equal(got, want);
        }
    }
}

// ---- 2. rows ----

static void test_type_names(void **state)
{
    (void)state;
    const char *names[] = {"f16", "q8_0", "fp8", "f32"};
    for (int t = 0; t < KV_TYPE_COUNT; t++) {
        kv_type parsed;
        assert_true(kv_type_parse(names[t], &parsed));
        assert_int_equal(parsed, t);
        assert_string_equal(kv_type_name((kv_type)t), names[t]);
    }
    kv_type parsed;
    assert_true(kv_type_parse("fp8_e4m3", &parsed));
    assert_int_equal(parsed, KV_TYPE_FP8_E4M3);
    assert_false(kv_type_parse("q4_0", &parsed));
    assert_false(kv_type_parse("", &parsed));
    assert_string_equal(kv_type_name(KV_TYPE_COUNT), "?");
    uint64_t bytes;
    assert_true(kv_row_size(KV_TYPE_Q8_0, 64, &bytes) && bytes == 68);
    assert_false(kv_row_size(KV_TYPE_Q8_0, 48, &bytes));
    assert_true(kv_row_size(KV_TYPE_FP8_E4M3, 48, &bytes) && bytes == 48);
    assert_true(kv_row_size(KV_TYPE_F16, 48, &bytes) && bytes == 96);
    assert_false(kv_row_size(KV_TYPE_F32, UINT64_MAX / 2, &bytes));
}

// Checks one stored-and-loaded row against the bound each type promises:
//   F32 exact; F16 relative 2^-11 (normal range); FP8 relative 2^-4 for |x| >= 2^-6, absolute
//   2^-10 below, 448 for |x| >= 448; Q8_0 absolute max|block| / 254 * (1 + 2^-10) per block
//   of 32, plus 127 times the scale's rounding error because the codes are chosen with the
//   exact scale and the scale is then rounded to a half, as the reference does (plus half a
//   half-subnormal step, 2^-25, for F16 values).
static void check_row_error(kv_type type, const float *x, const float *y, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        double err = fabs((double)x[i] - y[i]), ax = fabs((double)x[i]), bound = 0;
        if (type == KV_TYPE_F16) {
            bound = fmax(ax * 0x1p-11, 0x1p-25); // half subnormals step by 2^-24
        } else if (type == KV_TYPE_FP8_E4M3) {
            bound = ax >= 448 ? ax - 448 : ax >= 0x1p-6 ? ax * 0x1p-4 : 0x1p-10;
        } else if (type == KV_TYPE_Q8_0) {
            double amax = 0;
            for (uint32_t j = i / 32 * 32; j < i / 32 * 32 + 32; j++)
                amax = fmax(amax, fabs((double)x[j]));
            // The scale's rounding to a half (relative 2^-11, absolute 2^-25 when subnormal)
            // is multiplied by codes of up to 127.
            bound = amax / 254 * (1 + 0x1p-10) + fmax(amax * 0x1p-11, 127 * 0x1p-25) + 0x1p-25;
        }
        if (err > bound)
            print_message("%s: value %u: %g stored as %g (error %g > %g)\n", kv_type_name(type), i,
                          (double)x[i], (double)y[i], err, bound);
        assert_true(err <= bound);
    }
}

static void test_row_round_trips(void **state)
{
    (void)state;
    enum { N = 4096 };
    static float x[N], y[N];
    static uint8_t row[N * 4];
    test_rng rng;
    test_rng_seed(&rng, 7);
    const float scales[] = {1e-3f, 0.05f, 1.0f, 30.0f, 400.0f, 2000.0f};
    for (int t = 0; t < KV_TYPE_COUNT; t++) {
        for (size_t s = 0; s < sizeof scales / sizeof scales[0]; s++) {
            for (int i = 0; i < N; i++)
                x[i] = test_rng_normal(&rng) * scales[s];
            kv_row_store((kv_type)t, row, x, N);
            kv_row_load((kv_type)t, row, y, N);
            check_row_error((kv_type)t, x, y, N);
        }
    }
}

// Rows stored through a cache land at (layer, block, offset) without touching their
// neighbours, and each head of a row starts at the row size of the heads before it.
static void test_cache_rows(void **state)
{
    (void)state;
    enum { HEADS = 2, HD = 64, DIM = HEADS * HD, BT = 4, BLOCKS = 3, LAYERS = 2 };
    test_rng rng;
    test_rng_seed(&rng, 11);
    for (int t = 0; t < KV_TYPE_COUNT; t++) {
        kv_cache *c = make_cache((kv_type)t, LAYERS, HEADS, HD, BT, BLOCKS);
        static float k[LAYERS][BLOCKS][BT][DIM], v[LAYERS][BLOCKS][BT][DIM];
        for (int l = 0; l < LAYERS; l++)
            for (int b = 0; b < BLOCKS; b++)
                for (int o = 0; o < BT; o++) {
                    for (int i = 0; i < DIM; i++) {
                        k[l][b][o][i] = test_rng_normal(&rng);
                        v[l][b][o][i] = test_rng_normal(&rng) * 3;
                    }
                    kv_cache_store(c, (uint32_t)l, (uint32_t)b, (uint32_t)o, k[l][b][o],
                                   v[l][b][o]);
                }
        uint64_t head_bytes;
        assert_true(kv_row_size((kv_type)t, HD, &head_bytes));
        assert_int_equal(kv_cache_k_row_bytes(c), HEADS * head_bytes);
        float y[DIM];
        for (int l = 0; l < LAYERS; l++)
            for (int b = 0; b < BLOCKS; b++)
                for (int o = 0; o < BT; o++) {
                    const uint8_t *kr = kv_cache_k_row(c, (uint32_t)l, (uint32_t)b, (uint32_t)o);
                    if (o > 0) // consecutive rows within one (layer, block)
                        assert_ptr_equal(
                            kr,
                            kv_cache_k_row(c, (uint32_t)l, (uint32_t)b, (uint32_t)o - 1) +
                                kv_cache_k_row_bytes(c));
                    for (int h = 0; h < HEADS; h++) {
                        kv_row_load((kv_type)t, kr + h * head_bytes, y, HD);
                        check_row_error((kv_type)t, k[l][b][o] + h * HD, y, HD);
                    }
                    kv_row_load((kv_type)t,
                                kv_cache_v_row(c, (uint32_t)l, (uint32_t)b, (uint32_t)o), y, DIM);
                    check_row_error((kv_type)t, v[l][b][o], y, DIM);
                }
        kv_cache_free(c);
    }
}

// ---- 3. configuration and budget arithmetic ----

static void test_config_errors(void **state)
{
    (void)state;
    garlic_error err = {0};
    kv_cache_config cfg = {.n_layer = 2,
                           .n_head_kv = 2,
                           .head_dim_k = 48,
                           .head_dim_v = 48,
                           .block_tokens = 16,
                           .type = KV_TYPE_Q8_0,
                           .n_blocks = 4};
    assert_null(kv_cache_new(&cfg, &err));
    assert_int_equal(err.code, GARLIC_EUNSUPPORTED);
    assert_non_null(strstr(err.message, "multiples of 32"));
    cfg.type = KV_TYPE_FP8_E4M3; // any head dimension is fine for the other types
    kv_cache *c = kv_cache_new(&cfg, &err);
    assert_non_null(c);
    kv_cache_free(c);
    kv_cache_free(NULL);

    kv_cache_config bad = cfg;
    bad.block_tokens = 0;
    assert_null(kv_cache_new(&bad, &err));
    assert_int_equal(err.code, GARLIC_EINVAL);
    bad = cfg;
    bad.n_layer = 0;
    assert_null(kv_cache_new(&bad, &err));
    assert_int_equal(err.code, GARLIC_EINVAL);
    bad = cfg;
    bad.type = KV_TYPE_COUNT;
    assert_null(kv_cache_new(&bad, &err));
    assert_int_equal(err.code, GARLIC_EINVAL);
    bad = cfg;
    bad.budget_bytes = 1 << 20; // both n_blocks and a budget
    assert_null(kv_cache_new(&bad, &err));
    assert_non_null(strstr(err.message, "not both"));
    bad = cfg;
    bad.n_blocks = 0; // neither
    assert_null(kv_cache_new(&bad, &err));
    assert_int_equal(err.code, GARLIC_EINVAL);
    bad.budget_bytes = 100; // too small for one block
    assert_null(kv_cache_new(&bad, &err));
    assert_non_null(strstr(err.message, "holds no block"));
    bad = cfg;
    bad.n_blocks = KV_MAX_BLOCKS + 1u;
    assert_null(kv_cache_new(&bad, &err));
    assert_int_equal(err.code, GARLIC_EINVAL);
}

static void test_budget_arithmetic(void **state)
{
    (void)state;
    garlic_error err = {0};
    // A TinyLlama-shaped cache: 22 layers, 4 KV heads of 64.
    kv_cache_config cfg = {.n_layer = 22,
                           .n_head_kv = 4,
                           .head_dim_k = 64,
                           .head_dim_v = 64,
                           .block_tokens = 16,
                           .type = KV_TYPE_F16};
    uint64_t k_row, v_row, one, two;
    assert_int_equal(kv_cache_row_bytes(&cfg, &k_row, &v_row, &err), GARLIC_OK);
    assert_int_equal(k_row, 512);
    assert_int_equal(kv_cache_bytes_for(&cfg, 1, &one, &err), GARLIC_OK);
    assert_int_equal(kv_cache_bytes_for(&cfg, 2, &two, &err), GARLIC_OK);
    assert_true(two - one >= 22 * 16 * 1024); // the KV data of one more block, at least
    test_rng rng;
    test_rng_seed(&rng, 3);
    for (int i = 0; i < 200; i++) {
        uint64_t budget = one + test_rng_u64(&rng) % (UINT64_C(64) << 30);
        uint32_t n;
        uint64_t at_n, above;
        assert_int_equal(kv_cache_blocks_for_budget(&cfg, budget, &n, &err), GARLIC_OK);
        assert_int_equal(kv_cache_bytes_for(&cfg, n, &at_n, &err), GARLIC_OK);
        assert_int_equal(kv_cache_bytes_for(&cfg, n + 1, &above, &err), GARLIC_OK);
        assert_true(at_n <= budget && above > budget);
    }
    // A real cache from a budget takes no more than the budget and reports what it took.
    cfg.budget_bytes = 50u << 20;
    kv_cache *c = kv_cache_new(&cfg, &err);
    assert_non_null(c);
    uint64_t want;
    assert_int_equal(kv_cache_bytes_for(&cfg, kv_cache_get_config(c)->n_blocks, &want, &err), 0);
    assert_int_equal(kv_cache_bytes(c), want);
    assert_true(kv_cache_bytes(c) <= cfg.budget_bytes);
    assert_true(kv_cache_get_config(c)->n_blocks >= 140); // 50 MiB / 352 KiB = 145
    kv_cache_free(c);

    // Overflow: rows, blocks x rows, and a budget that caps at the block limit.
    kv_cache_config huge = {.n_layer = UINT32_MAX,
                            .n_head_kv = UINT32_MAX,
                            .head_dim_k = UINT32_MAX,
                            .head_dim_v = 1,
                            .block_tokens = 16,
                            .type = KV_TYPE_F32};
    assert_int_equal(kv_cache_row_bytes(&huge, &k_row, &v_row, &err), GARLIC_EINVAL);
    assert_non_null(strstr(err.message, "overflow"));
    huge.n_head_kv = 1 << 16;
    huge.head_dim_k = 1 << 16;
    assert_int_equal(kv_cache_row_bytes(&huge, &k_row, &v_row, &err), GARLIC_OK);
    assert_int_equal(kv_cache_bytes_for(&huge, KV_MAX_BLOCKS, &one, &err), GARLIC_EINVAL);
    assert_non_null(strstr(err.message, "overflow"));
    uint32_t n;
    kv_cache_config tiny = {.n_layer = 1,
                            .n_head_kv = 1,
                            .head_dim_k = 1,
                            .head_dim_v = 1,
                            .block_tokens = 1,
                            .type = KV_TYPE_FP8_E4M3};
    assert_int_equal(kv_cache_blocks_for_budget(&tiny, UINT64_MAX, &n, &err), GARLIC_OK);
    assert_int_equal(n, KV_MAX_BLOCKS);
    assert_int_equal(kv_cache_blocks_for_budget(&tiny, 10, &n, &err), GARLIC_EINVAL);
}

// ---- 4. allocation to exhaustion and back ----

static void fill_tokens(int32_t *t, uint32_t n, int32_t base)
{
    for (uint32_t i = 0; i < n; i++)
        t[i] = base + (int32_t)i;
}

static void test_exhaustion(void **state)
{
    (void)state;
    enum { BT = 16, BLOCKS = 10 };
    kv_cache *c = make_cache(KV_TYPE_F16, 2, 1, 32, BT, BLOCKS);
    garlic_error err = {0};
    int32_t tokens[BT * BLOCKS + 1];
    fill_tokens(tokens, BT * BLOCKS + 1, 100);
    kv_seq a;
    kv_seq_init(&a);
    assert_true(kv_cache_can_admit(c, BT * BLOCKS));
    assert_false(kv_cache_can_admit(c, BT * BLOCKS + 1));
    assert_int_equal(kv_seq_append(c, &a, tokens, BT * BLOCKS, &err), GARLIC_OK);
    assert_int_equal(kv_cache_get_stats(c).n_free, 0);
    assert_int_equal(kv_cache_get_stats(c).n_used, BLOCKS);
    assert_false(kv_cache_can_admit(c, 1));
    assert_int_equal(kv_seq_append(c, &a, tokens, 1, &err), GARLIC_ENOMEM);
    assert_non_null(strstr(err.message, "KV cache full"));
    assert_int_equal(a.n_tokens, BT * BLOCKS);
    assert_int_equal(a.n_blocks, BLOCKS);
    assert_consistent(c);
    // Uncommitted blocks are not published: releasing them makes them free, not cached.
    assert_int_equal(kv_seq_release(c, &a), BLOCKS);
    assert_int_equal(kv_cache_get_stats(c).n_free, BLOCKS);
    assert_int_equal(a.n_tokens, 0);
    assert_consistent(c);

    // Ten sequences of one block each; the eleventh does not fit.
    kv_seq seqs[BLOCKS + 1];
    for (int i = 0; i <= BLOCKS; i++) {
        kv_seq_init(&seqs[i]);
        fill_tokens(tokens, BT, 1000 * i);
        int rc = kv_seq_append(c, &seqs[i], tokens, BT, &err);
        assert_int_equal(rc, i < BLOCKS ? GARLIC_OK : GARLIC_ENOMEM);
        if (rc == GARLIC_OK)
            assert_int_equal(kv_seq_commit(c, &seqs[i], BT, &err), GARLIC_OK);
    }
    assert_int_equal(seqs[BLOCKS].n_blocks, 0);
    assert_consistent(c);
    // Committed full blocks stay cached after release and count as reclaimable.
    for (int i = 0; i < BLOCKS; i++)
        assert_int_equal(kv_seq_release(c, &seqs[i]), 1);
    kv_cache_stats st = kv_cache_get_stats(c);
    assert_int_equal(st.n_cached, BLOCKS);
    assert_int_equal(st.n_free, 0);
    assert_true(kv_cache_can_admit(c, BT * BLOCKS));
    fill_tokens(tokens, BT * BLOCKS, 5000);
    assert_int_equal(kv_seq_append(c, &a, tokens, BT * BLOCKS, &err), GARLIC_OK);
    assert_int_equal(kv_cache_get_stats(c).evictions, BLOCKS);
    assert_consistent(c);
    kv_seq_deinit(c, &a);
    for (int i = 0; i <= BLOCKS; i++)
        kv_seq_deinit(c, &seqs[i]);
    assert_int_equal(kv_cache_get_stats(c).n_used, 0);
    assert_consistent(c);
    kv_cache_free(c);
}

// ---- 5. random block tables over many sequences ----

enum { R_SEQS = 12, R_MAX = 160, R_BT = 4, R_BLOCKS = 96, R_LAYERS = 3, R_DIM = 4 };

// The window of layer 1 in the random runs that have one (0: none), and its pool's window
// blocks (fewer than the full ones, so that they run short and are evicted too).
static uint32_t r_window, r_window_blocks;

// The test's own record of a sequence: its tokens and the hash of each prefix, which is
// what a real K/V row depends on (a row is only right for the exact prefix before it).
typedef struct model_seq {
    kv_seq seq;
    int32_t tokens[R_MAX];
    uint64_t prefix[R_MAX];
} model_seq;

static uint64_t mix(uint64_t x)
{
    x ^= x >> 31;
    x *= UINT64_C(0x7fb5d329728ea185);
    x ^= x >> 27;
    x *= UINT64_C(0x81dadef4bc2dd44d);
    return x ^ (x >> 33);
}

// The K and V rows the test writes for (layer, position) of a prefix: exact in F32.
static void expected_rows(uint64_t prefix, uint32_t layer, uint32_t pos, float *k, float *v)
{
    k[0] = (float)(prefix & 0xFFFFFF);
    k[1] = (float)((prefix >> 24) & 0xFFFFFF);
    k[2] = (float)layer;
    k[3] = (float)pos;
    for (int i = 0; i < R_DIM; i++)
        v[i] = -k[i] - 1;
}

// Writes rows for positions [from, n_tokens) of m (blocks the sequence owns alone), each
// layer through its own table.
static void write_rows(kv_cache *c, model_seq *m, uint32_t from)
{
    for (uint32_t p = from; p < m->seq.n_tokens; p++) {
        uint32_t block, offset;
        assert_true(kv_seq_locate(c, &m->seq, p, &block, &offset));
        assert_int_equal(kv_cache_block_refs(c, block), 1);
        for (uint32_t l = 0; l < R_LAYERS; l++) {
            float k[R_DIM], v[R_DIM];
            expected_rows(m->prefix[p], l, p, k, v);
            uint32_t b = kv_seq_table(c, &m->seq, l)[p / R_BT];
            if (kv_cache_layer_is_window(c, l))
                assert_int_equal(kv_cache_window_block_refs(c, b), 1);
            kv_cache_store(c, l, b, offset, k, v);
        }
    }
}

// The first position a token at pos reads in the window layer.
static uint32_t r_window_start(uint32_t pos)
{
    return r_window && pos + 1 > r_window ? pos + 1 - r_window : 0;
}

// Every row m holds is the row written for its prefix; the window layer holds at least the
// rows the next token reads (positions r_window_start(n_committed)..).
static void verify_rows(const kv_cache *c, const model_seq *m)
{
    const kv_seq *q = &m->seq;
    if (r_window && q->n_tokens) {
        assert_true(q->window_first <= r_window_start(q->n_committed) / R_BT);
        for (uint32_t p = q->n_committed; p < q->n_tokens; p++)
            assert_true(kv_seq_holds_rows(c, q, p)); // the positions still to compute
    }
    for (uint32_t p = 0; p < q->n_tokens; p++) {
        for (uint32_t l = 0; l < R_LAYERS; l++) {
            uint32_t b = kv_seq_table(c, q, l)[p / R_BT];
            if (kv_cache_layer_is_window(c, l) && p / R_BT < q->window_first)
                continue; // released
            float k[R_DIM], v[R_DIM];
            expected_rows(m->prefix[p], l, p, k, v);
            assert_memory_equal(kv_cache_k_row(c, l, b, p % R_BT), k, sizeof k);
            assert_memory_equal(kv_cache_v_row(c, l, b, p % R_BT), v, sizeof v);
        }
    }
}

// Reference counts (of both kinds) equal the number of table entries naming each block; no
// table names a block twice; published prefixes of every sequence are found by lookup.
static void verify_refs(const kv_cache *c, const model_seq *ms)
{
    static uint32_t count[R_BLOCKS], window_count[R_BLOCKS];
    memset(count, 0, sizeof count);
    memset(window_count, 0, sizeof window_count);
    for (int s = 0; s < R_SEQS; s++) {
        const kv_seq *q = &ms[s].seq;
        assert_int_equal(q->n_blocks, kv_cache_blocks_for_tokens(c, q->n_tokens));
        for (uint32_t i = 0; i < q->n_blocks; i++) {
            for (uint32_t j = 0; j < i; j++)
                assert_int_not_equal(q->blocks[i], q->blocks[j]);
            count[q->blocks[i]]++;
            if (!r_window)
                continue;
            if (i < q->window_first) {
                assert_int_equal(q->window_blocks[i], KV_NO_BLOCK);
                continue;
            }
            assert_true(q->window_blocks[i] < r_window_blocks);
            for (uint32_t j = q->window_first; j < i; j++)
                assert_int_not_equal(q->window_blocks[i], q->window_blocks[j]);
            window_count[q->window_blocks[i]]++;
        }
        // The committed blocks are shareable as long as this sequence still holds the window
        // blocks before their end (else those may have been evicted).
        uint32_t committed_blocks = q->n_committed / R_BT;
        if (r_window && r_window_start(committed_blocks * R_BT) / R_BT < q->window_first)
            committed_blocks = 0;
        assert_true(kv_cache_prefix_lookup(c, ms[s].tokens, q->n_committed) >= committed_blocks);
    }
    uint32_t used = 0, window_used = 0;
    for (uint32_t b = 0; b < R_BLOCKS; b++) {
        assert_int_equal(kv_cache_block_refs(c, b), count[b]);
        assert_int_equal(kv_cache_window_block_refs(c, b), window_count[b]);
        used += count[b] > 0;
        window_used += window_count[b] > 0;
    }
    assert_int_equal(kv_cache_get_stats(c).n_used, used);
    assert_int_equal(kv_cache_get_stats(c).n_window_used, window_used);
}

static void set_tokens(model_seq *m, uint32_t from, const int32_t *tokens, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        uint32_t p = from + i;
        m->tokens[p] = tokens[i];
        m->prefix[p] = mix((p ? m->prefix[p - 1] : 1) ^ (uint64_t)(uint32_t)tokens[i]);
    }
}

// Appends n tokens to m, writes their rows and commits a random part of what is written.
// Returns the append's result (GARLIC_ENOMEM when the pool is full).
static int random_append(kv_cache *c, model_seq *m, const int32_t *tokens, uint32_t n,
                         test_rng *rng)
{
    garlic_error err = {0};
    uint32_t before = m->seq.n_tokens;
    kv_cache_stats st = kv_cache_get_stats(c);
    int rc = kv_seq_append(c, &m->seq, tokens, n, &err);
    if (rc) {
        assert_int_equal(rc, GARLIC_ENOMEM);
        assert_int_equal(m->seq.n_tokens, before);
        assert_int_equal(kv_cache_get_stats(c).n_free, st.n_free);
        assert_int_equal(kv_cache_get_stats(c).n_cached, st.n_cached);
        return rc;
    }
    set_tokens(m, before, tokens, n);
    write_rows(c, m, before);
    uint32_t span = m->seq.n_tokens - m->seq.n_committed;
    uint32_t to = m->seq.n_committed +
        (test_rng_u64(rng) % 3 ? span : (uint32_t)(test_rng_u64(rng) % (span + 1)));
    assert_int_equal(kv_seq_commit(c, &m->seq, to, &err), GARLIC_OK);
    return GARLIC_OK;
}

// Starts an empty sequence from a prompt drawn around a few shared stems, sharing what the
// prefix cache holds.
static void random_start(kv_cache *c, model_seq *m, test_rng *rng)
{
    garlic_error err = {0};
    int32_t prompt[R_MAX];
    uint32_t n = 1 + (uint32_t)(test_rng_u64(rng) % 60);
    uint32_t stem = (uint32_t)(test_rng_u64(rng) % 3),
             keep = (uint32_t)(test_rng_u64(rng) % (n + 1));
    for (uint32_t i = 0; i < n; i++)
        prompt[i] = i < keep ? (int32_t)((stem * 7 + i) % 5) : (int32_t)(test_rng_u64(rng) % 5);
    uint32_t shared;
    assert_int_equal(kv_seq_share_prefix(c, &m->seq, prompt, n - 1, &shared, &err), GARLIC_OK);
    assert_true(shared % R_BT == 0 && shared < n);
    set_tokens(m, 0, prompt, shared);
    if (random_append(c, m, prompt + shared, n - shared, rng))
        kv_seq_release(c, &m->seq); // does not fit now: give the shared blocks back
}

static void random_step(kv_cache *c, model_seq *ms, test_rng *rng)
{
    garlic_error err = {0};
    model_seq *m = &ms[test_rng_u64(rng) % R_SEQS];
    uint32_t op = (uint32_t)(test_rng_u64(rng) % 10);
    if (m->seq.n_tokens == 0) {
        random_start(c, m, rng);
    } else if (op < 5) {
        int32_t more[8];
        uint32_t n = 1 + (uint32_t)(test_rng_u64(rng) % 8);
        if (m->seq.n_tokens + n > R_MAX)
            n = R_MAX - m->seq.n_tokens;
        for (uint32_t i = 0; i < n; i++)
            more[i] = (int32_t)(test_rng_u64(rng) % 5);
        if (n && random_append(c, m, more, n, rng)) // full: preempt another sequence
            kv_seq_release(c, &ms[test_rng_u64(rng) % R_SEQS].seq);
    } else if (op < 7) {
        uint32_t n = (uint32_t)(test_rng_u64(rng) % (m->seq.n_tokens + 1));
        kv_seq before = m->seq;
        int rc = kv_seq_truncate(c, &m->seq, n, &err);
        // Refused when the window rows position n reads were released: nothing changes.
        uint32_t need_from = r_window_start(n) / R_BT;
        bool rewinds_past = need_from < (n + R_BT - 1) / R_BT && need_from < before.window_first;
        assert_int_equal(rc == GARLIC_EUNSUPPORTED, r_window && rewinds_past);
        assert_true(rc == GARLIC_OK || rc == GARLIC_ENOMEM || rc == GARLIC_EUNSUPPORTED);
        if (rc)
            assert_memory_equal(&m->seq, &before, sizeof before);
    } else if (op < 8) {
        assert_int_equal(kv_seq_commit(c, &m->seq, m->seq.n_tokens, &err), GARLIC_OK);
    } else {
        kv_seq_release(c, &m->seq);
    }
}

// Random operations on R_SEQS sequences, checking invariants, references and every row
// after each; window > 0 gives layer 1 that window and window_blocks window blocks.
static void run_random(kv_hash_fn hash, uint64_t seed, int steps, uint32_t window,
                       uint32_t window_blocks)
{
    kv_cache_config cfg = {.n_layer = R_LAYERS,
                           .n_head_kv = 1,
                           .head_dim_k = R_DIM,
                           .head_dim_v = R_DIM,
                           .block_tokens = R_BT,
                           .type = KV_TYPE_F32,
                           .n_blocks = R_BLOCKS,
                           .n_window_blocks = window_blocks};
    r_window = window, r_window_blocks = window ? window_blocks : 0;
    if (window) {
        cfg.windows.window = window;
        kv_windows_set(&cfg.windows, 1);
    }
    garlic_error err = {0};
    kv_cache *c = kv_cache_new(&cfg, &err);
    assert_non_null(c);
    assert_int_equal(kv_cache_get_stats(c).n_window_blocks, r_window_blocks);
    kv_cache_set_hash_fn(c, hash);
    static model_seq ms[R_SEQS];
    for (int s = 0; s < R_SEQS; s++)
        kv_seq_init(&ms[s].seq);
    test_rng rng;
    test_rng_seed(&rng, seed);
    for (int step = 0; step < steps; step++) {
        random_step(c, ms, &rng);
        assert_consistent(c);
        verify_refs(c, ms);
        for (int s = 0; s < R_SEQS; s++)
            verify_rows(c, &ms[s]);
    }
    kv_cache_stats st = kv_cache_get_stats(c);
    print_message("random: %llu hits, %llu misses, %llu evictions, %llu window evictions, "
                  "%llu dedups\n",
                  (unsigned long long)st.prefix_hits, (unsigned long long)st.prefix_misses,
                  (unsigned long long)st.evictions, (unsigned long long)st.window_evictions,
                  (unsigned long long)st.dedups);
    assert_true(st.prefix_hits > 0 && st.evictions > 0 && st.dedups > 0);
    assert_true(!window || st.window_evictions > 0);
    for (int s = 0; s < R_SEQS; s++)
        kv_seq_deinit(c, &ms[s].seq);
    assert_int_equal(kv_cache_get_stats(c).n_used, 0);
    assert_int_equal(kv_cache_get_stats(c).n_window_used, 0);
    assert_consistent(c);
    kv_cache_free(c);
    r_window = r_window_blocks = 0;
}

static void test_random_tables(void **state)
{
    (void)state;
    run_random(NULL, 1, 6000, 0, 0);
}

// Two bits of hash: most blocks collide with many others, so any match that trusted the
// hash would share wrong rows, which verify_rows would see.
static uint64_t two_bit_hash(uint64_t parent, const int32_t *tokens, uint32_t n)
{
    return kv_block_hash(parent, tokens, n) & 3;
}

static void test_random_tables_colliding(void **state)
{
    (void)state;
    run_random(two_bit_hash, 2, 6000, 0, 0);
}

// The same with a window layer: rows of positions out of the window are released as the
// sequences grow, the window pool (smaller than the full one) runs short and evicts,
// truncations past the released rows are refused.
static void test_random_tables_window(void **state)
{
    (void)state;
    run_random(NULL, 3, 6000, 6, R_BLOCKS / 2);
    run_random(NULL, 4, 3000, 1, R_BLOCKS / 3);
    run_random(two_bit_hash, 5, 3000, 11, R_BLOCKS / 2);
}

// ---- 6. prefix sharing ----

static void append_commit(kv_cache *c, kv_seq *s, const int32_t *tokens, uint32_t n)
{
    garlic_error err = {0};
    uint32_t shared;
    assert_int_equal(kv_seq_share_prefix(c, s, tokens, n - 1, &shared, &err), GARLIC_OK);
    assert_int_equal(kv_seq_append(c, s, tokens + shared, n - shared, &err), GARLIC_OK);
    assert_int_equal(kv_seq_commit(c, s, n, &err), GARLIC_OK);
}

static void test_prefix_sharing(void **state)
{
    (void)state;
    enum { BT = 16, PREFIX = 1000 };
    kv_cache *c = make_cache(KV_TYPE_F16, 2, 2, 32, BT, 256);
    garlic_error err = {0};
    test_rng rng;
    test_rng_seed(&rng, 5);
    static int32_t a[PREFIX + 24], b[PREFIX + 10], d[PREFIX];
    for (int i = 0; i < PREFIX; i++)
        a[i] = b[i] = d[i] = (int32_t)(test_rng_u64(&rng) % 32000);
    for (int i = PREFIX; i < PREFIX + 24; i++)
        a[i] = 1;
    for (int i = PREFIX; i < PREFIX + 10; i++)
        b[i] = 2;
    d[3 * BT + 5] ^= 1; // a different token in block 3

    kv_seq sa, sb, sd;
    kv_seq_init(&sa);
    kv_seq_init(&sb);
    kv_seq_init(&sd);
    append_commit(c, &sa, a, PREFIX + 24);
    kv_cache_stats st = kv_cache_get_stats(c);
    assert_int_equal(st.prefix_hits, 0);
    assert_int_equal(st.prefix_misses, (PREFIX + 23) / BT);
    assert_int_equal(st.n_used, (PREFIX + 24 + BT - 1) / BT);

    assert_int_equal(kv_cache_prefix_lookup(c, b, PREFIX + 10), PREFIX / BT);
    assert_true(kv_cache_can_admit_prompt(c, b, PREFIX + 10, PREFIX + 10, 0, 0));
    uint32_t shared;
    assert_int_equal(kv_seq_share_prefix(c, &sb, b, PREFIX + 9, &shared, &err), GARLIC_OK);
    assert_int_equal(shared, PREFIX / BT * BT); // floor(1000/16) = 62 blocks, 992 positions
    assert_int_equal(sb.n_blocks, PREFIX / BT);
    for (uint32_t i = 0; i < PREFIX / BT; i++) {
        assert_int_equal(sb.blocks[i], sa.blocks[i]);
        assert_int_equal(kv_cache_block_refs(c, sa.blocks[i]), 2);
    }
    assert_int_equal(kv_cache_block_refs(c, sa.blocks[PREFIX / BT]), 1);
    st = kv_cache_get_stats(c);
    assert_int_equal(st.prefix_hits, PREFIX / BT);
    assert_int_equal(st.prefix_misses, (PREFIX + 23) / BT + 1);
    assert_int_equal(kv_seq_append(c, &sb, b + shared, PREFIX + 10 - shared, &err), GARLIC_OK);

    assert_int_equal(kv_seq_share_prefix(c, &sd, d, PREFIX - 1, &shared, &err), GARLIC_OK);
    assert_int_equal(shared, 3 * BT);
    assert_int_equal(kv_cache_get_stats(c).prefix_hits, PREFIX / BT + 3);
    assert_int_equal(kv_seq_share_prefix(c, &sd, d, PREFIX - 1, &shared, &err), GARLIC_EINVAL);

    // A prompt's own last token is never shared when the caller passes n - 1.
    assert_int_equal(kv_cache_prefix_lookup(c, a, 2 * BT - 1), 1);
    assert_consistent(c);
    kv_seq_deinit(c, &sa);
    kv_seq_deinit(c, &sb);
    kv_seq_deinit(c, &sd);
    assert_consistent(c);
    // Everything committed stays cached after the sequences end.
    assert_int_equal(kv_cache_prefix_lookup(c, a, PREFIX + 24), (PREFIX + 24) / BT);
    kv_cache_free(c);
}

// Admission credits cached prefix blocks: a prompt that mostly hits fits where a cold one
// of the same length does not.
static void test_admission(void **state)
{
    (void)state;
    enum { BT = 4 };
    kv_cache *c = make_cache(KV_TYPE_F32, 1, 1, 4, BT, 6);
    int32_t warm[20], cold[20];
    fill_tokens(warm, 20, 10);
    fill_tokens(cold, 20, 500);
    kv_seq a, b;
    kv_seq_init(&a);
    kv_seq_init(&b);
    append_commit(c, &a, warm, 16); // 4 blocks published and held
    assert_false(kv_cache_can_admit(c, 20));
    assert_false(kv_cache_can_admit_prompt(c, cold, 20, 20, 0, 0));
    assert_true(kv_cache_can_admit_prompt(c, warm, 20, 20, 0, 0)); // 4 hits + 1 new block
    // 2 blocks are free: headroom counts against them ...
    assert_true(kv_cache_can_admit_prompt(c, warm, 20, 20, 0, 1));
    assert_false(kv_cache_can_admit_prompt(c, warm, 20, 20, 0, 2));
    // ... and only the shared part of the prompt is credited (15 tokens: 3 full blocks).
    assert_true(kv_cache_can_admit_prompt(c, warm, 15, 20, 0, 0));
    assert_false(kv_cache_can_admit_prompt(c, warm, 15, 20, 0, 1));
    kv_seq_release(c, &a); // 4 cached, reclaimable but also the prompt's hits
    assert_true(kv_cache_can_admit(c, 24));
    assert_true(kv_cache_can_admit_prompt(c, warm, 20, 20, 0, 0));
    assert_false(kv_cache_can_admit_prompt(c, cold, 28, 28, 0, 0));
    assert_int_equal(kv_seq_blocks_needed(c, &b, 5), 2);
    kv_seq_deinit(c, &a);
    kv_seq_deinit(c, &b);
    kv_cache_free(c);
}

// ---- 7. LRU eviction ----

static void test_lru_eviction(void **state)
{
    (void)state;
    enum { BT = 4 };
    kv_cache *c = make_cache(KV_TYPE_F32, 1, 1, 4, BT, 8);
    garlic_error err = {0};
    int32_t ta[8], tb[8], tc[16], td[8];
    fill_tokens(ta, 8, 100);
    fill_tokens(tb, 8, 200);
    fill_tokens(tc, 16, 300);
    fill_tokens(td, 8, 400);
    kv_seq a, b, s, d;
    kv_seq_init(&a);
    kv_seq_init(&b);
    kv_seq_init(&s);
    kv_seq_init(&d);
    append_commit(c, &a, ta, 8);
    append_commit(c, &b, tb, 8);
    uint32_t a0 = a.blocks[0], a1 = a.blocks[1], b0 = b.blocks[0], b1 = b.blocks[1];
    kv_seq_release(c, &a); // LRU, least recent first: a1 a0
    kv_seq_release(c, &b); //                          a1 a0 b1 b0
    assert_int_equal(kv_cache_get_stats(c).n_cached, 4);
    // Free blocks go first: no eviction.
    assert_int_equal(kv_seq_append(c, &s, tc, 16, &err), GARLIC_OK);
    assert_int_equal(kv_cache_get_stats(c).evictions, 0);
    // Then the least recently used, deepest block of a prefix first.
    assert_int_equal(kv_seq_append(c, &d, td, 4, &err), GARLIC_OK);
    assert_int_equal(d.blocks[0], a1);
    assert_int_equal(kv_cache_prefix_lookup(c, ta, 8), 1);
    // Using b's prefix makes it recent: a0 is evicted next, then b1, then b0.
    uint32_t shared;
    kv_seq e;
    kv_seq_init(&e);
    assert_int_equal(kv_seq_share_prefix(c, &e, tb, 8, &shared, &err), GARLIC_OK);
    assert_int_equal(shared, 8);
    kv_seq_release(c, &e); // LRU: a0 b1 b0
    assert_int_equal(kv_seq_append(c, &d, td + 4, 4, &err), GARLIC_OK);
    assert_int_equal(d.blocks[1], a0);
    assert_int_equal(kv_cache_prefix_lookup(c, ta, 8), 0);
    assert_int_equal(kv_cache_prefix_lookup(c, tb, 8), 2);
    assert_int_equal(kv_seq_append(c, &d, td, 4, &err), GARLIC_OK);
    assert_int_equal(d.blocks[2], b1);
    assert_int_equal(kv_seq_append(c, &d, td, 4, &err), GARLIC_OK);
    assert_int_equal(d.blocks[3], b0);
    assert_int_equal(kv_cache_get_stats(c).evictions, 4);
    assert_int_equal(kv_seq_append(c, &d, td, 1, &err), GARLIC_ENOMEM);
    assert_consistent(c);
    kv_seq_deinit(c, &s);
    kv_seq_deinit(c, &d);
    kv_seq_deinit(c, &a);
    kv_seq_deinit(c, &b);
    kv_seq_deinit(c, &e);
    kv_cache_free(c);
}

// Truncation releases the dropped blocks last first too, so the deepest goes first.
static void test_truncate_eviction_order(void **state)
{
    (void)state;
    enum { BT = 4 };
    kv_cache *c = make_cache(KV_TYPE_F32, 1, 1, 4, BT, 4);
    garlic_error err = {0};
    int32_t t[16];
    fill_tokens(t, 16, 7);
    kv_seq a, f;
    kv_seq_init(&a);
    kv_seq_init(&f);
    append_commit(c, &a, t, 16);
    uint32_t a1 = a.blocks[1], a3 = a.blocks[3];
    assert_int_equal(kv_seq_truncate(c, &a, 4, &err), GARLIC_OK); // LRU: a3 a2 a1
    assert_int_equal(kv_cache_get_stats(c).n_cached, 3);
    assert_int_equal(kv_seq_append(c, &f, t, 4, &err), GARLIC_OK);
    assert_int_equal(f.blocks[0], a3);
    assert_int_equal(kv_cache_prefix_lookup(c, t, 16), 3);
    assert_int_equal(kv_seq_append(c, &f, t, 8, &err), GARLIC_OK);
    assert_int_equal(f.blocks[2], a1);
    assert_int_equal(kv_cache_prefix_lookup(c, t, 16), 1);
    assert_consistent(c);
    kv_seq_deinit(c, &a);
    kv_seq_deinit(c, &f);
    kv_cache_free(c);
}

// ---- 8. hash collisions ----

static uint64_t constant_hash(uint64_t parent, const int32_t *tokens, uint32_t n)
{
    (void)parent;
    (void)tokens;
    (void)n;
    return 42;
}

static void test_hash_collisions(void **state)
{
    (void)state;
    enum { BT = 4 };
    kv_cache *c = make_cache(KV_TYPE_F32, 1, 1, 4, BT, 8);
    kv_cache_set_hash_fn(c, constant_hash);
    garlic_error err = {0};
    const int32_t x[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    const int32_t x1_first[8] = {5, 6, 7, 8, 1, 2, 3, 4};
    const int32_t x0_other[8] = {1, 2, 3, 4, 9, 9, 9, 9};
    kv_seq a, b, e;
    kv_seq_init(&a);
    kv_seq_init(&b);
    kv_seq_init(&e);
    append_commit(c, &a, x, 8);
    // Every block hashes to 42, yet only true prefixes match.
    assert_int_equal(kv_cache_prefix_lookup(c, x, 8), 2);
    assert_int_equal(kv_cache_prefix_lookup(c, x1_first, 8), 0); // same tokens, other parent
    assert_int_equal(kv_cache_prefix_lookup(c, x0_other, 8), 1); // same parent, other tokens
    // Computing the same blocks again ends with the cached ones (deduplicated).
    assert_int_equal(kv_seq_append(c, &b, x, 8, &err), GARLIC_OK);
    assert_int_equal(kv_seq_commit(c, &b, 8, &err), GARLIC_OK);
    assert_int_equal(kv_cache_get_stats(c).dedups, 2);
    assert_int_equal(b.blocks[0], a.blocks[0]);
    assert_int_equal(b.blocks[1], a.blocks[1]);
    assert_int_equal(kv_cache_block_refs(c, a.blocks[1]), 2);
    // Colliding different blocks are all kept and all findable.
    append_commit(c, &e, x1_first, 8);
    assert_int_equal(e.blocks[0] == a.blocks[0] || e.blocks[0] == a.blocks[1], 0);
    assert_int_equal(kv_cache_prefix_lookup(c, x1_first, 8), 2);
    assert_int_equal(kv_cache_prefix_lookup(c, x, 8), 2);
    assert_consistent(c);

    // A child whose parent was evicted and recomputed elsewhere is not reached through it.
    kv_seq_release(c, &a);
    kv_seq_release(c, &b); // x1 then x0 cached: x1 is evicted before x0
    kv_seq_release(c, &e);
    uint32_t x0 = kv_cache_get_stats(c).n_free; // blocks that can go before any eviction
    int32_t filler[32];
    fill_tokens(filler, 32, 1000);
    kv_seq f;
    kv_seq_init(&f);
    assert_int_equal(kv_seq_append(c, &f, filler, x0 * BT, &err), GARLIC_OK);
    assert_int_equal(kv_seq_append(c, &f, filler, BT, &err), GARLIC_OK); // evicts x's block 1
    assert_int_equal(kv_cache_prefix_lookup(c, x, 8), 1);
    assert_consistent(c);
    kv_seq_deinit(c, &f);
    kv_seq_deinit(c, &a);
    kv_seq_deinit(c, &b);
    kv_seq_deinit(c, &e);
    kv_cache_free(c);
}

typedef struct mirror_log {
    int n, gone;
    bool window;
    uint32_t to, from, rows;
} mirror_log;

static void record_gone(void *ctx, const kv_cache *c)
{
    (void)c;
    ((mirror_log *)ctx)->gone++;
}

static void record_copy(void *ctx, bool window, uint32_t to, uint32_t from, uint32_t n_rows)
{
    mirror_log *m = ctx;
    m->n++, m->window = window, m->to = to, m->from = from, m->rows = n_rows;
}

// A mirror hears of the copy a shared block's truncation makes (copy on write) and of the
// pool's end, and the same
// copy replayed on a second pool (kv_cache_copy_rows_of, as a device or another rank does it)
// leaves the same rows there; copies outside the pool are refused.
static void test_mirror_copies(void **state)
{
    (void)state;
    enum { BT = 4, HD = 8 };
    kv_cache *c = make_cache(KV_TYPE_F32, 2, 1, HD, BT, 6);
    kv_cache *d = make_cache(KV_TYPE_F32, 2, 1, HD, BT, 6);
    mirror_log log = {0};
    kv_mirror mirror = {.copy = record_copy, .gone = record_gone, .ctx = &log};
    kv_cache_set_mirror(c, &mirror);
    garlic_error err = {0};
    const int32_t x[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    kv_seq a, b;
    kv_seq_init(&a);
    kv_seq_init(&b);
    assert_int_equal(kv_seq_append(c, &a, x, 8, &err), GARLIC_OK);
    float k[HD], v[HD];
    for (uint32_t l = 0; l < 2; l++)
        for (uint32_t p = 0; p < 8; p++) {
            for (int i = 0; i < HD; i++)
                k[i] = (float)(l * 100 + p * 10 + i), v[i] = -k[i];
            kv_cache_store(c, l, a.blocks[p / BT], p % BT, k, v);
            kv_cache_store(d, l, a.blocks[p / BT], p % BT, k, v); // the same rows, replayed
        }
    assert_int_equal(kv_seq_commit(c, &a, 8, &err), GARLIC_OK);
    uint32_t shared;
    assert_int_equal(kv_seq_share_prefix(c, &b, x, 8, &shared, &err), GARLIC_OK);
    assert_int_equal(shared, 8);
    assert_int_equal(log.n, 0);
    assert_int_equal(kv_seq_truncate(c, &b, 6, &err), GARLIC_OK); // block 1 is a's too: copied
    assert_int_equal(log.n, 1);
    assert_false(log.window);
    assert_int_equal(log.from, a.blocks[1]);
    assert_int_equal(log.to, b.blocks[1]);
    assert_int_equal(log.rows, 2);
    assert_int_equal(kv_cache_copy_rows_of(d, log.window, log.to, log.from, log.rows, &err),
                     GARLIC_OK);
    for (uint32_t l = 0; l < 2; l++)
        for (uint32_t r = 0; r < log.rows; r++) {
            assert_memory_equal(kv_cache_k_row(d, l, log.to, r), kv_cache_k_row(c, l, log.to, r),
                                kv_cache_k_row_bytes(c));
            assert_memory_equal(kv_cache_v_row(d, l, log.to, r), kv_cache_v_row(c, l, log.to, r),
                                kv_cache_v_row_bytes(c));
        }
    assert_int_equal(kv_cache_copy_rows_of(d, false, 6, 0, 1, &err), GARLIC_EINVAL);
    assert_int_equal(kv_cache_copy_rows_of(d, false, 0, 1, BT + 1, &err), GARLIC_EINVAL);
    assert_int_equal(kv_cache_copy_rows_of(d, true, 0, 1, 1, &err), GARLIC_EINVAL); // no windows
    kv_seq_deinit(c, &a);
    kv_seq_deinit(c, &b);
    assert_int_equal(log.gone, 0);
    kv_cache_free(c); // the mirror hears the pool is gone
    assert_int_equal(log.gone, 1);
    kv_cache_free(d);
}

// A block that stops being the block its cached child was computed after (here: unpublished
// by a truncation, then refilled with the same tokens) orphans the child: the child's parent
// identity no longer matches, so it is not shared, and it is evicted as unreachable.
static void test_orphaned_child(void **state)
{
    (void)state;
    enum { BT = 4 };
    kv_cache *c = make_cache(KV_TYPE_F32, 1, 1, 4, BT, 3);
    garlic_error err = {0};
    const int32_t x[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    kv_seq a, f;
    kv_seq_init(&a);
    kv_seq_init(&f);
    append_commit(c, &a, x, 8);
    uint32_t x0 = a.blocks[0], x1 = a.blocks[1];
    assert_int_equal(kv_seq_append(c, &f, x, 4, &err), GARLIC_OK); // the last free block
    // No block for a private copy and a holds x0 alone: x0 is unpublished in place.
    assert_int_equal(kv_seq_truncate(c, &a, 2, &err), GARLIC_OK);
    assert_int_equal(a.blocks[0], x0);
    assert_int_equal(kv_cache_get_stats(c).n_cached, 1); // x1, now an orphan
    assert_int_equal(kv_cache_prefix_lookup(c, x, 8), 0);
    // The same tokens again: x0 is republished, but x1 is not its child any more.
    assert_int_equal(kv_seq_append(c, &a, x + 2, 2, &err), GARLIC_OK);
    assert_int_equal(kv_seq_commit(c, &a, 4, &err), GARLIC_OK);
    assert_int_equal(kv_cache_prefix_lookup(c, x, 8), 1);
    assert_int_equal(kv_seq_append(c, &a, x + 4, 4, &err), GARLIC_OK); // evicts x1
    assert_int_equal(a.blocks[1], x1);
    assert_int_equal(kv_cache_get_stats(c).evictions, 1);
    assert_int_equal(kv_seq_commit(c, &a, 8, &err), GARLIC_OK);
    assert_int_equal(kv_cache_prefix_lookup(c, x, 8), 2);
    assert_consistent(c);
    kv_seq_deinit(c, &a);
    kv_seq_deinit(c, &f);
    kv_cache_free(c);
}

// ---- 9. truncation of shared blocks ----

// A pool without V rows (head_dim_v 0, multi-head latent attention): sizes count K rows
// only, stores read no V, and a shared block's private copy keeps its K rows.
static void test_k_rows_only(void **state)
{
    (void)state;
    enum { BT = 4 };
    garlic_error err = {0};
    kv_cache_config cfg = {.n_layer = 3,
                           .n_head_kv = 1,
                           .head_dim_k = 96,
                           .head_dim_v = 0,
                           .block_tokens = BT,
                           .type = KV_TYPE_Q8_0};
    uint64_t k_row, v_row, k_only, both;
    assert_int_equal(kv_cache_row_bytes(&cfg, &k_row, &v_row, &err), GARLIC_OK);
    assert_int_equal(k_row, 3 * 34);
    assert_int_equal(v_row, 0);
    assert_int_equal(kv_cache_bytes_for(&cfg, 10, &k_only, &err), GARLIC_OK);
    kv_cache_config with_v = cfg;
    with_v.head_dim_v = 96;
    assert_int_equal(kv_cache_bytes_for(&with_v, 10, &both, &err), GARLIC_OK);
    assert_int_equal(both - k_only, 10ull * BT * 3 * k_row);
    cfg.n_blocks = 4;
    kv_cache *q = kv_cache_new(&cfg, &err);
    assert_non_null(q);
    assert_int_equal(kv_cache_bytes_for(&cfg, 4, &k_only, &err), GARLIC_OK);
    assert_int_equal(kv_cache_bytes(q), k_only);
    kv_cache_free(q);

    cfg.type = KV_TYPE_F32;
    cfg.head_dim_k = 6;
    kv_cache *c = kv_cache_new(&cfg, &err);
    assert_non_null(c);
    assert_int_equal(kv_cache_v_row_bytes(c), 0);
    const int32_t x[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    kv_seq a, b;
    kv_seq_init(&a);
    kv_seq_init(&b);
    assert_int_equal(kv_seq_append(c, &a, x, 8, &err), GARLIC_OK);
    for (uint32_t p = 0; p < 8; p++)
        for (uint32_t l = 0; l < 3; l++) {
            float k[6] = {(float)p, (float)l, 1, 2, 3, 4};
            kv_cache_store(c, l, a.blocks[p / BT], p % BT, k, NULL);
        }
    assert_int_equal(kv_seq_commit(c, &a, 8, &err), GARLIC_OK);
    uint32_t shared;
    assert_int_equal(kv_seq_share_prefix(c, &b, x, 8, &shared, &err), GARLIC_OK);
    assert_int_equal(shared, 8);
    assert_int_equal(kv_seq_truncate(c, &b, 6, &err), GARLIC_OK);
    assert_int_not_equal(b.blocks[1], a.blocks[1]);
    for (uint32_t p = 4; p < 6; p++)
        for (uint32_t l = 0; l < 3; l++) {
            const float *row = (const float *)kv_cache_k_row(c, l, b.blocks[1], p % BT);
            assert_true(row[0] == (float)p && row[1] == (float)l && row[5] == 4);
        }
    assert_consistent(c);
    kv_seq_deinit(c, &a);
    kv_seq_deinit(c, &b);
    kv_cache_free(c);
}

static void test_truncate_copies_shared(void **state)
{
    (void)state;
    enum { BT = 4 };
    kv_cache *c = make_cache(KV_TYPE_F32, 2, 1, 4, BT, 4);
    garlic_error err = {0};
    const int32_t x[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    kv_seq a, b;
    kv_seq_init(&a);
    kv_seq_init(&b);
    append_commit(c, &a, x, 8);
    for (uint32_t p = 0; p < 8; p++)
        for (uint32_t l = 0; l < 2; l++) {
            float k[4] = {(float)p, (float)l, 1, 2}, v[4] = {-(float)p, (float)l, 3, 4};
            kv_cache_store(c, l, a.blocks[p / BT], p % BT, k, v);
        }
    uint32_t shared;
    assert_int_equal(kv_seq_share_prefix(c, &b, x, 8, &shared, &err), GARLIC_OK);
    assert_int_equal(shared, 8);
    assert_int_equal(kv_seq_truncate(c, &b, 6, &err), GARLIC_OK);
    assert_int_not_equal(b.blocks[1], a.blocks[1]);
    assert_int_equal(b.blocks[0], a.blocks[0]);
    assert_int_equal(b.n_committed, 6);
    for (uint32_t p = 4; p < 6; p++)
        for (uint32_t l = 0; l < 2; l++) {
            assert_memory_equal(kv_cache_k_row(c, l, b.blocks[1], p % BT),
                                kv_cache_k_row(c, l, a.blocks[1], p % BT), 16);
            assert_memory_equal(kv_cache_v_row(c, l, b.blocks[1], p % BT),
                                kv_cache_v_row(c, l, a.blocks[1], p % BT), 16);
        }
    assert_int_equal(kv_cache_block_refs(c, a.blocks[1]), 1);
    const int32_t y[2] = {70, 80};
    assert_int_equal(kv_seq_append(c, &b, y, 2, &err), GARLIC_OK);
    assert_int_equal(kv_seq_commit(c, &b, 8, &err), GARLIC_OK);
    const int32_t xy[8] = {1, 2, 3, 4, 5, 6, 70, 80};
    assert_int_equal(kv_cache_prefix_lookup(c, xy, 8), 2);
    assert_int_equal(kv_cache_prefix_lookup(c, x, 8), 2);
    assert_int_equal(kv_seq_truncate(c, &b, 9, &err), GARLIC_EINVAL);
    assert_int_equal(kv_seq_truncate(c, &b, 0, &err), GARLIC_OK);
    assert_int_equal(b.n_blocks, 0);
    assert_consistent(c);
    kv_seq_deinit(c, &a);
    kv_seq_deinit(c, &b);

    // With no block to copy into: an error while shared, unpublishing once alone.
    kv_cache *small = make_cache(KV_TYPE_F32, 1, 1, 4, BT, 2);
    append_commit(small, &a, x, 8);
    assert_int_equal(kv_seq_share_prefix(small, &b, x, 8, &shared, &err), GARLIC_OK);
    assert_int_equal(kv_seq_truncate(small, &b, 6, &err), GARLIC_ENOMEM);
    assert_int_equal(b.n_tokens, 8);
    kv_seq_release(small, &a);
    assert_int_equal(kv_seq_truncate(small, &b, 6, &err), GARLIC_OK);
    assert_int_equal(kv_cache_prefix_lookup(small, x, 8), 1);
    assert_consistent(small);
    kv_seq_deinit(small, &a);
    kv_seq_deinit(small, &b);
    kv_cache_free(small);
    kv_cache_free(c);
}

static void test_commit_errors(void **state)
{
    (void)state;
    kv_cache *c = make_cache(KV_TYPE_F16, 1, 1, 8, 4, 4);
    garlic_error err = {0};
    int32_t t[6];
    fill_tokens(t, 6, 1);
    kv_seq s;
    kv_seq_init(&s);
    assert_int_equal(kv_seq_append(c, &s, t, 6, &err), GARLIC_OK);
    assert_int_equal(kv_seq_commit(c, &s, 7, &err), GARLIC_EINVAL);
    assert_int_equal(kv_seq_commit(c, &s, 3, &err), GARLIC_OK);
    assert_int_equal(kv_seq_commit(c, &s, 2, &err), GARLIC_EINVAL);
    assert_int_equal(kv_cache_prefix_lookup(c, t, 6), 0); // nothing full is committed yet
    assert_int_equal(kv_seq_commit(c, &s, 6, &err), GARLIC_OK);
    assert_int_equal(kv_cache_prefix_lookup(c, t, 6), 1);
    assert_int_equal(kv_seq_append(c, &s, t, UINT32_MAX, &err), GARLIC_EINVAL);
    uint32_t block, offset;
    assert_true(kv_seq_locate(c, &s, 5, &block, &offset));
    assert_int_equal(block, s.blocks[1]);
    assert_int_equal(offset, 1);
    assert_false(kv_seq_locate(c, &s, 6, &block, &offset));
    kv_seq_deinit(c, &s);
    kv_cache_free(c);
}

// ---- 10. sliding-window layers ----

// A cache of 4 layers of which 1 and 3 have a window of W positions, blocks of 4 positions,
// n_blocks full blocks and n_window window blocks (0: as many).
enum { W_BT = 4, W_WINDOW = 10, W_LAYERS = 4 };

static kv_cache *make_window_cache(uint32_t n_blocks, uint32_t n_window)
{
    kv_cache_config cfg = {.n_layer = W_LAYERS,
                           .n_head_kv = 1,
                           .head_dim_k = 4,
                           .head_dim_v = 4,
                           .block_tokens = W_BT,
                           .type = KV_TYPE_F32,
                           .n_blocks = n_blocks,
                           .n_window_blocks = n_window,
                           .windows = {.window = W_WINDOW}};
    assert_true(kv_windows_set(&cfg.windows, 1) && kv_windows_set(&cfg.windows, 3));
    garlic_error err = {0};
    kv_cache *c = kv_cache_new(&cfg, &err);
    if (!c)
        print_message("kv_cache_new: %s\n", err.message);
    assert_non_null(c);
    assert_consistent(c);
    return c;
}

// Writes a distinct row for every layer of positions [from, s->n_tokens), token t at p
// giving k = {t, p, layer, 1}.
static void write_window_rows(kv_cache *c, const kv_seq *s, const int32_t *tokens, uint32_t from)
{
    for (uint32_t p = from; p < s->n_tokens; p++)
        for (uint32_t l = 0; l < W_LAYERS; l++) {
            float k[4] = {(float)tokens[p], (float)p, (float)l, 1}, v[4] = {-k[0], -k[1], -k[2], 2};
            kv_cache_store(c, l, kv_seq_table(c, s, l)[p / W_BT], p % W_BT, k, v);
        }
}

// The rows write_window_rows wrote are there for every position s holds in each layer.
static void check_window_rows(const kv_cache *c, const kv_seq *s, const int32_t *tokens)
{
    for (uint32_t p = 0; p < s->n_tokens; p++)
        for (uint32_t l = 0; l < W_LAYERS; l++) {
            if ((l == 1 || l == 3) && p / W_BT < s->window_first)
                continue;
            float k[4] = {(float)tokens[p], (float)p, (float)l, 1};
            assert_memory_equal(kv_cache_k_row(c, l, kv_seq_table(c, s, l)[p / W_BT], p % W_BT), k,
                                sizeof k);
        }
}

// A sequence growing one token at a time keeps the window blocks of its last W - 1 positions
// (and the partial block it writes next) and gives the older ones back, published, to the
// prefix cache; the full blocks all stay.
static void test_window_release(void **state)
{
    (void)state;
    kv_cache *c = make_window_cache(64, 0);
    assert_true(kv_cache_layer_is_window(c, 1) && kv_cache_layer_is_window(c, 3));
    assert_false(kv_cache_layer_is_window(c, 0) || kv_cache_layer_is_window(c, 2));
    assert_int_equal(kv_cache_get_stats(c).n_window_blocks, 64);
    garlic_error err = {0};
    int32_t tokens[140];
    fill_tokens(tokens, 140, 50);
    kv_seq s;
    kv_seq_init(&s);
    for (uint32_t n = 1; n <= 100; n++) {
        assert_int_equal(kv_seq_blocks_needed(c, &s, 1), n % W_BT == 1 ? 1 : 0);
        assert_int_equal(kv_seq_append(c, &s, tokens + n - 1, 1, &err), GARLIC_OK);
        assert_true(kv_seq_holds_rows(c, &s, n - 1));
        write_window_rows(c, &s, tokens, n - 1);
        assert_int_equal(kv_seq_commit(c, &s, n, &err), GARLIC_OK);
        // The next token, at position n, reads n - W + 1 .. n: blocks from there on are held.
        uint32_t first = (n + 1 > W_WINDOW ? n + 1 - W_WINDOW : 0) / W_BT;
        assert_int_equal(s.window_first, first);
        kv_cache_stats st = kv_cache_get_stats(c);
        assert_int_equal(st.n_used, s.n_blocks);
        assert_int_equal(st.n_window_used, s.n_blocks - first);
        assert_int_equal(st.n_window_cached, first); // every released block was published
        for (uint32_t i = 0; i < first; i++)
            assert_int_equal(s.window_blocks[i], KV_NO_BLOCK);
        check_window_rows(c, &s, tokens);
        assert_consistent(c);
    }
    // 100 positions: 25 full blocks, the window blocks of 91.. (blocks 22..24).
    assert_int_equal(s.n_blocks, 25);
    assert_int_equal(s.window_first, 22);
    assert_false(kv_seq_holds_rows(c, &s, 100)); // not reserved yet
    // A chunk of 30 at once holds every new window block until its commit releases them.
    assert_int_equal(kv_seq_append(c, &s, tokens + 100, 30, &err), GARLIC_OK);
    write_window_rows(c, &s, tokens, 100);
    assert_int_equal(kv_cache_get_stats(c).n_window_used, 33 - 22);
    for (uint32_t p = 100; p < 130; p++)
        assert_true(kv_seq_holds_rows(c, &s, p));
    assert_int_equal(kv_seq_commit(c, &s, 130, &err), GARLIC_OK);
    assert_int_equal(s.window_first, (131 - W_WINDOW) / W_BT);
    assert_int_equal(kv_cache_get_stats(c).n_window_used, 33 - 30);
    check_window_rows(c, &s, tokens);
    assert_consistent(c);
    // Released, everything committed stays cached; the window blocks too.
    kv_seq_release(c, &s);
    kv_cache_stats st = kv_cache_get_stats(c);
    assert_int_equal(st.n_used + st.n_window_used, 0);
    assert_int_equal(st.n_cached, 32); // block 32 was partial, never published
    assert_int_equal(st.n_window_cached, 32);
    assert_consistent(c);
    kv_seq_deinit(c, &s);
    kv_cache_free(c);
}

// Sharing a prefix takes its window blocks too; a prefix whose last window blocks were
// evicted is shared only as far back as the window blocks before it are still cached.
static void test_window_prefix_sharing(void **state)
{
    (void)state;
    kv_cache *c = make_window_cache(64, 16);
    garlic_error err = {0};
    int32_t a[44], other[48];
    fill_tokens(a, 44, 7);
    fill_tokens(other, 48, 900);
    kv_seq sa, sb, sd;
    kv_seq_init(&sa);
    kv_seq_init(&sb);
    kv_seq_init(&sd);
    assert_int_equal(kv_seq_append(c, &sa, a, 40, &err), GARLIC_OK);
    write_window_rows(c, &sa, a, 0);
    assert_int_equal(kv_seq_commit(c, &sa, 40, &err), GARLIC_OK);
    assert_int_equal(sa.window_first, (41 - W_WINDOW) / W_BT); // 7: blocks 7, 8, 9 held
    uint32_t wa[10];
    for (uint32_t i = 7; i < 10; i++)
        wa[i] = sa.window_blocks[i];
    kv_seq_release(c, &sa); // window LRU: 0..6 (released at the commit), then 9, 8, 7

    // The same 40 tokens and more: all 10 blocks shared, with window blocks 7..9.
    assert_int_equal(kv_cache_prefix_lookup(c, a, 44), 10);
    uint32_t shared;
    assert_int_equal(kv_seq_share_prefix(c, &sb, a, 43, &shared, &err), GARLIC_OK);
    assert_int_equal(shared, 40);
    assert_int_equal(sb.window_first, 7);
    for (uint32_t i = 7; i < 10; i++) {
        assert_int_equal(sb.window_blocks[i], wa[i]);
        assert_int_equal(kv_cache_window_block_refs(c, wa[i]), 1);
    }
    assert_int_equal(kv_cache_get_stats(c).n_window_used, 3);
    check_window_rows(c, &sb, a);
    assert_consistent(c);
    kv_seq_release(c, &sb); // window LRU: 0..6, 9, 8, 7

    // A 28-token prefix (blocks 0..6, window blocks 4..6) makes those recent.
    assert_int_equal(kv_seq_share_prefix(c, &sb, a, 28, &shared, &err), GARLIC_OK);
    assert_int_equal(shared, 28);
    assert_int_equal(sb.window_first, (29 - W_WINDOW) / W_BT);
    kv_seq_release(c, &sb); // window LRU: 0, 1, 2, 3, 9, 8, 7, 6, 5, 4
    // Another prompt takes the 6 free window blocks, then evicts 0, 1, 2, 3, 9 and 8.
    assert_int_equal(kv_seq_append(c, &sd, other, 48, &err), GARLIC_OK);
    kv_cache_stats st = kv_cache_get_stats(c);
    assert_int_equal(st.window_evictions, 6);
    assert_int_equal(st.evictions, 0); // the full pool had room
    // 40 positions would need window blocks 7..9 and 36 blocks 6..8: the longest prefix
    // whose window blocks are all cached is 32 positions (window blocks 5..7).
    assert_int_equal(kv_cache_prefix_lookup(c, a, 44), 8);
    uint64_t hits = st.prefix_hits, misses = st.prefix_misses;
    assert_int_equal(kv_seq_share_prefix(c, &sb, a, 43, &shared, &err), GARLIC_OK);
    assert_int_equal(shared, 32);
    assert_int_equal(sb.window_first, 5);
    for (uint32_t i = 0; i < 5; i++)
        assert_int_equal(sb.window_blocks[i], KV_NO_BLOCK);
    assert_int_equal(sb.window_blocks[7], wa[7]);
    assert_int_equal(kv_cache_get_stats(c).prefix_hits, hits + 8);
    assert_int_equal(kv_cache_get_stats(c).prefix_misses, misses + 2);
    check_window_rows(c, &sb, a);
    assert_consistent(c);
    kv_seq_deinit(c, &sa);
    kv_seq_deinit(c, &sb);
    kv_seq_deinit(c, &sd);
    assert_consistent(c);
    kv_cache_free(c);
}

// The window blocks leave the cache in their own LRU order (released at commits as the
// window moves, so a prefix's earliest first), and a full block evicted from the cache takes
// its window companion with it.
static void test_window_eviction(void **state)
{
    (void)state;
    kv_cache *c = make_window_cache(6, 0);
    garlic_error err = {0};
    int32_t x[20], y[8];
    fill_tokens(x, 20, 1);
    fill_tokens(y, 8, 100);
    kv_seq a, b;
    kv_seq_init(&a);
    kv_seq_init(&b);
    assert_int_equal(kv_seq_append(c, &a, x, 20, &err), GARLIC_OK);
    assert_int_equal(kv_seq_commit(c, &a, 20, &err), GARLIC_OK); // position 20 reads 11..
    assert_int_equal(a.window_first, 2);
    uint32_t w2 = a.window_blocks[2];
    kv_seq_release(c, &a); // full LRU: 4 3 2 1 0; window LRU: 0 1 (at the commit), 4 3 2
    kv_cache_stats st = kv_cache_get_stats(c);
    assert_int_equal(st.n_cached, 5);
    assert_int_equal(st.n_window_cached, 5);
    // One free block of each kind, then each kind's least recently used: window block 0,
    // and full block 4, whose companion (window block 4) goes with it.
    assert_int_equal(kv_seq_append(c, &b, y, 8, &err), GARLIC_OK);
    st = kv_cache_get_stats(c);
    assert_int_equal(st.evictions, 1);
    assert_int_equal(st.window_evictions, 2);
    assert_int_equal(st.n_cached, 4);
    assert_int_equal(st.n_window_cached, 3);
    assert_int_equal(st.n_window_free, 1);
    assert_int_equal(st.n_window_used, 2);
    assert_int_equal(kv_cache_window_block_refs(c, w2), 0);
    // Blocks 0..3 are cached, and the window blocks 1..3 that the next token after them
    // reads (16 reads 7..): the 16-position prefix is still whole.
    assert_int_equal(kv_cache_prefix_lookup(c, x, 20), 4);
    kv_seq d;
    kv_seq_init(&d);
    uint32_t shared;
    assert_int_equal(kv_seq_share_prefix(c, &d, x, 19, &shared, &err), GARLIC_OK);
    assert_int_equal(shared, 16);
    assert_int_equal(d.window_first, 1);
    assert_int_equal(d.window_blocks[2], w2);
    assert_consistent(c);
    kv_seq_deinit(c, &a);
    kv_seq_deinit(c, &b);
    kv_seq_deinit(c, &d);
    assert_consistent(c);
    kv_cache_free(c);
}

// Truncation within the window copies both kinds of a shared partial block; rewinding to
// where released window rows would be read is refused with the sequence unchanged.
static void test_window_truncate(void **state)
{
    (void)state;
    kv_cache *c = make_window_cache(32, 0);
    garlic_error err = {0};
    int32_t t[40];
    fill_tokens(t, 40, 3);
    kv_seq a, b;
    kv_seq_init(&a);
    kv_seq_init(&b);
    assert_int_equal(kv_seq_append(c, &a, t, 40, &err), GARLIC_OK);
    write_window_rows(c, &a, t, 0);
    assert_int_equal(kv_seq_commit(c, &a, 40, &err), GARLIC_OK);
    uint32_t shared;
    assert_int_equal(kv_seq_share_prefix(c, &b, t, 40, &shared, &err), GARLIC_OK);
    assert_int_equal(shared, 40);
    // 38: position 38 reads 29.., in block 7 = window_first. Block 9 is copied (both kinds).
    uint32_t f9 = b.blocks[9], w9 = b.window_blocks[9];
    assert_int_equal(kv_seq_truncate(c, &b, 38, &err), GARLIC_OK);
    assert_int_not_equal(b.blocks[9], f9);
    assert_int_not_equal(b.window_blocks[9], w9);
    assert_int_equal(kv_cache_window_block_refs(c, w9), 1);
    assert_int_equal(kv_cache_window_block_refs(c, b.window_blocks[9]), 1);
    check_window_rows(c, &b, t);
    assert_consistent(c);
    // 30 would read 21.. (block 5), released at the commit: refused, b unchanged.
    kv_seq before = b;
    assert_int_equal(kv_seq_truncate(c, &b, 30, &err), GARLIC_EUNSUPPORTED);
    assert_non_null(strstr(err.message, "released"));
    assert_memory_equal(&b, &before, sizeof b);
    // A model_forward-style rewind is refused the same way: the rows cannot be read.
    assert_false(kv_seq_holds_rows(c, &b, 30));
    // 36 reads 27.. (block 6, released): refused too. 37 reads 28.. (block 7): fine, as is
    // going back to nothing.
    assert_int_equal(kv_seq_truncate(c, &b, 36, &err), GARLIC_EUNSUPPORTED);
    assert_int_equal(kv_seq_truncate(c, &b, 37, &err), GARLIC_OK);
    assert_int_equal(b.n_blocks, 10);
    assert_int_equal(kv_seq_append(c, &b, t + 37, 1, &err), GARLIC_OK);
    assert_true(kv_seq_holds_rows(c, &b, 37));
    assert_int_equal(kv_seq_truncate(c, &b, 0, &err), GARLIC_OK);
    assert_int_equal(b.window_first, 0);
    assert_consistent(c);
    kv_seq_deinit(c, &a);
    kv_seq_deinit(c, &b);
    kv_cache_free(c);
}

// Admission counts window blocks at their peak: all at once, a long prompt needs one window
// block per block; in steps, one window and one step.
static void test_window_admission(void **state)
{
    (void)state;
    kv_cache *c = make_window_cache(64, 6);
    int32_t t[40];
    fill_tokens(t, 40, 11);
    assert_true(kv_cache_has_blocks(c, 6));
    assert_false(kv_cache_has_blocks(c, 7)); // the window blocks run out first
    assert_false(kv_cache_can_admit(c, 40));
    assert_false(kv_cache_can_admit_prompt(c, t, 39, 40, 0, 0));
    // Steps of 8: blocks of 9 positions at worst alignment (3) plus 2 = 5 window blocks.
    const kv_cache_config *cfg = kv_cache_get_config(c);
    assert_int_equal(kv_window_blocks_for(cfg, 1, 8), 5);
    assert_true(kv_cache_can_admit_prompt(c, t, 39, 40, 8, 0));
    assert_true(kv_cache_can_admit_prompt(c, t, 39, 40, 8, 1));
    assert_false(kv_cache_can_admit_prompt(c, t, 39, 40, 8, 2));
    // A short prompt needs no more window blocks than blocks.
    assert_true(kv_cache_can_admit_prompt(c, t, 7, 8, 8, 4));
    kv_cache_free(c);
}

// Brute force over alignments and chunks: n_seqs sequences, each holding the window blocks
// of its last w - 1 committed positions and a chunk of new ones (chunks adding up to at most
// step), never hold more than kv_window_blocks_for; with one sequence and a step that is a
// whole number of blocks, the bound is reached.
static void test_window_bound(void **state)
{
    (void)state;
    const uint32_t bts[] = {1, 4, 16}, windows[] = {1, 2, 5, 16, 17, 100};
    const uint32_t steps[] = {1, 7, 32, 512};
    test_rng rng;
    test_rng_seed(&rng, 17);
    for (size_t i = 0; i < 3; i++)
        for (size_t j = 0; j < 6; j++)
            for (size_t k = 0; k < 4; k++) {
                kv_cache_config cfg = {
                    .n_layer = 2, .block_tokens = bts[i], .windows = {.window = windows[j]}};
                kv_windows_set(&cfg.windows, 0);
                uint32_t bt = bts[i], w = windows[j], step = steps[k];
                for (uint32_t n_seqs = 1; n_seqs <= 4; n_seqs++) {
                    uint32_t bound = kv_window_blocks_for(&cfg, n_seqs, step), most = 0;
                    for (int trial = 0; trial < 300; trial++) {
                        uint32_t held = 0, left = step;
                        for (uint32_t s = 0; s < n_seqs; s++) {
                            uint32_t c = (uint32_t)(test_rng_u64(&rng) % (3 * bt + 2 * w));
                            uint32_t chunk = s + 1 == n_seqs || trial % 3 == 0
                                ? left
                                : (uint32_t)(test_rng_u64(&rng) % (left + 1));
                            left -= chunk;
                            uint32_t lo = c + 1 > w ? c + 1 - w : 0, hi = c + chunk;
                            held += hi > lo ? (hi - 1) / bt - lo / bt + 1 : 0;
                        }
                        most = held > most ? held : most;
                    }
                    if (most > bound)
                        fail_msg("bt %u window %u step %u, %u sequences: %u blocks held, bound "
                                 "%u",
                                 bt, w, step, n_seqs, most, bound);
                    if (n_seqs == 1 && step % bt == 0 && w > 1)
                        assert_int_equal(most, bound);
                }
            }
    kv_cache_config none = {.n_layer = 2, .block_tokens = 16};
    assert_int_equal(kv_window_blocks_for(&none, 4, 512), 0);
}

// A model shaped like the large sliding-window ones (48 layers, 40 with a window of 1024,
// 8 KV heads of 128, F16): for 4 sequences of 32768 positions in steps of 512 the pool is
// under a quarter of an all-full one, and kv_cache_new takes exactly kv_cache_bytes_for.
static void test_window_pool_size(void **state)
{
    (void)state;
    kv_cache_config full = {.n_layer = 48,
                            .n_head_kv = 8,
                            .head_dim_k = 128,
                            .head_dim_v = 128,
                            .block_tokens = 16,
                            .type = KV_TYPE_F16};
    kv_cache_config win = full;
    win.windows.window = 1024;
    for (uint32_t l = 0; l < 48; l++)
        if (l % 6 != 5)
            kv_windows_set(&win.windows, l);
    assert_int_equal(kv_windows_count(&win.windows, 48), 40);
    uint32_t blocks = 4 * 32768 / 16;
    // 4 x (floor((1024 + 13) / 16) + 1) + 512 / 16 + 3 = 4 x 65 + 35
    win.n_window_blocks = kv_window_blocks_for(&win, 4, 512);
    assert_int_equal(win.n_window_blocks, 295);
    assert_int_equal(kv_cache_window_blocks(&win, blocks), 295);
    assert_int_equal(kv_cache_window_blocks(&win, 100), 100); // never more than full blocks
    assert_int_equal(kv_cache_window_blocks(&full, blocks), 0);
    uint64_t f_full, f_window, w_full, w_window, bytes_full, bytes_win;
    kv_cache_block_data_bytes(&full, &f_full, &f_window);
    kv_cache_block_data_bytes(&win, &w_full, &w_window);
    assert_int_equal(f_full, 48ull * 16 * 4096);
    assert_int_equal(f_window, 0);
    assert_int_equal(w_full, 8ull * 16 * 4096);
    assert_int_equal(w_window, 40ull * 16 * 4096);
    garlic_error err = {0};
    assert_int_equal(kv_cache_bytes_for(&full, blocks, &bytes_full, &err), GARLIC_OK);
    assert_int_equal(kv_cache_bytes_for(&win, blocks, &bytes_win, &err), GARLIC_OK);
    print_message("pool for 4 x 32768: %.2f GB all full, %.2f GB with windows\n",
                  (double)bytes_full / 1e9, (double)bytes_win / 1e9);
    assert_true(bytes_win >= blocks * w_full + 295 * w_window);
    assert_true(bytes_win * 4 < bytes_full);
    // The data, and what the window kind adds besides: its metadata, links and slots.
    assert_true(bytes_full - blocks * f_full < blocks * 64 + (1u << 20));
    assert_true(bytes_win - blocks * w_full - 295 * w_window < blocks * 64 + (1u << 20));
    // A small one for real: what it takes is what bytes_for says, for both kinds.
    win.n_layer = full.n_layer = 12;
    memset(win.windows.layers, 0, sizeof win.windows.layers);
    for (uint32_t l = 0; l < 12; l += 2)
        kv_windows_set(&win.windows, l);
    win.head_dim_k = win.head_dim_v = full.head_dim_k = full.head_dim_v = 32;
    win.n_blocks = full.n_blocks = 256;
    win.n_window_blocks = 40;
    kv_cache *a = kv_cache_new(&win, &err), *b = kv_cache_new(&full, &err);
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(kv_cache_bytes_for(&win, 256, &bytes_win, &err), GARLIC_OK);
    assert_int_equal(kv_cache_bytes_for(&full, 256, &bytes_full, &err), GARLIC_OK);
    assert_int_equal(kv_cache_bytes(a), bytes_win);
    assert_int_equal(kv_cache_bytes(b), bytes_full);
    kv_cache_stats st = kv_cache_get_stats(a);
    assert_int_equal(st.n_window_blocks, 40);
    assert_int_equal(st.bytes, bytes_win);
    assert_true(st.window_bytes > 40 * 6 * 16 * 1024ull && st.window_bytes < bytes_win);
    assert_int_equal(kv_cache_get_stats(b).n_window_blocks, 0);
    assert_int_equal(kv_cache_get_stats(b).window_bytes, 0);
    assert_true(bytes_win < bytes_full * 2 / 3);
    // From a budget, window blocks follow n_window_blocks.
    win.n_blocks = 0;
    win.budget_bytes = bytes_win;
    kv_cache *d = kv_cache_new(&win, &err);
    assert_non_null(d);
    assert_int_equal(kv_cache_get_config(d)->n_blocks, 256);
    assert_int_equal(kv_cache_get_config(d)->n_window_blocks, 40);
    kv_cache_free(a);
    kv_cache_free(b);
    kv_cache_free(d);
    // Bad window settings name the field.
    kv_cache_config bad = full;
    bad.n_layer = 4;
    kv_windows_set(&bad.windows, 7);
    bad.windows.window = 8;
    assert_null(kv_cache_new(&bad, &err));
    assert_non_null(strstr(err.message, "windows.layers"));
    bad.n_layer = 12;
    bad.windows.window = 0;
    assert_null(kv_cache_new(&bad, &err));
    assert_non_null(strstr(err.message, "windows.window"));
}

// ---- 11. fault injection ----

static void test_alloc_failures(void **state)
{
    (void)state;
    kv_cache_config cfg = {.n_layer = 2,
                           .n_head_kv = 2,
                           .head_dim_k = 32,
                           .head_dim_v = 32,
                           .block_tokens = 16,
                           .type = KV_TYPE_Q8_0,
                           .n_blocks = 8};
    int failures = 0;
    for (long n = 0;; n++) {
        garlic_error err = {0};
        garlic_alloc_fail_after(n);
        kv_cache *c = kv_cache_new(&cfg, &err);
        garlic_alloc_fail_reset();
        if (c) {
            kv_cache_free(c);
            break;
        }
        assert_int_equal(err.code, GARLIC_ENOMEM);
        assert_non_null(strstr(err.message, "out of memory"));
        failures++;
        assert_true(n < 100);
    }
    assert_true(failures >= 6);
    // With window layers: the window pool, its links and the layer slots too.
    cfg.windows.window = 64;
    kv_windows_set(&cfg.windows, 1);
    cfg.n_window_blocks = 3;
    failures = 0;
    for (long n = 0;; n++) {
        garlic_error err = {0};
        garlic_alloc_fail_after(n);
        kv_cache *c = kv_cache_new(&cfg, &err);
        garlic_alloc_fail_reset();
        if (c) {
            assert_int_equal(kv_cache_get_stats(c).n_window_blocks, 3);
            kv_cache_free(c);
            break;
        }
        assert_int_equal(err.code, GARLIC_ENOMEM);
        failures++;
        assert_true(n < 100);
    }
    assert_true(failures >= 12);

    // A block table that cannot grow leaves the sequence and the pool as they were.
    kv_cache *c = make_cache(KV_TYPE_F16, 1, 1, 8, 4, 8);
    garlic_error err = {0};
    int32_t t[16];
    fill_tokens(t, 16, 1);
    kv_seq s;
    kv_seq_init(&s);
    garlic_alloc_fail_after(0);
    assert_int_equal(kv_seq_append(c, &s, t, 16, &err), GARLIC_ENOMEM);
    uint32_t shared;
    assert_int_equal(kv_seq_share_prefix(c, &s, t, 16, &shared, &err), GARLIC_ENOMEM);
    garlic_alloc_fail_reset();
    assert_int_equal(s.n_tokens, 0);
    assert_int_equal(kv_cache_get_stats(c).n_free, 8);
    assert_consistent(c);
    // Reserved up front, appends allocate nothing.
    assert_int_equal(kv_seq_reserve(c, &s, 32, &err), GARLIC_OK);
    garlic_alloc_fail_after(0);
    for (int i = 0; i < 16; i++)
        assert_int_equal(kv_seq_append(c, &s, t + i, 1, &err), GARLIC_OK);
    assert_int_equal(kv_seq_commit(c, &s, 16, &err), GARLIC_OK);
    assert_int_equal(kv_seq_truncate(c, &s, 3, &err), GARLIC_OK);
    garlic_alloc_fail_reset();
    assert_int_equal(kv_seq_reserve(c, &s, 33, &err), GARLIC_ENOMEM); // beyond the pool
    assert_consistent(c);
    kv_seq_deinit(c, &s);
    kv_cache_free(c);

    // With window layers both tables grow: the window one failing after the full one grew
    // leaves the sequence as it was, and a later append works.
    c = make_window_cache(16, 0);
    garlic_alloc_fail_after(1);
    assert_int_equal(kv_seq_append(c, &s, t, 16, &err), GARLIC_ENOMEM);
    garlic_alloc_fail_reset();
    assert_int_equal(s.n_tokens, 0);
    assert_int_equal(s.capacity, 0);
    assert_consistent(c);
    assert_int_equal(kv_seq_append(c, &s, t, 16, &err), GARLIC_OK);
    assert_true(s.capacity >= 4 && s.window_blocks != NULL);
    kv_seq_deinit(c, &s);
    assert_consistent(c);
    kv_cache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fp8_all_codes),
        cmocka_unit_test(test_mirror_copies),
        cmocka_unit_test(test_fp8_special_values),
        cmocka_unit_test(test_fp8_rounding),
        cmocka_unit_test(test_type_names),
        cmocka_unit_test(test_row_round_trips),
        cmocka_unit_test(test_cache_rows),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_budget_arithmetic),
        cmocka_unit_test(test_exhaustion),
        cmocka_unit_test(test_random_tables),
        cmocka_unit_test(test_random_tables_colliding),
        cmocka_unit_test(test_random_tables_window),
        cmocka_unit_test(test_prefix_sharing),
        cmocka_unit_test(test_admission),
        cmocka_unit_test(test_lru_eviction),
        cmocka_unit_test(test_truncate_eviction_order),
        cmocka_unit_test(test_hash_collisions),
        cmocka_unit_test(test_orphaned_child),
        cmocka_unit_test(test_k_rows_only),
        cmocka_unit_test(test_truncate_copies_shared),
        cmocka_unit_test(test_commit_errors),
        cmocka_unit_test(test_window_release),
        cmocka_unit_test(test_window_prefix_sharing),
        cmocka_unit_test(test_window_eviction),
        cmocka_unit_test(test_window_truncate),
        cmocka_unit_test(test_window_admission),
        cmocka_unit_test(test_window_bound),
        cmocka_unit_test(test_window_pool_size),
        cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
