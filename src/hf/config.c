// SPDX-License-Identifier: MIT
// config.json of a Hugging Face model: the architecture (a row of flags per known one), the
// hyper-parameters and how the weights are stored (torch_dtype and quantization_config).
// Every field used is checked for type and range, and errors name the file and the field.
// Also where a model's files are (hf_folder_find). See hf.h.
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/file.h"
#include "base/utf8.h"
#include "hf/hf.h"

static const hf_arch archs[] = {
    {"LlamaForCausalLM", "llama", false, false},
    {"MistralForCausalLM", "mistral", false, false},
    {"Qwen2ForCausalLM", "qwen2", true, false},
    {"Qwen3ForCausalLM", "qwen3", false, true},
};

// ---- checked fields ----

static int field_uint(const cJSON *root, const char *file, const char *key, bool required,
                      uint64_t min, uint64_t max, uint64_t dflt, uint64_t *out, garlic_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v || cJSON_IsNull(v)) {
        if (required)
            return garlic_error_set(err, GARLIC_EFORMAT, "%s: %s is missing", file, key);
        *out = dflt;
        return GARLIC_OK;
    }
    double d = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    if (!(d >= (double)min && d <= (double)max) || d != floor(d))
        return garlic_error_set(err, GARLIC_EFORMAT,
                                "%s: %s must be an integer from %llu to "
                                "%llu",
                                file, key, (unsigned long long)min, (unsigned long long)max);
    *out = (uint64_t)d;
    return GARLIC_OK;
}

static int field_float(const cJSON *root, const char *file, const char *key, double dflt,
                       float *out, garlic_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v || cJSON_IsNull(v)) {
        *out = (float)dflt;
        return GARLIC_OK;
    }
    if (!cJSON_IsNumber(v) || !(v->valuedouble > 0) || !isfinite((float)v->valuedouble))
        return garlic_error_set(err, GARLIC_EFORMAT, "%s: %s must be a positive number", file, key);
    *out = (float)v->valuedouble;
    return GARLIC_OK;
}

static int field_bool(const cJSON *root, const char *file, const char *key, bool *out,
                      garlic_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v || cJSON_IsNull(v))
        return *out = false, GARLIC_OK;
    if (!cJSON_IsBool(v))
        return garlic_error_set(err, GARLIC_EFORMAT, "%s: %s must be true or false", file, key);
    *out = cJSON_IsTrue(v);
    return GARLIC_OK;
}

// A string field, or NULL when absent; GARLIC_EFORMAT when present with another type.
static int field_str(const cJSON *root, const char *file, const char *key, const char **out,
                     garlic_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    *out = NULL;
    if (!v || cJSON_IsNull(v))
        return GARLIC_OK;
    if (!cJSON_IsString(v))
        return garlic_error_set(err, GARLIC_EFORMAT, "%s: %s must be a string", file, key);
    *out = v->valuestring;
    return GARLIC_OK;
}

// ---- architecture and hyper-parameters ----

static int read_arch(const cJSON *root, const char *file, const hf_arch **out, garlic_error *err)
{
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(root, "architectures");
    const char *name = NULL, *model_type = NULL;
    if (list && !cJSON_IsNull(list)) {
        const cJSON *first = cJSON_GetArrayItem(list, 0);
        if (!cJSON_IsArray(list) || !cJSON_IsString(first))
            return garlic_error_set(err, GARLIC_EFORMAT,
                                    "%s: architectures must be a list of "
                                    "strings",
                                    file);
        name = first->valuestring;
    }
    int rc = field_str(root, file, "model_type", &model_type, err);
    if (rc)
        return rc;
    for (size_t i = 0; i < sizeof archs / sizeof archs[0]; i++)
        if ((name && strcmp(name, archs[i].name) == 0) ||
            (!name && model_type && strcmp(model_type, archs[i].model_type) == 0))
            return *out = &archs[i], GARLIC_OK;
    if (!name && !model_type)
        return garlic_error_set(err, GARLIC_EFORMAT, "%s: architectures is missing", file);
    const char *given = name ? name : model_type;
    char shown[72];
    utf8_sanitize(given, strlen(given), shown, sizeof shown, true);
    return garlic_error_set(err, GARLIC_EUNSUPPORTED,
                            "%s: %s '%s' is not supported (known: "
                            "LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, "
                            "Qwen3ForCausalLM)",
                            file, name ? "architectures" : "model_type", shown);
}

