// SPDX-License-Identifier: MIT
// A Hugging Face model folder made into the description a GGUF file gives (hf.h): config.json
// becomes the metadata llama.cpp's converter writes, tokenizer files the tokenizer metadata
// (tokenizer.c), and every weight a tensor under its GGUF name and layout. Tensors whose bytes
// are already what the GGUF tensor holds point into the shards' mappings; the others (Q/K rows
// permuted for Llama's RoPE, experts stacked, fused tensors split, norms widened to F32, and
// the quantized encodings repacked losslessly into F8_E4M3, Q4_Z or MXFP4 blocks) are made
// from them, at load into memory of their own (hf_open) or tensor by tensor while a GGUF file
// is written (hf_model_fill, for `garlic convert`). A weight the architecture does not read is
// an error naming it, as in GGUF files.
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/buffer.h"
#include "base/file.h"
#include "base/mapping.h"
#include "base/threadpool.h"
#include "base/utf8.h"
#include "hf/hf.h"
#include "tensor/quants.h"
#include "tensor/types.h"

// ---- architectures ----

typedef enum family {
    FAM_LLAMA, // Llama, Mistral, Mixtral: Q/K rows permuted for adjacent-pair RoPE
    FAM_QWEN2,
    FAM_QWEN3,
    FAM_QWEN2MOE,
    FAM_QWEN3MOE,
    FAM_GEMMA3,
    FAM_PHI3,
    FAM_GPTOSS,
    FAM_DEEPSEEK,
} family;

typedef struct arch_row {
    const char *hf;         // architectures[0]
    const char *model_type; // accepted when architectures is absent
    const char *gguf;       // general.architecture
    family fam;
} arch_row;

static const arch_row arch_rows[] = {
    {"LlamaForCausalLM", "llama", "llama", FAM_LLAMA},
    {"MistralForCausalLM", "mistral", "llama", FAM_LLAMA},
    {"MixtralForCausalLM", "mixtral", "llama", FAM_LLAMA},
    {"Qwen2ForCausalLM", "qwen2", "qwen2", FAM_QWEN2},
    {"Qwen3ForCausalLM", "qwen3", "qwen3", FAM_QWEN3},
    {"Qwen2MoeForCausalLM", "qwen2_moe", "qwen2moe", FAM_QWEN2MOE},
    {"Qwen3MoeForCausalLM", "qwen3_moe", "qwen3moe", FAM_QWEN3MOE},
    {"Gemma3ForCausalLM", "gemma3_text", "gemma3", FAM_GEMMA3},
    {"Gemma3ForConditionalGeneration", "gemma3", "gemma3", FAM_GEMMA3},
    {"Phi3ForCausalLM", "phi3", "phi3", FAM_PHI3},
    {"GptOssForCausalLM", "gpt_oss", "gpt-oss", FAM_GPTOSS},
    {"DeepseekV2ForCausalLM", "deepseek_v2", "deepseek2", FAM_DEEPSEEK},
    {"DeepseekV3ForCausalLM", "deepseek_v3", "deepseek2", FAM_DEEPSEEK},
};

const char *hf_arch_names(void)
{
    return "LlamaForCausalLM, MistralForCausalLM, MixtralForCausalLM, Qwen2ForCausalLM, "
           "Qwen3ForCausalLM, Qwen2MoeForCausalLM, Qwen3MoeForCausalLM, Gemma3ForCausalLM, "
           "Gemma3ForConditionalGeneration, Phi3ForCausalLM, GptOssForCausalLM, "
           "DeepseekV2ForCausalLM, DeepseekV3ForCausalLM";
}

// ---- the folder's tensors ----

typedef struct st_tensor {
    char *name;
    const uint8_t *data; // inside its shard's mapping
    char dtype[12];
    uint32_t dsize;
    uint32_t n_dims;
    uint64_t shape[HF_MAX_DIMS];
    uint64_t n; // elements
    const char *file;
    bool used;
} st_tensor;

// How a weight matrix is stored.
typedef enum enc { ENC_DENSE, ENC_FP8, ENC_AWQ, ENC_GPTQ, ENC_MXFP4 } enc;

// One weight as the folder stores it, read as mats matrices of rows x cols values (out x in).
typedef struct src {
    enc enc;
    const st_tensor *w; // weight, qweight or _blocks
    const st_tensor *scale, *zeros, *gidx;
    uint64_t mats, rows, cols;
    bool transposed;      // stored cols x rows (gpt-oss's unquantized experts)
    uint32_t bn, bk;      // FP8 scale blocks (rows, cols); 0: per tensor; bk 0 bn 1: per row
    uint32_t group;       // AWQ/GPTQ columns per group
    uint32_t zero_offset; // added to each stored zero point (1 in GPTQ's original v1 format)
    int32_t *perm;        // act-order GPTQ: column j of the made rows is column perm[j] (owned by
                          // the model's list), or NULL
} src;

// How an output element (mat m, row r, col c) finds its source element.
typedef enum map_kind {
    MAP_ID,      // (m, r, c)
    MAP_PERMUTE, // rows of heads of a values, halves interleaved back (Llama's RoPE)
    MAP_STRIDE,  // row a + r * b (gpt-oss's interleaved gate/up)
    MAP_COLS,    // column a + c * b (their biases)
    MAP_HEADS,   // matrix m is head m: row m * a + b + r (MLA's attn_v_b)
    MAP_HEADS_T, // transposed: row m * a + b + c, column r (MLA's attn_k_b)
    MAP_SCALAR,  // column 0 of every row (a [1, n] vector read as n values)
} map_kind;

typedef struct out_t {
    char name[96];
    uint32_t type; // as written
    uint32_t n_dims;
    uint64_t ne[3]; // cols, rows, mats
    src *srcs;      // (n_srcs): one, or one per matrix (experts stored apart)
    uint32_t n_srcs;
    map_kind map;
    uint64_t a, b;
    float add;          // added to every value (Gemma's norms: 1 + w)
    const float *f32;   // values made from config.json (RoPE factors), (ne[0])
    const int32_t *i32; // a column order (act-order GPTQ), (ne[0])
    const void *data;   // the bytes as they are in the mapping (borrowed), or NULL: made
} out_t;

struct hf_model {
    char dir[HF_PATH_MAX];
    char config[HF_PATH_MAX];
    cJSON *root;
    const cJSON *cfg; // root, or its text_config
    const arch_row *arch;
    hf_shards shards;
    garlic_mapping *maps; // (shards.n) every shard, mapped
    st_tensor *t;         // (n_t), sorted by name
    size_t n_t;
    out_t *outs;
    size_t n_outs, cap_outs;
    float *extra; // config-made values (RoPE factors)
    size_t n_extra;
    int32_t **perms; // (n_perms) column orders of act-order matrices
    size_t n_perms, cap_perms;
    gguf_writer *w;
    hf_open_options opt;
    // quantization_config
    enc qenc;
    uint32_t bn, bk, group;
    bool gptq_v1; // GPTQ's original format: stored zero points are one less
    bool desc_act;
    // shape
    uint64_t n_layer, dim, n_head, n_head_kv, head_dim, ffn, n_vocab, n_expert, ffn_exp;
    uint64_t q_lora, kv_lora, qk_nope, qk_rope, v_head;
    uint64_t n_dense_lead, ffn_shexp; // leading dense layers, the shared experts' width
    bool tied;                        // tie_word_embeddings
    bool indexed;                     // model.safetensors.index.json lists the shards
    thread_pool *pool;                // makes a tensor's rows in parallel (made on first use)
    char prefix[64];                  // of the decoder's names: "model.", "model.language_model."
};

// A name fit for a message (sanitized, shortened); four buffers in turn, so that a message
// can show several.
static const char *shown(const char *s)
{
    static _Thread_local char buf[4][160];
    static _Thread_local int turn;
    turn = (turn + 1) % 4;
    utf8_sanitize(s, strlen(s), buf[turn], sizeof buf[turn], true);
    return buf[turn];
}

// ---- config.json fields ----

static const cJSON *item(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return v && !cJSON_IsNull(v) ? v : NULL;
}

// An integer field in [min, max]; dflt when absent (required: an error).
static int cfg_uint(hf_model *h, const cJSON *o, const char *key, bool required, uint64_t min,
                    uint64_t max, uint64_t dflt, uint64_t *out, garlic_error *err)
{
    const cJSON *v = item(o, key);
    if (!v) {
        if (required)
            return garlic_error_set(err, GARLIC_EFORMAT, "%s: %s is missing", h->config, key);
        return *out = dflt, GARLIC_OK;
    }
    double d = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    if (!(d >= (double)min && d <= (double)max) || d != floor(d))
        return garlic_error_set(err, GARLIC_EFORMAT, "%s: %s must be an integer from %llu to %llu",
                                h->config, key, (unsigned long long)min, (unsigned long long)max);
    *out = (uint64_t)d;
    return GARLIC_OK;
}

static int cfg_float(hf_model *h, const cJSON *o, const char *key, double dflt, double *out,
                     garlic_error *err)
{
    const cJSON *v = item(o, key);
    if (!v)
        return *out = dflt, GARLIC_OK;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return garlic_error_set(err, GARLIC_EFORMAT, "%s: %s must be a number", h->config, key);
    *out = v->valuedouble;
    return GARLIC_OK;
}

static int cfg_bool(hf_model *h, const cJSON *o, const char *key, bool dflt, bool *out,
                    garlic_error *err)
{
    const cJSON *v = item(o, key);
    if (!v)
        return *out = dflt, GARLIC_OK;
    if (!cJSON_IsBool(v))
        return garlic_error_set(err, GARLIC_EFORMAT, "%s: %s must be true or false", h->config,
                                key);
    *out = cJSON_IsTrue(v);
    return GARLIC_OK;
}

