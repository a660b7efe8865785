// SPDX-License-Identifier: MIT
// Hugging Face folders as models (src/hf/model.c): folders written by the independent
// generator tools/gen_hf_folder.py (Python and numpy, from models `garlic synth` writes) load
// as the same model as the GGUF they were made from, for every architecture garlic runs: the
// same logits; every quantized encoding decodes to exactly the generator's own decoding; the
// quantized folder's logits follow the decoded one's; `garlic convert` writes a GGUF that loads
// as the folder; hostile folders fail with a message naming the file and the field. Skipped
// with a message when no python3 with numpy is found.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "util.h"

#include "base/alloc.h"
#include "hf/hf.h"
#include "model/model.h"
#include "planner/planner.h"
#include "tensor/types.h"

static const char *python(void)
{
    static const char *found;
    static bool probed;
    if (!probed) {
        probed = true;
        static const char *const candidates[] = {"python3", "/usr/bin/python3"};
        for (size_t i = 0; i < 2 && !found; i++)
            if (test_run(NULL, NULL, "%s -c 'import numpy'", candidates[i]) == 0)
                found = candidates[i];
    }
    return found;
}

#define NEED_PYTHON()                                                                              \
    do {                                                                                           \
        if (!python()) {                                                                           \
            fprintf(stderr, "skipped: no python3 with numpy (tools/setup.sh installs it)\n");      \
            skip();                                                                                \
        }                                                                                          \
    } while (0)

static void sh(const char *what, const char *fmt, const char *a, const char *b, const char *c)
{
    char *out = NULL, *err = NULL;
    char cmd[4096];
    snprintf(cmd, sizeof cmd, fmt, a, b, c);
    if (test_run(&out, &err, "%s", cmd) != 0)
        fail_msg("%s failed: %s\n%s%s", what, cmd, out, err);
    free(out);
    free(err);
}

// A GGUF from garlic synth with the given options, at a temporary path.
static const char *synth(const char *name, const char *args)
{
    static char path[8][600];
    static int turn;
    char *p = path[turn++ % 8];
    snprintf(p, 600, "%s", test_temp_path(name));
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s synth %s %s", test_garlic(), p, args);
    sh("synth", "%s%s%s", cmd, "", "");
    return p;
}

// A folder made by the generator from gguf: encoding and extra options.
static const char *folder(const char *gguf, const char *name, const char *options)
{
    static char path[8][600];
    static int turn;
    char *p = path[turn++ % 8];
    snprintf(p, 600, "%s", test_temp_path(name));
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "rm -rf %s && %s tools/gen_hf_folder.py %s %s %s", p, python(), gguf,
             p, options);
    sh("gen_hf_folder", "%s%s%s", cmd, "", "");
    return p;
}

enum { N_TOK = 8, N_CTX = 32 };

// The logits of N_TOK tokens (every row), n_vocab floats each, malloc'd.
static float *logits_of(const char *path, const model_load_options *o, uint32_t *n_vocab)
{
    garlic_error err = {0};
    model *m = model_load_with(path, o, &err);
    if (!m)
        fail_msg("%s: %s", path, err.message);
    model_prefault(m, NULL, NULL);
    model_state_config cfg = {
        .n_ctx = N_CTX, .max_batch = N_TOK, .logit_rows = N_TOK, .n_threads = 2};
    model_state *s = model_state_new(m, &cfg, &err);
    kv_cache *kv = s ? model_kv_new_single(m, KV_TYPE_F32, N_CTX, &err) : NULL;
    if (!kv)
        fail_msg("%s: %s", path, err.message);
    kv_seq seq;
    kv_seq_init(&seq);
    if (kv_seq_reserve(kv, &seq, N_CTX, &err))
        fail_msg("%s", err.message);
    int32_t tokens[N_TOK];
    for (int i = 0; i < N_TOK; i++)
        tokens[i] = (int32_t)((i * 37 + 5) % m->hp.n_vocab);
    const float *l;
    if (model_forward(s, kv, &seq, tokens, N_TOK, 0, true, &l, &err))
        fail_msg("%s: %s", path, err.message);
    *n_vocab = m->hp.n_vocab;
    float *copy = malloc((size_t)N_TOK * m->hp.n_vocab * sizeof *copy);
    memcpy(copy, l, (size_t)N_TOK * m->hp.n_vocab * sizeof *copy);
    kv_seq_deinit(kv, &seq);
    kv_cache_free(kv);
    model_state_free(s);
    model_free(m);
    return copy;
}

