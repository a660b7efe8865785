// SPDX-License-Identifier: MIT
// The forward pass of the Llama family over a batch of tokens, and the run state it needs.
// Per layer: rmsnorm -> q, k, v projections (+ biases) -> per-head q/k norms -> RoPE -> write
// k, v to the cache -> causal grouped-query attention (over a sliding window and with a sink
// logit per head where the layer has them) -> output projection (+ bias) -> residual ->
// rmsnorm -> gate, up -> SiLU(gate) * up -> down -> residual (or the experts, moe.c).
// Multi-head latent attention (mla.c) replaces the projections before the attention and adds
// the heads' value matrices after it. Matrix products and attention run on the compute pool;
// the small element-wise steps run on the calling thread. Every buffer is allocated in
// model_state_new, so a forward call allocates nothing.
#include <limits.h>
#include <math.h>
#include <stdatomic.h>
#include <string.h>

#include "base/alloc.h"
#include "dist/dist.h"
#include "kernels/kernels.h"
#include "model/internal.h"
#include "model/model.h"
#include "tensor/types.h"

static size_t row_bytes(uint32_t type, uint64_t n)
{
    uint64_t b = 0;
    tensor_row_size(type, n, &b);
    return (size_t)b;
}

// Bytes of the widest activation row for hp when the weight types are not known: F32
// activations (4 bytes a value) are the largest format.
static uint64_t worst_act_row(const model_hparams *hp)
{
    uint64_t widest = hp->dim > hp->ffn ? hp->dim : hp->ffn;
    uint64_t o_dim = (uint64_t)hp->n_head * hp->head_dim_v;
    uint64_t mla_o_dim = (uint64_t)hp->n_head * hp->head_dim_v_mla; // wo's input under MLA
    widest = o_dim > widest ? o_dim : widest;
    widest = mla_o_dim > widest ? mla_o_dim : widest;
    widest = hp->q_lora_rank > widest ? hp->q_lora_rank : widest;
    return widest * sizeof(float);
}

uint64_t model_act_row_bytes(const model *m)
{
    uint64_t widest = 0;
    for (uint32_t l = 0; l < m->hp.n_layer; l++) {
        const model_layer *L = &m->layers[l];
        const model_tensor *ws[] = MODEL_LAYER_MATRICES(L);
        for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++) {
            if (!ws[i]->data)
                continue;
            uint64_t b = kernel_act_row_size(ws[i]->type, (int64_t)ws[i]->n_in);
            widest = b > widest ? b : widest;
        }
    }
    uint64_t out = m->output.data ? kernel_act_row_size(m->output.type, (int64_t)m->output.n_in)
                                  : 0; // an encoder has no output matrix
    return out > widest ? out : widest;
}

uint64_t model_moe_act_row_bytes(const model *m)
{
    uint64_t widest = 0;
    for (uint32_t l = 0; l < m->hp.n_layer; l++) {
        const model_layer *L = &m->layers[l];
        const model_tensor *ws[] = {&L->exp_gate, &L->exp_up, &L->exp_down};
        for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++) {
            uint64_t b = ws[i]->data ? kernel_act_row_size(ws[i]->type, (int64_t)ws[i]->n_in) : 0;
            widest = b > widest ? b : widest;
        }
    }
    return widest;
}

// The stride of the experts' activation slots: their widest row (F32 when not known),
// rounded up to 64.
static size_t moe_act_stride(const model_hparams *hp, const model_state_config *cfg)
{
    uint64_t wide = hp->dim > hp->ffn_exp ? hp->dim : hp->ffn_exp;
    uint64_t row = cfg->moe_act_row_bytes ? cfg->moe_act_row_bytes : wide * sizeof(float);
    return (size_t)((row + 63) / 64 * 64);
}

// The stride of the activation buffers: the row bytes rounded up to 64.
static size_t act_stride(const model_hparams *hp, const model_state_config *cfg)
{
    uint64_t row = cfg->act_row_bytes ? cfg->act_row_bytes : worst_act_row(hp);
    return (size_t)((row + 63) / 64 * 64);
}

enum { N_SCRATCH = 27 };

// The scratch buffers start on a 64-byte boundary (a large calloc is only 16-aligned), so that
// activation rows, whose sizes are multiples of 64, are too: kernels that read converted rows
// where they lie (F8_E4M3's F32 rows, F16's single row) would otherwise split every vector
// load across two cache lines (F8_E4M3 decoding ran 30 % slower).
enum { SCRATCH_ALIGN = 64 };

// uint32_t entries of the flat arrays a state keeps for its batches (model_flatten_batch):
// a batch's n_pos and table starts, and the tables of blocks of 16 positions (the engine's)
// for max_batch sequences at most the context long, up to 4M entries; a batch that needs
// more (smaller blocks, more sequences) grows a buffer of its own.
static uint64_t flat_entries(const model_state_config *cfg)
{
    uint64_t tables = 2 * (uint64_t)cfg->max_batch * (cfg->n_ctx / 16 + 1);
    return 3 * (uint64_t)cfg->max_batch + (tables < (1u << 22) ? tables : 1u << 22);
}

// Query rows one attention work item takes at most: a run of tokens times the heads of its
// KV head's group (at least one whole group).
static uint32_t att_tile_rows(const model_hparams *hp)
{
    uint32_t group = hp->n_head / (hp->n_head_kv ? hp->n_head_kv : 1);
    return group > ATT_TILE ? group : ATT_TILE;
}

// One thread's attention tile (see attention_worker), carved from base when t is set;
// returns its floats (each part rounded up to 16 floats, 64 bytes).
static uint64_t att_tile_layout(const model_hparams *hp, float *base, att_tile *t)
{
    uint64_t tq = att_tile_rows(hp);
    uint64_t n[5] = {tq * hp->head_dim_k, tq * ATT_CHUNK, tq * hp->head_dim_v, tq, tq}, at = 0;
    float *part[5];
    for (int i = 0; i < 5; i++) {
        part[i] = base ? base + at : NULL;
        at += (n[i] + 15) / 16 * 16;
    }
    if (t)
        *t = (att_tile){
            .q = part[0], .score = part[1], .o = part[2], .max = part[3], .sum = part[4]};
    return at;
}

// The scratch buffers of a state: where each pointer goes and how many bytes it takes
// (every buffer rounded up to 64 bytes). model_state_new carves them from one allocation and
// model_scratch_bytes adds them up, so the planner counts exactly what is allocated.
static int scratch_layout(const model_hparams *hp, const model_state_config *cfg, model_state *s,
                          void **slots[N_SCRATCH], uint64_t sizes[N_SCRATCH])
{
    int threads = cfg->pool ? thread_pool_size(cfg->pool) : cfg->n_threads;
    uint64_t B = cfg->max_batch, nt = (uint64_t)(threads > 0 ? threads : 1);
    uint64_t q_dim = (uint64_t)hp->n_head * hp->head_dim_k,
             o_dim = (uint64_t)hp->n_head * hp->head_dim_v;
    uint64_t k_dim = (uint64_t)hp->n_head_kv * hp->head_dim_k,
             v_dim = (uint64_t)hp->n_head_kv * hp->head_dim_v;
    uint64_t f = sizeof(float), act = act_stride(hp, cfg), half = hp->n_rot / 2 + 1;
    uint64_t tables = hp->swa_rope ? 2 : 1;
    uint64_t ffn = hp->ffn > hp->ffn_shexp ? hp->ffn : hp->ffn_shexp;
    // Multi-head latent attention: no V rows of its own, xb also takes the heads' no-RoPE
    // queries converted (see model_state), q_head the heads' queries and values.
    bool mla = model_hparams_mla(hp);
    uint64_t heads = mla ? hp->n_head : 0, nope = mla ? hp->head_dim_k_mla - hp->n_rot : 0;
    // Under tensor parallelism, a product split by output rows gathers its whole input (the
    // attention output in xb, the FFN's in hb) and parts of its input and output in tp_parts.
    uint64_t whole = hp->tp_gather_width, parts = whole ? (whole > hp->dim ? whole : hp->dim) : 0;
    uint64_t xb_dim = o_dim > hp->dim ? o_dim : hp->dim;
    xb_dim = heads * nope > xb_dim ? heads * nope : xb_dim;
    xb_dim = whole > xb_dim ? whole : xb_dim;
    uint64_t hb_dim = ffn > hp->dim ? ffn : hp->dim;
    hb_dim = whole > hb_dim ? whole : hb_dim;
    uint64_t head_dim = hp->head_dim_k_mla > hp->head_dim_v_mla ? hp->head_dim_k_mla
                                                                : hp->head_dim_v_mla;
    // the widest input of a matrix product (xb, hb or q_lora), for permuted inputs
    uint64_t in_dim = xb_dim > ffn ? xb_dim : ffn;
    in_dim = hp->q_lora_rank > in_dim ? hp->q_lora_rank : in_dim;
    s->gather_stride = in_dim;
    struct {
        void **slot;
        uint64_t n;
    } t[N_SCRATCH] = {
        {(void **)&s->x, B * hp->dim * f},
        {(void **)&s->xb, B * xb_dim * f},
        {(void **)&s->q, B * q_dim * f},
        {(void **)&s->k, B * k_dim * f},
        {(void **)&s->v, mla ? 0 : B * v_dim * f},
        // hb also receives the attention output projection (dim wide).
        {(void **)&s->hb, B * hb_dim * f},
        {(void **)&s->hb2, B * ffn * f},
        {(void **)&s->q_lora, mla ? B * hp->q_lora_rank * f : 0},
        {(void **)&s->q_head, B * heads * head_dim * f},
        {(void **)&s->head_items, heads * sizeof(model_mat_item)},
        {(void **)&s->logits, (uint64_t)cfg->logit_rows * hp->n_vocab * f},
        {(void **)&s->att, nt * att_tile_layout(hp, NULL, NULL) * f},
        {(void **)&s->kv_row, nt * ATT_CHUNK * (k_dim > v_dim ? k_dim : v_dim) * f},
        // (Q8_0 rows: 34 bytes a block of 32, the size kv_row_size gives)
        {(void **)&s->att_q, nt * att_tile_rows(hp) * ((hp->head_dim_k + 31) / 32) * 34},
        {(void **)&s->att_runs, (B + 1) * sizeof(uint32_t)},
        {(void **)&s->gather, nt * in_dim * f},
        {(void **)&s->tp_parts, B * parts * f},
        {(void **)&s->act[0], B * act},
        {(void **)&s->act[1], B * act},
        {(void **)&s->act[2], B * act},
        {(void **)&s->rope_cos, tables * B * half * f},
        {(void **)&s->rope_sin, tables * B * half * f},
        {(void **)&s->pos, B * sizeof(uint32_t)},
        {(void **)&s->seq, B * sizeof(uint32_t)},
        {(void **)&s->out, B * sizeof(uint32_t)},
        {(void **)&s->flat, flat_entries(cfg) * sizeof(uint32_t)},
        {(void **)&s->moe_base,
         model_moe_scratch_layout(hp, cfg->max_batch, moe_act_stride(hp, cfg), NULL, NULL)},
    };
    // Every factor is below 2^32 and at most three are multiplied with small constants, so
    // the products fit; the sum is checked against a ceiling.
    for (int i = 0; i < N_SCRATCH; i++) {
        slots[i] = t[i].slot;
        sizes[i] = (t[i].n + 63) / 64 * 64;
        if (sizes[i] > (UINT64_C(1) << 46))
            return GARLIC_EINVAL;
    }
    return GARLIC_OK;
}

static int check_state_args(const model_state_config *cfg, garlic_error *err)
{
    if (cfg->n_ctx == 0 || cfg->n_ctx > (1u << 24) || cfg->max_batch == 0 ||
        cfg->max_batch > 65536 || cfg->logit_rows == 0 || cfg->logit_rows > cfg->max_batch ||
        cfg->n_threads > 1024)
        return garlic_error_set(err, GARLIC_EINVAL,
                                "context %u, batch %u and logit rows %u must "
                                "be positive (context at most 16M, batch at most 65536, logit "
                                "rows at most the batch, at most 1024 threads)",
                                cfg->n_ctx, cfg->max_batch, cfg->logit_rows);
    return GARLIC_OK;
}

