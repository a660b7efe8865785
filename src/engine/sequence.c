// SPDX-License-Identifier: MIT
// One choice's generation state: its sampler, stop-string matcher and streaming decoder, and
// the step that turns the logits after its last token into the next token and final text.
// Made when a choice is queued; its steps allocate nothing.
#include <string.h>

#include "base/alloc.h"
#include "engine/internal.h"

// DeepSeek's "<｜end▁of▁sentence｜>" (fullwidth bars, U+2581 between words).
#define DEEPSEEK_END                                                                               \
    "<\xef\xbd\x9c"                                                                                \
    "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>"

void engine_end_tokens(const tokenizer *t, sampler_end_tokens *out)
{
    // Turn enders that chat templates use, recognised by their text when the token is a
    // control or user-defined token.
    static const char *const enders[] = {
        "<|eot_id|>",    "<|im_end|>", "<|end|>", "<|endoftext|>",   "<|eom_id|>",
        "<end_of_turn>", "<EOT>",      "</s>",    "<|end_of_text|>", DEEPSEEK_END};
    static const tokenizer_special roles[] = {TOKENIZER_SPECIAL_EOS, TOKENIZER_SPECIAL_EOT,
                                              TOKENIZER_SPECIAL_EOM};
    sampler_end_tokens_init(out);
    for (size_t r = 0; r < sizeof roles / sizeof roles[0]; r++) {
        int32_t id = tokenizer_special_id(t, roles[r]);
        if (id >= 0 && !sampler_is_end(out, id))
            sampler_end_tokens_add(out, id, NULL);
    }
    uint32_t n = tokenizer_vocab_size(t);
    for (uint32_t id = 0; id < n; id++) {
        tokenizer_token_type type = tokenizer_token_get_type(t, (int32_t)id);
        if (type != TOKENIZER_TOKEN_CONTROL && type != TOKENIZER_TOKEN_USER_DEFINED)
            continue;
        size_t len;
        const char *text = tokenizer_token_text(t, (int32_t)id, &len);
        for (size_t e = 0; e < sizeof enders / sizeof enders[0]; e++)
            if (len == strlen(enders[e]) && memcmp(text, enders[e], len) == 0 &&
                !sampler_is_end(out, (int32_t)id))
                sampler_end_tokens_add(out, (int32_t)id, NULL);
    }
}

struct engine_seq {
    const engine_params *p;    // borrowed for the sequence's life
    engine_grammar *eg;        // with a grammar: the engine's vocabulary, scratch and mask
    grammar_state *gstate;     // with a grammar: where the output stands in it
    float *masked;             // (n_vocab) with a grammar: logits with the disallowed at -inf
    bool in_reasoning;         // inside a reasoning block (limit_reasoning)
    uint32_t reasoning_tokens; // tokens spent reasoning so far
    sampler *smp;
    sampler_stop *stop;
    sampler_end_tokens ends;
    tokenizer_stream stream;
    char *text; // (text_cap) decoded bytes of one token
    size_t text_cap;
};

void engine_seq_free(engine_seq *g)
{
    if (!g)
        return;
    grammar_state_free(g->gstate);
    garlic_free(g->masked);
    sampler_free(g->smp);
    sampler_stop_free(g->stop);
    garlic_free(g->text);
    garlic_free(g);
}

int engine_grammar_prepare(engine_grammar *eg, const tokenizer *t, const sampler_end_tokens *ends,
                           garlic_error *err)
{
    if (eg->vocab)
        return GARLIC_OK;
    size_t n = tokenizer_vocab_size(t);
    const char **pieces = garlic_calloc(n ? n : 1, sizeof *pieces);
    size_t *lens = garlic_calloc(n ? n : 1, sizeof *lens);
    bool *control = garlic_calloc(n ? n : 1, sizeof *control);
    int rc = pieces && lens && control ? GARLIC_OK : GARLIC_ENOMEM;
    for (size_t i = 0; rc == GARLIC_OK && i < n; i++) {
        tokenizer_token_type type = tokenizer_token_get_type(t, (int32_t)i);
        control[i] = type == TOKENIZER_TOKEN_CONTROL || type == TOKENIZER_TOKEN_UNKNOWN ||
            type == TOKENIZER_TOKEN_UNUSED;
        pieces[i] = tokenizer_piece(t, (int32_t)i, 0, &lens[i]);
        if (!pieces[i])
            pieces[i] = "", lens[i] = 0;
    }
    if (rc == GARLIC_OK &&
        !(eg->vocab = grammar_vocab_new(pieces, lens, control, n, ends->ids, ends->n, err)))
        rc = err->code ? err->code : GARLIC_ENOMEM;
    if (rc == GARLIC_OK && !(eg->scratch = grammar_scratch_new(err)))
        rc = GARLIC_ENOMEM;
    if (rc == GARLIC_OK && !(eg->mask = garlic_calloc((n + 31) / 32, sizeof *eg->mask)))
        rc = GARLIC_ENOMEM;
    garlic_free(pieces);
    garlic_free(lens);
    garlic_free(control);
    if (rc) {
        engine_grammar_deinit(eg);
        if (rc == GARLIC_ENOMEM && !err->code)
            garlic_error_set(err, GARLIC_ENOMEM, "out of memory");
    }
    return rc;
}

