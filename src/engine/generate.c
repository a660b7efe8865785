// SPDX-License-Identifier: MIT
// The generation loop; see generate.h. Per call it allocates the sampler, the stop matcher
// and one text buffer; the per-token loop allocates nothing.
#include "engine/generate.h"

#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "base/alloc.h"

const char *engine_finish_name(engine_finish f)
{
    static const char *const names[ENGINE_FINISH_COUNT] = {"length", "stop", "length", "cancel"};
    return (unsigned)f < ENGINE_FINISH_COUNT ? names[f] : "unknown";
}

// DeepSeek's "<｜end▁of▁sentence｜>" (fullwidth bars, U+2581 between words).
#define DEEPSEEK_END "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>"

void engine_end_tokens(const tokenizer *t, sampler_end_tokens *out)
{
    // Turn enders that chat templates use, recognised by their text when the token is a
    // control or user-defined token.
    static const char *const enders[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<|endoftext|>",
                                         "<|eom_id|>", "<end_of_turn>", "<EOT>", "</s>",
                                         "<|end_of_text|>", DEEPSEEK_END};
    sampler_end_tokens_init(out);
    int32_t eos = tokenizer_special_id(t, TOKENIZER_SPECIAL_EOS);
    int32_t eot = tokenizer_special_id(t, TOKENIZER_SPECIAL_EOT);
    if (eos >= 0)
        sampler_end_tokens_add(out, eos, NULL);
    if (eot >= 0 && eot != eos)
        sampler_end_tokens_add(out, eot, NULL);
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

// Runs the prompt through the model in chunks of the state's batch size.
static int prefill(model_state *s, const int32_t *prompt, size_t n, uint32_t *pos, uint32_t batch,
                   const float **logits, garlic_error *err)
{
    uint32_t max = model_state_max_batch(s);
    batch = batch && batch < max ? batch : max;
    for (size_t i = 0; i < n;) {
        uint32_t chunk = (uint32_t)(n - i < batch ? n - i : batch);
        int rc = model_forward(s, prompt + i, chunk, *pos, false, logits, err);
        if (rc)
            return rc;
        *pos += chunk;
        i += chunk;
    }
    return GARLIC_OK;
}

struct engine_seq {
    const engine_params *p;
    sampler *smp;
    sampler_stop *stop;
    sampler_end_tokens ends;
    tokenizer_stream stream;
    char *text;       // (text_cap) decoded bytes of one token
    size_t text_cap;
};

void engine_seq_free(engine_seq *g)
{
    if (!g)
        return;
    sampler_free(g->smp);
    sampler_stop_free(g->stop);
    garlic_free(g->text);
    garlic_free(g);
}

engine_seq *engine_seq_new(const tokenizer *t, const engine_params *p, garlic_error *err)
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
    if (p->end_tokens)
        g->ends = *p->end_tokens;
    else
        engine_end_tokens(t, &g->ends);
    tokenizer_stream_init(&g->stream, t, 0);
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
}

// Passes len bytes through the stop matcher (if any) to emit. Returns 1 when a stop string
// ended generation, -1 when the caller cancelled, -2 when the matcher ran out of memory
// (err is filled), 0 otherwise.
static int deliver(engine_seq *g, const char *text, size_t len, bool flush, engine_emit_fn emit,
                   void *user, garlic_error *err)
{
    sampler_stop_result r = {.text = text, .len = len};
    if (g->stop) {
        if (flush)
            sampler_stop_flush(g->stop, &r);
        else if (sampler_stop_feed(g->stop, text, len, &r, err) != GARLIC_OK)
            return -2;
    }
    if (r.len && emit(user, r.text, r.len) != 0)
        return -1;
    return r.stopped ? 1 : 0;
}

// Passes tok (with its log-probabilities when asked for) to the on_token hook; returns its
// verdict (non-zero cancels). A logprobs failure (a bad top_logprobs) reports NULL instead.
static int report_token(const engine_seq *g, int32_t tok, void *user)
{
    const engine_params *p = g->p;
    sampler_logprobs lp;
    const sampler_logprobs *lpp = NULL;
    if (p->logprobs && sampler_logprobs_last(g->smp, tok, p->top_logprobs, &lp, NULL) == GARLIC_OK)
        lpp = &lp;
    return p->on_token(user, tok, lpp);
}

