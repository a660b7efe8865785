// SPDX-License-Identifier: MIT
// The plan: weights as read (planner_from_gguf here; planner_from_hf in from_hf.c, over the
// readers of src/hf), the KV pool as kv_cache_bytes_for sizes it, the forward pass's scratch
// as model_scratch_bytes sizes it, and a fixed overhead; then what fits a budget. Every figure
// is the one the allocating code computes, so the estimate and the server cannot drift apart.
// Sizes use overflow checks.
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/threadpool.h"
#include "model/info.h"
#include "planner/planner.h"
#include "tensor/types.h"

// ---- the weights table ----

int planner_weights_add(planner_weights *w, const char *name, bool scales, bool norm,
                        uint64_t n_elements, uint64_t bytes, garlic_error *err)
{
    planner_weight_type *row = NULL;
    for (uint32_t i = 0; i < w->n_types && !row; i++)
        if (w->types[i].scales == scales && strcmp(w->types[i].name, name) == 0)
            row = &w->types[i];
    if (!row) {
        if (w->n_types == PLANNER_MAX_TYPES)
            return garlic_error_set(err, GARLIC_EINVAL, "more than %d weight types",
                                    PLANNER_MAX_TYPES);
        row = &w->types[w->n_types++];
        *row = (planner_weight_type){.scales = scales};
        snprintf(row->name, sizeof row->name, "%s", name);
    }
    bool ok = !__builtin_add_overflow(row->n_elements, n_elements, &row->n_elements) &&
        !__builtin_add_overflow(row->bytes, bytes, &row->bytes) &&
        !__builtin_add_overflow(w->tensor_bytes, bytes, &w->tensor_bytes) &&
        (scales || !__builtin_add_overflow(w->n_params, n_elements, &w->n_params)) &&
        (scales || !norm ||
         !__builtin_add_overflow(w->n_params_norm, n_elements, &w->n_params_norm));
    if (!ok)
        return garlic_error_set(err, GARLIC_EINVAL, "weights of type %s: sizes overflow", name);
    row->n_tensors++;
    w->n_tensors++;
    return GARLIC_OK;
}

// ---- GGUF ----

int planner_from_model(const model *m, const char *path, planner_input *in, garlic_error *err)
{
    *in = (planner_input){.source = PLANNER_SOURCE_GGUF, .n_files = 1};
    snprintf(in->path, sizeof in->path, "%s", path);
    in->hp = m->hp;
    snprintf(in->arch, sizeof in->arch, "%s", m->arch->name);
    const gguf_file *f = m->file;
    int rc = GARLIC_OK;
    for (uint64_t i = 0; i < f->n_tensors && rc == GARLIC_OK; i++) {
        const gguf_tensor *t = &f->tensors[i];
        const tensor_type_traits *tr = tensor_type_get(t->type);
        bool norm = memmem(t->name.data, t->name.len, "norm", 4) != NULL;
        rc = planner_weights_add(&in->weights, tr ? tr->name : "?", false, norm, t->n_elements,
                                 t->nbytes, err);
    }
    // The server maps the whole file: header, metadata and padding are resident too.
    if (rc == GARLIC_OK)
        in->weights.mapping_bytes = f->size - in->weights.tensor_bytes;
    model_info info;
    if (rc == GARLIC_OK && model_info_read(f, &info, NULL) == GARLIC_OK)
        in->n_merges = info.n_merges;
    in->act_row_bytes = model_act_row_bytes(m);
    in->moe_act_row_bytes = model_moe_act_row_bytes(m);
    in->windows = model_kv_config(m, KV_TYPE_F16, PLANNER_BLOCK_TOKENS, 0).windows;
    return rc;
}

int planner_from_gguf(const char *path, planner_input *in, garlic_error *err)
{
    model *m = model_load(path, err);
    if (!m)
        return err ? err->code : GARLIC_EFORMAT;
    int rc = planner_from_model(m, path, in, err);
    model_free(m);
    return rc;
}

int planner_from_model_path(const char *path, const char *quantize, planner_input *in,
                            garlic_error *err)
{
    model_load_options o = {.quantize = quantize, .meta_only = true};
    model *m = model_load_with(path, &o, err);
    if (!m)
        return err ? err->code : GARLIC_EFORMAT;
    int rc = planner_from_model(m, path, in, err);
    if (rc == GARLIC_OK && m->file->detached)
        in->source = PLANNER_SOURCE_SAFETENSORS;
    model_free(m);
    return rc;
}

