// SPDX-License-Identifier: MIT
// The chat-template value model: an arena that every template and render allocates from
// (and grows its arrays in), strings, lists and insertion-ordered dicts, and Python's
// semantics for them: truthiness, equality, ordering, str() and repr() (including float
// repr), plus UTF-8 code-point helpers. JSON in and out lives in json.c.
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "chat/internal.h"

struct arena_chunk {
    struct arena_chunk *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
};

enum { ARENA_CHUNK = 64 * 1024 };

// Hands out size bytes (16-aligned, zeroed) or NULL when the limit or malloc says no.
void *chat_arena_alloc(chat_arena *a, size_t size)
{
    if (a->failed)
        return NULL;
    size = (size + 15) & ~(size_t)15;
    struct arena_chunk *c = a->head;
    if (!c || c->cap - c->used < size) {
        size_t cap = size > ARENA_CHUNK ? size : ARENA_CHUNK;
        size_t total = sizeof *c + cap;
        if (size > SIZE_MAX / 2 || (a->limit && a->used + total > a->limit)) {
            a->failed = true;
            return NULL;
        }
        c = garlic_malloc(total);
        if (!c) {
            a->failed = true;
            return NULL;
        }
        c->used = 0;
        c->cap = cap;
        c->next = a->head;
        a->head = c;
        a->used += sizeof *c;
    }
    void *p = c->data + c->used;
    c->used += size;
    a->used += size;
    memset(p, 0, size);
    return p;
}

// Frees every chunk; the arena may be used again afterwards.
void chat_arena_release(chat_arena *a)
{
    struct arena_chunk *c = a->head;
    while (c) {
        struct arena_chunk *next = c->next;
        garlic_free(c);
        c = next;
    }
    a->head = NULL;
    a->used = 0;
    a->failed = false;
}

int chat_arena_grow(chat_arena *a, void *items, size_t *cap, size_t n, size_t need,
                    size_t item_size)
{
    if (need <= *cap)
        return GARLIC_OK;
    size_t min_items = 64 / item_size > 4 ? 64 / item_size : 4;
    size_t grown_cap = *cap > min_items ? *cap : min_items, bytes;
    while (grown_cap < need)
        if (__builtin_mul_overflow(grown_cap, 2, &grown_cap))
            return GARLIC_ENOMEM;
    void *grown = NULL;
    if (__builtin_mul_overflow(grown_cap, item_size, &bytes) ||
        !(grown = chat_arena_alloc(a, bytes)))
        return GARLIC_ENOMEM;
    if (n)
        memcpy(grown, *(void **)items, n * item_size);
    *(void **)items = grown;
    *cap = grown_cap;
    return GARLIC_OK;
}

// Appends n bytes, keeping data NUL-terminated; GARLIC_ENOMEM past max or the arena limit.
int chat_buf_append(chat_arena *a, chat_buf *b, const char *s, size_t n)
{
    if (n > SIZE_MAX / 4 || (b->max && b->len + n > b->max))
        return GARLIC_ENOMEM;
    if (b->len + n + 1 > b->cap &&
        chat_arena_grow(a, &b->data, &b->cap, b->len, b->len + n + 1, 1) != GARLIC_OK)
        return GARLIC_ENOMEM;
    if (n)
        memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
    return GARLIC_OK;
}

