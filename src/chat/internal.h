// SPDX-License-Identifier: MIT
// Internals of the chat-template interpreter, shared by its files and by no one else:
// the arena every template and every render allocates from, the value model (Python's
// None/bool/int/float/str/list/tuple/dict plus Jinja's undefined, namespaces, loops and
// callables), the tokens of the lexer and the AST the parser builds and render.c walks.
#ifndef GARLIC_CHAT_INTERNAL_H
#define GARLIC_CHAT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "chat/chat.h"

// ---- arena -------------------------------------------------------------------------------

// Bump allocator over a list of garlic_malloc'd chunks, freed in one call. Every byte it
// hands out counts against limit; past it (or when malloc fails) allocation returns NULL
// and sets failed, which is how a template is stopped from exhausting memory.
typedef struct chat_arena {
    struct arena_chunk *head;
    size_t used;  // bytes handed out plus chunk overhead
    size_t limit; // 0: no limit
    bool failed;
} chat_arena;

void *chat_arena_alloc(chat_arena *a, size_t size);
void chat_arena_release(chat_arena *a);

// Grows the array *items (room for *cap items of item_size bytes, the first n in use) to
// hold at least need items, in the arena: the same doubling as garlic_grow, from at least
// 4 items and 64 bytes; the old storage is left to the arena. GARLIC_ENOMEM (array
// unchanged) when the size overflows or the arena says no.
int chat_arena_grow(chat_arena *a, void *items, size_t *cap, size_t n, size_t need,
                    size_t item_size);

// A growable byte string inside an arena (old storage is abandoned when it grows).
typedef struct chat_buf {
    char *data;
    size_t len, cap;
    size_t max; // 0: no limit; past it append fails
} chat_buf;

