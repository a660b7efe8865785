// SPDX-License-Identifier: MIT
// Tests of the CUDA backend (src/backend/cuda/) against the CPU on random data: the matrix
// product of every weight type (against the dequantized rows times the inputs in double),
// RMSNorm against model_rmsnorm, RoPE against model_rope_apply, the gated activations and
// the addition against the CPU's, the KV store byte for byte against kv_row_store for every
// KV type, attention (the decode kernel with its splits and the tiled prompt kernel) against
// a plain C attention over the host pool's rows, with GQA, a sliding window and sinks, and
// upload, drop, sleep and wake. Built only with `make GARLIC_CUDA=1`; every test skips with
// a message when the machine has no CUDA device. A failure prints the worst index and both
// values. Tolerances are stated where they are asserted.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>

#include "util.h"

#include "backend/backend.h"
#include "backend/cuda/cuda.h"
#include "backend/cuda/internal.h"
#include "kernels/kernels.h"
#include "kernels/variants.h"
#include "kvcache/kvcache.h"
#include "model/internal.h"
#include "model/model.h"
#include "tensor/types.h"

static backend *be;              // the device under test, or NULL (every test skips)
static char no_device[256] = ""; // why there is none

static int group_setup(void **state)
{
    (void)state;
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0) {
        snprintf(no_device, sizeof no_device, "%s",
                 e != cudaSuccess ? cudaGetErrorString(e) : "cudaGetDeviceCount is 0");
        return 0;
    }
    garlic_error err = {0};
    be = backend_cuda_new(0, &err);
    if (!be) {
        fprintf(stderr, "cuda:0: %s\n", err.message);
        return -1;
    }
    backend_device_info info;
    be->ops->info(be, &info);
    print_message("device: %s (cc %d.%d), %.1f GiB, context + cuBLAS %.0f MiB, bandwidth %.0f "
                  "GB/s\n",
                  info.name, info.cc_major, info.cc_minor, info.total_bytes / 1073741824.0,
                  info.context_bytes / 1048576.0, info.bandwidth_gbs);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    backend_free(be);
    return 0;
}

// Skips the test without a device, or fails it when GARLIC_REQUIRE_CUDA is set (on a GPU
// machine, where a driver problem must not pass as a skip).
static void need_device(void)
{
    if (be)
        return;
    if (getenv("GARLIC_REQUIRE_CUDA"))
        fail_msg("no usable CUDA device (%s) and GARLIC_REQUIRE_CUDA is set", no_device);
    print_message("skipped: no CUDA device (%s)\n", no_device);
    skip();
}

// ---- device buffers ----

static float *dev_floats(const float *host, size_t n)
{
    garlic_error err = {0};
    float *d = be->ops->alloc(be, n * sizeof(float), &err);
    if (!d)
        fail_msg("alloc: %s", err.message);
    if (host && be->ops->to_device(be, d, host, n * sizeof(float), &err))
        fail_msg("to_device: %s", err.message);
    return d;
}

static void host_floats(float *host, const float *d, size_t n)
{
    garlic_error err = {0};
    if (be->ops->to_host(be, host, d, n * sizeof(float), &err))
        fail_msg("to_host: %s", err.message);
}

static void finish(const char *what)
{
    garlic_error err = {0};
    if (be->ops->finish(be, &err))
        fail_msg("%s: finish: %s", what, err.message);
}

static void random_floats(test_rng *r, float *x, size_t n, float scale)
{
    for (size_t i = 0; i < n; i++)
        x[i] = test_rng_normal(r) * scale;
}

// A batch of n_tok tokens of one sequence at positions 0.., with rope tables when given.
typedef struct simple_batch {
    uint32_t pos[64], n_pos[64], seq[64], table_start[2], tables[1];
} simple_batch;

static void begin_simple(simple_batch *s, uint32_t n_tok, const float *cos_t, const float *sin_t,
                         uint32_t half, uint32_t n_rope)
{
    assert_true(n_tok <= 64);
    for (uint32_t t = 0; t < n_tok; t++) {
        s->pos[t] = t;
        s->n_pos[t] = t + 1;
        s->seq[t] = 0;
    }
    s->table_start[0] = s->table_start[1] = 0;
    s->tables[0] = 0;
    backend_batch b = {.n_tok = n_tok,
                       .n_seq = 1,
                       .pos = s->pos,
                       .n_pos = s->n_pos,
                       .seq = s->seq,
                       .table_start = s->table_start,
                       .tables = s->tables,
                       .n_tables = 1,
                       .rope_cos = cos_t,
                       .rope_sin = sin_t,
                       .half = half,
                       .n_rope = n_rope,
                       .rope_stride = (uint64_t)n_tok * half};
    garlic_error err = {0};
    if (be->ops->begin(be, &b, &err))
        fail_msg("begin: %s", err.message);
}

// Compares got with want: |got - want| <= tol[i]; prints the worst one and fails if any is
// over.
static void compare(const char *what, const float *got, const float *want, const double *tol,
                    size_t n)
{
    size_t worst = 0;
    double worst_ratio = -1;
    for (size_t i = 0; i < n; i++) {
        double diff = fabs((double)got[i] - want[i]);
        double ratio = isnan(got[i]) != isnan(want[i]) ? INFINITY
                                                       : diff / (tol[i] > 0 ? tol[i] : 1e-30);
        if (isnan(got[i]) && isnan(want[i]))
            ratio = 0;
        if (ratio > worst_ratio) {
            worst_ratio = ratio;
            worst = i;
        }
    }
    print_message("%s: worst at %zu: %.9g vs %.9g (%.3g of the tolerance %.3g)\n", what, worst,
                  (double)got[worst], (double)want[worst], worst_ratio, tol[worst]);
    if (worst_ratio > 1)
        fail_msg("%s: index %zu: got %.9g, want %.9g (tolerance %.3g)", what, worst,
                 (double)got[worst], (double)want[worst], tol[worst]);
}

