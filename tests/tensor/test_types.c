// SPDX-License-Identifier: MIT
// Tests of src/tensor: the traits table and row sizes, the half/bfloat16 conversions
// (exhaustively), bit-exact dequantization against the references in ../shared (made by
// gguf-py and cross-checked with ggml), MXFP4 against gguf-py's quantizer and dequantizer
// (tests/data/mxfp4_reference.bin, made by tools/gen_mxfp4_reference.py), garlic's own
// F8_E4M3 and Q4_Z against values computed here (every E4M3 code from its bit fields with
// ldexp, hand-made Q4_Z blocks, rounding ties), and quantize -> dequantize round trips of
// every type garlic can produce, with error bounds derived from what each type can represent.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#include "base/cpu.h"
#include "gguf/gguf.h"
#include "tensor/quants.h"
#include "tensor/types.h"

static uint32_t float_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float bits_float(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

// ---- 1. traits table ----

static void test_traits_table(void **state)
{
    (void)state;
    int known = 0;
    for (uint32_t t = 0; t < TENSOR_TYPE_COUNT + 8; t++) {
        const tensor_type_traits *tr = tensor_type_get(t);
        if (!tr)
            continue;
        known++;
        assert_non_null(tr->name);
        assert_true(tr->block_size > 0);
        assert_true(tr->type_size > 0);
        tensor_type found;
        assert_true(tensor_type_from_name(tr->name, &found));
        assert_int_equal(found, t);
        char lower[16];
        size_t len = strlen(tr->name);
        assert_true(len < sizeof lower);
        for (size_t i = 0; i <= len; i++) {
            char c = tr->name[i];
            lower[i] = (char)(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
        }
        assert_true(tensor_type_from_name(lower, &found));
        assert_int_equal(found, t);
        // Quantized types have blocks; plain ones are one value per "block".
        assert_int_equal(tr->block_size > 1, tr->is_quantized);
    }
    // The GGUF ids below TENSOR_TYPE_GGUF_COUNT (40) minus the 8 removed ones, and garlic's
    // own two, which alone are flagged internal.
    assert_int_equal(known, 32 + 2);
    for (uint32_t t = 0; t < TENSOR_TYPE_COUNT; t++) {
        const tensor_type_traits *tr = tensor_type_get(t);
        bool own = t == TENSOR_TYPE_F8_E4M3 || t == TENSOR_TYPE_Q4_Z;
        if (tr)
            assert_int_equal(tr->internal, own);
        assert_true(own || !tr || t < TENSOR_TYPE_GGUF_COUNT);
        assert_true(!own || t >= TENSOR_TYPE_GGUF_COUNT);
    }
    tensor_type own;
    assert_true(tensor_type_from_name("f8_e4m3", &own));
    assert_int_equal(own, TENSOR_TYPE_F8_E4M3);
    assert_true(tensor_type_from_name("Q4_Z", &own));
    assert_int_equal(own, TENSOR_TYPE_Q4_Z);
    // Removed ids, ggml's newer types garlic does not know (NVFP4 = 40, Q1_0, Q2_0: not to be
    // taken for garlic's own), and ids past the table.
    const uint32_t removed[] = {
        4, 5, 31, 32, 33, 36, 37, 38, 40, 41, 42, 63, TENSOR_TYPE_COUNT, 0xFFFFFFFFu};
    for (size_t i = 0; i < sizeof removed / sizeof removed[0]; i++)
        assert_null(tensor_type_get(removed[i]));
    tensor_type found;
    assert_false(tensor_type_from_name("Q4_2", &found));
    assert_false(tensor_type_from_name("", &found));
    assert_false(tensor_type_from_name(NULL, &found));
}

typedef struct size_case {
    uint32_t type;
    uint32_t block_size, type_size;
} size_case;

static void test_type_sizes(void **state)
{
    (void)state;
    const size_case cases[] = {
        {TENSOR_TYPE_F32, 1, 4},
        {TENSOR_TYPE_F16, 1, 2},
        {TENSOR_TYPE_BF16, 1, 2},
        {TENSOR_TYPE_Q4_0, 32, sizeof(block_q4_0)},
        {TENSOR_TYPE_Q4_1, 32, sizeof(block_q4_1)},
        {TENSOR_TYPE_Q5_0, 32, sizeof(block_q5_0)},
        {TENSOR_TYPE_Q5_1, 32, sizeof(block_q5_1)},
        {TENSOR_TYPE_Q8_0, 32, sizeof(block_q8_0)},
        {TENSOR_TYPE_Q8_1, 32, sizeof(block_q8_1)},
        {TENSOR_TYPE_Q2_K, 256, sizeof(block_q2_k)},
        {TENSOR_TYPE_Q3_K, 256, sizeof(block_q3_k)},
        {TENSOR_TYPE_Q4_K, 256, sizeof(block_q4_k)},
        {TENSOR_TYPE_Q5_K, 256, sizeof(block_q5_k)},
        {TENSOR_TYPE_Q6_K, 256, sizeof(block_q6_k)},
        {TENSOR_TYPE_Q8_K, 256, sizeof(block_q8_k)},
        {TENSOR_TYPE_IQ4_NL, 32, sizeof(block_iq4_nl)},
        {TENSOR_TYPE_IQ4_XS, 256, sizeof(block_iq4_xs)},
        {TENSOR_TYPE_IQ2_XXS, 256, 66},
        {TENSOR_TYPE_IQ2_XS, 256, 74},
        {TENSOR_TYPE_IQ3_XXS, 256, 98},
        {TENSOR_TYPE_IQ1_S, 256, 50},
        {TENSOR_TYPE_IQ3_S, 256, 110},
        {TENSOR_TYPE_IQ2_S, 256, 82},
        {TENSOR_TYPE_IQ1_M, 256, 56},
        {TENSOR_TYPE_TQ1_0, 256, 54},
        {TENSOR_TYPE_TQ2_0, 256, 66},
        {TENSOR_TYPE_MXFP4, 32, 17},
        {TENSOR_TYPE_F8_E4M3, 32, 36}, // an F32 scale and 32 bytes: 9 bits per weight
        {TENSOR_TYPE_Q4_Z, 32, 20},    // a half scale, a zero point, a pad byte, 16 bytes
        {TENSOR_TYPE_I8, 1, 1},
        {TENSOR_TYPE_I16, 1, 2},
        {TENSOR_TYPE_I32, 1, 4},
        {TENSOR_TYPE_I64, 1, 8},
        {TENSOR_TYPE_F64, 1, 8},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const tensor_type_traits *tr = tensor_type_get(cases[i].type);
        assert_non_null(tr);
        assert_int_equal(tr->block_size, cases[i].block_size);
        assert_int_equal(tr->type_size, cases[i].type_size);
    }
    // 2.625 / 3.4375 / 4.5 / 5.5 / 6.5625 bits per weight for the K-quants.
    assert_int_equal(sizeof(block_q2_k) * 8 * 1000 / QK_K, 2625);
    assert_int_equal(sizeof(block_q3_k) * 8 * 10000 / QK_K, 34375);
    assert_int_equal(sizeof(block_q6_k) * 8 * 10000 / QK_K, 65625);
}

static void test_row_size(void **state)
{
    (void)state;
    uint64_t bytes = 0;
    assert_true(tensor_row_size(TENSOR_TYPE_F32, 7, &bytes));
    assert_int_equal(bytes, 28);
    assert_true(tensor_row_size(TENSOR_TYPE_Q4_0, 64, &bytes));
    assert_int_equal(bytes, 36);
    assert_true(tensor_row_size(TENSOR_TYPE_Q4_K, 4096, &bytes));
    assert_int_equal(bytes, 16 * 144);
    assert_true(tensor_row_size(TENSOR_TYPE_IQ2_XXS, 256, &bytes));
    assert_int_equal(bytes, 66);
    assert_true(tensor_row_size(TENSOR_TYPE_Q8_0, 0, &bytes));
    assert_int_equal(bytes, 0);
    // Not a multiple of the block size.
    assert_false(tensor_row_size(TENSOR_TYPE_Q4_0, 33, &bytes));
    assert_false(tensor_row_size(TENSOR_TYPE_Q6_K, 255, &bytes));
    assert_false(tensor_row_size(TENSOR_TYPE_MXFP4, 16, &bytes));
    // Unknown types.
    assert_false(tensor_row_size(4, 32, &bytes));
    assert_false(tensor_row_size(TENSOR_TYPE_COUNT, 32, &bytes));
    // Overflow: 2^62 F32 values are 2^64 bytes; 2^64 - 256 Q8_K values are (2^56 - 1) * 292.
    // Types with fewer bytes than values per block (Q4_K: 144 per 256) cannot overflow.
    assert_false(tensor_row_size(TENSOR_TYPE_F32, 1ull << 62, &bytes));
    assert_true(tensor_row_size(TENSOR_TYPE_F32, (1ull << 62) - 1, &bytes));
    assert_int_equal(bytes, ((1ull << 62) - 1) * 4);
    assert_false(tensor_row_size(TENSOR_TYPE_Q8_K, UINT64_MAX - 255, &bytes));
    assert_false(tensor_row_size(TENSOR_TYPE_I64, UINT64_MAX, &bytes));
    assert_true(tensor_row_size(TENSOR_TYPE_Q4_K, UINT64_MAX - 255, &bytes));
    assert_int_equal(bytes, (UINT64_MAX / 256) * 144);
}

// ---- 2. half and bfloat16 ----

// The value of half h computed independently of the library, with ldexp.
static float half_value(uint16_t h)
{
    int exp = (h >> 10) & 0x1F, mant = h & 0x3FF;
    double v = exp == 0 ? ldexp(mant, -24) : ldexp(1024 + mant, exp - 25);
    if (exp == 0x1F)
        v = mant ? NAN : INFINITY;
    return (float)((h & 0x8000) ? -v : v);
}

// Every half converts to the float it denotes and back to itself. NaNs are the one
// exception: a signalling NaN comes back quiet (bit 9 set) with its sign and payload.
static void test_f16_exhaustive(void **state)
{
    (void)state;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = tensor_f16_to_f32((uint16_t)h);
        uint16_t back = tensor_f32_to_f16(f);
        if (isnan(f)) {
            assert_true((h & 0x7C00) == 0x7C00 && (h & 0x3FF) != 0);
            assert_int_equal(back, h | 0x0200);
            assert_int_equal(float_bits(f) >> 31, h >> 15);
            continue;
        }
        if (back != h || float_bits(f) != float_bits(half_value((uint16_t)h)))
            fail_msg("half 0x%04x: %a -> 0x%04x", h, (double)f, back);
    }
}

static void test_f16_rounding(void **state)
{
    (void)state;
    const struct {
        float in;
        uint16_t out;
    } cases[] = {
        {1.0f, 0x3C00},
        {1.0f + 0x1p-11f, 0x3C00},            // halfway between 0x3C00 and 0x3C01: even
        {1.0f + 3 * 0x1p-11f, 0x3C02},        // halfway between 0x3C01 and 0x3C02: even
        {1.0f + 0x1p-11f + 0x1p-20f, 0x3C01}, // just above halfway
        {1.0f + 0x1p-11f - 0x1p-22f, 0x3C00}, // just below halfway
        {0.1f, 0x2E66},
        {-2.0f, 0xC000},
        {-0.0f, 0x8000},
        {65504.0f, 0x7BFF}, // largest half
        {65519.99f, 0x7BFF},
        {65520.0f, 0x7C00}, // halfway to 65536 rounds to even: inf
        {1e10f, 0x7C00},
        {-INFINITY, 0xFC00},
        {0x1p-14f, 0x0400},            // smallest normal
        {0x1p-14f - 0x1p-25f, 0x0400}, // halfway between 0x03FF and 0x0400
        {0x1p-14f - 0x1p-24f, 0x03FF}, // largest subnormal
        {0x1p-24f, 0x0001},            // smallest subnormal
        {0x1p-25f, 0x0000},            // halfway between 0 and 2^-24: even
        {0x1p-25f * 1.0000001f, 0x0001},
        {3 * 0x1p-25f, 0x0002}, // 1.5 units: even
        {5 * 0x1p-25f, 0x0002}, // 2.5 units: even
        {-0x1p-26f, 0x8000},
        {1e-30f, 0x0000},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint16_t h = tensor_f32_to_f16(cases[i].in);
        if (h != cases[i].out)
            fail_msg("%a -> 0x%04x, want 0x%04x", (double)cases[i].in, h, cases[i].out);
    }
    uint16_t nan = tensor_f32_to_f16(NAN);
    assert_true((nan & 0x7C00) == 0x7C00 && (nan & 0x0200) != 0);
    assert_int_equal(tensor_f32_to_f16(bits_float(0xFF800001u)), 0xFE00); // sNaN quieted
}

static void test_bf16(void **state)
{
    (void)state;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = tensor_bf16_to_f32((uint16_t)h);
        assert_int_equal(float_bits(f), h << 16);
        uint16_t back = tensor_f32_to_bf16(f);
        assert_int_equal(back, isnan(f) ? (h | 0x40) : h); // NaN comes back quiet
    }
    const struct {
        uint32_t in;
        uint16_t out;
    } cases[] = {
        {0x3F800000u, 0x3F80}, // 1.0
        {0x3F808000u, 0x3F80}, // halfway, even stays
        {0x3F818000u, 0x3F82}, // halfway, odd rounds up
        {0x3F808001u, 0x3F81}, // above halfway
        {0x3F807FFFu, 0x3F80}, // below halfway
        {0xBF818000u, 0xBF82}, // negative halfway
        {0x7F7FFFFFu, 0x7F80}, // FLT_MAX rounds to inf
        {0x7F800000u, 0x7F80}, // inf
        {0x7F800001u, 0x7FC0}, // sNaN with payload only in the low bits: quiet NaN
        {0xFF810000u, 0xFFC1}, // negative sNaN keeps sign and payload
        {0x00000001u, 0x0000}, // tiniest subnormal rounds to zero
        {0x00008000u, 0x0000}, // halfway to the smallest bf16 subnormal: even
        {0x00018000u, 0x0002},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint16_t h = tensor_f32_to_bf16(bits_float(cases[i].in));
        if (h != cases[i].out)
            fail_msg("0x%08x -> 0x%04x, want 0x%04x", cases[i].in, h, cases[i].out);
    }
}

