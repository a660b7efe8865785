// SPDX-License-Identifier: MIT
// WordPiece (tokenizer.ggml.model "bert"), as llama.cpp runs it for embedding models. Each
// character is reduced to the first code point of its canonical decomposition (which strips
// accents), control characters are dropped, the rest is lowercased; whitespace ends a word,
// and punctuation, ASCII symbols and CJK ideographs are words of their own. Each word, with
// "▁" in front, is then cut greedily into the longest tokens from the left; a word that
// cannot be cut completely becomes the unknown token.
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <string.h>

#include "base/alloc.h"
#include "base/utf8.h"
#include "tokenizer/internal.h"

// What a code point is to BERT's basic tokenizer.
typedef enum char_class {
    CHAR_CLASS_OTHER,   // part of a word
    CHAR_CLASS_CONTROL, // dropped (Cc, Cf, Co, surrogates)
    CHAR_CLASS_PUNCT,   // a word of its own (P)
    CHAR_CLASS_SYMBOL,  // a word of its own when ASCII (S)
    CHAR_CLASS_COUNT
} char_class;

int tokenizer_wpm_setup(tokenizer *t, const char *path, garlic_error *err)
{
    t->pcre_context = tokenizer_pcre_context_new();
    pcre2_compile_context *cc = t->pcre_context ? pcre2_compile_context_create(t->pcre_context)
                                                : NULL;
    int code;
    PCRE2_SIZE at;
    // Groups 1..3: control (Cc, Cf, Co), punctuation, symbol. Matched anchored, one char.
    pcre2_code *re = cc
        ? pcre2_compile((PCRE2_SPTR) "(\\p{Cc}|\\p{Cf}|\\p{Co})|(\\p{P})|(\\p{S})",
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
                   : CHAR_CLASS_OTHER;
}

// Cuts word[0..n) (which starts with "▁") into the longest tokens from the left, or emits
// the unknown token when some position matches no token.
static int emit_word(const tokenizer *t, const char *word, size_t n, tokenizer_ids *out)
{
    size_t start = out->n;
    for (size_t i = 0; i < n;) {
        size_t j = i + t->max_token_len < n ? i + t->max_token_len : n;
        int32_t id = -1;
        for (; j > i && (id = tokenizer_lookup2(t, word + i, j - i, "", 0)) < 0; j--)
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

// Ends the word being built in word[3..*n) (word[0..3) is "▁"), if any.
static int flush_word(const tokenizer *t, const char *word, size_t *n, tokenizer_ids *out)
{
    int rc = *n > 3 ? emit_word(t, word, *n, out) : GARLIC_OK;
    *n = 3;
    return rc;
}

int tokenizer_wpm_encode(const tokenizer *t, const char *text, size_t len, tokenizer_ids *out,
                         garlic_error *err)
{
    char *word = garlic_malloc(len * 4 + 8); // lowercasing may lengthen a character
    pcre2_match_data *md = pcre2_match_data_create(4, t->pcre_context);
    int rc = word && md ? GARLIC_OK : GARLIC_ENOMEM;
    size_t n = 3;
    if (word)
        memcpy(word, "\xe2\x96\x81", 3);
    for (size_t i = 0, used; rc == GARLIC_OK && i < len; i += used) {
        const unsigned char *at = (const unsigned char *)text + i;
        uint32_t c = tokenizer_nfd_base(tokenizer_next_code_point(at, len - i, &used));
        if (is_white_space(c)) {
            rc = flush_word(t, word, &n, out);
            continue;
        }
        char_class cls = classify(t, c, md);
        if (c == 0 || c == 0xfffd || cls == CHAR_CLASS_CONTROL)
            continue;
        if (cls == CHAR_CLASS_PUNCT || (c < 0x7f && cls == CHAR_CLASS_SYMBOL) || is_chinese(c)) {
            rc = flush_word(t, word, &n, out);
            n += utf8_encode(tokenizer_to_lower(c), word + n);
            if (rc == GARLIC_OK)
                rc = flush_word(t, word, &n, out);
            continue;
        }
        n += utf8_encode(tokenizer_to_lower(c), word + n);
    }
    if (rc == GARLIC_OK)
        rc = flush_word(t, word, &n, out);
    garlic_free(word);
    pcre2_match_data_free(md);
    if (rc != GARLIC_OK)
        return garlic_error_set(err, rc, "out of memory tokenizing");
    return GARLIC_OK;
}
