// SPDX-License-Identifier: MIT
// The models a server knows: a registry lists models (a GGUF path and a name), loads one on
// first use (weights, tokenizer, chat template, and an engine sized by the memory planner:
// see engine/engine.h), keeps every loaded model within one memory budget (unloading idle ones
// least recently used first, and after their keep_alive), and gives the engines fair turns on
// one shared compute pool. Requests are engine requests, submitted through registry_submit.
#ifndef GARLIC_REGISTRY_H
#define GARLIC_REGISTRY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "engine/engine.h" // engine_counters and engine_seq_info are returned by value
#include "kvcache/kvcache.h"

typedef struct chat_template chat_template;
typedef struct model model;
typedef struct tokenizer tokenizer;
enum {
    REGISTRY_MAX_MODELS = 1024, // entries added over a server's life (removed ones count)
    REGISTRY_DEFAULT_BUDGET_PERCENT = 80,
    REGISTRY_FAILED_WAIT = 10, // seconds a request waits for a failed model's requests to end
};

typedef struct registry_model registry_model;

typedef struct registry_config {
    uint32_t n_ctx;       // positions one request may use; 0: min(trained, 4096)
    uint32_t max_queue;   // waiting requests per model beyond which submit fails; 0: 64
    uint32_t parallel;    // running sequences per model at most, and (without kv_tokens)
                          // full contexts the KV pool holds; 0: a pool of
                          // PLANNER_DEFAULT_PARALLEL (4) contexts and one running sequence
                          // per 256 pool positions (1 to 64)
    uint32_t kv_tokens;   // KV pool capacity in positions, at least n_ctx (so one request
                          // can use its whole context); 0: see parallel
    uint32_t step_tokens; // tokens per step (decode tokens plus prefill chunks); 0: 512
    int n_threads;        // threads of the compute pool all models share; 0: physical cores
    kv_type kv_type;
    uint64_t memory_budget; // bytes all loaded models may take together (planned: mapping,
                            // KV pool, buffers, overhead); 0: REGISTRY_DEFAULT_BUDGET_PERCENT of
                            // physical memory (or of the cgroup's limit when lower)
    double keep_alive;      // seconds a model stays loaded after its last request (< 0:
                            // forever, 0: unloaded at once); used when keep_alive_set
    bool keep_alive_set;    // false: 300 s
    double load_wait;       // seconds a load waits for busy models to free memory (0: none)
    bool log;               // one line on standard error per model load and unload
    // Called while a load makes the weights resident (percent done, every 5 %); NULL: quiet.
    void (*load_progress)(void *ctx, int percent);
    void (*upload_progress)(void *ctx, int percent); // the same for the upload to a device
    void *load_progress_ctx;
    const char *quantize; // the type a Hugging Face folder's 16/32-bit matrices are quantized
                          // to at load (model_load_options.quantize); NULL: as stored
    const char *chat_template_file; // overrides every model's template when set (borrowed
                                    // for registry_new only: the text is read there)
    // A device (backend/) that runs the first gpu_layers layers of every model, or NULL: the
    // CPU alone; the caller's, freed after registry_free.
    struct backend *device;
    int64_t gpu_layers; // layers on the device; < 0: as many as its free memory holds
                        // (planner_device_plan_make)
    // Seconds unused after which a loaded model sleeps: its engine (the device's copies of its
    // weights, its KV pool and buffers) is freed, its weights stay mapped and its budget
    // reserved; the next request wakes it. 0: never.
    double sleep_after;
    // Pipeline parallelism: this process is stage pp_stage of pp_stages (0 of 1: none) and
    // computes n_layers layers from first_layer of each split model (n_layers 0: all of them).
    // The layout (these and tp_*) applies to the models marked with registry_model_split only;
    // the others load whole, on this process alone.
    uint32_t pp_stage, pp_stages, first_layer, n_layers;
    uint32_t tp_rank, tp_size; // tensor parallelism: a split model is loaded as rank
                               // tp_rank's share of tp_size (model_load_options); 0 or
                               // 1: whole (the CLI's runs under mpirun)
    bool tp_serve; // with tp_size > 1, `garlic serve`'s engines: rank 0's leads (runs the
                   // scheduler, sends each step), the others' follow (engine_follow); false:
                   // every rank runs its own scheduler in lockstep (garlic run, bench)
    // Called on a model's lifecycle events (registry_event), by the thread that made them,
    // with the model's load_mu held so that the events of one model are told in order; NULL:
    // nothing. garlic serve's rank 0 tells the other ranks to do the same with their shares.
    void (*event)(void *ctx, registry_model *m, int event);
    void *event_ctx;
} registry_config;

typedef struct registry registry;

// What registry_config.event reports.
enum registry_event {
    REGISTRY_LOADED = 1, // loaded: its engine exists and has run no step yet
    REGISTRY_WOKE,       // woken: its engine started again, no step yet
    REGISTRY_SLEPT,      // asleep: its engine stopped, its weights kept
    REGISTRY_UNLOADED, // unloaded (keep_alive, LRU, asked, a changed file): engine and weights gone
};

