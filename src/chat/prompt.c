// SPDX-License-Identifier: MIT
// From a conversation to prompt tokens, the one way the server and `garlic run` both do it:
// the model's own template (or the fallback) renders the messages with the vocabulary's BOS
// and EOS text, and the rendered text is tokenized with special-token text read as those
// tokens; a BOS the vocabulary adds is not doubled when the template wrote one too.
#include <stdio.h>
#include <string.h>

#include "base/buffer.h"
#include "chat/chat.h"
#include "tokenizer/tokenizer.h"

// A special token's text as a NUL-terminated string in buf ("" when the vocabulary has none).
static const char *special_text(const tokenizer *t, tokenizer_special role, char *buf, size_t cap)
{
    size_t len = 0;
    int32_t id = tokenizer_special_id(t, role);
    const char *text = id >= 0 ? tokenizer_token_text(t, id, &len) : NULL;
    snprintf(buf, cap, "%.*s", text ? (int)len : 0, text ? text : "");
    return buf;
}

int chat_prompt_render(const chat_template *t, const tokenizer *tok, const chat_vars *vars,
                       char **out, size_t *out_len, garlic_error *err)
{
    char bos[256], eos[256];
    chat_vars v = *vars;
    if (!v.bos_token)
        v.bos_token = special_text(tok, TOKENIZER_SPECIAL_BOS, bos, sizeof bos);
    if (!v.eos_token)
        v.eos_token = special_text(tok, TOKENIZER_SPECIAL_EOS, eos, sizeof eos);
    return t ? chat_template_render(t, &v, out, out_len, err)
             : chat_fallback_render(&v, out, out_len, err);
}

int chat_prompt_tokenize(const tokenizer *tok, const char *text, size_t len, bool templated,
                         tokenizer_ids *ids, garlic_error *err)
{
    unsigned flags = TOKENIZER_ADD_SPECIAL | (templated ? TOKENIZER_PARSE_SPECIAL : 0);
    size_t start = ids->n;
    int rc = tokenizer_encode(tok, text, len, flags, ids, err);
    if (rc)
        return rc;
    int32_t bos = tokenizer_special_id(tok, TOKENIZER_SPECIAL_BOS);
    int32_t *p = ids->ids + start;
    size_t n = ids->n - start;
    if (n >= 2 && bos >= 0 && p[0] == bos && p[1] == bos) {
        memmove(p, p + 1, (n - 1) * sizeof *p);
        ids->n--;
    }
    if (ids->n == start && bos >= 0) {
        if (garlic_grow(&ids->ids, &ids->cap, ids->n + 1, sizeof *ids->ids))
            return garlic_error_set(err, GARLIC_ENOMEM, "out of memory");
        ids->ids[ids->n++] = bos;
    }
    if (ids->n == start)
        return garlic_error_set(err, GARLIC_EINVAL,
                                "the prompt is empty and the vocabulary has "
                                "no BOS token to start from");
    return GARLIC_OK;
}
