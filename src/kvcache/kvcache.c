// SPDX-License-Identifier: MIT
// The KV block pool, the block tables of sequences and the prefix cache. Every block is in
// exactly one state: free (on the free stack), private (referenced, not published), published
// and referenced, or cached (published, unreferenced, on the LRU list). Published blocks are
// full, read-only and findable in an open-addressing map by their chained hash; a match also
// compares the block's tokens and its parent block's identity, so hash collisions never share.
#include <assert.h>
#include <string.h>

#include "base/alloc.h"
#include "base/buffer.h"
#include "kvcache/kvcache.h"

// Per-block bookkeeping. gen changes whenever the block's contents may change identity (it
// is handed out again or unpublished), so a child that recorded (parent, parent_gen) can tell
// that its parent is no longer the block it was computed after.
typedef struct block_meta {
    uint64_t hash; // chained hash (published blocks)
    uint32_t refs; // sequences holding the block
    uint32_t gen;
    uint32_t parent;     // published: the block before it in its sequence, or KV_NO_BLOCK
    uint32_t parent_gen; // published: parent's gen when this block was published
    uint32_t lru_prev;   // cached blocks: neighbours on the LRU list (head = least recent)
    uint32_t lru_next;
    uint32_t published; // 1 when in the prefix map
} block_meta;

struct kv_cache {
    kv_cache_config cfg;  // n_blocks filled in, budget_bytes 0
    size_t k_row, v_row;  // bytes of one position's K (V) row in one layer
    uint64_t bytes;       // everything allocated below, the struct included
    uint8_t *k_data;      // (n_layer, n_blocks, block_tokens, k_row bytes)
    uint8_t *v_data;      // (n_layer, n_blocks, block_tokens, v_row bytes)
    int32_t *tokens;      // (n_blocks, block_tokens) the token of every position
    block_meta *meta;     // (n_blocks)
    uint32_t *free_stack; // (n_blocks) the first n_free entries are free blocks
    uint32_t n_free;
    uint32_t lru_head, lru_tail, n_cached;
    uint32_t *map; // (map_mask + 1) block ids or KV_NO_BLOCK, linear probing
    uint32_t map_mask;
    uint32_t n_published;
    kv_hash_fn hash_fn;
    uint64_t prefix_hits, prefix_misses, evictions, dedups;
};

// ---- sizes ----

static int check_config(const kv_cache_config *cfg, garlic_error *err)
{
    // head_dim_v 0: no V rows (multi-head latent attention reads its values from K rows).
    if (!cfg->n_layer || !cfg->n_head_kv || !cfg->head_dim_k)
        return garlic_error_set(err, GARLIC_EINVAL,
                                "KV cache: n_layer %u, n_head_kv %u and head "
                                "dimension %u (K) must be positive",
                                cfg->n_layer, cfg->n_head_kv, cfg->head_dim_k);
    if (cfg->block_tokens == 0 || cfg->block_tokens > KV_MAX_BLOCK_TOKENS)
        return garlic_error_set(err, GARLIC_EINVAL, "KV cache: block_tokens %u must be 1..%d",
                                cfg->block_tokens, KV_MAX_BLOCK_TOKENS);
    if ((unsigned)cfg->type >= KV_TYPE_COUNT)
        return garlic_error_set(err, GARLIC_EINVAL, "KV cache: unknown element type %d",
                                (int)cfg->type);
    if (cfg->type == KV_TYPE_Q8_0 && (cfg->head_dim_k % 32 || cfg->head_dim_v % 32))
        return garlic_error_set(err, GARLIC_EUNSUPPORTED,
                                "KV cache type q8_0 needs head "
                                "dimensions that are multiples of 32 (got %u/%u)",
                                cfg->head_dim_k, cfg->head_dim_v);
    return GARLIC_OK;
}

int kv_cache_row_bytes(const kv_cache_config *cfg, uint64_t *k_row, uint64_t *v_row,
                       garlic_error *err)
{
    int rc = check_config(cfg, err);
    if (rc)
        return rc;
    uint64_t k_dim = (uint64_t)cfg->n_head_kv * cfg->head_dim_k;
    uint64_t v_dim = (uint64_t)cfg->n_head_kv * cfg->head_dim_v;
    if (!kv_row_size(cfg->type, k_dim, k_row) || !kv_row_size(cfg->type, v_dim, v_row))
        return garlic_error_set(err, GARLIC_EINVAL,
                                "KV cache: rows of %llu/%llu values "
                                "overflow",
                                (unsigned long long)k_dim, (unsigned long long)v_dim);
    return GARLIC_OK;
}

