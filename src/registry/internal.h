// SPDX-License-Identifier: MIT
// What the registry's files share: the registry, model entry and request structs, with the
// thread that owns each field. registry.c lists and loads models, request.c is a request's
// output channel, scheduler.c is the per-model thread that batches every running sequence
// into one forward pass per step.
#ifndef GARLIC_REGISTRY_INTERNAL_H
#define GARLIC_REGISTRY_INTERNAL_H

#include <pthread.h>

#include "registry/registry.h"

// The output of one choice, produced by the worker and taken by the submitter.
typedef struct choice_channel {
    char *text;               // (cap) produced, not yet taken
    size_t len, cap;
    registry_token *tokens;   // (tokens_cap) produced, not yet taken
    size_t n_tokens, tokens_cap;
    bool done;                // the worker finished this choice: finish and stats are set
    bool done_taken;          // the submitter saw the end
    engine_finish finish;
    engine_stats stats;
    uint32_t output_tokens;
} choice_channel;

struct registry_request {
    // Set by registry_request_new, then read-only.
    int32_t *prompt; // (n_prompt)
    size_t n_prompt;
    engine_params engine;     // stops and logit_bias point at the copies below
    char **stops;             // (engine.n_stops) owned copies
    sampler_bias *bias;       // (engine.sampling.n_logit_bias) owned copy
    uint32_t n_choices;
    bool seeded;
    char label[48];
    registry *reg;            // set by registry_submit (for statistics)

    atomic_bool cancel;       // set by anyone; the worker stops within one token
    atomic_int refs;          // submitter + worker

    pthread_mutex_t mu;       // guards the fields below, shared by worker and submitter
    pthread_cond_t cv;        // signalled when the worker adds output
    choice_channel ch[REGISTRY_MAX_CHOICES];
    uint32_t n_done;          // choices ended
    bool finished;            // the scheduler is done with every choice
    int error;                // GARLIC_OK or why the request failed
    char error_message[512];

    // Owned by the submitter: buffers swapped with a channel's on each take.
    uint32_t next_choice;     // the choice being read
    char *taken_text;         // (taken_cap)
    size_t taken_cap;
    registry_token *taken_tokens; // (taken_tokens_cap)
    size_t taken_tokens_cap;

    // Owned by the scheduler while it runs the request.
    double t_submit;          // monotonic seconds at submit
    uint32_t n_live;          // choices not yet ended (the scheduler's reference goes with the last)
    bool cancelled_any;       // a choice ended cancelled (for the statistics)
    bool failed;              // registry_request_fail was called
};

struct registry_model {
    registry *reg;
    char *name;
    char *path;
    uint64_t file_size;
    int64_t mtime;

    pthread_mutex_t load_mu;  // held while the model loads or unloads
    atomic_bool loaded;       // set (release) once everything below the line is ready;
                              // changed under reg->life_mu
    // Guarded by reg->life_mu (lifecycle.c).
    uint32_t users;           // acquired and not released (pins the model)
    bool unloading;           // picked for unloading; its load_mu will be taken
    double last_used;         // garlic_now() of the last acquire or release
    double expires;           // when the reaper unloads it if unused
    uint64_t cost;            // bytes reserved against the budget while loaded
    // Written once under load_mu before loaded is set, then read-only (the run state
    // belongs to the worker thread).
    model *weights;
    tokenizer *tok;
    sampler_end_tokens end_tokens; // of tok, found once at load
    model_state *state;       // scratch and compute pool of the scheduler's steps
    kv_cache *kv;             // the KV block pool (the scheduler's alone while it runs)
    uint32_t n_ctx;           // positions one sequence may use
    uint32_t parallel;        // running sequences at most
    uint32_t kv_blocks;       // blocks of the pool
    struct sched *sched;      // the scheduler's own state (scheduler.c)
    chat_template *tmpl;      // NULL: the fallback
    char *template_source;    // owned copy of the template text in use, or NULL
    char template_error[512];

