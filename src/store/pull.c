// SPDX-License-Identifier: MIT
// Pulling a model into the store over libcurl: from an Ollama-compatible registry
// (GET /v2/<ns>/<name>/manifests/<tag>, then the layer of media type
// application/vnd.ollama.image.model from /v2/<ns>/<name>/blobs/sha256:<hex>) or from a Hugging
// Face-compatible hub (GET /api/models/<org>/<repo>/tree/main lists the files with their LFS
// sha256; the GGUF whose name holds the tag's quantization comes from
// /<org>/<repo>/resolve/main/<file>). Every blob downloads to blobs/sha256-<hex>-partial under a
// flock of locks/sha256-<hex>.lock, resumes with Range, is verified, and only then renamed into
// place; the manifest is written last. Transient failures (5xx, 429, cut connections) are
// retried with a doubling wait.
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/buffer.h"
#include "store/store.h"

enum { JSON_MAX = 16 << 20, URL_MAX = 4096 };

#define OLLAMA_MODEL_LAYER "application/vnd.ollama.image.model"

void store_pull_options_default(store_pull_options *o)
{
    *o = (store_pull_options){
        .retries = 5, .backoff_ms = 1000, .stall_seconds = 60, .progress = stderr};
}

// ---- progress ----

typedef struct progress {
    FILE *out;        // NULL: silent
    bool terminal;    // a bar redrawn in place, else a line every few seconds
    const char *what; // the file's name
    uint64_t offset;  // bytes already there before this request
    uint64_t total;   // 0 when unknown
    double start, last_print;
    uint64_t start_bytes;
} progress;

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static const char *mib(double bytes, char *buf, size_t cap)
{
    snprintf(buf, cap, "%.1f MiB", bytes / (1024.0 * 1024.0));
    return buf;
}

static void progress_print(progress *p, uint64_t have, bool done)
{
    double t = now_seconds(), elapsed = t - p->start;
    if (!p->out || (!done && t - p->last_print < (p->terminal ? 0.1 : 2.0)))
        return;
    p->last_print = t;
    double rate = elapsed > 0 ? (double)(have - p->start_bytes) / elapsed : 0;
    char a[32], b[32], r[32], left[32] = "";
    if (p->total > have && rate > 0)
        snprintf(left, sizeof left, ", %.0f s left", (double)(p->total - have) / rate);
    double pct = p->total ? 100.0 * (double)have / (double)p->total : 0;
    if (p->terminal) {
        int width = 30, fill = (int)(pct * width / 100);
        char bar[64];
        for (int i = 0; i < width; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[width] = '\0';
        fprintf(p->out, "\r%s [%s] %s / %s, %s/s%s   %s", p->what, bar, mib((double)have, a, 32),
                mib((double)p->total, b, 32), mib(rate, r, 32), left, done ? "\n" : "");
    } else {
        fprintf(p->out, "pulling %s: %s of %s (%.0f%%), %s/s%s%s\n", p->what,
                mib((double)have, a, 32), mib((double)p->total, b, 32), pct, mib(rate, r, 32), left,
                done ? ", done" : "");
    }
    fflush(p->out);
}

static int on_progress(void *user, curl_off_t dl_total, curl_off_t dl_now, curl_off_t ul_total,
                       curl_off_t ul_now)
{
    (void)dl_total, (void)ul_total, (void)ul_now;
    progress *p = user;
    progress_print(p, p->offset + (uint64_t)dl_now, false);
    return 0;
}

// ---- one HTTP request, retried ----

// Where a response body goes: memory (JSON) or a partial file being hashed.
typedef struct sink {
    CURL *curl;
    garlic_buf *mem; // JSON bodies
    int fd;          // the partial file, -1 for memory
    EVP_MD_CTX *sha; // running hash of the partial file
    uint64_t offset; // bytes in the file before this request
    bool checked;    // the status of the response was looked at
    bool failed;     // a write failed
} sink;

static void sha_reset(EVP_MD_CTX *sha) { EVP_DigestInit_ex(sha, EVP_sha256(), NULL); }

static size_t on_body(char *data, size_t size, size_t n, void *user)
{
    sink *s = user;
    size_t len = size * n;
    if (!s->checked) {
        long status = 0;
        curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &status);
        s->checked = true;
        if (s->fd >= 0 && status == 200 && s->offset > 0) {
            // The server ignored the Range: start the file again.
            if (ftruncate(s->fd, 0) != 0 || lseek(s->fd, 0, SEEK_SET) != 0)
                return s->failed = true, 0;
            sha_reset(s->sha);
            s->offset = 0;
        }
        if (status < 200 || status >= 300)
            s->fd = -2; // an error body: drop it
    }
    if (s->fd == -2)
        return len;
    if (s->fd < 0)
        return garlic_buf_append(s->mem, data, len) ? 0 : len;
    for (size_t done = 0; done < len;) {
        ssize_t w = write(s->fd, data + done, len - done);
        if (w <= 0 && errno != EINTR)
            return s->failed = true, 0;
        done += w > 0 ? (size_t)w : 0;
    }
    EVP_DigestUpdate(s->sha, data, len);
    return len;
}

