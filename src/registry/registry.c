// SPDX-License-Identifier: MIT
// The list of models and their loading. Entries are added before the server starts or while
// it runs (a pull, a create) and removed (a delete) by marking them: an entry is freed only by
// registry_free, so a request that found one may use it to the end. A model is loaded on first use by the HTTP thread that needs it
// (others wait on the entry's load lock) and unloaded when lifecycle.c decides (keep_alive,
// the memory budget, registry_free). Also the statistics the engines update and /metrics
// reads.
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backend/backend.h"
#include "base/alloc.h"
#include "base/clock.h"
#include "base/file.h"
#include "base/threadpool.h"
#include "gguf/gguf.h"
#include "planner/planner.h"
#include "registry/internal.h"

static const double ttft_bounds[REGISTRY_TTFT_BUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                          0.5,   1,    2.5,   5,    10,  30};
static const double token_bounds[REGISTRY_TOKEN_BUCKETS] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                            0.1,   0.25,   0.5,   1,    2.5,   5};

enum { MAX_TEMPLATE_FILE = 16 << 20 }; // bytes of a --chat-template-file

registry *registry_new(const registry_config *cfg, garlic_error *err)
{
    registry *reg = garlic_calloc(1, sizeof *reg);
    if (!reg) {
        garlic_error_set(err, GARLIC_ENOMEM, "out of memory");
        return NULL;
    }
    reg->cfg = *cfg;
    reg->cfg.chat_template_file = NULL;
    atomic_init(&reg->stopped, false);
    atomic_init(&reg->n_models, 0);
    pthread_mutex_init(&reg->list_mu, NULL);
    pthread_mutex_init(&reg->stats_mu, NULL);
    pthread_mutex_init(&reg->compute_mu, NULL);
    pthread_cond_init(&reg->compute_cv, NULL);
    pthread_mutex_init(&reg->life_mu, NULL);
    garlic_cond_init(&reg->life_cv);
    reg->pool = thread_pool_new(cfg->n_threads ? cfg->n_threads : thread_pool_default_threads(),
                                err);
    if (!reg->pool || registry_lifecycle_start(reg, err) != GARLIC_OK) {
        registry_free(reg);
        return NULL;
    }
    reg->stats.ttft = (registry_histogram){.bounds = ttft_bounds,
                                           .n_buckets = REGISTRY_TTFT_BUCKETS};
    reg->stats.token_latency = (registry_histogram){.bounds = token_bounds,
                                                    .n_buckets = REGISTRY_TOKEN_BUCKETS};
    if (cfg->chat_template_file) {
        // Its errors reach clients (/api/show, a failed render): the base name only.
        const char *base = strrchr(cfg->chat_template_file, '/');
        reg->template_name = garlic_strndup(base ? base + 1 : cfg->chat_template_file, SIZE_MAX);
        if (garlic_file_read(cfg->chat_template_file, MAX_TEMPLATE_FILE, &reg->template_text, NULL,
                             err) != GARLIC_OK ||
            !reg->template_name) {
            if (!reg->template_name)
                garlic_error_set(err, GARLIC_ENOMEM, "out of memory");
            registry_free(reg);
            return NULL;
        }
    }
    return reg;
}

static void model_entry_free(registry_model *m)
{
    if (!m)
        return;
    registry_model_unload_parts(m);
    garlic_free(m->name);
    garlic_free(m->path);
    garlic_free((char *)m->extras.template_text);
    garlic_free((char *)m->extras.system);
    garlic_free((char *)m->extras.params_json);
    garlic_free((char *)m->extras.license);
    garlic_free((char *)m->extras.digest);
    garlic_free((char *)m->extras.store_name);
    pthread_mutex_destroy(&m->load_mu);
    pthread_mutex_destroy(&m->mu);
    garlic_free(m);
}

