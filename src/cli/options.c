// SPDX-License-Identifier: MIT
// The one option parser of the garlic commands (cli_parse), their --help (cli_help) and
// their usage errors (cli_usage_error); the contract is in cli.h. Values are checked and
// stored by kind, so a command's options are a table, not a loop of strcmp.
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "kvcache/kvcache.h"
#include "planner/planner.h"

enum { HELP_COLUMN = 28 }; // where option descriptions start in --help

int cli_parse_uint(const char *opt, const char *text, uint32_t min, uint32_t max, uint32_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno || *end || end == text || text[0] == '-' || v < min || v > max) {
        fprintf(stderr, "garlic: %s: '%s' is not an integer from %u to %u\n", opt, text, min, max);
        return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

int cli_parse_float(const char *opt, const char *text, float min, float max, float *out)
{
    char *end;
    errno = 0;
    float v = strtof(text, &end);
    if (errno || *end || end == text || !(v >= min && v <= max)) {
        fprintf(stderr, "garlic: %s: '%s' is not a number from %g to %g\n", opt, text, min, max);
        return -1;
    }
    *out = v;
    return 0;
}

// Whether the len bytes of word are one of the '|'-separated names.
static bool name_matches(const char *names, const char *word, size_t len)
{
    for (const char *p = names; *p;) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t)(bar - p) : strlen(p);
        if (n == len && memcmp(p, word, len) == 0)
            return true;
        p += n + (bar != NULL);
    }
    return false;
}

static const cli_option *find_option(const cli_option *options, const char *word, size_t len)
{
    for (const cli_option *o = options; o->names; o++)
        if (o->kind != CLI_ARG && name_matches(o->names, word, len))
            return o;
    return NULL;
}

// The usage line and where the options are, after a usage error.
static void usage_tail(const cli_command *cmd)
{
    fprintf(stderr, "usage: garlic %s%s%s\n(garlic %s --help lists the options)\n", cmd->name,
            *cmd->usage ? " " : "", cmd->usage, cmd->name);
}

int cli_usage_error(const cli_command *cmd, const char *fmt, ...)
{
    fprintf(stderr, "garlic %s: ", cmd->name);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    usage_tail(cmd);
    return 2;
}

// One line of a list: "  -c, --ctx N" padded to HELP_COLUMN, then the help (on the next
// line when the names are too long).
static void help_line(FILE *out, const char *names, const char *value, const char *help)
{
    char label[128];
    size_t len = 0;
    for (const char *p = names; *p && len + 3 < sizeof label; p++) {
        if (*p == '|')
            label[len++] = ',', label[len++] = ' ';
        else
            label[len++] = *p;
    }
    label[len] = '\0';
    fprintf(out, "  %s%s%s", label, value ? " " : "", value ? value : "");
    int width = 2 + (int)len + (value ? 1 + (int)strlen(value) : 0);
    if (width >= HELP_COLUMN)
        fprintf(out, "\n%*s", HELP_COLUMN, "");
    else
        fprintf(out, "%*s", HELP_COLUMN - width, "");
    fprintf(out, "%s\n", help ? help : "");
}

// The positional row after `after` (NULL: the first), or NULL when there is none.
static const cli_option *next_arg(const cli_option *options, const cli_option *after)
{
    for (const cli_option *o = after ? after + 1 : options; o->names; o++)
        if (o->kind == CLI_ARG)
            return o;
    return NULL;
}

void cli_help(const cli_command *cmd, const cli_option *options, FILE *out)
{
    fprintf(out, "usage: garlic %s%s%s\n", cmd->name, *cmd->usage ? " " : "", cmd->usage);
    if (cmd->about)
        fprintf(out, "\n%s\n", cmd->about);
    if (next_arg(options, NULL))
        fprintf(out, "\narguments:\n");
    for (const cli_option *o = next_arg(options, NULL); o; o = next_arg(options, o))
        help_line(out, o->names, NULL, o->help);
    fprintf(out, "\noptions:\n");
    for (const cli_option *o = options; o->names; o++)
        if (o->kind != CLI_ARG)
            help_line(out, o->names, o->value, o->help);
    help_line(out, "-h|--help", NULL, "print this help");
    if (cmd->notes)
        fprintf(out, "\n%s\n", cmd->notes);
}

