// SPDX-License-Identifier: MIT
// The streaming chat output parser: a state machine over the held text that decides, byte
// position by byte position, what is content, what is reasoning and where a tool call's block
// starts and ends. Every decision depends only on bytes already seen, and a decision that the
// next bytes could change is put off (the text is held), so any split of the same text gives
// the same events. Blocks are read by the family readers in chat_output_formats.c once whole.
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "base/alloc.h"
#include "sampler/chat_output_internal.h"

enum {
    HARMONY_HEADER_MAX = 512, // bytes a harmony header may take before <|message|>
    MISTRAL_NAME_MAX = 512,   // bytes between [TOOL_CALLS] and [ARGS]
    ID_CHARS = 24,            // random characters after "call_"
    MISTRAL_ID_CHARS = 9,     // Mistral's templates insist on 9
};

typedef enum state {
    ST_CONTENT,   // content, watching for the format's markers
    ST_REASONING, // inside <think>, watching for </think>
    ST_CALL,      // inside a tool-call block (held)
    ST_DISCARD,   // after the first call when parallel calls are off
    ST_H_START,   // harmony: where a message header may start
    ST_H_HEADER,  // harmony: a header, held until <|message|>
    ST_H_TEXT,    // harmony: a message body streamed as content or reasoning
    ST_H_CALL,    // harmony: a tool call's body (held)
    ST_H_PLAIN,   // harmony: text outside any message, as content
} state;

typedef enum block_kind {
    BLOCK_HERMES,      // <tool_call> JSON </tool_call>
    BLOCK_QWEN3_CODER, // <tool_call> <function=...> </tool_call>
    BLOCK_DEEPSEEK,    // <｜tool▁call▁begin｜> ... <｜tool▁call▁end｜>
    BLOCK_MISTRAL,     // [TOOL_CALLS] then a JSON value (after N[ARGS] in the newer form)
    BLOCK_LLAMA_JSON,  // a bare JSON object at the start of the answer
    BLOCK_PYTHON_TAG,  // <|python_tag|> then a JSON object, or N.call(...) to the end
} block_kind;

typedef enum marker_action {
    MARK_CALL, // opens a block
    MARK_SKIP, // dropped (DeepSeek's section markers)
    MARK_STOP, // ends the harmony text it is in; consumed
    MARK_NEXT, // ends the harmony text it is in; starts the next header (not consumed)
} marker_action;

typedef struct marker {
    const char *text;
    marker_action action;
    block_kind block;
} marker;

static const marker hermes_markers[] = {{"<tool_call>", MARK_CALL, BLOCK_HERMES}};
static const marker qwen3_coder_markers[] = {{"<tool_call>", MARK_CALL, BLOCK_QWEN3_CODER}};
static const marker llama_markers[] = {{"<|python_tag|>", MARK_CALL, BLOCK_PYTHON_TAG}};
static const marker mistral_markers[] = {{"[TOOL_CALLS]", MARK_CALL, BLOCK_MISTRAL}};
static const marker deepseek_markers[] = {
    {"<｜tool▁call▁begin｜>", MARK_CALL, BLOCK_DEEPSEEK},
    {"<｜tool▁calls▁begin｜>", MARK_SKIP, 0},
    {"<｜tool▁calls▁end｜>", MARK_SKIP, 0},
};
static const marker harmony_text_markers[] = {
    {"<|end|>", MARK_STOP, 0},   {"<|return|>", MARK_STOP, 0},  {"<|call|>", MARK_STOP, 0},
    {"<|start|>", MARK_NEXT, 0}, {"<|channel|>", MARK_NEXT, 0},
};
static const char THINK_OPEN[] = "<think>";
static const char THINK_CLOSE[] = "</think>";

// White space at the edges of content and reasoning is trimmed: leading blanks after a block
// are skipped, and a trailing run is held until more text shows whether it is trailing.
typedef struct text_edge {
    bool skip_lead;
    garlic_buf pending; // blanks not yet given out
} text_edge;

// An event as stored while a call gathers them: offsets into out, turned into pointers when
// the call returns (out may move as it grows).
typedef struct stored_event {
    chat_output_event_kind kind;
    size_t text, len, id, name; // offsets into out
    uint32_t index;
} stored_event;

// Owned by one thread at a time (the caller's).
struct chat_output {
    chat_output_options opts; // tools_json is not kept (see tools)
    cJSON *tools;             // the parsed tools array, or NULL
    const marker *markers;    // (n_markers) what opens a call in content, for the format
    size_t n_markers;
    uint64_t rng; // splitmix64 state for ids

    garlic_buf in; // text fed and not yet decided: in.data[pos..in.len)
    size_t pos;
    state st;
    bool finished;
    bool think_eligible; // <think> may still open (no content yet)
    bool json_eligible;  // a bare Llama JSON call may still start
    text_edge content, reasoning;
    uint32_t n_calls;

    // The block being read (ST_CALL, ST_H_*): offsets into in, all >= pos.
    block_kind block;
    size_t body_start; // just after the opening marker
    size_t scan;       // where the next search for the closing marker starts
    size_t json_start; // SIZE_MAX until the block's JSON value is found
    size_t json_fed;   // how far the tracker has read
    bool python_code;  // <|python_tag|> followed by something other than JSON
    chat_output_json_tracker tracker;
    chat_output_event_kind h_kind; // ST_H_TEXT: content or reasoning
    char h_name[300];              // ST_H_CALL: the function's name

