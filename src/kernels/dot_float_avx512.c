// SPDX-License-Identifier: MIT
// AVX-512 kernels for the float weight types (F32, F16, BF16, and garlic's own F8_E4M3) and
// the float helpers of attention and the feed-forward step, compiled with the AVX-512 flags
// and chosen at run time only when cpuid reports them. F16 weights multiply in float in
// register tiles of 4 weight x 3 activation rows over activation rows converted once per
// chunk, F8_E4M3 weights in tiles of 2 x 6 over the F32 activation rows; F32 and BF16 keep
// kernels over 1 or 4 activation rows, as in the AVX2 file.
#if defined(__x86_64__)
#include <math.h>

#include "kernels/dot_avx512.h"

// ---- F16 x F16: float tiles over converted activation rows ----
//
// An F16 x F16 product is exact in float, so F16 weights multiply in float: activation rows
// (F16, as the reference rounds them) are converted to float once per tile of F16_ACTS rows
// and chunk of F16_CHUNK values ("prepared"), and each weight value once per tile. A pair
// keeps two 16-lane sums (even and odd steps of 16 values; a last step of 16 goes to the
// first, a partial one to the second), reduced per chunk and added in chunk order; the single
// row (decoding) streams each weight row whole, converting the activation as it reads it (a
// converted copy of a long row would not stay in L1), with the same arithmetic, so results
// do not depend on the batch.

enum {
    F16_ROWS = 4,     // weight rows per register tile (x F16_ACTS x 2 sums)
    F16_ACTS = 3,     // activation rows per register tile
    F16_CHUNK = 2048, // values per chunk
    F16_PREP_STRIDE = F16_CHUNK * sizeof(float), // bytes of a prepared row
};
static_assert(F16_ACTS * F16_PREP_STRIDE <= KERNEL_PREP_BYTES, "a prepared tile fits");

// 16 activation values as floats from index i of the row at p (lanes outside mask zero):
// prepared floats, or (halves) F16 values converted as they are read.
ALWAYS_INLINE __m512 f16_act16(const uint8_t *p, int64_t i, __mmask16 mask, bool halves)
{
    if (halves)
        return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, (const uint16_t *)p + i));
    const float *f = (const float *)p + i;
    return mask == 0xFFFF ? _mm512_loadu_ps(f) : _mm512_maskz_loadu_ps(mask, f);
}

// 16 weights as floats from index i of the F16 row at p (lanes outside mask zero).
ALWAYS_INLINE __m512 f16_weights16(const uint8_t *p, int64_t i, __mmask16 mask)
{
    const uint16_t *h = (const uint16_t *)p + i;
    return _mm512_cvtph_ps(mask == 0xFFFF ? _mm256_loadu_si256((const __m256i *)h)
                                          : _mm256_maskz_loadu_epi16(mask, h));
}

