// SPDX-License-Identifier: MIT
// Tensor parallelism: cuts a loaded model down to one rank's share, after which the forward
// pass runs it as a narrower model whose attention output and FFN output are partial sums
// that the ranks add together (dist_all_reduce_sum in forward.c). With T ranks, rank r keeps
//   wq, wk, wv (+ biases, sinks)  rows of its heads: n_head / T query heads and n_head_kv / T
//                                 KV heads, contiguous (a group of query heads stays with its
//                                 KV head), views into the mapping;
//   wo                            the matching input columns (its heads' values), copied;
//   w_gate, w_up                  rows [r * ffn / T, (r + 1) * ffn / T), views;
//   w_down                        the matching input columns, copied;
//   output                        rows [r * n_vocab / T, ...) of the vocabulary, a view (kept
//                                 whole when T does not divide the vocabulary), whose logits
//                                 the ranks then gather (forward.c);
// and everything else whole (norms, the token embedding). The hyper-parameters
// then say n_head / T, n_head_kv / T and ffn / T, so the scratch, the KV cache (its KV heads
// only) and the planner size the share. A column slice of a quantized row is whole blocks,
// so its width must be a multiple of the type's block size (32, or 256 for K-quants).
// Every part of a tensor the share leaves out is recorded (model.tp_cuts), so that the
// planner counts a rank's weights exactly; model_shard_shape makes the same cuts to the shapes
// alone, for planning without loading.
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/alloc.h"
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

// Whether matrix t (named for messages) can give each of size ranks `cols` of its input
// columns: whole blocks, and no column permutation (which would scatter the slice).
static int check_columns(const model *m, const char *name, uint32_t l, const model_tensor *t,
                         uint64_t cols, uint32_t size, garlic_error *err)
{
    uint32_t block = tensor_type_get(t->type)->block_size;
    if (t->perm)
        return garlic_error_set(err, GARLIC_EUNSUPPORTED,
                                "%s: layer %u's %s has permuted columns (act-order GPTQ): "
                                "tensor parallelism cannot split its input",
                                m->file->path, l, name);
    if (cols % block)
        return garlic_error_set(err, GARLIC_EUNSUPPORTED,
                                "%s: layer %u's %s is %s, whose rows split only at blocks of %u "
                                "values; --tensor-parallel %u would give each rank %llu of its "
                                "%llu input columns",
                                m->file->path, l, name, tensor_type_get(t->type)->name, block, size,
                                (unsigned long long)cols, (unsigned long long)t->n_in);
    return GARLIC_OK;
}

int model_shard_check(const model *m, uint32_t size, garlic_error *err)
{
    const model_hparams *hp = &m->hp;
    const char *path = m->file->path;
    if (size <= 1)
        return GARLIC_OK;
    if (m->arch->mla || hp->n_expert > 0 || model_embeddings_only(m))
        return garlic_error_set(err, GARLIC_EUNSUPPORTED,
                                "%s: tensor parallelism supports dense decoder models (the llama "
                                "family) in this version; this %s model has %s",
                                path, m->arch->name,
                                m->arch->mla           ? "latent attention"
                                    : hp->n_expert > 0 ? "experts"
                                                       : "no causal attention");
    if (hp->n_head % size || hp->n_head_kv % size)
        return garlic_error_set(err, GARLIC_EUNSUPPORTED,
                                "%s: --tensor-parallel %u must divide the %u attention heads and "
                                "the %u KV heads",
                                path, size, hp->n_head, hp->n_head_kv);
    if (hp->ffn % size)
        return garlic_error_set(err, GARLIC_EUNSUPPORTED,
                                "%s: --tensor-parallel %u must divide the feed-forward width %u",
                                path, size, hp->ffn);
    uint64_t o_cols = (uint64_t)hp->n_head / size * hp->head_dim_v, f_cols = hp->ffn / size;
    for (uint32_t l = 0; l < hp->n_layer; l++) {
        const model_layer *L = &m->layers[l];
        int rc = check_columns(m, "attn_output", l, &L->wo, o_cols, size, err);
        if (rc == GARLIC_OK)
            rc = check_columns(m, "ffn_down", l, &L->w_down, f_cols, size, err);
        if (rc)
            return rc;
    }
    return GARLIC_OK;
}

