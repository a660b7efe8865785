// SPDX-License-Identifier: MIT
// The special tokens of a Hugging Face folder's tokenizer and what surrounds a text: the BOS,
// EOS, unknown, separator, padding, CLS and mask tokens of tokenizer_config.json (a token's
// text or an AddedToken object), else special_tokens_map.json, else config.json's ids; the
// further end-of-generation ids of generation_config.json (eos_token_id, one or a list);
// whether BOS and EOS are added (tokenizer_config.json's add_bos_token/add_eos_token, as
// transformers' Llama and Gemma tokenizers and llama.cpp's converter read them, else the
// post-processor of tokenizer.json); and the chat templates. Written as GGUF keys after the
// vocabulary of tokenizer.c. See hf.h.
#include <stdio.h>
#include <string.h>

#include "hf/internal.h"

enum { MAX_END_TOKENS = 16 };

static const char *const role_names[HF_ROLE_EOT] = {"bos", "eos", "unk", "sep",
                                                    "pad", "cls", "mask"};
static const char *const role_keys[HF_ROLE_COUNT] = {
    [HF_ROLE_BOS] = "tokenizer.ggml.bos_token_id",
    [HF_ROLE_EOS] = "tokenizer.ggml.eos_token_id",
    [HF_ROLE_UNK] = "tokenizer.ggml.unknown_token_id",
    [HF_ROLE_SEP] = "tokenizer.ggml.seperator_token_id", // sic, as gguf-py writes it
    [HF_ROLE_PAD] = "tokenizer.ggml.padding_token_id",
    [HF_ROLE_CLS] = "tokenizer.ggml.cls_token_id",
    [HF_ROLE_MASK] = "tokenizer.ggml.mask_token_id",
    [HF_ROLE_EOT] = "tokenizer.ggml.eot_token_id",
    [HF_ROLE_EOM] = "tokenizer.ggml.eom_token_id",
};

// End-of-generation ids beyond EOS, in order of mention, each once.
typedef struct end_list {
    int32_t ids[MAX_END_TOKENS];
    int n;
} end_list;

static int end_add(end_list *e, int32_t id, const char *file, const char *field, garlic_error *err)
{
    for (int i = 0; i < e->n; i++)
        if (e->ids[i] == id)
            return GARLIC_OK;
    if (e->n == MAX_END_TOKENS)
        return garlic_error_set(err, GARLIC_EUNSUPPORTED, "%s: %s: more than %d end tokens", file,
                                field, MAX_END_TOKENS);
    e->ids[e->n++] = id;
    return GARLIC_OK;
}

// The token a config field names: its text, or an AddedToken object {"content": text}. *id
// is -1 when the field is absent, or when it names no token and the role is not BOS or EOS
// (a padding token missing from the vocabulary changes nothing garlic does).
static int token_field(const hf_tokenizer_build *b, hf_tokenizer_file src, hf_role role,
                       int32_t *id, garlic_error *err)
{
    char key[32];
    snprintf(key, sizeof key, "%s_token", role_names[role]);
    const cJSON *v = hf_json_member(b->json[src], key);
    const cJSON *content = cJSON_IsObject(v) ? hf_json_member(v, "content") : v;
    *id = -1;
    if (!v)
        return GARLIC_OK;
    if (!cJSON_IsString(content))
        return garlic_error_set(err, GARLIC_EFORMAT,
                                "%s: %s must be a token's text or an object with its content",
                                b->path[src], key);
    *id = hf_token_find(b, content->valuestring, strlen(content->valuestring));
    if (*id < 0 && (role == HF_ROLE_BOS || role == HF_ROLE_EOS)) {
        char shown[HF_SHOWN];
        return garlic_error_set(err, GARLIC_EFORMAT, "%s: %s '%s' is not a token", b->path[src],
                                key, hf_shown(content->valuestring, shown));
    }
    return GARLIC_OK;
}

// An id field of config.json or generation_config.json: one id or a list of them. The first
// goes to *first (when it is -1), every one to ends (when given).
static int id_field(const hf_tokenizer_build *b, hf_tokenizer_file src, const char *key,
                    int32_t *first, end_list *ends, garlic_error *err)
{
    const cJSON *v = hf_json_member(b->json[src], key);
    if (!v)
        return GARLIC_OK;
    const cJSON *item = cJSON_IsArray(v) ? v->child : v;
    for (; item; item = cJSON_IsArray(v) ? item->next : NULL) {
        uint32_t id;
        if (!hf_json_id(item, &id) || id >= b->n)
            return garlic_error_set(err, GARLIC_EFORMAT,
                                    "%s: %s must be a token id (0 to %u) or a list of them",
                                    b->path[src], key, b->n - 1);
        if (*first < 0)
            *first = (int32_t)id;
        int rc = ends ? end_add(ends, (int32_t)id, b->path[src], key, err) : GARLIC_OK;
        if (rc != GARLIC_OK)
            return rc;
    }
    return GARLIC_OK;
}

