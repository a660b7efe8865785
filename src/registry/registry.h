// SPDX-License-Identifier: MIT
// The models a server knows and the work queued on them. A registry lists models (a GGUF path
// and a name), loads one on first use (weights, tokenizer, chat template, a paged KV pool and
// a run state) and starts one scheduler thread per loaded model. The scheduler takes requests
// from a bounded FIFO queue when their prompt's KV blocks can be had, and runs every running
// sequence's next token plus chunks of waiting prompts as one batch per step (continuous
// batching). A request goes in as a registry_request (prompt ids plus engine parameters) and
// comes out as a stream of chunks (text, token log-probabilities, one end per choice).
#ifndef GARLIC_REGISTRY_H
#define GARLIC_REGISTRY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/clock.h" // registry time stamps are garlic_now() seconds
#include "base/error.h"
#include "chat/chat.h"
#include "engine/generate.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

enum {
    REGISTRY_MAX_CHOICES = 16, // choices (OpenAI's n) per request
    REGISTRY_MAX_MODELS = 256,
    REGISTRY_DEFAULT_BUDGET_PERCENT = 80,
};


typedef struct registry_config {
    uint32_t n_ctx;         // positions one request may use; 0: min(trained, 4096)
    uint32_t max_queue;     // waiting requests per model beyond which submit fails; 0: 64
    uint32_t parallel;      // running sequences per model at most, and (without kv_tokens)
                            // full contexts the KV pool holds; 0: a pool of
                            // PLANNER_DEFAULT_PARALLEL (4) contexts and one running sequence
                            // per 256 pool positions (1 to 64)
    uint32_t kv_tokens;     // KV pool capacity in positions, at least n_ctx (so one request
                            // can use its whole context); 0: see parallel
    uint32_t step_tokens;   // tokens per step (decode tokens plus prefill chunks); 0: 512
    int n_threads;          // threads of the compute pool all models share; 0: physical cores
    kv_type kv_type;
    uint64_t memory_budget; // bytes all loaded models may take together (planned: mapping,
                            // KV pool, buffers, overhead); 0: REGISTRY_DEFAULT_BUDGET_PERCENT of
                            // physical memory (or of the cgroup's limit when lower)
    double keep_alive;      // seconds a model stays loaded after its last request (< 0:
                            // forever, 0: unloaded at once); used when keep_alive_set
    bool keep_alive_set;    // false: 300 s
    double load_wait;       // seconds a load waits for busy models to free memory (0: none)
    bool log;               // one line on standard error per model load and unload
    const char *chat_template_file; // overrides every model's template when set (borrowed
                                    // for registry_new only: the text is read there)
} registry_config;

typedef struct registry registry;
typedef struct registry_model registry_model;
typedef struct registry_request registry_request;

// An empty registry. Fails (NULL, err filled) when the template file cannot be read.
registry *registry_new(const registry_config *cfg, garlic_error *err);

// Stops every scheduler (cancelling queued and running requests, whose streams then end) and
// frees every model. No request may be submitted concurrently. registry_free(NULL) is a no-op.
void registry_free(registry *reg);

// Adds path under name (NULL: the file name without ".gguf"). The file is not opened yet.
// GARLIC_EINVAL for a duplicate name or too many models.
int registry_add(registry *reg, const char *path, const char *name, garlic_error *err);

// Adds every *.gguf file in dir (sorted by name). GARLIC_EIO when dir cannot be read.
int registry_add_dir(registry *reg, const char *dir, garlic_error *err);

// Loads every model now (for --preload); stops at the first failure.
int registry_load_all(registry *reg, garlic_error *err);

// Makes submit fail with GARLIC_ESTOPPED from now on and cancels queued and running work
// once grace_seconds have passed without it finishing (0: at once). Returns when every
// scheduler is idle.
void registry_drain(registry *reg, double grace_seconds);

size_t registry_count(const registry *reg);
registry_model *registry_model_at(registry *reg, size_t i);
// The model named name, or NULL.
registry_model *registry_find(registry *reg, const char *name);

