// SPDX-License-Identifier: MIT
// The per-family pieces of chat output parsing: recognizing a model's tool-call format from
// its chat template (or its architecture and special tokens), the readers that turn one
// block of a family's call syntax into a name and a JSON object of arguments, and the strict
// JSON scanning they share. chat_output.c decides where blocks start and end in the stream.
#include <string.h>

#include "base/alloc.h"
#include "base/utf8.h"
#include "sampler/chat_output_internal.h"

enum { JSON_MAX_DEPTH = 128, CALL_NAME_MAX = 256 };

static bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

static size_t skip_blank(const char *s, size_t n, size_t i)
{
    while (i < n && is_blank(s[i]))
        i++;
    return i;
}

// ---- JSON ----

static chat_output_json_status scan_value(const char *s, size_t n, size_t *i, int depth);

// The UTF-16 unit of the escape \uXXXX at s[j].
static chat_output_json_status scan_escape_unit(const char *s, size_t n, size_t j, uint32_t *unit)
{
    *unit = 0;
    for (size_t k = 0; k < 6; k++) {
        if (j + k >= n)
            return CHAT_OUTPUT_JSON_INCOMPLETE;
        if (k < 2) {
            if (s[j + k] != "\\u"[k])
                return CHAT_OUTPUT_JSON_INVALID;
            continue;
        }
        int v = hex_digit_value(s[j + k]);
        if (v < 0)
            return CHAT_OUTPUT_JSON_INVALID;
        *unit = *unit << 4 | (uint32_t)v;
    }
    return CHAT_OUTPUT_JSON_COMPLETE;
}

