// SPDX-License-Identifier: MIT
// Quantizers: float to the packed GGUF blocks of quants.h. They aim for sound, simple
// results rather than llama-quantize's exact bytes: every scale is chosen, rounded to its
// stored precision (half float, 4/6/8-bit code) and only then are the values coded, each
// to the representable value nearest to it under the stored scales. Sub-block scales of
// the K-quants and IQ4 come from a small search that minimises squared error; for the
// K-quants it runs batched on the kernels of kquant.h, and the _ref quantizers, which run it
// one candidate at a time, are the truth those match byte for byte. Inputs must be finite;
// nothing here divides by zero, and an all-zero block codes as all zeros.
#include <assert.h>
#include <float.h>
#include <math.h>
#include <stdatomic.h>
#include <string.h>

#include "base/cpu.h"
#include "tensor/kquant.h"
#include "tensor/quants.h"
#include "tensor/types.h"

#define HALF_MAX 65504.0f

// v rounded to the nearest half float (saturating at +-65504), as a float.
static float half_round(float v)
{
    v = fminf(fmaxf(v, -HALF_MAX), HALF_MAX);
    return tensor_f16_to_f32(tensor_f32_to_f16(v));
}

// round(v), ties to even, clamped to [lo, hi] (|lo|, |hi| < 2^22); NaN gives lo. The same
// result as lrintf(fminf(fmaxf(v, lo), hi)) without the calls into libm that those are
// without -ffast-math (they took a third of the K-quants' time): adding and subtracting
// 1.5 * 2^23 leaves a float of magnitude below 2^22 rounded to an integer, ties to even.
static inline int round_clamp(float v, int lo, int hi)
{
    v = v > (float)lo ? v : (float)lo;
    v = v < (float)hi ? v : (float)hi;
    const float big = 12582912.0f; // 1.5 * 2^23; IEEE arithmetic keeps (v + big) - big
    return (int)((v + big) - big);
}

// The code of v in steps of d (d == 0 gives 0), clamped to [lo, hi].
static inline int scale_code(float v, float d, int lo, int hi)
{
    return d != 0.0f ? round_clamp(v / d, lo, hi) : round_clamp(0.0f, lo, hi);
}

// The value with the largest magnitude, sign kept (the first one on a tie).
static float signed_absmax(const float *x, int n)
{
    float best = 0.0f;
    for (int i = 0; i < n; i++)
        best = fabsf(x[i]) > fabsf(best) ? x[i] : best; // a select, not a hard-to-predict branch
    return best;
}

void tensor_quantize_f32(const float *src, void *dst, int64_t n)
{
    memcpy(dst, src, (size_t)n * sizeof(float));
}

void tensor_quantize_f16_ref(const float *src, void *dst, int64_t n)
{
    uint16_t *h = dst;
    for (int64_t i = 0; i < n; i++)
        h[i] = tensor_f32_to_f16(src[i]);
}

void tensor_quantize_bf16(const float *src, void *dst, int64_t n)
{
    uint16_t *h = dst;
    for (int64_t i = 0; i < n; i++)
        h[i] = tensor_f32_to_bf16(src[i]);
}

// Legacy symmetric types (Q4_0, Q5_0): the value of largest magnitude maps to the most
// negative code `lowest`, so d = max / lowest (with max's sign) uses the whole range;
// q = round(x / d) + offset, clamped to [0, 2 * offset - 1]. Returns the stored d.
static float code_symmetric32(const float *x, int offset, uint8_t *q)
{
    float d = half_round(signed_absmax(x, 32) / (float)-offset);
    for (int j = 0; j < 32; j++)
        q[j] = (uint8_t)(scale_code(x[j], d, -offset, offset - 1) + offset);
    return d;
}

// Legacy offset types (Q4_1, Q5_1): x = d * q + m with m the block's minimum and
// q in 0..levels. The stored (half) m and d are used to code the values.
static void code_offset32(const float *x, int levels, uint8_t *q, float *d_out, float *m_out)
{
    float lo = x[0], hi = x[0];
    for (int j = 1; j < 32; j++) {
        lo = fminf(lo, x[j]);
        hi = fmaxf(hi, x[j]);
    }
    float m = half_round(lo);
    float d = half_round(fmaxf(hi - m, 0.0f) / (float)levels);
    for (int j = 0; j < 32; j++)
        q[j] = (uint8_t)scale_code(x[j] - m, d, 0, levels);
    *d_out = d;
    *m_out = m;
}

// Packs 32 4-bit codes as the legacy types do: value j low nibble, value j+16 high.
static void pack_nibbles32(const uint8_t *q, uint8_t *qs)
{
    for (int j = 0; j < 16; j++)
        qs[j] = (uint8_t)((q[j] & 0x0F) | ((q[j + 16] & 0x0F) << 4));
}

// Packs the fifth bits of 32 codes into a little-endian u32 (bit j = value j).
static void pack_fifth_bits32(const uint8_t *q, uint8_t *qh)
{
    uint32_t bits = 0;
    for (int j = 0; j < 32; j++)
        bits |= (uint32_t)((q[j] >> 4) & 1) << j;
    for (int k = 0; k < 4; k++)
        qh[k] = (uint8_t)(bits >> (8 * k));
}

void tensor_quantize_q4_0(const float *src, void *dst, int64_t n)
{
    block_q4_0 *blocks = dst;
    for (int64_t b = 0; b < n / QK4_0; b++, src += QK4_0) {
        uint8_t q[QK4_0];
        blocks[b].d = tensor_f32_to_f16(code_symmetric32(src, 8, q));
        pack_nibbles32(q, blocks[b].qs);
    }
}

void tensor_quantize_q5_0(const float *src, void *dst, int64_t n)
{
    block_q5_0 *blocks = dst;
    for (int64_t b = 0; b < n / QK5_0; b++, src += QK5_0) {
        uint8_t q[QK5_0];
        blocks[b].d = tensor_f32_to_f16(code_symmetric32(src, 16, q));
        pack_nibbles32(q, blocks[b].qs);
        pack_fifth_bits32(q, blocks[b].qh);
    }
}

