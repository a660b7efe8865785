// SPDX-License-Identifier: MIT
// The quantization mixtures and the type each gives a tensor (model_quant_mix_type), and the
// parallel conversion of a tensor's rows (model_quant_convert). The rules are llama-quantize's,
// restated from what it does: a mixture names a base type; 1-D tensors, norms, routers and a
// few small tables are left alone; output.weight (or token_embd when the model has no output
// matrix) gets Q6_K; attn_v and ffn_down get more bits in the layers that matter most (the
// first and last eighth and every third between, for the "_M" mixtures); models of 8 experts
// and 70B shapes bump a few more; and a type whose blocks do not divide the rows falls back to
// one whose blocks do. The whole-file driver is quantize_file.c.
#include "model/quantize.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "base/alloc.h"

// llama.cpp's LLAMA_FTYPE numbers, written to general.file_type; each names one mixture.
enum {
    FILE_TYPE_ALL_F32 = 0,
    FILE_TYPE_F16 = 1,
    FILE_TYPE_Q4_0 = 2,
    FILE_TYPE_Q4_1 = 3,
    FILE_TYPE_Q8_0 = 7,
    FILE_TYPE_Q5_0 = 8,
    FILE_TYPE_Q5_1 = 9,
    FILE_TYPE_Q2_K = 10,
    FILE_TYPE_Q3_K_S = 11,
    FILE_TYPE_Q3_K_M = 12,
    FILE_TYPE_Q3_K_L = 13,
    FILE_TYPE_Q4_K_S = 14,
    FILE_TYPE_Q4_K_M = 15,
    FILE_TYPE_Q5_K_S = 16,
    FILE_TYPE_Q5_K_M = 17,
    FILE_TYPE_Q6_K = 18,
    FILE_TYPE_IQ4_NL = 25,
    FILE_TYPE_IQ4_XS = 30,
    FILE_TYPE_BF16 = 32,
    FILE_TYPE_MXFP4_MOE = 38,
};

// The mixtures garlic writes; an alias row points at the mixture it stands for by name.
typedef struct mix_row {
    const char *name;
    uint32_t file_type;
    uint32_t type;
    const char *alias_of; // NULL, or the name of the mixture this one is
} mix_row;

static const mix_row mixes[] = {
    {"F32", FILE_TYPE_ALL_F32, TENSOR_TYPE_F32, NULL},
    {"F16", FILE_TYPE_F16, TENSOR_TYPE_F16, NULL},
    {"BF16", FILE_TYPE_BF16, TENSOR_TYPE_BF16, NULL},
    {"Q8_0", FILE_TYPE_Q8_0, TENSOR_TYPE_Q8_0, NULL},
    {"Q6_K", FILE_TYPE_Q6_K, TENSOR_TYPE_Q6_K, NULL},
    {"Q5_K_M", FILE_TYPE_Q5_K_M, TENSOR_TYPE_Q5_K, NULL},
    {"Q5_K_S", FILE_TYPE_Q5_K_S, TENSOR_TYPE_Q5_K, NULL},
    {"Q5_1", FILE_TYPE_Q5_1, TENSOR_TYPE_Q5_1, NULL},
    {"Q5_0", FILE_TYPE_Q5_0, TENSOR_TYPE_Q5_0, NULL},
    {"Q4_K_M", FILE_TYPE_Q4_K_M, TENSOR_TYPE_Q4_K, NULL},
    {"Q4_K_S", FILE_TYPE_Q4_K_S, TENSOR_TYPE_Q4_K, NULL},
    {"Q4_1", FILE_TYPE_Q4_1, TENSOR_TYPE_Q4_1, NULL},
    {"Q4_0", FILE_TYPE_Q4_0, TENSOR_TYPE_Q4_0, NULL},
    {"IQ4_NL", FILE_TYPE_IQ4_NL, TENSOR_TYPE_IQ4_NL, NULL},
    {"IQ4_XS", FILE_TYPE_IQ4_XS, TENSOR_TYPE_IQ4_XS, NULL},
    {"MXFP4_MOE", FILE_TYPE_MXFP4_MOE, TENSOR_TYPE_MXFP4, NULL},
    {"Q3_K_L", FILE_TYPE_Q3_K_L, TENSOR_TYPE_Q3_K, NULL},
    {"Q3_K_M", FILE_TYPE_Q3_K_M, TENSOR_TYPE_Q3_K, NULL},
    {"Q3_K_S", FILE_TYPE_Q3_K_S, TENSOR_TYPE_Q3_K, NULL},
    {"Q2_K", FILE_TYPE_Q2_K, TENSOR_TYPE_Q2_K, NULL},
    {"Q5_K", FILE_TYPE_Q5_K_M, TENSOR_TYPE_Q5_K, "Q5_K_M"},
    {"Q4_K", FILE_TYPE_Q4_K_M, TENSOR_TYPE_Q4_K, "Q4_K_M"},
    {"Q3_K", FILE_TYPE_Q3_K_M, TENSOR_TYPE_Q3_K, "Q3_K_M"},
    {"MXFP4", FILE_TYPE_MXFP4_MOE, TENSOR_TYPE_MXFP4, "MXFP4_MOE"},
};
enum { N_MIXES = sizeof mixes / sizeof mixes[0] };

