// SPDX-License-Identifier: MIT
// Compute thread pool; see threadpool.h. A job is published by bumping a generation
// counter; workers wait for a new generation (polling for a short while, then sleeping on
// the condition variable), run the job, and count down `pending`. The caller runs its own
// share and then waits for `pending` to reach zero the same way.
#include "base/threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/cpu.h"

// How long a worker polls for the next job before sleeping (the gaps between the jobs of
// one forward pass are microseconds; an idle pool must not burn CPU).
static const double spin_seconds = 200e-6;

struct thread_pool {
    int n_threads;
    pthread_t *workers; // (n_threads - 1)
    pthread_mutex_t mutex;
    pthread_cond_t wake;                 // workers wait here for a new generation
    pthread_cond_t done;                 // the caller waits here for pending == 0
    _Alignas(64) atomic_uint generation; // bumped once per job
    _Alignas(64) atomic_int pending;     // workers still running the current job
    atomic_bool stop;
    thread_pool_fn fn; // the current job (written before generation is bumped)
    void *ctx;
};

typedef struct worker_arg {
    thread_pool *pool;
    int ith;
} worker_arg;

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

// Waits until the generation differs from seen (or stop); returns the new generation.
static unsigned wait_for_job(thread_pool *pool, unsigned seen)
{
    double deadline = garlic_now() + spin_seconds;
    for (int i = 0;; i++) {
        unsigned g = atomic_load_explicit(&pool->generation, memory_order_acquire);
        if (g != seen || atomic_load(&pool->stop))
            return g;
        cpu_relax();
        if ((i & 63) == 63 && garlic_now() > deadline)
            break;
    }
    pthread_mutex_lock(&pool->mutex);
    unsigned g;
    while ((g = atomic_load(&pool->generation)) == seen && !atomic_load(&pool->stop))
        pthread_cond_wait(&pool->wake, &pool->mutex);
    pthread_mutex_unlock(&pool->mutex);
    return g;
}

static void *worker_main(void *p)
{
    worker_arg arg = *(worker_arg *)p;
    garlic_free(p);
    thread_pool *pool = arg.pool;
    unsigned seen = 0;
    for (;;) {
        seen = wait_for_job(pool, seen);
        if (atomic_load(&pool->stop))
            return NULL;
        pool->fn(pool->ctx, arg.ith, pool->n_threads);
        if (atomic_fetch_sub_explicit(&pool->pending, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&pool->mutex);
            pthread_cond_signal(&pool->done);
            pthread_mutex_unlock(&pool->mutex);
        }
    }
}

thread_pool *thread_pool_new(int n_threads, garlic_error *err)
{
    if (n_threads < 1 || n_threads > 1024) {
        garlic_error_set(err, GARLIC_EINVAL, "threads: %d is not between 1 and 1024", n_threads);
        return NULL;
    }
    thread_pool *pool = garlic_calloc(1, sizeof *pool);
    if (pool)
        pool->workers = garlic_calloc((size_t)n_threads, sizeof *pool->workers);
    if (!pool || !pool->workers) {
        garlic_free(pool);
        garlic_error_set(err, GARLIC_ENOMEM, "thread pool: out of memory");
        return NULL;
    }
    pthread_mutex_init(&pool->mutex, NULL);
    pthread_cond_init(&pool->wake, NULL);
    pthread_cond_init(&pool->done, NULL);
    pool->n_threads = 1;
    for (int i = 1; i < n_threads; i++) {
        worker_arg *arg = garlic_malloc(sizeof *arg);
        if (arg)
            *arg = (worker_arg){pool, i};
        int rc = arg ? pthread_create(&pool->workers[i - 1], NULL, worker_main, arg) : -1;
        if (rc != 0) {
            garlic_free(arg);
            thread_pool_free(pool);
            garlic_error_set(err, GARLIC_ENOMEM, "thread pool: cannot start thread %d of %d", i,
                             n_threads);
            return NULL;
        }
        pool->n_threads = i + 1;
    }
    return pool;
}

void thread_pool_free(thread_pool *pool)
{
    if (!pool)
        return;
    pthread_mutex_lock(&pool->mutex);
    atomic_store(&pool->stop, true);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->mutex);
    for (int i = 1; i < pool->n_threads; i++)
        pthread_join(pool->workers[i - 1], NULL);
    pthread_mutex_destroy(&pool->mutex);
    pthread_cond_destroy(&pool->wake);
    pthread_cond_destroy(&pool->done);
    garlic_free(pool->workers);
    garlic_free(pool);
}

void thread_pool_run(thread_pool *pool, thread_pool_fn fn, void *ctx)
{
    if (pool->n_threads == 1) {
        fn(ctx, 0, 1);
        return;
    }
    pool->fn = fn;
    pool->ctx = ctx;
    atomic_store_explicit(&pool->pending, pool->n_threads - 1, memory_order_relaxed);
    // Publishing under the mutex pairs with the sleepers' check-then-wait.
    pthread_mutex_lock(&pool->mutex);
    atomic_fetch_add_explicit(&pool->generation, 1, memory_order_release);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->mutex);
    fn(ctx, 0, pool->n_threads);
    double deadline = garlic_now() + spin_seconds;
    for (int i = 0; atomic_load_explicit(&pool->pending, memory_order_acquire) > 0; i++) {
        cpu_relax();
        if ((i & 63) == 63 && garlic_now() > deadline)
            break;
    }
    pthread_mutex_lock(&pool->mutex);
    while (atomic_load_explicit(&pool->pending, memory_order_acquire) > 0)
        pthread_cond_wait(&pool->done, &pool->mutex);
    pthread_mutex_unlock(&pool->mutex);
}

int thread_pool_size(const thread_pool *pool) { return pool->n_threads; }

int thread_pool_default_threads(void) { return cpu_threads_available(); }
