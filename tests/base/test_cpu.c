// SPDX-License-Identifier: MIT
// The cores available to the process: cgroup quota files (v2 cpu.max, v1 cfs quota and
// period) parsed or refused with a message naming the file, and the default thread count
// taken from affinity, physical cores and quota.
#include <math.h>
#include <sched.h>
#include <string.h>

#include "base/cpu.h"
#include "base/threadpool.h"
#include "util.h"

static void test_cpu_max(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        double cpus; // 0: no limit
    } good[] = {
        {"max 100000", 0},     {"max 100000\n", 0}, {"200000 100000", 2},  {"150000 100000\n", 1.5},
        {"50000 100000", 0.5}, {"100000 50000", 2}, {"1000 100000", 0.01}, {"400000 100000\n", 4},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        garlic_error err = {0};
        double cpus = -1;
        assert_int_equal(cpu_quota_parse_max(good[i].text, &cpus, &err), GARLIC_OK);
        assert_true(fabs(cpus - good[i].cpus) < 1e-9);
    }
    static const char *bad[] = {"",
                                "max",
                                "100000",
                                "max 0",
                                "0 100000",
                                "-1 100000",
                                "max -5",
                                "1.5 100000",
                                "max  ",
                                "200000 10x",
                                "maximum 100000",
                                "200000 100000 7",
                                "200000,100000"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        garlic_error err = {0};
        double cpus = -1;
        assert_int_equal(cpu_quota_parse_max(bad[i], &cpus, &err), GARLIC_EFORMAT);
        assert_non_null(strstr(err.message, "cpu.max"));
        assert_true(cpus == -1);
    }
}

static void test_cfs_quota(void **state)
{
    (void)state;
    garlic_error err = {0};
    double cpus = -1;
    assert_int_equal(cpu_quota_parse_cfs("-1\n", "100000\n", &cpus, &err), GARLIC_OK);
    assert_true(cpus == 0);
    assert_int_equal(cpu_quota_parse_cfs("250000\n", "100000\n", &cpus, &err), GARLIC_OK);
    assert_true(fabs(cpus - 2.5) < 1e-9);
    assert_int_equal(cpu_quota_parse_cfs("abc", "100000", &cpus, &err), GARLIC_EFORMAT);
    assert_non_null(strstr(err.message, "cpu.cfs_quota_us"));
    assert_int_equal(cpu_quota_parse_cfs("50000", "0", &cpus, &err), GARLIC_EFORMAT);
    assert_non_null(strstr(err.message, "cpu.cfs_period_us"));
    assert_int_equal(cpu_quota_parse_cfs("-1", "", &cpus, &err), GARLIC_EFORMAT);
}

static void test_threads_from(void **state)
{
    (void)state;
    assert_int_equal(cpu_threads_from(8, 4, 0), 4);   // hyper-threads counted once
    assert_int_equal(cpu_threads_from(8, 0, 0), 8);   // topology unknown
    assert_int_equal(cpu_threads_from(8, 4, 1.5), 2); // 1.5 CPUs: two threads, half the time
    assert_int_equal(cpu_threads_from(8, 8, 3), 3);
    assert_int_equal(cpu_threads_from(2, 2, 16), 2); // a quota above the cores
    assert_int_equal(cpu_threads_from(2, 2, 0.2), 1);
    assert_int_equal(cpu_threads_from(0, 0, 0), 1);
    assert_int_equal(cpu_threads_from(1, 8, 0), 1); // affinity narrower than the cores
}

// On this machine: never more threads than the CPUs the process may run on.
static void test_threads_available(void **state)
{
    (void)state;
    cpu_set_t set;
    assert_int_equal(sched_getaffinity(0, sizeof set, &set), 0);
    int n = cpu_threads_available();
    print_message("default threads here: %d (affinity %d CPUs)\n", n, CPU_COUNT(&set));
    assert_true(n >= 1 && n <= CPU_COUNT(&set));
    assert_int_equal(thread_pool_default_threads(), n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cpu_max),
        cmocka_unit_test(test_cfs_quota),
        cmocka_unit_test(test_threads_from),
        cmocka_unit_test(test_threads_available),
    };
    return cmocka_run_group_tests_name("cpu", tests, NULL, NULL);
}