// ---- 3. reference dequantization ----

// Dequantizes one tensor named by a row of index.tsv and compares it, bit for bit, with
// the reference .f32 file. Returns 0 on success; on failure prints why and returns -1.
static int check_reference_row(const char *type_name, const char *tensor_name, const char *f32_file,
                               const char *model_file, uint64_t count)
{
    tensor_type type;
    if (!tensor_type_from_name(type_name, &type)) {
        print_error("%s: unknown type\n", type_name);
        return -1;
    }
    char model_path[4096], ref_path[4096];
    snprintf(model_path, sizeof model_path, "%s", test_shared_path(model_file));
    snprintf(ref_path, sizeof ref_path, "%s/%s", test_shared_path("reference/dequant"), f32_file);
    garlic_error err = {0};
    gguf_file *f = gguf_open(model_path, &err);
    if (!f) {
        print_error("%s: %s\n", model_path, err.message);
        return -1;
    }
    int rc = -1;
    size_t ref_size = 0;
    float *ref = test_read_file(ref_path, &ref_size);
    float *out = malloc(count * sizeof(float));
    const gguf_tensor *t = gguf_find_tensor(f, tensor_name);
    const tensor_type_traits *tr = tensor_type_get(type);
    if (!t || !ref || !out || !tr || !tr->dequantize) {
        print_error("%s: %s missing (tensor, reference file or dequantizer)\n", type_name,
                    tensor_name);
    } else if (t->type != (uint32_t)type || t->n_elements != count ||
               ref_size != count * sizeof(float)) {
        print_error("%s: %s has type %u and %llu values; expected %u and %llu\n", type_name,
                    tensor_name, t->type, (unsigned long long)t->n_elements, (unsigned)type,
                    (unsigned long long)count);
    } else {
        tr->dequantize(t->data, out, (int64_t)count);
        rc = memcmp(out, ref, ref_size) == 0 ? 0 : -1;
        for (uint64_t i = 0; rc != 0 && i < count; i++) {
            if (float_bits(out[i]) != float_bits(ref[i])) {
                print_error("%s: value %llu is %a, reference %a\n", type_name,
                            (unsigned long long)i, (double)out[i], (double)ref[i]);
                break;
            }
        }
    }
    free(out);
    free(ref);
    gguf_close(f);
    return rc;
}

