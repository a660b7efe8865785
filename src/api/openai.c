// SPDX-License-Identifier: MIT
// The OpenAI API: GET /v1/models, POST /v1/chat/completions and POST /v1/completions, as whole
// JSON answers or as Server-Sent Events ending with "data: [DONE]". Bodies follow OpenAI's
// shapes (chat.completion, chat.completion.chunk, text_completion) with usage, finish_reason
// and logprobs; errors use {"error": {"message", "type", "param", "code"}}.
#include <math.h>
#include <string.h>

#include "api/internal.h"
#include "base/alloc.h"
#include "base/version.h"
#include "engine/engine.h"
#include "tokenizer/tokenizer.h"

void api_openai_models(const api_call *call, api_response *out)
{
    garlic_error gerr = {0};
    api_store_sync(call->reg, call->store_root, &gerr); // models pulled by another process
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "object", "list");
    cJSON *data = cJSON_AddArrayToObject(root, "data");
    for (size_t i = 0; i < registry_count(call->reg); i++) {
        registry_model *m = registry_model_at(call->reg, i);
        if (!m)
            continue;
        cJSON *e = cJSON_CreateObject();
        cJSON_AddItemToArray(data, e);
        cJSON_AddStringToObject(e, "id", registry_model_name(m));
        cJSON_AddStringToObject(e, "object", "model");
        cJSON_AddNumberToObject(e, "created", (double)registry_model_mtime(m));
        cJSON_AddStringToObject(e, "owned_by", "garlic");
    }
    api_respond_json(out, 200, root);
}

// A log-probability as JSON: a number, or a very negative one for -inf (JSON has no inf).
static double json_logprob(float lp) { return isfinite(lp) ? lp : -9999.0; }

// {"token", "logprob", "bytes"} for chat logprobs.
static cJSON *chat_token(const tokenizer *t, const sampler_token_logprob *tl)
{
    char text[1024];
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "token", api_token_text(t, tl->token, text, sizeof text));
    cJSON_AddNumberToObject(o, "logprob", json_logprob(tl->logprob));
    size_t len = 0;
    const char *piece = tokenizer_piece(t, tl->token, TOKENIZER_RENDER_SPECIAL, &len);
    cJSON *bytes = cJSON_AddArrayToObject(o, "bytes");
    for (size_t i = 0; piece && i < len; i++)
        cJSON_AddItemToArray(bytes, cJSON_CreateNumber((unsigned char)piece[i]));
    return o;
}

// Chat logprobs: {"content": [{token, logprob, bytes, top_logprobs: [...]}, ...]}.
static cJSON *chat_logprobs(const tokenizer *t, const engine_token *tokens, size_t n)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *content = cJSON_AddArrayToObject(root, "content");
    for (size_t i = 0; i < n; i++) {
        cJSON *o = chat_token(t, &tokens[i].lp.chosen);
        cJSON *top = cJSON_AddArrayToObject(o, "top_logprobs");
        for (size_t k = 0; k < tokens[i].lp.n_top; k++)
            cJSON_AddItemToArray(top, chat_token(t, &tokens[i].lp.top[k]));
        cJSON_AddItemToArray(content, o);
    }
    return root;
}

// Completions logprobs: {"tokens", "token_logprobs", "top_logprobs", "text_offset"}.
static cJSON *completion_logprobs(const tokenizer *t, const engine_token *tokens, size_t n,
                                  size_t offset)
{
    char text[1024];
    cJSON *root = cJSON_CreateObject();
    cJSON *toks = cJSON_AddArrayToObject(root, "tokens");
    cJSON *lps = cJSON_AddArrayToObject(root, "token_logprobs");
    cJSON *tops = cJSON_AddArrayToObject(root, "top_logprobs");
    cJSON *offs = cJSON_AddArrayToObject(root, "text_offset");
    for (size_t i = 0; i < n; i++) {
        const sampler_logprobs *lp = &tokens[i].lp;
        api_token_text(t, lp->chosen.token, text, sizeof text);
        cJSON_AddItemToArray(toks, cJSON_CreateString(text));
        cJSON_AddItemToArray(lps, cJSON_CreateNumber(json_logprob(lp->chosen.logprob)));
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)offset));
        size_t len = 0;
        tokenizer_piece(t, lp->chosen.token, TOKENIZER_RENDER_SPECIAL, &len);
        offset += len;
        cJSON *top = cJSON_CreateObject();
        for (size_t k = 0; k < lp->n_top; k++)
            cJSON_AddNumberToObject(top, api_token_text(t, lp->top[k].token, text, sizeof text),
                                    json_logprob(lp->top[k].logprob));
        cJSON_AddItemToArray(tops, top);
    }
    return root;
}