// Slots of the prefix map for n blocks: a power of two at least twice n (load <= 1/2).
static uint64_t map_slots(uint32_t n_blocks)
{
    uint64_t slots = 16;
    while (slots < 2 * (uint64_t)n_blocks)
        slots *= 2;
    return slots;
}

// Adds count * size to *total; false on overflow.
static bool add_product(uint64_t *total, uint64_t count, uint64_t size)
{
    uint64_t product;
    return !__builtin_mul_overflow(count, size, &product) &&
        !__builtin_add_overflow(*total, product, total);
}

int kv_cache_bytes_for(const kv_cache_config *cfg, uint32_t n_blocks, uint64_t *bytes,
                       garlic_error *err)
{
    uint64_t k_row = 0, v_row = 0;
    int rc = kv_cache_row_bytes(cfg, &k_row, &v_row, err);
    if (rc)
        return rc;
    uint64_t rows, total = sizeof(kv_cache), row_pair = k_row + v_row;
    bool ok = !__builtin_mul_overflow((uint64_t)n_blocks * cfg->block_tokens,
                                      (uint64_t)cfg->n_layer, &rows);
    ok = ok && add_product(&total, rows, row_pair);
    ok = ok && add_product(&total, (uint64_t)n_blocks * cfg->block_tokens, sizeof(int32_t));
    ok = ok && add_product(&total, n_blocks, sizeof(block_meta) + sizeof(uint32_t));
    ok = ok && add_product(&total, map_slots(n_blocks), sizeof(uint32_t));
    ok = ok && total <= SIZE_MAX;
    if (!ok)
        return garlic_error_set(err, GARLIC_EINVAL,
                                "KV cache: %u blocks of %u tokens x %u "
                                "layers x %llu bytes overflow",
                                n_blocks, cfg->block_tokens, cfg->n_layer,
                                (unsigned long long)row_pair);
    *bytes = total;
    return GARLIC_OK;
}

int kv_cache_blocks_for_budget(const kv_cache_config *cfg, uint64_t budget_bytes,
                               uint32_t *n_blocks, garlic_error *err)
{
    uint64_t one = 0;
    int rc = kv_cache_bytes_for(cfg, 1, &one, err);
    if (rc)
        return rc;
    if (one > budget_bytes)
        return garlic_error_set(err, GARLIC_EINVAL,
                                "KV cache: a budget of %llu bytes holds "
                                "no block (one block needs %llu bytes)",
                                (unsigned long long)budget_bytes, (unsigned long long)one);
    // bytes_for is increasing in n: find the largest n that fits by bisection.
    uint32_t lo = 1, hi = KV_MAX_BLOCKS;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo + 1) / 2;
        uint64_t bytes = 0;
        if (kv_cache_bytes_for(cfg, mid, &bytes, NULL) == GARLIC_OK && bytes <= budget_bytes)
            lo = mid;
        else
            hi = mid - 1;
    }
    *n_blocks = lo;
    return GARLIC_OK;
}

// ---- creation ----

// The block count cfg asks for, directly or through its budget.
static int resolve_blocks(const kv_cache_config *cfg, uint32_t *n_blocks, garlic_error *err)
{
    if (cfg->n_blocks && cfg->budget_bytes)
        return garlic_error_set(err, GARLIC_EINVAL,
                                "KV cache: give n_blocks or budget_bytes, "
                                "not both");
    if (cfg->n_blocks) {
        if (cfg->n_blocks > KV_MAX_BLOCKS)
            return garlic_error_set(err, GARLIC_EINVAL,
                                    "KV cache: %u blocks exceed the limit "
                                    "of %d",
                                    cfg->n_blocks, KV_MAX_BLOCKS);
        *n_blocks = cfg->n_blocks;
        return GARLIC_OK;
    }
    if (!cfg->budget_bytes)
        return garlic_error_set(err, GARLIC_EINVAL, "KV cache: n_blocks or budget_bytes needed");
    return kv_cache_blocks_for_budget(cfg, cfg->budget_bytes, n_blocks, err);
}

