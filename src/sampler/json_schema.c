// SPDX-License-Identifier: MIT
// JSON Schema -> GBNF. Each subschema becomes a rule (s1, s2, ...) written into the output
// text, which ends with the primitive rules every schema grammar shares (value, object,
// array, string, number, integer, boolean, null and a bounded whitespace rule ws).
// Properties come in schema order, optional ones skippable, with a chain of rules that puts
// the commas right; $ref targets get one rule each, so recursion works through rules.
// Patterns are translated from a regex subset into rules over the JSON-encoded string body.
// Every keyword is either handled or refused by name with its JSON path; limits keep hostile
// schemas (deep nesting, huge enums, reference chains) from blowing up.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "sampler/grammar.h"

enum {
    SCHEMA_MAX_DEPTH = 64,             // nested subschemas
    SCHEMA_MAX_REFS = 1024,            // distinct $ref targets
    SCHEMA_MAX_ENUM = 4096,            // values in one enum
    SCHEMA_MAX_ITEMS = 1000,           // minItems and maxItems, minLength and maxLength
    SCHEMA_MAX_PROPERTIES = 1024,      // properties of one object
    SCHEMA_MAX_REGEX_NESTING = 64,     // groups inside a pattern
    SCHEMA_MAX_INT = 1000000000000000, // |minimum|, |maximum| for integers (10^15)
};

// The primitive rules; ws allows one space, or a newline and up to 32 spaces or tabs, so
// that formatted output is possible but whitespace cannot go on forever.
static const char PRIMITIVES[] =
    "ws ::= ( \" \" | \"\\n\" [ \\t]{0,32} )?\n"
    "value ::= object | array | string | number | boolean | null\n"
    "object ::= \"{\" ws ( string ws \":\" ws value ws ( \",\" ws string ws \":\" ws value ws )* )? "
    "\"}\"\n"
    "array ::= \"[\" ws ( value ws ( \",\" ws value ws )* )? \"]\"\n"
    "string ::= \"\\\"\" char* \"\\\"\"\n"
    "char ::= [^\"\\\\\\x00-\\x1F] | \"\\\\\" ( [\"\\\\/bfnrt] | \"u\" uhex )\n"
    "uhex ::= [1-9a-cA-CeEfF] hex{3} | \"0\" [1-9a-fA-F] hex{2} | \"00\" [1-9a-fA-F] hex | "
    "\"000\" [1-9a-fA-F] | [dD] [0-7] hex{2}\n"
    "hex ::= [0-9a-fA-F]\n"
    "plainchar ::= [^\"\\\\\\x00-\\x1F]\n"
    "number ::= integer ( \".\" [0-9]{1,16} )? ( [eE] [-+]? [0-9]{1,3} )?\n"
    "integer ::= \"-\"? ( \"0\" | [1-9] [0-9]{0,15} )\n"
    "boolean ::= \"true\" | \"false\"\n"
    "null ::= \"null\"\n";

// What string formats become (over the JSON-encoded body, which for these is plain ASCII).
static const struct {
    const char *name;
    const char *rule;
} FORMATS[] = {
    {"date",
     "[0-9]{4} \"-\" ( \"0\" [1-9] | \"1\" [0-2] ) \"-\" ( \"0\" [1-9] | [12] [0-9] | "
     "\"3\" [01] )"},
    {"time",
     "( [01] [0-9] | \"2\" [0-3] ) \":\" [0-5] [0-9] \":\" [0-5] [0-9] ( \".\" "
     "[0-9]{1,9} )? ( \"Z\" | [+-] ( [01] [0-9] | \"2\" [0-3] ) \":\" [0-5] [0-9] )"},
    {"date-time", "fmt-date \"T\" fmt-time"},
    {"uuid", "hex{8} \"-\" hex{4} \"-\" hex{4} \"-\" hex{4} \"-\" hex{12}"},
    {"email",
     "[a-zA-Z0-9._%+-]{1,64} \"@\" [a-zA-Z0-9-]{1,63} ( \".\" [a-zA-Z0-9-]{1,63} "
     "){1,8}"},
};
enum { N_FORMATS = sizeof FORMATS / sizeof FORMATS[0] };

typedef struct ref_entry {
    const cJSON *target;
    unsigned id;
} ref_entry;

typedef struct conv {
    garlic_buf *out;
    const cJSON *root;
    garlic_error *err;
    unsigned n_rules;
    int depth;
    ref_entry refs[SCHEMA_MAX_REFS];
    unsigned n_refs;
    bool formats_used[N_FORMATS];
} conv;

// A JSON path for messages, built on the stack as the walk descends.
typedef struct path {
    const struct path *up;
    const char *key; // property or keyword name, or NULL for an index
    int index;
} path;

static void path_format(const path *p, char *out, size_t cap)
{
    if (!p) {
        snprintf(out, cap, "$");
        return;
    }
    path_format(p->up, out, cap);
    size_t n = strlen(out);
    if (n >= cap - 1)
        return;
    if (p->key)
        snprintf(out + n, cap - n, ".%s", p->key);
    else
        snprintf(out + n, cap - n, "[%d]", p->index);
}

static int unsupported(conv *c, const path *at, const char *fmt, const char *what)
{
    char where[256];
    path_format(at, where, sizeof where);
    char msg[300];
    snprintf(msg, sizeof msg, fmt, what);
    return garlic_error_set(c->err, GARLIC_EUNSUPPORTED, "json schema: %s at %s is not supported",
                            msg, where);
}

static int invalid(conv *c, const path *at, const char *fmt, const char *what)
{
    char where[256];
    path_format(at, where, sizeof where);
    char msg[300];
    snprintf(msg, sizeof msg, fmt, what);
    return garlic_error_set(c->err, GARLIC_EINVAL, "json schema: %s at %s", msg, where);
}

static int put(conv *c, const char *s)
{
    if (c->out->len > GRAMMAR_MAX_TEXT)
        return garlic_error_set(c->err, GARLIC_EINVAL,
                                "json schema: the grammar grows past %d bytes", GRAMMAR_MAX_TEXT);
    if (garlic_buf_append_str(c->out, s) != 0)
        return garlic_error_set(c->err, GARLIC_ENOMEM, "json schema: out of memory");
    return GARLIC_OK;
}

