// SPDX-License-Identifier: MIT
// The OpenAI and Ollama APIs: request bodies (JSON) become engine requests, and generated
// text becomes JSON responses, Server-Sent Events (OpenAI) or NDJSON lines (Ollama). The
// parsing step (api_request_parse) is pure, so it can be fuzzed without a server; the
// handlers then find the model in the registry, render the chat template, tokenize, queue
// the request and shape the answer. The server (server/) owns HTTP and calls the handlers.
#ifndef GARLIC_API_H
#define GARLIC_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/error.h"
#include "sampler/sampler.h"

typedef struct registry registry;

typedef enum api_kind {
    API_KIND_OPENAI_CHAT,       // POST /v1/chat/completions
    API_KIND_OPENAI_COMPLETION, // POST /v1/completions
    API_KIND_OLLAMA_GENERATE,   // POST /api/generate
    API_KIND_OLLAMA_CHAT,       // POST /api/chat
    API_KIND_COUNT
} api_kind;

// An error for the client: HTTP status plus what the body says. param names the request
// field at fault ("" if none); code is OpenAI's machine-readable code (static, may be NULL).
typedef struct api_error {
    int status;
    const char *type;
    const char *code;
    char param[64];
    char message[512];
} api_error;

struct cJSON;

// A request body, parsed and checked, before any model is involved. Strings and trees are
// owned (garlic_malloc'd, cJSON's) and freed by api_request_deinit.
typedef struct api_request {
    api_kind kind;
    char *model;
    char *prompt;        // completions and generate: the prompt text (NULL for chat)
    int32_t *prompt_ids; // (n_prompt_ids) completions given as token ids
    size_t n_prompt_ids;
    struct cJSON *messages;    // chat: the messages (a list, contents flattened to text), or
                               // NULL (Ollama chat with no messages: load the model only)
    struct cJSON *tools;       // the tools list, or NULL
    bool tool_choice_none;     // OpenAI tool_choice "none": tools are shown, calls not parsed
    bool tool_choice_required; // "required" or a named function: the answer is a call,
                               // enforced by a grammar (api_output_plan)
    char *tool_choice_name;    // the named function, or NULL
    bool no_parallel_calls;    // OpenAI parallel_tool_calls false: one call per answer at most
    int think;                 // Ollama think: -1 absent, 0 false, 1 true (enable_thinking)
    int64_t reasoning_budget;  // tokens a reasoning block may take (garlic's extension), -1:
                               // no limit
    struct grammar *grammar;   // the output's constraint (response_format, format, grammar),
                               // or NULL; compiled here, handed to the engine request
    char *reasoning_effort;    // OpenAI reasoning_effort / Ollama think "low"|"medium"|"high"
                               // (a template variable), or NULL
    char *system;              // generate: the system message, or NULL
    bool raw;                  // generate: use the prompt as is, without the chat template
    bool truncate;             // Ollama: cut a prompt longer than the context to fit (default);
                               // false: refuse it with a 400, as OpenAI requests always are
    bool stream;
    bool include_usage;      // OpenAI stream_options.include_usage
    uint32_t max_tokens;     // 0: until the context is full
    sampler_params sampling; // n_vocab 0 until the model is known; logit_bias -> bias
    bool seeded;
    sampler_bias *bias;                    // (sampling.n_logit_bias)
    char *stops[SAMPLER_STOP_MAX_STRINGS]; // (n_stops)
    size_t n_stops;
    uint32_t n; // choices, 1..ENGINE_MAX_CHOICES
    bool logprobs;
    uint32_t top_logprobs;
    double keep_alive; // seconds the model stays loaded after this request (< 0:
                       // forever, 0: unload now); NAN when absent (the server's default)
} api_request;

// Parses a keep_alive duration: a number of seconds, or a Go-style duration string ("5m",
// "1h30m", "300ms", "-1", "10"): false when it is not one. Negative means forever.
bool api_parse_duration(const char *text, double *seconds);

// Parses body[0..len) for kind into out (zeroed first). Unknown fields are ignored; a
// wrong type or value gives GARLIC_EINVAL and err (status 400) naming the field. Returns
// GARLIC_OK, GARLIC_EINVAL or GARLIC_ENOMEM. Call api_request_deinit in every case.
int api_request_parse(api_kind kind, const char *body, size_t len, api_request *out,
                      api_error *err);
// api_request_parse with a model's default options applied first (defaults: a JSON object
// of Ollama option names, as a Modelfile's PARAMETER lines give them; NULL: none). The
// request's own fields win; its "stop" replaces the model's.
int api_request_parse_with(api_kind kind, const char *body, size_t len, const char *defaults,
                           api_request *out, api_error *err);
void api_request_deinit(api_request *r);

// A 400 in err naming the first string of root (a member name or a value) that is not valid
// UTF-8 ("'messages[0].content' is not valid UTF-8"); GARLIC_OK when there is none.
int api_json_check_utf8(const struct cJSON *root, api_error *err);

