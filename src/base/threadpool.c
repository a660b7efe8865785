// SPDX-License-Identifier: MIT
// Compute thread pool; see threadpool.h. A job is n_threads shares that threads claim from
// an atomic counter: the caller publishes the job (a new generation), then claims shares
// like any worker, and waits only for shares that another thread claimed and has not
// finished. A worker that is descheduled when a job starts (the machine is shared) misses
// it instead of holding it back. The caller's wait for shares others are finishing polls
// briefly, then yields the core, then sleeps on a futex, so a descheduled thread can run
// where its waiter was; workers poll for the next job briefly, then sleep on a futex.
#include "base/threadpool.h"

#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/cpu.h"

// How long a worker polls for the next job before sleeping (the gaps between the jobs of
// one forward pass are microseconds; an idle pool must not burn CPU). A worker that wakes
// late costs little: the caller does not wait for it, it joins when it can.
static const double job_spin_seconds = 50e-6;
// How long the caller polls for shares other threads are finishing, then yields the core
// (a share is a few to a few hundred microseconds; past that its thread was descheduled,
// and sleeping lets the kernel run it here).
static const double done_spin_seconds = 20e-6, done_yield_seconds = 50e-6;

// The pool starts parallel (for PROBE_JOBS jobs) and then measures, now and then, whether
// its workers pay, in wall time per job: during a probe of PROBE_JOBS jobs each job runs,
// at random, either in parallel or on the caller alone (solo, the workers left asleep), and
// the mean times of the two kinds are compared. (CPU time would not do: two threads that
// share one memory bus each spend more CPU on their half.) The winner then runs RUN_JOBS
// jobs, four times as many after each verdict that repeats the last one (up to
// 4^MAX_STREAK), then the pool probes again: a machine that becomes busy, or idle, is
// noticed within seconds. Short jobs (a decoding step's) and long ones (a prompt's) pay
// differently, so each length keeps its own verdict; a job is taken to be as long as the
// one before it (a forward pass runs its short or long jobs in a row).
enum {
    PROBE_JOBS = 256,
    RUN_JOBS = 1024,
    MAX_STREAK = 3,
};
// Parallel jobs must be this much faster than solo ones to be chosen.
static const double parallel_margin = 1.1;
// Jobs that took longer than this (wall time) are long.
static const double long_job_seconds = 300e-6;

// One length's verdict: owned by the thread that calls thread_pool_run.
typedef struct pool_adapt {
    unsigned left;  // jobs left in the probe or run
    bool probing;   // a probe, else a run of the winner
    bool solo;      // the run's mode (the last verdict)
    int streak;     // verdicts in a row equal to the last
    unsigned rng;   // xorshift state for the probe's coin
    unsigned n[2];  // the probe's jobs: parallel, solo
    double wall[2]; // ... and their wall seconds
} pool_adapt;

// Field owners: n_threads, workers, fn and ctx are written by the caller of
// thread_pool_run (fn and ctx before the generation is bumped, and not again until every
// claimed share is done); the atomics are shared, each on its own cache line.
struct thread_pool {
    int n_threads;
    pthread_t *workers; // (n_threads - 1)
    thread_pool_fn fn;  // the current job
    void *ctx;
    _Alignas(64) atomic_uint generation; // futex word: bumped once per job
    atomic_int sleepers;                 // workers asleep (or about to be) on generation
    atomic_bool stop;
    _Alignas(64) atomic_int next;  // the current job's next unclaimed share (>= n: none)
    _Alignas(64) atomic_uint done; // futex word: the current job's finished shares
    atomic_int caller_asleep;      // 1 while the caller sleeps on done
    pool_adapt adapt[2];           // short jobs, long jobs (the caller's)
    bool last_long;                // the last job was long (the caller's)
};

typedef struct worker_arg {
    thread_pool *pool;
} worker_arg;

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

// Sleeps while *word == value (or until woken, or spuriously): the caller re-checks.
static void futex_wait(atomic_uint *word, unsigned value)
{
    syscall(SYS_futex, (unsigned *)word, FUTEX_WAIT_PRIVATE, value, NULL, NULL, 0);
}