static int putf(conv *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int putf(conv *c, const char *fmt, ...)
{
    if (c->out->len > GRAMMAR_MAX_TEXT)
        return garlic_error_set(c->err, GARLIC_EINVAL,
                                "json schema: the grammar grows past %d bytes", GRAMMAR_MAX_TEXT);
    va_list ap;
    va_start(ap, fmt);
    int rc = garlic_buf_vprintf(c->out, fmt, ap);
    va_end(ap);
    if (rc != 0)
        return garlic_error_set(c->err, GARLIC_ENOMEM, "json schema: out of memory");
    return GARLIC_OK;
}

// Writes bytes[0..n) as a GBNF string literal.
static int put_literal(conv *c, const char *bytes, size_t n)
{
    if (garlic_buf_reserve(c->out, n * 4 + 3) != 0)
        return garlic_error_set(c->err, GARLIC_ENOMEM, "json schema: out of memory");
    int rc = put(c, "\"");
    for (size_t i = 0; i < n && rc == 0; i++) {
        unsigned char b = (unsigned char)bytes[i];
        if (b == '"' || b == '\\')
            rc = putf(c, "\\%c", b);
        else if (b < 0x20 || b == 0x7F)
            rc = putf(c, "\\x%02X", b);
        else
            rc = putf(c, "%c", b);
    }
    return rc ? rc : put(c, "\"");
}

// Writes value as its compact JSON text in a literal.
static int put_json_literal(conv *c, const cJSON *value)
{
    char *text = cJSON_PrintUnformatted(value);
    if (!text)
        return garlic_error_set(c->err, GARLIC_ENOMEM, "json schema: out of memory");
    int rc = put_literal(c, text, strlen(text));
    cJSON_free(text);
    return rc;
}

static unsigned new_rule(conv *c) { return ++c->n_rules; }

static int gen(conv *c, const cJSON *schema, const path *at, unsigned *rule);

static bool is_annotation(const char *k)
{
    static const char *const names[] = {
        "title",    "description",      "$schema",        "$id",        "$comment", "default",
        "examples", "readOnly",         "writeOnly",      "deprecated", "$defs",    "definitions",
        "$anchor",  "contentMediaType", "contentEncoding"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(k, names[i]) == 0)
            return true;
    return false;
}

static bool is_keyword(const char *k)
{
    static const char *const names[] = {"type",
                                        "properties",
                                        "required",
                                        "additionalProperties",
                                        "items",
                                        "minItems",
                                        "maxItems",
                                        "enum",
                                        "const",
                                        "anyOf",
                                        "oneOf",
                                        "allOf",
                                        "$ref",
                                        "minLength",
                                        "maxLength",
                                        "pattern",
                                        "format",
                                        "minimum",
                                        "maximum",
                                        "exclusiveMinimum",
                                        "exclusiveMaximum",
                                        "uniqueItems"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(k, names[i]) == 0)
            return true;
    return is_annotation(k);
}

// Refuses every key of schema other than annotations and the listed ones (NULL-terminated).
static int only(conv *c, const cJSON *schema, const path *at, const char *owner,
                const char *const *allowed)
{
    for (const cJSON *k = schema->child; k; k = k->next) {
        bool ok = is_annotation(k->string);
        for (size_t i = 0; allowed[i] && !ok; i++)
            ok = strcmp(k->string, allowed[i]) == 0;
        if (!ok) {
            char what[200];
            snprintf(what, sizeof what, "'%.80s' next to '%.80s'", k->string, owner);
            return unsupported(c, at, "%s", what);
        }
    }
    return GARLIC_OK;
}

// Resolves a local reference "#", "#/a/b" (JSON pointer with ~0 and ~1) to its target.
static const cJSON *resolve(conv *c, const char *ref)
{
    if (ref[0] != '#')
        return NULL;
    const cJSON *node = c->root;
    const char *p = ref + 1;
    while (*p) {
        if (*p != '/' || !node)
            return NULL;
        p++;
        char key[256];
        size_t n = 0;
        while (*p && *p != '/') {
            char ch = *p++;
            if (ch == '~' && (*p == '0' || *p == '1'))
                ch = *p++ == '0' ? '~' : '/';
            if (n + 1 >= sizeof key)
                return NULL;
            key[n++] = ch;
        }
        key[n] = '\0';
        if (cJSON_IsArray(node)) {
            char *end;
            long i = strtol(key, &end, 10);
            node = *end || n == 0 ? NULL : cJSON_GetArrayItem(node, (int)i);
        } else {
            node = cJSON_GetObjectItemCaseSensitive(node, key);
        }
    }
    return node;
}

static int gen_ref(conv *c, const cJSON *schema, const path *at, unsigned *rule)
{
    static const char *const allowed[] = {"$ref", NULL};
    int rc = only(c, schema, at, "$ref", allowed);
    if (rc != 0)
        return rc;
    const cJSON *ref = cJSON_GetObjectItemCaseSensitive(schema, "$ref");
    if (!cJSON_IsString(ref))
        return invalid(c, at, "%s", "'$ref' is not a string");
    const cJSON *target = resolve(c, ref->valuestring);
    if (!target) {
        char what[200];
        snprintf(what, sizeof what, "'$ref' '%.100s' (only local references that resolve)",
                 ref->valuestring);
        return unsupported(c, at, "%s", what);
    }
    for (unsigned i = 0; i < c->n_refs; i++)
        if (c->refs[i].target == target) {
            *rule = c->refs[i].id;
            return GARLIC_OK;
        }
    if (c->n_refs >= SCHEMA_MAX_REFS)
        return invalid(c, at, "%s", "more than 1024 distinct '$ref' targets");
    unsigned id = new_rule(c);
    c->refs[c->n_refs++] = (ref_entry){target, id};
    path sub = {at, "$ref", 0};
    unsigned body;
    if ((rc = gen(c, target, &sub, &body)) != 0)
        return rc;
    *rule = id;
    return putf(c, "s%u ::= s%u\n", id, body);
}

static int gen_enum(conv *c, const cJSON *schema, const path *at, unsigned *rule)
{
    static const char *const allowed[] = {"enum", "const", "type", NULL};
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(schema, "enum");
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(schema, "const");
    int rc = only(c, schema, at, e ? "enum" : "const", allowed);
    if (rc != 0)
        return rc;
    if (e && k)
        return unsupported(c, at, "%s", "'enum' together with 'const'");
    if (e && (!cJSON_IsArray(e) || cJSON_GetArraySize(e) == 0))
        return invalid(c, at, "%s", "'enum' is not a non-empty array");
    if (e && cJSON_GetArraySize(e) > SCHEMA_MAX_ENUM)
        return invalid(c, at, "%s", "'enum' has more than 4096 values");
    *rule = new_rule(c);
    if ((rc = putf(c, "s%u ::= ", *rule)) != 0)
        return rc;
    if (k)
        rc = put_json_literal(c, k);
    for (const cJSON *v = e ? e->child : NULL; v && rc == 0; v = v->next) {
        if (v != e->child)
            rc = put(c, " | ");
        if (rc == 0)
            rc = put_json_literal(c, v);
    }
    return rc ? rc : put(c, "\n");
}

// Reads a non-negative integer keyword (absent: def) bounded by SCHEMA_MAX_ITEMS.
static int count_keyword(conv *c, const cJSON *schema, const char *name, const path *at, long def,
                         long *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(schema, name);
    *out = def;
    if (!v)
        return GARLIC_OK;
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble != floor(v->valuedouble))
        return invalid(c, at, "'%s' is not a non-negative integer", name);
    if (v->valuedouble > SCHEMA_MAX_ITEMS)
        return invalid(c, at, "'%s' is over 1000", name);
    *out = (long)v->valuedouble;
    return GARLIC_OK;
}

// ---- objects ----

// One property of an object rule under construction.
typedef struct prop {
    const char *name;
    unsigned value; // its value rule
    bool required;
} prop;

// Decodes the UTF-8 name s (valid: cJSON keeps what it read) into at most cap code points;
// returns how many, or cap + 1 when it is longer.
static size_t name_points(const char *s, uint32_t *out, size_t cap)
{
    size_t n = 0;
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        uint32_t cp = *p++;
        int extra = cp >= 0xF0 ? 3 : cp >= 0xE0 ? 2 : cp >= 0xC0 ? 1 : 0;
        cp &= extra ? 0x3Fu >> extra : 0x7Fu;
        for (int i = 0; i < extra && (*p & 0xC0) == 0x80; i++)
            cp = (cp << 6) | (*p++ & 0x3Fu);
        if (n >= cap)
            return cap + 1;
        out[n++] = cp;
    }
    return n;
}

