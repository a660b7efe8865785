// SPDX-License-Identifier: MIT
// The HTTP server: garlic's HTTP/1.1 layer (http.h) with a thread per connection, keep-alive,
// chunked streaming, limits on body and head size, connections in all and per address, and
// deadlines for slow clients, Bearer-key authentication, Host and CORS checks, /health and
// /metrics, and a route table that hands each API endpoint to its handler in api/. Errors
// come back in OpenAI's shape (Ollama's on /api/*).
#ifndef GARLIC_SERVER_H
#define GARLIC_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

typedef struct registry registry;

enum {
    SERVER_DEFAULT_PORT = 8686,        // clashes with neither Ollama, vLLM nor llama-server
    SERVER_DEFAULT_MAX_BODY = 8 << 20, // bytes; larger bodies get 413
    SERVER_DEFAULT_MAX_CONNECTIONS = 512,
    SERVER_DEFAULT_MAX_PER_ADDRESS = 128,
    SERVER_DEFAULT_TIMEOUT = 300,        // seconds a kept-alive connection may stay idle
    SERVER_DEFAULT_REQUEST_TIMEOUT = 30, // seconds from a request's first byte to its body's end
    SERVER_DEFAULT_WRITE_TIMEOUT = 20,   // seconds a client may accept no byte of its answer
    SERVER_UNLIMITED = 0xffffffffu,      // max_per_address: no limit
};

typedef struct server_config {
    const char *host;          // address to bind ("127.0.0.1", "::1", "0.0.0.0")
    uint16_t port;             // 0: any free port (server_port tells which)
    const char *api_key;       // NULL or "": no authentication
    const char *cors_origin;   // origins allowed: a comma-separated list, "*", "http://host:*";
                               // NULL: pages on localhost, 127.0.0.1 and [::1] (any port)
    size_t max_body;           // 0: SERVER_DEFAULT_MAX_BODY
    unsigned max_connections;  // 0: SERVER_DEFAULT_MAX_CONNECTIONS
    unsigned max_per_address;  // 0: SERVER_DEFAULT_MAX_PER_ADDRESS; SERVER_UNLIMITED: none
    unsigned timeout_seconds;  // 0: SERVER_DEFAULT_TIMEOUT
    double request_timeout;    // <= 0: SERVER_DEFAULT_REQUEST_TIMEOUT
    double write_timeout;      // <= 0: SERVER_DEFAULT_WRITE_TIMEOUT
    const char *allowed_hosts; // --allowed-hosts: other names the server answers for
    bool log_requests;         // one line per request on the log (base/log.h)
    bool log_prompts;          // and each generating request's rendered prompt
    const char *store_root;    // the model store /api/pull, /api/create, /api/delete and
                               // /api/copy manage (and whose models are served); NULL: none
} server_config;

typedef struct server server;

// Starts listening and serving on threads of its own. reg is borrowed and must outlive
// the server; the strings in cfg are copied. NULL and err filled when the address is bad or
// the port cannot be bound.
server *server_start(const server_config *cfg, registry *reg, garlic_error *err);

// The port the server listens on.
uint16_t server_port(const server *s);

// Stops accepting connections, lets running requests finish for up to grace_seconds (then
// cancels them, which ends their streams cleanly), waits for streams to flush, and frees
// everything. server_stop(NULL) is a no-op.
void server_stop(server *s, double grace_seconds);

#endif
