// SPDX-License-Identifier: MIT
// The K-quant quantizers' kernels, internal to src/tensor. The sub-block search of quantize.c
// tries some fifty candidate scales per sub-block; a scoring kernel scores a batch of them in
// one pass over the values, one SIMD lane per candidate, each lane doing the float and double
// operations of the scalar reference (code_sse) in its value order, so that every score is the
// reference's bit for bit; a coding kernel then codes the values under the chosen scale. One
// set of kernels per instruction set: the scalar one in quantize.c, the others in
// quantize_avx2.c and quantize_avx512.c (compiled with their ISA's flags and called only when
// cpuid reports it).
#ifndef GARLIC_TENSOR_KQUANT_H
#define GARLIC_TENSOR_KQUANT_H

#include <stdbool.h>
#include <stdint.h>

enum { KQUANT_MAX_CANDIDATES = 32 };

// A batch of candidates for one sub-block, x ~ scale * q - min with q the integer codes
// lowest..highest, and their scores. Entries at and past count are neither read nor written.
typedef struct kquant_candidates {
    int count;                            // candidates in use, 0..KQUANT_MAX_CANDIDATES
    float scale[KQUANT_MAX_CANDIDATES];   // in
    float min[KQUANT_MAX_CANDIDATES];     // in
    float err[KQUANT_MAX_CANDIDATES];     // out: sum over i of (x[i] - (scale * q[i] - min))^2
    double sum_q[KQUANT_MAX_CANDIDATES];  // out when sums are asked for: sum of q[i]
    double sum_qq[KQUANT_MAX_CANDIDATES]; // ... sum of q[i]^2 (both exact integers)
    double sum_qx[KQUANT_MAX_CANDIDATES]; // ... sum of (double)q[i] * x[i], in value order
} kquant_candidates;

// Scores every candidate of c on x[0..n): each value is coded as the integer code nearest to
// (x[i] + min) / scale (0 where scale is 0), clamped to [lowest, highest] as round_clamp does,
// and the squared errors are summed in float in value order; with sums, also the code sums
// above. |lowest|, |highest| < 2^22.
typedef void (*kquant_score_fn)(const float *x, int n, int lowest, int highest,
                                kquant_candidates *c, bool sums);

// Codes x[0..n) (n a multiple of 16) under one scale and min as code_sse does: idx[i] is the
// code nearest to (x[i] + min) / scale (0 where scale is 0), clamped to [lowest, highest],
// minus lowest.
typedef void (*kquant_codes_fn)(const float *x, int n, int lowest, int highest, float scale,
                                float min, uint8_t *idx);

// The kernels of one instruction set.
typedef struct kquant_kernels {
    kquant_score_fn score;
    kquant_codes_fn codes;
} kquant_kernels;

extern const kquant_kernels tensor_kquant_scalar; // quantize.c
extern const kquant_kernels tensor_kquant_avx2;   // quantize_avx2.c, x86-64 only
extern const kquant_kernels tensor_kquant_avx512; // quantize_avx512.c, x86-64 only

#endif
