// SPDX-License-Identifier: MIT
// What a template reaches through names and dots: attribute and item lookup with Jinja2's
// rules (getattr then item for a.b, item then getattr for a[b]), the sandbox's refusal of
// underscore names and mutating methods, Python's str/dict/list methods, the loop object,
// and the globals transformers provides (range, namespace, dict, raise_exception, strftime_now).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/utf8.h"
#include "chat/internal.h"

typedef struct method {
    const char *name;
    chat_builtin_fn fn;
} method;

static const chat_value *param(const chat_value *args, size_t n, const chat_dict *kw, size_t i,
                               const char *name)
{
    if (i < n)
        return &args[i];
    return name && kw ? chat_dict_get(kw, name, strlen(name)) : NULL;
}

static int need_str(render_ctx *c, const chat_node *at, const chat_value *v, const char *what)
{
    if (v && v->type == CHAT_STRING)
        return GARLIC_OK;
    if (v && v->type == CHAT_UNDEFINED)
        return chat_render_undefined_error(c, at, v);
    return chat_render_error(c, at, GARLIC_ETYPE, "TypeError: %s must be str, not %s", what,
                             v ? chat_type_name(v) : "nothing");
}

static int str_result(render_ctx *c, const chat_node *at, const chat_buf *b, chat_value *out)
{
    (void)c;
    (void)at;
    *out = chat_str(b->data ? b->data : "", b->len);
    return GARLIC_OK;
}

// ---- code points ------------------------------------------------------------------------

static size_t decode(const char *s, size_t n, uint32_t *cp)
{
    size_t len = chat_utf8_offset(s, n, 1);
    const unsigned char *u = (const unsigned char *)s;
    if (len == 1) {
        *cp = u[0];
        return 1;
    }
    uint32_t v = u[0] & (0x7f >> len);
    for (size_t i = 1; i < len; i++)
        v = (v << 6) | (u[i] & 0x3f);
    *cp = v;
    return len;
}

bool chat_is_space(uint32_t cp)
{
    return (cp >= 9 && cp <= 13) || cp == ' ' || (cp >= 0x1c && cp <= 0x1f) || cp == 0x85 ||
        cp == 0xa0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 ||
        cp == 0x2029 || cp == 0x202f || cp == 0x205f || cp == 0x3000;
}

static bool in_set(uint32_t cp, const chat_value *chars)
{
    if (!chars || chars->type != CHAT_STRING)
        return chat_is_space(cp);
    for (size_t i = 0; i < chars->s.len;) {
        uint32_t c2;
        i += decode(chars->s.ptr + i, chars->s.len - i, &c2);
        if (c2 == cp)
            return true;
    }
    return false;
}

chat_value chat_strip(const chat_value *s, const chat_value *chars, chat_strip_side side)
{
    size_t lo = 0, hi = s->s.len;
    while (side != CHAT_STRIP_RIGHT && lo < hi) {
        uint32_t cp;
        size_t len = decode(s->s.ptr + lo, hi - lo, &cp);
        if (!in_set(cp, chars))
            break;
        lo += len;
    }
    while (side != CHAT_STRIP_LEFT && hi > lo) {
        size_t start = hi - 1;
        while (start > lo && ((unsigned char)s->s.ptr[start] & 0xc0) == 0x80)
            start--;
        uint32_t cp;
        decode(s->s.ptr + start, hi - start, &cp);
        if (!in_set(cp, chars))
            break;
        hi = start;
    }
    return chat_str(s->s.ptr + lo, hi - lo);
}

static int strip_common(render_ctx *c, const chat_node *at, const chat_value *self,
                        const chat_value *args, size_t n, const chat_dict *kw, chat_value *out,
                        chat_strip_side side)
{
    const chat_value *chars = param(args, n, kw, 0, "chars");
    if (chars && chars->type != CHAT_NONE && need_str(c, at, chars, "strip arg"))
        return c->err->code;
    *out = chat_strip(self, chars, side);
    return GARLIC_OK;
}

static int m_strip(render_ctx *c, const chat_node *at, const chat_value *self,
                   const chat_value *args, size_t n, const chat_dict *kw, chat_value *out)
{
    return strip_common(c, at, self, args, n, kw, out, CHAT_STRIP_BOTH);
}

static int m_lstrip(render_ctx *c, const chat_node *at, const chat_value *self,
                    const chat_value *args, size_t n, const chat_dict *kw, chat_value *out)
{
    return strip_common(c, at, self, args, n, kw, out, CHAT_STRIP_LEFT);
}

static int m_rstrip(render_ctx *c, const chat_node *at, const chat_value *self,
                    const chat_value *args, size_t n, const chat_dict *kw, chat_value *out)
{
    return strip_common(c, at, self, args, n, kw, out, CHAT_STRIP_RIGHT);
}

static bool affix_match(const chat_value *s, const chat_value *a, bool end)
{
    if (a->type != CHAT_STRING || a->s.len > s->s.len)
        return false;
    const char *from = end ? s->s.ptr + s->s.len - a->s.len : s->s.ptr;
    return memcmp(from, a->s.ptr, a->s.len) == 0;
}

// startswith / endswith with a string or a tuple of strings.
static int affix(render_ctx *c, const chat_node *at, const chat_value *self, const chat_value *args,
                 size_t n, bool end, chat_value *out)
{
    const chat_value *a = param(args, n, NULL, 0, NULL);
    if (a && a->type == CHAT_LIST) {
        bool hit = false;
        for (size_t i = 0; i < a->list->n; i++)
            hit |= affix_match(self, &a->list->items[i], end);
        *out = chat_bool(hit);
        return GARLIC_OK;
    }
    if (need_str(c, at, a, end ? "endswith arg" : "startswith arg"))
        return c->err->code;
    *out = chat_bool(affix_match(self, a, end));
    return GARLIC_OK;
}

