// SPDX-License-Identifier: MIT
// `garlic show MODEL.gguf [--json] [--tensors]`: what a person wants to know before serving
// a model: architecture, size, weight-type mix, shape, RoPE, tokenizer, chat template and
// the KV cache cost per token (of each kind of layer, when some have a sliding window: the
// loader says which, when garlic can load the file). Reads only metadata and tensor infos
// (no weights).
#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/units.h"
#include "base/utf8.h"
#include "cli/cli.h"
#include "gguf/gguf.h"
#include "hf/hf.h"
#include "model/info.h"
#include "model/model.h"
#include "store/store.h"

const char *cli_format_bytes(double bytes)
{
    static char bufs[4][GARLIC_BYTES_TEXT];
    static int next;
    uint64_t whole = bytes >= 0x1p64 ? UINT64_MAX : bytes >= 0 ? (uint64_t)bytes : 0;
    return garlic_bytes_format(whole, GARLIC_BYTES_DECIMALS, bufs[next++ % 4]);
}

const char *cli_format_count(double count)
{
    static char bufs[4][32];
    static int next;
    char *b = bufs[next++ % 4];
    if (count >= 1e9)
        snprintf(b, 32, "%.2fB", count / 1e9);
    else if (count >= 1e6)
        snprintf(b, 32, "%.2fM", count / 1e6);
    else if (count >= 1e3)
        snprintf(b, 32, "%.2fK", count / 1e3);
    else
        snprintf(b, 32, "%.0f", count);
    return b;
}

// Weight types by descending tensor count, as "Q4_K x145, Q6_K x24, F32 x65".
static void format_type_mix(const model_info *info, char *dst, size_t cap)
{
    bool used[TENSOR_TYPE_COUNT] = {0};
    size_t len = 0;
    dst[0] = '\0';
    for (;;) {
        int best = -1;
        for (int t = 0; t < TENSOR_TYPE_COUNT; t++)
            if (!used[t] && info->type_tensors[t] &&
                (best < 0 || info->type_tensors[t] > info->type_tensors[best]))
                best = t;
        if (best < 0)
            break;
        used[best] = true;
        int n = snprintf(dst + len, cap - len, "%s%s \u00d7%u", len ? ", " : "",
                         tensor_type_get((uint32_t)best)->name, info->type_tensors[best]);
        if (n < 0 || (size_t)n >= cap - len)
            break;
        len += (size_t)n;
    }
}

static double bits_per_weight(const model_info *info)
{
    return info->n_params ? 8.0 * (double)info->weight_bytes / (double)info->n_params : 0;
}

static void print_row_u64(const char *label, uint64_t v)
{
    if (v)
        printf("    %-22s %llu\n", label, (unsigned long long)v);
}

static void print_special_tokens(const gguf_file *f, const model_info *info)
{
    bool any = false;
    for (int i = 0; i < MODEL_SPECIAL_COUNT; i++) {
        const model_special_token *s = &info->special[i];
        if (s->id < 0)
            continue;
        gguf_string text;
        char shown[128] = "?";
        if (model_info_token_text(f, s->id, &text))
            utf8_sanitize(text.data, text.len, shown, sizeof shown, true);
        printf("%s%s %lld '%s'", any ? ", " : "    special tokens         ", s->role,
               (long long)s->id, shown);
        any = true;
    }
    if (any)
        printf("\n");
}

// Multi-head latent attention (DeepSeek): what the cache holds per position and layer, and
// the heads' own sizes.
static void print_latent_attention(const model_info *info)
{
    printf("    %-22s latent %llu + RoPE key %llu cached per position (no V rows)\n",
           "latent attention", (unsigned long long)info->kv_lora_rank,
           (unsigned long long)info->rope_dimension_count);
    printf("    %-22s ", "heads' query, value");
    if (info->key_length_mla)
        printf("%llu, %llu", (unsigned long long)info->key_length_mla,
               (unsigned long long)info->value_length_mla);
    else
        printf("? (no key_length_mla: attn_kv_b layout)");
    if (info->q_lora_rank)
        printf("; queries of rank %llu\n", (unsigned long long)info->q_lora_rank);
    else
        printf("; full-rank queries\n");
}