// An R x C tile over one chunk of a strip: R weight rows (rows past nr repeat the last) and C
// activation rows (rows past nc repeat the last; prepared, or F16 with halves). Adds (or
// stores) each of the nr x nc pairs' chunk sums to y[k * ldy + r].
ALWAYS_INLINE void f16_tile(const kernel_strip *s, const kernel_chunk *ch, int nr, int nc, float *y,
                            int R, int C, bool halves)
{
    int64_t len = ch->len;
    __m512 acc[2][F16_ROWS][F16_ACTS]; // the sums of even and odd steps
    const uint8_t *rows[F16_ROWS], *acts[F16_ACTS];
    tile_rows(rows, ch->w, s->w_stride, nr, R);
    // Prepared rows are F16_PREP_STRIDE apart, a constant (see lane_tile); an unprepared
    // (halves) row is alone.
    tile_rows(acts, ch->act, F16_PREP_STRIDE, nc, C);
#pragma GCC unroll 8
    for (int r = 0; r < F16_ROWS; r++)
#pragma GCC unroll 8
        for (int k = 0; k < F16_ACTS; k++)
            acc[0][r][k] = acc[1][r][k] = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= len; i += 32) {
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            __m512 wv[F16_ROWS];
#pragma GCC unroll 8
            for (int r = 0; r < R; r++)
                wv[r] = f16_weights16(rows[r], i + 16 * h, 0xFFFF);
#pragma GCC unroll 8
            for (int k = 0; k < C; k++) {
                __m512 a = f16_act16(acts[k], i + 16 * h, 0xFFFF, halves);
#pragma GCC unroll 8
                for (int r = 0; r < R; r++)
                    acc[h][r][k] = _mm512_fmadd_ps(wv[r], a, acc[h][r][k]);
            }
        }
    }
    // The last 1..31 values: a whole step of 16 into the first sums, the rest (masked) into
    // the second.
    for (int h = 0; i < len; h++, i += 16) {
        __mmask16 mask = len - i >= 16 ? 0xFFFF : (__mmask16)((1u << (len - i)) - 1);
        __m512 wv[F16_ROWS];
#pragma GCC unroll 8
        for (int r = 0; r < R; r++)
            wv[r] = f16_weights16(rows[r], i, mask);
#pragma GCC unroll 8
        for (int k = 0; k < C; k++) {
            __m512 a = f16_act16(acts[k], i, mask, halves);
#pragma GCC unroll 8
            for (int r = 0; r < R; r++)
                acc[h][r][k] = _mm512_fmadd_ps(wv[r], a, acc[h][r][k]);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 8
        for (int k = 0; k < C; k++)
            acc[0][r][k] = _mm512_add_ps(acc[0][r][k], acc[1][r][k]);
    tile_finish(y, s->ldy, ch->first, &acc[0][0][0], NULL, F16_ACTS, R, C, nr, nc);
}

// A tile of nr <= F16_ROWS rows and nc <= F16_ACTS activation rows by the shape with code of
// its own that covers it (in sanitizer builds: the single pair or 4 x 3); an unprepared row
// (halves) is a single pair.
ALWAYS_INLINE void f16_tile_any(const kernel_strip *s, const kernel_chunk *ch, int nr, int nc,
                                float *y)
{
    static_assert(F16_ROWS == 4 && F16_ACTS == 3, "one case per shape");
    if (!s->prepared) {
        f16_tile(s, ch, 1, 1, y, 1, 1, true);
        return;
    }
    if (nr == 1 && nc == 1) {
        f16_tile(s, ch, 1, 1, y, 1, 1, false);
        return;
    }
    switch (FEW_SHAPES ? 3 : nc) {
    case 1: f16_tile(s, ch, nr, nc, y, F16_ROWS, 1, false); return;
    case 2: f16_tile(s, ch, nr, nc, y, F16_ROWS, 2, false); return;
    default: f16_tile(s, ch, nr, nc, y, F16_ROWS, 3, false); return;
    }
}

// The strip of the F16 product: register tiles of s->tile_rows rows, each over the strip's
// chunks in order.
static void strip_f16(const kernel_strip *s)
{
    assert(!s->prepared || s->act_stride == F16_PREP_STRIDE);
    int tr = s->tile_rows;
    for (int64_t r = 0; r < s->rows; r += tr) {
        int nr = (int)(s->rows - r < tr ? s->rows - r : tr);
        for (int64_t j = 0; j * F16_CHUNK < s->len; j++) {
            kernel_chunk ch = kernel_strip_chunk(s, F16_CHUNK, j, r);
            f16_tile_any(s, &ch, nr, s->n_act, s->y + r);
        }
    }
}

// Prepares one F16 activation row's len values: to floats at dst.
static void prepare_f16(const void *act, int64_t len, void *dst)
{
    const uint16_t *a = act;
    float *out = dst;
    for (int64_t i = 0; i < len; i += 16) {
        __mmask16 mask = len - i >= 16 ? 0xFFFF : (__mmask16)((1u << (len - i)) - 1);
        __m512 v = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, a + i));
        _mm512_mask_storeu_ps(out + i, mask, v);
    }
}

#define F16_PRODUCT                                                                                \
    {                                                                                              \
        .strip = strip_f16, .prepare = prepare_f16, .prep_stride = F16_PREP_STRIDE,                \
        .single_unprepared = true, .chunk = F16_CHUNK, .tile_rows = F16_ROWS,                      \
        .tile_acts = F16_ACTS                                                                      \
    }

// F16 rows are copied as they are: packing only moves them into the huge-page mapping.
static void pack_f16(const void *row, void *dst, int64_t n) { memcpy(dst, row, (size_t)n * 2); }

