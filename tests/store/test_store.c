// SPDX-License-Identifier: MIT
// The model store and `garlic pull` end to end, with no internet: tests/store/mirror.py (started
// here) serves synthesized models over the Hugging Face hub API and the Ollama registry API,
// redirects downloads to a second port, and injects faults chosen by the repository's name
// (a cut connection, a wrong checksum, a 401 without token, a slow body, a 503). Each test pulls
// into a fresh store and checks the model loads (`garlic show`), that faults give clear errors
// and leave no visible model, and list, rm and cp. Name parsing is checked directly.
#include <cjson/cJSON.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "model/synth.h"
#include "store/store.h"
#include "tensor/types.h"
#include "util.h"

static pid_t mirror_pid = -1;
static int hub_port;
static char mirror_root[512];
static char endpoint[64];

// The repositories the mirror serves (ORG/REPO, one GGUF each, distinct bytes).
static const char *const repos[] = {"test/tiny",    "library/x", "test/cut",   "test/badsum",
                                    "test/private", "test/slow", "test/flaky", "library/cutx",
                                    "test/nolfs",   "test/stall"};
enum { N_REPOS = sizeof repos / sizeof repos[0] };

static void source_path(const char *repo, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s/%s/%s-Q8_0.gguf", mirror_root, repo, strchr(repo, '/') + 1);
}

static int start_mirror(void **state)
{
    (void)state;
    if (system("python3 -c 'import http.server' 2>/dev/null") != 0) {
        print_message("python3 is missing: the store tests cannot start their mirror\n");
        return -1;
    }
    snprintf(mirror_root, sizeof mirror_root, "%s", test_temp_path("mirror"));
    for (size_t i = 0; i < N_REPOS; i++) {
        char dir[600], path[700];
        snprintf(dir, sizeof dir, "%s/%s", mirror_root, repos[i]);
        garlic_error err;
        if (store_mkdirs(dir, &err))
            return print_message("%s\n", err.message), -1;
        model_synth_params p;
        model_synth_params_default(&p);
        p.type = TENSOR_TYPE_Q8_0;
        p.seed = 100 + i;
        source_path(repos[i], path, sizeof path);
        if (model_synth_write(&p, path, &err))
            return print_message("%s\n", err.message), -1;
    }
    char ports[600];
    snprintf(ports, sizeof ports, "%s/ports", test_temp_path(""));
    unlink(ports);
    mirror_pid = fork();
    if (mirror_pid == 0) {
        execlp("python3", "python3", "tests/store/mirror.py", "--root", mirror_root, "--port-file",
               ports, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 200; i++) {
        FILE *f = fopen(ports, "r");
        int cdn;
        if (f && fscanf(f, "%d %d", &hub_port, &cdn) == 2) {
            fclose(f);
            snprintf(endpoint, sizeof endpoint, "http://127.0.0.1:%d", hub_port);
            return 0;
        }
        if (f)
            fclose(f);
        usleep(50000);
    }
    print_message("tests/store/mirror.py did not start\n");
    return -1;
}

static int stop_mirror(void **state)
{
    (void)state;
    if (mirror_pid > 0) {
        kill(mirror_pid, SIGTERM);
        waitpid(mirror_pid, NULL, 0);
    }
    return 0;
}

// A fresh, empty store for one test.
static const char *new_store(const char *name)
{
    static char buf[8][600];
    static int next;
    char *s = buf[next++ % 8];
    snprintf(s, sizeof buf[0], "%s", test_temp_path(name));
    return s;
}

// Runs `garlic ARGS` with the store and the mirror's endpoint; returns the exit status.
static int garlic(const char *store, char **out, char **err, const char *args)
{
    return test_run(out, err, "GARLIC_MODELS='%s' HF_ENDPOINT=%s HF_TOKEN= %s %s", store, endpoint,
                    test_garlic(), args);
}

// How many times the mirror served a repository's file (-1: the CDN was sent a token).
static int downloads(const char *repo)
{
    char *out;
    int rc = test_run(&out, NULL, "curl -s http://127.0.0.1:%d/_stats", hub_port);
    assert_int_equal(rc, 0);
    cJSON *root = cJSON_Parse(out);
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(root, "downloads");
    char key[256];
    snprintf(key, sizeof key, "%s/%s-Q8_0.gguf", repo, strchr(repo, '/') + 1);
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(d, key);
    int count = cJSON_IsNumber(n) ? n->valueint : 0;
    if (cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(root, "auth_on_cdn")) > 0)
        count = -1; // HF_TOKEN must stay with the hub, not follow a redirect to another host
    cJSON_Delete(root);
    free(out);
    return count;
}

