// SPDX-License-Identifier: MIT
// A chat answer read from the generated text (sampler/chat_output.h): the model's family is
// recognized from its chat template, and when it may write reasoning or tool calls (tools
// were offered), each choice's text goes through a parser that splits it into content,
// reasoning and structured calls, streamed (one parser per choice, fed chunk by chunk) or
// whole. The flavours (openai.c, ollama.c) shape the events into their JSON.
#include <string.h>

#include "api/internal.h"
#include "base/alloc.h"
#include "chat/chat.h"
#include "model/model.h"
#include "sampler/grammar.h"

// The JSON schema of one call to an offered tool (the named one when tool_choice names it):
// {"anyOf": [{"type": "object", "properties": {"name": {"const": N}, args_key: PARAMETERS},
// "required": [...], "additionalProperties": false}, ...]}. NULL with err set when no tool
// matches.
static cJSON *call_schema(const api_request *in, const char *args_key, api_error *err)
{
    cJSON *schema = cJSON_CreateObject(), *any = cJSON_AddArrayToObject(schema, "anyOf");
    const cJSON *tool;
    cJSON_ArrayForEach(tool, in->tools)
    {
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(tool, "function");
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(fn, "name");
        const cJSON *params = cJSON_GetObjectItemCaseSensitive(fn, "parameters");
        if (!cJSON_IsString(name) ||
            (in->tool_choice_name && strcmp(in->tool_choice_name, name->valuestring)))
            continue;
        cJSON *one = cJSON_CreateObject();
        cJSON_AddItemToArray(any, one);
        cJSON_AddStringToObject(one, "type", "object");
        cJSON *props = cJSON_AddObjectToObject(one, "properties");
        cJSON_AddStringToObject(cJSON_AddObjectToObject(props, "name"), "const", name->valuestring);
        cJSON_AddItemToObject(props, args_key,
                              cJSON_IsObject(params) ? cJSON_Duplicate(params, true)
                                                     : cJSON_CreateObject());
        cJSON *req = cJSON_AddArrayToObject(one, "required");
        cJSON_AddItemToArray(req, cJSON_CreateString("name"));
        cJSON_AddItemToArray(req, cJSON_CreateString(args_key));
        cJSON_AddBoolToObject(one, "additionalProperties", false);
    }
    if (cJSON_GetArraySize(any) == 0) {
        cJSON_Delete(schema);
        api_error_set(err, 400, "tool_choice",
                      in->tool_choice_name
                          ? "'tool_choice' names '%s', which 'tools' does not offer"
                          : "'tools' offers no function with a name%s",
                      in->tool_choice_name ? in->tool_choice_name : "");
        return NULL;
    }
    return schema;
}

// tool_choice "required" or a named function: a grammar that makes the answer one call in
// the model's format (Hermes <tool_call>, Llama 3 JSON, Mistral [TOOL_CALLS]).
static int tool_grammar(api_job *job, chat_output_format format, api_error *err)
{
    const char *open, *close, *args_key = "arguments";
    switch (format) {
    case CHAT_OUTPUT_FORMAT_HERMES:
        open = "\"<tool_call>\\n\" ", close = " \"\\n</tool_call>\"";
        break;
    case CHAT_OUTPUT_FORMAT_LLAMA3: open = "", close = "", args_key = "parameters"; break;
    case CHAT_OUTPUT_FORMAT_MISTRAL: open = "\"[TOOL_CALLS][\" ", close = " \"]\""; break;
    default:
        return api_error_set(err, 400, "tool_choice",
                             "'tool_choice' that asks for a call is not supported for this "
                             "model's tool-call format (%s); use \"auto\"",
                             chat_output_format_name(format));
    }
    cJSON *schema = call_schema(&job->in, args_key, err);
    if (!schema)
        return GARLIC_EINVAL;
    garlic_buf call = {0}, text = {0};
    garlic_error gerr = {0};
    int rc = grammar_json_schema_gbnf(schema, &call, &gerr);
    cJSON_Delete(schema);
    // The schema's root rule becomes "call", wrapped in the format's markers.
    char *at = rc                                ? NULL
        : strncmp(call.data, "root ::=", 8) == 0 ? call.data
                                                 : strstr(call.data, "\nroot ::=");
    if (at && *at == '\n')
        at++;
    if (at) {
        memcpy(at, "call", 4);
        rc = garlic_buf_printf(&text, "root ::= %scall%s\n%s\n", open, close, call.data);
    } else if (rc == GARLIC_OK) {
        rc = garlic_error_set(&gerr, GARLIC_EINVAL, "the call's grammar has no root rule");
    }
    grammar *g = rc ? NULL : grammar_new(text.data, text.len, &gerr);
    garlic_buf_deinit(&call);
    garlic_buf_deinit(&text);
    if (!g)
        return api_error_set(err, gerr.code == GARLIC_ENOMEM ? 503 : 400, "tools",
                             "'tools': the parameters cannot constrain a call: %s", gerr.message);
    job->in.grammar = g;
    return GARLIC_OK;
}

