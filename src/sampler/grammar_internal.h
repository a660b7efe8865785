// SPDX-License-Identifier: MIT
// The grammars' private forms, shared by grammar.c (the compiler), grammar_state.c (matching)
// and grammar_mask.c (vocabulary trie and masks). A compiled grammar is a flat array of
// symbols: each rule owns a run of alternatives, each alternative a run of symbols closed by
// GSYM_END. A matching state is a set of parse stacks; a stack is a chain of nodes in a pool,
// its top a character symbol to match next and the nodes below it the positions to return to
// when a rule ends. Nodes are hash-consed (one node per (pos, parent) pair), so two equal
// stacks are the same node and a set of stacks is a set of node ids.
#ifndef GARLIC_SAMPLER_GRAMMAR_INTERNAL_H
#define GARLIC_SAMPLER_GRAMMAR_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "sampler/grammar.h"

typedef enum gsym_kind {
    GSYM_END,   // closes an alternative
    GSYM_CHAR,  // arg: the one code point matched
    GSYM_CLASS, // arg: index into classes
    GSYM_ANY,   // any code point
    GSYM_RULE,  // arg: index into rules
    GSYM_COUNT
} gsym_kind;

typedef struct gsym {
    uint32_t kind; // gsym_kind
    uint32_t arg;
} gsym;

// A closed range of code points.
typedef struct grange {
    uint32_t lo, hi;
} grange;

// A character class: sorted, merged, disjoint ranges; negated matches what they miss.
typedef struct gclass {
    uint32_t first_range; // index into ranges
    uint32_t n_ranges;
    uint32_t negated;
    uint32_t ascii[4]; // the class's answer for code points 0..127, as bits
} gclass;

typedef struct grule {
    uint32_t first_alt; // index into alt_start
    uint32_t n_alts;
} grule;

struct grammar {
    gsym *syms; // (n_syms) every alternative's symbols, each run closed by GSYM_END
    uint32_t n_syms;
    uint32_t *alt_start; // (n_alts) where each alternative's symbols begin in syms
    uint32_t n_alts;
    grule *rules; // (n_rules)
    uint32_t n_rules;
    gclass *classes; // (n_classes)
    uint32_t n_classes;
    grange *ranges; // (n_ranges)
    uint32_t n_ranges;
    uint32_t root;     // the start rule
    uint32_t *min_len; // (n_syms) fewest bytes from each position to its alternative's end
};

// The empty stack: the node id that ends every chain, and the "top" of a finished parse.
enum { GNODE_NIL = 0 };

// One stack frame: pos is a symbol index (a character symbol at the top, a return position
// below), parent the frame under it. chain links the hash bucket.
typedef struct gnode {
    uint32_t pos;
    uint32_t parent;
    uint32_t chain;
    uint32_t depth; // frames in this stack
    uint32_t stamp; // dedup mark for set building
    uint32_t dist;  // fewest bytes that finish the whole parse from this stack
} gnode;

// A pending UTF-8 character: need more continuation bytes, each in [lo, hi]; cp holds the
// bits so far.
typedef struct gutf8 {
    uint32_t cp;
    uint8_t need;
    uint8_t lo, hi;
} gutf8;

struct grammar_state {
    const grammar *g; // borrowed; outlives the state

    gnode *nodes; // (cap_nodes) the pool; nodes[0] is GNODE_NIL
    uint32_t n_nodes, cap_nodes;
    uint32_t *buckets; // (n_buckets, a power of two) newest node of each hash chain, or 0
    uint32_t n_buckets;
    uint32_t stamp;

    uint32_t *tops; // (cap_tops) the live stacks, sorted; GNODE_NIL means "may end here"
    uint32_t n_tops, cap_tops;
    uint32_t *next; // (cap_next) scratch for the next set
    uint32_t cap_next;
    uint32_t *held; // (cap_held) the set between two characters of one accept
    uint32_t cap_held;
    uint32_t *work; // (cap_work) expansion stack of (pos, parent) pairs
    uint32_t cap_work;
    uint32_t collect_at; // collect garbage when the pool passes this many nodes
    uint64_t work_left;  // expansion steps the current feed or mask may still take
    uint64_t *seen_keys; // (seen_cap) (rule, return node) pairs expanded in this step
    uint32_t *seen_gen;  // (seen_cap) the step an entry belongs to; others are empty
    uint32_t seen_cap, seen_n, gen;
    gutf8 utf8;

    gnode *spare; // (cap_spare) the copy target of garbage collection
    uint32_t cap_spare;
    uint32_t *remap; // (cap_remap) old node id -> new, during garbage collection
    uint32_t cap_remap;
};

// Adds without passing UINT32_MAX / 2 (distances saturate there).
static inline uint32_t grammar_dist_add(uint32_t a, uint32_t b)
{
    uint32_t cap = UINT32_MAX / 2;
    return a >= cap || b >= cap || a + b >= cap ? cap : a + b;
}

// Whether symbol sym (a GSYM_CHAR, GSYM_CLASS or GSYM_ANY) matches code point cp.
bool grammar_sym_matches(const grammar *g, gsym sym, uint32_t cp);

// Whether symbol sym matches some code point in [lo, hi].
bool grammar_sym_meets(const grammar *g, gsym sym, uint32_t lo, uint32_t hi);

// Advances the stack set in[0..n_in) over code point cp, writing the sorted result to s->next
// (grown as needed) and its size to *n_out. New nodes go into s's pool. GARLIC_OK (possibly
// with *n_out 0: cp does not fit), GARLIC_EINVAL when an ambiguity limit is hit, GARLIC_ENOMEM.
int grammar_state_step(grammar_state *s, const uint32_t *in, uint32_t n_in, uint32_t cp,
                       uint32_t *n_out, garlic_error *err);

// Whether any stack of in[0..n) could take some code point in [lo, hi].
bool grammar_state_viable(const grammar_state *s, const uint32_t *in, uint32_t n, uint32_t lo,
                          uint32_t hi);

// Drops every node made after the first mark nodes (the pool is a stack of nodes).
void grammar_state_rollback(grammar_state *s, uint32_t mark);

// The code points the pending character u (need > 0) may still become.
void grammar_utf8_range(const gutf8 *u, uint32_t *lo, uint32_t *hi);

// The fewest bytes that finish the parse from the stacks ids[0..n) with the pending
// character u (which only stacks able to take it can finish, with u->need more bytes).
uint32_t grammar_state_set_distance(const grammar_state *s, const uint32_t *ids, uint32_t n,
                                    const gutf8 *u);

// Starts decoding a UTF-8 lead byte b: fills u and the code points it may become. Returns
// false for a byte that starts no character. For b < 0x80 u->need is 0 and the range is b.
bool grammar_utf8_lead(uint8_t b, gutf8 *u, uint32_t *lo, uint32_t *hi);

// Adds continuation byte b to u (need > 0); false when b is not allowed there. On success
// the range of code points still possible is stored (exactly cp when need reaches 0).
bool grammar_utf8_continue(uint8_t b, gutf8 *u, uint32_t *lo, uint32_t *hi);

#endif
