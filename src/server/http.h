// SPDX-License-Identifier: MIT
// garlic's HTTP/1.1 layer: a parser of request heads and chunked bodies over (p, end) that
// tells "incomplete" from "invalid", and a server around it with a thread per connection.
// The server owns every limit a hostile or slow client could abuse: a deadline for the whole
// request head and body, caps on connections in all and per address (the oldest connection
// still sending its head makes room for a new one when the cap is reached), a deadline for a
// client that stops accepting its answer, and strict framing (one Content-Length, never with
// Transfer-Encoding). A half-closed connection (the client shut down its sending side after
// its request) is still answered; only a reset or an error on the socket means the client is
// gone.
#ifndef GARLIC_SERVER_HTTP_H
#define GARLIC_SERVER_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "base/error.h"

enum {
    HTTP_MAX_HEAD = 16 * 1024, // bytes of a request line and its headers
    HTTP_MAX_HEADERS = 64,
    HTTP_MAX_METHOD = 16, // bytes, with the terminating NUL
};

// What a parser says of its input.
typedef enum http_parse {
    HTTP_PARSE_DONE,       // a whole head (or body) was read
    HTTP_PARSE_INCOMPLETE, // more bytes are needed
    HTTP_PARSE_INVALID,    // not HTTP this server accepts: answer the status and close
    HTTP_PARSE_COUNT
} http_parse;

typedef struct http_field {
    const char *name, *value; // into the parsed buffer: NUL-terminated after http_head_terminate
    size_t name_len, value_len;
} http_field;

// A parsed request head. The pointers point into the buffer that was parsed.
typedef struct http_head {
    char method[HTTP_MAX_METHOD];
    const char *target; // (target_len) the request target as sent ("/v1/models?x=1")
    size_t target_len;
    int minor;    // HTTP/1.minor: 0 or 1
    size_t start; // bytes of empty lines before the request line (skipped)
    size_t len;   // bytes of the whole head, blank line included
    http_field fields[HTTP_MAX_HEADERS];
    size_t n_fields;
    int64_t content_length; // -1: none given
    bool chunked;           // Transfer-Encoding: chunked
    bool keep_alive;        // the connection stays open after the answer
    bool expect_continue;   // Expect: 100-continue
    int error_status;       // on HTTP_PARSE_INVALID: 400, 414, 431, 417, 501 or 505
    const char *error;      // on HTTP_PARSE_INVALID: why, a static string
} http_head;

// Parses the request head at the beginning of [p, end). DONE fills h; INCOMPLETE means the
// head has not ended yet (and is not wrong so far); INVALID sets h->error_status and
// h->error. Never reads outside [p, end).
http_parse http_head_parse(const char *p, const char *end, http_head *h);

// Ends each string of h (method, target, field names and values) with a NUL, writing over
// the byte after each in buf, the buffer h was parsed from (a CR, LF, space or colon, or
// whitespace around a value). The target loses its query and its percent escapes are decoded:
// h->target_len is then the decoded path's length.
void http_head_terminate(char *buf, http_head *h);

// The value of the first field called name (case-insensitive) of a terminated head, or NULL.
const char *http_head_field(const http_head *h, const char *name);

// Decodes a chunked body in place: state of the decoder between calls.
typedef struct http_chunked {
    int state;
    uint64_t remaining; // bytes of the current chunk still to come, or of the size digits
    size_t line;        // bytes of the current chunk-extension or trailer line
    size_t trailer;     // bytes of trailer fields so far
    bool too_large;     // INVALID because the data would exceed the limit
} http_chunked;

// Decodes the chunked bytes buf[*in, len) into buf[*out, ...) (the output never overtakes the
// input, so one buffer holds both), advancing *in and *out. DONE once the last chunk and the
// trailer ended (*in then points after them: the next request's bytes may follow);
// INVALID on a malformed size, line or trailer, or when the data would exceed max bytes.
http_parse http_chunked_decode(http_chunked *c, char *buf, size_t len, size_t *in, size_t *out,
                               size_t max);

// --- the server -------------------------------------------------------------------------

typedef struct http_server http_server;
typedef struct http_exchange http_exchange;

// The server's answers to the requests it reads.
typedef struct http_handlers {
    // A whole head has arrived. Answers (http_respond) at once to refuse the request, which
    // then closes the connection when a body was announced, or returns without answering to
    // have the body read. max_body: the body limit for this request (413 beyond it).
    void (*head)(void *ctx, http_exchange *x);
    // The body has arrived: answer the request with http_respond or a stream.
    void (*request)(void *ctx, http_exchange *x);
    // The layer refuses a request itself (status, a machine-readable code, a message): the
    // callback answers in the API's shape. path is NULL when no head was read.
    void (*refuse)(void *ctx, http_exchange *x, int status, const char *code, const char *message);
    // The exchange is over (answered, failed or abandoned): free what ctx attached to it.
    void (*done)(void *ctx, http_exchange *x);
} http_handlers;

typedef struct http_config {
    struct sockaddr_storage addr; // where to listen
    socklen_t addr_len;
    size_t max_body;               // bytes of a request body
    unsigned max_connections;      // open at once
    unsigned max_per_address;      // open at once from one client address; 0: no limit
    double request_timeout;        // seconds from a request's first byte to its whole body
    double idle_timeout;           // seconds a kept-alive connection waits for a request
    double write_timeout;          // seconds a client may accept no byte of its answer
    const http_handlers *handlers; // called on the connections' threads
    void *ctx;                     // their first argument
} http_config;

// Binds and starts accepting connections on a thread of its own. NULL and err set when the
// address cannot be bound.
http_server *http_server_start(const http_config *cfg, garlic_error *err);
// The port bound (the one asked for, or the one the system picked for port 0).
uint16_t http_server_port(const http_server *s);
// Stops accepting connections (the listening socket closes; running exchanges go on).
void http_server_quiesce(http_server *s);
// Closes every connection, waits for their threads and frees s. NULL: no-op.
void http_server_stop(http_server *s);

// What handlers read of an exchange.
const char *http_method(const http_exchange *x);
const char *http_path(const http_exchange *x);                     // the target without its query
const char *http_header(const http_exchange *x, const char *name); // NULL when absent
const char *http_body(const http_exchange *x);                     // NUL-terminated ("" when none)
size_t http_body_len(const http_exchange *x);
// The handlers' own state for this exchange.
void *http_user(const http_exchange *x);
void http_set_user(http_exchange *x, void *user);
// Sets the body limit of this request (called from the head handler).
void http_set_max_body(http_exchange *x, size_t max_body);

// Header fields of an answer (the layer adds Date, Content-Length or Transfer-Encoding and
// Connection).
typedef struct http_fields {
    const char *name[16], *value[16];
    size_t n;
} http_fields;
void http_fields_add(http_fields *f, const char *name, const char *value);

// Answers with a whole body (copied out before returning). Only the first answer counts.
int http_respond(http_exchange *x, int status, const http_fields *f, const char *body, size_t len);
// Starts a streamed answer (chunked in HTTP/1.1, ended by closing in HTTP/1.0).
int http_stream_begin(http_exchange *x, int status, const http_fields *f);
// Sends the next bytes of a stream; GARLIC_EIO when the client is gone or accepted no byte
// for the write timeout.
int http_stream_write(http_exchange *x, const char *data, size_t len);
// Ends a stream; failed: the stream broke off (the connection is closed without the last
// chunk, so the client sees an incomplete answer).
int http_stream_end(http_exchange *x, bool failed);
// The client is still there: its socket has not been reset or failed. A client that only
// shut down its sending side (half-close) is there.
bool http_client_alive(const http_exchange *x);

#endif