void tensor_quantize_q4_1(const float *src, void *dst, int64_t n)
{
    block_q4_1 *blocks = dst;
    for (int64_t b = 0; b < n / QK4_1; b++, src += QK4_1) {
        uint8_t q[QK4_1];
        float d, m;
        code_offset32(src, 15, q, &d, &m);
        blocks[b].d = tensor_f32_to_f16(d);
        blocks[b].m = tensor_f32_to_f16(m);
        pack_nibbles32(q, blocks[b].qs);
    }
}

void tensor_quantize_q5_1(const float *src, void *dst, int64_t n)
{
    block_q5_1 *blocks = dst;
    for (int64_t b = 0; b < n / QK5_1; b++, src += QK5_1) {
        uint8_t q[QK5_1];
        float d, m;
        code_offset32(src, 31, q, &d, &m);
        blocks[b].d = tensor_f32_to_f16(d);
        blocks[b].m = tensor_f32_to_f16(m);
        pack_nibbles32(q, blocks[b].qs);
        pack_fifth_bits32(q, blocks[b].qh);
    }
}

// x = d * q, d = max|x| / 127 rounded to half, q in -127..127; returns the sum of q.
static int code_q8_32(const float *x, uint16_t *d_out, int8_t *qs)
{
    float d = half_round(fabsf(signed_absmax(x, 32)) / 127.0f);
    int sum = 0;
    for (int j = 0; j < 32; j++) {
        qs[j] = (int8_t)scale_code(x[j], d, -127, 127);
        sum += qs[j];
    }
    *d_out = tensor_f32_to_f16(d);
    return sum;
}

void tensor_quantize_q8_0(const float *src, void *dst, int64_t n)
{
    block_q8_0 *blocks = dst;
    for (int64_t b = 0; b < n / QK8_0; b++, src += QK8_0)
        code_q8_32(src, &blocks[b].d, blocks[b].qs);
}

void tensor_quantize_q8_1(const float *src, void *dst, int64_t n)
{
    block_q8_1 *blocks = dst;
    for (int64_t b = 0; b < n / QK8_1; b++, src += QK8_1) {
        int sum = code_q8_32(src, &blocks[b].d, blocks[b].qs);
        blocks[b].s = tensor_f32_to_f16(tensor_f16_to_f32(blocks[b].d) * (float)sum);
    }
}

// Q8_K keeps a float scale: d = max|x| / 127, q in -127..127, bsums per 16 values.
void tensor_quantize_q8_k(const float *src, void *dst, int64_t n)
{
    block_q8_k *blocks = dst;
    for (int64_t b = 0; b < n / QK_K; b++, src += QK_K) {
        float d = fabsf(signed_absmax(src, QK_K)) / 127.0f;
        blocks[b].d = d;
        for (int s = 0; s < QK_K / 16; s++) {
            int sum = 0;
            for (int j = 16 * s; j < 16 * s + 16; j++) {
                blocks[b].qs[j] = (int8_t)scale_code(src[j], d, -127, 127);
                sum += blocks[b].qs[j];
            }
            blocks[b].bsums[s] = (int16_t)sum;
        }
    }
}

// ---- Sub-block fitting shared by the K-quants and IQ4 ----

// The codes a sub-block's values may take: index i stands for the integer `lowest + i`,
// or for values[i] when the grid is non-uniform (values sorted ascending).
typedef struct code_grid {
    int lowest;
    int count;
    const int8_t *values; // NULL for a uniform grid
} code_grid;

static inline int grid_value(const code_grid *g, int i)
{
    return g->values ? g->values[i] : g->lowest + i;
}

// The index of the grid value nearest to t.
static int grid_nearest(const code_grid *g, float t)
{
    if (!g->values)
        return round_clamp(t, g->lowest, g->lowest + g->count - 1) - g->lowest;
    int lo = 0, hi = g->count - 1; // find the first value >= t
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if ((float)g->values[mid] < t)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo > 0 && t - (float)g->values[lo - 1] <= (float)g->values[lo] - t)
        lo--;
    return lo;
}

// Codes x[0..n) as scale * grid - min, each value to its nearest code; writes the code
// indices to idx when it is not NULL and returns the squared error. The products are
// formed in float exactly as the dequantizers form them.
static float code_sse(const float *x, int n, const code_grid *g, float scale, float min,
                      uint8_t *idx)
{
    float err = 0.0f;
    for (int i = 0; i < n; i++) {
        int k = grid_nearest(g, scale != 0.0f ? (x[i] + min) / scale : 0.0f);
        float e = x[i] - (scale * (float)grid_value(g, k) - min);
        err += e * e;
        if (idx)
            idx[i] = (uint8_t)k;
    }
    return err;
}

// code_sse without the codes, for a candidate that only matters if its error is below
// bound: stops as soon as the running sum reaches bound (the sum of squares never shrinks),
// returning a value >= bound. Callers compare `err < bound`, so they choose what a full
// sum would make them choose; most candidates of the searches are dropped early.
static float code_sse_below(const float *x, int n, const code_grid *g, float scale, float min,
                            float bound)
{
    float err = 0.0f;
    for (int i = 0; i < n && err < bound; i++) {
        int k = grid_nearest(g, scale != 0.0f ? (x[i] + min) / scale : 0.0f);
        float e = x[i] - (scale * (float)grid_value(g, k) - min);
        err += e * e;
    }
    return err;
}

// The factors tried on the min/max scale: 0.6 .. 1.2 in steps of 0.025, 1.0 exactly.
enum { SEARCH_STEPS = 25 };
static inline float search_factor(int k) { return (float)(24 + k) / 40.0f; }

// search_factor(k) for every k, folded by the compiler (its float division rounds as the
// run-time one does), for the batched search, which would otherwise divide 25 times a
// sub-block.
static const float search_factors[SEARCH_STEPS] = {
    24 / 40.0f, 25 / 40.0f, 26 / 40.0f, 27 / 40.0f, 28 / 40.0f, 29 / 40.0f, 30 / 40.0f,
    31 / 40.0f, 32 / 40.0f, 33 / 40.0f, 34 / 40.0f, 35 / 40.0f, 36 / 40.0f, 37 / 40.0f,
    38 / 40.0f, 39 / 40.0f, 40 / 40.0f, 41 / 40.0f, 42 / 40.0f, 43 / 40.0f, 44 / 40.0f,
    45 / 40.0f, 46 / 40.0f, 47 / 40.0f, 48 / 40.0f,
};

