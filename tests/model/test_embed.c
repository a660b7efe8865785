// SPDX-License-Identifier: MIT
// Embedding fidelity and pooling: for each row of tests/data/embed/models.tsv (BERT and
// nomic-bert encoders, a Qwen3 decoder with last-token pooling), one cmocka test synthesizes
// the model with `garlic synth` and checks garlic's tokenization of every prompt of
// prompts.txt and its pooled, L2-normalized embedding against llama.cpp's (written by
// tools/reference/make-embed-references.sh) within the row's relative tolerance: max |garlic -
// reference| / max |reference| over the vector, 1e-4 for F32 weights. Unit tests cover the
// pooling of rows in chunks and the normalization.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "tokenizer/tokenizer.h"
#include "util.h"

enum { MAX_ROWS = 16, MAX_PROMPTS = 8, N_CTX = 512 };

static const char data_dir[] = "tests/data/embed";

static test_ref_row rows[MAX_ROWS];
static size_t n_rows;
static char table_error[512]; // why models.tsv could not be read, or ""

// Synthesizes the row's model into the temporary folder; returns its path (a copy to free).
// A row that copies a vocabulary from ../shared is skipped without it (and reads it from
// $SHARED when set).
static char *synthesize(const test_ref_row *row)
{
    static const char shared[] = "../shared/";
    char args[sizeof row->args + 512];
    const char *at = strstr(row->args, shared);
    if (at && !test_shared_dir()) {
        print_message("skipped: ../shared is absent (set SHARED=path to run this)\n");
        skip();
    }
    if (at)
        snprintf(args, sizeof args, "%.*s%s/%s", (int)(at - row->args), row->args,
                 test_shared_dir(), at + sizeof shared - 1);
    else
        snprintf(args, sizeof args, "%s", row->args);
    char name[96];
    snprintf(name, sizeof name, "%s.gguf", row->stem);
    char *path = strdup(test_temp_path(name));
    assert_non_null(path);
    char *out = NULL, *err = NULL;
    int rc = test_run(&out, &err, "'%s' synth '%s' %s", test_garlic(), path, args);
    if (rc != 0)
        fail_msg("%s: garlic synth %s: exit %d\n%s%s", row->stem, args, rc, out, err);
    free(out);
    free(err);
    return path;
}

// Reads P<i>.embd, which must hold dim float32.
static float *read_embd(const char *path, uint32_t dim)
{
    size_t size = 0;
    float *ref = test_read_file(path, &size);
    if (!ref)
        fail_msg("%s: missing (run tools/reference/make-embed-references.sh)", path);
    if (size != (size_t)dim * sizeof *ref)
        fail_msg("%s: %zu bytes, want %u float32", path, size, dim);
    return ref;
}

// max |a - ref| / max |ref| over n values.
static double rel_error(const float *a, const float *ref, uint32_t n)
{
    double diff = 0, top = 0;
    for (uint32_t i = 0; i < n; i++) {
        diff = fmax(diff, fabs((double)a[i] - ref[i]));
        top = fmax(top, fabs(ref[i]));
    }
    return diff / top;
}

// The whole row: every prompt's ids and embedding.
static void test_embed_row(void **state)
{
    const test_ref_row *row = *state;
    char *model_path = synthesize(row);
    garlic_error err;
    model *m = model_load(model_path, &err);
    if (!m)
        fail_msg("%s: %s", row->stem, err.message);
    model_prefault(m, NULL, NULL);
    tokenizer *tok = tokenizer_load(m->file, &err);
    if (!tok)
        fail_msg("%s: %s", row->stem, err.message);
    char *prompt_text, *prompts[MAX_PROMPTS];
    int n_prompts = test_ref_prompts(data_dir, &prompt_text, prompts, MAX_PROMPTS);
    uint32_t dim = m->hp.dim;
    model_state_config cfg = {.n_ctx = N_CTX, .max_batch = N_CTX, .logit_rows = 1, .n_threads = 2};
    model_state *s = model_state_new(m, &cfg, &err);
    kv_cache *kv = s ? model_kv_new_single(m, KV_TYPE_F32, N_CTX, &err) : NULL;
    if (!kv)
        fail_msg("%s: %s", row->stem, err.message);
    kv_seq seq;
    kv_seq_init(&seq);
    if (kv_seq_reserve(kv, &seq, N_CTX, &err))
        fail_msg("%s", err.message);
    double worst = 0;
    float *got = calloc(dim, sizeof *got);
    assert_non_null(got);
    for (int p = 0; p < n_prompts; p++) {
        char path[512];
        int32_t ids[N_CTX];
        snprintf(path, sizeof path, "%s/%s/P%d.ids", data_dir, row->stem, p);
        int n = test_ref_check_ids(tok, prompts[p], path, ids, N_CTX,
                                   "tools/reference/make-embed-references.sh");
        snprintf(path, sizeof path, "%s/%s/P%d.embd", data_dir, row->stem, p);
        float *ref = read_embd(path, dim);
        const float *hidden;
        if (model_forward_hidden(s, kv, &seq, ids, (uint32_t)n, &hidden, &err))
            fail_msg("%s: %s", path, err.message);
        memset(got, 0, dim * sizeof *got);
        model_pool_rows(m->hp.pooling, hidden, dim, (uint32_t)n, 0, (uint32_t)n, dim, got);
        model_pool_finish(m->hp.pooling, got, (uint32_t)n, dim);
        model_embed_normalize(got, dim);
        double rel = rel_error(got, ref, dim);
        if (rel > row->tol)
            fail_msg("%s: the embedding differs by %.3g of max|ref|, tolerance %g", path, rel,
                     row->tol);
        worst = fmax(worst, rel);
        free(ref);
    }
    print_message("%-20s pooling %-4s worst error %.2e of max|ref| (tolerance %g)\n", row->stem,
                  model_pooling_name(m->hp.pooling), worst, row->tol);
    free(got);
    kv_seq_deinit(kv, &seq);
    kv_cache_free(kv);
    model_state_free(s);
    free(prompt_text);
    tokenizer_free(tok);
    model_free(m);
    free(model_path);
}

