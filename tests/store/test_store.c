// SPDX-License-Identifier: MIT
// The model store and `garlic pull` end to end, with no internet: tests/store/mirror.py (started
// here) serves synthesized models over the Hugging Face hub API and the Ollama registry API,
// redirects downloads to a second port, and injects faults chosen by the repository's name
// (a cut connection, a wrong checksum, a 401 without token, a slow body, a 503). Each test pulls
// into a fresh store and checks the model loads (`garlic show`), that faults give clear errors
// and leave no visible model, and list, rm and cp. Name parsing is checked directly.
#include <cjson/cJSON.h>
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
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

// A count the mirror keeps of a repository's GGUF ("downloads", or "ranges": requests with a
// Range header); -1 when the CDN was sent a token.
static int mirror_count(const char *kind, const char *repo)
{
    char *out;
    int rc = test_run(&out, NULL, "curl -s http://127.0.0.1:%d/_stats", hub_port);
    assert_int_equal(rc, 0);
    cJSON *root = cJSON_Parse(out);
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(root, kind);
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

// How many times the mirror served a repository's file (-1: the CDN was sent a token).
static int downloads(const char *repo) { return mirror_count("downloads", repo); }

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

// ---- pulls in this process: events, cancellation, threads ----

typedef struct recorded {
    char status[64], digest[96];
    uint64_t total, completed;
} recorded;

// Keeps every event of a pull; cancels at the event cancel_status names (a status;
// "progress": the first with some but not all of a blob's bytes; "repeat": the first that
// repeats the one before, some but not all bytes, as a stalled transfer's events do).
typedef struct recorder {
    recorded e[4096];
    size_t n;
    const char *cancel_status;
} recorder;

static bool record(void *ctx, const store_pull_event *e)
{
    recorder *r = ctx;
    if (r->n == sizeof r->e / sizeof r->e[0])
        return true;
    bool repeat = r->n > 0 && e->digest && e->completed > 0 && e->completed < e->total &&
        r->e[r->n - 1].completed == e->completed;
    recorded *x = &r->e[r->n++];
    snprintf(x->status, sizeof x->status, "%s", e->status);
    snprintf(x->digest, sizeof x->digest, "%s", e->digest ? e->digest : "");
    x->total = e->total, x->completed = e->completed;
    if (!r->cancel_status)
        return true;
    if (strcmp(r->cancel_status, "repeat") == 0)
        return !repeat;
    if (strcmp(r->cancel_status, "progress") == 0)
        return !(e->digest && e->completed > 0 && e->completed < e->total);
    return strcmp(r->cancel_status, e->status) != 0;
}

static void pull_options(store_pull_options *o, recorder *r)
{
    store_pull_options_default(o);
    o->progress = NULL;
    o->hf_endpoint = endpoint;
    o->hf_token = "";
    o->backoff_ms = 10;
    o->on_event = record;
    o->event_ctx = r;
}

// The sha256 of a repository's GGUF in the mirror.
static void source_digest(const char *repo, char hex[STORE_DIGEST_HEX + 1], uint64_t *size)
{
    char src[700];
    garlic_error err;
    struct stat st;
    source_path(repo, src, sizeof src);
    assert_int_equal(store_sha256_file(src, hex, &err), 0);
    assert_int_equal(stat(src, &st), 0);
    *size = (uint64_t)st.st_size;
}

// Checks r holds one whole pull of a blob of that digest and size: "pulling manifest", the
// blob's events (completed from what was there, never going back, reaching the size), then
// the three closing steps. Returns how many blob events there were.
static size_t check_sequence(const recorder *r, const char *hex, uint64_t size, uint64_t first)
{
    char status[64], digest[96];
    snprintf(status, sizeof status, "pulling %.12s", hex);
    snprintf(digest, sizeof digest, "sha256:%s", hex);
    assert_true(r->n >= 5);
    assert_string_equal(r->e[0].status, "pulling manifest");
    assert_string_equal(r->e[0].digest, "");
    size_t i = 1;
    uint64_t last = 0;
    for (; i < r->n && strncmp(r->e[i].status, "pulling ", 8) == 0; i++) {
        assert_string_equal(r->e[i].status, status);
        assert_string_equal(r->e[i].digest, digest);
        assert_true(r->e[i].total == size);
        if (i == 1 && r->e[i].completed != first)
            fail_msg("the first event has %llu bytes, not the %llu already there",
                     (unsigned long long)r->e[i].completed, (unsigned long long)first);
        assert_true(r->e[i].completed >= last);
        last = r->e[i].completed;
    }
    assert_true(last == size);
    size_t n_blob = i - 1;
    static const char *const closing[] = {"verifying sha256 digest", "writing manifest", "success"};
    assert_int_equal(r->n, i + 3);
    for (size_t k = 0; k < 3; k++) {
        assert_string_equal(r->e[i + k].status, closing[k]);
        assert_string_equal(r->e[i + k].digest, "");
    }
    return n_blob;
}

static void test_events(void **state)
{
    (void)state;
    const char *store = new_store("events");
    recorder *r = calloc(1, sizeof *r);
    store_pull_options o;
    pull_options(&o, r);
    garlic_error err;
    char hex[STORE_DIGEST_HEX + 1];
    uint64_t size;
    source_digest("test/slow", hex, &size);
    if (store_pull(store, "hf.co/test/slow:Q8_0", &o, &err) != GARLIC_OK)
        fail_msg("pull: %s", err.message);
    // The slow mirror takes over a second: several progress events, 100 ms apart at most
    // every time, between the first (0 bytes) and the last (all of them).
    size_t n_blob = check_sequence(r, hex, size, 0);
    if (n_blob < 4)
        fail_msg("only %zu events for a blob that took over a second", n_blob);
    // Pulled again, the blob is there: one event with all of it.
    *r = (recorder){0};
    assert_int_equal(store_pull(store, "hf.co/test/slow:Q8_0", &o, &err), GARLIC_OK);
    assert_int_equal(check_sequence(r, hex, size, size), 1);
    free(r);
    check_stored(store, "hf.co/test/slow:Q8_0", "test/slow");
}

static void test_cancel_then_resumed(void **state)
{
    (void)state;
    const char *store = new_store("cancel");
    recorder *r = calloc(1, sizeof *r);
    store_pull_options o;
    pull_options(&o, r);
    garlic_error err;
    char hex[STORE_DIGEST_HEX + 1], partial[STORE_PATH_MAX + 16], lock[STORE_PATH_MAX + 96];
    uint64_t size;
    source_digest("test/slow", hex, &size);
    // Cancelled before anything is fetched.
    r->cancel_status = "pulling manifest";
    assert_int_equal(store_pull(store, "hf.co/test/slow:Q8_0", &o, &err), GARLIC_ESTOPPED);
    assert_non_null(strstr(err.message, "pull of hf.co/test/slow:Q8_0 cancelled"));
    assert_int_equal(r->n, 1);
    // Cancelled while the blob downloads: the transfer stops, the partial file stays.
    *r = (recorder){.cancel_status = "progress"};
    int ranges = mirror_count("ranges", "test/slow");
    double start = (double)time(NULL);
    assert_int_equal(store_pull(store, "hf.co/test/slow:Q8_0", &o, &err), GARLIC_ESTOPPED);
    assert_non_null(strstr(err.message, "cancelled"));
    assert_true((double)time(NULL) - start < 10);
    assert_true(r->n >= 2);
    assert_true(r->e[r->n - 1].completed > 0 && r->e[r->n - 1].completed < size); // the last
    store_blob_path(store, hex, partial, sizeof partial);
    strcat(partial, "-partial");
    struct stat st;
    assert_int_equal(stat(partial, &st), 0);
    uint64_t kept = (uint64_t)st.st_size;
    assert_true(kept > 0 && kept < size);
    char *seen = visible(store);
    assert_string_equal(seen, "");
    free(seen);
    // Its lock was released.
    snprintf(lock, sizeof lock, "%s/locks/sha256-%s.lock", store, hex);
    int fd = open(lock, O_RDWR);
    assert_true(fd >= 0);
    assert_int_equal(flock(fd, LOCK_EX | LOCK_NB), 0);
    close(fd);
    // The next pull starts from what is there, with a Range request.
    *r = (recorder){0};
    if (store_pull(store, "hf.co/test/slow:Q8_0", &o, &err) != GARLIC_OK)
        fail_msg("resumed pull: %s", err.message);
    check_sequence(r, hex, size, kept);
    assert_int_equal(mirror_count("ranges", "test/slow"), ranges + 1);
    check_stored(store, "hf.co/test/slow:Q8_0", "test/slow");
    // Cancelled between steps, once the blob is down: no model, and the next pull has it all.
    const char *other = new_store("cancel-verify");
    *r = (recorder){.cancel_status = "verifying sha256 digest"};
    assert_int_equal(store_pull(other, "hf.co/test/tiny:Q8_0", &o, &err), GARLIC_ESTOPPED);
    seen = visible(other);
    assert_string_equal(seen, "");
    free(seen);
    int before = downloads("test/tiny");
    *r = (recorder){0};
    assert_int_equal(store_pull(other, "hf.co/test/tiny:Q8_0", &o, &err), GARLIC_OK);
    assert_int_equal(downloads("test/tiny"), before);
    check_stored(other, "hf.co/test/tiny:Q8_0", "test/tiny");
    free(r);
}

// A transfer that has stalled still gives its caller an event every second, and so a way to
// cancel it: well before the mirror's 30 s stall or the 60 s stall timeout.
static void test_cancel_stalled(void **state)
{
    (void)state;
    const char *store = new_store("cancel-stall");
    recorder *r = calloc(1, sizeof *r);
    r->cancel_status = "repeat";
    store_pull_options o;
    pull_options(&o, r);
    garlic_error err;
    time_t start = time(NULL);
    assert_int_equal(store_pull(store, "hf.co/test/stall:Q8_0", &o, &err), GARLIC_ESTOPPED);
    assert_true(time(NULL) - start < 10);
    free(r);
}

typedef struct thread_pull {
    const char *store;
    int rc;
    garlic_error err;
} thread_pull;

static void *pull_thread(void *arg)
{
    thread_pull *t = arg;
    store_pull_options o;
    store_pull_options_default(&o);
    o.progress = NULL;
    o.hf_endpoint = endpoint;
    o.hf_token = "";
    t->rc = store_pull(t->store, "hf.co/test/slow:Q8_0", &o, &t->err);
    return NULL;
}

// Two pulls of one model at once in one process (two threads) download it once.
static void test_threads_download_once(void **state)
{
    (void)state;
    thread_pull t[2] = {{.store = new_store("threads")}, {.store = t[0].store}};
    int before = downloads("test/slow");
    pthread_t id[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&id[i], NULL, pull_thread, &t[i]), 0);
    for (int i = 0; i < 2; i++) {
        pthread_join(id[i], NULL);
        if (t[i].rc != GARLIC_OK)
            fail_msg("pull %d: %s", i, t[i].err.message);
    }
    assert_int_equal(downloads("test/slow"), before + 1);
    check_stored(t[0].store, "hf.co/test/slow:Q8_0", "test/slow");
}

