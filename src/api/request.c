// SPDX-License-Identifier: MIT
// Request bodies -> api_request: the pure parsing step of every generating endpoint, shared
// by the OpenAI and Ollama adapters and fuzzed by fuzz/fuzz_request.c. Unknown fields are
// ignored and null counts as absent; a field of the wrong type or out of range is a 400 that
// names it ("'temperature' must be a number"). Chat messages are flattened to
// {"role", "content": text, ...} objects, the shape chat templates expect.
#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "base/alloc.h"
#include "base/utf8.h"
#include "engine/engine.h"
#include "sampler/grammar.h"

int api_error_set(api_error *err, int status, const char *param, const char *fmt, ...)
{
    err->status = status;
    err->type = status == 401 ? "authentication_error"
        : status == 404       ? "not_found_error"
        : status >= 500       ? "server_error"
                              : "invalid_request_error";
    err->code = NULL;
    snprintf(err->param, sizeof err->param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return GARLIC_EINVAL;
}

// The member key of obj, or NULL when it is absent or null.
static const cJSON *field(const cJSON *obj, const char *key)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    return item && !cJSON_IsNull(item) ? item : NULL;
}

// Where a field sits, for messages: "options.temperature".
static const char *param_name(const char *prefix, const char *key, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s%s", prefix, key);
    return buf;
}

// A number in [lo, hi] (an integer when integral is set); *present says whether it was there.
static int get_number(const cJSON *obj, const char *prefix, const char *key, double lo, double hi,
                      bool integral, double *out, bool *present, api_error *err)
{
    char name[64];
    const cJSON *item = field(obj, key);
    *present = item != NULL;
    if (!item)
        return GARLIC_OK;
    param_name(prefix, key, name, sizeof name);
    if (!cJSON_IsNumber(item))
        return api_error_set(err, 400, name, "'%s' must be %s", name,
                             integral ? "an integer" : "a number");
    double v = item->valuedouble;
    if (integral && v != floor(v))
        return api_error_set(err, 400, name, "'%s' must be an integer, not %g", name, v);
    if (!(v >= lo && v <= hi))
        return api_error_set(err, 400, name, "'%s' is %g, must be from %g to %g", name, v, lo, hi);
    *out = v;
    return GARLIC_OK;
}

static int get_bool(const cJSON *obj, const char *prefix, const char *key, bool *out,
                    api_error *err)
{
    char name[64];
    const cJSON *item = field(obj, key);
    if (!item)
        return GARLIC_OK;
    if (!cJSON_IsBool(item))
        return api_error_set(err, 400, param_name(prefix, key, name, sizeof name),
                             "'%s' must be a boolean", name);
    *out = cJSON_IsTrue(item);
    return GARLIC_OK;
}

// A string member copied to *out (left alone when absent). GARLIC_ENOMEM without memory.
static int get_string(const cJSON *obj, const char *key, char **out, api_error *err)
{
    const cJSON *item = field(obj, key);
    if (!item)
        return GARLIC_OK;
    if (!cJSON_IsString(item))
        return api_error_set(err, 400, key, "'%s' must be a string", key);
    *out = garlic_strndup(item->valuestring, SIZE_MAX);
    return *out ? GARLIC_OK : GARLIC_ENOMEM;
}

// "stop": a string or a list of strings; empty strings are skipped.
static int get_stops(const cJSON *obj, const char *prefix, api_request *r, api_error *err)
{
    char name[64];
    const cJSON *item = field(obj, "stop");
    if (!item)
        return GARLIC_OK;
    param_name(prefix, "stop", name, sizeof name);
    for (size_t i = 0; i < r->n_stops; i++) // the request's stops replace the model's
        garlic_free(r->stops[i]);
    r->n_stops = 0;
    if (!cJSON_IsString(item) && !cJSON_IsArray(item))
        return api_error_set(err, 400, name, "'%s' must be a string or a list of strings", name);
    const cJSON *one = cJSON_IsString(item) ? item : item->child;
    for (; one; one = cJSON_IsString(item) ? NULL : one->next) {
        if (!cJSON_IsString(one))
            return api_error_set(err, 400, name, "'%s' must be a string or a list of strings",
                                 name);
        size_t len = strlen(one->valuestring);
        if (len == 0)
            continue;
        if (len > SAMPLER_STOP_MAX_LENGTH || r->n_stops == SAMPLER_STOP_MAX_STRINGS)
            return api_error_set(err, 400, name,
                                 "'%s' allows at most %d strings of at most %d "
                                 "bytes",
                                 name, SAMPLER_STOP_MAX_STRINGS, SAMPLER_STOP_MAX_LENGTH);
        r->stops[r->n_stops] = garlic_strndup(one->valuestring, len);
        if (!r->stops[r->n_stops++])
            return GARLIC_ENOMEM;
    }
    return GARLIC_OK;
}

// "logit_bias": {"token id": bias in [-100, 100]}.
static int get_logit_bias(const cJSON *obj, api_request *r, api_error *err)
{
    const cJSON *item = field(obj, "logit_bias");
    if (!item)
        return GARLIC_OK;
    if (!cJSON_IsObject(item))
        return api_error_set(err, 400, "logit_bias",
                             "'logit_bias' must be an object mapping "
                             "token ids to numbers");
    size_t n = (size_t)cJSON_GetArraySize(item);
    r->bias = garlic_calloc(n ? n : 1, sizeof *r->bias);
    if (!r->bias)
        return GARLIC_ENOMEM;
    for (const cJSON *e = item->child; e; e = e->next) {
        char *end;
        long id = strtol(e->string, &end, 10);
        if (!*e->string || *end || id < 0 || id > INT32_MAX)
            return api_error_set(err, 400, "logit_bias",
                                 "'logit_bias': '%.40s' is not a token "
                                 "id",
                                 e->string);
        if (!cJSON_IsNumber(e) || !(e->valuedouble >= -100 && e->valuedouble <= 100))
            return api_error_set(err, 400, "logit_bias",
                                 "'logit_bias': the bias of token %ld "
                                 "must be a number from -100 to 100",
                                 id);
        float bias = e->valuedouble <= -100 ? -INFINITY : (float)e->valuedouble;
        r->bias[r->sampling.n_logit_bias++] = (sampler_bias){.token = (int32_t)id, .bias = bias};
    }
    r->sampling.logit_bias = r->bias;
    return GARLIC_OK;
}

