// SPDX-License-Identifier: MIT
// libFuzzer target for the GGUF reader and the model loader: parses the input as a GGUF
// image, touches everything a consumer would (every array element, every tensor's first and
// last byte, the model description), then loads it as a model (hyper-parameters of every
// architecture: experts, windows, ranks; tensor shapes and types) and, when that succeeds,
// runs three tokens through the forward pass, so that a bounds bug anywhere shows up under
// ASan.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf.h"
#include "kvcache/kvcache.h"
#include "model/info.h"
#include "model/model.h"

static void walk_array(const gguf_value *arr, int depth)
{
    gguf_array_iter it;
    gguf_value v;
    gguf_array_iter_init(&it, arr);
    while (gguf_array_next(&it, &v))
        if (v.type == GGUF_TYPE_ARRAY && depth < GGUF_MAX_ARRAY_DEPTH)
            walk_array(&v, depth + 1);
    int64_t i;
    double d;
    if (arr->arr.count) {
        gguf_array_get_i64(arr, arr->arr.count - 1, &i);
        gguf_array_get_f64(arr, arr->arr.count - 1, &d);
    }
}

// Three tokens through a loaded model (a small context, one thread).
static void forward(const model *m)
{
    model_state_config cfg = {.n_ctx = 8, .max_batch = 4, .logit_rows = 1, .n_threads = 1};
    garlic_error err;
    model_state *s = model_state_new(m, &cfg, &err);
    kv_cache *kv = s ? model_kv_new_single(m, KV_TYPE_F32, 8, &err) : NULL;
    if (kv) {
        kv_seq seq;
        kv_seq_init(&seq);
        int32_t tokens[3] = {0, 1 % (int32_t)m->hp.n_vocab, 2 % (int32_t)m->hp.n_vocab};
        const float *logits;
        model_forward(s, kv, &seq, tokens, 3, 0, false, &logits, &err);
        kv_seq_deinit(kv, &seq);
    }
    kv_cache_free(kv);
    model_state_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    // An exactly-sized copy, so that ASan sees any read past the end.
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    garlic_error err;
    gguf_file *f = gguf_parse(buf, size, "fuzz.gguf", &err);
    if (f) {
        volatile uint8_t sink = 0;
        for (uint64_t i = 0; i < f->n_kv; i++)
            if (f->kv[i].value.type == GGUF_TYPE_ARRAY)
                walk_array(&f->kv[i].value, 1);
        for (uint64_t i = 0; i < f->n_tensors; i++) {
            const uint8_t *d = f->tensors[i].data;
            if (f->tensors[i].nbytes)
                sink ^= d[0] ^ d[f->tensors[i].nbytes - 1];
        }
        model_info info;
        if (model_info_read(f, &info, &err) == GARLIC_OK) {
            gguf_string text;
            for (int i = 0; i < MODEL_SPECIAL_COUNT; i++)
                if (model_info_token_text(f, info.special[i].id, &text) && text.len)
                    sink ^= (uint8_t)text.data[text.len - 1];
        }
        (void)sink;
        model *m = model_load_file(f, &err); // takes f
        if (m)
            forward(m);
        model_free(m);
    }
    free(buf);
    return 0;
}