// How the experts are chosen and weighted, where the file says more than the default.
static void print_routing(const model_info *info)
{
    static const char *const funcs[] = {"", "softmax", "sigmoid", "softmax of the top k"};
    bool any = false;
    const char *sep = "    expert routing         ";
    if (info->expert_gating_func && info->expert_gating_func < 4)
        printf("%s%s", sep, funcs[info->expert_gating_func]), any = true;
    if (info->has_expert_bias)
        printf("%sexp_probs_b bias", any ? ", " : sep), any = true;
    if (info->expert_weights_norm == 1)
        printf("%sweights normed", any ? ", " : sep), any = true;
    if (info->expert_weights_scale && info->expert_weights_scale != 1)
        printf("%sweights x%g", any ? ", " : sep, info->expert_weights_scale), any = true;
    if (any)
        printf("\n");
}

// The KV cache cost per token of each kind of layer at F16. The layers with a sliding window
// keep their last `window` positions only; which layers have one is the architecture's
// pattern, known once the file loads (otherwise every layer counts as full).
typedef struct kv_kinds {
    uint32_t n_window;     // layers with a window (0: none, or the file does not load)
    uint32_t window;       // positions they keep
    uint64_t full_bytes;   // bytes per token of the full-attention layers
    uint64_t window_bytes; // of the window layers
} kv_kinds;

static kv_kinds kv_kinds_of(const char *path, const model_info *info)
{
    kv_kinds k = {.full_bytes = info->kv_bytes_per_token_f16};
    model *m = info->block_count ? model_load(path, NULL) : NULL;
    if (!m)
        return k;
    kv_cache_config kc = model_kv_config(m, KV_TYPE_F16, KV_DEFAULT_BLOCK_TOKENS, 0);
    uint64_t k_row, v_row;
    k.n_window = kv_windows_count(&kc.windows, kc.n_layer);
    if (k.n_window && kv_cache_row_bytes(&kc, &k_row, &v_row, NULL) == GARLIC_OK) {
        k.window = kc.windows.window;
        k.window_bytes = k.n_window * (k_row + v_row);
        k.full_bytes = (kc.n_layer - k.n_window) * (k_row + v_row);
    } else {
        k.n_window = 0;
    }
    model_free(m);
    return k;
}

// Bytes one sequence of ctx positions keeps: every position of the full layers, the last
// window positions of the window layers.
static double kv_bytes_at(const kv_kinds *k, uint64_t ctx)
{
    uint64_t held = k->n_window && k->window < ctx ? k->window : ctx;
    return (double)k->full_bytes * (double)ctx + (double)k->window_bytes * (double)held;
}

// The sliding window and which layers have it: "16 tokens, 10 of 12 layers (global: 5, 11),
// RoPE base 10000" (the global layers listed while they fit on the line).
static void print_sliding_window(const model_info *info)
{
    if (!info->sliding_window)
        return;
    printf("    %-22s %llu tokens", "sliding window", (unsigned long long)info->sliding_window);
    uint64_t n = info->block_count, swa = info->n_swa_layers;
    if (swa == n && n)
        printf(", all %llu layers", (unsigned long long)n);
    else if (swa) {
        printf(", %llu of %llu layers (global:", (unsigned long long)swa, (unsigned long long)n);
        const model_arch *arch = model_arch_find(info->arch);
        uint64_t period = info->has_sliding_window_pattern ? info->sliding_window_pattern
                                                           : arch->swa_period;
        int shown = 0;
        for (uint64_t l = 0; l < n && shown < 12; l++)
            if (!model_layer_slides(period, l))
                printf("%s %llu", shown++ ? "," : "", (unsigned long long)l);
        printf("%s)", n - swa > 12 ? ", ..." : "");
    } else {
        const model_arch *arch = model_arch_find(info->arch);
        printf(" (garlic applies it to no layer: %s)",
               !arch                                    ? "an architecture it does not run"
                   : !arch->sliding_window              ? "not a sliding-window architecture"
                   : info->sliding_window_pattern_array ? "a per-layer pattern"
                                                        : "the pattern picks none");
    }
    if (swa && info->rope_freq_base_swa)
        printf(", RoPE base %g", info->rope_freq_base_swa);
    printf("\n");
}

