// SPDX-License-Identifier: MIT
// The forward pass of the Llama family over a batch of tokens, and the run state it needs.
// Per layer: rmsnorm -> q, k, v projections (+ biases) -> per-head q/k norms -> RoPE -> write
// k, v to the cache -> causal grouped-query attention -> output projection -> residual ->
// rmsnorm -> gate, up -> SiLU(gate) * up -> down -> residual. Matrix products and attention
// run on the compute pool; the small element-wise steps run on the calling thread. Every
// buffer is allocated in model_state_new, so a forward call allocates nothing.
#include <math.h>
#include <string.h>

#include "base/alloc.h"
#include "kernels/kernels.h"
#include "model/model.h"
#include "tensor/types.h"

enum { MAX_GROUP = 3 }; // matrices that share one input (q, k, v)

struct model_state {
    const model *m;
    uint32_t n_ctx, max_batch, logit_rows;
    model_kv_type kv_type;
    thread_pool *pool;
    uint64_t bytes;          // everything allocated below
    size_t k_row, v_row;     // bytes of one position's K (V) for all KV heads of one layer
    uint8_t *k_cache;        // (n_layer, n_ctx, n_head_kv * head_dim_k) in kv_type
    uint8_t *v_cache;        // (n_layer, n_ctx, n_head_kv * head_dim_v) in kv_type
    float *x;                // (max_batch, dim) the residual stream
    float *xb;               // (max_batch, max(dim, n_head * head_dim_v)) normed input / attention out
    float *q;                // (max_batch, n_head * head_dim_k)
    float *k;                // (max_batch, n_head_kv * head_dim_k)
    float *v;                // (max_batch, n_head_kv * head_dim_v)
    float *hb;               // (max_batch, max(ffn, dim)) gate / attention projection
    float *hb2;              // (max_batch, ffn) up
    float *logits;           // (logit_rows, n_vocab)
    float *att;              // (n_threads, n_ctx) attention scores, one row per thread
    float *kv_row;           // (n_threads, max head dim) a dequantized cache row per thread
    uint8_t *act[MAX_GROUP]; // (max_batch, act row bytes) converted activations
    size_t act_stride;       // bytes of the widest activation row (act[] holds max_batch)
    float *rope_cos, *rope_sin; // (max_batch, n_rot / 2)
    float rope_mscale;       // YaRN magnitude correction (1 otherwise)
};

bool model_kv_type_parse(const char *name, model_kv_type *out)
{
    static const char *const names[MODEL_KV_COUNT] = {"f32", "f16", "q8_0"};
    for (int i = 0; i < MODEL_KV_COUNT; i++)
        if (strcmp(name, names[i]) == 0)
            return *out = (model_kv_type)i, true;
    return false;
}

static uint32_t kv_tensor_type(model_kv_type t)
{
    return t == MODEL_KV_F32 ? TENSOR_TYPE_F32 : t == MODEL_KV_F16 ? TENSOR_TYPE_F16
                                                                    : TENSOR_TYPE_Q8_0;
}

static size_t row_bytes(uint32_t type, uint64_t n)
{
    uint64_t b = 0;
    tensor_row_size(type, n, &b);
    return (size_t)b;
}

// Allocates count * size bytes (NULL on overflow or failure) and adds them to s->bytes.
static void *state_alloc(model_state *s, size_t count, size_t size)
{
    void *p = garlic_calloc(count, size);
    if (p)
        s->bytes += (uint64_t)count * size;
    return p;
}

// Bytes of the widest converted activation row any matrix of m needs. F32 activations (4
// bytes a value) are the largest format; the 8-bit block formats take at most 1.2 bytes.
static size_t max_act_row(const model *m)
{
    const model_hparams *hp = &m->hp;
    uint64_t widest = hp->dim > hp->ffn ? hp->dim : hp->ffn;
    uint64_t o_dim = (uint64_t)hp->n_head * hp->head_dim_v;
    widest = o_dim > widest ? o_dim : widest;
    return ((size_t)widest * sizeof(float) + 63) / 64 * 64;
}

