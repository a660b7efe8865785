// SPDX-License-Identifier: MIT
// Byte counts for people: "512 B", "1.50 KiB", "23.47 MiB", "1.23 GiB" (powers of 1024).
// Messages that compare sizes ("needs X but the budget is Y") format their figures together
// with garlic_bytes_apart, which adds decimals until figures that differ read differently,
// so that no message says "needs 0.02 GiB but the memory budget is 0.02 GiB".
#ifndef GARLIC_BASE_UNITS_H
#define GARLIC_BASE_UNITS_H

#include <stddef.h>
#include <stdint.h>

enum {
    GARLIC_BYTES_TEXT = 32,         // room for any formatted figure and its NUL
    GARLIC_BYTES_DECIMALS = 2,      // the decimals a figure usually gets
    GARLIC_BYTES_APART_MAX = 4,     // figures garlic_bytes_apart formats at once
    GARLIC_BYTES_MORE_DECIMALS = 4, // at most this many more before falling back to bytes
};

// Writes bytes into buf in the largest unit of B, KiB, MiB, GiB, TiB that leaves at least 1,
// with `decimals` decimals (none for B): "0 B", "1023 B", "1.00 KiB", "23.47 MiB". A value
// that rounds to 1024 of a unit is written in the next one. Returns buf.
char *garlic_bytes_format(uint64_t bytes, int decimals, char buf[GARLIC_BYTES_TEXT]);

// The texts of figures formatted together (garlic_bytes_apart).
typedef struct garlic_bytes_texts {
    char text[GARLIC_BYTES_APART_MAX][GARLIC_BYTES_TEXT];
} garlic_bytes_texts;

// Formats values[0..n) (n at most GARLIC_BYTES_APART_MAX; more are ignored) with the usual
// decimals, or with as many more (up to GARLIC_BYTES_MORE_DECIMALS) as it takes for any two
// different values to read differently; when even that is not enough, every figure is
// written as exact bytes ("21474837 B"). Equal values read the same.
garlic_bytes_texts garlic_bytes_apart(size_t n, const uint64_t *values);

#endif
