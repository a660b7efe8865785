// SPDX-License-Identifier: MIT
// The HTTP/1.1 request parser (RFC 9112): a request line and header fields, read over
// (p, end) with every length checked, and the chunked transfer coding decoded in place. It
// is strict where leniency lets a proxy and garlic disagree on where a request ends (two
// Content-Length values, Content-Length with Transfer-Encoding, a bare CR, whitespace before
// a colon, folded lines) and lenient where it costs nothing (empty lines before a request,
// a line ended by LF alone).
#include <string.h>
#include <strings.h>

#include "base/utf8.h"
#include "server/http.h"

// A character of a token (RFC 9110 5.6.2): method and field names.
static bool is_tchar(unsigned char c)
{
    if (c >= 'a' && c <= 'z')
        return true;
    if (c >= 'A' && c <= 'Z')
        return true;
    if (c >= '0' && c <= '9')
        return true;
    return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static http_parse invalid(http_head *h, int status, const char *why)
{
    h->error_status = status;
    h->error = why;
    return HTTP_PARSE_INVALID;
}

// Finds the end of the line starting at p: *eol at its CR or LF, *next after the LF.
// INCOMPLETE when no LF is in [p, end) yet; INVALID for a CR not followed by LF.
static http_parse line_end(const char *p, const char *end, const char **eol, const char **next)
{
    for (const char *q = p; q < end; q++) {
        if (*q == '\n') {
            *eol = q, *next = q + 1;
            return HTTP_PARSE_DONE;
        }
        if (*q == '\r') {
            if (q + 1 == end)
                return HTTP_PARSE_INCOMPLETE;
            if (q[1] != '\n')
                return HTTP_PARSE_INVALID;
            *eol = q, *next = q + 2;
            return HTTP_PARSE_DONE;
        }
    }
    return HTTP_PARSE_INCOMPLETE;
}

// Parses "METHOD SP target SP HTTP/1.x" in [p, eol).
static http_parse request_line(const char *p, const char *eol, http_head *h)
{
    const char *q = p;
    while (q < eol && is_tchar((unsigned char)*q))
        q++;
    size_t n = (size_t)(q - p);
    if (n == 0 || q == eol || *q != ' ')
        return invalid(h, 400, "the request line is not METHOD TARGET HTTP/1.x");
    if (n >= sizeof h->method)
        return invalid(h, 501, "the method is not one this server knows");
    memcpy(h->method, p, n);
    h->method[n] = '\0';
    const char *t = ++q;
    while (q < eol && (unsigned char)*q > 0x20 && (unsigned char)*q < 0x7f)
        q++;
    if (q == t || q == eol || *q != ' ')
        return invalid(h, 400, "the request target is empty or has characters it may not have");
    h->target = t;
    h->target_len = (size_t)(q - t);
    if (!(t[0] == '/' || (h->target_len == 1 && t[0] == '*')))
        return invalid(h, 400, "the request target must be a path beginning with /");
    // The path's percent escapes are decoded later (http_head_terminate): each must be two
    // hex digits, and none may stand for NUL.
    for (const char *e = t; e < q && *e != '?'; e++) {
        if (*e != '%')
            continue;
        if (q - e < 3 || hex_digit_value(e[1]) < 0 || hex_digit_value(e[2]) < 0 ||
            (e[1] == '0' && e[2] == '0'))
            return invalid(h, 400, "the request path has a malformed percent escape");
    }
    q++;
    if (eol - q != 8 || memcmp(q, "HTTP/", 5) != 0 || q[6] != '.' || q[5] < '0' || q[5] > '9' ||
        q[7] < '0' || q[7] > '9')
        return invalid(h, 400, "the request line does not end in HTTP/1.0 or HTTP/1.1");
    if (q[5] != '1')
        return invalid(h, 505, "only HTTP/1.0 and HTTP/1.1 are served");
    h->minor = q[7] == '0' ? 0 : 1;
    return HTTP_PARSE_DONE;
}

// The field's value equals token, ignoring case.
static bool value_is(const http_field *f, const char *token)
{
    size_t n = strlen(token);
    return f->value_len == n && strncasecmp(f->value, token, n) == 0;
}

static bool name_is(const http_field *f, const char *name)
{
    size_t n = strlen(name);
    return f->name_len == n && strncasecmp(f->name, name, n) == 0;
}

// The comma-separated list of f's value holds token (ignoring case and whitespace).
static bool list_has(const http_field *f, const char *token)
{
    size_t n = strlen(token);
    const char *p = f->value, *end = f->value + f->value_len;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
            p++;
        const char *s = p;
        while (p < end && *p != ',')
            p++;
        const char *e = p;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if ((size_t)(e - s) == n && strncasecmp(s, token, n) == 0)
            return true;
    }
    return false;
}

