// SPDX-License-Identifier: MIT
// CPU feature detection from cpuid/xgetbv, read once. SIMD kernels are compiled per ISA
// in their own files and chosen at run time from these flags, so one binary runs on any
// x86-64 (and non-x86 builds report no features and use the scalar paths). Also the cores
// this process may actually use (its affinity mask, its cgroup's CPU quota), from which
// the compute pool's default size is chosen.
#ifndef GARLIC_BASE_CPU_H
#define GARLIC_BASE_CPU_H

#include <stdbool.h>

#include "base/error.h"

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

// The CPUs a cgroup v2 cpu.max file allows: "max 100000" (no limit: 0) or "QUOTA PERIOD"
// in microseconds ("150000 100000": 1.5). Returns GARLIC_OK, or GARLIC_EFORMAT for text
// that is neither (fills err naming the text).
int cpu_quota_parse_max(const char *text, double *cpus, garlic_error *err);

// The same for cgroup v1's cpu.cfs_quota_us ("-1": no limit) and cpu.cfs_period_us.
int cpu_quota_parse_cfs(const char *quota, const char *period, double *cpus, garlic_error *err);

// Threads worth running: the physical cores among the affinity CPUs (hyper-threads counted
// once; 0 when unknown: all affinity CPUs), at most the quota rounded up (0: no quota), at
// least 1.
int cpu_threads_from(int affinity_cpus, int physical_cores, double quota_cpus);

// cpu_threads_from for this process: sched_getaffinity, the topology in /sys (else
// /proc/cpuinfo) and the smallest quota of its cgroup and the cgroup's ancestors (v2 cpu.max,
// v1 cfs quota). Read once, then cached.
int cpu_threads_available(void);

#endif
