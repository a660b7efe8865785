// SPDX-License-Identifier: MIT
// What the engine's files share, with the thread that owns each field: sequence.c is one
// choice's generation state (sampler, stop strings, streaming decoder), request.c a
// request's output channel, scheduler.c the thread that batches every running sequence into
// one forward pass per step, engine.c an engine's life (pools, queue, counters).
#ifndef GARLIC_ENGINE_INTERNAL_H
#define GARLIC_ENGINE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "engine/engine.h"
#include "model/model.h"
#include "sampler/grammar.h"
#include "tokenizer/tokenizer.h"

// ---- One choice's generation state (sequence.c) ----

// Receives generated text as it becomes final (never half a UTF-8 character, never text
// that may belong to a stop string). Returns non-zero to cancel.
typedef int (*engine_emit_fn)(void *user, const char *text, size_t len);

// Called with each generated token that is part of the output (end-of-generation tokens are
// not), before its text reaches emit. lp is its log-probabilities when the parameters ask for
// them, else NULL; valid for the call only. Returns non-zero to cancel, like emit.
typedef int (*engine_token_fn)(void *user, int32_t token, const sampler_logprobs *lp);

typedef struct engine_seq engine_seq;

// What constrained sampling shares across an engine's sequences, the scheduler thread's alone:
// the model's tokens as a trie (made for the first request with a grammar), working memory
// and one mask.
typedef struct engine_grammar {
    grammar_vocab *vocab;
    grammar_scratch *scratch;
    uint32_t *mask; // (vocab size bits)
} engine_grammar;

// Makes eg ready for t (once); GARLIC_ENOMEM.
int engine_grammar_prepare(engine_grammar *eg, const tokenizer *t, const sampler_end_tokens *ends,
                           garlic_error *err);
void engine_grammar_deinit(engine_grammar *eg);

// A choice's state for parameters p and end tokens ends (both borrowed for its life), with
// eg (prepared, borrowed) when p has a grammar. NULL and err filled on bad parameters or no
// memory.
engine_seq *engine_seq_new(const tokenizer *t, const engine_params *p,
                           const sampler_end_tokens *ends, engine_grammar *eg, garlic_error *err);
void engine_seq_free(engine_seq *g);

// The prompt's tokens, for the penalties (call once, before the first step).
void engine_seq_prompt(engine_seq *g, const int32_t *prompt, size_t n);

// One step from the logits after the last evaluated token: samples a token, reports it to
// on_token, streams its text through emit. *next gets the token to evaluate next, or -1 when
// generation ended (stats->finish says why; held-back text was flushed, except after a stop
// string or a cancel). positions_left: positions of the context left for this token and
// those after it (0: full, ends with ENGINE_FINISH_CONTEXT without sampling; a grammar keeps
// its output able to end within them and max_tokens). stats->n_generated is updated.
int engine_seq_step(engine_seq *g, const float *logits, uint32_t positions_left,
                    engine_emit_fn emit, engine_token_fn on_token, void *user, int32_t *next,
                    engine_stats *stats, garlic_error *err);

// ---- Requests (request.c) ----

// The output of one choice, produced by the scheduler and taken by the submitter.
typedef struct choice_channel {
    char *text; // (cap) produced, not yet taken
    size_t len, cap;
    engine_token *tokens; // (tokens_cap) produced, not yet taken
    size_t n_tokens, tokens_cap;
    bool done; // the scheduler finished this choice: finish and stats are set
    engine_finish finish;
    engine_stats stats;
    uint32_t output_tokens;
    double first_token_seconds;
    float *embedding; // (n_embd) an embed request's vector, once done
    uint32_t n_embd;
} choice_channel;

struct engine_request {
    // Set by engine_request_new, then read-only.
    int32_t *prompt; // (n_prompt)
    size_t n_prompt;
    engine_params generation; // stops and logit_bias point at the copies below
    char **stops;             // (generation.n_stops) owned copies
    sampler_bias *bias;       // (generation.sampling.n_logit_bias) owned copy
    grammar *grammar;         // generation.grammar, owned (engine_request_params.grammar)
    uint32_t n_choices;
    bool seeded;
    bool wake_at_end;
    bool embed; // compute the prompt's embedding (engine_request_params.embed)
    char label[48];

    atomic_bool cancel; // set by anyone; the scheduler stops within one token
    atomic_int refs;    // submitter + scheduler

    pthread_mutex_t mu; // guards the fields below, shared by scheduler and submitter
    pthread_cond_t cv;  // signalled when the scheduler adds output (made by
                        // garlic_cond_init: timed waits use the monotonic clock)
    choice_channel ch[ENGINE_MAX_CHOICES];
    int error; // GARLIC_OK or why the request failed
    char error_message[512];