// ---- F8_E4M3 x F32: float tiles over the activation rows as converted ----
//
// E4M3 codes become floats as in the AVX2 file: sign and magnitude bits moved into an F16
// (sign to bit 15, the rest to bits 7..13) are the code's value times 2^-8, exactly, and F16C
// makes them floats. A pair's block sum (the products of its two halves in 16 lanes) is
// scaled by the block's d into the pair's one accumulator, and the chunk's sum is multiplied
// by 2^8 (exact) at the end. The activations are F32 rows, read where they lie (nothing to
// prepare); the register tiles of F8_ROWS weight rows go past a tile's F8_ACTS activation
// rows, converting each weight once per tile. The single pair (decoding) does the same
// arithmetic, so results do not depend on the batch. NaN codes (0x7F, 0xFF), which the
// conversion would read as +-480, make their row's sums NaN, as the reference's are: a
// running maximum of the codes' doubled magnitudes sees them.
//
// Measured on Zen 4 (bench_kernels, 4096 x 4096, one thread, three interleaved rounds): scaling
// each block sum decodes at 14.7-15.7 GB/s where scaling the weights first (two sums a pair,
// one multiply per weight vector) reached 14.1-14.6, at the price of 512-row products: 70-72
// against 78-80 GFLOP/s; chunks of 4096 values beat 1024 on both (15.3 and 71 against 14.5 and
// 68). Decoding is compute-bound on one core: the code conversion costs what the products do.

enum {
    F8_ROWS = 2,     // weight rows per register tile (x F8_ACTS sums)
    F8_ACTS = 6,     // activation rows per register tile
    F8_CHUNK = 4096, // values per chunk
};

// The 16 codes of half h of block blk as floats: their values over 2^8.
ALWAYS_INLINE __m512 e4m3_half(const block_f8_e4m3 *blk, int h)
{
    // Sign-extended, shifted by 7: bit 15 is the sign (from bit 8), bit 14 the sign again.
    __m256i w = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(blk->qs + 16 * h)));
    w = _mm256_and_si256(_mm256_slli_epi16(w, 7), _mm256_set1_epi16((short)0xBF80));
    return _mm512_cvtph_ps(w);
}

// Byte-wise max of *seen and the block's 32 codes doubled (the sign dropped): a NaN code's
// magnitude 0x7F doubles to 0xFE, every other one to 0xFC at most.
ALWAYS_INLINE void e4m3_nan_scan(const block_f8_e4m3 *blk, __m256i *seen)
{
    __m256i c = _mm256_loadu_si256((const __m256i *)blk->qs);
    *seen = _mm256_max_epu8(*seen, _mm256_add_epi8(c, c));
}

// An R x C tile over one chunk of a strip: R weight rows (rows past nr repeat the last) and
// C activation rows (rows past nc repeat the last). Adds (or stores) each of the nr x nc
// pairs' chunk sums to y[k * ldy + r]. A pair's block sum (16 lanes: the products of both
// halves) is scaled by the block's d into the pair's one accumulator.
ALWAYS_INLINE void f8_tile(const kernel_strip *s, const kernel_chunk *ch, int nr, int nc, float *y,
                           int R, int C)
{
    int64_t nb = ch->len / QK_F8;
    __m512 acc[F8_ROWS][F8_ACTS];
    __m256i seen[F8_ROWS];
    const uint8_t *rows[F8_ROWS], *acts[F8_ACTS];
    tile_rows(rows, ch->w, s->w_stride, nr, R);
    tile_rows(acts, ch->act, s->act_stride, nc, C);
#pragma GCC unroll 8
    for (int r = 0; r < F8_ROWS; r++) {
        seen[r] = _mm256_setzero_si256();
#pragma GCC unroll 8
        for (int k = 0; k < F8_ACTS; k++)
            acc[r][k] = _mm512_setzero_ps();
    }
    for (int64_t b = 0; b < nb; b++) {
        __m512 w0[F8_ROWS], w1[F8_ROWS], d[F8_ROWS];
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) {
            const block_f8_e4m3 *blk = (const block_f8_e4m3 *)rows[r] + b;
            e4m3_nan_scan(blk, &seen[r]);
            w0[r] = e4m3_half(blk, 0), w1[r] = e4m3_half(blk, 1);
            d[r] = _mm512_set1_ps(blk->d);
        }
#pragma GCC unroll 8
        for (int k = 0; k < C; k++) {
            const float *a = (const float *)acts[k] + b * QK_F8;
            __m512 a0 = _mm512_loadu_ps(a), a1 = _mm512_loadu_ps(a + 16);
#pragma GCC unroll 8
            for (int r = 0; r < R; r++) {
                __m512 t = _mm512_fmadd_ps(w1[r], a1, _mm512_mul_ps(w0[r], a0));
                acc[r][k] = _mm512_fmadd_ps(t, d[r], acc[r][k]);
            }
        }
    }
    const __m512 two8 = _mm512_set1_ps(256.0f), nan = _mm512_set1_ps(NAN);
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) {
        bool has_nan = _mm256_movemask_epi8(
                           _mm256_cmpeq_epi8(seen[r], _mm256_set1_epi8((char)0xFE))) != 0;
#pragma GCC unroll 8
        for (int k = 0; k < C; k++)
            acc[r][k] = has_nan ? nan : _mm512_mul_ps(acc[r][k], two8);
    }
    tile_finish(y, s->ldy, ch->first, &acc[0][0], NULL, F8_ACTS, R, C, nr, nc);
}

