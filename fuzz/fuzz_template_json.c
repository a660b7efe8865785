// SPDX-License-Identifier: MIT
// libFuzzer target for the chat templates' JSON reader and writer (src/chat/json.c): the
// input is parsed as JSON into template values inside a capped arena, as the messages, tools
// and variables of a render are. When it parses, the value is written back as tojson does
// (plain, and with ensure_ascii, an indent and sorted keys) and each text is parsed again,
// which must give an equal value: this catches bounds bugs under ASan and any disagreement
// between the reader and the writer (escapes, surrogates, number formats, nesting).
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/utf8.h"
#include "chat/internal.h"

// Whether v holds a float that JSON writes as NaN or Infinity, which the reader (like
// RFC 8259) does not take back.
static bool has_nonfinite(const chat_value *v)
{
    if (v->type == CHAT_FLOAT)
        return !isfinite(v->f);
    if (v->type == CHAT_LIST) {
        for (size_t i = 0; i < v->list->n; i++)
            if (has_nonfinite(&v->list->items[i]))
                return true;
    }
    if (v->type == CHAT_DICT) {
        for (size_t i = 0; i < v->dict->n; i++)
            if (has_nonfinite(&v->dict->vals[i]))
                return true;
    }
    return false;
}

// Writes v with opts and reads the text back; the two values must be equal.
static void round_trip(chat_arena *arena, const chat_value *v, const chat_json_opts *opts,
                       bool comparable)
{
    chat_buf text = {0};
    garlic_error err = {0};
    int rc = chat_value_tojson(arena, &text, v, opts, &err);
    if (rc == GARLIC_ENOMEM)
        return; // the arena's cap, as a render would report it
    if (rc != GARLIC_OK)
        abort(); // every value the reader makes can be written
    chat_value back;
    rc = chat_json_parse(arena, text.data ? text.data : "", text.len, &back, &err);
    if (rc == GARLIC_ENOMEM || !comparable)
        return;
    if (rc != GARLIC_OK || !chat_equal(v, &back))
        abort();
}

// Parses text[0..size) as the render's variables are parsed and checks what comes out.
static void check(const char *text, size_t size)
{
    chat_arena arena = {.limit = 64 << 20};
    chat_value v;
    garlic_error err = {0};
    int rc = chat_json_parse(&arena, text, size, &v, &err);
    if (rc == GARLIC_OK) {
        // Python's json never sees invalid UTF-8, and the writer treats it as text of its
        // own: only valid input is compared after the round trip.
        bool comparable = utf8_valid(text, size) && !has_nonfinite(&v);
        chat_json_opts plain = {0};
        chat_json_opts ascii = {.ensure_ascii = true, .sort_keys = true, .indent = "  "};
        round_trip(&arena, &v, &plain, comparable);
        round_trip(&arena, &v, &ascii, comparable);
    } else if ((rc != GARLIC_EFORMAT && rc != GARLIC_ENOMEM) || err.message[0] == '\0') {
        abort(); // a failure is a format error (or the cap) with a message
    }
    chat_arena_release(&arena);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size ? size : 1); // exactly sized, so ASan sees a read past the end
    if (text) {
        memcpy(text, data, size);
        check(text, size);
    }
    free(text);
    return 0;
}
