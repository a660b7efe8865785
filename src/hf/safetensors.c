// SPDX-License-Identifier: MIT
// The safetensors header: which tensors a file holds, their dtypes, shapes and data ranges,
// every length and offset checked before use (the layout is in hf.h). Only the 8-byte length
// and the JSON header are read, never tensor data.
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/utf8.h"
#include "hf/hf.h"

static const struct {
    const char *name;
    uint32_t size;
} dtypes[] = {
    {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E4M3", 1}, {"F8_E5M2", 1}, {"F8_E8M0", 1},
    {"I16", 2},  {"U16", 2}, {"F16", 2}, {"BF16", 2},    {"I32", 4},     {"U32", 4},
    {"F32", 4},  {"I64", 8}, {"U64", 8}, {"F64", 8},
};

uint32_t hf_safetensors_dtype_size(const char *dtype)
{
    for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++)
        if (strcmp(dtypes[i].name, dtype) == 0)
            return dtypes[i].size;
    return 0;
}

typedef struct range {
    uint64_t begin, end;
    const char *name; // the tensor's, valid during the parse
} range;

static int range_cmp(const void *a, const void *b)
{
    const range *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin;
}

// A tensor name fit for a message (sanitized, shortened; one static buffer).
static const char *shown(const char *name)
{
    static char buf[96];
    utf8_sanitize(name, strlen(name), buf, sizeof buf, true);
    return buf;
}

// An integer JSON value in [0, 2^53] (exactly representable); false otherwise.
static bool json_u64(const cJSON *v, uint64_t *out)
{
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0) || v->valuedouble > 0x1p53 ||
        v->valuedouble != floor(v->valuedouble))
        return false;
    *out = (uint64_t)v->valuedouble;
    return true;
}

// Quantization metadata stored beside weights: bytes that are not parameters.
static bool is_scale_name(const char *name)
{
    static const char *const suffixes[] = {"scale_inv", "_scale", "scales", "qzeros", "g_idx"};
    size_t len = strlen(name);
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
        size_t n = strlen(suffixes[i]);
        if (len >= n && strcmp(name + len - n, suffixes[i]) == 0)
            return true;
    }
    return false;
}

