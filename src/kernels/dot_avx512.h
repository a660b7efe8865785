// SPDX-License-Identifier: MIT
// What the AVX-512 kernel files (dot_*_avx512.c) share, internal to src/kernels: small vector
// helpers, and the lane product that the 32-value block types against Q8_0 and the Q4_K and
// Q6_K super-blocks go through (register tiles of 2 weight x 6 activation rows, four vpdpbusd
// per step on activation rows prepared once per chunk). Every function here is inlined into
// its caller, so include this header only from files compiled with the AVX-512 flags.
#ifndef GARLIC_KERNELS_DOT_AVX512_H
#define GARLIC_KERNELS_DOT_AVX512_H

#include <assert.h>
#include <immintrin.h>
#include <stdbool.h>
#include <string.h>

#include "kernels/variants.h"
#include "tensor/quants.h"

#define ALWAYS_INLINE static inline __attribute__((always_inline))

ALWAYS_INLINE float half(uint16_t h) { return _cvtsh_ss(h); }

// Activation row k of a group (act rows are stride bytes apart).
ALWAYS_INLINE const void *act_row(const void *act, size_t stride, int k)
{
    return (const uint8_t *)act + (size_t)k * stride;
}

// lo in the low 256 bits, hi in the high ones.
ALWAYS_INLINE __m512i join256(__m256i lo, __m256i hi)
{
    return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

// The 32 nibbles of 16 bytes in value order: low nibbles (values 0..15) then high ones.
ALWAYS_INLINE __m256i nibbles32(const uint8_t *qs)
{
    __m128i raw = _mm_loadu_si128((const __m128i *)qs);
    __m128i mask = _mm_set1_epi8(0x0F);
    return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(raw, 4), mask), _mm_and_si128(raw, mask));
}

// The `count` rows of a register tile from base, stride bytes apart; rows past the tile's n
// real ones repeat the last (their results are computed, never stored).
ALWAYS_INLINE void tile_rows(const uint8_t **out, const uint8_t *base, size_t stride, int n,
                             int count)
{
#pragma GCC unroll 8
    for (int i = 0; i < count; i++)
        out[i] = base + (size_t)(i < n ? i : n - 1) * stride;
}

// GROUP(NQ) with NQ the constant 1..8 that count is (8 for more): a query group's code for
// each group size, as the attention kernels' groups of up to eight queries need.
#define BY_GROUP_SIZE(count, GROUP)                                                                \
    switch ((count) < 8 ? (count) : 8) {                                                           \
    case 1: GROUP(1); break;                                                                       \
    case 2: GROUP(2); break;                                                                       \
    case 3: GROUP(3); break;                                                                       \
    case 4: GROUP(4); break;                                                                       \
    case 5: GROUP(5); break;                                                                       \
    case 6: GROUP(6); break;                                                                       \
    case 7: GROUP(7); break;                                                                       \
    default: GROUP(8); break;                                                                      \
    }

// Prefetches `bytes` from p on, a cache line at a time.
ALWAYS_INLINE void prefetch_lines(const uint8_t *p, size_t bytes)
{
    for (size_t line = 0; line < bytes; line += 64)
        _mm_prefetch((const char *)(p + line), _MM_HINT_T0);
}

// The sum of the 8 lanes of v.
ALWAYS_INLINE float sum8(__m256 v)
{
    __m128 b4 = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    b4 = _mm_add_ps(b4, _mm_movehl_ps(b4, b4));
    b4 = _mm_add_ss(b4, _mm_movehdup_ps(b4));
    return _mm_cvtss_f32(b4);
}

// The end of an R x C register tile over a chunk: the sum of the lanes of acc[r * row + k]
// (plus those of extra[r * row + k] where extra is set) stored at y[k * ldy + r] (first: the
// rows' first chunk) or added to it, for the nr x nc real pairs. Constant bounds keep acc in
// registers; repeated pairs are not stored.
ALWAYS_INLINE void tile_finish(float *y, int64_t ldy, bool first, const __m512 *acc,
                               const __m256 *extra, int row, int R, int C, int nr, int nc)
{
#pragma GCC unroll 8
    for (int k = 0; k < C; k++) {
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) {
            if (k >= nc || r >= nr)
                continue;
            float sum = _mm512_reduce_add_ps(acc[r * row + k]);
            if (extra)
                sum += sum8(extra[r * row + k]);
            y[k * ldy + r] = first ? sum : y[k * ldy + r] + sum;
        }
    }
}

