// SPDX-License-Identifier: MIT
// The one allocation wrapper. All heap memory garlic owns goes through these functions,
// so that fault-injection tests can make the Nth allocation fail and check that every
// caller returns GARLIC_ENOMEM cleanly and leaks nothing. Failure returns NULL, never aborts.
#ifndef GARLIC_BASE_ALLOC_H
#define GARLIC_BASE_ALLOC_H

#include <stddef.h>

void *garlic_malloc(size_t size);
void *garlic_calloc(size_t count, size_t size); // NULL if count*size overflows
void *garlic_realloc(void *ptr, size_t size);
char *garlic_strndup(const char *s, size_t n); // copies at most n bytes, NUL-terminates
void garlic_free(void *ptr);                   // garlic_free(NULL) is a no-op

// Fault injection for tests: after n more successful allocations, every allocation fails
// until garlic_alloc_fail_reset(). n < 0 disables (the default). Not thread-safe; tests only.
void garlic_alloc_fail_after(long n);
void garlic_alloc_fail_reset(void);

#endif