void registry_free(registry *reg)
{
    if (!reg)
        return;
    atomic_store(&reg->stopped, true);
    registry_lifecycle_stop(reg);
    for (size_t i = 0; i < reg->n_models; i++)
        model_entry_free(reg->models[i]);
    thread_pool_free(reg->pool);
    garlic_free(reg->template_text);
    garlic_free(reg->template_name);
    pthread_mutex_destroy(&reg->list_mu);
    pthread_mutex_destroy(&reg->stats_mu);
    pthread_mutex_destroy(&reg->compute_mu);
    pthread_cond_destroy(&reg->compute_cv);
    pthread_mutex_destroy(&reg->life_mu);
    pthread_cond_destroy(&reg->life_cv);
    garlic_free(reg);
}

// The default name of a model: a file's base name without ".gguf", a folder's name (of
// "dir/", or of "dir/config.json").
size_t registry_path_base(const char *path, size_t *len)
{
    size_t end = strlen(path);
    while (end > 1 && path[end - 1] == '/')
        end--;
    if (end > 12 && memcmp(path + end - 12, "/config.json", 12) == 0)
        end -= 12;
    size_t start = end;
    while (start > 0 && path[start - 1] != '/')
        start--;
    *len = end - start;
    return start;
}

static char *default_name(const char *path)
{
    size_t len;
    size_t start = registry_path_base(path, &len);
    if (len > 5 && memcmp(path + start + len - 5, ".gguf", 5) == 0)
        len -= 5;
    return garlic_strndup(path + start, len);
}

// The listed (not removed) entry named name, or NULL.
static registry_model *find_listed(registry *reg, const char *name)
{
    size_t n = atomic_load(&reg->n_models);
    for (size_t i = 0; i < n; i++) {
        registry_model *m = reg->models[i];
        if (!atomic_load(&m->removed) && strcmp(m->name, name) == 0)
            return m;
    }
    return NULL;
}

static bool same_text(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static bool same_extras(const registry_extras *a, const registry_extras *b)
{
    return same_text(a->template_text, b->template_text) && same_text(a->system, b->system) &&
        same_text(a->params_json, b->params_json) && same_text(a->license, b->license) &&
        same_text(a->digest, b->digest) && same_text(a->store_name, b->store_name);
}

// An owned copy of text (NULL stays NULL); *ok is cleared when memory runs out.
static const char *copy_text(const char *text, bool *ok)
{
    if (!text)
        return NULL;
    char *copy = garlic_strndup(text, SIZE_MAX);
    *ok = *ok && copy;
    return copy;
}

// A new entry for path (stat'ed), not yet listed.
static registry_model *entry_new(registry *reg, const char *path, const char *name,
                                 const registry_extras *x, garlic_error *err)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        garlic_error_set(err, GARLIC_EIO, "%s: %s", path, strerror(errno));
        return NULL;
    }
    registry_model *m = garlic_calloc(1, sizeof *m);
    if (!m) {
        garlic_error_set(err, GARLIC_ENOMEM, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&m->load_mu, NULL);
    pthread_mutex_init(&m->mu, NULL);
    atomic_init(&m->loaded, false);
    atomic_init(&m->removed, false);
    m->reg = reg;
    m->path = garlic_strndup(path, SIZE_MAX);
    m->name = name && *name ? garlic_strndup(name, SIZE_MAX) : default_name(path);
    m->file_size = (uint64_t)st.st_size;
    m->mtime = (int64_t)st.st_mtime;
    bool ok = m->path && m->name;
    m->extras.template_text = copy_text(x->template_text, &ok);
    m->extras.system = copy_text(x->system, &ok);
    m->extras.params_json = copy_text(x->params_json, &ok);
    m->extras.license = copy_text(x->license, &ok);
    m->extras.digest = copy_text(x->digest, &ok);
    m->extras.store_name = copy_text(x->store_name, &ok);
    if (!ok) {
        model_entry_free(m);
        garlic_error_set(err, GARLIC_ENOMEM, "out of memory");
        return NULL;
    }
    return m;
}