// Writes a rule for keys other than the names of props[0..n): plain-character keys (no
// escapes) that do not spell any of the names, through a trie of the names' code points: a
// node's rule may stop (unless its prefix is a name), take a child's character and go on,
// or take any other character and then anything. Returns the root's rule id in *rule.
static int gen_other_key(conv *c, const prop *props, size_t n, unsigned *rule)
{
    enum { MAX_KEY = 256 };
    // A node is a prefix, named by (a name having it, its length in code points).
    typedef struct knode {
        uint32_t *cps; // the name's code points
        size_t len;
    } knode;
    size_t cap = 1;
    uint32_t *all = NULL;
    size_t *lens = garlic_calloc(n + 1, sizeof *lens);
    if (lens)
        all = garlic_calloc((n + 1) * MAX_KEY, sizeof *all);
    for (size_t i = 0; i < n && all; i++) {
        lens[i] = name_points(props[i].name, all + i * MAX_KEY, MAX_KEY);
        if (lens[i] > MAX_KEY)
            lens[i] = SIZE_MAX; // too long to build into the trie: not excluded
        else
            cap += lens[i];
    }
    knode *nodes = all ? garlic_malloc(cap * sizeof *nodes) : NULL;
    if (!nodes) {
        garlic_free(lens);
        garlic_free(all);
        return garlic_error_set(c->err, GARLIC_ENOMEM, "json schema: out of memory");
    }
    size_t n_nodes = 0;
    nodes[n_nodes++] = (knode){all, 0};
    for (size_t i = 0; i < n; i++) {
        uint32_t *nm = all + i * MAX_KEY;
        for (size_t len = 1; lens[i] != SIZE_MAX && len <= lens[i]; len++) {
            bool seen = false;
            for (size_t j = 0; j < n_nodes && !seen; j++)
                seen = nodes[j].len == len && memcmp(nodes[j].cps, nm, len * sizeof *nm) == 0;
            if (!seen)
                nodes[n_nodes++] = (knode){nm, len};
        }
    }
    unsigned base = c->n_rules + 1;
    c->n_rules += (unsigned)n_nodes;
    int rc = GARLIC_OK;
    for (size_t j = 0; j < n_nodes && rc == 0; j++) {
        const knode *u = &nodes[j];
        bool is_name = false;
        for (size_t i = 0; i < n; i++)
            is_name |= lens[i] == u->len && memcmp(all + i * MAX_KEY, u->cps, u->len * 4) == 0;
        rc = putf(c, "s%u ::= %s", base + (unsigned)j, is_name ? "" : "\"\" | ");
        garlic_buf cls = {0};
        for (size_t k = 0; k < n_nodes && rc == 0; k++) {
            const knode *w = &nodes[k];
            if (w->len != u->len + 1 || memcmp(w->cps, u->cps, u->len * 4) != 0)
                continue;
            uint32_t ch = w->cps[u->len];
            rc = putf(c, "\"\\U%08X\" s%u | ", ch, base + (unsigned)k);
            if (rc == 0 && garlic_buf_printf(&cls, "\\U%08X", ch) != 0)
                rc = garlic_error_set(c->err, GARLIC_ENOMEM, "json schema: out of memory");
        }
        if (rc == 0)
            rc = putf(c, "[^\"\\\\\\x00-\\x1F%s] plainchar*\n", cls.data ? cls.data : "");
        garlic_buf_deinit(&cls);
    }
    garlic_free(nodes);
    garlic_free(lens);
    garlic_free(all);
    *rule = base;
    return rc;
}

// Names are compared byte by byte; a name made only of plain characters (no quote,
// backslash or control) is what gen_other_key must exclude.
static bool plain_name(const char *s)
{
    for (; *s; s++)
        if (*s == '"' || *s == '\\' || (unsigned char)*s < 0x20)
            return false;
    return true;
}

// Fills list (room for every property and required name) with the properties of an object
// schema in schema order, each with its value rule, then the required names that have no
// schema (they take any value); *m gets the count.
static int object_props(conv *c, const cJSON *props, const cJSON *req, const path *at, prop *list,
                        size_t *m)
{
    int rc = GARLIC_OK;
    path sub_props = {at, "properties", 0};
    *m = 0;
    for (const cJSON *p = props ? props->child : NULL; p && rc == 0; p = p->next) {
        bool dup = false;
        for (size_t i = 0; i < *m; i++)
            dup |= strcmp(list[i].name, p->string) == 0;
        if (dup)
            continue;
        path sub = {&sub_props, p->string, 0};
        list[*m].name = p->string;
        for (const cJSON *r = req ? req->child : NULL; r; r = r->next)
            list[*m].required |= strcmp(r->valuestring, p->string) == 0;
        rc = gen(c, p, &sub, &list[*m].value);
        ++*m;
    }
    for (const cJSON *r = req ? req->child : NULL; r && rc == 0; r = r->next) {
        bool known = false;
        for (size_t i = 0; i < *m; i++)
            known |= strcmp(list[i].name, r->valuestring) == 0;
        if (known)
            continue;
        list[*m].name = r->valuestring;
        list[*m].required = true;
        list[*m].value = new_rule(c);
        rc = putf(c, "s%u ::= value\n", list[*m].value);
        ++*m;
    }
    return rc;
}

// Writes the rules of an object's body for list[0..m) and returns the first one in *first.
// Properties come in list order and optional ones may be skipped, so where the commas go
// depends on what came before. For each i there are two rules over the properties i..m:
// A_i when something came before (each property written brings its comma) and F_i when
// nothing did (the first one written has none):
//   A_i ::= "," kv_i A_(i+1)          F_i ::= kv_i A_(i+1)                (required)
//   A_i ::= ( "," kv_i )? A_(i+1)     F_i ::= kv_i A_(i+1) | F_(i+1)      (optional)
// with A_m and F_m empty, or taking extra keys (extra_kv) when additional properties are
// allowed. The grammar stays deterministic: each alternative starts with a different key.
static int put_object_chain(conv *c, const prop *list, size_t m, unsigned extra_kv, unsigned *first)
{
    unsigned kv = c->n_rules + 1, a = kv + (unsigned)m, f = a + (unsigned)m + 1;
    c->n_rules += 3 * (unsigned)m + 2;
    int rc = GARLIC_OK;
    for (size_t i = 0; i < m && rc == 0; i++) {
        if ((rc = putf(c, "s%u ::= ", kv + (unsigned)i)) != 0)
            break;
        cJSON *name = cJSON_CreateString(list[i].name);
        char *key = name ? cJSON_PrintUnformatted(name) : NULL;
        cJSON_Delete(name);
        if (!key)
            return garlic_error_set(c->err, GARLIC_ENOMEM, "json schema: out of memory");
        rc = put_literal(c, key, strlen(key));
        cJSON_free(key);
        if (rc == 0)
            rc = putf(c, " ws \":\" ws s%u ws\n", list[i].value);
    }
    unsigned am = a + (unsigned)m, fm = f + (unsigned)m;
    if (rc == 0)
        rc = extra_kv ? putf(c, "s%u ::= ( \",\" ws s%u )*\ns%u ::= ( s%u s%u )?\n", am, extra_kv,
                             fm, extra_kv, am)
                      : putf(c, "s%u ::= \"\"\ns%u ::= \"\"\n", am, fm);
    for (size_t i = m; i-- > 0 && rc == 0;) {
        unsigned ki = kv + (unsigned)i, ai = a + (unsigned)i, fi = f + (unsigned)i;
        if (list[i].required)
            rc = putf(c, "s%u ::= \",\" ws s%u s%u\ns%u ::= s%u s%u\n", ai, ki, ai + 1, fi, ki,
                      ai + 1);
        else
            rc = putf(c, "s%u ::= ( \",\" ws s%u )? s%u\ns%u ::= s%u s%u | s%u\n", ai, ki, ai + 1,
                      fi, ki, ai + 1, fi + 1);
    }
    *first = f;
    return rc;
}