// A tile of nr <= F8_ROWS rows and nc <= F8_ACTS activation rows by the shape with code of its
// own that covers it (in sanitizer builds: the single pair or 2 x 6).
ALWAYS_INLINE void f8_tile_any(const kernel_strip *s, const kernel_chunk *ch, int nr, int nc,
                               float *y)
{
    static_assert(F8_ROWS == 2 && F8_ACTS == 6, "one case per shape");
    if (nr == 1 && nc == 1) {
        f8_tile(s, ch, 1, 1, y, 1, 1);
        return;
    }
    switch (FEW_SHAPES ? 6 : nc) {
    case 1: f8_tile(s, ch, nr, nc, y, F8_ROWS, 1); return;
    case 2: f8_tile(s, ch, nr, nc, y, F8_ROWS, 2); return;
    case 3: f8_tile(s, ch, nr, nc, y, F8_ROWS, 3); return;
    case 4: f8_tile(s, ch, nr, nc, y, F8_ROWS, 4); return;
    case 5: f8_tile(s, ch, nr, nc, y, F8_ROWS, 5); return;
    default: f8_tile(s, ch, nr, nc, y, F8_ROWS, 6); return;
    }
}

// The strip of the F8_E4M3 product: register tiles of s->tile_rows rows, each over the
// strip's chunks in order.
static void strip_f8_e4m3(const kernel_strip *s)
{
    assert(!s->prepared);
    int tr = s->tile_rows;
    for (int64_t r = 0; r < s->rows; r += tr) {
        int nr = (int)(s->rows - r < tr ? s->rows - r : tr);
        for (int64_t j = 0; j * F8_CHUNK < s->len; j++) {
            kernel_chunk ch = kernel_strip_chunk(s, F8_CHUNK, j, r);
            f8_tile_any(s, &ch, nr, s->n_act, s->y + r);
        }
    }
}

#define F8_PRODUCT                                                                                 \
    {                                                                                              \
        .strip = strip_f8_e4m3, .chunk = F8_CHUNK, .tile_rows = F8_ROWS, .tile_acts = F8_ACTS      \
    }

// ---- plain float formats ----

enum float_kind { FMT_F32, FMT_F16, FMT_BF16 };

// 16 values from index i, the lanes outside `mask` zero.
// (A full mask, constant where this is inlined, gives plain loads: masked ones are slower on
// Zen 4.)
ALWAYS_INLINE __m512 load16(const void *p, int64_t i, enum float_kind kind, __mmask16 mask)
{
    const uint16_t *half_p = (const uint16_t *)p + i;
    if (kind == FMT_F32)
        return mask == 0xFFFF ? _mm512_loadu_ps((const float *)p + i)
                              : _mm512_maskz_loadu_ps(mask, (const float *)p + i);
    __m256i raw = mask == 0xFFFF ? _mm256_loadu_si256((const __m256i *)half_p)
                                 : _mm256_maskz_loadu_epi16(mask, half_p);
    if (kind == FMT_F16)
        return _mm512_cvtph_ps(raw);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(raw), 16));
}