// llama-quantize's mixtures that garlic does not write, and why.
static const struct {
    const char *name;
    const char *why;
} unwritable[] = {
    {"Q2_K_S", "needs an importance matrix, which garlic does not compute"},
    {"IQ1_S", "its types (IQ1, IQ2, IQ3) have no quantizer in garlic"},
    {"IQ1_M", "its types (IQ1, IQ2, IQ3) have no quantizer in garlic"},
    {"IQ2_XXS", "its types (IQ1, IQ2, IQ3) have no quantizer in garlic"},
    {"IQ2_XS", "its types (IQ1, IQ2, IQ3) have no quantizer in garlic"},
    {"IQ2_S", "its types (IQ1, IQ2, IQ3) have no quantizer in garlic"},
    {"IQ2_M", "its types (IQ1, IQ2, IQ3) have no quantizer in garlic"},
    {"IQ3_XXS", "its types (IQ1, IQ2, IQ3) have no quantizer in garlic"},
    {"IQ3_XS", "its types (IQ1, IQ2, IQ3) have no quantizer in garlic"},
    {"IQ3_S", "its types (IQ1, IQ2, IQ3) have no quantizer in garlic"},
    {"IQ3_M", "its types (IQ1, IQ2, IQ3) have no quantizer in garlic"},
    {"TQ1_0", "its ternary types have no quantizer in garlic"},
    {"TQ2_0", "its ternary types have no quantizer in garlic"},
    {"Q1_0", "its type has no quantizer in garlic"},
    {"Q2_0", "its type has no quantizer in garlic"},
    {"NVFP4", "its type has no quantizer in garlic"},
};

const char *model_quant_mix_names(void)
{
    static char names[400];
    if (!names[0]) {
        size_t len = 0;
        for (size_t i = 0; i < N_MIXES && len < sizeof names; i++)
            len += (size_t)snprintf(names + len, sizeof names - len, "%s%s", i ? ", " : "",
                                    mixes[i].name);
    }
    return names;
}

const char *model_quant_mix_name(uint32_t file_type)
{
    for (size_t i = 0; i < N_MIXES; i++)
        if (mixes[i].file_type == file_type && !mixes[i].alias_of)
            return mixes[i].name;
    return NULL;
}

int model_quant_mix_parse(const char *name, model_quant_mix *out, garlic_error *err)
{
    for (size_t i = 0; name && i < N_MIXES; i++) {
        if (strcasecmp(mixes[i].name, name) != 0)
            continue;
        const char *canonical = mixes[i].alias_of ? mixes[i].alias_of : mixes[i].name;
        *out = (model_quant_mix){canonical, mixes[i].file_type, mixes[i].type};
        return GARLIC_OK;
    }
    for (size_t i = 0; name && i < sizeof unwritable / sizeof unwritable[0]; i++)
        if (strcasecmp(unwritable[i].name, name) == 0)
            return garlic_error_set(err, GARLIC_EUNSUPPORTED,
                                    "'%s' is a llama.cpp mixture garlic cannot write: %s",
                                    unwritable[i].name, unwritable[i].why);
    return garlic_error_set(err, GARLIC_ENOTFOUND, "unknown type '%s' (one of %s)",
                            name ? name : "", model_quant_mix_names());
}

// ---- the type of each tensor ----

