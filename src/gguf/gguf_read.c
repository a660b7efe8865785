// SPDX-License-Identifier: MIT
// GGUF reader: maps the file read-only and validates everything before anything is used.
// Every read goes through a cursor over [pos, end) that checks the length first; counts
// are checked against the bytes left before anything is allocated, so a forged count
// fails fast instead of allocating; arithmetic on sizes uses overflow-checked builtins.
#include "gguf/gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/buffer.h"
#include "tensor/types.h"

// The smallest encodings, used to bound counts by the bytes that remain.
enum {
    MIN_KV_BYTES = 8 + 4 + 1,                  // empty key, type, one-byte value
    MIN_TENSOR_INFO_BYTES = 8 + 4 + 8 + 4 + 8, // empty name, n_dims, one dim, type, offset
    MIN_NESTED_ARRAY_BYTES = 4 + 8,            // element type + count
    MIN_STRING_BYTES = 8,
};

typedef struct cursor {
    const uint8_t *base; // start of the file, for offsets in messages
    const uint8_t *pos;
    const uint8_t *end;
    const char *path;
    garlic_error *err;
} cursor;

static uint64_t cursor_offset(const cursor *c) { return (uint64_t)(c->pos - c->base); }

static uint64_t cursor_left(const cursor *c) { return (uint64_t)(c->end - c->pos); }

static int truncated(cursor *c, const char *what, uint64_t need)
{
    return garlic_error_set(
        c->err, GARLIC_EFORMAT,
        "%s: %s at offset %llu needs %llu bytes, only %llu left (file truncated?)", c->path, what,
        (unsigned long long)cursor_offset(c), (unsigned long long)need,
        (unsigned long long)cursor_left(c));
}

static int read_bytes(cursor *c, void *dst, uint64_t n, const char *what)
{
    if (cursor_left(c) < n)
        return truncated(c, what, n);
    memcpy(dst, c->pos, n);
    c->pos += n;
    return GARLIC_OK;
}

static int read_u32(cursor *c, uint32_t *v, const char *what)
{
    uint8_t b[4] = {0};
    int rc = read_bytes(c, b, 4, what);
    if (rc)
        return rc;
    *v = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    return GARLIC_OK;
}

static int read_u64(cursor *c, uint64_t *v, const char *what)
{
    uint32_t lo, hi;
    int rc = read_u32(c, &lo, what);
    if (rc == GARLIC_OK)
        rc = read_u32(c, &hi, what);
    if (rc == GARLIC_OK)
        *v = (uint64_t)hi << 32 | lo;
    return rc;
}

static int read_string(cursor *c, gguf_string *s, const char *what)
{
    uint64_t at = cursor_offset(c);
    int rc = read_u64(c, &s->len, what);
    if (rc)
        return rc;
    if (s->len > cursor_left(c))
        return garlic_error_set(
            c->err, GARLIC_EFORMAT,
            "%s: %s at offset %llu has length %llu but only %llu bytes are left", c->path, what,
            (unsigned long long)at, (unsigned long long)s->len, (unsigned long long)cursor_left(c));
    s->data = (const char *)c->pos;
    c->pos += s->len;
    return GARLIC_OK;
}

uint32_t gguf_type_size(gguf_type type)
{
    static const uint8_t sizes[GGUF_TYPE_COUNT] = {
        [GGUF_TYPE_UINT8] = 1,   [GGUF_TYPE_INT8] = 1,    [GGUF_TYPE_UINT16] = 2,
        [GGUF_TYPE_INT16] = 2,   [GGUF_TYPE_UINT32] = 4,  [GGUF_TYPE_INT32] = 4,
        [GGUF_TYPE_FLOAT32] = 4, [GGUF_TYPE_BOOL] = 1,    [GGUF_TYPE_UINT64] = 8,
        [GGUF_TYPE_INT64] = 8,   [GGUF_TYPE_FLOAT64] = 8,
    };
    return (unsigned)type < GGUF_TYPE_COUNT ? sizes[type] : 0;
}

