// SPDX-License-Identifier: MIT
// The template parser: tokens to an AST, by recursive descent with Jinja2's grammar and
// operator precedence (conditional, or, and, not, comparisons, + -, ~, * / // %, **, unary,
// then postfix attribute/subscript/call and | filters / is tests). Statements: if/elif/else,
// for (with a filter, else, loop controls), set (plain, namespace attribute, block), macro,
// filter blocks and transformers' generation blocks. Anything else is an error at load that
// names the construct and its line:column, and nesting is capped so no input overflows the stack.
#include <stdio.h>
#include <string.h>

#include "chat/internal.h"

enum { PARSE_MAX_DEPTH = 200 };

typedef struct parser {
    chat_template *t;
    const chat_token *toks;
    size_t n, pos;
    garlic_error *err;
    int depth;      // expression and statement nesting
    int loop_depth; // for loops around the current statement (reset inside macros)
} parser;

static const chat_token *cur(const parser *p) { return &p->toks[p->pos]; }
static const chat_token *peek(const parser *p, size_t k)
{
    return &p->toks[p->pos + k < p->n ? p->pos + k : p->n - 1];
}
static void advance(parser *p)
{
    if (p->pos + 1 < p->n)
        p->pos++;
}

static bool tok_is(const chat_token *t, chat_token_kind kind, const char *text)
{
    return t->kind == kind && strlen(text) == t->len && memcmp(t->str, text, t->len) == 0;
}
static bool is_op(const parser *p, const char *op) { return tok_is(cur(p), TOK_OP, op); }
static bool is_name(const parser *p, const char *name) { return tok_is(cur(p), TOK_NAME, name); }

static const char *describe(const chat_token *t, char *buf, size_t cap)
{
    static const char *const kinds[TOK_COUNT] = {
        [TOK_EOF] = "end of template", [TOK_TEXT] = "text",        [TOK_VAR_BEGIN] = "'{{'",
        [TOK_VAR_END] = "'}}'",        [TOK_BLOCK_BEGIN] = "'{%'", [TOK_BLOCK_END] = "'%}'",
        [TOK_STRING] = "a string",     [TOK_INT] = "an integer",   [TOK_FLOAT] = "a float"};
    if (t->kind == TOK_NAME || t->kind == TOK_OP) {
        snprintf(buf, cap, "'%.*s'", (int)(t->len > 40 ? 40 : t->len), t->str);
        return buf;
    }
    return kinds[t->kind];
}

static int fail_at(parser *p, const chat_token *t, const char *what)
{
    if (p->t->arena.failed)
        return garlic_error_set(p->err, GARLIC_ENOMEM, "%s: out of memory", p->t->name);
    char buf[64];
    return garlic_error_set(p->err, GARLIC_EFORMAT, "%s:%u:%u: %s (found %s)", p->t->name, t->line,
                            t->col, what, describe(t, buf, sizeof buf));
}

static int unsupported(parser *p, const chat_token *t, const char *what)
{
    return garlic_error_set(p->err, GARLIC_EUNSUPPORTED, "%s:%u:%u: unsupported: %s", p->t->name,
                            t->line, t->col, what);
}

static chat_node *new_node(parser *p, chat_node_kind kind, const chat_token *at)
{
    chat_node *n = chat_arena_alloc(&p->t->arena, sizeof *n);
    if (n) {
        n->kind = kind;
        n->line = at->line;
        n->col = at->col;
    }
    return n;
}

static const char *copy_name(parser *p, const chat_token *t)
{
    char *s = chat_arena_alloc(&p->t->arena, t->len + 1);
    if (s)
        memcpy(s, t->str, t->len);
    return s;
}

// A growable list of nodes (or names) that becomes a chat_node_list when done.
typedef struct grow {
    void **items;
    size_t n, cap;
} grow;

// Appends item, growing the array in the template arena.
static int grow_push(parser *p, grow *g, void *item)
{
    if (g->n == g->cap &&
        chat_arena_grow(&p->t->arena, &g->items, &g->cap, g->n, g->n + 1, sizeof *g->items) !=
            GARLIC_OK)
        return GARLIC_ENOMEM;
    g->items[g->n++] = item;
    return GARLIC_OK;
}

static chat_node_list as_list(grow g) { return (chat_node_list){(chat_node **)g.items, g.n}; }

static int expect_op(parser *p, const char *op)
{
    if (!is_op(p, op)) {
        char what[48];
        snprintf(what, sizeof what, "expected '%s'", op);
        return fail_at(p, cur(p), what);
    }
    advance(p);
    return GARLIC_OK;
}

