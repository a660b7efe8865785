// SPDX-License-Identifier: MIT
// The store's bookkeeping commands: `garlic list` (NAME, ID, SIZE, MODIFIED as `ollama list`
// prints them), `garlic rm NAME...` and `garlic cp SRC DST`. The store is src/store.
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "base/alloc.h"
#include "base/error.h"
#include "cli/cli.h"
#include "store/store.h"

static const char store_notes[] = "The store is $GARLIC_MODELS, default "
                                  "$XDG_CACHE_HOME/garlic/models or ~/.cache/garlic/models.";

// "5 minutes ago", "2 days ago" for a Unix time.
static void format_age(int64_t when, char *buf, size_t cap)
{
    int64_t s = (int64_t)time(NULL) - when;
    static const struct {
        int64_t seconds;
        const char *unit;
    } units[] = {{365 * 86400, "year"}, {30 * 86400, "month"}, {7 * 86400, "week"},
                 {86400, "day"},        {3600, "hour"},        {60, "minute"}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (s >= units[i].seconds) {
            int64_t n = s / units[i].seconds;
            snprintf(buf, cap, "%lld %s%s ago", (long long)n, units[i].unit, n > 1 ? "s" : "");
            return;
        }
    snprintf(buf, cap, "%s", s < 2 ? "just now" : "seconds ago");
}

static int fail(const char *cmd, const garlic_error *err)
{
    fprintf(stderr, "garlic %s: %s\n", cmd, err->message);
    return 1;
}

int cli_list_models(int argc, char **argv)
{
    static const cli_command list_command = {
        .name = "list",
        .usage = "[options]",
        .about = "Lists the models in the store, newest first: name, ID (the start of the "
                 "model file's sha256),\nsize, quantization and when it was pulled or copied.",
        .notes = store_notes,
    };
    const cli_option options[] = {{0}};
    int status = cli_parse(&list_command, options, argc, argv);
    if (status != CLI_CONTINUE)
        return status;
    char root[STORE_PATH_MAX];
    garlic_error err;
    store_manifest *all = NULL;
    size_t n = 0;
    if (store_root(root, sizeof root, &err) || store_list(root, &all, &n, &err))
        return fail("list", &err);
    printf("%-40s %-14s %-10s %-8s %s\n", "NAME", "ID", "SIZE", "QUANT", "MODIFIED");
    for (size_t i = 0; i < n; i++) {
        char name[4 * STORE_PART_MAX], age[64];
        store_name_display(&all[i].name, name, sizeof name);
        format_age(all[i].modified, age, sizeof age);
        const store_file *weights = store_manifest_weights(&all[i]);
        printf("%-40s %-14.12s %-10s %-8s %s\n", name, weights ? weights->digest : "-",
               cli_format_bytes((double)all[i].size),
               all[i].quantization[0] ? all[i].quantization : "-", age);
    }
    garlic_free(all);
    return 0;
}

int cli_remove(int argc, char **argv)
{
    static const cli_command rm_command = {
        .name = "rm",
        .usage = "NAME [options]",
        .about = "Removes a model from the store, and the files no other name uses.",
        .notes = store_notes,
    };
    const char *name = NULL;
    const cli_option options[] = {cli_arg("NAME", "the model to remove", &name), {0}};
    int status = cli_parse(&rm_command, options, argc, argv);
    if (status != CLI_CONTINUE)
        return status;
    char root[STORE_PATH_MAX];
    garlic_error err;
    if (store_root(root, sizeof root, &err) || store_remove(root, name, &err))
        return fail("rm", &err);
    printf("deleted '%s'\n", name);
    return 0;
}

int cli_copy(int argc, char **argv)
{
    static const cli_command cp_command = {
        .name = "cp",
        .usage = "SRC DST [options]",
        .about = "Gives a stored model a second name (the files are shared, not copied).",
        .notes = store_notes,
    };
    const char *src = NULL, *dst = NULL;
    const cli_option options[] = {
        cli_arg("SRC", "a stored model", &src), cli_arg("DST", "its new name", &dst), {0}};
    int status = cli_parse(&cp_command, options, argc, argv);
    if (status != CLI_CONTINUE)
        return status;
    char root[STORE_PATH_MAX];
    garlic_error err;
    if (store_root(root, sizeof root, &err) || store_copy(root, src, dst, &err))
        return fail("cp", &err);
    printf("copied '%s' to '%s'\n", src, dst);
    return 0;
}
