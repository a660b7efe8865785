// SPDX-License-Identifier: MIT
// compare_logits MODEL IDS LOGITS: runs the token ids of IDS (one line, space-separated, as
// tools/reference/driver writes them) through garlic's forward pass on MODEL (a GGUF file or
// a Hugging Face folder) and prints the largest difference from LOGITS (raw float32, one row
// of n_vocab values per position, as the driver writes them), absolute and relative to the
// largest reference logit. Exit status 0, or 1 on an error. Built by check-convert.sh.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "model/model.h"

enum { MAX_TOKENS = 256 };

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: compare_logits MODEL IDS LOGITS\n");
        return 1;
    }
    garlic_error err = {0};
    model *m = model_load(argv[1], &err);
    if (!m) {
        fprintf(stderr, "%s\n", err.message);
        return 1;
    }
    FILE *f = fopen(argv[2], "r");
    int32_t ids[MAX_TOKENS];
    uint32_t n = 0;
    while (f && n < MAX_TOKENS && fscanf(f, "%d", &ids[n]) == 1)
        n++;
    if (f)
        fclose(f);
    model_state_config cfg = {.n_ctx = MAX_TOKENS, .max_batch = MAX_TOKENS,
                              .logit_rows = MAX_TOKENS, .n_threads = 1};
    model_state *s = model_state_new(m, &cfg, &err);
    kv_cache *kv = s ? model_kv_new_single(m, KV_TYPE_F32, MAX_TOKENS, &err) : NULL;
    kv_seq seq;
    kv_seq_init(&seq);
    const float *logits;
    if (!n || !kv || kv_seq_reserve(kv, &seq, MAX_TOKENS, &err) ||
        model_forward(s, kv, &seq, ids, n, 0, true, &logits, &err)) {
        fprintf(stderr, "%s: %s\n", argv[1], n ? err.message : "no token ids");
        return 1;
    }
    size_t values = (size_t)n * m->hp.n_vocab;
    float *ref = malloc(values * sizeof *ref);
    f = fopen(argv[3], "rb");
    size_t got = f && ref ? fread(ref, sizeof *ref, values, f) : 0;
    if (f)
        fclose(f);
    if (got != values) {
        fprintf(stderr, "%s: %zu values, %zu expected\n", argv[3], got, values);
        return 1;
    }
    double worst = 0, scale = 0;
    for (size_t i = 0; i < values; i++) {
        worst = fmax(worst, fabs((double)ref[i] - logits[i]));
        scale = fmax(scale, fabs((double)ref[i]));
    }
    printf("%u tokens: max |garlic - reference| %.3g, relative %.3g\n", n, worst,
           worst / (scale > 0 ? scale : 1));
    free(ref);
    kv_seq_deinit(kv, &seq);
    kv_cache_free(kv);
    model_state_free(s);
    model_free(m);
    return 0;
}
