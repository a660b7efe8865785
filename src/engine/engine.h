// SPDX-License-Identifier: MIT
// The one way to generate text. An engine serves one loaded model: it owns the model's paged
// KV pool and run state and one scheduler thread that takes requests from a bounded queue and
// runs every running sequence's next token plus chunks of waiting prompts as one forward pass
// per step (continuous batching, chunked prefill, prefix sharing, preemption). A request goes
// in as prompt ids plus generation parameters and comes back as a stream of chunks (text,
// token log-probabilities, one end per choice). The server (through registry/), `garlic run`
// and `garlic bench` all generate this way.
#ifndef GARLIC_ENGINE_H
#define GARLIC_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "base/threadpool.h"
#include "kvcache/kvcache.h"
#include "sampler/sampler.h"

typedef struct model model;
typedef struct tokenizer tokenizer;
typedef struct engine engine;
typedef struct engine_request engine_request;

enum {
    ENGINE_MAX_CHOICES = 16, // choices (OpenAI's n) per request
    ENGINE_DEFAULT_STEP_TOKENS = 512,
    ENGINE_DEFAULT_MAX_QUEUE = 64,
};

typedef enum engine_finish {
    ENGINE_FINISH_LENGTH,  // max_tokens reached
    ENGINE_FINISH_STOP,    // an end-of-generation token or a stop string
    ENGINE_FINISH_CONTEXT, // the context is full
    ENGINE_FINISH_CANCEL,  // the request was cancelled (or its reader went away)
    ENGINE_FINISH_COUNT
} engine_finish;

// How one choice is generated.
typedef struct engine_params {
    sampler_params sampling;
    uint32_t max_tokens;      // tokens to generate at most (0: until the context is full)
    const char *const *stops; // (n_stops) stop strings; engine_request_new copies them
    size_t n_stops;
    bool ignore_eos;               // keep going past end-of-generation tokens (benchmarks)
    bool logprobs;                 // report each token with its log-probabilities
    uint32_t top_logprobs;         // alternatives per token (<= SAMPLER_MAX_TOP_LOGPROBS)
    bool render_special;           // control tokens come out as their text ("<|channel|>"), for
                                   // callers that parse tool calls and reasoning from it
    const struct grammar *grammar; // constrain the output to it (sampler/grammar.h), NULL:
                                   // free; owned by the request (engine_request_params)
    // A reasoning budget: after reasoning_budget tokens inside a reasoning block (opened by
    // think_open, or from the start with starts_in_reasoning) the next token is think_close.
    bool limit_reasoning;
    uint32_t reasoning_budget;
    int32_t think_open, think_close; // token ids (-1: none)
    bool starts_in_reasoning;
} engine_params;

// What one choice cost and how it ended.
typedef struct engine_stats {
    uint32_t n_prompt;       // prompt tokens
    uint32_t n_cached;       // of those, taken from the prefix cache when first admitted
    uint32_t n_generated;    // tokens sampled (an end-of-generation token included)
    double prompt_seconds;   // from admission until the prompt's last position was computed
    double generate_seconds; // from then until the end
    engine_finish finish;
} engine_stats;

// The finish reason as the OpenAI API names it ("length", "stop").
const char *engine_finish_name(engine_finish f);

// The end-of-generation tokens of a vocabulary: EOS, EOT, EOM and the control tokens that chat
// templates end a turn with (<|eot_id|>, <|im_end|>, <|end|>, <|endoftext|>, ...).
void engine_end_tokens(const tokenizer *t, sampler_end_tokens *out);

// ---- Engines ----

// Callbacks an engine makes from its scheduler thread; each may be NULL. The registry uses
// them to share one compute pool fairly between models and to count tokens for /metrics.
typedef struct engine_hooks {
    void *user;
    void (*compute_begin)(void *user); // before a forward pass: may wait for the pool's turn
    void (*compute_end)(void *user);   // after it
    void (*compute_idle)(void *user);  // the engine has nothing to run
    void (*token)(void *user, double latency, bool first); // an output token was produced
    void (*request_done)(void *user, uint64_t prompt_tokens, bool cancelled);
    // The model's files changed on disk (engine_check_files): every request failed with
    // message (which names the model and says what changed), and submit fails from now on.
    // Called once, from the thread that found the change.
    void (*failed)(void *user, const char *message);
} engine_hooks;

// An engine's part in tensor parallelism under `garlic serve` (tensor_parallel.c; the model
// is then a share, dist/ started): the leader (rank 0) runs the scheduler and sends each
// step to the followers, which run no scheduler and compute the steps they receive
// (engine_follow). ENGINE_TP_NONE: one process, or the CLI's ranks in lockstep (each its own
// scheduler over the same requests).
typedef enum engine_tp_role {
    ENGINE_TP_NONE,
    ENGINE_TP_LEADER,
    ENGINE_TP_FOLLOWER,
    ENGINE_TP_COUNT
} engine_tp_role;

