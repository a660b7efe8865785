// SPDX-License-Identifier: MIT
// The Ollama API: GET /api/version, GET /api/tags, POST /api/show, GET /api/ps,
// POST /api/generate and POST /api/chat. Generation streams NDJSON lines by default
// ("stream": false for one object); the final object carries done_reason and Ollama's
// timing fields in nanoseconds. Errors are Ollama's {"error": "message"}.
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "api/internal.h"
#include "base/alloc.h"
#include "base/buffer.h"
#include "base/clock.h"
#include "base/version.h"
#include "chat/chat.h"
#include "engine/engine.h"
#include "gguf/gguf.h"
#include "hf/hf.h"
#include "model/info.h"
#include "model/model.h"
#include "tensor/types.h"
#include "tokenizer/tokenizer.h"

void api_ollama_version(const api_call *call, api_response *out)
{
    (void)call;
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "version", GARLIC_VERSION);
    api_respond_json(out, 200, root);
}

// "2026-11-25T18:30:54.123456789Z" for a wall-clock time.
static void rfc3339(const struct timespec *ts, char *buf, size_t cap)
{
    struct tm tm;
    gmtime_r(&ts->tv_sec, &tm);
    size_t n = strftime(buf, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, cap - n, ".%09ldZ", ts->tv_nsec);
}

static void add_time(cJSON *o, const char *key, int64_t seconds)
{
    char text[64];
    struct timespec ts = {.tv_sec = (time_t)seconds};
    rfc3339(&ts, text, sizeof text);
    cJSON_AddStringToObject(o, key, text);
}

static void add_now(cJSON *o)
{
    char text[64];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    rfc3339(&ts, text, sizeof text);
    cJSON_AddStringToObject(o, "created_at", text);
}

// The sha256 of a stored model's weights; for a file given with -m, a stable stand-in: a
// hash of the path, size and mtime, as hex.
static void add_digest(cJSON *o, const registry_model *m)
{
    if (registry_model_extras(m)->digest) {
        cJSON_AddStringToObject(o, "digest", registry_model_extras(m)->digest);
        return;
    }
    uint64_t h = 1469598103934665603ull;
    for (const char *p = registry_model_path(m); *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    h ^= registry_model_file_size(m) * 31 + (uint64_t)registry_model_mtime(m);
    char text[40];
    snprintf(text, sizeof text, "%016llx", (unsigned long long)h);
    cJSON_AddStringToObject(o, "digest", text);
}

// The base name of m's file or folder (a stored model's is its blob's "sha256-..."), which
// clients may see; its directory they may not.
static const char *file_name(const registry_model *m)
{
    static _Thread_local char name[256];
    const char *path = registry_model_path(m);
    size_t len;
    size_t start = registry_path_base(path, &len);
    snprintf(name, sizeof name, "%.*s", (int)len, path + start);
    return name;
}

// "1.1B", "25.4M" as Ollama writes parameter sizes.
static void format_params(uint64_t n, char *buf, size_t cap)
{
    if (n >= 1000000000ull)
        snprintf(buf, cap, "%.1fB", (double)n / 1e9);
    else if (n >= 1000000ull)
        snprintf(buf, cap, "%.1fM", (double)n / 1e6);
    else
        snprintf(buf, cap, "%.1fK", (double)n / 1e3);
}

// Reads the file's metadata (a mapping of its own: a loaded model may be unloaded meanwhile).
static bool read_info(registry_model *m, model_info *info)
{
    garlic_error err = {0};
    gguf_file *f = hf_open_model(registry_model_path(m), &(hf_open_options){.meta_only = true},
                                 &err);
    bool ok = f && model_info_read(f, info, &err) == GARLIC_OK;
    gguf_close(f);
    return ok;
}

// Ollama's "details" object: format, family, parameter size, the dominant weight type.
static cJSON *details(const model_info *info, const registry_model *m)
{
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "parent_model", "");
    // a Hugging Face folder is safetensors, as Ollama names models it imports from one
    cJSON_AddStringToObject(d, "format",
                            hf_is_folder(registry_model_path(m)) ? "safetensors" : "gguf");
    cJSON_AddStringToObject(d, "family", info ? info->arch : "");
    cJSON *fam = cJSON_AddArrayToObject(d, "families");
    if (info)
        cJSON_AddItemToArray(fam, cJSON_CreateString(info->arch));
    char size[32] = "";
    size_t best = 0;
    for (size_t t = 0; info && t < TENSOR_TYPE_COUNT; t++)
        if (info->type_params[t] > info->type_params[best])
            best = t;
    if (info)
        format_params(info->n_params, size, sizeof size);
    cJSON_AddStringToObject(d, "parameter_size", size);
    const tensor_type_traits *tt = info ? tensor_type_get((uint32_t)best) : NULL;
    cJSON_AddStringToObject(d, "quantization_level", tt && tt->name ? tt->name : "");
    return d;
}

