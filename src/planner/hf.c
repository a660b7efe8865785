// SPDX-License-Identifier: MIT
// Hugging Face models for the planner: config.json gives the hyper-parameters (every field
// used is checked for type and range), and the weights come from the safetensors headers
// beside it when present, or are derived from the architecture, torch_dtype and
// quantization_config otherwise (with the assumption written down for the reader).
// Architectures: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM.
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/utf8.h"
#include "planner/planner.h"

enum {
    MAX_CONFIG_BYTES = 16 << 20,
    MAX_SHARDS = 4096,
};

typedef struct hf_arch {
    const char *name;       // "architectures"[0]
    const char *model_type; // "model_type", accepted when "architectures" is absent
    bool qkv_bias;          // q, k, v projections always have biases
    bool qk_norm;           // per-head RMSNorm of q and k (head_dim weights each)
} hf_arch;

static const hf_arch archs[] = {
    {"LlamaForCausalLM", "llama", false, false},
    {"MistralForCausalLM", "mistral", false, false},
    {"Qwen2ForCausalLM", "qwen2", true, false},
    {"Qwen3ForCausalLM", "qwen3", false, true},
};

// How the weights of a config-only model are stored.
typedef enum quant_kind { QUANT_NONE, QUANT_FP8, QUANT_INT } quant_kind;

typedef struct hf_storage {
    const char *dense;      // safetensors dtype of unquantized tensors ("BF16")
    uint32_t dense_size;    // its bytes per value
    quant_kind kind;        // how the decoder's linear layers are stored
    const char *fp8;        // "F8_E4M3" or "F8_E5M2"
    uint32_t block_n, block_k; // FP8 scale blocks (rows, columns); 0: one scale per matrix
    uint32_t bits, group;   // GPTQ/AWQ: bits per weight, columns per group (0: whole row)
    char qname[16];         // "INT4"
} hf_storage;

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
        return garlic_error_set(err, GARLIC_EFORMAT, "%s: %s must be an integer from %llu to "
                                "%llu", file, key, (unsigned long long)min,
                                (unsigned long long)max);
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
        return garlic_error_set(err, GARLIC_EFORMAT, "%s: %s must be a positive number", file,
                                key);
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
            return garlic_error_set(err, GARLIC_EFORMAT, "%s: architectures must be a list of "
                                    "strings", file);
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
    return garlic_error_set(err, GARLIC_EUNSUPPORTED, "%s: %s '%s' is not supported (known: "
                            "LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, "
                            "Qwen3ForCausalLM)", file, name ? "architectures" : "model_type",
                            shown);
}

