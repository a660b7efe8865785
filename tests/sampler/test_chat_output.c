// SPDX-License-Identifier: MIT
// Chat output parser tests: recorded outputs in every family's tool-call format (text before a
// call, several calls, reasoning and a call, malformed and unterminated calls, markers inside
// JSON strings), each checked against hand-written expectations and then fed again split at
// every byte boundary, one byte at a time and in random pieces, where the events must add up
// to the same answer; format detection on the real templates in ../shared, and the templates'
// own renderings of tool calls read back into the calls they came from; the JSON scanner; and
// allocation failures.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "base/alloc.h"
#include "base/buffer.h"
#include "base/utf8.h"
#include "sampler/chat_output.h"
#include "sampler/chat_output_internal.h"
#include "util.h"

enum { MAX_CALLS = 4 };

typedef struct expect_call {
    const char *name;
    const char *args;
} expect_call;

// One recorded output and what it must parse into.
typedef struct output_case {
    const char *title;
    chat_output_format format;
    bool tools;
    bool no_reasoning;    // options.reasoning off
    bool starts_thinking; // options.starts_in_reasoning
    bool single_call;     // options.parallel_tool_calls off
    const char *text;
    const char *content;
    const char *reasoning;
    expect_call calls[MAX_CALLS];
} output_case;

static const char weather_tools[] =
    "[{\"type\": \"function\", \"function\": {\"name\": \"run\", \"parameters\": {\"type\": "
    "\"object\", \"properties\": {\"code\": {\"type\": \"string\"}, \"flag\": {\"type\": "
    "\"boolean\"}, \"items\": {\"type\": \"array\"}, \"n\": {\"type\": \"integer\"}}}}}]";

#define HERMES CHAT_OUTPUT_FORMAT_HERMES
#define CODER CHAT_OUTPUT_FORMAT_QWEN3_CODER
#define LLAMA CHAT_OUTPUT_FORMAT_LLAMA3
#define MISTRAL CHAT_OUTPUT_FORMAT_MISTRAL
#define HARMONY CHAT_OUTPUT_FORMAT_HARMONY
#define DEEPSEEK CHAT_OUTPUT_FORMAT_DEEPSEEK
#define NONE CHAT_OUTPUT_FORMAT_NONE
#define DS_CALLS "<｜tool▁calls▁begin｜>"
#define DS_CALLS_END "<｜tool▁calls▁end｜>"
#define DS_CALL "<｜tool▁call▁begin｜>"
#define DS_END "<｜tool▁call▁end｜>"
#define DS_SEP "<｜tool▁sep｜>"