// A string starting at s[*i] == '"'; control characters and bad escapes are invalid.
static chat_output_json_status scan_string(const char *s, size_t n, size_t *i)
{
    size_t j = *i + 1;
    while (j < n) {
        unsigned char c = (unsigned char)s[j];
        if (c == '"') {
            *i = j + 1;
            return CHAT_OUTPUT_JSON_COMPLETE;
        }
        if (c < 0x20)
            return CHAT_OUTPUT_JSON_INVALID;
        if (c != '\\') {
            j++;
            continue;
        }
        if (j + 1 >= n)
            return CHAT_OUTPUT_JSON_INCOMPLETE;
        char e = s[j + 1];
        if (e == 'u') {
            uint32_t unit;
            chat_output_json_status st = scan_escape_unit(s, n, j, &unit);
            if (st != CHAT_OUTPUT_JSON_COMPLETE)
                return st;
            j += 6;
            if (unit >= 0xdc00 && unit <= 0xdfff)
                return CHAT_OUTPUT_JSON_INVALID; // a low surrogate alone
            if (unit >= 0xd800 && unit <= 0xdbff) {
                // A high surrogate needs its low half next, as strict decoders insist.
                if ((st = scan_escape_unit(s, n, j, &unit)) != CHAT_OUTPUT_JSON_COMPLETE)
                    return st;
                if (unit < 0xdc00 || unit > 0xdfff)
                    return CHAT_OUTPUT_JSON_INVALID;
                j += 6;
            }
        } else if (strchr("\"\\/bfnrt", e) && e) {
            j += 2;
        } else {
            return CHAT_OUTPUT_JSON_INVALID;
        }
    }
    return CHAT_OUTPUT_JSON_INCOMPLETE;
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

// A number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?. Unless whole (the text is this
// number alone) it is incomplete when it runs to the end of the text: more digits could follow.
static chat_output_json_status scan_number(const char *s, size_t n, size_t *i, bool whole)
{
    size_t j = *i;
    if (s[j] == '-')
        j++;
    if (j >= n)
        return CHAT_OUTPUT_JSON_INCOMPLETE;
    if (s[j] == '0') {
        j++;
    } else if (is_digit(s[j])) {
        while (j < n && is_digit(s[j]))
            j++;
    } else {
        return CHAT_OUTPUT_JSON_INVALID;
    }
    if (j < n && s[j] == '.') {
        j++;
        if (j >= n)
            return CHAT_OUTPUT_JSON_INCOMPLETE;
        if (!is_digit(s[j]))
            return CHAT_OUTPUT_JSON_INVALID;
        while (j < n && is_digit(s[j]))
            j++;
    }
    if (j < n && (s[j] == 'e' || s[j] == 'E')) {
        j++;
        if (j < n && (s[j] == '+' || s[j] == '-'))
            j++;
        if (j >= n)
            return CHAT_OUTPUT_JSON_INCOMPLETE;
        if (!is_digit(s[j]))
            return CHAT_OUTPUT_JSON_INVALID;
        while (j < n && is_digit(s[j]))
            j++;
    }
    if (j >= n && !whole)
        return CHAT_OUTPUT_JSON_INCOMPLETE;
    *i = j;
    return CHAT_OUTPUT_JSON_COMPLETE;
}

static chat_output_json_status scan_literal(const char *s, size_t n, size_t *i, const char *word)
{
    size_t len = strlen(word);
    size_t have = n - *i < len ? n - *i : len;
    if (memcmp(s + *i, word, have) != 0)
        return CHAT_OUTPUT_JSON_INVALID;
    if (have < len)
        return CHAT_OUTPUT_JSON_INCOMPLETE;
    *i += len;
    return CHAT_OUTPUT_JSON_COMPLETE;
}

// The members or items of an object or array starting at s[*i] ('{' or '[').
static chat_output_json_status scan_container(const char *s, size_t n, size_t *i, int depth)
{
    bool object = s[*i] == '{';
    char close = object ? '}' : ']';
    size_t j = skip_blank(s, n, *i + 1);
    if (j >= n)
        return CHAT_OUTPUT_JSON_INCOMPLETE;
    if (s[j] == close) {
        *i = j + 1;
        return CHAT_OUTPUT_JSON_COMPLETE;
    }
    for (;;) {
        chat_output_json_status st;
        if (object) {
            if (s[j] != '"')
                return CHAT_OUTPUT_JSON_INVALID;
            if ((st = scan_string(s, n, &j)) != CHAT_OUTPUT_JSON_COMPLETE)
                return st;
            j = skip_blank(s, n, j);
            if (j >= n)
                return CHAT_OUTPUT_JSON_INCOMPLETE;
            if (s[j++] != ':')
                return CHAT_OUTPUT_JSON_INVALID;
        }
        if ((st = scan_value(s, n, &j, depth + 1)) != CHAT_OUTPUT_JSON_COMPLETE)
            return st;
        j = skip_blank(s, n, j);
        if (j >= n)
            return CHAT_OUTPUT_JSON_INCOMPLETE;
        if (s[j] == close) {
            *i = j + 1;
            return CHAT_OUTPUT_JSON_COMPLETE;
        }
        if (s[j] != ',')
            return CHAT_OUTPUT_JSON_INVALID;
        j = skip_blank(s, n, j + 1);
        if (j >= n)
            return CHAT_OUTPUT_JSON_INCOMPLETE;
    }
}

static chat_output_json_status scan_value(const char *s, size_t n, size_t *i, int depth)
{
    if (depth > JSON_MAX_DEPTH)
        return CHAT_OUTPUT_JSON_INVALID;
    *i = skip_blank(s, n, *i);
    if (*i >= n)
        return CHAT_OUTPUT_JSON_INCOMPLETE;
    switch (s[*i]) {
    case '{':
    case '[': return scan_container(s, n, i, depth);
    case '"': return scan_string(s, n, i);
    case 't': return scan_literal(s, n, i, "true");
    case 'f': return scan_literal(s, n, i, "false");
    case 'n': return scan_literal(s, n, i, "null");
    default:
        if (s[*i] == '-' || is_digit(s[*i]))
            return scan_number(s, n, i, false);
        return CHAT_OUTPUT_JSON_INVALID;
    }
}

chat_output_json_status chat_output_json_scan(const char *s, size_t n, size_t *end)
{
    size_t i = 0;
    chat_output_json_status st = scan_value(s, n, &i, 0);
    if (st == CHAT_OUTPUT_JSON_COMPLETE)
        *end = i;
    return st;
}

bool chat_output_json_is_value(const char *s, size_t n)
{
    while (n > 0 && is_blank(s[n - 1]))
        n--;
    size_t i = skip_blank(s, n, 0), end = 0;
    if (i < n && (s[i] == '-' || is_digit(s[i]))) // a number alone may run to the end
        return scan_number(s, n, &i, true) == CHAT_OUTPUT_JSON_COMPLETE && i == n;
    return chat_output_json_scan(s, n, &end) == CHAT_OUTPUT_JSON_COMPLETE && end == n;
}

bool chat_output_json_member(const char *s, size_t n, const char *key, size_t *start, size_t *len)
{
    size_t i = skip_blank(s, n, 0);
    if (i >= n || s[i] != '{')
        return false;
    size_t key_len = strlen(key);
    i = skip_blank(s, n, i + 1);
    while (i < n && s[i] == '"') {
        size_t k = i;
        if (scan_string(s, n, &i) != CHAT_OUTPUT_JSON_COMPLETE)
            return false;
        bool match = i - k - 2 == key_len && memcmp(s + k + 1, key, key_len) == 0;
        i = skip_blank(s, n, i);
        if (i >= n || s[i] != ':')
            return false;
        size_t v = skip_blank(s, n, i + 1);
        i = v;
        if (scan_value(s, n, &i, 1) != CHAT_OUTPUT_JSON_COMPLETE)
            return false;
        if (match) {
            *start = v;
            *len = i - v;
            return true;
        }
        i = skip_blank(s, n, i);
        if (i < n && s[i] == ',')
            i = skip_blank(s, n, i + 1);
    }
    return false;
}

int chat_output_json_append_string(garlic_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    if (garlic_buf_append(b, "\"", 1) != GARLIC_OK)
        return GARLIC_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[7] = {'\\', 0, 0, 0, 0, 0, 0};
        size_t len = 2;
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default:
            if (c >= 0x20) {
                esc[0] = (char)c;
                len = 1;
            } else {
                memcpy(esc + 1, "u00", 3);
                esc[4] = hex[c >> 4];
                esc[5] = hex[c & 15];
                len = 6;
            }
        }
        if (garlic_buf_append(b, esc, len) != GARLIC_OK)
            return GARLIC_ENOMEM;
    }
    return garlic_buf_append(b, "\"", 1);
}