static int m_startswith(render_ctx *c, const chat_node *at, const chat_value *self,
                        const chat_value *args, size_t n, const chat_dict *kw, chat_value *out)
{
    (void)kw;
    return affix(c, at, self, args, n, false, out);
}

static int m_endswith(render_ctx *c, const chat_node *at, const chat_value *self,
                      const chat_value *args, size_t n, const chat_dict *kw, chat_value *out)
{
    (void)kw;
    return affix(c, at, self, args, n, true, out);
}

static int64_t int_param(const chat_value *v, int64_t fallback)
{
    if (!v || v->type == CHAT_NONE)
        return fallback;
    return v->type == CHAT_INT ? v->i : v->type == CHAT_BOOL ? v->b : fallback;
}

static bool space_at(const char *p) { return chat_is_space((unsigned char)*p); }

// str.split(sep, maxsplit) with a separator: pieces appended to l in order.
static int split_on_sep(render_ctx *c, const chat_value *s, const chat_value *sep, int64_t maxsplit,
                        chat_list *l)
{
    const char *p = s->s.ptr, *end = p + s->s.len;
    for (int64_t splits = 0;; splits++) {
        const char *hit = (maxsplit >= 0 && splits >= maxsplit)
            ? NULL
            : chat_memmem(p, (size_t)(end - p), sep->s.ptr, sep->s.len);
        const char *stop = hit ? hit : end;
        if (chat_list_push(&c->arena, l, chat_str(p, (size_t)(stop - p))))
            return GARLIC_ENOMEM;
        if (!hit)
            return GARLIC_OK;
        p = hit + sep->s.len;
    }
}

// str.split(None, maxsplit): words between runs of whitespace, appended to l in order.
static int split_on_space(render_ctx *c, const chat_value *s, int64_t maxsplit, chat_list *l)
{
    const char *p = s->s.ptr, *end = p + s->s.len;
    for (int64_t splits = 0;; splits++) {
        while (p < end && space_at(p))
            p++;
        if (p == end)
            return GARLIC_OK;
        const char *w = p;
        if (maxsplit >= 0 && splits >= maxsplit) // the rest, trailing whitespace and all
            return chat_list_push(&c->arena, l, chat_str(w, (size_t)(end - w)));
        while (p < end && !space_at(p))
            p++;
        if (chat_list_push(&c->arena, l, chat_str(w, (size_t)(p - w))))
            return GARLIC_ENOMEM;
    }
}

// str.rsplit with a separator: pieces pushed onto rev from the right (caller reverses).
static int rsplit_on_sep(render_ctx *c, const chat_value *s, const chat_value *sep,
                         int64_t maxsplit, chat_list *rev)
{
    const char *p = s->s.ptr, *hi = p + s->s.len;
    for (int64_t splits = 0; maxsplit < 0 || splits < maxsplit; splits++) {
        const char *hit = NULL;
        for (const char *t = p; t + sep->s.len <= hi; t++)
            if (memcmp(t, sep->s.ptr, sep->s.len) == 0)
                hit = t;
        if (!hit)
            break;
        if (chat_list_push(&c->arena, rev,
                           chat_str(hit + sep->s.len, (size_t)(hi - hit - sep->s.len))))
            return GARLIC_ENOMEM;
        hi = hit;
    }
    return chat_list_push(&c->arena, rev, chat_str(p, (size_t)(hi - p)));
}

// str.rsplit(None, maxsplit): words from the right, pushed onto rev (caller reverses).
static int rsplit_on_space(render_ctx *c, const chat_value *s, int64_t maxsplit, chat_list *rev)
{
    const char *p = s->s.ptr, *hi = p + s->s.len;
    for (int64_t splits = 0;; splits++) {
        while (hi > p && space_at(hi - 1))
            hi--;
        if (hi == p)
            return GARLIC_OK;
        const char *w = hi;
        if (maxsplit >= 0 && splits >= maxsplit) // the rest, leading whitespace and all
            return chat_list_push(&c->arena, rev, chat_str(p, (size_t)(hi - p)));
        while (w > p && !space_at(w - 1))
            w--;
        if (chat_list_push(&c->arena, rev, chat_str(w, (size_t)(hi - w))))
            return GARLIC_ENOMEM;
        hi = w;
    }
}

// Python str.split / str.rsplit (sep NULL: on whitespace) into l.
static int split_into(render_ctx *c, const chat_value *s, const chat_value *sep, int64_t maxsplit,
                      bool reverse, chat_list *l)
{
    if (!reverse || maxsplit < 0)
        return sep ? split_on_sep(c, s, sep, maxsplit, l) : split_on_space(c, s, maxsplit, l);
    chat_list *rev = chat_list_new(&c->arena, 0);
    if (!rev)
        return GARLIC_ENOMEM;
    int rc = sep ? rsplit_on_sep(c, s, sep, maxsplit, rev) : rsplit_on_space(c, s, maxsplit, rev);
    for (size_t i = rev->n; rc == GARLIC_OK && i-- > 0;)
        rc = chat_list_push(&c->arena, l, rev->items[i]);
    return rc;
}