static const output_case cases[] = {
    // ---- Hermes, Qwen2.5, Qwen3 ----
    {"hermes: text then a call",
     HERMES,
     true,
     false,
     false,
     false,
     "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": "
     "\"Paris\"}}\n</tool_call>",
     "Let me check.",
     "",
     {{"get_weather", "{\"city\": \"Paris\"}"}}},
    {"hermes: two calls",
     HERMES,
     true,
     false,
     false,
     false,
     "<tool_call>\n{\"name\": \"a\", \"arguments\": {}}\n</tool_call>\n<tool_call>\n{\"name\": "
     "\"b\", \"arguments\": {\"x\": [1, 2.5e3, true, null]}}\n</tool_call>",
     "",
     "",
     {{"a", "{}"}, {"b", "{\"x\": [1, 2.5e3, true, null]}"}}},
    {"hermes: reasoning then a call (Qwen3)",
     HERMES,
     true,
     false,
     false,
     false,
     "<think>\nThe user wants weather; call the tool.\n</think>\n\n<tool_call>\n{\"name\": "
     "\"get_weather\", \"arguments\": {\"city\": \"東京\"}}\n</tool_call>",
     "",
     "The user wants weather; call the tool.",
     {{"get_weather", "{\"city\": \"東京\"}"}}},
    {"hermes: markers inside JSON strings",
     HERMES,
     true,
     false,
     false,
     false,
     "<tool_call>{\"name\": \"echo\", \"arguments\": {\"s\": \"</tool_call> <tool_call> "
     "\\\"}\\\" {\"}}</tool_call>",
     "",
     "",
     {{"echo", "{\"s\": \"</tool_call> <tool_call> \\\"}\\\" {\"}"}}},
    {"hermes: arguments as a JSON string",
     HERMES,
     true,
     false,
     false,
     false,
     "<tool_call>{\"name\": \"f\", \"arguments\": \"{\\\"a\\\": 1}\"}</tool_call>",
     "",
     "",
     {{"f", "{\"a\": 1}"}}},
    {"hermes: parameters instead of arguments",
     HERMES,
     true,
     false,
     false,
     false,
     "<tool_call>{\"name\": \"f\", \"parameters\": {\"a\": -0.5}}</tool_call> Done.",
     "Done.",
     "",
     {{"f", "{\"a\": -0.5}"}}},
    {"hermes: malformed JSON is content",
     HERMES,
     true,
     false,
     false,
     false,
     "Try: <tool_call>\n{\"name\": \"f\", \"arguments\": {oops}}\n</tool_call>",
     "Try: <tool_call>\n{\"name\": \"f\", \"arguments\": {oops}}\n</tool_call>",
     "",
     {{0}}},
    {"hermes: not JSON at all is content",
     HERMES,
     true,
     false,
     false,
     false,
     "<tool_call>get_weather(Paris)</tool_call> ok",
     "<tool_call>get_weather(Paris)</tool_call> ok",
     "",
     {{0}}},
    {"hermes: an object without a name is content",
     HERMES,
     true,
     false,
     false,
     false,
     "<tool_call>{\"foo\": 1}</tool_call>",
     "<tool_call>{\"foo\": 1}</tool_call>",
     "",
     {{0}}},
    {"hermes: unterminated call is content",
     HERMES,
     true,
     false,
     false,
     false,
     "Sure <tool_call>\n{\"name\": \"f\", \"argu",
     "Sure <tool_call>\n{\"name\": \"f\", \"argu",
     "",
     {{0}}},
    {"hermes: JSON closed but no end marker",
     HERMES,
     true,
     false,
     false,
     false,
     "<tool_call>{\"name\": \"f\", \"arguments\": {}} trailing",
     "<tool_call>{\"name\": \"f\", \"arguments\": {}} trailing",
     "",
     {{0}}},
    {"hermes: output ends where </tool_call> was due",
     HERMES,
     true,
     false,
     false,
     false,
     "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": 1}}\n</tool_",
     "",
     "",
     {{"f", "{\"a\": 1}"}}},
    {"hermes: a marker prefix at the end is content",
     HERMES,
     true,
     false,
     false,
     false,
     "a < b and <tool",
     "a < b and <tool",
     "",
     {{0}}},
    {"hermes: without tools markers are content",
     HERMES,
     false,
     false,
     false,
     false,
     "<tool_call>{\"name\": \"f\", \"arguments\": {}}</tool_call>",
     "<tool_call>{\"name\": \"f\", \"arguments\": {}}</tool_call>",
     "",
     {{0}}},
    {"hermes: parallel calls off keeps the first",
     HERMES,
     true,
     false,
     false,
     true,
     "<tool_call>{\"name\": \"a\", \"arguments\": {}}</tool_call>\n<tool_call>{\"name\": \"b\", "
     "\"arguments\": {}}</tool_call> extra",
     "",
     "",
     {{"a", "{}"}}},
    {"hermes: a bad name is content",
     HERMES,
     true,
     false,
     false,
     false,
     "<tool_call>{\"name\": \"\", \"arguments\": {}}</tool_call>",
     "<tool_call>{\"name\": \"\", \"arguments\": {}}</tool_call>",
     "",
     {{0}}},
    {"hermes: UTF-8 text around a call",
     HERMES,
     true,
     false,
     false,
     false,
     "Voilà — 東京 ✓ 🙂<tool_call>{\"name\": \"f\", \"arguments\": {\"é\": \"ü\"}}</tool_call>"
     "\n\nÀ bientôt 🙂",
     "Voilà — 東京 ✓ 🙂À bientôt 🙂",
     "",
     {{"f", "{\"é\": \"ü\"}"}}},
    // ---- Qwen3-Coder ----
    {"qwen3-coder: text then a call, inferred types",
     CODER,
     true,
     false,
     false,
     false,
     "I'll list the files.\n<tool_call>\n<function=run_shell>\n<parameter=command>\nls -la "
     "\"my dir\"\n</parameter>\n<parameter=timeout>\n30\n</parameter>\n<parameter=opts>\n{\"a\": "
     "[1]}\n</parameter>\n<parameter=dry>\nfalse\n</parameter>\n</function>\n</tool_call>",
     "I'll list the files.",
     "",
     {{"run_shell",
       "{\"command\": \"ls -la \\\"my dir\\\"\", \"timeout\": 30, \"opts\": {\"a\": "
       "[1]}, \"dry\": false}"}}},
    {"qwen3-coder: schema types",
     CODER,
     true,
     false,
     false,
     false,
     "<tool_call>\n<function=run>\n<parameter=code>\n42\n</parameter>\n<parameter=flag>\nTrue\n"
     "</parameter>\n<parameter=items>\n[1, 2]\n</parameter>\n<parameter=n>\nmany\n</parameter>\n"
     "</function>\n</tool_call>",
     "",
     "",
     {{"run", "{\"code\": \"42\", \"flag\": true, \"items\": [1, 2], \"n\": \"many\"}"}}},
    {"qwen3-coder: multi-line value and two calls",
     CODER,
     true,
     false,
     false,
     false,
     "<tool_call>\n<function=write>\n<parameter=text>\nline 1\n\tline \"2\"\n</parameter>\n"
     "</function>\n</tool_call>\n<tool_call>\n<function=noop>\n</function>\n</tool_call>",
     "",
     "",
     {{"write", "{\"text\": \"line 1\\n\\tline \\\"2\\\"\"}"}, {"noop", "{}"}}},
    {"qwen3-coder: output ends before </tool_call>",
     CODER,
     true,
     false,
     false,
     false,
     "<tool_call>\n<function=f>\n<parameter=a>\nx\n</parameter>\n</function>\n",
     "",
     "",
     {{"f", "{\"a\": \"x\"}"}}},
    {"qwen3-coder: output ends inside a parameter",
     CODER,
     true,
     false,
     false,
     false,
     "<tool_call>\n<function=f>\n<parameter=a>\nx\n</param",
     "<tool_call>\n<function=f>\n<parameter=a>\nx\n</param",
     "",
     {{0}}},
    {"qwen3-coder: missing </function> is content",
     CODER,
     true,
     false,
     false,
     false,
     "<tool_call>\n<function=f>\n<parameter=a>\n1\n</parameter>\n</tool_call>",
     "<tool_call>\n<function=f>\n<parameter=a>\n1\n</parameter>\n</tool_call>",
     "",
     {{0}}},
    // ---- Llama 3.x ----
    {"llama3: a bare JSON call",
     LLAMA,
     true,
     false,
     false,
     false,
     "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}",
     "",
     "",
     {{"get_weather", "{\"city\": \"Paris\"}"}}},
    {"llama3: two bare calls separated by ';'",
     LLAMA,
     true,
     false,
     false,
     false,
     "{\"name\": \"a\", \"parameters\": {}}; {\"type\": \"function\", \"name\": \"b\", "
     "\"parameters\": {\"x\": 1}}",
     "",
     "",
     {{"a", "{}"}, {"b", "{\"x\": 1}"}}},
    {"llama3: python_tag JSON",
     LLAMA,
     true,
     false,
     false,
     false,
     "<|python_tag|>{\"name\": \"f\", \"parameters\": {\"q\": \"}\"}}",
     "",
     "",
     {{"f", "{\"q\": \"}\"}"}}},
    {"llama3: python_tag builtin call",
     LLAMA,
     true,
     false,
     false,
     false,
     "<|python_tag|>brave_search.call(query=\"weather in Paris\", count=3)",
     "",
     "",
     {{"brave_search", "{\"query\": \"weather in Paris\", \"count\": 3}"}}},
    {"llama3: python code is content",
     LLAMA,
     true,
     false,
     false,
     false,
     "<|python_tag|>print(1 + 1)",
     "<|python_tag|>print(1 + 1)",
     "",
     {{0}}},
    {"llama3: JSON that is not a call is content",
     LLAMA,
     true,
     false,
     false,
     false,
     "{\"answer\": 42}",
     "{\"answer\": 42}",
     "",
     {{0}}},
    {"llama3: JSON after text is content",
     LLAMA,
     true,
     false,
     false,
     false,
     "Here: {\"name\": \"f\", \"parameters\": {}}",
     "Here: {\"name\": \"f\", \"parameters\": {}}",
     "",
     {{0}}},
    {"llama3: unterminated JSON is content",
     LLAMA,
     true,
     false,
     false,
     false,
     "{\"name\": \"f\", \"parameters\": {\"a\": [",
     "{\"name\": \"f\", \"parameters\": {\"a\": [",
     "",
     {{0}}},
    // ---- Mistral ----
    {"mistral: JSON list of calls",
     MISTRAL,
     true,
     false,
     false,
     false,
     "[TOOL_CALLS][{\"name\": \"a\", \"arguments\": {\"x\": 1.50}, \"id\": \"abcdefghi\"}, "
     "{\"name\": \"b\", \"arguments\": {}}]",
     "",
     "",
     {{"a", "{\"x\": 1.50}"}, {"b", "{}"}}},
    {"mistral: name[ARGS] form after text",
     MISTRAL,
     true,
     false,
     false,
     false,
     "Let me look.[TOOL_CALLS]get_weather[ARGS]{\"city\": \"Paris\"}",
     "Let me look.",
     "",
     {{"get_weather", "{\"city\": \"Paris\"}"}}},
    {"mistral: two calls with call ids",
     MISTRAL,
     true,
     false,
     false,
     false,
     "[TOOL_CALLS]f[CALL_ID]abc123XYZ[ARGS]{\"s\": \"[TOOL_CALLS]\"}[TOOL_CALLS]g[ARGS]{}",
     "",
     "",
     {{"f", "{\"s\": \"[TOOL_CALLS]\"}"}, {"g", "{}"}}},
    {"mistral: no [ARGS] is content",
     MISTRAL,
     true,
     false,
     false,
     false,
     "[TOOL_CALLS]oops no args",
     "[TOOL_CALLS]oops no args",
     "",
     {{0}}},
    {"mistral: a list of non-calls is content",
     MISTRAL,
     true,
     false,
     false,
     false,
     "[TOOL_CALLS][1, 2] then text",
     "[TOOL_CALLS][1, 2] then text",
     "",
     {{0}}},
    // ---- gpt-oss harmony ----
    {"harmony: analysis then final",
     HARMONY,
     false,
     false,
     false,
     false,
     "<|channel|>analysis<|message|>Need a greeting.<|end|><|start|>assistant<|channel|>final"
     "<|message|>Hello there!<|return|>",
     "Hello there!",
     "Need a greeting.",
     {{0}}},
    {"harmony: analysis then a call",
     HARMONY,
     true,
     false,
     false,
     false,
     "<|channel|>analysis<|message|>Call the tool.<|end|><|start|>assistant<|channel|>commentary"
     " to=functions.get_weather <|constrain|>json<|message|>{\"city\": \"Paris\"}<|call|>",
     "",
     "Call the tool.",
     {{"get_weather", "{\"city\": \"Paris\"}"}}},
    {"harmony: recipient before the channel, no <|call|> fed",
     HARMONY,
     true,
     false,
     false,
     false,
     " to=functions.f<|channel|>commentary json<|message|>{}",
     "",
     "",
     {{"f", "{}"}}},
    {"harmony: a preamble, then a call",
     HARMONY,
     true,
     false,
     false,
     false,
     "<|channel|>commentary<|message|>Checking now.<|end|><|start|>assistant to=functions.g"
     "<|channel|>commentary json<|message|>{\"a\": 1}<|call|>",
     "Checking now.",
     "",
     {{"g", "{\"a\": 1}"}}},
    {"harmony: malformed arguments are content",
     HARMONY,
     true,
     false,
     false,
     false,
     "<|channel|>commentary to=functions.f <|constrain|>json<|message|>{bad<|call|>",
     "<|channel|>commentary to=functions.f <|constrain|>json<|message|>{bad",
     "",
     {{0}}},
    {"harmony: without tools a call is content",
     HARMONY,
     false,
     false,
     false,
     false,
     "<|channel|>commentary to=functions.f <|constrain|>json<|message|>{}<|call|>",
     "<|channel|>commentary to=functions.f <|constrain|>json<|message|>{}",
     "",
     {{0}}},
    {"harmony: analysis is reasoning even with reasoning off",
     HARMONY,
     false,
     true,
     false,
     false,
     "<|channel|>analysis<|message|>Hmm.<|end|><|start|>assistant<|channel|>final<|message|>Hi"
     "<|return|>",
     "Hi",
     "Hmm.",
     {{0}}},
    {"harmony: parallel calls off keeps the first",
     HARMONY,
     true,
     false,
     false,
     true,
     "<|channel|>commentary to=functions.a json<|message|>{}<|call|><|start|>assistant"
     "<|channel|>commentary to=functions.b json<|message|>{}<|call|>",
     "",
     "",
     {{"a", "{}"}}},
    {"harmony: plain text is content",
     HARMONY,
     true,
     false,
     false,
     false,
     "Just text.",
     "Just text.",
     "",
     {{0}}},
    {"harmony: unterminated analysis",
     HARMONY,
     true,
     false,
     false,
     false,
     "<|channel|>analysis<|message|>Thinking about ",
     "",
     "Thinking about",
     {{0}}},
    // ---- DeepSeek ----
    {"deepseek: R1 form after text",
     DEEPSEEK,
     true,
     false,
     false,
     false,
     "Checking." DS_CALLS DS_CALL "function" DS_SEP "get_weather\n```json\n{\"city\": "
     "\"Paris\"}\n```" DS_END DS_CALLS_END,
     "Checking.",
     "",
     {{"get_weather", "{\"city\": \"Paris\"}"}}},
    {"deepseek: V3.1 form, two calls",
     DEEPSEEK,
     true,
     false,
     false,
     false,
     DS_CALLS DS_CALL "get_weather" DS_SEP "{\"city\": \"Paris\"}" DS_END DS_CALL "get_time" DS_SEP
                      "{}" DS_END DS_CALLS_END,
     "",
     "",
     {{"get_weather", "{\"city\": \"Paris\"}"}, {"get_time", "{}"}}},
    {"deepseek: prompt opened <think>",
     DEEPSEEK,
     true,
     false,
     true,
     false,
     "Let me think.\n</think>\n\nThe answer is 4.",
     "The answer is 4.",
     "Let me think.",
     {{0}}},
    {"deepseek: reasoning then a call",
     DEEPSEEK,
     true,
     false,
     true,
     false,
     "I need the time.</think>" DS_CALLS DS_CALL "function" DS_SEP
     "get_time\n```json\n{}\n```" DS_END DS_CALLS_END,
     "",
     "I need the time.",
     {{"get_time", "{}"}}},
    {"deepseek: output ends before the call's end token",
     DEEPSEEK,
     true,
     false,
     false,
     false,
     DS_CALLS DS_CALL "f" DS_SEP "{\"a\": 1}",
     "",
     "",
     {{"f", "{\"a\": 1}"}}},
    {"deepseek: unterminated call is content",
     DEEPSEEK,
     true,
     false,
     false,
     false,
     DS_CALLS DS_CALL "f" DS_SEP "{\"a\":",
     DS_CALL "f" DS_SEP "{\"a\":",
     "",
     {{0}}},
    // ---- Reasoning alone ----
    {"think: block then answer",
     NONE,
     false,
     false,
     false,
     false,
     "<think>\nhmm, 2+2\n</think>\n\nIt is 4.\n",
     "It is 4.\n",
     "hmm, 2+2",
     {{0}}},
    {"think: reasoning off keeps the tags",
     NONE,
     false,
     true,
     false,
     false,
     "<think>hmm</think>It is 4.",
     "<think>hmm</think>It is 4.",
     "",
     {{0}}},
    {"think: tags after text are content",
     NONE,
     false,
     false,
     false,
     false,
     "Say <think> and </think>.",
     "Say <think> and </think>.",
     "",
     {{0}}},
    {"think: unterminated reasoning",
     NONE,
     false,
     false,
     false,
     false,
     "  <think>\nstill thinking \n",
     "",
     "still thinking",
     {{0}}},
    {"think: empty block (Qwen3 without thinking)",
     NONE,
     false,
     false,
     false,
     false,
     "<think>\n\n</think>\n\nHi",
     "Hi",
     "",
     {{0}}},
    {"think: starts in reasoning, never closed",
     NONE,
     false,
     false,
     true,
     false,
     "all reasoning",
     "",
     "all reasoning",
     {{0}}},
    {"plain: white space is kept",
     NONE,
     false,
     false,
     false,
     false,
     "  Hello,\n\n world \n",
     "  Hello,\n\n world \n",
     "",
     {{0}}},
};