static void futex_wake(atomic_uint *word, int n)
{
    syscall(SYS_futex, (unsigned *)word, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}

// Waits until the generation differs from seen (or stop); returns the new generation.
static unsigned wait_for_job(thread_pool *pool, unsigned seen)
{
    double deadline = garlic_now() + job_spin_seconds;
    for (int i = 0;; i++) {
        unsigned g = atomic_load_explicit(&pool->generation, memory_order_acquire);
        if (g != seen || atomic_load(&pool->stop))
            return g;
        cpu_relax();
        if ((i & 63) == 63 && garlic_now() > deadline)
            break;
    }
    // Counting ourselves a sleeper before the futex compares the generation pairs with the
    // caller's bump-then-count: either it sees us and wakes us, or the futex sees its bump.
    atomic_fetch_add(&pool->sleepers, 1);
    unsigned g;
    while ((g = atomic_load(&pool->generation)) == seen && !atomic_load(&pool->stop))
        futex_wait(&pool->generation, seen);
    atomic_fetch_sub(&pool->sleepers, 1);
    return g;
}

// Claims and runs shares of the current job until none is left; returns how many it ran.
static int run_shares(thread_pool *pool)
{
    int n = pool->n_threads, ran = 0;
    for (;;) {
        int share = atomic_fetch_add_explicit(&pool->next, 1, memory_order_acq_rel);
        if (share >= n)
            return ran;
        pool->fn(pool->ctx, share, n);
        ran++;
        // The caller sleeps only after announcing it; the last share wakes it.
        if (atomic_fetch_add(&pool->done, 1) + 1 == (unsigned)n &&
            atomic_load(&pool->caller_asleep))
            futex_wake(&pool->done, 1);
    }
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
        run_shares(pool);
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
    // No job yet: every share of "generation 0" is taken.
    atomic_init(&pool->next, INT_MAX / 2);
    for (int i = 0; i < 2; i++)
        pool->adapt[i] = (pool_adapt){.left = PROBE_JOBS, .rng = 2463534242u + (unsigned)i};
    pool->n_threads = 1;
    for (int i = 1; i < n_threads; i++) {
        worker_arg *arg = garlic_malloc(sizeof *arg);
        if (arg)
            *arg = (worker_arg){pool};
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
    atomic_store(&pool->stop, true);
    atomic_fetch_add(&pool->generation, 1);
    futex_wake(&pool->generation, INT_MAX);
    for (int i = 1; i < pool->n_threads; i++)
        pthread_join(pool->workers[i - 1], NULL);
    garlic_free(pool->workers);
    garlic_free(pool);
}

// Waits until every share of the current job is done: polls, then yields, then sleeps.
static void wait_for_shares(thread_pool *pool)
{
    unsigned n = (unsigned)pool->n_threads;
    double start = garlic_now();
    for (int i = 0;; i++) {
        if (atomic_load_explicit(&pool->done, memory_order_acquire) == n)
            return;
        cpu_relax();
        if ((i & 15) != 15)
            continue;
        double waited = garlic_now() - start;
        if (waited > done_spin_seconds + done_yield_seconds)
            break;
        if (waited > done_spin_seconds)
            sched_yield();
    }
    atomic_store(&pool->caller_asleep, 1);
    unsigned d;
    while ((d = atomic_load(&pool->done)) != n)
        futex_wait(&pool->done, d);
    atomic_store(&pool->caller_asleep, 0);
}

// Ends a probe (the verdict: parallel if its jobs were parallel_margin times faster; a
// probe that drew too few of one kind keeps the last verdict) or a run (a probe follows).
static void adapt_next(pool_adapt *a)
{
    if (!a->probing) {
        *a = (pool_adapt){.left = PROBE_JOBS,
                          .probing = true,
                          .solo = a->solo,
                          .streak = a->streak,
                          .rng = a->rng};
        return;
    }
    bool solo = a->solo;
    if (a->n[0] >= PROBE_JOBS / 4 && a->n[1] >= PROBE_JOBS / 4)
        solo = a->wall[0] / a->n[0] * parallel_margin > a->wall[1] / a->n[1];
    a->streak = solo == a->solo && a->streak < MAX_STREAK ? a->streak + 1 : 0;
    a->solo = solo;
    a->probing = false;
    a->left = RUN_JOBS << 2 * a->streak;
}

// The probe's coin: solo or parallel with even odds (xorshift32).
static bool coin(pool_adapt *a)
{
    a->rng ^= a->rng << 13;
    a->rng ^= a->rng >> 17;
    a->rng ^= a->rng << 5;
    return a->rng & 1;
}

// Runs every share of a job on the calling thread.
static void run_solo(thread_pool *pool, thread_pool_fn fn, void *ctx)
{
    for (int i = 0; i < pool->n_threads; i++)
        fn(ctx, i, pool->n_threads);
}

// Runs a job on every thread that arrives in time: the caller publishes it, claims shares
// like the workers, and waits for the shares they claimed.
static void run_parallel(thread_pool *pool, thread_pool_fn fn, void *ctx)
{
    pool->fn = fn;
    pool->ctx = ctx;
    atomic_store_explicit(&pool->done, 0, memory_order_relaxed);
    // Opening the shares publishes fn and ctx to whoever claims one; the generation wakes
    // the workers that wait for it.
    atomic_store_explicit(&pool->next, 0, memory_order_release);
    atomic_fetch_add(&pool->generation, 1);
    if (atomic_load(&pool->sleepers) > 0)
        futex_wake(&pool->generation, INT_MAX);
    run_shares(pool);
    wait_for_shares(pool);
}

void thread_pool_run(thread_pool *pool, thread_pool_fn fn, void *ctx)
{
    if (pool->n_threads == 1) {
        fn(ctx, 0, 1);
        return;
    }
    pool_adapt *a = &pool->adapt[pool->last_long];
    if (a->left == 0)
        adapt_next(a);
    a->left--;
    bool solo = a->probing ? coin(a) : a->solo;
    double start = garlic_now();
    if (solo)
        run_solo(pool, fn, ctx);
    else
        run_parallel(pool, fn, ctx);
    double wall = garlic_now() - start;
    if (a->probing)
        a->n[solo]++, a->wall[solo] += wall;
    pool->last_long = wall > long_job_seconds;
}

int thread_pool_size(const thread_pool *pool) { return pool->n_threads; }

int thread_pool_default_threads(void) { return cpu_threads_available(); }