void engine_grammar_deinit(engine_grammar *eg)
{
    grammar_vocab_free(eg->vocab);
    grammar_scratch_free(eg->scratch);
    garlic_free(eg->mask);
    *eg = (engine_grammar){0};
}

engine_seq *engine_seq_new(const tokenizer *t, const engine_params *p,
                           const sampler_end_tokens *ends, engine_grammar *eg, garlic_error *err)
{
    engine_seq *g = garlic_calloc(1, sizeof *g);
    if (!g) {
        garlic_error_set(err, GARLIC_ENOMEM, "out of memory");
        return NULL;
    }
    g->p = p;
    g->smp = sampler_new(&p->sampling, err);
    if (!g->smp)
        goto fail;
    if (p->n_stops && !(g->stop = sampler_stop_new(p->stops, p->n_stops, err)))
        goto fail;
    g->ends = *ends;
    g->in_reasoning = p->limit_reasoning && p->starts_in_reasoning;
    if (p->grammar) {
        g->eg = eg;
        if (!(g->gstate = grammar_state_new(p->grammar, err)))
            goto fail;
        g->masked = garlic_malloc((size_t)p->sampling.n_vocab * sizeof *g->masked);
        if (!g->masked) {
            garlic_error_set(err, GARLIC_ENOMEM, "out of memory");
            goto fail;
        }
    }
    tokenizer_stream_init(&g->stream, t, p->render_special ? TOKENIZER_RENDER_SPECIAL : 0);
    g->text_cap = tokenizer_stream_max_output(t);
    g->text = garlic_malloc(g->text_cap);
    if (!g->text) {
        garlic_error_set(err, GARLIC_ENOMEM, "out of memory");
        goto fail;
    }
    return g;
fail:
    engine_seq_free(g);
    return NULL;
}

void engine_seq_prompt(engine_seq *g, const int32_t *prompt, size_t n)
{
    sampler_accept_many(g->smp, prompt, n);
    tokenizer_stream_follow(&g->stream, prompt, n); // the text continues the prompt
}

// What became of text passed on by deliver.
typedef enum delivery {
    DELIVERY_SENT,      // emitted (or held back by the stop matcher): go on
    DELIVERY_STOPPED,   // a stop string ended generation
    DELIVERY_CANCELLED, // emit asked to stop
    DELIVERY_COUNT
} delivery;

// Passes len bytes through the stop matcher (if any) to emit; *out says what became of them.
// GARLIC_ENOMEM (err filled) when the matcher cannot grow.
static int deliver(engine_seq *g, const char *text, size_t len, bool flush, engine_emit_fn emit,
                   void *user, delivery *out, garlic_error *err)
{
    sampler_stop_result r = {.text = text, .len = len};
    *out = DELIVERY_SENT;
    if (g->stop) {
        if (flush)
            sampler_stop_flush(g->stop, &r);
        else if (sampler_stop_feed(g->stop, text, len, &r, err) != GARLIC_OK)
            return GARLIC_ENOMEM;
    }
    if (r.len && emit(user, r.text, r.len) != 0)
        *out = DELIVERY_CANCELLED;
    else if (r.stopped)
        *out = DELIVERY_STOPPED;
    return GARLIC_OK;
}

// Passes tok (with its log-probabilities when asked for) to on_token; returns its verdict
// (non-zero cancels). A logprobs failure (a bad top_logprobs) reports NULL instead.
static int report_token(const engine_seq *g, int32_t tok, engine_token_fn on_token, void *user)
{
    const engine_params *p = g->p;
    sampler_logprobs lp;
    const sampler_logprobs *lpp = NULL;
    if (p->logprobs && sampler_logprobs_last(g->smp, tok, p->top_logprobs, &lp, NULL) == GARLIC_OK)
        lpp = &lp;
    return on_token(user, tok, lpp);
}

// Ends generation with finish: releases what the decoder held back (through the stop
// matcher), then what the matcher held back.
static int finish(engine_seq *g, engine_finish why, engine_emit_fn emit, void *user,
                  engine_stats *stats, garlic_error *err)
{
    stats->finish = why;
    size_t len = tokenizer_stream_flush(&g->stream, g->text, g->text_cap);
    delivery d = DELIVERY_SENT;
    int rc = len ? deliver(g, g->text, len, false, emit, user, &d, err) : GARLIC_OK;
    if (rc == GARLIC_OK && d == DELIVERY_SENT && g->stop)
        rc = deliver(g, NULL, 0, true, emit, user, &d, err);
    if (rc)
        return rc;
    if (d == DELIVERY_CANCELLED)
        stats->finish = ENGINE_FINISH_CANCEL;
    if (d == DELIVERY_STOPPED)
        stats->finish = ENGINE_FINISH_STOP;
    return GARLIC_OK;
}

