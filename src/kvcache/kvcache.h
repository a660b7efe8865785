// SPDX-License-Identifier: MIT
// The paged KV cache: per loaded model, a pool of fixed-size blocks (block_tokens positions
// each, a K row and a V row per position and layer), a block table per sequence, and a
// prefix cache that shares full blocks between sequences by a chained hash of their tokens.
// Layers come in two kinds: full-attention layers keep every position, in "full" blocks;
// sliding-window layers read only their last `window` positions, so their rows live in
// "window" blocks of their own, which a sequence gives back as its positions leave the
// window. Unreferenced cached blocks are evicted least-recently-used. Rows are stored as F16,
// Q8_0, FP8 E4M3 or F32. See docs/kvcache.md for the layout, the hashing and how a scheduler
// uses it.
#ifndef GARLIC_KVCACHE_H
#define GARLIC_KVCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

// ---- element types and rows ----

// KV element types. F16 is the default (a zeroed config gets it).
typedef enum kv_type {
    KV_TYPE_F16,      // IEEE half
    KV_TYPE_Q8_0,     // blocks of 32: half scale + 32 int8 (34 bytes); rows a multiple of 32
    KV_TYPE_FP8_E4M3, // 1 sign, 4 exponent (bias 7), 3 mantissa bits; max 448, no infinities
    KV_TYPE_F32,      // exact, for fidelity tests
    KV_TYPE_COUNT
} kv_type;

// Parses "f16", "q8_0", "fp8" (or "fp8_e4m3") and "f32"; false otherwise.
bool kv_type_parse(const char *name, kv_type *out);

// The canonical name of a type ("f16"), or "?" for an unknown value.
const char *kv_type_name(kv_type type);

// Bytes of a row of n values of type: false if the type is unknown, n is not a multiple of
// the type's block (32 for Q8_0) or the size overflows.
bool kv_row_size(kv_type type, uint64_t n, uint64_t *bytes);

// Stores n floats (a multiple of 32 for Q8_0) as one row of type at dst (kv_row_size bytes).
void kv_row_store(kv_type type, void *dst, const float *src, uint64_t n);

// Loads (dequantizes) n values of a row of type at src into floats at dst.
void kv_row_load(kv_type type, const void *src, float *dst, uint64_t n);

// FP8 E4M3 (the "FN" variant): value = (-1)^s * 2^(e-7) * (1 + m/8) for e in 1..15, and
// (-1)^s * 2^-6 * m/8 for e = 0; codes 0x7F and 0xFF are NaN. Encoding rounds to nearest,
// ties to even, saturates finite overflow and infinities to +-448, keeps the sign of zero
// and maps NaN to 0x7F (0xFF when the sign bit is set).
uint8_t kv_fp8_from_f32(float f);
float kv_fp8_to_f32(uint8_t code);

// ---- the pool ----

typedef struct kv_cache kv_cache;

enum {
    KV_DEFAULT_BLOCK_TOKENS = 16, // what the server's pools use
    KV_MAX_BLOCK_TOKENS = 1024,
    KV_MAX_BLOCKS = 1 << 30, // block ids are uint32; KV_NO_BLOCK is never an id
    KV_MAX_LAYERS = 4096,    // layers a window mask can name (model_load's limit)
};
#define KV_NO_BLOCK UINT32_MAX

// Which layers attend over a sliding window. A token at position p reads, in such a layer,
// positions p - window + 1 .. p (its own included); positions before that are never read
// again, so a sequence keeps only the window blocks that cover its last window - 1 positions
// and the ones it is computing. A zeroed kv_windows: every layer is full.
typedef struct kv_windows {
    uint32_t window;                     // positions a window layer reads (0: no window layers)
    uint64_t layers[KV_MAX_LAYERS / 64]; // bit l % 64 of word l / 64: layer l has the window
} kv_windows;

// Marks layer l as a window layer; false (nothing changed) when l >= KV_MAX_LAYERS.
bool kv_windows_set(kv_windows *w, uint32_t l);

