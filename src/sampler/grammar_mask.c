// SPDX-License-Identifier: MIT
// Token masks: which tokens of a vocabulary keep a grammar state's text a valid prefix. The
// vocabulary is a byte trie in preorder (each node knows where its subtree ends), built once
// per model. A mask walks the trie depth first with the state after each prefix, skipping a
// whole subtree as soon as its prefix is rejected, so shared prefixes are matched once. The
// states met on the walk are interned (a set of hash-consed stacks is a sorted id list) and
// their transitions cached (per ASCII byte in a table, per wider code point in a hash), so a
// trie node mostly costs one table lookup. Inside a string, where nearly every token fits, a
// subtree of plain-text tokens is allowed whole when the state surely takes that many plain
// characters (set_chain), which keeps a 150k-token mask well under a millisecond.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "sampler/grammar_internal.h"

enum {
    MASK_MAX_SETS = 1 << 16, // interned sets per mask (an ambiguity bound)
    TRANS_UNKNOWN = -2,
    TRANS_DEAD = -1,
};

// One trie node: the byte leading to it, its depth (bytes from the root), the end of its
// subtree in preorder and the tokens whose bytes end here.
typedef struct trie_node {
    uint32_t skip;      // index of the first node after this subtree
    uint32_t tok_first; // into tok_ids: this node's tokens, then its subtree's
    uint32_t tok_n;     // tokens ending at this node
    uint16_t depth;
    uint8_t byte;
    uint8_t plain;      // every token below reads, from this byte on, as plain UTF-8 text
    uint16_t max_chars; // the most characters a token below has from this byte on
} trie_node;

struct grammar_vocab {
    size_t n_tokens;
    trie_node *nodes; // (n_nodes) preorder; nodes[0] is the root (depth 0)
    size_t n_nodes;
    int32_t *tok_ids; // tokens grouped by the node they end at
    char *bytes;      // every token's bytes, token i at bytes[off[i]..off[i+1])
    size_t *off;      // (n_tokens + 1)
    uint8_t *usable;  // (n_tokens) 1 when the trie holds the token
    int32_t *end_ids; // (n_end)
    size_t n_end;
    uint32_t max_len;   // longest usable token in bytes
    uint32_t max_chars; // most characters in a usable token (a cut-off one counts)
};

// An interned stack set: items[off..off+len).
typedef struct mset {
    uint32_t off, len;
    uint32_t hash;
    int32_t chain;       // plain characters in a row this set takes for sure; -1 unknown, -2 busy
    uint32_t dist;       // fewest characters that finish the parse (grammar_state_distance)
    uint32_t chain_dist; // the most bytes from complete a plain token along the chain leaves
} mset;

// The walk's state at one trie depth.
typedef struct mlevel {
    int32_t set;
    gutf8 u;
} mlevel;

struct grammar_scratch {
    uint32_t *items; // (cap_items) the interned sets' node ids
    size_t n_items, cap_items;
    mset *sets; // (cap_sets)
    size_t n_sets, cap_sets;
    int32_t *ascii;  // (cap_sets * 128) next set per ASCII byte: TRANS_UNKNOWN, TRANS_DEAD or an id
    uint32_t *table; // (table_cap) open addressing over sets: id + 1, 0 empty
    size_t table_cap;
    uint64_t *cp_keys; // (cp_cap) (set << 21 | code point) + 1, 0 empty
    int32_t *cp_vals;  // (cp_cap)
    size_t cp_cap, n_cp;
    mlevel *levels; // (cap_levels)
    size_t cap_levels;
    int32_t *path; // (cap_path) scratch for set_chain
    size_t cap_path;
};

// ---- vocabulary ----

static int piece_cmp(const void *a, const void *b, void *user)
{
    const grammar_vocab *v = user;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    size_t lx = v->off[x + 1] - v->off[x], ly = v->off[y + 1] - v->off[y];
    int c = memcmp(v->bytes + v->off[x], v->bytes + v->off[y], lx < ly ? lx : ly);
    if (c != 0)
        return c;
    if (lx != ly)
        return lx < ly ? -1 : 1;
    return x < y ? -1 : x > y;
}

