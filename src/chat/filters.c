// SPDX-License-Identifier: MIT
// Jinja2's built-in filters and tests as chat templates use them, with Jinja2 3.1's
// argument names and edge cases (soft string conversion, undefined as empty, Python's
// int/float parsing and banker's rounding), plus transformers' tojson. Each filter takes
// its operand and evaluated arguments. Filters and tests are each listed once, in a table at
// the end of their section: the parser (which rejects unknown names), `is filter`, `is test`,
// map, select and reject all look names up there.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/internal.h"

typedef int (*filter_fn)(render_ctx *c, const chat_node *at, const chat_value *v,
                         const chat_value *args, size_t n, const chat_dict *kw, chat_value *out);

static const chat_value *param(const chat_value *args, size_t n, const chat_dict *kw, size_t i,
                               const char *name)
{
    if (i < n)
        return &args[i];
    return name && kw ? chat_dict_get(kw, name, strlen(name)) : NULL;
}

static bool flag(const chat_value *v, bool fallback) { return v ? chat_truthy(v) : fallback; }

static chat_value list_value(chat_list *l) { return (chat_value){.type = CHAT_LIST, .list = l}; }

// Jinja's soft_str: strings as they are, undefined as "", anything else through str().
static int soft_str(render_ctx *c, const chat_node *at, const chat_value *v, chat_value *out)
{
    if (v->type == CHAT_STRING) {
        *out = *v;
        return GARLIC_OK;
    }
    chat_buf b = {.max = c->max_output};
    if (chat_value_str(&c->arena, &b, v))
        return chat_render_nomem(c, at);
    *out = chat_str(b.data ? b.data : "", b.len);
    return GARLIC_OK;
}

// Applies the named filter, counting a step and a nesting level (map can recurse).
static int run_filter(render_ctx *c, const chat_node *at, const char *name, const chat_value *v,
                      const chat_value *args, size_t n, const chat_dict *kw, chat_value *out);
// Applies the named test (see the table of tests at the end of this file).
static int run_test(render_ctx *c, const chat_node *at, const char *name, const chat_value *v,
                    const chat_value *args, size_t n, bool *out);

// ---- string filters --------------------------------------------------------------------

static int f_string(render_ctx *c, const chat_node *at, const chat_value *v, const chat_value *args,
                    size_t n, const chat_dict *kw, chat_value *out)
{
    (void)args, (void)n, (void)kw;
    return soft_str(c, at, v, out);
}

static int f_trim(render_ctx *c, const chat_node *at, const chat_value *v, const chat_value *args,
                  size_t n, const chat_dict *kw, chat_value *out)
{
    chat_value s;
    const chat_value *chars = param(args, n, kw, 0, "chars");
    int rc = soft_str(c, at, v, &s);
    if (rc)
        return rc;
    *out = chat_strip(&s, chars && chars->type == CHAT_STRING ? chars : NULL, CHAT_STRIP_BOTH);
    return GARLIC_OK;
}

static int case_filter(render_ctx *c, const chat_node *at, const chat_value *v, chat_case_mode mode,
                       chat_value *out)
{
    chat_value s;
    int rc = soft_str(c, at, v, &s);
    return rc ? rc : chat_case(c, at, &s, mode, out);
}

static int f_lower(render_ctx *c, const chat_node *at, const chat_value *v, const chat_value *args,
                   size_t n, const chat_dict *kw, chat_value *out)
{
    (void)args, (void)n, (void)kw;
    return case_filter(c, at, v, CHAT_CASE_LOWER, out);
}

static int f_upper(render_ctx *c, const chat_node *at, const chat_value *v, const chat_value *args,
                   size_t n, const chat_dict *kw, chat_value *out)
{
    (void)args, (void)n, (void)kw;
    return case_filter(c, at, v, CHAT_CASE_UPPER, out);
}

static int f_title(render_ctx *c, const chat_node *at, const chat_value *v, const chat_value *args,
                   size_t n, const chat_dict *kw, chat_value *out)
{
    (void)args, (void)n, (void)kw;
    return case_filter(c, at, v, CHAT_CASE_JINJA_TITLE, out);
}

static int f_capitalize(render_ctx *c, const chat_node *at, const chat_value *v,
                        const chat_value *args, size_t n, const chat_dict *kw, chat_value *out)
{
    (void)args, (void)n, (void)kw;
    return case_filter(c, at, v, CHAT_CASE_CAPITALIZE, out);
}

// replace(old, new, count=None) on the string form of the value.
static int f_replace(render_ctx *c, const chat_node *at, const chat_value *v,
                     const chat_value *args, size_t n, const chat_dict *kw, chat_value *out)
{
    chat_value s, old, new_text;
    const chat_value *a = param(args, n, kw, 0, "old"), *b = param(args, n, kw, 1, "new");
    const chat_value *count = param(args, n, kw, 2, "count");
    if (!a || !b)
        return chat_render_error(c, at, GARLIC_ETYPE, "TypeError: replace needs old and new");
    int rc = soft_str(c, at, v, &s);
    if (rc || (rc = soft_str(c, at, a, &old)) || (rc = soft_str(c, at, b, &new_text)))
        return rc;
    int64_t limit = count && count->type == CHAT_INT ? count->i : -1;
    return chat_replace(c, at, &s, &old, &new_text, limit, out);
}

// escape / e: HTML-escapes &, <, >, " and ' the way markupsafe does.
static int f_escape(render_ctx *c, const chat_node *at, const chat_value *v, const chat_value *args,
                    size_t n, const chat_dict *kw, chat_value *out)
{
    (void)args, (void)n, (void)kw;
    chat_value s;
    int rc = soft_str(c, at, v, &s);
    if (rc)
        return rc;
    chat_buf b = {.max = c->max_output};
    for (size_t i = 0; i < s.s.len && rc == GARLIC_OK; i++) {
        char ch = s.s.ptr[i];
        const char *rep = ch == '&' ? "&amp;"
            : ch == '<'             ? "&lt;"
            : ch == '>'             ? "&gt;"
            : ch == '"'             ? "&#34;"
            : ch == '\''            ? "&#39;"
                                    : NULL;
        rc = rep ? chat_buf_append(&c->arena, &b, rep, strlen(rep))
                 : chat_buf_append(&c->arena, &b, &ch, 1);
    }
    if (rc)
        return chat_render_nomem(c, at);
    *out = chat_str(b.data ? b.data : "", b.len);
    return GARLIC_OK;
}