int chat_buf_printf(chat_arena *a, chat_buf *b, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0)
        return GARLIC_EINVAL;
    return chat_buf_append(a, b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

chat_value chat_str_copy(chat_arena *a, const char *p, size_t n)
{
    char *s = chat_arena_alloc(a, n + 1);
    if (!s)
        return chat_undefined(NULL);
    if (n)
        memcpy(s, p, n);
    return chat_str(s, n);
}

// A new list with room for cap items (none yet); NULL when the arena says no.
chat_list *chat_list_new(chat_arena *a, size_t cap)
{
    chat_list *l = chat_arena_alloc(a, sizeof *l);
    if (!l)
        return NULL;
    if (cap) {
        if (cap > SIZE_MAX / sizeof(chat_value) / 2)
            return NULL;
        l->items = chat_arena_alloc(a, cap * sizeof(chat_value));
        if (!l->items)
            return NULL;
        l->cap = cap;
    }
    return l;
}

// Appends v, doubling the storage when full.
int chat_list_push(chat_arena *a, chat_list *l, chat_value v)
{
    if (l->n == l->cap &&
        chat_arena_grow(a, &l->items, &l->cap, l->n, l->n + 1, sizeof *l->items) != GARLIC_OK)
        return GARLIC_ENOMEM;
    l->items[l->n++] = v;
    return GARLIC_OK;
}

// A new empty dict with room for cap entries.
chat_dict *chat_dict_new(chat_arena *a, size_t cap)
{
    chat_dict *d = chat_arena_alloc(a, sizeof *d);
    if (!d)
        return NULL;
    if (cap) {
        if (cap > SIZE_MAX / sizeof(chat_value) / 2)
            return NULL;
        d->keys = chat_arena_alloc(a, cap * sizeof(chat_value));
        d->vals = chat_arena_alloc(a, cap * sizeof(chat_value));
        if (!d->keys || !d->vals)
            return NULL;
        d->cap = cap;
    }
    return d;
}

_Thread_local uint64_t chat_work_units;

const char *chat_memmem(const char *hay, size_t hay_len, const char *needle, size_t needle_len)
{
    chat_work(1 + hay_len / 64);
    return memmem(hay, hay_len, needle, needle_len);
}

// Dicts up to this size are searched key by key; larger ones through their hash index.
enum { DICT_INDEX_FROM = 16 };

static uint64_t hash_bytes(const char *p, size_t n)
{
    chat_work(n / 64);
    uint64_t h = 0xcbf29ce484222325u; // FNV-1a
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 0x100000001b3u;
    return h;
}

// A hash consistent with chat_equal: equal numbers (True, 1, 1.0) hash alike; strings by
// their bytes; other key types (None, tuples) share one bucket per type, which is correct
// and only slower.
static uint64_t hash_value(const chat_value *v)
{
    switch (v->type) {
    case CHAT_STRING: return hash_bytes(v->s.ptr, v->s.len);
    case CHAT_BOOL:
    case CHAT_INT:
    case CHAT_FLOAT: {
        double f = chat_number(v);
        uint64_t bits;
        if (v->type != CHAT_FLOAT)
            bits = (uint64_t)(v->type == CHAT_INT ? v->i : v->b);
        else if (f >= -9.2e18 && f <= 9.2e18 && f == (double)(int64_t)f)
            bits = (uint64_t)(int64_t)f;
        else
            memcpy(&bits, &f, sizeof bits);
        return (bits ^ (bits >> 29)) * 0xbf58476d1ce4e5b9u;
    }
    default: return (uint64_t)v->type * 0x9e3779b97f4a7c15u;
    }
}

// (Re)builds the index with room for twice the capacity; false when out of memory (the
// dict is then searched key by key, still correct).
static bool dict_index(chat_arena *a, chat_dict *d)
{
    size_t n_slots = 64;
    while (n_slots < 2 * d->cap)
        n_slots *= 2;
    if (d->cap > UINT32_MAX / 2 || n_slots > SIZE_MAX / sizeof *d->slots)
        return false;
    uint32_t *slots = chat_arena_alloc(a, n_slots * sizeof *slots);
    if (!slots)
        return false;
    for (size_t i = 0; i < d->n; i++) {
        size_t s = (size_t)hash_value(&d->keys[i]) & (n_slots - 1);
        while (slots[s])
            s = (s + 1) & (n_slots - 1);
        slots[s] = (uint32_t)i + 1;
    }
    d->slots = slots;
    d->n_slots = n_slots;
    return true;
}

// The index of the entry whose key equals key, or -1.
static ptrdiff_t dict_lookup(const chat_dict *d, const chat_value *key)
{
    if (!d->slots) {
        for (size_t i = 0; i < d->n; i++)
            if (chat_equal(&d->keys[i], key))
                return (ptrdiff_t)i;
        return -1;
    }
    size_t mask = d->n_slots - 1;
    for (size_t s = (size_t)hash_value(key) & mask; d->slots[s]; s = (s + 1) & mask) {
        size_t i = d->slots[s] - 1; // (chat_equal counts the probe as work)
        if (chat_equal(&d->keys[i], key))
            return (ptrdiff_t)i;
    }
    return -1;
}

// Looks key up by Python equality; NULL when absent.
const chat_value *chat_dict_find(const chat_dict *d, const chat_value *key)
{
    ptrdiff_t i = dict_lookup(d, key);
    return i < 0 ? NULL : &d->vals[i];
}

const chat_value *chat_dict_get(const chat_dict *d, const char *key, size_t key_len)
{
    chat_value k = chat_str(key, key_len);
    return chat_dict_find(d, &k);
}

// Sets key to val, replacing an equal key's value in place (order kept) or appending.
int chat_dict_set(chat_arena *a, chat_dict *d, chat_value key, chat_value val)
{
    ptrdiff_t found = dict_lookup(d, &key);
    if (found >= 0) {
        d->vals[found] = val;
        return GARLIC_OK;
    }
    chat_value *keys = d->keys, *vals = d->vals;
    size_t cap_keys = d->cap, cap_vals = d->cap; // both grow to the same capacity
    if (chat_arena_grow(a, &keys, &cap_keys, d->n, d->n + 1, sizeof *keys) != GARLIC_OK ||
        chat_arena_grow(a, &vals, &cap_vals, d->n, d->n + 1, sizeof *vals) != GARLIC_OK)
        return GARLIC_ENOMEM;
    d->keys = keys;
    d->vals = vals;
    d->cap = cap_keys;
    d->keys[d->n] = key;
    d->vals[d->n] = val;
    d->n++;
    if (d->slots && 2 * d->cap <= d->n_slots) {
        size_t mask = d->n_slots - 1, s = (size_t)hash_value(&key) & mask;
        while (d->slots[s])
            s = (s + 1) & mask;
        d->slots[s] = (uint32_t)d->n;
    } else if (d->n >= DICT_INDEX_FROM && !dict_index(a, d)) {
        d->slots = NULL;
        d->n_slots = 0;
    }
    return GARLIC_OK;
}

// Python truthiness; undefined is false, namespaces, loops and callables are true.
bool chat_truthy(const chat_value *v)
{
    switch (v->type) {
    case CHAT_UNDEFINED:
    case CHAT_NONE: return false;
    case CHAT_BOOL: return v->b;
    case CHAT_INT: return v->i != 0;
    case CHAT_FLOAT: return v->f != 0.0;
    case CHAT_STRING: return v->s.len != 0;
    case CHAT_LIST: return v->list->n != 0;
    case CHAT_DICT: return v->dict->n != 0;
    default: return true;
    }
}

bool chat_is_number(const chat_value *v)
{
    return v->type == CHAT_BOOL || v->type == CHAT_INT || v->type == CHAT_FLOAT;
}

double chat_number(const chat_value *v)
{
    if (v->type == CHAT_FLOAT)
        return v->f;
    if (v->type == CHAT_INT)
        return (double)v->i;
    return v->type == CHAT_BOOL && v->b ? 1.0 : 0.0;
}

static int64_t as_int(const chat_value *v)
{
    return v->type == CHAT_INT ? v->i : (v->type == CHAT_BOOL && v->b);
}

static bool equal_at(const chat_value *a, const chat_value *b, int depth);

static bool dict_equal(const chat_dict *a, const chat_dict *b, int depth)
{
    if (a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++) {
        const chat_value *other = chat_dict_find(b, &a->keys[i]);
        if (!other || !equal_at(&a->vals[i], other, depth + 1))
            return false;
    }
    return true;
}

// Python ==: numbers across bool/int/float, strings by bytes, lists and tuples item by item,
// dicts regardless of order; undefined equals only undefined.
bool chat_equal(const chat_value *a, const chat_value *b) { return equal_at(a, b, 0); }

// Containers nested deeper than this compare by identity, print as [...] and do not order,
// so that a template-built 100000-deep list cannot overflow the C stack.
enum { VALUE_MAX_DEPTH = 200 };

static bool equal_at(const chat_value *a, const chat_value *b, int depth)
{
    chat_work(1);
    if (chat_is_number(a) && chat_is_number(b)) {
        if (a->type != CHAT_FLOAT && b->type != CHAT_FLOAT)
            return as_int(a) == as_int(b);
        return chat_number(a) == chat_number(b);
    }
    if (a->type != b->type)
        return false;
    switch (a->type) {
    case CHAT_UNDEFINED:
    case CHAT_NONE: return true;
    case CHAT_STRING:
        if (a->s.len != b->s.len)
            return false;
        chat_work(a->s.len / 64);
        return memcmp(a->s.ptr, b->s.ptr, a->s.len) == 0;
    case CHAT_LIST:
        if (a->list == b->list)
            return true;
        if (a->list->n != b->list->n || a->list->is_tuple != b->list->is_tuple ||
            depth >= VALUE_MAX_DEPTH)
            return false;
        for (size_t i = 0; i < a->list->n; i++)
            if (!equal_at(&a->list->items[i], &b->list->items[i], depth + 1))
                return false;
        return true;
    case CHAT_DICT:
        return a->dict == b->dict ||
            (depth < VALUE_MAX_DEPTH && dict_equal(a->dict, b->dict, depth));
    case CHAT_NAMESPACE: return a->dict == b->dict;
    case CHAT_LOOP: return a->loop == b->loop;
    case CHAT_CALLABLE: return a->fn == b->fn;
    default: return false;
    }
}

// Python ordering of numbers, strings (by UTF-8 bytes, i.e. code points) and sequences.
static int compare_at(const chat_value *a, const chat_value *b, int *order, int depth);

int chat_compare(const chat_value *a, const chat_value *b, int *order)
{
    return compare_at(a, b, order, 0);
}

static int compare_at(const chat_value *a, const chat_value *b, int *order, int depth)
{
    chat_work(1);
    if (chat_is_number(a) && chat_is_number(b)) {
        if (a->type != CHAT_FLOAT && b->type != CHAT_FLOAT)
            *order = (as_int(a) > as_int(b)) - (as_int(a) < as_int(b));
        else
            *order = (chat_number(a) > chat_number(b)) - (chat_number(a) < chat_number(b));
        return GARLIC_OK;
    }
    if (a->type == CHAT_STRING && b->type == CHAT_STRING) {
        size_t n = a->s.len < b->s.len ? a->s.len : b->s.len;
        chat_work(n / 64);
        int r = n ? memcmp(a->s.ptr, b->s.ptr, n) : 0;
        *order = r ? (r > 0) - (r < 0) : (a->s.len > b->s.len) - (a->s.len < b->s.len);
        return GARLIC_OK;
    }
    if (a->type == CHAT_LIST && b->type == CHAT_LIST && depth < VALUE_MAX_DEPTH) {
        size_t n = a->list->n < b->list->n ? a->list->n : b->list->n;
        for (size_t i = 0; i < n; i++) {
            if (chat_equal(&a->list->items[i], &b->list->items[i]))
                continue;
            return compare_at(&a->list->items[i], &b->list->items[i], order, depth + 1);
        }
        *order = (a->list->n > b->list->n) - (a->list->n < b->list->n);
        return GARLIC_OK;
    }
    return GARLIC_ETYPE;
}

// Python's name of the value's type, for error messages.
const char *chat_type_name(const chat_value *v)
{
    switch (v->type) {
    case CHAT_UNDEFINED: return "Undefined";
    case CHAT_NONE: return "NoneType";
    case CHAT_BOOL: return "bool";
    case CHAT_INT: return "int";
    case CHAT_FLOAT: return "float";
    case CHAT_STRING: return "str";
    case CHAT_LIST: return v->list->is_tuple ? "tuple" : "list";
    case CHAT_DICT: return "dict";
    case CHAT_NAMESPACE: return "Namespace";
    case CHAT_LOOP: return "LoopContext";
    case CHAT_CALLABLE: return v->fn->macro ? "Macro" : "builtin_function_or_method";
    default: return "object";
    }
}

// Python's repr of a float: the shortest digits that read back to the same double, in
// positional form when the decimal exponent is in [-4, 16), else as 1.5e+20.
void chat_float_repr(double f, char *out)
{
    if (isnan(f)) {
        strcpy(out, "nan");
        return;
    }
    if (isinf(f)) {
        strcpy(out, f < 0 ? "-inf" : "inf");
        return;
    }
    char tmp[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*e", prec - 1, f);
        if (strtod(tmp, NULL) == f)
            break;
    }
    // tmp is [-]D[.DDD]e[+-]XX
    char digits[24];
    size_t nd = 0;
    const char *p = tmp;
    bool neg = *p == '-';
    if (neg)
        p++;
    for (; *p && *p != 'e'; p++)
        if (*p != '.' && nd < sizeof digits - 1)
            digits[nd++] = *p;
    digits[nd] = '\0';
    while (nd > 1 && digits[nd - 1] == '0')
        digits[--nd] = '\0';
    int exp10 = atoi(p + 1);
    int decpt = exp10 + 1;
    char *o = out;
    if (neg)
        *o++ = '-';
    if (decpt > -4 && decpt <= 16) {
        if (decpt <= 0) {
            o += sprintf(o, "0.");
            for (int i = 0; i < -decpt; i++)
                *o++ = '0';
            o += sprintf(o, "%s", digits);
        } else {
            for (int i = 0; i < decpt; i++)
                *o++ = (size_t)i < nd ? digits[i] : '0';
            *o++ = '.';
            if ((size_t)decpt < nd)
                o += sprintf(o, "%s", digits + decpt);
            else
                *o++ = '0';
        }
        *o = '\0';
        return;
    }
    *o++ = digits[0];
    if (nd > 1)
        o += sprintf(o, ".%s", digits + 1);
    sprintf(o, "e%c%02d", exp10 < 0 ? '-' : '+', exp10 < 0 ? -exp10 : exp10);
}

// Decodes the code point at s[0..n) into *cp and returns its length (1 for a bad byte).
static size_t utf8_decode(const char *s, size_t n, uint32_t *cp)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t len = u[0] < 0x80 ? 1 : u[0] >= 0xf0 ? 4 : u[0] >= 0xe0 ? 3 : u[0] >= 0xc0 ? 2 : 1;
    if (len > n)
        len = 1;
    for (size_t i = 1; i < len; i++)
        if ((u[i] & 0xc0) != 0x80)
            len = 1;
    if (len == 1) {
        *cp = u[0];
        return 1;
    }
    uint32_t c = u[0] & (0x7f >> len);
    for (size_t i = 1; i < len; i++)
        c = (c << 6) | (u[i] & 0x3f);
    *cp = c;
    return len;
}