static int read_hparams(const cJSON *root, const char *file, model_hparams *hp,
                        garlic_error *err)
{
    uint64_t dim, n_layer, n_head, n_kv, ffn, vocab, ctx, head_dim;
    int rc;
    if ((rc = field_uint(root, file, "hidden_size", true, 1, 1 << 20, 0, &dim, err)) ||
        (rc = field_uint(root, file, "num_hidden_layers", true, 1, 4096, 0, &n_layer, err)) ||
        (rc = field_uint(root, file, "num_attention_heads", true, 1, 4096, 0, &n_head, err)) ||
        (rc = field_uint(root, file, "num_key_value_heads", false, 1, 4096, n_head, &n_kv, err)) ||
        (rc = field_uint(root, file, "intermediate_size", true, 1, 1 << 22, 0, &ffn, err)) ||
        (rc = field_uint(root, file, "vocab_size", true, 1, 1 << 24, 0, &vocab, err)) ||
        (rc = field_uint(root, file, "max_position_embeddings", false, 1, PLANNER_MAX_CTX, 2048,
                         &ctx, err)))
        return rc;
    if (n_head % n_kv)
        return garlic_error_set(err, GARLIC_EFORMAT, "%s: num_key_value_heads %llu does not "
                                "divide num_attention_heads %llu", file,
                                (unsigned long long)n_kv, (unsigned long long)n_head);
    if (!cJSON_GetObjectItemCaseSensitive(root, "head_dim") && dim % n_head)
        return garlic_error_set(err, GARLIC_EFORMAT, "%s: hidden_size %llu is not a multiple of "
                                "num_attention_heads %llu (and head_dim is absent)", file,
                                (unsigned long long)dim, (unsigned long long)n_head);
    if ((rc = field_uint(root, file, "head_dim", false, 2, 1 << 16, dim / n_head, &head_dim,
                         err)))
        return rc;
    *hp = (model_hparams){.n_vocab = (uint32_t)vocab, .n_ctx_train = (uint32_t)ctx,
                          .dim = (uint32_t)dim, .n_layer = (uint32_t)n_layer,
                          .n_head = (uint32_t)n_head, .n_head_kv = (uint32_t)n_kv,
                          .head_dim_k = (uint32_t)head_dim, .head_dim_v = (uint32_t)head_dim,
                          .ffn = (uint32_t)ffn, .n_rot = (uint32_t)head_dim & ~1u,
                          .rope_factor = 1, .rope_attn_factor = 1};
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
    } map[] = {{"bfloat16", "BF16", 2}, {"float16", "F16", 2}, {"half", "F16", 2},
               {"float32", "F32", 4}, {"float", "F32", 4}};
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
        return garlic_error_set(err, GARLIC_EFORMAT, "%s: quantization_config.fmt must be a "
                                "string", file);
    const char *fmt = cJSON_IsString(f) ? f->valuestring : "e4m3";
    if (strcmp(fmt, "e4m3") && strcmp(fmt, "e5m2"))
        return garlic_error_set(err, GARLIC_EUNSUPPORTED, "%s: quantization_config.fmt '%.16s' "
                                "is not e4m3 or e5m2", file, fmt);
    st->kind = QUANT_FP8;
    st->fp8 = strcmp(fmt, "e4m3") == 0 ? "F8_E4M3" : "F8_E5M2";
    const cJSON *block = cJSON_GetObjectItemCaseSensitive(q, "weight_block_size");
    if (!block || cJSON_IsNull(block))
        return GARLIC_OK;
    if (!cJSON_IsArray(block) || cJSON_GetArraySize(block) != 2 ||
        !block_dim(cJSON_GetArrayItem(block, 0), &st->block_n) ||
        !block_dim(cJSON_GetArrayItem(block, 1), &st->block_k))
        return garlic_error_set(err, GARLIC_EFORMAT, "%s: quantization_config.weight_block_size "
                                "must be [rows, columns], integers from 1 to 65536", file);
    return GARLIC_OK;
}

static int read_int_quant(const cJSON *q, const char *file, hf_storage *st, garlic_error *err)
{
    uint64_t bits;
    int rc = field_uint(q, file, "bits", true, 2, 8, 0, &bits, err);
    if (rc)
        return garlic_error_set(err, GARLIC_EFORMAT, "%s: quantization_config.bits must be an "
                                "integer from 2 to 8", file);
    const cJSON *g = cJSON_GetObjectItemCaseSensitive(q, "group_size");
    double gs = cJSON_IsNumber(g) ? g->valuedouble : g ? NAN : 128;
    if (!(gs == -1 || (gs >= 1 && gs <= 65536)) || gs != floor(gs))
        return garlic_error_set(err, GARLIC_EFORMAT, "%s: quantization_config.group_size must "
                                "be -1 or an integer from 1 to 65536", file);
    st->kind = QUANT_INT;
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
        return garlic_error_set(err, GARLIC_EUNSUPPORTED, "%s: torch_dtype '%.32s' is not "
                                "bfloat16, float16 or float32", file, torch_dtype);
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(root, "quantization_config");
    if (!q || cJSON_IsNull(q))
        return GARLIC_OK;
    const cJSON *method = cJSON_GetObjectItemCaseSensitive(q, "quant_method");
    if (!cJSON_IsObject(q) || !cJSON_IsString(method))
        return garlic_error_set(err, GARLIC_EFORMAT, "%s: quantization_config.quant_method is "
                                "missing or not a string", file);
    const char *m = method->valuestring;
    if (strcmp(m, "fp8") == 0)
        return read_fp8(q, file, st, err);
    if (strcmp(m, "gptq") == 0 || strcmp(m, "awq") == 0)
        return read_int_quant(q, file, st, err);
    return garlic_error_set(err, GARLIC_EUNSUPPORTED, "%s: quantization_config.quant_method "
                            "'%.32s' is not supported (fp8, gptq, awq; with the *.safetensors "
                            "files beside config.json their real dtypes are read instead)",
                            file, m);
}

