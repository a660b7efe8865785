// SPDX-License-Identifier: MIT
// The HTTP/1.1 server (see http.h): one thread accepts connections and enforces the
// connection caps, and each connection runs on a thread of its own, which reads requests with
// deadlines, hands them to the handlers and writes their answers, streamed or whole. A
// handler may block its connection's thread while the model works; nothing else waits on it.
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/buffer.h"
#include "base/clock.h"
#include "server/http.h"

// Where a connection is in its life: which deadlines apply and whether it may be closed to
// make room for another.
typedef enum conn_phase {
    CONN_WAITING, // kept alive, no byte of the next request yet
    CONN_READING, // reading a request's head or body (under the request deadline)
    CONN_WORKING, // a handler has the request: no deadline, never evicted
    CONN_PHASE_COUNT
} conn_phase;

typedef struct conn conn;

struct http_exchange {
    conn *c;
    http_head head;
    char *body; // into c->buf, NUL-terminated
    size_t body_len;
    size_t max_body;
    void *user;
    bool answered;  // a status line was written
    bool streaming; // a stream is open
    bool close;     // close the connection after this exchange
};

struct conn {
    http_server *srv;
    int fd;
    char peer[64]; // the client's address, for the per-address cap
    char *buf;     // (cap) bytes read and not yet consumed
    size_t len, cap;
    _Atomic int phase;    // conn_phase
    _Atomic double since; // monotonic seconds the phase began
    atomic_bool evicted;  // closed to make room: stop at once
    conn *prev, *next;    // in srv's list
};

struct http_server {
    http_config cfg;
    int listen_fd;
    int wake[2]; // a pipe that wakes the accepting thread to stop
    uint16_t port;
    pthread_t acceptor;
    bool acceptor_running;
    pthread_mutex_t mutex; // guards the list and the counts
    pthread_cond_t gone;   // signalled when a connection ends
    conn *conns;
    unsigned n_conns;
    bool stopping;
    _Atomic size_t buffered; // bytes of all connections' buffers
    size_t max_buffered;     // their cap: a flood of large bodies cannot take all memory
};

// --- writing ----------------------------------------------------------------------------

// Writes all of data, waiting for the client to accept bytes for at most the write timeout
// at a time. GARLIC_EIO when the client is gone or stalled.
static int write_all(conn *c, const char *data, size_t len)
{
    double timeout = c->srv->cfg.write_timeout;
    double last = garlic_now();
    while (len) {
        if (atomic_load(&c->evicted))
            return GARLIC_EIO;
        ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            data += n, len -= (size_t)n;
            last = garlic_now();
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            return GARLIC_EIO;
        double left = last + timeout - garlic_now();
        if (left <= 0)
            return GARLIC_EIO; // the client accepted nothing for the write timeout
        struct pollfd p = {.fd = c->fd, .events = POLLOUT};
        int ms = left > 0.25 ? 250 : (int)(left * 1e3) + 1;
        if (poll(&p, 1, ms) < 0 && errno != EINTR)
            return GARLIC_EIO;
        if (p.revents & (POLLERR | POLLHUP | POLLNVAL))
            return GARLIC_EIO;
    }
    return GARLIC_OK;
}

static const char *reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return status < 300 ? "OK" : status < 500 ? "Bad Request" : "Server Error";
    }
}