static int check_state_args(const model *m, const model_state_config *cfg, garlic_error *err)
{
    if (cfg->n_ctx == 0 || cfg->n_ctx > (1u << 24) || cfg->max_batch == 0 ||
        cfg->max_batch > 65536 || cfg->logit_rows == 0 || cfg->logit_rows > cfg->max_batch)
        return garlic_error_set(err, GARLIC_EINVAL, "context %u, batch %u and logit rows %u must "
                                "be positive (context at most 16M, batch at most 65536, logit "
                                "rows at most the batch)", cfg->n_ctx, cfg->max_batch,
                                cfg->logit_rows);
    if ((unsigned)cfg->kv_type >= MODEL_KV_COUNT)
        return garlic_error_set(err, GARLIC_EINVAL, "unknown KV cache type");
    if (cfg->kv_type == MODEL_KV_Q8_0 && (m->hp.head_dim_k % 32 || m->hp.head_dim_v % 32))
        return garlic_error_set(err, GARLIC_EUNSUPPORTED, "KV cache type q8_0 needs head "
                                "dimensions that are multiples of 32 (this model has %u/%u)",
                                m->hp.head_dim_k, m->hp.head_dim_v);
    return GARLIC_OK;
}

model_state *model_state_new(const model *m, const model_state_config *cfg, garlic_error *err)
{
    if (check_state_args(m, cfg, err))
        return NULL;
    model_state *s = garlic_calloc(1, sizeof *s);
    if (!s) {
        garlic_error_set(err, GARLIC_ENOMEM, "out of memory");
        return NULL;
    }
    const model_hparams *hp = &m->hp;
    uint32_t n_ctx = cfg->n_ctx, max_batch = cfg->max_batch;
    model_kv_type kv_type = cfg->kv_type;
    *s = (model_state){.m = m, .n_ctx = n_ctx, .max_batch = max_batch,
                       .logit_rows = cfg->logit_rows, .kv_type = kv_type};
    s->pool = thread_pool_new(cfg->n_threads, err);
    if (!s->pool) {
        garlic_free(s);
        return NULL;
    }
    size_t B = max_batch, nt = (size_t)cfg->n_threads;
    size_t q_dim = (size_t)hp->n_head * hp->head_dim_k, o_dim = (size_t)hp->n_head * hp->head_dim_v;
    size_t k_dim = (size_t)hp->n_head_kv * hp->head_dim_k, v_dim = (size_t)hp->n_head_kv * hp->head_dim_v;
    size_t hd_max = hp->head_dim_k > hp->head_dim_v ? hp->head_dim_k : hp->head_dim_v;
    s->k_row = row_bytes(kv_tensor_type(kv_type), k_dim);
    s->v_row = row_bytes(kv_tensor_type(kv_type), v_dim);
    s->act_stride = max_act_row(m);
    size_t cache_rows = (size_t)hp->n_layer * n_ctx;
    s->k_cache = state_alloc(s, cache_rows, s->k_row);
    s->v_cache = state_alloc(s, cache_rows, s->v_row);
    s->x = state_alloc(s, B * hp->dim, sizeof(float));
    s->xb = state_alloc(s, B * (o_dim > hp->dim ? o_dim : hp->dim), sizeof(float));
    s->q = state_alloc(s, B * q_dim, sizeof(float));
    s->k = state_alloc(s, B * k_dim, sizeof(float));
    s->v = state_alloc(s, B * v_dim, sizeof(float));
    // hb also receives the attention output projection (dim wide).
    s->hb = state_alloc(s, B * (hp->ffn > hp->dim ? hp->ffn : hp->dim), sizeof(float));
    s->hb2 = state_alloc(s, B * hp->ffn, sizeof(float));
    s->logits = state_alloc(s, (size_t)cfg->logit_rows * hp->n_vocab, sizeof(float));
    s->att = state_alloc(s, nt * n_ctx, sizeof(float));
    s->kv_row = state_alloc(s, nt * hd_max, sizeof(float));
    for (int i = 0; i < MAX_GROUP; i++)
        s->act[i] = state_alloc(s, B, s->act_stride);
    s->rope_cos = state_alloc(s, B * (hp->n_rot / 2 + 1), sizeof(float));
    s->rope_sin = state_alloc(s, B * (hp->n_rot / 2 + 1), sizeof(float));
    bool ok = s->k_cache && s->v_cache && s->x && s->xb && s->q && s->k && s->v && s->hb &&
              s->hb2 && s->logits && s->att && s->kv_row && s->act[0] && s->act[1] &&
              s->act[2] && s->rope_cos && s->rope_sin;
    if (!ok) {
        garlic_error_set(err, GARLIC_ENOMEM, "run state: out of memory (%u positions, batch %u)",
                         n_ctx, max_batch);
        model_state_free(s);
        return NULL;
    }
    return s;
}

