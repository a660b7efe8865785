// SPDX-License-Identifier: MIT
// Reading a model's generated text as a chat answer: the visible content, the reasoning
// (`<think>` blocks, gpt-oss's analysis channel) and structured tool calls, in the format of the
// model's family (Hermes/Qwen `<tool_call>` JSON, Qwen3-Coder's XML-style parameters, Llama 3.x
// JSON and `<|python_tag|>`, Mistral `[TOOL_CALLS]`, gpt-oss harmony, DeepSeek's tool-call
// tokens). A parser is fed the detokenized text piece by piece, with special tokens rendered as
// their text, and answers with events in output order; text that might still become a marker
// is held back until it is known not to. docs/tool-calls.md describes every format, the
// detection, the events and what becomes content.
#ifndef GARLIC_SAMPLER_CHAT_OUTPUT_H
#define GARLIC_SAMPLER_CHAT_OUTPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

enum {
    CHAT_OUTPUT_MAX_CALL = 1 << 20, // bytes one tool call may span; a longer one becomes content
};

// How a model family writes tool calls. Reasoning `<think>` blocks are independent of it
// (chat_output_options.reasoning), except for harmony, whose channels carry both.
typedef enum chat_output_format {
    CHAT_OUTPUT_FORMAT_NONE,        // no tool calls: everything is content (and reasoning)
    CHAT_OUTPUT_FORMAT_HERMES,      // <tool_call>{"name": N, "arguments": {...}}</tool_call>
    CHAT_OUTPUT_FORMAT_QWEN3_CODER, // <tool_call><function=N><parameter=P>v</parameter>...
    CHAT_OUTPUT_FORMAT_LLAMA3,      // {"name": N, "parameters": {...}} bare, or <|python_tag|>
    CHAT_OUTPUT_FORMAT_MISTRAL,     // [TOOL_CALLS][{...}] or [TOOL_CALLS]N[ARGS]{...}
    CHAT_OUTPUT_FORMAT_HARMONY,     // gpt-oss: <|channel|>X<|message|>...<|end|>, to=functions.N
    CHAT_OUTPUT_FORMAT_DEEPSEEK, // <｜tool▁call▁begin｜>...<｜tool▁sep｜>...<｜tool▁call▁end｜>
    CHAT_OUTPUT_FORMAT_COUNT
} chat_output_format;

// The format's short name ("hermes", "qwen3-coder", ...); "unknown" for a value out of range.
const char *chat_output_format_name(chat_output_format format);

// The format called name (as chat_output_format_name writes it). GARLIC_EINVAL naming it when
// there is none.
int chat_output_format_parse(const char *name, chat_output_format *out, garlic_error *err);

// What chat_output_detect learned about a model.
typedef struct chat_output_detection {
    chat_output_format format;
    bool reasoning; // the model writes <think>...</think> blocks (harmony: its analysis channel)
} chat_output_detection;

// Recognizes the format from the chat template's source text (may be NULL when the model has
// none); without a template, from the architecture name (GGUF general.architecture, may be
// NULL) and the vocabulary's special tokens (tokens[0..n_tokens), NUL-terminated, may be NULL).
// Families it does not know come back as CHAT_OUTPUT_FORMAT_NONE.
chat_output_detection chat_output_detect(const char *template_source, size_t template_len,
                                         const char *architecture, const char *const *tokens,
                                         size_t n_tokens);

// Whether a rendered prompt leaves the model inside a reasoning block: it ends with `<think>`
// (and white space) opened by the template's generation prompt, so the output starts in
// reasoning and only `</think>` ends it. Pass the result as options.starts_in_reasoning.
bool chat_output_prompt_opens_reasoning(const char *prompt, size_t len);

// How to parse one generation. Start from chat_output_options_default() and change fields;
// the parser copies what it keeps, so the caller's strings may go away after chat_output_new.
typedef struct chat_output_options {
    chat_output_format format;
    bool reasoning;           // split <think>...</think> at the start into reasoning; when off
                              // the tags stay in the content (harmony's analysis channel is
                              // reasoning either way)
    bool starts_in_reasoning; // the prompt opened <think> (chat_output_prompt_opens_reasoning)
    bool tools;               // tools were offered (and tool_choice is not "none"); without
                              // them tool-call markers are ordinary content
    bool parallel_tool_calls; // more than one call per answer; when off everything after the
                              // first call is dropped (the caller may stop generating there)
    const char *tools_json;   // the request's tools array (OpenAI/Ollama shape) or NULL; its
                              // parameter schemas type Qwen3-Coder's XML parameter values
    size_t tools_json_len;
    uint64_t id_seed; // tool call ids are drawn from it; 0 draws a seed from the system
} chat_output_options;

