// SPDX-License-Identifier: MIT
// The server: the route table, authentication, Host and CORS checks, /health and /metrics,
// the pages, and the request log, on top of garlic's HTTP layer (http.c: a thread per
// connection, so a streaming answer may block its own thread while the model works).
// Streamed answers are written as the model produces them; a client that is gone, or that
// stops accepting bytes for the write timeout, cancels its generation.
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "api/api.h"
#include "base/alloc.h"
#include "base/buffer.h"
#include "base/clock.h"
#include "base/log.h"
#include "server/http.h"
#include "server/internal.h"
#include "server/server.h"
#include "web/web.h"

typedef void (*route_fn)(const api_call *call, api_response *out);

typedef struct route_entry {
    const char *method;
    const char *path; // the whole path, or (prefix) its beginning: the rest is the argument
    route_fn handler; // NULL: built in (/health, /metrics, the pages)
    bool ollama;      // errors in Ollama's shape
    bool prefix;
} route_entry;

static const route_entry routes[] = {
    {"GET", "/health", NULL, false, false},
    {"GET", "/metrics", NULL, false, false},
    {"GET", "/", NULL, true, false},
    {"GET", "/ops", NULL, false, false},
    {"GET", "/static/", NULL, false, true},
    {"GET", "/v1/models", api_openai_models, false, false},
    {"GET", "/v1/models/", api_openai_model, false, true},
    {"POST", "/v1/chat/completions", api_openai_chat, false, false},
    {"POST", "/v1/completions", api_openai_completions, false, false},
    {"GET", "/api/version", api_ollama_version, true, false},
    {"GET", "/api/tags", api_ollama_tags, true, false},
    {"POST", "/api/show", api_ollama_show, true, false},
    {"GET", "/api/ps", api_ollama_ps, true, false},
    {"POST", "/api/generate", api_ollama_generate, true, false},
    {"POST", "/api/chat", api_ollama_chat, true, false},
    {"POST", "/api/pull", api_ollama_pull, true, false},
    {"POST", "/api/create", api_ollama_create, true, false},
    {"DELETE", "/api/delete", api_ollama_delete, true, false},
    {"POST", "/api/copy", api_ollama_copy, true, false},
    {"POST", "/tokenize", api_tokenize, false, false},
    {"POST", "/detokenize", api_detokenize, false, false},
    {"POST", "/v1/embeddings", api_openai_embeddings, false, false},
    {"POST", "/api/embed", api_ollama_embed, true, false},
    {"POST", "/api/embeddings", api_ollama_embeddings, true, false},
};
enum { N_ROUTES = sizeof routes / sizeof routes[0], ROUTE_OTHER = N_ROUTES };

// Set up by server_start and read-only afterwards, except metrics, which every HTTP thread
// updates with atomics.
struct server {
    http_server *http;
    registry *reg;       // borrowed
    char *api_key;       // NULL: open
    char *cors_origin;   // --cors-origin's list; NULL: pages on localhost (server_cors_check)
    char *allowed_hosts; // --allowed-hosts' list; NULL: this machine's names and addresses
    char *store_root;    // NULL: no model store
    size_t max_body;
    uint16_t port;
    bool log_requests, log_prompts;
    server_metrics metrics; // shared by the HTTP threads (atomics)
};

// What the request log says of a request.
typedef struct request_record {
    char method[16];
    char path[128];
    double t_start;  // monotonic seconds at the head
    int status;      // of the answer sent, 0 before
    api_usage usage; // of a generating request
} request_record;

// One HTTP request, from its head to its end (the HTTP layer's user state).
typedef struct exchange {
    size_t route;   // index in routes, ROUTE_OTHER when none
    char *path_arg; // what follows a prefix route's path (garlic_malloc'd), or NULL
    request_record rec;
    char cors_allow[256];   // Access-Control-Allow-Origin, "" for none
    char cors_headers[512]; // a preflight's Access-Control-Allow-Headers, "" when not one
} exchange;

