// SPDX-License-Identifier: MIT
// Model loading: reads the hyper-parameters, binds every weight to its place in the mapping
// and checks shapes and types against the hyper-parameters, so the forward pass can trust
// them. The gguf_file stays open for the model's lifetime; model_prefault makes it resident
// and moves the matrices the kernels read packed into a layout of their own.
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "hf/hf.h"
#include "kernels/kernels.h"
#include "model/info.h"
#include "model/model.h"
#include "model/quantize.h"
#include "tensor/types.h"

// A matrix's column order, "<name>.perm" (I32, a column each, every value an input index):
// a folder's act-order GPTQ matrices store their columns sorted by group.
static int bind_perm(model *m, const char *name, model_tensor *t, garlic_error *err)
{
    char pname[160];
    snprintf(pname, sizeof pname, "%s.perm", name);
    const gguf_tensor *g = gguf_find_tensor(m->file, pname);
    if (!g)
        return GARLIC_OK;
    if (g->type != TENSOR_TYPE_I32 || g->ne[0] != t->n_in || g->n_elements != t->n_in)
        return garlic_error_set(err, GARLIC_EFORMAT, "%s: tensor '%s' must be %llu I32 values",
                                m->file->path, pname, (unsigned long long)t->n_in);
    const int32_t *perm = g->data;
    for (uint64_t i = 0; i < t->n_in; i++)
        if (perm[i] < 0 || (uint64_t)perm[i] >= t->n_in)
            return garlic_error_set(
                err, GARLIC_EFORMAT, "%s: tensor '%s': value %llu is not a column (0..%llu)",
                m->file->path, pname, (unsigned long long)i, (unsigned long long)t->n_in - 1);
    t->perm = perm;
    m->used[g - m->file->tensors] = true;
    return GARLIC_OK;
}

// Binds name to t, checking its shape (ne0 x ne1 x ne2; ne1 == 1 for vectors) and that its
// type is usable (vectors and biases must be F32). Absent: GARLIC_EFORMAT unless optional
// (then t->data stays NULL and GARLIC_OK is returned). Marks the tensor used.
static int bind3(model *m, const char *name, uint64_t ne0, uint64_t ne1, uint64_t ne2,
                 bool optional, model_tensor *t, garlic_error *err)
{
    memset(t, 0, sizeof *t);
    const gguf_tensor *g = gguf_find_tensor(m->file, name);
    if (!g) {
        if (optional)
            return GARLIC_OK;
        return garlic_error_set(err, GARLIC_EFORMAT, "%s: tensor '%s' is missing", m->file->path,
                                name);
    }
    if (g->ne[0] != ne0 || g->ne[1] != ne1 || g->ne[2] != ne2 || g->ne[3] != 1)
        return garlic_error_set(err, GARLIC_EFORMAT,
                                "%s: tensor '%s' has shape %llu x %llu x %llu, expected %llu x "
                                "%llu x %llu",
                                m->file->path, name, (unsigned long long)g->ne[0],
                                (unsigned long long)g->ne[1], (unsigned long long)g->ne[2],
                                (unsigned long long)ne0, (unsigned long long)ne1,
                                (unsigned long long)ne2);
    size_t len = strlen(name);
    bool bias = len > 5 && strcmp(name + len - 5, ".bias") == 0;
    bool vector = (ne1 == 1 && ne2 == 1 && strstr(name, "token_embd") == NULL) || bias;
    if (vector ? g->type != TENSOR_TYPE_F32 : !kernel_supports(g->type))
        return garlic_error_set(err, GARLIC_EUNSUPPORTED,
                                "%s: tensor '%s' has type %s, which "
                                "garlic cannot compute with here",
                                m->file->path, name, tensor_type_get(g->type)->name);
    uint64_t row = 0;
    tensor_row_size(g->type, ne0, &row); // the reader checked the sizes
    *t = (model_tensor){.data = g->data,
                        .type = g->type,
                        .n_in = ne0,
                        .n_out = ne1,
                        .n_mat = ne2,
                        .mat_bytes = row * ne1};
    m->used[g - m->file->tensors] = true;
    return vector || ne2 != 1 ? GARLIC_OK : bind_perm(m, name, t, err);
}

static int bind(model *m, const char *name, uint64_t ne0, uint64_t ne1, bool optional,
                model_tensor *t, garlic_error *err)
{
    return bind3(m, name, ne0, ne1, 1, optional, t, err);
}

// Rows [first, first + n) of the matrix t, in place: how fused tensors (attn_qkv, a gate and
// up ffn_up) are bound as the matrices the forward pass reads. Empty when t is.
static model_tensor tensor_rows(const model_tensor *t, uint64_t first, uint64_t n)
{
    if (!t->data)
        return *t;
    uint64_t row = t->mat_bytes / t->n_out;
    model_tensor v = *t;
    v.data = (const uint8_t *)t->data + first * row;
    v.n_out = n;
    v.mat_bytes = row * n;
    return v;
}

// Values [first, first + n) of the F32 vector t (a fused bias).
static model_tensor vector_part(const model_tensor *t, uint64_t first, uint64_t n)
{
    model_tensor v = *t;
    v.data = (const float *)t->data + first;
    v.n_in = n;
    v.mat_bytes = n * sizeof(float);
    return v;
}

// The RoPE scaling (none, linear, YaRN) and what applies whatever the scaling: the
// attention factor and the original context (YaRN's, and the LongRoPE factors' threshold).
static int read_rope_scaling(const model *m, const model_info *info, model_hparams *hp,
                             garlic_error *err)
{
    hp->rope_factor = 1.0f;
    hp->rope_attn_factor = info->rope_attn_factor > 0 ? info->rope_attn_factor : 1.0f;
    hp->rope_scaling = MODEL_ROPE_SCALING_NONE;
    uint64_t orig = info->rope_original_context ? info->rope_original_context : hp->n_ctx_train;
    if (orig > UINT32_MAX)
        return garlic_error_set(err, GARLIC_EFORMAT,
                                "%s: %s.rope.scaling.original_context_length %llu is too large",
                                m->file->path, info->arch, (unsigned long long)orig);
    hp->rope_ctx_orig = (uint32_t)orig;
    // The file stores 0.1 * mscale_all_dim (a converter's legacy); llama.cpp divides it back.
    if (m->arch->yarn_attn_scale)
        hp->rope_yarn_log_mul = info->rope_yarn_log_mul / 0.1f;
    const char *type = info->rope_scaling_type;
    if (type[0] == '\0' || strcmp(type, "none") == 0)
        return GARLIC_OK;
    if (strcmp(type, "linear") == 0)
        hp->rope_scaling = MODEL_ROPE_SCALING_LINEAR;
    else if (strcmp(type, "yarn") == 0)
        hp->rope_scaling = MODEL_ROPE_SCALING_YARN;
    else
        return garlic_error_set(err, GARLIC_EUNSUPPORTED,
                                "%s: rope.scaling.type '%s' is not "
                                "supported (none, linear, yarn are)",
                                m->file->path, type);
    if (info->rope_scale_factor > 0)
        hp->rope_factor = info->rope_scale_factor;
    return GARLIC_OK;
}

