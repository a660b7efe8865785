// SPDX-License-Identifier: MIT
// The scalar reference dot products, the truth the SIMD variants are tested against. Each
// pairs a weight format with the activation format kernels.h names for it and works the way
// the block formats are meant to be used: inside a block the codes are multiplied and summed
// as integers (exact), the block's scales are applied once to that integer sum, and blocks
// are summed in float (in double for the plain float types, which have no blocks).
#include <math.h>

#include "kernels/variants.h"
#include "tensor/quants.h"

static inline float half(uint16_t h) { return tensor_f16_to_f32(h); }

float kernel_dot_f32_f32_ref(const void *w, const void *a, int64_t n)
{
    const float *x = w, *y = a;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++)
        sum += (double)x[i] * (double)y[i];
    return (float)sum;
}

float kernel_dot_f16_f16_ref(const void *w, const void *a, int64_t n)
{
    const uint16_t *x = w, *y = a;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++)
        sum += (double)half(x[i]) * (double)half(y[i]);
    return (float)sum;
}

float kernel_dot_bf16_bf16_ref(const void *w, const void *a, int64_t n)
{
    const uint16_t *x = w, *y = a;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++)
        sum += (double)tensor_bf16_to_f32(x[i]) * (double)tensor_bf16_to_f32(y[i]);
    return (float)sum;
}

// Value j (0..31) of 16 bytes of nibbles laid out as in Q4_0.
static inline int nibble32(const uint8_t *qs, int j)
{
    return j < 16 ? qs[j] & 0x0F : qs[j - 16] >> 4;
}

