// SPDX-License-Identifier: MIT
// GGUF v3 writer. Metadata values are kept as their encoded bytes, so writing is one pass:
// header, the key/value pairs, the tensor infos, padding, then each tensor's data (from a
// borrowed pointer or a fill callback) padded to the alignment.
#include "gguf/gguf.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/buffer.h"
#include "tensor/types.h"

typedef struct writer_kv {
    char *key;
    uint8_t *bytes; // type (u32) + encoded value
    size_t size;
} writer_kv;

typedef struct writer_tensor {
    char *name;
    uint32_t type;
    uint32_t n_dims;
    uint64_t ne[GGUF_MAX_DIMS];
    uint64_t nbytes;
    uint64_t offset;  // within the data section, assigned at write time
    const void *data; // borrowed, or NULL for the fill callback
} writer_tensor;

struct gguf_writer {
    writer_kv *kv;
    size_t n_kv, cap_kv;
    writer_tensor *tensors;
    size_t n_tensors, cap_tensors;
};

// The encoding of one value (or of the head): a buffer that remembers a failed append, so
// that a run of puts is checked once at the end.
typedef struct bytes {
    garlic_buf buf;
    bool failed;
} bytes;

static void put(bytes *b, const void *src, size_t n)
{
    if (!b->failed && garlic_buf_append(&b->buf, src, n) != GARLIC_OK)
        b->failed = true;
}

static void put_u32(bytes *b, uint32_t v)
{
    uint8_t le[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    put(b, le, 4);
}

static void put_u64(bytes *b, uint64_t v)
{
    put_u32(b, (uint32_t)v);
    put_u32(b, (uint32_t)(v >> 32));
}

static void put_str(bytes *b, const char *s, size_t n)
{
    put_u64(b, n);
    put(b, s, n);
}

gguf_writer *gguf_writer_new(void) { return garlic_calloc(1, sizeof(gguf_writer)); }

void gguf_writer_free(gguf_writer *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->n_kv; i++) {
        garlic_free(w->kv[i].key);
        garlic_free(w->kv[i].bytes);
    }
    for (size_t i = 0; i < w->n_tensors; i++)
        garlic_free(w->tensors[i].name);
    garlic_free(w->kv);
    garlic_free(w->tensors);
    garlic_free(w);
}

// Stores an encoded value under key, replacing an existing one; takes ownership of b.
static int set_encoded(gguf_writer *w, const char *key, bytes *b)
{
    uint8_t *data = (uint8_t *)b->buf.data;
    size_t size = b->buf.len;
    if (b->failed) {
        garlic_buf_deinit(&b->buf);
        return GARLIC_ENOMEM;
    }
    for (size_t i = 0; i < w->n_kv; i++) {
        if (strcmp(w->kv[i].key, key) == 0) {
            garlic_free(w->kv[i].bytes);
            w->kv[i].bytes = data;
            w->kv[i].size = size;
            return GARLIC_OK;
        }
    }
    char *copy = NULL;
    if (garlic_grow(&w->kv, &w->cap_kv, w->n_kv + 1, sizeof *w->kv) ||
        !(copy = garlic_strndup(key, strlen(key)))) {
        garlic_buf_deinit(&b->buf);
        return GARLIC_ENOMEM;
    }
    w->kv[w->n_kv++] = (writer_kv){.key = copy, .bytes = data, .size = size};
    return GARLIC_OK;
}

static int set_scalar(gguf_writer *w, const char *key, gguf_type type, uint64_t raw)
{
    bytes b = {0};
    put_u32(&b, type);
    uint8_t le[8];
    for (int i = 0; i < 8; i++)
        le[i] = (uint8_t)(raw >> (8 * i));
    put(&b, le, gguf_type_size(type));
    return set_encoded(w, key, &b);
}

int gguf_writer_set_u32(gguf_writer *w, const char *key, uint32_t v)
{
    return set_scalar(w, key, GGUF_TYPE_UINT32, v);
}

int gguf_writer_set_i32(gguf_writer *w, const char *key, int32_t v)
{
    return set_scalar(w, key, GGUF_TYPE_INT32, (uint32_t)v);
}