// One entry of /api/tags or /api/ps.
static cJSON *model_entry(registry_model *m, bool running)
{
    model_info *info = garlic_malloc(sizeof *info);
    bool have = info && read_info(m, info);
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "name", registry_model_name(m));
    cJSON_AddStringToObject(e, "model", registry_model_name(m));
    if (!running)
        add_time(e, "modified_at", registry_model_mtime(m));
    registry_model_ps ps;
    registry_model_ps_get(m, &ps);
    cJSON_AddNumberToObject(e, "size", (double)(running ? ps.bytes : registry_model_file_size(m)));
    add_digest(e, m);
    cJSON_AddItemToObject(e, "details", details(have ? info : NULL, m));
    if (running) {
        // Wall-clock time of the unload: now plus what is left of the keep-alive. In use or
        // kept forever: 2100-01-01, as far as clients are concerned never.
        double left = ps.expires - garlic_now();
        int64_t when = isinf(ps.expires) || left > 2e9
            ? 4102444800
            : (int64_t)time(NULL) + (int64_t)ceil(left > 0 ? left : 0);
        add_time(e, "expires_at", when);
        cJSON_AddNumberToObject(e, "size_vram", (double)ps.device_bytes);
        cJSON_AddNumberToObject(e, "context_length", ps.n_ctx);
        cJSON *g = cJSON_AddObjectToObject(e, "garlic");
        cJSON_AddNumberToObject(g, "kv_cache_bytes", (double)ps.kv_bytes);
        cJSON_AddNumberToObject(g, "kv_cache_window_bytes", (double)ps.kv_window_bytes);
        cJSON_AddNumberToObject(g, "kv_cache_used_bytes", (double)ps.kv_used_bytes);
        cJSON_AddNumberToObject(g, "requests", ps.users);
        cJSON_AddBoolToObject(g, "in_use", ps.users > 0);
        // A model whose file changed on disk: loaded and failing, or unloaded until a
        // request loads it anew.
        cJSON_AddStringToObject(g, "state",
                                ps.failure[0]   ? "failed"
                                    : ps.asleep ? "asleep"
                                                : "loaded");
        cJSON_AddNumberToObject(g, "gpu_layers", ps.device_layers);
        if (ps.failure[0])
            cJSON_AddStringToObject(g, "error", ps.failure);
    }
    garlic_free(info);
    return e;
}

static void list_models(const api_call *call, api_response *out, bool running)
{
    garlic_error gerr = {0};
    if (!running)
        api_store_sync(call->reg, call->store_root, &gerr); // models pulled by another process
    cJSON *root = cJSON_CreateObject();
    cJSON *list = cJSON_AddArrayToObject(root, "models");
    for (size_t i = 0; i < registry_count(call->reg); i++) {
        registry_model *m = registry_model_at(call->reg, i);
        registry_model_ps ps = {0};
        if (m && running)
            registry_model_ps_get(m, &ps);
        if (m && (!running || ps.loaded || ps.failure[0]))
            cJSON_AddItemToArray(list, model_entry(m, running));
    }
    api_respond_json(out, 200, root);
}