// Validates one tensor entry into *out (its name and dtype point into t).
static int parse_tensor(const cJSON *t, const char *file, uint64_t data_size, hf_tensor *out,
                        garlic_error *err)
{
    const char *name = t->string;
    *out = (hf_tensor){.name = name};
    if (!cJSON_IsObject(t))
        return garlic_error_set(err, GARLIC_EFORMAT, "%s: tensor '%s': not an object", file,
                                shown(name));
    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(t, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(t, "shape");
    const cJSON *offsets = cJSON_GetObjectItemCaseSensitive(t, "data_offsets");
    if (!cJSON_IsString(dtype))
        return garlic_error_set(err, GARLIC_EFORMAT,
                                "%s: tensor '%s': dtype missing or not a "
                                "string",
                                file, shown(name));
    uint32_t size = hf_safetensors_dtype_size(dtype->valuestring);
    out->dtype = dtype->valuestring, out->dtype_size = size;
    if (!size) {
        char type[40];
        utf8_sanitize(dtype->valuestring, strlen(dtype->valuestring), type, sizeof type, true);
        return garlic_error_set(err, GARLIC_EFORMAT, "%s: tensor '%s': unknown dtype '%s'", file,
                                shown(name), type);
    }
    int n_dims = cJSON_GetArraySize(shape);
    if (!cJSON_IsArray(shape) || n_dims > HF_MAX_DIMS)
        return garlic_error_set(err, GARLIC_EFORMAT,
                                "%s: tensor '%s': shape missing, not an "
                                "array or over %d dimensions",
                                file, shown(name), HF_MAX_DIMS);
    uint64_t n_elements = 1, bytes = 0, dim;
    const cJSON *d;
    cJSON_ArrayForEach(d, shape)
    {
        if (!json_u64(d, &dim) || __builtin_mul_overflow(n_elements, dim, &n_elements))
            return garlic_error_set(err, GARLIC_EFORMAT,
                                    "%s: tensor '%s': shape holds a value "
                                    "that is not a non-negative integer, or its product overflows",
                                    file, shown(name));
        out->shape[out->n_dims++] = dim;
    }
    if (__builtin_mul_overflow(n_elements, size, &bytes))
        return garlic_error_set(err, GARLIC_EFORMAT, "%s: tensor '%s': size overflows", file,
                                shown(name));
    if (!cJSON_IsArray(offsets) || cJSON_GetArraySize(offsets) != 2 ||
        !json_u64(cJSON_GetArrayItem(offsets, 0), &out->begin) ||
        !json_u64(cJSON_GetArrayItem(offsets, 1), &out->end) || out->begin > out->end)
        return garlic_error_set(err, GARLIC_EFORMAT,
                                "%s: tensor '%s': data_offsets must be "
                                "[begin, end] with 0 <= begin <= end",
                                file, shown(name));
    if (out->end > data_size)
        return garlic_error_set(err, GARLIC_EFORMAT,
                                "%s: tensor '%s': data ends at byte %llu "
                                "of a data section of %llu bytes",
                                file, shown(name), (unsigned long long)out->end,
                                (unsigned long long)data_size);
    if (out->end - out->begin != bytes)
        return garlic_error_set(err, GARLIC_EFORMAT,
                                "%s: tensor '%s': data_offsets span %llu "
                                "bytes, shape x %s needs %llu",
                                file, shown(name), (unsigned long long)(out->end - out->begin),
                                dtype->valuestring, (unsigned long long)bytes);
    out->n_elements = n_elements, out->bytes = bytes;
    out->scales = is_scale_name(name);
    out->norm = strstr(name, "norm") != NULL;
    return GARLIC_OK;
}

// Checks that no two non-empty ranges overlap.
static int check_overlaps(range *ranges, size_t n, const char *file, garlic_error *err)
{
    qsort(ranges, n, sizeof *ranges, range_cmp);
    for (size_t i = 1; i < n; i++)
        if (ranges[i].begin < ranges[i - 1].end) {
            char a[96];
            snprintf(a, sizeof a, "%s", shown(ranges[i - 1].name));
            return garlic_error_set(err, GARLIC_EFORMAT,
                                    "%s: tensors '%s' and '%s' (at data offsets %llu and %llu) "
                                    "overlap",
                                    file, a, shown(ranges[i].name),
                                    (unsigned long long)ranges[i - 1].begin,
                                    (unsigned long long)ranges[i].begin);
        }
    return GARLIC_OK;
}

// Parses every tensor of the header object root, handing each to fn, then checks overlaps.
static int parse_header(const cJSON *root, const char *file, uint64_t data_size, hf_tensor_fn fn,
                        void *user, garlic_error *err)
{
    int n = cJSON_GetArraySize(root);
    range *ranges = garlic_calloc(n ? (size_t)n : 1, sizeof *ranges);
    if (!ranges)
        return garlic_error_set(err, GARLIC_ENOMEM, "%s: out of memory", file);
    size_t n_ranges = 0;
    int rc = GARLIC_OK;
    const cJSON *t;
    cJSON_ArrayForEach(t, root)
    {
        if (!t->string) {
            rc = garlic_error_set(err, GARLIC_EFORMAT, "%s: header entry without a name", file);
            break;
        }
        if (strcmp(t->string, "__metadata__") == 0) {
            if (!cJSON_IsObject(t)) {
                rc = garlic_error_set(err, GARLIC_EFORMAT, "%s: __metadata__ is not an object",
                                      file);
                break;
            }
            continue;
        }
        hf_tensor tensor;
        if ((rc = parse_tensor(t, file, data_size, &tensor, err)) || (rc = fn(user, &tensor, err)))
            break;
        if (tensor.end > tensor.begin)
            ranges[n_ranges++] = (range){tensor.begin, tensor.end, t->string};
    }
    if (rc == GARLIC_OK)
        rc = check_overlaps(ranges, n_ranges, file, err);
    garlic_free(ranges);
    return rc;
}

// The header length at the start of a safetensors file (little-endian u64).
static uint64_t header_length(const uint8_t *p)
{
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = n << 8 | p[i];
    return n;
}

int hf_safetensors_parse(const void *buf, size_t size, uint64_t file_size, const char *name,
                         hf_tensor_fn fn, void *user, garlic_error *err)
{
    const uint8_t *p = buf;
    if (size < 8 || file_size < 8)
        return garlic_error_set(err, GARLIC_EFORMAT,
                                "%s: %llu bytes: too short for the 8-byte "
                                "header length",
                                name, (unsigned long long)file_size);
    uint64_t n = header_length(p);
    if (n > file_size - 8)
        return garlic_error_set(err, GARLIC_EFORMAT,
                                "%s: header length %llu exceeds the file "
                                "(%llu bytes)",
                                name, (unsigned long long)n, (unsigned long long)file_size);
    if (n > HF_SAFETENSORS_MAX_HEADER)
        return garlic_error_set(err, GARLIC_EFORMAT,
                                "%s: header length %llu exceeds the limit "
                                "of %llu bytes",
                                name, (unsigned long long)n, HF_SAFETENSORS_MAX_HEADER);
    if (n > size - 8)
        return garlic_error_set(err, GARLIC_EFORMAT,
                                "%s: header of %llu bytes is truncated "
                                "(%zu read)",
                                name, (unsigned long long)n, size - 8);
    if (n < 2 || p[8] != '{')
        return garlic_error_set(err, GARLIC_EFORMAT, "%s: header is not a JSON object", name);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts((const char *)p + 8, (size_t)n, &end, false);
    if (!root || !cJSON_IsObject(root)) {
        long at = root ? 0 : (end ? (long)(end - (const char *)p) : 8);
        cJSON_Delete(root);
        return garlic_error_set(err, GARLIC_EFORMAT,
                                "%s: header is not valid JSON (near byte "
                                "%ld)",
                                name, at);
    }
    for (const char *q = end; q && q < (const char *)p + 8 + n; q++)
        if (*q != ' ' && *q != '\n' && *q != '\r' && *q != '\t') {
            cJSON_Delete(root);
            return garlic_error_set(err, GARLIC_EFORMAT,
                                    "%s: bytes after the header's JSON "
                                    "(at byte %ld)",
                                    name, (long)(q - (const char *)p));
        }
    int rc = parse_header(root, name, file_size - 8 - n, fn, user, err);
    cJSON_Delete(root);
    return rc;
}

int hf_safetensors_read(const char *path, hf_tensor_fn fn, void *user, uint64_t *file_size,
                        garlic_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return garlic_error_set(err, GARLIC_EIO, "%s: %s", path, strerror(e));
    }
    *file_size = (uint64_t)sb.st_size;
    uint8_t head[8] = {0};
    ssize_t got = pread(fd, head, 8, 0);
    uint64_t n = header_length(head);
    if (got != 8 || n > *file_size - 8 || n > HF_SAFETENSORS_MAX_HEADER) {
        close(fd);
        // The parser reports which check failed.
        return hf_safetensors_parse(head, got == 8 ? 8 : 0, *file_size, path, fn, user, err);
    }
    uint8_t *buf = garlic_malloc((size_t)n + 8);
    if (!buf) {
        close(fd);
        return garlic_error_set(err, GARLIC_ENOMEM,
                                "%s: out of memory for a header of %llu "
                                "bytes",
                                path, (unsigned long long)n);
    }
    got = pread(fd, buf, (size_t)n + 8, 0);
    close(fd);
    int rc = got == (ssize_t)(n + 8)
        ? hf_safetensors_parse(buf, (size_t)n + 8, *file_size, path, fn, user, err)
        : garlic_error_set(err, GARLIC_EIO, "%s: short read of the header", path);
    garlic_free(buf);
    return rc;
}
