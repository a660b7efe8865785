// SPDX-License-Identifier: MIT
// Tensor parallelism end to end: `garlic run --dump-logits` (every prompt position's logits)
// and its greedy text, under mpirun with 2 and 4 ranks, against one process. The logits must
// agree within float tolerance and the greedy text must be identical, for synthesized llama,
// qwen, gemma3 and phi3 models (attn_output and ffn_down split by input columns, by output
// rows where a rank's columns are not whole quant blocks, uneven FFN and vocabulary parts,
// KV heads shared by ranks), mixtures of experts (qwen3moe, gpt-oss with MXFP4 experts,
// qwen2moe with a shared expert, uneven parts of K-quant experts), latent attention
// (deepseek2) and for every model of
// ../shared/models (at 4 ranks but for one
// whose 2 heads 4 ranks cannot divide, whose refusal must name them). Also the refusals: T
// that is not the number of ranks, and ranks whose model files differ. And the faults: a rank killed or stopped mid-stream ends the job within
// seconds with a non-zero status and a message. Skips with a message when mpirun is absent or
// garlic was built without MPI.
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "dist/dist.h"
#include "gguf/gguf.h"
#include "model/model.h"
#include "model/synth.h"
#include "tensor/types.h"
#include "util.h"

// The tolerance, relative to the largest |logit| of the prompt's rows: the ranks' partial
// sums add in another order (about 1e-6 of a value in F32), which is all an F32 model sees;
// where activations are rounded to F16 or BF16, or quantized to 8 bits, for the products,
// such a difference can move a value to the next rounding step (F16: 2^-11 of it, BF16:
// 2^-8), which the following layers carry. (A missing or doubled sum moves them by O(1).)
static double tolerance_of(const char *file)
{
    garlic_error err;
    gguf_file *f = gguf_open(file, &err);
    if (!f)
        fail_msg("%s", err.message);
    const gguf_tensor *t = gguf_find_tensor(f, "blk.0.ffn_down.weight");
    t = t ? t : gguf_find_tensor(f, "blk.0.ffn_down_exps.weight"); // (a layer of experts)
    uint32_t type = t ? t->type : TENSOR_TYPE_F32;
    gguf_close(f);
    return type == TENSOR_TYPE_F32 ? 1e-4
        : type == TENSOR_TYPE_F16  ? 2e-3
        : type == TENSOR_TYPE_BF16 ? 1e-2
                                   : 5e-3;
}
static const char *const PROMPT_IDS = "1 45 300 301 302 45 66 7 200 13"; // below every vocab
enum { N_PREDICT = 24 };

// The launcher: local shared memory, more ranks than cores allowed, as root in containers.
// Under ASan (make test-asan) the ranks do not check for leaks: Open MPI leaves allocations
// of its unloaded plugins at MPI_Finalize, which LeakSanitizer can neither attribute nor
// suppress by library; the one-process runs keep the leak check.
static const char *mpirun(void)
{
    return "ASAN_OPTIONS=detect_leaks=0 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 "
           "OMPI_MCA_rmaps_base_oversubscribe=1 mpirun --mca btl self,vader";
}

// Reads a --dump-logits file: rows of floats. Returns the values (malloc'd) and their count.
static float *read_logits(const char *path, size_t *n)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, len = 0;
    float *v = malloc(cap * sizeof *v);
    float x;
    while (v && fscanf(f, "%f", &x) == 1) {
        if (len == cap)
            v = realloc(v, (cap *= 2) * sizeof *v);
        if (v)
            v[len++] = x;
    }
    fclose(f);
    *n = len;
    return v;
}

// One run of `garlic run` over the prompt: ranks 0 runs alone, else under mpirun -np ranks
// with --tensor-parallel ranks. Writes the logits to logits_path; returns the exit status
// and sets *text (stdout) and *err (stderr), which the caller frees.
static int run_model(const char *file, const char *kv, uint32_t ranks, const char *logits_path,
                     char **text, char **err)
{
    char launch[300] = "";
    if (ranks)
        snprintf(launch, sizeof launch, "%s -np %u", mpirun(), ranks);
    char tp[40] = "";
    if (ranks)
        snprintf(tp, sizeof tp, "--tensor-parallel %u", ranks);
    return test_run(text, err,
                    "%s %s run '%s' --prompt-ids '%s' --dump-logits '%s' -n %d --temp 0 -t 1 "
                    "--kv-type %s %s",
                    launch, test_garlic(), file, PROMPT_IDS, logits_path, N_PREDICT, kv, tp);
}

// One run of `garlic run` under mpirun -np t * p with --tensor-parallel t --pipeline-parallel
// p (KV cache kv), logits to logits_path; the exit status, *text and *err as run_model's.
static int run_layout(const char *file, const char *kv, uint32_t t, uint32_t p,
                      const char *logits_path, char **text, char **err)
{
    return test_run(text, err,
                    "%s -np %u %s run '%s' --prompt-ids '%s' --dump-logits '%s' -n %d --temp 0 "
                    "-t 1 --kv-type %s --tensor-parallel %u --pipeline-parallel %u",
                    mpirun(), t * p, test_garlic(), file, PROMPT_IDS, logits_path, N_PREDICT, kv, t,
                    p);
}

