// SPDX-License-Identifier: MIT
// Tokenizer tests: the llama.cpp conformance vectors of every vocabulary in
// ../shared/tokenizer (no BOS/EOS, special parsing off), the stories260K greedy text, a
// decode(encode(s)) == s property on random UTF-8, streaming decoding, special-token
// parsing, malformed vocabularies built in-process, allocation failures and the CLI.
#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/alloc.h"
#include "base/utf8.h"
#include "gguf/gguf.h"
#include "tokenizer/internal.h"
#include "tokenizer/tokenizer.h"
#include "util.h"

static const char *const vector_vocabs[] = {
    "llama-spm", "phi-3",     "gpt-2",  "llama-bpe", "deepseek-llm", "deepseek-coder",
    "falcon",    "starcoder", "refact", "mpt",       "bert-bge",
};
enum { N_VECTOR_VOCABS = sizeof vector_vocabs / sizeof vector_vocabs[0] };

static tokenizer *open_shared_vocab(const char *name)
{
    char rel[256];
    snprintf(rel, sizeof rel, "tokenizer/ggml-vocab-%s.gguf", name);
    garlic_error err = {0};
    tokenizer *t = tokenizer_open(test_shared_path(rel), &err);
    if (!t)
        fail_msg("%s: %s", rel, err.message);
    return t;
}

// Parses the next line of expected ids from *p (advancing it) into ids.
static void parse_ids_line(const char **p, tokenizer_ids *ids)
{
    ids->n = 0;
    while (**p && **p != '\n') {
        char *end;
        long v = strtol(*p, &end, 10);
        if (end == *p) {
            (*p)++;
            continue;
        }
        if (ids->n == ids->cap) {
            ids->cap = ids->cap ? ids->cap * 2 : 64;
            ids->ids = realloc(ids->ids, ids->cap * sizeof *ids->ids);
        }
        ids->ids[ids->n++] = (int32_t)v;
        *p = end;
    }
    if (**p == '\n')
        (*p)++;
}

// Formats ids as " 1 2 3" (truncated) for failure messages.
static const char *format_ids(const int32_t *ids, size_t n)
{
    static char buf[2][512];
    static int which;
    char *b = buf[which++ & 1];
    size_t o = 0;
    b[0] = '\0';
    for (size_t i = 0; i < n && o + 16 < sizeof buf[0]; i++)
        o += (size_t)snprintf(b + o, sizeof buf[0] - o, " %d", ids[i]);
    return b;
}

// Runs every vector of one vocabulary (gguf, with its strings in inp and reference ids in out)
// with the encode flags given; returns the number that pass and prints failures.
static int run_vectors(const char *name, const char *gguf, const char *inp_path,
                       const char *out_path, unsigned flags, int *total)
{
    char *inp = test_read_file(inp_path, NULL);
    char *out = test_read_file(out_path, NULL);
    if (!inp || !out)
        fail_msg("%s: cannot read %s or %s", name, inp_path, out_path);
    garlic_error err = {0};
    tokenizer *t = tokenizer_open(gguf, &err);
    if (!t)
        fail_msg("%s: %s", gguf, err.message);
    static const char sep[] = "\n__ggml_vocab_test__\n";
    const char *p = inp, *q = out;
    int passed = 0;
    *total = 0;
    tokenizer_ids got = {0}, want = {0};
    for (const char *end; (end = strstr(p, sep)); p = end + strlen(sep)) {
        got.n = 0;
        assert_int_equal(tokenizer_encode(t, p, (size_t)(end - p), flags, &got, &err), GARLIC_OK);
        parse_ids_line(&q, &want);
        (*total)++;
        // (An empty string's ids are empty: memcmp must not see their NULL arrays.)
        if (got.n == want.n &&
            (got.n == 0 || memcmp(got.ids, want.ids, got.n * sizeof *got.ids) == 0)) {
            passed++;
        } else {
            print_message("%s #%d %.*s\n  want%s\n  got %s\n", name, *total,
                          (int)(end - p > 40 ? 40 : end - p), p, format_ids(want.ids, want.n),
                          format_ids(got.ids, got.n));
        }
    }
    tokenizer_ids_deinit(&got);
    free(want.ids);
    tokenizer_free(t);
    free(inp);
    free(out);
    return passed;
}

// Runs the vectors of ../shared/tokenizer/ggml-vocab-<name>.gguf.
static int run_shared_vectors(const char *name, int *total)
{
    char rel[128], gguf[512], inp[520], out[520];
    snprintf(rel, sizeof rel, "tokenizer/ggml-vocab-%s.gguf", name);
    snprintf(gguf, sizeof gguf, "%s", test_shared_path(rel));
    snprintf(inp, sizeof inp, "%s.inp", gguf);
    snprintf(out, sizeof out, "%s.out", gguf);
    return run_vectors(name, gguf, inp, out, 0, total);
}

static void test_vectors(void **state)
{
    (void)state;
    skip_without_shared();
    int all_passed = 0, all_total = 0;
    for (int i = 0; i < N_VECTOR_VOCABS; i++) {
        int total, passed = run_shared_vectors(vector_vocabs[i], &total);
        print_message("  %-15s %d/%d\n", vector_vocabs[i], passed, total);
        all_passed += passed;
        all_total += total;
    }
    assert_int_equal(all_passed, all_total);
}

// The reduced vocabularies of tests/data/tokenizer (written by
// tools/gen_tokenizer_reference.mjs from the real tokenizer.json files: every token and merge
// the reference uses for the strings, in their original order) against the ids that
// @huggingface/tokenizers gives with the full vocabularies.
static void test_reduced_vectors(void **state)
{
    (void)state;
    static const char *const names[] = {"gpt-4o", "deepseek-v3"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char gguf[128], inp[128], out[128];
        snprintf(gguf, sizeof gguf, "tests/data/tokenizer/%s.gguf", names[i]);
        snprintf(inp, sizeof inp, "tests/data/tokenizer/%s.inp", names[i]);
        snprintf(out, sizeof out, "tests/data/tokenizer/%s.out", names[i]);
        int total, passed = run_vectors(names[i], gguf, inp, out, 0, &total);
        print_message("  %-15s %d/%d\n", names[i], passed, total);
        assert_true(total > 50);
        assert_int_equal(passed, total);
    }
}