// ---- matrix products ----

static const uint32_t weight_types[] = {
    TENSOR_TYPE_F32,     TENSOR_TYPE_F16,    TENSOR_TYPE_BF16,   TENSOR_TYPE_Q4_0,
    TENSOR_TYPE_Q4_1,    TENSOR_TYPE_Q5_0,   TENSOR_TYPE_Q5_1,   TENSOR_TYPE_Q8_0,
    TENSOR_TYPE_Q2_K,    TENSOR_TYPE_Q3_K,   TENSOR_TYPE_Q4_K,   TENSOR_TYPE_Q5_K,
    TENSOR_TYPE_Q6_K,    TENSOR_TYPE_IQ4_NL, TENSOR_TYPE_IQ4_XS, TENSOR_TYPE_MXFP4,
    TENSOR_TYPE_F8_E4M3, TENSOR_TYPE_Q4_Z,
};

// The tolerance of a product of weight type over n_tok tokens, relative to sum |w_i x_i|:
// - F32 through cuBLAS (no TF32) and the mat-vec kernels (float inputs): only the order of the
//   float sums differs, 1e-5;
// - F16 through cuBLAS: the inputs are rounded to F16 (2^-11 relative each), 1e-3;
// - BF16: the inputs are rounded to BF16 (2^-8), 8e-3;
// - quantized prompts (more than 8 tokens): weights and inputs both rounded to F16, 2e-3.
static double product_rtol(uint32_t type, uint32_t n_tok)
{
    if (type == TENSOR_TYPE_F32)
        return 1e-5;
    if (type == TENSOR_TYPE_F16)
        return 1e-3;
    if (type == TENSOR_TYPE_BF16)
        return 8e-3;
    return n_tok <= 8 ? 1e-5 : 2e-3;
}

// One product of type over n_tok tokens (in_stride and ldy wider than the rows) with a
// bias, against the dequantized rows in double.
static void check_product(uint32_t type, uint32_t n_tok, uint32_t n_in, uint32_t n_out, test_rng *r)
{
    const tensor_type_traits *tr = tensor_type_get(type);
    const uint32_t stride = n_in + 7, ldy = n_out + 5;
    uint64_t row_bytes = 0;
    assert_true(tensor_row_size(type, n_in, &row_bytes));
    float *w = malloc(sizeof(float) * n_in * n_out), *wq = malloc(sizeof(float) * n_in * n_out);
    uint8_t *packed = malloc(row_bytes * n_out);
    float *x = malloc(sizeof(float) * stride * n_tok), *bias = malloc(sizeof(float) * n_out);
    float *y = malloc(sizeof(float) * ldy * n_tok), *want = malloc(sizeof(float) * n_out * n_tok),
          *got = malloc(sizeof(float) * n_out * n_tok);
    double *tol = malloc(sizeof(double) * n_out * n_tok);
    random_floats(r, w, (size_t)n_in * n_out, 0.5f);
    random_floats(r, x, (size_t)stride * n_tok, 1.0f);
    random_floats(r, bias, n_out, 0.1f);
    for (uint32_t o = 0; o < n_out; o++) {
        tr->quantize(w + (size_t)o * n_in, packed + o * row_bytes, n_in);
        tr->dequantize(packed + o * row_bytes, wq + (size_t)o * n_in, n_in);
    }
    model_tensor wt = {.data = packed,
                       .type = type,
                       .n_in = n_in,
                       .n_out = n_out,
                       .n_mat = 1,
                       .mat_bytes = row_bytes * n_out};
    model_tensor bt = {.data = bias,
                       .type = TENSOR_TYPE_F32,
                       .n_in = n_out,
                       .n_out = 1,
                       .n_mat = 1,
                       .mat_bytes = sizeof(float) * n_out};
    garlic_error err = {0};
    if (be->ops->upload(be, &wt, &err) || be->ops->upload(be, &bt, &err))
        fail_msg("%s: upload: %s", tr->name, err.message);
    float *dx = dev_floats(x, (size_t)stride * n_tok), *dy = dev_floats(NULL, (size_t)ldy * n_tok);
    simple_batch sb;
    begin_simple(&sb, n_tok, NULL, NULL, 0, 0);
    backend_matmul item = {.w = &wt, .y = dy, .ldy = ldy, .bias = &bt};
    be->ops->matmul(be, dx, stride, n_tok, &item, 1);
    finish(tr->name);
    host_floats(y, dy, (size_t)ldy * n_tok);
    double rtol = product_rtol(type, n_tok);
    for (uint32_t t = 0; t < n_tok; t++) {
        for (uint32_t o = 0; o < n_out; o++) {
            double sum = 0, mass = 0;
            for (uint32_t i = 0; i < n_in; i++) {
                double p = (double)wq[(size_t)o * n_in + i] * x[(size_t)t * stride + i];
                sum += p;
                mass += fabs(p);
            }
            want[t * n_out + o] = (float)(sum + bias[o]);
            got[t * n_out + o] = y[(size_t)t * ldy + o];
            tol[t * n_out + o] = rtol * mass + 1e-6;
        }
    }
    char what[64];
    snprintf(what, sizeof what, "matmul %s, %u x %u, %u tokens", tr->name, n_in, n_out, n_tok);
    compare(what, got, want, tol, (size_t)n_out * n_tok);
    be->ops->drop(be, &wt);
    be->ops->drop(be, &bt);
    be->ops->release(be, dx);
    be->ops->release(be, dy);
    free(w), free(wq), free(packed), free(x), free(bias), free(y), free(want), free(got), free(tol);
}

