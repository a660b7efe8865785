// SPDX-License-Identifier: MIT
// The embedding reference driver: a small program against llama.cpp's public C API
// (include/llama.h) that writes the pooled, L2-normalized embeddings tests/model/test_embed.c
// compares garlic with. Built outside the garlic build by tools/reference/make-embed-references.sh
// against a llama.cpp checkout; nothing of llama.cpp enters the repository. For each prompt it
// tokenizes (special tokens added as the vocabulary says: [CLS] ... [SEP] for WordPiece, BOS
// for SentencePiece; special-token text not parsed), evaluates the whole prompt as one
// llama_decode batch in a fresh context with embeddings on and the model's own pooling
// (pooling_type), 1 thread, F32 K and V cache, flash attention off, n_ctx 512, and writes
// OUT_DIR/P<i>.ids (the ids, space-separated, one line) and OUT_DIR/P<i>.embd (raw
// little-endian float32: the sequence's pooled embedding divided by its Euclidean norm, as
// llama.cpp's embedding example prints it by default).
//
// usage: embed_driver MODEL.gguf OUT_DIR PROMPT...
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "llama.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the .embd files are little-endian");

enum { REF_N_CTX = 512 };

// llama.cpp's log, less its chatter: warnings and errors go to stderr.
static void log_quiet(enum ggml_log_level level, const char *text, void *user)
{
    (void)user;
    static bool last_shown = false;
    bool show = level == GGML_LOG_LEVEL_CONT ? last_shown : level >= GGML_LOG_LEVEL_WARN;
    if (level != GGML_LOG_LEVEL_CONT)
        last_shown = show;
    if (show)
        fputs(text, stderr);
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
    return fclose(f) == 0;
}

// Evaluates ids as one batch (sequence 0) in a fresh embedding context and writes the
// normalized pooled embedding to path.
static bool write_embedding(llama_model *model, const std::vector<llama_token> &ids,
                            const std::string &path)
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
    cp.embeddings = true;
    cp.no_perf = true;
    llama_context *ctx = llama_init_from_model(model, cp);
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
    bool ok = llama_decode(ctx, batch) == 0;
    const float *e = ok ? llama_get_embeddings_seq(ctx, 0) : nullptr;
    int32_t dim = llama_model_n_embd(model);
    if (!e) {
        fprintf(stderr, "%s: no pooled embedding (decode failed or pooling none)\n", path.c_str());
        ok = false;
    }
    std::vector<float> out;
    if (ok) {
        double sum = 0;
        for (int32_t i = 0; i < dim; i++)
            sum += (double)e[i] * e[i];
        double norm = std::sqrt(sum);
        for (int32_t i = 0; i < dim; i++)
            out.push_back(norm > 0 ? (float)(e[i] / norm) : 0.0f);
        FILE *f = fopen(path.c_str(), "wb");
        ok = f && fwrite(out.data(), sizeof(float), out.size(), f) == out.size();
        if (f && fclose(f) != 0)
            ok = false;
        if (!ok)
            perror(path.c_str());
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
    llama_log_set(log_quiet, nullptr);
    llama_backend_init();
    llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    llama_model *model = llama_model_load_from_file(argv[1], mp);
    if (!model) {
        fprintf(stderr, "%s: cannot load\n", argv[1]);
        return 1;
    }
    const llama_vocab *vocab = llama_model_get_vocab(model);
    std::string out_dir = argv[2];
    int rc = 0;
    for (int p = 3; p < argc && rc == 0; p++) {
        std::string text = argv[p];
        std::vector<llama_token> ids(REF_N_CTX);
        int32_t n = llama_tokenize(vocab, text.data(), (int32_t)text.size(), ids.data(),
                                   (int32_t)ids.size(), true, false);
        if (n <= 0 || n > REF_N_CTX) {
            fprintf(stderr, "prompt %d: tokenizes to %d tokens\n", p - 3, n);
            rc = 1;
            break;
        }
        ids.resize((size_t)n);
        std::string stem = out_dir + "/P" + std::to_string(p - 3);
        if (!write_ids(stem + ".ids", ids) || !write_embedding(model, ids, stem + ".embd"))
            rc = 1;
        else
            printf("P%d: %d tokens, %d values\n", p - 3, n, llama_model_n_embd(model));
    }
    printf("system: %s\n", llama_print_system_info());
    llama_model_free(model);
    llama_backend_free();
    return rc;
}
