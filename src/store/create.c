// SPDX-License-Identifier: MIT
// Models made here, as `ollama create` makes them: a Modelfile (FROM, PARAMETER, SYSTEM,
// TEMPLATE, LICENSE) parsed into a store_create_request, and store_create, which copies a GGUF
// file or a Hugging Face folder into blobs/ (or takes the blobs of a stored model), writes the
// extras (template, system, params, license) as blobs of their own and the manifest last.
// The extras are listed in the manifest after the weights, under the paths "template",
// "system", "params" and "license"; store_extras_read reads them back.
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/file.h"
#include "gguf/gguf.h"
#include "model/quantize.h"
#include "sampler/sampler.h"
#include "store/internal.h"
#include "store/store.h"
#include "tensor/types.h"

enum {
    EXTRA_MAX = 1 << 20, // bytes of one extra (a template, a system message, a licence)
    MODELFILE_MAX = 4 << 20,
};

static const char *const extra_paths[] = {"template", "system", "params", "license"};
enum { N_EXTRAS = sizeof extra_paths / sizeof extra_paths[0] };

static bool is_extra_path(const char *path)
{
    for (size_t i = 0; i < N_EXTRAS; i++)
        if (strcmp(path, extra_paths[i]) == 0)
            return true;
    return false;
}

// ---- parameters: the options of Ollama's "options" that garlic honours ----

typedef enum param_kind {
    PARAM_KIND_INTEGER,
    PARAM_KIND_NUMBER,
    PARAM_KIND_STOP, // a string or a list of strings
    PARAM_KIND_COUNT
} param_kind;

// The ranges are those src/api/request.c accepts in a request's "options".
static const struct param_spec {
    const char *name;
    param_kind kind;
    double lo, hi;
} params[] = {
    {"temperature", PARAM_KIND_NUMBER, 0, 100},
    {"top_p", PARAM_KIND_NUMBER, 0, 1},
    {"top_k", PARAM_KIND_INTEGER, 0, INT32_MAX},
    {"min_p", PARAM_KIND_NUMBER, 0, 1},
    {"repeat_penalty", PARAM_KIND_NUMBER, 0.0001, 100},
    {"repeat_last_n", PARAM_KIND_INTEGER, -1, SAMPLER_MAX_REPEAT_LAST_N},
    {"presence_penalty", PARAM_KIND_NUMBER, -2, 2},
    {"frequency_penalty", PARAM_KIND_NUMBER, -2, 2},
    {"seed", PARAM_KIND_INTEGER, -9.3e18, 1.8e19},
    {"stop", PARAM_KIND_STOP, 0, 0},
    {"num_predict", PARAM_KIND_INTEGER, -2, 1 << 24},
    {"num_ctx", PARAM_KIND_INTEGER, 0, 1 << 24},
};
enum { N_PARAMS = sizeof params / sizeof params[0] };

static const char param_list[] = "temperature, top_p, top_k, min_p, repeat_penalty, "
                                 "repeat_last_n, presence_penalty, frequency_penalty, seed, "
                                 "stop, num_predict, num_ctx";

static const struct param_spec *param_find(const char *name)
{
    for (size_t i = 0; i < N_PARAMS; i++)
        if (strcmp(params[i].name, name) == 0)
            return &params[i];
    return NULL;
}

// Checks one value v of the parameter spec; where (e.g. "line 3: ") starts the message.
static int param_value_check(const struct param_spec *spec, const cJSON *v, const char *where,
                             garlic_error *err)
{
    if (spec->kind == PARAM_KIND_STOP) {
        bool list = cJSON_IsArray(v);
        if (!list && !cJSON_IsString(v))
            return garlic_error_set(err, GARLIC_EFORMAT,
                                    "%sparameter 'stop' must be a string or a list of strings",
                                    where);
        int n = list ? cJSON_GetArraySize(v) : 1;
        if (n > SAMPLER_STOP_MAX_STRINGS)
            return garlic_error_set(err, GARLIC_EFORMAT,
                                    "%sparameter 'stop' has %d strings, at most %d are allowed",
                                    where, n, SAMPLER_STOP_MAX_STRINGS);
        for (const cJSON *s = list ? v->child : v; s; s = list ? s->next : NULL) {
            if (!cJSON_IsString(s))
                return garlic_error_set(err, GARLIC_EFORMAT,
                                        "%sparameter 'stop' must be a string or a list of "
                                        "strings",
                                        where);
            if (strlen(s->valuestring) > SAMPLER_STOP_MAX_LENGTH)
                return garlic_error_set(err, GARLIC_EFORMAT,
                                        "%sparameter 'stop': a string of more than %d bytes", where,
                                        SAMPLER_STOP_MAX_LENGTH);
        }
        return GARLIC_OK;
    }
    bool integral = spec->kind == PARAM_KIND_INTEGER;
    if (!cJSON_IsNumber(v))
        return garlic_error_set(err, GARLIC_EFORMAT, "%sparameter '%s' must be %s", where,
                                spec->name, integral ? "an integer" : "a number");
    double x = v->valuedouble;
    if (integral && x != floor(x))
        return garlic_error_set(err, GARLIC_EFORMAT, "%sparameter '%s' must be an integer, not %g",
                                where, spec->name, x);
    if (!(x >= spec->lo && x <= spec->hi))
        return garlic_error_set(err, GARLIC_EFORMAT,
                                "%sparameter '%s' is %g, must be from %g to %g", where, spec->name,
                                x, spec->lo, spec->hi);
    return GARLIC_OK;
}