// A decimal integer of 64 bits into *out; -1 with a message otherwise.
static int parse_u64(const cli_command *cmd, const char *name, const char *text, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno || *end || end == text || text[0] == '-') {
        fprintf(stderr, "garlic %s: %s: '%s' is not a non-negative integer\n", cmd->name, name,
                text);
        return -1;
    }
    *out = v;
    return 0;
}

// Checks value and stores it where o says; -1 after printing why. name is the option as
// given (one of o's names).
static int set_value(const cli_command *cmd, const cli_option *o, const char *name,
                     const char *value)
{
    uint32_t u;
    uint64_t bytes;
    switch (o->kind) {
    case CLI_FLAG: *(bool *)o->dst = true; return 0;
    case CLI_STRING: *(const char **)o->dst = value; return 0;
    case CLI_UINT: return cli_parse_uint(name, value, (uint32_t)o->min, (uint32_t)o->max, o->dst);
    case CLI_INT:
        if (cli_parse_uint(name, value, (uint32_t)o->min, (uint32_t)o->max, &u))
            return -1;
        *(int *)o->dst = (int)u;
        return 0;
    case CLI_U64: return parse_u64(cmd, name, value, o->dst);
    case CLI_FLOAT: return cli_parse_float(name, value, (float)o->min, (float)o->max, o->dst);
    case CLI_KV_TYPE:
        if (kv_type_parse(value, o->dst))
            return 0;
        fprintf(stderr, "garlic %s: %s: '%s' is not f16, q8_0, fp8 or f32\n", cmd->name, name,
                value);
        return -1;
    case CLI_SIZE:
        if (planner_parse_size(value, &bytes) && bytes > 0) {
            *(uint64_t *)o->dst = bytes;
            return 0;
        }
        fprintf(stderr, "garlic %s: %s: '%s' is not a size such as 28.8GB, 24GiB or 512M\n",
                cmd->name, name, value);
        return -1;
    case CLI_LIST: {
        cli_list *l = o->dst;
        if (l->n == l->max) {
            fprintf(stderr, "garlic %s: %s: at most %zu of them\n", cmd->name, name, l->max);
            return -1;
        }
        l->items[l->n++] = value;
        return 0;
    }
    case CLI_CUSTOM: return o->parse(o->dst, name, value);
    case CLI_ARG: // positional: cli_parse stores them
    case CLI_KIND_COUNT: break;
    }
    return -1;
}

// Handles the option argv[*i] (which starts with '-'), taking its value from argv[*i + 1]
// when it has no "=value". Returns CLI_CONTINUE, or the status to exit with.
static int take_option(const cli_command *cmd, const cli_option *options, int argc, char **argv,
                       int *i)
{
    const char *arg = argv[*i];
    const char *eq = arg[1] == '-' ? strchr(arg, '=') : NULL;
    size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
    char name[64];
    snprintf(name, sizeof name, "%.*s", (int)len, arg);
    if (!eq && (!strcmp(name, "-h") || !strcmp(name, "--help"))) {
        cli_help(cmd, options, stdout);
        return 0;
    }
    const cli_option *o = find_option(options, arg, len);
    if (!o)
        return cli_usage_error(cmd, "unknown option '%s'", name);
    const char *value = eq ? eq + 1 : NULL;
    if (o->kind == CLI_FLAG && value)
        return cli_usage_error(cmd, "%s takes no value", name);
    if (o->kind != CLI_FLAG && !value) {
        if (*i + 1 >= argc)
            return cli_usage_error(cmd, "%s needs a value", name);
        value = argv[++*i];
    }
    if (set_value(cmd, o, name, value)) {
        usage_tail(cmd);
        return 2;
    }
    if (o->seen)
        *o->seen = true;
    return CLI_CONTINUE;
}

int cli_parse(const cli_command *cmd, const cli_option *options, int argc, char **argv)
{
    const cli_option *arg = next_arg(options, NULL); // the next positional argument's row
    bool options_done = false;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!options_done && strcmp(a, "--") == 0) {
            options_done = true;
        } else if (!options_done && a[0] == '-' && a[1] != '\0') {
            int status = take_option(cmd, options, argc, argv, &i);
            if (status != CLI_CONTINUE)
                return status;
        } else if (arg) {
            *(const char **)arg->dst = a;
            arg = next_arg(options, arg);
        } else {
            return cli_usage_error(cmd, "unexpected argument '%s'", a);
        }
    }
    if (arg && arg->required)
        return cli_usage_error(cmd, "%s is missing", arg->names);
    return CLI_CONTINUE;
}
