// SPDX-License-Identifier: MIT
// SentencePiece-style BPE (tokenizer.ggml.model "llama"), as llama.cpp runs it: spaces
// become U+2581 ("▁"), a space is put in front of the text, the text is cut into UTF-8
// characters, and adjacent symbols are merged while their concatenation is a token, the
// highest-scoring merge first (leftmost on ties). A character that is no token falls back to
// its bytes' <0xNN> tokens, or to the unknown token when the vocabulary has none.
#include <string.h>

#include "base/alloc.h"
#include "tokenizer/internal.h"

// Growable scratch for one tokenizer_spm_encode call.
typedef struct spm_work {
    char *text;                // the escaped text
    tokenizer_symbol *symbols; // one per character at the start
    tokenizer_heap heap;
} spm_work;

// SentencePiece merges the pair whose merged token scores highest.
static bool score_key(const tokenizer *t, const char *a, size_t na, const char *b, size_t nb,
                      uint32_t *key)
{
    int32_t id = tokenizer_lookup2(t, a, na, b, nb);
    if (id < 0)
        return false;
    *key = tokenizer_score_key(t->scores[id]);
    return true;
}

// Writes " " + text (when space_prefix) into w->text with every space as U+2581; returns
// the length.
static size_t escape_text(spm_work *w, const char *text, size_t len, bool space_prefix)
{
    size_t o = 0;
    if (space_prefix) {
        memcpy(w->text, "\xe2\x96\x81", 3);
        o = 3;
    }
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') {
            memcpy(w->text + o, "\xe2\x96\x81", 3);
            o += 3;
        } else {
            w->text[o++] = text[i];
        }
    }
    return o;
}

// The merge loop over w->symbols[0..n); then emits the surviving symbols in order.
static int merge_symbols(const tokenizer *t, spm_work *w, size_t n, tokenizer_ids *out)
{
    if (tokenizer_merge_symbols(t, w->text, w->symbols, n, &w->heap, score_key) != GARLIC_OK)
        return GARLIC_ENOMEM;
    for (int32_t i = 0; n && i >= 0; i = w->symbols[i].next)
        if (tokenizer_emit_symbol(t, w->text + w->symbols[i].start, w->symbols[i].n,
                                  t->special[TOKENIZER_SPECIAL_UNK], out) != GARLIC_OK)
            return GARLIC_ENOMEM;
    return GARLIC_OK;
}

// Number of symbols the escaped text cuts into.
static size_t count_symbols(const char *s, size_t n)
{
    size_t count = 0;
    for (size_t off = 0; off < n; count++)
        off += tokenizer_utf8_len((unsigned char)s[off]);
    return count;
}

int tokenizer_spm_encode(const tokenizer *t, const char *text, size_t len, bool space_prefix,
                         tokenizer_ids *out, garlic_error *err)
{
    spm_work w = {0};
    size_t cap;
    if (__builtin_mul_overflow(len, 3, &cap) || cap > UINT32_MAX - 4)
        return garlic_error_set(err, GARLIC_EINVAL, "text too long (1 GiB at most)");
    w.text = garlic_malloc(cap + 4);
    int rc = GARLIC_ENOMEM;
    if (w.text) {
        size_t n_text = escape_text(&w, text, len, space_prefix), n = 0;
        w.symbols = garlic_calloc(count_symbols(w.text, n_text) + 1, sizeof *w.symbols);
        for (size_t off = 0; w.symbols && off < n_text; n++) { // cut leniently into characters
            size_t k = tokenizer_utf8_len((unsigned char)w.text[off]);
            if (k > n_text - off)
                k = n_text - off;
            w.symbols[n] = (tokenizer_symbol){(uint32_t)off, (uint32_t)k, (int32_t)n - 1, -1};
            if (n)
                w.symbols[n - 1].next = (int32_t)n;
            off += k;
        }
        if (w.symbols)
            rc = merge_symbols(t, &w, n, out);
    }
    garlic_free(w.text);
    garlic_free(w.symbols);
    garlic_free(w.heap.items);
    if (rc != GARLIC_OK)
        return garlic_error_set(err, rc, "out of memory tokenizing");
    return GARLIC_OK;
}
