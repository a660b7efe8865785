// SPDX-License-Identifier: MIT
// The kernels' front door: which weight types have a dot product and which activation
// format each pairs with, the choice of variant (scalar, AVX2, AVX-512 VNNI) made once from
// cpuid, and the one blocking loop that drives every variant's matrix product (a
// kernel_product, variants.h): chunks of the rows' values, panels of weight rows that stay in
// the L2 cache while every tile of activation rows streams past, each tile prepared once per
// panel and chunk. Every weight byte comes from memory once per call. Rows packed at load
// into a variant's own layout go through the same loop with the variant's packed product
// (kernel_matmul_packed).
#include <assert.h>
#include <math.h>
#include <stdatomic.h>
#include <stddef.h>

#include "base/cpu.h"
#include "kernels/kernels.h"
#include "kernels/variants.h"
#include "tensor/types.h"

typedef struct weight_info {
    bool supported;
    uint32_t act_type;
} weight_info;

static const weight_info weight_infos[TENSOR_TYPE_COUNT] = {
    [TENSOR_TYPE_F32] = {true, TENSOR_TYPE_F32},
    [TENSOR_TYPE_F16] = {true, TENSOR_TYPE_F16},
    [TENSOR_TYPE_BF16] = {true, TENSOR_TYPE_BF16},
    [TENSOR_TYPE_Q4_0] = {true, TENSOR_TYPE_Q8_0},
    [TENSOR_TYPE_Q4_1] = {true, TENSOR_TYPE_Q8_1},
    [TENSOR_TYPE_Q5_0] = {true, TENSOR_TYPE_Q8_0},
    [TENSOR_TYPE_Q5_1] = {true, TENSOR_TYPE_Q8_1},
    [TENSOR_TYPE_Q8_0] = {true, TENSOR_TYPE_Q8_0},
    [TENSOR_TYPE_Q2_K] = {true, TENSOR_TYPE_Q8_K},
    [TENSOR_TYPE_Q3_K] = {true, TENSOR_TYPE_Q8_K},
    [TENSOR_TYPE_Q4_K] = {true, TENSOR_TYPE_Q8_K},
    [TENSOR_TYPE_Q5_K] = {true, TENSOR_TYPE_Q8_K},
    [TENSOR_TYPE_Q6_K] = {true, TENSOR_TYPE_Q8_K},
    [TENSOR_TYPE_IQ4_NL] = {true, TENSOR_TYPE_Q8_0},
    [TENSOR_TYPE_IQ4_XS] = {true, TENSOR_TYPE_Q8_K},
    [TENSOR_TYPE_MXFP4] = {true, TENSOR_TYPE_Q8_0},
    // garlic's own. F8_E4M3 with F32: exact, with a float's range (F16 activations can
    // overflow, BF16 ones keep 8 bits). Trials on Zen 4, one thread decoding 2048 rows with
    // AVX-512: F32 rows are 10-15 % faster up to 4096 values (13.6-15.8 GB/s against
    // 11.6-12.6 for F16 or BF16), 15-30 % slower from 5632 to 8192 values, where a row of
    // floats no longer stays in L1 beside the weights streaming through (8.6-10.2 against
    // 10.1-12.6), and even at 14336 (8.7 against 8.8); AVX2 at 4096: 8.5 against 9.2. Q4_Z
    // with Q8_0, its zero point applied to the integer sums (exact, where Q8_1's half-float
    // s would round; Q4_1's Q8_1 kernels are also 2-4 times slower than the lane product
    // Q4_Z shares with Q4_0).
    [TENSOR_TYPE_F8_E4M3] = {true, TENSOR_TYPE_F32},
    [TENSOR_TYPE_Q4_Z] = {true, TENSOR_TYPE_Q8_0},
};

