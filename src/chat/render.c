// SPDX-License-Identifier: MIT
// The template interpreter: walks the AST with Jinja2's semantics (scopes per for-loop
// iteration and per macro call, undefined values that print as nothing but fail in
// arithmetic, Python operators and errors) and writes the output into an arena buffer.
// Every statement, iteration and call is counted and macro calls are depth-limited, and
// the arena and the output are capped, so a hostile template ends with an error, not a hang.
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "chat/internal.h"

static int exec_body(render_ctx *c, const chat_node_list *body);

int chat_render_error(render_ctx *c, const chat_node *at, int code, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (at)
        return garlic_error_set(c->err, code, "%s:%u:%u: %s", c->tpl->name, at->line, at->col, msg);
    return garlic_error_set(c->err, code, "%s: %s", c->tpl->name, msg);
}

int chat_render_nomem(render_ctx *c, const chat_node *at)
{
    if (c->arena.failed)
        return chat_render_error(c, at, GARLIC_ENOMEM,
                                 "render exceeds its memory limit (%zu bytes)", c->arena.limit);
    return chat_render_error(c, at, GARLIC_ENOMEM, "output exceeds its limit (%zu bytes)",
                             c->max_output);
}

bool chat_render_tick(render_ctx *c)
{
    return ++c->steps + (chat_work_units - c->work_start) <= c->max_steps;
}

static int too_long(render_ctx *c, const chat_node *at)
{
    return chat_render_error(c, at, GARLIC_EINVAL, "template runs too long (more than %llu steps)",
                             (unsigned long long)c->max_steps);
}

static const char *owner_name(chat_type t)
{
    static const char *const names[CHAT_TYPE_COUNT] = {
        [CHAT_UNDEFINED] = "Undefined", [CHAT_NONE] = "None",
        [CHAT_BOOL] = "bool",           [CHAT_INT] = "int",
        [CHAT_FLOAT] = "float",         [CHAT_STRING] = "str",
        [CHAT_LIST] = "list",           [CHAT_DICT] = "dict",
        [CHAT_NAMESPACE] = "Namespace", [CHAT_LOOP] = "LoopContext",
        [CHAT_CALLABLE] = "function"};
    return t < CHAT_TYPE_COUNT ? names[t] : "object";
}

// UndefinedError or SecurityError for an operation on an undefined value.
int chat_render_undefined_error(render_ctx *c, const chat_node *at, const chat_value *v)
{
    const char *name = v->undef.name ? v->undef.name : "value";
    if (v->undef.unsafe)
        return chat_render_error(
            c, at, GARLIC_EINVAL,
            "SecurityError: access to attribute '%s' of '%s' object is unsafe.", name,
            owner_name(v->undef.owner));
    if (v->undef.owner != CHAT_TYPE_COUNT)
        return chat_render_error(c, at, GARLIC_EINVAL,
                                 "UndefinedError: '%s object' has no attribute '%s'",
                                 owner_name(v->undef.owner), name);
    return chat_render_error(c, at, GARLIC_EINVAL, "UndefinedError: '%s' is undefined", name);
}

// ---- variables -------------------------------------------------------------------------

static int push_var(render_ctx *c, const char *name, chat_value v)
{
    if (c->n_vars == c->cap_vars &&
        chat_arena_grow(&c->arena, &c->vars, &c->cap_vars, c->n_vars, c->n_vars + 1,
                        sizeof *c->vars) != GARLIC_OK)
        return GARLIC_ENOMEM;
    c->vars[c->n_vars++] = (render_var){name, v};
    return GARLIC_OK;
}

// Binds name in the innermost scope (replacing a binding made there before).
static int assign(render_ctx *c, const char *name, chat_value v)
{
    for (size_t i = c->n_vars; i-- > c->scope_start;)
        if (strcmp(c->vars[i].name, name) == 0) {
            c->vars[i].value = v;
            return GARLIC_OK;
        }
    int rc = push_var(c, name, v);
    if (rc == GARLIC_OK && c->scope_start == 0)
        c->n_globals = c->n_vars;
    return rc;
}

// Defines a top-level variable (a render argument); name must outlive the render.
int chat_render_define(render_ctx *c, const char *name, chat_value v) { return assign(c, name, v); }

// Looks a name up: the current macro call's scopes, then the top level, then globals.
static bool lookup(const render_ctx *c, const char *name, chat_value *out)
{
    for (size_t i = c->n_vars; i-- > c->frame_start;)
        if (strcmp(c->vars[i].name, name) == 0) {
            *out = c->vars[i].value;
            return true;
        }
    if (c->frame_start > 0)
        for (size_t i = c->n_globals; i-- > 0;)
            if (strcmp(c->vars[i].name, name) == 0) {
                *out = c->vars[i].value;
                return true;
            }
    return chat_global(name, out);
}

// ---- output ----------------------------------------------------------------------------

static int emit(render_ctx *c, const chat_node *at, const char *s, size_t n)
{
    return chat_buf_append(&c->arena, c->out, s, n) ? chat_render_nomem(c, at) : GARLIC_OK;
}

