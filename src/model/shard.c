// SPDX-License-Identifier: MIT
// Tensor parallelism: cuts a loaded model down to one rank's share, after which the forward
// pass runs it as a narrower model whose attention output and FFN output are partial sums
// that the ranks add together (dist_all_reduce_sum in forward.c). With T ranks, rank r keeps
// (parts as dist_part_first splits: n / T each, the later ranks one more where T does not
// divide n)
//   wq, wk, wv (+ biases, sinks)  rows of its heads: n_head / T query heads and n_head_kv / T
//                                 KV heads, contiguous (a group of query heads stays with its
//                                 KV head), views into the mapping; where T is a multiple
//                                 of n_head_kv, the one KV head its query heads read (held
//                                 by T / n_head_kv ranks);
//   w_gate, w_up                  its part of the FFN's rows, views;
//   wo, w_down                    split by input columns (MODEL_TP_BY_INPUT): the columns
//                                 matching its heads' values / its FFN part, copied; or,
//                                 where those columns are not whole quant blocks of the
//                                 type (or are permuted), split by output rows
//                                 (MODEL_TP_BY_OUTPUT): its part of the dim rows (and of
//                                 the bias), a view; the forward pass then gathers the
//                                 input whole and the output rows (model_layer.tp_wo,
//                                 tp_down say which, layer by layer);
//   experts (_exps)               its part of every expert's width (ffn_exp) in whole
//                                 blocks of the down matrices' type (moe_share_of): the rows
//                                 of every expert's gate and up (and of their biases) and
//                                 the matching input columns of every expert's down, copied;
//                                 the down biases on rank 0 alone; or, where those blocks do
//                                 not split evenly between the ranks and the experts do, or
//                                 are fewer than the ranks (moe_by_expert), its part of the
//                                 experts, whole (views of their matrices and bias rows),
//                                 whose chosen slots alone the rank computes
//                                 (model.tp_expert0); the router whole, so every
//                                 rank chooses the same experts and the layer's output is a
//                                 partial sum, as the dense FFN's;
//   shared expert (_shexp)        as the dense FFN, in whole blocks of its down's type (gate
//                                 and up rows views, down columns copied), its gate whole; or,
//                                 narrower than T blocks, all of it on rank 0;
//   latent attention (MLA)        its heads' rows of attn_q / attn_q_b and its heads' attn_k_b
//                                 and attn_v_b matrices, views; the latent's projections
//                                 (attn_kv_a_mqa, attn_q_a, their norms) whole: every rank
//                                 computes and caches the whole latent (one KV head);
//   output                        its part of the vocabulary's rows, a view, whose logits
//                                 the ranks then gather (forward.c);
// and everything else whole (norms, the token embedding). The hyper-parameters then say
// the share's n_head, n_head_kv, ffn, ffn_exp and ffn_shexp, so the scratch, the KV cache
// (its KV heads only) and the planner size the share (hp.tp_gather_width: the whole input a
// product split by output rows gathers). A column slice of a quantized row is whole blocks,
// so its start and width must be multiples of the type's block size (32, or 256 for
// K-quants).
// Every part of a tensor the share leaves out is recorded (model.tp_cuts), so that the
// planner counts a rank's weights exactly; model_shard_shape makes the same cuts to the shapes
// alone, for planning without loading.
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/alloc.h"
#include "dist/dist.h"
#include "model/model.h"
#include "tensor/types.h"

static uint64_t row_size(uint32_t type, uint64_t n)
{
    uint64_t b = 0;
    tensor_row_size(type, n, &b);
    return b;
}

// Bytes and values of tensor t (a matrix of n_out rows, or a vector of n_in values).
static uint64_t bytes_of(const model_tensor *t)
{
    uint64_t rows = t->n_out ? t->n_out : 1, mats = t->n_mat ? t->n_mat : 1;
    return row_size(t->type, t->n_in) * rows * mats;
}