void model_state_free(model_state *s)
{
    if (!s)
        return;
    thread_pool_free(s->pool);
    void *bufs[] = {s->k_cache, s->v_cache, s->x, s->xb, s->q, s->k, s->v, s->hb, s->hb2,
                    s->logits, s->att, s->kv_row, s->act[0], s->act[1], s->act[2],
                    s->rope_cos, s->rope_sin};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        garlic_free(bufs[i]);
    garlic_free(s);
}

uint64_t model_state_bytes(const model_state *s)
{
    return s->bytes;
}

uint32_t model_state_n_ctx(const model_state *s)
{
    return s->n_ctx;
}

uint32_t model_state_max_batch(const model_state *s)
{
    return s->max_batch;
}

const model *model_state_model(const model_state *s)
{
    return s->m;
}

// One matrix product of a group: y (rows of ldy floats) = w * input, + bias when present.
typedef struct matmul_item {
    const model_tensor *w;
    float *y;
    uint64_t ldy;
    const float *bias; // (w->n_out) or NULL
    int act;           // which act[] buffer holds its converted input
} matmul_item;

typedef struct matmul_job {
    model_state *s;
    const float *in;   // (n_tok, in_stride) the shared input
    uint64_t in_stride;
    uint32_t n_tok;
    matmul_item items[MAX_GROUP];
    int n_items;
    bool convert_only; // first phase: convert the input rows; second: multiply
} matmul_job;

static void matmul_worker(void *ctx, int ith, int nth)
{
    matmul_job *job = ctx;
    model_state *s = job->s;
    for (int i = 0; i < job->n_items; i++) {
        const matmul_item *it = &job->items[i];
        if (job->convert_only) {
            bool owner = true; // convert once per distinct buffer
            for (int j = 0; j < i; j++)
                owner &= job->items[j].act != it->act;
            // Rows are packed at the kernel's row size, as kernel_matmul reads them.
            size_t stride = kernel_act_row_size(it->w->type, (int64_t)it->w->n_in);
            for (uint32_t b = (uint32_t)ith; owner && b < job->n_tok; b += (uint32_t)nth)
                kernel_act_convert(it->w->type, job->in + b * job->in_stride,
                                   s->act[it->act] + b * stride, (int64_t)it->w->n_in);
            continue;
        }
        int64_t rows = (int64_t)it->w->n_out;
        int64_t r0 = rows * ith / nth, r1 = rows * (ith + 1) / nth;
        if (r0 < r1)
            kernel_matmul(it->w->type, it->w->data, (int64_t)it->w->n_in, r0, r1, s->act[it->act],
                          (int64_t)job->n_tok, it->y, (int64_t)it->ldy);
    }
}

// Computes y_i = w_i * in (+ bias_i) for up to MAX_GROUP matrices sharing the input rows.
// Matrices whose weight types convert activations the same way share one conversion.
static void matmul_group(model_state *s, const float *in, uint64_t in_stride, uint32_t n_tok,
                         const matmul_item *items, int n_items)
{
    matmul_job job = {.s = s, .in = in, .in_stride = in_stride, .n_tok = n_tok, .n_items = n_items};
    for (int i = 0; i < n_items; i++) {
        job.items[i] = items[i];
        job.items[i].act = i;
        for (int j = 0; j < i; j++)
            if (kernel_act_type(items[j].w->type) == kernel_act_type(items[i].w->type))
                job.items[i].act = job.items[j].act;
    }
    // Converting a few rows costs less than waking the pool: decode steps do it inline.
    job.convert_only = true;
    if ((uint64_t)n_tok * items[0].w->n_in <= 16384)
        matmul_worker(&job, 0, 1);
    else
        thread_pool_run(s->pool, matmul_worker, &job);
    job.convert_only = false;
    thread_pool_run(s->pool, matmul_worker, &job);
    for (int i = 0; i < n_items; i++) {
        const matmul_item *it = &items[i];
        for (uint32_t b = 0; it->bias && b < n_tok; b++)
            for (uint64_t r = 0; r < it->w->n_out; r++)
                it->y[b * it->ldy + r] += it->bias[r];
    }
}