// Finds each role's token: tokenizer_config.json, special_tokens_map.json, then config.json's
// <role>_token_id. EOS ids of config.json and generation_config.json beyond the first go to
// ends.
static int read_roles(hf_tokenizer_build *b, end_list *ends, garlic_error *err)
{
    for (int r = 0; r < HF_ROLE_EOT; r++) {
        int32_t id = -1;
        int rc = token_field(b, HF_FILE_CONFIG, (hf_role)r, &id, err);
        if (rc == GARLIC_OK && id < 0)
            rc = token_field(b, HF_FILE_SPECIAL_MAP, (hf_role)r, &id, err);
        char key[32];
        snprintf(key, sizeof key, "%s_token_id", role_names[r]);
        if (rc == GARLIC_OK)
            rc = id_field(b, HF_FILE_MODEL, key, &id, r == HF_ROLE_EOS ? ends : NULL, err);
        if (rc == GARLIC_OK && r == HF_ROLE_EOS)
            rc = id_field(b, HF_FILE_GENERATION, key, &id, ends, err);
        if (rc != GARLIC_OK)
            return rc;
        if (id >= 0)
            b->special[r] = id;
    }
    return GARLIC_OK;
}

// The special tokens a post-processor puts before and after a single text (-1: none).
typedef struct surround {
    int32_t before, after;
} surround;

// The one id of TemplateProcessing's special token name (its special_tokens entry).
static int template_token(const hf_tokenizer_build *b, const cJSON *p, const char *name,
                          int32_t *id, garlic_error *err)
{
    const char *file = b->path[HF_FILE_TOKENIZER];
    const cJSON *entry = hf_json_member(hf_json_member(p, "special_tokens"), name);
    const cJSON *ids = hf_json_member(entry, "ids");
    uint32_t v;
    char shown[HF_SHOWN];
    if (!cJSON_IsArray(ids) || cJSON_GetArraySize(ids) != 1 || !hf_json_id(ids->child, &v) ||
        v >= b->n)
        return garlic_error_set(err, GARLIC_EFORMAT,
                                "%s: post_processor: special_tokens['%s'].ids must be one token "
                                "id",
                                file, hf_shown(name, shown));
    *id = (int32_t)v;
    return GARLIC_OK;
}

// TemplateProcessing's "single" template: at most one special token, the sequence A, at most
// one special token.
static int read_template(const hf_tokenizer_build *b, const cJSON *p, surround *s,
                         garlic_error *err)
{
    const char *file = b->path[HF_FILE_TOKENIZER];
    const cJSON *single = hf_json_member(p, "single");
    int n_before = 0, n_after = 0, n_seq = 0;
    if (!cJSON_IsArray(single))
        return garlic_error_set(err, GARLIC_EFORMAT,
                                "%s: post_processor: TemplateProcessing.single must be a list",
                                file);
    for (const cJSON *item = single->child; item; item = item->next) {
        const cJSON *special = hf_json_member(item, "SpecialToken");
        const char *name = cJSON_IsString(hf_json_member(special, "id"))
            ? hf_json_member(special, "id")->valuestring
            : NULL;
        if (hf_json_member(item, "Sequence")) {
            n_seq++;
            continue;
        }
        if (!name)
            return garlic_error_set(err, GARLIC_EFORMAT,
                                    "%s: post_processor: an item of TemplateProcessing.single is "
                                    "neither a SpecialToken nor a Sequence",
                                    file);
        int32_t *slot = n_seq ? &s->after : &s->before;
        int rc = template_token(b, p, name, slot, err);
        if (rc != GARLIC_OK)
            return rc;
        n_after += n_seq > 0;
        n_before += n_seq == 0;
    }
    if (n_seq != 1 || n_before > 1 || n_after > 1)
        return garlic_error_set(err, GARLIC_EUNSUPPORTED,
                                "%s: post_processor: garlic adds at most one token before and one "
                                "after a text (TemplateProcessing.single has %d before, %d after, "
                                "%d sequences)",
                                file, n_before, n_after, n_seq);
    return GARLIC_OK;
}

// BertProcessing and RobertaProcessing: cls and sep, each [text, id].
static int read_cls_sep(const hf_tokenizer_build *b, const cJSON *p, surround *s, garlic_error *err)
{
    const char *keys[2] = {"cls", "sep"};
    int32_t *slots[2] = {&s->before, &s->after};
    for (int i = 0; i < 2; i++) {
        const cJSON *pair = hf_json_member(p, keys[i]);
        uint32_t id;
        if (!cJSON_IsArray(pair) || !hf_json_id(cJSON_GetArrayItem(pair, 1), &id) || id >= b->n)
            return garlic_error_set(err, GARLIC_EFORMAT,
                                    "%s: post_processor.%s must be [text, token id]",
                                    b->path[HF_FILE_TOKENIZER], keys[i]);
        *slots[i] = (int32_t)id;
    }
    return GARLIC_OK;
}

