// SPDX-License-Identifier: MIT
// The model store on disk: names and where they live, manifests (cJSON), atomic writes,
// listing, removing (with the blobs nothing names any longer), copying and resolving a name to
// the file to open. The layout is in store.h; pulling is pull.c.
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/file.h"
#include "store/internal.h"
#include "store/store.h"

enum { MANIFEST_MAX = 1 << 20 };

static bool part_ok(const char *s, size_t n, bool host)
{
    if (n == 0 || n >= STORE_PART_MAX || (n == 2 && s[0] == '.' && s[1] == '.') ||
        (n == 1 && s[0] == '.'))
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '.' || c == '_' || c == '-' || (host && c == ':');
        if (!ok)
            return false;
    }
    return true;
}

int store_name_parse(const char *text, store_name *out, garlic_error *err)
{
    memset(out, 0, sizeof *out);
    const char *parts[3];
    size_t lens[3], n = 0;
    const char *p = text;
    for (;;) {
        const char *slash = strchr(p, '/');
        if (n == 3)
            return garlic_error_set(err, GARLIC_EINVAL, "'%s': too many '/' in a model name", text);
        parts[n] = p;
        lens[n++] = slash ? (size_t)(slash - p) : strlen(p);
        if (!slash)
            break;
        p = slash + 1;
    }
    // The tag follows the last ':' of the last part (a host may carry a port).
    const char *last = parts[n - 1];
    const char *colon = memchr(last, ':', lens[n - 1]);
    const char *tag = STORE_DEFAULT_TAG;
    size_t tag_len = strlen(tag);
    if (colon) {
        tag = colon + 1;
        tag_len = lens[n - 1] - (size_t)(colon + 1 - last);
        lens[n - 1] = (size_t)(colon - last);
    }
    const char *host = STORE_DEFAULT_HOST, *ns = STORE_DEFAULT_NAMESPACE;
    size_t host_len = strlen(host), ns_len = strlen(ns);
    if (n == 3)
        host = parts[0], host_len = lens[0];
    if (n >= 2)
        ns = parts[n - 2], ns_len = lens[n - 2];
    // "org/repo" is a Hugging Face repository; "library/name" stays an Ollama model.
    if (n == 2 &&
        !(ns_len == strlen(STORE_DEFAULT_NAMESPACE) &&
          memcmp(ns, STORE_DEFAULT_NAMESPACE, ns_len) == 0))
        host = STORE_HUB_HOST, host_len = strlen(host);
    if (!part_ok(host, host_len, true) || !part_ok(ns, ns_len, false) ||
        !part_ok(parts[n - 1], lens[n - 1], false) || !part_ok(tag, tag_len, false))
        return garlic_error_set(err, GARLIC_EINVAL,
                                "'%s' is not a model name ([host/][namespace/]name[:tag], "
                                "letters, digits, '.', '_' and '-')",
                                text);
    memcpy(out->host, host, host_len);
    memcpy(out->ns, ns, ns_len);
    memcpy(out->model, parts[n - 1], lens[n - 1]);
    memcpy(out->tag, tag, tag_len);
    return GARLIC_OK;
}

void store_name_format(const store_name *n, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s/%s/%s:%s", n->host, n->ns, n->model, n->tag);
}

void store_name_display(const store_name *n, char *buf, size_t cap)
{
    if (strcmp(n->host, STORE_DEFAULT_HOST) != 0)
        store_name_format(n, buf, cap);
    else if (strcmp(n->ns, STORE_DEFAULT_NAMESPACE) != 0)
        snprintf(buf, cap, "%s/%s:%s", n->ns, n->model, n->tag);
    else
        snprintf(buf, cap, "%s:%s", n->model, n->tag);
}

bool store_name_is_hub(const store_name *n)
{
    return strcmp(n->host, "hf.co") == 0 || strcmp(n->host, "huggingface.co") == 0;
}

bool store_is_path(const char *text)
{
    size_t len = strlen(text);
    struct stat st;
    return text[0] == '/' || text[0] == '~' || strncmp(text, "./", 2) == 0 ||
        strncmp(text, "../", 3) == 0 || (len > 5 && strcmp(text + len - 5, ".gguf") == 0) ||
        stat(text, &st) == 0;
}