static void print_text(const gguf_file *f, const model_info *info, const kv_kinds *kinds)
{
    char mix[512];
    format_type_mix(info, mix, sizeof mix);
    printf("  Model\n");
    printf("    %-22s %s\n", "architecture", info->arch[0] ? info->arch : "(none)");
    if (info->name[0]) {
        char name[300];
        utf8_sanitize(info->name, strlen(info->name), name, sizeof name, true);
        printf("    %-22s %s\n", "name", name);
    }
    printf("    %-22s %s (%llu)\n", "parameters", cli_format_count((double)info->n_params),
           (unsigned long long)info->n_params);
    printf("    %-22s %s (%llu bytes)\n", "file size", cli_format_bytes((double)info->file_size),
           (unsigned long long)info->file_size);
    if (f->n_tensors)
        printf("    %-22s %s (%.2f bits per weight)\n", "weight types", mix, bits_per_weight(info));
    if (f->n_tensors)
        printf("    %-22s %llu\n", "tensors", (unsigned long long)f->n_tensors);
    else
        printf("    %-22s none (vocabulary-only file)\n", "tensors");
    print_row_u64("context length", info->context_length);
    print_row_u64("embedding length", info->embedding_length);
    print_row_u64("layers", info->block_count);
    print_row_u64("feed forward length", info->feed_forward_length);
    print_row_u64("heads", info->head_count);
    print_row_u64("KV heads", info->head_count_kv);
    print_row_u64("head dim (K)", info->key_length);
    if (info->value_length != info->key_length)
        print_row_u64("head dim (V)", info->value_length);
    if (info->arch[0] && info->head_count) {
        printf("    %-22s freq_base %g", "RoPE", info->rope_freq_base);
        if (info->rope_dimension_count)
            printf(", dims %llu", (unsigned long long)info->rope_dimension_count);
        if (info->rope_scaling_type[0])
            printf(", scaling %s", info->rope_scaling_type);
        if (info->rope_scale_factor)
            printf(" x%g", info->rope_scale_factor);
        if (info->rope_original_context)
            printf(" (original context %llu)", (unsigned long long)info->rope_original_context);
        if (info->rope_yarn_log_mul)
            printf(", YaRN log multiplier %g", info->rope_yarn_log_mul);
        if (info->has_rope_freqs)
            printf(", rope_freqs tensor");
        if (info->has_rope_factors)
            printf(", LongRoPE factors");
        if (info->rope_attn_factor)
            printf(", attention factor %g", info->rope_attn_factor);
        printf("\n");
    }
    if (info->kv_lora_rank)
        print_latent_attention(info);
    if (info->pooling_type >= 0 || info->causal == 0) // an embedding model
        printf("    %-22s pooling %s%s\n", "embeddings",
               info->pooling_type >= 0 && info->pooling_type < MODEL_POOLING_COUNT
                   ? model_pooling_name((model_pooling)info->pooling_type)
                   : "?",
               info->causal == 0 ? ", attention over the whole input (not causal)" : "");
    print_sliding_window(info);
    if (info->has_attn_sinks)
        printf("    %-22s yes (a learned logit per head)\n", "attention sinks");
    if (info->attention_scale)
        printf("    %-22s %g\n", "attention scale", info->attention_scale);
    if (info->final_logit_softcapping)
        printf("    %-22s %g\n", "final logit soft cap", info->final_logit_softcapping);
    if (info->rms_epsilon)
        printf("    %-22s %g\n", "RMS norm epsilon", info->rms_epsilon);
    if (info->expert_count) {
        printf("    %-22s %llu, %llu used per token", "experts",
               (unsigned long long)info->expert_count, (unsigned long long)info->expert_used_count);
        if (info->expert_group_count > 1)
            printf(" (%llu groups, %llu used)", (unsigned long long)info->expert_group_count,
                   (unsigned long long)info->expert_group_used_count);
        printf("\n");
        if (info->expert_feed_forward_length)
            print_row_u64("expert FFN length", info->expert_feed_forward_length);
        // DeepSeek's files give the count of expert-wide shared experts instead of a width.
        uint64_t shared = info->expert_shared_count ? info->expert_shared_count : 1;
        uint64_t width = info->expert_shared_feed_forward_length
            ? info->expert_shared_feed_forward_length
            : shared * info->expert_feed_forward_length;
        if (info->expert_shared_feed_forward_length || info->expert_shared_count)
            printf("    %-22s %llu wide, %llu shared experts\n", "shared expert",
                   (unsigned long long)width, (unsigned long long)shared);
        print_routing(info);
        if (info->leading_dense_block_count)
            print_row_u64("leading dense layers", info->leading_dense_block_count);
    }
    printf("  Tokenizer\n");
    printf("    %-22s %s%s%s\n", "type",
           info->tokenizer_model[0] ? info->tokenizer_model : "(none)",
           info->tokenizer_pre[0] ? ", pre " : "", info->tokenizer_pre);
    printf("    %-22s %llu tokens", "vocabulary", (unsigned long long)info->vocab_size);
    if (info->n_merges)
        printf(", %llu merges", (unsigned long long)info->n_merges);
    printf("\n");
    print_special_tokens(f, info);
    if (info->has_chat_template)
        printf("    %-22s yes (%llu bytes)\n", "chat template",
               (unsigned long long)info->chat_template_len);
    else
        printf("    %-22s no\n", "chat template");
    if (info->kv_bytes_per_token_f16) {
        printf("  KV cache (F16)\n");
        printf("    %-22s %s\n", "per token",
               cli_format_bytes((double)info->kv_bytes_per_token_f16));
        if (kinds->n_window) {
            printf("      %-20s %s\n", "full layers", cli_format_bytes((double)kinds->full_bytes));
            printf("      %-20s %s, %u of %llu layers, for the last %u positions\n",
                   "window layers", cli_format_bytes((double)kinds->window_bytes), kinds->n_window,
                   (unsigned long long)info->block_count, kinds->window);
        }
        if (info->context_length)
            printf("    at %-19llu %s\n", (unsigned long long)info->context_length,
                   cli_format_bytes(kv_bytes_at(kinds, info->context_length)));
    }
}

