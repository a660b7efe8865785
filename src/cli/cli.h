// SPDX-License-Identifier: MIT
// The garlic subcommands and what they share. Each command takes the arguments after its
// name and returns the process exit status (0 success, 1 failure, 2 usage error); only
// main.c calls exit. Every command parses its arguments with cli_parse (options.c), so
// that --help, unknown options, missing values and --opt=value behave the same everywhere.
#ifndef GARLIC_CLI_H
#define GARLIC_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "kvcache/kvcache.h"

int cli_show(int argc, char **argv);
int cli_synth(int argc, char **argv);
int cli_tokenize(int argc, char **argv);
int cli_run(int argc, char **argv);
int cli_bench(int argc, char **argv);
int cli_chat_template(int argc, char **argv);
int cli_serve(int argc, char **argv);
int cli_ps(int argc, char **argv);
int cli_estimate(int argc, char **argv);
int cli_quantize(int argc, char **argv);
int cli_convert(int argc, char **argv);
int cli_pull(int argc, char **argv);
int cli_list_models(int argc, char **argv);
int cli_remove(int argc, char **argv);
int cli_copy(int argc, char **argv);
int cli_create(int argc, char **argv);

// ---- options: one parser for every command ----
//
// A command describes itself in a cli_command, and its positional arguments and options in
// a table of cli_option rows ending with {0}; cli_parse walks argv once, left to right:
//   -h, --help             the usage, the description and every option to stdout; exit 0
//   --name VALUE, --name=VALUE, -x VALUE
//                          an option that takes a value; the next argument is its value even
//                          when it starts with '-' (serve --keep-alive -1)
//   --name                 a flag (--name=VALUE is a usage error)
//   --                     ends the options: what follows is positional ("-" always is: stdin)
//   anything else          the next positional argument of the table (cli_arg rows, in order)
// Usage errors print "garlic CMD: <what>" and the usage line to stderr and exit 2: an unknown
// option is reported as unknown ("garlic CMD: unknown option '--bogus'") before any value is
// looked for; then a missing value ("garlic CMD: --ctx needs a value"); a bad value names the
// option and what it accepts; then missing or extra positional arguments ("garlic show:
// MODEL.gguf is missing", "garlic show: unexpected argument 'b.gguf'").
//
// Moving a command onto it (run.c, bench.c) takes its defaults, one table and one call:
//
//   static const cli_command run_command = {
//       .name = "run", .usage = "MODEL.gguf [PROMPT] [options]",
//       .about = "Streams the continuation of PROMPT; without it, chats."};
//   run_options o = {...defaults...};
//   const cli_option options[] = {
//       cli_arg("MODEL.gguf", "the model", &o.model_path),
//       cli_optional_arg("PROMPT", "the text to continue (none: chat)", &o.prompt),
//       cli_uint("-n|--num-predict", "N", "tokens to generate (0: until the context is full)",
//                &o.n_predict, 0, UINT32_MAX),
//       cli_float("--temp", "X", "sampling temperature (0: greedy)", &o.temperature, 0, 100),
//       cli_kv_type("--kv-type", "KV cache type: f16, q8_0, fp8 or f32", &o.kv_type),
//       cli_custom("--stop", "S", "stop before S (repeatable)", &o, add_stop),
//       cli_flag("--verbose", "timing on stderr", &o.verbose),
//       {0}};
//   int status = cli_parse(&run_command, options, argc, argv);
//   if (status != CLI_CONTINUE)
//       return status; // 0 after --help, 2 after a usage error
//
// Checks that involve several options come after it and report with cli_usage_error.

enum {
    CLI_CONTINUE = -1, // cli_parse: the arguments are good, run the command
};

// What an option's value is; the constructors below say where it goes.
typedef enum cli_kind {
    CLI_ARG,     // a positional argument (borrowed from argv), required or not
    CLI_FLAG,    // no value: *dst = true
    CLI_STRING,  // the value itself, borrowed from argv; the last one given wins
    CLI_UINT,    // a decimal integer from min to max
    CLI_INT,     // a decimal integer from min to max (min >= 0)
    CLI_U64,     // any decimal integer below 2^64 (seeds)
    CLI_FLOAT,   // a number from min to max
    CLI_KV_TYPE, // f16, q8_0, fp8 or f32
    CLI_SIZE,    // a byte count above 0 as planner_parse_size reads it (28.8GB, 24GiB, 512M)
    CLI_LIST,    // a repeatable value, appended to a cli_list (borrowed from argv)
    CLI_CUSTOM,  // parse(dst, option, value): 0, or -1 after printing why (names that stand
                 // for settings)
    CLI_KIND_COUNT
} cli_kind;

// The values of a repeatable option (CLI_LIST): items[0..n), at most max of them.
typedef struct cli_list {
    const char **items; // (max) the caller's array
    size_t n, max;
} cli_list;