// Parses one field line [p, eol) into f.
static http_parse field_line(const char *p, const char *eol, http_head *h, http_field *f)
{
    if (*p == ' ' || *p == '\t')
        return invalid(h, 400, "a header line is folded (begins with whitespace)");
    const char *q = p;
    while (q < eol && is_tchar((unsigned char)*q))
        q++;
    if (q == p || q == eol || *q != ':')
        return invalid(h, 400, "a header line is not NAME: VALUE");
    f->name = p;
    f->name_len = (size_t)(q - p);
    q++;
    while (q < eol && (*q == ' ' || *q == '\t'))
        q++;
    const char *v = q, *last = q;
    for (; q < eol; q++) {
        unsigned char c = (unsigned char)*q;
        if (c < 0x20 && c != '\t')
            return invalid(h, 400, "a header value holds a control character");
        if (c == 0x7f)
            return invalid(h, 400, "a header value holds a control character");
        if (c != ' ' && c != '\t')
            last = q + 1;
    }
    f->value = v;
    f->value_len = (size_t)(last - v);
    return HTTP_PARSE_DONE;
}

// Parses a Content-Length value: digits only, below 2^53.
static bool parse_length(const http_field *f, int64_t *out)
{
    if (f->value_len == 0 || f->value_len > 15)
        return false;
    int64_t v = 0;
    for (size_t i = 0; i < f->value_len; i++) {
        if (f->value[i] < '0' || f->value[i] > '9')
            return false;
        v = v * 10 + (f->value[i] - '0');
    }
    *out = v;
    return true;
}

// Reads what the fields say of framing and the connection, refusing ambiguous framing.
static http_parse framing(http_head *h)
{
    size_t hosts = 0;
    bool te = false, close = false, keep = false;
    h->content_length = -1;
    for (size_t i = 0; i < h->n_fields; i++) {
        const http_field *f = &h->fields[i];
        if (name_is(f, "Content-Length")) {
            int64_t v;
            if (!parse_length(f, &v))
                return invalid(h, 400, "Content-Length is not a number of bytes");
            if (h->content_length >= 0 && v != h->content_length)
                return invalid(h, 400, "two different Content-Length values");
            h->content_length = v;
        } else if (name_is(f, "Transfer-Encoding")) {
            if (te || !value_is(f, "chunked"))
                return invalid(h, 501, "the only Transfer-Encoding served is chunked");
            te = true;
        } else if (name_is(f, "Host")) {
            hosts++;
        } else if (name_is(f, "Connection")) {
            close |= list_has(f, "close");
            keep |= list_has(f, "keep-alive");
        } else if (name_is(f, "Expect")) {
            if (!value_is(f, "100-continue"))
                return invalid(h, 417, "the only expectation served is 100-continue");
            h->expect_continue = h->minor == 1;
        }
    }
    if (te && h->content_length >= 0)
        return invalid(h, 400, "both Content-Length and Transfer-Encoding are given");
    if (te && h->minor == 0)
        return invalid(h, 400, "Transfer-Encoding is not allowed in HTTP/1.0");
    if (hosts > 1 || (hosts == 0 && h->minor == 1))
        return invalid(h, 400, "an HTTP/1.1 request needs exactly one Host header");
    h->chunked = te;
    h->keep_alive = h->minor == 1 ? !close : keep && !close;
    return HTTP_PARSE_DONE;
}

