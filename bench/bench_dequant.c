// SPDX-License-Identifier: MIT
// Dequantization throughput per weight type: quantizes 16 Mi random values once, then times
// dequantizing them (best of 5 runs). Reported, never asserted. Later kernels replace the
// scalar paths measured here; this is the baseline.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tensor/types.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(void)
{
    const int64_t n = 16 << 20;
    float *src = malloc((size_t)n * sizeof *src), *dst = malloc((size_t)n * sizeof *dst);
    uint8_t *packed = malloc((size_t)n * 4);
    if (!src || !dst || !packed)
        return 1;
    uint64_t s = 1;
    for (int64_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        src[i] = (float)((int64_t)(s >> 40) - (1 << 23)) / (float)(1 << 23);
    }
    printf("%-8s %8s %12s %10s\n", "type", "bits/w", "Mvalues/s", "GB/s in");
    for (uint32_t t = 0; t < TENSOR_TYPE_COUNT; t++) {
        const tensor_type_traits *tr = tensor_type_get(t);
        if (!tr || !tr->dequantize || !tr->quantize)
            continue;
        if (t == TENSOR_TYPE_F32)
            memcpy(packed, src, (size_t)n * 4);
        else
            tr->quantize(src, packed, n);
        double best = 1e9;
        for (int r = 0; r < 5; r++) {
            double t0 = now();
            tr->dequantize(packed, dst, n);
            double dt = now() - t0;
            best = dt < best ? dt : best;
        }
        double bytes = (double)n / tr->block_size * tr->type_size;
        printf("%-8s %8.3f %12.1f %10.2f\n", tr->name, 8.0 * bytes / (double)n,
               (double)n / best / 1e6, bytes / best / 1e9);
    }
    free(src), free(dst), free(packed);
    return 0;
}
