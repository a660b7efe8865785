// SPDX-License-Identifier: MIT
// libFuzzer target for the grammars (src/sampler/grammar*.c and json_schema.c). The input's
// first byte picks the form: even, the rest is GBNF text; odd, the rest is a JSON Schema
// (parsed by cJSON) turned into a grammar. A grammar that compiles is then driven: a few
// random walks over a small vocabulary, each step taking a token the mask allows, checking
// that the mask agrees with grammar_token_allowed, that the budget mask agrees with its check
// and only removes tokens (anything else is a bug: abort). Bounds bugs show up under
// ASan/UBSan.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sampler/grammar.h"

static const char *const pieces[] = {
    "{",     "}",    "[",    "]",        ",",    ":",        "\"",  "\\", " ",    "\n",
    "a",     "b",    "z",    "0",        "1",    "9",        "-",   ".",  "e",    "true",
    "false", "null", "\": ", "\xc3\xa9", "\xe4", "\xb8\xad", "x\"", "ab", "<eos>"};
enum { N_PIECES = sizeof pieces / sizeof pieces[0], END = N_PIECES - 1 };

// Walks g from its start, taking the allowed tokens chosen by the input bytes.
static void drive(const grammar *g, const grammar_vocab *v, grammar_scratch *m,
                  const uint8_t *choice, size_t n_choice)
{
    garlic_error err;
    grammar_state *s = grammar_state_new(g, &err);
    if (!s)
        return;
    uint32_t mask[(N_PIECES + 31) / 32];
    for (size_t step = 0; step < 64; step++) {
        size_t allowed;
        if (grammar_mask(s, v, m, mask, &allowed, &err) != GARLIC_OK)
            break; // an ambiguity limit or out of memory
        for (int32_t t = 0; t < N_PIECES; t++) {
            int ok = grammar_token_allowed(s, v, t, &err);
            if (ok >= 0 && ok != (int)((mask[t / 32] >> (t % 32)) & 1))
                abort(); // the mask disagrees with feeding the token
        }
        // A budget a little over the distance: the budget mask agrees with the budget check
        // and (the vocabulary spells every ASCII byte) leaves a way forward while the next
        // character of a shortest completion is ASCII.
        uint32_t left = grammar_state_distance(s) + 1 + (uint32_t)(step % 3);
        uint32_t budget_mask[(N_PIECES + 31) / 32];
        size_t budget_allowed;
        if (grammar_mask_budget(s, v, m, left, budget_mask, &budget_allowed, &err) == GARLIC_OK) {
            for (int32_t t = 0; t < N_PIECES; t++) {
                int ok = grammar_token_allowed_budget(s, v, t, left, &err);
                if (ok >= 0 && ok != (int)((budget_mask[t / 32] >> (t % 32)) & 1))
                    abort(); // the budget mask disagrees with the budget check
                if (((budget_mask[t / 32] >> (t % 32)) & 1) && !((mask[t / 32] >> (t % 32)) & 1))
                    abort(); // a budget only removes tokens
            }
        }
        if (allowed == 0) {
            // Only a vocabulary that cannot spell the next character leaves nothing; this
            // one has no token for most characters, so just stop.
            break;
        }
        size_t pick = n_choice ? choice[step % n_choice] % allowed : 0;
        int32_t t = 0;
        for (;; t++)
            if (((mask[t / 32] >> (t % 32)) & 1) && pick-- == 0)
                break;
        if (grammar_state_accept_token(s, v, t, &err) != GARLIC_OK)
            abort(); // the mask allowed it
        if (t == END)
            break;
    }
    grammar_state_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 1 << 16)
        return 0;
    char *text = malloc(size);
    if (!text)
        return 0;
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    garlic_error err;
    grammar *g = NULL;
    if (data[0] & 1) {
        cJSON *schema = cJSON_ParseWithLength(text, size - 1);
        if (schema)
            g = grammar_from_json_schema(schema, &err);
        cJSON_Delete(schema);
    } else {
        g = grammar_new(text, size - 1, &err);
    }
    if (g) {
        size_t lens[N_PIECES];
        bool control[N_PIECES] = {0};
        for (size_t i = 0; i < N_PIECES; i++)
            lens[i] = strlen(pieces[i]);
        control[END] = true;
        int32_t end = END;
        grammar_vocab *v = grammar_vocab_new(pieces, lens, control, N_PIECES, &end, 1, &err);
        grammar_scratch *m = grammar_scratch_new(&err);
        if (v && m)
            drive(g, v, m, data, size < 16 ? size : 16);
        grammar_scratch_free(m);
        grammar_vocab_free(v);
    }
    grammar_free(g);
    free(text);
    return 0;
}
