// SPDX-License-Identifier: MIT
// The compute pool: every thread runs each job exactly once, many short jobs in a row work
// (the forward-pass pattern), and an idle pool sleeps instead of spinning.
#include <stdatomic.h>
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

static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

// After a burst of jobs the workers must go to sleep: over 300 ms of idleness the whole
// process may use only a few milliseconds of CPU (polling lasts 0.2 ms per worker).
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
        cmocka_unit_test(test_idle_pool_sleeps),
    };
    return cmocka_run_group_tests_name("threadpool", tests, NULL, NULL);
}