static void matmul_one(model_state *s, const model_tensor *w, const float *in, uint64_t in_stride,
                       uint32_t n_tok, float *y, uint64_t ldy)
{
    matmul_item item = {.w = w, .y = y, .ldy = ldy};
    matmul_group(s, in, in_stride, n_tok, &item, 1);
}

// out = x / sqrt(mean(x^2) + eps) * weight, over n values (sum in double).
static void rmsnorm(float *out, const float *x, const float *weight, uint64_t n, float eps)
{
    double ss = 0;
    for (uint64_t i = 0; i < n; i++)
        ss += (double)x[i] * x[i];
    float scale = (float)(1.0 / sqrt(ss / (double)n + eps));
    for (uint64_t i = 0; i < n; i++)
        out[i] = x[i] * scale * weight[i];
}

// Fills the cos/sin table of each batch position: angle_i = pos * base^(-2i / n_rot),
// divided by rope_freqs[i] when the model has them, then scaled (linear) or blended (YaRN).
static void rope_table(model_state *s, uint32_t pos0, uint32_t n_tok)
{
    const model_hparams *hp = &s->m->hp;
    uint32_t half = hp->n_rot / 2;
    double freq_scale = 1.0 / hp->rope_factor, ext = 0, low = 0, high = 0;
    s->rope_mscale = 1.0f;
    if (hp->rope_scaling == MODEL_ROPE_SCALING_YARN) {
        // The dimensions whose wavelength fits beta_fast (32) / beta_slow (1) rotations in the
        // original context bound the ramp between interpolation and extrapolation.
        double denom = 2.0 * log(hp->rope_base);
        double ctx = hp->rope_ctx_orig ? hp->rope_ctx_orig : hp->n_ctx_train;
        low = floor(hp->n_rot * log(ctx / (32.0 * 2.0 * M_PI)) / denom);
        high = ceil(hp->n_rot * log(ctx / (1.0 * 2.0 * M_PI)) / denom);
        low = low < 0 ? 0 : low;
        high = high > hp->n_rot - 1 ? hp->n_rot - 1 : high;
        ext = 1.0;
        s->rope_mscale = (float)(hp->rope_attn_factor * (1.0 + 0.1 * log(1.0 / freq_scale)));
    }
    for (uint32_t b = 0; b < n_tok; b++) {
        double pos = (double)(pos0 + b);
        for (uint32_t i = 0; i < half; i++) {
            double extrap = pos * pow(hp->rope_base, -2.0 * i / hp->n_rot);
            if (s->m->rope_freqs)
                extrap /= s->m->rope_freqs[i];
            double interp = freq_scale * extrap, theta = interp;
            if (ext > 0) {
                double y = ((double)i - low) / (high - low > 0.001 ? high - low : 0.001);
                double ramp = (1.0 - (y < 0 ? 0 : y > 1 ? 1 : y)) * ext;
                theta = interp * (1 - ramp) + extrap * ramp;
            }
            s->rope_cos[b * half + i] = (float)cos(theta) * s->rope_mscale;
            s->rope_sin[b * half + i] = (float)sin(theta) * s->rope_mscale;
        }
    }
}

// Rotates the first n_rot values of each of n_heads heads (head_dim apart) of one token.
static void rope_apply(float *x, uint32_t n_heads, uint32_t head_dim, uint32_t n_rot, bool neox,
                       const float *cos_t, const float *sin_t)
{
    uint32_t half = n_rot / 2;
    for (uint32_t h = 0; h < n_heads; h++) {
        float *v = x + (size_t)h * head_dim;
        for (uint32_t i = 0; i < half; i++) {
            uint32_t a = neox ? i : 2 * i, b = neox ? i + half : 2 * i + 1;
            float x0 = v[a], x1 = v[b];
            v[a] = x0 * cos_t[i] - x1 * sin_t[i];
            v[b] = x0 * sin_t[i] + x1 * cos_t[i];
        }
    }
}