// split / rsplit (sep=None, maxsplit=-1) as Python's str methods.
static int split_common(render_ctx *c, const chat_node *at, const chat_value *self,
                        const chat_value *args, size_t n, const chat_dict *kw, bool reverse,
                        chat_value *out)
{
    const chat_value *sep = param(args, n, kw, 0, "sep");
    int64_t maxsplit = int_param(param(args, n, kw, 1, "maxsplit"), -1);
    if (sep && sep->type == CHAT_NONE)
        sep = NULL;
    if (sep && need_str(c, at, sep, "separator"))
        return c->err->code;
    if (sep && sep->s.len == 0)
        return chat_render_error(c, at, GARLIC_EINVAL, "ValueError: empty separator");
    chat_list *l = chat_list_new(&c->arena, 0);
    if (!l || split_into(c, self, sep, maxsplit, reverse, l))
        return chat_render_nomem(c, at);
    *out = (chat_value){.type = CHAT_LIST, .list = l};
    return GARLIC_OK;
}

static int m_split(render_ctx *c, const chat_node *at, const chat_value *self,
                   const chat_value *args, size_t n, const chat_dict *kw, chat_value *out)
{
    return split_common(c, at, self, args, n, kw, false, out);
}

static int m_rsplit(render_ctx *c, const chat_node *at, const chat_value *self,
                    const chat_value *args, size_t n, const chat_dict *kw, chat_value *out)
{
    return split_common(c, at, self, args, n, kw, true, out);
}

// Python str.replace, including the empty-pattern case ("ab".replace("", "-") == "-a-b-").
int chat_replace(render_ctx *c, const chat_node *at, const chat_value *s, const chat_value *old,
                 const chat_value *new_text, int64_t count, chat_value *out)
{
    chat_buf b = {.max = c->max_output};
    const char *p = s->s.ptr, *end = p + s->s.len;
    int64_t done = 0;
    if (old->s.len == 0) {
        while (count < 0 || done < count) {
            if (chat_buf_append(&c->arena, &b, new_text->s.ptr, new_text->s.len))
                return chat_render_nomem(c, at);
            done++;
            if (p == end)
                break;
            size_t len = chat_utf8_offset(p, (size_t)(end - p), 1);
            if (chat_buf_append(&c->arena, &b, p, len))
                return chat_render_nomem(c, at);
            p += len;
        }
    } else {
        while (p < end && (count < 0 || done < count)) {
            const char *hit = chat_memmem(p, (size_t)(end - p), old->s.ptr, old->s.len);
            if (!hit)
                break;
            if (chat_buf_append(&c->arena, &b, p, (size_t)(hit - p)) ||
                chat_buf_append(&c->arena, &b, new_text->s.ptr, new_text->s.len))
                return chat_render_nomem(c, at);
            p = hit + old->s.len;
            done++;
        }
    }
    if (chat_buf_append(&c->arena, &b, p, (size_t)(end - p)))
        return chat_render_nomem(c, at);
    return str_result(c, at, &b, out);
}

static int m_replace(render_ctx *c, const chat_node *at, const chat_value *self,
                     const chat_value *args, size_t n, const chat_dict *kw, chat_value *out)
{
    const chat_value *old = param(args, n, kw, 0, "old"), *new_text = param(args, n, kw, 1, "new");
    if (need_str(c, at, old, "replace arg 1") || need_str(c, at, new_text, "replace arg 2"))
        return c->err->code;
    return chat_replace(c, at, self, old, new_text, int_param(param(args, n, kw, 2, "count"), -1),
                        out);
}

// Simple case mapping for ASCII, Latin-1, Latin Extended-A, Greek and Cyrillic; other
// code points are left as they are. Returns the other-case code point or cp itself.
static uint32_t cp_to_case(uint32_t cp, bool upper)
{
    uint32_t lo = cp, up = cp;
    if ((cp >= 'A' && cp <= 'Z') || (cp >= 0xc0 && cp <= 0xde && cp != 0xd7) ||
        (cp >= 0x391 && cp <= 0x3ab && cp != 0x3a2) || (cp >= 0x410 && cp <= 0x42f))
        lo = cp + 32;
    else if ((cp >= 'a' && cp <= 'z') || (cp >= 0xe0 && cp <= 0xfe && cp != 0xf7) ||
             (cp >= 0x3b1 && cp <= 0x3cb && cp != 0x3c2) || (cp >= 0x430 && cp <= 0x44f))
        up = cp - 32;
    else if (cp >= 0x400 && cp <= 0x40f)
        lo = cp + 80;
    else if (cp >= 0x450 && cp <= 0x45f)
        up = cp - 80;
    else if ((cp >= 0x100 && cp <= 0x137) || (cp >= 0x14a && cp <= 0x177)) // even upper, odd lower
        cp % 2 ? (up = cp - 1) : (lo = cp + 1);
    else if ((cp >= 0x139 && cp <= 0x148) || (cp >= 0x179 && cp <= 0x17e)) // odd upper, even lower
        cp % 2 ? (lo = cp + 1) : (up = cp - 1);
    return upper ? up : lo;
}

static bool cp_cased(uint32_t cp)
{
    return cp_to_case(cp, true) != cp || cp_to_case(cp, false) != cp;
}

static bool jinja_word_break(uint32_t cp)
{
    return cp == '-' || cp == '(' || cp == '{' || cp == '[' || cp == '<' || chat_is_space(cp);
}

// Case mapping for str.lower/upper/title/capitalize and the title filter (see chat_case_mode).
int chat_case(render_ctx *c, const chat_node *at, const chat_value *s, chat_case_mode mode,
              chat_value *out)
{
    char *d = chat_arena_alloc(&c->arena, s->s.len + 1);
    if (!d)
        return chat_render_nomem(c, at);
    size_t n = 0;
    bool prev_cased = false, word_start = true;
    for (size_t i = 0; i < s->s.len;) {
        uint32_t cp;
        size_t len = decode(s->s.ptr + i, s->s.len - i, &cp);
        bool up = mode == CHAT_CASE_UPPER || (mode == CHAT_CASE_TITLE && !prev_cased) ||
            (mode == CHAT_CASE_CAPITALIZE && i == 0) ||
            (mode == CHAT_CASE_JINJA_TITLE && word_start);
        uint32_t mapped = cp_to_case(cp, up);
        if (mapped == cp || (len == 1 && cp >= 0x80)) {
            memcpy(d + n, s->s.ptr + i, len); // unmapped or an invalid byte: copied as it is
            n += len;
        } else {
            n += utf8_encode(mapped, d + n);
        }
        prev_cased = cp_cased(cp);
        word_start = jinja_word_break(cp);
        i += len;
    }
    *out = chat_str(d, n);
    return GARLIC_OK;
}