static int expect_kind(parser *p, chat_token_kind kind, const char *what)
{
    if (cur(p)->kind != kind)
        return fail_at(p, cur(p), what);
    advance(p);
    return GARLIC_OK;
}

static int parse_expr(parser *p, chat_node **out);
// or_expr: and_expr ('or' and_expr)*
static int parse_or(parser *p, chat_node **out);
// Unary minus/plus, then postfix operations, then (with_filter) filters, tests and calls.
static int parse_unary(parser *p, bool with_filter, chat_node **out);

// Parses "(a, b=c, ...)" after the callee into n->args / n->kwargs / n->names.
static int parse_call_args(parser *p, chat_node *n)
{
    grow args = {0}, kwargs = {0}, names = {0};
    advance(p); // '('
    while (!is_op(p, ")")) {
        if (args.n + kwargs.n && expect_op(p, ","))
            return p->err->code;
        if (is_op(p, ")"))
            break;
        if (is_op(p, "*") || is_op(p, "**"))
            return unsupported(p, cur(p), "*args and **kwargs in calls");
        chat_node *value;
        if (cur(p)->kind == TOK_NAME && tok_is(peek(p, 1), TOK_OP, "=")) {
            const char *name = copy_name(p, cur(p));
            advance(p);
            advance(p);
            if (parse_expr(p, &value))
                return p->err->code;
            if (!name || grow_push(p, &names, (void *)name) || grow_push(p, &kwargs, value))
                return fail_at(p, cur(p), "out of memory");
            continue;
        }
        if (kwargs.n)
            return fail_at(p, cur(p), "positional argument after keyword argument");
        if (parse_expr(p, &value))
            return p->err->code;
        if (grow_push(p, &args, value))
            return fail_at(p, cur(p), "out of memory");
    }
    advance(p); // ')'
    n->args = as_list(args);
    n->kwargs = as_list(kwargs);
    n->names = (const char **)names.items;
    n->n_names = names.n;
    return GARLIC_OK;
}

// Parses "a:b:c" inside brackets (any part may be missing) or a plain index.
static int parse_subscript(parser *p, chat_node *obj, const chat_token *at, chat_node **out)
{
    chat_node *parts[3] = {NULL, NULL, NULL};
    advance(p); // '['
    if (!is_op(p, ":") && parse_expr(p, &parts[0]))
        return p->err->code;
    if (is_op(p, "]")) {
        chat_node *n = new_node(p, NODE_ITEM, at);
        if (!n)
            return fail_at(p, at, "out of memory");
        n->a = obj;
        n->b = parts[0];
        advance(p);
        *out = n;
        return GARLIC_OK;
    }
    for (int k = 1; k < 3 && is_op(p, ":"); k++) {
        advance(p);
        if (!is_op(p, ":") && !is_op(p, "]") && parse_expr(p, &parts[k]))
            return p->err->code;
    }
    if (expect_op(p, "]"))
        return p->err->code;
    chat_node *n = new_node(p, NODE_SLICE, at);
    chat_node **items = chat_arena_alloc(&p->t->arena, sizeof parts);
    if (!n || !items)
        return fail_at(p, at, "out of memory");
    memcpy(items, parts, sizeof parts);
    n->a = obj;
    n->args = (chat_node_list){items, 3};
    *out = n;
    return GARLIC_OK;
}

// ".name" (an attribute) or ".0" (an item) after obj; the '.' is current.
static int parse_dot(parser *p, chat_node *obj, const chat_token *at, chat_node **out)
{
    advance(p);
    const chat_token *name = cur(p);
    chat_node *n;
    if (name->kind == TOK_INT) {
        n = new_node(p, NODE_ITEM, at);
        chat_node *idx = new_node(p, NODE_LITERAL, name);
        if (!n || !idx)
            return fail_at(p, at, "out of memory");
        idx->lit = chat_int(name->i);
        n->b = idx;
    } else {
        if (name->kind != TOK_NAME)
            return fail_at(p, name, "expected an attribute name after '.'");
        n = new_node(p, NODE_ATTR, at);
        if (!n || !(n->str = copy_name(p, name)))
            return fail_at(p, at, "out of memory");
    }
    advance(p);
    n->a = obj;
    *out = n;
    return GARLIC_OK;
}