// Stores n values of one token's K or V into a cache row of the state's KV type.
static void cache_store(const model_state *s, uint8_t *dst, const float *src, uint64_t n)
{
    if (s->kv_type == MODEL_KV_Q8_0) // as the reference quantizes K/V: like its activations
        kernel_act_convert(TENSOR_TYPE_Q8_0, src, dst, (int64_t)n);
    else
        tensor_type_get(kv_tensor_type(s->kv_type))->quantize(src, dst, (int64_t)n);
}

typedef struct attention_job {
    model_state *s;
    uint32_t layer, pos0, n_tok;
} attention_job;

// Offset in bytes of head h inside a cache row of the state's KV type.
static size_t head_offset(const model_state *s, uint32_t h, uint32_t head_dim)
{
    return row_bytes(kv_tensor_type(s->kv_type), (uint64_t)h * head_dim);
}

// Scores of query q against the cached keys of positions 0..n_pos-1 of one KV head.
static void attention_scores(model_state *s, const attention_job *job, const float *q,
                             uint32_t kv_head, uint32_t n_pos, float *scores, float *row)
{
    const model_hparams *hp = &s->m->hp;
    uint32_t hd = hp->head_dim_k;
    const uint8_t *base = s->k_cache + (size_t)job->layer * s->n_ctx * s->k_row +
                          head_offset(s, kv_head, hd);
    float scale = 1.0f / sqrtf((float)hd);
    for (uint32_t t = 0; t < n_pos; t++) {
        const uint8_t *k = base + (size_t)t * s->k_row;
        float dot;
        if (s->kv_type == MODEL_KV_F32) {
            dot = kernel_dot_f32(q, (const float *)k, hd);
        } else if (s->kv_type == MODEL_KV_F16) {
            dot = kernel_dot_f32_f16(q, (const uint16_t *)k, hd);
        } else {
            tensor_type_get(TENSOR_TYPE_Q8_0)->dequantize(k, row, hd);
            dot = kernel_dot_f32(q, row, hd);
        }
        scores[t] = dot * scale;
    }
}

// out = sum_t p[t] * V[t] over the cached values of one KV head.
static void attention_values(model_state *s, const attention_job *job, const float *p,
                             uint32_t kv_head, uint32_t n_pos, float *out, float *row)
{
    uint32_t hd = s->m->hp.head_dim_v;
    const uint8_t *base = s->v_cache + (size_t)job->layer * s->n_ctx * s->v_row +
                          head_offset(s, kv_head, hd);
    memset(out, 0, hd * sizeof(float));
    for (uint32_t t = 0; t < n_pos; t++) {
        const uint8_t *v = base + (size_t)t * s->v_row;
        if (s->kv_type == MODEL_KV_F32) {
            kernel_axpy_f32(out, p[t], (const float *)v, hd);
        } else if (s->kv_type == MODEL_KV_F16) {
            kernel_axpy_f16(out, p[t], (const uint16_t *)v, hd);
        } else {
            tensor_type_get(TENSOR_TYPE_Q8_0)->dequantize(v, row, hd);
            kernel_axpy_f32(out, p[t], row, hd);
        }
    }
}

// Causal attention for every (token, head) pair, split across threads: softmax of the
// scaled scores over positions 0..pos (max subtracted, sum in double), then the weighted
// sum of the values, written to xb.
static void attention_worker(void *ctx, int ith, int nth)
{
    attention_job *job = ctx;
    model_state *s = job->s;
    const model_hparams *hp = &s->m->hp;
    float *scores = s->att + (size_t)ith * s->n_ctx;
    uint32_t hd_max = hp->head_dim_k > hp->head_dim_v ? hp->head_dim_k : hp->head_dim_v;
    float *row = s->kv_row + (size_t)ith * hd_max;
    uint32_t group = hp->n_head / hp->n_head_kv;
    size_t q_dim = (size_t)hp->n_head * hp->head_dim_k, o_dim = (size_t)hp->n_head * hp->head_dim_v;
    for (uint32_t idx = (uint32_t)ith; idx < job->n_tok * hp->n_head; idx += (uint32_t)nth) {
        uint32_t b = idx / hp->n_head, h = idx % hp->n_head, n_pos = job->pos0 + b + 1;
        const float *q = s->q + b * q_dim + (size_t)h * hp->head_dim_k;
        attention_scores(s, job, q, h / group, n_pos, scores, row);
        float max = scores[0];
        for (uint32_t t = 1; t < n_pos; t++)
            max = scores[t] > max ? scores[t] : max;
        double sum = 0;
        for (uint32_t t = 0; t < n_pos; t++) {
            scores[t] = expf(scores[t] - max);
            sum += scores[t];
        }
        float inv = (float)(1.0 / sum);
        for (uint32_t t = 0; t < n_pos; t++)
            scores[t] *= inv;
        attention_values(s, job, scores, h / group, n_pos, s->xb + b * o_dim + (size_t)h * hp->head_dim_v, row);
    }
}

