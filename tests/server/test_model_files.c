// SPDX-License-Identifier: MIT
// `garlic serve` with model files that change underneath it (docs/api.md, "Model files that
// change underneath"): a served file truncated, or overwritten in place with garbage of the
// same size, or replaced by a rename. The server survives, a request gets a clear 5xx naming
// the model (never 200 with empty text), /api/ps and the log show the failure, another
// model keeps serving, and once the file is whole again the next request loads it anew.
// Neither those errors nor /api/show reveal where the files lie on the server.
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "model/synth.h"
#include "util.h"

static test_server server;
static char changing_path[600], steady_path[600], dir[600];
static void *pristine; // the changing model's bytes as written
static size_t pristine_size;

static int setup(void **state)
{
    (void)state;
    model_synth_params p;
    model_synth_params_default(&p);
    p.context = 512;
    garlic_error err;
    snprintf(changing_path, sizeof changing_path, "%s", test_temp_path("changing.gguf"));
    snprintf(steady_path, sizeof steady_path, "%s", test_temp_path("steady.gguf"));
    snprintf(dir, sizeof dir, "%.*s", (int)(strrchr(changing_path, '/') - changing_path),
             changing_path);
    if (model_synth_write(&p, changing_path, &err) || model_synth_write(&p, steady_path, &err))
        return -1;
    pristine = test_read_file(changing_path, &pristine_size);
    if (!pristine)
        return -1;
    char args[2048];
    snprintf(args, sizeof args, "-m '%s=changing' -m '%s=steady' --threads 1 --ctx 512",
             changing_path, steady_path);
    test_server_start(&server, "model-files.log", "", args);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    free(pristine);
    return test_server_stop(&server) == 0 ? 0 : -1;
}

// A whole (not streamed) Ollama generate of a few tokens from model; returns the status and
// the body in *body (free()).
static int generate(const char *model, char **body)
{
    char json[256];
    snprintf(json, sizeof json,
             "{\"model\":\"%s\",\"prompt\":\"once upon a time\",\"stream\":false,"
             "\"options\":{\"num_predict\":8,\"seed\":1}}",
             model);
    return test_http(&server, "POST", "/api/generate", json, NULL, body, NULL);
}

// model answers 200 with text.
static void expect_answer(const char *model)
{
    char *body = NULL;
    int status = generate(model, &body);
    if (status != 200)
        fail_msg("%s: status %d, want 200: %s", model, status, body);
    cJSON *root = cJSON_Parse(body);
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(root, "response");
    if (!cJSON_IsString(text) || !text->valuestring[0])
        fail_msg("%s: no text in %s", model, body);
    cJSON_Delete(root);
    free(body);
}

// Fails the test when text shows where the server's files lie.
static void expect_no_path(const char *what, const char *text)
{
    if (strstr(text, dir) || strstr(text, "/tmp/"))
        fail_msg("%s shows a path of the server: %s", what, text);
}

// The changing model's request fails with a 5xx that names it and says its file changed.
static void expect_failure(void)
{
    char *body = NULL;
    int status = generate("changing", &body);
    if (status < 500 || !strstr(body, "changing") || !strstr(body, "changed on disk"))
        fail_msg("status %d, want a 5xx naming the model and its changed file: %s", status, body);
    expect_no_path("the error", body);
    free(body);
}

// /api/ps lists the changing model as failed, saying why.
static void expect_failed_in_ps(void)
{
    char *body = NULL;
    assert_int_equal(test_http(&server, "GET", "/api/ps", NULL, NULL, &body, NULL), 200);
    cJSON *root = cJSON_Parse(body);
    const cJSON *m;
    bool seen = false;
    cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(root, "models"))
    {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(m, "name");
        const cJSON *g = cJSON_GetObjectItemCaseSensitive(m, "garlic");
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(g, "state");
        const cJSON *error = cJSON_GetObjectItemCaseSensitive(g, "error");
        if (cJSON_IsString(name) && strcmp(name->valuestring, "changing") == 0)
            seen = cJSON_IsString(st) && strcmp(st->valuestring, "failed") == 0 &&
                cJSON_IsString(error) && strstr(error->valuestring, "changed on disk");
    }
    if (!seen)
        fail_msg("/api/ps does not show 'changing' failed: %s", body);
    expect_no_path("/api/ps", body);
    cJSON_Delete(root);
    free(body);
}