// Whether byte b may appear in the body of a JSON string as itself (not '"', not '\\',
// not a control character).
static bool plain_byte(uint8_t b) { return b >= 0x20 && b != '"' && b != '\\'; }

// Fills ok[i] for i in [0, len]: whether p[i..len) is plain text starting at a character
// boundary (plain bytes, well-formed UTF-8, the last character possibly cut short).
static void plain_suffixes(const uint8_t *p, size_t len, uint8_t *ok)
{
    ok[len] = 1;
    for (size_t i = len; i-- > 0;) {
        gutf8 u;
        uint32_t lo, hi;
        ok[i] = 0;
        if (!plain_byte(p[i]) || !grammar_utf8_lead(p[i], &u, &lo, &hi))
            continue;
        size_t j = i + 1;
        while (u.need > 0 && j < len && grammar_utf8_continue(p[j], &u, &lo, &hi))
            j++;
        ok[i] = (u.need == 0 || j == len) && ok[j];
    }
}

// Builds the preorder trie from the usable tokens sorted by bytes.
static int build_trie(grammar_vocab *v, const int32_t *sorted, size_t n)
{
    size_t cap = 1024;
    v->nodes = garlic_malloc(cap * sizeof *v->nodes);
    uint32_t *open = garlic_calloc((size_t)v->max_len + 1, sizeof *open);
    uint8_t *ok = garlic_malloc((size_t)v->max_len + 1);
    if (!v->nodes || !open || !ok) {
        garlic_free(open);
        garlic_free(ok);
        return GARLIC_ENOMEM;
    }
    v->nodes[0] = (trie_node){0, 0, 0, 0, 0, 0, 0};
    v->n_nodes = 1;
    size_t prev_len = 0;
    const char *prev = NULL;
    for (size_t k = 0; k < n; k++) {
        int32_t t = sorted[k];
        const char *p = v->bytes + v->off[t];
        size_t len = v->off[t + 1] - v->off[t], lcp = 0;
        while (prev && lcp < len && lcp < prev_len && p[lcp] == prev[lcp])
            lcp++;
        for (size_t d = prev_len; d > lcp; d--)
            v->nodes[open[d]].skip = (uint32_t)v->n_nodes;
        for (size_t d = lcp + 1; d <= len; d++) {
            if (garlic_grow(&v->nodes, &cap, v->n_nodes + 2, sizeof *v->nodes) != 0) {
                garlic_free(open);
                garlic_free(ok);
                return GARLIC_ENOMEM;
            }
            v->nodes[v->n_nodes] = (trie_node){0, (uint32_t)k, 0, (uint16_t)d, (uint8_t)p[d - 1], 1,
                                               0};
            open[d] = (uint32_t)v->n_nodes++;
        }
        plain_suffixes((const uint8_t *)p, len, ok);
        uint32_t chars = 0; // characters in p[d - 1..len), counted from the end
        for (size_t d = len; d >= 1; d--) {
            chars += ((uint8_t)p[d - 1] & 0xC0) != 0x80;
            trie_node *nd = &v->nodes[open[d]];
            nd->plain &= ok[d - 1];
            if (chars > nd->max_chars)
                nd->max_chars = (uint16_t)(chars < UINT16_MAX ? chars : UINT16_MAX);
            if (chars > v->max_chars)
                v->max_chars = chars;
        }
        v->nodes[open[len]].tok_n++;
        v->tok_ids[k] = t;
        prev = p, prev_len = len;
    }
    for (size_t d = prev_len; d > 0; d--)
        v->nodes[open[d]].skip = (uint32_t)v->n_nodes;
    v->nodes[0].skip = (uint32_t)v->n_nodes;
    // A sentinel after the last node closes the last subtree's token range.
    v->nodes[v->n_nodes] = (trie_node){0, (uint32_t)n, 0, 0, 0, 0, 0};
    garlic_free(open);
    garlic_free(ok);
    return GARLIC_OK;
}