size_t chat_utf8_count(const char *s, size_t n)
{
    size_t count = 0;
    for (size_t i = 0; i < n; count++) {
        uint32_t cp;
        i += utf8_decode(s + i, n - i, &cp);
    }
    return count;
}

size_t chat_utf8_offset(const char *s, size_t n, size_t index)
{
    size_t i = 0;
    for (size_t k = 0; k < index && i < n; k++) {
        uint32_t cp;
        i += utf8_decode(s + i, n - i, &cp);
    }
    return i;
}

// Code points Python's str.isprintable() rejects, among those templates meet.
static bool printable(uint32_t cp)
{
    if (cp < 0x20 || (cp >= 0x7f && cp <= 0xa0) || cp == 0xad)
        return false;
    if ((cp >= 0x2000 && cp <= 0x200f) || (cp >= 0x2028 && cp <= 0x202f))
        return false;
    if ((cp >= 0x205f && cp <= 0x206f) || cp == 0x1680 || cp == 0x3000 || cp == 0xfeff)
        return false;
    return !(cp >= 0xd800 && cp <= 0xdfff);
}

// Python's repr of a string: single quotes unless only double quotes avoid escaping.
static int str_repr(chat_arena *a, chat_buf *b, const char *s, size_t n)
{
    bool has_single = memchr(s, '\'', n) != NULL, has_double = memchr(s, '"', n) != NULL;
    char quote = has_single && !has_double ? '"' : '\'';
    int rc = chat_buf_append(a, b, &quote, 1);
    for (size_t i = 0; i < n && rc == GARLIC_OK;) {
        uint32_t cp;
        size_t len = utf8_decode(s + i, n - i, &cp);
        if (cp == '\\' || cp == (uint32_t)quote)
            rc = chat_buf_printf(a, b, "\\%c", (char)cp);
        else if (cp == '\n' || cp == '\r' || cp == '\t')
            rc = chat_buf_printf(a, b, "\\%c", cp == '\n' ? 'n' : cp == '\r' ? 'r' : 't');
        else if (printable(cp))
            rc = chat_buf_append(a, b, s + i, len);
        else if (cp <= 0xff)
            rc = chat_buf_printf(a, b, "\\x%02x", (unsigned)cp);
        else if (cp <= 0xffff)
            rc = chat_buf_printf(a, b, "\\u%04x", (unsigned)cp);
        else
            rc = chat_buf_printf(a, b, "\\U%08x", (unsigned)cp);
        i += len;
    }
    return rc ? rc : chat_buf_append(a, b, &quote, 1);
}