// Whether model can be split between ranks (the loader's check, without running it). Every
// dense decoder splits, but where `ranks` cannot divide its attention heads, or neither
// divide its KV heads nor be a multiple of them: then the refusal is printed and required
// to name the heads (anything else refused fails the test).
static bool splits(const char *file, const char *label, uint32_t ranks)
{
    garlic_error err = {0};
    model_load_options whole = {.meta_only = true};
    model *m = model_load_with(file, &whole, &err);
    if (!m)
        fail_msg("%s: %s", label, err.message);
    uint32_t heads = m->hp.n_head, kv = m->hp.n_head_kv;
    model_free(m);
    bool divides = heads % ranks == 0 && (kv % ranks == 0 || ranks % kv == 0);
    model_load_options o = {.meta_only = true, .tp_size = ranks};
    m = model_load_with(file, &o, &err);
    model_free(m);
    if (!m && (divides || !strstr(err.message, "must divide the")))
        fail_msg("%s, %u ranks: refused: %s", label, ranks, err.message);
    if (m && !divides)
        fail_msg("%s, %u ranks: %u heads, %u KV heads, yet not refused", label, ranks, heads, kv);
    if (!m)
        print_message("%s, %u ranks: refused (its heads): %s\n", label, ranks, err.message);
    return m != NULL;
}

// Checks model under 2 and 4 ranks against one process, with the KV cache in kv_type.
// Returns how many layouts it compared (0: tensor parallelism refused them all, with a
// message each).
static int check_model(const char *file, const char *label, const char *kv)
{
    char *want_text, *err;
    char ref_path[600];
    snprintf(ref_path, sizeof ref_path, "%s", test_temp_path("ref.logits"));
    if (run_model(file, kv, 0, ref_path, &want_text, &err) != 0)
        fail_msg("%s: garlic run: %s", label, err);
    free(err);
    size_t n_ref;
    float *ref = read_logits(ref_path, &n_ref);
    assert_non_null(ref);
    assert_true(n_ref > 0);
    float scale = 0;
    for (size_t i = 0; i < n_ref; i++)
        scale = fabsf(ref[i]) > scale ? fabsf(ref[i]) : scale;
    double tolerance = tolerance_of(file) * fmax(scale, 1e-3);
    int compared = 0;
    for (uint32_t ranks = 2; ranks <= 4; ranks *= 2) {
        if (!splits(file, label, ranks))
            continue;
        const char *path = test_temp_path("tp.logits");
        unlink(path);
        char *text;
        int rc = run_model(file, kv, ranks, path, &text, &err);
        if (rc != 0)
            fail_msg("%s, %u ranks: exit %d: %s", label, ranks, rc, err);
        size_t n;
        float *got = read_logits(path, &n);
        assert_non_null(got);
        assert_int_equal(n, n_ref);
        double worst = 0;
        for (size_t i = 0; i < n; i++)
            worst = fmax(worst, fabs((double)got[i] - ref[i]));
        print_message("%s, %u ranks: largest logit difference %.3g (largest |logit| %.3g)\n", label,
                      ranks, worst, scale);
        if (worst > tolerance)
            fail_msg("%s, %u ranks: logits differ by %g (tolerance %g)", label, ranks, worst,
                     tolerance);
        if (strcmp(text, want_text) != 0)
            fail_msg("%s, %u ranks: greedy text '%s', one process '%s'", label, ranks, text,
                     want_text);
        compared++;
        free(got), free(text), free(err);
    }
    // Two pipeline stages: one process's logits bit for bit (every model of two layers or more
    // splits into stages).
    garlic_error e = {0};
    model_load_options mo = {.meta_only = true};
    model *shape = model_load_with(file, &mo, &e);
    assert_non_null(shape);
    uint32_t layers = shape->hp.n_layer;
    model_free(shape);
    if (layers < 2) {
        print_message("%s, 2 stages: skipped: one layer\n", label);
        free(ref), free(want_text);
        return compared;
    }
    const char *path = test_temp_path("pp.logits");
    unlink(path);
    char *text;
    int rc = run_layout(file, kv, 1, 2, path, &text, &err);
    if (rc != 0)
        fail_msg("%s, 2 stages: exit %d: %s", label, rc, err);
    size_t n;
    float *got = read_logits(path, &n);
    assert_non_null(got);
    assert_int_equal(n, n_ref);
    if (memcmp(got, ref, n * sizeof *got) != 0 || strcmp(text, want_text) != 0)
        fail_msg("%s, 2 stages: logits or text differ from one process's", label);
    print_message("%s, 2 stages: logits and text identical to one process's\n", label);
    free(got), free(text), free(err);
    free(ref), free(want_text);
    return compared;
}

// A synthesized model of shape A with n_head_kv KV heads (0: 4, so that 2 and 4 ranks
// divide them), an FFN ffn wide and a vocabulary of vocab (0: shape A's), its output matrix
// the token embedding when tied.
static const char *synth_shaped(const char *arch, uint32_t type, bool tied, uint32_t n_head_kv,
                                uint32_t ffn, uint32_t vocab, const char *name)
{
    model_synth_params p;
    model_synth_params_default(&p);
    p.arch = arch, p.type = type, p.tied = tied;
    p.n_head_kv = n_head_kv ? n_head_kv : 4;
    p.ffn = ffn ? ffn : p.ffn, p.vocab = vocab ? vocab : p.vocab;
    const char *path = test_temp_path(name);
    garlic_error err;
    if (model_synth_write(&p, path, &err))
        fail_msg("%s", err.message);
    return path;
}