// Facts about an entry; strings live as long as the registry.
const char *registry_model_name(const registry_model *m);
const char *registry_model_path(const registry_model *m);
uint64_t registry_model_file_size(const registry_model *m);
int64_t registry_model_mtime(const registry_model *m); // seconds since the epoch
bool registry_model_loaded(registry_model *m);

// Loads m if it is not loaded (the first caller loads, others wait) and starts its scheduler,
// and pins it: m stays loaded until the matching registry_model_release. A load first
// reserves m's planned bytes against the memory budget, unloading idle models least recently
// used first; GARLIC_ENOMEM (with what is needed and free) when they cannot be had.
// *load_seconds gets the time this call spent loading (0 when it was loaded). After success
// the accessors below stay valid until the release.
int registry_model_acquire(registry_model *m, double *load_seconds, garlic_error *err);

// Unpins m. It stays loaded keep_alive seconds more (< 0: until the server stops; 0: it is
// unloaded as soon as nobody uses it; NAN: the registry's default keep_alive).
void registry_model_release(registry_model *m, double keep_alive);

// Unloads m now if it is loaded and unused (GARLIC_EINVAL otherwise).
int registry_model_unload(registry_model *m);

// A loaded model as /api/ps shows it (all zero when it is not loaded).
typedef struct registry_model_ps {
    bool loaded;
    bool unloading;           // an unload is under way (loaded is already false)
    uint64_t bytes;           // planned bytes it holds: mapping, KV pool, buffers, overhead
    uint64_t kv_bytes;        // of which the KV pool
    uint64_t kv_used_bytes;   // KV blocks held by sequences (pro rata of the pool)
    uint32_t n_ctx;
    uint32_t users;           // requests using it
    double expires;           // garlic_now() seconds when it will be unloaded (INFINITY: never,
                              // or in use)
    double last_used;
} registry_model_ps;

void registry_model_ps_get(registry_model *m, registry_model_ps *out);

// The memory budget and what loaded models hold of it.
uint64_t registry_budget(registry *reg);
uint64_t registry_reserved(registry *reg);

// Valid while the caller holds m (between acquire and release).
const model *registry_model_weights(const registry_model *m);
const tokenizer *registry_model_tokenizer(const registry_model *m);
uint32_t registry_model_n_ctx(const registry_model *m);
uint64_t registry_model_bytes(registry_model *m); // planned bytes while loaded, else 0
// The parsed chat template, or NULL when the model has none (use the fallback). *source
// gets its text (the fallback's source when NULL is returned), *error any parse error that
// made the model fall back ("" if none), *from_file whether --chat-template-file gave it.
// Each out pointer may be NULL.
const chat_template *registry_model_template(const registry_model *m, const char **source,
                                             const char **error, bool *from_file);
// Requests waiting in m's queue (not yet started).
uint32_t registry_model_queue_length(registry_model *m);

// What a loaded model's scheduler holds, as of its last step.
typedef struct registry_model_stats {
    uint32_t running;         // sequences in the running batch
    uint32_t peak_running;    // the most sequences one step has run
    uint32_t waiting;         // sequences waiting for KV blocks (preempted, or choices not
                              // yet started) plus requests in the queue
    uint32_t parallel;        // the cap on running sequences
    uint32_t block_tokens;    // positions per KV block
    uint32_t kv_blocks;       // blocks in the pool
    uint32_t kv_used;         // referenced by a sequence
    uint32_t kv_cached;       // unreferenced prefix-cache blocks (reclaimable)
    uint32_t kv_free;
    uint64_t kv_bytes;        // bytes of the pool
    uint64_t prefix_hits;     // full prompt blocks found in the prefix cache
    uint64_t prefix_misses;   // full prompt blocks looked up and computed
    uint64_t evictions;       // cached blocks reclaimed
    uint64_t preemptions;     // sequences whose blocks were taken back mid-generation
} registry_model_stats;

void registry_model_stats_get(registry_model *m, registry_model_stats *out);

// A running sequence as of the scheduler's last step: whose it is and the KV it holds.
typedef struct registry_seq_info {
    char label[48];     // the request's label (registry_request_params.label), "" if none
    uint32_t choice;
    uint32_t tokens;    // positions so far (prompt plus generated)
    uint32_t kv_blocks; // blocks in its table (shared prefix blocks included)
} registry_seq_info;

