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
    struct backend *device; // the config's device, freed by cli_local_close
} cli_local;

// --device NAME and --gpu-layers N|auto (either may be NULL): opens the device into
// cfg->device and sets cfg->gpu_layers (auto: -1). --gpu-layers alone means cuda:0; cuda
// without --gpu-layers means auto. cli_local_open takes the device over (cli_local_close
// frees it, as does a failed open); a caller that does not open must backend_free it.
int cli_local_device(const char *device, const char *gpu_layers, registry_config *cfg,
                     garlic_error *err);

// The options of cli_local_tensor_parallel for a command's table (o has tensor_parallel,
// pipeline_parallel and dist_timeout).
#define CLI_DIST_OPTIONS(o)                                                                        \
    cli_uint("--tensor-parallel", "T",                                                             \
             "split each layer between T ranks (run under mpirun -np T; default 1)",               \
             &(o)->tensor_parallel, 1, 4096),                                                      \
        cli_uint("--pipeline-parallel", "P",                                                       \
                 "split the layers into P stages of contiguous layers, one a rank group (run "     \
                 "under mpirun -np T x P; default 1)",                                             \
                 &(o)->pipeline_parallel, 1, 1024),                                                \
        cli_float("--dist-timeout", "S",                                                           \
                  "end every rank when one waits S seconds for the others (a rank died or "        \
                  "hangs; default 60, 0: never)",                                                  \
                  &(o)->dist_timeout, 0, 1e6f)

// The two options of cli_local_device for a command's table (o has device and gpu_layers).
#define CLI_DEVICE_OPTIONS(o)                                                                      \
    cli_string("--device", "NAME", "where the layers run: cpu (default), cuda or cuda:N",          \
               &(o)->device),                                                                      \
        cli_string("--gpu-layers", "N",                                                            \
                   "layers on the GPU from the first (as many as the model has: the output "       \
                   "too; auto: as many as fit)",                                                   \
                   &(o)->gpu_layers)

// --tensor-parallel t and --pipeline-parallel p of a command run under mpirun (every rank runs
// it): t x p must be the number of ranks, and every rank must have the same command line
// (argc, argv: the command's arguments; -t/--threads may differ between machines). Sets cfg's
// tp_rank, tp_size, pp_stage and pp_stages, and how long a collective may wait for the other
// ranks before the job is ended (dist_timeout seconds, --dist-timeout; 0: no limit). Errors
// (the same on every rank, so that all of them stop) in err.
int cli_local_tensor_parallel(uint32_t t, uint32_t p, float dist_timeout, int argc, char **argv,
                              registry_config *cfg, garlic_error *err);

// Whether this process prints the command's results: rank 0 (the only one without MPI).
bool cli_local_prints(void);

// The sampling seed every rank uses: seed itself in one process; under several ranks, rank
// 0's, drawn there when seed is SAMPLER_SEED_RANDOM (each rank drawing its own would sample
// different tokens from the same logits). Every rank must call it at the same point.
uint64_t cli_local_shared_seed(uint64_t seed);

// The file of model path (a file, a folder or a stored name) into out (cap bytes). Under
// tensor or pipeline parallelism it must be a GGUF file whose size and header (their sha256)
// are rank 0's on every rank, and a pipeline stage's layers are set in cfg (first_layer,
// n_layers: the planner's split); every rank calls this, and all fail together. Errors name
// the file.
int cli_local_resolve(const char *path, registry_config *cfg, char *out, size_t cap,
                      garlic_error *err);

// Loads path with cfg (a budget of 0 means the machine's memory: one model, no neighbours).
// Under tensor parallelism (cfg->tp_size > 1) path must be a GGUF file, and every rank's must
// have rank 0's size and header (their sha256 is compared) before any loads its share.
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