typedef struct engine_config {
    const char *name;     // for messages (the model's name); copied
    const model *weights; // borrowed for the engine's life
    const tokenizer *tok; // borrowed for the engine's life
    kv_type kv_type;
    uint32_t block_tokens;     // positions per KV block; 0: KV_DEFAULT_BLOCK_TOKENS
    uint32_t kv_blocks;        // full blocks in the pool (the planner's figure)
    uint32_t kv_window_blocks; // window blocks, for a model with sliding-window layers (the
                               // planner's figure); 0: kv_window_blocks_for parallel
                               // sequences and steps of step_tokens (at most kv_blocks)
    uint32_t n_ctx;            // positions one sequence may use
    uint32_t parallel;         // running sequences at most (>= 1)
    uint32_t step_tokens;      // tokens per step; 0: ENGINE_DEFAULT_STEP_TOKENS
    uint32_t max_queue;        // requests waiting beyond which submit fails; 0: the default
    thread_pool *pool;         // compute pool to borrow; NULL: the engine starts its own
    int n_threads;             // size of the engine's own pool (0: physical cores)
    struct backend *device;    // a device backend running the first device_layers layers
                               // (model_state_config), or NULL; borrowed
    uint32_t device_layers;
    void (*upload_progress)(void *ctx, int percent); // as the device's weights are uploaded
    void *upload_progress_ctx;
    engine_hooks hooks;
    engine_tp_role tp_role;
} engine_config;

// Allocates the KV pool and the run state and starts the scheduler thread. The pool can hold
// kv_blocks blocks (and kv_window_blocks window blocks, at least one sequence's window and
// step); a request whose prompt plus one token needs more positions than n_ctx or more blocks
// than the pool has is refused at submit. NULL and err filled on bad sizes or no memory.
engine *engine_new(const engine_config *cfg, garlic_error *err);

// Cancels everything queued or running (their streams end), joins the scheduler and frees
// everything. engine_free(NULL) is a no-op.
void engine_free(engine *e);

// Stops the scheduler as engine_free does, keeping the engine's counters readable; afterwards
// engine_submit fails with GARLIC_ESTOPPED and the other calls answer as for an idle engine.
void engine_stop(engine *e);

// A follower's life (ENGINE_TP_FOLLOWER; on the calling thread, which may make the MPI
// calls): receives each step rank 0's engine sends, repeats its KV block copies and computes
// it (its collectives keep the ranks in step), until rank 0's engine stops. GARLIC_OK then;
// an error (the message says what) when a step does not fit this rank's pool or state, which
// means the ranks' pools differ: the caller should end the job (exit non-zero).
int engine_follow(engine *e, garlic_error *err);

// Lets the leader (ENGINE_TP_LEADER) send heartbeats while idle, from now on: to be called
// once the followers are in engine_follow and the caller makes no more collectives of its
// own beside the engine's (garlic serve: after the ranks agreed on the load).
void engine_tp_beats_start(engine *e);

// Queues r. On success the engine holds a reference and the caller must still call
// engine_request_release. GARLIC_EFULL when max_queue requests wait already, GARLIC_EIO when
// the model's files changed (engine_check_files), GARLIC_EINVAL
// when the prompt can never fit (message with the sizes), when r generates on a model that
// computes embeddings only, or when r embeds with a pooling garlic lacks (rank) or, on a
// model whose attention is not causal, has more tokens than one step computes; on failure
// the caller still owns r.
int engine_submit(engine *e, engine_request *r, garlic_error *err);

// Cancels everything queued or running; the scheduler ends it at its next step.
void engine_cancel_all(engine *e);

// Whether the files the model was loaded from are unchanged (model_files_check): GARLIC_OK,
// or GARLIC_EIO with a message naming the model and what changed. A change fails the engine
// for good: everything queued or running ends with that error (at the scheduler's next
// step), later submits fail with it, and hooks.failed is called once. The scheduler checks
// after every forward pass, before sampling; anyone may call this (the registry does before
// it hands the model to a request), from any thread. A truncated file does not crash the
// forward pass meanwhile: its mapping reads as zeros (base/mapping.h).
int engine_check_files(engine *e, garlic_error *err);

// True when nothing is queued, running or waiting.
bool engine_idle(engine *e);

uint32_t engine_n_ctx(const engine *e);

// The longest input an embed request may have: the context, and for a model whose attention
// is not causal (an encoder) also the tokens of one step, which must hold the whole input,
// and for learned positions (BERT) the trained context, their table's rows.
uint32_t engine_max_embed_tokens(const engine *e);
uint32_t engine_queue_length(engine *e);

