// SPDX-License-Identifier: MIT
// Choosing the next token from a row of logits, and deciding when generation ends. A sampler
// runs a fixed chain (logit bias -> penalties -> top-k -> top-p -> min-p -> temperature ->
// a draw from a seeded PRNG, or argmax when greedy) over scratch sized at creation, so
// sampling allocates nothing per token. The stop matcher holds back streamed text that might
// start a stop string; the end-token set says which ids end a turn. docs/sampling.md has the
// chain's order and every parameter's meaning and default.
#ifndef GARLIC_SAMPLER_H
#define GARLIC_SAMPLER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

// params.seed value asking for a seed drawn from the system (sampler_seed tells which).
#define SAMPLER_SEED_RANDOM UINT64_MAX

enum {
    SAMPLER_MAX_REPEAT_LAST_N = 1 << 20, // bound on repeat_last_n (the history ring's size)
    SAMPLER_MAX_TOP_LOGPROBS = 20,       // OpenAI's bound on top_logprobs
    SAMPLER_MAX_END_TOKENS = 32,         // end-of-generation ids a sampler_end_tokens holds
    SAMPLER_STOP_MAX_STRINGS = 16,       // stop strings per matcher
    SAMPLER_STOP_MAX_LENGTH = 256,       // bytes per stop string
};

// One logit_bias entry: bias is added to the token's logit; -INFINITY bans the token.
typedef struct sampler_bias {
    int32_t token;
    float bias;
} sampler_bias;

// What to sample with. Start from sampler_params_default() and change fields; the sampler
// copies everything it needs, so the caller's arrays may go away after sampler_new.
typedef struct sampler_params {
    int32_t n_vocab;         // logits per row; token ids are 0..n_vocab-1
    float temperature;       // softmax temperature; <= 0 means greedy (argmax); default 0.8
    int32_t top_k;           // keep the k most likely tokens; 0 = off; default 40
    float top_p;             // keep the smallest most-likely set with mass >= top_p; 1 = off; 0.95
    float min_p;             // keep tokens with p >= min_p * p(most likely); 0 = off; 0.05
    float repeat_penalty;    // seen token: logit > 0 divided by it, else multiplied; 1 = off
    int32_t repeat_last_n;   // how many recent accepted tokens all penalties look at; 64
    float presence_penalty;  // subtracted once from a seen token's logit; 0 = off
    float frequency_penalty; // subtracted per occurrence of a seen token; 0 = off
    const sampler_bias *logit_bias; // (n_logit_bias) borrowed until sampler_new returns
    size_t n_logit_bias;            // entries for the same token add up
    uint64_t seed;                  // PRNG seed; SAMPLER_SEED_RANDOM (default) draws one
} sampler_params;

typedef struct sampler sampler;

// A token with its log-probability.
typedef struct sampler_token_logprob {
    int32_t token;
    float logprob; // natural log; -INFINITY for a banned token
} sampler_token_logprob;

// The chosen token's log-probability and the most likely alternatives (OpenAI's logprobs).
typedef struct sampler_logprobs {
    sampler_token_logprob chosen;
    sampler_token_logprob top[SAMPLER_MAX_TOP_LOGPROBS]; // (n_top) most likely first
    size_t n_top;
} sampler_logprobs;

// The defaults listed in sampler_params, for a vocabulary of n_vocab tokens.
sampler_params sampler_params_default(int32_t n_vocab);

// Checks every field of p; returns GARLIC_OK, or GARLIC_EINVAL with a message naming the
// field and its bad value ("sampler: top_p is 1.5, must be in (0, 1]").
int sampler_params_validate(const sampler_params *p, garlic_error *err);

// A sampler for p with all its scratch allocated (16 bytes per vocabulary entry; with an
// active penalty 4 more, plus 12 per history slot). Returns NULL and fills err on bad params
// (GARLIC_EINVAL) or when memory runs out (GARLIC_ENOMEM). Free it with sampler_free. It
// belongs to one thread at a time.
sampler *sampler_new(const sampler_params *p, garlic_error *err);

// Frees s; sampler_free(NULL) is a no-op.
void sampler_free(sampler *s);

// Picks the next token from logits (n_vocab floats, not modified, NaN read as -INFINITY) after
// the chain described at the top of this file. Allocates nothing. Returns the token id, or
// GARLIC_EINVAL when no token can be drawn (every logit is -INFINITY after bias). The pick
// does not enter the penalty history: call sampler_accept for that.
int32_t sampler_sample(sampler *s, const float *logits);

// Records token (a prompt or generated one) in the history the penalties look at, a ring of
// the last repeat_last_n tokens. Ids outside [0, n_vocab) are ignored. Allocates nothing.
void sampler_accept(sampler *s, int32_t token);