// repr of a list, tuple ("(1,)") or dict view.
static int repr_at(chat_arena *a, chat_buf *b, const chat_value *v, int depth);
static int str_at(chat_arena *a, chat_buf *b, const chat_value *v, int depth);

static int seq_repr(chat_arena *a, chat_buf *b, const chat_list *l, int depth)
{
    static const char *const views[CHAT_VIEW_COUNT] = {
        [CHAT_VIEW_NONE] = "",
        [CHAT_VIEW_ITEMS] = "dict_items(",
        [CHAT_VIEW_KEYS] = "dict_keys(",
        [CHAT_VIEW_VALUES] = "dict_values(",
    };
    const char *view = views[l->view < CHAT_VIEW_COUNT ? l->view : CHAT_VIEW_NONE];
    int rc = chat_buf_append(a, b, view, strlen(view));
    rc = rc ? rc : chat_buf_append(a, b, l->is_tuple ? "(" : "[", 1);
    for (size_t i = 0; i < l->n && rc == GARLIC_OK; i++) {
        if (i)
            rc = chat_buf_append(a, b, ", ", 2);
        if (rc == GARLIC_OK)
            rc = repr_at(a, b, &l->items[i], depth + 1);
    }
    if (rc == GARLIC_OK && l->is_tuple && l->n == 1)
        rc = chat_buf_append(a, b, ",", 1);
    rc = rc ? rc : chat_buf_append(a, b, l->is_tuple ? ")" : "]", 1);
    return rc || !view[0] ? rc : chat_buf_append(a, b, ")", 1);
}