    // Owned by the submitter: buffers swapped with a channel's on each take.
    uint32_t next_choice; // the choice being read
    char *taken_text;     // (taken_cap)
    size_t taken_cap;
    engine_token *taken_tokens; // (taken_tokens_cap)
    size_t taken_tokens_cap;

    // Owned by the scheduler while it runs the request.
    double t_submit;    // monotonic seconds at submit
    uint32_t n_live;    // choices not yet ended (the scheduler's reference goes with the last)
    bool cancelled_any; // a choice ended cancelled (for the statistics)
    bool failed;        // engine_request_fail was called
};

// The scheduler's side of a request's channel.
int engine_request_append_text(engine_request *r, uint32_t choice, const char *text, size_t len);
int engine_request_append_token(engine_request *r, uint32_t choice, int32_t id,
                                const sampler_logprobs *lp);
void engine_request_first_token(engine_request *r, uint32_t choice, double seconds);
void engine_request_end_choice(engine_request *r, uint32_t choice, const engine_stats *stats,
                               uint32_t output_tokens);
// Scheduler side: hands an embed request's vector (n floats, copied) to its choice's channel
// before the choice ends. GARLIC_ENOMEM when the copy cannot be made.
int engine_request_set_embedding(engine_request *r, uint32_t choice, const float *v, uint32_t n);
void engine_request_fail(engine_request *r, int code, const char *message);
void engine_request_unref(engine_request *r);

// ---- The engine ----

typedef struct sched sched;

struct engine {
    // Set by engine_new, then read-only.
    engine_config cfg; // name points at the copy below
    char *name;
    sampler_end_tokens end_tokens; // of cfg.tok, found once
    kv_cache *kv;                  // the KV block pool: the scheduler thread's alone
    model_state *state;            // scratch and compute pool of the steps: the scheduler's alone
    sched *sched;                  // the scheduler thread's own state (scheduler.c)
    engine_grammar grammar;        // constrained sampling: the scheduler thread's alone

    pthread_mutex_t mu;     // guards what follows, shared by submitters, readers of the
                            // counters and the scheduler
    pthread_cond_t cv;      // signalled on push and on stop
    engine_request **queue; // (queue_cap) ring of requests not yet started
    uint32_t queue_cap, head, count;
    engine_counters snap;      // the scheduler's counts after its last step
    engine_seq_info *seq_info; // (cfg.parallel) running sequences after the last step
    size_t n_seq_info;
    bool busy;              // the scheduler holds running or waiting sequences
    bool stop;              // the scheduler exits once everything is cancelled
    atomic_bool cancel_all; // the scheduler cancels everything it holds
    atomic_bool failed;     // the model's files changed: everything fails with failure
    char failure[512];      // written once, under mu, before failed is set
    bool thread_started;
    pthread_t thread;
    // Tensor parallelism (cfg.tp_role; tensor_parallel.c), the scheduler thread's (a
    // follower's: engine_follow's caller's): the leader's KV block copies since its last step
    // (4 words each: window, to, from, rows) and a step's message.
    uint32_t *tp_copies; // (tp_copies_cap)
    size_t n_tp_copies, tp_copies_cap;
    uint32_t *tp_words; // (tp_words_cap)
    size_t tp_words_cap;
    bool tp_beats; // (mu) the leader may send heartbeats (engine_tp_beats_start)
};

// engine.c: the failure's message once failed is set (a copy taken under mu), else "".
void engine_failure(engine *e, char *out, size_t cap);

// tensor_parallel.c: the leader's side. engine_tp_record_copy is the pool's mirror (every copy
// on write); engine_tp_forward sends a step to the followers, then computes it (as
// model_forward_batch); engine_tp_stop tells them the engine stopped.
void engine_tp_record_copy(void *e, bool window, uint32_t to, uint32_t from, uint32_t n_rows);
int engine_tp_forward(engine *e, const model_batch *b, const float **logits, garlic_error *err);
void engine_tp_stop(engine *e);
// Seconds an idle leader waits between heartbeats (engine_tp_heartbeat: a header and a
// dist_heartbeat on every rank), so that a rank that hangs between requests is noticed.
#define ENGINE_TP_HEARTBEAT 2.0
void engine_tp_heartbeat(engine *e);

// scheduler.c: the thread's state, made and freed around its life.
int engine_sched_start(engine *e, garlic_error *err);
void engine_sched_stop(engine *e);

#endif