int gguf_writer_set_u64(gguf_writer *w, const char *key, uint64_t v)
{
    return set_scalar(w, key, GGUF_TYPE_UINT64, v);
}

int gguf_writer_set_f32(gguf_writer *w, const char *key, float v)
{
    uint32_t bits;
    memcpy(&bits, &v, 4);
    return set_scalar(w, key, GGUF_TYPE_FLOAT32, bits);
}

int gguf_writer_set_bool(gguf_writer *w, const char *key, bool v)
{
    return set_scalar(w, key, GGUF_TYPE_BOOL, v ? 1 : 0);
}

int gguf_writer_set_str(gguf_writer *w, const char *key, const char *v)
{
    bytes b = {0};
    put_u32(&b, GGUF_TYPE_STRING);
    put_str(&b, v, strlen(v));
    return set_encoded(w, key, &b);
}

int gguf_writer_set_arr(gguf_writer *w, const char *key, gguf_type elem_type, const void *data,
                        uint64_t count)
{
    uint32_t size = gguf_type_size(elem_type);
    uint64_t total;
    if (size == 0 || __builtin_mul_overflow(count, (uint64_t)size, &total) || total > SIZE_MAX)
        return GARLIC_EINVAL;
    bytes b = {0};
    put_u32(&b, GGUF_TYPE_ARRAY);
    put_u32(&b, elem_type);
    put_u64(&b, count);
    // The host is little-endian (x86-64, aarch64), so the elements are already encoded.
    put(&b, data, (size_t)total);
    return set_encoded(w, key, &b);
}

int gguf_writer_set_arr_str(gguf_writer *w, const char *key, const char *const *strings,
                            uint64_t count)
{
    bytes b = {0};
    put_u32(&b, GGUF_TYPE_ARRAY);
    put_u32(&b, GGUF_TYPE_STRING);
    put_u64(&b, count);
    for (uint64_t i = 0; i < count; i++)
        put_str(&b, strings[i], strlen(strings[i]));
    return set_encoded(w, key, &b);
}

// Appends the encoding of v (without its type tag) to b.
static void put_value(bytes *b, const gguf_value *v)
{
    if (v->type == GGUF_TYPE_STRING) {
        put_str(b, v->str.data, v->str.len);
    } else if (v->type == GGUF_TYPE_ARRAY) {
        put_u32(b, v->arr.type);
        put_u64(b, v->arr.count);
        put(b, v->arr.data, v->arr.size);
    } else {
        uint64_t raw = 0;
        if (v->type == GGUF_TYPE_FLOAT32) {
            float f = (float)v->f64;
            uint32_t bits;
            memcpy(&bits, &f, 4);
            raw = bits;
        } else if (v->type == GGUF_TYPE_FLOAT64) {
            memcpy(&raw, &v->f64, 8);
        } else if (v->type == GGUF_TYPE_BOOL) {
            raw = v->b;
        } else {
            raw = v->u64; // the union holds the same bits for signed values
        }
        uint8_t le[8];
        for (int i = 0; i < 8; i++)
            le[i] = (uint8_t)(raw >> (8 * i));
        put(b, le, gguf_type_size(v->type));
    }
}

int gguf_writer_set_value(gguf_writer *w, const char *key, const gguf_value *v)
{
    if ((unsigned)v->type >= GGUF_TYPE_COUNT)
        return GARLIC_EINVAL;
    bytes b = {0};
    put_u32(&b, v->type);
    put_value(&b, v);
    return set_encoded(w, key, &b);
}