// Renders a body into a fresh string (macro bodies, block sets, filter blocks).
static int capture(render_ctx *c, const chat_node *at, const chat_node_list *body, chat_value *out)
{
    chat_buf buf = {.max = c->max_output}, *saved = c->out;
    c->out = &buf;
    int rc = exec_body(c, body);
    c->out = saved;
    if (rc)
        return rc;
    (void)at;
    *out = chat_str(buf.data ? buf.data : "", buf.len);
    return GARLIC_OK;
}

// ---- expressions -----------------------------------------------------------------------

static int type_error(render_ctx *c, const chat_node *at, const char *op, const chat_value *a,
                      const chat_value *b)
{
    return chat_render_error(c, at, GARLIC_ETYPE,
                             "TypeError: unsupported operand type(s) for %s: '%s' and '%s'", op,
                             chat_type_name(a), chat_type_name(b));
}

// str + str and list + list (tuple + tuple), into new arena storage.
static int concat_seq(render_ctx *c, const chat_node *at, const chat_value *a, const chat_value *b,
                      chat_value *out)
{
    if (a->type == CHAT_STRING) {
        size_t n = a->s.len + b->s.len;
        if (n > c->max_output)
            return chat_render_nomem(c, at);
        char *s = chat_arena_alloc(&c->arena, n + 1);
        if (!s)
            return chat_render_nomem(c, at);
        memcpy(s, a->s.ptr, a->s.len);
        memcpy(s + a->s.len, b->s.ptr, b->s.len);
        *out = chat_str(s, n);
        return GARLIC_OK;
    }
    chat_list *l = chat_list_new(&c->arena, a->list->n + b->list->n);
    if (!l)
        return chat_render_nomem(c, at);
    for (size_t i = 0; i < a->list->n; i++)
        l->items[l->n++] = a->list->items[i];
    for (size_t i = 0; i < b->list->n; i++)
        l->items[l->n++] = b->list->items[i];
    l->is_tuple = a->list->is_tuple;
    *out = (chat_value){.type = CHAT_LIST, .list = l};
    return GARLIC_OK;
}

// str * n and list * n, capped like any other output.
static int repeat(render_ctx *c, const chat_node *at, const chat_value *seq, int64_t times,
                  chat_value *out)
{
    size_t count = times > 0 ? (size_t)times : 0;
    size_t unit = seq->type == CHAT_STRING ? seq->s.len : seq->list->n * sizeof(chat_value);
    size_t total;
    if (__builtin_mul_overflow(unit, count, &total) || total > c->max_output)
        return chat_render_nomem(c, at);
    if (seq->type == CHAT_STRING) {
        char *s = chat_arena_alloc(&c->arena, total + 1);
        if (!s)
            return chat_render_nomem(c, at);
        for (size_t i = 0; i < count; i++)
            memcpy(s + i * unit, seq->s.ptr, unit);
        *out = chat_str(s, total);
        return GARLIC_OK;
    }
    chat_list *l = chat_list_new(&c->arena, seq->list->n * count);
    if (!l)
        return chat_render_nomem(c, at);
    for (size_t i = 0; i < count; i++)
        for (size_t k = 0; k < seq->list->n; k++)
            l->items[l->n++] = seq->list->items[k];
    l->is_tuple = seq->list->is_tuple;
    *out = (chat_value){.type = CHAT_LIST, .list = l};
    return GARLIC_OK;
}

// Integer arithmetic with Python's floor division and modulo; overflow is an error,
// since garlic has no big integers.
static int arith_int(render_ctx *c, const chat_node *at, chat_op op, int64_t x, int64_t y,
                     chat_value *out)
{
    int64_t r = 0;
    bool overflow = false;
    switch (op) {
    case OP_ADD: overflow = __builtin_add_overflow(x, y, &r); break;
    case OP_SUB: overflow = __builtin_sub_overflow(x, y, &r); break;
    case OP_MUL: overflow = __builtin_mul_overflow(x, y, &r); break;
    case OP_FLOORDIV:
    case OP_MOD:
        if (y == 0)
            return chat_render_error(c, at, GARLIC_EINVAL,
                                     "ZeroDivisionError: integer division or modulo by zero");
        if (x == INT64_MIN && y == -1)
            overflow = true;
        else if (op == OP_FLOORDIV)
            r = x / y - ((x % y != 0) && ((x < 0) != (y < 0)));
        else
            r = x % y + ((x % y != 0 && (x < 0) != (y < 0)) ? y : 0);
        break;
    case OP_POW:
        if (y < 0) {
            *out = chat_float(pow((double)x, (double)y));
            return GARLIC_OK;
        }
        r = 1;
        for (int64_t i = 0; i < y && !overflow; i++)
            overflow = __builtin_mul_overflow(r, x, &r);
        break;
    default: break;
    }
    if (overflow)
        return chat_render_error(c, at, GARLIC_EINVAL, "integer overflow");
    *out = chat_int(r);
    return GARLIC_OK;
}

