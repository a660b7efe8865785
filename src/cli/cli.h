// SPDX-License-Identifier: MIT
// The garlic subcommands. Each takes the arguments after its name and returns the
// process exit status (0 success, 1 failure, 2 usage error); only main.c calls exit.
#ifndef GARLIC_CLI_H
#define GARLIC_CLI_H

#include <stdint.h>

int cli_show(int argc, char **argv);
int cli_synth(int argc, char **argv);
int cli_tokenize(int argc, char **argv);
int cli_run(int argc, char **argv);
int cli_bench(int argc, char **argv);
int cli_chat_template(int argc, char **argv);
int cli_serve(int argc, char **argv);
int cli_ps(int argc, char **argv);
int cli_estimate(int argc, char **argv);

// Shared option helpers: print an error naming the option and return -1 on a bad value.
int cli_parse_uint(const char *opt, const char *text, uint32_t min, uint32_t max, uint32_t *out);
int cli_parse_float(const char *opt, const char *text, float min, float max, float *out);

// Human-readable sizes: "1.13 GiB", "24.4M" (static buffers, one per call site pattern:
// each function rotates between 4 buffers so a few can appear in one printf).
const char *cli_format_bytes(double bytes);
const char *cli_format_count(double count);

#endif
