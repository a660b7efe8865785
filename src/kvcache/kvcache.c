// SPDX-License-Identifier: MIT
// The KV block pools, the block tables of sequences and the prefix cache. Blocks come in two
// kinds, each a pool with its own blocks, free stack and LRU list: full blocks hold the rows
// of the full-attention layers and the tokens of their positions; window blocks hold the rows
// of the sliding-window layers. Every block is in exactly one state: free (on its free stack),
// private (referenced, not published), published and referenced, or cached (published,
// unreferenced, on its LRU list). Published full blocks are full, read-only and findable in an
// open-addressing map by their chained hash; a match also compares the block's tokens and its
// parent block's identity, so hash collisions never share. A published window block is the
// companion of one published full block (the same positions after the same prefix): it is
// found through that block, so the full block's identity checks cover it too, and it is
// dropped when that block leaves the cache.
#include <assert.h>
#include <string.h>

#include "base/alloc.h"
#include "base/buffer.h"
#include "kvcache/kvcache.h"

// Per-block bookkeeping. gen changes whenever the block's contents may change identity (it
// is handed out again or unpublished), so a child that recorded (parent, parent_gen) can tell
// that its parent is no longer the block it was computed after.
typedef struct block_meta {
    uint64_t hash; // chained hash (published full blocks)
    uint32_t refs; // sequences holding the block
    uint32_t gen;
    uint32_t parent;     // published full block: the block before it in its sequence, or
                         // KV_NO_BLOCK; published window block: its companion full block
    uint32_t parent_gen; // that block's gen when this one was published
    uint32_t lru_prev;   // cached blocks: neighbours on the LRU list (head = least recent)
    uint32_t lru_next;
    uint32_t published; // 1 when in the prefix map (full) or linked to a full block (window)
} block_meta;

enum { KIND_FULL, KIND_WINDOW, KIND_COUNT };

// One kind of block: its rows and its lists.
typedef struct kv_pool {
    uint32_t n_layer;     // layers whose rows this kind holds
    uint32_t n_blocks;    // 0: the kind is absent (no window layers)
    uint8_t *k_data;      // (n_layer, n_blocks, block_tokens, k_row bytes)
    uint8_t *v_data;      // (n_layer, n_blocks, block_tokens, v_row bytes)
    block_meta *meta;     // (n_blocks)
    uint32_t *free_stack; // (n_blocks) the first n_free entries are free blocks
    uint32_t n_free;
    uint32_t lru_head, lru_tail, n_cached;
    uint32_t n_published;
    uint64_t evictions;
    uint64_t bytes; // this kind's share of kv_cache_bytes (for the used bytes, pro rata)
} kv_pool;

struct kv_cache {
    kv_cache_config cfg; // n_blocks and n_window_blocks filled in, budget_bytes 0
    size_t k_row, v_row; // bytes of one position's K (V) row in one layer
    uint64_t bytes;      // everything allocated below, the struct included
    kv_pool pools[KIND_COUNT];
    uint32_t *layer_slot; // (n_layer) each layer's index among its kind's layers; NULL
                          // without window layers (then a layer's slot is its index)
    int32_t *tokens;      // (n_blocks, block_tokens) the token of every position
    uint32_t *companion;  // (n_blocks) the published window block of each full block, or
                          // KV_NO_BLOCK; NULL without window layers
    uint32_t *map;        // (map_mask + 1) full block ids or KV_NO_BLOCK, linear probing
    uint32_t map_mask;
    kv_hash_fn hash_fn;
    uint64_t prefix_hits, prefix_misses, dedups;
    kv_mirror mirror; // told of every block copy (a device backend's copy of the rows)
};

// ---- window layers ----

bool kv_windows_set(kv_windows *w, uint32_t l)
{
    if (l >= KV_MAX_LAYERS)
        return false;
    w->layers[l / 64] |= UINT64_C(1) << (l % 64);
    return true;
}

uint32_t kv_windows_count(const kv_windows *w, uint32_t n_layer)
{
    uint32_t n = 0;
    for (uint32_t l = 0; l < n_layer && l < KV_MAX_LAYERS; l++)
        n += kv_windows_has(w, l);
    return n;
}

static bool has_window(const kv_cache *c) { return c->pools[KIND_WINDOW].n_blocks > 0; }

bool kv_cache_layer_is_window(const kv_cache *c, uint32_t layer)
{
    return c->layer_slot && kv_windows_has(&c->cfg.windows, layer);
}

// The first position a token at position pos reads in the window layers.
static uint32_t window_start(const kv_cache *c, uint32_t pos)
{
    uint32_t w = c->cfg.windows.window;
    return pos + 1 > w ? pos + 1 - w : 0;
}

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
    uint32_t n_window = kv_windows_count(&cfg->windows, KV_MAX_LAYERS);
    if (n_window != kv_windows_count(&cfg->windows, cfg->n_layer))
        return garlic_error_set(err, GARLIC_EINVAL,
                                "KV cache: windows.layers names a layer past "
                                "the %u layers",
                                cfg->n_layer);
    if (n_window && !cfg->windows.window)
        return garlic_error_set(err, GARLIC_EINVAL,
                                "KV cache: %u window layers but windows.window "
                                "is 0",
                                n_window);
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

uint32_t kv_cache_window_blocks(const kv_cache_config *cfg, uint32_t n_blocks)
{
    if (!kv_windows_count(&cfg->windows, cfg->n_layer))
        return 0;
    uint32_t n = cfg->n_window_blocks;
    return n && n < n_blocks ? n : n_blocks;
}