// Per-head RMSNorm of n_heads heads of one token (Qwen3's q_norm / k_norm).
static void head_norm(float *x, uint32_t n_heads, uint32_t head_dim, const model_tensor *w, float eps)
{
    for (uint32_t h = 0; h < n_heads; h++)
        rmsnorm(x + (size_t)h * head_dim, x + (size_t)h * head_dim, w->data, head_dim, eps);
}

// The attention half of layer l: x += wo * attention(rope(q), rope(k), v).
static void attention_block(model_state *s, uint32_t l, uint32_t pos0, uint32_t n_tok)
{
    const model *m = s->m;
    const model_hparams *hp = &m->hp;
    const model_layer *L = &m->layers[l];
    size_t q_dim = (size_t)hp->n_head * hp->head_dim_k, o_dim = (size_t)hp->n_head * hp->head_dim_v;
    size_t k_dim = (size_t)hp->n_head_kv * hp->head_dim_k, v_dim = (size_t)hp->n_head_kv * hp->head_dim_v;
    for (uint32_t b = 0; b < n_tok; b++)
        rmsnorm(s->xb + b * hp->dim, s->x + b * hp->dim, L->attn_norm.data, hp->dim, hp->rms_eps);
    matmul_item qkv[3] = {
        {.w = &L->wq, .y = s->q, .ldy = q_dim, .bias = L->bq.data},
        {.w = &L->wk, .y = s->k, .ldy = k_dim, .bias = L->bk.data},
        {.w = &L->wv, .y = s->v, .ldy = v_dim, .bias = L->bv.data},
    };
    matmul_group(s, s->xb, hp->dim, n_tok, qkv, 3);
    uint32_t half = hp->n_rot / 2;
    for (uint32_t b = 0; b < n_tok; b++) {
        float *q = s->q + b * q_dim, *k = s->k + b * k_dim;
        if (L->q_norm.data)
            head_norm(q, hp->n_head, hp->head_dim_k, &L->q_norm, hp->rms_eps);
        if (L->k_norm.data)
            head_norm(k, hp->n_head_kv, hp->head_dim_k, &L->k_norm, hp->rms_eps);
        const float *c = s->rope_cos + b * half, *sn = s->rope_sin + b * half;
        rope_apply(q, hp->n_head, hp->head_dim_k, hp->n_rot, m->arch->rope_neox, c, sn);
        rope_apply(k, hp->n_head_kv, hp->head_dim_k, hp->n_rot, m->arch->rope_neox, c, sn);
        size_t row = (size_t)l * s->n_ctx + pos0 + b;
        cache_store(s, s->k_cache + row * s->k_row, k, k_dim);
        cache_store(s, s->v_cache + row * s->v_row, s->v + b * v_dim, v_dim);
    }
    attention_job job = {.s = s, .layer = l, .pos0 = pos0, .n_tok = n_tok};
    thread_pool_run(s->pool, attention_worker, &job);
    // The attention output is in xb; the projection lands in hb (wide enough), then the residual.
    matmul_one(s, &L->wo, s->xb, o_dim, n_tok, s->hb, hp->dim);
    for (size_t i = 0; i < (size_t)n_tok * hp->dim; i++)
        s->x[i] += s->hb[i];
}

typedef struct swiglu_job {
    float *gate;       // (n) in: gate projection; out: silu(gate) * up
    const float *up;   // (n)
    size_t n;
} swiglu_job;

