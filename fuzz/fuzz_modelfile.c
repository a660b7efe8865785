// SPDX-License-Identifier: MIT
// libFuzzer target for Ollama's Modelfile (src/store/create.c): parses the input with a fixed
// base folder and, when it parses, checks that its parameters pass store_params_check (the
// parser must only accept what the store accepts) and that every string it returns is
// NUL-terminated, so that bounds bugs in the quoting, the multi-line values or the PARAMETER
// lists show up under ASan.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    // An exactly-sized copy, so that ASan sees any read past the end.
    char *text = malloc(size ? size : 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    store_modelfile mf;
    garlic_error err;
    if (store_modelfile_parse(text, size, "/fuzz/models", &mf, &err) == GARLIC_OK) {
        const char *strings[] = {mf.from, mf.template_text, mf.system, mf.license};
        size_t total = 0;
        for (size_t i = 0; i < sizeof strings / sizeof strings[0]; i++)
            total += strings[i] ? strlen(strings[i]) : 0;
        (void)*(volatile size_t *)&total;
        if (mf.params_json && store_params_check(mf.params_json, &err) != GARLIC_OK)
            abort(); // the parser let through parameters the store refuses
        store_modelfile_deinit(&mf);
    }
    free(text);
    return 0;
}