const char *gguf_type_name(gguf_type type)
{
    static const char *const names[GGUF_TYPE_COUNT] = {
        [GGUF_TYPE_UINT8] = "u8",    [GGUF_TYPE_INT8] = "i8",    [GGUF_TYPE_UINT16] = "u16",
        [GGUF_TYPE_INT16] = "i16",   [GGUF_TYPE_UINT32] = "u32", [GGUF_TYPE_INT32] = "i32",
        [GGUF_TYPE_FLOAT32] = "f32", [GGUF_TYPE_BOOL] = "bool",  [GGUF_TYPE_STRING] = "str",
        [GGUF_TYPE_ARRAY] = "arr",   [GGUF_TYPE_UINT64] = "u64", [GGUF_TYPE_INT64] = "i64",
        [GGUF_TYPE_FLOAT64] = "f64",
    };
    return (unsigned)type < GGUF_TYPE_COUNT ? names[type] : "unknown";
}

// Decodes a little-endian scalar of a fixed-size type at p into v.
static void decode_scalar(gguf_type type, const uint8_t *p, gguf_value *v)
{
    uint64_t raw = 0;
    uint32_t size = gguf_type_size(type);
    for (uint32_t i = 0; i < size; i++)
        raw |= (uint64_t)p[i] << (8 * i);
    v->type = type;
    switch (type) {
    case GGUF_TYPE_UINT8:
    case GGUF_TYPE_UINT16:
    case GGUF_TYPE_UINT32:
    case GGUF_TYPE_UINT64: v->u64 = raw; break;
    case GGUF_TYPE_INT8: v->i64 = (int8_t)raw; break;
    case GGUF_TYPE_INT16: v->i64 = (int16_t)raw; break;
    case GGUF_TYPE_INT32: v->i64 = (int32_t)raw; break;
    case GGUF_TYPE_INT64: v->i64 = (int64_t)raw; break;
    case GGUF_TYPE_BOOL: v->b = raw != 0; break;
    case GGUF_TYPE_FLOAT32: {
        uint32_t bits = (uint32_t)raw;
        float f;
        memcpy(&f, &bits, 4);
        v->f64 = f;
        break;
    }
    case GGUF_TYPE_FLOAT64: memcpy(&v->f64, &raw, 8); break;
    default: break;
    }
}

static int parse_value(cursor *c, gguf_type type, int depth, gguf_value *v);

// Parses an array body (element type, count, elements) at the cursor into v, checking
// that the elements fit in the bytes left before walking them.
static int parse_array(cursor *c, int depth, gguf_value *v)
{
    uint64_t at = cursor_offset(c);
    uint32_t elem_type;
    uint64_t count;
    int rc = read_u32(c, &elem_type, "array element type");
    if (rc == GARLIC_OK)
        rc = read_u64(c, &count, "array length");
    if (rc)
        return rc;
    if (elem_type >= GGUF_TYPE_COUNT)
        return garlic_error_set(c->err, GARLIC_EFORMAT,
                                "%s: array at offset %llu has unknown element type %u", c->path,
                                (unsigned long long)at, elem_type);
    if (elem_type == GGUF_TYPE_ARRAY && depth + 1 >= GGUF_MAX_ARRAY_DEPTH)
        return garlic_error_set(c->err, GARLIC_EFORMAT,
                                "%s: array at offset %llu nests deeper than %d levels", c->path,
                                (unsigned long long)at, GGUF_MAX_ARRAY_DEPTH);
    uint64_t min_elem = gguf_type_size(elem_type);
    if (elem_type == GGUF_TYPE_STRING)
        min_elem = MIN_STRING_BYTES;
    else if (elem_type == GGUF_TYPE_ARRAY)
        min_elem = MIN_NESTED_ARRAY_BYTES;
    uint64_t min_bytes;
    if (__builtin_mul_overflow(count, min_elem, &min_bytes) || min_bytes > cursor_left(c))
        return garlic_error_set(
            c->err, GARLIC_EFORMAT,
            "%s: array at offset %llu claims %llu elements of type %s, more than "
            "the %llu bytes left can hold",
            c->path, (unsigned long long)at, (unsigned long long)count, gguf_type_name(elem_type),
            (unsigned long long)cursor_left(c));
    v->type = GGUF_TYPE_ARRAY;
    v->arr.type = elem_type;
    v->arr.count = count;
    v->arr.data = c->pos;
    if (gguf_type_size(elem_type)) {
        c->pos += min_bytes;
    } else {
        gguf_value elem;
        for (uint64_t i = 0; i < count; i++) {
            rc = parse_value(c, elem_type, depth + 1, &elem);
            if (rc)
                return rc;
        }
    }
    v->arr.size = (uint64_t)(c->pos - v->arr.data);
    return GARLIC_OK;
}