// repr of a dict: {'key': value, ...}.
static int dict_repr(chat_arena *a, chat_buf *b, const chat_dict *d, int depth)
{
    int rc = chat_buf_append(a, b, "{", 1);
    for (size_t i = 0; i < d->n && rc == GARLIC_OK; i++) {
        if (i)
            rc = chat_buf_append(a, b, ", ", 2);
        if (rc == GARLIC_OK)
            rc = repr_at(a, b, &d->keys[i], depth + 1);
        if (rc == GARLIC_OK)
            rc = chat_buf_append(a, b, ": ", 2);
        if (rc == GARLIC_OK)
            rc = repr_at(a, b, &d->vals[i], depth + 1);
    }
    return rc ? rc : chat_buf_append(a, b, "}", 1);
}

int chat_value_repr(chat_arena *a, chat_buf *b, const chat_value *v) { return repr_at(a, b, v, 0); }

int chat_value_str(chat_arena *a, chat_buf *b, const chat_value *v) { return str_at(a, b, v, 0); }

static int repr_at(chat_arena *a, chat_buf *b, const chat_value *v, int depth)
{
    if (v->type == CHAT_STRING)
        return str_repr(a, b, v->s.ptr, v->s.len);
    if (v->type == CHAT_UNDEFINED)
        return chat_buf_append(a, b, "Undefined", 9);
    return str_at(a, b, v, depth);
}