// The sampling fields OpenAI and Ollama share (at the top level for OpenAI, in "options"
// for Ollama, where prefix is "options.").
static int get_sampling(const cJSON *obj, const char *prefix, api_request *r, api_error *err)
{
    sampler_params *sp = &r->sampling;
    double v;
    bool has;
    int rc;
    if ((rc = get_number(obj, prefix, "temperature", 0, 100, false, &v, &has, err)))
        return rc;
    if (has)
        sp->temperature = (float)v;
    if ((rc = get_number(obj, prefix, "top_p", 0, 1, false, &v, &has, err)))
        return rc;
    if (has && v == 0)
        sp->top_k = 1; // only the most likely token has any mass
    else if (has)
        sp->top_p = (float)v;
    if ((rc = get_number(obj, prefix, "top_k", 0, INT32_MAX, true, &v, &has, err)))
        return rc;
    if (has)
        sp->top_k = (int32_t)v;
    if ((rc = get_number(obj, prefix, "min_p", 0, 1, false, &v, &has, err)))
        return rc;
    if (has)
        sp->min_p = (float)v;
    if ((rc = get_number(obj, prefix, "repeat_penalty", 0.0001, 100, false, &v, &has, err)))
        return rc;
    if (has)
        sp->repeat_penalty = (float)v;
    if ((rc = get_number(obj, prefix, "repeat_last_n", -1, SAMPLER_MAX_REPEAT_LAST_N, true, &v,
                         &has, err)))
        return rc;
    if (has)
        sp->repeat_last_n = v < 0 ? SAMPLER_MAX_REPEAT_LAST_N : (int32_t)v;
    if ((rc = get_number(obj, prefix, "presence_penalty", -2, 2, false, &v, &has, err)))
        return rc;
    if (has)
        sp->presence_penalty = (float)v;
    if ((rc = get_number(obj, prefix, "frequency_penalty", -2, 2, false, &v, &has, err)))
        return rc;
    if (has)
        sp->frequency_penalty = (float)v;
    if ((rc = get_number(obj, prefix, "seed", -9.3e18, 1.8e19, true, &v, &has, err)))
        return rc;
    if (has && v >= 0) { // Ollama's -1 asks for a random seed
        sp->seed = (uint64_t)v;
        r->seeded = true;
    }
    return get_stops(obj, prefix, r, err);
}

// The text of a message's content: a string, or the "text" parts of a list joined.
static int content_text(const cJSON *content, size_t index, cJSON *msg, api_error *err)
{
    if (!content)
        return cJSON_AddStringToObject(msg, "content", "") ? GARLIC_OK : GARLIC_ENOMEM;
    if (cJSON_IsString(content))
        return cJSON_AddStringToObject(msg, "content", content->valuestring) ? GARLIC_OK
                                                                             : GARLIC_ENOMEM;
    if (!cJSON_IsArray(content))
        return api_error_set(err, 400, "messages",
                             "'messages[%zu].content' must be a string or "
                             "a list of parts",
                             index);
    size_t len = 0;
    for (const cJSON *p = content->child; p; p = p->next) {
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(p, "text");
        if (cJSON_IsString(text))
            len += strlen(text->valuestring);
    }
    char *joined = garlic_malloc(len + 1);
    if (!joined)
        return GARLIC_ENOMEM;
    len = 0;
    for (const cJSON *p = content->child; p; p = p->next) {
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(p, "text");
        if (!cJSON_IsString(text))
            continue;
        size_t n = strlen(text->valuestring);
        memcpy(joined + len, text->valuestring, n);
        len += n;
    }
    joined[len] = '\0';
    bool ok = cJSON_AddStringToObject(msg, "content", joined) != NULL;
    garlic_free(joined);
    return ok ? GARLIC_OK : GARLIC_ENOMEM;
}

// One message, normalized: role, flattened content, and every other member copied.
static int normalize_message(const cJSON *in, size_t index, cJSON *list, api_error *err)
{
    const cJSON *role = cJSON_GetObjectItemCaseSensitive(in, "role");
    if (!cJSON_IsObject(in) || !cJSON_IsString(role))
        return api_error_set(err, 400, "messages",
                             "'messages[%zu]' must be an object with a "
                             "string 'role'",
                             index);
    cJSON *msg = cJSON_CreateObject();
    if (!msg || !cJSON_AddItemToArray(list, msg))
        return cJSON_Delete(msg), GARLIC_ENOMEM;
    if (!cJSON_AddStringToObject(msg, "role", role->valuestring))
        return GARLIC_ENOMEM;
    int rc = content_text(field(in, "content"), index, msg, err);
    for (const cJSON *e = in->child; rc == GARLIC_OK && e; e = e->next) {
        if (!e->string || !strcmp(e->string, "role") || !strcmp(e->string, "content") ||
            !strcmp(e->string, "images"))
            continue;
        cJSON *copy = cJSON_Duplicate(e, true);
        if (!copy || !cJSON_AddItemToObject(msg, e->string, copy))
            rc = (cJSON_Delete(copy), GARLIC_ENOMEM);
    }
    return rc;
}

