// SPDX-License-Identifier: MIT
// cpuid-based feature detection (x86-64); other architectures report no features. Then the
// cores available to this process: its affinity mask, the physical cores among them, and
// its cgroup's CPU quota (cgroup v2 cpu.max or v1 cfs_quota_us / cfs_period_us, the
// smallest along the path from the cgroup to the root).
#include "base/cpu.h"

#include <errno.h>
#include <math.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/file.h"

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

// ---- the cores available ----

// Parses a whole decimal integer > 0 (surrounding blanks and a newline allowed).
static bool parse_count(const char *text, const char *end, long long *value)
{
    while (text < end && (*text == ' ' || *text == '\t'))
        text++;
    if (text == end || *text < '0' || *text > '9')
        return false;
    char *stop;
    errno = 0;
    long long v = strtoll(text, &stop, 10);
    while (stop < end && (*stop == ' ' || *stop == '\t' || *stop == '\n'))
        stop++;
    if (errno || stop != end || v <= 0)
        return false;
    *value = v;
    return true;
}

int cpu_quota_parse_max(const char *text, double *cpus, garlic_error *err)
{
    const char *end = text + strlen(text), *space = strchr(text, ' ');
    long long quota = 0, period = 0;
    bool unlimited = space && space - text == 3 && strncmp(text, "max", 3) == 0;
    if (!space || !parse_count(space + 1, end, &period) ||
        (!unlimited && !parse_count(text, space, &quota)))
        return garlic_error_set(err, GARLIC_EFORMAT,
                                "cpu.max: '%.40s' is neither 'max PERIOD' nor 'QUOTA PERIOD'",
                                text);
    *cpus = unlimited ? 0 : (double)quota / (double)period;
    return GARLIC_OK;
}

int cpu_quota_parse_cfs(const char *quota, const char *period, double *cpus, garlic_error *err)
{
    long long q = 0, p = 0;
    const char *q_end = quota + strlen(quota), *p_end = period + strlen(period);
    while (q_end > quota && q_end[-1] == '\n')
        q_end--;
    bool unlimited = q_end - quota == 2 && strncmp(quota, "-1", 2) == 0;
    if (!unlimited && !parse_count(quota, q_end, &q))
        return garlic_error_set(err, GARLIC_EFORMAT,
                                "cpu.cfs_quota_us: '%.40s' is neither -1 nor a count", quota);
    if (!parse_count(period, p_end, &p))
        return garlic_error_set(err, GARLIC_EFORMAT, "cpu.cfs_period_us: '%.40s' is not a count",
                                period);
    *cpus = unlimited ? 0 : (double)q / (double)p;
    return GARLIC_OK;
}

int cpu_threads_from(int affinity_cpus, int physical_cores, double quota_cpus)
{
    int n = affinity_cpus > 0 ? affinity_cpus : 1;
    if (physical_cores > 0 && physical_cores < n)
        n = physical_cores;
    // A quota of 1.5 CPUs still lets two threads run half the time each: round up.
    if (quota_cpus > 0 && ceil(quota_cpus) < n)
        n = (int)ceil(quota_cpus);
    return n > 0 ? n : 1;
}

// Reads a small file of /proc or /sys into a fresh string (NULL if it cannot be read).
static char *read_text(const char *path)
{
    char *data = NULL;
    if (garlic_file_read(path, 1 << 16, &data, NULL, NULL) != GARLIC_OK)
        return NULL;
    return data;
}