// Python str(): None, True, 42, 1.5, the text itself, or the repr of a container.
static int str_at(chat_arena *a, chat_buf *b, const chat_value *v, int depth)
{
    char num[40];
    if (depth > VALUE_MAX_DEPTH && (v->type == CHAT_LIST || v->type == CHAT_DICT))
        return chat_buf_append(a, b, "[...]", 5);
    switch (v->type) {
    case CHAT_UNDEFINED: return GARLIC_OK;
    case CHAT_NONE: return chat_buf_append(a, b, "None", 4);
    case CHAT_BOOL:
        return v->b ? chat_buf_append(a, b, "True", 4) : chat_buf_append(a, b, "False", 5);
    case CHAT_INT: return chat_buf_printf(a, b, "%lld", (long long)v->i);
    case CHAT_FLOAT: chat_float_repr(v->f, num); return chat_buf_append(a, b, num, strlen(num));
    case CHAT_STRING: return chat_buf_append(a, b, v->s.ptr, v->s.len);
    case CHAT_LIST: return seq_repr(a, b, v->list, depth);
    case CHAT_DICT: return dict_repr(a, b, v->dict, depth);
    case CHAT_NAMESPACE: {
        int rc = chat_buf_append(a, b, "<Namespace ", 11);
        rc = rc ? rc : dict_repr(a, b, v->dict, depth);
        return rc ? rc : chat_buf_append(a, b, ">", 1);
    }
    case CHAT_LOOP:
        return chat_buf_printf(a, b, "<LoopContext %zu/%zu>", v->loop->index0 + 1,
                               v->loop->items->n);
    case CHAT_CALLABLE:
        if (v->fn->macro)
            return chat_buf_printf(a, b, "<Macro '%s'>", v->fn->name);
        return chat_buf_printf(a, b, "<built-in function %s>", v->fn->name);
    default: return GARLIC_OK;
    }
}