// Best scale >= 0 and min >= 0 for x ~ scale * q - min, q in 0..nmax (a uniform grid with
// lowest 0). Tries shrunken min/max ranges, each refitted by least squares.
static void fit_affine(const float *x, int n, const code_grid *g, float *scale, float *min)
{
    float lo = 0.0f, hi = x[0];
    for (int i = 0; i < n; i++) {
        lo = fminf(lo, x[i]);
        hi = fmaxf(hi, x[i]);
    }
    *scale = 0.0f;
    *min = -lo;
    if (hi <= lo)
        return;
    float best = code_sse(x, n, g, *scale, *min, NULL);
    int nmax = g->count - 1;
    for (int k = 0; k < SEARCH_STEPS; k++) {
        float s = (hi - lo) / (float)nmax * search_factor(k);
        uint8_t q[32];
        float err = code_sse(x, n, g, s, -lo, q);
        if (err < best) {
            best = err;
            *scale = s;
            *min = -lo;
        }
        // Least squares for x ~ a * q + b with b <= 0 (so min = -b >= 0) and a > 0.
        double sq = 0, sqq = 0, sx = 0, sqx = 0;
        for (int i = 0; i < n; i++) {
            sq += q[i];
            sqq += (double)q[i] * q[i];
            sx += x[i];
            sqx += (double)q[i] * x[i];
        }
        double det = n * sqq - sq * sq;
        double a = 0, b = 0;
        if (det > 0) {
            a = (n * sqx - sq * sx) / det;
            b = (sx - a * sq) / n;
        }
        if ((det <= 0 || b > 0) && sqq > 0) { // all codes equal, or a negative min
            b = 0;
            a = sqx / sqq;
        }
        if (a <= 0)
            continue;
        err = code_sse_below(x, n, g, (float)a, (float)-b, best);
        if (err < best) {
            best = err;
            *scale = (float)a;
            *min = (float)-b;
        }
    }
}

// Best signed scale for x ~ scale * grid (min 0). Starts from mapping the value of
// largest magnitude onto grid value 0 (the most negative, which is also the largest in
// magnitude for every grid used here), then tries shrunken ranges with a least-squares
// refit of each.
static float fit_symmetric(const float *x, int n, const code_grid *g)
{
    float edge = signed_absmax(x, n) / (float)grid_value(g, 0);
    if (edge == 0.0f)
        return 0.0f;
    float best_scale = edge;
    float best = code_sse(x, n, g, edge, 0.0f, NULL);
    for (int k = 0; k < SEARCH_STEPS; k++) {
        float s = edge * search_factor(k);
        uint8_t q[32];
        float err = code_sse(x, n, g, s, 0.0f, q);
        if (err < best) {
            best = err;
            best_scale = s;
        }
        double sgx = 0, sgg = 0;
        for (int i = 0; i < n; i++) {
            double v = grid_value(g, q[i]);
            sgx += v * x[i];
            sgg += v * v;
        }
        if (sgg <= 0)
            continue;
        float refit = (float)(sgx / sgg);
        err = code_sse_below(x, n, g, refit, 0.0f, best);
        if (err < best) {
            best = err;
            best_scale = refit;
        }
    }
    return best_scale;
}

// ---- The same fits, scored a batch of candidates at a time ----
//
// fit_affine and fit_symmetric try the candidates one after another and stop a candidate's
// sum as soon as it cannot win. The batched fits reach the same choices in three steps: a
// kernel (kquant.h) scores the start and the shrunken ranges together, with the sums of their
// codes; the least-squares refits are formed from those sums by the reference's expressions
// and scored together; then the reference's comparisons run in its order over the scores.
// Every score is the full sum where the reference may have stopped early, and that never
// changes a choice: a float sum of squares only grows, so a sum stopped at the bound (or at a
// NaN) is not below the bound, and neither is the full one. Equal scores and comparisons give
// equal choices, so the bytes are the reference's.

// fit_affine's range: lo = fminf over 0 and x[0..n), hi = fmaxf over x, as its loop leaves
// them. Plain comparisons (no calls into libm) give the same values whenever lo ends below 0
// and x[0] is a number: fminf and fmaxf differ from them only on NaN and on zeros of both
// signs, and the sign of a zero hi is never seen when lo < 0 (hi <= lo and hi - lo do not
// depend on it). Otherwise the libm loop runs.
static void affine_range(const float *x, int n, float *lo_out, float *hi_out)
{
    float lo = 0.0f, hi = x[0];
    for (int i = 0; i < n; i++) {
        lo = x[i] < lo ? x[i] : lo;
        hi = x[i] > hi ? x[i] : hi;
    }
    if (!(lo < 0.0f) || hi != hi) {
        lo = 0.0f;
        hi = x[0];
        for (int i = 0; i < n; i++) {
            lo = fminf(lo, x[i]);
            hi = fmaxf(hi, x[i]);
        }
    }
    *lo_out = lo;
    *hi_out = hi;
}

static bool same_bits(const void *a, const void *b, size_t size) { return memcmp(a, b, size) == 0; }