static const char *cfg_str(const cJSON *o, const char *key)
{
    const cJSON *v = item(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int meta_fail(hf_model *h, garlic_error *err)
{
    return garlic_error_set(err, GARLIC_ENOMEM, "%s: out of memory", h->config);
}

// "<arch>.<key>" = v
static int put_u32(hf_model *h, const char *key, uint64_t v)
{
    char k[128];
    snprintf(k, sizeof k, "%s.%s", h->arch->gguf, key);
    return gguf_writer_set_u32(h->w, k, (uint32_t)v);
}

static int put_f32(hf_model *h, const char *key, double v)
{
    char k[128];
    snprintf(k, sizeof k, "%s.%s", h->arch->gguf, key);
    return gguf_writer_set_f32(h->w, k, (float)v);
}

static int read_arch(hf_model *h, garlic_error *err)
{
    const cJSON *list = item(h->root, "architectures");
    const char *name = NULL, *type = cfg_str(h->root, "model_type");
    if (list) {
        const cJSON *first = cJSON_GetArrayItem(list, 0);
        if (!cJSON_IsArray(list) || !cJSON_IsString(first))
            return garlic_error_set(err, GARLIC_EFORMAT,
                                    "%s: architectures must be a list of strings", h->config);
        name = first->valuestring;
    }
    for (size_t i = 0; i < sizeof arch_rows / sizeof arch_rows[0]; i++)
        if ((name && strcmp(name, arch_rows[i].hf) == 0) ||
            (!name && type && strcmp(type, arch_rows[i].model_type) == 0))
            h->arch = &arch_rows[i];
    if (!h->arch && !name && !type)
        return garlic_error_set(err, GARLIC_EFORMAT, "%s: architectures is missing", h->config);
    if (!h->arch)
        return garlic_error_set(
            err, GARLIC_EUNSUPPORTED, "%s: %s '%s' is not supported (garlic runs %s)", h->config,
            name ? "architectures" : "model_type", shown(name ? name : type), hf_arch_names());
    h->cfg = h->root;
    const cJSON *text = item(h->root, "text_config");
    if (h->arch->fam == FAM_GEMMA3 && cJSON_IsObject(text))
        h->cfg = text;
    return GARLIC_OK;
}

// rope_scaling (or transformers' newer rope_parameters), NULL when none.
static const cJSON *rope_params(hf_model *h)
{
    const cJSON *r = item(h->cfg, "rope_scaling");
    if (!cJSON_IsObject(r))
        r = item(h->cfg, "rope_parameters");
    if (cJSON_IsObject(r) && cJSON_IsObject(item(r, "full_attention")))
        r = item(r, "full_attention");
    return cJSON_IsObject(r) ? r : NULL;
}

static const char *rope_type(const cJSON *r)
{
    const char *t = r ? cfg_str(r, "rope_type") : NULL;
    return t ? t : r ? cfg_str(r, "type") : NULL;
}

// Adds a config-made F32 vector tensor (RoPE factors) of n values.
static int add_f32_out(hf_model *h, const char *name, const float *values, uint64_t n,
                       garlic_error *err);

// Llama 3's frequency factors (rope_type llama3), as rope_freqs.weight.
static int llama3_freqs(hf_model *h, const cJSON *r, uint64_t n_rot, double base, garlic_error *err)
{
    double factor, lo, hi, orig_d;
    int rc;
    if ((rc = cfg_float(h, r, "factor", 8, &factor, err)) ||
        (rc = cfg_float(h, r, "low_freq_factor", 1, &lo, err)) ||
        (rc = cfg_float(h, r, "high_freq_factor", 4, &hi, err)) ||
        (rc = cfg_float(h, r, "original_max_position_embeddings", 8192, &orig_d, err)))
        return rc;
    if (!(factor > 0) || !(hi > lo) || !(lo > 0))
        return garlic_error_set(err, GARLIC_EFORMAT,
                                "%s: rope_scaling: llama3 needs factor > 0 and "
                                "high_freq_factor > low_freq_factor > 0",
                                h->config);
    float f[HF_MAX_ROT / 2];
    for (uint64_t i = 0; i < n_rot / 2; i++) {
        // float32 as the converter computes the frequencies, the rest in double
        float freq = 1.0f / powf((float)base, (float)(2 * i) / (float)n_rot);
        double wavelen = 2 * M_PI / freq;
        if (wavelen < orig_d / hi)
            f[i] = 1;
        else if (wavelen > orig_d / lo)
            f[i] = (float)factor;
        else {
            double smooth = (orig_d / wavelen - lo) / (hi - lo);
            f[i] = (float)(1 / ((1 - smooth) / factor + smooth));
        }
    }
    return add_f32_out(h, "rope_freqs.weight", f, n_rot / 2, err);
}

// Phi-3's LongRoPE factors and attention factor.
static int longrope(hf_model *h, const cJSON *r, uint64_t n_rot, uint64_t ctx, garlic_error *err)
{
    uint64_t orig;
    int rc = cfg_uint(h, r, "original_max_position_embeddings", false, 1, HF_MAX_CTX, 0, &orig,
                      err);
    if (rc)
        return rc;
    if (!orig)
        rc = cfg_uint(h, h->cfg, "original_max_position_embeddings", true, 1, HF_MAX_CTX, 0, &orig,
                      err);
    if (rc)
        return rc;
    const cJSON *lf = item(r, "long_factor"), *sf = item(r, "short_factor");
    uint64_t half = n_rot / 2;
    if (!cJSON_IsArray(lf) || !cJSON_IsArray(sf) || (uint64_t)cJSON_GetArraySize(lf) != half ||
        (uint64_t)cJSON_GetArraySize(sf) != half)
        return garlic_error_set(err, GARLIC_EFORMAT,
                                "%s: rope_scaling.long_factor and short_factor must be lists of "
                                "%llu numbers (half the rotated dimensions)",
                                h->config, (unsigned long long)half);
    float fl[HF_MAX_ROT / 2], fs[HF_MAX_ROT / 2];
    for (uint64_t i = 0; i < half; i++) {
        const cJSON *a = cJSON_GetArrayItem(lf, (int)i), *b = cJSON_GetArrayItem(sf, (int)i);
        if (!cJSON_IsNumber(a) || !cJSON_IsNumber(b) || !(a->valuedouble > 0) ||
            !(b->valuedouble > 0))
            return garlic_error_set(err, GARLIC_EFORMAT,
                                    "%s: rope_scaling factors must be positive numbers", h->config);
        fl[i] = (float)a->valuedouble, fs[i] = (float)b->valuedouble;
    }
    double scale = (double)ctx / (double)orig;
    double attn = scale > 1 ? sqrt(1 + log(scale) / log((double)orig)) : 1;
    if (put_u32(h, "rope.scaling.original_context_length", orig) ||
        put_f32(h, "rope.scaling.attn_factor", attn))
        return meta_fail(h, err);
    if ((rc = add_f32_out(h, "rope_factors_long.weight", fl, half, err)))
        return rc;
    return add_f32_out(h, "rope_factors_short.weight", fs, half, err);
}

static int rope_meta(hf_model *h, uint64_t n_rot, uint64_t ctx, garlic_error *err)
{
    double base;
    const cJSON *r = rope_params(h);
    int rc = cfg_float(h, h->cfg, "rope_theta", 10000, &base, err);
    if (!rc && r && item(r, "rope_theta"))
        rc = cfg_float(h, r, "rope_theta", base, &base, err);
    if (rc)
        return rc;
    if (h->arch->fam == FAM_GEMMA3 && !item(h->cfg, "rope_theta") && !(r && item(r, "rope_theta")))
        base = 1000000;
    if (put_f32(h, "rope.freq_base", base) || put_u32(h, "rope.dimension_count", n_rot))
        return meta_fail(h, err);
    const char *type = rope_type(r);
    if (!type || strcmp(type, "default") == 0)
        return GARLIC_OK;
    double factor = 1, orig = 0;
    if ((rc = cfg_float(h, r, "factor", 1, &factor, err)) ||
        (rc = cfg_float(h, r, "original_max_position_embeddings", 0, &orig, err)))
        return rc;
    if (strcmp(type, "linear") == 0) {
        if (put_f32(h, "rope.scaling.factor", factor))
            return meta_fail(h, err);
        char k[128];
        snprintf(k, sizeof k, "%s.rope.scaling.type", h->arch->gguf);
        return gguf_writer_set_str(h->w, k, "linear") ? meta_fail(h, err) : GARLIC_OK;
    }
    if (strcmp(type, "yarn") == 0) {
        char k[128];
        snprintf(k, sizeof k, "%s.rope.scaling.type", h->arch->gguf);
        if (gguf_writer_set_str(h->w, k, "yarn") || put_f32(h, "rope.scaling.factor", factor) ||
            (orig > 0 && put_u32(h, "rope.scaling.original_context_length", (uint64_t)orig)))
            return meta_fail(h, err);
        double mscale_all;
        if ((rc = cfg_float(h, r, "mscale_all_dim", 0, &mscale_all, err)))
            return rc;
        if (mscale_all != 0 && put_f32(h, "rope.scaling.yarn_log_multiplier", 0.1 * mscale_all))
            return meta_fail(h, err);
        return GARLIC_OK;
    }
    if (strcmp(type, "llama3") == 0)
        return llama3_freqs(h, r, n_rot, base, err);
    if (strcmp(type, "longrope") == 0 || strcmp(type, "su") == 0)
        return longrope(h, r, n_rot, ctx, err);
    return garlic_error_set(err, GARLIC_EUNSUPPORTED,
                            "%s: rope_scaling type '%s' is not supported (linear, yarn, llama3, "
                            "longrope)",
                            h->config, shown(type));
}

// Mixture-of-experts keys.
static int moe_meta(hf_model *h, garlic_error *err)
{
    const cJSON *c = h->cfg;
    uint64_t n = 0, used = 0, ffn_exp = 0, shexp = 0, n_shared = 0, dense_lead = 0, groups = 0,
             groups_used = 0;
    static const char *const count_keys[] = {"num_experts", "num_local_experts",
                                             "n_routed_experts"};
    int rc = GARLIC_OK;
    for (int i = 0; i < 3 && !n && !rc; i++)
        rc = cfg_uint(h, c, count_keys[i], false, 0, 1 << 16, 0, &n, err);
    if (rc || !n)
        return rc;
    if ((rc = cfg_uint(h, c, "num_experts_per_tok", false, 1, n, 0, &used, err)) ||
        (!used && (rc = cfg_uint(h, c, "experts_per_token", true, 1, n, 0, &used, err))) ||
        (rc = cfg_uint(h, c, "moe_intermediate_size", false, 1, 1 << 22, 0, &ffn_exp, err)) ||
        (rc = cfg_uint(h, c, "shared_expert_intermediate_size", false, 0, 1 << 22, 0, &shexp,
                       err)) ||
        (rc = cfg_uint(h, c, "n_shared_experts", false, 0, 1024, 0, &n_shared, err)) ||
        (rc = cfg_uint(h, c, "first_k_dense_replace", false, 0, h->n_layer, 0, &dense_lead, err)) ||
        (rc = cfg_uint(h, c, "n_group", false, 0, n, 0, &groups, err)) ||
        (rc = cfg_uint(h, c, "topk_group", false, 0, n, 0, &groups_used, err)))
        return rc;
    const cJSON *mlp_only = item(c, "mlp_only_layers");
    if (cJSON_IsArray(mlp_only) && cJSON_GetArraySize(mlp_only) > 0)
        return garlic_error_set(err, GARLIC_EUNSUPPORTED,
                                "%s: mlp_only_layers (dense layers among expert layers) is not "
                                "supported",
                                h->config);
    uint64_t step;
    if ((rc = cfg_uint(h, c, "decoder_sparse_step", false, 1, 1, 1, &step, err)))
        return rc;
    if (!ffn_exp)
        ffn_exp = h->ffn; // Mixtral, gpt-oss: intermediate_size is the expert's
    h->n_expert = n, h->ffn_exp = ffn_exp, h->n_dense_lead = dense_lead;
    h->ffn_shexp = h->arch->fam == FAM_QWEN2MOE ? shexp : n_shared * ffn_exp;
    bool norm = h->arch->fam != FAM_QWEN2MOE && h->arch->fam != FAM_QWEN3MOE;
    if ((rc = cfg_bool(h, c, "norm_topk_prob", norm, &norm, err)))
        return rc;
    double scale;
    if ((rc = cfg_float(h, c, "routed_scaling_factor", 1, &scale, err)))
        return rc;
    if (put_u32(h, "expert_count", n) || put_u32(h, "expert_used_count", used) ||
        put_u32(h, "expert_feed_forward_length", ffn_exp))
        return meta_fail(h, err);
    char k[128];
    snprintf(k, sizeof k, "%s.expert_weights_norm", h->arch->gguf);
    if (gguf_writer_set_bool(h->w, k, norm))
        return meta_fail(h, err);
    if (h->arch->fam == FAM_QWEN2MOE && put_u32(h, "expert_shared_feed_forward_length", shexp))
        return meta_fail(h, err);
    if (h->arch->fam == FAM_DEEPSEEK) {
        const char *scoring = cfg_str(c, "scoring_func");
        uint32_t gating = scoring && strcmp(scoring, "sigmoid") == 0 ? 2 : 1;
        if (scoring && strcmp(scoring, "sigmoid") && strcmp(scoring, "softmax"))
            return garlic_error_set(err, GARLIC_EUNSUPPORTED,
                                    "%s: scoring_func '%s' is not softmax or sigmoid", h->config,
                                    shown(scoring));
        if (put_u32(h, "expert_shared_count", n_shared) ||
            put_u32(h, "leading_dense_block_count", dense_lead) ||
            put_f32(h, "expert_weights_scale", scale) || put_u32(h, "expert_gating_func", gating) ||
            (groups > 1 &&
             (put_u32(h, "expert_group_count", groups) ||
              put_u32(h, "expert_group_used_count", groups_used))))
            return meta_fail(h, err);
    }
    return GARLIC_OK;
}

static int read_config_meta(hf_model *h, garlic_error *err)
{
    const cJSON *c = h->cfg;
    uint64_t ctx, kv, hd;
    int rc;
    if ((rc = cfg_uint(h, c, "hidden_size", true, 1, 1 << 20, 0, &h->dim, err)) ||
        (rc = cfg_uint(h, c, "num_hidden_layers", true, 1, 4096, 0, &h->n_layer, err)) ||
        (rc = cfg_uint(h, c, "num_attention_heads", true, 1, 4096, 0, &h->n_head, err)) ||
        (rc = cfg_uint(h, c, "num_key_value_heads", false, 1, h->n_head, h->n_head, &kv, err)) ||
        (rc = cfg_uint(h, c, "intermediate_size", true, 1, 1 << 22, 0, &h->ffn, err)) ||
        (rc = cfg_uint(h, c, "vocab_size", true, 1, 1 << 24, 0, &h->n_vocab, err)) ||
        (rc = cfg_uint(h, c, "max_position_embeddings", false, 1, HF_MAX_CTX, 0, &ctx, err)))
        return rc;
    h->n_head_kv = kv;
    if (h->n_head % kv)
        return garlic_error_set(err, GARLIC_EFORMAT,
                                "%s: num_key_value_heads %llu does not divide "
                                "num_attention_heads %llu",
                                h->config, (unsigned long long)kv, (unsigned long long)h->n_head);
    if (!ctx)
        ctx = h->arch->fam == FAM_GEMMA3 ? 131072 : 2048;
    if ((rc = cfg_uint(h, c, "head_dim", false, 2, 1 << 16, h->dim / h->n_head, &hd, err)))
        return rc;
    if (!hd || hd % 2)
        return garlic_error_set(err, GARLIC_EFORMAT,
                                "%s: head_dim %llu is not a positive even "
                                "number",
                                h->config, (unsigned long long)hd);
    h->head_dim = hd;
    double eps;
    if ((rc = cfg_float(h, c, "rms_norm_eps", 1e-6, &eps, err)))
        return rc;
    const char *name = cfg_str(h->root, "_name_or_path");
    char base[HF_PATH_MAX];
    const char *slash = strrchr(h->dir, '/');
    snprintf(base, sizeof base, "%s", name ? name : slash ? slash + 1 : h->dir);
    if (gguf_writer_set_str(h->w, "general.architecture", h->arch->gguf) ||
        gguf_writer_set_str(h->w, "general.name", base) || put_u32(h, "context_length", ctx) ||
        put_u32(h, "embedding_length", h->dim) || put_u32(h, "block_count", h->n_layer) ||
        put_u32(h, "feed_forward_length", h->ffn) ||
        put_u32(h, "attention.head_count", h->n_head) ||
        // latent attention caches one KV head (the latent and the RoPE key), as GGUF says
        put_u32(h, "attention.head_count_kv", h->arch->fam == FAM_DEEPSEEK ? 1 : kv) ||
        put_f32(h, "attention.layer_norm_rms_epsilon", eps) || put_u32(h, "vocab_size", h->n_vocab))
        return meta_fail(h, err);
    uint64_t n_rot = hd;
    family fam = h->arch->fam;
    if (fam == FAM_DEEPSEEK) {
        if ((rc = cfg_uint(h, c, "q_lora_rank", false, 0, 1 << 16, 0, &h->q_lora, err)) ||
            (rc = cfg_uint(h, c, "kv_lora_rank", true, 1, 1 << 16, 0, &h->kv_lora, err)) ||
            (rc = cfg_uint(h, c, "qk_nope_head_dim", true, 1, 1 << 16, 0, &h->qk_nope, err)) ||
            (rc = cfg_uint(h, c, "qk_rope_head_dim", true, 2, 1 << 16, 0, &h->qk_rope, err)) ||
            (rc = cfg_uint(h, c, "v_head_dim", true, 1, 1 << 16, 0, &h->v_head, err)))
            return rc;
        n_rot = h->qk_rope;
        if ((h->q_lora && put_u32(h, "attention.q_lora_rank", h->q_lora)) ||
            put_u32(h, "attention.kv_lora_rank", h->kv_lora) ||
            put_u32(h, "attention.key_length", h->kv_lora + h->qk_rope) ||
            put_u32(h, "attention.value_length", h->kv_lora) ||
            put_u32(h, "attention.key_length_mla", h->qk_nope + h->qk_rope) ||
            put_u32(h, "attention.value_length_mla", h->v_head))
            return meta_fail(h, err);
    } else {
        double partial = 1;
        if ((rc = cfg_float(h, c, "partial_rotary_factor", 1, &partial, err)))
            return rc;
        if (!(partial > 0 && partial <= 1))
            return garlic_error_set(err, GARLIC_EFORMAT,
                                    "%s: partial_rotary_factor must be in (0, 1]", h->config);
        if (partial < 1)
            n_rot = (uint64_t)(partial * (double)h->dim) / h->n_head;
        if (put_u32(h, "attention.key_length", hd) || put_u32(h, "attention.value_length", hd))
            return meta_fail(h, err);
    }
    if (n_rot > HF_MAX_ROT || n_rot % 2)
        return garlic_error_set(err, GARLIC_EFORMAT,
                                "%s: %llu rotated dimensions (even, at most "
                                "%d)",
                                h->config, (unsigned long long)n_rot, HF_MAX_ROT);
    if ((rc = rope_meta(h, n_rot, ctx, err)) || (rc = moe_meta(h, err)))
        return rc;
    uint64_t window = 0;
    if (fam == FAM_GEMMA3 || fam == FAM_PHI3 || fam == FAM_GPTOSS) {
        if ((rc = cfg_uint(h, c, "sliding_window", false, 0, HF_MAX_CTX, 0, &window, err)))
            return rc;
        if ((window || fam == FAM_PHI3) && put_u32(h, "attention.sliding_window", window))
            return meta_fail(h, err);
    }
    if (fam == FAM_GEMMA3) {
        uint64_t pattern;
        double local_base, softcap, qscale;
        if ((rc = cfg_uint(h, c, "sliding_window_pattern", false, 1, 4096, 6, &pattern, err)) ||
            (rc = cfg_float(h, c, "rope_local_base_freq", 10000, &local_base, err)) ||
            (rc = cfg_float(h, c, "final_logit_softcapping", 0, &softcap, err)) ||
            (rc = cfg_float(h, c, "query_pre_attn_scalar", 0, &qscale, err)))
            return rc;
        const cJSON *types = item(c, "layer_types");
        if (cJSON_IsArray(types)) { // the period: the first full-attention layer, plus one
            int n = cJSON_GetArraySize(types), first = -1;
            for (int i = 0; i < n && first < 0; i++) {
                const cJSON *t = cJSON_GetArrayItem(types, i);
                if (cJSON_IsString(t) && strcmp(t->valuestring, "full_attention") == 0)
                    first = i;
            }
            pattern = first < 0 ? 0 : (uint64_t)first + 1;
            for (int i = 0; i < n; i++) {
                const cJSON *t = cJSON_GetArrayItem(types, i);
                bool full = cJSON_IsString(t) && strcmp(t->valuestring, "full_attention") == 0;
                if (pattern && full != ((uint64_t)i % pattern == pattern - 1))
                    return garlic_error_set(err, GARLIC_EUNSUPPORTED,
                                            "%s: layer_types: layer %d breaks the period of %llu "
                                            "layers garlic supports",
                                            h->config, i, (unsigned long long)pattern);
            }
        }
        if (put_u32(h, "attention.sliding_window_pattern", pattern) ||
            put_f32(h, "rope.freq_base_swa", local_base) ||
            (softcap > 0 && put_f32(h, "final_logit_softcapping", softcap)) ||
            (qscale > 0 && put_f32(h, "attention.scale", 1 / sqrt(qscale))))
            return meta_fail(h, err);
    }
    return GARLIC_OK;
}

// ---- quantization_config ----

static int read_quant(hf_model *h, garlic_error *err)
{
    const cJSON *q = item(h->root, "quantization_config");
    if (!q)
        q = item(h->cfg, "quantization_config");
    h->qenc = ENC_DENSE;
    if (!q)
        return GARLIC_OK;
    const char *m = cfg_str(q, "quant_method");
    if (!cJSON_IsObject(q) || !m)
        return garlic_error_set(err, GARLIC_EFORMAT,
                                "%s: quantization_config.quant_method is missing", h->config);
    int rc = GARLIC_OK;
    if (strcmp(m, "fp8") == 0) {
        const char *fmt = cfg_str(q, "fmt");
        if (fmt && strcmp(fmt, "e4m3"))
            return garlic_error_set(err, GARLIC_EUNSUPPORTED,
                                    "%s: quantization_config.fmt '%s' is not supported (e4m3)",
                                    h->config, shown(fmt));
        h->qenc = ENC_FP8;
        const cJSON *b = item(q, "weight_block_size");
        if (b) {
            const cJSON *b0 = cJSON_GetArrayItem(b, 0), *b1 = cJSON_GetArrayItem(b, 1);
            if (!cJSON_IsArray(b) || cJSON_GetArraySize(b) != 2 || !cJSON_IsNumber(b0) ||
                !cJSON_IsNumber(b1) || b0->valuedouble < 1 || b1->valuedouble < 1 ||
                b0->valuedouble > 65536 || b1->valuedouble > 65536)
                return garlic_error_set(err, GARLIC_EFORMAT,
                                        "%s: quantization_config.weight_block_size must be "
                                        "[rows, columns]",
                                        h->config);
            h->bn = (uint32_t)b0->valuedouble, h->bk = (uint32_t)b1->valuedouble;
        }
        return GARLIC_OK;
    }
    if (strcmp(m, "compressed-tensors") == 0) {
        // FP8 weights with per-tensor, per-channel or block scales (weight_scale): how each
        // tensor's scale is laid out is read from its shape.
        const char *fmt = cfg_str(q, "format");
        if (!fmt || (strcmp(fmt, "float-quantized") && strcmp(fmt, "naive-quantized")))
            return garlic_error_set(err, GARLIC_EUNSUPPORTED,
                                    "%s: quantization_config.format '%s' is not supported "
                                    "(float-quantized FP8)",
                                    h->config, shown(fmt ? fmt : "(none)"));
        h->qenc = ENC_FP8;
        return GARLIC_OK;
    }
    uint64_t bits = 4, group = 128;
    if (strcmp(m, "awq") == 0 || strcmp(m, "gptq") == 0) {
        bool awq = m[0] == 'a';
        const cJSON *g = item(q, awq && !item(q, "group_size") ? "q_group_size" : "group_size");
        if ((rc = cfg_uint(h, q, awq && item(q, "w_bit") ? "w_bit" : "bits", false, 1, 16, 4, &bits,
                           err)))
            return rc;
        if (bits != 4)
            return garlic_error_set(err, GARLIC_EUNSUPPORTED,
                                    "%s: quantization_config.bits %llu is not supported (4)",
                                    h->config, (unsigned long long)bits);
        if (g && cJSON_IsNumber(g) && g->valuedouble == -1)
            group = 0; // one group: the whole column
        else if (g &&
                 (!cJSON_IsNumber(g) || g->valuedouble < 1 || g->valuedouble > 65536 ||
                  g->valuedouble != floor(g->valuedouble)))
            return garlic_error_set(err, GARLIC_EFORMAT,
                                    "%s: quantization_config.group_size must be -1 or a positive "
                                    "integer",
                                    h->config);
        else if (g)
            group = (uint64_t)g->valuedouble;
        h->group = (uint32_t)group;
        if (awq) {
            const char *version = cfg_str(q, "version");
            bool zp = true;
            if ((rc = cfg_bool(h, q, "zero_point", true, &zp, err)))
                return rc;
            if ((version && strcasecmp(version, "gemm")) || !zp)
                return garlic_error_set(err, GARLIC_EUNSUPPORTED,
                                        "%s: quantization_config: AWQ version '%s'%s is not "
                                        "supported (GEMM with zero points)",
                                        h->config, shown(version ? version : "gemm"),
                                        zp ? "" : " without zero points");
            h->qenc = ENC_AWQ;
            return GARLIC_OK;
        }
        const char *fmt = cfg_str(q, "checkpoint_format");
        h->gptq_v1 = !fmt || strcmp(fmt, "gptq_v2") != 0;
        if ((rc = cfg_bool(h, q, "desc_act", false, &h->desc_act, err)))
            return rc;
        h->qenc = ENC_GPTQ;
        return GARLIC_OK;
    }
    if (strcmp(m, "mxfp4") == 0) {
        h->qenc = ENC_MXFP4;
        return GARLIC_OK;
    }
    return garlic_error_set(err, GARLIC_EUNSUPPORTED,
                            "%s: quantization_config.quant_method '%s' is not supported (fp8, "
                            "compressed-tensors FP8, awq, gptq, mxfp4)",
                            h->config, shown(m));
}

// ---- shards ----

static int st_cmp(const void *a, const void *b)
{
    return strcmp(((const st_tensor *)a)->name, ((const st_tensor *)b)->name);
}

typedef struct collect {
    hf_model *h;
    const char *file;
    const uint8_t *data; // the shard's data section
    size_t cap;
} collect;

static int collect_tensor(void *user, const hf_tensor *t, garlic_error *err)
{
    collect *c = user;
    hf_model *h = c->h;
    if (garlic_grow(&h->t, &c->cap, h->n_t + 1, sizeof *h->t))
        return garlic_error_set(err, GARLIC_ENOMEM, "%s: out of memory", c->file);
    st_tensor *s = &h->t[h->n_t];
    *s = (st_tensor){.data = c->data + t->begin,
                     .dsize = t->dtype_size,
                     .n_dims = t->n_dims,
                     .n = t->n_elements,
                     .file = c->file};
    snprintf(s->dtype, sizeof s->dtype, "%s", t->dtype);
    memcpy(s->shape, t->shape, sizeof s->shape);
    if (!(s->name = garlic_strndup(t->name, strlen(t->name))))
        return garlic_error_set(err, GARLIC_ENOMEM, "%s: out of memory", c->file);
    h->n_t++;
    return GARLIC_OK;
}

static st_tensor *find(hf_model *h, const char *name)
{
    st_tensor key = {.name = (char *)name};
    return h->n_t ? bsearch(&key, h->t, h->n_t, sizeof *h->t, st_cmp) : NULL;
}

// Every tensor model.safetensors.index.json names is in the file it names.
static int check_index(hf_model *h, garlic_error *err)
{
    char index[HF_PATH_MAX + 32];
    snprintf(index, sizeof index, "%s/model.safetensors.index.json", h->dir);
    if (access(index, F_OK) != 0)
        return GARLIC_OK;
    char *text = NULL;
    size_t len = 0;
    int rc = garlic_file_read(index, HF_MAX_INDEX_BYTES, &text, &len, err);
    if (rc)
        return rc;
    cJSON *root = cJSON_ParseWithLength(text, len);
    garlic_free(text);
    const cJSON *v;
    cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(root, "weight_map"))
    {
        st_tensor *t = find(h, v->string);
        size_t fl = strlen(v->valuestring), tl = t ? strlen(t->file) : 0;
        if (!t) {
            rc = garlic_error_set(err, GARLIC_EFORMAT,
                                  "%s: weight_map names tensor '%s' in %s, which does not hold it",
                                  index, shown(v->string), shown(v->valuestring));
            break;
        }
        if (tl < fl + 1 || strcmp(t->file + tl - fl, v->valuestring) ||
            t->file[tl - fl - 1] != '/') {
            rc = garlic_error_set(err, GARLIC_EFORMAT,
                                  "%s: weight_map puts tensor '%s' in %s, but %s holds it", index,
                                  shown(v->string), shown(v->valuestring), t->file);
            break;
        }
    }
    cJSON_Delete(root);
    return rc;
}

// Maps every shard and reads its header; checks that the index's names are where it says.
static int read_shards(hf_model *h, garlic_error *err)
{
    int rc = hf_shards_list(h->dir, &h->shards, err);
    if (rc)
        return rc;
    char index[HF_PATH_MAX + 32];
    snprintf(index, sizeof index, "%s/model.safetensors.index.json", h->dir);
    h->indexed = access(index, F_OK) == 0;
    if (!h->shards.n)
        return garlic_error_set(err, GARLIC_EFORMAT, "%s: no *.safetensors weights", h->dir);
    h->maps = garlic_calloc(h->shards.n, sizeof *h->maps);
    if (!h->maps)
        return garlic_error_set(err, GARLIC_ENOMEM, "%s: out of memory", h->dir);
    size_t cap = 0;
    for (size_t i = 0; i < h->shards.n; i++) {
        const char *path = h->shards.paths[i];
        garlic_mapping *m = &h->maps[i];
        if ((rc = garlic_mapping_open(m, path, err)) != GARLIC_OK) {
            char why[sizeof err->message];
            snprintf(why, sizeof why, "%s", err->message);
            return h->indexed
                ? garlic_error_set(err, rc, "%s (named by model.safetensors.index.json)", why)
                : rc;
        }
        if (m->size < 8)
            return garlic_error_set(err, GARLIC_EFORMAT, "%s: %zu bytes: too short", path, m->size);
        const uint8_t *map = m->data;
        uint64_t n = 0;
        for (int b = 7; b >= 0; b--)
            n = n << 8 | map[b];
        // (the parser refuses a length past the file before any tensor is collected)
        uint64_t head = n <= (uint64_t)m->size - 8 ? 8 + n : 0;
        collect c = {.h = h, .file = path, .data = map + head, .cap = cap};
        rc = hf_safetensors_parse(map, m->size, (uint64_t)m->size, path, collect_tensor, &c, err);
        cap = c.cap;
        if (rc)
            return rc;
    }
    if (h->n_t)
        qsort(h->t, h->n_t, sizeof *h->t, st_cmp);
    for (size_t i = 1; i < h->n_t; i++)
        if (strcmp(h->t[i].name, h->t[i - 1].name) == 0)
            return garlic_error_set(err, GARLIC_EFORMAT, "%s and %s: both hold tensor '%s'",
                                    h->t[i - 1].file, h->t[i].file, shown(h->t[i].name));
    return check_index(h, err);
}

// ---- sources ----

static bool is_dense(const st_tensor *t)
{
    return strcmp(t->dtype, "F32") == 0 || strcmp(t->dtype, "F16") == 0 ||
        strcmp(t->dtype, "BF16") == 0;
}

static uint32_t dense_type(const st_tensor *t)
{
    return t->dtype[0] == 'B' ? TENSOR_TYPE_BF16
        : t->dtype[1] == '1'  ? TENSOR_TYPE_F16
                              : TENSOR_TYPE_F32;
}

static int bad_shape(hf_model *h, const st_tensor *t, const char *want, garlic_error *err)
{
    char got[96] = "";
    size_t len = 0;
    for (uint32_t d = 0; d < t->n_dims && len < sizeof got - 24; d++)
        len += (size_t)snprintf(got + len, sizeof got - len, "%s%llu", d ? ", " : "",
                                (unsigned long long)t->shape[d]);
    (void)h;
    return garlic_error_set(err, GARLIC_EFORMAT, "%s: tensor '%s' has shape [%s] %s, expected %s",
                            t->file, shown(t->name), got, t->dtype, want);
}

// The companion tensor base + suffix, with its dtype checked.
static const st_tensor *companion(hf_model *h, const char *base, const char *suffix)
{
    char name[256];
    snprintf(name, sizeof name, "%s%s", base, suffix);
    st_tensor *t = find(h, name);
    if (t)
        t->used = true;
    return t;
}

static int32_t read_i32(const st_tensor *t, uint64_t i);
static _Thread_local const int32_t *sort_keys;

static int by_group(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    int32_t gx = sort_keys[x], gy = sort_keys[y];
    return gx != gy ? (gx > gy) - (gx < gy) : (x > y) - (x < y);
}

// An act-order GPTQ matrix: its columns in order of group (then of column), so that every
// block of 32 shares one group; model_tensor.perm makes the input follow.
static int sort_columns(hf_model *h, src *s, garlic_error *err)
{
    int32_t *perm = garlic_malloc(s->cols * sizeof *perm);
    int32_t *keys = garlic_malloc(s->cols * sizeof *keys);
    if (!perm || !keys || garlic_grow(&h->perms, &h->cap_perms, h->n_perms + 1, sizeof *h->perms)) {
        garlic_free(perm), garlic_free(keys);
        return garlic_error_set(err, GARLIC_ENOMEM, "%s: out of memory", h->dir);
    }
    for (uint64_t c = 0; c < s->cols; c++)
        perm[c] = (int32_t)c, keys[c] = read_i32(s->gidx, c);
    sort_keys = keys; // qsort has no context argument
    qsort(perm, s->cols, sizeof *perm, by_group);
    garlic_free(keys);
    h->perms[h->n_perms++] = perm;
    s->perm = perm;
    return GARLIC_OK;
}

// The weight `base` (".weight" or its quantized forms) as a matrix of rows x cols
// (per matrix: mats of them for a stacked tensor). required: absent is an error.
static int find_src(hf_model *h, const char *base, uint64_t mats, uint64_t rows, uint64_t cols,
                    bool required, src *s, bool *found, garlic_error *err)
{
    char name[256];
    *s = (src){.mats = mats, .rows = rows, .cols = cols};
    *found = false;
    char want[128];
    snprintf(want, sizeof want, "[%s%llu, %llu]", mats > 1 ? "experts, " : "",
             (unsigned long long)rows, (unsigned long long)cols);
    snprintf(name, sizeof name, "%s.weight", base);
    st_tensor *t = find(h, name);
    if (t) {
        t->used = true, *found = true, s->w = t;
        bool shape = mats > 1 ? t->n_dims == 3 && t->shape[0] == mats : t->n_dims == 2;
        uint64_t r = t->shape[t->n_dims - 2], c = t->shape[t->n_dims - 1];
        if (shape && r == cols && c == rows && mats > 1 && rows != cols)
            s->transposed = true; // gpt-oss's unquantized experts: [experts, in, out]
        else if (!shape || r != rows || c != cols)
            return bad_shape(h, t, want, err);
        if (is_dense(t))
            return GARLIC_OK;
        if (strcmp(t->dtype, "F8_E4M3") != 0 || s->transposed)
            return garlic_error_set(err, GARLIC_EUNSUPPORTED,
                                    "%s: tensor '%s' has dtype %s, which garlic does not read as "
                                    "a weight",
                                    t->file, shown(t->name), t->dtype);
        s->enc = ENC_FP8;
        const st_tensor *sc = companion(h, name, "_scale_inv");
        if (!sc)
            sc = companion(h, name, "_scale");
        if (!sc)
            return garlic_error_set(err, GARLIC_EFORMAT,
                                    "%s: FP8 tensor '%s' has no %s_scale_inv or %s_scale", t->file,
                                    shown(name), shown(name), shown(name));
        if (strcmp(sc->dtype, "F32") && strcmp(sc->dtype, "BF16") && strcmp(sc->dtype, "F16"))
            return garlic_error_set(err, GARLIC_EFORMAT, "%s: scale '%s' has dtype %s (F32, BF16)",
                                    sc->file, shown(sc->name), sc->dtype);
        s->scale = sc;
        uint64_t sr = sc->n_dims >= 1 ? sc->shape[0] : 1, scn = sc->n_dims >= 2 ? sc->shape[1] : 1;
        if (mats > 1)
            return garlic_error_set(err, GARLIC_EUNSUPPORTED,
                                    "%s: stacked FP8 experts ('%s') are not supported", t->file,
                                    shown(name));
        if (sc->n == 1) {
            s->bn = 0, s->bk = 0; // per tensor
        } else if (sr == rows && scn == 1 && sc->n_dims == 2) {
            s->bn = 1, s->bk = 0; // per row (channel)
        } else {
            uint32_t bn = h->bn ? h->bn : 128, bk = h->bk ? h->bk : 128;
            if (sc->n_dims != 2 || sr != (rows + bn - 1) / bn || scn != (cols + bk - 1) / bk)
                return garlic_error_set(err, GARLIC_EFORMAT,
                                        "%s: scale '%s' has a shape that is neither one value, one "
                                        "per row, nor one per %u x %u block of [%llu, %llu]",
                                        sc->file, shown(sc->name), bn, bk, (unsigned long long)rows,
                                        (unsigned long long)cols);
            if (bk % QK_F8)
                return garlic_error_set(err, GARLIC_EUNSUPPORTED,
                                        "%s: FP8 scale blocks of %u columns (a multiple of %d is "
                                        "needed)",
                                        h->config, bk, QK_F8);
            s->bn = bn, s->bk = bk;
        }
        return GARLIC_OK;
    }
    snprintf(name, sizeof name, "%s.qweight", base);
    if ((t = find(h, name))) {
        t->used = true, *found = true, s->w = t;
        bool awq = h->qenc == ENC_AWQ;
        if (h->qenc != ENC_AWQ && h->qenc != ENC_GPTQ)
            return garlic_error_set(err, GARLIC_EFORMAT,
                                    "%s: tensor '%s' is packed 4-bit, but config.json's "
                                    "quantization_config is not awq or gptq",
                                    t->file, shown(name));
        if (mats > 1)
            return garlic_error_set(err, GARLIC_EUNSUPPORTED, "%s: stacked 4-bit experts", t->file);
        s->enc = h->qenc;
        s->zero_offset = h->qenc == ENC_GPTQ && h->gptq_v1 ? 1 : 0;
        uint32_t group = h->group ? h->group : (uint32_t)cols;
        s->group = group;
        if (group % QK4_Z || cols % group || rows % 8 || cols % 8)
            return garlic_error_set(err, GARLIC_EUNSUPPORTED,
                                    "%s: tensor '%s': groups of %u columns over [%llu, %llu] (a "
                                    "multiple of %d dividing the columns, rows a multiple of 8)",
                                    t->file, shown(name), group, (unsigned long long)rows,
                                    (unsigned long long)cols, QK4_Z);
        uint64_t groups = cols / group;
        s->zeros = companion(h, base, ".qzeros");
        s->scale = companion(h, base, ".scales");
        s->gidx = awq ? NULL : companion(h, base, ".g_idx");
        snprintf(want, sizeof want, "[%llu, %llu] I32", (unsigned long long)(awq ? cols : cols / 8),
                 (unsigned long long)(awq ? rows / 8 : rows));
        if (t->n_dims != 2 || strcmp(t->dtype, "I32") || t->shape[0] != (awq ? cols : cols / 8) ||
            t->shape[1] != (awq ? rows / 8 : rows))
            return bad_shape(h, t, want, err);
        if (!s->zeros || !s->scale)
            return garlic_error_set(err, GARLIC_EFORMAT, "%s: '%s' needs %s.qzeros and %s.scales",
                                    t->file, shown(name), shown(base), shown(base));
        snprintf(want, sizeof want, "[%llu, %llu] I32", (unsigned long long)groups,
                 (unsigned long long)rows / 8);
        if (s->zeros->n_dims != 2 || strcmp(s->zeros->dtype, "I32") ||
            s->zeros->shape[0] != groups || s->zeros->shape[1] != rows / 8)
            return bad_shape(h, s->zeros, want, err);
        snprintf(want, sizeof want, "[%llu, %llu] F16", (unsigned long long)groups,
                 (unsigned long long)rows);
        if (s->scale->n_dims != 2 || strcmp(s->scale->dtype, "F16") ||
            s->scale->shape[0] != groups || s->scale->shape[1] != rows)
            return bad_shape(h, s->scale, want, err);
        if (s->gidx) {
            snprintf(want, sizeof want, "[%llu] I32", (unsigned long long)cols);
            if (s->gidx->n_dims != 1 || strcmp(s->gidx->dtype, "I32") || s->gidx->shape[0] != cols)
                return bad_shape(h, s->gidx, want, err);
            const int32_t *g = (const int32_t *)s->gidx->data;
            bool mixed = false;
            for (uint64_t c = 0; c < cols; c++) {
                int32_t v;
                memcpy(&v, g + c, 4);
                if (v < 0 || (uint64_t)v >= groups)
                    return garlic_error_set(err, GARLIC_EFORMAT,
                                            "%s: tensor '%s': value %llu is %d, not a group "
                                            "(0..%llu)",
                                            s->gidx->file, shown(s->gidx->name),
                                            (unsigned long long)c, v,
                                            (unsigned long long)groups - 1);
                if ((uint64_t)v != c / QK4_Z * QK4_Z / group) // groups not in column order
                    mixed = true;
            }
            if (mixed) // act-order: the columns sorted by group, the input read in that order
                return sort_columns(h, s, err);
        }
        return GARLIC_OK;
    }
    snprintf(name, sizeof name, "%s_blocks", base);
    if ((t = find(h, name))) {
        t->used = true, *found = true, s->w = t, s->enc = ENC_MXFP4;
        s->scale = companion(h, base, "_scales");
        snprintf(want, sizeof want, "[%llu, %llu, %llu, 16] U8", (unsigned long long)mats,
                 (unsigned long long)rows, (unsigned long long)cols / 32);
        if (t->n_dims != 4 || strcmp(t->dtype, "U8") || t->shape[0] != mats ||
            t->shape[1] != rows || t->shape[2] != cols / 32 || t->shape[3] != 16 || cols % 32)
            return bad_shape(h, t, want, err);
        snprintf(want, sizeof want, "[%llu, %llu, %llu] U8", (unsigned long long)mats,
                 (unsigned long long)rows, (unsigned long long)cols / 32);
        if (!s->scale)
            return garlic_error_set(err, GARLIC_EFORMAT, "%s: '%s' has no %s_scales", t->file,
                                    shown(name), shown(base));
        if (s->scale->n_dims != 3 || strcmp(s->scale->dtype, "U8") || s->scale->shape[0] != mats ||
            s->scale->shape[1] != rows || s->scale->shape[2] != cols / 32)
            return bad_shape(h, s->scale, want, err);
        return GARLIC_OK;
    }
    // gpt-oss names its unquantized experts without ".weight"
    if ((t = find(h, base)) && mats > 1) {
        *found = true, t->used = true, s->w = t;
        if (!is_dense(t) || t->n_dims != 3 || t->shape[0] != mats ||
            !((t->shape[1] == cols && t->shape[2] == rows) ||
              (t->shape[1] == rows && t->shape[2] == cols)))
            return bad_shape(h, t, want, err);
        s->transposed = t->shape[1] == cols && t->shape[2] == rows && rows != cols;
        return GARLIC_OK;
    }
    if (required)
        return garlic_error_set(err, GARLIC_EFORMAT,
                                "%s: tensor '%s.weight' is missing (config.json implies it)",
                                h->dir, shown(base));
    return GARLIC_OK;
}

// ---- reading values ----

static float read_dense(const st_tensor *t, uint64_t i)
{
    const uint8_t *p = t->data + i * t->dsize;
    if (t->dsize == 4) {
        float f;
        memcpy(&f, p, 4);
        return f;
    }
    uint16_t v;
    memcpy(&v, p, 2);
    return t->dtype[0] == 'B' ? tensor_bf16_to_f32(v) : tensor_f16_to_f32(v);
}

static int32_t read_i32(const st_tensor *t, uint64_t i)
{
    int32_t v;
    memcpy(&v, t->data + i * 4, 4);
    return v;
}

static float fp8_scale(const src *s, uint64_t r, uint64_t c)
{
    if (!s->bn)
        return read_dense(s->scale, 0);
    if (!s->bk)
        return read_dense(s->scale, r);
    return read_dense(s->scale, r / s->bn * ((s->cols + s->bk - 1) / s->bk) + c / s->bk);
}

// The E4M3 value of a code (exact): its magnitude bits as a half, times 2^8.
static float e4m3(uint8_t q)
{
    uint16_t half = (uint16_t)((q & 0x7F) << 7 | (q & 0x80) << 8);
    return tensor_f16_to_f32(half) * 256.0f;
}

// AWQ packs eight values of a row of columns into an int32 in the order 0 2 4 6 1 3 5 7:
// the nibble of column j is at position awq_pos[j].
static const int awq_pos[8] = {0, 4, 1, 5, 2, 6, 3, 7};

static uint8_t int4_q(const src *s, uint64_t r, uint64_t c)
{
    if (s->enc == ENC_AWQ) // qweight [cols, rows / 8]
        return (uint8_t)(read_i32(s->w, c * (s->rows / 8) + r / 8) >> (4 * awq_pos[r % 8]) & 15);
    // GPTQ: qweight [cols / 8, rows]
    return (uint8_t)(read_i32(s->w, c / 8 * s->rows + r) >> (4 * (c % 8)) & 15);
}

static uint64_t int4_group(const src *s, uint64_t c)
{
    return s->gidx ? (uint64_t)read_i32(s->gidx, c) : c / s->group;
}

static void int4_params(const src *s, uint64_t r, uint64_t c, uint16_t *d, uint32_t *z)
{
    uint64_t g = int4_group(s, c);
    memcpy(d, s->scale->data + (g * s->rows + r) * 2, 2);
    int shift = s->enc == ENC_AWQ ? 4 * awq_pos[r % 8] : 4 * (int)(r % 8);
    *z = (uint32_t)(read_i32(s->zeros, g * (s->rows / 8) + r / 8) >> shift & 15) + s->zero_offset;
}

static uint8_t mx_code(const src *s, uint64_t m, uint64_t r, uint64_t c)
{
    uint8_t byte = s->w->data[((m * s->rows + r) * (s->cols / 32) + c / 32) * 16 + c % 32 / 2];
    return c % 2 ? byte >> 4 : byte & 15;
}

static uint8_t mx_exp(const src *s, uint64_t m, uint64_t r, uint64_t c)
{
    return s->scale->data[(m * s->rows + r) * (s->cols / 32) + c / 32];
}

// The value of element (m, r, c) of a source, as a float (exact for every encoding).
static float src_value(const src *s, uint64_t m, uint64_t r, uint64_t c)
{
    switch (s->enc) {
    case ENC_DENSE:
        return read_dense(s->w,
                          s->transposed ? (m * s->cols + c) * s->rows + r
                                        : (m * s->rows + r) * s->cols + c);
    case ENC_FP8: return e4m3(s->w->data[r * s->cols + c]) * fp8_scale(s, r, c);
    case ENC_AWQ:
    case ENC_GPTQ: {
        uint16_t d;
        uint32_t z;
        int4_params(s, r, c, &d, &z);
        return tensor_f16_to_f32(d) * (float)((int)int4_q(s, r, c) - (int)z);
    }
    case ENC_MXFP4:
        return tensor_mxfp4_scale(mx_exp(s, m, r, c)) *
            (float)tensor_mxfp4_values[mx_code(s, m, r, c)];
    }
    return 0;
}

// Where output element (m, r, c) comes from.
static void locate(const out_t *o, uint64_t m, uint64_t r, uint64_t c, const src **s, uint64_t *sm,
                   uint64_t *sr, uint64_t *sc)
{
    *s = &o->srcs[o->n_srcs > 1 ? m : 0];
    *sm = o->n_srcs > 1 ? 0 : m, *sr = r, *sc = c;
    switch (o->map) {
    case MAP_ID: break;
    case MAP_PERMUTE: {
        uint64_t hd = o->a, h = r / hd, k = r % hd;
        *sr = h * hd + (k % 2) * (hd / 2) + k / 2;
        break;
    }
    case MAP_STRIDE: *sr = o->a + r * o->b; break;
    case MAP_COLS: *sc = o->a + c * o->b; break;
    case MAP_HEADS: *sm = 0, *sr = m * o->a + o->b + r; break;
    case MAP_HEADS_T: *sm = 0, *sr = m * o->a + o->b + c, *sc = r; break;
    case MAP_SCALAR: *sr = 0, *sc = r * o->ne[0] + c; break;
    }
}

// ---- outputs ----

static out_t *new_out(hf_model *h, const char *name, uint32_t n_dims, uint64_t ne0, uint64_t ne1,
                      uint64_t ne2, uint32_t n_srcs, garlic_error *err)
{
    if (garlic_grow(&h->outs, &h->cap_outs, h->n_outs + 1, sizeof *h->outs)) {
        garlic_error_set(err, GARLIC_ENOMEM, "%s: out of memory", h->dir);
        return NULL;
    }
    out_t *o = &h->outs[h->n_outs];
    *o = (out_t){.n_dims = n_dims, .ne = {ne0, ne1, ne2}, .n_srcs = n_srcs};
    snprintf(o->name, sizeof o->name, "%s", name);
    if (!(o->srcs = garlic_calloc(n_srcs, sizeof *o->srcs))) {
        garlic_error_set(err, GARLIC_ENOMEM, "%s: out of memory", h->dir);
        return NULL;
    }
    h->n_outs++;
    return o;
}

static int add_f32_out(hf_model *h, const char *name, const float *values, uint64_t n,
                       garlic_error *err)
{
    float *copy = garlic_realloc(h->extra, (h->n_extra + n) * sizeof *copy);
    if (!copy)
        return garlic_error_set(err, GARLIC_ENOMEM, "%s: out of memory", h->dir);
    // earlier outs point into the old block: move them
    for (size_t i = 0; i < h->n_outs; i++)
        if (h->outs[i].f32)
            h->outs[i].f32 = copy + (h->outs[i].f32 - h->extra);
    h->extra = copy;
    memcpy(copy + h->n_extra, values, n * sizeof *copy);
    out_t *o = new_out(h, name, 1, n, 1, 1, 1, err);
    if (!o)
        return err->code;
    o->f32 = copy + h->n_extra;
    o->type = TENSOR_TYPE_F32;
    h->n_extra += n;
    return GARLIC_OK;
}

// Whether an output is a weight matrix (not a vector, norm or bias, which GGUF files hold in
// F32).
static bool is_matrix(const out_t *o)
{
    size_t len = strlen(o->name);
    return !o->f32 && !o->i32 && o->srcs[0].w && o->ne[1] * o->ne[2] > 1 &&
        !strstr(o->name, "norm") && !(len > 5 && strcmp(o->name + len - 5, ".bias") == 0);
}

// The type an output is made in: the encoding's own, or what the options ask.
// Whether the blocks of 32 of an output's rows each lie within one scale block of the source
// (a transposed FP8 output, MLA's attn_k_b, reads 32 source rows a block) and fill its rows.
static bool blocks_fit(const out_t *o)
{
    const src *s = &o->srcs[0];
    if (o->ne[0] % 32)
        return false;
    if (s->enc != ENC_FP8 || o->map != MAP_HEADS_T)
        return true;
    return s->bn == 0 || (s->bk && s->bn % QK_F8 == 0 && o->a % QK_F8 == 0 && o->b % QK_F8 == 0);
}

static uint32_t natural_type(const out_t *o)
{
    const src *s = &o->srcs[0];
    if (o->i32)
        return TENSOR_TYPE_I32;
    if (!is_matrix(o))
        return TENSOR_TYPE_F32; // vectors, norms, biases: F32 as GGUF files hold them
    if (s->enc != ENC_DENSE && !blocks_fit(o))
        return TENSOR_TYPE_F32; // rows too short for blocks: the exact values as floats
    switch (s->enc) {
    case ENC_DENSE: return dense_type(s->w);
    case ENC_FP8: return TENSOR_TYPE_F8_E4M3;
    case ENC_AWQ:
    case ENC_GPTQ: return TENSOR_TYPE_Q4_Z;
    case ENC_MXFP4: return TENSOR_TYPE_MXFP4;
    }
    return TENSOR_TYPE_F32;
}

// A matrix (or stacked matrices) from HF weight `base`; optional ones may be absent.
static int add_matrix(hf_model *h, const char *gguf, const char *base, uint64_t mats, uint64_t rows,
                      uint64_t cols, bool optional, out_t **made, garlic_error *err)
{
    src s;
    bool found;
    int rc = find_src(h, base, mats, rows, cols, !optional, &s, &found, err);
    if (made)
        *made = NULL;
    if (rc || !found)
        return rc;
    out_t *o = new_out(h, gguf, mats > 1 ? 3 : 2, cols, rows, mats, 1, err);
    if (!o)
        return err->code;
    o->srcs[0] = s;
    if (made)
        *made = o;
    return GARLIC_OK;
}

// A vector of n values (a norm, a bias): HF name `name` (full), optional or not; add is
// added to each value.
static int add_vector(hf_model *h, const char *gguf, const char *name, uint64_t n, bool optional,
                      float add, garlic_error *err)
{
    st_tensor *t = find(h, name);
    if (!t) {
        if (optional)
            return GARLIC_OK;
        return garlic_error_set(err, GARLIC_EFORMAT,
                                "%s: tensor '%s' is missing (config.json implies it)", h->dir,
                                shown(name));
    }
    t->used = true;
    if (!is_dense(t) || t->n != n || (t->n_dims > 1 && t->shape[t->n_dims - 1] != n)) {
        char want[48];
        snprintf(want, sizeof want, "%llu values", (unsigned long long)n);
        return bad_shape(h, t, want, err);
    }
    out_t *o = new_out(h, gguf, 1, n, 1, 1, 1, err);
    if (!o)
        return err->code;
    o->srcs[0] = (src){.w = t, .mats = 1, .rows = 1, .cols = n};
    o->add = add;
    return GARLIC_OK;
}

// ---- the tensors of each architecture ----

typedef struct names {
    char p[160]; // "model.layers.N."
    char g[32];  // "blk.N."
} names;

static const char *hfn(const names *n, const char *suffix)
{
    static _Thread_local char buf[256];
    snprintf(buf, sizeof buf, "%s%s", n->p, suffix);
    return buf;
}

static const char *ggn(const names *n, const char *suffix)
{
    static _Thread_local char buf[2][96];
    static _Thread_local int turn;
    turn ^= 1;
    snprintf(buf[turn], sizeof buf[turn], "%s%s", n->g, suffix);
    return buf[turn];
}

// A layer's matrix with its optional bias.
static int add_linear(hf_model *h, const names *n, const char *gguf, const char *hf, uint64_t rows,
                      uint64_t cols, bool optional, bool bias, garlic_error *err)
{
    char base[256], g[96], bname[272];
    snprintf(base, sizeof base, "%s%s", n->p, hf);
    snprintf(g, sizeof g, "%s%s.weight", n->g, gguf);
    out_t *o;
    int rc = add_matrix(h, g, base, 1, rows, cols, optional, &o, err);
    if (rc || !bias)
        return rc;
    snprintf(bname, sizeof bname, "%s.bias", base);
    snprintf(g, sizeof g, "%s%s.bias", n->g, gguf);
    return add_vector(h, g, bname, rows, true, 0, err);
}

// Llama's Q or K (and bias): rows of heads permuted back to GGUF's layout.
static void permute_last(hf_model *h, size_t from, uint64_t head_dim)
{
    for (size_t i = from; i < h->n_outs; i++)
        h->outs[i].map = MAP_PERMUTE, h->outs[i].a = head_dim;
}

static int attention(hf_model *h, const names *n, garlic_error *err)
{
    family fam = h->arch->fam;
    uint64_t hd = h->head_dim, q = h->n_head * hd, kv = h->n_head_kv * hd;
    bool bias = fam == FAM_QWEN2 || fam == FAM_QWEN2MOE || fam == FAM_GPTOSS || fam == FAM_LLAMA ||
        fam == FAM_QWEN3 || fam == FAM_QWEN3MOE;
    int rc;
    size_t mark = h->n_outs;
    if (fam == FAM_PHI3)
        return add_linear(h, n, "attn_qkv", "self_attn.qkv_proj", q + 2 * kv, h->dim, false, false,
                          err) ||
                add_linear(h, n, "attn_output", "self_attn.o_proj", h->dim, q, false, false, err)
            ? err->code
            : GARLIC_OK;
    if ((rc = add_linear(h, n, "attn_q", "self_attn.q_proj", q, h->dim, false, bias, err)))
        return rc;
    if (fam == FAM_LLAMA)
        permute_last(h, mark, hd);
    mark = h->n_outs;
    if ((rc = add_linear(h, n, "attn_k", "self_attn.k_proj", kv, h->dim, false, bias, err)))
        return rc;
    if (fam == FAM_LLAMA)
        permute_last(h, mark, hd);
    if ((rc = add_linear(h, n, "attn_v", "self_attn.v_proj", kv, h->dim, false, bias, err)) ||
        (rc = add_linear(h, n, "attn_output", "self_attn.o_proj", h->dim, q, false, bias, err)))
        return rc;
    float add = fam == FAM_GEMMA3 ? 1 : 0;
    if (fam == FAM_QWEN3 || fam == FAM_QWEN3MOE || fam == FAM_GEMMA3)
        if ((rc = add_vector(h, ggn(n, "attn_q_norm.weight"), hfn(n, "self_attn.q_norm.weight"), hd,
                             false, add, err)) ||
            (rc = add_vector(h, ggn(n, "attn_k_norm.weight"), hfn(n, "self_attn.k_norm.weight"), hd,
                             false, add, err)))
            return rc;
    if (fam == FAM_GPTOSS)
        return add_vector(h, ggn(n, "attn_sinks.weight"), hfn(n, "self_attn.sinks"), h->n_head,
                          false, 0, err);
    return GARLIC_OK;
}

static int mla(hf_model *h, const names *n, garlic_error *err)
{
    uint64_t qk = h->qk_nope + h->qk_rope, heads = h->n_head;
    int rc;
    if (h->q_lora) {
        if ((rc = add_linear(h, n, "attn_q_a", "self_attn.q_a_proj", h->q_lora, h->dim, false,
                             false, err)) ||
            (rc = add_vector(h, ggn(n, "attn_q_a_norm.weight"),
                             hfn(n, "self_attn.q_a_layernorm.weight"), h->q_lora, false, 0, err)) ||
            (rc = add_linear(h, n, "attn_q_b", "self_attn.q_b_proj", heads * qk, h->q_lora, false,
                             false, err)))
            return rc;
    } else if ((rc = add_linear(h, n, "attn_q", "self_attn.q_proj", heads * qk, h->dim, false,
                                false, err)))
        return rc;
    if ((rc = add_linear(h, n, "attn_kv_a_mqa", "self_attn.kv_a_proj_with_mqa",
                         h->kv_lora + h->qk_rope, h->dim, false, false, err)) ||
        (rc = add_vector(h, ggn(n, "attn_kv_a_norm.weight"),
                         hfn(n, "self_attn.kv_a_layernorm.weight"), h->kv_lora, false, 0, err)) ||
        (rc = add_linear(h, n, "attn_output", "self_attn.o_proj", h->dim, heads * h->v_head, false,
                         false, err)))
        return rc;
    // kv_b_proj: per head qk_nope rows of K then v_head rows of V, over the latent.
    char base[256];
    snprintf(base, sizeof base, "%sself_attn.kv_b_proj", n->p);
    src s;
    bool found;
    uint64_t period = h->qk_nope + h->v_head;
    if ((rc = find_src(h, base, 1, heads * period, h->kv_lora, true, &s, &found, err)))
        return rc;
    out_t *k = new_out(h, ggn(n, "attn_k_b.weight"), 3, h->qk_nope, h->kv_lora, heads, 1, err);
    if (!k)
        return err->code;
    k->srcs[0] = s, k->map = MAP_HEADS_T, k->a = period, k->b = 0;
    out_t *v = new_out(h, ggn(n, "attn_v_b.weight"), 3, h->kv_lora, h->v_head, heads, 1, err);
    if (!v)
        return err->code;
    v->srcs[0] = s, v->map = MAP_HEADS, v->a = period, v->b = h->qk_nope;
    return GARLIC_OK;
}

// Experts stored one tensor each: prefix "mlp.experts." and the three names.
static int stacked_experts(hf_model *h, const names *n, const char *prefix, const char *gate,
                           const char *up, const char *down, garlic_error *err)
{
    const char *hf[3] = {gate, up, down},
               *gg[3] = {"ffn_gate_exps", "ffn_up_exps", "ffn_down_exps"};
    for (int k = 0; k < 3; k++) {
        uint64_t rows = k == 2 ? h->dim : h->ffn_exp, cols = k == 2 ? h->ffn_exp : h->dim;
        char g[96];
        snprintf(g, sizeof g, "%s%s.weight", n->g, gg[k]);
        out_t *o = new_out(h, g, 3, cols, rows, h->n_expert, (uint32_t)h->n_expert, err);
        if (!o)
            return err->code;
        for (uint64_t e = 0; e < h->n_expert; e++) {
            char base[256];
            snprintf(base, sizeof base, "%s%s%llu.%s", n->p, prefix, (unsigned long long)e, hf[k]);
            bool found;
            int rc = find_src(h, base, 1, rows, cols, true, &o->srcs[e], &found, err);
            if (rc)
                return rc;
            if (o->srcs[e].enc != o->srcs[0].enc)
                return garlic_error_set(err, GARLIC_EFORMAT,
                                        "%s: the experts of '%s' are not stored alike", h->dir,
                                        shown(base));
        }
    }
    return GARLIC_OK;
}

// gpt-oss: gate_up_proj (gate and up rows interleaved) and down_proj, with biases.
static int gptoss_experts(hf_model *h, const names *n, garlic_error *err)
{
    uint64_t E = h->n_expert, F = h->ffn_exp, D = h->dim;
    char base[256];
    snprintf(base, sizeof base, "%smlp.experts.gate_up_proj", n->p);
    src gu, dn;
    bool found;
    int rc = find_src(h, base, E, 2 * F, D, true, &gu, &found, err);
    if (rc)
        return rc;
    snprintf(base, sizeof base, "%smlp.experts.down_proj", n->p);
    if ((rc = find_src(h, base, E, D, F, true, &dn, &found, err)))
        return rc;
    for (int k = 0; k < 2; k++) {
        out_t *o = new_out(h, ggn(n, k ? "ffn_up_exps.weight" : "ffn_gate_exps.weight"), 3, D, F, E,
                           1, err);
        if (!o)
            return err->code;
        o->srcs[0] = gu, o->map = MAP_STRIDE, o->a = (uint64_t)k, o->b = 2;
    }
    out_t *o = new_out(h, ggn(n, "ffn_down_exps.weight"), 3, F, D, E, 1, err);
    if (!o)
        return err->code;
    o->srcs[0] = dn;
    // biases: [experts, 2F] interleaved, [experts, D]
    st_tensor *bgu = find(h, hfn(n, "mlp.experts.gate_up_proj_bias"));
    st_tensor *bd = find(h, hfn(n, "mlp.experts.down_proj_bias"));
    if (!bgu || !bd)
        return garlic_error_set(err, GARLIC_EFORMAT,
                                "%s: layer %s: mlp.experts.gate_up_proj_bias or down_proj_bias is "
                                "missing",
                                h->dir, n->g);
    bgu->used = bd->used = true;
    if (!is_dense(bgu) || bgu->n_dims != 2 || bgu->shape[0] != E || bgu->shape[1] != 2 * F)
        return bad_shape(h, bgu, "[experts, 2 x intermediate_size]", err);
    if (!is_dense(bd) || bd->n_dims != 2 || bd->shape[0] != E || bd->shape[1] != D)
        return bad_shape(h, bd, "[experts, hidden_size]", err);
    for (int k = 0; k < 2; k++) {
        out_t *b = new_out(h, ggn(n, k ? "ffn_up_exps.bias" : "ffn_gate_exps.bias"), 2, F, E, 1, 1,
                           err);
        if (!b)
            return err->code;
        b->srcs[0] = (src){.w = bgu, .mats = 1, .rows = E, .cols = 2 * F};
        b->map = MAP_COLS, b->a = (uint64_t)k, b->b = 2;
        b->type = TENSOR_TYPE_F32;
    }
    out_t *b = new_out(h, ggn(n, "ffn_down_exps.bias"), 2, D, E, 1, 1, err);
    if (!b)
        return err->code;
    b->srcs[0] = (src){.w = bd, .mats = 1, .rows = E, .cols = D};
    b->type = TENSOR_TYPE_F32;
    return GARLIC_OK;
}

static int ffn(hf_model *h, const names *n, uint64_t layer, garlic_error *err)
{
    family fam = h->arch->fam;
    int rc;
    bool experts = h->n_expert && !(fam == FAM_DEEPSEEK && layer < h->n_dense_lead);
    if (!experts) {
        if (fam == FAM_PHI3)
            return add_linear(h, n, "ffn_up", "mlp.gate_up_proj", 2 * h->ffn, h->dim, false, false,
                              err) ||
                    add_linear(h, n, "ffn_down", "mlp.down_proj", h->dim, h->ffn, false, false, err)
                ? err->code
                : GARLIC_OK;
        if ((rc = add_linear(h, n, "ffn_gate", "mlp.gate_proj", h->ffn, h->dim, false, false,
                             err)) ||
            (rc = add_linear(h, n, "ffn_up", "mlp.up_proj", h->ffn, h->dim, false, false, err)))
            return rc;
        return add_linear(h, n, "ffn_down", "mlp.down_proj", h->dim, h->ffn, false, false, err);
    }
    if (fam == FAM_GPTOSS) {
        if ((rc = add_linear(h, n, "ffn_gate_inp", "mlp.router", h->n_expert, h->dim, false, true,
                             err)))
            return rc;
        return gptoss_experts(h, n, err);
    }
    bool mixtral = fam == FAM_LLAMA;
    if ((rc = add_linear(h, n, "ffn_gate_inp", mixtral ? "block_sparse_moe.gate" : "mlp.gate",
                         h->n_expert, h->dim, false, false, err)))
        return rc;
    if (mixtral)
        return stacked_experts(h, n, "block_sparse_moe.experts.", "w1", "w3", "w2", err);
    if ((rc = stacked_experts(h, n, "mlp.experts.", "gate_proj", "up_proj", "down_proj", err)))
        return rc;
    if (fam == FAM_QWEN2MOE) {
        uint64_t fs = h->ffn_shexp;
        if ((rc = add_linear(h, n, "ffn_gate_shexp", "mlp.shared_expert.gate_proj", fs, h->dim,
                             false, false, err)) ||
            (rc = add_linear(h, n, "ffn_up_shexp", "mlp.shared_expert.up_proj", fs, h->dim, false,
                             false, err)) ||
            (rc = add_linear(h, n, "ffn_down_shexp", "mlp.shared_expert.down_proj", h->dim, fs,
                             false, false, err)))
            return rc;
        return add_vector(h, ggn(n, "ffn_gate_inp_shexp.weight"),
                          hfn(n, "mlp.shared_expert_gate.weight"), h->dim, false, 0, err);
    }
    if (fam == FAM_DEEPSEEK) {
        uint64_t fs = h->ffn_shexp;
        if (fs &&
            ((rc = add_linear(h, n, "ffn_gate_shexp", "mlp.shared_experts.gate_proj", fs, h->dim,
                              false, false, err)) ||
             (rc = add_linear(h, n, "ffn_up_shexp", "mlp.shared_experts.up_proj", fs, h->dim, false,
                              false, err)) ||
             (rc = add_linear(h, n, "ffn_down_shexp", "mlp.shared_experts.down_proj", h->dim, fs,
                              false, false, err))))
            return rc;
        return add_vector(h, ggn(n, "exp_probs_b.bias"), hfn(n, "mlp.gate.e_score_correction_bias"),
                          h->n_expert, true, 0, err);
    }
    return GARLIC_OK;
}

static int layer(hf_model *h, uint64_t l, garlic_error *err)
{
    names n;
    snprintf(n.p, sizeof n.p, "%slayers.%llu.", h->prefix, (unsigned long long)l);
    snprintf(n.g, sizeof n.g, "blk.%llu.", (unsigned long long)l);
    family fam = h->arch->fam;
    float add = fam == FAM_GEMMA3 ? 1 : 0;
    int rc = add_vector(h, ggn(&n, "attn_norm.weight"), hfn(&n, "input_layernorm.weight"), h->dim,
                        false, add, err);
    if (!rc)
        rc = fam == FAM_DEEPSEEK ? mla(h, &n, err) : attention(h, &n, err);
    if (rc)
        return rc;
    if (fam == FAM_GEMMA3) {
        if ((rc = add_vector(h, ggn(&n, "post_attention_norm.weight"),
                             hfn(&n, "post_attention_layernorm.weight"), h->dim, false, 1, err)) ||
            (rc = add_vector(h, ggn(&n, "ffn_norm.weight"),
                             hfn(&n, "pre_feedforward_layernorm.weight"), h->dim, false, 1, err)) ||
            (rc = add_vector(h, ggn(&n, "post_ffw_norm.weight"),
                             hfn(&n, "post_feedforward_layernorm.weight"), h->dim, false, 1, err)))
            return rc;
    } else if ((rc = add_vector(
                    h,
                    ggn(&n, fam == FAM_GPTOSS ? "post_attention_norm.weight" : "ffn_norm.weight"),
                    hfn(&n, "post_attention_layernorm.weight"), h->dim, false, 0, err)))
        return rc;
    return ffn(h, &n, l, err);
}

// The prefix of the decoder's tensor names: where embed_tokens.weight is.
static int find_prefix(hf_model *h, garlic_error *err)
{
    static const char *const prefixes[] = {"model.", "model.language_model.",
                                           "language_model.model.", ""};
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++) {
        char name[128];
        snprintf(name, sizeof name, "%sembed_tokens.weight", prefixes[i]);
        if (find(h, name)) {
            snprintf(h->prefix, sizeof h->prefix, "%s", prefixes[i]);
            return GARLIC_OK;
        }
    }
    return garlic_error_set(err, GARLIC_EFORMAT, "%s: no tensor model.embed_tokens.weight", h->dir);
}

