// SPDX-License-Identifier: MIT
// The inside of the kernels module, shared by its files, its tests and its benchmark: the
// per-ISA variants (scalar _ref, _avx2, _avx512) of every dot product and matrix product, the
// tables that map a weight type to a variant's kernels, the contract of a matrix product with
// the one blocking loop that drives every product (kernels.c), and the activation converters.
// kernels.c picks one variant at run time; tests and benches call each variant directly.
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
typedef void (*kernel_dot_x4_fn)(const void *w_row, const void *act, size_t act_stride, int64_t n,
                                 float out[4]);

typedef struct kernel_type_ops kernel_type_ops;
typedef struct kernel_product kernel_product;

// One strip of a matrix product, the piece of work the blocking loop (kernel_matmul_variant)
// hands a product's kernel: `rows` weight rows times n_act activation rows over `len` values
// of every row, one or more whole chunks of product->chunk values (the last one possibly
// shorter; one chunk of whole rows when product->chunk is 0). Chunk j of weight row r starts
// at w + r * w_stride + j * w_chunk_stride, its activation row k at act + k * act_stride +
// j * act_chunk_stride. The kernel adds each pair's sum over a chunk to y[k * ldy + r] in
// chunk order, storing the first chunk's instead when `first` is set.
typedef struct kernel_strip {
    const kernel_type_ops *ops;    // the variant's kernels for the weight type
    const kernel_product *product; // the product the strip belongs to
    const uint8_t *w;              // weight row 0, at the strip's first value
    size_t w_stride, w_chunk_stride;
    int64_t rows;       // weight rows
    int tile_rows;      // rows per register tile: 1 when the whole product has one
                        // activation row (the weights then stream in order), else
                        // product->tile_rows
    const uint8_t *act; // activation row 0: prepared, else the converted row at
                        // the strip's first value
    size_t act_stride, act_chunk_stride;
    bool prepared; // the activation rows are prepared (product->prepare)
    int n_act;     // activation rows, 1 .. product->tile_acts
    int64_t len;   // values
    bool first;    // the strip starts at the rows' first value
    float *y;      // the outputs (see above)
    int64_t ldy;
} kernel_strip;

// Chunk j (chunk values each) of a strip, from weight row r: what a register tile reads.
typedef struct kernel_chunk {
    const uint8_t *w;   // weight row r at the chunk's first value (rows s->w_stride apart)
    const uint8_t *act; // activation row 0 of the chunk (rows s->act_stride apart)
    int64_t len;        // values
    bool first;         // store the sums rather than add them
} kernel_chunk;

static inline kernel_chunk kernel_strip_chunk(const kernel_strip *s, int64_t chunk, int64_t j,
                                              int64_t r)
{
    int64_t left = s->len - j * chunk;
    return (kernel_chunk){.w = s->w + (size_t)r * s->w_stride + (size_t)j * s->w_chunk_stride,
                          .act = s->act + (size_t)j * s->act_chunk_stride,
                          .len = left < chunk ? left : chunk,
                          .first = s->first && j == 0};
}

// A variant's matrix product over one layout of a weight type's rows, as the one blocking
// loop drives it. The loop splits the activation rows into tiles of tile_acts rows. With
// several tiles it splits the rows' values into chunks of `chunk` values and the weight rows
// into panels of about KERNEL_PANEL_BYTES (a multiple of tile_rows rows), prepares each tile
// once per panel and chunk and hands every (panel, tile) to strip: the panel stays in cache
// while every tile streams past. With a single tile nothing is read twice: the strip takes
// every row and as many chunks as the prepared tile fits (all of them for a single row of up
// to 18k values), so each weight row streams whole. Each output equals the variant's single
// dot of its pair (kernel_variant_dot), whatever the strip, so a row's result does not depend
// on the batch it is computed in.
struct kernel_product {
    void (*strip)(const kernel_strip *s);
    // Rearranges one chunk of a converted activation row, `len` values from act (the chunk's
    // first value), into the strip's operand layout at dst (64-byte aligned, prep_stride
    // bytes). NULL: strips read the converted rows as they are.
    void (*prepare)(const void *act, int64_t len, void *dst);
    size_t prep_stride;       // bytes of one prepared row; tile_acts of them fit KERNEL_PREP_BYTES
    bool single_unprepared;   // a product of one activation row reads it converted, unprepared
    int64_t chunk;            // values per chunk, a multiple of 256; 0: whole rows
    int tile_rows, tile_acts; // the register tile's weight rows and largest activation rows
    kernel_dot_x4_fn dot_x4;  // kernel_strip_dots only: four activation rows at once
};

