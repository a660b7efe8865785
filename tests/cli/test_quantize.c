// SPDX-License-Identifier: MIT
// `garlic quantize` through the binary, on an 8-layer model `garlic synth` writes in F32 (and
// BF16): to Q8_0, Q4_K_M and Q4_0 every tensor has the type the mixture's rules give it (written
// out here by hand), the metadata is copied with general.file_type set, the decoded values are
// within each type's tolerance of the original, and the file loads and runs with logits close
// to the F32 model's. Requantizing a Q4_0 file is refused without --allow-requantize (before
// anything is written) and works with it; bad types, a missing input, an unwritable output,
// the input as output and a NaN part-way each give a clear message and leave no file behind.
// With LLAMA_QUANTIZE set to llama.cpp's llama-quantize, every tensor's type is compared with
// its choice on three model shapes.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf/gguf.h"
#include "kvcache/kvcache.h"
#include "model/model.h"
#include "tensor/types.h"
#include "util.h"

enum { N_LAYER = 8, N_VOCAB = 512 };

// The F32 and BF16 models every test starts from (written once by the group setup).
static char f32_path[600], bf16_path[600];

static void synth(const char *path, const char *args)
{
    char *out, *err;
    int rc = test_run(&out, &err, "%s synth '%s' %s", test_garlic(), path, args);
    if (rc != 0)
        fail_msg("garlic synth %s: exit %d: %s", args, rc, err);
    free(out), free(err);
}

static int setup(void **state)
{
    (void)state;
    const char *shape = "--layers 8 --dim 256 --heads 8 --kv-heads 2 --ffn 768 --vocab 512 "
                        "--seed 3";
    snprintf(f32_path, sizeof f32_path, "%s", test_temp_path("src-f32.gguf"));
    snprintf(bf16_path, sizeof bf16_path, "%s", test_temp_path("src-bf16.gguf"));
    char args[200];
    synth(f32_path, shape);
    snprintf(args, sizeof args, "%s --type BF16", shape);
    synth(bf16_path, args);
    return 0;
}

// Runs `garlic quantize ARGS`; returns the exit status, stdout in *out and stderr in *err
// (freed by the caller; NULL: not wanted).
static int quantize(char **out, char **err, const char *args)
{
    char *o, *e;
    int rc = test_run(&o, &e, "%s quantize %s", test_garlic(), args);
    if (out)
        *out = o;
    else
        free(o);
    if (err)
        *err = e;
    else
        free(e);
    return rc;
}

static void quantize_ok(const char *in, const char *out_path, const char *type, const char *extra)
{
    char args[2000], *err;
    snprintf(args, sizeof args, "'%s' '%s' %s %s", in, out_path, type, extra ? extra : "");
    int rc = quantize(NULL, &err, args);
    if (rc != 0)
        fail_msg("garlic quantize %s: exit %d: %s", args, rc, err);
    free(err);
}

static gguf_file *open_gguf(const char *path)
{
    garlic_error e;
    gguf_file *f = gguf_open(path, &e);
    if (!f)
        fail_msg("%s", e.message);
    return f;
}

static char *tensor_name(const gguf_tensor *t, char *buf, size_t size)
{
    snprintf(buf, size, "%.*s", (int)t->name.len, t->name.data);
    return buf;
}

// The layer of a "blk.N." name, or -1.
static int layer_of(const char *name)
{
    int layer;
    return sscanf(name, "blk.%d.", &layer) == 1 ? layer : -1;
}

// The type each mixture gives a tensor of the 8-layer model, written out from llama-quantize's
// rules: 1-D tensors stay F32; Q8_0 is Q8_0 throughout; Q4_0 gives output.weight Q6_K; Q4_K_M
// gives output.weight Q6_K and attn_v and ffn_down Q6_K in layers 0 and 7 (the first and last
// eighth) and 3 and 6 (every third from layer 1), Q4_K elsewhere, token_embd included.
static uint32_t expected_type(const char *mix, const char *name, uint32_t n_dims)
{
    if (n_dims == 1)
        return TENSOR_TYPE_F32;
    if (!strcmp(mix, "Q8_0"))
        return TENSOR_TYPE_Q8_0;
    bool output = !strcmp(name, "output.weight");
    if (!strcmp(mix, "Q4_0"))
        return output ? TENSOR_TYPE_Q6_K : TENSOR_TYPE_Q4_0;
    int l = layer_of(name);
    bool v_or_down = strstr(name, "attn_v.weight") || strstr(name, "ffn_down.weight");
    if (output || (v_or_down && (l == 0 || l == 3 || l == 6 || l == 7)))
        return TENSOR_TYPE_Q6_K;
    return TENSOR_TYPE_Q4_K;
}