// One line on the log for a finished request: time, method, path, model, status, tokens,
// time to first token and total time (and the rendered prompt with --verbose).
static void log_request(const server *srv, request_record *rec)
{
    if (srv->log_requests) {
        garlic_log_line l;
        garlic_log_begin(&l, "request");
        garlic_log_str(&l, "method", rec->method);
        garlic_log_str(&l, "path", rec->path);
        garlic_log_int(&l, "status", rec->status);
        if (rec->usage.model[0])
            garlic_log_str(&l, "model", rec->usage.model);
        if (rec->usage.prompt_tokens) {
            garlic_log_int(&l, "prompt_tokens", rec->usage.prompt_tokens);
            garlic_log_int(&l, "generated_tokens", (int64_t)rec->usage.generated_tokens);
            garlic_log_num(&l, "ttft_ms", rec->usage.ttft_seconds * 1e3);
        }
        garlic_log_num(&l, "total_ms", (garlic_now() - rec->t_start) * 1e3);
        if (srv->log_prompts && rec->usage.prompt)
            garlic_log_str(&l, "prompt", rec->usage.prompt);
        garlic_log_end(&l);
    }
    garlic_free(rec->usage.prompt);
    rec->usage.prompt = NULL;
}

// The content type and the CORS headers the exchange's origin earned (on_head decided them).
static void common_fields(const exchange *ex, http_fields *f, const char *content_type)
{
    if (content_type)
        http_fields_add(f, "Content-Type", content_type);
    http_fields_add(f, "Vary", "Origin");
    if (!ex->cors_allow[0])
        return;
    http_fields_add(f, "Access-Control-Allow-Origin", ex->cors_allow);
    if (ex->cors_headers[0]) {
        http_fields_add(f, "Access-Control-Allow-Headers", ex->cors_headers);
        http_fields_add(f, "Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS");
        http_fields_add(f, "Access-Control-Max-Age", "600");
    }
}

// Sends a whole-body answer and counts it.
static void send_body(server *srv, http_exchange *x, exchange *ex, int status,
                      const char *content_type, const char *body, size_t len, uint32_t retry_after)
{
    ex->rec.status = status;
    http_fields f = {0};
    common_fields(ex, &f, content_type);
    char value[16];
    if (retry_after) {
        snprintf(value, sizeof value, "%u", retry_after);
        http_fields_add(&f, "Retry-After", value);
    }
    if (status == 401)
        http_fields_add(&f, "WWW-Authenticate", "Bearer");
    http_respond(x, status, &f, body, len);
    server_metrics_count(&srv->metrics, ex->route, status);
}

// An error answer in the shape the route's clients expect.
static void send_error(server *srv, http_exchange *x, exchange *ex, int status, const char *code,
                       const char *fmt, const char *arg)
{
    size_t route = ex->route;
    api_error err = {0};
    api_error_set(&err, status, NULL, fmt, arg);
    err.code = code;
    api_response resp = {0};
    // Ollama's shape on its routes, and on any other /api/ path (a wrong method, an endpoint
    // garlic lacks), so that the ollama clients show the message.
    bool ollama = route < N_ROUTES ? routes[route].ollama : strncmp(ex->rec.path, "/api/", 5) == 0;
    api_response_error(&resp, &err, ollama);
    send_body(srv, x, ex, resp.status, resp.content_type, resp.body, resp.len, 0);
    api_response_deinit(&resp);
}

// The client is still connected (a reset or failed socket says it is not).
static bool client_alive(void *ctx) { return http_client_alive(ctx); }

