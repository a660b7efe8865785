// SPDX-License-Identifier: MIT
// One model in-process for the CLI; see local.h.
#include "cli/local.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend/backend.h"
#include "base/alloc.h"
#include "base/clock.h"
#include "dist/dist.h"
#include "gguf/gguf.h"
#include "planner/planner.h"
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

static void show_upload(void *ctx, int percent)
{
    const progress_ctx *p = ctx;
    if (p->big)
        fprintf(stderr, "\ruploading %s to the GPU %3d%%%s", p->path, percent,
                percent == 100 ? "\n" : "");
}

int cli_local_tensor_parallel(uint32_t t, uint32_t p, float dist_timeout, int argc, char **argv,
                              registry_config *cfg, garlic_error *err)
{
    dist_set_timeout(dist_timeout);
    dist_tp_layout layout;
    int rc = dist_tp_layout_make(t, p, &layout, err);
    if (rc != GARLIC_OK || layout.size * layout.stages == 1)
        return rc;
    // The digest of the arguments, but for the threads (each machine its own cores).
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    uint8_t digest[EVP_MAX_MD_SIZE] = {0};
    bool ok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL);
    for (int i = 0; ok && i < argc; i++) {
        if (strcmp(argv[i], "-t") == 0 || strcmp(argv[i], "--threads") == 0) {
            i++;
            continue;
        }
        if (strncmp(argv[i], "--threads=", 10) == 0)
            continue;
        ok = EVP_DigestUpdate(md, argv[i], strlen(argv[i]) + 1);
    }
    ok = ok && EVP_DigestFinal_ex(md, digest, NULL);
    EVP_MD_CTX_free(md);
    // (a rank that failed to hash compares zeros, which differ from rank 0's digest)
    rc = dist_check_same(digest, sizeof digest, "a command line (every rank runs the same)", err);
    if (rc == GARLIC_OK && !ok)
        rc = garlic_error_set(err, GARLIC_ENOMEM, "out of memory");
    cfg->tp_rank = layout.rank, cfg->tp_size = layout.size;
    cfg->pp_stage = layout.stage, cfg->pp_stages = layout.stages;
    return rc;
}

bool cli_local_prints(void) { return dist_rank() == 0; }

uint64_t cli_local_shared_seed(uint64_t seed)
{
    if (dist_size() == 1)
        return seed;
    // (a drawn seed may not be SAMPLER_SEED_RANDOM itself, which would make the ranks draw)
    while (dist_rank() == 0 && seed == SAMPLER_SEED_RANDOM)
        if (getrandom(&seed, sizeof seed, 0) != (ssize_t)sizeof seed)
            seed = (uint64_t)(garlic_now() * 1e9);
    dist_broadcast(&seed, sizeof seed);
    return seed;
}

// What every rank compares before loading its share: the file's size and the sha256 of its
// header (metadata and tensor records, up to the data section). A rank that cannot read its
// file compares zeros.
typedef struct file_digest {
    uint64_t size;
    uint8_t header_sha256[32];
} file_digest;

// Refuses a model whose file differs between the ranks (or is not a GGUF file on one).
static int check_same_file(const char *path, garlic_error *err)
{
    file_digest d;
    memset(&d, 0, sizeof d);
    garlic_error local = {0};
    struct stat st;
    gguf_file *f = NULL;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
        garlic_error_set(&local, GARLIC_EUNSUPPORTED,
                         "%s: tensor parallelism reads GGUF files (not folders) in this version",
                         path);
    else
        f = gguf_open(path, &local);
    if (f && f->data_offset <= f->size) {
        d.size = f->size;
        EVP_Digest(f->base, f->data_offset, d.header_sha256, NULL, EVP_sha256(), NULL);
    }
    gguf_close(f);
    int rc = dist_check_same(&d, sizeof d, "a model file (size or header)", err);
    if (local.code) // this rank's own failure says more
        *err = local, rc = local.code;
    else if (rc) {
        garlic_error what = *err; // (the message is formatted into err again)
        garlic_error_set(err, rc, "%s: %s", path, what.message);
    }
    return rc;
}

