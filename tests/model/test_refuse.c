// SPDX-License-Identifier: MIT
// What model_load refuses, and that its message names what is at fault: an architecture garlic
// does not run, a tensor no step of the architecture reads (a variant garlic does not
// implement), an expert tensor of the wrong shape or of a type garlic cannot compute with,
// inconsistent expert counts. Each file is a synthesized model copied with one change.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "gguf/gguf.h"
#include "model/model.h"
#include "model/synth.h"
#include "tensor/types.h"
#include "util.h"

// The change made while copying: a key's new value or a tensor added, dropped or retyped.
typedef struct edit {
    const char *set_str_key, *set_str; // a string key's new value
    const char *set_u32_key;           // a u32 key's new value
    uint32_t set_u32;
    const char *add_tensor; // a 1-D F32 tensor of add_len values added
    uint64_t add_len;
    const char *shape_tensor; // this tensor's first dimension replaced (data from the start)
    uint64_t shape_ne0;
    const char *type_tensor; // this tensor declared as type_to (same bytes or fewer)
    uint32_t type_to;
} edit;

static const float zeros[4096];

// Writes src with the edit to dst.
static void copy_with(const char *src, const char *dst, const edit *e)
{
    garlic_error err;
    gguf_file *f = gguf_open(src, &err);
    if (!f)
        fail_msg("%s", err.message);
    gguf_writer *w = gguf_writer_new();
    for (uint64_t i = 0; i < f->n_kv; i++) {
        char key[256];
        snprintf(key, sizeof key, "%.*s", (int)f->kv[i].key.len, f->kv[i].key.data);
        assert_int_equal(gguf_writer_set_value(w, key, &f->kv[i].value), 0);
    }
    if (e->set_str_key)
        assert_int_equal(gguf_writer_set_str(w, e->set_str_key, e->set_str), 0);
    if (e->set_u32_key)
        assert_int_equal(gguf_writer_set_u32(w, e->set_u32_key, e->set_u32), 0);
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const gguf_tensor *t = &f->tensors[i];
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.data);
        uint64_t ne[4] = {t->ne[0], t->ne[1], t->ne[2], t->ne[3]};
        uint32_t type = t->type;
        if (e->shape_tensor && strcmp(name, e->shape_tensor) == 0)
            ne[0] = e->shape_ne0;
        if (e->type_tensor && strcmp(name, e->type_tensor) == 0)
            type = e->type_to;
        assert_int_equal(gguf_writer_add_tensor(w, name, type, t->n_dims, ne, t->data, &err), 0);
    }
    if (e->add_tensor) {
        uint64_t ne[1] = {e->add_len};
        assert_int_equal(
            gguf_writer_add_tensor(w, e->add_tensor, TENSOR_TYPE_F32, 1, ne, zeros, &err), 0);
    }
    if (gguf_writer_write(w, dst, NULL, NULL, &err))
        fail_msg("%s", err.message);
    gguf_writer_free(w);
    gguf_close(f);
}

// A small qwen3moe model (8 experts, top 2) at name.
static const char *moe_model(const char *name)
{
    model_synth_params p;
    model_synth_params_default(&p);
    p.arch = "qwen3moe", p.dim = 64, p.n_head = 4, p.n_head_kv = 2, p.n_layer = 2, p.ffn = 128;
    p.n_expert = 8, p.n_expert_used = 2, p.ffn_exp = 32, p.vocab = 400;
    const char *path = test_temp_path(name);
    garlic_error err;
    if (model_synth_write(&p, path, &err))
        fail_msg("%s", err.message);
    return path;
}

// Loading the edited copy fails with code and a message holding each of the needles.
static void expect_refused(const edit *e, int code, const char *needle1, const char *needle2)
{
    static char src[600];
    snprintf(src, sizeof src, "%s", moe_model("refuse-src.gguf"));
    const char *dst = test_temp_path("refuse.gguf");
    copy_with(src, dst, e);
    garlic_error err = {0};
    model *m = model_load(dst, &err);
    if (m)
        fail_msg("loaded a model that should be refused (%s)", needle1);
    assert_int_equal(err.code, code);
    if (!strstr(err.message, needle1) || (needle2 && !strstr(err.message, needle2)))
        fail_msg("message '%s' does not name '%s' / '%s'", err.message, needle1,
                 needle2 ? needle2 : "");
}

