// SPDX-License-Identifier: MIT
// Activation conversion: a row of floats to the format its weight type pairs with, done the
// way the reference CPU path does it so that products track the reference bit for bit where
// they can. Q8_0/Q8_1 scale each block of 32 by its largest magnitude (d = amax / 127,
// q = nearest-even(x * (127 / amax)), as the reference's x86 code does); Q8_K scales 256 values by the signed value of
// largest magnitude and rounds to nearest even; F16 and BF16 round to nearest even.
// Inputs must be finite, as activations are; like the reference, nothing here checks.
#include <math.h>
#include <string.h>

#include "kernels/variants.h"
#include "tensor/quants.h"

// The plain formats convert exactly as the weights' own quantizers do (tensor/).
void kernel_act_f32(const float *x, void *dst, int64_t n) { tensor_quantize_f32(x, dst, n); }

void kernel_act_f16_ref(const float *x, void *dst, int64_t n)
{
    tensor_quantize_f16_ref(x, dst, n);
}

void kernel_act_bf16(const float *x, void *dst, int64_t n) { tensor_quantize_bf16(x, dst, n); }

// Codes one block of 32: stores the half scale and the codes, returns the float scale (before
// rounding to half) and the sum of the codes through *sum.
static float code_block32(const float *x, uint16_t *d_half, int8_t *qs, int *sum)
{
    float amax = 0.0f;
    for (int j = 0; j < 32; j++)
        amax = fmaxf(amax, fabsf(x[j]));
    // As the reference's x86 path: id = 127 / amax (not 1 / d, which can differ by an ulp)
    // and rounding to nearest even (nearbyintf in the default rounding mode).
    float d = amax / 127.0f;
    float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    int total = 0;
    for (int j = 0; j < 32; j++) {
        qs[j] = (int8_t)nearbyintf(x[j] * id);
        total += qs[j];
    }
    *d_half = tensor_f32_to_f16(d);
    *sum = total;
    return d;
}

void kernel_act_q8_0_ref(const float *x, void *dst, int64_t n)
{
    block_q8_0 *out = dst;
    int sum;
    for (int64_t b = 0; b < n / QK8_0; b++)
        code_block32(x + b * QK8_0, &out[b].d, out[b].qs, &sum);
}

// As Q8_0, plus s = d * sum(q) with the unrounded float d, stored as half.
void kernel_act_q8_1_ref(const float *x, void *dst, int64_t n)
{
    block_q8_1 *out = dst;
    for (int64_t b = 0; b < n / QK8_1; b++) {
        int sum;
        float d = code_block32(x + b * QK8_1, &out[b].d, out[b].qs, &sum);
        out[b].s = tensor_f32_to_f16((float)sum * d);
    }
}

// Codes one super-block of 256: iscale = -127 / max with max the signed value of largest
// magnitude (the first on a tie), q = nearest(iscale * x) capped at 127, d = 1 / iscale.
static void code_block_k(const float *x, block_q8_k *out)
{
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < QK_K; j++) {
        if (fabsf(x[j]) > amax) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    }
    if (amax == 0.0f) {
        memset(out, 0, sizeof *out);
        return;
    }
    float iscale = -127.0f / max;
    for (int j = 0; j < QK_K; j++) {
        long q = lrintf(iscale * x[j]); // the default rounding mode: nearest, ties to even
        out->qs[j] = (int8_t)(q < 127 ? q : 127);
    }
    for (int s = 0; s < QK_K / 16; s++) {
        int sum = 0;
        for (int j = 16 * s; j < 16 * s + 16; j++)
            sum += out->qs[j];
        out->bsums[s] = (int16_t)sum;
    }
    out->d = 1.0f / iscale;
}

void kernel_act_q8_k_ref(const float *x, void *dst, int64_t n)
{
    block_q8_k *out = dst;
    for (int64_t b = 0; b < n / QK_K; b++)
        code_block_k(x + b * QK_K, &out[b]);
}
