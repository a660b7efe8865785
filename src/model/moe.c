// SPDX-License-Identifier: MIT
// Mixture-of-experts feed-forward layers. Each token's router logits (plus the router's bias
// in gpt-oss) choose n_expert_used experts and their weights (model_router: softmax then top
// k, top k then softmax, or DeepSeek-V3's sigmoid scores with an expert bias and groups). The batch's (token, expert)
// pairs are then sorted by expert into slots, so that each chosen expert's gate, up and down
// matrices are read once per forward call for all the tokens that chose it, and experts
// nobody chose are not read at all. The products of all chosen experts are one job on the
// pool, split into chunks of rows across the experts. A shared expert (Qwen2-MoE, DeepSeek)
// runs densely beside them, scaled by its sigmoid gate where the architecture has one. Under
// tensor parallelism each rank holds its part of every expert's width, or some experts
// whole (shard.c), so the output is the rank's partial sum, which the caller adds up
// between the ranks.
#include <math.h>
#include <string.h>

#include "kernels/kernels.h"
#include "model/internal.h"

static uint64_t round64(uint64_t n) { return (n + 63) / 64 * 64; }

uint64_t model_moe_scratch_layout(const model_hparams *hp, uint32_t max_batch, size_t act_stride,
                                  model_moe_scratch *moe, uint8_t *p)
{
    if (!hp->n_expert)
        return 0;
    model_moe_scratch sizes_only; // the slots' addresses, when only the sizes are asked
    moe = moe ? moe : &sizes_only;
    uint64_t B = max_batch, S = B * hp->n_expert_used, E = hp->n_expert, f = sizeof(float),
             u = sizeof(uint32_t);
    struct {
        void **slot;
        uint64_t bytes;
    } t[] = {
        {(void **)&moe->logits, B * E * f},
        {(void **)&moe->sel, E * f},
        {(void **)&moe->chosen, S * u},
        {(void **)&moe->weight, S * f},
        {(void **)&moe->slot_of, S * u},
        {(void **)&moe->token, S * u},
        {(void **)&moe->first, 2 * (E + 1) * u},
        {(void **)&moe->act_gate, S * act_stride},
        {(void **)&moe->act_up, S * act_stride},
        {(void **)&moe->gate, S * hp->ffn_exp * f},
        {(void **)&moe->up, S * hp->ffn_exp * f},
        {(void **)&moe->act_down, S * act_stride},
        {(void **)&moe->down, S * hp->dim * f},
        {(void **)&moe->items, 2 * E * sizeof(model_mat_item)},
    };
    uint64_t total = 0;
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        if (p)
            *t[i].slot = p + total;
        total += round64(t[i].bytes);
    }
    return total;
}

// The k largest of v[0..n) (ties: the lower index first), best first, into idx.
static void top_k(const float *v, uint32_t n, uint32_t k, uint32_t *idx)
{
    for (uint32_t j = 0; j < k; j++) {
        uint32_t best = UINT32_MAX;
        for (uint32_t e = 0; e < n; e++) {
            bool taken = false;
            for (uint32_t i = 0; i < j && !taken; i++)
                taken = idx[i] == e;
            if (!taken && (best == UINT32_MAX || v[e] > v[best]))
                best = e;
        }
        idx[j] = best;
    }
}

// In-place softmax of v[0..n) (max subtracted, sum in double).
static void softmax(float *v, uint32_t n)
{
    float max = v[0];
    for (uint32_t i = 1; i < n; i++)
        max = v[i] > max ? v[i] : max;
    double sum = 0;
    for (uint32_t i = 0; i < n; i++)
        sum += v[i] = expf(v[i] - max);
    for (uint32_t i = 0; i < n; i++)
        v[i] = (float)(v[i] / sum);
}

