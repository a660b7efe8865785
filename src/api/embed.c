// SPDX-License-Identifier: MIT
// Embeddings: POST /v1/embeddings (OpenAI), POST /api/embed and the older POST
// /api/embeddings (Ollama). Each input is tokenized (special tokens added as the vocabulary
// says: [CLS] ... [SEP] for WordPiece), checked against the longest input the model embeds
// (refused with a 400 naming the input, or cut to fit when the client asks), and queued as an
// engine embed request; up to EMBED_WINDOW inputs are in the engine at once, so they share its
// steps. The vectors come back pooled as the model says and normalized; "dimensions" keeps
// the first N values and normalizes again (Matryoshka truncation).
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "api/internal.h"
#include "base/alloc.h"
#include "base/clock.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "base64 embeddings are little-endian float32, the host's bytes");

enum {
    EMBED_WINDOW = 32,       // inputs queued on the engine at once
    EMBED_MAX_INPUTS = 4096, // inputs one request may have
};

// The inputs of a request as token ids.
typedef struct embed_inputs {
    tokenizer_ids *ids; // (n)
    size_t n;
    uint32_t n_tokens; // over every input, after truncation
} embed_inputs;

static void inputs_deinit(embed_inputs *in)
{
    for (size_t i = 0; i < in->n; i++)
        tokenizer_ids_deinit(&in->ids[i]);
    garlic_free(in->ids);
    memset(in, 0, sizeof *in);
}

// What a request asks, whatever its API.
typedef struct embed_ask {
    const cJSON *input;  // a string, or a list of strings, of ids or of lists of ids
    bool ids_allowed;    // lists of token ids are inputs too (OpenAI)
    bool truncate;       // cut an input that is too long (Ollama), else refuse it
    uint32_t dimensions; // 0: the model's
    double keep_alive;   // NAN: the server's default
    const char *param;   // the input's field name, for messages
} embed_ask;

// Adds input i as a text or a list of ids to in.
static int add_input(const tokenizer *t, const cJSON *v, const char *param, size_t i,
                     tokenizer_ids *out, api_error *err)
{
    if (cJSON_IsString(v)) {
        if (!v->valuestring[0])
            return api_error_set(err, 400, param, "'%s[%zu]' is empty", param, i);
        garlic_error gerr = {0};
        if (tokenizer_encode(t, v->valuestring, strlen(v->valuestring), TOKENIZER_ADD_SPECIAL, out,
                             &gerr) != GARLIC_OK)
            return api_error_set(err, gerr.code == GARLIC_ENOMEM ? 503 : 400, param,
                                 "'%s[%zu]' cannot be tokenized: %s", param, i, gerr.message);
        if (out->n == 0)
            return api_error_set(err, 400, param, "'%s[%zu]' has no tokens", param, i);
        return GARLIC_OK;
    }
    size_t n = (size_t)cJSON_GetArraySize(v), k = 0;
    if (n == 0)
        return api_error_set(err, 400, param, "'%s[%zu]' is an empty list of token ids", param, i);
    out->ids = garlic_malloc(n * sizeof *out->ids);
    if (!out->ids)
        return api_error_set(err, 503, NULL, "out of memory");
    out->cap = n;
    uint32_t vocab = tokenizer_vocab_size(t);
    for (const cJSON *e = v->child; e; e = e->next, k++) {
        if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble >= vocab ||
            e->valuedouble != (double)(int32_t)e->valuedouble)
            return api_error_set(err, 400, param, "'%s[%zu][%zu]' is not a token id below %u",
                                 param, i, k, vocab);
        out->ids[out->n++] = (int32_t)e->valuedouble;
    }
    return GARLIC_OK;
}