// Names every complete blob and manifest of the store (not partial files or locks), sorted.
static char *visible(const char *store)
{
    char *out;
    test_run(&out, NULL,
             "cd '%s' 2>/dev/null && find blobs manifests -type f 2>/dev/null | "
             "grep -v -e '-partial$' -e '\\.tmp-' | sort",
             store);
    return out;
}

// Checks that the stored model name is byte for byte the repository's file and that it loads.
static void check_stored(const char *store, const char *name, const char *repo)
{
    char cmd[512], *out, *err;
    snprintf(cmd, sizeof cmd, "show --json '%s'", name);
    int rc = garlic(store, &out, &err, cmd);
    if (rc != 0)
        fail_msg("show %s: exit %d: %s", name, rc, err);
    cJSON *root = cJSON_Parse(out);
    assert_non_null(root);
    free(out), free(err);
    cJSON_Delete(root);
    char src[700], blob[STORE_PATH_MAX], hex[STORE_DIGEST_HEX + 1];
    garlic_error e;
    source_path(repo, src, sizeof src);
    assert_int_equal(store_sha256_file(src, hex, &e), 0);
    store_blob_path(store, hex, blob, sizeof blob);
    size_t n1, n2;
    void *a = test_read_file(src, &n1), *b = test_read_file(blob, &n2);
    assert_non_null(a);
    if (!b)
        fail_msg("%s: no blob %s", name, blob);
    assert_int_equal(n1, n2);
    assert_memory_equal(a, b, n1);
    free(a), free(b);
}

static void test_names(void **state)
{
    (void)state;
    static const struct {
        const char *text, *host, *ns, *model, *tag;
    } good[] = {
        {"qwen3", "registry.ollama.ai", "library", "qwen3", "latest"},
        {"qwen3:8b", "registry.ollama.ai", "library", "qwen3", "8b"},
        {"library/qwen3:8b", "registry.ollama.ai", "library", "qwen3", "8b"},
        {"me/mine:v1", "hf.co", "me", "mine", "v1"}, // org/repo is a Hugging Face repository
        {"Qwen/Qwen3-0.6B", "hf.co", "Qwen", "Qwen3-0.6B", "latest"},
        {"host.example/me/mine:v1", "host.example", "me", "mine", "v1"},
        {"127.0.0.1:8080/library/x:q8_0", "127.0.0.1:8080", "library", "x", "q8_0"},
        {"hf.co/org/repo-GGUF:Q4_K_M", "hf.co", "org", "repo-GGUF", "Q4_K_M"},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        store_name n;
        garlic_error err;
        if (store_name_parse(good[i].text, &n, &err))
            fail_msg("%s: %s", good[i].text, err.message);
        assert_string_equal(n.host, good[i].host);
        assert_string_equal(n.ns, good[i].ns);
        assert_string_equal(n.model, good[i].model);
        assert_string_equal(n.tag, good[i].tag);
    }
    static const char *const bad[] = {"",   "a/b/c/d", "../x",  "a//b",
                                      "x:", "a b",     "x:y:z", "ns/..:t"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        store_name n;
        garlic_error err;
        if (store_name_parse(bad[i], &n, &err) == GARLIC_OK)
            fail_msg("'%s' parsed as a name", bad[i]);
    }
    assert_true(store_name_is_hub(&(store_name){.host = "hf.co"}));
    assert_true(store_is_path("./m.gguf"));
    assert_true(store_is_path("model.gguf"));
    assert_true(store_is_path("/abs/folder"));
    assert_false(store_is_path("qwen3:8b"));
}

static void test_pull_hub(void **state)
{
    (void)state;
    const char *store = new_store("hub");
    char *out, *err;
    int before = downloads("test/tiny");
    int rc = garlic(store, &out, &err, "pull hf.co/test/tiny:Q8_0");
    if (rc != 0)
        fail_msg("pull: exit %d: %s", rc, err);
    assert_non_null(strstr(err, "pulling tiny-Q8_0.gguf")); // progress lines, not a terminal
    free(out), free(err);
    assert_int_equal(downloads("test/tiny"), before + 1); // from the CDN port, via a redirect
    check_stored(store, "hf.co/test/tiny:Q8_0", "test/tiny");
    assert_int_equal(garlic(store, &out, &err, "list"), 0);
    assert_non_null(strstr(out, "hf.co/test/tiny:Q8_0"));
    assert_non_null(strstr(out, "Q8_0"));
    free(out), free(err);
    // run takes the stored name.
    rc = garlic(store, &out, &err, "run hf.co/test/tiny:Q8_0 'Once' -n 4");
    if (rc != 0)
        fail_msg("run: exit %d: %s", rc, err);
    free(out), free(err);
    // A second pull finds the blob and downloads nothing.
    assert_int_equal(garlic(store, &out, &err, "pull hf.co/test/tiny:Q8_0"), 0);
    assert_non_null(strstr(err, "already in the store"));
    free(out), free(err);
    assert_int_equal(downloads("test/tiny"), before + 1);
}

