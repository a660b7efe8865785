// SPDX-License-Identifier: MIT
// The paged KV cache: one pool of fixed-size blocks per loaded model (block_tokens positions
// each, for every layer a K row and a V row per position), a block table per sequence, and
// a prefix cache that shares full blocks between sequences by a chained hash of their tokens.
// Unreferenced cached blocks are evicted least-recently-used. Rows are stored as F16, Q8_0,
// FP8 E4M3 or F32. See docs/kvcache.md for the layout, the hashing and how a scheduler uses it.
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

typedef struct kv_cache_config {
    uint32_t n_layer;
    uint32_t n_head_kv;
    uint32_t head_dim_k;   // K row = n_head_kv * head_dim_k values
    uint32_t head_dim_v;   // V row = n_head_kv * head_dim_v values; 0: no V rows (the
                           // model reads its values from the K rows)
    uint32_t block_tokens; // positions per block (16 is typical), 1..KV_MAX_BLOCK_TOKENS
    kv_type type;
    uint32_t n_blocks;     // blocks to allocate, or 0 to derive them from budget_bytes
    uint64_t budget_bytes; // total bytes the cache may take (used when n_blocks is 0)
} kv_cache_config;

enum {
    KV_DEFAULT_BLOCK_TOKENS = 16, // what the server's pools use
    KV_MAX_BLOCK_TOKENS = 1024,
    KV_MAX_BLOCKS = 1 << 30, // block ids are uint32; KV_NO_BLOCK is never an id
};
#define KV_NO_BLOCK UINT32_MAX

// Bytes one row of K (V) takes: n_head_kv * head_dim values of cfg->type. Fails with
// GARLIC_EINVAL or GARLIC_EUNSUPPORTED (Q8_0 with a head dimension not a multiple of 32) and
// a message naming the field.
int kv_cache_row_bytes(const kv_cache_config *cfg, uint64_t *k_row, uint64_t *v_row,
                       garlic_error *err);

// Total bytes kv_cache_new allocates for n_blocks blocks of cfg (KV data, tokens, block
// metadata, the prefix map and the struct itself), computed with overflow checks.
int kv_cache_bytes_for(const kv_cache_config *cfg, uint32_t n_blocks, uint64_t *bytes,
                       garlic_error *err);

// The largest block count whose kv_cache_bytes_for fits in budget_bytes (at most
// KV_MAX_BLOCKS). Fails with GARLIC_EINVAL when not even one block fits.
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

const kv_cache_config *kv_cache_get_config(const kv_cache *c); // n_blocks filled in
uint64_t kv_cache_bytes(const kv_cache *c);                    // bytes allocated by kv_cache_new
size_t kv_cache_k_row_bytes(const kv_cache *c); // bytes of one K row (one position, one layer)
size_t kv_cache_v_row_bytes(const kv_cache *c);

// The K (V) row of position `offset` of `block` in `layer`. Rows of one (layer, block) are
// consecutive: offset + 1 is kv_cache_k_row_bytes further. Valid until kv_cache_free; the
// caller must own the block (through a kv_seq) to write, and must not write a shared or
// published block (see kv_seq_append). Arguments are the caller's responsibility (asserted).
uint8_t *kv_cache_k_row(const kv_cache *c, uint32_t layer, uint32_t block, uint32_t offset);
uint8_t *kv_cache_v_row(const kv_cache *c, uint32_t layer, uint32_t block, uint32_t offset);

// Converts and stores one position's K and V (n_head_kv * head_dim floats each) in a row;
// v is not read when the pool has no V rows.
void kv_cache_store(kv_cache *c, uint32_t layer, uint32_t block, uint32_t offset, const float *k,
                    const float *v);

// Blocks that n_tokens positions need (ceil(n_tokens / block_tokens)).
uint32_t kv_cache_blocks_for_tokens(const kv_cache *c, uint64_t n_tokens);

// Counts of the pool. free + cached + used == n_blocks always.
typedef struct kv_cache_stats {
    uint32_t n_blocks;
    uint32_t n_free;        // never used or unpublished: ready to hand out
    uint32_t n_cached;      // published, unreferenced: reclaimable by LRU eviction
    uint32_t n_used;        // referenced by at least one sequence
    uint64_t prefix_hits;   // full prompt blocks found in the prefix cache and shared
    uint64_t prefix_misses; // full prompt blocks looked up and not found
    uint64_t evictions;     // cached blocks reclaimed for new use
    uint64_t dedups;        // committed blocks replaced by an identical cached block
} kv_cache_stats;

kv_cache_stats kv_cache_get_stats(const kv_cache *c);

// Whether a new sequence of n_tokens positions could get its blocks now, counting cached
// unreferenced blocks as reclaimable (ignores prefix hits; see kv_cache_can_admit_prompt).
bool kv_cache_can_admit(const kv_cache *c, uint64_t n_tokens);