static void test_matmul(void **state)
{
    (void)state;
    need_device();
    test_rng r;
    test_rng_seed(&r, 11);
    static const uint32_t toks[] = {1, 3, 8, 9, 40};
    for (size_t i = 0; i < sizeof weight_types / sizeof weight_types[0]; i++)
        for (size_t j = 0; j < sizeof toks / sizeof toks[0]; j++)
            check_product(weight_types[i], toks[j], 512, 101, &r);
    // More rows than one dequantized tile holds (8 Mi values: 2048 rows of 4096), for the
    // prompt path's tiling, and the mat-vec path on the same shape.
    check_product(TENSOR_TYPE_Q4_K, 16, 4096, 2100, &r);
    check_product(TENSOR_TYPE_Q4_K, 2, 4096, 2100, &r);
    assert_int_equal(backend_cuda_type_bytes(be, TENSOR_TYPE_Q4_K), 0); // all dropped
}

// ---- norms, RoPE, activations ----

static void test_rmsnorm(void **state)
{
    (void)state;
    need_device();
    enum { ROWS = 5, DIM = 1000 };
    test_rng r;
    test_rng_seed(&r, 12);
    float x[ROWS * DIM], w[DIM], want[ROWS * DIM], got[ROWS * DIM];
    double tol[ROWS * DIM];
    random_floats(&r, x, ROWS * DIM, 3.0f);
    random_floats(&r, w, DIM, 1.0f);
    model_tensor wt = {.data = w,
                       .type = TENSOR_TYPE_F32,
                       .n_in = DIM,
                       .n_out = 1,
                       .n_mat = 1,
                       .mat_bytes = sizeof w};
    garlic_error err = {0};
    if (be->ops->upload(be, &wt, &err))
        fail_msg("upload: %s", err.message);
    for (int rr = 0; rr < ROWS; rr++)
        model_rmsnorm(want + rr * DIM, x + rr * DIM, w, DIM, 1e-5f);
    float *dx = dev_floats(x, ROWS * DIM);
    simple_batch sb;
    begin_simple(&sb, 1, NULL, NULL, 0, 0);
    be->ops->rmsnorm(be, dx, dx, &wt, ROWS, DIM, 1e-5f); // in place, as the contract allows
    finish("rmsnorm");
    host_floats(got, dx, ROWS * DIM);
    // The sum of squares is in double on both sides, in another order: the scale may differ
    // in its last bit, so 2 float ulps of each value.
    for (int i = 0; i < ROWS * DIM; i++)
        tol[i] = fabs(want[i]) * 2.4e-7;
    compare("rmsnorm", got, want, tol, ROWS * DIM);
    be->ops->release(be, dx);
    be->ops->drop(be, &wt);
}

static void check_rope(bool neox)
{
    enum { N_TOK = 3, HEADS = 4, HD = 64, N_ROT = 32, HALF = N_ROT / 2, TABLES = 2 };
    test_rng r;
    test_rng_seed(&r, 13);
    float x[N_TOK * HEADS * HD], want[N_TOK * HEADS * HD], got[N_TOK * HEADS * HD];
    float cos_t[TABLES * N_TOK * HALF], sin_t[TABLES * N_TOK * HALF];
    double tol[N_TOK * HEADS * HD];
    random_floats(&r, x, N_TOK * HEADS * HD, 1.0f);
    for (int i = 0; i < TABLES * N_TOK * HALF; i++) {
        float a = test_rng_uniform(&r) * 6.28f;
        cos_t[i] = cosf(a);
        sin_t[i] = sinf(a);
    }
    memcpy(want, x, sizeof x);
    for (int t = 0; t < N_TOK; t++) // table 1, the second
        model_rope_apply(want + t * HEADS * HD, HEADS, HD, N_ROT, neox, cos_t + (N_TOK + t) * HALF,
                         sin_t + (N_TOK + t) * HALF);
    float *dx = dev_floats(x, N_TOK * HEADS * HD);
    simple_batch sb;
    begin_simple(&sb, N_TOK, cos_t, sin_t, HALF, TABLES);
    be->ops->rope(be, dx, HEADS, HD, N_ROT, neox, 1);
    finish("rope");
    host_floats(got, dx, N_TOK * HEADS * HD);
    for (int i = 0; i < N_TOK * HEADS * HD; i++)
        tol[i] = 0; // the same float operations in the same order: exact
    compare(neox ? "rope (neox)" : "rope (adjacent pairs)", got, want, tol, N_TOK * HEADS * HD);
    be->ops->release(be, dx);
}

static void test_rope(void **state)
{
    (void)state;
    need_device();
    check_rope(true);
    check_rope(false);
}

// gpt-oss's clamped SwiGLU as forward.c writes it (the reference of MODEL_ACT_SWIGLU_OAI).
static float swiglu_oai_ref(float g, float u)
{
    const float alpha = 1.702f, limit = 7.0f;
    float x = limit < g ? limit : g;
    float y = u < -limit ? -limit : limit < u ? limit : u;
    return x / (1.0f + expf(alpha * -x)) * (y + 1.0f);
}