// Python's arithmetic operators, sequence repetition and string formatting with %.
static int arith(render_ctx *c, const chat_node *at, chat_op op, const chat_value *a,
                 const chat_value *b, chat_value *out)
{
    static const char *const names[OP_COUNT] = {
        [OP_ADD] = "+",       [OP_SUB] = "-", [OP_MUL] = "*", [OP_DIV] = "/",
        [OP_FLOORDIV] = "//", [OP_MOD] = "%", [OP_POW] = "**"};
    if (a->type == CHAT_UNDEFINED)
        return chat_render_undefined_error(c, at, a);
    if (b->type == CHAT_UNDEFINED)
        return chat_render_undefined_error(c, at, b);
    bool same_seq = a->type == b->type && (a->type == CHAT_STRING || a->type == CHAT_LIST);
    if (op == OP_ADD && same_seq)
        return concat_seq(c, at, a, b, out);
    if (op == OP_ADD && a->type == CHAT_STRING)
        return chat_render_error(c, at, GARLIC_ETYPE,
                                 "TypeError: can only concatenate str (not \"%s\") to str",
                                 chat_type_name(b));
    if (op == OP_MUL && (a->type == CHAT_STRING || a->type == CHAT_LIST) &&
        (b->type == CHAT_INT || b->type == CHAT_BOOL))
        return repeat(c, at, a, b->type == CHAT_INT ? b->i : b->b, out);
    if (op == OP_MUL && (b->type == CHAT_STRING || b->type == CHAT_LIST) &&
        (a->type == CHAT_INT || a->type == CHAT_BOOL))
        return repeat(c, at, b, a->type == CHAT_INT ? a->i : a->b, out);
    if (op == OP_MOD && a->type == CHAT_STRING)
        return chat_percent_format(c, at, a, b, out);
    if (!chat_is_number(a) || !chat_is_number(b))
        return type_error(c, at, names[op], a, b);
    if (a->type != CHAT_FLOAT && b->type != CHAT_FLOAT && op != OP_DIV)
        return arith_int(c, at, op, a->type == CHAT_INT ? a->i : a->b,
                         b->type == CHAT_INT ? b->i : b->b, out);
    double x = chat_number(a), y = chat_number(b), r = 0;
    if ((op == OP_DIV || op == OP_FLOORDIV || op == OP_MOD) && y == 0)
        return chat_render_error(c, at, GARLIC_EINVAL, "ZeroDivisionError: division by zero");
    switch (op) {
    case OP_ADD: r = x + y; break;
    case OP_SUB: r = x - y; break;
    case OP_MUL: r = x * y; break;
    case OP_DIV: r = x / y; break;
    case OP_FLOORDIV: r = floor(x / y); break;
    case OP_MOD:
        r = fmod(x, y);
        if (r != 0 && (r < 0) != (y < 0))
            r += y;
        break;
    case OP_POW: r = pow(x, y); break;
    default: break;
    }
    *out = chat_float(r);
    return GARLIC_OK;
}

// `needle in haystack`: substrings, list members, dict keys.
static int contains(render_ctx *c, const chat_node *at, const chat_value *needle,
                    const chat_value *hay, bool *out)
{
    *out = false;
    switch (hay->type) {
    case CHAT_UNDEFINED: return GARLIC_OK;
    case CHAT_STRING:
        if (needle->type == CHAT_UNDEFINED)
            return chat_render_undefined_error(c, at, needle);
        if (needle->type != CHAT_STRING)
            return chat_render_error(
                c, at, GARLIC_ETYPE,
                "TypeError: 'in <string>' requires string as left operand, not %s",
                chat_type_name(needle));
        *out = needle->s.len == 0 ||
            chat_memmem(hay->s.ptr, hay->s.len, needle->s.ptr, needle->s.len) != NULL;
        return GARLIC_OK;
    case CHAT_LIST:
        for (size_t i = 0; i < hay->list->n && !*out; i++)
            *out = chat_equal(&hay->list->items[i], needle);
        return GARLIC_OK;
    case CHAT_DICT:
    case CHAT_NAMESPACE: *out = chat_dict_find(hay->dict, needle) != NULL; return GARLIC_OK;
    default:
        return chat_render_error(c, at, GARLIC_ETYPE,
                                 "TypeError: argument of type '%s' is not iterable",
                                 chat_type_name(hay));
    }
}

// ==, !=, <, <=, >, >=, in and not in.
static int compare(render_ctx *c, const chat_node *at, chat_op op, const chat_value *a,
                   const chat_value *b, chat_value *out)
{
    static const char *const names[OP_COUNT] = {
        [OP_LT] = "<", [OP_LE] = "<=", [OP_GT] = ">", [OP_GE] = ">="};
    if (op == OP_EQ || op == OP_NE) {
        *out = chat_bool(chat_equal(a, b) == (op == OP_EQ));
        return GARLIC_OK;
    }
    if (op == OP_IN || op == OP_NOT_IN) {
        bool found;
        int rc = contains(c, at, a, b, &found);
        *out = chat_bool(found == (op == OP_IN));
        return rc;
    }
    if (a->type == CHAT_UNDEFINED)
        return chat_render_undefined_error(c, at, a);
    if (b->type == CHAT_UNDEFINED)
        return chat_render_undefined_error(c, at, b);
    int order;
    if (chat_compare(a, b, &order))
        return chat_render_error(c, at, GARLIC_ETYPE,
                                 "TypeError: '%s' not supported between instances of '%s' and '%s'",
                                 names[op], chat_type_name(a), chat_type_name(b));
    bool r = op == OP_LT ? order < 0
        : op == OP_LE    ? order <= 0
        : op == OP_GT    ? order > 0
                         : order >= 0;
    *out = chat_bool(r);
    return GARLIC_OK;
}