// Attribute access, subscripts and calls after a primary expression.
static int parse_postfix(parser *p, chat_node **node)
{
    for (;;) {
        const chat_token *at = cur(p);
        chat_node *n = NULL;
        if (is_op(p, ".")) {
            if (parse_dot(p, *node, at, &n))
                return p->err->code;
        } else if (is_op(p, "[")) {
            if (parse_subscript(p, *node, at, &n))
                return p->err->code;
        } else if (is_op(p, "(")) {
            n = new_node(p, NODE_CALL, at);
            if (!n)
                return fail_at(p, at, "out of memory");
            n->a = *node;
            if (parse_call_args(p, n))
                return p->err->code;
        } else {
            return GARLIC_OK;
        }
        *node = n;
    }
}

// A filter ("| name(args)") or a test ("is [not] name [arg]") applied to *node.
static int parse_filter_or_test(parser *p, chat_node **node, bool is_test)
{
    const chat_token *at = cur(p);
    advance(p); // '|' or 'is'
    chat_node *n = new_node(p, is_test ? NODE_TEST : NODE_FILTER, at);
    if (!n)
        return fail_at(p, at, "out of memory");
    if (is_test && is_name(p, "not")) {
        n->negated = true;
        advance(p);
    }
    if (cur(p)->kind != TOK_NAME)
        return fail_at(p, cur(p),
                       is_test ? "expected a test name after 'is'"
                               : "expected a filter name after '|'");
    n->str = copy_name(p, cur(p));
    if (!n->str)
        return fail_at(p, cur(p), "out of memory");
    if (!(is_test ? chat_test_known(n->str) : chat_filter_known(n->str))) {
        char what[96];
        snprintf(what, sizeof what, "%s '%s'", is_test ? "the test" : "the filter", n->str);
        return unsupported(p, cur(p), what);
    }
    advance(p);
    n->a = *node;
    *node = n;
    if (is_op(p, "("))
        return parse_call_args(p, n);
    const chat_token *t = cur(p);
    bool arg = is_test &&
        (t->kind == TOK_NAME || t->kind == TOK_STRING || t->kind == TOK_INT ||
         t->kind == TOK_FLOAT || is_op(p, "[") || is_op(p, "{"));
    if (!arg || is_name(p, "else") || is_name(p, "or") || is_name(p, "and"))
        return GARLIC_OK;
    // one argument without parentheses: "is divisibleby 3", "is sameas none"
    chat_node *value;
    if (parse_unary(p, false, &value))
        return p->err->code;
    chat_node **items = chat_arena_alloc(&p->t->arena, sizeof *items);
    if (!items)
        return fail_at(p, t, "out of memory");
    items[0] = value;
    n->args = (chat_node_list){items, 1};
    return GARLIC_OK;
}

// A list "[a, b]", tuple "(a, b)" or dict "{k: v}" literal; the opening bracket is current.
static int parse_collection(parser *p, chat_node **out)
{
    const chat_token *at = cur(p);
    char open = at->str[0];
    const char *close = open == '[' ? "]" : open == '(' ? ")" : "}";
    chat_node *n = new_node(p, open == '[' ? NODE_LIST : open == '(' ? NODE_TUPLE : NODE_DICT, at);
    if (!n)
        return fail_at(p, at, "out of memory");
    grow items = {0}, values = {0};
    bool comma = false;
    advance(p);
    while (!is_op(p, close)) {
        if (items.n && expect_op(p, ","))
            return p->err->code;
        if (items.n)
            comma = true;
        if (is_op(p, close))
            break;
        chat_node *item, *value;
        if (parse_expr(p, &item) || grow_push(p, &items, item))
            return p->err->code ? p->err->code : fail_at(p, at, "out of memory");
        if (open != '{')
            continue;
        if (expect_op(p, ":") || parse_expr(p, &value))
            return p->err->code;
        if (grow_push(p, &values, value))
            return fail_at(p, at, "out of memory");
    }
    advance(p);
    if (open == '(' && items.n == 1 && !comma) {
        *out = items.items[0]; // parentheses around one expression
        return GARLIC_OK;
    }
    n->args = as_list(items);
    n->kwargs = as_list(values);
    *out = n;
    return GARLIC_OK;
}

