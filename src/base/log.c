// SPDX-License-Identifier: MIT
// The operator's log; see log.h.
#include "base/log.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "base/error.h"
#include "base/utf8.h"

static _Atomic int format = LOG_FORMAT_TEXT;
static _Atomic int log_fd = 2;

void garlic_log_set_format(log_format f) { atomic_store(&format, (int)f); }

log_format garlic_log_get_format(void) { return (log_format)atomic_load(&format); }

bool garlic_log_format_parse(const char *name, log_format *out)
{
    if (strcmp(name, "text") == 0)
        *out = LOG_FORMAT_TEXT;
    else if (strcmp(name, "json") == 0)
        *out = LOG_FORMAT_JSON;
    else
        return false;
    return true;
}

void garlic_log_set_fd(int fd) { atomic_store(&log_fd, fd); }

static void add(garlic_log_line *l, const char *text, size_t n)
{
    if (!l->failed && garlic_buf_append(&l->buf, text, n) != GARLIC_OK)
        l->failed = true;
}

// value as a JSON string (quotes, escapes, control characters as \u00XX, and a byte that
// starts no valid UTF-8 sequence as U+FFFD, so a line is valid JSON whatever a client sent).
static void add_json_string(garlic_log_line *l, const char *value)
{
    add(l, "\"", 1);
    size_t n = strlen(value);
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)value[i];
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\', esc[1] = (char)c;
            add(l, esc, 2);
        } else if (c < 0x20 || c == 0x7f) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            add(l, esc, 6);
        } else if (c >= 0x80) {
            size_t len = utf8_sequence_length(value + i, n - i);
            add(l, len ? value + i : "\xef\xbf\xbd", len ? len : 3);
            i += len ? len : 1;
            continue;
        } else {
            add(l, value + i, 1);
        }
        i++;
    }
    add(l, "\"", 1);
}

// value for a text line: bare when it is one word of valid UTF-8, else quoted like a JSON
// string.
static void add_text_value(garlic_log_line *l, const char *value)
{
    bool bare = *value != '\0' && utf8_valid(value, strlen(value));
    for (const unsigned char *p = (const unsigned char *)value; *p && bare; p++)
        bare = *p > 0x20 && *p != 0x7f && *p != '"' && *p != '\\' && *p != '=';
    if (bare)
        add(l, value, strlen(value));
    else
        add_json_string(l, value);
}

// The separator and key before a field's value.
static void add_key(garlic_log_line *l, const char *key)
{
    if (l->format == LOG_FORMAT_JSON) {
        add(l, ",", 1);
        add_json_string(l, key);
        add(l, ":", 1);
    } else {
        add(l, " ", 1);
        add(l, key, strlen(key));
        add(l, "=", 1);
    }
}

void garlic_log_begin(garlic_log_line *l, const char *event)
{
    *l = (garlic_log_line){.format = garlic_log_get_format()};
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char stamp[64];
    snprintf(stamp, sizeof stamp, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(tv.tv_usec / 1000));
    if (l->format == LOG_FORMAT_JSON) {
        add(l, "{\"time\":\"", 9);
        add(l, stamp, strlen(stamp));
        add(l, "\",\"event\":", 10);
        add_json_string(l, event);
    } else {
        add(l, stamp, strlen(stamp));
        add(l, " ", 1);
        add(l, event, strlen(event));
    }
}

void garlic_log_str(garlic_log_line *l, const char *key, const char *value)
{
    add_key(l, key);
    if (l->format == LOG_FORMAT_JSON)
        add_json_string(l, value ? value : "");
    else
        add_text_value(l, value ? value : "");
}

void garlic_log_int(garlic_log_line *l, const char *key, int64_t value)
{
    char text[32];
    int n = snprintf(text, sizeof text, "%lld", (long long)value);
    add_key(l, key);
    add(l, text, (size_t)n);
}

void garlic_log_num(garlic_log_line *l, const char *key, double value)
{
    char text[48];
    int n = snprintf(text, sizeof text, "%.1f", value == value ? value : 0.0);
    add_key(l, key);
    add(l, text, (size_t)n);
}

void garlic_log_end(garlic_log_line *l)
{
    add(l, l->format == LOG_FORMAT_JSON ? "}\n" : "\n", l->format == LOG_FORMAT_JSON ? 2 : 1);
    if (!l->failed) {
        int fd = atomic_load(&log_fd);
        size_t done = 0;
        while (done < l->buf.len) {
            ssize_t n = write(fd, l->buf.data + done, l->buf.len - done);
            if (n <= 0)
                break;
            done += (size_t)n;
        }
    }
    garlic_buf_deinit(&l->buf);
}
