// SPDX-License-Identifier: MIT
// Model management over HTTP, on the model store (store/): the store's models are kept in the
// registry (api_store_sync: at the start, on a listing, and when a request names a model the
// registry does not know), POST /api/pull and /api/create stream Ollama's status lines from a
// task (task.c), DELETE /api/delete and POST /api/copy answer at once, and
// GET /v1/models/{id} describes one model. Errors on /api/* are Ollama's {"error": "..."}.
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/internal.h"
#include "base/alloc.h"
#include "chat/chat.h"
#include "store/store.h"

// ---- the store's models in the registry ----

static pthread_mutex_t sync_mu = PTHREAD_MUTEX_INITIALIZER;

// Puts one stored model into the registry under its short name ("qwen3:8b").
static void sync_one(registry *reg, const char *root, const store_manifest *m)
{
    char full[STORE_PATH_MAX], shown[STORE_PATH_MAX], path[STORE_PATH_MAX];
    store_name_format(&m->name, full, sizeof full);
    store_name_display(&m->name, shown, sizeof shown);
    garlic_error err = {0};
    store_extras x = {0};
    if (store_resolve(full, path, sizeof path, &err) == GARLIC_OK &&
        store_extras_read(root, m, &x, &err) == GARLIC_OK) {
        registry_extras re = {.template_text = x.template_text,
                              .system = x.system,
                              .params_json = x.params_json,
                              .license = x.license,
                              .digest = m->n_files ? m->files[0].digest : NULL,
                              .store_name = full};
        registry_put(reg, path, shown, &re, &err);
    }
    if (err.code && err.code != GARLIC_EINVAL) // EINVAL: a -m model of that name wins
        fprintf(stderr, "garlic: stored model %s is not served: %s\n", shown, err.message);
    store_extras_deinit(&x);
}

int api_store_sync(registry *reg, const char *root, garlic_error *err)
{
    if (!root)
        return GARLIC_OK;
    pthread_mutex_lock(&sync_mu);
    store_manifest *list = NULL;
    size_t n = 0;
    int rc = store_list(root, &list, &n, err);
    for (size_t i = 0; rc == GARLIC_OK && i < n; i++)
        sync_one(reg, root, &list[i]);
    // Store models that are gone from the store leave the registry.
    for (size_t i = 0; rc == GARLIC_OK && i < registry_count(reg); i++) {
        registry_model *m = registry_model_at(reg, i);
        const char *stored = m ? registry_model_extras(m)->store_name : NULL;
        bool present = false;
        for (size_t k = 0; stored && k < n && !present; k++) {
            char full[STORE_PATH_MAX];
            store_name_format(&list[k].name, full, sizeof full);
            present = strcmp(full, stored) == 0;
        }
        if (stored && !present)
            registry_remove(reg, registry_model_name(m), err);
    }
    garlic_free(list);
    pthread_mutex_unlock(&sync_mu);
    return rc;
}

// The registry's name for a model name as a client writes it: itself, or its store form
// ("qwen3" is "qwen3:latest", "registry.ollama.ai/library/qwen3:8b" is "qwen3:8b").
static registry_model *find_named(registry *reg, const char *name)
{
    registry_model *m = registry_find(reg, name);
    store_name n;
    garlic_error err;
    if (!m && store_name_parse(name, &n, &err) == GARLIC_OK) {
        char shown[STORE_PATH_MAX];
        store_name_display(&n, shown, sizeof shown);
        m = registry_find(reg, shown);
    }
    return m;
}

registry_model *api_find_model(const api_call *call, const char *name)
{
    registry_model *m = find_named(call->reg, name);
    garlic_error err = {0};
    if (!m && call->store_root && api_store_sync(call->reg, call->store_root, &err) == GARLIC_OK)
        m = find_named(call->reg, name); // pulled or created since the last look
    return m;
}

// ---- bodies ----

// A string member (absent or null: NULL; another type: err set, *bad).
static const char *string_field(const cJSON *root, const char *key, bool *bad, api_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v || cJSON_IsNull(v))
        return NULL;
    if (!cJSON_IsString(v)) {
        api_error_set(err, 400, key, "'%s' must be a string", key);
        *bad = true;
        return NULL;
    }
    return v->valuestring;
}

// "model", or the older "name" Ollama still accepts.
static const char *model_field(const cJSON *root, const char *key, bool *bad, api_error *err)
{
    const char *name = string_field(root, key, bad, err);
    if (!name && !*bad)
        name = string_field(root, "name", bad, err);
    if (!name && !*bad) {
        api_error_set(err, 400, key, "'%s' is required", key);
        *bad = true;
    }
    return name;
}

