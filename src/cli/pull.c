// SPDX-License-Identifier: MIT
// `garlic pull NAME`: downloads a model into the store (src/store) from an Ollama-compatible
// registry or a Hugging Face-compatible hub, with resumable, verified downloads and progress
// on stderr.
#include <stdio.h>
#include <stdlib.h>

#include "base/error.h"
#include "cli/cli.h"
#include "store/store.h"

static const cli_command pull_command = {
    .name = "pull",
    .usage = "NAME [options]",
    .about = "Downloads a model into the store ($GARLIC_MODELS, default "
             "$XDG_CACHE_HOME/garlic/models or\n~/.cache/garlic/models). NAME is "
             "[host/][namespace/]name[:tag] as ollama reads it (`qwen3:8b` is\n"
             "registry.ollama.ai/library/qwen3:8b, `library/qwen3:8b` too), or ORG/REPO[:TAG] "
             "(also written\nhf.co/ORG/REPO[:TAG]) for a Hugging Face repository: the GGUF whose "
             "name holds TAG (:latest\ntakes Q4_K_M, or the only GGUF; a GGUF split in parts is "
             "refused), or with :safetensors, or\n:latest in a repository without GGUF files, its "
             "safetensors folder (config, tokenizer and\n*.safetensors files).",
    .notes = "Downloads resume where an interrupted pull stopped, are checked against their "
             "sha256 before the\nmodel appears in `garlic list`, and transient failures are "
             "retried. HF_ENDPOINT (default\nhttps://huggingface.co) and HF_TOKEN (sent as a "
             "Bearer token) are read as the Hugging Face tools\nread them.",
};

int cli_pull(int argc, char **argv)
{
    store_pull_options o;
    store_pull_options_default(&o);
    const char *name = NULL;
    bool quiet = false;
    const cli_option options[] = {
        cli_arg("NAME", "the model to pull", &name),
        cli_flag("--insecure", "plain HTTP to the registry (a local mirror)", &o.insecure),
        cli_uint("--retries", "N", "retries of a transient failure (default 5)", &o.retries, 0,
                 100),
        cli_uint("--backoff-ms", "MS", "the first retry's wait, doubled each time (default 1000)",
                 &o.backoff_ms, 0, 600000),
        cli_uint("--stall-timeout", "S",
                 "cut (and retry) a download that moves no byte for S seconds (default 60)",
                 &o.stall_seconds, 1, 86400),
        cli_flag("-q|--quiet", "no progress", &quiet),
        {0},
    };
    int status = cli_parse(&pull_command, options, argc, argv);
    if (status != CLI_CONTINUE)
        return status;
    if (quiet)
        o.progress = NULL;
    char root[STORE_PATH_MAX];
    garlic_error err;
    if (store_root(root, sizeof root, &err) || store_pull(root, name, &o, &err)) {
        fprintf(stderr, "garlic pull: %s\n", err.message);
        return 1;
    }
    if (!quiet)
        fprintf(stderr, "success: %s is in %s\n", name, root);
    return 0;
}
