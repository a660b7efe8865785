// SPDX-License-Identifier: MIT
// The kernels' front door: which weight types have a dot product and which activation
// format each pairs with, the choice of variant (scalar, AVX2, AVX-512 VNNI) made once from
// cpuid, and the matrix product loop. A variant's kernel may take the whole product (gemm,
// doing its own cache blocking) or register tiles of several weight rows x several activation
// rows, which the loop here drives over panels of weight rows that stay in cache while every
// activation row streams past; otherwise the loop tiles weight rows while groups of four
// activation rows stream past them. Every weight byte comes from memory once per call.
// Rows packed at load into a variant's own layout go to the variant's packed product
// (kernel_matmul_packed).
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
};

static const kernel_type_ops ref_type_ops[TENSOR_TYPE_COUNT] = {
    [TENSOR_TYPE_F32] = {.dot = kernel_dot_f32_f32_ref},
    [TENSOR_TYPE_F16] = {.dot = kernel_dot_f16_f16_ref},
    [TENSOR_TYPE_BF16] = {.dot = kernel_dot_bf16_bf16_ref},
    [TENSOR_TYPE_Q4_0] = {.dot = kernel_dot_q4_0_q8_0_ref},
    [TENSOR_TYPE_Q4_1] = {.dot = kernel_dot_q4_1_q8_1_ref},
    [TENSOR_TYPE_Q5_0] = {.dot = kernel_dot_q5_0_q8_0_ref},
    [TENSOR_TYPE_Q5_1] = {.dot = kernel_dot_q5_1_q8_1_ref},
    [TENSOR_TYPE_Q8_0] = {.dot = kernel_dot_q8_0_q8_0_ref},
    [TENSOR_TYPE_Q2_K] = {.dot = kernel_dot_q2_k_q8_k_ref},
    [TENSOR_TYPE_Q3_K] = {.dot = kernel_dot_q3_k_q8_k_ref},
    [TENSOR_TYPE_Q4_K] = {.dot = kernel_dot_q4_k_q8_k_ref},
    [TENSOR_TYPE_Q5_K] = {.dot = kernel_dot_q5_k_q8_k_ref},
    [TENSOR_TYPE_Q6_K] = {.dot = kernel_dot_q6_k_q8_k_ref},
    [TENSOR_TYPE_IQ4_NL] = {.dot = kernel_dot_iq4_nl_q8_0_ref},
    [TENSOR_TYPE_IQ4_XS] = {.dot = kernel_dot_iq4_xs_q8_k_ref},
};