static void test_unchanged_copy_loads(void **state)
{
    (void)state;
    const char *src = moe_model("plain-src.gguf");
    const char *dst = test_temp_path("plain.gguf");
    copy_with(src, dst, &(edit){0});
    garlic_error err;
    model *m = model_load(dst, &err);
    if (!m)
        fail_msg("%s", err.message);
    assert_int_equal(m->hp.n_expert, 8);
    assert_int_equal(m->hp.n_expert_used, 2);
    assert_int_equal(m->hp.ffn_exp, 32);
    model_free(m);
}

static void test_unknown_architecture(void **state)
{
    (void)state;
    edit e = {.set_str_key = "general.architecture", .set_str = "mamba2"};
    expect_refused(&e, GARLIC_EUNSUPPORTED, "'mamba2'", "qwen3moe");
}

// A tensor nothing binds (here T5's relative attention bias in a qwen3moe file): refused by
// name. (Optional tensors an architecture may have, such as biases, are computed with when
// present instead.)
static void test_unused_tensor(void **state)
{
    (void)state;
    edit e = {.add_tensor = "blk.0.attn_rel_b.weight", .add_len = 4};
    expect_refused(&e, GARLIC_EUNSUPPORTED, "blk.0.attn_rel_b.weight", "qwen3moe");
}

static void test_expert_shape(void **state)
{
    (void)state;
    edit e = {.shape_tensor = "blk.1.ffn_down_exps.weight", .shape_ne0 = 16};
    expect_refused(&e, GARLIC_EFORMAT, "blk.1.ffn_down_exps.weight", "expected 32");
}

// A type garlic has no kernel for (IQ2_XXS: 66 bytes per 256 values, fewer than F32's).
static void test_expert_type(void **state)
{
    (void)state;
    edit e = {.type_tensor = "blk.0.ffn_up_exps.weight", .type_to = TENSOR_TYPE_IQ2_XXS};
    // The F32 rows of 64 values are not whole IQ2_XXS blocks: use a 256-wide model instead.
    model_synth_params p;
    model_synth_params_default(&p);
    p.arch = "qwen3moe", p.dim = 256, p.n_head = 4, p.n_head_kv = 2, p.n_layer = 1, p.ffn = 256;
    p.n_expert = 4, p.n_expert_used = 2, p.ffn_exp = 32, p.vocab = 400;
    garlic_error err = {0};
    const char *src = test_temp_path("wide.gguf");
    if (model_synth_write(&p, src, &err))
        fail_msg("%s", err.message);
    char src_copy[600];
    snprintf(src_copy, sizeof src_copy, "%s", src);
    const char *dst = test_temp_path("iq2.gguf");
    copy_with(src_copy, dst, &e);
    assert_null(model_load(dst, &err));
    assert_int_equal(err.code, GARLIC_EUNSUPPORTED);
    assert_non_null(strstr(err.message, "blk.0.ffn_up_exps.weight"));
    assert_non_null(strstr(err.message, "IQ2_XXS"));
}

static void test_expert_counts(void **state)
{
    (void)state;
    edit used = {.set_u32_key = "qwen3moe.expert_used_count", .set_u32 = 9};
    expect_refused(&used, GARLIC_EFORMAT, "experts 8", "used 9");
    edit none = {.set_u32_key = "qwen3moe.expert_count", .set_u32 = 0};
    // Without experts the layers need dense tensors, which the file lacks.
    expect_refused(&none, GARLIC_EFORMAT, "blk.0.ffn_gate.weight", "missing");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unchanged_copy_loads), cmocka_unit_test(test_unknown_architecture),
        cmocka_unit_test(test_unused_tensor),        cmocka_unit_test(test_expert_shape),
        cmocka_unit_test(test_expert_type),          cmocka_unit_test(test_expert_counts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
