// SPDX-License-Identifier: MIT
// `garlic create` through the binary: a Modelfile beside a synthesized GGUF makes a model that
// `garlic list` shows and `garlic run` generates from, `garlic show --modelfile` prints a
// Modelfile that makes the same model again, the repository's models/Modelfile installs the
// demo model, and errors name the Modelfile, the line and the instruction.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/synth.h"
#include "store/store.h"
#include "tensor/types.h"
#include "util.h"

static char dir[600], store[700];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "%s", test_temp_path("create"));
    snprintf(store, sizeof store, "%s/store", dir);
    garlic_error err;
    if (store_mkdirs(dir, &err))
        return print_message("%s\n", err.message), -1;
    model_synth_params p;
    model_synth_params_default(&p);
    p.type = TENSOR_TYPE_Q8_0;
    char path[700];
    snprintf(path, sizeof path, "%s/tiny.gguf", dir);
    if (model_synth_write(&p, path, &err))
        return print_message("%s\n", err.message), -1;
    return 0;
}

// Runs `garlic ARGS` on the test's store; returns the exit status.
static int garlic(char **out, char **err, const char *args)
{
    return test_run(out, err, "GARLIC_MODELS='%s' %s %s", store, test_garlic(), args);
}

static void write_modelfile(const char *name, const char *text)
{
    char path[700];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    assert_int_equal(test_write_file(path, text, strlen(text)), 0);
}

static void test_create_list_run(void **state)
{
    (void)state;
    write_modelfile("Modelfile",
                    "FROM ./tiny.gguf\nPARAMETER temperature 0\n"
                    "PARAMETER num_predict 3\nSYSTEM \"\"\"Be\nbrief.\"\"\"\n");
    char *out, *err, args[900];
    // The default Modelfile is ./Modelfile.
    char *binary = realpath(test_garlic(), NULL);
    assert_non_null(binary);
    int rc = test_run(&out, &err, "cd '%s' && GARLIC_MODELS='%s' '%s' create tiny:v1", dir, store,
                      binary);
    free(binary);
    if (rc != 0)
        fail_msg("create: exit %d: %s", rc, err);
    assert_string_equal(out, "success: tiny:v1\n");
    assert_non_null(strstr(err, "copying"));
    free(out), free(err);
    assert_int_equal(garlic(&out, &err, "list"), 0);
    assert_non_null(strstr(out, "tiny:v1"));
    assert_non_null(strstr(out, "Q8_0"));
    free(out), free(err);
    assert_int_equal(garlic(&out, &err, "run tiny:v1 hello -n 2"), 0);
    free(out), free(err);
    // show --modelfile round-trips: its output makes a model with the same files.
    assert_int_equal(garlic(&out, &err, "show tiny:v1 --modelfile"), 0);
    assert_non_null(strstr(out, "\nFROM /"));
    assert_non_null(strstr(out, "SYSTEM \"\"\"Be\nbrief.\"\"\"\n"));
    assert_non_null(strstr(out, "PARAMETER temperature 0\n"));
    assert_non_null(strstr(out, "PARAMETER num_predict 3\n"));
    write_modelfile("Modelfile.again", out);
    free(out), free(err);
    snprintf(args, sizeof args, "create again -q -f '%s/Modelfile.again'", dir);
    assert_int_equal(garlic(&out, &err, args), 0);
    assert_string_equal(err, "");
    free(out), free(err);
    char *a, *b;
    assert_int_equal(garlic(&a, NULL, "show tiny:v1 --modelfile | grep -v '^#'"), 0);
    assert_int_equal(garlic(&b, NULL, "show again --modelfile | grep -v '^#'"), 0);
    assert_string_equal(a, b);
    free(a), free(b);
}

static void test_demo_modelfile(void **state)
{
    (void)state;
    char *out, *err;
    int rc = garlic(&out, &err, "create stories260K -q -f models/Modelfile");
    if (rc != 0)
        fail_msg("exit %d: %s", rc, err);
    free(out), free(err);
    assert_int_equal(garlic(&out, &err, "list"), 0);
    assert_non_null(strstr(out, "stories260K:latest"));
    assert_non_null(strstr(out, "F32"));
    free(out), free(err);
    assert_int_equal(garlic(&out, &err, "run stories260K 'Once upon a time' -n 8 --temp 0"), 0);
    assert_true(strlen(out) > 0);
    free(out), free(err);
}

static void test_errors(void **state)
{
    (void)state;
    static const struct {
        const char *text, *message;
    } cases[] = {
        {"FROM ./tiny.gguf\n\nADAPTER ./lora.gguf\n", "line 3: ADAPTER is not supported by garlic"},
        {"FROM ./tiny.gguf\nPARAMETER temprature 1\n",
         "line 2: PARAMETER 'temprature' is not an option garlic honours"},
        {"PARAMETER top_k 1\n", "no FROM line"},
        {"FROM ./absent.gguf\n", "absent.gguf"},
        {"FROM ./Modelfile.bad\n", "Modelfile.bad"}, // a text file is not a GGUF
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_modelfile("Modelfile.bad", cases[i].text);
        char *out, *err, args[900], path[700];
        snprintf(path, sizeof path, "%s/Modelfile.bad", dir);
        snprintf(args, sizeof args, "create bad -f '%s'", path);
        assert_int_equal(garlic(&out, &err, args), 1);
        if (!strstr(err, path) || !strstr(err, cases[i].message))
            fail_msg("case %zu: '%s' does not name %s and say '%s'", i, err, path,
                     cases[i].message);
        free(out), free(err);
    }
    char *out, *err;
    assert_int_equal(garlic(&out, &err, "create bad -f /nonexistent/Modelfile"), 1);
    assert_non_null(strstr(err, "/nonexistent/Modelfile"));
    free(out), free(err);
    assert_int_equal(garlic(&out, &err, "list"), 0);
    assert_null(strstr(out, "bad"));
    free(out), free(err);
    assert_int_equal(garlic(&out, &err, "create"), 2); // a usage error
    assert_non_null(strstr(err, "NAME is missing"));
    free(out), free(err);
    assert_int_equal(garlic(&out, &err, "create --help"), 0);
    assert_non_null(strstr(out, "Modelfile"));
    free(out), free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_list_run),
        cmocka_unit_test(test_demo_modelfile),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