static int params_object_check(const cJSON *o, garlic_error *err)
{
    if (!cJSON_IsObject(o))
        return garlic_error_set(err, GARLIC_EFORMAT, "parameters must be a JSON object");
    for (const cJSON *item = o->child; item; item = item->next) {
        const struct param_spec *spec = param_find(item->string);
        if (!spec)
            return garlic_error_set(err, GARLIC_EFORMAT,
                                    "parameter '%.64s' is not an option garlic honours (%s)",
                                    item->string, param_list);
        int rc = param_value_check(spec, item, "", err);
        if (rc)
            return rc;
    }
    return GARLIC_OK;
}

int store_params_check(const char *json, garlic_error *err)
{
    cJSON *o = json ? cJSON_Parse(json) : NULL;
    if (!o)
        return garlic_error_set(err, GARLIC_EFORMAT, "parameters are not valid JSON");
    int rc = params_object_check(o, err);
    cJSON_Delete(o);
    return rc;
}

// ---- the Modelfile ----

// A read position in the Modelfile text, and the line it is on (from 1).
typedef struct cursor {
    const char *p, *end;
    size_t line;
} cursor;

static bool at_blank(const cursor *c) { return c->p < c->end && (*c->p == ' ' || *c->p == '\t'); }

static void skip_blanks(cursor *c)
{
    while (at_blank(c))
        c->p++;
}

static bool at_line_end(const cursor *c)
{
    return c->p == c->end || *c->p == '\n' ||
        (*c->p == '\r' && c->p + 1 < c->end && c->p[1] == '\n');
}

// Moves past the end of the current line.
static void next_line(cursor *c)
{
    while (c->p < c->end && *c->p != '\n')
        c->p++;
    if (c->p < c->end) {
        c->p++;
        c->line++;
    }
}

// A word: the bytes up to a blank or the end of the line.
static size_t word(cursor *c, const char **start)
{
    *start = c->p;
    while (c->p < c->end && !at_blank(c) && !at_line_end(c))
        c->p++;
    return (size_t)(c->p - *start);
}

// After a quoted value only blanks (or a comment) may follow on its line.
static int line_rest_empty(cursor *c, const char *what, garlic_error *err)
{
    skip_blanks(c);
    if (!at_line_end(c) && *c->p != '#')
        return garlic_error_set(err, GARLIC_EFORMAT, "line %zu: unexpected text after the %s",
                                c->line, what);
    next_line(c);
    return GARLIC_OK;
}

// Ends a quoted value: the rest of its line must be empty; *out is freed when it is not.
static int value_end(cursor *c, const char *what, char **out, garlic_error *err)
{
    int rc = line_rest_empty(c, what, err);
    if (rc) {
        garlic_free(*out);
        *out = NULL;
    }
    return rc;
}

// Reads an instruction's value: """text over lines""", "a quoted string" (\" and \\ escaped)
// or the rest of the line without its trailing blanks. *out is garlic_malloc'd.
static int read_value(cursor *c, const char *instruction, char **out, garlic_error *err)
{
    skip_blanks(c);
    size_t line = c->line;
    if (c->end - c->p >= 3 && memcmp(c->p, "\"\"\"", 3) == 0) {
        const char *start = c->p + 3, *q = start;
        while (q + 3 <= c->end && memcmp(q, "\"\"\"", 3) != 0)
            q++;
        if (q + 3 > c->end)
            return garlic_error_set(err, GARLIC_EFORMAT,
                                    "line %zu: %s: the \"\"\" opened here is never closed", line,
                                    instruction);
        for (const char *s = start; s < q; s++)
            c->line += *s == '\n';
        *out = garlic_strndup(start, (size_t)(q - start));
        c->p = q + 3;
        if (!*out)
            return garlic_error_set(err, GARLIC_ENOMEM, "out of memory reading a Modelfile");
        return value_end(c, "closing \"\"\"", out, err);
    }
    if (c->p < c->end && *c->p == '"') {
        c->p++;
        const char *eol = memchr(c->p, '\n', (size_t)(c->end - c->p));
        char *buf = garlic_malloc((size_t)((eol ? eol : c->end) - c->p) + 1);
        if (!buf)
            return garlic_error_set(err, GARLIC_ENOMEM, "out of memory reading a Modelfile");
        size_t n = 0;
        while (!at_line_end(c) && *c->p != '"') {
            if (*c->p == '\\' && c->p + 1 < c->end && (c->p[1] == '"' || c->p[1] == '\\'))
                c->p++;
            buf[n++] = *c->p++;
        }
        if (at_line_end(c)) {
            garlic_free(buf);
            return garlic_error_set(err, GARLIC_EFORMAT,
                                    "line %zu: %s: the quoted value is never closed", line,
                                    instruction);
        }
        buf[n] = '\0';
        c->p++;
        *out = buf;
        return value_end(c, "closing quote", out, err);
    }
    const char *start = c->p;
    while (!at_line_end(c))
        c->p++;
    const char *stop = c->p;
    while (stop > start && (stop[-1] == ' ' || stop[-1] == '\t' || stop[-1] == '\r'))
        stop--;
    next_line(c);
    if (stop == start)
        return garlic_error_set(err, GARLIC_EFORMAT, "line %zu: %s needs a value", line,
                                instruction);
    *out = garlic_strndup(start, (size_t)(stop - start));
    return *out ? GARLIC_OK : garlic_error_set(err, GARLIC_ENOMEM, "out of memory");
}