    chat_output_calls calls;
    garlic_buf out; // event texts, ids and names
    stored_event *stored;
    size_t n_stored, cap_stored;
    chat_output_event *events; // (cap_events) what the last call returned
    size_t cap_events;
};

static bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

static size_t skip_blank(const char *s, size_t n, size_t i)
{
    while (i < n && is_blank(s[i]))
        i++;
    return i;
}

static bool starts_with(const char *s, size_t n, const char *prefix)
{
    size_t len = strlen(prefix);
    return n >= len && memcmp(s, prefix, len) == 0;
}

// s[0..n) is a proper prefix of word (more text could complete it).
static bool partial_of(const char *s, size_t n, const char *word)
{
    return n < strlen(word) && memcmp(s, word, n) == 0;
}

// The number of bytes at the end of s[0..n) that begin a UTF-8 character not yet complete.
static size_t utf8_tail(const char *s, size_t n)
{
    for (size_t k = 1; k <= 3 && k <= n; k++) {
        unsigned char c = (unsigned char)s[n - k];
        if ((c & 0xc0) == 0x80)
            continue;
        size_t need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
        return need > k ? k : 0;
    }
    return 0;
}

// ---- Events ----

static int store_event(chat_output *p, stored_event e)
{
    if (garlic_grow(&p->stored, &p->cap_stored, p->n_stored + 1, sizeof *p->stored) != GARLIC_OK)
        return GARLIC_ENOMEM;
    p->stored[p->n_stored++] = e;
    return GARLIC_OK;
}

// Adds text to the events, merged into the last event when that is of the same kind.
static int push_text(chat_output *p, chat_output_event_kind kind, const char *s, size_t n,
                     uint32_t index)
{
    if (n == 0)
        return GARLIC_OK;
    size_t at = p->out.len;
    if (garlic_buf_append(&p->out, s, n) != GARLIC_OK)
        return GARLIC_ENOMEM;
    stored_event *last = p->n_stored ? &p->stored[p->n_stored - 1] : NULL;
    if (last && last->kind == kind && last->index == index && last->text + last->len == at) {
        last->len += n;
        return GARLIC_OK;
    }
    return store_event(p, (stored_event){.kind = kind, .text = at, .len = n, .index = index});
}

// Gives out s[0..n) as content or reasoning, trimming blanks at the edges (see text_edge).
static int emit_text(chat_output *p, chat_output_event_kind kind, const char *s, size_t n)
{
    text_edge *e = kind == CHAT_OUTPUT_EVENT_CONTENT ? &p->content : &p->reasoning;
    if (e->skip_lead) {
        size_t lead = skip_blank(s, n, 0);
        s += lead;
        n -= lead;
        if (n == 0)
            return GARLIC_OK;
        e->skip_lead = false;
    }
    size_t body = n;
    while (body > 0 && is_blank(s[body - 1]))
        body--;
    if (body == 0)
        return garlic_buf_append(&e->pending, s, n);
    if (kind == CHAT_OUTPUT_EVENT_CONTENT)
        p->think_eligible = p->json_eligible = false;
    if (push_text(p, kind, e->pending.data, e->pending.len, 0) != GARLIC_OK ||
        push_text(p, kind, s, body, 0) != GARLIC_OK)
        return GARLIC_ENOMEM;
    garlic_buf_clear(&e->pending);
    return garlic_buf_append(&e->pending, s + body, n - body);
}

static void drop_pending(text_edge *e) { garlic_buf_clear(&e->pending); }

// A fresh id: "call_" and ID_CHARS letters and digits, or MISTRAL_ID_CHARS of them alone.
static void make_id(chat_output *p, char *id)
{
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    bool mistral = p->opts.format == CHAT_OUTPUT_FORMAT_MISTRAL;
    size_t n = mistral ? MISTRAL_ID_CHARS : ID_CHARS, at = 0;
    if (!mistral) {
        memcpy(id, "call_", 5);
        at = 5;
    }
    for (size_t i = 0; i < n; i++) {
        p->rng += 0x9e3779b97f4a7c15ull;
        uint64_t z = p->rng;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        z ^= z >> 31;
        id[at++] = alphabet[z % (sizeof alphabet - 1)];
    }
    id[at] = '\0';
}

// Emits every call in p->calls (BEGIN, ARGUMENTS, END each). With parallel calls off only the
// first is given and everything after it is dropped.
static int emit_calls(chat_output *p)
{
    for (size_t i = 0; i < p->calls.n; i++) {
        if (!p->opts.parallel_tool_calls && p->n_calls > 0)
            break;
        const struct chat_output_call_span *c = &p->calls.items[i];
        char id[40];
        make_id(p, id);
        stored_event begin = {.kind = CHAT_OUTPUT_EVENT_CALL_BEGIN, .index = p->n_calls};
        begin.id = p->out.len;
        if (garlic_buf_append(&p->out, id, strlen(id) + 1) != GARLIC_OK)
            return GARLIC_ENOMEM;
        begin.name = p->out.len;
        if (garlic_buf_append(&p->out, p->calls.text.data + c->name, c->name_len) != GARLIC_OK ||
            garlic_buf_append(&p->out, "", 1) != GARLIC_OK || store_event(p, begin) != GARLIC_OK ||
            push_text(p, CHAT_OUTPUT_EVENT_CALL_ARGUMENTS, p->calls.text.data + c->args,
                      c->args_len, p->n_calls) != GARLIC_OK ||
            store_event(p,
                        (stored_event){.kind = CHAT_OUTPUT_EVENT_CALL_END, .index = p->n_calls}) !=
                GARLIC_OK)
            return GARLIC_ENOMEM;
        p->n_calls++;
    }
    chat_output_calls_clear(&p->calls);
    return GARLIC_OK;
}