// Which tile shapes get their own code: every activation count up to the tile's in optimized
// builds; in sanitizer builds only the full tile and the single pair, which keeps their
// compile time short (a smaller tile then computes duplicated rows and stores only its own).
// The arithmetic of a pair does not depend on the shape, so neither do results.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_UNDEFINED__)
#define FEW_SHAPES 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(undefined_behavior_sanitizer)
#define FEW_SHAPES 1
#endif
#endif
#ifndef FEW_SHAPES
#define FEW_SHAPES 0
#endif

// ---- the lane product ----
//
// Eight blocks of 32 (256 values) per step, each block's integer sum spread over two dword
// lanes: lanes 4i, 4i + 1 hold block i and lanes 4i + 2, 4i + 3 block 4 + i (i = 0..3). Four
// operands x0..x3 hold values 0..7, 8..15, 16..23 and 24..31 of every block in those lanes,
// so four dpbusd leave all eight blocks' sums in one register and one multiply-add applies
// their scales. dpbusd multiplies unsigned by signed bytes: weight codes carry an offset o
// that makes them unsigned (Q4_0 stores q + 8 already) and the sums start from
// -o * sum(a). Q4_Z's codes are unsigned as stored (q in 0..15) and each block has its own
// offset, its zero point z: its sums start from z * -sum(a), one multiply-add of the lanes'
// zero points with -sum(a) (prepared as for an offset of 1), so its block sums stay exact
// integers like the others'. The activation side (operands, starting sums, scales spread over
// the lanes) is rearranged once per tile of activation rows and chunk, "prepared", and then
// read by every weight row. Rows are split into chunks of LANE_CHUNK values whose float sums are added in
// order; every shape of tile, the single dot included, does each pair's arithmetic the same
// way. Each layout of weight rows (dot_legacy_avx512.c, dot_kquant_avx512.c) has a function
// that makes a step's operands and scales from its bytes, which the tile inlines.
//
// Q4_K goes through the same product (LANE_KQUANT): a super-block is one step, its eight
// sub-blocks of 32 take the place of the eight blocks, and the activation is a Q8_K
// super-block. Lanes 4L, 4L + 1 hold sub-block 2L and lanes 4L + 2, 4L + 3 sub-block 2L + 1
// (L = 0..3): operand i, 128-bit lane L, is values 8i..8i+7 of sub-block 2L, then of
// sub-block 2L + 1 (the low and high nibbles of code bytes 32L + 8i .. 32L + 8i + 7). The
// weights give two float factors per lane, d * sc and -dmin * m of its sub-block; the prepared
// activation gives d_a and d_a times the sum of the lane's 16 activation codes, so a pair
// adds float(sums) * (d * sc) * d_a and -dmin * m * d_a * (code sum): four dpbusd, one
// conversion, one multiply and two multiply-adds a super-block.
//
// Q6_K too: each of the 16 lanes holds one sub-block of 16 (operand i, lane m: values
// 16m + 4i .. 16m + 4i + 3), the factors are d * sc and -32 * d * sc (the codes' offset
// applied like Q4_K's minimums).

enum {
    LANE_STEP = 256,         // values per step
    LANE_CHUNK = 8192,       // values per chunk
    LANE_PREP_STEP = 6 * 64, // prepared bytes per step and activation row
    LANE_PREP_STRIDE = LANE_CHUNK / LANE_STEP * LANE_PREP_STEP, // ... per chunk
    LANE_ROWS = 2,                                              // weight rows per register tile
    LANE_ACTS = 6,                                              // activation rows per register tile
    LANE_K_PREFETCH = 8192, // bytes ahead a single K-quant row prefetches
    LANE_SPAN_STEPS = 8,    // steps a tile takes at a time when a chunk has more
    LANE_SPAN_TILES = 16,   // tiles of weight rows that take each span in turn
};
static_assert(LANE_ACTS * LANE_PREP_STRIDE <= KERNEL_PREP_BYTES, "a prepared tile fits");

// How a layout's codes meet the prepared activation: with an offset fixed by the type
// (prepared as the starting sums), with each block's own zero point (Q4_Z), or as K-quants
// (no offset; a minimum term per lane from the prepared lane sums).
typedef enum lane_kind { LANE_OFFSET, LANE_ZERO_POINT, LANE_KQUANT } lane_kind;

