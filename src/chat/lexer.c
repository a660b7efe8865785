// SPDX-License-Identifier: MIT
// The template lexer. It normalizes line endings as Jinja2 does (every line break becomes
// "\n" and one trailing newline is dropped), then cuts the source into text and tags while
// applying the whitespace rules transformers configures: trim_blocks (the newline after a
// block or comment tag goes), lstrip_blocks (indentation before one goes), and the explicit
// {%- -%} / {%+ +%} controls. Inside tags it produces names, literals and operators.
#include <stdlib.h>
#include <string.h>

#include "base/utf8.h"
#include "chat/internal.h"

typedef struct lexer {
    chat_arena *arena;
    const char *name;
    const char *src, *end, *p;
    chat_token_list *out;
    garlic_error *err;
    bool line_starting; // the last tag's match ended at the start of a line
    const char *pos_at; // position cache: line and column of pos_at
    uint32_t pos_line, pos_col;
} lexer;

static bool is_space(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\v' || ch == '\f';
}

// Line and column (in code points) of at; tokens come in order, so this resumes from the
// last answer instead of rescanning the source.
static void position(lexer *lx, const char *at, uint32_t *line, uint32_t *col)
{
    uint32_t l = 1, c = 1;
    const char *q = lx->src;
    if (lx->pos_at && lx->pos_at <= at) {
        q = lx->pos_at;
        l = lx->pos_line;
        c = lx->pos_col;
    }
    for (; q < at; q++) {
        if (*q == '\n') {
            l++;
            c = 1;
        } else if (((unsigned char)*q & 0xc0) != 0x80) {
            c++;
        }
    }
    lx->pos_at = at;
    lx->pos_line = l;
    lx->pos_col = c;
    *line = l;
    *col = c;
}

static int lex_error(lexer *lx, const char *at, const char *what)
{
    uint32_t line, col;
    position(lx, at, &line, &col);
    return garlic_error_set(lx->err, GARLIC_EFORMAT, "%s:%u:%u: %s", lx->name, line, col, what);
}

// Appends a token whose position is that of at.
static int emit(lexer *lx, chat_token_kind kind, const char *at, const char *str, size_t len)
{
    chat_token_list *l = lx->out;
    if (l->n == l->cap &&
        chat_arena_grow(lx->arena, &l->items, &l->cap, l->n, l->n + 1, sizeof *l->items) !=
            GARLIC_OK)
        return garlic_error_set(lx->err, GARLIC_ENOMEM, "%s: out of memory", lx->name);
    chat_token *t = &l->items[l->n++];
    memset(t, 0, sizeof *t);
    t->kind = kind;
    t->str = str;
    t->len = len;
    position(lx, at, &t->line, &t->col);
    return GARLIC_OK;
}

// Emits the text before a tag after the tag's left-side whitespace rule: '-' strips all
// trailing whitespace; otherwise, for block and comment tags without '+', indentation
// alone on the tag's line goes (lstrip_blocks).
static int emit_text(lexer *lx, const char *text, size_t len, char sign, bool is_var)
{
    if (sign == '-') {
        while (len && is_space(text[len - 1]))
            len--;
    } else if (sign != '+' && !is_var && len) {
        size_t line_pos = len;
        while (line_pos && text[line_pos - 1] != '\n')
            line_pos--;
        bool blank = line_pos < len;
        for (size_t i = line_pos; i < len && blank; i++)
            blank = text[i] == ' ' || text[i] == '\t';
        if (blank && (line_pos > 0 || lx->line_starting))
            len = line_pos;
    }
    return len ? emit(lx, TOK_TEXT, text, text, len) : GARLIC_OK;
}

// Consumes the right-side whitespace rule of a tag that ended just before lx->p.
static void after_tag(lexer *lx, char sign, bool trim)
{
    if (sign == '-') {
        while (lx->p < lx->end && is_space(*lx->p))
            lx->p++;
    } else if (sign != '+' && trim && lx->p < lx->end && *lx->p == '\n') {
        lx->p++;
    }
    lx->line_starting = lx->p > lx->src && lx->p[-1] == '\n';
}