// The largest difference between two models' logits, relative to the largest logit.
static double logit_diff(const char *a, const model_load_options *oa, const char *b,
                         const model_load_options *ob)
{
    uint32_t na, nb;
    float *la = logits_of(a, oa, &na), *lb = logits_of(b, ob, &nb);
    assert_int_equal(na, nb);
    double worst = 0, scale = 0;
    for (size_t i = 0; i < (size_t)N_TOK * na; i++) {
        worst = fmax(worst, fabs((double)la[i] - lb[i]));
        scale = fmax(scale, fabs((double)la[i]));
    }
    free(la);
    free(lb);
    return worst / (scale > 0 ? scale : 1);
}

// Every architecture garlic runs, as synth makes it (small shapes).
static const struct {
    const char *name, *args;
} archs[] = {
    {"llama", "--arch llama"},
    {"llama-tied", "--arch llama --tied --rope-linear 2"},
    {"mixtral", "--arch llama --experts 4 --experts-used 2"},
    {"qwen2", "--arch qwen2"},
    {"qwen3", "--arch qwen3"},
    {"qwen3moe", "--arch qwen3moe --experts 4 --experts-used 2 --expert-ffn 128"},
    {"qwen2moe", "--arch qwen2moe --experts 4 --experts-used 2 --expert-ffn 128 --shared-ffn 256"},
    {"gemma3", "--arch gemma3 --layers 6 --sliding-window 4 --final-softcap 30 --rope-linear 8"},
    {"phi3", "--arch phi3 --longrope --ctx 512 --rope-orig-ctx 256 --sliding-window 64"},
    {"gpt-oss", "--arch gpt-oss --experts 4 --experts-used 2"},
    {"deepseek2",
     "--arch deepseek2 --experts 4 --experts-used 2 --kv-lora-rank 64 --rope-dims 16 "
     "--q-lora-rank 96 --dense-layers 1 --shared-experts 1 --router sigmoid --expert-bias "
     "--expert-groups 2 --groups-used 1 --expert-norm --expert-scale 2.5 --rope-yarn 4 "
     "--yarn-log-mul 0.1"},
};
enum { N_ARCHS = sizeof archs / sizeof archs[0] };

// F32 folders (some sharded with an index) compute exactly what their GGUF does: the tensor
// names, the Q/K permutation of Llama, the stacked experts, the split latent tensors, Gemma's
// norms and every hyper-parameter from config.json.
static void test_arch_f32(void **state)
{
    (void)state;
    NEED_PYTHON();
    for (size_t i = 0; i < N_ARCHS; i++) {
        char name[64];
        snprintf(name, sizeof name, "%s.gguf", archs[i].name);
        const char *g = synth(name, archs[i].args);
        snprintf(name, sizeof name, "%s.hf", archs[i].name);
        // every third sharded; Mistral and Gemma 3's multimodal layout as variants
        const char *opts = i % 3 == 1              ? "--encoding f32 --shards 3"
            : strcmp(archs[i].name, "llama") == 0  ? "--encoding f32 --variant mistral"
            : strcmp(archs[i].name, "gemma3") == 0 ? "--encoding f32 --variant conditional"
                                                   : "--encoding f32";
        const char *f = folder(g, name, opts);
        double d = logit_diff(g, NULL, f, NULL);
        if (d > 1e-6)
            fail_msg("%s: folder and GGUF logits differ by %g", archs[i].name, d);
    }
}

