// SPDX-License-Identifier: MIT
// `garlic tokenize MODEL TEXT|- [--ids] [--no-bos] [--special]`: shows how a model's own
// tokenizer cuts text, as the model would see it in a prompt (BOS added when the vocabulary
// says so, special-token text left as plain text unless --special). `-` reads all of stdin.
// MODEL is a GGUF file or a Hugging Face folder (its tokenizer.json and companions).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/alloc.h"
#include "base/file.h"
#include "base/utf8.h"
#include "cli/cli.h"
#include "hf/hf.h"
#include "tokenizer/tokenizer.h"

enum { MAX_STDIN_BYTES = 1 << 30 }; // the tokenizers take at most 1 GiB

static const cli_command tokenize_command = {
    .name = "tokenize",
    .usage = "MODEL.gguf|FOLDER TEXT|- [options]",
    .about = "Prints the tokens of TEXT as the model sees a prompt (BOS added when the vocabulary "
             "says so,\nspecial-token text left as text): one line per token, its id and its "
             "text. - reads the text\nfrom stdin (all of it).",
};

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

// The tokenizer of a GGUF file, or of a folder's tokenizer.json and its companions.
static tokenizer *open_tokenizer(const char *path, garlic_error *err)
{
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return tokenizer_open(path, err);
    gguf_file *f = hf_tokenizer_open(path, err);
    tokenizer *t = f ? tokenizer_load(f, err) : NULL;
    gguf_close(f);
    return t;
}

static void print_ids(const tokenizer_ids *ids)
{
    for (size_t i = 0; i < ids->n; i++)
        printf(i ? " %d" : "%d", ids->ids[i]);
    printf("\n");
}

int cli_tokenize(int argc, char **argv)
{
    const char *model_path = NULL, *text = NULL;
    bool ids_only = false, no_bos = false, special = false;
    const cli_option options[] = {
        cli_arg("MODEL.gguf|FOLDER",
                "the model (or a vocabulary-only GGUF), or a Hugging Face folder with a "
                "tokenizer.json",
                &model_path),
        cli_arg("TEXT", "the text, or - to read it from stdin", &text),
        cli_flag("--ids", "print only the ids, space-separated, on one line", &ids_only),
        cli_flag("--no-bos", "add neither BOS nor EOS", &no_bos),
        cli_flag("--special", "parse special-token text such as <|eot_id|> into tokens", &special),
        {0},
    };
    int status = cli_parse(&tokenize_command, options, argc, argv);
    if (status != CLI_CONTINUE)
        return status;
    size_t len = strlen(text);
    char *input = NULL;
    garlic_error err = {0};
    if (strcmp(text, "-") == 0) {
        if (garlic_stream_read(stdin, "stdin", MAX_STDIN_BYTES, &input, &len, &err)) {
            fprintf(stderr, "garlic tokenize: %s\n", err.message);
            return 1;
        }
        text = input;
    }
    tokenizer *t = open_tokenizer(model_path, &err);
    tokenizer_ids ids = {0};
    unsigned flags = (no_bos ? 0 : TOKENIZER_ADD_SPECIAL) | (special ? TOKENIZER_PARSE_SPECIAL : 0);
    status = 0;
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