// Jinja 3.1 indent(width=4, first=False, blank=False); width may be a string.
static int f_indent(render_ctx *c, const chat_node *at, const chat_value *v, const chat_value *args,
                    size_t n, const chat_dict *kw, chat_value *out)
{
    chat_value s, pad = chat_str("    ", 4);
    const chat_value *width = param(args, n, kw, 0, "width");
    bool first = flag(param(args, n, kw, 1, "first"), false),
         blank = flag(param(args, n, kw, 2, "blank"), false);
    int rc = soft_str(c, at, v, &s);
    if (rc)
        return rc;
    if (width && width->type == CHAT_STRING)
        pad = *width;
    else if (width && (width->type == CHAT_INT || width->type == CHAT_BOOL)) {
        int64_t w = width->type == CHAT_INT ? width->i : width->b;
        w = w < 0 ? 0 : w > 1024 ? 1024 : w;
        char *spaces = chat_arena_alloc(&c->arena, (size_t)w + 1);
        if (!spaces)
            return chat_render_nomem(c, at);
        memset(spaces, ' ', (size_t)w);
        pad = chat_str(spaces, (size_t)w);
    }
    chat_buf b = {.max = c->max_output};
    const char *p = s.s.ptr, *end = p + s.s.len;
    bool line0 = true;
    while (p < end || line0) {
        const char *q = memchr(p, '\n', (size_t)(end - p));
        if (!q)
            q = end;
        bool indent = line0 ? first : (blank || q > p);
        if (!line0)
            rc = chat_buf_append(&c->arena, &b, "\n", 1);
        if (rc == GARLIC_OK && indent)
            rc = chat_buf_append(&c->arena, &b, pad.s.ptr, pad.s.len);
        if (rc == GARLIC_OK)
            rc = chat_buf_append(&c->arena, &b, p, (size_t)(q - p));
        if (rc)
            return chat_render_nomem(c, at);
        line0 = false;
        if (q == end)
            break;
        p = q + 1;
        if (p == end) // a trailing newline ends the text: no empty last line
            break;
    }
    if (s.s.len && s.s.ptr[s.s.len - 1] == '\n' &&
        (chat_buf_append(&c->arena, &b, "\n", 1) ||
         (blank && chat_buf_append(&c->arena, &b, pad.s.ptr, pad.s.len))))
        return chat_render_nomem(c, at);
    *out = chat_str(b.data ? b.data : "", b.len);
    return GARLIC_OK;
}

// center(width=80): Python's str.center, extra padding on the right for odd gaps.
static int f_center(render_ctx *c, const chat_node *at, const chat_value *v, const chat_value *args,
                    size_t n, const chat_dict *kw, chat_value *out)
{
    chat_value s;
    const chat_value *wv = param(args, n, kw, 0, "width");
    int64_t width = wv && wv->type == CHAT_INT ? wv->i : 80;
    int rc = soft_str(c, at, v, &s);
    if (rc)
        return rc;
    int64_t len = (int64_t)chat_utf8_count(s.s.ptr, s.s.len);
    if (width <= len || width > (int64_t)c->max_output) {
        *out = s;
        return GARLIC_OK;
    }
    int64_t total = width - len, left = total / 2 + (total & width & 1);
    chat_buf b = {.max = c->max_output};
    for (int64_t i = 0; i < total && rc == GARLIC_OK; i++) {
        if (i == left)
            rc = chat_buf_append(&c->arena, &b, s.s.ptr, s.s.len);
        if (rc == GARLIC_OK)
            rc = chat_buf_append(&c->arena, &b, " ", 1);
    }
    if (rc || (left == total && chat_buf_append(&c->arena, &b, s.s.ptr, s.s.len)))
        return chat_render_nomem(c, at);
    *out = chat_str(b.data, b.len);
    return GARLIC_OK;
}

// wordcount: runs of word characters (letters, digits, underscore, non-ASCII).
static int f_wordcount(render_ctx *c, const chat_node *at, const chat_value *v,
                       const chat_value *args, size_t n, const chat_dict *kw, chat_value *out)
{
    (void)args, (void)n, (void)kw;
    chat_value s;
    int rc = soft_str(c, at, v, &s);
    if (rc)
        return rc;
    int64_t words = 0;
    bool in_word = false;
    for (size_t i = 0; i < s.s.len; i++) {
        unsigned char ch = (unsigned char)s.s.ptr[i];
        bool w = ch >= 0x80 || ch == '_' || (ch >= '0' && ch <= '9') ||
            ((ch | 32) >= 'a' && (ch | 32) <= 'z');
        words += w && !in_word;
        in_word = w;
    }
    *out = chat_int(words);
    return GARLIC_OK;
}

// format(*args): the value as a printf-style format, like Python's "fmt % args".
static int f_format(render_ctx *c, const chat_node *at, const chat_value *v, const chat_value *args,
                    size_t n, const chat_dict *kw, chat_value *out)
{
    (void)kw;
    chat_list *l = chat_list_new(&c->arena, n);
    if (!l)
        return chat_render_nomem(c, at);
    for (size_t i = 0; i < n; i++)
        l->items[l->n++] = args[i];
    l->is_tuple = true;
    chat_value tuple = list_value(l), s;
    int rc = soft_str(c, at, v, &s);
    return rc ? rc : chat_percent_format(c, at, &s, &tuple, out);
}

// Python's "fmt % args" for %s, %r, %d, %i, %f and %%; args a tuple or one value.
int chat_percent_format(render_ctx *c, const chat_node *at, const chat_value *fmt,
                        const chat_value *args, chat_value *out)
{
    const chat_value *items = args;
    size_t n_items = 1, next = 0;
    if (args->type == CHAT_LIST && args->list->is_tuple) {
        items = args->list->items;
        n_items = args->list->n;
    }
    chat_buf b = {.max = c->max_output};
    for (size_t i = 0; i < fmt->s.len; i++) {
        char ch = fmt->s.ptr[i];
        int rc;
        if (ch != '%' || i + 1 >= fmt->s.len) {
            rc = chat_buf_append(&c->arena, &b, &ch, 1);
        } else if (fmt->s.ptr[++i] == '%') {
            rc = chat_buf_append(&c->arena, &b, "%", 1);
        } else {
            char conv = fmt->s.ptr[i];
            if (next >= n_items)
                return chat_render_error(c, at, GARLIC_ETYPE,
                                         "TypeError: not enough arguments for format string");
            const chat_value *a = &items[next++];
            if (conv == 's')
                rc = chat_value_str(&c->arena, &b, a);
            else if (conv == 'r')
                rc = chat_value_repr(&c->arena, &b, a);
            else if ((conv == 'd' || conv == 'i') && chat_is_number(a))
                rc = chat_buf_printf(&c->arena, &b, "%lld",
                                     (long long)(a->type == CHAT_FLOAT     ? (int64_t)a->f
                                                     : a->type == CHAT_INT ? a->i
                                                                           : a->b));
            else if (conv == 'f' && chat_is_number(a))
                rc = chat_buf_printf(&c->arena, &b, "%f", chat_number(a));
            else
                return chat_render_error(c, at, GARLIC_ETYPE,
                                         "TypeError: unsupported format '%%%c' for %s", conv,
                                         chat_type_name(a));
        }
        if (rc)
            return chat_render_nomem(c, at);
    }
    if (next < n_items && args->type == CHAT_LIST && args->list->is_tuple)
        return chat_render_error(c, at, GARLIC_ETYPE,
                                 "TypeError: not all arguments converted during string formatting");
    *out = chat_str(b.data ? b.data : "", b.len);
    return GARLIC_OK;
}

// ---- conversions -----------------------------------------------------------------------

