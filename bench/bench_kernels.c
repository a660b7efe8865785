// SPDX-License-Identifier: MIT
// Kernel throughput on TinyLlama-1.1B-shaped matrices (2048 x 2048, the attention
// projections, 5632 x 2048, the FFN gate/up, and 2048 x 5632, the FFN down; or the one shape
// --shape ROWSxN names) for the benchmark model types Q4_0, Q8_0, Q4_K, Q6_K, F16, MXFP4 and
// garlic's own F8_E4M3 and Q4_Z (or the types named), per variant, single-threaded: matrix-vector
// (decode) as GB/s of weights read, and kernel_matmul with 1, 8, 16 and 512 activation rows
// (batched decode, prompt processing) as GFLOP/s; types the best variant packs at load get a
// row "packed" for that layout. Matrix-vector runs rotate over copies of the
// weights that together exceed the last-level cache, as decode streams a whole model from
// memory. Activation conversion is not timed. Reported, never asserted.
//   bench_kernels [--scalar] [--variant NAME] [--shape ROWSxN] [TYPE...]
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/kernels.h"
#include "kernels/variants.h"
#include "tensor/types.h"

// This thread's CPU time: on a machine shared with other work, time spent descheduled does
// not count (on an idle machine it equals wall time for these single-threaded runs).
static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t rng_state = 88172645463325252ull;

