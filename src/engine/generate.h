// SPDX-License-Identifier: MIT
// One way to generate text: prompt ids -> prefill in chunks -> sample -> stream text, with
// stop strings, end-of-generation tokens and a token limit. The CLI's `garlic run` and
// `garlic bench` use it now; the server's scheduler (a later step) drives the same pieces
// for many sequences at once.
#ifndef GARLIC_ENGINE_GENERATE_H
#define GARLIC_ENGINE_GENERATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "model/model.h"
#include "sampler/sampler.h"
#include "tokenizer/tokenizer.h"

typedef enum engine_finish {
    ENGINE_FINISH_LENGTH,  // max_tokens reached
    ENGINE_FINISH_STOP,    // an end-of-generation token or a stop string
    ENGINE_FINISH_CONTEXT, // the context is full
    ENGINE_FINISH_CANCEL,  // the emit callback asked to stop
    ENGINE_FINISH_COUNT
} engine_finish;

// Optional per-token hook (engine_params.on_token): called with each generated token that
// is part of the output (end-of-generation tokens are not), before its text reaches emit.
// lp is the token's log-probabilities when engine_params.logprobs is set, else NULL; it is
// valid for the call only. Returns non-zero to cancel, like emit.
typedef int (*engine_token_fn)(void *user, int32_t token, const sampler_logprobs *lp);

typedef struct engine_params {
    sampler_params sampling;
    uint32_t max_tokens;        // tokens to generate at most (0: until the context is full)
    const char *const *stops;   // (n_stops) stop strings, borrowed for the call
    size_t n_stops;
    bool ignore_eos;            // keep going past end-of-generation tokens (benchmarks)
    uint32_t batch;             // prompt tokens per forward call (default 512)
    // The end-of-generation tokens (engine_end_tokens of the tokenizer), borrowed for the call;
    // NULL: computed for this call (a scan of the vocabulary, so callers that generate often
    // compute them once).
    const sampler_end_tokens *end_tokens;
    engine_token_fn on_token;   // optional; gets the same user pointer as emit
    bool logprobs;              // compute each token's log-probabilities for on_token
    uint32_t top_logprobs;      // alternatives per token (<= SAMPLER_MAX_TOP_LOGPROBS)
} engine_params;

typedef struct engine_stats {
    uint32_t n_prompt;          // prompt tokens evaluated by this call
    uint32_t n_generated;
    double prompt_seconds;
    double generate_seconds;
    engine_finish finish;
    int32_t unevaluated;        // the last generated token if it is not in the cache yet
                                // (a continuing conversation evaluates it first), else -1
} engine_stats;

// Receives generated text as it becomes final (never half a UTF-8 character, never text
// that may belong to a stop string). Returns non-zero to cancel.
typedef int (*engine_emit_fn)(void *user, const char *text, size_t len);

// The end-of-generation tokens of a vocabulary: EOS, EOT and the control tokens that chat
// templates end a turn with (<|eot_id|>, <|im_end|>, <|end|>, <|endoftext|>, ...).
void engine_end_tokens(const tokenizer *t, sampler_end_tokens *out);

// Evaluates prompt[0..n_prompt) at positions *pos.. (continuing a conversation whose
// earlier tokens are already in the state's cache), then generates. *pos advances past
// every token the cache now holds. Generated ids are passed to emit as text.
int engine_generate(model_state *s, const tokenizer *t, const int32_t *prompt, size_t n_prompt,
                    uint32_t *pos, const engine_params *p, engine_emit_fn emit, void *user,
                    engine_stats *stats, garlic_error *err);

// One sequence's generation state (sampler, stop strings, text decoder), stepped by a caller
// that runs the model itself (the server's scheduler batches many). p is borrowed for the
// sequence's life. NULL and err filled on bad parameters or no memory.
typedef struct engine_seq engine_seq;
engine_seq *engine_seq_new(const tokenizer *t, const engine_params *p, garlic_error *err);
void engine_seq_free(engine_seq *g);

// The prompt's tokens, for the penalties (call once, before the first step).
void engine_seq_prompt(engine_seq *g, const int32_t *prompt, size_t n);

// One generation step from the logits after the last evaluated token: samples a token,
// reports it to on_token, streams its text through emit. *next gets the token to evaluate
// next, or -1 when generation ended (stats->finish says why; held-back text was flushed,
// except after a stop string or a cancel). context_full: no position is left for another
// token (ends with ENGINE_FINISH_CONTEXT without sampling). stats->n_generated and
// stats->unevaluated are updated; the caller sets unevaluated to -1 once it evaluates *next.
int engine_seq_step(engine_seq *g, const float *logits, bool context_full, engine_emit_fn emit,
                    void *user, int32_t *next, engine_stats *stats, garlic_error *err);

// The finish reason as the OpenAI API names it ("length", "stop").
const char *engine_finish_name(engine_finish f);

#endif
