// SPDX-License-Identifier: MIT
// `garlic create NAME [-f Modelfile]`: makes a model in the store from an Ollama Modelfile
// (FROM a GGUF file, a Hugging Face folder or a stored model; PARAMETER, SYSTEM, TEMPLATE,
// LICENSE), as `ollama create` does. The parsing and the store's side are src/store/create.c.
#include <libgen.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/file.h"
#include "cli/cli.h"
#include "store/store.h"

enum { MODELFILE_MAX = 4 << 20 };

static const cli_command create_command = {
    .name = "create",
    .usage = "NAME [-f Modelfile] [options]",
    .about =
        "Makes the model NAME in the store from a Modelfile, as `ollama create` does:\n"
        "  FROM ./model.gguf             what it starts from: a GGUF file or a Hugging Face "
        "folder\n"
        "                                (relative to the Modelfile; copied in), or a stored "
        "model\n"
        "  PARAMETER temperature 0.7     a default option (repeat `stop` for several)\n"
        "  SYSTEM \"\"\"You are...\"\"\"       the system message used when a request has none\n"
        "  TEMPLATE \"\"\"...\"\"\"            a chat template replacing the model's own\n"
        "  LICENSE \"\"\"...\"\"\"             the model's licence text\n"
        "Instructions are case-insensitive, '#' starts a comment, \"\"\"...\"\"\" spans "
        "lines.\nFROM a stored model inherits its SYSTEM, TEMPLATE, LICENSE and "
        "PARAMETERs (those given replace\nthem, parameters key by key). Creating over an "
        "existing name replaces that model.",
    .notes = "The parameters are the options garlic honours in Ollama's \"options\": "
             "temperature, top_p, top_k,\nmin_p, repeat_penalty, repeat_last_n, "
             "presence_penalty, frequency_penalty, seed, stop, num_predict\nand num_ctx. "
             "ADAPTER, MESSAGE and REQUIRES are refused. The store is $GARLIC_MODELS, "
             "default\n$XDG_CACHE_HOME/garlic/models or ~/.cache/garlic/models.",
};

// Reads and parses the Modelfile at path ("-": standard input); errors name it.
static int read_modelfile(const char *path, store_modelfile *mf, garlic_error *err)
{
    char *text = NULL;
    size_t len = 0;
    bool stdin_file = strcmp(path, "-") == 0;
    int rc = stdin_file
        ? garlic_stream_read(stdin, "standard input", MODELFILE_MAX, &text, &len, err)
        : garlic_file_read(path, MODELFILE_MAX, &text, &len, err);
    if (rc)
        return rc;
    char dir[STORE_PATH_MAX];
    snprintf(dir, sizeof dir, "%s", stdin_file ? "." : path);
    garlic_error e;
    rc = store_modelfile_parse(text, len, stdin_file ? "." : dirname(dir), mf, &e);
    garlic_free(text);
    if (rc)
        garlic_error_set(err, rc, "%s: %s", path, e.message);
    return rc;
}

int cli_create(int argc, char **argv)
{
    const char *name = NULL, *file = "Modelfile";
    bool quiet = false;
    const cli_option options[] = {
        cli_arg("NAME", "the model to make ([host/][namespace/]name[:tag])", &name),
        cli_string("-f|--file", "FILE", "the Modelfile (default ./Modelfile; - reads stdin)",
                   &file),
        cli_flag("-q|--quiet", "no progress lines", &quiet),
        {0},
    };
    int status = cli_parse(&create_command, options, argc, argv);
    if (status != CLI_CONTINUE)
        return status;
    char root[STORE_PATH_MAX];
    garlic_error err;
    store_modelfile mf;
    if (read_modelfile(file, &mf, &err)) {
        fprintf(stderr, "garlic create: %s\n", err.message);
        return 1;
    }
    store_create_request r = {
        .name = name,
        .from = mf.from,
        .template_text = mf.template_text,
        .system = mf.system,
        .params_json = mf.params_json,
        .license = mf.license,
    };
    int rc = store_root(root, sizeof root, &err);
    if (!rc)
        rc = store_create(root, &r, quiet ? NULL : stderr, &err);
    store_modelfile_deinit(&mf);
    if (rc) {
        fprintf(stderr, "garlic create: %s: %s\n", file, err.message);
        return 1;
    }
    printf("success: %s\n", name);
    return 0;
}