int store_root(char *buf, size_t cap, garlic_error *err)
{
    const char *env = getenv("GARLIC_MODELS"), *xdg = getenv("XDG_CACHE_HOME");
    const char *home = getenv("HOME");
    int n;
    if (env && *env)
        n = snprintf(buf, cap, "%s", env);
    else if (xdg && *xdg)
        n = snprintf(buf, cap, "%s/garlic/models", xdg);
    else if (home && *home)
        n = snprintf(buf, cap, "%s/.cache/garlic/models", home);
    else
        return garlic_error_set(err, GARLIC_EINVAL,
                                "no model store: set GARLIC_MODELS (or HOME or XDG_CACHE_HOME)");
    if (n < 0 || (size_t)n >= cap)
        return garlic_error_set(err, GARLIC_EINVAL, "the model store's path is too long");
    return GARLIC_OK;
}

void store_blob_path(const char *root, const char *digest, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s/blobs/sha256-%s", root, digest);
}

void store_manifest_path(const char *root, const store_name *n, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s/manifests/%s/%s/%s/%s", root, n->host, n->ns, n->model, n->tag);
}

int store_mkdirs(const char *path, garlic_error *err)
{
    char tmp[STORE_PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp)
        return garlic_error_set(err, GARLIC_EINVAL, "%s: path too long", path);
    for (char *p = tmp + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char c = *p;
        *p = '\0';
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
            return garlic_error_set(err, GARLIC_EIO, "%s: cannot create: %s", tmp, strerror(errno));
        if (c == '\0')
            return GARLIC_OK;
        *p = c;
    }
}

