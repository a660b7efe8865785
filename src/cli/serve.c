// SPDX-License-Identifier: MIT
// `garlic serve -m MODEL.gguf[=NAME]... [--models-dir DIR] [flags]`: the OpenAI- and
// Ollama-compatible HTTP server. Builds the registry from the flags, starts the server,
// then waits for SIGINT or SIGTERM and shuts down gracefully (running requests get a grace
// period, then their streams end cleanly).
#include <cjson/cJSON.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/threadpool.h"
#include "api/api.h"
#include "cli/cli.h"
#include "planner/planner.h"
#include "registry/registry.h"
#include "server/server.h"

enum { MAX_MODEL_FLAGS = 64 };

typedef struct serve_options {
    const char *models[MAX_MODEL_FLAGS]; // (n_models) "PATH" or "PATH=NAME"
    size_t n_models;
    const char *models_dir;
    bool preload;
    float grace;            // seconds running requests get at shutdown
    float load_wait;        // seconds a load waits for memory held by busy models
    server_config server;
    registry_config registry;
} serve_options;

static int serve_usage(void)
{
    fprintf(stderr,
            "usage: garlic serve -m MODEL.gguf[=NAME]... [--models-dir DIR] [--host ADDR]\n"
            "         [--port N] [--api-key KEY] [--cors-origin ORIGIN] [--ctx N] [--threads N]\n"
            "         [--kv-type f16|q8_0|fp8|f32] [--kv-tokens N] [--parallel N]\n"
            "         [--step-tokens N] [--memory-budget SIZE] [--keep-alive DURATION]\n"
            "         [--load-wait SECONDS] [--max-queue N] [--max-body BYTES]\n"
            "         [--max-connections N] [--timeout SECONDS] [--chat-template-file FILE]\n"
            "         [--preload] [--grace SECONDS]\n"
            "  Listens on 127.0.0.1:%d by default (GARLIC_HOST, GARLIC_API_KEY also work).\n",
            SERVER_DEFAULT_PORT);
    return 2;
}

// Options that take a value: 0, -1 on a bad value, 1 when opt is not one of them.
static int parse_valued(serve_options *o, const char *opt, const char *val)
{
    uint32_t u;
    if (!strcmp(opt, "-m") || !strcmp(opt, "--model")) {
        if (o->n_models == MAX_MODEL_FLAGS)
            return fprintf(stderr, "garlic serve: at most %d -m flags\n", MAX_MODEL_FLAGS), -1;
        o->models[o->n_models++] = val;
        return 0;
    }
    if (!strcmp(opt, "--models-dir"))
        return o->models_dir = val, 0;
    if (!strcmp(opt, "--host"))
        return o->server.host = val, 0;
    if (!strcmp(opt, "--port"))
        return cli_parse_uint(opt, val, 0, 65535, &u) ? -1 : (o->server.port = (uint16_t)u, 0);
    if (!strcmp(opt, "--api-key"))
        return o->server.api_key = val, 0;
    if (!strcmp(opt, "--cors-origin"))
        return o->server.cors_origin = val, 0;
    if (!strcmp(opt, "--ctx") || !strcmp(opt, "-c"))
        return cli_parse_uint(opt, val, 16, 1u << 24, &o->registry.n_ctx);
    if (!strcmp(opt, "--threads") || !strcmp(opt, "-t"))
        return cli_parse_uint(opt, val, 1, 1024, &u) ? -1 : (o->registry.n_threads = (int)u, 0);
    if (!strcmp(opt, "--kv-type"))
        return kv_type_parse(val, &o->registry.kv_type)
                   ? 0 : (fprintf(stderr, "garlic serve: --kv-type: '%s' (f16, q8_0, fp8 or f32)\n", val), -1);
    if (!strcmp(opt, "--parallel") || !strcmp(opt, "-np"))
        return cli_parse_uint(opt, val, 1, 4096, &o->registry.parallel);
    if (!strcmp(opt, "--kv-tokens"))
        return cli_parse_uint(opt, val, 16, UINT32_MAX / 2, &o->registry.kv_tokens);
    if (!strcmp(opt, "--step-tokens") || !strcmp(opt, "-b"))
        return cli_parse_uint(opt, val, 1, 65536, &o->registry.step_tokens);
    if (!strcmp(opt, "--memory-budget")) {
        uint64_t b;
        if (!planner_parse_size(val, &b) || b == 0)
            return fprintf(stderr, "garlic serve: --memory-budget: '%s' is not a size (e.g. "
                           "12GB, 16GiB, 800MB)\n", val), -1;
        return o->registry.memory_budget = b, 0;
    }
    if (!strcmp(opt, "--keep-alive")) {
        double sec;
        if (!api_parse_duration(val, &sec))
            return fprintf(stderr, "garlic serve: --keep-alive: '%s' is not a duration (e.g. "
                           "5m, 1h, 0, -1)\n", val), -1;
        o->registry.keep_alive = sec, o->registry.keep_alive_set = true;
        return 0;
    }
    if (!strcmp(opt, "--load-wait"))
        return cli_parse_float(opt, val, 0, 86400, &o->load_wait) ? -1
               : (o->registry.load_wait = o->load_wait, 0);
    if (!strcmp(opt, "--max-queue"))
        return cli_parse_uint(opt, val, 1, 1u << 20, &o->registry.max_queue);
    if (!strcmp(opt, "--max-body"))
        return cli_parse_uint(opt, val, 1024, UINT32_MAX, &u) ? -1 : (o->server.max_body = u, 0);
    if (!strcmp(opt, "--max-connections"))
        return cli_parse_uint(opt, val, 1, 65536, &o->server.max_connections);
    if (!strcmp(opt, "--timeout"))
        return cli_parse_uint(opt, val, 1, 86400, &o->server.timeout_seconds);
    if (!strcmp(opt, "--chat-template-file"))
        return o->registry.chat_template_file = val, 0;
    if (!strcmp(opt, "--grace"))
        return cli_parse_float(opt, val, 0, 3600, &o->grace);
    return 1;
}