// Ends generation with finish: releases what the decoder held back (through the stop
// matcher), then what the matcher held back.
static int finish(engine_seq *g, engine_finish why, engine_emit_fn emit, void *user,
                  engine_stats *stats, garlic_error *err)
{
    stats->finish = why;
    size_t len = tokenizer_stream_flush(&g->stream, g->text, g->text_cap);
    int d = len ? deliver(g, g->text, len, false, emit, user, err) : 0;
    if (d == 0 && g->stop)
        d = deliver(g, NULL, 0, true, emit, user, err);
    if (d == -2)
        return GARLIC_ENOMEM;
    if (d == -1)
        stats->finish = ENGINE_FINISH_CANCEL;
    if (d == 1)
        stats->finish = ENGINE_FINISH_STOP;
    return GARLIC_OK;
}

int engine_seq_step(engine_seq *g, const float *logits, bool context_full, engine_emit_fn emit,
                    void *user, int32_t *next, engine_stats *stats, garlic_error *err)
{
    const engine_params *p = g->p;
    *next = -1;
    if (context_full)
        return finish(g, ENGINE_FINISH_CONTEXT, emit, user, stats, err);
    int32_t tok = sampler_sample(g->smp, logits);
    if (tok < 0) // every token is banned (logit bias): nothing can follow
        return finish(g, ENGINE_FINISH_STOP, emit, user, stats, err);
    sampler_accept(g->smp, tok);
    stats->n_generated++;
    stats->unevaluated = tok;
    if (!p->ignore_eos && sampler_is_end(&g->ends, tok))
        return finish(g, ENGINE_FINISH_STOP, emit, user, stats, err);
    if (p->on_token && report_token(g, tok, user)) {
        stats->finish = ENGINE_FINISH_CANCEL;
        return GARLIC_OK;
    }
    size_t len = 0;
    int rc = tokenizer_stream_push(&g->stream, tok, g->text, g->text_cap, &len, err);
    if (rc)
        return rc;
    int d = deliver(g, g->text, len, false, emit, user, err);
    if (d == -2)
        return GARLIC_ENOMEM;
    if (d != 0) { // a stop string (its text is not part of the output) or a cancel
        stats->finish = d > 0 ? ENGINE_FINISH_STOP : ENGINE_FINISH_CANCEL;
        return GARLIC_OK;
    }
    if (p->max_tokens && stats->n_generated >= p->max_tokens)
        return finish(g, ENGINE_FINISH_LENGTH, emit, user, stats, err);
    *next = tok;
    return GARLIC_OK;
}

// Samples, streams and evaluates tokens until a limit, an end token or a stop string.
static int generate_loop(model_state *s, engine_seq *g, const float *logits, uint32_t *pos,
                         engine_emit_fn emit, void *user, engine_stats *stats, garlic_error *err)
{
    uint32_t n_ctx = model_state_n_ctx(s);
    for (;;) {
        int32_t tok;
        int rc = engine_seq_step(g, logits, *pos >= n_ctx, emit, user, &tok, stats, err);
        if (rc || tok < 0)
            return rc;
        rc = model_forward(s, &tok, 1, *pos, false, &logits, err);
        if (rc)
            return rc;
        (*pos)++;
        stats->unevaluated = -1;
    }
}

int engine_generate(model_state *s, const tokenizer *t, const int32_t *prompt, size_t n_prompt,
                    uint32_t *pos, const engine_params *p, engine_emit_fn emit, void *user,
                    engine_stats *stats, garlic_error *err)
{
    memset(stats, 0, sizeof *stats);
    stats->unevaluated = -1;
    if (n_prompt == 0)
        return garlic_error_set(err, GARLIC_EINVAL, "empty prompt (start with BOS at least)");
    if (*pos + n_prompt > model_state_n_ctx(s))
        return garlic_error_set(err, GARLIC_EINVAL, "the prompt needs %zu positions, the "
                                "context has %u left", n_prompt,
                                model_state_n_ctx(s) - *pos);
    engine_seq *g = engine_seq_new(t, p, err);
    if (!g)
        return err ? err->code : GARLIC_ENOMEM;
    const float *logits = NULL;
    double t0 = garlic_now();
    int rc = prefill(s, prompt, n_prompt, pos, p->batch, &logits, err);
    double t1 = garlic_now();
    stats->n_prompt = (uint32_t)n_prompt;
    stats->prompt_seconds = t1 - t0;
    if (rc == GARLIC_OK) {
        engine_seq_prompt(g, prompt, n_prompt);
        rc = generate_loop(s, g, logits, pos, emit, user, stats, err);
    }
    stats->generate_seconds = garlic_now() - t1;
    engine_seq_free(g);
    return rc;
}