// Whether layer l is a window layer.
static inline bool kv_windows_has(const kv_windows *w, uint32_t l)
{
    return l < KV_MAX_LAYERS && (w->layers[l / 64] >> (l % 64) & 1);
}

// Window layers among the first n_layer.
uint32_t kv_windows_count(const kv_windows *w, uint32_t n_layer);

typedef struct kv_cache_config {
    uint32_t n_layer;
    uint32_t n_head_kv;
    uint32_t head_dim_k;   // K row = n_head_kv * head_dim_k values
    uint32_t head_dim_v;   // V row = n_head_kv * head_dim_v values; 0: no V rows (the
                           // model reads its values from the K rows)
    uint32_t block_tokens; // positions per block (16 is typical), 1..KV_MAX_BLOCK_TOKENS
    kv_type type;
    uint32_t n_blocks;        // full blocks to allocate, or 0 to derive them from budget_bytes
    uint64_t budget_bytes;    // total bytes the cache may take (used when n_blocks is 0)
    kv_windows windows;       // the window layers (none: one kind of block, as without windows)
    uint32_t n_window_blocks; // window blocks: at most the full blocks are allocated (no more
                              // can ever be in use); 0: as many as full blocks. Ignored
                              // without window layers. kv_window_blocks_for sizes it.
} kv_cache_config;

// Bytes one row of K (V) takes: n_head_kv * head_dim values of cfg->type. Fails with
// GARLIC_EINVAL or GARLIC_EUNSUPPORTED (Q8_0 with a head dimension not a multiple of 32) and
// a message naming the field.
int kv_cache_row_bytes(const kv_cache_config *cfg, uint64_t *k_row, uint64_t *v_row,
                       garlic_error *err);

// Total bytes kv_cache_new allocates for n_blocks full blocks of cfg and its window blocks
// (KV data, tokens, block metadata, the prefix map, the window links and the struct
// itself), computed with overflow checks.
int kv_cache_bytes_for(const kv_cache_config *cfg, uint32_t n_blocks, uint64_t *bytes,
                       garlic_error *err);

// The window blocks a pool of n_blocks full blocks of cfg allocates (0 without window
// layers): cfg->n_window_blocks, or n_blocks when that is 0 or more.
uint32_t kv_cache_window_blocks(const kv_cache_config *cfg, uint32_t n_blocks);

// The window blocks that n_seqs running sequences can hold at once when every step appends
// at most step_tokens positions among them (a scheduler's batch): each holds the blocks of
// its last window - 1 positions at worst alignment, plus its share of the step, whose blocks
// add at most ceil(step_tokens / block_tokens) + n_seqs - 1. A pool with this many window
// blocks (or as many as full blocks, when fewer) never runs short of window blocks before it
// runs short of full ones. 0 without window layers; saturates at UINT32_MAX.
uint32_t kv_window_blocks_for(const kv_cache_config *cfg, uint32_t n_seqs, uint32_t step_tokens);

// Data bytes (K and V rows) one full block and one window block hold.
void kv_cache_block_data_bytes(const kv_cache_config *cfg, uint64_t *full, uint64_t *window);

// The largest full block count whose kv_cache_bytes_for fits in budget_bytes (at most
// KV_MAX_BLOCKS; window blocks follow cfg->n_window_blocks). Fails with GARLIC_EINVAL when
// not even one block fits.
int kv_cache_blocks_for_budget(const kv_cache_config *cfg, uint64_t budget_bytes,
                               uint32_t *n_blocks, garlic_error *err);

// Allocates the whole pool once: every later operation works inside it and allocates
// nothing, except a kv_seq's block table when it grows. Returns NULL and fills err on bad
// configuration (GARLIC_EINVAL, GARLIC_EUNSUPPORTED) or out of memory (GARLIC_ENOMEM).
//
// Thread ownership: a kv_cache and every kv_seq using it belong to one thread, the model's
// scheduler thread; nothing here locks. Compute workers may read and write rows through
// pointers the scheduler handed them while it waits for the step to end, as long as no
// block table changes during that step.
kv_cache *kv_cache_new(const kv_cache_config *cfg, garlic_error *err);