// Sends a streamed answer as the stream produces it, then frees the stream. A client that is
// gone or stalled ends the stream, which cancels its generation.
static void send_stream(server *srv, http_exchange *x, exchange *ex, api_response *resp)
{
    api_stream *stream = resp->stream;
    resp->stream = NULL;
    ex->rec.status = resp->status;
    http_fields f = {0};
    common_fields(ex, &f, resp->content_type);
    http_fields_add(&f, "Cache-Control", "no-cache");
    server_metrics_count(&srv->metrics, ex->route, resp->status);
    atomic_fetch_add(&srv->metrics.streams, 1);
    bool failed = http_stream_begin(x, resp->status, &f) != GARLIC_OK;
    char buf[16 * 1024];
    while (!failed) {
        ssize_t n = api_stream_read(stream, buf, sizeof buf, client_alive, x);
        if (n == 0)
            break;
        failed = n < 0 || http_stream_write(x, buf, (size_t)n) != GARLIC_OK;
    }
    http_stream_end(x, failed);
    api_stream_usage(stream, &ex->rec.usage);
    api_stream_free(stream); // a stream that did not end is cancelled here
    atomic_fetch_sub(&srv->metrics.streams, 1);
}

// Sends an embedded page file (web/) with headers that keep its script to itself.
static void send_page(server *srv, http_exchange *x, exchange *ex, const char *path)
{
    const unsigned char *data;
    size_t len;
    const char *type;
    if (!web_asset(path, &data, &len, &type)) {
        send_error(srv, x, ex, 404, "not_found", "no page %s", path);
        return;
    }
    ex->rec.status = 200;
    http_fields f = {0};
    common_fields(ex, &f, type);
    http_fields_add(&f, "Content-Security-Policy", web_content_security_policy);
    http_fields_add(&f, "X-Content-Type-Options", "nosniff");
    http_fields_add(&f, "Referrer-Policy", "no-referrer");
    http_fields_add(&f, "Cache-Control", "no-cache");
    http_respond(x, 200, &f, (const char *)data, len);
    server_metrics_count(&srv->metrics, ex->route, 200);
}

// A browser asks for HTML (its Accept names text/html); API clients probing / do not.
static bool wants_html(const http_exchange *x)
{
    const char *accept = http_header(x, "Accept");
    return accept && strstr(accept, "text/html");
}

// /health (api_health): 200, or 503 once the distributed job failed.
static void send_health(server *srv, http_exchange *x, exchange *ex)
{
    api_response resp = {0};
    api_health(&resp);
    send_body(srv, x, ex, resp.status, resp.content_type, resp.body, resp.len, 0);
    api_response_deinit(&resp);
}

// Built-in routes: /health, /metrics, the pages (/ for browsers, /ops, /static/...), and /
// for API clients (Ollama's probe it and read the plain text).
static void serve_builtin(server *srv, http_exchange *x, exchange *ex)
{
    const char *path = routes[ex->route].path;
    if (strcmp(path, "/health") == 0) {
        send_health(srv, x, ex);
    } else if (strcmp(path, "/") == 0 && wants_html(x)) {
        send_page(srv, x, ex, "/static/chat.html");
    } else if (strcmp(path, "/") == 0) {
        static const char running[] = "garlic is running";
        send_body(srv, x, ex, 200, "text/plain", running, sizeof running - 1, 0);
    } else if (strcmp(path, "/ops") == 0) {
        send_page(srv, x, ex, "/static/ops.html");
    } else if (strcmp(path, "/static/") == 0) {
        send_page(srv, x, ex, http_path(x));
    } else {
        size_t len = 0;
        char *text = server_metrics_render(&srv->metrics, srv->reg, &len);
        if (!text) {
            send_error(srv, x, ex, 503, NULL, "%s", "out of memory");
            return;
        }
        send_body(srv, x, ex, 200, "text/plain; version=0.0.4", text, len, 0);
        garlic_free(text);
    }
}

