// SPDX-License-Identifier: MIT
// libmicrohttpd glue: a thread per connection (so a streaming answer may block its own
// thread while the model works), the route table, body collection with a size limit,
// authentication, CORS, /health and /metrics, and streamed answers sent with chunked
// encoding from a content-reader callback that also watches the socket, so a client that
// hangs up cancels its generation at once.
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/api.h"
#include "base/alloc.h"
#include "base/buffer.h"
#include "base/clock.h"
#include "base/log.h"
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
    struct MHD_Daemon *daemon;
    registry *reg;     // borrowed
    char *api_key;     // NULL: open
    char *cors_origin; // --cors-origin's list; NULL: pages on localhost (server_cors_check)
    char *store_root;  // NULL: no model store
    bool loopback;     // bound to a loopback address: only Host names of this machine
    size_t max_body;
    uint16_t port;
    bool log_requests, log_prompts;
    server_metrics metrics; // shared by the HTTP threads (atomics)
};

typedef enum exchange_state {
    EXCHANGE_COLLECTING, // reading the body
    EXCHANGE_ANSWERED,   // answered in the first callback: the body is discarded
    EXCHANGE_TOO_LARGE,  // the body outgrew the limit: discarded, 413 at the end
    EXCHANGE_STATE_COUNT
} exchange_state;

// What the request log says of a request.
typedef struct request_record {
    char method[16];
    char path[128];
    double t_start;  // monotonic seconds at the first callback
    int status;      // of the answer queued, 0 before
    api_usage usage; // of a generating request
} request_record;

// One HTTP request, owned by its connection's thread from the first callback to completion.
typedef struct exchange {
    size_t route;   // index in routes, ROUTE_OTHER when none
    char *path_arg; // what follows a prefix route's path (garlic_malloc'd), or NULL
    exchange_state state;
    char *body; // (cap) the request body so far
    size_t len, cap;
    request_record rec;
    bool streamed;          // the answer is a stream: its end logs the request
    char cors_allow[256];   // Access-Control-Allow-Origin, "" for none
    char cors_headers[512]; // a preflight's Access-Control-Allow-Headers, "" when not one
} exchange;

// What a streamed answer's reader callback needs; owned by the MHD response.
typedef struct stream_ctx {
    api_stream *stream;
    server *srv;
    int fd; // the client's socket, watched for hang-ups
    request_record rec;
} stream_ctx;

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

// The content type and the CORS headers the exchange's origin earned (begin decided them).
static void add_common_headers(const exchange *ex, struct MHD_Response *r, const char *content_type)
{
    if (content_type)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    MHD_add_response_header(r, "Vary", "Origin");
    if (!ex->cors_allow[0])
        return;
    MHD_add_response_header(r, "Access-Control-Allow-Origin", ex->cors_allow);
    if (ex->cors_headers[0]) {
        MHD_add_response_header(r, "Access-Control-Allow-Headers", ex->cors_headers);
        MHD_add_response_header(r, "Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS");
        MHD_add_response_header(r, "Access-Control-Max-Age", "600");
    }
}

// Queues a whole-body answer (copied) and counts it.
static enum MHD_Result send_body(server *srv, struct MHD_Connection *c, exchange *ex, int status,
                                 const char *content_type, const char *body, size_t len,
                                 uint32_t retry_after)
{
    size_t route = ex->route;
    ex->rec.status = status;
    struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)body,
                                                             MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    add_common_headers(ex, r, content_type);
    if (retry_after) {
        char value[16];
        snprintf(value, sizeof value, "%u", retry_after);
        MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, value);
    }
    if (status == 401)
        MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    enum MHD_Result ok = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    server_metrics_count(&srv->metrics, route, status);
    return ok;
}

// An error answer in the shape the route's clients expect.
static enum MHD_Result send_error(server *srv, struct MHD_Connection *c, exchange *ex, int status,
                                  const char *code, const char *fmt, const char *arg)
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
    enum MHD_Result ok = send_body(srv, c, ex, resp.status, resp.content_type, resp.body, resp.len,
                                   0);
    api_response_deinit(&resp);
    return ok;
}