uint64_t planner_overhead(const planner_input *in)
{
    uint64_t merges = in->n_merges;
    if (in->source != PLANNER_SOURCE_GGUF) // no tokenizer read: assume a BPE one
        merges = in->hp.n_vocab;
    return PLANNER_PROCESS_OVERHEAD + (uint64_t)in->hp.n_vocab * PLANNER_TOKEN_BYTES +
        merges * PLANNER_MERGE_BYTES;
}

uint32_t planner_default_ctx(uint32_t trained)
{
    return trained && trained < PLANNER_DEFAULT_CTX ? trained : PLANNER_DEFAULT_CTX;
}

uint32_t planner_default_running(uint64_t positions)
{
    uint64_t r = positions / 256;
    return r < 1 ? 1 : r > 64 ? 64 : (uint32_t)r;
}

int planner_from_path(const char *path, planner_input *in, garlic_error *err)
{
    size_t len = strlen(path);
    bool gguf = len >= 5 && strcasecmp(path + len - 5, ".gguf") == 0;
    if (!gguf) {
        FILE *f = fopen(path, "rb");
        char magic[4] = {0};
        if (f) {
            gguf = fread(magic, 1, 4, f) == 4 && memcmp(magic, "GGUF", 4) == 0;
            fclose(f);
        }
    }
    return gguf ? planner_from_gguf(path, in, err) : planner_from_hf(path, in, err);
}

const char *planner_source_name(planner_source source)
{
    static const char *const names[PLANNER_SOURCE_COUNT] = {
        [PLANNER_SOURCE_GGUF] = "gguf",
        [PLANNER_SOURCE_HF_CONFIG] = "config.json",
        [PLANNER_SOURCE_SAFETENSORS] = "safetensors",
    };
    return (unsigned)source < PLANNER_SOURCE_COUNT ? names[source] : "?";
}

// ---- the plan ----

void planner_config_default(planner_config *cfg)
{
    *cfg = (planner_config){.parallel = PLANNER_DEFAULT_PARALLEL,
                            .kv_type = KV_TYPE_F16,
                            .block_tokens = PLANNER_BLOCK_TOKENS,
                            .max_batch = PLANNER_DEFAULT_MAX_BATCH,
                            .n_threads = thread_pool_default_threads(),
                            .overhead = 0};
}

kv_cache_config planner_kv_config(const planner_input *in, kv_type type, uint32_t block_tokens)
{
    kv_cache_config kc = model_hparams_kv_config(&in->hp, type, block_tokens, 0);
    kc.windows = in->windows;
    return kc;
}

// The pool configuration of a plan: window blocks for n_seqs running sequences in steps of
// cfg->max_batch (what the engine the server starts computes too).
static kv_cache_config pool_config(const planner_input *in, const planner_config *cfg,
                                   uint32_t n_seqs)
{
    kv_cache_config kc = planner_kv_config(in, cfg->kv_type, cfg->block_tokens);
    kc.n_window_blocks = kv_window_blocks_for(&kc, n_seqs, cfg->max_batch);
    return kc;
}

uint64_t planner_sequences_for_budget(uint64_t budget, uint64_t static_bytes, uint64_t per_seq)
{
    return budget > static_bytes && per_seq ? (budget - static_bytes) / per_seq : 0;
}

static uint64_t div_ceil(uint64_t a, uint64_t b) { return a / b + (a % b != 0); }

// Blocks of the pool: kv_tokens positions when given (at least one full context), else
// parallel full contexts.
static uint64_t pool_blocks(const planner_config *cfg, uint32_t ctx, uint32_t parallel)
{
    uint64_t per_seq = div_ceil(ctx, cfg->block_tokens);
    if (!cfg->kv_tokens)
        return per_seq * parallel;
    uint64_t blocks = div_ceil(cfg->kv_tokens, cfg->block_tokens);
    return blocks < per_seq ? per_seq : blocks;
}

// Scratch for a context of ctx positions (attention rows grow with it).
static int scratch_for(const planner_input *in, const planner_config *cfg, uint32_t ctx,
                       uint64_t *bytes, garlic_error *err)
{
    model_state_config sc = {.n_ctx = ctx,
                             .max_batch = cfg->max_batch,
                             .logit_rows = cfg->logit_rows,
                             .n_threads = cfg->n_threads,
                             .act_row_bytes = in->act_row_bytes,
                             .moe_act_row_bytes = in->moe_act_row_bytes};
    return model_scratch_bytes(&in->hp, &sc, bytes, err);
}

