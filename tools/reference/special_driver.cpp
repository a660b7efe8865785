// SPDX-License-Identifier: MIT
// The special-token reference driver: a small program against llama.cpp's public C API that
// writes, for one vocabulary, strings spelling its special tokens out in text and the ids
// llama_tokenize gives for them with special-token parsing off and on (never adding BOS/EOS).
// The tokens are those llama.cpp itself treats as special after loading (attributes CONTROL,
// USER_DEFINED or UNKNOWN, so its text-based promotions are included): up to 24 CONTROL or
// UNKNOWN and 12 USER_DEFINED ones, spread evenly over the ids. Files, in OUT_DIR:
// NAME.inp (strings, each followed by "\n__ggml_vocab_test__\n"), NAME.plain.out and
// NAME.special.out (one line of " id id ..." per string). Run by make-special-references.sh.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "llama.h"

static void log_quiet(enum ggml_log_level, const char *, void *) {}

static const char separator[] = "\n__ggml_vocab_test__\n";

// The ids of text, or false when llama_tokenize fails.
static bool tokenize(const llama_vocab *vocab, const std::string &text, bool parse_special,
                     std::vector<llama_token> &ids)
{
    ids.assign(text.size() + 16, 0);
    int32_t n = llama_tokenize(vocab, text.data(), (int32_t)text.size(), ids.data(),
                               (int32_t)ids.size(), false, parse_special);
    if (n < 0) {
        ids.assign((size_t)-n, 0);
        n = llama_tokenize(vocab, text.data(), (int32_t)text.size(), ids.data(),
                           (int32_t)ids.size(), false, parse_special);
    }
    if (n < 0)
        return false;
    ids.resize((size_t)n);
    return true;
}

// Up to limit of the given ids, spread evenly from the first to the last.
static std::vector<llama_token> spread(const std::vector<llama_token> &ids, size_t limit)
{
    if (ids.size() <= limit)
        return ids;
    std::vector<llama_token> out;
    for (size_t i = 0; i < limit; i++)
        out.push_back(ids[i * (ids.size() - 1) / (limit - 1)]);
    return out;
}

// The test strings for the chosen tokens: each alone, inside words, after and before spaces,
// twice in a row, next to another special token, and cut short by one byte.
static std::vector<std::string> make_strings(const llama_vocab *vocab,
                                             const std::vector<llama_token> &chosen)
{
    std::vector<std::string> out;
    for (size_t i = 0; i < chosen.size(); i++) {
        std::string t = llama_vocab_get_text(vocab, chosen[i]);
        std::string u = llama_vocab_get_text(vocab, chosen[(i + 1) % chosen.size()]);
        out.push_back(t);
        out.push_back("Hello" + t + "world");
        out.push_back(" " + t + " x\n");
        out.push_back(t + t);
        out.push_back("a " + t + u + " b");
        if (t.size() > 1)
            out.push_back("<<" + t.substr(0, t.size() - 1) + " end");
    }
    std::vector<std::string> kept;
    for (const std::string &s : out)
        if (s.find(separator) == std::string::npos && s.find('\0') == std::string::npos)
            kept.push_back(s);
    return kept;
}

static bool write_line(FILE *f, const std::vector<llama_token> &ids)
{
    for (llama_token id : ids)
        if (fprintf(f, " %d", id) < 0)
            return false;
    return fputc('\n', f) != EOF;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s VOCAB.gguf OUT_DIR NAME\n", argv[0]);
        return 2;
    }
    llama_log_set(log_quiet, nullptr);
    llama_backend_init();
    llama_model_params mp = llama_model_default_params();
    mp.vocab_only = true;
    llama_model *model = llama_model_load_from_file(argv[1], mp);
    if (!model) {
        fprintf(stderr, "%s: llama.cpp could not load the vocabulary\n", argv[1]);
        return 1;
    }
    const llama_vocab *vocab = llama_model_get_vocab(model);
    std::vector<llama_token> control, user;
    for (llama_token id = 0; id < llama_vocab_n_tokens(vocab); id++) {
        int attr = llama_vocab_get_attr(vocab, id);
        if (!*llama_vocab_get_text(vocab, id))
            continue;
        if (attr & (LLAMA_TOKEN_ATTR_CONTROL | LLAMA_TOKEN_ATTR_UNKNOWN))
            control.push_back(id);
        else if (attr & LLAMA_TOKEN_ATTR_USER_DEFINED)
            user.push_back(id);
    }
    std::vector<llama_token> chosen = spread(control, 24), more = spread(user, 12);
    chosen.insert(chosen.end(), more.begin(), more.end());
    std::vector<std::string> strings = make_strings(vocab, chosen);
    std::string stem = std::string(argv[2]) + "/" + argv[3];
    FILE *inp = fopen((stem + ".inp").c_str(), "wb");
    FILE *plain = fopen((stem + ".plain.out").c_str(), "wb");
    FILE *special = fopen((stem + ".special.out").c_str(), "wb");
    bool ok = inp && plain && special;
    std::vector<llama_token> ids;
    for (size_t i = 0; ok && i < strings.size(); i++) {
        ok = fwrite(strings[i].data(), 1, strings[i].size(), inp) == strings[i].size() &&
            fputs(separator, inp) != EOF && tokenize(vocab, strings[i], false, ids) &&
            write_line(plain, ids) && tokenize(vocab, strings[i], true, ids) &&
            write_line(special, ids);
    }
    for (FILE *f : {inp, plain, special})
        if (f && fclose(f) != 0)
            ok = false;
    if (!ok)
        fprintf(stderr, "%s: writing %s.* failed\n", argv[1], stem.c_str());
    else
        printf("%s: %zu special tokens (%zu user-defined), %zu strings\n", argv[3], chosen.size(),
               more.size(), strings.size());
    llama_model_free(model);
    llama_backend_free();
    return ok ? 0 : 1;
}