// What the scheduler holds, as of its last step.
typedef struct engine_counters {
    uint32_t running;      // sequences in the running batch
    uint32_t peak_running; // the most sequences one step has run
    uint32_t waiting;      // sequences waiting for KV blocks (preempted, or choices not
                           // yet started) plus requests in the queue
    uint32_t parallel;     // the cap on running sequences
    uint32_t block_tokens; // positions per KV block
    uint32_t kv_blocks;    // full blocks in the pool
    uint32_t kv_used;      // referenced by a sequence
    uint32_t kv_cached;    // unreferenced prefix-cache blocks (reclaimable)
    uint32_t kv_free;
    uint32_t kv_window_blocks; // window blocks (sliding-window layers; 0: none), and the same
    uint32_t kv_window_used;   // counts of them
    uint32_t kv_window_cached;
    uint32_t kv_window_free;
    uint64_t kv_bytes;        // bytes of the pool
    uint64_t kv_window_bytes; // of which the window blocks'
    uint64_t kv_used_bytes;   // the pool's bytes pro rata of the blocks in use (each kind's)
    uint64_t prefix_hits;     // full prompt blocks found in the prefix cache
    uint64_t prefix_misses;   // full prompt blocks looked up and computed
    uint64_t evictions;       // cached blocks reclaimed
    uint64_t preemptions;     // sequences whose blocks were taken back mid-generation
} engine_counters;

void engine_counters_get(engine *e, engine_counters *out);

// A running sequence as of the scheduler's last step: whose it is and the KV it holds.
typedef struct engine_seq_info {
    char label[48]; // the request's label (engine_request_params.label), "" if none
    uint32_t choice;
    uint32_t tokens;    // positions so far (prompt plus generated)
    uint32_t kv_blocks; // blocks in its table (shared prefix blocks included)
} engine_seq_info;

// Copies up to cap running sequences; returns how many.
size_t engine_sequences(engine *e, engine_seq_info *out, size_t cap);

// ---- Requests ----

typedef struct engine_request_params {
    const int32_t *prompt; // (n_prompt) copied
    size_t n_prompt;
    engine_params generation; // stops and logit_bias are copied
    uint32_t n_choices;       // 1..ENGINE_MAX_CHOICES, generated side by side
    bool seeded;              // generation.sampling.seed was given: choice i uses seed + i
    const char *label;        // a name for /metrics (the API's response id), or NULL;
                              // copied (up to 47 bytes)
    bool wake_at_end;         // the reader wants each choice's end, not every token: no
                              // wake-up per token (benchmarks, whole answers)
    struct grammar *grammar;  // every choice's output must match it, or NULL; the request
                              // takes it (frees it) once engine_request_new succeeds
    bool embed;               // compute the prompt's embedding instead of generating: the
                              // prompt is run (batched with other sequences), its hidden
                              // states pooled as the model says and normalized to length 1,
                              // and the one choice ends with the vector (n_choices must be 1;
                              // generation parameters are not used)
} engine_request_params;

// One generated token with its log-probabilities (when the request asked for them).
typedef struct engine_token {
    int32_t id;
    sampler_logprobs lp;
} engine_token;

// What engine_request_next hands out: text (and tokens) of one choice since the last call,
// then, once, that choice's end. Pointers are valid until the next call on the request.
typedef struct engine_chunk {
    uint32_t choice;
    const char *text;
    size_t len;
    const engine_token *tokens; // (n_tokens) only when logprobs were asked for
    size_t n_tokens;
    bool choice_done; // the choice ended after this text: finish and stats are set
    engine_finish finish;
    engine_stats stats;
    uint32_t output_tokens;     // tokens the choice produced (end-of-generation tokens excluded)
    double first_token_seconds; // from submit to the choice's first output token (0: none)
    bool all_done;              // nothing more will come (error or every choice ended)
    int error;                  // GARLIC_OK, or why the request failed (message in error_message)
    const char *error_message;
    const float *embedding; // (n_embd) an embed request's vector, with its choice_done chunk
    uint32_t n_embd;
} engine_chunk;

// A request with copies of everything in p. NULL and err filled on bad params or no memory.
// The caller owns it until engine_submit; in every case it releases it with
// engine_request_release.
engine_request *engine_request_new(const engine_request_params *p, garlic_error *err);

// Waits up to timeout_ms for output. Returns 1 with *out filled, 0 on timeout. Only one
// thread (the submitter) may call this.
int engine_request_next(engine_request *r, engine_chunk *out, int timeout_ms);

// Asks the scheduler to stop r (it does at its next step, freeing r's KV blocks).
void engine_request_cancel(engine_request *r);

// r was cancelled: by its submitter, or by the engine (engine_cancel_all at a shutdown or
// unload). A submitter that did not cancel it learns that its answer was cut.
bool engine_request_cancelled(const engine_request *r);

// Cancels r if it is still running and drops the caller's reference. NULL is a no-op.
void engine_request_release(engine_request *r);

#endif
