// SPDX-License-Identifier: MIT
// Quantization speed per weight type on one thread: 1 Mi values shaped like weights (a
// bell curve per row of 4096, each row its own spread, a few outliers) quantized by each
// K-quant's _ref quantizer and by every variant this CPU runs (Q8_0 by the traits table's
// quantizer, for scale), best of 3 runs, reported as wall and CPU time per run, Mvalues/s and
// the speed over _ref. Reported, never asserted; quote `uptime`'s load with the figures.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "tensor/quants.h"
#include "tensor/types.h"

static double seconds(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t rng_state = 1;

// Uniform in [0, 1).
static double uniform(void)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(rng_state >> 11) * 0x1p-53;
}

// Rows of 4096 values: a sum of four uniforms (close to a normal curve) times the row's
// spread (0.005 .. 0.05), and one value in 512 four to eight times larger.
static void fill_weights(float *x, int64_t n)
{
    float spread = 0.02f;
    for (int64_t i = 0; i < n; i++) {
        if (i % 4096 == 0)
            spread = 0.005f + 0.045f * (float)uniform();
        double g = uniform() + uniform() + uniform() + uniform() - 2.0;
        if (uniform() < 1.0 / 512)
            g *= 4.0 + 4.0 * uniform();
        x[i] = (float)(g * spread * 1.7);
    }
}

typedef void (*quantize_fn)(const float *src, void *dst, int64_t n);

static const float *bench_src;
static void *bench_dst;
static int64_t bench_n;
static tensor_type bench_type;
static tensor_quant_variant bench_variant;

static void run_variant(const float *src, void *dst, int64_t n)
{
    tensor_quantize_variant(bench_type, bench_variant, src, dst, n);
}

// Times fn on the bench's rows (best of 3) and prints one line; returns the best wall time.
static double time_quantizer(const char *type, const char *who, quantize_fn fn, double ref_wall)
{
    double best_wall = 1e9, best_cpu = 1e9;
    for (int r = 0; r < 3; r++) {
        double w0 = seconds(CLOCK_MONOTONIC), c0 = seconds(CLOCK_PROCESS_CPUTIME_ID);
        fn(bench_src, bench_dst, bench_n);
        double wall = seconds(CLOCK_MONOTONIC) - w0;
        double cpu = seconds(CLOCK_PROCESS_CPUTIME_ID) - c0;
        best_wall = wall < best_wall ? wall : best_wall;
        best_cpu = cpu < best_cpu ? cpu : best_cpu;
    }
    printf("%-6s %-8s %10.1f %10.1f %12.2f", type, who, best_wall * 1e3, best_cpu * 1e3,
           (double)bench_n / best_wall / 1e6);
    if (ref_wall > 0)
        printf(" %8.1fx", ref_wall / best_wall);
    printf("\n");
    return best_wall;
}

int main(void)
{
    const int64_t n = 1 << 20;
    float *src = malloc((size_t)n * sizeof *src);
    void *dst = malloc((size_t)n * 4);
    if (!src || !dst)
        return 1;
    fill_weights(src, n);
    bench_src = src, bench_dst = dst, bench_n = n;
    static const struct {
        tensor_type type;
        quantize_fn ref; // NULL: no variants
    } types[] = {
        {TENSOR_TYPE_Q8_0, NULL},
        {TENSOR_TYPE_Q4_K, tensor_quantize_q4_k_ref},
        {TENSOR_TYPE_Q6_K, tensor_quantize_q6_k_ref},
        {TENSOR_TYPE_Q5_K, tensor_quantize_q5_k_ref},
        {TENSOR_TYPE_Q3_K, tensor_quantize_q3_k_ref},
        {TENSOR_TYPE_Q2_K, tensor_quantize_q2_k_ref},
    };
    printf("1 Mi values, one thread, best of 3; x: speed over _ref\n");
    printf("%-6s %-8s %10s %10s %12s %9s\n", "type", "variant", "wall ms", "CPU ms", "Mvalues/s",
           "vs _ref");
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        const tensor_type_traits *tr = tensor_type_get(types[t].type);
        if (!types[t].ref) {
            time_quantizer(tr->name, "traits", tr->quantize, 0);
            continue;
        }
        double ref_wall = time_quantizer(tr->name, "_ref", types[t].ref, 0);
        bench_type = types[t].type;
        for (int v = 0; v < TENSOR_QUANT_VARIANT_COUNT; v++) {
            bench_variant = (tensor_quant_variant)v;
            if (tensor_quant_variant_available(bench_variant))
                time_quantizer(tr->name, tensor_quant_variant_name(bench_variant), run_variant,
                               ref_wall);
        }
    }
    free(src), free(dst);
    return 0;
}
