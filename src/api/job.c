// SPDX-License-Identifier: MIT
// The steps every generating endpoint shares: parse the body, find and load the model,
// render the chat template (or the fallback transcript), tokenize, check the context, queue
// the request, and for non-streamed answers gather its output. Also the error and JSON
// response helpers both API flavours use.
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "api/internal.h"
#include "base/alloc.h"
#include "base/buffer.h"
#include "base/clock.h"
#include "base/utf8.h"
#include "chat/chat.h"
#include "dist/dist.h"
#include "engine/engine.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

void api_response_deinit(api_response *r)
{
    garlic_free(r->body);
    api_stream_free(r->stream);
    r->body = NULL, r->stream = NULL, r->len = 0;
}

cJSON *api_body_object(const api_call *call, const char *const *known, api_error *err)
{
    cJSON *root = cJSON_ParseWithLength(call->body, call->len);
    if (!cJSON_IsObject(root) || api_json_check_utf8(root, err) != GARLIC_OK) {
        if (!cJSON_IsObject(root))
            api_error_set(err, 400, NULL,
                          root ? "the body must be a JSON object" : "the body is not valid JSON");
        cJSON_Delete(root);
        return NULL;
    }
    for (const cJSON *e = root->child; known && e; e = e->next) {
        bool ok = false;
        for (size_t i = 0; known[i] && !ok; i++)
            ok = strcmp(known[i], e->string) == 0;
        if (!ok) {
            api_error_set(err, 400, e->string,
                          "'%s' is not a field garlic knows for this endpoint (docs/api.md lists "
                          "them)",
                          e->string);
            cJSON_Delete(root);
            return NULL;
        }
    }
    return root;
}

void api_respond_json(api_response *out, int status, cJSON *root)
{
    char *text = root ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    out->content_type = "application/json";
    if (!text) {
        out->status = 503;
        out->body = garlic_strndup("{\"error\":{\"message\":\"out of memory\",\"type\":"
                                   "\"server_error\",\"param\":null,\"code\":null}}",
                                   SIZE_MAX);
        out->len = out->body ? strlen(out->body) : 0;
        return;
    }
    out->status = status;
    out->body = text;
    out->len = strlen(text);
}

void api_response_error(api_response *r, const api_error *err, bool ollama)
{
    cJSON *root = cJSON_CreateObject();
    if (ollama) {
        cJSON_AddStringToObject(root, "error", err->message);
    } else {
        cJSON *e = cJSON_AddObjectToObject(root, "error");
        cJSON_AddStringToObject(e, "message", err->message);
        cJSON_AddStringToObject(e, "type", err->type ? err->type : "invalid_request_error");
        if (err->param[0])
            cJSON_AddStringToObject(e, "param", err->param);
        else
            cJSON_AddNullToObject(e, "param");
        if (err->code)
            cJSON_AddStringToObject(e, "code", err->code);
        else
            cJSON_AddNullToObject(e, "code");
    }
    api_respond_json(r, err->status, root);
}

void api_fail(api_response *out, const api_error *err, bool ollama)
{
    api_response_error(out, err, ollama);
    if (err->status == 503)
        out->retry_after = 1;
}

const char *api_token_text(const tokenizer *t, int32_t id, char *buf, size_t cap)
{
    size_t len = 0;
    const char *piece = tokenizer_piece(t, id, TOKENIZER_RENDER_SPECIAL, &len);
    utf8_sanitize(piece ? piece : "", len, buf, cap, false);
    return buf;
}

bool api_fault(api_error *err)
{
    char message[400];
    if (!dist_fault(message, sizeof message))
        return false;
    api_error_set(err, 503, NULL, "the distributed job failed, the server is ending: %s", message);
    err->type = "server_error";
    err->code = "distributed_fault";
    return true;
}

void api_health(api_response *out)
{
    api_error fault = {0};
    cJSON *root = cJSON_CreateObject();
    bool failed = api_fault(&fault);
    cJSON_AddStringToObject(root, "status", failed ? "error" : "ok");
    if (failed)
        cJSON_AddStringToObject(root, "error", fault.message);
    api_respond_json(out, failed ? 503 : 200, root);
}

const char api_cut_message[] = "the generation was cut off before it finished: the server is "
                               "shutting down, or the model was unloaded or failed";

const char *api_finish_name(engine_finish f) { return f == ENGINE_FINISH_STOP ? "stop" : "length"; }