// A literal, a name, or a parenthesized / bracketed collection.
static int parse_primary(parser *p, chat_node **out)
{
    const chat_token *t = cur(p);
    chat_node *n = NULL;
    if (t->kind == TOK_OP && (t->str[0] == '[' || t->str[0] == '(' || t->str[0] == '{') &&
        t->len == 1)
        return parse_collection(p, out);
    if (t->kind == TOK_NAME) {
        static const char *const words[] = {"true", "True", "false", "False", "none", "None"};
        int w = -1;
        for (int i = 0; i < 6; i++)
            if (tok_is(t, TOK_NAME, words[i]))
                w = i;
        n = new_node(p, w >= 0 ? NODE_LITERAL : NODE_NAME, t);
        if (!n)
            return fail_at(p, t, "out of memory");
        if (w >= 0)
            n->lit = w < 4 ? chat_bool(w < 2) : chat_none();
        else if (!(n->str = copy_name(p, t)))
            return fail_at(p, t, "out of memory");
        advance(p);
    } else if (t->kind == TOK_INT || t->kind == TOK_FLOAT) {
        if (!(n = new_node(p, NODE_LITERAL, t)))
            return fail_at(p, t, "out of memory");
        n->lit = t->kind == TOK_INT ? chat_int(t->i) : chat_float(t->f);
        advance(p);
    } else if (t->kind == TOK_STRING) {
        chat_buf b = {0};
        while (cur(p)->kind == TOK_STRING) { // adjacent literals concatenate
            if (chat_buf_append(&p->t->arena, &b, cur(p)->str, cur(p)->len))
                return fail_at(p, t, "out of memory");
            advance(p);
        }
        if (!(n = new_node(p, NODE_LITERAL, t)))
            return fail_at(p, t, "out of memory");
        n->lit = chat_str(b.data ? b.data : "", b.len);
    } else {
        return fail_at(p, t, "expected an expression");
    }
    *out = n;
    return GARLIC_OK;
}

// Unary minus/plus, then postfix operations, then (with_filter) filters, tests and calls.
static int parse_unary(parser *p, bool with_filter, chat_node **out)
{
    const chat_token *at = cur(p);
    if (++p->depth > PARSE_MAX_DEPTH)
        return fail_at(p, at, "expression nested too deeply");
    int rc;
    if (is_op(p, "-") || is_op(p, "+")) {
        chat_node *n = new_node(p, NODE_UNARY, at);
        if (!n)
            return fail_at(p, at, "out of memory");
        n->op = is_op(p, "-") ? OP_NEG : OP_POS;
        advance(p);
        rc = parse_unary(p, false, &n->a);
        *out = n;
    } else {
        rc = parse_primary(p, out);
    }
    if (rc == GARLIC_OK)
        rc = parse_postfix(p, out);
    while (rc == GARLIC_OK && with_filter) {
        if (is_op(p, "|") || is_name(p, "is"))
            rc = parse_filter_or_test(p, out, is_name(p, "is"));
        else if (is_op(p, "("))
            rc = parse_postfix(p, out);
        else
            break;
    }
    p->depth--;
    return rc;
}

static chat_node *binary(parser *p, chat_op op, chat_node *a, chat_node *b, const chat_token *at)
{
    chat_node *n = new_node(p, NODE_BINARY, at);
    if (n) {
        n->op = op;
        n->a = a;
        n->b = b;
    }
    return n;
}

// One precedence level of left-associative binary operators: ops[i] maps to codes[i].
typedef int (*parse_fn)(parser *p, chat_node **out);

// Parses next, then any run of ops[i] next, building left-associative binary nodes.
static int parse_level(parser *p, chat_node **out, parse_fn next, const char *const *ops,
                       const chat_op *codes, size_t n_ops)
{
    if (next(p, out))
        return p->err->code;
    for (;;) {
        size_t i = 0;
        while (i < n_ops && !is_op(p, ops[i]))
            i++;
        if (i == n_ops)
            return GARLIC_OK;
        const chat_token *at = cur(p);
        advance(p);
        chat_node *right;
        if (next(p, &right))
            return p->err->code;
        if (!(*out = binary(p, codes[i], *out, right, at)))
            return fail_at(p, at, "out of memory");
    }
}

static int parse_unary_filtered(parser *p, chat_node **out) { return parse_unary(p, true, out); }

static int parse_pow(parser *p, chat_node **out)
{
    static const char *const ops[] = {"**"};
    static const chat_op codes[] = {OP_POW};
    return parse_level(p, out, parse_unary_filtered, ops, codes, 1);
}

static int parse_math2(parser *p, chat_node **out)
{
    static const char *const ops[] = {"*", "/", "//", "%"};
    static const chat_op codes[] = {OP_MUL, OP_DIV, OP_FLOORDIV, OP_MOD};
    return parse_level(p, out, parse_pow, ops, codes, 4);
}

static int parse_concat(parser *p, chat_node **out)
{
    static const char *const ops[] = {"~"};
    static const chat_op codes[] = {OP_CONCAT};
    return parse_level(p, out, parse_math2, ops, codes, 1);
}