// Adds a string from the file to a JSON object; invalid UTF-8 becomes U+FFFD.
static void json_add_text(cJSON *obj, const char *key, const char *s, size_t n)
{
    char buf[1024];
    utf8_sanitize(s, n, buf, sizeof buf, false);
    cJSON_AddStringToObject(obj, key, buf);
}

static void json_add_tensors(cJSON *root, const gguf_file *f)
{
    cJSON *list = cJSON_AddArrayToObject(root, "tensors");
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const gguf_tensor *t = &f->tensors[i];
        cJSON *o = cJSON_CreateObject();
        json_add_text(o, "name", t->name.data, t->name.len);
        cJSON_AddStringToObject(o, "type", tensor_type_get(t->type)->name);
        cJSON *shape = cJSON_AddArrayToObject(o, "shape");
        for (uint32_t d = 0; d < t->n_dims; d++)
            cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t->ne[d]));
        cJSON_AddNumberToObject(o, "bytes", (double)t->nbytes);
        cJSON_AddNumberToObject(o, "offset", (double)(f->data_offset + t->offset));
        cJSON_AddItemToArray(list, o);
    }
}

static cJSON *build_json(const gguf_file *f, const model_info *info, const kv_kinds *kinds,
                         bool tensors)
{
    cJSON *root = cJSON_CreateObject();
    json_add_text(root, "architecture", info->arch, strlen(info->arch));
    json_add_text(root, "name", info->name, strlen(info->name));
    cJSON_AddNumberToObject(root, "gguf_version", f->version);
    cJSON_AddNumberToObject(root, "file_size", (double)info->file_size);
    cJSON_AddNumberToObject(root, "parameters", (double)info->n_params);
    cJSON_AddNumberToObject(root, "weight_bytes", (double)info->weight_bytes);
    cJSON_AddNumberToObject(root, "bits_per_weight", bits_per_weight(info));
    cJSON *types = cJSON_AddObjectToObject(root, "weight_types");
    for (int t = 0; t < TENSOR_TYPE_COUNT; t++)
        if (info->type_tensors[t])
            cJSON_AddNumberToObject(types, tensor_type_get((uint32_t)t)->name,
                                    info->type_tensors[t]);
    cJSON_AddNumberToObject(root, "tensor_count", (double)f->n_tensors);
    cJSON_AddNumberToObject(root, "context_length", (double)info->context_length);
    cJSON_AddNumberToObject(root, "embedding_length", (double)info->embedding_length);
    cJSON_AddNumberToObject(root, "block_count", (double)info->block_count);
    cJSON_AddNumberToObject(root, "feed_forward_length", (double)info->feed_forward_length);
    cJSON_AddNumberToObject(root, "head_count", (double)info->head_count);
    cJSON_AddNumberToObject(root, "head_count_kv", (double)info->head_count_kv);
    cJSON_AddNumberToObject(root, "key_length", (double)info->key_length);
    cJSON_AddNumberToObject(root, "value_length", (double)info->value_length);
    if (info->expert_count) {
        cJSON *ex = cJSON_AddObjectToObject(root, "experts");
        cJSON_AddNumberToObject(ex, "count", (double)info->expert_count);
        cJSON_AddNumberToObject(ex, "used", (double)info->expert_used_count);
        cJSON_AddNumberToObject(ex, "feed_forward_length",
                                (double)info->expert_feed_forward_length);
        cJSON_AddNumberToObject(ex, "shared_feed_forward_length",
                                (double)info->expert_shared_feed_forward_length);
        cJSON_AddNumberToObject(ex, "shared_count", (double)info->expert_shared_count);
        cJSON_AddNumberToObject(ex, "leading_dense_layers",
                                (double)info->leading_dense_block_count);
        cJSON_AddNumberToObject(ex, "group_count", (double)info->expert_group_count);
        cJSON_AddNumberToObject(ex, "group_used", (double)info->expert_group_used_count);
    }
    cJSON *rope = cJSON_AddObjectToObject(root, "rope");
    cJSON_AddNumberToObject(rope, "freq_base", info->rope_freq_base);
    cJSON_AddNumberToObject(rope, "dimension_count", (double)info->rope_dimension_count);
    json_add_text(rope, "scaling_type", info->rope_scaling_type, strlen(info->rope_scaling_type));
    cJSON_AddNumberToObject(rope, "scaling_factor", info->rope_scale_factor);
    cJSON_AddNumberToObject(rope, "original_context_length", (double)info->rope_original_context);
    cJSON_AddBoolToObject(rope, "freqs_tensor", info->has_rope_freqs);
    cJSON_AddBoolToObject(rope, "longrope_factors", info->has_rope_factors);
    cJSON_AddNumberToObject(rope, "attn_factor", info->rope_attn_factor);
    cJSON_AddNumberToObject(rope, "freq_base_swa", info->rope_freq_base_swa);
    cJSON_AddNumberToObject(rope, "yarn_log_multiplier", info->rope_yarn_log_mul);
    if (info->kv_lora_rank) {
        cJSON *mla = cJSON_AddObjectToObject(root, "latent_attention");
        cJSON_AddNumberToObject(mla, "q_lora_rank", (double)info->q_lora_rank);
        cJSON_AddNumberToObject(mla, "kv_lora_rank", (double)info->kv_lora_rank);
        cJSON_AddNumberToObject(mla, "key_length_mla", (double)info->key_length_mla);
        cJSON_AddNumberToObject(mla, "value_length_mla", (double)info->value_length_mla);
    }
    cJSON_AddNumberToObject(root, "rms_epsilon", info->rms_epsilon);
    cJSON_AddNumberToObject(root, "attention_scale", info->attention_scale);
    cJSON_AddNumberToObject(root, "final_logit_softcapping", info->final_logit_softcapping);
    cJSON_AddNumberToObject(root, "sliding_window", (double)info->sliding_window);
    cJSON_AddNumberToObject(root, "sliding_window_layers", (double)info->n_swa_layers);
    cJSON_AddBoolToObject(root, "attention_sinks", info->has_attn_sinks);
    cJSON *tok = cJSON_AddObjectToObject(root, "tokenizer");
    json_add_text(tok, "model", info->tokenizer_model, strlen(info->tokenizer_model));
    json_add_text(tok, "pre", info->tokenizer_pre, strlen(info->tokenizer_pre));
    cJSON_AddNumberToObject(tok, "vocab_size", (double)info->vocab_size);
    cJSON_AddNumberToObject(tok, "merges", (double)info->n_merges);
    cJSON *special = cJSON_AddObjectToObject(tok, "special_tokens");
    for (int i = 0; i < MODEL_SPECIAL_COUNT; i++) {
        gguf_string text;
        if (info->special[i].id < 0)
            continue;
        cJSON *o = cJSON_AddObjectToObject(special, info->special[i].role);
        cJSON_AddNumberToObject(o, "id", (double)info->special[i].id);
        if (model_info_token_text(f, info->special[i].id, &text))
            json_add_text(o, "text", text.data, text.len);
    }
    cJSON_AddBoolToObject(root, "chat_template", info->has_chat_template);
    cJSON_AddNumberToObject(root, "kv_bytes_per_token_f16", (double)info->kv_bytes_per_token_f16);
    cJSON_AddNumberToObject(root, "kv_full_bytes_per_token_f16", (double)kinds->full_bytes);
    cJSON_AddNumberToObject(root, "kv_window_bytes_per_token_f16", (double)kinds->window_bytes);
    cJSON_AddNumberToObject(root, "kv_window_layers", kinds->n_window);
    cJSON_AddNumberToObject(root, "kv_window", kinds->window);
    cJSON_AddNumberToObject(root, "kv_bytes_at_context_f16",
                            kv_bytes_at(kinds, info->context_length));
    if (tensors)
        json_add_tensors(root, f);
    return root;
}

