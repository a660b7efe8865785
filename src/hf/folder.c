// SPDX-License-Identifier: MIT
// The files of a Hugging Face model folder: where its config.json is, and which safetensors
// files hold its weights (those model.safetensors.index.json names, or every *.safetensors
// of the folder). Nothing is opened here but the folder and the index. See hf.h.
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/buffer.h"
#include "base/file.h"
#include "hf/hf.h"

// dir/name into dst (HF_PATH_MAX bytes); GARLIC_EINVAL when it does not fit.
static int join_path(char *dst, const char *dir, const char *name, garlic_error *err)
{
    int n = snprintf(dst, HF_PATH_MAX, "%s/%s", dir, name);
    if (n < 0 || n >= HF_PATH_MAX)
        return garlic_error_set(err, GARLIC_EINVAL, "%.200s/%.64s: path too long", dir, name);
    return GARLIC_OK;
}

int hf_folder_find(const char *path, hf_folder *out, garlic_error *err)
{
    struct stat sb;
    if (stat(path, &sb) != 0)
        return garlic_error_set(err, GARLIC_EIO, "%s: %s", path, strerror(errno));
    if (strlen(path) >= HF_PATH_MAX - 64)
        return garlic_error_set(err, GARLIC_EINVAL, "%.200s...: path too long", path);
    snprintf(out->dir, sizeof out->dir, "%s", path);
    if (S_ISDIR(sb.st_mode))
        return join_path(out->config, path, "config.json", err);
    snprintf(out->config, sizeof out->config, "%s", path);
    char *slash = strrchr(out->dir, '/');
    if (!slash)
        snprintf(out->dir, sizeof out->dir, ".");
    else if (slash == out->dir)
        out->dir[1] = '\0'; // the root folder
    else
        *slash = '\0';
    return GARLIC_OK;
}

void hf_shards_deinit(hf_shards *s)
{
    for (size_t i = 0; i < s->n; i++)
        garlic_free(s->paths[i]);
    garlic_free(s->paths);
    *s = (hf_shards){0};
}

// Appends dir/name to s (cap: its capacity). where names the list in messages.
static int add_shard(hf_shards *s, size_t *cap, const char *dir, const char *name,
                     const char *where, garlic_error *err)
{
    char path[HF_PATH_MAX];
    int rc = join_path(path, dir, name, err);
    if (rc)
        return rc;
    if (s->n == HF_MAX_SHARDS)
        return garlic_error_set(err, GARLIC_EFORMAT, "%s: more than %d safetensors files", where,
                                HF_MAX_SHARDS);
    if (garlic_grow(&s->paths, cap, s->n + 1, sizeof *s->paths) ||
        !(s->paths[s->n] = garlic_strndup(path, strlen(path))))
        return garlic_error_set(err, GARLIC_ENOMEM, "%s: out of memory", where);
    s->n++;
    return GARLIC_OK;
}

// The files model.safetensors.index.json (at index) names in its weight_map, once each.
static int index_shards(const char *dir, const char *index, hf_shards *out, garlic_error *err)
{
    char *text = NULL;
    size_t len = 0, cap = 0;
    int rc = garlic_file_read(index, HF_MAX_INDEX_BYTES, &text, &len, err);
    if (rc)
        return rc;
    cJSON *root = cJSON_ParseWithLength(text, len);
    garlic_free(text);
    const cJSON *map = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(map)) {
        cJSON_Delete(root);
        return garlic_error_set(err, GARLIC_EFORMAT,
                                "%s: weight_map is missing or not an "
                                "object",
                                index);
    }
    size_t dir_len = strlen(dir) + 1; // the paths' "dir/" prefix
    const cJSON *v;
    cJSON_ArrayForEach(v, map)
    {
        const char *s = cJSON_IsString(v) ? v->valuestring : NULL;
        if (!s || !s[0] || strchr(s, '/') || strcmp(s, "..") == 0 || strlen(s) > 255) {
            rc = garlic_error_set(err, GARLIC_EFORMAT,
                                  "%s: weight_map: '%.64s' is not a file "
                                  "name in the folder",
                                  index, s ? s : "(not a string)");
            break;
        }
        bool seen = false;
        for (size_t i = 0; i < out->n && !seen; i++)
            seen = strcmp(out->paths[i] + dir_len, s) == 0;
        if (!seen && (rc = add_shard(out, &cap, dir, s, index, err)))
            break;
    }
    cJSON_Delete(root);
    return rc;
}

static int path_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

// Every *.safetensors file of dir, sorted.
static int glob_shards(const char *dir, hf_shards *out, garlic_error *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return garlic_error_set(err, GARLIC_EIO, "%s: %s", dir, strerror(errno));
    size_t cap = 0;
    int rc = GARLIC_OK;
    struct dirent *e;
    while (!rc && (e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len > 12 && strcmp(e->d_name + len - 12, ".safetensors") == 0)
            rc = add_shard(out, &cap, dir, e->d_name, dir, err);
    }
    closedir(d);
    if (out->n)
        qsort(out->paths, out->n, sizeof *out->paths, path_cmp);
    return rc;
}

int hf_shards_list(const char *dir, hf_shards *out, garlic_error *err)
{
    *out = (hf_shards){0};
    char index[HF_PATH_MAX];
    int rc = join_path(index, dir, "model.safetensors.index.json", err);
    if (rc)
        return rc;
    return access(index, F_OK) == 0 ? index_shards(dir, index, out, err)
                                    : glob_shards(dir, out, err);
}
