// SPDX-License-Identifier: MIT
// `garlic serve` where Ollama's and OpenAI's clients expect a particular behaviour, end to end
// with curl against real servers on 127.0.0.1: GET /api/version reports garlic's version;
// an empty prompt (or chat without messages) loads the model, and with keep_alive 0 unloads
// it without loading it; a prompt longer than the context is refused by the OpenAI API with a
// 400 stating both lengths and cut to fit by the Ollama API (oldest messages first, system
// messages and the latest turns kept; generate keeps the prompt's end), with a log line; a
// broken model file stops `garlic serve` at start with the file and the reason, and one that
// breaks after the start answers 500 with the reason, logged.
#include <cjson/cJSON.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "model/synth.h"
#include "util.h"

enum { CTX = 256 }; // the servers' --ctx: small, so a prompt overflows it quickly

static char model_path[600];
static test_server *running; // the test's server, stopped by stop_running after a failure
static const char junk_bytes[] = "this is not a model at all, only text that looks nothing like "
                                 "a GGUF header";

// Starts `garlic serve ARGS` on a free port (its log in a file named name); waits until it
// listens.
static void server_start(test_server *s, const char *name, const char *args)
{
    char all[4096];
    snprintf(all, sizeof all, "--ctx %d --threads 1 %s", CTX, args);
    running = s;
    test_server_start(s, name, "", all);
}

static int server_stop(test_server *s)
{
    running = NULL;
    return test_server_stop(s);
}

static int http(const test_server *s, const char *method, const char *path, const char *json,
                char **body, char **headers)
{
    return test_http(s, method, path, json, NULL, body, headers);
}

// POSTs json, checks the status and returns the body parsed.
static cJSON *post(const test_server *s, const char *path, const char *json, int want)
{
    char *body = NULL;
    int status = http(s, "POST", path, json, &body, NULL);
    if (status != want)
        fail_msg("POST %s %.300s: status %d, want %d: %.500s", path, json, status, want, body);
    cJSON *root = cJSON_Parse(body);
    if (!root)
        fail_msg("POST %s: not JSON: %.500s", path, body);
    free(body);
    return root;
}

static const char *str_at(const cJSON *o, const char *key)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsString(item))
        fail_msg("no string '%s' in %s", key, cJSON_PrintUnformatted(o));
    return item->valuestring;
}

// A counter or gauge from /metrics.
static double metric(const test_server *s, const char *name)
{
    char *body, pattern[256];
    assert_int_equal(http(s, "GET", "/metrics", NULL, &body, NULL), 200);
    snprintf(pattern, sizeof pattern, "\n%s ", name);
    const char *at = strstr(body, pattern);
    double v = at ? atof(at + strlen(pattern)) : -1;
    free(body);
    return v;
}

static bool model_listed(const test_server *s)
{
    char *body;
    assert_int_equal(http(s, "GET", "/api/ps", NULL, &body, NULL), 200);
    bool listed = strstr(body, "\"name\":\"tiny\"") != NULL;
    free(body);
    return listed;
}

// The value of field=N on the last log line of event (-1 when there is none).
static long log_field(const char *log_path, const char *event, const char *field)
{
    char *log = test_read_file(log_path, NULL), key[64], pattern[64];
    snprintf(pattern, sizeof pattern, " %s ", event);
    snprintf(key, sizeof key, " %s=", field);
    long v = -1;
    for (const char *line = log ? strstr(log, pattern) : NULL; line;
         line = strstr(line + 1, pattern)) {
        const char *end = strchr(line, '\n'), *at = strstr(line, key);
        if (at && (!end || at < end))
            v = atol(at + strlen(key));
    }
    free(log);
    return v;
}

// A copy of the last request line of the log for path (with --verbose it carries the
// rendered prompt), or NULL.
static char *last_request(const char *log_path, const char *path)
{
    char *log = test_read_file(log_path, NULL), key[128], *found = NULL;
    snprintf(key, sizeof key, " path=%s ", path);
    for (char *line = log ? strtok(log, "\n") : NULL; line; line = strtok(NULL, "\n"))
        if (strstr(line, " request ") && strstr(line, key)) {
            free(found);
            found = strdup(line);
        }
    free(log);
    return found;
}

static int stop_running(void **state)
{
    (void)state;
    if (running)
        server_stop(running);
    return 0;
}

static int setup(void **state)
{
    (void)state;
    model_synth_params p;
    model_synth_params_default(&p);
    p.context = 4096;
    snprintf(model_path, sizeof model_path, "%s", test_temp_path("compat.gguf"));
    garlic_error err;
    return model_synth_write(&p, model_path, &err) ? -1 : 0;
}