static void test_gated_act(void **state)
{
    (void)state;
    need_device();
    enum { N = 10007 };
    static float gate[N], up[N], want[N], got[N];
    static double tol[N];
    test_rng r;
    test_rng_seed(&r, 14);
    for (int act = 0; act < MODEL_ACT_COUNT; act++) {
        random_floats(&r, gate, N, 4.0f);
        random_floats(&r, up, N, 4.0f);
        memcpy(want, gate, sizeof gate);
        if (act == MODEL_ACT_SILU)
            kernel_swiglu_f32_ref(want, up, N); // (the SIMD variants approximate exp)
        else if (act == MODEL_ACT_GELU)
            kernel_geglu_f32(want, up, N);
        else
            for (int i = 0; i < N; i++)
                want[i] = swiglu_oai_ref(gate[i], up[i]);
        float *dg = dev_floats(gate, N), *du = dev_floats(up, N);
        simple_batch sb;
        begin_simple(&sb, 1, NULL, NULL, 0, 0);
        be->ops->gated_act(be, (model_act)act, dg, du, N);
        finish("gated_act");
        host_floats(got, dg, N);
        // CUDA's expf and tanhf are within 2 ulps, glibc's within 1: a few ulps after the
        // products (1e-6 relative). GELU rounds to F16, where one ulp of tanhf can move the
        // result one F16 step: 2^-10 relative, or 2^-24 absolute among F16 subnormals, times up.
        for (int i = 0; i < N; i++)
            tol[i] = act == MODEL_ACT_GELU ? fabs(want[i]) * 2e-3 + fabs(up[i]) * 6e-8 + 1e-7
                                           : fabs(want[i]) * 1e-6 + 1e-7;
        compare(act == MODEL_ACT_SILU       ? "silu"
                    : act == MODEL_ACT_GELU ? "gelu"
                                            : "swiglu_oai",
                got, want, tol, N);
        be->ops->release(be, dg);
        be->ops->release(be, du);
    }
}

static void test_add(void **state)
{
    (void)state;
    need_device();
    enum { N = 3001 };
    static float x[N], y[N], want[N], got[N];
    static double tol[N];
    test_rng r;
    test_rng_seed(&r, 15);
    random_floats(&r, x, N, 1.0f);
    random_floats(&r, y, N, 1.0f);
    for (int i = 0; i < N; i++) {
        want[i] = x[i] + y[i];
        tol[i] = 0; // one float addition: exact
    }
    float *dx = dev_floats(x, N), *dy = dev_floats(y, N);
    simple_batch sb;
    begin_simple(&sb, 1, NULL, NULL, 0, 0);
    be->ops->add(be, dx, dy, N);
    finish("add");
    host_floats(got, dx, N);
    compare("add", got, want, tol, N);
    be->ops->release(be, dx);
    be->ops->release(be, dy);
}

// gather_rows: row i of dst is row out[i] of src (runs of consecutive rows, a repeat, a row
// out of order); and an upload made twice stays until dropped twice.
static void test_gather_and_refs(void **state)
{
    (void)state;
    need_device();
    enum { N_TOK = 9, DIM = 67, N_OUT = 5 };
    static float src[N_TOK * DIM], want[N_OUT * DIM], got[N_OUT * DIM];
    static double tol[N_OUT * DIM];
    uint32_t out[N_OUT] = {2, 3, 4, 8, 0};
    test_rng r;
    test_rng_seed(&r, 21);
    random_floats(&r, src, N_TOK * DIM, 1.0f);
    for (int i = 0; i < N_OUT; i++)
        memcpy(want + i * DIM, src + out[i] * DIM, DIM * sizeof *src);
    simple_batch s;
    for (uint32_t t = 0; t < N_TOK; t++)
        s.pos[t] = t, s.n_pos[t] = t + 1, s.seq[t] = 0;
    s.table_start[0] = s.table_start[1] = 0;
    s.tables[0] = 0;
    backend_batch b = {.n_tok = N_TOK,
                       .n_seq = 1,
                       .pos = s.pos,
                       .n_pos = s.n_pos,
                       .seq = s.seq,
                       .table_start = s.table_start,
                       .tables = s.tables,
                       .n_tables = 1,
                       .n_out = N_OUT,
                       .out = out};
    garlic_error err = {0};
    if (be->ops->begin(be, &b, &err))
        fail_msg("begin: %s", err.message);
    float *dsrc = dev_floats(src, N_TOK * DIM), *ddst = dev_floats(NULL, N_OUT * DIM);
    be->ops->gather_rows(be, ddst, dsrc, DIM);
    finish("gather_rows");
    host_floats(got, ddst, N_OUT * DIM);
    compare("gather_rows", got, want, tol, N_OUT * DIM); // copies: exact
    be->ops->release(be, dsrc);
    be->ops->release(be, ddst);
    float values[64] = {1};
    model_tensor t = {.data = values,
                      .type = TENSOR_TYPE_F32,
                      .n_in = 64,
                      .n_out = 1,
                      .n_mat = 1,
                      .mat_bytes = sizeof values};
    backend_device_info before, info;
    be->ops->info(be, &before);
    assert_int_equal(be->ops->upload(be, &t, &err), GARLIC_OK);
    assert_int_equal(be->ops->upload(be, &t, &err), GARLIC_OK);
    be->ops->info(be, &info);
    assert_int_equal(info.weight_bytes, before.weight_bytes + sizeof values); // held once
    be->ops->drop(be, &t);
    be->ops->info(be, &info);
    assert_int_equal(info.weight_bytes, before.weight_bytes + sizeof values); // one left
    be->ops->drop(be, &t);
    be->ops->info(be, &info);
    assert_int_equal(info.weight_bytes, before.weight_bytes);
    be->ops->drop(be, &t); // not held: nothing
}

// ---- the KV cache and attention ----

enum {
    KV_HEADS = 2,
    HEADS = 8, // GQA: 4 query heads a KV head
    HD = 64,
    BT = 16,
    N_BLOCKS = 96,
    WINDOW = 40,
    SEQ_A = 45,
    SEQ_B = 700, // 3 splits of 256 positions in the decode kernel
};

// A pool of two layers (0 full, 1 sliding), sequences A and B appended in turns so that
// their blocks interleave, and every token of both as one batch (positions in order, A's
// then B's).
typedef struct kv_fixture {
    kv_cache *kv;
    kv_seq seqs[2];
    uint32_t n_tok;
    uint32_t *pos, *n_pos, *seq; // (n_tok)
    uint32_t table_start[4];
    uint32_t *tables; // the four tables (A full, A window, B full, B window), concatenated
    uint32_t n_tables;
    float *k, *v; // (n_tok, KV_HEADS * HD) per layer: [layer][token]
} kv_fixture;

