// SPDX-License-Identifier: MIT
// Growable memory, one policy for the whole program: a byte buffer that stays NUL-terminated
// (text built piece by piece: response bodies, decoded tokens, file contents) and a helper
// that grows any array to hold n items. Capacity doubles (at least 16 items), sizes are
// checked for overflow, and a failed allocation leaves the old memory as it was.
#ifndef GARLIC_BASE_BUFFER_H
#define GARLIC_BASE_BUFFER_H

#include <stdarg.h>
#include <stddef.h>

// Bytes data[0..len) plus a NUL at data[len] once anything was added (data is NULL before).
// Zero-initialized is empty; garlic_buf_deinit frees it.
typedef struct garlic_buf {
    char *data; // (cap) owned
    size_t len;
    size_t cap;
} garlic_buf;

// Makes room for extra more bytes and the NUL. GARLIC_ENOMEM (buffer unchanged) on failure.
int garlic_buf_reserve(garlic_buf *b, size_t extra);
// Appends n bytes of p. GARLIC_ENOMEM (buffer unchanged) on failure.
int garlic_buf_append(garlic_buf *b, const void *p, size_t n);
int garlic_buf_append_str(garlic_buf *b, const char *s);
// Appends printf-style text. GARLIC_ENOMEM (buffer unchanged) on failure.
int garlic_buf_printf(garlic_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int garlic_buf_vprintf(garlic_buf *b, const char *fmt, va_list ap);
// Empties b, keeping its memory.
void garlic_buf_clear(garlic_buf *b);
// Hands the bytes to the caller (who frees them with garlic_free) and empties b. Returns ""
// copied into a fresh allocation when b is empty; NULL only when that allocation fails.
char *garlic_buf_take(garlic_buf *b);
void garlic_buf_deinit(garlic_buf *b);

// Grows the array *items (of *cap items of item_size bytes) to hold at least need items:
// doubling, at least 16. Does nothing when it already does. GARLIC_ENOMEM (array unchanged)
// when the size overflows or the allocation fails.
int garlic_grow(void *items, size_t *cap, size_t need, size_t item_size);

#endif