// ---- Hugging Face folders ----

// A python3 that has numpy, or NULL.
static const char *numpy_python(void)
{
    if (test_run(NULL, NULL, "python3 -c 'import numpy' 2>/dev/null") == 0)
        return "python3";
    if (test_run(NULL, NULL, "/usr/bin/python3 -c 'import numpy' 2>/dev/null") == 0)
        return "/usr/bin/python3";
    return NULL;
}

// Writes a file of the mirror's repository repo.
static void mirror_file(const char *repo, const char *name, const char *text)
{
    char path[800];
    snprintf(path, sizeof path, "%s/%s/%s", mirror_root, repo, name);
    assert_int_equal(test_write_file(path, text, strlen(text)), 0);
}

static void mirror_repo(const char *repo)
{
    char dir[700];
    garlic_error err;
    snprintf(dir, sizeof dir, "%s/%s", mirror_root, repo);
    assert_int_equal(store_mkdirs(dir, &err), 0);
}

// The folder of links a stored folder model resolves to (with GARLIC_MODELS set to store).
static void resolve_in(const char *store, const char *name, char *buf, size_t cap)
{
    garlic_error err;
    setenv("GARLIC_MODELS", store, 1);
    if (store_resolve(name, buf, cap, &err) != GARLIC_OK)
        fail_msg("resolve %s: %s", name, err.message);
    unsetenv("GARLIC_MODELS");
}