// Formats the status line and header fields of an answer into out (cap bytes); 0 when they
// do not fit. length < 0: a stream (chunked in HTTP/1.1).
static size_t format_head(const http_exchange *x, int status, const http_fields *f, int64_t length,
                          char *out, size_t cap)
{
    char date[64];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    int n = snprintf(out, cap, "HTTP/1.%d %d %s\r\nDate: %s\r\n", x->head.minor, status,
                     reason(status), date);
    for (size_t i = 0; f && i < f->n && n > 0 && (size_t)n < cap; i++)
        n += snprintf(out + n, cap - (size_t)n, "%s: %s\r\n", f->name[i], f->value[i]);
    if (n > 0 && (size_t)n < cap) {
        if (length >= 0)
            n += snprintf(out + n, cap - (size_t)n, "Content-Length: %lld\r\n", (long long)length);
        else if (x->head.minor == 1)
            n += snprintf(out + n, cap - (size_t)n, "Transfer-Encoding: chunked\r\n");
    }
    if (n > 0 && (size_t)n < cap) {
        if (x->close)
            n += snprintf(out + n, cap - (size_t)n, "Connection: close\r\n\r\n");
        else if (x->head.minor == 0)
            n += snprintf(out + n, cap - (size_t)n, "Connection: keep-alive\r\n\r\n");
        else
            n += snprintf(out + n, cap - (size_t)n, "\r\n");
    }
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

void http_fields_add(http_fields *f, const char *name, const char *value)
{
    if (f->n < sizeof f->name / sizeof f->name[0] && name && value) {
        f->name[f->n] = name;
        f->value[f->n] = value;
        f->n++;
    }
}

int http_respond(http_exchange *x, int status, const http_fields *f, const char *body, size_t len)
{
    if (x->answered)
        return GARLIC_EINVAL;
    x->answered = true;
    char head[4096];
    size_t n = format_head(x, status, f, (int64_t)len, head, sizeof head);
    if (!n) {
        x->close = true;
        return GARLIC_EINVAL;
    }
    bool head_only = strcmp(x->head.method, "HEAD") == 0;
    if (write_all(x->c, head, n) != GARLIC_OK ||
        (!head_only && len && write_all(x->c, body, len) != GARLIC_OK)) {
        x->close = true;
        return GARLIC_EIO;
    }
    return GARLIC_OK;
}

int http_stream_begin(http_exchange *x, int status, const http_fields *f)
{
    if (x->answered)
        return GARLIC_EINVAL;
    x->answered = true;
    x->streaming = true;
    // A small send buffer, so that a client that stops reading is noticed after kilobytes
    // rather than megabytes (the write timeout counts from then).
    int sndbuf = 64 * 1024;
    setsockopt(x->c->fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    if (x->head.minor == 0)
        x->close = true; // the end of the connection ends the answer
    char head[4096];
    size_t n = format_head(x, status, f, -1, head, sizeof head);
    if (!n || write_all(x->c, head, n) != GARLIC_OK) {
        x->close = true;
        return GARLIC_EIO;
    }
    return GARLIC_OK;
}

int http_stream_write(http_exchange *x, const char *data, size_t len)
{
    if (!x->streaming)
        return GARLIC_EINVAL;
    if (!len)
        return GARLIC_OK;
    int rc;
    if (x->head.minor == 1) {
        char size[24];
        int n = snprintf(size, sizeof size, "%zx\r\n", len);
        rc = write_all(x->c, size, (size_t)n);
        if (rc == GARLIC_OK)
            rc = write_all(x->c, data, len);
        if (rc == GARLIC_OK)
            rc = write_all(x->c, "\r\n", 2);
    } else {
        rc = write_all(x->c, data, len);
    }
    if (rc != GARLIC_OK)
        x->close = true;
    return rc;
}

int http_stream_end(http_exchange *x, bool failed)
{
    if (!x->streaming)
        return GARLIC_EINVAL;
    x->streaming = false;
    if (failed || x->head.minor == 0) {
        x->close = true;
        return GARLIC_OK;
    }
    int rc = write_all(x->c, "0\r\n\r\n", 5);
    if (rc != GARLIC_OK)
        x->close = true;
    return rc;
}

bool http_client_alive(const http_exchange *x)
{
    const conn *c = x->c;
    if (atomic_load(&c->evicted))
        return false;
    struct pollfd p = {.fd = c->fd, .events = 0};
    if (poll(&p, 1, 0) <= 0)
        return true;
    return !(p.revents & (POLLERR | POLLHUP | POLLNVAL));
}

const char *http_method(const http_exchange *x) { return x->head.method; }
const char *http_path(const http_exchange *x) { return x->head.target; }
const char *http_header(const http_exchange *x, const char *name)
{
    return http_head_field(&x->head, name);
}
const char *http_body(const http_exchange *x) { return x->body ? x->body : ""; }
size_t http_body_len(const http_exchange *x) { return x->body_len; }
void *http_user(const http_exchange *x) { return x->user; }
void http_set_user(http_exchange *x, void *user) { x->user = user; }
void http_set_max_body(http_exchange *x, size_t max_body) { x->max_body = max_body; }

// --- reading ----------------------------------------------------------------------------

static void set_phase(conn *c, conn_phase phase)
{
    atomic_store(&c->since, garlic_now());
    atomic_store(&c->phase, (int)phase);
}

// Sets c's buffer to cap bytes (at least its length plus one), within the server's cap on
// the bytes all connections buffer. GARLIC_EFULL when that cap would be passed.
static int conn_resize(conn *c, size_t cap)
{
    http_server *srv = c->srv;
    if (cap <= c->len)
        cap = c->len + 1;
    if (cap > c->cap) {
        size_t more = cap - c->cap;
        if (atomic_fetch_add(&srv->buffered, more) + more > srv->max_buffered) {
            atomic_fetch_sub(&srv->buffered, more);
            return GARLIC_EFULL;
        }
    }
    char *p = garlic_realloc(c->buf, cap);
    if (!p) {
        if (cap > c->cap)
            atomic_fetch_sub(&srv->buffered, cap - c->cap);
        return GARLIC_ENOMEM;
    }
    if (cap < c->cap)
        atomic_fetch_sub(&srv->buffered, c->cap - cap);
    c->buf = p;
    c->cap = cap;
    return GARLIC_OK;
}

// Reads more bytes into c->buf (which grows up to limit bytes), waiting until deadline. 1:
// bytes came; 0: the client closed its side; -1: the deadline passed, the connection failed
// or was evicted; -2: the server buffers as much as it may (or has no memory).
static int read_more(conn *c, double deadline, size_t limit)
{
    if (c->len + 4096 > c->cap) {
        size_t want = c->cap * 2 > c->len + 16384 ? c->cap * 2 : c->len + 16384;
        if (want > limit + 2)
            want = limit + 2;
        if (want <= c->len + 1)
            return -1;
        if (conn_resize(c, want) != GARLIC_OK)
            return -2;
    }
    for (;;) {
        if (atomic_load(&c->evicted))
            return -1;
        double left = deadline - garlic_now();
        if (left <= 0)
            return -1;
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        int ms = left > 0.25 ? 250 : (int)(left * 1e3) + 1;
        int r = poll(&p, 1, ms);
        if (r < 0 && errno != EINTR)
            return -1;
        if (r <= 0)
            continue;
        size_t room = c->cap - 1 - c->len;
        ssize_t n = recv(c->fd, c->buf + c->len, room, MSG_DONTWAIT);
        if (n > 0) {
            c->len += (size_t)n;
            return 1;
        }
        if (n == 0)
            return 0;
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return -1;
    }
}

// Answers a request the layer refuses and marks the connection for closing.
static void refuse(conn *c, http_exchange *x, int status, const char *code, const char *why)
{
    x->close = true;
    const http_handlers *h = c->srv->cfg.handlers;
    h->refuse(c->srv->cfg.ctx, x, status, code, why);
}

static const char busy_message[] =
    "the server is receiving as many request bodies as it may hold at once; try again";

// Reads more of x's body (read_more); false when the exchange ended: refused (503 when the
// server buffers all it may, 408 past the deadline) or the client gone.
static bool more_body(conn *c, http_exchange *x, double deadline, size_t limit)
{
    int got = read_more(c, deadline, limit);
    if (got > 0)
        return true;
    if (got == -2)
        refuse(c, x, 503, "server_busy", busy_message);
    else if (got < 0 && garlic_now() >= deadline)
        refuse(c, x, 408, "request_timeout", "the request body did not arrive in time");
    x->close = true;
    return false;
}

// The body of a request whose head ends at c->buf + head_len: reads it under the request
// deadline (decoding chunks in place). false when the exchange was answered with an error or
// the connection failed.
static bool read_body(conn *c, http_exchange *x, double deadline)
{
    size_t start = x->head.len;
    if (x->head.expect_continue && !x->answered) {
        char cont[64];
        int n = snprintf(cont, sizeof cont, "HTTP/1.1 100 Continue\r\n\r\n");
        if (write_all(c, cont, (size_t)n) != GARLIC_OK)
            return false;
    }
    if (x->head.chunked) {
        http_chunked ch = {0};
        size_t in = 0, out = 0;
        for (;;) {
            http_parse r = http_chunked_decode(&ch, c->buf + start, c->len - start, &in, &out,
                                               x->max_body);
            if (r == HTTP_PARSE_DONE)
                break;
            if (r == HTTP_PARSE_INVALID) {
                if (ch.too_large)
                    refuse(c, x, 413, "request_too_large", "the body is larger than the limit");
                else
                    refuse(c, x, 400, "bad_request", "the chunked body is malformed");
                return false;
            }
            // Decoded bytes are compacted: the raw bytes still to decode follow them.
            memmove(c->buf + start + out, c->buf + start + in, c->len - start - in);
            c->len = start + out + (c->len - start - in);
            in = out;
            if (!more_body(c, x, deadline, start + x->max_body + HTTP_MAX_HEAD))
                return false;
        }
        // The body is buf[start, start + out); the next request's bytes follow the trailer.
        size_t rest = c->len - start - in;
        x->body_len = out;
        // Keep what follows, after the body and a NUL.
        memmove(c->buf + start + out + 1, c->buf + start + in, rest);
        c->buf[start + out] = '\0';
        c->len = start + out + 1 + rest;
        x->body = c->buf + start;
        return true;
    }
    uint64_t want = x->head.content_length > 0 ? (uint64_t)x->head.content_length : 0;
    if (want > x->max_body) {
        refuse(c, x, 413, "request_too_large", "the body is larger than the limit");
        return false;
    }
    while (c->len - start < want) {
        if (!more_body(c, x, deadline, start + (size_t)want + HTTP_MAX_HEAD))
            return false;
    }
    // Room for a NUL after the body: shift what follows by one.
    if (c->len + 2 > c->cap && conn_resize(c, c->len + 2) != GARLIC_OK) {
        refuse(c, x, 503, "server_busy", busy_message);
        return false;
    }
    size_t end = start + (size_t)want;
    memmove(c->buf + end + 1, c->buf + end, c->len - end);
    c->buf[end] = '\0';
    c->len++;
    x->body = c->buf + start;
    x->body_len = (size_t)want;
    return true;
}

// Clears what a parse that did not end left in h (its strings are not terminated), so that
// an answer to it names no method or path.
static void forget_head(http_head *h)
{
    memset(h, 0, sizeof *h);
    h->minor = 1;
}

// Serves requests on c until it closes. Returns when the connection is to be closed.
static void serve_connection(conn *c)
{
    http_server *srv = c->srv;
    const http_handlers *h = srv->cfg.handlers;
    bool first = true;
    for (;;) {
        // Wait for a request: a new connection's first one under the request deadline, a
        // kept-alive connection's next one under the idle timeout, then the request deadline.
        set_phase(c, first && c->len == 0 ? CONN_READING : CONN_WAITING);
        double deadline = garlic_now() + (first ? srv->cfg.request_timeout : srv->cfg.idle_timeout);
        bool reading = first;
        http_exchange x = {.c = c, .max_body = srv->cfg.max_body};
        http_parse r;
        for (;;) {
            r = http_head_parse(c->buf, c->buf + c->len, &x.head);
            if (r != HTTP_PARSE_INCOMPLETE)
                break;
            if (c->len > 0 && !reading) {
                reading = true;
                set_phase(c, CONN_READING);
                deadline = garlic_now() + srv->cfg.request_timeout;
            }
            int got = read_more(c, deadline, HTTP_MAX_HEAD);
            if (got == 0 || (got < 0 && c->len == 0))
                return; // closed, or an idle connection timed out: nothing to answer
            if (got < 0) {
                forget_head(&x.head);
                if (garlic_now() >= deadline && !atomic_load(&c->evicted))
                    refuse(c, &x, 408, "request_timeout",
                           "the request head did not arrive in time");
                h->done(srv->cfg.ctx, &x);
                return;
            }
        }
        first = false;
        if (r == HTTP_PARSE_INVALID) {
            int status = x.head.error_status;
            const char *why = x.head.error;
            forget_head(&x.head);
            refuse(c, &x, status, "bad_request", why);
            h->done(srv->cfg.ctx, &x);
            return;
        }
        set_phase(c, CONN_READING);
        http_head_terminate(c->buf, &x.head);
        x.close = !x.head.keep_alive;
        h->head(srv->cfg.ctx, &x);
        bool has_body = x.head.chunked || x.head.content_length > 0;
        if (x.answered) {
            // Refused on its head: the body is not read, so the connection cannot go on.
            if (has_body)
                x.close = true;
        } else if (!read_body(c, &x, deadline)) {
            x.close = true;
        } else {
            set_phase(c, CONN_WORKING);
            h->request(srv->cfg.ctx, &x);
            if (x.streaming) // a handler that forgot to end its stream
                http_stream_end(&x, true);
        }
        if (!x.answered)
            x.close = true;
        h->done(srv->cfg.ctx, &x);
        if (x.close)
            return;
        // Keep the bytes after this request (pipelined ones) for the next.
        size_t used = x.body ? (size_t)(x.body - c->buf) + x.body_len + 1 : x.head.len;
        if (used > c->len)
            used = c->len;
        memmove(c->buf, c->buf + used, c->len - used);
        c->len -= used;
        // A large body's room goes back once its request is done.
        if (c->cap > 64 * 1024 && c->len < 16 * 1024)
            conn_resize(c, 16 * 1024);
    }
}

// Closes a connection's socket and removes it from the server.
static void conn_end(conn *c)
{
    http_server *srv = c->srv;
    pthread_mutex_lock(&srv->mutex);
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    srv->n_conns--;
    atomic_fetch_sub(&srv->buffered, c->cap);
    close(c->fd);
    pthread_cond_broadcast(&srv->gone);
    pthread_mutex_unlock(&srv->mutex);
    garlic_free(c->buf);
    garlic_free(c);
}

static void *conn_main(void *arg)
{
    conn *c = arg;
    serve_connection(c);
    // Let the client read the last answer before the socket closes: stop sending, then
    // drain what it still sends for a moment (a close with unread bytes would reset it).
    shutdown(c->fd, SHUT_WR);
    double until = garlic_now() + 0.5;
    char sink[4096];
    while (garlic_now() < until && !atomic_load(&c->evicted)) {
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        if (poll(&p, 1, 100) <= 0)
            continue;
        if (recv(c->fd, sink, sizeof sink, MSG_DONTWAIT) <= 0)
            break;
    }
    conn_end(c);
    return NULL;
}

// --- accepting --------------------------------------------------------------------------

static void address_text(const struct sockaddr_storage *a, char *out, size_t cap)
{
    out[0] = '\0';
    if (a->ss_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)a)->sin_addr, out, (socklen_t)cap);
    else if (a->ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)a)->sin6_addr, out, (socklen_t)cap);
}

