// SPDX-License-Identifier: MIT
// GGUF reader and writer: round trips of every value type, every shared file, and hostile
// input: truncation at every byte, flipped bytes, forged counts, lengths, shapes and offsets,
// and failing allocations (reading and writing); garlic's own in-memory types are refused
// both ways. Hostile images are parsed from exactly-sized heap copies so that ASan catches any
// read past the end.
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"
#include "gguf/gguf.h"
#include "model/synth.h"
#include "tensor/types.h"
#include "util.h"

// Writes a file with one key of every type, nested arrays and three tensors.
static const char *write_sample(uint32_t alignment)
{
    const char *path = test_temp_path("sample.gguf");
    gguf_writer *w = gguf_writer_new();
    assert_non_null(w);
    if (alignment)
        assert_int_equal(gguf_writer_set_u32(w, "general.alignment", alignment), 0);
    assert_int_equal(gguf_writer_set_u32(w, "k.u32", 4000000000u), 0);
    assert_int_equal(gguf_writer_set_i32(w, "k.i32", -7), 0);
    assert_int_equal(gguf_writer_set_u64(w, "k.u64", 1ull << 40), 0);
    assert_int_equal(gguf_writer_set_f32(w, "k.f32", 0.25f), 0);
    assert_int_equal(gguf_writer_set_bool(w, "k.bool", true), 0);
    assert_int_equal(gguf_writer_set_str(w, "k.str", "h\xc3\xa9llo"), 0);
    const int16_t i16[3] = {-1, 2, -3};
    assert_int_equal(gguf_writer_set_arr(w, "k.arr_i16", GGUF_TYPE_INT16, i16, 3), 0);
    const double f64[2] = {1.5, -2.25};
    assert_int_equal(gguf_writer_set_arr(w, "k.arr_f64", GGUF_TYPE_FLOAT64, f64, 2), 0);
    const char *strs[3] = {"a", "", "ccc"};
    assert_int_equal(gguf_writer_set_arr_str(w, "k.arr_str", strs, 3), 0);
    assert_int_equal(gguf_writer_set_str(w, "k.str", "h\xc3\xa9llo"), 0); // replace, not add

    float data_f32[2 * 64];
    for (int i = 0; i < 128; i++)
        data_f32[i] = (float)i - 64.0f;
    uint8_t data_q8[2 * 34];
    memset(data_q8, 0x11, sizeof data_q8);
    uint64_t ne_a[2] = {64, 2}, ne_b[1] = {64}, ne_c[3] = {32, 1, 2};
    garlic_error err = {0};
    assert_int_equal(gguf_writer_add_tensor(w, "a", TENSOR_TYPE_F32, 2, ne_a, data_f32, &err), 0);
    assert_int_equal(gguf_writer_add_tensor(w, "b", TENSOR_TYPE_F32, 1, ne_b, data_f32, &err), 0);
    assert_int_equal(gguf_writer_add_tensor(w, "c", TENSOR_TYPE_Q8_0, 3, ne_c, data_q8, &err), 0);
    // Rejected: duplicate name, a row that is not a multiple of the block, an unknown type.
    assert_int_equal(gguf_writer_add_tensor(w, "a", TENSOR_TYPE_F32, 1, ne_b, data_f32, &err),
                     GARLIC_EINVAL);
    uint64_t ne_bad[1] = {33};
    assert_int_equal(gguf_writer_add_tensor(w, "d", TENSOR_TYPE_Q8_0, 1, ne_bad, data_q8, &err),
                     GARLIC_EINVAL);
    assert_int_equal(gguf_writer_add_tensor(w, "e", 4, 1, ne_b, data_q8, &err), GARLIC_EINVAL);
    assert_int_equal(gguf_writer_write(w, path, NULL, NULL, &err), 0);
    gguf_writer_free(w);
    return path;
}

