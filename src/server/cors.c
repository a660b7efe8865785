// SPDX-License-Identifier: MIT
// Cross-origin rules: which browser pages may call the server. A request with an Origin
// header from another origin is allowed when --cors-origin lists that origin (or "*", or
// "scheme://host:*" for any port), or, without the flag, when it comes from a page on this
// machine (http(s)://localhost, 127.0.0.1 or [::1], any port) as Ollama's OLLAMA_ORIGINS
// default allows; a page served by the server itself is always allowed. The server echoes
// the allowed origin and never sends Access-Control-Allow-Credentials.
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "server/internal.h"

// The origin as scheme://host, its port after a ':' (digits only) or none.
static bool split_port(const char *origin, size_t *host_len, const char **port)
{
    const char *scheme_end = strstr(origin, "://");
    if (!scheme_end)
        return false;
    const char *host = scheme_end + 3;
    const char *colon = host[0] == '[' ? strstr(host, "]:") : strchr(host, ':');
    if (colon && host[0] == '[')
        colon++;
    *host_len = colon ? (size_t)(colon - origin) : strlen(origin);
    *port = colon ? colon + 1 : NULL;
    if (*port && (!**port || strspn(*port, "0123456789") != strlen(*port)))
        return false;
    return true;
}

// One policy entry against an origin: exact, or "scheme://host:*" for any port (or none).
static bool entry_matches(const char *entry, size_t n, const char *origin)
{
    if (n >= 2 && entry[n - 2] == ':' && entry[n - 1] == '*') {
        size_t host_len;
        const char *port;
        return split_port(origin, &host_len, &port) && host_len == n - 2 &&
            strncasecmp(entry, origin, host_len) == 0;
    }
    return strlen(origin) == n && strncasecmp(entry, origin, n) == 0;
}

static const char *const local_origins[] = {
    "http://localhost:*",  "https://localhost:*", "http://127.0.0.1:*",
    "https://127.0.0.1:*", "http://[::1]:*",      "https://[::1]:*",
};

// The page was served by this server: its origin is scheme://Host.
static bool same_origin(const char *origin, const char *host)
{
    if (!host || !*host)
        return false;
    const char *rest = strncasecmp(origin, "http://", 7) == 0 ? origin + 7
        : strncasecmp(origin, "https://", 8) == 0             ? origin + 8
                                                              : NULL;
    return rest && strcasecmp(rest, host) == 0;
}

server_cors server_cors_check(const char *policy, const char *origin, const char *host, char *allow,
                              size_t cap)
{
    allow[0] = '\0';
    if (!origin)
        return SERVER_CORS_NONE;
    if (strlen(origin) >= cap)
        return SERVER_CORS_REFUSED;
    bool ok = same_origin(origin, host);
    if (!policy) {
        for (size_t i = 0; !ok && i < sizeof local_origins / sizeof local_origins[0]; i++)
            ok = entry_matches(local_origins[i], strlen(local_origins[i]), origin);
    }
    for (const char *p = policy; !ok && p && *p;) {
        p += strspn(p, " ,");
        size_t n = strcspn(p, ",");
        while (n && p[n - 1] == ' ')
            n--;
        if (n == 1 && p[0] == '*') {
            snprintf(allow, cap, "*");
            return SERVER_CORS_ALLOWED;
        }
        ok = n && entry_matches(p, n, origin);
        p += n;
        p += strcspn(p, ",");
    }
    if (!ok)
        return SERVER_CORS_REFUSED;
    snprintf(allow, cap, "%s", origin);
    return SERVER_CORS_ALLOWED;
}