// Writes the rule for one extra key and value (additionalProperties true or a schema) and
// returns its id in *rule: a plain key that spells none of list's names.
static int put_extra_kv(conv *c, const cJSON *add, const path *at, const prop *list, size_t m,
                        unsigned *rule)
{
    unsigned value = 0, key = 0;
    int rc = GARLIC_OK;
    if (cJSON_IsObject(add)) {
        path sub = {at, "additionalProperties", 0};
        rc = gen(c, add, &sub, &value);
    }
    prop *plain = rc == 0 ? garlic_calloc(m + 1, sizeof *plain) : NULL;
    if (rc == 0 && !plain)
        rc = garlic_error_set(c->err, GARLIC_ENOMEM, "json schema: out of memory");
    size_t n_plain = 0;
    for (size_t i = 0; i < m && plain; i++)
        if (plain_name(list[i].name))
            plain[n_plain++] = list[i];
    if (rc == 0)
        rc = gen_other_key(c, plain, n_plain, &key);
    garlic_free(plain);
    if (rc != 0)
        return rc;
    char value_name[32];
    snprintf(value_name, sizeof value_name, value ? "s%u" : "value", value);
    *rule = new_rule(c);
    return putf(c, "s%u ::= \"\\\"\" s%u \"\\\"\" ws \":\" ws %s ws\n", *rule, key, value_name);
}

static int gen_object(conv *c, const cJSON *schema, const path *at, unsigned *rule)
{
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(schema, "properties");
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(schema, "required");
    const cJSON *add = cJSON_GetObjectItemCaseSensitive(schema, "additionalProperties");
    if (props && !cJSON_IsObject(props))
        return invalid(c, at, "%s", "'properties' is not an object");
    if (req && !cJSON_IsArray(req))
        return invalid(c, at, "%s", "'required' is not an array");
    if (add && !cJSON_IsBool(add) && !cJSON_IsObject(add))
        return invalid(c, at, "%s", "'additionalProperties' is not a boolean or a schema");
    size_t n = 0;
    for (const cJSON *p = props ? props->child : NULL; p; p = p->next)
        n++;
    for (const cJSON *r = req ? req->child : NULL; r; r = r->next, n++)
        if (!cJSON_IsString(r))
            return invalid(c, at, "%s", "'required' holds a non-string");
    if (!props && !req && (!add || cJSON_IsTrue(add))) {
        *rule = new_rule(c);
        return putf(c, "s%u ::= object\n", *rule);
    }
    if (n > SCHEMA_MAX_PROPERTIES)
        return invalid(c, at, "%s", "more than 1024 properties");
    prop *list = garlic_calloc(n + 1, sizeof *list);
    if (!list)
        return garlic_error_set(c->err, GARLIC_ENOMEM, "json schema: out of memory");
    size_t m;
    unsigned extra_kv = 0, body = 0;
    int rc = object_props(c, props, req, at, list, &m);
    if (rc == 0 && (cJSON_IsTrue(add) || cJSON_IsObject(add)))
        rc = put_extra_kv(c, add, at, list, m, &extra_kv);
    if (rc == 0)
        rc = put_object_chain(c, list, m, extra_kv, &body);
    garlic_free(list);
    if (rc != 0)
        return rc;
    *rule = new_rule(c);
    return putf(c, "s%u ::= \"{\" ws s%u \"}\"\n", *rule, body);
}

// ---- arrays ----

static int gen_array(conv *c, const cJSON *schema, const path *at, unsigned *rule)
{
    const cJSON *items = cJSON_GetObjectItemCaseSensitive(schema, "items");
    const cJSON *uniq = cJSON_GetObjectItemCaseSensitive(schema, "uniqueItems");
    if (uniq && !cJSON_IsFalse(uniq))
        return unsupported(c, at, "%s", "'uniqueItems'");
    long min, max;
    int rc = count_keyword(c, schema, "minItems", at, 0, &min);
    if (rc == 0)
        rc = count_keyword(c, schema, "maxItems", at, -1, &max);
    if (rc != 0)
        return rc;
    if (max >= 0 && max < min)
        return invalid(c, at, "%s", "'maxItems' is below 'minItems'");
    unsigned item = 0;
    bool any = !items || cJSON_IsTrue(items);
    if (items && cJSON_IsFalse(items))
        max = 0;
    else if (items && !any) {
        if (cJSON_IsArray(items))
            return unsupported(c, at, "%s", "'items' as an array (tuple)");
        path sub = {at, "items", 0};
        if ((rc = gen(c, items, &sub, &item)) != 0)
            return rc;
    }
    if (max == 0 && min > 0)
        return invalid(c, at, "%s", "'items' is false but 'minItems' is positive");
    *rule = new_rule(c);
    char it[32];
    snprintf(it, sizeof it, any ? "value" : "s%u", item);
    if (max == 0)
        return putf(c, "s%u ::= \"[\" ws \"]\"\n", *rule);
    char rep[48];
    if (max < 0)
        snprintf(rep, sizeof rep, "{%ld,}", min > 0 ? min - 1 : 0);
    else
        snprintf(rep, sizeof rep, "{%ld,%ld}", min > 0 ? min - 1 : 0, max - 1);
    return putf(c, "s%u ::= \"[\" ws ( %s ws ( \",\" ws %s ws )%s )%s \"]\"\n", *rule, it, it, rep,
                min > 0 ? "" : "?");
}

// ---- strings and patterns ----

// A set of code points as sorted, merged ranges (at most 64; more is refused).
typedef struct cset {
    uint32_t lo[64], hi[64];
    int n;
    bool negated;
} cset;

static bool cset_add(cset *s, uint32_t lo, uint32_t hi)
{
    if (s->n >= 64)
        return false;
    s->lo[s->n] = lo;
    s->hi[s->n] = hi;
    s->n++;
    return true;
}

static bool cset_has(const cset *s, uint32_t cp)
{
    bool in = false;
    for (int i = 0; i < s->n && !in; i++)
        in = s->lo[i] <= cp && cp <= s->hi[i];
    return in != s->negated;
}

// Adds a class escape (\d \w \s and negations) to s; false if e is not one.
static bool cset_escape(cset *s, char e, bool *ok)
{
    *ok = true;
    switch (e) {
    case 'd': *ok = cset_add(s, '0', '9'); return true;
    case 'w':
        *ok = cset_add(s, '0', '9') && cset_add(s, 'A', 'Z') && cset_add(s, 'a', 'z') &&
            cset_add(s, '_', '_');
        return true;
    case 's': *ok = cset_add(s, '\t', '\r') && cset_add(s, ' ', ' '); return true;
    case 'D': *ok = cset_add(s, 0, '0' - 1) && cset_add(s, '9' + 1, 0x10FFFF); return true;
    case 'W':
        *ok = cset_add(s, 0, '0' - 1) && cset_add(s, '9' + 1, 'A' - 1) &&
            cset_add(s, 'Z' + 1, '_' - 1) && cset_add(s, '_' + 1, 'a' - 1) &&
            cset_add(s, 'z' + 1, 0x10FFFF);
        return true;
    case 'S':
        *ok = cset_add(s, 0, '\t' - 1) && cset_add(s, '\r' + 1, ' ' - 1) &&
            cset_add(s, ' ' + 1, 0x10FFFF);
        return true;
    default: return false;
    }
}

typedef struct regex {
    conv *c;
    const path *at;
    const char *p, *end;
    int nesting;
} regex;

static int regex_fail(regex *r, const char *what)
{
    char msg[200];
    snprintf(msg, sizeof msg, "'pattern' with %s", what);
    return unsupported(r->c, r->at, "%s", msg);
}

// Reads one UTF-8 character of the pattern.
static uint32_t regex_utf8(regex *r)
{
    unsigned char b = (unsigned char)*r->p++;
    if (b < 0x80)
        return b;
    int extra = b >= 0xF0 ? 3 : b >= 0xE0 ? 2 : 1;
    uint32_t cp = b & (0x3Fu >> extra);
    for (int i = 0; i < extra && r->p < r->end; i++)
        cp = (cp << 6) | ((unsigned char)*r->p++ & 0x3F);
    return cp;
}