static bool bool_field(const cJSON *root, const char *key, bool fallback, bool *bad, api_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v || cJSON_IsNull(v))
        return fallback;
    if (!cJSON_IsBool(v)) {
        api_error_set(err, 400, key, "'%s' must be a boolean", key);
        *bad = true;
    }
    return cJSON_IsTrue(v);
}

// The HTTP status of a store error.
static int store_status(int code)
{
    switch (code) {
    case GARLIC_ENOTFOUND: return 404;
    case GARLIC_EINVAL:
    case GARLIC_EFORMAT:
    case GARLIC_EUNSUPPORTED: return 400;
    case GARLIC_ESTOPPED: return 499;
    default: return 500;
    }
}

static void respond_status(api_response *out, const char *status)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "status", status);
    api_respond_json(out, 200, root);
}

static bool need_store(const api_call *call, api_response *out)
{
    if (call->store_root)
        return true;
    api_error err = {0};
    api_error_set(&err, 400, NULL,
                  "this server has no model store (it was started with --no-store)");
    api_fail(out, &err, true);
    return false;
}

// ---- tasks: pull and create ----

// Answers with the task's lines as a stream, or (no stream) with its last line once it ends.
static void answer_task(const api_call *call, api_task *t, bool stream, api_response *out)
{
    if (!t) {
        api_error err = {0};
        api_error_set(&err, 503, NULL, "cannot start the work (out of memory or threads)");
        api_fail(out, &err, true);
        return;
    }
    if (stream) {
        out->status = 200;
        out->content_type = "application/x-ndjson";
        out->stream = api_stream_of_task(t);
        if (out->stream) {
            out->stream->sync_reg = call->reg;
            out->stream->sync_root = call->store_root;
        }
        if (!out->stream) {
            api_error err = {0};
            api_error_set(&err, 503, NULL, "out of memory");
            api_fail(out, &err, true);
        }
        return;
    }
    char *last = NULL;
    int status = api_task_wait(t, call->alive, call->alive_ctx, &last);
    api_task_release(t);
    garlic_error gerr = {0};
    if (status == 200) // the model made or replaced is served from now on
        api_store_sync(call->reg, call->store_root, &gerr);
    out->status = status ? status : 499;
    out->content_type = "application/json";
    if (status == 200) { // the last word, once the model is served
        garlic_free(last);
        last = garlic_strndup("{\"status\":\"success\"}", SIZE_MAX);
    } else if (!last) {
        last = garlic_strndup("{\"error\":\"the work ended without a word\"}", SIZE_MAX);
    }
    out->body = last;
    out->len = out->body ? strlen(out->body) : 0;
}

// Takes the store root out of a store error's paths ("blobs/sha256-…: cannot write"): where
// the store lies is not for clients.
static void hide_root(const char *root, garlic_error *err)
{
    size_t n = strlen(root);
    while (n > 1 && root[n - 1] == '/')
        n--;
    char *at;
    while (n > 1 && (at = memmem(err->message, strlen(err->message), root, n))) {
        size_t skip = n + (at[n] == '/');
        memmove(at, at + skip, strlen(at + skip) + 1);
    }
}

// Emits {"error": message} (hide_root'ed) and returns the status for code.
static int task_fail(api_task *t, const char *root, garlic_error *err)
{
    hide_root(root, err);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "error", err->message);
    api_task_emit(t, o);
    return store_status(err->code);
}

typedef struct pull_work {
    char root[STORE_PATH_MAX];
    char name[STORE_PATH_MAX];
    bool insecure;
} pull_work;

static bool pull_event(void *ctx, const store_pull_event *e)
{
    api_task *t = ctx;
    if (!strcmp(e->status, "success")) // said by the reader once the model is served
        return !api_task_cancelled(t);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", e->status);
    if (e->digest) {
        cJSON_AddStringToObject(o, "digest", e->digest);
        cJSON_AddNumberToObject(o, "total", (double)e->total);
        cJSON_AddNumberToObject(o, "completed", (double)e->completed);
    }
    api_task_emit(t, o);
    return !api_task_cancelled(t);
}