static cJSON *usage_object(uint32_t prompt, uint64_t completion)
{
    cJSON *u = cJSON_CreateObject();
    cJSON_AddNumberToObject(u, "prompt_tokens", prompt);
    cJSON_AddNumberToObject(u, "completion_tokens", (double)completion);
    cJSON_AddNumberToObject(u, "total_tokens", (double)(prompt + completion));
    return u;
}

// The fields every OpenAI answer and chunk starts with.
static cJSON *answer_head(const api_job *job, const char *object)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "id", job->id);
    cJSON_AddStringToObject(root, "object", object);
    cJSON_AddNumberToObject(root, "created", (double)job->created);
    cJSON_AddStringToObject(root, "model", job->in.model);
    cJSON_AddStringToObject(root, "system_fingerprint", "garlic-" GARLIC_VERSION);
    return root;
}

// A whole chat message read through the parser: content (null when the answer is only tool
// calls), reasoning_content, tool_calls. Returns whether it made a call.
static bool whole_message(const api_job *job, const api_choice *ch, cJSON *msg)
{
    chat_output_result r = {0};
    garlic_error err = {0};
    if (chat_output_parse(&job->output, ch->text ? ch->text : "", ch->len, &r, &err) !=
        GARLIC_OK) { // out of memory: the text as it is
        cJSON_AddStringToObject(msg, "content", ch->text ? ch->text : "");
        return false;
    }
    if (r.content_len || !r.n_calls)
        cJSON_AddStringToObject(msg, "content", r.content);
    else
        cJSON_AddNullToObject(msg, "content");
    if (r.reasoning_len)
        cJSON_AddStringToObject(msg, "reasoning_content", r.reasoning);
    cJSON *calls = r.n_calls ? cJSON_AddArrayToObject(msg, "tool_calls") : NULL;
    for (size_t i = 0; i < r.n_calls; i++) {
        cJSON *call = cJSON_CreateObject();
        cJSON_AddItemToArray(calls, call);
        cJSON_AddStringToObject(call, "id", r.calls[i].id);
        cJSON_AddStringToObject(call, "type", "function");
        cJSON *fn = cJSON_AddObjectToObject(call, "function");
        cJSON_AddStringToObject(fn, "name", r.calls[i].name);
        cJSON_AddStringToObject(fn, "arguments", r.calls[i].arguments);
    }
    bool called = r.n_calls > 0;
    chat_output_result_deinit(&r);
    return called;
}

// The whole answer of a non-streamed request.
static cJSON *whole_answer(const api_job *job, const api_result *res)
{
    bool chat = job->in.kind == API_KIND_OPENAI_CHAT;
    cJSON *root = answer_head(job, chat ? "chat.completion" : "text_completion");
    cJSON *choices = cJSON_AddArrayToObject(root, "choices");
    for (uint32_t i = 0; i < res->n; i++) {
        const api_choice *ch = &res->choices[i];
        cJSON *c = cJSON_CreateObject();
        cJSON_AddItemToArray(choices, c);
        cJSON_AddNumberToObject(c, "index", i);
        const char *finish = api_finish_name(ch->finish);
        if (chat && job->parse_output) {
            cJSON *msg = cJSON_AddObjectToObject(c, "message");
            cJSON_AddStringToObject(msg, "role", "assistant");
            if (whole_message(job, ch, msg))
                finish = "tool_calls";
        } else if (chat) {
            cJSON *msg = cJSON_AddObjectToObject(c, "message");
            cJSON_AddStringToObject(msg, "role", "assistant");
            cJSON_AddStringToObject(msg, "content", ch->text ? ch->text : "");
        } else {
            cJSON_AddStringToObject(c, "text", ch->text ? ch->text : "");
        }
        if (!job->in.logprobs)
            cJSON_AddNullToObject(c, "logprobs");
        else if (chat)
            cJSON_AddItemToObject(c, "logprobs", chat_logprobs(job->tok, ch->tokens, ch->n_tokens));
        else
            cJSON_AddItemToObject(c, "logprobs",
                                  completion_logprobs(job->tok, ch->tokens, ch->n_tokens, 0));
        cJSON_AddStringToObject(c, "finish_reason", finish);
    }
    cJSON_AddItemToObject(root, "usage", usage_object(job->n_prompt, res->completion_tokens));
    return root;
}

