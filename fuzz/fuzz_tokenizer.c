// SPDX-License-Identifier: MIT
// libFuzzer target for the tokenizer: arbitrary bytes are tokenized with small vocabularies
// built in-process (byte-level BPE under each pre-tokenizer, SentencePiece, WordPiece), then
// decoded in one call and streamed. With a lossless vocabulary, valid UTF-8 must come back
// exactly when special tokens are not parsed; every streamed chunk must be whole UTF-8. The
// same bytes also go through NFC, which must be idempotent and keep valid UTF-8 valid.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/utf8.h"
#include "gguf/gguf.h"
#include "tokenizer/internal.h"
#include "tokenizer/tokenizer.h"

static const char *const pres[] = {"default",      "gpt-2",          "llama-bpe",   "qwen2",
                                   "deepseek-llm", "deepseek-coder", "falcon",      "starcoder",
                                   "mpt",          "gpt-4o",         "deepseek-v3", "kimi-k2"};
enum { N_PRE = sizeof pres / sizeof pres[0], N_VOCAB = N_PRE + 2 }; // + SPM, WPM

static const char *const merges[] = {
    "h e", "l l",          "he ll",         "hell o",         "\xc4\xa0 w",
    "o r", "\xc4\xa0w or", "\xc4\xa0wor l", "\xc4\xa0worl d", "1 2"};
static const char *const pieces[] = {"\xe2\x96\x81",
                                     "h",
                                     "e",
                                     "l",
                                     "o",
                                     "w",
                                     "r",
                                     "d",
                                     "he",
                                     "ll",
                                     "hell",
                                     "hello",
                                     "\xe2\x96\x81hello",
                                     "or",
                                     "wor",
                                     "worl",
                                     "world",
                                     "\xe2\x96\x81world",
                                     "\xe4\xb8\xad"};

static const char *const words[] = {
    "[PAD]",           "[UNK]", "[CLS]", "[SEP]", "\xe2\x96\x81hello", "\xe2\x96\x81world",
    "\xe2\x96\x81h",   "e",     "l",     "o",     "\xe2\x96\x81,",     "\xe2\x96\x81\xe4\xb8\xad",
    "\xe2\x96\x81\x61"};
enum { N_WORDS = sizeof words / sizeof words[0] };

static tokenizer *vocabs[N_VOCAB];

// Writes a small WordPiece vocabulary to path.
static int write_wordpiece(const char *path)
{
    int32_t types[N_WORDS];
    for (size_t i = 0; i < N_WORDS; i++)
        types[i] = i < 4 ? 3 : 1;
    gguf_writer *w = gguf_writer_new();
    garlic_error err;
    int rc = !w || gguf_writer_set_str(w, "tokenizer.ggml.model", "bert") ||
        gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", words, N_WORDS) ||
        gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, types, N_WORDS) ||
        gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", 1) ||
        gguf_writer_set_u32(w, "tokenizer.ggml.cls_token_id", 2) ||
        gguf_writer_set_u32(w, "tokenizer.ggml.seperator_token_id", 3) ||
        gguf_writer_write(w, path, NULL, NULL, &err);
    gguf_writer_free(w);
    return rc;
}

