// SPDX-License-Identifier: MIT
// Byte counts for people; see units.h.
#include "base/units.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

char *garlic_bytes_format(uint64_t bytes, int decimals, char buf[GARLIC_BYTES_TEXT])
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    const int last = (int)(sizeof units / sizeof units[0]) - 1;
    if (decimals < 0)
        decimals = 0;
    if (decimals > 12)
        decimals = 12;
    double v = (double)bytes;
    int u = 0;
    while (v >= 1024 && u < last)
        v /= 1024, u++;
    // 1023.999 KiB at two decimals would read "1024.00 KiB": write "1.00 MiB" instead.
    double scale = pow(10, decimals);
    if (u > 0 && u < last && round(v * scale) / scale >= 1024)
        v /= 1024, u++;
    if (u == 0)
        snprintf(buf, GARLIC_BYTES_TEXT, "%llu B", (unsigned long long)bytes);
    else
        snprintf(buf, GARLIC_BYTES_TEXT, "%.*f %s", decimals, v, units[u]);
    return buf;
}

// Whether two different values of values[0..n) read the same in texts.
static bool any_alike(size_t n, const uint64_t *values, const garlic_bytes_texts *t)
{
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            if (values[i] != values[j] && strcmp(t->text[i], t->text[j]) == 0)
                return true;
    return false;
}

garlic_bytes_texts garlic_bytes_apart(size_t n, const uint64_t *values)
{
    garlic_bytes_texts t;
    memset(&t, 0, sizeof t);
    if (n > GARLIC_BYTES_APART_MAX)
        n = GARLIC_BYTES_APART_MAX;
    for (int extra = 0; extra <= GARLIC_BYTES_MORE_DECIMALS; extra++) {
        for (size_t i = 0; i < n; i++)
            garlic_bytes_format(values[i], GARLIC_BYTES_DECIMALS + extra, t.text[i]);
        if (!any_alike(n, values, &t))
            return t;
    }
    for (size_t i = 0; i < n; i++)
        snprintf(t.text[i], GARLIC_BYTES_TEXT, "%llu B", (unsigned long long)values[i]);
    return t;
}