static void test_pull_registry(void **state)
{
    (void)state;
    const char *store = new_store("registry");
    char args[256], name[128], *out, *err;
    snprintf(name, sizeof name, "127.0.0.1:%d/library/x:q8_0", hub_port);
    snprintf(args, sizeof args, "pull --insecure %s", name);
    int rc = garlic(store, &out, &err, args);
    if (rc != 0)
        fail_msg("pull: exit %d: %s", rc, err);
    free(out), free(err);
    check_stored(store, name, "library/x");
    // Without --insecure it speaks HTTPS to a plain HTTP server and fails, naming the model.
    const char *other = new_store("registry-tls");
    snprintf(args, sizeof args, "pull --retries 0 %s", name);
    assert_int_equal(garlic(other, &out, &err, args), 1);
    assert_non_null(strstr(err, name));
    free(out), free(err);
}

static void test_cut_then_resumed(void **state)
{
    (void)state;
    const char *store = new_store("cut");
    char *out, *err;
    // No retries: the cut ends the pull, leaving only a partial file.
    assert_int_equal(garlic(store, &out, &err, "pull --retries 0 hf.co/test/cut:Q8_0"), 1);
    assert_non_null(strstr(err, "cut-Q8_0.gguf"));
    free(out), free(err);
    char *seen = visible(store);
    assert_string_equal(seen, "");
    free(seen);
    assert_int_equal(garlic(store, &out, &err, "list"), 0);
    assert_null(strstr(out, "test/cut"));
    free(out), free(err);
    // The next pull resumes with a Range (the mirror cuts only requests without one).
    int rc = garlic(store, &out, &err, "pull hf.co/test/cut:Q8_0");
    if (rc != 0)
        fail_msg("resumed pull: exit %d: %s", rc, err);
    assert_non_null(strstr(err, "resuming at"));
    free(out), free(err);
    check_stored(store, "hf.co/test/cut:Q8_0", "test/cut");
    // Within one pull, a retry resumes too (registry protocol).
    const char *again = new_store("cut-retry");
    char args[256];
    snprintf(args, sizeof args, "pull --insecure --backoff-ms 10 127.0.0.1:%d/library/cutx:q8_0",
             hub_port);
    rc = garlic(again, &out, &err, args);
    if (rc != 0)
        fail_msg("pull with retries: exit %d: %s", rc, err);
    assert_non_null(strstr(err, "retrying"));
    free(out), free(err);
    snprintf(args, sizeof args, "127.0.0.1:%d/library/cutx:q8_0", hub_port);
    check_stored(again, args, "library/cutx");
}

