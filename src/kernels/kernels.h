// SPDX-License-Identifier: MIT
// Compute kernels for the forward pass: dot products and matrix products of every weight
// type with activations, plus the small float vector operations attention needs. Each
// weight type pairs with an activation format (as ggml does, so results track the
// reference): F32 weights with F32 activations, F16 with F16, BF16 with BF16, Q8_0 / Q4_0 /
// Q5_0 / IQ4_NL / MXFP4 with Q8_0, Q4_1 / Q5_1 with Q8_1, the K-quants and IQ4_XS with Q8_K;
// garlic's own types for Hugging Face weights: F8_E4M3 with F32, Q4_Z with Q8_0.
// Activations are converted once per matrix product (kernel_act_convert) and then reused
// for every weight row. Every kernel has a scalar reference (suffix _ref) that is the truth;
// AVX2 and AVX-512 (VNNI where it helps) variants live in *_avx2.c / *_avx512.c files and
// are chosen once at run time from cpuid. Kernels never allocate and never fail: callers
// pass valid types (kernel_supports) and sizes that are multiples of the block size.
#ifndef GARLIC_KERNELS_H
#define GARLIC_KERNELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// True when garlic has a dot product for weights of this tensor type.
bool kernel_supports(uint32_t weight_type);

// The tensor type activations are converted to for weights of weight_type.
uint32_t kernel_act_type(uint32_t weight_type);

// Bytes of one converted activation row of n values for weight_type (n a multiple of the
// weight type's block size).
size_t kernel_act_row_size(uint32_t weight_type, int64_t n);

// Converts one activation row of n floats to the format weight_type pairs with, exactly as
// the reference does it (e.g. Q8_0: d = amax / 127, q = round(x / d), d stored as half).
void kernel_act_convert(uint32_t weight_type, const float *x, void *dst, int64_t n);

// The dot product of one weight row (n values of weight_type) with one converted
// activation row.
float kernel_dot(uint32_t weight_type, const void *w_row, const void *act_row, int64_t n);

// Matrix product over rows [r0, r1) of a weight matrix w (rows of n values of weight_type,
// contiguous) and n_act converted activation rows (act, contiguous rows of
// kernel_act_row_size bytes): y[b * ldy + r] = dot(w row r, act row b). Threads split a
// product by calling this on disjoint row ranges.
void kernel_matmul(uint32_t weight_type, const void *w, int64_t n, int64_t r0, int64_t r1,
                   const void *act, int64_t n_act, float *y, int64_t ldy);

// Packed weights: the active variant may read rows of some types faster from a layout of
// its own, made once at load (the same bytes per row, so sizes and row offsets do not
// change). kernel_packs tells whether it has one for weight_type; kernel_pack_rows converts
// `rows` rows of n values from src to dst (src == dst allowed); kernel_matmul_packed is
// kernel_matmul over packed rows, with exactly the same results.
bool kernel_packs(uint32_t weight_type);
void kernel_pack_rows(uint32_t weight_type, const void *src, void *dst, int64_t rows, int64_t n);
void kernel_matmul_packed(uint32_t weight_type, const void *w, int64_t n, int64_t r0, int64_t r1,
                          const void *act, int64_t n_act, float *y, int64_t ldy);

// Float helpers for attention and norms (SIMD where the CPU has it).
float kernel_dot_f32(const float *a, const float *b, int64_t n);
float kernel_dot_f32_f16(const float *a, const uint16_t *b_half, int64_t n);
void kernel_axpy_f32(float *y, float a, const float *x, int64_t n);         // y += a * x
void kernel_axpy_f16(float *y, float a, const uint16_t *x_half, int64_t n); // y += a * x
// Attention over a block of rows (pitch floats apart) for n_q queries at once (a KV head's
// group of query heads): out[j * out_stride + r] = scale * (q_j . rows[r]) with q_j at
// q + j * q_stride, and y_j += sum_r w_j[r] * rows[r] with y_j at y + j * y_stride and w_j
// at w + j * w_stride (y_j kept in registers across the rows). Each query's result does
// not depend on n_q.
void kernel_dot_rows_f32(const float *q, int64_t q_stride, int64_t n_q, const float *rows,
                         int64_t pitch, int64_t n_rows, int64_t n, float scale, float *out,
                         int64_t out_stride);
