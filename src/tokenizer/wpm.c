// SPDX-License-Identifier: MIT
// WordPiece (tokenizer.ggml.model "bert"), as BERT's uncased tokenizer runs it (HF's
// BertNormalizer, BertPreTokenizer and WordPiece): control characters are dropped and
// whitespace ends a word; every other character is fully decomposed (NFD), its nonspacing
// marks (Mn) dropped (this strips accents) and the rest lowercased; punctuation, ASCII symbols
// and CJK ideographs are words of their own. Each word, with "▁" in front, is then cut
// greedily into the longest tokens from the left; a word longer than 100 characters, or one
// that cannot be cut completely, becomes the unknown token.
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <string.h>

#include "base/alloc.h"
#include "base/utf8.h"
#include "tokenizer/internal.h"

// What a code point is to BERT's basic tokenizer.
typedef enum char_class {
    CHAR_CLASS_OTHER,   // part of a word
    CHAR_CLASS_CONTROL, // dropped (Cc, Cf, Co, surrogates) unless tab, newline or return
    CHAR_CLASS_PUNCT,   // a word of its own (P)
    CHAR_CLASS_SYMBOL,  // a word of its own when ASCII (S)
    CHAR_CLASS_MARK,    // dropped after decomposition (Mn: accents)
    CHAR_CLASS_COUNT
} char_class;

enum { MAX_WORD_CHARS = 100 }; // BERT's max_input_chars_per_word

int tokenizer_wpm_setup(tokenizer *t, const char *path, garlic_error *err)
{
    t->pcre_context = tokenizer_pcre_context_new();
    pcre2_compile_context *cc = t->pcre_context ? pcre2_compile_context_create(t->pcre_context)
                                                : NULL;
    int code;
    PCRE2_SIZE at;
    // Groups 1..4: control (Cc, Cf, Co), punctuation, symbol, mark. Anchored, one char.
    pcre2_code *re = cc
        ? pcre2_compile((PCRE2_SPTR) "(\\p{Cc}|\\p{Cf}|\\p{Co})|(\\p{P})|(\\p{S})|(\\p{Mn})",
                        PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &code, &at, cc)
        : NULL;
    pcre2_compile_context_free(cc);
    if (!re)
        return garlic_error_set(err, GARLIC_ENOMEM, "%s: out of memory compiling a regex", path);
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
    t->regex[0] = re;
    t->n_regex = 1;
    for (uint32_t id = 0; id < t->n_vocab; id++)
        if (t->text_len[id] > t->max_token_len)
            t->max_token_len = t->text_len[id];
    return GARLIC_OK;
}