// Writes one vocabulary (gpt2 with the given pre, or llama when pre is NULL) to path.
static int write_vocab(const char *path, const char *pre)
{
    static char text[300][16];
    const char *ptr[300];
    int32_t types[300];
    float scores[300];
    int n = 0;
    if (!pre) {
        const char *first[] = {"<unk>", "<s>", "</s>"};
        for (int i = 0; i < 3; i++, n++)
            snprintf(text[n], 16, "%s", first[i]), types[n] = i ? 3 : 2, scores[n] = 0;
    }
    for (int b = 0; b < 256; b++, n++) {
        unsigned cp = (unsigned)b; // the byte-level BPE alphabet
        if (b <= 32)
            cp = 256u + (unsigned)b;
        else if (b >= 127 && b <= 160)
            cp = 289u + (unsigned)b - 127;
        else if (b == 173)
            cp = 323;
        if (!pre)
            snprintf(text[n], 16, "<0x%02X>", b);
        else if (cp < 0x80)
            snprintf(text[n], 16, "%c", (char)cp);
        else
            snprintf(text[n], 16, "%c%c", (char)(0xc0 | cp >> 6), (char)(0x80 | (cp & 0x3f)));
        types[n] = pre ? 1 : 6;
        scores[n] = 0;
    }
    for (size_t i = 0; !pre && i < sizeof pieces / sizeof *pieces; i++, n++)
        snprintf(text[n], 16, "%s", pieces[i]), types[n] = 1, scores[n] = (float)strlen(pieces[i]);
    for (size_t i = 0; pre && i < sizeof merges / sizeof *merges; i++, n++) {
        const char *sp = strchr(merges[i], ' ');
        snprintf(text[n], 16, "%.*s%s", (int)(sp - merges[i]), merges[i], sp + 1);
        types[n] = 1;
    }
    int32_t bos = 1; // SPM: <s>
    if (pre) {       // after a USER_DEFINED token SPM would add a space, so BPE only
        bos = n;
        snprintf(text[n], 16, "<|end|>"), types[n++] = 3;
        snprintf(text[n], 16, "<tool>"), types[n++] = 4;
    }
    for (int i = 0; i < n; i++)
        ptr[i] = text[i];
    gguf_writer *w = gguf_writer_new();
    garlic_error err;
    if (!w)
        return -1;
    int rc = gguf_writer_set_str(w, "tokenizer.ggml.model", pre ? "gpt2" : "llama");
    if (pre)
        rc |= gguf_writer_set_str(w, "tokenizer.ggml.pre", pre);
    rc |= gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", ptr, (uint64_t)n);
    rc |= gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, types, (uint64_t)n);
    if (pre)
        rc |= gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", merges,
                                      sizeof merges / sizeof *merges);
    else
        rc |= gguf_writer_set_arr(w, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, scores,
                                  (uint64_t)n);
    rc |= gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)bos);
    rc |= gguf_writer_write(w, path, NULL, NULL, &err);
    gguf_writer_free(w);
    return rc;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    char path[] = "/tmp/garlic-fuzz-vocab-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        abort(); // the harness cannot start; abort() is how a fuzz driver reports trouble
    close(fd);
    for (int i = 0; i < N_VOCAB; i++) {
        garlic_error err;
        int rc = i <= N_PRE ? write_vocab(path, i < N_PRE ? pres[i] : NULL) : write_wordpiece(path);
        if (rc || !(vocabs[i] = tokenizer_open(path, &err))) {
            fprintf(stderr, "fuzz_tokenizer: vocabulary %d: %s\n", i, err.message);
            abort();
        }
    }
    unlink(path);
    return 0;
}

// Streams ids through the UTF-8-safe decoder; every chunk must be valid UTF-8, and for valid
// input the stream must equal the one-call decode.
static void check_stream(const tokenizer *t, const tokenizer_ids *ids, const tokenizer_text *text)
{
    size_t cap = tokenizer_stream_max_output(t), w, total = 0;
    char *chunk = malloc(cap);
    tokenizer_stream s;
    tokenizer_stream_init(&s, t, 0);
    bool same = true;
    for (size_t i = 0; chunk && i < ids->n; i++) {
        garlic_error err;
        if (tokenizer_stream_push(&s, ids->ids[i], chunk, cap, &w, &err) || !utf8_valid(chunk, w))
            abort();
        same = same && total + w <= text->len && memcmp(text->data + total, chunk, w) == 0;
        total += w;
    }
    if (chunk && utf8_valid(text->data, text->len) && (!same || total != text->len))
        abort();
    free(chunk);
}

static void free_nfc(char *p) { garlic_free(p); }

// NFC(NFC(x)) == NFC(x), and NFC of valid UTF-8 is valid UTF-8.
static void check_nfc(const char *text, size_t len)
{
    char *once, *twice;
    size_t n1, n2;
    if (tokenizer_nfc(text, len, &once, &n1) != GARLIC_OK)
        return;
    if (tokenizer_nfc(once, n1, &twice, &n2) == GARLIC_OK) {
        if (n1 != n2 || memcmp(once, twice, n1) != 0)
            abort();
        free_nfc(twice);
    }
    if (utf8_valid(text, len) && !utf8_valid(once, n1))
        abort();
    free_nfc(once);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const tokenizer *t = vocabs[data[0] % N_VOCAB];
    unsigned flags = (data[0] / N_VOCAB) & (TOKENIZER_ADD_SPECIAL | TOKENIZER_PARSE_SPECIAL);
    char *text = malloc(size - 1 ? size - 1 : 1); // exactly sized, for ASan
    if (!text)
        return 0;
    memcpy(text, data + 1, size - 1);
    tokenizer_ids ids = {0};
    tokenizer_text out = {0};
    garlic_error err;
    if (tokenizer_encode(t, text, size - 1, flags, &ids, &err) == GARLIC_OK &&
        tokenizer_decode(t, ids.ids, ids.n, 0, &out, &err) == GARLIC_OK) {
        bool lossless_case = tokenizer_is_lossless(t) && !(flags & TOKENIZER_PARSE_SPECIAL) &&
            utf8_valid(text, size - 1) &&
            !memmem(text, size - 1, "\xe2\x96\x81", 3); // SPM's space mark
        if (lossless_case && (out.len != size - 1 || memcmp(out.data, text, size - 1) != 0))
            abort();
        check_stream(t, &ids, &out);
    }
    check_nfc(text, size - 1);
    tokenizer_ids_deinit(&ids);
    tokenizer_text_deinit(&out);
    free(text);
    return 0;
}