// The scalar references, their products made of dots.
static const kernel_type_ops ref_type_ops[TENSOR_TYPE_COUNT] = {
    [TENSOR_TYPE_F32] = {.dot = kernel_dot_f32_f32_ref, .product = KERNEL_BY_DOTS(NULL)},
    [TENSOR_TYPE_F16] = {.dot = kernel_dot_f16_f16_ref, .product = KERNEL_BY_DOTS(NULL)},
    [TENSOR_TYPE_BF16] = {.dot = kernel_dot_bf16_bf16_ref, .product = KERNEL_BY_DOTS(NULL)},
    [TENSOR_TYPE_Q4_0] = {.dot = kernel_dot_q4_0_q8_0_ref, .product = KERNEL_BY_DOTS(NULL)},
    [TENSOR_TYPE_Q4_1] = {.dot = kernel_dot_q4_1_q8_1_ref, .product = KERNEL_BY_DOTS(NULL)},
    [TENSOR_TYPE_Q5_0] = {.dot = kernel_dot_q5_0_q8_0_ref, .product = KERNEL_BY_DOTS(NULL)},
    [TENSOR_TYPE_Q5_1] = {.dot = kernel_dot_q5_1_q8_1_ref, .product = KERNEL_BY_DOTS(NULL)},
    [TENSOR_TYPE_Q8_0] = {.dot = kernel_dot_q8_0_q8_0_ref, .product = KERNEL_BY_DOTS(NULL)},
    [TENSOR_TYPE_Q2_K] = {.dot = kernel_dot_q2_k_q8_k_ref, .product = KERNEL_BY_DOTS(NULL)},
    [TENSOR_TYPE_Q3_K] = {.dot = kernel_dot_q3_k_q8_k_ref, .product = KERNEL_BY_DOTS(NULL)},
    [TENSOR_TYPE_Q4_K] = {.dot = kernel_dot_q4_k_q8_k_ref, .product = KERNEL_BY_DOTS(NULL)},
    [TENSOR_TYPE_Q5_K] = {.dot = kernel_dot_q5_k_q8_k_ref, .product = KERNEL_BY_DOTS(NULL)},
    [TENSOR_TYPE_Q6_K] = {.dot = kernel_dot_q6_k_q8_k_ref, .product = KERNEL_BY_DOTS(NULL)},
    [TENSOR_TYPE_IQ4_NL] = {.dot = kernel_dot_iq4_nl_q8_0_ref, .product = KERNEL_BY_DOTS(NULL)},
    [TENSOR_TYPE_IQ4_XS] = {.dot = kernel_dot_iq4_xs_q8_k_ref, .product = KERNEL_BY_DOTS(NULL)},
    [TENSOR_TYPE_MXFP4] = {.dot = kernel_dot_mxfp4_q8_0_ref, .product = KERNEL_BY_DOTS(NULL)},
    [TENSOR_TYPE_F8_E4M3] = {.dot = kernel_dot_f8_e4m3_f32_ref, .product = KERNEL_BY_DOTS(NULL)},
    [TENSOR_TYPE_Q4_Z] = {.dot = kernel_dot_q4_z_q8_0_ref, .product = KERNEL_BY_DOTS(NULL)},
};

static const kernel_float_ops ref_float_ops = {
    .dot_f32 = kernel_dot_f32_ref,
    .dot_f32_f16 = kernel_dot_f32_f16_ref,
    .axpy_f32 = kernel_axpy_f32_ref,
    .dot_rows_f32 = kernel_dot_rows_f32_ref,
    .axpy_rows_f32 = kernel_axpy_rows_f32_ref,
    .dot_rows_q8_0 = kernel_dot_rows_q8_0_ref,
    .axpy_rows_q8_0 = kernel_axpy_rows_q8_0_ref,
    .axpy_f16 = kernel_axpy_f16_ref,
    .dot_rows_f16 = kernel_dot_rows_f16_ref,
    .axpy_rows_f16 = kernel_axpy_rows_f16_ref,
    .max_f32 = kernel_max_f32_ref,
    .exp_sum_f32 = kernel_exp_sum_f32_ref,
    .swiglu_f32 = kernel_swiglu_f32_ref,
};

