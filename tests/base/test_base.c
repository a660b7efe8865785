// SPDX-License-Identifier: MIT
// The small helpers every module shares: the growable buffer and array growth (including
// failed allocations, which leave the old contents), whole-file reads with their limits and
// errors, monotonic deadlines, and a name for every error code.
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/buffer.h"
#include "base/clock.h"
#include "base/error.h"
#include "base/file.h"
#include "base/log.h"
#include "base/utf8.h"
#include "util.h"

static void test_buffer_appends(void **state)
{
    (void)state;
    garlic_buf b = {0};
    assert_null(b.data);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(garlic_buf_printf(&b, "%d,", i), GARLIC_OK);
    assert_int_equal(b.len, strlen(b.data));
    assert_memory_equal(b.data, "0,1,2,", 6);
    assert_string_equal(b.data + b.len - 4, "999,");
    assert_true(b.cap > b.len);
    garlic_buf_clear(&b);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.data, "");
    assert_int_equal(garlic_buf_append(&b, "a\0b", 3), GARLIC_OK);
    assert_int_equal(b.len, 3);
    assert_int_equal(garlic_buf_append_str(&b, "cd"), GARLIC_OK);
    assert_memory_equal(b.data, "a\0bcd", 6);
    char *taken = garlic_buf_take(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_memory_equal(taken, "a\0bcd", 6);
    garlic_free(taken);
    taken = garlic_buf_take(&b); // empty: a fresh ""
    assert_string_equal(taken, "");
    garlic_free(taken);
    garlic_buf_deinit(&b);
}

// Each failed allocation leaves the buffer as it was; retrying later works.
static void test_buffer_out_of_memory(void **state)
{
    (void)state;
    garlic_buf b = {0};
    assert_int_equal(garlic_buf_append_str(&b, "kept"), GARLIC_OK);
    size_t cap = b.cap;
    char big[100];
    memset(big, 'x', sizeof big);
    garlic_alloc_fail_after(0);
    assert_int_equal(garlic_buf_append(&b, big, sizeof big), GARLIC_ENOMEM);
    assert_int_equal(garlic_buf_printf(&b, "%.*s", 100, big), GARLIC_ENOMEM);
    garlic_alloc_fail_reset();
    assert_int_equal(b.cap, cap);
    assert_string_equal(b.data, "kept");
    assert_int_equal(garlic_buf_append(&b, big, sizeof big), GARLIC_OK);
    assert_int_equal(b.len, 104);
    garlic_buf_deinit(&b);
}

static void test_grow(void **state)
{
    (void)state;
    int *items = NULL;
    size_t cap = 0;
    assert_int_equal(garlic_grow(&items, &cap, 1, sizeof *items), GARLIC_OK);
    assert_int_equal(cap, 16);
    for (int i = 0; i < 16; i++)
        items[i] = i;
    assert_int_equal(garlic_grow(&items, &cap, 16, sizeof *items), GARLIC_OK);
    assert_int_equal(cap, 16); // already enough: unchanged
    assert_int_equal(garlic_grow(&items, &cap, 17, sizeof *items), GARLIC_OK);
    assert_int_equal(cap, 32);
    assert_int_equal(garlic_grow(&items, &cap, 1000, sizeof *items), GARLIC_OK);
    assert_int_equal(cap, 1024);
    for (int i = 0; i < 16; i++)
        assert_int_equal(items[i], i);
    // Sizes that overflow fail without touching the array.
    assert_int_equal(garlic_grow(&items, &cap, SIZE_MAX / 2, sizeof *items), GARLIC_ENOMEM);
    assert_int_equal(garlic_grow(&items, &cap, SIZE_MAX, 1), GARLIC_ENOMEM);
    assert_int_equal(cap, 1024);
    garlic_alloc_fail_after(0);
    assert_int_equal(garlic_grow(&items, &cap, 2000, sizeof *items), GARLIC_ENOMEM);
    garlic_alloc_fail_reset();
    assert_int_equal(cap, 1024);
    assert_int_equal(items[15], 15);
    garlic_free(items);
}