    pthread_mutex_t mu;       // guards the queue and the snapshot, shared by HTTP threads
                              // and the scheduler
    pthread_cond_t cv;        // signalled on push and on stop
    registry_request **queue; // (queue_cap) ring of requests not yet started
    uint32_t queue_cap, head, count;
    registry_model_stats snap; // the scheduler's counts after its last step
    registry_model_stats retired; // counters of the pools of earlier loads
    registry_seq_info *seq_info;  // (parallel) running sequences after the last step
    size_t n_seq_info;
    bool busy;                // the scheduler holds running or waiting sequences
    // Guarded by reg->compute_mu (lifecycle.c): turns on the shared compute pool.
    double compute_vtime;     // compute seconds used (virtual time, see lifecycle.c)
    double compute_start;     // when its current turn began
    bool compute_active;      // has work: others wait for it when it is behind
    atomic_bool cancel_all;   // the scheduler cancels everything it holds (shutdown)
    bool stop;                // the scheduler exits once everything is cancelled
    bool thread_started;
    pthread_t thread;
};

struct registry {
    registry_config cfg;
    char *template_text;      // --chat-template-file contents, or NULL
    char *template_name;
    registry_model *models[REGISTRY_MAX_MODELS]; // (n_models) set up before serving
    size_t n_models;
    atomic_bool stopped;      // submit refuses new work

    pthread_mutex_t stats_mu; // guards stats (workers write, /metrics reads)
    registry_stats stats;

    thread_pool *pool;        // the compute pool every model's steps share, in turns
    pthread_mutex_t compute_mu;
    pthread_cond_t compute_cv;
    registry_model *compute_owner; // the model whose step runs on the pool, or NULL

    pthread_mutex_t life_mu;  // guards the lifecycle fields of every model and these:
    pthread_cond_t life_cv;   // a release, an unload or shutdown happened
    uint64_t budget;          // bytes loaded models may reserve
    uint64_t reserved;        // bytes reserved by loaded and loading models
    uint64_t loads, unloads;
    bool reaper_stop, reaper_started;
    pthread_t reaper;
};

// registry.c: the parts of a load. load_parts maps the weights, reads the tokenizer and
// sizes the pools (*cost: the planned bytes); start allocates them, picks the template and
// starts the scheduler; unload_parts frees whatever exists (m->load_mu held for all three).
int registry_model_load_parts(registry_model *m, uint64_t *cost, garlic_error *err);
int registry_model_start(registry_model *m, garlic_error *err);
void registry_model_unload_parts(registry_model *m);

// lifecycle.c
int registry_lifecycle_start(registry *reg, garlic_error *err);
void registry_lifecycle_stop(registry *reg);
void registry_compute_begin(registry_model *m); // waits for m's turn on reg->pool
void registry_compute_end(registry_model *m);
void registry_compute_idle(registry_model *m);   // m has no work: nobody waits for it

// request.c: the scheduler's side of a request's channel.
int registry_request_append_text(registry_request *r, uint32_t choice, const char *text,
                                 size_t len);
int registry_request_append_token(registry_request *r, uint32_t choice, int32_t id,
                                  const sampler_logprobs *lp);
void registry_request_end_choice(registry_request *r, uint32_t choice, const engine_stats *stats,
                        uint32_t output_tokens);
void registry_request_fail(registry_request *r, int code, const char *message);
void registry_request_unref(registry_request *r);

// scheduler.c
int registry_worker_start(registry_model *m, garlic_error *err);
void registry_worker_stop(registry_model *m);
void registry_worker_cancel_all(registry_model *m);
bool registry_worker_idle(registry_model *m);

// registry.c: statistics updates from workers (each output token counts as generated).
void registry_stats_token(registry *reg, double latency, bool first);
void registry_stats_request(registry *reg, uint64_t prompt, bool cancelled);

#endif