// Adds PARAMETER name = text to params (stop values accumulate into a list), checking its
// name and type. line names the Modelfile line in errors.
static int add_param(cJSON *params_obj, const char *name, const char *text, size_t line,
                     garlic_error *err)
{
    char where[48];
    snprintf(where, sizeof where, "line %zu: ", line);
    const struct param_spec *spec = param_find(name);
    if (!spec)
        return garlic_error_set(err, GARLIC_EFORMAT,
                                "line %zu: PARAMETER '%.64s' is not an option garlic honours (%s)",
                                line, name, param_list);
    cJSON *v;
    if (spec->kind == PARAM_KIND_STOP) {
        cJSON *list = cJSON_GetObjectItemCaseSensitive(params_obj, "stop");
        if (!list && !(list = cJSON_AddArrayToObject(params_obj, "stop")))
            return garlic_error_set(err, GARLIC_ENOMEM, "out of memory");
        cJSON *s = cJSON_CreateString(text);
        if (!s || !cJSON_AddItemToArray(list, s)) {
            cJSON_Delete(s);
            return garlic_error_set(err, GARLIC_ENOMEM, "out of memory");
        }
        return param_value_check(spec, list, where, err);
    }
    char *end;
    errno = 0;
    double x = strtod(text, &end);
    if (end == text || *end || errno == ERANGE || !isfinite(x))
        return garlic_error_set(err, GARLIC_EFORMAT, "line %zu: PARAMETER %s: '%.64s' is not %s",
                                line, name, text,
                                spec->kind == PARAM_KIND_INTEGER ? "an integer" : "a number");
    cJSON_DeleteItemFromObjectCaseSensitive(params_obj, name); // a later line wins
    if (!(v = cJSON_AddNumberToObject(params_obj, name, x)))
        return garlic_error_set(err, GARLIC_ENOMEM, "out of memory");
    return param_value_check(spec, v, where, err);
}

// Whether the FROM value names a file or folder (else a stored model): as store_is_path,
// but "exists" is judged against base_dir.
static bool from_is_path(const char *from, const char *base_dir)
{
    size_t len = strlen(from);
    if (from[0] == '/' || from[0] == '~' || strncmp(from, "./", 2) == 0 ||
        strncmp(from, "../", 3) == 0 || strcmp(from, ".") == 0 || strcmp(from, "..") == 0 ||
        (len > 5 && strcasecmp(from + len - 5, ".gguf") == 0))
        return true;
    char path[STORE_PATH_MAX];
    struct stat st;
    return snprintf(path, sizeof path, "%s/%s", base_dir, from) < (int)sizeof path &&
        stat(path, &st) == 0;
}

// "~/x" with $HOME's value, else path; into buf. Fails when the result does not fit.
static int expand_home(const char *path, char *buf, size_t cap, garlic_error *err)
{
    const char *home = getenv("HOME");
    int n = strncmp(path, "~/", 2) == 0 && home && *home
        ? snprintf(buf, cap, "%s%s", home, path + 1)
        : snprintf(buf, cap, "%s", path);
    if (n < 0 || (size_t)n >= cap)
        return garlic_error_set(err, GARLIC_EINVAL, "%.200s: path too long", path);
    return GARLIC_OK;
}

// Makes the FROM path absolute: "~/" expanded, a relative path put under base_dir (itself
// under the working directory when relative), then canonical when it exists.
static int absolute_from(const char *from, const char *base_dir, char **out, garlic_error *err)
{
    char path[STORE_PATH_MAX], joined[STORE_PATH_MAX], cwd[STORE_PATH_MAX];
    int rc = expand_home(from, path, sizeof path, err);
    if (rc)
        return rc;
    if (path[0] != '/') {
        if (!base_dir || base_dir[0] != '/') {
            if (!getcwd(cwd, sizeof cwd))
                return garlic_error_set(err, GARLIC_EIO, "cannot read the working directory: %s",
                                        strerror(errno));
            if (base_dir && *base_dir) {
                size_t n = strlen(cwd);
                snprintf(cwd + n, sizeof cwd - n, "/%s", base_dir);
            }
            base_dir = cwd;
        }
        const char *rel = path;
        while (rel[0] == '.' && rel[1] == '/')
            rel += 2;
        if (snprintf(joined, sizeof joined, "%s/%s", base_dir, rel) >= (int)sizeof joined)
            return garlic_error_set(err, GARLIC_EINVAL, "%.200s: path too long", from);
        memcpy(path, joined, sizeof path);
    }
    char *real = realpath(path, NULL); // malloc'd by libc
    *out = garlic_strndup(real ? real : path, STORE_PATH_MAX);
    free(real);
    return *out ? GARLIC_OK : garlic_error_set(err, GARLIC_ENOMEM, "out of memory");
}