static void test_reference_dequant(void **state)
{
    (void)state;
    skip_without_shared();
    char *index = test_read_file(test_shared_path("reference/dequant/index.tsv"), NULL);
    assert_non_null(index);
    int checked = 0, failed = 0;
    char *save = NULL;
    for (char *line = strtok_r(index, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#' || line[0] == '\0')
            continue;
        char *fields[8], *fsave = NULL;
        int nf = 0;
        for (char *p = strtok_r(line, "\t", &fsave); p && nf < 8; p = strtok_r(NULL, "\t", &fsave))
            fields[nf++] = p;
        if (nf < 7) {
            print_error("index.tsv: short row\n");
            failed++;
            continue;
        }
        uint64_t count = strtoull(fields[6], NULL, 10);
        int rc = check_reference_row(fields[0], fields[1], fields[2], fields[3], count);
        print_message("dequant %-7s %s: %s\n", fields[0], fields[1],
                      rc == 0 ? "bit-exact" : "FAIL");
        checked++;
        failed += rc != 0;
    }
    free(index);
    assert_int_equal(failed, 0);
    assert_int_equal(checked, 14);
}

// ---- 4. MXFP4 against gguf-py ----

// The reference written by tools/gen_mxfp4_reference.py (layout at the top of that script),
// read relative to the repository root, where the tests run.
#define MXFP4_REFERENCE "tests/data/mxfp4_reference.bin"

typedef struct mxfp4_reference {
    char *file;            // the whole file (owned)
    uint32_t n;            // values
    const float *x;        // (n) inputs
    const uint8_t *blocks; // (n / 32 * 17) gguf-py's quantization of x
    const float *y;        // (n) gguf-py's dequantization of blocks
} mxfp4_reference;

// Loads and checks the reference file's layout; fails the test with the file's name and
// what is wrong.
static void mxfp4_reference_load(mxfp4_reference *ref)
{
    size_t size = 0;
    ref->file = test_read_file(MXFP4_REFERENCE, &size);
    if (!ref->file)
        fail_msg("%s: cannot read it (the tests run from the repository root; "
                 "tools/gen_mxfp4_reference.py writes it)",
                 MXFP4_REFERENCE);
    if (size < 12 || memcmp(ref->file, "MXFP4REF", 8) != 0)
        fail_msg("%s: no MXFP4REF header (%zu bytes)", MXFP4_REFERENCE, size);
    memcpy(&ref->n, ref->file + 8, 4);
    size_t want = 12 + (size_t)ref->n * 8 + (size_t)ref->n / QK_MXFP4 * sizeof(block_mxfp4);
    if (ref->n == 0 || ref->n % QK_MXFP4 != 0 || size != want)
        fail_msg("%s: %u values need %zu bytes, the file has %zu", MXFP4_REFERENCE, ref->n, want,
                 size);
    // The header is 12 bytes, so the float arrays are 4-byte aligned in malloc's buffer.
    ref->x = (const float *)(ref->file + 12);
    ref->blocks = (const uint8_t *)(ref->x + ref->n);
    ref->y = (const float *)(ref->blocks + (size_t)ref->n / QK_MXFP4 * sizeof(block_mxfp4));
}

// garlic's quantizer writes gguf-py's bytes for every block (zero blocks, ties between two
// codes, maxima a few ulps below a power of two, values that clip, scales from 1e-30 to 1e4
// included), and its dequantizer gives gguf-py's floats bit for bit.
static void test_mxfp4_reference(void **state)
{
    (void)state;
    mxfp4_reference ref;
    mxfp4_reference_load(&ref);
    const tensor_type_traits *tr = tensor_type_get(TENSOR_TYPE_MXFP4);
    assert_non_null(tr->quantize);
    assert_non_null(tr->dequantize);
    size_t bytes = (size_t)ref.n / QK_MXFP4 * sizeof(block_mxfp4);
    uint8_t *q = malloc(bytes);
    float *y = malloc((size_t)ref.n * sizeof *y);
    assert_true(q && y);
    tr->quantize(ref.x, q, ref.n);
    for (size_t i = 0; i < bytes; i++) {
        if (q[i] != ref.blocks[i])
            fail_msg("%s: block %zu byte %zu: garlic wrote 0x%02x, gguf-py 0x%02x", MXFP4_REFERENCE,
                     i / sizeof(block_mxfp4), i % sizeof(block_mxfp4), q[i], ref.blocks[i]);
    }
    tr->dequantize(ref.blocks, y, ref.n);
    for (uint32_t i = 0; i < ref.n; i++) {
        if (float_bits(y[i]) != float_bits(ref.y[i]))
            fail_msg("%s: value %u: garlic %a, gguf-py %a", MXFP4_REFERENCE, i, (double)y[i],
                     (double)ref.y[i]);
    }
    print_message("MXFP4 %u values (%zu blocks): quantization byte-exact, dequantization "
                  "bit-exact with gguf-py\n",
                  ref.n, bytes / sizeof(block_mxfp4));
    free(q), free(y), free(ref.file);
}

// The scale of every exponent byte is 2^(e - 128) (subnormal for e < 2); the grid is the
// doubled E2M1 values; the exponent byte is clamped where ggml's formula leaves 0..254
// (maxima below 2^-125, inf) and a NaN is skipped by the maximum.
static void test_mxfp4_edges(void **state)
{
    (void)state;
    for (int e = 0; e < 256; e++) {
        float want = ldexpf(1.0f, e - 128);
        if (float_bits(tensor_mxfp4_scale((uint8_t)e)) != float_bits(want))
            fail_msg("MXFP4 scale of e=%d: %a, want %a", e, (double)tensor_mxfp4_scale((uint8_t)e),
                     (double)want);
    }
    const float fp4[8] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f}; // E2M1 magnitudes
    for (int i = 0; i < 16; i++) {
        float v = (i & 8 ? -1.0f : 1.0f) * fp4[i & 7];
        assert_true((float)tensor_mxfp4_values[i] == 2.0f * v);
    }
    const tensor_type_traits *tr = tensor_type_get(TENSOR_TYPE_MXFP4);
    float x[32] = {0};
    block_mxfp4 b;
    x[3] = 1e-40f; // subnormal: floor(log2) - 2 + 127 < 0
    tr->quantize(x, &b, 32);
    assert_int_equal(b.e, 0);
    x[3] = -INFINITY;
    tr->quantize(x, &b, 32);
    assert_int_equal(b.e, 254);
    x[3] = NAN, x[4] = 3.0f; // amax 3: e = 1 - 2 + 127, scale 0.25, 3 = 12 x 0.25 (code 7)
    tr->quantize(x, &b, 32);
    assert_int_equal(b.e, 126);
    assert_int_equal(b.qs[3], 0x00);
    assert_int_equal(b.qs[4], 0x07);
    x[20] = -0.625f; // a tie between -2 and -3 x 0.25: the first in table order (code 10)
    tr->quantize(x, &b, 32);
    assert_int_equal(b.qs[4], 0xA7);
}

// ---- 4b. garlic's own types: F8_E4M3 and Q4_Z ----