static void fixture_init(kv_fixture *f, kv_type type, test_rng *r)
{
    kv_cache_config cfg = {.n_layer = 2,
                           .n_head_kv = KV_HEADS,
                           .head_dim_k = HD,
                           .head_dim_v = HD,
                           .block_tokens = BT,
                           .type = type,
                           .n_blocks = N_BLOCKS};
    cfg.windows.window = WINDOW;
    kv_windows_set(&cfg.windows, 1);
    garlic_error err = {0};
    f->kv = kv_cache_new(&cfg, &err);
    if (!f->kv)
        fail_msg("kv_cache_new: %s", err.message);
    int32_t tokens[SEQ_B];
    for (int i = 0; i < SEQ_B; i++)
        tokens[i] = (int32_t)(test_rng_u64(r) % 1000);
    const uint32_t want[2] = {SEQ_A, SEQ_B};
    uint32_t done[2] = {0, 0};
    for (int s = 0; s < 2; s++)
        kv_seq_init(&f->seqs[s]);
    while (done[0] < want[0] || done[1] < want[1]) { // turns of 7 and 23 positions
        for (int s = 0; s < 2; s++) {
            uint32_t n = s ? 23 : 7;
            n = want[s] - done[s] < n ? want[s] - done[s] : n;
            if (n && kv_seq_append(f->kv, &f->seqs[s], tokens + done[s], n, &err))
                fail_msg("kv_seq_append: %s", err.message);
            done[s] += n;
        }
    }
    f->n_tok = SEQ_A + SEQ_B;
    f->pos = malloc(f->n_tok * sizeof *f->pos);
    f->n_pos = malloc(f->n_tok * sizeof *f->n_pos);
    f->seq = malloc(f->n_tok * sizeof *f->seq);
    for (uint32_t t = 0; t < f->n_tok; t++) {
        f->seq[t] = t < SEQ_A ? 0 : 1;
        f->pos[t] = t < SEQ_A ? t : t - SEQ_A;
        f->n_pos[t] = f->pos[t] + 1;
    }
    uint32_t per_seq[2] = {f->seqs[0].n_blocks, f->seqs[1].n_blocks};
    f->n_tables = 2 * (per_seq[0] + per_seq[1]);
    f->tables = malloc(f->n_tables * sizeof *f->tables);
    uint32_t at = 0;
    for (int s = 0; s < 2; s++) {
        f->table_start[2 * s] = at;
        memcpy(f->tables + at, f->seqs[s].blocks, per_seq[s] * sizeof *f->tables);
        at += per_seq[s];
        f->table_start[2 * s + 1] = at;
        memcpy(f->tables + at, f->seqs[s].window_blocks, per_seq[s] * sizeof *f->tables);
        at += per_seq[s];
    }
    size_t row = (size_t)KV_HEADS * HD;
    f->k = malloc(2 * f->n_tok * row * sizeof(float));
    f->v = malloc(2 * f->n_tok * row * sizeof(float));
    random_floats(r, f->k, 2 * f->n_tok * row, 1.0f);
    random_floats(r, f->v, 2 * f->n_tok * row, 1.0f);
}

static void fixture_deinit(kv_fixture *f)
{
    for (int s = 0; s < 2; s++)
        kv_seq_deinit(f->kv, &f->seqs[s]);
    kv_cache_free(f->kv);
    free(f->pos), free(f->n_pos), free(f->seq), free(f->tables), free(f->k), free(f->v);
}

// The (block, offset) of token t's position in layer l's table.
static void locate(const kv_fixture *f, uint32_t l, uint32_t t, uint32_t *block, uint32_t *offset)
{
    const uint32_t *table = kv_seq_table(f->kv, &f->seqs[f->seq[t]], l);
    *block = table[f->pos[t] / BT];
    *offset = f->pos[t] % BT;
}

static backend_attention attention_of(uint32_t layer, const model_tensor *sinks)
{
    return (backend_attention){.layer = layer,
                               .window_blocks = layer == 1,
                               .window = layer == 1 ? WINDOW : 0,
                               .n_head = HEADS,
                               .n_head_kv = KV_HEADS,
                               .head_dim_k = HD,
                               .head_dim_v = HD,
                               .scale = 0.125f,
                               .sinks = sinks};
}

// Begins a batch of the fixture's tokens `idx` (n of them).
static void begin_fixture(const kv_fixture *f, const uint32_t *idx, uint32_t n)
{
    uint32_t *pos = malloc(n * sizeof *pos), *n_pos = malloc(n * sizeof *n_pos),
             *seq = malloc(n * sizeof *seq);
    for (uint32_t i = 0; i < n; i++) {
        pos[i] = f->pos[idx[i]];
        n_pos[i] = f->n_pos[idx[i]];
        seq[i] = f->seq[idx[i]];
    }
    backend_batch b = {.n_tok = n,
                       .n_seq = 2,
                       .pos = pos,
                       .n_pos = n_pos,
                       .seq = seq,
                       .table_start = f->table_start,
                       .tables = f->tables,
                       .n_tables = f->n_tables,
                       .kv = f->kv};
    garlic_error err = {0};
    if (be->ops->begin(be, &b, &err))
        fail_msg("begin: %s", err.message);
    free(pos), free(n_pos), free(seq);
}