// fit_affine's choice for a uniform grid 0..nmax, with the candidates scored by `score`.
// Ranges whose codes have the sums of the previous one's get its refit without computing it
// again (the refit is a function of the sums), and a refit equal to the last one to be scored,
// bit for bit, shares its score.
static void fit_affine_batched(kquant_score_fn score, const float *x, int n, int nmax, float *scale,
                               float *min)
{
    float lo, hi;
    affine_range(x, n, &lo, &hi);
    *scale = 0.0f;
    *min = -lo;
    if (hi <= lo)
        return;
    // Candidate 0 is the start (scale 0), 1 + k the range shrunken by search_factor(k).
    kquant_candidates grid;
    grid.count = 1 + SEARCH_STEPS;
    grid.scale[0] = 0.0f;
    grid.min[0] = -lo;
    for (int k = 0; k < SEARCH_STEPS; k++) {
        grid.scale[1 + k] = (hi - lo) / (float)nmax * search_factors[k];
        grid.min[1 + k] = -lo;
    }
    score(x, n, 0, nmax, &grid, true);
    double sx = 0;
    for (int i = 0; i < n; i++)
        sx += x[i];
    // Each range's least-squares refit, as fit_affine forms it; refit_of[k] < 0 where none.
    kquant_candidates refit;
    refit.count = 0;
    int refit_of[SEARCH_STEPS];
    for (int k = 0; k < SEARCH_STEPS; k++) {
        double sq = grid.sum_q[1 + k], sqq = grid.sum_qq[1 + k], sqx = grid.sum_qx[1 + k];
        if (k > 0 && same_bits(&grid.sum_q[k], &sq, sizeof sq) &&
            same_bits(&grid.sum_qq[k], &sqq, sizeof sqq) &&
            same_bits(&grid.sum_qx[k], &sqx, sizeof sqx)) {
            refit_of[k] = refit_of[k - 1];
            continue;
        }
        double det = n * sqq - sq * sq;
        double a = 0, b = 0;
        if (det > 0) {
            a = (n * sqx - sq * sx) / det;
            b = (sx - a * sq) / n;
        }
        if ((det <= 0 || b > 0) && sqq > 0) {
            b = 0;
            a = sqx / sqq;
        }
        refit_of[k] = -1;
        if (a <= 0)
            continue;
        float rs = (float)a, rm = (float)-b;
        int last = refit.count - 1;
        if (last >= 0 && same_bits(&refit.scale[last], &rs, sizeof rs) &&
            same_bits(&refit.min[last], &rm, sizeof rm)) {
            refit_of[k] = last;
            continue;
        }
        refit_of[k] = refit.count;
        refit.scale[refit.count] = rs;
        refit.min[refit.count] = rm;
        refit.count++;
    }
    score(x, n, 0, nmax, &refit, false);
    float best = grid.err[0];
    for (int k = 0; k < SEARCH_STEPS; k++) {
        if (grid.err[1 + k] < best) {
            best = grid.err[1 + k];
            *scale = grid.scale[1 + k];
            *min = -lo;
        }
        int r = refit_of[k];
        if (r >= 0 && refit.err[r] < best) {
            best = refit.err[r];
            *scale = refit.scale[r];
            *min = refit.min[r];
        }
    }
}

// fit_symmetric's choice for the uniform grid lowest..highest (lowest < 0, the code of
// largest magnitude), with the candidates scored by `score`; refits are shared as in
// fit_affine_batched.
static float fit_symmetric_batched(kquant_score_fn score, const float *x, int n, int lowest,
                                   int highest)
{
    float edge = signed_absmax(x, n) / (float)lowest;
    if (edge == 0.0f)
        return 0.0f;
    // Candidate 0 is the edge, 1 + k the edge shrunken by search_factor(k).
    kquant_candidates grid;
    grid.count = 1 + SEARCH_STEPS;
    grid.scale[0] = edge;
    grid.min[0] = 0.0f;
    for (int k = 0; k < SEARCH_STEPS; k++) {
        grid.scale[1 + k] = edge * search_factors[k];
        grid.min[1 + k] = 0.0f;
    }
    score(x, n, lowest, highest, &grid, true);
    kquant_candidates refit;
    refit.count = 0;
    int refit_of[SEARCH_STEPS];
    for (int k = 0; k < SEARCH_STEPS; k++) {
        double sgx = grid.sum_qx[1 + k], sgg = grid.sum_qq[1 + k];
        if (k > 0 && same_bits(&grid.sum_qq[k], &sgg, sizeof sgg) &&
            same_bits(&grid.sum_qx[k], &sgx, sizeof sgx)) {
            refit_of[k] = refit_of[k - 1];
            continue;
        }
        refit_of[k] = -1;
        if (sgg <= 0)
            continue;
        float rs = (float)(sgx / sgg);
        int last = refit.count - 1;
        if (last >= 0 && same_bits(&refit.scale[last], &rs, sizeof rs)) {
            refit_of[k] = last;
            continue;
        }
        refit_of[k] = refit.count;
        refit.scale[refit.count] = rs;
        refit.min[refit.count] = 0.0f;
        refit.count++;
    }
    score(x, n, lowest, highest, &refit, false);
    float best_scale = edge, best = grid.err[0];
    for (int k = 0; k < SEARCH_STEPS; k++) {
        if (grid.err[1 + k] < best) {
            best = grid.err[1 + k];
            best_scale = grid.scale[1 + k];
        }
        int r = refit_of[k];
        if (r >= 0 && refit.err[r] < best) {
            best = refit.err[r];
            best_scale = refit.scale[r];
        }
    }
    return best_scale;
}

// The scalar kernels: code_sse's loop, one candidate after another.
static void score_scalar(const float *x, int n, int lowest, int highest, kquant_candidates *c,
                         bool sums)
{
    for (int j = 0; j < c->count; j++) {
        float scale = c->scale[j], min = c->min[j], err = 0.0f;
        double sq = 0, sqq = 0, sqx = 0;
        for (int i = 0; i < n; i++) {
            int q = round_clamp(scale != 0.0f ? (x[i] + min) / scale : 0.0f, lowest, highest);
            float e = x[i] - (scale * (float)q - min);
            err += e * e;
            sq += q;
            sqq += (double)q * q;
            sqx += (double)q * x[i];
        }
        c->err[j] = err;
        if (sums) {
            c->sum_q[j] = sq;
            c->sum_qq[j] = sqq;
            c->sum_qx[j] = sqx;
        }
    }
}

static void codes_scalar(const float *x, int n, int lowest, int highest, float scale, float min,
                         uint8_t *idx)
{
    for (int i = 0; i < n; i++) {
        float t = scale != 0.0f ? (x[i] + min) / scale : 0.0f;
        idx[i] = (uint8_t)(round_clamp(t, lowest, highest) - lowest);
    }
}

const kquant_kernels tensor_kquant_scalar = {score_scalar, codes_scalar};

// ---- K-quant super-blocks ----
//
// A super-block's search runs one of two ways: the reference's (kk NULL: fit_affine,
// fit_symmetric and code_sse, one candidate at a time) or batched (kk the kernels of one
// instruction set, kquant.h). Both make the same choices, so the _ref quantizers and the
// others write the same bytes.

// An offset K-quant (Q2_K, Q4_K, Q5_K): x = (d * sc) * q - (dmin * m) per sub-block, sc
// and m codes in 0..code_max.
typedef struct affine_spec {
    int sub_size;   // values per sub-block
    int code_max;   // largest sc / m code
    code_grid grid; // q in 0..grid.count-1
} affine_spec;

typedef struct affine_codes {
    float d, dmin;   // stored (half) super-block scales
    uint8_t sc[16];  // (QK_K / sub_size) scale codes
    uint8_t m[16];   // (QK_K / sub_size) min codes
    uint8_t q[QK_K]; // (256) value codes
} affine_codes;

