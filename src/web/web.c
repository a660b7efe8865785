// SPDX-License-Identifier: MIT
// Looks up the pages compiled into the binary (the table tools/embed_files.sh generates) and
// names each file's content type by its extension.
#include <string.h>

#include "web/web.h"

const char web_content_security_policy[] =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

typedef struct web_type {
    const char *extension;
    const char *content_type;
} web_type;

static const web_type types[] = {
    {".html", "text/html; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".mjs", "text/javascript; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
    {".json", "application/json"},
};

static const char *type_of(const char *path)
{
    const char *dot = strrchr(path, '.');
    for (size_t i = 0; dot && i < sizeof types / sizeof types[0]; i++)
        if (strcmp(dot, types[i].extension) == 0)
            return types[i].content_type;
    return "application/octet-stream";
}

bool web_asset(const char *path, const unsigned char **data, size_t *len, const char **content_type)
{
    for (size_t i = 0; i < web_n_files; i++) {
        if (strcmp(web_files[i].path, path) != 0)
            continue;
        *data = web_files[i].data;
        *len = web_files[i].len;
        *content_type = type_of(path);
        return true;
    }
    return false;
}