// Bytes of weights per panel: a panel stays in the L2 cache (1 MiB a core on Zen 4 and on
// Intel's AVX-512 server cores) while every tile of activation rows streams past it. On
// Zen 4, bench_kernels' batched products (8, 16, 512 rows; Q4_0, Q8_0, Q4_K, Q6_K, F16, every
// variant) ran 0.3-0.7 % faster (median) with 384 KiB than with 256 KiB, and no faster with
// 512 KiB. KERNEL_PREP_BYTES bounds a tile of prepared activation rows (on the loop's stack).
enum { KERNEL_PANEL_BYTES = 384 << 10, KERNEL_PREP_BYTES = 72 << 10 };

// The strip of products made of dots: each weight row by dot_x4 when the strip has four
// activation rows and the product names one, else by the variant's dot row by row. Whole
// rows (chunk 0), register tiles of 1 x 4.
void kernel_strip_dots(const kernel_strip *s);

// The initializer of a product made of dots (kernel_strip_dots); x4 may be NULL.
#define KERNEL_BY_DOTS(x4)                                                                         \
    {                                                                                              \
        .strip = kernel_strip_dots, .tile_rows = 1, .tile_acts = 4, .dot_x4 = (x4)                 \
    }

// A variant's kernels for one weight type: one matrix product over rows as stored, and where
// the variant has a layout of its own for the type, the same product over rows in that
// layout, made once at load by pack (one row of n values, the same bytes per row); the two
// give exactly the same results.
struct kernel_type_ops {
    // The single dot, the truth the products are tested against (and it against the scalar
    // reference). NULL: the dot is the product's 1 x 1 case.
    kernel_dot_fn dot;
    kernel_product product;
    void (*pack)(const void *row, void *dst, int64_t n); // NULL: no layout of its own
    kernel_product packed;
};