static void test_folder_pull(void **state)
{
    (void)state;
    const char *py = numpy_python();
    if (!py) {
        print_message("skipped: needs python3 with numpy (tools/setup.sh installs it)\n");
        skip();
    }
    char src[700], gguf[700], *out, *err;
    snprintf(src, sizeof src, "%s/test/folder", mirror_root);
    snprintf(gguf, sizeof gguf, "%s", test_temp_path("folder-src.gguf"));
    if (test_run(NULL, &err,
                 "'%s' synth '%s' --dim 64 --heads 4 --kv-heads 2 --ffn 128 --layers 2 --vocab 512 "
                 "--type BF16 && %s tools/gen_hf_folder.py '%s' '%s' --encoding bf16 && mkdir "
                 "'%s/original' && echo x > '%s/original/params.json'",
                 test_garlic(), gguf, py, gguf, src, src, src) != 0)
        fail_msg("making the folder: %s", err);
    free(err);
    mirror_file("test/folder", "README.md", "# a model\n");
    mirror_file("test/folder", ".gitattributes", "*.safetensors filter=lfs\n");
    mirror_file("test/folder", "pytorch_model.bin", "not wanted");
    const char *store = new_store("folder");
    // org/repo is the hub's repository, and :latest of one without GGUF files its folder.
    int rc = garlic(store, &out, &err, "pull test/folder");
    if (rc != 0)
        fail_msg("pull: exit %d: %s", rc, err);
    free(out), free(err);
    assert_int_equal(garlic(store, &out, &err, "list"), 0);
    assert_non_null(strstr(out, "hf.co/test/folder:latest"));
    assert_non_null(strstr(out, "BF16"));
    free(out), free(err);
    store_manifest *m = calloc(1, sizeof *m);
    store_name name;
    garlic_error e;
    assert_int_equal(store_name_parse("test/folder", &name, &e), 0);
    assert_int_equal(store_manifest_read(store, &name, m, &e), 0);
    assert_string_equal(m->format, "folder");
    assert_int_equal(m->n_files, 6);
    free(m);
    // It resolves to a folder of links to its blobs, the same each time, that loads.
    char dir[STORE_PATH_MAX], again[STORE_PATH_MAX];
    resolve_in(store, "test/folder", dir, sizeof dir);
    resolve_in(store, "hf.co/test/folder", again, sizeof again);
    assert_string_equal(dir, again);
    assert_int_equal(test_run(&out, &err,
                              "cd '%s' && ls -A | tr '\\n' ' ' && for f in *; do test -L $f && "
                              "cmp -s $f '%s'/$f || echo BAD $f; done",
                              dir, src),
                     0);
    assert_string_equal(out,
                        "config.json generation_config.json model.safetensors "
                        "special_tokens_map.json tokenizer.json tokenizer_config.json ");
    free(out), free(err);
    rc = garlic(store, &out, &err, "show test/folder");
    if (rc != 0)
        fail_msg("show: exit %d: %s", rc, err);
    assert_non_null(strstr(out, "llama"));
    free(out), free(err);
    // Removing it removes its blobs and its folder of links.
    assert_int_equal(garlic(store, &out, &err, "rm test/folder"), 0);
    free(out), free(err);
    char *seen = visible(store);
    assert_string_equal(seen, "");
    free(seen);
    struct stat st;
    assert_int_not_equal(stat(dir, &st), 0);
}