static chat_output_options case_options(const output_case *c)
{
    chat_output_options o = chat_output_options_default();
    o.format = c->format;
    o.tools = c->tools;
    o.reasoning = !c->no_reasoning;
    o.starts_in_reasoning = c->starts_thinking;
    o.parallel_tool_calls = !c->single_call;
    o.tools_json = weather_tools;
    o.tools_json_len = strlen(weather_tools);
    o.id_seed = 12345;
    return o;
}

static size_t expected_calls(const output_case *c)
{
    size_t n = 0;
    while (n < MAX_CALLS && c->calls[n].name)
        n++;
    return n;
}

// The events of one feed, appended to a transcript: adjacent texts of one kind merge, so
// that transcripts of different splits compare equal exactly when the answers do.
typedef struct transcript {
    garlic_buf text;
    int last; // the kind of the last text appended, or -1
    uint32_t last_index;
} transcript;

static void transcript_add(transcript *t, const chat_output_event *ev, size_t n, bool utf8_whole)
{
    static const char tags[] = "CRBAE";
    for (size_t i = 0; i < n; i++) {
        const chat_output_event *e = &ev[i];
        assert_true(e->kind < CHAT_OUTPUT_EVENT_COUNT);
        if (e->text) {
            assert_true(e->len > 0);
            if (utf8_whole && e->kind != CHAT_OUTPUT_EVENT_CALL_ARGUMENTS)
                assert_true(utf8_valid(e->text, e->len));
            if (t->last != (int)e->kind || t->last_index != e->index)
                garlic_buf_printf(&t->text, "\n%c%u:", tags[e->kind], e->index);
            garlic_buf_append(&t->text, e->text, e->len);
            t->last = (int)e->kind;
            t->last_index = e->index;
            continue;
        }
        t->last = -1;
        if (e->kind == CHAT_OUTPUT_EVENT_CALL_BEGIN)
            garlic_buf_printf(&t->text, "\nB%u:%s:%s", e->index, e->id, e->name);
        else
            garlic_buf_printf(&t->text, "\nE%u", e->index);
    }
}