static inline uint32_t u32_le(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

// Value j of a Q5_0/Q5_1 block (0..31).
static inline int q5_value(const uint8_t *qs, const uint8_t *qh, int j)
{
    return nibble32(qs, j) | (int)(((u32_le(qh) >> j) & 1) << 4);
}

// sum (d_w * (q - 8)) * (d_a * a) = d_w * d_a * sum (q - 8) * a
float kernel_dot_q4_0_q8_0_ref(const void *w, const void *a, int64_t n)
{
    const block_q4_0 *x = w;
    const block_q8_0 *y = a;
    float sum = 0.0f;
    for (int64_t b = 0; b < n / QK4_0; b++) {
        int isum = 0;
        for (int j = 0; j < QK4_0; j++)
            isum += (nibble32(x[b].qs, j) - 8) * y[b].qs[j];
        sum += half(x[b].d) * half(y[b].d) * (float)isum;
    }
    return sum;
}

// sum (d_w * q + m) * (d_a * a) = d_w * d_a * sum q * a + m * s_a, with s_a = d_a * sum a.
float kernel_dot_q4_1_q8_1_ref(const void *w, const void *a, int64_t n)
{
    const block_q4_1 *x = w;
    const block_q8_1 *y = a;
    float sum = 0.0f;
    for (int64_t b = 0; b < n / QK4_1; b++) {
        int isum = 0;
        for (int j = 0; j < QK4_1; j++)
            isum += nibble32(x[b].qs, j) * y[b].qs[j];
        sum += half(x[b].d) * half(y[b].d) * (float)isum + half(x[b].m) * half(y[b].s);
    }
    return sum;
}

float kernel_dot_q5_0_q8_0_ref(const void *w, const void *a, int64_t n)
{
    const block_q5_0 *x = w;
    const block_q8_0 *y = a;
    float sum = 0.0f;
    for (int64_t b = 0; b < n / QK5_0; b++) {
        int isum = 0;
        for (int j = 0; j < QK5_0; j++)
            isum += (q5_value(x[b].qs, x[b].qh, j) - 16) * y[b].qs[j];
        sum += half(x[b].d) * half(y[b].d) * (float)isum;
    }
    return sum;
}

float kernel_dot_q5_1_q8_1_ref(const void *w, const void *a, int64_t n)
{
    const block_q5_1 *x = w;
    const block_q8_1 *y = a;
    float sum = 0.0f;
    for (int64_t b = 0; b < n / QK5_1; b++) {
        int isum = 0;
        for (int j = 0; j < QK5_1; j++)
            isum += q5_value(x[b].qs, x[b].qh, j) * y[b].qs[j];
        sum += half(x[b].d) * half(y[b].d) * (float)isum + half(x[b].m) * half(y[b].s);
    }
    return sum;
}

float kernel_dot_q8_0_q8_0_ref(const void *w, const void *a, int64_t n)
{
    const block_q8_0 *x = w;
    const block_q8_0 *y = a;
    float sum = 0.0f;
    for (int64_t b = 0; b < n / QK8_0; b++) {
        int isum = 0;
        for (int j = 0; j < QK8_0; j++)
            isum += x[b].qs[j] * y[b].qs[j];
        sum += half(x[b].d) * half(y[b].d) * (float)isum;
    }
    return sum;
}

float kernel_dot_iq4_nl_q8_0_ref(const void *w, const void *a, int64_t n)
{
    const block_iq4_nl *x = w;
    const block_q8_0 *y = a;
    float sum = 0.0f;
    for (int64_t b = 0; b < n / QK4_NL; b++) {
        int isum = 0;
        for (int j = 0; j < QK4_NL; j++)
            isum += tensor_iq4_nl_values[nibble32(x[b].qs, j)] * y[b].qs[j];
        sum += half(x[b].d) * half(y[b].d) * (float)isum;
    }
    return sum;
}

// x = scale(e) * values[q] (doubled E2M1 values, halved power-of-two scale).
float kernel_dot_mxfp4_q8_0_ref(const void *w, const void *a, int64_t n)
{
    const block_mxfp4 *x = w;
    const block_q8_0 *y = a;
    float sum = 0.0f;
    for (int64_t b = 0; b < n / QK_MXFP4; b++) {
        int isum = 0;
        for (int j = 0; j < QK_MXFP4; j++)
            isum += tensor_mxfp4_values[nibble32(x[b].qs, j)] * y[b].qs[j];
        sum += tensor_mxfp4_scale(x[b].e) * half(y[b].d) * (float)isum;
    }
    return sum;
}

// x = d * (q - z): Q4_0's sum with the block's own zero point z for Q4_0's fixed 8, so the
// integer sum of (q - z) * a stays exact (|q - z| <= 255).
float kernel_dot_q4_z_q8_0_ref(const void *w, const void *a, int64_t n)
{
    const block_q4_z *x = w;
    const block_q8_0 *y = a;
    float sum = 0.0f;
    for (int64_t b = 0; b < n / QK4_Z; b++) {
        int isum = 0;
        for (int j = 0; j < QK4_Z; j++)
            isum += (nibble32(x[b].qs, j) - x[b].z) * y[b].qs[j];
        sum += half(x[b].d) * half(y[b].d) * (float)isum;
    }
    return sum;
}

// x = d * e4m3(q) against float activations: each block's products (exact in double) summed
// in double and scaled by d once, blocks summed in double, as the plain float types. NaN
// codes make the result NaN.
float kernel_dot_f8_e4m3_f32_ref(const void *w, const void *a, int64_t n)
{
    const block_f8_e4m3 *x = w;
    const float *y = a;
    double sum = 0.0;
    for (int64_t b = 0; b < n / QK_F8; b++) {
        double block = 0.0;
        for (int j = 0; j < QK_F8; j++)
            block += (double)tensor_f8_e4m3_value(x[b].qs[j]) * (double)y[b * QK_F8 + j];
        sum += (double)x[b].d * block;
    }
    return (float)sum;
}

// Value i (0..255) of the 2-bit planes shared by Q2_K and Q3_K: bits 2j..2j+1 of
// qs[32h + l] for i = 128h + 32j + l.
static inline int crumb256(const uint8_t *qs, int i)
{
    int h = i / 128, j = (i % 128) / 32, l = i % 32;
    return (qs[32 * h + l] >> (2 * j)) & 3;
}

// Per sub-block of 16: x = d*sc * q - dmin*m. The m part only needs the activations' sums
// over each sub-block, which Q8_K carries (bsums).
float kernel_dot_q2_k_q8_k_ref(const void *w, const void *a, int64_t n)
{
    const block_q2_k *x = w;
    const block_q8_k *y = a;
    float sum = 0.0f;
    for (int64_t b = 0; b < n / QK_K; b++) {
        int isum = 0, msum = 0;
        for (int s = 0; s < QK_K / 16; s++) {
            int sub = 0;
            for (int i = 16 * s; i < 16 * s + 16; i++)
                sub += crumb256(x[b].qs, i) * y[b].qs[i];
            isum += (x[b].scales[s] & 0x0F) * sub;
            msum += (x[b].scales[s] >> 4) * y[b].bsums[s];
        }
        sum += y[b].d * (half(x[b].d) * (float)isum - half(x[b].dmin) * (float)msum);
    }
    return sum;
}

// Per sub-block of 16: x = d * (sc - 32) * (q - 4).
float kernel_dot_q3_k_q8_k_ref(const void *w, const void *a, int64_t n)
{
    const block_q3_k *x = w;
    const block_q8_k *y = a;
    float sum = 0.0f;
    for (int64_t b = 0; b < n / QK_K; b++) {
        int isum = 0;
        for (int s = 0; s < QK_K / 16; s++) {
            int sub = 0;
            for (int i = 16 * s; i < 16 * s + 16; i++) {
                int h = i / 128, j = (i % 128) / 32, l = i % 32;
                int high = (x[b].hmask[l] >> (4 * h + j)) & 1;
                sub += (crumb256(x[b].qs, i) + 4 * high - 4) * y[b].qs[i];
            }
            isum += (tensor_k3_scale(x[b].scales, s) - 32) * sub;
        }
        sum += y[b].d * half(x[b].d) * (float)isum;
    }
    return sum;
}

// Value i (0..255) of the nibbles of Q4_K/Q5_K: value 64c + l is the low nibble of
// qs[32c + l], value 64c + 32 + l its high nibble.
static inline int nibble256(const uint8_t *qs, int i)
{
    uint8_t byte = qs[32 * (i / 64) + i % 32];
    return (i % 64) < 32 ? byte & 0x0F : byte >> 4;
}

// Per sub-block of 32: x = d*sc * q - dmin*m (the m part through the bsums).
float kernel_dot_q4_k_q8_k_ref(const void *w, const void *a, int64_t n)
{
    const block_q4_k *x = w;
    const block_q8_k *y = a;
    float sum = 0.0f;
    for (int64_t b = 0; b < n / QK_K; b++) {
        int isum = 0, msum = 0;
        for (int s = 0; s < QK_K / 32; s++) {
            uint8_t sc, m;
            tensor_k4_scale_min(x[b].scales, s, &sc, &m);
            int sub = 0;
            for (int i = 32 * s; i < 32 * s + 32; i++)
                sub += nibble256(x[b].qs, i) * y[b].qs[i];
            isum += sc * sub;
            msum += m * (y[b].bsums[2 * s] + y[b].bsums[2 * s + 1]);
        }
        sum += y[b].d * (half(x[b].d) * (float)isum - half(x[b].dmin) * (float)msum);
    }
    return sum;
}

float kernel_dot_q5_k_q8_k_ref(const void *w, const void *a, int64_t n)
{
    const block_q5_k *x = w;
    const block_q8_k *y = a;
    float sum = 0.0f;
    for (int64_t b = 0; b < n / QK_K; b++) {
        int isum = 0, msum = 0;
        for (int s = 0; s < QK_K / 32; s++) {
            uint8_t sc, m;
            tensor_k4_scale_min(x[b].scales, s, &sc, &m);
            int sub = 0;
            for (int i = 32 * s; i < 32 * s + 32; i++) {
                int c = i / 64, upper = (i % 64) >= 32;
                int q = nibble256(x[b].qs, i) | (((x[b].qh[i % 32] >> (2 * c + upper)) & 1) << 4);
                sub += q * y[b].qs[i];
            }
            isum += sc * sub;
            msum += m * (y[b].bsums[2 * s] + y[b].bsums[2 * s + 1]);
        }
        sum += y[b].d * (half(x[b].d) * (float)isum - half(x[b].dmin) * (float)msum);
    }
    return sum;
}

// Value i (0..255) of a Q6_K block, 0..63 (see quants.h for the layout).
static inline int q6_value(const block_q6_k *blk, int i)
{
    int h = i / 128, k = (i % 128) / 32, l = i % 32;
    uint8_t byte = blk->ql[64 * h + 32 * (k & 1) + l];
    int low = k < 2 ? byte & 0x0F : byte >> 4;
    int high = (blk->qh[32 * h + l] >> (2 * k)) & 3;
    return low | (high << 4);
}

// Per sub-block of 16: x = d * sc * (q - 32).
float kernel_dot_q6_k_q8_k_ref(const void *w, const void *a, int64_t n)
{
    const block_q6_k *x = w;
    const block_q8_k *y = a;
    float sum = 0.0f;
    for (int64_t b = 0; b < n / QK_K; b++) {
        int isum = 0;
        for (int s = 0; s < QK_K / 16; s++) {
            int sub = 0;
            for (int i = 16 * s; i < 16 * s + 16; i++)
                sub += (q6_value(&x[b], i) - 32) * y[b].qs[i];
            isum += x[b].scales[s] * sub;
        }
        sum += y[b].d * half(x[b].d) * (float)isum;
    }
    return sum;
}

// Per sub-block of 32: x = d * (ls - 32) * grid[q].
float kernel_dot_iq4_xs_q8_k_ref(const void *w, const void *a, int64_t n)
{
    const block_iq4_xs *x = w;
    const block_q8_k *y = a;
    float sum = 0.0f;
    for (int64_t b = 0; b < n / QK_K; b++) {
        int isum = 0;
        for (int s = 0; s < QK_K / 32; s++) {
            int low = (x[b].scales_l[s / 2] >> (4 * (s % 2))) & 0x0F;
            int high = (x[b].scales_h >> (2 * s)) & 3;
            int sub = 0;
            for (int j = 0; j < 32; j++)
                sub += tensor_iq4_nl_values[nibble32(x[b].qs + 16 * s, j)] * y[b].qs[32 * s + j];
            isum += ((low | (high << 4)) - 32) * sub;
        }
        sum += y[b].d * half(x[b].d) * (float)isum;
    }
    return sum;
}

float kernel_dot_f32_ref(const float *a, const float *b, int64_t n)
{
    return kernel_dot_f32_f32_ref(a, b, n);
}

float kernel_dot_f32_f16_ref(const float *a, const uint16_t *b_half, int64_t n)
{
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++)
        sum += (double)a[i] * (double)half(b_half[i]);
    return (float)sum;
}