// YaRN's magnitude correction for a context `factor` times the trained one, with DeepSeek's
// extra multiplier m (1 for the plain correction): 1 + 0.1 m ln(factor), and 1 when not
// stretched.
static float yarn_mscale(float factor, float m)
{
    return factor <= 1.0f ? 1.0f : 1.0f + 0.1f * m * logf(factor);
}

// The magnitude the model's RoPE table carries in cos and sin and the attention scale, as
// llama.cpp computes them. cos and sin carry attn_factor, with YaRN times mscale(factor, 1)
// (DeepSeek: times mscale(factor, M) / mscale(factor, M) = 1 once M = mscale_all_dim is
// given). The scale is the file's attention.scale, else 1 / sqrt(the key head) or the
// architecture's (Gemma 3 27B: 1 / sqrt(dim / n_head)); for DeepSeek it is multiplied by the
// square of that magnitude (with linear scaling or none: attn_factor (1 + 0.1 ln factor))
// times mscale(factor, M): the scores must carry the correction the keys' RoPE part alone
// cannot.
static void attention_scales(const model_arch *arch, const model_info *info, model_hparams *hp)
{
    float factor = hp->rope_factor, m = hp->rope_yarn_log_mul;
    bool yarn = hp->rope_scaling == MODEL_ROPE_SCALING_YARN;
    hp->rope_mscale = yarn
        ? hp->rope_attn_factor * yarn_mscale(factor, m != 0 ? m : 1.0f) / yarn_mscale(factor, m)
        : hp->rope_attn_factor;
    float head = (float)(model_hparams_mla(hp) ? hp->head_dim_k_mla : hp->head_dim_k);
    hp->attn_scale = 1.0f / sqrtf(head);
    if (arch->wide_query_layers && arch->wide_query_layers == hp->n_layer)
        hp->attn_scale = 1.0f / sqrtf((float)(hp->dim / hp->n_head));
    if (info->attention_scale > 0)
        hp->attn_scale = info->attention_scale;
    if (arch->yarn_attn_scale) {
        float before = yarn ? hp->rope_mscale : hp->rope_attn_factor * (1.0f + 0.1f * logf(factor));
        float mscale = before * (1.0f + 0.1f * m * logf(factor));
        hp->attn_scale *= mscale * mscale;
    }
}

// The multi-head latent attention's hyper-parameters (arch->mla): the ranks and the heads'
// sizes, which must agree with the cache's K row (key_length = kv_lora_rank + n_rot) and
// values (value_length = kv_lora_rank), as llama.cpp's converter writes them.
static int read_mla(model *m, const model_info *info, garlic_error *err)
{
    model_hparams *hp = &m->hp;
    if (!m->arch->mla)
        return GARLIC_OK;
    if (!info->key_length_mla && gguf_find_tensor(m->file, "blk.0.attn_kv_b.weight"))
        return garlic_error_set(err, GARLIC_EUNSUPPORTED,
                                "%s: tensor 'blk.0.attn_kv_b.weight' is the layout before "
                                "llama.cpp split it into attn_k_b and attn_v_b (no "
                                "%s.attention.key_length_mla); convert the model again",
                                m->file->path, info->arch);
    uint64_t limit = 1u << 16, kv = info->kv_lora_rank;
    if (!kv || kv > limit || info->q_lora_rank > (1u << 20) || info->head_count_kv != 1 ||
        info->key_length != kv + hp->n_rot || info->value_length != kv ||
        info->key_length_mla <= hp->n_rot || info->key_length_mla > limit ||
        !info->value_length_mla || info->value_length_mla > limit)
        return garlic_error_set(
            err, GARLIC_EFORMAT,
            "%s: %s attention hyper-parameters are missing or inconsistent "
            "(kv_lora_rank %llu, q_lora_rank %llu, KV heads %llu, "
            "key_length %llu = kv_lora_rank + RoPE dims %u, value_length "
            "%llu = kv_lora_rank, key_length_mla %llu > RoPE dims, "
            "value_length_mla %llu)",
            m->file->path, info->arch, (unsigned long long)kv,
            (unsigned long long)info->q_lora_rank, (unsigned long long)info->head_count_kv,
            (unsigned long long)info->key_length, hp->n_rot, (unsigned long long)info->value_length,
            (unsigned long long)info->key_length_mla, (unsigned long long)info->value_length_mla);
    hp->q_lora_rank = (uint32_t)info->q_lora_rank;
    hp->kv_lora_rank = (uint32_t)kv;
    hp->head_dim_k_mla = (uint32_t)info->key_length_mla;
    hp->head_dim_v_mla = (uint32_t)info->value_length_mla;
    return GARLIC_OK;
}

// The sliding window and the layers it applies to (the architecture's period unless the
// file gives one), the sliding layers' RoPE base, RoPE's magnitude and the attention scale
// (after read_mla: the scale depends on the latent attention's heads), and the final logit
// soft cap.
static int read_attention(model *m, const model_info *info, garlic_error *err)
{
    model_hparams *hp = &m->hp;
    const model_arch *arch = m->arch;
    hp->rope_base_swa = info->rope_freq_base_swa > 0 ? info->rope_freq_base_swa : 10000.0f;
    attention_scales(arch, info, hp);
    hp->final_softcap = info->final_logit_softcapping > 0 ? info->final_logit_softcapping : 0;
    if (!arch->sliding_window || !info->sliding_window)
        return GARLIC_OK;
    if (info->sliding_window_pattern_array)
        return garlic_error_set(err, GARLIC_EUNSUPPORTED,
                                "%s: %s.attention.sliding_window_pattern is a per-layer array; "
                                "garlic's %s takes a period",
                                m->file->path, info->arch, arch->name);
    uint64_t period = info->has_sliding_window_pattern ? info->sliding_window_pattern
                                                       : arch->swa_period;
    if (info->sliding_window > UINT32_MAX || period > UINT32_MAX)
        return garlic_error_set(err, GARLIC_EFORMAT,
                                "%s: %s.attention.sliding_window %llu or its pattern %llu is too "
                                "large",
                                m->file->path, info->arch, (unsigned long long)info->sliding_window,
                                (unsigned long long)period);
    hp->n_swa = (uint32_t)info->sliding_window;
    hp->swa_period = (uint32_t)period;
    hp->swa_rope = arch->swa_rope;
    return GARLIC_OK;
}