// What a tensor is to the rules, from its name.
typedef enum tensor_role {
    ROLE_OUTPUT,
    ROLE_TOKEN_EMBD,
    ROLE_ATTN_V, // attn_v, and the matrices that hold V rows with others (attn_qkv, attn_kv_b)
    ROLE_ATTN_K,
    ROLE_ATTN_Q,
    ROLE_ATTN_OUTPUT,
    ROLE_FFN_UP,
    ROLE_FFN_GATE,
    ROLE_FFN_DOWN, // dense, experts' and shared experts' alike
    ROLE_OTHER,
    ROLE_COUNT
} tensor_role;

// Names are matched in this order, as llama-quantize does: exact names first, then the first
// row whose text the name contains.
static const struct {
    const char *text;
    bool exact;
    tensor_role role;
} role_names[] = {
    {"output.weight", true, ROLE_OUTPUT},
    {"token_embd.weight", true, ROLE_TOKEN_EMBD},
    {"per_layer_token_embd.weight", true, ROLE_TOKEN_EMBD},
    {"attn_qkv.weight", false, ROLE_ATTN_V},
    {"attn_kv_b.weight", false, ROLE_ATTN_V},
    {"attn_v.weight", false, ROLE_ATTN_V},
    {"attn_k.weight", false, ROLE_ATTN_K},
    {"attn_q.weight", false, ROLE_ATTN_Q},
    {"attn_output.weight", false, ROLE_ATTN_OUTPUT},
    {"ffn_up", false, ROLE_FFN_UP},
    {"ffn_gate", false, ROLE_FFN_GATE},
    {"ffn_down", false, ROLE_FFN_DOWN},
};

static tensor_role role_of(const char *name)
{
    for (size_t i = 0; i < sizeof role_names / sizeof role_names[0]; i++) {
        bool hit = role_names[i].exact ? strcmp(name, role_names[i].text) == 0
                                       : strstr(name, role_names[i].text) != NULL;
        if (hit)
            return role_names[i].role;
    }
    return ROLE_OTHER;
}

// Matrices llama-quantize never quantizes (by a part of their name): norms, routers, the small
// tables of some architectures, positional embeddings, multimodal and audio tables.
static const char *const kept_parts[] = {
    "_norm.weight",
    "ffn_gate_inp.weight",
    "ffn_gate_tid2eid.weight",
    "altup",
    "laurel",
    "per_layer_model_proj",
    "ssm_conv1d",
    "shortconv.conv.weight",
    "indexer.k_proj.weight",
    "indexer.q_proj.weight",
    "time_mix_first.weight",
    "time_mix_w0.weight",
    "time_mix_w1.weight",
    "time_mix_w2.weight",
    "time_mix_v0.weight",
    "time_mix_v1.weight",
    "time_mix_v2.weight",
    "time_mix_a0.weight",
    "time_mix_a1.weight",
    "time_mix_a2.weight",
    "time_mix_g1.weight",
    "time_mix_g2.weight",
    "time_mix_decay_w1.weight",
    "time_mix_decay_w2.weight",
    "time_mix_lerp_fused.weight",
    "attn_rel_b.weight",
    ".position_embd",
    "sam.pos_embd",
    "sam.neck.",
    "sam.net_",
    ".rel_pos",
    ".patch_embd",
    ".patch_merger",
    "a.rvq.codebook",
    "mm.a.code_embd",
};

// The dimensions that count: a trailing dimension of 1 does not (a {4096, 1} tensor is 1-D).
static uint32_t real_dims(const uint64_t *ne, uint32_t n_dims)
{
    while (n_dims > 1 && ne[n_dims - 1] == 1)
        n_dims--;
    return n_dims;
}

// Whether the mixtures quantize this tensor at all.
static bool quantizable(const char *name, const uint64_t *ne, uint32_t n_dims, uint32_t keep_type)
{
    if (real_dims(ne, n_dims) < 2)
        return false;
    if (keep_type >= TENSOR_TYPE_I8 && keep_type <= TENSOR_TYPE_I64)
        return false; // integer tables (token ids) are data, not weights
    size_t len = strlen(name);
    if (len < 6 || strcmp(name + len - 6, "weight") != 0)
        return false;
    if (strcmp(name, "position_embd.weight") == 0 || strcmp(name, "token_types.weight") == 0)
        return false;
    for (size_t i = 0; i < sizeof kept_parts / sizeof kept_parts[0]; i++)
        if (strstr(name, kept_parts[i]))
            return false;
    return true;
}