// The decoded values of a tensor (freed by the caller).
static float *decoded(const gguf_tensor *t)
{
    float *x = malloc(t->n_elements * sizeof *x);
    assert_non_null(x);
    const tensor_type_traits *tr = tensor_type_get(t->type);
    assert_non_null(tr->dequantize);
    tr->dequantize(t->data, x, (int64_t)t->n_elements);
    return x;
}

// sqrt(sum (b - a)^2 / sum a^2) over the tensors' decoded values.
static double relative_rms(const gguf_tensor *a, const gguf_tensor *b)
{
    assert_int_equal(a->n_elements, b->n_elements);
    float *x = decoded(a), *y = decoded(b);
    double diff = 0, norm = 0;
    for (uint64_t i = 0; i < a->n_elements; i++) {
        diff += ((double)y[i] - x[i]) * ((double)y[i] - x[i]);
        norm += (double)x[i] * x[i];
    }
    free(x), free(y);
    return norm > 0 ? sqrt(diff / norm) : sqrt(diff);
}

// The relative RMS error a type may add to the synthesized weights (the worst tensor measured:
// Q8_0 0.0052, Q6_K 0.016, Q4_K 0.069, Q4_0 0.084; the bounds leave room, yet a wrong scale or
// a swapped nibble breaks them by far).
static double tolerance(uint32_t type)
{
    switch (type) {
    case TENSOR_TYPE_F32: return 0;
    case TENSOR_TYPE_Q8_0: return 0.008;
    case TENSOR_TYPE_Q6_K: return 0.025;
    case TENSOR_TYPE_Q4_K: return 0.09;
    case TENSOR_TYPE_Q4_0: return 0.11;
    default: return 0;
    }
}

// The logits of the last of four prompt tokens after running the model at path.
static void last_logits(const char *path, float *logits_out)
{
    garlic_error err;
    model *m = model_load(path, &err);
    if (!m)
        fail_msg("%s", err.message);
    assert_int_equal(m->hp.n_vocab, N_VOCAB);
    model_state_config cfg = {.n_ctx = 16, .max_batch = 8, .logit_rows = 1, .n_threads = 2};
    model_state *s = model_state_new(m, &cfg, &err);
    if (!s)
        fail_msg("%s", err.message);
    kv_cache *kv = model_kv_new_single(m, KV_TYPE_F32, 16, &err);
    if (!kv)
        fail_msg("%s", err.message);
    kv_seq seq;
    kv_seq_init(&seq);
    if (kv_seq_reserve(kv, &seq, 16, &err))
        fail_msg("%s", err.message);
    const int32_t prompt[] = {1, 300, 301, 302};
    const float *logits;
    if (model_forward(s, kv, &seq, prompt, 4, 0, false, &logits, &err))
        fail_msg("%s: %s", path, err.message);
    memcpy(logits_out, logits, N_VOCAB * sizeof *logits_out);
    kv_seq_deinit(kv, &seq);
    kv_cache_free(kv);
    model_state_free(s);
    model_free(m);
}

static double cosine(const float *a, const float *b, size_t n)
{
    double ab = 0, aa = 0, bb = 0;
    for (size_t i = 0; i < n; i++) {
        ab += (double)a[i] * b[i];
        aa += (double)a[i] * a[i];
        bb += (double)b[i] * b[i];
    }
    return ab / sqrt(aa * bb);
}