static void test_faults_leave_store(void **state)
{
    (void)state;
    const char *store = new_store("faults");
    char *out, *err;
    assert_int_equal(garlic(store, &out, &err, "pull -q hf.co/test/tiny:Q8_0"), 0);
    free(out), free(err);
    char *before = visible(store);
    // A wrong checksum names the file; the partial file is removed.
    assert_int_equal(garlic(store, &out, &err, "pull hf.co/test/badsum:Q8_0"), 1);
    assert_non_null(strstr(err, "badsum-Q8_0.gguf: checksum mismatch"));
    free(out), free(err);
    char *partials;
    test_run(&partials, NULL, "find '%s/blobs' -name '*-partial'", store);
    assert_string_equal(partials, "");
    free(partials);
    // 404 names the model, on both protocols.
    assert_int_equal(garlic(store, &out, &err, "pull hf.co/test/nope"), 1);
    assert_non_null(strstr(err, "hf.co/test/nope:latest: not found (404"));
    free(out), free(err);
    char args[256];
    snprintf(args, sizeof args, "pull --insecure 127.0.0.1:%d/library/nope:1", hub_port);
    assert_int_equal(garlic(store, &out, &err, args), 1);
    assert_non_null(strstr(err, "library/nope:1: not found (404"));
    free(out), free(err);
    // A quantization the repository lacks.
    assert_int_equal(garlic(store, &out, &err, "pull hf.co/test/tiny:Q4_0"), 1);
    assert_non_null(strstr(err, "no GGUF file for 'Q4_0'"));
    free(out), free(err);
    // 401 without a token says to set HF_TOKEN.
    assert_int_equal(garlic(store, &out, &err, "pull hf.co/test/private:Q8_0"), 1);
    assert_non_null(strstr(err, "set HF_TOKEN"));
    free(out), free(err);
    // Too little disk space: refused before any byte is fetched.
    int slow_before = downloads("test/slow");
    assert_int_equal(test_run(&out, &err,
                              "GARLIC_PULL_FREE_BYTES=1000 GARLIC_MODELS='%s' HF_ENDPOINT=%s %s "
                              "pull hf.co/test/slow:Q8_0",
                              store, endpoint, test_garlic()),
                     1);
    assert_non_null(strstr(err, "not enough disk space"));
    free(out), free(err);
    assert_int_equal(downloads("test/slow"), slow_before);
    char *after = visible(store);
    assert_string_equal(before, after);
    free(before), free(after);
    // With the token, the private repository pulls.
    assert_int_equal(test_run(&out, &err,
                              "GARLIC_MODELS='%s' HF_ENDPOINT=%s HF_TOKEN=secret-token %s pull "
                              "hf.co/test/private:Q8_0",
                              store, endpoint, test_garlic()),
                     0);
    free(out), free(err);
    check_stored(store, "hf.co/test/private:Q8_0", "test/private");
    assert_int_equal(downloads("test/private"), 1);
}

// A server that stops sending is cut after --stall-timeout and the retry resumes.
static void test_stall_retried(void **state)
{
    (void)state;
    const char *store = new_store("stall");
    char *out, *err;
    time_t start = time(NULL);
    int rc = garlic(store, &out, &err,
                    "pull --stall-timeout 1 --backoff-ms 10 hf.co/test/stall:Q8_0");
    if (rc != 0)
        fail_msg("pull: exit %d: %s", rc, err);
    assert_non_null(strstr(err, "retrying"));
    free(out), free(err);
    assert_true(time(NULL) - start < 20); // not the mirror's 30 s stall
    check_stored(store, "hf.co/test/stall:Q8_0", "test/stall");
}

static void test_etag_digest(void **state)
{
    (void)state;
    const char *store = new_store("etag");
    char *out, *err;
    int rc = garlic(store, &out, &err, "pull hf.co/test/nolfs:Q8_0");
    if (rc != 0)
        fail_msg("pull: exit %d: %s", rc, err);
    free(out), free(err);
    check_stored(store, "hf.co/test/nolfs:Q8_0", "test/nolfs");
}

static void test_sha256_vectors(void **state)
{
    (void)state;
    static const struct {
        const char *text, *hex;
    } vectors[] = {
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
    };
    for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
        const char *path = test_temp_path("vector");
        assert_int_equal(test_write_file(path, vectors[i].text, strlen(vectors[i].text)), 0);
        char hex[STORE_DIGEST_HEX + 1];
        garlic_error err;
        assert_int_equal(store_sha256_file(path, hex, &err), 0);
        assert_string_equal(hex, vectors[i].hex);
    }
}

static void test_flaky_retried(void **state)
{
    (void)state;
    const char *store = new_store("flaky");
    char *out, *err;
    int rc = garlic(store, &out, &err, "pull --backoff-ms 10 hf.co/test/flaky:Q8_0");
    if (rc != 0)
        fail_msg("pull: exit %d: %s", rc, err);
    assert_non_null(strstr(err, "retrying"));
    free(out), free(err);
    check_stored(store, "hf.co/test/flaky:Q8_0", "test/flaky");
}

// A pull killed mid-download (kill -9) leaves no model that looks complete, and the next pull
// resumes it.
static void test_killed_then_resumed(void **state)
{
    (void)state;
    const char *store = new_store("killed");
    char *out, *err;
    int rc = test_run(&out, &err,
                      "export GARLIC_MODELS='%s' HF_ENDPOINT=%s; %s pull -q hf.co/test/slow:Q8_0 & "
                      "p=$!; sleep 0.6; kill -9 $p; wait $p; exit 0",
                      store, endpoint, test_garlic());
    assert_int_equal(rc, 0);
    free(out), free(err);
    char *seen = visible(store);
    assert_string_equal(seen, "");
    free(seen);
    char *partial;
    test_run(&partial, NULL, "find '%s/blobs' -name '*-partial' -size +1k", store);
    if (!partial[0])
        fail_msg("no partial file after the killed pull");
    free(partial);
    rc = garlic(store, &out, &err, "pull hf.co/test/slow:Q8_0");
    if (rc != 0)
        fail_msg("pull after the kill: exit %d: %s", rc, err);
    assert_non_null(strstr(err, "resuming at"));
    free(out), free(err);
    check_stored(store, "hf.co/test/slow:Q8_0", "test/slow");
}