// ---- Markers ----

// The earliest marker in s[0..n) (the longest of those starting together): its offset, or n.
static size_t find_marker(const char *s, size_t n, const marker *m, size_t n_markers,
                          const marker **which)
{
    size_t best = n;
    *which = NULL;
    for (size_t k = 0; k < n_markers; k++) {
        const char *hit = memmem(s, n, m[k].text, strlen(m[k].text));
        size_t at = hit ? (size_t)(hit - s) : n;
        if (hit && (at < best || (at == best && strlen(m[k].text) > strlen((*which)->text)))) {
            best = at;
            *which = &m[k];
        }
    }
    return best;
}

// The length of the longest end of s[0..n) that begins some marker but does not complete it.
static size_t marker_tail(const char *s, size_t n, const marker *m, size_t n_markers)
{
    size_t held = 0;
    for (size_t k = 0; k < n_markers; k++) {
        size_t len = strlen(m[k].text);
        for (size_t t = len - 1 < n ? len - 1 : n; t > held; t--) {
            if (memcmp(s + n - t, m[k].text, t) == 0) {
                held = t;
                break;
            }
        }
    }
    return held;
}

// Gives out s[0..n) up to what a marker or a split UTF-8 character could still claim (all of
// it at the end); returns the bytes given.
static int emit_streaming(chat_output *p, chat_output_event_kind kind, const char *s, size_t n,
                          const marker *m, size_t n_markers, bool at_end, size_t *given)
{
    size_t keep = at_end ? 0 : marker_tail(s, n, m, n_markers);
    if (!at_end)
        keep += utf8_tail(s, n - keep);
    *given = n - keep;
    return emit_text(p, kind, s, n - keep);
}

// ---- Blocks ----

static void begin_block(chat_output *p, block_kind kind, size_t start, size_t body)
{
    p->st = ST_CALL;
    p->block = kind;
    p->pos = start;
    p->body_start = p->scan = body;
    p->json_start = SIZE_MAX;
    p->python_code = false;
    p->tracker = (chat_output_json_tracker){0};
}

// A block that turned out not to be a call: its raw text [pos, end) becomes content and
// scanning goes on after it.
static int block_as_content(chat_output *p, size_t end, state next)
{
    chat_output_calls_clear(&p->calls);
    int rc = emit_text(p, CHAT_OUTPUT_EVENT_CONTENT, p->in.data + p->pos, end - p->pos);
    p->pos = end;
    p->st = next;
    return rc;
}

// Reads the whole block [body_start, body_end) and moves past end: calls, or raw content.
static int finish_block(chat_output *p, size_t body_end, size_t end, state next)
{
    const char *s = p->in.data + p->body_start;
    size_t n = body_end - p->body_start;
    int rc;
    switch (p->block) {
    case BLOCK_HERMES:
    case BLOCK_LLAMA_JSON: rc = chat_output_read_json_call(s, n, &p->calls); break;
    case BLOCK_PYTHON_TAG:
        rc = p->python_code ? chat_output_read_python_call(s, n, &p->calls)
                            : chat_output_read_json_call(s, n, &p->calls);
        break;
    case BLOCK_QWEN3_CODER: rc = chat_output_read_qwen3_coder(s, n, p->tools, &p->calls); break;
    case BLOCK_DEEPSEEK: rc = chat_output_read_deepseek(s, n, &p->calls); break;
    default: rc = chat_output_read_mistral(s, n, &p->calls); break;
    }
    if (rc == GARLIC_ENOMEM)
        return rc;
    if (rc != GARLIC_OK)
        return block_as_content(p, end, next);
    p->pos = end;
    p->st = p->opts.parallel_tool_calls ? next : ST_DISCARD;
    drop_pending(&p->content); // blanks between text and a call, or between calls
    p->content.skip_lead = true;
    p->json_eligible = p->opts.format == CHAT_OUTPUT_FORMAT_LLAMA3;
    return emit_calls(p);
}

// Where the block's JSON value starts: an offset, SIZE_MAX while undecided, or SIZE_MAX - 1
// when the block has none (then it is not a call).
static size_t find_json_start(chat_output *p, size_t limit, bool at_end)
{
    const char *s = p->in.data;
    size_t t = skip_blank(s, limit, p->body_start);
    if (p->block != BLOCK_MISTRAL) {
        if (t == limit)
            return at_end ? SIZE_MAX - 1 : SIZE_MAX;
        return s[t] == '{' ? t : SIZE_MAX - 1;
    }
    // [TOOL_CALLS][...] or [TOOL_CALLS]N[CALL_ID]id[ARGS]{...}
    if (t < limit && s[t] == '[') {
        bool maybe_tag = partial_of(s + t, limit - t, "[ARGS]") ||
            partial_of(s + t, limit - t, "[CALL_ID]");
        if (maybe_tag && !at_end)
            return SIZE_MAX;
        if (!starts_with(s + t, limit - t, "[ARGS]") &&
            !starts_with(s + t, limit - t, "[CALL_ID]") && !maybe_tag)
            return t;
    }
    size_t window = limit - p->body_start < MISTRAL_NAME_MAX ? limit - p->body_start
                                                             : MISTRAL_NAME_MAX;
    const char *hit = memmem(s + p->body_start, window, "[ARGS]", 6);
    if (hit)
        return (size_t)(hit - s) + 6;
    return at_end || window == MISTRAL_NAME_MAX ? SIZE_MAX - 1 : SIZE_MAX;
}