static bool parse_int_text(const chat_value *s, int base, int64_t *out)
{
    char tmp[80];
    chat_value t = chat_strip(s, NULL, CHAT_STRIP_BOTH);
    size_t n = 0;
    for (size_t i = 0; i < t.s.len && n < sizeof tmp - 1; i++)
        if (t.s.ptr[i] != '_')
            tmp[n++] = t.s.ptr[i];
    tmp[n] = '\0';
    if (n == 0 || n >= sizeof tmp - 1)
        return false;
    char *end;
    long long v = strtoll(tmp, &end, base);
    *out = v;
    return *end == '\0';
}

static bool parse_float_text(const chat_value *s, double *out)
{
    char tmp[80];
    chat_value t = chat_strip(s, NULL, CHAT_STRIP_BOTH);
    if (t.s.len == 0 || t.s.len >= sizeof tmp)
        return false;
    memcpy(tmp, t.s.ptr, t.s.len);
    tmp[t.s.len] = '\0';
    char *end;
    *out = strtod(tmp, &end);
    return *end == '\0';
}

// int(default=0, base=10): Python's int(), falling back to int(float(x)), then default.
static int f_int(render_ctx *c, const chat_node *at, const chat_value *v, const chat_value *args,
                 size_t n, const chat_dict *kw, chat_value *out)
{
    (void)c, (void)at;
    const chat_value *def = param(args, n, kw, 0, "default"), *base = param(args, n, kw, 1, "base");
    int64_t i;
    double d;
    if (v->type == CHAT_INT || v->type == CHAT_BOOL) {
        *out = chat_int(v->type == CHAT_INT ? v->i : v->b);
    } else if (v->type == CHAT_FLOAT && isfinite(v->f) && fabs(v->f) < 9.2e18) {
        *out = chat_int((int64_t)v->f);
    } else if (v->type == CHAT_STRING &&
               parse_int_text(v, base && base->type == CHAT_INT ? (int)base->i : 10, &i)) {
        *out = chat_int(i);
    } else if (v->type == CHAT_STRING && parse_float_text(v, &d) && isfinite(d) &&
               fabs(d) < 9.2e18) {
        *out = chat_int((int64_t)d);
    } else {
        *out = def ? *def : chat_int(0);
    }
    return GARLIC_OK;
}

// float(default=0.0): Python's float(), else default.
static int f_float(render_ctx *c, const chat_node *at, const chat_value *v, const chat_value *args,
                   size_t n, const chat_dict *kw, chat_value *out)
{
    (void)c, (void)at;
    const chat_value *def = param(args, n, kw, 0, "default");
    double d;
    if (chat_is_number(v))
        *out = chat_float(chat_number(v));
    else if (v->type == CHAT_STRING && parse_float_text(v, &d))
        *out = chat_float(d);
    else
        *out = def ? *def : chat_float(0.0);
    return GARLIC_OK;
}

static int f_abs(render_ctx *c, const chat_node *at, const chat_value *v, const chat_value *args,
                 size_t n, const chat_dict *kw, chat_value *out)
{
    (void)args, (void)n, (void)kw;
    if (v->type == CHAT_FLOAT)
        *out = chat_float(fabs(v->f));
    else if ((v->type == CHAT_INT && v->i != INT64_MIN) || v->type == CHAT_BOOL)
        *out = chat_int(v->type == CHAT_INT ? llabs(v->i) : v->b);
    else
        return chat_render_error(c, at, GARLIC_ETYPE, "TypeError: bad operand type for abs(): '%s'",
                                 chat_type_name(v));
    return GARLIC_OK;
}

// Jinja's round(precision=0, method="common"): Python's round() (correctly rounded, halves
// to even, ints stay ints) or floor/ceil at the precision, giving a float.
static int f_round(render_ctx *c, const chat_node *at, const chat_value *v, const chat_value *args,
                   size_t n, const chat_dict *kw, chat_value *out)
{
    const chat_value *prec = param(args, n, kw, 0, "precision"),
                     *method = param(args, n, kw, 1, "method");
    if (!chat_is_number(v))
        return chat_render_error(c, at, GARLIC_ETYPE, "TypeError: type %s doesn't define __round__",
                                 chat_type_name(v));
    int p = prec && prec->type == CHAT_INT ? (int)(prec->i > 15        ? 15
                                                       : prec->i < -15 ? -15
                                                                       : prec->i)
                                           : 0;
    bool floor_m = method && method->type == CHAT_STRING && method->s.len == 5 &&
        memcmp(method->s.ptr, "floor", 5) == 0;
    bool ceil_m = method && method->type == CHAT_STRING && method->s.len == 4 &&
        memcmp(method->s.ptr, "ceil", 4) == 0;
    double scale = pow(10.0, p), x = chat_number(v);
    if (floor_m || ceil_m) {
        *out = chat_float((floor_m ? floor(x * scale) : ceil(x * scale)) / scale);
        return GARLIC_OK;
    }
    if (v->type != CHAT_FLOAT && p >= 0) {
        *out = chat_int(v->type == CHAT_INT ? v->i : v->b);
        return GARLIC_OK;
    }
    char text[400];
    if (p >= 0 && isfinite(x) && fabs(x) < 1e300) {
        snprintf(text, sizeof text, "%.*f", p, x); // exact decimal rounding, ties to even
        *out = chat_float(strtod(text, NULL));
    } else {
        *out = chat_float(nearbyint(x * scale) / scale);
    }
    return GARLIC_OK;
}

// ---- sequences -------------------------------------------------------------------------

static int f_length(render_ctx *c, const chat_node *at, const chat_value *v, const chat_value *args,
                    size_t n, const chat_dict *kw, chat_value *out)
{
    (void)args, (void)n, (void)kw;
    switch (v->type) {
    case CHAT_UNDEFINED: *out = chat_int(0); return GARLIC_OK;
    case CHAT_STRING:
        *out = chat_int((int64_t)chat_utf8_count(v->s.ptr, v->s.len));
        return GARLIC_OK;
    case CHAT_LIST: *out = chat_int((int64_t)v->list->n); return GARLIC_OK;
    case CHAT_DICT: *out = chat_int((int64_t)v->dict->n); return GARLIC_OK;
    default:
        return chat_render_error(c, at, GARLIC_ETYPE, "TypeError: object of type '%s' has no len()",
                                 chat_type_name(v));
    }
}

// list: a copy of what iterating the value gives (characters, dict keys, items).
static int f_list(render_ctx *c, const chat_node *at, const chat_value *v, const chat_value *args,
                  size_t n, const chat_dict *kw, chat_value *out)
{
    (void)args, (void)n, (void)kw;
    chat_list *items, *copy;
    int rc = chat_render_iterate(c, at, v, &items);
    if (rc)
        return rc;
    if (!(copy = chat_list_new(&c->arena, items->n)))
        return chat_render_nomem(c, at);
    if (items->n)
        memcpy(copy->items, items->items, items->n * sizeof *copy->items);
    copy->n = items->n;
    *out = list_value(copy);
    return GARLIC_OK;
}