// and/or short-circuit and return an operand; ~ concatenates str() of both sides.
static int eval_binary(render_ctx *c, const chat_node *n, chat_value *out)
{
    chat_value a, b;
    int rc = chat_render_eval(c, n->a, &a);
    if (rc)
        return rc;
    if (n->op == OP_AND && !chat_truthy(&a)) {
        *out = a;
        return GARLIC_OK;
    }
    if (n->op == OP_OR && chat_truthy(&a)) {
        *out = a;
        return GARLIC_OK;
    }
    if ((rc = chat_render_eval(c, n->b, &b)))
        return rc;
    if (n->op == OP_AND || n->op == OP_OR) {
        *out = b;
        return GARLIC_OK;
    }
    if (n->op == OP_CONCAT) {
        chat_buf buf = {.max = c->max_output};
        if (chat_value_str(&c->arena, &buf, &a) || chat_value_str(&c->arena, &buf, &b))
            return chat_render_nomem(c, n);
        *out = chat_str(buf.data ? buf.data : "", buf.len);
        return GARLIC_OK;
    }
    if (n->op >= OP_EQ && n->op <= OP_NOT_IN)
        return compare(c, n, n->op, &a, &b, out);
    return arith(c, n, n->op, &a, &b, out);
}

// not, unary minus and plus.
static int eval_unary(render_ctx *c, const chat_node *n, chat_value *out)
{
    chat_value a;
    int rc = chat_render_eval(c, n->a, &a);
    if (rc)
        return rc;
    if (n->op == OP_NOT) {
        *out = chat_bool(!chat_truthy(&a));
        return GARLIC_OK;
    }
    if (a.type == CHAT_UNDEFINED)
        return chat_render_undefined_error(c, n, &a);
    if (!chat_is_number(&a))
        return chat_render_error(c, n, GARLIC_ETYPE,
                                 "TypeError: bad operand type for unary %s: '%s'",
                                 n->op == OP_NEG ? "-" : "+", chat_type_name(&a));
    if (a.type == CHAT_FLOAT)
        *out = chat_float(n->op == OP_NEG ? -a.f : a.f);
    else if (a.type == CHAT_INT && a.i == INT64_MIN && n->op == OP_NEG)
        return chat_render_error(c, n, GARLIC_EINVAL, "integer overflow");
    else
        *out = chat_int(n->op == OP_NEG ? -(a.type == CHAT_INT ? a.i : a.b)
                                        : (a.type == CHAT_INT ? a.i : a.b));
    return GARLIC_OK;
}

// List, tuple and dict literals.
static int eval_collection(render_ctx *c, const chat_node *n, chat_value *out)
{
    if (n->kind == NODE_DICT) {
        chat_dict *d = chat_dict_new(&c->arena, n->args.n);
        if (!d)
            return chat_render_nomem(c, n);
        for (size_t i = 0; i < n->args.n; i++) {
            chat_value k, v;
            int rc = chat_render_eval(c, n->args.items[i], &k);
            if (rc || (rc = chat_render_eval(c, n->kwargs.items[i], &v)))
                return rc;
            if (chat_dict_set(&c->arena, d, k, v))
                return chat_render_nomem(c, n);
        }
        *out = (chat_value){.type = CHAT_DICT, .dict = d};
        return GARLIC_OK;
    }
    chat_list *l = chat_list_new(&c->arena, n->args.n);
    if (!l)
        return chat_render_nomem(c, n);
    for (size_t i = 0; i < n->args.n; i++) {
        int rc = chat_render_eval(c, n->args.items[i], &l->items[i]);
        if (rc)
            return rc;
        l->n++;
    }
    l->is_tuple = n->kind == NODE_TUPLE;
    *out = (chat_value){.type = CHAT_LIST, .list = l};
    return GARLIC_OK;
}

// Python slice bounds over a sequence of len items: fills start and the item count.
static void slice_bounds(int64_t len, const chat_value *parts, int64_t step, int64_t *start,
                         int64_t *count)
{
    int64_t lo = step > 0 ? 0 : len - 1, hi = step > 0 ? len : -1;
    for (int k = 0; k < 2; k++) {
        if (parts[k].type != CHAT_INT)
            continue;
        int64_t v = parts[k].i;
        if (v < 0)
            v += len;
        if (step > 0)
            v = v < 0 ? 0 : v > len ? len : v;
        else
            v = v < -1 ? -1 : v > len - 1 ? len - 1 : v;
        if (k == 0)
            lo = v;
        else
            hi = v;
    }
    // ceil(span / |step|) as (span - 1) / |step| + 1: no intermediate can overflow, even for
    // a step of +-2^63-ish (the span is at most len + 1).
    int64_t span = step > 0 ? hi - lo : lo - hi;
    uint64_t abs_step = step > 0 ? (uint64_t)step : 0 - (uint64_t)step;
    *start = lo;
    *count = span > 0 ? (int64_t)((uint64_t)(span - 1) / abs_step) + 1 : 0;
}