static int lex_comment(lexer *lx, const char *tag)
{
    const char *q = lx->p;
    while (q + 1 < lx->end && !(q[0] == '#' && q[1] == '}'))
        q++;
    if (q + 1 >= lx->end)
        return lex_error(lx, tag, "unterminated comment: '{#' without '#}'");
    char sign = q > lx->p && (q[-1] == '-' || q[-1] == '+') ? q[-1] : 0;
    lx->p = q + 2;
    after_tag(lx, sign, true);
    return GARLIC_OK;
}

// Checks for "raw" right after "{%" (and its sign) and, if so, copies the body up to
// {% endraw %} as text.
static int lex_raw(lexer *lx, const char *tag, bool *was_raw)
{
    const char *q = lx->p;
    while (q < lx->end && is_space(*q))
        q++;
    *was_raw = lx->end - q > 3 && memcmp(q, "raw", 3) == 0 &&
        !(q[3] == '_' || (q[3] >= 'a' && q[3] <= 'z'));
    if (!*was_raw)
        return GARLIC_OK;
    q += 3;
    while (q < lx->end && is_space(*q))
        q++;
    char sign = *q == '-' ? '-' : 0;
    if (sign)
        q++;
    if (lx->end - q < 2 || q[0] != '%' || q[1] != '}')
        return lex_error(lx, tag, "expected '%}' after 'raw'");
    lx->p = q + 2;
    after_tag(lx, sign, false);
    for (const char *s = lx->p; s + 1 < lx->end; s++) {
        if (s[0] != '{' || s[1] != '%')
            continue;
        const char *k = s + 2;
        char open_sign = *k == '-' || *k == '+' ? *k++ : 0;
        while (k < lx->end && is_space(*k))
            k++;
        if (lx->end - k < 6 || memcmp(k, "endraw", 6) != 0)
            continue;
        k += 6;
        while (k < lx->end && is_space(*k))
            k++;
        char close_sign = *k == '-' || *k == '+' ? *k++ : 0;
        if (lx->end - k < 2 || k[0] != '%' || k[1] != '}')
            continue;
        int rc = emit_text(lx, lx->p, (size_t)(s - lx->p), open_sign, false);
        lx->p = k + 2;
        after_tag(lx, close_sign, true);
        return rc;
    }
    return lex_error(lx, tag, "unterminated raw block: '{% raw %}' without '{% endraw %}'");
}

// Decodes one Python escape (after the backslash) at s[0..n); returns bytes consumed
// and writes the result to o (*wrote bytes). Unknown escapes keep their backslash.
static size_t decode_escape(const char *s, size_t n, char *o, size_t *wrote)
{
    static const char from[] = "nrt\\'\"abfv0\n";
    static const char to[] = "\n\r\t\\'\"\a\b\f\v\0";
    const char *hit = n ? memchr(from, s[0], sizeof from - 1) : NULL;
    if (hit && s[0] == '\n') {
        *wrote = 0; // backslash-newline continues the line
        return 1;
    }
    if (hit) {
        o[0] = to[hit - from];
        *wrote = 1;
        return 1;
    }
    size_t digits = n && s[0] == 'x' ? 2 : n && s[0] == 'u' ? 4 : n && s[0] == 'U' ? 8 : 0;
    uint32_t cp = 0;
    bool ok = digits && n > digits;
    for (size_t i = 1; ok && i <= digits; i++) {
        char ch = s[i];
        int d = ch >= '0' && ch <= '9' ? ch - '0'
            : ch >= 'a' && ch <= 'f'   ? ch - 'a' + 10
            : ch >= 'A' && ch <= 'F'   ? ch - 'A' + 10
                                       : -1;
        ok = d >= 0;
        cp = cp * 16 + (uint32_t)(d < 0 ? 0 : d);
    }
    if (ok && cp <= 0x10ffff) {
        *wrote = utf8_encode(cp, o);
        return digits + 1;
    }
    o[0] = '\\';
    *wrote = 1;
    return 0;
}