// A model's SYSTEM (its Modelfile's) for a request that gives none: generate's system, or a
// first system message of a chat.
static int default_system(api_request *r, const char *system, api_error *err)
{
    if (r->kind == API_KIND_OLLAMA_GENERATE && !r->system) {
        r->system = garlic_strndup(system, SIZE_MAX);
        return r->system ? GARLIC_OK : api_error_set(err, 503, NULL, "out of memory");
    }
    if (!r->messages)
        return GARLIC_OK;
    for (const cJSON *m = r->messages->child; m; m = m->next) {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        if (cJSON_IsString(role) && strcmp(role->valuestring, "system") == 0)
            return GARLIC_OK;
    }
    cJSON *msg = cJSON_CreateObject();
    if (!msg || !cJSON_AddStringToObject(msg, "role", "system") ||
        !cJSON_AddStringToObject(msg, "content", system) ||
        !cJSON_InsertItemInArray(r->messages, 0, msg)) {
        cJSON_Delete(msg);
        return api_error_set(err, 503, NULL, "out of memory");
    }
    return GARLIC_OK;
}

static int api_job_open(const api_call *call, api_kind kind, api_job *job, api_error *err)
{
    memset(job, 0, sizeof *job);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    job->created = (int64_t)ts.tv_sec;
    job->t_start = garlic_now();
    job->usage = call->usage;
    job->keep_prompt = call->keep_prompt;
    snprintf(job->id, sizeof job->id, "%s-%08lx%08lx",
             kind == API_KIND_OPENAI_CHAT ? "chatcmpl" : "cmpl", (unsigned long)ts.tv_sec,
             (unsigned long)ts.tv_nsec ^ (unsigned long)(uintptr_t)job);
    int rc = api_request_parse(kind, call->body, call->len, &job->in, err);
    if (rc)
        return rc;
    job->model = api_find_model(call, job->in.model);
    if (!job->model) {
        api_error_set(err, 404, "model", "The model '%s' does not exist", job->in.model);
        err->code = "model_not_found";
        return GARLIC_ENOTFOUND;
    }
    const registry_extras *x = registry_model_extras(job->model);
    if (x->params_json) { // parsed again over the model's defaults
        registry_model *m = job->model;
        api_request_deinit(&job->in);
        if ((rc = api_request_parse_with(kind, call->body, call->len, x->params_json, &job->in,
                                         err)))
            return rc;
        job->model = m;
    }
    return x->system ? default_system(&job->in, x->system, err) : GARLIC_OK;
}

int api_load_failed(api_error *err, const char *name, const garlic_error *gerr)
{
    if (gerr->code == GARLIC_EFULL) {
        api_error_set(err, 503, "model", "The model '%s' cannot be loaded now: %s", name,
                      gerr->message);
        err->code = "model_busy";
    } else {
        api_error_set(err, 500, "model", "The model '%s' cannot be loaded: %s", name,
                      gerr->message);
        err->code = "model_load_failed";
    }
    return GARLIC_EINVAL;
}

// Loads (or pins) the opened job's model.
static int api_job_load(api_job *job, api_error *err)
{
    garlic_error gerr = {0};
    if (registry_model_acquire(job->model, &job->load_seconds, &gerr) != GARLIC_OK)
        return api_load_failed(err, job->in.model, &gerr);
    job->acquired = true;
    job->tok = registry_model_tokenizer(job->model);
    if (model_embeddings_only(registry_model_weights(job->model)))
        return api_error_set(err, 400, "model",
                             "The model '%s' computes embeddings only and cannot generate text: "
                             "use /v1/embeddings or /api/embed",
                             job->in.model);
    return GARLIC_OK;
}

// Renders messages (NULL: for Ollama's generate, system + prompt) into *text.
static int render(api_job *job, const cJSON *messages, char **text, api_error *err)
{
    cJSON *owned = NULL;
    if (!messages) { // Ollama generate: build the conversation from system and prompt
        cJSON *list = owned = cJSON_CreateArray();
        cJSON *m;
        if (list && job->in.system && (m = cJSON_CreateObject()) && cJSON_AddItemToArray(list, m)) {
            cJSON_AddStringToObject(m, "role", "system");
            cJSON_AddStringToObject(m, "content", job->in.system);
        }
        if (list && (m = cJSON_CreateObject()) && cJSON_AddItemToArray(list, m)) {
            cJSON_AddStringToObject(m, "role", "user");
            cJSON_AddStringToObject(m, "content", job->in.prompt ? job->in.prompt : "");
        }
        if (!list)
            return api_error_set(err, 503, NULL, "out of memory");
        messages = list;
    }
    // think and reasoning_effort reach templates that read them (Qwen3's enable_thinking,
    // gpt-oss's reasoning_effort)
    cJSON *extra = job->in.think >= 0 || job->in.reasoning_effort ? cJSON_CreateObject() : NULL;
    if (extra && job->in.think >= 0)
        cJSON_AddBoolToObject(extra, "enable_thinking", job->in.think == 1);
    if (extra && job->in.reasoning_effort)
        cJSON_AddStringToObject(extra, "reasoning_effort", job->in.reasoning_effort);
    chat_vars vars = {.messages = messages,
                      .tools = job->in.tools,
                      .extra = extra,
                      .add_generation_prompt = true};
    const chat_template *tmpl = registry_model_template(job->model, NULL, NULL, NULL);
    garlic_error gerr = {0};
    size_t len = 0;
    int rc = chat_prompt_render(tmpl, job->tok, &vars, text, &len, &gerr);
    cJSON_Delete(owned);
    cJSON_Delete(extra);
    if (rc)
        return api_error_set(err, rc == GARLIC_ENOMEM ? 503 : 400, "messages",
                             "the chat template failed: %s", gerr.message);
    return GARLIC_OK;
}

