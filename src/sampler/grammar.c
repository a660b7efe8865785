// SPDX-License-Identifier: MIT
// The GBNF compiler: grammar text -> the flat rule form of grammar_internal.h. A recursive
// descent parser over (p, end) with every read bounds-checked builds each rule's
// alternatives in a local buffer and commits them at once; groups and the postfix operators
// become helper rules (X* is R ::= X R | empty, X{m,n} is m copies then a chain of optional
// rules). Then the checks that keep matching safe: every rule defined, no left recursion
// (matching would expand forever) and no rule that can never finish (generation could not
// end). Errors give the line and column in the text.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/buffer.h"
#include "base/utf8.h"
#include "sampler/grammar_internal.h"

// What the parser knows of a rule beyond the compiled form.
typedef struct rule_info {
    const char *name; // into the text; NULL for a helper rule
    uint32_t name_len;
    uint32_t owner;  // the named rule a helper rule was made for (itself when named)
    uint32_t ref_at; // text offset of the first reference, for "undefined" errors
    bool defined;
} rule_info;

// A growable run of symbols: one rule's alternatives while they are parsed.
typedef struct sym_buf {
    gsym *v; // (cap)
    size_t n, cap;
} sym_buf;

typedef struct parser {
    const char *text, *p, *end;
    grammar *g;
    size_t cap_syms, cap_alts, cap_rules, cap_classes, cap_ranges;
    rule_info *info; // (cap_info) one per rule
    size_t cap_info;
    uint32_t current; // the named rule being parsed
    int nesting;
    garlic_error *err;
} parser;

// Fills err with "grammar line L column C: message" for text offset at; returns GARLIC_EINVAL
// (or code).
static int fail_at(parser *ps, const char *at, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail_at(parser *ps, const char *at, int code, const char *fmt, ...)
{
    size_t line = 1, col = 1;
    for (const char *q = ps->text; q < at && q < ps->end; q++) {
        if (*q == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
    }
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return garlic_error_set(ps->err, code, "grammar line %zu column %zu: %s", line, col, msg);
}

static int oom(parser *ps)
{
    return garlic_error_set(ps->err, GARLIC_ENOMEM, "grammar: out of memory");
}

static int buf_push(parser *ps, sym_buf *b, uint32_t kind, uint32_t arg)
{
    if (b->n >= GRAMMAR_MAX_SYMBOLS)
        return fail_at(ps, ps->p, GARLIC_EINVAL, "more than %d symbols", GRAMMAR_MAX_SYMBOLS);
    if (garlic_grow(&b->v, &b->cap, b->n + 1, sizeof *b->v) != 0)
        return oom(ps);
    b->v[b->n++] = (gsym){kind, arg};
    return GARLIC_OK;
}

// A new rule (undefined until committed); its id in *id.
static int rule_add(parser *ps, const char *name, size_t name_len, uint32_t *id)
{
    grammar *g = ps->g;
    if (g->n_rules >= GRAMMAR_MAX_RULES)
        return fail_at(ps, ps->p, GARLIC_EINVAL, "more than %d rules", GRAMMAR_MAX_RULES);
    size_t need = (size_t)g->n_rules + 1;
    if (garlic_grow(&g->rules, &ps->cap_rules, need, sizeof *g->rules) != 0 ||
        garlic_grow(&ps->info, &ps->cap_info, need, sizeof *ps->info) != 0)
        return oom(ps);
    *id = g->n_rules++;
    g->rules[*id] = (grule){0, 0};
    ps->info[*id] = (rule_info){name, (uint32_t)name_len, name ? *id : ps->current,
                                (uint32_t)(ps->p - ps->text), false};
    return GARLIC_OK;
}

// The id of the named rule, made on first mention.
static int rule_named(parser *ps, const char *name, size_t len, uint32_t *id)
{
    for (uint32_t i = 0; i < ps->g->n_rules; i++) {
        const rule_info *r = &ps->info[i];
        if (r->name && r->name_len == len && memcmp(r->name, name, len) == 0) {
            *id = i;
            return GARLIC_OK;
        }
    }
    return rule_add(ps, name, len, id);
}

// Gives rule id the alternatives in b (each closed by GSYM_END).
static int rule_commit(parser *ps, uint32_t id, const sym_buf *b)
{
    grammar *g = ps->g;
    if ((size_t)g->n_syms + b->n > GRAMMAR_MAX_SYMBOLS)
        return fail_at(ps, ps->p, GARLIC_EINVAL, "more than %d symbols", GRAMMAR_MAX_SYMBOLS);
    size_t n_alts = 0;
    for (size_t i = 0; i < b->n; i++)
        n_alts += b->v[i].kind == GSYM_END;
    if (garlic_grow(&g->syms, &ps->cap_syms, g->n_syms + b->n, sizeof *g->syms) != 0 ||
        garlic_grow(&g->alt_start, &ps->cap_alts, g->n_alts + n_alts, sizeof *g->alt_start) != 0)
        return oom(ps);
    g->rules[id] = (grule){g->n_alts, (uint32_t)n_alts};
    bool start = true;
    for (size_t i = 0; i < b->n; i++) {
        if (start)
            g->alt_start[g->n_alts++] = g->n_syms;
        start = b->v[i].kind == GSYM_END;
        g->syms[g->n_syms++] = b->v[i];
    }
    ps->info[id].defined = true;
    return GARLIC_OK;
}

// A helper rule with the alternatives syms[0..n) (GSYM_END-separated); its id in *id.
static int rule_helper(parser *ps, const gsym *syms, size_t n, uint32_t *id)
{
    int rc = rule_add(ps, NULL, 0, id);
    if (rc != 0)
        return rc;
    sym_buf b = {(gsym *)syms, n, n};
    return rule_commit(ps, *id, &b);
}

static bool is_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '_';
}

// Skips spaces, tabs, newlines and # comments.
static void skip_space(parser *ps)
{
    while (ps->p < ps->end) {
        char c = *ps->p;
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
            ps->p++;
        } else if (c == '#') {
            while (ps->p < ps->end && *ps->p != '\n')
                ps->p++;
        } else {
            break;
        }
    }
}

