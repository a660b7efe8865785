// SPDX-License-Identifier: MIT
// `garlic serve -m MODEL.gguf[=NAME]... [--models-dir DIR] [flags]`: the OpenAI- and
// Ollama-compatible HTTP server. Builds the registry from the flags, starts the server,
// then waits for SIGINT or SIGTERM and shuts down gracefully (running requests get a grace
// period, then their streams end cleanly). Under mpirun with --tensor-parallel T (or
// --pipeline-parallel P), rank 0 does all that, with the first -m model split between the
// ranks and loaded at start and the other models its own; the other ranks compute their
// share of each step the split model's engine sends them (engine_follow); they unload and
// load their shares with rank 0's (--keep-alive), and end when it stops.
#include <cjson/cJSON.h>
#include <math.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "api/api.h"
#include "backend/backend.h"
#include "base/alloc.h"
#include "base/log.h"
#include "base/threadpool.h"
#include "cli/cli.h"
#include "cli/local.h"
#include "dist/dist.h"
#include "engine/engine.h"
#include "planner/planner.h"
#include "registry/registry.h"
#include "server/server.h"
#include "store/store.h"

enum { MAX_MODEL_FLAGS = 64 };

typedef struct serve_options {
    const char *models[MAX_MODEL_FLAGS]; // (n_models) "PATH" or "PATH=NAME"
    size_t n_models;
    const char *models_dir;
    bool preload;
    float grace;                          // seconds running requests get at shutdown
    float load_wait;                      // seconds a load waits for memory held by busy models
    uint32_t port, max_body;              // for server (whose fields are narrower or wider)
    uint32_t per_address;                 // connections per client address (0: no limit)
    float request_timeout, write_timeout; // seconds
    bool quiet;                           // no request log
    bool verbose;                         // the request log shows each rendered prompt
    bool no_store;                        // serve only -m and --models-dir, manage no store
    char store_root[STORE_PATH_MAX];
    const char *device;     // --device: cpu, cuda, cuda:N
    const char *gpu_layers; // --gpu-layers: N or auto
    server_config server;
    registry_config registry;
    uint32_t tensor_parallel;   // --tensor-parallel: ranks (mpirun -np) sharing each layer
    uint32_t pipeline_parallel; // --pipeline-parallel: stages of contiguous layers
    float dist_timeout;         // --dist-timeout: seconds a collective may wait (0: no limit)
    int argc;                   // the command's arguments, compared between the ranks
    char **argv;
} serve_options;

static const cli_command serve_command = {
    .name = "serve",
    .usage = "[-m MODEL.gguf|FOLDER|NAME[=NAME]]... [--models-dir DIR] [options]",
    .about = "Serves the models over HTTP with the OpenAI and Ollama APIs (docs/api.md): every "
             "model of the\nstore ($GARLIC_MODELS; garlic pull, garlic create, /api/pull) and "
             "those -m and --models-dir\nname. A model is loaded on its first request and "
             "unloaded after --keep-alive without one;\nloaded models share --memory-budget. "
             "SIGINT or SIGTERM stops the server gracefully.",
    .notes = "GARLIC_HOST and GARLIC_API_KEY work as --host and --api-key. SIZE: 12GB (10^9), "
             "16GiB (2^30),\n800MB. DURATION: 5m, 1h, 30s, 0 (unload at once), -1 (never).",
};

static int parse_log_format(void *dst, const char *opt, const char *val)
{
    (void)dst;
    log_format f;
    if (!garlic_log_format_parse(val, &f)) {
        fprintf(stderr, "garlic serve: %s: '%s' is not text or json\n", opt, val);
        return -1;
    }
    garlic_log_set_format(f);
    return 0;
}

static int parse_keep_alive(void *dst, const char *opt, const char *val)
{
    registry_config *r = dst;
    double seconds;
    if (!api_parse_duration(val, &seconds)) {
        fprintf(stderr, "garlic serve: %s: '%s' is not a duration (e.g. 5m, 1h, 0, -1)\n", opt,
                val);
        return -1;
    }
    r->keep_alive = seconds, r->keep_alive_set = true;
    return 0;
}

static int parse_sleep_after(void *dst, const char *opt, const char *val)
{
    registry_config *r = dst;
    double seconds;
    if (!api_parse_duration(val, &seconds) || seconds < 0) {
        fprintf(stderr, "garlic serve: %s: '%s' is not a duration (e.g. 30s, 5m; 0: never)\n", opt,
                val);
        return -1;
    }
    r->sleep_after = seconds;
    return 0;
}