// The experts' hyper-parameters. The shared expert's width is the key's, or else the shape
// of the first expert layer's ffn_up_shexp (files differ in which key they write).
static int read_experts(model *m, const model_info *info, garlic_error *err)
{
    model_hparams *hp = &m->hp;
    hp->expert_scale = 1.0f;
    hp->router = m->arch->router;
    if (!info->expert_count)
        return GARLIC_OK;
    if (info->expert_count > MODEL_MAX_EXPERTS || !info->expert_used_count ||
        info->expert_used_count > info->expert_count ||
        info->expert_used_count > MODEL_MAX_EXPERTS_USED ||
        info->leading_dense_block_count > info->block_count ||
        info->expert_feed_forward_length > (1u << 20) ||
        info->expert_shared_feed_forward_length > (1u << 20) || info->expert_shared_count > 64 ||
        info->expert_group_count > 64 ||
        (info->expert_group_count > 1 &&
         (info->expert_count % info->expert_group_count || !info->expert_group_used_count ||
          info->expert_group_used_count > info->expert_group_count)))
        return garlic_error_set(err, GARLIC_EFORMAT,
                                "%s: expert hyper-parameters are inconsistent (experts %llu, "
                                "used %llu, groups %llu/%llu, leading dense layers %llu; at "
                                "most %d experts, %d used)",
                                m->file->path, (unsigned long long)info->expert_count,
                                (unsigned long long)info->expert_used_count,
                                (unsigned long long)info->expert_group_used_count,
                                (unsigned long long)info->expert_group_count,
                                (unsigned long long)info->leading_dense_block_count,
                                MODEL_MAX_EXPERTS, MODEL_MAX_EXPERTS_USED);
    hp->n_expert = (uint32_t)info->expert_count;
    hp->n_expert_used = (uint32_t)info->expert_used_count;
    hp->n_dense_lead = (uint32_t)info->leading_dense_block_count;
    // Without the key, the experts' width is their tensors' (Mixtral's is feed_forward_length).
    char name[96];
    snprintf(name, sizeof name, "blk.%u.ffn_up_exps.weight", hp->n_dense_lead);
    const gguf_tensor *up = gguf_find_tensor(m->file, name);
    uint64_t fe = info->expert_feed_forward_length ? info->expert_feed_forward_length
        : up                                       ? up->ne[1]
                                                   : hp->ffn / hp->n_expert_used;
    if (fe > (1u << 20))
        return garlic_error_set(err, GARLIC_EFORMAT, "%s: expert width %llu is too large",
                                m->file->path, (unsigned long long)fe);
    hp->ffn_exp = (uint32_t)fe;
    if (info->expert_group_count > 1) {
        hp->n_expert_groups = (uint32_t)info->expert_group_count;
        hp->n_group_used = (uint32_t)info->expert_group_used_count;
    }
    hp->expert_norm = info->expert_weights_norm >= 0 ? info->expert_weights_norm != 0
                                                     : m->arch->expert_norm;
    if (info->expert_weights_scale > 0)
        hp->expert_scale = info->expert_weights_scale;
    if (info->expert_gating_func) {
        static const model_router by_code[] = {MODEL_ROUTER_COUNT, MODEL_ROUTER_SOFTMAX,
                                               MODEL_ROUTER_SIGMOID, MODEL_ROUTER_TOPK_SOFTMAX};
        if (info->expert_gating_func > 3)
            return garlic_error_set(err, GARLIC_EUNSUPPORTED,
                                    "%s: %s.expert_gating_func %llu is not supported (1 "
                                    "softmax, 2 sigmoid, 3 softmax of the top k are)",
                                    m->file->path, info->arch,
                                    (unsigned long long)info->expert_gating_func);
        hp->router = by_code[info->expert_gating_func];
    }
    snprintf(name, sizeof name, "blk.%u.ffn_up_shexp.weight", hp->n_dense_lead);
    const gguf_tensor *sh = gguf_find_tensor(m->file, name);
    uint64_t width = info->expert_shared_feed_forward_length;
    if (!width && info->expert_shared_count)
        width = (uint64_t)hp->ffn_exp * info->expert_shared_count;
    if (!width && sh)
        width = sh->ne[1];
    if (width > (1u << 20))
        return garlic_error_set(err, GARLIC_EFORMAT, "%s: shared expert width %llu is too large",
                                m->file->path, (unsigned long long)width);
    hp->ffn_shexp = (uint32_t)width;
    if (!hp->ffn_exp)
        return garlic_error_set(err, GARLIC_EFORMAT, "%s: the experts' width is 0", m->file->path);
    return GARLIC_OK;
}

// What embeddings need: the LayerNorms' epsilon, whether attention is causal (the file's
// attention.causal, else not for encoders), and the pooling (the file's pooling_type; when
// absent or "none", mean for encoders and the last token for decoders). BERT's learned
// positions replace RoPE (n_rot 0 rotates nothing).
static int read_embedding(model *m, const model_info *info, garlic_error *err)
{
    model_hparams *hp = &m->hp;
    hp->norm_eps = info->norm_epsilon > 0 ? info->norm_epsilon : 1e-12f;
    hp->causal = info->causal >= 0 ? info->causal != 0 : !m->arch->encoder;
    if (m->arch->pos_embd)
        hp->n_rot = 0;
    if (info->pooling_type >= MODEL_POOLING_COUNT)
        return garlic_error_set(err, GARLIC_EFORMAT,
                                "%s: %s.pooling_type %lld is not a pooling (0 none, 1 mean, 2 "
                                "cls, 3 last, 4 rank)",
                                m->file->path, info->arch, (long long)info->pooling_type);
    hp->pooling_in_file = info->pooling_type > MODEL_POOLING_NONE;
    hp->pooling = hp->pooling_in_file ? (model_pooling)info->pooling_type
        : m->arch->encoder            ? MODEL_POOLING_MEAN
                                      : MODEL_POOLING_LAST;
    return GARLIC_OK;
}