uint32_t kv_window_blocks_for(const kv_cache_config *cfg, uint32_t n_seqs, uint32_t step_tokens)
{
    if (!kv_windows_count(&cfg->windows, cfg->n_layer) || !cfg->block_tokens)
        return 0;
    uint64_t bt = cfg->block_tokens, w = cfg->windows.window;
    // Between steps a sequence holds the blocks of its last w - 1 positions, at most
    // floor((w + bt - 3) / bt) + 1 of them; a chunk of k more adds at most ceil(k / bt).
    uint64_t base = w + bt >= 3 ? (w + bt - 3) / bt + 1 : 0;
    uint64_t seqs = n_seqs ? n_seqs : 1, step = step_tokens ? step_tokens : 1;
    uint64_t total = seqs * base + (step + bt - 1) / bt + seqs - 1;
    return total > UINT32_MAX ? UINT32_MAX : (uint32_t)total;
}

void kv_cache_block_data_bytes(const kv_cache_config *cfg, uint64_t *full, uint64_t *window)
{
    uint64_t k_row = 0, v_row = 0;
    *full = *window = 0;
    if (kv_cache_row_bytes(cfg, &k_row, &v_row, NULL))
        return;
    uint32_t n_window = kv_windows_count(&cfg->windows, cfg->n_layer);
    uint64_t per_layer = (uint64_t)cfg->block_tokens * (k_row + v_row);
    *full = per_layer * (cfg->n_layer - n_window);
    *window = per_layer * n_window;
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

// What kv_cache_new allocates for n_blocks full blocks: each kind's share of the bytes.
typedef struct pool_sizes {
    uint32_t n_window;       // window blocks
    uint32_t n_window_layer; // window layers
    uint64_t full;           // the struct, full rows, tokens, full metadata, the prefix map
    uint64_t window;         // window rows and metadata, the window links, the layer slots
} pool_sizes;

static int sizes_for(const kv_cache_config *cfg, uint32_t n_blocks, pool_sizes *out,
                     garlic_error *err)
{
    uint64_t k_row = 0, v_row = 0;
    int rc = kv_cache_row_bytes(cfg, &k_row, &v_row, err);
    if (rc)
        return rc;
    pool_sizes z = {.n_window = kv_cache_window_blocks(cfg, n_blocks),
                    .n_window_layer = kv_windows_count(&cfg->windows, cfg->n_layer),
                    .full = sizeof(kv_cache)};
    uint64_t row_pair = k_row + v_row, bt = cfg->block_tokens;
    uint64_t full_layers = cfg->n_layer - z.n_window_layer;
    uint64_t positions = (uint64_t)n_blocks * bt, window_positions = (uint64_t)z.n_window * bt;
    uint64_t rows = 0, window_rows = 0;
    bool ok = !__builtin_mul_overflow(positions, full_layers, &rows) &&
        !__builtin_mul_overflow(window_positions, (uint64_t)z.n_window_layer, &window_rows);
    ok = ok && add_product(&z.full, rows, row_pair);
    ok = ok && add_product(&z.full, positions, sizeof(int32_t));
    ok = ok && add_product(&z.full, n_blocks, sizeof(block_meta) + sizeof(uint32_t));
    ok = ok && add_product(&z.full, map_slots(n_blocks), sizeof(uint32_t));
    if (z.n_window_layer) {
        ok = ok && add_product(&z.window, window_rows, row_pair);
        ok = ok && add_product(&z.window, z.n_window, sizeof(block_meta) + sizeof(uint32_t));
        ok = ok && add_product(&z.window, n_blocks, sizeof(uint32_t));     // companion
        ok = ok && add_product(&z.window, cfg->n_layer, sizeof(uint32_t)); // layer_slot
    }
    uint64_t total;
    ok = ok && !__builtin_add_overflow(z.full, z.window, &total) && total <= SIZE_MAX;
    if (!ok)
        return garlic_error_set(err, GARLIC_EINVAL,
                                "KV cache: %u blocks of %u tokens x %u "
                                "layers x %llu bytes overflow",
                                n_blocks, cfg->block_tokens, cfg->n_layer,
                                (unsigned long long)row_pair);
    *out = z;
    return GARLIC_OK;
}

int kv_cache_bytes_for(const kv_cache_config *cfg, uint32_t n_blocks, uint64_t *bytes,
                       garlic_error *err)
{
    pool_sizes z;
    int rc = sizes_for(cfg, n_blocks, &z, err);
    if (rc == GARLIC_OK)
        *bytes = z.full + z.window;
    return rc;
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

// Puts every block of p on its free stack (block 0 on top, so blocks go out in id order)
// and empties its LRU list.
static void reset_pool(kv_pool *p)
{
    uint32_t n = p->n_blocks;
    for (uint32_t i = 0; i < n; i++) {
        p->free_stack[i] = n - 1 - i;
        p->meta[i] = (block_meta){
            .parent = KV_NO_BLOCK, .lru_prev = KV_NO_BLOCK, .lru_next = KV_NO_BLOCK};
    }
    p->n_free = n;
    p->lru_head = p->lru_tail = KV_NO_BLOCK;
}

// Allocates p's rows and lists for n blocks of n_layer layers; false when out of memory.
static bool pool_alloc(kv_pool *p, const kv_cache *c, uint32_t n, uint32_t n_layer)
{
    p->n_blocks = n;
    p->n_layer = n_layer;
    size_t rows = (size_t)n * c->cfg.block_tokens * n_layer;
    if (rows) { // a model whose every layer has a window keeps no full rows
        p->k_data = garlic_calloc(rows, c->k_row);
        p->v_data = garlic_calloc(rows, c->v_row);
    }
    p->meta = garlic_calloc(n, sizeof(block_meta));
    p->free_stack = garlic_calloc(n, sizeof(uint32_t));
    return (!rows || (p->k_data && p->v_data)) && p->meta && p->free_stack;
}

static void pool_free(kv_pool *p)
{
    garlic_free(p->k_data);
    garlic_free(p->v_data);
    garlic_free(p->meta);
    garlic_free(p->free_stack);
}

// Numbers each layer within its kind.
static void fill_layer_slots(kv_cache *c)
{
    uint32_t next[KIND_COUNT] = {0};
    for (uint32_t l = 0; l < c->cfg.n_layer; l++)
        c->layer_slot[l] = next[kv_windows_has(&c->cfg.windows, l)]++;
}

kv_cache *kv_cache_new(const kv_cache_config *cfg, garlic_error *err)
{
    uint32_t n = 0;
    uint64_t k_row = 0, v_row = 0;
    pool_sizes z;
    if (resolve_blocks(cfg, &n, err) || sizes_for(cfg, n, &z, err) ||
        kv_cache_row_bytes(cfg, &k_row, &v_row, err))
        return NULL;
    kv_cache *c = garlic_calloc(1, sizeof *c);
    if (!c) {
        garlic_error_set(err, GARLIC_ENOMEM, "KV cache: out of memory");
        return NULL;
    }
    c->cfg = *cfg;
    c->cfg.n_blocks = n;
    c->cfg.n_window_blocks = z.n_window;
    c->cfg.budget_bytes = 0;
    c->k_row = (size_t)k_row;
    c->v_row = (size_t)v_row;
    c->bytes = z.full + z.window;
    c->pools[KIND_FULL].bytes = z.full;
    c->pools[KIND_WINDOW].bytes = z.window;
    c->hash_fn = kv_block_hash;
    uint64_t slots = map_slots(n);
    c->map_mask = (uint32_t)(slots - 1);
    bool ok = pool_alloc(&c->pools[KIND_FULL], c, n, cfg->n_layer - z.n_window_layer);
    if (z.n_window_layer) {
        ok = pool_alloc(&c->pools[KIND_WINDOW], c, z.n_window, z.n_window_layer) && ok;
        c->companion = garlic_calloc(n, sizeof(uint32_t));
        c->layer_slot = garlic_calloc(cfg->n_layer, sizeof(uint32_t));
        ok = ok && c->companion && c->layer_slot;
    }
    c->tokens = garlic_calloc((size_t)n * cfg->block_tokens, sizeof(int32_t));
    c->map = garlic_calloc((size_t)slots, sizeof(uint32_t));
    if (!ok || !c->tokens || !c->map) {
        garlic_error_set(err, GARLIC_ENOMEM,
                         "KV cache: out of memory allocating %u blocks "
                         "(%llu bytes)",
                         n, (unsigned long long)c->bytes);
        kv_cache_free(c);
        return NULL;
    }
    for (int k = 0; k < KIND_COUNT; k++)
        reset_pool(&c->pools[k]);
    for (uint64_t i = 0; i <= c->map_mask; i++)
        c->map[i] = KV_NO_BLOCK;
    if (c->companion) {
        for (uint32_t b = 0; b < n; b++)
            c->companion[b] = KV_NO_BLOCK;
        fill_layer_slots(c);
    }
    return c;
}

void kv_cache_free(kv_cache *c)
{
    if (!c)
        return;
    if (c->mirror.gone)
        c->mirror.gone(c->mirror.ctx, c);
    for (int k = 0; k < KIND_COUNT; k++)
        pool_free(&c->pools[k]);
    garlic_free(c->layer_slot);
    garlic_free(c->companion);
    garlic_free(c->tokens);
    garlic_free(c->map);
    garlic_free(c);
}

const kv_cache_config *kv_cache_get_config(const kv_cache *c) { return &c->cfg; }
uint64_t kv_cache_bytes(const kv_cache *c) { return c->bytes; }
size_t kv_cache_k_row_bytes(const kv_cache *c) { return c->k_row; }
size_t kv_cache_v_row_bytes(const kv_cache *c) { return c->v_row; }

// ---- rows ----

// The pool of layer's kind, and the row index of (layer, block, offset) in it.
static const kv_pool *row_pool(const kv_cache *c, uint32_t layer, uint32_t block, uint32_t offset,
                               size_t *index)
{
    assert(layer < c->cfg.n_layer && offset < c->cfg.block_tokens);
    bool window = kv_cache_layer_is_window(c, layer);
    const kv_pool *p = &c->pools[window ? KIND_WINDOW : KIND_FULL];
    uint32_t slot = c->layer_slot ? c->layer_slot[layer] : layer;
    assert(block < p->n_blocks);
    *index = ((size_t)slot * p->n_blocks + block) * c->cfg.block_tokens + offset;
    return p;
}

uint8_t *kv_cache_k_row(const kv_cache *c, uint32_t layer, uint32_t block, uint32_t offset)
{
    size_t i;
    const kv_pool *p = row_pool(c, layer, block, offset, &i);
    return p->k_data + i * c->k_row;
}

uint8_t *kv_cache_v_row(const kv_cache *c, uint32_t layer, uint32_t block, uint32_t offset)
{
    size_t i;
    const kv_pool *p = row_pool(c, layer, block, offset, &i);
    return p->v_data + i * c->v_row;
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

// ---- the LRU lists of cached blocks ----

static void lru_remove(kv_pool *p, uint32_t b)
{
    block_meta *m = &p->meta[b];
    if (m->lru_prev != KV_NO_BLOCK)
        p->meta[m->lru_prev].lru_next = m->lru_next;
    else
        p->lru_head = m->lru_next;
    if (m->lru_next != KV_NO_BLOCK)
        p->meta[m->lru_next].lru_prev = m->lru_prev;
    else
        p->lru_tail = m->lru_prev;
    m->lru_prev = m->lru_next = KV_NO_BLOCK;
    p->n_cached--;
}

static void lru_push_tail(kv_pool *p, uint32_t b)
{
    block_meta *m = &p->meta[b];
    m->lru_prev = p->lru_tail;
    m->lru_next = KV_NO_BLOCK;
    if (p->lru_tail != KV_NO_BLOCK)
        p->meta[p->lru_tail].lru_next = b;
    else
        p->lru_head = b;
    p->lru_tail = b;
    p->n_cached++;
}

// ---- the prefix map ----

// Whether published block b is the block with this hash, these tokens and this parent.
static bool block_matches(const kv_cache *c, uint32_t b, uint64_t hash, const int32_t *tokens,
                          uint32_t parent, uint32_t parent_gen)
{
    const block_meta *m = &c->pools[KIND_FULL].meta[b];
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
    kv_pool *p = &c->pools[KIND_FULL];
    uint32_t slot = (uint32_t)p->meta[b].hash & c->map_mask;
    while (c->map[slot] != KV_NO_BLOCK)
        slot = (slot + 1) & c->map_mask;
    c->map[slot] = b;
    p->meta[b].published = 1;
    p->n_published++;
}

// Unpublishes window block w: its full block loses it as companion. An unreferenced one goes
// from the LRU list to the free stack.
static void window_unpublish(kv_cache *c, uint32_t w)
{
    kv_pool *p = &c->pools[KIND_WINDOW];
    block_meta *m = &p->meta[w];
    if (c->companion[m->parent] == w)
        c->companion[m->parent] = KV_NO_BLOCK;
    m->published = 0;
    m->parent = KV_NO_BLOCK;
    m->gen++;
    p->n_published--;
    if (m->refs == 0) {
        lru_remove(p, w);
        p->free_stack[p->n_free++] = w;
    }
}

// Removes full block b from the map by backward shifting (later entries of the probe run
// move into the hole when their home slot does not lie cyclically in (hole, their slot]),
// and drops its window companion.
static void map_remove(kv_cache *c, uint32_t b)
{
    kv_pool *p = &c->pools[KIND_FULL];
    uint32_t mask = c->map_mask, hole = (uint32_t)p->meta[b].hash & mask;
    while (c->map[hole] != b)
        hole = (hole + 1) & mask;
    for (uint32_t j = (hole + 1) & mask; c->map[j] != KV_NO_BLOCK; j = (j + 1) & mask) {
        uint32_t home = (uint32_t)p->meta[c->map[j]].hash & mask;
        bool stays = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
        if (stays)
            continue;
        c->map[hole] = c->map[j];
        hole = j;
    }
    c->map[hole] = KV_NO_BLOCK;
    p->meta[b].published = 0;
    p->meta[b].gen++;
    p->n_published--;
    uint32_t w = c->companion ? c->companion[b] : KV_NO_BLOCK;
    if (w != KV_NO_BLOCK) { // an unreferenced companion is reclaimed with it
        c->pools[KIND_WINDOW].evictions += c->pools[KIND_WINDOW].meta[w].refs == 0;
        window_unpublish(c, w);
    }
}

// ---- block references ----

// A block of kind for new contents with one reference: a free one, else the least recently
// used cached one (unpublished). KV_NO_BLOCK when every block is referenced.
static uint32_t take_block(kv_cache *c, int kind)
{
    kv_pool *p = &c->pools[kind];
    uint32_t b;
    if (p->n_free) {
        b = p->free_stack[--p->n_free];
    } else if (p->lru_head != KV_NO_BLOCK) {
        b = p->lru_head;
        lru_remove(p, b);
        p->meta[b].refs = 1; // not cached: window_unpublish leaves it off the free stack
        if (kind == KIND_FULL)
            map_remove(c, b);
        else
            window_unpublish(c, b);
        p->evictions++;
    } else {
        return KV_NO_BLOCK;
    }
    p->meta[b].gen++;
    p->meta[b].refs = 1;
    p->meta[b].parent = KV_NO_BLOCK;
    return b;
}

static void acquire_block(kv_pool *p, uint32_t b)
{
    if (p->meta[b].refs++ == 0)
        lru_remove(p, b);
}

// Drops one reference; returns true when it was the last (the block is then cached if
// published, free otherwise).
static bool release_block(kv_pool *p, uint32_t b)
{
    assert(p->meta[b].refs > 0);
    if (--p->meta[b].refs)
        return false;
    if (p->meta[b].published)
        lru_push_tail(p, b);
    else
        p->free_stack[p->n_free++] = b;
    return true;
}

uint32_t kv_cache_block_refs(const kv_cache *c, uint32_t block)
{
    const kv_pool *p = &c->pools[KIND_FULL];
    return block < p->n_blocks ? p->meta[block].refs : 0;
}

uint32_t kv_cache_window_block_refs(const kv_cache *c, uint32_t block)
{
    const kv_pool *p = &c->pools[KIND_WINDOW];
    return block < p->n_blocks ? p->meta[block].refs : 0;
}

// Blocks of p in use, and p's bytes pro rata of them.
static uint32_t pool_used(const kv_pool *p) { return p->n_blocks - p->n_free - p->n_cached; }

static uint64_t pool_used_bytes(const kv_pool *p)
{
    return p->n_blocks ? p->bytes / p->n_blocks * pool_used(p) : 0;
}

kv_cache_stats kv_cache_get_stats(const kv_cache *c)
{
    const kv_pool *f = &c->pools[KIND_FULL], *w = &c->pools[KIND_WINDOW];
    return (kv_cache_stats){
        .n_blocks = f->n_blocks,
        .n_free = f->n_free,
        .n_cached = f->n_cached,
        .n_used = pool_used(f),
        .n_window_blocks = w->n_blocks,
        .n_window_free = w->n_free,
        .n_window_cached = w->n_cached,
        .n_window_used = pool_used(w),
        .bytes = c->bytes,
        .window_bytes = w->bytes,
        .used_bytes = pool_used_bytes(f) + pool_used_bytes(w),
        .prefix_hits = c->prefix_hits,
        .prefix_misses = c->prefix_misses,
        .evictions = f->evictions,
        .window_evictions = w->evictions,
        .dedups = c->dedups,
    };
}

// Free plus cached (reclaimable) blocks of p.
static uint64_t available(const kv_pool *p) { return (uint64_t)p->n_free + p->n_cached; }

bool kv_cache_has_blocks(const kv_cache *c, uint64_t n)
{
    return n <= available(&c->pools[KIND_FULL]) &&
        (!has_window(c) || n <= available(&c->pools[KIND_WINDOW]));
}

// ---- prefix lookup and admission ----

// What a prompt would share: leading full blocks of its tokens that the map holds, and how
// many of them can be shared with the window blocks before them.
typedef struct prefix_match {
    uint32_t n_found;     // leading full blocks the prefix cache holds
    uint32_t n_shared;    // of which shareable: the window blocks [window_from, n_shared)
                          // are cached too (n_found without window layers)
    uint32_t window_from; // first block whose window block is shared
    uint32_t idle_full;   // unreferenced blocks among the first n_shared full blocks
    uint32_t idle_window; // unreferenced window blocks among the shared ones
} prefix_match;

// Walks the leading full blocks of tokens[0..n) through the map, writing the blocks found to
// found (when not NULL).
static prefix_match match_prefix(const kv_cache *c, const int32_t *tokens, uint32_t n,
                                 uint32_t *found)
{
    const kv_pool *f = &c->pools[KIND_FULL], *w = &c->pools[KIND_WINDOW];
    uint32_t bt = c->cfg.block_tokens, parent = KV_NO_BLOCK, parent_gen = 0, run = 0;
    uint64_t hash = KV_HASH_ROOT;
    prefix_match r = {0};
    uint32_t idle_full = 0;
    for (uint32_t i = 0; i < n / bt; i++) {
        const int32_t *t = tokens + (size_t)i * bt;
        hash = c->hash_fn(hash, t, bt);
        uint32_t b = map_find(c, hash, t, parent, parent_gen);
        if (b == KV_NO_BLOCK)
            break;
        if (found)
            found[i] = b;
        idle_full += f->meta[b].refs == 0;
        r.n_found = i + 1;
        parent = b;
        parent_gen = f->meta[b].gen;
        // Blocks 0..i can be shared when the window blocks from the one holding the first
        // position a token at (i + 1) bt reads are cached: `run` companions end at block i.
        uint32_t from = has_window(c) ? window_start(c, (i + 1) * bt) / bt : i + 1;
        run = has_window(c) && c->companion[b] != KV_NO_BLOCK ? run + 1 : 0;
        if (i + 1 - from <= run) {
            r.n_shared = i + 1;
            r.window_from = from;
            r.idle_full = idle_full;
        }
    }
    if (!has_window(c))
        return r;
    // The window blocks shared: a second pass over the companions (the chain is in found or
    // walked again).
    parent = KV_NO_BLOCK, parent_gen = 0, hash = KV_HASH_ROOT;
    for (uint32_t i = 0; i < r.n_shared; i++) {
        const int32_t *t = tokens + (size_t)i * bt;
        uint32_t b = found ? found[i] : KV_NO_BLOCK;
        if (!found) {
            hash = c->hash_fn(hash, t, bt);
            b = map_find(c, hash, t, parent, parent_gen);
            parent = b;
            parent_gen = f->meta[b].gen;
        }
        if (i >= r.window_from)
            r.idle_window += w->meta[c->companion[b]].refs == 0;
    }
    return r;
}

uint32_t kv_cache_prefix_lookup(const kv_cache *c, const int32_t *tokens, uint32_t n)
{
    return match_prefix(c, tokens, n, NULL).n_shared;
}

bool kv_cache_can_admit(const kv_cache *c, uint64_t n_tokens)
{
    return kv_cache_has_blocks(c, kv_cache_blocks_for_tokens(c, n_tokens));
}

bool kv_cache_can_admit_prompt(const kv_cache *c, const int32_t *tokens, uint32_t n_shared,
                               uint64_t n_total, uint32_t step_tokens, uint32_t spare_blocks)
{
    prefix_match m = match_prefix(c, tokens, n_shared, NULL);
    const kv_pool *f = &c->pools[KIND_FULL], *w = &c->pools[KIND_WINDOW];
    uint64_t need = (uint64_t)kv_cache_blocks_for_tokens(c, n_total) - m.n_shared;
    if (need + spare_blocks > available(f) - m.idle_full)
        return false;
    if (!has_window(c))
        return true;
    // At its peak the sequence holds the window blocks from window_from up to its last
    // position, or, appending step_tokens at a time, at most the blocks of a window and a
    // step at worst alignment.
    uint64_t peak = (uint64_t)kv_cache_blocks_for_tokens(c, n_total) - m.window_from;
    if (step_tokens) {
        uint64_t bound = kv_window_blocks_for(&c->cfg, 1, step_tokens);
        peak = peak < bound ? peak : bound;
    }
    uint64_t held = m.n_shared - m.window_from;
    uint64_t need_window = peak > held ? peak - held : 0;
    return need_window + spare_blocks <= available(w) - m.idle_window;
}

// ---- sequences ----

void kv_seq_init(kv_seq *s) { *s = (kv_seq){0}; }

void kv_seq_deinit(kv_cache *c, kv_seq *s)
{
    kv_seq_release(c, s);
    garlic_free(s->blocks);
    garlic_free(s->window_blocks);
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
    // Both tables grow to the same capacity; a failure leaves s->capacity as it was (the
    // table that did grow keeps its contents).
    size_t capacity = s->capacity, window_capacity = s->capacity;
    if (garlic_grow(&s->blocks, &capacity, need, sizeof *s->blocks) ||
        (has_window(c) &&
         garlic_grow(&s->window_blocks, &window_capacity, capacity, sizeof *s->window_blocks)))
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
    uint32_t bt = c->cfg.block_tokens, n_full = n / bt;
    if (n_full > c->cfg.n_blocks)
        n_full = c->cfg.n_blocks; // a longer prompt cannot be cached beyond the pool
    int rc = kv_seq_reserve(c, s, (uint64_t)n_full * bt, err);
    if (rc)
        return rc;
    prefix_match m = match_prefix(c, tokens, n_full * bt, s->blocks);
    for (uint32_t i = 0; i < m.n_shared; i++)
        acquire_block(&c->pools[KIND_FULL], s->blocks[i]);
    if (has_window(c)) {
        for (uint32_t i = 0; i < m.window_from; i++)
            s->window_blocks[i] = KV_NO_BLOCK;
        for (uint32_t i = m.window_from; i < m.n_shared; i++) {
            s->window_blocks[i] = c->companion[s->blocks[i]];
            acquire_block(&c->pools[KIND_WINDOW], s->window_blocks[i]);
        }
        s->window_first = m.window_from;
    }
    c->prefix_hits += m.n_shared;
    c->prefix_misses += n_full - m.n_shared;
    s->n_blocks = m.n_shared;
    s->n_tokens = s->n_committed = m.n_shared * bt;
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
    const kv_pool *f = &c->pools[KIND_FULL], *w = &c->pools[KIND_WINDOW];
    if (!kv_cache_has_blocks(c, need))
        return garlic_error_set(err, GARLIC_ENOMEM,
                                "KV cache full: %u more positions need %u "
                                "blocks, %u free and %u reclaimable (window blocks: %u and %u)",
                                n, need, f->n_free, f->n_cached, w->n_free, w->n_cached);
    int rc = kv_seq_reserve(c, s, total, err);
    if (rc)
        return rc;
    // The current last block, if partial, is private (published blocks are full).
    assert(s->n_tokens % bt == 0 || !f->meta[s->blocks[s->n_blocks - 1]].published);
    for (uint32_t i = 0; i < need; i++) {
        if (has_window(c))
            s->window_blocks[s->n_blocks] = take_block(c, KIND_WINDOW);
        s->blocks[s->n_blocks++] = take_block(c, KIND_FULL);
    }
    for (uint32_t i = 0; i < n; i++) {
        uint32_t pos = s->n_tokens + i;
        c->tokens[(size_t)s->blocks[pos / bt] * bt + pos % bt] = tokens[i];
    }
    s->n_tokens = total;
    return GARLIC_OK;
}

// Publishes window block i of s as the companion of s's full block i, or, when that block
// has a companion already, switches s to it and frees its own copy.
static void publish_window(kv_cache *c, kv_seq *s, uint32_t i)
{
    kv_pool *w = &c->pools[KIND_WINDOW];
    uint32_t f = s->blocks[i], b = s->window_blocks[i];
    if (w->meta[b].published) { // shared with f already
        assert(c->companion[f] == b);
        return;
    }
    uint32_t twin = c->companion[f];
    if (twin != KV_NO_BLOCK) {
        acquire_block(w, twin);
        s->window_blocks[i] = twin;
        release_block(w, b);
        return;
    }
    block_meta *m = &w->meta[b];
    m->parent = f;
    m->parent_gen = c->pools[KIND_FULL].meta[f].gen;
    m->published = 1;
    w->n_published++;
    c->companion[f] = b;
}

// Publishes full block i of s, or, when an identical block is cached, switches s to that
// block and frees its own copy; then its window block.
static void publish_block(kv_cache *c, kv_seq *s, uint32_t i)
{
    kv_pool *p = &c->pools[KIND_FULL];
    uint32_t b = s->blocks[i], bt = c->cfg.block_tokens;
    uint32_t parent = i ? s->blocks[i - 1] : KV_NO_BLOCK;
    uint32_t parent_gen = i ? p->meta[parent].gen : 0;
    uint64_t parent_hash = i ? p->meta[parent].hash : KV_HASH_ROOT;
    const int32_t *tokens = block_tokens_of(c, b);
    uint64_t hash = c->hash_fn(parent_hash, tokens, bt);
    uint32_t twin = map_find(c, hash, tokens, parent, parent_gen);
    if (twin != KV_NO_BLOCK) {
        acquire_block(p, twin);
        s->blocks[i] = twin;
        release_block(p, b);
        c->dedups++;
    } else {
        block_meta *m = &p->meta[b];
        m->hash = hash;
        m->parent = parent;
        m->parent_gen = parent_gen;
        map_insert(c, b);
    }
    if (has_window(c) && i >= s->window_first)
        publish_window(c, s, i);
}

// Releases the window blocks of s that no token from position n on reads.
static void release_window(kv_cache *c, kv_seq *s, uint32_t n)
{
    uint32_t first = window_start(c, n) / c->cfg.block_tokens;
    for (; s->window_first < first && s->window_first < s->n_blocks; s->window_first++) {
        release_block(&c->pools[KIND_WINDOW], s->window_blocks[s->window_first]);
        s->window_blocks[s->window_first] = KV_NO_BLOCK;
    }
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
    if (has_window(c))
        release_window(c, s, n_written);
    return GARLIC_OK;
}

// Copies the first n_keep rows of block `from` into block `to` for every layer of kind.
static void copy_rows(kv_cache *c, int kind, uint32_t to, uint32_t from, uint32_t n_keep)
{
    for (uint32_t l = 0; l < c->cfg.n_layer; l++) {
        if ((kind == KIND_WINDOW) != kv_cache_layer_is_window(c, l))
            continue;
        memcpy(kv_cache_k_row(c, l, to, 0), kv_cache_k_row(c, l, from, 0), n_keep * c->k_row);
        memcpy(kv_cache_v_row(c, l, to, 0), kv_cache_v_row(c, l, from, 0), n_keep * c->v_row);
    }
    if (c->mirror.copy)
        c->mirror.copy(c->mirror.ctx, kind == KIND_WINDOW, to, from, n_keep);
}

int kv_cache_copy_rows_of(kv_cache *c, bool window, uint32_t to, uint32_t from, uint32_t n_rows,
                          garlic_error *err)
{
    int kind = window ? KIND_WINDOW : KIND_FULL;
    uint32_t n = c->pools[kind].n_blocks;
    if (to >= n || from >= n || n_rows > c->cfg.block_tokens)
        return garlic_error_set(err, GARLIC_EINVAL,
                                "copy of %u rows from %s block %u to %u: the pool has %u blocks "
                                "of %u positions",
                                n_rows, window ? "window" : "full", from, to, n,
                                c->cfg.block_tokens);
    if (to != from)
        copy_rows(c, kind, to, from, n_rows);
    return GARLIC_OK;
}

void kv_cache_set_mirror(kv_cache *c, const kv_mirror *m) { c->mirror = m ? *m : (kv_mirror){0}; }

// Makes published block b of kind private to s (the entry *slot of one of its tables),
// partial after a truncation to n_keep positions in it: a copy of its kept rows when a
// block can be had, else the block itself, unpublished (its caller checked that one of the
// two is possible).
static void make_private_one(kv_cache *c, int kind, uint32_t *slot, uint32_t n_keep)
{
    kv_pool *p = &c->pools[kind];
    uint32_t b = *slot, copy = take_block(c, kind);
    if (copy == KV_NO_BLOCK) {
        assert(p->meta[b].refs == 1);
        if (kind == KIND_FULL)
            map_remove(c, b);
        else
            window_unpublish(c, b);
        return;
    }
    copy_rows(c, kind, copy, b, n_keep);
    if (kind == KIND_FULL)
        memcpy(c->tokens + (size_t)copy * c->cfg.block_tokens, block_tokens_of(c, b),
               n_keep * sizeof(int32_t));
    release_block(p, b);
    *slot = copy;
}

// Makes block i of s (both kinds), partial after a truncation to n_keep positions in it,
// private. GARLIC_ENOMEM, with nothing changed, when a published block shared with others
// cannot get a copy.
static int make_private(kv_cache *c, kv_seq *s, uint32_t i, uint32_t n_keep, garlic_error *err)
{
    uint32_t *slots[KIND_COUNT] = {&s->blocks[i], NULL};
    if (has_window(c) && i >= s->window_first)
        slots[KIND_WINDOW] = &s->window_blocks[i];
    for (int k = 0; k < KIND_COUNT; k++) {
        const kv_pool *p = &c->pools[k];
        if (slots[k] && p->meta[*slots[k]].published && available(p) == 0 &&
            p->meta[*slots[k]].refs > 1)
            return garlic_error_set(err, GARLIC_ENOMEM,
                                    "KV cache full: no %s block for a private "
                                    "copy of a shared block",
                                    k == KIND_FULL ? "full" : "window");
    }
    // The full block first: unpublishing it drops its companion, which the window block
    // then is (or was) and so becomes private too.
    for (int k = 0; k < KIND_COUNT; k++)
        if (slots[k] && c->pools[k].meta[*slots[k]].published)
            make_private_one(c, k, slots[k], n_keep);
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
    // Computing on from position n needs the window blocks from the one holding
    // window_start(n) to the kept partial block.
    uint32_t need_from = window_start(c, n) / bt;
    if (has_window(c) && need_from < keep && need_from < s->window_first)
        return garlic_error_set(err, GARLIC_EUNSUPPORTED,
                                "KV cache: cannot rewind to %u positions: "
                                "the window layers' rows of positions %u.. were released",
                                n, need_from * bt);
    if (n % bt) {
        int rc = make_private(c, s, keep - 1, n % bt, err);
        if (rc)
            return rc;
    }
    for (uint32_t i = s->n_blocks; has_window(c) && i-- > keep && i >= s->window_first;) {
        release_block(&c->pools[KIND_WINDOW], s->window_blocks[i]);
        s->window_blocks[i] = KV_NO_BLOCK;
    }
    for (uint32_t i = s->n_blocks; i-- > keep;)
        release_block(&c->pools[KIND_FULL], s->blocks[i]);
    s->n_blocks = keep;
    if (s->window_first > keep)
        s->window_first = keep;
    s->n_tokens = n;
    if (s->n_committed > n)
        s->n_committed = n;
    return GARLIC_OK;
}

uint32_t kv_seq_release(kv_cache *c, kv_seq *s)
{
    uint32_t reclaimed = 0;
    for (uint32_t i = s->n_blocks; has_window(c) && i-- > s->window_first;)
        release_block(&c->pools[KIND_WINDOW], s->window_blocks[i]);
    for (uint32_t i = s->n_blocks; i-- > 0;)
        reclaimed += release_block(&c->pools[KIND_FULL], s->blocks[i]);
    s->n_blocks = s->n_tokens = s->n_committed = s->window_first = 0;
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

bool kv_seq_holds_rows(const kv_cache *c, const kv_seq *s, uint32_t pos)
{
    return pos < s->n_tokens &&
        (!has_window(c) || window_start(c, pos) / c->cfg.block_tokens >= s->window_first);
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

// The free stack and the LRU list of pool p: every entry in one list once, in the right
// state.
static int check_lists(const kv_pool *p, const char *kind, uint8_t *seen, garlic_error *err)
{
    uint32_t n = p->n_blocks;
    if (p->n_free > n || p->n_cached > n - p->n_free)
        return garlic_error_set(err, GARLIC_EFORMAT,
                                "KV check: %u free + %u cached > %u %s "
                                "blocks",
                                p->n_free, p->n_cached, n, kind);
    for (uint32_t i = 0; i < p->n_free; i++) {
        uint32_t b = p->free_stack[i];
        if (b >= n || !mark_once(seen, b, 1) || p->meta[b].refs || p->meta[b].published)
            return garlic_error_set(err, GARLIC_EFORMAT,
                                    "KV check: free %s entry %u (block %u) "
                                    "is out of range, repeated, referenced or published",
                                    kind, i, b);
    }
    uint32_t count = 0, prev = KV_NO_BLOCK;
    for (uint32_t b = p->lru_head; b != KV_NO_BLOCK; prev = b, b = p->meta[b].lru_next) {
        if (b >= n || count++ >= p->n_cached || p->meta[b].lru_prev != prev ||
            !mark_once(seen, b, 2) || p->meta[b].refs || !p->meta[b].published)
            return garlic_error_set(err, GARLIC_EFORMAT,
                                    "KV check: %s LRU entry %u (block %u) is "
                                    "out of range, misplaced, repeated or in a wrong state",
                                    kind, count, b);
    }
    if (count != p->n_cached || prev != p->lru_tail)
        return garlic_error_set(err, GARLIC_EFORMAT,
                                "KV check: %s LRU list holds %u blocks, "
                                "count says %u",
                                kind, count, p->n_cached);
    for (uint32_t b = 0; b < n; b++)
        if ((p->meta[b].refs == 0) != (seen[b] != 0))
            return garlic_error_set(err, GARLIC_EFORMAT,
                                    "KV check: %s block %u has %u references "
                                    "but is %son a list",
                                    kind, b, p->meta[b].refs, seen[b] ? "" : "not ");
    return GARLIC_OK;
}

// Every published full block is findable in the map and the map holds nothing else.
static int check_map(const kv_cache *c, garlic_error *err)
{
    const kv_pool *p = &c->pools[KIND_FULL];
    uint32_t n_published = 0;
    for (uint32_t b = 0; b < p->n_blocks; b++) {
        const block_meta *m = &p->meta[b];
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
        if (b >= p->n_blocks || !p->meta[b].published)
            return garlic_error_set(err, GARLIC_EFORMAT,
                                    "KV check: map slot %llu holds block "
                                    "%u, which is not published",
                                    (unsigned long long)i, b);
    }
    if (in_map != n_published || n_published != p->n_published)
        return garlic_error_set(err, GARLIC_EFORMAT,
                                "KV check: %u map entries, %u published "
                                "blocks, count %u",
                                in_map, n_published, p->n_published);
    return GARLIC_OK;
}

// The window links: a published window block names a published full block (of the same
// generation) whose companion it is, no window block is more referenced than its full block
// (a sequence holding one holds the other), and every companion names it back.
static int check_window_links(const kv_cache *c, garlic_error *err)
{
    const kv_pool *f = &c->pools[KIND_FULL], *w = &c->pools[KIND_WINDOW];
    uint32_t n_published = 0, n_links = 0;
    for (uint32_t b = 0; b < w->n_blocks; b++) {
        const block_meta *m = &w->meta[b];
        if (!m->published)
            continue;
        n_published++;
        uint32_t full = m->parent;
        if (full >= f->n_blocks || !f->meta[full].published || c->companion[full] != b ||
            f->meta[full].gen != m->parent_gen || m->refs > f->meta[full].refs)
            return garlic_error_set(err, GARLIC_EFORMAT,
                                    "KV check: window block %u is published "
                                    "but not the companion of a published full block %u",
                                    b, full);
    }
    for (uint32_t b = 0; b < f->n_blocks; b++) {
        uint32_t wb = c->companion[b];
        if (wb == KV_NO_BLOCK)
            continue;
        n_links++;
        if (wb >= w->n_blocks || !w->meta[wb].published || w->meta[wb].parent != b)
            return garlic_error_set(err, GARLIC_EFORMAT,
                                    "KV check: full block %u names window "
                                    "block %u, which does not name it back",
                                    b, wb);
    }
    if (n_published != w->n_published || n_links != n_published)
        return garlic_error_set(err, GARLIC_EFORMAT,
                                "KV check: %u published window blocks, "
                                "%u links, count %u",
                                n_published, n_links, w->n_published);
    return GARLIC_OK;
}

int kv_cache_check(const kv_cache *c, garlic_error *err)
{
    const kv_pool *f = &c->pools[KIND_FULL], *w = &c->pools[KIND_WINDOW];
    uint32_t most = f->n_blocks > w->n_blocks ? f->n_blocks : w->n_blocks;
    uint8_t *seen = garlic_calloc(most ? most : 1, 1);
    if (!seen)
        return garlic_error_set(err, GARLIC_ENOMEM, "KV check: out of memory");
    int rc = check_lists(f, "full", seen, err);
    if (!rc)
        rc = check_map(c, err);
    if (!rc && has_window(c)) {
        memset(seen, 0, most);
        rc = check_lists(w, "window", seen, err);
        if (!rc)
            rc = check_window_links(c, err);
    }
    garlic_free(seen);
    return rc;
}