// Whether a rule definition `name ::=` starts at q.
static bool at_definition(const parser *ps, const char *q)
{
    const char *e = ps->end;
    if (q >= e || !is_name_char(*q))
        return false;
    while (q < e && is_name_char(*q))
        q++;
    while (q < e && (*q == ' ' || *q == '\t' || *q == '\r' || *q == '\n'))
        q++;
    return e - q >= 3 && memcmp(q, "::=", 3) == 0;
}

// Reads one character of a literal or class (an escape or a UTF-8 character) into *cp.
static int read_char(parser *ps, uint32_t *cp)
{
    const char *at = ps->p;
    if (ps->p >= ps->end)
        return fail_at(ps, at, GARLIC_EINVAL, "text ends inside a literal or class");
    unsigned char c = (unsigned char)*ps->p;
    if (c != '\\') {
        size_t n = utf8_sequence_length(ps->p, (size_t)(ps->end - ps->p));
        if (n == 0)
            return fail_at(ps, at, GARLIC_EINVAL, "invalid UTF-8");
        uint32_t v = n == 1 ? c : (uint32_t)(c & (0xFF >> (n + 1)));
        for (size_t i = 1; i < n; i++)
            v = (v << 6) | ((unsigned char)ps->p[i] & 0x3F);
        ps->p += n;
        *cp = v;
        return GARLIC_OK;
    }
    if (ps->end - ps->p < 2)
        return fail_at(ps, at, GARLIC_EINVAL, "text ends inside an escape");
    char e = ps->p[1];
    ps->p += 2;
    int digits = e == 'x' ? 2 : e == 'u' ? 4 : e == 'U' ? 8 : 0;
    if (digits == 0) {
        const char *from = "nrt\\\"'[]-^/0";
        const char *to = "\n\r\t\\\"'[]-^/";
        const char *hit = strchr(from, e);
        if (!hit || e == '\0')
            return fail_at(ps, at, GARLIC_EINVAL, "unknown escape '\\%c'", e);
        *cp = e == '0' ? 0 : (unsigned char)to[hit - from];
        return GARLIC_OK;
    }
    uint32_t v = 0;
    for (int i = 0; i < digits; i++) {
        int h = ps->p < ps->end ? hex_digit_value(*ps->p) : -1;
        if (h < 0)
            return fail_at(ps, at, GARLIC_EINVAL, "'\\%c' needs %d hex digits", e, digits);
        v = (v << 4) | (uint32_t)h;
        ps->p++;
    }
    if (v > 0x10FFFF)
        return fail_at(ps, at, GARLIC_EINVAL, "code point U+%X is past U+10FFFF", v);
    *cp = v;
    return GARLIC_OK;
}