// Everything for ctx positions x parallel sequences: *total, or false when it overflows or
// the pool would have too many blocks.
static bool total_for(const planner_input *in, const planner_config *cfg, uint64_t fixed,
                      uint32_t ctx, uint32_t parallel, uint64_t *total)
{
    kv_cache_config kc = pool_config(in, cfg, cfg->running);
    uint64_t blocks = pool_blocks(cfg, ctx, parallel), kv = 0, scratch = 0;
    if (blocks > KV_MAX_BLOCKS || kv_cache_bytes_for(&kc, (uint32_t)blocks, &kv, NULL) ||
        scratch_for(in, cfg, ctx, &scratch, NULL))
        return false;
    return !__builtin_add_overflow(fixed, kv, total) &&
        !__builtin_add_overflow(*total, scratch, total);
}

// The budget questions: blocks left after the static part, the largest parallel at ctx and
// the largest ctx at parallel (bisection: the total grows with ctx).
static void fit_budget(const planner_input *in, planner_plan *p)
{
    const planner_config *cfg = &p->cfg;
    uint64_t budget = cfg->budget, fixed = p->weight_bytes + p->overhead_bytes;
    p->fits = p->total_bytes <= budget;
    kv_cache_config kc = pool_config(in, cfg, cfg->running);
    if (budget > p->static_bytes &&
        kv_cache_blocks_for_budget(&kc, budget - p->static_bytes, &p->budget_blocks, NULL))
        p->budget_blocks = 0;
    uint64_t per_seq_blocks = div_ceil(cfg->ctx, cfg->block_tokens);
    uint64_t max_parallel = p->budget_blocks / per_seq_blocks;
    p->max_parallel = max_parallel > UINT32_MAX ? UINT32_MAX : (uint32_t)max_parallel;
    uint64_t total = 0;
    if (!total_for(in, cfg, fixed, 1, cfg->parallel, &total) || total > budget)
        return;
    uint32_t lo = 1, hi = PLANNER_MAX_CTX;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo + 1) / 2;
        if (total_for(in, cfg, fixed, mid, cfg->parallel, &total) && total <= budget)
            lo = mid;
        else
            hi = mid - 1;
    }
    p->max_ctx = lo;
}

// Fills the defaults a zero field stands for and checks the rest.
static int resolve_config(const planner_input *in, const planner_config *cfg, planner_config *out,
                          garlic_error *err)
{
    *out = *cfg;
    if (!out->ctx)
        out->ctx = planner_default_ctx(in->hp.n_ctx_train);
    if (!out->block_tokens)
        out->block_tokens = PLANNER_BLOCK_TOKENS;
    if (!out->max_batch)
        out->max_batch = PLANNER_DEFAULT_MAX_BATCH;
    if (out->ctx == 0 || out->ctx > PLANNER_MAX_CTX)
        return garlic_error_set(err, GARLIC_EINVAL, "context %u: must be 1 to %d", out->ctx,
                                PLANNER_MAX_CTX);
    if (out->parallel == 0)
        return garlic_error_set(err, GARLIC_EINVAL, "parallel must be at least 1");
    if (!out->running) // the server's rule: from the pool's positions
        out->running = planner_default_running(pool_blocks(out, out->ctx, out->parallel) *
                                               out->block_tokens);
    if (out->running > out->max_batch)
        out->running = out->max_batch; // one decode token each per step
    if (!out->logit_rows)
        out->logit_rows = out->running;
    if (out->n_threads <= 0)
        out->n_threads = thread_pool_default_threads();
    if (out->block_tokens > KV_MAX_BLOCK_TOKENS || out->logit_rows > out->max_batch)
        return garlic_error_set(err, GARLIC_EINVAL,
                                "block of %u tokens, logit rows %u of batch "
                                "%u: out of range",
                                out->block_tokens, out->logit_rows, out->max_batch);
    return GARLIC_OK;
}