static bool same_entry(const registry_model *a, const registry_model *b)
{
    return strcmp(a->name, b->name) == 0 && strcmp(a->path, b->path) == 0 &&
        same_extras(&a->extras, &b->extras);
}

// registry_add_with and registry_put: replace lets a listed store model of the same name give
// way (it is unloaded once idle).
static int add_entry(registry *reg, const char *path, const char *name,
                     const registry_extras *extras, bool replace, garlic_error *err)
{
    static const registry_extras none = {0};
    const registry_extras *x = extras ? extras : &none;
    registry_model *m = entry_new(reg, path, name, x, err);
    if (!m)
        return err->code;
    int rc = GARLIC_OK;
    pthread_mutex_lock(&reg->list_mu);
    size_t n = atomic_load(&reg->n_models);
    registry_model *old = NULL, *listed = find_listed(reg, m->name), *replaced = NULL;
    for (size_t i = 0; i < n && !old; i++) {
        registry_model *o = reg->models[i];
        if (atomic_load(&o->removed) && same_entry(o, m))
            old = o;
    }
    if (listed && replace && same_entry(listed, m)) {
        pthread_mutex_unlock(&reg->list_mu);
        model_entry_free(m);
        return GARLIC_OK; // nothing changed
    }
    if (listed && replace && listed->extras.store_name) {
        atomic_store(&listed->removed, true);
        replaced = listed, listed = NULL;
    }
    if (listed)
        rc = garlic_error_set(err, GARLIC_EINVAL,
                              "%s: a model named '%s' exists already "
                              "(give one an alias: -m PATH=NAME)",
                              path, m->name);
    else if (old)
        atomic_store(&old->removed, false); // the same model again: its entry comes back
    else if (n == REGISTRY_MAX_MODELS)
        rc = garlic_error_set(err, GARLIC_EINVAL, "%s: more than %d models", path,
                              REGISTRY_MAX_MODELS);
    else {
        reg->models[n] = m;
        atomic_store(&reg->n_models, n + 1);
        m = NULL;
    }
    pthread_mutex_unlock(&reg->list_mu);
    model_entry_free(m);
    if (replaced)
        registry_model_unload_when_idle(replaced);
    return rc;
}

int registry_add_with(registry *reg, const char *path, const char *name,
                      const registry_extras *extras, garlic_error *err)
{
    return add_entry(reg, path, name, extras, false, err);
}

int registry_put(registry *reg, const char *path, const char *name, const registry_extras *extras,
                 garlic_error *err)
{
    return add_entry(reg, path, name, extras, true, err);
}

int registry_add(registry *reg, const char *path, const char *name, garlic_error *err)
{
    return add_entry(reg, path, name, NULL, false, err);
}

int registry_remove(registry *reg, const char *name, garlic_error *err)
{
    pthread_mutex_lock(&reg->list_mu);
    registry_model *m = find_listed(reg, name);
    if (m)
        atomic_store(&m->removed, true);
    pthread_mutex_unlock(&reg->list_mu);
    if (!m)
        return garlic_error_set(err, GARLIC_ENOTFOUND, "model '%s' not found", name);
    registry_model_unload_when_idle(m);
    return GARLIC_OK;
}