// Picks sub-block s's (sc, m) codes among the ones next to its fitted scale and min,
// using the stored d and dmin, and codes its values.
static void affine_sub_codes(const kquant_kernels *kk, const float *x, const affine_spec *sp,
                             affine_codes *out, int s, float scale, float min)
{
    int sc0 = scale_code(scale, out->d, 0, sp->code_max);
    int m0 = scale_code(min, out->dmin, 0, sp->code_max);
    kquant_candidates c; // the (sc, m) pairs in range, in the order they are compared
    int sc_of[9], m_of[9];
    c.count = 0;
    for (int sc = sc0 - 1; sc <= sc0 + 1; sc++) {
        for (int m = m0 - 1; m <= m0 + 1; m++) {
            if (sc < 0 || sc > sp->code_max || m < 0 || m > sp->code_max)
                continue;
            sc_of[c.count] = sc;
            m_of[c.count] = m;
            c.scale[c.count] = out->d * (float)sc;
            c.min[c.count] = out->dmin * (float)m;
            c.count++;
        }
    }
    if (kk)
        kk->score(x, sp->sub_size, 0, sp->grid.count - 1, &c, false);
    int best_sc = sc0, best_m = m0;
    float best = INFINITY;
    for (int j = 0; j < c.count; j++) {
        float err = kk ? c.err[j]
                       : code_sse_below(x, sp->sub_size, &sp->grid, c.scale[j], c.min[j], best);
        if (err < best) {
            best = err;
            best_sc = sc_of[j];
            best_m = m_of[j];
        }
    }
    out->sc[s] = (uint8_t)best_sc;
    out->m[s] = (uint8_t)best_m;
    float d = out->d * (float)best_sc, dmin = out->dmin * (float)best_m;
    uint8_t *q = out->q + s * sp->sub_size;
    if (kk)
        kk->codes(x, sp->sub_size, 0, sp->grid.count - 1, d, dmin, q);
    else
        code_sse(x, sp->sub_size, &sp->grid, d, dmin, q);
}

// Fits each sub-block, then sets d and dmin so the largest scale and min take the top
// code, and codes everything under those stored values.
static void affine_superblock(const kquant_kernels *kk, const float *x, const affine_spec *sp,
                              affine_codes *out)
{
    int n_sub = QK_K / sp->sub_size;
    assert(sp->grid.lowest == 0 && !sp->grid.values); // codes are 0..count-1 themselves
    float scale[16] = {0}, min[16] = {0}, max_scale = 0.0f, max_min = 0.0f;
    for (int s = 0; s < n_sub; s++) {
        const float *xs = x + s * sp->sub_size;
        if (kk)
            fit_affine_batched(kk->score, xs, sp->sub_size, sp->grid.count - 1, &scale[s], &min[s]);
        else
            fit_affine(xs, sp->sub_size, &sp->grid, &scale[s], &min[s]);
        max_scale = fmaxf(max_scale, scale[s]);
        max_min = fmaxf(max_min, min[s]);
    }
    out->d = half_round(max_scale / (float)sp->code_max);
    out->dmin = half_round(max_min / (float)sp->code_max);
    for (int s = 0; s < n_sub; s++)
        affine_sub_codes(kk, x + s * sp->sub_size, sp, out, s, scale[s], min[s]);
}

// A signed-scale K-quant (Q3_K, Q6_K, IQ4_XS): x = (d * sc) * grid[q] per sub-block, sc
// codes in code_lo..code_hi. Only uniform grids are searched batched.
typedef struct symmetric_spec {
    int sub_size;
    int code_lo, code_hi;
    code_grid grid;
} symmetric_spec;

typedef struct symmetric_codes {
    float d;         // stored (half) super-block scale
    int sc[16];      // (QK_K / sub_size) scale codes
    uint8_t q[QK_K]; // (256) grid indices
} symmetric_codes;

static void symmetric_sub_codes(const kquant_kernels *kk, const float *x, const symmetric_spec *sp,
                                symmetric_codes *out, int s, float scale)
{
    int sc0 = scale_code(scale, out->d, sp->code_lo, sp->code_hi);
    kquant_candidates c; // the codes in range, in the order they are compared
    int sc_of[3];
    c.count = 0;
    for (int sc = sc0 - 1; sc <= sc0 + 1; sc++) {
        if (sc < sp->code_lo || sc > sp->code_hi)
            continue;
        sc_of[c.count] = sc;
        c.scale[c.count] = out->d * (float)sc;
        c.min[c.count] = 0.0f;
        c.count++;
    }
    const code_grid *g = &sp->grid;
    int highest = g->lowest + g->count - 1;
    if (kk)
        kk->score(x, sp->sub_size, g->lowest, highest, &c, false);
    int best_sc = sc0;
    float best = INFINITY;
    for (int j = 0; j < c.count; j++) {
        float err = kk ? c.err[j] : code_sse_below(x, sp->sub_size, g, c.scale[j], 0.0f, best);
        if (err < best) {
            best = err;
            best_sc = sc_of[j];
        }
    }
    out->sc[s] = best_sc;
    float d = out->d * (float)best_sc;
    uint8_t *q = out->q + s * sp->sub_size;
    if (kk)
        kk->codes(x, sp->sub_size, g->lowest, highest, d, 0.0f, q);
    else
        code_sse(x, sp->sub_size, g, d, 0.0f, q);
}

// Fits each sub-block's signed scale, maps the largest in magnitude onto code_lo (the
// code of largest magnitude) and codes everything under the stored d. kk must be NULL
// for a non-uniform grid.
static void symmetric_superblock(const kquant_kernels *kk, const float *x, const symmetric_spec *sp,
                                 symmetric_codes *out)
{
    int n_sub = QK_K / sp->sub_size;
    const code_grid *g = &sp->grid;
    assert(!kk || !g->values);
    float scale[16] = {0};
    for (int s = 0; s < n_sub; s++) {
        const float *xs = x + s * sp->sub_size;
        scale[s] = kk ? fit_symmetric_batched(kk->score, xs, sp->sub_size, g->lowest,
                                              g->lowest + g->count - 1)
                      : fit_symmetric(xs, sp->sub_size, g);
    }
    out->d = half_round(signed_absmax(scale, n_sub) / (float)sp->code_lo);
    for (int s = 0; s < n_sub; s++)
        symmetric_sub_codes(kk, x + s * sp->sub_size, sp, out, s, scale[s]);
}