static const kernel_float_ops ref_float_ops = {
    .dot_f32 = kernel_dot_f32_ref,
    .dot_f32_f16 = kernel_dot_f32_f16_ref,
    .axpy_f32 = kernel_axpy_f32_ref,
    .dot_rows_f32 = kernel_dot_rows_f32_ref,
    .axpy_rows_f32 = kernel_axpy_rows_f32_ref,
    .axpy_f16 = kernel_axpy_f16_ref,
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

void kernel_act_convert_variant(kernel_variant v, uint32_t weight_type, const float *x,
                                void *dst, int64_t n)
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

// The table of variant v (NULL for a variant this build has no code for).
static const kernel_type_ops *variant_table(kernel_variant v)
{
    switch (v) {
    case KERNEL_VARIANT_REF: return ref_type_ops;
#if defined(__x86_64__)
    case KERNEL_VARIANT_AVX2: return kernel_avx2_type_ops;
    case KERNEL_VARIANT_AVX512: return kernel_avx512_type_ops;
#endif
    default: return NULL;
    }
}

const kernel_type_ops *kernel_variant_type_ops(kernel_variant v, uint32_t weight_type,
                                               bool own_only)
{
    if (!kernel_supports(weight_type))
        return NULL;
    for (int k = (int)v; k >= 0; k--) {
        const kernel_type_ops *table = variant_table((kernel_variant)k);
        if (table && table[weight_type].dot)
            return &table[weight_type];
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

const char *kernel_variant_name(void)
{
    return kernel_variant_label(kernel_variant_active());
}

float kernel_dot(uint32_t weight_type, const void *w_row, const void *act_row, int64_t n)
{
    const kernel_type_ops *ops = kernel_variant_type_ops(kernel_variant_active(), weight_type,
                                                         false);
    return ops->dot(w_row, act_row, n);
}

// Weight rows per tile: a tile of the widest rows (F32, a few thousand values) stays within
// the L2 cache while every activation group passes over it.
enum { ROW_TILE = 16, ACT_GROUP = 4 };

// Rows [r0, r1) of the product with activation rows [b0, b0 + 4), by the x4 kernel when the
// variant has one.
static void tile_group4(const kernel_type_ops *ops, const uint8_t *w, size_t w_bytes,
                        int64_t n, int64_t r0, int64_t r1, const uint8_t *act,
                        size_t act_bytes, int64_t b0, float *y, int64_t ldy)
{
    const uint8_t *a = act + (size_t)b0 * act_bytes;
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *row = w + (size_t)r * w_bytes;
        float out[ACT_GROUP];
        if (ops->dot_x4) {
            ops->dot_x4(row, a, act_bytes, n, out);
        } else {
            for (int k = 0; k < ACT_GROUP; k++)
                out[k] = ops->dot(row, a + (size_t)k * act_bytes, n);
        }
        for (int k = 0; k < ACT_GROUP; k++)
            y[(b0 + k) * ldy + r] = out[k];
    }
}

// Bytes of weights per panel: a panel stays in the L2 cache while every activation row
// streams past it in tiles of ops->tile_acts rows.
enum { PANEL_BYTES = 256 << 10 };

// The product by the variant's register tiles: panels of weight rows, within a panel tiles
// of tile_acts activation rows, within those tiles of tile_rows weight rows (leftover rows
// one at a time).
static void matmul_tiled(const kernel_type_ops *ops, kernel_tile_fn tile, const uint8_t *w,
                         size_t w_bytes, int64_t n, int64_t r0, int64_t r1, const uint8_t *act,
                         size_t act_bytes, int64_t n_act, float *y, int64_t ldy)
{
    int64_t tr = n_act == 1 ? 1 : ops->tile_rows, tc = ops->tile_acts;
    int64_t panel = (int64_t)(PANEL_BYTES / (w_bytes ? w_bytes : 1)) / tr * tr;
    panel = panel < tr ? tr : panel;
    for (int64_t p0 = r0; p0 < r1; p0 += panel) {
        int64_t p1 = p0 + panel < r1 ? p0 + panel : r1;
        for (int64_t b = 0; b < n_act; b += tc) {
            int nc = (int)(n_act - b < tc ? n_act - b : tc);
            const uint8_t *a = act + (size_t)b * act_bytes;
            int64_t r = p0;
            for (; r + tr <= p1; r += tr)
                tile(w + (size_t)r * w_bytes, w_bytes, (int)tr, a, act_bytes, nc, n,
                          y + b * ldy + r, ldy);
            for (; r < p1; r++)
                tile(w + (size_t)r * w_bytes, w_bytes, 1, a, act_bytes, nc, n,
                          y + b * ldy + r, ldy);
        }
    }
}

// The product by the kernel that takes it whole (gemm), else by register tiles (tile), else
// by dots; kernel_matmul_variant passes the plain rows' kernels, kernel_matmul_packed the
// packed rows' gemm (packed layouts have no other kernel).
static void matmul_ops(const kernel_type_ops *ops, kernel_gemm_fn gemm, kernel_tile_fn tile,
                       uint32_t weight_type, const void *w, int64_t n, int64_t r0, int64_t r1,
                       const void *act, int64_t n_act, float *y, int64_t ldy)
{
    uint64_t w_bytes = 0;
    tensor_row_size(weight_type, (uint64_t)n, &w_bytes);
    size_t act_bytes = kernel_act_row_size(weight_type, n);
    const uint8_t *wb = w, *ab = act;
    if (gemm) {
        gemm(wb + (size_t)r0 * w_bytes, (size_t)w_bytes, r1 - r0, ab, act_bytes, n_act, n,
             y + r0, ldy);
        return;
    }
    if (tile) {
        matmul_tiled(ops, tile, wb, (size_t)w_bytes, n, r0, r1, ab, act_bytes, n_act, y, ldy);
        return;
    }
    if (n_act == 1) {
        for (int64_t r = r0; r < r1; r++)
            y[r] = ops->dot(wb + (size_t)r * w_bytes, act, n);
        return;
    }
    for (int64_t t0 = r0; t0 < r1; t0 += ROW_TILE) {
        int64_t t1 = t0 + ROW_TILE < r1 ? t0 + ROW_TILE : r1;
        int64_t b = 0;
        for (; b + ACT_GROUP <= n_act; b += ACT_GROUP)
            tile_group4(ops, wb, (size_t)w_bytes, n, t0, t1, ab, act_bytes, b, y, ldy);
        for (; b < n_act; b++) {
            for (int64_t r = t0; r < t1; r++)
                y[b * ldy + r] = ops->dot(wb + (size_t)r * w_bytes,
                                          ab + (size_t)b * act_bytes, n);
        }
    }
}

void kernel_matmul_variant(kernel_variant v, uint32_t weight_type, const void *w, int64_t n,
                           int64_t r0, int64_t r1, const void *act, int64_t n_act, float *y,
                           int64_t ldy)
{
    const kernel_type_ops *ops = kernel_variant_type_ops(v, weight_type, false);
    matmul_ops(ops, ops->gemm, ops->tile, weight_type, w, n, r0, r1, act, n_act, y, ldy);
}

void kernel_matmul(uint32_t weight_type, const void *w, int64_t n, int64_t r0, int64_t r1,
                   const void *act, int64_t n_act, float *y, int64_t ldy)
{
    kernel_matmul_variant(kernel_variant_active(), weight_type, w, n, r0, r1, act, n_act, y,
                          ldy);
}

bool kernel_packs(uint32_t weight_type)
{
    const kernel_type_ops *ops = kernel_variant_type_ops(kernel_variant_active(), weight_type,
                                                         false);
    return ops && ops->pack && ops->gemm_packed;
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
    const kernel_type_ops *ops = kernel_variant_type_ops(kernel_variant_active(), weight_type,
                                                         false);
    matmul_ops(ops, ops->gemm_packed, NULL, weight_type, w, n, r0, r1, act, n_act, y, ldy);
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

void kernel_axpy_rows_f32(float *y, int64_t y_stride, int64_t n_q, const float *w,
                          int64_t w_stride, const float *rows, int64_t pitch, int64_t n_rows,
                          int64_t n)
{
    kernel_variant_float_ops(kernel_variant_active())
        ->axpy_rows_f32(y, y_stride, n_q, w, w_stride, rows, pitch, n_rows, n);
}

float kernel_exp_sum_f32(float *x, int64_t n, float max)
{
    return kernel_variant_float_ops(kernel_variant_active())->exp_sum_f32(x, n, max);
}

void kernel_swiglu_f32(float *gate, const float *up, int64_t n)
{
    kernel_variant_float_ops(kernel_variant_active())->swiglu_f32(gate, up, n);
}