// Chooses one token's experts from its router logits (overwritten with scores): chosen[k]
// and weight[k] for k < n_expert_used. sel is n_expert floats of scratch.
static void route(const model_hparams *hp, const float *bias, float *logits, float *sel,
                  uint32_t *chosen, float *weight)
{
    uint32_t E = hp->n_expert, K = hp->n_expert_used;
    if (hp->router == MODEL_ROUTER_SOFTMAX)
        softmax(logits, E);
    else if (hp->router == MODEL_ROUTER_SIGMOID)
        for (uint32_t e = 0; e < E; e++)
            logits[e] = 1.0f / (1.0f + expf(-logits[e]));
    for (uint32_t e = 0; e < E; e++)
        sel[e] = logits[e] + (bias ? bias[e] : 0.0f);
    if (hp->n_expert_groups > 1) {
        // A group scores the sum of its two best; experts outside the best groups are out.
        uint32_t per = E / hp->n_expert_groups, G = hp->n_expert_groups, best[2], keep[64];
        float group[64];
        for (uint32_t g = 0; g < G; g++) {
            top_k(sel + g * per, per, per < 2 ? per : 2, best);
            group[g] = sel[g * per + best[0]] + (per < 2 ? 0 : sel[g * per + best[1]]);
        }
        top_k(group, G, hp->n_group_used, keep);
        for (uint32_t g = 0; g < G; g++) {
            bool kept = false;
            for (uint32_t i = 0; i < hp->n_group_used; i++)
                kept |= keep[i] == g;
            for (uint32_t e = 0; !kept && e < per; e++)
                sel[g * per + e] = -INFINITY;
        }
    }
    top_k(sel, E, K, chosen);
    for (uint32_t k = 0; k < K; k++)
        weight[k] = logits[chosen[k]];
    if (hp->router == MODEL_ROUTER_TOPK_SOFTMAX)
        softmax(weight, K);
    if (hp->expert_norm) {
        float sum = 0;
        for (uint32_t k = 0; k < K; k++)
            sum += weight[k];
        sum = sum > 6.103515625e-5f ? sum : 6.103515625e-5f; // the smallest normal half
        for (uint32_t k = 0; k < K; k++)
            weight[k] /= sum;
    }
    for (uint32_t k = 0; hp->expert_scale != 1.0f && k < K; k++)
        weight[k] *= hp->expert_scale;
}

// Converts the input rows of the slots (this thread's share) for the products of a phase:
// from rows of `in` (the slot's token's row when token is given) to activation rows for
// weights of type[0] (and type[1]).
typedef struct convert_job {
    const float *in;
    uint64_t in_stride;
    const uint32_t *token; // the token of each slot, or NULL: slot j reads row j
    uint32_t n_slots;
    uint32_t type[2];
    uint8_t *out[2];  // out[1] NULL when one format serves both
    size_t stride[2]; // bytes between converted rows: the kernel's act row size
    uint64_t n;       // values per row
} convert_job;

static void convert_worker(void *ctx, int ith, int nth)
{
    convert_job *job = ctx;
    for (uint32_t j = (uint32_t)ith; j < job->n_slots; j += (uint32_t)nth) {
        const float *row = job->in + (job->token ? job->token[j] : j) * job->in_stride;
        for (int i = 0; i < 2 && job->out[i]; i++)
            kernel_act_convert(job->type[i], row, job->out[i] + j * job->stride[i],
                               (int64_t)job->n);
    }
}

static void convert(model_state *s, convert_job *job)
{
    if ((uint64_t)job->n_slots * job->n <= 16384)
        convert_worker(job, 0, 1);
    else
        thread_pool_run(s->pool, convert_worker, job);
}

// Adds each slot's expert bias row to its output row, for the slots of experts [e0, e0 +
// held) (bias: their rows of n, in order).
static void add_bias(const model_tensor *bias, const uint32_t *first, uint32_t e0, uint32_t held,
                     float *y, uint64_t n)
{
    if (!bias->data)
        return;
    for (uint32_t e = e0; e < e0 + held; e++)
        for (uint32_t j = first[e]; j < first[e + 1]; j++)
            for (uint64_t i = 0; i < n; i++)
                y[j * n + i] += ((const float *)bias->data)[(e - e0) * n + i];
}

// The shared expert over the batch, into xb (which it reads first): act(gate) * up, down,
// scaled by sigmoid(sh_router . x) where the layer has that gate.
static void shared_expert(model_state *s, const model_layer *L, uint32_t n_tok)
{
    const model_hparams *hp = &s->m->hp;
    float *gate_logit = s->moe.logits; // free once every token is routed
    for (uint32_t b = 0; L->sh_router.data && b < n_tok; b++)
        gate_logit[b] = kernel_dot_f32(s->xb + b * hp->dim, L->sh_router.data, hp->dim);
    model_gated_ffn(s, &L->sh_gate, &L->sh_up, &L->sh_down, n_tok);
    for (uint32_t b = 0; L->sh_router.data && b < n_tok; b++) {
        float g = 1.0f / (1.0f + expf(-gate_logit[b]));
        for (uint32_t i = 0; i < hp->dim; i++)
            s->xb[b * hp->dim + i] *= g;
    }
}