// A variant's float helpers for attention and the feed-forward step, one member for each
// public helper of the same name in kernels.h (kernel_dot_f32, kernel_axpy_f32, ...); every
// variant has all of them.
typedef struct kernel_float_ops {
    float (*dot_f32)(const float *a, const float *b, int64_t n);
    float (*dot_f32_f16)(const float *a, const uint16_t *b_half, int64_t n);
    void (*axpy_f32)(float *y, float a, const float *x, int64_t n);
    void (*axpy_f16)(float *y, float a, const uint16_t *x_half, int64_t n);
    void (*dot_rows_f32)(const float *q, int64_t q_stride, int64_t n_q, const float *rows,
                         int64_t pitch, int64_t n_rows, int64_t n, float scale, float *out,
                         int64_t out_stride);
    void (*axpy_rows_f32)(float *y, int64_t y_stride, int64_t n_q, const float *w, int64_t w_stride,
                          const float *rows, int64_t pitch, int64_t n_rows, int64_t n);
    void (*dot_rows_f16)(const float *q, int64_t q_stride, int64_t n_q, const uint16_t *rows,
                         int64_t pitch, int64_t n_rows, int64_t n, float scale, float *out,
                         int64_t out_stride);
    void (*axpy_rows_f16)(float *y, int64_t y_stride, int64_t n_q, const float *w, int64_t w_stride,
                          const uint16_t *rows, int64_t pitch, int64_t n_rows, int64_t n);
    float (*max_f32)(const float *x, int64_t n);
    void (*dot_rows_q8_0)(const void *q, size_t q_stride, int64_t n_q, const void *rows,
                          size_t pitch, int64_t n_rows, int64_t n, float scale, float *out,
                          int64_t out_stride);
    void (*axpy_rows_q8_0)(float *y, int64_t y_stride, int64_t n_q, const float *w,
                           int64_t w_stride, const void *rows, size_t pitch, int64_t n_rows,
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

// Variant v's kernels for weight_type. With own_only, NULL when v has no code of its own for
// the type; otherwise the next lower variant's kernels stand in (ending at _ref, which has
// every supported type). NULL for unsupported types.
const kernel_type_ops *kernel_variant_type_ops(kernel_variant v, uint32_t weight_type,
                                               bool own_only);

// Variant v's float helpers.
const kernel_float_ops *kernel_variant_float_ops(kernel_variant v);

// Variant v's single dot of one weight row with one converted activation row (v must be
// available): its dot, or its product's 1 x 1 case.
float kernel_variant_dot(kernel_variant v, uint32_t weight_type, const void *w_row,
                         const void *act_row, int64_t n);

// kernel_matmul with an explicit variant (v must be available): the blocking loop, driving
// the variant's product over rows as stored, or with packed over rows that variant v's pack
// made (kernel_matmul_packed; v must have a layout of its own for the type).
void kernel_matmul_variant(kernel_variant v, uint32_t weight_type, bool packed, const void *w,
                           int64_t n, int64_t r0, int64_t r1, const void *act, int64_t n_act,
                           float *y, int64_t ldy);

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
void kernel_act_convert_variant(kernel_variant v, uint32_t weight_type, const float *x, void *dst,
                                int64_t n);

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
float kernel_dot_mxfp4_q8_0_ref(const void *w, const void *a, int64_t n);
float kernel_dot_q4_z_q8_0_ref(const void *w, const void *a, int64_t n);
float kernel_dot_f8_e4m3_f32_ref(const void *w, const void *a, int64_t n);

float kernel_dot_f32_ref(const float *a, const float *b, int64_t n);
float kernel_dot_f32_f16_ref(const float *a, const uint16_t *b_half, int64_t n);
void kernel_axpy_f32_ref(float *y, float a, const float *x, int64_t n);
void kernel_dot_rows_f32_ref(const float *q, int64_t q_stride, int64_t n_q, const float *rows,
                             int64_t pitch, int64_t n_rows, int64_t n, float scale, float *out,
                             int64_t out_stride);
void kernel_axpy_rows_f32_ref(float *y, int64_t y_stride, int64_t n_q, const float *w,
                              int64_t w_stride, const float *rows, int64_t pitch, int64_t n_rows,
                              int64_t n);
void kernel_dot_rows_q8_0_ref(const void *q, size_t q_stride, int64_t n_q, const void *rows,
                              size_t pitch, int64_t n_rows, int64_t n, float scale, float *out,
                              int64_t out_stride);
void kernel_axpy_rows_q8_0_ref(float *y, int64_t y_stride, int64_t n_q, const float *w,
                               int64_t w_stride, const void *rows, size_t pitch, int64_t n_rows,
                               int64_t n);
void kernel_dot_rows_f16_ref(const float *q, int64_t q_stride, int64_t n_q, const uint16_t *rows,
                             int64_t pitch, int64_t n_rows, int64_t n, float scale, float *out,
                             int64_t out_stride);
void kernel_axpy_rows_f16_ref(float *y, int64_t y_stride, int64_t n_q, const float *w,
                              int64_t w_stride, const uint16_t *rows, int64_t pitch, int64_t n_rows,
                              int64_t n);
float kernel_max_f32_ref(const float *x, int64_t n);
float kernel_exp_sum_f32_ref(float *x, int64_t n, float max);
void kernel_swiglu_f32_ref(float *gate, const float *up, int64_t n);
void kernel_axpy_f16_ref(float *y, float a, const uint16_t *x_half, int64_t n);

// Per-ISA tables (x86-64 only), indexed by weight type, entries with a NULL product strip
// where the file has no code for the type: dot_avx2.c, and the AVX-512 files by family
// (dot_float_avx512.c: F32, F16, BF16 and the float helpers; dot_legacy_avx512.c: the blocks
// of 32 values; dot_kquant_avx512.c: the super-blocks of 256).
extern const kernel_type_ops kernel_avx2_type_ops[];
extern const kernel_float_ops kernel_avx2_float_ops;
extern const kernel_type_ops kernel_avx512_float_type_ops[];
extern const kernel_type_ops kernel_avx512_legacy_type_ops[];
extern const kernel_type_ops kernel_avx512_kquant_type_ops[];
extern const kernel_float_ops kernel_avx512_float_ops;
// The attention scores over Q8_0 cache rows (attention_avx2.c, attention_avx512.c), members
// of the float helper tables.
void kernel_dot_rows_q8_0_avx2(const void *q, size_t q_stride, int64_t n_q, const void *rows,
                               size_t pitch, int64_t n_rows, int64_t n, float scale, float *out,
                               int64_t out_stride);
void kernel_dot_rows_q8_0_avx512(const void *q, size_t q_stride, int64_t n_q, const void *rows,
                                 size_t pitch, int64_t n_rows, int64_t n, float scale, float *out,
                                 int64_t out_stride);
void kernel_axpy_rows_q8_0_avx2(float *y, int64_t y_stride, int64_t n_q, const float *w,
                                int64_t w_stride, const void *rows, size_t pitch, int64_t n_rows,
                                int64_t n);
void kernel_axpy_rows_q8_0_avx512(float *y, int64_t y_stride, int64_t n_q, const float *w,
                                  int64_t w_stride, const void *rows, size_t pitch, int64_t n_rows,
                                  int64_t n);

#endif