int api_output_plan(api_job *job, const char *prompt, api_error *err)
{
    const char *source = NULL;
    const chat_template *tmpl = registry_model_template(job->model, &source, NULL, NULL);
    const model *w = registry_model_weights(job->model);
    const char *arch = w && w->arch ? w->arch->name : NULL;
    chat_output_detection d = chat_output_detect(tmpl ? source : NULL, tmpl ? strlen(source) : 0,
                                                 arch, NULL, 0);
    bool chat = job->in.kind == API_KIND_OPENAI_CHAT || job->in.kind == API_KIND_OLLAMA_CHAT;
    bool tools = chat && job->in.tools && cJSON_GetArraySize(job->in.tools) > 0 &&
        !job->in.tool_choice_none;
    bool harmony = d.format == CHAT_OUTPUT_FORMAT_HARMONY;
    job->starts_in_reasoning = prompt && chat_output_prompt_opens_reasoning(prompt, strlen(prompt));
    if (tools && job->in.tool_choice_required && !job->in.grammar) {
        int rc = tool_grammar(job, d.format, err);
        if (rc)
            return rc;
    }
    job->parse_output = (tools && d.format != CHAT_OUTPUT_FORMAT_NONE) || d.reasoning || harmony;
    // Markers that are control tokens must reach the parser as text: harmony's channels, and
    // the call markers of the families whose vocabularies make them control tokens (Llama 3's
    // <|python_tag|>, Mistral's [TOOL_CALLS], DeepSeek's). Else a stray control token (a BOS
    // mid-answer) stays out of the text, as without a parser.
    job->render_special = harmony ||
        (tools &&
         (d.format == CHAT_OUTPUT_FORMAT_LLAMA3 || d.format == CHAT_OUTPUT_FORMAT_MISTRAL ||
          d.format == CHAT_OUTPUT_FORMAT_DEEPSEEK));
    if (!job->parse_output)
        return GARLIC_OK;
    chat_output_options *o = &job->output;
    *o = chat_output_options_default();
    o->format = d.format;
    o->reasoning = d.reasoning;
    o->starts_in_reasoning = job->starts_in_reasoning;
    o->tools = tools;
    o->parallel_tool_calls = !job->in.no_parallel_calls;
    garlic_free(job->tools_text);
    job->tools_text = tools ? cJSON_PrintUnformatted(job->in.tools) : NULL;
    o->tools_json = job->tools_text;
    o->tools_json_len = job->tools_text ? strlen(job->tools_text) : 0;
    return GARLIC_OK;
}

// The parser of choice, made on first use.
static chat_output *parser(api_job *job, uint32_t choice, garlic_error *err)
{
    chat_output **p = &job->parsers[choice];
    if (!*p)
        *p = chat_output_new(&job->output, err);
    return *p;
}

int api_output_feed(api_job *job, uint32_t choice, const char *text, size_t len,
                    const chat_output_event **events, size_t *n)
{
    *events = NULL, *n = 0;
    garlic_error err = {0};
    chat_output *p = parser(job, choice, &err);
    if (!p)
        return err.code ? err.code : GARLIC_ENOMEM;
    return len ? chat_output_feed(p, text, len, events, n, &err) : GARLIC_OK;
}

int api_output_finish(api_job *job, uint32_t choice, const chat_output_event **events, size_t *n)
{
    *events = NULL, *n = 0;
    garlic_error err = {0};
    chat_output *p = parser(job, choice, &err);
    if (!p)
        return err.code ? err.code : GARLIC_ENOMEM;
    return chat_output_finish(p, events, n, &err);
}

bool api_output_called(const api_job *job, uint32_t choice)
{
    return job->parsers[choice] && chat_output_call_count(job->parsers[choice]) > 0;
}

void api_output_deinit(api_job *job)
{
    for (size_t i = 0; i < ENGINE_MAX_CHOICES; i++) {
        chat_output_free(job->parsers[i]);
        job->parsers[i] = NULL;
    }
    garlic_free(job->tools_text);
    job->tools_text = NULL;
}