grammar_vocab *grammar_vocab_new(const char *const *pieces, const size_t *lens,
                                 const bool *is_control, size_t n, const int32_t *end_ids,
                                 size_t n_end, garlic_error *err)
{
    if (n > INT32_MAX || (n > 0 && (!pieces || !lens)) || (n_end > 0 && !end_ids)) {
        garlic_error_set(err, GARLIC_EINVAL, "grammar vocabulary: bad arguments");
        return NULL;
    }
    grammar_vocab *v = garlic_calloc(1, sizeof *v);
    int32_t *sorted = NULL;
    size_t total = 0, n_usable = 0;
    if (!v)
        goto oom;
    v->n_tokens = n;
    v->off = garlic_malloc((n + 1) * sizeof *v->off);
    v->usable = garlic_calloc(n + 1, 1);
    v->end_ids = garlic_malloc((n_end + 1) * sizeof *v->end_ids);
    if (!v->off || !v->usable || !v->end_ids)
        goto oom;
    for (size_t i = 0; i < n_end; i++) {
        if (end_ids[i] < 0 || (size_t)end_ids[i] >= n) {
            garlic_error_set(err, GARLIC_EINVAL,
                             "grammar vocabulary: end token %d is not in 0..%zu", end_ids[i], n);
            grammar_vocab_free(v);
            return NULL;
        }
        v->end_ids[v->n_end++] = end_ids[i];
    }
    for (size_t i = 0; i < n; i++) {
        bool end = false;
        for (size_t e = 0; e < v->n_end; e++)
            end |= v->end_ids[e] == (int32_t)i;
        v->off[i] = total;
        if (end || (is_control && is_control[i]) || lens[i] == 0 || !pieces[i] ||
            lens[i] > GRAMMAR_MAX_TOKEN_BYTES)
            continue;
        v->usable[i] = 1;
        n_usable++;
        total += lens[i];
        if (lens[i] > v->max_len)
            v->max_len = (uint32_t)lens[i];
    }
    v->off[n] = total;
    v->bytes = garlic_malloc(total + 1);
    v->tok_ids = garlic_malloc((n_usable + 1) * sizeof *v->tok_ids);
    sorted = garlic_malloc((n_usable + 1) * sizeof *sorted);
    if (!v->bytes || !v->tok_ids || !sorted)
        goto oom;
    n_usable = 0;
    for (size_t i = 0; i < n; i++) {
        if (!v->usable[i])
            continue;
        memcpy(v->bytes + v->off[i], pieces[i], lens[i]);
        sorted[n_usable++] = (int32_t)i;
    }
    qsort_r(sorted, n_usable, sizeof *sorted, piece_cmp, v);
    if (build_trie(v, sorted, n_usable) != 0)
        goto oom;
    garlic_free(sorted);
    return v;
oom:
    garlic_free(sorted);
    grammar_vocab_free(v);
    garlic_error_set(err, GARLIC_ENOMEM, "grammar vocabulary: out of memory");
    return NULL;
}

void grammar_vocab_free(grammar_vocab *v)
{
    if (!v)
        return;
    garlic_free(v->nodes);
    garlic_free(v->tok_ids);
    garlic_free(v->bytes);
    garlic_free(v->off);
    garlic_free(v->usable);
    garlic_free(v->end_ids);
    garlic_free(v);
}

size_t grammar_vocab_size(const grammar_vocab *v) { return v->n_tokens; }

size_t grammar_vocab_nodes(const grammar_vocab *v) { return v->n_nodes; }

// ---- scratch ----

grammar_scratch *grammar_scratch_new(garlic_error *err)
{
    grammar_scratch *m = garlic_calloc(1, sizeof *m);
    if (!m)
        garlic_error_set(err, GARLIC_ENOMEM, "grammar: out of memory");
    return m;
}