// The input's and output's tensors pair up in order, with the same names and shapes; each
// has its expected type and its values are within the type's tolerance of the input's.
static void check_tensors(const gguf_file *in, const gguf_file *out, const char *mix)
{
    assert_int_equal(in->n_tensors, out->n_tensors);
    for (uint64_t i = 0; i < in->n_tensors; i++) {
        const gguf_tensor *a = &in->tensors[i], *b = &out->tensors[i];
        char name[128], name_b[128];
        tensor_name(a, name, sizeof name);
        assert_string_equal(name, tensor_name(b, name_b, sizeof name_b));
        assert_int_equal(a->n_dims, b->n_dims);
        assert_memory_equal(a->ne, b->ne, sizeof a->ne);
        uint32_t want = expected_type(mix, name, a->n_dims);
        if (b->type != want)
            fail_msg("%s: %s is %s, want %s", mix, name, tensor_type_get(b->type)->name,
                     tensor_type_get(want)->name);
        double e = relative_rms(a, b);
        if (e > tolerance(b->type))
            fail_msg("%s: %s (%s): relative RMS error %.4f above %.4f", mix, name,
                     tensor_type_get(b->type)->name, e, tolerance(b->type));
    }
}

// The metadata is the input's but for general.file_type (the mixture's llama.cpp number) and
// general.quantization_version (2).
static void check_metadata(const gguf_file *in, const gguf_file *out, uint32_t file_type)
{
    uint32_t v;
    assert_int_equal(gguf_get_u32(out, "general.file_type", &v), GARLIC_OK);
    assert_int_equal(v, file_type);
    assert_int_equal(gguf_get_u32(out, "general.quantization_version", &v), GARLIC_OK);
    assert_int_equal(v, 2);
    for (uint64_t i = 0; i < in->n_kv; i++) {
        char key[256];
        snprintf(key, sizeof key, "%.*s", (int)in->kv[i].key.len, in->kv[i].key.data);
        if (!strcmp(key, "general.file_type"))
            continue;
        const gguf_kv *kv = gguf_find_kv(out, key);
        if (!kv)
            fail_msg("key '%s' was not copied", key);
        assert_int_equal(kv->value.type, in->kv[i].value.type);
        if (kv->value.type == GGUF_TYPE_STRING)
            assert_true(kv->value.str.len == in->kv[i].value.str.len &&
                        !memcmp(kv->value.str.data, in->kv[i].value.str.data, kv->value.str.len));
        if (kv->value.type == GGUF_TYPE_ARRAY)
            assert_int_equal(kv->value.arr.count, in->kv[i].value.arr.count);
    }
}

// F32 -> Q8_0, Q4_K_M, Q4_0: types, metadata, values, and a forward pass close to the F32
// model's (cosine of the last logits; measured 0.9998, 0.978 and 0.969, where the files
// llama-quantize writes give 0.9998, 0.980 and 0.968).
static void test_mixtures(void **state)
{
    (void)state;
    static const struct {
        const char *mix;
        uint32_t file_type;
        double min_cosine;
    } cases[] = {{"Q8_0", 7, 0.999}, {"Q4_K_M", 15, 0.95}, {"Q4_0", 2, 0.94}};
    float ref[N_VOCAB], got[N_VOCAB];
    last_logits(f32_path, ref);
    gguf_file *in = open_gguf(f32_path);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[600], args[1500], *out, *err;
        snprintf(path, sizeof path, "%s", test_temp_path("mix.gguf"));
        snprintf(args, sizeof args, "'%s' '%s' %s -t 2", f32_path, path, cases[i].mix);
        int rc = quantize(&out, &err, args);
        if (rc != 0)
            fail_msg("%s: exit %d: %s", cases[i].mix, rc, err);
        // The sizes before and after, and the mixture, on stdout; nothing on stderr.
        assert_non_null(strstr(out, "src-f32.gguf: "));
        assert_non_null(strstr(out, "mix.gguf: "));
        assert_non_null(strstr(out, cases[i].mix));
        assert_non_null(strstr(out, "bits per weight"));
        assert_string_equal(err, "");
        free(out), free(err);
        gguf_file *q = open_gguf(path);
        check_tensors(in, q, cases[i].mix);
        check_metadata(in, q, cases[i].file_type);
        gguf_close(q);
        last_logits(path, got);
        double c = cosine(ref, got, N_VOCAB);
        if (!(c >= cases[i].min_cosine))
            fail_msg("%s: logits' cosine with F32's %.5f below %.3f", cases[i].mix, c,
                     cases[i].min_cosine);
        char part[700];
        snprintf(part, sizeof part, "%s.part", path);
        assert_int_equal(access(part, F_OK), -1); // renamed, not left behind
    }
    gguf_close(in);
}

