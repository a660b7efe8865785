// SPDX-License-Identifier: MIT
// POST /tokenize and POST /detokenize in llama-server's shapes, for clients that count tokens:
// {"content", "add_special", "parse_special", "with_pieces"} -> {"tokens": [ids]} (or
// [{"id", "piece"}]), and {"tokens": [ids]} -> {"content"}. garlic serves several models, so a
// "model" field names one; it may be left out when the server has exactly one.
#include <math.h>
#include <string.h>

#include "api/internal.h"
#include "base/alloc.h"
#include "base/utf8.h"
#include "tokenizer/tokenizer.h"

// The model the body names, or the only one; acquired (the tokenizer lives with the loaded
// model). NULL with err set.
static registry_model *target(const api_call *call, const cJSON *root, api_error *err)
{
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(root, "model");
    registry_model *m = NULL;
    if (name && !cJSON_IsNull(name) && !cJSON_IsString(name)) {
        api_error_set(err, 400, "model", "'model' must be a string");
        return NULL;
    }
    if (cJSON_IsString(name)) {
        if (!(m = api_find_model(call, name->valuestring)))
            api_error_set(err, 404, "model", "The model '%s' does not exist", name->valuestring);
    } else {
        size_t n = 0;
        for (size_t i = 0; i < registry_count(call->reg); i++) {
            registry_model *one = registry_model_at(call->reg, i);
            if (one)
                m = one, n++;
        }
        if (n != 1) {
            api_error_set(err, 400, "model", "'model' is required: the server has %zu models", n);
            m = NULL;
        }
    }
    garlic_error gerr = {0};
    double seconds;
    if (m && registry_model_acquire(m, &seconds, &gerr) != GARLIC_OK) {
        api_load_failed(err, registry_model_name(m), &gerr);
        m = NULL;
    }
    return m;
}

static bool flag(const cJSON *root, const char *key, bool fallback, api_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v || cJSON_IsNull(v))
        return fallback;
    if (!cJSON_IsBool(v))
        api_error_set(err, 400, key, "'%s' must be a boolean", key);
    return cJSON_IsTrue(v);
}

// A piece as llama-server gives it: the text when it is valid UTF-8, else its bytes.
static cJSON *piece_json(const tokenizer *t, int32_t id)
{
    size_t len = 0;
    const char *p = tokenizer_piece(t, id, TOKENIZER_RENDER_SPECIAL, &len);
    if (p && utf8_valid(p, len)) {
        char *text = garlic_strndup(p, len);
        cJSON *s = cJSON_CreateString(text ? text : "");
        garlic_free(text);
        return s;
    }
    cJSON *bytes = cJSON_CreateArray();
    for (size_t i = 0; p && i < len; i++)
        cJSON_AddItemToArray(bytes, cJSON_CreateNumber((unsigned char)p[i]));
    return bytes;
}

void api_tokenize(const api_call *call, api_response *out)
{
    static const char *const known[] = {"model",         "content",     "add_special",
                                        "parse_special", "with_pieces", NULL};
    api_error err = {0};
    cJSON *root = api_body_object(call, known, &err);
    const cJSON *content = root ? cJSON_GetObjectItemCaseSensitive(root, "content") : NULL;
    if (root && !cJSON_IsString(content))
        api_error_set(&err, 400, "content", "'content' is required and must be a string");
    bool add = root ? flag(root, "add_special", false, &err) : false;
    bool parse = root ? flag(root, "parse_special", true, &err) : false;
    bool pieces = root ? flag(root, "with_pieces", false, &err) : false;
    registry_model *m = err.status ? NULL : target(call, root, &err);
    if (!m) {
        cJSON_Delete(root);
        api_fail(out, &err, false);
        return;
    }
    const tokenizer *t = registry_model_tokenizer(m);
    tokenizer_ids ids = {0};
    garlic_error gerr = {0};
    unsigned flags = (add ? TOKENIZER_ADD_SPECIAL : 0) | (parse ? TOKENIZER_PARSE_SPECIAL : 0);
    if (tokenizer_encode(t, content->valuestring, strlen(content->valuestring), flags, &ids,
                         &gerr) != GARLIC_OK) {
        api_error_set(&err, 400, "content", "cannot tokenize: %s", gerr.message);
        tokenizer_ids_deinit(&ids);
        registry_model_release(m, NAN);
        cJSON_Delete(root);
        api_fail(out, &err, false);
        return;
    }
    cJSON *answer = cJSON_CreateObject();
    cJSON *list = cJSON_AddArrayToObject(answer, "tokens");
    for (size_t i = 0; i < ids.n; i++) {
        if (!pieces) {
            cJSON_AddItemToArray(list, cJSON_CreateNumber(ids.ids[i]));
            continue;
        }
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "id", ids.ids[i]);
        cJSON_AddItemToObject(o, "piece", piece_json(t, ids.ids[i]));
        cJSON_AddItemToArray(list, o);
    }
    tokenizer_ids_deinit(&ids);
    registry_model_release(m, NAN);
    cJSON_Delete(root);
    api_respond_json(out, 200, answer);
}

void api_detokenize(const api_call *call, api_response *out)
{
    static const char *const known[] = {"model", "tokens", NULL};
    api_error err = {0};
    cJSON *root = api_body_object(call, known, &err);
    const cJSON *tokens = root ? cJSON_GetObjectItemCaseSensitive(root, "tokens") : NULL;
    if (root && !cJSON_IsArray(tokens))
        api_error_set(&err, 400, "tokens", "'tokens' is required and must be a list of ids");
    registry_model *m = err.status ? NULL : target(call, root, &err);
    const tokenizer *t = m ? registry_model_tokenizer(m) : NULL;
    size_t n = t ? (size_t)cJSON_GetArraySize(tokens) : 0;
    int32_t *ids = t ? garlic_malloc((n ? n : 1) * sizeof *ids) : NULL;
    if (t && !ids)
        api_error_set(&err, 503, NULL, "out of memory");
    size_t k = 0;
    for (const cJSON *e = ids ? tokens->child : NULL; e && !err.status; e = e->next) {
        if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble >= tokenizer_vocab_size(t) ||
            e->valuedouble != (int32_t)e->valuedouble)
            api_error_set(&err, 400, "tokens", "'tokens[%zu]' is not a token id below %u", k,
                          tokenizer_vocab_size(t));
        else
            ids[k++] = (int32_t)e->valuedouble;
    }
    tokenizer_text text = {0};
    garlic_error gerr = {0};
    if (!err.status && tokenizer_decode(t, ids, k, 0, &text, &gerr) != GARLIC_OK)
        api_error_set(&err, 400, "tokens", "cannot detokenize: %s", gerr.message);
    if (m)
        registry_model_release(m, NAN);
    garlic_free(ids);
    cJSON_Delete(root);
    if (err.status) {
        tokenizer_text_deinit(&text);
        api_fail(out, &err, false);
        return;
    }
    // Invalid UTF-8 (a token cut mid-character) becomes U+FFFD, as JSON needs.
    size_t cap = text.len * 3 + 1;
    char *clean = garlic_malloc(cap);
    cJSON *answer = cJSON_CreateObject();
    if (clean)
        utf8_sanitize(text.data ? text.data : "", text.len, clean, cap, false);
    cJSON_AddStringToObject(answer, "content", clean ? clean : "");
    garlic_free(clean);
    tokenizer_text_deinit(&text);
    api_respond_json(out, 200, answer);
}