// Runs the route's handler on the body and sends its answer.
static void on_request(void *ctx, http_exchange *x)
{
    server *srv = ctx;
    exchange *ex = http_user(x);
    const route_entry *rt = &routes[ex->route];
    if (!rt->handler) {
        serve_builtin(srv, x, ex);
        return;
    }
    api_error fault = {0};
    if (api_fault(&fault)) { // (the job ends in a moment: no model can answer)
        api_response resp = {0};
        api_response_error(&resp, &fault, rt->ollama);
        send_body(srv, x, ex, resp.status, resp.content_type, resp.body, resp.len, 0);
        api_response_deinit(&resp);
        return;
    }
    api_call call = {.reg = srv->reg,
                     .body = http_body(x),
                     .len = http_body_len(x),
                     .alive = client_alive,
                     .alive_ctx = x,
                     .usage = &ex->rec.usage,
                     .keep_prompt = srv->log_prompts,
                     .store_root = srv->store_root,
                     .path_arg = ex->path_arg};
    api_response resp = {0};
    rt->handler(&call, &resp);
    if (resp.stream)
        send_stream(srv, x, ex, &resp);
    else
        send_body(srv, x, ex, resp.status, resp.content_type, resp.body, resp.len,
                  resp.retry_after);
    api_response_deinit(&resp);
}

// Compares a presented key with the configured one in time independent of where they differ.
static bool key_matches(const char *want, const char *got)
{
    size_t n = strlen(want), m = strlen(got);
    unsigned char diff = (unsigned char)(n != m);
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)(want[i] ^ (i < m ? got[i] : 0));
    return diff == 0;
}

