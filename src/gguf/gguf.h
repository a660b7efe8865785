// SPDX-License-Identifier: MIT
// GGUF v2/v3 reader (over a read-only mmap, every count, length and offset validated
// against the file size before use) and v3 writer. Keys, strings and tensor data point
// into the mapping and live as long as the gguf_file. The reader knows weight types only
// through tensor/types.h, to size tensors; it does no math.
//
// On-disk layout (all little-endian):
//   magic "GGUF" | u32 version (2 or 3) | u64 n_tensors | u64 n_kv
//   n_kv   x { string key | u32 value_type | value }
//   n_tensors x { string name | u32 n_dims | n_dims x u64 ne | u32 type | u64 offset }
//   padding to general.alignment (default 32) | data section (tensor offsets are relative to it)
//   string = u64 length + bytes (no NUL); array value = u32 elem_type + u64 count + elements
#ifndef GARLIC_GGUF_H
#define GARLIC_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "base/mapping.h"

typedef enum gguf_type {
    GGUF_TYPE_UINT8 = 0,
    GGUF_TYPE_INT8 = 1,
    GGUF_TYPE_UINT16 = 2,
    GGUF_TYPE_INT16 = 3,
    GGUF_TYPE_UINT32 = 4,
    GGUF_TYPE_INT32 = 5,
    GGUF_TYPE_FLOAT32 = 6,
    GGUF_TYPE_BOOL = 7,
    GGUF_TYPE_STRING = 8,
    GGUF_TYPE_ARRAY = 9,
    GGUF_TYPE_UINT64 = 10,
    GGUF_TYPE_INT64 = 11,
    GGUF_TYPE_FLOAT64 = 12,
    GGUF_TYPE_COUNT
} gguf_type;

#define GGUF_MAX_DIMS 4
#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_ARRAY_DEPTH 8

// A string inside the mapping: not NUL-terminated.
typedef struct gguf_string {
    uint64_t len;
    const char *data;
} gguf_string;

// A metadata value. Scalars are decoded; strings point into the mapping; arrays give
// their element type, count and the raw bytes of their elements (use the gguf_array_*
// functions to read them: the bytes may be unaligned).
typedef struct gguf_value {
    gguf_type type;
    union {
        uint64_t u64; // UINT8/16/32/64
        int64_t i64;  // INT8/16/32/64
        double f64;   // FLOAT32/64
        bool b;       // BOOL
        gguf_string str;
        struct {
            gguf_type type;      // element type
            uint64_t count;      // number of elements
            const uint8_t *data; // first element's bytes
            uint64_t size;       // bytes of all elements
        } arr;
    };
} gguf_value;

typedef struct gguf_kv {
    gguf_string key;
    gguf_value value;
    uint64_t offset; // file offset where this pair starts
} gguf_kv;

typedef struct gguf_tensor {
    gguf_string name;
    uint32_t n_dims;
    uint64_t ne[GGUF_MAX_DIMS]; // ne[0] is the contiguous (row) dimension; unused dims are 1
    uint32_t type;              // a tensor_type id
    uint64_t offset;            // relative to the data section
    uint64_t n_elements;
    uint64_t nbytes;
    const void *data;     // inside the mapping; valid while the file is open
    uint64_t info_offset; // file offset of this tensor's info record
} gguf_tensor;

typedef struct gguf_file {
    char *path;          // the name used in error messages
    const uint8_t *base; // the mapping (or the caller's buffer)
    uint64_t size;       // bytes
    uint32_t version;
    uint64_t n_kv;
    gguf_kv *kv; // (n_kv)
    uint64_t n_tensors;
    gguf_tensor *tensors; // (n_tensors), in file order
    uint32_t alignment;
    uint64_t data_offset; // file offset of the data section
    garlic_mapping map;   // gguf_open's mapping of the file (base is map.data), else closed
    // A file made by gguf_writer_open: base holds the head only (owned), tensor data lies
    // wherever the writer's tensors pointed, and release(release_ctx) runs at gguf_close.
    // check(release_ctx) (may be NULL), set by the maker, says whether the files the tensors
    // point into changed (gguf_check_files).
    bool detached;
    void (*release)(void *ctx);
    void *release_ctx;
    int (*check)(void *ctx, garlic_error *err);
} gguf_file;

// Opens and validates path. Returns NULL and fills err (naming the file, the field or
// tensor, and the byte offset) if the file cannot be read or is malformed.
gguf_file *gguf_open(const char *path, garlic_error *err);

// Validates an in-memory image (the caller keeps buf alive and unchanged while the result
// is in use); name is used in messages. For fuzzing and tests.
gguf_file *gguf_parse(const void *buf, size_t size, const char *name, garlic_error *err);

// Releases everything; gguf_close(NULL) is a no-op.
void gguf_close(gguf_file *f);

// Whether the files f's data comes from are still as they were when mapped: GARLIC_OK, or
// GARLIC_EIO with a message that names the file by its base name (never its directory) and
// says what changed (garlic_mapping_check). An in-memory image always passes.
int gguf_check_files(const gguf_file *f, garlic_error *err);