// Puts every block on the free stack (block 0 on top, so blocks go out in id order) and
// empties the map and the LRU list.
static void reset_pool(kv_cache *c)
{
    uint32_t n = c->cfg.n_blocks;
    for (uint32_t i = 0; i < n; i++) {
        c->free_stack[i] = n - 1 - i;
        c->meta[i] = (block_meta){
            .parent = KV_NO_BLOCK, .lru_prev = KV_NO_BLOCK, .lru_next = KV_NO_BLOCK};
    }
    c->n_free = n;
    c->lru_head = c->lru_tail = KV_NO_BLOCK;
    for (uint64_t i = 0; i <= c->map_mask; i++)
        c->map[i] = KV_NO_BLOCK;
}

kv_cache *kv_cache_new(const kv_cache_config *cfg, garlic_error *err)
{
    uint32_t n = 0;
    uint64_t bytes = 0, k_row = 0, v_row = 0;
    if (resolve_blocks(cfg, &n, err) || kv_cache_bytes_for(cfg, n, &bytes, err) ||
        kv_cache_row_bytes(cfg, &k_row, &v_row, err))
        return NULL;
    kv_cache *c = garlic_calloc(1, sizeof *c);
    if (!c) {
        garlic_error_set(err, GARLIC_ENOMEM, "KV cache: out of memory");
        return NULL;
    }
    c->cfg = *cfg;
    c->cfg.n_blocks = n;
    c->cfg.budget_bytes = 0;
    c->k_row = (size_t)k_row;
    c->v_row = (size_t)v_row;
    c->bytes = bytes;
    c->hash_fn = kv_block_hash;
    uint64_t slots = map_slots(n);
    c->map_mask = (uint32_t)(slots - 1);
    size_t rows = (size_t)n * cfg->block_tokens * cfg->n_layer;
    c->k_data = garlic_calloc(rows, c->k_row);
    c->v_data = garlic_calloc(rows, c->v_row);
    c->tokens = garlic_calloc((size_t)n * cfg->block_tokens, sizeof(int32_t));
    c->meta = garlic_calloc(n, sizeof(block_meta));
    c->free_stack = garlic_calloc(n, sizeof(uint32_t));
    c->map = garlic_calloc((size_t)slots, sizeof(uint32_t));
    if (!c->k_data || !c->v_data || !c->tokens || !c->meta || !c->free_stack || !c->map) {
        garlic_error_set(err, GARLIC_ENOMEM,
                         "KV cache: out of memory allocating %u blocks "
                         "(%llu bytes)",
                         n, (unsigned long long)bytes);
        kv_cache_free(c);
        return NULL;
    }
    reset_pool(c);
    return c;
}

void kv_cache_free(kv_cache *c)
{
    if (!c)
        return;
    garlic_free(c->k_data);
    garlic_free(c->v_data);
    garlic_free(c->tokens);
    garlic_free(c->meta);
    garlic_free(c->free_stack);
    garlic_free(c->map);
    garlic_free(c);
}

const kv_cache_config *kv_cache_get_config(const kv_cache *c) { return &c->cfg; }
uint64_t kv_cache_bytes(const kv_cache *c) { return c->bytes; }
size_t kv_cache_k_row_bytes(const kv_cache *c) { return c->k_row; }
size_t kv_cache_v_row_bytes(const kv_cache *c) { return c->v_row; }

// ---- rows ----

static size_t row_index(const kv_cache *c, uint32_t layer, uint32_t block, uint32_t offset)
{
    assert(layer < c->cfg.n_layer && block < c->cfg.n_blocks && offset < c->cfg.block_tokens);
    return ((size_t)layer * c->cfg.n_blocks + block) * c->cfg.block_tokens + offset;
}

uint8_t *kv_cache_k_row(const kv_cache *c, uint32_t layer, uint32_t block, uint32_t offset)
{
    return c->k_data + row_index(c, layer, block, offset) * c->k_row;
}

uint8_t *kv_cache_v_row(const kv_cache *c, uint32_t layer, uint32_t block, uint32_t offset)
{
    return c->v_data + row_index(c, layer, block, offset) * c->v_row;
}

void kv_cache_store(kv_cache *c, uint32_t layer, uint32_t block, uint32_t offset, const float *k,
                    const float *v)
{
    const kv_cache_config *cfg = &c->cfg;
    kv_row_store(cfg->type, kv_cache_k_row(c, layer, block, offset), k,
                 (uint64_t)cfg->n_head_kv * cfg->head_dim_k);
    if (cfg->head_dim_v)
        kv_row_store(cfg->type, kv_cache_v_row(c, layer, block, offset), v,
                     (uint64_t)cfg->n_head_kv * cfg->head_dim_v);
}