// Frees the pool. Sequences must be released first (their tables are the caller's);
// kv_cache_free(NULL) is a no-op.
void kv_cache_free(kv_cache *c);

// The configuration as allocated: n_blocks and n_window_blocks filled in (the latter 0
// without window layers), budget_bytes 0.
const kv_cache_config *kv_cache_get_config(const kv_cache *c);
uint64_t kv_cache_bytes(const kv_cache *c);     // bytes allocated by kv_cache_new
size_t kv_cache_k_row_bytes(const kv_cache *c); // bytes of one K row (one position, one layer)
size_t kv_cache_v_row_bytes(const kv_cache *c);

// Whether layer's rows live in window blocks.
bool kv_cache_layer_is_window(const kv_cache *c, uint32_t layer);

// The K (V) row of position `offset` of `block` in `layer`: a full block for a full layer,
// a window block for a window layer (kv_seq_table gives the right table). Rows of one
// (layer, block) are consecutive: offset + 1 is kv_cache_k_row_bytes further. Valid until
// kv_cache_free; the caller must own the block (through a kv_seq) to write, and must not
// write a shared or published block (see kv_seq_append). Arguments are the caller's
// responsibility (asserted).
uint8_t *kv_cache_k_row(const kv_cache *c, uint32_t layer, uint32_t block, uint32_t offset);
uint8_t *kv_cache_v_row(const kv_cache *c, uint32_t layer, uint32_t block, uint32_t offset);

// Converts and stores one position's K and V (n_head_kv * head_dim floats each) in a row of
// layer's kind of block; v is not read when the pool has no V rows.
void kv_cache_store(kv_cache *c, uint32_t layer, uint32_t block, uint32_t offset, const float *k,
                    const float *v);

// A device that keeps its own copy of some layers' rows (backend/) is told of every copy of
// rows the pool makes between blocks of one kind (copy on write of a shared block): the first
// n_rows rows of block `from` were copied to block `to`, in every layer of that kind (window
// blocks when `window`); and, from kv_cache_free, that the pool is gone (the device frees its
// rows). One mirror at a time; NULL removes it (the pool keeps a copy of *m).
typedef struct kv_mirror {
    void (*copy)(void *ctx, bool window, uint32_t to, uint32_t from, uint32_t n_rows);
    void (*gone)(void *ctx, const kv_cache *c);
    void *ctx;
} kv_mirror;
void kv_cache_set_mirror(kv_cache *c, const kv_mirror *m);

// The copy a mirror was told of, done on another pool of the same configuration (a
// tensor-parallel rank replaying its leader's copies): the first n_rows rows of block `from`
// into block `to`, every layer of the kind. GARLIC_EINVAL for blocks or rows outside the pool.
int kv_cache_copy_rows_of(kv_cache *c, bool window, uint32_t to, uint32_t from, uint32_t n_rows,
                          garlic_error *err);

// Blocks that n_tokens positions need (ceil(n_tokens / block_tokens)).
uint32_t kv_cache_blocks_for_tokens(const kv_cache *c, uint64_t n_tokens);

// Counts of the pool, for each kind. free + cached + used == n_blocks always, and the same
// for the window blocks.
typedef struct kv_cache_stats {
    uint32_t n_blocks;        // full blocks
    uint32_t n_free;          // never used or unpublished: ready to hand out
    uint32_t n_cached;        // published, unreferenced: reclaimable by LRU eviction
    uint32_t n_used;          // referenced by at least one sequence
    uint32_t n_window_blocks; // window blocks (0 without window layers), and their states
    uint32_t n_window_free;
    uint32_t n_window_cached;
    uint32_t n_window_used;
    uint64_t bytes;            // kv_cache_bytes
    uint64_t window_bytes;     // of which the window blocks' data and bookkeeping
    uint64_t used_bytes;       // pro rata of each kind's bytes for the blocks in use
    uint64_t prefix_hits;      // full prompt blocks found in the prefix cache and shared
    uint64_t prefix_misses;    // full prompt blocks looked up and not shared
    uint64_t evictions;        // cached full blocks reclaimed for new use
    uint64_t window_evictions; // cached window blocks reclaimed (or dropped with their full
                               // block)
    uint64_t dedups;           // committed blocks replaced by an identical cached block
} kv_cache_stats;

