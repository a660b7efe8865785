// SPDX-License-Identifier: MIT
// What the server's files share: the route table's size and the request counters that
// metrics.c renders in Prometheus' text format.
#ifndef GARLIC_SERVER_INTERNAL_H
#define GARLIC_SERVER_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "registry/registry.h"

// The statuses counted one by one; anything else counts as "other".
enum { METRICS_STATUS_COUNT = 11, METRICS_MAX_ENDPOINTS = 32 };

// Requests by endpoint and status. Written by every HTTP thread (atomics), read by /metrics.
typedef struct server_metrics {
    const char *endpoints[METRICS_MAX_ENDPOINTS]; // (n_endpoints) static names, last "other"
    size_t n_endpoints;
    atomic_ulong requests[METRICS_MAX_ENDPOINTS][METRICS_STATUS_COUNT];
    atomic_uint streams; // streams being sent now
} server_metrics;

// Counts one answered request.
void server_metrics_count(server_metrics *m, size_t endpoint, int status);

// The Prometheus text of m and reg's statistics, garlic_malloc'd (NULL without memory).
char *server_metrics_render(server_metrics *m, registry *reg, size_t *len);

// What the CORS rules say of a request (cors.c).
typedef enum server_cors {
    SERVER_CORS_NONE,    // no Origin header: not a cross-origin browser request
    SERVER_CORS_ALLOWED, // allowed: send Access-Control-Allow-Origin
    SERVER_CORS_REFUSED, // a page on an origin the policy does not allow
    SERVER_CORS_COUNT
} server_cors;

// Checks origin (the Origin header, NULL when absent) against policy (--cors-origin: a
// comma-separated list of origins, "*", "scheme://host:*"; NULL: pages on localhost,
// 127.0.0.1 and [::1]); host is the Host header (a page of the server's own is allowed).
// On SERVER_CORS_ALLOWED, allow (cap bytes) holds the Access-Control-Allow-Origin value.
server_cors server_cors_check(const char *policy, const char *origin, const char *host, char *allow,
                              size_t cap);

// The Access-Control-Allow-Headers of a preflight: the requested list (its
// Access-Control-Request-Headers) when it is a plain list of names, else Authorization and
// Content-Type. out has cap bytes.
void server_cors_request_headers(const char *requested, char *out, size_t cap);

// The Host header names this machine's loopback: localhost (or a name under .localhost),
// 127.x.x.x or [::1], with or without a port. A server bound to a loopback address answers
// only such requests, so a page whose name was made to resolve to 127.0.0.1 (DNS rebinding)
// cannot call it as its own origin.
bool server_host_is_local(const char *host);

// The Host header names this server in a way a page cannot have made up (DNS rebinding): a
// loopback name or address, any IP address, the machine's own name (full, short, or short
// under .local), or a name that allowed (--allowed-hosts: a comma-separated list of names,
// ".domain" or "*.domain" for a domain and the names under it, "*" for any) lists. A NULL
// host (HTTP/1.0 without Host) is allowed.
bool server_host_allowed(const char *allowed, const char *host);

#endif
