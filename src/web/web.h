// SPDX-License-Identifier: MIT
// The built-in pages: the chat page, the operator page and their scripts and styles, kept as
// plain files in src/web/static/ and compiled into the binary as byte arrays (the Makefile
// runs tools/embed_files.sh). The server asks web_asset for a path under /static/ and sends
// the bytes with the content type it gives; nothing here knows about HTTP beyond that.
#ifndef GARLIC_WEB_H
#define GARLIC_WEB_H

#include <stdbool.h>
#include <stddef.h>

// One embedded file: its URL path ("/static/chat.js") and bytes (NUL-terminated, len
// without the NUL). The generated table lives for the whole program.
typedef struct web_file {
    const char *path;
    const unsigned char *data; // (len + 1)
    size_t len;
} web_file;

extern const web_file web_files[]; // (web_n_files), generated
extern const size_t web_n_files;

// Finds the embedded file at path ("/static/chat.html"). On success fills the borrowed
// bytes (static, never freed), their length and the content type from the file's extension,
// and returns true; false when no file has that path.
bool web_asset(const char *path, const unsigned char **data, size_t *len,
               const char **content_type);

// The Content-Security-Policy the pages are sent with: scripts and styles only from the
// server itself (no inline script), connections only to it.
extern const char web_content_security_policy[];

#endif
