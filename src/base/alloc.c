// SPDX-License-Identifier: MIT
// Allocation wrapper with a fail-after-N hook for fault-injection tests.
#include "base/alloc.h"

#include <stdlib.h>
#include <string.h>

static long fail_countdown = -1; // < 0: never fail

static int should_fail(void)
{
    if (fail_countdown < 0)
        return 0;
    if (fail_countdown == 0)
        return 1;
    fail_countdown--;
    return 0;
}

void *garlic_malloc(size_t size)
{
    if (should_fail())
        return NULL;
    return malloc(size ? size : 1);
}

void *garlic_calloc(size_t count, size_t size)
{
    size_t total;
    if (__builtin_mul_overflow(count, size, &total))
        return NULL;
    if (should_fail())
        return NULL;
    return calloc(1, total ? total : 1);
}

void *garlic_realloc(void *ptr, size_t size)
{
    if (should_fail())
        return NULL;
    return realloc(ptr, size ? size : 1);
}

char *garlic_strndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *copy = garlic_malloc(len + 1);
    if (!copy)
        return NULL;
    memcpy(copy, s, len);
    copy[len] = '\0';
    return copy;
}

void garlic_free(void *ptr) { free(ptr); }

void garlic_alloc_fail_after(long n) { fail_countdown = n; }

void garlic_alloc_fail_reset(void) { fail_countdown = -1; }