static uint64_t values_of(const model_tensor *t)
{
    return t->n_in * (t->n_out ? t->n_out : 1) * (t->n_mat ? t->n_mat : 1);
}

// Records in m that layer l's tensor, `before` the cut and t after it, left out the
// difference (nothing when it kept everything).
static void record_cut(model *m, uint32_t l, const model_tensor *before, const model_tensor *t)
{
    uint64_t bytes = bytes_of(before) - (t->data ? bytes_of(t) : 0);
    if (!before->data || bytes == 0)
        return;
    m->tp_cuts[m->n_tp_cuts++] = (model_shard_cut){.layer = l,
                                                   .type = before->type,
                                                   .values = values_of(before) -
                                                       (t->data ? values_of(t) : 0),
                                                   .bytes = bytes};
}

// Rows [r0, r0 + n) of t, as a view of the same memory (shapes only when t has no data).
static void keep_rows(model *m, uint32_t l, model_tensor *t, uint64_t r0, uint64_t n)
{
    model_tensor before = *t;
    uint64_t row = row_size(t->type, t->n_in);
    if (t->data)
        t->data = (const uint8_t *)t->data + r0 * row;
    t->n_out = n, t->mat_bytes = n * row;
    record_cut(m, l, &before, t);
}

// Values [v0, v0 + n) of a vector (a bias, the sinks), as a view; absent stays absent.
static void keep_values(model *m, uint32_t l, model_tensor *t, uint64_t v0, uint64_t n)
{
    if (!t->data)
        return;
    model_tensor before = *t;
    t->data = (const float *)t->data + v0;
    t->n_in = n;
    record_cut(m, l, &before, t);
}

// How tensor parallelism splits matrix t, which reads a vector of t->n_in values split
// between size ranks as dist_part_first splits it: by input columns where every rank's part
// is whole blocks of its type and in order, else by output rows.
static model_tp_split split_of(const model_tensor *t, uint32_t size)
{
    uint32_t block = tensor_type_get(t->type)->block_size;
    if (t->perm) // (act-order GPTQ: a rank's columns would be scattered)
        return MODEL_TP_BY_OUTPUT;
    for (uint32_t r = 0; r < size; r++)
        if (dist_part_first(t->n_in, r, size) % block || dist_part_size(t->n_in, r, size) % block)
            return MODEL_TP_BY_OUTPUT;
    return MODEL_TP_BY_INPUT;
}

// The unit in which tensor parallelism splits the experts' width (shared false: ffn_exp)
// or the shared expert's (ffn_shexp): the largest block of the types of the down matrices
// that read it, over the layers (block sizes, 1, 32 and 256, divide one another), so that
// every rank's columns of every layer's down matrix are whole blocks.
static uint64_t moe_unit(const model *m, bool shared)
{
    uint64_t unit = 1;
    for (uint32_t l = 0; l < m->hp.n_layer; l++) {
        const model_tensor *down = shared ? &m->layers[l].sh_down : &m->layers[l].exp_down;
        uint64_t block = down->data ? tensor_type_get(down->type)->block_size : 1;
        unit = block > unit ? block : unit;
    }
    return unit;
}

// Whether size ranks split the experts by whole experts (dist_part_first's split of the
// n_expert experts) rather than each expert by width: where the width's whole blocks
// (moe_unit) do not split evenly between the ranks and the experts do, or where those blocks
// are fewer than the ranks and the experts are not. Even parts of every expert balance the
// work of every token; whole experts balance it only over many tokens (a token's experts may
// lie on one rank), but need no copies.
static bool moe_by_expert(const model *m, uint32_t size)
{
    const model_hparams *hp = &m->hp;
    if (!hp->n_expert || size <= 1)
        return false;
    uint64_t blocks = hp->ffn_exp / moe_unit(m, false);
    if (blocks % size == 0)
        return false;
    return hp->n_expert % size == 0 || (blocks < size && hp->n_expert >= size);
}