// Reads what the post-processor adds around a single text.
static int read_post_processor(const hf_tokenizer_build *b, const cJSON *p, int depth, surround *s,
                               garlic_error *err)
{
    const char *file = b->path[HF_FILE_TOKENIZER];
    const cJSON *type_field = hf_json_member(p, "type");
    const char *type = cJSON_IsString(type_field) ? type_field->valuestring : NULL;
    if (!p)
        return GARLIC_OK;
    if (!type || depth > MAX_DEPTH)
        return garlic_error_set(err, GARLIC_EFORMAT, "%s: post_processor: a step without a type",
                                file);
    if (strcmp(type, "ByteLevel") == 0)
        return GARLIC_OK; // offsets only
    if (strcmp(type, "TemplateProcessing") == 0)
        return read_template(b, p, s, err);
    if (strcmp(type, "BertProcessing") == 0 || strcmp(type, "RobertaProcessing") == 0)
        return read_cls_sep(b, p, s, err);
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *list = hf_json_member(p, "processors");
        for (const cJSON *e = cJSON_IsArray(list) ? list->child : NULL; e; e = e->next) {
            int rc = read_post_processor(b, e, depth + 1, s, err);
            if (rc != GARLIC_OK)
                return rc;
        }
        return GARLIC_OK;
    }
    char shown[HF_SHOWN];
    return garlic_error_set(err, GARLIC_EUNSUPPORTED,
                            "%s: post_processor: '%s' is not supported (garlic knows "
                            "TemplateProcessing, BertProcessing, RobertaProcessing, ByteLevel)",
                            file, hf_shown(type, shown));
}

// Whether BOS and EOS are added: tokenizer_config.json's add_bos_token/add_eos_token when
// present, else the post-processor's tokens (which are then BOS and EOS; an EOS it replaces
// stays an end of generation).
static int read_surround(hf_tokenizer_build *b, end_list *ends, garlic_error *err)
{
    const cJSON *cfg = b->json[HF_FILE_CONFIG];
    const char *file = b->path[HF_FILE_CONFIG];
    surround s = {-1, -1};
    int rc = read_post_processor(b, hf_json_member(b->json[HF_FILE_TOKENIZER], "post_processor"), 0,
                                 &s, err);
    if (rc == GARLIC_OK)
        rc = hf_json_bool(cfg, "add_bos_token", s.before >= 0, &b->add_bos, file, "", err);
    if (rc == GARLIC_OK)
        rc = hf_json_bool(cfg, "add_eos_token", s.after >= 0, &b->add_eos, file, "", err);
    if (rc != GARLIC_OK)
        return rc;
    if (!hf_json_member(cfg, "add_bos_token") && s.before >= 0)
        b->special[HF_ROLE_BOS] = s.before;
    if (!hf_json_member(cfg, "add_eos_token") && s.after >= 0 &&
        s.after != b->special[HF_ROLE_EOS]) {
        int32_t old = b->special[HF_ROLE_EOS];
        b->special[HF_ROLE_EOS] = s.after;
        if (old >= 0 && (rc = end_add(ends, old, file, "eos_token", err)) != GARLIC_OK)
            return rc;
    }
    if (b->add_bos && b->special[HF_ROLE_BOS] < 0)
        return garlic_error_set(err, GARLIC_EFORMAT, "%s: add_bos_token is set, but no bos_token",
                                file);
    if (b->add_eos && b->special[HF_ROLE_EOS] < 0)
        return garlic_error_set(err, GARLIC_EFORMAT, "%s: add_eos_token is set, but no eos_token",
                                file);
    return GARLIC_OK;
}

int hf_tokenizer_specials(hf_tokenizer_build *b, garlic_error *err)
{
    end_list ends = {0};
    int rc = read_roles(b, &ends, err);
    if (rc == GARLIC_OK)
        rc = read_surround(b, &ends, err);
    if (rc != GARLIC_OK)
        return rc;
    if (b->special[HF_ROLE_EOS] < 0 && ends.n)
        b->special[HF_ROLE_EOS] = ends.ids[0];
    // The other end tokens become EOT and EOM (garlic and llama.cpp end generation on both).
    hf_role slot = HF_ROLE_EOT;
    for (int i = 0; i < ends.n; i++) {
        if (ends.ids[i] == b->special[HF_ROLE_EOS])
            continue;
        if (slot > HF_ROLE_EOM)
            return garlic_error_set(err, GARLIC_EUNSUPPORTED,
                                    "%s: eos_token_id: more than three end tokens (GGUF has EOS, "
                                    "EOT and EOM)",
                                    b->path[HF_FILE_GENERATION]);
        b->special[slot++] = ends.ids[i];
    }
    return GARLIC_OK;
}