kv_cache_stats kv_cache_get_stats(const kv_cache *c);

// Whether n new block table entries (kv_seq_blocks_needed) can be had now: each takes a full
// block and, with window layers, a window block, free or reclaimable.
bool kv_cache_has_blocks(const kv_cache *c, uint64_t n);

// Whether a new sequence of n_tokens positions, appended at once, could get its blocks now,
// counting cached unreferenced blocks as reclaimable (ignores prefix hits; see
// kv_cache_can_admit_prompt).
bool kv_cache_can_admit(const kv_cache *c, uint64_t n_tokens);

// Like kv_cache_can_admit for a sequence of n_total positions whose first n_shared tokens
// (tokens[0..n_shared)) it would share from the prefix cache, as kv_seq_share_prefix does:
// the blocks it shares need no new block (and are then not reclaimable), and spare_blocks
// more of each kind must stay free or reclaimable afterwards (headroom for others). Its
// window blocks are counted at their peak when it appends at most step_tokens positions at
// a time (0: all at once).
bool kv_cache_can_admit_prompt(const kv_cache *c, const int32_t *tokens, uint32_t n_shared,
                               uint64_t n_total, uint32_t step_tokens, uint32_t spare_blocks);

// How many leading full blocks of tokens[0..n) kv_seq_share_prefix would share: the prefix
// cache holds them, and with window layers also the window blocks before the last of them
// (no side effects).
uint32_t kv_cache_prefix_lookup(const kv_cache *c, const int32_t *tokens, uint32_t n);

// The reference count of a full (window) block, for invariant checks and tests.
uint32_t kv_cache_block_refs(const kv_cache *c, uint32_t block);
uint32_t kv_cache_window_block_refs(const kv_cache *c, uint32_t block);

// Checks every internal invariant (counts, free stacks, LRU lists, prefix map, window links,
// states) and returns GARLIC_OK or GARLIC_EFORMAT with a message naming the first broken
// one. O(n_blocks).
int kv_cache_check(const kv_cache *c, garlic_error *err);

// The block hash: a 64-bit hash of n tokens chained with the hash of everything before them
// (parent; KV_HASH_ROOT for the first block).
#define KV_HASH_ROOT UINT64_C(0x6761726c69636b76)
uint64_t kv_block_hash(uint64_t parent, const int32_t *tokens, uint32_t n);

// Test hook: replaces the block hash of c (NULL restores kv_block_hash), so that tests can
// force collisions. Call it only while no block is published.
typedef uint64_t (*kv_hash_fn)(uint64_t parent, const int32_t *tokens, uint32_t n);
void kv_cache_set_hash_fn(kv_cache *c, kv_hash_fn fn);

// ---- sequences ----

// A sequence's block tables: position p lives at offset p % block_tokens of
// blocks[p / block_tokens] for the full layers, and of window_blocks[p / block_tokens] for
// the window layers, which hold only entries window_first.. (older ones are KV_NO_BLOCK:
// their positions left the window). The storage is the caller's (kv_seq_init/kv_seq_deinit);
// the tables are read by attention and changed only by the kv_seq_* functions, on the owning
// scheduler thread. Blocks below n_committed / block_tokens are full, published and
// read-only; the blocks after them belong to this sequence alone.
typedef struct kv_seq {
    uint32_t *blocks;        // (capacity) full block ids, n_blocks of them in use
    uint32_t *window_blocks; // (capacity) window block ids (NULL without window layers)
    uint32_t n_blocks;
    uint32_t window_first; // first entry of window_blocks still held
    uint32_t capacity;     // entries allocated in each table
    uint32_t n_tokens;     // positions reserved (their tokens are known)
    uint32_t n_committed;  // positions whose K and V are written (kv_seq_commit)
} kv_seq;

// An empty sequence holding no blocks and no memory.
void kv_seq_init(kv_seq *s);