// From BF16: to Q8_0 within its tolerance of the BF16 values, and to F32 exactly them.
static void test_bf16_source(void **state)
{
    (void)state;
    char q8[600], f32[600];
    snprintf(q8, sizeof q8, "%s", test_temp_path("bf16-q8.gguf"));
    snprintf(f32, sizeof f32, "%s", test_temp_path("bf16-f32.gguf"));
    quantize_ok(bf16_path, q8, "Q8_0", NULL);
    quantize_ok(bf16_path, f32, "F32", NULL);
    gguf_file *in = open_gguf(bf16_path), *a = open_gguf(q8), *b = open_gguf(f32);
    for (uint64_t i = 0; i < in->n_tensors; i++) {
        const gguf_tensor *t = &in->tensors[i];
        if (t->n_dims < 2)
            continue;
        assert_int_equal(t->type, TENSOR_TYPE_BF16);
        assert_int_equal(a->tensors[i].type, TENSOR_TYPE_Q8_0);
        assert_true(relative_rms(t, &a->tensors[i]) < 0.01);
        assert_int_equal(b->tensors[i].type, TENSOR_TYPE_F32);
        assert_true(relative_rms(t, &b->tensors[i]) == 0);
    }
    uint32_t ft;
    assert_int_equal(gguf_get_u32(b, "general.file_type", &ft), GARLIC_OK);
    assert_int_equal(ft, 0);
    gguf_close(in), gguf_close(a), gguf_close(b);
}

// A Q4_0 file: to Q4_K_M only with --allow-requantize (without it nothing is written), to F32
// exactly its decoded values without it, and to Q4_0 byte for byte.
static void test_requantize(void **state)
{
    (void)state;
    char q4[600], out_path[600], part[700], args[2000], *err;
    snprintf(q4, sizeof q4, "%s", test_temp_path("q4_0.gguf"));
    snprintf(out_path, sizeof out_path, "%s", test_temp_path("requant.gguf"));
    snprintf(part, sizeof part, "%s.part", out_path);
    quantize_ok(f32_path, q4, "Q4_0", NULL);
    unlink(out_path);
    snprintf(args, sizeof args, "'%s' '%s' Q4_K_M", q4, out_path);
    assert_int_equal(quantize(NULL, &err, args), 1);
    assert_non_null(strstr(err, "q4_0.gguf"));
    assert_non_null(strstr(err, "already quantized (Q4_0)"));
    assert_non_null(strstr(err, "--allow-requantize"));
    assert_non_null(strstr(err, "token_embd.weight")); // the first tensor refused is named
    free(err);
    assert_int_equal(access(out_path, F_OK), -1);
    assert_int_equal(access(part, F_OK), -1);

    quantize_ok(q4, out_path, "Q4_K_M", "--allow-requantize");
    gguf_file *src = open_gguf(q4), *dst = open_gguf(out_path);
    for (uint64_t i = 0; i < src->n_tensors; i++) {
        char name[128];
        tensor_name(&src->tensors[i], name, sizeof name);
        uint32_t want = expected_type("Q4_K_M", name, src->tensors[i].n_dims);
        assert_int_equal(dst->tensors[i].type, want);
        if (src->tensors[i].type != want)
            assert_true(relative_rms(&src->tensors[i], &dst->tensors[i]) < 0.08);
    }
    gguf_close(dst);

    quantize_ok(q4, out_path, "F32", NULL);
    dst = open_gguf(out_path);
    for (uint64_t i = 0; i < src->n_tensors; i++) {
        assert_int_equal(dst->tensors[i].type, TENSOR_TYPE_F32);
        assert_true(relative_rms(&src->tensors[i], &dst->tensors[i]) == 0);
    }
    gguf_close(dst);

    quantize_ok(q4, out_path, "Q4_0", NULL); // nothing changes type: copied
    dst = open_gguf(out_path);
    for (uint64_t i = 0; i < src->n_tensors; i++) {
        assert_int_equal(dst->tensors[i].type, src->tensors[i].type);
        assert_memory_equal(dst->tensors[i].data, src->tensors[i].data, src->tensors[i].nbytes);
    }
    gguf_close(dst);
    gguf_close(src);
}