static int pull_main(api_task *t, void *arg)
{
    const pull_work *w = arg;
    store_pull_options o;
    store_pull_options_default(&o);
    o.progress = NULL;
    o.insecure = w->insecure;
    o.on_event = pull_event;
    o.event_ctx = t;
    garlic_error err = {0};
    if (store_pull(w->root, w->name, &o, &err) != GARLIC_OK)
        return task_fail(t, w->root, &err);
    return 200;
}

void api_ollama_pull(const api_call *call, api_response *out)
{
    static const char *const known[] = {"model", "name", "insecure", "stream", NULL};
    if (!need_store(call, out))
        return;
    api_error err = {0};
    bool bad = false;
    cJSON *root = api_body_object(call, known, &err);
    const char *name = NULL;
    bool insecure = false, stream = true;
    if (!root)
        bad = true;
    else {
        name = model_field(root, "model", &bad, &err);
        insecure = bool_field(root, "insecure", false, &bad, &err);
        stream = bool_field(root, "stream", true, &bad, &err);
    }
    store_name parsed;
    garlic_error gerr = {0};
    if (!bad && store_name_parse(name, &parsed, &gerr) != GARLIC_OK)
        bad = api_error_set(&err, 400, "model", "%s", gerr.message) != 0;
    pull_work *w = bad ? NULL : garlic_calloc(1, sizeof *w);
    if (!bad && !w)
        bad = api_error_set(&err, 503, NULL, "out of memory") != 0;
    if (bad || !w) {
        cJSON_Delete(root);
        api_fail(out, &err, true);
        return;
    }
    snprintf(w->root, sizeof w->root, "%s", call->store_root);
    snprintf(w->name, sizeof w->name, "%s", name);
    w->insecure = insecure;
    cJSON_Delete(root);
    answer_task(call, api_task_start(pull_main, w, garlic_free), stream, out);
}

typedef struct create_work {
    char root[STORE_PATH_MAX];
    char *name, *from, *template_text, *system, *params_json, *license;
} create_work;

static void create_work_free(void *arg)
{
    create_work *w = arg;
    if (!w)
        return;
    garlic_free(w->name);
    garlic_free(w->from);
    garlic_free(w->template_text);
    garlic_free(w->system);
    garlic_free(w->params_json);
    garlic_free(w->license);
    garlic_free(w);
}

static int create_main(api_task *t, void *arg)
{
    const create_work *w = arg;
    char line[STORE_PATH_MAX + 64];
    snprintf(line, sizeof line, "creating %s from %s", w->name, w->from);
    api_task_emit_status(t, line);
    store_create_request r = {.name = w->name,
                              .from = w->from,
                              .template_text = w->template_text,
                              .system = w->system,
                              .params_json = w->params_json,
                              .license = w->license};
    garlic_error err = {0};
    if (store_create(w->root, &r, NULL, &err) != GARLIC_OK)
        return task_fail(t, w->root, &err);
    return 200; // "success" comes from the reader, once the model is served
}

// A copy of a string member into *out (absent: left NULL).
static int copy_string(const cJSON *root, const char *key, char **out, api_error *err)
{
    bool bad = false;
    const char *v = string_field(root, key, &bad, err);
    if (bad)
        return GARLIC_EINVAL;
    if (v && !(*out = garlic_strndup(v, SIZE_MAX)))
        return api_error_set(err, 503, NULL, "out of memory");
    return GARLIC_OK;
}

// The older body: the Modelfile's text in "modelfile" (FROM paths relative to the server's
// working directory).
static int take_modelfile(const char *text, create_work *w, api_error *err)
{
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd))
        snprintf(cwd, sizeof cwd, ".");
    store_modelfile mf = {0};
    garlic_error gerr = {0};
    if (store_modelfile_parse(text, strlen(text), cwd, &mf, &gerr) != GARLIC_OK) {
        store_modelfile_deinit(&mf);
        return api_error_set(err, 400, "modelfile", "modelfile: %s", gerr.message);
    }
    // Fields given beside the Modelfile win over its lines.
#define TAKE(field)                                                                                \
    if (!w->field)                                                                                 \
        w->field = mf.field, mf.field = NULL;
    TAKE(from)
    TAKE(template_text)
    TAKE(system)
    TAKE(params_json)
    TAKE(license)
#undef TAKE
    store_modelfile_deinit(&mf);
    return GARLIC_OK;
}