int model_scratch_bytes(const model_hparams *hp, const model_state_config *cfg, uint64_t *bytes,
                        garlic_error *err)
{
    int rc = check_state_args(cfg, err);
    if (rc)
        return rc;
    model_state dummy;
    void **slots[N_SCRATCH];
    uint64_t sizes[N_SCRATCH], total = 0;
    if (scratch_layout(hp, cfg, &dummy, slots, sizes))
        return garlic_error_set(err, GARLIC_EINVAL,
                                "run state of batch %u and context %u is too "
                                "large",
                                cfg->max_batch, cfg->n_ctx);
    for (int i = 0; i < N_SCRATCH; i++)
        total += sizes[i];
    *bytes = total + SCRATCH_ALIGN; // room to start the buffers on a 64-byte boundary
    return GARLIC_OK;
}

kv_cache_config model_hparams_kv_config(const model_hparams *hp, kv_type type,
                                        uint32_t block_tokens, uint32_t n_blocks)
{
    return (kv_cache_config){.n_layer = hp->n_layer,
                             .n_head_kv = hp->n_head_kv,
                             .head_dim_k = hp->head_dim_k,
                             .head_dim_v = model_hparams_mla(hp) ? 0 : hp->head_dim_v,
                             .block_tokens = block_tokens,
                             .type = type,
                             .n_blocks = n_blocks};
}

kv_cache_config model_kv_config(const model *m, kv_type type, uint32_t block_tokens,
                                uint32_t n_blocks)
{
    kv_cache_config c = model_hparams_kv_config(&m->hp, type, block_tokens, n_blocks);
    // Sliding-window layers keep their rows in window blocks, sized for the widest window. (A
    // layer past the mask's reach stays full: it holds every position, which is never wrong.)
    for (uint32_t l = 0; l < m->hp.n_layer; l++) {
        uint32_t w = m->layers[l].window;
        if (w && kv_windows_set(&c.windows, l) && w > c.windows.window)
            c.windows.window = w;
    }
    return c;
}

enum { DEVICE_TENSORS = 20 };

// The tensors of layer l a device computes with (l == n_layer: the output's), those the
// model has; returns their count.
static int layer_tensors(const model *m, uint32_t l, const model_tensor *t[DEVICE_TENSORS])
{
    int n = 0;
    if (l == m->hp.n_layer) {
        t[n++] = &m->output_norm, t[n++] = &m->output;
        return n;
    }
    const model_layer *L = &m->layers[l];
    const model_tensor *all[] = {&L->attn_norm,
                                 &L->wq,
                                 &L->wk,
                                 &L->wv,
                                 &L->wo,
                                 &L->bq,
                                 &L->bk,
                                 &L->bv,
                                 &L->bo,
                                 &L->q_norm,
                                 &L->k_norm,
                                 &L->sinks,
                                 &L->attn_post_norm,
                                 &L->ffn_norm,
                                 &L->w_gate,
                                 &L->w_up,
                                 &L->w_down,
                                 &L->ffn_post_norm};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (all[i]->data)
            t[n++] = all[i];
    return n;
}

// The tensors of layer l this state's device holds (none for the layers it does not run).
static int device_tensors(const model_state *s, uint32_t l, const model_tensor *t[DEVICE_TENSORS])
{
    bool held = l == s->m->hp.n_layer ? s->device_output : l < s->device_layers;
    return held ? layer_tensors(s->m, l, t) : 0;
}

uint64_t model_device_layer_bytes(const model *m, uint32_t l)
{
    const model_tensor *t[DEVICE_TENSORS];
    uint64_t bytes = 0;
    for (int i = 0, n = l <= m->hp.n_layer ? layer_tensors(m, l, t) : 0; i < n; i++)
        bytes += t[i]->mat_bytes * t[i]->n_mat;
    return bytes;
}

uint32_t model_device_runs(const model *m, struct backend *d)
{
    if (m->arch->encoder || m->tp_size > 1 || m->arch->mla)
        return 0;
    uint32_t n = 0;
    while (n < m->hp.n_layer && !model_layer_has_experts(m, n) && d->ops->supports(d, m, n, NULL))
        n++;
    return n;
}

// The device's share of a state: checks that it runs each of its layers, uploads their
// weights (and the output's when it runs them all) and allocates its activation buffers,
// each the size of the host's (sizes: scratch_layout's).
static int device_setup(model_state *s, const model_state_config *cfg, const uint64_t *sizes,
                        garlic_error *err)
{
    const model *m = s->m;
    const model_hparams *hp = &m->hp;
    backend *d = cfg->device;
    if (m->arch->encoder)
        return garlic_error_set(err, GARLIC_EUNSUPPORTED,
                                "%s: an encoder runs on the CPU only (the device backend runs "
                                "decoder layers)",
                                m->arch->name);
    if (m->tp_size > 1 || m->layer_end - m->layer_first < hp->n_layer)
        return garlic_error_set(err, GARLIC_EUNSUPPORTED,
                                "a device backend and tensor or pipeline parallelism cannot be "
                                "combined yet");
    if (!strcmp(d->ops->name, "cpu") && !model_cpu_backend_bind(d, s))
        return garlic_error_set(err, GARLIC_EINVAL,
                                "the CPU stand-in for a device serves one run state");
    s->device = d;
    s->device_layers = cfg->device_layers < hp->n_layer ? cfg->device_layers : hp->n_layer;
    s->device_output = cfg->device_layers >= hp->n_layer;
    // The forward pass runs experts and latent attention on the CPU's buffers alone.
    for (uint32_t l = 0; l < s->device_layers; l++) {
        if (m->arch->mla || model_layer_has_experts(m, l))
            return garlic_error_set(err, GARLIC_EUNSUPPORTED,
                                    "layer %u of this %s model has %s, which run on the CPU only "
                                    "in this version (--gpu-layers %u or fewer)",
                                    l, m->arch->name,
                                    m->arch->mla ? "multi-head latent attention" : "experts", l);
        if (!d->ops->supports(d, m, l, err))
            return err ? err->code : GARLIC_EUNSUPPORTED;
    }
    uint64_t total = 0, done = 0;
    for (uint32_t l = 0; l <= hp->n_layer; l++) {
        const model_tensor *t[DEVICE_TENSORS];
        for (int i = 0, n = device_tensors(s, l, t); i < n; i++)
            total += t[i]->mat_bytes * t[i]->n_mat;
    }
    int shown = -1;
    for (uint32_t l = 0; l <= hp->n_layer; l++) {
        const model_tensor *t[DEVICE_TENSORS];
        for (int i = 0, n = device_tensors(s, l, t); i < n; i++) {
            int rc = d->ops->upload(d, t[i], err);
            if (rc)
                return rc;
            model_release_host_rows(m, t[i]); // the device holds them now
            done += t[i]->mat_bytes * t[i]->n_mat;
            int percent = total ? (int)(done * 100 / total) / 5 * 5 : 100;
            if (cfg->upload_progress && percent != shown)
                cfg->upload_progress(cfg->upload_progress_ctx, shown = percent);
        }
    }
    // The slots of scratch_layout: x, xb, q, k, v, hb, hb2 are its first seven, the logits
    // its eleventh.
    float **bufs[] = {&s->dev.x, &s->dev.xb, &s->dev.q,  &s->dev.k,
                      &s->dev.v, &s->dev.hb, &s->dev.hb2};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (sizes[i] && !(*bufs[i] = d->ops->alloc(d, (size_t)sizes[i], err)))
            return err ? err->code : GARLIC_ENOMEM;
    if (s->device_output && !(s->dev.logits = d->ops->alloc(d, (size_t)sizes[10], err)))
        return err ? err->code : GARLIC_ENOMEM;
    s->dev.be = d;
    return GARLIC_OK;
}

model_state *model_state_new(const model *m, const model_state_config *config, garlic_error *err)
{
    model_state_config c = *config;
    if (!c.act_row_bytes)
        c.act_row_bytes = model_act_row_bytes(m);
    if (!c.moe_act_row_bytes)
        c.moe_act_row_bytes = model_moe_act_row_bytes(m);
    const model_state_config *cfg = &c;
    uint64_t total;
    if (model_scratch_bytes(&m->hp, cfg, &total, err)) // checks cfg too
        return NULL;
    model_state *s = garlic_calloc(1, sizeof *s);
    if (!s) {
        garlic_error_set(err, GARLIC_ENOMEM, "out of memory");
        return NULL;
    }
    *s = (model_state){.m = m,
                       .n_ctx = cfg->n_ctx,
                       .max_batch = cfg->max_batch,
                       .logit_rows = cfg->logit_rows,
                       .act_stride = act_stride(&m->hp, &c)};
    s->own_pool = !cfg->pool;
    s->pool = cfg->pool ? cfg->pool : thread_pool_new(cfg->n_threads, err);
    if (!s->pool) {
        garlic_free(s);
        return NULL;
    }
    void **slots[N_SCRATCH];
    uint64_t sizes[N_SCRATCH];
    scratch_layout(&m->hp, cfg, s, slots, sizes);
    s->scratch = total <= SIZE_MAX ? garlic_calloc(1, (size_t)total) : NULL;
    if (!s->scratch) {
        garlic_error_set(err, GARLIC_ENOMEM,
                         "run state: out of memory (%s for %u positions, "
                         "batch %u)",
                         "scratch", cfg->n_ctx, cfg->max_batch);
        model_state_free(s);
        return NULL;
    }
    s->bytes = total;
    // LongRoPE: the long factors serve a context beyond the original one, the short ones any
    // other (llama.cpp chooses by the context size the same way).
    s->rope_freqs = m->rope_freqs          ? m->rope_freqs
        : cfg->n_ctx > m->hp.rope_ctx_orig ? m->rope_long
                                           : m->rope_short;
    uint8_t *p = s->scratch +
        (SCRATCH_ALIGN - (uintptr_t)s->scratch % SCRATCH_ALIGN) % SCRATCH_ALIGN;
    for (int i = 0; i < N_SCRATCH; i++, p += sizes[i - 1])
        *slots[i] = p;
    model_moe_scratch_layout(&m->hp, cfg->max_batch, moe_act_stride(&m->hp, cfg), &s->moe,
                             s->moe_base);
    s->host = (model_exec){.x = s->x,
                           .xb = s->xb,
                           .q = s->q,
                           .k = s->k,
                           .v = s->v,
                           .hb = s->hb,
                           .hb2 = s->hb2,
                           .logits = s->logits};
    s->flat_cap = (size_t)flat_entries(cfg);
    // A batch's tables: at most every sequence reads n_ctx blocks of each kind.
    uint64_t most = 3 * (uint64_t)cfg->max_batch + 2 * (uint64_t)cfg->max_batch * (cfg->n_ctx + 1);
    s->flat_max = most < (UINT64_C(1) << 30) ? most : UINT64_C(1) << 30;
    if (!(s->host.be = s->cpu_be = model_cpu_backend_new(s, err)) ||
        (cfg->device && device_setup(s, cfg, sizes, err))) {
        model_state_free(s);
        return NULL;
    }
    return s;
}

void model_state_free(model_state *s)
{
    if (!s)
        return;
    if (s->device) {
        backend *d = s->device; // (its KV rows end with their pool: kv_mirror.gone)
        for (uint32_t l = 0; l <= s->m->hp.n_layer; l++) {
            const model_tensor *t[DEVICE_TENSORS];
            for (int i = 0, n = device_tensors(s, l, t); i < n; i++)
                d->ops->drop(d, t[i]);
        }
        float *bufs[] = {s->dev.x, s->dev.xb, s->dev.q,   s->dev.k,
                         s->dev.v, s->dev.hb, s->dev.hb2, s->dev.logits};
        for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
            if (bufs[i])
                d->ops->release(d, bufs[i]);
    }
    backend_free(s->cpu_be);
    if (s->own_pool)
        thread_pool_free(s->pool);
    if (s->flat_owned)
        garlic_free(s->flat);
    garlic_free(s->scratch);
    garlic_free(s);
}

uint64_t model_state_bytes(const model_state *s) { return s->bytes; }

const float *model_state_hidden(const model_state *s) { return s->x; }