// A streamed chunk of choice index, without its logprobs and finish_reason (chunk_send adds
// them): *ch gets the choice object.
static cJSON *chunk_begin(const api_job *job, uint32_t index, cJSON **ch)
{
    bool chat = job->in.kind == API_KIND_OPENAI_CHAT;
    cJSON *root = answer_head(job, chat ? "chat.completion.chunk" : "text_completion");
    cJSON *choices = cJSON_AddArrayToObject(root, "choices");
    *ch = cJSON_CreateObject();
    cJSON_AddItemToArray(choices, *ch);
    cJSON_AddNumberToObject(*ch, "index", index);
    return root;
}

// Adds logprobs (of c's tokens, when asked for) and the finish reason (NULL: none), and writes.
static int chunk_send(api_stream *s, cJSON *root, cJSON *ch, const engine_chunk *c,
                      const char *finish)
{
    const api_job *job = &s->job;
    bool chat = job->in.kind == API_KIND_OPENAI_CHAT;
    if (c && c->n_tokens && job->in.logprobs)
        cJSON_AddItemToObject(ch, "logprobs",
                              chat ? chat_logprobs(job->tok, c->tokens, c->n_tokens)
                                   : completion_logprobs(job->tok, c->tokens, c->n_tokens, 0));
    else
        cJSON_AddNullToObject(ch, "logprobs");
    if (finish)
        cJSON_AddStringToObject(ch, "finish_reason", finish);
    else
        cJSON_AddNullToObject(ch, "finish_reason");
    if (job->in.include_usage)
        cJSON_AddNullToObject(root, "usage");
    return api_stream_write_json(s, "data: ", root, "\n\n");
}

// Adds text[0..len) to obj under key (a copy, NUL-terminated).
static void add_text(cJSON *obj, const char *key, const char *text, size_t len)
{
    char *copy = garlic_strndup(text ? text : "", text ? len : 0);
    cJSON_AddStringToObject(obj, key, copy ? copy : "");
    garlic_free(copy);
}

// One streamed chunk of choice index: text (may be NULL), logprobs, finish (NULL: none).
static int write_chunk(api_stream *s, uint32_t index, const char *text, size_t len,
                       const engine_chunk *c, const char *finish, bool role)
{
    cJSON *ch;
    cJSON *root = chunk_begin(&s->job, index, &ch);
    if (s->job.in.kind == API_KIND_OPENAI_CHAT) {
        cJSON *delta = cJSON_AddObjectToObject(ch, "delta");
        if (role)
            cJSON_AddStringToObject(delta, "role", "assistant");
        if (text)
            add_text(delta, "content", text, len);
    } else {
        add_text(ch, "text", text, len);
    }
    return chunk_send(s, root, ch, c, finish);
}

// One chunk per parser event: content and reasoning_content deltas, and a tool call as
// OpenAI streams it (index, id, type and name first, then fragments of its arguments). c's
// logprobs go with the first chunk (or an empty delta when there is no event).
static int write_events(api_stream *s, uint32_t index, const chat_output_event *ev, size_t n,
                        const engine_chunk *c)
{
    int rc = GARLIC_OK;
    bool logprobs_sent = !(c && c->n_tokens && s->job.in.logprobs);
    for (size_t i = 0; i < n && rc == GARLIC_OK; i++) {
        if (ev[i].kind == CHAT_OUTPUT_EVENT_CALL_END)
            continue;
        cJSON *ch;
        cJSON *root = chunk_begin(&s->job, index, &ch);
        cJSON *delta = cJSON_AddObjectToObject(ch, "delta");
        if (ev[i].kind == CHAT_OUTPUT_EVENT_CONTENT)
            add_text(delta, "content", ev[i].text, ev[i].len);
        else if (ev[i].kind == CHAT_OUTPUT_EVENT_REASONING)
            add_text(delta, "reasoning_content", ev[i].text, ev[i].len);
        else {
            cJSON *call = cJSON_CreateObject();
            cJSON_AddItemToArray(cJSON_AddArrayToObject(delta, "tool_calls"), call);
            cJSON_AddNumberToObject(call, "index", ev[i].index);
            if (ev[i].kind == CHAT_OUTPUT_EVENT_CALL_BEGIN) {
                cJSON_AddStringToObject(call, "id", ev[i].id);
                cJSON_AddStringToObject(call, "type", "function");
            }
            cJSON *fn = cJSON_AddObjectToObject(call, "function");
            if (ev[i].kind == CHAT_OUTPUT_EVENT_CALL_BEGIN) {
                cJSON_AddStringToObject(fn, "name", ev[i].name);
                cJSON_AddStringToObject(fn, "arguments", "");
            } else {
                add_text(fn, "arguments", ev[i].text, ev[i].len);
            }
        }
        rc = chunk_send(s, root, ch, logprobs_sent ? NULL : c, NULL);
        logprobs_sent = true;
    }
    if (rc == GARLIC_OK && !logprobs_sent)
        rc = write_chunk(s, index, NULL, 0, c, NULL, false);
    return rc;
}