// "license": a string or a list of strings (joined by blank lines).
static int take_license(const cJSON *root, create_work *w, api_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "license");
    if (!v || cJSON_IsNull(v))
        return GARLIC_OK;
    if (cJSON_IsString(v))
        return copy_string(root, "license", &w->license, err);
    if (!cJSON_IsArray(v))
        return api_error_set(err, 400, "license", "'license' must be a string or a list of them");
    garlic_buf b = {0};
    for (const cJSON *e = v->child; e; e = e->next) {
        if (!cJSON_IsString(e)) {
            garlic_buf_deinit(&b);
            return api_error_set(err, 400, "license",
                                 "'license' must be a string or a list of them");
        }
        garlic_buf_printf(&b, "%s%s", b.len ? "\n\n" : "", e->valuestring);
    }
    w->license = garlic_buf_take(&b);
    return w->license ? GARLIC_OK : api_error_set(err, 503, NULL, "out of memory");
}

// Fills w from the body of /api/create.
static int read_create(const cJSON *root, create_work *w, bool *stream, api_error *err)
{
    // Ollama's fields garlic does not do (api_body_object refused any other unknown one)
    static const char *const refused[] = {"files", "adapters", "messages", "quantize",
                                          "quantization"};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
        if (cJSON_GetObjectItemCaseSensitive(root, refused[i]))
            return api_error_set(err, 400, refused[i],
                                 "'%s' is not supported by garlic's /api/create (give 'from': a "
                                 "stored model or a GGUF file or model folder on the server)",
                                 refused[i]);
    int rc = GARLIC_OK;
    bool bad = false;
    const char *name = model_field(root, "model", &bad, err);
    if (bad)
        return GARLIC_EINVAL;
    *stream = bool_field(root, "stream", true, &bad, err);
    if (bad || !(w->name = garlic_strndup(name, SIZE_MAX)))
        return bad ? GARLIC_EINVAL : api_error_set(err, 503, NULL, "out of memory");
    if ((rc = copy_string(root, "from", &w->from, err)) ||
        (rc = copy_string(root, "template", &w->template_text, err)) ||
        (rc = copy_string(root, "system", &w->system, err)) || (rc = take_license(root, w, err)))
        return rc;
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(root, "parameters");
    if (params && !cJSON_IsNull(params)) {
        if (!cJSON_IsObject(params))
            return api_error_set(err, 400, "parameters", "'parameters' must be an object");
        if (!(w->params_json = cJSON_PrintUnformatted(params)))
            return api_error_set(err, 503, NULL, "out of memory");
    }
    char *modelfile = NULL;
    if ((rc = copy_string(root, "modelfile", &modelfile, err)))
        return rc;
    if (modelfile)
        rc = take_modelfile(modelfile, w, err);
    garlic_free(modelfile);
    if (rc)
        return rc;
    if (!w->from)
        return api_error_set(err, 400, "from",
                             "'from' is required: a stored model, or a GGUF file or model folder "
                             "on the server");
    garlic_error gerr = {0};
    struct stat st;
    store_name from;
    if (store_is_path(w->from) && stat(w->from, &st) != 0)
        return api_error_set(err, 400, "from", "'from': %s: %s", w->from, strerror(errno));
    if (!store_is_path(w->from) && store_name_parse(w->from, &from, &gerr) != GARLIC_OK)
        return api_error_set(err, 400, "from", "'from': %s", gerr.message);
    if (!store_is_path(w->from)) {
        store_manifest *m = garlic_malloc(sizeof *m);
        rc = m ? store_manifest_read(w->root, &from, m, &gerr) : GARLIC_ENOMEM;
        garlic_free(m);
        if (rc == GARLIC_ENOTFOUND)
            return api_error_set(err, 404, "from", "model '%s' not found", w->from);
        if (rc)
            return api_error_set(err, 500, "from", "%s", gerr.message);
    }
    if (w->params_json && store_params_check(w->params_json, &gerr) != GARLIC_OK)
        return api_error_set(err, 400, "parameters", "%s", gerr.message);
    if (w->template_text) { // garlic reads Jinja chat templates, not Ollama's Go templates
        chat_template *tmpl = chat_template_parse(w->template_text, strlen(w->template_text),
                                                  "template", &gerr);
        if (!tmpl)
            return api_error_set(err, 400, "template",
                                 "'template' must be a Jinja chat template (as in a model's "
                                 "tokenizer_config.json): %s",
                                 gerr.message);
        chat_template_free(tmpl);
    }
    return GARLIC_OK;
}