// Small files have only a git blob id: checked by it, stored by their sha256; a wrong one is
// refused, naming the file, and leaves the store as it was.
static void test_folder_git_ids(void **state)
{
    (void)state;
    static const char *const repos2[] = {"test/plain", "test/badoid"};
    for (int i = 0; i < 2; i++) {
        mirror_repo(repos2[i]);
        mirror_file(repos2[i], "config.json", "{\"torch_dtype\": \"float16\"}\n");
        mirror_file(repos2[i], "tokenizer.json", "{\"model\": {}}\n");
        mirror_file(repos2[i], "model.safetensors", "not really weights, but bytes all the same");
    }
    const char *store = new_store("git-ids");
    char *out, *err;
    int rc = garlic(store, &out, &err, "pull test/plain");
    if (rc != 0)
        fail_msg("pull: exit %d: %s", rc, err);
    free(out), free(err);
    assert_int_equal(garlic(store, &out, &err, "list"), 0);
    assert_non_null(strstr(out, "F16"));
    free(out), free(err);
    char hex[STORE_DIGEST_HEX + 1], src[800], blob[STORE_PATH_MAX];
    garlic_error e;
    struct stat st;
    snprintf(src, sizeof src, "%s/test/plain/config.json", mirror_root);
    assert_int_equal(store_sha256_file(src, hex, &e), 0);
    store_blob_path(store, hex, blob, sizeof blob);
    assert_int_equal(stat(blob, &st), 0);
    char *before = visible(store);
    assert_int_equal(garlic(store, &out, &err, "pull test/badoid"), 1);
    assert_non_null(strstr(err, "config.json: checksum mismatch (expected git blob sha1"));
    free(out), free(err);
    char *after = visible(store);
    assert_string_equal(before, after);
    free(before), free(after);
    // A folder named with a tag other than :latest or :safetensors wants a GGUF.
    assert_int_equal(garlic(store, &out, &err, "pull test/plain:Q4_K_M"), 1);
    assert_non_null(strstr(err, "no GGUF file for 'Q4_K_M'"));
    free(out), free(err);
    // A repository with both: :latest is its GGUF, :safetensors its folder (FP8 in its
    // quantization_config).
    mirror_repo("test/both");
    mirror_file("test/both", "config.json",
                "{\"torch_dtype\": \"bfloat16\", \"quantization_config\": {\"quant_method\": "
                "\"fp8\"}}");
    mirror_file("test/both", "model.safetensors", "weights of the folder");
    mirror_file("test/both", "both-Q4_K_M.gguf", "weights of the GGUF");
    assert_int_equal(garlic(store, &out, &err, "pull test/both"), 0);
    free(out), free(err);
    assert_int_equal(garlic(store, &out, &err, "pull test/both:safetensors"), 0);
    free(out), free(err);
    static const struct {
        const char *name, *format, *quantization;
        size_t n_files;
    } both[] = {{"test/both", "gguf", "Q4_K_M", 1}, {"test/both:safetensors", "folder", "FP8", 2}};
    store_manifest *m = calloc(1, sizeof *m);
    for (int i = 0; i < 2; i++) {
        store_name name;
        assert_int_equal(store_name_parse(both[i].name, &name, &e), 0);
        assert_int_equal(store_manifest_read(store, &name, m, &e), 0);
        assert_string_equal(m->format, both[i].format);
        assert_string_equal(m->quantization, both[i].quantization);
        assert_int_equal(m->n_files, both[i].n_files);
    }
    free(m);
}

