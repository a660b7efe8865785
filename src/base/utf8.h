// SPDX-License-Identifier: MIT
// UTF-8 helpers: sequence length, validation, and a sanitizer that replaces invalid bytes
// with U+FFFD so that text from a file can go into JSON or onto a terminal.
#ifndef GARLIC_BASE_UTF8_H
#define GARLIC_BASE_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// Length of the valid UTF-8 sequence at s[0..n), or 0 if the bytes there do not start one
// (bad lead byte, bad continuation, overlong form, surrogate, > U+10FFFF, or truncated).
size_t utf8_sequence_length(const char *s, size_t n);

// Writes code point cp (at most U+10FFFF) as UTF-8 to out (room for 4 bytes); returns the
// number of bytes written.
size_t utf8_encode(uint32_t cp, char *out);

// True when s[0..n) is entirely valid UTF-8.
bool utf8_valid(const char *s, size_t n);

// Copies s[0..n) to dst (capacity cap, NUL-terminated, truncated at a character boundary)
// replacing each invalid byte with U+FFFD; when escape_controls is set, control characters
// are written as \n, \t, \r or \xNN. Returns the length written.
size_t utf8_sanitize(const char *s, size_t n, char *dst, size_t cap, bool escape_controls);

// The value of a hexadecimal digit (0-9, a-f, A-F), or -1 for any other character.
static inline int hex_digit_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

#endif
