// SPDX-License-Identifier: MIT
// Errors as values. Every fallible function returns GARLIC_OK (0) or a negative
// GARLIC_E* code and fills a caller-supplied garlic_error with a message that names
// the thing at fault ("model.gguf: tensor 'blk.3.attn_q.weight': data ends at ...").
#ifndef GARLIC_BASE_ERROR_H
#define GARLIC_BASE_ERROR_H

enum {
    GARLIC_OK = 0,
    GARLIC_EINVAL = -1,       // bad argument or bad input value
    GARLIC_ENOMEM = -2,       // allocation failed
    GARLIC_EIO = -3,          // read, write, open or mmap failed
    GARLIC_EFORMAT = -4,      // a file or body is malformed
    GARLIC_EUNSUPPORTED = -5, // well-formed but not something garlic can handle
    GARLIC_ENOTFOUND = -6,    // a key, tensor or model does not exist
    GARLIC_ETYPE = -7,        // a value exists but has another type
    GARLIC_EFULL = -8,        // a queue is full: try again later (HTTP 503)
    GARLIC_ESTOPPED = -9,     // shutting down: no new work is taken (HTTP 503)
    GARLIC_ERROR_COUNT = 10   // codes are 0 down to -(GARLIC_ERROR_COUNT - 1)
};

typedef struct garlic_error {
    int code;          // the GARLIC_E* code of the last failure, GARLIC_OK if none
    char message[512]; // NUL-terminated, human-readable
} garlic_error;

// Records code and a printf-style message in err (which may be NULL) and returns code,
// so that callers can write `return garlic_error_set(err, GARLIC_EINVAL, "...")`.
int garlic_error_set(garlic_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

// A short constant name for every code ("format error"); "unknown error" for a value that is
// not a code.
const char *garlic_error_name(int code);

#endif