// A short answer written straight to a socket the server will not serve.
static void turn_away(int fd, int status, const char *code, const char *message)
{
    char body[512], all[1024];
    int b = snprintf(body, sizeof body,
                     "{\"error\":{\"message\":\"%s\",\"type\":\"server_error\",\"code\":\"%s\"}}",
                     message, code);
    int n = snprintf(all, sizeof all,
                     "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
                     "Content-Length: %d\r\nConnection: close\r\n\r\n%s",
                     status, reason(status), b, body);
    if (n > 0 && (size_t)n < sizeof all) {
        ssize_t w = send(fd, all, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)w;
    }
    shutdown(fd, SHUT_WR);
    close(fd);
}

// Under srv->mutex: closes the connection that has waited longest without a whole request
// (reading a head or body, or kept alive idle) to make room. false when every connection is
// busy with a request.
static bool evict_one(http_server *srv)
{
    conn *victim = NULL;
    double oldest = 0;
    for (conn *c = srv->conns; c; c = c->next) {
        int phase = atomic_load(&c->phase);
        if (phase == CONN_WORKING || atomic_load(&c->evicted))
            continue;
        double since = atomic_load(&c->since);
        if (!victim || since < oldest)
            victim = c, oldest = since;
    }
    if (!victim)
        return false;
    atomic_store(&victim->evicted, true);
    shutdown(victim->fd, SHUT_RDWR);
    return true;
}