uint32_t model_state_n_ctx(const model_state *s) { return s->n_ctx; }

uint32_t model_state_max_batch(const model_state *s) { return s->max_batch; }

uint32_t model_state_logit_rows(const model_state *s) { return s->logit_rows; }

const model *model_state_model(const model_state *s) { return s->m; }

// Converts the shared input rows of a group once per distinct activation format.
typedef struct convert_job {
    model_state *s;
    const float *in; // (n_tok, in_stride) the shared input
    uint64_t in_stride;
    uint32_t n_tok;
    const model_matmul_item *items;
    const int *act; // (n_items) which act[] buffer each item's input is converted into
    int n_items;
} convert_job;

static void convert_worker(void *ctx, int ith, int nth)
{
    convert_job *job = ctx;
    for (int i = 0; i < job->n_items; i++) {
        const model_matmul_item *it = &job->items[i];
        bool owner = true; // convert once per distinct buffer
        for (int j = 0; j < i; j++)
            owner &= job->act[j] != job->act[i];
        // Rows are packed at the kernel's row size, as kernel_matmul reads them. A matrix
        // whose columns are permuted (act-order GPTQ) reads its input in that order.
        size_t stride = kernel_act_row_size(it->w->type, (int64_t)it->w->n_in);
        const int32_t *perm = it->w->perm;
        float *row = job->s->gather + (size_t)ith * job->s->gather_stride;
        for (uint32_t b = (uint32_t)ith; owner && b < job->n_tok; b += (uint32_t)nth) {
            const float *in = job->in + b * job->in_stride;
            for (uint64_t c = 0; perm && c < it->w->n_in; c++)
                row[c] = in[perm[c]];
            kernel_act_convert(it->w->type, perm ? row : in, job->s->act[job->act[i]] + b * stride,
                               (int64_t)it->w->n_in);
        }
    }
}

void model_matmul_group(model_state *s, const float *in, uint64_t in_stride, uint32_t n_tok,
                        const model_matmul_item *items, int n_items)
{
    int act[MAX_GROUP];
    model_mat_item mats[MAX_GROUP];
    for (int i = 0; i < n_items; i++) {
        act[i] = i;
        for (int j = 0; j < i; j++)
            if (kernel_act_type(items[j].w->type) == kernel_act_type(items[i].w->type) &&
                items[j].w->perm == items[i].w->perm && act[i] == i)
                act[i] = act[j];
    }
    // Converting a few rows costs less than waking the pool: decode steps do it inline. So
    // does a whole product too small to pay for the pool's wake-up and barrier (the layers of
    // a tiny model), which keeps overhead-bound decoding on one core.
    uint64_t work = 0;
    for (int i = 0; i < n_items; i++) {
        work += items[i].w->n_out * items[i].w->n_in * n_tok;
        mats[i] = (model_mat_item){.w = items[i].w,
                                   .act = s->act[act[i]],
                                   .n_act = n_tok,
                                   .y = items[i].y,
                                   .ldy = items[i].ldy};
    }
    convert_job cj = {.s = s,
                      .in = in,
                      .in_stride = in_stride,
                      .n_tok = n_tok,
                      .items = items,
                      .act = act,
                      .n_items = n_items};
    if ((uint64_t)n_tok * items[0].w->n_in <= 16384 || work < INLINE_WORK)
        convert_worker(&cj, 0, 1);
    else
        thread_pool_run(s->pool, convert_worker, &cj);
    model_matmul_mats(s, mats, n_items, n_tok <= DECODE_ROWS);
    for (int i = 0; i < n_items; i++) {
        const model_matmul_item *it = &items[i];
        for (uint32_t b = 0; it->bias && b < n_tok; b++)
            for (uint64_t r = 0; r < it->w->n_out; r++)
                it->y[b * it->ldy + r] += it->bias[r];
    }
}

void model_matmul(model_state *s, const model_tensor *w, const float *in, uint64_t in_stride,
                  uint32_t n_tok, float *y, uint64_t ldy)
{
    model_matmul_item item = {.w = w, .y = y, .ldy = ldy};
    model_matmul_group(s, in, in_stride, n_tok, &item, 1);
}

typedef struct mats_job {
    const model_mat_item *items;
    int n_items;
    int64_t chunk; // rows a thread takes at a time
    atomic_int next;
} mats_job;

static void mats_worker(void *ctx, int ith, int nth)
{
    (void)ith, (void)nth;
    mats_job *job = ctx;
    int64_t chunk = job->chunk;
    for (;;) {
        // Chunk c counts through each item's rows in turn (an item's last chunk may be short).
        int64_t r0 = atomic_fetch_add_explicit(&job->next, 1, memory_order_relaxed) * chunk;
        int i = 0;
        for (; i < job->n_items && r0 >= (int64_t)job->items[i].w->n_out; i++)
            r0 -= ((int64_t)job->items[i].w->n_out + chunk - 1) / chunk * chunk;
        if (i == job->n_items)
            return;
        const model_mat_item *it = &job->items[i];
        const model_tensor *w = it->w;
        int64_t r1 = r0 + chunk < (int64_t)w->n_out ? r0 + chunk : (int64_t)w->n_out;
        (w->packed ? kernel_matmul_packed : kernel_matmul)(
            w->type, (const uint8_t *)w->data + it->mat * w->mat_bytes, (int64_t)w->n_in, r0, r1,
            it->act, (int64_t)it->n_act, it->y, (int64_t)it->ldy);
    }
}

void model_matmul_mats(model_state *s, const model_mat_item *items, int n_items, bool decode)
{
    uint64_t rows = 0, work = 0, most = 0;
    for (int i = 0; i < n_items; i++) {
        rows += items[i].w->n_out;
        work += items[i].w->n_out * items[i].w->n_in * items[i].n_act;
        most = items[i].w->n_out > most ? items[i].w->n_out : most;
    }
    // Chunks of a multiple of CHUNK_ALIGN rows; one thread alone takes each matrix whole.
    uint64_t nth = work < INLINE_WORK ? 1 : (uint64_t)thread_pool_size(s->pool);
    uint64_t per = decode ? DECODE_CHUNKS : BATCH_CHUNKS;
    uint64_t chunk = rows / (nth * per) / CHUNK_ALIGN * CHUNK_ALIGN;
    chunk = nth == 1 ? most : chunk < CHUNK_ALIGN ? CHUNK_ALIGN : chunk;
    mats_job job = {.items = items, .n_items = n_items, .chunk = (int64_t)chunk};
    atomic_init(&job.next, 0);
    if (nth == 1)
        mats_worker(&job, 0, 1);
    else
        thread_pool_run(s->pool, mats_worker, &job);
}

void model_rmsnorm(float *out, const float *x, const float *weight, uint64_t n, float eps)
{
    double ss = 0;
    for (uint64_t i = 0; i < n; i++)
        ss += (double)x[i] * x[i];
    float scale = (float)(1.0 / sqrt(ss / (double)n + eps));
    for (uint64_t i = 0; i < n; i++)
        out[i] = x[i] * scale * weight[i];
}

// RMS norms of a batch's rows (model_cpu_rmsnorm) or a sum x += y (model_cpu_add: weight
// NULL), ROW_CHUNK rows or ADD_CHUNK values at a time, taken by threads in turn. On the
// calling thread alone they kept the pool's other threads idle meanwhile (1.4 % and 0.5 % of
// a Q4_0 prompt's samples on two threads).
typedef struct rows_job {
    float *out;          // (rows, dim) the norms; add: x
    const float *x;      // (rows, dim); add: y
    const float *weight; // (dim) the norm's weight; NULL: add
    size_t rows, dim;    // add: n values in one row
    float eps;
    atomic_size_t next; // the next row (add: value) not taken
} rows_job;

enum { ROW_CHUNK = 8, ADD_CHUNK = 8192 };

static void rows_worker(void *ctx, int ith, int nth)
{
    (void)ith, (void)nth;
    rows_job *job = ctx;
    size_t step = job->weight ? ROW_CHUNK : ADD_CHUNK;
    size_t total = job->weight ? job->rows : job->dim;
    for (size_t i0;
         (i0 = atomic_fetch_add_explicit(&job->next, step, memory_order_relaxed)) < total;) {
        size_t end = total - i0 < step ? total : i0 + step;
        if (!job->weight) {
            for (size_t i = i0; i < end; i++)
                job->out[i] += job->x[i];
            continue;
        }
        for (size_t r = i0; r < end; r++)
            model_rmsnorm(job->out + r * job->dim, job->x + r * job->dim, job->weight, job->dim,
                          job->eps);
    }
}

static void rows_run(model_state *s, rows_job *job, uint64_t work)
{
    atomic_init(&job->next, 0);
    if (work < INLINE_WORK)
        rows_worker(job, 0, 1);
    else
        thread_pool_run(s->pool, rows_worker, job);
}

void model_cpu_rmsnorm(model_state *s, float *out, const float *x, const float *weight,
                       uint32_t rows, uint32_t dim, float eps)
{
    rows_job job = {.out = out, .x = x, .weight = weight, .rows = rows, .dim = dim, .eps = eps};
    rows_run(s, &job, (uint64_t)rows * dim * 4); // a sum of squares and a scaling a value
}

void model_cpu_add(model_state *s, float *x, const float *y, size_t n)
{
    rows_job job = {.out = x, .x = y, .rows = 1, .dim = n};
    rows_run(s, &job, n);
}

// Fills RoPE table `table` (cos and sin of each batch position and pair, times the magnitude
// mscale): angle_i = pos * base^(-2i / n_rot), divided by the state's rope_freqs[i] when it
// has them, then scaled by freq_scale (linear) or blended (YaRN; its ramp depends on the
// base). The sliding layers' table (Gemma 3) has its own base and no scaling.
static void rope_table(model_state *s, uint32_t table, double base, double freq_scale, float mscale,
                       const uint32_t *pos_of, uint32_t n_tok)
{
    const model_hparams *hp = &s->m->hp;
    uint32_t half = hp->n_rot / 2;
    float *cos_t = s->rope_cos + (size_t)table * s->max_batch * half,
          *sin_t = s->rope_sin + (size_t)table * s->max_batch * half;
    double ext = 0, low = 0, high = 0;
    if (hp->rope_scaling == MODEL_ROPE_SCALING_YARN) {
        // The dimensions whose wavelength fits beta_fast (32) / beta_slow (1) rotations in the
        // original context bound the ramp between interpolation and extrapolation.
        double denom = 2.0 * log(base);
        double ctx = hp->rope_ctx_orig ? hp->rope_ctx_orig : hp->n_ctx_train;
        low = floor(hp->n_rot * log(ctx / (32.0 * 2.0 * M_PI)) / denom);
        high = ceil(hp->n_rot * log(ctx / (1.0 * 2.0 * M_PI)) / denom);
        low = low < 0 ? 0 : low;
        high = high > hp->n_rot - 1 ? hp->n_rot - 1 : high;
        ext = 1.0;
    }
    for (uint32_t b = 0; b < n_tok; b++) {
        double pos = (double)pos_of[b];
        for (uint32_t i = 0; i < half; i++) {
            double extrap = pos * pow(base, -2.0 * i / hp->n_rot);
            if (s->rope_freqs)
                extrap /= s->rope_freqs[i];
            double interp = freq_scale * extrap, theta = interp;
            if (ext > 0) {
                double y = ((double)i - low) / (high - low > 0.001 ? high - low : 0.001);
                double ramp = (1.0 - (y < 0 ? 0 : y > 1 ? 1 : y)) * ext;
                theta = interp * (1 - ramp) + extrap * ramp;
            }
            cos_t[b * half + i] = (float)cos(theta) * mscale;
            sin_t[b * half + i] = (float)sin(theta) * mscale;
        }
    }
}

void model_rope_apply(float *x, uint32_t n_heads, uint32_t head_stride, uint32_t n_rot, bool neox,
                      const float *cos_t, const float *sin_t)
{
    uint32_t half = n_rot / 2;
    for (uint32_t h = 0; h < n_heads; h++) {
        float *v = x + (size_t)h * head_stride;
        for (uint32_t i = 0; i < half; i++) {
            uint32_t a = neox ? i : 2 * i, b = neox ? i + half : 2 * i + 1;
            float x0 = v[a], x1 = v[b];
            v[a] = x0 * cos_t[i] - x1 * sin_t[i];
            v[b] = x0 * sin_t[i] + x1 * cos_t[i];
        }
    }
}