// A tensor no step reads: refused (a variant garlic does not implement), except those every
// converter drops: other modalities' towers, precomputed RoPE tables, DeepSeek's
// multi-token-prediction layers, activation scales (garlic's activations stay in floats),
// a tied lm_head, and tensors of zeros (biases some quantizers add to every layer).
static bool droppable(hf_model *h, const st_tensor *t)
{
    const char *n = t->name;
    static const char *const skip[] = {"vision_tower", "multi_modal_projector", "vision_model",
                                       "audio_tower", "embed_vision"};
    for (size_t i = 0; i < sizeof skip / sizeof skip[0]; i++)
        if (strstr(n, skip[i]))
            return true;
    size_t len = strlen(n);
    if ((len > 9 && strcmp(n + len - 9, ".inv_freq") == 0) ||
        (len > 12 && strcmp(n + len - 12, ".input_scale") == 0))
        return true;
    if (h->tied && strstr(n, "lm_head.weight"))
        return true;
    char pre[96];
    snprintf(pre, sizeof pre, "%slayers.", h->prefix);
    if (h->arch->fam == FAM_DEEPSEEK && strncmp(n, pre, strlen(pre)) == 0 &&
        strtoull(n + strlen(pre), NULL, 10) >= h->n_layer)
        return true;
    for (uint64_t i = 0; i < t->n * t->dsize; i++)
        if (t->data[i])
            return false;
    return true;
}

