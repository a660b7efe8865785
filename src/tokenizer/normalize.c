// SPDX-License-Identifier: MIT
// Unicode normalization form C of raw text, for vocabularies whose tokenizer.json normalizes
// with NFC (Qwen2 and Qwen3): each code point is fully decomposed (the generated tables of
// unicode_tables.c; Hangul syllables by formula), each run of combining marks is put in
// canonical order (a stable sort by combining class), and each character then composes with
// the last starter before it unless a mark between them blocks it (UAX #15). Only runs of
// valid UTF-8 are normalized; any other byte passes through and composes with nothing.
#include <string.h>

#include "base/alloc.h"
#include "base/buffer.h"
#include "base/utf8.h"
#include "tokenizer/internal.h"

// Hangul syllables decompose and compose by arithmetic (Unicode 15, section 3.12).
enum {
    HANGUL_S = 0xac00,
    HANGUL_L = 0x1100,
    HANGUL_V = 0x1161,
    HANGUL_T = 0x11a7,
    HANGUL_V_COUNT = 21,
    HANGUL_T_COUNT = 28,
    HANGUL_N = HANGUL_V_COUNT * HANGUL_T_COUNT, // 588 syllables per leading consonant
    HANGUL_S_COUNT = 19 * HANGUL_N,             // 11172 syllables
};

// The canonical combining class of c (0 for starters).
static uint8_t ccc_of(uint32_t c)
{
    if (c < 0x300)
        return 0;
    size_t lo = 0, hi = tokenizer_ccc_count;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (c < tokenizer_ccc_ranges[mid].first)
            hi = mid;
        else if (c > tokenizer_ccc_ranges[mid].last)
            lo = mid + 1;
        else
            return (uint8_t)tokenizer_ccc_ranges[mid].ccc;
    }
    return 0;
}

static const tokenizer_decomposition *decomposition_of(uint32_t c)
{
    size_t lo = 0, hi = tokenizer_decomposition_count;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (c < tokenizer_decompositions[mid].cp)
            hi = mid;
        else if (c > tokenizer_decompositions[mid].cp)
            lo = mid + 1;
        else
            return &tokenizer_decompositions[mid];
    }
    return NULL;
}

// The primary composite of a followed by b, or 0.
static uint32_t compose_pair(uint32_t a, uint32_t b)
{
    if (a >= HANGUL_L && a < HANGUL_L + 19 && b >= HANGUL_V && b < HANGUL_V + HANGUL_V_COUNT)
        return HANGUL_S + ((a - HANGUL_L) * HANGUL_V_COUNT + (b - HANGUL_V)) * HANGUL_T_COUNT;
    if (a >= HANGUL_S && a < HANGUL_S + HANGUL_S_COUNT && (a - HANGUL_S) % HANGUL_T_COUNT == 0 &&
        b > HANGUL_T && b < HANGUL_T + HANGUL_T_COUNT)
        return a + (b - HANGUL_T);
    size_t lo = 0, hi = tokenizer_composition_count;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const tokenizer_composition *p = &tokenizer_compositions[mid];
        if (a < p->first || (a == p->first && b < p->second))
            hi = mid;
        else if (a > p->first || b > p->second)
            lo = mid + 1;
        else
            return p->composite;
    }
    return 0;
}

// Code points being normalized, with their combining classes.
typedef struct cp_list {
    uint32_t *cps; // (cap)
    uint8_t *ccc;  // (cap)
    size_t n, cap;
    uint32_t *tmp_cps; // (cap) scratch for sorting
    uint8_t *tmp_ccc;  // (cap)
} cp_list;

static int cp_push(cp_list *l, uint32_t c)
{
    if (l->n == l->cap) {
        size_t cap = l->cap;
        if (garlic_grow(&l->cps, &cap, l->n + 1, sizeof *l->cps) != GARLIC_OK)
            return GARLIC_ENOMEM;
        size_t c2 = l->cap, c3 = l->cap, c4 = l->cap;
        if (garlic_grow(&l->ccc, &c2, cap, 1) != GARLIC_OK ||
            garlic_grow(&l->tmp_cps, &c3, cap, sizeof *l->tmp_cps) != GARLIC_OK ||
            garlic_grow(&l->tmp_ccc, &c4, cap, 1) != GARLIC_OK)
            return GARLIC_ENOMEM;
        l->cap = cap;
    }
    l->cps[l->n] = c;
    l->ccc[l->n++] = ccc_of(c);
    return GARLIC_OK;
}