void grammar_scratch_free(grammar_scratch *m)
{
    if (!m)
        return;
    garlic_free(m->items);
    garlic_free(m->sets);
    garlic_free(m->ascii);
    garlic_free(m->table);
    garlic_free(m->cp_keys);
    garlic_free(m->cp_vals);
    garlic_free(m->levels);
    garlic_free(m->path);
    garlic_free(m);
}

static uint32_t hash_ids(const uint32_t *v, uint32_t n)
{
    uint64_t h = 0x84222325cbf29ce4ull ^ n;
    for (uint32_t i = 0; i < n; i++)
        h = (h ^ v[i]) * 0x100000001b3ull;
    return (uint32_t)(h ^ (h >> 32));
}

// Rebuilds the set table at twice the size.
static int table_grow(grammar_scratch *m)
{
    size_t cap = m->table_cap ? m->table_cap * 2 : 1024;
    uint32_t *t = garlic_calloc(cap, sizeof *t);
    if (!t)
        return GARLIC_ENOMEM;
    for (size_t i = 0; i < m->n_sets; i++) {
        size_t h = m->sets[i].hash & (cap - 1);
        while (t[h] != 0)
            h = (h + 1) & (cap - 1);
        t[h] = (uint32_t)i + 1;
    }
    garlic_free(m->table);
    m->table = t;
    m->table_cap = cap;
    return GARLIC_OK;
}

// The id of the set ids[0..n) (sorted), interned if new; negative GARLIC_E* on failure.
static int32_t intern(const grammar_state *s, grammar_scratch *m, const uint32_t *ids, uint32_t n,
                      garlic_error *err)
{
    uint32_t hash = hash_ids(ids, n);
    if ((m->n_sets + 1) * 2 > m->table_cap && table_grow(m) != 0)
        return garlic_error_set(err, GARLIC_ENOMEM, "grammar: out of memory");
    size_t h = hash & (m->table_cap - 1);
    for (; m->table[h] != 0; h = (h + 1) & (m->table_cap - 1)) {
        const mset *e = &m->sets[m->table[h] - 1];
        if (e->hash == hash && e->len == n && memcmp(m->items + e->off, ids, n * sizeof *ids) == 0)
            return (int32_t)(m->table[h] - 1);
    }
    if (m->n_sets >= MASK_MAX_SETS)
        return garlic_error_set(err, GARLIC_EINVAL,
                                "grammar: a mask met more than %d parse states (the grammar is "
                                "too ambiguous)",
                                MASK_MAX_SETS);
    size_t need_sets = m->n_sets + 1;
    size_t old_cap = m->cap_sets;
    if (garlic_grow(&m->items, &m->cap_items, m->n_items + n, sizeof *m->items) != 0 ||
        garlic_grow(&m->sets, &m->cap_sets, need_sets, sizeof *m->sets) != 0)
        return garlic_error_set(err, GARLIC_ENOMEM, "grammar: out of memory");
    if (m->cap_sets != old_cap || !m->ascii) {
        int32_t *a = garlic_realloc(m->ascii, m->cap_sets * 128 * sizeof *a);
        if (!a)
            return garlic_error_set(err, GARLIC_ENOMEM, "grammar: out of memory");
        m->ascii = a;
    }
    int32_t id = (int32_t)m->n_sets++;
    uint32_t dist = UINT32_MAX / 2;
    for (uint32_t i = 0; i < n; i++)
        if (s->nodes[ids[i]].dist < dist)
            dist = s->nodes[ids[i]].dist;
    m->sets[id] = (mset){(uint32_t)m->n_items, n, hash, -1, dist, dist};
    memcpy(m->items + m->n_items, ids, n * sizeof *ids);
    m->n_items += n;
    for (int b = 0; b < 128; b++)
        m->ascii[(size_t)id * 128 + b] = TRANS_UNKNOWN;
    m->table[h] = (uint32_t)id + 1;
    return id;
}