static const char *block_close(block_kind kind)
{
    switch (kind) {
    case BLOCK_HERMES:
    case BLOCK_QWEN3_CODER: return "</tool_call>";
    case BLOCK_DEEPSEEK: return "<｜tool▁call▁end｜>";
    default: return NULL;
    }
}

// The opening marker alone becomes content; scanning resumes right after it.
static int reject_marker(chat_output *p) { return block_as_content(p, p->body_start, ST_CONTENT); }

// A block whose end is its closing marker, searched in [scan, limit).
static int step_marked_block(chat_output *p, size_t limit, bool at_end, bool *progress)
{
    const char *close = block_close(p->block);
    size_t close_len = strlen(close);
    const char *hit = memmem(p->in.data + p->scan, limit - p->scan, close, close_len);
    if (hit) {
        *progress = true;
        size_t at = (size_t)(hit - p->in.data);
        return finish_block(p, at, at + close_len, ST_CONTENT);
    }
    if (limit - p->body_start >= close_len)
        p->scan = limit - close_len + 1;
    if (at_end) {
        // The output ended where the closing marker (or part of it) was due: a block whose
        // body is whole is still a call, else it is content.
        *progress = true;
        size_t body_end = limit;
        for (size_t k = close_len - 1; k > 0; k--) {
            if (limit - p->body_start >= k && !memcmp(p->in.data + limit - k, close, k)) {
                body_end = limit - k;
                break;
            }
        }
        return finish_block(p, body_end, limit, ST_CONTENT);
    }
    if (limit - p->pos >= CHAT_OUTPUT_MAX_CALL) {
        *progress = true;
        return block_as_content(p, limit, ST_CONTENT);
    }
    return GARLIC_OK;
}

// A block whose end is where its JSON value closes (then, for Hermes, its closing marker).
static int step_json_block(chat_output *p, size_t limit, bool at_end, bool *progress)
{
    if (p->json_start == SIZE_MAX) {
        size_t start = find_json_start(p, limit, at_end);
        if (start == SIZE_MAX)
            return GARLIC_OK;
        *progress = true;
        if (start == SIZE_MAX - 1 && p->block == BLOCK_PYTHON_TAG) {
            p->python_code = true; // code or N.call(...): it runs to the end of the answer
            return GARLIC_OK;
        }
        if (start == SIZE_MAX - 1)
            return reject_marker(p);
        p->json_start = p->json_fed = start;
    }
    if (!p->tracker.closed) {
        p->json_fed += chat_output_json_tracker_feed(&p->tracker, p->in.data + p->json_fed,
                                                     limit - p->json_fed);
        if (!p->tracker.closed) {
            if (!at_end && limit - p->pos < CHAT_OUTPUT_MAX_CALL)
                return GARLIC_OK;
            *progress = true;
            return block_as_content(p, limit, ST_CONTENT);
        }
    }
    *progress = true;
    if (p->block != BLOCK_HERMES)
        return finish_block(p, p->json_fed, p->json_fed, ST_CONTENT);
    size_t t = skip_blank(p->in.data, limit, p->json_fed);
    const char *close = "</tool_call>";
    bool partial = partial_of(p->in.data + t, limit - t, close);
    if (partial && at_end) // the output ended where </tool_call> was due
        return finish_block(p, p->json_fed, limit, ST_CONTENT);
    if (partial && limit - p->pos < CHAT_OUTPUT_MAX_CALL) {
        *progress = false;
        return GARLIC_OK;
    }
    if (!starts_with(p->in.data + t, limit - t, close))
        return reject_marker(p);
    return finish_block(p, p->json_fed, t + strlen(close), ST_CONTENT);
}

static int step_call(chat_output *p, bool at_end, bool *progress)
{
    size_t limit = p->in.len - p->pos > CHAT_OUTPUT_MAX_CALL ? p->pos + CHAT_OUTPUT_MAX_CALL
                                                             : p->in.len;
    if (p->python_code) {
        if (!at_end && limit - p->pos < CHAT_OUTPUT_MAX_CALL)
            return GARLIC_OK;
        *progress = true;
        return at_end ? finish_block(p, limit, limit, ST_CONTENT)
                      : block_as_content(p, limit, ST_CONTENT);
    }
    if (block_close(p->block) && p->block != BLOCK_HERMES)
        return step_marked_block(p, limit, at_end, progress);
    return step_json_block(p, limit, at_end, progress);
}

// ---- Content and reasoning ----