void api_ollama_tags(const api_call *call, api_response *out) { list_models(call, out, false); }

void api_ollama_ps(const api_call *call, api_response *out) { list_models(call, out, true); }

// "model_info": the hyper-parameters under GGUF key names, as Ollama shows them.
static cJSON *model_info_object(const model_info *info)
{
    cJSON *o = cJSON_CreateObject();
    char key[128];
    cJSON_AddStringToObject(o, "general.architecture", info->arch);
    cJSON_AddStringToObject(o, "general.name", info->name);
    cJSON_AddNumberToObject(o, "general.parameter_count", (double)info->n_params);
    const struct {
        const char *name;
        uint64_t value;
    } fields[] = {{"context_length", info->context_length},
                  {"embedding_length", info->embedding_length},
                  {"block_count", info->block_count},
                  {"feed_forward_length", info->feed_forward_length},
                  {"attention.head_count", info->head_count},
                  {"attention.head_count_kv", info->head_count_kv}};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        snprintf(key, sizeof key, "%s.%s", info->arch, fields[i].name);
        cJSON_AddNumberToObject(o, key, (double)fields[i].value);
    }
    cJSON_AddStringToObject(o, "tokenizer.ggml.model", info->tokenizer_model);
    cJSON_AddNumberToObject(o, "tokenizer.ggml.vocab_size", (double)info->vocab_size);
    return o;
}

// Parses {"model": NAME} (or Ollama's older "name") and finds the model.
static registry_model *show_target(const api_call *call, api_error *err)
{
    cJSON *root = cJSON_ParseWithLength(call->body, call->len);
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsString(name))
        name = cJSON_GetObjectItemCaseSensitive(root, "name");
    registry_model *m = NULL;
    if (!root)
        api_error_set(err, 400, NULL, "the body is not valid JSON");
    else if (api_json_check_utf8(root, err) != GARLIC_OK)
        m = NULL; // err names the field
    else if (!cJSON_IsString(name))
        api_error_set(err, 400, "model", "'model' is required and must be a string");
    else if (!(m = api_find_model(call, name->valuestring)))
        api_error_set(err, 404, "model", "model '%s' not found", name->valuestring);
    cJSON_Delete(root);
    return m;
}

// Ollama's "parameters" text: a line "name value" per default option of the model (a
// line per stop string, quoted), from its params JSON (NULL: none).
static void params_text(const char *json, garlic_buf *out)
{
    cJSON *d = json ? cJSON_Parse(json) : NULL;
    for (const cJSON *e = d ? d->child : NULL; e; e = e->next) {
        const cJSON *one = cJSON_IsArray(e) ? e->child : e;
        for (; one; one = cJSON_IsArray(e) ? one->next : NULL) {
            char *value = cJSON_PrintUnformatted(one);
            if (value)
                garlic_buf_printf(out, "%-30s %s\n", e->string, value);
            cJSON_free(value);
        }
    }
    if (out->len) // no newline after the last, as Ollama writes it
        out->data[--out->len] = '\0';
    cJSON_Delete(d);
}

