// SPDX-License-Identifier: MIT
// libFuzzer target for the chat output parser. The first byte picks the format, the second the
// options (tools, reasoning, starts in reasoning, parallel calls), the third seeds how the
// rest (the model's text) is cut into pieces. The text is parsed whole and then streamed in
// those pieces; the two answers must agree, every call's arguments must be one JSON object,
// and with valid UTF-8 in, every content and reasoning event must be valid UTF-8 on its own.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "base/buffer.h"
#include "base/utf8.h"
#include "sampler/chat_output.h"

static const char tools[] =
    "[{\"type\": \"function\", \"function\": {\"name\": \"f\", \"parameters\": {\"type\": "
    "\"object\", \"properties\": {\"s\": {\"type\": \"string\"}, \"n\": {\"type\": \"number\"}, "
    "\"b\": {\"type\": \"boolean\"}, \"o\": {\"type\": \"object\"}}}}}]";

// The streamed answer, gathered the way chat_output_parse gathers it.
typedef struct gathered {
    garlic_buf content, reasoning, calls; // calls: "id name args\n" per call
} gathered;

static void check(bool ok)
{
    if (!ok)
        abort();
}

static void gather(gathered *g, const chat_output_event *ev, size_t n, bool utf8_in)
{
    for (size_t i = 0; i < n; i++) {
        const chat_output_event *e = &ev[i];
        switch (e->kind) {
        case CHAT_OUTPUT_EVENT_CONTENT:
        case CHAT_OUTPUT_EVENT_REASONING:
            check(!utf8_in || utf8_valid(e->text, e->len));
            garlic_buf_append(e->kind == CHAT_OUTPUT_EVENT_CONTENT ? &g->content : &g->reasoning,
                              e->text, e->len);
            break;
        case CHAT_OUTPUT_EVENT_CALL_BEGIN:
            garlic_buf_printf(&g->calls, "%s %s ", e->id, e->name);
            break;
        case CHAT_OUTPUT_EVENT_CALL_ARGUMENTS: garlic_buf_append(&g->calls, e->text, e->len); break;
        default: garlic_buf_append(&g->calls, "\n", 1); break;
        }
    }
}

static int eq(const garlic_buf *b, const char *s, size_t n)
{
    return b->len == n && (n == 0 || memcmp(b->data, s, n) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    chat_output_options o = chat_output_options_default();
    o.format = (chat_output_format)(data[0] % CHAT_OUTPUT_FORMAT_COUNT);
    o.tools = data[1] & 1;
    o.reasoning = data[1] & 2;
    o.starts_in_reasoning = data[1] & 4;
    o.parallel_tool_calls = data[1] & 8;
    o.tools_json = tools;
    o.tools_json_len = sizeof tools - 1;
    o.id_seed = 42;
    uint32_t cut_state = data[2] * 2654435761u + 1;
    const char *text = (const char *)data + 3;
    size_t len = size - 3;
    bool utf8_in = utf8_valid(text, len);

    chat_output_result whole;
    if (chat_output_parse(&o, text, len, &whole, NULL) != 0)
        return 0;
    gathered g = {0};
    chat_output *p = chat_output_new(&o, NULL);
    check(p != NULL);
    const chat_output_event *ev;
    size_t n;
    for (size_t at = 0; at < len;) {
        cut_state = cut_state * 1103515245u + 12345u;
        size_t piece = 1 + (cut_state >> 16) % 8;
        if (piece > len - at)
            piece = len - at;
        check(chat_output_feed(p, text + at, piece, &ev, &n, NULL) == 0);
        gather(&g, ev, n, utf8_in);
        at += piece;
    }
    check(chat_output_finish(p, &ev, &n, NULL) == 0);
    gather(&g, ev, n, utf8_in);
    check(chat_output_call_count(p) == whole.n_calls);
    chat_output_free(p);

    check(eq(&g.content, whole.content, whole.content_len));
    check(eq(&g.reasoning, whole.reasoning, whole.reasoning_len));
    garlic_buf calls = {0};
    for (size_t i = 0; i < whole.n_calls; i++) {
        const chat_output_call *c = &whole.calls[i];
        check(c->name[0] != '\0');
        cJSON *args = cJSON_Parse(c->arguments);
        check(cJSON_IsObject(args));
        cJSON_Delete(args);
        garlic_buf_printf(&calls, "%s %s %s\n", c->id, c->name, c->arguments);
    }
    check(eq(&g.calls, calls.data, calls.len));
    garlic_buf_deinit(&calls);
    garlic_buf_deinit(&g.content);
    garlic_buf_deinit(&g.reasoning);
    garlic_buf_deinit(&g.calls);
    chat_output_result_deinit(&whole);
    return 0;
}