// fsyncs the folder holding path, so that a rename into it survives a crash.
static void sync_parent(const char *path)
{
    char dir[STORE_PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        return;
    *slash = '\0';
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

int store_write_atomic(const char *path, const void *data, size_t size, garlic_error *err)
{
    char tmp[STORE_PATH_MAX + 32];
    snprintf(tmp, sizeof tmp, "%s.tmp-%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return garlic_error_set(err, GARLIC_EIO, "%s: cannot create: %s", tmp, strerror(errno));
    const char *p = data;
    size_t left = size;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            int e = errno;
            close(fd);
            unlink(tmp);
            return garlic_error_set(err, GARLIC_EIO, "%s: cannot write: %s", tmp, strerror(e));
        }
        p += w, left -= (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0 || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return garlic_error_set(err, GARLIC_EIO, "%s: cannot write: %s", path, strerror(e));
    }
    sync_parent(path);
    return GARLIC_OK;
}

static bool is_hex_digest(const char *s)
{
    if (strlen(s) != STORE_DIGEST_HEX)
        return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    return true;
}

static const char *json_str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int copy_str(char *dst, size_t cap, const char *src)
{
    if (!src || strlen(src) >= cap)
        return -1;
    memcpy(dst, src, strlen(src) + 1);
    return 0;
}

// Fills m from the manifest JSON text (name set by the caller); -1 when it is malformed.
static int manifest_from_json(const char *text, store_manifest *m)
{
    cJSON *root = cJSON_Parse(text);
    const cJSON *files = cJSON_GetObjectItemCaseSensitive(root, "files");
    const cJSON *modified = cJSON_GetObjectItemCaseSensitive(root, "modified");
    int bad = !cJSON_IsArray(files) || !cJSON_IsNumber(modified) ||
        copy_str(m->format, sizeof m->format, json_str(root, "format")) ||
        copy_str(m->quantization, sizeof m->quantization, json_str(root, "quantization")) ||
        copy_str(m->source, sizeof m->source, json_str(root, "source"));
    m->n_files = 0, m->size = 0;
    const cJSON *f;
    cJSON_ArrayForEach(f, files)
    {
        const cJSON *size = cJSON_GetObjectItemCaseSensitive(f, "size");
        store_file *sf = &m->files[m->n_files];
        if (bad || m->n_files == STORE_FILES_MAX || !cJSON_IsNumber(size) ||
            size->valuedouble < 0 || copy_str(sf->path, sizeof sf->path, json_str(f, "path")) ||
            copy_str(sf->digest, sizeof sf->digest, json_str(f, "digest")) ||
            !is_hex_digest(sf->digest)) {
            bad = 1;
            break;
        }
        sf->size = (uint64_t)size->valuedouble;
        m->size += sf->size;
        m->n_files++;
    }
    if (!bad)
        m->modified = (int64_t)modified->valuedouble;
    cJSON_Delete(root);
    return bad || m->n_files == 0 ? -1 : 0;
}

int store_manifest_read(const char *root, const store_name *name, store_manifest *m,
                        garlic_error *err)
{
    char path[STORE_PATH_MAX], full[STORE_PATH_MAX];
    store_manifest_path(root, name, path, sizeof path);
    store_name_format(name, full, sizeof full);
    memset(m, 0, sizeof *m);
    m->name = *name;
    struct stat st;
    if (stat(path, &st) != 0)
        return garlic_error_set(err, GARLIC_ENOTFOUND,
                                "'%s' is neither a file nor a model in the store (%s); "
                                "`garlic pull` it, or `garlic list` the store",
                                full, root);
    char *text = NULL;
    int rc = garlic_file_read(path, MANIFEST_MAX, &text, NULL, err);
    if (rc)
        return rc;
    rc = manifest_from_json(text, m);
    garlic_free(text);
    if (rc)
        return garlic_error_set(err, GARLIC_EFORMAT, "%s: not a garlic manifest", path);
    return GARLIC_OK;
}

int store_manifest_write(const char *root, const store_manifest *m, garlic_error *err)
{
    for (size_t i = 0; i < m->n_files; i++) {
        char blob[STORE_PATH_MAX];
        struct stat st;
        store_blob_path(root, m->files[i].digest, blob, sizeof blob);
        if (stat(blob, &st) != 0 || (uint64_t)st.st_size != m->files[i].size)
            return garlic_error_set(err, GARLIC_EIO, "%s: missing or not %llu bytes", blob,
                                    (unsigned long long)m->files[i].size);
    }
    cJSON *o = cJSON_CreateObject(), *files = cJSON_AddArrayToObject(o, "files");
    cJSON_AddNumberToObject(o, "schema", 1);
    cJSON_AddStringToObject(o, "format", m->format);
    cJSON_AddStringToObject(o, "quantization", m->quantization);
    cJSON_AddStringToObject(o, "source", m->source);
    cJSON_AddNumberToObject(o, "modified", (double)m->modified);
    cJSON_AddNumberToObject(o, "size", (double)m->size);
    for (size_t i = 0; i < m->n_files; i++) {
        cJSON *f = cJSON_CreateObject();
        cJSON_AddStringToObject(f, "path", m->files[i].path);
        cJSON_AddStringToObject(f, "digest", m->files[i].digest);
        cJSON_AddNumberToObject(f, "size", (double)m->files[i].size);
        cJSON_AddItemToArray(files, f);
    }
    char *text = cJSON_Print(o);
    cJSON_Delete(o);
    if (!text)
        return garlic_error_set(err, GARLIC_ENOMEM, "out of memory writing a manifest");
    char path[STORE_PATH_MAX];
    store_manifest_path(root, &m->name, path, sizeof path);
    char dir[STORE_PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    *strrchr(dir, '/') = '\0';
    int rc = store_mkdirs(dir, err);
    if (!rc)
        rc = store_write_atomic(path, text, strlen(text), err);
    cJSON_free(text);
    return rc;
}

typedef struct manifest_list {
    store_manifest *items;
    size_t n, cap;
} manifest_list;

// Adds the manifest at root/manifests/host/ns/model/tag; skips (with a warning) a damaged one.
static int list_add(const char *root, const char *parts[4], manifest_list *l, garlic_error *err)
{
    store_name name = {0};
    if (copy_str(name.host, sizeof name.host, parts[0]) ||
        copy_str(name.ns, sizeof name.ns, parts[1]) ||
        copy_str(name.model, sizeof name.model, parts[2]) ||
        copy_str(name.tag, sizeof name.tag, parts[3]) || strstr(name.tag, ".tmp-"))
        return GARLIC_OK;
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 8;
        store_manifest *items = garlic_realloc(l->items, cap * sizeof *items);
        if (!items)
            return garlic_error_set(err, GARLIC_ENOMEM, "out of memory listing %s", root);
        l->items = items, l->cap = cap;
    }
    garlic_error e;
    if (store_manifest_read(root, &name, &l->items[l->n], &e) == GARLIC_OK)
        l->n++;
    else
        fprintf(stderr, "garlic: warning: %s\n", e.message);
    return GARLIC_OK;
}

// Walks the four levels under manifests/ (depth 0..3), adding each leaf file.
static int list_walk(const char *root, const char *dir, int depth, const char *parts[4],
                     manifest_list *l, garlic_error *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return GARLIC_OK;
    int rc = GARLIC_OK;
    struct dirent *e;
    while (rc == GARLIC_OK && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char sub[STORE_PATH_MAX];
        if (snprintf(sub, sizeof sub, "%s/%s", dir, e->d_name) >= (int)sizeof sub)
            continue;
        parts[depth] = e->d_name;
        rc = depth == 3 ? list_add(root, parts, l, err)
                        : list_walk(root, sub, depth + 1, parts, l, err);
    }
    closedir(d);
    return rc;
}

static int newest_first(const void *a, const void *b)
{
    const store_manifest *x = a, *y = b;
    return (x->modified < y->modified) - (x->modified > y->modified);
}

int store_list(const char *root, store_manifest **out, size_t *n, garlic_error *err)
{
    manifest_list l = {0};
    char dir[STORE_PATH_MAX];
    snprintf(dir, sizeof dir, "%s/manifests", root);
    const char *parts[4];
    int rc = list_walk(root, dir, 0, parts, &l, err);
    if (rc) {
        garlic_free(l.items);
        return rc;
    }
    if (l.n)
        qsort(l.items, l.n, sizeof *l.items, newest_first);
    if (l.n && l.n < l.cap) { // a manifest is about 170 KiB: give back what doubling left over
        store_manifest *items = garlic_realloc(l.items, l.n * sizeof *items);
        l.items = items ? items : l.items;
    }
    *out = l.items, *n = l.n;
    return GARLIC_OK;
}

// Whether a pull holds the blob's lock (it is writing the manifest that will name the blob).
static bool blob_locked(const char *root, const char *digest)
{
    char lock[STORE_PATH_MAX + 400];
    snprintf(lock, sizeof lock, "%s/locks/sha256-%s.lock", root, digest);
    int fd = open(lock, O_RDONLY);
    if (fd < 0)
        return false;
    bool held = flock(fd, LOCK_EX | LOCK_NB) != 0;
    close(fd);
    return held;
}

static bool folder_key(const store_manifest *m, char key[STORE_DIGEST_HEX + 1]);
static void remove_flat_dir(const char *dir);

// Removes each directory of links in folders/ that none of the n manifests all needs, and
// temporary ones over an hour old (left by a crash).
static void collect_folders(const char *root, const store_manifest *all, size_t n)
{
    char dir[STORE_PATH_MAX];
    snprintf(dir, sizeof dir, "%s/folders", root);
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        char path[STORE_PATH_MAX + 300];
        struct stat st;
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path)
            continue;
        if (e->d_name[0] == '.') {
            if (strncmp(e->d_name, ".tmp-", 5) == 0 && lstat(path, &st) == 0 &&
                st.st_mtime < time(NULL) - 3600)
                remove_flat_dir(path);
            continue;
        }
        bool used = false;
        for (size_t i = 0; i < n && !used; i++) {
            char key[STORE_DIGEST_HEX + 1];
            if (strcmp(all[i].format, "folder") != 0)
                continue;
            // A key that cannot be computed keeps every folder.
            used = !folder_key(&all[i], key) || strcmp(key, e->d_name) == 0;
        }
        if (!used)
            remove_flat_dir(path);
    }
    if (d)
        closedir(d);
}