// The instructions of Ollama's Modelfile that garlic does not take.
static const char *const unsupported[] = {"ADAPTER", "MESSAGE", "REQUIRES", "RENDERER", "PARSER"};

// Parses one instruction at c (a non-blank, non-comment line) into m and params_obj.
static int parse_instruction(cursor *c, const char *base_dir, store_modelfile *m, cJSON *params_obj,
                             garlic_error *err)
{
    const char *w;
    size_t n = word(c, &w), line = c->line;
    char name[16];
    snprintf(name, sizeof name, "%.*s", (int)(n < 15 ? n : 15), w);
    for (char *s = name; *s; s++)
        *s = (char)(*s >= 'a' && *s <= 'z' ? *s - 'a' + 'A' : *s);
    char **slot = NULL;
    if (n == 4 && strcmp(name, "FROM") == 0)
        slot = &m->from;
    else if (n == 6 && strcmp(name, "SYSTEM") == 0)
        slot = &m->system;
    else if (n == 8 && strcmp(name, "TEMPLATE") == 0)
        slot = &m->template_text;
    else if (n == 7 && strcmp(name, "LICENSE") == 0)
        slot = &m->license;
    if (slot) {
        char *value = NULL;
        int rc = read_value(c, name, &value, err);
        if (rc)
            return rc;
        if (slot == &m->from && *slot)
            rc = garlic_error_set(err, GARLIC_EFORMAT, "line %zu: a second FROM", line);
        if (!rc && slot == &m->from && from_is_path(value, base_dir ? base_dir : ".")) {
            char *abs = NULL;
            rc = absolute_from(value, base_dir, &abs, err);
            garlic_free(value);
            value = abs;
        }
        if (rc) {
            garlic_free(value);
            return rc;
        }
        garlic_free(*slot); // a later SYSTEM, TEMPLATE or LICENSE replaces an earlier one
        *slot = value;
        return GARLIC_OK;
    }
    if (n == 9 && strcmp(name, "PARAMETER") == 0) {
        skip_blanks(c);
        const char *key;
        size_t key_len = word(c, &key);
        if (key_len == 0)
            return garlic_error_set(err, GARLIC_EFORMAT,
                                    "line %zu: PARAMETER needs a name and a value", line);
        char key_text[80];
        snprintf(key_text, sizeof key_text, "%.*s", (int)(key_len < 79 ? key_len : 79), key);
        char *value = NULL;
        int rc = read_value(c, "PARAMETER", &value, err);
        if (!rc)
            rc = add_param(params_obj, key_text, value, line, err);
        garlic_free(value);
        return rc;
    }
    for (size_t i = 0; i < sizeof unsupported / sizeof unsupported[0]; i++)
        if (strcmp(name, unsupported[i]) == 0 && strlen(unsupported[i]) == n)
            return garlic_error_set(err, GARLIC_EUNSUPPORTED,
                                    "line %zu: %s is not supported by garlic", line,
                                    unsupported[i]);
    return garlic_error_set(err, GARLIC_EFORMAT,
                            "line %zu: unknown instruction '%.*s' (FROM, PARAMETER, SYSTEM, "
                            "TEMPLATE or LICENSE)",
                            line, (int)(n < 40 ? n : 40), w);
}

int store_modelfile_parse(const char *text, size_t len, const char *base_dir, store_modelfile *out,
                          garlic_error *err)
{
    memset(out, 0, sizeof *out);
    const char *nul = memchr(text, '\0', len);
    if (nul) {
        size_t line = 1;
        for (const char *s = text; s < nul; s++)
            line += *s == '\n';
        return garlic_error_set(err, GARLIC_EFORMAT, "line %zu: a NUL byte", line);
    }
    cJSON *params_obj = cJSON_CreateObject();
    if (!params_obj)
        return garlic_error_set(err, GARLIC_ENOMEM, "out of memory");
    cursor c = {text, text + len, 1};
    int rc = GARLIC_OK;
    while (!rc && c.p < c.end) {
        skip_blanks(&c);
        if (at_line_end(&c) || *c.p == '#' || *c.p == '\r')
            next_line(&c);
        else
            rc = parse_instruction(&c, base_dir, out, params_obj, err);
    }
    if (!rc && !out->from)
        rc = garlic_error_set(err, GARLIC_EFORMAT,
                              "no FROM line: a Modelfile names the model it starts from");
    if (!rc && params_obj->child) {
        char *json = cJSON_PrintUnformatted(params_obj);
        out->params_json = json ? garlic_strndup(json, SIZE_MAX) : NULL;
        cJSON_free(json);
        if (!out->params_json)
            rc = garlic_error_set(err, GARLIC_ENOMEM, "out of memory");
    }
    cJSON_Delete(params_obj);
    if (rc)
        store_modelfile_deinit(out);
    return rc;
}