// Reads a literal escape (after the backslash) into *cp; 0, or a refusal.
static int regex_escape_char(regex *r, uint32_t *cp)
{
    if (r->p >= r->end)
        return regex_fail(r, "a trailing backslash");
    char e = *r->p++;
    const char *from = "ntrfv0", *to = "\n\t\r\f\v";
    const char *hit = strchr(from, e);
    if (hit && e) {
        *cp = e == '0' ? 0 : (unsigned char)to[hit - from];
        return GARLIC_OK;
    }
    if (e == 'x' || e == 'u') {
        int digits = e == 'x' ? 2 : 4;
        uint32_t v = 0;
        for (int i = 0; i < digits; i++) {
            char h = r->p < r->end ? *r->p++ : 0;
            int d = h >= '0' && h <= '9' ? h - '0'
                : h >= 'a' && h <= 'f'   ? h - 'a' + 10
                : h >= 'A' && h <= 'F'   ? h - 'A' + 10
                                         : -1;
            if (d < 0)
                return regex_fail(r, "a malformed \\x or \\u escape");
            v = v * 16 + (uint32_t)d;
        }
        if (v >= 0xD800 && v <= 0xDFFF)
            return regex_fail(r, "a surrogate \\u escape");
        *cp = v;
        return GARLIC_OK;
    }
    if ((e >= 'a' && e <= 'z') || (e >= 'A' && e <= 'Z') || (e >= '1' && e <= '9')) {
        char what[64];
        snprintf(what, sizeof what, "the escape '\\%c'", e);
        return regex_fail(r, what);
    }
    r->p--;
    *cp = regex_utf8(r);
    return GARLIC_OK;
}

// Writes the GBNF for "one character of s, JSON-encoded": plain characters as a class,
// and the quote, the backslash and control characters as their escapes.
static int put_cset(conv *c, const cset *s)
{
    // Complement and subtract the characters JSON must escape, walking the code space.
    static const uint32_t unsafe[] = {'"', '\\'};
    int rc = put(c, "( ");
    bool any = false;
    // The plain part: a class over [0x20, 0x10FFFF] minus '"' and '\\'.
    garlic_buf cls = {0};
    uint32_t cp = 0x20;
    while (cp <= 0x10FFFF && rc == 0) {
        // Find the next run of members starting at or after cp.
        bool in = cset_has(s, cp) && cp != '"' && cp != '\\';
        uint32_t next = 0x10FFFF + 1;
        // Boundaries: range ends, the unsafe characters.
        for (int i = 0; i < s->n; i++) {
            if (s->lo[i] > cp && s->lo[i] < next)
                next = s->lo[i];
            if (s->hi[i] + 1 > cp && s->hi[i] + 1 < next)
                next = s->hi[i] + 1;
        }
        for (size_t u = 0; u < 2; u++) {
            if (unsafe[u] > cp && unsafe[u] < next)
                next = unsafe[u];
            if (unsafe[u] + 1 > cp && unsafe[u] + 1 < next)
                next = unsafe[u] + 1;
        }
        if (in && garlic_buf_printf(&cls, "\\U%08X-\\U%08X", cp, next - 1) != 0)
            rc = garlic_error_set(c->err, GARLIC_ENOMEM, "json schema: out of memory");
        cp = next;
    }
    if (rc == 0 && cls.len > 0) {
        rc = putf(c, "[%s]", cls.data);
        any = true;
    }
    garlic_buf_deinit(&cls);
    if (rc == 0 && cset_has(s, '"'))
        rc = putf(c, "%s\"\\\\\\\"\"", any ? " | " : ""), any = true;
    if (rc == 0 && cset_has(s, '\\'))
        rc = putf(c, "%s\"\\\\\\\\\"", any ? " | " : ""), any = true;
    for (uint32_t k = 0; k < 0x20 && rc == 0; k++)
        if (cset_has(s, k))
            rc = putf(c, "%s\"\\\\u%04X\"", any ? " | " : "", k), any = true;
    if (rc == 0 && !any)
        return regex_fail(&(regex){c, NULL, NULL, NULL, 0}, "an empty class");
    return rc ? rc : put(c, " )");
}

static int regex_alternates(regex *r);

// Parses a class after '[' into s.
static int regex_class(regex *r, cset *s)
{
    if (r->p < r->end && *r->p == '^') {
        s->negated = true;
        r->p++;
    }
    bool first = true;
    for (;;) {
        if (r->p >= r->end)
            return regex_fail(r, "an unclosed '['");
        if (*r->p == ']' && !first)
            break;
        first = false;
        uint32_t lo;
        if (*r->p == '\\') {
            r->p++;
            bool ok;
            if (r->p < r->end && cset_escape(s, *r->p, &ok)) {
                r->p++;
                if (!ok)
                    return regex_fail(r, "a class of more than 64 ranges");
                continue;
            }
            if (r->p < r->end && *r->p == 'b') {
                r->p++;
                lo = '\b';
            } else {
                int rc = regex_escape_char(r, &lo);
                if (rc != 0)
                    return rc;
            }
        } else if (*r->p == '[' && r->end - r->p > 1 && r->p[1] == ':') {
            return regex_fail(r, "a POSIX class '[:...:]'");
        } else {
            lo = regex_utf8(r);
        }
        uint32_t hi = lo;
        if (r->end - r->p > 1 && *r->p == '-' && r->p[1] != ']') {
            r->p++;
            if (*r->p == '\\') {
                r->p++;
                int rc = regex_escape_char(r, &hi);
                if (rc != 0)
                    return rc;
            } else {
                hi = regex_utf8(r);
            }
            if (hi < lo)
                return regex_fail(r, "a backwards range");
        }
        if (!cset_add(s, lo, hi))
            return regex_fail(r, "a class of more than 64 ranges");
    }
    r->p++;
    return GARLIC_OK;
}

// Parses one atom and writes it as a parenthesized GBNF expression.
static int regex_atom(regex *r)
{
    conv *c = r->c;
    char ch = *r->p;
    cset s = {.n = 0};
    if (ch == '(') {
        r->p++;
        if (r->p < r->end && *r->p == '?') {
            if (r->end - r->p > 1 && r->p[1] == ':')
                r->p += 2;
            else
                return regex_fail(r, "lookaround or named groups '(?'");
        }
        if (++r->nesting > SCHEMA_MAX_REGEX_NESTING)
            return regex_fail(r, "groups nested deeper than 64");
        int rc = put(c, "( ");
        if (rc == 0)
            rc = regex_alternates(r);
        r->nesting--;
        if (rc != 0)
            return rc;
        if (r->p >= r->end || *r->p != ')')
            return regex_fail(r, "an unclosed '('");
        r->p++;
        return put(c, " )");
    }
    if (ch == '[') {
        r->p++;
        int rc = regex_class(r, &s);
        return rc ? rc : put_cset(c, &s);
    }
    if (ch == '.') {
        r->p++;
        s.negated = true;
        cset_add(&s, '\n', '\n');
        return put_cset(c, &s);
    }
    if (ch == '^' || ch == '$')
        return regex_fail(r, "'^' or '$' inside the pattern");
    if (ch == '*' || ch == '+' || ch == '?' || ch == '{')
        return regex_fail(r, "a quantifier with nothing before it");
    uint32_t cp;
    if (ch == '\\') {
        r->p++;
        bool ok;
        if (r->p < r->end && cset_escape(&s, *r->p, &ok)) {
            r->p++;
            return put_cset(c, &s);
        }
        int rc = regex_escape_char(r, &cp);
        if (rc != 0)
            return rc;
    } else {
        cp = regex_utf8(r);
    }
    cset_add(&s, cp, cp);
    return put_cset(c, &s);
}