static uint64_t rng_next(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

// Random weights: codes are random bytes (speed does not depend on them); half fields and
// F16 values are made finite by quantizing random floats one block at a time.
static void fill_weights(uint32_t type, uint8_t *dst, int64_t rows, int64_t n)
{
    const tensor_type_traits *tr = tensor_type_get(type);
    float block[256];
    int64_t total = rows * n;
    for (int64_t i = 0; i < total; i += tr->block_size) {
        for (uint32_t j = 0; j < tr->block_size; j++)
            block[j] = (float)((int64_t)(rng_next() >> 40) - (1 << 23)) / (float)(1 << 23);
        tr->quantize(block, dst + i / tr->block_size * tr->type_size, tr->block_size);
    }
}

typedef struct bench_case {
    uint32_t type;
    int64_t rows, n;
} bench_case;

enum { MAX_ACT = 512, MIN_COPIES_BYTES = 96 << 20 };
static const int64_t act_counts[] = {1, 8, 16, 512};
enum { N_COUNTS = sizeof act_counts / sizeof act_counts[0] };

// Best time of matrix products with n_act activation rows, rotating over `copies` weight
// copies (n_act = 1 only: larger products reuse each weight many times anyway).
// v < 0: the packed layout (kernel_matmul_packed, the best variant).
static double time_matmul(int v, const bench_case *c, const uint8_t *w, size_t w_size, int copies,
                          const void *act, int64_t n_act, float *y)
{
    double best = 1e30, start = now();
    for (int rep = 0; rep < 200 && (rep < 2 || now() - start < 0.3); rep++) {
        const uint8_t *wc = w + (size_t)(n_act == 1 ? rep % copies : 0) * w_size;
        double t0 = now();
        if (v < 0)
            kernel_matmul_packed(c->type, wc, c->n, 0, c->rows, act, n_act, y, c->rows);
        else
            kernel_matmul_variant((kernel_variant)v, c->type, false, wc, c->n, 0, c->rows, act,
                                  n_act, y, c->rows);
        double dt = now() - t0;
        best = dt < best ? dt : best;
    }
    return best;
}

// size bytes aligned to 64, as the model's buffers are: a large malloc is only 16-aligned,
// and loads that cross cache lines would time something the forward pass does not do.
static void *alloc64(size_t size) { return aligned_alloc(64, (size + 63) / 64 * 64); }

// Runs one case on the chosen variants and prints a row for each.
static int run_case(const bench_case *c, bool scalar, int only)
{
    uint64_t w_size = 0;
    tensor_row_size(c->type, (uint64_t)(c->rows * c->n), &w_size);
    int copies = (int)(MIN_COPIES_BYTES / w_size) + 1;
    uint8_t *w = alloc64((size_t)w_size * (size_t)copies);
    size_t act_bytes = kernel_act_row_size(c->type, c->n);
    uint8_t *act = alloc64(act_bytes * MAX_ACT);
    float *x = malloc((size_t)c->n * sizeof *x);
    float *y = malloc((size_t)(c->rows * MAX_ACT) * sizeof *y);
    if (!w || !act || !x || !y)
        return 1;
    fill_weights(c->type, w, c->rows, c->n);
    for (int i = 1; i < copies; i++)
        memcpy(w + (size_t)i * w_size, w, (size_t)w_size);
    for (int b = 0; b < MAX_ACT; b++) {
        for (int64_t i = 0; i < c->n; i++)
            x[i] = (float)((int64_t)(rng_next() >> 40) - (1 << 23)) / (float)(1 << 23);
        kernel_act_convert(c->type, x, act + (size_t)b * act_bytes, c->n);
    }
    double flops = 2.0 * (double)c->rows * (double)c->n;
    // The variants, then the packed layout where the best variant has one (packed in place:
    // the plain copies are not used after).
    for (int v = 0; v <= KERNEL_VARIANT_COUNT; v++) {
        bool packed = v == KERNEL_VARIANT_COUNT;
        if (packed) {
            if (!kernel_packs(c->type) || only >= 0)
                continue;
            for (int i = 0; i < copies; i++)
                kernel_pack_rows(c->type, w + (size_t)i * w_size, w + (size_t)i * w_size, c->rows,
                                 c->n);
        } else if (!kernel_variant_available((kernel_variant)v) ||
                   (v == KERNEL_VARIANT_REF && !scalar) || (only >= 0 && v != only)) {
            continue;
        }
        char label[32];
        bool own = packed || kernel_variant_type_ops((kernel_variant)v, c->type, true) != NULL;
        snprintf(label, sizeof label, "%s%s",
                 packed ? "packed" : kernel_variant_label((kernel_variant)v), own ? "" : "*");
        printf("%-5s %5lld x %-5lld %-12s", tensor_type_get(c->type)->name, (long long)c->rows,
               (long long)c->n, label);
        for (int i = 0; i < N_COUNTS; i++) {
            int64_t n_act = act_counts[i];
            if (v == KERNEL_VARIANT_REF && n_act > 16) {
                printf(" %9s", "-");
                continue;
            }
            double t = time_matmul(packed ? -1 : v, c, w, (size_t)w_size, copies, act, n_act, y);
            if (i == 0)
                printf(" %8.2f", (double)w_size / t / 1e9);
            printf(" %9.1f", flops * (double)n_act / t / 1e9);
            fflush(stdout);
        }
        printf("\n");
    }
    free(w), free(act), free(x), free(y);
    return 0;
}

int main(int argc, char **argv)
{
    uint32_t types[16] = {TENSOR_TYPE_Q4_0,    TENSOR_TYPE_Q8_0, TENSOR_TYPE_Q4_K,
                          TENSOR_TYPE_Q6_K,    TENSOR_TYPE_F16,  TENSOR_TYPE_MXFP4,
                          TENSOR_TYPE_F8_E4M3, TENSOR_TYPE_Q4_Z};
    size_t n_types = 8, named = 0;
    long long shape_rows = 0, shape_n = 0;
    bool scalar = false;
    int only = -1;
    for (int a = 1; a < argc; a++) {
        tensor_type t;
        if (strcmp(argv[a], "--scalar") == 0) {
            scalar = true;
        } else if (strcmp(argv[a], "--variant") == 0 && a + 1 < argc) {
            a++;
            for (int v = 0; v < KERNEL_VARIANT_COUNT; v++)
                if (strcmp(argv[a], kernel_variant_label((kernel_variant)v)) == 0)
                    only = v, scalar = true;
        } else if (strcmp(argv[a], "--shape") == 0 && a + 1 < argc) {
            if (sscanf(argv[++a], "%lldx%lld", &shape_rows, &shape_n) != 2 || shape_rows < 1 ||
                shape_n < 1) {
                fprintf(stderr, "bench_kernels: --shape wants ROWSxN, not '%s'\n", argv[a]);
                return 2;
            }
        } else if (tensor_type_from_name(argv[a], &t) && kernel_supports(t) && named < 16) {
            types[named++] = t; // the types named replace the default list
        } else {
            fprintf(stderr, "bench_kernels: '%s' is not a weight type with kernels\n", argv[a]);
            return 2;
        }
    }
    n_types = named ? named : n_types;
    printf("kernels, 1 thread, thread CPU time, best of several runs; matvec rotates over >= 96 "
           "MiB of weight copies; GFLOP/s of kernel_matmul by activation rows\n");
    printf("%-5s %-13s %-12s %8s %9s %9s %9s %9s\n", "type", "rows x n", "variant", "mv GB/s", "b1",
           "b8", "b16", "b512");
    for (size_t t = 0; t < n_types; t++) {
        const bench_case cases[3] = {
            {types[t], 2048, 2048}, {types[t], 5632, 2048}, {types[t], 2048, 5632}};
        const bench_case shaped = {types[t], shape_rows, shape_n};
        uint32_t block = tensor_type_get(types[t])->block_size;
        if (shape_rows && shape_n % block != 0) {
            fprintf(stderr, "bench_kernels: %s rows of %lld values: not whole blocks of %u\n",
                    tensor_type_get(types[t])->name, shape_n, block);
            return 2;
        }
        for (int i = 0; i < (shape_rows ? 1 : 3); i++) {
            if (run_case(shape_rows ? &shaped : &cases[i], scalar, only) != 0)
                return 1;
        }
    }
    printf("* this variant has no kernel of its own for the type; the next lower one runs\n");
    return 0;
}