bool kernel_supports(uint32_t weight_type)
{
    return weight_type < TENSOR_TYPE_COUNT && weight_infos[weight_type].supported;
}

uint32_t kernel_act_type(uint32_t weight_type)
{
    return kernel_supports(weight_type) ? weight_infos[weight_type].act_type : TENSOR_TYPE_F32;
}

size_t kernel_act_row_size(uint32_t weight_type, int64_t n)
{
    uint64_t bytes = 0;
    if (n < 0 || !tensor_row_size(kernel_act_type(weight_type), (uint64_t)n, &bytes))
        return 0;
    return (size_t)bytes;
}

void kernel_act_convert_variant(kernel_variant v, uint32_t weight_type, const float *x, void *dst,
                                int64_t n)
{
    bool simd = false;
#if defined(__x86_64__)
    simd = v != KERNEL_VARIANT_REF;
#endif
    (void)v;
    switch (kernel_act_type(weight_type)) {
#if defined(__x86_64__)
    case TENSOR_TYPE_F16: (simd ? kernel_act_f16_avx2 : kernel_act_f16_ref)(x, dst, n); break;
    case TENSOR_TYPE_Q8_0: (simd ? kernel_act_q8_0_avx2 : kernel_act_q8_0_ref)(x, dst, n); break;
    case TENSOR_TYPE_Q8_1: (simd ? kernel_act_q8_1_avx2 : kernel_act_q8_1_ref)(x, dst, n); break;
    case TENSOR_TYPE_Q8_K: (simd ? kernel_act_q8_k_avx2 : kernel_act_q8_k_ref)(x, dst, n); break;
#else
    case TENSOR_TYPE_F16: kernel_act_f16_ref(x, dst, n); break;
    case TENSOR_TYPE_Q8_0: kernel_act_q8_0_ref(x, dst, n); break;
    case TENSOR_TYPE_Q8_1: kernel_act_q8_1_ref(x, dst, n); break;
    case TENSOR_TYPE_Q8_K: kernel_act_q8_k_ref(x, dst, n); break;
#endif
    case TENSOR_TYPE_BF16: kernel_act_bf16(x, dst, n); break;
    default: kernel_act_f32(x, dst, n); break;
    }
    (void)simd;
}

void kernel_act_convert(uint32_t weight_type, const float *x, void *dst, int64_t n)
{
    kernel_act_convert_variant(kernel_variant_active(), weight_type, x, dst, n);
}

const char *kernel_variant_label(kernel_variant v)
{
    static const char *const labels[KERNEL_VARIANT_COUNT] = {
        [KERNEL_VARIANT_REF] = "scalar",
        [KERNEL_VARIANT_AVX2] = "avx2",
        [KERNEL_VARIANT_AVX512] = "avx512_vnni",
    };
    return v < KERNEL_VARIANT_COUNT ? labels[v] : "unknown";
}

bool kernel_variant_available(kernel_variant v)
{
    const cpu_features *cpu = cpu_features_get();
    switch (v) {
    case KERNEL_VARIANT_REF: return true;
#if defined(__x86_64__)
    case KERNEL_VARIANT_AVX2: return cpu->avx2;
    case KERNEL_VARIANT_AVX512: return cpu->avx512 && cpu->avx512_vnni;
#endif
    default: (void)cpu; return false;
    }
}

// Decided once; a race between first callers is benign because every caller computes the
// same answer and stores it atomically.
kernel_variant kernel_variant_active(void)
{
    static _Atomic int chosen = -1;
    int v = atomic_load_explicit(&chosen, memory_order_relaxed);
    if (v >= 0)
        return (kernel_variant)v;
    v = KERNEL_VARIANT_REF;
    if (kernel_variant_available(KERNEL_VARIANT_AVX512))
        v = KERNEL_VARIANT_AVX512;
    else if (kernel_variant_available(KERNEL_VARIANT_AVX2))
        v = KERNEL_VARIANT_AVX2;
    atomic_store_explicit(&chosen, v, memory_order_relaxed);
    return (kernel_variant)v;
}

