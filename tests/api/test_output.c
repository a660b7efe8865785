// SPDX-License-Identifier: MIT
// The answer read as content, reasoning and tool calls, as each flavour writes it: a job whose
// model writes Hermes-style <tool_call> blocks and <think> reasoning is given engine chunks
// (split at every byte, as streamed tokens may split markers), and the OpenAI SSE chunks and
// Ollama NDJSON lines are read back: reasoning_content / thinking, content, tool_calls (OpenAI:
// index, id and name first, then argument fragments; Ollama: arguments as an object),
// finish_reason "tool_calls"; the whole (non-streamed) answers say the same.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "api/internal.h"
#include "base/alloc.h"
#include "util.h"

static const char answer[] =
    "<think>The user wants the weather.</think>Let me check."
    "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>";

// A job of kind whose answer goes through a Hermes parser with reasoning.
static void job_init(api_job *job, api_kind kind)
{
    memset(job, 0, sizeof *job);
    job->in.kind = kind;
    job->in.model = garlic_strndup("m", 1);
    job->in.n = 1;
    job->parse_output = true;
    job->output = chat_output_options_default();
    job->output.format = CHAT_OUTPUT_FORMAT_HERMES;
    job->output.reasoning = true;
    job->output.tools = true;
    job->output.id_seed = 7;
    snprintf(job->id, sizeof job->id, "chatcmpl-test");
}

// Streams answer through flavour f in pieces of step bytes; returns everything written.
static char *stream_all(const api_flavour *f, api_kind kind, size_t step)
{
    api_job job;
    job_init(&job, kind);
    api_stream *s = api_stream_new(&job, f->stream_ops);
    assert_non_null(s);
    size_t len = strlen(answer);
    for (size_t at = 0; at < len; at += step) {
        size_t n = len - at < step ? len - at : step;
        engine_chunk c = {.text = answer + at, .len = n};
        if (at + n == len)
            c.choice_done = true, c.finish = ENGINE_FINISH_STOP;
        assert_int_equal(f->stream_ops->chunk(s, &c), GARLIC_OK);
    }
    assert_int_equal(f->stream_ops->end(s), GARLIC_OK);
    char *out = garlic_strndup(s->out + s->out_pos, s->out_len - s->out_pos);
    api_stream_free(s);
    return out;
}

// Sums an OpenAI stream's deltas: content, reasoning, the call's id, name and arguments.
static void read_openai(const char *sse, garlic_buf *content, garlic_buf *reasoning,
                        garlic_buf *args, char *name, char *id, char *finish)
{
    for (const char *p = sse; (p = strstr(p, "data: ")); p++) {
        p += 6;
        if (!strncmp(p, "[DONE]", 6))
            break;
        const char *end = strstr(p, "\n\n");
        cJSON *root = cJSON_ParseWithLength(p, (size_t)(end - p));
        assert_non_null(root);
        const cJSON *ch = cJSON_GetArrayItem(cJSON_GetObjectItem(root, "choices"), 0);
        const cJSON *delta = cJSON_GetObjectItem(ch, "delta");
        const cJSON *v;
        if (cJSON_IsString(v = cJSON_GetObjectItem(delta, "content")))
            garlic_buf_append_str(content, v->valuestring);
        if (cJSON_IsString(v = cJSON_GetObjectItem(delta, "reasoning_content")))
            garlic_buf_append_str(reasoning, v->valuestring);
        const cJSON *call = cJSON_GetArrayItem(cJSON_GetObjectItem(delta, "tool_calls"), 0);
        if (call) {
            assert_int_equal(cJSON_GetObjectItem(call, "index")->valueint, 0);
            const cJSON *fn = cJSON_GetObjectItem(call, "function");
            if (cJSON_IsString(v = cJSON_GetObjectItem(call, "id")))
                strcpy(id, v->valuestring);
            if (cJSON_IsString(v = cJSON_GetObjectItem(fn, "name")))
                strcpy(name, v->valuestring);
            garlic_buf_append_str(args, cJSON_GetObjectItem(fn, "arguments")->valuestring);
        }
        if (cJSON_IsString(v = cJSON_GetObjectItem(ch, "finish_reason")))
            strcpy(finish, v->valuestring);
        cJSON_Delete(root);
    }
}

static void check_arguments(const char *json)
{
    cJSON *a = cJSON_Parse(json);
    assert_non_null(a);
    assert_string_equal(cJSON_GetObjectItem(a, "city")->valuestring, "Paris");
    cJSON_Delete(a);
}