// obj[start:stop:step] on lists, tuples and strings (by code point).
static int eval_slice(render_ctx *c, const chat_node *n, chat_value *out)
{
    chat_value obj, parts[3] = {chat_none(), chat_none(), chat_none()};
    int rc = chat_render_eval(c, n->a, &obj);
    for (int k = 0; k < 3 && rc == GARLIC_OK; k++)
        if (n->args.items[k])
            rc = chat_render_eval(c, n->args.items[k], &parts[k]);
    if (rc)
        return rc;
    if (obj.type == CHAT_UNDEFINED)
        return chat_render_undefined_error(c, n, &obj);
    for (int k = 0; k < 3; k++)
        if (parts[k].type == CHAT_BOOL)
            parts[k] = chat_int(parts[k].b);
        else if (parts[k].type != CHAT_INT && parts[k].type != CHAT_NONE)
            return chat_render_error(c, n, GARLIC_ETYPE,
                                     "TypeError: slice indices must be integers or None");
    int64_t step = parts[2].type == CHAT_INT ? parts[2].i : 1;
    if (step == 0)
        return chat_render_error(c, n, GARLIC_EINVAL, "ValueError: slice step cannot be zero");
    if (obj.type != CHAT_STRING && obj.type != CHAT_LIST)
        return chat_render_error(c, n, GARLIC_ETYPE, "TypeError: '%s' object is not subscriptable",
                                 chat_type_name(&obj));
    int64_t len = obj.type == CHAT_STRING ? (int64_t)chat_utf8_count(obj.s.ptr, obj.s.len)
                                          : (int64_t)obj.list->n;
    int64_t start, count;
    slice_bounds(len, parts, step, &start, &count);
    if (obj.type == CHAT_LIST) {
        chat_list *l = chat_list_new(&c->arena, (size_t)count);
        if (!l)
            return chat_render_nomem(c, n);
        for (int64_t i = 0; i < count; i++)
            l->items[l->n++] = obj.list->items[start + i * step];
        l->is_tuple = obj.list->is_tuple;
        *out = (chat_value){.type = CHAT_LIST, .list = l};
        return GARLIC_OK;
    }
    chat_buf buf = {0};
    for (int64_t i = 0; i < count; i++) {
        size_t from = chat_utf8_offset(obj.s.ptr, obj.s.len, (size_t)(start + i * step));
        size_t to = chat_utf8_offset(obj.s.ptr, obj.s.len, (size_t)(start + i * step + 1));
        if (chat_buf_append(&c->arena, &buf, obj.s.ptr + from, to - from))
            return chat_render_nomem(c, n);
    }
    *out = chat_str(buf.data ? buf.data : "", buf.len);
    return GARLIC_OK;
}

// Evaluates a call's or filter's arguments: positional into *args, keywords into *kwargs.
int chat_render_eval_args(render_ctx *c, const chat_node *n, chat_value **args, chat_dict **kwargs)
{
    *args = NULL;
    *kwargs = chat_dict_new(&c->arena, n->kwargs.n);
    if (n->args.n && !(*args = chat_arena_alloc(&c->arena, n->args.n * sizeof **args)))
        return chat_render_nomem(c, n);
    if (!*kwargs)
        return chat_render_nomem(c, n);
    for (size_t i = 0; i < n->args.n; i++) {
        int rc = chat_render_eval(c, n->args.items[i], &(*args)[i]);
        if (rc)
            return rc;
    }
    for (size_t i = 0; i < n->kwargs.n; i++) {
        chat_value v;
        int rc = chat_render_eval(c, n->kwargs.items[i], &v);
        if (rc)
            return rc;
        if (chat_dict_set(&c->arena, *kwargs, chat_str(n->names[i], strlen(n->names[i])), v))
            return chat_render_nomem(c, n);
    }
    return GARLIC_OK;
}

// Calls a macro: binds its closure, arguments and defaults in a fresh frame that sees only
// the top level, renders its body into a string and restores the caller's scopes.
static int call_macro(render_ctx *c, const chat_node *at, const chat_callable *fn,
                      const chat_value *args, size_t n_args, const chat_dict *kwargs,
                      chat_value *out)
{
    const chat_node *m = fn->macro;
    if (n_args > m->n_names)
        return chat_render_error(c, at, GARLIC_ETYPE,
                                 "TypeError: macro '%s' takes not more than %zu argument(s)",
                                 m->str, m->n_names);
    for (size_t k = 0; k < kwargs->n; k++) {
        bool known = false;
        for (size_t i = n_args; i < m->n_names && !known; i++)
            known = kwargs->keys[k].s.len == strlen(m->names[i]) &&
                memcmp(kwargs->keys[k].s.ptr, m->names[i], kwargs->keys[k].s.len) == 0;
        if (!known)
            return chat_render_error(c, at, GARLIC_ETYPE,
                                     "TypeError: macro '%s' has no argument '%.*s'", m->str,
                                     (int)kwargs->keys[k].s.len, kwargs->keys[k].s.ptr);
    }
    if (++c->depth > c->max_depth)
        return chat_render_error(c, at, GARLIC_EINVAL,
                                 "macro calls nested too deeply (more than %d)", c->max_depth);
    size_t saved_vars = c->n_vars, saved_scope = c->scope_start, saved_frame = c->frame_start;
    c->scope_start = c->frame_start = c->n_vars;
    int rc = GARLIC_OK;
    for (size_t i = 0; i < fn->n_captured && rc == GARLIC_OK; i++)
        if (push_var(c, fn->captured[i].name, fn->captured[i].value))
            rc = chat_render_nomem(c, at);
    for (size_t i = 0; i < m->n_names && rc == GARLIC_OK; i++) {
        const chat_value *kw = chat_dict_get(kwargs, m->names[i], strlen(m->names[i]));
        chat_value v = chat_undefined(m->names[i]);
        if (i < n_args)
            v = args[i];
        else if (kw)
            v = *kw;
        else if (m->args.items[i])
            rc = chat_render_eval(c, m->args.items[i], &v);
        if (rc == GARLIC_OK && push_var(c, m->names[i], v))
            rc = chat_render_nomem(c, at);
    }
    chat_loop_control saved_ctl = c->loop_ctl;
    if (rc == GARLIC_OK)
        rc = capture(c, at, &m->body, out);
    c->loop_ctl = saved_ctl;
    c->n_vars = saved_vars;
    c->scope_start = saved_scope;
    c->frame_start = saved_frame;
    c->depth--;
    return rc;
}

