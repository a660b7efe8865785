// SPDX-License-Identifier: MIT
// UTF-8 validation and sanitizing; see utf8.h.
#include "base/utf8.h"

#include <stdio.h>
#include <string.h>

size_t utf8_sequence_length(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    if (n == 0)
        return 0;
    if (p[0] < 0x80)
        return 1;
    size_t len;
    uint32_t cp, min;
    if ((p[0] & 0xe0) == 0xc0) {
        len = 2, cp = p[0] & 0x1f, min = 0x80;
    } else if ((p[0] & 0xf0) == 0xe0) {
        len = 3, cp = p[0] & 0x0f, min = 0x800;
    } else if ((p[0] & 0xf8) == 0xf0) {
        len = 4, cp = p[0] & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

size_t utf8_encode(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

bool utf8_valid(const char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t len = utf8_sequence_length(s + i, n - i);
        if (len == 0)
            return false;
        i += len;
    }
    return true;
}

size_t utf8_sanitize(const char *s, size_t n, char *dst, size_t cap, bool escape_controls)
{
    size_t out = 0;
    if (cap == 0)
        return 0;
    for (size_t i = 0; i < n;) {
        char piece[8];
        size_t len = utf8_sequence_length(s + i, n - i), piece_len;
        unsigned char c = (unsigned char)s[i];
        if (len == 0) {
            memcpy(piece, "\xef\xbf\xbd", 3), piece_len = 3, len = 1;
        } else if (escape_controls && len == 1 && (c < 0x20 || c == 0x7f)) {
            const char *esc = c == '\n' ? "\\n" : c == '\t' ? "\\t" : c == '\r' ? "\\r" : NULL;
            if (esc)
                piece_len = (size_t)snprintf(piece, sizeof piece, "%s", esc);
            else
                piece_len = (size_t)snprintf(piece, sizeof piece, "\\x%02x", c);
        } else {
            memcpy(piece, s + i, len), piece_len = len;
        }
        if (out + piece_len + 1 > cap)
            break;
        memcpy(dst + out, piece, piece_len);
        out += piece_len;
        i += len;
    }
    dst[out] = '\0';
    return out;
}
