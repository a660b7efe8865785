// SPDX-License-Identifier: MIT
// JSON for chat templates, both ways. The reader turns request or case-file JSON into
// values the way Python's json module does (objects keep key order, numbers without a
// fraction or exponent are ints); the writer is transformers' tojson filter, i.e.
// json.dumps with ensure_ascii, indent, separators and sort_keys.
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/utf8.h"
#include "chat/internal.h"

enum { JSON_MAX_DEPTH = 200 };

typedef struct json_reader {
    chat_arena *arena;
    const char *p, *start, *end;
    garlic_error *err;
    int depth;
} json_reader;

static int json_fail(json_reader *r, const char *what)
{
    if (r->arena->failed)
        return garlic_error_set(r->err, GARLIC_ENOMEM, "JSON: out of memory");
    return garlic_error_set(r->err, GARLIC_EFORMAT, "JSON: %s at byte %zu", what,
                            (size_t)(r->p - r->start));
}

static void skip_ws(json_reader *r)
{
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
        r->p++;
}

static int hex4(json_reader *r, uint32_t *out)
{
    if (r->end - r->p < 4)
        return -1;
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        char ch = r->p[i];
        int d = ch >= '0' && ch <= '9' ? ch - '0'
            : ch >= 'a' && ch <= 'f'   ? ch - 'a' + 10
            : ch >= 'A' && ch <= 'F'   ? ch - 'A' + 10
                                       : -1;
        if (d < 0)
            return -1;
        v = v * 16 + (uint32_t)d;
    }
    r->p += 4;
    *out = v;
    return 0;
}

// Decodes one escape after the backslash into o; returns bytes written or 0 when invalid.
static size_t read_escape(json_reader *r, char *o)
{
    char ch = *r->p++;
    const char *from = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t";
    const char *hit = strchr(from, ch);
    if (ch && hit) {
        o[0] = to[hit - from];
        return 1;
    }
    uint32_t cp, low;
    if (ch != 'u' || hex4(r, &cp))
        return 0;
    if (cp >= 0xd800 && cp < 0xdc00 && r->end - r->p >= 6 && r->p[0] == '\\' && r->p[1] == 'u') {
        const char *save = r->p;
        r->p += 2;
        if (hex4(r, &low) == 0 && low >= 0xdc00 && low < 0xe000)
            cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
        else
            r->p = save;
    }
    return utf8_encode(cp, o);
}

// Reads a JSON string at r->p (the opening quote) into the arena, decoding escapes.
static int read_string(json_reader *r, chat_value *out)
{
    r->p++; // opening quote
    const char *q = r->p;
    while (q < r->end && *q != '"')
        q += *q == '\\' && q + 1 < r->end ? 2 : 1;
    if (q >= r->end)
        return json_fail(r, "unterminated string");
    char *s = chat_arena_alloc(r->arena, (size_t)(q - r->p) + 1);
    if (!s)
        return json_fail(r, "string");
    size_t n = 0;
    while (*r->p != '"') {
        unsigned char ch = (unsigned char)*r->p;
        if (ch < 0x20)
            return json_fail(r, "control character in string");
        if (ch != '\\') {
            s[n++] = *r->p++;
            continue;
        }
        r->p++;
        size_t w = read_escape(r, s + n);
        if (!w)
            return json_fail(r, "bad escape");
        n += w;
    }
    r->p++;
    *out = chat_str(s, n);
    return GARLIC_OK;
}

static bool is_digit(char ch) { return ch >= '0' && ch <= '9'; }

// Length of the JSON number at p[0..n) by RFC 8259's grammar,
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?, as Python's json module reads it; 0 when
// none starts there. *is_float is set when it has a fraction or an exponent.
static size_t number_length(const char *p, size_t n, bool *is_float)
{
    size_t i = p[0] == '-', digits;
    *is_float = false;
    if (i < n && p[i] == '0')
        i++;
    else if (i < n && p[i] >= '1' && p[i] <= '9')
        while (i < n && is_digit(p[i]))
            i++;
    else
        return 0;
    if (i < n && p[i] == '.') {
        for (digits = ++i; i < n && is_digit(p[i]);)
            i++;
        if (i == digits)
            return 0;
        *is_float = true;
    }
    if (i < n && (p[i] == 'e' || p[i] == 'E')) {
        i += i + 1 < n && (p[i + 1] == '+' || p[i + 1] == '-') ? 2 : 1;
        for (digits = i; i < n && is_digit(p[i]);)
            i++;
        if (i == digits)
            return 0;
        *is_float = true;
    }
    return i;
}

