// SPDX-License-Identifier: MIT
// One model in-process for the CLI; see local.h.
#include "cli/local.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "store/store.h"

enum { BIG_FILE = 256 << 20 }; // files over this show a loading percentage on a terminal

typedef struct progress_ctx {
    const char *path;
    bool big; // the file is over BIG_FILE: worth a percentage
} progress_ctx;

static void show_progress(void *ctx, int percent)
{
    const progress_ctx *p = ctx;
    if (p->big)
        fprintf(stderr, "\rloading %s %3d%%%s", p->path, percent, percent == 100 ? "\n" : "");
}

int cli_local_open(cli_local *l, const char *path, const registry_config *config, garlic_error *err)
{
    memset(l, 0, sizeof *l);
    static char stored[STORE_PATH_MAX]; // one model per process
    int rc = store_resolve(path, stored, sizeof stored, err);
    if (rc != GARLIC_OK)
        return rc;
    path = stored;
    static progress_ctx progress; // one model per process
    progress = (progress_ctx){.path = path};
    registry_config cfg = *config;
    if (!cfg.memory_budget)
        cfg.memory_budget = UINT64_MAX; // the machine decides, as for any one program
    if (!cfg.load_progress && isatty(STDERR_FILENO))
        cfg.load_progress = show_progress, cfg.load_progress_ctx = &progress;
    l->reg = registry_new(&cfg, err);
    rc = l->reg ? registry_add(l->reg, path, "model", err) : err->code;
    if (rc == GARLIC_OK) {
        l->m = registry_find(l->reg, "model");
        progress.big = registry_model_file_size(l->m) > BIG_FILE; // registry_add stat'ed it
        rc = registry_model_acquire(l->m, &l->load_seconds, err);
    }
    if (rc != GARLIC_OK) {
        registry_free(l->reg);
        memset(l, 0, sizeof *l);
    }
    return rc;
}

void cli_local_close(cli_local *l)
{
    if (l->m)
        registry_model_release(l->m, 0);
    registry_free(l->reg);
    memset(l, 0, sizeof *l);
}

int cli_local_generate(cli_local *l, const engine_request_params *p, cli_text_fn on_text,
                       void *user, engine_chunk *end, garlic_error *err)
{
    engine_request *r = engine_request_new(p, err);
    if (!r)
        return err->code;
    int rc = registry_submit(l->m, r, err);
    while (rc == GARLIC_OK) {
        engine_chunk c;
        if (!engine_request_next(r, &c, 1000))
            continue;
        if (c.error) {
            rc = garlic_error_set(err, c.error, "%s", c.error_message);
            break;
        }
        if (c.len && on_text && on_text(user, c.text, c.len))
            engine_request_cancel(r);
        if (c.choice_done)
            *end = c;
        if (c.all_done)
            break;
    }
    engine_request_release(r);
    return rc;
}