// Fills m->hp from the metadata and the embedding's shape, checking consistency.
static int read_hparams(model *m, garlic_error *err)
{
    model_info info;
    int rc = model_info_read(m->file, &info, err);
    if (rc)
        return rc;
    m->arch = model_arch_find(info.arch);
    if (!m->arch)
        return garlic_error_set(err, GARLIC_EUNSUPPORTED,
                                "%s: architecture '%s' is not supported (%s are)", m->file->path,
                                info.arch[0] ? info.arch : "(none)", model_arch_names());
    model_hparams *hp = &m->hp;
    const gguf_tensor *embd = gguf_find_tensor(m->file, "token_embd.weight");
    if (!embd)
        return garlic_error_set(err, GARLIC_EFORMAT, "%s: tensor 'token_embd.weight' is missing",
                                m->file->path);
    uint64_t limit = 1u << 20;
    if (!info.embedding_length || !info.block_count || !info.head_count ||
        !info.feed_forward_length || info.embedding_length > limit || info.block_count > 4096 ||
        info.head_count > 4096 || info.feed_forward_length > limit || info.key_length > 65536 ||
        info.value_length > 65536 || info.head_count_kv > info.head_count ||
        info.head_count % (info.head_count_kv ? info.head_count_kv : 1) != 0 ||
        embd->ne[1] > INT32_MAX || info.key_length % 2 != 0)
        return garlic_error_set(
            err, GARLIC_EFORMAT,
            "%s: %s hyper-parameters are missing or "
            "inconsistent (embedding %llu, layers %llu, heads %llu/%llu, "
            "head dim %llu, ffn %llu)",
            m->file->path, info.arch, (unsigned long long)info.embedding_length,
            (unsigned long long)info.block_count, (unsigned long long)info.head_count,
            (unsigned long long)info.head_count_kv, (unsigned long long)info.key_length,
            (unsigned long long)info.feed_forward_length);
    hp->n_vocab = (uint32_t)embd->ne[1];
    hp->n_ctx_train = (uint32_t)(info.context_length ? info.context_length : 2048);
    hp->dim = (uint32_t)info.embedding_length;
    hp->n_layer = (uint32_t)info.block_count;
    hp->n_head = (uint32_t)info.head_count;
    hp->n_head_kv = (uint32_t)info.head_count_kv;
    hp->head_dim_k = (uint32_t)info.key_length;
    hp->head_dim_v = (uint32_t)info.value_length;
    hp->ffn = (uint32_t)info.feed_forward_length;
    hp->n_rot = (uint32_t)(info.rope_dimension_count ? info.rope_dimension_count : info.key_length);
    hp->rope_base = info.rope_freq_base;
    hp->rms_eps = info.rms_epsilon > 0 ? info.rms_epsilon : 1e-5f;
    rc = read_embedding(m, &info, err);
    rc = rc ? rc : read_experts(m, &info, err);
    if (rc)
        return rc;
    if (hp->n_rot > hp->head_dim_k || hp->n_rot % 2 || !(hp->rope_base > 0))
        return garlic_error_set(err, GARLIC_EFORMAT,
                                "%s: rope.dimension_count %u or freq_base "
                                "%g is invalid for head dim %u",
                                m->file->path, hp->n_rot, hp->rope_base, hp->head_dim_k);
    rc = read_rope_scaling(m, &info, hp, err);
    rc = rc ? rc : read_mla(m, &info, err);
    return rc ? rc : read_attention(m, &info, err);
}

// One tensor of a layer: blk.<l>.<suffix> of ne0 x ne1 x ne2 values.
typedef struct layer_spec {
    const char *suffix;
    uint64_t ne0, ne1, ne2;
    bool optional;
    model_tensor *t;
} layer_spec;

static int bind_specs(model *m, uint32_t l, const layer_spec *specs, size_t n, garlic_error *err)
{
    for (size_t i = 0; i < n; i++) {
        char name[96];
        snprintf(name, sizeof name, "blk.%u.%s", l, specs[i].suffix);
        int rc = bind3(m, name, specs[i].ne0, specs[i].ne1, specs[i].ne2, specs[i].optional,
                       specs[i].t, err);
        if (rc)
            return rc;
    }
    return GARLIC_OK;
}

// The feed-forward tensors of layer l: dense, or the router, the experts and the shared
// expert.
static int bind_ffn(model *m, uint32_t l, garlic_error *err)
{
    const model_hparams *hp = &m->hp;
    model_layer *L = &m->layers[l];
    if (!model_layer_has_experts(m, l) && m->arch->fused_up) {
        model_tensor gate_up;
        layer_spec fused[] = {
            {"ffn_up.weight", hp->dim, 2 * (uint64_t)hp->ffn, 1, false, &gate_up},
            {"ffn_down.weight", hp->ffn, hp->dim, 1, false, &L->w_down},
        };
        int rc = bind_specs(m, l, fused, 2, err);
        L->w_gate = tensor_rows(&gate_up, 0, hp->ffn);
        L->w_up = tensor_rows(&gate_up, hp->ffn, hp->ffn);
        return rc;
    }
    if (!model_layer_has_experts(m, l)) {
        layer_spec dense[] = {
            {"ffn_gate.weight", hp->dim, hp->ffn, 1, false, &L->w_gate},
            {"ffn_up.weight", hp->dim, hp->ffn, 1, false, &L->w_up},
            {"ffn_down.weight", hp->ffn, hp->dim, 1, false, &L->w_down},
        };
        return bind_specs(m, l, dense, sizeof dense / sizeof dense[0], err);
    }
    uint64_t ne = hp->n_expert, fe = hp->ffn_exp, fs = hp->ffn_shexp;
    bool eb = !m->arch->expert_biases;
    layer_spec moe[] = {
        {"ffn_gate_inp.weight", hp->dim, ne, 1, false, &L->router},
        {"exp_probs_b.bias", ne, 1, 1, true, &L->router_bias},
        {"ffn_gate_inp.bias", ne, 1, 1, !m->arch->router_logit_bias, &L->router_logit_bias},
        {"ffn_gate_exps.weight", hp->dim, fe, ne, false, &L->exp_gate},
        {"ffn_up_exps.weight", hp->dim, fe, ne, false, &L->exp_up},
        {"ffn_down_exps.weight", fe, hp->dim, ne, false, &L->exp_down},
        {"ffn_gate_exps.bias", fe, ne, 1, eb, &L->exp_gate_b},
        {"ffn_up_exps.bias", fe, ne, 1, eb, &L->exp_up_b},
        {"ffn_down_exps.bias", hp->dim, ne, 1, eb, &L->exp_down_b},
        {"ffn_gate_shexp.weight", hp->dim, fs, 1, !fs, &L->sh_gate},
        {"ffn_up_shexp.weight", hp->dim, fs, 1, !fs, &L->sh_up},
        {"ffn_down_shexp.weight", fs, hp->dim, 1, !fs, &L->sh_down},
        {"ffn_gate_inp_shexp.weight", hp->dim, 1, 1, !(fs && m->arch->shared_gate), &L->sh_router},
    };
    // The shared expert's width may be given by no key at all: then it is absent.
    return bind_specs(m, l, moe, fs ? 13 : 9, err);
}