// Takes a new connection, or turns it away when its address or the server is full.
static void admit(http_server *srv, int fd, const struct sockaddr_storage *addr)
{
    conn *c = garlic_calloc(1, sizeof *c);
    if (!c) {
        close(fd);
        return;
    }
    c->srv = srv;
    c->fd = fd;
    address_text(addr, c->peer, sizeof c->peer);
    atomic_store(&c->since, garlic_now());
    atomic_store(&c->phase, CONN_READING);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    pthread_mutex_lock(&srv->mutex);
    unsigned same = 0, evicting = 0;
    for (conn *o = srv->conns; o; o = o->next) {
        same += strcmp(o->peer, c->peer) == 0 && !atomic_load(&o->evicted);
        evicting += atomic_load(&o->evicted);
    }
    int status = 0;
    const char *code = NULL, *refusal = NULL;
    if (srv->cfg.max_per_address && same >= srv->cfg.max_per_address) {
        status = 429, code = "too_many_connections";
        refusal = "too many connections from this address";
    } else if (srv->n_conns - evicting >= srv->cfg.max_connections && !evict_one(srv)) {
        status = 503, code = "server_full";
        refusal = "the server has as many connections as it takes; try again";
    }
    if (refusal) {
        pthread_mutex_unlock(&srv->mutex);
        turn_away(fd, status, code, refusal);
        garlic_free(c);
        return;
    }
    c->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = c;
    srv->conns = c;
    srv->n_conns++;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t t;
    int rc = pthread_create(&t, &attr, conn_main, c);
    pthread_attr_destroy(&attr);
    pthread_mutex_unlock(&srv->mutex);
    if (rc != 0) {
        turn_away(dup(fd), 503, "server_full", "the server cannot start another connection");
        conn_end(c);
    }
}