void store_modelfile_deinit(store_modelfile *m)
{
    garlic_free(m->from);
    garlic_free(m->template_text);
    garlic_free(m->system);
    garlic_free(m->license);
    garlic_free(m->params_json);
    memset(m, 0, sizeof *m);
}

// ---- extras ----

int store_extras_read(const char *root, const store_manifest *m, store_extras *out,
                      garlic_error *err)
{
    memset(out, 0, sizeof *out);
    char **slots[N_EXTRAS] = {&out->template_text, &out->system, &out->params_json, &out->license};
    for (size_t i = 0; i < m->n_files; i++)
        for (size_t k = 0; k < N_EXTRAS; k++) {
            if (strcmp(m->files[i].path, extra_paths[k]) != 0)
                continue;
            char blob[STORE_PATH_MAX];
            store_blob_path(root, m->files[i].digest, blob, sizeof blob);
            garlic_free(*slots[k]);
            *slots[k] = NULL;
            int rc = garlic_file_read(blob, EXTRA_MAX, slots[k], NULL, err);
            if (rc) {
                store_extras_deinit(out);
                return rc;
            }
        }
    return GARLIC_OK;
}

void store_extras_deinit(store_extras *e)
{
    garlic_free(e->template_text);
    garlic_free(e->system);
    garlic_free(e->params_json);
    garlic_free(e->license);
    memset(e, 0, sizeof *e);
}

// ---- blobs ----

// The blob locks a create holds (shared flocks of locks/sha256-<hex>.lock) from the moment it
// knows a blob until its manifest is written, so that a concurrent `garlic rm` does not
// collect a blob that no manifest names yet.
typedef struct lock_set {
    int fds[STORE_FILES_MAX];
    size_t n;
} lock_set;

static int lock_blob(const char *root, const char *digest, lock_set *locks, garlic_error *err)
{
    char path[STORE_PATH_MAX + 100];
    snprintf(path, sizeof path, "%s/locks/sha256-%s.lock", root, digest);
    if (locks->n == STORE_FILES_MAX)
        return garlic_error_set(err, GARLIC_EINVAL, "a model of more than %d files",
                                STORE_FILES_MAX);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return garlic_error_set(err, GARLIC_EIO, "%s: cannot create: %s", path, strerror(errno));
    if (flock(fd, LOCK_SH) != 0) {
        int e = errno;
        close(fd);
        return garlic_error_set(err, GARLIC_EIO, "%s: flock: %s", path, strerror(e));
    }
    locks->fds[locks->n++] = fd;
    return GARLIC_OK;
}

static void unlock_all(lock_set *locks)
{
    for (size_t i = 0; i < locks->n; i++)
        close(locks->fds[i]);
    locks->n = 0;
}

static bool blob_present(const char *root, const char *digest, uint64_t size)
{
    char path[STORE_PATH_MAX];
    struct stat st;
    store_blob_path(root, digest, path, sizeof path);
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size == size;
}

// Adds {path, digest, size} to m's files.
static int add_file(store_manifest *m, const char *path, const char *digest, uint64_t size,
                    garlic_error *err)
{
    if (m->n_files == STORE_FILES_MAX)
        return garlic_error_set(err, GARLIC_EINVAL, "a model of more than %d files",
                                STORE_FILES_MAX);
    store_file *f = &m->files[m->n_files];
    if (strlen(path) >= sizeof f->path)
        return garlic_error_set(err, GARLIC_EINVAL, "%.64s...: file name too long", path);
    snprintf(f->path, sizeof f->path, "%s", path);
    snprintf(f->digest, sizeof f->digest, "%s", digest);
    f->size = size;
    m->n_files++;
    return GARLIC_OK;
}

// Puts text into a blob of its own (the extra called path) and lists it in m.
static int add_text_blob(const char *root, const char *path, const char *text, store_manifest *m,
                         lock_set *locks, garlic_error *err)
{
    size_t size = strlen(text);
    if (size > EXTRA_MAX)
        return garlic_error_set(err, GARLIC_EINVAL, "the %s is %zu bytes, more than the %d allowed",
                                path, size, EXTRA_MAX);
    unsigned char md[32];
    if (!EVP_Digest(text, size, md, NULL, EVP_sha256(), NULL))
        return garlic_error_set(err, GARLIC_ENOMEM, "cannot compute a SHA-256");
    char digest[STORE_DIGEST_HEX + 1], blob[STORE_PATH_MAX];
    for (int i = 0; i < 32; i++)
        snprintf(digest + 2 * i, 3, "%02x", md[i]);
    int rc = lock_blob(root, digest, locks, err);
    if (rc)
        return rc;
    store_blob_path(root, digest, blob, sizeof blob);
    if (!blob_present(root, digest, size) && (rc = store_write_atomic(blob, text, size, err)))
        return rc;
    return add_file(m, path, digest, size, err);
}

