// SPDX-License-Identifier: MIT
// The inside of the kernels module, shared by its files, its tests and its benchmark: the
// per-ISA variants of every dot product (scalar _ref, _avx2, _avx512), the tables that map a
// weight type to a variant's functions, and the activation converters. kernels.c picks one
// variant at run time; tests and benches call each variant directly through these tables.
// Code outside src/kernels, tests/kernels and bench/ uses kernels.h instead.
#ifndef GARLIC_KERNELS_VARIANTS_H
#define GARLIC_KERNELS_VARIANTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// The dot product of one weight row with one converted activation row (n values).
typedef float (*kernel_dot_fn)(const void *w_row, const void *act_row, int64_t n);

// Four dot products of one weight row with the activation rows at act, act + act_stride,
// act + 2 * act_stride and act + 3 * act_stride (bytes); the weights are unpacked once.
// Each out[k] equals what the same variant's single dot returns for that row.
typedef void (*kernel_dot_x4_fn)(const void *w_row, const void *act, size_t act_stride,
                                 int64_t n, float out[4]);

// A register tile of the matrix product: for r < nr and k < nc,
// y[k * ldy + r] = dot(w + r * w_stride, act + k * act_stride) over n values, with
// 1 <= nr <= tile_rows and 1 <= nc <= tile_acts (strides in bytes). Each weight block is
// unpacked once for all nc activation rows and each activation block once for all nr weight
// rows. Every output equals what the same variant's single dot returns, whatever the tile's
// shape, so a row's result does not depend on the batch it is computed in.
typedef void (*kernel_tile_fn)(const void *w, size_t w_stride, int nr, const void *act,
                               size_t act_stride, int nc, int64_t n, float *y, int64_t ldy);

// The whole matrix product of `rows` weight rows from w (w_stride bytes apart) with n_act
// activation rows: y[k * ldy + r] = dot(row r, act row k), each equal to the variant's dot.
// For kernels that organize their own cache blocking (e.g. rearranging activation rows once
// for many weight rows).
typedef void (*kernel_gemm_fn)(const void *w, size_t w_stride, int64_t rows, const void *act,
                               size_t act_stride, int64_t n_act, int64_t n, float *y,
                               int64_t ldy);

typedef struct kernel_type_ops {
    kernel_dot_fn dot;
    kernel_dot_x4_fn dot_x4; // NULL: four calls of dot
    kernel_tile_fn tile;     // NULL: the matrix product uses dot_x4 or dot
    int tile_rows, tile_acts;
    kernel_gemm_fn gemm;     // when set, the matrix product is this call
    // A layout of the type's rows of the variant's own, made once at load by pack (one row
    // of n values, the same bytes per row); gemm_packed computes the product over packed
    // rows and gives exactly what gemm gives over plain ones. pack NULL: the variant reads
    // plain rows.
    void (*pack)(const void *row, void *dst, int64_t n);
    kernel_gemm_fn gemm_packed;
} kernel_type_ops;

typedef struct kernel_float_ops {
    float (*dot_f32)(const float *a, const float *b, int64_t n);
    float (*dot_f32_f16)(const float *a, const uint16_t *b_half, int64_t n);
    void (*axpy_f32)(float *y, float a, const float *x, int64_t n);
    void (*axpy_f16)(float *y, float a, const uint16_t *x_half, int64_t n);
    void (*dot_rows_f32)(const float *q, int64_t q_stride, int64_t n_q, const float *rows,
                         int64_t pitch, int64_t n_rows, int64_t n, float scale, float *out,
                         int64_t out_stride);
    void (*axpy_rows_f32)(float *y, int64_t y_stride, int64_t n_q, const float *w,
                          int64_t w_stride, const float *rows, int64_t pitch, int64_t n_rows,
                          int64_t n);
    float (*exp_sum_f32)(float *x, int64_t n, float max);
    void (*swiglu_f32)(float *gate, const float *up, int64_t n);
} kernel_float_ops;

typedef enum kernel_variant {
    KERNEL_VARIANT_REF,
    KERNEL_VARIANT_AVX2,
    KERNEL_VARIANT_AVX512, // AVX-512 F/BW/DQ/VL plus VNNI
    KERNEL_VARIANT_COUNT
} kernel_variant;

// "scalar", "avx2" or "avx512_vnni".
const char *kernel_variant_label(kernel_variant v);

// True when this CPU (as capped by GARLIC_CPU) can run variant v.
bool kernel_variant_available(kernel_variant v);

// The best variant this CPU runs; chosen on first call, then fixed.
kernel_variant kernel_variant_active(void);