static int range_cmp(const void *a, const void *b)
{
    const grange *x = a, *y = b;
    return x->lo < y->lo ? -1 : x->lo > y->lo;
}

// Whether [lo, hi] holds a code point that UTF-8 can carry (not a surrogate).
static bool has_scalar(uint32_t lo, uint32_t hi)
{
    return lo <= hi && (lo < 0xD800 || hi > 0xDFFF);
}

// Whether the finished class c matches some code point UTF-8 can carry: a class that does
// not would leave a parse with no way forward.
static bool class_matches_some(const grammar *g, const gclass *c)
{
    const grange *r = c->n_ranges ? g->ranges + c->first_range : NULL;
    if (!c->negated) {
        for (uint32_t i = 0; i < c->n_ranges; i++)
            if (has_scalar(r[i].lo, r[i].hi))
                return true;
        return false;
    }
    uint32_t next = 0; // the first code point not yet covered
    for (uint32_t i = 0; i < c->n_ranges; i++) {
        if (r[i].lo > next && has_scalar(next, r[i].lo - 1))
            return true;
        next = r[i].hi + 1;
    }
    return has_scalar(next, 0x10FFFF);
}

// Sorts and merges the ranges of class c, then fills its ASCII bits.
static void class_finish(grammar *g, gclass *c)
{
    grange *r = c->n_ranges ? g->ranges + c->first_range : NULL;
    if (r)
        qsort(r, c->n_ranges, sizeof *r, range_cmp);
    uint32_t n = 0;
    for (uint32_t i = 0; i < c->n_ranges; i++) {
        if (n > 0 && r[i].lo <= r[n - 1].hi + 1) {
            if (r[i].hi > r[n - 1].hi)
                r[n - 1].hi = r[i].hi;
        } else {
            r[n++] = r[i];
        }
    }
    g->n_ranges = c->first_range + n;
    c->n_ranges = n;
    memset(c->ascii, 0, sizeof c->ascii);
    for (uint32_t i = 0; i < n; i++)
        for (uint32_t v = r[i].lo; v <= r[i].hi && v < 128; v++)
            c->ascii[v / 32] |= 1u << (v % 32);
    if (c->negated)
        for (int w = 0; w < 4; w++)
            c->ascii[w] = ~c->ascii[w];
}

// Parses a class after its '[' into a GSYM_CLASS appended to b.
static int parse_class(parser *ps, sym_buf *b)
{
    const char *at = ps->p - 1;
    grammar *g = ps->g;
    if (g->n_classes >= GRAMMAR_MAX_SYMBOLS)
        return fail_at(ps, at, GARLIC_EINVAL, "too many classes");
    if (garlic_grow(&g->classes, &ps->cap_classes, g->n_classes + 1, sizeof *g->classes) != 0)
        return oom(ps);
    gclass c = {g->n_ranges, 0, 0, {0}};
    if (ps->p < ps->end && *ps->p == '^') {
        c.negated = 1;
        ps->p++;
    }
    for (;;) {
        if (ps->p >= ps->end)
            return fail_at(ps, at, GARLIC_EINVAL, "class is not closed with ']'");
        if (*ps->p == ']')
            break;
        uint32_t lo, hi;
        int rc = read_char(ps, &lo);
        if (rc != 0)
            return rc;
        hi = lo;
        if (ps->end - ps->p >= 2 && ps->p[0] == '-' && ps->p[1] != ']') {
            ps->p++;
            if ((rc = read_char(ps, &hi)) != 0)
                return rc;
            if (hi < lo)
                return fail_at(ps, at, GARLIC_EINVAL, "class range U+%X-U+%X runs backwards", lo,
                               hi);
        }
        if (g->n_ranges >= GRAMMAR_MAX_SYMBOLS)
            return fail_at(ps, at, GARLIC_EINVAL, "too many class ranges");
        if (garlic_grow(&g->ranges, &ps->cap_ranges, g->n_ranges + 1, sizeof *g->ranges) != 0)
            return oom(ps);
        g->ranges[g->n_ranges++] = (grange){lo, hi};
        c.n_ranges++;
    }
    ps->p++;
    class_finish(g, &c);
    if (!class_matches_some(g, &c))
        return fail_at(ps, at, GARLIC_EINVAL, "the class matches no character");
    g->classes[g->n_classes] = c;
    return buf_push(ps, b, GSYM_CLASS, g->n_classes++);
}