void api_ollama_show(const api_call *call, api_response *out)
{
    api_error err = {0};
    registry_model *m = show_target(call, &err);
    double seconds;
    garlic_error gerr = {0};
    bool acquired = false;
    if (m && registry_model_acquire(m, &seconds, &gerr) != GARLIC_OK)
        api_load_failed(&err, registry_model_name(m), &gerr);
    else if (m)
        acquired = true;
    model_info *info = err.status ? NULL : garlic_malloc(sizeof *info);
    if (!err.status && (!info || !read_info(m, info)))
        api_error_set(&err, 503, NULL, "cannot read the model's metadata");
    if (err.status) {
        garlic_free(info);
        if (acquired)
            registry_model_release(m, NAN);
        api_fail(out, &err, true);
        return;
    }
    const char *source = NULL, *template_error = NULL;
    bool from_file = false;
    const chat_template *tmpl = registry_model_template(m, &source, &template_error, &from_file);
    cJSON *root = cJSON_CreateObject();
    const registry_extras *x = registry_model_extras(m);
    garlic_buf params = {0}, modelfile = {0};
    params_text(x->params_json, &params);
    // FROM names the model, not its file: paths on the server are not for clients
    garlic_buf_printf(&modelfile, "# served by garlic\nFROM %s\n", registry_model_name(m));
    if (x->template_text)
        garlic_buf_printf(&modelfile, "TEMPLATE \"\"\"%s\"\"\"\n", x->template_text);
    if (x->system)
        garlic_buf_printf(&modelfile, "SYSTEM \"\"\"%s\"\"\"\n", x->system);
    for (const char *line = params.data; line && *line;) {
        size_t len = strcspn(line, "\n");
        garlic_buf_printf(&modelfile, "PARAMETER %.*s\n", (int)len, line);
        line += len + (line[len] == '\n');
    }
    if (x->license)
        garlic_buf_printf(&modelfile, "LICENSE \"\"\"%s\"\"\"\n", x->license);
    cJSON_AddStringToObject(root, "license", x->license ? x->license : "");
    cJSON_AddStringToObject(root, "modelfile", modelfile.data ? modelfile.data : "");
    cJSON_AddStringToObject(root, "parameters", params.data ? params.data : "");
    if (x->system)
        cJSON_AddStringToObject(root, "system", x->system);
    garlic_buf_deinit(&params);
    garlic_buf_deinit(&modelfile);
    cJSON_AddStringToObject(root, "template", source ? source : "");
    cJSON_AddItemToObject(root, "details", details(info, m));
    cJSON_AddItemToObject(root, "model_info", model_info_object(info));
    // An encoder (or attention that is not causal) embeds only; a file that names a pooling
    // is an embedding model that can also generate; any other model generates (and embeds
    // by its last token, docs/api.md).
    const model_arch *arch = model_arch_find(info->arch);
    bool embed_only = (arch && arch->encoder) || info->causal == 0;
    cJSON *caps = cJSON_AddArrayToObject(root, "capabilities");
    if (!embed_only)
        cJSON_AddItemToArray(caps, cJSON_CreateString("completion"));
    if (embed_only || info->pooling_type > 0)
        cJSON_AddItemToArray(caps, cJSON_CreateString("embedding"));
    add_time(root, "modified_at", registry_model_mtime(m));
    cJSON *g = cJSON_AddObjectToObject(root, "garlic");
    cJSON_AddStringToObject(g, "file", file_name(m));
    cJSON_AddStringToObject(g, "chat_template", !tmpl ? "fallback" : from_file ? "file" : "model");
    cJSON_AddStringToObject(g, "chat_template_error", template_error ? template_error : "");
    cJSON_AddNumberToObject(g, "context_length", registry_model_n_ctx(m));
    garlic_free(info);
    registry_model_release(m, NAN);
    api_respond_json(out, 200, root);
}

// The start of every generate/chat object: model, created_at, the text and done.
static cJSON *line_head(const api_job *job, const char *text, bool done)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model", job->in.model);
    add_now(o);
    if (job->in.kind == API_KIND_OLLAMA_CHAT) {
        cJSON *msg = cJSON_AddObjectToObject(o, "message");
        cJSON_AddStringToObject(msg, "role", "assistant");
        cJSON_AddStringToObject(msg, "content", text);
    } else {
        cJSON_AddStringToObject(o, "response", text);
    }
    cJSON_AddBoolToObject(o, "done", done);
    return o;
}

// Seconds as a whole number of nanoseconds (Ollama's durations are integers).
static double nanoseconds(double seconds) { return floor(seconds * 1e9); }