typedef struct attention_job {
    model_state *s;
    const backend_attention *a;
    const float *q; // (n_tok, n_head * head_dim_k) the queries
    float *out;     // (n_tok, n_head * head_dim_v) the heads' outputs
    uint32_t layer;
    uint32_t part_heads; // query heads of a group one work item takes (the group, or a share
                         // of it when (run, KV head) pairs alone would leave threads idle)
    uint32_t n_runs;     // runs of tokens, s->att_runs[0..n_runs]
    atomic_uint next;    // the next work item not taken
} attention_job;

// Offset in bytes of value `first` inside a cache row of type.
static size_t value_offset(kv_type type, uint32_t first)
{
    uint64_t bytes = 0;
    kv_row_size(type, first, &bytes);
    return (size_t)bytes;
}

// Loads n cache rows starting at row (rows are contiguous, row_values values of type each)
// as floats: the whole rows when heads are narrow (one long conversion beats many short
// ones), else only the hd values from value `first` (a head's start) of each row. Returns
// the first row's head and sets *pitch to the floats between rows. F32 rows are read in place.
static const float *load_rows(kv_type type, const uint8_t *row, size_t row_bytes,
                              uint32_t row_values, uint32_t first, uint32_t hd, uint32_t n,
                              float *out, uint32_t *pitch)
{
    if (type == KV_TYPE_F32) {
        *pitch = row_values;
        return (const float *)row + first;
    }
    if (hd < 32 || hd % 32) { // (a Q8_0 row splits only at its blocks of 32)
        kv_row_load(type, row, out, (uint64_t)n * row_values);
        *pitch = row_values;
        return out + first;
    }
    size_t off = value_offset(type, first);
    for (uint32_t i = 0; i < n; i++)
        kv_row_load(type, row + (size_t)i * row_bytes + off, out + (size_t)i * hd, hd);
    *pitch = hd;
    return out;
}

// The positions [lo, hi) token b attends: causal, 0..pos (otherwise every position of its
// sequence, whose whole input is in this batch), and a sliding-window layer only the last
// `window` of them (the token's own included).
static void token_span(const model_flat_batch *fb, uint32_t b, uint32_t window, uint32_t *lo,
                       uint32_t *hi)
{
    *hi = fb->n_pos[b];
    *lo = window && *hi > window ? *hi - window : 0;
}

// Attention as flash attention computes it, one work item at a time, taken by threads in
// turn (a thread that was descheduled leaves its items to the others). An item is a run of
// consecutive tokens of one sequence (s->att_runs), one KV head and its group's query heads
// (or a part of them): a tile of query rows that meets the pair's K and V rows once, instead
// of once per token. The positions go in chunks of ATT_CHUNK, aligned to multiples of it;
// per chunk:
//   1. scores: the chunk's K rows, ATT_ROWS at a time inside one cache block, are converted to
//      floats once (a Q8_0 cache's are not: they meet the queries converted to Q8_0, once per
//      item, in the int8 product of the blocks, as llama.cpp's flash attention does) and
//      multiplied with every query row of the tile;
//   2. online softmax, each query row over its own token's positions in the chunk: the running
//      maximum, exp(score - maximum) in place, the running sum, and the row's output so far
//      rescaled when the maximum grew;
//   3. values: the chunk's V rows (converted once; a Q8_0 cache's summed from their codes)
//      added to each token's output rows with its weights, rows in order.
// At the end each output is divided by its sum (a head's sink is one more logit, with no
// value). A query row's arithmetic depends only on its own token's positions (the chunks are
// aligned to positions, a row's ranges are its token's), so a token's result is the same in
// every batch and tile. No buffer grows with the context: a thread holds one tile's queries,
// one chunk of scores and converted rows, and the tile's outputs. Multi-head latent attention
// keeps no V rows: a head's values are the first hd_v values of its K row (the latent),
// which the float path reads from the K rows it converted.
static void attention_worker(void *ctx, int ith, int nth)
{
    attention_job *job = ctx;
    model_state *s = job->s;
    const model_flat_batch *fb = s->fb;
    const model_hparams *hp = &s->m->hp;
    const kv_cache_config *kc = kv_cache_get_config(s->kv);
    uint32_t group = hp->n_head / hp->n_head_kv, hd_k = hp->head_dim_k, hd_v = hp->head_dim_v;
    uint32_t bt = kc->block_tokens;
    uint32_t k_values = hp->n_head_kv * hd_k, v_values = hp->n_head_kv * hd_v;
    uint32_t row_floats = k_values > v_values ? k_values : v_values;
    float *rows = s->kv_row + (size_t)ith * ATT_CHUNK * row_floats;
    att_tile t;
    att_tile_layout(hp, s->att + (size_t)ith * att_tile_layout(hp, NULL, NULL), &t);
    size_t q_dim = (size_t)hp->n_head * hd_k, o_dim = (size_t)hp->n_head * hd_v;
    bool v_in_k = model_hparams_mla(hp);
    size_t k_stride = kv_cache_k_row_bytes(s->kv);
    size_t v_stride = v_in_k ? k_stride : kv_cache_v_row_bytes(s->kv);
    uint32_t v_row_values = v_in_k ? k_values : v_values, v_head = v_in_k ? hd_k : hd_v;
    uint32_t window = job->a->window;
    const float *sinks = job->a->sinks ? job->a->sinks->data : NULL; // (n_head) or NULL
    uint32_t kind = job->a->window_blocks;
    uint32_t parts = (group + job->part_heads - 1) / job->part_heads;
    uint32_t per_run = hp->n_head_kv * parts;
    // A Q8_0 cache's K rows meet the queries converted to Q8_0 and its V rows are summed
    // from their codes; q8_bytes is one head's converted query and one head's share of a K row.
    bool q8_rows = kc->type == KV_TYPE_Q8_0 && hd_k % 32 == 0;
    bool q8_values = kc->type == KV_TYPE_Q8_0 && hd_v % 32 == 0 && v_head % 32 == 0;
    // An F16 cache's K rows are read as they lie (converted as the product loads them), and
    // so are its V rows for short runs of tokens; longer runs, which read each V row once per
    // token, convert it once first.
    bool f16_rows = kc->type == KV_TYPE_F16;
    // V read from the K rows converted to floats
    bool values_in_rows = v_in_k && !q8_rows && !q8_values && !f16_rows;
    size_t q8_bytes = (size_t)hd_k / 32 * 34;
    uint8_t *q8 = s->att_q + (size_t)ith * att_tile_rows(hp) * q8_bytes;
    const float *seg_rows[ATT_CHUNK]; // the chunk's converted K rows, segment by segment
    uint32_t seg_pitch[ATT_CHUNK];
    (void)nth;
    for (uint32_t idx; (idx = atomic_fetch_add_explicit(&job->next, 1, memory_order_relaxed)) <
         job->n_runs * per_run;) {
        // The last runs first: a prompt's last tokens attend the most positions.
        uint32_t run = job->n_runs - 1 - idx / per_run;
        uint32_t kh = idx % per_run / parts, part = idx % parts;
        uint32_t b0 = s->att_runs[run], n_run = s->att_runs[run + 1] - b0;
        // This item's query heads: [g0, g0 + heads) of the KV head's group; query row
        // i * heads + g is token b0 + i's head g0 + g.
        uint32_t g0 = part * job->part_heads;
        uint32_t heads = group - g0 < job->part_heads ? group - g0 : job->part_heads;
        uint32_t n_q = n_run * heads, lo_all = UINT32_MAX, hi_all = 0;
        for (uint32_t i = 0; i < n_run; i++) {
            uint32_t lo, hi;
            token_span(fb, b0 + i, window, &lo, &hi);
            lo_all = lo < lo_all ? lo : lo_all;
            hi_all = hi > hi_all ? hi : hi_all;
            for (uint32_t g = 0; g < heads; g++) {
                const float *q = job->q + (b0 + i) * q_dim + ((size_t)kh * group + g0 + g) * hd_k;
                size_t r = (size_t)i * heads + g;
                if (q8_rows)
                    kernel_act_convert(TENSOR_TYPE_Q8_0, q, q8 + r * q8_bytes, hd_k);
                else
                    memcpy(t.q + r * hd_k, q, hd_k * sizeof(float));
                t.max[r] = -INFINITY;
                t.sum[r] = 0.0f;
            }
        }
        memset(t.o, 0, (size_t)n_q * hd_v * sizeof(float));
        const uint32_t *table = fb->tables + fb->table_start[2 * fb->seq[b0] + kind];
        bool f16_values = f16_rows && !q8_values && n_run < ATT_CONVERT_RUN;
        for (uint32_t c0 = lo_all / ATT_CHUNK * ATT_CHUNK; c0 < hi_all; c0 += ATT_CHUNK) {
            uint32_t start = c0 > lo_all ? c0 : lo_all;
            uint32_t end = hi_all - c0 < ATT_CHUNK ? hi_all : c0 + ATT_CHUNK;
            // 1. Scores of every query row over the positions [start, end).
            uint32_t n, seg = 0;
            for (uint32_t t0 = start; t0 < end; t0 += n, seg++) {
                n = end - t0 < ATT_ROWS ? end - t0 : ATT_ROWS;
                n = bt - t0 % bt < n ? bt - t0 % bt : n; // stay inside one block
                const uint8_t *base = kv_cache_k_row(s->kv, job->layer, table[t0 / bt], t0 % bt);
                float *score = t.score + (t0 - c0);
                if (q8_rows) {
                    kernel_dot_rows_q8_0(q8, q8_bytes, n_q, base + q8_bytes * kh, k_stride, n, hd_k,
                                         hp->attn_scale, score, ATT_CHUNK);
                    continue;
                }
                if (f16_rows) {
                    kernel_dot_rows_f16(t.q, hd_k, n_q, (const uint16_t *)base + kh * hd_k,
                                        k_stride / 2, n, hd_k, hp->attn_scale, score, ATT_CHUNK);
                    continue;
                }
                seg_rows[seg] = load_rows(kc->type, base, k_stride, k_values, kh * hd_k, hd_k, n,
                                          rows + (size_t)(t0 - c0) * row_floats, &seg_pitch[seg]);
                kernel_dot_rows_f32(t.q, hd_k, n_q, seg_rows[seg], seg_pitch[seg], n, hd_k,
                                    hp->attn_scale, score, ATT_CHUNK);
            }
            // 2. Online softmax, each row over its token's positions in the chunk.
            for (uint32_t i = 0; i < n_run; i++) {
                uint32_t lo, hi;
                token_span(fb, b0 + i, window, &lo, &hi);
                uint32_t a = start > lo ? start : lo, e = end < hi ? end : hi;
                for (uint32_t g = 0; a < e && g < heads; g++) {
                    size_t r = (size_t)i * heads + g;
                    float *score = t.score + r * ATT_CHUNK + (a - c0);
                    float max = kernel_max_f32(score, e - a);
                    max = max > t.max[r] ? max : t.max[r];
                    float scale = t.max[r] == -INFINITY ? 0.0f : expf(t.max[r] - max);
                    t.sum[r] = t.sum[r] * scale + kernel_exp_sum_f32(score, e - a, max);
                    t.max[r] = max;
                    float *o = t.o + r * hd_v;
                    for (uint32_t d = 0; scale != 1.0f && d < hd_v; d++)
                        o[d] *= scale;
                }
            }
            // 3. Each token's weighted sum of the values of its positions in the chunk.
            seg = 0;
            for (uint32_t t0 = start; t0 < end; t0 += n, seg++) {
                n = end - t0 < ATT_ROWS ? end - t0 : ATT_ROWS;
                n = bt - t0 % bt < n ? bt - t0 % bt : n;
                uint32_t block = table[t0 / bt], pitch = 0;
                const uint8_t *base = v_in_k ? kv_cache_k_row(s->kv, job->layer, block, t0 % bt)
                                             : kv_cache_v_row(s->kv, job->layer, block, t0 % bt);
                const float *v = NULL;
                if (q8_values)
                    base += (size_t)kh * v_head / 32 * 34;
                else if (f16_values)
                    base += (size_t)kh * v_head * 2;
                else if (values_in_rows)
                    v = seg_rows[seg], pitch = seg_pitch[seg];
                else
                    v = load_rows(kc->type, base, v_stride, v_row_values, kh * v_head, hd_v, n,
                                  rows + (size_t)(t0 - c0) * row_floats, &pitch);
                for (uint32_t i = 0; i < n_run; i++) {
                    uint32_t lo, hi;
                    token_span(fb, b0 + i, window, &lo, &hi);
                    uint32_t a = t0 > lo ? t0 : lo, e = t0 + n < hi ? t0 + n : hi;
                    if (a >= e)
                        continue;
                    float *o = t.o + (size_t)i * heads * hd_v;
                    const float *w = t.score + (size_t)i * heads * ATT_CHUNK + (a - c0);
                    if (q8_values)
                        kernel_axpy_rows_q8_0(o, hd_v, heads, w, ATT_CHUNK,
                                              base + (size_t)(a - t0) * v_stride, v_stride, e - a,
                                              hd_v);
                    else if (f16_values)
                        kernel_axpy_rows_f16(o, hd_v, heads, w, ATT_CHUNK,
                                             (const uint16_t *)(base + (size_t)(a - t0) * v_stride),
                                             v_stride / 2, e - a, hd_v);
                    else
                        kernel_axpy_rows_f32(o, hd_v, heads, w, ATT_CHUNK,
                                             v + (size_t)(a - t0) * pitch, pitch, e - a, hd_v);
                }
            }
        }
        for (uint32_t i = 0; i < n_run; i++) {
            float *out = job->out + (b0 + i) * o_dim + ((size_t)kh * group + g0) * hd_v;
            for (uint32_t g = 0; g < heads; g++) {
                size_t r = (size_t)i * heads + g;
                float scale = 1.0f, sum = t.sum[r];
                if (sinks) {
                    float sink = sinks[kh * group + g0 + g];
                    float max = sink > t.max[r] ? sink : t.max[r];
                    scale = expf(t.max[r] - max);
                    sum = sum * scale + expf(sink - max);
                }
                scale /= sum;
                const float *o = t.o + r * hd_v;
                for (uint32_t d = 0; d < hd_v; d++)
                    out[(size_t)g * hd_v + d] = o[d] * scale;
            }
        }
    }
}