void api_ollama_create(const api_call *call, api_response *out)
{
    if (!need_store(call, out))
        return;
    api_error err = {0};
    static const char *const known[] = {"model",     "name",         "from",     "template",
                                        "system",    "parameters",   "license",  "stream",
                                        "modelfile", "files",        "adapters", "messages",
                                        "quantize",  "quantization", NULL};
    cJSON *root = api_body_object(call, known, &err);
    create_work *w = root ? garlic_calloc(1, sizeof *w) : NULL;
    if (root && !w)
        api_error_set(&err, 503, NULL, "out of memory");
    bool stream = true;
    if (w)
        snprintf(w->root, sizeof w->root, "%s", call->store_root);
    if (!w || read_create(root, w, &stream, &err) != GARLIC_OK) {
        cJSON_Delete(root);
        create_work_free(w);
        api_fail(out, &err, true);
        return;
    }
    cJSON_Delete(root);
    answer_task(call, api_task_start(create_main, w, create_work_free), stream, out);
}

// ---- delete and copy ----

// Whether name is served from a file rather than the store: then err says so.
static bool served_from_file(const api_call *call, const char *name, api_error *err)
{
    registry_model *m = find_named(call->reg, name);
    if (!m || registry_model_extras(m)->store_name)
        return false;
    api_error_set(err, 400, "model",
                  "model '%s' is served from a file given to garlic serve, not from the model "
                  "store; it cannot be deleted or copied",
                  name);
    return true;
}

// err for a store operation on name that failed (gerr): Ollama's "model 'x' not found" when it
// is not stored. Returns true.
static bool store_failed(const api_call *call, api_error *err, garlic_error *gerr,
                         const char *param, const char *name)
{
    hide_root(call->store_root, gerr);
    if (gerr->code == GARLIC_ENOTFOUND)
        api_error_set(err, 404, param, "model '%s' not found", name);
    else
        api_error_set(err, store_status(gerr->code), param, "%s", gerr->message);
    return true;
}

// Answers a change of the store: the error, or success once the registry follows the store.
static void changed(const api_call *call, const api_error *err, api_response *out)
{
    garlic_error gerr = {0};
    if (err) {
        api_fail(out, err, true);
        return;
    }
    api_store_sync(call->reg, call->store_root, &gerr);
    respond_status(out, "success");
}

void api_ollama_delete(const api_call *call, api_response *out)
{
    static const char *const known[] = {"model", "name", NULL};
    if (!need_store(call, out))
        return;
    api_error err = {0};
    bool bad = false;
    cJSON *root = api_body_object(call, known, &err);
    const char *name = NULL;
    if (!root)
        bad = true;
    else
        name = model_field(root, "model", &bad, &err);
    garlic_error gerr = {0};
    if (!bad && served_from_file(call, name, &err))
        bad = true;
    if (!bad && store_remove(call->store_root, name, &gerr) != GARLIC_OK)
        bad = store_failed(call, &err, &gerr, "model", name);
    cJSON_Delete(root);
    changed(call, bad ? &err : NULL, out);
}

void api_ollama_copy(const api_call *call, api_response *out)
{
    static const char *const known[] = {"source", "destination", NULL};
    if (!need_store(call, out))
        return;
    api_error err = {0};
    bool bad = false;
    cJSON *root = api_body_object(call, known, &err);
    const char *src = NULL, *dst = NULL;
    if (!root)
        bad = true;
    else {
        src = model_field(root, "source", &bad, &err);
        if (!bad)
            dst = model_field(root, "destination", &bad, &err);
    }
    garlic_error gerr = {0};
    if (!bad && served_from_file(call, src, &err))
        bad = true;
    if (!bad && store_copy(call->store_root, src, dst, &gerr) != GARLIC_OK)
        bad = store_failed(call, &err, &gerr, "source", src);
    cJSON_Delete(root);
    changed(call, bad ? &err : NULL, out);
}

// ---- OpenAI ----

void api_openai_model(const api_call *call, api_response *out)
{
    registry_model *m = api_find_model(call, call->path_arg ? call->path_arg : "");
    if (!m) {
        api_error err = {0};
        api_error_set(&err, 404, "model", "The model '%s' does not exist",
                      call->path_arg ? call->path_arg : "");
        err.code = "model_not_found";
        api_fail(out, &err, false);
        return;
    }
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "id", registry_model_name(m));
    cJSON_AddStringToObject(e, "object", "model");
    cJSON_AddNumberToObject(e, "created", (double)registry_model_mtime(m));
    cJSON_AddStringToObject(e, "owned_by", "garlic");
    api_respond_json(out, 200, e);
}