// Lexes a quoted string literal, decoding Python escapes into the arena.
static int lex_string(lexer *lx)
{
    const char *start = lx->p;
    char quote = *lx->p++;
    const char *q = lx->p;
    while (q < lx->end && *q != quote)
        q += *q == '\\' && q + 1 < lx->end ? 2 : 1;
    if (q >= lx->end)
        return lex_error(lx, start, "unterminated string literal");
    char *s = chat_arena_alloc(lx->arena, (size_t)(q - lx->p) * 2 + 1);
    if (!s)
        return garlic_error_set(lx->err, GARLIC_ENOMEM, "%s: out of memory", lx->name);
    size_t n = 0;
    while (lx->p < q) {
        if (*lx->p != '\\') {
            s[n++] = *lx->p++;
            continue;
        }
        lx->p++;
        size_t wrote;
        lx->p += decode_escape(lx->p, (size_t)(q - lx->p), s + n, &wrote);
        n += wrote;
    }
    lx->p = q + 1;
    return emit(lx, TOK_STRING, start, s, n);
}

// Lexes an integer or a float (digits may be separated by underscores).
static int lex_number(lexer *lx)
{
    const char *start = lx->p, *q = lx->p;
    bool is_float = false;
    char tmp[64];
    size_t n = 0;
    while (q < lx->end && n < sizeof tmp - 1) {
        char ch = *q;
        bool exp_sign = (ch == '+' || ch == '-') && n && (tmp[n - 1] == 'e' || tmp[n - 1] == 'E');
        bool dot = ch == '.' && !is_float && q + 1 < lx->end && q[1] >= '0' && q[1] <= '9';
        bool exp = (ch == 'e' || ch == 'E') && q + 1 < lx->end &&
            ((q[1] >= '0' && q[1] <= '9') || q[1] == '+' || q[1] == '-');
        if (!((ch >= '0' && ch <= '9') || ch == '_' || dot || exp || exp_sign))
            break;
        is_float |= dot || exp;
        if (ch != '_')
            tmp[n++] = ch;
        q++;
    }
    tmp[n] = '\0';
    lx->p = q;
    int rc = emit(lx, is_float ? TOK_FLOAT : TOK_INT, start, start, (size_t)(q - start));
    if (rc)
        return rc;
    chat_token *t = &lx->out->items[lx->out->n - 1];
    if (is_float)
        t->f = strtod(tmp, NULL);
    else
        t->i = strtoll(tmp, NULL, 10);
    return GARLIC_OK;
}

static const char *const operators[] = {"//", "**", "==", "!=", "<=", ">=", "+", "-", "/",
                                        "*",  "%",  "~",  "[",  "]",  "(",  ")", "{", "}",
                                        "<",  ">",  "=",  ".",  ":",  "|",  ",", ";"};

// Lexes the inside of a {{ }} or {% %} tag up to its end, which is only recognized
// outside brackets (so "{{ {'a': {'b': 1}} }}" works).
static int lex_tag(lexer *lx, const char *tag, bool is_var)
{
    int depth = 0;
    const char close = is_var ? '}' : '%';
    for (;;) {
        while (lx->p < lx->end && is_space(*lx->p))
            lx->p++;
        if (lx->p >= lx->end)
            return lex_error(lx, tag, is_var ? "unterminated '{{'" : "unterminated '{%'");
        const char *q = lx->p;
        char sign = (*q == '-' || *q == '+') ? *q : 0;
        const char *c = sign ? q + 1 : q;
        if (depth == 0 && lx->end - c >= 2 && c[0] == close && c[1] == '}' &&
            !(is_var && sign == '+')) {
            lx->p = c + 2;
            int rc = emit(lx, is_var ? TOK_VAR_END : TOK_BLOCK_END, q, q, (size_t)(lx->p - q));
            after_tag(lx, sign, !is_var);
            return rc;
        }
        int rc;
        char ch = *q;
        if (ch == '\'' || ch == '"') {
            rc = lex_string(lx);
        } else if (ch >= '0' && ch <= '9') {
            rc = lex_number(lx);
        } else if (ch == '_' || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')) {
            while (lx->p < lx->end &&
                   (*lx->p == '_' || (*lx->p >= 'a' && *lx->p <= 'z') ||
                    (*lx->p >= 'A' && *lx->p <= 'Z') || (*lx->p >= '0' && *lx->p <= '9')))
                lx->p++;
            rc = emit(lx, TOK_NAME, q, q, (size_t)(lx->p - q));
        } else {
            size_t i = 0, count = sizeof operators / sizeof operators[0];
            size_t left = (size_t)(lx->end - q);
            while (i < count &&
                   !(strlen(operators[i]) <= left &&
                     memcmp(q, operators[i], strlen(operators[i])) == 0))
                i++;
            if (i == count)
                return lex_error(lx, q, "unexpected character in tag");
            depth += (ch == '(' || ch == '[' || ch == '{') - (ch == ')' || ch == ']' || ch == '}');
            if (depth < 0)
                depth = 0;
            lx->p += strlen(operators[i]);
            rc = emit(lx, TOK_OP, q, operators[i], strlen(operators[i]));
        }
        if (rc)
            return rc;
    }
}