static int tensors(hf_model *h, garlic_error *err)
{
    int rc = find_prefix(h, err);
    if (rc)
        return rc;
    char name[160];
    snprintf(name, sizeof name, "%sembed_tokens", h->prefix);
    if ((rc = add_matrix(h, "token_embd.weight", name, 1, h->n_vocab, h->dim, false, NULL, err)))
        return rc;
    for (uint64_t l = 0; l < h->n_layer && !rc; l++)
        rc = layer(h, l, err);
    if (rc)
        return rc;
    snprintf(name, sizeof name, "%snorm.weight", h->prefix);
    if ((rc = add_vector(h, "output_norm.weight", name, h->dim, false,
                         h->arch->fam == FAM_GEMMA3 ? 1 : 0, err)))
        return rc;
    if (!h->tied) {
        const char *head = find(h, "lm_head.weight") || !find(h, "language_model.lm_head.weight")
            ? "lm_head"
            : "language_model.lm_head";
        if ((rc = add_matrix(h, "output.weight", head, 1, h->n_vocab, h->dim,
                             h->arch->fam == FAM_GEMMA3, NULL, err)))
            return rc;
    }
    for (size_t i = 0; i < h->n_t; i++)
        if (!h->t[i].used && !droppable(h, &h->t[i]))
            return garlic_error_set(err, GARLIC_EUNSUPPORTED,
                                    "%s: tensor '%s' is not read by garlic's %s (a variant garlic "
                                    "does not implement)",
                                    h->t[i].file, shown(h->t[i].name), h->arch->hf);
    return GARLIC_OK;
}