// Reads a decimal number for {m,n}.
static int read_count(parser *ps, uint32_t *out)
{
    const char *at = ps->p;
    uint32_t v = 0;
    if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9')
        return fail_at(ps, at, GARLIC_EINVAL, "expected a number in '{...}'");
    while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') {
        v = v * 10 + (uint32_t)(*ps->p - '0');
        if (v > GRAMMAR_MAX_REPEAT)
            return fail_at(ps, at, GARLIC_EINVAL, "repetition count over %d", GRAMMAR_MAX_REPEAT);
        ps->p++;
    }
    *out = v;
    return GARLIC_OK;
}

// Replaces the element at b->v[from..n) by min..max copies (max UINT32_MAX: unbounded).
static int repeat(parser *ps, sym_buf *b, size_t from, uint32_t min, uint32_t max)
{
    int rc;
    gsym s = b->v[from];
    if (b->n - from != 1) {
        // Several symbols (a literal): wrap them in a rule first.
        if ((rc = buf_push(ps, b, GSYM_END, 0)) != 0)
            return rc;
        uint32_t id;
        if ((rc = rule_helper(ps, b->v + from, b->n - from, &id)) != 0)
            return rc;
        s = (gsym){GSYM_RULE, id};
    }
    b->n = from;
    for (uint32_t i = 0; i < min; i++)
        if ((rc = buf_push(ps, b, s.kind, s.arg)) != 0)
            return rc;
    if (max == UINT32_MAX) {
        // R ::= s R | empty
        uint32_t id;
        if ((rc = rule_add(ps, NULL, 0, &id)) != 0)
            return rc;
        gsym alts[] = {s, {GSYM_RULE, id}, {GSYM_END, 0}, {GSYM_END, 0}};
        sym_buf rb = {alts, 4, 4};
        if ((rc = rule_commit(ps, id, &rb)) != 0)
            return rc;
        return buf_push(ps, b, GSYM_RULE, id);
    }
    // O_1 ::= s | empty; O_k ::= s O_(k-1) | empty
    uint32_t prev = UINT32_MAX;
    for (uint32_t k = min; k < max; k++) {
        gsym alts[4] = {s, {GSYM_END, 0}, {GSYM_END, 0}};
        size_t n = 3;
        if (prev != UINT32_MAX) {
            alts[1] = (gsym){GSYM_RULE, prev};
            alts[2] = alts[3] = (gsym){GSYM_END, 0};
            n = 4;
        }
        if ((rc = rule_helper(ps, alts, n, &prev)) != 0)
            return rc;
    }
    if (prev != UINT32_MAX)
        return buf_push(ps, b, GSYM_RULE, prev);
    return GARLIC_OK;
}

// Parses a postfix operator after the element at b->v[from..n), if there is one. A second
// operator (`x++`, `x*?`) is refused: it means nothing more and makes matching ambiguous.
static int parse_postfix(parser *ps, sym_buf *b, size_t from)
{
    for (int n_ops = 0;; n_ops++) {
        skip_space(ps);
        if (ps->p >= ps->end || b->n == from)
            return GARLIC_OK;
        if (n_ops > 0 && *ps->p && strchr("*+?{", *ps->p))
            return fail_at(ps, ps->p, GARLIC_EINVAL, "a second repetition operator '%c'", *ps->p);
        char c = *ps->p;
        uint32_t min, max;
        int rc;
        if (c == '*' || c == '+' || c == '?') {
            ps->p++;
            min = c == '+' ? 1 : 0;
            max = c == '?' ? 1 : UINT32_MAX;
        } else if (c == '{') {
            const char *at = ps->p++;
            skip_space(ps);
            if ((rc = read_count(ps, &min)) != 0)
                return rc;
            skip_space(ps);
            max = min;
            if (ps->p < ps->end && *ps->p == ',') {
                ps->p++;
                skip_space(ps);
                max = UINT32_MAX;
                if (ps->p < ps->end && *ps->p != '}' && (rc = read_count(ps, &max)) != 0)
                    return rc;
                skip_space(ps);
            }
            if (ps->p >= ps->end || *ps->p != '}')
                return fail_at(ps, at, GARLIC_EINVAL, "'{' is not closed with '}'");
            ps->p++;
            if (max < min)
                return fail_at(ps, at, GARLIC_EINVAL, "{%u,%u}: the maximum is below the minimum",
                               min, max);
        } else {
            return GARLIC_OK;
        }
        if ((rc = repeat(ps, b, from, min, max)) != 0)
            return rc;
    }
}