// Removes each blob in blobs/ that no manifest names (and stale lock files beside them).
static int collect_garbage(const char *root, garlic_error *err)
{
    store_manifest *all;
    size_t n;
    int rc = store_list(root, &all, &n, err);
    if (rc)
        return rc;
    char dir[STORE_PATH_MAX];
    snprintf(dir, sizeof dir, "%s/blobs", root);
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (strncmp(e->d_name, "sha256-", 7) != 0 || !is_hex_digest(e->d_name + 7))
            continue;
        bool used = false;
        for (size_t i = 0; i < n && !used; i++)
            for (size_t j = 0; j < all[i].n_files && !used; j++)
                used = strcmp(all[i].files[j].digest, e->d_name + 7) == 0;
        char path[STORE_PATH_MAX + 300];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (!used && !blob_locked(root, e->d_name + 7) && unlink(path) != 0)
            fprintf(stderr, "garlic: warning: cannot remove %s: %s\n", path, strerror(errno));
    }
    if (d)
        closedir(d);
    collect_folders(root, all, n);
    garlic_free(all);
    return GARLIC_OK;
}

int store_collect_garbage(const char *root, garlic_error *err)
{
    return collect_garbage(root, err);
}

int store_remove(const char *root, const char *text, garlic_error *err)
{
    store_name name;
    store_manifest *m = garlic_malloc(sizeof *m); // too big for a server thread's stack
    int rc = m ? store_name_parse(text, &name, err)
               : garlic_error_set(err, GARLIC_ENOMEM, "out of memory");
    if (!rc)
        rc = store_manifest_read(root, &name, m, err);
    garlic_free(m);
    if (rc)
        return rc;
    char path[STORE_PATH_MAX];
    store_manifest_path(root, &name, path, sizeof path);
    if (unlink(path) != 0)
        return garlic_error_set(err, GARLIC_EIO, "%s: cannot remove: %s", path, strerror(errno));
    sync_parent(path);
    return collect_garbage(root, err);
}

