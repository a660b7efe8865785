// SPDX-License-Identifier: MIT
// The compute pool: every share of a job runs exactly once, many short jobs in a row work
// (the forward-pass pattern), a worker that cannot run (held in a signal handler, as a
// descheduled thread is held by the kernel) does not hold jobs back, and an idle pool
// sleeps instead of spinning.
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/threadpool.h"
#include "util.h"

typedef struct job {
    atomic_int calls[8];
    atomic_long sum;
    atomic_int nth_wrong; // calls that saw an nth other than the pool size
    int expected_nth;
} job;

static void count(void *ctx, int ith, int nth)
{
    job *j = ctx;
    atomic_fetch_add(&j->calls[ith], 1);
    atomic_fetch_add(&j->sum, ith + 1);
    if (nth != j->expected_nth)
        atomic_fetch_add(&j->nth_wrong, 1);
}

static void test_each_thread_once(void **state)
{
    (void)state;
    for (int n = 1; n <= 4; n++) {
        garlic_error err;
        thread_pool *pool = thread_pool_new(n, &err);
        assert_non_null(pool);
        assert_int_equal(thread_pool_size(pool), n);
        job j;
        memset(&j, 0, sizeof j);
        j.expected_nth = n;
        for (int r = 0; r < 2000; r++)
            thread_pool_run(pool, count, &j);
        for (int i = 0; i < n; i++)
            assert_int_equal(atomic_load(&j.calls[i]), 2000);
        assert_int_equal(atomic_load(&j.sum), 2000L * n * (n + 1) / 2);
        assert_int_equal(atomic_load(&j.nth_wrong), 0);
        thread_pool_free(pool);
    }
    thread_pool_free(NULL);
    garlic_error err;
    assert_null(thread_pool_new(0, &err));
    assert_true(thread_pool_default_threads() >= 1);
}

// A worker held in this handler cannot claim shares until `release`.
static atomic_bool held, release;

static void hold(int sig)
{
    (void)sig;
    atomic_store(&held, true);
    struct timespec ms = {0, 1000 * 1000};
    while (!atomic_load(&release))
        nanosleep(&ms, NULL);
}

typedef struct run_arg {
    thread_pool *pool;
    job *j;
    int jobs;
    atomic_bool finished;
} run_arg;

static void *run_jobs(void *p)
{
    run_arg *a = p;
    for (int r = 0; r < a->jobs; r++)
        thread_pool_run(a->pool, count, a->j);
    atomic_store(&a->finished, true);
    return NULL;
}

// Waits up to seconds for a->finished.
static bool finished_within(run_arg *a, double seconds)
{
    struct timespec ms = {0, 1000 * 1000};
    for (int i = 0; i < seconds * 1000 && !atomic_load(&a->finished); i++)
        nanosleep(&ms, NULL);
    return atomic_load(&a->finished);
}

// The only worker of a pool of 2 is held (SIGUSR1 is blocked everywhere else): 3,000 jobs
// still finish, the caller running both shares of each, every share exactly once. Then the
// worker is let go and the pool goes on (back to parallel after its solo windows).
static void test_held_worker(void **state)
{
    (void)state;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = hold;
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGUSR1, &sa, NULL), 0);
    thread_pool *pool = thread_pool_new(2, NULL); // the worker inherits SIGUSR1 unblocked
    assert_non_null(pool);
    sigset_t usr1, old;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    assert_int_equal(pthread_sigmask(SIG_BLOCK, &usr1, &old), 0);
    job j;
    memset(&j, 0, sizeof j);
    j.expected_nth = 2;
    for (int r = 0; r < 100; r++)
        thread_pool_run(pool, count, &j);
    atomic_store(&held, false);
    atomic_store(&release, false);
    kill(getpid(), SIGUSR1); // only the worker can take it
    struct timespec ms = {0, 1000 * 1000};
    for (int i = 0; i < 2000 && !atomic_load(&held); i++)
        nanosleep(&ms, NULL);
    assert_true(atomic_load(&held));
    // Run from another thread (it inherits the blocked mask) so that a pool that waits for
    // the held worker fails the test instead of hanging it.
    run_arg a = {.pool = pool, .j = &j, .jobs = 3000};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, run_jobs, &a), 0);
    bool done = finished_within(&a, 10);
    atomic_store(&release, true);
    assert_true(done);
    pthread_join(t, NULL);
    run_arg b = {.pool = pool, .j = &j, .jobs = 20000};
    run_jobs(&b);
    for (int i = 0; i < 2; i++)
        assert_int_equal(atomic_load(&j.calls[i]), 100 + 3000 + 20000);
    assert_int_equal(atomic_load(&j.nth_wrong), 0);
    thread_pool_free(pool);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

