// SPDX-License-Identifier: MIT
// Matching text against a compiled grammar. The state is a set of parse stacks (every way the
// text so far can continue); a character keeps the stacks whose top symbol matches it and
// expands what follows: a rule reference pushes a return frame and fans out into the rule's
// alternatives, the end of an alternative pops. A reference in tail position pushes nothing,
// so right recursion (X*) keeps stacks flat. Stacks live as hash-consed nodes in a pool that
// grows while a mask explores and is rolled back after it; when the pool outgrows the live
// stacks, a copying collection compacts it, so a long generation does not grow memory.
#include <string.h>

#include "base/alloc.h"
#include "sampler/grammar_internal.h"

enum { MIN_NODES = 1024 };

static uint32_t node_hash(uint32_t pos, uint32_t parent, uint32_t mask)
{
    uint64_t h = ((uint64_t)pos << 32 | parent) * 0x9e3779b97f4a7c15ull;
    return (uint32_t)(h >> 40) & mask;
}

// Rebuilds the hash chains for nodes[0..n_nodes), oldest first, so that each chain runs
// from newest to oldest (what rollback relies on).
static void rehash(grammar_state *s)
{
    memset(s->buckets, 0, s->n_buckets * sizeof *s->buckets);
    for (uint32_t i = 1; i < s->n_nodes; i++) {
        uint32_t h = node_hash(s->nodes[i].pos, s->nodes[i].parent, s->n_buckets - 1);
        s->nodes[i].chain = s->buckets[h];
        s->buckets[h] = i;
    }
}

// Makes room for one more node. GARLIC_ENOMEM when the pool cannot grow.
static int pool_reserve(grammar_state *s)
{
    if (s->n_nodes < s->cap_nodes)
        return GARLIC_OK;
    if (s->cap_nodes >= UINT32_MAX / 4)
        return GARLIC_ENOMEM;
    uint32_t cap = s->cap_nodes ? s->cap_nodes * 2 : MIN_NODES;
    gnode *nodes = garlic_realloc(s->nodes, (size_t)cap * sizeof *nodes);
    if (!nodes)
        return GARLIC_ENOMEM;
    s->nodes = nodes;
    uint32_t *buckets = garlic_realloc(s->buckets, (size_t)cap * sizeof *buckets);
    if (!buckets)
        return GARLIC_ENOMEM;
    s->buckets = buckets;
    s->cap_nodes = cap;
    s->n_buckets = cap;
    rehash(s);
    return GARLIC_OK;
}

// The node (pos, parent), made if new; 0 (GNODE_NIL is never a result) on failure or
// when the stack would pass GRAMMAR_MAX_DEPTH (*too_deep set).
static uint32_t node_get(grammar_state *s, uint32_t pos, uint32_t parent, bool *too_deep)
{
    uint32_t h = node_hash(pos, parent, s->n_buckets - 1);
    for (uint32_t i = s->buckets[h]; i != 0; i = s->nodes[i].chain)
        if (s->nodes[i].pos == pos && s->nodes[i].parent == parent)
            return i;
    uint32_t depth = s->nodes[parent].depth + 1;
    if (depth > GRAMMAR_MAX_DEPTH) {
        *too_deep = true;
        return 0;
    }
    if (pool_reserve(s) != 0)
        return 0;
    h = node_hash(pos, parent, s->n_buckets - 1);
    uint32_t id = s->n_nodes++;
    uint32_t dist = grammar_dist_add(s->g->min_len[pos], s->nodes[parent].dist);
    s->nodes[id] = (gnode){pos, parent, s->buckets[h], depth, 0, dist};
    s->buckets[h] = id;
    return id;
}

void grammar_state_rollback(grammar_state *s, uint32_t mark)
{
    while (s->n_nodes > mark) {
        uint32_t id = --s->n_nodes;
        uint32_t h = node_hash(s->nodes[id].pos, s->nodes[id].parent, s->n_buckets - 1);
        s->buckets[h] = s->nodes[id].chain;
    }
}

static int grow_u32(uint32_t **v, uint32_t *cap, size_t need)
{
    if (need <= *cap)
        return GARLIC_OK;
    if (need > UINT32_MAX / 2)
        return GARLIC_ENOMEM;
    size_t n = *cap ? *cap : 64;
    while (n < need)
        n *= 2;
    uint32_t *p = garlic_realloc(*v, n * sizeof *p);
    if (!p)
        return GARLIC_ENOMEM;
    *v = p;
    *cap = (uint32_t)n;
    return GARLIC_OK;
}