// batch(linecount, fill_with=None): lists of linecount items, the last padded when asked.
static int f_batch(render_ctx *c, const chat_node *at, const chat_value *v, const chat_value *args,
                   size_t n, const chat_dict *kw, chat_value *out)
{
    const chat_value *count = param(args, n, kw, 0, "linecount"),
                     *fill = param(args, n, kw, 1, "fill_with");
    chat_list *items, *batches, *cur = NULL;
    int rc = chat_render_iterate(c, at, v, &items);
    if (rc)
        return rc;
    if (!count || count->type != CHAT_INT || count->i <= 0)
        return chat_render_error(c, at, GARLIC_EINVAL, "batch needs a positive count");
    if (!(batches = chat_list_new(&c->arena, 0)))
        return chat_render_nomem(c, at);
    for (size_t i = 0; i < items->n; i++) {
        if (!cur || (int64_t)cur->n == count->i) {
            if (!(cur = chat_list_new(&c->arena, 0)) ||
                chat_list_push(&c->arena, batches, list_value(cur)))
                return chat_render_nomem(c, at);
        }
        if (chat_list_push(&c->arena, cur, items->items[i]))
            return chat_render_nomem(c, at);
    }
    while (cur && fill && fill->type != CHAT_NONE && (int64_t)cur->n < count->i)
        if (chat_list_push(&c->arena, cur, *fill))
            return chat_render_nomem(c, at);
    *out = list_value(batches);
    return GARLIC_OK;
}

static int f_first_last(render_ctx *c, const chat_node *at, const chat_value *v, bool last,
                        chat_value *out)
{
    chat_list *items;
    int rc = chat_render_iterate(c, at, v, &items);
    if (rc)
        return rc;
    if (items->n == 0)
        *out = chat_undefined(last ? "last" : "first");
    else
        *out = items->items[last ? items->n - 1 : 0];
    return GARLIC_OK;
}

static int f_first(render_ctx *c, const chat_node *at, const chat_value *v, const chat_value *args,
                   size_t n, const chat_dict *kw, chat_value *out)
{
    (void)args, (void)n, (void)kw;
    return f_first_last(c, at, v, false, out);
}

static int f_last(render_ctx *c, const chat_node *at, const chat_value *v, const chat_value *args,
                  size_t n, const chat_dict *kw, chat_value *out)
{
    (void)args, (void)n, (void)kw;
    return f_first_last(c, at, v, true, out);
}

// reverse: a reversed string, or the items of anything iterable in reverse order.
static int f_reverse(render_ctx *c, const chat_node *at, const chat_value *v,
                     const chat_value *args, size_t n, const chat_dict *kw, chat_value *out)
{
    (void)args, (void)n, (void)kw;
    chat_list *items, *rev;
    int rc = chat_render_iterate(c, at, v, &items);
    if (rc)
        return rc;
    if (!(rev = chat_list_new(&c->arena, items->n)))
        return chat_render_nomem(c, at);
    for (size_t i = items->n; i-- > 0;)
        rev->items[rev->n++] = items->items[i];
    if (v->type != CHAT_STRING) {
        *out = list_value(rev);
        return GARLIC_OK;
    }
    chat_buf b = {0};
    for (size_t i = 0; i < rev->n; i++)
        if (chat_buf_append(&c->arena, &b, rev->items[i].s.ptr, rev->items[i].s.len))
            return chat_render_nomem(c, at);
    *out = chat_str(b.data ? b.data : "", b.len);
    return GARLIC_OK;
}

static int f_default(render_ctx *c, const chat_node *at, const chat_value *v,
                     const chat_value *args, size_t n, const chat_dict *kw, chat_value *out)
{
    (void)c, (void)at;
    const chat_value *def = param(args, n, kw, 0, "default_value");
    bool boolean = flag(param(args, n, kw, 1, "boolean"), false);
    bool use = v->type == CHAT_UNDEFINED || (boolean && !chat_truthy(v));
    *out = use ? (def ? *def : chat_str("", 0)) : *v;
    return GARLIC_OK;
}

static int f_safe(render_ctx *c, const chat_node *at, const chat_value *v, const chat_value *args,
                  size_t n, const chat_dict *kw, chat_value *out)
{
    (void)args, (void)n, (void)kw;
    return soft_str(c, at, v, out);
}

// items: a dict's (key, value) pairs; undefined gives an empty list.
static int f_items(render_ctx *c, const chat_node *at, const chat_value *v, const chat_value *args,
                   size_t n, const chat_dict *kw, chat_value *out)
{
    (void)args, (void)n, (void)kw;
    if (v->type == CHAT_UNDEFINED) {
        chat_list *l = chat_list_new(&c->arena, 0);
        *out = list_value(l);
        return l ? GARLIC_OK : chat_render_nomem(c, at);
    }
    if (v->type != CHAT_DICT && v->type != CHAT_NAMESPACE)
        return chat_render_error(c, at, GARLIC_ETYPE,
                                 "TypeError: Can only get item pairs from a mapping.");
    return chat_dict_items(c, at, v->dict, out);
}

// Follows a dotted attribute path ("function.name", "0") the way Jinja's attrgetter does.
static int attr_path(render_ctx *c, const chat_node *at, const chat_value *v,
                     const chat_value *path, chat_value *out)
{
    *out = *v;
    if (path->type == CHAT_INT)
        return chat_get_item(c, at, v, path, out);
    const char *p = path->s.ptr, *end = p + path->s.len;
    while (p <= end) {
        const char *dot = memchr(p, '.', (size_t)(end - p));
        if (!dot)
            dot = end;
        chat_value key = chat_str(p, (size_t)(dot - p));
        int64_t idx;
        if (dot > p && p[0] >= '0' && p[0] <= '9' && parse_int_text(&key, 10, &idx))
            key = chat_int(idx);
        chat_value next;
        if (out->type == CHAT_UNDEFINED)
            return GARLIC_OK;
        int rc = chat_get_item(c, at, out, &key, &next);
        if (rc)
            return rc;
        *out = next;
        p = dot + 1;
    }
    return GARLIC_OK;
}

// join(d='', attribute=None): str() of each item (or its attribute) joined by d.
static int f_join(render_ctx *c, const chat_node *at, const chat_value *v, const chat_value *args,
                  size_t n, const chat_dict *kw, chat_value *out)
{
    const chat_value *sep = param(args, n, kw, 0, "d"), *attr = param(args, n, kw, 1, "attribute");
    chat_value sep_s = chat_str("", 0);
    chat_list *items;
    int rc = chat_render_iterate(c, at, v, &items);
    if (rc || (sep && (rc = soft_str(c, at, sep, &sep_s))))
        return rc;
    chat_buf b = {.max = c->max_output};
    for (size_t i = 0; i < items->n; i++) {
        chat_value item = items->items[i];
        if (attr && (rc = attr_path(c, at, &items->items[i], attr, &item)))
            return rc;
        if ((i && chat_buf_append(&c->arena, &b, sep_s.s.ptr, sep_s.s.len)) ||
            chat_value_str(&c->arena, &b, &item))
            return chat_render_nomem(c, at);
    }
    *out = chat_str(b.data ? b.data : "", b.len);
    return GARLIC_OK;
}