// Feeds text in pieces cut at cuts[0..n_cuts) (increasing offsets) and returns the transcript
// (free it with garlic_free).
static char *run_split(const chat_output_options *o, const char *text, const size_t *cuts,
                       size_t n_cuts)
{
    garlic_error err = {0};
    chat_output *p = chat_output_new(o, &err);
    if (!p)
        fail_msg("chat_output_new: %s", err.message);
    transcript t = {.last = -1};
    bool whole = utf8_valid(text, strlen(text));
    size_t from = 0, len = strlen(text);
    const chat_output_event *ev;
    size_t n;
    for (size_t i = 0; i <= n_cuts; i++) {
        size_t to = i < n_cuts ? cuts[i] : len;
        assert_int_equal(chat_output_feed(p, text + from, to - from, &ev, &n, &err), GARLIC_OK);
        transcript_add(&t, ev, n, whole);
        from = to;
    }
    assert_int_equal(chat_output_finish(p, &ev, &n, &err), GARLIC_OK);
    transcript_add(&t, ev, n, whole);
    // After the end nothing more comes.
    assert_int_equal(chat_output_feed(p, "x", 1, &ev, &n, &err), GARLIC_OK);
    assert_int_equal(n, 0);
    chat_output_free(p);
    return garlic_buf_take(&t.text);
}