static void test_round_trip(void **state)
{
    (void)state;
    uint32_t alignments[2] = {0, 256};
    for (int a = 0; a < 2; a++) {
        const char *path = write_sample(alignments[a]);
        garlic_error err = {0};
        gguf_file *f = gguf_open(path, &err);
        assert_non_null(f);
        assert_int_equal(f->version, 3);
        assert_int_equal(f->alignment, alignments[a] ? alignments[a] : 32);
        assert_int_equal(f->data_offset % f->alignment, 0);
        uint32_t u32;
        uint64_t u64;
        int64_t i64;
        float f32;
        bool b;
        gguf_string s;
        assert_int_equal(gguf_get_u32(f, "k.u32", &u32), 0);
        assert_int_equal(u32, 4000000000u);
        assert_int_equal(gguf_get_i64(f, "k.i32", &i64), 0);
        assert_int_equal(i64, -7);
        assert_int_equal(gguf_get_u64(f, "k.i32", &u64), GARLIC_ETYPE); // negative
        assert_int_equal(gguf_get_u64(f, "k.u64", &u64), 0);
        assert_true(u64 == 1ull << 40);
        assert_int_equal(gguf_get_u32(f, "k.u64", &u32), GARLIC_ETYPE); // too big
        assert_int_equal(gguf_get_f32(f, "k.f32", &f32), 0);
        assert_true(f32 == 0.25f);
        assert_int_equal(gguf_get_bool(f, "k.bool", &b), 0);
        assert_true(b);
        assert_int_equal(gguf_get_str(f, "k.str", &s), 0);
        assert_true(gguf_string_eq(s, "h\xc3\xa9llo"));
        assert_int_equal(gguf_get_str(f, "k.u32", &s), GARLIC_ETYPE);
        assert_int_equal(gguf_get_str(f, "absent", &s), GARLIC_ENOTFOUND);
        assert_int_equal(f->n_kv, alignments[a] ? 10 : 9);

        gguf_value arr, v;
        assert_int_equal(gguf_get_arr(f, "k.arr_i16", &arr), 0);
        assert_int_equal(arr.arr.count, 3);
        assert_true(gguf_array_get_i64(&arr, 2, &i64) && i64 == -3);
        assert_false(gguf_array_get_i64(&arr, 3, &i64));
        double d;
        assert_int_equal(gguf_get_arr(f, "k.arr_f64", &arr), 0);
        assert_true(gguf_array_get_f64(&arr, 1, &d) && d == -2.25);
        assert_int_equal(gguf_get_arr(f, "k.arr_str", &arr), 0);
        gguf_array_iter it;
        gguf_array_iter_init(&it, &arr);
        const char *want[3] = {"a", "", "ccc"};
        for (int i = 0; i < 3; i++) {
            assert_true(gguf_array_next(&it, &v));
            assert_true(gguf_string_eq(v.str, want[i]));
        }
        assert_false(gguf_array_next(&it, &v));

        assert_int_equal(f->n_tensors, 3);
        const gguf_tensor *t = gguf_find_tensor(f, "c");
        assert_non_null(t);
        assert_int_equal(t->n_dims, 3);
        assert_int_equal(t->ne[2], 2);
        assert_int_equal(t->nbytes, 68);
        assert_int_equal(((const uint8_t *)t->data)[67], 0x11);
        t = gguf_find_tensor(f, "a");
        assert_int_equal(t->nbytes, 512);
        assert_true(((const float *)t->data)[127] == 63.0f);
        assert_int_equal(((uintptr_t)t->data - (uintptr_t)f->base) % f->alignment, 0);
        assert_null(gguf_find_tensor(f, "zz"));
        gguf_close(f);
    }
}