// One step of weights: operands and lane factors.
typedef struct lane_operands {
    __m512i x[4]; // values 0..7, 8..15, 16..23 and 24..31 of the eight blocks, in lane order
    __m512 d;     // the blocks' scales in their lanes
    __m512 m;     // K-quants: the factor of each lane's activation code sum
    __m512i z;    // LANE_ZERO_POINT: each lane's block's zero point (int32, below 256)
} lane_operands;

// The operands of the step at p with nblk blocks present (K-quants: always 8).
typedef lane_operands (*lane_operands_fn)(const uint8_t *p, int nblk);

// Which steps of its chunk a register tile takes: [from, to), and where its sums stay
// between the spans of a chunk (NULL when one span takes the whole chunk). A prepared tile
// of wide rows outgrows the L1 cache (6 rows of 5632 values: 50 KiB), so a group of weight
// tiles takes the chunk a span at a time, each span's prepared bytes read from L1 by every
// tile of the group; the sums only wait in memory, so the arithmetic is the same.
typedef struct lane_span {
    int from, to;
    __m512 *keep; // LANE_ROWS * LANE_ACTS sums
} lane_span;

// Operands 0 and 1 from the low nibbles of raw0 and raw1, 2 and 3 from their high ones (the
// layout of lane_nibbles and of the packed Q4_0, Q4_K and Q6_K rows); join_nibbles is the
// inverse.
ALWAYS_INLINE void split_nibbles(__m512i raw0, __m512i raw1, __m512i x[4])
{
    const __m512i low4 = _mm512_set1_epi8(0x0F);
    x[0] = _mm512_and_si512(raw0, low4);
    x[1] = _mm512_and_si512(raw1, low4);
    x[2] = _mm512_and_si512(_mm512_srli_epi16(raw0, 4), low4);
    x[3] = _mm512_and_si512(_mm512_srli_epi16(raw1, 4), low4);
}

// Stores operands of four bits as split_nibbles reads them: 128 bytes at dst.
ALWAYS_INLINE void join_nibbles(const __m512i x[4], uint8_t *dst)
{
    _mm512_storeu_si512((void *)dst, _mm512_or_si512(x[0], _mm512_slli_epi16(x[2], 4)));
    _mm512_storeu_si512((void *)(dst + 64), _mm512_or_si512(x[1], _mm512_slli_epi16(x[3], 4)));
}

// The eight scales stored at p in the order 0, 4, 1, 5, 2, 6, 3, 7, spread over their lanes.
ALWAYS_INLINE __m512 packed_scales(const uint8_t *p)
{
    __m256 d8 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
    return _mm512_permutexvar_ps(_mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7),
                                 _mm512_castps256_ps512(d8));
}

