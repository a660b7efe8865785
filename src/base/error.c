// SPDX-License-Identifier: MIT
// Error values: formatting messages into a caller-supplied garlic_error.
#include "base/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int garlic_error_set(garlic_error *err, int code, const char *fmt, ...)
{
    if (!err)
        return code;
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return code;
}

const char *garlic_error_name(int code)
{
    switch (code) {
    case GARLIC_OK: return "ok";
    case GARLIC_EINVAL: return "invalid argument";
    case GARLIC_ENOMEM: return "out of memory";
    case GARLIC_EIO: return "I/O error";
    case GARLIC_EFORMAT: return "format error";
    case GARLIC_EUNSUPPORTED: return "unsupported";
    case GARLIC_ENOTFOUND: return "not found";
    case GARLIC_ETYPE: return "wrong type";
    case GARLIC_EFULL: return "queue full";
    case GARLIC_ESTOPPED: return "shutting down";
    default: return "unknown error";
    }
}
