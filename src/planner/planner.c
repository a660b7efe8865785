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

#include "base/alloc.h"
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

// Where tensor `name` (len bytes) lies for a pipeline: its layer (*layer), or -1 the first
// stage's (the embedding), -2 the last's (output, output_norm), -3 every stage's.
static int64_t tensor_place(const char *name, size_t len)
{
    char text[96];
    snprintf(text, sizeof text, "%.*s", (int)(len < sizeof text - 1 ? len : sizeof text - 1), name);
    unsigned layer;
    int end = 0;
    if (sscanf(text, "blk.%u.%n", &layer, &end) == 1 && end > 0)
        return layer;
    if (strncmp(text, "output", 6) == 0)
        return -2;
    if (strncmp(text, "token_", 6) == 0 || strncmp(text, "position_", 9) == 0)
        return -1;
    return -3;
}

// The figure of in that counts the bytes of a tensor at place (tensor_place).
static uint64_t *place_bytes(planner_input *in, int64_t place)
{
    if (place >= 0 && (uint64_t)place < in->hp.n_layer)
        return &in->layer_bytes[place];
    return place == -1 ? &in->first_bytes : place == -2 ? &in->last_bytes : &in->every_bytes;
}

// Takes what a tensor-parallel share leaves to the other ranks (m->tp_cuts) out of in's
// weights, by type and by layer.
static void remove_cuts(const model *m, planner_input *in)
{
    planner_weights *w = &in->weights;
    for (uint32_t i = 0; i < m->n_tp_cuts; i++) {
        const model_shard_cut *c = &m->tp_cuts[i];
        const tensor_type_traits *tr = tensor_type_get(c->type);
        for (uint32_t k = 0; k < w->n_types; k++) {
            planner_weight_type *row = &w->types[k];
            if (row->scales || strcmp(row->name, tr ? tr->name : "?") != 0)
                continue;
            row->bytes -= c->bytes, row->n_elements -= c->values;
            break;
        }
        w->tensor_bytes -= c->bytes, w->n_params -= c->values;
        if (in->layers_known)
            *place_bytes(in, c->layer < m->hp.n_layer ? (int64_t)c->layer : -2) -= c->bytes;
    }
}

int planner_from_model(const model *m, const char *path, planner_input *in, garlic_error *err)
{
    *in = (planner_input){.source = PLANNER_SOURCE_GGUF, .n_files = 1};
    snprintf(in->path, sizeof in->path, "%s", path);
    in->hp = m->hp;
    in->tp_rank = m->tp_size > 1 ? m->tp_rank : 0, in->tp_size = m->tp_size > 1 ? m->tp_size : 1;
    in->layers_known = m->hp.n_layer <= PLANNER_MAX_LAYERS;
    snprintf(in->arch, sizeof in->arch, "%s", m->arch->name);
    const gguf_file *f = m->file;
    int rc = GARLIC_OK;
    for (uint64_t i = 0; i < f->n_tensors && rc == GARLIC_OK; i++) {
        const gguf_tensor *t = &f->tensors[i];
        const tensor_type_traits *tr = tensor_type_get(t->type);
        bool norm = memmem(t->name.data, t->name.len, "norm", 4) != NULL;
        rc = planner_weights_add(&in->weights, tr ? tr->name : "?", false, norm, t->n_elements,
                                 t->nbytes, err);
        if (in->layers_known)
            *place_bytes(in, tensor_place(t->name.data, t->name.len)) += t->nbytes;
    }
    // The server maps the whole file: header, metadata and padding are resident too; a
    // tensor-parallel rank touches only its share of the tensors.
    if (rc == GARLIC_OK) {
        in->weights.mapping_bytes = f->size - in->weights.tensor_bytes;
        remove_cuts(m, in);
    }
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
    return planner_from_model_share(path, quantize, 0, 1, in, err); // (the whole model)
}