static int read_hparams(const cJSON *root, const char *file, model_hparams *hp, garlic_error *err)
{
    uint64_t dim, n_layer, n_head, n_kv, ffn, vocab, ctx, head_dim;
    int rc;
    if ((rc = field_uint(root, file, "hidden_size", true, 1, 1 << 20, 0, &dim, err)) ||
        (rc = field_uint(root, file, "num_hidden_layers", true, 1, 4096, 0, &n_layer, err)) ||
        (rc = field_uint(root, file, "num_attention_heads", true, 1, 4096, 0, &n_head, err)) ||
        (rc = field_uint(root, file, "num_key_value_heads", false, 1, 4096, n_head, &n_kv, err)) ||
        (rc = field_uint(root, file, "intermediate_size", true, 1, 1 << 22, 0, &ffn, err)) ||
        (rc = field_uint(root, file, "vocab_size", true, 1, 1 << 24, 0, &vocab, err)) ||
        (rc = field_uint(root, file, "max_position_embeddings", false, 1, HF_MAX_CTX, 2048, &ctx,
                         err)))
        return rc;
    if (n_head % n_kv)
        return garlic_error_set(err, GARLIC_EFORMAT,
                                "%s: num_key_value_heads %llu does not "
                                "divide num_attention_heads %llu",
                                file, (unsigned long long)n_kv, (unsigned long long)n_head);
    if (!cJSON_GetObjectItemCaseSensitive(root, "head_dim") && dim % n_head)
        return garlic_error_set(err, GARLIC_EFORMAT,
                                "%s: hidden_size %llu is not a multiple of "
                                "num_attention_heads %llu (and head_dim is absent)",
                                file, (unsigned long long)dim, (unsigned long long)n_head);
    if ((rc = field_uint(root, file, "head_dim", false, 2, 1 << 16, dim / n_head, &head_dim, err)))
        return rc;
    *hp = (model_hparams){.n_vocab = (uint32_t)vocab,
                          .n_ctx_train = (uint32_t)ctx,
                          .dim = (uint32_t)dim,
                          .n_layer = (uint32_t)n_layer,
                          .n_head = (uint32_t)n_head,
                          .n_head_kv = (uint32_t)n_kv,
                          .head_dim_k = (uint32_t)head_dim,
                          .head_dim_v = (uint32_t)head_dim,
                          .ffn = (uint32_t)ffn,
                          .n_rot = (uint32_t)head_dim & ~1u,
                          .rope_factor = 1,
                          .rope_attn_factor = 1};
    if ((rc = field_float(root, file, "rope_theta", 10000, &hp->rope_base, err)) ||
        (rc = field_float(root, file, "rms_norm_eps", 1e-6, &hp->rms_eps, err)))
        return rc;
    return GARLIC_OK;
}

// ---- storage of a config-only model ----

static bool dense_dtype(const char *torch_dtype, const char **name, uint32_t *size)
{
    static const struct {
        const char *torch, *name;
        uint32_t size;
    } map[] = {{"bfloat16", "BF16", 2},
               {"float16", "F16", 2},
               {"half", "F16", 2},
               {"float32", "F32", 4},
               {"float", "F32", 4}};
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strcmp(torch_dtype, map[i].torch) == 0)
            return *name = map[i].name, *size = map[i].size, true;
    return false;
}

// One side of an FP8 scale block: an integer from 1 to 65536.
static bool block_dim(const cJSON *v, uint32_t *out)
{
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 1 && v->valuedouble <= 65536) ||
        v->valuedouble != floor(v->valuedouble))
        return false;
    *out = (uint32_t)v->valuedouble;
    return true;
}

static int read_fp8(const cJSON *q, const char *file, hf_storage *st, garlic_error *err)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(q, "fmt");
    if (f && !cJSON_IsNull(f) && !cJSON_IsString(f))
        return garlic_error_set(err, GARLIC_EFORMAT,
                                "%s: quantization_config.fmt must be a "
                                "string",
                                file);
    const char *fmt = cJSON_IsString(f) ? f->valuestring : "e4m3";
    if (strcmp(fmt, "e4m3") && strcmp(fmt, "e5m2"))
        return garlic_error_set(err, GARLIC_EUNSUPPORTED,
                                "%s: quantization_config.fmt '%.16s' "
                                "is not e4m3 or e5m2",
                                file, fmt);
    st->quant = HF_QUANT_FP8;
    st->fp8 = strcmp(fmt, "e4m3") == 0 ? "F8_E4M3" : "F8_E5M2";
    const cJSON *block = cJSON_GetObjectItemCaseSensitive(q, "weight_block_size");
    if (!block || cJSON_IsNull(block))
        return GARLIC_OK;
    if (!cJSON_IsArray(block) || cJSON_GetArraySize(block) != 2 ||
        !block_dim(cJSON_GetArrayItem(block, 0), &st->block_n) ||
        !block_dim(cJSON_GetArrayItem(block, 1), &st->block_k))
        return garlic_error_set(err, GARLIC_EFORMAT,
                                "%s: quantization_config.weight_block_size "
                                "must be [rows, columns], integers from 1 to 65536",
                                file);
    return GARLIC_OK;
}