size_t chat_output_json_tracker_feed(chat_output_json_tracker *t, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!t->started) {
            if (is_blank(c))
                continue;
            if (c != '{' && c != '[') {
                t->invalid = true;
                return i;
            }
            t->started = true;
            t->depth = 1;
            continue;
        }
        if (t->in_string) {
            if (t->escape)
                t->escape = false;
            else if (c == '\\')
                t->escape = true;
            else if (c == '"')
                t->in_string = false;
            continue;
        }
        if (c == '"') {
            t->in_string = true;
        } else if (c == '{' || c == '[') {
            t->depth++;
        } else if (c == '}' || c == ']') {
            if (--t->depth == 0) {
                t->closed = true;
                return i + 1;
            }
        }
    }
    return n;
}

// ---- The list of calls a block holds ----

static bool valid_name(const char *name, size_t len)
{
    if (len == 0 || len > CALL_NAME_MAX || !utf8_valid(name, len))
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)name[i] < 0x20 || name[i] == '"' || name[i] == '\\' || name[i] == 0x7f)
            return false;
    return true;
}

static bool is_object(const char *s, size_t n)
{
    size_t i = skip_blank(s, n, 0);
    return i < n && s[i] == '{' && chat_output_json_is_value(s, n);
}

int chat_output_calls_add(chat_output_calls *l, const char *name, size_t name_len, const char *args,
                          size_t args_len)
{
    while (args_len > 0 && is_blank(args[args_len - 1]))
        args_len--;
    size_t lead = skip_blank(args, args_len, 0);
    args += lead;
    args_len -= lead;
    if (!valid_name(name, name_len) || !is_object(args, args_len))
        return GARLIC_EFORMAT;
    if (garlic_grow(&l->items, &l->cap, l->n + 1, sizeof *l->items) != GARLIC_OK)
        return GARLIC_ENOMEM;
    struct chat_output_call_span *c = &l->items[l->n];
    c->name = l->text.len;
    c->name_len = name_len;
    if (garlic_buf_append(&l->text, name, name_len) != GARLIC_OK)
        return GARLIC_ENOMEM;
    c->args = l->text.len;
    c->args_len = args_len;
    if (garlic_buf_append(&l->text, args, args_len) != GARLIC_OK)
        return GARLIC_ENOMEM;
    l->n++;
    return GARLIC_OK;
}