// Parses one value of the given type at the cursor.
static int parse_value(cursor *c, gguf_type type, int depth, gguf_value *v)
{
    if (type == GGUF_TYPE_STRING) {
        v->type = GGUF_TYPE_STRING;
        return read_string(c, &v->str, "string value");
    }
    if (type == GGUF_TYPE_ARRAY)
        return parse_array(c, depth, v);
    uint32_t size = gguf_type_size(type);
    if (cursor_left(c) < size)
        return truncated(c, "value", size);
    decode_scalar(type, c->pos, v);
    c->pos += size;
    return GARLIC_OK;
}

static int gguf_string_cmp(gguf_string a, gguf_string b)
{
    uint64_t n = a.len < b.len ? a.len : b.len;
    int r = n ? memcmp(a.data, b.data, n) : 0;
    if (r)
        return r;
    return a.len < b.len ? -1 : a.len > b.len;
}

static int kv_cmp(const void *a, const void *b)
{
    return gguf_string_cmp((*(const gguf_kv *const *)a)->key, (*(const gguf_kv *const *)b)->key);
}

static int tensor_name_cmp(const void *a, const void *b)
{
    return gguf_string_cmp((*(const gguf_tensor *const *)a)->name,
                           (*(const gguf_tensor *const *)b)->name);
}

static int tensor_offset_cmp(const void *a, const void *b)
{
    uint64_t x = (*(const gguf_tensor *const *)a)->offset;
    uint64_t y = (*(const gguf_tensor *const *)b)->offset;
    return x < y ? -1 : x > y;
}

// Fails if two entries of items (sorted by cmp through an index) compare equal: duplicate
// keys or tensor names make lookups ambiguous. O(n log n), so a forged count cannot hang.
static int check_unique(gguf_file *f, void *items, uint64_t n, size_t item_size,
                        int (*cmp)(const void *, const void *), const char *what, garlic_error *err)
{
    if (n < 2)
        return GARLIC_OK;
    const void **index = garlic_calloc(n, sizeof *index);
    if (!index)
        return garlic_error_set(err, GARLIC_ENOMEM, "%s: out of memory", f->path);
    for (uint64_t i = 0; i < n; i++)
        index[i] = (const char *)items + i * item_size;
    qsort(index, n, sizeof *index, cmp);
    int rc = GARLIC_OK;
    for (uint64_t i = 1; i < n && rc == GARLIC_OK; i++) {
        if (cmp(&index[i - 1], &index[i]) != 0)
            continue;
        gguf_string name = cmp == kv_cmp ? ((const gguf_kv *)index[i])->key
                                         : ((const gguf_tensor *)index[i])->name;
        rc = garlic_error_set(err, GARLIC_EFORMAT, "%s: duplicate %s '%.*s'", f->path, what,
                              (int)(name.len > 200 ? 200 : name.len), name.data);
    }
    garlic_free(index);
    return rc;
}

