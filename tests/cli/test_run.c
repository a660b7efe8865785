// SPDX-License-Identifier: MIT
// `garlic run` and `garlic bench` end to end through the binary: the golden stories260K
// text, seeds, stop strings, context limits, --dump-logits, --prompt-ids, chat over a pipe,
// bench's JSON and depths (-d), and usage errors.
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/synth.h"
#include "tensor/types.h"
#include "util.h"

static const char *synth_model(void)
{
    static char path[600];
    if (!path[0]) {
        model_synth_params p;
        model_synth_params_default(&p);
        p.type = TENSOR_TYPE_Q8_0;
        snprintf(path, sizeof path, "%s", test_temp_path("run-model.gguf"));
        garlic_error err;
        if (model_synth_write(&p, path, &err))
            fail_msg("%s", err.message);
    }
    return path;
}

static char *run_ok(const char *fmt_args)
{
    char *out, *err;
    int rc = test_run(&out, &err, "%s run %s", test_garlic(), fmt_args);
    if (rc != 0)
        fail_msg("garlic run %s: exit %d: %s", fmt_args, rc, err);
    free(err);
    return out;
}

static void test_stories_golden_text(void **state)
{
    (void)state;
    skip_without_shared();
    char args[4200];
    snprintf(args, sizeof args, "'%s' '' -n 200 --temp 0",
             test_shared_path("models/stories260K.gguf"));
    char *out = run_ok(args);
    char *want = test_read_file(test_shared_path("reference/stories260K/greedy200.txt"), NULL);
    assert_non_null(want);
    assert_string_equal(out, want);
    free(out), free(want);
    // A stop string ends the text just before it, and nothing of it is printed.
    snprintf(args, sizeof args, "'%s' 'Once upon a time' -n 100 --temp 0 --stop 'Lily'",
             test_shared_path("models/stories260K.gguf"));
    out = run_ok(args);
    assert_string_equal(out, ", there was a little girl named ");
    free(out);
}

// The repository's demo model (the README's run command): a fresh clone runs it without
// ../shared. Where ../shared is present it must be the same file, whose greedy text the test
// above checks against llama2.c's golden; without it, the README's command must still write a
// story (non-empty text, exit 0).
static void test_demo_model(void **state)
{
    (void)state;
    size_t size = 0;
    void *mine = test_read_file("models/stories260K.gguf", &size);
    assert_non_null(mine);
    assert_int_equal(size, 1185376);
    if (test_shared_dir()) {
        size_t n = 0;
        void *shared = test_read_file(test_shared_path("models/stories260K.gguf"), &n);
        assert_int_equal(n, size);
        assert_memory_equal(mine, shared, size);
        free(shared);
    }
    free(mine);
    char *out = run_ok("models/stories260K.gguf 'Once upon a time' -n 20 --temp 0");
    assert_true(strlen(out) > 20);
    free(out);
}

static void test_seeds(void **state)
{
    (void)state;
    char args[1024];
    snprintf(args, sizeof args,
             "'%s' 'abc' -n 24 --temp 1.5 --top-k 0 --top-p 1 --min-p 0 --seed 7", synth_model());
    char *a = run_ok(args), *b = run_ok(args);
    assert_string_equal(a, b);
    snprintf(args, sizeof args,
             "'%s' 'abc' -n 24 --temp 1.5 --top-k 0 --top-p 1 --min-p 0 --seed 8", synth_model());
    char *c = run_ok(args);
    assert_string_not_equal(a, c);
    assert_true(strlen(a) > 0);
    free(a), free(b), free(c);
}