int gguf_writer_add_tensor(gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                           const uint64_t *ne, const void *data, garlic_error *err)
{
    const tensor_type_traits *traits = tensor_type_get(type);
    if (!traits)
        return garlic_error_set(err, GARLIC_EINVAL, "tensor '%s': unknown type %u", name, type);
    if (n_dims == 0 || n_dims > GGUF_MAX_DIMS)
        return garlic_error_set(err, GARLIC_EINVAL, "tensor '%s': %u dimensions", name, n_dims);
    writer_tensor t = {.type = type, .n_dims = n_dims, .data = data};
    uint64_t rows = 1;
    for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++) {
        t.ne[d] = d < n_dims ? ne[d] : 1;
        if (d > 0 && __builtin_mul_overflow(rows, t.ne[d], &rows))
            return garlic_error_set(err, GARLIC_EINVAL, "tensor '%s': shape overflows", name);
    }
    uint64_t row_bytes;
    if (!tensor_row_size(type, t.ne[0], &row_bytes) ||
        __builtin_mul_overflow(row_bytes, rows, &t.nbytes))
        return garlic_error_set(
            err, GARLIC_EINVAL, "tensor '%s': row of %llu is not a multiple of %s's block of %u",
            name, (unsigned long long)t.ne[0], traits->name, traits->block_size);
    for (size_t i = 0; i < w->n_tensors; i++)
        if (strcmp(w->tensors[i].name, name) == 0)
            return garlic_error_set(err, GARLIC_EINVAL, "duplicate tensor '%s'", name);
    if (garlic_grow(&w->tensors, &w->cap_tensors, w->n_tensors + 1, sizeof *w->tensors))
        return garlic_error_set(err, GARLIC_ENOMEM, "out of memory");
    t.name = garlic_strndup(name, strlen(name));
    if (!t.name)
        return garlic_error_set(err, GARLIC_ENOMEM, "out of memory");
    w->tensors[w->n_tensors++] = t;
    return GARLIC_OK;
}

size_t gguf_writer_n_tensors(const gguf_writer *w) { return w->n_tensors; }

void gguf_writer_set_data(gguf_writer *w, size_t index, const void *data)
{
    if (index < w->n_tensors)
        w->tensors[index].data = data;
}

static uint32_t writer_alignment(const gguf_writer *w)
{
    for (size_t i = 0; i < w->n_kv; i++) {
        const writer_kv *kv = &w->kv[i];
        uint32_t type, value;
        if (strcmp(kv->key, "general.alignment") != 0 || kv->size != 8)
            continue;
        memcpy(&type, kv->bytes, 4);
        memcpy(&value, kv->bytes + 4, 4);
        if (type == GGUF_TYPE_UINT32 && value && (value & (value - 1)) == 0)
            return value;
    }
    return GGUF_DEFAULT_ALIGNMENT;
}

// Encodes the header, metadata and tensor infos (padded to the alignment) into b and
// assigns each tensor's offset in the data section.
static void encode_head(gguf_writer *w, bytes *b, uint32_t alignment)
{
    put(b, "GGUF", 4);
    put_u32(b, 3);
    put_u64(b, w->n_tensors);
    put_u64(b, w->n_kv);
    for (size_t i = 0; i < w->n_kv; i++) {
        put_str(b, w->kv[i].key, strlen(w->kv[i].key));
        put(b, w->kv[i].bytes, w->kv[i].size);
    }
    uint64_t offset = 0;
    for (size_t i = 0; i < w->n_tensors; i++) {
        writer_tensor *t = &w->tensors[i];
        put_str(b, t->name, strlen(t->name));
        put_u32(b, t->n_dims);
        for (uint32_t d = 0; d < t->n_dims; d++)
            put_u64(b, t->ne[d]);
        put_u32(b, t->type);
        t->offset = offset;
        put_u64(b, offset);
        offset += (t->nbytes + alignment - 1) / alignment * alignment;
    }
    static const uint8_t zeros[64];
    while (!b->failed && b->buf.len % alignment) {
        size_t pad = alignment - b->buf.len % alignment;
        put(b, zeros, pad < sizeof zeros ? pad : sizeof zeros);
    }
}