static int parse_serve_options(serve_options *o, int argc, char **argv)
{
    memset(o, 0, sizeof *o);
    o->grace = 5;
    o->load_wait = 30;
    o->registry.load_wait = 30;
    o->registry.log = true;
    o->registry.kv_type = KV_TYPE_F16;
    o->server.port = SERVER_DEFAULT_PORT;
    const char *host = getenv("GARLIC_HOST"), *key = getenv("GARLIC_API_KEY");
    o->server.host = host && *host ? host : "127.0.0.1";
    o->server.api_key = key && *key ? key : NULL;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--preload")) {
            o->preload = true;
            continue;
        }
        if (!strcmp(a, "-h") || !strcmp(a, "--help"))
            return serve_usage();
        if (a[0] != '-' || i + 1 >= argc)
            return fprintf(stderr, "garlic serve: %s '%s'\n", a[0] == '-' ? "missing value for"
                           : "unexpected argument", a), serve_usage();
        int rc = parse_valued(o, a, argv[++i]);
        if (rc > 0)
            return fprintf(stderr, "garlic serve: unknown option '%s'\n", a), serve_usage();
        if (rc < 0)
            return 2;
    }
    if (o->n_models == 0 && !o->models_dir)
        return fprintf(stderr, "garlic serve: give at least one -m MODEL.gguf or --models-dir\n"),
               serve_usage();
    return 0;
}

// Adds the -m and --models-dir models to reg; prints the error and returns 1 on failure.
static int add_models(registry *reg, const serve_options *o)
{
    garlic_error err = {0};
    for (size_t i = 0; i < o->n_models; i++) {
        const char *spec = o->models[i], *eq = strrchr(spec, '=');
        char *path = garlic_strndup(spec, eq ? (size_t)(eq - spec) : strlen(spec));
        int rc = path ? registry_add(reg, path, eq ? eq + 1 : NULL, &err)
                      : garlic_error_set(&err, GARLIC_ENOMEM, "out of memory");
        garlic_free(path);
        if (rc)
            return fprintf(stderr, "garlic serve: %s\n", err.message), 1;
    }
    if (o->models_dir && registry_add_dir(reg, o->models_dir, &err))
        return fprintf(stderr, "garlic serve: %s\n", err.message), 1;
    if (registry_count(reg) == 0)
        return fprintf(stderr, "garlic serve: %s holds no .gguf file\n", o->models_dir), 1;
    if (o->preload && registry_load_all(reg, &err))
        return fprintf(stderr, "garlic serve: %s\n", err.message), 1;
    return 0;
}

static void *json_malloc(size_t size)
{
    return garlic_malloc(size);
}

int cli_serve(int argc, char **argv)
{
    serve_options o;
    int status = parse_serve_options(&o, argc, argv);
    if (status)
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
    garlic_error err = {0};
    registry *reg = registry_new(&o.registry, &err);
    if (!reg)
        return fprintf(stderr, "garlic serve: %s\n", err.message), 1;
    server *srv = NULL;
    status = add_models(reg, &o);
    if (status == 0 && !(srv = server_start(&o.server, reg, &err))) {
        fprintf(stderr, "garlic serve: %s\n", err.message);
        status = 1;
    }
    if (status == 0) {
        const char *host = o.server.host;
        bool v6 = strchr(host, ':') != NULL;
        fprintf(stderr, "garlic serve: listening on http://%s%s%s:%u (%zu model%s)\n",
                v6 ? "[" : "", host, v6 ? "]" : "", server_port(srv), registry_count(reg),
                registry_count(reg) == 1 ? "" : "s");
        fprintf(stderr, "garlic serve: memory budget %s for loaded models%s\n",
                cli_format_bytes((double)registry_budget(reg)),
                o.registry.memory_budget ? "" : " (80% of physical memory; --memory-budget)");
        int sig = 0;
        sigwait(&stop_signals, &sig);
        fprintf(stderr, "garlic serve: %s: shutting down\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
        server_stop(srv, o.grace);
    }
    registry_free(reg);
    return status;
}