http_parse http_head_parse(const char *p, const char *end, http_head *h)
{
    memset(h, 0, sizeof *h);
    const char *begin = p;
    // Empty lines before a request are skipped (RFC 9112 2.2), a few of them.
    for (int i = 0; i < 4 && p < end && (*p == '\r' || *p == '\n'); i++) {
        const char *eol, *next;
        http_parse r = line_end(p, end, &eol, &next);
        if (r == HTTP_PARSE_INVALID)
            return invalid(h, 400, "a CR is not followed by LF");
        if (r == HTTP_PARSE_INCOMPLETE)
            return HTTP_PARSE_INCOMPLETE;
        if (eol != p)
            break;
        p = next;
    }
    h->start = (size_t)(p - begin);
    const char *eol, *next;
    bool first = true;
    for (;;) {
        http_parse r = line_end(p, end, &eol, &next);
        if (r == HTTP_PARSE_INVALID)
            return invalid(h, 400, "a CR is not followed by LF");
        if (r == HTTP_PARSE_INCOMPLETE) {
            if ((size_t)(end - begin) >= HTTP_MAX_HEAD)
                return invalid(h, first ? 414 : 431,
                               first ? "the request line is too long"
                                     : "the request head is too large");
            // A line that cannot begin a request at all is refused without waiting.
            if (first && p < end && !is_tchar((unsigned char)*p))
                return invalid(h, 400, "the request line is not METHOD TARGET HTTP/1.x");
            return HTTP_PARSE_INCOMPLETE;
        }
        if ((size_t)(next - begin) > HTTP_MAX_HEAD)
            return invalid(h, first ? 414 : 431,
                           first ? "the request line is too long"
                                 : "the request head is too large");
        if (first) {
            if (request_line(p, eol, h) != HTTP_PARSE_DONE)
                return HTTP_PARSE_INVALID;
            first = false;
        } else if (eol == p) { // the blank line: the head is whole
            h->len = (size_t)(next - begin);
            return framing(h);
        } else {
            if (h->n_fields == HTTP_MAX_HEADERS)
                return invalid(h, 431, "the request has too many header fields");
            if (field_line(p, eol, h, &h->fields[h->n_fields]) != HTTP_PARSE_DONE)
                return HTTP_PARSE_INVALID;
            h->n_fields++;
        }
        p = next;
    }
}