// The generation stops when the context is full; --verbose reports counts on stderr.
static void test_context_limit_and_stats(void **state)
{
    (void)state;
    char *out, *err;
    int rc = test_run(&out, &err, "%s run '%s' 'ab' -n 0 -c 24 --temp 0 --verbose", test_garlic(),
                      synth_model());
    assert_int_equal(rc, 0);
    int prompt = 0, gen = 0;
    const char *p = strstr(err, "prompt eval:"), *g = strstr(err, "generation:");
    assert_non_null(p);
    assert_non_null(g);
    sscanf(p, "prompt eval: %d", &prompt);
    sscanf(g, "generation: %d", &gen);
    assert_int_equal(prompt + gen, 24); // every emitted token fits in the context
    free(out), free(err);
}

static void test_dump_logits(void **state)
{
    (void)state;
    skip_without_shared();
    const char *dump = test_temp_path("dump.txt");
    char ids[1024] = "", args[8000];
    char *text = test_read_file(test_shared_path("reference/stories260K/P2.ids"), NULL);
    snprintf(ids, sizeof ids, "%s", text);
    free(text);
    ids[strcspn(ids, "\n")] = '\0';
    snprintf(args, sizeof args,
             "'%s' --prompt-ids '%s' --dump-logits '%s' --kv-type f32 -n 0 -c 16",
             test_shared_path("models/stories260K.gguf"), ids, dump);
    free(run_ok(args));
    FILE *got = fopen(dump, "r"),
         *want = fopen(test_shared_path("reference/stories260K/P2.logits"), "r");
    assert_non_null(got);
    assert_non_null(want);
    double worst = 0, max_ref = 0;
    int n = 0;
    float a, b;
    while (fscanf(want, "%f", &b) == 1) {
        assert_int_equal(fscanf(got, "%f", &a), 1);
        worst = fmax(worst, fabs(a - b));
        max_ref = fmax(max_ref, fabs(b));
        n++;
    }
    assert_int_equal(fscanf(got, "%f", &a), EOF);
    assert_true(n > 512);
    assert_true(worst / max_ref < 1e-4);
    fclose(got), fclose(want);
}

static void test_chat_over_pipe(void **state)
{
    (void)state;
    char *out, *err;
    // A random model may emit byte tokens such as 0x00; tr drops NULs so the C string holds
    // the whole output.
    int rc = test_run(&out, &err,
                      "printf 'hello\\nand more\\n' | %s run '%s' -n 8 --seed 3 | tr -d '\\000'",
                      test_garlic(), synth_model());
    assert_int_equal(rc, 0);
    assert_non_null(strstr(err, "chatting with"));
    int lines = 0;
    for (const char *p = out; *p; p++)
        lines += *p == '\n';
    assert_true(lines >= 2); // one reply per line typed
    free(out), free(err);
}

static void test_bench_json(void **state)
{
    (void)state;
    char *out, *err;
    int rc = test_run(&out, &err, "%s bench '%s' -p 16 -n 4 -r 2 -t 1 --json", test_garlic(),
                      synth_model());
    assert_int_equal(rc, 0);
    cJSON *root = cJSON_Parse(out);
    assert_non_null(root);
    assert_int_equal(cJSON_GetArraySize(root), 2);
    const char *fields[] = {"model", "type",   "n_threads", "n_prompt",
                            "n_gen", "avg_ts", "stddev_ts"};
    for (int i = 0; i < 2; i++)
        for (size_t f = 0; f < sizeof fields / sizeof fields[0]; f++)
            assert_non_null(cJSON_GetObjectItem(cJSON_GetArrayItem(root, i), fields[f]));
    assert_int_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(root, 0), "n_prompt")->valueint, 16);
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(root, 0), "type")->valuestring,
                        "Q8_0");
    assert_true(cJSON_GetObjectItem(cJSON_GetArrayItem(root, 1), "avg_ts")->valuedouble > 0);
    cJSON_Delete(root);
    free(out), free(err);
    rc = test_run(&out, &err, "%s bench '%s' -p 8 -n 2 -r 1 -t 1", test_garlic(), synth_model());
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "pp8"));
    assert_non_null(strstr(out, "tg2"));
    free(out), free(err);
}