// The set being built in s->next: adds top node id unless already there.
static int set_add(grammar_state *s, uint32_t id, uint32_t *n, garlic_error *err)
{
    if (s->nodes[id].stamp == s->stamp)
        return GARLIC_OK;
    s->nodes[id].stamp = s->stamp;
    if (*n >= GRAMMAR_MAX_STACKS)
        return garlic_error_set(err, GARLIC_EINVAL,
                                "grammar: more than %d parse stacks at once (the grammar is too "
                                "ambiguous)",
                                GRAMMAR_MAX_STACKS);
    if (grow_u32(&s->next, &s->cap_next, (size_t)*n + 1) != 0)
        return garlic_error_set(err, GARLIC_ENOMEM, "grammar: out of memory");
    s->next[(*n)++] = id;
    return GARLIC_OK;
}

// Starts a new step: forgets which rules were expanded.
static void seen_clear(grammar_state *s)
{
    s->seen_n = 0;
    if (++s->gen == 0) {
        if (s->seen_gen)
            memset(s->seen_gen, 0, s->seen_cap * sizeof *s->seen_gen);
        s->gen = 1;
    }
}

static uint32_t seen_slot(uint64_t key, uint32_t cap)
{
    return (uint32_t)((key * 0x9e3779b97f4a7c15ull) >> 32) & (cap - 1);
}

// Whether rule was already expanded over the return node ret in this step (then its results
// are in the set already); records it if not. GARLIC_ENOMEM when the table cannot grow.
static int seen_check(grammar_state *s, uint32_t rule, uint32_t ret, bool *seen)
{
    uint64_t key = ((uint64_t)rule << 32) | ret;
    if ((s->seen_n + 1) * 2 > s->seen_cap) {
        uint32_t cap = s->seen_cap ? s->seen_cap * 2 : 256;
        uint64_t *keys = garlic_malloc((size_t)cap * sizeof *keys);
        uint32_t *gen = garlic_calloc(cap, sizeof *gen);
        if (!keys || !gen) {
            garlic_free(keys);
            garlic_free(gen);
            return GARLIC_ENOMEM;
        }
        for (uint32_t i = 0; i < s->seen_cap; i++) {
            if (s->seen_gen[i] != s->gen)
                continue;
            uint32_t h = seen_slot(s->seen_keys[i], cap);
            while (gen[h] == s->gen)
                h = (h + 1) & (cap - 1);
            keys[h] = s->seen_keys[i];
            gen[h] = s->gen;
        }
        garlic_free(s->seen_keys);
        garlic_free(s->seen_gen);
        s->seen_keys = keys;
        s->seen_gen = gen;
        s->seen_cap = cap;
    }
    uint32_t h = seen_slot(key, s->seen_cap);
    for (; s->seen_gen[h] == s->gen; h = (h + 1) & (s->seen_cap - 1))
        if (s->seen_keys[h] == key) {
            *seen = true;
            return GARLIC_OK;
        }
    s->seen_keys[h] = key;
    s->seen_gen[h] = s->gen;
    s->seen_n++;
    *seen = false;
    return GARLIC_OK;
}