// The attention parameters of layer l.
static backend_attention layer_attention(const model_state *s, uint32_t l)
{
    const model_hparams *hp = &s->m->hp;
    const model_layer *L = &s->m->layers[l];
    return (backend_attention){.layer = l,
                               .window_blocks = kv_cache_layer_is_window(s->kv, l),
                               .window = L->window,
                               .n_head = hp->n_head,
                               .n_head_kv = hp->n_head_kv,
                               .head_dim_k = hp->head_dim_k,
                               .head_dim_v = hp->head_dim_v,
                               .scale = hp->attn_scale,
                               .sinks = L->sinks.data ? &L->sinks : NULL};
}

void model_cpu_rope(model_state *s, float *x, uint32_t n_heads, uint32_t head_dim, uint32_t n_rot,
                    bool neox, uint32_t table)
{
    uint32_t half = n_rot / 2;
    for (uint32_t b = 0; b < s->fb->n_tokens; b++) {
        size_t row = ((size_t)table * s->max_batch + b) * half;
        model_rope_apply(x + (size_t)b * n_heads * head_dim, n_heads, head_dim, n_rot, neox,
                         s->rope_cos + row, s->rope_sin + row);
    }
}

// The queries, keys and values of layer l from the normed rows in xb: q, k, v projections
// (+ biases), per-head norms, RoPE.
static void qkv_block(model_state *s, const model_exec *e, uint32_t l, uint32_t n_tok)
{
    const model *m = s->m;
    const model_hparams *hp = &m->hp;
    const model_layer *L = &m->layers[l];
    backend *be = e->be;
    size_t q_dim = (size_t)hp->n_head * hp->head_dim_k;
    size_t k_dim = (size_t)hp->n_head_kv * hp->head_dim_k,
           v_dim = (size_t)hp->n_head_kv * hp->head_dim_v;
    backend_matmul qkv[3] = {
        {.w = &L->wq, .y = e->q, .ldy = q_dim, .bias = L->bq.data ? &L->bq : NULL},
        {.w = &L->wk, .y = e->k, .ldy = k_dim, .bias = L->bk.data ? &L->bk : NULL},
        {.w = &L->wv, .y = e->v, .ldy = v_dim, .bias = L->bv.data ? &L->bv : NULL},
    };
    be->ops->matmul(be, e->xb, hp->dim, n_tok, qkv, 3);
    // Per-head norms (Qwen3's q_norm / k_norm): every head of every token is one row.
    if (L->q_norm.data)
        be->ops->rmsnorm(be, e->q, e->q, &L->q_norm, n_tok * hp->n_head, hp->head_dim_k,
                         hp->rms_eps);
    if (L->k_norm.data)
        be->ops->rmsnorm(be, e->k, e->k, &L->k_norm, n_tok * hp->n_head_kv, hp->head_dim_k,
                         hp->rms_eps);
    be->ops->rope(be, e->q, hp->n_head, hp->head_dim_k, hp->n_rot, m->arch->rope_neox, L->rope);
    be->ops->rope(be, e->k, hp->n_head_kv, hp->head_dim_k, hp->n_rot, m->arch->rope_neox, L->rope);
}

void model_cpu_kv_store(model_state *s, const backend_attention *a, const float *k, const float *v)
{
    const model_flat_batch *fb = s->fb;
    size_t k_dim = (size_t)a->n_head_kv * a->head_dim_k,
           v_dim = (size_t)a->n_head_kv * a->head_dim_v;
    // Each token's K (and V) row goes into its position's block of the layer's kind: the
    // sequence's full table, or its window table for a window layer.
    uint32_t bt = kv_cache_get_config(s->kv)->block_tokens;
    for (uint32_t b = 0; b < fb->n_tokens; b++) {
        const uint32_t *table = fb->tables + fb->table_start[2 * fb->seq[b] + a->window_blocks];
        kv_cache_store(s->kv, a->layer, table[fb->pos[b] / bt], fb->pos[b] % bt, k + b * k_dim,
                       v ? v + b * v_dim : NULL);
    }
}

void model_cpu_attention(model_state *s, const backend_attention *a, const float *q, float *out)
{
    const model_hparams *hp = &s->m->hp;
    const model_flat_batch *fb = s->fb;
    uint32_t n_tok = fb->n_tokens, group = hp->n_head / hp->n_head_kv;
    // Runs: consecutive tokens of one sequence, as many as one tile of query rows holds.
    uint32_t run_max = att_tile_rows(hp) / group, n_runs = 0;
    for (uint32_t b = 0; b < n_tok; b++)
        if (b == 0 || fb->seq[b] != fb->seq[b - 1] || b - s->att_runs[n_runs - 1] == run_max)
            s->att_runs[n_runs++] = b;
    s->att_runs[n_runs] = n_tok;
    // Few (run, KV head) pairs (decoding a model of one KV head, as latent attention is)
    // split their groups of query heads so that every thread has work; each head's result
    // does not depend on the split.
    uint32_t pairs = n_runs * hp->n_head_kv;
    uint32_t nth = (uint32_t)thread_pool_size(s->pool), parts = (nth + pairs - 1) / pairs;
    parts = parts < 1 ? 1 : parts > group ? group : parts;
    attention_job job = {.s = s,
                         .a = a,
                         .q = q,
                         .out = out,
                         .layer = a->layer,
                         .part_heads = (group + parts - 1) / parts,
                         .n_runs = n_runs};
    atomic_init(&job.next, 0);
    uint64_t work = 0; // multiply-adds: every token's heads over its positions, K and V
    for (uint32_t b = 0; b < n_tok; b++) {
        uint32_t lo, hi;
        token_span(fb, b, a->window, &lo, &hi);
        work += (uint64_t)(hi - lo) * hp->n_head * (hp->head_dim_k + hp->head_dim_v);
    }
    if (work < INLINE_WORK)
        attention_worker(&job, 0, 1);
    else
        thread_pool_run(s->pool, attention_worker, &job);
}

// The attention proper of layer l over the queries, keys and values in q, k, v (MLA: the
// absorbed queries and the K rows): stores each token's K (and V) row in the cache, then
// attends, into xb.
static void attend(model_state *s, const model_exec *e, uint32_t l)
{
    backend_attention a = layer_attention(s, l);
    e->be->ops->kv_store(e->be, &a, e->k, s->m->arch->mla ? NULL : e->v);
    e->be->ops->attention(e->be, &a, e->q, e->xb);
}

// The n rows of a matrix of `width` columns whose parts (dist_part_first's split of the
// columns between size ranks) lie one after another in parts, each n rows of its columns,
// copied into rows of y (ldy floats apart).
static void rows_of_parts(const float *parts, float *y, uint64_t ldy, uint32_t n, uint64_t width,
                          uint32_t size)
{
    for (uint32_t r = 0; r < size; r++) {
        uint64_t c0 = dist_part_first(width, r, size), w = dist_part_size(width, r, size);
        const float *part = parts + n * c0;
        for (uint32_t t = 0; t < n; t++)
            memcpy(y + t * ldy + c0, part + t * w, w * sizeof(float));
    }
}

// y (n_tok rows of w's whole output, on every rank) = w * x (+ bias) for a product split by
// output rows (MODEL_TP_BY_OUTPUT): x holds this rank's part of each input row (n_tok rows
// of its columns, one after another), which is first gathered whole in place (x holds
// n_tok rows of w->n_in values after); then each rank computes its rows of w and the rows
// are gathered. The gathers go through s->tp_parts, in pieces of tokens whose floats MPI's
// int counts can hold.
static void gathered_product(model_state *s, const model_exec *e, const model_tensor *w,
                             const model_tensor *bias, float *x, float *y, uint32_t n_tok)
{
    const model *m = s->m;
    uint32_t rank = m->tp_rank, size = m->tp_size;
    uint64_t in = w->n_in, out = m->hp.dim, mine = dist_part_size(in, rank, size);
    uint64_t wide = in > out ? in : out, piece = INT_MAX / wide;
    // The input, from the last piece to the first: the whole rows of a piece lie at or
    // after its parts in x, and parts of earlier pieces are not yet overwritten.
    for (uint32_t end = n_tok; end > 0;) {
        uint32_t t0 = end > piece ? end - (uint32_t)piece : 0, n = end - t0;
        memcpy(s->tp_parts + n * dist_part_first(in, rank, size), x + t0 * mine,
               n * mine * sizeof(float));
        dist_all_gather_parts(s->tp_parts, in, n);
        rows_of_parts(s->tp_parts, x + t0 * in, in, n, in, size);
        end = t0;
    }
    // The output: this rank's rows into its part, then every rank's.
    for (uint32_t t0 = 0; t0 < n_tok; t0 += (uint32_t)piece) {
        uint32_t n = n_tok - t0 < piece ? n_tok - t0 : (uint32_t)piece;
        backend_matmul mm = {.w = w,
                             .y = s->tp_parts + n * dist_part_first(out, rank, size),
                             .ldy = w->n_out,
                             .bias = bias && bias->data ? bias : NULL};
        e->be->ops->matmul(e->be, x + t0 * in, in, n, &mm, 1);
        dist_all_gather_parts(s->tp_parts, out, n);
        rows_of_parts(s->tp_parts, y + t0 * out, out, n, out, size);
    }
}