// The distinct (package, core) pairs among the CPUs of set, from /sys; 0 if unknown.
static int physical_cores(const cpu_set_t *set)
{
    enum { MAX_CORES = 1024 };
    long pairs[MAX_CORES][2]; // 16 KB: called once
    int n_pairs = 0;
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
        if (!CPU_ISSET(cpu, set))
            continue;
        char path[128];
        long ids[2];
        const char *names[2] = {"physical_package_id", "core_id"};
        for (int k = 0; k < 2; k++) {
            snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%d/topology/%s", cpu, names[k]);
            char *text = read_text(path);
            if (!text)
                return 0;
            ids[k] = strtol(text, NULL, 10);
            garlic_free(text);
        }
        bool seen = false;
        for (int i = 0; i < n_pairs && !seen; i++)
            seen = pairs[i][0] == ids[0] && pairs[i][1] == ids[1];
        if (!seen && n_pairs == MAX_CORES)
            return 0;
        if (!seen)
            pairs[n_pairs][0] = ids[0], pairs[n_pairs][1] = ids[1], n_pairs++;
    }
    return n_pairs;
}

// The quota (in CPUs) of the cgroup directory dir under root and of its ancestors up to
// root: the smallest limit among them, 0 if none. v2 reads cpu.max; v1 the cfs pair.
static double quota_along(const char *root, const char *dir, bool v2)
{
    char path[512];
    snprintf(path, sizeof path, "%s%s", root, strcmp(dir, "/") == 0 ? "" : dir);
    double best = 0;
    for (;;) {
        char file[600], file2[600];
        double cpus = 0;
        if (v2) {
            snprintf(file, sizeof file, "%s/cpu.max", path);
            char *text = read_text(file);
            if (text && cpu_quota_parse_max(text, &cpus, NULL) != GARLIC_OK)
                cpus = 0;
            garlic_free(text);
        } else {
            snprintf(file, sizeof file, "%s/cpu.cfs_quota_us", path);
            snprintf(file2, sizeof file2, "%s/cpu.cfs_period_us", path);
            char *quota = read_text(file), *period = read_text(file2);
            if (quota && period && cpu_quota_parse_cfs(quota, period, &cpus, NULL) != GARLIC_OK)
                cpus = 0;
            garlic_free(quota);
            garlic_free(period);
        }
        if (cpus > 0 && (best == 0 || cpus < best))
            best = cpus;
        char *slash = strrchr(path, '/');
        if (strlen(path) <= strlen(root) || !slash)
            return best;
        *slash = '\0';
    }
}

// This process's cgroup CPU quota: the v2 entry ("0::/path") of /proc/self/cgroup, else the
// v1 entry whose controllers include cpu; 0 if none.
static double cgroup_quota(void)
{
    char *text = read_text("/proc/self/cgroup");
    double best = 0;
    for (char *line = text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        else
            next = line + strlen(line);
        char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2)
            continue;
        *c1 = *c2 = '\0';
        const char *controllers = c1 + 1, *dir = c2 + 1;
        double cpus = 0;
        if (strcmp(line, "0") == 0 && *controllers == '\0') {
            cpus = quota_along("/sys/fs/cgroup", dir, true);
            if (cpus == 0)
                cpus = quota_along("/sys/fs/cgroup/unified", dir, true);
        } else {
            char list[256];
            snprintf(list, sizeof list, ",%s,", controllers);
            if (strstr(list, ",cpu,")) {
                char root[300];
                snprintf(root, sizeof root, "/sys/fs/cgroup/%s", controllers);
                cpus = quota_along(root, dir, false);
                if (cpus == 0)
                    cpus = quota_along("/sys/fs/cgroup/cpu", dir, false);
            }
        }
        if (cpus > 0 && (best == 0 || cpus < best))
            best = cpus;
    }
    garlic_free(text);
    return best;
}

int cpu_threads_available(void)
{
    static atomic_int cached;
    int n = atomic_load(&cached);
    if (n > 0)
        return n;
    cpu_set_t set;
    int affinity = 0, physical = 0;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        affinity = CPU_COUNT(&set);
        physical = physical_cores(&set);
    } else {
        long online = sysconf(_SC_NPROCESSORS_ONLN);
        affinity = online > 0 ? (int)online : 1;
    }
    n = cpu_threads_from(affinity, physical, cgroup_quota());
    atomic_store(&cached, n);
    return n;
}
