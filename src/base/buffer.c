// SPDX-License-Identifier: MIT
// Growable buffers and arrays; see buffer.h.
#include "base/buffer.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"

int garlic_grow(void *items, size_t *cap, size_t need, size_t item_size)
{
    if (need <= *cap)
        return GARLIC_OK;
    size_t n = *cap < 8 ? 16 : *cap;
    while (n < need) {
        if (n > SIZE_MAX / 2)
            return GARLIC_ENOMEM;
        n *= 2;
    }
    size_t bytes;
    if (__builtin_mul_overflow(n, item_size, &bytes))
        return GARLIC_ENOMEM;
    void **p = items;
    void *grown = garlic_realloc(*p, bytes);
    if (!grown)
        return GARLIC_ENOMEM;
    *p = grown;
    *cap = n;
    return GARLIC_OK;
}

int garlic_buf_reserve(garlic_buf *b, size_t extra)
{
    size_t need;
    if (__builtin_add_overflow(b->len, extra, &need) || __builtin_add_overflow(need, 1, &need))
        return GARLIC_ENOMEM;
    return garlic_grow(&b->data, &b->cap, need, 1);
}

int garlic_buf_append(garlic_buf *b, const void *p, size_t n)
{
    if (garlic_buf_reserve(b, n) != GARLIC_OK)
        return GARLIC_ENOMEM;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return GARLIC_OK;
}

int garlic_buf_append_str(garlic_buf *b, const char *s)
{
    return garlic_buf_append(b, s, strlen(s));
}

int garlic_buf_vprintf(garlic_buf *b, const char *fmt, va_list ap)
{
    va_list again;
    va_copy(again, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    int rc = n < 0 ? GARLIC_EINVAL : garlic_buf_reserve(b, (size_t)n);
    if (rc == GARLIC_OK) {
        vsnprintf(b->data + b->len, (size_t)n + 1, fmt, again);
        b->len += (size_t)n;
    }
    va_end(again);
    return rc;
}

int garlic_buf_printf(garlic_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = garlic_buf_vprintf(b, fmt, ap);
    va_end(ap);
    return rc;
}

void garlic_buf_clear(garlic_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

char *garlic_buf_take(garlic_buf *b)
{
    char *p = b->data ? b->data : garlic_strndup("", 0);
    *b = (garlic_buf){0};
    return p;
}

void garlic_buf_deinit(garlic_buf *b)
{
    garlic_free(b->data);
    *b = (garlic_buf){0};
}
