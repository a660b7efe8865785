// SPDX-License-Identifier: MIT
// What the streaming parser (chat_output.c) shares with the per-family call readers and the
// format detection (chat_output_formats.c): a strict JSON scanner that tells a complete value
// from an incomplete or invalid one, a bracket tracker that finds where a streamed JSON value
// closes, and the list a reader fills with the calls it found in one block of text.
#ifndef GARLIC_SAMPLER_CHAT_OUTPUT_INTERNAL_H
#define GARLIC_SAMPLER_CHAT_OUTPUT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "base/buffer.h"
#include "sampler/chat_output.h"

typedef enum chat_output_json_status {
    CHAT_OUTPUT_JSON_COMPLETE,   // one whole value
    CHAT_OUTPUT_JSON_INCOMPLETE, // a valid prefix of a value: more text could complete it
    CHAT_OUTPUT_JSON_INVALID,    // no text can make it a value
    CHAT_OUTPUT_JSON_STATUS_COUNT
} chat_output_json_status;

// Scans one JSON value (RFC 8259, nesting at most 128 deep) at s[0..n) after white space;
// on CHAT_OUTPUT_JSON_COMPLETE *end is the offset just past it.
chat_output_json_status chat_output_json_scan(const char *s, size_t n, size_t *end);

// s[0..n) with white space removed at both ends is exactly one JSON value.
bool chat_output_json_is_value(const char *s, size_t n);

// In the JSON object s[0..n) (already checked complete), finds member key (compared as raw
// bytes between the quotes): true with the value's span [*start, *start + *len).
bool chat_output_json_member(const char *s, size_t n, const char *key, size_t *start, size_t *len);

// Appends s[0..n) as a JSON string literal (quoted, escaped). GARLIC_ENOMEM on failure.
int chat_output_json_append_string(garlic_buf *b, const char *s, size_t n);

// Follows a streamed JSON object or array byte by byte to find where it closes, without
// checking it (chat_output_json_scan does, once it has closed).
typedef struct chat_output_json_tracker {
    uint32_t depth;
    bool started; // the opening bracket was seen
    bool in_string;
    bool escape;
    bool closed;  // the value is complete
    bool invalid; // the first non-blank byte opens no object or array
} chat_output_json_tracker;

// Feeds s[0..n); returns how many bytes it took: all of them, or up to and including the
// closing bracket (then t->closed), or up to the offending byte (then t->invalid).
size_t chat_output_json_tracker_feed(chat_output_json_tracker *t, const char *s, size_t n);

// The calls found in one block of text: names and argument objects stored back to back.
typedef struct chat_output_calls {
    garlic_buf text;
    struct chat_output_call_span {
        size_t name, name_len, args, args_len; // offsets into text
    } * items;                                 // (n, cap)
    size_t n, cap;
} chat_output_calls;

// Adds a call. The name must be 1..256 bytes of valid UTF-8 without control characters or
// quotes, and args one JSON object: GARLIC_EFORMAT otherwise (the block is then content).
int chat_output_calls_add(chat_output_calls *l, const char *name, size_t name_len, const char *args,
                          size_t args_len);
void chat_output_calls_clear(chat_output_calls *l);
void chat_output_calls_deinit(chat_output_calls *l);

// The readers. Each reads one block (the text between a call's markers, or the marker's
// JSON) and adds the calls it holds to out. GARLIC_EFORMAT when the block is not a well-formed
// call (out may then hold some calls: the caller discards them), GARLIC_ENOMEM.

// {"name": N, "arguments": {...}} ("parameters" also read; arguments may be a JSON string
// holding the object). Hermes, Qwen2.5/Qwen3 and Llama 3.x.
int chat_output_read_json_call(const char *s, size_t n, chat_output_calls *out);

// <function=N><parameter=P>value</parameter>...</function>; tools (the request's tools, may be
// NULL) types each value by its parameter's schema.
int chat_output_read_qwen3_coder(const char *s, size_t n, const cJSON *tools,
                                 chat_output_calls *out);

// Mistral after [TOOL_CALLS]: a JSON array of {"name", "arguments"} objects, or
// N[ARGS]{...} / N[CALL_ID]id[ARGS]{...}.
int chat_output_read_mistral(const char *s, size_t n, chat_output_calls *out);

// DeepSeek between <｜tool▁call▁begin｜> and <｜tool▁call▁end｜>: function<｜tool▁sep｜>N\n```json
// {...}``` (V3, R1) or N<｜tool▁sep｜>{...} (V3.1).
int chat_output_read_deepseek(const char *s, size_t n, chat_output_calls *out);

// Llama 3.x after <|python_tag|> when it is not JSON: N.call(k="v", k2=1, ...).
int chat_output_read_python_call(const char *s, size_t n, chat_output_calls *out);

#endif