// On a terminal the progress is a bar redrawn in place (script(1) gives the pull one).
static void test_progress_bar(void **state)
{
    (void)state;
    if (system("command -v script >/dev/null") != 0) {
        print_message("skipped: script(1) is missing\n");
        skip();
    }
    const char *store = new_store("bar");
    char *out, *err;
    int rc = test_run(
        &out, &err,
        "GARLIC_MODELS='%s' HF_ENDPOINT=%s script -qec '%s pull hf.co/test/slow:Q8_0' "
        "/dev/null",
        store, endpoint, test_garlic());
    if (rc != 0)
        fail_msg("pull under script: exit %d: %s", rc, out);
    assert_non_null(strstr(out, "\rslow-Q8_0.gguf ["));
    assert_non_null(strstr(out, "MiB/s"));
    assert_non_null(strstr(out, "##############################]")); // full at the end
    free(out), free(err);
}

static void test_two_pulls_download_once(void **state)
{
    (void)state;
    const char *store = new_store("twice");
    int before = downloads("test/slow");
    char *out, *err;
    int rc = test_run(&out, &err,
                      "export GARLIC_MODELS='%s' HF_ENDPOINT=%s; "
                      "%s pull hf.co/test/slow:Q8_0 & a=$!; %s pull hf.co/test/slow:Q8_0 & b=$!; "
                      "wait $a && wait $b",
                      store, endpoint, test_garlic(), test_garlic());
    if (rc != 0)
        fail_msg("two pulls: exit %d: %s", rc, err);
    free(out), free(err);
    assert_int_equal(downloads("test/slow"), before + 1);
    check_stored(store, "hf.co/test/slow:Q8_0", "test/slow");
}

static void test_list_rm_cp(void **state)
{
    (void)state;
    const char *store = new_store("manage");
    char *out, *err;
    assert_int_equal(garlic(store, &out, &err, "pull -q hf.co/test/tiny:Q8_0"), 0);
    free(out), free(err);
    assert_int_equal(garlic(store, &out, &err, "cp hf.co/test/tiny:Q8_0 mine:v1"), 0);
    free(out), free(err);
    check_stored(store, "mine:v1", "test/tiny");
    assert_int_equal(garlic(store, &out, &err, "list"), 0);
    assert_non_null(strstr(out, "NAME"));
    assert_non_null(strstr(out, "mine:v1"));
    assert_non_null(strstr(out, "hf.co/test/tiny:Q8_0"));
    free(out), free(err);
    // Removing one name keeps the shared blob; removing the last removes it.
    assert_int_equal(garlic(store, &out, &err, "rm hf.co/test/tiny:Q8_0"), 0);
    free(out), free(err);
    check_stored(store, "mine:v1", "test/tiny");
    assert_int_equal(garlic(store, &out, &err, "rm mine:v1"), 0);
    free(out), free(err);
    char *seen = visible(store);
    assert_string_equal(seen, "");
    free(seen);
    assert_int_equal(garlic(store, &out, &err, "rm mine:v1"), 1);
    assert_non_null(strstr(err, "mine:v1"));
    free(out), free(err);
    assert_int_equal(garlic(store, &out, &err, "cp nothere other"), 1);
    assert_non_null(strstr(err, "nothere"));
    free(out), free(err);
    assert_int_equal(garlic(store, &out, &err, "show nothere"), 1);
    assert_non_null(strstr(err, "neither a file nor a model in the store"));
    free(out), free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_pull_hub),
        cmocka_unit_test(test_pull_registry),
        cmocka_unit_test(test_cut_then_resumed),
        cmocka_unit_test(test_faults_leave_store),
        cmocka_unit_test(test_flaky_retried),
        cmocka_unit_test(test_etag_digest),
        cmocka_unit_test(test_stall_retried),
        cmocka_unit_test(test_sha256_vectors),
        cmocka_unit_test(test_two_pulls_download_once),
        cmocka_unit_test(test_killed_then_resumed),
        cmocka_unit_test(test_progress_bar),
        cmocka_unit_test(test_list_rm_cp),
    };
    return cmocka_run_group_tests(tests, start_mirror, stop_mirror);
}