// ---- making tensors ----

static uint64_t out_rows(const out_t *o) { return o->ne[1] * o->ne[2]; }

// Whether an output's bytes are a source's as they are: same type, every row in place.
static const void *borrowable(const out_t *o)
{
    const src *s = &o->srcs[0];
    if (o->f32 || o->i32 || o->n_srcs != 1 || o->map != MAP_ID || o->add != 0 || s->transposed ||
        s->enc != ENC_DENSE || !s->w || o->type != dense_type(s->w))
        return NULL;
    return s->w->data;
}

// Row r (of all mats) of an output as floats.
static void row_f32(const out_t *o, uint64_t r, float *dst)
{
    uint64_t m = r / o->ne[1], rr = r % o->ne[1];
    if (o->f32) {
        memcpy(dst, o->f32, o->ne[0] * sizeof *dst);
        return;
    }
    const src *s;
    uint64_t sm, sr, sc;
    locate(o, m, rr, 0, &s, &sm, &sr, &sc);
    if (s->enc == ENC_DENSE && !s->transposed && o->map != MAP_HEADS_T && o->map != MAP_COLS &&
        o->map != MAP_SCALAR) { // a whole source row, converted in one pass
        const st_tensor *t = s->w;
        uint64_t at = (sm * s->rows + sr) * s->cols;
        for (uint64_t c = 0; c < o->ne[0]; c++)
            dst[c] = read_dense(t, at + c) + o->add;
        return;
    }
    for (uint64_t c = 0; c < o->ne[0]; c++) {
        locate(o, m, rr, c, &s, &sm, &sr, &sc);
        dst[c] = src_value(s, sm, sr, sc) + o->add;
    }
}