// WordPiece against Hugging Face's BERT tokenizer on many strings beyond the shared vectors
// (tests/data/tokenizer/bert-bge-wordpiece.*, written by tools/reference/gen_wordpiece_reference.mjs
// with bge's vocabulary): accents composed and decomposed, Greek, Cyrillic, Indic scripts
// with their marks, Thai, CJK, Hangul, emoji, control characters, long words, punctuation and
// every kind of space. No [CLS]/[SEP], special parsing off. Every mismatch is listed.
static void test_wordpiece_vectors(void **state)
{
    (void)state;
    skip_without_shared();
    char gguf[512];
    snprintf(gguf, sizeof gguf, "%s", test_shared_path("tokenizer/ggml-vocab-bert-bge.gguf"));
    int total,
        passed = run_vectors("bert-bge-wordpiece", gguf,
                             "tests/data/tokenizer/bert-bge-wordpiece.inp",
                             "tests/data/tokenizer/bert-bge-wordpiece.out", 0, &total);
    print_message("  %-15s %d/%d\n", "bert-bge (HF)", passed, total);
    assert_true(total > 500);
    assert_int_equal(passed, total);
    // Composed and decomposed forms give the same tokens: each string against its NFC.
    garlic_error err = {0};
    tokenizer *t = tokenizer_open(gguf, &err);
    char *inp = test_read_file("tests/data/tokenizer/bert-bge-wordpiece.inp", NULL);
    assert_non_null(t);
    assert_non_null(inp);
    static const char sep[] = "\n__ggml_vocab_test__\n";
    tokenizer_ids a = {0}, b = {0};
    int changed = 0, differ = 0;
    for (const char *p = inp, *end; (end = strstr(p, sep)); p = end + strlen(sep)) {
        char *nfc;
        size_t n;
        assert_int_equal(tokenizer_nfc(p, (size_t)(end - p), &nfc, &n), GARLIC_OK);
        a.n = b.n = 0;
        assert_int_equal(tokenizer_encode(t, p, (size_t)(end - p), 0, &a, &err), GARLIC_OK);
        assert_int_equal(tokenizer_encode(t, nfc, n, 0, &b, &err), GARLIC_OK);
        changed += n != (size_t)(end - p) || memcmp(nfc, p, n) != 0;
        if (a.n != b.n || (a.n && memcmp(a.ids, b.ids, a.n * sizeof *a.ids) != 0)) {
            differ++;
            print_message("NFC changes the tokens of '%.*s'\n", (int)(end - p), p);
        }
        garlic_free(nfc);
    }
    print_message("  %-15s %d strings change under NFC, their tokens do not\n", "bert-bge",
                  changed);
    assert_true(changed > 100);
    assert_int_equal(differ, 0);
    tokenizer_ids_deinit(&a);
    tokenizer_ids_deinit(&b);
    free(inp);
    tokenizer_free(t);
}

// Checks one string that spells special tokens out: with parsing off no CONTROL token comes
// out and, except for WordPiece (which lowercases and splits), the ids decode to the string
// again (when it is valid UTF-8: a token cut short may not be); when the string is exactly a CONTROL token's text (counted in *alone), with parsing
// on it is that token. Returns false on a failure, after printing it.
static bool check_special_string(const char *name, const tokenizer *t, const char *s, size_t n,
                                 int *alone)
{
    int32_t id = tokenizer_lookup2(t, s, n, "", 0);
    if (id >= 0 && tokenizer_token_get_type(t, id) != TOKENIZER_TOKEN_CONTROL)
        id = -1;
    tokenizer_ids on = {0}, off = {0};
    tokenizer_text text = {0};
    garlic_error err = {0};
    assert_int_equal(tokenizer_encode(t, s, n, TOKENIZER_PARSE_SPECIAL, &on, &err), GARLIC_OK);
    assert_int_equal(tokenizer_encode(t, s, n, 0, &off, &err), GARLIC_OK);
    assert_int_equal(tokenizer_decode(t, off.ids, off.n, 0, &text, &err), GARLIC_OK);
    bool ok = id < 0 || (on.n == 1 && on.ids[0] == id);
    *alone += id >= 0;
    for (size_t i = 0; i < off.n; i++)
        ok = ok && tokenizer_token_get_type(t, off.ids[i]) != TOKENIZER_TOKEN_CONTROL;
    if (tokenizer_get_kind(t) != TOKENIZER_KIND_WPM && utf8_valid(s, n))
        ok = ok && text.len == n && memcmp(text.data, s, n) == 0;
    if (!ok)
        print_message("%s: '%.*s' (%d): parsed%s, as text%s -> '%s'\n", name, (int)n, s, id,
                      format_ids(on.ids, on.n), format_ids(off.ids, off.n), text.data);
    tokenizer_ids_deinit(&on);
    tokenizer_ids_deinit(&off);
    tokenizer_text_deinit(&text);
    return ok;
}

// Every vocabulary of ../shared/tokenizer with its own special tokens spelled out in text
// (tests/data/tokenizer/special/, written by tools/reference/make-special-references.sh):
// llama.cpp's ids with special-token parsing off (CONTROL tokens are text, USER_DEFINED ones
// are still matched) and on, and the properties above for each token alone.
static void test_special_text(void **state)
{
    (void)state;
    skip_without_shared();
    int failed = 0;
    for (int i = 0; i < N_VECTOR_VOCABS; i++) {
        const char *name = vector_vocabs[i];
        char rel[128], gguf[512], inp[128], plain[128], special[128];
        snprintf(rel, sizeof rel, "tokenizer/ggml-vocab-%s.gguf", name);
        snprintf(gguf, sizeof gguf, "%s", test_shared_path(rel));
        snprintf(inp, sizeof inp, "tests/data/tokenizer/special/%s.inp", name);
        snprintf(plain, sizeof plain, "tests/data/tokenizer/special/%s.plain.out", name);
        snprintf(special, sizeof special, "tests/data/tokenizer/special/%s.special.out", name);
        int n_off, n_on, off = run_vectors(name, gguf, inp, plain, 0, &n_off),
                         on = run_vectors(name, gguf, inp, special, TOKENIZER_PARSE_SPECIAL, &n_on);
        assert_true(n_off > 0 && n_on == n_off);
        failed += n_off - off + n_on - on;
        garlic_error err = {0};
        tokenizer *t = tokenizer_open(gguf, &err);
        char *text = test_read_file(inp, NULL);
        assert_non_null(t);
        assert_non_null(text);
        static const char sep[] = "\n__ggml_vocab_test__\n";
        int checked = 0;
        for (const char *p = text, *end; (end = strstr(p, sep)); p = end + strlen(sep))
            failed += !check_special_string(name, t, p, (size_t)(end - p), &checked);
        print_message("  %-15s as text %d/%d, parsed %d/%d, %d control tokens alone\n", name, off,
                      n_off, on, n_on, checked);
        assert_true(checked > 0);
        free(text);
        tokenizer_free(t);
    }
    assert_int_equal(failed, 0);
}