// "messages" -> r->messages (normalized); an empty list is allowed only when allow_empty is
// set.
static int get_messages(const cJSON *obj, bool allow_empty, api_request *r, api_error *err)
{
    const cJSON *item = field(obj, "messages");
    if (!item && allow_empty)
        return GARLIC_OK;
    if (!item)
        return api_error_set(err, 400, "messages", "'messages' is required");
    if (!cJSON_IsArray(item))
        return api_error_set(err, 400, "messages", "'messages' must be a list of messages");
    if (!item->child && !allow_empty)
        return api_error_set(err, 400, "messages", "'messages' must not be empty");
    if (!item->child)
        return GARLIC_OK;
    cJSON *list = cJSON_CreateArray();
    if (!list)
        return GARLIC_ENOMEM;
    int rc = GARLIC_OK;
    size_t i = 0;
    for (const cJSON *m = item->child; m && rc == GARLIC_OK; m = m->next)
        rc = normalize_message(m, i++, list, err);
    if (rc == GARLIC_OK)
        r->messages = list;
    else
        cJSON_Delete(list);
    return rc;
}

// OpenAI's tool_choice ("auto", "none", "required", {"type": "function", "function":
// {"name"}}), parallel_tool_calls and reasoning_effort.
static int get_tool_choice(const cJSON *obj, api_request *r, api_error *err)
{
    const cJSON *tc = field(obj, "tool_choice");
    const cJSON *fn = cJSON_GetObjectItemCaseSensitive(tc, "function");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(fn, "name");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(tc, "type");
    if (cJSON_IsObject(tc)) {
        if (!cJSON_IsString(type) || strcmp(type->valuestring, "function") || !cJSON_IsString(name))
            return api_error_set(err, 400, "tool_choice",
                                 "'tool_choice' must be \"auto\", \"none\", \"required\" or "
                                 "{\"type\": \"function\", \"function\": {\"name\": ...}}");
        r->tool_choice_required = true;
        r->tool_choice_name = garlic_strndup(name->valuestring, SIZE_MAX);
        if (!r->tool_choice_name)
            return GARLIC_ENOMEM;
    } else if (tc) {
        if (!cJSON_IsString(tc) ||
            (strcmp(tc->valuestring, "auto") && strcmp(tc->valuestring, "none") &&
             strcmp(tc->valuestring, "required")))
            return api_error_set(err, 400, "tool_choice",
                                 "'tool_choice' must be \"auto\", \"none\", \"required\" or "
                                 "{\"type\": \"function\", \"function\": {\"name\": ...}}");
        r->tool_choice_none = !strcmp(tc->valuestring, "none");
        r->tool_choice_required = !strcmp(tc->valuestring, "required");
    }
    if (r->tool_choice_required && !r->tools)
        return api_error_set(err, 400, "tool_choice",
                             "'tool_choice' asks for a call but 'tools' offers none");
    if (r->tool_choice_required && r->grammar)
        return api_error_set(err, 400, "tool_choice",
                             "'tool_choice' that asks for a call cannot be combined with "
                             "'response_format' or 'grammar'");
    bool parallel = true;
    int rc = get_bool(obj, "", "parallel_tool_calls", &parallel, err);
    r->no_parallel_calls = !parallel;
    const cJSON *effort = field(obj, "reasoning_effort");
    if (rc == GARLIC_OK && effort &&
        !(cJSON_IsString(effort) &&
          (!strcmp(effort->valuestring, "low") || !strcmp(effort->valuestring, "medium") ||
           !strcmp(effort->valuestring, "high"))))
        return api_error_set(err, 400, "reasoning_effort",
                             "'reasoning_effort' must be \"low\", \"medium\" or \"high\"");
    if (rc == GARLIC_OK && effort)
        rc = get_string(obj, "reasoning_effort", &r->reasoning_effort, err);
    return rc;
}

// "reasoning_budget" (a garlic extension): tokens a reasoning block may take.
static int get_budget(const cJSON *obj, api_request *r, api_error *err)
{
    double v;
    bool has;
    int rc = get_number(obj, "", "reasoning_budget", 0, 1 << 24, true, &v, &has, err);
    r->reasoning_budget = has ? (int64_t)v : -1;
    return rc;
}

// Ollama's think: a boolean, or "low", "medium", "high" (gpt-oss's effort; thinking on).
static int get_think(const cJSON *obj, api_request *r, api_error *err)
{
    const cJSON *t = field(obj, "think");
    r->think = -1;
    if (!t)
        return GARLIC_OK;
    if (cJSON_IsBool(t)) {
        r->think = cJSON_IsTrue(t);
        return GARLIC_OK;
    }
    if (cJSON_IsString(t) &&
        (!strcmp(t->valuestring, "low") || !strcmp(t->valuestring, "medium") ||
         !strcmp(t->valuestring, "high"))) {
        r->think = 1;
        return get_string(obj, "think", &r->reasoning_effort, err);
    }
    return api_error_set(err, 400, "think",
                         "'think' must be a boolean or \"low\", \"medium\" or \"high\"");
}

// A grammar compiled from what the request gave; a failure is the client's 400, naming the
// field (and for a schema the keyword and its path).
static int compiled(grammar *g, const char *param, const garlic_error *gerr, api_request *r,
                    api_error *err)
{
    if (!g)
        return gerr->code == GARLIC_ENOMEM
            ? GARLIC_ENOMEM
            : api_error_set(err, 400, param, "'%s': %s", param, gerr->message);
    r->grammar = g;
    return GARLIC_OK;
}