// Like kv_cache_can_admit for a sequence of n_total positions whose first n_shared tokens
// (tokens[0..n_shared)) it would share from the prefix cache, as kv_seq_share_prefix does:
// the leading full blocks already cached need no new block (and are then not reclaimable),
// and spare_blocks more must stay free or reclaimable afterwards (headroom for others).
bool kv_cache_can_admit_prompt(const kv_cache *c, const int32_t *tokens, uint32_t n_shared,
                               uint64_t n_total, uint32_t spare_blocks);

// How many leading full blocks of tokens[0..n) the prefix cache holds (no side effects).
uint32_t kv_cache_prefix_lookup(const kv_cache *c, const int32_t *tokens, uint32_t n);

// The reference count of a block (for invariant checks and tests).
uint32_t kv_cache_block_refs(const kv_cache *c, uint32_t block);

// Checks every internal invariant (counts, free stack, LRU list, prefix map, states) and
// returns GARLIC_OK or GARLIC_EFORMAT with a message naming the first broken one. O(n_blocks).
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

// A sequence's block table: position p lives at offset p % block_tokens of
// blocks[p / block_tokens]. The storage is the caller's (kv_seq_init/kv_seq_deinit); the
// table is read by attention and changed only by the kv_seq_* functions, on the owning
// scheduler thread. Blocks below n_committed / block_tokens are full, published and
// read-only; the blocks after them belong to this sequence alone.
typedef struct kv_seq {
    uint32_t *blocks; // (n_blocks) block ids
    uint32_t n_blocks;
    uint32_t capacity;    // entries allocated in blocks
    uint32_t n_tokens;    // positions reserved (their tokens are known)
    uint32_t n_committed; // positions whose K and V are written (kv_seq_commit)
} kv_seq;

// An empty sequence holding no blocks and no memory.
void kv_seq_init(kv_seq *s);

// Releases the sequence's blocks into c and frees its table; s is empty afterwards.
void kv_seq_deinit(kv_cache *c, kv_seq *s);

// Grows the table to hold n_tokens positions without allocating later (so that a decode loop
// allocates nothing). GARLIC_ENOMEM leaves s unchanged.
int kv_seq_reserve(const kv_cache *c, kv_seq *s, uint64_t n_tokens, garlic_error *err);

// New blocks that appending n_more positions to s needs.
uint32_t kv_seq_blocks_needed(const kv_cache *c, const kv_seq *s, uint64_t n_more);

// Shares the leading full blocks of tokens[0..n) that the prefix cache holds with s, which
// must be empty (GARLIC_EINVAL otherwise). *n_shared gets the positions shared (a multiple
// of block_tokens); they count as committed. Updates the hit and miss counters. A scheduler
// passes the prompt without its last token, so at least one position is left to compute.
int kv_seq_share_prefix(kv_cache *c, kv_seq *s, const int32_t *tokens, uint32_t n,
                        uint32_t *n_shared, garlic_error *err);

// Reserves n more positions for tokens[0..n) at positions n_tokens.., taking blocks from the
// free list or, when it is empty, evicting the least recently used cached block. All or
// nothing: GARLIC_ENOMEM (pool or table) leaves s and c unchanged. The new positions' rows
// are then written by the caller (kv_cache_store or the forward pass) and committed.
int kv_seq_append(kv_cache *c, kv_seq *s, const int32_t *tokens, uint32_t n, garlic_error *err);

// Declares positions [0, n_written) written (n_committed <= n_written <= n_tokens, else
// GARLIC_EINVAL). Every block that becomes full is published in the prefix cache; when an
// identical block is already cached, s switches to it and its own copy is freed (so
// s->blocks may change: re-read the table after committing).
int kv_seq_commit(kv_cache *c, kv_seq *s, uint32_t n_written, garlic_error *err);

// Keeps positions [0, n) and releases the rest (n > n_tokens is GARLIC_EINVAL). When the new
// last block is partial and published, it is replaced by a private copy of its kept rows
// (GARLIC_ENOMEM, with s unchanged, if no block can be had for it).
int kv_seq_truncate(kv_cache *c, kv_seq *s, uint32_t n, garlic_error *err);

// Releases every block of s (preemption, cancellation, end of request): published blocks
// stay cached until evicted, the others return to the free list. Blocks are released last
// first, so a prefix's deeper blocks are evicted before its head. Keeps the table's memory.
// Returns how many blocks became reclaimable (their reference count reached 0).
uint32_t kv_seq_release(kv_cache *c, kv_seq *s);

// Where position pos of s lives; false when pos >= n_tokens.
bool kv_seq_locate(const kv_cache *c, const kv_seq *s, uint32_t pos, uint32_t *block,
                   uint32_t *offset);

#endif