int cli_local_device(const char *device, const char *gpu_layers, registry_config *cfg,
                     garlic_error *err)
{
    cfg->device = NULL, cfg->gpu_layers = 0;
    if (!device && !gpu_layers)
        return GARLIC_OK;
    int64_t layers;
    int index;
    int rc = backend_parse_layers(gpu_layers, &layers, err);
    if (rc == GARLIC_OK)
        rc = backend_parse_device(device ? device : "cuda", &index, err);
    if (rc)
        return rc;
    if (index < 0) { // the CPU
        if (layers > 0 || (gpu_layers && layers < 0))
            return garlic_error_set(err, GARLIC_EINVAL,
                                    "--gpu-layers %s asks for a GPU, but --device is cpu",
                                    gpu_layers);
        return GARLIC_OK;
    }
    if (!(cfg->device = backend_cuda_new(index, err)))
        return err->code;
    cfg->gpu_layers = layers;
    return GARLIC_OK;
}

// This rank's pipeline stage of the model at path: the planner's split of the layers into
// contiguous stages balanced by bytes (the split `garlic estimate --pipeline-parallel`
// prints), the same on every rank (the same file, the same computation).
static int stage_layers(const char *path, registry_config *cfg, garlic_error *err)
{
    uint32_t t = cfg->tp_size ? cfg->tp_size : 1, p = cfg->pp_stages;
    planner_config pc;
    planner_config_default(&pc);
    planner_rank *ranks = garlic_calloc((size_t)t * p, sizeof *ranks);
    int rc = ranks ? planner_layout_make(path, cfg->quantize, t, p, &pc, ranks, err)
                   : garlic_error_set(err, GARLIC_ENOMEM, "out of memory");
    if (rc == GARLIC_OK) {
        const planner_rank *me = &ranks[cfg->tp_rank + (size_t)t * cfg->pp_stage];
        cfg->first_layer = me->first_layer, cfg->n_layers = me->n_layers;
    }
    garlic_free(ranks);
    return rc;
}

int cli_local_resolve(const char *path, registry_config *config, char *out, size_t cap,
                      garlic_error *err)
{
    int rc = store_resolve(path, out, cap, err);
    if (config->tp_size > 1 || config->pp_stages > 1) { // every rank compares, even one that
        garlic_error mine = *err;                       // could not resolve it
        int same = check_same_file(rc == GARLIC_OK ? out : path, err);
        if (rc != GARLIC_OK)
            *err = mine;
        rc = rc != GARLIC_OK ? rc : same;
    }
    if (rc == GARLIC_OK && config->pp_stages > 1)
        rc = stage_layers(out, config, err);
    return rc;
}

int cli_local_open(cli_local *l, const char *path, const registry_config *config, garlic_error *err)
{
    memset(l, 0, sizeof *l);
    l->device = config->device;
    static char stored[STORE_PATH_MAX]; // one model per process
    registry_config cfg = *config;
    int rc = cli_local_resolve(path, &cfg, stored, sizeof stored, err);
    if (rc != GARLIC_OK) {
        backend_free(l->device);
        l->device = NULL;
        return rc;
    }
    path = stored;
    static progress_ctx progress; // one model per process
    progress = (progress_ctx){.path = path};
    if (!cfg.memory_budget)
        cfg.memory_budget = UINT64_MAX; // the machine decides, as for any one program
    if (!cfg.load_progress && isatty(STDERR_FILENO))
        cfg.load_progress = show_progress, cfg.upload_progress = show_upload,
        cfg.load_progress_ctx = &progress;
    l->reg = registry_new(&cfg, err);
    rc = l->reg ? registry_add(l->reg, path, "model", err) : err->code;
    if (rc == GARLIC_OK) {
        l->m = registry_find(l->reg, "model");
        registry_model_split(l->m); // (a no-op without --tensor/--pipeline-parallel)
        progress.big = registry_model_file_size(l->m) > BIG_FILE; // registry_add stat'ed it
        rc = registry_model_acquire(l->m, &l->load_seconds, err);
    }
    if (rc != GARLIC_OK) {
        registry_free(l->reg);
        backend_free(l->device);
        memset(l, 0, sizeof *l);
    }
    return rc;
}

void cli_local_close(cli_local *l)
{
    if (l->m)
        registry_model_release(l->m, 0);
    registry_free(l->reg);
    backend_free(l->device);
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