// The value of E4M3 code c from its bit fields, in double: sign, exponent field e (bias 7)
// and mantissa field m give (8 + m) * 2^(e - 10); e = 0 is subnormal, m * 2^-9; e = 15 with
// m = 7 is NaN.
static double e4m3_formula(unsigned c)
{
    unsigned e = (c >> 3) & 15, m = c & 7;
    double v = e == 0 ? ldexp(m, -9) : ldexp(8 + m, (int)e - 10);
    if (e == 15 && m == 7)
        v = NAN;
    return c & 0x80 ? -v : v;
}

// Dequantizes the 256 codes 0..255 in eight blocks of scale d and checks each value against
// d * formula, an exact double product rounded once to float (NaN codes give NaN, 0x80 -0).
static void check_e4m3_codes(float d)
{
    block_f8_e4m3 blocks[8];
    for (unsigned c = 0; c < 256; c++)
        blocks[c / 32].d = d, blocks[c / 32].qs[c % 32] = (uint8_t)c;
    float out[256];
    tensor_type_get(TENSOR_TYPE_F8_E4M3)->dequantize(blocks, out, 256);
    for (unsigned c = 0; c < 256; c++) {
        double v = e4m3_formula(c);
        if (isnan(v)) {
            if (!isnan(out[c]))
                fail_msg("E4M3 code 0x%02X: %a, not NaN", c, (double)out[c]);
            continue;
        }
        float want = (float)((double)d * v);
        if (float_bits(out[c]) != float_bits(want))
            fail_msg("E4M3 code 0x%02X, d %a: %a, want %a", c, (double)d, (double)out[c],
                     (double)want);
    }
}

// Every E4M3 code against its formula, with scale 1 and with a scale whose products round;
// the quantizer gives every code back from its own value in a block whose largest magnitude
// is 448 (scale 1): slot 0 of each block carries 448 in one pass, slot 31 in the other, so
// every code is checked once (the NaN codes from NaN inputs).
static void test_f8_e4m3_codes(void **state)
{
    (void)state;
    check_e4m3_codes(1.0f);
    check_e4m3_codes(0.3f);
    check_e4m3_codes(-1.7e-3f);
    assert_true(e4m3_formula(0x7E) == 448.0 && e4m3_formula(0x01) == 0x1p-9);
    const tensor_type_traits *tr = tensor_type_get(TENSOR_TYPE_F8_E4M3);
    for (int slot = 0; slot < 32; slot += 31) {
        float x[256];
        block_f8_e4m3 q[8];
        for (unsigned c = 0; c < 256; c++)
            x[c] = c % 32 == (unsigned)slot ? 448.0f : (float)e4m3_formula(c);
        tr->quantize(x, q, 256);
        for (unsigned c = 0; c < 256; c++) {
            uint8_t want = c % 32 == (unsigned)slot ? 0x7E : (uint8_t)c;
            if (q[c / 32].qs[c % 32] != want)
                fail_msg("E4M3 value %a coded as 0x%02X, not 0x%02X", (double)x[c],
                         q[c / 32].qs[c % 32], want);
        }
        for (int b = 0; b < 8; b++)
            assert_true(q[b].d == 1.0f);
    }
}

// The quantizer rounds to the nearest code and a tie to the even mantissa, among normals,
// subnormals and across the boundary between them (scale 1: the block's largest value is
// 448); an all-zero block has scale 0 and codes 0.
static void test_f8_e4m3_rounding(void **state)
{
    (void)state;
    static const struct {
        float x;
        uint8_t code;
    } cases[] = {
        {448.0f, 0x7E},             // the largest: d = 448 / 448
        {17.0f, 0x58},              // halfway between 16 (0x58) and 18 (0x59): m = 0
        {19.0f, 0x5A},              // halfway between 18 and 20 (0x5A): m = 2
        {17.01f, 0x59},             // past halfway
        {-19.0f, 0xDA},             // the sign bit
        {0x1p-10f, 0x00},           // halfway between 0 and 2^-9: 0
        {3 * 0x1p-10f, 0x02},       // halfway between 2^-9 and 2^-8: 2^-8 (m = 2)
        {15 * 0x1p-10f, 0x08},      // halfway between 7 * 2^-9 and 2^-6: the smallest normal
        {0x1p-6f + 0x1p-10f, 0x08}, // halfway between 2^-6 (m 0) and 2^-6 + 2^-9 (m 1)
        {0x1p-6f + 0x1p-9f, 0x09},  // exactly m 1
        {-0.0f, 0x80},              // -0 keeps its sign
        {240.0f, 0x77},             // 1.875 * 2^7
        {447.0f, 0x7E},             // the nearest is 448 (416 is the one below)
    };
    enum { N = sizeof cases / sizeof cases[0] };
    float x[32] = {0};
    for (int i = 0; i < N; i++)
        x[i] = cases[i].x;
    block_f8_e4m3 q;
    const tensor_type_traits *tr = tensor_type_get(TENSOR_TYPE_F8_E4M3);
    tr->quantize(x, &q, 32);
    assert_true(q.d == 1.0f);
    for (int i = 0; i < N; i++)
        if (q.qs[i] != cases[i].code)
            fail_msg("E4M3 of %a: 0x%02X, want 0x%02X", (double)cases[i].x, q.qs[i], cases[i].code);
    for (int i = N; i < 32; i++)
        assert_int_equal(q.qs[i], 0);
    memset(x, 0, sizeof x);
    memset(&q, 0xA5, sizeof q);
    tr->quantize(x, &q, 32);
    assert_true(q.d == 0.0f);
    for (int i = 0; i < 32; i++)
        assert_int_equal(q.qs[i], 0);
}

// Q4_Z by hand: x = d * (q - z), value j in the low nibble of qs[j] and value j + 16 in its
// high nibble, with a zero point inside 0..15 and one far outside (AWQ and GPTQ groups only
// use 0..16, but the format holds any byte).
static void test_q4_z_blocks(void **state)
{
    (void)state;
    block_q4_z b[2];
    memset(b, 0, sizeof b);
    b[0].d = 0x3800, b[0].z = 8;   // 0.5
    b[1].d = 0xB400, b[1].z = 200; // -0.25
    for (int j = 0; j < 16; j++) {
        b[0].qs[j] = (uint8_t)(j | ((15 - j) << 4));
        b[1].qs[j] = (uint8_t)((j % 4) | (15 << 4));
    }
    float out[64];
    tensor_type_get(TENSOR_TYPE_Q4_Z)->dequantize(b, out, 64);
    for (int j = 0; j < 16; j++) {
        assert_true(out[j] == 0.5f * (float)(j - 8));
        assert_true(out[16 + j] == 0.5f * (float)(7 - j));
        assert_true(out[32 + j] == -0.25f * (float)(j % 4 - 200));
        assert_true(out[48 + j] == 46.25f); // -0.25 * (15 - 200)
    }
}

// The Q4_Z quantizer: the block's range widened to include 0 in 15 steps, z = -min / d, so
// blocks whose values lie on such a grid come back exactly, zeros included: codes, scale and
// zero point checked by hand for a mixed, an all-negative and an all-positive block.
static void test_q4_z_quantize(void **state)
{
    (void)state;
    float x[96], y[96];
    for (int j = 0; j < 32; j++) {
        x[j] = 0.5f * (float)(j % 16) - 2.0f; // -2 .. 5.5: d 0.5, z 4
        x[32 + j] = -0.5f * (float)(j % 16);  // -7.5 .. 0: d 0.5, z 15
        x[64 + j] = 0.25f * (float)(j % 16);  // 0 .. 3.75: d 0.25, z 0
    }
    block_q4_z q[3];
    memset(q, 0xA5, sizeof q);
    const tensor_type_traits *tr = tensor_type_get(TENSOR_TYPE_Q4_Z);
    tr->quantize(x, q, 96);
    const uint16_t want_d[3] = {0x3800, 0x3800, 0x3400};
    const int want_z[3] = {4, 15, 0};
    for (int b = 0; b < 3; b++) {
        assert_int_equal(q[b].d, want_d[b]);
        assert_int_equal(q[b].z, want_z[b]);
        assert_int_equal(q[b].pad, 0);
        for (int j = 0; j < 16; j++) {
            int lo = b == 1 ? 15 - j : j; // value j; value j + 16 is the same (j % 16)
            assert_int_equal(q[b].qs[j], lo | (lo << 4));
        }
    }
    tr->dequantize(q, y, 96);
    for (int i = 0; i < 96; i++) // == rather than bits: x[32] is -0, which comes back as 0
        if (y[i] != x[i])
            fail_msg("Q4_Z value %d: %g -> %g", i, (double)x[i], (double)y[i]);
}

