// SPDX-License-Identifier: MIT
// The architecture fidelity harness: for each row of tests/data/arch/models.tsv, one cmocka
// test named after the row synthesizes the model with `garlic synth` and the row's arguments,
// then checks garlic against llama.cpp's logits for it (written by
// tools/reference/make-references.sh): the tokenization of every prompt of prompts.txt, the
// logits of every prompt position within the row's relative tolerance, the argmax wherever
// the reference's top-2 gap is robust, and the prompt as one batch against the same prompt
// fed one token at a time. Needs no ../shared, so it runs everywhere the suite runs.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "tokenizer/tokenizer.h"
#include "util.h"

enum { MAX_ROWS = 64, MAX_PROMPTS = 8, N_CTX = 512 };

static const char data_dir[] = "tests/data/arch";

static test_ref_row rows[MAX_ROWS];
static size_t n_rows;
static char table_error[512]; // why models.tsv could not be read, or ""

// A run state with a one-sequence F32 KV pool of its own.
typedef struct runner {
    model_state *s;
    kv_cache *kv;
    kv_seq seq;
} runner;

static runner *runner_new(const model *m, uint32_t batch, uint32_t logit_rows)
{
    model_state_config cfg = {
        .n_ctx = N_CTX, .max_batch = batch, .logit_rows = logit_rows, .n_threads = 2};
    garlic_error err;
    runner *r = calloc(1, sizeof *r);
    assert_non_null(r);
    if (!(r->s = model_state_new(m, &cfg, &err)) ||
        !(r->kv = model_kv_new_single(m, KV_TYPE_F32, N_CTX, &err)))
        fail_msg("%s", err.message);
    kv_seq_init(&r->seq);
    if (kv_seq_reserve(r->kv, &r->seq, N_CTX, &err))
        fail_msg("%s", err.message);
    return r;
}

static void runner_free(runner *r)
{
    kv_seq_deinit(r->kv, &r->seq);
    kv_cache_free(r->kv);
    model_state_free(r->s);
    free(r);
}