static const affine_spec q2_k_spec = {16, 15, {0, 4, NULL}};
static const affine_spec q4_k_spec = {32, 63, {0, 16, NULL}};
static const affine_spec q5_k_spec = {32, 63, {0, 32, NULL}};
static const symmetric_spec q3_k_spec = {16, -32, 31, {-4, 8, NULL}};
static const symmetric_spec q6_k_spec = {16, -128, 127, {-32, 64, NULL}};

static void pack_q2_k(const affine_codes *c, block_q2_k *blk)
{
    memset(blk, 0, sizeof *blk);
    blk->d = tensor_f32_to_f16(c->d);
    blk->dmin = tensor_f32_to_f16(c->dmin);
    for (int s = 0; s < QK_K / 16; s++)
        blk->scales[s] = (uint8_t)(c->sc[s] | (c->m[s] << 4));
    for (int i = 0; i < QK_K; i++) {
        int h = i / 128, j = (i % 128) / 32, l = i % 32;
        blk->qs[32 * h + l] |= (uint8_t)(c->q[i] << (2 * j));
    }
}

static void quantize_q2_k(const kquant_kernels *kk, const float *src, void *dst, int64_t n)
{
    block_q2_k *blocks = dst;
    for (int64_t b = 0; b < n / QK_K; b++, src += QK_K) {
        affine_codes c;
        affine_superblock(kk, src, &q2_k_spec, &c);
        pack_q2_k(&c, &blocks[b]);
    }
}

// Packs sixteen 6-bit Q3_K scale codes (0..63) as quants.h describes.
static void pack_q3_k_scales(const int *sc, uint8_t *scales)
{
    for (int i = 0; i < 16; i++) {
        int code = sc[i] + 32;
        scales[i % 8] |= (uint8_t)((code & 0x0F) << (i < 8 ? 0 : 4));
        scales[8 + i % 4] |= (uint8_t)((code >> 4) << (2 * (i / 4)));
    }
}

static void pack_q3_k(const symmetric_codes *c, block_q3_k *blk)
{
    memset(blk, 0, sizeof *blk);
    blk->d = tensor_f32_to_f16(c->d);
    pack_q3_k_scales(c->sc, blk->scales);
    for (int i = 0; i < QK_K; i++) {
        int h = i / 128, j = (i % 128) / 32, l = i % 32;
        blk->qs[32 * h + l] |= (uint8_t)((c->q[i] & 3) << (2 * j));
        blk->hmask[l] |= (uint8_t)((c->q[i] >> 2) << (4 * h + j));
    }
}

static void quantize_q3_k(const kquant_kernels *kk, const float *src, void *dst, int64_t n)
{
    block_q3_k *blocks = dst;
    for (int64_t b = 0; b < n / QK_K; b++, src += QK_K) {
        symmetric_codes c;
        symmetric_superblock(kk, src, &q3_k_spec, &c);
        pack_q3_k(&c, &blocks[b]);
    }
}

// Packs eight (sc, m) 6-bit pairs the Q4_K/Q5_K way (see quants.h).
static void pack_k4_scales(const uint8_t *sc, const uint8_t *m, uint8_t *scales)
{
    for (int i = 0; i < 4; i++) {
        scales[i] = (uint8_t)(sc[i] | ((sc[i + 4] >> 4) << 6));
        scales[i + 4] = (uint8_t)(m[i] | ((m[i + 4] >> 4) << 6));
        scales[i + 8] = (uint8_t)((sc[i + 4] & 0x0F) | ((m[i + 4] & 0x0F) << 4));
    }
}

// Packs 256 4-bit codes the Q4_K/Q5_K way: value 64c + l low nibble of qs[32c + l],
// value 64c + 32 + l its high nibble.
static void pack_k4_nibbles(const uint8_t *q, uint8_t *qs)
{
    for (int c = 0; c < 4; c++) {
        for (int l = 0; l < 32; l++)
            qs[32 * c + l] = (uint8_t)((q[64 * c + l] & 0x0F) | ((q[64 * c + 32 + l] & 0x0F) << 4));
    }
}

static void quantize_q4_k(const kquant_kernels *kk, const float *src, void *dst, int64_t n)
{
    block_q4_k *blocks = dst;
    for (int64_t b = 0; b < n / QK_K; b++, src += QK_K) {
        affine_codes c;
        affine_superblock(kk, src, &q4_k_spec, &c);
        blocks[b].d = tensor_f32_to_f16(c.d);
        blocks[b].dmin = tensor_f32_to_f16(c.dmin);
        pack_k4_scales(c.sc, c.m, blocks[b].scales);
        pack_k4_nibbles(c.q, blocks[b].qs);
    }
}

static void quantize_q5_k(const kquant_kernels *kk, const float *src, void *dst, int64_t n)
{
    block_q5_k *blocks = dst;
    for (int64_t b = 0; b < n / QK_K; b++, src += QK_K) {
        affine_codes c;
        affine_superblock(kk, src, &q5_k_spec, &c);
        block_q5_k *blk = &blocks[b];
        blk->d = tensor_f32_to_f16(c.d);
        blk->dmin = tensor_f32_to_f16(c.dmin);
        pack_k4_scales(c.sc, c.m, blk->scales);
        pack_k4_nibbles(c.q, blk->qs);
        memset(blk->qh, 0, sizeof blk->qh);
        for (int i = 0; i < QK_K; i++) {
            int bit = 2 * (i / 64) + (i % 64 >= 32);
            blk->qh[i % 32] |= (uint8_t)((c.q[i] >> 4) << bit);
        }
    }
}

static void pack_q6_k(const symmetric_codes *c, block_q6_k *blk)
{
    memset(blk, 0, sizeof *blk);
    blk->d = tensor_f32_to_f16(c->d);
    for (int s = 0; s < QK_K / 16; s++)
        blk->scales[s] = (int8_t)c->sc[s];
    for (int i = 0; i < QK_K; i++) {
        int h = i / 128, k = (i % 128) / 32, l = i % 32;
        int shift = k < 2 ? 0 : 4; // values l, l+32 low nibbles; l+64, l+96 high
        blk->ql[64 * h + 32 * (k & 1) + l] |= (uint8_t)((c->q[i] & 0x0F) << shift);
        blk->qh[32 * h + l] |= (uint8_t)((c->q[i] >> 4) << (2 * k));
    }
}

