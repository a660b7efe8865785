// SPDX-License-Identifier: MIT
// The base64 encoding of embeddings (encoding_format "base64"): RFC 4648's test vectors, and
// float32 vectors as the little-endian bytes the openai client decodes.
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"
#include "base/alloc.h"
#include "util.h"

static void test_rfc4648_vectors(void **state)
{
    (void)state;
    static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const coded[] = {"",         "Zg==",     "Zm8=",    "Zm9v",
                                        "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++) {
        char *got = api_base64_encode(plain[i], strlen(plain[i]));
        assert_non_null(got);
        assert_string_equal(got, coded[i]);
        garlic_free(got);
    }
}

// 1.0f is 00 00 80 3f little-endian, -2.0f 00 00 00 c0: "AACAPwAAAMA=".
static void test_floats(void **state)
{
    (void)state;
    const float v[2] = {1.0f, -2.0f};
    char *got = api_base64_encode(v, sizeof v);
    assert_string_equal(got, "AACAPwAAAMA=");
    garlic_free(got);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc4648_vectors),
        cmocka_unit_test(test_floats),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