// map(attribute=path, default=x) or map("filter", args...).
static int f_map(render_ctx *c, const chat_node *at, const chat_value *v, const chat_value *args,
                 size_t n, const chat_dict *kw, chat_value *out)
{
    const chat_value *attr = chat_dict_get(kw, "attribute", 9),
                     *def = chat_dict_get(kw, "default", 7);
    chat_list *items, *mapped;
    int rc = chat_render_iterate(c, at, v, &items);
    if (rc)
        return rc;
    if (!attr && (n == 0 || args[0].type != CHAT_STRING))
        return chat_render_error(c, at, GARLIC_EINVAL, "map needs a filter name or attribute=");
    if (!(mapped = chat_list_new(&c->arena, items->n)))
        return chat_render_nomem(c, at);
    char name[64] = "";
    if (!attr)
        snprintf(name, sizeof name, "%.*s", (int)(args[0].s.len < 63 ? args[0].s.len : 63),
                 args[0].s.ptr);
    for (size_t i = 0; i < items->n; i++) {
        chat_value r;
        if (attr) {
            rc = attr_path(c, at, &items->items[i], attr, &r);
            if (rc == GARLIC_OK && def && r.type == CHAT_UNDEFINED)
                r = *def;
        } else {
            rc = run_filter(c, at, name, &items->items[i], args + 1, n - 1, kw, &r);
        }
        if (rc)
            return rc;
        mapped->items[mapped->n++] = r;
    }
    *out = list_value(mapped);
    return GARLIC_OK;
}

// select/reject (attr NULL) and selectattr/rejectattr: keep items whose test result
// equals keep; without a test name the item's truthiness is the test.
static int select_common(render_ctx *c, const chat_node *at, const chat_value *v,
                         const chat_value *args, size_t n, bool by_attr, bool keep, chat_value *out)
{
    chat_list *items, *kept;
    int rc = chat_render_iterate(c, at, v, &items);
    if (rc)
        return rc;
    size_t skip = by_attr ? 1 : 0;
    if (by_attr && (n == 0 || (args[0].type != CHAT_STRING && args[0].type != CHAT_INT)))
        return chat_render_error(c, at, GARLIC_EINVAL,
                                 "selectattr/rejectattr need an attribute name");
    char test[64] = "";
    if (n > skip && args[skip].type == CHAT_STRING)
        snprintf(test, sizeof test, "%.*s", (int)(args[skip].s.len < 63 ? args[skip].s.len : 63),
                 args[skip].s.ptr);
    if (!(kept = chat_list_new(&c->arena, items->n)))
        return chat_render_nomem(c, at);
    for (size_t i = 0; i < items->n; i++) {
        chat_value item = items->items[i];
        bool r;
        if (by_attr && (rc = attr_path(c, at, &items->items[i], &args[0], &item)))
            return rc;
        if (test[0])
            rc = run_test(c, at, test, &item, args + skip + 1, n - skip - 1, &r);
        else
            r = chat_truthy(&item);
        if (rc)
            return rc;
        if (r == keep)
            kept->items[kept->n++] = items->items[i];
    }
    *out = list_value(kept);
    return GARLIC_OK;
}

static int f_select(render_ctx *c, const chat_node *at, const chat_value *v, const chat_value *args,
                    size_t n, const chat_dict *kw, chat_value *out)
{
    (void)kw;
    return select_common(c, at, v, args, n, false, true, out);
}

static int f_reject(render_ctx *c, const chat_node *at, const chat_value *v, const chat_value *args,
                    size_t n, const chat_dict *kw, chat_value *out)
{
    (void)kw;
    return select_common(c, at, v, args, n, false, false, out);
}

static int f_selectattr(render_ctx *c, const chat_node *at, const chat_value *v,
                        const chat_value *args, size_t n, const chat_dict *kw, chat_value *out)
{
    (void)kw;
    return select_common(c, at, v, args, n, true, true, out);
}

static int f_rejectattr(render_ctx *c, const chat_node *at, const chat_value *v,
                        const chat_value *args, size_t n, const chat_dict *kw, chat_value *out)
{
    (void)kw;
    return select_common(c, at, v, args, n, true, false, out);
}

// The sort key of an item: its attribute (when given), lower-cased unless case_sensitive.
static int sort_key(render_ctx *c, const chat_node *at, const chat_value *item,
                    const chat_value *attr, bool case_sensitive, chat_value *out)
{
    int rc = attr ? attr_path(c, at, item, attr, out) : GARLIC_OK;
    if (!attr)
        *out = *item;
    if (rc == GARLIC_OK && !case_sensitive && out->type == CHAT_STRING)
        rc = chat_case(c, at, out, CHAT_CASE_LOWER, out);
    return rc;
}

// Stable merge sort of idx[0..n) by keys; fails with TypeError on incomparable keys.
static int merge_sort(render_ctx *c, const chat_node *at, const chat_value *keys, size_t *idx,
                      size_t *tmp, size_t n, bool reverse)
{
    if (n < 2)
        return GARLIC_OK;
    size_t half = n / 2;
    int rc = merge_sort(c, at, keys, idx, tmp, half, reverse);
    if (rc || (rc = merge_sort(c, at, keys, idx + half, tmp, n - half, reverse)))
        return rc;
    size_t i = 0, j = half, k = 0;
    while (i < half && j < n) {
        int order;
        if (chat_compare(&keys[idx[j]], &keys[idx[i]], &order))
            return chat_render_error(
                c, at, GARLIC_ETYPE,
                "TypeError: '<' not supported between instances of '%s' and '%s'",
                chat_type_name(&keys[idx[j]]), chat_type_name(&keys[idx[i]]));
        bool take_right = reverse ? order > 0 : order < 0;
        tmp[k++] = take_right ? idx[j++] : idx[i++];
    }
    while (i < half)
        tmp[k++] = idx[i++];
    while (j < n)
        tmp[k++] = idx[j++];
    memcpy(idx, tmp, n * sizeof *idx);
    return GARLIC_OK;
}

// A stably sorted copy of items by key (attribute path, case folding), as Jinja's sort.
static int sorted_list(render_ctx *c, const chat_node *at, chat_list *items, const chat_value *attr,
                       bool case_sensitive, bool reverse, chat_value *out)
{
    size_t n = items->n;
    chat_value *keys = chat_arena_alloc(&c->arena, (n + 1) * sizeof *keys);
    size_t *idx = chat_arena_alloc(&c->arena, (n + 1) * sizeof *idx);
    size_t *tmp = chat_arena_alloc(&c->arena, (n + 1) * sizeof *tmp);
    chat_list *sorted = chat_list_new(&c->arena, n);
    if (!keys || !idx || !tmp || !sorted)
        return chat_render_nomem(c, at);
    for (size_t i = 0; i < n; i++) {
        idx[i] = i;
        int rc = sort_key(c, at, &items->items[i], attr, case_sensitive, &keys[i]);
        if (rc)
            return rc;
    }
    int rc = merge_sort(c, at, keys, idx, tmp, n, reverse);
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i++)
        sorted->items[sorted->n++] = items->items[idx[i]];
    *out = list_value(sorted);
    return GARLIC_OK;
}

static int f_sort(render_ctx *c, const chat_node *at, const chat_value *v, const chat_value *args,
                  size_t n, const chat_dict *kw, chat_value *out)
{
    chat_list *items;
    int rc = chat_render_iterate(c, at, v, &items);
    if (rc)
        return rc;
    return sorted_list(c, at, items, param(args, n, kw, 2, "attribute"),
                       flag(param(args, n, kw, 1, "case_sensitive"), false),
                       flag(param(args, n, kw, 0, "reverse"), false), out);
}