// The multi-head latent attention tensors of layer l: the queries through attn_q or the
// low-rank pair, the latent and RoPE key, the heads' absorption matrices, the output.
static int bind_mla(model *m, uint32_t l, garlic_error *err)
{
    const model_hparams *hp = &m->hp;
    model_layer *L = &m->layers[l];
    uint64_t dim = hp->dim, heads = hp->n_head, q_rank = hp->q_lora_rank, kv = hp->kv_lora_rank;
    uint64_t q_dim = heads * hp->head_dim_k_mla, nope = hp->head_dim_k_mla - hp->n_rot;
    layer_spec low_rank_q[] = {
        {"attn_q_a.weight", dim, q_rank, 1, false, &L->wq_a},
        {"attn_q_a_norm.weight", q_rank, 1, 1, false, &L->q_a_norm},
        {"attn_q_b.weight", q_rank, q_dim, 1, false, &L->wq_b},
    };
    layer_spec one_q[] = {{"attn_q.weight", dim, q_dim, 1, false, &L->wq}};
    layer_spec specs[] = {
        {"attn_norm.weight", dim, 1, 1, false, &L->attn_norm},
        {"attn_kv_a_mqa.weight", dim, kv + hp->n_rot, 1, false, &L->wkv_a},
        {"attn_kv_a_norm.weight", kv, 1, 1, false, &L->kv_a_norm},
        {"attn_k_b.weight", nope, kv, heads, false, &L->wk_b},
        {"attn_v_b.weight", kv, hp->head_dim_v_mla, heads, false, &L->wv_b},
        {"attn_output.weight", heads * hp->head_dim_v_mla, dim, 1, false, &L->wo},
        {"ffn_norm.weight", dim, 1, 1, false, &L->ffn_norm},
    };
    int rc = q_rank ? bind_specs(m, l, low_rank_q, 3, err) : bind_specs(m, l, one_q, 1, err);
    return rc ? rc : bind_specs(m, l, specs, sizeof specs / sizeof specs[0], err);
}

// Q, K and V of layer l: attn_q/k/v (and their biases), or one attn_qkv (and its bias) whose
// rows are Q's, then K's, then V's, bound as three views.
static int bind_qkv(model *m, uint32_t l, garlic_error *err)
{
    const model_hparams *hp = &m->hp;
    model_layer *L = &m->layers[l];
    uint64_t q_dim = (uint64_t)hp->n_head * hp->head_dim_k;
    uint64_t k_dim = (uint64_t)hp->n_head_kv * hp->head_dim_k;
    uint64_t v_dim = (uint64_t)hp->n_head_kv * hp->head_dim_v;
    char name[96];
    snprintf(name, sizeof name, "blk.%u.attn_qkv.weight", l);
    if (gguf_find_tensor(m->file, name)) {
        model_tensor qkv, bias;
        layer_spec fused[] = {
            {"attn_qkv.weight", hp->dim, q_dim + k_dim + v_dim, 1, false, &qkv},
            {"attn_qkv.bias", q_dim + k_dim + v_dim, 1, 1, true, &bias},
        };
        int rc = bind_specs(m, l, fused, 2, err);
        if (rc)
            return rc;
        L->wq = tensor_rows(&qkv, 0, q_dim);
        L->wk = tensor_rows(&qkv, q_dim, k_dim);
        L->wv = tensor_rows(&qkv, q_dim + k_dim, v_dim);
        if (bias.data) {
            L->bq = vector_part(&bias, 0, q_dim);
            L->bk = vector_part(&bias, q_dim, k_dim);
            L->bv = vector_part(&bias, q_dim + k_dim, v_dim);
        }
        return GARLIC_OK;
    }
    bool nb = !m->arch->qkv_bias;
    layer_spec separate[] = {
        {"attn_q.weight", hp->dim, q_dim, 1, false, &L->wq},
        {"attn_k.weight", hp->dim, k_dim, 1, false, &L->wk},
        {"attn_v.weight", hp->dim, v_dim, 1, false, &L->wv},
        {"attn_q.bias", q_dim, 1, 1, nb, &L->bq},
        {"attn_k.bias", k_dim, 1, 1, nb, &L->bk},
        {"attn_v.bias", v_dim, 1, 1, nb, &L->bv},
    };
    return bind_specs(m, l, separate, sizeof separate / sizeof separate[0], err);
}

// An encoder's layer: Q, K, V (fused or not, biases where present), the output projection
// (and its bias), the two post-norms with their biases, and the FFN: up and down with their
// biases (BERT) or gate, up and down (nomic-bert).
static int bind_encoder_layer(model *m, uint32_t l, garlic_error *err)
{
    const model_hparams *hp = &m->hp;
    model_layer *L = &m->layers[l];
    uint64_t o_dim = (uint64_t)hp->n_head * hp->head_dim_v, dim = hp->dim, ffn = hp->ffn;
    bool gated = !m->arch->ffn_ungated;
    layer_spec specs[] = {
        {"attn_output.weight", o_dim, dim, 1, false, &L->wo},
        {"attn_output.bias", dim, 1, 1, true, &L->bo},
        {"attn_output_norm.weight", dim, 1, 1, false, &L->attn_out_norm},
        {"attn_output_norm.bias", dim, 1, 1, false, &L->attn_out_norm_b},
        {"ffn_up.weight", dim, ffn, 1, false, &L->w_up},
        {"ffn_up.bias", ffn, 1, 1, true, &L->b_up},
        {"ffn_down.weight", ffn, dim, 1, false, &L->w_down},
        {"ffn_down.bias", dim, 1, 1, true, &L->b_down},
        {"layer_output_norm.weight", dim, 1, 1, false, &L->layer_out_norm},
        {"layer_output_norm.bias", dim, 1, 1, false, &L->layer_out_norm_b},
        {"ffn_gate.weight", dim, ffn, 1, false, &L->w_gate},
    };
    int rc = bind_specs(m, l, specs, sizeof specs / sizeof specs[0] - (gated ? 0 : 1), err);
    return rc ? rc : bind_qkv(m, l, err);
}

static int bind_layer(model *m, uint32_t l, garlic_error *err)
{
    const model_hparams *hp = &m->hp;
    model_layer *L = &m->layers[l];
    // The layers the window pattern picks slide; they rotate with their own RoPE where the
    // architecture gives them one.
    L->window = hp->n_swa && model_layer_slides(hp->swa_period, l) ? hp->n_swa : 0;
    L->rope = L->window && m->arch->swa_rope ? 1 : 0;
    if (m->arch->mla) {
        int rc = bind_mla(m, l, err);
        return rc ? rc : bind_ffn(m, l, err);
    }
    if (m->arch->encoder)
        return bind_encoder_layer(m, l, err);
    uint64_t o_dim = (uint64_t)hp->n_head * hp->head_dim_v;
    bool nn = !m->arch->qk_norm, np = !m->arch->post_norms;
    const char *ffn_norm = m->arch->ffn_norm ? m->arch->ffn_norm : "ffn_norm.weight";
    layer_spec specs[] = {
        {"attn_norm.weight", hp->dim, 1, 1, false, &L->attn_norm},
        {"attn_output.weight", o_dim, hp->dim, 1, false, &L->wo},
        {"attn_output.bias", hp->dim, 1, 1, !m->arch->o_bias, &L->bo},
        {"attn_sinks.weight", hp->n_head, 1, 1, !m->arch->attn_sinks, &L->sinks},
        {"attn_q_norm.weight", hp->head_dim_k, 1, 1, nn, &L->q_norm},
        {"attn_k_norm.weight", hp->head_dim_k, 1, 1, nn, &L->k_norm},
        {"post_attention_norm.weight", hp->dim, 1, 1, np, &L->attn_post_norm},
        {ffn_norm, hp->dim, 1, 1, false, &L->ffn_norm},
        {"post_ffw_norm.weight", hp->dim, 1, 1, np, &L->ffn_post_norm},
    };
    int rc = bind_specs(m, l, specs, sizeof specs / sizeof specs[0], err);
    // gpt-oss names its FFN's norm post_attention_norm: that tensor is then not also a norm
    // of the attention's output.
    if (L->attn_post_norm.data == L->ffn_norm.data)
        L->attn_post_norm = (model_tensor){0};
    rc = rc ? rc : bind_qkv(m, l, err);
    return rc ? rc : bind_ffn(m, l, err);
}

