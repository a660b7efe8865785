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

void api_output_plan(api_job *job, const char *prompt)
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
    job->parse_output = (tools && d.format != CHAT_OUTPUT_FORMAT_NONE) || d.reasoning || harmony;
    if (!job->parse_output)
        return;
    chat_output_options *o = &job->output;
    *o = chat_output_options_default();
    o->format = d.format;
    o->reasoning = d.reasoning;
    o->starts_in_reasoning = prompt && chat_output_prompt_opens_reasoning(prompt, strlen(prompt));
    o->tools = tools;
    o->parallel_tool_calls = !job->in.no_parallel_calls;
    garlic_free(job->tools_text);
    job->tools_text = tools ? cJSON_PrintUnformatted(job->in.tools) : NULL;
    o->tools_json = job->tools_text;
    o->tools_json_len = job->tools_text ? strlen(job->tools_text) : 0;
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