// A rank's share of the experts of every layer (moe_share_of).
typedef struct moe_share {
    uint64_t first, n;       // its part of every expert's width (all of it by whole experts)
    uint32_t e0, e_count;    // its whole experts [e0, e0 + e_count); 0: split by width
    uint64_t sh_first, sh_n; // its part of the shared expert's width
    bool sh_rank0;           // the shared expert whole on rank 0 alone (fewer blocks than ranks)
} moe_share;

// Rank's share of the experts: dist_part_first's split of the whole units (moe_unit) of
// every expert's width, or its whole experts (moe_by_expert); its part of the shared
// expert's width likewise, or the whole of it where that has fewer blocks than ranks (then
// kept by rank 0 alone, its output joining the sum once).
static void moe_share_of(const model *m, uint32_t rank, uint32_t size, moe_share *sh)
{
    const model_hparams *hp = &m->hp;
    uint64_t unit = moe_unit(m, false), sh_unit = moe_unit(m, true);
    *sh = (moe_share){.n = hp->ffn_exp, .sh_n = hp->ffn_shexp};
    if (moe_by_expert(m, size)) {
        sh->e0 = (uint32_t)dist_part_first(hp->n_expert, rank, size);
        sh->e_count = (uint32_t)dist_part_size(hp->n_expert, rank, size);
    } else {
        sh->first = dist_part_first(hp->ffn_exp / unit, rank, size) * unit;
        sh->n = dist_part_size(hp->ffn_exp / unit, rank, size) * unit;
    }
    sh->sh_rank0 = hp->ffn_shexp && hp->ffn_shexp / sh_unit < size;
    if (!sh->sh_rank0) {
        sh->sh_first = dist_part_first(hp->ffn_shexp / sh_unit, rank, size) * sh_unit;
        sh->sh_n = dist_part_size(hp->ffn_shexp / sh_unit, rank, size) * sh_unit;
    }
}

// Refuses, naming it, an experts' width that size ranks can neither each take whole blocks
// of nor each take whole experts of.
static int check_moe_width(const model *m, uint32_t size, garlic_error *err)
{
    uint64_t width = m->hp.ffn_exp, unit = moe_unit(m, false);
    if (!m->hp.n_expert || moe_by_expert(m, size) || (width % unit == 0 && width / unit >= size))
        return GARLIC_OK;
    unsigned long long blocks = width / unit;
    return garlic_error_set(err, GARLIC_EUNSUPPORTED,
                            "%s: --tensor-parallel %u exceeds the experts' width: their %llu "
                            "values are %llu whole block%s of %llu (ffn_down_exps's type), "
                            "fewer than the ranks, as are the %u experts",
                            m->file->path, size, (unsigned long long)width, blocks,
                            blocks == 1 ? "" : "s", (unsigned long long)unit, m->hp.n_expert);
}

int model_shard_check(const model *m, uint32_t size, garlic_error *err)
{
    const model_hparams *hp = &m->hp;
    const char *path = m->file->path;
    if (size <= 1)
        return GARLIC_OK;
    if (model_embeddings_only(m))
        return garlic_error_set(err, GARLIC_EUNSUPPORTED,
                                "%s: tensor parallelism splits decoder models; this %s model "
                                "computes embeddings only (no causal attention), which one "
                                "process serves",
                                path, m->arch->name);
    if (!hp->n_head_kv || hp->n_head % size || (hp->n_head_kv % size && size % hp->n_head_kv))
        return garlic_error_set(err, GARLIC_EUNSUPPORTED,
                                "%s: --tensor-parallel %u must divide the %u attention heads, "
                                "and divide the %u KV heads or be a multiple of them",
                                path, size, hp->n_head, hp->n_head_kv);
    bool dense = hp->n_expert == 0 || hp->n_dense_lead > 0;
    if (dense && hp->ffn < size)
        return garlic_error_set(err, GARLIC_EUNSUPPORTED,
                                "%s: --tensor-parallel %u exceeds the feed-forward width %u", path,
                                size, hp->ffn);
    return check_moe_width(m, size, err);
}

