// SPDX-License-Identifier: MIT
// When generation ends: the end-token set and the stop-string matcher. The matcher follows
// every stop string with a Knuth-Morris-Pratt automaton fed one byte at a time, so a stop
// string may span any number of pieces; each automaton's state is the longest prefix of its
// string that ends the stream, and the longest such prefix is exactly what must be held back.
#include <string.h>

#include "base/alloc.h"
#include "base/buffer.h"
#include "base/utf8.h"
#include "sampler/sampler.h"

enum { STOP_BUFFER_INITIAL = 4096 }; // bytes; larger than any held tail plus a token's piece

struct sampler_stop {
    size_t n;                                                        // stop strings
    char strings[SAMPLER_STOP_MAX_STRINGS][SAMPLER_STOP_MAX_LENGTH]; // (n, lengths[i]) bytes
    size_t lengths[SAMPLER_STOP_MAX_STRINGS];                        // (n)
    // fail[i][j]: the length of the longest proper prefix of strings[i][0..j] that is also
    // a suffix of it (the KMP failure function).
    uint16_t fail[SAMPLER_STOP_MAX_STRINGS][SAMPLER_STOP_MAX_LENGTH];
    size_t state[SAMPLER_STOP_MAX_STRINGS]; // (n) bytes of strings[i] matched at the end
    char *buf;  // (cap) text not yet given out, after the emitted bytes at its front
    size_t len; // bytes in buf
    size_t cap;
    size_t emitted; // buf[0..emitted) was given out by the last call and is dropped next
    bool stopped;
    int index; // the stop string that matched, or -1
};

void sampler_end_tokens_init(sampler_end_tokens *e) { e->n = 0; }

int sampler_end_tokens_add(sampler_end_tokens *e, int32_t token, garlic_error *err)
{
    if (token < 0 || sampler_is_end(e, token))
        return GARLIC_OK;
    if (e->n == SAMPLER_MAX_END_TOKENS)
        return garlic_error_set(err, GARLIC_EINVAL,
                                "sampler: more than %d end-of-generation tokens (adding %d)",
                                SAMPLER_MAX_END_TOKENS, (int)token);
    e->ids[e->n++] = token;
    return GARLIC_OK;
}

bool sampler_is_end(const sampler_end_tokens *e, int32_t token)
{
    for (size_t i = 0; i < e->n; i++)
        if (e->ids[i] == token)
            return true;
    return false;
}

// Checks the stop strings a matcher is asked to build from.
static int validate_stops(const char *const *stops, size_t n, garlic_error *err)
{
    if (n > SAMPLER_STOP_MAX_STRINGS)
        return garlic_error_set(err, GARLIC_EINVAL, "sampler: %zu stop strings, at most %d", n,
                                SAMPLER_STOP_MAX_STRINGS);
    if (n > 0 && !stops)
        return garlic_error_set(err, GARLIC_EINVAL, "sampler: stop strings list is NULL");
    for (size_t i = 0; i < n; i++) {
        if (!stops[i])
            return garlic_error_set(err, GARLIC_EINVAL, "sampler: stop string %zu is NULL", i);
        size_t len = strnlen(stops[i], SAMPLER_STOP_MAX_LENGTH + 1);
        if (len == 0)
            return garlic_error_set(err, GARLIC_EINVAL, "sampler: stop string %zu is empty", i);
        if (len > SAMPLER_STOP_MAX_LENGTH)
            return garlic_error_set(err, GARLIC_EINVAL,
                                    "sampler: stop string %zu is longer than %d bytes", i,
                                    SAMPLER_STOP_MAX_LENGTH);
        if (!utf8_valid(stops[i], len))
            return garlic_error_set(err, GARLIC_EINVAL,
                                    "sampler: stop string %zu is not valid UTF-8", i);
    }
    return GARLIC_OK;
}

// Fills fail[0..len) for s[0..len), the KMP failure function.
static void build_failure(const char *s, size_t len, uint16_t *fail)
{
    size_t k = 0;
    fail[0] = 0;
    for (size_t j = 1; j < len; j++) {
        while (k > 0 && s[j] != s[k])
            k = fail[k - 1];
        if (s[j] == s[k])
            k++;
        fail[j] = (uint16_t)k;
    }
}