// At the start of the answer (or after a Llama call): <think>, or a bare JSON call.
static int step_answer_start(chat_output *p, bool at_end, bool *progress, bool *handled)
{
    const char *s = p->in.data + p->pos;
    size_t n = p->in.len - p->pos, t = skip_blank(s, n, 0);
    *handled = true;
    if (t > 0) {
        *progress = true;
        p->pos += t;
        return emit_text(p, CHAT_OUTPUT_EVENT_CONTENT, s, t);
    }
    if (n == 0)
        return GARLIC_OK;
    if (p->think_eligible) {
        if (partial_of(s, n, THINK_OPEN) && !at_end)
            return GARLIC_OK;
        p->think_eligible = false;
        if (starts_with(s, n, THINK_OPEN)) {
            *progress = true;
            drop_pending(&p->content);
            p->pos += strlen(THINK_OPEN);
            p->st = ST_REASONING;
            p->reasoning.skip_lead = true;
            return GARLIC_OK;
        }
    }
    if (p->json_eligible) {
        if (s[0] == ';' && p->n_calls > 0) { // Llama separates calls with ';' at times
            *progress = true;
            p->pos++;
            return GARLIC_OK;
        }
        p->json_eligible = false;
        if (s[0] == '{') {
            *progress = true;
            begin_block(p, BLOCK_LLAMA_JSON, p->pos, p->pos);
            return GARLIC_OK;
        }
    }
    *handled = false;
    return GARLIC_OK;
}

static int step_content(chat_output *p, bool at_end, bool *progress)
{
    if (p->think_eligible || p->json_eligible) {
        bool handled;
        int rc = step_answer_start(p, at_end, progress, &handled);
        if (rc != GARLIC_OK || handled)
            return rc;
    }
    const char *s = p->in.data + p->pos;
    size_t n = p->in.len - p->pos;
    if (n == 0)
        return GARLIC_OK;
    const marker *m = NULL;
    size_t at = find_marker(s, n, p->markers, p->n_markers, &m);
    if (!m) {
        size_t given;
        int rc = emit_streaming(p, CHAT_OUTPUT_EVENT_CONTENT, s, n, p->markers, p->n_markers,
                                at_end, &given);
        p->pos += given;
        *progress = given > 0;
        return rc;
    }
    *progress = true;
    int rc = emit_text(p, CHAT_OUTPUT_EVENT_CONTENT, s, at);
    p->pos += at;
    if (m->action == MARK_SKIP) {
        p->pos += strlen(m->text);
        return rc;
    }
    begin_block(p, m->block, p->pos, p->pos + strlen(m->text));
    return rc;
}

static int step_reasoning(chat_output *p, bool at_end, bool *progress)
{
    static const marker close[] = {{THINK_CLOSE, MARK_STOP, 0}};
    const char *s = p->in.data + p->pos;
    size_t n = p->in.len - p->pos;
    const char *hit = memmem(s, n, THINK_CLOSE, strlen(THINK_CLOSE));
    if (!hit) {
        size_t given;
        int rc = emit_streaming(p, CHAT_OUTPUT_EVENT_REASONING, s, n, close, 1, at_end, &given);
        p->pos += given;
        *progress = given > 0;
        return rc;
    }
    *progress = true;
    int rc = emit_text(p, CHAT_OUTPUT_EVENT_REASONING, s, (size_t)(hit - s));
    drop_pending(&p->reasoning);
    p->pos += (size_t)(hit - s) + strlen(THINK_CLOSE);
    p->st = ST_CONTENT;
    p->content.skip_lead = true;
    return rc;
}

// ---- Harmony ----

// The word after key in header h[0..n) (up to a blank or '<'), or an empty one.
static void header_word(const char *h, size_t n, const char *key, const char **word, size_t *len)
{
    const char *hit = memmem(h, n, key, strlen(key));
    *word = NULL;
    *len = 0;
    if (!hit)
        return;
    const char *w = hit + strlen(key), *end = h + n;
    size_t k = 0;
    while (w + k < end && !is_blank(w[k]) && w[k] != '<')
        k++;
    *word = w;
    *len = k;
}

static int step_h_start(chat_output *p, bool at_end, bool *progress)
{
    static const char *const starts[] = {"<|start|>", "<|channel|>", "to=", " to="};
    const char *s = p->in.data + p->pos;
    size_t n = p->in.len - p->pos;
    if (n == 0)
        return GARLIC_OK;
    for (size_t k = 0; k < sizeof starts / sizeof *starts; k++) {
        if (partial_of(s, n, starts[k]) && !at_end)
            return GARLIC_OK;
        if (starts_with(s, n, starts[k])) {
            *progress = true;
            p->st = ST_H_HEADER;
            return GARLIC_OK;
        }
    }
    *progress = true;
    p->st = ST_H_PLAIN;
    return GARLIC_OK;
}

// A header [pos, <|message|>): the channel says what the body is, to=functions.N makes a call.
static int step_h_header(chat_output *p, bool at_end, bool *progress)
{
    const char *s = p->in.data + p->pos;
    size_t n = p->in.len - p->pos, window = n < HARMONY_HEADER_MAX ? n : HARMONY_HEADER_MAX;
    const char *hit = memmem(s, window, "<|message|>", 11);
    if (!hit) {
        if (!at_end && window < HARMONY_HEADER_MAX)
            return GARLIC_OK;
        *progress = true;
        return block_as_content(p, p->pos + window, ST_H_PLAIN);
    }
    *progress = true;
    size_t h_len = (size_t)(hit - s);
    const char *channel, *to;
    size_t channel_len, to_len;
    header_word(s, h_len, "<|channel|>", &channel, &channel_len);
    header_word(s, h_len, "to=", &to, &to_len);
    p->body_start = p->scan = p->pos + h_len + 11;
    if (to && to_len > 10 && starts_with(to, to_len, "functions.") &&
        to_len - 10 < sizeof p->h_name) {
        memcpy(p->h_name, to + 10, to_len - 10);
        p->h_name[to_len - 10] = '\0';
        p->st = ST_H_CALL; // pos stays at the header: its raw text is content if the call fails
        return GARLIC_OK;
    }
    if (to) { // a call to something that is not a function: raw content
        p->h_kind = CHAT_OUTPUT_EVENT_CONTENT;
        return block_as_content(p, p->body_start, ST_H_TEXT);
    }
    bool analysis = channel_len == 8 && !memcmp(channel, "analysis", 8);
    p->h_kind = analysis ? CHAT_OUTPUT_EVENT_REASONING : CHAT_OUTPUT_EVENT_CONTENT;
    if (analysis)
        p->reasoning.skip_lead = true;
    p->pos = p->body_start;
    p->st = ST_H_TEXT;
    return GARLIC_OK;
}