static int m_upper(render_ctx *c, const chat_node *at, const chat_value *self,
                   const chat_value *args, size_t n, const chat_dict *kw, chat_value *out)
{
    (void)args, (void)n, (void)kw;
    return chat_case(c, at, self, CHAT_CASE_UPPER, out);
}

static int m_lower(render_ctx *c, const chat_node *at, const chat_value *self,
                   const chat_value *args, size_t n, const chat_dict *kw, chat_value *out)
{
    (void)args, (void)n, (void)kw;
    return chat_case(c, at, self, CHAT_CASE_LOWER, out);
}

static int m_title(render_ctx *c, const chat_node *at, const chat_value *self,
                   const chat_value *args, size_t n, const chat_dict *kw, chat_value *out)
{
    (void)args, (void)n, (void)kw;
    return chat_case(c, at, self, CHAT_CASE_TITLE, out);
}

static int m_capitalize(render_ctx *c, const chat_node *at, const chat_value *self,
                        const chat_value *args, size_t n, const chat_dict *kw, chat_value *out)
{
    (void)args, (void)n, (void)kw;
    return chat_case(c, at, self, CHAT_CASE_CAPITALIZE, out);
}

// str.format with "{}", "{0}" and "{name}" fields (no format specs).
static int m_format(render_ctx *c, const chat_node *at, const chat_value *self,
                    const chat_value *args, size_t n, const chat_dict *kw, chat_value *out)
{
    chat_buf b = {.max = c->max_output};
    size_t next = 0;
    const char *p = self->s.ptr, *end = p + self->s.len;
    while (p < end) {
        if ((*p == '{' || *p == '}') && p + 1 < end && p[1] == *p) {
            if (chat_buf_append(&c->arena, &b, p, 1))
                return chat_render_nomem(c, at);
            p += 2;
            continue;
        }
        if (*p != '{') {
            if (chat_buf_append(&c->arena, &b, p++, 1))
                return chat_render_nomem(c, at);
            continue;
        }
        const char *close = memchr(p, '}', (size_t)(end - p));
        if (!close)
            return chat_render_error(c, at, GARLIC_EINVAL,
                                     "ValueError: Single '{' encountered in format string");
        const char *field = p + 1;
        size_t flen = (size_t)(close - field);
        const chat_value *v = NULL;
        if (flen == 0)
            v = next < n ? &args[next++] : NULL;
        else if (field[0] >= '0' && field[0] <= '9')
            v = (size_t)atoi(field) < n ? &args[atoi(field)] : NULL;
        else
            v = chat_dict_get(kw, field, flen);
        if (!v)
            return chat_render_error(c, at, GARLIC_EINVAL,
                                     "IndexError: format field '%.*s' has no argument", (int)flen,
                                     field);
        if (chat_value_str(&c->arena, &b, v))
            return chat_render_nomem(c, at);
        p = close + 1;
    }
    return str_result(c, at, &b, out);
}

static int m_find(render_ctx *c, const chat_node *at, const chat_value *self,
                  const chat_value *args, size_t n, const chat_dict *kw, chat_value *out)
{
    const chat_value *sub = param(args, n, kw, 0, "sub");
    if (need_str(c, at, sub, "find arg"))
        return c->err->code;
    const char *hit = sub->s.len ? chat_memmem(self->s.ptr, self->s.len, sub->s.ptr, sub->s.len)
                                 : self->s.ptr;
    *out = chat_int(hit ? (int64_t)chat_utf8_count(self->s.ptr, (size_t)(hit - self->s.ptr)) : -1);
    return GARLIC_OK;
}

// str.count(sub) (non-overlapping) and list.count(x).
static int m_count(render_ctx *c, const chat_node *at, const chat_value *self,
                   const chat_value *args, size_t n, const chat_dict *kw, chat_value *out)
{
    const chat_value *sub = param(args, n, kw, 0, "x");
    if (self->type == CHAT_LIST) {
        int64_t count = 0;
        for (size_t i = 0; sub && i < self->list->n; i++)
            count += chat_equal(&self->list->items[i], sub);
        *out = chat_int(count);
        return GARLIC_OK;
    }
    if (need_str(c, at, sub, "count arg"))
        return c->err->code;
    int64_t count = 0;
    if (sub->s.len == 0) {
        *out = chat_int((int64_t)chat_utf8_count(self->s.ptr, self->s.len) + 1);
        return GARLIC_OK;
    }
    for (const char *p = self->s.ptr, *end = p + self->s.len;
         (p = chat_memmem(p, (size_t)(end - p), sub->s.ptr, sub->s.len)); p += sub->s.len)
        count++;
    *out = chat_int(count);
    return GARLIC_OK;
}