// Calls a macro, a global or a bound method; anything else is a TypeError.
int chat_render_call(render_ctx *c, const chat_node *at, const chat_value *fn,
                     const chat_value *args, size_t n_args, const chat_dict *kwargs,
                     chat_value *out)
{
    if (!chat_render_tick(c))
        return too_long(c, at);
    if (fn->type == CHAT_UNDEFINED)
        return chat_render_undefined_error(c, at, fn);
    if (fn->type != CHAT_CALLABLE)
        return chat_render_error(c, at, GARLIC_ETYPE, "TypeError: '%s' object is not callable",
                                 chat_type_name(fn));
    if (fn->fn->macro)
        return call_macro(c, at, fn->fn, args, n_args, kwargs, out);
    return fn->fn->fn(c, at, &fn->fn->self, args, n_args, kwargs, out);
}

static int eval_call(render_ctx *c, const chat_node *n, chat_value *out)
{
    chat_value fn, *args;
    chat_dict *kwargs;
    int rc = chat_render_eval(c, n->a, &fn);
    if (rc || (rc = chat_render_eval_args(c, n, &args, &kwargs)))
        return rc;
    return chat_render_call(c, n, &fn, args, n->args.n, kwargs, out);
}

// obj.attr and obj[key]; on an undefined obj it is an UndefinedError.
static int eval_access(render_ctx *c, const chat_node *n, chat_value *out)
{
    chat_value obj, key;
    int rc = chat_render_eval(c, n->a, &obj);
    if (rc)
        return rc;
    if (obj.type == CHAT_UNDEFINED)
        return chat_render_undefined_error(c, n, &obj);
    if (n->kind == NODE_ATTR)
        return chat_get_attr(c, n, &obj, n->str, out);
    if ((rc = chat_render_eval(c, n->b, &key)))
        return rc;
    return chat_get_item(c, n, &obj, &key, out);
}

static int eval_node(render_ctx *c, const chat_node *n, chat_value *out);

// Evaluates an expression node into *out (values live in the render arena). Nested
// evaluations and statements share one depth budget, so that macro recursion times deep
// expressions cannot exhaust the C stack.
int chat_render_eval(render_ctx *c, const chat_node *n, chat_value *out)
{
    if (++c->nesting > RENDER_MAX_NESTING)
        return chat_render_error(c, n, GARLIC_EINVAL, "template nests too deeply");
    int rc = eval_node(c, n, out);
    c->nesting--;
    return rc;
}

static int eval_node(render_ctx *c, const chat_node *n, chat_value *out)
{
    switch (n->kind) {
    case NODE_LITERAL: *out = n->lit; return GARLIC_OK;
    case NODE_NAME:
        if (!lookup(c, n->str, out))
            *out = chat_undefined(n->str);
        return GARLIC_OK;
    case NODE_LIST:
    case NODE_TUPLE:
    case NODE_DICT: return eval_collection(c, n, out);
    case NODE_ATTR:
    case NODE_ITEM: return eval_access(c, n, out);
    case NODE_SLICE: return eval_slice(c, n, out);
    case NODE_CALL: return eval_call(c, n, out);
    case NODE_FILTER: {
        chat_value v = c->filter_input;
        int rc = n->a ? chat_render_eval(c, n->a, &v) : GARLIC_OK;
        return rc ? rc : chat_apply_filter(c, n, &v, out);
    }
    case NODE_TEST: {
        chat_value v;
        bool r;
        int rc = chat_render_eval(c, n->a, &v);
        if (rc || (rc = chat_apply_test(c, n, &v, &r)))
            return rc;
        *out = chat_bool(r != n->negated);
        return GARLIC_OK;
    }
    case NODE_UNARY: return eval_unary(c, n, out);
    case NODE_BINARY: return eval_binary(c, n, out);
    case NODE_COND: {
        chat_value cond;
        int rc = chat_render_eval(c, n->b, &cond);
        if (rc)
            return rc;
        if (chat_truthy(&cond))
            return chat_render_eval(c, n->a, out);
        if (n->c)
            return chat_render_eval(c, n->c, out);
        *out = chat_undefined(NULL);
        return GARLIC_OK;
    }
    default: return chat_render_error(c, n, GARLIC_EINVAL, "not an expression");
    }
}

// ---- statements ------------------------------------------------------------------------