int planner_from_model_share(const char *path, const char *quantize, uint32_t tp_rank,
                             uint32_t tp_size, planner_input *in, garlic_error *err)
{
    model_load_options o = {
        .quantize = quantize, .meta_only = true, .tp_rank = tp_rank, .tp_size = tp_size};
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

// Layers a device holds when garlic picks them (--gpu-layers auto): the first layers whose
// bytes (layer_bytes[l]: weights and KV rows) fit in free_bytes after fixed_bytes (activation
// buffers and the reserve the caller keeps for the driver); n_layer when every layer and
// the output (output_bytes, with its logits) fit, which the forward pass reads as "the output
// too". 0 when not even one layer fits.
static uint32_t device_layers(const uint64_t *layer_bytes, uint32_t n_layer, uint64_t output_bytes,
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

// ---- layouts: tensor x pipeline parallelism ----

static uint64_t layer_cost(const planner_input *in, const planner_plan *plan, uint32_t l);

int planner_device_plan_make(const planner_input *in, const planner_plan *plan, int64_t layers,
                             uint32_t max_layers, uint64_t memory, uint64_t overhead,
                             planner_device_plan *out, garlic_error *err)
{
    uint32_t n = in->hp.n_layer;
    *out = (planner_device_plan){.memory = memory, .overhead_bytes = overhead};
    if (!in->layers_known)
        return garlic_error_set(err, GARLIC_EINVAL,
                                "%s: the bytes of each layer are not known (more than %d layers)",
                                in->path, PLANNER_MAX_LAYERS);
    uint64_t cost[PLANNER_MAX_LAYERS];
    for (uint32_t l = 0; l < n; l++)
        cost[l] = layer_cost(in, plan, l);
    uint64_t logits = (uint64_t)plan->cfg.running * in->hp.n_vocab * sizeof(float);
    uint64_t fixed = plan->scratch_bytes + overhead + (UINT64_C(256) << 20);
    uint32_t k = layers < 0
        ? memory ? device_layers(cost, n, in->last_bytes + logits, fixed, memory) : n
        : layers > n ? n
                     : (uint32_t)layers;
    k = k > max_layers ? max_layers : k;
    out->layers = k, out->output = k == n;
    for (uint32_t l = 0; l < k; l++) {
        out->weight_bytes += in->layer_bytes[l];
        out->kv_bytes += cost[l] - in->layer_bytes[l];
    }
    out->weight_bytes += out->output ? in->last_bytes : 0;
    out->scratch_bytes = k ? plan->scratch_bytes + (out->output ? logits : 0) : 0;
    out->overhead_bytes = k ? overhead : 0;
    out->total_bytes = out->weight_bytes + out->kv_bytes + out->scratch_bytes + out->overhead_bytes;
    out->host_weight_bytes = plan->weight_bytes - out->weight_bytes;
    out->fits = !memory || out->total_bytes <= memory;
    return GARLIC_OK;
}

// The bytes layer l costs a stage: its weights and its KV data in plan's pool (the window
// layers hold their window blocks, the others the full pool).
static uint64_t layer_cost(const planner_input *in, const planner_plan *plan, uint32_t l)
{
    uint64_t rows = in->hp.n_layer ? plan->kv_bytes_per_token / in->hp.n_layer : 0;
    bool window = kv_windows_has(&in->windows, l) && plan->n_window_layers;
    uint64_t blocks = window ? plan->kv_window_blocks : plan->kv_blocks;
    return in->layer_bytes[l] + blocks * plan->cfg.block_tokens * rows;
}

// Packs layers greedily into stages of at most cap bytes, each stage left with at least one
// layer for every stage after it; fills first/count when given. Returns whether p stages
// hold every layer within cap.
static bool pack_stages(const planner_input *in, const planner_plan *plan, uint32_t p, uint64_t cap,
                        uint32_t *first, uint32_t *count)
{
    uint32_t n = in->hp.n_layer, l = 0;
    for (uint32_t s = 0; s < p; s++) {
        uint64_t bytes = s == 0 ? in->first_bytes : 0;
        uint32_t start = l;
        for (; l < n; l++) {
            uint64_t next = bytes + layer_cost(in, plan, l) + (l + 1 == n ? in->last_bytes : 0);
            bool room = l - start == 0 || next <= cap;
            if (s + 1 < p && (!room || n - l <= p - s - 1))
                break; // (the last stage takes what is left)
            bytes = next;
        }
        if (first)
            first[s] = start, count[s] = l - start;
        if (l == start || bytes > cap)
            return false;
    }
    return l == n;
}

int planner_stages_make(const planner_input *in, const planner_plan *plan, uint32_t p,
                        uint32_t *first, uint32_t *count, garlic_error *err)
{
    uint32_t n = in->hp.n_layer;
    if (!in->layers_known)
        return garlic_error_set(err, GARLIC_EINVAL,
                                "%s: the layers' weights are not known (a model garlic loads, "
                                "at most %d layers, is needed to split it into stages)",
                                in->path, PLANNER_MAX_LAYERS);
    if (p == 0 || p > n || p > PLANNER_MAX_STAGES)
        return garlic_error_set(err, GARLIC_EINVAL,
                                "--pipeline-parallel %u: must be 1 to the %u layers (at most %d)",
                                p, n, PLANNER_MAX_STAGES);
    // The smallest cap whose greedy packing fits in p stages (bisection: packing succeeds
    // for every cap above it).
    uint64_t lo = 0, hi = in->first_bytes + in->last_bytes;
    for (uint32_t l = 0; l < n; l++)
        hi += layer_cost(in, plan, l);
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (pack_stages(in, plan, p, mid, NULL, NULL))
            hi = mid;
        else
            lo = mid + 1;
    }
    pack_stages(in, plan, p, lo, first, count);
    return GARLIC_OK;
}

int planner_stage_plan(const planner_input *share, uint32_t first, uint32_t count,
                       const planner_config *cfg, planner_plan *plan, garlic_error *err)
{
    uint32_t n = share->hp.n_layer;
    if (!share->layers_known || count == 0 || first > n || count > n - first)
        return garlic_error_set(err, GARLIC_EINVAL, "%s: layers %u to %u: not a stage of %u layers",
                                share->path, first, first + count, n);
    planner_input *in = garlic_malloc(sizeof *in); // (large: not on the stack)
    if (!in)
        return garlic_error_set(err, GARLIC_ENOMEM, "out of memory");
    *in = *share;
    in->hp.n_layer = count;
    memset(&in->windows.layers, 0, sizeof in->windows.layers);
    uint64_t bytes = share->every_bytes + (first == 0 ? share->first_bytes : 0) +
        (first + count == n ? share->last_bytes : 0);
    for (uint32_t l = 0; l < count; l++) {
        in->layer_bytes[l] = share->layer_bytes[first + l];
        bytes += in->layer_bytes[l];
        if (kv_windows_has(&share->windows, first + l))
            kv_windows_set(&in->windows, l);
    }
    if (count < n) { // the table by type is the whole share's: a stage has its total only
        in->weights.n_types = 0;
        in->weights.tensor_bytes = bytes;
    }
    int rc = planner_plan_make(in, cfg, plan, err);
    garlic_free(in);
    return rc;
}

int planner_layout_make(const char *path, const char *quantize, uint32_t t, uint32_t p,
                        const planner_config *cfg, planner_rank *ranks, garlic_error *err)
{
    planner_input *share = garlic_malloc(sizeof *share);
    uint32_t *first = garlic_calloc(p ? p : 1, sizeof *first);
    uint32_t *count = garlic_calloc(p ? p : 1, sizeof *count);
    int rc = share && first && count ? GARLIC_OK
                                     : garlic_error_set(err, GARLIC_ENOMEM, "out of memory");
    for (uint32_t r = 0; rc == GARLIC_OK && r < t; r++) {
        planner_plan whole;
        rc = planner_from_model_share(path, quantize, r, t, share, err);
        // The stages split as tensor rank 0's share balances (every rank's layers are alike
        // but for rank 0's output biases, a few values).
        if (rc == GARLIC_OK && r == 0 && (rc = planner_plan_make(share, cfg, &whole, err)) == 0)
            rc = planner_stages_make(share, &whole, p, first, count, err);
        for (uint32_t s = 0; rc == GARLIC_OK && s < p; s++) {
            planner_rank *k = &ranks[r + (size_t)t * s];
            *k = (planner_rank){
                .tp_rank = r, .stage = s, .first_layer = first[s], .n_layers = count[s]};
            rc = planner_stage_plan(share, first[s], count[s], cfg, &k->plan, err);
        }
    }
    garlic_free(share), garlic_free(first), garlic_free(count);
    return rc;
}

// Whether layout t x p fits cfg's budget on every rank: its stages split as tensor rank
// 0's share (planned as `whole`) balances them (as planner_layout_make splits them), and the
// largest rank of each stage is rank 0 (it alone adds the output biases of the products split
// by input columns, and keeps a shared expert narrower than T blocks) or the last (where T
// does not divide the FFN, the vocabulary or the experts' blocks, the later ranks hold one
// row or block more, the last the most of each; whole experts are E / T a rank), so those
// two are planned.
static int layout_fits(const planner_input *share, const planner_input *last,
                       const planner_plan *whole, uint32_t p, const planner_config *cfg, bool *fits,
                       garlic_error *err)
{
    uint32_t *first = garlic_calloc(p, sizeof *first), *count = garlic_calloc(p, sizeof *count);
    int rc = first && count ? planner_stages_make(share, whole, p, first, count, err)
                            : garlic_error_set(err, GARLIC_ENOMEM, "out of memory");
    planner_config c = *cfg;
    c.budget = 0; // (compared here: the budget questions of each stage are not needed)
    *fits = true;
    for (uint32_t s = 0; rc == GARLIC_OK && *fits && s < 2 * p; s++) {
        planner_plan plan;
        const planner_input *in = s < p ? share : last;
        rc = planner_stage_plan(in, first[s % p], count[s % p], &c, &plan, err);
        *fits = rc == GARLIC_OK && plan.total_bytes <= cfg->budget;
    }
    garlic_free(first), garlic_free(count);
    return rc;
}

int planner_layout_smallest(const char *path, const char *quantize, const planner_config *cfg,
                            uint32_t max_ranks, uint32_t *t, uint32_t *p, garlic_error *err)
{
    enum { MAX_TP = 64 }; // tensor ranks tried (they must divide the heads)
    // T's shares of tensor rank 0 and of the last (the largest two: layout_fits)
    planner_input *shares = garlic_calloc(MAX_TP + 1, sizeof *shares);
    planner_input *lasts = garlic_calloc(MAX_TP + 1, sizeof *lasts);
    planner_plan *wholes = garlic_calloc(MAX_TP + 1, sizeof *wholes);
    int8_t state[MAX_TP + 1] = {0}; // 0 not tried, 1 loaded, -1 does not split so
    int rc = shares && lasts && wholes ? GARLIC_OK
                                       : garlic_error_set(err, GARLIC_ENOMEM, "out of memory");
    uint32_t n_layer = 0;
    for (uint32_t n = 1; rc == GARLIC_OK && n <= max_ranks; n++) {
        for (uint32_t tp = n < MAX_TP ? n : MAX_TP; rc == GARLIC_OK && tp >= 1; tp--) {
            if (n % tp || (n_layer && n / tp > n_layer))
                continue;
            if (state[tp] == 0) {
                garlic_error e = {0};
                int r = planner_from_model_share(path, quantize, 0, tp, &shares[tp], &e);
                if (r == GARLIC_OK)
                    r = planner_from_model_share(path, quantize, tp - 1, tp, &lasts[tp], &e);
                if (r == GARLIC_OK)
                    r = planner_plan_make(&shares[tp], cfg, &wholes[tp], &e);
                state[tp] = r == GARLIC_OK ? 1 : -1;
                if (r != GARLIC_OK && r != GARLIC_EUNSUPPORTED) // (a T that does not divide)
                    rc = r, *err = e;
                if (r == GARLIC_OK && tp == 1)
                    n_layer = shares[1].hp.n_layer;
            }
            if (state[tp] != 1 || n / tp > shares[tp].hp.n_layer)
                continue;
            bool fits;
            rc = layout_fits(&shares[tp], &lasts[tp], &wholes[tp], n / tp, cfg, &fits, err);
            if (rc == GARLIC_OK && fits) {
                *t = tp, *p = n / tp;
                garlic_free(shares), garlic_free(lasts), garlic_free(wholes);
                return GARLIC_OK;
            }
        }
    }
    garlic_free(shares), garlic_free(lasts), garlic_free(wholes);
    if (rc == GARLIC_OK)
        rc = garlic_error_set(err, GARLIC_ENOTFOUND,
                              "%s: no layout of up to %u ranks fits %llu bytes per rank", path,
                              max_ranks, (unsigned long long)cfg->budget);
    return rc;
}