// The output's constraint: OpenAI's response_format ({"type": "text" | "json_object" |
// "json_schema", "json_schema": {"name", "schema", "strict", "description"}}), Ollama's
// format ("json" or a schema), or a GBNF grammar (a garlic extension, as llama-server's).
static int get_constraint(const cJSON *root, api_request *r, api_error *err)
{
    const cJSON *rf = field(root, "response_format"), *fmt = field(root, "format");
    const cJSON *gbnf = field(root, "grammar");
    garlic_error gerr = {0};
    if ((rf != NULL) + (fmt && !(cJSON_IsString(fmt) && !fmt->valuestring[0])) + (gbnf != NULL) > 1)
        return api_error_set(err, 400, gbnf ? "grammar" : "response_format",
                             "give one of 'response_format', 'format' and 'grammar'");
    if (gbnf) {
        if (!cJSON_IsString(gbnf))
            return api_error_set(err, 400, "grammar", "'grammar' must be a string (GBNF)");
        return compiled(grammar_new(gbnf->valuestring, strlen(gbnf->valuestring), &gerr), "grammar",
                        &gerr, r, err);
    }
    if (fmt) { // Ollama
        if (cJSON_IsString(fmt) && !fmt->valuestring[0])
            return GARLIC_OK;
        if (cJSON_IsString(fmt) && !strcmp(fmt->valuestring, "json"))
            return compiled(grammar_json_any(true, &gerr), "format", &gerr, r, err);
        if (!cJSON_IsObject(fmt))
            return api_error_set(err, 400, "format",
                                 "'format' must be \"json\" or a JSON schema object");
        return compiled(grammar_from_json_schema(fmt, &gerr), "format", &gerr, r, err);
    }
    if (!rf)
        return GARLIC_OK;
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(rf, "type");
    if (!cJSON_IsObject(rf) || !cJSON_IsString(type))
        return api_error_set(err, 400, "response_format",
                             "'response_format' must be an object with a string 'type'");
    for (const cJSON *e = rf->child; e; e = e->next)
        if (strcmp(e->string, "type") && strcmp(e->string, "json_schema"))
            return api_error_set(err, 400, "response_format",
                                 "'response_format.%.40s' is not a field garlic knows", e->string);
    if (!strcmp(type->valuestring, "text"))
        return GARLIC_OK;
    if (!strcmp(type->valuestring, "json_object"))
        return compiled(grammar_json_any(true, &gerr), "response_format", &gerr, r, err);
    if (strcmp(type->valuestring, "json_schema") != 0)
        return api_error_set(err, 400, "response_format",
                             "'response_format.type' must be \"text\", \"json_object\" or "
                             "\"json_schema\"");
    const cJSON *js = cJSON_GetObjectItemCaseSensitive(rf, "json_schema");
    const cJSON *schema = cJSON_GetObjectItemCaseSensitive(js, "schema");
    if (!cJSON_IsObject(js) || !cJSON_IsObject(schema))
        return api_error_set(err, 400, "response_format",
                             "'response_format.json_schema.schema' must be a JSON schema object");
    for (const cJSON *e = js->child; e; e = e->next)
        if (strcmp(e->string, "name") && strcmp(e->string, "schema") &&
            strcmp(e->string, "strict") && strcmp(e->string, "description"))
            return api_error_set(err, 400, "response_format",
                                 "'response_format.json_schema.%.40s' is not a field garlic "
                                 "knows",
                                 e->string);
    return compiled(grammar_from_json_schema(schema, &gerr), "response_format", &gerr, r, err);
}

static int get_tools(const cJSON *obj, api_request *r, api_error *err)
{
    const cJSON *item = field(obj, "tools");
    if (!item)
        return GARLIC_OK;
    if (!cJSON_IsArray(item))
        return api_error_set(err, 400, "tools", "'tools' must be a list");
    r->tools = cJSON_Duplicate(item, true);
    return r->tools ? GARLIC_OK : GARLIC_ENOMEM;
}

// OpenAI completions' "prompt": a string, a list of one string, or a list of token ids.
static int get_completion_prompt(const cJSON *obj, api_request *r, api_error *err)
{
    const cJSON *item = field(obj, "prompt");
    if (cJSON_IsString(item))
        return get_string(obj, "prompt", &r->prompt, err);
    if (!cJSON_IsArray(item))
        return api_error_set(err, 400, "prompt",
                             item ? "'prompt' must be a string, or a list "
                                    "of token ids"
                                  : "'prompt' is required");
    if (cJSON_GetArraySize(item) == 1 && cJSON_IsString(item->child)) {
        r->prompt = garlic_strndup(item->child->valuestring, SIZE_MAX);
        return r->prompt ? GARLIC_OK : GARLIC_ENOMEM;
    }
    size_t n = (size_t)cJSON_GetArraySize(item);
    r->prompt_ids = garlic_calloc(n ? n : 1, sizeof *r->prompt_ids);
    if (!r->prompt_ids)
        return GARLIC_ENOMEM;
    for (const cJSON *e = item->child; e; e = e->next) {
        if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble > INT32_MAX ||
            e->valuedouble != floor(e->valuedouble))
            return api_error_set(err, 400, "prompt",
                                 "'prompt' must be a string, a list of one "
                                 "string or a list of token ids");
        r->prompt_ids[r->n_prompt_ids++] = (int32_t)e->valuedouble;
    }
    if (r->n_prompt_ids == 0)
        return api_error_set(err, 400, "prompt", "'prompt' must not be an empty list");
    return GARLIC_OK;
}