// BF16 folders are mapped as they are: their matrices stay BF16 and point into the shards
// (only Llama's permuted Q/K rows are copies), and they compute what a BF16 GGUF of the same
// matrices does (the folder's norms are BF16 where synth's are F32: rounding only).
static void check_bf16(const char *g, const char *f)
{
    garlic_error err = {0};
    gguf_file *file = hf_open(f, NULL, &err);
    if (!file)
        fail_msg("%s: %s", f, err.message);
    const gguf_tensor *down = gguf_find_tensor(file, "blk.0.ffn_down.weight");
    assert_non_null(down);
    assert_int_equal(down->type, TENSOR_TYPE_BF16);
    gguf_close(file);
    double d = logit_diff(g, NULL, f, NULL);
    if (d > 1e-2)
        fail_msg("%s: BF16 folder and GGUF logits differ by %g", f, d);
}

static void test_bf16(void **state)
{
    (void)state;
    NEED_PYTHON();
    const char *g = synth("bf16.gguf", "--arch qwen3 --type BF16");
    check_bf16(g, folder(g, "bf16.hf", "--encoding bf16"));
    g = synth("bf16l.gguf", "--arch llama --type BF16");
    check_bf16(g, folder(g, "bf16l.hf", "--encoding bf16 --shards 2"));
}

// Every tensor of a, dequantized, equals the same tensor of b (F32) exactly.
static void assert_same_values(const char *a, const char *b)
{
    garlic_error err = {0};
    gguf_file *fa = hf_open(a, NULL, &err);
    if (!fa)
        fail_msg("%s: %s", a, err.message);
    gguf_file *fb = hf_open(b, NULL, &err);
    if (!fb)
        fail_msg("%s: %s", b, err.message);
    size_t quantized = 0, perms = 0;
    for (uint64_t i = 0; i < fa->n_tensors; i++) {
        const gguf_tensor *ta = &fa->tensors[i];
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)ta->name.len, ta->name.data);
        if (strstr(name, ".perm")) { // act-order: the column order of a matrix
            perms++;
            continue;
        }
        // act-order matrices hold their columns in group order: compare column j with
        // input column perm[j]
        char pname[160];
        snprintf(pname, sizeof pname, "%s.perm", name);
        const gguf_tensor *tp = gguf_find_tensor(fa, pname);
        const int32_t *perm = tp ? tp->data : NULL;
        const gguf_tensor *tb = gguf_find_tensor(fb, name);
        assert_non_null(tb);
        assert_int_equal(ta->n_elements, tb->n_elements);
        assert_int_equal(tb->type, TENSOR_TYPE_F32);
        quantized += ta->type == TENSOR_TYPE_F8_E4M3 || ta->type == TENSOR_TYPE_Q4_Z ||
            ta->type == TENSOR_TYPE_MXFP4;
        float *va = malloc(ta->n_elements * sizeof *va);
        tensor_type_get(ta->type)->dequantize(ta->data, va, (int64_t)ta->n_elements);
        const float *vb = tb->data;
        uint64_t cols = ta->ne[0];
        for (uint64_t k = 0; k < ta->n_elements; k++) {
            uint64_t kb = perm ? k / cols * cols + (uint64_t)perm[k % cols] : k;
            if (memcmp(&va[k], &vb[kb], sizeof va[k]) != 0 && !(va[k] == 0 && vb[kb] == 0))
                fail_msg("%s: tensor %s value %llu: %.9g, decoded by the generator %.9g", a, name,
                         (unsigned long long)k, va[k], vb[kb]);
        }
        free(va);
    }
    assert_true(quantized > 0);
    assert_int_equal(fa->n_tensors - perms, fb->n_tensors);
    if (strstr(a, "actorder"))
        assert_true(perms > 0);
    gguf_close(fa);
    gguf_close(fb);
}