static void check_case(const output_case *c)
{
    chat_output_options o = case_options(c);
    garlic_error err = {0};
    chat_output_result r;
    if (chat_output_parse(&o, c->text, strlen(c->text), &r, &err) != GARLIC_OK)
        fail_msg("%s: %s", c->title, err.message);
    if (strcmp(r.content, c->content) || strcmp(r.reasoning, c->reasoning))
        fail_msg("%s:\ncontent   '%s'\nexpected  '%s'\nreasoning '%s'\nexpected  '%s'", c->title,
                 r.content, c->content, r.reasoning, c->reasoning);
    size_t n = expected_calls(c);
    if (r.n_calls != n)
        fail_msg("%s: %zu calls, expected %zu", c->title, r.n_calls, n);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(r.calls[i].name, c->calls[i].name) ||
            strcmp(r.calls[i].arguments, c->calls[i].args))
            fail_msg("%s: call %zu is %s(%s), expected %s(%s)", c->title, i, r.calls[i].name,
                     r.calls[i].arguments, c->calls[i].name, c->calls[i].args);
        size_t id_len = strlen(r.calls[i].id);
        if (c->format == CHAT_OUTPUT_FORMAT_MISTRAL)
            assert_int_equal(id_len, 9);
        else
            assert_true(id_len == 29 && !strncmp(r.calls[i].id, "call_", 5));
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(r.calls[i].id, r.calls[j].id);
        assert_true(chat_output_json_is_value(r.calls[i].arguments, strlen(r.calls[i].arguments)));
    }
    chat_output_result_deinit(&r);
}

static void test_cases(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        check_case(&cases[i]);
}

// Every split must give the transcript of the whole text: in two at every byte, one byte at a
// time, and in random pieces.
static void test_splits(void **state)
{
    (void)state;
    test_rng rng;
    test_rng_seed(&rng, 7);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const output_case *c = &cases[i];
        chat_output_options o = case_options(c);
        size_t len = strlen(c->text);
        char *whole = run_split(&o, c->text, NULL, 0);
        size_t *cuts = malloc((len + 1) * sizeof *cuts);
        assert_non_null(cuts);
        for (size_t at = 0; at <= len; at++) {
            cuts[0] = at;
            char *split = run_split(&o, c->text, cuts, 1);
            if (strcmp(split, whole))
                fail_msg("%s: split at %zu gives\n%s\nwhole text gives\n%s", c->title, at, split,
                         whole);
            garlic_free(split);
        }
        for (size_t at = 0; at < len; at++)
            cuts[at] = at + 1;
        char *bytes = run_split(&o, c->text, cuts, len ? len - 1 : 0);
        if (strcmp(bytes, whole))
            fail_msg("%s: byte by byte gives\n%s\nwhole text gives\n%s", c->title, bytes, whole);
        garlic_free(bytes);
        for (int round = 0; round < 20; round++) {
            size_t n_cuts = 0;
            for (size_t at = 1; at < len; at++)
                if (test_rng_u64(&rng) % 4 == 0)
                    cuts[n_cuts++] = at;
            char *random = run_split(&o, c->text, cuts, n_cuts);
            if (strcmp(random, whole))
                fail_msg("%s: random pieces give\n%s\nwhole text gives\n%s", c->title, random,
                         whole);
            garlic_free(random);
        }
        free(cuts);
        garlic_free(whole);
    }
}

// Events come out as soon as they can: content before a marker is not held, a call's events
// come together once it closes, and only a possible marker prefix waits.
static void test_streaming_order(void **state)
{
    (void)state;
    chat_output_options o = chat_output_options_default();
    o.format = CHAT_OUTPUT_FORMAT_HERMES;
    o.tools = true;
    o.id_seed = 1;
    garlic_error err = {0};
    chat_output *p = chat_output_new(&o, &err);
    assert_non_null(p);
    const chat_output_event *ev;
    size_t n;
    assert_int_equal(chat_output_feed(p, "<think>plan", 11, &ev, &n, &err), GARLIC_OK);
    assert_int_equal(n, 1);
    assert_int_equal(ev[0].kind, CHAT_OUTPUT_EVENT_REASONING);
    assert_memory_equal(ev[0].text, "plan", 4);
    assert_int_equal(chat_output_feed(p, "</think>Hi <tool", 16, &ev, &n, &err), GARLIC_OK);
    assert_int_equal(n, 1);
    assert_int_equal(ev[0].kind, CHAT_OUTPUT_EVENT_CONTENT);
    assert_int_equal(ev[0].len, 2); // "Hi": the blank and "<tool" wait
    const char *call = "_call>{\"name\": \"f\", \"arguments\": {\"a\": 1}}";
    assert_int_equal(chat_output_feed(p, call, strlen(call), &ev, &n, &err), GARLIC_OK);
    assert_int_equal(n, 0);
    assert_int_equal(chat_output_feed(p, "</tool_call>", 12, &ev, &n, &err), GARLIC_OK);
    assert_int_equal(n, 3);
    assert_int_equal(ev[0].kind, CHAT_OUTPUT_EVENT_CALL_BEGIN);
    assert_string_equal(ev[0].name, "f");
    assert_int_equal(ev[0].index, 0);
    assert_int_equal(ev[1].kind, CHAT_OUTPUT_EVENT_CALL_ARGUMENTS);
    assert_int_equal(ev[1].len, strlen("{\"a\": 1}"));
    assert_int_equal(ev[2].kind, CHAT_OUTPUT_EVENT_CALL_END);
    assert_int_equal(chat_output_call_count(p), 1);
    assert_int_equal(chat_output_finish(p, &ev, &n, &err), GARLIC_OK);
    assert_int_equal(n, 0);
    // A reset parser starts over, with a new id.
    chat_output_reset(p);
    assert_int_equal(chat_output_call_count(p), 0);
    assert_int_equal(chat_output_feed(p,
                                      "<tool_call>{\"name\": \"g\", \"arguments\": {}}</tool_call>",
                                      53, &ev, &n, &err),
                     GARLIC_OK);
    assert_int_equal(n, 3);
    assert_string_equal(ev[0].name, "g");
    assert_int_equal(ev[0].index, 0);
    chat_output_free(p);
    // Finishing a parser that was never fed gives nothing.
    p = chat_output_new(&o, &err);
    assert_int_equal(chat_output_finish(p, &ev, &n, &err), GARLIC_OK);
    assert_int_equal(n, 0);
    chat_output_free(p);
    // UTF-8 split inside a character is held until the character is whole.
    o.format = CHAT_OUTPUT_FORMAT_NONE;
    p = chat_output_new(&o, &err);
    assert_int_equal(chat_output_feed(p, "a\xe6\x9d", 3, &ev, &n, &err), GARLIC_OK);
    assert_int_equal(n, 1);
    assert_int_equal(ev[0].len, 1);
    assert_int_equal(chat_output_feed(p, "\xb1", 1, &ev, &n, &err), GARLIC_OK);
    assert_int_equal(n, 1);
    assert_int_equal(ev[0].len, 3);
    chat_output_free(p);
}