// Drops the whole pages of the mapping inside [from, from + bytes) that a copy replaced: the
// rank holds only its share.
static void drop_pages(const uint8_t *from, uint64_t bytes)
{
    uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
    uintptr_t first = ((uintptr_t)from + page - 1) / page * page;
    uintptr_t last = ((uintptr_t)from + bytes) / page * page;
    if (last > first)
        madvise((void *)first, last - first, MADV_DONTNEED);
}

// Copies input columns [c0, c0 + cols) of every row of t (of every expert's matrix) to `to`
// (rows of the slice's size, contiguous), points t at them and drops the whole pages of the
// mapping t was read from: the rank holds only its share. to NULL: the shape alone (t->data
// is then not its layout).
static void keep_columns(model *m, uint32_t l, model_tensor *t, uint64_t c0, uint64_t cols,
                         uint8_t *to)
{
    model_tensor before = *t;
    uint64_t row = row_size(t->type, t->n_in), skip = row_size(t->type, c0);
    uint64_t slice = row_size(t->type, cols);
    const uint8_t *from = t->data;
    if (!to) {
        t->n_in = cols, t->mat_bytes = slice * t->n_out;
        record_cut(m, l, &before, t);
        return;
    }
    uint64_t rows = t->n_out * (t->n_mat ? t->n_mat : 1); // (the experts' one after another)
    for (uint64_t r = 0; r < rows; r++)
        memcpy(to + r * slice, from + r * row + skip, slice);
    drop_pages(from, row * rows);
    t->data = to, t->n_in = cols, t->mat_bytes = slice * t->n_out;
    record_cut(m, l, &before, t);
}

// Rows [r0, r0 + n) of every expert's matrix of t (n_mat matrices), copied to `to` (the
// experts' kept rows one after another) as keep_columns copies; to NULL: the shape alone.
static void keep_expert_rows(model *m, uint32_t l, model_tensor *t, uint64_t r0, uint64_t n,
                             uint8_t *to)
{
    model_tensor before = *t;
    uint64_t row = row_size(t->type, t->n_in);
    const uint8_t *from = t->data;
    if (to) {
        for (uint64_t e = 0; e < t->n_mat; e++)
            memcpy(to + e * n * row, from + e * t->mat_bytes + r0 * row, n * row);
        drop_pages(from, t->mat_bytes * t->n_mat);
        t->data = to;
    }
    t->n_out = n, t->mat_bytes = n * row;
    record_cut(m, l, &before, t);
}

// Tensors a layer's share cuts, at most (record_cut's records for one layer: 9 of the
// attention, 3 more of latent attention, 6 of the experts, 4 of the shared expert).
enum { CUTS_PER_LAYER = 24 };

static uint64_t round64(uint64_t n) { return (n + 63) / 64 * 64; }

// Bytes of the copies of layer L that rank keeps, each rounded up to 64: the columns of wo
// and w_down where they are split by input columns (tp_wo, tp_down set); where the experts
// are split by width, their rows of gate and up and columns of down and of the gate and up
// biases (sh: the rank's share), and the shared expert's down columns where it is split.
static uint64_t copy_bytes(const model_layer *L, uint32_t rank, uint32_t size, const moe_share *sh)
{
    uint64_t total = 0;
    const model_tensor *ws[] = {&L->wo, &L->w_down};
    const uint8_t splits[] = {L->tp_wo, L->tp_down};
    for (int i = 0; i < 2; i++) {
        if (splits[i] != MODEL_TP_BY_INPUT || !ws[i]->data)
            continue;
        uint64_t cols = dist_part_size(ws[i]->n_in, rank, size);
        total += round64(row_size(ws[i]->type, cols) * ws[i]->n_out);
    }
    const model_tensor *rows[] = {&L->exp_gate, &L->exp_up};
    for (int i = 0; i < 2 && !sh->e_count; i++) // (whole experts are views)
        if (rows[i]->data)
            total += round64(row_size(rows[i]->type, rows[i]->n_in) * sh->n * rows[i]->n_mat);
    const model_tensor *cols[] = {&L->exp_down, &L->exp_gate_b, &L->exp_up_b};
    for (int i = 0; i < 3 && !sh->e_count; i++)
        if (cols[i]->data)
            total += round64(row_size(cols[i]->type, sh->n) * cols[i]->n_out * cols[i]->n_mat);
    if (L->sh_down.data && !sh->sh_rank0)
        total += round64(row_size(L->sh_down.type, sh->sh_n) * L->sh_down.n_out);
    return total;
}