static int parse_header(gguf_file *f, cursor *c, uint64_t *n_tensors, uint64_t *n_kv)
{
    if (f->size < 4 || memcmp(f->base, "GGUF", 4) != 0)
        return garlic_error_set(c->err, GARLIC_EFORMAT,
                                "%s: not a GGUF file (no 'GGUF' magic at offset 0)", f->path);
    c->pos += 4;
    int rc = read_u32(c, &f->version, "header version");
    if (rc)
        return rc;
    if (f->version == 1)
        return garlic_error_set(c->err, GARLIC_EUNSUPPORTED,
                                "%s: GGUF version 1 is not supported (convert it to v3)", f->path);
    if ((f->version & 0xffff) == 0 && f->version != 0)
        return garlic_error_set(c->err, GARLIC_EUNSUPPORTED,
                                "%s: big-endian GGUF files are not supported", f->path);
    if (f->version != 2 && f->version != 3)
        return garlic_error_set(c->err, GARLIC_EUNSUPPORTED,
                                "%s: GGUF version %u at offset 4 is not supported (2 and 3 are)",
                                f->path, f->version);
    rc = read_u64(c, n_tensors, "tensor count");
    if (rc == GARLIC_OK)
        rc = read_u64(c, n_kv, "metadata count");
    if (rc)
        return rc;
    uint64_t need_kv, need_tensors, need;
    if (__builtin_mul_overflow(*n_kv, (uint64_t)MIN_KV_BYTES, &need_kv) ||
        __builtin_mul_overflow(*n_tensors, (uint64_t)MIN_TENSOR_INFO_BYTES, &need_tensors) ||
        __builtin_add_overflow(need_kv, need_tensors, &need) || need > cursor_left(c))
        return garlic_error_set(c->err, GARLIC_EFORMAT,
                                "%s: header claims %llu metadata pairs and %llu tensors, more than "
                                "the file's %llu bytes can hold",
                                f->path, (unsigned long long)*n_kv, (unsigned long long)*n_tensors,
                                (unsigned long long)f->size);
    return GARLIC_OK;
}

// Rewrites "path: message" in err as "path: metadata key 'key': message".
static void name_key(garlic_error *err, const char *path, gguf_string key)
{
    if (!err)
        return;
    size_t n = strlen(path);
    if (strncmp(err->message, path, n) != 0 || strncmp(err->message + n, ": ", 2) != 0)
        return;
    char rest[sizeof err->message];
    snprintf(rest, sizeof rest, "%s", err->message + n + 2);
    garlic_error_set(err, err->code, "%s: metadata key '%.*s': %s", path,
                     (int)(key.len > 200 ? 200 : key.len), key.data, rest);
}

static int parse_kvs(gguf_file *f, cursor *c, uint64_t n_kv)
{
    size_t cap = 0; // the array grows as entries parse: memory follows the bytes present
    for (uint64_t i = 0; i < n_kv; i++) {
        if (garlic_grow(&f->kv, &cap, (size_t)i + 1, sizeof *f->kv))
            return garlic_error_set(c->err, GARLIC_ENOMEM, "%s: out of memory", f->path);
        gguf_kv *kv = &f->kv[i];
        memset(kv, 0, sizeof *kv);
        kv->offset = cursor_offset(c);
        uint32_t type;
        int rc = read_string(c, &kv->key, "metadata key");
        if (rc == GARLIC_OK)
            rc = read_u32(c, &type, "metadata value type");
        if (rc == GARLIC_OK && type >= GGUF_TYPE_COUNT)
            rc = garlic_error_set(
                c->err, GARLIC_EFORMAT,
                "%s: metadata key '%.*s' at offset %llu has unknown value type %u", f->path,
                (int)(kv->key.len > 200 ? 200 : kv->key.len), kv->key.data,
                (unsigned long long)kv->offset, type);
        if (rc == GARLIC_OK)
            rc = parse_value(c, (gguf_type)type, 0, &kv->value);
        if (rc) {
            if (kv->key.data)
                name_key(c->err, f->path, kv->key);
            return rc;
        }
        f->n_kv = i + 1;
    }
    return check_unique(f, f->kv, f->n_kv, sizeof *f->kv, kv_cmp, "metadata key", c->err);
}

static int read_alignment(gguf_file *f, garlic_error *err)
{
    f->alignment = GGUF_DEFAULT_ALIGNMENT;
    const gguf_kv *kv = gguf_find_kv(f, "general.alignment");
    if (!kv)
        return GARLIC_OK;
    if (kv->value.type != GGUF_TYPE_UINT32)
        return garlic_error_set(err, GARLIC_EFORMAT,
                                "%s: general.alignment at offset %llu must be u32, is %s", f->path,
                                (unsigned long long)kv->offset, gguf_type_name(kv->value.type));
    uint64_t a = kv->value.u64;
    if (a == 0 || (a & (a - 1)) != 0 || a > (1u << 30))
        return garlic_error_set(err, GARLIC_EFORMAT,
                                "%s: general.alignment %llu at offset %llu is not a power of two",
                                f->path, (unsigned long long)a, (unsigned long long)kv->offset);
    f->alignment = (uint32_t)a;
    return GARLIC_OK;
}