// The client is still connected: its socket has not been hung up or reset.
static bool client_alive(void *ctx)
{
    const stream_ctx *sc = ctx;
    struct pollfd p = {.fd = sc->fd, .events = POLLRDHUP};
    if (sc->fd < 0 || poll(&p, 1, 0) <= 0)
        return true;
    return !(p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    stream_ctx *sc = cls;
    ssize_t n = api_stream_read(sc->stream, buf, max, client_alive, sc);
    if (n == 0)
        return MHD_CONTENT_READER_END_OF_STREAM;
    return n < 0 ? MHD_CONTENT_READER_END_WITH_ERROR : n;
}

static void stream_done(void *cls)
{
    stream_ctx *sc = cls;
    atomic_fetch_sub(&sc->srv->metrics.streams, 1);
    if (sc->stream)
        api_stream_usage(sc->stream, &sc->rec.usage);
    log_request(sc->srv, &sc->rec);
    api_stream_free(sc->stream);
    garlic_free(sc);
}

// Queues a streamed answer; the stream moves into the MHD response.
static enum MHD_Result send_stream(server *srv, struct MHD_Connection *c, exchange *ex,
                                   api_response *resp)
{
    size_t route = ex->route;
    stream_ctx *sc = garlic_calloc(1, sizeof *sc);
    if (!sc)
        return send_error(srv, c, ex, 503, NULL, "%s", "out of memory");
    ex->streamed = true;
    sc->rec = ex->rec;
    sc->rec.status = resp->status;
    const union MHD_ConnectionInfo *info = MHD_get_connection_info(
        c, MHD_CONNECTION_INFO_CONNECTION_FD);
    sc->fd = info ? info->connect_fd : -1;
    sc->srv = srv;
    sc->stream = resp->stream;
    resp->stream = NULL;
    atomic_fetch_add(&srv->metrics.streams, 1);
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024,
                                                               stream_reader, sc, stream_done);
    if (!r) {
        stream_done(sc);
        return MHD_NO;
    }
    add_common_headers(ex, r, resp->content_type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    enum MHD_Result ok = MHD_queue_response(c, (unsigned)resp->status, r);
    MHD_destroy_response(r);
    server_metrics_count(&srv->metrics, route, resp->status);
    return ok;
}

// Queues an embedded page file (web/) with headers that keep its script to itself.
static enum MHD_Result send_page(server *srv, struct MHD_Connection *c, exchange *ex,
                                 const char *path)
{
    const unsigned char *data;
    size_t len;
    const char *type;
    if (!web_asset(path, &data, &len, &type))
        return send_error(srv, c, ex, 404, "not_found", "no page %s", path);
    ex->rec.status = 200;
    struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)data,
                                                             MHD_RESPMEM_PERSISTENT);
    if (!r)
        return MHD_NO;
    add_common_headers(ex, r, type);
    MHD_add_response_header(r, "Content-Security-Policy", web_content_security_policy);
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    enum MHD_Result ok = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    server_metrics_count(&srv->metrics, ex->route, 200);
    return ok;
}

// A browser asks for HTML (its Accept names text/html); API clients probing / do not.
static bool wants_html(struct MHD_Connection *c)
{
    const char *accept = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT);
    return accept && strstr(accept, "text/html");
}

// Built-in routes: /health, /metrics, the pages (/ for browsers, /ops, /static/...), and /
// for API clients (Ollama's probe it and read the plain text).
static enum MHD_Result serve_builtin(server *srv, struct MHD_Connection *c, exchange *ex)
{
    const char *path = routes[ex->route].path;
    if (strcmp(path, "/health") == 0) {
        static const char ok[] = "{\"status\":\"ok\"}";
        return send_body(srv, c, ex, 200, "application/json", ok, sizeof ok - 1, 0);
    }
    if (strcmp(path, "/") == 0 && wants_html(c))
        return send_page(srv, c, ex, "/static/chat.html");
    if (strcmp(path, "/") == 0) {
        static const char running[] = "garlic is running";
        return send_body(srv, c, ex, 200, "text/plain", running, sizeof running - 1, 0);
    }
    if (strcmp(path, "/ops") == 0)
        return send_page(srv, c, ex, "/static/ops.html");
    if (strcmp(path, "/static/") == 0)
        return send_page(srv, c, ex, ex->rec.path);
    size_t len = 0;
    char *text = server_metrics_render(&srv->metrics, srv->reg, &len);
    if (!text)
        return send_error(srv, c, ex, 503, NULL, "%s", "out of memory");
    enum MHD_Result ok = send_body(srv, c, ex, 200, "text/plain; version=0.0.4", text, len, 0);
    garlic_free(text);
    return ok;
}