// -d: each test runs on top of a context already in the KV cache; the JSON rows say the depth
// and how many positions the measured runs found cached (garlic bench fails if a run found
// fewer than the depth), and a depth past the model's context is refused.
static void test_bench_depth(void **state)
{
    (void)state;
    char *out, *err;
    int rc = test_run(&out, &err, "%s bench '%s' -d 0,64 -p 16 -n 4 -r 1 -t 1 --json",
                      test_garlic(), synth_model());
    if (rc != 0)
        fail_msg("garlic bench -d: exit %d: %s", rc, err);
    cJSON *root = cJSON_Parse(out);
    assert_non_null(root);
    assert_int_equal(cJSON_GetArraySize(root), 4);
    const char *want[] = {"pp16", "tg4", "pp16 @ d64", "tg4 @ d64"};
    for (int i = 0; i < 4; i++) {
        const cJSON *row = cJSON_GetArrayItem(root, i);
        assert_string_equal(cJSON_GetObjectItem(row, "test")->valuestring, want[i]);
        int depth = i < 2 ? 0 : 64;
        assert_int_equal(cJSON_GetObjectItem(row, "n_depth")->valueint, depth);
        assert_int_equal(cJSON_GetObjectItem(row, "n_cached")->valueint, depth);
        assert_true(cJSON_GetObjectItem(row, "avg_ts")->valuedouble > 0);
    }
    cJSON_Delete(root);
    free(out), free(err);
    rc = test_run(&out, &err, "%s bench '%s' -d 64 -p 16 -n 4 -r 1 -t 1", test_garlic(),
                  synth_model());
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "pp16 @ d64"));
    assert_non_null(strstr(out, "tg4 @ d64"));
    free(out), free(err);
    // The synthesized model's context is 512 positions.
    rc = test_run(&out, &err, "%s bench '%s' -d 512 -p 16 -n 4 -r 1 -t 1", test_garlic(),
                  synth_model());
    assert_int_equal(rc, 1);
    assert_non_null(strstr(err, "-d 512"));
    assert_non_null(strstr(err, "context of 512"));
    free(out), free(err);
    rc = test_run(&out, &err, "%s bench '%s' -d 60 -r 1", test_garlic(), synth_model());
    assert_int_equal(rc, 2);
    assert_non_null(strstr(err, "-d"));
    free(out), free(err);
}

static void test_errors(void **state)
{
    (void)state;
    char *out, *err;
    assert_int_equal(test_run(&out, &err, "%s run", test_garlic()), 2);
    free(out), free(err);
    assert_int_equal(test_run(&out, &err, "%s run '%s' x --temp hot", test_garlic(), synth_model()),
                     2);
    assert_non_null(strstr(err, "--temp"));
    free(out), free(err);
    assert_int_equal(
        test_run(&out, &err, "%s run '%s' x --kv-type f8", test_garlic(), synth_model()), 2);
    free(out), free(err);
    assert_int_equal(
        test_run(&out, &err, "%s run '%s' --prompt-ids '1 99999'", test_garlic(), synth_model()),
        1);
    assert_non_null(strstr(err, "99999"));
    free(out), free(err);
    assert_int_equal(test_run(&out, &err, "%s run /nonexistent.gguf hi", test_garlic()), 1);
    assert_non_null(strstr(err, "/nonexistent.gguf"));
    free(out), free(err);
    assert_int_equal(test_run(&out, &err, "%s run '%s' 'hi' -c 1", test_garlic(), synth_model()),
                     1);
    assert_non_null(strstr(err, "context"));
    free(out), free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stories_golden_text),
        cmocka_unit_test(test_demo_model),
        cmocka_unit_test(test_seeds),
        cmocka_unit_test(test_context_limit_and_stats),
        cmocka_unit_test(test_dump_logits),
        cmocka_unit_test(test_chat_over_pipe),
        cmocka_unit_test(test_bench_json),
        cmocka_unit_test(test_bench_depth),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests_name("run", tests, NULL, NULL);
}
