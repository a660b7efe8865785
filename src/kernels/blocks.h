// SPDX-License-Identifier: MIT
// Small block-decoding helpers shared by the per-ISA kernel files (internal to
// src/kernels). They work on whole machine words so that the SIMD code can move the results
// straight into vector registers, without byte-wise stores that the loads would then wait on.
#ifndef GARLIC_KERNELS_BLOCKS_H
#define GARLIC_KERNELS_BLOCKS_H

#include <stdint.h>
#include <string.h>

// The eight 6-bit scales and mins of a Q4_K/Q5_K scales array (layout in tensor/quants.h),
// byte i of *sc and *m holding sub-block i's; the same values as tensor_k4_scale_min.
static inline void kernel_k4_scales(const uint8_t packed[12], uint64_t *sc, uint64_t *m)
{
    uint32_t w0, w1, w2;
    memcpy(&w0, packed, 4);
    memcpy(&w1, packed + 4, 4);
    memcpy(&w2, packed + 8, 4);
    const uint32_t six = 0x3F3F3F3Fu, four = 0x0F0F0F0Fu, two = 0x03030303u;
    uint32_t sc_lo = w0 & six, m_lo = w1 & six;
    uint32_t sc_hi = (w2 & four) | (((w0 >> 6) & two) << 4);
    uint32_t m_hi = ((w2 >> 4) & four) | (((w1 >> 6) & two) << 4);
    *sc = sc_lo | ((uint64_t)sc_hi << 32);
    *m = m_lo | ((uint64_t)m_hi << 32);
}

// The sixteen 6-bit scale codes of a Q3_K scales array (layout in tensor/quants.h) as
// bytes 0..15 of out (codes 0..63, before subtracting 32); the same values as
// tensor_k3_scale.
static inline void kernel_k3_scales(const uint8_t packed[12], uint8_t out[16])
{
    uint32_t a0, a1, high;
    memcpy(&a0, packed, 4);
    memcpy(&a1, packed + 4, 4);
    memcpy(&high, packed + 8, 4);
    const uint32_t four = 0x0F0F0F0Fu, two = 0x03030303u;
    const uint32_t low[4] = {a0 & four, a1 & four, (a0 >> 4) & four, (a1 >> 4) & four};
    for (int g = 0; g < 4; g++) {
        uint32_t word = low[g] | (((high >> (2 * g)) & two) << 4);
        memcpy(out + 4 * g, &word, 4);
    }
}

#endif