static void quantize_q6_k(const kquant_kernels *kk, const float *src, void *dst, int64_t n)
{
    block_q6_k *blocks = dst;
    for (int64_t b = 0; b < n / QK_K; b++, src += QK_K) {
        symmetric_codes c;
        symmetric_superblock(kk, src, &q6_k_spec, &c);
        pack_q6_k(&c, &blocks[b]);
    }
}

// The reference quantizers: the search one candidate at a time.
void tensor_quantize_q2_k_ref(const float *src, void *dst, int64_t n)
{
    quantize_q2_k(NULL, src, dst, n);
}

void tensor_quantize_q3_k_ref(const float *src, void *dst, int64_t n)
{
    quantize_q3_k(NULL, src, dst, n);
}

void tensor_quantize_q4_k_ref(const float *src, void *dst, int64_t n)
{
    quantize_q4_k(NULL, src, dst, n);
}

void tensor_quantize_q5_k_ref(const float *src, void *dst, int64_t n)
{
    quantize_q5_k(NULL, src, dst, n);
}

void tensor_quantize_q6_k_ref(const float *src, void *dst, int64_t n)
{
    quantize_q6_k(NULL, src, dst, n);
}

// The kernels of each variant (the SIMD ones exist only on x86-64).
static const kquant_kernels *variant_kernels(tensor_quant_variant v)
{
    switch (v) {
#if defined(__x86_64__)
    case TENSOR_QUANT_AVX2: return &tensor_kquant_avx2;
    case TENSOR_QUANT_AVX512: return &tensor_kquant_avx512;
#endif
    default: return &tensor_kquant_scalar;
    }
}

bool tensor_quant_variant_available(tensor_quant_variant v)
{
#if defined(__x86_64__)
    const cpu_features *cpu = cpu_features_get();
    if (v == TENSOR_QUANT_AVX2)
        return cpu->avx2;
    if (v == TENSOR_QUANT_AVX512)
        return cpu->avx512;
#endif
    return v == TENSOR_QUANT_SCALAR;
}

const char *tensor_quant_variant_name(tensor_quant_variant v)
{
    static const char *const names[TENSOR_QUANT_VARIANT_COUNT] = {
        [TENSOR_QUANT_SCALAR] = "scalar",
        [TENSOR_QUANT_AVX2] = "avx2",
        [TENSOR_QUANT_AVX512] = "avx512",
    };
    return (unsigned)v < TENSOR_QUANT_VARIANT_COUNT ? names[v] : "unknown";
}

// The kernel of the best variant this CPU runs, chosen on first use and then fixed; a race
// between first callers is benign, each stores the same choice.
static const kquant_kernels *chosen_kernels(void)
{
    static _Atomic int chosen = -1;
    int c = atomic_load_explicit(&chosen, memory_order_relaxed);
    if (c < 0) {
        c = TENSOR_QUANT_SCALAR;
        for (int v = TENSOR_QUANT_AVX2; v < TENSOR_QUANT_VARIANT_COUNT; v++) {
            if (tensor_quant_variant_available((tensor_quant_variant)v))
                c = v;
        }
        atomic_store_explicit(&chosen, c, memory_order_relaxed);
    }
    return variant_kernels((tensor_quant_variant)c);
}

bool tensor_quantize_variant(uint32_t type, tensor_quant_variant v, const float *src, void *dst,
                             int64_t n)
{
    const kquant_kernels *kk = variant_kernels(v);
    switch (type) {
    case TENSOR_TYPE_Q2_K: quantize_q2_k(kk, src, dst, n); return true;
    case TENSOR_TYPE_Q3_K: quantize_q3_k(kk, src, dst, n); return true;
    case TENSOR_TYPE_Q4_K: quantize_q4_k(kk, src, dst, n); return true;
    case TENSOR_TYPE_Q5_K: quantize_q5_k(kk, src, dst, n); return true;
    case TENSOR_TYPE_Q6_K: quantize_q6_k(kk, src, dst, n); return true;
    default: return false;
    }
}

void tensor_quantize_q2_k(const float *src, void *dst, int64_t n)
{
    quantize_q2_k(chosen_kernels(), src, dst, n);
}

void tensor_quantize_q3_k(const float *src, void *dst, int64_t n)
{
    quantize_q3_k(chosen_kernels(), src, dst, n);
}

void tensor_quantize_q4_k(const float *src, void *dst, int64_t n)
{
    quantize_q4_k(chosen_kernels(), src, dst, n);
}

void tensor_quantize_q5_k(const float *src, void *dst, int64_t n)
{
    quantize_q5_k(chosen_kernels(), src, dst, n);
}

void tensor_quantize_q6_k(const float *src, void *dst, int64_t n)
{
    quantize_q6_k(chosen_kernels(), src, dst, n);
}

void tensor_quantize_iq4_nl(const float *src, void *dst, int64_t n)
{
    static const code_grid iq4_grid = {0, 16, tensor_iq4_nl_values};
    block_iq4_nl *blocks = dst;
    for (int64_t b = 0; b < n / QK4_NL; b++, src += QK4_NL) {
        float d = half_round(fit_symmetric(src, QK4_NL, &iq4_grid));
        uint8_t q[QK4_NL];
        code_sse(src, QK4_NL, &iq4_grid, d, 0.0f, q);
        blocks[b].d = tensor_f32_to_f16(d);
        pack_nibbles32(q, blocks[b].qs);
    }
}

void tensor_quantize_iq4_xs(const float *src, void *dst, int64_t n)
{
    static const symmetric_spec spec = {32, -32, 31, {0, 16, tensor_iq4_nl_values}};
    block_iq4_xs *blocks = dst;
    for (int64_t b = 0; b < n / QK_K; b++, src += QK_K) {
        symmetric_codes c;
        symmetric_superblock(NULL, src, &spec, &c);
        block_iq4_xs *blk = &blocks[b];
        memset(blk, 0, sizeof *blk);
        blk->d = tensor_f32_to_f16(c.d);
        uint16_t scales_h = 0;
        for (int s = 0; s < QK_K / 32; s++) {
            int code = c.sc[s] + 32;
            blk->scales_l[s / 2] |= (uint8_t)((code & 0x0F) << (4 * (s % 2)));
            scales_h |= (uint16_t)((code >> 4) << (2 * s));
            pack_nibbles32(c.q + 32 * s, blk->qs + 16 * s);
        }
        blk->scales_h = scales_h;
    }
}