// Expands position pos over the stack parent into s->next: every way to reach a character
// symbol (or the end of the whole parse) from there without consuming input.
static int expand(grammar_state *s, uint32_t pos, uint32_t parent, uint32_t *n, garlic_error *err)
{
    const grammar *g = s->g;
    uint32_t n_work = 0, steps = 0;
    bool too_deep = false;
    if (grow_u32(&s->work, &s->cap_work, 2) != 0)
        return garlic_error_set(err, GARLIC_ENOMEM, "grammar: out of memory");
    s->work[n_work++] = pos;
    s->work[n_work++] = parent;
    while (n_work > 0) {
        parent = s->work[--n_work];
        pos = s->work[--n_work];
        if (++steps > GRAMMAR_MAX_EXPANSION || s->work_left == 0)
            return garlic_error_set(err, GARLIC_EINVAL,
                                    "grammar: more than %d expansion steps for one character "
                                    "or %d for one mask (the grammar is too ambiguous)",
                                    GRAMMAR_MAX_EXPANSION, GRAMMAR_MAX_MASK_WORK);
        s->work_left--;
        gsym sym = g->syms[pos];
        // Pop finished rules.
        while (sym.kind == GSYM_END && parent != GNODE_NIL) {
            pos = s->nodes[parent].pos;
            parent = s->nodes[parent].parent;
            sym = g->syms[pos];
        }
        int rc;
        if (sym.kind == GSYM_END) {
            rc = set_add(s, GNODE_NIL, n, err);
        } else if (sym.kind != GSYM_RULE) {
            uint32_t id = node_get(s, pos, parent, &too_deep);
            if (id == 0 && !too_deep)
                return garlic_error_set(err, GARLIC_ENOMEM, "grammar: out of memory");
            rc = id == 0 ? GARLIC_OK : set_add(s, id, n, err);
        } else {
            // Push the return frame unless the reference is in tail position.
            uint32_t ret = parent;
            if (g->syms[pos + 1].kind != GSYM_END) {
                ret = node_get(s, pos + 1, parent, &too_deep);
                if (ret == 0) {
                    if (!too_deep)
                        return garlic_error_set(err, GARLIC_ENOMEM, "grammar: out of memory");
                    continue; // too deep: this path is dropped
                }
            }
            bool seen;
            if (seen_check(s, sym.arg, ret, &seen) != 0)
                return garlic_error_set(err, GARLIC_ENOMEM, "grammar: out of memory");
            if (seen)
                continue; // the same expansion already happened in this step
            const grule *r = &g->rules[sym.arg];
            if (grow_u32(&s->work, &s->cap_work, (size_t)n_work + 2 * r->n_alts) != 0)
                return garlic_error_set(err, GARLIC_ENOMEM, "grammar: out of memory");
            for (uint32_t a = r->n_alts; a-- > 0;) {
                s->work[n_work++] = g->alt_start[r->first_alt + a];
                s->work[n_work++] = ret;
            }
            rc = GARLIC_OK;
        }
        if (rc != 0)
            return rc;
    }
    return GARLIC_OK;
}

static void sort_u32(uint32_t *v, uint32_t n)
{
    for (uint32_t i = 1; i < n; i++) {
        uint32_t x = v[i], j = i;
        while (j > 0 && v[j - 1] > x) {
            v[j] = v[j - 1];
            j--;
        }
        v[j] = x;
    }
}

int grammar_state_step(grammar_state *s, const uint32_t *in, uint32_t n_in, uint32_t cp,
                       uint32_t *n_out, garlic_error *err)
{
    const grammar *g = s->g;
    uint32_t n = 0;
    seen_clear(s);
    if (++s->stamp == 0) {
        for (uint32_t i = 0; i < s->n_nodes; i++)
            s->nodes[i].stamp = 0;
        s->stamp = 1;
    }
    for (uint32_t i = 0; i < n_in; i++) {
        if (in[i] == GNODE_NIL)
            continue;
        const gnode *top = &s->nodes[in[i]];
        if (!grammar_sym_matches(g, g->syms[top->pos], cp))
            continue;
        int rc = expand(s, top->pos + 1, top->parent, &n, err);
        if (rc != 0)
            return rc;
    }
    sort_u32(s->next, n);
    *n_out = n;
    return GARLIC_OK;
}

bool grammar_state_viable(const grammar_state *s, const uint32_t *in, uint32_t n, uint32_t lo,
                          uint32_t hi)
{
    for (uint32_t i = 0; i < n; i++)
        if (in[i] != GNODE_NIL && grammar_sym_meets(s->g, s->g->syms[s->nodes[in[i]].pos], lo, hi))
            return true;
    return false;
}

void grammar_utf8_range(const gutf8 *u, uint32_t *lo, uint32_t *hi)
{
    unsigned rest = 6u * (u->need - 1u);
    *lo = ((u->cp << 6) | (u->lo & 0x3Fu)) << rest;
    *hi = (((u->cp << 6) | (u->hi & 0x3Fu)) << rest) | ((1u << rest) - 1u);
}