// acc[k] += x[i..i+15] * y_k[i..i+15] for `rows` rows y_k (lanes outside mask zero).
ALWAYS_INLINE void float_step(__m512 *acc, size_t acc_stride, const void *x, enum float_kind kx,
                              const void *y, size_t y_stride, enum float_kind ky, int64_t i,
                              int rows, __mmask16 mask)
{
    __m512 xv = load16(x, i, kx, mask);
#pragma GCC unroll 16
    for (int k = 0; k < rows; k++) {
        __m512 yv = load16(act_row(y, y_stride, k), i, ky, mask);
        acc[k * acc_stride] = _mm512_fmadd_ps(xv, yv, acc[k * acc_stride]);
    }
}

// sum x[i] * y_k[i] for `rows` rows y_k (y_stride bytes apart), four accumulators per row.
ALWAYS_INLINE void float_rows(const void *x, enum float_kind kx, const void *y, size_t y_stride,
                              enum float_kind ky, int64_t n, int rows, float *out)
{
    __m512 acc[4][4];
#pragma GCC unroll 16
    for (int k = 0; k < 4; k++)
        for (int j = 0; j < 4; j++)
            acc[k][j] = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) {
#pragma GCC unroll 16
        for (int j = 0; j < 4; j++)
            float_step(&acc[0][j], 4, x, kx, y, y_stride, ky, i + 16 * j, rows, 0xFFFF);
    }
    for (; i + 16 <= n; i += 16)
        float_step(&acc[0][0], 4, x, kx, y, y_stride, ky, i, rows, 0xFFFF);
    if (i < n) {
        __mmask16 mask = (__mmask16)((1u << (n - i)) - 1);
        float_step(&acc[0][0], 4, x, kx, y, y_stride, ky, i, rows, mask);
    }
#pragma GCC unroll 16
    for (int k = 0; k < rows; k++) {
        __m512 s = _mm512_add_ps(_mm512_add_ps(acc[k][0], acc[k][1]),
                                 _mm512_add_ps(acc[k][2], acc[k][3]));
        out[k] = _mm512_reduce_add_ps(s);
    }
}

static float dot_f32_f32(const void *w, const void *a, int64_t n)
{
    float out;
    float_rows(w, FMT_F32, a, 0, FMT_F32, n, 1, &out);
    return out;
}

static void dot_f32_f32_x4(const void *w, const void *a, size_t stride, int64_t n, float out[4])
{
    float_rows(w, FMT_F32, a, stride, FMT_F32, n, 4, out);
}

static float dot_bf16_bf16(const void *w, const void *a, int64_t n)
{
    float out;
    float_rows(w, FMT_BF16, a, 0, FMT_BF16, n, 1, &out);
    return out;
}

static void dot_bf16_bf16_x4(const void *w, const void *a, size_t stride, int64_t n, float out[4])
{
    float_rows(w, FMT_BF16, a, stride, FMT_BF16, n, 4, out);
}

static float helper_dot_f32(const float *a, const float *b, int64_t n)
{
    float out;
    float_rows(a, FMT_F32, b, 0, FMT_F32, n, 1, &out);
    return out;
}

static float helper_dot_f32_f16(const float *a, const uint16_t *b, int64_t n)
{
    float out;
    float_rows(a, FMT_F32, b, 0, FMT_F16, n, 1, &out);
    return out;
}

// y += a * x for x in format kind, 16 lanes at a time, the tail masked.
ALWAYS_INLINE void float_axpy(float *y, float a, const void *x, enum float_kind kind, int64_t n)
{
    __m512 va = _mm512_set1_ps(a);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i,
                         _mm512_fmadd_ps(va, load16(x, i, kind, 0xFFFF), _mm512_loadu_ps(y + i)));
    if (i < n) {
        __mmask16 mask = (__mmask16)((1u << (n - i)) - 1);
        __m512 yv = _mm512_maskz_loadu_ps(mask, y + i);
        _mm512_mask_storeu_ps(y + i, mask, _mm512_fmadd_ps(va, load16(x, i, kind, mask), yv));
    }
}