// ---- 5. round trips ----

// The test vector: 16 super-blocks (4096 values) of distinct kinds, so that every block
// size sees every kind of data.
enum { N_SUPER = 16, N_VALUES = N_SUPER * QK_K };
typedef enum block_kind {
    KIND_GAUSSIAN, // N(0, 1)
    KIND_ZERO,     // all zero
    KIND_CONST_POS,
    KIND_CONST_NEG,
    KIND_OUTLIERS, // N(0, 1) with value 7 of every 32 set to +-25
    KIND_SMALL,    // N(0, 1) * 0.01
    KIND_LARGE,    // N(0, 1) * 100
} block_kind;

static const block_kind super_kinds[N_SUPER] = {
    KIND_GAUSSIAN, KIND_ZERO,     KIND_GAUSSIAN, KIND_CONST_POS, KIND_CONST_NEG, KIND_OUTLIERS,
    KIND_SMALL,    KIND_LARGE,    KIND_GAUSSIAN, KIND_GAUSSIAN,  KIND_GAUSSIAN,  KIND_GAUSSIAN,
    KIND_GAUSSIAN, KIND_GAUSSIAN, KIND_GAUSSIAN, KIND_GAUSSIAN,
};

static void make_test_vector(float *x, uint64_t seed)
{
    test_rng rng;
    test_rng_seed(&rng, seed);
    for (int i = 0; i < N_VALUES; i++) {
        float g = test_rng_normal(&rng);
        switch (super_kinds[i / QK_K]) {
        case KIND_GAUSSIAN: x[i] = g; break;
        case KIND_ZERO: x[i] = 0.0f; break;
        case KIND_CONST_POS: x[i] = 0.7f; break;
        case KIND_CONST_NEG: x[i] = -1.3f; break;
        case KIND_OUTLIERS: x[i] = i % 32 == 7 ? (g < 0 ? -25.0f : 25.0f) : g; break;
        case KIND_SMALL: x[i] = g * 1e-2f; break;
        case KIND_LARGE: x[i] = g * 100.0f; break;
        }
    }
}

// For every value of one block, the representable interval [lo, hi] under the block's
// stored scales and the largest half-gap between neighbouring representable values.
// Whatever the quantizer chose as scales, each value must come back within half_gap of
// itself if it lies inside [lo, hi], or as the nearer end otherwise.
typedef struct value_range {
    float lo, hi, half_gap;
} value_range;

static value_range range_of(float scale, float min, int q_lo, int q_hi, float half_gap_units)
{
    float a = scale * (float)q_lo - min, b = scale * (float)q_hi - min;
    value_range r = {fminf(a, b), fmaxf(a, b), fabsf(scale) * half_gap_units};
    return r;
}

// Fills r[0..block_size) for one block of type t; returns false for types without a range
// model (F32, F16, BF16 are checked by their exact conversions).
static bool block_ranges(tensor_type t, const void *block, value_range *r)
{
    int i;
    switch (t) {
    case TENSOR_TYPE_Q4_0: {
        const block_q4_0 *b = block;
        for (i = 0; i < 32; i++)
            r[i] = range_of(tensor_f16_to_f32(b->d), 0, -8, 7, 0.5f);
        return true;
    }
    case TENSOR_TYPE_Q5_0: {
        const block_q5_0 *b = block;
        for (i = 0; i < 32; i++)
            r[i] = range_of(tensor_f16_to_f32(b->d), 0, -16, 15, 0.5f);
        return true;
    }
    case TENSOR_TYPE_Q4_1: {
        const block_q4_1 *b = block;
        float m = -tensor_f16_to_f32(b->m);
        for (i = 0; i < 32; i++)
            r[i] = range_of(tensor_f16_to_f32(b->d), m, 0, 15, 0.5f);
        return true;
    }
    case TENSOR_TYPE_Q5_1: {
        const block_q5_1 *b = block;
        float m = -tensor_f16_to_f32(b->m);
        for (i = 0; i < 32; i++)
            r[i] = range_of(tensor_f16_to_f32(b->d), m, 0, 31, 0.5f);
        return true;
    }
    case TENSOR_TYPE_Q8_0: {
        const block_q8_0 *b = block;
        for (i = 0; i < 32; i++)
            r[i] = range_of(tensor_f16_to_f32(b->d), 0, -127, 127, 0.5f);
        return true;
    }
    case TENSOR_TYPE_Q8_1: {
        const block_q8_1 *b = block;
        for (i = 0; i < 32; i++)
            r[i] = range_of(tensor_f16_to_f32(b->d), 0, -127, 127, 0.5f);
        return true;
    }
    case TENSOR_TYPE_Q8_K: {
        const block_q8_k *b = block;
        for (i = 0; i < QK_K; i++)
            r[i] = range_of(b->d, 0, -127, 127, 0.5f);
        return true;
    }
    case TENSOR_TYPE_IQ4_NL: {
        // The widest gap of the grid is 24 (89 -> 113), so half a gap is 12 steps of d.
        const block_iq4_nl *b = block;
        for (i = 0; i < 32; i++)
            r[i] = range_of(tensor_f16_to_f32(b->d), 0, -127, 113, 12.0f);
        return true;
    }
    case TENSOR_TYPE_MXFP4: {
        // The doubled grid ends ..., 6, 8, 12: the widest gap is 4, half a gap 2 steps of d.
        const block_mxfp4 *b = block;
        for (i = 0; i < 32; i++)
            r[i] = range_of(tensor_mxfp4_scale(b->e), 0, -12, 12, 2.0f);
        return true;
    }
    case TENSOR_TYPE_Q4_Z: {
        const block_q4_z *b = block;
        float d = tensor_f16_to_f32(b->d);
        for (i = 0; i < 32; i++)
            r[i] = range_of(d, d * (float)b->z, 0, 15, 0.5f);
        return true;
    }
    case TENSOR_TYPE_F8_E4M3: {
        // -448 d .. 448 d; next to a code of exponent field e the gaps are at most 2^(e-10)
        // (the code's own step: the one below a power of two is half as wide), and 2^-9
        // among the subnormals (e = 0).
        const block_f8_e4m3 *b = block;
        for (i = 0; i < 32; i++) {
            int e = (b->qs[i] >> 3) & 0x0F;
            r[i] = range_of(b->d, 0, -448, 448, 0.5f * (float)ldexp(1.0, e ? e - 10 : -9));
        }
        return true;
    }
    default: return false;
    }
}