// Reads a number: an int when it has no fraction or exponent and fits, else a float.
static int read_number(json_reader *r, chat_value *out)
{
    bool is_float;
    size_t n = number_length(r->p, (size_t)(r->end - r->p), &is_float);
    if (n == 0)
        return json_fail(r, "bad number");
    char small[64], *text = n < sizeof small ? small : chat_arena_alloc(r->arena, n + 1);
    if (!text)
        return json_fail(r, "number");
    memcpy(text, r->p, n);
    text[n] = '\0';
    char *stop;
    if (!is_float) {
        errno = 0;
        long long v = strtoll(text, &stop, 10);
        if (errno == 0) { // an integer beyond 64 bits becomes the nearest float
            *out = chat_int(v);
            r->p += n;
            return GARLIC_OK;
        }
    }
    *out = chat_float(strtod(text, &stop)); // the grammar above is a subset of strtod's
    r->p += n;
    return GARLIC_OK;
}

// Reads any value, refusing nesting deeper than JSON_MAX_DEPTH.
static int read_value(json_reader *r, chat_value *out);

// Reads "[...]" into a list.
static int read_array(json_reader *r, chat_value *out)
{
    chat_list *l = chat_list_new(r->arena, 0);
    if (!l)
        return json_fail(r, "array");
    r->p++;
    skip_ws(r);
    if (r->p < r->end && *r->p == ']') {
        r->p++;
        *out = (chat_value){.type = CHAT_LIST, .list = l};
        return GARLIC_OK;
    }
    for (;;) {
        chat_value item;
        int rc = read_value(r, &item);
        if (rc)
            return rc;
        if (chat_list_push(r->arena, l, item))
            return json_fail(r, "array");
        skip_ws(r);
        if (r->p < r->end && *r->p == ',') {
            r->p++;
            continue;
        }
        if (r->p < r->end && *r->p == ']')
            break;
        return json_fail(r, "expected ',' or ']'");
    }
    r->p++;
    *out = (chat_value){.type = CHAT_LIST, .list = l};
    return GARLIC_OK;
}

// Reads "{...}" into a dict, keeping key order (a repeated key keeps its first place).
static int read_object(json_reader *r, chat_value *out)
{
    chat_dict *d = chat_dict_new(r->arena, 0);
    if (!d)
        return json_fail(r, "object");
    r->p++;
    skip_ws(r);
    if (r->p < r->end && *r->p == '}') {
        r->p++;
        *out = (chat_value){.type = CHAT_DICT, .dict = d};
        return GARLIC_OK;
    }
    for (;;) {
        chat_value key, val;
        skip_ws(r);
        if (r->p >= r->end || *r->p != '"')
            return json_fail(r, "expected a string key");
        int rc = read_string(r, &key);
        if (rc)
            return rc;
        skip_ws(r);
        if (r->p >= r->end || *r->p != ':')
            return json_fail(r, "expected ':'");
        r->p++;
        if ((rc = read_value(r, &val)))
            return rc;
        if (chat_dict_set(r->arena, d, key, val))
            return json_fail(r, "object");
        skip_ws(r);
        if (r->p < r->end && *r->p == ',') {
            r->p++;
            continue;
        }
        if (r->p < r->end && *r->p == '}')
            break;
        return json_fail(r, "expected ',' or '}'");
    }
    r->p++;
    *out = (chat_value){.type = CHAT_DICT, .dict = d};
    return GARLIC_OK;
}

static bool read_word(json_reader *r, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(r->end - r->p) < n || memcmp(r->p, word, n) != 0)
        return false;
    r->p += n;
    return true;
}

// Reads any value, refusing nesting deeper than JSON_MAX_DEPTH.
static int read_value(json_reader *r, chat_value *out)
{
    skip_ws(r);
    if (r->p >= r->end)
        return json_fail(r, "unexpected end");
    if (++r->depth > JSON_MAX_DEPTH)
        return json_fail(r, "nested too deeply");
    int rc = GARLIC_OK;
    char ch = *r->p;
    if (ch == '{')
        rc = read_object(r, out);
    else if (ch == '[')
        rc = read_array(r, out);
    else if (ch == '"')
        rc = read_string(r, out);
    else if (ch == '-' || (ch >= '0' && ch <= '9'))
        rc = read_number(r, out);
    else if (read_word(r, "true"))
        *out = chat_bool(true);
    else if (read_word(r, "false"))
        *out = chat_bool(false);
    else if (read_word(r, "null"))
        *out = chat_none();
    else
        rc = json_fail(r, "unexpected character");
    r->depth--;
    return rc;
}

int chat_json_parse(chat_arena *a, const char *text, size_t len, chat_value *out, garlic_error *err)
{
    json_reader r = {.arena = a, .p = text, .start = text, .end = text + len, .err = err};
    int rc = read_value(&r, out);
    if (rc)
        return rc;
    skip_ws(&r);
    if (r.p != r.end)
        return json_fail(&r, "trailing characters");
    return GARLIC_OK;
}

