// SPDX-License-Identifier: MIT
// cpuid-based feature detection (x86-64); other architectures report no features.
#include "base/cpu.h"

#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

static unsigned long long read_xcr0(void)
{
    unsigned int lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}

static void detect(cpu_features *f)
{
    unsigned int a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return;
    bool osxsave = c & (1u << 27), fma = c & (1u << 12), f16c = c & (1u << 29);
    if (!osxsave)
        return;
    unsigned long long xcr0 = read_xcr0();
    bool ymm_os = (xcr0 & 0x6) == 0x6;
    bool zmm_os = (xcr0 & 0xe6) == 0xe6;
    if (__get_cpuid_max(0, NULL) < 7)
        return;
    __cpuid_count(7, 0, a, b, c, d);
    bool avx2 = b & (1u << 5);
    bool avx512f = b & (1u << 16), avx512dq = b & (1u << 17);
    bool avx512bw = b & (1u << 30), avx512vl = b & (1u << 31);
    bool vnni = c & (1u << 11);
    f->avx2 = ymm_os && avx2 && fma && f16c;
    f->avx512 = f->avx2 && zmm_os && avx512f && avx512dq && avx512bw && avx512vl;
    f->avx512_vnni = f->avx512 && vnni;
    __cpuid_count(7, 1, a, b, c, d);
    f->avx512_bf16 = f->avx512 && (a & (1u << 5));
}
#else
static void detect(cpu_features *f) { (void)f; }
#endif

static cpu_features features;
static bool detected;

const cpu_features *cpu_features_get(void)
{
    if (detected)
        return &features;
    detect(&features);
    const char *cap = getenv("GARLIC_CPU");
    if (cap && strcmp(cap, "scalar") == 0)
        memset(&features, 0, sizeof features);
    else if (cap && strcmp(cap, "avx2") == 0)
        features.avx512 = features.avx512_vnni = features.avx512_bf16 = false;
    detected = true;
    return &features;
}

const char *cpu_features_describe(void)
{
    static char text[64];
    const cpu_features *f = cpu_features_get();
    text[0] = '\0';
    if (f->avx2)
        strcat(text, "avx2 ");
    if (f->avx512)
        strcat(text, "avx512 ");
    if (f->avx512_vnni)
        strcat(text, "avx512_vnni ");
    if (f->avx512_bf16)
        strcat(text, "avx512_bf16 ");
    size_t n = strlen(text);
    if (n == 0)
        return "scalar";
    text[n - 1] = '\0';
    return text;
}