// The attention half of layer l: x += wo * attention(rope(q), rope(k), v); under multi-head
// latent attention, x += wo * (each head's attn_v_b * attention over the latent).
static void attention_block(model_state *s, const model_exec *e, uint32_t l, uint32_t n_tok)
{
    const model *m = s->m;
    const model_hparams *hp = &m->hp;
    const model_layer *L = &m->layers[l];
    backend *be = e->be;
    bool mla = m->arch->mla; // (the CPU's alone: model_state_new checks)
    size_t o_dim = (size_t)hp->n_head * hp->head_dim_v;
    be->ops->rmsnorm(be, e->xb, e->x, &L->attn_norm, n_tok, hp->dim, hp->rms_eps);
    if (mla)
        model_mla_qk(s, l, n_tok);
    else
        qkv_block(s, e, l, n_tok);
    attend(s, e, l);
    // The attention output is in xb (MLA: in the latent, each head's value then in q_head);
    // the projection (+ bias) lands in hb (wide enough), is normed where the architecture
    // norms block outputs, then added to the residual.
    const float *out = e->xb;
    if (mla) {
        model_mla_values(s, l, n_tok);
        out = s->q_head, o_dim = (size_t)hp->n_head * hp->head_dim_v_mla;
    }
    if (m->tp_size > 1 && L->tp_wo == MODEL_TP_BY_OUTPUT) { // every head's values, its rows
        if (out != e->xb) // (MLA: the values, in q_head, gather in xb, which is wide enough)
            memcpy(e->xb, out, (size_t)n_tok * o_dim * sizeof(float));
        gathered_product(s, e, &L->wo, &L->bo, e->xb, e->hb, n_tok);
    } else {
        backend_matmul wo = {
            .w = &L->wo, .y = e->hb, .ldy = hp->dim, .bias = L->bo.data ? &L->bo : NULL};
        be->ops->matmul(be, out, o_dim, n_tok, &wo, 1);
        if (m->tp_size > 1) // each rank's heads gave a part of the sum: add them together
            dist_all_reduce_sum(e->hb, (size_t)n_tok * hp->dim);
    }
    if (L->attn_post_norm.data)
        be->ops->rmsnorm(be, e->hb, e->hb, &L->attn_post_norm, n_tok, hp->dim, hp->rms_eps);
    be->ops->add(be, e->x, e->hb, (size_t)n_tok * hp->dim);
}

typedef struct gated_job {
    model_act act;
    float *gate;     // (n) in: gate projection; out: act(gate) * up
    const float *up; // (n), or NULL: GELU(gate) alone (BERT's ungated FFN)
    size_t n;
    atomic_size_t next; // the next chunk not taken
} gated_job;

// Values a gated_worker takes at a time (a multiple of every vector width).
enum { GATED_CHUNK = 8192 };

// gpt-oss's clamped SwiGLU: min(gate, 7) * sigmoid(1.702 min(gate, 7)) * (clamp(up, +-7) + 1),
// written as ggml's swiglu_oai computes it (the same min, clamp and operation order).
static void swiglu_oai(float *gate, const float *up, size_t n)
{
    const float alpha = 1.702f, limit = 7.0f;
    for (size_t i = 0; i < n; i++) {
        float x = limit < gate[i] ? limit : gate[i];
        float y = up[i] < -limit ? -limit : limit < up[i] ? limit : up[i];
        gate[i] = x / (1.0f + expf(alpha * -x)) * (y + 1.0f);
    }
}

// gate = act(gate) * up, GATED_CHUNK values at a time, chunks taken by threads in turn.
static void gated_worker(void *ctx, int ith, int nth)
{
    (void)ith, (void)nth;
    gated_job *job = ctx;
    for (size_t i0; (i0 = atomic_fetch_add_explicit(&job->next, GATED_CHUNK,
                                                    memory_order_relaxed)) < job->n;) {
        size_t n = job->n - i0 < GATED_CHUNK ? job->n - i0 : GATED_CHUNK;
        if (!job->up) // an ungated FFN (BERT): act(gate) alone
            kernel_gelu_f32(job->gate + i0, (int64_t)n);
        else if (job->act == MODEL_ACT_SILU)
            kernel_swiglu_f32(job->gate + i0, job->up + i0, (int64_t)n);
        else if (job->act == MODEL_ACT_GELU)
            kernel_geglu_f32(job->gate + i0, job->up + i0, (int64_t)n);
        else
            swiglu_oai(job->gate + i0, job->up + i0, n);
    }
}

void model_gated_act(model_state *s, model_act act, float *gate, const float *up, size_t n)
{
    gated_job job = {.act = act, .gate = gate, .up = up, .n = n};
    atomic_init(&job.next, 0);
    if (n * 16 < INLINE_WORK) // an expf and a few flops a value
        gated_worker(&job, 0, 1);
    else
        thread_pool_run(s->pool, gated_worker, &job);
}

// down * (act(gate * xb) * (up * xb)) over e's normed rows in xb, into xb, through hb and
// hb2 (gate->n_out wide). gathered: down is split by output rows under tensor parallelism
// (gathered_product), else it reads hb as it is.
static void gated_ffn(model_state *s, const model_exec *e, const model_tensor *gate,
                      const model_tensor *up, const model_tensor *down, bool gathered,
                      uint32_t n_tok)
{
    backend *be = e->be;
    uint64_t dim = s->m->hp.dim, width = gate->n_out;
    backend_matmul gate_up[2] = {
        {.w = gate, .y = e->hb, .ldy = width},
        {.w = up, .y = e->hb2, .ldy = width},
    };
    be->ops->matmul(be, e->xb, dim, n_tok, gate_up, 2);
    be->ops->gated_act(be, s->m->arch->act, e->hb, e->hb2, (size_t)n_tok * width);
    if (gathered) {
        gathered_product(s, e, down, NULL, e->hb, e->xb, n_tok);
        return;
    }
    backend_matmul d = {.w = down, .y = e->xb, .ldy = dim};
    be->ops->matmul(be, e->hb, width, n_tok, &d, 1);
}

void model_gated_ffn(model_state *s, const model_tensor *gate, const model_tensor *up,
                     const model_tensor *down, uint32_t n_tok)
{
    gated_ffn(s, &s->host, gate, up, down, false, n_tok);
}

// The feed-forward half of layer l: x += w_down * (act(w_gate * xn) * (w_up * xn)), or the
// experts' sum.
static void ffn_block(model_state *s, const model_exec *e, uint32_t l, uint32_t n_tok)
{
    const model_hparams *hp = &s->m->hp;
    const model_layer *L = &s->m->layers[l];
    backend *be = e->be;
    be->ops->rmsnorm(be, e->xb, e->x, &L->ffn_norm, n_tok, hp->dim, hp->rms_eps);
    bool experts = model_layer_has_experts(s->m, l);
    bool gathered = !experts && s->m->tp_size > 1 && L->tp_down == MODEL_TP_BY_OUTPUT;
    if (experts) // (the CPU's alone: model_state_new checks)
        model_moe_block(s, l, n_tok);
    else
        gated_ffn(s, e, &L->w_gate, &L->w_up, &L->w_down, gathered, n_tok);
    // each rank's share of the FFN (of every expert's width) gave a part of the sum
    if (s->m->tp_size > 1 && !gathered)
        dist_all_reduce_sum(e->xb, (size_t)n_tok * hp->dim);
    if (L->ffn_post_norm.data && !experts)
        be->ops->rmsnorm(be, e->xb, e->xb, &L->ffn_post_norm, n_tok, hp->dim, hp->rms_eps);
    be->ops->add(be, e->x, e->xb, (size_t)n_tok * hp->dim);
}

void model_layernorm(float *out, const float *x, const float *weight, const float *bias, uint64_t n,
                     float eps)
{
    double sum = 0;
    for (uint64_t i = 0; i < n; i++)
        sum += x[i];
    float mean = (float)(sum / (double)n);
    double ss = 0;
    for (uint64_t i = 0; i < n; i++) {
        float d = x[i] - mean;
        ss += (double)d * d;
    }
    float scale = 1.0f / sqrtf((float)(ss / (double)n) + eps);
    for (uint64_t i = 0; i < n; i++)
        out[i] = (x[i] - mean) * scale * weight[i] + bias[i];
}

// Adds row `row` of the embedding table t (dim values a row, any decodable type) to x,
// through tmp (dim floats).
static void add_table_row(const model_tensor *t, uint64_t row, uint32_t dim, float *x, float *tmp)
{
    size_t bytes = row_bytes(t->type, dim);
    tensor_type_get(t->type)->dequantize((const uint8_t *)t->data + row * bytes, tmp, dim);
    for (uint32_t i = 0; i < dim; i++)
        x[i] += tmp[i];
}

// An encoder's input rows: token embedding + token type 0 (+ learned position), LayerNormed
// by token_embd_norm (x holds the token embeddings already).
static void encoder_embed(model_state *s, const model_flat_batch *b)
{
    const model *m = s->m;
    uint32_t dim = m->hp.dim;
    for (uint32_t i = 0; i < b->n_tokens; i++) {
        float *x = s->x + (size_t)i * dim;
        if (m->token_types.data) // every token is of type 0 ("sentence A")
            add_table_row(&m->token_types, 0, dim, x, s->hb);
        if (m->pos_embd.data)
            add_table_row(&m->pos_embd, b->pos[i], dim, x, s->hb);
        model_layernorm(x, x, m->embd_norm.data, m->embd_norm_b.data, dim, m->hp.norm_eps);
    }
}

// One post-norm encoder layer: x = LayerNorm(x + wo * attention(x) + bo) by attn_output_norm,
// then x = LayerNorm(x + ffn(x)) by layer_output_norm, the FFN being down * GELU(up * x +
// b_up) + b_down (BERT) or down * (SiLU(gate * x) * (up * x)) (nomic-bert).
static void encoder_layer(model_state *s, uint32_t l, uint32_t n_tok)
{
    const model *m = s->m;
    const model_hparams *hp = &m->hp;
    const model_layer *L = &m->layers[l];
    size_t dim = hp->dim, o_dim = (size_t)hp->n_head * hp->head_dim_v, n = (size_t)n_tok * dim;
    memcpy(s->xb, s->x, n * sizeof(float)); // no pre-norm: the projections read x itself
    qkv_block(s, &s->host, l, n_tok);
    attend(s, &s->host, l);
    model_matmul_item wo = {.w = &L->wo, .y = s->hb, .ldy = dim, .bias = L->bo.data};
    model_matmul_group(s, s->xb, o_dim, n_tok, &wo, 1);
    for (size_t i = 0; i < n; i++)
        s->x[i] += s->hb[i];
    for (uint32_t b = 0; b < n_tok; b++)
        model_layernorm(s->x + b * dim, s->x + b * dim, L->attn_out_norm.data,
                        L->attn_out_norm_b.data, dim, hp->norm_eps);
    memcpy(s->xb, s->x, n * sizeof(float));
    if (m->arch->ffn_ungated) {
        model_matmul_item up = {.w = &L->w_up, .y = s->hb, .ldy = hp->ffn, .bias = L->b_up.data};
        model_matmul_group(s, s->xb, dim, n_tok, &up, 1);
        model_gated_act(s, MODEL_ACT_GELU, s->hb, NULL, (size_t)n_tok * hp->ffn);
        model_matmul_item down = {.w = &L->w_down, .y = s->xb, .ldy = dim, .bias = L->b_down.data};
        model_matmul_group(s, s->hb, hp->ffn, n_tok, &down, 1);
    } else {
        model_gated_ffn(s, &L->w_gate, &L->w_up, &L->w_down, n_tok);
    }
    for (size_t i = 0; i < n; i++)
        s->x[i] += s->xb[i];
    for (uint32_t b = 0; b < n_tok; b++)
        model_layernorm(s->x + b * dim, s->x + b * dim, L->layer_out_norm.data,
                        L->layer_out_norm_b.data, dim, hp->norm_eps);
}

// The logits of n_out normed rows in xb when this rank holds its part of the output
// matrix's rows (shard.c; dist_part_first's split of the vocabulary): each rank computes its
// columns of every logit row in place, then each row is gathered whole on every rank.
static void vocab_share_logits(model_state *s, uint32_t n_out)
{
    const model *m = s->m;
    uint64_t n_vocab = m->hp.n_vocab;
    float *mine = s->logits + dist_part_first(n_vocab, m->tp_rank, m->tp_size);
    model_matmul(s, &m->output, s->xb, m->hp.dim, n_out, mine, n_vocab);
    for (uint32_t i = 0; i < n_out; i++)
        dist_all_gather_parts(s->logits + i * n_vocab, n_vocab, 1);
}

