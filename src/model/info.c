// SPDX-License-Identifier: MIT
// Reads a model's description from GGUF metadata; see info.h.
#include "model/info.h"

#include <stdio.h>
#include <string.h>

#include "model/model.h"

static void copy_str(const gguf_file *f, const char *key, char *dst, size_t cap)
{
    gguf_string s;
    dst[0] = '\0';
    if (gguf_get_str(f, key, &s) != GARLIC_OK)
        return;
    size_t n = s.len < cap - 1 ? (size_t)s.len : cap - 1;
    memcpy(dst, s.data, n);
    dst[n] = '\0';
}

// Reads "<arch>.<suffix>" as an unsigned count. A per-layer array (some architectures vary
// the head count by layer) gives its largest element. Absent leaves *out unchanged.
static int arch_u64(const gguf_file *f, const char *arch, const char *suffix, uint64_t *out,
                    garlic_error *err)
{
    char key[160];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    const gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv)
        return GARLIC_OK;
    if (kv->value.type == GGUF_TYPE_ARRAY) {
        uint64_t best = 0;
        int64_t v;
        for (uint64_t i = 0; i < kv->value.arr.count; i++) {
            if (!gguf_array_get_i64(&kv->value, i, &v) || v < 0)
                goto bad;
            best = (uint64_t)v > best ? (uint64_t)v : best;
        }
        *out = best;
        return GARLIC_OK;
    }
    if (gguf_get_u64(f, key, out) == GARLIC_OK)
        return GARLIC_OK;
bad:
    return garlic_error_set(err, GARLIC_EFORMAT,
                            "%s: key '%s' at offset %llu must be a "
                            "non-negative integer",
                            f->path, key, (unsigned long long)kv->offset);
}

static int arch_f32(const gguf_file *f, const char *arch, const char *suffix, float *out,
                    garlic_error *err)
{
    char key[160];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    int rc = gguf_get_f32(f, key, out);
    if (rc == GARLIC_ETYPE)
        return garlic_error_set(err, GARLIC_EFORMAT, "%s: key '%s' must be a number", f->path, key);
    return GARLIC_OK;
}

// attention.sliding_window_pattern: a period (Gemma 3), or a per-layer array of flags that
// other architectures write (noted, not read: garlic's architectures take a period).
static int read_swa_pattern(const gguf_file *f, model_info *info, garlic_error *err)
{
    char key[160];
    snprintf(key, sizeof key, "%s.attention.sliding_window_pattern", info->arch);
    const gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv)
        return GARLIC_OK;
    if (kv->value.type == GGUF_TYPE_ARRAY) {
        info->sliding_window_pattern_array = true;
        return GARLIC_OK;
    }
    info->has_sliding_window_pattern = true;
    return arch_u64(f, info->arch, "attention.sliding_window_pattern",
                    &info->sliding_window_pattern, err);
}

// How many layers slide: the architecture's pattern (or the file's period) over the layers,
// when the architecture has sliding windows and the file gives one.
static void count_swa_layers(model_info *info)
{
    const model_arch *arch = model_arch_find(info->arch);
    if (!arch || !arch->sliding_window || !info->sliding_window ||
        info->sliding_window_pattern_array)
        return;
    uint64_t period = info->has_sliding_window_pattern ? info->sliding_window_pattern
                                                       : arch->swa_period;
    // model_layer_slides counted in closed form: of n layers, n / period are global.
    uint64_t n = info->block_count;
    info->n_swa_layers = period ? n - n / period : n;
}

static void read_tensors(const gguf_file *f, model_info *info)
{
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const gguf_tensor *t = &f->tensors[i];
        info->n_params += t->n_elements;
        info->weight_bytes += t->nbytes;
        if (t->type < TENSOR_TYPE_COUNT) {
            info->type_tensors[t->type]++;
            info->type_params[t->type] += t->n_elements;
        }
        if (gguf_string_eq(t->name, "rope_freqs.weight"))
            info->has_rope_freqs = true;
        static const char bias[] = "exp_probs_b.bias", sinks[] = ".attn_sinks.weight";
        size_t nb = sizeof bias - 1, ns = sizeof sinks - 1;
        if (t->name.len >= nb && memcmp(t->name.data + t->name.len - nb, bias, nb) == 0)
            info->has_expert_bias = true;
        if (t->name.len > ns && memcmp(t->name.data + t->name.len - ns, sinks, ns) == 0)
            info->has_attn_sinks = true;
        if (gguf_string_eq(t->name, "rope_factors_long.weight") ||
            gguf_string_eq(t->name, "rope_factors_short.weight"))
            info->has_rope_factors = true;
    }
}