uint32_t kv_cache_blocks_for_tokens(const kv_cache *c, uint64_t n_tokens)
{
    uint64_t blocks = (n_tokens + c->cfg.block_tokens - 1) / c->cfg.block_tokens;
    return blocks > UINT32_MAX ? UINT32_MAX : (uint32_t)blocks;
}

static const int32_t *block_tokens_of(const kv_cache *c, uint32_t block)
{
    return c->tokens + (size_t)block * c->cfg.block_tokens;
}

// ---- hashing ----

// The splitmix64 finalizer: a bijection that spreads every input bit over the output.
static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= UINT64_C(0xbf58476d1ce4e5b9);
    x ^= x >> 27;
    x *= UINT64_C(0x94d049bb133111eb);
    return x ^ (x >> 31);
}

uint64_t kv_block_hash(uint64_t parent, const int32_t *tokens, uint32_t n)
{
    uint64_t h = mix64(parent ^ (UINT64_C(0x9e3779b97f4a7c15) * (n + 1)));
    for (uint32_t i = 0; i < n; i++)
        h = mix64(h + (uint32_t)tokens[i] + UINT64_C(0x9e3779b97f4a7c15));
    return h;
}

void kv_cache_set_hash_fn(kv_cache *c, kv_hash_fn fn) { c->hash_fn = fn ? fn : kv_block_hash; }

// ---- the LRU list of cached blocks ----

static void lru_remove(kv_cache *c, uint32_t b)
{
    block_meta *m = &c->meta[b];
    if (m->lru_prev != KV_NO_BLOCK)
        c->meta[m->lru_prev].lru_next = m->lru_next;
    else
        c->lru_head = m->lru_next;
    if (m->lru_next != KV_NO_BLOCK)
        c->meta[m->lru_next].lru_prev = m->lru_prev;
    else
        c->lru_tail = m->lru_prev;
    m->lru_prev = m->lru_next = KV_NO_BLOCK;
    c->n_cached--;
}

static void lru_push_tail(kv_cache *c, uint32_t b)
{
    block_meta *m = &c->meta[b];
    m->lru_prev = c->lru_tail;
    m->lru_next = KV_NO_BLOCK;
    if (c->lru_tail != KV_NO_BLOCK)
        c->meta[c->lru_tail].lru_next = b;
    else
        c->lru_head = b;
    c->lru_tail = b;
    c->n_cached++;
}

// ---- the prefix map ----

// Whether published block b is the block with this hash, these tokens and this parent.
static bool block_matches(const kv_cache *c, uint32_t b, uint64_t hash, const int32_t *tokens,
                          uint32_t parent, uint32_t parent_gen)
{
    const block_meta *m = &c->meta[b];
    if (m->hash != hash || m->parent != parent)
        return false;
    if (parent != KV_NO_BLOCK && m->parent_gen != parent_gen)
        return false;
    return memcmp(block_tokens_of(c, b), tokens, c->cfg.block_tokens * sizeof(int32_t)) == 0;
}

// The published block with this identity, or KV_NO_BLOCK. Equal hashes of different
// blocks may sit in the same probe run; each is checked in full.
static uint32_t map_find(const kv_cache *c, uint64_t hash, const int32_t *tokens, uint32_t parent,
                         uint32_t parent_gen)
{
    for (uint32_t slot = (uint32_t)hash & c->map_mask;; slot = (slot + 1) & c->map_mask) {
        uint32_t b = c->map[slot];
        if (b == KV_NO_BLOCK)
            return KV_NO_BLOCK;
        if (block_matches(c, b, hash, tokens, parent, parent_gen))
            return b;
    }
}

static void map_insert(kv_cache *c, uint32_t b)
{
    uint32_t slot = (uint32_t)c->meta[b].hash & c->map_mask;
    while (c->map[slot] != KV_NO_BLOCK)
        slot = (slot + 1) & c->map_mask;
    c->map[slot] = b;
    c->meta[b].published = 1;
    c->n_published++;
}