static void restore(void)
{
    assert_int_equal(test_write_file(changing_path, pristine, pristine_size), 0);
}

static void test_truncated(void **state)
{
    (void)state;
    expect_answer("changing");
    assert_int_equal(truncate(changing_path, (off_t)pristine_size / 2), 0);
    expect_failure();
    expect_failed_in_ps();
    expect_answer("steady");
    restore();
    expect_answer("changing");
    char *log = test_read_file(server.log, NULL);
    assert_non_null(log);
    if (!strstr(log, "model_failed model=changing"))
        fail_msg("the log does not say the model failed:\n%s", log);
    free(log);
}

// A stream whose model file is truncated while it runs ends with an error event naming the
// model, never with a finish_reason that reads as a finished answer.
static void test_truncated_mid_stream(void **state)
{
    (void)state;
    expect_answer("changing");
    static const char body[] = "{\"model\":\"changing\",\"prompt\":\"go\",\"max_tokens\":400,"
                               "\"n\":16,\"logit_bias\":{\"2\":-100},\"stream\":true}";
    char req[512];
    snprintf(req, sizeof req,
             "POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
             "Content-Length: %zu\r\n\r\n%s",
             strlen(body), body);
    int fd = test_connect(server.port, NULL);
    assert_true(fd >= 0);
    assert_int_equal(test_send(fd, req), 0);
    char first[256];
    assert_true(recv(fd, first, sizeof first, 0) > 0); // the stream has begun
    assert_int_equal(truncate(changing_path, (off_t)pristine_size / 2), 0);
    char *rest = test_recv_all(fd, 20000);
    close(fd);
    if (!strstr(rest, "data: {\"error\":{\"message\":\"generation failed: ") ||
        !strstr(rest, "changing") || !strstr(rest, "\"code\":\"generation_cut\"") ||
        strstr(rest, "\"finish_reason\":\"length\""))
        fail_msg("the stream of a model whose file was truncated: %.200s ... %s", first,
                 strlen(rest) > 1500 ? rest + strlen(rest) - 1500 : rest);
    expect_no_path("the stream's error", rest);
    free(rest);
    restore();
    expect_answer("changing");
}

static void test_overwritten_in_place(void **state)
{
    (void)state;
    expect_answer("changing");
    // Garbage of the same size over the same file: what a copy onto it in progress leaves.
    uint8_t *garbage = malloc(pristine_size);
    assert_non_null(garbage);
    test_rng rng;
    test_rng_seed(&rng, 7);
    for (size_t i = 0; i < pristine_size; i++)
        garbage[i] = (uint8_t)test_rng_u64(&rng);
    assert_int_equal(test_write_file(changing_path, garbage, pristine_size), 0);
    free(garbage);
    expect_failure();
    expect_failed_in_ps();
    expect_answer("steady");
    restore();
    expect_answer("changing");
    // The same bytes written again (a touch would do as well): loaded anew, it just answers.
    restore();
    expect_answer("changing");
}

static void test_replaced_by_rename(void **state)
{
    (void)state;
    expect_answer("changing");
    char garbage_path[600];
    snprintf(garbage_path, sizeof garbage_path, "%s", test_temp_path("garbage.gguf"));
    assert_int_equal(test_write_file(garbage_path, "not a model", 11), 0);
    // The mapping keeps the file it had: the model serves on.
    assert_int_equal(rename(garbage_path, changing_path), 0);
    expect_answer("changing");
    restore();
}

// /api/show shows the model's name and its file's base name, never the file's directory.
static void test_show_hides_paths(void **state)
{
    (void)state;
    char *body = NULL;
    assert_int_equal(
        test_http(&server, "POST", "/api/show", "{\"model\":\"steady\"}", NULL, &body, NULL), 200);
    expect_no_path("/api/show", body);
    assert_non_null(strstr(body, "FROM steady"));
    assert_non_null(strstr(body, "\"file\":\"steady.gguf\""));
    free(body);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_truncated_mid_stream),
        cmocka_unit_test(test_overwritten_in_place),
        cmocka_unit_test(test_replaced_by_rename),
        cmocka_unit_test(test_show_hides_paths),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