// Reads one tensor info record and computes its element count and byte size.
static int parse_tensor_info(gguf_file *f, cursor *c, gguf_tensor *t)
{
    memset(t, 0, sizeof *t);
    t->info_offset = cursor_offset(c);
    int rc = read_string(c, &t->name, "tensor name");
    if (rc == GARLIC_OK)
        rc = read_u32(c, &t->n_dims, "tensor dimension count");
    if (rc)
        return rc;
    int name_len = (int)(t->name.len > 200 ? 200 : t->name.len);
    if (t->n_dims == 0 || t->n_dims > GGUF_MAX_DIMS)
        return garlic_error_set(
            c->err, GARLIC_EFORMAT,
            "%s: tensor '%.*s' at offset %llu has %u dimensions (1 to %d allowed)", f->path,
            name_len, t->name.data, (unsigned long long)t->info_offset, t->n_dims, GGUF_MAX_DIMS);
    for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++)
        t->ne[d] = 1;
    for (uint32_t d = 0; d < t->n_dims && rc == GARLIC_OK; d++)
        rc = read_u64(c, &t->ne[d], "tensor dimension");
    if (rc == GARLIC_OK)
        rc = read_u32(c, &t->type, "tensor type");
    if (rc == GARLIC_OK)
        rc = read_u64(c, &t->offset, "tensor data offset");
    if (rc)
        return rc;
    const tensor_type_traits *traits = tensor_type_get(t->type);
    if (!traits)
        return garlic_error_set(
            c->err, GARLIC_EUNSUPPORTED, "%s: tensor '%.*s' at offset %llu has unknown type %u",
            f->path, name_len, t->name.data, (unsigned long long)t->info_offset, t->type);
    if (traits->internal && !f->detached) // a folder's made tensors may have them
        return garlic_error_set(c->err, GARLIC_EUNSUPPORTED,
                                "%s: tensor '%.*s' at offset %llu: type %u is not a GGUF type "
                                "(garlic uses the id for its own in-memory %s layout)",
                                f->path, name_len, t->name.data, (unsigned long long)t->info_offset,
                                t->type, traits->name);
    uint64_t n = 1, rows = 1, row_bytes;
    bool overflow = false;
    for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++) {
        overflow |= t->ne[d] > (uint64_t)INT64_MAX;
        overflow |= __builtin_mul_overflow(n, t->ne[d], &n);
        if (d > 0)
            overflow |= __builtin_mul_overflow(rows, t->ne[d], &rows);
    }
    if (overflow || n > (uint64_t)INT64_MAX)
        return garlic_error_set(c->err, GARLIC_EFORMAT,
                                "%s: tensor '%.*s' at offset %llu: shape overflows", f->path,
                                name_len, t->name.data, (unsigned long long)t->info_offset);
    if (!tensor_row_size(t->type, t->ne[0], &row_bytes))
        return garlic_error_set(c->err, GARLIC_EFORMAT,
                                "%s: tensor '%.*s' at offset %llu: row length %llu is not a "
                                "multiple of %s's block size %u",
                                f->path, name_len, t->name.data, (unsigned long long)t->info_offset,
                                (unsigned long long)t->ne[0], traits->name, traits->block_size);
    if (__builtin_mul_overflow(row_bytes, rows, &t->nbytes))
        return garlic_error_set(c->err, GARLIC_EFORMAT,
                                "%s: tensor '%.*s' at offset %llu: size overflows", f->path,
                                name_len, t->name.data, (unsigned long long)t->info_offset);
    t->n_elements = n;
    return GARLIC_OK;
}