// Releases the sequence's blocks into c and frees its tables; s is empty afterwards.
void kv_seq_deinit(kv_cache *c, kv_seq *s);

// Grows the tables to hold n_tokens positions without allocating later (so that a decode
// loop allocates nothing). GARLIC_ENOMEM leaves s usable as it was.
int kv_seq_reserve(const kv_cache *c, kv_seq *s, uint64_t n_tokens, garlic_error *err);

// New table entries that appending n_more positions to s needs (each takes a block of each
// kind; kv_cache_has_blocks says whether they can be had).
uint32_t kv_seq_blocks_needed(const kv_cache *c, const kv_seq *s, uint64_t n_more);

// Shares the leading full blocks of tokens[0..n) that the prefix cache holds with s, which
// must be empty (GARLIC_EINVAL otherwise), together with the cached window blocks of the
// last window - 1 positions before the shared ones: a prefix whose window blocks are no
// longer cached is shared only as far as they are. *n_shared gets the positions shared (a
// multiple of block_tokens); they count as committed. Updates the hit and miss counters. A
// scheduler passes the prompt without its last token, so at least one position is left to
// compute.
int kv_seq_share_prefix(kv_cache *c, kv_seq *s, const int32_t *tokens, uint32_t n,
                        uint32_t *n_shared, garlic_error *err);

// Reserves n more positions for tokens[0..n) at positions n_tokens.., taking blocks (full
// and window) from the free lists or, when one is empty, evicting the least recently used
// cached block of that kind. All or nothing: GARLIC_ENOMEM (pool or table) leaves s and c
// unchanged. The new positions' rows are then written by the caller (kv_cache_store or the
// forward pass) and committed.
int kv_seq_append(kv_cache *c, kv_seq *s, const int32_t *tokens, uint32_t n, garlic_error *err);

// Declares positions [0, n_written) written (n_committed <= n_written <= n_tokens, else
// GARLIC_EINVAL). Every block that becomes full is published in the prefix cache, its window
// block with it; when an identical block is already cached, s switches to it and its own copy
// is freed (so the tables may change: re-read them after committing). Then the window blocks
// that only positions before n_written - window + 1 use are released (published ones stay
// cached): no later token reads them.
int kv_seq_commit(kv_cache *c, kv_seq *s, uint32_t n_written, garlic_error *err);

// Keeps positions [0, n) and releases the rest (n > n_tokens is GARLIC_EINVAL). When the new
// last block is partial and published, it (and its window block) is replaced by a private
// copy of its kept rows (GARLIC_ENOMEM, with s unchanged, if no block can be had for it).
// Rewinding so far that the next position's window reaches rows already released is refused
// with GARLIC_EUNSUPPORTED, s unchanged: they would have to be recomputed (release the
// sequence and start it again instead).
int kv_seq_truncate(kv_cache *c, kv_seq *s, uint32_t n, garlic_error *err);

// Releases every block of s (preemption, cancellation, end of request): published blocks
// stay cached until evicted, the others return to the free lists. Blocks are released last
// first, so a prefix's deeper blocks are evicted before its head. Keeps the tables' memory.
// Returns how many full blocks became reclaimable (their reference count reached 0).
uint32_t kv_seq_release(kv_cache *c, kv_seq *s);

// Where position pos of s lives in the full layers; false when pos >= n_tokens.
bool kv_seq_locate(const kv_cache *c, const kv_seq *s, uint32_t pos, uint32_t *block,
                   uint32_t *offset);

// The table that holds layer's rows of s: s->blocks, or s->window_blocks for a window layer.
// Entry p / block_tokens names the block of position p (for a window layer, only for the
// positions still in a window).
static inline const uint32_t *kv_seq_table(const kv_cache *c, const kv_seq *s, uint32_t layer)
{
    return kv_cache_layer_is_window(c, layer) ? s->window_blocks : s->blocks;
}

// Whether s holds every row attention reads for a token at pos: pos < n_tokens, and with
// window layers the window blocks of positions pos - window + 1 .. pos.
bool kv_seq_holds_rows(const kv_cache *c, const kv_seq *s, uint32_t pos);

#endif