// Copies a value through the writer (nested arrays included) and reads it back.
static void test_nested_arrays(void **state)
{
    (void)state;
    // Hand-encode one key "nested" holding an array of two arrays of u8: [[1, 2], [3]].
    uint8_t buf[128];
    size_t size = 0;
    const uint32_t version = 3, t_array = GGUF_TYPE_ARRAY, t_u8 = GGUF_TYPE_UINT8;
    const uint64_t zero = 0, one = 1, two = 2, key_len = 6;
    memcpy(buf, "GGUF", 4), size = 4;
    memcpy(buf + size, &version, 4), size += 4;
    memcpy(buf + size, &zero, 8), size += 8; // tensors
    memcpy(buf + size, &one, 8), size += 8;  // kv pairs
    memcpy(buf + size, &key_len, 8), size += 8;
    memcpy(buf + size, "nested", 6), size += 6;
    memcpy(buf + size, &t_array, 4), size += 4; // value type
    memcpy(buf + size, &t_array, 4), size += 4; // element type
    memcpy(buf + size, &two, 8), size += 8;
    memcpy(buf + size, &t_u8, 4), size += 4;
    memcpy(buf + size, &two, 8), size += 8;
    buf[size++] = 1, buf[size++] = 2;
    memcpy(buf + size, &t_u8, 4), size += 4;
    memcpy(buf + size, &one, 8), size += 8;
    buf[size++] = 3;
    garlic_error err = {0};
    gguf_file *f = gguf_parse(buf, size, "nested.gguf", &err);
    assert_non_null(f);
    gguf_value arr, inner, x;
    assert_int_equal(gguf_get_arr(f, "nested", &arr), 0);
    assert_int_equal(arr.arr.type, GGUF_TYPE_ARRAY);
    gguf_array_iter it;
    gguf_array_iter_init(&it, &arr);
    assert_true(gguf_array_next(&it, &inner));
    assert_int_equal(inner.arr.count, 2);
    int64_t v;
    assert_true(gguf_array_get_i64(&inner, 1, &v) && v == 2);
    assert_true(gguf_array_next(&it, &inner));
    assert_true(gguf_array_get_i64(&inner, 0, &v) && v == 3);
    assert_false(gguf_array_next(&it, &x));

    gguf_writer *w = gguf_writer_new();
    assert_int_equal(gguf_writer_set_value(w, "copy", &arr), 0);
    const char *path = test_temp_path("nested.gguf");
    assert_int_equal(gguf_writer_write(w, path, NULL, NULL, &err), 0);
    gguf_writer_free(w);
    gguf_file *g = gguf_open(path, &err);
    assert_non_null(g);
    gguf_value copy;
    assert_int_equal(gguf_get_arr(g, "copy", &copy), 0);
    assert_int_equal(copy.arr.size, arr.arr.size);
    assert_memory_equal(copy.arr.data, arr.arr.data, arr.arr.size);
    gguf_close(g);
    gguf_close(f);
}

// Parses a heap copy of image[0..size); returns the error code (0 on success).
static int parse_copy(const uint8_t *image, size_t size, garlic_error *err)
{
    uint8_t *buf = malloc(size ? size : 1);
    memcpy(buf, image, size);
    gguf_file *f = gguf_parse(buf, size, "hostile.gguf", err);
    int rc = f ? 0 : err->code;
    if (f) {
        // Walk everything a consumer might touch.
        for (uint64_t i = 0; i < f->n_kv; i++) {
            if (f->kv[i].value.type != GGUF_TYPE_ARRAY)
                continue;
            gguf_array_iter it;
            gguf_value v;
            gguf_array_iter_init(&it, &f->kv[i].value);
            while (gguf_array_next(&it, &v)) {
            }
        }
        for (uint64_t i = 0; i < f->n_tensors; i++) {
            const uint8_t *d = f->tensors[i].data;
            if (f->tensors[i].nbytes)
                rc |= (d[0] & 0) | (d[f->tensors[i].nbytes - 1] & 0);
        }
        gguf_close(f);
    } else {
        assert_true(rc < 0);
        assert_true(strstr(err->message, "hostile.gguf") != NULL);
    }
    free(buf);
    return rc;
}

static uint8_t *write_small_model(size_t *size)
{
    model_synth_params p;
    model_synth_params_default(&p);
    p.dim = 64, p.n_head = 4, p.n_head_kv = 2, p.ffn = 96, p.n_layer = 1, p.vocab = 400;
    p.type = TENSOR_TYPE_Q8_0;
    garlic_error err = {0};
    const char *path = test_temp_path("small.gguf");
    assert_int_equal(model_synth_write(&p, path, &err), 0);
    uint8_t *image = test_read_file(path, size);
    assert_non_null(image);
    return image;
}

// Every truncation that cuts into the header, the metadata, the tensor infos or a tensor's
// data fails with a message naming the file.
static void test_truncation_everywhere(void **state)
{
    (void)state;
    size_t size;
    uint8_t *image = write_small_model(&size);
    garlic_error err;
    assert_int_equal(parse_copy(image, size, &err), 0);
    gguf_file *f = gguf_parse(image, size, "x", &err);
    uint64_t end = 0;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        uint64_t e = f->data_offset + f->tensors[i].offset + f->tensors[i].nbytes;
        end = e > end ? e : end;
    }
    gguf_close(f);
    for (size_t cut = 0; cut < size; cut++) {
        int rc = parse_copy(image, cut, &err);
        if (cut < end)
            assert_int_not_equal(rc, 0);
    }
    free(image);
}