// str.join(iterable): every item must be a string, as in Python.
static int m_join(render_ctx *c, const chat_node *at, const chat_value *self,
                  const chat_value *args, size_t n, const chat_dict *kw, chat_value *out)
{
    chat_list *items;
    const chat_value *seq = param(args, n, kw, 0, "iterable");
    if (!seq)
        return chat_render_error(c, at, GARLIC_ETYPE,
                                 "TypeError: join() takes exactly one argument");
    int rc = chat_render_iterate(c, at, seq, &items);
    if (rc)
        return rc;
    chat_buf b = {.max = c->max_output};
    for (size_t i = 0; i < items->n; i++) {
        if (need_str(c, at, &items->items[i], "sequence item"))
            return c->err->code;
        if ((i && chat_buf_append(&c->arena, &b, self->s.ptr, self->s.len)) ||
            chat_buf_append(&c->arena, &b, items->items[i].s.ptr, items->items[i].s.len))
            return chat_render_nomem(c, at);
    }
    return str_result(c, at, &b, out);
}

// str.splitlines(): lines without their \n, \r or \r\n endings.
static int m_splitlines(render_ctx *c, const chat_node *at, const chat_value *self,
                        const chat_value *args, size_t n, const chat_dict *kw, chat_value *out)
{
    (void)args, (void)n, (void)kw;
    chat_list *l = chat_list_new(&c->arena, 0);
    if (!l)
        return chat_render_nomem(c, at);
    const char *p = self->s.ptr, *end = p + self->s.len;
    while (p < end) {
        const char *q = p;
        while (q < end && *q != '\n' && *q != '\r')
            q++;
        if (chat_list_push(&c->arena, l, chat_str(p, (size_t)(q - p))))
            return chat_render_nomem(c, at);
        p = q < end && *q == '\r' && q + 1 < end && q[1] == '\n' ? q + 2 : q + (q < end);
    }
    *out = (chat_value){.type = CHAT_LIST, .list = l};
    return GARLIC_OK;
}

// The str.is* predicates, over ASCII classes (bytes >= 0x80 count as letters).
typedef enum str_class {
    STR_CLASS_DIGIT, // isdigit
    STR_CLASS_ALPHA, // isalpha
    STR_CLASS_ALNUM, // isalnum
    STR_CLASS_SPACE, // isspace
    STR_CLASS_LOWER, // islower: no upper-case letter and at least one lower-case one
    STR_CLASS_UPPER, // isupper: the other way round
    STR_CLASS_COUNT
} str_class;

static int char_class(const chat_value *self, str_class kind, chat_value *out)
{
    bool all = self->s.len > 0, cased = false;
    for (size_t i = 0; i < self->s.len && all; i++) {
        unsigned char ch = (unsigned char)self->s.ptr[i];
        bool digit = ch >= '0' && ch <= '9', lower = ch >= 'a' && ch <= 'z',
             upper = ch >= 'A' && ch <= 'Z';
        switch (kind) {
        case STR_CLASS_DIGIT: all = digit; break;
        case STR_CLASS_ALPHA: all = lower || upper || ch >= 0x80; break;
        case STR_CLASS_ALNUM: all = digit || lower || upper || ch >= 0x80; break;
        case STR_CLASS_SPACE: all = chat_is_space(ch); break;
        case STR_CLASS_LOWER:
            all = !upper;
            cased |= lower;
            break;
        default:
            all = !lower;
            cased |= upper;
            break;
        }
    }
    bool needs_cased = kind == STR_CLASS_LOWER || kind == STR_CLASS_UPPER;
    *out = chat_bool(all && (!needs_cased || cased));
    return GARLIC_OK;
}

static int m_isdigit(render_ctx *c, const chat_node *at, const chat_value *self,
                     const chat_value *args, size_t n, const chat_dict *kw, chat_value *out)
{
    (void)c, (void)at, (void)args, (void)n, (void)kw;
    return char_class(self, STR_CLASS_DIGIT, out);
}

static int m_isalpha(render_ctx *c, const chat_node *at, const chat_value *self,
                     const chat_value *args, size_t n, const chat_dict *kw, chat_value *out)
{
    (void)c, (void)at, (void)args, (void)n, (void)kw;
    return char_class(self, STR_CLASS_ALPHA, out);
}

static int m_isalnum(render_ctx *c, const chat_node *at, const chat_value *self,
                     const chat_value *args, size_t n, const chat_dict *kw, chat_value *out)
{
    (void)c, (void)at, (void)args, (void)n, (void)kw;
    return char_class(self, STR_CLASS_ALNUM, out);
}

static int m_isspace(render_ctx *c, const chat_node *at, const chat_value *self,
                     const chat_value *args, size_t n, const chat_dict *kw, chat_value *out)
{
    (void)c, (void)at, (void)args, (void)n, (void)kw;
    return char_class(self, STR_CLASS_SPACE, out);
}

static int m_islower(render_ctx *c, const chat_node *at, const chat_value *self,
                     const chat_value *args, size_t n, const chat_dict *kw, chat_value *out)
{
    (void)c, (void)at, (void)args, (void)n, (void)kw;
    return char_class(self, STR_CLASS_LOWER, out);
}

static int m_isupper(render_ctx *c, const chat_node *at, const chat_value *self,
                     const chat_value *args, size_t n, const chat_dict *kw, chat_value *out)
{
    (void)c, (void)at, (void)args, (void)n, (void)kw;
    return char_class(self, STR_CLASS_UPPER, out);
}

static const method str_methods[] = {{"strip", m_strip},           {"lstrip", m_lstrip},
                                     {"rstrip", m_rstrip},         {"startswith", m_startswith},
                                     {"endswith", m_endswith},     {"split", m_split},
                                     {"rsplit", m_rsplit},         {"replace", m_replace},
                                     {"upper", m_upper},           {"lower", m_lower},
                                     {"title", m_title},           {"capitalize", m_capitalize},
                                     {"format", m_format},         {"find", m_find},
                                     {"count", m_count},           {"join", m_join},
                                     {"splitlines", m_splitlines}, {"isdigit", m_isdigit},
                                     {"isalpha", m_isalpha},       {"isalnum", m_isalnum},
                                     {"isspace", m_isspace},       {"islower", m_islower},
                                     {"isupper", m_isupper},       {NULL, NULL}};