// Parses the arguments into o; CLI_CONTINUE, or the status to exit with.
static int parse_serve_options(serve_options *o, int argc, char **argv)
{
    memset(o, 0, sizeof *o);
    o->grace = 5;
    o->load_wait = 30;
    o->per_address = SERVER_DEFAULT_MAX_PER_ADDRESS;
    o->request_timeout = SERVER_DEFAULT_REQUEST_TIMEOUT;
    o->write_timeout = SERVER_DEFAULT_WRITE_TIMEOUT;
    o->port = SERVER_DEFAULT_PORT;
    o->dist_timeout = (float)DIST_DEFAULT_TIMEOUT;
    registry_config *r = &o->registry;
    r->log = true;
    r->kv_type = KV_TYPE_F16;
    const char *host = getenv("GARLIC_HOST"), *key = getenv("GARLIC_API_KEY");
    o->server.host = host && *host ? host : "127.0.0.1";
    o->server.api_key = key && *key ? key : NULL;
    cli_list models = {.items = o->models, .max = MAX_MODEL_FLAGS};
    const cli_option options[] = {
        cli_strings("-m|--model", "PATH[=NAME]",
                    "a model file, folder or stored name (garlic pull) to serve, named NAME "
                    "(default: the file name, or the stored name); repeatable",
                    &models),
        cli_string("--models-dir", "DIR", "serve every .gguf file and model folder of DIR too",
                   &o->models_dir),
        cli_flag("--no-store", "serve only -m and --models-dir; no /api/pull, create, delete, copy",
                 &o->no_store),
        cli_string("--host", "ADDR", "address to listen on (default 127.0.0.1)", &o->server.host),
        cli_uint("--port", "N", "port to listen on (default 8686; 0: any free one)", &o->port, 0,
                 65535),
        cli_string("--api-key", "KEY", "require 'Authorization: Bearer KEY'", &o->server.api_key),
        cli_string("--cors-origin", "LIST",
                   "origins whose pages may call the API: a,b, *, http://host:* (default: "
                   "pages on localhost)",
                   &o->server.cors_origin),
        cli_uint("--ctx|-c", "N", "positions per request (default: trained, at most 4096)",
                 &r->n_ctx, 16, 1u << 24),
        cli_int("--threads|-t", "N", "compute threads (default: physical cores)", &r->n_threads, 1,
                1024),
        cli_kv_type("--kv-type", "KV cache type: f16 (default), q8_0, fp8 or f32", &r->kv_type),
        CLI_DEVICE_OPTIONS(o),
        cli_uint("--kv-tokens", "N", "KV pool positions per model", &r->kv_tokens, 16,
                 UINT32_MAX / 2),
        cli_uint("--parallel|-np", "N", "sequences run at once per model", &r->parallel, 1, 4096),
        cli_uint("--step-tokens|-b", "N", "tokens per scheduler step (default 512)",
                 &r->step_tokens, 1, 65536),
        cli_size("--memory-budget", "SIZE", "memory all loaded models share (default: 80% of RAM)",
                 &r->memory_budget),
        cli_custom("--keep-alive", "DURATION", "how long an idle model stays loaded (default 5m)",
                   r, parse_keep_alive),
        cli_custom("--sleep-after", "DURATION",
                   "idle time after which a model frees its GPU memory and KV cache, keeping "
                   "its weights in host memory for a fast wake (default 0: never)",
                   r, parse_sleep_after),
        cli_float("--load-wait", "SECONDS",
                  "how long a load waits for busy models' memory "
                  "(default 30)",
                  &o->load_wait, 0, 86400),
        cli_uint("--max-queue", "N", "requests waiting per model (default 64)", &r->max_queue, 1,
                 1u << 20),
        cli_uint("--max-body", "BYTES", "largest request body", &o->max_body, 1024, UINT32_MAX),
        cli_uint("--max-connections", "N", "connections at once", &o->server.max_connections, 1,
                 65536),
        cli_uint("--max-connections-per-address", "N",
                 "connections at once from one client address (default 128; 0: no limit)",
                 &o->per_address, 0, 65536),
        cli_uint("--timeout", "SECONDS",
                 "how long a kept-alive connection may stay idle (default 300)",
                 &o->server.timeout_seconds, 1, 86400),
        cli_float("--request-timeout", "SECONDS",
                  "deadline from a request's first byte to its whole body (default 30)",
                  &o->request_timeout, 0.1f, 86400),
        cli_float("--write-timeout", "SECONDS",
                  "a client that accepts no byte of its answer for this long is dropped and its "
                  "generation cancelled (default 20)",
                  &o->write_timeout, 0.1f, 86400),
        cli_string("--allowed-hosts", "LIST",
                   "other Host names to answer: a,b, .domain, * (default: localhost, IP addresses "
                   "and this machine's name)",
                   &o->server.allowed_hosts),
        cli_string("--chat-template-file", "FILE", "a Jinja template for every model",
                   &r->chat_template_file),
        cli_string("--quantize", "TYPE",
                   "quantize Hugging Face folders' 16/32-bit weights at load (Q8_0, Q4_K_M...)",
                   &r->quantize),
        cli_flag("--preload", "load every model at start", &o->preload),
        cli_float("--grace", "SECONDS", "time running requests get at shutdown (default 5)",
                  &o->grace, 0, 3600),
        cli_custom("--log-format", "FORMAT",
                   "the log on stderr: text (default) or json, one "
                   "object a line",
                   o, parse_log_format),
        cli_flag("--quiet|-q", "no line per request (loads and unloads are still logged)",
                 &o->quiet),
        cli_flag("--verbose|-v", "the request log also shows each rendered prompt", &o->verbose),
        CLI_DIST_OPTIONS(o), // (of the first -m model)
        {0},
    };
    int status = cli_parse(&serve_command, options, argc, argv);
    o->n_models = models.n;
    o->argc = argc, o->argv = argv;
    if (status != CLI_CONTINUE)
        return status;
    if ((o->tensor_parallel > 1 || o->pipeline_parallel > 1 || dist_size() > 1) && o->n_models == 0)
        return cli_usage_error(&serve_command,
                               "--tensor-parallel and --pipeline-parallel split the first -m "
                               "model between the ranks: give at least one -m (the others, "
                               "--models-dir's and the store's are served by rank 0 alone)");
    bool tp = o->tensor_parallel > 1 || o->pipeline_parallel > 1 || dist_size() > 1;
    if (tp && (o->device || o->gpu_layers))
        return cli_usage_error(&serve_command,
                               "--device and --gpu-layers are not supported with "
                               "--tensor-parallel yet (the ranks compute on their CPUs)");
    if (o->no_store && o->n_models == 0 && !o->models_dir)
        return cli_usage_error(&serve_command,
                               "with --no-store, give at least one -m MODEL.gguf or --models-dir");
    o->server.port = (uint16_t)o->port;
    o->server.max_body = o->max_body;
    o->server.max_per_address = o->per_address ? o->per_address : SERVER_UNLIMITED;
    o->server.request_timeout = o->request_timeout;
    o->server.write_timeout = o->write_timeout;
    o->server.log_requests = !o->quiet;
    o->server.log_prompts = o->verbose && !o->quiet;
    r->load_wait = o->load_wait;
    return CLI_CONTINUE;
}