// Lookups: NULL when absent.
const gguf_kv *gguf_find_kv(const gguf_file *f, const char *key);
const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name);

// Typed getters. Return GARLIC_OK, GARLIC_ENOTFOUND if the key is absent, or GARLIC_ETYPE if
// the value cannot be represented in the requested type (integers of any width convert when
// the value fits; float getters also accept integers).
int gguf_get_u64(const gguf_file *f, const char *key, uint64_t *out);
int gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out);
int gguf_get_i64(const gguf_file *f, const char *key, int64_t *out);
int gguf_get_f32(const gguf_file *f, const char *key, float *out);
int gguf_get_bool(const gguf_file *f, const char *key, bool *out);
int gguf_get_str(const gguf_file *f, const char *key, gguf_string *out);
int gguf_get_arr(const gguf_file *f, const char *key, gguf_value *out); // out->type == ARRAY

// True when s equals the NUL-terminated text.
bool gguf_string_eq(gguf_string s, const char *text);

// Array access. Fixed-size elements are read by index in O(1); strings and nested arrays
// are read in order with an iterator. The array must come from a validated file.
uint32_t gguf_type_size(gguf_type type); // 0 for STRING and ARRAY
const char *gguf_type_name(gguf_type type);
bool gguf_array_get_i64(const gguf_value *arr, uint64_t i, int64_t *out); // any integer/bool type
bool gguf_array_get_f64(const gguf_value *arr, uint64_t i, double *out);  // any numeric type

typedef struct gguf_array_iter {
    const gguf_value *arr;
    uint64_t index;
    const uint8_t *pos;
} gguf_array_iter;
void gguf_array_iter_init(gguf_array_iter *it, const gguf_value *arr);
// Fills out with the next element and returns true, or returns false at the end.
bool gguf_array_next(gguf_array_iter *it, gguf_value *out);

// Writer. Build the metadata and tensor list, then write the file in one call. Keys and
// names are copied. Tensor data is either borrowed (data != NULL: it must stay valid until
// gguf_writer_write returns) or produced at write time by the fill callback.
typedef struct gguf_writer gguf_writer;

typedef int (*gguf_tensor_fill)(void *user, size_t index, void *dst, uint64_t nbytes,
                                garlic_error *err);

gguf_writer *gguf_writer_new(void);
void gguf_writer_free(gguf_writer *w);
// Setting a key that exists replaces it. Return GARLIC_OK or GARLIC_ENOMEM.
int gguf_writer_set_u32(gguf_writer *w, const char *key, uint32_t v);
int gguf_writer_set_i32(gguf_writer *w, const char *key, int32_t v);
int gguf_writer_set_u64(gguf_writer *w, const char *key, uint64_t v);
int gguf_writer_set_f32(gguf_writer *w, const char *key, float v);
int gguf_writer_set_bool(gguf_writer *w, const char *key, bool v);
int gguf_writer_set_str(gguf_writer *w, const char *key, const char *v);
// An array of fixed-size elements (elem_type not STRING/ARRAY), copied from data.
int gguf_writer_set_arr(gguf_writer *w, const char *key, gguf_type elem_type, const void *data,
                        uint64_t count);
int gguf_writer_set_arr_str(gguf_writer *w, const char *key, const char *const *strings,
                            uint64_t count);
// Copies a value read from another file (any type, nested arrays included).
int gguf_writer_set_value(gguf_writer *w, const char *key, const gguf_value *v);
// Adds a tensor; ne has n_dims entries (1..4). Returns GARLIC_EINVAL for an unknown type,
// a row not a multiple of the block size, or a duplicate name. garlic's own in-memory types
// (tensor_type_traits.internal) may be added for gguf_writer_open, and gguf_writer_write
// refuses them.
int gguf_writer_add_tensor(gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                           const uint64_t *ne, const void *data, garlic_error *err);
// The number of tensors added.
size_t gguf_writer_n_tensors(const gguf_writer *w);

// Sets the borrowed data of tensor index (in order of addition) to data.
void gguf_writer_set_data(gguf_writer *w, size_t index, const void *data);

// A gguf_file made of w's metadata and tensors without writing them anywhere: the head is
// encoded and parsed as a file's (so every reader of a gguf_file works on it alike) and each
// tensor's data is its borrowed pointer (NULL for tensors added without data). size is the
// head's bytes plus every tensor's (padded), as if written. release (may be NULL) is called
// with ctx when the file is closed, also when this call fails: it frees what the tensors
// point into. name is used in messages. w can be freed afterwards.
gguf_file *gguf_writer_open(gguf_writer *w, const char *name, void (*release)(void *ctx), void *ctx,
                            garlic_error *err);
// Writes the file (GGUF v3, alignment from general.alignment or 32). Tensors without
// borrowed data are filled by calling fill(user, index, dst, nbytes, err).
int gguf_writer_write(gguf_writer *w, const char *path, gguf_tensor_fill fill, void *user,
                      garlic_error *err);

#endif