// ---- dict and list methods -------------------------------------------------------------

// dict.items() as a list of (key, value) tuples.
int chat_dict_items(render_ctx *c, const chat_node *at, const chat_dict *d, chat_value *out)
{
    chat_list *l = chat_list_new(&c->arena, d->n);
    if (!l)
        return chat_render_nomem(c, at);
    for (size_t i = 0; i < d->n; i++) {
        chat_list *pair = chat_list_new(&c->arena, 2);
        if (!pair)
            return chat_render_nomem(c, at);
        pair->items[0] = d->keys[i];
        pair->items[1] = d->vals[i];
        pair->n = 2;
        pair->is_tuple = true;
        l->items[l->n++] = (chat_value){.type = CHAT_LIST, .list = pair};
    }
    *out = (chat_value){.type = CHAT_LIST, .list = l};
    return GARLIC_OK;
}

static int m_items(render_ctx *c, const chat_node *at, const chat_value *self,
                   const chat_value *args, size_t n, const chat_dict *kw, chat_value *out)
{
    (void)args, (void)n, (void)kw;
    int rc = chat_dict_items(c, at, self->dict, out);
    if (rc == GARLIC_OK)
        out->list->view = CHAT_VIEW_ITEMS;
    return rc;
}

static int keys_or_values(render_ctx *c, const chat_node *at, const chat_dict *d, bool keys,
                          chat_value *out)
{
    chat_list *l = chat_list_new(&c->arena, d->n);
    if (!l)
        return chat_render_nomem(c, at);
    if (d->n)
        memcpy(l->items, keys ? d->keys : d->vals, d->n * sizeof *l->items);
    l->n = d->n;
    l->view = keys ? CHAT_VIEW_KEYS : CHAT_VIEW_VALUES;
    *out = (chat_value){.type = CHAT_LIST, .list = l};
    return GARLIC_OK;
}

static int m_keys(render_ctx *c, const chat_node *at, const chat_value *self,
                  const chat_value *args, size_t n, const chat_dict *kw, chat_value *out)
{
    (void)args, (void)n, (void)kw;
    return keys_or_values(c, at, self->dict, true, out);
}

static int m_values(render_ctx *c, const chat_node *at, const chat_value *self,
                    const chat_value *args, size_t n, const chat_dict *kw, chat_value *out)
{
    (void)args, (void)n, (void)kw;
    return keys_or_values(c, at, self->dict, false, out);
}

static int m_get(render_ctx *c, const chat_node *at, const chat_value *self, const chat_value *args,
                 size_t n, const chat_dict *kw, chat_value *out)
{
    const chat_value *key = param(args, n, kw, 0, "key"), *def = param(args, n, kw, 1, "default");
    if (!key)
        return chat_render_error(c, at, GARLIC_ETYPE,
                                 "TypeError: get expected at least 1 argument, got 0");
    const chat_value *hit = chat_dict_find(self->dict, key);
    *out = hit ? *hit : def ? *def : chat_none();
    return GARLIC_OK;
}

static int m_index(render_ctx *c, const chat_node *at, const chat_value *self,
                   const chat_value *args, size_t n, const chat_dict *kw, chat_value *out)
{
    const chat_value *x = param(args, n, kw, 0, "x");
    for (size_t i = 0; x && i < self->list->n; i++)
        if (chat_equal(&self->list->items[i], x)) {
            *out = chat_int((int64_t)i);
            return GARLIC_OK;
        }
    return chat_render_error(c, at, GARLIC_EINVAL, "ValueError: value is not in list");
}

static const method dict_methods[] = {
    {"items", m_items}, {"keys", m_keys}, {"values", m_values}, {"get", m_get}, {NULL, NULL}};
static const method list_methods[] = {{"index", m_index}, {"count", m_count}, {NULL, NULL}};

// Mutating methods the immutable sandbox refuses (SecurityError when called or used).
static const char *const unsafe_methods[] = {"append",  "extend", "insert",  "pop",    "remove",
                                             "reverse", "sort",   "clear",   "update", "setdefault",
                                             "popitem", "add",    "discard", "copy",   NULL};

// ---- the loop object --------------------------------------------------------------------

static int m_cycle(render_ctx *c, const chat_node *at, const chat_value *self,
                   const chat_value *args, size_t n, const chat_dict *kw, chat_value *out)
{
    (void)kw;
    if (n == 0)
        return chat_render_error(c, at, GARLIC_ETYPE, "TypeError: no items for cycling given");
    *out = args[self->loop->index0 % n];
    return GARLIC_OK;
}

// Binds name from a method table to self as a callable; false when absent or out of memory.
static bool bind_method(render_ctx *c, const method *table, const char *name,
                        const chat_value *self, chat_value *out)
{
    for (size_t i = 0; table[i].name; i++) {
        if (strcmp(table[i].name, name) != 0)
            continue;
        chat_callable *fn = chat_arena_alloc(&c->arena, sizeof *fn);
        if (!fn)
            return false;
        fn->name = table[i].name;
        fn->fn = table[i].fn;
        fn->self = *self;
        *out = (chat_value){.type = CHAT_CALLABLE, .fn = fn};
        return true;
    }
    return false;
}