// Runs the route's handler on the collected body and queues its answer.
static enum MHD_Result dispatch(server *srv, struct MHD_Connection *c, exchange *ex)
{
    const route_entry *rt = &routes[ex->route];
    if (!rt->handler)
        return serve_builtin(srv, c, ex);
    stream_ctx probe = {.fd = -1};
    const union MHD_ConnectionInfo *info = MHD_get_connection_info(
        c, MHD_CONNECTION_INFO_CONNECTION_FD);
    probe.fd = info ? info->connect_fd : -1;
    api_call call = {.reg = srv->reg,
                     .body = ex->body ? ex->body : "",
                     .len = ex->len,
                     .alive = client_alive,
                     .alive_ctx = &probe,
                     .usage = &ex->rec.usage,
                     .keep_prompt = srv->log_prompts,
                     .store_root = srv->store_root,
                     .path_arg = ex->path_arg};
    api_response resp = {0};
    rt->handler(&call, &resp);
    enum MHD_Result ok;
    if (resp.stream)
        ok = send_stream(srv, c, ex, &resp);
    else
        ok = send_body(srv, c, ex, resp.status, resp.content_type, resp.body, resp.len,
                       resp.retry_after);
    api_response_deinit(&resp);
    return ok;
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
static bool authorized(const server *srv, struct MHD_Connection *c, size_t route)
{
    const char *path = routes[route].path;
    bool open = strcmp(path, "/health") == 0 || strcmp(path, "/ops") == 0 ||
        strcmp(path, "/static/") == 0 || (strcmp(path, "/") == 0 && wants_html(c));
    if (!srv->api_key || open)
        return true;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
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

static enum MHD_Result send_too_large(server *srv, struct MHD_Connection *c, exchange *ex)
{
    char limit[32];
    snprintf(limit, sizeof limit, "%zu", srv->max_body);
    return send_error(srv, c, ex, 413, "request_too_large",
                      "the body is larger than the limit of %s bytes", limit);
}

// Applies the CORS rules to the request's Origin: for an allowed one fills ex's CORS
// headers (and, for a preflight, the headers it may send).
static server_cors check_origin(const server *srv, struct MHD_Connection *c, exchange *ex,
                                bool preflight)
{
    const char *origin = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
    const char *host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
    server_cors verdict = server_cors_check(srv->cors_origin, origin, host, ex->cors_allow,
                                            sizeof ex->cors_allow);
    if (verdict == SERVER_CORS_ALLOWED && preflight)
        server_cors_request_headers(
            MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Access-Control-Request-Headers"),
            ex->cors_headers, sizeof ex->cors_headers);
    return verdict;
}

// The first callback of a request: route, CORS preflight, authentication, declared size.
// Either answers at once (*answered set) or returns MHD_YES to collect the body.
static enum MHD_Result begin(server *srv, struct MHD_Connection *c, const char *url,
                             const char *method, exchange *ex, bool *answered)
{
    *answered = true;
    snprintf(ex->rec.method, sizeof ex->rec.method, "%s", method);
    snprintf(ex->rec.path, sizeof ex->rec.path, "%s", url);
    ex->rec.t_start = garlic_now();
    bool wrong_method;
    ex->route = find_route(method, url, &wrong_method);
    if (ex->route < N_ROUTES && routes[ex->route].prefix &&
        !(ex->path_arg = garlic_strndup(url + strlen(routes[ex->route].path), SIZE_MAX)))
        return send_error(srv, c, ex, 503, "out_of_memory", "%s", "out of memory");
    const char *host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
    if (srv->loopback && host && !server_host_is_local(host))
        return send_error(srv, c, ex, 403, "host_not_allowed",
                          "this server listens on a loopback address and answers requests for "
                          "localhost, 127.0.0.1 or [::1], not for %s (serve with --host to be "
                          "reached under other names)",
                          host);
    bool preflight = strcmp(method, "OPTIONS") == 0;
    server_cors verdict = check_origin(srv, c, ex, preflight);
    if (verdict == SERVER_CORS_REFUSED)
        return send_error(srv, c, ex, 403, "origin_not_allowed",
                          "a page on origin %s may not call this server (garlic serve "
                          "--cors-origin lists the origins allowed)",
                          MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin"));
    if (preflight && verdict == SERVER_CORS_NONE)
        return send_error(srv, c, ex, 405, "method_not_allowed", "%s",
                          "OPTIONS is a CORS preflight and needs an Origin header");
    if (preflight)
        return send_body(srv, c, ex, 204, NULL, "", 0, 0);
    if (ex->route == ROUTE_OTHER && wrong_method)
        return send_error(srv, c, ex, 405, "method_not_allowed", "%s is not allowed on this path",
                          method);
    if (ex->route == ROUTE_OTHER)
        return send_error(srv, c, ex, 404, "not_found", "no endpoint %s", url);
    if (!authorized(srv, c, ex->route))
        return send_error(srv, c, ex, 401, "invalid_api_key", "%s",
                          "a valid API key is required: send 'Authorization: Bearer KEY'");
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl && strtoull(cl, NULL, 10) > srv->max_body)
        return send_too_large(srv, c, ex);
    *answered = false;
    return MHD_YES;
}

// Appends n bytes of body to ex, or discards them once the body is over the limit.
static enum MHD_Result collect(server *srv, exchange *ex, const char *data, size_t n)
{
    if (ex->state == EXCHANGE_COLLECTING && ex->len + n > srv->max_body) {
        ex->state = EXCHANGE_TOO_LARGE;
        garlic_free(ex->body);
        ex->body = NULL, ex->len = ex->cap = 0;
    }
    if (ex->state != EXCHANGE_COLLECTING)
        return MHD_YES;
    if (garlic_grow(&ex->body, &ex->cap, ex->len + n + 1, 1))
        return MHD_NO;
    memcpy(ex->body + ex->len, data, n);
    ex->len += n;
    ex->body[ex->len] = '\0';
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **state)
{
    (void)version;
    server *srv = cls;
    exchange *ex = *state;
    if (!ex) {
        ex = garlic_calloc(1, sizeof *ex);
        if (!ex)
            return MHD_NO;
        *state = ex;
        bool answered;
        enum MHD_Result r = begin(srv, c, url, method, ex, &answered);
        if (answered)
            ex->state = EXCHANGE_ANSWERED;
        return answered ? r : MHD_YES;
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        return collect(srv, ex, upload, n);
    }
    if (ex->state == EXCHANGE_TOO_LARGE)
        return send_too_large(srv, c, ex);
    if (ex->state == EXCHANGE_ANSWERED)
        return MHD_YES;
    return dispatch(srv, c, ex);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **state,
                         enum MHD_RequestTerminationCode toe)
{
    (void)c, (void)toe;
    server *srv = cls;
    exchange *ex = *state;
    if (!ex)
        return;
    if (!ex->streamed) // a stream logs its request when it ends
        log_request(srv, &ex->rec);
    garlic_free(ex->body);
    garlic_free(ex->path_arg);
    garlic_free(ex);
    *state = NULL;
}

static void on_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    fprintf(stderr, "garlic serve: http: ");
    vfprintf(stderr, fmt, ap);
}

// Resolves host:port into addr (numeric addresses and names such as "localhost").
static int resolve(const char *host, uint16_t port, struct sockaddr_storage *addr,
                   garlic_error *err)
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
    freeaddrinfo(res);
    return GARLIC_OK;
}