// The set after code point cp from set id: its id, or TRANS_DEAD when cp does not fit or on
// failure (then *rc holds the GARLIC_E* code and err the message).
static int32_t advance(grammar_state *s, grammar_scratch *m, int32_t id, uint32_t cp, int *rc,
                       garlic_error *err)
{
    const mset *set = &m->sets[id];
    uint32_t n;
    *rc = grammar_state_step(s, m->items + set->off, set->len, cp, &n, err);
    if (*rc != 0)
        return TRANS_DEAD;
    if (n == 0)
        return TRANS_DEAD;
    int32_t next = intern(s, m, s->next, n, err);
    if (next < 0) {
        *rc = next;
        return TRANS_DEAD;
    }
    return next;
}

// Grows the code point cache to twice its size.
static int cp_grow(grammar_scratch *m)
{
    size_t cap = m->cp_cap ? m->cp_cap * 2 : 4096;
    uint64_t *keys = garlic_calloc(cap, sizeof *keys);
    int32_t *vals = garlic_malloc(cap * sizeof *vals);
    if (!keys || !vals) {
        garlic_free(keys);
        garlic_free(vals);
        return GARLIC_ENOMEM;
    }
    for (size_t i = 0; i < m->cp_cap; i++) {
        if (m->cp_keys[i] == 0)
            continue;
        size_t h = (size_t)((m->cp_keys[i] * 0x9e3779b97f4a7c15ull) >> 32) & (cap - 1);
        while (keys[h] != 0)
            h = (h + 1) & (cap - 1);
        keys[h] = m->cp_keys[i];
        vals[h] = m->cp_vals[i];
    }
    garlic_free(m->cp_keys);
    garlic_free(m->cp_vals);
    m->cp_keys = keys;
    m->cp_vals = vals;
    m->cp_cap = cap;
    return GARLIC_OK;
}

// The set after code point cp (>= 128) from set id, through the cache.
static int32_t advance_wide(grammar_state *s, grammar_scratch *m, int32_t id, uint32_t cp, int *rc,
                            garlic_error *err)
{
    uint64_t key = (((uint64_t)id << 21) | cp) + 1;
    if ((m->n_cp + 1) * 2 > m->cp_cap && cp_grow(m) != 0) {
        *rc = garlic_error_set(err, GARLIC_ENOMEM, "grammar: out of memory");
        return TRANS_DEAD;
    }
    size_t h = (size_t)((key * 0x9e3779b97f4a7c15ull) >> 32) & (m->cp_cap - 1);
    for (; m->cp_keys[h] != 0; h = (h + 1) & (m->cp_cap - 1))
        if (m->cp_keys[h] == key)
            return m->cp_vals[h];
    int32_t next = advance(s, m, id, cp, rc, err);
    if (*rc != 0)
        return TRANS_DEAD;
    m->cp_keys[h] = key;
    m->cp_vals[h] = next;
    m->n_cp++;
    return next;
}

// One byte down the trie: from level *from to *to. Returns false when the byte is rejected
// (or *rc was set by a failure).
static bool step_byte(grammar_state *s, grammar_scratch *m, const mlevel *from, uint8_t b,
                      mlevel *to, int *rc, garlic_error *err)
{
    uint32_t lo, hi;
    if (from->u.need == 0 && b < 0x80) {
        int32_t *slot = &m->ascii[(size_t)from->set * 128 + b];
        if (*slot == TRANS_UNKNOWN) {
            int32_t next = advance(s, m, from->set, b, rc, err);
            if (*rc != 0)
                return false;
            slot = &m->ascii[(size_t)from->set * 128 + b]; // interning may move the table
            *slot = next;
        }
        to->set = *slot;
        to->u = from->u;
        return to->set >= 0;
    }
    to->u = from->u;
    to->set = from->set;
    bool ok = from->u.need == 0 ? grammar_utf8_lead(b, &to->u, &lo, &hi)
                                : grammar_utf8_continue(b, &to->u, &lo, &hi);
    if (!ok)
        return false;
    const mset *set = &m->sets[from->set];
    if (to->u.need > 0)
        return grammar_state_viable(s, m->items + set->off, set->len, lo, hi);
    to->set = advance_wide(s, m, from->set, lo, rc, err);
    return to->set >= 0;
}