int store_copy(const char *root, const char *src, const char *dst, garlic_error *err)
{
    store_name from, to;
    int rc = store_name_parse(src, &from, err);
    if (!rc)
        rc = store_name_parse(dst, &to, err);
    store_manifest *m = garlic_malloc(sizeof *m);
    if (!m)
        return garlic_error_set(err, GARLIC_ENOMEM, "out of memory");
    if (!rc)
        rc = store_manifest_read(root, &from, m, err);
    if (!rc) {
        m->name = to;
        m->modified = (int64_t)time(NULL);
        rc = store_manifest_write(root, m, err);
    }
    garlic_free(m);
    return rc;
}

// Whether a manifest file is one of the extras a Modelfile adds, not part of the weights.
static bool extra_file(const char *path)
{
    static const char *const extras[] = {"template", "system", "params", "license"};
    for (size_t i = 0; i < sizeof extras / sizeof extras[0]; i++)
        if (strcmp(path, extras[i]) == 0)
            return true;
    return false;
}

const store_file *store_manifest_weights(const store_manifest *m)
{
    for (size_t i = 0; i < m->n_files; i++)
        if (!extra_file(m->files[i].path))
            return &m->files[i];
    return NULL;
}

// The name of a folder model's directory of links: the sha256 of its files' "path digest"
// lines, so that two names for the same files share one. False when libcrypto fails.
static bool folder_key(const store_manifest *m, char key[STORE_DIGEST_HEX + 1])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char md[32];
    bool ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    for (size_t i = 0; ok && i < m->n_files; i++) {
        if (extra_file(m->files[i].path))
            continue;
        EVP_DigestUpdate(ctx, m->files[i].path, strlen(m->files[i].path));
        EVP_DigestUpdate(ctx, " ", 1);
        EVP_DigestUpdate(ctx, m->files[i].digest, STORE_DIGEST_HEX);
        EVP_DigestUpdate(ctx, "\n", 1);
    }
    ok = ok && EVP_DigestFinal_ex(ctx, md, NULL);
    EVP_MD_CTX_free(ctx);
    for (int i = 0; ok && i < 32; i++)
        snprintf(key + 2 * i, 3, "%02x", md[i]);
    return ok;
}

// Removes a directory of links (or of anything flat) and the directory.
static void remove_flat_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        char path[STORE_PATH_MAX + 300];
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0 &&
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name) < (int)sizeof path)
            unlink(path);
    }
    if (d)
        closedir(d);
    rmdir(dir);
}