void chat_output_calls_clear(chat_output_calls *l)
{
    garlic_buf_clear(&l->text);
    l->n = 0;
}

void chat_output_calls_deinit(chat_output_calls *l)
{
    garlic_buf_deinit(&l->text);
    garlic_free(l->items);
    *l = (chat_output_calls){0};
}

// ---- Readers ----

// Adds the call of one JSON object {"name": "...", "arguments"|"parameters": {...} or "{...}"}.
static int add_json_object_call(const char *s, size_t n, chat_output_calls *out)
{
    size_t ns, nl, as, al;
    if (!chat_output_json_member(s, n, "name", &ns, &nl) || s[ns] != '"')
        return GARLIC_EFORMAT;
    if (!chat_output_json_member(s, n, "arguments", &as, &al) &&
        !chat_output_json_member(s, n, "parameters", &as, &al))
        return GARLIC_EFORMAT;
    cJSON *name = cJSON_ParseWithLength(s + ns, nl);
    cJSON *args = s[as] == '"' ? cJSON_ParseWithLength(s + as, al) : NULL;
    int rc = GARLIC_EFORMAT;
    if (cJSON_IsString(name)) {
        const char *nm = name->valuestring;
        if (s[as] != '"')
            rc = chat_output_calls_add(out, nm, strlen(nm), s + as, al);
        else if (cJSON_IsString(args)) // arguments written as a string holding the object
            rc = chat_output_calls_add(out, nm, strlen(nm), args->valuestring,
                                       strlen(args->valuestring));
    }
    cJSON_Delete(name);
    cJSON_Delete(args);
    return rc;
}

int chat_output_read_json_call(const char *s, size_t n, chat_output_calls *out)
{
    if (!chat_output_json_is_value(s, n))
        return GARLIC_EFORMAT;
    return add_json_object_call(s, n, out);
}

// The bytes from s[*i] up to (not including) the next occurrence of mark; advances *i past the
// mark. False when there is none.
static bool take_until(const char *s, size_t n, size_t *i, const char *mark, const char **part,
                       size_t *part_len)
{
    const char *hit = memmem(s + *i, n - *i, mark, strlen(mark));
    if (!hit)
        return false;
    *part = s + *i;
    *part_len = (size_t)(hit - (s + *i));
    *i = (size_t)(hit - s) + strlen(mark);
    return true;
}

static bool has_prefix(const char *s, size_t n, size_t i, const char *prefix)
{
    size_t len = strlen(prefix);
    return n - i >= len && memcmp(s + i, prefix, len) == 0;
}