// Refuses a file with tensors no step reads: they belong to a variant of the architecture
// garlic does not implement, and ignoring them would compute something else.
static int check_all_used(const model *m, garlic_error *err)
{
    for (uint64_t i = 0; i < m->file->n_tensors; i++)
        if (!m->used[i])
            return garlic_error_set(err, GARLIC_EUNSUPPORTED,
                                    "%s: tensor '%.*s' is not used by garlic's %s model (a "
                                    "variant garlic does not support)",
                                    m->file->path, (int)m->file->tensors[i].name.len,
                                    m->file->tensors[i].name.data, m->arch->name);
    return GARLIC_OK;
}

// An encoder's embedding tensors: token_types (its row count is the file's), the learned
// positions (BERT) and the embedding's LayerNorm; no output norm or matrix. Rows of the
// embedding tables are decoded as the token embedding's are.
static int bind_encoder_globals(model *m, garlic_error *err)
{
    model_hparams *hp = &m->hp;
    const gguf_tensor *types = gguf_find_tensor(m->file, "token_types.weight");
    uint64_t n_types = types ? types->ne[1] : 0;
    if (n_types > 64)
        return garlic_error_set(err, GARLIC_EFORMAT,
                                "%s: tensor 'token_types.weight' has %llu "
                                "rows (at most 64)",
                                m->file->path, (unsigned long long)n_types);
    hp->n_token_types = (uint32_t)n_types;
    int rc = bind(m, "token_types.weight", hp->dim, n_types, true, &m->token_types, err);
    if (rc == GARLIC_OK && m->arch->pos_embd)
        rc = bind(m, "position_embd.weight", hp->dim, hp->n_ctx_train, false, &m->pos_embd, err);
    if (rc == GARLIC_OK)
        rc = bind(m, "token_embd_norm.weight", hp->dim, 1, false, &m->embd_norm, err);
    if (rc == GARLIC_OK)
        rc = bind(m, "token_embd_norm.bias", hp->dim, 1, false, &m->embd_norm_b, err);
    const model_tensor *tables[] = {&m->token_types, &m->pos_embd};
    for (int i = 0; rc == GARLIC_OK && i < 2; i++)
        if (tables[i]->data && !tensor_type_get(tables[i]->type)->dequantize)
            rc = garlic_error_set(err, GARLIC_EUNSUPPORTED, "%s: %s type %s cannot be decoded",
                                  m->file->path, i ? "position_embd.weight" : "token_types.weight",
                                  tensor_type_get(tables[i]->type)->name);
    return rc;
}

static int bind_globals(model *m, garlic_error *err)
{
    const model_hparams *hp = &m->hp;
    int rc = bind(m, "token_embd.weight", hp->dim, hp->n_vocab, false, &m->token_embd, err);
    if (rc == GARLIC_OK && !tensor_type_get(m->token_embd.type)->dequantize)
        rc = garlic_error_set(err, GARLIC_EUNSUPPORTED,
                              "%s: token_embd.weight type %s cannot "
                              "be decoded",
                              m->file->path, tensor_type_get(m->token_embd.type)->name);
    if (rc == GARLIC_OK && m->arch->encoder)
        return bind_encoder_globals(m, err);
    if (rc == GARLIC_OK)
        rc = bind(m, "output_norm.weight", hp->dim, 1, false, &m->output_norm, err);
    if (rc == GARLIC_OK)
        rc = bind(m, "output.weight", hp->dim, hp->n_vocab, true, &m->output, err);
    if (rc == GARLIC_OK && !m->output.data) {
        if (!kernel_supports(m->token_embd.type))
            return garlic_error_set(err, GARLIC_EUNSUPPORTED,
                                    "%s: tied output uses "
                                    "token_embd.weight, whose type garlic cannot compute with",
                                    m->file->path);
        m->output = m->token_embd; // tied embeddings
    }
    // RoPE divisors: one set (rope_freqs), or LongRoPE's two, of which a state takes one.
    model_tensor freqs, longf, shortf;
    if (rc == GARLIC_OK)
        rc = bind(m, "rope_freqs.weight", hp->n_rot / 2, 1, true, &freqs, err);
    if (rc == GARLIC_OK)
        rc = bind(m, "rope_factors_long.weight", hp->n_rot / 2, 1, true, &longf, err);
    if (rc == GARLIC_OK)
        rc = bind(m, "rope_factors_short.weight", hp->n_rot / 2, 1, true, &shortf, err);
    if (rc == GARLIC_OK)
        m->rope_freqs = freqs.data, m->rope_long = longf.data, m->rope_short = shortf.data;
    return rc;
}

model *model_load_file(gguf_file *f, garlic_error *err)
{
    model *m = garlic_calloc(1, sizeof *m);
    if (!m) {
        garlic_error_set(err, GARLIC_ENOMEM, "%s: out of memory", f->path);
        gguf_close(f);
        return NULL;
    }
    m->file = f;
    const char *path = f->path;
    int rc = read_hparams(m, err);
    if (rc == GARLIC_OK) {
        m->layers = garlic_calloc(m->hp.n_layer, sizeof *m->layers);
        m->layer_end = m->hp.n_layer; // (a pipeline stage narrows it)
        if (!m->layers)
            rc = garlic_error_set(err, GARLIC_ENOMEM, "%s: out of memory", path);
    }
    if (rc == GARLIC_OK && !(m->used = garlic_calloc(m->file->n_tensors + 1, sizeof *m->used)))
        rc = garlic_error_set(err, GARLIC_ENOMEM, "%s: out of memory", path);
    if (rc == GARLIC_OK)
        rc = bind_globals(m, err);
    for (uint32_t l = 0; rc == GARLIC_OK && l < m->hp.n_layer; l++)
        rc = bind_layer(m, l, err);
    if (rc == GARLIC_OK)
        rc = check_all_used(m, err);
    garlic_free(m->used);
    m->used = NULL;
    if (rc != GARLIC_OK) {
        model_free(m);
        return NULL;
    }
    return m;
}