// Stores every token's K and V of both layers on the host pool (kv_cache_store) and on the
// device (kv_store), then compares every device row with the host's byte for byte.
static void store_all(kv_fixture *f)
{
    size_t row = (size_t)KV_HEADS * HD;
    uint32_t *idx = malloc(f->n_tok * sizeof *idx);
    for (uint32_t t = 0; t < f->n_tok; t++)
        idx[t] = t;
    garlic_error err = {0};
    if (be->ops->kv_bind(be, f->kv, 0, 2, &err))
        fail_msg("kv_bind: %s", err.message);
    begin_fixture(f, idx, f->n_tok);
    float *dk = dev_floats(NULL, f->n_tok * row), *dv = dev_floats(NULL, f->n_tok * row);
    for (uint32_t l = 0; l < 2; l++) {
        garlic_error e2 = {0};
        if (be->ops->to_device(be, dk, f->k + l * f->n_tok * row, f->n_tok * row * 4, &e2) ||
            be->ops->to_device(be, dv, f->v + l * f->n_tok * row, f->n_tok * row * 4, &e2))
            fail_msg("to_device: %s", e2.message);
        backend_attention a = attention_of(l, NULL);
        be->ops->kv_store(be, &a, dk, dv);
        finish("kv_store");
        for (uint32_t t = 0; t < f->n_tok; t++) {
            uint32_t block, offset;
            locate(f, l, t, &block, &offset);
            kv_cache_store(f->kv, l, block, offset, f->k + (l * f->n_tok + t) * row,
                           f->v + (l * f->n_tok + t) * row);
        }
    }
    size_t k_bytes = kv_cache_k_row_bytes(f->kv), v_bytes = kv_cache_v_row_bytes(f->kv);
    uint8_t *got = malloc(k_bytes > v_bytes ? k_bytes : v_bytes);
    for (uint32_t l = 0; l < 2; l++) {
        for (uint32_t t = 0; t < f->n_tok; t++) {
            uint32_t block, offset;
            locate(f, l, t, &block, &offset);
            for (int v = 0; v < 2; v++) {
                size_t bytes = v ? v_bytes : k_bytes;
                const uint8_t *want = v ? kv_cache_v_row(f->kv, l, block, offset)
                                        : kv_cache_k_row(f->kv, l, block, offset);
                if (backend_cuda_kv_row(be, f->kv, l, block, offset, v, got, bytes, &err))
                    fail_msg("kv_row: %s", err.message);
                for (size_t i = 0; i < bytes; i++)
                    if (got[i] != want[i])
                        fail_msg("kv_store %s: layer %u token %u %s row: byte %zu is 0x%02x, "
                                 "kv_row_store wrote 0x%02x",
                                 kv_type_name(kv_cache_get_config(f->kv)->type), l, t,
                                 v ? "V" : "K", i, got[i], want[i]);
            }
        }
    }
    free(got);
    free(idx);
    be->ops->release(be, dk);
    be->ops->release(be, dv);
}

// Plain attention of fixture token t, head h, in layer l over the host pool's rows.
static void attention_ref(const kv_fixture *f, uint32_t l, uint32_t t, uint32_t h, const float *q,
                          const float *sinks, float *out)
{
    kv_type type = kv_cache_get_config(f->kv)->type;
    uint32_t n_pos = f->n_pos[t], lo = l == 1 && n_pos > WINDOW ? n_pos - WINDOW : 0;
    uint32_t kh = h / (HEADS / KV_HEADS);
    const uint32_t *table = kv_seq_table(f->kv, &f->seqs[f->seq[t]], l);
    double *score = malloc(n_pos * sizeof *score), max = sinks ? sinks[h] : -INFINITY;
    float row[KV_HEADS * HD];
    for (uint32_t p = lo; p < n_pos; p++) {
        kv_row_load(type, kv_cache_k_row(f->kv, l, table[p / BT], p % BT), row, KV_HEADS * HD);
        double dot = 0;
        for (int d = 0; d < HD; d++)
            dot += (double)q[d] * row[kh * HD + d];
        score[p] = 0.125 * dot;
        max = score[p] > max ? score[p] : max;
    }
    double sum = sinks ? exp(sinks[h] - max) : 0, acc[HD] = {0};
    for (uint32_t p = lo; p < n_pos; p++) {
        double e = exp(score[p] - max);
        sum += e;
        kv_row_load(type, kv_cache_v_row(f->kv, l, table[p / BT], p % BT), row, KV_HEADS * HD);
        for (int d = 0; d < HD; d++)
            acc[d] += e * row[kh * HD + d];
    }
    for (int d = 0; d < HD; d++)
        out[d] = (float)(acc[d] / sum);
    free(score);
}

// Attention of the tokens idx (n) in layer l, on the device and by the reference.
static void check_attention(kv_fixture *f, uint32_t l, const uint32_t *idx, uint32_t n,
                            bool want_tiled, const model_tensor *sinks, test_rng *r,
                            const char *what)
{
    size_t q_row = (size_t)HEADS * HD;
    float *q = malloc(n * q_row * sizeof *q), *want = malloc(n * q_row * sizeof *want),
          *got = malloc(n * q_row * sizeof *got);
    double *tol = malloc(n * q_row * sizeof *tol);
    random_floats(r, q, n * q_row, 1.0f);
    begin_fixture(f, idx, n);
    assert_int_equal(backend_cuda_attention_tiled(be), want_tiled);
    float *dq = dev_floats(q, n * q_row), *dout = dev_floats(NULL, n * q_row);
    backend_attention a = attention_of(l, sinks);
    be->ops->attention(be, &a, dq, dout);
    finish(what);
    host_floats(got, dout, n * q_row);
    for (uint32_t i = 0; i < n; i++)
        for (uint32_t h = 0; h < HEADS; h++)
            attention_ref(f, l, idx[i], h, q + i * q_row + h * HD, sinks ? sinks->data : NULL,
                          want + i * q_row + h * HD);
    // Outputs are weighted means of values of about 1 (F16/Q8_0/FP8 rows are the same bytes on
    // both sides): float scores and sums against double ones, 2e-5 absolute.
    for (size_t i = 0; i < n * q_row; i++)
        tol[i] = 2e-5;
    compare(what, got, want, tol, n * q_row);
    be->ops->release(be, dq);
    be->ops->release(be, dout);
    free(q), free(want), free(got), free(tol);
}