void kernel_axpy_f32_ref(float *y, float a, const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] += a * x[i];
}

void kernel_dot_rows_f32_ref(const float *q, int64_t q_stride, int64_t n_q, const float *rows,
                             int64_t pitch, int64_t n_rows, int64_t n, float scale, float *out,
                             int64_t out_stride)
{
    for (int64_t j = 0; j < n_q; j++)
        for (int64_t r = 0; r < n_rows; r++)
            out[j * out_stride + r] = scale *
                kernel_dot_f32_ref(q + j * q_stride, rows + r * pitch, n);
}

void kernel_dot_rows_q8_0_ref(const void *q, size_t q_stride, int64_t n_q, const void *rows,
                              size_t pitch, int64_t n_rows, int64_t n, float scale, float *out,
                              int64_t out_stride)
{
    for (int64_t j = 0; j < n_q; j++)
        for (int64_t r = 0; r < n_rows; r++)
            out[j * out_stride + r] = scale *
                kernel_dot_q8_0_q8_0_ref((const uint8_t *)rows + (size_t)r * pitch,
                                         (const uint8_t *)q + (size_t)j * q_stride, n);
}

void kernel_axpy_rows_q8_0_ref(float *y, int64_t y_stride, int64_t n_q, const float *w,
                               int64_t w_stride, const void *rows, size_t pitch, int64_t n_rows,
                               int64_t n)
{
    for (int64_t j = 0; j < n_q; j++)
        for (int64_t r = 0; r < n_rows; r++) {
            const block_q8_0 *blk = (const void *)((const uint8_t *)rows + (size_t)r * pitch);
            float *yj = y + j * y_stride;
            for (int64_t b = 0; b < n / QK8_0; b++) {
                float c = w[j * w_stride + r] * half(blk[b].d);
                for (int i = 0; i < QK8_0; i++)
                    yj[b * QK8_0 + i] = fmaf(c, (float)blk[b].qs[i], yj[b * QK8_0 + i]);
            }
        }
}