// The same for the super-block types, from their sub-block scales (decoded with the
// helpers in quants.h, which the bit-exact reference test covers).
static bool superblock_ranges(tensor_type t, const void *block, value_range *r)
{
    switch (t) {
    case TENSOR_TYPE_Q2_K: {
        const block_q2_k *b = block;
        float d = tensor_f16_to_f32(b->d), dmin = tensor_f16_to_f32(b->dmin);
        for (int i = 0; i < QK_K; i++) {
            uint8_t s = b->scales[i / 16];
            r[i] = range_of(d * (float)(s & 0x0F), dmin * (float)(s >> 4), 0, 3, 0.5f);
        }
        return true;
    }
    case TENSOR_TYPE_Q3_K: {
        const block_q3_k *b = block;
        float d = tensor_f16_to_f32(b->d);
        for (int i = 0; i < QK_K; i++) {
            float scale = d * (float)(tensor_k3_scale(b->scales, i / 16) - 32);
            r[i] = range_of(scale, 0, -4, 3, 0.5f);
        }
        return true;
    }
    case TENSOR_TYPE_Q4_K:
    case TENSOR_TYPE_Q5_K: {
        // Both start with d, dmin, scales[12].
        const block_q4_k *b = block;
        float d = tensor_f16_to_f32(b->d), dmin = tensor_f16_to_f32(b->dmin);
        int q_hi = t == TENSOR_TYPE_Q4_K ? 15 : 31;
        for (int i = 0; i < QK_K; i++) {
            uint8_t sc, m;
            tensor_k4_scale_min(b->scales, i / 32, &sc, &m);
            r[i] = range_of(d * (float)sc, dmin * (float)m, 0, q_hi, 0.5f);
        }
        return true;
    }
    case TENSOR_TYPE_Q6_K: {
        const block_q6_k *b = block;
        float d = tensor_f16_to_f32(b->d);
        for (int i = 0; i < QK_K; i++)
            r[i] = range_of(d * (float)b->scales[i / 16], 0, -32, 31, 0.5f);
        return true;
    }
    case TENSOR_TYPE_IQ4_XS: {
        const block_iq4_xs *b = block;
        float d = tensor_f16_to_f32(b->d);
        for (int i = 0; i < QK_K; i++) {
            int s = i / 32;
            int low = (b->scales_l[s / 2] >> (4 * (s % 2))) & 0x0F;
            int ls = low | (((b->scales_h >> (2 * s)) & 3) << 4);
            r[i] = range_of(d * (float)(ls - 32), 0, -127, 113, 12.0f);
        }
        return true;
    }
    default: return block_ranges(t, block, r);
    }
}

// The RMS error bound of a super-block comes from the data and the type's resolution: a
// quantizer that sets each scale group's step from the group's own range (min/max, no
// search, exact scales) has step = span / intervals and, with errors spread evenly over a
// step, RMS error step / sqrt(12). The bound is 1.25 times that over the super-block,
// divided by the super-block's RMS: the 25% leaves room for the rounding of sub-block
// scales to 4/6/8-bit codes and half floats, which the min/max model does not pay. The
// measured ratio to the model is printed: the legacy types use min/max scales and land
// near 1, the searched K-quants and IQ4 below it. F16 and BF16 are bounded per value by
// their one rounding (2^-11, 2^-8 relative) instead.
typedef enum span_kind {
    SPAN_SYMMETRIC, // codes symmetric around 0: span = 2 max|x| (Q8_*, Q4_0, Q5_0, Q3_K, Q6_K, IQ4)
    SPAN_MIN_MAX,   // an offset of any sign: span = max - min (Q4_1, Q5_1)
    SPAN_WITH_ZERO, // an offset <= 0 (K-quant mins are subtracted): span includes 0
    SPAN_NONE,      // float types
} span_kind;

typedef struct type_bound {
    tensor_type type;
    int group; // values per scale group (sub-block)
    span_kind span;
    double intervals; // steps across the span under the min/max scale
    bool idempotent;  // quantize(dequantize(quantize(x))) == quantize(x), byte for byte
} type_bound;

static const type_bound bounds[] = {
    {TENSOR_TYPE_F16, 1, SPAN_NONE, 0, true},
    {TENSOR_TYPE_BF16, 1, SPAN_NONE, 0, true},
    {TENSOR_TYPE_Q8_0, 32, SPAN_SYMMETRIC, 254, true}, // d = max/127: 254 steps
    {TENSOR_TYPE_Q8_1, 32, SPAN_SYMMETRIC, 254, true},
    {TENSOR_TYPE_Q8_K, 256, SPAN_SYMMETRIC, 254, false},
    {TENSOR_TYPE_Q4_0, 32, SPAN_SYMMETRIC, 16, true}, // d = max/-8: codes -8..7
    {TENSOR_TYPE_Q5_0, 32, SPAN_SYMMETRIC, 32, true}, // d = max/-16: codes -16..15
    {TENSOR_TYPE_Q4_1, 32, SPAN_MIN_MAX, 15, false},  // codes 0..15 over min..max
    {TENSOR_TYPE_Q5_1, 32, SPAN_MIN_MAX, 31, false},
    // IQ4: 16 grid points over -127..113 (mean gap 16 of d = max/127): like 15 steps.
    {TENSOR_TYPE_IQ4_NL, 32, SPAN_SYMMETRIC, 15, false},
    {TENSOR_TYPE_IQ4_XS, 32, SPAN_SYMMETRIC, 15, false},
    // MXFP4: 15 values over -6..6 with a power-of-two scale (amax / scale anywhere in [4, 8)
    // E2M1 units, clipped above 6; steps of 0.5 near 0, 2 at the top) has no simple step
    // count: 9 puts the measured ratio near 0.9. (An exponent one too high only reaches
    // about 1.05; test_mxfp4_reference and the idempotence check catch that.)
    {TENSOR_TYPE_MXFP4, 32, SPAN_SYMMETRIC, 9, true},
    // Q4_Z: GPTQ's min/max over the range widened to include 0, codes 0..15.
    {TENSOR_TYPE_Q4_Z, 32, SPAN_WITH_ZERO, 15, false},
    // F8_E4M3: a float format (relative steps, checked per value by its range model); its
    // F32 scale need not survive a second quantization bit for bit.
    {TENSOR_TYPE_F8_E4M3, 32, SPAN_NONE, 0, false},
    {TENSOR_TYPE_Q2_K, 16, SPAN_WITH_ZERO, 3, false}, // codes 0..3
    {TENSOR_TYPE_Q3_K, 16, SPAN_SYMMETRIC, 8, false}, // codes -4..3
    {TENSOR_TYPE_Q4_K, 32, SPAN_WITH_ZERO, 15, false},
    {TENSOR_TYPE_Q5_K, 32, SPAN_WITH_ZERO, 31, false},
    {TENSOR_TYPE_Q6_K, 16, SPAN_SYMMETRIC, 64, false}, // codes -32..31
};

// The min/max model's squared error summed over one super-block (see above).
static double model_error2(const type_bound *tb, const float *x)
{
    double sum = 0;
    for (int g = 0; g < QK_K; g += tb->group) {
        float lo = x[g], hi = x[g], amax = 0;
        for (int i = g; i < g + tb->group; i++) {
            lo = fminf(lo, x[i]);
            hi = fmaxf(hi, x[i]);
            amax = fmaxf(amax, fabsf(x[i]));
        }
        double span = tb->span == SPAN_SYMMETRIC ? 2.0 * amax
            : tb->span == SPAN_MIN_MAX           ? hi - lo
                                                 : fmaxf(hi, 0) - fminf(lo, 0);
        double step = span / tb->intervals;
        sum += tb->group * step * step / 12.0;
    }
    return sum;
}

// Checks every value of one super-block (256 values, in blocks of the type's size) against
// its representable range; returns the sum of squared errors.
static double check_superblock(tensor_type t, const tensor_type_traits *tr, const float *x,
                               const float *y, const uint8_t *q)
{
    value_range r[QK_K];
    double err2 = 0;
    for (uint32_t b = 0; b < QK_K / tr->block_size; b++) {
        const float *xb = x + b * tr->block_size, *yb = y + b * tr->block_size;
        const uint8_t *qb = q + (size_t)b * tr->type_size;
        bool ranged = tr->block_size > 1 && superblock_ranges(t, qb, r);
        for (uint32_t i = 0; i < tr->block_size; i++) {
            float e = fabsf(xb[i] - yb[i]);
            err2 += (double)e * e;
            float allowed;
            if (ranged) {
                float outside = fmaxf(r[i].lo - xb[i], xb[i] - r[i].hi);
                allowed = outside > 0 ? outside : r[i].half_gap;
                allowed = allowed * (1 + 1e-5f) + 1e-6f * fmaxf(fabsf(r[i].lo), fabsf(r[i].hi));
            } else { // F16 (subnormals included) and BF16: one rounding
                allowed = t == TENSOR_TYPE_BF16 ? fabsf(xb[i]) * 0x1p-8f
                                                : fabsf(xb[i]) * 0x1p-11f + 0x1p-25f;
            }
            if (e > allowed)
                fail_msg("%s: value %u of a block: %g -> %g, error %g > %g", tr->name, i,
                         (double)xb[i], (double)yb[i], (double)e, (double)allowed);
        }
    }
    return err2;
}