static int parse_math1(parser *p, chat_node **out)
{
    static const char *const ops[] = {"+", "-"};
    static const chat_op codes[] = {OP_ADD, OP_SUB};
    return parse_level(p, out, parse_concat, ops, codes, 2);
}

// Comparisons chain as in Python: a < b < c is (a < b) and (b < c).
static int parse_compare(parser *p, chat_node **out)
{
    static const char *const ops[] = {"==", "!=", "<", "<=", ">", ">="};
    static const chat_op codes[] = {OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE};
    if (parse_math1(p, out))
        return p->err->code;
    chat_node *left = *out, *chain = NULL;
    for (;;) {
        const chat_token *at = cur(p);
        chat_op op = OP_NONE;
        for (size_t i = 0; i < 6; i++)
            if (is_op(p, ops[i]))
                op = codes[i];
        if (is_name(p, "in"))
            op = OP_IN;
        else if (is_name(p, "not") && tok_is(peek(p, 1), TOK_NAME, "in"))
            op = OP_NOT_IN;
        if (op == OP_NONE)
            break;
        advance(p);
        if (op == OP_NOT_IN)
            advance(p);
        chat_node *right, *cmp;
        if (parse_math1(p, &right))
            return p->err->code;
        if (!(cmp = binary(p, op, left, right, at)))
            return fail_at(p, at, "out of memory");
        chain = chain ? binary(p, OP_AND, chain, cmp, at) : cmp;
        if (!chain)
            return fail_at(p, at, "out of memory");
        left = right;
    }
    if (chain)
        *out = chain;
    return GARLIC_OK;
}

// 'not' binds looser than comparisons ("not a in b" is not (a in b)).
static int parse_not(parser *p, chat_node **out)
{
    if (!is_name(p, "not") || tok_is(peek(p, 1), TOK_NAME, "in"))
        return parse_compare(p, out);
    const chat_token *at = cur(p);
    if (++p->depth > PARSE_MAX_DEPTH)
        return fail_at(p, at, "expression nested too deeply");
    advance(p);
    chat_node *n = new_node(p, NODE_UNARY, at);
    if (!n)
        return fail_at(p, at, "out of memory");
    n->op = OP_NOT;
    int rc = parse_not(p, &n->a);
    p->depth--;
    *out = n;
    return rc;
}

// and_expr: not_expr ('and' not_expr)*
static int parse_and(parser *p, chat_node **out)
{
    if (parse_not(p, out))
        return p->err->code;
    while (is_name(p, "and")) {
        const chat_token *at = cur(p);
        advance(p);
        chat_node *right;
        if (parse_not(p, &right))
            return p->err->code;
        if (!(*out = binary(p, OP_AND, *out, right, at)))
            return fail_at(p, at, "out of memory");
    }
    return GARLIC_OK;
}

// or_expr: and_expr ('or' and_expr)*
static int parse_or(parser *p, chat_node **out)
{
    if (parse_and(p, out))
        return p->err->code;
    while (is_name(p, "or")) {
        const chat_token *at = cur(p);
        advance(p);
        chat_node *right;
        if (parse_and(p, &right))
            return p->err->code;
        if (!(*out = binary(p, OP_OR, *out, right, at)))
            return fail_at(p, at, "out of memory");
    }
    return GARLIC_OK;
}

// expr: or_expr ("if" or_expr ("else" expr)?)*
static int parse_expr(parser *p, chat_node **out)
{
    if (++p->depth > PARSE_MAX_DEPTH)
        return fail_at(p, cur(p), "expression nested too deeply");
    int rc = parse_or(p, out);
    while (rc == GARLIC_OK && is_name(p, "if")) {
        chat_node *n = new_node(p, NODE_COND, cur(p));
        if (!n)
            return fail_at(p, cur(p), "out of memory");
        advance(p);
        n->a = *out;
        rc = parse_or(p, &n->b);
        if (rc == GARLIC_OK && is_name(p, "else")) {
            advance(p);
            rc = parse_expr(p, &n->c);
        }
        *out = n;
    }
    p->depth--;
    return rc;
}

// A possibly bare tuple ("a, b") ending at a tag end; with_cond off for if/for headers.
static int parse_tuple(parser *p, bool with_cond, chat_node **out)
{
    const chat_token *at = cur(p);
    grow items = {0};
    bool is_tuple = false;
    for (;;) {
        if (items.n && expect_op(p, ","))
            return p->err->code;
        if (items.n &&
            (cur(p)->kind == TOK_BLOCK_END || cur(p)->kind == TOK_VAR_END || is_op(p, ")")))
            break;
        chat_node *item;
        if ((with_cond ? parse_expr(p, &item) : parse_or(p, &item)) || grow_push(p, &items, item))
            return p->err->code ? p->err->code : fail_at(p, at, "out of memory");
        if (!is_op(p, ","))
            break;
        is_tuple = true;
    }
    if (!is_tuple) {
        *out = items.items[0];
        return GARLIC_OK;
    }
    chat_node *n = new_node(p, NODE_TUPLE, at);
    if (!n)
        return fail_at(p, at, "out of memory");
    n->args = as_list(items);
    *out = n;
    return GARLIC_OK;
}

