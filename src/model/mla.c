// SPDX-License-Identifier: MIT
// Multi-head latent attention (DeepSeek-V2/V3, Kimi-K2), the steps around the attention
// proper of forward.c. Each position caches one K row: a normed latent of kv_lora_rank values
// (attn_kv_a_mqa, attn_kv_a_norm) followed by a RoPE key of n_rot values shared by the heads.
// A head's query has a no-RoPE part, which its attn_k_b maps into the latent ("absorbed":
// q_nope . (W_k latent) = (W_k^T q_nope) . latent), and a RoPE part, so that every head scores
// positions against the same cached row, as one KV head of kv_lora_rank + n_rot values would;
// the values are the latent itself, and each head's attention output goes through its
// attn_v_b before attn_output. The per-head products run as one batch of matrices on the pool.
#include <string.h>

#include "kernels/kernels.h"
#include "model/internal.h"

// Converts row (h, b) = in + b * tok_stride + h * head_stride of n values to the activation
// format of w, at out + (h * n_tok + b) * row_bytes: each head's rows together.
typedef struct head_convert_job {
    uint32_t type;
    const float *in;
    uint64_t tok_stride, head_stride, n;
    uint32_t n_heads, n_tok;
    uint8_t *out;
    size_t row_bytes;
} head_convert_job;

static void head_convert_worker(void *ctx, int ith, int nth)
{
    const head_convert_job *job = ctx;
    for (uint32_t r = (uint32_t)ith; r < job->n_heads * job->n_tok; r += (uint32_t)nth) {
        uint32_t h = r / job->n_tok, b = r % job->n_tok;
        kernel_act_convert(job->type, job->in + b * job->tok_stride + h * job->head_stride,
                           job->out + (size_t)r * job->row_bytes, (int64_t)job->n);
    }
}

// For every head h (matrix h of the 3-D w) and token b: y[h * y_head_stride + b * ldy ...] =
// w[h] * in[b * tok_stride + h * head_stride ...]. act is scratch for the converted inputs
// (n_head * n_tok rows of kernel_act_row_size(w) bytes).
static void heads_matmul(model_state *s, const model_tensor *w, const float *in,
                         uint64_t tok_stride, uint64_t head_stride, uint32_t n_tok, uint8_t *act,
                         float *y, uint64_t y_head_stride, uint64_t ldy)
{
    uint32_t n_heads = (uint32_t)w->n_mat;
    head_convert_job cj = {.type = w->type,
                           .in = in,
                           .tok_stride = tok_stride,
                           .head_stride = head_stride,
                           .n = w->n_in,
                           .n_heads = n_heads,
                           .n_tok = n_tok,
                           .out = act,
                           .row_bytes = kernel_act_row_size(w->type, (int64_t)w->n_in)};
    if ((uint64_t)n_heads * n_tok * w->n_in <= 16384)
        head_convert_worker(&cj, 0, 1);
    else
        thread_pool_run(s->pool, head_convert_worker, &cj);
    model_mat_item *items = s->head_items;
    for (uint32_t h = 0; h < n_heads; h++)
        items[h] = (model_mat_item){.w = w,
                                    .mat = h,
                                    .act = act + (size_t)h * n_tok * cj.row_bytes,
                                    .n_act = n_tok,
                                    .y = y + h * y_head_stride,
                                    .ldy = ldy};
    model_matmul_mats(s, items, (int)n_heads, n_tok <= DECODE_ROWS);
}

void model_mla_qk(model_state *s, uint32_t l, uint32_t n_tok)
{
    const model *m = s->m;
    const model_hparams *hp = &m->hp;
    const model_layer *L = &m->layers[l];
    uint32_t heads = hp->n_head, kv = hp->kv_lora_rank, rot = hp->n_rot, rank = hp->q_lora_rank;
    uint32_t qk = hp->head_dim_k_mla, nope = qk - rot, hd_k = hp->head_dim_k; // kv + rot
    uint64_t q_stride = (uint64_t)heads * qk, abs_stride = (uint64_t)heads * hd_k;
    // The heads' queries into q_head, the latent and the RoPE key into k (wq_a or wq beside
    // wkv_a, both reading the normed rows); the low-rank queries are normed in between.
    model_matmul_item first[2] = {
        {.w = L->wq_a.data ? &L->wq_a : &L->wq,
         .y = L->wq_a.data ? s->q_lora : s->q_head,
         .ldy = L->wq_a.data ? rank : q_stride},
        {.w = &L->wkv_a, .y = s->k, .ldy = hd_k},
    };
    model_matmul_group(s, s->xb, hp->dim, n_tok, first, 2);
    if (L->wq_a.data) {
        for (uint32_t b = 0; b < n_tok; b++)
            model_rmsnorm(s->q_lora + (size_t)b * rank, s->q_lora + (size_t)b * rank,
                          L->q_a_norm.data, rank, hp->rms_eps);
        model_matmul(s, &L->wq_b, s->q_lora, rank, n_tok, s->q_head, q_stride);
    }
    uint32_t half = rot / 2;
    for (uint32_t b = 0; b < n_tok; b++) {
        float *q = s->q_head + b * q_stride, *k = s->k + (size_t)b * hd_k;
        model_rmsnorm(k, k, L->kv_a_norm.data, kv, hp->rms_eps);
        size_t row = ((size_t)L->rope * s->max_batch + b) * half; // the layer's RoPE table
        const float *c = s->rope_cos + row, *sn = s->rope_sin + row;
        model_rope_apply(q + nope, heads, qk, rot, m->arch->rope_neox, c, sn);
        model_rope_apply(k + kv, 1, hd_k, rot, m->arch->rope_neox, c, sn);
        // Each head's RoPE part follows its absorbed part, as the cached row's RoPE key does.
        for (uint32_t h = 0; h < heads; h++)
            memcpy(s->q + b * abs_stride + (size_t)h * hd_k + kv, q + (size_t)h * qk + nope,
                   rot * sizeof(float));
    }
    // Each head's no-RoPE query into the latent: q[b][h][0..kv) = wk_b[h] * q_head[b][h][0..nope).
    // xb is free (its rows were read above) and holds the converted queries.
    heads_matmul(s, &L->wk_b, s->q_head, q_stride, qk, n_tok, (uint8_t *)s->xb, s->q, hd_k,
                 abs_stride);
}

void model_mla_values(model_state *s, uint32_t l, uint32_t n_tok)
{
    const model_hparams *hp = &s->m->hp;
    const model_layer *L = &s->m->layers[l];
    uint32_t heads = hp->n_head, kv = hp->kv_lora_rank, hd_v = hp->head_dim_v_mla;
    // q is free (the attention has read it) and holds the converted latent outputs.
    heads_matmul(s, &L->wv_b, s->xb, (uint64_t)heads * kv, kv, n_tok, (uint8_t *)s->q, s->q_head,
                 hd_v, (uint64_t)heads * hd_v);
}