// The plain characters (what plain_byte lets through, as code points, surrogates aside) in
// four runs.
static const grange PLAIN[] = {{0x20, 0x21}, {0x23, 0x5B}, {0x5D, 0xD7FF}, {0xE000, 0x10FFFF}};

// How a symbol treats the plain characters: 0 matches none, 1 all, 2 some.
static int sym_plain(const grammar *g, gsym sym)
{
    if (sym.kind == GSYM_ANY)
        return 1;
    if (sym.kind == GSYM_CHAR)
        return grammar_sym_meets(g, sym, 0x20, 0x10FFFF) && sym.arg != '"' && sym.arg != '\\' &&
                (sym.arg < 0xD800 || sym.arg > 0xDFFF)
            ? 2
            : 0;
    const gclass *c = &g->classes[sym.arg];
    const grange *r = c->n_ranges ? g->ranges + c->first_range : NULL;
    bool all = true, none = true;
    for (size_t k = 0; k < sizeof PLAIN / sizeof PLAIN[0]; k++) {
        bool full = false, some = false;
        for (uint32_t i = 0; i < c->n_ranges; i++) {
            full |= r[i].lo <= PLAIN[k].lo && r[i].hi >= PLAIN[k].hi;
            some |= r[i].lo <= PLAIN[k].hi && r[i].hi >= PLAIN[k].lo;
        }
        if (c->negated) {
            bool was_full = full;
            full = !some;
            some = !was_full;
        }
        all &= full;
        none &= !some;
    }
    return all ? 1 : none ? 0 : 2;
}

// Whether every plain character takes set id to one same set (each stack's top matches all of
// them or none, so what follows does not depend on which), and some stack takes them. When it
// does, *bound gets the most bytes from complete a token may leave it at: ending on a
// character boundary (dist), or inside one, through a stack that takes plain characters (its
// distance, less the shortest character, plus up to three bytes still to come).
static bool set_uniform(const grammar_state *s, const grammar_scratch *m, int32_t id,
                        uint32_t *bound)
{
    bool takes = false;
    uint32_t plain_min = UINT32_MAX / 2;
    for (uint32_t i = 0; i < m->sets[id].len; i++) {
        uint32_t node = m->items[m->sets[id].off + i];
        if (node == GNODE_NIL)
            continue;
        int p = sym_plain(s->g, s->g->syms[s->nodes[node].pos]);
        if (p == 2)
            return false;
        if (p == 1 && s->nodes[node].dist < plain_min)
            plain_min = s->nodes[node].dist;
        takes |= p == 1;
    }
    uint32_t partial = grammar_dist_add(plain_min, 2);
    *bound = m->sets[id].dist > partial ? m->sets[id].dist : partial;
    return takes;
}