// OpenAI's logprobs: a boolean plus top_logprobs for chat, a count for completions.
static int get_openai_logprobs(const cJSON *obj, api_request *r, api_error *err)
{
    double v;
    bool has;
    int rc;
    if (r->kind == API_KIND_OPENAI_CHAT) {
        if ((rc = get_bool(obj, "", "logprobs", &r->logprobs, err)))
            return rc;
        if ((rc = get_number(obj, "", "top_logprobs", 0, SAMPLER_MAX_TOP_LOGPROBS, true, &v, &has,
                             err)))
            return rc;
        if (has && !r->logprobs)
            return api_error_set(err, 400, "top_logprobs",
                                 "'top_logprobs' needs 'logprobs': "
                                 "true");
        r->top_logprobs = has ? (uint32_t)v : 0;
        return GARLIC_OK;
    }
    if ((rc = get_number(obj, "", "logprobs", 0, SAMPLER_MAX_TOP_LOGPROBS, true, &v, &has, err)))
        return rc;
    r->logprobs = has;
    r->top_logprobs = has ? (uint32_t)v : 0;
    return GARLIC_OK;
}

bool api_parse_duration(const char *text, double *seconds)
{
    static const struct {
        const char *unit;
        double scale;
    } units[] = {
        {"ns", 1e-9}, {"us", 1e-6}, {"\xc2\xb5s", 1e-6}, {"ms", 1e-3},
        {"s", 1},     {"m", 60},    {"h", 3600},
    };
    const char *p = text;
    double sign = 1, total = 0;
    if (*p == '-' || *p == '+')
        sign = *p++ == '-' ? -1 : 1;
    if (!*p)
        return false;
    char *end;
    double v = strtod(p, &end);
    if (end != p && !*end && v == v && v < 1e12) { // a bare number: seconds
        *seconds = sign * v;
        return true;
    }
    while (*p) {
        if (!((*p >= '0' && *p <= '9') || *p == '.'))
            return false;
        v = strtod(p, &end);
        if (end == p || v != v || v > 1e12)
            return false;
        p = end;
        size_t best = 0, best_len = 0;
        for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
            size_t len = strlen(units[i].unit);
            if (len > best_len && strncmp(p, units[i].unit, len) == 0)
                best = i, best_len = len;
        }
        if (!best_len)
            return false;
        total += v * units[best].scale;
        p += best_len;
    }
    *seconds = sign * total;
    return true;
}

// keep_alive (Ollama's field; a garlic extension for OpenAI requests): seconds or a duration.
static int get_keep_alive(const cJSON *root, api_request *r, api_error *err)
{
    const cJSON *ka = field(root, "keep_alive");
    r->keep_alive = NAN;
    if (!ka)
        return GARLIC_OK;
    if (cJSON_IsNumber(ka) && ka->valuedouble == ka->valuedouble && fabs(ka->valuedouble) < 1e12)
        return r->keep_alive = ka->valuedouble, GARLIC_OK;
    if (cJSON_IsString(ka) && api_parse_duration(ka->valuestring, &r->keep_alive))
        return GARLIC_OK;
    return api_error_set(err, 400, "keep_alive",
                         "'keep_alive' must be a number of seconds or a "
                         "duration such as \"5m\", \"1h\", \"0\" or \"-1\"");
}

static int parse_openai(const cJSON *root, api_request *r, api_error *err)
{
    double v;
    bool has;
    int rc = r->kind == API_KIND_OPENAI_CHAT ? get_messages(root, false, r, err)
                                             : get_completion_prompt(root, r, err);
    if (rc || (rc = get_tools(root, r, err)) || (rc = get_constraint(root, r, err)) ||
        (r->kind == API_KIND_OPENAI_CHAT && (rc = get_tool_choice(root, r, err))) ||
        (r->kind == API_KIND_OPENAI_CHAT && (rc = get_budget(root, r, err))) ||
        (rc = get_bool(root, "", "stream", &r->stream, err)))
        return rc;
    const cJSON *opts = field(root, "stream_options");
    if (opts && !cJSON_IsObject(opts))
        return api_error_set(err, 400, "stream_options", "'stream_options' must be an object");
    if (opts && (rc = get_bool(opts, "stream_options.", "include_usage", &r->include_usage, err)))
        return rc;
    if ((rc = get_number(root, "", "max_tokens", 1, 1 << 24, true, &v, &has, err)))
        return rc;
    if (has)
        r->max_tokens = (uint32_t)v;
    if ((rc = get_number(root, "", "max_completion_tokens", 1, 1 << 24, true, &v, &has, err)))
        return rc;
    if (has)
        r->max_tokens = (uint32_t)v;
    if ((rc = get_number(root, "", "n", 1, ENGINE_MAX_CHOICES, true, &v, &has, err)))
        return rc;
    r->n = has ? (uint32_t)v : 1;
    const cJSON *user = field(root, "user");
    if (user && !cJSON_IsString(user))
        return api_error_set(err, 400, "user", "'user' must be a string");
    if ((rc = get_logit_bias(root, r, err)) || (rc = get_openai_logprobs(root, r, err)) ||
        (rc = get_keep_alive(root, r, err)))
        return rc;
    return get_sampling(root, "", r, err);
}

static int parse_ollama(const cJSON *root, api_request *r, api_error *err)
{
    int rc;
    r->stream = true;
    r->truncate = true;
    if (r->kind == API_KIND_OLLAMA_CHAT)
        rc = get_messages(root, true, r, err);
    else if (!(rc = get_string(root, "prompt", &r->prompt, err)) &&
             !(rc = get_string(root, "system", &r->system, err)))
        rc = get_bool(root, "", "raw", &r->raw, err);
    if (rc || (rc = get_tools(root, r, err)) || (rc = get_think(root, r, err)) ||
        (rc = get_constraint(root, r, err)) || (rc = get_budget(root, r, err)) ||
        (rc = get_bool(root, "", "stream", &r->stream, err)) ||
        (rc = get_bool(root, "", "truncate", &r->truncate, err)))
        return rc;
    if ((rc = get_keep_alive(root, r, err)))
        return rc;
    const cJSON *opts = field(root, "options");
    if (!opts)
        return GARLIC_OK;
    if (!cJSON_IsObject(opts))
        return api_error_set(err, 400, "options", "'options' must be an object");
    double v;
    bool has;
    if ((rc = get_number(opts, "options.", "num_predict", -2, 1 << 24, true, &v, &has, err)))
        return rc;
    if (has)
        r->max_tokens = v > 0 ? (uint32_t)v : 0;
    if ((rc = get_number(opts, "options.", "num_ctx", 0, 1 << 24, true, &v, &has, err)))
        return rc;
    return get_sampling(opts, "options.", r, err);
}