sampler_stop *sampler_stop_new(const char *const *stops, size_t n, garlic_error *err)
{
    if (validate_stops(stops, n, err) != GARLIC_OK)
        return NULL;
    sampler_stop *m = garlic_calloc(1, sizeof *m);
    char *buf = garlic_malloc(STOP_BUFFER_INITIAL);
    if (!m || !buf) {
        garlic_free(m);
        garlic_free(buf);
        garlic_error_set(err, GARLIC_ENOMEM, "sampler: out of memory for a stop matcher");
        return NULL;
    }
    m->n = n;
    for (size_t i = 0; i < n; i++) {
        m->lengths[i] = strlen(stops[i]);
        memcpy(m->strings[i], stops[i], m->lengths[i]);
        build_failure(m->strings[i], m->lengths[i], m->fail[i]);
    }
    m->buf = buf;
    m->cap = STOP_BUFFER_INITIAL;
    sampler_stop_reset(m);
    return m;
}

void sampler_stop_free(sampler_stop *m)
{
    if (!m)
        return;
    garlic_free(m->buf);
    garlic_free(m);
}

void sampler_stop_reset(sampler_stop *m)
{
    memset(m->state, 0, sizeof m->state);
    m->len = 0;
    m->emitted = 0;
    m->stopped = false;
    m->index = -1;
}

// Drops the bytes given out by the last call and makes room for extra more.
static int make_room(sampler_stop *m, size_t extra, garlic_error *err)
{
    memmove(m->buf, m->buf + m->emitted, m->len - m->emitted);
    m->len -= m->emitted;
    m->emitted = 0;
    size_t need;
    if (__builtin_add_overflow(m->len, extra, &need))
        return garlic_error_set(err, GARLIC_ENOMEM, "sampler: stop matcher text too long");
    if (garlic_grow(&m->buf, &m->cap, need, 1) != GARLIC_OK)
        return garlic_error_set(err, GARLIC_ENOMEM,
                                "sampler: out of memory holding %zu bytes of streamed text", need);
    return GARLIC_OK;
}

// Advances every automaton by byte c. Returns the index of the longest stop string that c
// completes, or -1.
static int step(sampler_stop *m, char c)
{
    int hit = -1;
    for (size_t i = 0; i < m->n; i++) {
        const char *s = m->strings[i];
        size_t q = m->state[i];
        while (q > 0 && s[q] != c)
            q = m->fail[i][q - 1];
        if (s[q] == c)
            q++;
        if (q == m->lengths[i]) {
            if (hit < 0 || m->lengths[i] > m->lengths[hit])
                hit = (int)i;
            q = m->fail[i][q - 1];
        }
        m->state[i] = q;
    }
    return hit;
}

int sampler_stop_feed(sampler_stop *m, const char *piece, size_t len, sampler_stop_result *out,
                      garlic_error *err)
{
    *out = (sampler_stop_result){
        .text = m->buf, .len = 0, .stopped = m->stopped, .index = m->index};
    if (m->stopped)
        return GARLIC_OK;
    int rc = make_room(m, len, err);
    if (rc != GARLIC_OK)
        return rc;
    out->text = m->buf;
    for (size_t i = 0; i < len; i++) {
        m->buf[m->len++] = piece[i];
        int hit = step(m, piece[i]);
        if (hit >= 0) { // send what precedes the stop string; the rest is never sent
            m->stopped = true;
            m->index = hit;
            *out = (sampler_stop_result){
                .text = m->buf, .len = m->len - m->lengths[hit], .stopped = true, .index = hit};
            m->len = m->emitted = 0;
            return GARLIC_OK;
        }
    }
    size_t hold = 0;
    for (size_t i = 0; i < m->n; i++)
        hold = m->state[i] > hold ? m->state[i] : hold;
    out->len = m->len - hold;
    m->emitted = out->len;
    return GARLIC_OK;
}

void sampler_stop_flush(sampler_stop *m, sampler_stop_result *out)
{
    *out = (sampler_stop_result){
        .text = m->buf, .len = 0, .stopped = m->stopped, .index = m->index};
    if (m->stopped)
        return;
    out->len = m->len - m->emitted;
    out->text = m->buf + m->emitted;
    m->emitted = m->len;
    memset(m->state, 0, sizeof m->state);
}