// Sets err to an error with a printf-style message; returns GARLIC_EINVAL.
int api_error_set(api_error *err, int status, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

// Whether the distributed job failed (garlic serve's rank 0 under --tensor-parallel or
// --pipeline-parallel: a rank died or hangs, and the job ends in a moment). When it did, err
// is its 503: type "server_error", code "distributed_fault", the message naming the ranks.
// Any thread may ask; false in a process of its own.
bool api_fault(api_error *err);

// ---- Responses ----

typedef struct api_stream api_stream;

// What a handler answers: a whole body, or a stream the server reads piece by piece.
typedef struct api_response {
    int status;
    const char *content_type; // static
    char *body;               // (len) garlic_malloc'd, owned by the response; NULL for a stream
    size_t len;
    uint32_t retry_after; // seconds for a Retry-After header (503), 0: none
    api_stream *stream;   // owned by the response until the server takes it
} api_response;

// Frees the body and stream of r (the struct is the caller's).
void api_response_deinit(api_response *r);

// Fills r with an error body: OpenAI's {"error": {"message", "type", "param", "code"}},
// or Ollama's {"error": "message"} when ollama is set.
void api_response_error(api_response *r, const api_error *err, bool ollama);

// /health's answer: 200 {"status":"ok"}, or, once the distributed job failed (api_fault),
// 503 {"status":"error","error":MESSAGE} so that a load balancer or supervisor sees it.
void api_health(api_response *out);

// Asked while a handler or a stream waits for the model; returns false when the client is
// gone, which cancels the request.
typedef bool (*api_alive_fn)(void *ctx);

// What a generating request used, for the server's request log.
typedef struct api_usage {
    char model[128]; // the model the request named ("" when none)
    uint32_t prompt_tokens;
    uint64_t generated_tokens; // output tokens of every choice
    double ttft_seconds;       // from the request's arrival to its first token (0: none)
    char *prompt;              // the rendered prompt when api_call.keep_prompt was set, else
                               // NULL; garlic_malloc'd, the receiver frees it
} api_usage;

typedef struct api_call {
    registry *reg;
    const char *body; // (len) the request body, borrowed for the call
    size_t len;
    api_alive_fn alive;
    void *alive_ctx;
    api_usage *usage;       // filled for a whole (not streamed) answer; may be NULL
    bool keep_prompt;       // usage->prompt gets the rendered prompt
    const char *store_root; // the model store the server serves and manages, NULL: none
    const char *path_arg;   // what follows a route's prefix ("/v1/models/{id}": the id)
} api_call;

// The endpoints. Each fills *out (a status, a body or a stream); none fails otherwise.
void api_openai_models(const api_call *call, api_response *out);
void api_openai_chat(const api_call *call, api_response *out);
void api_openai_completions(const api_call *call, api_response *out);
void api_ollama_version(const api_call *call, api_response *out);
void api_ollama_tags(const api_call *call, api_response *out);
void api_ollama_show(const api_call *call, api_response *out);
void api_ollama_ps(const api_call *call, api_response *out);
void api_ollama_generate(const api_call *call, api_response *out);
void api_ollama_chat(const api_call *call, api_response *out);
void api_ollama_pull(const api_call *call, api_response *out);
void api_ollama_create(const api_call *call, api_response *out);
void api_ollama_delete(const api_call *call, api_response *out);
void api_ollama_copy(const api_call *call, api_response *out);
void api_openai_model(const api_call *call, api_response *out);      // GET /v1/models/{id}
void api_tokenize(const api_call *call, api_response *out);          // POST /tokenize
void api_detokenize(const api_call *call, api_response *out);        // POST /detokenize
void api_openai_embeddings(const api_call *call, api_response *out); // POST /v1/embeddings
void api_ollama_embed(const api_call *call, api_response *out);      // POST /api/embed
void api_ollama_embeddings(const api_call *call, api_response *out); // POST /api/embeddings

// Brings the registry in line with the model store at root (NULL: nothing to do): every
// stored model is listed under its short name ("qwen3:8b", "hf.co/org/repo:Q4_K_M") with its
// Modelfile extras, a model whose manifest changed is replaced, one that left the store is
// removed. A model given with -m keeps its name against a stored one. Fails only when the
// store cannot be read.
int api_store_sync(registry *reg, const char *root, garlic_error *err);

// Writes up to max bytes of the stream into buf, waiting for the model as needed. Returns
// the byte count, 0 at the end, -1 when the client is gone (alive said so; the request is
// cancelled).
ssize_t api_stream_read(api_stream *s, char *buf, size_t max, api_alive_fn alive, void *ctx);

// What the stream's request used so far (usage->prompt moves to the caller).
void api_stream_usage(api_stream *s, api_usage *usage);

// Cancels the stream's request if it is still running and frees it. NULL is a no-op.
void api_stream_free(api_stream *s);

#endif
