// SPDX-License-Identifier: MIT
// `garlic serve` over a model store: with no -m it serves what the store holds, and manages
// it over HTTP (/api/pull, /api/create, /api/copy, /api/delete, /api/tags, /v1/models). A
// local mirror (tests/store/mirror.py) stands in for the registries. The npm clients' side is
// tests/e2e/store.test.mjs, run from here; the rest is curl: a pull cut off by its client
// resumes, a model pulled by the CLI while the server runs is served, a model made from a
// GGUF file on the server, the errors of bad bodies, and --no-store.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "model/synth.h"
#include "store/store.h"
#include "tensor/types.h"
#include "util.h"

static char mirror_root[600], store[600], env[2048], model_file[700];
static int mirror_port;
static pid_t mirror_pid = -1;
static test_server srv;

// The repositories of the mirror (ORG/REPO/NAME-Q8_0.gguf, a distinct model each); the
// mirror's faults follow the names (cut, badsum, slow).
static const char *const repos[] = {"library/stories", "test/tiny", "test/cut", "test/badsum",
                                    "test/slow"};

static int setup(void **state)
{
    (void)state;
    snprintf(mirror_root, sizeof mirror_root, "%s", test_temp_path("serve-mirror"));
    garlic_error err;
    for (size_t i = 0; i < sizeof repos / sizeof repos[0]; i++) {
        char dir[700], path[800];
        snprintf(dir, sizeof dir, "%s/%s", mirror_root, repos[i]);
        if (store_mkdirs(dir, &err))
            return print_message("%s\n", err.message), -1;
        model_synth_params p;
        model_synth_params_default(&p);
        p.type = TENSOR_TYPE_Q8_0;
        p.seed = 300 + i;
        if (strstr(repos[i], "slow"))
            p.n_layer = 8, p.dim = 256, p.ffn = 768; // 7 MB: 5 s through the slow mirror
        snprintf(path, sizeof path, "%s/%s-Q8_0.gguf", dir, strchr(repos[i], '/') + 1);
        if (model_synth_write(&p, path, &err))
            return print_message("%s\n", err.message), -1;
    }
    snprintf(model_file, sizeof model_file, "%s/test/tiny/tiny-Q8_0.gguf", mirror_root);
    if (test_mirror_start(mirror_root, &mirror_port, &mirror_pid))
        return -1;
    snprintf(store, sizeof store, "%s", test_temp_path("serve-store"));
    snprintf(env, sizeof env, "GARLIC_MODELS='%s' HF_ENDPOINT=http://127.0.0.1:%d HF_TOKEN=", store,
             mirror_port);
    test_server_start(&srv, "serve-store.log", env, "--ctx 512 --threads 1");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    test_server_stop(&srv);
    test_mirror_stop(mirror_pid);
    return 0;
}

// The names /api/tags lists, one per line.
static char *tag_names(void)
{
    char *body = NULL;
    assert_int_equal(test_http(&srv, "GET", "/api/tags", NULL, NULL, &body, NULL), 200);
    cJSON *root = cJSON_Parse(body);
    free(body);
    assert_non_null(root);
    size_t cap = 4096, len = 0;
    char *names = calloc(1, cap);
    const cJSON *m;
    cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(root, "models"))
    {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(m, "name");
        len += (size_t)snprintf(names + len, cap - len, "%s\n", name->valuestring);
    }
    cJSON_Delete(root);
    return names;
}

static void test_npm_clients(void **state)
{
    (void)state;
    if (test_run(NULL, NULL, "command -v node") != 0 ||
        access("tests/e2e/node_modules/ollama", F_OK) != 0 ||
        access("tests/e2e/node_modules/openai", F_OK) != 0) {
        print_message("skipped: node or tests/e2e/node_modules is absent (tools/setup.sh)\n");
        skip();
    }
    char root[4096];
    if (!realpath(mirror_root, root))
        fail_msg("%s: not found", mirror_root);
    char *out = NULL, *err = NULL;
    int rc = test_run(&out, &err,
                      "cd tests/e2e && GARLIC_URL=http://127.0.0.1:%d GARLIC_MIRROR=127.0.0.1:%d "
                      "GARLIC_MIRROR_ROOT='%s' node --test store.test.mjs",
                      srv.port, mirror_port, root);
    if (rc != 0) { // the whole report: cmocka's messages are cut short
        fprintf(stderr, "%s\n%s\n", out ? out : "", err ? err : "");
        fail_msg("node --test store.test.mjs failed (%d), report above", rc);
    }
    free(out), free(err);
}