static void check_kv_type(kv_type type)
{
    test_rng r;
    test_rng_seed(&r, 16 + type);
    kv_fixture f;
    fixture_init(&f, type, &r);
    store_all(&f);
    float sink_values[HEADS];
    for (int h = 0; h < HEADS; h++)
        sink_values[h] = test_rng_normal(&r);
    model_tensor sinks = {.data = sink_values,
                          .type = TENSOR_TYPE_F32,
                          .n_in = HEADS,
                          .n_out = 1,
                          .n_mat = 1,
                          .mat_bytes = sizeof sink_values};
    garlic_error err = {0};
    if (be->ops->upload(be, &sinks, &err))
        fail_msg("upload: %s", err.message);
    uint32_t *all = malloc(f.n_tok * sizeof *all);
    for (uint32_t t = 0; t < f.n_tok; t++)
        all[t] = t;
    uint32_t last[2] = {SEQ_A - 1, SEQ_A + SEQ_B - 1}; // a decode step of both sequences
    char what[96];
    for (uint32_t l = 0; l < 2; l++) {
        for (int s = 0; s < 2; s++) {
            const model_tensor *sk = s ? &sinks : NULL;
            snprintf(what, sizeof what, "attention %s, layer %u%s, prompt (tiled)",
                     kv_type_name(type), l, s ? ", sinks" : "");
            check_attention(&f, l, all, f.n_tok, true, sk, &r, what);
            snprintf(what, sizeof what, "attention %s, layer %u%s, decode (splits)",
                     kv_type_name(type), l, s ? ", sinks" : "");
            check_attention(&f, l, last, 2, false, sk, &r, what);
        }
    }
    be->ops->drop(be, &sinks);
    free(all);
    backend_device_info info;
    be->ops->info(be, &info);
    assert_true(info.kv_bytes > 0);
    fixture_deinit(&f); // the pool goes, and its rows on the device with it (kv_mirror.gone)
    be->ops->info(be, &info);
    assert_int_equal(info.kv_bytes, 0);
}

static void test_kv_attention(void **state)
{
    (void)state;
    need_device();
    for (int type = 0; type < KV_TYPE_COUNT; type++)
        check_kv_type((kv_type)type);
}

// ---- the device code's host twins (these run without a GPU) ----

// Bit equality, NaN equal to NaN.
static bool same_float(float a, float b)
{
    uint32_t x, y;
    memcpy(&x, &a, sizeof x);
    memcpy(&y, &b, sizeof y);
    return x == y || (isnan(a) && isnan(b));
}

// Every weight type's chunk decoder (the code of the mat-vec and dequantizing kernels)
// against tensor/'s dequantizer, bit for bit, on quantized random rows and on random bytes.
static void test_host_decoders(void **state)
{
    (void)state;
    enum { N = 512 };
    test_rng r;
    test_rng_seed(&r, 18);
    float x[N], want[N], got[32];
    _Alignas(256) uint8_t row[N * 4]; // (as a device allocation: the decoders check alignment)
    for (size_t i = 0; i < sizeof weight_types / sizeof weight_types[0]; i++) {
        uint32_t type = weight_types[i];
        const tensor_type_traits *tr = tensor_type_get(type);
        if (!tr->is_quantized)
            continue;
        uint64_t bytes = 0;
        assert_true(tensor_row_size(type, N, &bytes));
        for (int round = 0; round < 20; round++) {
            if (round % 2 == 0) {
                random_floats(&r, x, N, round + 1.0f);
                tr->quantize(x, row, N);
            } else {
                for (uint64_t b = 0; b < bytes; b++)
                    row[b] = (uint8_t)test_rng_u64(&r);
            }
            tr->dequantize(row, want, N);
            for (uint32_t c = 0; c < N / 32; c++) {
                if (!cuda_host_chunk_values(type, row, c, got))
                    fail_msg("%s: the CUDA decoder does not take it", tr->name);
                for (int j = 0; j < 32; j++)
                    if (!same_float(got[j], want[32 * c + j]))
                        fail_msg("%s (%s row): value %u is %.9g, tensor/ says %.9g", tr->name,
                                 round % 2 ? "random" : "quantized", 32 * c + j, (double)got[j],
                                 (double)want[32 * c + j]);
            }
        }
    }
}

// The KV store's FP8 encoding against kv_fp8_from_f32 on random bit patterns and edge values,
// GELU's F16 steps against kernel_geglu_f32, and the attention's KV row reader against
// kv_row_load for every KV type.
static void test_host_kv_and_gelu(void **state)
{
    (void)state;
    test_rng r;
    test_rng_seed(&r, 19);
    static const float edges[] = {0.0f,     -0.0f,     448.0f,   464.0f,  480.0f,
                                  -500.0f,  1e-30f,    0x1p-10f, 0x1p-9f, 0x1.8p-10f,
                                  INFINITY, -INFINITY, NAN};
    for (int i = 0; i < 2000000 + (int)(sizeof edges / sizeof edges[0]); i++) {
        float f;
        if (i < (int)(sizeof edges / sizeof edges[0])) {
            f = edges[i];
        } else {
            uint32_t bits = (uint32_t)test_rng_u64(&r);
            memcpy(&f, &bits, sizeof f);
        }
        uint8_t want = kv_fp8_from_f32(f), got = cuda_host_fp8_from_f32(f);
        if (want != got)
            fail_msg("fp8 of %a: 0x%02x, kv_fp8_from_f32 says 0x%02x", (double)f, got, want);
    }
    for (int i = 0; i < 200000; i++) {
        float g = test_rng_normal(&r) * 6.0f, one = 1.0f, want = g;
        kernel_geglu_f32(&want, &one, 1);
        float got = cuda_host_gelu(g);
        if (!same_float(got, want))
            fail_msg("gelu(%.9g) is %.9g, kernel_geglu_f32 says %.9g", (double)g, (double)got,
                     (double)want);
    }
    enum { N = 256 };
    float x[N], want[N];
    uint8_t row[N * 4];
    for (int type = 0; type < KV_TYPE_COUNT; type++) {
        random_floats(&r, x, N, 3.0f);
        kv_row_store((kv_type)type, row, x, N);
        kv_row_load((kv_type)type, row, want, N);
        for (uint32_t i = 0; i < N; i++) {
            float got = cuda_host_kv_value(type, row, i);
            if (!same_float(got, want[i]))
                fail_msg("KV %s value %u is %.9g, kv_row_load says %.9g",
                         kv_type_name((kv_type)type), i, (double)got, (double)want[i]);
        }
    }
}