// A synthesized model of shape A with 4 KV heads (so 2 and 4 ranks divide its heads), its
// output matrix the token embedding when tied.
static const char *synth(const char *arch, uint32_t type, bool tied, const char *name)
{
    model_synth_params p;
    model_synth_params_default(&p);
    p.arch = arch, p.type = type, p.n_head_kv = 4, p.tied = tied;
    const char *path = test_temp_path(name);
    garlic_error err;
    if (model_synth_write(&p, path, &err))
        fail_msg("%s", err.message);
    return path;
}

static void test_synth_models(void **state)
{
    (void)state;
    if (!test_mpi_ready())
        skip();
    const struct {
        const char *arch;
        uint32_t type;
        bool tied;
        const char *kv; // the KV cache: F16 (the default) where the weights are F32, whose
                        // activations no 8-bit rounding amplifies (see test_shared_models)
        uint32_t n_head_kv, ffn, vocab; // 0: synth_shaped's
        const char *name;
    } cases[] = {
        {"llama", TENSOR_TYPE_F32, false, "f16", 0, 0, 0, "tp-llama-f32.gguf"},
        {"llama", TENSOR_TYPE_Q8_0, false, "f32", 0, 0, 0, "tp-llama-q8_0.gguf"},
        {"llama", TENSOR_TYPE_Q4_0, true, "f32", 0, 0, 0, "tp-llama-q4_0-tied.gguf"}, // embd
        {"qwen2", TENSOR_TYPE_Q8_0, false, "f32", 0, 0, 0, "tp-qwen2-q8_0.gguf"}, // Q/K/V biases
        {"qwen3", TENSOR_TYPE_F16, false, "f32", 0, 0, 0, "tp-qwen3-f16.gguf"},   // Q/K norms
        {"gemma3", TENSOR_TYPE_F32, false, "f32", 0, 0, 0, "tp-gemma3-f32.gguf"}, // post-norms
        {"phi3", TENSOR_TYPE_Q8_0, false, "f32", 0, 0, 0, "tp-phi3-q8_0.gguf"},   // fused qkv, up
        // attn_output and ffn_down split by output rows (a rank's columns are not whole
        // blocks of 256), for a plain K-quant and a mixture of them
        {"llama", TENSOR_TYPE_Q4_K, false, "f32", 0, 0, 0, "tp-llama-q4_k.gguf"},
        {"qwen3", TENSOR_TYPE_Q6_K, false, "f32", 0, 0, 0, "tp-qwen3-q6_k.gguf"},
        // ffn_down by output rows (400 or 200 columns are not whole blocks of 32), attn_output
        // by input columns; 2 KV heads, each held by 2 of 4 ranks; 510 vocabulary rows
        {"llama", TENSOR_TYPE_Q8_0, false, "f32", 2, 800, 510, "tp-llama-q8_0-mixed.gguf"},
        // uneven parts of the FFN (770: 385, or 192 and 193) and of the vocabulary
        {"llama", TENSOR_TYPE_F32, false, "f16", 0, 770, 510, "tp-llama-f32-uneven.gguf"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *path = synth_shaped(cases[i].arch, cases[i].type, cases[i].tied,
                                        cases[i].n_head_kv, cases[i].ffn, cases[i].vocab,
                                        cases[i].name);
        assert_int_equal(check_model(path, cases[i].name, cases[i].kv), 2); // both layouts
    }
}

// Mixtures of experts: every rank keeps its part of each expert's width (gate and up rows,
// down columns, in whole blocks of down's type), or where those blocks do not split evenly
// and the experts do, whole experts; and the whole router, so every rank chooses the same
// experts and the layer's output is a partial sum the ranks add. Cases: qwen3moe (Q8_0),
// gpt-oss (MXFP4 experts with gate, up and down biases, attention sinks and sliding
// windows) split by width and by whole experts (evenly or not), qwen2moe (a shared expert with its sigmoid
// gate, F32; in Q4_K a shared expert of one block, which rank 0 keeps whole), Q4_K experts of
// 5 blocks of 256 (whole experts at 2 ranks, uneven parts at 4).
// And latent attention (deepseek2: the heads split, the latent whole on every rank), with
// experts.
static void test_expert_models(void **state)
{
    (void)state;
    if (!test_mpi_ready())
        skip();
    const struct {
        const char *arch;
        uint32_t type;
        int32_t expert_type; // -1: type
        uint32_t n_expert, ffn_exp, ffn_shexp;
        const char *name;
    } cases[] = {
        {"qwen3moe", TENSOR_TYPE_Q8_0, -1, 4, 256, 0, "tp-qwen3moe-q8_0.gguf"},
        {"gpt-oss", TENSOR_TYPE_Q8_0, TENSOR_TYPE_MXFP4, 4, 256, 0, "tp-gpt-oss-mxfp4.gguf"},
        // one block of 256, 6 experts: whole experts with their bias rows, 3 a rank at 2
        // ranks, 1, 2, 1 and 2 at 4
        {"gpt-oss", TENSOR_TYPE_Q8_0, TENSOR_TYPE_Q4_K, 6, 256, 0, "tp-gpt-oss-experts.gguf"},
        {"qwen2moe", TENSOR_TYPE_F32, -1, 4, 128, 256, "tp-qwen2moe-f32.gguf"},
        // experts of 2 blocks of 256 (by width at 2 ranks, whole at 4), a shared expert of 1
        // (kept whole by rank 0)
        {"qwen2moe", TENSOR_TYPE_Q4_K, -1, 4, 512, 256, "tp-qwen2moe-q4_k.gguf"},
        // 5 blocks of 256: 2 ranks take 3 whole experts each, 4 ranks (which do not divide the
        // 6 experts) 1, 1, 1 and 2 blocks of every expert
        {"qwen3moe", TENSOR_TYPE_Q4_K, -1, 6, 1280, 0, "tp-qwen3moe-q4_k.gguf"},
        {"deepseek2", TENSOR_TYPE_Q8_0, -1, 4, 256, 256, "tp-deepseek2-q8_0.gguf"},
        {"deepseek2", TENSOR_TYPE_F32, -1, 4, 256, 0, "tp-deepseek2-f32.gguf"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        model_synth_params p;
        model_synth_params_default(&p);
        p.arch = cases[i].arch, p.type = cases[i].type, p.expert_type = cases[i].expert_type;
        p.n_head_kv = 4, p.n_expert = cases[i].n_expert, p.n_expert_used = 2;
        p.ffn_exp = cases[i].ffn_exp, p.ffn_shexp = cases[i].ffn_shexp;
        if (!strcmp(p.arch, "gpt-oss")) // (its experts' width is --ffn's)
            p.ffn = cases[i].ffn_exp;
        if (!strcmp(p.arch, "deepseek2")) // latent attention: a latent of 64, RoPE of 16
            p.rope_dims = 16, p.kv_lora_rank = 64;
        if (!strcmp(p.arch, "deepseek2") && p.type == TENSOR_TYPE_Q8_0) {
            // low-rank queries, a dense first layer, DeepSeek-V3's routing (sigmoid scores,
            // a bias, groups), values 24 wide: attn_output's 48 columns a rank at 4 ranks are
            // not whole blocks of 32 (split by output rows)
            p.q_lora_rank = 128, p.v_head_dim = 24, p.n_dense_lead = 1, p.gating_func = 2;
            p.expert_bias = true, p.n_expert_groups = 2, p.n_group_used = 1;
            p.expert_norm = true, p.expert_scale = 2.5f;
        }
        const char *path = test_temp_path(cases[i].name);
        garlic_error err;
        if (model_synth_write(&p, path, &err))
            fail_msg("%s", err.message);
        assert_int_equal(check_model(path, cases[i].name, "f32"), 2); // both layouts
    }
}

// With an F32 KV cache: in an F16 one, a sum added in another order (1e-7) can move a cached
// key to the next F16 step, which the 8-bit activations of the later products can amplify
// (synth-llama-a-Q4_1 with an F16 cache: 1e-2 of max|logit| from the position where that
// happens on, 2e-7 with an F32 cache): the comparison is then of the split, not of roundings.
static void test_shared_models(void **state)
{
    (void)state;
    skip_without_shared();
    if (!test_mpi_ready())
        skip();
    char *list;
    char dir[600];
    snprintf(dir, sizeof dir, "%s", test_shared_path("models"));
    assert_int_equal(test_run(&list, NULL, "ls '%s' | grep '\\.gguf$'", dir), 0);
    int compared = 0, models = 0;
    for (char *name = strtok(list, "\n"); name; name = strtok(NULL, "\n")) {
        char path[1200];
        snprintf(path, sizeof path, "%s/%s", dir, name);
        compared += check_model(path, name, "f32"); // (refusals other than heads fail)
        models++;
    }
    free(list);
    // Every one at 2 ranks, and at 4 but for llama-2-tiny-random (2 attention heads).
    print_message("%d of %d layouts compared\n", compared, 2 * models);
    assert_true(models > 0);
    assert_true(compared >= 2 * models - 1);
}

// Pipeline parallelism: the layers split into stages (as `garlic estimate
// --pipeline-parallel` prints them), the residual stream sent from stage to stage and the
// logits from the last to all. Nothing is summed in another order, so 2 stages give one
// process's logits bit for bit and its greedy text, for every weight type (the K-quants that
// tensor parallelism cannot split included) and architecture; 2 x 2 (tensor parallelism inside
// each stage) within tensor parallelism's tolerance.
static void test_pipeline(void **state)
{
    (void)state;
    if (!test_mpi_ready())
        skip();
    const char *files[8];
    const char *labels[8];
    int n = 0;
    static char made[3][600]; // (synth's path is test_temp_path's buffer, rewritten by each call)
    snprintf(made[0], sizeof made[0], "%s",
             synth("llama", TENSOR_TYPE_Q8_0, false, "pp-llama.gguf"));
    snprintf(made[1], sizeof made[1], "%s",
             synth("gemma3", TENSOR_TYPE_F32, false, "pp-gemma3.gguf"));
    snprintf(made[2], sizeof made[2], "%s",
             synth("qwen3", TENSOR_TYPE_Q4_0, true, "pp-qwen3.gguf"));
    files[n] = made[0], labels[n++] = "llama Q8_0";
    files[n] = made[1], labels[n++] = "gemma3 F32 (sliding windows)";
    files[n] = made[2], labels[n++] = "qwen3 Q4_0 tied";
    static char shared[3][600];
    const char *names[] = {"synth-llama-a-Q4_K_M.gguf", "synth-qwen2-a-Q4_K_M.gguf",
                           "stories260K.gguf"};
    for (int i = 0; i < 3 && test_shared_path("models"); i++) {
        snprintf(shared[i], sizeof shared[i], "%s/%s", test_shared_path("models"), names[i]);
        if (access(shared[i], R_OK) == 0)
            files[n] = shared[i], labels[n++] = names[i];
    }
    for (int i = 0; i < n; i++) {
        char ref_path[600], *want_text, *text, *err;
        snprintf(ref_path, sizeof ref_path, "%s", test_temp_path("pp-ref.logits"));
        assert_int_equal(test_run(&want_text, &err,
                                  "%s run '%s' --prompt-ids '%s' --dump-logits '%s' -n %d --temp 0 "
                                  "-t 1 --kv-type f32",
                                  test_garlic(), files[i], PROMPT_IDS, ref_path, N_PREDICT),
                         0);
        free(err);
        size_t n_ref, n_got;
        float *ref = read_logits(ref_path, &n_ref);
        assert_non_null(ref);
        char path[600];
        snprintf(path, sizeof path, "%s", test_temp_path("pp.logits"));
        unlink(path);
        int rc = run_layout(files[i], "f32", 1, 2, path, &text, &err);
        if (rc != 0)
            fail_msg("%s, 2 stages: exit %d: %s", labels[i], rc, err);
        float *got = read_logits(path, &n_got);
        assert_non_null(got);
        assert_int_equal(n_got, n_ref);
        if (memcmp(got, ref, n_ref * sizeof *ref) != 0)
            fail_msg("%s, 2 stages: the logits differ from one process's", labels[i]);
        if (strcmp(text, want_text) != 0)
            fail_msg("%s, 2 stages: greedy text '%s', one process '%s'", labels[i], text,
                     want_text);
        print_message("%s, 2 stages: logits and text identical to one process's\n", labels[i]);
        free(got), free(text), free(err);
        if (i == 0) { // 2 x 2: four ranks
            unlink(path);
            rc = run_layout(files[i], "f32", 2, 2, path, &text, &err);
            if (rc != 0)
                fail_msg("%s, 2 x 2: exit %d: %s", labels[i], rc, err);
            got = read_logits(path, &n_got);
            assert_non_null(got);
            assert_int_equal(n_got, n_ref);
            float scale = 0;
            double worst = 0;
            for (size_t k = 0; k < n_ref; k++) {
                scale = fabsf(ref[k]) > scale ? fabsf(ref[k]) : scale;
                worst = fmax(worst, fabs((double)got[k] - ref[k]));
            }
            print_message("%s, 2 x 2: largest logit difference %.3g (largest |logit| %.3g)\n",
                          labels[i], worst, scale);
            if (worst > tolerance_of(files[i]) * scale)
                fail_msg("%s, 2 x 2: logits differ by %g", labels[i], worst);
            if (strcmp(text, want_text) != 0)
                fail_msg("%s, 2 x 2: greedy text '%s', one process '%s'", labels[i], text,
                         want_text);
            free(got), free(text), free(err);
        }
        free(ref), free(want_text);
    }
    // More stages than layers, and a layout that is not the ranks', are refused by name.
    char *err;
    assert_int_not_equal(test_run(NULL, &err, "%s -np 2 %s run '%s' x -n 1 --pipeline-parallel 3",
                                  mpirun(), test_garlic(), files[0]),
                         0);
    assert_non_null(strstr(err, "--pipeline-parallel 3, but 2 ranks are running"));
    free(err);
    model_synth_params p;
    model_synth_params_default(&p);
    p.n_layer = 2;
    char two[600];
    snprintf(two, sizeof two, "%s", test_temp_path("pp-two-layers.gguf"));
    garlic_error e;
    assert_int_equal(model_synth_write(&p, two, &e), GARLIC_OK);
    assert_int_not_equal(test_run(NULL, &err, "%s -np 3 %s run '%s' x -n 1 --pipeline-parallel 3",
                                  mpirun(), test_garlic(), two),
                         0);
    assert_non_null(strstr(err, "--pipeline-parallel 3: must be 1 to the 2 layers"));
    free(err);
}

// Sampling at a temperature: with a seed, the ranks' text is one process's; without one, rank
// 0 draws the seed for all (were each rank to draw its own, they would sample apart).
static void test_seeded_sampling(void **state)
{
    (void)state;
    if (!test_mpi_ready())
        skip();
    const char *file = synth("llama", TENSOR_TYPE_F32, false, "tp-sample.gguf");
    const char *args = "--prompt-ids '1 45 300' -n 32 --temp 0.9 --top-k 0 --top-p 1 --min-p 0 "
                       "--kv-type f32 -t 1";
    char *want, *got, *err;
    assert_int_equal(test_run(&want, NULL, "%s run '%s' %s --seed 42", test_garlic(), file, args),
                     0);
    int rc = test_run(&got, &err, "%s -np 2 %s run '%s' %s --seed 42 --tensor-parallel 2", mpirun(),
                      test_garlic(), file, args);
    if (rc != 0)
        fail_msg("exit %d: %s", rc, err);
    assert_string_equal(got, want);
    free(got), free(err);
    rc = test_run(&got, &err, "%s -np 2 %s run '%s' %s --tensor-parallel 2", mpirun(),
                  test_garlic(), file, args);
    if (rc != 0)
        fail_msg("without --seed: exit %d: %s", rc, err);
    free(want), free(got), free(err);
}

static void test_refusals(void **state)
{
    (void)state;
    if (!test_mpi_ready())
        skip();
    const char *small = synth("llama", TENSOR_TYPE_Q8_0, false, "tp-refuse.gguf");
    char *err;
    // T must be the number of ranks, in one process...
    assert_int_not_equal(
        test_run(NULL, &err, "%s run '%s' x -n 1 --tensor-parallel 2", test_garlic(), small), 0);
    assert_non_null(strstr(err, "--tensor-parallel 2, but 1 rank is running"));
    free(err);
    // ...and under mpirun.
    assert_int_not_equal(test_run(NULL, &err, "%s -np 2 %s run '%s' x -n 1 --tensor-parallel 4",
                                  mpirun(), test_garlic(), small),
                         0);
    assert_non_null(strstr(err, "--tensor-parallel 4, but 2 ranks are running"));
    free(err);
    assert_int_not_equal(
        test_run(NULL, &err, "%s -np 2 %s run '%s' x -n 1", mpirun(), test_garlic(), small), 0);
    assert_non_null(strstr(err, "give --tensor-parallel 2"));
    free(err);
    // The same name in two folders: two different files, one per rank (same command line).
    char a[600], b[600];
    snprintf(a, sizeof a, "%s", test_temp_path("rank-a"));
    snprintf(b, sizeof b, "%s", test_temp_path("rank-b"));
    model_synth_params p;
    model_synth_params_default(&p);
    p.n_head_kv = 4;
    garlic_error e;
    char file[700];
    mkdir(a, 0755), mkdir(b, 0755);
    snprintf(file, sizeof file, "%s/m.gguf", a);
    assert_int_equal(model_synth_write(&p, file, &e), GARLIC_OK);
    p.n_layer = 3; // another model
    snprintf(file, sizeof file, "%s/m.gguf", b);
    assert_int_equal(model_synth_write(&p, file, &e), GARLIC_OK);
    char garlic[600];
    snprintf(garlic, sizeof garlic, "%s", test_garlic());
    if (garlic[0] != '/') { // the ranks start in other folders
        char cwd[400];
        assert_non_null(getcwd(cwd, sizeof cwd));
        snprintf(garlic, sizeof garlic, "%s/%s", cwd, test_garlic());
    }
    const char *args = "run m.gguf x -n 1 --tensor-parallel 2";
    assert_int_not_equal(test_run(NULL, &err,
                                  "%s -np 1 --wdir '%s' %s %s : -np 1 --wdir '%s' %s %s", mpirun(),
                                  a, garlic, args, b, garlic, args),
                         0);
    assert_non_null(strstr(err, "rank 1 has a model file (size or header) that differs"));
    free(err);
    // A model whose heads do not divide is refused at load, naming them (3 ranks: neither
    // the 8 heads nor the 4 KV heads; 4 ranks would each hold one of 2 KV heads, above).
    p.n_head_kv = 4;
    snprintf(file, sizeof file, "%s/m2.gguf", a);
    assert_int_equal(model_synth_write(&p, file, &e), GARLIC_OK);
    assert_int_not_equal(test_run(NULL, &err, "%s -np 3 %s run '%s' x -n 1 --tensor-parallel 3",
                                  mpirun(), garlic, file),
                         0);
    assert_non_null(strstr(err,
                           "--tensor-parallel 3 must divide the 8 attention heads, and divide "
                           "the 4 KV heads or be a multiple of them"));
    free(err);
    // Experts whose width is fewer whole blocks of their down matrix's type than ranks, as
    // is their number: 3 experts of 256 in Q4_K, one block of 256, at 4 ranks (the loader's
    // check alone; 2 ranks take 1 and 2 whole experts).
    p.arch = "qwen3moe", p.n_expert = 3, p.n_expert_used = 2, p.n_head_kv = 4, p.ffn_exp = 256;
    p.type = TENSOR_TYPE_Q4_K;
    snprintf(file, sizeof file, "%s/moe.gguf", a);
    assert_int_equal(model_synth_write(&p, file, &e), GARLIC_OK);
    model_load_options o = {.meta_only = true, .tp_size = 4};
    assert_null(model_load_with(file, &o, &e));
    assert_int_equal(e.code, GARLIC_EUNSUPPORTED);
    assert_non_null(strstr(e.message,
                           "--tensor-parallel 4 exceeds the experts' width: their 256 values are "
                           "1 whole block of 256 (ffn_down_exps's type), fewer than the ranks, "
                           "as are the 3 experts"));
    o.tp_size = 2;
    model *two = model_load_with(file, &o, &e);
    assert_non_null(two);
    model_free(two);
    // An encoder (embeddings only) is served by one process.
    model_synth_params_default(&p);
    p.arch = "bert", p.n_head_kv = 8;
    snprintf(file, sizeof file, "%s/bert.gguf", a);
    if (model_synth_write(&p, file, &e))
        fail_msg("%s", e.message);
    assert_null(model_load_with(file, &o, &e));
    assert_int_equal(e.code, GARLIC_EUNSUPPORTED);
    assert_non_null(strstr(e.message, "this bert model computes embeddings only"));
}

// ---- Faults: a rank that dies or hangs ends the job within seconds, never a silent hang ----

// Starts, in the background, `mpirun -np 2` of a greedy generation that runs until a context
// of 8192 positions is full (tens of seconds here), each rank writing its process id to
// pid.RANK among the test's files before it becomes garlic (a shell that execs keeps its
// id); the job's stdout and stderr go to fault.out and fault.err. Returns mpirun's id.
static pid_t start_long_run(const char *file)
{
    char script[600], out[600], err[600], pids[600];
    snprintf(script, sizeof script, "%s", test_temp_path("rank.sh"));
    snprintf(out, sizeof out, "%s", test_temp_path("fault.out"));
    snprintf(err, sizeof err, "%s", test_temp_path("fault.err"));
    snprintf(pids, sizeof pids, "%s", test_temp_path("pid"));
    unlink(out), unlink(err);
    for (int r = 0; r < 2; r++) {
        char path[700];
        snprintf(path, sizeof path, "%s.%d", pids, r);
        unlink(path);
    }
    char text[3000];
    int n = snprintf(text, sizeof text,
                     "echo $$ > '%s.'$OMPI_COMM_WORLD_RANK\n"
                     "exec %s run '%s' --prompt-ids '1 45' -n 0 -c 8192 --temp 0 -t 1 "
                     "--tensor-parallel 2 --dist-timeout 2\n",
                     pids, test_garlic(), file);
    assert_int_equal(test_write_file(script, text, (size_t)n), 0);
    char cmd[4000];
    snprintf(cmd, sizeof cmd, "exec env %s -np 2 sh '%s' >'%s' 2>'%s' </dev/null", mpirun(), script,
             out, err);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    return pid;
}

// The process id rank r wrote, once it has; 0 if it has not (yet).
static pid_t rank_pid(int r)
{
    char path[700];
    snprintf(path, sizeof path, "%s.%d", test_temp_path("pid"), r);
    FILE *f = fopen(path, "r");
    long pid = 0;
    if (f && fscanf(f, "%ld", &pid) != 1)
        pid = 0;
    if (f)
        fclose(f);
    return (pid_t)pid;
}

// Waits until both ranks have written their ids and rank 0 has printed generated text (the
// ranks are in the middle of generating); fails the test after 60 s. Returns rank 1's id.
static pid_t wait_generating(pid_t job)
{
    for (double t0 = garlic_now(); garlic_now() - t0 < 60;) {
        struct stat st;
        pid_t one = rank_pid(1);
        if (one && rank_pid(0) && stat(test_temp_path("fault.out"), &st) == 0 && st.st_size > 200)
            return one;
        assert_int_equal(waitpid(job, NULL, WNOHANG), 0); // (it must not have ended)
        usleep(50 * 1000);
    }
    fail_msg("the ranks did not start generating within 60 s");
    return 0;
}

// Waits at most `limit` seconds for the job to end; returns its exit status (128 + the signal
// that ended it), or kills it (and the ranks) and fails the test when it is still running.
static int wait_job(pid_t job, double limit, double *seconds)
{
    double t0 = garlic_now();
    int status;
    while (waitpid(job, &status, WNOHANG) == 0) {
        if (garlic_now() - t0 > limit) {
            kill(job, SIGKILL);
            waitpid(job, &status, 0);
            for (int r = 0; r < 2; r++)
                if (rank_pid(r) > 0)
                    kill(rank_pid(r), SIGKILL);
            fail_msg("the job still ran %.0f s after the fault: a hang", limit);
        }
        usleep(20 * 1000);
    }
    *seconds = garlic_now() - t0;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// The model of the fault tests: big enough that generating 8192 tokens takes a while.
static const char *fault_model(void)
{
    model_synth_params p;
    model_synth_params_default(&p);
    p.dim = 512, p.n_layer = 8, p.n_head = 8, p.n_head_kv = 4, p.ffn = 1536, p.context = 8192;
    p.type = TENSOR_TYPE_Q8_0;
    const char *path = test_temp_path("fault.gguf");
    garlic_error err;
    if (model_synth_write(&p, path, &err))
        fail_msg("%s", err.message);
    return path;
}

// Rank 1 killed (SIGKILL) mid-stream: the job ends within seconds, non-zero, saying so
// (mpirun notices a rank that died; were it not to, rank 0's watchdog would after 2 s).
static void test_rank_killed(void **state)
{
    (void)state;
    if (!test_mpi_ready())
        skip();
    pid_t job = start_long_run(fault_model());
    pid_t one = wait_generating(job);
    pid_t zero = rank_pid(0);
    assert_int_equal(kill(one, SIGKILL), 0);
    double seconds;
    int status = wait_job(job, 15, &seconds);
    char *err = test_read_file(test_temp_path("fault.err"), NULL);
    assert_non_null(err);
    print_message("rank 1 killed: the job ended in %.2f s, status %d\n", seconds, status);
    assert_int_not_equal(status, 0);
    if (!strstr(err, "exited on signal 9") && !strstr(err, "a rank died or hangs"))
        fail_msg("no message names the dead rank: %s", err);
    for (double t0 = garlic_now(); !test_process_ended(zero) && garlic_now() - t0 < 5;)
        usleep(20 * 1000);
    if (!test_process_ended(zero))
        fail_msg("rank 0 (pid %d) still runs after the job ended", (int)zero);
    free(err);
}

// Rank 1 stopped (SIGSTOP: alive but silent, as a hung process): rank 0's watchdog notices
// its collective waiting past --dist-timeout 2 and ends the job, naming the rank, the
// collective and the time waited; every rank ends (mpirun's abort kills the stopped one).
static void test_rank_hung(void **state)
{
    (void)state;
    if (!test_mpi_ready())
        skip();
    pid_t job = start_long_run(fault_model());
    pid_t one = wait_generating(job);
    pid_t zero = rank_pid(0);
    assert_int_equal(kill(one, SIGSTOP), 0);
    double seconds;
    int status = wait_job(job, 15, &seconds);
    char *err = test_read_file(test_temp_path("fault.err"), NULL);
    assert_non_null(err);
    print_message("rank 1 stopped: the job ended in %.2f s, status %d\n", seconds, status);
    assert_int_not_equal(status, 0);
    const char *line = strstr(err, "garlic: rank 0 of 2: ");
    if (!line || !strstr(line, "has waited") || !strstr(line, "(--dist-timeout 2)") ||
        !strstr(line, "a rank died or hangs"))
        fail_msg("rank 0's watchdog did not say what happened: %s", err);
    assert_true(seconds >= 1.0); // (not before the timeout: 2 s from the collective's start)
    for (double t0 = garlic_now();
         !(test_process_ended(zero) && test_process_ended(one)) && garlic_now() - t0 < 5;)
        usleep(20 * 1000);
    if (!test_process_ended(one))
        kill(one, SIGKILL);
    assert_true(test_process_ended(zero));
    free(err);
}

// dist/ in a process no launcher started (every build): a world of one, whose collectives
// leave the data as it is, and whose layout takes T = 1 only.
static void test_one_process(void **state)
{
    (void)state;
    assert_int_equal(dist_size(), 1);
    assert_int_equal(dist_rank(), 0);
    dist_tp_layout layout;
    garlic_error err = {0};
    assert_int_equal(dist_tp_layout_make(1, 1, &layout, &err), GARLIC_OK);
    assert_int_equal(layout.size, 1);
    assert_int_equal(layout.rank, 0);
    assert_int_equal(layout.stages, 1);
    assert_int_not_equal(dist_tp_layout_make(2, 1, &layout, &err), GARLIC_OK);
    assert_non_null(
        strstr(err.message,
               dist_built_with_mpi() ? "but 1 rank is running" : "garlic was built without MPI"));
    float x[3] = {1, 2, 3}, all[3] = {0};
    dist_all_reduce_sum(x, 3);
    assert_true(x[0] == 1 && x[1] == 2 && x[2] == 3);
    memcpy(all, x, sizeof x);
    dist_all_gather_parts(all, 3, 1); // (in place: one rank's part is everything)
    assert_memory_equal(all, x, sizeof x);
    for (uint32_t n = 0; n < 12; n++) // the parts of n split between 1 to 5 ranks
        for (uint32_t size = 1; size <= 5; size++) {
            uint64_t sum = 0;
            for (uint32_t r = 0; r < size; r++) {
                assert_int_equal(dist_part_first(n, r, size), sum);
                uint64_t k = dist_part_size(n, r, size);
                assert_true(k == n / size || k == n / size + 1);
                sum += k;
            }
            assert_int_equal(sum, n);
        }
    assert_int_equal(dist_check_same(x, sizeof x, "x", &err), GARLIC_OK);
    assert_true(dist_time_all_reduce(3, 10) == 0);
    assert_int_not_equal(dist_tp_layout_make(1, 2, &layout, &err), GARLIC_OK);
    assert_non_null(strstr(err.message,
                           dist_built_with_mpi() ? "--pipeline-parallel 2, but 1 rank is running"
                                                 : "garlic was built without MPI"));
    float y[2] = {5, 6};
    dist_stage_send(y, 2), dist_stage_recv(y, 2), dist_stage_broadcast_last(y, 2); // one stage
    assert_true(y[0] == 5 && y[1] == 6);
    assert_true(dist_timeout() == DIST_DEFAULT_TIMEOUT);
    dist_set_timeout(2.5);
    assert_true(dist_timeout() == 2.5);
    dist_set_timeout(-1); // no limit
    assert_true(dist_timeout() == 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_process),     cmocka_unit_test(test_synth_models),
        cmocka_unit_test(test_expert_models),   cmocka_unit_test(test_shared_models),
        cmocka_unit_test(test_seeded_sampling), cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_rank_killed),     cmocka_unit_test(test_rank_hung),
        cmocka_unit_test(test_pipeline),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
