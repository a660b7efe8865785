// SPDX-License-Identifier: MIT
// The garlic binary: dispatches to a subcommand, lists them all with one line each
// (`garlic --help`, `garlic help`), and runs `garlic help COMMAND` as `garlic COMMAND
// --help`. The only file that may call exit.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/cpu.h"
#include "base/version.h"
#include "cli/cli.h"
#include "dist/dist.h"

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary; // one line for `garlic --help`
} command;

static int run_version(int argc, char **argv);
static int run_help(int argc, char **argv);

static const command commands[] = {
    {"serve", cli_serve, "serve models over HTTP (OpenAI and Ollama APIs)"},
    {"run", cli_run, "generate text from a prompt, or chat"},
    {"bench", cli_bench, "measure prompt processing and generation speed"},
    {"show", cli_show, "describe a model file"},
    {"estimate", cli_estimate, "print the memory plan of serving a model"},
    {"tokenize", cli_tokenize, "show how a model's tokenizer cuts a text"},
    {"chat-template", cli_chat_template, "print the prompt a chat template renders"},
    {"pull", cli_pull, "download a model into the store (Ollama registry or Hugging Face)"},
    {"list", cli_list_models, "list the models in the store"},
    {"rm", cli_remove, "remove a model from the store"},
    {"cp", cli_copy, "give a stored model another name"},
    {"create", cli_create, "make a stored model from a Modelfile (FROM, PARAMETER, SYSTEM...)"},
    {"ps", cli_ps, "list the models a running server has loaded"},
    {"convert", cli_convert, "write a Hugging Face model folder as a GGUF file"},
    {"quantize", cli_quantize, "rewrite a model in a quantization mixture (Q4_K_M, Q8_0...)"},
    {"synth", cli_synth, "write a random-weight model (for tests and benchmarks)"},
    {"version", run_version, "print the version and the CPU features used"},
    {"help", run_help, "list the commands, or print one's help: garlic help COMMAND"},
};
enum { N_COMMANDS = sizeof commands / sizeof commands[0] };

static void usage(FILE *out)
{
    fprintf(out,
            "garlic %s: a self-hosted LLM inference server\n\n"
            "usage: garlic COMMAND [ARGUMENTS] [options]\n\ncommands:\n",
            GARLIC_VERSION);
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(out, "  %-15s %s\n", commands[i].name, commands[i].summary);
    fprintf(out,
            "\n`garlic COMMAND --help` (or `garlic help COMMAND`) prints a command's "
            "arguments and options.\n");
}

static const command *find_command(const char *name)
{
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

static int run_version(int argc, char **argv)
{
    static const cli_command version_command = {.name = "version",
                                                .usage = "",
                                                .about = "Prints the version and the SIMD features "
                                                         "detected on this CPU."};
    const cli_option options[] = {{0}};
    int status = cli_parse(&version_command, options, argc, argv);
    if (status != CLI_CONTINUE)
        return status;
    printf("garlic %s (cpu: %s)\n", GARLIC_VERSION, cpu_features_describe());
    return 0;
}

static int run_help(int argc, char **argv)
{
    static const cli_command help_command = {.name = "help",
                                             .usage = "[COMMAND]",
                                             .about = "Lists the commands, or prints the help "
                                                      "of one (as `garlic COMMAND --help`)."};
    const char *name = NULL;
    const cli_option options[] = {
        cli_optional_arg("COMMAND", "the command whose help to print", &name),
        {0},
    };
    int status = cli_parse(&help_command, options, argc, argv);
    if (status != CLI_CONTINUE)
        return status;
    if (!name) {
        usage(stdout);
        return 0;
    }
    const command *c = find_command(name);
    if (!c)
        return cli_usage_error(&help_command, "unknown command '%s'", name);
    char help_flag[] = "--help";
    char *help_argv[] = {help_flag, NULL};
    return c->run(1, help_argv);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        exit(2);
    }
    const char *name = argv[1];
    if (strcmp(name, "-h") == 0 || strcmp(name, "--help") == 0)
        name = "help";
    else if (strcmp(name, "--version") == 0)
        name = "version";
    const command *c = find_command(name);
    if (!c) {
        fprintf(stderr, "garlic: unknown command '%s'\n\n", name);
        usage(stderr);
        exit(2);
    }
    // Under mpirun every rank runs the same command; the world is started before it and
    // ended after it on every rank.
    garlic_error err = {0};
    if (dist_init(&argc, &argv, &err) != GARLIC_OK) {
        fprintf(stderr, "garlic: %s\n", err.message);
        dist_finalize();
        exit(1);
    }
    int status = c->run(argc - 2, argv + 2);
    dist_finalize();
    exit(status);
}