static void *accept_main(void *arg)
{
    http_server *srv = arg;
    for (;;) {
        struct pollfd p[2] = {{.fd = srv->listen_fd, .events = POLLIN},
                              {.fd = srv->wake[0], .events = POLLIN}};
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (p[1].revents)
            break;
        struct sockaddr_storage addr;
        socklen_t len = sizeof addr;
        int fd = accept4(srv->listen_fd, (struct sockaddr *)&addr, &len, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE) { // out of descriptors: let some close
                struct timespec ts = {0, 50 * 1000000L};
                nanosleep(&ts, NULL);
            }
            continue;
        }
        admit(srv, fd, &addr);
    }
    return NULL;
}

http_server *http_server_start(const http_config *cfg, garlic_error *err)
{
    http_server *s = garlic_calloc(1, sizeof *s);
    if (!s) {
        garlic_error_set(err, GARLIC_ENOMEM, "out of memory");
        return NULL;
    }
    s->cfg = *cfg;
    s->listen_fd = -1;
    // Room for 32 bodies of the largest size at once (at least 256 MiB): more waits.
    s->max_buffered = cfg->max_body * 32 > ((size_t)256 << 20) ? cfg->max_body * 32
                                                               : (size_t)256 << 20;
    s->wake[0] = s->wake[1] = -1;
    pthread_mutex_init(&s->mutex, NULL);
    pthread_cond_init(&s->gone, NULL);
    int fd = socket(cfg->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd >= 0)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (fd >= 0 && cfg->addr.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (fd < 0 || bind(fd, (const struct sockaddr *)&cfg->addr, cfg->addr_len) != 0 ||
        listen(fd, 1024) != 0 || pipe2(s->wake, O_CLOEXEC) != 0) {
        garlic_error_set(err, GARLIC_EIO, "%s", strerror(errno));
        if (fd >= 0)
            close(fd);
        http_server_stop(s);
        return NULL;
    }
    s->listen_fd = fd;
    struct sockaddr_storage bound;
    socklen_t len = sizeof bound;
    getsockname(fd, (struct sockaddr *)&bound, &len);
    s->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                : ((struct sockaddr_in *)&bound)->sin_port);
    if (pthread_create(&s->acceptor, NULL, accept_main, s) != 0) {
        garlic_error_set(err, GARLIC_EIO, "cannot start the accepting thread");
        http_server_stop(s);
        return NULL;
    }
    s->acceptor_running = true;
    return s;
}

uint16_t http_server_port(const http_server *s) { return s->port; }

void http_server_quiesce(http_server *s)
{
    if (!s || !s->acceptor_running)
        return;
    ssize_t w = write(s->wake[1], "x", 1);
    (void)w;
    pthread_join(s->acceptor, NULL);
    s->acceptor_running = false;
    close(s->listen_fd);
    s->listen_fd = -1;
}

void http_server_stop(http_server *s)
{
    if (!s)
        return;
    http_server_quiesce(s);
    pthread_mutex_lock(&s->mutex);
    s->stopping = true;
    for (conn *c = s->conns; c; c = c->next) {
        atomic_store(&c->evicted, true);
        shutdown(c->fd, SHUT_RDWR);
    }
    while (s->n_conns)
        pthread_cond_wait(&s->gone, &s->mutex);
    pthread_mutex_unlock(&s->mutex);
    if (s->listen_fd >= 0)
        close(s->listen_fd);
    for (int i = 0; i < 2; i++)
        if (s->wake[i] >= 0)
            close(s->wake[i]);
    pthread_cond_destroy(&s->gone);
    pthread_mutex_destroy(&s->mutex);
    garlic_free(s);
}
