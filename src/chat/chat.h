// SPDX-License-Identifier: MIT
// Chat templates: a Jinja interpreter written for garlic that renders a model's own
// tokenizer.chat_template the way Hugging Face transformers does (Jinja2 with trim_blocks,
// lstrip_blocks, loop controls, its tojson, raise_exception and strftime_now), plus a
// documented fallback transcript for models without a template. A template is parsed once
// (errors name the construct and line:column) and rendered per request inside an arena
// whose size, output, steps and call depth are capped, so no template can hang or exhaust memory.
#ifndef GARLIC_CHAT_H
#define GARLIC_CHAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

typedef struct chat_template chat_template;

// Caps on one render; a field of 0 takes the default below.
typedef struct chat_limits {
    size_t max_output;  // bytes of rendered text (default 16 MiB)
    size_t max_memory;  // bytes of the render's arena: values, strings (default 256 MiB)
    uint64_t max_steps; // statements, loop iterations and calls (default 20 million)
    int max_depth;      // nested macro calls and filter recursion (default 64)
} chat_limits;

enum {
    CHAT_DEFAULT_MAX_OUTPUT = 16 << 20,
    CHAT_DEFAULT_MAX_DEPTH = 64,
};
#define CHAT_DEFAULT_MAX_MEMORY ((size_t)256 << 20)
#define CHAT_DEFAULT_MAX_STEPS ((uint64_t)20000000)

struct cJSON;

// What a render sees. Either variables_json holds every variable (a JSON object, like the
// `variables` of a reference case file; with variables_member set, the variables are that
// member of the object), or the separate fields below are used. JSON keeps key order and
// tells ints from floats, as Python's json module does. Messages, tools and extra variables
// come as text (*_json) or as trees already parsed (messages, tools, extra: cJSON, as the API
// holds them; a tree is used when set). A NULL token is undefined in the template (not None);
// no tools is None. All pointers are borrowed for the call.
typedef struct chat_vars {
    const char *variables_json;
    size_t variables_len;
    const char *variables_member; // e.g. "variables"; NULL: variables_json is the object
    const char *messages_json;    // a JSON list of messages
    size_t messages_len;
    const char *tools_json; // a JSON list, or NULL for None
    size_t tools_len;
    const char *extra_json; // a JSON object of more variables (e.g. enable_thinking), or NULL
    size_t extra_len;
    const struct cJSON *messages; // a list of messages, parsed
    const struct cJSON *tools;    // a list, or NULL
    const struct cJSON *extra;    // an object, or NULL
    bool add_generation_prompt;
    const char *bos_token;
    const char *eos_token;
    const char *now;           // "YYYY-MM-DDTHH:MM:SS" for strftime_now; NULL: local time now
    const chat_limits *limits; // NULL: defaults
} chat_vars;

// Parses template source (UTF-8, len bytes; need not be NUL-terminated). name is used in
// messages ("model.gguf:chat_template:12:5: unknown tag 'include'"). Returns NULL and
// fills err on a syntax error or an unsupported construct.
chat_template *chat_template_parse(const char *src, size_t len, const char *name,
                                   garlic_error *err);

// Releases a template; chat_template_free(NULL) is a no-op.
void chat_template_free(chat_template *t);

// Renders t with vars. On success *out is a garlic_malloc'd NUL-terminated string of
// *out_len bytes that the caller frees with garlic_free. On failure returns a negative
// code and fills err: a raise_exception() gives exactly its message (GARLIC_EINVAL); other
// errors name the template position ("NAME:LINE:COL: ...").
int chat_template_render(const chat_template *t, const chat_vars *vars, char **out, size_t *out_len,
                         garlic_error *err);

// The fallback for models without a template: one "ROLE: CONTENT" paragraph per message,
// separated by a blank line, then "assistant:" when add_generation_prompt is set (see
// docs/chat-templates.md). Same ownership and errors as chat_template_render.
int chat_fallback_render(const chat_vars *vars, char **out, size_t *out_len, garlic_error *err);

// The source of the fallback format, as a template (static).
const char *chat_fallback_source(void);

// ---- Prompts (prompt.c): what the server and `garlic run` send to the engine ----

typedef struct tokenizer tokenizer;
typedef struct tokenizer_ids tokenizer_ids;

// Renders vars with a model's template t (NULL: the fallback), with bos_token and eos_token
// from tok's vocabulary where vars leaves them NULL. Same ownership and errors as
// chat_template_render.
int chat_prompt_render(const chat_template *t, const tokenizer *tok, const chat_vars *vars,
                       char **out, size_t *out_len, garlic_error *err);

// Appends the prompt tokens of text[0..len) to ids: text a template rendered (templated:
// special-token text such as "<|im_start|>" becomes that token) or a raw prompt. BOS is added
// where the vocabulary asks for it, but not doubled when the text starts with one; an empty
// prompt becomes BOS alone. GARLIC_EINVAL when the prompt is empty and there is no BOS, or the
// tokenizer fails; GARLIC_ENOMEM.
int chat_prompt_tokenize(const tokenizer *tok, const char *text, size_t len, bool templated,
                         tokenizer_ids *ids, garlic_error *err);

#endif