// Binds targets to v: one name takes v, several unpack a list or tuple of that length.
static int bind_targets(render_ctx *c, const chat_node *n, const chat_value *v)
{
    if (n->n_names == 1)
        return assign(c, n->names[0], *v) ? chat_render_nomem(c, n) : GARLIC_OK;
    if (v->type != CHAT_LIST)
        return chat_render_error(c, n, GARLIC_ETYPE,
                                 "TypeError: cannot unpack non-iterable %s object",
                                 chat_type_name(v));
    if (v->list->n != n->n_names)
        return chat_render_error(
            c, n, GARLIC_EINVAL, "ValueError: %s values to unpack (expected %zu, got %zu)",
            v->list->n > n->n_names ? "too many" : "not enough", n->n_names, v->list->n);
    for (size_t i = 0; i < n->n_names; i++)
        if (assign(c, n->names[i], v->list->items[i]))
            return chat_render_nomem(c, n);
    return GARLIC_OK;
}

// The items a for loop walks: lists, dict keys, characters; undefined is empty.
int chat_render_iterate(render_ctx *c, const chat_node *at, const chat_value *v, chat_list **out)
{
    chat_work(v->type == CHAT_LIST         ? v->list->n
                  : v->type == CHAT_DICT   ? v->dict->n
                  : v->type == CHAT_STRING ? v->s.len
                                           : 0);
    if (v->type == CHAT_LIST) {
        *out = v->list;
        return GARLIC_OK;
    }
    if (v->type == CHAT_UNDEFINED) {
        *out = chat_list_new(&c->arena, 0);
        return *out ? GARLIC_OK : chat_render_nomem(c, at);
    }
    if (v->type == CHAT_DICT) {
        chat_list *l = chat_list_new(&c->arena, v->dict->n);
        if (!l)
            return chat_render_nomem(c, at);
        if (v->dict->n)
            memcpy(l->items, v->dict->keys, v->dict->n * sizeof *l->items);
        l->n = v->dict->n;
        *out = l;
        return GARLIC_OK;
    }
    if (v->type != CHAT_STRING)
        return chat_render_error(c, at, GARLIC_ETYPE, "TypeError: '%s' object is not iterable",
                                 chat_type_name(v));
    chat_list *l = chat_list_new(&c->arena, 0);
    if (!l)
        return chat_render_nomem(c, at);
    for (size_t i = 0; i < v->s.len;) {
        size_t next = i + chat_utf8_offset(v->s.ptr + i, v->s.len - i, 1);
        if (chat_list_push(&c->arena, l, chat_str(v->s.ptr + i, next - i)))
            return chat_render_nomem(c, at);
        i = next;
    }
    *out = l;
    return GARLIC_OK;
}

// Applies a for loop's `if` filter, binding the targets in a scratch scope.
static int filter_items(render_ctx *c, const chat_node *n, chat_list *all, chat_list **out)
{
    chat_list *kept = chat_list_new(&c->arena, all->n);
    if (!kept)
        return chat_render_nomem(c, n);
    size_t saved_vars = c->n_vars, saved_scope = c->scope_start;
    c->scope_start = c->n_vars;
    int rc = GARLIC_OK;
    for (size_t i = 0; i < all->n && rc == GARLIC_OK; i++) {
        chat_value cond;
        c->n_vars = c->scope_start;
        if (!chat_render_tick(c))
            rc = too_long(c, n);
        if (rc == GARLIC_OK)
            rc = bind_targets(c, n, &all->items[i]);
        if (rc == GARLIC_OK)
            rc = chat_render_eval(c, n->b, &cond);
        if (rc == GARLIC_OK && chat_truthy(&cond))
            kept->items[kept->n++] = all->items[i];
    }
    c->n_vars = saved_vars;
    c->scope_start = saved_scope;
    *out = kept;
    return rc;
}

// Runs a for loop: each iteration gets a fresh scope with `loop` and the targets bound,
// break and continue end the iteration, the else body runs when nothing was iterated.
static int exec_for(render_ctx *c, const chat_node *n)
{
    chat_value seq;
    chat_list *items;
    int rc = chat_render_eval(c, n->a, &seq);
    if (rc || (rc = chat_render_iterate(c, n->a, &seq, &items)))
        return rc;
    if (n->b && (rc = filter_items(c, n, items, &items)))
        return rc;
    if (items->n == 0)
        return exec_body(c, &n->alt);
    chat_loop *loop = chat_arena_alloc(&c->arena, sizeof *loop);
    if (!loop)
        return chat_render_nomem(c, n);
    loop->items = items;
    loop->depth = 1;
    size_t saved_vars = c->n_vars, saved_scope = c->scope_start;
    c->scope_start = c->n_vars;
    for (size_t i = 0; i < items->n && rc == GARLIC_OK; i++) {
        c->n_vars = c->scope_start; // each iteration starts a fresh scope
        loop->index0 = i;
        if (!chat_render_tick(c))
            rc = too_long(c, n);
        if (rc == GARLIC_OK && push_var(c, "loop", (chat_value){.type = CHAT_LOOP, .loop = loop}))
            rc = chat_render_nomem(c, n);
        if (rc == GARLIC_OK)
            rc = bind_targets(c, n, &items->items[i]);
        if (rc == GARLIC_OK)
            rc = exec_body(c, &n->body);
        chat_loop_control ctl = c->loop_ctl;
        c->loop_ctl = CHAT_LOOP_RUN;
        if (ctl == CHAT_LOOP_BREAK)
            break;
    }
    c->n_vars = saved_vars;
    c->scope_start = saved_scope;
    return rc;
}

