// SPDX-License-Identifier: MIT
// Kernel throughput on TinyLlama-1.1B-shaped matrices (5632 x 2048, the FFN gate/up, and
// 2048 x 5632, the FFN down) for the benchmark model types Q4_0, Q8_0, Q4_K, Q6_K and F16,
// per variant, single-threaded: matrix-vector (decode) as GB/s of weights read and GFLOP/s,
// and a 32-row matrix product (prompt processing) as GFLOP/s. Matrix-vector runs rotate over
// copies of the weights that together exceed the last-level cache, as decode streams a whole
// model from memory. Activation conversion is not timed. Reported, never asserted.
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

enum { BATCH = 32, MIN_COPIES_BYTES = 96 << 20 };

// Best time of `reps` matrix-vector products, rotating over `copies` weight copies.
static double time_matvec(kernel_variant v, const bench_case *c, const uint8_t *w, size_t w_size,
                          int copies, const void *act, float *y)
{
    double best = 1e30, start = now();
    for (int rep = 0; rep < 200 && (rep < 3 || now() - start < 0.5); rep++) {
        const uint8_t *wc = w + (size_t)(rep % copies) * w_size;
        double t0 = now();
        kernel_matmul_variant(v, c->type, wc, c->n, 0, c->rows, act, 1, y, c->rows);
        double dt = now() - t0;
        best = dt < best ? dt : best;
    }
    return best;
}

static double time_batch(kernel_variant v, const bench_case *c, const uint8_t *w,
                         const void *act, float *y)
{
    double best = 1e30, start = now();
    for (int rep = 0; rep < 50 && (rep < 1 || now() - start < 0.5); rep++) {
        double t0 = now();
        kernel_matmul_variant(v, c->type, w, c->n, 0, c->rows, act, BATCH, y, c->rows);
        double dt = now() - t0;
        best = dt < best ? dt : best;
    }
    return best;
}

// Runs one case on every available variant and prints its rows.
static int run_case(const bench_case *c)
{
    uint64_t w_size = 0;
    tensor_row_size(c->type, (uint64_t)(c->rows * c->n), &w_size);
    int copies = (int)(MIN_COPIES_BYTES / w_size) + 1;
    uint8_t *w = malloc((size_t)w_size * (size_t)copies);
    size_t act_bytes = kernel_act_row_size(c->type, c->n);
    uint8_t *act = malloc(act_bytes * BATCH);
    float *x = malloc((size_t)c->n * sizeof *x), *y = malloc((size_t)(c->rows * BATCH) * sizeof *y);
    if (!w || !act || !x || !y)
        return 1;
    fill_weights(c->type, w, c->rows, c->n);
    for (int i = 1; i < copies; i++)
        memcpy(w + (size_t)i * w_size, w, (size_t)w_size);
    for (int b = 0; b < BATCH; b++) {
        for (int64_t i = 0; i < c->n; i++)
            x[i] = (float)((int64_t)(rng_next() >> 40) - (1 << 23)) / (float)(1 << 23);
        kernel_act_convert(c->type, x, act + (size_t)b * act_bytes, c->n);
    }
    double flops = 2.0 * (double)c->rows * (double)c->n;
    for (int v = 0; v < KERNEL_VARIANT_COUNT; v++) {
        if (!kernel_variant_available((kernel_variant)v))
            continue;
        double t1 = time_matvec((kernel_variant)v, c, w, (size_t)w_size, copies, act, y);
        double tb = time_batch((kernel_variant)v, c, w, act, y);
        char label[32];
        bool own = kernel_variant_type_ops((kernel_variant)v, c->type, true) != NULL;
        snprintf(label, sizeof label, "%s%s", kernel_variant_label((kernel_variant)v),
                 own ? "" : "*");
        printf("%-5s %5lld x %-5lld %-12s %9.3f %8.2f %9.2f %11.2f %9.1f\n",
               tensor_type_get(c->type)->name, (long long)c->rows, (long long)c->n, label,
               t1 * 1e3, (double)w_size / t1 / 1e9,
               flops / t1 / 1e9, flops * BATCH / tb / 1e9, tb * 1e3);
        fflush(stdout);
    }
    free(w), free(act), free(x), free(y);
    return 0;
}

// Arguments, if any, name the types to run ("Q4_0 F16"); default all five.
int main(int argc, char **argv)
{
    const uint32_t types[] = {TENSOR_TYPE_Q4_0, TENSOR_TYPE_Q8_0, TENSOR_TYPE_Q4_K,
                              TENSOR_TYPE_Q6_K, TENSOR_TYPE_F16};
    printf("kernels, 1 thread, thread CPU time, best of several runs; matvec rotates over >= 96 "
           "MiB of weight copies; batch = %d rows\n", BATCH);
    printf("%-5s %-13s %-12s %9s %8s %9s %11s %9s\n", "type", "rows x n", "variant", "matvec ms",
           "GB/s", "GFLOP/s", "b32 GFLOP/s", "b32 ms");
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        bool wanted = argc < 2;
        for (int a = 1; a < argc; a++)
            wanted = wanted || strcmp(argv[a], tensor_type_get(types[t])->name) == 0;
        if (!wanted)
            continue;
        const bench_case cases[2] = {{types[t], 5632, 2048}, {types[t], 2048, 5632}};
        for (int i = 0; i < 2; i++) {
            if (run_case(&cases[i]) != 0)
                return 1;
        }
    }
    printf("* this variant has no kernel of its own for the type; the next lower one runs\n");
    return 0;
}