// The inputs of ask as token ids: a string is one input; a list holds strings, or ids (one
// input), or lists of ids, never a mix.
static int read_inputs(const tokenizer *t, const embed_ask *ask, embed_inputs *in, api_error *err)
{
    const cJSON *v = ask->input;
    bool one = cJSON_IsString(v) ||
        (ask->ids_allowed && cJSON_IsArray(v) && v->child && cJSON_IsNumber(v->child));
    if (!cJSON_IsString(v) && !cJSON_IsArray(v))
        return api_error_set(err, 400, ask->param, "'%s' must be a string or a list%s", ask->param,
                             ask->ids_allowed ? " (of strings, ids or lists of ids)"
                                              : " of strings");
    size_t n = one ? 1 : (size_t)cJSON_GetArraySize(v);
    if (n > EMBED_MAX_INPUTS)
        return api_error_set(err, 400, ask->param, "'%s' has %zu inputs; at most %d", ask->param, n,
                             EMBED_MAX_INPUTS);
    in->ids = garlic_calloc(n ? n : 1, sizeof *in->ids);
    if (!in->ids)
        return api_error_set(err, 503, NULL, "out of memory");
    if (n == 0 && ask->ids_allowed)
        return api_error_set(err, 400, ask->param, "'%s' is an empty list", ask->param);
    const cJSON *e = one ? v : v->child;
    for (size_t i = 0; i < n; i++, e = e->next) {
        // Every item is what the first is: strings and lists of ids do not mix.
        bool ok = one ||
            (cJSON_IsString(v->child) ? cJSON_IsString(e) : ask->ids_allowed && cJSON_IsArray(e));
        if (!ok)
            return api_error_set(err, 400, ask->param,
                                 "'%s[%zu]' must be %s, like the list's other items", ask->param, i,
                                 cJSON_IsString(v->child) ? "a string" : "a list of token ids");
        in->n = i + 1;
        int rc = add_input(t, e, ask->param, i, &in->ids[i], err);
        if (rc)
            return rc;
    }
    return GARLIC_OK;
}

// Makes every input fit the longest the model embeds: cut to it (keeping the vocabulary's
// end token last when it adds one) when ask->truncate, else a 400 naming the first too long.
static int fit_inputs(const tokenizer *t, uint32_t most, const embed_ask *ask, embed_inputs *in,
                      api_error *err)
{
    int32_t eos = tokenizer_adds_eos(t) ? tokenizer_special_id(t, TOKENIZER_SPECIAL_EOS) : -1;
    in->n_tokens = 0;
    for (size_t i = 0; i < in->n; i++) {
        tokenizer_ids *ids = &in->ids[i];
        if (ids->n > most && !ask->truncate) {
            api_error_set(err, 400, ask->param,
                          "'%s[%zu]' has %zu tokens; the model embeds at most %u (Ollama's "
                          "\"truncate\": true cuts inputs to fit)",
                          ask->param, i, ids->n, most);
            err->code = "context_length_exceeded";
            return GARLIC_EINVAL;
        }
        if (ids->n > most) {
            ids->n = most;
            if (eos >= 0)
                ids->ids[most - 1] = eos;
        }
        in->n_tokens += (uint32_t)ids->n;
    }
    return GARLIC_OK;
}

static engine_request *embed_request(const tokenizer_ids *ids, api_error *err)
{
    engine_request_params p = {.prompt = ids->ids,
                               .n_prompt = ids->n,
                               .n_choices = 1,
                               .embed = true,
                               .wake_at_end = true,
                               .label = "embed"};
    garlic_error gerr = {0};
    engine_request *r = engine_request_new(&p, &gerr);
    if (!r)
        api_error_set(err, gerr.code == GARLIC_ENOMEM ? 503 : 400, NULL, "%s", gerr.message);
    return r;
}

// Waits for r's vector and copies it to out (dim floats). GARLIC_OK, or err set.
static int await_vector(const api_call *call, engine_request *r, size_t index, float *out,
                        uint32_t dim, api_error *err)
{
    for (;;) {
        if (call->alive && !call->alive(call->alive_ctx))
            return api_error_set(err, 400, NULL, "the client went away");
        engine_chunk c;
        if (!engine_request_next(r, &c, 100))
            continue;
        if (c.error)
            return api_error_set(err, c.error == GARLIC_ENOMEM || c.error == GARLIC_EIO ? 503 : 500,
                                 NULL, "input %zu: %s", index, c.error_message);
        if (!c.choice_done)
            continue;
        if (c.n_embd != dim || !c.embedding)
            return api_error_set(err, 500, NULL, "input %zu: no embedding came back", index);
        memcpy(out, c.embedding, dim * sizeof *out);
        return GARLIC_OK;
    }
}