// GGUF v2 has v3's layout (64-bit counts and lengths); a v3 image relabelled v2 must read
// the same.
static void test_version_2(void **state)
{
    (void)state;
    size_t size;
    uint8_t *image = write_small_model(&size);
    image[4] = 2;
    garlic_error err = {0};
    gguf_file *f = gguf_parse(image, size, "v2.gguf", &err);
    if (!f)
        fail_msg("%s", err.message);
    assert_int_equal(f->version, 2);
    assert_non_null(gguf_find_tensor(f, "blk.0.ffn_down.weight"));
    gguf_close(f);
    free(image);
}

static void test_flipped_bytes(void **state)
{
    (void)state;
    size_t size;
    uint8_t *image = write_small_model(&size);
    gguf_file *f = gguf_parse(image, size, "x", NULL);
    size_t head = (size_t)f->data_offset;
    gguf_close(f);
    test_rng rng;
    test_rng_seed(&rng, 7);
    garlic_error err;
    int failures = 0;
    for (int iter = 0; iter < 3000; iter++) {
        uint8_t *copy = malloc(size);
        memcpy(copy, image, size);
        int flips = 1 + (int)(test_rng_u64(&rng) % 4);
        for (int k = 0; k < flips; k++)
            copy[test_rng_u64(&rng) % head] ^= (uint8_t)(1u << (test_rng_u64(&rng) % 8));
        failures += parse_copy(copy, size, &err) != 0;
        free(copy);
    }
    // Many flips land in string bytes or float values and still parse; many must not.
    assert_true(failures > 100);
    free(image);
}

// Builds a minimal image: header with n_tensors/n_kv and a body.
static size_t build(uint8_t *out, uint32_t version, uint64_t n_tensors, uint64_t n_kv,
                    const uint8_t *body, size_t body_len)
{
    memcpy(out, "GGUF", 4);
    memcpy(out + 4, &version, 4);
    memcpy(out + 8, &n_tensors, 8);
    memcpy(out + 16, &n_kv, 8);
    memcpy(out + 24, body, body_len);
    return 24 + body_len;
}

static void expect_error(const uint8_t *image, size_t size, int code, const char *fragment)
{
    garlic_error err = {0};
    int rc = parse_copy(image, size, &err);
    if (rc != code || !strstr(err.message, fragment))
        fail_msg("expected %d '%s', got %d '%s'", code, fragment, rc, err.message);
}

// Encodes a key/value pair "key" = u32 v into p, returning its length.
static size_t kv_u32(uint8_t *p, const char *key, uint32_t v)
{
    uint64_t len = strlen(key);
    uint32_t type = GGUF_TYPE_UINT32;
    memcpy(p, &len, 8);
    memcpy(p + 8, key, len);
    memcpy(p + 8 + len, &type, 4);
    memcpy(p + 12 + len, &v, 4);
    return 16 + len;
}

// Encodes a tensor info into p, returning its length.
static size_t tensor_info(uint8_t *p, const char *name, uint32_t n_dims, const uint64_t *ne,
                          uint32_t type, uint64_t offset)
{
    uint64_t len = strlen(name);
    size_t o = 0;
    memcpy(p + o, &len, 8), o += 8;
    memcpy(p + o, name, len), o += len;
    memcpy(p + o, &n_dims, 4), o += 4;
    for (uint32_t d = 0; d < n_dims && d < 8; d++)
        memcpy(p + o, &ne[d], 8), o += 8;
    memcpy(p + o, &type, 4), o += 4;
    memcpy(p + o, &offset, 8), o += 8;
    return o;
}