// GET /api/version answers garlic's own version, the one `garlic version` prints.
static void test_version(void **state)
{
    (void)state;
    test_server s = {0};
    char args[700];
    snprintf(args, sizeof args, "-m '%s=tiny'", model_path);
    server_start(&s, "version.log", args);
    char *body, *out = NULL;
    assert_int_equal(http(&s, "GET", "/api/version", NULL, &body, NULL), 200);
    cJSON *v = cJSON_Parse(body);
    assert_non_null(v);
    const char *version = str_at(v, "version");
    assert_true(version[0] >= '0' && version[0] <= '9');
    assert_int_equal(test_run(&out, NULL, "'%s' version", test_garlic()), 0);
    char expect[128];
    snprintf(expect, sizeof expect, "garlic %s ", version);
    if (strncmp(out, expect, strlen(expect)) != 0)
        fail_msg("/api/version says %s, garlic version says %s", version, out);
    cJSON_Delete(v), free(body), free(out);
    assert_int_equal(server_stop(&s), 0);
}

// Checks a load-only answer: done, done_reason want, an empty response (generate) or
// assistant message (chat), a created_at time.
static void expect_load_answer(const cJSON *r, bool chat, const char *want)
{
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(r, "done")));
    assert_string_equal(str_at(r, "done_reason"), want);
    assert_string_equal(str_at(r, "model"), "tiny");
    assert_true(strlen(str_at(r, "created_at")) >= 20);
    if (chat)
        assert_string_equal(str_at(cJSON_GetObjectItem(r, "message"), "content"), "");
    else
        assert_string_equal(str_at(r, "response"), "");
}

// Ollama's load and unload requests: an empty or absent prompt (chat: empty or absent
// messages) loads the model and answers done_reason "load"; with keep_alive 0 it unloads the
// model ("unload") and never loads it to do so.
static void test_load_and_unload(void **state)
{
    (void)state;
    test_server s = {0};
    char args[700];
    snprintf(args, sizeof args, "-m '%s=tiny' --keep-alive 5m", model_path);
    server_start(&s, "load.log", args);
    // Unloading a model that is not loaded answers "unload" and loads nothing.
    cJSON *r = post(&s, "/api/generate", "{\"model\":\"tiny\",\"keep_alive\":0}", 200);
    expect_load_answer(r, false, "unload");
    cJSON_Delete(r);
    assert_true(metric(&s, "garlic_model_loads_total") == 0);
    assert_false(model_listed(&s));
    // An absent prompt loads it (one object, although stream defaults to true).
    r = post(&s, "/api/generate", "{\"model\":\"tiny\"}", 200);
    expect_load_answer(r, false, "load");
    cJSON_Delete(r);
    assert_true(model_listed(&s));
    assert_true(metric(&s, "garlic_model_loads_total") == 1);
    // keep_alive 0 with an empty prompt unloads it, before the answer.
    r = post(&s, "/api/generate", "{\"model\":\"tiny\",\"prompt\":\"\",\"keep_alive\":0}", 200);
    expect_load_answer(r, false, "unload");
    cJSON_Delete(r);
    assert_false(model_listed(&s));
    assert_true(metric(&s, "garlic_model_unloads_total") == 1);
    // The same through /api/chat with empty messages ("0s" is a duration too).
    r = post(&s, "/api/chat", "{\"model\":\"tiny\",\"messages\":[]}", 200);
    expect_load_answer(r, true, "load");
    cJSON_Delete(r);
    assert_true(model_listed(&s));
    r = post(&s, "/api/chat", "{\"model\":\"tiny\",\"messages\":[],\"keep_alive\":\"0s\"}", 200);
    expect_load_answer(r, true, "unload");
    cJSON_Delete(r);
    assert_false(model_listed(&s));
    assert_true(metric(&s, "garlic_model_loads_total") == 2);
    // An unknown model is still a 404.
    cJSON_Delete(post(&s, "/api/generate", "{\"model\":\"nope\",\"keep_alive\":0}", 404));
    assert_int_equal(server_stop(&s), 0);
}

// A JSON string of n characters "<tag> w w w ..." (ASCII, no escaping needed).
static char *filler(const char *tag, size_t n)
{
    char *text = malloc(n + 1);
    size_t len = (size_t)snprintf(text, n + 1, "%s", tag);
    for (; len < n; len++)
        text[len] = "ab cd"[len % 5];
    text[n] = '\0';
    return text;
}

// The prompt tokens of an OpenAI context_length_exceeded error, after checking its shape.
static long exceeded_tokens(const cJSON *r, const char *param)
{
    const cJSON *e = cJSON_GetObjectItem(r, "error");
    assert_string_equal(str_at(e, "code"), "context_length_exceeded");
    assert_string_equal(str_at(e, "type"), "invalid_request_error");
    assert_string_equal(str_at(e, "param"), param);
    const char *msg = str_at(e, "message");
    char want[96];
    snprintf(want, sizeof want, "maximum context length is %d tokens", CTX);
    if (!strstr(msg, want))
        fail_msg("'%s' does not say '%s'", msg, want);
    const char *has = strstr(msg, "your request has ");
    assert_non_null(has);
    return atol(has + strlen("your request has "));
}

