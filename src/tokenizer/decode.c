// SPDX-License-Identifier: MIT
// Token ids back to text. Each token's bytes were worked out at load (vocab.c), so decoding
// is concatenation plus two rules: SentencePiece's added space prefix is removed again at the
// start and after BOS, and the streaming decoder holds back an incomplete UTF-8 sequence
// until the token that completes it arrives.
#include <string.h>

#include "base/buffer.h"
#include "tokenizer/internal.h"

const char *tokenizer_piece(const tokenizer *t, int32_t id, unsigned flags, size_t *len)
{
    if (id < 0 || (uint32_t)id >= t->n_vocab) {
        *len = 0;
        return NULL;
    }
    uint8_t ty = t->types[id];
    if ((flags & TOKENIZER_RENDER_SPECIAL) &&
        (ty == TOKENIZER_TOKEN_CONTROL || ty == TOKENIZER_TOKEN_UNKNOWN)) {
        *len = t->text_len[id];
        return t->blob + t->text_off[id];
    }
    *len = t->piece_len[id];
    return t->blob + t->piece_off[id];
}

// Whether decoding starts by dropping one leading space (the SPM space prefix).
static bool strips_space(const tokenizer *t)
{
    return (t->kind == TOKENIZER_KIND_SPM && t->add_space_prefix) || t->kind == TOKENIZER_KIND_WPM;
}

// The piece of id after the leading-space rule; updates *strip for the next token.
static const char *piece_after_rule(const tokenizer *t, int32_t id, unsigned flags, bool *strip,
                                    size_t *len)
{
    const char *p = tokenizer_piece(t, id, flags, len);
    if (id == t->special[TOKENIZER_SPECIAL_BOS] && id >= 0) {
        *strip = strips_space(t); // text after BOS starts afresh
        return p;
    }
    if (*strip && *len && p[0] == ' ') {
        p++;
        (*len)--;
    }
    *strip = false;
    return p;
}

int tokenizer_decode(const tokenizer *t, const int32_t *ids, size_t n, unsigned flags,
                     tokenizer_text *out, garlic_error *err)
{
    bool strip = strips_space(t);
    if (garlic_buf_reserve(out, 0) != GARLIC_OK)
        return garlic_error_set(err, GARLIC_ENOMEM, "out of memory decoding");
    int rc = GARLIC_OK;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || (uint32_t)ids[i] >= t->n_vocab) {
            rc = garlic_error_set(err, GARLIC_EINVAL, "token id %d out of range (%u tokens)",
                                  ids[i], t->n_vocab);
            break;
        }
        size_t len;
        const char *p = piece_after_rule(t, ids[i], flags, &strip, &len);
        // the room test is inline: most pieces fit, and decoding is a hot loop
        if (len >= out->cap - out->len && garlic_buf_reserve(out, len) != GARLIC_OK) {
            rc = garlic_error_set(err, GARLIC_ENOMEM, "out of memory decoding");
            break;
        }
        memcpy(out->data + out->len, p, len);
        out->len += len;
    }
    out->data[out->len] = '\0';
    return rc;
}

void tokenizer_text_deinit(tokenizer_text *text) { garlic_buf_deinit(text); }

void tokenizer_stream_init(tokenizer_stream *s, const tokenizer *t, unsigned flags)
{
    *s = (tokenizer_stream){.tok = t, .flags = flags, .strip_space = strips_space(t)};
}

void tokenizer_stream_follow(tokenizer_stream *s, const int32_t *before, size_t n)
{
    int32_t bos = s->tok->special[TOKENIZER_SPECIAL_BOS];
    s->strip_space = strips_space(s->tok) && (n == 0 || (bos >= 0 && before[n - 1] == bos));
}

size_t tokenizer_stream_max_output(const tokenizer *t) { return 3 * t->max_piece + 8; }

// Total length of the UTF-8 sequence led by c, 0 when c cannot lead one.
static size_t lead_length(unsigned char c)
{
    return c < 0x80 ? 1 : c < 0xc2 ? 0 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : c < 0xf5 ? 4 : 0;
}

// Whether c may follow the bytes already pending (lead-specific limits on the second byte
// rule out overlong forms, surrogates and code points past U+10FFFF).
static bool continues(const unsigned char *pending, size_t n, unsigned char c)
{
    unsigned char lo = 0x80, hi = 0xbf;
    if (n == 1) {
        if (pending[0] == 0xe0)
            lo = 0xa0;
        else if (pending[0] == 0xed)
            hi = 0x9f;
        else if (pending[0] == 0xf0)
            lo = 0x90;
        else if (pending[0] == 0xf4)
            hi = 0x8f;
    }
    return c >= lo && c <= hi;
}

static size_t put_replacement(char *out)
{
    memcpy(out, "\xef\xbf\xbd", 3);
    return 3;
}

// Feeds one byte through the UTF-8 holding state; returns bytes written to out.
static size_t feed_byte(tokenizer_stream *s, unsigned char c, char *out)
{
    size_t o = 0;
    if (s->n_pending && !continues(s->pending, s->n_pending, c)) {
        o += put_replacement(out); // the held sequence can never complete
        s->n_pending = 0;
    }
    if (s->n_pending == 0) {
        size_t k = lead_length(c);
        if (k == 1)
            out[o++] = (char)c;
        else if (k == 0)
            o += put_replacement(out + o);
        else
            s->pending[s->n_pending++] = c;
        return o;
    }
    s->pending[s->n_pending++] = c;
    if (s->n_pending == lead_length(s->pending[0])) {
        memcpy(out + o, s->pending, s->n_pending);
        o += s->n_pending;
        s->n_pending = 0;
    }
    return o;
}

int tokenizer_stream_push(tokenizer_stream *s, int32_t id, char *out, size_t cap, size_t *written,
                          garlic_error *err)
{
    const tokenizer *t = s->tok;
    *written = 0;
    if (id < 0 || (uint32_t)id >= t->n_vocab)
        return garlic_error_set(err, GARLIC_EINVAL, "token id %d out of range (%u tokens)", id,
                                t->n_vocab);
    if (cap < tokenizer_stream_max_output(t))
        return garlic_error_set(err, GARLIC_EINVAL, "stream buffer of %zu bytes, need %zu", cap,
                                tokenizer_stream_max_output(t));
    size_t len, o = 0;
    const char *p = piece_after_rule(t, id, s->flags, &s->strip_space, &len);
    for (size_t i = 0; i < len; i++)
        o += feed_byte(s, (unsigned char)p[i], out + o);
    *written = o;
    return GARLIC_OK;
}

size_t tokenizer_stream_flush(tokenizer_stream *s, char *out, size_t cap)
{
    if (s->n_pending == 0 || cap < 3)
        return 0;
    s->n_pending = 0;
    return put_replacement(out);
}