size_t tokenizer_nfd(uint32_t c, uint32_t out[TOKENIZER_NFD_MAX])
{
    if (c >= HANGUL_S && c < HANGUL_S + HANGUL_S_COUNT) {
        uint32_t s = c - HANGUL_S, t = s % HANGUL_T_COUNT;
        out[0] = HANGUL_L + s / HANGUL_N;
        out[1] = HANGUL_V + s % HANGUL_N / HANGUL_T_COUNT;
        out[2] = HANGUL_T + t;
        return t ? 3 : 2;
    }
    const tokenizer_decomposition *d = c >= 0xc0 ? decomposition_of(c) : NULL;
    if (!d) {
        out[0] = c;
        return 1;
    }
    size_t n = d->length < TOKENIZER_NFD_MAX ? d->length : TOKENIZER_NFD_MAX; // 4 at most
    memcpy(out, tokenizer_decomposition_pool + d->off, n * sizeof *out);
    return n;
}

// Appends the full canonical decomposition of c.
static int push_decomposed(cp_list *l, uint32_t c)
{
    uint32_t parts[TOKENIZER_NFD_MAX];
    size_t n = tokenizer_nfd(c, parts);
    for (size_t i = 0; i < n; i++)
        if (cp_push(l, parts[i]) != GARLIC_OK)
            return GARLIC_ENOMEM;
    return GARLIC_OK;
}

// Canonical ordering: each run of non-starters sorted stably by combining class (a counting
// sort, so that a hostile run of marks costs linear time).
static void reorder(cp_list *l)
{
    for (size_t i = 0; i < l->n;) {
        if (l->ccc[i] == 0) {
            i++;
            continue;
        }
        size_t j = i;
        while (j < l->n && l->ccc[j])
            j++;
        if (j - i > 1) {
            size_t count[257] = {0};
            for (size_t k = i; k < j; k++)
                count[l->ccc[k] + 1]++;
            for (int c = 1; c < 257; c++)
                count[c] += count[c - 1];
            for (size_t k = i; k < j; k++) {
                size_t at = i + count[l->ccc[k]]++;
                l->tmp_cps[at] = l->cps[k];
                l->tmp_ccc[at] = l->ccc[k];
            }
            memcpy(l->cps + i, l->tmp_cps + i, (j - i) * sizeof *l->cps);
            memcpy(l->ccc + i, l->tmp_ccc + i, j - i);
        }
        i = j;
    }
}

// Canonical composition in place: a character joins the last starter when nothing between
// them is a starter or has a class as high as its own (last_class is the class of the last
// character kept; 0 when that is the starter itself).
static void compose(cp_list *l)
{
    if (l->n == 0)
        return;
    size_t starter = 0, out = 1;
    int last_class = l->ccc[0] ? 256 : 0; // text that starts with a mark has no starter yet
    for (size_t i = 1; i < l->n; i++) {
        uint32_t c = l->cps[i];
        int cls = l->ccc[i];
        uint32_t composite = last_class < cls || last_class == 0 ? compose_pair(l->cps[starter], c)
                                                                 : 0;
        if (composite) {
            l->cps[starter] = composite;
            continue;
        }
        if (cls == 0)
            starter = out;
        last_class = cls;
        l->cps[out] = c;
        l->ccc[out++] = (uint8_t)cls;
    }
    l->n = out;
}

// Normalizes one run of valid UTF-8 and appends it to out.
static int normalize_run(const char *s, size_t n, cp_list *l, garlic_buf *out)
{
    l->n = 0;
    for (size_t i = 0; i < n;) {
        size_t used;
        uint32_t c = tokenizer_next_code_point((const unsigned char *)s + i, n - i, &used);
        i += used;
        if (push_decomposed(l, c) != GARLIC_OK)
            return GARLIC_ENOMEM;
    }
    reorder(l);
    compose(l);
    if (garlic_buf_reserve(out, 4 * l->n) != GARLIC_OK)
        return GARLIC_ENOMEM;
    for (size_t i = 0; i < l->n; i++)
        out->len += utf8_encode(l->cps[i], out->data + out->len);
    out->data[out->len] = '\0';
    return GARLIC_OK;
}

bool tokenizer_nfc_may_change(const char *text, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)text[i] >= 0xcc) // a lead byte of U+0300 or above
            return true;
    return false;
}

int tokenizer_nfc(const char *text, size_t len, char **out, size_t *out_len)
{
    garlic_buf b = {0};
    cp_list l = {0};
    int rc = garlic_buf_reserve(&b, len);
    for (size_t i = 0; rc == GARLIC_OK && i < len;) {
        size_t run = i;
        while (run < len && utf8_sequence_length(text + run, len - run))
            run += utf8_sequence_length(text + run, len - run);
        if (run > i)
            rc = normalize_run(text + i, run - i, &l, &b);
        if (rc == GARLIC_OK && run < len)
            rc = garlic_buf_append(&b, text + run, 1); // an invalid byte
        i = run + 1;
    }
    garlic_free(l.cps);
    garlic_free(l.ccc);
    garlic_free(l.tmp_cps);
    garlic_free(l.tmp_ccc);
    if (rc != GARLIC_OK) {
        garlic_buf_deinit(&b);
        return GARLIC_ENOMEM;
    }
    *out_len = b.len;
    *out = garlic_buf_take(&b);
    return *out ? GARLIC_OK : GARLIC_ENOMEM;
}