// Runs every input through the model's engine, EMBED_WINDOW at a time, into vectors (n x dim).
static int run_inputs(const api_call *call, registry_model *m, const embed_inputs *in,
                      float *vectors, uint32_t dim, api_error *err)
{
    engine_request *live[EMBED_WINDOW] = {0};
    size_t next = 0, done = 0;
    int rc = GARLIC_OK;
    while (rc == GARLIC_OK && done < in->n) {
        // Keep the window full, then take the oldest result.
        while (rc == GARLIC_OK && next < in->n && next - done < EMBED_WINDOW) {
            engine_request *r = embed_request(&in->ids[next], err);
            garlic_error gerr = {0};
            int src = r ? registry_submit(m, r, &gerr) : GARLIC_EINVAL;
            if (r && src == GARLIC_EFULL && next > done) { // the queue is full: drain first
                engine_request_release(r);
                break;
            }
            if (r && src) {
                api_error_set(err, src == GARLIC_EINVAL ? 400 : 503, "input", "input %zu: %s", next,
                              gerr.message);
                err->code = src == GARLIC_EFULL ? "queue_full" : NULL;
                engine_request_release(r);
            }
            if (!r || src) {
                rc = GARLIC_EINVAL;
                break;
            }
            live[next % EMBED_WINDOW] = r;
            next++;
        }
        if (rc == GARLIC_OK)
            rc = await_vector(call, live[done % EMBED_WINDOW], done, vectors + done * (size_t)dim,
                              dim, err);
        if (rc == GARLIC_OK) {
            engine_request_release(live[done % EMBED_WINDOW]);
            live[done % EMBED_WINDOW] = NULL;
            done++;
        }
    }
    for (size_t i = done; i < next; i++) // cancels what still runs after a failure
        engine_request_release(live[i % EMBED_WINDOW]);
    return rc;
}

// The result of a request: n vectors of dim values (after "dimensions").
typedef struct embed_result {
    float *vectors;
    size_t n;
    uint32_t dim;
    uint32_t n_tokens;
    double load_seconds, total_seconds;
    char model[128];
} embed_result;

// Finds and loads the model, reads, fits and runs the inputs, applies dimensions. The model
// is released (with ask->keep_alive) before returning.
static int embed_run(const api_call *call, const char *name, const embed_ask *ask,
                     embed_result *res, api_error *err)
{
    double t0 = garlic_now();
    memset(res, 0, sizeof *res);
    snprintf(res->model, sizeof res->model, "%s", name);
    registry_model *m = api_find_model(call, name);
    if (!m) {
        api_error_set(err, 404, "model", "The model '%s' does not exist", name);
        err->code = "model_not_found";
        return GARLIC_ENOTFOUND;
    }
    garlic_error gerr = {0};
    if (registry_model_acquire(m, &res->load_seconds, &gerr) != GARLIC_OK)
        return api_load_failed(err, name, &gerr);
    const tokenizer *t = registry_model_tokenizer(m);
    uint32_t dim = registry_model_weights(m)->hp.dim;
    embed_inputs in = {0};
    int rc = GARLIC_OK;
    if (ask->dimensions > dim)
        rc = api_error_set(err, 400, "dimensions",
                           "'dimensions' is %u; the model's embeddings have %u values",
                           ask->dimensions, dim);
    if (rc == GARLIC_OK)
        rc = read_inputs(t, ask, &in, err);
    if (rc == GARLIC_OK)
        rc = fit_inputs(t, engine_max_embed_tokens(registry_model_engine(m)), ask, &in, err);
    res->vectors = rc == GARLIC_OK ? garlic_malloc((in.n ? in.n : 1) * dim * sizeof(float)) : NULL;
    if (rc == GARLIC_OK && !res->vectors)
        rc = api_error_set(err, 503, NULL, "out of memory");
    if (rc == GARLIC_OK)
        rc = run_inputs(call, m, &in, res->vectors, dim, err);
    registry_model_release(m, ask->keep_alive);
    res->n = in.n, res->n_tokens = in.n_tokens, res->dim = dim;
    inputs_deinit(&in);
    if (rc == GARLIC_OK && ask->dimensions && ask->dimensions < dim) {
        // Matryoshka: the first values of each vector, at unit length again.
        for (size_t i = 0; i < res->n; i++) {
            memmove(res->vectors + i * ask->dimensions, res->vectors + i * dim,
                    ask->dimensions * sizeof(float));
            model_embed_normalize(res->vectors + i * ask->dimensions, ask->dimensions);
        }
        res->dim = ask->dimensions;
    }
    res->total_seconds = garlic_now() - t0;
    if (call->usage) {
        memset(call->usage, 0, sizeof *call->usage);
        snprintf(call->usage->model, sizeof call->usage->model, "%s", name);
        call->usage->prompt_tokens = res->n_tokens;
    }
    return rc;
}

static cJSON *float_list(const float *v, uint32_t n)
{
    cJSON *list = cJSON_CreateArray();
    for (uint32_t i = 0; list && i < n; i++)
        cJSON_AddItemToArray(list, cJSON_CreateNumber(v[i]));
    return list;
}

