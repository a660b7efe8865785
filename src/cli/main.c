// SPDX-License-Identifier: MIT
// The garlic binary: dispatches to a subcommand. The only file that may call exit.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/cpu.h"
#include "cli/cli.h"

#define GARLIC_VERSION "0.1.0"

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *help; // NULL: hidden (developer tools)
} command;

static const command commands[] = {
    {"show", cli_show, "show MODEL.gguf [--json] [--tensors]   describe a model file"},
    {"tokenize", cli_tokenize,
     "tokenize MODEL.gguf TEXT|- [--ids] [--no-bos] [--special]   show a text's tokens"},
    {"run", cli_run,
     "run MODEL.gguf [PROMPT] [-n N] [--temp X] ...   generate text (chat without PROMPT)"},
    {"bench", cli_bench, "bench MODEL.gguf [-p N] [-n N] [-r N] [-t N] [--json]   measure speed"},
    {"estimate", cli_estimate,
     "estimate MODEL.gguf|config.json [--ctx N] [--parallel N] [--kv-type T] [--budget SIZE] "
     "[--json]   memory plan"},
    {"serve", cli_serve, "serve -m MODEL.gguf[=NAME]... [--port N] ...   OpenAI/Ollama HTTP server"},
    {"ps", cli_ps, "ps [--host ADDR] [--port N] [--json]   models a running server has loaded"},
    {"chat-template", cli_chat_template,
     "chat-template MODEL.gguf|FILE.jinja --messages FILE.json   print the rendered prompt"},
    {"synth", cli_synth, NULL},
};

static void usage(FILE *out)
{
    fprintf(out, "garlic %s: a self-hosted LLM inference server\n\nusage: garlic COMMAND [ARGS]\n\n",
            GARLIC_VERSION);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (commands[i].help)
            fprintf(out, "  garlic %s\n", commands[i].help);
    fprintf(out, "  garlic version                          print the version\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        exit(2);
    }
    const char *name = argv[1];
    if (strcmp(name, "-h") == 0 || strcmp(name, "--help") == 0 || strcmp(name, "help") == 0) {
        usage(stdout);
        exit(0);
    }
    if (strcmp(name, "version") == 0 || strcmp(name, "--version") == 0) {
        printf("garlic %s (cpu: %s)\n", GARLIC_VERSION, cpu_features_describe());
        exit(0);
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(commands[i].name, name) == 0)
            exit(commands[i].run(argc - 2, argv + 2));
    fprintf(stderr, "garlic: unknown command '%s'\n\n", name);
    usage(stderr);
    exit(2);
}