// Checks the pool's shape against the model's and the batch's sizes against the state.
static int check_shape(model_state *s, kv_cache *kv, uint32_t n_tokens, uint32_t n_out,
                       const uint32_t *out, garlic_error *err)
{
    const model_hparams *hp = &s->m->hp;
    const kv_cache_config *kc = kv_cache_get_config(kv);
    kv_cache_config want = model_kv_config(s->m, kc->type, kc->block_tokens, kc->n_blocks);
    if (kc->n_layer != want.n_layer || kc->n_head_kv != want.n_head_kv ||
        kc->head_dim_k != want.head_dim_k || kc->head_dim_v != want.head_dim_v)
        return garlic_error_set(err, GARLIC_EINVAL,
                                "the KV pool's shape (%u layers, %u KV "
                                "heads, head dims %u/%u) is not the model's",
                                kc->n_layer, kc->n_head_kv, kc->head_dim_k, kc->head_dim_v);
    // A layer the pool keeps in window blocks must read no further back than their window.
    for (uint32_t l = 0; l < hp->n_layer; l++) {
        uint32_t w = s->m->layers[l].window;
        if (kv_cache_layer_is_window(kv, l) && (!w || w > kc->windows.window))
            return garlic_error_set(err, GARLIC_EINVAL,
                                    "layer %u attends over %u positions (0: "
                                    "all), but the KV pool keeps only the last %u",
                                    l, w, kc->windows.window);
    }
    if (n_tokens == 0 || n_tokens > s->max_batch)
        return garlic_error_set(err, GARLIC_EINVAL, "batch of %u tokens (1 to %u allowed)",
                                n_tokens, s->max_batch);
    if (n_out && !s->m->output.data)
        return garlic_error_set(err, GARLIC_EINVAL,
                                "the model is an encoder: it computes "
                                "embeddings, not logits");
    if (n_out > s->logit_rows)
        return garlic_error_set(err, GARLIC_EINVAL, "%u rows of logits asked, the state holds %u",
                                n_out, s->logit_rows);
    for (uint32_t i = 0; i < n_out; i++)
        if (out[i] >= n_tokens)
            return garlic_error_set(err, GARLIC_EINVAL,
                                    "logit row %u names token %u of a batch "
                                    "of %u",
                                    i, out[i], n_tokens);
    return GARLIC_OK;
}

static int check_token(const model_state *s, int32_t token, garlic_error *err)
{
    if (token < 0 || (uint32_t)token >= s->m->hp.n_vocab)
        return garlic_error_set(err, GARLIC_EINVAL,
                                "token id %d is outside the vocabulary "
                                "(0..%u)",
                                token, s->m->hp.n_vocab - 1);
    return GARLIC_OK;
}

// Makes room for n uint32_t entries of flat arrays (a batch's n_pos, table starts and
// tables), growing the state's buffer when a batch needs more than any before.
static int flat_reserve(model_state *s, uint64_t n, garlic_error *err)
{
    if (n <= s->flat_cap)
        return GARLIC_OK;
    if (n > s->flat_max)
        return garlic_error_set(err, GARLIC_EINVAL,
                                "the batch's block tables (%llu entries) exceed what its "
                                "sequences can hold (%llu)",
                                (unsigned long long)n, (unsigned long long)s->flat_max);
    size_t cap = s->flat_cap * 2 > n ? s->flat_cap * 2 : (size_t)n;
    cap = cap > s->flat_max ? (size_t)s->flat_max : cap;
    uint32_t *p = garlic_malloc(cap * sizeof(uint32_t));
    if (!p)
        return garlic_error_set(err, GARLIC_ENOMEM, "out of memory for a batch's block tables");
    memcpy(p, s->flat, s->flat_cap * sizeof(uint32_t)); // (what the caller wrote so far)
    if (s->flat_owned)
        garlic_free(s->flat);
    s->flat = p, s->flat_cap = cap, s->flat_owned = true;
    return GARLIC_OK;
}

int model_flatten_batch(model_state *s, kv_cache *kv, const model_batch *b, model_flat_batch *out,
                        garlic_error *err)
{
    const model_hparams *hp = &s->m->hp;
    int rc = check_shape(s, kv, b->n_tokens, b->n_out, b->out, err);
    if (rc)
        return rc;
    if (b->n_seqs == 0 || b->n_seqs > b->n_tokens)
        return garlic_error_set(err, GARLIC_EINVAL, "batch of %u tokens names %u sequences",
                                b->n_tokens, b->n_seqs);
    for (uint32_t i = 0; i < b->n_tokens; i++) {
        if ((rc = check_token(s, b->tokens[i], err)))
            return rc;
        if (b->seq[i] >= b->n_seqs)
            return garlic_error_set(err, GARLIC_EINVAL, "token %u names sequence %u of %u", i,
                                    b->seq[i], b->n_seqs);
        const kv_seq *q = b->seqs[b->seq[i]];
        if (s->m->pos_embd.data && b->pos[i] >= hp->n_ctx_train)
            return garlic_error_set(err, GARLIC_EINVAL,
                                    "position %u of token %u is beyond the %u learned "
                                    "positions",
                                    b->pos[i], i, hp->n_ctx_train);
        uint32_t block, offset; // (the block is the table's: this checks it is there)
        if (b->pos[i] >= s->n_ctx || !kv_seq_locate(kv, q, b->pos[i], &block, &offset))
            return garlic_error_set(err, GARLIC_EINVAL,
                                    "position %u of token %u is beyond its "
                                    "sequence (%u positions reserved, context %u)",
                                    b->pos[i], i, q->n_tokens, s->n_ctx);
        if (!kv_seq_holds_rows(kv, q, b->pos[i]))
            return garlic_error_set(err, GARLIC_EINVAL,
                                    "position %u of token %u: its sequence "
                                    "released the window rows it reads",
                                    b->pos[i], i);
    }
    // n_pos (n_tokens), table starts (2 n_seqs), then each sequence's two tables: the
    // entries of the blocks its tokens read.
    bool window = kv_cache_get_config(kv)->n_window_blocks > 0;
    uint32_t bt = kv_cache_get_config(kv)->block_tokens;
    uint64_t head = (uint64_t)b->n_tokens + 2 * (uint64_t)b->n_seqs;
    if ((rc = flat_reserve(s, head, err)))
        return rc;
    uint32_t *n_pos = s->flat, *start = n_pos + b->n_tokens;
    memset(start, 0, 2 * b->n_seqs * sizeof(uint32_t));
    for (uint32_t i = 0; i < b->n_tokens; i++) {
        n_pos[i] = hp->causal ? b->pos[i] + 1 : b->seqs[b->seq[i]]->n_tokens;
        uint32_t entries = (n_pos[i] - 1) / bt + 1, *most = &start[2 * b->seq[i]];
        *most = entries > *most ? entries : *most;
    }
    uint64_t need = head;
    for (uint32_t i = 0; i < b->n_seqs; i++) {
        if (start[2 * i] > b->seqs[i]->n_blocks)
            return garlic_error_set(err, GARLIC_EINVAL,
                                    "sequence %u holds %u blocks, its tokens read %u", i,
                                    b->seqs[i]->n_blocks, start[2 * i]);
        need += 2 * (uint64_t)start[2 * i];
    }
    if ((rc = flat_reserve(s, need, err)))
        return rc;
    n_pos = s->flat, start = n_pos + b->n_tokens; // (moved when the buffer grew)
    uint32_t *tables = start + 2 * b->n_seqs, at = 0;
    for (uint32_t i = 0; i < b->n_seqs; i++) {
        const kv_seq *q = b->seqs[i];
        uint32_t entries = start[2 * i];
        start[2 * i] = at;
        memcpy(tables + at, q->blocks, entries * sizeof(uint32_t));
        at += entries;
        start[2 * i + 1] = at;
        for (uint32_t j = 0; j < entries; j++) // entries before window_first are released
            tables[at + j] = window && j >= q->window_first ? q->window_blocks[j] : KV_NO_BLOCK;
        at += entries;
    }
    *out = (model_flat_batch){.n_tokens = b->n_tokens,
                              .n_seqs = b->n_seqs,
                              .n_out = b->n_out,
                              .n_tables = at,
                              .tokens = b->tokens,
                              .pos = b->pos,
                              .seq = b->seq,
                              .n_pos = n_pos,
                              .table_start = start,
                              .tables = tables,
                              .out = b->out,
                              .hidden = b->hidden};
    return GARLIC_OK;
}

// Checks a flat batch that did not come from model_flatten_batch: every index against the
// state and the pool, every block a token reads or writes inside its kind's pool.
static int check_flat(model_state *s, kv_cache *kv, const model_flat_batch *fb, garlic_error *err)
{
    int rc = check_shape(s, kv, fb->n_tokens, fb->n_out, fb->out, err);
    if (rc)
        return rc;
    const kv_cache_config *kc = kv_cache_get_config(kv);
    uint32_t bt = kc->block_tokens;
    if (fb->n_seqs == 0 || fb->n_seqs > fb->n_tokens)
        return garlic_error_set(err, GARLIC_EINVAL, "batch of %u tokens names %u sequences",
                                fb->n_tokens, fb->n_seqs);
    for (uint32_t i = 0; i < fb->n_tokens; i++) {
        if ((rc = check_token(s, fb->tokens[i], err)))
            return rc;
        uint32_t q = fb->seq[i], pos = fb->pos[i], n = fb->n_pos[i];
        if (q >= fb->n_seqs || pos >= s->n_ctx || n > s->n_ctx || pos >= n ||
            (s->m->pos_embd.data && pos >= s->m->hp.n_ctx_train))
            return garlic_error_set(err, GARLIC_EINVAL,
                                    "token %u: sequence %u of %u, position %u, %u positions "
                                    "attended (context %u)",
                                    i, q, fb->n_seqs, pos, n, s->n_ctx);
        for (uint32_t kind = 0; kind < 2; kind++) {
            uint32_t w = kind ? kc->windows.window : 0,
                     blocks = kind ? kc->n_window_blocks : kc->n_blocks;
            if (kind && !blocks)
                continue;
            uint32_t lo = w && n > w ? n - w : 0, first = fb->table_start[2 * q + kind];
            if (first > fb->n_tables || (n - 1) / bt >= fb->n_tables - first)
                return garlic_error_set(err, GARLIC_EINVAL,
                                        "token %u: its sequence's table ends before "
                                        "position %u",
                                        i, n - 1);
            for (uint32_t j = lo / bt; j <= (n - 1) / bt; j++)
                if (fb->tables[first + j] >= blocks)
                    return garlic_error_set(err, GARLIC_EINVAL,
                                            "token %u: block %u of its table is %u, the pool "
                                            "has %u",
                                            i, j, fb->tables[first + j], blocks);
        }
    }
    return GARLIC_OK;
}

// Moves the residual stream between the host and the device before layer l (or the output,
// l == n_layer) when the layer changes hands.
static int hand_over(model_state *s, uint32_t l, uint32_t n, bool *on_device, garlic_error *err)
{
    // (Hidden states are asked of the host: the output of such a call runs there.)
    bool out = l == s->m->hp.n_layer && s->device_output && !s->fb->hidden;
    bool want = s->device && (l < s->device_layers || out);
    if (want == *on_device)
        return GARLIC_OK;
    size_t bytes = (size_t)n * s->m->hp.dim * sizeof(float);
    backend *d = s->device;
    int rc = want ? d->ops->to_device(d, s->dev.x, s->host.x, bytes, err)
                  : d->ops->to_host(d, s->host.x, s->dev.x, bytes, err);
    *on_device = want;
    return rc;
}

