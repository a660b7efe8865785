// SPDX-License-Identifier: MIT
// `garlic ps [--host ADDR] [--port N] [--api-key KEY] [--json]`: the models a running server
// has loaded, from its GET /api/ps: name, planned size, KV cache in use and reserved,
// requests using it, and when it will be unloaded. GARLIC_HOST ("host", "host:port" or
// "http://host:port") and GARLIC_API_KEY are honoured as `garlic serve` reads them; the key
// goes in an "Authorization: Bearer" header, and a 401 says how to give one.
#include <cjson/cJSON.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/buffer.h"
#include "cli/cli.h"
#include "server/server.h"

enum { MAX_RESPONSE = 16 << 20 };

static const cli_command ps_command = {
    .name = "ps",
    .usage = "[options]",
    .about = "Lists the models a running `garlic serve` has loaded (GET /api/ps): name, planned "
             "size, KV cache\nin use and reserved, context, requests using it, and when it "
             "will be unloaded.",
    .notes = "GARLIC_HOST (\"host\", \"host:port\" or \"http://host:port\") and "
             "GARLIC_API_KEY work as for\n`garlic serve`; the flags win over them.",
};

// Connects to host:port (5 s timeouts); -1 with a message on failure.
static int connect_to(const char *host, const char *port)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "garlic ps: %s: %s\n", host, gai_strerror(rc));
        return -1;
    }
    int fd = -1;
    for (struct addrinfo *a = res; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
        struct timeval tv = {5, 0};
        if (fd >= 0) {
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        }
        if (fd >= 0 && connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0)
        fprintf(stderr, "garlic ps: cannot connect to %s:%s (%s); is `garlic serve` running?\n",
                host, port, strerror(errno));
    return fd;
}

// GETs path; returns the body (garlic_malloc'd) of a 200 answer, or NULL with a message.
static char *http_get(const char *host, const char *port, const char *path, const char *key)
{
    int fd = connect_to(host, port);
    if (fd < 0)
        return NULL;
    char req[1024];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s:%s\r\nConnection: close\r\n"
                     "%s%s%s\r\n",
                     path, host, port, key ? "Authorization: Bearer " : "", key ? key : "",
                     key ? "\r\n" : "");
    if (n < 0 || (size_t)n >= sizeof req || write(fd, req, (size_t)n) != n) {
        fprintf(stderr, "garlic ps: cannot send the request\n");
        close(fd);
        return NULL;
    }
    garlic_buf answer = {0};
    bool too_large = false;
    for (;;) {
        if (answer.len >= MAX_RESPONSE || garlic_buf_reserve(&answer, 65536)) {
            too_large = true;
            break;
        }
        ssize_t got = read(fd, answer.data + answer.len, answer.cap - answer.len - 1);
        if (got <= 0)
            break;
        answer.len += (size_t)got;
        answer.data[answer.len] = '\0';
    }
    close(fd);
    char *buf = too_large ? NULL : garlic_buf_take(&answer);
    garlic_buf_deinit(&answer);
    if (!buf) {
        fprintf(stderr, "garlic ps: the answer is too large\n");
        return NULL;
    }
    int status = 0;
    char *body = strstr(buf, "\r\n\r\n");
    if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1 || !body) {
        fprintf(stderr, "garlic ps: %s:%s did not answer HTTP\n", host, port);
        garlic_free(buf);
        return NULL;
    }
    if (status == 401 && !key)
        fprintf(stderr,
                "garlic ps: the server needs an API key: pass --api-key or set "
                "GARLIC_API_KEY\n");
    else if (status == 401)
        fprintf(stderr,
                "garlic ps: the server refused the API key given (--api-key or "
                "GARLIC_API_KEY)\n");
    if (status != 200) {
        fprintf(stderr, "garlic ps: %s:%s answered %d: %s\n", host, port, status, body + 4);
        garlic_free(buf);
        return NULL;
    }
    memmove(buf, body + 4, strlen(body + 4) + 1);
    return buf;
}

// "in 4 minutes", "in 30 seconds", "forever", "now" from an RFC 3339 UTC time.
static void until(const char *when, char *out, size_t cap)
{
    struct tm tm = {0};
    if (!when || !strptime(when, "%Y-%m-%dT%H:%M:%S", &tm)) {
        snprintf(out, cap, "?");
        return;
    }
    double left = difftime(timegm(&tm), time(NULL));
    if (left > 50 * 365 * 86400.0)
        snprintf(out, cap, "forever");
    else if (left <= 0)
        snprintf(out, cap, "now");
    else if (left < 120)
        snprintf(out, cap, "in %.0f seconds", left);
    else if (left < 7200)
        snprintf(out, cap, "in %.0f minutes", left / 60);
    else
        snprintf(out, cap, "in %.1f hours", left / 3600);
}