// Quantizes the test vector, checks that every output byte is written (two runs over
// different garbage agree) and nothing past the end, and returns the bytes (caller frees).
static uint8_t *quantize_checked(const tensor_type_traits *tr, const float *x, size_t bytes)
{
    enum { GUARD = 64 };
    uint8_t *q = malloc(bytes + GUARD), *q2 = malloc(bytes + GUARD);
    assert_non_null(q);
    assert_non_null(q2);
    memset(q, 0x00, bytes + GUARD);
    memset(q2, 0xA5, bytes + GUARD);
    tr->quantize(x, q, N_VALUES);
    tr->quantize(x, q2, N_VALUES);
    assert_memory_equal(q, q2, bytes);
    for (size_t i = bytes; i < bytes + GUARD; i++) {
        assert_int_equal(q[i], 0x00);
        assert_int_equal(q2[i], 0xA5);
    }
    free(q2);
    return q;
}

// Zero blocks come back exactly zero. A constant block is one scale times one code: only
// the half-float (11-bit) rounding of the scale is lost, so 2^-10 relative is ample
// (BF16: 2^-8). MXFP4 fits no scale: a constant lands on the nearest point of a grid whose
// steps are a quarter of the values near the top (x just below 2^(k+1) clips to 1.5 * 2^k).
static void check_special_block(const type_bound *tb, const char *name, block_kind kind,
                                const float *x, const float *y)
{
    float tol = tb->type == TENSOR_TYPE_BF16 ? 0x1p-8f
        : tb->type == TENSOR_TYPE_MXFP4      ? 0.25f
                                             : 0x1p-10f;
    for (int i = 0; i < QK_K; i++) {
        if (kind == KIND_ZERO && y[i] != 0.0f)
            fail_msg("%s: zero block value %d -> %g", name, i, (double)y[i]);
        if ((kind == KIND_CONST_POS || kind == KIND_CONST_NEG) &&
            fabsf(y[i] - x[i]) > fabsf(x[i]) * tol)
            fail_msg("%s: constant %g -> %g", name, (double)x[i], (double)y[i]);
    }
}

// Round-trips one test vector through a type; worst[kind] collects the largest ratio of
// a super-block's squared-error RMS to the min/max model's (see type_bound).
static void check_round_trip(const type_bound *tb, uint64_t seed, double *worst)
{
    const tensor_type_traits *tr = tensor_type_get(tb->type);
    assert_non_null(tr);
    assert_non_null(tr->quantize);
    assert_non_null(tr->dequantize);
    size_t bytes = (size_t)N_VALUES / tr->block_size * tr->type_size;
    size_t super_bytes = bytes / N_SUPER;
    float *x = malloc(N_VALUES * sizeof(float)), *y = malloc(N_VALUES * sizeof(float));
    assert_non_null(x);
    assert_non_null(y);
    make_test_vector(x, seed);
    uint8_t *q = quantize_checked(tr, x, bytes);
    tr->dequantize(q, y, N_VALUES);
    for (int s = 0; s < N_SUPER; s++) {
        const float *xs = x + s * QK_K, *ys = y + s * QK_K;
        block_kind kind = super_kinds[s];
        double err2 = check_superblock(tb->type, tr, xs, ys, q + s * super_bytes);
        check_special_block(tb, tr->name, kind, xs, ys);
        if (tb->span == SPAN_NONE || kind == KIND_ZERO || kind == KIND_CONST_POS ||
            kind == KIND_CONST_NEG)
            continue;
        double ratio = sqrt(err2 / model_error2(tb, xs));
        worst[kind] = fmax(worst[kind], ratio);
        if (ratio > 1.25)
            fail_msg("%s: super-block %d: RMS error %.3f x the min/max model's", tr->name, s,
                     ratio);
    }
    if (tb->idempotent) {
        uint8_t *again = malloc(bytes);
        assert_non_null(again);
        tr->quantize(y, again, N_VALUES);
        assert_memory_equal(again, q, bytes);
        free(again);
    }
    free(q);
    free(x);
    free(y);
}

static void test_round_trips(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bounds / sizeof bounds[0]; i++) {
        double worst[KIND_LARGE + 1] = {0};
        for (uint64_t seed = 1; seed <= 4; seed++)
            check_round_trip(&bounds[i], seed * 1000 + bounds[i].type, worst);
        if (bounds[i].span == SPAN_NONE)
            continue;
        print_message("%-7s RMS error / min-max model (bound 1.25): N(0,1) %.3f, "
                      "sigma 0.01 %.3f, sigma 100 %.3f, outliers %.3f\n",
                      tensor_type_get(bounds[i].type)->name, worst[KIND_GAUSSIAN],
                      worst[KIND_SMALL], worst[KIND_LARGE], worst[KIND_OUTLIERS]);
    }
}

// Every type with a dequantizer also has a quantizer, and each appears in the bounds.
static void test_round_trip_coverage(void **state)
{
    (void)state;
    int quantizable = 0;
    for (uint32_t t = 0; t < TENSOR_TYPE_COUNT; t++) {
        const tensor_type_traits *tr = tensor_type_get(t);
        if (!tr || !tr->quantize || t == TENSOR_TYPE_F32)
            continue;
        quantizable++;
        bool listed = false;
        for (size_t i = 0; i < sizeof bounds / sizeof bounds[0]; i++)
            listed = listed || bounds[i].type == t;
        if (!listed)
            fail_msg("%s can be quantized but has no round-trip bound", tr->name);
    }
    assert_int_equal(quantizable, (int)(sizeof bounds / sizeof bounds[0]));
}

// The helper sums of the activation types: Q8_1's s is d * sum(q) rounded to half, Q8_K's
// bsums are the sums of each 16 codes.
static void test_activation_sums(void **state)
{
    (void)state;
    float x[QK_K];
    test_rng rng;
    test_rng_seed(&rng, 7);
    for (int i = 0; i < QK_K; i++)
        x[i] = test_rng_normal(&rng);
    block_q8_1 b1[QK_K / 32];
    tensor_quantize_q8_1(x, b1, QK_K);
    for (int b = 0; b < QK_K / 32; b++) {
        int sum = 0;
        for (int j = 0; j < 32; j++)
            sum += b1[b].qs[j];
        assert_int_equal(b1[b].s, tensor_f32_to_f16(tensor_f16_to_f32(b1[b].d) * (float)sum));
    }
    block_q8_k bk;
    tensor_quantize_q8_k(x, &bk, QK_K);
    for (int g = 0; g < QK_K / 16; g++) {
        int sum = 0;
        for (int j = 16 * g; j < 16 * g + 16; j++)
            sum += bk.qs[j];
        assert_int_equal(bk.bsums[g], sum);
    }
}

// Quantizers are specified for finite input, but inf, NaN, huge and subnormal values must
// not crash or trip the sanitizers (the output is then unspecified).
static void test_hostile_inputs(void **state)
{
    (void)state;
    const float specials[] = {INFINITY, -INFINITY, NAN, 3e38f, -3e38f, 1e-45f, -1e-40f, 0.0f};
    float *x = malloc(N_VALUES * sizeof(float)), *y = malloc(N_VALUES * sizeof(float));
    uint8_t *q = malloc((size_t)N_VALUES * 8);
    assert_non_null(x);
    assert_non_null(y);
    assert_non_null(q);
    test_rng rng;
    test_rng_seed(&rng, 99);
    for (int i = 0; i < N_VALUES; i++) {
        uint64_t r = test_rng_u64(&rng);
        x[i] = r % 5 == 0 ? specials[(r >> 8) % 8] : test_rng_normal(&rng);
        if (i >= N_VALUES / 2)
            x[i] = specials[(i / 256) % 8]; // whole blocks of one special value
    }
    for (size_t i = 0; i < sizeof bounds / sizeof bounds[0]; i++) {
        const tensor_type_traits *tr = tensor_type_get(bounds[i].type);
        tr->quantize(x, q, N_VALUES);
        tr->dequantize(q, y, N_VALUES);
    }
    free(q);
    free(x);
    free(y);
}