static void helper_axpy_f32(float *y, float a, const float *x, int64_t n)
{
    float_axpy(y, a, x, FMT_F32, n);
}

static void helper_axpy_f16(float *y, float a, const uint16_t *x, int64_t n)
{
    float_axpy(y, a, x, FMT_F16, n);
}

// Transposes the 16 x 16 floats of v in place (v[r] lane c becomes v[c] lane r).
ALWAYS_INLINE void transpose16(__m512 v[16])
{
    __m512 t[16];
#pragma GCC unroll 16
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(v[i], v[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(v[i], v[i + 1]);
    }
    // u[4j + m], 128-bit lane k: column 4k + m of rows 4j..4j + 3.
#pragma GCC unroll 16
    for (int j = 0; j < 16; j += 4) {
        __m512d a = _mm512_castps_pd(t[j]), b = _mm512_castps_pd(t[j + 2]);
        __m512d c = _mm512_castps_pd(t[j + 1]), d = _mm512_castps_pd(t[j + 3]);
        v[j] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, b));
        v[j + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, b));
        v[j + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(c, d));
        v[j + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(c, d));
    }
#pragma GCC unroll 16
    for (int m = 0; m < 4; m++) {
        __m512 a0 = _mm512_shuffle_f32x4(v[m], v[4 + m], _MM_SHUFFLE(2, 0, 2, 0));
        __m512 a1 = _mm512_shuffle_f32x4(v[m], v[4 + m], _MM_SHUFFLE(3, 1, 3, 1));
        __m512 b0 = _mm512_shuffle_f32x4(v[8 + m], v[12 + m], _MM_SHUFFLE(2, 0, 2, 0));
        __m512 b1 = _mm512_shuffle_f32x4(v[8 + m], v[12 + m], _MM_SHUFFLE(3, 1, 3, 1));
        t[m] = _mm512_shuffle_f32x4(a0, b0, _MM_SHUFFLE(2, 0, 2, 0));      // column m
        t[8 + m] = _mm512_shuffle_f32x4(a0, b0, _MM_SHUFFLE(3, 1, 3, 1));  // column 8 + m
        t[4 + m] = _mm512_shuffle_f32x4(a1, b1, _MM_SHUFFLE(2, 0, 2, 0));  // column 4 + m
        t[12 + m] = _mm512_shuffle_f32x4(a1, b1, _MM_SHUFFLE(3, 1, 3, 1)); // column 12 + m
    }
#pragma GCC unroll 16
    for (int i = 0; i < 16; i++)
        v[i] = t[i];
}

enum { ROWS_MAX_N = 256 }; // the widest head the transposed path takes

// out_j[r] = scale * (q_j . rows[r]), rows of F32 or F16 values (pitch values apart). Up to
// 16 rows of a head of up to 256 values (a multiple of 16) are transposed once into columns
// (F16 converted as they load: exact, so both formats give the same sums), so that each
// query's 16 scores build up in one register, value by value, in four interleaved sums;
// other shapes take a dot per pair.
ALWAYS_INLINE void dot_rows(const float *q, int64_t q_stride, int64_t n_q, const void *rows,
                            enum float_kind kind, int64_t pitch, int64_t n_rows, int64_t n,
                            float scale, float *out, int64_t out_stride)
{
    size_t row_bytes = (size_t)pitch * (kind == FMT_F32 ? 4 : 2);
    if (n % 16 || n > ROWS_MAX_N || n_rows > 16 || n_rows < 1) {
        for (int64_t j = 0; j < n_q; j++)
            for (int64_t r = 0; r < n_rows; r++) {
                float d;
                float_rows(q + j * q_stride, FMT_F32, act_row(rows, row_bytes, (int)r), 0, kind, n,
                           1, &d);
                out[j * out_stride + r] = scale * d;
            }
        return;
    }
    float cols[ROWS_MAX_N * 16] __attribute__((aligned(64))); // cols[d * 16 + r] = rows[r][d]
    for (int64_t c = 0; c < n; c += 16) {
        __m512 v[16];
#pragma GCC unroll 16
        for (int r = 0; r < 16; r++)
            v[r] = r < n_rows ? load16(act_row(rows, row_bytes, r), c, kind, 0xFFFF)
                              : _mm512_setzero_ps();
        transpose16(v);
#pragma GCC unroll 16
        for (int m = 0; m < 16; m++)
            _mm512_store_ps(cols + (c + m) * 16, v[m]);
    }
    __mmask16 mask = (__mmask16)((1u << n_rows) - 1);
    for (int64_t j = 0; j < n_q; j++) {
        const float *qj = q + j * q_stride;
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int64_t d = 0; d < n; d += 4) {
            a0 = _mm512_fmadd_ps(_mm512_set1_ps(qj[d]), _mm512_load_ps(cols + d * 16), a0);
            a1 = _mm512_fmadd_ps(_mm512_set1_ps(qj[d + 1]), _mm512_load_ps(cols + d * 16 + 16), a1);
            a2 = _mm512_fmadd_ps(_mm512_set1_ps(qj[d + 2]), _mm512_load_ps(cols + d * 16 + 32), a2);
            a3 = _mm512_fmadd_ps(_mm512_set1_ps(qj[d + 3]), _mm512_load_ps(cols + d * 16 + 48), a3);
        }
        __m512 s = _mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3));
        _mm512_mask_storeu_ps(out + j * out_stride, mask, _mm512_mul_ps(s, _mm512_set1_ps(scale)));
    }
}