// How many plain characters in a row set id surely takes (each of them, in any order), up to
// cap: then a subtree of plain tokens with at most that many characters is allowed whole. A
// string body's set comes back to itself (cap); a maxLength string's counts down. Computed
// once per set and mask by following the chain of uniform sets; 0 on failure (*rc set).
static uint32_t set_chain(grammar_state *s, grammar_scratch *m, int32_t id, uint32_t cap,
                          int32_t *path, int *rc, garlic_error *err)
{
    uint32_t n = 0, base = 0, base_dist = 0;
    int32_t cur = id;
    while (n < cap) {
        if (m->sets[cur].chain >= 0) {
            base = (uint32_t)m->sets[cur].chain;
            base_dist = m->sets[cur].chain_dist;
            break;
        }
        if (m->sets[cur].chain == -2) { // back to a set on this path: it loops
            base = cap;
            break;
        }
        uint32_t bound;
        if (!set_uniform(s, m, cur, &bound)) {
            // The chain ends here, and a token whose last plain character led here ends
            // here: its distance is this set's.
            m->sets[cur].chain = 0;
            base_dist = m->sets[cur].dist;
            break;
        }
        m->sets[cur].chain = -2;
        m->sets[cur].chain_dist = bound; // this set's own bound until the chain is known
        path[n++] = cur;
        int32_t *slot = &m->ascii[(size_t)cur * 128 + ' '];
        if (*slot == TRANS_UNKNOWN) {
            int32_t next = advance(s, m, cur, ' ', rc, err);
            if (*rc != 0)
                break;
            slot = &m->ascii[(size_t)cur * 128 + ' '];
            *slot = next;
        }
        if (*slot < 0)
            break; // cannot happen: a uniform set takes every plain character
        cur = *slot;
    }
    if (n == cap)
        base_dist = UINT32_MAX; // not followed to its end: assume the worst
    for (uint32_t i = n; i-- > 0;) {
        mset *e = &m->sets[path[i]];
        base = base + 1 < cap ? base + 1 : cap;
        base_dist = e->chain_dist > base_dist ? e->chain_dist : base_dist;
        e->chain = *rc != 0 ? 0 : (int32_t)base;
        e->chain_dist = base_dist;
    }
    return *rc != 0 ? 0 : (uint32_t)(m->sets[id].chain >= 0 ? m->sets[id].chain : 0);
}

// Empties the scratch for a new mask and sizes its levels for v.
static int scratch_begin(grammar_scratch *m, const grammar_vocab *v)
{
    m->n_items = 0;
    m->n_sets = 0;
    m->n_cp = 0;
    if (m->table)
        memset(m->table, 0, m->table_cap * sizeof *m->table);
    if (m->cp_keys)
        memset(m->cp_keys, 0, m->cp_cap * sizeof *m->cp_keys);
    if (garlic_grow(&m->levels, &m->cap_levels, (size_t)v->max_len + 1, sizeof *m->levels) != 0 ||
        garlic_grow(&m->path, &m->cap_path, (size_t)v->max_chars + 1, sizeof *m->path) != 0)
        return GARLIC_ENOMEM;
    return GARLIC_OK;
}

// How far from complete the text may be after a token when tokens_left tokens remain (this
// one included): the rest must be able to finish it, one character each, then end. -1 when
// only an end token fits.
static int64_t budget_distance(uint32_t tokens_left)
{
    return tokens_left == GRAMMAR_UNBOUNDED ? INT64_MAX : (int64_t)tokens_left - 2;
}

int grammar_mask_budget(grammar_state *s, const grammar_vocab *v, grammar_scratch *m,
                        uint32_t tokens_left, uint32_t *mask, size_t *n_allowed, garlic_error *err)
{
    int64_t max_distance = budget_distance(tokens_left);
    memset(mask, 0, (v->n_tokens + 31) / 32 * sizeof *mask);
    *n_allowed = 0;
    if (scratch_begin(m, v) != 0)
        return garlic_error_set(err, GARLIC_ENOMEM, "grammar: out of memory");
    uint32_t mark = s->n_nodes;
    int rc = GARLIC_OK;
    s->work_left = GRAMMAR_MAX_MASK_WORK;
    int32_t root = intern(s, m, s->tops, s->n_tops, err);
    if (root < 0)
        return root;
    m->levels[0] = (mlevel){root, s->utf8};
    size_t allowed = 0;
    const trie_node *nodes = v->nodes;
    for (size_t i = 1; i < v->n_nodes;) {
        const trie_node *tn = &nodes[i];
        const mlevel *up = &m->levels[tn->depth - 1];
        if (tn->plain && up->u.need == 0 &&
            set_chain(s, m, up->set, v->max_chars, m->path, &rc, err) >= tn->max_chars &&
            (int64_t)m->sets[up->set].chain_dist <= max_distance) {
            // Every token below is plain text this set takes: allow the subtree whole.
            uint32_t end = nodes[tn->skip].tok_first;
            for (uint32_t k = tn->tok_first; k < end; k++) {
                int32_t t = v->tok_ids[k];
                mask[t / 32] |= 1u << (t % 32);
            }
            allowed += end - tn->tok_first;
            i = tn->skip;
            continue;
        }
        if (rc != 0)
            break;
        if (!step_byte(s, m, &m->levels[tn->depth - 1], tn->byte, &m->levels[tn->depth], &rc,
                       err)) {
            if (rc != 0)
                break;
            i = tn->skip;
            continue;
        }
        const mlevel *here = &m->levels[tn->depth];
        const mset *set = &m->sets[here->set];
        uint32_t dist = here->u.need == 0
            ? set->dist
            : grammar_state_set_distance(s, m->items + set->off, set->len, &here->u);
        if (tn->tok_n > 0 && (int64_t)dist <= max_distance) {
            for (uint32_t k = 0; k < tn->tok_n; k++) {
                int32_t t = v->tok_ids[tn->tok_first + k];
                mask[t / 32] |= 1u << (t % 32);
            }
            allowed += tn->tok_n;
        }
        i++;
    }
    grammar_state_rollback(s, mark);
    if (rc != 0) {
        memset(mask, 0, (v->n_tokens + 31) / 32 * sizeof *mask);
        return rc;
    }
    if (grammar_state_complete(s)) {
        for (size_t e = 0; e < v->n_end; e++) {
            int32_t t = v->end_ids[e];
            if (!((mask[t / 32] >> (t % 32)) & 1))
                allowed++;
            mask[t / 32] |= 1u << (t % 32);
        }
    }
    *n_allowed = allowed;
    return GARLIC_OK;
}