// dictsort(case_sensitive=False, by='key', reverse=False): sorted (key, value) pairs.
static int f_dictsort(render_ctx *c, const chat_node *at, const chat_value *v,
                      const chat_value *args, size_t n, const chat_dict *kw, chat_value *out)
{
    chat_value pairs;
    if (v->type != CHAT_DICT)
        return chat_render_error(c, at, GARLIC_ETYPE, "TypeError: dictsort needs a dict, not %s",
                                 chat_type_name(v));
    int rc = chat_dict_items(c, at, v->dict, &pairs);
    if (rc)
        return rc;
    const chat_value *by = param(args, n, kw, 1, "by");
    chat_value pos = chat_int(by && by->type == CHAT_STRING && by->s.len == 5 &&
                              memcmp(by->s.ptr, "value", 5) == 0);
    return sorted_list(c, at, pairs.list, &pos,
                       flag(param(args, n, kw, 0, "case_sensitive"), false),
                       flag(param(args, n, kw, 2, "reverse"), false), out);
}

// unique(case_sensitive=False, attribute=None): first occurrences, in order.
static int f_unique(render_ctx *c, const chat_node *at, const chat_value *v, const chat_value *args,
                    size_t n, const chat_dict *kw, chat_value *out)
{
    chat_list *items, *kept;
    chat_dict *seen;
    bool case_sensitive = flag(param(args, n, kw, 0, "case_sensitive"), false);
    const chat_value *attr = param(args, n, kw, 1, "attribute");
    int rc = chat_render_iterate(c, at, v, &items);
    if (rc)
        return rc;
    if (!(kept = chat_list_new(&c->arena, items->n)) || !(seen = chat_dict_new(&c->arena, 0)))
        return chat_render_nomem(c, at);
    for (size_t i = 0; i < items->n; i++) {
        chat_value key;
        if ((rc = sort_key(c, at, &items->items[i], attr, case_sensitive, &key)))
            return rc;
        if (chat_dict_find(seen, &key))
            continue;
        if (chat_dict_set(&c->arena, seen, key, chat_none()))
            return chat_render_nomem(c, at);
        kept->items[kept->n++] = items->items[i];
    }
    *out = list_value(kept);
    return GARLIC_OK;
}

// min / max (case_sensitive=False, attribute=None); undefined for an empty sequence.
static int min_max(render_ctx *c, const chat_node *at, const chat_value *v, const chat_value *args,
                   size_t n, const chat_dict *kw, bool want_max, chat_value *out)
{
    chat_list *items;
    chat_value sorted;
    int rc = chat_render_iterate(c, at, v, &items);
    if (rc ||
        (rc = sorted_list(c, at, items, param(args, n, kw, 1, "attribute"),
                          flag(param(args, n, kw, 0, "case_sensitive"), false), false, &sorted)))
        return rc;
    if (sorted.list->n == 0)
        *out = chat_undefined(want_max ? "max" : "min");
    else
        *out = sorted.list->items[want_max ? sorted.list->n - 1 : 0];
    return GARLIC_OK;
}

static int f_min(render_ctx *c, const chat_node *at, const chat_value *v, const chat_value *args,
                 size_t n, const chat_dict *kw, chat_value *out)
{
    return min_max(c, at, v, args, n, kw, false, out);
}

static int f_max(render_ctx *c, const chat_node *at, const chat_value *v, const chat_value *args,
                 size_t n, const chat_dict *kw, chat_value *out)
{
    return min_max(c, at, v, args, n, kw, true, out);
}

// sum(attribute=None, start=0): ints stay ints until a float joins in.
static int f_sum(render_ctx *c, const chat_node *at, const chat_value *v, const chat_value *args,
                 size_t n, const chat_dict *kw, chat_value *out)
{
    const chat_value *attr = param(args, n, kw, 0, "attribute"),
                     *start = param(args, n, kw, 1, "start");
    chat_list *items;
    int rc = chat_render_iterate(c, at, v, &items);
    if (rc)
        return rc;
    bool is_float = start && start->type == CHAT_FLOAT;
    double fsum = start ? chat_number(start) : 0;
    int64_t isum = start && start->type == CHAT_INT ? start->i : 0;
    for (size_t i = 0; i < items->n; i++) {
        chat_value item = items->items[i];
        if (attr && (rc = attr_path(c, at, &items->items[i], attr, &item)))
            return rc;
        if (!chat_is_number(&item))
            return chat_render_error(c, at, GARLIC_ETYPE,
                                     "TypeError: unsupported operand type(s) for +: 'int' and '%s'",
                                     chat_type_name(&item));
        is_float |= item.type == CHAT_FLOAT;
        fsum += chat_number(&item);
        isum += item.type == CHAT_INT ? item.i : item.type == CHAT_BOOL ? item.b : 0;
    }
    *out = is_float ? chat_float(fsum) : chat_int(isum);
    return GARLIC_OK;
}

static int f_attr(render_ctx *c, const chat_node *at, const chat_value *v, const chat_value *args,
                  size_t n, const chat_dict *kw, chat_value *out)
{
    const chat_value *name = param(args, n, kw, 0, "name");
    if (!name || name->type != CHAT_STRING)
        return chat_render_error(c, at, GARLIC_ETYPE, "TypeError: attr needs a name");
    if (v->type == CHAT_UNDEFINED)
        return chat_render_undefined_error(c, at, v);
    chat_value path = *name;
    return attr_path(c, at, v, &path, out);
}

// transformers' tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False).
static int f_tojson(render_ctx *c, const chat_node *at, const chat_value *v, const chat_value *args,
                    size_t n, const chat_dict *kw, chat_value *out)
{
    chat_json_opts o = {.ensure_ascii = flag(param(args, n, kw, 0, "ensure_ascii"), false),
                        .sort_keys = flag(param(args, n, kw, 3, "sort_keys"), false)};
    const chat_value *indent = param(args, n, kw, 1, "indent"),
                     *seps = param(args, n, kw, 2, "separators");
    char *pad = NULL;
    if (indent && (indent->type == CHAT_INT || indent->type == CHAT_BOOL)) {
        int64_t w = indent->type == CHAT_INT ? indent->i : indent->b;
        w = w < 0 ? 0 : w > 256 ? 256 : w;
        if (!(pad = chat_arena_alloc(&c->arena, (size_t)w + 1)))
            return chat_render_nomem(c, at);
        memset(pad, ' ', (size_t)w);
        o.indent = pad;
    } else if (indent && indent->type == CHAT_STRING) {
        chat_value copy = chat_str_copy(&c->arena, indent->s.ptr, indent->s.len);
        if (copy.type != CHAT_STRING)
            return chat_render_nomem(c, at);
        o.indent = copy.s.ptr;
    }
    if (seps && seps->type == CHAT_LIST && seps->list->n == 2 &&
        seps->list->items[0].type == CHAT_STRING && seps->list->items[1].type == CHAT_STRING) {
        chat_value a = chat_str_copy(&c->arena, seps->list->items[0].s.ptr,
                                     seps->list->items[0].s.len);
        chat_value b = chat_str_copy(&c->arena, seps->list->items[1].s.ptr,
                                     seps->list->items[1].s.len);
        if (a.type != CHAT_STRING || b.type != CHAT_STRING)
            return chat_render_nomem(c, at);
        o.item_sep = a.s.ptr;
        o.key_sep = b.s.ptr;
    }
    chat_buf b = {.max = c->max_output};
    garlic_error jerr = {0};
    int rc = chat_value_tojson(&c->arena, &b, v, &o, &jerr);
    if (rc == GARLIC_ENOMEM)
        return chat_render_nomem(c, at);
    if (rc)
        return chat_render_error(c, at, rc, "TypeError: %s", jerr.message);
    *out = chat_str(b.data ? b.data : "", b.len);
    return GARLIC_OK;
}