// The tables of variant v, one per file with kernels for it (*count of them; none for a
// variant this build has no code for).
static const kernel_type_ops *const *variant_tables(kernel_variant v, int *count)
{
    static const kernel_type_ops *const ref[] = {ref_type_ops};
#if defined(__x86_64__)
    static const kernel_type_ops *const avx2[] = {kernel_avx2_type_ops};
    static const kernel_type_ops *const avx512[] = {
        kernel_avx512_float_type_ops, kernel_avx512_legacy_type_ops, kernel_avx512_kquant_type_ops};
    if (v == KERNEL_VARIANT_AVX2)
        return *count = 1, avx2;
    if (v == KERNEL_VARIANT_AVX512)
        return *count = 3, avx512;
#endif
    *count = v == KERNEL_VARIANT_REF ? 1 : 0;
    return ref;
}

const kernel_type_ops *kernel_variant_type_ops(kernel_variant v, uint32_t weight_type,
                                               bool own_only)
{
    if (!kernel_supports(weight_type))
        return NULL;
    for (int k = (int)v; k >= 0; k--) {
        int count;
        const kernel_type_ops *const *tables = variant_tables((kernel_variant)k, &count);
        for (int i = 0; i < count; i++) {
            if (tables[i][weight_type].product.strip)
                return &tables[i][weight_type];
        }
        if (own_only)
            return NULL;
    }
    return NULL;
}

const kernel_float_ops *kernel_variant_float_ops(kernel_variant v)
{
#if defined(__x86_64__)
    if (v == KERNEL_VARIANT_AVX512)
        return &kernel_avx512_float_ops;
    if (v == KERNEL_VARIANT_AVX2)
        return &kernel_avx2_float_ops;
#endif
    (void)v;
    return &ref_float_ops;
}

const char *kernel_variant_name(void) { return kernel_variant_label(kernel_variant_active()); }

void kernel_strip_dots(const kernel_strip *s)
{
    assert(s->product->chunk == 0 && !s->prepared);
    kernel_dot_fn dot = s->ops->dot;
    kernel_dot_x4_fn dot_x4 = s->product->dot_x4;
    if (s->n_act == 1) { // decoding: one dot a row, nothing to gather
        for (int64_t r = 0; r < s->rows; r++)
            s->y[r] = dot(s->w + (size_t)r * s->w_stride, s->act, s->len);
        return;
    }
    if (dot_x4 && s->n_act == 4) { // a whole tile: the four sums of a row in one pass
        float *y = s->y;
        int64_t ldy = s->ldy;
        for (int64_t r = 0; r < s->rows; r++) {
            float out[4];
            dot_x4(s->w + (size_t)r * s->w_stride, s->act, s->act_stride, s->len, out);
            y[r] = out[0], y[ldy + r] = out[1], y[2 * ldy + r] = out[2], y[3 * ldy + r] = out[3];
        }
        return;
    }
    for (int64_t r = 0; r < s->rows; r++) {
        const uint8_t *row = s->w + (size_t)r * s->w_stride;
        for (int k = 0; k < s->n_act; k++)
            s->y[k * s->ldy + r] = dot(row, s->act + (size_t)k * s->act_stride, s->len);
    }
}

// Prepares chunks [c0, c0 + len) of the strip's activation rows (from the converted rows at
// act, act_bytes apart) into prep: chunk j's row k at prep + (j * n_act + k) * prep_stride.
static void prepare_tile(const kernel_product *product, uint32_t weight_type, const uint8_t *act,
                         size_t act_bytes, int64_t c0, int64_t chunk, kernel_strip *s,
                         uint8_t *prep)
{
    for (int64_t j = 0; j * chunk < s->len; j++) {
        int64_t from = c0 + j * chunk, left = s->len - j * chunk;
        int64_t len = left < chunk ? left : chunk;
        const uint8_t *a = act + kernel_act_row_size(weight_type, from);
        for (int k = 0; k < s->n_act; k++)
            product->prepare(a + (size_t)k * act_bytes, len,
                             prep + (size_t)(j * s->n_act + k) * product->prep_stride);
    }
    s->act = prep;
    s->act_stride = product->prep_stride;
    s->act_chunk_stride = (size_t)s->n_act * product->prep_stride;
}