// Leaves tensor t (an output bias of a product whose ranks' partial sums are added) to rank
// 0 alone: on other ranks it becomes absent.
static void keep_on_rank0(model *m, uint32_t l, model_tensor *t, uint32_t rank)
{
    if (rank == 0 || !t->data)
        return;
    model_tensor before = *t;
    memset(t, 0, sizeof *t);
    record_cut(m, l, &before, t);
}

// The part [first, first + n) of an expert matrix's rows (rows true) or input columns, copied
// to *at (advanced; NULL: the shape alone); absent stays absent.
static void copy_part(model *m, uint32_t l, model_tensor *t, bool rows, uint64_t first, uint64_t n,
                      uint8_t **at)
{
    if (!t->data)
        return;
    if (rows)
        keep_expert_rows(m, l, t, first, n, *at);
    else
        keep_columns(m, l, t, first, n, *at);
    if (*at)
        *at += round64(t->mat_bytes * t->n_mat);
}

// Matrices [h0, h0 + n) of the 3-D t (one a head or an expert), as a view of the same memory.
static void keep_matrices(model *m, uint32_t l, model_tensor *t, uint64_t h0, uint64_t n)
{
    model_tensor before = *t;
    if (t->data)
        t->data = (const uint8_t *)t->data + h0 * t->mat_bytes;
    t->n_mat = n;
    record_cut(m, l, &before, t);
}

// cut_experts' split by width of the experts (not the shared expert).
static void cut_width(model *m, uint32_t l, uint32_t rank, uint64_t first, uint64_t n, uint8_t **at)
{
    model_layer *L = &m->layers[l];
    copy_part(m, l, &L->exp_gate, true, first, n, at);
    copy_part(m, l, &L->exp_up, true, first, n, at);
    copy_part(m, l, &L->exp_down, false, first, n, at);
    copy_part(m, l, &L->exp_gate_b, false, first, n, at);
    copy_part(m, l, &L->exp_up_b, false, first, n, at);
    keep_on_rank0(m, l, &L->exp_down_b, rank);
}

// Cuts layer l's experts to rank's share sh (moe_share_of): its part of each expert's
// width, as the dense FFN is cut by input columns: the rows of every expert's gate and up
// (and their biases' values), the matching columns of every expert's down, so that the
// layer's output is a partial sum the ranks add, the down biases joining it once, on rank 0;
// or its whole experts (views of their matrices and bias rows), whose chosen slots it sums,
// again a partial sum. The shared expert is cut by width too, or kept whole by rank 0. The
// router stays whole: every rank chooses the same experts.
static void cut_experts(model *m, uint32_t l, uint32_t rank, const moe_share *sh, uint8_t **at)
{
    model_layer *L = &m->layers[l];
    if (sh->e_count) {
        model_tensor *mats[] = {&L->exp_gate, &L->exp_up, &L->exp_down};
        model_tensor *biases[] = {&L->exp_gate_b, &L->exp_up_b, &L->exp_down_b};
        for (int i = 0; i < 3; i++) {
            keep_matrices(m, l, mats[i], sh->e0, sh->e_count);
            keep_rows(m, l, biases[i], sh->e0, sh->e_count); // (one row an expert)
        }
    } else {
        cut_width(m, l, rank, sh->first, sh->n, at);
    }
    if (!L->sh_down.data)
        return;
    if (sh->sh_rank0) {
        model_tensor *whole[] = {&L->sh_gate, &L->sh_up, &L->sh_down, &L->sh_router};
        for (int i = 0; i < 4; i++)
            keep_on_rank0(m, l, whole[i], rank);
        return;
    }
    keep_rows(m, l, &L->sh_gate, sh->sh_first, sh->sh_n);
    keep_rows(m, l, &L->sh_up, sh->sh_first, sh->sh_n);
    copy_part(m, l, &L->sh_down, false, sh->sh_first, sh->sh_n, at);
}

