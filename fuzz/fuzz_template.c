// SPDX-License-Identifier: MIT
// libFuzzer target for chat templates: parses the input as a Jinja template and, when it
// parses, renders it with a fixed small conversation under tight limits, so that bounds
// bugs in the lexer, parser, interpreter, filters or JSON writer show up under ASan and a
// template that loops or grows forever shows up as a timeout or an RSS blow-up.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "chat/chat.h"

static const char messages[] =
    "[{\"role\": \"system\", \"content\": \"Be brief.\"},"
    " {\"role\": \"user\", \"content\": \"Hi \\u00e9 {{ x }}\"},"
    " {\"role\": \"assistant\", \"content\": null, \"tool_calls\": [{\"id\": \"c1\", \"type\": \"function\","
    "  \"function\": {\"name\": \"f\", \"arguments\": {\"a\": [1, 2.5, true, null]}}}]},"
    " {\"role\": \"tool\", \"content\": \"{\\\"ok\\\": 1}\"}]";
static const char tools[] =
    "[{\"type\": \"function\", \"function\": {\"name\": \"f\", \"parameters\": {}}}]";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    // An exactly-sized copy, so that ASan sees any read past the end.
    char *src = malloc(size ? size : 1);
    if (!src)
        return 0;
    memcpy(src, data, size);
    garlic_error err;
    chat_template *t = chat_template_parse(src, size, "fuzz.jinja", &err);
    if (t) {
        chat_limits limits = {
            .max_output = 1 << 20, .max_memory = 64 << 20, .max_steps = 200000, .max_depth = 32};
        chat_vars vars = {.messages_json = messages,
                          .messages_len = sizeof messages - 1,
                          .tools_json = tools,
                          .tools_len = sizeof tools - 1,
                          .add_generation_prompt = true,
                          .bos_token = "<s>",
                          .eos_token = "</s>",
                          .now = "2026-01-15T10:30:00",
                          .limits = &limits};
        char *out = NULL;
        size_t len = 0;
        if (chat_template_render(t, &vars, &out, &len, &err) == GARLIC_OK && len)
            (void)*(volatile char *)&out[len - 1];
        garlic_free(out);
        chat_template_free(t);
    }
    free(src);
    return 0;
}