void server_cors_request_headers(const char *requested, char *out, size_t cap)
{
    static const char plain[] = "Authorization, Content-Type";
    size_t n = requested ? strlen(requested) : 0;
    // Echo what the client asks for when it is a plain list of header names.
    if (n && n < cap &&
        strspn(requested, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_, ") ==
            n)
        snprintf(out, cap, "%s", requested);
    else
        snprintf(out, cap, "%s", plain);
}

bool server_host_is_local(const char *host)
{
    size_t n = strlen(host);
    const char *colon = strrchr(host, ':');
    if (host[0] == '[') { // [v6]:port
        const char *close = strchr(host, ']');
        if (!close)
            return false;
        return (size_t)(close - host) == 4 && strncmp(host, "[::1]", 5) == 0;
    }
    if (colon)
        n = (size_t)(colon - host);
    if (n == 9 && strncasecmp(host, "localhost", 9) == 0)
        return true;
    if (n > 10 && strncasecmp(host + n - 10, ".localhost", 10) == 0)
        return true;
    // 127.0.0.0/8 written as a dotted quad
    unsigned a, b, c, d;
    char tail;
    char ip[32];
    if (n >= sizeof ip)
        return false;
    memcpy(ip, host, n);
    ip[n] = '\0';
    return sscanf(ip, "%u.%u.%u.%u%c", &a, &b, &c, &d, &tail) == 4 && a == 127 && b < 256 &&
        c < 256 && d < 256;
}

// The host part of a Host header (without the port), into out (cap bytes); false when it
// does not fit.
static bool host_name(const char *host, char *out, size_t cap)
{
    size_t n = strlen(host);
    if (host[0] == '[') {
        const char *close = strchr(host, ']');
        n = close ? (size_t)(close - host) + 1 : n;
    } else {
        const char *colon = strchr(host, ':');
        if (colon)
            n = (size_t)(colon - host);
    }
    if (n == 0 || n >= cap)
        return false;
    memcpy(out, host, n);
    out[n] = '\0';
    return true;
}

// The name is an IP address written out (a page cannot make an address resolve elsewhere).
static bool is_address(const char *name)
{
    unsigned char bytes[16];
    if (name[0] == '[') {
        char inner[64];
        size_t n = strlen(name);
        if (n < 3 || n - 2 >= sizeof inner || name[n - 1] != ']')
            return false;
        memcpy(inner, name + 1, n - 2);
        inner[n - 2] = '\0';
        return inet_pton(AF_INET6, inner, bytes) == 1;
    }
    return inet_pton(AF_INET, name, bytes) == 1;
}

// One --allowed-hosts entry against a name: "*", an exact name, or ".domain" / "*.domain"
// for the domain and every name under it.
static bool host_entry_matches(const char *entry, size_t n, const char *name)
{
    if (n == 1 && entry[0] == '*')
        return true;
    if (n > 1 && entry[0] == '*' && entry[1] == '.')
        entry++, n--;
    size_t m = strlen(name);
    if (entry[0] == '.') {
        if (m == n - 1 && strncasecmp(name, entry + 1, n - 1) == 0)
            return true;
        return m > n && strncasecmp(name + m - n, entry, n) == 0;
    }
    return m == n && strncasecmp(name, entry, n) == 0;
}

bool server_host_allowed(const char *allowed, const char *host)
{
    if (!host)
        return true; // HTTP/1.0 without Host: not a browser
    char name[256];
    if (!host_name(host, name, sizeof name))
        return false;
    if (server_host_is_local(host) || is_address(name))
        return true;
    // The machine's own name, its short form, and the short form under .local (mDNS); never
    // the short name under another domain, which anyone can point at 127.0.0.1.
    char own[256] = "";
    if (gethostname(own, sizeof own - 1) == 0 && own[0]) {
        own[sizeof own - 1] = '\0';
        size_t own_short = strcspn(own, "."), name_short = strcspn(name, ".");
        bool same_short = own_short == name_short && strncasecmp(own, name, own_short) == 0;
        if (strcasecmp(own, name) == 0 || (same_short && !name[name_short]) ||
            (same_short && strcasecmp(name + name_short, ".local") == 0))
            return true;
    }
    for (const char *p = allowed; p && *p;) {
        while (*p == ',' || *p == ' ')
            p++;
        const char *e = p;
        while (*e && *e != ',' && *e != ' ')
            e++;
        if (e > p && host_entry_matches(p, (size_t)(e - p), name))
            return true;
        p = e;
    }
    return false;
}