// The N of a "blk.N." prefix, or 0 for a tensor outside the layers.
static uint32_t layer_of(const char *name)
{
    if (strncmp(name, "blk.", 4) != 0)
        return 0;
    uint64_t layer = 0;
    const char *p = name + 4;
    for (; *p >= '0' && *p <= '9' && layer < UINT32_MAX; p++)
        layer = layer * 10 + (uint64_t)(*p - '0');
    return *p == '.' && p > name + 4 && layer < UINT32_MAX ? (uint32_t)layer : 0;
}

// The layers the "_M" mixtures give more bits: the first and last eighth, and every third
// layer between.
static bool more_bits(uint32_t layer, uint32_t n_layer)
{
    uint32_t eighth = n_layer / 8;
    return layer < eighth || layer >= 7 * n_layer / 8 || (layer - eighth) % 3 == 2;
}

static bool is_falcon(const model_quant_model *m) { return !strcmp(m->arch, "falcon"); }

// llama.cpp's 70B model type, whose attn_v gets more bits: 80 layers of llama (with grouped
// queries), qwen2, deci or olmo, or 68 of jais2.
static bool is_70b(const model_quant_model *m)
{
    if (!strcmp(m->arch, "llama"))
        return m->n_layer == 80 && m->n_head != m->n_head_kv;
    if (!strcmp(m->arch, "qwen2") || !strcmp(m->arch, "deci") || !strcmp(m->arch, "olmo"))
        return m->n_layer == 80;
    return !strcmp(m->arch, "jais2") && m->n_layer == 68;
}

static uint32_t gqa_ratio(const model_quant_model *m)
{
    return m->n_head_kv ? m->n_head / m->n_head_kv : 0;
}

// output.weight, or token_embd when it doubles as the output.
static uint32_t output_type(const model_quant_mix *mix, const model_quant_model *m,
                            const uint64_t *ne)
{
    if (mix->file_type == FILE_TYPE_MXFP4_MOE)
        return TENSOR_TYPE_Q8_0;
    if (is_falcon(m) || ne[0] % tensor_type_get(mix->type)->block_size != 0)
        return TENSOR_TYPE_Q8_0;
    return mix->type == TENSOR_TYPE_Q8_0 ? TENSOR_TYPE_Q8_0 : TENSOR_TYPE_Q6_K;
}

static uint32_t attn_v_type(const model_quant_mix *mix, const model_quant_model *m, uint32_t layer)
{
    uint32_t t = mix->type;
    switch (mix->file_type) {
    case FILE_TYPE_Q2_K: t = gqa_ratio(m) >= 4 ? TENSOR_TYPE_Q4_K : TENSOR_TYPE_Q3_K; break;
    case FILE_TYPE_Q3_K_M: t = layer < 2 ? TENSOR_TYPE_Q5_K : TENSOR_TYPE_Q4_K; break;
    case FILE_TYPE_Q3_K_L: t = TENSOR_TYPE_Q5_K; break;
    case FILE_TYPE_IQ4_NL:
    case FILE_TYPE_IQ4_XS:
        if (gqa_ratio(m) >= 4)
            t = TENSOR_TYPE_Q5_K;
        break;
    case FILE_TYPE_Q4_K_M:
    case FILE_TYPE_Q5_K_M:
        if (more_bits(layer, m->n_layer))
            t = TENSOR_TYPE_Q6_K;
        break;
    case FILE_TYPE_Q4_K_S:
        if (layer < 4)
            t = TENSOR_TYPE_Q5_K;
        break;
    default: break;
    }
    if (is_70b(m) && (t == TENSOR_TYPE_Q3_K || t == TENSOR_TYPE_Q4_K))
        t = TENSOR_TYPE_Q5_K; // 8 query heads share each V head: cheap bits
    if (m->n_expert == 8)
        t = TENSOR_TYPE_Q8_0;
    return t;
}