// An empty registry. Fails (NULL, err filled) when the template file cannot be read.
registry *registry_new(const registry_config *cfg, garlic_error *err);

// Stops every scheduler (cancelling queued and running requests, whose streams then end) and
// frees every model. No request may be submitted concurrently. registry_free(NULL) is a no-op.
void registry_free(registry *reg);

// What a model made by a Modelfile adds to its weights (each NULL when absent).
typedef struct registry_extras {
    const char *template_text; // a chat template used instead of the model's own
    const char *system;        // the system message of requests that give none
    const char *params_json;   // default request options, a JSON object in Ollama's words
    const char *license;       // its licence text
    const char *digest;        // the weights' sha256 (hex), as /api/tags shows it
    const char *store_name;    // the full store name ("registry.ollama.ai/library/x:latest")
                               // of a model that comes from the store, else NULL
} registry_extras;

// Adds path under name (NULL: the file name without ".gguf"). The file is not opened yet.
// GARLIC_EINVAL for a duplicate name or too many models.
int registry_add(registry *reg, const char *path, const char *name, garlic_error *err);

// registry_add with extras (copied; NULL: none). Safe while the server runs: a name that was
// removed may be added again (the old entry comes back when path and extras are the same).
int registry_add_with(registry *reg, const char *path, const char *name,
                      const registry_extras *extras, garlic_error *err);

// registry_add_with for a model of the store: when a store model of that name is listed
// already, nothing happens if it is the same (path and extras), else the new one replaces it
// (the old is unloaded once idle). A model added without extras.store_name is never replaced.
int registry_put(registry *reg, const char *path, const char *name, const registry_extras *extras,
                 garlic_error *err);

// Takes name out of the list: it is no longer found or listed, new requests cannot reach
// it, and it is unloaded once its running requests end. GARLIC_ENOTFOUND when absent.
int registry_remove(registry *reg, const char *name, garlic_error *err);

// m's extras (fields NULL when absent); valid as long as the registry.
const registry_extras *registry_model_extras(const registry_model *m);

// Adds every *.gguf file in dir (sorted by name). GARLIC_EIO when dir cannot be read.
int registry_add_dir(registry *reg, const char *dir, garlic_error *err);

// Checks that m can be loaded without loading it: its file's header, metadata and tensor
// list (or a folder's config.json and safetensors headers), a known architecture with every
// tensor it needs, and its tokenizer. The weights are not read. The error names the file.
int registry_model_check(registry_model *m, garlic_error *err);

// Loads every model now (for --preload); stops at the first failure.
int registry_load_all(registry *reg, garlic_error *err);

// Makes registry_submit fail with GARLIC_ESTOPPED from now on and cancels queued and running work
// once grace_seconds have passed without it finishing (0: at once). Returns when every
// scheduler is idle.
void registry_drain(registry *reg, double grace_seconds);

// Entries 0..registry_count-1: registry_model_at gives NULL for a removed one (skip it).
size_t registry_count(const registry *reg);
registry_model *registry_model_at(registry *reg, size_t i);
// The model named name, or NULL.
registry_model *registry_find(registry *reg, const char *name);

// Facts about an entry; strings live as long as the registry.
const char *registry_model_name(const registry_model *m);
const char *registry_model_path(const registry_model *m);
// Where the base name of a model's path begins, and its length in *len: a file's name, a
// folder's ("dir/", "dir/config.json"). Clients may see it; the directory they may not.
size_t registry_path_base(const char *path, size_t *len);
uint64_t registry_model_file_size(const registry_model *m);
int64_t registry_model_mtime(const registry_model *m); // seconds since the epoch
bool registry_model_loaded(registry_model *m);

// Loads m if it is not loaded (the first caller loads, others wait) and starts its scheduler,
// and pins it. A loaded model whose file changed on disk since its load (engine_check_files)
// fails: its running requests end with an error, and once they are gone (waiting up to
// REGISTRY_FAILED_WAIT seconds, then GARLIC_EFULL) it is unloaded and loaded anew for this
// caller, from the file as it is now. Errors never name the file's directory (they reach
// remote clients), only its base name; the log line of a failed load has the whole path. m stays loaded until the matching registry_model_release. A load first
// reserves m's planned bytes against the memory budget, unloading idle models least recently
// used first. Fails with GARLIC_EFULL (try again later: what is needed and free) when busy
// models hold the memory past the load wait, GARLIC_ENOMEM when m needs more than the whole
// budget, or the load's error (a file that cannot be read, an unknown architecture...).
// *load_seconds gets the time this call spent loading (0 when it was loaded). After success
// the accessors below stay valid until the release.
int registry_model_acquire(registry_model *m, double *load_seconds, garlic_error *err);

// Unpins m. It stays loaded keep_alive seconds more (< 0: until the server stops; 0: it is
// unloaded as soon as nobody uses it; NAN: the registry's default keep_alive).
void registry_model_release(registry_model *m, double keep_alive);

// Unloads m now if it is loaded and unused (GARLIC_EINVAL otherwise).
int registry_model_unload(registry_model *m);