// Row r of an output in its source's own encoding, repacked (F8_E4M3, Q4_Z, MXFP4 blocks, or
// dense bytes); false when a block's scale is not shared by its 32 values.
static bool row_native(const out_t *o, uint64_t r, uint8_t *dst)
{
    uint64_t m = r / o->ne[1], rr = r % o->ne[1], n = o->ne[0];
    const src *s;
    uint64_t sm, sr, sc;
    if (o->type == TENSOR_TYPE_F8_E4M3) {
        block_f8_e4m3 *b = (block_f8_e4m3 *)dst;
        for (uint64_t j = 0; j < n / QK_F8; j++) {
            for (int k = 0; k < QK_F8; k++) {
                locate(o, m, rr, j * QK_F8 + (uint64_t)k, &s, &sm, &sr, &sc);
                float d = fp8_scale(s, sr, sc);
                if (k == 0)
                    b[j].d = d;
                else if (memcmp(&d, &b[j].d, sizeof d))
                    return false;
                b[j].qs[k] = s->w->data[sr * s->cols + sc];
            }
        }
        return true;
    }
    if (o->type == TENSOR_TYPE_Q4_Z) {
        block_q4_z *b = (block_q4_z *)dst;
        for (uint64_t j = 0; j < n / QK4_Z; j++) {
            memset(b[j].qs, 0, sizeof b[j].qs);
            b[j].pad = 0;
            for (int k = 0; k < QK4_Z; k++) {
                locate(o, m, rr, j * QK4_Z + (uint64_t)k, &s, &sm, &sr, &sc);
                sc = s->perm ? (uint64_t)s->perm[sc] : sc;
                uint16_t d;
                uint32_t z;
                int4_params(s, sr, sc, &d, &z);
                if (k == 0)
                    b[j].d = d, b[j].z = (uint8_t)z;
                else if (d != b[j].d || z != b[j].z)
                    return false;
                uint8_t q = int4_q(s, sr, sc);
                b[j].qs[k % 16] |= (uint8_t)(k < 16 ? q : q << 4);
            }
        }
        return true;
    }
    if (o->type == TENSOR_TYPE_MXFP4) {
        block_mxfp4 *b = (block_mxfp4 *)dst;
        for (uint64_t j = 0; j < n / QK_MXFP4; j++) {
            memset(b[j].qs, 0, sizeof b[j].qs);
            for (int k = 0; k < QK_MXFP4; k++) {
                locate(o, m, rr, j * QK_MXFP4 + (uint64_t)k, &s, &sm, &sr, &sc);
                uint8_t e = mx_exp(s, sm, sr, sc);
                if (k == 0)
                    b[j].e = e;
                else if (e != b[j].e)
                    return false;
                uint8_t q = mx_code(s, sm, sr, sc);
                b[j].qs[k % 16] |= (uint8_t)(k < 16 ? q : q << 4);
            }
        }
        return true;
    }
    // dense, same dtype: whole source rows when columns are in place
    locate(o, m, rr, 0, &s, &sm, &sr, &sc);
    uint32_t size = s->w->dsize;
    if (!s->transposed && o->map != MAP_HEADS_T && o->map != MAP_COLS && o->map != MAP_SCALAR) {
        memcpy(dst, s->w->data + ((sm * s->rows + sr) * s->cols) * size, n * size);
        return true;
    }
    for (uint64_t c = 0; c < n; c++) {
        locate(o, m, rr, c, &s, &sm, &sr, &sc);
        uint64_t i = s->transposed ? (sm * s->cols + sc) * s->rows + sr
                                   : (sm * s->rows + sr) * s->cols + sc;
        memcpy(dst + c * size, s->w->data + i * size, size);
    }
    return true;
}