// A message body given out as it comes, or text outside messages (ST_H_PLAIN), up to a marker
// that ends it.
static int step_h_text(chat_output *p, bool at_end, bool *progress)
{
    const size_t n_markers = sizeof harmony_text_markers / sizeof *harmony_text_markers;
    chat_output_event_kind kind = p->st == ST_H_PLAIN ? CHAT_OUTPUT_EVENT_CONTENT : p->h_kind;
    const char *s = p->in.data + p->pos;
    size_t n = p->in.len - p->pos;
    const marker *m;
    size_t at = find_marker(s, n, harmony_text_markers, n_markers, &m);
    if (!m) {
        size_t given;
        int rc = emit_streaming(p, kind, s, n, harmony_text_markers, n_markers, at_end, &given);
        p->pos += given;
        *progress = given > 0;
        return rc;
    }
    *progress = true;
    int rc = emit_text(p, kind, s, at);
    if (kind == CHAT_OUTPUT_EVENT_REASONING)
        drop_pending(&p->reasoning);
    p->pos += at + (m->action == MARK_STOP ? strlen(m->text) : 0);
    p->st = ST_H_START;
    return rc;
}

static int step_h_call(chat_output *p, bool at_end, bool *progress)
{
    const size_t n_markers = sizeof harmony_text_markers / sizeof *harmony_text_markers;
    size_t limit = p->in.len - p->pos > CHAT_OUTPUT_MAX_CALL ? p->pos + CHAT_OUTPUT_MAX_CALL
                                                             : p->in.len;
    const marker *m;
    size_t at = p->scan +
        find_marker(p->in.data + p->scan, limit - p->scan, harmony_text_markers, n_markers, &m);
    if (!m && !at_end && limit - p->pos < CHAT_OUTPUT_MAX_CALL) {
        size_t held = marker_tail(p->in.data + p->scan, limit - p->scan, harmony_text_markers,
                                  n_markers);
        p->scan = limit - held;
        return GARLIC_OK;
    }
    *progress = true;
    // At the end without a terminator: <|call|> ends generation, so it may never be fed.
    size_t end = m && m->action == MARK_STOP ? at + strlen(m->text) : at;
    const char *args = p->in.data + p->body_start;
    int rc = p->opts.tools
        ? chat_output_calls_add(&p->calls, p->h_name, strlen(p->h_name), args, at - p->body_start)
        : GARLIC_EFORMAT;
    if (rc == GARLIC_ENOMEM)
        return rc;
    if (rc != GARLIC_OK || (!m && !at_end))
        return block_as_content(p, at, ST_H_START);
    p->pos = end;
    p->st = p->opts.parallel_tool_calls ? ST_H_START : ST_DISCARD;
    drop_pending(&p->content);
    p->content.skip_lead = true;
    return emit_calls(p);
}

// ---- Driving ----

// Runs the state machine until it needs more text (or, at the end, has used all of it).
static int run(chat_output *p, bool at_end)
{
    if (!p->in.data) // nothing was ever fed
        return GARLIC_OK;
    for (;;) {
        bool progress = false;
        int rc = GARLIC_OK;
        switch (p->st) {
        case ST_CONTENT: rc = step_content(p, at_end, &progress); break;
        case ST_REASONING: rc = step_reasoning(p, at_end, &progress); break;
        case ST_CALL: rc = step_call(p, at_end, &progress); break;
        case ST_DISCARD: p->pos = p->in.len; break;
        case ST_H_START: rc = step_h_start(p, at_end, &progress); break;
        case ST_H_HEADER: rc = step_h_header(p, at_end, &progress); break;
        case ST_H_TEXT:
        case ST_H_PLAIN: rc = step_h_text(p, at_end, &progress); break;
        case ST_H_CALL: rc = step_h_call(p, at_end, &progress); break;
        }
        if (rc != GARLIC_OK || !progress)
            return rc;
    }
}

// Drops the text before pos (decided) and the last call's events; shifts the block offsets.
static void begin_round(chat_output *p)
{
    size_t shift = p->pos;
    if (shift > 0)
        memmove(p->in.data, p->in.data + shift, p->in.len - shift);
    p->in.len -= shift;
    p->pos = 0;
    if (p->st == ST_CALL || p->st == ST_H_CALL || p->st == ST_H_HEADER) {
        p->body_start -= p->body_start >= shift ? shift : p->body_start;
        p->scan -= p->scan >= shift ? shift : p->scan;
        if (p->json_start != SIZE_MAX) {
            p->json_start -= shift;
            p->json_fed -= shift;
        }
    }
    garlic_buf_clear(&p->out);
    p->n_stored = 0;
}