// Adds the -m models from the first-th on and the --models-dir models to reg; prints the
// error and returns 1 on failure.
static int add_models(registry *reg, const serve_options *o, size_t first)
{
    garlic_error err = {0};
    for (size_t i = first; i < o->n_models; i++) {
        const char *spec = o->models[i], *eq = strrchr(spec, '=');
        char *path = garlic_strndup(spec, eq ? (size_t)(eq - spec) : strlen(spec));
        char stored[STORE_PATH_MAX];
        // A stored model is served under its name unless =NAME says otherwise.
        int rc = path ? store_resolve(path, stored, sizeof stored, &err)
                      : garlic_error_set(&err, GARLIC_ENOMEM, "out of memory");
        if (rc == GARLIC_OK)
            rc = registry_add(reg, stored, eq ? eq + 1 : store_is_path(path) ? NULL : path, &err);
        garlic_free(path);
        if (rc)
            return fprintf(stderr, "garlic serve: %s\n", err.message), 1;
    }
    if (o->models_dir && registry_add_dir(reg, o->models_dir, &err))
        return fprintf(stderr, "garlic serve: %s\n", err.message), 1;
    if (o->models_dir && registry_count(reg) == o->n_models) // (the split one counts too)
        return fprintf(stderr, "garlic serve: %s holds no .gguf file\n", o->models_dir), 1;
    // Every model named on the command line is checked now, so that a broken file stops the
    // start rather than failing its first request; all the broken ones are named.
    size_t named = registry_count(reg);
    int status = 0;
    for (size_t i = 0; i < named; i++) {
        registry_model *m = registry_model_at(reg, i);
        if (registry_model_check(m, &err) != GARLIC_OK) {
            fprintf(stderr, "garlic serve: model '%s' (%s) cannot be served: %s\n",
                    registry_model_name(m), registry_model_path(m), err.message);
            status = 1;
        }
    }
    if (status)
        return status;
    // The store's models (a broken one is reported when asked for, not fatal: it may be
    // replaced by a pull while the server runs).
    if (o->server.store_root && api_store_sync(reg, o->server.store_root, &err))
        return fprintf(stderr, "garlic serve: the model store %s: %s\n", o->server.store_root,
                       err.message),
               1;
    if (o->preload && registry_load_all(reg, &err))
        return fprintf(stderr, "garlic serve: %s\n", err.message), 1;
    return 0;
}