// Finds the next "{{", "{%" or "{#" at or after p; end when there is none.
static const char *next_tag(const char *p, const char *end)
{
    for (; p + 1 < end; p++) {
        p = memchr(p, '{', (size_t)(end - p - 1));
        if (!p)
            return end;
        if (p[1] == '{' || p[1] == '%' || p[1] == '#')
            return p;
    }
    return end;
}

// The main loop: text up to the next tag, then the tag (comment, raw block or tokens).
static int lex_source(lexer *lx)
{
    lx->line_starting = true;
    while (lx->p < lx->end) {
        const char *tag = next_tag(lx->p, lx->end);
        if (tag == lx->end)
            return emit(lx, TOK_TEXT, lx->p, lx->p, (size_t)(lx->end - lx->p));
        char kind = tag[1];
        char sign = tag + 2 < lx->end && (tag[2] == '-' || tag[2] == '+') ? tag[2] : 0;
        int rc = emit_text(lx, lx->p, (size_t)(tag - lx->p), sign, kind == '{');
        if (rc)
            return rc;
        lx->p = tag + 2 + (sign != 0);
        bool was_raw = false;
        if (kind == '#')
            rc = lex_comment(lx, tag);
        else if (kind == '%' && (rc = lex_raw(lx, tag, &was_raw)) == GARLIC_OK && was_raw)
            rc = GARLIC_OK;
        else if ((rc = emit(lx, kind == '{' ? TOK_VAR_BEGIN : TOK_BLOCK_BEGIN, tag, tag, 2)) ==
                 GARLIC_OK)
            rc = lex_tag(lx, tag, kind == '{');
        if (rc)
            return rc;
    }
    return GARLIC_OK;
}

// Copies src with every line break ("\r\n", "\r", "\n" and the other breaks Python's
// splitlines knows) turned into "\n", minus one trailing newline (keep_trailing_newline=False).
static char *normalize(chat_arena *a, const char *src, size_t len, size_t *out_len)
{
    char *s = chat_arena_alloc(a, len + 1);
    if (!s)
        return NULL;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)src[i];
        if (ch == '\r') {
            if (i + 1 < len && src[i + 1] == '\n')
                i++;
            s[n++] = '\n';
        } else if (ch == '\v' || ch == '\f' || (ch >= 0x1c && ch <= 0x1e)) {
            s[n++] = '\n';
        } else if (ch == 0xc2 && i + 1 < len && (unsigned char)src[i + 1] == 0x85) {
            s[n++] = '\n';
            i++;
        } else if (ch == 0xe2 && i + 2 < len && (unsigned char)src[i + 1] == 0x80 &&
                   ((unsigned char)src[i + 2] == 0xa8 || (unsigned char)src[i + 2] == 0xa9)) {
            s[n++] = '\n';
            i += 2;
        } else {
            s[n++] = (char)ch;
        }
    }
    if (n && s[n - 1] == '\n')
        n--;
    s[n] = '\0';
    *out_len = n;
    return s;
}

// Normalizes src and lexes it into out, ending with TOK_EOF.
int chat_lex(chat_arena *a, const char *name, const char *src, size_t len, chat_token_list *out,
             garlic_error *err)
{
    size_t n;
    char *text = normalize(a, src, len, &n);
    if (!text)
        return garlic_error_set(err, GARLIC_ENOMEM, "%s: out of memory", name);
    lexer lx = {
        .arena = a, .name = name, .src = text, .end = text + n, .p = text, .out = out, .err = err};
    int rc = lex_source(&lx);
    if (rc == GARLIC_OK)
        rc = emit(&lx, TOK_EOF, lx.end, lx.end, 0);
    return rc;
}