// --quantize: the 16- and 32-bit matrices get the mixture's types (a plain type is the
// mixture of that name: every matrix in it, llama-quantize's choices for the rest).
typedef struct load_mix {
    model_quant_mix mix;
    model_quant_model model;
} load_mix;

static uint32_t retype(void *ctx, const char *name, uint32_t n_dims, const uint64_t *ne,
                       uint32_t type)
{
    const load_mix *l = ctx;
    bool dense = type == TENSOR_TYPE_F32 || type == TENSOR_TYPE_F16 || type == TENSOR_TYPE_BF16;
    return dense ? model_quant_mix_type(&l->mix, &l->model, name, ne, n_dims, type).type : type;
}

model *model_load_with(const char *path, const model_load_options *o, garlic_error *err)
{
    hf_open_options ho = {.meta_only = o && o->meta_only};
    load_mix mix;
    if (o && o->quantize) {
        if (!hf_is_folder(path)) {
            garlic_error_set(err, GARLIC_EINVAL,
                             "%s: --quantize applies to Hugging Face folders; a GGUF file is "
                             "requantized with garlic quantize",
                             path);
            return NULL;
        }
        garlic_error e = {0};
        if (model_quant_mix_parse(o->quantize, &mix.mix, &e)) {
            garlic_error_set(err, GARLIC_EINVAL, "--quantize: %s", e.message);
            return NULL;
        }
        gguf_file *meta = hf_open(path, &(hf_open_options){.meta_only = true}, err);
        if (!meta)
            return NULL;
        int rc = model_quant_model_read(meta, &mix.model, err);
        gguf_close(meta);
        if (rc)
            return NULL;
        ho.retype = retype, ho.retype_ctx = &mix;
    }
    gguf_file *f = hf_open_model(path, &ho, err);
    model *m = f ? model_load_file(f, err) : NULL;
    if (m && o && o->n_layers) {
        if (o->first_layer >= m->hp.n_layer || o->n_layers > m->hp.n_layer - o->first_layer) {
            garlic_error_set(err, GARLIC_EINVAL,
                             "%s: a pipeline stage of layers %u..%u, but the model has %u", path,
                             o->first_layer, o->first_layer + o->n_layers - 1, m->hp.n_layer);
            model_free(m);
            return NULL;
        }
        m->layer_first = o->first_layer, m->layer_end = o->first_layer + o->n_layers;
    }
    uint32_t tp = o ? o->tp_size : 1;
    if (m && tp > 1) {
        int rc = ho.meta_only ? model_shard_shape(m, o->tp_rank, tp, err)
                              : model_shard(m, o->tp_rank, tp, err);
        if (rc) {
            model_free(m);
            return NULL;
        }
    }
    return m;
}

model *model_load(const char *path, garlic_error *err) { return model_load_with(path, NULL, err); }

int model_files_check(const model *m, garlic_error *err) { return gguf_check_files(m->file, err); }

void model_free(model *m)
{
    if (!m)
        return;
    if (m->packed)
        munmap(m->packed, m->packed_bytes);
    if (m->tp_copy)
        munmap(m->tp_copy, m->tp_copy_bytes);
    garlic_free(m->tp_cuts);
    gguf_close(m->file);
    garlic_free(m->layers);
    garlic_free(m);
}

enum { MAX_PACKED = 19 }; // matrices per layer (MODEL_LAYER_MATRICES)

// The matrices pack_weights may pack: every layer's matrices, and the output matrix unless
// it is the token embedding (whose rows the embedding lookup reads as they are).
static int packable(model *m, uint32_t l, model_tensor *out[MAX_PACKED])
{
    if (l == m->hp.n_layer) {
        out[0] = &m->output;
        return m->output.data && m->output.data != m->token_embd.data ? 1 : 0;
    }
    model_layer *L = &m->layers[l];
    model_tensor *t[] = MODEL_LAYER_MATRICES(L);
    _Static_assert(sizeof t / sizeof t[0] == MAX_PACKED, "MAX_PACKED is the layer's matrices");
    int n = 0;
    for (int i = 0; i < MAX_PACKED; i++)
        if (t[i]->data)
            out[n++] = t[i];
    return n;
}

static uint64_t tensor_bytes(const model_tensor *t) { return t->mat_bytes * t->n_mat; }

// packable's matrices of layer l that the host keeps: those of its pipeline stage, less a
// device's (the first device_layers layers, and the output with all of them) unless
// device_too.
static int host_matrices(model *m, uint32_t l, bool device_too, model_tensor *out[MAX_PACKED])
{
    bool device = !device_too &&
        (l < m->hp.n_layer ? l < m->device_layers : m->device_layers >= m->hp.n_layer);
    bool other_stage = l < m->hp.n_layer ? l < m->layer_first || l >= m->layer_end
                                         : m->layer_end < m->hp.n_layer;
    return device || other_stage ? 0 : packable(m, l, out);
}

// Drops the whole pages of a packed matrix's source rows (t->src) from the file mapping: the
// packed copy is what the kernels read, and the mapping's pages would count twice.
static void drop_source(const model_tensor *t)
{
    uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE), bytes = tensor_bytes(t);
    uintptr_t from = ((uintptr_t)t->src + page - 1) / page * page;
    uintptr_t to = ((uintptr_t)t->src + bytes) / page * page;
    if (to > from)
        madvise((void *)from, to - from, MADV_DONTNEED);
}

// Packs the matrices the kernels read packed into one anonymous mapping, each at a multiple
// of 64 bytes, dropping each one's whole pages of the file mapping after its copy. The
// mapping asks for transparent huge pages: decoding streams through all of it every token,
// and 2 MiB pages spare the page walks of 4 KiB ones (Q4_0 decoding one thread 34 -> 36 t/s;
// F16, whose rows are copied as they are for this alone, 22.0 -> 23.1 t/s with 2 threads).
static void pack_weights(model *m)
{
    if (m->packed)
        return;
    uint64_t total = 0;
    for (uint32_t l = 0; l <= m->hp.n_layer; l++) {
        model_tensor *t[MAX_PACKED];
        for (int i = host_matrices(m, l, false, t) - 1; i >= 0; i--)
            if (kernel_packs(t[i]->type))
                total += (tensor_bytes(t[i]) + 63) / 64 * 64;
    }
    if (total == 0)
        return;
    void *buf = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (buf == MAP_FAILED)
        return;
    madvise(buf, total, MADV_HUGEPAGE);
    uint8_t *at = buf;
    for (uint32_t l = 0; l <= m->hp.n_layer; l++) {
        model_tensor *t[MAX_PACKED];
        for (int i = 0, n = host_matrices(m, l, false, t); i < n; i++) {
            if (!kernel_packs(t[i]->type))
                continue;
            uint64_t bytes = tensor_bytes(t[i]);
            for (uint64_t e = 0; e < t[i]->n_mat; e++) // each expert's rows on their own
                kernel_pack_rows(t[i]->type, (const uint8_t *)t[i]->data + e * t[i]->mat_bytes,
                                 at + e * t[i]->mat_bytes, (int64_t)t[i]->n_out,
                                 (int64_t)t[i]->n_in);
            t[i]->src = t[i]->data, t[i]->data = at, t[i]->packed = true;
            drop_source(t[i]);
            at += (bytes + 63) / 64 * 64;
        }
    }
    m->packed = buf, m->packed_bytes = total;
}