// Copies the open file in into out (both at offset 0): a reflink (FICLONE) where the
// file system shares extents, else copy_file_range, else read and write. name is in errors.
static int copy_bytes(int in, int out, uint64_t size, const char *name, garlic_error *err)
{
    if (ioctl(out, FICLONE, in) == 0)
        return GARLIC_OK;
    uint64_t done = 0;
    while (done < size) {
        ssize_t n = copy_file_range(in, NULL, out, NULL, size - done, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        done += (uint64_t)n;
    }
    if (done == size)
        return GARLIC_OK;
    static char chunk[1 << 16];
    while (done < size) {
        ssize_t got = pread(in, chunk, sizeof chunk, (off_t)done);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return garlic_error_set(err, GARLIC_EIO, "%s: read error at byte %llu: %s", name,
                                    (unsigned long long)done,
                                    got == 0 ? "the file shrank" : strerror(errno));
        for (ssize_t off = 0; off < got;) {
            ssize_t w = pwrite(out, chunk + off, (size_t)(got - off),
                               (off_t)(done + (uint64_t)off));
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                return garlic_error_set(err, GARLIC_EIO, "cannot write a copy of %s: %s", name,
                                        strerror(errno));
            off += w;
        }
        done += (uint64_t)got;
    }
    return GARLIC_OK;
}

// Puts the file at src into blobs/sha256-<hex> unless that blob exists already: hashed first,
// copied to a temporary file beside the blob, hashed again (the file must not have changed)
// and renamed into place. Lists it in m as path.
static int import_file(const char *root, const char *src, const char *path, store_manifest *m,
                       lock_set *locks, FILE *progress, garlic_error *err)
{
    struct stat st;
    if (stat(src, &st) != 0 || !S_ISREG(st.st_mode))
        return garlic_error_set(err, GARLIC_EIO, "%s: not a readable file", src);
    char digest[STORE_DIGEST_HEX + 1], check[STORE_DIGEST_HEX + 1];
    int rc = store_sha256_file(src, digest, err);
    if (!rc)
        rc = lock_blob(root, digest, locks, err);
    if (rc)
        return rc;
    uint64_t size = (uint64_t)st.st_size;
    if (blob_present(root, digest, size)) {
        if (progress)
            fprintf(progress, "using existing %s (sha256 %.12s)\n", path, digest);
        return add_file(m, path, digest, size, err);
    }
    if (progress)
        fprintf(progress, "copying %s (%llu bytes)\n", src, (unsigned long long)size);
    char blob[STORE_PATH_MAX], tmp[STORE_PATH_MAX + 64];
    store_blob_path(root, digest, blob, sizeof blob);
    snprintf(tmp, sizeof tmp, "%s-create-%ld", blob, (long)getpid());
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return garlic_error_set(err, GARLIC_EIO, "%s: cannot open: %s", src, strerror(errno));
    int out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0) {
        rc = garlic_error_set(err, GARLIC_EIO, "%s: cannot create: %s", tmp, strerror(errno));
        close(in);
        return rc;
    }
    rc = copy_bytes(in, out, size, src, err);
    close(in);
    if (!rc && (fsync(out) != 0 || close(out) != 0))
        rc = garlic_error_set(err, GARLIC_EIO, "%s: cannot write: %s", tmp, strerror(errno));
    else if (rc)
        close(out);
    if (!rc)
        rc = store_sha256_file(tmp, check, err);
    if (!rc && strcmp(check, digest) != 0)
        rc = garlic_error_set(err, GARLIC_EIO, "%s: the file changed while it was copied", src);
    if (!rc && rename(tmp, blob) != 0)
        rc = garlic_error_set(err, GARLIC_EIO, "%s: cannot rename: %s", blob, strerror(errno));
    if (rc) {
        unlink(tmp);
        return rc;
    }
    return add_file(m, path, digest, size, err);
}

// The quantization of an open GGUF: the mixture general.file_type names, else the type that
// holds the most bytes of weights ("F32"), else "".
static void gguf_quantization(const gguf_file *f, char *out, size_t cap)
{
    uint32_t file_type;
    const char *name = NULL;
    if (gguf_get_u32(f, "general.file_type", &file_type) == GARLIC_OK)
        name = model_quant_mix_name(file_type);
    if (name) {
        snprintf(out, cap, "%s", name);
        return;
    }
    uint64_t bytes[TENSOR_TYPE_COUNT] = {0};
    for (uint64_t i = 0; i < f->n_tensors; i++)
        if (f->tensors[i].type < TENSOR_TYPE_COUNT)
            bytes[f->tensors[i].type] += f->tensors[i].nbytes;
    int best = -1;
    for (int t = 0; t < TENSOR_TYPE_COUNT; t++)
        if (bytes[t] && (best < 0 || bytes[t] > bytes[best]))
            best = t;
    const tensor_type_traits *traits = best >= 0 ? tensor_type_get((uint32_t)best) : NULL;
    snprintf(out, cap, "%s", traits && traits->name ? traits->name : "");
}