static int parse_alternates(parser *ps, uint32_t id);

// Parses one sequence into b, up to '|', ')', the next definition or the end.
static int parse_sequence(parser *ps, sym_buf *b)
{
    for (;;) {
        skip_space(ps);
        if (ps->p >= ps->end || *ps->p == '|' || *ps->p == ')' || at_definition(ps, ps->p))
            return GARLIC_OK;
        size_t from = b->n;
        const char *at = ps->p;
        char c = *ps->p;
        int rc = GARLIC_OK;
        if (c == '"') {
            ps->p++;
            while (rc == 0 && (ps->p >= ps->end || *ps->p != '"')) {
                uint32_t cp;
                if ((rc = read_char(ps, &cp)) == 0 && cp >= 0xD800 && cp <= 0xDFFF)
                    rc = fail_at(ps, ps->p, GARLIC_EINVAL, "surrogate U+%X in a literal", cp);
                if (rc == 0)
                    rc = buf_push(ps, b, GSYM_CHAR, cp);
            }
            if (rc == 0)
                ps->p++;
        } else if (c == '[') {
            ps->p++;
            rc = parse_class(ps, b);
        } else if (c == '.') {
            ps->p++;
            rc = buf_push(ps, b, GSYM_ANY, 0);
        } else if (c == '(') {
            ps->p++;
            if (++ps->nesting > GRAMMAR_MAX_NESTING)
                return fail_at(ps, at, GARLIC_EINVAL, "groups nested deeper than %d",
                               GRAMMAR_MAX_NESTING);
            uint32_t id;
            if ((rc = rule_add(ps, NULL, 0, &id)) == 0 && (rc = parse_alternates(ps, id)) == 0) {
                skip_space(ps);
                if (ps->p >= ps->end || *ps->p != ')')
                    return fail_at(ps, at, GARLIC_EINVAL, "'(' is not closed with ')'");
                ps->p++;
                rc = buf_push(ps, b, GSYM_RULE, id);
            }
            ps->nesting--;
        } else if (c == '<') {
            return fail_at(ps, at, GARLIC_EUNSUPPORTED,
                           "token references '<...>' are not supported");
        } else if (is_name_char(c)) {
            const char *name = ps->p;
            while (ps->p < ps->end && is_name_char(*ps->p))
                ps->p++;
            uint32_t id, before = ps->g->n_rules;
            if ((rc = rule_named(ps, name, (size_t)(ps->p - name), &id)) == 0)
                rc = buf_push(ps, b, GSYM_RULE, id);
            if (id >= before)
                ps->info[id].ref_at = (uint32_t)(name - ps->text);
        } else {
            return fail_at(ps, at, GARLIC_EINVAL, "unexpected '%c'", c);
        }
        if (rc != 0)
            return rc;
        if ((rc = parse_postfix(ps, b, from)) != 0)
            return rc;
    }
}

// Parses alternatives separated by '|' and commits them as rule id.
static int parse_alternates(parser *ps, uint32_t id)
{
    sym_buf b = {0};
    int rc;
    for (;;) {
        if ((rc = parse_sequence(ps, &b)) != 0 || (rc = buf_push(ps, &b, GSYM_END, 0)) != 0)
            break;
        skip_space(ps);
        if (ps->p >= ps->end || *ps->p != '|')
            break;
        ps->p++;
    }
    if (rc == 0)
        rc = rule_commit(ps, id, &b);
    garlic_free(b.v);
    return rc;
}

// Parses the whole text: a list of definitions.
static int parse_rules(parser *ps)
{
    for (;;) {
        skip_space(ps);
        if (ps->p >= ps->end)
            return GARLIC_OK;
        const char *at = ps->p;
        if (!at_definition(ps, ps->p))
            return fail_at(ps, at, GARLIC_EINVAL, "expected a rule definition 'name ::= ...'");
        const char *name = ps->p;
        while (is_name_char(*ps->p))
            ps->p++;
        size_t len = (size_t)(ps->p - name);
        skip_space(ps);
        ps->p += 3; // "::=", checked by at_definition
        uint32_t id;
        int rc = rule_named(ps, name, len, &id);
        if (rc != 0)
            return rc;
        if (ps->info[id].defined)
            return fail_at(ps, at, GARLIC_EINVAL, "rule '%.*s' is defined twice", (int)len, name);
        ps->current = id;
        ps->info[id].owner = id;
        if ((rc = parse_alternates(ps, id)) != 0)
            return rc;
        if (ps->p < ps->end && *ps->p == ')')
            return fail_at(ps, ps->p, GARLIC_EINVAL, "')' without '('");
    }
}