static void test_forged_values(void **state)
{
    (void)state;
    uint8_t image[4096], body[2048];
    size_t n;
    memset(body, 0, sizeof body);
    expect_error((const uint8_t *)"GGUX\3\0\0\0", 8, GARLIC_EFORMAT, "not a GGUF file");
    n = build(image, 1, 0, 0, body, 0);
    expect_error(image, n, GARLIC_EUNSUPPORTED, "version 1");
    n = build(image, 0x03000000, 0, 0, body, 0);
    expect_error(image, n, GARLIC_EUNSUPPORTED, "big-endian");
    n = build(image, 7, 0, 0, body, 0);
    expect_error(image, n, GARLIC_EUNSUPPORTED, "version 7");
    n = build(image, 3, 0, UINT64_MAX, body, 64);
    expect_error(image, n, GARLIC_EFORMAT, "more than the file");
    n = build(image, 3, 1ull << 60, 0, body, 64);
    expect_error(image, n, GARLIC_EFORMAT, "more than the file");
    n = build(image, 3, 0, 0, body, 0);
    expect_error(image, 12, GARLIC_EFORMAT, "truncated");
    assert_int_equal(parse_copy(image, n, &(garlic_error){0}), 0); // empty file is valid

    // A key whose length runs past the end.
    uint64_t huge = UINT64_MAX - 3;
    memcpy(body, &huge, 8);
    n = build(image, 3, 0, 1, body, 32);
    expect_error(image, n, GARLIC_EFORMAT, "has length");
    // Unknown value type.
    size_t k = kv_u32(body, "key", 1);
    memcpy(body + 11, &(uint32_t){13}, 4);
    n = build(image, 3, 0, 1, body, k);
    expect_error(image, n, GARLIC_EFORMAT, "unknown value type 13");
    // Array with a forged count, then an unknown element type, then too deep nesting.
    memcpy(body, "\1\0\0\0\0\0\0\0a\x09\0\0\0\x04\0\0\0", 17);
    memcpy(body + 17, &(uint64_t){1ull << 62}, 8);
    n = build(image, 3, 0, 1, body, 40);
    expect_error(image, n, GARLIC_EFORMAT, "claims 4611686018427387904 elements");
    memcpy(body + 13, &(uint32_t){99}, 4);
    n = build(image, 3, 0, 1, body, 40);
    expect_error(image, n, GARLIC_EFORMAT, "unknown element type 99");
    size_t o = 13;
    for (int depth = 0; depth < 12; depth++) {
        memcpy(body + o, &(uint32_t){GGUF_TYPE_ARRAY}, 4);
        memcpy(body + o + 4, &(uint64_t){1}, 8);
        o += 12;
    }
    n = build(image, 3, 0, 1, body, o + 16);
    expect_error(image, n, GARLIC_EFORMAT, "nests deeper");
    // Duplicate keys; bad alignment values.
    memset(body, 0, sizeof body);
    k = kv_u32(body, "dup", 1);
    k += kv_u32(body + k, "dup", 2);
    n = build(image, 3, 0, 2, body, k);
    expect_error(image, n, GARLIC_EFORMAT, "duplicate metadata key 'dup'");
    k = kv_u32(body, "general.alignment", 0);
    n = build(image, 3, 0, 1, body, k);
    expect_error(image, n, GARLIC_EFORMAT, "not a power of two");
    k = kv_u32(body, "general.alignment", 48);
    n = build(image, 3, 0, 1, body, k);
    expect_error(image, n, GARLIC_EFORMAT, "not a power of two");

    // Tensor infos: bad dims, unknown type, shape overflow, block mismatch, bad offsets.
    uint64_t ne[5] = {32, 2, 1, 1, 1};
    k = tensor_info(body, "t", 5, ne, TENSOR_TYPE_F32, 0);
    n = build(image, 3, 1, 0, body, k + 512);
    expect_error(image, n, GARLIC_EFORMAT, "5 dimensions");
    k = tensor_info(body, "t", 2, ne, 4, 0);
    n = build(image, 3, 1, 0, body, k + 512);
    expect_error(image, n, GARLIC_EUNSUPPORTED, "unknown type 4");
    uint64_t big[2] = {1ull << 40, 1ull << 40};
    k = tensor_info(body, "t", 2, big, TENSOR_TYPE_F32, 0);
    n = build(image, 3, 1, 0, body, k + 512);
    expect_error(image, n, GARLIC_EFORMAT, "overflows");
    uint64_t odd[1] = {33};
    k = tensor_info(body, "t", 1, odd, TENSOR_TYPE_Q4_0, 0);
    n = build(image, 3, 1, 0, body, k + 512);
    expect_error(image, n, GARLIC_EFORMAT, "not a multiple");
    k = tensor_info(body, "t", 2, ne, TENSOR_TYPE_F32, 16);
    n = build(image, 3, 1, 0, body, k + 512);
    expect_error(image, n, GARLIC_EFORMAT, "alignment");
    k = tensor_info(body, "t", 2, ne, TENSOR_TYPE_F32, 1ull << 50);
    n = build(image, 3, 1, 0, body, k + 512);
    expect_error(image, n, GARLIC_EFORMAT, "past the end");
    k = tensor_info(body, "t", 2, ne, TENSOR_TYPE_F32, 0);
    k += tensor_info(body + k, "t", 2, ne, TENSOR_TYPE_F32, 256);
    n = build(image, 3, 2, 0, body, k + 1024);
    expect_error(image, n, GARLIC_EFORMAT, "duplicate tensor name 't'");
    k = tensor_info(body, "t", 2, ne, TENSOR_TYPE_F32, 0);
    k += tensor_info(body + k, "u", 2, ne, TENSOR_TYPE_F32, 128);
    n = build(image, 3, 2, 0, body, k + 1024);
    expect_error(image, n, GARLIC_EFORMAT, "overlaps");
}

