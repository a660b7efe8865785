// SPDX-License-Identifier: MIT
// Quantization speed per weight type on one thread: 1 Mi values shaped like weights (a
// bell curve per row of 4096, each row its own spread, a few outliers) quantized by the
// traits table's quantizer, best of 3 runs, reported as wall and CPU time per run and
// Mvalues/s. Reported, never asserted; quote `uptime`'s load with the figures.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

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

int main(void)
{
    const int64_t n = 1 << 20;
    float *src = malloc((size_t)n * sizeof *src);
    void *dst = malloc((size_t)n * 4);
    if (!src || !dst)
        return 1;
    fill_weights(src, n);
    static const tensor_type types[] = {TENSOR_TYPE_Q8_0, TENSOR_TYPE_Q4_K, TENSOR_TYPE_Q6_K,
                                        TENSOR_TYPE_Q5_K, TENSOR_TYPE_Q3_K, TENSOR_TYPE_Q2_K};
    printf("%-8s %10s %10s %12s\n", "type", "wall ms", "CPU ms", "Mvalues/s");
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        const tensor_type_traits *tr = tensor_type_get(types[t]);
        double best_wall = 1e9, best_cpu = 1e9;
        for (int r = 0; r < 3; r++) {
            double w0 = seconds(CLOCK_MONOTONIC), c0 = seconds(CLOCK_PROCESS_CPUTIME_ID);
            tr->quantize(src, dst, n);
            double wall = seconds(CLOCK_MONOTONIC) - w0;
            double cpu = seconds(CLOCK_PROCESS_CPUTIME_ID) - c0;
            best_wall = wall < best_wall ? wall : best_wall;
            best_cpu = cpu < best_cpu ? cpu : best_cpu;
        }
        printf("%-8s %10.1f %10.1f %12.2f\n", tr->name, best_wall * 1e3, best_cpu * 1e3,
               (double)n / best_wall / 1e6);
    }
    free(src), free(dst);
    return 0;
}
