// SPDX-License-Identifier: MIT
// What the API files share: a job (one generating request from parse to the last chunk),
// the collected result of a non-streamed job, the stream machinery and JSON helpers.
// job.c runs the steps every generating endpoint has in common; stream.c turns registry
// chunks into bytes through a flavour's formatter; openai.c and ollama.c shape the JSON.
#ifndef GARLIC_API_INTERNAL_H
#define GARLIC_API_INTERNAL_H

#include <cjson/cJSON.h>

#include "api/api.h"
#include "base/buffer.h"
#include "engine/engine.h"
#include "registry/registry.h"
#include "sampler/chat_output.h"
#include "tokenizer/tokenizer.h"

// One generating request. Owned by the handler's thread (then by its stream).
typedef struct api_job {
    api_request in;        // the parsed body
    registry_model *model; // borrowed from the registry
    bool acquired;         // model is pinned (released by api_job_deinit)
    const tokenizer *tok;  // the model's, borrowed
    engine_request *req;   // after submit: released by api_job_deinit
    uint32_t n_prompt;     // prompt tokens
    double t_start;        // monotonic seconds when the request arrived
    double t_submit;       // when it was queued on the engine
    double t_first;        // when its first token came (0: none yet)
    uint64_t generated;    // output tokens of every choice so far
    bool keep_prompt;      // keep the rendered prompt for the log
    char *prompt_text;     // the rendered prompt (keep_prompt), garlic_malloc'd
    api_usage *usage;      // the call's, filled by api_job_deinit (NULL once streamed)
    double load_seconds;   // time this request spent loading the model
    int64_t created;       // Unix seconds
    char id[48];           // "chatcmpl-..." / "cmpl-..."
    // The answer read as content, reasoning and tool calls (output.c), when parse_output.
    bool parse_output;
    bool starts_in_reasoning; // the rendered prompt opened a <think> block
    bool render_special;      // control tokens come out as text (the parser needs them)
    chat_output_options output;
    char *tools_text;                         // output.tools_json's text (owned)
    chat_output *parsers[ENGINE_MAX_CHOICES]; // per choice, made on first use
} api_job;

// The output of one choice, gathered for a non-streamed answer.
typedef struct api_choice {
    char *text; // (len) garlic_malloc'd
    size_t len, cap;
    engine_token *tokens; // (n_tokens) garlic_malloc'd
    size_t n_tokens, tokens_cap;
    engine_finish finish;
    engine_stats stats;
    uint32_t output_tokens;
} api_choice;

typedef struct api_result {
    api_choice choices[ENGINE_MAX_CHOICES]; // (n)
    uint32_t n;
    uint64_t completion_tokens; // output tokens of every choice
} api_result;

// How a flavour (OpenAI, Ollama) answers a generating request.
typedef struct api_flavour {
    const struct api_stream_ops *stream_ops;                    // the stream's formatter
    const char *stream_type;                                    // the stream's content type
    bool ollama;                                                // errors in Ollama's shape
    cJSON *(*whole)(const api_job *job, const api_result *res); // the whole answer's body
    // The answer to a request that only loads or unloads the model (Ollama's empty prompt):
    // done_reason is "load" or "unload". NULL: every request generates.
    cJSON *(*load_only)(const api_job *job, const char *done_reason);
} api_flavour;

// What a request cut by the server (a cancel it did not ask for) tells its client.
extern const char api_cut_message[];

// The two flavours (openai.c, ollama.c).
extern const api_flavour api_openai_flavour, api_ollama_flavour;

// A generating endpoint: parses the body for kind, finds and loads the model, submits the
// request and answers with a stream or, once every choice ended, the whole answer (or with
// f->load_only's body).
void api_generate(const api_call *call, api_kind kind, const api_flavour *f, api_response *out);

// The prompt's token ids in ids (emptied first): messages rendered with the model's
// template (NULL: the request's own prompt, or Ollama generate's system + prompt), or the
// completion's prompt as is. With keep_prompt, job->prompt_text becomes this rendering.
int api_job_prompt(api_job *job, const cJSON *messages, tokenizer_ids *ids, api_error *err);

// Called when ids (the job's prompt) leaves no position of the context to generate:
// OpenAI requests, and Ollama's with "truncate": false, get a 400 (code
// context_length_exceeded) stating both lengths; other Ollama requests are cut to fit as
// Ollama does (truncate.c), and the log says so. GARLIC_OK when ids now fits.
int api_job_fit(api_job *job, tokenizer_ids *ids, api_error *err);

// ---- The answer as content, reasoning and tool calls (output.c) ----

// Decides from the model's template and the request whether the answer is parsed
// (job->parse_output: a reasoning model, or a tool-calling family offered tools) and how;
// prompt is the rendered prompt (a template that opens <think> in it starts the output there).
// With tool_choice "required" or a named function it also makes the grammar that forces one
// call in the model's format (job->in.grammar); a 400 when that cannot be done.
int api_output_plan(api_job *job, const char *prompt, api_error *err);

// Feeds choice's parser text (made on first use); *events (n of them) are valid until the
// next call for that choice. GARLIC_ENOMEM when the parser cannot grow.
int api_output_feed(api_job *job, uint32_t choice, const char *text, size_t len,
                    const chat_output_event **events, size_t *n);

// The choice ended: what its parser held back (a call left open becomes content).
int api_output_finish(api_job *job, uint32_t choice, const chat_output_event **events, size_t *n);

// Whether choice's answer made a tool call (finish_reason "tool_calls").
bool api_output_called(const api_job *job, uint32_t choice);

void api_output_deinit(api_job *job);

// Fills out with what job used (its prompt text moves there).
void api_job_usage(api_job *job, api_usage *out);