const registry_extras *registry_model_extras(const registry_model *m) { return &m->extras; }

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int registry_add_dir(registry *reg, const char *dir, garlic_error *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return garlic_error_set(err, GARLIC_EIO, "%s: %s", dir, strerror(errno));
    char *names[REGISTRY_MAX_MODELS];
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < REGISTRY_MAX_MODELS) {
        size_t len = strlen(e->d_name);
        char config[4096];
        snprintf(config, sizeof config, "%s/%s/config.json", dir, e->d_name);
        bool gguf = len > 5 && strcmp(e->d_name + len - 5, ".gguf") == 0;
        // a Hugging Face folder: a subdirectory with a config.json
        if (e->d_name[0] != '.' && (gguf || access(config, F_OK) == 0))
            names[n++] = garlic_strndup(e->d_name, len);
    }
    closedir(d);
    qsort(names, n, sizeof *names, compare_names);
    int rc = GARLIC_OK;
    for (size_t i = 0; i < n; i++) {
        char path[4096];
        if (rc == GARLIC_OK && !names[i])
            rc = garlic_error_set(err, GARLIC_ENOMEM, "out of memory");
        if (rc == GARLIC_OK) {
            snprintf(path, sizeof path, "%s/%s", dir, names[i]);
            rc = registry_add(reg, path, NULL, err);
        }
        garlic_free(names[i]);
    }
    return rc;
}

size_t registry_count(const registry *reg) { return atomic_load(&reg->n_models); }

registry_model *registry_model_at(registry *reg, size_t i)
{
    if (i >= atomic_load(&reg->n_models))
        return NULL;
    registry_model *m = reg->models[i];
    return atomic_load(&m->removed) ? NULL : m;
}

registry_model *registry_find(registry *reg, const char *name) { return find_listed(reg, name); }

const char *registry_model_name(const registry_model *m) { return m->name; }

const char *registry_model_path(const registry_model *m) { return m->path; }

uint64_t registry_model_file_size(const registry_model *m) { return m->file_size; }

int64_t registry_model_mtime(const registry_model *m) { return m->mtime; }

bool registry_model_loaded(registry_model *m)
{
    return atomic_load_explicit(&m->loaded, memory_order_acquire);
}

// Picks the model's chat template: --chat-template-file, else its Modelfile's TEMPLATE, else
// tokenizer.chat_template, else
// none (the fallback). A template that does not parse is reported and replaced by the
// fallback, so the model still serves completions and chats.
static void load_template(registry_model *m)
{
    const registry *reg = m->reg;
    const char *src = reg->template_text, *name = reg->template_name;
    char label[600];
    if (!src && m->extras.template_text) { // a Modelfile's TEMPLATE
        src = m->extras.template_text;
        snprintf(label, sizeof label, "%s:TEMPLATE", m->name);
        name = label;
    }
    size_t len = src ? strlen(src) : 0;
    gguf_string s;
    if (!src && gguf_get_str(m->weights->file, "tokenizer.chat_template", &s) == GARLIC_OK) {
        src = s.data, len = (size_t)s.len;
        snprintf(label, sizeof label, "%s:chat_template", m->name);
        name = label;
    }
    if (!src)
        return;
    garlic_error err = {0};
    m->tmpl = chat_template_parse(src, len, name, &err);
    if (!m->tmpl) {
        snprintf(m->template_error, sizeof m->template_error, "%s", err.message);
        fprintf(stderr, "garlic: model '%s': %s (using the fallback chat format)\n", m->name,
                err.message);
        return;
    }
    m->template_source = garlic_strndup(src, len);
}

// The plan of m for the server's flags: the same planner `garlic estimate` prints, so the
// estimate is what the load allocates. Pool: --kv-tokens positions, else --parallel full
// contexts, else PLANNER_DEFAULT_PARALLEL; running sequences: --parallel, else one per 256
// pool positions (1 to 64). *in receives what the plan was made from (the model's tensors).
static int plan(registry_model *m, planner_input *in, planner_plan *out, garlic_error *err)
{
    const registry_config *cfg = &m->reg->cfg;
    int rc = planner_from_model(m->weights, m->path, in, err);
    if (rc)
        return rc;
    planner_config pc;
    planner_config_default(&pc);
    pc.ctx = m->n_ctx;
    pc.kv_type = cfg->kv_type;
    pc.block_tokens = KV_DEFAULT_BLOCK_TOKENS;
    pc.max_batch = cfg->step_tokens ? cfg->step_tokens : PLANNER_DEFAULT_MAX_BATCH;
    pc.n_threads = thread_pool_size(m->reg->pool);
    pc.kv_tokens = cfg->kv_tokens;
    if (cfg->parallel)
        pc.parallel = pc.running = cfg->parallel;
    return planner_plan_make(in, &pc, out, err);
}