int planner_plan_make(const planner_input *in, const planner_config *cfg, planner_plan *plan,
                      garlic_error *err)
{
    planner_plan p = {0};
    int rc = resolve_config(in, cfg, &p.cfg, err);
    if (rc)
        return rc;
    const planner_config *c = &p.cfg;
    kv_cache_config kc = pool_config(in, c, c->running), one = pool_config(in, c, 1);
    uint64_t k_row = 0, v_row = 0, full_block = 0, window_block = 0;
    if ((rc = kv_cache_row_bytes(&kc, &k_row, &v_row, err)))
        return rc;
    p.n_window_layers = kv_windows_count(&kc.windows, kc.n_layer);
    p.window = p.n_window_layers ? kc.windows.window : 0;
    uint64_t per_seq_blocks = div_ceil(c->ctx, c->block_tokens);
    uint64_t blocks = per_seq_blocks > KV_MAX_BLOCKS || c->parallel > KV_MAX_BLOCKS
        ? UINT64_MAX
        : pool_blocks(c, c->ctx, c->parallel);
    bool ok = !__builtin_mul_overflow(in->hp.n_layer, k_row + v_row, &p.kv_bytes_per_token) &&
        blocks <= KV_MAX_BLOCKS &&
        !__builtin_add_overflow(in->weights.tensor_bytes, in->weights.mapping_bytes,
                                &p.weight_bytes);
    if (ok) {
        p.kv_blocks = (uint32_t)blocks;
        p.kv_window_blocks = kv_cache_window_blocks(&kc, p.kv_blocks);
        kv_cache_block_data_bytes(&kc, &full_block, &window_block);
        p.kv_window_bytes_per_token = (uint64_t)p.n_window_layers * (k_row + v_row);
        p.kv_full_bytes_per_token = p.kv_bytes_per_token - p.kv_window_bytes_per_token;
        uint64_t window_data;
        ok = !__builtin_mul_overflow(blocks, full_block, &p.kv_data_bytes) &&
            !__builtin_mul_overflow((uint64_t)p.kv_window_blocks, window_block, &window_data) &&
            !__builtin_add_overflow(p.kv_data_bytes, window_data, &p.kv_data_bytes);
    }
    if (!ok)
        return garlic_error_set(err, GARLIC_EINVAL,
                                "%u sequences of %u positions: the KV pool "
                                "is too large (at most %d blocks of %u)",
                                c->parallel, c->ctx, KV_MAX_BLOCKS, c->block_tokens);
    if ((rc = kv_cache_bytes_for(&kc, p.kv_blocks, &p.kv_bytes, err)) ||
        (rc = kv_cache_bytes_for(&one, (uint32_t)per_seq_blocks, &p.kv_bytes_per_seq, err)) ||
        (rc = scratch_for(in, c, c->ctx, &p.scratch_bytes, err)))
        return rc;
    p.overhead_bytes = c->overhead ? c->overhead : planner_overhead(in);
    ok = !__builtin_add_overflow(p.weight_bytes, p.scratch_bytes, &p.static_bytes) &&
        !__builtin_add_overflow(p.static_bytes, p.overhead_bytes, &p.static_bytes) &&
        !__builtin_add_overflow(p.static_bytes, p.kv_bytes, &p.total_bytes);
    if (!ok)
        return garlic_error_set(err, GARLIC_EINVAL, "total size overflows");
    if (c->budget)
        fit_budget(in, &p);
    *plan = p;
    return GARLIC_OK;
}

// ---- sizes ----

bool planner_parse_size(const char *text, uint64_t *bytes)
{
    static const struct {
        const char *suffix;
        double scale;
    } units[] = {
        {"", 1},         {"b", 1},        {"k", 1e3},      {"kb", 1e3},     {"m", 1e6},
        {"mb", 1e6},     {"g", 1e9},      {"gb", 1e9},     {"t", 1e12},     {"tb", 1e12},
        {"kib", 0x1p10}, {"mib", 0x1p20}, {"gib", 0x1p30}, {"tib", 0x1p40},
    };
    if (!text || !isdigit((unsigned char)text[0]))
        return false;
    char *end;
    double v = strtod(text, &end);
    if (!isfinite(v) || v < 0)
        return false;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcasecmp(end, units[i].suffix) != 0)
            continue;
        double b = round(v * units[i].scale);
        if (!(b < 0x1p64))
            return false;
        *bytes = (uint64_t)b;
        return true;
    }
    return false;
}

uint32_t planner_device_layers(const uint64_t *layer_bytes, uint32_t n_layer, uint64_t output_bytes,
                               uint64_t fixed_bytes, uint64_t free_bytes)
{
    if (fixed_bytes >= free_bytes)
        return 0;
    uint64_t left = free_bytes - fixed_bytes;
    uint32_t n = 0;
    for (; n < n_layer && layer_bytes[n] <= left; n++)
        left -= layer_bytes[n];
    // Every layer but not the output: the last layer stays on the host with it (the forward
    // pass puts the output on the device only with every layer).
    if (n == n_layer && n > 0 && output_bytes > left)
        n--;
    return n;
}