static void test_openai_stream(void **state)
{
    (void)state;
    static const size_t steps[] = {1, 2, 3, 7, 1000};
    for (size_t k = 0; k < sizeof steps / sizeof steps[0]; k++) {
        char *sse = stream_all(&api_openai_flavour, API_KIND_OPENAI_CHAT, steps[k]);
        garlic_buf content = {0}, reasoning = {0}, args = {0};
        char name[64] = "", id[64] = "", finish[32] = "";
        read_openai(sse, &content, &reasoning, &args, name, id, finish);
        assert_string_equal(reasoning.data, "The user wants the weather.");
        assert_string_equal(content.data, "Let me check.");
        assert_string_equal(name, "get_weather");
        assert_memory_equal(id, "call_", 5);
        check_arguments(args.data);
        assert_string_equal(finish, "tool_calls");
        garlic_buf_deinit(&content), garlic_buf_deinit(&reasoning), garlic_buf_deinit(&args);
        garlic_free(sse);
    }
}

static void test_ollama_stream(void **state)
{
    (void)state;
    char *nd = stream_all(&api_ollama_flavour, API_KIND_OLLAMA_CHAT, 3);
    garlic_buf content = {0}, thinking = {0};
    int calls = 0;
    for (const char *p = nd; *p;) {
        const char *end = strchr(p, '\n');
        cJSON *line = cJSON_ParseWithLength(p, (size_t)(end - p));
        assert_non_null(line);
        const cJSON *msg = cJSON_GetObjectItem(line, "message");
        garlic_buf_append_str(&content, cJSON_GetObjectItem(msg, "content")->valuestring);
        const cJSON *t = cJSON_GetObjectItem(msg, "thinking");
        if (t)
            garlic_buf_append_str(&thinking, t->valuestring);
        const cJSON *call = cJSON_GetArrayItem(cJSON_GetObjectItem(msg, "tool_calls"), 0);
        if (call) {
            const cJSON *fn = cJSON_GetObjectItem(call, "function");
            assert_string_equal(cJSON_GetObjectItem(fn, "name")->valuestring, "get_weather");
            const cJSON *a = cJSON_GetObjectItem(fn, "arguments");
            assert_true(cJSON_IsObject(a));
            assert_string_equal(cJSON_GetObjectItem(a, "city")->valuestring, "Paris");
            calls++;
        }
        cJSON_Delete(line);
        p = end + 1;
    }
    assert_int_equal(calls, 1);
    assert_string_equal(thinking.data, "The user wants the weather.");
    assert_string_equal(content.data, "Let me check.");
    garlic_buf_deinit(&content), garlic_buf_deinit(&thinking);
    garlic_free(nd);
}

// The whole answers: OpenAI's message with reasoning_content and tool_calls (arguments a
// string), Ollama's with thinking and tool_calls (arguments an object).
static void test_whole(void **state)
{
    (void)state;
    api_result res = {.n = 1};
    res.choices[0].text = garlic_strndup(answer, strlen(answer));
    res.choices[0].len = strlen(answer);
    res.choices[0].finish = ENGINE_FINISH_STOP;
    api_job job;
    job_init(&job, API_KIND_OPENAI_CHAT);
    cJSON *o = api_openai_flavour.whole(&job, &res);
    const cJSON *ch = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "choices"), 0);
    const cJSON *msg = cJSON_GetObjectItem(ch, "message");
    assert_string_equal(cJSON_GetObjectItem(ch, "finish_reason")->valuestring, "tool_calls");
    assert_string_equal(cJSON_GetObjectItem(msg, "content")->valuestring, "Let me check.");
    assert_string_equal(cJSON_GetObjectItem(msg, "reasoning_content")->valuestring,
                        "The user wants the weather.");
    const cJSON *call = cJSON_GetArrayItem(cJSON_GetObjectItem(msg, "tool_calls"), 0);
    assert_string_equal(cJSON_GetObjectItem(call, "type")->valuestring, "function");
    const cJSON *fn = cJSON_GetObjectItem(call, "function");
    assert_string_equal(cJSON_GetObjectItem(fn, "name")->valuestring, "get_weather");
    check_arguments(cJSON_GetObjectItem(fn, "arguments")->valuestring);
    cJSON_Delete(o);
    api_job_deinit(&job);

    job_init(&job, API_KIND_OLLAMA_CHAT);
    o = api_ollama_flavour.whole(&job, &res);
    msg = cJSON_GetObjectItem(o, "message");
    assert_string_equal(cJSON_GetObjectItem(msg, "thinking")->valuestring,
                        "The user wants the weather.");
    call = cJSON_GetArrayItem(cJSON_GetObjectItem(msg, "tool_calls"), 0);
    fn = cJSON_GetObjectItem(call, "function");
    assert_true(cJSON_IsObject(cJSON_GetObjectItem(fn, "arguments")));
    cJSON_Delete(o);
    api_job_deinit(&job);
    api_result_deinit(&res);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_openai_stream),
        cmocka_unit_test(test_ollama_stream),
        cmocka_unit_test(test_whole),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