typedef struct filter_entry {
    const char *name;
    filter_fn fn;
} filter_entry;

static const filter_entry filters[] = {
    {"abs", f_abs},
    {"attr", f_attr},
    {"batch", f_batch},
    {"capitalize", f_capitalize},
    {"center", f_center},
    {"count", f_length},
    {"d", f_default},
    {"default", f_default},
    {"dictsort", f_dictsort},
    {"e", f_escape},
    {"escape", f_escape},
    {"first", f_first},
    {"float", f_float},
    {"format", f_format},
    {"indent", f_indent},
    {"int", f_int},
    {"items", f_items},
    {"join", f_join},
    {"last", f_last},
    {"length", f_length},
    {"list", f_list},
    {"lower", f_lower},
    {"map", f_map},
    {"max", f_max},
    {"min", f_min},
    {"reject", f_reject},
    {"rejectattr", f_rejectattr},
    {"replace", f_replace},
    {"reverse", f_reverse},
    {"round", f_round},
    {"safe", f_safe},
    {"select", f_select},
    {"selectattr", f_selectattr},
    {"sort", f_sort},
    {"string", f_string},
    {"sum", f_sum},
    {"title", f_title},
    {"tojson", f_tojson},
    {"trim", f_trim},
    {"unique", f_unique},
    {"upper", f_upper},
    {"wordcount", f_wordcount},
};

static filter_fn find_filter(const char *name)
{
    for (size_t i = 0; i < sizeof filters / sizeof filters[0]; i++)
        if (strcmp(filters[i].name, name) == 0)
            return filters[i].fn;
    return NULL;
}

bool chat_filter_known(const char *name) { return find_filter(name) != NULL; }

// Applies the named filter, counting a step and a nesting level (map can recurse).
static int run_filter(render_ctx *c, const chat_node *at, const char *name, const chat_value *v,
                      const chat_value *args, size_t n, const chat_dict *kw, chat_value *out)
{
    filter_fn fn = find_filter(name);
    if (!fn)
        return chat_render_error(c, at, GARLIC_EUNSUPPORTED, "no filter named '%s'", name);
    if (!chat_render_tick(c))
        return chat_render_error(c, at, GARLIC_EINVAL, "template runs too long");
    if (++c->depth > c->max_depth)
        return chat_render_error(c, at, GARLIC_EINVAL, "filters nested too deeply");
    int rc = fn(c, at, v, args, n, kw, out);
    c->depth--;
    return rc;
}

int chat_apply_filter(render_ctx *c, const chat_node *n, const chat_value *operand, chat_value *out)
{
    chat_value *args;
    chat_dict *kwargs;
    int rc = chat_render_eval_args(c, n, &args, &kwargs);
    return rc ? rc : run_filter(c, n, n->str, operand, args, n->args.n, kwargs, out);
}

// ---- tests -----------------------------------------------------------------------------

typedef struct test_entry test_entry;

// A test: sets *out for operand v and the evaluated arguments args[0..n); e is its row.
typedef int (*test_fn)(render_ctx *c, const chat_node *at, const test_entry *e, const chat_value *v,
                       const chat_value *args, size_t n, bool *out);

// One row per test name, aliases included: the one list the parser checks names against,
// `is test` answers from and every test is dispatched through.
struct test_entry {
    const char *name;
    test_fn run;
    chat_op op;          // comparisons: the operator
    unsigned types;      // type tests: the chat_types that pass, bit (1u << type) each
    chat_case_mode mode; // lower and upper: the mapping the string must be unchanged by
    bool want;           // true, false: the boolean that passes; odd, even: true for odd
    bool (*known)(const char *name); // filter and test: whether a filter or test has the name
};

// ==, !=, <, <=, >, >= and their named aliases.
static int t_compare(render_ctx *c, const chat_node *at, const test_entry *e, const chat_value *v,
                     const chat_value *args, size_t n, bool *out)
{
    if (n < 1)
        return chat_render_error(c, at, GARLIC_ETYPE, "TypeError: the test needs an argument");
    if (e->op == OP_EQ || e->op == OP_NE) {
        *out = chat_equal(v, &args[0]) == (e->op == OP_EQ);
        return GARLIC_OK;
    }
    int order;
    if (chat_compare(v, &args[0], &order))
        return chat_render_error(c, at, GARLIC_ETYPE, "TypeError: cannot compare '%s' and '%s'",
                                 chat_type_name(v), chat_type_name(&args[0]));
    *out = e->op == OP_LT ? order < 0
        : e->op == OP_LE  ? order <= 0
        : e->op == OP_GT  ? order > 0
                          : order >= 0;
    return GARLIC_OK;
}

// sameas is identity: values of different types are never the same object.
static int t_sameas(render_ctx *c, const chat_node *at, const test_entry *e, const chat_value *v,
                    const chat_value *args, size_t n, bool *out)
{
    if (n && args[0].type != v->type) {
        *out = false;
        return GARLIC_OK;
    }
    return t_compare(c, at, e, v, args, n, out);
}

// Tests of the value's type alone: defined, none, string, mapping...
static int t_type(render_ctx *c, const chat_node *at, const test_entry *e, const chat_value *v,
                  const chat_value *args, size_t n, bool *out)
{
    (void)c, (void)at, (void)args, (void)n;
    *out = e->types >> v->type & 1;
    return GARLIC_OK;
}

// true and false: the boolean itself, not a truthy value.
static int t_boolean_is(render_ctx *c, const chat_node *at, const test_entry *e,
                        const chat_value *v, const chat_value *args, size_t n, bool *out)
{
    (void)c, (void)at, (void)args, (void)n;
    *out = v->type == CHAT_BOOL && v->b == e->want;
    return GARLIC_OK;
}

// "filter" and "test": the value is a string naming one.
static int t_known_name(render_ctx *c, const chat_node *at, const test_entry *e,
                        const chat_value *v, const chat_value *args, size_t n, bool *out)
{
    (void)c, (void)at, (void)args, (void)n;
    char name[64] = "";
    if (v->type == CHAT_STRING)
        snprintf(name, sizeof name, "%.*s", (int)(v->s.len < 63 ? v->s.len : 63), v->s.ptr);
    *out = v->type == CHAT_STRING && e->known(name);
    return GARLIC_OK;
}