static void print_tensors(const gguf_file *f)
{
    printf("  Tensors\n");
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const gguf_tensor *t = &f->tensors[i];
        char name[160], shape[96];
        utf8_sanitize(t->name.data, t->name.len, name, sizeof name, true);
        int len = 0;
        for (uint32_t d = 0; d < t->n_dims; d++)
            len += snprintf(shape + len, sizeof shape - (size_t)len, "%s%llu", d ? " x " : "",
                            (unsigned long long)t->ne[d]);
        printf("    %-32s %-7s %-22s %llu bytes\n", name, tensor_type_get(t->type)->name, shape,
               (unsigned long long)t->nbytes);
    }
}

// Prints v (a params value) as a PARAMETER line's value.
static void print_param_value(const char *key, const cJSON *v)
{
    if (cJSON_IsString(v)) {
        printf("PARAMETER %s \"", key);
        for (const char *c = v->valuestring; *c; c++)
            printf("%s%c", *c == '"' || *c == '\\' ? "\\" : "", *c);
        printf("\"\n");
    } else if (cJSON_IsNumber(v))
        printf("PARAMETER %s %.15g\n", key, v->valuedouble);
}

// `garlic show NAME --modelfile`: a Modelfile that makes the stored model again, as
// `ollama show --modelfile` prints it (FROM the weights' blob; a folder's FROM is its name).
static int print_modelfile(const char *text)
{
    char root[STORE_PATH_MAX], blob[STORE_PATH_MAX], display[4 * STORE_PART_MAX];
    garlic_error err;
    store_name name;
    store_manifest *m = garlic_malloc(sizeof *m);
    store_extras e = {0};
    int rc = m ? GARLIC_OK : garlic_error_set(&err, GARLIC_ENOMEM, "out of memory");
    if (!rc && store_is_path(text))
        rc = garlic_error_set(&err, GARLIC_EINVAL,
                              "%s: --modelfile describes a stored model, not a file", text);
    if (!rc)
        rc = store_root(root, sizeof root, &err);
    if (!rc)
        rc = store_name_parse(text, &name, &err);
    if (!rc)
        rc = store_manifest_read(root, &name, m, &err);
    if (!rc)
        rc = store_extras_read(root, m, &e, &err);
    if (rc) {
        fprintf(stderr, "garlic show: %s\n", err.message);
        garlic_free(m);
        return 1;
    }
    store_name_display(&name, display, sizeof display);
    store_blob_path(root, m->files[0].digest, blob, sizeof blob);
    printf("# Modelfile generated by \"garlic show\"\n# To build a new Modelfile based on this, "
           "replace FROM with:\n# FROM %s\n\nFROM %s\n",
           display, strcmp(m->format, "gguf") == 0 ? blob : display);
    if (e.template_text)
        printf("TEMPLATE \"\"\"%s\"\"\"\n", e.template_text);
    if (e.system)
        printf("SYSTEM \"\"\"%s\"\"\"\n", e.system);
    cJSON *params = e.params_json ? cJSON_Parse(e.params_json) : NULL;
    for (const cJSON *p = params ? params->child : NULL; p; p = p->next) {
        const cJSON *one = cJSON_IsArray(p) ? p->child : p;
        for (; one; one = cJSON_IsArray(p) ? one->next : NULL)
            print_param_value(p->string, one);
    }
    cJSON_Delete(params);
    if (e.license)
        printf("LICENSE \"\"\"%s\"\"\"\n", e.license);
    store_extras_deinit(&e);
    garlic_free(m);
    return 0;
}