// The attributes of a for loop's `loop` variable.
static bool loop_attr(render_ctx *c, const chat_value *obj, const char *name, chat_value *out)
{
    static const method loop_methods[] = {{"cycle", m_cycle}, {NULL, NULL}};
    const chat_loop *l = obj->loop;
    size_t len = l->items->n, i = l->index0;
    if (strcmp(name, "index") == 0)
        *out = chat_int((int64_t)i + 1);
    else if (strcmp(name, "index0") == 0)
        *out = chat_int((int64_t)i);
    else if (strcmp(name, "revindex") == 0)
        *out = chat_int((int64_t)(len - i));
    else if (strcmp(name, "revindex0") == 0)
        *out = chat_int((int64_t)(len - i - 1));
    else if (strcmp(name, "first") == 0)
        *out = chat_bool(i == 0);
    else if (strcmp(name, "last") == 0)
        *out = chat_bool(i + 1 == len);
    else if (strcmp(name, "length") == 0)
        *out = chat_int((int64_t)len);
    else if (strcmp(name, "depth") == 0)
        *out = chat_int((int64_t)l->depth);
    else if (strcmp(name, "depth0") == 0)
        *out = chat_int((int64_t)l->depth - 1);
    else if (strcmp(name, "previtem") == 0 && i > 0)
        *out = l->items->items[i - 1];
    else if (strcmp(name, "nextitem") == 0 && i + 1 < len)
        *out = l->items->items[i + 1];
    else
        return bind_method(c, loop_methods, name, obj, out);
    return true;
}

static chat_value missing(const char *name, chat_type owner, bool unsafe)
{
    chat_value v = chat_undefined(name);
    v.undef.owner = owner;
    v.undef.unsafe = unsafe;
    return v;
}

// a.name: methods and attributes first, then (for dicts and namespaces) the item.
int chat_get_attr(render_ctx *c, const chat_node *at, const chat_value *obj, const char *name,
                  chat_value *out)
{
    if (name[0] == '_') {
        *out = missing(name, obj->type, true);
        return GARLIC_OK;
    }
    const method *table = obj->type == CHAT_STRING ? str_methods
        : obj->type == CHAT_DICT                   ? dict_methods
        : obj->type == CHAT_LIST                   ? list_methods
                                                   : NULL;
    if (obj->type == CHAT_LOOP) {
        if (!loop_attr(c, obj, name, out))
            *out = missing(name, obj->type, false);
        return c->arena.failed ? chat_render_nomem(c, at) : GARLIC_OK;
    }
    if (table && bind_method(c, table, name, obj, out))
        return GARLIC_OK;
    if (c->arena.failed)
        return chat_render_nomem(c, at);
    for (size_t i = 0; (obj->type == CHAT_LIST || obj->type == CHAT_DICT) && unsafe_methods[i]; i++)
        if (strcmp(name, unsafe_methods[i]) == 0) {
            *out = missing(name, obj->type, true);
            return GARLIC_OK;
        }
    if (obj->type == CHAT_DICT || obj->type == CHAT_NAMESPACE) {
        const chat_value *v = chat_dict_get(obj->dict, name, strlen(name));
        if (v) {
            *out = *v;
            return GARLIC_OK;
        }
    }
    *out = missing(name, obj->type, false);
    return GARLIC_OK;
}

// a[key]: the item first (dict key, list or string index), then the attribute.
int chat_get_item(render_ctx *c, const chat_node *at, const chat_value *obj, const chat_value *key,
                  chat_value *out)
{
    if (key->type == CHAT_UNDEFINED)
        return chat_render_undefined_error(c, at, key);
    if (obj->type == CHAT_DICT || obj->type == CHAT_NAMESPACE) {
        const chat_value *v = chat_dict_find(obj->dict, key);
        if (v) {
            *out = *v;
            return GARLIC_OK;
        }
    }
    bool index = key->type == CHAT_INT || key->type == CHAT_BOOL;
    int64_t i = key->type == CHAT_INT ? key->i : key->type == CHAT_BOOL ? key->b : 0;
    if (index && (obj->type == CHAT_LIST || obj->type == CHAT_STRING)) {
        int64_t len = obj->type == CHAT_LIST ? (int64_t)obj->list->n
                                             : (int64_t)chat_utf8_count(obj->s.ptr, obj->s.len);
        if (i < 0)
            i += len;
        if (i < 0 || i >= len) {
            *out = missing(NULL, obj->type, false);
            return GARLIC_OK;
        }
        if (obj->type == CHAT_LIST) {
            *out = obj->list->items[i];
            return GARLIC_OK;
        }
        size_t from = chat_utf8_offset(obj->s.ptr, obj->s.len, (size_t)i);
        *out = chat_str(obj->s.ptr + from,
                        chat_utf8_offset(obj->s.ptr + from, obj->s.len - from, 1));
        return GARLIC_OK;
    }
    if (key->type == CHAT_STRING) {
        char *name = chat_arena_alloc(&c->arena, key->s.len + 1);
        if (!name)
            return chat_render_nomem(c, at);
        memcpy(name, key->s.ptr, key->s.len);
        if (strlen(name) == key->s.len)
            return chat_get_attr(c, at, obj, name, out);
    }
    *out = missing(NULL, obj->type, false);
    return GARLIC_OK;
}

// ---- globals ----------------------------------------------------------------------------