// format NONE, reasoning on, no tools, parallel calls allowed, id_seed 0.
chat_output_options chat_output_options_default(void);

typedef enum chat_output_event_kind {
    CHAT_OUTPUT_EVENT_CONTENT,        // text: visible answer text
    CHAT_OUTPUT_EVENT_REASONING,      // text: reasoning text
    CHAT_OUTPUT_EVENT_CALL_BEGIN,     // index, id, name: a tool call starts
    CHAT_OUTPUT_EVENT_CALL_ARGUMENTS, // index, text: the next fragment of its arguments' JSON
    CHAT_OUTPUT_EVENT_CALL_END,       // index: the call is complete
    CHAT_OUTPUT_EVENT_COUNT
} chat_output_event_kind;

// One event. Every pointer lives until the parser's next call (feed, finish, reset or free).
// Texts are not NUL-terminated (use len); id and name are.
typedef struct chat_output_event {
    chat_output_event_kind kind;
    const char *text; // (len) CONTENT, REASONING, CALL_ARGUMENTS; NULL otherwise
    size_t len;
    uint32_t index;   // CALL_*: the call's position in the answer, from 0 (OpenAI's index)
    const char *id;   // CALL_BEGIN: "call_" and 24 letters and digits (Mistral: 9 of them)
    const char *name; // CALL_BEGIN: the function's name
} chat_output_event;

// A call's BEGIN, ARGUMENTS fragments and END always come together in one answer and only once
// the whole call has been read and checked; concatenated, the fragments are one JSON object.
typedef struct chat_output chat_output;

// A parser for one generation. NULL with err filled on a bad option (GARLIC_EINVAL: format out
// of range, tools_json not a JSON array) or no memory (GARLIC_ENOMEM). Free it with
// chat_output_free. One thread at a time.
chat_output *chat_output_new(const chat_output_options *options, garlic_error *err);

// Frees p; chat_output_free(NULL) is a no-op.
void chat_output_free(chat_output *p);

// Appends text[0..len) (any split, UTF-8 characters included) and sets *events/*n_events to
// what can be said now (possibly nothing). Content and reasoning events end on whole UTF-8
// characters. GARLIC_ENOMEM when held text cannot grow; the parser is then unusable.
int chat_output_feed(chat_output *p, const char *text, size_t len, const chat_output_event **events,
                     size_t *n_events, garlic_error *err);

// Generation ended: releases everything held. A tool call left open or malformed comes back
// as content (its raw text), never as part of a call. Later feeds are ignored.
int chat_output_finish(chat_output *p, const chat_output_event **events, size_t *n_events,
                       garlic_error *err);

// Tool calls completed so far (OpenAI's finish_reason is "tool_calls" when > 0 at the end).
uint32_t chat_output_call_count(const chat_output *p);

// Forgets the stream, for a new generation with the same options (and new ids).
void chat_output_reset(chat_output *p);

// ---- The whole text at once ----

typedef struct chat_output_call {
    char *id;        // owned, NUL-terminated
    char *name;      // owned
    char *arguments; // owned: a JSON object
} chat_output_call;

typedef struct chat_output_result {
    char *content; // owned, NUL-terminated, "" when none
    size_t content_len;
    char *reasoning; // owned, "" when none
    size_t reasoning_len;
    chat_output_call *calls; // (n_calls) owned
    size_t n_calls;
} chat_output_result;

// Parses a complete generation: the same as feeding it in one piece and finishing, with the
// events gathered. *out is filled on GARLIC_OK and must be released with
// chat_output_result_deinit; on an error it is left empty.
int chat_output_parse(const chat_output_options *options, const char *text, size_t len,
                      chat_output_result *out, garlic_error *err);

// Frees what r owns and empties it.
void chat_output_result_deinit(chat_output_result *r);

#endif