// gate = silu(gate) * up over this thread's share of the values.
static void swiglu_worker(void *ctx, int ith, int nth)
{
    swiglu_job *job = ctx;
    size_t i0 = job->n * (size_t)ith / (size_t)nth, i1 = job->n * (size_t)(ith + 1) / (size_t)nth;
    for (size_t i = i0; i < i1; i++) {
        float g = job->gate[i];
        job->gate[i] = g / (1.0f + expf(-g)) * job->up[i];
    }
}

// The feed-forward half of layer l: x += w_down * (silu(w_gate * xn) * (w_up * xn)).
static void ffn_block(model_state *s, uint32_t l, uint32_t n_tok)
{
    const model_hparams *hp = &s->m->hp;
    const model_layer *L = &s->m->layers[l];
    for (uint32_t b = 0; b < n_tok; b++)
        rmsnorm(s->xb + b * hp->dim, s->x + b * hp->dim, L->ffn_norm.data, hp->dim, hp->rms_eps);
    matmul_item gate_up[2] = {
        {.w = &L->w_gate, .y = s->hb, .ldy = hp->ffn},
        {.w = &L->w_up, .y = s->hb2, .ldy = hp->ffn},
    };
    matmul_group(s, s->xb, hp->dim, n_tok, gate_up, 2);
    swiglu_job job = {.gate = s->hb, .up = s->hb2, .n = (size_t)n_tok * hp->ffn};
    thread_pool_run(s->pool, swiglu_worker, &job);
    matmul_one(s, &L->w_down, s->hb, hp->ffn, n_tok, s->xb, hp->dim);
    for (size_t i = 0; i < (size_t)n_tok * hp->dim; i++)
        s->x[i] += s->xb[i];
}

static int check_forward_args(const model_state *s, const int32_t *tokens, uint32_t n,
                              uint32_t pos0, bool all_logits, garlic_error *err)
{
    if (n == 0 || n > s->max_batch)
        return garlic_error_set(err, GARLIC_EINVAL, "batch of %u tokens (1 to %u allowed)", n,
                                s->max_batch);
    if (all_logits && n > s->logit_rows)
        return garlic_error_set(err, GARLIC_EINVAL, "%u rows of logits asked, the state holds %u",
                                n, s->logit_rows);
    if (pos0 > s->n_ctx || n > s->n_ctx - pos0)
        return garlic_error_set(err, GARLIC_EINVAL, "positions %u..%u exceed the context of %u",
                                pos0, pos0 + n - 1, s->n_ctx);
    for (uint32_t b = 0; b < n; b++)
        if (tokens[b] < 0 || (uint32_t)tokens[b] >= s->m->hp.n_vocab)
            return garlic_error_set(err, GARLIC_EINVAL, "token id %d is outside the vocabulary "
                                    "(0..%u)", tokens[b], s->m->hp.n_vocab - 1);
    return GARLIC_OK;
}

int model_forward(model_state *s, const int32_t *tokens, uint32_t n, uint32_t pos0,
                  bool all_logits, const float **logits, garlic_error *err)
{
    int rc = check_forward_args(s, tokens, n, pos0, all_logits, err);
    if (rc)
        return rc;
    const model *m = s->m;
    const model_hparams *hp = &m->hp;
    const tensor_type_traits *embd = tensor_type_get(m->token_embd.type);
    size_t embd_row = row_bytes(m->token_embd.type, hp->dim);
    for (uint32_t b = 0; b < n; b++)
        embd->dequantize((const uint8_t *)m->token_embd.data + (size_t)tokens[b] * embd_row,
                         s->x + b * hp->dim, hp->dim);
    rope_table(s, pos0, n);
    for (uint32_t l = 0; l < hp->n_layer; l++) {
        attention_block(s, l, pos0, n);
        ffn_block(s, l, n);
    }
    uint32_t first = all_logits ? 0 : n - 1, n_out = n - first;
    for (uint32_t b = 0; b < n_out; b++)
        rmsnorm(s->xb + b * hp->dim, s->x + (first + b) * hp->dim, m->output_norm.data, hp->dim,
                hp->rms_eps);
    matmul_one(s, &m->output, s->xb, hp->dim, n_out, s->logits, hp->n_vocab);
    *logits = s->logits;
    return GARLIC_OK;
}
