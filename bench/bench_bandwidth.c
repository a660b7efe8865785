// SPDX-License-Identifier: MIT
// Memory read bandwidth: threads (BENCH_THREADS, default 2) each sum their slice of a 1 GiB
// buffer with 256-bit loads, best of 5 passes, on transparent huge pages where the kernel
// gives them (as garlic's packed weights are). This is the bound single-stream decoding can
// reach (every weight is read once per token); bench/run.sh divides bytes read per token
// by it to print the fraction garlic achieves. Reported, never asserted.
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

enum { MAX_THREADS = 64 };

typedef struct slice {
    const uint8_t *p;
    size_t n;
    uint64_t sum;
} slice;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

#if defined(__x86_64__)
__attribute__((target("avx2"))) static uint64_t sum_avx2(const uint8_t *p, size_t n)
{
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i + 128 <= n; i += 128) {
        a0 = _mm256_add_epi64(a0, _mm256_load_si256((const __m256i *)(p + i)));
        a1 = _mm256_add_epi64(a1, _mm256_load_si256((const __m256i *)(p + i + 32)));
        a2 = _mm256_add_epi64(a2, _mm256_load_si256((const __m256i *)(p + i + 64)));
        a3 = _mm256_add_epi64(a3, _mm256_load_si256((const __m256i *)(p + i + 96)));
    }
    __m256i s = _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3));
    uint64_t out[4];
    _mm256_storeu_si256((__m256i *)out, s);
    return out[0] + out[1] + out[2] + out[3];
}
#endif

static uint64_t sum_plain(const uint8_t *p, size_t n)
{
    const uint64_t *q = (const uint64_t *)p;
    uint64_t s0 = 0, s1 = 0;
    for (size_t i = 0; i + 2 <= n / 8; i += 2)
        s0 += q[i], s1 += q[i + 1];
    return s0 + s1;
}

static void *run(void *arg)
{
    slice *s = arg;
#if defined(__x86_64__)
    if (__builtin_cpu_supports("avx2")) {
        s->sum = sum_avx2(s->p, s->n);
        return NULL;
    }
#endif
    s->sum = sum_plain(s->p, s->n);
    return NULL;
}

int main(void)
{
    const char *env = getenv("BENCH_THREADS");
    int threads = env ? atoi(env) : 2;
    threads = threads < 1 ? 1 : threads > MAX_THREADS ? MAX_THREADS : threads;
    size_t size = (size_t)1 << 30;
    uint8_t *buf = aligned_alloc(4096, size);
    if (!buf) {
        printf("bandwidth: cannot allocate 1 GiB, skipped\n");
        return 0;
    }
    madvise(buf, size, MADV_HUGEPAGE); // a hint: 4 KiB pages where it is refused
    memset(buf, 1, size);
    double best = 1e30;
    uint64_t check = 0;
    for (int pass = 0; pass < 5; pass++) {
        pthread_t tid[MAX_THREADS];
        slice sl[MAX_THREADS];
        size_t per = size / (size_t)threads / 128 * 128;
        double t0 = now();
        for (int t = 0; t < threads; t++) {
            sl[t] = (slice){.p = buf + (size_t)t * per, .n = per};
            pthread_create(&tid[t], NULL, run, &sl[t]);
        }
        for (int t = 0; t < threads; t++) {
            pthread_join(tid[t], NULL);
            check += sl[t].sum;
        }
        double dt = now() - t0;
        best = dt < best ? dt : best;
    }
    size_t read = size / (size_t)threads / 128 * 128 * (size_t)threads;
    printf("read bandwidth: %.2f GB/s with %d threads (1 GiB, best of 5; checksum %llu)\n",
           (double)read / best / 1e9, threads, (unsigned long long)(check & 0xff));
    free(buf);
    return 0;
}
