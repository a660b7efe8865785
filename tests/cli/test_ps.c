// SPDX-License-Identifier: MIT
// `garlic ps` against a real `garlic serve` that requires an API key: --api-key and
// GARLIC_API_KEY send it as a Bearer token, a missing key gets a 401 and the message that
// says how to give one, a wrong key is refused, and no server is a clear failure; a model
// asleep (--sleep-after) is shown so.
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "model/synth.h"
#include "util.h"

static pid_t server_pid;
static int server_port;

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

// Starts `garlic serve --api-key sesame` on a free port and waits until it says where.
static int setup(void **state)
{
    (void)state;
    model_synth_params p;
    model_synth_params_default(&p);
    char model[600], log[600], cmd[2048];
    snprintf(model, sizeof model, "%s", test_temp_path("ps.gguf"));
    snprintf(log, sizeof log, "%s", test_temp_path("ps-serve.log"));
    garlic_error err;
    if (model_synth_write(&p, model, &err))
        return -1;
    snprintf(cmd, sizeof cmd,
             "exec '%s' serve -m '%s=tiny' --host 127.0.0.1 --port 0 "
             "--threads 1 --api-key sesame --preload --sleep-after 1s 2>'%s'",
             test_garlic(), model, log);
    server_pid = fork();
    if (server_pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 200 && !server_port; i++) {
        char *text = test_read_file(log, NULL);
        const char *at = text ? strstr(text, "listening on http://127.0.0.1:") : NULL;
        if (at)
            server_port = atoi(at + strlen("listening on http://127.0.0.1:"));
        free(text);
        if (!server_port)
            sleep_ms(50);
    }
    return server_port ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    if (server_pid > 0) {
        kill(server_pid, SIGTERM);
        waitpid(server_pid, NULL, 0);
    }
    return 0;
}

// Runs `garlic ps` with GARLIC_API_KEY unset (or set to env_key) and the given flags.
static int ps(char **out, char **err, const char *env_key, const char *flags)
{
    char env[128] = "env -u GARLIC_API_KEY -u GARLIC_HOST";
    if (env_key)
        snprintf(env, sizeof env, "env -u GARLIC_HOST GARLIC_API_KEY=%s", env_key);
    return test_run(out, err, "%s '%s' ps --port %d %s", env, test_garlic(), server_port, flags);
}

static void test_api_key(void **state)
{
    (void)state;
    char *out, *err;
    // The flag, in both forms, and the environment.
    assert_int_equal(ps(&out, &err, NULL, "--api-key sesame"), 0);
    assert_non_null(strstr(out, "tiny"));
    free(out), free(err);
    assert_int_equal(ps(&out, &err, NULL, "--api-key=sesame --json"), 0);
    assert_non_null(strstr(out, "\"models\""));
    free(out), free(err);
    assert_int_equal(ps(&out, &err, "sesame", ""), 0);
    assert_non_null(strstr(out, "tiny"));
    free(out), free(err);
    // The flag wins over the environment.
    assert_int_equal(ps(&out, &err, "wrong", "--api-key sesame"), 0);
    free(out), free(err);
    // No key: 401 and how to give one.
    assert_int_equal(ps(&out, &err, NULL, ""), 1);
    assert_non_null(strstr(err,
                           "the server needs an API key: pass --api-key or set "
                           "GARLIC_API_KEY"));
    assert_non_null(strstr(err, "answered 401"));
    free(out), free(err);
    // A wrong key is refused, and said so.
    assert_int_equal(ps(&out, &err, "wrong", ""), 1);
    assert_non_null(strstr(err, "the server refused the API key"));
    free(out), free(err);
}

// --sleep-after: the model, unused, goes to sleep; ps says so (GPU column, and the state in
// --json), and the server's log has the sleep line.
static void test_asleep(void **state)
{
    (void)state;
    char *out = NULL, *err = NULL;
    bool asleep = false;
    for (int i = 0; i < 100 && !asleep; i++) {
        free(out), free(err);
        assert_int_equal(ps(&out, &err, "sesame", ""), 0);
        asleep = strstr(out, "asleep") != NULL;
        if (!asleep)
            sleep_ms(100);
    }
    if (!asleep)
        fail_msg("the model did not go to sleep: %s", out);
    assert_non_null(strstr(out, "GPU"));
    free(out), free(err);
    assert_int_equal(ps(&out, &err, "sesame", "--json"), 0);
    assert_non_null(strstr(out, "\"state\":\"asleep\""));
    assert_non_null(strstr(out, "\"size_vram\":0"));
    free(out), free(err);
}

static void test_no_server(void **state)
{
    (void)state;
    char *out, *err;
    // A port nothing listens on: the server just started took one; port 1 needs root.
    assert_int_equal(
        test_run(&out, &err, "env -u GARLIC_HOST '%s' ps --host 127.0.0.1 --port 1", test_garlic()),
        1);
    assert_non_null(strstr(err, "cannot connect to 127.0.0.1:1"));
    free(out), free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_api_key),
        cmocka_unit_test(test_asleep),
        cmocka_unit_test(test_no_server),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