// Cuts matrix t of layer l (wo or w_down, with its bias, or NULL) as `split` says: its
// input columns of rank's part, copied to *at (advanced; NULL: shapes alone), or its part of
// the output rows. An output bias of a product split by input columns joins the sum once,
// on rank 0.
static void cut_product(model *m, uint32_t l, model_tensor *t, model_tensor *bias,
                        model_tp_split split, uint32_t rank, uint32_t size, uint8_t **at)
{
    if (!t->data) // (a layer of experts has no dense w_down)
        return;
    if (split == MODEL_TP_BY_OUTPUT) {
        uint64_t r0 = dist_part_first(t->n_out, rank, size),
                 n = dist_part_size(t->n_out, rank, size);
        keep_rows(m, l, t, r0, n);
        if (bias)
            keep_values(m, l, bias, r0, n);
        return;
    }
    uint64_t c0 = dist_part_first(t->n_in, rank, size), n = dist_part_size(t->n_in, rank, size);
    keep_columns(m, l, t, c0, n, *at);
    if (*at)
        *at += round64(t->mat_bytes);
    if (bias)
        keep_on_rank0(m, l, bias, rank);
}

// Cuts layer l's latent attention to heads [head0, head0 + heads), each query q_dim wide
// (wq's rows are cut by the caller): the rows of attn_q_b, the heads' attn_k_b and attn_v_b,
// views. The latent's projection (attn_kv_a_mqa, its norm) and the low-rank queries'
// (attn_q_a, its norm) stay whole: every rank computes and caches the whole latent, which
// its heads all read.
static void cut_latent(model *m, uint32_t l, uint64_t head0, uint64_t heads, uint64_t q_dim)
{
    model_layer *L = &m->layers[l];
    keep_rows(m, l, &L->wq_b, head0 * q_dim, heads * q_dim);
    keep_matrices(m, l, &L->wk_b, head0, heads);
    keep_matrices(m, l, &L->wv_b, head0, heads);
}