static void helper_dot_rows_f32(const float *q, int64_t q_stride, int64_t n_q, const float *rows,
                                int64_t pitch, int64_t n_rows, int64_t n, float scale, float *out,
                                int64_t out_stride)
{
    dot_rows(q, q_stride, n_q, rows, FMT_F32, pitch, n_rows, n, scale, out, out_stride);
}

static void helper_dot_rows_f16(const float *q, int64_t q_stride, int64_t n_q, const uint16_t *rows,
                                int64_t pitch, int64_t n_rows, int64_t n, float scale, float *out,
                                int64_t out_stride)
{
    dot_rows(q, q_stride, n_q, rows, FMT_F16, pitch, n_rows, n, scale, out, out_stride);
}

// y_j += sum_r w_j[r] * rows[r] for NQ queries: each 16-lane slice of the NQ outputs stays in
// registers across the rows, and each row slice is loaded (F16: and converted) once for all
// of them.
ALWAYS_INLINE void axpy_rows_group(float *y, int64_t y_stride, const float *w, int64_t w_stride,
                                   const void *rows, enum float_kind kind, int64_t pitch,
                                   int64_t n_rows, int64_t n, int NQ)
{
    size_t row_bytes = (size_t)pitch * (kind == FMT_F32 ? 4 : 2);
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 mask = n - i >= 16 ? 0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        __m512 acc[8];
#pragma GCC unroll 8
        for (int j = 0; j < NQ; j++)
            acc[j] = _mm512_maskz_loadu_ps(mask, y + j * y_stride + i);
        for (int64_t r = 0; r < n_rows; r++) {
            __m512 v = load16(act_row(rows, row_bytes, (int)r), i, kind, mask);
#pragma GCC unroll 8
            for (int j = 0; j < NQ; j++)
                acc[j] = _mm512_fmadd_ps(_mm512_set1_ps(w[j * w_stride + r]), v, acc[j]);
        }
#pragma GCC unroll 8
        for (int j = 0; j < NQ; j++)
            _mm512_mask_storeu_ps(y + j * y_stride + i, mask, acc[j]);
    }
}

ALWAYS_INLINE void axpy_rows(float *y, int64_t y_stride, int64_t n_q, const float *w,
                             int64_t w_stride, const void *rows, enum float_kind kind,
                             int64_t pitch, int64_t n_rows, int64_t n)
{
    for (int64_t j = 0; j < n_q; j += 8) {
        float *yj = y + j * y_stride;
        const float *wj = w + j * w_stride;
#define GROUP(NQ) axpy_rows_group(yj, y_stride, wj, w_stride, rows, kind, pitch, n_rows, n, NQ)
        BY_GROUP_SIZE(n_q - j, GROUP);
#undef GROUP
    }
}

static void helper_axpy_rows_f32(float *y, int64_t y_stride, int64_t n_q, const float *w,
                                 int64_t w_stride, const float *rows, int64_t pitch, int64_t n_rows,
                                 int64_t n)
{
    axpy_rows(y, y_stride, n_q, w, w_stride, rows, FMT_F32, pitch, n_rows, n);
}