// Ids differ from call to call and from seed to seed; the same seed repeats them.
static void test_ids(void **state)
{
    (void)state;
    chat_output_options o = chat_output_options_default();
    o.format = CHAT_OUTPUT_FORMAT_HERMES;
    o.tools = true;
    const char *text = "<tool_call>{\"name\": \"f\", \"arguments\": {}}</tool_call>";
    chat_output_result a, b, c;
    o.id_seed = 99;
    assert_int_equal(chat_output_parse(&o, text, strlen(text), &a, NULL), GARLIC_OK);
    assert_int_equal(chat_output_parse(&o, text, strlen(text), &b, NULL), GARLIC_OK);
    o.id_seed = 0; // from the system
    assert_int_equal(chat_output_parse(&o, text, strlen(text), &c, NULL), GARLIC_OK);
    assert_string_equal(a.calls[0].id, b.calls[0].id);
    assert_string_not_equal(a.calls[0].id, c.calls[0].id);
    for (const char *s = a.calls[0].id + 5; *s; s++)
        assert_true((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
                    (*s >= '0' && *s <= '9'));
    chat_output_result_deinit(&a);
    chat_output_result_deinit(&b);
    chat_output_result_deinit(&c);
}

static void test_options(void **state)
{
    (void)state;
    garlic_error err = {0};
    chat_output_options o = chat_output_options_default();
    o.format = CHAT_OUTPUT_FORMAT_COUNT;
    assert_null(chat_output_new(&o, &err));
    assert_int_equal(err.code, GARLIC_EINVAL);
    assert_non_null(strstr(err.message, "format"));
    o.format = CHAT_OUTPUT_FORMAT_HERMES;
    o.tools_json = "{\"not\": \"a list\"}";
    o.tools_json_len = strlen(o.tools_json);
    assert_null(chat_output_new(&o, &err));
    assert_non_null(strstr(err.message, "tools"));
    o.tools_json = "[{";
    o.tools_json_len = 2;
    assert_null(chat_output_new(&o, &err));
    assert_non_null(strstr(err.message, "tools"));
    chat_output_format f;
    for (int i = 0; i < CHAT_OUTPUT_FORMAT_COUNT; i++) {
        assert_int_equal(chat_output_format_parse(chat_output_format_name(i), &f, &err), GARLIC_OK);
        assert_int_equal(f, i);
    }
    assert_int_equal(chat_output_format_parse("hermes2", &f, &err), GARLIC_EINVAL);
    assert_non_null(strstr(err.message, "hermes2"));
    assert_string_equal(chat_output_format_name(CHAT_OUTPUT_FORMAT_COUNT), "unknown");
    chat_output_free(NULL);
}

// The JSON scanner: complete, incomplete and invalid texts.
static void test_json_scan(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        chat_output_json_status status;
    } rows[] = {
        {"{}", CHAT_OUTPUT_JSON_COMPLETE},
        {" {\"a\": [1, -2.5e+3, true, false, null, \"\\u00e9\\n\"]} ", CHAT_OUTPUT_JSON_COMPLETE},
        {"[", CHAT_OUTPUT_JSON_INCOMPLETE},
        {"{\"a\"", CHAT_OUTPUT_JSON_INCOMPLETE},
        {"{\"a\": tr", CHAT_OUTPUT_JSON_INCOMPLETE},
        {"\"\\u12", CHAT_OUTPUT_JSON_INCOMPLETE},
        {"12", CHAT_OUTPUT_JSON_INCOMPLETE}, // more digits may follow
        {"12 ", CHAT_OUTPUT_JSON_COMPLETE},
        {"{a: 1}", CHAT_OUTPUT_JSON_INVALID},
        {"[1,]", CHAT_OUTPUT_JSON_INVALID},
        {"01",
         CHAT_OUTPUT_JSON_COMPLETE}, // "0" then "1": the value is 0 (callers check what follows)
        {"\"\\x\"", CHAT_OUTPUT_JSON_INVALID},
        {"\"a\nb\"", CHAT_OUTPUT_JSON_INVALID},
        {"{\"a\" 1}", CHAT_OUTPUT_JSON_INVALID},
        {"truth", CHAT_OUTPUT_JSON_INVALID},
        {"1.", CHAT_OUTPUT_JSON_INCOMPLETE},
        {"1.e", CHAT_OUTPUT_JSON_INVALID},
        {"\"\\ud83d\\ude00\"", CHAT_OUTPUT_JSON_COMPLETE}, // a surrogate pair
        {"\"\\ud83d\\u", CHAT_OUTPUT_JSON_INCOMPLETE},
        {"\"\\ud83d\"", CHAT_OUTPUT_JSON_INVALID}, // a high surrogate alone
        {"\"\\ude00\"", CHAT_OUTPUT_JSON_INVALID}, // a low surrogate alone
        {"\"\\ud83d\\u0041\"", CHAT_OUTPUT_JSON_INVALID},
    };
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
        size_t end = 0;
        chat_output_json_status st = chat_output_json_scan(rows[i].text, strlen(rows[i].text),
                                                           &end);
        if (st != rows[i].status)
            fail_msg("'%s': status %d, expected %d", rows[i].text, st, rows[i].status);
    }
    assert_false(chat_output_json_is_value("01", 2));
    assert_true(chat_output_json_is_value(" 12 ", 4));
    assert_false(chat_output_json_is_value("{} {}", 5));
    char deep[300];
    memset(deep, '[', 200);
    memset(deep + 200, ']', 99);
    deep[299] = '\0';
    size_t end;
    assert_int_equal(chat_output_json_scan(deep, 299, &end), CHAT_OUTPUT_JSON_INVALID); // too deep
    garlic_buf b = {0};
    assert_int_equal(chat_output_json_append_string(&b, "a\"\\\n\x01é", 7), GARLIC_OK);
    assert_string_equal(b.data, "\"a\\\"\\\\\\n\\u0001é\"");
    garlic_buf_deinit(&b);
}

// ---- Detection ----