typedef enum outcome { OUTCOME_OK, OUTCOME_TRANSIENT, OUTCOME_FAILED } outcome;

static outcome classify(CURLcode rc, long status)
{
    if (rc == CURLE_OK)
        return status >= 200 && status < 300                  ? OUTCOME_OK
            : status >= 500 || status == 429 || status == 408 ? OUTCOME_TRANSIENT
                                                              : OUTCOME_FAILED;
    switch (rc) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_PARTIAL_FILE:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_GOT_NOTHING:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM: return OUTCOME_TRANSIENT;
    default: return OUTCOME_FAILED;
    }
}

typedef struct request {
    const char *url;
    const char *what;   // the model or file, for messages
    const char *accept; // an Accept header, or NULL
    const char *token;  // a Bearer token, or NULL
    bool hub;           // 401 and 403 say to set HF_TOKEN
    uint32_t stall_seconds;
} request;

// Turns a final failure into an error naming the model or file.
static int request_error(const request *r, CURLcode rc, long status, garlic_error *err)
{
    if (rc != CURLE_OK)
        return garlic_error_set(err, GARLIC_EIO, "%s: %s: %s", r->what, r->url,
                                curl_easy_strerror(rc));
    if (status == 404)
        return garlic_error_set(err, GARLIC_ENOTFOUND, "%s: not found (404 from %s)", r->what,
                                r->url);
    if ((status == 401 || status == 403) && r->hub)
        return garlic_error_set(err, GARLIC_EINVAL,
                                "%s: the hub answered %ld (%s); set HF_TOKEN to a token that "
                                "may read it (gated or private repository)",
                                r->what, status, r->token ? "the token was refused" : "no token");
    if (status == 401 || status == 403)
        return garlic_error_set(err, GARLIC_EINVAL, "%s: the registry answered %ld at %s", r->what,
                                status, r->url);
    return garlic_error_set(err, GARLIC_EIO, "%s: HTTP %ld from %s", r->what, status, r->url);
}

// Performs r once into s; fills *rc and *status.
static void perform(const request *r, sink *s, uint64_t range_from, progress *prog, CURLcode *rc,
                    long *status)
{
    CURL *c = curl_easy_init();
    struct curl_slist *headers = NULL;
    char line[URL_MAX];
    if (r->accept) {
        snprintf(line, sizeof line, "Accept: %s", r->accept);
        headers = curl_slist_append(headers, line);
    }
    if (r->token) {
        snprintf(line, sizeof line, "Authorization: Bearer %s", r->token);
        headers = curl_slist_append(headers, line);
    }
    s->curl = c, s->checked = false;
    curl_easy_setopt(c, CURLOPT_URL, r->url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "garlic");
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, (long)(r->stall_seconds ? r->stall_seconds : 60));
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, s);
    if (range_from > 0) {
        snprintf(line, sizeof line, "%llu-", (unsigned long long)range_from);
        curl_easy_setopt(c, CURLOPT_RANGE, line);
    }
    if (prog && prog->out) {
        curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(c, CURLOPT_XFERINFODATA, prog);
    }
    *rc = curl_easy_perform(c);
    *status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    curl_slist_free_all(headers);
    curl_easy_cleanup(c);
}