// ---- every field honoured, or refused by name ----
//
// Each request field is one of: honoured (read above), accepted and ignored for a reason
// docs/api.md gives, accepted only at the value that asks for nothing garlic lacks (its
// default), or refused with a 400 that names it. Nothing is silently dropped.

enum {
    K_OAI_CHAT = 1 << API_KIND_OPENAI_CHAT,
    K_OAI_COMP = 1 << API_KIND_OPENAI_COMPLETION,
    K_OLL_GEN = 1 << API_KIND_OLLAMA_GENERATE,
    K_OLL_CHAT = 1 << API_KIND_OLLAMA_CHAT,
    K_OAI = K_OAI_CHAT | K_OAI_COMP,
    K_OLL = K_OLL_GEN | K_OLL_CHAT,
};

// What a field may hold to be accepted.
typedef enum field_check {
    CHECK_NONE,         // honoured (parsed above), or ignored whatever it holds
    CHECK_FALSE,        // accepted when false (garlic does not do what true asks)
    CHECK_TRUE,         // accepted when true
    CHECK_EMPTY,        // accepted when an empty string or list
    CHECK_ONE,          // accepted when 1
    CHECK_ZERO,         // accepted when 0
    CHECK_AUTO,         // "auto" (tool_choice)
    CHECK_TEXT,         // {"type": "text"} (response_format)
    CHECK_TEXT_ONLY,    // ["text"] (modalities)
    CHECK_DEFAULT_TIER, // "auto" or "default" (service_tier)
    CHECK_REFUSED,      // refused whatever it holds
} field_check;

typedef struct field_rule {
    const char *key;
    unsigned kinds;
    field_check check;
    const char *why; // for a refused value: what garlic does instead (NULL: generic)
} field_rule;

static const field_rule top_rules[] = {
    {"model", K_OAI | K_OLL, CHECK_NONE, NULL},
    {"messages", K_OAI_CHAT | K_OLL_CHAT, CHECK_NONE, NULL},
    {"prompt", K_OAI_COMP | K_OLL_GEN, CHECK_NONE, NULL},
    {"stream", K_OAI | K_OLL, CHECK_NONE, NULL},
    {"keep_alive", K_OAI | K_OLL, CHECK_NONE, NULL},
    {"tools", K_OAI_CHAT | K_OLL_CHAT, CHECK_NONE, NULL},
    // OpenAI
    {"stream_options", K_OAI, CHECK_NONE, NULL},
    {"max_tokens", K_OAI, CHECK_NONE, NULL},
    {"max_completion_tokens", K_OAI_CHAT, CHECK_NONE, NULL},
    {"n", K_OAI, CHECK_NONE, NULL},
    {"temperature", K_OAI, CHECK_NONE, NULL},
    {"top_p", K_OAI, CHECK_NONE, NULL},
    {"top_k", K_OAI, CHECK_NONE, NULL},
    {"min_p", K_OAI, CHECK_NONE, NULL},
    {"repeat_penalty", K_OAI, CHECK_NONE, NULL},
    {"repeat_last_n", K_OAI, CHECK_NONE, NULL},
    {"presence_penalty", K_OAI, CHECK_NONE, NULL},
    {"frequency_penalty", K_OAI, CHECK_NONE, NULL},
    {"seed", K_OAI, CHECK_NONE, NULL},
    {"stop", K_OAI, CHECK_NONE, NULL},
    {"logit_bias", K_OAI, CHECK_NONE, NULL},
    {"logprobs", K_OAI, CHECK_NONE, NULL},
    {"top_logprobs", K_OAI_CHAT, CHECK_NONE, NULL},
    {"user", K_OAI, CHECK_NONE, NULL},     // ignored: an end user's id for abuse monitoring
    {"metadata", K_OAI, CHECK_NONE, NULL}, // ignored: tags for stored completions
    {"store", K_OAI_CHAT, CHECK_FALSE, "garlic stores no completions"},
    {"service_tier", K_OAI_CHAT, CHECK_DEFAULT_TIER, "garlic has one service tier"},
    {"modalities", K_OAI_CHAT, CHECK_TEXT_ONLY, "garlic's models produce text only"},
    {"tool_choice", K_OAI_CHAT, CHECK_NONE, NULL},         // read in get_tool_choice
    {"parallel_tool_calls", K_OAI_CHAT, CHECK_NONE, NULL}, // read in get_tool_choice
    {"reasoning_effort", K_OAI_CHAT, CHECK_NONE, NULL},
    {"response_format", K_OAI, CHECK_NONE, NULL}, // read in get_constraint
    {"grammar", K_OAI | K_OLL, CHECK_NONE, NULL},
    {"reasoning_budget", K_OAI_CHAT | K_OLL, CHECK_NONE, NULL},
    {"echo", K_OAI_COMP, CHECK_FALSE, "garlic does not echo the prompt"},
    {"suffix", K_OAI_COMP | K_OLL_GEN, CHECK_EMPTY, "garlic does not fill in the middle"},
    {"best_of", K_OAI_COMP, CHECK_ONE, "garlic generates each choice once"},
    // Ollama
    {"system", K_OLL_GEN, CHECK_NONE, NULL},
    {"raw", K_OLL_GEN, CHECK_NONE, NULL},
    {"truncate", K_OLL, CHECK_NONE, NULL},
    {"options", K_OLL, CHECK_NONE, NULL},
    {"shift", K_OLL, CHECK_NONE, NULL}, // ignored: a full context ends generation (no shift)
    {"images", K_OLL_GEN, CHECK_EMPTY, "garlic serves no vision models"},
    {"context", K_OLL_GEN, CHECK_EMPTY,
     "it is deprecated: send the conversation as /api/chat messages"},
    {"template", K_OLL_GEN, CHECK_EMPTY,
     "garlic renders the model's own Jinja chat template (garlic create sets another)"},
    {"format", K_OLL, CHECK_NONE, NULL}, // read in get_constraint
    {"think", K_OLL_CHAT | K_OLL_GEN, CHECK_NONE, NULL},
};

