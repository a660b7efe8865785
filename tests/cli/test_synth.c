// SPDX-License-Identifier: MIT
// `garlic synth` through the binary: its options write the same bytes as the synthesizer
// called with the same parameters, --progress reports the percentage written on stderr
// (which stays quiet otherwise when it is not a terminal), every weight type it names
// (MXFP4 included) writes a model that `garlic run` loads and runs, the RoPE options'
// two spellings write the same file, and garlic's own in-memory types are refused.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf.h"
#include "model/synth.h"
#include "tensor/types.h"
#include "util.h"

static void test_same_bytes_and_progress(void **state)
{
    (void)state;
    char cli_path[600], lib_path[600], *out, *err;
    snprintf(cli_path, sizeof cli_path, "%s", test_temp_path("cli.gguf"));
    snprintf(lib_path, sizeof lib_path, "%s", test_temp_path("lib.gguf"));
    assert_int_equal(test_run(&out, &err,
                              "%s synth '%s' --arch qwen2 --dim 64 --heads 2 "
                              "--kv-heads 1 --ffn 96 --vocab 400 --seed 9 --type Q8_0 "
                              "--output-type=F16 --name tiny --rope-theta 5e5",
                              test_garlic(), cli_path),
                     0);
    assert_string_equal(err, ""); // no progress when stderr is not a terminal
    free(out), free(err);
    model_synth_params p;
    model_synth_params_default(&p);
    p.arch = "qwen2", p.dim = 64, p.n_head = 2, p.n_head_kv = 1, p.ffn = 96, p.vocab = 400;
    p.seed = 9, p.type = TENSOR_TYPE_Q8_0, p.output_type = TENSOR_TYPE_F16, p.name = "tiny";
    p.rope_theta = 5e5f;
    garlic_error e;
    if (model_synth_write(&p, lib_path, &e))
        fail_msg("%s", e.message);
    size_t a_len, b_len;
    char *a = test_read_file(cli_path, &a_len), *b = test_read_file(lib_path, &b_len);
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(a_len, b_len);
    assert_memory_equal(a, b, a_len);
    free(a), free(b);

    // --progress: lines of percentages up to 100 (every 10 % when not on a terminal).
    assert_int_equal(test_run(&out, &err, "%s synth '%s' --progress", test_garlic(), cli_path), 0);
    char want[700];
    snprintf(want, sizeof want, "garlic synth: writing %s 100%%\n", cli_path);
    if (!strstr(err, want))
        fail_msg("no '%s' in:\n%s", want, err);
    size_t lines = 0;
    for (const char *c = err; *c; c++)
        lines += *c == '\n';
    assert_true(lines >= 2 && lines <= 11);
    free(out), free(err);
}

// --type takes each type name the help lists, in either case: the matrices of the file
// have that type (rows of 64 and 96 values: whole blocks of 32, so no fallback for the
// legacy types, MXFP4 and IQ4_NL), and `garlic run` loads the model and decodes a few tokens.
static void test_types_run(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        uint32_t type;
    } cases[] = {
        {"MXFP4", TENSOR_TYPE_MXFP4},   {"mxfp4", TENSOR_TYPE_MXFP4}, {"Q4_0", TENSOR_TYPE_Q4_0},
        {"IQ4_NL", TENSOR_TYPE_IQ4_NL}, {"Q8_0", TENSOR_TYPE_Q8_0},
    };
    char path[600], *out, *err;
    snprintf(path, sizeof path, "%s", test_temp_path("typed.gguf"));
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = test_run(&out, &err,
                          "%s synth '%s' --dim 64 --heads 2 --kv-heads 1 --ffn 96 --vocab 400 "
                          "--type %s",
                          test_garlic(), path, cases[i].name);
        if (rc != 0)
            fail_msg("garlic synth --type %s: exit %d: %s", cases[i].name, rc, err);
        free(out), free(err);
        garlic_error e;
        gguf_file *f = gguf_open(path, &e);
        if (!f)
            fail_msg("%s", e.message);
        const char *names[] = {"blk.0.attn_q.weight", "blk.1.ffn_down.weight", "output.weight"};
        for (int n = 0; n < 3; n++) {
            const gguf_tensor *t = gguf_find_tensor(f, names[n]);
            assert_non_null(t);
            if (t->type != cases[i].type)
                fail_msg("--type %s: %s has type %u, want %u", cases[i].name, names[n], t->type,
                         cases[i].type);
        }
        gguf_close(f);
        rc = test_run(&out, &err, "%s run '%s' 'hello' -n 4 --temp 0", test_garlic(), path);
        if (rc != 0)
            fail_msg("garlic run on a synth --type %s model: exit %d: %s", cases[i].name, rc, err);
        free(out), free(err);
    }
}