static void helper_axpy_rows_f16(float *y, int64_t y_stride, int64_t n_q, const float *w,
                                 int64_t w_stride, const uint16_t *rows, int64_t pitch,
                                 int64_t n_rows, int64_t n)
{
    axpy_rows(y, y_stride, n_q, w, w_stride, rows, FMT_F16, pitch, n_rows, n);
}

// The largest of x[0..n), -inf when n is 0; NaN lanes are skipped as the scalar comparison
// skips them.
static float helper_max_f32(const float *x, int64_t n)
{
    __m512 m = _mm512_set1_ps(-INFINITY);
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 mask = n - i >= 16 ? 0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        m = _mm512_mask_max_ps(m, mask, _mm512_maskz_loadu_ps(mask, x + i), m);
    }
    return _mm512_reduce_max_ps(m);
}

// exp(x) as dot_avx2.c's exp8 computes it, 16 lanes at a time (scalef applies 2^k).
ALWAYS_INLINE __m512 exp16(__m512 x)
{
    x = _mm512_min_ps(_mm512_set1_ps(89.0f), _mm512_max_ps(_mm512_set1_ps(-104.0f), x));
    __m512 k = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 t = _mm512_fnmadd_ps(k, _mm512_set1_ps(0.693359375f), x);
    t = _mm512_fnmadd_ps(k, _mm512_set1_ps(-2.12194440e-4f), t);
    __m512 p = _mm512_set1_ps(1.0f / 5040);
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.0f / 720));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.0f / 120));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.0f / 24));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.0f / 6));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, k);
}

static float helper_exp_sum_f32(float *x, int64_t n, float max)
{
    __m512 sum = _mm512_setzero_ps(), m = _mm512_set1_ps(max);
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 mask = n - i >= 16 ? 0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        __m512 e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(mask, x + i), m));
        _mm512_mask_storeu_ps(x + i, mask, e);
        sum = _mm512_mask_add_ps(sum, mask, sum, e);
    }
    return _mm512_reduce_add_ps(sum);
}

static void helper_swiglu_f32(float *gate, const float *up, int64_t n)
{
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 mask = n - i >= 16 ? 0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        __m512 g = _mm512_maskz_loadu_ps(mask, gate + i), u = _mm512_maskz_loadu_ps(mask, up + i);
        __m512 e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), g));
        __m512 out = _mm512_mul_ps(_mm512_div_ps(g, _mm512_add_ps(_mm512_set1_ps(1.0f), e)), u);
        _mm512_mask_storeu_ps(gate + i, mask, out);
    }
}

// F16's and F8_E4M3's single dots are their products' 1 x 1 case (NULL dot).
const kernel_type_ops kernel_avx512_float_type_ops[TENSOR_TYPE_COUNT] = {
    [TENSOR_TYPE_F32] = {.dot = dot_f32_f32, .product = KERNEL_BY_DOTS(dot_f32_f32_x4)},
    [TENSOR_TYPE_F16] = {.product = F16_PRODUCT, .pack = pack_f16, .packed = F16_PRODUCT},
    [TENSOR_TYPE_BF16] = {.dot = dot_bf16_bf16, .product = KERNEL_BY_DOTS(dot_bf16_bf16_x4)},
    [TENSOR_TYPE_F8_E4M3] = {.product = F8_PRODUCT},
};

const kernel_float_ops kernel_avx512_float_ops = {
    .dot_f32 = helper_dot_f32,
    .dot_f32_f16 = helper_dot_f32_f16,
    .axpy_f32 = helper_axpy_f32,
    .axpy_f16 = helper_axpy_f16,
    .dot_rows_f32 = helper_dot_rows_f32,
    .axpy_rows_f32 = helper_axpy_rows_f32,
    .dot_rows_f16 = helper_dot_rows_f16,
    .axpy_rows_f16 = helper_axpy_rows_f16,
    .max_f32 = helper_max_f32,
    .dot_rows_q8_0 = kernel_dot_rows_q8_0_avx512,
    .axpy_rows_q8_0 = kernel_axpy_rows_q8_0_avx512,
    .exp_sum_f32 = helper_exp_sum_f32,
    .swiglu_f32 = helper_swiglu_f32,
};
#endif