// Prefetches into L2 values [c0, c0 + len) of the next tile's converted activation rows (up
// to tile_acts of the `left` rows at act, act_bytes apart) while the strip of this one runs:
// a panel's preparing read them from memory (the whole batch outgrows L2), and those loads
// took 4.5 % of a Q4_0 prompt's samples.
static void prefetch_tile(const uint8_t *act, size_t act_bytes, int64_t left, int tile_acts,
                          int64_t c0, int64_t len, uint32_t weight_type)
{
    size_t from = kernel_act_row_size(weight_type, c0);
    size_t bytes = kernel_act_row_size(weight_type, len);
    for (int64_t k = 0; k < left && k < tile_acts; k++) {
        const uint8_t *row = act + (size_t)k * act_bytes + from;
        for (size_t line = 0; line < bytes; line += 64)
            __builtin_prefetch(row + line, 0, 2);
    }
}

// The blocking loop: rows [r0, r1) of the product by `product` of ops (see kernel_product in
// variants.h).
static void product_run(const kernel_type_ops *ops, const kernel_product *product,
                        uint32_t weight_type, const void *w, int64_t n, int64_t r0, int64_t r1,
                        const void *act, int64_t n_act, float *y, int64_t ldy)
{
    uint8_t prep[KERNEL_PREP_BYTES] __attribute__((aligned(64)));
    assert(!product->prepare || (size_t)product->tile_acts * product->prep_stride <= sizeof prep);
    uint64_t w_bytes = 0, w_chunk = 0, offset = 0;
    tensor_row_size(weight_type, (uint64_t)n, &w_bytes);
    size_t act_bytes = kernel_act_row_size(weight_type, n);
    int64_t chunk = product->chunk ? product->chunk : n, rows = r1 - r0;
    tensor_row_size(weight_type, (uint64_t)chunk, &w_chunk);
    bool one_tile = n_act <= product->tile_acts;
    bool prepare = product->prepare && !(n_act == 1 && product->single_unprepared);
    // Chunks per strip: one, or with a single tile as many as fit.
    int64_t per_strip = one_tile ? (n + chunk - 1) / chunk : 1;
    if (one_tile && prepare) {
        int64_t fit = (int64_t)(sizeof prep / ((size_t)n_act * product->prep_stride));
        per_strip = per_strip < fit ? per_strip : fit;
    }
    kernel_strip s = {.ops = ops,
                      .product = product,
                      .w_stride = (size_t)w_bytes,
                      .w_chunk_stride = (size_t)w_chunk,
                      .tile_rows = n_act == 1 ? 1 : product->tile_rows,
                      .prepared = prepare,
                      .ldy = ldy};
    for (int64_t c0 = 0; c0 < n; c0 += per_strip * chunk) {
        s.len = n - c0 < per_strip * chunk ? n - c0 : per_strip * chunk;
        s.first = c0 == 0;
        tensor_row_size(weight_type, (uint64_t)c0, &offset);
        const uint8_t *wc = (const uint8_t *)w + (size_t)r0 * w_bytes + offset;
        int64_t panel = rows;
        if (!one_tile) {
            uint64_t len_bytes = 1;
            tensor_row_size(weight_type, (uint64_t)s.len, &len_bytes);
            panel = (int64_t)(KERNEL_PANEL_BYTES / len_bytes) / s.tile_rows * s.tile_rows;
            panel = panel < s.tile_rows ? s.tile_rows : panel;
        }
        for (int64_t p0 = 0; p0 < rows; p0 += panel) {
            s.w = wc + (size_t)p0 * w_bytes;
            s.rows = rows - p0 < panel ? rows - p0 : panel;
            for (int64_t b = 0; b < n_act; b += product->tile_acts) {
                const uint8_t *ab = (const uint8_t *)act + (size_t)b * act_bytes;
                s.n_act = (int)(n_act - b < product->tile_acts ? n_act - b : product->tile_acts);
                if (prepare) {
                    prepare_tile(product, weight_type, ab, act_bytes, c0, chunk, &s, prep);
                } else {
                    s.act = ab + kernel_act_row_size(weight_type, c0);
                    s.act_stride = act_bytes;
                    s.act_chunk_stride = kernel_act_row_size(weight_type, chunk);
                }
                s.y = y + b * ldy + r0 + p0;
                if (prepare)
                    prefetch_tile(ab + (size_t)product->tile_acts * act_bytes, act_bytes,
                                  n_act - b - s.n_act, product->tile_acts, c0, s.len, weight_type);
                product->strip(&s);
            }
        }
    }
}

