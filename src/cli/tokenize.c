// SPDX-License-Identifier: MIT
// `garlic tokenize MODEL TEXT|- [--ids] [--no-bos] [--special]`: shows how a model's own
// tokenizer cuts text, as the model would see it in a prompt (BOS added when the vocabulary
// says so, special-token text left as plain text unless --special). `-` reads all of stdin.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/utf8.h"
#include "cli/cli.h"
#include "tokenizer/tokenizer.h"

static int usage(void)
{
    fprintf(stderr, "usage: garlic tokenize MODEL.gguf TEXT|- [--ids] [--no-bos] [--special]\n"
                    "  -          read the text from stdin (all of it)\n"
                    "  --ids      print only the ids, space-separated, on one line\n"
                    "  --no-bos   add neither BOS nor EOS\n"
                    "  --special  parse special-token text such as <|eot_id|> into tokens\n");
    return 2;
}

// Reads all of stdin into a garlic_malloc'd buffer; NULL on failure.
static char *read_stdin(size_t *len)
{
    size_t cap = 4096, n = 0;
    char *buf = garlic_malloc(cap);
    while (buf) {
        if (n == cap) {
            char *grown = cap > SIZE_MAX / 2 ? NULL : garlic_realloc(buf, cap * 2);
            if (!grown)
                break;
            buf = grown;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n, stdin);
        n += got;
        if (got == 0) {
            if (ferror(stdin))
                break;
            *len = n;
            return buf;
        }
    }
    garlic_free(buf);
    return NULL;
}

// Prints one line per token: the id and what it stands for (its decoded text when that is
// whole UTF-8, else its vocabulary text such as <0xE2>), escaped for the terminal.
static void print_tokens(const tokenizer *t, const tokenizer_ids *ids)
{
    for (size_t i = 0; i < ids->n; i++) {
        size_t len;
        const char *p = tokenizer_piece(t, ids->ids[i], TOKENIZER_RENDER_SPECIAL, &len);
        if (!utf8_valid(p, len))
            p = tokenizer_token_text(t, ids->ids[i], &len);
        char shown[1024];
        utf8_sanitize(p, len, shown, sizeof shown, true);
        printf("%8d  '%s'\n", ids->ids[i], shown);
    }
}

static void print_ids(const tokenizer_ids *ids)
{
    for (size_t i = 0; i < ids->n; i++)
        printf(i ? " %d" : "%d", ids->ids[i]);
    printf("\n");
}

int cli_tokenize(int argc, char **argv)
{
    const char *model = NULL, *text = NULL;
    bool ids_only = false, no_bos = false, special = false, options_done = false;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!options_done && strcmp(a, "--ids") == 0)
            ids_only = true;
        else if (!options_done && strcmp(a, "--no-bos") == 0)
            no_bos = true;
        else if (!options_done && strcmp(a, "--special") == 0)
            special = true;
        else if (!options_done && strcmp(a, "--") == 0)
            options_done = true;
        else if (!options_done && a[0] == '-' && a[1] != '\0')
            return usage();
        else if (!model)
            model = a;
        else if (!text)
            text = a;
        else
            return usage();
    }
    if (!model || !text)
        return usage();
    size_t len = 0;
    char *input = NULL;
    if (strcmp(text, "-") == 0) {
        if (!(input = read_stdin(&len))) {
            fprintf(stderr, "garlic tokenize: cannot read stdin\n");
            return 1;
        }
        text = input;
    } else {
        len = strlen(text);
    }
    garlic_error err = {0};
    tokenizer *t = tokenizer_open(model, &err);
    tokenizer_ids ids = {0};
    unsigned flags = (no_bos ? 0 : TOKENIZER_ADD_SPECIAL) | (special ? TOKENIZER_PARSE_SPECIAL : 0);
    int status = 0;
    if (!t || tokenizer_encode(t, text, len, flags, &ids, &err) != GARLIC_OK) {
        fprintf(stderr, "garlic tokenize: %s\n", err.message);
        status = 1;
    } else if (ids_only) {
        print_ids(&ids);
    } else {
        print_tokens(t, &ids);
    }
    tokenizer_ids_deinit(&ids);
    tokenizer_free(t);
    garlic_free(input);
    return status;
}
