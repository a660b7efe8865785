// SPDX-License-Identifier: MIT
// Whole-file reads; see file.h.
#include "base/file.h"

#include <errno.h>
#include <string.h>

#include "base/alloc.h"
#include "base/buffer.h"

int garlic_stream_read(FILE *f, const char *name, size_t max_bytes, char **data, size_t *len,
                       garlic_error *err)
{
    garlic_buf b = {0};
    for (;;) {
        if (garlic_buf_reserve(&b, 65536) != GARLIC_OK) {
            garlic_buf_deinit(&b);
            return garlic_error_set(err, GARLIC_ENOMEM, "%s: out of memory", name);
        }
        size_t got = fread(b.data + b.len, 1, b.cap - b.len - 1, f);
        b.len += got;
        b.data[b.len] = '\0';
        if (b.len > max_bytes) {
            garlic_buf_deinit(&b);
            return garlic_error_set(err, GARLIC_EINVAL, "%s: larger than %zu bytes", name,
                                    max_bytes);
        }
        if (got == 0)
            break;
    }
    if (ferror(f)) {
        int e = errno;
        garlic_buf_deinit(&b);
        return garlic_error_set(err, GARLIC_EIO, "%s: %s", name, e ? strerror(e) : "read failed");
    }
    if (len)
        *len = b.len;
    *data = garlic_buf_take(&b);
    return *data ? GARLIC_OK : garlic_error_set(err, GARLIC_ENOMEM, "%s: out of memory", name);
}

int garlic_file_read(const char *path, size_t max_bytes, char **data, size_t *len,
                     garlic_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return garlic_error_set(err, GARLIC_EIO, "%s: %s", path, strerror(errno));
    int rc = garlic_stream_read(f, path, max_bytes, data, len, err);
    fclose(f);
    return rc;
}