// A client that goes away mid-pull cancels it; the partial download stays and the next pull
// resumes it (the mirror sees a Range request) and finishes.
static void test_pull_cancelled_then_resumed(void **state)
{
    (void)state;
    const char *body = "{\"model\": \"hf.co/test/slow:Q8_0\"}";
    char *out = NULL;
    // curl gives up after a second: the slow mirror sends 64 KiB every 50 ms.
    test_http(&srv, "POST", "/api/pull", body, "--max-time 1", &out, NULL);
    assert_non_null(out);
    assert_non_null(strstr(out, "pulling manifest"));
    assert_null(strstr(out, "success"));
    free(out);
    char *names = tag_names();
    assert_null(strstr(names, "slow"));
    free(names);
    // The partial file stays in the store's blobs (the cancel is seen within a moment).
    char *ls = NULL;
    usleep(300 * 1000);
    test_run(&ls, NULL, "ls '%s/blobs'", store);
    assert_non_null(strstr(ls, "-partial"));
    free(ls);
    assert_int_equal(test_http(&srv, "POST", "/api/pull", body, NULL, &out, NULL), 200);
    assert_non_null(strstr(out, "\"status\":\"success\""));
    // Its first progress line starts where the cancelled pull stopped.
    const char *first = strstr(out, "\"completed\":");
    assert_non_null(first);
    assert_true(atof(first + strlen("\"completed\":")) > 0);
    free(out);
    names = tag_names();
    assert_non_null(strstr(names, "hf.co/test/slow:Q8_0\n"));
    free(names);
}

// A model pulled by another process (the CLI) while the server runs is listed and served.
static void test_pulled_by_the_cli(void **state)
{
    (void)state;
    char *err = NULL;
    int rc = test_run(NULL, &err, "%s %s pull -q 127.0.0.1:%d/library/stories:Q8_0 --insecure", env,
                      test_garlic(), mirror_port);
    if (rc != 0)
        fail_msg("garlic pull failed: %s", err);
    free(err);
    char *out = NULL;
    char req[512];
    snprintf(req, sizeof req,
             "{\"model\": \"127.0.0.1:%d/library/stories:Q8_0\", \"prompt\": \"Hi\", "
             "\"stream\": false, \"options\": {\"num_predict\": 2}}",
             mirror_port);
    assert_int_equal(test_http(&srv, "POST", "/api/generate", req, NULL, &out, NULL), 200);
    assert_non_null(strstr(out, "\"done\":true"));
    free(out);
}

// /api/create from a GGUF file on the server, with a Modelfile in the older "modelfile" field;
// the store then holds a copy (the file may go away).
static void test_create_from_file(void **state)
{
    (void)state;
    char copy[800], req[2048], *out = NULL;
    snprintf(copy, sizeof copy, "%s", test_temp_path("create-source.gguf"));
    assert_int_equal(test_run(NULL, NULL, "cp '%s' '%s'", model_file, copy), 0);
    snprintf(req, sizeof req,
             "{\"model\": \"fromfile\", \"stream\": false, \"modelfile\": \"FROM %s\\nPARAMETER "
             "num_predict 3\\n\"}",
             copy);
    assert_int_equal(test_http(&srv, "POST", "/api/create", req, NULL, &out, NULL), 200);
    assert_non_null(strstr(out, "success"));
    free(out);
    unlink(copy);
    const char *gen = "{\"model\": \"fromfile\", \"prompt\": \"Hi\", \"stream\": false}";
    assert_int_equal(test_http(&srv, "POST", "/api/generate", gen, NULL, &out, NULL), 200);
    assert_non_null(strstr(out, "\"eval_count\":3"));
    free(out);
}