// The address is 127.0.0.0/8 or ::1 (not the wildcard: that serves every interface).
static bool is_loopback(const struct sockaddr_storage *addr)
{
    if (addr->ss_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)addr)->sin_addr.s_addr) >> 24) == 127;
    if (addr->ss_family == AF_INET6)
        return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)addr)->sin6_addr);
    return false;
}

static void server_free(server *s)
{
    if (!s)
        return;
    garlic_free(s->api_key);
    garlic_free(s->cors_origin);
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
    struct sockaddr_storage addr;
    if (resolve(cfg->host ? cfg->host : "127.0.0.1", cfg->port, &addr, err) != GARLIC_OK)
        return NULL;
    server *s = server_new(cfg, reg);
    if (!s) {
        garlic_error_set(err, GARLIC_ENOMEM, "out of memory");
        return NULL;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
        MHD_USE_POLL | MHD_USE_ITC | MHD_USE_ERROR_LOG;
    if (addr.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    s->loopback = is_loopback(&addr);
    s->daemon = MHD_start_daemon(
        flags, cfg->port, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, on_log, s,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)(cfg->max_connections ? cfg->max_connections : SERVER_DEFAULT_MAX_CONNECTIONS),
        MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)(cfg->timeout_seconds ? cfg->timeout_seconds : SERVER_DEFAULT_TIMEOUT),
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024), MHD_OPTION_NOTIFY_COMPLETED,
        on_completed, s, MHD_OPTION_END);
    if (!s->daemon) {
        garlic_error_set(err, GARLIC_EIO,
                         "cannot listen on %s port %u (in use, or not an "
                         "address of this machine?)",
                         cfg->host ? cfg->host : "127.0.0.1", cfg->port);
        server_free(s);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : cfg->port;
    return s;
}

uint16_t server_port(const server *s) { return s->port; }

void server_stop(server *s, double grace_seconds)
{
    if (!s)
        return;
    MHD_quiesce_daemon(s->daemon);
    registry_drain(s->reg, grace_seconds);
    // Let finished streams send their last bytes before the connections close.
    for (int i = 0; i < 200 && atomic_load(&s->metrics.streams) > 0; i++) {
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    MHD_stop_daemon(s->daemon);
    server_free(s);
}