// The JSON Schema type of parameter param of function name in tools, or NULL when the
// schema does not say (or says several).
static const char *schema_type(const cJSON *tools, const char *name, size_t name_len,
                               const char *param, size_t param_len)
{
    const cJSON *tool;
    cJSON_ArrayForEach(tool, tools)
    {
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(tool, "function");
        if (!fn)
            fn = tool;
        const cJSON *fname = cJSON_GetObjectItemCaseSensitive(fn, "name");
        if (!cJSON_IsString(fname) || strlen(fname->valuestring) != name_len ||
            memcmp(fname->valuestring, name, name_len) != 0)
            continue;
        const cJSON *props = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(fn, "parameters"), "properties");
        const cJSON *prop;
        cJSON_ArrayForEach(prop, props)
        {
            if (prop->string && strlen(prop->string) == param_len &&
                memcmp(prop->string, param, param_len) == 0) {
                const cJSON *type = cJSON_GetObjectItemCaseSensitive(prop, "type");
                return cJSON_IsString(type) ? type->valuestring : NULL;
            }
        }
        return NULL;
    }
    return NULL;
}

// Whether value (trimmed) as a JSON literal suits type: NULL (no schema) takes any non-string
// JSON value; "string" none; others their own kind.
static bool value_is_literal(const char *v, size_t n, const char *type)
{
    if (n == 0 || v[0] == '"' || !chat_output_json_is_value(v, n))
        return false;
    if (!type)
        return true;
    if (!strcmp(type, "integer") || !strcmp(type, "number"))
        return v[0] == '-' || is_digit(v[0]);
    if (!strcmp(type, "boolean"))
        return v[0] == 't' || v[0] == 'f';
    if (!strcmp(type, "object"))
        return v[0] == '{';
    if (!strcmp(type, "array"))
        return v[0] == '[';
    if (!strcmp(type, "null"))
        return v[0] == 'n';
    return false;
}

// Appends one parameter's value: the text between <parameter=P> and </parameter> without the
// newline the format puts on each side, typed as described in chat_output_read_qwen3_coder.
static int append_param_value(garlic_buf *b, const char *v, size_t n, const char *type)
{
    if (n > 0 && v[0] == '\n')
        v++, n--;
    if (n > 0 && v[n - 1] == '\n')
        n--;
    size_t lead = skip_blank(v, n, 0);
    size_t end = n;
    while (end > lead && is_blank(v[end - 1]))
        end--;
    if (value_is_literal(v + lead, end - lead, type))
        return garlic_buf_append(b, v + lead, end - lead);
    if (type && !strcmp(type, "boolean") && end - lead == 4 && !strncasecmp(v + lead, "true", 4))
        return garlic_buf_append_str(b, "true");
    if (type && !strcmp(type, "boolean") && end - lead == 5 && !strncasecmp(v + lead, "false", 5))
        return garlic_buf_append_str(b, "false");
    return chat_output_json_append_string(b, v, n);
}