// ---- weights: refusals, sleep and wake ----

static void test_upload_refuses(void **state)
{
    (void)state;
    need_device();
    uint8_t bytes[66] = {0};
    model_tensor t = {.data = bytes,
                      .type = TENSOR_TYPE_IQ2_XXS,
                      .n_in = 256,
                      .n_out = 1,
                      .n_mat = 1,
                      .mat_bytes = sizeof bytes};
    garlic_error err = {0};
    assert_int_equal(be->ops->upload(be, &t, &err), GARLIC_EUNSUPPORTED);
    assert_non_null(strstr(err.message, "IQ2_XXS"));
    model_arch arch = *model_arch_find("llama");
    model_layer layer = {0};
    model m = {.arch = &arch, .layers = &layer};
    m.hp.n_head = m.hp.n_head_kv = 4;
    m.hp.head_dim_k = m.hp.head_dim_v = 64;
    layer.wq = (model_tensor){.data = bytes, .type = TENSOR_TYPE_Q4_K, .n_in = 256, .n_out = 1};
    assert_true(be->ops->supports(be, &m, 0, &err));
    layer.wq.type = TENSOR_TYPE_IQ2_XXS;
    assert_false(be->ops->supports(be, &m, 0, &err));
    assert_non_null(strstr(err.message, "attn_q"));
    layer.wq.type = TENSOR_TYPE_Q4_K;
    m.hp.n_expert = 8;
    assert_false(be->ops->supports(be, &m, 0, &err));
    assert_non_null(strstr(err.message, "mixture-of-experts"));
    m.hp.n_expert = 0;
    arch.mla = true;
    assert_false(be->ops->supports(be, &m, 0, &err));
    assert_non_null(strstr(err.message, "latent"));
}

static void test_sleep_wake(void **state)
{
    (void)state;
    need_device();
    enum { N_IN = 256, N_OUT = 64 };
    test_rng r;
    test_rng_seed(&r, 17);
    float w[N_IN * N_OUT], x[N_IN], y0[N_OUT], y1[N_OUT];
    uint8_t packed[N_OUT * 144];
    random_floats(&r, w, N_IN * N_OUT, 1.0f);
    random_floats(&r, x, N_IN, 1.0f);
    tensor_type_get(TENSOR_TYPE_Q4_K)->quantize(w, packed, N_IN * N_OUT);
    model_tensor t = {.data = packed,
                      .type = TENSOR_TYPE_Q4_K,
                      .n_in = N_IN,
                      .n_out = N_OUT,
                      .n_mat = 1,
                      .mat_bytes = sizeof packed};
    garlic_error err = {0};
    if (be->ops->upload(be, &t, &err))
        fail_msg("upload: %s", err.message);
    assert_int_equal(backend_cuda_type_bytes(be, TENSOR_TYPE_Q4_K), sizeof packed);
    float *dx = dev_floats(x, N_IN), *dy = dev_floats(NULL, N_OUT);
    backend_matmul item = {.w = &t, .y = dy, .ldy = N_OUT};
    simple_batch sb;
    begin_simple(&sb, 1, NULL, NULL, 0, 0);
    be->ops->matmul(be, dx, N_IN, 1, &item, 1);
    finish("matmul before sleep");
    host_floats(y0, dy, N_OUT);
    if (be->ops->sleep(be, &err))
        fail_msg("sleep: %s", err.message);
    assert_int_equal(backend_cuda_type_bytes(be, TENSOR_TYPE_Q4_K), 0);
    assert_int_not_equal(be->ops->begin(be, &(backend_batch){.n_tok = 0}, &err), GARLIC_OK);
    if (be->ops->wake(be, &err))
        fail_msg("wake: %s", err.message);
    assert_int_equal(backend_cuda_type_bytes(be, TENSOR_TYPE_Q4_K), sizeof packed);
    begin_simple(&sb, 1, NULL, NULL, 0, 0);
    be->ops->matmul(be, dx, N_IN, 1, &item, 1);
    finish("matmul after wake");
    host_floats(y1, dy, N_OUT);
    assert_memory_equal(y0, y1, sizeof y0);
    be->ops->drop(be, &t);
    be->ops->release(be, dx);
    be->ops->release(be, dy);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_host_decoders), cmocka_unit_test(test_host_kv_and_gelu),
        cmocka_unit_test(test_matmul),        cmocka_unit_test(test_rmsnorm),
        cmocka_unit_test(test_rope),          cmocka_unit_test(test_gated_act),
        cmocka_unit_test(test_add),           cmocka_unit_test(test_gather_and_refs),
        cmocka_unit_test(test_kv_attention),  cmocka_unit_test(test_upload_refuses),
        cmocka_unit_test(test_sleep_wake),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
