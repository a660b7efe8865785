// SPDX-License-Identifier: MIT
// The planner's input for a Hugging Face model: the hyper-parameters from config.json (read
// by src/hf), and the weights from the safetensors headers beside it when present, or derived
// from the architecture, torch_dtype and quantization_config otherwise (with the assumption
// written down for the reader).
#include <stdio.h>
#include <string.h>

#include "hf/hf.h"
#include "planner/planner.h"

static uint64_t div_ceil(uint64_t a, uint64_t b) { return a / b + (a % b != 0); }

// A linear layer of out x in weights, stored as st says.
static int add_linear(planner_weights *w, const hf_storage *st, uint64_t out, uint64_t in,
                      garlic_error *err)
{
    uint64_t n = out * in;
    int rc;
    switch (st->quant) {
    case HF_QUANT_NONE:
        return planner_weights_add(w, st->dense, false, false, n, n * st->dense_size, err);
    case HF_QUANT_FP8: {
        uint64_t scales = st->block_n ? div_ceil(out, st->block_n) * div_ceil(in, st->block_k) : 1;
        if ((rc = planner_weights_add(w, st->fp8, false, false, n, n, err)))
            return rc;
        return planner_weights_add(w, "F32", true, false, scales, scales * 4, err);
    }
    case HF_QUANT_INT: {
        uint64_t groups = st->group ? div_ceil(in, st->group) : 1;
        // Packed weights; one scale (F16) and one zero point (bits, packed in I32) per group
        // and output row.
        if ((rc = planner_weights_add(w, st->qname, false, false, n, div_ceil(n * st->bits, 8),
                                      err)) ||
            (rc = planner_weights_add(w, "F16", true, false, groups * out, groups * out * 2, err)))
            return rc;
        uint64_t zeros = div_ceil(groups * out * st->bits, 32);
        return planner_weights_add(w, "I32", true, false, zeros, zeros * 4, err);
    }
    case HF_QUANT_COUNT: break;
    }
    return GARLIC_EINVAL;
}

static int add_dense(planner_weights *w, const hf_storage *st, uint64_t n, bool norm,
                     garlic_error *err)
{
    return planner_weights_add(w, st->dense, false, norm, n, n * st->dense_size, err);
}

// The tensors of the architecture: embeddings, per layer attention (with biases and q/k
// norms where the architecture has them) and the SwiGLU MLP with their norms, the final
// norm and the LM head unless tied.
static int derive_weights(const hf_arch *arch, const model_hparams *hp, const hf_storage *st,
                          bool tied, bool attn_bias, planner_weights *w, garlic_error *err)
{
    uint64_t dim = hp->dim, q_dim = (uint64_t)hp->n_head * hp->head_dim_k;
    uint64_t kv_dim = (uint64_t)hp->n_head_kv * hp->head_dim_k, ffn = hp->ffn;
    int rc = add_dense(w, st, (uint64_t)hp->n_vocab * dim, false, err);
    for (uint32_t l = 0; l < hp->n_layer && !rc; l++) {
        rc = add_linear(w, st, q_dim, dim, err) || add_linear(w, st, kv_dim, dim, err) ||
            add_linear(w, st, kv_dim, dim, err) || add_linear(w, st, dim, q_dim, err) ||
            add_linear(w, st, ffn, dim, err) || add_linear(w, st, ffn, dim, err) ||
            add_linear(w, st, dim, ffn, err) || add_dense(w, st, dim, true, err) ||
            add_dense(w, st, dim, true, err);
        if (!rc && arch->qk_norm)
            rc = add_dense(w, st, hp->head_dim_k, true, err) ||
                add_dense(w, st, hp->head_dim_k, true, err);
        if (!rc && (arch->qkv_bias || attn_bias))
            rc = add_dense(w, st, q_dim, false, err) || add_dense(w, st, kv_dim, false, err) ||
                add_dense(w, st, kv_dim, false, err);
        if (!rc && attn_bias && !arch->qkv_bias)
            rc = add_dense(w, st, dim, false, err);
    }
    if (!rc)
        rc = add_dense(w, st, dim, true, err);
    if (!rc && !tied)
        rc = add_dense(w, st, (uint64_t)hp->n_vocab * dim, false, err);
    return rc ? GARLIC_EINVAL : GARLIC_OK;
}