uint32_t grammar_state_set_distance(const grammar_state *s, const uint32_t *ids, uint32_t n,
                                    const gutf8 *u)
{
    uint32_t lo = 0, hi = 0, best = UINT32_MAX / 2;
    if (u->need > 0)
        grammar_utf8_range(u, &lo, &hi);
    for (uint32_t i = 0; i < n; i++) {
        const gnode *top = &s->nodes[ids[i]];
        uint32_t dist = top->dist;
        if (u->need > 0) {
            // With a character pending, only the stacks that can take it count, and that
            // character costs the bytes it still needs instead of its symbol's shortest.
            if (ids[i] == GNODE_NIL || !grammar_sym_meets(s->g, s->g->syms[top->pos], lo, hi))
                continue;
            uint32_t cost = s->g->min_len[top->pos] - s->g->min_len[top->pos + 1];
            dist = grammar_dist_add(dist - cost, u->need);
        }
        if (dist < best)
            best = dist;
    }
    return best;
}

bool grammar_utf8_lead(uint8_t b, gutf8 *u, uint32_t *lo, uint32_t *hi)
{
    if (b < 0x80) {
        *u = (gutf8){0, 0, 0, 0};
        *lo = *hi = b;
        return true;
    }
    if (b < 0xC2 || b > 0xF4)
        return false;
    if (b < 0xE0) {
        *u = (gutf8){b & 0x1Fu, 1, 0x80, 0xBF};
    } else if (b < 0xF0) {
        *u = (gutf8){b & 0x0Fu, 2, b == 0xE0 ? 0xA0 : 0x80, b == 0xED ? 0x9F : 0xBF};
    } else {
        *u = (gutf8){b & 0x07u, 3, b == 0xF0 ? 0x90 : 0x80, b == 0xF4 ? 0x8F : 0xBF};
    }
    unsigned rest = 6u * (u->need - 1u);
    *lo = ((u->cp << 6) | (u->lo & 0x3Fu)) << rest;
    *hi = (((u->cp << 6) | (u->hi & 0x3Fu)) << rest) | ((1u << rest) - 1u);
    return true;
}

bool grammar_utf8_continue(uint8_t b, gutf8 *u, uint32_t *lo, uint32_t *hi)
{
    if (b < u->lo || b > u->hi)
        return false;
    u->cp = (u->cp << 6) | (b & 0x3Fu);
    u->need--;
    u->lo = 0x80;
    u->hi = 0xBF;
    unsigned rest = 6u * u->need;
    *lo = u->cp << rest;
    *hi = (u->cp << rest) | ((1u << rest) - 1u);
    return true;
}

static int start(grammar_state *s, garlic_error *err);

grammar_state *grammar_state_new(const grammar *g, garlic_error *err)
{
    grammar_state *s = garlic_calloc(1, sizeof *s);
    if (!s || (s->g = g, pool_reserve(s) != 0)) {
        grammar_state_free(s);
        garlic_error_set(err, GARLIC_ENOMEM, "grammar: out of memory");
        return NULL;
    }
    // The first start sizes every buffer a later reset needs, so reset never allocates.
    if (start(s, err) != 0) {
        grammar_state_free(s);
        return NULL;
    }
    return s;
}

void grammar_state_free(grammar_state *s)
{
    if (!s)
        return;
    garlic_free(s->nodes);
    garlic_free(s->buckets);
    garlic_free(s->tops);
    garlic_free(s->next);
    garlic_free(s->held);
    garlic_free(s->work);
    garlic_free(s->spare);
    garlic_free(s->remap);
    garlic_free(s->seen_keys);
    garlic_free(s->seen_gen);
    garlic_free(s);
}

// Makes next the current set (swapping the buffers).
static void take_next(grammar_state *s, uint32_t n)
{
    uint32_t *t = s->tops;
    uint32_t cap = s->cap_tops;
    s->tops = s->next;
    s->cap_tops = s->cap_next;
    s->next = t;
    s->cap_next = cap;
    s->n_tops = n;
}

// Empties the pool and expands the root rule's alternatives into the first set.
static int start(grammar_state *s, garlic_error *err)
{
    s->n_nodes = 1;
    s->nodes[0] = (gnode){0, 0, 0, 0, 0, 0};
    memset(s->buckets, 0, s->n_buckets * sizeof *s->buckets);
    s->stamp = 1;
    s->collect_at = MIN_NODES;
    s->work_left = GRAMMAR_MAX_MASK_WORK;
    s->utf8 = (gutf8){0, 0, 0, 0};
    const grammar *g = s->g;
    const grule *root = &g->rules[g->root];
    uint32_t n = 0;
    seen_clear(s);
    for (uint32_t a = 0; a < root->n_alts; a++) {
        int rc = expand(s, g->alt_start[root->first_alt + a], GNODE_NIL, &n, err);
        if (rc != 0) {
            s->n_tops = 0;
            return rc;
        }
    }
    sort_u32(s->next, n);
    take_next(s, n);
    return GARLIC_OK;
}