static uint32_t ffn_down_type(const model_quant_mix *mix, const model_quant_model *m,
                              uint32_t layer)
{
    uint32_t n = m->n_layer, t = mix->type;
    bool more = more_bits(layer, n), falcon = is_falcon(m);
    switch (mix->file_type) {
    case FILE_TYPE_Q2_K: return TENSOR_TYPE_Q3_K;
    case FILE_TYPE_Q3_K_M:
        if (layer < n / 16)
            return TENSOR_TYPE_Q5_K;
        return !falcon || more ? TENSOR_TYPE_Q4_K : TENSOR_TYPE_Q3_K;
    case FILE_TYPE_Q3_K_L: return falcon ? TENSOR_TYPE_Q4_K : TENSOR_TYPE_Q5_K;
    case FILE_TYPE_Q4_K_M:
        if (falcon)
            return layer < n / 16 ? TENSOR_TYPE_Q6_K : more ? TENSOR_TYPE_Q5_K : TENSOR_TYPE_Q4_K;
        return more ? TENSOR_TYPE_Q6_K : t;
    case FILE_TYPE_IQ4_NL:
    case FILE_TYPE_IQ4_XS: return layer < n / 8 ? TENSOR_TYPE_Q5_K : t;
    case FILE_TYPE_Q5_K_M: return more ? TENSOR_TYPE_Q6_K : t;
    case FILE_TYPE_Q4_K_S: return !falcon && layer < n / 8 ? TENSOR_TYPE_Q5_K : t;
    default: return t;
    }
}

static uint32_t attn_output_type(const model_quant_mix *mix, const model_quant_model *m)
{
    uint32_t ft = mix->file_type;
    if (is_falcon(m))
        return ft == FILE_TYPE_Q3_K_L ? TENSOR_TYPE_Q4_K : mix->type;
    if (m->n_expert == 8) {
        bool bump = ft == FILE_TYPE_Q2_K || ft == FILE_TYPE_Q3_K_S || ft == FILE_TYPE_Q3_K_M ||
            ft == FILE_TYPE_IQ4_NL || ft == FILE_TYPE_Q4_K_S || ft == FILE_TYPE_Q4_K_M ||
            ft == FILE_TYPE_IQ4_XS;
        return bump ? TENSOR_TYPE_Q5_K : mix->type;
    }
    switch (ft) {
    case FILE_TYPE_Q2_K: return TENSOR_TYPE_Q3_K;
    case FILE_TYPE_Q3_K_M: return TENSOR_TYPE_Q4_K;
    case FILE_TYPE_Q3_K_L: return TENSOR_TYPE_Q5_K;
    default: return mix->type;
    }
}

// A type whose blocks divide rows of ne0 values, when t's do not: the nearest type of
// 32-value blocks, else F16.
static uint32_t fallback_type(uint32_t t, uint64_t ne0)
{
    if (ne0 % tensor_type_get(t)->block_size == 0)
        return t;
    switch (t) {
    case TENSOR_TYPE_IQ4_XS: t = TENSOR_TYPE_IQ4_NL; break;
    case TENSOR_TYPE_Q2_K:
    case TENSOR_TYPE_Q3_K: t = TENSOR_TYPE_Q4_0; break;
    case TENSOR_TYPE_Q4_K: t = TENSOR_TYPE_Q5_0; break;
    case TENSOR_TYPE_Q5_K: t = TENSOR_TYPE_Q5_1; break;
    case TENSOR_TYPE_Q6_K: t = TENSOR_TYPE_Q8_0; break;
    default: return TENSOR_TYPE_F16; // llama-quantize stops here; F16 keeps the values
    }
    return ne0 % tensor_type_get(t)->block_size == 0 ? t : TENSOR_TYPE_F16;
}

model_quant_choice model_quant_mix_type(const model_quant_mix *mix, const model_quant_model *model,
                                        const char *name, const uint64_t *ne, uint32_t n_dims,
                                        uint32_t keep_type)
{
    model_quant_choice c = {.type = keep_type};
    if (!quantizable(name, ne, n_dims, keep_type))
        return c;
    c.quantized = true;
    c.type = mix->type;
    if (!tensor_type_get(mix->type)->is_quantized)
        return c; // F32, F16, BF16: every matrix alike
    tensor_role role = role_of(name);
    uint32_t layer = layer_of(name);
    if (role == ROLE_OUTPUT || (role == ROLE_TOKEN_EMBD && !model->has_output))
        c.type = output_type(mix, model, ne);
    else if (mix->file_type == FILE_TYPE_MXFP4_MOE)
        c.type = n_dims > 2 && ne[2] > 1 ? TENSOR_TYPE_MXFP4 : TENSOR_TYPE_Q8_0;
    else if (role == ROLE_ATTN_V)
        c.type = attn_v_type(mix, model, layer);
    else if (role == ROLE_ATTN_K && model->n_expert == 8)
        c.type = TENSOR_TYPE_Q8_0;
    else if (role == ROLE_FFN_DOWN)
        c.type = ffn_down_type(mix, model, layer);
    else if (role == ROLE_ATTN_OUTPUT)
        c.type = attn_output_type(mix, model);
    uint32_t fitted = fallback_type(c.type, ne[0]);
    c.fallback = fitted != c.type;
    c.type = fitted;
    return c;
}