static const char *const prompts[] = {
    "Once upon a time, there was a little girl named Lily.",
    "The cat sat on the mat and",
    "Tom and Sue went to the park. They saw a big red ball",
};

// Reads a file of space-separated ids.
static void read_ids(const char *path, tokenizer_ids *ids)
{
    char *text = test_read_file(path, NULL);
    assert_non_null(text);
    const char *p = text;
    ids->n = 0;
    while (*p) {
        parse_ids_line(&p, ids);
        if (ids->n)
            break;
    }
    free(text);
}

// The prompts' reference ids (BOS added, special parsing off) for the two real SPM models,
// and stories260K's 200-token greedy output decoding to the llama2.c golden text.
static void test_reference_models(void **state)
{
    (void)state;
    skip_without_shared();
    const char *models[][2] = {
        {"models/stories260K.gguf", "reference/stories260K"},
        {"models/llama-2-tiny-random.gguf", "reference/logits/llama-2-tiny-random"}};
    tokenizer_ids got = {0}, want = {0};
    for (int m = 0; m < 2; m++) {
        garlic_error err = {0};
        tokenizer *t = tokenizer_open(test_shared_path(models[m][0]), &err);
        assert_non_null(t);
        for (int i = 0; i < 3; i++) {
            char rel[256];
            snprintf(rel, sizeof rel, "%s/P%d.ids", models[m][1], i + 1);
            read_ids(test_shared_path(rel), &want);
            got.n = 0;
            assert_int_equal(tokenizer_encode(t, prompts[i], strlen(prompts[i]),
                                              TOKENIZER_ADD_SPECIAL, &got, &err),
                             GARLIC_OK);
            if (got.n != want.n || memcmp(got.ids, want.ids, got.n * sizeof *got.ids) != 0)
                fail_msg("%s P%d: want%s got%s", models[m][0], i + 1, format_ids(want.ids, want.n),
                         format_ids(got.ids, got.n));
        }
        if (m == 0) {
            read_ids(test_shared_path("reference/stories260K/greedy200.ids"), &want);
            assert_int_equal(want.n, 201);
            size_t size;
            char *golden = test_read_file(test_shared_path("reference/stories260K/greedy200.txt"),
                                          &size);
            assert_non_null(golden);
            tokenizer_text text = {0};
            assert_int_equal(tokenizer_decode(t, want.ids, want.n, 0, &text, &err), GARLIC_OK);
            assert_int_equal(text.len, size);
            assert_memory_equal(text.data, golden, size);
            tokenizer_stream st; // streamed, token by token, the same text comes out
            tokenizer_stream_init(&st, t, 0);
            char chunk[256];
            size_t total = 0, w;
            for (size_t k = 0; k < want.n; k++) {
                assert_int_equal(
                    tokenizer_stream_push(&st, want.ids[k], chunk, sizeof chunk, &w, &err),
                    GARLIC_OK);
                assert_true(total + w <= size);
                assert_memory_equal(chunk, golden + total, w);
                total += w;
            }
            assert_int_equal(total, size);
            tokenizer_text_deinit(&text);
            free(golden);
        }
        tokenizer_free(t);
    }
    tokenizer_ids_deinit(&got);
    free(want.ids);
}