// Removes b from the map by backward shifting: later entries of the probe run move into the
// hole when their home slot does not lie cyclically in (hole, their slot].
static void map_remove(kv_cache *c, uint32_t b)
{
    uint32_t mask = c->map_mask, hole = (uint32_t)c->meta[b].hash & mask;
    while (c->map[hole] != b)
        hole = (hole + 1) & mask;
    for (uint32_t j = (hole + 1) & mask; c->map[j] != KV_NO_BLOCK; j = (j + 1) & mask) {
        uint32_t home = (uint32_t)c->meta[c->map[j]].hash & mask;
        bool stays = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
        if (stays)
            continue;
        c->map[hole] = c->map[j];
        hole = j;
    }
    c->map[hole] = KV_NO_BLOCK;
    c->meta[b].published = 0;
    c->meta[b].gen++;
    c->n_published--;
}

// ---- block references ----

// A block for new contents with one reference: a free one, else the least recently used
// cached one (evicted from the map). KV_NO_BLOCK when every block is referenced.
static uint32_t take_block(kv_cache *c)
{
    uint32_t b;
    if (c->n_free) {
        b = c->free_stack[--c->n_free];
    } else if (c->lru_head != KV_NO_BLOCK) {
        b = c->lru_head;
        lru_remove(c, b);
        map_remove(c, b);
        c->evictions++;
    } else {
        return KV_NO_BLOCK;
    }
    c->meta[b].gen++;
    c->meta[b].refs = 1;
    c->meta[b].parent = KV_NO_BLOCK;
    return b;
}

static void acquire_block(kv_cache *c, uint32_t b)
{
    if (c->meta[b].refs++ == 0)
        lru_remove(c, b);
}

// Drops one reference; returns true when it was the last (the block is then cached if
// published, free otherwise).
static bool release_block(kv_cache *c, uint32_t b)
{
    assert(c->meta[b].refs > 0);
    if (--c->meta[b].refs)
        return false;
    if (c->meta[b].published)
        lru_push_tail(c, b);
    else
        c->free_stack[c->n_free++] = b;
    return true;
}

uint32_t kv_cache_block_refs(const kv_cache *c, uint32_t block)
{
    return block < c->cfg.n_blocks ? c->meta[block].refs : 0;
}

kv_cache_stats kv_cache_get_stats(const kv_cache *c)
{
    return (kv_cache_stats){
        .n_blocks = c->cfg.n_blocks,
        .n_free = c->n_free,
        .n_cached = c->n_cached,
        .n_used = c->cfg.n_blocks - c->n_free - c->n_cached,
        .prefix_hits = c->prefix_hits,
        .prefix_misses = c->prefix_misses,
        .evictions = c->evictions,
        .dedups = c->dedups,
    };
}

// ---- prefix lookup and admission ----

// Walks the leading full blocks of tokens[0..n) through the map; writes the blocks found to
// found (when not NULL) and counts the unreferenced ones in *n_idle. Returns how many.
static uint32_t match_prefix(const kv_cache *c, const int32_t *tokens, uint32_t n, uint32_t *found,
                             uint32_t *n_idle)
{
    uint32_t bt = c->cfg.block_tokens, parent = KV_NO_BLOCK, parent_gen = 0, i = 0;
    uint64_t hash = KV_HASH_ROOT;
    *n_idle = 0;
    for (; i < n / bt; i++) {
        const int32_t *t = tokens + (size_t)i * bt;
        hash = c->hash_fn(hash, t, bt);
        uint32_t b = map_find(c, hash, t, parent, parent_gen);
        if (b == KV_NO_BLOCK)
            break;
        *n_idle += c->meta[b].refs == 0;
        if (found)
            found[i] = b;
        parent = b;
        parent_gen = c->meta[b].gen;
    }
    return i;
}

uint32_t kv_cache_prefix_lookup(const kv_cache *c, const int32_t *tokens, uint32_t n)
{
    uint32_t n_idle;
    return match_prefix(c, tokens, n, NULL, &n_idle);
}

bool kv_cache_can_admit(const kv_cache *c, uint64_t n_tokens)
{
    return kv_cache_blocks_for_tokens(c, n_tokens) <= (uint64_t)c->n_free + c->n_cached;
}

bool kv_cache_can_admit_prompt(const kv_cache *c, const int32_t *tokens, uint32_t n_shared,
                               uint64_t n_total, uint32_t spare_blocks)
{
    uint32_t n_idle, hits = match_prefix(c, tokens, n_shared, NULL, &n_idle);
    uint64_t available = (uint64_t)c->n_free + c->n_cached - n_idle;
    return kv_cache_blocks_for_tokens(c, n_total) - hits + spare_blocks <= available;
}