// The name of rule id for messages (a helper rule is named after its owner).
static void rule_label(const parser *ps, uint32_t id, char *out, size_t cap)
{
    const rule_info *r = &ps->info[ps->info[id].owner];
    snprintf(out, cap, "%s'%.*s'", r->name == ps->info[id].name ? "" : "a group in ",
             (int)r->name_len, r->name ? r->name : "?");
}

// Marks in flag[] the rules that are productive (derive some finite text; nullable_only
// false) or nullable (derive the empty text; true), by a worklist over alternatives.
static int rule_flags(const grammar *g, bool nullable_only, bool *flag)
{
    uint32_t *missing = garlic_calloc(g->n_alts + 1, sizeof *missing);
    uint32_t *alt_rule = garlic_calloc(g->n_alts + 1, sizeof *alt_rule);
    uint32_t *use_start = garlic_calloc((size_t)g->n_rules + 1, sizeof *use_start);
    uint32_t *uses = garlic_calloc(g->n_syms + 1, sizeof *uses);
    uint32_t *queue = garlic_calloc((size_t)g->n_rules + 1, sizeof *queue);
    int rc = GARLIC_ENOMEM;
    if (!missing || !alt_rule || !use_start || !uses || !queue)
        goto out;
    // Count each rule's uses, then list (by alternative) where each rule is used.
    for (uint32_t r = 0; r < g->n_rules; r++)
        for (uint32_t a = g->rules[r].first_alt; a < g->rules[r].first_alt + g->rules[r].n_alts;
             a++) {
            alt_rule[a] = r;
            for (const gsym *s = g->syms + g->alt_start[a]; s->kind != GSYM_END; s++) {
                if (s->kind == GSYM_RULE) {
                    use_start[s->arg + 1]++;
                    missing[a]++;
                } else if (nullable_only) {
                    missing[a] = UINT32_MAX / 2; // a character: never empty
                }
            }
        }
    for (uint32_t r = 0; r < g->n_rules; r++)
        use_start[r + 1] += use_start[r];
    uint32_t *fill = queue; // reused as the per-rule fill cursor, then as the queue
    memcpy(fill, use_start, g->n_rules * sizeof *fill);
    for (uint32_t a = 0; a < g->n_alts; a++)
        for (const gsym *s = g->syms + g->alt_start[a]; s->kind != GSYM_END; s++)
            if (s->kind == GSYM_RULE)
                uses[fill[s->arg]++] = a;
    size_t head = 0, tail = 0;
    memset(flag, 0, g->n_rules * sizeof *flag);
    for (uint32_t a = 0; a < g->n_alts; a++)
        if (missing[a] == 0 && !flag[alt_rule[a]]) {
            flag[alt_rule[a]] = true;
            queue[tail++] = alt_rule[a];
        }
    while (head < tail) {
        uint32_t r = queue[head++];
        for (uint32_t u = use_start[r]; u < use_start[r + 1]; u++) {
            uint32_t a = uses[u];
            if (--missing[a] == 0 && !flag[alt_rule[a]]) {
                flag[alt_rule[a]] = true;
                queue[tail++] = alt_rule[a];
            }
        }
    }
    rc = GARLIC_OK;
out:
    garlic_free(missing);
    garlic_free(alt_rule);
    garlic_free(use_start);
    garlic_free(uses);
    garlic_free(queue);
    return rc;
}

