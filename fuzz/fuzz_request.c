// SPDX-License-Identifier: MIT
// libFuzzer target for the request JSON -> engine request path: the first byte picks the
// endpoint (OpenAI chat or completions, Ollama generate or chat), the rest is the body. A
// body that parses is carried on as the server would without a model: its sampling
// parameters are validated for a small vocabulary, its stop strings and logit biases go into
// an engine request, and chat messages are rendered with the fallback transcript.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "base/alloc.h"
#include "chat/chat.h"
#include "engine/engine.h"

// What the server does with a parsed request before the model is involved.
static void carry_on(const api_request *r)
{
    sampler_params sp = r->sampling;
    sp.n_vocab = 512;
    garlic_error err;
    sampler_params_validate(&sp, &err);
    if (r->messages) {
        chat_vars vars = {
            .messages = r->messages, .tools = r->tools, .add_generation_prompt = true};
        char *text = NULL;
        size_t len = 0;
        if (chat_fallback_render(&vars, &text, &len, &err) == GARLIC_OK)
            garlic_free(text);
    }
    int32_t prompt[2] = {1, 2};
    engine_request_params p = {
        .prompt = prompt, .n_prompt = 2, .n_choices = r->n, .seeded = r->seeded};
    p.generation.sampling = sp;
    p.generation.max_tokens = r->max_tokens;
    p.generation.stops = (const char *const *)r->stops;
    p.generation.n_stops = r->n_stops;
    engine_request *req = engine_request_new(&p, &err);
    engine_request_release(req);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    api_kind kind = (api_kind)(data[0] % API_KIND_COUNT);
    // An exactly-sized copy, so that ASan sees any read past the end.
    char *body = malloc(size - 1 ? size - 1 : 1);
    if (!body)
        return 0;
    memcpy(body, data + 1, size - 1);
    api_request r;
    api_error err;
    if (api_request_parse(kind, body, size - 1, &r, &err) == GARLIC_OK)
        carry_on(&r);
    api_request_deinit(&r);
    free(body);
    return 0;
}