// "lower" and "upper": the string equals its own lower/upper-cased form.
static int t_case(render_ctx *c, const chat_node *at, const test_entry *e, const chat_value *v,
                  const chat_value *args, size_t n, bool *out)
{
    (void)args, (void)n;
    *out = false;
    if (v->type != CHAT_STRING)
        return GARLIC_OK;
    chat_value folded;
    int rc = chat_case(c, at, v, e->mode, &folded);
    *out = rc == GARLIC_OK && chat_equal(&folded, v);
    return rc;
}

// The integer that odd, even and divisibleby test; a TypeError for anything else.
static int int_operand(render_ctx *c, const chat_node *at, const test_entry *e, const chat_value *v,
                       int64_t *x)
{
    if (v->type != CHAT_INT && v->type != CHAT_BOOL)
        return chat_render_error(c, at, GARLIC_ETYPE,
                                 "TypeError: test '%s' needs an integer, not %s", e->name,
                                 chat_type_name(v));
    *x = v->type == CHAT_INT ? v->i : v->b;
    return GARLIC_OK;
}

static int t_parity(render_ctx *c, const chat_node *at, const test_entry *e, const chat_value *v,
                    const chat_value *args, size_t n, bool *out)
{
    (void)args, (void)n;
    int64_t x = 0;
    int rc = int_operand(c, at, e, v, &x);
    *out = rc == GARLIC_OK && (x % 2 != 0) == e->want;
    return rc;
}

static int t_divisibleby(render_ctx *c, const chat_node *at, const test_entry *e,
                         const chat_value *v, const chat_value *args, size_t n, bool *out)
{
    int64_t x = 0;
    int rc = int_operand(c, at, e, v, &x);
    if (rc)
        return rc;
    if (n < 1 || args[0].type != CHAT_INT || args[0].i == 0)
        return chat_render_error(c, at, GARLIC_ETYPE,
                                 "TypeError: divisibleby needs a non-zero integer");
    *out = args[0].i == -1 || x % args[0].i == 0; // INT64_MIN % -1 overflows in C
    return GARLIC_OK;
}

// "x is in seq": substring for strings, membership for anything iterable.
static int t_in(render_ctx *c, const chat_node *at, const test_entry *e, const chat_value *v,
                const chat_value *args, size_t n, bool *out)
{
    (void)e;
    if (n < 1)
        return chat_render_error(c, at, GARLIC_ETYPE, "TypeError: test 'in' needs an argument");
    if (args[0].type == CHAT_STRING) {
        if (v->type != CHAT_STRING)
            return chat_render_error(c, at, GARLIC_ETYPE,
                                     "TypeError: 'in <string>' requires string as left operand");
        *out = v->s.len == 0 || chat_memmem(args[0].s.ptr, args[0].s.len, v->s.ptr, v->s.len);
        return GARLIC_OK;
    }
    chat_list *items;
    int rc = chat_render_iterate(c, at, &args[0], &items);
    *out = false;
    for (size_t i = 0; rc == GARLIC_OK && i < items->n && !*out; i++)
        *out = chat_equal(&items->items[i], v);
    return rc;
}

enum {
    NUMBER_TYPES = 1u << CHAT_BOOL | 1u << CHAT_INT | 1u << CHAT_FLOAT,
    // Jinja's sequence and iterable tests also pass undefined (it iterates as empty)
    ITERABLE_TYPES = 1u << CHAT_LIST | 1u << CHAT_DICT | 1u << CHAT_STRING | 1u << CHAT_UNDEFINED,
};

// Jinja2 3.1's tests, every name and alias it has.
static const test_entry tests[] = {
    {.name = "==", .run = t_compare, .op = OP_EQ},
    {.name = "eq", .run = t_compare, .op = OP_EQ},
    {.name = "equalto", .run = t_compare, .op = OP_EQ},
    {.name = "sameas", .run = t_sameas, .op = OP_EQ},
    {.name = "!=", .run = t_compare, .op = OP_NE},
    {.name = "ne", .run = t_compare, .op = OP_NE},
    {.name = "<", .run = t_compare, .op = OP_LT},
    {.name = "lt", .run = t_compare, .op = OP_LT},
    {.name = "lessthan", .run = t_compare, .op = OP_LT},
    {.name = "<=", .run = t_compare, .op = OP_LE},
    {.name = "le", .run = t_compare, .op = OP_LE},
    {.name = ">", .run = t_compare, .op = OP_GT},
    {.name = "gt", .run = t_compare, .op = OP_GT},
    {.name = "greaterthan", .run = t_compare, .op = OP_GT},
    {.name = ">=", .run = t_compare, .op = OP_GE},
    {.name = "ge", .run = t_compare, .op = OP_GE},
    {.name = "defined", .run = t_type, .types = ~(1u << CHAT_UNDEFINED)},
    {.name = "undefined", .run = t_type, .types = 1u << CHAT_UNDEFINED},
    {.name = "none", .run = t_type, .types = 1u << CHAT_NONE},
    {.name = "string", .run = t_type, .types = 1u << CHAT_STRING},
    {.name = "number", .run = t_type, .types = NUMBER_TYPES},
    {.name = "integer", .run = t_type, .types = 1u << CHAT_INT},
    {.name = "float", .run = t_type, .types = 1u << CHAT_FLOAT},
    {.name = "boolean", .run = t_type, .types = 1u << CHAT_BOOL},
    {.name = "mapping", .run = t_type, .types = 1u << CHAT_DICT},
    {.name = "sequence", .run = t_type, .types = ITERABLE_TYPES},
    {.name = "iterable", .run = t_type, .types = ITERABLE_TYPES},
    {.name = "callable", .run = t_type, .types = 1u << CHAT_CALLABLE},
    {.name = "escaped", .run = t_type, .types = 0}, // nothing is markup here
    {.name = "true", .run = t_boolean_is, .want = true},
    {.name = "false", .run = t_boolean_is, .want = false},
    {.name = "filter", .run = t_known_name, .known = chat_filter_known},
    {.name = "test", .run = t_known_name, .known = chat_test_known},
    {.name = "lower", .run = t_case, .mode = CHAT_CASE_LOWER},
    {.name = "upper", .run = t_case, .mode = CHAT_CASE_UPPER},
    {.name = "odd", .run = t_parity, .want = true},
    {.name = "even", .run = t_parity, .want = false},
    {.name = "divisibleby", .run = t_divisibleby},
    {.name = "in", .run = t_in},
};

static const test_entry *find_test(const char *name)
{
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++)
        if (strcmp(tests[i].name, name) == 0)
            return &tests[i];
    return NULL;
}

bool chat_test_known(const char *name) { return find_test(name) != NULL; }

// Applies the named test (parse time checked the name; select and reject pass any string).
static int run_test(render_ctx *c, const chat_node *at, const char *name, const chat_value *v,
                    const chat_value *args, size_t n, bool *out)
{
    const test_entry *e = find_test(name);
    if (!e)
        return chat_render_error(c, at, GARLIC_EUNSUPPORTED, "no test named '%s'", name);
    return e->run(c, at, e, v, args, n, out);
}

int chat_apply_test(render_ctx *c, const chat_node *n, const chat_value *operand, bool *out)
{
    chat_value *args;
    chat_dict *kwargs;
    int rc = chat_render_eval_args(c, n, &args, &kwargs);
    return rc ? rc : run_test(c, n, n->str, operand, args, n->args.n, out);
}
