// SPDX-License-Identifier: MIT
// What the registry's files share: the registry and model entry structs, with the thread or
// lock that owns each field. registry.c lists and loads models, lifecycle.c decides when they
// are loaded and unloaded under the memory budget and gives their engines fair turns on the
// shared compute pool.
#ifndef GARLIC_REGISTRY_INTERNAL_H
#define GARLIC_REGISTRY_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "chat/chat.h"
#include "engine/engine.h"
#include "model/model.h"
#include "registry/registry.h"
#include "tokenizer/tokenizer.h"

struct registry_model {
    registry *reg;
    char *name;
    char *path;
    uint64_t file_size;
    int64_t mtime;
    registry_extras extras; // owned copies of what registry_add_with gave (NULL: none)
    atomic_bool removed;    // registry_remove took it out of the list (it stays allocated,
                            // unloaded once idle, until registry_free)
    bool split; // loaded as this rank's share of the registry's layout (registry_model_split)

    pthread_mutex_t load_mu; // held while the model loads or unloads
    atomic_bool loaded;      // set (release) once everything below the line is ready;
                             // changed under reg->life_mu
    // Guarded by reg->life_mu (lifecycle.c).
    uint32_t users;    // acquired and not released (pins the model)
    bool unloading;    // picked for unloading; its load_mu will be taken
    double last_used;  // garlic_now() of the last acquire or release
    double expires;    // when the reaper unloads it if unused
    bool unload_asked; // registry_model_unload_when_idle came while it was used
    uint64_t cost;     // bytes reserved against the budget while loaded
    bool failed;       // the loaded model's file changed on disk: its engine fails every
                       // request, and it is unloaded once unused (until the next load)
    char failure[512]; // why it failed (for /api/ps), kept until a load succeeds; "" if none
    // Written once under load_mu before loaded is set, then read-only until the unload.
    model *weights;
    tokenizer *tok;
    uint32_t n_ctx;            // positions one sequence may use
    uint32_t parallel;         // running sequences at most
    uint32_t kv_blocks;        // blocks of the KV pool
    uint32_t kv_window_blocks; // its window blocks (sliding-window layers), as planned
    uint32_t device_layers;    // layers on the registry's device while loaded (0: none)
    uint64_t device_bytes;     // what they hold there: weights and KV rows
    bool asleep;               // (life_mu) its engine is freed until the next acquire
    chat_template *tmpl;       // NULL: the fallback
    char *template_source;     // owned copy of the template text in use, or NULL
    char template_error[512];

    pthread_mutex_t mu;      // guards engine (set and cleared under it as well as load_mu)
                             // and retired, for readers of the counters
    engine *engine;          // generates for the model while it is loaded
    engine_counters retired; // counters of the engines of earlier loads
    // Guarded by reg->compute_mu (lifecycle.c): turns on the shared compute pool.
    double compute_vtime; // compute seconds used (virtual time, see lifecycle.c)
    double compute_start; // when its current turn began
    bool compute_active;  // has work: others wait for it when it is behind
};

struct registry {
    registry_config cfg;
    char *template_text; // --chat-template-file contents, or NULL
    char *template_name;
    // (n_models) every entry ever added, removed ones too: entries are appended under list_mu
    // (the pointer is written before the count) and freed only by registry_free, so readers
    // may walk them without a lock.
    registry_model *models[REGISTRY_MAX_MODELS];
    _Atomic size_t n_models;
    pthread_mutex_t list_mu; // serializes registry_add_with and registry_remove
    atomic_bool stopped;     // submit refuses new work

    pthread_mutex_t stats_mu; // guards stats (workers write, /metrics reads)
    registry_stats stats;

    thread_pool *pool; // the compute pool every model's steps share, in turns
    pthread_mutex_t compute_mu;
    pthread_cond_t compute_cv;
    registry_model *compute_owner; // the model whose step runs on the pool, or NULL

    pthread_mutex_t life_mu; // guards the lifecycle fields of every model and these:
    pthread_cond_t life_cv;  // a release, an unload or shutdown happened
    uint64_t budget;         // bytes loaded models may reserve
    uint64_t reserved;       // bytes reserved by loaded and loading models
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
// Stops and frees the engine alone (unload_parts' first step; a model's sleep).
void registry_model_stop_engine(registry_model *m);

// lifecycle.c
int registry_lifecycle_start(registry *reg, garlic_error *err);
void registry_lifecycle_stop(registry *reg);
// The engine hooks that give m's steps fair turns on reg->pool (user: the registry_model).
void registry_compute_begin(void *model_entry);
void registry_compute_end(void *model_entry);
void registry_compute_idle(void *model_entry);
// The engine hook for a model whose file changed (engine_check_files): marks it failed, logs
// it, and has it unloaded once unused.
void registry_model_failed(void *model_entry, const char *message);

// registry.c: the engine hooks that update the registry's statistics (user: the
// registry_model); each output token counts as generated.
void registry_stats_token(void *model_entry, double latency, bool first);
void registry_stats_request(void *model_entry, uint64_t prompt, bool cancelled);

#endif