static const field_rule option_rules[] = {
    {"num_predict", K_OLL, CHECK_NONE, NULL},
    {"temperature", K_OLL, CHECK_NONE, NULL},
    {"top_k", K_OLL, CHECK_NONE, NULL},
    {"top_p", K_OLL, CHECK_NONE, NULL},
    {"min_p", K_OLL, CHECK_NONE, NULL},
    {"seed", K_OLL, CHECK_NONE, NULL},
    {"stop", K_OLL, CHECK_NONE, NULL},
    {"repeat_penalty", K_OLL, CHECK_NONE, NULL},
    {"repeat_last_n", K_OLL, CHECK_NONE, NULL},
    {"presence_penalty", K_OLL, CHECK_NONE, NULL},
    {"frequency_penalty", K_OLL, CHECK_NONE, NULL},
    // ignored: how the server runs the model is its own flags' business (docs/api.md)
    {"num_ctx", K_OLL, CHECK_NONE, NULL},
    {"num_batch", K_OLL, CHECK_NONE, NULL},
    {"num_gpu", K_OLL, CHECK_NONE, NULL},
    {"main_gpu", K_OLL, CHECK_NONE, NULL},
    {"num_thread", K_OLL, CHECK_NONE, NULL},
    {"use_mmap", K_OLL, CHECK_NONE, NULL},
    {"use_mlock", K_OLL, CHECK_NONE, NULL},
    {"numa", K_OLL, CHECK_NONE, NULL},
    {"low_vram", K_OLL, CHECK_NONE, NULL},
    {"vocab_only", K_OLL, CHECK_NONE, NULL},
    {"num_keep", K_OLL, CHECK_NONE, NULL},         // ignored: no context shift
    {"penalize_newline", K_OLL, CHECK_NONE, NULL}, // ignored: deprecated by Ollama
    {"typical_p", K_OLL, CHECK_ONE, "garlic has no typical sampling"},
    {"tfs_z", K_OLL, CHECK_ONE, "garlic has no tail-free sampling"},
    {"mirostat", K_OLL, CHECK_ZERO, "garlic has no mirostat sampling"},
    {"mirostat_tau", K_OLL, CHECK_NONE, NULL}, // ignored: read only by mirostat (refused)
    {"mirostat_eta", K_OLL, CHECK_NONE, NULL},
};

static bool value_passes(const cJSON *v, field_check check)
{
    switch (check) {
    case CHECK_NONE: return true;
    case CHECK_FALSE: return cJSON_IsFalse(v);
    case CHECK_TRUE: return cJSON_IsTrue(v);
    case CHECK_EMPTY:
        return (cJSON_IsString(v) && !v->valuestring[0]) ||
            ((cJSON_IsArray(v) || cJSON_IsObject(v)) && !v->child);
    case CHECK_ONE: return cJSON_IsNumber(v) && v->valuedouble == 1;
    case CHECK_ZERO: return cJSON_IsNumber(v) && v->valuedouble == 0;
    case CHECK_AUTO: return cJSON_IsString(v) && strcmp(v->valuestring, "auto") == 0;
    case CHECK_TEXT: {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(v, "type");
        return cJSON_IsObject(v) && cJSON_GetArraySize(v) == 1 && cJSON_IsString(type) &&
            strcmp(type->valuestring, "text") == 0;
    }
    case CHECK_TEXT_ONLY:
        return cJSON_IsArray(v) && cJSON_GetArraySize(v) == 1 && cJSON_IsString(v->child) &&
            strcmp(v->child->valuestring, "text") == 0;
    case CHECK_DEFAULT_TIER:
        return cJSON_IsString(v) &&
            (strcmp(v->valuestring, "auto") == 0 || strcmp(v->valuestring, "default") == 0);
    case CHECK_REFUSED: return false;
    }
    return false;
}

// Refuses a member of obj that rules do not accept for kind (prefix: "options." or "").
static int check_fields(const cJSON *obj, const field_rule *rules, size_t n_rules, api_kind kind,
                        const char *prefix, api_error *err)
{
    for (const cJSON *e = obj->child; e; e = e->next) {
        if (cJSON_IsNull(e))
            continue;
        const field_rule *rule = NULL;
        for (size_t i = 0; i < n_rules && !rule; i++)
            if (strcmp(rules[i].key, e->string) == 0 && (rules[i].kinds & (1u << kind)))
                rule = &rules[i];
        char name[96];
        snprintf(name, sizeof name, "%s%.60s", prefix, e->string);
        if (!rule)
            return api_error_set(err, 400, name,
                                 "'%s' is not a field garlic knows for this "
                                 "endpoint (docs/api.md lists them)",
                                 name);
        if (rule->check == CHECK_REFUSED)
            return api_error_set(err, 400, name, "'%s' is not supported by garlic yet", name);
        if (!value_passes(e, rule->check))
            return api_error_set(err, 400, name, "'%s' is not supported with this value: %s", name,
                                 rule->why ? rule->why : "garlic cannot do what it asks");
    }
    return GARLIC_OK;
}