// ---- writer -----------------------------------------------------------------------------

typedef struct json_writer {
    chat_arena *arena;
    chat_buf *out;
    const chat_json_opts *o;
    garlic_error *err;
} json_writer;

// Decodes the UTF-8 sequence at s[0..n) (n > 0) by its lead and continuation bits, so that
// the encoded surrogates the reader makes of lone \uD800 escapes come back as themselves.
// A byte that starts no such sequence (Python's strings never hold one) is U+FFFD, one byte
// long, so the bytes after it are still written.
static size_t decode_sequence(const unsigned char *s, size_t n, uint32_t *cp)
{
    size_t len = s[0] >= 0xf8 ? 0 : s[0] >= 0xf0 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc0 ? 2 : 0;
    *cp = 0xfffd;
    if (len == 0 || len > n)
        return 1;
    uint32_t v = s[0] & (0x7f >> len);
    for (size_t k = 1; k < len; k++) {
        if ((s[k] & 0xc0) != 0x80)
            return 1;
        v = (v << 6) | (s[k] & 0x3f);
    }
    if (v > 0x10ffff)
        return 1;
    *cp = v;
    return len;
}

// Writes a JSON string as json.dumps does: \n, \t... escaped, other controls as \u00XX,
// non-ASCII as it is unless ensure_ascii (then \uXXXX, astral planes as surrogate pairs).
static int write_string(json_writer *w, const char *s, size_t n)
{
    int rc = chat_buf_append(w->arena, w->out, "\"", 1);
    for (size_t i = 0; i < n && rc == GARLIC_OK; i++) {
        unsigned char ch = (unsigned char)s[i];
        const char *esc = ch == '"' ? "\\\""
            : ch == '\\'            ? "\\\\"
            : ch == '\n'            ? "\\n"
            : ch == '\r'            ? "\\r"
            : ch == '\t'            ? "\\t"
            : ch == '\b'            ? "\\b"
            : ch == '\f'            ? "\\f"
                                    : NULL;
        if (esc) {
            rc = chat_buf_append(w->arena, w->out, esc, 2);
        } else if (ch < 0x20) {
            rc = chat_buf_printf(w->arena, w->out, "\\u%04x", ch);
        } else if (ch < 0x80 || !w->o->ensure_ascii) {
            rc = chat_buf_append(w->arena, w->out, s + i, 1);
        } else {
            // a whole UTF-8 sequence as \uXXXX, astral planes as a surrogate pair
            uint32_t cp;
            size_t len = decode_sequence((const unsigned char *)s + i, n - i, &cp);
            if (cp >= 0x10000)
                rc = chat_buf_printf(w->arena, w->out, "\\u%04x\\u%04x",
                                     0xd800 + ((cp - 0x10000) >> 10),
                                     0xdc00 + ((cp - 0x10000) & 0x3ff));
            else
                rc = chat_buf_printf(w->arena, w->out, "\\u%04x", cp);
            i += len - 1;
        }
    }
    return rc ? rc : chat_buf_append(w->arena, w->out, "\"", 1);
}

static int write_newline(json_writer *w, int level)
{
    int rc = chat_buf_append(w->arena, w->out, "\n", 1);
    size_t n = strlen(w->o->indent);
    for (int i = 0; i < level && rc == GARLIC_OK; i++)
        rc = chat_buf_append(w->arena, w->out, w->o->indent, n);
    return rc;
}

static const char *item_sep(const json_writer *w)
{
    return w->o->item_sep ? w->o->item_sep : w->o->indent ? "," : ", ";
}

// Writes any value; undefined, namespaces and callables are not serializable (TypeError).
static int write_value(json_writer *w, const chat_value *v, int level);

// Writes a dict key as Python does: strings as they are, numbers, bools and None as text.
static int write_key(json_writer *w, const chat_value *k)
{
    char num[40];
    switch (k->type) {
    case CHAT_STRING: return write_string(w, k->s.ptr, k->s.len);
    case CHAT_NONE: return write_string(w, "null", 4);
    case CHAT_BOOL: return k->b ? write_string(w, "true", 4) : write_string(w, "false", 5);
    case CHAT_INT: snprintf(num, sizeof num, "%lld", (long long)k->i); break;
    case CHAT_FLOAT: chat_float_repr(k->f, num); break;
    default:
        return garlic_error_set(w->err, GARLIC_ETYPE,
                                "keys must be str, int, float, bool or None, not %s",
                                chat_type_name(k));
    }
    return write_string(w, num, strlen(num));
}