// Fills the call's usage (when it has one) and releases everything.
void api_job_deinit(api_job *job);
void api_result_deinit(api_result *res);

// The finish reason as OpenAI names it.
const char *api_finish_name(engine_finish f);

// Sets err for a model name that registry_model_acquire could not load (gerr): 503 with
// code model_busy when busy models hold the memory (try again), else 500 with code
// model_load_failed and the reason. Returns GARLIC_EINVAL.
int api_load_failed(api_error *err, const char *name, const garlic_error *gerr);

// The model a request names: by its registry name, or by its store name written any way
// ("qwen3" for "qwen3:latest"); a name not found makes the registry look at the store again
// (a model pulled or created meanwhile, even by another process). NULL when unknown.
registry_model *api_find_model(const api_call *call, const char *name);

// Checks an Ollama "options" object (NULL or null: none) with the rules generation's options
// follow: each is honoured there, accepted and ignored for a documented reason, or refused by
// name (400). Endpoints that do not sample (embeddings) accept the same set and use none.
int api_options_check(const cJSON *options, api_error *err);

// data[0..len) in base64 (RFC 4648, padded), NUL-terminated and garlic_malloc'd; NULL
// without memory. (Embeddings' encoding_format "base64".)
char *api_base64_encode(const void *data, size_t len);

// Fills out with the error (and a Retry-After for a full queue).
void api_fail(api_response *out, const api_error *err, bool ollama);

// The body as a JSON object (cJSON_Delete it) whose every member is one of known
// (NULL-terminated; NULL: any), else NULL with err a 400 naming what is wrong (not JSON, not an
// object, the first unknown field).
cJSON *api_body_object(const api_call *call, const char *const *known, api_error *err);

// Sets out to a JSON body made from root (which is deleted), with status.
void api_respond_json(api_response *out, int status, cJSON *root);

// A token's text as valid UTF-8 (bad bytes become U+FFFD) in buf; returns buf.
const char *api_token_text(const tokenizer *t, int32_t id, char *buf, size_t cap);

// ---- Tasks (task.c): long model-management work streamed as NDJSON status lines ----

typedef struct api_task api_task;

// The work of a task: emits status lines as it goes (api_task_emit) and returns the HTTP
// status it ended with (200, or its error's, after emitting {"error": "..."}).
typedef int (*api_task_fn)(api_task *t, void *arg);

// Runs fn(t, arg) on a thread of its own; arg_free (may be NULL) frees arg when the task is
// done and nobody reads it any more. NULL when no thread can start (arg is freed).
api_task *api_task_start(api_task_fn fn, void *arg, void (*arg_free)(void *arg));

// Appends one JSON line (root is deleted); the last line is also kept for api_task_wait.
void api_task_emit(api_task *t, cJSON *root);
void api_task_emit_status(api_task *t, const char *status); // {"status": status}

// Whether the reader went away (the work should stop soon).
bool api_task_cancelled(api_task *t);

// The reader lets go: the task is cancelled if it still runs, and freed once it ends.
void api_task_release(api_task *t);

// Waits for the task's end (giving up when alive says the client is gone: 0) and returns its
// status; *last gets its last line (garlic_malloc'd, NULL if none).
int api_task_wait(api_task *t, api_alive_fn alive, void *ctx, char **last);

// For the stream: moves the lines there are (waiting up to 100 ms for some) into s; *ended
// is set once the task is done and every line is in s, with *status its status.
int api_task_read(api_task *t, api_stream *s, bool *ended, int *status);

// A stream of the task's lines (the stream takes the reader's reference). NULL without
// memory (the task is released).
api_stream *api_stream_of_task(api_task *t);

// ---- Streams ----

typedef struct api_stream_ops {
    // Formats one registry chunk (text, or a choice's end) into the stream.
    int (*chunk)(api_stream *s, const engine_chunk *c);
    // Formats the end (usage, [DONE], Ollama's final object) after the last chunk.
    int (*end)(api_stream *s);
    // Ends a stream that was cut (the server shut down, the model failed or was unloaded)
    // with an error event in the shape the API's clients parse, instead of a normal end;
    // code is the error's code where the API has one ("generation_cut").
    int (*fail)(api_stream *s, const char *message, const char *code);
} api_stream_ops;

// A streamed answer. Owned by the HTTP connection thread that reads it (through the server's
// response object), from api_stream_new to api_stream_free.
struct api_stream {
    api_job job;           // moved in from the handler (empty for a task's stream)
    api_task *task;        // NULL, or the task whose lines this stream carries
    registry *sync_reg;    // with a task: the registry brought in line with the store
    const char *sync_root; // (api_store_sync) when the task ends, before its last lines go
                           // out (both live as long as the server)
    const api_stream_ops *ops;
    char *out; // (out_cap) formatted bytes not yet read
    size_t out_len, out_pos, out_cap;
    bool ended;                       // ops->end ran: nothing more after out
    bool started[ENGINE_MAX_CHOICES]; // the first chunk of a choice went out
    uint64_t completion_tokens;
    engine_stats last_stats; // of the choice that ended last
    engine_finish last_finish;
    garlic_buf call_args; // Ollama: the arguments of the tool call being read
    char call_name[256];  // and its function's name
};

// A stream over job (whose contents move into it; job is left empty). NULL without memory.
api_stream *api_stream_new(api_job *job, const api_stream_ops *ops);

// Appends bytes to what the stream will send. GARLIC_ENOMEM when it cannot grow.
int api_stream_write(api_stream *s, const char *data, size_t len);

// Appends prefix, root printed without spaces, then suffix; deletes root.
int api_stream_write_json(api_stream *s, const char *prefix, cJSON *root, const char *suffix);

#endif