// ---- sequences ----

void kv_seq_init(kv_seq *s) { *s = (kv_seq){0}; }

void kv_seq_deinit(kv_cache *c, kv_seq *s)
{
    kv_seq_release(c, s);
    garlic_free(s->blocks);
    kv_seq_init(s);
}

int kv_seq_reserve(const kv_cache *c, kv_seq *s, uint64_t n_tokens, garlic_error *err)
{
    uint32_t need = kv_cache_blocks_for_tokens(c, n_tokens);
    // Checked first: the table may have room past the pool (it grows by doubling).
    if (need > c->cfg.n_blocks)
        return garlic_error_set(err, GARLIC_ENOMEM,
                                "KV cache: %llu positions need %u blocks, "
                                "the pool has %u",
                                (unsigned long long)n_tokens, need, c->cfg.n_blocks);
    if (need <= s->capacity)
        return GARLIC_OK;
    size_t capacity = s->capacity;
    if (garlic_grow(&s->blocks, &capacity, need, sizeof *s->blocks))
        return garlic_error_set(err, GARLIC_ENOMEM,
                                "KV cache: out of memory growing a block "
                                "table to %u entries",
                                need);
    s->capacity = (uint32_t)capacity; // at most 2 x KV_MAX_BLOCKS
    return GARLIC_OK;
}

uint32_t kv_seq_blocks_needed(const kv_cache *c, const kv_seq *s, uint64_t n_more)
{
    uint32_t total = kv_cache_blocks_for_tokens(c, (uint64_t)s->n_tokens + n_more);
    return total - s->n_blocks;
}

int kv_seq_share_prefix(kv_cache *c, kv_seq *s, const int32_t *tokens, uint32_t n,
                        uint32_t *n_shared, garlic_error *err)
{
    *n_shared = 0;
    if (s->n_tokens || s->n_blocks)
        return garlic_error_set(err, GARLIC_EINVAL,
                                "KV cache: prefix sharing needs an empty "
                                "sequence (this one holds %u positions)",
                                s->n_tokens);
    uint32_t bt = c->cfg.block_tokens, n_full = n / bt, n_idle;
    if (n_full > c->cfg.n_blocks)
        n_full = c->cfg.n_blocks; // a longer prompt cannot be cached beyond the pool
    int rc = kv_seq_reserve(c, s, (uint64_t)n_full * bt, err);
    if (rc)
        return rc;
    uint32_t hits = match_prefix(c, tokens, n_full * bt, s->blocks, &n_idle);
    for (uint32_t i = 0; i < hits; i++)
        acquire_block(c, s->blocks[i]);
    c->prefix_hits += hits;
    c->prefix_misses += n_full - hits;
    s->n_blocks = hits;
    s->n_tokens = s->n_committed = hits * bt;
    *n_shared = s->n_tokens;
    return GARLIC_OK;
}

int kv_seq_append(kv_cache *c, kv_seq *s, const int32_t *tokens, uint32_t n, garlic_error *err)
{
    uint32_t bt = c->cfg.block_tokens, total;
    if (__builtin_add_overflow(s->n_tokens, n, &total))
        return garlic_error_set(err, GARLIC_EINVAL, "KV cache: %u + %u positions overflow",
                                s->n_tokens, n);
    uint32_t need = kv_seq_blocks_needed(c, s, n);
    if (need > (uint64_t)c->n_free + c->n_cached)
        return garlic_error_set(err, GARLIC_ENOMEM,
                                "KV cache full: %u more positions need %u "
                                "blocks, %u free and %u reclaimable",
                                n, need, c->n_free, c->n_cached);
    int rc = kv_seq_reserve(c, s, total, err);
    if (rc)
        return rc;
    // The current last block, if partial, is private (published blocks are full).
    assert(s->n_tokens % bt == 0 || !c->meta[s->blocks[s->n_blocks - 1]].published);
    for (uint32_t i = 0; i < need; i++)
        s->blocks[s->n_blocks++] = take_block(c);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t pos = s->n_tokens + i;
        c->tokens[(size_t)s->blocks[pos / bt] * bt + pos % bt] = tokens[i];
    }
    s->n_tokens = total;
    return GARLIC_OK;
}