static int parse_body(parser *p, const char *const *ends, chat_node_list *out, const char **which,
                      const chat_token *opener);

static int expect_block_end(parser *p) { return expect_kind(p, TOK_BLOCK_END, "expected '%}'"); }

// {% if %} ... {% elif %} ... {% else %} ... {% endif %}
static int parse_if(parser *p, const chat_token *at, chat_node **out)
{
    static const char *const ends[] = {"elif", "else", "endif", NULL};
    static const char *const end_only[] = {"endif", NULL};
    chat_node *n = new_node(p, NODE_IF, at);
    const char *which;
    if (!n)
        return fail_at(p, at, "out of memory");
    *out = n;
    if (parse_tuple(p, false, &n->a) || expect_block_end(p) ||
        parse_body(p, ends, &n->body, &which, at))
        return p->err->code;
    if (strcmp(which, "elif") == 0) {
        chat_node **items = chat_arena_alloc(&p->t->arena, sizeof *items);
        if (!items)
            return fail_at(p, at, "out of memory");
        n->alt = (chat_node_list){items, 1};
        if (++p->depth > PARSE_MAX_DEPTH) // each elif nests one level deeper
            return fail_at(p, cur(p), "too many elif branches");
        int rc = parse_if(p, &p->toks[p->pos - 1], &items[0]); // the elif closes this chain too
        p->depth--;
        return rc;
    }
    if (strcmp(which, "else") == 0 &&
        (expect_block_end(p) || parse_body(p, end_only, &n->alt, &which, at)))
        return p->err->code;
    return expect_block_end(p);
}

// Assignment targets: a name, "ns.attr" (when allow_attr), or names separated by commas.
static int parse_targets(parser *p, chat_node *n, bool allow_attr)
{
    grow names = {0};
    bool paren = is_op(p, "(");
    if (paren)
        advance(p);
    for (;;) {
        if (cur(p)->kind != TOK_NAME)
            return fail_at(p, cur(p), "expected a variable name");
        const char *name = copy_name(p, cur(p));
        if (!name || grow_push(p, &names, (void *)name))
            return fail_at(p, cur(p), "out of memory");
        advance(p);
        if (allow_attr && names.n == 1 && is_op(p, ".")) {
            advance(p);
            if (cur(p)->kind != TOK_NAME)
                return fail_at(p, cur(p), "expected an attribute name");
            n->str = name;
            names.items[0] = (void *)copy_name(p, cur(p));
            advance(p);
            break;
        }
        if (!is_op(p, ","))
            break;
        advance(p);
    }
    if (paren && expect_op(p, ")"))
        return p->err->code;
    n->names = (const char **)names.items;
    n->n_names = names.n;
    return GARLIC_OK;
}

// {% for targets in iterable [if filter] %} ... [{% else %} ...] {% endfor %}
static int parse_for(parser *p, const chat_token *at, chat_node **out)
{
    static const char *const ends[] = {"else", "endfor", NULL};
    static const char *const end_only[] = {"endfor", NULL};
    chat_node *n = new_node(p, NODE_FOR, at);
    const char *which;
    if (!n)
        return fail_at(p, at, "out of memory");
    *out = n;
    if (parse_targets(p, n, false))
        return p->err->code;
    if (!is_name(p, "in"))
        return fail_at(p, cur(p), "expected 'in' in for loop");
    advance(p);
    if (parse_tuple(p, false, &n->a))
        return p->err->code;
    if (is_name(p, "if")) {
        advance(p);
        if (parse_expr(p, &n->b))
            return p->err->code;
    }
    if (is_name(p, "recursive"))
        return unsupported(p, cur(p), "recursive for loops");
    if (expect_block_end(p))
        return p->err->code;
    p->loop_depth++;
    int rc = parse_body(p, ends, &n->body, &which, at);
    p->loop_depth--;
    if (rc)
        return rc;
    if (strcmp(which, "else") == 0 &&
        (expect_block_end(p) || parse_body(p, end_only, &n->alt, &which, at)))
        return p->err->code;
    return expect_block_end(p);
}