// ---- MXFP4 ----

// The exponent byte of an MXFP4 block whose largest magnitude is amax, as ggml's
// quantize_row_mxfp4_ref picks it: e = floor(log2(amax)) - 2 + 127, so that the scale
// 2^(e - 128) puts amax / scale in [8, 16) and the largest code (12) covers amax up to 1.5
// times its power of two (the OCP rule; larger magnitudes clip). log2f rounds a value a few
// ulps below a power of two up to it, and the reference does the same (gguf-py's numpy log2
// agrees with glibc's on every such float). A zero block gets 0. Where the reference would
// convert a negative or infinite float to a byte (amax below 2^-125, or inf) the byte is
// clamped to 0..254 instead.
static uint8_t mxfp4_exponent(float amax)
{
    if (!(amax > 0.0f))
        return 0;
    if (amax > FLT_MAX)
        return 254;
    int e = (int)floorf(log2f(amax)) - 2 + 127;
    return (uint8_t)(e < 0 ? 0 : e > 254 ? 254 : e);
}

// The code whose value d * values[code] is nearest to x, the first in table order on a tie
// (so ties go to the smaller magnitude, and 0 and -0 code as 0).
static uint8_t mxfp4_nearest(float x, float d)
{
    uint8_t best = 0;
    float best_err = fabsf((float)tensor_mxfp4_values[0] * d - x);
    for (uint8_t i = 1; i < 16; i++) {
        float err = fabsf((float)tensor_mxfp4_values[i] * d - x);
        if (err < best_err) {
            best = i;
            best_err = err;
        }
    }
    return best;
}

// Byte for byte what gguf-py's MXFP4 quantizer and ggml's quantize_row_mxfp4_ref write
// (NaN values are skipped by the maximum and code as 0).
void tensor_quantize_mxfp4(const float *src, void *dst, int64_t n)
{
    block_mxfp4 *blocks = dst;
    for (int64_t b = 0; b < n / QK_MXFP4; b++, src += QK_MXFP4) {
        float amax = 0.0f;
        for (int j = 0; j < QK_MXFP4; j++)
            amax = fabsf(src[j]) > amax ? fabsf(src[j]) : amax;
        uint8_t e = mxfp4_exponent(amax);
        float d = tensor_mxfp4_scale(e);
        uint8_t q[QK_MXFP4];
        for (int j = 0; j < QK_MXFP4; j++)
            q[j] = mxfp4_nearest(src[j], d);
        blocks[b].e = e;
        pack_nibbles32(q, blocks[b].qs);
    }
}

// The E4M3 code nearest to v, ties to the even mantissa, saturating at +-448 (0x7E, 0xFE):
// E4M3 has no infinities, and its NaN codes are never a rounding. NaN gives NaN (0x7F).
static uint8_t f8_e4m3_code(float v)
{
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    uint8_t sign = (uint8_t)((u >> 24) & 0x80);
    uint32_t a = u & 0x7FFFFFFFu;
    if (a > 0x7F800000u)
        return sign | 0x7F;
    if (a >= 0x43E80000u) // 464, halfway between 448 and the 480 E4M3 lacks, and above
        return sign | 0x7E;
    if (a >= 0x3C800000u) { // 2^-6, the smallest normal E4M3
        // Rebias the exponent (127 -> 7) and keep three mantissa bits; a carry out of the
        // mantissa bumps the exponent, as it should.
        uint32_t rebased = a - (120u << 23);
        uint32_t kept = rebased >> 20, rest = rebased & 0xFFFFFu;
        if (rest > 0x80000u || (rest == 0x80000u && (kept & 1)))
            kept++;
        return (uint8_t)(sign | kept);
    }
    // Subnormal: steps of 2^-9 (8 steps is 2^-6, code 0x08: the smallest normal).
    float mag;
    memcpy(&mag, &a, sizeof mag);
    return (uint8_t)(sign | (uint8_t)lrintf(mag * 0x1p9f));
}

// F8_E4M3: d = amax / 448 (an F32, not rounded further), so that the block's largest
// magnitude lands on E4M3's largest finite value; each value codes as the E4M3 value
// nearest to x / d. NaN values are skipped by the maximum (and code as NaN).
void tensor_quantize_f8_e4m3(const float *src, void *dst, int64_t n)
{
    block_f8_e4m3 *blocks = dst;
    for (int64_t b = 0; b < n / QK_F8; b++, src += QK_F8) {
        float amax = 0.0f;
        for (int j = 0; j < QK_F8; j++)
            amax = fabsf(src[j]) > amax ? fabsf(src[j]) : amax;
        float d = amax / 448.0f;
        blocks[b].d = d;
        for (int j = 0; j < QK_F8; j++)
            blocks[b].qs[j] = d != 0.0f ? f8_e4m3_code(src[j] / d) : 0;
    }
}

// Q4_Z, as GPTQ's min/max quantizer: the block's range widened to include 0,
// [min(lo, 0), max(hi, 0)], in 15 steps of d (rounded to half); z = round(-min / d) puts 0
// on a code, so zero weights stay exactly zero, and lands in 0..15.
void tensor_quantize_q4_z(const float *src, void *dst, int64_t n)
{
    block_q4_z *blocks = dst;
    for (int64_t b = 0; b < n / QK4_Z; b++, src += QK4_Z) {
        float lo = 0.0f, hi = 0.0f;
        for (int j = 0; j < QK4_Z; j++) {
            lo = fminf(lo, src[j]);
            hi = fmaxf(hi, src[j]);
        }
        float d = half_round((hi - lo) / 15.0f);
        int z = scale_code(-lo, d, 0, 15);
        uint8_t q[QK4_Z];
        for (int j = 0; j < QK4_Z; j++)
            q[j] = (uint8_t)(scale_code(src[j], d, -z, 15 - z) + z);
        blocks[b].d = tensor_f32_to_f16(d);
        blocks[b].z = (uint8_t)z;
        blocks[b].pad = 0;
        pack_nibbles32(q, blocks[b].qs);
    }
}