// An R x C register tile over one chunk of a strip, the steps of span: R weight rows (rows
// past nr repeat the last) and C prepared activation rows (rows past nc repeat the last).
// After the chunk's last step, adds (or stores) each of the nr x nc pairs' chunk sums to
// y[k * ldy + r]; before it, keeps the sums in span->keep. step_bytes: the weight bytes of a
// step; kind: how the codes meet the prepared rows (LANE_KQUANT: rows of Q8_K super-blocks);
// whole: every step has its eight blocks (the chunk is a multiple of 256 values), which the
// compiler then need not check step by step.
ALWAYS_INLINE void lane_tile(const kernel_strip *s, const kernel_chunk *ch, const lane_span *span,
                             int nr, int nc, float *y, int R, int C, lane_operands_fn operands,
                             size_t step_bytes, lane_kind kind, bool whole)
{
    bool kquant = kind == LANE_KQUANT;
    int steps = (int)((ch->len + LANE_STEP - 1) / LANE_STEP);
    int nblk_last = whole ? 8 : (int)(ch->len / 32 - 8 * (steps - 1));
    int from = span ? span->from : 0, to = span && span->to < steps ? span->to : steps;
    size_t ws = s->w_stride;
    __m512 acc[LANE_ROWS][LANE_ACTS];
    const uint8_t *rows[LANE_ROWS], *acts[LANE_ACTS];
    tile_rows(rows, ch->w + (size_t)from * step_bytes, ws, nr, R);
    // Prepared rows are LANE_PREP_STRIDE apart: a constant, so that the activation rows are
    // offsets from one register rather than six pointers.
    tile_rows(acts, ch->act, LANE_PREP_STRIDE, nc, C);
#pragma GCC unroll 8
    for (int r = 0; r < LANE_ROWS; r++)
#pragma GCC unroll 8
        for (int k = 0; k < LANE_ACTS; k++)
            acc[r][k] = from > 0 ? span->keep[r * LANE_ACTS + k] : _mm512_setzero_ps();
    // What to prefetch along each row: the next tile's rows (short interleaved row streams
    // are ones the hardware prefetcher does not follow; a single row streams in order), or
    // for a single K-quant row LANE_K_PREFETCH bytes ahead (it made Q4_K_M decoding
    // 29.6 -> 34.3 t/s on one thread, and Q4_0 and Q8_0 slower).
    const uint8_t *ahead[LANE_ROWS];
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
        ahead[r] = rows[r] + (R > 1 ? (size_t)R * ws : LANE_K_PREFETCH);
    for (int st = from; st < to; st++) {
        int nblk = st + 1 < steps ? 8 : nblk_last;
        lane_operands wv[LANE_ROWS];
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) {
            if (R > 1 || kquant)
                prefetch_lines(ahead[r], step_bytes);
            wv[r] = operands(rows[r], nblk);
            rows[r] += step_bytes, ahead[r] += step_bytes;
            // The operands stay in registers for every activation row: without this the
            // compiler loads packed ones again for each (packed Q8_0 with 3 activation rows:
            // 185 -> 135 GFLOP/s).
#pragma GCC unroll 4
            for (int i = 0; C > 1 && i < 4; i++)
                __asm__("" : "+v"(wv[r].x[i]));
        }
        size_t step_off = (size_t)st * LANE_PREP_STEP;
#pragma GCC unroll 8
        for (int k = 0; k < C; k++) {
            const uint8_t *pk = acts[k] + step_off;
            __m512i a[4];
#pragma GCC unroll 8
            for (int i = 0; i < 4; i++)
                a[i] = _mm512_load_si512((const void *)(pk + 64 * i));
            // K-quants: no offset; bytes 256.. are d_a times the lanes' code sums. Zero
            // points: bytes 256.. are -sum(a) per lane, below 2^15 in magnitude, so one
            // multiply-add of int16 pairs (z, 0) and (-sum, sign) makes -z * sum.
            __m512i base = kquant ? _mm512_setzero_si512()
                                  : _mm512_load_si512((const void *)(pk + 256));
            __m512 lane_sums = kquant ? _mm512_load_ps((const void *)(pk + 256))
                                      : _mm512_setzero_ps();
            __m512 da = _mm512_load_ps((const void *)(pk + 320));
            // Each activation operand is loaded once and kept in a register for every weight
            // row: folded into the dpbusd as memory operands, it is loaded again for each row
            // (2 x 6 tiles: 82 loads a step for 48 dpbusd, where the loads bound the step).
#pragma GCC unroll 4
            for (int i = 0; R > 1 && i < 4; i++)
                __asm__("" : "+v"(a[i]));
            if (R > 1 && !kquant)
                __asm__("" : "+v"(base));
            if (R > 1)
                __asm__("" : "+v"(da));
#pragma GCC unroll 8
            for (int r = 0; r < R; r++) {
                __m512i start = kind == LANE_ZERO_POINT ? _mm512_madd_epi16(wv[r].z, base) : base;
                __m512i p = _mm512_dpbusd_epi32(start, wv[r].x[0], a[0]);
                p = _mm512_dpbusd_epi32(p, wv[r].x[1], a[1]);
                p = _mm512_dpbusd_epi32(p, wv[r].x[2], a[2]);
                p = _mm512_dpbusd_epi32(p, wv[r].x[3], a[3]);
                acc[r][k] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), _mm512_mul_ps(wv[r].d, da),
                                            acc[r][k]);
                if (kquant)
                    acc[r][k] = _mm512_fmadd_ps(wv[r].m, lane_sums, acc[r][k]);
            }
        }
    }
    if (to < steps) {
#pragma GCC unroll 8
        for (int r = 0; r < LANE_ROWS; r++)
#pragma GCC unroll 8
            for (int k = 0; k < LANE_ACTS; k++)
                span->keep[r * LANE_ACTS + k] = acc[r][k];
        return;
    }
    tile_finish(y, s->ldy, ch->first, &acc[0][0], NULL, LANE_ACTS, R, C, nr, nc);
}