// The grammar's say on *tok (sampled from logits), with left tokens (this one included) in
// which the text must be able to end: kept when allowed, else sampled again from the allowed
// tokens alone (which draws from the allowed tokens in proportion to their
// probability, the check costing far less than a mask); -1 when none is allowed.
static int constrain(engine_seq *g, const float *logits, uint32_t left, int32_t *tok,
                     garlic_error *err)
{
    const engine_grammar *eg = g->eg;
    int ok = grammar_token_allowed_budget(g->gstate, eg->vocab, *tok, left, err);
    if (ok < 0)
        return ok;
    if (ok)
        return GARLIC_OK;
    size_t n_allowed = 0, n = (size_t)g->p->sampling.n_vocab;
    int rc = grammar_mask_budget(g->gstate, eg->vocab, eg->scratch, left, eg->mask, &n_allowed,
                                 err);
    if (rc == GARLIC_OK && n_allowed == 0 && left != GRAMMAR_UNBOUNDED) // too few tokens left
        rc = grammar_mask(g->gstate, eg->vocab, eg->scratch, eg->mask, &n_allowed, err); // to end:
    if (rc) // a valid prefix, cut at the limit
        return rc;
    if (n_allowed == 0) {
        *tok = -1;
        return GARLIC_OK;
    }
    memcpy(g->masked, logits, n * sizeof *g->masked);
    grammar_mask_apply(eg->mask, g->masked, n);
    *tok = sampler_sample(g->smp, g->masked);
    return GARLIC_OK;
}

// The reasoning budget's say on tok: the block's closing token once the budget is spent.
static int32_t budget(engine_seq *g, int32_t tok)
{
    const engine_params *p = g->p;
    if (g->in_reasoning && tok != p->think_close && g->reasoning_tokens >= p->reasoning_budget)
        tok = p->think_close;
    if (tok == p->think_open)
        g->in_reasoning = true;
    else if (tok == p->think_close)
        g->in_reasoning = false;
    else if (g->in_reasoning)
        g->reasoning_tokens++;
    return tok;
}

int engine_seq_step(engine_seq *g, const float *logits, uint32_t positions_left,
                    engine_emit_fn emit, engine_token_fn on_token, void *user, int32_t *next,
                    engine_stats *stats, garlic_error *err)
{
    const engine_params *p = g->p;
    *next = -1;
    if (positions_left == 0)
        return finish(g, ENGINE_FINISH_CONTEXT, emit, user, stats, err);
    int32_t tok = sampler_sample(g->smp, logits);
    if (g->gstate && tok >= 0) {        // a grammar: resample from the allowed tokens if need be
        uint32_t left = positions_left; // this token and the rest, so the text ends in time
        if (p->max_tokens && p->max_tokens - stats->n_generated < left)
            left = p->max_tokens - stats->n_generated;
        int rc = constrain(g, logits, left, &tok, err);
        if (rc)
            return rc;
    }
    if (tok < 0) // every token is banned (logit bias, grammar): nothing can follow
        return finish(g, ENGINE_FINISH_STOP, emit, user, stats, err);
    if (p->limit_reasoning)
        tok = budget(g, tok);
    sampler_accept(g->smp, tok);
    if (g->gstate && !sampler_is_end(&g->ends, tok) &&
        grammar_state_accept_token(g->gstate, g->eg->vocab, tok, err) != GARLIC_OK)
        return err->code ? err->code : GARLIC_EINVAL;
    stats->n_generated++;
    if (!p->ignore_eos && sampler_is_end(&g->ends, tok))
        return finish(g, ENGINE_FINISH_STOP, emit, user, stats, err);
    if (on_token && report_token(g, tok, on_token, user)) {
        stats->finish = ENGINE_FINISH_CANCEL;
        return GARLIC_OK;
    }
    size_t len = 0;
    int rc = tokenizer_stream_push(&g->stream, tok, g->text, g->text_cap, &len, err);
    if (rc)
        return rc;
    delivery d;
    rc = deliver(g, g->text, len, false, emit, user, &d, err);
    if (rc)
        return rc;
    if (d != DELIVERY_SENT) { // a stop string (its text is not part of the output) or a cancel
        stats->finish = d == DELIVERY_STOPPED ? ENGINE_FINISH_STOP : ENGINE_FINISH_CANCEL;
        return GARLIC_OK;
    }
    if (p->max_tokens && stats->n_generated >= p->max_tokens)
        return finish(g, ENGINE_FINISH_LENGTH, emit, user, stats, err);
    if (g->gstate && !grammar_state_can_continue(g->gstate)) // the grammar is whole: done
        return finish(g, ENGINE_FINISH_STOP, emit, user, stats, err);
    *next = tok;
    return GARLIC_OK;
}