// garlic's own in-memory types (F8_E4M3, Q4_Z; flagged internal) never enter or leave a GGUF
// file: the reader refuses a tensor info carrying one of their ids, naming the id (the same
// image with a GGUF type parses), and the writer refuses to write such a tensor to a file,
// naming the type (an in-memory file made by gguf_writer_open may hold them). Their ids are
// not GGUF's newer ones: a file with NVFP4 (40) has an unknown type.
static void test_internal_types(void **state)
{
    (void)state;
    uint8_t image[4096], body[2048];
    memset(body, 0, sizeof body);
    uint64_t ne[2] = {32, 2};
    size_t k = tensor_info(body, "t", 2, ne, TENSOR_TYPE_Q8_0, 0);
    size_t n = build(image, 3, 1, 0, body, k + 512);
    assert_int_equal(parse_copy(image, n, &(garlic_error){0}), 0);
    int internal = 0;
    for (uint32_t type = 0; type < TENSOR_TYPE_COUNT; type++) {
        const tensor_type_traits *tr = tensor_type_get(type);
        if (!tr || !tr->internal)
            continue;
        internal++;
        char want[64];
        snprintf(want, sizeof want, "type %u is not a GGUF type", type);
        k = tensor_info(body, "t", 2, ne, type, 0);
        n = build(image, 3, 1, 0, body, k + 512);
        expect_error(image, n, GARLIC_EUNSUPPORTED, want);

        gguf_writer *w = gguf_writer_new();
        assert_non_null(w);
        uint8_t data[2 * 36] = {0};
        garlic_error err = {0};
        // added for an in-memory file (gguf_writer_open), refused when written
        assert_int_equal(gguf_writer_add_tensor(w, "t", type, 2, ne, data, &err), GARLIC_OK);
        const char *path = test_temp_path("internal.gguf");
        assert_int_equal(gguf_writer_write(w, path, NULL, NULL, &err), GARLIC_EINVAL);
        if (!strstr(err.message, tr->name) || !strstr(err.message, "not a GGUF type"))
            fail_msg("writer's message for %s: '%s'", tr->name, err.message);
        assert_int_not_equal(access(path, F_OK), 0);
        gguf_file *f = gguf_writer_open(w, "mem", NULL, NULL, &err);
        assert_non_null(f);
        assert_int_equal(f->tensors[0].type, type);
        gguf_close(f);
        gguf_writer_free(w);
    }
    assert_int_equal(internal, 2);
    // ggml's NVFP4 (40) is a GGUF type garlic does not read yet: unknown, not one of garlic's.
    k = tensor_info(body, "t", 2, ne, 40, 0);
    n = build(image, 3, 1, 0, body, k + 512);
    expect_error(image, n, GARLIC_EUNSUPPORTED, "unknown type 40");
}

// Every allocation the reader makes may fail: it must return GARLIC_ENOMEM and leak nothing.
static void test_allocation_failures(void **state)
{
    (void)state;
    size_t size;
    uint8_t *image = write_small_model(&size);
    int failed = 0;
    for (long n = 0; n < 64; n++) {
        garlic_error err = {0};
        garlic_alloc_fail_after(n);
        gguf_file *f = gguf_parse(image, size, "x.gguf", &err);
        garlic_alloc_fail_reset();
        if (!f) {
            assert_int_equal(err.code, GARLIC_ENOMEM);
            failed++;
        }
        gguf_close(f);
    }
    assert_true(failed > 0);
    free(image);
}