char *api_base64_encode(const void *data, size_t len)
{
    static const char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *p = data;
    char *out = garlic_malloc((len + 2) / 3 * 4 + 1), *o = out;
    if (!out)
        return NULL;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < len)
            v |= p[i + 2];
        *o++ = digits[v >> 18 & 63];
        *o++ = digits[v >> 12 & 63];
        *o++ = i + 1 < len ? digits[v >> 6 & 63] : '=';
        *o++ = i + 2 < len ? digits[v & 63] : '=';
    }
    *o = '\0';
    return out;
}

// Parses keep_alive (seconds or a duration) into *out; NAN when absent.
static int read_keep_alive(const cJSON *root, double *out, api_error *err)
{
    const cJSON *ka = cJSON_GetObjectItemCaseSensitive(root, "keep_alive");
    *out = NAN;
    if (!ka || cJSON_IsNull(ka))
        return GARLIC_OK;
    if (cJSON_IsNumber(ka))
        return *out = ka->valuedouble, GARLIC_OK;
    if (cJSON_IsString(ka) && api_parse_duration(ka->valuestring, out))
        return GARLIC_OK;
    return api_error_set(err, 400, "keep_alive",
                         "'keep_alive' must be a number of seconds or a duration such as \"5m\"");
}

// Runs ask on the body's model (unless err is set already) and deletes root. False when it
// failed: out then holds the error (Ollama's shape with ollama) and res is freed.
static bool answered(const api_call *call, cJSON *root, const embed_ask *ask, embed_result *res,
                     api_error *err, bool ollama, api_response *out)
{
    if (!err->status)
        embed_run(call, cJSON_GetObjectItemCaseSensitive(root, "model")->valuestring, ask, res,
                  err);
    cJSON_Delete(root);
    if (!err->status)
        return true;
    garlic_free(res->vectors);
    api_fail(out, err, ollama);
    return false;
}