// Lowest id wins a tie, as in the reference.
static uint32_t argmax(const float *x, uint32_t n)
{
    uint32_t best = 0;
    for (uint32_t i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return best;
}

static double max_abs(const float *x, uint32_t n)
{
    double m = 0;
    for (uint32_t i = 0; i < n; i++)
        m = fmax(m, fabs(x[i]));
    return m;
}

// max |a - ref| / max |ref| over one row of n values.
static double row_error(const float *a, const float *ref, uint32_t n)
{
    double diff = 0;
    for (uint32_t i = 0; i < n; i++)
        diff = fmax(diff, fabs((double)a[i] - ref[i]));
    return diff / max_abs(ref, n);
}

// Compares n_pos rows of got with ref (both n_pos x n_vocab): returns the worst relative
// error and fails when a row's argmax differs where the reference's top-2 gap exceeds
// 2 * tol * max|ref| (only there can two logits each off by the tolerance not swap).
static double compare_rows(const char *what, const float *got, const float *ref, int n_pos,
                           uint32_t n_vocab, double tol)
{
    double worst = 0;
    for (int pos = 0; pos < n_pos; pos++) {
        const float *g = got + (size_t)pos * n_vocab, *r = ref + (size_t)pos * n_vocab;
        worst = fmax(worst, row_error(g, r, n_vocab));
        uint32_t a = argmax(r, n_vocab), b = argmax(g, n_vocab);
        float second = -INFINITY;
        for (uint32_t i = 0; i < n_vocab; i++)
            if (i != a && r[i] > second)
                second = r[i];
        double gap = (double)r[a] - second;
        if (a != b && gap > 2 * tol * max_abs(r, n_vocab))
            fail_msg("%s position %d: argmax %u, reference %u (top-2 gap %.3g, max|logit| %.3g)",
                     what, pos, b, a, gap, max_abs(r, n_vocab));
    }
    return worst;
}

// Synthesizes the row's model into the temporary folder; returns its path (a copy to free).
static char *synthesize(const test_ref_row *row)
{
    char name[96];
    snprintf(name, sizeof name, "%s.gguf", row->stem);
    char *path = strdup(test_temp_path(name));
    assert_non_null(path);
    char *out = NULL, *err = NULL;
    int rc = test_run(&out, &err, "'%s' synth '%s' %s", test_garlic(), path, row->args);
    if (rc != 0)
        fail_msg("%s: garlic synth %s: exit %d\n%s%s", row->stem, row->args, rc, out, err);
    free(out);
    free(err);
    return path;
}

// Reads P<i>.logits, which must hold n_pos rows of n_vocab float32.
static float *read_logits(const char *path, int n_pos, uint32_t n_vocab)
{
    size_t size = 0;
    float *ref = test_read_file(path, &size);
    if (!ref)
        fail_msg("%s: missing (run tools/reference/make-references.sh)", path);
    if (size != (size_t)n_pos * n_vocab * sizeof *ref)
        fail_msg("%s: %zu bytes, want %d positions x %u logits x 4", path, size, n_pos, n_vocab);
    return ref;
}

// The whole row: every prompt's ids, logits and batch-vs-one-by-one agreement.
static void test_arch_row(void **state)
{
    const test_ref_row *row = *state;
    char *model_path = synthesize(row);
    garlic_error err;
    model *m = model_load(model_path, &err);
    if (!m)
        fail_msg("%s: %s", row->stem, err.message);
    model_prefault(m, NULL, NULL); // as a server loads it: packed where the kernels pack
    tokenizer *tok = tokenizer_load(m->file, &err);
    if (!tok)
        fail_msg("%s: %s", row->stem, err.message);
    char *prompt_text, *prompts[MAX_PROMPTS];
    int n_prompts = test_ref_prompts(data_dir, &prompt_text, prompts, MAX_PROMPTS);
    const uint32_t V = m->hp.n_vocab;
    runner *batch = runner_new(m, N_CTX, N_CTX), *single = runner_new(m, 1, 1);
    // One-by-one must agree to float rounding for F32 weights, to the row's tolerance else
    // (F32 is the 1e-4 family; garlic's own test_forward asserts exact equality).
    const double seq_tol = row->tol <= 1e-4 ? 1e-5 : row->tol;
    double worst = 0, worst_seq = 0;
    for (int p = 0; p < n_prompts; p++) {
        char path[512];
        int32_t ids[N_CTX];
        snprintf(path, sizeof path, "%s/%s/P%d.ids", data_dir, row->stem, p + 1);
        int n = test_ref_check_ids(tok, prompts[p], path, ids, N_CTX,
                                   "tools/reference/make-references.sh");
        snprintf(path, sizeof path, "%s/%s/P%d.logits", data_dir, row->stem, p + 1);
        float *ref = read_logits(path, n, V);
        const float *logits;
        if (model_forward(batch->s, batch->kv, &batch->seq, ids, (uint32_t)n, 0, true, &logits,
                          &err))
            fail_msg("%s: %s", path, err.message);
        float *got = malloc((size_t)n * V * sizeof *got);
        assert_non_null(got);
        memcpy(got, logits, (size_t)n * V * sizeof *got);
        double rel = compare_rows(path, got, ref, n, V, row->tol);
        if (rel > row->tol)
            fail_msg("%s: logits differ by %.3g of max|logit|, tolerance %g", path, rel, row->tol);
        worst = fmax(worst, rel);
        for (int i = 0; i < n; i++) {
            if (model_forward(single->s, single->kv, &single->seq, &ids[i], 1, (uint32_t)i, false,
                              &logits, &err))
                fail_msg("%s position %d one by one: %s", path, i, err.message);
            worst_seq = fmax(worst_seq, row_error(logits, got + (size_t)i * V, V));
        }
        if (worst_seq > seq_tol)
            fail_msg("%s: one token at a time differs from the batch by %.3g, bound %g", path,
                     worst_seq, seq_tol);
        free(got);
        free(ref);
    }
    print_message("%-16s worst logit error %.2e of max|logit| (tolerance %g); one by one vs "
                  "batch %.2e\n",
                  row->stem, worst, row->tol, worst_seq);
    runner_free(batch);
    runner_free(single);
    free(prompt_text);
    tokenizer_free(tok);
    model_free(m);
    free(model_path);
}

static void test_table(void **state)
{
    (void)state;
    fail_msg("%s", table_error);
}

int main(void)
{
    static struct CMUnitTest tests[MAX_ROWS];
    size_t n = 0;
    int got = test_ref_table(data_dir, rows, MAX_ROWS, table_error, sizeof table_error);
    n_rows = got > 0 ? (size_t)got : 0;
    if (got < 0) {
        tests[n++] = (struct CMUnitTest){.name = "models.tsv", .test_func = test_table};
    } else {
        for (size_t i = 0; i < n_rows; i++)
            tests[n++] = (struct CMUnitTest){
                .name = rows[i].stem, .test_func = test_arch_row, .initial_state = &rows[i]};
    }
    // The rows come from a file, so the count is known only now: the function the
    // cmocka_run_group_tests_name macro expands to takes it as an argument.
    return _cmocka_run_group_tests("arch", tests, n, NULL, NULL);
}
