// SPDX-License-Identifier: MIT
// The reference driver: a small program against llama.cpp's public C API (include/llama.h)
// that writes the prompt logits tests/model/test_arch.c compares garlic with. It is built
// outside the garlic build, by tools/reference/make-references.sh, against a llama.cpp
// checkout; nothing of llama.cpp enters the repository. For each prompt it tokenizes (BOS
// added, special-token text not parsed), evaluates the whole prompt as one llama_decode batch
// with logits for every position, under the reference settings of ../shared/reference
// (1 thread, F32 K and V cache, flash attention off, n_ctx 512), and writes
// OUT_DIR/P<i>.ids (the ids, space-separated, one line) and OUT_DIR/P<i>.logits (raw
// little-endian float32, one row of n_vocab values per prompt position).
//
// usage: driver MODEL.gguf OUT_DIR PROMPT...
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "llama.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the .logits files are little-endian");

enum { REF_N_CTX = 512 };

// llama.cpp's log, less its chatter: warnings and errors go to stderr.
static void log_quiet(enum ggml_log_level level, const char *text, void *user)
{
    (void)user;
    static bool last_shown = false; // a CONT line follows the level of the line it continues
    bool show = level == GGML_LOG_LEVEL_CONT ? last_shown : level >= GGML_LOG_LEVEL_WARN;
    if (level != GGML_LOG_LEVEL_CONT)
        last_shown = show;
    if (show)
        fputs(text, stderr);
}

// A context under the reference settings. n_batch and n_ubatch are the whole context, so a
// prompt (at most REF_N_CTX tokens) is one batch and one micro-batch.
static llama_context *context_new(llama_model *model)
{
    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = REF_N_CTX;
    cp.n_batch = REF_N_CTX;
    cp.n_ubatch = REF_N_CTX;
    cp.n_seq_max = 1;
    cp.n_threads = 1;
    cp.n_threads_batch = 1;
    cp.type_k = GGML_TYPE_F32;
    cp.type_v = GGML_TYPE_F32;
    cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    cp.no_perf = true;
    return llama_init_from_model(model, cp);
}

// Tokenizes text with BOS (add_special) and without parsing special-token text. Returns
// false (with a message) when the prompt is empty or longer than the context.
static bool tokenize(const llama_vocab *vocab, const std::string &text, int index,
                     std::vector<llama_token> &ids)
{
    ids.assign(REF_N_CTX, 0);
    int32_t n = llama_tokenize(vocab, text.data(), (int32_t)text.size(), ids.data(),
                               (int32_t)ids.size(), true, false);
    if (n <= 0 || n > REF_N_CTX) {
        fprintf(stderr, "prompt %d: tokenizes to %d tokens (1..%d allowed)\n", index, n, REF_N_CTX);
        return false;
    }
    ids.resize((size_t)n);
    return true;
}

static bool write_ids(const std::string &path, const std::vector<llama_token> &ids)
{
    FILE *f = fopen(path.c_str(), "w");
    if (!f) {
        perror(path.c_str());
        return false;
    }
    for (size_t i = 0; i < ids.size(); i++)
        fprintf(f, i ? " %d" : "%d", ids[i]);
    fputc('\n', f);
    if (fclose(f) != 0) {
        perror(path.c_str());
        return false;
    }
    return true;
}

// Evaluates ids as one batch, every position asking for logits, in a fresh context, and
// writes the rows in position order to path.
static bool write_logits(llama_model *model, const std::vector<llama_token> &ids, int32_t n_vocab,
                         const std::string &path)
{
    llama_context *ctx = context_new(model);
    if (!ctx) {
        fprintf(stderr, "%s: llama_init_from_model failed\n", path.c_str());
        return false;
    }
    int32_t n = (int32_t)ids.size();
    llama_batch batch = llama_batch_init(n, 0, 1);
    for (int32_t i = 0; i < n; i++) {
        batch.token[i] = ids[(size_t)i];
        batch.pos[i] = i;
        batch.n_seq_id[i] = 1;
        batch.seq_id[i][0] = 0;
        batch.logits[i] = 1;
    }
    batch.n_tokens = n;
    bool ok = true;
    int rc = llama_decode(ctx, batch);
    if (rc != 0) {
        fprintf(stderr, "%s: llama_decode returned %d\n", path.c_str(), rc);
        ok = false;
    }
    FILE *f = ok ? fopen(path.c_str(), "wb") : nullptr;
    if (ok && !f) {
        perror(path.c_str());
        ok = false;
    }
    for (int32_t i = 0; ok && i < n; i++) {
        const float *row = llama_get_logits_ith(ctx, i);
        const char *why = !row ? "no logits" : nullptr;
        for (int32_t v = 0; !why && v < n_vocab; v++)
            if (!std::isfinite(row[v]))
                why = "a logit is not finite";
        if (!why && fwrite(row, sizeof *row, (size_t)n_vocab, f) != (size_t)n_vocab)
            why = "write failed";
        if (why) {
            fprintf(stderr, "%s: position %d: %s\n", path.c_str(), i, why);
            ok = false;
        }
    }
    if (f && fclose(f) != 0) {
        perror(path.c_str());
        ok = false;
    }
    llama_batch_free(batch);
    llama_free(ctx);
    return ok;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s MODEL.gguf OUT_DIR PROMPT...\n", argv[0]);
        return 2;
    }
    const char *model_path = argv[1];
    std::string out_dir = argv[2];
    llama_log_set(log_quiet, nullptr);
    llama_backend_init();
    llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    llama_model *model = llama_model_load_from_file(model_path, mp);
    if (!model) {
        fprintf(stderr, "%s: llama.cpp could not load the model\n", model_path);
        llama_backend_free();
        return 1;
    }
    const llama_vocab *vocab = llama_model_get_vocab(model);
    int32_t n_vocab = llama_vocab_n_tokens(vocab);
    printf("system: %s\n", llama_print_system_info());
    printf("%s: n_vocab %d\n", model_path, n_vocab);
    int status = 0;
    for (int p = 3; p < argc && status == 0; p++) {
        int index = p - 2;
        std::vector<llama_token> ids;
        std::string stem = out_dir + "/P" + std::to_string(index);
        if (!tokenize(vocab, argv[p], index, ids) || !write_ids(stem + ".ids", ids) ||
            !write_logits(model, ids, n_vocab, stem + ".logits")) {
            status = 1;
            break;
        }
        printf("P%d (%zu tokens):", index, ids.size());
        for (llama_token id : ids)
            printf(" %d", id);
        printf("\n");
    }
    llama_model_free(model);
    llama_backend_free();
    return status;
}
