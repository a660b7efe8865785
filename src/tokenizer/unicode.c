// SPDX-License-Identifier: MIT
// Code-point helpers shared by the tokenizer's algorithms: lenient UTF-8 decoding (as
// llama.cpp decodes, so that invalid input is tokenized the same way), the lookups into the
// generated Unicode tables (unicode_tables.c), and the PCRE2 plumbing both regex users (the
// BPE pre-tokenizers and WordPiece's character classes) share: a context that allocates
// through garlic's allocator and the release of the compiled regexes.
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "base/alloc.h"
#include "tokenizer/internal.h"

uint32_t tokenizer_next_code_point(const unsigned char *s, size_t n, size_t *used)
{
    unsigned char c = s[0];
    size_t k = c < 0x80 ? 1 : c < 0xc0 ? 0 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : c < 0xf8 ? 4 : 0;
    *used = 1;
    if (k == 0 || k > n)
        return 0xfffd;
    uint32_t cp = k == 1 ? c : (uint32_t)(c & (0x7f >> k));
    for (size_t i = 1; i < k; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0xfffd;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    *used = k;
    return cp > 0x10ffff ? 0xfffd : cp;
}

uint32_t tokenizer_to_lower(uint32_t c)
{
    size_t lo = 0, hi = tokenizer_lower_count;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const tokenizer_case_range *r = &tokenizer_lower_ranges[mid];
        if (c < r->first)
            hi = mid;
        else if (c > r->last)
            lo = mid + 1;
        else if ((c - r->first) % (uint32_t)r->step == 0)
            return (uint32_t)((int64_t)c + r->delta);
        else
            return c;
    }
    return c;
}

static void *pcre_alloc(size_t size, void *user)
{
    (void)user;
    return garlic_malloc(size);
}

static void pcre_free(void *ptr, void *user)
{
    (void)user;
    garlic_free(ptr);
}

void *tokenizer_pcre_context_new(void)
{
    return pcre2_general_context_create(pcre_alloc, pcre_free, NULL);
}

void tokenizer_regex_release(tokenizer *t)
{
    for (int i = 0; i < t->n_regex; i++)
        pcre2_code_free(t->regex[i]);
    t->n_regex = 0;
    pcre2_general_context_free(t->pcre_context);
    t->pcre_context = NULL;
}