// A GGUF file into the store: checked with the GGUF reader first (errors name the file).
static int import_gguf(const char *root, const char *src, store_manifest *m, lock_set *locks,
                       FILE *progress, garlic_error *err)
{
    garlic_error e = {0};
    gguf_file *f = gguf_open(src, &e);
    if (!f)
        return garlic_error_set(err, e.code ? e.code : GARLIC_EFORMAT, "%s", e.message);
    gguf_quantization(f, m->quantization, sizeof m->quantization);
    gguf_close(f);
    snprintf(m->format, sizeof m->format, "gguf");
    const char *slash = strrchr(src, '/');
    return import_file(root, src, slash ? slash + 1 : src, m, locks, progress, err);
}

// Whether a file of a Hugging Face folder is one a model needs; weights (the *.safetensors)
// are pass 0, the rest (configuration, tokenizer, chat template) pass 1.
static bool folder_file_wanted(const char *name, int pass)
{
    size_t len = strlen(name);
    bool weights = len > 12 && strcmp(name + len - 12, ".safetensors") == 0;
    if (pass == 0)
        return weights;
    return (len > 5 && strcmp(name + len - 5, ".json") == 0) ||
        strcmp(name, "tokenizer.model") == 0 || strcmp(name, "chat_template.jinja") == 0;
}

// A Hugging Face folder (one with a config.json) into the store: its weights first (so that
// files[0] is a weights file when it has any), then the files that describe it.
static int import_folder(const char *root, const char *dir, store_manifest *m, lock_set *locks,
                         FILE *progress, garlic_error *err)
{
    char path[STORE_PATH_MAX];
    struct stat st;
    if (snprintf(path, sizeof path, "%s/config.json", dir) >= (int)sizeof path)
        return garlic_error_set(err, GARLIC_EINVAL, "%.200s: path too long", dir);
    if (stat(path, &st) != 0)
        return garlic_error_set(err, GARLIC_EFORMAT,
                                "%s: a folder without config.json is not a Hugging Face model",
                                dir);
    struct dirent **names = NULL;
    int n = scandir(dir, &names, NULL, alphasort);
    if (n < 0)
        return garlic_error_set(err, GARLIC_EIO, "%s: cannot list: %s", dir, strerror(errno));
    int rc = GARLIC_OK;
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; !rc && i < n; i++) {
            const char *name = names[i]->d_name;
            if (name[0] == '.' || !folder_file_wanted(name, pass))
                continue;
            if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path)
                rc = garlic_error_set(err, GARLIC_EINVAL, "%.200s/%s: path too long", dir, name);
            else if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
                rc = import_file(root, path, name, m, locks, progress, err);
        }
    for (int i = 0; i < n; i++)
        free(names[i]); // scandir's allocations are libc's
    free(names);
    snprintf(m->format, sizeof m->format, "folder");
    m->quantization[0] = '\0';
    return rc;
}

// The weights of a stored model (its files that are not extras) into m, with its format and
// quantization; its extras into *inherited.
static int take_stored(const char *root, const char *from, store_manifest *m,
                       store_extras *inherited, lock_set *locks, garlic_error *err)
{
    store_name name;
    store_manifest *src = garlic_malloc(sizeof *src);
    if (!src)
        return garlic_error_set(err, GARLIC_ENOMEM, "out of memory");
    int rc = store_name_parse(from, &name, err);
    if (!rc)
        rc = store_manifest_read(root, &name, src, err);
    for (size_t i = 0; !rc && i < src->n_files; i++) {
        const store_file *f = &src->files[i];
        if (is_extra_path(f->path))
            continue;
        rc = lock_blob(root, f->digest, locks, err);
        if (!rc && !blob_present(root, f->digest, f->size))
            rc = garlic_error_set(err, GARLIC_EIO, "%s: the blob of %s (sha256 %.12s) is missing",
                                  from, f->path, f->digest);
        if (!rc)
            rc = add_file(m, f->path, f->digest, f->size, err);
    }
    if (!rc) {
        snprintf(m->format, sizeof m->format, "%s", src->format);
        snprintf(m->quantization, sizeof m->quantization, "%s", src->quantization);
        rc = store_extras_read(root, src, inherited, err);
    }
    garlic_free(src);
    return rc;
}