static void test_file_read(void **state)
{
    (void)state;
    const char *path = test_temp_path("whole.txt");
    char text[200000];
    for (size_t i = 0; i < sizeof text; i++)
        text[i] = (char)('a' + i % 26);
    assert_int_equal(test_write_file(path, text, sizeof text), 0);
    char *data = NULL;
    size_t len = 0;
    garlic_error err = {0};
    assert_int_equal(garlic_file_read(path, sizeof text, &data, &len, &err), GARLIC_OK);
    assert_int_equal(len, sizeof text);
    assert_memory_equal(data, text, sizeof text);
    assert_int_equal(data[len], '\0');
    garlic_free(data);

    // Over the limit: refused by name.
    assert_int_equal(garlic_file_read(path, sizeof text - 1, &data, &len, &err), GARLIC_EINVAL);
    assert_non_null(strstr(err.message, "whole.txt"));
    // Missing, and a directory: an I/O error naming the path and the reason.
    assert_int_equal(garlic_file_read(test_temp_path("absent"), 10, &data, NULL, &err), GARLIC_EIO);
    assert_non_null(strstr(err.message, "absent: No such file"));
    assert_int_equal(garlic_file_read("/", 10, &data, NULL, &err), GARLIC_EIO);
    assert_non_null(strstr(err.message, "/: Is a directory"));

    // Empty file: "" and length 0.
    const char *empty = test_temp_path("empty.txt");
    assert_int_equal(test_write_file(empty, "", 0), 0);
    assert_int_equal(garlic_file_read(empty, 10, &data, &len, &err), GARLIC_OK);
    assert_int_equal(len, 0);
    assert_string_equal(data, "");
    garlic_free(data);

    // Every allocation failing in turn: a clean error, no leak (ASan checks).
    for (long n = 0; n < 8; n++) {
        garlic_alloc_fail_after(n);
        data = NULL;
        int rc = garlic_file_read(path, sizeof text, &data, &len, &err);
        garlic_alloc_fail_reset();
        if (rc == GARLIC_OK) {
            assert_int_equal(len, sizeof text);
            garlic_free(data);
            break;
        }
        assert_int_equal(rc, GARLIC_ENOMEM);
        assert_null(data);
    }
}

static void test_deadline(void **state)
{
    (void)state;
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t cv;
    assert_int_equal(garlic_cond_init(&cv), 0);
    pthread_mutex_lock(&mu);
    double t0 = garlic_now();
    assert_int_equal(garlic_cond_wait_for(&cv, &mu, 0.05), ETIMEDOUT);
    double waited = garlic_now() - t0;
    assert_true(waited >= 0.049);
    assert_int_equal(garlic_cond_wait_for(&cv, &mu, -1), ETIMEDOUT); // past: at once
    pthread_mutex_unlock(&mu);
    pthread_cond_destroy(&cv);

    struct timespec a = garlic_deadline(1.75), b;
    clock_gettime(CLOCK_MONOTONIC, &b);
    double diff = (double)(a.tv_sec - b.tv_sec) + (double)(a.tv_nsec - b.tv_nsec) * 1e-9;
    assert_true(diff > 1.7 && diff <= 1.75);
    assert_true(a.tv_nsec >= 0 && a.tv_nsec < 1000000000L);
    a = garlic_deadline(1e300); // no overflow
    assert_true(a.tv_sec > b.tv_sec);
}

static void test_error_names(void **state)
{
    (void)state;
    for (int c = 0; c < GARLIC_ERROR_COUNT; c++)
        assert_string_not_equal(garlic_error_name(-c), "unknown error");
    assert_string_equal(garlic_error_name(GARLIC_EFULL), "queue full");
    assert_string_equal(garlic_error_name(-GARLIC_ERROR_COUNT), "unknown error");
    assert_string_equal(garlic_error_name(1), "unknown error");
}

// Log lines: text with bare words and quoted values, JSON objects with every field; a value
// with bytes that are not UTF-8 comes out with U+FFFD, so the line stays valid text/JSON.
static void test_log_lines(void **state)
{
    (void)state;
    const char *path = test_temp_path("log.txt");
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    garlic_log_set_fd(fileno(f));
    for (int fmt = 0; fmt < LOG_FORMAT_COUNT; fmt++) {
        garlic_log_set_format((log_format)fmt);
        garlic_log_line l;
        garlic_log_begin(&l, "request");
        garlic_log_str(&l, "model", "qwen3");
        garlic_log_str(&l, "reason", "keep \"alive\"\n");
        garlic_log_str(&l, "bad",
                       "a\xff\xc3"
                       "b\xc3\xa9");
        garlic_log_int(&l, "status", 200);
        garlic_log_num(&l, "total_ms", 12.345);
        garlic_log_end(&l);
    }
    fflush(f);
    garlic_log_set_fd(2);
    garlic_log_set_format(LOG_FORMAT_TEXT);
    fclose(f);
    size_t size;
    char *text = test_read_file(path, &size);
    assert_non_null(text);
    assert_true(utf8_valid(text, size));
    char *json = strchr(text, '\n') + 1;
    json[-1] = '\0';
    assert_non_null(strstr(text, " request model=qwen3 reason=\"keep \\\"alive\\\"\\u000a\" "));
    assert_non_null(strstr(text,
                           "bad=\"a\xef\xbf\xbd\xef\xbf\xbd"
                           "b\xc3\xa9\" status=200 total_ms=12.3"));
    assert_non_null(strstr(json,
                           "\"event\":\"request\",\"model\":\"qwen3\",\"reason\":"
                           "\"keep \\\"alive\\\"\\u000a\",\"bad\":\"a\xef\xbf\xbd"
                           "\xef\xbf\xbd"
                           "b\xc3\xa9\",\"status\":200,\"total_ms\":12.3}\n"));
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buffer_appends), cmocka_unit_test(test_buffer_out_of_memory),
        cmocka_unit_test(test_grow),           cmocka_unit_test(test_file_read),
        cmocka_unit_test(test_deadline),       cmocka_unit_test(test_error_names),
        cmocka_unit_test(test_log_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