// Turns the stored events into the caller's array.
static int publish(chat_output *p, const chat_output_event **events, size_t *n_events,
                   garlic_error *err)
{
    if (garlic_grow(&p->events, &p->cap_events, p->n_stored, sizeof *p->events) != GARLIC_OK)
        return garlic_error_set(err, GARLIC_ENOMEM, "chat output: out of memory for events");
    for (size_t i = 0; i < p->n_stored; i++) {
        const stored_event *e = &p->stored[i];
        chat_output_event *o = &p->events[i];
        *o = (chat_output_event){.kind = e->kind, .index = e->index};
        if (e->kind == CHAT_OUTPUT_EVENT_CALL_BEGIN) {
            o->id = p->out.data + e->id;
            o->name = p->out.data + e->name;
        } else if (e->kind != CHAT_OUTPUT_EVENT_CALL_END) {
            o->text = p->out.data + e->text;
            o->len = e->len;
        }
    }
    *events = p->events;
    *n_events = p->n_stored;
    return GARLIC_OK;
}

int chat_output_feed(chat_output *p, const char *text, size_t len, const chat_output_event **events,
                     size_t *n_events, garlic_error *err)
{
    begin_round(p);
    *events = NULL;
    *n_events = 0;
    if (p->finished || len == 0)
        return GARLIC_OK;
    if (garlic_buf_append(&p->in, text, len) != GARLIC_OK)
        return garlic_error_set(err, GARLIC_ENOMEM,
                                "chat output: out of memory holding %zu bytes of output",
                                p->in.len + len);
    if (run(p, false) != GARLIC_OK)
        return garlic_error_set(err, GARLIC_ENOMEM, "chat output: out of memory for events");
    return publish(p, events, n_events, err);
}

int chat_output_finish(chat_output *p, const chat_output_event **events, size_t *n_events,
                       garlic_error *err)
{
    begin_round(p);
    *events = NULL;
    *n_events = 0;
    if (p->finished)
        return GARLIC_OK;
    p->finished = true;
    if (run(p, true) != GARLIC_OK)
        return garlic_error_set(err, GARLIC_ENOMEM, "chat output: out of memory for events");
    // Trailing blanks of reasoning go; those of content stay unless calls follow the text.
    if (p->n_calls == 0 &&
        push_text(p, CHAT_OUTPUT_EVENT_CONTENT, p->content.pending.data, p->content.pending.len,
                  0) != GARLIC_OK)
        return garlic_error_set(err, GARLIC_ENOMEM, "chat output: out of memory for events");
    drop_pending(&p->content);
    drop_pending(&p->reasoning);
    return publish(p, events, n_events, err);
}

uint32_t chat_output_call_count(const chat_output *p) { return p->n_calls; }

void chat_output_reset(chat_output *p)
{
    garlic_buf_clear(&p->in);
    p->pos = 0;
    p->finished = false;
    p->n_calls = 0;
    drop_pending(&p->content);
    drop_pending(&p->reasoning);
    p->content.skip_lead = p->reasoning.skip_lead = false;
    chat_output_calls_clear(&p->calls);
    garlic_buf_clear(&p->out);
    p->n_stored = 0;
    bool harmony = p->opts.format == CHAT_OUTPUT_FORMAT_HARMONY;
    p->st = harmony ? ST_H_START : ST_CONTENT;
    p->think_eligible = !harmony && p->opts.reasoning;
    p->json_eligible = p->opts.format == CHAT_OUTPUT_FORMAT_LLAMA3 && p->opts.tools;
    if (!harmony && p->opts.reasoning && p->opts.starts_in_reasoning) {
        p->st = ST_REASONING;
        p->think_eligible = false;
        p->reasoning.skip_lead = true;
    }
}

chat_output_options chat_output_options_default(void)
{
    return (chat_output_options){
        .format = CHAT_OUTPUT_FORMAT_NONE, .reasoning = true, .parallel_tool_calls = true};
}

static uint64_t system_seed(void)
{
    uint64_t seed = 0;
    if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) == (ssize_t)sizeof seed && seed)
        return seed;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000007ull ^ (uint64_t)ts.tv_nsec ^ (uintptr_t)&seed;
}

static void set_markers(chat_output *p)
{
    p->markers = NULL;
    p->n_markers = 0;
    if (!p->opts.tools)
        return;
    switch (p->opts.format) {
    case CHAT_OUTPUT_FORMAT_HERMES: p->markers = hermes_markers, p->n_markers = 1; break;
    case CHAT_OUTPUT_FORMAT_QWEN3_CODER: p->markers = qwen3_coder_markers, p->n_markers = 1; break;
    case CHAT_OUTPUT_FORMAT_LLAMA3: p->markers = llama_markers, p->n_markers = 1; break;
    case CHAT_OUTPUT_FORMAT_MISTRAL: p->markers = mistral_markers, p->n_markers = 1; break;
    case CHAT_OUTPUT_FORMAT_DEEPSEEK:
        p->markers = deepseek_markers;
        p->n_markers = sizeof deepseek_markers / sizeof *deepseek_markers;
        break;
    default: break;
    }
}

