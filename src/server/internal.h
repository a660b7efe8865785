// SPDX-License-Identifier: MIT
// What the server's files share: the route table's size and the request counters that
// metrics.c renders in Prometheus' text format.
#ifndef GARLIC_SERVER_INTERNAL_H
#define GARLIC_SERVER_INTERNAL_H

#include <stdatomic.h>
#include <stddef.h>

#include "registry/registry.h"

// The statuses counted one by one; anything else counts as "other".
enum { METRICS_STATUS_COUNT = 11, METRICS_MAX_ENDPOINTS = 24 };

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

#endif