static int read_int_quant(const cJSON *q, const char *file, hf_storage *st, garlic_error *err)
{
    uint64_t bits;
    int rc = field_uint(q, file, "bits", true, 2, 8, 0, &bits, err);
    if (rc)
        return garlic_error_set(err, GARLIC_EFORMAT,
                                "%s: quantization_config.bits must be an "
                                "integer from 2 to 8",
                                file);
    const cJSON *g = cJSON_GetObjectItemCaseSensitive(q, "group_size");
    double gs = cJSON_IsNumber(g) ? g->valuedouble : g ? NAN : 128;
    if (!(gs == -1 || (gs >= 1 && gs <= 65536)) || gs != floor(gs))
        return garlic_error_set(err, GARLIC_EFORMAT,
                                "%s: quantization_config.group_size must "
                                "be -1 or an integer from 1 to 65536",
                                file);
    st->quant = HF_QUANT_INT;
    st->bits = (uint32_t)bits;
    st->group = gs < 0 ? 0 : (uint32_t)gs;
    snprintf(st->qname, sizeof st->qname, "INT%u", st->bits);
    return GARLIC_OK;
}

static int read_storage(const cJSON *root, const char *file, hf_storage *st, garlic_error *err)
{
    const char *torch_dtype = NULL;
    int rc = field_str(root, file, "torch_dtype", &torch_dtype, err);
    if (!rc && !torch_dtype) // transformers 4.56 renamed it
        rc = field_str(root, file, "dtype", &torch_dtype, err);
    if (rc)
        return rc;
    *st = (hf_storage){.dense = "F32", .dense_size = 4};
    if (torch_dtype && !dense_dtype(torch_dtype, &st->dense, &st->dense_size))
        return garlic_error_set(err, GARLIC_EUNSUPPORTED,
                                "%s: torch_dtype '%.32s' is not "
                                "bfloat16, float16 or float32",
                                file, torch_dtype);
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(root, "quantization_config");
    if (!q || cJSON_IsNull(q))
        return GARLIC_OK;
    const cJSON *method = cJSON_GetObjectItemCaseSensitive(q, "quant_method");
    if (!cJSON_IsObject(q) || !cJSON_IsString(method))
        return garlic_error_set(err, GARLIC_EFORMAT,
                                "%s: quantization_config.quant_method is "
                                "missing or not a string",
                                file);
    const char *m = method->valuestring;
    if (strcmp(m, "fp8") == 0)
        return read_fp8(q, file, st, err);
    if (strcmp(m, "gptq") == 0 || strcmp(m, "awq") == 0)
        return read_int_quant(q, file, st, err);
    return garlic_error_set(err, GARLIC_EUNSUPPORTED,
                            "%s: quantization_config.quant_method "
                            "'%.32s' is not supported (fp8, gptq, awq; with the *.safetensors "
                            "files beside config.json their real dtypes are read instead)",
                            file, m);
}

int hf_config_parse(const char *json, size_t len, const char *name, hf_config *cfg,
                    garlic_error *err)
{
    *cfg = (hf_config){0};
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return garlic_error_set(err, GARLIC_EFORMAT, "%s: not a JSON object", name);
    }
    int rc = read_arch(root, name, &cfg->arch, err);
    if (!rc)
        rc = read_hparams(root, name, &cfg->hp, err);
    if (!rc)
        rc = read_storage(root, name, &cfg->storage, err);
    if (!rc)
        rc = field_bool(root, name, "tie_word_embeddings", &cfg->tied, err);
    if (!rc)
        rc = field_bool(root, name, "attention_bias", &cfg->attn_bias, err);
    cJSON_Delete(root);
    return rc;
}

int hf_config_read(const char *path, hf_config *cfg, garlic_error *err)
{
    char *text = NULL;
    size_t len = 0;
    int rc = garlic_file_read(path, HF_MAX_CONFIG_BYTES, &text, &len, err);
    if (rc == GARLIC_OK)
        rc = hf_config_parse(text, len, path, cfg, err);
    garlic_free(text);
    return rc;
}