// Tokenizes text; templated text may spell special tokens (and often starts with BOS).
static int tokenize(api_job *job, const char *text, bool templated, tokenizer_ids *ids,
                    api_error *err)
{
    garlic_error gerr = {0};
    int rc = chat_prompt_tokenize(job->tok, text, strlen(text), templated, ids, &gerr);
    if (rc == GARLIC_ENOMEM)
        return api_error_set(err, 503, NULL, "out of memory");
    if (rc)
        return api_error_set(err, 400, "prompt", "the prompt cannot be tokenized: %s",
                             gerr.message);
    return GARLIC_OK;
}

int api_job_prompt(api_job *job, const cJSON *messages, tokenizer_ids *ids, api_error *err)
{
    ids->n = 0;
    uint32_t n_vocab = tokenizer_vocab_size(job->tok);
    if (job->in.prompt_ids) {
        for (size_t i = 0; i < job->in.n_prompt_ids; i++)
            if ((uint32_t)job->in.prompt_ids[i] >= n_vocab)
                return api_error_set(err, 400, "prompt",
                                     "token id %d is not below the "
                                     "vocabulary size %u",
                                     job->in.prompt_ids[i], n_vocab);
        ids->ids = garlic_malloc(job->in.n_prompt_ids * sizeof *ids->ids);
        if (!ids->ids)
            return api_error_set(err, 503, NULL, "out of memory");
        memcpy(ids->ids, job->in.prompt_ids, job->in.n_prompt_ids * sizeof *ids->ids);
        ids->n = ids->cap = job->in.n_prompt_ids;
        return GARLIC_OK;
    }
    bool templated = job->in.kind == API_KIND_OPENAI_CHAT || job->in.kind == API_KIND_OLLAMA_CHAT ||
        (job->in.kind == API_KIND_OLLAMA_GENERATE && !job->in.raw);
    if (!templated)
        return tokenize(job, job->in.prompt ? job->in.prompt : "", false, ids, err);
    char *text = NULL;
    int rc = render(job, messages, &text, err);
    if (rc == GARLIC_OK)
        rc = tokenize(job, text, true, ids, err);
    if (rc == GARLIC_OK)
        rc = api_output_plan(job, text, err);
    if (job->keep_prompt) { // the last rendering is the prompt
        garlic_free(job->prompt_text);
        job->prompt_text = text;
    } else {
        garlic_free(text);
    }
    return rc;
}

// Checks the fields that need the model (logit bias ids) and makes the prompt fit the
// context, or refuses it, as the request's API does (api_job_fit).
static int check_fit(api_job *job, tokenizer_ids *ids, api_error *err)
{
    uint32_t n_vocab = tokenizer_vocab_size(job->tok);
    for (size_t i = 0; i < job->in.sampling.n_logit_bias; i++)
        if ((uint32_t)job->in.bias[i].token >= n_vocab)
            return api_error_set(err, 400, "logit_bias",
                                 "'logit_bias': token %d is not below "
                                 "the vocabulary size %u",
                                 job->in.bias[i].token, n_vocab);
    return ids->n < registry_model_n_ctx(job->model) ? GARLIC_OK : api_job_fit(job, ids, err);
}

// The id of text when the vocabulary has it as one token, else -1.
static int32_t single_token(const tokenizer *t, const char *text)
{
    tokenizer_ids ids = {0};
    int32_t id = -1;
    if (tokenizer_encode(t, text, strlen(text), TOKENIZER_PARSE_SPECIAL, &ids, NULL) == GARLIC_OK &&
        ids.n == 1)
        id = ids.ids[0];
    tokenizer_ids_deinit(&ids);
    return id;
}