void model_moe_block(model_state *s, uint32_t l, uint32_t n_tok)
{
    const model_hparams *hp = &s->m->hp;
    const model_layer *L = &s->m->layers[l];
    model_moe_scratch *moe = &s->moe;
    uint32_t E = hp->n_expert, K = hp->n_expert_used, S = n_tok * K, fe = hp->ffn_exp;
    model_matmul(s, &L->router, s->xb, hp->dim, n_tok, moe->logits, E);
    for (uint32_t b = 0; L->router_logit_bias.data && b < n_tok; b++) // gpt-oss
        kernel_axpy_f32(moe->logits + (size_t)b * E, 1.0f, L->router_logit_bias.data, E);
    for (uint32_t b = 0; b < n_tok; b++)
        route(hp, L->router_bias.data, moe->logits + (size_t)b * E, moe->sel, moe->chosen + b * K,
              moe->weight + b * K);
    // Sort the (token, k) pairs by expert: first[e] is expert e's first slot.
    uint32_t *first = moe->first, *cursor = moe->first + E + 1;
    memset(first, 0, (E + 1) * sizeof *first);
    for (uint32_t i = 0; i < S; i++)
        first[moe->chosen[i] + 1]++;
    for (uint32_t e = 0; e < E; e++)
        first[e + 1] += first[e];
    memcpy(cursor, first, (E + 1) * sizeof *first);
    for (uint32_t i = 0; i < S; i++) {
        uint32_t j = cursor[moe->chosen[i]]++;
        moe->token[j] = i / K;
        moe->slot_of[i] = j;
    }
    // The experts this process holds (under tensor parallelism by whole experts, shard.c,
    // a range of them; else all) and their slots, [j0, j1): the others' are skipped.
    uint32_t e0 = s->m->tp_n_expert ? s->m->tp_expert0 : 0;
    uint32_t held = s->m->tp_n_expert ? s->m->tp_n_expert : E;
    uint32_t j0 = first[e0], j1 = first[e0 + held];
    // Each slot's input row in the formats of the gate and up matrices.
    size_t sg = kernel_act_row_size(L->exp_gate.type, (int64_t)hp->dim),
           su = kernel_act_row_size(L->exp_up.type, (int64_t)hp->dim),
           sd = kernel_act_row_size(L->exp_down.type, (int64_t)fe);
    bool same = kernel_act_type(L->exp_gate.type) == kernel_act_type(L->exp_up.type);
    uint8_t *act_up = same ? moe->act_gate : moe->act_up;
    convert_job cj = {.in = s->xb,
                      .in_stride = hp->dim,
                      .token = moe->token + j0,
                      .n_slots = j1 - j0,
                      .type = {L->exp_gate.type, L->exp_up.type},
                      .out = {moe->act_gate + j0 * sg, same ? NULL : moe->act_up + j0 * su},
                      .stride = {sg, su},
                      .n = hp->dim};
    convert(s, &cj);
    if (L->sh_up.data)
        shared_expert(s, L, n_tok); // xb now holds the shared expert's output
    // Gate and up of every chosen expert over its slots.
    model_mat_item *items = moe->items;
    int n = 0;
    for (uint32_t e = e0; e < e0 + held; e++) {
        uint32_t j = first[e], c = first[e + 1] - first[e];
        if (!c)
            continue;
        items[n++] = (model_mat_item){
            &L->exp_gate, e - e0, moe->act_gate + j * sg, c, moe->gate + (size_t)j * fe, fe};
        items[n++] = (model_mat_item){
            &L->exp_up, e - e0, act_up + j * su, c, moe->up + (size_t)j * fe, fe};
    }
    model_matmul_mats(s, items, n, S <= DECODE_ROWS * 8);
    add_bias(&L->exp_gate_b, first, e0, held, moe->gate, fe);
    add_bias(&L->exp_up_b, first, e0, held, moe->up, fe);
    model_gated_act(s, s->m->arch->act, moe->gate + (size_t)j0 * fe, moe->up + (size_t)j0 * fe,
                    (size_t)(j1 - j0) * fe);
    // Down of every chosen expert.
    convert_job dj = {.in = moe->gate + (size_t)j0 * fe,
                      .in_stride = fe,
                      .n_slots = j1 - j0,
                      .type = {L->exp_down.type},
                      .out = {moe->act_down + j0 * sd},
                      .stride = {sd},
                      .n = fe};
    convert(s, &dj);
    n = 0;
    for (uint32_t e = e0; e < e0 + held; e++) {
        uint32_t j = first[e], c = first[e + 1] - first[e];
        if (c)
            items[n++] = (model_mat_item){
                &L->exp_down, e - e0, moe->act_down + j * sd, c, moe->down + (size_t)j * hp->dim,
                hp->dim};
    }
    model_matmul_mats(s, items, n, S <= DECODE_ROWS * 8);
    add_bias(&L->exp_down_b, first, e0, held, moe->down, hp->dim);
    // xb = sum over k of weight * expert output (+ the shared expert's output).
    float *acc = s->hb; // free again: one row of dim at a time
    for (uint32_t b = 0; b < n_tok; b++) {
        memset(acc, 0, hp->dim * sizeof *acc);
        for (uint32_t k = 0; k < K; k++) {
            uint32_t j = moe->slot_of[b * K + k];
            if (j >= j0 && j < j1) // (an expert this process holds)
                kernel_axpy_f32(acc, moe->weight[b * K + k], moe->down + (size_t)j * hp->dim,
                                hp->dim);
        }
        float *out = s->xb + (size_t)b * hp->dim; // (the shared expert's output, read first)
        for (uint32_t i = 0; i < hp->dim; i++)
            out[i] = L->sh_up.data ? acc[i] + out[i] : acc[i];
    }
}