// Variant v's functions for weight_type. With own_only, NULL when v has no code of its own
// for the type; otherwise the next lower variant's functions stand in (ending at _ref, which
// has every supported type). NULL for unsupported types.
const kernel_type_ops *kernel_variant_type_ops(kernel_variant v, uint32_t weight_type,
                                               bool own_only);

// Variant v's float helpers (every variant has all four).
const kernel_float_ops *kernel_variant_float_ops(kernel_variant v);

// kernel_matmul with an explicit variant (v must be available).
void kernel_matmul_variant(kernel_variant v, uint32_t weight_type, const void *w, int64_t n,
                           int64_t r0, int64_t r1, const void *act, int64_t n_act, float *y,
                           int64_t ldy);

// Activation converters, one per activation format; n a multiple of its block. The scalar
// ones (act.c) are the truth; the AVX2 ones (act_avx2.c, x86-64 only) give the same bytes.
void kernel_act_f32(const float *x, void *dst, int64_t n);
void kernel_act_bf16(const float *x, void *dst, int64_t n);
void kernel_act_f16_ref(const float *x, void *dst, int64_t n);
void kernel_act_q8_0_ref(const float *x, void *dst, int64_t n);
void kernel_act_q8_1_ref(const float *x, void *dst, int64_t n);
void kernel_act_q8_k_ref(const float *x, void *dst, int64_t n);
void kernel_act_f16_avx2(const float *x, void *dst, int64_t n);
void kernel_act_q8_0_avx2(const float *x, void *dst, int64_t n);
void kernel_act_q8_1_avx2(const float *x, void *dst, int64_t n);
void kernel_act_q8_k_avx2(const float *x, void *dst, int64_t n);

// kernel_act_convert with the converters of variant v (v must be available; the AVX-512
// variant uses the AVX2 converters).
void kernel_act_convert_variant(kernel_variant v, uint32_t weight_type, const float *x,
                                void *dst, int64_t n);

// The scalar references (dot_ref.c): integer sums inside blocks, float across blocks
// (double for the plain float types).
float kernel_dot_f32_f32_ref(const void *w, const void *a, int64_t n);
float kernel_dot_f16_f16_ref(const void *w, const void *a, int64_t n);
float kernel_dot_bf16_bf16_ref(const void *w, const void *a, int64_t n);
float kernel_dot_q4_0_q8_0_ref(const void *w, const void *a, int64_t n);
float kernel_dot_q4_1_q8_1_ref(const void *w, const void *a, int64_t n);
float kernel_dot_q5_0_q8_0_ref(const void *w, const void *a, int64_t n);
float kernel_dot_q5_1_q8_1_ref(const void *w, const void *a, int64_t n);
float kernel_dot_q8_0_q8_0_ref(const void *w, const void *a, int64_t n);
float kernel_dot_q2_k_q8_k_ref(const void *w, const void *a, int64_t n);
float kernel_dot_q3_k_q8_k_ref(const void *w, const void *a, int64_t n);
float kernel_dot_q4_k_q8_k_ref(const void *w, const void *a, int64_t n);
float kernel_dot_q5_k_q8_k_ref(const void *w, const void *a, int64_t n);
float kernel_dot_q6_k_q8_k_ref(const void *w, const void *a, int64_t n);
float kernel_dot_iq4_nl_q8_0_ref(const void *w, const void *a, int64_t n);
float kernel_dot_iq4_xs_q8_k_ref(const void *w, const void *a, int64_t n);

float kernel_dot_f32_ref(const float *a, const float *b, int64_t n);
float kernel_dot_f32_f16_ref(const float *a, const uint16_t *b_half, int64_t n);
void kernel_axpy_f32_ref(float *y, float a, const float *x, int64_t n);
void kernel_dot_rows_f32_ref(const float *q, int64_t q_stride, int64_t n_q, const float *rows,
                             int64_t pitch, int64_t n_rows, int64_t n, float scale, float *out,
                             int64_t out_stride);
void kernel_axpy_rows_f32_ref(float *y, int64_t y_stride, int64_t n_q, const float *w,
                              int64_t w_stride, const float *rows, int64_t pitch,
                              int64_t n_rows, int64_t n);
float kernel_exp_sum_f32_ref(float *x, int64_t n, float max);
void kernel_swiglu_f32_ref(float *gate, const float *up, int64_t n);
void kernel_axpy_f16_ref(float *y, float a, const uint16_t *x_half, int64_t n);

// Per-ISA tables (dot_avx2.c, dot_avx512.c; x86-64 only): indexed by weight type, entries
// with a NULL dot where the file has no code for the type.
extern const kernel_type_ops kernel_avx2_type_ops[];
extern const kernel_float_ops kernel_avx2_float_ops;
extern const kernel_type_ops kernel_avx512_type_ops[];
extern const kernel_float_ops kernel_avx512_float_ops;

#endif