// Refuses left recursion: a rule that can reach itself without consuming a character.
// Depth-first search over "can start with" edges, with an explicit stack.
static int check_left_recursion(parser *ps, const bool *nullable)
{
    const grammar *g = ps->g;
    uint8_t *color = garlic_calloc((size_t)g->n_rules + 1, 1); // 0 new, 1 on the path, 2 done
    uint32_t *stack = garlic_calloc(((size_t)g->n_rules + 1) * 3, sizeof *stack);
    int rc = GARLIC_OK;
    if (!color || !stack) {
        rc = oom(ps);
        goto out;
    }
    for (uint32_t start = 0; start < g->n_rules && rc == 0; start++) {
        if (color[start])
            continue;
        // Each frame: rule, alternative index, symbol offset within it.
        size_t top = 0;
        stack[0] = start, stack[1] = 0, stack[2] = 0;
        color[start] = 1;
        while (rc == 0) {
            uint32_t *f = stack + top * 3;
            const grule *r = &g->rules[f[0]];
            if (f[1] >= r->n_alts) {
                color[f[0]] = 2;
                if (top == 0)
                    break;
                top--;
                continue;
            }
            const gsym *s = g->syms + g->alt_start[r->first_alt + f[1]] + f[2];
            if (s->kind != GSYM_RULE) {
                f[1]++, f[2] = 0;
                continue;
            }
            // Advance this frame past s if s is nullable, else to the next alternative.
            if (nullable[s->arg])
                f[2]++;
            else
                f[1]++, f[2] = 0;
            if (color[s->arg] == 1) {
                char label[200];
                rule_label(ps, s->arg, label, sizeof label);
                rc = garlic_error_set(ps->err, GARLIC_EINVAL,
                                      "grammar: rule %s is left-recursive (it can reach itself "
                                      "before matching a character)",
                                      label);
            } else if (color[s->arg] == 0) {
                color[s->arg] = 1;
                top++;
                stack[top * 3] = s->arg, stack[top * 3 + 1] = 0, stack[top * 3 + 2] = 0;
            }
        }
    }
out:
    garlic_free(color);
    garlic_free(stack);
    return rc;
}

// The checks after parsing: defined rules, a root, no left recursion, all rules finishable.
static int check(parser *ps)
{
    grammar *g = ps->g;
    for (uint32_t i = 0; i < g->n_rules; i++)
        if (!ps->info[i].defined)
            return fail_at(ps, ps->text + ps->info[i].ref_at, GARLIC_EINVAL,
                           "rule '%.*s' is used but not defined", (int)ps->info[i].name_len,
                           ps->info[i].name);
    bool found = false;
    for (uint32_t i = 0; i < g->n_rules && !found; i++)
        if (ps->info[i].name && ps->info[i].name_len == 4 &&
            memcmp(ps->info[i].name, "root", 4) == 0) {
            g->root = i;
            found = true;
        }
    if (!found)
        return garlic_error_set(ps->err, GARLIC_EINVAL, "grammar: no rule named 'root'");
    bool *flag = garlic_calloc((size_t)g->n_rules + 1, sizeof *flag);
    if (!flag)
        return oom(ps);
    int rc = rule_flags(g, true, flag);
    if (rc == 0)
        rc = check_left_recursion(ps, flag);
    if (rc == 0 && (rc = rule_flags(g, false, flag)) == 0) {
        for (uint32_t i = 0; i < g->n_rules; i++) {
            if (flag[i])
                continue;
            char label[200];
            rule_label(ps, i, label, sizeof label);
            rc = garlic_error_set(ps->err, GARLIC_EINVAL,
                                  "grammar: rule %s can never finish (every alternative refers "
                                  "back to it)",
                                  label);
            break;
        }
    }
    if (rc == GARLIC_ENOMEM)
        oom(ps);
    garlic_free(flag);
    return rc;
}

// The UTF-8 length of code point cp.
static uint32_t utf8_bytes(uint32_t cp)
{
    return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
}

// The fewest bytes a character symbol matches (its smallest member, written in UTF-8).
static uint32_t sym_min_bytes(const grammar *g, gsym sym)
{
    if (sym.kind == GSYM_CHAR)
        return utf8_bytes(sym.arg);
    if (sym.kind != GSYM_CLASS)
        return 1;
    const gclass *c = &g->classes[sym.arg];
    const grange *r = c->n_ranges ? g->ranges + c->first_range : NULL;
    if (!c->negated)
        return utf8_bytes(r[0].lo);
    return utf8_bytes(r && r[0].lo == 0 ? r[0].hi + 1 : 0);
}