// The final fields: done_reason and Ollama's timings in nanoseconds.
static void add_final(cJSON *o, const api_job *job, const engine_stats *st, engine_finish finish,
                      uint64_t eval_count)
{
    cJSON_AddStringToObject(o, "done_reason", api_finish_name(finish));
    if (job->in.kind == API_KIND_OLLAMA_GENERATE)
        cJSON_AddArrayToObject(o, "context");
    cJSON_AddNumberToObject(o, "total_duration", nanoseconds(garlic_now() - job->t_start));
    cJSON_AddNumberToObject(o, "load_duration", nanoseconds(job->load_seconds));
    cJSON_AddNumberToObject(o, "prompt_eval_count", job->n_prompt);
    cJSON_AddNumberToObject(o, "prompt_eval_duration", nanoseconds(st->prompt_seconds));
    cJSON_AddNumberToObject(o, "eval_count", (double)eval_count);
    cJSON_AddNumberToObject(o, "eval_duration", nanoseconds(st->generate_seconds));
}

// A tool call as Ollama writes it: {"function": {"index", "name", "arguments": {...}}}, the
// arguments an object (the parser checked they are one).
static cJSON *tool_call(uint32_t index, const char *name, const char *arguments, size_t len)
{
    cJSON *call = cJSON_CreateObject();
    cJSON *fn = cJSON_AddObjectToObject(call, "function");
    cJSON_AddNumberToObject(fn, "index", index);
    cJSON_AddStringToObject(fn, "name", name);
    cJSON *args = cJSON_ParseWithLength(arguments, len);
    cJSON_AddItemToObject(fn, "arguments", args ? args : cJSON_CreateObject());
    return call;
}

// Puts text[0..len) into a line as its answer (chat: message.content; generate: response),
// or (thinking) as message.thinking / thinking.
static void put_text(const api_job *job, cJSON *line, const char *key_chat, const char *key_gen,
                     const char *text, size_t len)
{
    char *copy = garlic_strndup(text ? text : "", text ? len : 0);
    bool chat = job->in.kind == API_KIND_OLLAMA_CHAT;
    cJSON *obj = chat ? cJSON_GetObjectItemCaseSensitive(line, "message") : line;
    const char *key = chat ? key_chat : key_gen;
    cJSON *value = cJSON_CreateString(copy ? copy : "");
    if (cJSON_GetObjectItemCaseSensitive(obj, key))
        cJSON_ReplaceItemInObjectCaseSensitive(obj, key, value);
    else
        cJSON_AddItemToObject(obj, key, value);
    garlic_free(copy);
}

// A line per parser event: content, thinking, and each tool call once it is whole.
static int write_events(api_stream *s, const chat_output_event *ev, size_t n)
{
    int rc = GARLIC_OK;
    for (size_t i = 0; i < n && rc == GARLIC_OK; i++) {
        if (ev[i].kind == CHAT_OUTPUT_EVENT_CALL_BEGIN) {
            snprintf(s->call_name, sizeof s->call_name, "%s", ev[i].name);
            garlic_buf_clear(&s->call_args);
            continue;
        }
        if (ev[i].kind == CHAT_OUTPUT_EVENT_CALL_ARGUMENTS) {
            if (garlic_buf_append(&s->call_args, ev[i].text, ev[i].len))
                return GARLIC_ENOMEM;
            continue;
        }
        cJSON *line = line_head(&s->job, "", false);
        if (ev[i].kind == CHAT_OUTPUT_EVENT_CONTENT)
            put_text(&s->job, line, "content", "response", ev[i].text, ev[i].len);
        else if (ev[i].kind == CHAT_OUTPUT_EVENT_REASONING)
            put_text(&s->job, line, "thinking", "thinking", ev[i].text, ev[i].len);
        else {
            cJSON *msg = cJSON_GetObjectItemCaseSensitive(line, "message");
            cJSON_AddItemToArray(
                cJSON_AddArrayToObject(msg, "tool_calls"),
                tool_call(ev[i].index, s->call_name, s->call_args.data, s->call_args.len));
        }
        rc = api_stream_write_json(s, "", line, "\n");
    }
    return rc;
}

