// SPDX-License-Identifier: MIT
// A model run in-process by `garlic run` and `garlic bench`: a registry holding just this
// model, loaded (weights resident and packed, with progress on a terminal for big files) and
// acquired, so the command line generates through the same planner, chat template and engine
// as the server does.
#ifndef GARLIC_CLI_LOCAL_H
#define GARLIC_CLI_LOCAL_H

#include "engine/engine.h"
#include "registry/registry.h"

typedef struct cli_local {
    registry *reg;
    registry_model *m; // acquired until cli_local_close
    double load_seconds;
} cli_local;

// Loads path with cfg (a budget of 0 means the machine's memory: one model, no neighbours).
// Fails with err naming the file.
int cli_local_open(cli_local *l, const char *path, const registry_config *cfg, garlic_error *err);
void cli_local_close(cli_local *l);

// Receives a choice's text as it comes; returns non-zero to cancel the request.
typedef int (*cli_text_fn)(void *user, const char *text, size_t len);

// Submits p to the model's engine and reads it to its end, passing every piece of text to
// on_text (may be NULL). *end gets the last chunk (its stats and finish; its text pointers are
// not valid after the call). Returns the request's error (err filled), GARLIC_OK otherwise.
int cli_local_generate(cli_local *l, const engine_request_params *p, cli_text_fn on_text,
                       void *user, engine_chunk *end, garlic_error *err);

#endif