// Bad bodies get Ollama-shaped 4xx errors naming the field, and the server goes on.
static void test_bad_bodies(void **state)
{
    (void)state;
    static const struct {
        const char *method, *path, *body, *want;
        int status;
    } cases[] = {
        {"POST", "/api/pull", "{", "not valid JSON", 400},
        {"POST", "/api/pull", "{}", "'model' is required", 400},
        {"POST", "/api/pull", "{\"model\": \"a/b/c/d\"}", "too many", 400},
        {"POST", "/api/pull", "{\"model\": \"x\", \"stream\": 3}", "'stream' must be a boolean",
         400},
        {"POST", "/api/pull", "{\"model\": \"x\", \"password\": \"p\"}",
         "'password' is not a field garlic knows", 400},
        {"POST", "/api/create", "{\"model\": \"y\"}", "'from' is required", 400},
        {"POST", "/api/create", "{\"model\": \"y\", \"from\": \"/nonexistent.gguf\"}",
         "nonexistent", 400},
        {"POST", "/api/create", "{\"model\": \"y\", \"from\": \"x\", \"files\": {}}",
         "'files' is not supported", 400},
        {"POST", "/api/copy", "{\"source\": \"nothing\", \"destination\": \"y\"}",
         "model 'nothing' not found", 404},
        {"DELETE", "/api/delete", "{\"model\": \"nothing\"}", "model 'nothing' not found", 404},
        {"POST", "/api/delete", "{\"model\": \"nothing\"}", "not allowed", 405},
        {"GET", "/v1/models/nothing", NULL, "does not exist", 404},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *out = NULL;
        int status = test_http(&srv, cases[i].method, cases[i].path, cases[i].body,
                               "-H 'Accept: application/json'", &out, NULL);
        if (status != cases[i].status || !strstr(out, cases[i].want))
            fail_msg("%s %s %s: %d %s, want %d with '%s'", cases[i].method, cases[i].path,
                     cases[i].body ? cases[i].body : "", status, out, cases[i].status,
                     cases[i].want);
        cJSON *root = cJSON_Parse(out);
        if (cases[i].path[1] == 'a') // Ollama's shape: {"error": "text"}
            assert_true(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(root, "error")));
        cJSON_Delete(root);
        free(out);
    }
    char *names = tag_names();
    assert_null(strstr(names, "y:latest"));
    free(names);
}

// --no-store: only -m models, and the management endpoints say there is no store.
static void test_no_store(void **state)
{
    (void)state;
    test_server s = {0};
    char args[1200], *out = NULL;
    snprintf(args, sizeof args, "--no-store -m '%s=only' --threads 1", model_file);
    test_server_start(&s, "no-store.log", env, args);
    assert_int_equal(test_http(&s, "GET", "/api/tags", NULL, NULL, &out, NULL), 200);
    assert_non_null(strstr(out, "\"name\":\"only\""));
    assert_null(strstr(out, "tiny"));
    free(out);
    assert_int_equal(test_http(&s, "POST", "/api/pull", "{\"model\":\"x\"}", NULL, &out, NULL),
                     400);
    assert_non_null(strstr(out, "no model store"));
    free(out);
    // A -m model is not the store's to delete.
    test_server_stop(&s);
    snprintf(args, sizeof args, "-m '%s=mine' --threads 1", model_file);
    test_server_start(&s, "with-m.log", env, args);
    assert_int_equal(
        test_http(&s, "DELETE", "/api/delete", "{\"model\":\"mine\"}", NULL, &out, NULL), 400);
    assert_non_null(strstr(out, "not from the model store"));
    free(out);
    assert_int_equal(test_server_stop(&s), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_npm_clients),
        cmocka_unit_test(test_pull_cancelled_then_resumed),
        cmocka_unit_test(test_pulled_by_the_cli),
        cmocka_unit_test(test_create_from_file),
        cmocka_unit_test(test_bad_bodies),
        cmocka_unit_test(test_no_store),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