// model_shard (copy: columns copied to an anonymous mapping) or model_shard_shape (shapes
// alone).
static int shard(model *m, uint32_t rank, uint32_t size, bool copy, garlic_error *err)
{
    int rc = model_shard_check(m, size, err);
    if (rc || size <= 1)
        return rc;
    model_hparams *hp = &m->hp;
    // Query heads, KV heads (one, held by several ranks, where size is a multiple of them)
    // and the FFN's rows of this rank.
    uint64_t heads = hp->n_head / size, head0 = rank * heads;
    uint64_t kv_heads = hp->n_head_kv >= size ? hp->n_head_kv / size : 1;
    uint64_t kv0 = (uint64_t)rank * hp->n_head_kv / size;
    uint64_t ffn0 = dist_part_first(hp->ffn, rank, size), ffn = dist_part_size(hp->ffn, rank, size);
    moe_share experts;
    moe_share_of(m, rank, size, &experts);
    uint64_t gather = 0, total = 0;
    uint64_t q_dim = m->arch->mla ? hp->head_dim_k_mla : hp->head_dim_k; // a head's query
    for (uint32_t l = 0; l < hp->n_layer; l++) {
        model_layer *L = &m->layers[l];
        L->tp_wo = (uint8_t)split_of(&L->wo, size);
        L->tp_down = (uint8_t)split_of(&L->w_down, size);
        if (L->tp_wo == MODEL_TP_BY_OUTPUT && L->wo.n_in > gather)
            gather = L->wo.n_in;
        if (L->tp_down == MODEL_TP_BY_OUTPUT && L->w_down.n_in > gather)
            gather = L->w_down.n_in;
        total += copy ? copy_bytes(L, rank, size, &experts) : 0;
    }
    // One anonymous mapping holds every copied column slice, each at a multiple of 64 bytes.
    void *buf = copy && total
        ? mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        : NULL;
    m->tp_cuts = garlic_calloc((size_t)hp->n_layer * CUTS_PER_LAYER + 1, sizeof *m->tp_cuts);
    if (buf == MAP_FAILED || !m->tp_cuts) {
        if (buf != MAP_FAILED && buf)
            munmap(buf, total);
        garlic_free(m->tp_cuts), m->tp_cuts = NULL;
        return garlic_error_set(err, GARLIC_ENOMEM,
                                "%s: no memory for rank %u's %llu bytes of attn_output, "
                                "ffn_down and expert parts",
                                m->file->path, rank, (unsigned long long)total);
    }
    m->tp_copy = buf, m->tp_copy_bytes = buf ? total : 0;
    uint8_t *at = buf;
    for (uint32_t l = 0; l < hp->n_layer; l++) {
        model_layer *L = &m->layers[l];
        keep_rows(m, l, &L->wq, head0 * q_dim, heads * q_dim);
        if (m->arch->mla)
            cut_latent(m, l, head0, heads, q_dim);
        keep_rows(m, l, &L->wk, kv0 * hp->head_dim_k, kv_heads * hp->head_dim_k);
        keep_rows(m, l, &L->wv, kv0 * hp->head_dim_v, kv_heads * hp->head_dim_v);
        keep_values(m, l, &L->bq, head0 * hp->head_dim_k, heads * hp->head_dim_k);
        keep_values(m, l, &L->bk, kv0 * hp->head_dim_k, kv_heads * hp->head_dim_k);
        keep_values(m, l, &L->bv, kv0 * hp->head_dim_v, kv_heads * hp->head_dim_v);
        keep_values(m, l, &L->sinks, head0, heads);
        cut_product(m, l, &L->wo, &L->bo, L->tp_wo, rank, size, &at);
        keep_rows(m, l, &L->w_gate, ffn0, ffn);
        keep_rows(m, l, &L->w_up, ffn0, ffn);
        cut_product(m, l, &L->w_down, NULL, L->tp_down, rank, size, &at);
        if (model_layer_has_experts(m, l))
            cut_experts(m, l, rank, &experts, &at);
    }
    // (a tied output is a view of the embedding, which every rank keeps whole: no cut)
    bool tied = !gguf_find_tensor(m->file, "output.weight");
    if (m->output.data) {
        uint32_t before = m->n_tp_cuts;
        keep_rows(m, hp->n_layer, &m->output, dist_part_first(hp->n_vocab, rank, size),
                  dist_part_size(hp->n_vocab, rank, size));
        if (tied)
            m->n_tp_cuts = before;
    }
    hp->n_head = (uint32_t)heads, hp->n_head_kv = (uint32_t)kv_heads, hp->ffn = (uint32_t)ffn;
    hp->ffn_exp = (uint32_t)experts.n, hp->ffn_shexp = (uint32_t)experts.sh_n;
    m->tp_expert0 = experts.e0, m->tp_n_expert = experts.e_count;
    hp->tp_gather_width = (uint32_t)gather;
    m->tp_rank = rank, m->tp_size = size;
    return GARLIC_OK;
}

int model_shard(model *m, uint32_t rank, uint32_t size, garlic_error *err)
{
    return shard(m, rank, size, true, err);
}

int model_shard_shape(model *m, uint32_t rank, uint32_t size, garlic_error *err)
{
    return shard(m, rank, size, false, err);
}
