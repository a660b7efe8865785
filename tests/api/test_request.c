// SPDX-License-Identifier: MIT
// api_request_parse without a server: each kind of request, defaults, errors naming the
// field, and allocation failures while parsing a body and building its engine request
// (cJSON's allocations go through garlic's wrapper, so they fail in turn too).
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "api/api.h"
#include "base/alloc.h"
#include "engine/engine.h"
#include "util.h"

// Parsing without a server: each kind, defaults, field errors naming the field.
static void test_parse(void **state)
{
    (void)state;
    api_request r;
    api_error err = {0};
    const char *chat = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":"
                       "\"text\",\"text\":\"a\"},{\"type\":\"text\",\"text\":\"b\"}]}],\"stop\":"
                       "\"x\",\"seed\":3,\"logit_bias\":{\"7\":-100}}";
    assert_int_equal(api_request_parse(API_KIND_OPENAI_CHAT, chat, strlen(chat), &r, &err),
                     GARLIC_OK);
    char *messages = cJSON_PrintUnformatted(r.messages);
    assert_string_equal(messages, "[{\"role\":\"user\",\"content\":\"ab\"}]");
    cJSON_free(messages);
    assert_int_equal(r.n_stops, 1);
    assert_true(r.seeded);
    assert_int_equal(r.sampling.n_logit_bias, 1);
    assert_true(isinf(r.bias[0].bias));
    assert_int_equal(r.n, 1);
    assert_false(r.stream);
    api_request_deinit(&r);
    const char *gen = "{\"model\":\"m\",\"prompt\":\"p\",\"options\":{\"num_predict\":-1,"
                      "\"seed\":-1}}";
    assert_int_equal(api_request_parse(API_KIND_OLLAMA_GENERATE, gen, strlen(gen), &r, &err),
                     GARLIC_OK);
    assert_true(r.stream); // Ollama streams by default
    assert_int_equal(r.max_tokens, 0);
    assert_false(r.seeded);
    api_request_deinit(&r);
    const char *bad = "{\"model\":\"m\",\"prompt\":\"p\",\"options\":{\"top_k\":1.5}}";
    assert_int_equal(api_request_parse(API_KIND_OLLAMA_GENERATE, bad, strlen(bad), &r, &err),
                     GARLIC_EINVAL);
    assert_string_equal(err.param, "options.top_k");
    assert_int_equal(err.status, 400);
    api_request_deinit(&r);
    const char *ids = "{\"model\":\"m\",\"prompt\":[1,2,3]}";
    assert_int_equal(api_request_parse(API_KIND_OPENAI_COMPLETION, ids, strlen(ids), &r, &err),
                     GARLIC_OK);
    assert_int_equal(r.n_prompt_ids, 3);
    api_request_deinit(&r);
}

static void *json_malloc(size_t size) { return garlic_malloc(size); }

// Every allocation of parsing a request and building its engine request fails in turn:
// each failure is a clean error (no crash; no leak under ASan), and eventually it succeeds.
static void test_allocation_failures(void **state)
{
    (void)state;
    cJSON_Hooks hooks = {.malloc_fn = json_malloc, .free_fn = garlic_free};
    cJSON_InitHooks(&hooks);
    const char *body = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":"
                       "\"text\",\"text\":\"a\"}],\"name\":\"x\"}],\"stop\":[\"x\",\"y\"],"
                       "\"logit_bias\":{\"7\":1},\"tools\":[{\"type\":\"function\"}]}";
    bool done = false;
    for (long n = 0; n < 10000 && !done; n++) {
        api_request r;
        api_error err = {0};
        garlic_alloc_fail_after(n);
        int rc = api_request_parse(API_KIND_OPENAI_CHAT, body, strlen(body), &r, &err);
        engine_request *req = NULL;
        if (rc == GARLIC_OK) {
            int32_t prompt[1] = {1};
            engine_request_params p = {.prompt = prompt, .n_prompt = 1, .n_choices = 1};
            p.generation.sampling = r.sampling;
            p.generation.stops = (const char *const *)r.stops;
            p.generation.n_stops = r.n_stops;
            garlic_error gerr;
            req = engine_request_new(&p, &gerr);
            done = req != NULL;
        }
        garlic_alloc_fail_reset();
        assert_true(rc == GARLIC_OK || rc == GARLIC_ENOMEM || rc == GARLIC_EINVAL);
        engine_request_release(req);
        api_request_deinit(&r);
    }
    assert_true(done);
    cJSON_InitHooks(NULL);
}

// Strings that are not UTF-8 (JSON lets any byte through inside a string) are refused with a
// 400 naming where they are, before any template or tokenizer sees them; valid UTF-8 passes.
static void test_invalid_utf8(void **state)
{
    (void)state;
    static const struct {
        api_kind kind;
        const char *body, *param;
    } bad[] = {
        {API_KIND_OPENAI_CHAT,
         "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi \xff\"}]}",
         "messages[0].content"},
        {API_KIND_OLLAMA_GENERATE,
         "{\"model\":\"m\",\"prompt\":\"a\",\"options\":{\"stop\":[\"\xc3\"]}}", "options.stop[0]"},
        {API_KIND_OPENAI_COMPLETION, "{\"model\":\"m\xe2\x82\",\"prompt\":\"a\"}", "model"},
        {API_KIND_OLLAMA_CHAT, "{\"model\":\"m\",\"messages\":[],\"\xed\xa0\x80\":1}", NULL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        api_request r;
        api_error err = {0};
        assert_int_equal(api_request_parse(bad[i].kind, bad[i].body, strlen(bad[i].body), &r, &err),
                         GARLIC_EINVAL);
        assert_int_equal(err.status, 400);
        assert_non_null(strstr(err.message, "is not valid UTF-8"));
        if (bad[i].param)
            assert_string_equal(err.param, bad[i].param);
        api_request_deinit(&r);
    }
    const char *good = "{\"model\":\"m\",\"prompt\":\"caf\xc3\xa9 \xf0\x9f\x8d\x9c\"}";
    api_request r;
    api_error err = {0};
    assert_int_equal(api_request_parse(API_KIND_OLLAMA_GENERATE, good, strlen(good), &r, &err),
                     GARLIC_OK);
    api_request_deinit(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_allocation_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