// Copies input columns [c0, c0 + cols) of every row of t to `to` (rows of the slice's size,
// contiguous), points t at them and drops the whole pages of the mapping t was read from:
// the rank holds only its share. to NULL: the shape alone (t->data is then not its layout).
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
    for (uint64_t r = 0; r < t->n_out; r++)
        memcpy(to + r * slice, from + r * row + skip, slice);
    uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
    uintptr_t first = ((uintptr_t)from + page - 1) / page * page;
    uintptr_t last = ((uintptr_t)from + row * t->n_out) / page * page;
    if (last > first)
        madvise((void *)first, last - first, MADV_DONTNEED);
    t->data = to, t->n_in = cols, t->mat_bytes = slice * t->n_out;
    record_cut(m, l, &before, t);
}

// Tensors a layer's share cuts (the most record_cut can record for one layer).
enum { CUTS_PER_LAYER = 12 };

// model_shard (copy: columns copied to an anonymous mapping) or model_shard_shape (shapes
// alone).
static int shard(model *m, uint32_t rank, uint32_t size, bool copy, garlic_error *err)
{
    int rc = model_shard_check(m, size, err);
    if (rc || size <= 1)
        return rc;
    model_hparams *hp = &m->hp;
    uint64_t heads = hp->n_head / size, kv_heads = hp->n_head_kv / size, ffn = hp->ffn / size;
    uint64_t o_cols = heads * hp->head_dim_v;
    // One anonymous mapping holds every copied column slice, each at a multiple of 64 bytes.
    uint64_t total = 0;
    for (uint32_t l = 0; copy && l < hp->n_layer; l++) {
        const model_layer *L = &m->layers[l];
        total += (row_size(L->wo.type, o_cols) * L->wo.n_out + 63) / 64 * 64;
        total += (row_size(L->w_down.type, ffn) * L->w_down.n_out + 63) / 64 * 64;
    }
    void *buf = copy ? mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
                     : NULL;
    m->tp_cuts = garlic_calloc((size_t)hp->n_layer * CUTS_PER_LAYER + 1, sizeof *m->tp_cuts);
    if (buf == MAP_FAILED || !m->tp_cuts) {
        if (buf != MAP_FAILED && buf)
            munmap(buf, total);
        garlic_free(m->tp_cuts), m->tp_cuts = NULL;
        return garlic_error_set(err, GARLIC_ENOMEM,
                                "%s: no memory for rank %u's %llu bytes of attn_output and "
                                "ffn_down columns",
                                m->file->path, rank, (unsigned long long)total);
    }
    m->tp_copy = buf, m->tp_copy_bytes = copy ? total : 0;
    uint8_t *at = buf;
    for (uint32_t l = 0; l < hp->n_layer; l++) {
        model_layer *L = &m->layers[l];
        keep_rows(m, l, &L->wq, rank * heads * hp->head_dim_k, heads * hp->head_dim_k);
        keep_rows(m, l, &L->wk, rank * kv_heads * hp->head_dim_k, kv_heads * hp->head_dim_k);
        keep_rows(m, l, &L->wv, rank * kv_heads * hp->head_dim_v, kv_heads * hp->head_dim_v);
        keep_values(m, l, &L->bq, rank * heads * hp->head_dim_k, heads * hp->head_dim_k);
        keep_values(m, l, &L->bk, rank * kv_heads * hp->head_dim_k, kv_heads * hp->head_dim_k);
        keep_values(m, l, &L->bv, rank * kv_heads * hp->head_dim_v, kv_heads * hp->head_dim_v);
        keep_values(m, l, &L->sinks, rank * heads, heads);
        keep_columns(m, l, &L->wo, rank * o_cols, o_cols, at);
        if (at)
            at += (L->wo.mat_bytes + 63) / 64 * 64;
        if (rank != 0) { // the output bias joins the sum once, on rank 0
            model_tensor before = L->bo;
            memset(&L->bo, 0, sizeof L->bo);
            record_cut(m, l, &before, &L->bo);
        }
        keep_rows(m, l, &L->w_gate, rank * ffn, ffn);
        keep_rows(m, l, &L->w_up, rank * ffn, ffn);
        keep_columns(m, l, &L->w_down, rank * ffn, ffn, at);
        if (at)
            at += (L->w_down.mat_bytes + 63) / 64 * 64;
    }
    // (a tied output is a view of the embedding, which every rank keeps whole: no cut)
    bool tied = !gguf_find_tensor(m->file, "output.weight");
    if (m->output.data && hp->n_vocab % size == 0) {
        uint64_t rows = hp->n_vocab / size;
        uint32_t before = m->n_tp_cuts;
        keep_rows(m, hp->n_layer, &m->output, rank * rows, rows);
        if (tied)
            m->n_tp_cuts = before;
    }
    hp->n_head = (uint32_t)heads, hp->n_head_kv = (uint32_t)kv_heads, hp->ffn = (uint32_t)ffn;
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