// ---- chat templates ----

// A list of {"name", "template"}: "default" becomes tokenizer.chat_template, each other one
// tokenizer.chat_template.<name> (letters, digits and '_' kept), listed in
// tokenizer.chat_templates.
static int write_template_list(const cJSON *list, const char *file, gguf_writer *w,
                               garlic_error *err)
{
    char names[32][64];
    const char *listed[32];
    int n = 0;
    for (const cJSON *e = list->child; e; e = e->next) {
        const cJSON *name = hf_json_member(e, "name"), *text = hf_json_member(e, "template");
        if (!cJSON_IsString(name) || !cJSON_IsString(text) || !name->valuestring[0])
            return garlic_error_set(err, GARLIC_EFORMAT,
                                    "%s: chat_template: each entry needs a name and a template",
                                    file);
        if (strcmp(name->valuestring, "default") == 0) {
            if (gguf_writer_set_str(w, "tokenizer.chat_template", text->valuestring))
                return garlic_error_set(err, GARLIC_ENOMEM, "%s: out of memory", file);
            continue;
        }
        if (n == 32 || strlen(name->valuestring) >= sizeof names[0])
            return garlic_error_set(err, GARLIC_EUNSUPPORTED,
                                    "%s: chat_template: more than 32 templates or a name of 64 "
                                    "bytes or more",
                                    file);
        char *clean = names[n];
        size_t k = 0;
        for (const char *c = name->valuestring; *c; c++, k++)
            clean[k] = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                    (*c >= '0' && *c <= '9')
                ? *c
                : '_';
        clean[k] = '\0';
        char key[96];
        snprintf(key, sizeof key, "tokenizer.chat_template.%s", clean);
        listed[n++] = clean;
        if (gguf_writer_set_str(w, key, text->valuestring))
            return garlic_error_set(err, GARLIC_ENOMEM, "%s: out of memory", file);
    }
    if (n && gguf_writer_set_arr_str(w, "tokenizer.chat_templates", listed, (uint64_t)n))
        return garlic_error_set(err, GARLIC_ENOMEM, "%s: out of memory", file);
    return GARLIC_OK;
}

// tokenizer_config.json's chat_template, else chat_template.jinja, else chat_template.json's.
static int write_chat_templates(const hf_tokenizer_build *b, gguf_writer *w, garlic_error *err)
{
    const cJSON *v = hf_json_member(b->json[HF_FILE_CONFIG], "chat_template");
    const char *file = b->path[HF_FILE_CONFIG];
    if (!v && b->jinja)
        return gguf_writer_set_str(w, "tokenizer.chat_template", b->jinja) == GARLIC_OK
            ? GARLIC_OK
            : garlic_error_set(err, GARLIC_ENOMEM, "%s: out of memory",
                               b->path[HF_FILE_CHAT_JINJA]);
    if (!v) {
        v = hf_json_member(b->json[HF_FILE_CHAT_JSON], "chat_template");
        file = b->path[HF_FILE_CHAT_JSON];
    }
    if (!v)
        return GARLIC_OK;
    if (cJSON_IsString(v))
        return gguf_writer_set_str(w, "tokenizer.chat_template", v->valuestring) == GARLIC_OK
            ? GARLIC_OK
            : garlic_error_set(err, GARLIC_ENOMEM, "%s: out of memory", file);
    if (cJSON_IsArray(v))
        return write_template_list(v, file, w, err);
    return garlic_error_set(err, GARLIC_EFORMAT,
                            "%s: chat_template must be a string or a list of {name, template}",
                            file);
}

int hf_tokenizer_write_config(const hf_tokenizer_build *b, gguf_writer *w, garlic_error *err)
{
    int rc = GARLIC_OK;
    for (int r = 0; r < HF_ROLE_COUNT && rc == GARLIC_OK; r++)
        if (b->special[r] >= 0)
            rc = gguf_writer_set_u32(w, role_keys[r], (uint32_t)b->special[r]);
    if (rc == GARLIC_OK)
        rc = gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", b->add_bos);
    if (rc == GARLIC_OK)
        rc = gguf_writer_set_bool(w, "tokenizer.ggml.add_eos_token", b->add_eos);
    if (rc != GARLIC_OK)
        return garlic_error_set(err, GARLIC_ENOMEM, "%s: out of memory",
                                b->path[HF_FILE_TOKENIZER]);
    return write_chat_templates(b, w, err);
}