// {% set targets = value %}, {% set ns.attr = value %} or {% set name %}...{% endset %}
static int parse_set(parser *p, const chat_token *at, chat_node **out)
{
    static const char *const ends[] = {"endset", NULL};
    chat_node *n = new_node(p, NODE_SET, at);
    const char *which;
    if (!n)
        return fail_at(p, at, "out of memory");
    *out = n;
    if (parse_targets(p, n, true))
        return p->err->code;
    if (is_op(p, "=")) {
        advance(p);
        if (parse_tuple(p, true, &n->b))
            return p->err->code;
        return expect_block_end(p);
    }
    if (n->n_names != 1 || n->str)
        return fail_at(p, cur(p), "expected '=' in set");
    if (is_op(p, "|"))
        return unsupported(p, cur(p), "filters on block set");
    n->kind = NODE_SET_BLOCK;
    if (expect_block_end(p) || parse_body(p, ends, &n->body, &which, at))
        return p->err->code;
    return expect_block_end(p);
}

// {% macro name(params with defaults) %} ... {% endmacro %}
static int parse_macro(parser *p, const chat_token *at, chat_node **out)
{
    static const char *const ends[] = {"endmacro", NULL};
    chat_node *n = new_node(p, NODE_MACRO, at);
    grow params = {0}, defaults = {0};
    const char *which;
    if (!n)
        return fail_at(p, at, "out of memory");
    *out = n;
    if (cur(p)->kind != TOK_NAME)
        return fail_at(p, cur(p), "expected a macro name");
    n->str = copy_name(p, cur(p));
    advance(p);
    if (expect_op(p, "("))
        return p->err->code;
    while (!is_op(p, ")")) {
        if (params.n && expect_op(p, ","))
            return p->err->code;
        if (cur(p)->kind != TOK_NAME)
            return fail_at(p, cur(p), "expected a parameter name");
        chat_node *def = NULL;
        const char *name = copy_name(p, cur(p));
        advance(p);
        if (is_op(p, "=")) {
            advance(p);
            if (parse_expr(p, &def))
                return p->err->code;
        }
        if (!name || grow_push(p, &params, (void *)name) || grow_push(p, &defaults, def))
            return fail_at(p, at, "out of memory");
    }
    advance(p);
    if (expect_block_end(p))
        return p->err->code;
    int saved_loops = p->loop_depth;
    p->loop_depth = 0;
    int rc = parse_body(p, ends, &n->body, &which, at);
    p->loop_depth = saved_loops;
    n->names = (const char **)params.items;
    n->n_names = params.n;
    n->args = as_list(defaults);
    return rc ? rc : expect_block_end(p);
}

// {% filter name(args) | more %} ... {% endfilter %}
static int parse_filter_block(parser *p, const chat_token *at, chat_node **out)
{
    static const char *const ends[] = {"endfilter", NULL};
    chat_node *n = new_node(p, NODE_FILTER_BLOCK, at);
    const char *which;
    if (!n)
        return fail_at(p, at, "out of memory");
    *out = n;
    p->pos--; // let parse_filter_or_test consume the name as if after '|'
    if (parse_filter_or_test(p, &n->a, false))
        return p->err->code;
    while (is_op(p, "|"))
        if (parse_filter_or_test(p, &n->a, false))
            return p->err->code;
    if (expect_block_end(p) || parse_body(p, ends, &n->body, &which, at))
        return p->err->code;
    return expect_block_end(p);
}

// {% break %}, {% continue %} (inside loops only) and {% generation %}...{% endgeneration %}.
static int parse_simple(parser *p, const chat_token *at, chat_node_kind kind, chat_node **out)
{
    if (kind != NODE_BLOCK && p->loop_depth == 0)
        return fail_at(p, at,
                       kind == NODE_BREAK ? "'break' outside a for loop"
                                          : "'continue' outside a for loop");
    if (!(*out = new_node(p, kind, at)))
        return fail_at(p, at, "out of memory");
    if (expect_block_end(p))
        return p->err->code;
    if (kind != NODE_BLOCK)
        return GARLIC_OK;
    static const char *const ends[] = {"endgeneration", NULL};
    const char *which;
    if (parse_body(p, ends, &(*out)->body, &which, at))
        return p->err->code;
    return expect_block_end(p);
}