// The assumption behind derived weights, in words for `garlic estimate`.
static void describe_assumption(const hf_storage *st, bool tied, char *dst, size_t cap)
{
    const char *rest = tied ? "embeddings (tied to the LM head) and norms"
                            : "embeddings, LM head and norms";
    if (st->quant == HF_QUANT_NONE)
        snprintf(dst, cap, "from config.json: every tensor in %s (torch_dtype)", st->dense);
    else if (st->quant == HF_QUANT_FP8 && st->block_n)
        snprintf(dst, cap,
                 "from config.json: decoder linear layers (q, k, v, o, gate, up, down) "
                 "in %s with one F32 scale per %ux%u block; %s in %s (torch_dtype)",
                 st->fp8, st->block_n, st->block_k, rest, st->dense);
    else if (st->quant == HF_QUANT_FP8)
        snprintf(dst, cap,
                 "from config.json: decoder linear layers in %s with one F32 scale "
                 "per matrix; %s in %s (torch_dtype)",
                 st->fp8, rest, st->dense);
    else
        snprintf(dst, cap,
                 "from config.json: decoder linear layers in %u-bit groups of %u "
                 "columns (one F16 scale and one packed zero point per group and row); %s in %s",
                 st->bits, st->group, rest, st->dense);
}

int planner_weights_add_hf_tensor(void *weights, const hf_tensor *t, garlic_error *err)
{
    return planner_weights_add(weights, t->dtype, t->scales, t->norm, t->n_elements, t->bytes, err);
}

int planner_from_hf_config(const hf_config *cfg, const char *name, planner_input *in,
                           garlic_error *err)
{
    *in = (planner_input){.source = PLANNER_SOURCE_HF_CONFIG, .hp = cfg->hp};
    snprintf(in->path, sizeof in->path, "%s", name);
    snprintf(in->arch, sizeof in->arch, "%s", cfg->arch->name);
    int rc = derive_weights(cfg->arch, &cfg->hp, &cfg->storage, cfg->tied, cfg->attn_bias,
                            &in->weights, err);
    if (rc)
        return rc;
    describe_assumption(&cfg->storage, cfg->tied, in->assumption, sizeof in->assumption);
    return GARLIC_OK;
}

// Adds the tensors of one safetensors file to in's weights; the file's bytes besides them
// (header and any gaps) are mapped too.
static int add_shard(const char *path, planner_input *in, garlic_error *err)
{
    planner_weights *w = &in->weights;
    uint64_t before = w->tensor_bytes, file_size = 0;
    int rc = hf_safetensors_read(path, planner_weights_add_hf_tensor, w, &file_size, err);
    if (rc)
        return rc;
    // The tensors lie inside the file without overlapping, so this does not wrap.
    uint64_t besides = file_size - (w->tensor_bytes - before);
    if (__builtin_add_overflow(w->mapping_bytes, besides, &w->mapping_bytes))
        return garlic_error_set(err, GARLIC_EINVAL, "%s: sizes overflow", path);
    return GARLIC_OK;
}

// Replaces the derived weights with the safetensors headers of dir, when there are any.
static int read_shards(const char *dir, planner_input *in, garlic_error *err)
{
    hf_shards shards;
    int rc = hf_shards_list(dir, &shards, err);
    if (!rc && shards.n) {
        in->weights = (planner_weights){0};
        in->source = PLANNER_SOURCE_SAFETENSORS;
        in->n_files = shards.n;
        in->assumption[0] = '\0';
    }
    for (size_t i = 0; i < shards.n && !rc; i++)
        rc = add_shard(shards.paths[i], in, err);
    hf_shards_deinit(&shards);
    return rc;
}

int planner_from_hf(const char *path, planner_input *in, garlic_error *err)
{
    hf_folder folder;
    hf_config cfg;
    int rc = hf_folder_find(path, &folder, err);
    if (!rc)
        rc = hf_config_read(folder.config, &cfg, err);
    if (!rc)
        rc = planner_from_hf_config(&cfg, folder.config, in, err);
    if (!rc)
        rc = read_shards(folder.dir, in, err);
    return rc;
}