int grammar_mask(grammar_state *s, const grammar_vocab *v, grammar_scratch *m, uint32_t *mask,
                 size_t *n_allowed, garlic_error *err)
{
    return grammar_mask_budget(s, v, m, GRAMMAR_UNBOUNDED, mask, n_allowed, err);
}

void grammar_mask_apply(const uint32_t *mask, float *logits, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((mask[i / 32] >> (i % 32)) & 1))
            logits[i] = -INFINITY;
}

static bool is_end(const grammar_vocab *v, int32_t token)
{
    for (size_t e = 0; e < v->n_end; e++)
        if (v->end_ids[e] == token)
            return true;
    return false;
}

int grammar_token_allowed_budget(grammar_state *s, const grammar_vocab *v, int32_t token,
                                 uint32_t tokens_left, garlic_error *err)
{
    if (token < 0 || (size_t)token >= v->n_tokens)
        return garlic_error_set(err, GARLIC_EINVAL, "grammar: token %d is not in the vocabulary",
                                token);
    if (is_end(v, token))
        return grammar_state_complete(s);
    int64_t max_distance = budget_distance(tokens_left);
    if (!v->usable[token] || max_distance < 0)
        return 0;
    return grammar_state_allows_within(
        s, v->bytes + v->off[token], v->off[token + 1] - v->off[token],
        max_distance > UINT32_MAX ? UINT32_MAX : (uint32_t)max_distance, err);
}

int grammar_token_allowed(grammar_state *s, const grammar_vocab *v, int32_t token,
                          garlic_error *err)
{
    return grammar_token_allowed_budget(s, v, token, GRAMMAR_UNBOUNDED, err);
}

int grammar_state_accept_token(grammar_state *s, const grammar_vocab *v, int32_t token,
                               garlic_error *err)
{
    if (token < 0 || (size_t)token >= v->n_tokens)
        return garlic_error_set(err, GARLIC_EINVAL, "grammar: token %d is not in the vocabulary",
                                token);
    if (is_end(v, token)) {
        if (grammar_state_complete(s))
            return GARLIC_OK;
        return garlic_error_set(err, GARLIC_EINVAL,
                                "grammar: end token %d before the text is complete", token);
    }
    if (!v->usable[token])
        return garlic_error_set(err, GARLIC_EINVAL, "grammar: token %d is never allowed", token);
    return grammar_state_accept(s, v->bytes + v->off[token], v->off[token + 1] - v->off[token],
                                err);
}