static int read_hparams(const gguf_file *f, model_info *info, garlic_error *err)
{
    const char *a = info->arch;
    int rc = GARLIC_OK;
    rc = rc ? rc : arch_u64(f, a, "context_length", &info->context_length, err);
    rc = rc ? rc : arch_u64(f, a, "embedding_length", &info->embedding_length, err);
    rc = rc ? rc : arch_u64(f, a, "block_count", &info->block_count, err);
    rc = rc ? rc : arch_u64(f, a, "feed_forward_length", &info->feed_forward_length, err);
    rc = rc ? rc : arch_u64(f, a, "attention.head_count", &info->head_count, err);
    rc = rc ? rc : arch_u64(f, a, "attention.head_count_kv", &info->head_count_kv, err);
    rc = rc ? rc : arch_u64(f, a, "attention.key_length", &info->key_length, err);
    rc = rc ? rc : arch_u64(f, a, "attention.value_length", &info->value_length, err);
    rc = rc ? rc : arch_u64(f, a, "rope.dimension_count", &info->rope_dimension_count, err);
    rc = rc
        ? rc
        : arch_u64(f, a, "rope.scaling.original_context_length", &info->rope_original_context, err);
    rc = rc ? rc : arch_f32(f, a, "rope.freq_base", &info->rope_freq_base, err);
    rc = rc ? rc : arch_f32(f, a, "rope.scaling.factor", &info->rope_scale_factor, err);
    rc = rc ? rc : arch_f32(f, a, "attention.layer_norm_rms_epsilon", &info->rms_epsilon, err);
    rc = rc ? rc : arch_f32(f, a, "attention.layer_norm_epsilon", &info->norm_epsilon, err);
    rc = rc ? rc
            : arch_f32(f, a, "rope.scaling.yarn_log_multiplier", &info->rope_yarn_log_mul, err);
    rc = rc ? rc : arch_u64(f, a, "attention.q_lora_rank", &info->q_lora_rank, err);
    rc = rc ? rc : arch_u64(f, a, "attention.kv_lora_rank", &info->kv_lora_rank, err);
    rc = rc ? rc : arch_u64(f, a, "attention.key_length_mla", &info->key_length_mla, err);
    rc = rc ? rc : arch_u64(f, a, "attention.value_length_mla", &info->value_length_mla, err);
    rc = rc ? rc : arch_f32(f, a, "rope.scaling.attn_factor", &info->rope_attn_factor, err);
    rc = rc ? rc : arch_f32(f, a, "rope.freq_base_swa", &info->rope_freq_base_swa, err);
    rc = rc ? rc : arch_f32(f, a, "attention.scale", &info->attention_scale, err);
    rc = rc ? rc : arch_f32(f, a, "final_logit_softcapping", &info->final_logit_softcapping, err);
    rc = rc ? rc : arch_u64(f, a, "attention.sliding_window", &info->sliding_window, err);
    rc = rc ? rc : read_swa_pattern(f, info, err);
    const struct {
        const char *suffix;
        uint64_t *out;
    } experts[] = {
        {"expert_count", &info->expert_count},
        {"expert_used_count", &info->expert_used_count},
        {"expert_feed_forward_length", &info->expert_feed_forward_length},
        {"expert_shared_feed_forward_length", &info->expert_shared_feed_forward_length},
        {"expert_shared_count", &info->expert_shared_count},
        {"leading_dense_block_count", &info->leading_dense_block_count},
        {"expert_group_count", &info->expert_group_count},
        {"expert_group_used_count", &info->expert_group_used_count},
        {"expert_gating_func", &info->expert_gating_func},
    };
    for (size_t i = 0; rc == GARLIC_OK && i < sizeof experts / sizeof experts[0]; i++)
        rc = arch_u64(f, a, experts[i].suffix, experts[i].out, err);
    rc = rc ? rc : arch_f32(f, a, "expert_weights_scale", &info->expert_weights_scale, err);
    if (rc)
        return rc;
    char key[160];
    snprintf(key, sizeof key, "%s.expert_weights_norm", a);
    bool norm;
    info->expert_weights_norm = gguf_get_bool(f, key, &norm) == GARLIC_OK ? norm : -1;
    snprintf(key, sizeof key, "%s.attention.causal", a);
    bool causal;
    info->causal = gguf_get_bool(f, key, &causal) == GARLIC_OK ? causal : -1;
    snprintf(key, sizeof key, "%s.pooling_type", a);
    info->pooling_type = -1;
    if (gguf_find_kv(f, key)) {
        uint64_t pooling = 0;
        if ((rc = arch_u64(f, a, "pooling_type", &pooling, err)))
            return rc;
        info->pooling_type = pooling > 1000 ? 1000 : (int64_t)pooling;
    }
    if (gguf_find_kv(f, "tokenizer.ggml.token_type_count") &&
        gguf_get_u64(f, "tokenizer.ggml.token_type_count", &info->token_type_count) != GARLIC_OK)
        return garlic_error_set(err, GARLIC_EFORMAT,
                                "%s: key 'tokenizer.ggml.token_type_count' "
                                "is not an unsigned integer",
                                f->path);
    snprintf(key, sizeof key, "%s.rope.scaling.type", a);
    copy_str(f, key, info->rope_scaling_type, sizeof info->rope_scaling_type);
    if (info->head_count_kv == 0)
        info->head_count_kv = info->head_count;
    if (info->key_length == 0 && info->head_count)
        info->key_length = info->embedding_length / info->head_count;
    if (info->value_length == 0)
        info->value_length = info->key_length;
    count_swa_layers(info);
    // 2 bytes per F16 element; K and V may have different head sizes. Multi-head latent
    // attention caches K rows only (its values are the latent at the start of each).
    bool mla = info->kv_lora_rank && info->key_length_mla;
    info->kv_bytes_per_token_f16 = info->block_count * info->head_count_kv *
        (info->key_length + (mla ? 0 : info->value_length)) * 2;
    return GARLIC_OK;
}