void registry_model_split(registry_model *m) { m->split = true; }

bool registry_model_is_split(const registry_model *m)
{
    return m->split && (m->reg->cfg.tp_size > 1 || m->reg->cfg.pp_stages > 1);
}

int registry_model_load_parts(registry_model *m, uint64_t *cost, garlic_error *err)
{
    const registry_config *cfg = &m->reg->cfg;
    bool split = registry_model_is_split(m);
    model_load_options o = {.quantize = cfg->quantize,
                            .tp_rank = split ? cfg->tp_rank : 0,
                            .tp_size = split ? cfg->tp_size : 1,
                            .first_layer = split ? cfg->first_layer : 0,
                            .n_layers = split ? cfg->n_layers : 0};
    m->weights = model_load_with(m->path, &o, err);
    if (!m->weights)
        return err->code;
    m->tok = tokenizer_load(m->weights->file, err);
    if (!m->tok)
        return err->code;
    m->n_ctx = cfg->n_ctx ? cfg->n_ctx : planner_default_ctx(m->weights->hp.n_ctx_train);
    planner_plan p;
    planner_input in;
    int rc = plan(m, &in, &p, err);
    if (rc)
        return rc;
    m->kv_blocks = p.kv_blocks;
    m->kv_window_blocks = p.kv_window_blocks;
    m->parallel = p.cfg.running;
    *cost = p.total_bytes;
    return GARLIC_OK;
}

// The layers of m the registry's device runs: --gpu-layers, or as many as its free memory
// holds (the planner's device plan: weights and KV rows of each layer, the activation buffers,
// 256 MiB for the driver; only the leading layers the device can run); sets m->device_bytes
// to the weights and KV rows they hold there.
static uint32_t device_layers(registry_model *m)
{
    const registry_config *cfg = &m->reg->cfg;
    m->device_bytes = 0;
    if (!cfg->device)
        return 0;
    backend_device_info info;
    cfg->device->ops->info(cfg->device, &info);
    planner_input *in = garlic_malloc(sizeof *in);
    planner_plan p;
    planner_device_plan dp;
    bool auto_layers = cfg->gpu_layers < 0;
    uint32_t runs = model_device_runs(m->weights, cfg->device);
    if (!in || plan(m, in, &p, NULL) ||
        planner_device_plan_make(in, &p, cfg->gpu_layers, auto_layers ? runs : UINT32_MAX,
                                 info.free_bytes, 0, &dp, NULL)) {
        garlic_free(in);
        // (without the planner's figures: the layers asked for, none when auto)
        return auto_layers
            ? 0
            : (uint32_t)(cfg->gpu_layers > UINT32_MAX ? UINT32_MAX : cfg->gpu_layers);
    }
    garlic_free(in);
    m->device_bytes = dp.weight_bytes + dp.kv_bytes;
    return dp.layers;
}

uint32_t registry_model_device_layers(const registry_model *m) { return m->device_layers; }