// Drops the pages of the shards an output read (the kernel reads them again from the file
// if another output needs them), so that making a model never holds it twice.
static void drop_sources(const out_t *o)
{
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    for (uint32_t k = 0; k < o->n_srcs; k++) {
        const st_tensor *list[4] = {o->srcs[k].w, o->srcs[k].scale, o->srcs[k].zeros,
                                    o->srcs[k].gidx};
        for (int i = 0; i < 4; i++) {
            const st_tensor *t = list[i];
            if (!t)
                continue;
            uintptr_t from = ((uintptr_t)t->data + page - 1) / page * page;
            uintptr_t to = ((uintptr_t)t->data + t->n * t->dsize) / page * page;
            if (to > from)
                madvise((void *)from, to - from, MADV_DONTNEED);
        }
    }
}

// Rows [r0, r1) of an output into dst (rows of row_bytes), f a scratch row of floats when the
// output is quantized from floats; false when a repacked block's scales differ.
static bool make_rows(const out_t *o, uint64_t r0, uint64_t r1, uint8_t *dst, uint64_t row_bytes,
                      float *f)
{
    uint32_t natural = natural_type(o);
    const tensor_type_traits *tr = tensor_type_get(o->type);
    for (uint64_t r = r0; r < r1; r++) {
        uint8_t *d = dst + r * row_bytes;
        if (o->type == natural && natural != TENSOR_TYPE_F32) {
            if (!row_native(o, r, d))
                return false;
            continue;
        }
        float *row = o->type == TENSOR_TYPE_F32 ? (float *)(void *)d : f;
        row_f32(o, r, row);
        if (o->type != TENSOR_TYPE_F32)
            tr->quantize(row, d, (int64_t)o->ne[0]);
    }
    return true;
}