int chat_buf_append(chat_arena *a, chat_buf *b, const char *s, size_t n);
int chat_buf_printf(chat_arena *a, chat_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

// ---- values ------------------------------------------------------------------------------

typedef enum chat_type {
    CHAT_UNDEFINED,
    CHAT_NONE,
    CHAT_BOOL,
    CHAT_INT,
    CHAT_FLOAT,
    CHAT_STRING,
    CHAT_LIST, // also tuples (list->is_tuple)
    CHAT_DICT,
    CHAT_NAMESPACE, // a dict whose attributes `set ns.x = ...` may change
    CHAT_LOOP,      // the `loop` variable of a for loop
    CHAT_CALLABLE,  // a macro, a global function or a bound method
    CHAT_TYPE_COUNT
} chat_type;

typedef struct chat_list chat_list;
typedef struct chat_dict chat_dict;
typedef struct chat_callable chat_callable;
typedef struct chat_loop chat_loop;

// A value is small and copied freely; what it points to lives in the render's arena (or
// the template's) and is never changed after construction, except namespaces.
typedef struct chat_value {
    chat_type type;
    union {
        bool b;
        int64_t i;
        double f;
        struct {
            const char *ptr; // UTF-8, not NUL-terminated
            size_t len;
        } s;
        chat_list *list;
        chat_dict *dict;
        chat_callable *fn;
        chat_loop *loop;
        struct {
            const char *name; // the variable or attribute (NUL-terminated), or NULL
            chat_type owner;  // CHAT_TYPE_COUNT for a variable, else the object's type
            bool unsafe;      // a refused attribute (Jinja's SecurityError)
        } undef;
    };
} chat_value;

// What a list returned by a dict method stands for (only printing differs: "dict_keys([...])").
typedef enum chat_view {
    CHAT_VIEW_NONE, // a plain list or tuple
    CHAT_VIEW_ITEMS,
    CHAT_VIEW_KEYS,
    CHAT_VIEW_VALUES,
    CHAT_VIEW_COUNT
} chat_view;

struct chat_list {
    size_t n, cap;
    chat_value *items; // (n)
    bool is_tuple;
    chat_view view;
};

struct chat_dict {
    size_t n, cap;
    chat_value *keys; // (n), insertion order
    chat_value *vals; // (n)
    // A hash index over keys once the dict has DICT_INDEX_FROM entries (NULL before): open
    // addressing, slot = key index + 1, 0 empty; n_slots a power of two at least 2 n.
    uint32_t *slots;
    size_t n_slots;
};

struct chat_node;
struct render_ctx;

typedef int (*chat_builtin_fn)(struct render_ctx *c, const struct chat_node *at,
                               const chat_value *self, const chat_value *args, size_t n_args,
                               const chat_dict *kwargs, chat_value *out);

struct chat_callable {
    const char *name;                  // for messages
    chat_builtin_fn fn;                // a global or a method; NULL for a macro
    chat_value self;                   // the bound object of a method
    const struct chat_node *macro;     // the macro's definition
    const struct render_var *captured; // (n_captured) the enclosing scopes of a nested macro
    size_t n_captured;
};

struct chat_loop {
    const chat_list *items; // what is iterated (after the loop's `if` filter)
    size_t index0;
    size_t depth;
};

static inline chat_value chat_undefined(const char *name)
{
    chat_value v = {.type = CHAT_UNDEFINED};
    v.undef.name = name;
    v.undef.owner = CHAT_TYPE_COUNT;
    return v;
}
static inline chat_value chat_none(void) { return (chat_value){.type = CHAT_NONE}; }
static inline chat_value chat_bool(bool b) { return (chat_value){.type = CHAT_BOOL, .b = b}; }
static inline chat_value chat_int(int64_t i) { return (chat_value){.type = CHAT_INT, .i = i}; }
static inline chat_value chat_float(double f) { return (chat_value){.type = CHAT_FLOAT, .f = f}; }
static inline chat_value chat_str(const char *p, size_t n)
{
    chat_value v = {.type = CHAT_STRING};
    v.s.ptr = p;
    v.s.len = n;
    return v;
}

chat_value chat_str_copy(chat_arena *a, const char *p, size_t n); // type UNDEFINED on failure
chat_list *chat_list_new(chat_arena *a, size_t cap);
int chat_list_push(chat_arena *a, chat_list *l, chat_value v);
chat_dict *chat_dict_new(chat_arena *a, size_t cap);
int chat_dict_set(chat_arena *a, chat_dict *d, chat_value key, chat_value val);
const chat_value *chat_dict_get(const chat_dict *d, const char *key, size_t key_len);
const chat_value *chat_dict_find(const chat_dict *d, const chat_value *key);

bool chat_truthy(const chat_value *v);
bool chat_equal(const chat_value *a, const chat_value *b);

// The work a render does inside single steps (items compared, keys searched, list items
// iterated, string bytes scanned / 64), counted per thread because equality and lookups
// take no render context; chat_render_tick charges it to the render's step limit, so that
// a template repeating a scan of a large value, or a quadratic filter, stops like a loop.
extern _Thread_local uint64_t chat_work_units;
static inline void chat_work(uint64_t units) { chat_work_units += units; }
// memmem that counts its haystack as work.
const char *chat_memmem(const char *hay, size_t hay_len, const char *needle, size_t needle_len);
// Python ordering: <0, 0, >0 in *order, or GARLIC_ETYPE when the types do not compare.
int chat_compare(const chat_value *a, const chat_value *b, int *order);
const char *chat_type_name(const chat_value *v); // Python's: "str", "dict", "NoneType"...
bool chat_is_number(const chat_value *v);        // bool, int or float
double chat_number(const chat_value *v);

// Python str() and repr() appended to b; GARLIC_ENOMEM past the arena's limit.
int chat_value_str(chat_arena *a, chat_buf *b, const chat_value *v);
int chat_value_repr(chat_arena *a, chat_buf *b, const chat_value *v);
// Python float repr ("1.0", "1e-10", "inf"); out must hold 32 bytes.
void chat_float_repr(double f, char *out);

// json.dumps as transformers' tojson calls it. indent < 0: none; indent_str used when
// indent is given as a string. Fails with GARLIC_ETYPE on a value JSON cannot hold.
typedef struct chat_json_opts {
    bool ensure_ascii;
    bool sort_keys;
    const char *indent;   // NULL: no indent; else the per-level indent text
    const char *item_sep; // NULL: default
    const char *key_sep;  // NULL: default
} chat_json_opts;
int chat_value_tojson(chat_arena *a, chat_buf *b, const chat_value *v, const chat_json_opts *o,
                      garlic_error *err);

// Converts a cJSON tree into values in a (tree.c): objects keep key order, integral numbers
// within 2^53 become ints. GARLIC_ENOMEM, or GARLIC_EINVAL past 200 levels of nesting.
struct cJSON;
int chat_value_from_tree(chat_arena *a, const struct cJSON *item, chat_value *out,
                         garlic_error *err);

// Parses JSON text into values (objects keep key order, integers stay ints). Fails with
// GARLIC_EFORMAT naming the byte offset.
int chat_json_parse(chat_arena *a, const char *text, size_t len, chat_value *out,
                    garlic_error *err);

// UTF-8 helpers over code points (invalid bytes count as one character each).
size_t chat_utf8_count(const char *s, size_t n);
size_t chat_utf8_offset(const char *s, size_t n, size_t index); // byte offset of code point

// ---- tokens and AST ----------------------------------------------------------------------

typedef enum chat_token_kind {
    TOK_EOF,
    TOK_TEXT,
    TOK_VAR_BEGIN,
    TOK_VAR_END,
    TOK_BLOCK_BEGIN,
    TOK_BLOCK_END,
    TOK_NAME,
    TOK_STRING, // decoded value in (str, len)
    TOK_INT,
    TOK_FLOAT,
    TOK_OP, // operator text in (str, len)
    TOK_COUNT
} chat_token_kind;

typedef struct chat_token {
    chat_token_kind kind;
    uint32_t line, col;
    const char *str; // text, name, decoded string or operator
    size_t len;
    int64_t i;
    double f;
} chat_token;

typedef struct chat_token_list {
    chat_token *items; // (n)
    size_t n, cap;
} chat_token_list;

// Splits normalized template source into tokens, applying trim_blocks, lstrip_blocks and
// the -/+ whitespace controls. Tokens point into src or into the arena.
int chat_lex(chat_arena *a, const char *name, const char *src, size_t len, chat_token_list *out,
             garlic_error *err);

typedef enum chat_node_kind {
    // statements
    NODE_TEXT,      // str, len
    NODE_OUTPUT,    // a
    NODE_IF,        // a: condition, body, alt: else (an elif is a NODE_IF alone in alt)
    NODE_FOR,       // names: targets, a: iterable, b: filter or NULL, body, alt: else
    NODE_SET,       // names: targets (or str: namespace, names[0]: attribute), b: value
    NODE_SET_BLOCK, // names[0], body
    NODE_MACRO,     // str: name, names: params, args: defaults (NULL entries), body
    NODE_BREAK,
    NODE_CONTINUE,
    NODE_BLOCK,        // body (a generation block)
    NODE_FILTER_BLOCK, // a: a NODE_FILTER with a NULL operand, body
    // expressions
    NODE_LITERAL, // lit
    NODE_NAME,    // str
    NODE_LIST,    // args
    NODE_TUPLE,   // args
    NODE_DICT,    // args: keys, kwargs: values
    NODE_ATTR,    // a, str
    NODE_ITEM,    // a, b
    NODE_SLICE,   // a, args: [start, stop, step] (entries may be NULL)
    NODE_CALL,    // a, args, kwargs + names
    NODE_FILTER,  // a (NULL in a filter block), str, args, kwargs + names
    NODE_TEST,    // a, str, args, negated
    NODE_UNARY,   // op, a
    NODE_BINARY,  // op, a, b
    NODE_COND,    // a: value, b: condition, c: else or NULL
    NODE_KIND_COUNT
} chat_node_kind;

typedef enum chat_op {
    OP_NONE,
    OP_ADD,
    OP_SUB,
    OP_MUL,
    OP_DIV,
    OP_FLOORDIV,
    OP_MOD,
    OP_POW,
    OP_CONCAT,
    OP_EQ,
    OP_NE,
    OP_LT,
    OP_LE,
    OP_GT,
    OP_GE,
    OP_IN,
    OP_NOT_IN,
    OP_AND,
    OP_OR,
    OP_NOT,
    OP_NEG,
    OP_POS,
    OP_COUNT
} chat_op;

typedef struct chat_node_list {
    struct chat_node **items; // (n); entries may be NULL where documented
    size_t n;
} chat_node_list;

typedef struct chat_node {
    chat_node_kind kind;
    chat_op op;
    bool negated;
    uint32_t line, col;
    const char *str; // NUL-terminated (text nodes also give len)
    size_t len;
    chat_value lit;
    struct chat_node *a, *b, *c;
    chat_node_list body, alt;
    chat_node_list args, kwargs;
    const char **names; // (n_names)
    size_t n_names;
} chat_node;

// The parsed template (the chat_template of chat.h).
struct chat_template {
    chat_arena arena; // tokens, nodes, strings
    char *name;       // for messages
    chat_node_list body;
};

int chat_parse_tokens(chat_template *t, const chat_token_list *toks, garlic_error *err);

// ---- rendering -----------------------------------------------------------------------------

// Cap on nested expression evaluations plus statements in one render, whatever macros do;
// it bounds the C stack a render uses.
enum { RENDER_MAX_NESTING = 2000 };

typedef struct render_var {
    const char *name;
    chat_value value;
} render_var;

// What the innermost for loop does next after its body stops early.
typedef enum chat_loop_control {
    CHAT_LOOP_RUN,      // nothing pending
    CHAT_LOOP_BREAK,    // {% break %}
    CHAT_LOOP_CONTINUE, // {% continue %}
    CHAT_LOOP_CONTROL_COUNT
} chat_loop_control;

typedef struct render_ctx {
    chat_arena arena;
    const chat_template *tpl;
    garlic_error *err;
    chat_buf *out;
    render_var *vars; // (n_vars) scope stack, innermost last
    size_t n_vars, cap_vars;
    size_t scope_start; // first variable of the innermost scope
    size_t frame_start; // first variable of the current macro call (0: top level)
    size_t n_globals;   // variables [0, n_globals) are render() arguments
    uint64_t steps, max_steps;
    uint64_t work_start;  // chat_work_units when the render began
    int depth, max_depth; // nested macro calls and filters
    int nesting;          // nested evaluations and statements (see RENDER_MAX_NESTING)
    size_t max_output;
    chat_loop_control loop_ctl; // set by {% break %} and {% continue %}
    bool raised;                // the error came from raise_exception()
    chat_value filter_input;    // the body of the {% filter %} block being applied
    bool has_now;
    int now[6]; // year, month, day, hour, minute, second
} render_ctx;

// render.c: the interpreter. Fills c->err with "NAME:LINE:COL: message" (at may be NULL)
// and returns code.
int chat_render_error(render_ctx *c, const chat_node *at, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int chat_render_eval(render_ctx *c, const chat_node *n, chat_value *out);
int chat_render_call(render_ctx *c, const chat_node *at, const chat_value *fn,
                     const chat_value *args, size_t n_args, const chat_dict *kwargs,
                     chat_value *out);
int chat_render_undefined_error(render_ctx *c, const chat_node *at, const chat_value *v);
int chat_render_nomem(render_ctx *c, const chat_node *at);
bool chat_render_tick(render_ctx *c); // counts a step; false past max_steps
int chat_render_define(render_ctx *c, const char *name, chat_value v);
int chat_render_eval_args(render_ctx *c, const chat_node *n, chat_value **args, chat_dict **kwargs);
int chat_render_iterate(render_ctx *c, const chat_node *at, const chat_value *v, chat_list **out);
// Renders the whole template; *out is garlic_malloc'd.
int chat_render_template(render_ctx *c, char **out, size_t *out_len);

// filters.c: filters and tests, each a table the parser checks names against.
int chat_apply_filter(render_ctx *c, const chat_node *n, const chat_value *operand,
                      chat_value *out);
int chat_apply_test(render_ctx *c, const chat_node *n, const chat_value *operand, bool *out);
bool chat_filter_known(const char *name);
bool chat_test_known(const char *name);
// Python's printf-style "fmt % args" (%s, %r, %d, %i, %f, %%).
int chat_percent_format(render_ctx *c, const chat_node *at, const chat_value *fmt,
                        const chat_value *args, chat_value *out);

// methods.c: what names and dots reach (globals, attributes, items, methods) and the Python
// string helpers filters share with the methods.
bool chat_global(const char *name, chat_value *out);
int chat_get_attr(render_ctx *c, const chat_node *at, const chat_value *obj, const char *name,
                  chat_value *out);
int chat_get_item(render_ctx *c, const chat_node *at, const chat_value *obj, const chat_value *key,
                  chat_value *out);
int chat_dict_items(render_ctx *c, const chat_node *at, const chat_dict *d, chat_value *out);
bool chat_is_space(uint32_t cp);

// Python's str.strip / lstrip / rstrip: which ends chat_strip trims.
typedef enum chat_strip_side {
    CHAT_STRIP_BOTH,
    CHAT_STRIP_LEFT,
    CHAT_STRIP_RIGHT,
    CHAT_STRIP_COUNT
} chat_strip_side;
// The part of s (no copy) without the code points of chars (NULL: whitespace) at side.
chat_value chat_strip(const chat_value *s, const chat_value *chars, chat_strip_side side);

int chat_replace(render_ctx *c, const chat_node *at, const chat_value *s, const chat_value *old,
                 const chat_value *new_text, int64_t count, chat_value *out);

// How chat_case maps letters (ASCII, Latin-1, Latin Extended-A, Greek, Cyrillic).
typedef enum chat_case_mode {
    CHAT_CASE_LOWER,       // str.lower
    CHAT_CASE_UPPER,       // str.upper
    CHAT_CASE_TITLE,       // str.title: upper after an uncased character, else lower
    CHAT_CASE_CAPITALIZE,  // str.capitalize: the first character upper, the rest lower
    CHAT_CASE_JINJA_TITLE, // the title filter: upper after '-', whitespace or an opening bracket
    CHAT_CASE_COUNT
} chat_case_mode;
// s with its letters mapped by mode, in the render arena.
int chat_case(render_ctx *c, const chat_node *at, const chat_value *s, chat_case_mode mode,
              chat_value *out);

#endif