int registry_model_start(registry_model *m, garlic_error *err)
{
    // The budget counts the whole mapping: make it resident now, so that the first requests
    // do not wait on page faults and the memory held is what was planned.
    const registry_config *cfg = &m->reg->cfg;
    uint32_t on_device = m->device_layers = device_layers(m);
    // The host packs the rest (and with --sleep-after keeps the device's layers resident too,
    // for a wake that is only the upload).
    model_set_device_layers(m->weights, on_device, cfg->sleep_after > 0);
    model_prefault(m->weights, cfg->load_progress, cfg->load_progress_ctx);
    engine_config ec = {.name = m->name,
                        .weights = m->weights,
                        .tok = m->tok,
                        .kv_type = cfg->kv_type,
                        .block_tokens = KV_DEFAULT_BLOCK_TOKENS,
                        .kv_blocks = m->kv_blocks,
                        .kv_window_blocks = m->kv_window_blocks,
                        .n_ctx = m->n_ctx,
                        .parallel = m->parallel,
                        .step_tokens = cfg->step_tokens,
                        .max_queue = cfg->max_queue,
                        .pool = m->reg->pool,
                        .device = cfg->device,
                        .device_layers = on_device,
                        .upload_progress = cfg->upload_progress,
                        .upload_progress_ctx = cfg->load_progress_ctx,
                        .hooks = {.user = m,
                                  .compute_begin = registry_compute_begin,
                                  .compute_end = registry_compute_end,
                                  .compute_idle = registry_compute_idle,
                                  .token = registry_stats_token,
                                  .request_done = registry_stats_request,
                                  .failed = registry_model_failed}};
    if (cfg->tp_serve && registry_model_is_split(m)) // world rank 0 leads
        ec.tp_role = cfg->tp_rank == 0 && cfg->pp_stage == 0 ? ENGINE_TP_LEADER
                                                             : ENGINE_TP_FOLLOWER;
    load_template(m);
    engine *e = engine_new(&ec, err);
    if (!e)
        return err->code;
    pthread_mutex_lock(&m->mu);
    m->engine = e;
    pthread_mutex_unlock(&m->mu);
    return GARLIC_OK;
}

// Adds the totals of c (counters since start, and the peak) to into; gauges are left alone.
static void add_totals(engine_counters *into, const engine_counters *c)
{
    into->prefix_hits += c->prefix_hits;
    into->prefix_misses += c->prefix_misses;
    into->evictions += c->evictions;
    into->preemptions += c->preemptions;
    if (c->peak_running > into->peak_running)
        into->peak_running = c->peak_running;
}

void registry_model_stop_engine(registry_model *m)
{
    if (m->engine) {
        engine_stop(m->engine); // every request it held ends (cancelled) here
        engine_counters c;
        engine_counters_get(m->engine, &c);
        pthread_mutex_lock(&m->mu); // readers of the counters see it or nothing
        engine *e = m->engine;
        add_totals(&m->retired, &c); // the gauges end with the engine
        m->engine = NULL;
        pthread_mutex_unlock(&m->mu);
        engine_free(e);
    }
}

void registry_model_unload_parts(registry_model *m)
{
    registry_model_stop_engine(m);
    chat_template_free(m->tmpl);
    garlic_free(m->template_source);
    tokenizer_free(m->tok);
    model_free(m->weights);
    m->tmpl = NULL, m->template_source = NULL, m->tok = NULL;
    m->weights = NULL, m->template_error[0] = '\0';
}

int registry_model_check(registry_model *m, garlic_error *err)
{
    model_load_options o = {.quantize = m->reg->cfg.quantize,
                            .meta_only = true,
                            .tp_size = registry_model_is_split(m) ? m->reg->cfg.tp_size : 1};
    model *weights = model_load_with(m->path, &o, err);
    if (!weights)
        return err->code ? err->code : GARLIC_EFORMAT;
    tokenizer *tok = tokenizer_load(weights->file, err);
    int rc = tok ? GARLIC_OK : err->code ? err->code : GARLIC_EFORMAT;
    tokenizer_free(tok);
    model_free(weights);
    return rc;
}

int registry_load_all(registry *reg, garlic_error *err)
{
    for (size_t i = 0; i < registry_count(reg); i++) {
        registry_model *m = registry_model_at(reg, i);
        double seconds;
        int rc = m ? registry_model_acquire(m, &seconds, err) : GARLIC_OK;
        if (rc != GARLIC_OK)
            return rc;
        if (m)
            registry_model_release(m, NAN);
    }
    return GARLIC_OK;
}

const model *registry_model_weights(const registry_model *m) { return m->weights; }