// A small llama file whose second matrix holds a NaN in row 2 (the first is fine).
static void write_nan_model(const char *path)
{
    enum { N = 64, ROWS = 4 };
    static float good[N * ROWS], bad[N * ROWS];
    bad[2 * N + 5] = NAN;
    for (int i = 0; i < N * ROWS; i++)
        good[i] = (float)(i % 7) - 3.0f;
    gguf_writer *w = gguf_writer_new();
    assert_int_equal(gguf_writer_set_str(w, "general.architecture", "llama"), 0);
    assert_int_equal(gguf_writer_set_u32(w, "llama.block_count", 1), 0);
    garlic_error e;
    const uint64_t ne[2] = {N, ROWS};
    assert_int_equal(
        gguf_writer_add_tensor(w, "blk.0.attn_q.weight", TENSOR_TYPE_F32, 2, ne, good, &e), 0);
    assert_int_equal(
        gguf_writer_add_tensor(w, "blk.0.attn_k.weight", TENSOR_TYPE_F32, 2, ne, bad, &e), 0);
    if (gguf_writer_write(w, path, NULL, NULL, &e))
        fail_msg("%s", e.message);
    gguf_writer_free(w);
}

// Each failure exits non-zero with a message naming what is at fault, and leaves neither OUT
// nor its partial file.
static void test_errors(void **state)
{
    (void)state;
    char out_path[600], part[700], args[2000], *err;
    snprintf(out_path, sizeof out_path, "%s", test_temp_path("never.gguf"));
    snprintf(part, sizeof part, "%s.part", out_path);
    static const struct {
        const char *type;
        int status;
        const char *says;
    } bad_types[] = {
        {"Q9_K", 2, "unknown type 'Q9_K'"},
        {"IQ2_XXS", 2, "garlic cannot write"},
        {"Q2_K_S", 2, "importance matrix"},
    };
    for (size_t i = 0; i < sizeof bad_types / sizeof bad_types[0]; i++) {
        snprintf(args, sizeof args, "'%s' '%s' %s", f32_path, out_path, bad_types[i].type);
        assert_int_equal(quantize(NULL, &err, args), bad_types[i].status);
        if (!strstr(err, bad_types[i].says))
            fail_msg("no '%s' in: %s", bad_types[i].says, err);
        free(err);
    }
    snprintf(args, sizeof args, "'%s' '%s'", f32_path, out_path);
    assert_int_equal(quantize(NULL, &err, args), 2);
    assert_non_null(strstr(err, "TYPE is missing"));
    free(err);

    const char *missing = test_temp_path("no-such-model.gguf");
    snprintf(args, sizeof args, "'%s' '%s' Q8_0", missing, out_path);
    assert_int_equal(quantize(NULL, &err, args), 1);
    assert_non_null(strstr(err, missing));
    free(err);

    const char *unwritable = test_temp_path("no-such-dir/out.gguf");
    snprintf(args, sizeof args, "'%s' '%s' Q8_0", f32_path, unwritable);
    assert_int_equal(quantize(NULL, &err, args), 1);
    assert_non_null(strstr(err, unwritable));
    free(err);

    snprintf(args, sizeof args, "'%s' '%s' Q8_0", f32_path, f32_path);
    assert_int_equal(quantize(NULL, &err, args), 1);
    assert_non_null(strstr(err, "would replace the input"));
    free(err);

    const char *nan_path = test_temp_path("nan.gguf");
    write_nan_model(nan_path);
    snprintf(args, sizeof args, "'%s' '%s' Q8_0 -t 2", nan_path, out_path);
    assert_int_equal(quantize(NULL, &err, args), 1);
    assert_non_null(strstr(err, "nan.gguf"));
    assert_non_null(strstr(err, "blk.0.attn_k.weight"));
    assert_non_null(strstr(err, "row 2 "));
    free(err);
    assert_int_equal(access(out_path, F_OK), -1);
    assert_int_equal(access(part, F_OK), -1);
    snprintf(args, sizeof args, "'%s' '%s' F16", nan_path, out_path); // F16 keeps the NaN
    assert_int_equal(quantize(NULL, NULL, args), 0);
}