void http_head_terminate(char *buf, http_head *h)
{
    // Every string is followed by a byte of the head that is no longer needed: the space
    // after the target, the colon after a name, the CR, LF or whitespace after a value.
    size_t t = (size_t)(h->target - buf);
    const char *query = memchr(h->target, '?', h->target_len);
    if (query)
        h->target_len = (size_t)(query - h->target);
    buf[t + h->target_len] = '\0';
    // Percent escapes decoded in place (the parser checked them): "/v1/models/a%2Fb" names
    // the model "a/b".
    char *w = buf + t;
    for (const char *r = buf + t; *r; r++) {
        if (*r == '%') {
            *w++ = (char)(hex_digit_value(r[1]) * 16 + hex_digit_value(r[2]));
            r += 2;
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
    h->target_len = (size_t)(w - (buf + t));
    for (size_t i = 0; i < h->n_fields; i++) {
        http_field *f = &h->fields[i];
        buf[f->name - buf + f->name_len] = '\0';
        buf[f->value - buf + f->value_len] = '\0';
    }
}

const char *http_head_field(const http_head *h, const char *name)
{
    for (size_t i = 0; i < h->n_fields; i++)
        if (name_is(&h->fields[i], name))
            return h->fields[i].value;
    return NULL;
}

// --- chunked bodies ---------------------------------------------------------------------

enum {
    CHUNK_SIZE,    // hex digits of a chunk's size
    CHUNK_SIZE_WS, // whitespace after the size
    CHUNK_EXT,     // a chunk extension, up to the line's end
    CHUNK_SIZE_LF, // the LF after the size line's CR
    CHUNK_DATA,    // the chunk's bytes
    CHUNK_DATA_CR, // the CRLF after them
    CHUNK_DATA_LF, //
    CHUNK_TRAILER, // a trailer line (or the final blank line when empty)
    CHUNK_TRAILER_LF,
    CHUNK_DONE,
};

enum { CHUNK_MAX_LINE = 4096, CHUNK_MAX_TRAILER = 8192 };

http_parse http_chunked_decode(http_chunked *c, char *buf, size_t len, size_t *in, size_t *out,
                               size_t max)
{
    size_t i = *in, o = *out;
    http_parse result = HTTP_PARSE_INCOMPLETE;
    while (i < len && result == HTTP_PARSE_INCOMPLETE) {
        char ch = buf[i];
        switch (c->state) {
        case CHUNK_SIZE: {
            int v = hex_digit_value(ch);
            if (v >= 0) {
                if (c->line >= 15) { // 15 hex digits: far beyond any body limit
                    c->too_large = true;
                    return HTTP_PARSE_INVALID;
                }
                c->remaining = c->remaining * 16 + (uint64_t)v;
                c->line++;
                i++;
                break;
            }
            if (c->line == 0)
                return HTTP_PARSE_INVALID;
            if (c->remaining > max || o + c->remaining > max) {
                c->too_large = true;
                return HTTP_PARSE_INVALID;
            }
            c->state = ch == '\r' ? CHUNK_SIZE_LF
                : ch == '\n'      ? CHUNK_DATA
                : ch == ';'       ? CHUNK_EXT
                                  : CHUNK_SIZE_WS;
            if (ch != ';' && ch != '\r' && ch != '\n' && ch != ' ' && ch != '\t')
                return HTTP_PARSE_INVALID;
            c->line = 0;
            i++;
            if (c->state == CHUNK_DATA && c->remaining == 0)
                c->state = CHUNK_TRAILER;
            break;
        }
        case CHUNK_SIZE_WS: // whitespace after the size: only more of it, ';' or the end
            if (ch == ';')
                c->state = CHUNK_EXT;
            else if (ch == '\r')
                c->state = CHUNK_SIZE_LF;
            else if (ch == '\n')
                c->state = c->remaining ? CHUNK_DATA : CHUNK_TRAILER;
            else if (ch != ' ' && ch != '\t')
                return HTTP_PARSE_INVALID;
            i++;
            break;
        case CHUNK_EXT:
            if (ch == '\r')
                c->state = CHUNK_SIZE_LF;
            else if (ch == '\n')
                c->state = c->remaining ? CHUNK_DATA : CHUNK_TRAILER;
            else if ((unsigned char)ch < 0x20 && ch != '\t')
                return HTTP_PARSE_INVALID;
            else if (++c->line > CHUNK_MAX_LINE)
                return HTTP_PARSE_INVALID;
            i++;
            break;
        case CHUNK_SIZE_LF:
            if (ch != '\n')
                return HTTP_PARSE_INVALID;
            c->state = c->remaining ? CHUNK_DATA : CHUNK_TRAILER;
            c->line = 0;
            i++;
            break;
        case CHUNK_DATA: {
            size_t n = len - i;
            if (n > c->remaining)
                n = (size_t)c->remaining;
            memmove(buf + o, buf + i, n);
            o += n, i += n;
            c->remaining -= n;
            if (c->remaining == 0)
                c->state = CHUNK_DATA_CR;
            break;
        }
        case CHUNK_DATA_CR:
            if (ch == '\n') {
                c->state = CHUNK_SIZE;
            } else if (ch == '\r') {
                c->state = CHUNK_DATA_LF;
            } else {
                return HTTP_PARSE_INVALID;
            }
            i++;
            break;
        case CHUNK_DATA_LF:
            if (ch != '\n')
                return HTTP_PARSE_INVALID;
            c->state = CHUNK_SIZE;
            i++;
            break;
        case CHUNK_TRAILER:
            if (ch == '\r') {
                c->state = CHUNK_TRAILER_LF;
            } else if (ch == '\n') {
                if (c->line == 0) {
                    c->state = CHUNK_DONE;
                    result = HTTP_PARSE_DONE;
                }
                c->line = 0;
            } else {
                if ((unsigned char)ch < 0x20 && ch != '\t')
                    return HTTP_PARSE_INVALID;
                c->line++;
                if (++c->trailer > CHUNK_MAX_TRAILER)
                    return HTTP_PARSE_INVALID;
            }
            i++;
            break;
        case CHUNK_TRAILER_LF:
            if (ch != '\n')
                return HTTP_PARSE_INVALID;
            i++;
            if (c->line == 0) {
                c->state = CHUNK_DONE;
                result = HTTP_PARSE_DONE;
            } else {
                c->state = CHUNK_TRAILER;
                c->line = 0;
            }
            break;
        default: result = HTTP_PARSE_DONE; break;
        }
    }
    if (c->state == CHUNK_DONE)
        result = HTTP_PARSE_DONE;
    *in = i, *out = o;
    return result;
}