static void test_detect_templates(void **state)
{
    (void)state;
    skip_without_shared();
    static const struct {
        const char *name;
        chat_output_format format;
        bool reasoning;
    } rows[] = {
        {"NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use", HERMES, false},
        {"NousResearch-Hermes-3-Llama-3.1-8B-tool_use", HERMES, false},
        {"Qwen-Qwen2.5-7B-Instruct", HERMES, false},
        {"Qwen-Qwen3-0.6B", HERMES, true},
        {"Qwen-QwQ-32B", HERMES, true},
        {"ibm-granite-granite-4.0", HERMES, false},
        {"Qwen3-Coder", CODER, false},
        {"meta-llama-Llama-3.1-8B-Instruct", LLAMA, false},
        {"meta-llama-Llama-3.2-3B-Instruct", LLAMA, false},
        {"meta-llama-Llama-3.3-70B-Instruct", LLAMA, false},
        {"mistralai-Mistral-Nemo-Instruct-2407", MISTRAL, false},
        {"Mistral-Small-3.2-24B-Instruct-2506", MISTRAL, false},
        {"unsloth-mistral-Devstral-Small-2507", MISTRAL, false},
        {"openai-gpt-oss-120b", HARMONY, true},
        {"deepseek-ai-DeepSeek-R1-Distill-Llama-8B", DEEPSEEK, true},
        {"deepseek-ai-DeepSeek-R1-Distill-Qwen-32B", DEEPSEEK, true},
        {"deepseek-ai-DeepSeek-V3.1", DEEPSEEK, true},
        {"GLM-4.6", NONE, true},
        {"moonshotai-Kimi-K2", NONE, false},
        {"google-gemma-2-2b-it", NONE, false},
        {"microsoft-Phi-3.5-mini-instruct", NONE, false},
        {"HuggingFaceTB-SmolLM3-3B", NONE, true},
    };
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
        char rel[256];
        snprintf(rel, sizeof rel, "templates/%s.jinja", rows[i].name);
        size_t size = 0;
        char *src = test_read_file(test_shared_path(rel), &size);
        if (!src)
            fail_msg("%s: cannot read", test_shared_path(rel));
        chat_output_detection d = chat_output_detect(src, size, NULL, NULL, 0);
        if (d.format != rows[i].format || d.reasoning != rows[i].reasoning)
            fail_msg("%s: detected %s (reasoning %d), expected %s (reasoning %d)", rows[i].name,
                     chat_output_format_name(d.format), d.reasoning,
                     chat_output_format_name(rows[i].format), rows[i].reasoning);
        free(src);
    }
}

// Renderings that end in an opened <think> (the R1 distills) start the output in reasoning;
// QwQ's and Qwen3's with thinking off close the block in the prompt.
static void test_detect_prompt(void **state)
{
    (void)state;
    assert_true(chat_output_prompt_opens_reasoning("<|im_start|>assistant\n<think>\n", 30));
    assert_false(chat_output_prompt_opens_reasoning("<think>\n\n</think>\n\n", 19));
    assert_false(chat_output_prompt_opens_reasoning("<|im_start|>assistant\n", 22));
    assert_false(chat_output_prompt_opens_reasoning("", 0));
    skip_without_shared();
    static const char *const dirs[] = {"deepseek-ai-DeepSeek-R1-Distill-Llama-8B", "Qwen-QwQ-32B"};
    size_t opened = 0, closed = 0;
    for (size_t d = 0; d < 2; d++) {
        for (int k = 1; k <= 12; k++) {
            char rel[160];
            snprintf(rel, sizeof rel, "reference/templates/%s/c%d.txt", dirs[d], k);
            size_t size = 0;
            char *txt = test_read_file(test_shared_path(rel), &size);
            if (!txt)
                continue;
            bool open = size >= 8 && !memcmp(txt + size - 8, "<think>\n", 8);
            if (chat_output_prompt_opens_reasoning(txt, size) != open)
                fail_msg("%s: opens reasoning should be %d", rel, open);
            opened += open;
            closed += !open;
            free(txt);
        }
    }
    assert_true(opened > 0 && closed > 0);
}

static void test_detect_tokens(void **state)
{
    (void)state;
    const char *qwen[] = {"<|im_start|>", "<tool_call>", "</tool_call>", "<think>"};
    chat_output_detection d = chat_output_detect(NULL, 0, "qwen3", qwen, 4);
    assert_int_equal(d.format, HERMES);
    assert_true(d.reasoning);
    const char *llama[] = {"<|begin_of_text|>", "<|python_tag|>", "<|eom_id|>"};
    d = chat_output_detect(NULL, 0, "llama", llama, 3);
    assert_int_equal(d.format, LLAMA);
    assert_false(d.reasoning);
    const char *mistral[] = {"[INST]", "[TOOL_CALLS]"};
    assert_int_equal(chat_output_detect(NULL, 0, "llama", mistral, 2).format, MISTRAL);
    const char *ds[] = {"<｜tool▁call▁begin｜>", "<think>"};
    assert_int_equal(chat_output_detect(NULL, 0, "deepseek2", ds, 2).format, DEEPSEEK);
    d = chat_output_detect(NULL, 0, "gpt-oss", NULL, 0);
    assert_int_equal(d.format, HARMONY);
    assert_true(d.reasoning);
    assert_int_equal(chat_output_detect(NULL, 0, NULL, NULL, 0).format, NONE);
}