void grammar_state_reset(grammar_state *s) { (void)start(s, NULL); }

// Copying collection: renumbers the nodes reachable from the tops into a fresh pool.
static int collect(grammar_state *s)
{
    if (grow_u32(&s->remap, &s->cap_remap, s->n_nodes) != 0)
        return GARLIC_ENOMEM;
    if (s->cap_spare < s->cap_nodes) {
        gnode *sp = garlic_realloc(s->spare, (size_t)s->cap_nodes * sizeof *sp);
        if (!sp)
            return GARLIC_ENOMEM;
        s->spare = sp;
        s->cap_spare = s->cap_nodes;
    }
    memset(s->remap, 0xFF, s->n_nodes * sizeof *s->remap);
    s->remap[0] = 0;
    s->spare[0] = s->nodes[0];
    uint32_t n = 1;
    // Children have higher ids than their parents, so one pass in id order copies every
    // live node after its parent. First mark the live ones.
    for (uint32_t i = 0; i < s->n_tops; i++)
        for (uint32_t id = s->tops[i]; id != 0 && s->remap[id] == UINT32_MAX;
             id = s->nodes[id].parent)
            s->remap[id] = UINT32_MAX - 1;
    for (uint32_t id = 1; id < s->n_nodes; id++) {
        if (s->remap[id] != UINT32_MAX - 1)
            continue;
        gnode nd = s->nodes[id];
        nd.parent = s->remap[nd.parent];
        nd.stamp = 0;
        s->spare[n] = nd;
        s->remap[id] = n++;
    }
    for (uint32_t i = 0; i < s->n_tops; i++)
        s->tops[i] = s->remap[s->tops[i]];
    sort_u32(s->tops, s->n_tops);
    gnode *t = s->nodes;
    s->nodes = s->spare;
    s->spare = t;
    uint32_t cap = s->cap_nodes;
    s->cap_nodes = s->cap_spare;
    s->cap_spare = cap;
    s->n_nodes = n;
    s->stamp = 1;
    rehash(s);
    return GARLIC_OK;
}

// Feeds bytes[0..len): on success with commit set, the state moves on; otherwise (failure
// or !commit) it is left as it was. GARLIC_OK, GARLIC_EINVAL (not a valid prefix, or a limit)
// or GARLIC_ENOMEM; *bad (may be NULL) tells a plain mismatch from a limit.
static int feed(grammar_state *s, const char *bytes, size_t len, bool commit, bool *bad,
                uint32_t *dist_after, garlic_error *err)
{
    uint32_t mark = s->n_nodes;
    gutf8 u = s->utf8;
    s->work_left = (uint64_t)GRAMMAR_MAX_EXPANSION * (len + 1);
    // The set in progress: the current tops until the first step, then s->held, which
    // trades places with s->next after each step (no allocation once they are large enough).
    const uint32_t *cur = s->tops;
    uint32_t n_cur = s->n_tops;
    int rc = GARLIC_OK;
    for (size_t i = 0; i < len && rc == 0; i++) {
        uint8_t b = (uint8_t)bytes[i];
        uint32_t lo, hi, n = 0;
        bool ok = u.need ? grammar_utf8_continue(b, &u, &lo, &hi)
                         : grammar_utf8_lead(b, &u, &lo, &hi);
        if (ok && u.need > 0) {
            ok = grammar_state_viable(s, cur, n_cur, lo, hi);
        } else if (ok) {
            if ((rc = grammar_state_step(s, cur, n_cur, lo, &n, err)) != 0)
                break;
            ok = n > 0;
            uint32_t *t = s->held, cap = s->cap_held;
            s->held = s->next, s->cap_held = s->cap_next;
            s->next = t, s->cap_next = cap;
            cur = s->held, n_cur = n;
        }
        if (!ok && bad)
            *bad = true;
        if (!ok)
            rc = garlic_error_set(err, GARLIC_EINVAL,
                                  "grammar: byte %zu (0x%02X) does not continue a valid text", i,
                                  b);
    }
    if (rc == 0 && dist_after)
        *dist_after = grammar_state_set_distance(s, cur, n_cur, &u);
    if (rc != 0 || !commit) {
        grammar_state_rollback(s, mark);
        return rc;
    }
    if (cur != s->tops) {
        uint32_t *t = s->tops, cap = s->cap_tops;
        s->tops = s->held, s->cap_tops = s->cap_held;
        s->held = t, s->cap_held = cap;
        s->n_tops = n_cur;
    }
    s->utf8 = u;
    if (s->n_nodes > s->collect_at && collect(s) == 0) // on failure the pool stays large
        s->collect_at = s->n_nodes * 4 > MIN_NODES ? s->n_nodes * 4 : MIN_NODES;
    return GARLIC_OK;
}

