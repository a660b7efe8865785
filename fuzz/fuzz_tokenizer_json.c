// SPDX-License-Identifier: MIT
// libFuzzer target for a Hugging Face folder's tokenizer (src/hf/tokenizer.c and
// tokenizer_config.c): the input is the folder's files separated by NUL bytes, in the order of
// hf_tokenizer_file (tokenizer.json, tokenizer_config.json, special_tokens_map.json,
// generation_config.json, config.json, chat_template.json, chat_template.jinja; an empty or
// missing part is an absent file). Metadata that hf_tokenizer_metadata_texts accepts must load
// as garlic's tokenizer (anything else is a bug: abort), which then encodes, decodes and
// streams a few strings, so that a bounds bug in either shows up under ASan/UBSan.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hf/hf.h"
#include "tokenizer/tokenizer.h"

static const char *const samples[] = {
    "Hello world, it's 12345!",     "  \n\n\t x",
    "<|start|>hi<|end|><think>",    "e\xcc\x81 \xe4\xb8\x96\xe7\x95\x8c \xf0\x9f\xa6\x99",
    "\xff\xfe broken \xe2\x96\x81",
};

// Encodes, decodes and streams each sample; only allocation failures may fail.
static void exercise(const tokenizer *t)
{
    for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
        for (unsigned flags = 0; flags < 4; flags++) {
            tokenizer_ids ids = {0};
            tokenizer_text text = {0};
            garlic_error err;
            if (tokenizer_encode(t, samples[i], strlen(samples[i]), flags, &ids, &err) == GARLIC_OK)
                tokenizer_decode(t, ids.ids, ids.n, TOKENIZER_RENDER_SPECIAL, &text, &err);
            tokenizer_stream s;
            tokenizer_stream_init(&s, t, 0);
            size_t cap = tokenizer_stream_max_output(t), written;
            char *out = malloc(cap);
            for (size_t k = 0; out && k < ids.n; k++)
                if (tokenizer_stream_push(&s, ids.ids[k], out, cap, &written, &err) != GARLIC_OK)
                    abort(); // ids the tokenizer made are in range
            free(out);
            tokenizer_ids_deinit(&ids);
            tokenizer_text_deinit(&text);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';
    const char *texts[HF_FILE_COUNT] = {0};
    const char *p = buf, *end = buf + size;
    for (int f = 0; f < HF_FILE_COUNT && p <= end; f++) {
        texts[f] = *p ? p : NULL;
        p += strlen(p) + 1;
    }
    gguf_writer *w = gguf_writer_new();
    garlic_error err;
    if (w && hf_tokenizer_metadata_texts("fuzz", texts, w, &err) == GARLIC_OK) {
        gguf_file *f = gguf_writer_open(w, "fuzz/tokenizer.json", NULL, NULL, &err);
        tokenizer *t = f ? tokenizer_load(f, &err) : NULL;
        if (!t && err.code != GARLIC_ENOMEM)
            abort(); // accepted metadata garlic's own tokenizer refuses
        if (t)
            exercise(t);
        tokenizer_free(t);
        gguf_close(f);
    }
    gguf_writer_free(w);
    free(buf);
    return 0;
}