int chat_output_read_qwen3_coder(const char *s, size_t n, const cJSON *tools,
                                 chat_output_calls *out)
{
    size_t i = skip_blank(s, n, 0);
    const char *name, *part;
    size_t name_len, part_len;
    if (!has_prefix(s, n, i, "<function="))
        return GARLIC_EFORMAT;
    i += strlen("<function=");
    if (!take_until(s, n, &i, ">", &name, &name_len) || memchr(name, '<', name_len))
        return GARLIC_EFORMAT;
    garlic_buf args = {0};
    int rc = garlic_buf_append_str(&args, "{");
    for (bool first = true; rc == GARLIC_OK; first = false) {
        i = skip_blank(s, n, i);
        if (has_prefix(s, n, i, "</function>")) {
            i = skip_blank(s, n, i + strlen("</function>"));
            rc = i == n ? garlic_buf_append_str(&args, "}") : GARLIC_EFORMAT;
            break;
        }
        if (!has_prefix(s, n, i, "<parameter=")) {
            rc = GARLIC_EFORMAT;
            break;
        }
        i += strlen("<parameter=");
        if (!take_until(s, n, &i, ">", &part, &part_len) || part_len == 0 ||
            memchr(part, '<', part_len)) {
            rc = GARLIC_EFORMAT;
            break;
        }
        const char *value;
        size_t value_len;
        if (!take_until(s, n, &i, "</parameter>", &value, &value_len)) {
            rc = GARLIC_EFORMAT;
            break;
        }
        const char *type = schema_type(tools, name, name_len, part, part_len);
        if ((!first && garlic_buf_append_str(&args, ", ") != GARLIC_OK) ||
            chat_output_json_append_string(&args, part, part_len) != GARLIC_OK ||
            garlic_buf_append_str(&args, ": ") != GARLIC_OK ||
            append_param_value(&args, value, value_len, type) != GARLIC_OK)
            rc = GARLIC_ENOMEM;
    }
    if (rc == GARLIC_OK)
        rc = chat_output_calls_add(out, name, name_len, args.data, args.len);
    garlic_buf_deinit(&args);
    return rc;
}

int chat_output_read_mistral(const char *s, size_t n, chat_output_calls *out)
{
    size_t i = skip_blank(s, n, 0);
    if (i < n && s[i] == '[' && !has_prefix(s, n, i, "[ARGS]") &&
        !has_prefix(s, n, i, "[CALL_ID]")) {
        if (!chat_output_json_is_value(s + i, n - i))
            return GARLIC_EFORMAT;
        // The older form: a list of call objects, read in place so the arguments keep their
        // text.
        size_t j = skip_blank(s, n, i + 1), end = 0;
        if (j < n && s[j] == ']')
            return GARLIC_EFORMAT;
        for (;;) {
            if (chat_output_json_scan(s + j, n - j, &end) != CHAT_OUTPUT_JSON_COMPLETE)
                return GARLIC_EFORMAT;
            int rc = add_json_object_call(s + j, end, out);
            if (rc != GARLIC_OK)
                return rc;
            j = skip_blank(s, n, j + end);
            if (j >= n || s[j] != ',')
                return GARLIC_OK; // the scan above checked that the list closes here
            j = skip_blank(s, n, j + 1);
        }
    }
    const char *name, *args;
    size_t name_len, args_len, j = i;
    if (!take_until(s, n, &j, "[ARGS]", &name, &name_len))
        return GARLIC_EFORMAT;
    const char *id = memmem(name, name_len, "[CALL_ID]", strlen("[CALL_ID]"));
    if (id)
        name_len = (size_t)(id - name);
    while (name_len > 0 && is_blank(name[name_len - 1]))
        name_len--;
    args = s + j;
    args_len = n - j;
    return chat_output_calls_add(out, name, name_len, args, args_len);
}

static const char DEEPSEEK_SEP[] = "<｜tool▁sep｜>";

int chat_output_read_deepseek(const char *s, size_t n, chat_output_calls *out)
{
    const char *left;
    size_t left_len, i = 0;
    if (!take_until(s, n, &i, DEEPSEEK_SEP, &left, &left_len))
        return GARLIC_EFORMAT;
    size_t lead = skip_blank(left, left_len, 0);
    left += lead;
    left_len -= lead;
    while (left_len > 0 && is_blank(left[left_len - 1]))
        left_len--;
    if (left_len != strlen("function") || memcmp(left, "function", left_len) != 0) {
        // V3.1: the name before the separator, the object after it.
        return chat_output_calls_add(out, left, left_len, s + i, n - i);
    }
    // V3 and R1: the name on the separator's line, then a ```json fenced object.
    const char *name, *fence;
    size_t name_len, fence_len;
    if (!take_until(s, n, &i, "\n", &name, &name_len))
        return GARLIC_EFORMAT;
    while (name_len > 0 && is_blank(name[name_len - 1]))
        name_len--;
    i = skip_blank(s, n, i);
    if (!has_prefix(s, n, i, "```"))
        return GARLIC_EFORMAT;
    i += 3;
    if (has_prefix(s, n, i, "json"))
        i += 4;
    if (!take_until(s, n, &i, "```", &fence, &fence_len) || skip_blank(s, n, i) != n)
        return GARLIC_EFORMAT;
    return chat_output_calls_add(out, name, name_len, fence, fence_len);
}