// F32 is a plain copy both ways.
static void test_f32_copy(void **state)
{
    (void)state;
    const tensor_type_traits *tr = tensor_type_get(TENSOR_TYPE_F32);
    float x[5] = {1.0f, -0.0f, 3.5e-42f, INFINITY, -7.25f}, q[5], y[5];
    tr->quantize(x, q, 5);
    tr->dequantize(q, y, 5);
    assert_memory_equal(x, y, sizeof x);
}

#if defined(__x86_64__)
typedef void (*convert_fn)(const void *, float *, int64_t);

// A SIMD variant of the half and bfloat16 conversions: the state of its test.
typedef struct convert_variant {
    const char *isa; // the instruction set it needs, for the skip message
    bool avx512;     // it needs AVX-512 F/BW/DQ/VL, else AVX2 (+ FMA, F16C)
    convert_fn f16, bf16;
} convert_variant;

static const convert_variant convert_avx2 = {"AVX2 + FMA + F16C", false, tensor_dequantize_f16_avx2,
                                             tensor_dequantize_bf16_avx2};
static const convert_variant convert_avx512 = {
    "AVX-512 F/BW/DQ/VL", true, tensor_dequantize_f16_avx512, tensor_dequantize_bf16_avx512};

// One SIMD conversion gives the scalar reference's bits, on all 65536 inputs and on lengths
// that leave a tail.
static void check_conversion(const char *name, convert_fn ref, convert_fn simd)
{
    uint16_t *h = malloc(65536 * sizeof *h);
    float *want = malloc(65536 * sizeof *want), *got = malloc(65536 * sizeof *got);
    assert_true(h && want && got);
    for (uint32_t i = 0; i < 65536; i++)
        h[i] = (uint16_t)i;
    const int64_t lengths[] = {65536, 1, 7, 15, 17, 31, 33, 100};
    for (size_t l = 0; l < sizeof lengths / sizeof lengths[0]; l++) {
        memset(got, 0xab, 65536 * sizeof *got);
        memset(want, 0xab, 65536 * sizeof *want);
        ref(h + 3, want, lengths[l] - (lengths[l] == 65536 ? 3 : 0));
        simd(h + 3, got, lengths[l] - (lengths[l] == 65536 ? 3 : 0));
        // Bit-identical, except that the hardware quiets signalling NaNs: NaN stays NaN.
        for (int64_t i = 0; i < 65536; i++) {
            uint32_t a, b;
            memcpy(&a, &want[i], 4), memcpy(&b, &got[i], 4);
            if (a != b && !(isnan(want[i]) && isnan(got[i])))
                fail_msg("%s: value %lld differs from the reference (%08x vs %08x) at length %lld",
                         name, (long long)i, a, b, (long long)lengths[l]);
        }
    }
    free(h), free(want), free(got);
}

// Floats to halves by AVX2 + F16C give the scalar bits on every half value, its neighbours one
// float ulp away, the midpoints between consecutive halves and theirs (the rounding ties),
// both signs, overflow, subnormals, infinities and NaNs (signalling and quiet, with payloads),
// and lengths that leave a tail.
static void check_f16_rounding(void)
{
    enum { N = 65536 * 6 + 8 };
    float *x = malloc(N * sizeof *x);
    uint16_t *want = malloc(N * sizeof *want), *got = malloc(N * sizeof *got);
    assert_true(x && want && got);
    int64_t n = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = tensor_f16_to_f32((uint16_t)h), next = tensor_f16_to_f32((uint16_t)(h + 1));
        uint32_t b, m;
        memcpy(&b, &f, 4);
        float mid = (h & 0x7FFF) < 0x7BFF ? (f + next) / 2 : f; // (exact: halves have 11 bits)
        memcpy(&m, &mid, 4);
        uint32_t bits[6] = {b, b + 1, b - 1, m, m + 1, m - 1};
        for (int k = 0; k < 6; k++)
            memcpy(&x[n++], &bits[k], 4);
    }
    const uint32_t specials[8] = {0x7F800001u, 0xFFC00000u, 0x7FBFFFFFu, 0x7F800000u,
                                  0x477FF000u, 0x477FEFFFu, 0x33000000u, 0x33000001u};
    for (int k = 0; k < 8; k++)
        memcpy(&x[n++], &specials[k], 4);
    const int64_t lengths[] = {N, 1, 7, 9, 17};
    for (size_t l = 0; l < sizeof lengths / sizeof lengths[0]; l++) {
        int64_t len = lengths[l] == N ? n : lengths[l];
        tensor_quantize_f16_ref(x + (N - len), want, len);
        tensor_quantize_f16_avx2(x + (N - len), got, len);
        for (int64_t i = 0; i < len; i++)
            if (want[i] != got[i]) {
                uint32_t b;
                memcpy(&b, &x[N - len + i], 4);
                fail_msg("f16 from float %08x: %04x, the scalar conversion %04x", b, got[i],
                         want[i]);
            }
    }
    free(x), free(want), free(got);
}

// A SIMD variant (the test's state) gives the reference's bits; skipped, counted, when this
// CPU (as capped by GARLIC_CPU) lacks its instruction set.
static void test_simd_conversions(void **state)
{
    const convert_variant *v = *state;
    const cpu_features *cpu = cpu_features_get();
    if (!(v->avx512 ? cpu->avx512 : cpu->avx2)) {
        print_message("skipped: this CPU has no %s\n", v->isa);
        skip();
    }
    check_conversion("f16", tensor_dequantize_f16_ref, v->f16);
    check_conversion("bf16", tensor_dequantize_bf16_ref, v->bf16);
    if (!v->avx512)
        check_f16_rounding();
}
#else
static void test_simd_conversions(void **state)
{
    (void)state;
    print_message("skipped: no SIMD conversions on this architecture\n");
    skip();
}
#endif

// The converters the traits table holds (the best variant this CPU runs) give the
// reference's bits on finite values of both signs (signalling NaNs come out quieted).
static void test_chosen_conversions(void **state)
{
    (void)state;
    uint16_t h[100];
    float want[100], got[100];
    for (int i = 0; i < 100; i++)
        h[i] = (uint16_t)(i * 301 | (i & 1) << 15);
    tensor_dequantize_f16_ref(h, want, 100);
    tensor_type_get(TENSOR_TYPE_F16)->dequantize(h, got, 100);
    assert_memory_equal(want, got, sizeof want);
    tensor_dequantize_bf16_ref(h, want, 100);
    tensor_type_get(TENSOR_TYPE_BF16)->dequantize(h, got, 100);
    assert_memory_equal(want, got, sizeof want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_traits_table),
        cmocka_unit_test(test_type_sizes),
        cmocka_unit_test(test_row_size),
        cmocka_unit_test(test_f16_exhaustive),
        cmocka_unit_test(test_f16_rounding),
        cmocka_unit_test(test_bf16),
        cmocka_unit_test(test_f32_copy),
#if defined(__x86_64__)
        {"test_simd_conversions avx2", test_simd_conversions, NULL, NULL, (void *)&convert_avx2},
        {"test_simd_conversions avx512", test_simd_conversions, NULL, NULL,
         (void *)&convert_avx512},
#else
        cmocka_unit_test(test_simd_conversions),
#endif
        cmocka_unit_test(test_chosen_conversions),
        cmocka_unit_test(test_reference_dequant),
        cmocka_unit_test(test_mxfp4_reference),
        cmocka_unit_test(test_mxfp4_edges),
        cmocka_unit_test(test_f8_e4m3_codes),
        cmocka_unit_test(test_f8_e4m3_rounding),
        cmocka_unit_test(test_q4_z_blocks),
        cmocka_unit_test(test_q4_z_quantize),
        cmocka_unit_test(test_round_trip_coverage),
        cmocka_unit_test(test_round_trips),
        cmocka_unit_test(test_activation_sums),
        cmocka_unit_test(test_hostile_inputs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
