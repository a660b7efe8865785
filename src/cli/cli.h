// SPDX-License-Identifier: MIT
// The garlic subcommands. Each takes the arguments after its name and returns the
// process exit status (0 success, 1 failure, 2 usage error); only main.c calls exit.
#ifndef GARLIC_CLI_H
#define GARLIC_CLI_H

int cli_show(int argc, char **argv);
int cli_synth(int argc, char **argv);

// Human-readable sizes: "1.13 GiB", "24.4M" (static buffers, one per call site pattern:
// each function rotates between 4 buffers so a few can appear in one printf).
const char *cli_format_bytes(double bytes);
const char *cli_format_count(double count);

#endif