// The output rows (normed) and their logits on exec e, into e->logits.
static void output_logits(model_state *s, const model_exec *e, const model_flat_batch *fb)
{
    const model *m = s->m;
    const model_hparams *hp = &m->hp;
    backend *be = e->be;
    // The hidden states: every row through the output norm, in place (an encoder's last
    // layer is its output); the logit rows are then copies of theirs. (Hidden states are
    // asked of the CPU alone: model_forward_flat keeps them there.)
    if (fb->hidden && m->output_norm.data)
        be->ops->rmsnorm(be, e->x, e->x, &m->output_norm, fb->n_tokens, hp->dim, hp->rms_eps);
    for (uint32_t i = 0; i < fb->n_out; i++) {
        if (fb->hidden)
            memcpy(e->xb + i * hp->dim, e->x + fb->out[i] * hp->dim, hp->dim * sizeof(float));
        else if (be == s->cpu_be)
            model_rmsnorm(e->xb + i * hp->dim, e->x + fb->out[i] * hp->dim, m->output_norm.data,
                          hp->dim, hp->rms_eps);
    }
    if (be != s->cpu_be) { // the rows asked for, gathered on the device, then normed
        be->ops->gather_rows(be, e->xb, e->x, hp->dim);
        be->ops->rmsnorm(be, e->xb, e->xb, &m->output_norm, fb->n_out, hp->dim, hp->rms_eps);
    }
    if (fb->n_out && m->output.n_out < hp->n_vocab) // tensor parallelism: a share of the rows
        vocab_share_logits(s, fb->n_out);
    else if (fb->n_out) {
        backend_matmul o = {.w = &m->output, .y = e->logits, .ldy = hp->n_vocab};
        be->ops->matmul(be, e->xb, hp->dim, fb->n_out, &o, 1);
    }
}

// Both RoPE tables (the model's, and the sliding layers' own when it has them) for the n
// positions pos.
static void rope_tables(model_state *s, const uint32_t *pos, uint32_t n)
{
    const model_hparams *hp = &s->m->hp;
    rope_table(s, 0, hp->rope_base, 1.0 / hp->rope_factor, hp->rope_mscale, pos, n);
    if (hp->swa_rope)
        rope_table(s, 1, hp->rope_base_swa, 1.0, hp->rope_attn_factor, pos, n);
}

// A pipeline stage's layers over the batch in micro-batches: consecutive runs of tokens,
// each received from the stage before (the first stage has embedded them), run through this
// stage's layers and sent on, so that a stage works on one micro-batch while the next stage
// works on the one before; every stage then holds its rows of every token, and the last the
// whole residual stream for the logits. A token's attention reads the K and V rows that earlier
// micro-batches of its sequence wrote, at every layer, since each stage takes the micro-batches
// in order. Experts and latent attention, which read the state's buffers whole, take the
// batch as one micro-batch.
static void stage_layers(model_state *s, const model_flat_batch *fb)
{
    const model *m = s->m;
    const model_hparams *hp = &m->hp;
    uint32_t n = fb->n_tokens, stages = dist_layout().stages;
    bool whole = hp->n_expert > 0 || m->arch->mla;
    uint32_t parts = whole || stages < 2 ? 1 : n < stages ? n : stages;
    for (uint32_t p = 0, t0 = 0; p < parts; p++) {
        uint32_t cnt = n / parts + (p < n % parts);
        model_flat_batch sub = *fb;
        sub.n_tokens = cnt, sub.tokens = fb->tokens + t0, sub.pos = fb->pos + t0;
        sub.seq = fb->seq + t0, sub.n_pos = fb->n_pos + t0, sub.n_out = 0;
        float *x = s->x + (size_t)t0 * hp->dim;
        if (m->layer_first > 0)
            dist_stage_recv(x, (size_t)cnt * hp->dim);
        rope_tables(s, sub.pos, cnt); // (each micro-batch's rows start at 0)
        model_exec e = s->host;
        e.x = x;
        s->fb = &sub;
        for (uint32_t l = m->layer_first; l < m->layer_end; l++) {
            attention_block(s, &e, l, cnt);
            ffn_block(s, &e, l, cnt);
        }
        s->fb = fb;
        if (m->layer_end < hp->n_layer)
            dist_stage_send(x, (size_t)cnt * hp->dim);
        t0 += cnt;
    }
}

static int forward_run(model_state *s, kv_cache *kv, const model_flat_batch *fb,
                       const float **logits, garlic_error *err)
{
    const model *m = s->m;
    const model_hparams *hp = &m->hp;
    uint32_t n = fb->n_tokens;
    // A pipeline stage runs its layers; the first embeds, the others receive the residual
    // stream from the stage before, and the last computes the logits every stage receives.
    bool staged = m->layer_end - m->layer_first < hp->n_layer, last = m->layer_end == hp->n_layer;
    if (staged && (fb->hidden || m->arch->encoder))
        return garlic_error_set(err, GARLIC_EUNSUPPORTED,
                                "embeddings are not computed under pipeline parallelism");
    s->fb = fb, s->kv = kv;
    const tensor_type_traits *embd = tensor_type_get(m->token_embd.type);
    size_t embd_row = row_bytes(m->token_embd.type, hp->dim);
    for (uint32_t i = 0; m->layer_first == 0 && i < n; i++)
        embd->dequantize((const uint8_t *)m->token_embd.data + (size_t)fb->tokens[i] * embd_row,
                         s->x + i * hp->dim, hp->dim);
    if (m->layer_first == 0 && m->arch->embd_scale) { // Gemma: x * sqrt(dim)
        float scale = sqrtf((float)hp->dim);
        for (size_t i = 0; i < (size_t)n * hp->dim; i++)
            s->x[i] *= scale;
    }
    if (!staged) // (a stage makes them for each of its micro-batches)
        rope_tables(s, fb->pos, n);
    if (m->arch->encoder)
        encoder_embed(s, fb);
    s->bb = (backend_batch){.n_tok = n,
                            .n_seq = fb->n_seqs,
                            .pos = fb->pos,
                            .n_pos = fb->n_pos,
                            .seq = fb->seq,
                            .table_start = fb->table_start,
                            .tables = fb->tables,
                            .n_tables = fb->n_tables,
                            .kv = kv,
                            .n_out = fb->n_out,
                            .out = fb->out,
                            .rope_cos = s->rope_cos,
                            .rope_sin = s->rope_sin,
                            .half = hp->n_rot / 2,
                            .n_rope = hp->swa_rope ? 2 : 1,
                            .rope_stride = (uint64_t)s->max_batch * (hp->n_rot / 2)};
    int rc = GARLIC_OK;
    backend *d = s->device;
    if (d) // (a pool bound already: nothing to do)
        rc = d->ops->kv_bind(d, kv, 0, s->device_layers, err);
    if (!rc && d)
        rc = d->ops->begin(d, &s->bb, err);
    s->cpu_be->ops->begin(s->cpu_be, &s->bb, NULL);
    bool on_device = false;
    if (staged) // (no device under pipeline parallelism: device_setup refuses it)
        stage_layers(s, fb);
    for (uint32_t l = m->layer_first; !rc && !staged && l < m->layer_end; l++) {
        if (m->arch->encoder) {
            encoder_layer(s, l, n);
            continue;
        }
        if ((rc = hand_over(s, l, n, &on_device, err)))
            break;
        const model_exec *e = on_device ? &s->dev : &s->host;
        attention_block(s, e, l, n);
        ffn_block(s, e, l, n);
    }
    if (!rc && last)
        rc = hand_over(s, hp->n_layer, n, &on_device, err);
    if (!rc && last) {
        const model_exec *e = on_device ? &s->dev : &s->host;
        output_logits(s, e, fb);
        if (on_device)
            rc = d->ops->to_host(d, s->logits, s->dev.logits,
                                 (size_t)fb->n_out * hp->n_vocab * sizeof(float), err);
    }
    if (!rc && staged && fb->n_out)
        dist_stage_broadcast_last(s->logits, (size_t)fb->n_out * hp->n_vocab);
    if (!rc && d)
        rc = d->ops->finish(d, err);
    if (!rc && hp->final_softcap > 0) { // logits = c * tanh(logits * (1 / c))
        float inv = 1.0f / hp->final_softcap;
        for (size_t i = 0; i < (size_t)fb->n_out * hp->n_vocab; i++)
            s->logits[i] = tanhf(s->logits[i] * inv) * hp->final_softcap;
    }
    s->fb = NULL, s->kv = NULL;
    *logits = s->logits;
    return rc;
}

int model_forward_batch(model_state *s, kv_cache *kv, const model_batch *b, const float **logits,
                        garlic_error *err)
{
    model_flat_batch fb;
    int rc = model_flatten_batch(s, kv, b, &fb, err);
    return rc ? rc : forward_run(s, kv, &fb, logits, err);
}

int model_forward_flat(model_state *s, kv_cache *kv, const model_flat_batch *fb,
                       const float **logits, garlic_error *err)
{
    int rc = check_flat(s, kv, fb, err);
    return rc ? rc : forward_run(s, kv, fb, logits, err);
}

kv_cache *model_kv_new_single(const model *m, kv_type type, uint32_t n_ctx, garlic_error *err)
{
    uint32_t bt = KV_DEFAULT_BLOCK_TOKENS;
    kv_cache_config kc = model_kv_config(m, type, bt, (n_ctx + bt - 1) / bt + 1);
    return kv_cache_new(&kc, err);
}

// model_forward and model_forward_hidden: one sequence's tokens as one batch, with logits
// (the last row, or all) or the hidden states of every token.
static int forward_single(model_state *s, kv_cache *kv, kv_seq *seq, const int32_t *tokens,
                          uint32_t n, uint32_t pos0, uint32_t n_out, bool hidden,
                          const float **logits, garlic_error *err)
{
    bool all_logits = n_out > 1;
    if (n == 0 || n > s->max_batch)
        return garlic_error_set(err, GARLIC_EINVAL, "batch of %u tokens (1 to %u allowed)", n,
                                s->max_batch);
    if (all_logits && n > s->logit_rows)
        return garlic_error_set(err, GARLIC_EINVAL, "%u rows of logits asked, the state holds %u",
                                n, s->logit_rows);
    if (pos0 > s->n_ctx || n > s->n_ctx - pos0)
        return garlic_error_set(err, GARLIC_EINVAL, "positions %u..%u exceed the context of %u",
                                pos0, pos0 + n - 1, s->n_ctx);
    if (pos0 > seq->n_tokens)
        return garlic_error_set(err, GARLIC_EINVAL,
                                "position %u leaves a gap after the %u "
                                "positions in the cache",
                                pos0, seq->n_tokens);
    for (uint32_t i = 0; i < n; i++)
        if (tokens[i] < 0 || (uint32_t)tokens[i] >= s->m->hp.n_vocab)
            return garlic_error_set(err, GARLIC_EINVAL,
                                    "token id %d is outside the vocabulary "
                                    "(0..%u)",
                                    tokens[i], s->m->hp.n_vocab - 1);
    int rc = kv_seq_truncate(kv, seq, pos0, err);
    if (rc == GARLIC_OK)
        rc = kv_seq_append(kv, seq, tokens, n, err);
    if (rc)
        return rc;
    for (uint32_t i = 0; i < n; i++)
        s->pos[i] = pos0 + i, s->seq[i] = 0;
    for (uint32_t i = 0; i < n_out; i++)
        s->out[i] = n - n_out + i;
    const kv_seq *seqs[1] = {seq};
    model_batch b = {.n_tokens = n,
                     .tokens = tokens,
                     .pos = s->pos,
                     .seq = s->seq,
                     .seqs = seqs,
                     .n_seqs = 1,
                     .out = s->out,
                     .n_out = n_out,
                     .hidden = hidden};
    rc = model_forward_batch(s, kv, &b, logits, err);
    if (rc == GARLIC_OK)
        rc = kv_seq_commit(kv, seq, seq->n_tokens, err);
    else
        kv_seq_truncate(kv, seq, pos0, NULL);
    return rc;
}

int model_forward(model_state *s, kv_cache *kv, kv_seq *seq, const int32_t *tokens, uint32_t n,
                  uint32_t pos0, bool all_logits, const float **logits, garlic_error *err)
{
    return forward_single(s, kv, seq, tokens, n, pos0, all_logits ? n : 1, false, logits, err);
}

int model_forward_hidden(model_state *s, kv_cache *kv, kv_seq *seq, const int32_t *tokens,
                         uint32_t n, const float **hidden, garlic_error *err)
{
    const float *unused;
    int rc = forward_single(s, kv, seq, tokens, n, 0, 0, true, &unused, err);
    *hidden = rc == GARLIC_OK ? s->x : NULL;
    return rc;
}