chat_output *chat_output_new(const chat_output_options *options, garlic_error *err)
{
    if ((unsigned)options->format >= CHAT_OUTPUT_FORMAT_COUNT) {
        garlic_error_set(err, GARLIC_EINVAL, "chat output: format %d is out of range",
                         (int)options->format);
        return NULL;
    }
    cJSON *tools = NULL;
    if (options->tools_json) {
        tools = cJSON_ParseWithLength(options->tools_json, options->tools_json_len);
        if (!cJSON_IsArray(tools)) {
            bool parsed = tools != NULL;
            cJSON_Delete(tools);
            garlic_error_set(err, GARLIC_EINVAL, "chat output: tools is %s",
                             parsed ? "not a JSON array" : "not valid JSON");
            return NULL;
        }
    }
    chat_output *p = garlic_calloc(1, sizeof *p);
    if (!p) {
        cJSON_Delete(tools);
        garlic_error_set(err, GARLIC_ENOMEM, "chat output: out of memory for a parser");
        return NULL;
    }
    p->opts = *options;
    p->opts.tools_json = NULL;
    p->opts.tools_json_len = 0;
    p->tools = tools;
    p->rng = options->id_seed ? options->id_seed : system_seed();
    set_markers(p);
    chat_output_reset(p);
    return p;
}

void chat_output_free(chat_output *p)
{
    if (!p)
        return;
    cJSON_Delete(p->tools);
    garlic_buf_deinit(&p->in);
    garlic_buf_deinit(&p->content.pending);
    garlic_buf_deinit(&p->reasoning.pending);
    chat_output_calls_deinit(&p->calls);
    garlic_buf_deinit(&p->out);
    garlic_free(p->stored);
    garlic_free(p->events);
    garlic_free(p);
}

// ---- The whole text at once ----

void chat_output_result_deinit(chat_output_result *r)
{
    garlic_free(r->content);
    garlic_free(r->reasoning);
    for (size_t i = 0; i < r->n_calls; i++) {
        garlic_free(r->calls[i].id);
        garlic_free(r->calls[i].name);
        garlic_free(r->calls[i].arguments);
    }
    garlic_free(r->calls);
    *r = (chat_output_result){0};
}

// Adds one batch of events to the gathered result.
static int gather(chat_output_result *r, garlic_buf *content, garlic_buf *reasoning,
                  garlic_buf *args, size_t *cap_calls, const chat_output_event *ev, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const chat_output_event *e = &ev[i];
        int rc = GARLIC_OK;
        if (e->kind == CHAT_OUTPUT_EVENT_CONTENT) {
            rc = garlic_buf_append(content, e->text, e->len);
        } else if (e->kind == CHAT_OUTPUT_EVENT_REASONING) {
            rc = garlic_buf_append(reasoning, e->text, e->len);
        } else if (e->kind == CHAT_OUTPUT_EVENT_CALL_ARGUMENTS) {
            rc = garlic_buf_append(args, e->text, e->len);
        } else if (e->kind == CHAT_OUTPUT_EVENT_CALL_BEGIN) {
            if (garlic_grow(&r->calls, cap_calls, r->n_calls + 1, sizeof *r->calls) != GARLIC_OK)
                return GARLIC_ENOMEM;
            chat_output_call *c = &r->calls[r->n_calls++];
            *c = (chat_output_call){garlic_strndup(e->id, strlen(e->id)),
                                    garlic_strndup(e->name, strlen(e->name)), NULL};
            garlic_buf_clear(args);
            rc = c->id && c->name ? GARLIC_OK : GARLIC_ENOMEM;
        } else if (e->kind == CHAT_OUTPUT_EVENT_CALL_END && r->n_calls > 0) {
            r->calls[r->n_calls - 1].arguments = garlic_strndup(args->data ? args->data : "",
                                                                args->len);
            rc = r->calls[r->n_calls - 1].arguments ? GARLIC_OK : GARLIC_ENOMEM;
        }
        if (rc != GARLIC_OK)
            return GARLIC_ENOMEM;
    }
    return GARLIC_OK;
}

int chat_output_parse(const chat_output_options *options, const char *text, size_t len,
                      chat_output_result *out, garlic_error *err)
{
    *out = (chat_output_result){0};
    chat_output *p = chat_output_new(options, err);
    if (!p)
        return err ? err->code : GARLIC_ENOMEM;
    garlic_buf content = {0}, reasoning = {0}, args = {0};
    size_t cap_calls = 0, n = 0;
    const chat_output_event *ev;
    int rc = chat_output_feed(p, text, len, &ev, &n, err);
    if (rc == GARLIC_OK && gather(out, &content, &reasoning, &args, &cap_calls, ev, n) != 0)
        rc = garlic_error_set(err, GARLIC_ENOMEM, "chat output: out of memory for the result");
    if (rc == GARLIC_OK)
        rc = chat_output_finish(p, &ev, &n, err);
    if (rc == GARLIC_OK && gather(out, &content, &reasoning, &args, &cap_calls, ev, n) != 0)
        rc = garlic_error_set(err, GARLIC_ENOMEM, "chat output: out of memory for the result");
    chat_output_free(p);
    garlic_buf_deinit(&args);
    out->content_len = content.len;
    out->reasoning_len = reasoning.len;
    out->content = garlic_buf_take(&content);
    out->reasoning = garlic_buf_take(&reasoning);
    if (rc == GARLIC_OK && (!out->content || !out->reasoning))
        rc = garlic_error_set(err, GARLIC_ENOMEM, "chat output: out of memory for the result");
    if (rc != GARLIC_OK)
        chat_output_result_deinit(out);
    return rc;
}