// One row of a command's option table; build rows with the constructors below.
typedef struct cli_option {
    const char *names; // "--ctx" or "--ctx|-c": every spelling, '|'-separated; NULL ends.
                       // A positional argument's name ("MODEL.gguf")
    const char *value; // the value's placeholder in --help ("N", "FILE"); NULL for flags
    const char *help;  // one line for --help
    cli_kind kind;
    void *dst;       // where the value goes, of the type the constructor takes
    double min, max; // CLI_UINT, CLI_INT, CLI_FLOAT: the accepted range
    int (*parse)(void *dst, const char *option, const char *value); // CLI_CUSTOM
    bool *seen;    // set to true when the option is given (NULL: not wanted)
    bool required; // CLI_ARG: a usage error when absent
} cli_option;

static inline cli_option cli_arg(const char *name, const char *help, const char **dst)
{
    return (cli_option){
        .names = name, .help = help, .kind = CLI_ARG, .dst = (void *)dst, .required = true};
}

static inline cli_option cli_optional_arg(const char *name, const char *help, const char **dst)
{
    return (cli_option){.names = name, .help = help, .kind = CLI_ARG, .dst = (void *)dst};
}

static inline cli_option cli_flag(const char *names, const char *help, bool *dst)
{
    return (cli_option){.names = names, .help = help, .kind = CLI_FLAG, .dst = dst};
}

static inline cli_option cli_string(const char *names, const char *value, const char *help,
                                    const char **dst)
{
    return (cli_option){
        .names = names, .value = value, .help = help, .kind = CLI_STRING, .dst = (void *)dst};
}

// A row whose value is a number within [min, max] (the three kinds that take a range).
static inline cli_option cli_ranged(const char *names, const char *value, const char *help,
                                    cli_kind kind, void *dst, double min, double max)
{
    cli_option o = {.names = names, .value = value, .help = help, .kind = kind, .dst = dst};
    o.min = min, o.max = max;
    return o;
}

static inline cli_option cli_uint(const char *names, const char *value, const char *help,
                                  uint32_t *dst, uint32_t min, uint32_t max)
{
    return cli_ranged(names, value, help, CLI_UINT, dst, min, max);
}

static inline cli_option cli_int(const char *names, const char *value, const char *help, int *dst,
                                 int min, int max)
{
    return cli_ranged(names, value, help, CLI_INT, dst, min, max);
}

static inline cli_option cli_u64(const char *names, const char *value, const char *help,
                                 uint64_t *dst)
{
    return (cli_option){.names = names, .value = value, .help = help, .kind = CLI_U64, .dst = dst};
}

static inline cli_option cli_float(const char *names, const char *value, const char *help,
                                   float *dst, float min, float max)
{
    return cli_ranged(names, value, help, CLI_FLOAT, dst, min, max);
}

static inline cli_option cli_strings(const char *names, const char *value, const char *help,
                                     cli_list *dst)
{
    return (cli_option){.names = names, .value = value, .help = help, .kind = CLI_LIST, .dst = dst};
}

static inline cli_option cli_kv_type(const char *names, const char *help, kv_type *dst)
{
    return (cli_option){
        .names = names, .value = "T", .help = help, .kind = CLI_KV_TYPE, .dst = dst};
}

static inline cli_option cli_size(const char *names, const char *value, const char *help,
                                  uint64_t *dst)
{
    return (cli_option){.names = names, .value = value, .help = help, .kind = CLI_SIZE, .dst = dst};
}

static inline cli_option cli_custom(const char *names, const char *value, const char *help,
                                    void *dst, int (*parse)(void *, const char *, const char *))
{
    return (cli_option){.names = names,
                        .value = value,
                        .help = help,
                        .kind = CLI_CUSTOM,
                        .dst = dst,
                        .parse = parse};
}

// o, also recording in *seen whether it was given.
static inline cli_option cli_seen(cli_option o, bool *seen)
{
    o.seen = seen;
    return o;
}

// A command's usage: `garlic NAME USAGE`, and the text before and after the lists of
// arguments and options in --help.
typedef struct cli_command {
    const char *name;  // "estimate"
    const char *usage; // "MODEL.gguf|config.json|FOLDER [options]"
    const char *about; // paragraph(s) before the lists (NULL: none)
    const char *notes; // paragraph(s) after them: formats, environment (NULL: none)
} cli_command;

// Parses argv (argc arguments after the command's name) against options: values and
// positional arguments go where the table says (strings borrowed from argv). Returns
// CLI_CONTINUE when the command should run, 0 after printing --help, 2 after a usage error
// (message and usage on stderr).
int cli_parse(const cli_command *cmd, const cli_option *options, int argc, char **argv);

// Prints the whole help of a command (usage, about, arguments, options, notes) to out.
void cli_help(const cli_command *cmd, const cli_option *options, FILE *out);

// Prints "garlic NAME: <message>" and the usage line to stderr; returns 2 (the usage-error
// status), so that commands can write `return cli_usage_error(&cmd, "...")`.
int cli_usage_error(const cli_command *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

// Value parsers shared by the commands (and used by cli_parse): print an error naming the
// option and return -1 on a bad value.
int cli_parse_uint(const char *opt, const char *text, uint32_t min, uint32_t max, uint32_t *out);
int cli_parse_float(const char *opt, const char *text, float min, float max, float *out);

// ---- shared by several commands ----

// Human-readable sizes: "1.13 GiB", "24.4M" (static buffers: each function rotates between
// 4, so that a few can appear in one printf).
const char *cli_format_bytes(double bytes);
const char *cli_format_count(double count);

#endif