static const cli_command show_command = {
    .name = "show",
    .usage = "MODEL.gguf [options]",
    .about = "Describes a GGUF file without loading its weights: architecture, size, weight "
             "types, shape,\nRoPE, tokenizer, chat template and the KV cache cost per token.",
};

int cli_show(int argc, char **argv)
{
    const char *path = NULL;
    bool json = false, tensors = false, modelfile = false;
    const cli_option options[] = {
        cli_arg("MODEL.gguf", "the model file, folder or stored model name", &path),
        cli_flag("--json", "print one JSON object", &json),
        cli_flag("--tensors", "list every tensor (type, shape, bytes, offset)", &tensors),
        cli_flag("--modelfile", "print a Modelfile that makes this stored model again", &modelfile),
        {0},
    };
    int status = cli_parse(&show_command, options, argc, argv);
    if (status != CLI_CONTINUE)
        return status;
    if (modelfile)
        return print_modelfile(path);
    garlic_error err = {0};
    char stored[STORE_PATH_MAX];
    if (store_resolve(path, stored, sizeof stored, &err) != GARLIC_OK) {
        fprintf(stderr, "garlic show: %s\n", err.message);
        return 1;
    }
    path = stored;
    gguf_file *f = hf_open_model(path, &(hf_open_options){.meta_only = true}, &err);
    model_info info;
    if (f && model_info_read(f, &info, &err) != GARLIC_OK) {
        gguf_close(f);
        f = NULL;
    }
    if (!f) {
        fprintf(stderr, "garlic show: %s\n", err.message);
        return 1;
    }
    kv_kinds kinds = kv_kinds_of(path, &info);
    if (json) {
        cJSON *root = build_json(f, &info, &kinds, tensors);
        char *text = root ? cJSON_Print(root) : NULL;
        if (text)
            printf("%s\n", text);
        cJSON_free(text);
        cJSON_Delete(root);
    } else {
        print_text(f, &info, &kinds);
        if (tensors)
            print_tensors(f);
    }
    gguf_close(f);
    return 0;
}