int api_options_check(const cJSON *options, api_error *err)
{
    if (!options || cJSON_IsNull(options))
        return GARLIC_OK;
    if (!cJSON_IsObject(options))
        return api_error_set(err, 400, "options", "'options' must be an object");
    return check_fields(options, option_rules, sizeof option_rules / sizeof option_rules[0],
                        API_KIND_OLLAMA_GENERATE, "options.", err);
}

// The path of the first string (member name or value) in v that is not valid UTF-8, written
// into path ("messages[0].content"); false when every string is valid. JSON text may carry any
// bytes inside strings; templates, tokenizers and logs must get only UTF-8.
static bool find_bad_utf8(const cJSON *v, char *path, size_t cap)
{
    size_t len = strlen(path);
    if (cJSON_IsString(v) && !utf8_valid(v->valuestring, strlen(v->valuestring)))
        return true;
    size_t i = 0;
    for (const cJSON *e = (cJSON_IsArray(v) || cJSON_IsObject(v)) ? v->child : NULL; e;
         e = e->next, i++) {
        if (e->string)
            snprintf(path + len, cap - len, "%s%s", len ? "." : "", e->string);
        else
            snprintf(path + len, cap - len, "[%zu]", i);
        if (e->string && !utf8_valid(e->string, strlen(e->string)))
            return true;
        if (find_bad_utf8(e, path, cap))
            return true;
        path[len] = '\0';
    }
    return false;
}

int api_json_check_utf8(const cJSON *root, api_error *err)
{
    char path[256] = "";
    if (!find_bad_utf8(root, path, sizeof path))
        return GARLIC_OK;
    char shown[128]; // the path itself may hold the bad bytes (a member name)
    utf8_sanitize(path, strlen(path), shown, sizeof shown, true);
    return api_error_set(err, 400, shown, "'%s' is not valid UTF-8", shown);
}

// A model's default options (its Modelfile's PARAMETER lines, in Ollama's words), applied
// before the request's own fields.
static int apply_defaults(const char *json, api_request *r, api_error *err)
{
    cJSON *d = cJSON_Parse(json);
    if (!cJSON_IsObject(d)) {
        cJSON_Delete(d);
        return api_error_set(err, 500, NULL, "the model's default parameters are not an object");
    }
    double v;
    bool has;
    int rc = get_number(d, "parameters.", "num_predict", -2, 1 << 24, true, &v, &has, err);
    if (rc == GARLIC_OK && has && v > 0)
        r->max_tokens = (uint32_t)v;
    if (rc == GARLIC_OK)
        rc = get_sampling(d, "parameters.", r, err);
    cJSON_Delete(d);
    if (rc == GARLIC_EINVAL)
        err->status = 500; // the store checked them: this is garlic's fault, not the client's
    return rc;
}

int api_request_parse(api_kind kind, const char *body, size_t len, api_request *out, api_error *err)
{
    return api_request_parse_with(kind, body, len, NULL, out, err);
}

int api_request_parse_with(api_kind kind, const char *body, size_t len, const char *defaults,
                           api_request *out, api_error *err)
{
    memset(out, 0, sizeof *out);
    out->kind = kind;
    out->think = -1;
    out->reasoning_budget = -1;
    out->keep_alive = NAN;
    out->sampling = sampler_params_default(0);
    out->n = 1;
    if (defaults) {
        int rc = apply_defaults(defaults, out, err);
        if (rc)
            return rc == GARLIC_ENOMEM ? api_error_set(err, 503, NULL, "out of memory") : rc;
    }
    cJSON *root = cJSON_ParseWithLength(body, len);
    if (!root)
        return api_error_set(err, 400, NULL, "the body is not valid JSON");
    int rc = cJSON_IsObject(root) ? api_json_check_utf8(root, err)
                                  : api_error_set(err, 400, NULL, "the body must be a JSON object");
    if (rc == GARLIC_OK && !cJSON_IsString(field(root, "model")))
        rc = api_error_set(err, 400, "model",
                           field(root, "model") ? "'model' must be a string"
                                                : "'model' is required");
    if (rc == GARLIC_OK)
        rc = check_fields(root, top_rules, sizeof top_rules / sizeof top_rules[0], kind, "", err);
    const cJSON *opts = rc == GARLIC_OK &&
            (kind == API_KIND_OLLAMA_GENERATE || kind == API_KIND_OLLAMA_CHAT)
        ? field(root, "options")
        : NULL;
    if (cJSON_IsObject(opts))
        rc = check_fields(opts, option_rules, sizeof option_rules / sizeof option_rules[0], kind,
                          "options.", err);
    if (rc == GARLIC_OK)
        rc = get_string(root, "model", &out->model, err);
    if (rc == GARLIC_OK && (kind == API_KIND_OPENAI_CHAT || kind == API_KIND_OPENAI_COMPLETION))
        rc = parse_openai(root, out, err);
    else if (rc == GARLIC_OK)
        rc = parse_ollama(root, out, err);
    cJSON_Delete(root);
    if (rc == GARLIC_ENOMEM)
        api_error_set(err, 503, NULL, "out of memory");
    return rc;
}

void api_request_deinit(api_request *r)
{
    garlic_free(r->model);
    garlic_free(r->prompt);
    garlic_free(r->prompt_ids);
    cJSON_Delete(r->messages);
    cJSON_Delete(r->tools);
    garlic_free(r->system);
    garlic_free(r->reasoning_effort);
    garlic_free(r->tool_choice_name);
    grammar_free(r->grammar);
    garlic_free(r->bias);
    for (size_t i = 0; i < r->n_stops; i++)
        garlic_free(r->stops[i]);
    memset(r, 0, sizeof *r);
}