// Appends one random code point's UTF-8 to s; the mix favours what real text has (ASCII
// words, spaces and newlines, digits, punctuation) but reaches every plane.
static size_t random_char(test_rng *r, char *s)
{
    static const char ascii[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                                "     \n\n\t\r.,;:!?'\"()[]{}<>-_=+*/\\|@#$%^&~`";
    uint32_t cp;
    uint64_t kind = test_rng_u64(r) % 16;
    if (kind < 9)
        cp = (unsigned char)ascii[test_rng_u64(r) % (sizeof ascii - 1)];
    else if (kind < 11)
        cp = 0x80 + (uint32_t)(test_rng_u64(r) % 0x780); // Latin, Greek, Cyrillic, ...
    else if (kind < 13)
        cp = 0x3000 + (uint32_t)(test_rng_u64(r) % 0x7000); // CJK and friends
    else if (kind < 14)
        cp = 0x1f300 + (uint32_t)(test_rng_u64(r) % 0x300); // emoji
    else
        cp = (uint32_t)(test_rng_u64(r) % 0x110000); // anything
    if (cp >= 0xd800 && cp <= 0xdfff)
        cp = 0xfffd;
    if (cp == 0x2581) // SentencePiece's space mark: a literal one decodes as a space
        cp = 0x2580;
    if (cp == 0)
        cp = ' ';
    if (cp < 0x80) {
        s[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        s[0] = (char)(0xc0 | cp >> 6), s[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        s[0] = (char)(0xe0 | cp >> 12), s[1] = (char)(0x80 | (cp >> 6 & 0x3f));
        s[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    s[0] = (char)(0xf0 | cp >> 18), s[1] = (char)(0x80 | (cp >> 12 & 0x3f));
    s[2] = (char)(0x80 | (cp >> 6 & 0x3f)), s[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

// Marks the bytes a vocabulary can spell: SPM with byte fallback spells all of them; a
// byte-level BPE vocabulary those whose alphabet character is a token.
static void spellable_bytes(const tokenizer *t, bool ok[256])
{
    bool spm = tokenizer_get_kind(t) == TOKENIZER_KIND_SPM;
    for (int b = 0; b < 256; b++)
        ok[b] = spm;
    for (uint32_t id = 0; !spm && id < tokenizer_vocab_size(t); id++) {
        size_t n, k;
        const char *text = tokenizer_token_text(t, (int32_t)id, &n);
        const char *piece = tokenizer_piece(t, (int32_t)id, 0, &k);
        if (tokenizer_token_get_type(t, (int32_t)id) == TOKENIZER_TOKEN_NORMAL && n <= 2 &&
            k == 1 && utf8_sequence_length(text, n) == n)
            ok[(unsigned char)piece[0]] = true;
    }
}

// Checks decode(encode(s)) == s on n random strings, and that streaming the same ids gives
// the same text in whole-UTF-8 chunks.
static void check_round_trips(const char *name, const tokenizer *t, int n, uint64_t seed)
{
    test_rng r;
    test_rng_seed(&r, seed);
    tokenizer_ids ids = {0};
    tokenizer_text text = {0};
    size_t cap = tokenizer_stream_max_output(t);
    char *chunk = malloc(cap), *streamed = malloc(4 * 64 + 16);
    char s[4 * 64 + 1];
    bool ok[256];
    spellable_bytes(t, ok);
    for (int i = 0; i < n; i++) {
        size_t len = 0, n_chars = test_rng_u64(&r) % 64;
        for (size_t c = 0; c < n_chars; c++) {
            size_t k = random_char(&r, s + len);
            bool spellable = true;
            for (size_t j = 0; j < k; j++)
                spellable = spellable && ok[(unsigned char)s[len + j]];
            len += spellable ? k : 0; // a vocabulary without some byte cannot round-trip it
        }
        garlic_error err = {0};
        ids.n = 0;
        text.len = 0;
        assert_int_equal(tokenizer_encode(t, s, len, 0, &ids, &err), GARLIC_OK);
        assert_int_equal(tokenizer_decode(t, ids.ids, ids.n, 0, &text, &err), GARLIC_OK);
        if (text.len != len || memcmp(text.data, s, len) != 0)
            fail_msg("%s: round trip %d: '%.*s' -> '%s' (%s)", name, i, (int)len, s, text.data,
                     format_ids(ids.ids, ids.n));
        tokenizer_stream st;
        tokenizer_stream_init(&st, t, 0);
        size_t total = 0, w;
        for (size_t k = 0; k < ids.n; k++) {
            assert_int_equal(tokenizer_stream_push(&st, ids.ids[k], chunk, cap, &w, &err), 0);
            assert_true(utf8_valid(chunk, w));
            assert_true(total + w <= len);
            memcpy(streamed + total, chunk, w);
            total += w;
        }
        assert_int_equal(tokenizer_stream_flush(&st, chunk, cap), 0);
        assert_int_equal(total, len);
        assert_memory_equal(streamed, s, len);
    }
    free(chunk);
    free(streamed);
    tokenizer_ids_deinit(&ids);
    tokenizer_text_deinit(&text);
}

static void test_round_trip(void **state)
{
    (void)state;
    skip_without_shared();
    for (int i = 0; i < N_VECTOR_VOCABS; i++) {
        tokenizer *t = open_shared_vocab(vector_vocabs[i]);
        if (tokenizer_get_kind(t) == TOKENIZER_KIND_WPM) { // lowercases: no round trip
            tokenizer_free(t);
            continue;
        }
        bool lossless = tokenizer_is_lossless(t);
        clock_t start = clock();
        check_round_trips(vector_vocabs[i], t, 10000, 1000 + (uint64_t)i);
        print_message("  %-15s 10000 round trips in %.2f s%s\n", vector_vocabs[i],
                      (double)(clock() - start) / CLOCKS_PER_SEC,
                      lossless ? "" : " (not lossless: only spellable bytes)");
        tokenizer_free(t);
    }
}

// Options for a small vocabulary written in-process (defaults: a valid gpt2 vocabulary).
typedef struct vocab_opts {
    const char *model; // tokenizer.ggml.model
    const char *pre;   // tokenizer.ggml.pre, NULL to omit
    int score_delta;   // scores array length = n_tokens + delta (SPM only)
    int bad_type;      // when set, token 5 gets this type value
    int64_t bos_id;    // tokenizer.ggml.bos_token_id, -2 to omit
    bool omit_merges;
    bool omit_tokens;
} vocab_opts;

static const char *const bpe_merges[] = {"h e",          "l l",           "he ll",
                                         "hell o",       "\xc4\xa0 w",    "o r",
                                         "\xc4\xa0w or", "\xc4\xa0wor l", "\xc4\xa0worl d"};
static const char *const spm_pieces[] = {"\xe2\x96\x81",
                                         "h",
                                         "e",
                                         "l",
                                         "o",
                                         "w",
                                         "r",
                                         "d",
                                         "he",
                                         "ll",
                                         "hell",
                                         "hello",
                                         "\xe2\x96\x81hello",
                                         "or",
                                         "wor",
                                         "world",
                                         "\xe2\x96\x81world",
                                         "worl"};

// The byte-level BPE alphabet: printable bytes stand for themselves, the others for
// U+0100 onwards in byte order.
static void alphabet_char(int b, char *dst)
{
    unsigned cp = (unsigned)b;
    if (b <= 32)
        cp = 256u + (unsigned)b;
    else if (b >= 127 && b <= 160)
        cp = 289u + (unsigned)b - 127;
    else if (b == 173)
        cp = 323;
    if (cp < 0x80) {
        dst[0] = (char)cp, dst[1] = 0;
        return;
    }
    dst[0] = (char)(0xc0 | cp >> 6), dst[1] = (char)(0x80 | (cp & 0x3f)), dst[2] = 0;
}

// Writes a small vocabulary. gpt2: the 256 byte-alphabet characters, merges spelling
// "hello" and " world", "<|end|>" (CONTROL) and "<tool>" (USER_DEFINED). llama: <unk>, <s>,
// </s>, the 256 <0xNN> byte tokens and pieces spelling "hello world" (longer = higher score).
static const char *write_vocab(const char *name, vocab_opts o)
{
    static char names[300 + 32][32];
    char(*tokens)[32] = names;
    const char *ptr[300 + 32];
    int32_t types[300 + 32];
    float scores[300 + 32];
    int n = 0;
    bool spm = strcmp(o.model, "llama") == 0;
    if (spm) {
        const char *first[] = {"<unk>", "<s>", "</s>"};
        for (int i = 0; i < 3; i++, n++)
            snprintf(tokens[n], 32, "%s", first[i]), types[n] = i ? 3 : 2, scores[n] = 0;
    }
    for (int b = 0; b < 256; b++, n++) {
        types[n] = spm ? 6 : 1;
        scores[n] = 0;
        if (spm) {
            snprintf(tokens[n], 32, "<0x%02X>", b);
        } else {
            alphabet_char(b, tokens[n]);
        }
    }
    size_t n_extra = spm ? sizeof spm_pieces / sizeof *spm_pieces : 0;
    for (size_t i = 0; i < n_extra; i++, n++)
        snprintf(tokens[n], 32, "%s", spm_pieces[i]), types[n] = 1,
                                                      scores[n] = (float)strlen(spm_pieces[i]);
    for (size_t i = 0; !spm && i < sizeof bpe_merges / sizeof *bpe_merges; i++, n++) {
        const char *m = bpe_merges[i], *sp = strchr(m, ' ');
        snprintf(tokens[n], 32, "%.*s%s", (int)(sp - m), m, sp + 1);
        types[n] = 1;
    }
    if (!spm) {
        snprintf(tokens[n], 32, "<|end|>"), types[n++] = 3;
        snprintf(tokens[n], 32, "<tool>"), types[n++] = 4;
    }
    for (int i = 0; i < n; i++)
        ptr[i] = tokens[i];
    if (o.bad_type)
        types[5] = o.bad_type;
    gguf_writer *w = gguf_writer_new();
    assert_non_null(w);
    assert_int_equal(gguf_writer_set_str(w, "tokenizer.ggml.model", o.model), 0);
    if (o.pre)
        assert_int_equal(gguf_writer_set_str(w, "tokenizer.ggml.pre", o.pre), 0);
    if (!o.omit_tokens)
        assert_int_equal(gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", ptr, (uint64_t)n), 0);
    assert_int_equal(
        gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, types, (uint64_t)n),
        0);
    if (spm)
        assert_int_equal(gguf_writer_set_arr(w, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, scores,
                                             (uint64_t)(n + o.score_delta)),
                         0);
    if (!spm && !o.omit_merges)
        assert_int_equal(gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", bpe_merges,
                                                 sizeof bpe_merges / sizeof *bpe_merges),
                         0);
    if (o.bos_id != -2)
        assert_int_equal(gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)o.bos_id),
                         0);
    const char *path = test_temp_path(name);
    garlic_error err = {0};
    assert_int_equal(gguf_writer_write(w, path, NULL, NULL, &err), 0);
    gguf_writer_free(w);
    return path;
}

static const vocab_opts bpe_opts = {.model = "gpt2", .pre = "gpt-2", .bos_id = 1};
static const vocab_opts spm_opts = {.model = "llama", .bos_id = 1};

// Encodes text with t and flags, returning the ids formatted like format_ids.
static const char *encode_str(const tokenizer *t, const char *text, unsigned flags)
{
    tokenizer_ids ids = {0};
    garlic_error err = {0};
    assert_int_equal(tokenizer_encode(t, text, strlen(text), flags, &ids, &err), GARLIC_OK);
    const char *s = format_ids(ids.ids, ids.n);
    tokenizer_ids_deinit(&ids);
    return s;
}

static void test_small_vocabs(void **state)
{
    (void)state;
    garlic_error err = {0};
    tokenizer *bpe = tokenizer_open(write_vocab("bpe.gguf", bpe_opts), &err);
    assert_non_null(bpe);
    // 256 alphabet tokens, then the merges' results: "he"=256 ... " world"=264.
    assert_string_equal(encode_str(bpe, "hello world", 0), " 259 264");
    assert_string_equal(encode_str(bpe, "hello<|end|>", 0), " 259 60 124 101 110 100 124 62");
    assert_string_equal(encode_str(bpe, "hello<|end|>", TOKENIZER_PARSE_SPECIAL), " 259 265");
    assert_string_equal(encode_str(bpe, "a<tool>b", 0), " 97 266 98"); // USER_DEFINED always
    tokenizer *spm = tokenizer_open(write_vocab("spm.gguf", spm_opts), &err);
    assert_non_null(spm);
    // 3 + 256 byte tokens, then the pieces: "▁hello" = 271, "▁world" = 275.
    assert_string_equal(encode_str(spm, "hello world", 0), " 271 275");
    assert_string_equal(encode_str(spm, "hello world", TOKENIZER_ADD_SPECIAL), " 1 271 275");
    assert_string_equal(encode_str(spm, "hi", 0), " 259 260 108"); // 'i' -> <0x69>
    assert_string_equal(encode_str(spm, "", TOKENIZER_ADD_SPECIAL), " 1");
    assert_string_equal(encode_str(spm, "</s>x", TOKENIZER_PARSE_SPECIAL), " 2 259 123");
    tokenizer_free(bpe);
    tokenizer_free(spm);
    // Every pre-tokenizer garlic knows compiles and splits the same text losslessly.
    const char *pres[] = {"default", "gpt-2",       "mpt",       "gpt-neox",     "llama-bpe",
                          "qwen2",   "falcon",      "starcoder", "refact",       "command-r",
                          "smollm",  "olmo",        "dbrx",      "deepseek-llm", "deepseek-coder",
                          "gpt-4o",  "deepseek-v3", "kimi-k2"};
    const char *text = "Hello world's 12345 \xe4\xb8\xad\xe6\x96\x87  \t\n!! x";
    for (size_t i = 0; i < sizeof pres / sizeof pres[0]; i++) {
        vocab_opts o = bpe_opts;
        o.pre = pres[i];
        tokenizer *t = tokenizer_open(write_vocab("pre.gguf", o), &err);
        if (!t)
            fail_msg("pre %s: %s", pres[i], err.message);
        assert_string_equal(tokenizer_pre_name(t), pres[i]);
        tokenizer_ids ids = {0};
        tokenizer_text back = {0};
        assert_int_equal(tokenizer_encode(t, text, strlen(text), 0, &ids, &err), GARLIC_OK);
        assert_int_equal(tokenizer_decode(t, ids.ids, ids.n, 0, &back, &err), GARLIC_OK);
        assert_string_equal(back.data, text);
        tokenizer_ids_deinit(&ids);
        tokenizer_text_deinit(&back);
        tokenizer_free(t);
    }
}

// Kimi-K2 ships no tokenizer.json: its split of the same strings, by its tiktoken regex in
// JavaScript (tests/data/tokenizer/kimi-k2.split, one JSON array of pre-tokens per line),
// against garlic's pre-tokens.
static void test_kimi_split(void **state)
{
    (void)state;
    vocab_opts o = bpe_opts;
    o.pre = "kimi-k2";
    garlic_error err = {0};
    tokenizer *t = tokenizer_open(write_vocab("kimi.gguf", o), &err);
    if (!t)
        fail_msg("kimi-k2: %s", err.message);
    char *inp = test_read_file("tests/data/tokenizer/gpt-4o.inp", NULL);
    char *split = test_read_file("tests/data/tokenizer/kimi-k2.split", NULL);
    assert_non_null(inp);
    assert_non_null(split);
    static const char sep[] = "\n__ggml_vocab_test__\n";
    const char *p = inp, *line = split;
    int n = 0, bad = 0;
    tokenizer_ids got = {0}, want = {0};
    for (const char *end; (end = strstr(p, sep)); p = end + strlen(sep), n++) {
        const char *eol = strchr(line, '\n');
        assert_non_null(eol);
        cJSON *arr = cJSON_ParseWithLength(line, (size_t)(eol - line));
        line = eol + 1;
        assert_true(cJSON_IsArray(arr));
        want.n = 0;
        int32_t at = 0;
        const cJSON *piece;
        cJSON_ArrayForEach(piece, arr)
        {
            assert_true(cJSON_IsString(piece));
            at += (int32_t)strlen(piece->valuestring);
            assert_int_equal(tokenizer_ids_push(&want, at), GARLIC_OK);
        }
        cJSON_Delete(arr);
        assert_int_equal(at, end - p); // the pieces spell the string
        got.n = 0;
        assert_int_equal(tokenizer_bpe_split(t, p, (size_t)(end - p), &got, &err), GARLIC_OK);
        if (got.n != want.n || (got.n && memcmp(got.ids, want.ids, got.n * sizeof *got.ids) != 0)) {
            bad++;
            print_message("kimi-k2 #%d %.*s\n  want ends%s\n  got ends %s\n", n + 1,
                          (int)(end - p > 40 ? 40 : end - p), p, format_ids(want.ids, want.n),
                          format_ids(got.ids, got.n));
        }
    }
    print_message("  %-15s %d/%d\n", "kimi-k2 split", n - bad, n);
    assert_true(n > 50);
    assert_int_equal(bad, 0);
    tokenizer_ids_deinit(&got);
    tokenizer_ids_deinit(&want);
    free(inp);
    free(split);
    tokenizer_free(t);
}

// Each malformed vocabulary fails to load with an error naming the file and the key.
static void test_bad_vocabs(void **state)
{
    (void)state;
    struct {
        vocab_opts o;
        int code;
        const char *needle;
    } cases[] = {
        {{.model = "sentencepiece2", .pre = "gpt-2", .bos_id = -2},
         GARLIC_EUNSUPPORTED,
         "tokenizer.ggml.model"},
        {{.model = "gpt2", .pre = "no-such-pre", .bos_id = -2}, GARLIC_EUNSUPPORTED, "no-such-pre"},
        {{.model = "llama", .score_delta = -1, .bos_id = 1},
         GARLIC_EFORMAT,
         "tokenizer.ggml.scores"},
        {{.model = "llama", .score_delta = 2, .bos_id = 1},
         GARLIC_EFORMAT,
         "tokenizer.ggml.scores"},
        {{.model = "gpt2", .pre = "gpt-2", .bos_id = 100000},
         GARLIC_EFORMAT,
         "tokenizer.ggml.bos_token_id"},
        {{.model = "gpt2", .pre = "gpt-2", .bos_id = -2, .bad_type = 9},
         GARLIC_EFORMAT,
         "tokenizer.ggml.token_type"},
        {{.model = "gpt2", .pre = "gpt-2", .bos_id = -2, .omit_merges = true},
         GARLIC_EFORMAT,
         "tokenizer.ggml.merges"},
        {{.model = "gpt2", .pre = "gpt-2", .bos_id = -2, .omit_tokens = true},
         GARLIC_EFORMAT,
         "tokenizer.ggml.tokens"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *path = write_vocab("bad.gguf", cases[i].o);
        garlic_error err = {0};
        tokenizer *t = tokenizer_open(path, &err);
        if (t)
            fail_msg("case %zu loaded", i);
        if (err.code != cases[i].code || !strstr(err.message, cases[i].needle) ||
            !strstr(err.message, "bad.gguf"))
            fail_msg("case %zu: code %d, message '%s'", i, err.code, err.message);
    }
    // A missing bos_token_id is fine; 0xFFFFFFFF means "none", as llama2.c exports write it.
    vocab_opts none = bpe_opts;
    none.bos_id = 0xFFFFFFFFll;
    garlic_error err = {0};
    tokenizer *t = tokenizer_open(write_vocab("none.gguf", none), &err);
    assert_non_null(t);
    assert_int_equal(tokenizer_special_id(t, TOKENIZER_SPECIAL_BOS), -1);
    tokenizer_free(t);
}

// Special tokens in the real vocabularies: parsed only when asked, BOS when asked, and
// phi-3's whitespace stripping after its chat tokens.
static void test_special_tokens(void **state)
{
    (void)state;
    skip_without_shared();
    tokenizer *t = open_shared_vocab("llama-bpe");
    assert_string_equal(encode_str(t, "<|eot_id|>", TOKENIZER_PARSE_SPECIAL), " 128009");
    assert_string_equal(encode_str(t, "<|eot_id|>", 0), " 27 91 68 354 851 91 29");
    unsigned both = TOKENIZER_ADD_SPECIAL | TOKENIZER_PARSE_SPECIAL;
    assert_string_equal(encode_str(t, "Hi<|eot_id|>", both), " 128000 13347 128009");
    size_t len;
    const char *p = tokenizer_piece(t, 128009, 0, &len);
    assert_int_equal(len, 0);
    p = tokenizer_piece(t, 128009, TOKENIZER_RENDER_SPECIAL, &len);
    assert_memory_equal(p, "<|eot_id|>", len);
    tokenizer_free(t);
    t = open_shared_vocab("bert-bge"); // WordPiece: [CLS] ... [SEP], lowercased, no accents
    assert_string_equal(encode_str(t, "H\xc3\xa9llo, World", TOKENIZER_ADD_SPECIAL),
                        " 101 7592 1010 2088 102");
    tokenizer_text text = {0};
    garlic_error err = {0};
    const int32_t ids[] = {101, 7592, 1010, 2088, 102};
    assert_int_equal(tokenizer_decode(t, ids, 5, 0, &text, &err), GARLIC_OK);
    assert_string_equal(text.data, "hello , world");
    tokenizer_text_deinit(&text);
    tokenizer_free(t);
    t = open_shared_vocab("phi-3");
    char want[512];
    snprintf(want, sizeof want, " 32010%s", encode_str(t, "Hi", 0));
    assert_string_equal(encode_str(t, "<|user|>\n Hi", TOKENIZER_PARSE_SPECIAL), want);
    tokenizer_free(t);
}

// Streaming: byte tokens are held back until their character is whole; bytes that can never
// be valid come out as U+FFFD; the leading space goes at the start and after BOS.
static void test_stream(void **state)
{
    (void)state;
    garlic_error err = {0};
    tokenizer *t = tokenizer_open(write_vocab("spm.gguf", spm_opts), &err);
    assert_non_null(t);
    size_t cap = tokenizer_stream_max_output(t), w;
    char out[256];
    assert_true(cap <= sizeof out);
    tokenizer_stream s;
    tokenizer_stream_init(&s, t, 0);
    const int32_t smile[] = {3 + 0xf0, 3 + 0x9f, 3 + 0x98, 3 + 0x80}; // U+1F600
    for (int i = 0; i < 3; i++) {
        assert_int_equal(tokenizer_stream_push(&s, smile[i], out, cap, &w, &err), 0);
        assert_int_equal(w, 0);
    }
    assert_int_equal(tokenizer_stream_push(&s, smile[3], out, cap, &w, &err), 0);
    assert_int_equal(w, 4);
    assert_memory_equal(out, "\xf0\x9f\x98\x80", 4);
    assert_int_equal(tokenizer_stream_push(&s, 3 + 0xe2, out, cap, &w, &err), 0);
    assert_int_equal(w, 0);
    assert_int_equal(tokenizer_stream_push(&s, 3 + '(', out, cap, &w, &err), 0);
    assert_int_equal(w, 4);
    assert_memory_equal(out, "\xef\xbf\xbd(", 4);
    assert_int_equal(tokenizer_stream_push(&s, 3 + 0xff, out, cap, &w, &err), 0);
    assert_memory_equal(out, "\xef\xbf\xbd", w);
    assert_int_equal(tokenizer_stream_push(&s, 3 + 0xc3, out, cap, &w, &err), 0);
    assert_int_equal(tokenizer_stream_flush(&s, out, sizeof out), 3);
    assert_int_equal(tokenizer_stream_push(&s, 1 << 20, out, cap, &w, &err), GARLIC_EINVAL);
    assert_int_equal(tokenizer_stream_push(&s, 5, out, 2, &w, &err), GARLIC_EINVAL);
    // " hello" loses its space at the start and after BOS, not elsewhere.
    tokenizer_stream_init(&s, t, 0);
    const int32_t ids[] = {271, 275, 1, 271};
    const char *want[] = {"hello", " world", "", "hello"};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(tokenizer_stream_push(&s, ids[i], out, cap, &w, &err), 0);
        assert_int_equal(w, strlen(want[i]));
        assert_memory_equal(out, want[i], w);
    }
    tokenizer_text text = {0};
    assert_int_equal(tokenizer_decode(t, ids, 4, TOKENIZER_RENDER_SPECIAL, &text, &err), 0);
    assert_string_equal(text.data, "hello world<s>hello");
    tokenizer_text_deinit(&text);
    tokenizer_free(t);
}

typedef struct thread_job {
    const tokenizer *t;
    const char *inp; // the .inp file's contents
    int mismatches;
} thread_job;

// Encodes every vector input 20 times and compares with the first result.
static void *encode_all(void *arg)
{
    thread_job *job = arg;
    static const char sep[] = "\n__ggml_vocab_test__\n";
    tokenizer_ids first = {0}, again = {0};
    garlic_error err;
    for (const char *p = job->inp, *end; (end = strstr(p, sep)); p = end + strlen(sep)) {
        first.n = 0;
        tokenizer_encode(job->t, p, (size_t)(end - p), TOKENIZER_ADD_SPECIAL, &first, &err);
        for (int r = 0; r < 20; r++) {
            again.n = 0;
            tokenizer_encode(job->t, p, (size_t)(end - p), TOKENIZER_ADD_SPECIAL, &again, &err);
            job->mismatches += again.n != first.n ||
                memcmp(again.ids, first.ids, again.n * sizeof *again.ids) != 0;
        }
    }
    tokenizer_ids_deinit(&first);
    tokenizer_ids_deinit(&again);
    return NULL;
}

// One tokenizer used by four threads at once gives the same ids as alone.
static void test_threads(void **state)
{
    (void)state;
    skip_without_shared();
    const char *names[] = {"llama-spm", "llama-bpe", "deepseek-llm", "bert-bge"};
    char *inp = test_read_file(test_shared_path("tokenizer/ggml-vocab-gpt-2.gguf.inp"), NULL);
    assert_non_null(inp);
    for (int v = 0; v < 4; v++) {
        tokenizer *t = open_shared_vocab(names[v]);
        pthread_t threads[4];
        thread_job jobs[4];
        for (int i = 0; i < 4; i++) {
            jobs[i] = (thread_job){t, inp, 0};
            assert_int_equal(pthread_create(&threads[i], NULL, encode_all, &jobs[i]), 0);
        }
        for (int i = 0; i < 4; i++) {
            pthread_join(threads[i], NULL);
            assert_int_equal(jobs[i].mismatches, 0);
        }
        tokenizer_free(t);
    }
    free(inp);
}

// Every allocation failure while loading or tokenizing gives GARLIC_ENOMEM and no leak
// (leaks show up under ASan).
static void test_alloc_failures(void **state)
{
    (void)state;
    const char *paths[2] = {write_vocab("bpe.gguf", bpe_opts), write_vocab("spm.gguf", spm_opts)};
    char copy[2][600];
    for (int v = 0; v < 2; v++)
        snprintf(copy[v], sizeof copy[v], "%s", paths[v]);
    const char *text = "hello world <|end|> \xe4\xb8\xad\xff hello";
    for (int v = 0; v < 2; v++) {
        int n;
        for (n = 0;; n++) {
            garlic_error err = {0};
            garlic_alloc_fail_after(n);
            tokenizer *t = tokenizer_open(copy[v], &err);
            garlic_alloc_fail_reset();
            if (t) {
                tokenizer_free(t);
                break;
            }
            assert_int_not_equal(err.code, GARLIC_OK);
        }
        garlic_error err = {0};
        tokenizer *t = tokenizer_open(copy[v], &err);
        assert_non_null(t);
        for (n = 0;; n++) {
            tokenizer_ids ids = {0};
            tokenizer_text out = {0};
            garlic_alloc_fail_after(n);
            int rc = tokenizer_encode(t, text, strlen(text), TOKENIZER_ADD_SPECIAL, &ids, &err);
            if (rc == GARLIC_OK)
                rc = tokenizer_decode(t, ids.ids, ids.n, 0, &out, &err);
            garlic_alloc_fail_reset();
            tokenizer_ids_deinit(&ids);
            tokenizer_text_deinit(&out);
            if (rc == GARLIC_OK)
                break;
            assert_int_equal(rc, GARLIC_ENOMEM);
        }
        tokenizer_free(t);
    }
}

// Parses a NormalizationTest.txt column ("0041 0301") into UTF-8 in dst; returns its length.
static size_t column_utf8(const char *col, char *dst)
{
    size_t n = 0;
    for (char *end; *col && *col != ';';) {
        unsigned long cp = strtoul(col, &end, 16);
        if (end == col)
            break;
        n += utf8_encode((uint32_t)cp, dst + n);
        col = end;
        while (*col == ' ')
            col++;
    }
    return n;
}

// NFC against the Unicode conformance file (NormalizationTest.txt of Debian's unicode-data):
// for every line c1;c2;c3;c4;c5, c2 == NFC(c1) == NFC(c2) == NFC(c3) and c4 == NFC(c4) ==
// NFC(c5). Then a hostile run of marks (linear time) and every allocation failing.
static void test_nfc(void **state)
{
    (void)state;
    FILE *f = popen("bzcat /usr/share/unicode/NormalizationTest.txt.bz2 2>/dev/null", "r");
    char line[1024], cols[5][256];
    size_t lens[5], checked = 0;
    while (f && fgets(line, sizeof line, f)) {
        if (line[0] == '#' || line[0] == '@' || line[0] == '\n')
            continue;
        const char *p = line;
        for (int c = 0; c < 5; c++) {
            lens[c] = column_utf8(p, cols[c]);
            p = strchr(p, ';') + 1;
        }
        const int want_of[5] = {1, 1, 1, 3, 3};
        for (int c = 0; c < 5; c++) {
            char *got;
            size_t n;
            assert_int_equal(tokenizer_nfc(cols[c], lens[c], &got, &n), GARLIC_OK);
            int w = want_of[c];
            if (n != lens[w] || memcmp(got, cols[w], n) != 0)
                fail_msg("NFC of column %d of %s", c + 1, line);
            garlic_free(got);
            checked++;
        }
    }
    if (f)
        pclose(f);
    if (checked == 0)
        print_message("NormalizationTest.txt.bz2 or bzcat missing: conformance not checked\n");
    else
        print_message("NFC: %zu conformance cases\n", checked);

    // 2 MB of marks in descending class order: sorted in linear time, composed with 'e'.
    size_t n_marks = 1 << 19, len = 1 + 4 * n_marks, n;
    char *text = malloc(len), *got;
    assert_non_null(text);
    text[0] = 'e';
    for (size_t i = 0; i < n_marks; i++)
        memcpy(text + 1 + 4 * i, "\xcc\x81\xcc\xa3", 4); // U+0301 (230), U+0323 (220)
    double t0 = (double)clock() / CLOCKS_PER_SEC;
    assert_int_equal(tokenizer_nfc(text, len, &got, &n), GARLIC_OK);
    assert_true((double)clock() / CLOCKS_PER_SEC - t0 < 2.0);
    assert_memory_equal(got, "\xe1\xba\xb9\xcc\xa3", 5); // U+1EB9 (e + dot below), next dot
    garlic_free(got);
    free(text);
    const char *mixed = "A\xcc\x8a\xff e\xcc\x81 \xe1\x84\x92\xe1\x85\xa1\xe1\x86\xab";
    for (long k = 0;; k++) {
        garlic_alloc_fail_after(k);
        int rc = tokenizer_nfc(mixed, strlen(mixed), &got, &n);
        garlic_alloc_fail_reset();
        if (rc == GARLIC_OK)
            break;
        assert_int_equal(rc, GARLIC_ENOMEM);
    }
    assert_string_equal(got, "\xc3\x85\xff \xc3\xa9 \xed\x95\x9c"); // Å, invalid byte, é, 한
    garlic_free(got);
}

// `garlic tokenize`: ids match the library (BOS by default), stdin with newlines, --no-bos,
// --special, usage errors and a clear message for a bad file.
static void test_cli(void **state)
{
    (void)state;
    skip_without_shared();
    const char *model = test_shared_path("models/stories260K.gguf");
    char path[4096];
    snprintf(path, sizeof path, "%s", model);
    char *out = NULL, *err = NULL;
    assert_int_equal(
        test_run(&out, NULL, "%s tokenize %s --ids '%s'", test_garlic(), path, prompts[0]), 0);
    assert_string_equal(out, "1 403 407 261 378 432 383 286 261 376 298 315 421 395 317 426\n");
    free(out);
    garlic_error e = {0};
    tokenizer *t = tokenizer_open(path, &e);
    assert_non_null(t);
    char want[512];
    snprintf(want, sizeof want, "%s\n", encode_str(t, "a\nb  c\n", 0) + 1);
    assert_int_equal(test_run(&out, NULL, "printf 'a\\nb  c\\n' | %s tokenize %s - --ids --no-bos",
                              test_garlic(), path),
                     0);
    assert_string_equal(out, want);
    free(out);
    snprintf(want, sizeof want, "%s\n", encode_str(t, "</s>x", TOKENIZER_PARSE_SPECIAL) + 1);
    assert_int_equal(test_run(&out, NULL, "%s tokenize --no-bos --special %s '</s>x' --ids",
                              test_garlic(), path),
                     0);
    assert_string_equal(out, want);
    free(out);
    tokenizer_free(t);
    assert_int_equal(test_run(&out, NULL, "%s tokenize %s 'Hi'", test_garlic(), path), 0);
    assert_non_null(strstr(out, "'<s>'"));
    free(out);
    assert_int_equal(test_run(NULL, &err, "%s tokenize %s", test_garlic(), path), 2);
    assert_non_null(strstr(err, "usage"));
    free(err);
    assert_int_equal(test_run(NULL, &err, "%s tokenize /nonexistent.gguf hi", test_garlic()), 1);
    assert_non_null(strstr(err, "/nonexistent.gguf"));
    free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_reduced_vectors),
        cmocka_unit_test(test_wordpiece_vectors),
        cmocka_unit_test(test_special_text),
        cmocka_unit_test(test_kimi_split),
        cmocka_unit_test(test_reference_models),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_small_vocabs),
        cmocka_unit_test(test_bad_vocabs),
        cmocka_unit_test(test_special_tokens),
        cmocka_unit_test(test_stream),
        cmocka_unit_test(test_alloc_failures),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_cli),
        cmocka_unit_test(test_nfc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