// Writes `garlic synth PATH ARGS` to test_temp_path(name) and returns its bytes (size in *len).
static char *synth_bytes(const char *name, const char *args, size_t *len)
{
    char path[600], *out, *err;
    snprintf(path, sizeof path, "%s", test_temp_path(name));
    int rc = test_run(&out, &err, "%s synth '%s' %s", test_garlic(), path, args);
    if (rc != 0)
        fail_msg("garlic synth %s: exit %d: %s", args, rc, err);
    free(out), free(err);
    char *bytes = test_read_file(path, len);
    assert_non_null(bytes);
    return bytes;
}

// The RoPE options both spellings of which the reference rows use: --rope-linear X and
// --rope-yarn X write what --rope-scaling linear|yarn --rope-factor X does, --rope-dim what
// --rope-dims does, and --rope-linear with --rope-scaling is a usage error.
static void test_rope_spellings(void **state)
{
    (void)state;
    static const char *const pairs[][2] = {
        {"--arch gemma3 --layers 7 --heads 4 --head-dim 64 --sliding-window 8 --rope-linear 8",
         "--arch gemma3 --layers 7 --heads 4 --head-dim 64 --sliding-window 8 --rope-scaling "
         "linear --rope-factor 8"},
        {"--rope-yarn 4 --rope-orig-ctx 128",
         "--rope-scaling yarn --rope-factor 4 --rope-orig-ctx 128"},
        {"--arch phi3 --ctx 4096 --rope-orig-ctx 256 --longrope --rope-dims 24",
         "--arch phi3 --ctx 4096 --rope-orig-ctx 256 --longrope --rope-dim 24"},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        size_t a_len, b_len;
        char *a = synth_bytes("spelling-a.gguf", pairs[i][0], &a_len);
        char *b = synth_bytes("spelling-b.gguf", pairs[i][1], &b_len);
        if (a_len != b_len || memcmp(a, b, a_len) != 0)
            fail_msg("'%s' and '%s' wrote different files", pairs[i][0], pairs[i][1]);
        free(a), free(b);
    }
    char path[600], *out, *err;
    snprintf(path, sizeof path, "%s", test_temp_path("both.gguf"));
    int rc = test_run(&out, &err,
                      "%s synth '%s' --rope-linear 8 --rope-scaling yarn --rope-factor 4",
                      test_garlic(), path);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(err, "--rope-linear"));
    free(out), free(err);
}

// garlic's own in-memory types (F8_E4M3, Q4_Z) cannot be written to a GGUF file: --type
// and --output-type refuse them by name (a usage error, nothing written), and so does the
// synthesizer when called with one.
static void test_own_types_refused(void **state)
{
    (void)state;
    static const char *const args[] = {"--type F8_E4M3", "--type q4_z", "--output-type Q4_Z"};
    char path[600], *out, *err;
    snprintf(path, sizeof path, "%s", test_temp_path("own.gguf"));
    for (size_t i = 0; i < sizeof args / sizeof args[0]; i++) {
        remove(path);
        int rc = test_run(&out, &err, "%s synth '%s' %s", test_garlic(), path, args[i]);
        if (rc != 2 || !strstr(err, "not a GGUF type"))
            fail_msg("garlic synth %s: exit %d: %s", args[i], rc, err);
        assert_null(test_read_file(path, NULL));
        free(out), free(err);
    }
    const uint32_t own[2] = {TENSOR_TYPE_F8_E4M3, TENSOR_TYPE_Q4_Z};
    for (int i = 0; i < 2; i++) {
        model_synth_params p;
        model_synth_params_default(&p);
        p.type = own[i];
        garlic_error e = {0};
        assert_int_equal(model_synth_write(&p, path, &e), GARLIC_EUNSUPPORTED);
        if (!strstr(e.message, tensor_type_get(own[i])->name))
            fail_msg("synth with %s: '%s'", tensor_type_get(own[i])->name, e.message);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_bytes_and_progress),
        cmocka_unit_test(test_types_run),
        cmocka_unit_test(test_rope_spellings),
        cmocka_unit_test(test_own_types_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
