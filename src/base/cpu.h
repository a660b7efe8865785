// SPDX-License-Identifier: MIT
// CPU feature detection from cpuid/xgetbv, read once. SIMD kernels are compiled per ISA
// in their own files and chosen at run time from these flags, so one binary runs on any
// x86-64 (and non-x86 builds report no features and use the scalar paths).
#ifndef GARLIC_BASE_CPU_H
#define GARLIC_BASE_CPU_H

#include <stdbool.h>

typedef struct cpu_features {
    bool avx2;        // AVX2 + FMA + F16C, with OS support for YMM state
    bool avx512;      // AVX-512 F, BW, DQ, VL, with OS support for ZMM state
    bool avx512_vnni; // AVX-512 VNNI
    bool avx512_bf16; // AVX-512 BF16
} cpu_features;

// The features of this CPU; detected on first call, then cached. GARLIC_CPU=scalar|avx2
// in the environment caps what is reported (for tests and benchmarks of each path).
const cpu_features *cpu_features_get(void);

// A short description like "avx2 avx512 avx512_vnni" (static storage).
const char *cpu_features_describe(void);

#endif