// Parses a quantifier after an atom, if any, and writes it.
static int regex_quantifier(regex *r)
{
    if (r->p >= r->end)
        return GARLIC_OK;
    char ch = *r->p;
    int rc = GARLIC_OK;
    if (ch == '*' || ch == '+' || ch == '?') {
        r->p++;
        rc = putf(r->c, "%c", ch);
    } else if (ch == '{') {
        const char *q = r->p + 1;
        long m = 0, n = -1;
        bool has_m = false, comma = false;
        while (q < r->end && *q >= '0' && *q <= '9' && m <= SCHEMA_MAX_ITEMS)
            m = m * 10 + (*q++ - '0'), has_m = true;
        if (q < r->end && *q == ',') {
            comma = true;
            q++;
            if (q < r->end && *q >= '0' && *q <= '9')
                n = 0;
            while (q < r->end && *q >= '0' && *q <= '9' && n <= SCHEMA_MAX_ITEMS)
                n = n * 10 + (*q++ - '0');
        }
        if (!has_m || q >= r->end || *q != '}')
            return regex_fail(r, "a malformed '{m,n}'");
        if (m > SCHEMA_MAX_ITEMS || n > SCHEMA_MAX_ITEMS || (n >= 0 && n < m))
            return regex_fail(r, "a repetition over 1000 or backwards");
        r->p = q + 1;
        if (!comma)
            rc = putf(r->c, "{%ld}", m);
        else if (n < 0)
            rc = putf(r->c, "{%ld,}", m);
        else
            rc = putf(r->c, "{%ld,%ld}", m, n);
    } else {
        return GARLIC_OK;
    }
    if (rc == 0 && r->p < r->end && *r->p == '?')
        r->p++; // lazy: the same language
    if (rc == 0 && r->p < r->end && (*r->p == '+' || *r->p == '*' || *r->p == '?' || *r->p == '{'))
        return regex_fail(r, "a quantifier after a quantifier");
    return rc;
}

static int regex_alternates(regex *r)
{
    int rc = GARLIC_OK;
    bool empty = true;
    while (rc == 0) {
        if (r->p >= r->end || *r->p == ')' || *r->p == '|') {
            if (empty)
                rc = put(r->c, "\"\"");
            if (rc != 0 || r->p >= r->end || *r->p != '|')
                break;
            r->p++;
            rc = put(r->c, " | ");
            empty = true;
            continue;
        }
        if (*r->p == '$' && r->p + 1 == r->end)
            break;
        if (!empty)
            rc = put(r->c, " ");
        if (rc == 0)
            rc = regex_atom(r);
        if (rc == 0)
            rc = regex_quantifier(r);
        empty = false;
    }
    return rc;
}

// Writes a rule for string bodies matching pattern (a regex; unanchored ends match anything).
static int gen_pattern(conv *c, const char *pattern, const path *at, unsigned *rule)
{
    regex r = {c, at, pattern, pattern + strlen(pattern), 0};
    bool start = r.p < r.end && *r.p == '^';
    bool stop = r.end > r.p && r.end[-1] == '$' && (r.end - r.p < 2 || r.end[-2] != '\\');
    if (start)
        r.p++;
    *rule = new_rule(c);
    int rc = putf(c, "s%u ::= %s( ", *rule, start ? "" : "char* ");
    if (rc == 0)
        rc = regex_alternates(&r);
    if (rc == 0 && r.p < r.end && !(stop && r.p + 1 == r.end))
        return regex_fail(&r, "an unmatched ')'");
    return rc ? rc : putf(c, " )%s\n", stop ? "" : " char*");
}

static int gen_string(conv *c, const cJSON *schema, const path *at, unsigned *rule)
{
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(schema, "format");
    const cJSON *pat = cJSON_GetObjectItemCaseSensitive(schema, "pattern");
    long min, max;
    int rc = count_keyword(c, schema, "minLength", at, 0, &min);
    if (rc == 0)
        rc = count_keyword(c, schema, "maxLength", at, -1, &max);
    if (rc != 0)
        return rc;
    bool lengths = min > 0 || max >= 0;
    if (max >= 0 && max < min)
        return invalid(c, at, "%s", "'maxLength' is below 'minLength'");
    if ((fmt || pat) && lengths)
        return unsupported(c, at, "%s", "'minLength' or 'maxLength' with 'pattern' or 'format'");
    if (fmt && pat)
        return unsupported(c, at, "%s", "'format' with 'pattern'");
    unsigned body = 0;
    if (fmt) {
        if (!cJSON_IsString(fmt))
            return invalid(c, at, "%s", "'format' is not a string");
        size_t i = 0;
        while (i < N_FORMATS && strcmp(FORMATS[i].name, fmt->valuestring) != 0)
            i++;
        if (i == N_FORMATS) {
            char what[160];
            snprintf(what, sizeof what, "'format' '%.100s'", fmt->valuestring);
            return unsupported(c, at, "%s", what);
        }
        c->formats_used[i] = true;
        if (i == 2) // date-time uses date and time
            c->formats_used[0] = c->formats_used[1] = true;
        *rule = new_rule(c);
        return putf(c, "s%u ::= \"\\\"\" fmt-%s \"\\\"\"\n", *rule, FORMATS[i].name);
    }
    if (pat) {
        if (!cJSON_IsString(pat))
            return invalid(c, at, "%s", "'pattern' is not a string");
        if ((rc = gen_pattern(c, pat->valuestring, at, &body)) != 0)
            return rc;
        *rule = new_rule(c);
        return putf(c, "s%u ::= \"\\\"\" s%u \"\\\"\"\n", *rule, body);
    }
    *rule = new_rule(c);
    if (!lengths)
        return putf(c, "s%u ::= string\n", *rule);
    if (max < 0)
        return putf(c, "s%u ::= \"\\\"\" char{%ld,} \"\\\"\"\n", *rule, min);
    return putf(c, "s%u ::= \"\\\"\" char{%ld,%ld} \"\\\"\"\n", *rule, min, max);
}

// ---- integers with bounds ----

// Writes the GBNF for decimal numbers of equal length in [a, b] (digit strings).
static int put_digits_range(conv *c, const char *a, const char *b, size_t len)
{
    if (len == 0)
        return GARLIC_OK;
    if (a[0] == b[0]) {
        int rc = putf(c, "\"%c\" ", a[0]);
        return rc ? rc : put_digits_range(c, a + 1, b + 1, len - 1);
    }
    bool a_low = strspn(a + 1, "0") >= len - 1, b_high = strspn(b + 1, "9") >= len - 1;
    if (a_low && b_high)
        return putf(c, "[%c-%c] [0-9]{%zu} ", a[0], b[0], len - 1);
    char nines[24], zeros[24];
    memset(nines, '9', len - 1);
    memset(zeros, '0', len - 1);
    nines[len - 1] = zeros[len - 1] = '\0';
    int rc = put(c, "( ");
    // a[0] then anything >= a[1..]; the digits strictly between; b[0] then <= b[1..].
    if (rc == 0 && !a_low) {
        if ((rc = putf(c, "\"%c\" ", a[0])) == 0)
            rc = put_digits_range(c, a + 1, nines, len - 1);
    }
    char from = a_low ? a[0] : (char)(a[0] + 1), to = b_high ? b[0] : (char)(b[0] - 1);
    if (rc == 0 && from <= to)
        rc = putf(c, "%s[%c-%c] [0-9]{%zu} ", a_low ? "" : "| ", from, to, len - 1);
    if (rc == 0 && !b_high) {
        if ((rc = putf(c, "%s\"%c\" ", a_low && from > to ? "" : "| ", b[0])) == 0)
            rc = put_digits_range(c, zeros, b + 1, len - 1);
    }
    return rc ? rc : put(c, ") ");
}