static int g_range(render_ctx *c, const chat_node *at, const chat_value *self,
                   const chat_value *args, size_t n, const chat_dict *kw, chat_value *out)
{
    (void)self, (void)kw;
    int64_t start = 0, stop, step = 1;
    for (size_t i = 0; i < n; i++)
        if (args[i].type != CHAT_INT && args[i].type != CHAT_BOOL)
            return chat_render_error(c, at, GARLIC_ETYPE,
                                     "TypeError: '%s' object cannot be interpreted as an integer",
                                     chat_type_name(&args[i]));
    if (n == 1) {
        stop = int_param(&args[0], 0);
    } else if (n == 2 || n == 3) {
        start = int_param(&args[0], 0);
        stop = int_param(&args[1], 0);
        step = n == 3 ? int_param(&args[2], 1) : 1;
    } else {
        return chat_render_error(c, at, GARLIC_ETYPE,
                                 "TypeError: range expected 1 to 3 arguments, got %zu", n);
    }
    if (step == 0)
        return chat_render_error(c, at, GARLIC_EINVAL,
                                 "ValueError: range() arg 3 must not be zero");
    double count_f = step > 0 ? ((double)stop - (double)start) / (double)step
                              : ((double)start - (double)stop) / (double)-step;
    if (count_f > (double)c->max_steps)
        return chat_render_error(c, at, GARLIC_EINVAL, "range of %.0f items is too long", count_f);
    chat_list *l = chat_list_new(&c->arena, 0);
    if (!l)
        return chat_render_nomem(c, at);
    for (int64_t v = start; step > 0 ? v < stop : v > stop; v += step) {
        if (!chat_render_tick(c))
            return chat_render_error(c, at, GARLIC_EINVAL, "template runs too long");
        if (chat_list_push(&c->arena, l, chat_int(v)))
            return chat_render_nomem(c, at);
    }
    *out = (chat_value){.type = CHAT_LIST, .list = l};
    return GARLIC_OK;
}

// dict(...) and namespace(...): an optional mapping argument, then the keyword arguments.
static int make_dict(render_ctx *c, const chat_node *at, const chat_value *args, size_t n,
                     const chat_dict *kw, chat_type type, chat_value *out)
{
    chat_dict *d = chat_dict_new(&c->arena, kw->n);
    if (!d)
        return chat_render_nomem(c, at);
    if (n == 1 && (args[0].type == CHAT_DICT || args[0].type == CHAT_NAMESPACE)) {
        for (size_t i = 0; i < args[0].dict->n; i++)
            if (chat_dict_set(&c->arena, d, args[0].dict->keys[i], args[0].dict->vals[i]))
                return chat_render_nomem(c, at);
    } else if (n) {
        return chat_render_error(c, at, GARLIC_ETYPE, "TypeError: expected a mapping argument");
    }
    for (size_t i = 0; i < kw->n; i++)
        if (chat_dict_set(&c->arena, d, kw->keys[i], kw->vals[i]))
            return chat_render_nomem(c, at);
    *out = (chat_value){.type = type, .dict = d};
    return GARLIC_OK;
}

static int g_namespace(render_ctx *c, const chat_node *at, const chat_value *self,
                       const chat_value *args, size_t n, const chat_dict *kw, chat_value *out)
{
    (void)self;
    return make_dict(c, at, args, n, kw, CHAT_NAMESPACE, out);
}

static int g_dict(render_ctx *c, const chat_node *at, const chat_value *self,
                  const chat_value *args, size_t n, const chat_dict *kw, chat_value *out)
{
    (void)self;
    return make_dict(c, at, args, n, kw, CHAT_DICT, out);
}

// raise_exception(message): fails the render with exactly message.
static int g_raise(render_ctx *c, const chat_node *at, const chat_value *self,
                   const chat_value *args, size_t n, const chat_dict *kw, chat_value *out)
{
    (void)self, (void)kw, (void)out;
    chat_buf b = {0};
    if (n && chat_value_str(&c->arena, &b, &args[0]))
        return chat_render_nomem(c, at);
    c->raised = true;
    return garlic_error_set(c->err, GARLIC_EINVAL, "%s", b.data ? b.data : "");
}

// strftime_now(format): the render's fixed time (or the local time) through strftime
// in the C locale.
static int g_strftime_now(render_ctx *c, const chat_node *at, const chat_value *self,
                          const chat_value *args, size_t n, const chat_dict *kw, chat_value *out)
{
    (void)self;
    const chat_value *fmt = param(args, n, kw, 0, "format");
    if (need_str(c, at, fmt, "strftime format"))
        return c->err->code;
    struct tm tm = {0};
    if (c->has_now) {
        tm.tm_year = c->now[0] - 1900;
        tm.tm_mon = c->now[1] - 1;
        tm.tm_mday = c->now[2];
        tm.tm_hour = c->now[3];
        tm.tm_min = c->now[4];
        tm.tm_sec = c->now[5];
        time_t t = timegm(&tm); // normalizes and fills the weekday and day of year
        gmtime_r(&t, &tm);
    } else {
        time_t t = time(NULL);
        localtime_r(&t, &tm);
    }
    char fmtz[256], text[512];
    if (fmt->s.len >= sizeof fmtz)
        return chat_render_error(c, at, GARLIC_EINVAL, "strftime format too long");
    memcpy(fmtz, fmt->s.ptr, fmt->s.len);
    fmtz[fmt->s.len] = '\0';
    size_t len = strftime(text, sizeof text, fmtz, &tm);
    *out = chat_str_copy(&c->arena, text, len);
    return out->type == CHAT_STRING ? GARLIC_OK : chat_render_nomem(c, at);
}

static chat_callable globals[] = {
    {.name = "range", .fn = g_range},
    {.name = "namespace", .fn = g_namespace},
    {.name = "dict", .fn = g_dict},
    {.name = "raise_exception", .fn = g_raise},
    {.name = "strftime_now", .fn = g_strftime_now},
};

bool chat_global(const char *name, chat_value *out)
{
    for (size_t i = 0; i < sizeof globals / sizeof globals[0]; i++)
        if (strcmp(globals[i].name, name) == 0) {
            *out = (chat_value){.type = CHAT_CALLABLE, .fn = &globals[i]};
            return true;
        }
    return false;
}