int grammar_state_accept(grammar_state *s, const char *bytes, size_t len, garlic_error *err)
{
    return feed(s, bytes, len, true, NULL, NULL, err);
}

int grammar_state_allows_within(grammar_state *s, const char *bytes, size_t len,
                                uint32_t max_distance, garlic_error *err)
{
    bool bad = false;
    uint32_t dist = 0;
    garlic_error local;
    int rc = feed(s, bytes, len, false, &bad, &dist, &local);
    if (rc == 0 || bad)
        return rc == 0 && dist <= max_distance;
    if (err)
        *err = local;
    return rc;
}

int grammar_state_allows(grammar_state *s, const char *bytes, size_t len, garlic_error *err)
{
    return grammar_state_allows_within(s, bytes, len, GRAMMAR_UNBOUNDED, err);
}

bool grammar_state_complete(const grammar_state *s)
{
    return s->utf8.need == 0 && s->n_tops > 0 && s->tops[0] == GNODE_NIL;
}

uint32_t grammar_state_distance(const grammar_state *s)
{
    return grammar_state_set_distance(s, s->tops, s->n_tops, &s->utf8);
}

bool grammar_state_mid_character(const grammar_state *s) { return s->utf8.need > 0; }

bool grammar_state_can_continue(const grammar_state *s)
{
    return s->utf8.need > 0 || s->n_tops > 1 || (s->n_tops == 1 && s->tops[0] != GNODE_NIL);
}

int grammar_state_copy(grammar_state *dst, const grammar_state *src, garlic_error *err)
{
    if (dst->g != src->g)
        return garlic_error_set(err, GARLIC_EINVAL, "grammar: copying a state of another grammar");
    if (dst == src)
        return GARLIC_OK;
    if (dst->cap_nodes < src->cap_nodes) {
        gnode *nodes = garlic_realloc(dst->nodes, (size_t)src->cap_nodes * sizeof *nodes);
        if (nodes)
            dst->nodes = nodes;
        uint32_t *buckets = nodes
            ? garlic_realloc(dst->buckets, (size_t)src->cap_nodes * sizeof *buckets)
            : NULL;
        if (!buckets)
            return garlic_error_set(err, GARLIC_ENOMEM, "grammar: out of memory");
        dst->buckets = buckets;
        dst->cap_nodes = src->cap_nodes;
    }
    if (grow_u32(&dst->tops, &dst->cap_tops, src->n_tops) != 0)
        return garlic_error_set(err, GARLIC_ENOMEM, "grammar: out of memory");
    memcpy(dst->nodes, src->nodes, src->n_nodes * sizeof *src->nodes);
    dst->n_nodes = src->n_nodes;
    dst->n_buckets = src->n_buckets;
    memcpy(dst->buckets, src->buckets, src->n_buckets * sizeof *src->buckets);
    memcpy(dst->tops, src->tops, src->n_tops * sizeof *src->tops);
    dst->n_tops = src->n_tops;
    dst->stamp = src->stamp;
    dst->collect_at = src->collect_at;
    dst->utf8 = src->utf8;
    return GARLIC_OK;
}

grammar_state *grammar_state_clone(const grammar_state *s, garlic_error *err)
{
    grammar_state *c = grammar_state_new(s->g, err);
    if (c && grammar_state_copy(c, s, err) != 0) {
        grammar_state_free(c);
        return NULL;
    }
    return c;
}