static void backoff(const store_pull_options *o, uint32_t attempt, const char *what)
{
    uint64_t ms = (uint64_t)o->backoff_ms << (attempt < 10 ? attempt : 10);
    if (o->progress)
        fprintf(o->progress, "%s: transient failure, retrying in %.1f s\n", what,
                (double)ms / 1000);
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

// GETs r->url into a parsed JSON document (*out, freed by the caller with cJSON_Delete).
static int get_json(const request *r, const store_pull_options *o, cJSON **out, garlic_error *err)
{
    for (uint32_t attempt = 0;; attempt++) {
        garlic_buf body = {0};
        sink s = {.mem = &body, .fd = -1};
        CURLcode rc;
        long status;
        perform(r, &s, 0, NULL, &rc, &status);
        outcome what = classify(rc, status);
        if (what == OUTCOME_OK) {
            *out = body.data ? cJSON_ParseWithLength(body.data, body.len) : NULL;
            garlic_buf_deinit(&body);
            if (!*out)
                return garlic_error_set(err, GARLIC_EFORMAT, "%s: %s did not answer JSON", r->what,
                                        r->url);
            return GARLIC_OK;
        }
        garlic_buf_deinit(&body);
        if (what == OUTCOME_FAILED || attempt >= o->retries)
            return request_error(r, rc, status, err);
        backoff(o, attempt, r->what);
    }
}

// ---- blobs ----

// A blob to fetch: its URL, expected digest (hex) and size.
typedef struct blob {
    char url[URL_MAX];
    char file[STORE_PART_MAX]; // its name, for messages
    char digest[STORE_DIGEST_HEX + 1];
    uint64_t size;
    int lock_fd; // held from download until the manifest is written
} blob;

// Hashes the first n bytes of fd into sha (reset first).
static int hash_prefix(int fd, uint64_t n, EVP_MD_CTX *sha)
{
    static unsigned char chunk[1 << 16];
    sha_reset(sha);
    for (uint64_t at = 0; at < n;) {
        size_t want = n - at < sizeof chunk ? (size_t)(n - at) : sizeof chunk;
        ssize_t got = pread(fd, chunk, want, (off_t)at);
        if (got <= 0)
            return -1;
        EVP_DigestUpdate(sha, chunk, (size_t)got);
        at += (uint64_t)got;
    }
    return 0;
}

// Downloads b into partial (resuming what is there) until complete; the hash goes to sha.
static int download(const request *r, const store_pull_options *o, const char *partial,
                    const blob *b, EVP_MD_CTX *sha, garlic_error *err)
{
    int fd = open(partial, O_RDWR | O_CREAT, 0644);
    if (fd < 0)
        return garlic_error_set(err, GARLIC_EIO, "%s: cannot create: %s", partial, strerror(errno));
    progress prog = {.out = o->progress,
                     .terminal = o->progress && isatty(fileno(o->progress)),
                     .what = b->file,
                     .total = b->size};
    prog.start = now_seconds();
    int result = GARLIC_OK;
    for (uint32_t attempt = 0;; attempt++) {
        off_t have = lseek(fd, 0, SEEK_END);
        if (have < 0 || (b->size && (uint64_t)have > b->size)) {
            if (ftruncate(fd, 0) != 0)
                break;
            have = 0;
        }
        if (hash_prefix(fd, (uint64_t)have, sha) != 0) {
            result = garlic_error_set(err, GARLIC_EIO, "%s: cannot read", partial);
            break;
        }
        if (b->size && (uint64_t)have == b->size)
            break; // a previous pull got it all
        if (attempt == 0 && have > 0 && o->progress)
            fprintf(o->progress, "%s: resuming at %llu bytes\n", b->file, (unsigned long long)have);
        prog.offset = prog.start_bytes = (uint64_t)have;
        sink s = {.fd = fd, .sha = sha, .offset = (uint64_t)have};
        CURLcode rc;
        long status;
        perform(r, &s, (uint64_t)have, &prog, &rc, &status);
        if (s.failed) {
            result = garlic_error_set(err, GARLIC_EIO, "%s: cannot write: %s", partial,
                                      strerror(errno));
            break;
        }
        outcome what = classify(rc, status);
        off_t got = lseek(fd, 0, SEEK_END);
        if (rc == CURLE_OK && status == 416 && ftruncate(fd, 0) == 0)
            what = OUTCOME_TRANSIENT; // the server has less than we hold: start again
        else if (what == OUTCOME_OK && b->size && (uint64_t)got != b->size)
            what = OUTCOME_TRANSIENT; // the body ended early
        if (what == OUTCOME_OK) {
            progress_print(&prog, (uint64_t)got, true);
            break;
        }
        if (what == OUTCOME_FAILED || attempt >= o->retries) {
            result = request_error(r, rc, status, err);
            break;
        }
        backoff(o, attempt, b->file);
    }
    if (result == GARLIC_OK && fsync(fd) != 0)
        result = garlic_error_set(err, GARLIC_EIO, "%s: fsync: %s", partial, strerror(errno));
    close(fd);
    return result;
}

// Makes blobs/sha256-<digest> exist: done when it does, else downloaded under its lock,
// verified against b->digest and renamed into place. b->lock_fd keeps the lock.
static int fetch_blob(const char *root, request r, const store_pull_options *o, blob *b,
                      garlic_error *err)
{
    char path[STORE_PATH_MAX], partial[STORE_PATH_MAX + 16], lock[STORE_PATH_MAX + 16];
    store_blob_path(root, b->digest, path, sizeof path);
    snprintf(partial, sizeof partial, "%s-partial", path);
    snprintf(lock, sizeof lock, "%s/locks/sha256-%s.lock", root, b->digest);
    b->lock_fd = open(lock, O_RDWR | O_CREAT, 0644);
    if (b->lock_fd < 0)
        return garlic_error_set(err, GARLIC_EIO, "%s: cannot create: %s", lock, strerror(errno));
    if (flock(b->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        if (o->progress)
            fprintf(o->progress, "%s: another pull is downloading it; waiting\n", b->file);
        if (flock(b->lock_fd, LOCK_EX) != 0)
            return garlic_error_set(err, GARLIC_EIO, "%s: flock: %s", lock, strerror(errno));
    }
    struct stat st;
    if (stat(path, &st) == 0 && (uint64_t)st.st_size == b->size) {
        if (o->progress)
            fprintf(o->progress, "%s: already in the store\n", b->file);
        return GARLIC_OK;
    }
    EVP_MD_CTX *sha = EVP_MD_CTX_new();
    if (!sha)
        return garlic_error_set(err, GARLIC_ENOMEM, "out of memory");
    r.url = b->url;
    int rc = download(&r, o, partial, b, sha, err);
    unsigned char md[32];
    EVP_DigestFinal_ex(sha, md, NULL);
    EVP_MD_CTX_free(sha);
    if (rc)
        return rc; // the partial file stays for the next pull to resume
    char got[STORE_DIGEST_HEX + 1];
    for (int i = 0; i < 32; i++)
        snprintf(got + 2 * i, 3, "%02x", md[i]);
    if (strcmp(got, b->digest) != 0) {
        unlink(partial);
        return garlic_error_set(err, GARLIC_EFORMAT,
                                "%s: checksum mismatch (expected sha256 %s, got %s); the "
                                "partial download was removed",
                                b->file, b->digest, got);
    }
    if (rename(partial, path) != 0)
        return garlic_error_set(err, GARLIC_EIO, "%s: cannot rename to %s: %s", partial, path,
                                strerror(errno));
    return GARLIC_OK;
}

// Refuses when the store's file system lacks room for the blobs not yet there.
static int check_space(const char *root, const blob *blobs, size_t n, garlic_error *err)
{
    uint64_t need = 0;
    for (size_t i = 0; i < n; i++) {
        char path[STORE_PATH_MAX], partial[STORE_PATH_MAX + 16];
        struct stat st;
        store_blob_path(root, blobs[i].digest, path, sizeof path);
        snprintf(partial, sizeof partial, "%s-partial", path);
        if (stat(path, &st) == 0)
            continue;
        uint64_t have = stat(partial, &st) == 0 ? (uint64_t)st.st_size : 0;
        need += blobs[i].size > have ? blobs[i].size - have : 0;
    }
    char dir[STORE_PATH_MAX];
    snprintf(dir, sizeof dir, "%s/blobs", root);
    struct statvfs vfs;
    if (statvfs(dir, &vfs) != 0)
        return garlic_error_set(err, GARLIC_EIO, "%s: statvfs: %s", dir, strerror(errno));
    uint64_t free_bytes = (uint64_t)vfs.f_bavail * vfs.f_frsize;
    const char *fake = getenv("GARLIC_PULL_FREE_BYTES"); // tests: pretend the disk is this full
    if (fake && *fake)
        free_bytes = strtoull(fake, NULL, 10);
    if (need > free_bytes)
        return garlic_error_set(err, GARLIC_EIO,
                                "%s: not enough disk space: the model needs %.1f MiB more, the "
                                "disk has %.1f MiB free",
                                root, (double)need / 1048576.0, (double)free_bytes / 1048576.0);
    return GARLIC_OK;
}

// Fetches every blob, then writes the manifest; releases the locks.
static int store_blobs(const char *root, request r, const store_pull_options *o, blob *blobs,
                       size_t n, store_manifest *m, garlic_error *err)
{
    int rc = check_space(root, blobs, n, err);
    for (size_t i = 0; i < n; i++)
        blobs[i].lock_fd = -1;
    for (size_t i = 0; i < n && !rc; i++)
        rc = fetch_blob(root, r, o, &blobs[i], err);
    if (!rc) {
        m->n_files = n, m->size = 0;
        for (size_t i = 0; i < n; i++) {
            store_file *f = &m->files[i];
            snprintf(f->path, sizeof f->path, "%s", blobs[i].file);
            memcpy(f->digest, blobs[i].digest, sizeof f->digest);
            f->size = blobs[i].size;
            m->size += f->size;
        }
        m->modified = (int64_t)time(NULL);
        rc = store_manifest_write(root, m, err);
    }
    for (size_t i = 0; i < n; i++)
        if (blobs[i].lock_fd >= 0)
            close(blobs[i].lock_fd);
    return rc;
}

static bool hex_digest(const char *s)
{
    if (!s || strlen(s) != STORE_DIGEST_HEX)
        return false;
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
            return false;
    return true;
}

// ---- the two protocols ----

// The quantization named in a GGUF file name ("Q4_K_M" in "model-Q4_K_M.gguf"), or "".
static void quantization_of(const char *file, char *out, size_t cap)
{
    static const char *const known[] = {
        "IQ1_S",  "IQ1_M",  "IQ2_XXS", "IQ2_XS", "IQ2_S",  "IQ2_M",  "IQ3_XXS", "IQ3_XS",
        "IQ3_S",  "IQ3_M",  "IQ4_XS",  "IQ4_NL", "Q2_K",   "Q3_K_S", "Q3_K_M",  "Q3_K_L",
        "Q4_K_S", "Q4_K_M", "Q4_0",    "Q4_1",   "Q5_K_S", "Q5_K_M", "Q5_0",    "Q5_1",
        "Q6_K",   "Q8_0",   "BF16",    "F16",    "F32",    "MXFP4"};
    out[0] = '\0';
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcasestr(file, known[i]) && strlen(known[i]) > strlen(out))
            snprintf(out, cap, "%s", known[i]);
}

static int pull_registry(const char *root, store_manifest *m, const store_pull_options *o,
                         garlic_error *err)
{
    const store_name *n = &m->name;
    char full[STORE_PATH_MAX], url[URL_MAX];
    store_name_format(n, full, sizeof full);
    const char *scheme = o->insecure ? "http" : "https";
    snprintf(url, sizeof url, "%s://%s/v2/%s/%s/manifests/%s", scheme, n->host, n->ns, n->model,
             n->tag);
    request r = {
        .url = url, .what = full, .accept = "application/vnd.docker.distribution.manifest.v2+json"};
    cJSON *doc;
    int rc = get_json(&r, o, &doc, err);
    if (rc)
        return rc;
    blob b = {0};
    const cJSON *layer;
    cJSON_ArrayForEach(layer, cJSON_GetObjectItemCaseSensitive(doc, "layers"))
    {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(layer, "mediaType");
        const cJSON *digest = cJSON_GetObjectItemCaseSensitive(layer, "digest");
        const cJSON *size = cJSON_GetObjectItemCaseSensitive(layer, "size");
        if (!cJSON_IsString(type) || strcmp(type->valuestring, OLLAMA_MODEL_LAYER) != 0)
            continue;
        if (!cJSON_IsString(digest) || strncmp(digest->valuestring, "sha256:", 7) != 0 ||
            !hex_digest(digest->valuestring + 7) || !cJSON_IsNumber(size) || size->valuedouble < 0)
            break;
        memcpy(b.digest, digest->valuestring + 7, STORE_DIGEST_HEX);
        b.size = (uint64_t)size->valuedouble;
    }
    cJSON_Delete(doc);
    if (!b.digest[0])
        return garlic_error_set(err, GARLIC_EFORMAT,
                                "%s: the manifest at %s has no valid layer of type %s", full, url,
                                OLLAMA_MODEL_LAYER);
    snprintf(b.url, sizeof b.url, "%s://%s/v2/%s/%s/blobs/sha256:%s", scheme, n->host, n->ns,
             n->model, b.digest);
    snprintf(b.file, sizeof b.file, "%.*s", (int)sizeof b.file - 1, full);
    snprintf(m->source, sizeof m->source, "%.*s", (int)sizeof m->source - 1, url);
    snprintf(m->format, sizeof m->format, "gguf");
    quantization_of(n->tag, m->quantization, sizeof m->quantization);
    return store_blobs(root, r, o, &b, 1, m, err);
}

// Picks from the hub's file listing the GGUF for the tag: its name holds the tag (any case);
// "latest" takes Q4_K_M, else the only GGUF. Fills b (file, size, and the digest when the
// listing has the LFS sha256) or fails.
static int pick_gguf(const cJSON *files, const char *tag, const char *what, blob *b,
                     garlic_error *err)
{
    bool latest = strcmp(tag, STORE_DEFAULT_TAG) == 0;
    const char *want = latest ? "Q4_K_M" : tag;
    size_t n_gguf = 0, n_match = 0;
    const cJSON *f, *match = NULL, *only = NULL;
    cJSON_ArrayForEach(f, files)
    {
        const cJSON *path = cJSON_GetObjectItemCaseSensitive(f, "path");
        if (!cJSON_IsString(path) || strlen(path->valuestring) < 5 ||
            strcasecmp(path->valuestring + strlen(path->valuestring) - 5, ".gguf") != 0 ||
            strstr(path->valuestring, "mmproj"))
            continue;
        n_gguf++, only = f;
        if (strcasestr(path->valuestring, want) &&
            (!match ||
             strlen(path->valuestring) <
                 strlen(cJSON_GetObjectItemCaseSensitive(match, "path")->valuestring)))
            match = f, n_match++;
    }
    if (!match && latest && n_gguf == 1)
        match = only;
    if (!match)
        return garlic_error_set(err, GARLIC_ENOTFOUND,
                                "%s: no GGUF file for '%s' in the repository (%zu GGUF files); "
                                "name one with :QUANT (as in :Q4_K_M)",
                                what, want, n_gguf);
    const cJSON *path = cJSON_GetObjectItemCaseSensitive(match, "path");
    const cJSON *size = cJSON_GetObjectItemCaseSensitive(match, "size");
    const cJSON *lfs = cJSON_GetObjectItemCaseSensitive(match, "lfs");
    const cJSON *oid = cJSON_GetObjectItemCaseSensitive(lfs, "oid");
    const cJSON *sha = cJSON_GetObjectItemCaseSensitive(lfs, "sha256");
    const char *digest = cJSON_IsString(sha) ? sha->valuestring
        : cJSON_IsString(oid)                ? oid->valuestring
                                             : NULL;
    if (digest && strncmp(digest, "sha256:", 7) == 0)
        digest += 7;
    if (!cJSON_IsNumber(size) || size->valuedouble < 0)
        return garlic_error_set(err, GARLIC_EFORMAT, "%s: the listing gives '%s' no size", what,
                                path->valuestring);
    snprintf(b->file, sizeof b->file, "%s", path->valuestring);
    if (hex_digest(digest)) // else the ETag of the download will have to say (etag_digest)
        memcpy(b->digest, digest, STORE_DIGEST_HEX + 1);
    b->size = (uint64_t)size->valuedouble;
    return GARLIC_OK;
}

// Keeps the sha256 an X-Linked-Etag or ETag header carries (quoted, maybe weak), if any;
// X-Linked-Etag (the LFS object's, on the hub's redirect) wins over ETag.
static size_t on_header(char *data, size_t size, size_t n, void *user)
{
    char(*tags)[STORE_DIGEST_HEX + 1] = user;
    size_t len = size * n;
    int slot = len > 14 && strncasecmp(data, "x-linked-etag:", 14) == 0 ? 0
        : len > 5 && strncasecmp(data, "etag:", 5) == 0                 ? 1
                                                                        : -1;
    if (slot < 0)
        return len;
    const char *p = memchr(data, ':', len) + 1, *end = data + len;
    while (p < end && (*p == ' ' || *p == 'W' || *p == '/' || *p == '"'))
        p++;
    if (end - p >= STORE_DIGEST_HEX) {
        char hex[STORE_DIGEST_HEX + 1];
        memcpy(hex, p, STORE_DIGEST_HEX);
        hex[STORE_DIGEST_HEX] = '\0';
        if (hex_digest(hex) &&
            (p + STORE_DIGEST_HEX == end || p[STORE_DIGEST_HEX] == '"' ||
             p[STORE_DIGEST_HEX] == '\r'))
            memcpy(tags[slot], hex, sizeof hex);
    }
    return len;
}

// The sha256 of b from the headers of a HEAD of its URL (redirects not followed: the hub puts
// X-Linked-Etag on its redirect), for files the listing gives no LFS oid.
static int etag_digest(const request *r, blob *b, garlic_error *err)
{
    char tags[2][STORE_DIGEST_HEX + 1] = {{0}};
    CURL *c = curl_easy_init();
    struct curl_slist *headers = NULL;
    char line[URL_MAX];
    if (r->token) {
        snprintf(line, sizeof line, "Authorization: Bearer %s", r->token);
        headers = curl_slist_append(headers, line);
    }
    curl_easy_setopt(c, CURLOPT_URL, b->url);
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "garlic");
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, (void *)tags);
    CURLcode rc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(headers);
    curl_easy_cleanup(c);
    if (rc != CURLE_OK || status >= 400) {
        request head = *r;
        head.url = b->url;
        return request_error(&head, rc, status, err);
    }
    const char *hex = tags[0][0] ? tags[0] : tags[1];
    if (!hex[0])
        return garlic_error_set(err, GARLIC_EFORMAT,
                                "%s: the hub gives no sha256 for it (no LFS oid in the listing, "
                                "no sha256 ETag at %s)",
                                b->file, b->url);
    memcpy(b->digest, hex, sizeof b->digest);
    return GARLIC_OK;
}