const tokenizer *registry_model_tokenizer(const registry_model *m) { return m->tok; }

engine *registry_model_engine(const registry_model *m) { return m->engine; }

uint32_t registry_model_n_ctx(const registry_model *m) { return m->engine ? m->n_ctx : 0; }

uint32_t registry_model_queue_length(registry_model *m)
{
    pthread_mutex_lock(&m->mu);
    uint32_t n = m->engine ? engine_queue_length(m->engine) : 0;
    pthread_mutex_unlock(&m->mu);
    return n;
}

void registry_model_stats_get(registry_model *m, engine_counters *out)
{
    pthread_mutex_lock(&m->mu);
    if (m->engine)
        engine_counters_get(m->engine, out);
    else
        *out = (engine_counters){0};
    add_totals(out, &m->retired);
    pthread_mutex_unlock(&m->mu);
}

size_t registry_model_sequences(registry_model *m, engine_seq_info *out, size_t cap)
{
    pthread_mutex_lock(&m->mu);
    size_t n = m->engine ? engine_sequences(m->engine, out, cap) : 0;
    pthread_mutex_unlock(&m->mu);
    return n;
}

int registry_submit(registry_model *m, engine_request *r, garlic_error *err)
{
    if (atomic_load(&m->reg->stopped))
        return garlic_error_set(err, GARLIC_ESTOPPED, "the server is shutting down");
    if (!atomic_load_explicit(&m->loaded, memory_order_acquire) || !m->engine)
        return garlic_error_set(err, GARLIC_EINVAL, "%s: not loaded", m->name);
    return engine_submit(m->engine, r, err);
}

uint64_t registry_model_bytes(registry_model *m)
{
    pthread_mutex_lock(&m->reg->life_mu);
    uint64_t bytes = atomic_load(&m->loaded) ? m->cost : 0;
    pthread_mutex_unlock(&m->reg->life_mu);
    return bytes;
}

void registry_model_ps_get(registry_model *m, registry_model_ps *out)
{
    memset(out, 0, sizeof *out);
    engine_counters ms;
    registry_model_stats_get(m, &ms);
    pthread_mutex_lock(&m->reg->life_mu);
    out->unloading = m->unloading;
    if (atomic_load(&m->loaded)) {
        out->loaded = true;
        out->bytes = m->cost;
        out->kv_bytes = ms.kv_bytes;
        out->kv_window_bytes = ms.kv_window_bytes;
        out->kv_used_bytes = ms.kv_used_bytes;
        out->n_ctx = m->n_ctx;
        out->asleep = m->asleep;
        out->device_layers = m->asleep ? 0 : m->device_layers;
        out->device_bytes = m->asleep ? 0 : m->device_bytes;
        out->users = m->users;
        out->expires = m->users ? INFINITY : m->expires;
        out->last_used = m->last_used;
    }
    snprintf(out->failure, sizeof out->failure, "%s", m->failure);
    pthread_mutex_unlock(&m->reg->life_mu);
}

uint64_t registry_budget(registry *reg) { return reg->budget; }

uint64_t registry_reserved(registry *reg)
{
    pthread_mutex_lock(&reg->life_mu);
    uint64_t r = reg->reserved;
    pthread_mutex_unlock(&reg->life_mu);
    return r;
}

const chat_template *registry_model_template(const registry_model *m, const char **source,
                                             const char **error, bool *from_file)
{
    if (source)
        *source = m->tmpl ? m->template_source : chat_fallback_source();
    if (from_file)
        *from_file = m->tmpl && m->reg->template_text;
    if (error)
        *error = m->template_error;
    return m->tmpl;
}

// Whether m's engine (if any) has nothing queued or running.
static bool model_idle(registry_model *m)
{
    pthread_mutex_lock(&m->mu);
    bool idle = !m->engine || engine_idle(m->engine);
    pthread_mutex_unlock(&m->mu);
    return idle;
}