void kernel_axpy_rows_f32(float *y, int64_t y_stride, int64_t n_q, const float *w, int64_t w_stride,
                          const float *rows, int64_t pitch, int64_t n_rows, int64_t n);
// The same over rows of F16 values (pitch values apart), converted as they are read: the
// results equal the float versions' on the converted rows exactly, in every variant.
void kernel_dot_rows_f16(const float *q, int64_t q_stride, int64_t n_q, const uint16_t *rows,
                         int64_t pitch, int64_t n_rows, int64_t n, float scale, float *out,
                         int64_t out_stride);
void kernel_axpy_rows_f16(float *y, int64_t y_stride, int64_t n_q, const float *w, int64_t w_stride,
                          const uint16_t *rows, int64_t pitch, int64_t n_rows, int64_t n);
// Attention scores over rows of a Q8_0 cache with the int8 product of Q8_0 blocks: n_q
// queries converted once to Q8_0 (kernel_act_convert(TENSOR_TYPE_Q8_0)), query j at
// q + j * q_stride bytes, and n_rows cache rows of n values (a multiple of 32) at rows +
// r * pitch bytes: out[j * out_stride + r] = scale * kernel_dot(TENSOR_TYPE_Q8_0, row r, q_j,
// n) as the scalar reference computes it (integer sums per block, scaled by both blocks'
// scales, added over the blocks in order), exactly, in every variant.
void kernel_dot_rows_q8_0(const void *q, size_t q_stride, int64_t n_q, const void *rows,
                          size_t pitch, int64_t n_rows, int64_t n, float scale, float *out,
                          int64_t out_stride);
// The weighted sum of Q8_0 value rows for n_q queries at once: y_j += sum_r w_j[r] * row r,
// with y_j at y + j * y_stride, w_j at w + j * w_stride and row r's n values (Q8_0 blocks,
// n a multiple of 32) at rows + r * pitch bytes. Each value is added as fmaf(w_j[r] * d,
// q, y) (d the block's scale, q the code), rows in order: the same in every variant.
void kernel_axpy_rows_q8_0(float *y, int64_t y_stride, int64_t n_q, const float *w,
                           int64_t w_stride, const void *rows, size_t pitch, int64_t n_rows,
                           int64_t n);
// The largest of x[0..n), -inf when n is 0 (NaN values are passed over).
float kernel_max_f32(const float *x, int64_t n);
// x[i] = exp(x[i] - max) for i < n; returns the sum of the results (softmax).
float kernel_exp_sum_f32(float *x, int64_t n, float max);
// gate[i] = silu(gate[i]) * up[i] = gate[i] / (1 + exp(-gate[i])) * up[i] (SwiGLU).
void kernel_swiglu_f32(float *gate, const float *up, int64_t n);
// gate[i] = gelu(gate[i]) * up[i] (GeGLU), GELU with the tanh approximation
// 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))) in ggml's F16 steps: x rounded to F16,
// its GELU rounded to F16 (ggml reads it from a table of every F16 value); x <= -10 gives 0
// and x >= 10 gives x. llama.cpp's Gemma logits carry these roundings. Scalar (no variants).
void kernel_geglu_f32(float *gate, const float *up, int64_t n);

// x[i] = gelu(x[i]) with the same F16 steps (BERT's ungated FFN).
void kernel_gelu_f32(float *x, int64_t n);

// The name of the variant in use ("avx512_vnni", "avx2", "scalar"), for logs and benches.
const char *kernel_variant_name(void);

#endif