// {% set %}: binds in the innermost scope, or sets a namespace attribute.
static int exec_set(render_ctx *c, const chat_node *n)
{
    chat_value v;
    int rc = n->kind == NODE_SET_BLOCK ? capture(c, n, &n->body, &v)
                                       : chat_render_eval(c, n->b, &v);
    if (rc)
        return rc;
    if (!n->str)
        return bind_targets(c, n, &v);
    chat_value ns;
    if (!lookup(c, n->str, &ns) || ns.type != CHAT_NAMESPACE)
        return chat_render_error(
            c, n, GARLIC_ETYPE,
            "TemplateRuntimeError: cannot assign attribute on non-namespace object '%s'", n->str);
    if (chat_dict_set(&c->arena, ns.dict, chat_str(n->names[0], strlen(n->names[0])), v))
        return chat_render_nomem(c, n);
    return GARLIC_OK;
}

static int exec_output(render_ctx *c, const chat_node *n)
{
    chat_value v;
    int rc = chat_render_eval(c, n->a, &v);
    if (rc)
        return rc;
    if (v.type == CHAT_STRING)
        return emit(c, n, v.s.ptr, v.s.len);
    return chat_value_str(&c->arena, c->out, &v) ? chat_render_nomem(c, n) : GARLIC_OK;
}

static int exec_node(render_ctx *c, const chat_node *n);

// Executes one statement, counting it as a step and a nesting level.
static int exec(render_ctx *c, const chat_node *n)
{
    if (++c->nesting > RENDER_MAX_NESTING)
        return chat_render_error(c, n, GARLIC_EINVAL, "template nests too deeply");
    int rc = exec_node(c, n);
    c->nesting--;
    return rc;
}

static int exec_node(render_ctx *c, const chat_node *n)
{
    if (!chat_render_tick(c))
        return too_long(c, n);
    switch (n->kind) {
    case NODE_TEXT: return emit(c, n, n->str, n->len);
    case NODE_OUTPUT: return exec_output(c, n);
    case NODE_IF: {
        chat_value cond;
        int rc = chat_render_eval(c, n->a, &cond);
        if (rc)
            return rc;
        return exec_body(c, chat_truthy(&cond) ? &n->body : &n->alt);
    }
    case NODE_FOR: return exec_for(c, n);
    case NODE_SET:
    case NODE_SET_BLOCK: return exec_set(c, n);
    case NODE_MACRO: {
        chat_callable *fn = chat_arena_alloc(&c->arena, sizeof *fn);
        if (!fn)
            return chat_render_nomem(c, n);
        fn->name = n->str;
        fn->macro = n;
        if (c->scope_start > 0 && c->n_vars > c->frame_start) { // a closure over loop variables
            size_t count = c->n_vars - c->frame_start;
            render_var *vars = chat_arena_alloc(&c->arena, count * sizeof *vars);
            if (!vars)
                return chat_render_nomem(c, n);
            memcpy(vars, c->vars + c->frame_start, count * sizeof *vars);
            fn->captured = vars;
            fn->n_captured = count;
        }
        chat_value macro = {.type = CHAT_CALLABLE, .fn = fn};
        return assign(c, n->str, macro) ? chat_render_nomem(c, n) : GARLIC_OK;
    }
    case NODE_BREAK: c->loop_ctl = CHAT_LOOP_BREAK; return GARLIC_OK;
    case NODE_CONTINUE: c->loop_ctl = CHAT_LOOP_CONTINUE; return GARLIC_OK;
    case NODE_BLOCK: return exec_body(c, &n->body);
    case NODE_FILTER_BLOCK: {
        chat_value body, saved = c->filter_input, v;
        int rc = capture(c, n, &n->body, &body);
        if (rc)
            return rc;
        c->filter_input = body;
        rc = chat_render_eval(c, n->a, &v);
        c->filter_input = saved;
        if (rc)
            return rc;
        return chat_value_str(&c->arena, c->out, &v) ? chat_render_nomem(c, n) : GARLIC_OK;
    }
    default: return chat_render_error(c, n, GARLIC_EINVAL, "not a statement");
    }
}

static int exec_body(render_ctx *c, const chat_node_list *body)
{
    for (size_t i = 0; i < body->n; i++) {
        int rc = exec(c, body->items[i]);
        if (rc)
            return rc;
        if (c->loop_ctl != CHAT_LOOP_RUN)
            return GARLIC_OK;
    }
    return GARLIC_OK;
}

// Renders the whole template into a fresh garlic_malloc'd string.
int chat_render_template(render_ctx *c, char **out, size_t *out_len)
{
    chat_buf buf = {.max = c->max_output};
    c->out = &buf;
    int rc = exec_body(c, &c->tpl->body);
    c->out = NULL;
    if (rc)
        return rc;
    *out = garlic_malloc(buf.len + 1);
    if (!*out)
        return garlic_error_set(c->err, GARLIC_ENOMEM, "%s: out of memory", c->tpl->name);
    if (buf.len)
        memcpy(*out, buf.data, buf.len);
    (*out)[buf.len] = '\0';
    *out_len = buf.len;
    return GARLIC_OK;
}
