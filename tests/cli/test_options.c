// SPDX-License-Identifier: MIT
// The command line behaves the same everywhere (src/cli/options.c through the real binary):
// `garlic --help` lists every command; each command's --help and -h print its usage to
// stdout and exit 0; an unknown option is reported as unknown (also last, also with
// "=value"); a missing value, a flag given a value, a bad value and an extra argument are
// usage errors (exit 2, the usage on stderr); --opt=value works as --opt value; a value may
// start with '-'; "--" ends the options.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/synth.h"
#include "util.h"

// The commands on the shared parser, each with one option that takes a value and the
// arguments that make it reach that option.
static const struct {
    const char *name;
    const char *valued; // an option taking a value
    const char *args;   // positional arguments it needs
} commands[] = {
    {"show", NULL, "m.gguf"},
    {"run", "--ctx", "m.gguf"},
    {"bench", "-p", "m.gguf"},
    {"synth", "--dim", "out.gguf"},
    {"tokenize", NULL, "m.gguf text"},
    {"estimate", "--ctx", "m.gguf"},
    {"ps", "--port", ""},
    {"serve", "--port", "-m m.gguf"},
    {"chat-template", "--messages", "t.jinja"},
    {"version", NULL, ""},
    {"help", NULL, ""},
};

static const char *model_path(void)
{
    static char path[600];
    if (!path[0]) {
        model_synth_params p;
        model_synth_params_default(&p);
        snprintf(path, sizeof path, "%s", test_temp_path("options.gguf"));
        garlic_error err;
        if (model_synth_write(&p, path, &err))
            fail_msg("%s", err.message);
    }
    return path;
}

// Runs `garlic ARGS`, expecting status; returns stdout and stderr (freed by the caller).
static void run_expect(int status, char **out, char **err, const char *args)
{
    int rc = test_run(out, err, "%s %s", test_garlic(), args);
    if (rc != status)
        fail_msg("garlic %s: exit %d, expected %d; stderr: %s", args, rc, status, *err);
}

static void expect_contains(const char *text, const char *needle, const char *what)
{
    if (!strstr(text, needle))
        fail_msg("%s: no '%s' in:\n%s", what, needle, text);
}

static void test_top_level_help(void **state)
{
    (void)state;
    static const char *const all[] = {"serve",    "run",      "bench",         "show",
                                      "estimate", "tokenize", "chat-template", "ps",
                                      "synth",    "version",  "help"};
    static const char *const spellings[] = {"--help", "-h", "help"};
    for (size_t s = 0; s < sizeof spellings / sizeof spellings[0]; s++) {
        char *out, *err;
        run_expect(0, &out, &err, spellings[s]);
        assert_string_equal(err, "");
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
            char line[64];
            snprintf(line, sizeof line, "\n  %s ", all[i]);
            expect_contains(out, line, spellings[s]);
        }
        free(out), free(err);
    }
    // No command, or an unknown one: the list on stderr, status 2.
    char *out, *err;
    run_expect(2, &out, &err, "");
    expect_contains(err, "commands:", "no command");
    assert_string_equal(out, "");
    free(out), free(err);
    run_expect(2, &out, &err, "frobnicate");
    expect_contains(err, "garlic: unknown command 'frobnicate'", "unknown command");
    free(out), free(err);
}

static void test_command_help(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        char args[256], usage[64], *out, *err, *again, *ignored;
        snprintf(usage, sizeof usage, "usage: garlic %s", commands[i].name);
        static const char *const spellings[] = {"--help", "-h"};
        for (size_t s = 0; s < 2; s++) {
            // --help wins wherever it stands, even after the arguments.
            snprintf(args, sizeof args, "%s %s %s", commands[i].name, commands[i].args,
                     spellings[s]);
            run_expect(0, &out, &err, args);
            expect_contains(out, usage, args);
            expect_contains(out, "-h, --help", args);
            assert_string_equal(err, "");
            // `garlic help COMMAND` prints the same.
            snprintf(args, sizeof args, "help %s", commands[i].name);
            run_expect(0, &again, &ignored, args);
            assert_string_equal(again, out);
            free(out), free(err), free(again), free(ignored);
        }
    }
}

static void test_unknown_option(void **state)
{
    (void)state;
    // First, last (where a valued option would lack its value), and with "=value".
    static const char *const forms[] = {"--bogus %s", "%s --bogus", "%s --bogus=3", "%s -z"};
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        for (size_t f = 0; f < sizeof forms / sizeof forms[0]; f++) {
            char args[256], cmd[300], want[128], *out, *err;
            snprintf(args, sizeof args, forms[f], commands[i].args);
            snprintf(cmd, sizeof cmd, "%s %s", commands[i].name, args);
            run_expect(2, &out, &err, cmd);
            snprintf(want, sizeof want, "garlic %s: unknown option '%s'\n", commands[i].name,
                     f == 3 ? "-z" : "--bogus");
            expect_contains(err, want, cmd);
            snprintf(want, sizeof want, "usage: garlic %s", commands[i].name);
            expect_contains(err, want, cmd);
            assert_string_equal(out, "");
            free(out), free(err);
        }
    }
}