// Quantized encodings: the values garlic keeps are exactly the generator's decoding, and the
// logits follow the decoded folder's (F8_E4M3 runs against F32 activations: rounding only;
// Q4_Z and MXFP4 against Q8_0 activations, as Q4_0 does).
static void test_encodings(void **state)
{
    (void)state;
    NEED_PYTHON();
    static const struct {
        const char *arch, *enc;
        double tol;
    } cases[] = {
        {"--arch qwen3", "fp8-block", 1e-5},
        {"--arch llama", "fp8-channel", 1e-5},
        {"--arch qwen2", "fp8-tensor", 1e-5},
        {"--arch deepseek2 --experts 4 --experts-used 2 --kv-lora-rank 64 --rope-dims 16 "
         "--q-lora-rank 96 --shared-experts 1",
         "fp8-block", 1e-5},
        {"--arch qwen2", "awq", 3e-2},
        {"--arch llama", "awq", 3e-2},
        {"--arch qwen3", "gptq", 3e-2},
        {"--arch llama", "gptq --asym", 3e-2},
        {"--arch qwen3", "gptq-actorder", 3e-2},
        {"--arch phi3", "gptq-actorder --asym", 3e-2},
        {"--arch qwen3moe --experts 4 --experts-used 2 --expert-ffn 128", "gptq", 3e-2},
        {"--arch gpt-oss --experts 4 --experts-used 2", "mxfp4", 3e-2},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char name[64], opts[768];
        snprintf(name, sizeof name, "enc%zu.gguf", i);
        const char *g = synth(name, cases[i].arch);
        snprintf(name, sizeof name, "enc%zu.dec", i);
        char decoded[600];
        snprintf(decoded, sizeof decoded, "%s", test_temp_path(name));
        // the rest F32, so that only the quantized matrices' products differ (a BF16 output
        // matrix would round its activations to BF16)
        snprintf(opts, sizeof opts, "--encoding %s --dense-dtype F32 --decoded %s", cases[i].enc,
                 decoded);
        snprintf(name, sizeof name, "enc%zu%s.hf", i,
                 strstr(cases[i].enc, "actorder") ? "-actorder" : "");
        const char *f = folder(g, name, opts);
        assert_same_values(f, decoded);
        // planned from shapes alone (meta_only): the same weights table a load gives
        planner_input planned, loaded;
        garlic_error e = {0};
        if (planner_from_model_path(f, NULL, &planned, &e))
            fail_msg("%s: %s", f, e.message);
        model *m = model_load(f, &e);
        assert_non_null(m);
        assert_int_equal(planner_from_model(m, f, &loaded, &e), 0);
        assert_int_equal(planned.weights.tensor_bytes, loaded.weights.tensor_bytes);
        assert_int_equal(planned.weights.n_params, loaded.weights.n_params);
        model_free(m);
        double d = logit_diff(decoded, NULL, f, NULL);
        if (d > cases[i].tol)
            fail_msg("%s %s: logits differ from the decoded folder's by %g (tolerance %g)",
                     cases[i].arch, cases[i].enc, d, cases[i].tol);
    }
}

// --quantize at load gives what the same quantizer gives a GGUF of the same weights.
static void test_quantize_at_load(void **state)
{
    (void)state;
    NEED_PYTHON();
    const char *g = synth("ql.gguf", "--arch qwen3");
    const char *f = folder(g, "ql.hf", "--encoding f32");
    const char *q = test_temp_path("ql-q8.gguf");
    sh("quantize", "%s quantize %s %s Q8_0", test_garlic(), g, q);
    model_load_options o = {.quantize = "Q8_0"};
    assert_true(logit_diff(q, NULL, f, &o) == 0);
    // Q4_K_M: every tensor has the type and the bytes garlic quantize gives the same weights
    // in a GGUF (the same mixture's choices: Q6_K output and more-bits layers, F32 norms)
    const char *q4 = test_temp_path("ql-q4km.gguf");
    sh("quantize", "%s quantize %s %s Q4_K_M", test_garlic(), g, q4);
    o.quantize = "Q4_K_M";
    garlic_error err = {0};
    model *m = model_load_with(f, &o, &err);
    gguf_file *ref = gguf_open(q4, &err);
    assert_non_null(m);
    assert_non_null(ref);
    assert_int_equal(m->file->n_tensors, ref->n_tensors);
    uint32_t seen[TENSOR_TYPE_COUNT] = {0};
    for (uint64_t i = 0; i < m->file->n_tensors; i++) {
        const gguf_tensor *t = &m->file->tensors[i];
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.data);
        const gguf_tensor *r = gguf_find_tensor(ref, name);
        assert_non_null(r);
        if (t->type != r->type)
            fail_msg("%s: %s at load, %s in garlic quantize's file", name,
                     tensor_type_get(t->type)->name, tensor_type_get(r->type)->name);
        assert_int_equal(t->nbytes, r->nbytes);
        assert_memory_equal(t->data, r->data, t->nbytes);
        seen[t->type]++;
    }
    assert_true(seen[TENSOR_TYPE_Q4_K] > 0 && seen[TENSOR_TYPE_Q6_K] > 0 && seen[TENSOR_TYPE_F32]);
    model_free(m);
    gguf_close(ref);
    // a GGUF is not requantized at load; an unknown type is named
    assert_null(model_load_with(g, &o, &err));
    assert_non_null(strstr(err.message, "garlic quantize"));
    o.quantize = "Q9_X";
    assert_null(model_load_with(f, &o, &err));
    assert_non_null(strstr(err.message, "Q9_X"));
}