// reasoning_budget: the model's <think> and </think> tokens, and where the answer starts.
static int reasoning_budget(api_job *job, engine_params *p, api_error *err)
{
    p->think_open = single_token(job->tok, "<think>");
    p->think_close = single_token(job->tok, "</think>");
    if (p->think_close < 0)
        return api_error_set(err, 400, "reasoning_budget",
                             "'reasoning_budget': this model's vocabulary has no </think> token "
                             "to end its reasoning with");
    p->limit_reasoning = true;
    p->reasoning_budget = (uint32_t)job->in.reasoning_budget;
    p->starts_in_reasoning = job->starts_in_reasoning;
    return GARLIC_OK;
}

static int api_job_submit(api_job *job, api_error *err)
{
    tokenizer_ids ids = {0};
    int rc = api_job_prompt(job, job->in.messages, &ids, err);
    if (rc == GARLIC_OK)
        rc = check_fit(job, &ids, err);
    if (rc) {
        tokenizer_ids_deinit(&ids);
        return rc;
    }
    engine_request_params p = {.prompt = ids.ids,
                               .n_prompt = ids.n,
                               .n_choices = job->in.n,
                               .seeded = job->in.seeded,
                               .label = job->id,
                               .wake_at_end = !job->in.stream};
    p.generation.sampling = job->in.sampling;
    p.generation.sampling.n_vocab = (int32_t)tokenizer_vocab_size(job->tok);
    p.generation.max_tokens = job->in.max_tokens;
    p.generation.stops = (const char *const *)job->in.stops;
    p.generation.n_stops = job->in.n_stops;
    p.generation.logprobs = job->in.logprobs;
    p.generation.top_logprobs = job->in.top_logprobs;
    p.generation.render_special = job->render_special; // the parser reads those markers
    p.grammar = job->in.grammar;
    if (rc == GARLIC_OK && job->in.reasoning_budget >= 0)
        rc = reasoning_budget(job, &p.generation, err);
    job->n_prompt = (uint32_t)ids.n;
    garlic_error gerr = {0};
    if (sampler_params_validate(&p.generation.sampling, &gerr) != GARLIC_OK)
        rc = api_error_set(err, 400, NULL, "%s", gerr.message);
    if (rc == GARLIC_OK && !(job->req = engine_request_new(&p, &gerr)))
        rc = api_error_set(err, gerr.code == GARLIC_ENOMEM ? 503 : 400, NULL, "%s", gerr.message);
    if (job->req)
        job->in.grammar = NULL; // the request has it now
    tokenizer_ids_deinit(&ids);
    if (rc)
        return rc;
    job->t_submit = garlic_now();
    rc = registry_submit(job->model, job->req, &gerr);
    if (rc) {
        api_error_set(err, 503, NULL, "%s", gerr.message);
        err->code = rc == GARLIC_EFULL ? "queue_full"
            : rc == GARLIC_EIO         ? "model_failed"
                                       : "shutting_down";
    }
    return rc;
}

// Appends a chunk's text and tokens to its choice.
static int gather(api_choice *ch, const engine_chunk *c)
{
    if (garlic_grow(&ch->text, &ch->cap, ch->len + c->len + 1, 1) ||
        garlic_grow(&ch->tokens, &ch->tokens_cap, ch->n_tokens + c->n_tokens, sizeof *ch->tokens))
        return GARLIC_ENOMEM;
    memcpy(ch->text + ch->len, c->text, c->len);
    ch->len += c->len;
    ch->text[ch->len] = '\0';
    if (c->n_tokens)
        memcpy(ch->tokens + ch->n_tokens, c->tokens, c->n_tokens * sizeof *c->tokens);
    ch->n_tokens += c->n_tokens;
    return GARLIC_OK;
}