static bool is_white_space(uint32_t c)
{
    return (c >= 9 && c <= 13) || c == ' ' || c == 0x85 || c == 0xa0 || c == 0x1680 ||
        (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f ||
        c == 0x3000;
}

// CJK ideographs as BERT's tokenizer lists them.
static bool is_chinese(uint32_t c)
{
    return (c >= 0x4e00 && c <= 0x9fff) || (c >= 0x3400 && c <= 0x4dbf) ||
        (c >= 0x20000 && c <= 0x2a6df) || (c >= 0x2a700 && c <= 0x2b73f) ||
        (c >= 0x2b740 && c <= 0x2b81f) || (c >= 0x2b920 && c <= 0x2ceaf) ||
        (c >= 0xf900 && c <= 0xfaff) || (c >= 0x2f800 && c <= 0x2fa1f);
}

// The class of code point c (control, punctuation, symbol or other).
static char_class classify(const tokenizer *t, uint32_t c, pcre2_match_data *md)
{
    if (c >= 0xd800 && c <= 0xdfff)
        return CHAR_CLASS_CONTROL; // a surrogate (only from lenient decoding): Cs
    char buf[4];
    size_t n = utf8_encode(c, buf);
    int rc = pcre2_match(t->regex[0], (PCRE2_SPTR)buf, n, 0, PCRE2_ANCHORED | PCRE2_NO_UTF_CHECK,
                         md, NULL);
    return rc == 2 ? CHAR_CLASS_CONTROL
        : rc == 3  ? CHAR_CLASS_PUNCT
        : rc == 4  ? CHAR_CLASS_SYMBOL
        : rc == 5  ? CHAR_CLASS_MARK
                   : CHAR_CLASS_OTHER;
}

// The word being built: "▁" then its characters (word[0..n) bytes, chars characters).
typedef struct wpm_word {
    char *bytes;
    size_t n;
    size_t chars;
} wpm_word;

// Cuts the word into the longest tokens from the left, or emits the unknown token when some
// position matches no token or the word is too long.
static int emit_word(const tokenizer *t, const wpm_word *w, tokenizer_ids *out)
{
    size_t start = out->n, n = w->n;
    const char *word = w->bytes;
    for (size_t i = 0; i < n && w->chars <= MAX_WORD_CHARS;) {
        size_t j = i + t->max_token_len < n ? i + t->max_token_len : n;
        int32_t id = -1;
        // A continuation that starts with a literal "▁" would find a word-initial token (the
        // vocabulary's "x" is stored as "▁x", its "##x" as "x"): it matches nothing.
        bool literal_mark = i > 0 && n - i >= 3 && memcmp(word + i, "\xe2\x96\x81", 3) == 0;
        for (; !literal_mark && j > i && (id = tokenizer_lookup2(t, word + i, j - i, "", 0)) < 0;
             j--)
            ;
        if (id < 0) {
            out->n = start; // the whole word is unknown
            break;
        }
        if (tokenizer_ids_push(out, id) != GARLIC_OK)
            return GARLIC_ENOMEM;
        i = j;
    }
    if (out->n == start && t->special[TOKENIZER_SPECIAL_UNK] >= 0)
        return tokenizer_ids_push(out, t->special[TOKENIZER_SPECIAL_UNK]);
    return GARLIC_OK;
}

// Ends the word being built, if it has a character.
static int flush_word(const tokenizer *t, wpm_word *w, tokenizer_ids *out)
{
    int rc = w->chars ? emit_word(t, w, out) : GARLIC_OK;
    w->n = 3;
    w->chars = 0;
    return rc;
}

// Adds one character of the decomposed text, of class cls, to the words (a mark is dropped).
static int add_char(const tokenizer *t, uint32_t c, char_class cls, wpm_word *w, tokenizer_ids *out)
{
    if (cls == CHAR_CLASS_MARK)
        return GARLIC_OK;
    c = tokenizer_to_lower(c);
    if (cls == CHAR_CLASS_PUNCT || (c < 0x7f && cls == CHAR_CLASS_SYMBOL) || is_chinese(c)) {
        int rc = flush_word(t, w, out);
        w->n += utf8_encode(c, w->bytes + w->n);
        w->chars = 1;
        return rc == GARLIC_OK ? flush_word(t, w, out) : rc;
    }
    w->n += utf8_encode(c, w->bytes + w->n);
    w->chars++;
    return GARLIC_OK;
}

int tokenizer_wpm_encode(const tokenizer *t, const char *text, size_t len, tokenizer_ids *out,
                         garlic_error *err)
{
    // Each input byte becomes at most TOKENIZER_NFD_MAX code points of 4 bytes each.
    size_t cap;
    if (__builtin_mul_overflow(len, 4 * TOKENIZER_NFD_MAX, &cap) || cap > SIZE_MAX - 8)
        return garlic_error_set(err, GARLIC_EINVAL, "text too long");
    wpm_word w = {garlic_malloc(cap + 8), 3, 0};
    pcre2_match_data *md = pcre2_match_data_create(6, t->pcre_context);
    int rc = w.bytes && md ? GARLIC_OK : GARLIC_ENOMEM;
    if (w.bytes)
        memcpy(w.bytes, "\xe2\x96\x81", 3);
    for (size_t i = 0, used; rc == GARLIC_OK && i < len; i += used) {
        const unsigned char *at = (const unsigned char *)text + i;
        uint32_t c = tokenizer_next_code_point(at, len - i, &used);
        char_class cls = c == 0 || c == 0xfffd ? CHAR_CLASS_CONTROL : classify(t, c, md);
        if (cls == CHAR_CLASS_CONTROL && c != '\t' && c != '\n' && c != '\r')
            continue; // BERT cleans control characters out before it looks for whitespace
        if (is_white_space(c)) {
            rc = flush_word(t, &w, out);
            continue;
        }
        uint32_t parts[TOKENIZER_NFD_MAX];
        size_t n_parts = tokenizer_nfd(c, parts);
        for (size_t k = 0; rc == GARLIC_OK && k < n_parts; k++)
            rc = add_char(t, parts[k], n_parts == 1 ? cls : classify(t, parts[k], md), &w, out);
    }
    if (rc == GARLIC_OK)
        rc = flush_word(t, &w, out);
    garlic_free(w.bytes);
    pcre2_match_data_free(md);
    if (rc != GARLIC_OK)
        return garlic_error_set(err, rc, "out of memory tokenizing");
    return GARLIC_OK;
}