// A prompt longer than the context: OpenAI's API answers 400 with both lengths; Ollama's
// (unless "truncate": false) keeps the prompt's end (generate) or the system message and the
// latest turns (chat), generates, and logs what it dropped.
static void test_context_overflow(void **state)
{
    (void)state;
    test_server s = {0};
    char args[700], *json = malloc(1 << 16);
    snprintf(args, sizeof args, "-m '%s=tiny' --verbose", model_path);
    server_start(&s, "overflow.log", args);
    char *big = filler("BEGIN", 3 * CTX);

    snprintf(json, 1 << 16, "{\"model\":\"tiny\",\"prompt\":\"%sEND\",\"max_tokens\":4}", big);
    cJSON *r = post(&s, "/v1/completions", json, 400);
    long n_prompt = exceeded_tokens(r, "prompt");
    assert_true(n_prompt > CTX);
    cJSON_Delete(r);
    snprintf(json, 1 << 16,
             "{\"model\":\"tiny\",\"messages\":[{\"role\":\"user\",\"content\":\"%s\"}]}", big);
    r = post(&s, "/v1/chat/completions", json, 400);
    assert_true(exceeded_tokens(r, "messages") > CTX);
    cJSON_Delete(r);

    // Ollama generate: the prompt's end is kept, room is left for num_predict.
    snprintf(json, 1 << 16,
             "{\"model\":\"tiny\",\"prompt\":\"%sEND\",\"raw\":true,\"stream\":false,"
             "\"options\":{\"num_predict\":4,\"temperature\":0}}",
             big);
    r = post(&s, "/api/generate", json, 200);
    assert_string_equal(str_at(r, "done_reason"), "length");
    long kept = (long)cJSON_GetObjectItem(r, "prompt_eval_count")->valuedouble;
    assert_int_equal(kept, CTX - 4);
    cJSON_Delete(r);
    assert_int_equal(log_field(s.log, "truncate", "prompt_tokens"), n_prompt);
    assert_int_equal(log_field(s.log, "truncate", "kept_tokens"), kept);
    assert_int_equal(log_field(s.log, "truncate", "context"), CTX);
    // "truncate": false asks for the error instead.
    snprintf(json, 1 << 16, "{\"model\":\"tiny\",\"prompt\":\"%s\",\"truncate\":false}", big);
    r = post(&s, "/api/generate", json, 400);
    assert_non_null(strstr(str_at(r, "error"), "maximum context length"));
    cJSON_Delete(r);

    // Ollama chat: ten old turns that cannot all fit; the system message and the latest
    // turns stay, the oldest go.
    size_t len = (size_t)snprintf(json, 1 << 16,
                                  "{\"model\":\"tiny\",\"stream\":false,\"options\":"
                                  "{\"num_predict\":4},\"messages\":[{\"role\":\"system\","
                                  "\"content\":\"SYSMARK\"}");
    for (int i = 0; i < 10; i++) {
        char tag[16];
        snprintf(tag, sizeof tag, "OLD%d ", i);
        char *turn = filler(tag, CTX / 6);
        len += (size_t)snprintf(json + len, (1 << 16) - len,
                                ",{\"role\":\"%s\",\"content\":\"%s\"}",
                                i % 2 ? "assistant" : "user", turn);
        free(turn);
    }
    snprintf(json + len, (1 << 16) - len, ",{\"role\":\"user\",\"content\":\"LASTMARK\"}]}");
    r = post(&s, "/api/chat", json, 200);
    assert_true(cJSON_GetObjectItem(r, "prompt_eval_count")->valuedouble <= CTX - 4);
    cJSON_Delete(r);
    long dropped = log_field(s.log, "truncate", "dropped_messages");
    assert_true(dropped > 0 && dropped < 10);
    assert_int_equal(log_field(s.log, "truncate", "cut_tokens"), 0);
    char *line = last_request(s.log, "/api/chat");
    assert_non_null(line);
    assert_non_null(strstr(line, "SYSMARK"));
    assert_non_null(strstr(line, "LASTMARK"));
    assert_non_null(strstr(line, "OLD9"));
    assert_null(strstr(line, "OLD0"));
    char oldest[32];
    snprintf(oldest, sizeof oldest, "OLD%ld", dropped);
    assert_non_null(strstr(line, oldest)); // the first kept one: only as many as needed went
    snprintf(oldest, sizeof oldest, "OLD%ld ", dropped - 1);
    assert_null(strstr(line, oldest));
    free(line);

    // A last message longer than the context on its own: its end is kept.
    snprintf(json, 1 << 16,
             "{\"model\":\"tiny\",\"stream\":false,\"options\":{\"num_predict\":2},"
             "\"messages\":[{\"role\":\"user\",\"content\":\"old\"},"
             "{\"role\":\"user\",\"content\":\"%sENDMARK\"}]}",
             big);
    r = post(&s, "/api/chat", json, 200);
    assert_true(cJSON_GetObjectItem(r, "prompt_eval_count")->valuedouble <= CTX - 2);
    cJSON_Delete(r);
    assert_true(log_field(s.log, "truncate", "cut_tokens") > 0);
    assert_int_equal(log_field(s.log, "truncate", "dropped_messages"), 1);
    line = last_request(s.log, "/api/chat");
    assert_non_null(line);
    assert_non_null(strstr(line, "ENDMARK"));
    assert_null(strstr(line, "BEGIN"));
    free(line);
    free(big), free(json);
    assert_int_equal(server_stop(&s), 0);
}