// A tile of nr <= LANE_ROWS rows and nc <= LANE_ACTS activation rows by the smallest shape
// with code of its own that covers it. (The shape is chosen right before the switch, so that
// each case knows its bounds on nc: the 6-wide one reads rows 0..4 at constant offsets.)
ALWAYS_INLINE void lane_tile_any(const kernel_strip *s, const kernel_chunk *ch, const lane_span *sp,
                                 int nr, int nc, float *y, lane_operands_fn f, size_t step_bytes,
                                 lane_kind kind, bool whole)
{
    static_assert(LANE_ROWS == 2 && LANE_ACTS == 6, "one case per shape");
    if (nr == 1 && nc == 1) {
        lane_tile(s, ch, sp, 1, 1, y, 1, 1, f, step_bytes, kind, whole);
        return;
    }
    int c = FEW_SHAPES ? 6 : nc <= 2 ? 2 : nc <= 4 ? nc : 6;
    switch (c) {
    case 2: lane_tile(s, ch, sp, nr, nc, y, LANE_ROWS, 2, f, step_bytes, kind, whole); return;
    case 3: lane_tile(s, ch, sp, nr, nc, y, LANE_ROWS, 3, f, step_bytes, kind, whole); return;
    case 4: lane_tile(s, ch, sp, nr, nc, y, LANE_ROWS, 4, f, step_bytes, kind, whole); return;
    default: lane_tile(s, ch, sp, nr, nc, y, LANE_ROWS, 6, f, step_bytes, kind, whole); return;
    }
}

// The strip of a lane product: its rows in register tiles of s->tile_rows rows, each over
// the strip's chunks in order; a chunk whose prepared rows outgrow LANE_SPAN_STEPS steps of a
// full tile is taken a span at a time by groups of LANE_SPAN_TILES tiles (see lane_span).
ALWAYS_INLINE void lane_strip(const kernel_strip *s, lane_operands_fn operands, size_t step_bytes,
                              lane_kind kind)
{
    bool kquant = kind == LANE_KQUANT;
    assert(s->prepared && s->act_stride == LANE_PREP_STRIDE);
    if (s->n_act == 1 && s->len <= LANE_CHUNK && (kquant || s->len % LANE_STEP == 0)) {
        // Decoding: one row after another, nothing but the tile per row.
        kernel_chunk ch = kernel_strip_chunk(s, LANE_CHUNK, 0, 0);
        for (int64_t r = 0; r < s->rows; r++, ch.w += s->w_stride)
            lane_tile(s, &ch, NULL, 1, 1, s->y + r, 1, 1, operands, step_bytes, kind, true);
        return;
    }
    __m512 keep[LANE_SPAN_TILES][LANE_ROWS * LANE_ACTS];
    int tr = s->tile_rows;
    int64_t group = (int64_t)LANE_SPAN_TILES * tr;
    for (int64_t g = 0; g < s->rows; g += group) {
        int64_t g_end = s->rows - g < group ? s->rows : g + group;
        for (int64_t j = 0; j * LANE_CHUNK < s->len; j++) {
            kernel_chunk first = kernel_strip_chunk(s, LANE_CHUNK, j, 0);
            int steps = (int)((first.len + LANE_STEP - 1) / LANE_STEP);
            bool whole = kquant || (s->n_act > 1 && first.len % LANE_STEP == 0);
            // Spans once the chunk's prepared rows outgrow what a 6-row span takes; never for
            // a single activation row, which nothing reads twice (its weight rows stream whole).
            bool spans = s->n_act > 1 && s->n_act * steps > LANE_ACTS * LANE_SPAN_STEPS;
            for (int from = 0; from < steps; from += LANE_SPAN_STEPS) {
                for (int64_t r = g; r < g_end; r += tr) {
                    int nr = (int)(s->rows - r < tr ? s->rows - r : tr);
                    kernel_chunk ch = kernel_strip_chunk(s, LANE_CHUNK, j, r);
                    lane_span sp = {from, from + LANE_SPAN_STEPS, keep[(r - g) / tr]};
                    const lane_span *span = spans ? &sp : NULL;
                    if (whole)
                        lane_tile_any(s, &ch, span, nr, s->n_act, s->y + r, operands, step_bytes,
                                      kind, true);
                    else
                        lane_tile_any(s, &ch, span, nr, s->n_act, s->y + r, operands, step_bytes,
                                      kind, false);
                }
                if (!spans)
                    break;
            }
        }
    }
}

// The initializer of a lane product with that strip and prepare.
#define LANE_PRODUCT(strip_fn, prepare_fn)                                                         \
    {                                                                                              \
        .strip = (strip_fn), .prepare = (prepare_fn), .prep_stride = LANE_PREP_STRIDE,             \
        .chunk = LANE_CHUNK, .tile_rows = LANE_ROWS, .tile_acts = LANE_ACTS                        \
    }

#endif