// sampler_accept for each of tokens[0..n).
void sampler_accept_many(sampler *s, const int32_t *tokens, size_t n);

// Forgets the history and rewinds the PRNG to its seed, so that the same calls again give
// the same tokens again.
void sampler_reset(sampler *s);

// The seed in use (the drawn one when params.seed was SAMPLER_SEED_RANDOM).
uint64_t sampler_seed(const sampler *s);

// Writes logits after logit bias and penalties with the current history (the values top-k
// and the rest see, and the ones logprobs report) to out (n_vocab floats; may equal logits).
void sampler_apply(const sampler *s, const float *logits, float *out);

// Log-probabilities for OpenAI's logprobs/top_logprobs from the logits the last
// sampler_sample saw after bias and penalties, at temperature 1 and over the whole vocabulary
// (before top-k, top-p, min-p and temperature). out->chosen is token's; out->top has the
// n_top (<= SAMPLER_MAX_TOP_LOGPROBS) most likely tokens, lowest id first on ties. Call it
// after sampler_sample, before or after sampler_accept. GARLIC_EINVAL for a bad token or
// n_top, or before the first sample.
int sampler_logprobs_last(const sampler *s, int32_t token, size_t n_top, sampler_logprobs *out,
                          garlic_error *err);

// The same from any logits row (n_vocab floats, used as given).
int sampler_logprobs_compute(const float *logits, int32_t n_vocab, int32_t token, size_t n_top,
                             sampler_logprobs *out, garlic_error *err);

// For tests and diagnostics: the candidates the last non-greedy sampler_sample drew from
// (after top-k, top-p and min-p) are written to ids (capacity cap, may be NULL when cap is 0);
// returns how many there were. They come best first after top-k or a small top-p set, else
// in an unspecified (but deterministic) order. Greedy samples leave no candidates.
size_t sampler_last_candidates(const sampler *s, int32_t *ids, size_t cap);

// ---- End-of-generation tokens ----

// The ids that end generation (EOS, EOT, EOM, ...: whatever the vocabulary marks). Plain
// storage owned by the caller; zero it or call sampler_end_tokens_init before use.
typedef struct sampler_end_tokens {
    int32_t ids[SAMPLER_MAX_END_TOKENS]; // (n)
    size_t n;
} sampler_end_tokens;

// Empties e.
void sampler_end_tokens_init(sampler_end_tokens *e);

// Adds token to e (adding one twice keeps one copy). Negative ids (a vocabulary's "none") are
// skipped and return GARLIC_OK, so special ids can be added unchecked. GARLIC_EINVAL when e is
// full.
int sampler_end_tokens_add(sampler_end_tokens *e, int32_t token, garlic_error *err);

// Whether token ends generation.
bool sampler_is_end(const sampler_end_tokens *e, int32_t token);

// ---- Stop strings ----

// Watches streamed text for stop strings. Feed it each detokenized piece; it says which bytes
// may be sent now, holding back any tail that could still become a stop string.
typedef struct sampler_stop sampler_stop;

// The outcome of a feed or flush. text points into the matcher and is valid until its next
// call; it is the bytes to send now (never part of a stop string).
typedef struct sampler_stop_result {
    const char *text;
    size_t len;
    bool stopped; // a stop string was completed: send text, then end generation
    int index;    // which stop string (its position in the list) when stopped, else -1
} sampler_stop_result;

// A matcher for stops[0..n) (NUL-terminated UTF-8, copied; n <= SAMPLER_STOP_MAX_STRINGS, each
// 1..SAMPLER_STOP_MAX_LENGTH bytes). n may be 0: then text passes straight through. Returns
// NULL and fills err (GARLIC_EINVAL naming the string, GARLIC_ENOMEM).
sampler_stop *sampler_stop_new(const char *const *stops, size_t n, garlic_error *err);

// Frees m; sampler_stop_free(NULL) is a no-op.
void sampler_stop_free(sampler_stop *m);

// Appends piece[0..len) to the stream. When a stop string completes (the one that ends
// earliest; the longest of those ending together), out gets the text before it and stopped;
// later feeds give nothing. Otherwise out gets every byte no stop string could start in.
// Matching is on bytes, so a stop string spans pieces and UTF-8 characters freely.
// Allocates only when held text plus piece outgrow the buffer (GARLIC_ENOMEM if that fails).
int sampler_stop_feed(sampler_stop *m, const char *piece, size_t len, sampler_stop_result *out,
                      garlic_error *err);

// At the end of generation: out gets the held-back text (nothing after a stop).
void sampler_stop_flush(sampler_stop *m, sampler_stop_result *out);

// Forgets the stream, ready for a new generation with the same stop strings.
void sampler_stop_reset(sampler_stop *m);

#endif