// Writes the GBNF alternatives for non-negative integers in [lo, hi] (hi < 0: unbounded,
// up to 16 digits as the integer rule).
static int put_natural_range(conv *c, long long lo, long long hi)
{
    char a[24], b[24];
    int rc = GARLIC_OK;
    bool first = true;
    for (size_t len = 1; len <= 16 && rc == 0; len++) {
        long long p = 1;
        for (size_t i = 1; i < len; i++)
            p *= 10;
        long long from = len == 1 ? 0 : p, to = p * 10 - 1;
        if (from < lo)
            from = lo;
        if (hi >= 0 && to > hi)
            to = hi;
        if (from > to)
            continue;
        snprintf(a, sizeof a, "%lld", from);
        snprintf(b, sizeof b, "%lld", to);
        if (!first)
            rc = put(c, "| ");
        first = false;
        if (rc == 0)
            rc = put_digits_range(c, a, b, len);
    }
    return rc;
}

// Reads an integer bound; *set false when absent. Exclusive bounds move by one.
static int int_bound(conv *c, const cJSON *schema, const path *at, bool upper, long long *out,
                     bool *set)
{
    const cJSON *inc = cJSON_GetObjectItemCaseSensitive(schema, upper ? "maximum" : "minimum");
    const cJSON *exc = cJSON_GetObjectItemCaseSensitive(
        schema, upper ? "exclusiveMaximum" : "exclusiveMinimum");
    *set = false;
    for (int k = 0; k < 2; k++) {
        const cJSON *v = k ? exc : inc;
        if (!v)
            continue;
        const char *name = v->string;
        if (!cJSON_IsNumber(v))
            return unsupported(c, at, "'%s' that is not a number", name);
        if (fabs(v->valuedouble) > (double)SCHEMA_MAX_INT)
            return unsupported(c, at, "'%s' beyond 10^15", name);
        double d = upper ? floor(v->valuedouble) : ceil(v->valuedouble);
        long long x = (long long)d;
        if (k && d == v->valuedouble)
            x += upper ? -1 : 1;
        if (!*set || (upper ? x < *out : x > *out))
            *out = x;
        *set = true;
    }
    return GARLIC_OK;
}

static int gen_integer(conv *c, const cJSON *schema, const path *at, unsigned *rule)
{
    long long lo = 0, hi = 0;
    bool has_lo, has_hi;
    int rc = int_bound(c, schema, at, false, &lo, &has_lo);
    if (rc == 0)
        rc = int_bound(c, schema, at, true, &hi, &has_hi);
    if (rc != 0)
        return rc;
    *rule = new_rule(c);
    if (!has_lo && !has_hi)
        return putf(c, "s%u ::= integer\n", *rule);
    if (has_lo && has_hi && hi < lo)
        return invalid(c, at, "%s", "the integer range is empty");
    if ((rc = putf(c, "s%u ::= ", *rule)) != 0)
        return rc;
    // Negative part: "-" then magnitudes in [max(1, -hi), -lo]; lo unbounded: no upper end.
    bool neg = !has_lo || lo < 0, pos = !has_hi || hi >= 0;
    if (neg) {
        long long mag_lo = has_hi && hi < 0 ? -hi : 1, mag_hi = has_lo ? -lo : -1;
        if ((rc = put(c, "\"-\" ( ")) == 0 && (rc = put_natural_range(c, mag_lo, mag_hi)) == 0)
            rc = put(c, ") ");
    }
    if (rc == 0 && pos) {
        if (neg)
            rc = put(c, "| ");
        if (rc == 0)
            rc = put_natural_range(c, has_lo && lo > 0 ? lo : 0, has_hi ? hi : -1);
    }
    return rc ? rc : put(c, "\n");
}

// ---- dispatch ----

static int gen_alternatives(conv *c, const cJSON *list, const char *name, const path *at,
                            unsigned *rule)
{
    if (!cJSON_IsArray(list) || cJSON_GetArraySize(list) == 0)
        return invalid(c, at, "'%s' is not a non-empty array", name);
    if (cJSON_GetArraySize(list) > SCHEMA_MAX_ENUM)
        return invalid(c, at, "'%s' has more than 4096 schemas", name);
    size_t n = (size_t)cJSON_GetArraySize(list), i = 0;
    unsigned *ids = garlic_calloc(n, sizeof *ids);
    if (!ids)
        return garlic_error_set(c->err, GARLIC_ENOMEM, "json schema: out of memory");
    path sub = {at, name, 0};
    int rc = GARLIC_OK;
    for (const cJSON *s = list->child; s && rc == 0; s = s->next, i++) {
        path item = {&sub, NULL, (int)i};
        rc = gen(c, s, &item, &ids[i]);
    }
    if (rc == 0) {
        *rule = new_rule(c);
        rc = putf(c, "s%u ::= ", *rule);
        for (i = 0; i < n && rc == 0; i++)
            rc = putf(c, "%ss%u", i ? " | " : "", ids[i]);
        if (rc == 0)
            rc = put(c, "\n");
    }
    garlic_free(ids);
    return rc;
}

// allOf: the merge of object schemas (properties and required add up; each item may be a
// $ref to one). Anything else in the list is refused.
static int gen_all_of(conv *c, const cJSON *schema, const path *at, unsigned *rule)
{
    static const char *const allowed[] = {"allOf", "type", NULL};
    int rc = only(c, schema, at, "allOf", allowed);
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(schema, "allOf");
    if (rc != 0)
        return rc;
    if (!cJSON_IsArray(list) || cJSON_GetArraySize(list) == 0)
        return invalid(c, at, "%s", "'allOf' is not a non-empty array");
    cJSON *merged = cJSON_CreateObject(), *props = cJSON_CreateObject(), *req = cJSON_CreateArray();
    if (!merged || !props || !req) {
        cJSON_Delete(merged), cJSON_Delete(props), cJSON_Delete(req);
        return garlic_error_set(c->err, GARLIC_ENOMEM, "json schema: out of memory");
    }
    cJSON_AddItemToObject(merged, "type", cJSON_CreateString("object"));
    cJSON_AddItemToObject(merged, "properties", props);
    cJSON_AddItemToObject(merged, "required", req);
    path sub = {at, "allOf", 0};
    int i = 0;
    for (const cJSON *s = list->child; s && rc == 0; s = s->next, i++) {
        path item = {&sub, NULL, i};
        const cJSON *t = s;
        for (int hops = 0; cJSON_IsObject(t) && cJSON_GetObjectItemCaseSensitive(t, "$ref") && t;
             hops++) {
            const cJSON *ref = cJSON_GetObjectItemCaseSensitive(t, "$ref");
            t = hops < 16 && cJSON_IsString(ref) ? resolve(c, ref->valuestring) : NULL;
        }
        static const char *const object_keys[] = {"type", "properties", "required", NULL};
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(t, "type");
        if (!cJSON_IsObject(t) ||
            (type && !(cJSON_IsString(type) && strcmp(type->valuestring, "object") == 0))) {
            rc = unsupported(c, &item, "%s", "'allOf' of schemas other than objects");
            break;
        }
        if ((rc = only(c, t, &item, "allOf", object_keys)) != 0)
            break;
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(t, "properties");
        for (const cJSON *kv = p ? p->child : NULL; kv; kv = kv->next) {
            cJSON_DeleteItemFromObjectCaseSensitive(props, kv->string);
            cJSON_AddItemReferenceToObject(props, kv->string, (cJSON *)kv);
        }
        const cJSON *r = cJSON_GetObjectItemCaseSensitive(t, "required");
        for (const cJSON *name = cJSON_IsArray(r) ? r->child : NULL; name; name = name->next)
            cJSON_AddItemReferenceToArray(req, (cJSON *)name);
    }
    if (rc == 0)
        rc = gen(c, merged, at, rule);
    cJSON_Delete(merged);
    return rc;
}