static void test_missing_value(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (!commands[i].valued)
            continue;
        char cmd[300], want[128], *out, *err;
        snprintf(cmd, sizeof cmd, "%s %s %s", commands[i].name, commands[i].args,
                 commands[i].valued);
        run_expect(2, &out, &err, cmd);
        snprintf(want, sizeof want, "garlic %s: %s needs a value\n", commands[i].name,
                 commands[i].valued);
        expect_contains(err, want, cmd);
        expect_contains(err, "usage: garlic", cmd);
        free(out), free(err);
    }
}

// Flags given a value, bad values, missing and extra arguments.
static void test_usage_errors(void **state)
{
    (void)state;
    static const struct {
        const char *args, *message;
    } cases[] = {
        {"show --json=yes m.gguf", "garlic show: --json takes no value"},
        {"show a.gguf b.gguf", "garlic show: unexpected argument 'b.gguf'"},
        {"show", "garlic show: MODEL.gguf is missing"},
        {"tokenize m.gguf", "garlic tokenize: TEXT is missing"},
        {"estimate m.gguf --ctx 0", "--ctx: '0' is not an integer from 1 to"},
        {"estimate m.gguf --ctx=x", "--ctx: 'x' is not an integer"},
        {"estimate m.gguf -c=5", "unknown option '-c=5'"}, // "=value" is for --long names
        {"estimate m.gguf --kv-type=q4", "--kv-type: 'q4' is not f16, q8_0, fp8 or f32"},
        {"estimate m.gguf --budget 12XB", "--budget: '12XB' is not a size"},
        {"synth o.gguf --seed -1", "garlic synth: --seed: '-1' is not a non-negative integer"},
        {"synth o.gguf --type Q9_9", "garlic synth: --type: unknown weight type 'Q9_9'"},
        {"synth o.gguf --preset huge", "unknown preset 'huge'"},
        {"serve --port 70000 -m m.gguf", "--port: '70000' is not an integer from 0 to 65535"},
        {"serve --keep-alive soon -m m.gguf", "--keep-alive: 'soon' is not a duration"},
        {"serve --no-store",
         "garlic serve: with --no-store, give at least one -m MODEL.gguf or --models-dir"},
        {"chat-template t.jinja", "garlic chat-template: --messages FILE.json is missing"},
        {"help frobnicate", "garlic help: unknown command 'frobnicate'"},
        {"version now", "garlic version: unexpected argument 'now'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *out, *err;
        run_expect(2, &out, &err, cases[i].args);
        expect_contains(err, cases[i].message, cases[i].args);
        expect_contains(err, "usage: garlic", cases[i].args);
        free(out), free(err);
    }
    // A value may start with '-': --keep-alive -1 is a value, so parsing goes on to the
    // missing -m.
    char *out, *err;
    run_expect(2, &out, &err, "serve --keep-alive -1 --no-store");
    expect_contains(err, "give at least one -m", "serve --keep-alive -1 --no-store");
    free(out), free(err);
}

// --opt=value means --opt value; "--" ends the options.
static void test_equals_and_double_dash(void **state)
{
    (void)state;
    char cmd[1024], *a, *b, *err;
    snprintf(cmd, sizeof cmd, "estimate '%s' --ctx=100 --parallel=3 --kv-type=q8_0 --json",
             model_path());
    run_expect(0, &a, &err, cmd);
    free(err);
    snprintf(cmd, sizeof cmd, "estimate '%s' --ctx 100 --parallel 3 --kv-type q8_0 --json",
             model_path());
    run_expect(0, &b, &err, cmd);
    free(err);
    assert_string_equal(a, b);
    expect_contains(a, "\"blocks\":\t21", "--ctx=100 --parallel=3");
    free(a), free(b);
    // A value holding '=' keeps it: the first '=' splits.
    snprintf(cmd, sizeof cmd,
             "synth '%s' --name=a=b --dim=64 --heads=2 --kv-heads=1 --ffn=96 "
             "--vocab=400 --seed=9",
             test_temp_path("eq.gguf"));
    run_expect(0, &a, &err, cmd);
    free(a), free(err);
    snprintf(cmd, sizeof cmd, "show '%s' --json", test_temp_path("eq.gguf"));
    run_expect(0, &a, &err, cmd);
    expect_contains(a, "\"name\":\t\"a=b\"", cmd);
    expect_contains(a, "\"embedding_length\":\t64", cmd);
    free(a), free(err);
    // After "--", "--ids" is the text to tokenize.
    snprintf(cmd, sizeof cmd, "tokenize '%s' --no-bos -- --ids", model_path());
    run_expect(0, &a, &err, cmd);
    expect_contains(a, "'-'", cmd);
    free(a), free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_top_level_help), cmocka_unit_test(test_command_help),
        cmocka_unit_test(test_unknown_option), cmocka_unit_test(test_missing_value),
        cmocka_unit_test(test_usage_errors),   cmocka_unit_test(test_equals_and_double_dash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