float kernel_variant_dot(kernel_variant v, uint32_t weight_type, const void *w_row,
                         const void *act_row, int64_t n)
{
    const kernel_type_ops *ops = kernel_variant_type_ops(v, weight_type, false);
    if (ops->dot)
        return ops->dot(w_row, act_row, n);
    float out = 0.0f;
    product_run(ops, &ops->product, weight_type, w_row, n, 0, 1, act_row, 1, &out, 1);
    return out;
}

float kernel_dot(uint32_t weight_type, const void *w_row, const void *act_row, int64_t n)
{
    return kernel_variant_dot(kernel_variant_active(), weight_type, w_row, act_row, n);
}

void kernel_matmul_variant(kernel_variant v, uint32_t weight_type, bool packed, const void *w,
                           int64_t n, int64_t r0, int64_t r1, const void *act, int64_t n_act,
                           float *y, int64_t ldy)
{
    const kernel_type_ops *ops = kernel_variant_type_ops(v, weight_type, false);
    product_run(ops, packed ? &ops->packed : &ops->product, weight_type, w, n, r0, r1, act, n_act,
                y, ldy);
}

void kernel_matmul(uint32_t weight_type, const void *w, int64_t n, int64_t r0, int64_t r1,
                   const void *act, int64_t n_act, float *y, int64_t ldy)
{
    kernel_matmul_variant(kernel_variant_active(), weight_type, false, w, n, r0, r1, act, n_act, y,
                          ldy);
}

bool kernel_packs(uint32_t weight_type)
{
    const kernel_type_ops *ops = kernel_variant_type_ops(kernel_variant_active(), weight_type,
                                                         false);
    return ops && ops->pack;
}

void kernel_pack_rows(uint32_t weight_type, const void *src, void *dst, int64_t rows, int64_t n)
{
    const kernel_type_ops *ops = kernel_variant_type_ops(kernel_variant_active(), weight_type,
                                                         false);
    uint64_t w_bytes = 0;
    tensor_row_size(weight_type, (uint64_t)n, &w_bytes);
    for (int64_t r = 0; r < rows; r++)
        ops->pack((const uint8_t *)src + (size_t)r * w_bytes, (uint8_t *)dst + (size_t)r * w_bytes,
                  n);
}

void kernel_matmul_packed(uint32_t weight_type, const void *w, int64_t n, int64_t r0, int64_t r1,
                          const void *act, int64_t n_act, float *y, int64_t ldy)
{
    kernel_matmul_variant(kernel_variant_active(), weight_type, true, w, n, r0, r1, act, n_act, y,
                          ldy);
}

float kernel_dot_f32(const float *a, const float *b, int64_t n)
{
    return kernel_variant_float_ops(kernel_variant_active())->dot_f32(a, b, n);
}

float kernel_dot_f32_f16(const float *a, const uint16_t *b_half, int64_t n)
{
    return kernel_variant_float_ops(kernel_variant_active())->dot_f32_f16(a, b_half, n);
}