// The templates' own renderings of an assistant turn with a tool call, read back as if the
// model had written them: the format detected from the template must give back the call the
// case's messages hold (name, and arguments equal as JSON).
static void test_template_round_trip(void **state)
{
    (void)state;
    skip_without_shared();
    static const struct {
        const char *name, *begin, *end;
    } rows[] = {
        {"Qwen-Qwen3-0.6B", "<|im_start|>assistant\n", "<|im_end|>"},
        {"Qwen-Qwen2.5-7B-Instruct", "<|im_start|>assistant\n", "<|im_end|>"},
        {"Qwen-QwQ-32B", "<|im_start|>assistant\n", "<|im_end|>"},
        {"NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use", "<|im_start|>assistant\n", "<|im_end|>"},
        {"Qwen3-Coder", "<|im_start|>assistant\n", "<|im_end|>"},
        {"meta-llama-Llama-3.1-8B-Instruct", "<|start_header_id|>assistant<|end_header_id|>\n\n",
         "<|eot_id|>"},
        {"mistralai-Mistral-Nemo-Instruct-2407", "[/INST]", "</s>"},
        {"Mistral-Small-3.2-24B-Instruct-2506", "[/INST]", "</s>"},
        {"unsloth-mistral-Devstral-Small-2507", "[/INST]", "</s>"},
        {"deepseek-ai-DeepSeek-R1-Distill-Qwen-32B", "<｜Assistant｜>", "<｜end▁of▁sentence｜>"},
        {"deepseek-ai-DeepSeek-V3.1", "<｜Assistant｜><think></think>", "<｜end▁of▁sentence｜>"},
        {"openai-gpt-oss-120b", "<|start|>assistant", "<|start|>functions."},
    };
    size_t checked = 0;
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
        for (int k = 1; k <= 12; k++) {
            char rel[256];
            snprintf(rel, sizeof rel, "reference/templates/%s/c%d.json", rows[i].name, k);
            char *json = test_read_file(test_shared_path(rel), NULL);
            snprintf(rel, sizeof rel, "reference/templates/%s/c%d.txt", rows[i].name, k);
            size_t size = 0;
            char *txt = test_read_file(test_shared_path(rel), &size);
            cJSON *c = json ? cJSON_Parse(json) : NULL;
            cJSON *vars = cJSON_GetObjectItem(c, "variables");
            cJSON *messages = cJSON_GetObjectItem(vars, "messages");
            cJSON *asked = cJSON_GetArrayItem(messages, 0),
                  *answer = cJSON_GetArrayItem(messages, 1);
            cJSON *calls = cJSON_GetObjectItem(answer, "tool_calls");
            const char *question = cJSON_GetStringValue(cJSON_GetObjectItem(asked, "content"));
            if (txt && cJSON_GetArraySize(calls) > 0 && question) {
                snprintf(rel, sizeof rel, "templates/%s.jinja", rows[i].name);
                size_t tsize = 0;
                char *src = test_read_file(test_shared_path(rel), &tsize);
                assert_non_null(src);
                chat_output_detection d = chat_output_detect(src, tsize, NULL, NULL, 0);
                free(src);
                const char *from = strstr(txt, question);
                const char *begin = from ? strstr(from, rows[i].begin) : NULL;
                if (!begin)
                    fail_msg("%s c%d: no '%s' after the question", rows[i].name, k, rows[i].begin);
                begin += strlen(rows[i].begin);
                const char *end = strstr(begin, rows[i].end);
                assert_non_null(end);
                char *tools = cJSON_PrintUnformatted(cJSON_GetObjectItem(vars, "tools"));
                chat_output_options o = chat_output_options_default();
                o.format = d.format;
                o.tools = true;
                o.tools_json = tools;
                o.tools_json_len = tools ? strlen(tools) : 0;
                o.id_seed = 3;
                chat_output_result r;
                assert_int_equal(chat_output_parse(&o, begin, (size_t)(end - begin), &r, NULL),
                                 GARLIC_OK);
                if (r.n_calls != (size_t)cJSON_GetArraySize(calls))
                    fail_msg("%s c%d (%s): %zu calls from '%.*s'", rows[i].name, k,
                             chat_output_format_name(d.format), r.n_calls, (int)(end - begin),
                             begin);
                for (size_t j = 0; j < r.n_calls; j++) {
                    cJSON *fn = cJSON_GetObjectItem(cJSON_GetArrayItem(calls, (int)j), "function");
                    cJSON *want = cJSON_GetObjectItem(fn, "arguments");
                    cJSON *got = cJSON_Parse(r.calls[j].arguments);
                    assert_string_equal(r.calls[j].name,
                                        cJSON_GetStringValue(cJSON_GetObjectItem(fn, "name")));
                    if (!cJSON_Compare(got, want, true))
                        fail_msg("%s c%d: arguments %s", rows[i].name, k, r.calls[j].arguments);
                    cJSON_Delete(got);
                }
                checked++;
                chat_output_result_deinit(&r);
                cJSON_free(tools);
            }
            cJSON_Delete(c);
            free(json);
            free(txt);
        }
    }
    print_message("%zu renderings of tool calls read back\n", checked);
    assert_true(checked >= sizeof rows / sizeof *rows);
}

// Every allocation failure, in every case, gives GARLIC_ENOMEM cleanly and an empty result
// (ASan and valgrind check for leaks); with enough memory the answer is the expected one.
static void test_out_of_memory(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const output_case *c = &cases[i];
        chat_output_options o = case_options(c);
        bool succeeded = false;
        for (long n = 0; n < 400 && !succeeded; n++) {
            chat_output_result r;
            garlic_error err = {0};
            garlic_alloc_fail_after(n);
            int rc = chat_output_parse(&o, c->text, strlen(c->text), &r, &err);
            garlic_alloc_fail_reset();
            if (rc == GARLIC_OK) {
                succeeded = true;
                assert_string_equal(r.content, c->content);
                assert_int_equal(r.n_calls, expected_calls(c));
                chat_output_result_deinit(&r);
            } else {
                assert_int_equal(rc, GARLIC_ENOMEM);
                assert_int_equal(err.code, GARLIC_ENOMEM);
                assert_null(r.content);
                assert_null(r.calls);
            }
        }
        if (!succeeded)
            fail_msg("%s: never succeeded", c->title);
    }
}

// A call longer than CHAT_OUTPUT_MAX_CALL is given up as content.
static void test_call_too_long(void **state)
{
    (void)state;
    size_t len = CHAT_OUTPUT_MAX_CALL + 100;
    char *text = malloc(len + 64);
    assert_non_null(text);
    strcpy(text, "<tool_call>{\"name\": \"f\", \"arguments\": {\"a\": \"");
    size_t at = strlen(text);
    memset(text + at, 'x', len - at);
    strcpy(text + len, "\"}}</tool_call>");
    chat_output_options o = chat_output_options_default();
    o.format = CHAT_OUTPUT_FORMAT_HERMES;
    o.tools = true;
    chat_output_result r;
    assert_int_equal(chat_output_parse(&o, text, strlen(text), &r, NULL), GARLIC_OK);
    assert_int_equal(r.n_calls, 0);
    assert_int_equal(r.content_len, strlen(text));
    chat_output_result_deinit(&r);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cases),
        cmocka_unit_test(test_splits),
        cmocka_unit_test(test_streaming_order),
        cmocka_unit_test(test_ids),
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_json_scan),
        cmocka_unit_test(test_detect_templates),
        cmocka_unit_test(test_detect_prompt),
        cmocka_unit_test(test_detect_tokens),
        cmocka_unit_test(test_template_round_trip),
        cmocka_unit_test(test_out_of_memory),
        cmocka_unit_test(test_call_too_long),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
