// SPDX-License-Identifier: MIT
// Tokenizer throughput: for every vocabulary in SHARED/tokenizer (default ../shared), the
// test inputs concatenated and repeated to about 1 MiB are encoded (no BOS, special tokens
// not parsed) and decoded, best of 3. Reported, never asserted; skipped with a message when
// the shared folder is absent.
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tokenizer/tokenizer.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf)
        buf[n] = '\0', *len = (size_t)n;
    return buf;
}

static void bench_vocab(const char *dir, const char *name, const char *text, size_t len)
{
    char path[8400];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    garlic_error err;
    tokenizer *t = tokenizer_open(path, &err);
    if (!t) {
        printf("%-32s %s\n", name, err.message);
        return;
    }
    tokenizer_ids ids = {0};
    tokenizer_text out = {0};
    double enc = 1e9, dec = 1e9;
    for (int r = 0; r < 3; r++) {
        ids.n = 0, out.len = 0;
        double t0 = now();
        if (tokenizer_encode(t, text, len, 0, &ids, &err))
            break;
        double t1 = now();
        if (tokenizer_decode(t, ids.ids, ids.n, 0, &out, &err))
            break;
        double t2 = now();
        enc = t1 - t0 < enc ? t1 - t0 : enc;
        dec = t2 - t1 < dec ? t2 - t1 : dec;
    }
    printf("%-32s %10zu %12.1f %12.1f\n", name, ids.n, len / enc / 1e6, len / dec / 1e6);
    tokenizer_ids_deinit(&ids);
    tokenizer_text_deinit(&out);
    tokenizer_free(t);
}

int main(void)
{
    const char *shared = getenv("SHARED");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/tokenizer", shared && *shared ? shared : "../shared");
    size_t inp_len;
    char inp_path[4200];
    snprintf(inp_path, sizeof inp_path, "%s/ggml-vocab-gpt-2.gguf.inp", dir);
    char *inp = read_all(inp_path, &inp_len);
    DIR *d = opendir(dir);
    if (!inp || !d) {
        printf("skipped: %s is absent\n", dir);
        free(inp);
        if (d)
            closedir(d);
        return 0;
    }
    size_t reps = (1u << 20) / inp_len + 1, len = reps * inp_len;
    char *text = malloc(len + 1);
    for (size_t i = 0; i < reps; i++)
        memcpy(text + i * inp_len, inp, inp_len);
    text[len] = '\0';
    printf("%-32s %10s %12s %12s   (%zu bytes of mixed text)\n", "vocabulary", "tokens",
           "encode MB/s", "decode MB/s", len);
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n > 5 && strcmp(e->d_name + n - 5, ".gguf") == 0)
            bench_vocab(dir, e->d_name, text, len);
    }
    closedir(d);
    free(text);
    free(inp);
    return 0;
}