static int api_job_collect(api_job *job, const api_call *call, api_result *res, api_error *err)
{
    memset(res, 0, sizeof *res);
    res->n = job->in.n;
    for (;;) {
        if (call->alive && !call->alive(call->alive_ctx)) {
            engine_request_cancel(job->req);
            return api_error_set(err, 400, NULL, "the client went away");
        }
        if (engine_request_cancelled(job->req)) // by the server: a shutdown or an unload
            return api_error_set(err, 503, NULL, "%s", api_cut_message);
        if (api_fault(err)) // (the engine's thread is stuck in a collective: it cannot say)
            return GARLIC_EIO;
        engine_chunk c;
        if (!engine_request_next(job->req, &c, 100))
            continue;
        if (c.error) // out of memory, or the model's file changed on disk: try again
            return api_error_set(err, c.error == GARLIC_ENOMEM || c.error == GARLIC_EIO ? 503 : 500,
                                 NULL, "generation failed: %s", c.error_message);
        api_choice *ch = &res->choices[c.choice];
        if (gather(ch, &c) != GARLIC_OK)
            return api_error_set(err, 503, NULL, "out of memory");
        if (c.choice_done && c.finish == ENGINE_FINISH_CANCEL)
            return api_error_set(err, 503, NULL, "%s", api_cut_message);
        if (c.choice_done) {
            ch->finish = c.finish;
            ch->stats = c.stats;
            ch->output_tokens = c.output_tokens;
            res->completion_tokens += c.output_tokens;
            job->generated += c.output_tokens;
            double first = c.first_token_seconds > 0 ? job->t_submit + c.first_token_seconds : 0;
            if (first > 0 && (job->t_first == 0 || first < job->t_first))
                job->t_first = first;
        }
        if (c.all_done)
            return GARLIC_OK;
    }
}

// Submits an opened job and answers: a stream (the job moves into it) or, once every choice
// ended, the whole answer. Deinitializes the job in every case.
static void api_job_answer(api_job *job, const api_call *call, const api_flavour *f,
                           api_response *out)
{
    api_error err = {0};
    if (api_job_submit(job, &err) != GARLIC_OK) {
        api_fail(out, &err, f->ollama);
        api_job_deinit(job);
        return;
    }
    if (job->in.stream) {
        out->stream = api_stream_new(job, f->stream_ops);
        if (out->stream) {
            out->status = 200;
            out->content_type = f->stream_type;
            return;
        }
        api_error_set(&err, 503, NULL, "out of memory");
        api_fail(out, &err, f->ollama);
        api_job_deinit(job);
        return;
    }
    api_result res;
    if (api_job_collect(job, call, &res, &err) == GARLIC_OK)
        api_respond_json(out, 200, f->whole(job, &res));
    else
        api_fail(out, &err, f->ollama);
    api_result_deinit(&res);
    api_job_deinit(job);
}

// Whether r only loads or unloads its model (Ollama's empty prompt, or chat without messages).
static bool loads_only(const api_request *r)
{
    if (r->kind == API_KIND_OLLAMA_CHAT)
        return !r->messages;
    return r->kind == API_KIND_OLLAMA_GENERATE && (!r->prompt || !r->prompt[0]);
}

void api_generate(const api_call *call, api_kind kind, const api_flavour *f, api_response *out)
{
    api_job job;
    api_error err = {0};
    int rc = api_job_open(call, kind, &job, &err);
    bool only = rc == GARLIC_OK && f->load_only && loads_only(&job.in);
    if (only && job.in.keep_alive == 0) {
        // Ollama's unload: the model is not loaded for it, and goes once nobody uses it.
        registry_model_unload_when_idle(job.model);
        api_respond_json(out, 200, f->load_only(&job, "unload"));
    } else if (rc == GARLIC_OK && (rc = api_job_load(&job, &err)) == GARLIC_OK && only) {
        api_respond_json(out, 200, f->load_only(&job, "load"));
    } else if (rc == GARLIC_OK) {
        api_job_answer(&job, call, f, out); // it deinitializes the job
        return;
    }
    if (rc != GARLIC_OK)
        api_fail(out, &err, f->ollama);
    api_job_deinit(&job);
}

void api_result_deinit(api_result *res)
{
    for (size_t i = 0; i < ENGINE_MAX_CHOICES; i++) {
        garlic_free(res->choices[i].text);
        garlic_free(res->choices[i].tokens);
    }
    memset(res, 0, sizeof *res);
}

void api_job_usage(api_job *job, api_usage *out)
{
    memset(out, 0, sizeof *out);
    snprintf(out->model, sizeof out->model, "%s", job->in.model ? job->in.model : "");
    out->prompt_tokens = job->n_prompt;
    out->generated_tokens = job->generated;
    out->ttft_seconds = job->t_first > 0 ? job->t_first - job->t_start : 0;
    out->prompt = job->prompt_text;
    job->prompt_text = NULL;
}

void api_job_deinit(api_job *job)
{
    if (job->usage)
        api_job_usage(job, job->usage);
    garlic_free(job->prompt_text);
    api_output_deinit(job);
    engine_request_release(job->req);
    if (job->acquired) // after the request: the model stays pinned until it is done
        registry_model_release(job->model, job->in.keep_alive);
    api_request_deinit(&job->in);
    memset(job, 0, sizeof *job);
}
