// SPDX-License-Identifier: MIT
// The operator's log: one line per event on standard error, as text for people
// ("2026-12-04T10:11:12.345Z request method=POST status=200 model=qwen3 total_ms=812.4") or as
// one JSON object per line for machines (--log-format json). A line is built field by field
// and written with one call, so lines from different threads never interleave.
#ifndef GARLIC_BASE_LOG_H
#define GARLIC_BASE_LOG_H

#include <stdbool.h>
#include <stdint.h>

#include "base/buffer.h"

typedef enum log_format { LOG_FORMAT_TEXT, LOG_FORMAT_JSON, LOG_FORMAT_COUNT } log_format;

// The format of every line from now on (set once at start-up, before threads log).
void garlic_log_set_format(log_format f);
log_format garlic_log_get_format(void);
// "text" or "json" into *out; false for anything else.
bool garlic_log_format_parse(const char *name, log_format *out);

// One line being built. Fields keep their order; keys are plain words.
typedef struct garlic_log_line {
    garlic_buf buf;
    log_format format;
    bool failed; // an allocation failed: the line is dropped
} garlic_log_line;

// Starts a line for event ("request", "load", "unload", ...) stamped with the UTC time.
void garlic_log_begin(garlic_log_line *l, const char *event);
void garlic_log_str(garlic_log_line *l, const char *key, const char *value);
void garlic_log_int(garlic_log_line *l, const char *key, int64_t value);
void garlic_log_num(garlic_log_line *l, const char *key, double value); // 1 decimal
// Writes the line to standard error and frees it.
void garlic_log_end(garlic_log_line *l);

// The destination for tests: lines go to fd instead of standard error (2) from now on.
void garlic_log_set_fd(int fd);

#endif