// Copies up to cap running sequences of m; returns how many.
size_t registry_model_sequences(registry_model *m, registry_seq_info *out, size_t cap);

// ---- Requests ----

typedef struct registry_request_params {
    const int32_t *prompt;   // (n_prompt) copied
    size_t n_prompt;
    engine_params engine;    // stops and logit_bias are copied; on_token/emit are the scheduler's
    uint32_t n_choices;      // 1..REGISTRY_MAX_CHOICES, generated side by side
    bool seeded;             // engine.sampling.seed was given: choice i uses seed + i
    const char *label;       // a name for /metrics (the API's response id), or NULL; copied
                             // (up to 47 bytes)
} registry_request_params;

// One generated token with its log-probabilities (when the request asked for them).
typedef struct registry_token {
    int32_t id;
    sampler_logprobs lp;
} registry_token;

// What registry_request_next hands out: text (and tokens) of one choice since the last call,
// then, once, that choice's end. Pointers are valid until the next call on the request.
typedef struct registry_chunk {
    uint32_t choice;
    const char *text;
    size_t len;
    const registry_token *tokens; // (n_tokens) only when logprobs were asked for
    size_t n_tokens;
    bool choice_done;      // the choice ended after this text: finish and stats are set
    engine_finish finish;
    engine_stats stats;
    uint32_t output_tokens; // tokens the choice produced (end-of-generation tokens excluded)
    bool all_done;         // nothing more will come (error or every choice ended)
    int error;             // GARLIC_OK, or why the request failed (message in error_message)
    const char *error_message;
} registry_chunk;

// A request with copies of everything in p. NULL and err filled on bad params or no memory.
// The caller owns it until registry_submit; afterwards, release it with
// registry_request_release.
registry_request *registry_request_new(const registry_request_params *p, garlic_error *err);

// Queues r on m's scheduler (m must be acquired). On success the scheduler holds a reference
// and the caller must call registry_request_release. Fails with GARLIC_EFULL,
// GARLIC_ESTOPPED, GARLIC_EINVAL when the prompt can never fit m's context or KV pool;
// on failure the caller still owns r and frees it with registry_request_release.
int registry_submit(registry_model *m, registry_request *r, garlic_error *err);

// Waits up to timeout_ms for output. Returns 1 with *out filled, 0 on timeout. Only one
// thread (the submitter) may call this.
int registry_request_next(registry_request *r, registry_chunk *out, int timeout_ms);

// Asks the scheduler to stop r (it does at its next step, freeing r's KV blocks).
void registry_request_cancel(registry_request *r);

// Cancels r if it is still running and drops the caller's reference. NULL is a no-op.
void registry_request_release(registry_request *r);


// ---- Statistics for /metrics ----

enum { REGISTRY_TTFT_BUCKETS = 12, REGISTRY_TOKEN_BUCKETS = 12 };

typedef struct registry_histogram {
    const double *bounds;      // (n_buckets) upper bounds in seconds, ascending (static)
    size_t n_buckets;
    uint64_t counts[16];       // (n_buckets) cumulative counts per bucket
    uint64_t count;
    double sum;
} registry_histogram;

typedef struct registry_stats {
    uint64_t prompt_tokens;
    uint64_t generated_tokens;
    uint64_t requests_done;
    uint64_t requests_cancelled;
    uint32_t queue_length;     // waiting (queued requests and waiting sequences), all models
    uint32_t running;          // sequences being generated, all models
    uint32_t models_loaded;
    uint64_t memory_bytes;     // planned bytes of loaded models (mappings, pools, buffers)
    uint64_t memory_budget;
    uint64_t loads, unloads;   // model loads and unloads since start
    registry_model_stats kv;   // KV pool and prefix-cache counts summed over loaded models
    registry_histogram ttft;   // submit -> first token
    registry_histogram token_latency; // between consecutive tokens
} registry_stats;

// A consistent snapshot of the counters.
void registry_stats_get(registry *reg, registry_stats *out);

#endif