static bool is_ident(char c)
{
    return c == '_' || is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

int chat_output_read_python_call(const char *s, size_t n, chat_output_calls *out)
{
    size_t i = skip_blank(s, n, 0), start = i;
    while (i < n && is_ident(s[i]))
        i++;
    size_t name_len = i - start;
    if (name_len == 0 || !has_prefix(s, n, i, ".call("))
        return GARLIC_EFORMAT;
    i += strlen(".call(");
    garlic_buf args = {0};
    int rc = garlic_buf_append_str(&args, "{");
    for (bool first = true; rc == GARLIC_OK; first = false) {
        i = skip_blank(s, n, i);
        if (i < n && s[i] == ')') {
            rc = skip_blank(s, n, i + 1) == n ? garlic_buf_append_str(&args, "}") : GARLIC_EFORMAT;
            break;
        }
        if (!first && (i >= n || s[i++] != ',')) {
            rc = GARLIC_EFORMAT;
            break;
        }
        size_t k = i = skip_blank(s, n, i);
        while (i < n && is_ident(s[i]))
            i++;
        size_t key_len = i - k, v;
        i = skip_blank(s, n, i);
        if (key_len == 0 || i >= n || s[i++] != '=') {
            rc = GARLIC_EFORMAT;
            break;
        }
        v = i = skip_blank(s, n, i);
        // A value is a JSON literal (strings in double quotes), as the template writes them.
        size_t end = 0;
        if (chat_output_json_scan(s + v, n - v, &end) != CHAT_OUTPUT_JSON_COMPLETE) {
            rc = GARLIC_EFORMAT;
            break;
        }
        i = v + end;
        if ((!first && garlic_buf_append_str(&args, ", ") != GARLIC_OK) ||
            chat_output_json_append_string(&args, s + k, key_len) != GARLIC_OK ||
            garlic_buf_append_str(&args, ": ") != GARLIC_OK ||
            garlic_buf_append(&args, s + v, end) != GARLIC_OK)
            rc = GARLIC_ENOMEM;
    }
    if (rc == GARLIC_OK)
        rc = chat_output_calls_add(out, s + start, name_len, args.data, args.len);
    garlic_buf_deinit(&args);
    return rc;
}

// ---- Detection ----

static const char *const format_names[CHAT_OUTPUT_FORMAT_COUNT] = {
    [CHAT_OUTPUT_FORMAT_NONE] = "none",
    [CHAT_OUTPUT_FORMAT_HERMES] = "hermes",
    [CHAT_OUTPUT_FORMAT_QWEN3_CODER] = "qwen3-coder",
    [CHAT_OUTPUT_FORMAT_LLAMA3] = "llama3",
    [CHAT_OUTPUT_FORMAT_MISTRAL] = "mistral",
    [CHAT_OUTPUT_FORMAT_HARMONY] = "harmony",
    [CHAT_OUTPUT_FORMAT_DEEPSEEK] = "deepseek",
};

const char *chat_output_format_name(chat_output_format format)
{
    if ((unsigned)format >= CHAT_OUTPUT_FORMAT_COUNT)
        return "unknown";
    return format_names[format];
}

int chat_output_format_parse(const char *name, chat_output_format *out, garlic_error *err)
{
    for (int f = 0; f < CHAT_OUTPUT_FORMAT_COUNT; f++) {
        if (name && !strcmp(name, format_names[f])) {
            *out = (chat_output_format)f;
            return GARLIC_OK;
        }
    }
    return garlic_error_set(err, GARLIC_EINVAL, "chat output: unknown tool-call format '%s'",
                            name ? name : "(null)");
}

static bool contains(const char *s, size_t n, const char *needle)
{
    return s && memmem(s, n, needle, strlen(needle)) != NULL;
}

// The format a template's source shows. Unsupported families that borrow one of these
// markers (GLM's <arg_key>, Kimi's sections) are checked first and read as NONE.
static chat_output_format format_from_template(const char *t, size_t n)
{
    if (contains(t, n, "<arg_key>") || contains(t, n, "<|tool_calls_section_begin|>"))
        return CHAT_OUTPUT_FORMAT_NONE;
    if (contains(t, n, "<|channel|>") && contains(t, n, "<|message|>"))
        return CHAT_OUTPUT_FORMAT_HARMONY;
    if (contains(t, n, "<｜tool▁call▁begin｜>") || contains(t, n, "<｜tool▁calls▁begin｜>"))
        return CHAT_OUTPUT_FORMAT_DEEPSEEK;
    if (contains(t, n, "<tool_call>") && contains(t, n, "<function="))
        return CHAT_OUTPUT_FORMAT_QWEN3_CODER;
    if (contains(t, n, "<tool_call>"))
        return CHAT_OUTPUT_FORMAT_HERMES;
    if (contains(t, n, "[TOOL_CALLS]"))
        return CHAT_OUTPUT_FORMAT_MISTRAL;
    if (contains(t, n, "<|python_tag|>") ||
        (contains(t, n, "<|start_header_id|>") && contains(t, n, "\"parameters\"")))
        return CHAT_OUTPUT_FORMAT_LLAMA3;
    return CHAT_OUTPUT_FORMAT_NONE;
}

static bool has_token(const char *const *tokens, size_t n, const char *token)
{
    for (size_t i = 0; tokens && i < n; i++)
        if (tokens[i] && !strcmp(tokens[i], token))
            return true;
    return false;
}

chat_output_detection chat_output_detect(const char *template_source, size_t template_len,
                                         const char *architecture, const char *const *tokens,
                                         size_t n_tokens)
{
    chat_output_detection d = {CHAT_OUTPUT_FORMAT_NONE, false};
    if (template_source) {
        d.format = format_from_template(template_source, template_len);
        d.reasoning = d.format == CHAT_OUTPUT_FORMAT_HARMONY ||
            contains(template_source, template_len, "<think>") ||
            contains(template_source, template_len, "</think>");
        return d;
    }
    const char *arch = architecture ? architecture : "";
    if (!strcmp(arch, "gpt-oss") || has_token(tokens, n_tokens, "<|channel|>"))
        d.format = CHAT_OUTPUT_FORMAT_HARMONY;
    else if (has_token(tokens, n_tokens, "<｜tool▁call▁begin｜>"))
        d.format = CHAT_OUTPUT_FORMAT_DEEPSEEK;
    else if (has_token(tokens, n_tokens, "[TOOL_CALLS]"))
        d.format = CHAT_OUTPUT_FORMAT_MISTRAL;
    else if (has_token(tokens, n_tokens, "<|python_tag|>"))
        d.format = CHAT_OUTPUT_FORMAT_LLAMA3;
    else if (has_token(tokens, n_tokens, "<tool_call>"))
        d.format = CHAT_OUTPUT_FORMAT_HERMES;
    d.reasoning = d.format == CHAT_OUTPUT_FORMAT_HARMONY || has_token(tokens, n_tokens, "<think>");
    return d;
}

bool chat_output_prompt_opens_reasoning(const char *prompt, size_t len)
{
    while (len > 0 && is_blank(prompt[len - 1]))
        len--;
    static const char open[] = "<think>";
    return len >= strlen(open) && memcmp(prompt + len - strlen(open), open, strlen(open)) == 0;
}