static int write_tensor_data(gguf_writer *w, FILE *out, uint32_t alignment, gguf_tensor_fill fill,
                             void *user, const char *path, garlic_error *err)
{
    static const uint8_t zeros[64];
    for (size_t i = 0; i < w->n_tensors; i++) {
        writer_tensor *t = &w->tensors[i];
        if (t->nbytes > SIZE_MAX)
            return garlic_error_set(err, GARLIC_EINVAL, "tensor '%s' is too large", t->name);
        const void *src = t->data;
        void *buf = NULL;
        if (!src) {
            if (!fill)
                return garlic_error_set(err, GARLIC_EINVAL, "tensor '%s' has no data", t->name);
            buf = garlic_malloc((size_t)t->nbytes);
            if (!buf)
                return garlic_error_set(err, GARLIC_ENOMEM, "tensor '%s': out of memory", t->name);
            int rc = fill(user, i, buf, t->nbytes, err);
            if (rc) {
                garlic_free(buf);
                return rc;
            }
            src = buf;
        }
        size_t written = fwrite(src, 1, (size_t)t->nbytes, out);
        garlic_free(buf);
        if (written != t->nbytes)
            return garlic_error_set(err, GARLIC_EIO, "%s: write failed: %s", path, strerror(errno));
        for (uint64_t pad = (alignment - t->nbytes % alignment) % alignment; pad > 0;) {
            size_t n = pad < sizeof zeros ? (size_t)pad : sizeof zeros;
            if (fwrite(zeros, 1, n, out) != n)
                return garlic_error_set(err, GARLIC_EIO, "%s: write failed", path);
            pad -= n;
        }
    }
    return GARLIC_OK;
}

// gguf_read.c: parses a head (header, metadata, tensor infos) without tensor data; the result
// owns nothing of head until the caller hands it over.
gguf_file *gguf_parse_detached(const void *head, size_t size, const char *name, garlic_error *err);

gguf_file *gguf_writer_open(gguf_writer *w, const char *name, void (*release)(void *ctx), void *ctx,
                            garlic_error *err)
{
    uint32_t alignment = writer_alignment(w);
    bytes head = {0};
    encode_head(w, &head, alignment);
    gguf_file *f = NULL;
    if (head.failed)
        garlic_error_set(err, GARLIC_ENOMEM, "%s: out of memory", name);
    else
        f = gguf_parse_detached(head.buf.data, head.buf.len, name, err);
    if (!f) {
        garlic_buf_deinit(&head.buf);
        if (release)
            release(ctx);
        return NULL;
    }
    uint64_t size = head.buf.len; // the head, then the data as gguf_writer_write lays it out
    for (size_t i = 0; i < w->n_tensors; i++) {
        f->tensors[i].data = w->tensors[i].data;
        size += (w->tensors[i].nbytes + alignment - 1) / alignment * alignment;
    }
    f->size = size;
    f->release = release, f->release_ctx = ctx;
    return f;
}

int gguf_writer_write(gguf_writer *w, const char *path, gguf_tensor_fill fill, void *user,
                      garlic_error *err)
{
    // garlic's own in-memory types (a folder's made tensors) never go into a file
    for (size_t i = 0; i < w->n_tensors; i++) {
        const tensor_type_traits *traits = tensor_type_get(w->tensors[i].type);
        if (traits->internal)
            return garlic_error_set(err, GARLIC_EINVAL,
                                    "%s: tensor '%s': type %s (%u) is garlic's own in-memory "
                                    "layout, not a GGUF type",
                                    path, w->tensors[i].name, traits->name, w->tensors[i].type);
    }
    uint32_t alignment = writer_alignment(w);
    bytes head = {0};
    encode_head(w, &head, alignment);
    if (head.failed) {
        garlic_buf_deinit(&head.buf);
        return garlic_error_set(err, GARLIC_ENOMEM, "%s: out of memory", path);
    }
    FILE *out = fopen(path, "wb");
    if (!out) {
        garlic_buf_deinit(&head.buf);
        return garlic_error_set(err, GARLIC_EIO, "%s: cannot create: %s", path, strerror(errno));
    }
    int rc = GARLIC_OK;
    if (fwrite(head.buf.data, 1, head.buf.len, out) != head.buf.len)
        rc = garlic_error_set(err, GARLIC_EIO, "%s: write failed: %s", path, strerror(errno));
    garlic_buf_deinit(&head.buf);
    if (rc == GARLIC_OK)
        rc = write_tensor_data(w, out, alignment, fill, user, path, err);
    if (fclose(out) != 0 && rc == GARLIC_OK)
        rc = garlic_error_set(err, GARLIC_EIO, "%s: write failed: %s", path, strerror(errno));
    if (rc != GARLIC_OK)
        remove(path);
    return rc;
}