// The pages and /health are open (the page asks for the key itself); the rest needs the key
// when the server has one.
static bool authorized(const server *srv, const http_exchange *x, size_t route)
{
    const char *path = routes[route].path;
    bool open = strcmp(path, "/health") == 0 || strcmp(path, "/ops") == 0 ||
        strcmp(path, "/static/") == 0 || (strcmp(path, "/") == 0 && wants_html(x));
    if (!srv->api_key || open)
        return true;
    const char *h = http_header(x, "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return false;
    return key_matches(srv->api_key, h + 7);
}

// Finds the route for method and path; *wrong_method is set when the path exists under
// another method.
static size_t find_route(const char *method, const char *url, bool *wrong_method)
{
    *wrong_method = false;
    for (size_t i = 0; i < N_ROUTES; i++) {
        size_t len = strlen(routes[i].path);
        if (routes[i].prefix ? strncmp(routes[i].path, url, len) != 0 || !url[len]
                             : strcmp(routes[i].path, url) != 0)
            continue;
        if (strcmp(routes[i].method, method) == 0 ||
            (strcmp(method, "HEAD") == 0 && strcmp(routes[i].method, "GET") == 0))
            return i;
        *wrong_method = true;
    }
    return ROUTE_OTHER;
}

// Applies the CORS rules to the request's Origin: for an allowed one fills ex's CORS
// headers (and, for a preflight, the headers it may send).
static server_cors check_origin(const server *srv, const http_exchange *x, exchange *ex,
                                bool preflight)
{
    server_cors verdict = server_cors_check(srv->cors_origin, http_header(x, "Origin"),
                                            http_header(x, "Host"), ex->cors_allow,
                                            sizeof ex->cors_allow);
    if (verdict == SERVER_CORS_ALLOWED && preflight)
        server_cors_request_headers(http_header(x, "Access-Control-Request-Headers"),
                                    ex->cors_headers, sizeof ex->cors_headers);
    return verdict;
}

// A new exchange's state, attached to x; NULL without memory.
static exchange *exchange_new(http_exchange *x)
{
    exchange *ex = garlic_calloc(1, sizeof *ex);
    if (!ex)
        return NULL;
    ex->route = ROUTE_OTHER;
    ex->rec.t_start = garlic_now();
    snprintf(ex->rec.method, sizeof ex->rec.method, "%s", http_method(x));
    snprintf(ex->rec.path, sizeof ex->rec.path, "%s", http_path(x) ? http_path(x) : "");
    http_set_user(x, ex);
    return ex;
}

// A request's head: route, Host, CORS preflight, authentication, declared size. Either
// answers at once or returns to have the body read.
static void on_head(void *ctx, http_exchange *x)
{
    server *srv = ctx;
    exchange *ex = exchange_new(x);
    if (!ex) {
        static const char oom[] = "{\"error\":{\"message\":\"out of memory\"}}";
        http_respond(x, 503, NULL, oom, sizeof oom - 1);
        return;
    }
    const char *method = http_method(x), *url = http_path(x);
    http_set_max_body(x, srv->max_body);
    bool wrong_method;
    ex->route = find_route(method, url, &wrong_method);
    if (ex->route < N_ROUTES && routes[ex->route].prefix &&
        !(ex->path_arg = garlic_strndup(url + strlen(routes[ex->route].path), SIZE_MAX))) {
        send_error(srv, x, ex, 503, "out_of_memory", "%s", "out of memory");
        return;
    }
    const char *host = http_header(x, "Host");
    if (!server_host_allowed(srv->allowed_hosts, host)) {
        send_error(srv, x, ex, 403, "host_not_allowed",
                   "this server answers requests for localhost, its IP addresses and this "
                   "machine's name, not for %s (garlic serve --allowed-hosts lists other "
                   "names it may be reached under)",
                   host);
        return;
    }
    bool preflight = strcmp(method, "OPTIONS") == 0;
    server_cors verdict = check_origin(srv, x, ex, preflight);
    if (verdict == SERVER_CORS_REFUSED)
        send_error(srv, x, ex, 403, "origin_not_allowed",
                   "a page on origin %s may not call this server (garlic serve "
                   "--cors-origin lists the origins allowed)",
                   http_header(x, "Origin"));
    else if (preflight && verdict == SERVER_CORS_NONE)
        send_error(srv, x, ex, 405, "method_not_allowed", "%s",
                   "OPTIONS is a CORS preflight and needs an Origin header");
    else if (preflight)
        send_body(srv, x, ex, 204, NULL, "", 0, 0);
    else if (ex->route == ROUTE_OTHER && wrong_method)
        send_error(srv, x, ex, 405, "method_not_allowed", "%s is not allowed on this path", method);
    else if (ex->route == ROUTE_OTHER)
        send_error(srv, x, ex, 404, "not_found", "no endpoint %s", url);
    else if (!authorized(srv, x, ex->route))
        send_error(srv, x, ex, 401, "invalid_api_key", "%s",
                   "a valid API key is required: send 'Authorization: Bearer KEY'");
}

// The HTTP layer refuses a request (malformed, too large, too slow): an error in the API's
// shape.
static void on_refuse(void *ctx, http_exchange *x, int status, const char *code,
                      const char *message)
{
    server *srv = ctx;
    exchange *ex = http_user(x);
    if (!ex && !(ex = exchange_new(x)))
        return;
    if (status == 413) {
        char limit[32];
        snprintf(limit, sizeof limit, "%zu", srv->max_body);
        send_error(srv, x, ex, 413, "request_too_large",
                   "the body is larger than the limit of %s bytes", limit);
        return;
    }
    send_error(srv, x, ex, status, code, "%s", message);
}

static void on_done(void *ctx, http_exchange *x)
{
    server *srv = ctx;
    exchange *ex = http_user(x);
    if (!ex)
        return;
    if (ex->rec.method[0])
        log_request(srv, &ex->rec);
    garlic_free(ex->rec.usage.prompt);
    garlic_free(ex->path_arg);
    garlic_free(ex);
    http_set_user(x, NULL);
}

static const http_handlers handlers = {
    .head = on_head, .request = on_request, .refuse = on_refuse, .done = on_done};

// Resolves host:port into addr (numeric addresses and names such as "localhost").
static int resolve(const char *host, uint16_t port, struct sockaddr_storage *addr,
                   socklen_t *addr_len, garlic_error *err)
{
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *res = NULL;
    char service[16];
    snprintf(service, sizeof service, "%u", port);
    int rc = getaddrinfo(host, service, &hints, &res);
    if (rc != 0 || !res)
        return garlic_error_set(err, GARLIC_EINVAL, "--host %s: %s", host, gai_strerror(rc));
    memcpy(addr, res->ai_addr, res->ai_addrlen);
    *addr_len = res->ai_addrlen;
    freeaddrinfo(res);
    return GARLIC_OK;
}

static void server_free(server *s)
{
    if (!s)
        return;
    garlic_free(s->api_key);
    garlic_free(s->cors_origin);
    garlic_free(s->allowed_hosts);
    garlic_free(s->store_root);
    garlic_free(s);
}

// Copies the settings of cfg into a new server (not yet listening).
static server *server_new(const server_config *cfg, registry *reg)
{
    server *s = garlic_calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->reg = reg;
    s->max_body = cfg->max_body ? cfg->max_body : SERVER_DEFAULT_MAX_BODY;
    s->log_requests = cfg->log_requests;
    s->log_prompts = cfg->log_prompts;
    bool ok = true;
    if (cfg->api_key && *cfg->api_key)
        ok &= (s->api_key = garlic_strndup(cfg->api_key, SIZE_MAX)) != NULL;
    if (cfg->cors_origin && *cfg->cors_origin)
        ok &= (s->cors_origin = garlic_strndup(cfg->cors_origin, SIZE_MAX)) != NULL;
    if (cfg->allowed_hosts && *cfg->allowed_hosts)
        ok &= (s->allowed_hosts = garlic_strndup(cfg->allowed_hosts, SIZE_MAX)) != NULL;
    if (cfg->store_root)
        ok &= (s->store_root = garlic_strndup(cfg->store_root, SIZE_MAX)) != NULL;
    for (size_t i = 0; i < N_ROUTES; i++)
        s->metrics.endpoints[i] = routes[i].path;
    s->metrics.endpoints[ROUTE_OTHER] = "other";
    s->metrics.n_endpoints = N_ROUTES + 1;
    if (!ok) {
        server_free(s);
        return NULL;
    }
    return s;
}

server *server_start(const server_config *cfg, registry *reg, garlic_error *err)
{
    http_config hc = {0};
    if (resolve(cfg->host ? cfg->host : "127.0.0.1", cfg->port, &hc.addr, &hc.addr_len, err) !=
        GARLIC_OK)
        return NULL;
    server *s = server_new(cfg, reg);
    if (!s) {
        garlic_error_set(err, GARLIC_ENOMEM, "out of memory");
        return NULL;
    }
    hc.max_body = s->max_body;
    hc.max_connections = cfg->max_connections ? cfg->max_connections
                                              : SERVER_DEFAULT_MAX_CONNECTIONS;
    hc.max_per_address = cfg->max_per_address == SERVER_UNLIMITED ? 0
        : cfg->max_per_address                                    ? cfg->max_per_address
                                                                  : SERVER_DEFAULT_MAX_PER_ADDRESS;
    hc.idle_timeout = cfg->timeout_seconds ? cfg->timeout_seconds : SERVER_DEFAULT_TIMEOUT;
    hc.request_timeout = cfg->request_timeout > 0 ? cfg->request_timeout
                                                  : SERVER_DEFAULT_REQUEST_TIMEOUT;
    hc.write_timeout = cfg->write_timeout > 0 ? cfg->write_timeout : SERVER_DEFAULT_WRITE_TIMEOUT;
    hc.handlers = &handlers;
    hc.ctx = s;
    garlic_error herr = {0};
    s->http = http_server_start(&hc, &herr);
    if (!s->http) {
        garlic_error_set(err, GARLIC_EIO,
                         "cannot listen on %s port %u: %s (in use, or not an address of this "
                         "machine?)",
                         cfg->host ? cfg->host : "127.0.0.1", cfg->port, herr.message);
        server_free(s);
        return NULL;
    }
    s->port = http_server_port(s->http);
    return s;
}

uint16_t server_port(const server *s) { return s->port; }

void server_stop(server *s, double grace_seconds)
{
    if (!s)
        return;
    http_server_quiesce(s->http);
    registry_drain(s->reg, grace_seconds);
    // Let finished streams send their last bytes before the connections close.
    for (int i = 0; i < 200 && atomic_load(&s->metrics.streams) > 0; i++) {
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    http_server_stop(s->http);
    server_free(s);
}