// Unloads m now if it is loaded and unused (returning once it is unloaded), else as soon as
// its last user releases it, whatever keep_alive that user gives; nothing when it is neither
// loaded nor in use. Ollama's keep_alive 0 with an empty prompt.
void registry_model_unload_when_idle(registry_model *m);

// A loaded model as /api/ps shows it (all zero when it is not loaded).
typedef struct registry_model_ps {
    bool loaded;
    bool unloading;           // an unload is under way (loaded is already false)
    uint64_t bytes;           // planned bytes it holds: mapping, KV pool, buffers, overhead
    uint64_t kv_bytes;        // of which the KV pool
    uint64_t kv_window_bytes; // of which its window blocks (sliding-window layers)
    uint64_t kv_used_bytes;   // KV blocks held by sequences (pro rata of each kind's bytes)
    uint32_t n_ctx;
    bool asleep;           // its engine is freed until the next request (sleep_after)
    uint64_t device_bytes; // held on the device: weights and KV rows of its layers there
    uint32_t device_layers;
    uint32_t users; // requests using it
    double expires; // garlic_now() seconds when it will be unloaded (INFINITY: never,
                    // or in use)
    double last_used;
    char failure[512]; // why the model failed (its file changed on disk: it is unloaded once
                       // unused and loaded anew for the next request), "" when it did not;
                       // kept after the unload until a load succeeds
} registry_model_ps;

void registry_model_ps_get(registry_model *m, registry_model_ps *out);

// The memory budget and what loaded models hold of it.
uint64_t registry_budget(registry *reg);
uint64_t registry_reserved(registry *reg);

// Valid while the caller holds m (between acquire and release).
const model *registry_model_weights(const registry_model *m);

// Layers of the loaded model m that run on the registry's device (0: none, or not loaded).
uint32_t registry_model_device_layers(const registry_model *m);

// Marks m, before its first load, as split across the ranks by the config's layout (tp_*,
// pp_*): it loads as this rank's share and, with tp_serve, its engine leads or follows.
// Models not marked load whole here (garlic serve's rank 0 serves them locally beside the
// split one).
void registry_model_split(registry_model *m);
bool registry_model_is_split(const registry_model *m);

// For garlic serve's other ranks, which hold their share acquired and do what rank 0's
// registry did: stops m's engine keeping its weights and budget (rank 0's model slept), and
// starts it again (it woke).
void registry_model_suspend(registry_model *m);
int registry_model_resume(registry_model *m, garlic_error *err);
engine *registry_model_engine(const registry_model *m);
const tokenizer *registry_model_tokenizer(const registry_model *m);
uint32_t registry_model_n_ctx(const registry_model *m);
uint64_t registry_model_bytes(registry_model *m); // planned bytes while loaded, else 0
// The parsed chat template, or NULL when the model has none (use the fallback). *source
// gets its text (the fallback's source when NULL is returned), *error any parse error that
// made the model fall back ("" if none), *from_file whether --chat-template-file gave it.
// Each out pointer may be NULL.
const chat_template *registry_model_template(const registry_model *m, const char **source,
                                             const char **error, bool *from_file);
// Requests waiting in m's queue (not yet started; 0 while it is not loaded).
uint32_t registry_model_queue_length(registry_model *m);

// What m's engine holds as of its last step, with the counters (hits, evictions, ...)
// of its earlier loads added (all gauges zero while it is not loaded).
void registry_model_stats_get(registry_model *m, engine_counters *out);

// Copies up to cap running sequences of m (none while it is not loaded); returns how many.
size_t registry_model_sequences(registry_model *m, engine_seq_info *out, size_t cap);

// Queues r on m's engine (m must be acquired): engine_submit, refused with GARLIC_ESTOPPED once
// registry_drain began. On failure the caller still owns r.
int registry_submit(registry_model *m, engine_request *r, garlic_error *err);

// ---- Statistics for /metrics ----

enum { REGISTRY_TTFT_BUCKETS = 12, REGISTRY_TOKEN_BUCKETS = 12 };

typedef struct registry_histogram {
    const double *bounds; // (n_buckets) upper bounds in seconds, ascending (static)
    size_t n_buckets;
    uint64_t counts[16]; // (n_buckets) cumulative counts per bucket
    uint64_t count;
    double sum;
} registry_histogram;

typedef struct registry_stats {
    uint64_t prompt_tokens;
    uint64_t generated_tokens;
    uint64_t requests_done;
    uint64_t requests_cancelled;
    uint32_t queue_length; // waiting (queued requests and waiting sequences), all models
    uint32_t running;      // sequences being generated, all models
    uint32_t models_loaded;
    uint64_t memory_bytes; // planned bytes of loaded models (mappings, pools, buffers)
    uint64_t memory_budget;
    uint64_t loads, unloads;          // model loads and unloads since start
    engine_counters kv;               // KV pool and prefix-cache counts summed over loaded models
    registry_histogram ttft;          // submit -> first token
    registry_histogram token_latency; // between consecutive tokens
} registry_stats;

// A consistent snapshot of the counters.
void registry_stats_get(registry *reg, registry_stats *out);

#endif