// Every allocation the writer makes may fail too: each call answers GARLIC_ENOMEM (never
// hangs or crashes), nothing leaks, and with enough memory the file is written and reads back.
static void test_writer_allocation_failures(void **state)
{
    (void)state;
    const char *path = test_temp_path("alloc-written.gguf");
    static const float data[64] = {1, 2, 3};
    static const char *const strs[] = {"x", "yy", "zzz"};
    bool written = false;
    int failed = 0;
    for (long n = 0; n < 400 && !written; n++) {
        garlic_error err = {0};
        garlic_alloc_fail_after(n);
        gguf_writer *w = gguf_writer_new();
        int rc = w ? GARLIC_OK : GARLIC_ENOMEM;
        for (int k = 0; k < 40 && rc == GARLIC_OK; k++) { // past the first growth of the keys
            char key[32];
            snprintf(key, sizeof key, "k.%d", k);
            rc = gguf_writer_set_u32(w, key, (uint32_t)k);
        }
        if (rc == GARLIC_OK)
            rc = gguf_writer_set_arr_str(w, "k.strs", strs, 3);
        for (int t = 0; t < 20 && rc == GARLIC_OK; t++) { // past the first growth of tensors
            char name[32];
            uint64_t ne[1] = {64};
            snprintf(name, sizeof name, "t.%d", t);
            rc = gguf_writer_add_tensor(w, name, TENSOR_TYPE_F32, 1, ne, data, &err);
        }
        if (rc == GARLIC_OK)
            rc = gguf_writer_write(w, path, NULL, NULL, &err);
        garlic_alloc_fail_reset();
        gguf_writer_free(w);
        if (rc == GARLIC_OK)
            written = true;
        else if (rc == GARLIC_ENOMEM)
            failed++;
        else
            fail_msg("failing allocation %ld: %d %s", n, rc, err.message);
    }
    assert_true(written);
    assert_true(failed > 60);
    garlic_error err = {0};
    gguf_file *f = gguf_open(path, &err);
    assert_non_null(f);
    assert_int_equal(f->n_kv, 41);
    assert_int_equal(f->n_tensors, 20);
    gguf_close(f);
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

// Every shared GGUF opens; sampled truncations and flips of each fail cleanly.
static void test_shared_files(void **state)
{
    (void)state;
    skip_without_shared();
    const char *dirs[2] = {"models", "tokenizer"};
    int files = 0;
    test_rng rng;
    test_rng_seed(&rng, 3);
    for (int d = 0; d < 2; d++) {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s", test_shared_path(dirs[d]));
        DIR *dh = opendir(dir);
        assert_non_null(dh);
        struct dirent *e;
        while ((e = readdir(dh))) {
            if (!ends_with(e->d_name, ".gguf"))
                continue;
            char path[8192];
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            garlic_error err = {0};
            gguf_file *f = gguf_open(path, &err);
            if (!f)
                fail_msg("%s", err.message);
            size_t size;
            uint8_t *image = test_read_file(path, &size);
            size_t head = (size_t)(f->n_tensors ? f->data_offset : size);
            gguf_close(f);
            for (int i = 0; i < 40; i++) {
                size_t cut = (size_t)(test_rng_u64(&rng) % head);
                assert_int_not_equal(parse_copy(image, cut, &err), 0);
                uint8_t saved = image[cut];
                image[cut] ^= 0xff;
                parse_copy(image, size, &err);
                image[cut] = saved;
            }
            free(image);
            files++;
        }
        closedir(dh);
    }
    assert_true(files >= 30);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_nested_arrays),
        cmocka_unit_test(test_truncation_everywhere),
        cmocka_unit_test(test_version_2),
        cmocka_unit_test(test_flipped_bytes),
        cmocka_unit_test(test_forged_values),
        cmocka_unit_test(test_internal_types),
        cmocka_unit_test(test_allocation_failures),
        cmocka_unit_test(test_writer_allocation_failures),
        cmocka_unit_test(test_shared_files),
    };
    return cmocka_run_group_tests_name("gguf", tests, NULL, NULL);
}