// Pooling chunk by chunk gives what pooling the whole input at once gives: the mean of every
// row, the first row (CLS), the last row (last); none takes nothing.
static void test_pool_chunks(void **state)
{
    (void)state;
    enum { N = 7, DIM = 3 };
    float hid[N * DIM];
    for (int i = 0; i < N * DIM; i++)
        hid[i] = (float)(i * 7 % 11) - 4.0f;
    for (int p = MODEL_POOLING_NONE; p <= MODEL_POOLING_LAST; p++) {
        float whole[DIM] = {0}, chunked[DIM] = {0};
        model_pool_rows((model_pooling)p, hid, DIM, N, 0, N, DIM, whole);
        model_pool_finish((model_pooling)p, whole, N, DIM);
        model_pool_rows((model_pooling)p, hid, DIM, 3, 0, N, DIM, chunked);
        model_pool_rows((model_pooling)p, hid + 3 * DIM, DIM, 4, 3, N, DIM, chunked);
        model_pool_finish((model_pooling)p, chunked, N, DIM);
        for (int d = 0; d < DIM; d++) {
            float want = 0;
            for (int i = 0; i < N; i++)
                want += p == MODEL_POOLING_MEAN ? hid[i * DIM + d] / N : 0;
            want = p == MODEL_POOLING_CLS ? hid[d]
                : p == MODEL_POOLING_LAST ? hid[(N - 1) * DIM + d]
                                          : want;
            assert_float_equal(whole[d], want, 1e-6);
            assert_float_equal(chunked[d], want, 1e-6);
        }
    }
}

// Normalization gives unit length in the same direction; a zero vector stays zero.
static void test_normalize(void **state)
{
    (void)state;
    float v[4] = {3, 0, -4, 0}, z[3] = {0, 0, 0};
    model_embed_normalize(v, 4);
    assert_float_equal(v[0], 0.6f, 1e-7);
    assert_float_equal(v[2], -0.8f, 1e-7);
    assert_float_equal(v[1], 0.0f, 0);
    model_embed_normalize(z, 3);
    for (int i = 0; i < 3; i++)
        assert_float_equal(z[i], 0.0f, 0);
    assert_string_equal(model_pooling_name(MODEL_POOLING_CLS), "cls");
}

static void test_table(void **state)
{
    (void)state;
    fail_msg("%s", table_error);
}

int main(void)
{
    static struct CMUnitTest tests[MAX_ROWS + 2];
    size_t n = 0;
    tests[n++] = (struct CMUnitTest){.name = "pool_chunks", .test_func = test_pool_chunks};
    tests[n++] = (struct CMUnitTest){.name = "normalize", .test_func = test_normalize};
    int got = test_ref_table(data_dir, rows, MAX_ROWS, table_error, sizeof table_error);
    n_rows = got > 0 ? (size_t)got : 0;
    if (got < 0) {
        tests[n++] = (struct CMUnitTest){.name = "models.tsv", .test_func = test_table};
    } else {
        for (size_t i = 0; i < n_rows; i++)
            tests[n++] = (struct CMUnitTest){
                .name = rows[i].stem, .test_func = test_embed_row, .initial_state = &rows[i]};
    }
    return _cmocka_run_group_tests("embed", tests, n, NULL, NULL);
}
