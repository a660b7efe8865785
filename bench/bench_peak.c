// SPDX-License-Identifier: MIT
// Compute peaks: threads (BENCH_THREADS, default 2) each run independent chains of float
// multiply-adds (512-bit where the CPU has AVX-512, else 256-bit) and of int8 dot products
// (vpdpbusd, AVX-512 VNNI only) with nothing else in the loop; best of 5 passes. Prompt
// processing of F16 weights is float multiply-adds (an F16 x F16 product is exact in float,
// and nothing narrower keeps it exact), so the float peak bounds it: bench/run.sh divides by
// it. Reported, never asserted.
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

enum { MAX_THREADS = 64, CHAINS = 12, ITERS = 20000000 };

typedef struct job {
    int kind; // 0: avx512 fma, 1: avx2 fma, 2: avx512 vnni
    float sink;
} job;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

#if defined(__x86_64__)
__attribute__((target("avx512f"))) static float fma512(void)
{
    __m512 acc[CHAINS], x = _mm512_set1_ps(0.999999f), y = _mm512_set1_ps(1e-7f);
    for (int c = 0; c < CHAINS; c++)
        acc[c] = _mm512_set1_ps((float)c);
    for (int i = 0; i < ITERS; i++)
#pragma GCC unroll 16
        for (int c = 0; c < CHAINS; c++)
            acc[c] = _mm512_fmadd_ps(acc[c], x, y);
    float s = 0;
    for (int c = 0; c < CHAINS; c++)
        s += _mm512_reduce_add_ps(acc[c]);
    return s;
}

__attribute__((target("avx2,fma"))) static float fma256(void)
{
    __m256 acc[CHAINS], x = _mm256_set1_ps(0.999999f), y = _mm256_set1_ps(1e-7f);
    for (int c = 0; c < CHAINS; c++)
        acc[c] = _mm256_set1_ps((float)c);
    for (int i = 0; i < ITERS; i++)
#pragma GCC unroll 16
        for (int c = 0; c < CHAINS; c++)
            acc[c] = _mm256_fmadd_ps(acc[c], x, y);
    float out[8], s = 0;
    for (int c = 0; c < CHAINS; c++) {
        _mm256_storeu_ps(out, acc[c]);
        for (int k = 0; k < 8; k++)
            s += out[k];
    }
    return s;
}

__attribute__((target("avx512f,avx512vnni"))) static float vnni512(void)
{
    __m512i acc[CHAINS], x = _mm512_set1_epi8(3), y = _mm512_set1_epi8(-2);
    for (int c = 0; c < CHAINS; c++)
        acc[c] = _mm512_set1_epi32(c);
    for (int i = 0; i < ITERS; i++)
#pragma GCC unroll 16
        for (int c = 0; c < CHAINS; c++)
            acc[c] = _mm512_dpbusd_epi32(acc[c], x, y);
    int64_t s = 0;
    for (int c = 0; c < CHAINS; c++)
        s += _mm512_reduce_add_epi32(acc[c]);
    return (float)s;
}
#endif

static void *run(void *arg)
{
    job *j = arg;
#if defined(__x86_64__)
    j->sink = j->kind == 0 ? fma512() : j->kind == 1 ? fma256() : vnni512();
#endif
    return NULL;
}

// Operations a second over all threads for one kind (ops per instruction and lane given).
static double measure(int kind, int threads, double ops_per_instr)
{
    double best = 1e30;
    for (int pass = 0; pass < 5; pass++) {
        pthread_t tid[MAX_THREADS];
        job jobs[MAX_THREADS];
        double t0 = now();
        for (int t = 0; t < threads; t++) {
            jobs[t] = (job){.kind = kind};
            pthread_create(&tid[t], NULL, run, &jobs[t]);
        }
        for (int t = 0; t < threads; t++)
            pthread_join(tid[t], NULL);
        double dt = now() - t0;
        best = dt < best ? dt : best;
    }
    return (double)threads * ITERS * CHAINS * ops_per_instr / best;
}

int main(void)
{
    const char *env = getenv("BENCH_THREADS");
    int threads = env ? atoi(env) : 2;
    threads = threads < 1 ? 1 : threads > MAX_THREADS ? MAX_THREADS : threads;
#if defined(__x86_64__)
    if (__builtin_cpu_supports("avx512f")) {
        printf("float peak: %.1f GFLOP/s with %d threads (512-bit multiply-adds)\n",
               measure(0, threads, 32) / 1e9, threads);
        if (__builtin_cpu_supports("avx512vnni"))
            printf("int8 peak: %.1f GOP/s with %d threads (512-bit vpdpbusd)\n",
                   measure(2, threads, 128) / 1e9, threads);
        return 0;
    }
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        printf("float peak: %.1f GFLOP/s with %d threads (256-bit multiply-adds)\n",
               measure(1, threads, 16) / 1e9, threads);
        return 0;
    }
#endif
    printf("float peak: not measured on this CPU\n");
    return 0;
}