static int stream_chunk(api_stream *s, const engine_chunk *c)
{
    if (s->job.parse_output) {
        const chat_output_event *ev;
        size_t n;
        int rc = GARLIC_OK;
        if (c->len &&
            (rc = api_output_feed(&s->job, c->choice, c->text, c->len, &ev, &n)) == GARLIC_OK)
            rc = write_events(s, ev, n);
        if (rc == GARLIC_OK && c->choice_done &&
            (rc = api_output_finish(&s->job, c->choice, &ev, &n)) == GARLIC_OK)
            rc = write_events(s, ev, n);
        return rc;
    }
    if (c->len == 0)
        return GARLIC_OK;
    char *text = garlic_strndup(c->text, c->len);
    if (!text)
        return GARLIC_ENOMEM;
    int rc = api_stream_write_json(s, "", line_head(&s->job, text, false), "\n");
    garlic_free(text);
    return rc;
}

static int stream_end(api_stream *s)
{
    cJSON *o = line_head(&s->job, "", true);
    add_final(o, &s->job, &s->last_stats, s->last_finish, s->completion_tokens);
    return api_stream_write_json(s, "", o, "\n");
}

// An error line as Ollama's clients read it ({"error": "..."}: they raise it).
static int stream_fail(api_stream *s, const char *message, const char *code)
{
    (void)code; // (Ollama's errors are a message alone)
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "error", message);
    return api_stream_write_json(s, "", root, "\n");
}

static const api_stream_ops ollama_stream_ops = {
    .chunk = stream_chunk, .end = stream_end, .fail = stream_fail};

// The whole answer: one object with the text and the final statistics.
static cJSON *whole_answer(const api_job *job, const api_result *res)
{
    const api_choice *c = &res->choices[0];
    chat_output_result r = {0};
    garlic_error err = {0};
    if (job->parse_output &&
        chat_output_parse(&job->output, c->text ? c->text : "", c->len, &r, &err) == GARLIC_OK) {
        cJSON *o = line_head(job, r.content, true);
        if (r.reasoning_len)
            put_text(job, o, "thinking", "thinking", r.reasoning, r.reasoning_len);
        cJSON *msg = cJSON_GetObjectItemCaseSensitive(o, "message");
        cJSON *calls = msg && r.n_calls ? cJSON_AddArrayToObject(msg, "tool_calls") : NULL;
        for (size_t i = 0; calls && i < r.n_calls; i++)
            cJSON_AddItemToArray(calls,
                                 tool_call((uint32_t)i, r.calls[i].name, r.calls[i].arguments,
                                           strlen(r.calls[i].arguments)));
        chat_output_result_deinit(&r);
        add_final(o, job, &c->stats, c->finish, res->completion_tokens);
        return o;
    }
    cJSON *o = line_head(job, c->text ? c->text : "", true);
    add_final(o, job, &c->stats, c->finish, res->completion_tokens);
    return o;
}

// The answer to an empty prompt (or no messages): the model was loaded, or (keep_alive 0)
// unloaded, as in Ollama.
static cJSON *load_only(const api_job *job, const char *done_reason)
{
    cJSON *o = line_head(job, "", true);
    cJSON_AddStringToObject(o, "done_reason", done_reason);
    return o;
}

const api_flavour api_ollama_flavour = {.stream_ops = &ollama_stream_ops,
                                        .stream_type = "application/x-ndjson",
                                        .ollama = true,
                                        .whole = whole_answer,
                                        .load_only = load_only};

void api_ollama_generate(const api_call *call, api_response *out)
{
    api_generate(call, API_KIND_OLLAMA_GENERATE, &api_ollama_flavour, out);
}

void api_ollama_chat(const api_call *call, api_response *out)
{
    api_generate(call, API_KIND_OLLAMA_CHAT, &api_ollama_flavour, out);
}