// garlic convert writes a GGUF that loads as the folder (and as the original GGUF).
static void test_convert(void **state)
{
    (void)state;
    NEED_PYTHON();
    static const char *const which[] = {"llama", "qwen3moe", "gemma3", "deepseek2", "gpt-oss"};
    for (size_t i = 0; i < sizeof which / sizeof which[0]; i++) {
        size_t a = 0;
        while (strcmp(archs[a].name, which[i]) != 0)
            a++;
        char name[64];
        snprintf(name, sizeof name, "cv-%s.gguf", which[i]);
        const char *g = synth(name, archs[a].args);
        snprintf(name, sizeof name, "cv-%s.hf", which[i]);
        const char *f = folder(g, name, "--encoding f32");
        snprintf(name, sizeof name, "cv-%s.out.gguf", which[i]);
        const char *out = test_temp_path(name);
        sh("convert", "%s convert %s %s", test_garlic(), f, out);
        double d = logit_diff(g, NULL, out, NULL);
        if (d > 1e-6)
            fail_msg("%s: converted file differs from the original by %g", which[i], d);
    }
}

// Broken folders (every kind tools/hf_folder/hostile.py writes) fail to load with a message
// naming the file and the field (tensor, key or entry) the generator says is broken.
static void test_hostile(void **state)
{
    (void)state;
    NEED_PYTHON();
    const char *g = synth("hostile.gguf", "--arch qwen3");
    char *kinds = NULL, *err = NULL;
    if (test_run(&kinds, &err,
                 "%s -c \"import sys; sys.path.insert(0, 'tools'); from hf_folder import hostile; "
                 "print(' '.join(sorted(hostile.KINDS)))\"",
                 python()) != 0)
        fail_msg("hostile kinds: %s", err);
    free(err);
    int n = 0;
    for (char *kind = strtok(kinds, " \n"); kind; kind = strtok(NULL, " \n"), n++) {
        char name[96], cmd[2048];
        snprintf(name, sizeof name, "hostile-%s", kind);
        const char *f = test_temp_path(name);
        snprintf(cmd, sizeof cmd, "rm -rf %s && %s tools/gen_hf_folder.py %s %s --hostile %s", f,
                 python(), g, f, kind);
        char *out = NULL;
        if (test_run(&out, &err, "%s", cmd) != 0)
            fail_msg("%s: %s", cmd, err);
        free(err);
        cJSON *want = cJSON_Parse(out);
        const char *file = cJSON_GetStringValue(cJSON_GetObjectItem(want, "file"));
        const char *field = cJSON_GetStringValue(cJSON_GetObjectItem(want, "field"));
        if (!file || !field)
            fail_msg("--hostile %s printed %s", kind, out);
        garlic_error e = {0};
        model *m = model_load(f, &e);
        if (m)
            fail_msg("hostile folder '%s' loaded", kind);
        if (!strstr(e.message, file) || !strstr(e.message, field))
            fail_msg("hostile folder '%s': the message should name %s and %s: %s", kind, file,
                     field, e.message);
        cJSON_Delete(want);
        free(out);
    }
    assert_true(n >= 10);
    free(kinds);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_arch_f32),  cmocka_unit_test(test_bf16),
        cmocka_unit_test(test_encodings), cmocka_unit_test(test_quantize_at_load),
        cmocka_unit_test(test_convert),   cmocka_unit_test(test_hostile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