static int pull_hub(const char *root, store_manifest *m, const store_pull_options *o,
                    garlic_error *err)
{
    const store_name *n = &m->name;
    const char *endpoint = o->hf_endpoint ? o->hf_endpoint : getenv("HF_ENDPOINT");
    const char *token = o->hf_token ? o->hf_token : getenv("HF_TOKEN");
    if (!endpoint || !*endpoint)
        endpoint = "https://huggingface.co";
    if (token && !*token)
        token = NULL;
    size_t elen = strlen(endpoint);
    while (elen > 0 && endpoint[elen - 1] == '/')
        elen--;
    char full[STORE_PATH_MAX], url[URL_MAX];
    store_name_format(n, full, sizeof full);
    snprintf(url, sizeof url, "%.*s/api/models/%s/%s/tree/main", (int)elen, endpoint, n->ns,
             n->model);
    request r = {
        .url = url, .what = full, .token = token, .hub = true, .stall_seconds = o->stall_seconds};
    cJSON *files;
    int rc = get_json(&r, o, &files, err);
    if (rc)
        return rc;
    blob b = {0};
    rc = pick_gguf(files, n->tag, full, &b, err);
    cJSON_Delete(files);
    if (rc)
        return rc;
    char *escaped = curl_easy_escape(NULL, b.file, 0);
    snprintf(b.url, sizeof b.url, "%.*s/%s/%s/resolve/main/%s", (int)elen, endpoint, n->ns,
             n->model, escaped ? escaped : b.file);
    curl_free(escaped);
    if (!b.digest[0] && (rc = etag_digest(&r, &b, err)) != GARLIC_OK)
        return rc;
    snprintf(m->source, sizeof m->source, "%.*s", (int)sizeof m->source - 1, b.url);
    snprintf(m->format, sizeof m->format, "gguf");
    quantization_of(b.file, m->quantization, sizeof m->quantization);
    return store_blobs(root, r, o, &b, 1, m, err);
}

int store_pull(const char *root, const char *name, const store_pull_options *o, garlic_error *err)
{
    store_manifest *m = garlic_calloc(1, sizeof *m);
    if (!m)
        return garlic_error_set(err, GARLIC_ENOMEM, "out of memory");
    char blobs[STORE_PATH_MAX], locks[STORE_PATH_MAX];
    snprintf(blobs, sizeof blobs, "%s/blobs", root);
    snprintf(locks, sizeof locks, "%s/locks", root);
    int rc = store_name_parse(name, &m->name, err);
    if (!rc)
        rc = store_mkdirs(blobs, err);
    if (!rc)
        rc = store_mkdirs(locks, err);
    if (!rc && curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        rc = garlic_error_set(err, GARLIC_EIO, "libcurl failed to start");
    if (!rc)
        rc = store_name_is_hub(&m->name) ? pull_hub(root, m, o, err)
                                         : pull_registry(root, m, o, err);
    garlic_free(m);
    return rc;
}