static uint64_t div_ceil(uint64_t a, uint64_t b) { return a / b + (a % b != 0); }

// A linear layer of out x in weights, stored as st says.
static int add_linear(planner_weights *w, const hf_storage *st, uint64_t out, uint64_t in,
                      garlic_error *err)
{
    uint64_t n = out * in;
    int rc;
    switch (st->kind) {
    case QUANT_NONE:
        return planner_weights_add(w, st->dense, false, false, n, n * st->dense_size, err);
    case QUANT_FP8: {
        uint64_t scales = st->block_n ? div_ceil(out, st->block_n) * div_ceil(in, st->block_k) : 1;
        if ((rc = planner_weights_add(w, st->fp8, false, false, n, n, err)))
            return rc;
        return planner_weights_add(w, "F32", true, false, scales, scales * 4, err);
    }
    case QUANT_INT: {
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

static void describe_assumption(const hf_storage *st, bool tied, char *dst, size_t cap)
{
    const char *rest = tied ? "embeddings (tied to the LM head) and norms"
                            : "embeddings, LM head and norms";
    if (st->kind == QUANT_NONE)
        snprintf(dst, cap, "from config.json: every tensor in %s (torch_dtype)", st->dense);
    else if (st->kind == QUANT_FP8 && st->block_n)
        snprintf(dst, cap, "from config.json: decoder linear layers (q, k, v, o, gate, up, down) "
                 "in %s with one F32 scale per %ux%u block; %s in %s (torch_dtype)", st->fp8,
                 st->block_n, st->block_k, rest, st->dense);
    else if (st->kind == QUANT_FP8)
        snprintf(dst, cap, "from config.json: decoder linear layers in %s with one F32 scale "
                 "per matrix; %s in %s (torch_dtype)", st->fp8, rest, st->dense);
    else
        snprintf(dst, cap, "from config.json: decoder linear layers in %u-bit groups of %u "
                 "columns (one F16 scale and one packed zero point per group and row); %s in %s",
                 st->bits, st->group, rest, st->dense);
}

int planner_hf_config_parse(const char *json, size_t len, const char *name, planner_input *in,
                            garlic_error *err)
{
    *in = (planner_input){.source = PLANNER_SOURCE_HF_CONFIG};
    snprintf(in->path, sizeof in->path, "%s", name);
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return garlic_error_set(err, GARLIC_EFORMAT, "%s: not a JSON object", name);
    }
    const hf_arch *arch = NULL;
    hf_storage st;
    bool tied = false, attn_bias = false;
    int rc = read_arch(root, name, &arch, err);
    if (!rc)
        rc = read_hparams(root, name, &in->hp, err);
    if (!rc)
        rc = read_storage(root, name, &st, err);
    if (!rc)
        rc = field_bool(root, name, "tie_word_embeddings", &tied, err);
    if (!rc)
        rc = field_bool(root, name, "attention_bias", &attn_bias, err);
    if (!rc)
        rc = derive_weights(arch, &in->hp, &st, tied, attn_bias, &in->weights, err);
    if (!rc) {
        snprintf(in->arch, sizeof in->arch, "%s", arch->name);
        describe_assumption(&st, tied, in->assumption, sizeof in->assumption);
    }
    cJSON_Delete(root);
    return rc;
}

// ---- files ----

// dir/name into dst; GARLIC_EINVAL when it does not fit.
static int join_path(char *dst, size_t cap, const char *dir, const char *name, garlic_error *err)
{
    int n = snprintf(dst, cap, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= cap)
        return garlic_error_set(err, GARLIC_EINVAL, "%.200s/%.64s: path too long", dir, name);
    return GARLIC_OK;
}

// Reads a whole small file (at most max bytes) into a NUL-terminated buffer.
static char *read_small_file(const char *path, size_t max, size_t *len, garlic_error *err)
{
    FILE *f = fopen(path, "rb");
    struct stat sb;
    if (!f || fstat(fileno(f), &sb) != 0) {
        garlic_error_set(err, GARLIC_EIO, "%s: %s", path, strerror(errno));
        if (f)
            fclose(f);
        return NULL;
    }
    if (!S_ISREG(sb.st_mode) || (uint64_t)sb.st_size > max) {
        garlic_error_set(err, GARLIC_EFORMAT, "%s: not a regular file of at most %zu bytes", path,
                         max);
        fclose(f);
        return NULL;
    }
    size_t size = (size_t)sb.st_size;
    char *buf = garlic_malloc(size + 1);
    size_t n = buf ? fread(buf, 1, size, f) : 0;
    bool bad = ferror(f) || n != size;
    fclose(f);
    if (!buf || bad) {
        garlic_error_set(err, buf ? GARLIC_EIO : GARLIC_ENOMEM, "%s: %s", path,
                         buf ? "read error" : "out of memory");
        garlic_free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

// Reads the header of one safetensors file (the length first, checked against the file
// size and the cap before the JSON is read) and adds its tensors to w.
static int read_safetensors(const char *path, planner_weights *w, garlic_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return garlic_error_set(err, GARLIC_EIO, "%s: %s", path, strerror(e));
    }
    uint64_t file_size = (uint64_t)sb.st_size;
    uint8_t head[8] = {0};
    ssize_t got = pread(fd, head, 8, 0);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = n << 8 | head[i];
    if (got != 8 || n > file_size - 8 || n > PLANNER_SAFETENSORS_MAX_HEADER) {
        close(fd);
        // The parser reports which check failed.
        return planner_safetensors_parse(head, got == 8 ? 8 : 0, file_size, path, w, err);
    }
    uint8_t *buf = garlic_malloc((size_t)n + 8);
    if (!buf) {
        close(fd);
        return garlic_error_set(err, GARLIC_ENOMEM, "%s: out of memory for a header of %llu "
                                "bytes", path, (unsigned long long)n);
    }
    got = pread(fd, buf, (size_t)n + 8, 0);
    close(fd);
    int rc = got == (ssize_t)(n + 8)
                 ? planner_safetensors_parse(buf, (size_t)n + 8, file_size, path, w, err)
                 : garlic_error_set(err, GARLIC_EIO, "%s: short read of the header", path);
    garlic_free(buf);
    return rc;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

// The shard names of model.safetensors.index.json (its weight_map values, once each).
static int index_shards(const char *dir, char ***names, size_t *n_names, garlic_error *err)
{
    char path[4096];
    size_t len;
    int rc = join_path(path, sizeof path, dir, "model.safetensors.index.json", err);
    if (rc)
        return rc;
    char *text = read_small_file(path, 64u << 20, &len, err);
    if (!text)
        return err ? err->code : GARLIC_EIO;
    cJSON *root = cJSON_ParseWithLength(text, len);
    garlic_free(text);
    const cJSON *map = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(map)) {
        cJSON_Delete(root);
        return garlic_error_set(err, GARLIC_EFORMAT, "%s: weight_map is missing or not an "
                                "object", path);
    }
    size_t cap = (size_t)cJSON_GetArraySize(map) + 1;
    char **list = garlic_calloc(cap, sizeof *list);
    if (!list) {
        cJSON_Delete(root);
        return garlic_error_set(err, GARLIC_ENOMEM, "%s: out of memory", path);
    }
    size_t n = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, map) {
        const char *s = cJSON_IsString(v) ? v->valuestring : NULL;
        if (!s || !s[0] || strchr(s, '/') || strcmp(s, "..") == 0 || strlen(s) > 255) {
            rc = garlic_error_set(err, GARLIC_EFORMAT, "%s: weight_map: '%.64s' is not a file "
                                  "name in the folder", path, s ? s : "(not a string)");
            break;
        }
        bool seen = false;
        for (size_t i = 0; i < n && !seen; i++)
            seen = strcmp(list[i], s) == 0;
        if (seen)
            continue;
        if (n == MAX_SHARDS || !(list[n] = garlic_strndup(s, strlen(s)))) {
            rc = garlic_error_set(err, n == MAX_SHARDS ? GARLIC_EFORMAT : GARLIC_ENOMEM,
                                  "%s: weight_map: too many files or out of memory", path);
            break;
        }
        n++;
    }
    cJSON_Delete(root);
    *names = list, *n_names = n;
    return rc;
}

// Every *.safetensors file of dir, sorted.
static int glob_shards(const char *dir, char ***names, size_t *n_names, garlic_error *err)
{
    DIR *d = opendir(dir);
    *names = NULL, *n_names = 0;
    if (!d)
        return garlic_error_set(err, GARLIC_EIO, "%s: %s", dir, strerror(errno));
    size_t n = 0, cap = 0;
    char **list = NULL;
    int rc = GARLIC_OK;
    struct dirent *e;
    while ((e = readdir(d)) && !rc) {
        size_t len = strlen(e->d_name);
        if (len <= 12 || strcmp(e->d_name + len - 12, ".safetensors") != 0)
            continue;
        if (n == cap) {
            char **grown = n < MAX_SHARDS ? garlic_realloc(list, (cap = cap * 2 + 8) * sizeof *list)
                                          : NULL;
            if (!grown) {
                rc = garlic_error_set(err, GARLIC_ENOMEM, "%s: too many safetensors files", dir);
                break;
            }
            list = grown;
        }
        if (!(list[n] = garlic_strndup(e->d_name, len)))
            rc = garlic_error_set(err, GARLIC_ENOMEM, "%s: out of memory", dir);
        else
            n++;
    }
    closedir(d);
    if (n)
        qsort(list, n, sizeof *list, name_cmp);
    *names = list, *n_names = n;
    return rc;
}

static void free_names(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        garlic_free(names[i]);
    garlic_free(names);
}

// Replaces the derived weights with the safetensors headers of dir, when there are any.
static int read_shards(const char *dir, planner_input *in, garlic_error *err)
{
    char index[4096], **names = NULL;
    size_t n = 0;
    int rc = join_path(index, sizeof index, dir, "model.safetensors.index.json", err);
    if (rc)
        return rc;
    rc = access(index, F_OK) == 0 ? index_shards(dir, &names, &n, err)
                                  : glob_shards(dir, &names, &n, err);
    if (!rc && n) {
        in->weights = (planner_weights){0};
        in->source = PLANNER_SOURCE_SAFETENSORS;
        in->n_files = n;
        in->assumption[0] = '\0';
    }
    for (size_t i = 0; i < n && !rc; i++) {
        char path[4096];
        rc = join_path(path, sizeof path, dir, names[i], err);
        if (!rc)
            rc = read_safetensors(path, &in->weights, err);
    }
    free_names(names, n);
    return rc;
}

int planner_from_hf(const char *path, planner_input *in, garlic_error *err)
{
    char dir[4096], config[4096];
    struct stat sb;
    if (stat(path, &sb) != 0)
        return garlic_error_set(err, GARLIC_EIO, "%s: %s", path, strerror(errno));
    if (strlen(path) >= sizeof dir - 64)
        return garlic_error_set(err, GARLIC_EINVAL, "%.200s...: path too long", path);
    if (S_ISDIR(sb.st_mode)) {
        snprintf(dir, sizeof dir, "%s", path);
        int rc = join_path(config, sizeof config, path, "config.json", err);
        if (rc)
            return rc;
    } else {
        snprintf(config, sizeof config, "%s", path);
        snprintf(dir, sizeof dir, "%s", path);
        char *slash = strrchr(dir, '/');
        if (!slash)
            snprintf(dir, sizeof dir, ".");
        else if (slash == dir)
            dir[1] = '\0'; // the root folder
        else
            *slash = '\0';
    }
    size_t len;
    char *text = read_small_file(config, MAX_CONFIG_BYTES, &len, err);
    if (!text)
        return err ? err->code : GARLIC_EIO;
    int rc = planner_hf_config_parse(text, len, config, in, err);
    garlic_free(text);
    if (!rc)
        rc = read_shards(dir, in, err);
    return rc;
}