static double number(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static int print_table(const char *json)
{
    cJSON *root = cJSON_Parse(json);
    const cJSON *models = cJSON_GetObjectItemCaseSensitive(root, "models");
    if (!cJSON_IsArray(models)) {
        fprintf(stderr, "garlic ps: the server's /api/ps answer has no 'models' list\n");
        cJSON_Delete(root);
        return 1;
    }
    printf("%-28s %10s %10s %22s %8s %9s  %s\n", "NAME", "SIZE", "GPU", "KV CACHE USED/RESERVED",
           "CONTEXT", "REQUESTS", "UNTIL");
    const cJSON *m;
    cJSON_ArrayForEach(m, models)
    {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(m, "name");
        const cJSON *exp = cJSON_GetObjectItemCaseSensitive(m, "expires_at");
        const cJSON *g = cJSON_GetObjectItemCaseSensitive(m, "garlic");
        char kv[64], when[64];
        snprintf(kv, sizeof kv, "%s / %s", cli_format_bytes(number(g, "kv_cache_used_bytes")),
                 cli_format_bytes(number(g, "kv_cache_bytes")));
        double requests = number(g, "requests");
        const cJSON *state = cJSON_GetObjectItemCaseSensitive(g, "state");
        bool asleep = cJSON_IsString(state) && !strcmp(state->valuestring, "asleep");
        if (requests > 0)
            snprintf(when, sizeof when, "in use");
        else
            until(cJSON_IsString(exp) ? exp->valuestring : NULL, when, sizeof when);
        char gpu[32];
        double vram = number(m, "size_vram");
        snprintf(gpu, sizeof gpu, "%s",
                 asleep         ? "asleep"
                     : vram > 0 ? cli_format_bytes(vram)
                                : "-");
        printf("%-28s %10s %10s %22s %8.0f %9.0f  %s\n",
               cJSON_IsString(name) ? name->valuestring : "?", cli_format_bytes(number(m, "size")),
               gpu, kv, number(m, "context_length"), requests, when);
    }
    cJSON_Delete(root);
    return 0;
}

int cli_ps(int argc, char **argv)
{
    const char *env = getenv("GARLIC_HOST"), *key = getenv("GARLIC_API_KEY"), *host_flag = NULL;
    char host[256] = "127.0.0.1", port[16];
    snprintf(port, sizeof port, "%d", SERVER_DEFAULT_PORT);
    if (env && *env) { // "http://host:port", "host:port" or "host"
        const char *h = strstr(env, "://") ? strstr(env, "://") + 3 : env;
        const char *colon = strrchr(h, ':');
        if (colon && !strchr(colon, ']')) {
            snprintf(host, sizeof host, "%.*s", (int)(colon - h), h);
            snprintf(port, sizeof port, "%s", colon + 1);
        } else {
            snprintf(host, sizeof host, "%s", h);
        }
        size_t n = strlen(port);
        if (n && port[n - 1] == '/')
            port[n - 1] = '\0';
    }
    bool json = false, port_given = false;
    uint32_t port_flag = 0;
    const cli_option options[] = {
        cli_string("--host", "ADDR", "the server's address (default 127.0.0.1)", &host_flag),
        cli_seen(cli_uint("--port", "N", "the server's port (default 8686)", &port_flag, 1, 65535),
                 &port_given),
        cli_string("--api-key", "KEY", "the server's API key, sent as a Bearer token", &key),
        cli_flag("--json", "print the server's answer as it is", &json),
        {0},
    };
    int status = cli_parse(&ps_command, options, argc, argv);
    if (status != CLI_CONTINUE)
        return status;
    if (host_flag)
        snprintf(host, sizeof host, "%s", host_flag);
    if (port_given)
        snprintf(port, sizeof port, "%u", port_flag);
    if (key && !*key)
        key = NULL;
    char *body = http_get(host, port, "/api/ps", key);
    if (!body)
        return 1;
    int rc = json ? (printf("%s\n", body), 0) : print_table(body);
    garlic_free(body);
    return rc;
}
