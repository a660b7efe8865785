// SPDX-License-Identifier: MIT
// The sampler's private state, shared by sampler.c (parameters, history, penalties), chain.c
// (the truncation steps and the draw) and logprobs.c (which reads the last sample's processed
// logits), plus the PRNG: xoshiro256** seeded through splitmix64, integer-only so that a seed
// gives the same stream on every platform.
#ifndef GARLIC_SAMPLER_INTERNAL_H
#define GARLIC_SAMPLER_INTERNAL_H

#include "sampler/sampler.h"

// One token still in the running: its processed logit and a scratch weight (a softmax term).
typedef struct sampler_candidate {
    int32_t id;
    float logit;
    float weight;
} sampler_candidate;

// Owned by one thread at a time (the caller's); every array is allocated by sampler_new.
struct sampler {
    sampler_params params; // a copy; params.logit_bias points at bias below
    sampler_bias *bias;    // (n_bias) the caller's entries, copied
    size_t n_bias;

    // Penalty history: the last ring_cap accepted tokens and, for each distinct one, its count.
    // ring_cap is 0 when no penalty is active, and then none of these arrays exist.
    size_t ring_cap;
    int32_t *ring; // (ring_cap) oldest at ring_head once full
    size_t ring_len;
    size_t ring_head;
    int32_t *seen_tokens; // (ring_cap) distinct tokens in the ring, in no order
    int32_t *seen_counts; // (ring_cap) occurrences of seen_tokens[i] in the ring
    size_t n_seen;
    int32_t *seen_slot; // (n_vocab) index into seen_tokens, or -1

    float *processed; // (n_vocab) the last sample's logits after bias and penalties
    bool have_processed;
    sampler_candidate *cand; // (n_vocab) scratch for the chain
    size_t n_cand;           // candidates the last non-greedy sample drew from

    uint64_t seed;         // the seed in use
    uint64_t rng[4];       // xoshiro256** state
    uint64_t rng_start[4]; // the state right after seeding, for sampler_reset
};

// Whether (logit_a, id_a) ranks before (logit_b, id_b): the higher logit first, the lower id
// first on ties. Every ordering in the sampler uses this rule, so greedy, top-k = 1 and the
// logprobs' top list agree with each other.
static inline bool sampler_ranks_before(float logit_a, int32_t id_a, float logit_b, int32_t id_b)
{
    return logit_a > logit_b || (logit_a == logit_b && id_a < id_b);
}

// splitmix64: expands one 64-bit seed into a well-mixed stream (used to fill xoshiro's state).
static inline uint64_t sampler_splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline uint64_t sampler_rotl(uint64_t v, int k) { return (v << k) | (v >> (64 - k)); }

// xoshiro256**: the next 64 random bits of state s.
static inline uint64_t sampler_rng_next(uint64_t s[4])
{
    uint64_t result = sampler_rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = sampler_rotl(s[3], 45);
    return result;
}

// A uniform double in [0, 1) with 53 random bits.
static inline double sampler_rng_uniform(uint64_t s[4])
{
    return (double)(sampler_rng_next(s) >> 11) * 0x1.0p-53;
}

// Fills s from seed (never the all-zero state xoshiro cannot leave).
static inline void sampler_rng_seed(uint64_t s[4], uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        s[i] = sampler_splitmix64(&x);
}

#endif