// Checks that each tensor's data is aligned, inside the file and not overlapping another.
static int check_tensor_data(gguf_file *f, garlic_error *err)
{
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        gguf_tensor *t = &f->tensors[i];
        int name_len = (int)(t->name.len > 200 ? 200 : t->name.len);
        uint64_t start, end;
        if (t->offset % f->alignment != 0)
            return garlic_error_set(err, GARLIC_EFORMAT,
                                    "%s: tensor '%.*s' (info at offset %llu): data offset %llu is "
                                    "not a multiple of the alignment %u",
                                    f->path, name_len, t->name.data,
                                    (unsigned long long)t->info_offset,
                                    (unsigned long long)t->offset, f->alignment);
        if (__builtin_add_overflow(f->data_offset, t->offset, &start) ||
            __builtin_add_overflow(start, t->nbytes, &end) || end > f->size)
            return garlic_error_set(err, GARLIC_EFORMAT,
                                    "%s: tensor '%.*s' (info at offset %llu): data at offset %llu "
                                    "of %llu bytes ends past the end of the file (%llu bytes)",
                                    f->path, name_len, t->name.data,
                                    (unsigned long long)t->info_offset,
                                    (unsigned long long)f->data_offset + t->offset,
                                    (unsigned long long)t->nbytes, (unsigned long long)f->size);
        t->data = f->base + start;
    }
    if (f->n_tensors < 2)
        return GARLIC_OK;
    const gguf_tensor **order = garlic_calloc(f->n_tensors, sizeof *order);
    if (!order)
        return garlic_error_set(err, GARLIC_ENOMEM, "%s: out of memory", f->path);
    for (uint64_t i = 0; i < f->n_tensors; i++)
        order[i] = &f->tensors[i];
    qsort(order, f->n_tensors, sizeof *order, tensor_offset_cmp);
    int rc = GARLIC_OK;
    for (uint64_t i = 1; i < f->n_tensors && rc == GARLIC_OK; i++) {
        const gguf_tensor *a = order[i - 1], *b = order[i];
        if (a->offset + a->nbytes > b->offset)
            rc = garlic_error_set(err, GARLIC_EFORMAT,
                                  "%s: tensor '%.*s' (info at offset %llu) overlaps the data of "
                                  "tensor '%.*s'",
                                  f->path, (int)(b->name.len > 200 ? 200 : b->name.len),
                                  b->name.data, (unsigned long long)b->info_offset,
                                  (int)(a->name.len > 200 ? 200 : a->name.len), a->name.data);
    }
    garlic_free(order);
    return rc;
}

static int parse_tensors(gguf_file *f, cursor *c, uint64_t n_tensors)
{
    size_t cap = 0;
    for (uint64_t i = 0; i < n_tensors; i++) {
        if (garlic_grow(&f->tensors, &cap, (size_t)i + 1, sizeof *f->tensors))
            return garlic_error_set(c->err, GARLIC_ENOMEM, "%s: out of memory", f->path);
        int rc = parse_tensor_info(f, c, &f->tensors[i]);
        if (rc)
            return rc;
        f->n_tensors = i + 1;
    }
    int rc = check_unique(f, f->tensors, f->n_tensors, sizeof *f->tensors, tensor_name_cmp,
                          "tensor name", c->err);
    if (rc)
        return rc;
    uint64_t end = cursor_offset(c);
    uint64_t pad = (f->alignment - end % f->alignment) % f->alignment;
    f->data_offset = end + pad;
    return f->detached ? GARLIC_OK : check_tensor_data(f, c->err);
}

static int parse_all(gguf_file *f, garlic_error *err)
{
    cursor c = {
        .base = f->base, .pos = f->base, .end = f->base + f->size, .path = f->path, .err = err};
    uint64_t n_tensors = 0, n_kv = 0;
    int rc = parse_header(f, &c, &n_tensors, &n_kv);
    if (rc == GARLIC_OK)
        rc = parse_kvs(f, &c, n_kv);
    if (rc == GARLIC_OK)
        rc = read_alignment(f, err);
    if (rc == GARLIC_OK)
        rc = parse_tensors(f, &c, n_tensors);
    return rc;
}

static gguf_file *file_new(const char *name, garlic_error *err)
{
    gguf_file *f = garlic_calloc(1, sizeof *f);
    if (f)
        f->path = garlic_strndup(name, 4096);
    if (!f || !f->path) {
        garlic_free(f);
        garlic_error_set(err, GARLIC_ENOMEM, "%s: out of memory", name);
        return NULL;
    }
    return f;
}

gguf_file *gguf_parse_detached(const void *head, size_t size, const char *name, garlic_error *err)
{
    gguf_file *f = file_new(name, err);
    if (!f)
        return NULL;
    f->base = head;
    f->size = size;
    f->detached = true;
    if (parse_all(f, err) != GARLIC_OK) {
        f->base = NULL; // the caller's still
        gguf_close(f);
        return NULL;
    }
    return f;
}