// Publishes full block i of s, or, when an identical block is cached, switches s to that
// block and frees its own copy.
static void publish_block(kv_cache *c, kv_seq *s, uint32_t i)
{
    uint32_t b = s->blocks[i], bt = c->cfg.block_tokens;
    uint32_t parent = i ? s->blocks[i - 1] : KV_NO_BLOCK;
    uint32_t parent_gen = i ? c->meta[parent].gen : 0;
    uint64_t parent_hash = i ? c->meta[parent].hash : KV_HASH_ROOT;
    const int32_t *tokens = block_tokens_of(c, b);
    uint64_t hash = c->hash_fn(parent_hash, tokens, bt);
    uint32_t twin = map_find(c, hash, tokens, parent, parent_gen);
    if (twin != KV_NO_BLOCK) {
        acquire_block(c, twin);
        s->blocks[i] = twin;
        release_block(c, b);
        c->dedups++;
        return;
    }
    block_meta *m = &c->meta[b];
    m->hash = hash;
    m->parent = parent;
    m->parent_gen = parent_gen;
    map_insert(c, b);
}

int kv_seq_commit(kv_cache *c, kv_seq *s, uint32_t n_written, garlic_error *err)
{
    if (n_written < s->n_committed || n_written > s->n_tokens)
        return garlic_error_set(err, GARLIC_EINVAL,
                                "KV cache: commit of %u positions outside "
                                "[%u, %u]",
                                n_written, s->n_committed, s->n_tokens);
    uint32_t bt = c->cfg.block_tokens;
    for (uint32_t i = s->n_committed / bt; (uint64_t)(i + 1) * bt <= n_written; i++)
        publish_block(c, s, i);
    s->n_committed = n_written;
    return GARLIC_OK;
}

// Makes block i of s, partial after a truncation to n_keep positions in it, private: a copy
// of its kept rows when a block can be had, else (if s holds the only reference) the block
// itself, unpublished. GARLIC_ENOMEM when neither is possible.
static int make_private(kv_cache *c, kv_seq *s, uint32_t i, uint32_t n_keep, garlic_error *err)
{
    uint32_t b = s->blocks[i];
    if (!c->meta[b].published)
        return GARLIC_OK;
    uint32_t copy = take_block(c);
    if (copy == KV_NO_BLOCK) {
        if (c->meta[b].refs > 1)
            return garlic_error_set(err, GARLIC_ENOMEM,
                                    "KV cache full: no block for a private "
                                    "copy of a shared block");
        map_remove(c, b);
        return GARLIC_OK;
    }
    for (uint32_t l = 0; l < c->cfg.n_layer; l++) {
        memcpy(kv_cache_k_row(c, l, copy, 0), kv_cache_k_row(c, l, b, 0), n_keep * c->k_row);
        memcpy(kv_cache_v_row(c, l, copy, 0), kv_cache_v_row(c, l, b, 0), n_keep * c->v_row);
    }
    memcpy(c->tokens + (size_t)copy * c->cfg.block_tokens, block_tokens_of(c, b),
           n_keep * sizeof(int32_t));
    release_block(c, b);
    s->blocks[i] = copy;
    return GARLIC_OK;
}

int kv_seq_truncate(kv_cache *c, kv_seq *s, uint32_t n, garlic_error *err)
{
    if (n > s->n_tokens)
        return garlic_error_set(err, GARLIC_EINVAL,
                                "KV cache: cannot truncate %u positions "
                                "to %u",
                                s->n_tokens, n);
    if (n == s->n_tokens)
        return GARLIC_OK;
    uint32_t bt = c->cfg.block_tokens, keep = kv_cache_blocks_for_tokens(c, n);
    if (n % bt) {
        int rc = make_private(c, s, keep - 1, n % bt, err);
        if (rc)
            return rc;
    }
    for (uint32_t i = s->n_blocks; i-- > keep;)
        release_block(c, s->blocks[i]);
    s->n_blocks = keep;
    s->n_tokens = n;
    if (s->n_committed > n)
        s->n_committed = n;
    return GARLIC_OK;
}

uint32_t kv_seq_release(kv_cache *c, kv_seq *s)
{
    uint32_t reclaimed = 0;
    for (uint32_t i = s->n_blocks; i-- > 0;)
        reclaimed += release_block(c, s->blocks[i]);
    s->n_blocks = s->n_tokens = s->n_committed = 0;
    return reclaimed;
}