// Makes root/folders/<key> hold a symlink per file of m to its blob, unless it exists; the
// links are made in a temporary directory renamed into place, so a folder seen is complete.
static int folder_materialize(const char *root, const store_manifest *m, char *buf, size_t cap,
                              garlic_error *err)
{
    char key[STORE_DIGEST_HEX + 1], parent[STORE_PATH_MAX + 16], dir[STORE_PATH_MAX + 96];
    if (!folder_key(m, key))
        return garlic_error_set(err, GARLIC_ENOMEM, "cannot start a SHA-256");
    snprintf(parent, sizeof parent, "%s/folders", root);
    snprintf(dir, sizeof dir, "%s/%s", parent, key);
    if ((size_t)snprintf(buf, cap, "%s", dir) >= cap)
        return garlic_error_set(err, GARLIC_EINVAL, "%s: path too long", dir);
    struct stat st;
    if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
        return GARLIC_OK;
    int rc = store_mkdirs(parent, err);
    if (rc)
        return rc;
    char tmp[STORE_PATH_MAX + 32];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s/.tmp-XXXXXX", parent) >= sizeof tmp)
        return garlic_error_set(err, GARLIC_EINVAL, "%s: path too long", parent);
    if (!mkdtemp(tmp) || chmod(tmp, 0755) != 0) // readable by all, as the blobs are
        return garlic_error_set(err, GARLIC_EIO, "%s: cannot create: %s", tmp, strerror(errno));
    for (size_t i = 0; i < m->n_files && !rc; i++) {
        const store_file *f = &m->files[i];
        char link[STORE_PATH_MAX + 300], target[STORE_DIGEST_HEX + 32];
        if (extra_file(f->path))
            continue;
        if (strchr(f->path, '/') || f->path[0] == '.')
            rc = garlic_error_set(err, GARLIC_EFORMAT, "model '%s': file name '%s' is not plain",
                                  m->name.model, f->path);
        snprintf(link, sizeof link, "%s/%s", tmp, f->path);
        snprintf(target, sizeof target, "../../blobs/sha256-%s", f->digest);
        if (!rc && symlink(target, link) != 0)
            rc = garlic_error_set(err, GARLIC_EIO, "%s: cannot link: %s", link, strerror(errno));
    }
    if (!rc && rename(tmp, dir) != 0 && errno != ENOTEMPTY && errno != EEXIST)
        rc = garlic_error_set(err, GARLIC_EIO, "%s: cannot rename to %s: %s", tmp, dir,
                              strerror(errno));
    else if (!rc && access(tmp, F_OK) != 0)
        sync_parent(dir);       // ours is in place
    if (access(tmp, F_OK) == 0) // a failure, or another resolve made it first
        remove_flat_dir(tmp);
    return rc;
}

int store_resolve(const char *text, char *buf, size_t cap, garlic_error *err)
{
    if (store_is_path(text)) {
        if ((size_t)snprintf(buf, cap, "%s", text) >= cap)
            return garlic_error_set(err, GARLIC_EINVAL, "%s: path too long", text);
        return GARLIC_OK;
    }
    char root[STORE_PATH_MAX];
    store_name name;
    int rc = store_root(root, sizeof root, err);
    if (!rc)
        rc = store_name_parse(text, &name, err);
    store_manifest *m = rc ? NULL : garlic_malloc(sizeof *m);
    if (!rc && !m)
        rc = garlic_error_set(err, GARLIC_ENOMEM, "out of memory");
    if (!rc)
        rc = store_manifest_read(root, &name, m, err);
    const store_file *weights = rc ? NULL : store_manifest_weights(m);
    if (!rc && strcmp(m->format, "folder") == 0)
        rc = folder_materialize(root, m, buf, cap, err);
    else if (!rc && strcmp(m->format, "gguf") != 0)
        rc = garlic_error_set(err, GARLIC_EUNSUPPORTED, "model '%s' is a %s, not a GGUF file", text,
                              m->format);
    else if (!rc && !weights)
        rc = garlic_error_set(err, GARLIC_EFORMAT, "model '%s': its manifest names no weights",
                              text);
    else if (!rc)
        store_blob_path(root, weights->digest, buf, cap);
    garlic_free(m);
    return rc;
}

int store_sha256_file(const char *path, char hex[STORE_DIGEST_HEX + 1], garlic_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return garlic_error_set(err, GARLIC_EIO, "%s: cannot open: %s", path, strerror(errno));
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)) {
        fclose(f);
        EVP_MD_CTX_free(ctx);
        return garlic_error_set(err, GARLIC_ENOMEM, "cannot start a SHA-256");
    }
    static unsigned char chunk[1 << 16];
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk, f)) > 0)
        EVP_DigestUpdate(ctx, chunk, got);
    int bad = ferror(f);
    fclose(f);
    unsigned char md[32];
    EVP_DigestFinal_ex(ctx, md, NULL);
    EVP_MD_CTX_free(ctx);
    if (bad)
        return garlic_error_set(err, GARLIC_EIO, "%s: read error", path);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    return GARLIC_OK;
}