// One {% tag %} whose name is current.
static int parse_statement(parser *p, chat_node **out)
{
    static const char *const unsupported_tags[] = {"include", "import", "from", "extends",
                                                   "block",   "call",   "with", "autoescape",
                                                   "trans",   NULL};
    const chat_token *at = cur(p);
    if (at->kind != TOK_NAME)
        return fail_at(p, at, "expected a tag name after '{%'");
    advance(p);
    if (tok_is(at, TOK_NAME, "if"))
        return parse_if(p, at, out);
    if (tok_is(at, TOK_NAME, "for"))
        return parse_for(p, at, out);
    if (tok_is(at, TOK_NAME, "set"))
        return parse_set(p, at, out);
    if (tok_is(at, TOK_NAME, "macro"))
        return parse_macro(p, at, out);
    if (tok_is(at, TOK_NAME, "filter"))
        return parse_filter_block(p, at, out);
    if (tok_is(at, TOK_NAME, "break"))
        return parse_simple(p, at, NODE_BREAK, out);
    if (tok_is(at, TOK_NAME, "continue"))
        return parse_simple(p, at, NODE_CONTINUE, out);
    if (tok_is(at, TOK_NAME, "generation"))
        return parse_simple(p, at, NODE_BLOCK, out);
    for (size_t i = 0; unsupported_tags[i]; i++)
        if (tok_is(at, TOK_NAME, unsupported_tags[i])) {
            char what[64];
            snprintf(what, sizeof what, "the '%s' tag", unsupported_tags[i]);
            return unsupported(p, at, what);
        }
    char what[96];
    snprintf(what, sizeof what, "unknown tag '%.*s'", (int)(at->len > 40 ? 40 : at->len), at->str);
    return garlic_error_set(p->err, GARLIC_EFORMAT, "%s:%u:%u: %s", p->t->name, at->line, at->col,
                            what);
}

// The entry of ends (NULL-terminated, or NULL) that the tag name tok spells, else NULL.
static const char *end_tag(const chat_token *tok, const char *const *ends)
{
    for (size_t i = 0; ends && ends[i]; i++)
        if (tok_is(tok, TOK_NAME, ends[i]))
            return ends[i];
    return NULL;
}

// Parses statements into out until a {% NAME %} with NAME in ends (NULL-terminated; NULL
// ends: the end of the template). *which is the end tag found, whose name is consumed.
static int parse_body(parser *p, const char *const *ends, chat_node_list *out, const char **which,
                      const chat_token *opener)
{
    grow items = {0};
    if (++p->depth > PARSE_MAX_DEPTH)
        return fail_at(p, cur(p), "statements nested too deeply");
    for (;;) {
        const chat_token *t = cur(p);
        chat_node *n = NULL;
        if (t->kind == TOK_EOF) {
            if (!ends)
                break;
            size_t last = 0;
            while (ends[last + 1])
                last++;
            char what[96];
            snprintf(what, sizeof what, "missing '{%% %s %%}' for the tag at %u:%u", ends[last],
                     opener->line, opener->col);
            return fail_at(p, t, what);
        }
        if (t->kind == TOK_TEXT) {
            if (!(n = new_node(p, NODE_TEXT, t)))
                return fail_at(p, t, "out of memory");
            n->str = t->str;
            n->len = t->len;
            advance(p);
        } else if (t->kind == TOK_VAR_BEGIN) {
            advance(p);
            if (!(n = new_node(p, NODE_OUTPUT, t)))
                return fail_at(p, t, "out of memory");
            if (parse_tuple(p, true, &n->a) || expect_kind(p, TOK_VAR_END, "expected '}}'"))
                return p->err->code;
        } else if (t->kind == TOK_BLOCK_BEGIN) {
            const chat_token *name = peek(p, 1);
            if ((*which = end_tag(name, ends))) {
                advance(p);
                advance(p);
                break;
            }
            advance(p);
            if (name->kind == TOK_NAME && name->len > 3 && memcmp(name->str, "end", 3) == 0)
                return fail_at(p, name, "unexpected end tag");
            if (tok_is(name, TOK_NAME, "else") || tok_is(name, TOK_NAME, "elif"))
                return fail_at(p, name, "unexpected tag");
            if (parse_statement(p, &n))
                return p->err->code;
        } else {
            return fail_at(p, t, "unexpected token");
        }
        if (grow_push(p, &items, n))
            return fail_at(p, t, "out of memory");
    }
    out->items = (chat_node **)items.items;
    out->n = items.n;
    p->depth--;
    return GARLIC_OK;
}

int chat_parse_tokens(chat_template *t, const chat_token_list *toks, garlic_error *err)
{
    parser p = {.t = t, .toks = toks->items, .n = toks->n, .err = err};
    const char *which = NULL;
    return parse_body(&p, NULL, &t->body, &which, &toks->items[0]);
}