// Reads one byte of every page of [p, p + size), after MADV_WILLNEED; *done counts the bytes
// for progress over total.
static void touch_range(const uint8_t *p, uint64_t size, uint64_t *done, uint64_t total,
                        void (*progress)(void *ctx, int percent), void *ctx, int *last)
{
    uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
    uintptr_t first = (uintptr_t)p / page * page;
    madvise((void *)first, (uintptr_t)p + size - first, MADV_WILLNEED);
    const volatile uint8_t *base = p;
    uint8_t sink = 0;
    for (uint64_t off = 0; off < size; off += page) {
        sink ^= base[off];
        int pct = (int)((*done + off) * 100 / (total ? total : 1));
        if (progress && pct != *last && pct % 5 == 0)
            progress(ctx, pct);
        *last = pct;
    }
    (void)sink;
    *done += size;
}

// The matrices of a tensor-parallel rank's share, for touch_share: the token embedding, the
// output matrix (unless tied) and layer l's matrices (its rows, or its copied columns) for
// l < n_layer. Returns how many it put in out.
static int share_matrices(model *m, uint32_t l, model_tensor *out[MAX_PACKED])
{
    // (A device's layers stay resident on the host too when it keeps them for a fast wake.)
    bool keep = m->device_keeps_host;
    if (l < m->hp.n_layer)
        return host_matrices(m, l, keep, out);
    int n = 0;
    if (m->token_embd.data && m->layer_first == 0) // (the first stage embeds)
        out[n++] = &m->token_embd;
    if (host_matrices(m, l, keep, out + n)) // the output matrix, unless tied, on a device or
        n++;                                // elsewhere
    return n;
}

void model_set_device_layers(model *m, uint32_t n, bool keep_host)
{
    m->device_layers = n, m->device_keeps_host = keep_host;
}

void model_release_host_rows(const model *m, const model_tensor *t)
{
    const gguf_file *f = m->file;
    if (m->device_keeps_host)
        return;
    const uint8_t *p = t->packed ? t->src : t->data, *base = f->base;
    uint64_t bytes = tensor_bytes(t), page = (uint64_t)sysconf(_SC_PAGESIZE);
    if (f->detached || !p || p < base || bytes > f->size || (uint64_t)(p - base) > f->size - bytes)
        return;
    uintptr_t from = ((uintptr_t)p + page - 1) / page * page,
              to = ((uintptr_t)p + bytes) / page * page;
    if (to > from)
        madvise((void *)from, to - from, MADV_DONTNEED);
}

// Touches the pages of a tensor-parallel rank's share (share_matrices), not the whole file.
// The small vectors (norms, biases) fault in on first use.
static void touch_share(model *m, void (*progress)(void *ctx, int percent), void *ctx, int *last)
{
    uint64_t total = 0, done = 0;
    for (uint32_t l = 0; l <= m->hp.n_layer; l++) {
        model_tensor *t[MAX_PACKED];
        for (int i = 0, n = share_matrices(m, l, t); i < n; i++)
            total += tensor_bytes(t[i]);
    }
    for (uint32_t l = 0; l <= m->hp.n_layer; l++) {
        model_tensor *t[MAX_PACKED];
        for (int i = 0, n = share_matrices(m, l, t); i < n; i++)
            touch_range(t[i]->data, tensor_bytes(t[i]), &done, total, progress, ctx, last);
    }
}

// Drops the source pages of every packed matrix again (a reader running beside the packing
// may have mapped some after pack_weights dropped them).
static void drop_sources(model *m)
{
    for (uint32_t l = 0; l <= m->hp.n_layer; l++) {
        model_tensor *t[MAX_PACKED];
        for (int i = 0, n = packable(m, l, t); i < n; i++)
            if (t[i]->packed)
                drop_source(t[i]);
    }
}

// The whole mapping's pages, touched on a thread of its own beside the packing.
typedef struct file_reader {
    const uint8_t *base;
    uint64_t size;
    void (*progress)(void *ctx, int percent);
    void *ctx;
} file_reader;

static void *read_file_pages(void *arg)
{
    file_reader *r = arg;
    uint64_t done = 0;
    int last = -1;
    touch_range(r->base, r->size, &done, r->size, r->progress, r->ctx, &last);
    return NULL;
}

double model_prefault(model *m, void (*progress)(void *ctx, int percent), void *ctx)
{
    double t0 = garlic_now();
    const gguf_file *f = m->file;
    uint64_t done = 0;
    int last = -1;
    if (m->tp_size > 1 || m->device_layers || m->layer_end - m->layer_first < m->hp.n_layer) {
        // only the weights the host computes with
        touch_share(m, progress, ctx, &last);
    } else if (!f->detached) {
        // A cold start waits on the disk here: a thread reads the file in (MADV_WILLNEED,
        // then a byte of every page) while this one packs the matrices behind it, whose
        // pages arrive as either brings them in, so reading and packing overlap.
        file_reader r = {.base = f->base, .size = f->size, .progress = progress, .ctx = ctx};
        pthread_t reader;
        if (!m->packed && pthread_create(&reader, NULL, read_file_pages, &r) == 0) {
            pack_weights(m);
            pthread_join(reader, NULL);
            drop_sources(m);
        } else {
            touch_range(f->base, f->size, &done, f->size, progress, ctx, &last);
        }
    } else { // a folder's tensors lie in several mappings: each tensor's own pages
        uint64_t total = 0;
        for (uint64_t i = 0; i < f->n_tensors; i++)
            total += f->tensors[i].data ? f->tensors[i].nbytes : 0;
        for (uint64_t i = 0; i < f->n_tensors; i++)
            if (f->tensors[i].data && f->tensors[i].nbytes)
                touch_range(f->tensors[i].data, f->tensors[i].nbytes, &done, total, progress, ctx,
                            &last);
    }
    pack_weights(m);
    if (progress)
        progress(ctx, 100);
    return garlic_now() - t0;
}