static void test_split_refused(void **state)
{
    (void)state;
    mirror_repo("test/split");
    mirror_file("test/split", "split-Q8_0-00001-of-00002.gguf", "GGUF part one");
    mirror_file("test/split", "split-Q8_0-00002-of-00002.gguf", "GGUF part two");
    const char *store = new_store("split");
    char *out, *err;
    assert_int_equal(garlic(store, &out, &err, "pull hf.co/test/split:Q8_0"), 1);
    assert_non_null(strstr(err, "split in 2 files"));
    assert_non_null(strstr(err, "split-Q8_0-00001-of-00002.gguf"));
    assert_non_null(strstr(err, "split-Q8_0-00002-of-00002.gguf"));
    free(out), free(err);
    // :latest of a repository whose only GGUF is split names the parts too.
    mirror_repo("test/splitonly");
    mirror_file("test/splitonly", "model-00001-of-00002.gguf", "GGUF part one");
    mirror_file("test/splitonly", "model-00002-of-00002.gguf", "GGUF part two");
    assert_int_equal(garlic(store, &out, &err, "pull test/splitonly"), 1);
    assert_non_null(strstr(err,
                           "split in 2 files (model-00001-of-00002.gguf, "
                           "model-00002-of-00002.gguf)"));
    free(out), free(err);
    char *seen = visible(store);
    assert_string_equal(seen, "");
    free(seen);
}