static void model_cancel_all(registry_model *m)
{
    pthread_mutex_lock(&m->mu);
    if (m->engine)
        engine_cancel_all(m->engine);
    pthread_mutex_unlock(&m->mu);
}

static bool all_idle(registry *reg)
{
    for (size_t i = 0; i < reg->n_models; i++)
        if (!model_idle(reg->models[i]))
            return false;
    return true;
}

void registry_drain(registry *reg, double grace_seconds)
{
    atomic_store(&reg->stopped, true);
    double deadline = garlic_now() + grace_seconds;
    bool cancelled = false;
    while (!all_idle(reg)) {
        if (!cancelled && garlic_now() >= deadline) {
            for (size_t i = 0; i < reg->n_models; i++)
                model_cancel_all(reg->models[i]);
            cancelled = true;
        }
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

// Adds a sample to a histogram (cumulative buckets, as Prometheus exposes them).
static void histogram_add(registry_histogram *h, double v)
{
    for (size_t i = 0; i < h->n_buckets; i++)
        if (v <= h->bounds[i])
            h->counts[i]++;
    h->count++;
    h->sum += v;
}

void registry_stats_token(void *model_entry, double latency, bool first)
{
    registry *reg = ((registry_model *)model_entry)->reg;
    pthread_mutex_lock(&reg->stats_mu);
    histogram_add(first ? &reg->stats.ttft : &reg->stats.token_latency, latency);
    reg->stats.generated_tokens++;
    pthread_mutex_unlock(&reg->stats_mu);
}

void registry_stats_request(void *model_entry, uint64_t prompt, bool cancelled)
{
    registry *reg = ((registry_model *)model_entry)->reg;
    pthread_mutex_lock(&reg->stats_mu);
    reg->stats.prompt_tokens += prompt;
    reg->stats.requests_done++;
    reg->stats.requests_cancelled += cancelled;
    pthread_mutex_unlock(&reg->stats_mu);
}

void registry_stats_get(registry *reg, registry_stats *out)
{
    pthread_mutex_lock(&reg->stats_mu);
    *out = reg->stats;
    pthread_mutex_unlock(&reg->stats_mu);
    out->queue_length = out->running = out->models_loaded = 0;
    out->memory_bytes = registry_reserved(reg);
    out->memory_budget = reg->budget;
    pthread_mutex_lock(&reg->life_mu);
    out->loads = reg->loads, out->unloads = reg->unloads;
    pthread_mutex_unlock(&reg->life_mu);
    out->kv = (engine_counters){0};
    for (size_t i = 0; i < reg->n_models; i++) {
        registry_model *m = reg->models[i];
        out->models_loaded += registry_model_loaded(m); // counters also of unloaded models
        engine_counters ms;
        registry_model_stats_get(m, &ms);
        out->queue_length += ms.waiting;
        out->running += ms.running;
        engine_counters *k = &out->kv;
        k->running += ms.running, k->waiting += ms.waiting, k->parallel += ms.parallel;
        k->peak_running = ms.peak_running > k->peak_running ? ms.peak_running : k->peak_running;
        k->block_tokens = ms.block_tokens;
        k->kv_blocks += ms.kv_blocks, k->kv_used += ms.kv_used, k->kv_cached += ms.kv_cached;
        k->kv_free += ms.kv_free, k->kv_bytes += ms.kv_bytes;
        k->kv_window_blocks += ms.kv_window_blocks, k->kv_window_used += ms.kv_window_used;
        k->kv_window_cached += ms.kv_window_cached, k->kv_window_free += ms.kv_window_free;
        k->kv_window_bytes += ms.kv_window_bytes, k->kv_used_bytes += ms.kv_used_bytes;
        k->prefix_hits += ms.prefix_hits, k->prefix_misses += ms.prefix_misses;
        k->evictions += ms.evictions, k->preemptions += ms.preemptions;
    }
}