// The body as an object whose every field is in known, with a string "model".
static cJSON *parse_body(const api_call *call, const char *const *known, api_error *err)
{
    cJSON *root = api_body_object(call, known, err);
    if (!root)
        return NULL;
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsString(name)) {
        api_error_set(err, 400, "model", name ? "'model' must be a string" : "'model' is required");
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

// "dimensions": absent or null (the model's), else an integer from 1.
static int read_dimensions(const cJSON *root, uint32_t *out, api_error *err)
{
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(root, "dimensions");
    *out = 0;
    if (!d || cJSON_IsNull(d))
        return GARLIC_OK;
    if (!cJSON_IsNumber(d) || d->valuedouble < 1 || d->valuedouble > 1 << 20 ||
        d->valuedouble != (double)(uint32_t)d->valuedouble)
        return api_error_set(err, 400, "dimensions", "'dimensions' must be a positive integer");
    *out = (uint32_t)d->valuedouble;
    return GARLIC_OK;
}

void api_openai_embeddings(const api_call *call, api_response *out)
{
    // "user" is accepted and ignored: an end user's id, for OpenAI's abuse monitoring.
    static const char *const known[] = {"model",      "input", "encoding_format",
                                        "dimensions", "user",  NULL};
    api_error err = {0};
    cJSON *root = parse_body(call, known, &err);
    embed_ask ask = {.param = "input", .ids_allowed = true, .keep_alive = NAN};
    bool base64 = false;
    if (root) {
        ask.input = cJSON_GetObjectItemCaseSensitive(root, "input");
        const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(root, "encoding_format");
        const cJSON *user = cJSON_GetObjectItemCaseSensitive(root, "user");
        if (!ask.input)
            api_error_set(&err, 400, "input", "'input' is required");
        else if (fmt && !cJSON_IsNull(fmt) &&
                 (!cJSON_IsString(fmt) ||
                  (strcmp(fmt->valuestring, "float") != 0 &&
                   strcmp(fmt->valuestring, "base64") != 0)))
            api_error_set(&err, 400, "encoding_format",
                          "'encoding_format' must be \"float\" or \"base64\"");
        else if (user && !cJSON_IsNull(user) && !cJSON_IsString(user))
            api_error_set(&err, 400, "user", "'user' must be a string");
        else
            read_dimensions(root, &ask.dimensions, &err);
        base64 = cJSON_IsString(fmt) && strcmp(fmt->valuestring, "base64") == 0;
    }
    embed_result res = {0};
    if (!answered(call, root, &ask, &res, &err, false, out))
        return;
    cJSON *answer = cJSON_CreateObject();
    cJSON_AddStringToObject(answer, "object", "list");
    cJSON *data = cJSON_AddArrayToObject(answer, "data");
    for (size_t i = 0; i < res.n; i++) {
        cJSON *item = cJSON_CreateObject();
        cJSON_AddStringToObject(item, "object", "embedding");
        cJSON_AddNumberToObject(item, "index", (double)i);
        const float *v = res.vectors + i * res.dim;
        if (base64) {
            char *text = api_base64_encode(v, res.dim * sizeof *v);
            cJSON_AddItemToObject(item, "embedding", cJSON_CreateString(text ? text : ""));
            garlic_free(text);
        } else {
            cJSON_AddItemToObject(item, "embedding", float_list(v, res.dim));
        }
        cJSON_AddItemToArray(data, item);
    }
    cJSON_AddStringToObject(answer, "model", res.model);
    cJSON *usage = cJSON_AddObjectToObject(answer, "usage");
    cJSON_AddNumberToObject(usage, "prompt_tokens", res.n_tokens);
    cJSON_AddNumberToObject(usage, "total_tokens", res.n_tokens);
    garlic_free(res.vectors);
    api_respond_json(out, 200, answer);
}

// Ollama's fields both embedding endpoints share: options (checked as generation's are, used
// by none), keep_alive, and truncate (default true).
static int read_ollama_common(const cJSON *root, embed_ask *ask, api_error *err)
{
    int rc = api_options_check(cJSON_GetObjectItemCaseSensitive(root, "options"), err);
    rc = rc ? rc : read_keep_alive(root, &ask->keep_alive, err);
    const cJSON *tr = cJSON_GetObjectItemCaseSensitive(root, "truncate");
    ask->truncate = true;
    if (rc == GARLIC_OK && tr && !cJSON_IsNull(tr)) {
        if (!cJSON_IsBool(tr))
            return api_error_set(err, 400, "truncate", "'truncate' must be a boolean");
        ask->truncate = cJSON_IsTrue(tr);
    }
    return rc ? rc : read_dimensions(root, &ask->dimensions, err);
}

void api_ollama_embed(const api_call *call, api_response *out)
{
    static const char *const known[] = {"model",      "input",      "truncate", "options",
                                        "keep_alive", "dimensions", NULL};
    api_error err = {0};
    cJSON *root = parse_body(call, known, &err);
    embed_ask ask = {.param = "input"};
    if (root && !read_ollama_common(root, &ask, &err)) {
        ask.input = cJSON_GetObjectItemCaseSensitive(root, "input");
        static cJSON empty = {.type = cJSON_Array}; // no input: the model is only loaded
        if (!ask.input || cJSON_IsNull(ask.input))
            ask.input = &empty;
    }
    embed_result res = {0};
    if (!answered(call, root, &ask, &res, &err, true, out))
        return;
    cJSON *answer = cJSON_CreateObject();
    cJSON_AddStringToObject(answer, "model", res.model);
    cJSON *list = cJSON_AddArrayToObject(answer, "embeddings");
    for (size_t i = 0; i < res.n; i++)
        cJSON_AddItemToArray(list, float_list(res.vectors + i * res.dim, res.dim));
    cJSON_AddNumberToObject(answer, "total_duration", round(res.total_seconds * 1e9));
    cJSON_AddNumberToObject(answer, "load_duration", round(res.load_seconds * 1e9));
    cJSON_AddNumberToObject(answer, "prompt_eval_count", res.n_tokens);
    garlic_free(res.vectors);
    api_respond_json(out, 200, answer);
}

void api_ollama_embeddings(const api_call *call, api_response *out)
{
    static const char *const known[] = {"model", "prompt", "options", "keep_alive", NULL};
    api_error err = {0};
    cJSON *root = parse_body(call, known, &err);
    embed_ask ask = {.param = "prompt"};
    if (root && !read_ollama_common(root, &ask, &err)) {
        const cJSON *prompt = cJSON_GetObjectItemCaseSensitive(root, "prompt");
        static cJSON empty = {.type = cJSON_Array}; // no prompt: the model is only loaded
        if (prompt && !cJSON_IsNull(prompt) && !cJSON_IsString(prompt))
            api_error_set(&err, 400, "prompt", "'prompt' must be a string");
        ask.input = cJSON_IsString(prompt) && prompt->valuestring[0] ? prompt : &empty;
    }
    embed_result res = {0};
    if (!answered(call, root, &ask, &res, &err, true, out))
        return;
    cJSON *answer = cJSON_CreateObject();
    cJSON_AddItemToObject(answer, "embedding",
                          res.n ? float_list(res.vectors, res.dim) : cJSON_CreateArray());
    garlic_free(res.vectors);
    api_respond_json(out, 200, answer);
}
