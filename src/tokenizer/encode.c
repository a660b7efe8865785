// SPDX-License-Identifier: MIT
// The entry point of tokenization. Special tokens are cut out of the text first, longest
// text first: USER_DEFINED tokens always, CONTROL and UNKNOWN tokens only when the caller
// parses special tokens. The raw-text fragments between them go to the vocabulary's
// algorithm (spm.c, bpe.c, wpm.c); BOS and EOS are added around the result when asked.
#include <string.h>

#include "base/alloc.h"
#include "base/buffer.h"
#include "tokenizer/internal.h"

// A fragment of the input: raw text bytes [off, off + len) when id < 0, else one token.
typedef struct fragment {
    size_t off;
    size_t len;
    int32_t id;
} fragment;

typedef struct fragment_list {
    fragment *items; // (cap)
    size_t n;
    size_t cap;
} fragment_list;

static int fragment_push(fragment_list *l, size_t off, size_t len, int32_t id)
{
    if (l->n == l->cap && garlic_grow(&l->items, &l->cap, l->n + 1, sizeof *l->items) != GARLIC_OK)
        return GARLIC_ENOMEM;
    l->items[l->n++] = (fragment){off, len, id};
    return GARLIC_OK;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

// Cuts every occurrence of token id out of one raw fragment of text, appending the pieces
// to dst (left to right, non-overlapping), honouring the token's strip attributes.
static int cut_fragment(const tokenizer *t, const char *text, fragment f, int32_t id,
                        fragment_list *dst)
{
    const char *s = t->blob + t->text_off[id];
    size_t n = t->text_len[id], base = f.off, remain = f.len;
    while (remain >= n) {
        const char *hit = memmem(text + base, remain, s, n);
        if (!hit)
            break;
        size_t at = (size_t)(hit - text), left = at - base;
        if (t->attrs[id] & TOKEN_ATTR_LSTRIP)
            while (left > 0 && is_space(text[base + left - 1]))
                left--;
        if ((left && fragment_push(dst, base, left, -1) != GARLIC_OK) ||
            fragment_push(dst, 0, 0, id) != GARLIC_OK)
            return GARLIC_ENOMEM;
        remain -= at + n - base;
        base = at + n;
        if (t->attrs[id] & TOKEN_ATTR_RSTRIP)
            while (remain > 0 && is_space(text[base]))
                base++, remain--;
    }
    if (remain && fragment_push(dst, base, remain, -1) != GARLIC_OK)
        return GARLIC_ENOMEM;
    return GARLIC_OK;
}

// Which byte pairs occur in text: bit (a << 8 | b) of pairs for each adjacent a, b.
static void mark_pairs(const char *text, size_t len, uint64_t pairs[1024])
{
    memset(pairs, 0, 1024 * sizeof *pairs);
    for (size_t i = 0; i + 1 < len; i++) {
        unsigned k = (unsigned char)text[i] << 8 | (unsigned char)text[i + 1];
        pairs[k >> 6] |= 1ull << (k & 63);
    }
}

// False when special token id certainly does not occur in the text whose pairs are given.
static bool may_occur(const tokenizer *t, int32_t id, const uint64_t pairs[1024])
{
    if (t->text_len[id] < 2)
        return true;
    const unsigned char *s = (const unsigned char *)t->blob + t->text_off[id];
    unsigned k = s[0] << 8 | s[1];
    return pairs[k >> 6] >> (k & 63) & 1;
}

// Splits text into raw fragments and special tokens, in llama.cpp's order: each special
// token in turn (longest first) is cut out of whatever raw text the previous ones left.
static int partition(const tokenizer *t, const char *text, size_t len, bool parse_special,
                     fragment_list *frags)
{
    fragment_list next = {0};
    uint64_t pairs[1024]; // 8 KiB: vocabularies with thousands of special tokens stay fast
    if (len && fragment_push(frags, 0, len, -1) != GARLIC_OK)
        return GARLIC_ENOMEM;
    mark_pairs(text, len, pairs);
    for (uint32_t i = 0; i < t->n_specials && len; i++) {
        int32_t id = t->specials[i];
        if (!parse_special && t->types[id] != TOKENIZER_TOKEN_USER_DEFINED)
            continue;
        if (!may_occur(t, id, pairs) ||
            !memmem(text, len, t->blob + t->text_off[id], t->text_len[id]))
            continue; // cheap tests first: most special tokens never occur
        next.n = 0;
        for (size_t k = 0; k < frags->n; k++) {
            fragment f = frags->items[k];
            int rc = f.id >= 0 ? fragment_push(&next, f.off, f.len, f.id)
                               : cut_fragment(t, text, f, id, &next);
            if (rc != GARLIC_OK) {
                garlic_free(next.items);
                return rc;
            }
        }
        fragment_list swap = *frags;
        *frags = next;
        next = swap;
    }
    garlic_free(next.items);
    return GARLIC_OK;
}

// Runs the vocabulary's algorithm over one raw fragment (put in NFC first when the
// vocabulary asks for it).
static int encode_raw(const tokenizer *t, const char *s, size_t n, bool space_prefix,
                      tokenizer_ids *out, garlic_error *err)
{
    char *composed = NULL;
    if (t->nfc && tokenizer_nfc_may_change(s, n)) {
        if (tokenizer_nfc(s, n, &composed, &n) != GARLIC_OK)
            return GARLIC_ENOMEM;
        s = composed;
    }
    int rc;
    if (t->kind == TOKENIZER_KIND_SPM)
        rc = tokenizer_spm_encode(t, s, n, space_prefix, out, err);
    else if (t->kind == TOKENIZER_KIND_BPE)
        rc = tokenizer_bpe_encode(t, s, n, out, err);
    else
        rc = tokenizer_wpm_encode(t, s, n, out, err);
    garlic_free(composed);
    return rc;
}

// Whether SentencePiece puts a space in front of raw fragment f: at the start and after
// every special token, except that Metaspace rules skip a fragment that starts with a space
// (or the space mark) and "first" also every fragment but one at the very start.
static bool space_prefix(const tokenizer *t, const char *text, fragment f)
{
    if (!t->add_space_prefix || t->prefix_rule == TOKENIZER_PREFIX_EVERY)
        return t->add_space_prefix;
    const char *s = text + f.off;
    if (s[0] == ' ' || (f.len >= 3 && memcmp(s, "\xe2\x96\x81", 3) == 0))
        return false;
    return t->prefix_rule == TOKENIZER_PREFIX_METASPACE || f.off == 0;
}

// Runs the vocabulary's algorithm over each fragment (a raw one starts the text or follows
// a special token: special tokens are what cut them).
static int encode_fragments(const tokenizer *t, const char *text, const fragment_list *frags,
                            tokenizer_ids *out, garlic_error *err)
{
    for (size_t k = 0; k < frags->n; k++) {
        fragment f = frags->items[k];
        int rc;
        if (f.id >= 0)
            rc = tokenizer_ids_push(out, f.id);
        else
            rc = encode_raw(t, text + f.off, f.len, space_prefix(t, text, f), out, err);
        if (rc != GARLIC_OK)
            return rc == GARLIC_ENOMEM ? garlic_error_set(err, rc, "out of memory tokenizing") : rc;
    }
    return GARLIC_OK;
}

int tokenizer_encode(const tokenizer *t, const char *text, size_t len, unsigned flags,
                     tokenizer_ids *out, garlic_error *err)
{
    bool add = flags & TOKENIZER_ADD_SPECIAL;
    size_t start = out->n;
    fragment_list frags = {0};
    int rc = GARLIC_OK;
    if (add && t->add_bos)
        rc = tokenizer_ids_push(out, t->special[TOKENIZER_SPECIAL_BOS]);
    if (rc == GARLIC_OK)
        rc = partition(t, text, len, flags & TOKENIZER_PARSE_SPECIAL, &frags);
    if (rc == GARLIC_OK)
        rc = encode_fragments(t, text, &frags, out, err);
    if (rc == GARLIC_OK && add && t->add_eos)
        rc = tokenizer_ids_push(out, t->special[TOKENIZER_SPECIAL_EOS]);
    garlic_free(frags.items);
    if (rc != GARLIC_OK) {
        out->n = start; // nothing half-done is left behind
        if (rc == GARLIC_ENOMEM)
            garlic_error_set(err, rc, "out of memory tokenizing");
    }
    return rc;
}

void tokenizer_ids_deinit(tokenizer_ids *ids)
{
    garlic_free(ids->ids);
    *ids = (tokenizer_ids){0};
}

int tokenizer_emit_symbol(const tokenizer *t, const char *s, size_t n, int32_t fallback,
                          tokenizer_ids *out)
{
    int32_t id = tokenizer_lookup2(t, s, n, "", 0);
    if (id >= 0)
        return tokenizer_ids_push(out, id);
    for (size_t i = 0; i < n; i++) {
        int32_t b = t->byte_token[(unsigned char)s[i]];
        if (b < 0)
            b = fallback;
        if (b >= 0 && tokenizer_ids_push(out, b) != GARLIC_OK)
            return GARLIC_ENOMEM;
    }
    return GARLIC_OK;
}