bool kv_seq_locate(const kv_cache *c, const kv_seq *s, uint32_t pos, uint32_t *block,
                   uint32_t *offset)
{
    if (pos >= s->n_tokens)
        return false;
    *block = s->blocks[pos / c->cfg.block_tokens];
    *offset = pos % c->cfg.block_tokens;
    return true;
}

// ---- invariants ----

// Marks block b in seen (one byte per block); false if it was already marked.
static bool mark_once(uint8_t *seen, uint32_t b, uint8_t mark)
{
    if (seen[b])
        return false;
    seen[b] = mark;
    return true;
}

// The free stack and the LRU list: every entry in one list once, in the right state.
static int check_lists(const kv_cache *c, uint8_t *seen, garlic_error *err)
{
    uint32_t n = c->cfg.n_blocks;
    if (c->n_free > n || c->n_cached > n - c->n_free)
        return garlic_error_set(err, GARLIC_EFORMAT, "KV check: %u free + %u cached > %u blocks",
                                c->n_free, c->n_cached, n);
    for (uint32_t i = 0; i < c->n_free; i++) {
        uint32_t b = c->free_stack[i];
        if (b >= n || !mark_once(seen, b, 1) || c->meta[b].refs || c->meta[b].published)
            return garlic_error_set(err, GARLIC_EFORMAT,
                                    "KV check: free entry %u (block %u) "
                                    "is out of range, repeated, referenced or published",
                                    i, b);
    }
    uint32_t count = 0, prev = KV_NO_BLOCK;
    for (uint32_t b = c->lru_head; b != KV_NO_BLOCK; prev = b, b = c->meta[b].lru_next) {
        if (b >= n || count++ >= c->n_cached || c->meta[b].lru_prev != prev ||
            !mark_once(seen, b, 2) || c->meta[b].refs || !c->meta[b].published)
            return garlic_error_set(err, GARLIC_EFORMAT,
                                    "KV check: LRU entry %u (block %u) is "
                                    "out of range, misplaced, repeated or in a wrong state",
                                    count, b);
    }
    if (count != c->n_cached || prev != c->lru_tail)
        return garlic_error_set(err, GARLIC_EFORMAT,
                                "KV check: LRU list holds %u blocks, "
                                "count says %u",
                                count, c->n_cached);
    return GARLIC_OK;
}

// Every block: unreferenced ones are on a list, referenced ones on none; every published
// block is findable in the map and the map holds nothing else.
static int check_blocks(const kv_cache *c, const uint8_t *seen, garlic_error *err)
{
    uint32_t n_published = 0;
    for (uint32_t b = 0; b < c->cfg.n_blocks; b++) {
        const block_meta *m = &c->meta[b];
        if ((m->refs == 0) != (seen[b] != 0))
            return garlic_error_set(err, GARLIC_EFORMAT,
                                    "KV check: block %u has %u references "
                                    "but is %son a list",
                                    b, m->refs, seen[b] ? "" : "not ");
        if (!m->published)
            continue;
        n_published++;
        if (map_find(c, m->hash, block_tokens_of(c, b), m->parent, m->parent_gen) != b)
            return garlic_error_set(err, GARLIC_EFORMAT,
                                    "KV check: published block %u is not "
                                    "the map's entry for its identity",
                                    b);
    }
    uint32_t in_map = 0;
    for (uint64_t i = 0; i <= c->map_mask; i++) {
        uint32_t b = c->map[i];
        if (b == KV_NO_BLOCK)
            continue;
        in_map++;
        if (b >= c->cfg.n_blocks || !c->meta[b].published)
            return garlic_error_set(err, GARLIC_EFORMAT,
                                    "KV check: map slot %llu holds block "
                                    "%u, which is not published",
                                    (unsigned long long)i, b);
    }
    if (in_map != n_published || n_published != c->n_published)
        return garlic_error_set(err, GARLIC_EFORMAT,
                                "KV check: %u map entries, %u published "
                                "blocks, count %u",
                                in_map, n_published, c->n_published);
    return GARLIC_OK;
}

int kv_cache_check(const kv_cache *c, garlic_error *err)
{
    uint8_t *seen = garlic_calloc(c->cfg.n_blocks, 1);
    if (!seen)
        return garlic_error_set(err, GARLIC_ENOMEM, "KV check: out of memory");
    int rc = check_lists(c, seen, err);
    if (!rc)
        rc = check_blocks(c, seen, err);
    garlic_free(seen);
    return rc;
}