// Generates the rule for schema restricted to one type name.
static int gen_type(conv *c, const cJSON *schema, const char *type, const path *at, unsigned *rule)
{
    if (strcmp(type, "object") == 0)
        return gen_object(c, schema, at, rule);
    if (strcmp(type, "array") == 0)
        return gen_array(c, schema, at, rule);
    if (strcmp(type, "string") == 0)
        return gen_string(c, schema, at, rule);
    if (strcmp(type, "integer") == 0)
        return gen_integer(c, schema, at, rule);
    const char *prim = strcmp(type, "number") == 0 ? "number"
        : strcmp(type, "boolean") == 0             ? "boolean"
        : strcmp(type, "null") == 0                ? "null"
                                                   : NULL;
    if (!prim) {
        char what[160];
        snprintf(what, sizeof what, "'type' '%.100s'", type);
        return unsupported(c, at, "%s", what);
    }
    if (strcmp(type, "number") == 0) {
        static const char *const bounds[] = {"minimum", "maximum", "exclusiveMinimum",
                                             "exclusiveMaximum"};
        for (size_t i = 0; i < 4; i++)
            if (cJSON_GetObjectItemCaseSensitive(schema, bounds[i]))
                return unsupported(c, at, "'%s' for type number (integer only)", bounds[i]);
    }
    *rule = new_rule(c);
    return putf(c, "s%u ::= %s\n", *rule, prim);
}

// The type a schema without 'type' has, from its keywords; NULL for any value.
static const char *implied_type(const cJSON *schema)
{
    static const struct {
        const char *key, *type;
    } hints[] = {{"properties", "object"},
                 {"required", "object"},
                 {"additionalProperties", "object"},
                 {"items", "array"},
                 {"minItems", "array"},
                 {"maxItems", "array"},
                 {"minLength", "string"},
                 {"maxLength", "string"},
                 {"pattern", "string"},
                 {"format", "string"},
                 {"minimum", "integer"},
                 {"maximum", "integer"},
                 {"exclusiveMinimum", "integer"},
                 {"exclusiveMaximum", "integer"}};
    for (size_t i = 0; i < sizeof hints / sizeof hints[0]; i++)
        if (cJSON_GetObjectItemCaseSensitive(schema, hints[i].key))
            return hints[i].type;
    return NULL;
}

static int gen_checked(conv *c, const cJSON *schema, const path *at, unsigned *rule)
{
    if (cJSON_IsBool(schema)) {
        if (cJSON_IsFalse(schema))
            return unsupported(c, at, "%s", "the schema false (nothing is valid)");
        *rule = new_rule(c);
        return putf(c, "s%u ::= value\n", *rule);
    }
    if (!cJSON_IsObject(schema))
        return invalid(c, at, "%s", "a schema that is not an object or a boolean");
    for (const cJSON *k = schema->child; k; k = k->next)
        if (!is_keyword(k->string)) {
            char what[160];
            snprintf(what, sizeof what, "'%.100s'", k->string);
            return unsupported(c, at, "%s", what);
        }
    if (cJSON_GetObjectItemCaseSensitive(schema, "$ref"))
        return gen_ref(c, schema, at, rule);
    if (cJSON_GetObjectItemCaseSensitive(schema, "enum") ||
        cJSON_GetObjectItemCaseSensitive(schema, "const"))
        return gen_enum(c, schema, at, rule);
    const char *alt = cJSON_GetObjectItemCaseSensitive(schema, "anyOf") ? "anyOf"
        : cJSON_GetObjectItemCaseSensitive(schema, "oneOf")             ? "oneOf"
                                                                        : NULL;
    if (alt) {
        static const char *const allowed[] = {"anyOf", "oneOf", NULL};
        int rc = only(c, schema, at, alt, allowed);
        return rc
            ? rc
            : gen_alternatives(c, cJSON_GetObjectItemCaseSensitive(schema, alt), alt, at, rule);
    }
    if (cJSON_GetObjectItemCaseSensitive(schema, "allOf"))
        return gen_all_of(c, schema, at, rule);
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(schema, "type");
    if (!type) {
        const char *implied = implied_type(schema);
        if (implied)
            return gen_type(c, schema, implied, at, rule);
        *rule = new_rule(c);
        return putf(c, "s%u ::= value\n", *rule);
    }
    if (cJSON_IsString(type))
        return gen_type(c, schema, type->valuestring, at, rule);
    if (!cJSON_IsArray(type) || cJSON_GetArraySize(type) == 0)
        return invalid(c, at, "%s", "'type' is not a string or a non-empty list");
    unsigned ids[8];
    size_t n = 0;
    path sub = {at, "type", 0};
    for (const cJSON *t = type->child; t; t = t->next, n++) {
        path item = {&sub, NULL, (int)n};
        if (n >= 8 || !cJSON_IsString(t))
            return invalid(c, &item, "%s", "a 'type' list entry that is not one of the 7 types");
        int rc = gen_type(c, schema, t->valuestring, at, &ids[n]);
        if (rc != 0)
            return rc;
    }
    *rule = new_rule(c);
    int rc = putf(c, "s%u ::= ", *rule);
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = putf(c, "%ss%u", i ? " | " : "", ids[i]);
    return rc ? rc : put(c, "\n");
}

static int gen(conv *c, const cJSON *schema, const path *at, unsigned *rule)
{
    if (++c->depth > SCHEMA_MAX_DEPTH) {
        c->depth--;
        return invalid(c, at, "%s", "schemas nested deeper than 64");
    }
    int rc = gen_checked(c, schema, at, rule);
    c->depth--;
    return rc;
}

int grammar_json_schema_gbnf(const cJSON *schema, garlic_buf *out, garlic_error *err)
{
    conv *c = garlic_calloc(1, sizeof *c);
    if (!c)
        return garlic_error_set(err, GARLIC_ENOMEM, "json schema: out of memory");
    c->out = out;
    c->root = schema;
    c->err = err;
    unsigned top;
    int rc = gen(c, schema, NULL, &top);
    if (rc == 0)
        rc = putf(c, "root ::= ws s%u ws\n%s", top, PRIMITIVES);
    for (size_t i = 0; i < N_FORMATS && rc == 0; i++)
        if (c->formats_used[i])
            rc = putf(c, "fmt-%s ::= %s\n", FORMATS[i].name, FORMATS[i].rule);
    garlic_free(c);
    return rc;
}

grammar *grammar_from_json_schema(const cJSON *schema, garlic_error *err)
{
    garlic_buf text = {0};
    grammar *g = NULL;
    if (grammar_json_schema_gbnf(schema, &text, err) == 0)
        g = grammar_new(text.data, text.len, err);
    garlic_buf_deinit(&text);
    return g;
}

grammar *grammar_json_any(bool object_only, garlic_error *err)
{
    garlic_buf text = {0};
    grammar *g = NULL;
    if (garlic_buf_printf(&text, "root ::= ws %s ws\n%s", object_only ? "object" : "value",
                          PRIMITIVES) != 0)
        garlic_error_set(err, GARLIC_ENOMEM, "json schema: out of memory");
    else
        g = grammar_new(text.data, text.len, err);
    garlic_buf_deinit(&text);
    return g;
}