static void read_tokenizer(const gguf_file *f, model_info *info)
{
    static const char *const roles[MODEL_SPECIAL_COUNT] = {
        "bos", "eos", "eot", "eom", "unknown", "padding", "seperator", "mask"};
    copy_str(f, "tokenizer.ggml.model", info->tokenizer_model, sizeof info->tokenizer_model);
    copy_str(f, "tokenizer.ggml.pre", info->tokenizer_pre, sizeof info->tokenizer_pre);
    gguf_value arr;
    if (gguf_get_arr(f, "tokenizer.ggml.tokens", &arr) == GARLIC_OK)
        info->vocab_size = arr.arr.count;
    if (gguf_get_arr(f, "tokenizer.ggml.merges", &arr) == GARLIC_OK)
        info->n_merges = arr.arr.count;
    for (int i = 0; i < MODEL_SPECIAL_COUNT; i++) {
        char key[96];
        snprintf(key, sizeof key, "tokenizer.ggml.%s_token_id", roles[i]);
        uint64_t id;
        info->special[i].role = roles[i];
        info->special[i].id = -1;
        // Files mark "none" as -1, often stored as u32 0xffffffff.
        if (gguf_get_u64(f, key, &id) == GARLIC_OK && id < (uint64_t)INT32_MAX)
            info->special[i].id = (int64_t)id;
    }
    info->special[6].role = "separator"; // the GGUF key is spelled "seperator"
    gguf_string tmpl;
    if (gguf_get_str(f, "tokenizer.chat_template", &tmpl) == GARLIC_OK) {
        info->has_chat_template = true;
        info->chat_template_len = tmpl.len;
    }
}

int model_info_read(const gguf_file *f, model_info *info, garlic_error *err)
{
    memset(info, 0, sizeof *info);
    info->file_size = f->size;
    copy_str(f, "general.architecture", info->arch, sizeof info->arch);
    copy_str(f, "general.name", info->name, sizeof info->name);
    info->rope_freq_base = 10000.0f;
    read_tensors(f, info);
    read_tokenizer(f, info);
    return info->arch[0] ? read_hparams(f, info, err) : GARLIC_OK;
}

bool model_info_token_text(const gguf_file *f, int64_t id, gguf_string *out)
{
    gguf_value arr;
    if (id < 0 || gguf_get_arr(f, "tokenizer.ggml.tokens", &arr) != GARLIC_OK ||
        arr.arr.type != GGUF_TYPE_STRING || (uint64_t)id >= arr.arr.count)
        return false;
    gguf_array_iter it;
    gguf_array_iter_init(&it, &arr);
    gguf_value v;
    for (int64_t i = 0; i <= id; i++)
        if (!gguf_array_next(&it, &v))
            return false;
    *out = v.str;
    return true;
}
