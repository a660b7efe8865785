// SPDX-License-Identifier: MIT
// Reading a whole file (or stream) into memory: templates, configuration files, request
// bodies from the command line. Model weights are never read this way; they are mapped.
#ifndef GARLIC_BASE_FILE_H
#define GARLIC_BASE_FILE_H

#include <stddef.h>
#include <stdio.h>

#include "base/error.h"

// Reads the file at path into a fresh NUL-terminated buffer (*data, freed by the caller with
// garlic_free; *len its length without the NUL, may be NULL). Refuses files over max_bytes.
// Errors name the file: GARLIC_EIO (cannot open or read), GARLIC_EINVAL (too large),
// GARLIC_ENOMEM.
int garlic_file_read(const char *path, size_t max_bytes, char **data, size_t *len,
                     garlic_error *err);

// The same for an open stream read to its end (standard input); name is used in messages.
int garlic_stream_read(FILE *f, const char *name, size_t max_bytes, char **data, size_t *len,
                       garlic_error *err);

#endif