int model_quant_model_read(const gguf_file *f, model_quant_model *out, garlic_error *err)
{
    *out = (model_quant_model){.has_output = gguf_find_tensor(f, "output.weight") != NULL};
    gguf_string arch;
    if (gguf_get_str(f, "general.architecture", &arch) != GARLIC_OK)
        return GARLIC_OK; // no architecture: none of the per-architecture rules apply
    snprintf(out->arch, sizeof out->arch, "%.*s", (int)(arch.len < 63 ? arch.len : 63), arch.data);
    struct {
        const char *suffix;
        uint32_t *dst;
    } counts[] = {
        {"block_count", &out->n_layer},
        {"attention.head_count", &out->n_head},
        {"attention.head_count_kv", &out->n_head_kv},
        {"expert_count", &out->n_expert},
    };
    bool kv_heads_given = false;
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
        char key[128];
        snprintf(key, sizeof key, "%s.%s", out->arch, counts[i].suffix);
        const gguf_kv *kv = gguf_find_kv(f, key);
        if (!kv)
            continue;
        kv_heads_given |= counts[i].dst == &out->n_head_kv;
        int64_t v = 0;
        bool ok = kv->value.type == GGUF_TYPE_ARRAY // per-layer counts: the first layer's
            ? kv->value.arr.count > 0 && gguf_array_get_i64(&kv->value, 0, &v)
            : gguf_get_i64(f, key, &v) == GARLIC_OK;
        if (!ok || v < 0 || v > UINT32_MAX)
            return garlic_error_set(err, GARLIC_EFORMAT, "%s: key '%s': not a count", f->path, key);
        *counts[i].dst = (uint32_t)v;
    }
    if (!kv_heads_given)
        out->n_head_kv = out->n_head; // absent: no grouped queries
    return GARLIC_OK;
}

// ---- converting rows ----

// One conversion, shared by the pool's threads: each takes the next chunk of rows, decodes
// it to floats in its own scratch and codes it in the destination type.
typedef struct convert_job {
    const tensor_type_traits *from, *to;
    const uint8_t *src;
    uint8_t *dst;
    uint64_t n_per_row, n_rows, chunk_rows;
    uint64_t src_row_bytes, dst_row_bytes;
    float *scratch;     // (nth, chunk_rows * n_per_row)
    bool check_finite;  // the destination is block-quantized: a NaN or inf would vanish in it
    int nth;            // threads the scratch is sized for
    atomic_ullong next; // the next chunk to take
    atomic_ullong first_bad_row; // UINT64_MAX: every value finite so far
} convert_job;

// The first row among rows x n values at x holding a value that is not finite, or -1.
static int64_t first_nonfinite_row(const float *x, uint64_t rows, uint64_t n)
{
    for (uint64_t r = 0; r < rows; r++) {
        const float *row = x + r * n;
        float sum = 0; // inf or NaN anywhere makes the sum of 0 * x NaN
        for (uint64_t i = 0; i < n; i++)
            sum += row[i] * 0.0f;
        if (sum != 0.0f)
            return (int64_t)r;
    }
    return -1;
}

static void convert_rows(void *ctx, int ith, int nth)
{
    convert_job *j = ctx;
    if (ith >= j->nth) // a pool larger than the job was sized for
        return;
    (void)nth;
    float *floats = j->scratch + (uint64_t)ith * j->chunk_rows * j->n_per_row;
    for (;;) {
        uint64_t chunk = atomic_fetch_add(&j->next, 1);
        uint64_t row = chunk * j->chunk_rows;
        if (row >= j->n_rows)
            return;
        uint64_t rows = j->n_rows - row < j->chunk_rows ? j->n_rows - row : j->chunk_rows;
        int64_t n = (int64_t)(rows * j->n_per_row);
        j->from->dequantize(j->src + row * j->src_row_bytes, floats, n);
        if (j->check_finite) {
            int64_t bad = first_nonfinite_row(floats, rows, j->n_per_row);
            if (bad >= 0) {
                unsigned long long at = row + (uint64_t)bad, seen = atomic_load(&j->first_bad_row);
                while (at < seen && !atomic_compare_exchange_weak(&j->first_bad_row, &seen, at))
                    ;
                continue;
            }
        }
        j->to->quantize(floats, j->dst + row * j->dst_row_bytes, n);
    }
}

