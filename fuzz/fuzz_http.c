// SPDX-License-Identifier: MIT
// libFuzzer target for the HTTP layer's parser (src/server/http_parse.c): the input is a
// request head, then a chunked body. Checks the parser's promises: a parsed head lies within
// the input and every field within the head; every proper prefix of a parsed head is
// incomplete, not invalid (so a head split across reads is never refused); the terminated
// strings are NUL-ended; the chunked decoder never writes or reads outside the buffer and
// decodes no more than its limit, fed whole or a byte at a time with the same result.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/http.h"

static void check_chunked(const char *data, size_t size)
{
    char *whole = malloc(size ? size : 1), *bytewise = malloc(size ? size : 1);
    if (!whole || !bytewise)
        abort();
    memcpy(whole, data, size);
    memcpy(bytewise, data, size);
    size_t max = size ? (unsigned char)data[0] * 8u : 0;
    http_chunked a = {0}, b = {0};
    size_t in_a = 0, out_a = 0, in_b = 0, out_b = 0;
    http_parse ra = http_chunked_decode(&a, whole, size, &in_a, &out_a, max);
    http_parse rb = HTTP_PARSE_INCOMPLETE;
    for (size_t have = 1; have <= size && rb == HTTP_PARSE_INCOMPLETE; have++)
        rb = http_chunked_decode(&b, bytewise, have, &in_b, &out_b, max);
    if (ra != rb || out_a > max || in_a > size || out_a > in_a)
        abort();
    if (ra != HTTP_PARSE_INVALID && (out_a != out_b || memcmp(whole, bytewise, out_a) != 0))
        abort();
    free(whole);
    free(bytewise);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size ? size : 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    http_head h;
    http_parse r = http_head_parse(text, text + size, &h);
    if (r == HTTP_PARSE_DONE) {
        if (h.len > size || h.target < text || h.target + h.target_len > text + h.len)
            abort();
        for (size_t i = 0; i < h.n_fields; i++)
            if (h.fields[i].name < text || h.fields[i].value + h.fields[i].value_len > text + h.len)
                abort();
        for (size_t n = h.len > 64 ? h.len - 64 : 0; n < h.len; n++) {
            http_head p;
            if (http_head_parse(text, text + n, &p) != HTTP_PARSE_INCOMPLETE)
                abort();
        }
        http_head_terminate(text, &h);
        size_t total = strlen(h.target) + strlen(h.method);
        for (size_t i = 0; i < h.n_fields; i++)
            total += strlen(h.fields[i].name) + strlen(h.fields[i].value);
        (void)*(volatile size_t *)&total;
        check_chunked(text + h.len, size - h.len);
    } else if (r == HTTP_PARSE_INVALID && (!h.error || h.error_status < 400)) {
        abort();
    }
    free(text);
    return 0;
}