static void *json_malloc(size_t size) { return garlic_malloc(size); }

// The model store (o->store_root), unless --no-store: served when it can be opened.
static void open_store(serve_options *o)
{
    garlic_error err = {0};
    if (!o->no_store && store_root(o->store_root, sizeof o->store_root, &err) == GARLIC_OK)
        o->server.store_root = o->store_root;
    else if (!o->no_store)
        fprintf(stderr, "garlic serve: no model store: %s\n", err.message);
}

// Adds the -m models from the first-th on and --models-dir's to reg (first 1: the first -m
// is already there, split between the ranks), serves HTTP until SIGINT or SIGTERM, then
// stops gracefully. Returns the exit status.
static int run_server(serve_options *o, registry *reg, size_t first, sigset_t *stop_signals)
{
    garlic_error err = {0};
    server *srv = NULL;
    int status = add_models(reg, o, first);
    if (status == 0 && !(srv = server_start(&o->server, reg, &err))) {
        fprintf(stderr, "garlic serve: %s\n", err.message);
        status = 1;
    }
    if (status != 0)
        return status;
    const registry_model *split = first ? registry_model_at(reg, 0) : NULL;
    char what[STORE_PATH_MAX + 300] = "";
    if (split) {
        // A fault (a rank died or hangs) leaves the HTTP threads a moment to tell the clients
        // (api_fault) before the job ends.
        dist_set_fault_grace(DIST_FAULT_GRACE);
        snprintf(what, sizeof what, "; '%s' split between %u ranks, the others on rank 0",
                 registry_model_name(split), dist_size());
    } else if (o->server.store_root) {
        snprintf(what, sizeof what, "; store %s", o->server.store_root);
    }
    const char *host = o->server.host;
    bool v6 = strchr(host, ':') != NULL;
    size_t n = 0;
    for (size_t i = 0; i < registry_count(reg); i++)
        n += registry_model_at(reg, i) != NULL;
    fprintf(stderr, "garlic serve: listening on http://%s%s%s:%u (%zu model%s%s)\n", v6 ? "[" : "",
            host, v6 ? "]" : "", server_port(srv), n, n == 1 ? "" : "s", what);
    if (!split)
        fprintf(stderr, "garlic serve: memory budget %s for loaded models%s\n",
                cli_format_bytes((double)registry_budget(reg)),
                o->registry.memory_budget ? "" : " (80% of physical memory; --memory-budget)");
    int sig = 0;
    sigwait(stop_signals, &sig);
    fprintf(stderr, "garlic serve: %s: shutting down\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    server_stop(srv, o->grace);
    return 0;
}

// Loads the one -m model on every rank (as rank tp_rank's share), acquired (released by the
// caller). All ranks agree on the result: one that fails makes them all fail.
static int load_shared_model(serve_options *o, registry **reg, registry_model **m,
                             garlic_error *err)
{
    registry_config *rc = &o->registry;
    const char *spec = o->models[0], *eq = strrchr(spec, '=');
    char *path = garlic_strndup(spec, eq ? (size_t)(eq - spec) : strlen(spec));
    char stored[STORE_PATH_MAX];
    int r = cli_local_tensor_parallel(o->tensor_parallel, o->pipeline_parallel, o->dist_timeout,
                                      o->argc, o->argv, rc, err);
    if (r == GARLIC_OK && !path)
        r = garlic_error_set(err, GARLIC_ENOMEM, "out of memory");
    if (r == GARLIC_OK)
        r = cli_local_resolve(path, rc, stored, sizeof stored, err);
    if (r != GARLIC_OK) { // (the checks above fail on every rank alike)
        garlic_free(path);
        return r;
    }
    rc->tp_serve = true;
    *reg = registry_new(rc, err);
    r = *reg ? registry_add(*reg, stored,
                            eq                        ? eq + 1
                                : store_is_path(path) ? NULL
                                                      : path,
                            err)
             : err->code;
    garlic_free(path);
    double seconds;
    *m = r == GARLIC_OK ? registry_model_at(*reg, 0) : NULL;
    if (r == GARLIC_OK) {
        registry_model_split(*m);
        r = registry_model_acquire(*m, &seconds, err);
    }
    garlic_error theirs = {0};
    int same = dist_check_same(&r, sizeof r, "a model load result (see its message)", &theirs);
    if (r == GARLIC_OK && same != GARLIC_OK)
        r = same, *err = theirs;
    if (r != GARLIC_OK && *m && registry_model_engine(*m))
        registry_model_release(*m, NAN);
    return r;
}

// What garlic serve's rank 0 tells the other ranks after its split model's engine stopped
// (engine_follow's end) or started: the model slept (stop your engine, keep your share), woke
// (start it again), was unloaded (unload your share), was loaded again for a request (load
// yours), or the server stopped (exit). One dist_broadcast_idle of two words: the kind, and
// a word kept 0. Their order is the registry's order of events (told under the model's
// load_mu), and every one comes after the engine's stop or before its first step.
enum { SERVE_LOAD = 1, SERVE_EXIT = 2, SERVE_SLEEP = 3, SERVE_WAKE = 4, SERVE_UNLOAD = 5 };

// Set once the model's first load (on every rank together) is over: later events are rank
// 0's registry's alone, and are told (tell_ranks).
static atomic_bool tp_started;

static void tell_word(uint32_t kind)
{
    uint32_t message[2] = {kind, 0};
    dist_broadcast_idle(message, sizeof message);
}

// The registry's event hook on rank 0: tells the other ranks what became of the split
// model (not of rank 0's own models); after a load or a wake its engine may send heartbeats.
static void tell_ranks(void *ctx, registry_model *m, int event)
{
    (void)ctx;
    if (!atomic_load(&tp_started) || !registry_model_is_split(m))
        return;
    uint32_t kind = event == REGISTRY_LOADED ? SERVE_LOAD
        : event == REGISTRY_WOKE             ? SERVE_WAKE
        : event == REGISTRY_SLEPT            ? SERVE_SLEEP
                                             : SERVE_UNLOAD;
    tell_word(kind);
    if (event == REGISTRY_LOADED || event == REGISTRY_WOKE)
        engine_tp_beats_start(registry_model_engine(m));
}

// The next word from rank 0 (a follower waits as long as it takes: the server may be idle).
static uint32_t next_word(void)
{
    uint32_t message[2] = {0, 0};
    dist_broadcast_idle(message, sizeof message);
    return message[0];
}

static int unknown_word(uint32_t kind, garlic_error *err)
{
    return garlic_error_set(err, GARLIC_EINVAL,
                            "rank %u received a message it does not know (kind %u)", dist_rank(),
                            kind);
}

// A rank other than 0: computes its share of rank 0's steps while rank 0's engine runs, then
// does what rank 0 says became of the model: sleeps (its engine stopped, its share kept) until
// it wakes, unloads its share until rank 0 loads the model again, or returns when the server
// stopped. m is acquired on entry and released on return; the share stays acquired while
// loaded (this rank's registry decides nothing by itself).
static int follow(registry_model *m, garlic_error *err)
{
    bool held = true;
    for (;;) {
        int rc = engine_follow(registry_model_engine(m), err);
        if (rc != GARLIC_OK) {
            registry_model_release(m, NAN);
            return rc;
        }
        uint32_t kind = next_word();
        if (kind == SERVE_SLEEP) {
            registry_model_suspend(m);
            kind = next_word();
            if (kind == SERVE_WAKE) {
                if ((rc = registry_model_resume(m, err)) != GARLIC_OK)
                    break;
                continue;
            }
        }
        if (kind == SERVE_UNLOAD) {
            registry_model_release(m, NAN);
            registry_model_unload(m); // (rank 0's was unloaded: this share goes too)
            held = false;
            kind = next_word();
            if (kind == SERVE_LOAD) {
                double seconds;
                if ((rc = registry_model_acquire(m, &seconds, err)) != GARLIC_OK)
                    break;
                held = true;
                continue;
            }
        }
        if (held)
            registry_model_release(m, NAN);
        return kind == SERVE_EXIT ? GARLIC_OK : unknown_word(kind, err);
    }
    // (a reload or a wake failed: rank 0 cannot compute without this share)
    if (held)
        registry_model_release(m, NAN);
    garlic_error why = *err;
    return garlic_error_set(err, why.code,
                            "rank %u cannot load or start its share again (ending the job, as "
                            "rank 0 cannot compute without it): %s",
                            dist_rank(), why.message);
}

// garlic serve under mpirun --tensor-parallel T: rank 0 serves HTTP with the model's leading
// engine until SIGINT or SIGTERM; the other ranks follow its steps (follow) until it stops.
// With --keep-alive the model is unloaded on every rank after that long unused, and loaded
// again on every rank for the next request; without, it stays loaded until the server stops.
static int serve_tensor_parallel(serve_options *o, sigset_t *stop_signals)
{
    garlic_error err = {0};
    registry *reg = NULL;
    registry_model *m = NULL;
    int status = 0;
    if (dist_rank() == 0)
        o->registry.event = tell_ranks;
    if (load_shared_model(o, &reg, &m, &err) != GARLIC_OK) {
        fprintf(stderr, "garlic serve: rank %u: %s\n", dist_rank(), err.message);
        registry_free(reg);
        return 1;
    }
    atomic_store(&tp_started, true);
    if (dist_rank() == 0)
        engine_tp_beats_start(registry_model_engine(m));
    if (dist_rank() != 0) {
        if (follow(m, &err) != GARLIC_OK) {
            fprintf(stderr, "garlic serve: %s\n", err.message);
            status = 1;
        }
        registry_free(reg);
        return status;
    }
    // With --keep-alive or --sleep-after the start's load is released like a request's (the
    // model goes after keep_alive unused, sleeps after sleep_after; --keep-alive -1 keeps it
    // loaded); with neither, it is held until the server stops.
    bool held = !o->registry.keep_alive_set && !(o->registry.sleep_after > 0);
    if (!held)
        registry_model_release(m, NAN);
    // Rank 0 alone serves the other -m models, --models-dir's and the store's, whole.
    open_store(o);
    status = run_server(o, reg, 1, stop_signals);
    if (held)
        registry_model_release(m, NAN);
    registry_free(reg); // (a loaded model's engine stops, which ends the other ranks' follow)
    tell_word(SERVE_EXIT);
    return status;
}

int cli_serve(int argc, char **argv)
{
    serve_options o;
    int status = parse_serve_options(&o, argc, argv);
    if (status != CLI_CONTINUE)
        return status;
    cJSON_Hooks hooks = {.malloc_fn = json_malloc, .free_fn = garlic_free};
    cJSON_InitHooks(&hooks);
    // Every thread started from here on inherits this mask; the signals arrive in sigwait.
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    signal(SIGPIPE, SIG_IGN);
    // Each connection holds a descriptor: take all the system allows (--max-connections is
    // the cap that matters), as the default soft limit of 1024 is below it.
    struct rlimit files;
    if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
        files.rlim_cur = files.rlim_max;
        setrlimit(RLIMIT_NOFILE, &files);
    }
    if (o.tensor_parallel > 1 || o.pipeline_parallel > 1 || dist_size() > 1)
        return serve_tensor_parallel(&o, &stop_signals);
    open_store(&o);
    garlic_error err = {0};
    if (cli_local_device(o.device, o.gpu_layers, &o.registry, &err))
        return fprintf(stderr, "garlic serve: %s\n", err.message), 1;
    registry *reg = registry_new(&o.registry, &err);
    if (!reg) {
        backend_free(o.registry.device);
        return fprintf(stderr, "garlic serve: %s\n", err.message), 1;
    }
    status = run_server(&o, reg, 0, &stop_signals);
    registry_free(reg);
    backend_free(o.registry.device);
    return status;
}