// The inherited params with those given laid over them key by key, as compact JSON (*out
// garlic_malloc'd; NULL when there are none).
static int merge_params(const char *inherited, const char *given, char **out, garlic_error *err)
{
    *out = NULL;
    cJSON *base = inherited ? cJSON_Parse(inherited) : cJSON_CreateObject();
    cJSON *over = given ? cJSON_Parse(given) : NULL;
    int rc = GARLIC_OK;
    if (!cJSON_IsObject(base))
        rc = garlic_error_set(err, GARLIC_EFORMAT,
                              "the inherited parameters are not a JSON object");
    while (!rc && over && over->child) {
        cJSON *item = cJSON_DetachItemViaPointer(over, over->child);
        cJSON_DeleteItemFromObjectCaseSensitive(base, item->string);
        cJSON_AddItemToObject(base, item->string, item);
    }
    if (!rc && base->child) {
        char *json = cJSON_PrintUnformatted(base);
        *out = json ? garlic_strndup(json, SIZE_MAX) : NULL;
        cJSON_free(json);
        if (!*out)
            rc = garlic_error_set(err, GARLIC_ENOMEM, "out of memory");
    }
    cJSON_Delete(base);
    cJSON_Delete(over);
    return rc;
}

// The extras of the new model (given over inherited, params merged) as blobs listed in m.
static int add_extras(const char *root, const store_create_request *r,
                      const store_extras *inherited, store_manifest *m, lock_set *locks,
                      garlic_error *err)
{
    char *params_json = NULL;
    int rc = merge_params(inherited->params_json, r->params_json, &params_json, err);
    const char *texts[N_EXTRAS] = {
        r->template_text ? r->template_text : inherited->template_text,
        r->system ? r->system : inherited->system,
        params_json,
        r->license ? r->license : inherited->license,
    };
    for (size_t k = 0; !rc && k < N_EXTRAS; k++)
        if (texts[k] && texts[k][0]) // "" removes what was inherited
            rc = add_text_blob(root, extra_paths[k], texts[k], m, locks, err);
    garlic_free(params_json);
    return rc;
}

// Checks what can be checked before any byte is copied.
static int request_check(const store_create_request *r, store_name *name, garlic_error *err)
{
    if (!r->name || !r->name[0])
        return garlic_error_set(err, GARLIC_EINVAL, "the new model needs a name");
    int rc = store_name_parse(r->name, name, err);
    if (rc)
        return rc;
    if (!r->from || !r->from[0])
        return garlic_error_set(err, GARLIC_EINVAL,
                                "no FROM: name the model or file '%s' starts from", r->name);
    if (r->params_json && (rc = store_params_check(r->params_json, err)))
        return rc;
    const char *texts[] = {r->template_text, r->system, r->license};
    for (size_t k = 0; k < 3; k++)
        if (texts[k] && strlen(texts[k]) > EXTRA_MAX)
            return garlic_error_set(err, GARLIC_EINVAL, "the %s is more than %d bytes",
                                    k == 0       ? "template"
                                        : k == 1 ? "system message"
                                                 : "license",
                                    EXTRA_MAX);
    return GARLIC_OK;
}

// The weights of r->from into m: a GGUF file or a Hugging Face folder copied in, or the
// blobs of a stored model (whose extras go to *inherited).
static int add_weights(const char *root, const char *from, store_manifest *m,
                       store_extras *inherited, lock_set *locks, FILE *progress, garlic_error *err)
{
    if (!store_is_path(from))
        return take_stored(root, from, m, inherited, locks, err);
    char path[STORE_PATH_MAX];
    struct stat st;
    int rc = expand_home(from, path, sizeof path, err);
    if (rc)
        return rc;
    if (stat(path, &st) != 0)
        return garlic_error_set(err, GARLIC_ENOTFOUND, "FROM %s: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode))
        return import_folder(root, path, m, locks, progress, err);
    return import_gguf(root, path, m, locks, progress, err);
}

int store_create(const char *root, const store_create_request *r, FILE *progress, garlic_error *err)
{
    store_name name;
    int rc = request_check(r, &name, err);
    if (rc)
        return rc;
    char dir[STORE_PATH_MAX + 16];
    snprintf(dir, sizeof dir, "%s/blobs", root);
    if ((rc = store_mkdirs(dir, err)))
        return rc;
    snprintf(dir, sizeof dir, "%s/locks", root);
    if ((rc = store_mkdirs(dir, err)))
        return rc;
    store_manifest *m = garlic_calloc(1, sizeof *m);
    if (!m)
        return garlic_error_set(err, GARLIC_ENOMEM, "out of memory");
    store_extras inherited = {0};
    lock_set locks = {.n = 0};
    rc = add_weights(root, r->from, m, &inherited, &locks, progress, err);
    if (!rc)
        rc = add_extras(root, r, &inherited, m, &locks, err);
    char path[STORE_PATH_MAX];
    store_manifest_path(root, &name, path, sizeof path);
    struct stat st;
    bool replacing = stat(path, &st) == 0;
    if (!rc) {
        m->name = name;
        m->modified = (int64_t)time(NULL);
        for (size_t i = 0; i < m->n_files; i++)
            m->size += m->files[i].size;
        if (progress)
            fprintf(progress, "writing manifest\n");
        rc = store_manifest_write(root, m, err);
    }
    // The model this one replaced may have left blobs that nothing names any more.
    if (!rc && replacing)
        rc = store_collect_garbage(root, err);
    unlock_all(&locks);
    store_extras_deinit(&inherited);
    garlic_free(m);
    return rc;
}