// Writes a copy of the test model to name with its general.architecture value's first
// letter replaced; returns the path.
static const char *unknown_arch_copy(const char *name)
{
    size_t size;
    char *data = test_read_file(model_path, &size);
    assert_non_null(data);
    const char *key = "general.architecture";
    char *at = memmem(data, size, key, strlen(key));
    assert_non_null(at);
    at[strlen(key) + 4 + 8] = 'x'; // after the key: the type (u32), the length (u64)
    const char *path = test_temp_path(name);
    assert_int_equal(test_write_file(path, data, size), 0);
    free(data);
    return path;
}

// `garlic serve` with a broken model exits 1 at start naming the file and the reason.
static void expect_refused(const char *broken, const char *reason)
{
    char *err = NULL;
    int rc = test_run(NULL, &err, "timeout 20 '%s' serve -m '%s' -m '%s' --port 0", test_garlic(),
                      model_path, broken);
    if (rc != 1 || !strstr(err, broken) || !strstr(err, reason))
        fail_msg("serve with %s: exit %d, want 1 and '%s': %s", broken, rc, reason, err);
    free(err);
}

// Broken files stop the start with the reason; a file broken after the start makes its
// requests fail with 500 and the reason (in each API's error shape), and the log says so.
static void test_broken_models(void **state)
{
    (void)state;
    size_t size;
    char *data = test_read_file(model_path, &size);
    const char *cut = test_temp_path("cut.gguf");
    assert_int_equal(test_write_file(cut, data, size - 1000), 0);
    expect_refused(cut, "past the end of the file");
    const char *junk = test_temp_path("junk.gguf");
    assert_int_equal(test_write_file(junk, junk_bytes, sizeof junk_bytes), 0);
    expect_refused(junk, "not a GGUF file");
    expect_refused(unknown_arch_copy("arch.gguf"), "xlama");
    expect_refused(test_temp_path("absent.gguf"), "No such file");

    const char *late = test_temp_path("late.gguf");
    assert_int_equal(test_write_file(late, data, size), 0);
    test_server s = {0};
    char args[700];
    snprintf(args, sizeof args, "-m '%s=tiny'", late);
    server_start(&s, "late.log", args);
    assert_int_equal(test_write_file(late, junk_bytes, sizeof junk_bytes), 0);
    char *body, *headers;
    assert_int_equal(http(&s, "POST", "/v1/completions", "{\"model\":\"tiny\",\"prompt\":\"x\"}",
                          &body, &headers),
                     500);
    assert_null(strstr(headers, "Retry-After"));
    cJSON *r = cJSON_Parse(body);
    const cJSON *e = cJSON_GetObjectItem(r, "error");
    assert_string_equal(str_at(e, "code"), "model_load_failed");
    assert_string_equal(str_at(e, "type"), "server_error");
    assert_non_null(strstr(str_at(e, "message"), "not a GGUF file"));
    cJSON_Delete(r), free(body), free(headers);
    r = post(&s, "/api/generate", "{\"model\":\"tiny\",\"prompt\":\"x\"}", 500);
    assert_non_null(strstr(str_at(r, "error"), "not a GGUF file"));
    cJSON_Delete(r);
    r = post(&s, "/api/show", "{\"model\":\"tiny\"}", 500);
    assert_non_null(strstr(str_at(r, "error"), "not a GGUF file"));
    cJSON_Delete(r);
    char *log = test_read_file(s.log, NULL);
    assert_non_null(strstr(log, "load_failed model=tiny"));
    free(log), free(data);
    assert_int_equal(server_stop(&s), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_version, stop_running),
        cmocka_unit_test_teardown(test_load_and_unload, stop_running),
        cmocka_unit_test_teardown(test_context_overflow, stop_running),
        cmocka_unit_test_teardown(test_broken_models, stop_running),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