// Checks that the conversion is possible; fills the row sizes.
static int convert_check(const char *name, uint32_t src_type, uint32_t dst_type, uint64_t n_per_row,
                         uint64_t n_rows, uint64_t *src_row, uint64_t *dst_row, garlic_error *err)
{
    const tensor_type_traits *from = tensor_type_get(src_type), *to = tensor_type_get(dst_type);
    if (!from || !to)
        return garlic_error_set(err, GARLIC_EUNSUPPORTED, "tensor '%s': unknown type %u", name,
                                from ? dst_type : src_type);
    if (src_type != dst_type && !from->dequantize)
        return garlic_error_set(err, GARLIC_EUNSUPPORTED,
                                "tensor '%s': garlic cannot decode %s to convert it", name,
                                from->name);
    if (src_type != dst_type && !to->quantize)
        return garlic_error_set(err, GARLIC_EUNSUPPORTED, "tensor '%s': garlic cannot write %s",
                                name, to->name);
    if (!tensor_row_size(src_type, n_per_row, src_row) ||
        !tensor_row_size(dst_type, n_per_row, dst_row))
        return garlic_error_set(
            err, GARLIC_EINVAL,
            "tensor '%s': rows of %llu values are not whole blocks of %s and %s", name,
            (unsigned long long)n_per_row, from->name, to->name);
    uint64_t bytes;
    if (__builtin_mul_overflow(*src_row > *dst_row ? *src_row : *dst_row, n_rows, &bytes) ||
        bytes > SIZE_MAX)
        return garlic_error_set(err, GARLIC_EINVAL, "tensor '%s': too large", name);
    return GARLIC_OK;
}

enum { CHUNK_VALUES = 1 << 16 }; // values a thread converts at a time (256 KiB of floats)

int model_quant_convert(thread_pool *pool, const char *name, uint32_t src_type, const void *src,
                        uint32_t dst_type, void *dst, uint64_t n_per_row, uint64_t n_rows,
                        garlic_error *err)
{
    uint64_t src_row, dst_row;
    int rc = convert_check(name, src_type, dst_type, n_per_row, n_rows, &src_row, &dst_row, err);
    if (rc)
        return rc;
    if (src_type == dst_type) {
        memcpy(dst, src, (size_t)(src_row * n_rows));
        return GARLIC_OK;
    }
    if (n_rows == 0 || n_per_row == 0)
        return GARLIC_OK;
    int nth = pool ? thread_pool_size(pool) : 1;
    uint64_t chunk_rows = n_per_row >= CHUNK_VALUES ? 1 : CHUNK_VALUES / n_per_row;
    if (chunk_rows > n_rows)
        chunk_rows = n_rows;
    convert_job j = {
        .from = tensor_type_get(src_type),
        .to = tensor_type_get(dst_type),
        .src = src,
        .dst = dst,
        .n_per_row = n_per_row,
        .n_rows = n_rows,
        .chunk_rows = chunk_rows,
        .src_row_bytes = src_row,
        .dst_row_bytes = dst_row,
        .check_finite = tensor_type_get(dst_type)->is_quantized,
        .nth = nth,
    };
    atomic_init(&j.next, 0);
    atomic_init(&j.first_bad_row, UINT64_MAX);
    uint64_t floats;
    if (__builtin_mul_overflow(chunk_rows * n_per_row, (uint64_t)nth, &floats) ||
        floats > SIZE_MAX / sizeof(float))
        return garlic_error_set(err, GARLIC_EINVAL, "tensor '%s': rows too long", name);
    j.scratch = garlic_malloc((size_t)floats * sizeof(float));
    if (!j.scratch)
        return garlic_error_set(err, GARLIC_ENOMEM, "tensor '%s': out of memory", name);
    if (pool)
        thread_pool_run(pool, convert_rows, &j);
    else
        convert_rows(&j, 0, 1);
    garlic_free(j.scratch);
    uint64_t bad = atomic_load(&j.first_bad_row);
    if (bad != UINT64_MAX)
        return garlic_error_set(err, GARLIC_EINVAL,
                                "tensor '%s': row %llu holds a value that is not finite (NaN or "
                                "inf), which %s cannot keep",
                                name, (unsigned long long)bad, j.to->name);
    return GARLIC_OK;
}