// --progress writes lines up to 100 % (stderr is not a terminal), and the thread count does
// not change a byte.
static void test_progress_and_threads(void **state)
{
    (void)state;
    char one[600], three[600], args[2000], *err;
    snprintf(one, sizeof one, "%s", test_temp_path("t1.gguf"));
    snprintf(three, sizeof three, "%s", test_temp_path("t3.gguf"));
    snprintf(args, sizeof args, "'%s' '%s' Q4_K_M -t 1 --progress", f32_path, one);
    assert_int_equal(quantize(NULL, &err, args), 0);
    char want[700];
    snprintf(want, sizeof want, "garlic quantize: writing %s 100%%\n", one);
    if (!strstr(err, want))
        fail_msg("no '%s' in:\n%s", want, err);
    size_t lines = 0;
    for (const char *c = err; *c; c++)
        lines += *c == '\n';
    assert_true(lines >= 2 && lines <= 11);
    free(err);
    quantize_ok(f32_path, three, "Q4_K_M", "--threads 3");
    size_t a_len, b_len;
    char *a = test_read_file(one, &a_len), *b = test_read_file(three, &b_len);
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(a_len, b_len);
    assert_memory_equal(a, b, a_len);
    free(a), free(b);
}

// With LLAMA_QUANTIZE (llama.cpp's llama-quantize): the same type for every tensor, by name,
// on the dense model, an 8-expert MoE and a model whose FFN rows are not whole K-quant blocks.
static void test_llama_quantize_types(void **state)
{
    (void)state;
    const char *llama = getenv("LLAMA_QUANTIZE");
    if (!llama || access(llama, X_OK) != 0) {
        print_message("skipped: set LLAMA_QUANTIZE to llama.cpp's llama-quantize to compare\n");
        skip();
    }
    char moe[600], odd[600];
    snprintf(moe, sizeof moe, "%s", test_temp_path("moe8.gguf"));
    snprintf(odd, sizeof odd, "%s", test_temp_path("odd.gguf"));
    synth(moe, "--arch qwen3moe --layers 4 --experts 8 --experts-used 2 --expert-ffn 256");
    synth(odd, "--layers 4 --ffn 800");
    const char *models[] = {f32_path, moe, odd};
    const char *mixes[] = {"Q4_K_M", "Q8_0", "Q4_0", "Q3_K_M", "Q5_K_S", "IQ4_XS", "Q2_K"};
    for (size_t m = 0; m < 3; m++) {
        for (size_t x = 0; x < sizeof mixes / sizeof mixes[0]; x++) {
            char ours[600], theirs[600], *out, *err;
            snprintf(ours, sizeof ours, "%s", test_temp_path("ours.gguf"));
            snprintf(theirs, sizeof theirs, "%s", test_temp_path("theirs.gguf"));
            int rc = test_run(&out, &err, "'%s' '%s' '%s' %s 2", llama, models[m], theirs,
                              mixes[x]);
            if (rc != 0)
                fail_msg("llama-quantize %s %s: exit %d: %s", models[m], mixes[x], rc, err);
            free(out), free(err);
            quantize_ok(models[m], ours, mixes[x], NULL);
            gguf_file *a = open_gguf(ours), *b = open_gguf(theirs);
            assert_int_equal(a->n_tensors, b->n_tensors);
            for (uint64_t i = 0; i < a->n_tensors; i++) {
                char name[128];
                tensor_name(&a->tensors[i], name, sizeof name);
                const gguf_tensor *t = gguf_find_tensor(b, name);
                assert_non_null(t);
                if (t->type != a->tensors[i].type)
                    fail_msg("%s %s: %s is %s, llama-quantize makes it %s", models[m], mixes[x],
                             name, tensor_type_get(a->tensors[i].type)->name,
                             tensor_type_get(t->type)->name);
            }
            uint32_t fa, fb;
            assert_int_equal(gguf_get_u32(a, "general.file_type", &fa), 0);
            assert_int_equal(gguf_get_u32(b, "general.file_type", &fb), 0);
            assert_int_equal(fa, fb);
            gguf_close(a), gguf_close(b);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mixtures),
        cmocka_unit_test(test_bf16_source),
        cmocka_unit_test(test_requantize),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_progress_and_threads),
        cmocka_unit_test(test_llama_quantize_types),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