typedef struct timed_job {
    pthread_t caller;
    long sleep_us_worker, sleep_us_caller; // a share's time on a worker, on the caller
    atomic_int worker_shares;
} timed_job;

static void timed(void *ctx, int ith, int nth)
{
    (void)ith, (void)nth;
    timed_job *j = ctx;
    bool on_caller = pthread_equal(pthread_self(), j->caller);
    if (!on_caller)
        atomic_fetch_add(&j->worker_shares, 1);
    long us = on_caller ? j->sleep_us_caller : j->sleep_us_worker;
    struct timespec ts = {0, us * 1000};
    if (us > 0)
        nanosleep(&ts, NULL);
}

// Worker shares in `jobs` jobs after `warm` jobs of j.
static int worker_shares_after(thread_pool *pool, timed_job *j, int warm, int jobs)
{
    for (int r = 0; r < warm; r++)
        thread_pool_run(pool, timed, j);
    atomic_store(&j->worker_shares, 0);
    for (int r = 0; r < jobs; r++)
        thread_pool_run(pool, timed, j);
    return atomic_load(&j->worker_shares);
}

// The pool learns whether its workers pay. Shares that take 200 us on a worker and nothing
// on the caller (a worker that keeps being descheduled): after the first run and probe,
// jobs run on the caller alone. Shares that take 400 us wherever they run (work that does
// not need a free core): the workers keep taking their part.
static void test_workers_pay_or_not(void **state)
{
    (void)state;
    thread_pool *pool = thread_pool_new(2, NULL);
    timed_job slow = {.caller = pthread_self(), .sleep_us_worker = 200};
    assert_int_equal(worker_shares_after(pool, &slow, 2560, 1000), 0);
    thread_pool_free(pool);
    pool = thread_pool_new(2, NULL);
    timed_job even = {.caller = pthread_self(), .sleep_us_worker = 400, .sleep_us_caller = 400};
    int shares = worker_shares_after(pool, &even, 1500, 200);
    print_message("workers took %d of 200 jobs' second shares\n", shares);
    assert_true(shares > 100);
    thread_pool_free(pool);
}

static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

// After a burst of jobs the workers must go to sleep: over 300 ms of idleness the whole
// process may use only a few milliseconds of CPU (polling lasts 50 µs per worker).
static void test_idle_pool_sleeps(void **state)
{
    (void)state;
    thread_pool *pool = thread_pool_new(4, NULL);
    job j;
    memset(&j, 0, sizeof j);
    j.expected_nth = 4;
    for (int r = 0; r < 100; r++)
        thread_pool_run(pool, count, &j);
    usleep(20 * 1000);
    double before = cpu_seconds();
    usleep(300 * 1000);
    double used = cpu_seconds() - before;
    print_message("idle pool used %.2f ms of CPU in 300 ms\n", used * 1e3);
    assert_true(used < 0.03);
    thread_pool_free(pool);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_thread_once),
        cmocka_unit_test(test_held_worker),
        cmocka_unit_test(test_workers_pay_or_not),
        cmocka_unit_test(test_idle_pool_sleeps),
    };
    return cmocka_run_group_tests_name("threadpool", tests, NULL, NULL);
}