void kernel_axpy_f32(float *y, float a, const float *x, int64_t n)
{
    kernel_variant_float_ops(kernel_variant_active())->axpy_f32(y, a, x, n);
}

void kernel_axpy_f16(float *y, float a, const uint16_t *x_half, int64_t n)
{
    kernel_variant_float_ops(kernel_variant_active())->axpy_f16(y, a, x_half, n);
}

void kernel_dot_rows_f32(const float *q, int64_t q_stride, int64_t n_q, const float *rows,
                         int64_t pitch, int64_t n_rows, int64_t n, float scale, float *out,
                         int64_t out_stride)
{
    kernel_variant_float_ops(kernel_variant_active())
        ->dot_rows_f32(q, q_stride, n_q, rows, pitch, n_rows, n, scale, out, out_stride);
}

void kernel_dot_rows_q8_0(const void *q, size_t q_stride, int64_t n_q, const void *rows,
                          size_t pitch, int64_t n_rows, int64_t n, float scale, float *out,
                          int64_t out_stride)
{
    kernel_variant_float_ops(kernel_variant_active())
        ->dot_rows_q8_0(q, q_stride, n_q, rows, pitch, n_rows, n, scale, out, out_stride);
}

void kernel_axpy_rows_q8_0(float *y, int64_t y_stride, int64_t n_q, const float *w,
                           int64_t w_stride, const void *rows, size_t pitch, int64_t n_rows,
                           int64_t n)
{
    kernel_variant_float_ops(kernel_variant_active())
        ->axpy_rows_q8_0(y, y_stride, n_q, w, w_stride, rows, pitch, n_rows, n);
}

void kernel_axpy_rows_f32(float *y, int64_t y_stride, int64_t n_q, const float *w, int64_t w_stride,
                          const float *rows, int64_t pitch, int64_t n_rows, int64_t n)
{
    kernel_variant_float_ops(kernel_variant_active())
        ->axpy_rows_f32(y, y_stride, n_q, w, w_stride, rows, pitch, n_rows, n);
}

void kernel_dot_rows_f16(const float *q, int64_t q_stride, int64_t n_q, const uint16_t *rows,
                         int64_t pitch, int64_t n_rows, int64_t n, float scale, float *out,
                         int64_t out_stride)
{
    kernel_variant_float_ops(kernel_variant_active())
        ->dot_rows_f16(q, q_stride, n_q, rows, pitch, n_rows, n, scale, out, out_stride);
}

void kernel_axpy_rows_f16(float *y, int64_t y_stride, int64_t n_q, const float *w, int64_t w_stride,
                          const uint16_t *rows, int64_t pitch, int64_t n_rows, int64_t n)
{
    kernel_variant_float_ops(kernel_variant_active())
        ->axpy_rows_f16(y, y_stride, n_q, w, w_stride, rows, pitch, n_rows, n);
}

float kernel_max_f32(const float *x, int64_t n)
{
    return kernel_variant_float_ops(kernel_variant_active())->max_f32(x, n);
}

float kernel_exp_sum_f32(float *x, int64_t n, float max)
{
    return kernel_variant_float_ops(kernel_variant_active())->exp_sum_f32(x, n, max);
}

void kernel_swiglu_f32(float *gate, const float *up, int64_t n)
{
    kernel_variant_float_ops(kernel_variant_active())->swiglu_f32(gate, up, n);
}

static float gelu_f16_steps(float x)
{
    if (x <= -10.0f)
        return 0.0f;
    if (x >= 10.0f)
        return x;
    float h = tensor_f16_to_f32(tensor_f32_to_f16(x));
    float g = 0.5f * h *
        (1.0f + tanhf(0.79788456080286535587989211986876f * h * (1.0f + 0.044715f * h * h)));
    return tensor_f16_to_f32(tensor_f32_to_f16(g));
}

void kernel_geglu_f32(float *gate, const float *up, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        gate[i] = gelu_f16_steps(gate[i]) * up[i];
}

void kernel_gelu_f32(float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = gelu_f16_steps(x[i]);
}