// Orders idx[0..d->n) by key (insertion sort: dicts in templates are small; keys that do
// not compare keep their order).
static void sort_keys(const chat_dict *d, size_t *idx)
{
    for (size_t i = 1; i < d->n; i++) {
        int ord = 0;
        for (size_t j = i; j > 0; j--) {
            if (chat_compare(&d->keys[idx[j - 1]], &d->keys[idx[j]], &ord) || ord <= 0)
                break;
            size_t t = idx[j];
            idx[j] = idx[j - 1];
            idx[j - 1] = t;
        }
    }
}

// Writes an object, in insertion order or sorted by key; with an indent each member goes
// on its own line.
static int write_dict(json_writer *w, const chat_dict *d, int level)
{
    if (d->n == 0)
        return chat_buf_append(w->arena, w->out, "{}", 2);
    size_t *idx = chat_arena_alloc(w->arena, d->n * sizeof *idx);
    if (!idx)
        return GARLIC_ENOMEM;
    for (size_t i = 0; i < d->n; i++)
        idx[i] = i;
    if (w->o->sort_keys)
        sort_keys(d, idx);
    const char *key_sep = w->o->key_sep ? w->o->key_sep : ": ";
    int rc = chat_buf_append(w->arena, w->out, "{", 1);
    for (size_t i = 0; i < d->n && rc == GARLIC_OK; i++) {
        if (i)
            rc = chat_buf_append(w->arena, w->out, item_sep(w), strlen(item_sep(w)));
        if (rc == GARLIC_OK && w->o->indent)
            rc = write_newline(w, level + 1);
        if (rc == GARLIC_OK)
            rc = write_key(w, &d->keys[idx[i]]);
        if (rc == GARLIC_OK)
            rc = chat_buf_append(w->arena, w->out, key_sep, strlen(key_sep));
        if (rc == GARLIC_OK)
            rc = write_value(w, &d->vals[idx[i]], level + 1);
    }
    if (rc == GARLIC_OK && w->o->indent)
        rc = write_newline(w, level);
    return rc ? rc : chat_buf_append(w->arena, w->out, "}", 1);
}

// Writes an array, one item per line when indenting.
static int write_list(json_writer *w, const chat_list *l, int level)
{
    if (l->n == 0)
        return chat_buf_append(w->arena, w->out, "[]", 2);
    int rc = chat_buf_append(w->arena, w->out, "[", 1);
    for (size_t i = 0; i < l->n && rc == GARLIC_OK; i++) {
        if (i)
            rc = chat_buf_append(w->arena, w->out, item_sep(w), strlen(item_sep(w)));
        if (rc == GARLIC_OK && w->o->indent)
            rc = write_newline(w, level + 1);
        if (rc == GARLIC_OK)
            rc = write_value(w, &l->items[i], level + 1);
    }
    if (rc == GARLIC_OK && w->o->indent)
        rc = write_newline(w, level);
    return rc ? rc : chat_buf_append(w->arena, w->out, "]", 1);
}

// Writes any value; undefined, namespaces and callables are not serializable (TypeError).
static int write_value(json_writer *w, const chat_value *v, int level)
{
    char num[40];
    if (level > JSON_MAX_DEPTH)
        return garlic_error_set(w->err, GARLIC_EINVAL, "tojson: nested too deeply");
    switch (v->type) {
    case CHAT_NONE: return chat_buf_append(w->arena, w->out, "null", 4);
    case CHAT_BOOL:
        return v->b ? chat_buf_append(w->arena, w->out, "true", 4)
                    : chat_buf_append(w->arena, w->out, "false", 5);
    case CHAT_INT: return chat_buf_printf(w->arena, w->out, "%lld", (long long)v->i);
    case CHAT_FLOAT:
        if (isnan(v->f))
            return chat_buf_append(w->arena, w->out, "NaN", 3);
        if (isinf(v->f))
            return v->f > 0 ? chat_buf_append(w->arena, w->out, "Infinity", 8)
                            : chat_buf_append(w->arena, w->out, "-Infinity", 9);
        chat_float_repr(v->f, num);
        return chat_buf_append(w->arena, w->out, num, strlen(num));
    case CHAT_STRING: return write_string(w, v->s.ptr, v->s.len);
    case CHAT_LIST: return write_list(w, v->list, level);
    case CHAT_DICT: return write_dict(w, v->dict, level);
    default:
        return garlic_error_set(w->err, GARLIC_ETYPE, "Object of type %s is not JSON serializable",
                                chat_type_name(v));
    }
}

int chat_value_tojson(chat_arena *a, chat_buf *b, const chat_value *v, const chat_json_opts *o,
                      garlic_error *err)
{
    json_writer w = {.arena = a, .out = b, .o = o, .err = err};
    int rc = write_value(&w, v, 0);
    if (rc == GARLIC_ENOMEM)
        garlic_error_set(err, rc, "tojson: output too large");
    return rc;
}