// A GGUF model's manifest may list the extras a Modelfile adds before its weights: resolving
// it still gives the weights.
static void test_resolve_past_extras(void **state)
{
    (void)state;
    const char *store = new_store("extras");
    store_manifest *m = calloc(1, sizeof *m);
    garlic_error e;
    char src[700], blobs[700], blob[STORE_PATH_MAX], got[STORE_PATH_MAX];
    snprintf(blobs, sizeof blobs, "%s/blobs", store);
    assert_int_equal(store_mkdirs(blobs, &e), 0);
    const char *text = "{{ .Prompt }}";
    const char *tpath = test_temp_path("template");
    assert_int_equal(test_write_file(tpath, text, strlen(text)), 0);
    source_path("test/tiny", src, sizeof src);
    const char *paths[2] = {tpath, src}, *names[2] = {"template", "model.gguf"};
    for (int i = 0; i < 2; i++) {
        store_file *f = &m->files[m->n_files++];
        struct stat st;
        assert_int_equal(store_sha256_file(paths[i], f->digest, &e), 0);
        assert_int_equal(stat(paths[i], &st), 0);
        f->size = (uint64_t)st.st_size;
        snprintf(f->path, sizeof f->path, "%s", names[i]);
        store_blob_path(store, f->digest, blob, sizeof blob);
        assert_int_equal(test_run(NULL, NULL, "cp '%s' '%s'", paths[i], blob), 0);
    }
    assert_int_equal(store_name_parse("made:here", &m->name, &e), 0);
    snprintf(m->format, sizeof m->format, "gguf");
    assert_int_equal(store_manifest_write(store, m, &e), 0);
    resolve_in(store, "made:here", got, sizeof got);
    store_blob_path(store, m->files[1].digest, blob, sizeof blob);
    assert_string_equal(got, blob);
    // `garlic list` gives the weights' ID, not the template's.
    char *out, *err, id[13];
    assert_int_equal(garlic(store, &out, &err, "list"), 0);
    snprintf(id, sizeof id, "%.12s", m->files[1].digest);
    assert_non_null(strstr(out, id));
    snprintf(id, sizeof id, "%.12s", m->files[0].digest);
    assert_null(strstr(out, id));
    free(out), free(err);
    free(m);
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
        cmocka_unit_test(test_events),
        cmocka_unit_test(test_cancel_then_resumed),
        cmocka_unit_test(test_cancel_stalled),
        cmocka_unit_test(test_threads_download_once),
        cmocka_unit_test(test_folder_pull),
        cmocka_unit_test(test_folder_git_ids),
        cmocka_unit_test(test_split_refused),
        cmocka_unit_test(test_resolve_past_extras),
    };
    return cmocka_run_group_tests(tests, start_mirror, stop_mirror);
}