typedef struct make_job {
    const out_t *o;
    uint8_t *dst;
    uint64_t row_bytes;
    atomic_bool failed;    // a block's scales differed
    atomic_bool no_memory; // a thread's scratch row could not be had
} make_job;

static void make_worker(void *ctx, int ith, int nth)
{
    make_job *job = ctx;
    uint64_t rows = out_rows(job->o);
    uint64_t r0 = rows * (uint64_t)ith / (uint64_t)nth,
             r1 = rows * (uint64_t)(ith + 1) / (uint64_t)nth;
    float *f = garlic_malloc(job->o->ne[0] * sizeof *f);
    if (!f) {
        atomic_store(&job->no_memory, true);
        return;
    }
    if (!make_rows(job->o, r0, r1, job->dst, job->row_bytes, f))
        atomic_store(&job->failed, true);
    garlic_free(f);
}

int hf_model_fill(void *user, size_t index, void *dst, uint64_t nbytes, garlic_error *err)
{
    hf_model *h = user;
    if (index >= h->n_outs)
        return garlic_error_set(err, GARLIC_EINVAL, "tensor %zu of %zu", index, h->n_outs);
    const out_t *o = &h->outs[index];
    uint64_t row_bytes;
    tensor_row_size(o->type, o->ne[0], &row_bytes);
    if (nbytes != row_bytes * out_rows(o))
        return garlic_error_set(err, GARLIC_EINVAL, "tensor '%s': %llu bytes, %llu expected",
                                o->name, (unsigned long long)nbytes,
                                (unsigned long long)(row_bytes * out_rows(o)));
    if (o->i32) {
        memcpy(dst, o->i32, nbytes);
        return GARLIC_OK;
    }
    if (borrowable(o)) {
        memcpy(dst, borrowable(o), nbytes);
        drop_sources(o);
        return GARLIC_OK;
    }
    // Large tensors are made by every core, row ranges each (the rows are independent).
    make_job job = {.o = o, .dst = dst, .row_bytes = row_bytes};
    atomic_init(&job.failed, false);
    atomic_init(&job.no_memory, false);
    if (!h->pool && out_rows(o) * o->ne[0] >= (1u << 20) && thread_pool_default_threads() > 1)
        h->pool = thread_pool_new(thread_pool_default_threads(), NULL);
    if (h->pool && out_rows(o) * o->ne[0] >= (1u << 20))
        thread_pool_run(h->pool, make_worker, &job);
    else
        make_worker(&job, 0, 1);
    if (atomic_load(&job.no_memory))
        return garlic_error_set(err, GARLIC_ENOMEM, "tensor '%s': out of memory", o->name);
    if (atomic_load(&job.failed))
        return garlic_error_set(err, GARLIC_EUNSUPPORTED,
                                "%s: tensor '%s': the scales of a block of 32 values differ "
                                "(garlic's blocks share one)",
                                h->dir, o->name);
    drop_sources(o);
    return GARLIC_OK;
}

// Picks each output's type and adds it to the writer (borrowed when its bytes are in place).
static int plan_outputs(hf_model *h, garlic_error *err)
{
    for (size_t i = 0; i < h->n_outs; i++) {
        out_t *o = &h->outs[i];
        uint32_t natural = natural_type(o);
        o->type = natural;
        if (h->opt.retype && is_matrix(o))
            o->type = h->opt.retype(h->opt.retype_ctx, o->name, o->n_dims, o->ne, natural);
        const tensor_type_traits *tr = tensor_type_get(o->type);
        if (!tr || (o->type != natural && !tr->quantize) || o->ne[0] % tr->block_size)
            o->type = natural; // no quantizer, or rows that do not fill its blocks: keep
        tr = tensor_type_get(o->type);
        if (o->ne[0] % tr->block_size)
            return garlic_error_set(err, GARLIC_EUNSUPPORTED,
                                    "%s: tensor '%s': rows of %llu values are not whole %s blocks",
                                    h->dir, o->name, (unsigned long long)o->ne[0], tr->name);
        o->data = borrowable(o);
        int rc = gguf_writer_add_tensor(h->w, o->name, o->type, o->n_dims, o->ne, o->data, err);
        if (rc)
            return rc;
    }
    // Matrices made with their columns in group order read their input through "<name>.perm"
    // (made only where the rows keep that order: in Q4_Z, not when requantized).
    size_t n = h->n_outs;
    for (size_t i = 0; i < n; i++) {
        for (uint32_t k = 1; k < h->outs[i].n_srcs; k++)
            if (h->outs[i].srcs[k].perm)
                return garlic_error_set(err, GARLIC_EUNSUPPORTED,
                                        "%s: tensor '%s': act-order (desc_act) GPTQ experts are "
                                        "not supported",
                                        h->dir, h->outs[i].name);
        if (!h->outs[i].srcs[0].perm || h->outs[i].type != TENSOR_TYPE_Q4_Z)
            continue;
        if (h->outs[i].n_srcs != 1 || h->outs[i].ne[2] != 1)
            return garlic_error_set(err, GARLIC_EUNSUPPORTED,
                                    "%s: tensor '%s': act-order (desc_act) GPTQ experts are not "
                                    "supported",
                                    h->dir, h->outs[i].name);
        char name[112];
        snprintf(name, sizeof name, "%s.perm", h->outs[i].name);
        uint64_t cols = h->outs[i].ne[0];
        const int32_t *perm = h->outs[i].srcs[0].perm;
        out_t *p = new_out(h, name, 1, cols, 1, 1, 1, err);
        if (!p)
            return err->code;
        p->i32 = perm;
        p->type = TENSOR_TYPE_I32;
        int rc = gguf_writer_add_tensor(h->w, p->name, p->type, 1, p->ne, NULL, err);
        if (rc)
            return rc;
    }
    return GARLIC_OK;
}

// ---- opening ----

void hf_model_free(hf_model *h)
{
    if (!h)
        return;
    for (size_t i = 0; i < h->n_outs; i++)
        garlic_free(h->outs[i].srcs);
    garlic_free(h->outs);
    for (size_t i = 0; i < h->n_t; i++)
        garlic_free(h->t[i].name);
    garlic_free(h->t);
    for (size_t i = 0; h->maps && i < h->shards.n; i++)
        garlic_mapping_close(&h->maps[i]);
    garlic_free(h->maps);
    hf_shards_deinit(&h->shards);
    garlic_free(h->extra);
    thread_pool_free(h->pool);
    for (size_t i = 0; i < h->n_perms; i++)
        garlic_free(h->perms[i]);
    garlic_free(h->perms);
    gguf_writer_free(h->w);
    cJSON_Delete(h->root);
    garlic_free(h);
}

bool hf_is_folder(const char *path)
{
    struct stat sb;
    if (stat(path, &sb) != 0)
        return false;
    if (S_ISDIR(sb.st_mode))
        return true;
    size_t len = strlen(path);
    return len >= 11 && strcmp(path + len - 11, "config.json") == 0;
}

hf_model *hf_model_open(const char *path, const hf_open_options *opt, garlic_error *err)
{
    hf_folder folder;
    if (hf_folder_find(path, &folder, err))
        return NULL;
    hf_model *h = garlic_calloc(1, sizeof *h);
    if (!h) {
        garlic_error_set(err, GARLIC_ENOMEM, "%s: out of memory", path);
        return NULL;
    }
    snprintf(h->dir, sizeof h->dir, "%s", folder.dir);
    snprintf(h->config, sizeof h->config, "%s", folder.config);
    if (opt)
        h->opt = *opt;
    char *text = NULL;
    size_t len = 0;
    int rc = garlic_file_read(h->config, HF_MAX_CONFIG_BYTES, &text, &len, err);
    if (rc == GARLIC_OK) {
        h->root = cJSON_ParseWithLength(text, len);
        garlic_free(text);
        if (!cJSON_IsObject(h->root))
            rc = garlic_error_set(err, GARLIC_EFORMAT, "%s: not a JSON object", h->config);
    }
    if (rc == GARLIC_OK && !(h->w = gguf_writer_new()))
        rc = garlic_error_set(err, GARLIC_ENOMEM, "%s: out of memory", path);
    if (rc == GARLIC_OK)
        rc = read_arch(h, err);
    if (rc == GARLIC_OK)
        rc = cfg_bool(h, h->cfg, "tie_word_embeddings", h->arch->fam == FAM_GEMMA3, &h->tied, err);
    if (rc == GARLIC_OK && h->cfg != h->root && !item(h->cfg, "tie_word_embeddings"))
        rc = cfg_bool(h, h->root, "tie_word_embeddings", true, &h->tied, err);
    if (rc == GARLIC_OK)
        rc = read_quant(h, err);
    if (rc == GARLIC_OK)
        rc = read_config_meta(h, err);
    if (rc == GARLIC_OK && (rc = hf_tokenizer_metadata(h->dir, h->w, err)) == GARLIC_ENOTFOUND)
        rc = GARLIC_OK; // no tokenizer.json: a model without tokenizer metadata
    if (rc == GARLIC_OK)
        rc = read_shards(h, err);
    if (rc == GARLIC_OK)
        rc = tensors(h, err);
    if (rc == GARLIC_OK)
        rc = plan_outputs(h, err);
    if (rc != GARLIC_OK) {
        hf_model_free(h);
        return NULL;
    }
    return h;
}

gguf_writer *hf_model_writer(hf_model *h) { return h->w; }

// What a loaded folder owns: the model (mappings) and the made tensors.
typedef struct loaded {
    hf_model *h;
    void *made;
    size_t made_bytes;
} loaded;

static void release_loaded(void *ctx)
{
    loaded *l = ctx;
    if (l->made)
        munmap(l->made, l->made_bytes);
    hf_model_free(l->h);
    garlic_free(l);
}

// gguf_file.check of a loaded folder: whether any shard changed since it was mapped.
static int check_loaded(void *ctx, garlic_error *err)
{
    const hf_model *h = ((const loaded *)ctx)->h;
    for (size_t i = 0; i < h->shards.n; i++) {
        const char *path = h->shards.paths[i], *name = strrchr(path, '/');
        int rc = garlic_mapping_check(&h->maps[i], name ? name + 1 : path, err);
        if (rc)
            return rc;
    }
    return GARLIC_OK;
}

// gguf_writer_open for a loaded folder, with its shards' check.
static gguf_file *open_loaded(hf_model *h, loaded *l, garlic_error *err)
{
    gguf_file *f = gguf_writer_open(h->w, h->dir, release_loaded, l, err);
    if (f)
        f->check = check_loaded;
    return f;
}

gguf_file *hf_open(const char *path, const hf_open_options *opt, garlic_error *err)
{
    hf_model *h = hf_model_open(path, opt, err);
    if (!h)
        return NULL;
    loaded *l = garlic_calloc(1, sizeof *l);
    if (!l) {
        hf_model_free(h);
        garlic_error_set(err, GARLIC_ENOMEM, "%s: out of memory", path);
        return NULL;
    }
    l->h = h;
    if (h->opt.meta_only) { // made tensors point at a placeholder: shapes and types only
        static const uint8_t placeholder[64] __attribute__((aligned(64)));
        for (size_t i = 0; i < h->n_outs; i++) { // values already in memory are real
            const out_t *o = &h->outs[i];
            const void *data = o->data ? o->data
                : o->i32               ? (const void *)o->i32
                : o->f32               ? (const void *)o->f32
                                       : placeholder;
            gguf_writer_set_data(h->w, i, data);
        }
        return open_loaded(h, l, err);
    }
    size_t total = 0;
    for (size_t i = 0; i < h->n_outs; i++) {
        uint64_t row;
        tensor_row_size(h->outs[i].type, h->outs[i].ne[0], &row);
        if (!h->outs[i].data)
            total += (row * out_rows(&h->outs[i]) + 63) / 64 * 64;
    }
    if (total) {
        l->made = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (l->made == MAP_FAILED) {
            l->made = NULL;
            release_loaded(l);
            garlic_error_set(err, GARLIC_ENOMEM,
                             "%s: cannot allocate %zu bytes for repacked weights", path, total);
            return NULL;
        }
        l->made_bytes = total;
    }
    // Make each tensor, then drop the pages of the shards it read (they are read again,
    // from the file, if another tensor needs them).
    uint8_t *at = l->made;
    for (size_t i = 0; i < h->n_outs; i++) {
        out_t *o = &h->outs[i];
        if (o->data)
            continue;
        uint64_t row;
        tensor_row_size(o->type, o->ne[0], &row);
        uint64_t bytes = row * out_rows(o);
        int rc = hf_model_fill(h, i, at, bytes, err);
        if (rc) {
            release_loaded(l);
            return NULL;
        }
        o->data = at;
        at += (bytes + 63) / 64 * 64;
    }
    // The writer's tensors point at their data now.
    for (size_t i = 0; i < h->n_outs; i++)
        gguf_writer_set_data(h->w, i, h->outs[i].data);
    return open_loaded(h, l, err);
}

gguf_file *hf_open_model(const char *path, const hf_open_options *opt, garlic_error *err)
{
    return hf_is_folder(path) ? hf_open(path, opt, err) : gguf_open(path, err);
}