static int stream_chunk(api_stream *s, const engine_chunk *c)
{
    bool chat = s->job.in.kind == API_KIND_OPENAI_CHAT;
    int rc = GARLIC_OK;
    if (chat && !s->started[c->choice])
        rc = write_chunk(s, c->choice, "", 0, NULL, NULL, true);
    s->started[c->choice] = true;
    if (chat && s->job.parse_output) {
        const chat_output_event *ev;
        size_t n;
        if (rc == GARLIC_OK && (c->len || c->n_tokens) &&
            (rc = api_output_feed(&s->job, c->choice, c->text, c->len, &ev, &n)) == GARLIC_OK)
            rc = write_events(s, c->choice, ev, n, c);
        if (rc == GARLIC_OK && c->choice_done &&
            (rc = api_output_finish(&s->job, c->choice, &ev, &n)) == GARLIC_OK)
            rc = write_events(s, c->choice, ev, n, NULL);
        if (rc == GARLIC_OK && c->choice_done)
            rc = write_chunk(s, c->choice, NULL, 0, NULL,
                             api_output_called(&s->job, c->choice) ? "tool_calls"
                                                                   : api_finish_name(c->finish),
                             false);
        return rc;
    }
    if (rc == GARLIC_OK && (c->len || c->n_tokens))
        rc = write_chunk(s, c->choice, c->text, c->len, c, NULL, false);
    if (rc == GARLIC_OK && c->choice_done)
        rc = write_chunk(s, c->choice, NULL, 0, NULL, api_finish_name(c->finish), false);
    return rc;
}

static int stream_end(api_stream *s)
{
    const api_job *job = &s->job;
    if (job->in.include_usage) {
        bool chat = job->in.kind == API_KIND_OPENAI_CHAT;
        cJSON *root = answer_head(job, chat ? "chat.completion.chunk" : "text_completion");
        cJSON_AddArrayToObject(root, "choices");
        cJSON_AddItemToObject(root, "usage", usage_object(job->n_prompt, s->completion_tokens));
        int rc = api_stream_write_json(s, "data: ", root, "\n\n");
        if (rc)
            return rc;
    }
    static const char done[] = "data: [DONE]\n\n";
    return api_stream_write(s, done, sizeof done - 1);
}

// An error event as OpenAI's SDKs read it (a data line whose object has "error"), then
// [DONE] for clients that wait for it.
static int stream_fail(api_stream *s, const char *message, const char *code)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *e = cJSON_AddObjectToObject(root, "error");
    cJSON_AddStringToObject(e, "message", message);
    cJSON_AddStringToObject(e, "type", "server_error");
    cJSON_AddStringToObject(e, "code", code);
    int rc = api_stream_write_json(s, "data: ", root, "\n\n");
    static const char done[] = "data: [DONE]\n\n";
    return rc ? rc : api_stream_write(s, done, sizeof done - 1);
}

static const api_stream_ops openai_stream_ops = {
    .chunk = stream_chunk, .end = stream_end, .fail = stream_fail};

const api_flavour api_openai_flavour = {
    .stream_ops = &openai_stream_ops, .stream_type = "text/event-stream", .whole = whole_answer};

void api_openai_chat(const api_call *call, api_response *out)
{
    api_generate(call, API_KIND_OPENAI_CHAT, &api_openai_flavour, out);
}

void api_openai_completions(const api_call *call, api_response *out)
{
    api_generate(call, API_KIND_OPENAI_COMPLETION, &api_openai_flavour, out);
}