gguf_file *gguf_parse(const void *buf, size_t size, const char *name, garlic_error *err)
{
    gguf_file *f = file_new(name, err);
    if (!f)
        return NULL;
    f->base = buf;
    f->size = size;
    if (parse_all(f, err) != GARLIC_OK) {
        gguf_close(f);
        return NULL;
    }
    return f;
}

gguf_file *gguf_open(const char *path, garlic_error *err)
{
    garlic_mapping map;
    if (garlic_mapping_open(&map, path, err) != GARLIC_OK)
        return NULL;
    if (map.size < 24) {
        garlic_error_set(err, GARLIC_EFORMAT, "%s: file is %zu bytes, too small for a GGUF header",
                         path, map.size);
        garlic_mapping_close(&map);
        return NULL;
    }
    gguf_file *f = file_new(path, err);
    if (!f) {
        garlic_mapping_close(&map);
        return NULL;
    }
    f->map = map;
    f->base = map.data;
    f->size = (uint64_t)map.size;
    if (parse_all(f, err) != GARLIC_OK) {
        gguf_close(f);
        return NULL;
    }
    return f;
}

void gguf_close(gguf_file *f)
{
    if (!f)
        return;
    garlic_mapping_close(&f->map);
    if (f->detached)
        garlic_free((void *)f->base);
    if (f->release)
        f->release(f->release_ctx);
    garlic_free(f->kv);
    garlic_free(f->tensors);
    garlic_free(f->path);
    garlic_free(f);
}

int gguf_check_files(const gguf_file *f, garlic_error *err)
{
    if (f->check)
        return f->check(f->release_ctx, err);
    const char *name = strrchr(f->path, '/');
    return garlic_mapping_check(&f->map, name ? name + 1 : f->path, err);
}

bool gguf_string_eq(gguf_string s, const char *text)
{
    size_t n = strlen(text);
    return s.len == n && memcmp(s.data, text, n) == 0;
}

const gguf_kv *gguf_find_kv(const gguf_file *f, const char *key)
{
    for (uint64_t i = 0; i < f->n_kv; i++)
        if (gguf_string_eq(f->kv[i].key, key))
            return &f->kv[i];
    return NULL;
}

const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name)
{
    for (uint64_t i = 0; i < f->n_tensors; i++)
        if (gguf_string_eq(f->tensors[i].name, name))
            return &f->tensors[i];
    return NULL;
}

// Converts an integer or bool value to int64 if it fits; false otherwise.
static bool value_to_i64(const gguf_value *v, int64_t *out)
{
    switch (v->type) {
    case GGUF_TYPE_UINT8:
    case GGUF_TYPE_UINT16:
    case GGUF_TYPE_UINT32:
    case GGUF_TYPE_UINT64:
        if (v->u64 > (uint64_t)INT64_MAX)
            return false;
        *out = (int64_t)v->u64;
        return true;
    case GGUF_TYPE_INT8:
    case GGUF_TYPE_INT16:
    case GGUF_TYPE_INT32:
    case GGUF_TYPE_INT64: *out = v->i64; return true;
    case GGUF_TYPE_BOOL: *out = v->b; return true;
    default: return false;
    }
}

static int find_value(const gguf_file *f, const char *key, const gguf_value **v)
{
    const gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv)
        return GARLIC_ENOTFOUND;
    *v = &kv->value;
    return GARLIC_OK;
}

int gguf_get_i64(const gguf_file *f, const char *key, int64_t *out)
{
    const gguf_value *v;
    int rc = find_value(f, key, &v);
    if (rc)
        return rc;
    if (v->type == GGUF_TYPE_BOOL || !value_to_i64(v, out))
        return GARLIC_ETYPE;
    return GARLIC_OK;
}

int gguf_get_u64(const gguf_file *f, const char *key, uint64_t *out)
{
    const gguf_value *v;
    int rc = find_value(f, key, &v);
    if (rc)
        return rc;
    if (v->type == GGUF_TYPE_UINT64 || v->type == GGUF_TYPE_UINT32 || v->type == GGUF_TYPE_UINT16 ||
        v->type == GGUF_TYPE_UINT8) {
        *out = v->u64;
        return GARLIC_OK;
    }
    int64_t i;
    if (v->type == GGUF_TYPE_BOOL || !value_to_i64(v, &i) || i < 0)
        return GARLIC_ETYPE;
    *out = (uint64_t)i;
    return GARLIC_OK;
}

int gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out)
{
    uint64_t v;
    int rc = gguf_get_u64(f, key, &v);
    if (rc)
        return rc;
    if (v > UINT32_MAX)
        return GARLIC_ETYPE;
    *out = (uint32_t)v;
    return GARLIC_OK;
}

int gguf_get_f32(const gguf_file *f, const char *key, float *out)
{
    const gguf_value *v;
    int rc = find_value(f, key, &v);
    if (rc)
        return rc;
    int64_t i;
    if (v->type == GGUF_TYPE_FLOAT32 || v->type == GGUF_TYPE_FLOAT64)
        *out = (float)v->f64;
    else if (v->type != GGUF_TYPE_BOOL && value_to_i64(v, &i))
        *out = (float)i;
    else
        return GARLIC_ETYPE;
    return GARLIC_OK;
}

// The value of key when it has exactly type: GARLIC_ENOTFOUND or GARLIC_ETYPE otherwise.
static int find_typed(const gguf_file *f, const char *key, gguf_type type, const gguf_value **v)
{
    int rc = find_value(f, key, v);
    return rc ? rc : (*v)->type == type ? GARLIC_OK : GARLIC_ETYPE;
}

int gguf_get_bool(const gguf_file *f, const char *key, bool *out)
{
    const gguf_value *v;
    int rc = find_typed(f, key, GGUF_TYPE_BOOL, &v);
    if (rc == GARLIC_OK)
        *out = v->b;
    return rc;
}

int gguf_get_str(const gguf_file *f, const char *key, gguf_string *out)
{
    const gguf_value *v;
    int rc = find_typed(f, key, GGUF_TYPE_STRING, &v);
    if (rc == GARLIC_OK)
        *out = v->str;
    return rc;
}

int gguf_get_arr(const gguf_file *f, const char *key, gguf_value *out)
{
    const gguf_value *v;
    int rc = find_typed(f, key, GGUF_TYPE_ARRAY, &v);
    if (rc == GARLIC_OK)
        *out = *v;
    return rc;
}

static bool array_scalar(const gguf_value *arr, uint64_t i, gguf_value *out)
{
    uint32_t size = gguf_type_size(arr->arr.type);
    if (arr->type != GGUF_TYPE_ARRAY || size == 0 || i >= arr->arr.count)
        return false;
    decode_scalar(arr->arr.type, arr->arr.data + i * size, out);
    return true;
}

bool gguf_array_get_i64(const gguf_value *arr, uint64_t i, int64_t *out)
{
    gguf_value v;
    return array_scalar(arr, i, &v) && value_to_i64(&v, out);
}

bool gguf_array_get_f64(const gguf_value *arr, uint64_t i, double *out)
{
    gguf_value v;
    if (!array_scalar(arr, i, &v))
        return false;
    if (v.type == GGUF_TYPE_FLOAT32 || v.type == GGUF_TYPE_FLOAT64) {
        *out = v.f64;
        return true;
    }
    int64_t n;
    if (!value_to_i64(&v, &n))
        return false;
    *out = (double)n;
    return true;
}

void gguf_array_iter_init(gguf_array_iter *it, const gguf_value *arr)
{
    it->arr = arr;
    it->index = 0;
    it->pos = arr->type == GGUF_TYPE_ARRAY ? arr->arr.data : NULL;
}

bool gguf_array_next(gguf_array_iter *it, gguf_value *out)
{
    const gguf_value *arr = it->arr;
    if (arr->type != GGUF_TYPE_ARRAY || it->index >= arr->arr.count)
        return false;
    cursor c = {.base = arr->arr.data,
                .pos = it->pos,
                .end = arr->arr.data + arr->arr.size,
                .path = "array",
                .err = NULL};
    // Depth 1: the array was validated with its nesting limit when the file was parsed.
    if (parse_value(&c, arr->arr.type, 1, out) != GARLIC_OK)
        return false;
    it->pos = c.pos;
    it->index++;
    return true;
}
