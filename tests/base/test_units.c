// SPDX-License-Identifier: MIT
// Byte counts for people (base/units.h): the unit chosen for each size, rounding up into the
// next unit, and figures formatted together that differ by a byte, a KiB or a MiB reading
// differently, with the exact-bytes fallback.
#include <string.h>

#include "base/units.h"
#include "util.h"

static void test_format(void **state)
{
    (void)state;
    static const struct {
        uint64_t bytes;
        int decimals;
        const char *text;
    } cases[] = {
        {0, 2, "0 B"},
        {1023, 2, "1023 B"},
        {1024, 2, "1.00 KiB"},
        {1536, 2, "1.50 KiB"},
        {262144, 2, "256.00 KiB"},
        {24611440, 2, "23.47 MiB"},
        {24611440, 1, "23.5 MiB"},
        {1320702444, 2, "1.23 GiB"},
        {1320702444, 3, "1.230 GiB"},
        {1048575, 2, "1.00 MiB"}, // 1023.999 KiB rounds into the next unit
        {1048575, 4, "1023.9990 KiB"},
        {3ull << 40, 2, "3.00 TiB"},
        {UINT64_MAX, 0, "16777216 TiB"}, // TiB is the largest unit
        {5, -3, "5 B"},
    };
    char buf[GARLIC_BYTES_TEXT];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_string_equal(garlic_bytes_format(cases[i].bytes, cases[i].decimals, buf),
                            cases[i].text);
}

static void test_apart(void **state)
{
    (void)state;
    // The message: 0.02 GiB against 0.02 GiB.
    garlic_bytes_texts t = garlic_bytes_apart(2, (const uint64_t[]){21990232, 21474836});
    assert_string_equal(t.text[0], "20.97 MiB");
    assert_string_equal(t.text[1], "20.48 MiB");
    // Close figures get more decimals, all of them alike.
    t = garlic_bytes_apart(3, (const uint64_t[]){1073741824 + 4096, 1073741824, 2147483648u});
    assert_string_equal(t.text[0], "1.000004 GiB");
    assert_string_equal(t.text[1], "1.000000 GiB");
    assert_string_equal(t.text[2], "2.000000 GiB");
    // Equal values may read the same; nothing else changes.
    t = garlic_bytes_apart(2, (const uint64_t[]){1536, 1536});
    assert_string_equal(t.text[0], "1.50 KiB");
    assert_string_equal(t.text[1], "1.50 KiB");
    // A byte apart at a GiB: exact bytes.
    t = garlic_bytes_apart(2, (const uint64_t[]){1073741825, 1073741824});
    assert_string_equal(t.text[0], "1073741825 B");
    assert_string_equal(t.text[1], "1073741824 B");
    // At most GARLIC_BYTES_APART_MAX figures; the fourth is formatted, none past it.
    t = garlic_bytes_apart(9, (const uint64_t[]){1, 2, 3, 4, 5, 6, 7, 8, 9});
    assert_string_equal(t.text[3], "4 B");
    // Any two different values below 1 TiB read differently.
    for (uint64_t base = 1000; base < (1ull << 40); base = base * 7 + 13) {
        t = garlic_bytes_apart(2, (const uint64_t[]){base, base + 1});
        assert_string_not_equal(t.text[0], t.text[1]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_apart),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