// Fills g->min_len: the fewest bytes from each symbol position to the end of its
// alternative, from each rule's shortest expansion. Relaxation passes until nothing shrinks;
// helper rules come before their users, so a pass or two usually settles it.
static int compute_min_len(grammar *g)
{
    uint32_t *rule_len = garlic_malloc(((size_t)g->n_rules + 1) * sizeof *rule_len);
    g->min_len = garlic_malloc(((size_t)g->n_syms + 1) * sizeof *g->min_len);
    if (!rule_len || !g->min_len) {
        garlic_free(rule_len);
        return GARLIC_ENOMEM;
    }
    for (uint32_t r = 0; r < g->n_rules; r++)
        rule_len[r] = UINT32_MAX / 2;
    for (bool changed = true; changed;) {
        changed = false;
        for (uint32_t a = 0; a < g->n_alts; a++) {
            // Walk the alternative backwards, then offer its total to its rule.
            uint32_t start = g->alt_start[a], end = start, len = 0;
            while (g->syms[end].kind != GSYM_END)
                end++;
            g->min_len[end] = 0;
            for (uint32_t i = end; i-- > start;) {
                gsym sym = g->syms[i];
                len = grammar_dist_add(
                    len, sym.kind == GSYM_RULE ? rule_len[sym.arg] : sym_min_bytes(g, sym));
                g->min_len[i] = len;
            }
            (void)len;
        }
        for (uint32_t r = 0; r < g->n_rules; r++) {
            const grule *rule = &g->rules[r];
            for (uint32_t a = rule->first_alt; a < rule->first_alt + rule->n_alts; a++) {
                uint32_t len = g->min_len[g->alt_start[a]];
                if (len < rule_len[r]) {
                    rule_len[r] = len;
                    changed = true;
                }
            }
        }
    }
    garlic_free(rule_len);
    return GARLIC_OK;
}

grammar *grammar_new(const char *text, size_t len, garlic_error *err)
{
    if (!text || len > GRAMMAR_MAX_TEXT) {
        garlic_error_set(err, GARLIC_EINVAL, "grammar: text is %s (at most %d bytes)",
                         text ? "too long" : "missing", GRAMMAR_MAX_TEXT);
        return NULL;
    }
    grammar *g = garlic_calloc(1, sizeof *g);
    if (!g) {
        garlic_error_set(err, GARLIC_ENOMEM, "grammar: out of memory");
        return NULL;
    }
    parser ps = {.text = text, .p = text, .end = text + len, .g = g, .err = err};
    int rc = parse_rules(&ps);
    if (rc == 0)
        rc = check(&ps);
    if (rc == 0 && compute_min_len(g) != 0)
        rc = garlic_error_set(err, GARLIC_ENOMEM, "grammar: out of memory");
    garlic_free(ps.info);
    if (rc != 0) {
        grammar_free(g);
        return NULL;
    }
    return g;
}

void grammar_free(grammar *g)
{
    if (!g)
        return;
    garlic_free(g->syms);
    garlic_free(g->alt_start);
    garlic_free(g->rules);
    garlic_free(g->classes);
    garlic_free(g->ranges);
    garlic_free(g->min_len);
    garlic_free(g);
}

// Whether code point cp is in class c.
static bool class_has(const grammar *g, const gclass *c, uint32_t cp)
{
    if (cp < 128)
        return (c->ascii[cp / 32] >> (cp % 32)) & 1;
    const grange *r = c->n_ranges ? g->ranges + c->first_range : NULL;
    uint32_t lo = 0, hi = c->n_ranges;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (r[mid].hi < cp)
            lo = mid + 1;
        else
            hi = mid;
    }
    bool in = lo < c->n_ranges && r[lo].lo <= cp;
    return in != (bool)c->negated;
}

bool grammar_sym_matches(const grammar *g, gsym sym, uint32_t cp)
{
    switch (sym.kind) {
    case GSYM_CHAR: return sym.arg == cp;
    case GSYM_CLASS: return class_has(g, &g->classes[sym.arg], cp);
    case GSYM_ANY: return true;
    default: return false;
    }
}

bool grammar_sym_meets(const grammar *g, gsym sym, uint32_t lo, uint32_t hi)
{
    if (sym.kind == GSYM_CHAR)
        return sym.arg >= lo && sym.arg <= hi;
    if (sym.kind == GSYM_ANY)
        return true;
    if (sym.kind != GSYM_CLASS)
        return false;
    const gclass *c = &g->classes[sym.arg];
    const grange *r = c->n_ranges ? g->ranges + c->first_range : NULL;
    for (uint32_t i = 0; i < c->n_ranges; i++) {
        if (!c->negated && r[i].lo <= hi && r[i].hi >= lo)
            return true;
        if (c->negated && r[i].lo <= lo && r[i].hi >= hi)
            return false; // one merged range covers all of [lo, hi]
    }
    return c->negated;
}