void kernel_axpy_rows_f32_ref(float *y, int64_t y_stride, int64_t n_q, const float *w,
                              int64_t w_stride, const float *rows, int64_t pitch, int64_t n_rows,
                              int64_t n)
{
    for (int64_t j = 0; j < n_q; j++)
        for (int64_t r = 0; r < n_rows; r++)
            kernel_axpy_f32_ref(y + j * y_stride, w[j * w_stride + r], rows + r * pitch, n);
}

// The F16 rows' twins: each value converted (exactly) where the float version reads it, so
// the results equal the float version's on the converted rows.
void kernel_dot_rows_f16_ref(const float *q, int64_t q_stride, int64_t n_q, const uint16_t *rows,
                             int64_t pitch, int64_t n_rows, int64_t n, float scale, float *out,
                             int64_t out_stride)
{
    for (int64_t j = 0; j < n_q; j++)
        for (int64_t r = 0; r < n_rows; r++)
            out[j * out_stride + r] = scale *
                kernel_dot_f32_f16_ref(q + j * q_stride, rows + r * pitch, n);
}

void kernel_axpy_rows_f16_ref(float *y, int64_t y_stride, int64_t n_q, const float *w,
                              int64_t w_stride, const uint16_t *rows, int64_t pitch, int64_t n_rows,
                              int64_t n)
{
    for (int64_t j = 0; j < n_q; j++)
        for (int64_t r = 0; r < n_rows; r++) {
            float a = w[j * w_stride + r], *yj = y + j * y_stride;
            const uint16_t *x = rows + r * pitch;
            for (int64_t i = 0; i < n; i++)
                yj[i] += a * half(x[i]);
        }
}

float kernel_max_f32_ref(const float *x, int64_t n)
{
    float max = -INFINITY;
    for (int64_t i = 0; i < n; i++)
        max = x[i] > max ? x[i] : max;
    return max;
}

float kernel_exp_sum_f32_ref(float *x, int64_t n, float max)
{
    double sum = 0;
    for (int64_t i = 0; i < n; i++) {
        x[i] = expf(x[i] - max);
        sum += x[i];
    }
    return (float)sum;
}

void kernel_swiglu_f32_ref(float *gate, const float *up, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        gate[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

void kernel_axpy_f16_ref(float *y, float a, const uint16_t *x_half, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] += a * half(x_half[i]);
}
