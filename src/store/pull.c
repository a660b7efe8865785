// SPDX-License-Identifier: MIT
// Pulling a model into the store over libcurl: from an Ollama-compatible registry
// (GET /v2/<ns>/<name>/manifests/<tag>, then the layer of media type
// application/vnd.ollama.image.model from /v2/<ns>/<name>/blobs/sha256:<hex>) or from a Hugging
// Face-compatible hub (GET /api/models/<org>/<repo>/tree/main lists the files with their LFS
// sha256 and git blob ids; the GGUF whose name holds the tag's quantization, or the whole
// safetensors folder, comes from /<org>/<repo>/resolve/main/<file>). Every blob downloads to
// blobs/<key>-partial under a flock of locks/<key>.lock, resumes with Range, and once all are
// down they are verified and renamed into place; the manifest is written last. Transient
// failures (5xx, 429, cut connections) are retried with a doubling wait. Each step is reported
// to the caller's on_event (Ollama's /api/pull words), which may cancel the pull.
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
#include "base/file.h"
#include "store/store.h"

enum {
    JSON_MAX = 16 << 20,
    URL_MAX = 4096,
    GIT_OID_HEX = 40, // hex digits of a git blob id (SHA-1)
    CONFIG_MAX = 1 << 20,
};

#define OLLAMA_MODEL_LAYER "application/vnd.ollama.image.model"

void store_pull_options_default(store_pull_options *o)
{
    *o = (store_pull_options){
        .retries = 5, .backoff_ms = 1000, .stall_seconds = 60, .progress = stderr};
}

// ---- one pull and its events ----

// One pull under way: what every step needs. Owned by the thread calling store_pull.
typedef struct puller {
    const char *root;
    const store_pull_options *o;
    char what[STORE_PATH_MAX]; // the model's full name, for messages
    bool cancelled;            // on_event returned false
} puller;

// Reports one step to o->on_event; false once the caller has cancelled the pull.
static bool emit(puller *p, const char *status, const char *digest, uint64_t total,
                 uint64_t completed)
{
    if (p->cancelled || !p->o->on_event)
        return !p->cancelled;
    store_pull_event e = {
        .status = status, .digest = digest, .total = total, .completed = completed};
    if (!p->o->on_event(p->o->event_ctx, &e))
        p->cancelled = true;
    return !p->cancelled;
}

static int cancelled_error(const puller *p, garlic_error *err)
{
    return garlic_error_set(err, GARLIC_ESTOPPED, "pull of %s cancelled", p->what);
}

// A file to fetch: its URL, what it must hash to, and where it goes meanwhile.
typedef struct blob {
    char url[URL_MAX];
    char file[STORE_PART_MAX];         // its name, for messages and the manifest
    char digest[STORE_DIGEST_HEX + 1]; // the expected sha256; "" for a hub file known only by
                                       // its git blob id, until it is downloaded
    char git_oid[GIT_OID_HEX + 1];     // that git blob id (sha1 of "blob <size>\0" + bytes)
    char got[STORE_DIGEST_HEX + 1];    // sha256 of what was downloaded ("" when nothing was)
    char got_git[GIT_OID_HEX + 1];     // git blob id of what was downloaded
    char key[80];                      // "sha256-<hex>" or "git-<oid>": partial file, lock
    char status[32];                   // "pulling <12 hex>"
    char event_digest[80];             // "sha256:<hex>", or "sha1:<git oid>"
    uint64_t size;
    int lock_fd;  // locks/<key>.lock, held from download until the manifest is written
    int lock2_fd; // locks/sha256-<hex>.lock of a git-keyed blob once its sha256 is known
} blob;

// Fills the names derived from b's digest or git id (after those are set).
static void blob_name(blob *b)
{
    const char *id = b->digest[0] ? b->digest : b->git_oid;
    const char *kind = b->digest[0] ? "sha256" : "git";
    snprintf(b->key, sizeof b->key, "%s-%s", kind, id);
    snprintf(b->status, sizeof b->status, "pulling %.12s", id);
    snprintf(b->event_digest, sizeof b->event_digest, "%s:%s", b->digest[0] ? "sha256" : "sha1",
             id);
}

// ---- progress ----

typedef struct progress {
    FILE *out;        // NULL: silent
    bool terminal;    // a bar redrawn in place, else a line every few seconds
    const char *what; // the file's name
    uint64_t offset;  // bytes already there before this request
    uint64_t total;   // 0 when unknown
    double start, last_print, last_event;
    curl_off_t last_now; // the request's bytes at the last event
    uint64_t start_bytes;
    puller *pull; // gets an event at most every 100 ms
    const blob *b;
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
    if (!done && !p->terminal && p->total < (8u << 20))
        return; // a small file (a folder's config, its tokenizer) gets its closing line only
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

// curl's transfer callback: the progress output, and an event at most every 100 ms; a
// cancelled pull answers nonzero, which makes curl abort the transfer.
static int on_progress(void *user, curl_off_t dl_total, curl_off_t dl_now, curl_off_t ul_total,
                       curl_off_t ul_now)
{
    (void)dl_total, (void)ul_total, (void)ul_now;
    progress *p = user;
    uint64_t have = p->offset + (uint64_t)dl_now;
    progress_print(p, have, false);
    double t = now_seconds();
    // As bytes arrive, and every second without (so that a stalled transfer can be cancelled).
    if (p->pull->o->on_event && t - p->last_event >= (dl_now > p->last_now ? 0.1 : 1.0)) {
        p->last_event = t, p->last_now = dl_now;
        if (have > p->b->size)
            have = p->b->size;
        emit(p->pull, p->b->status, p->b->event_digest, p->b->size, have);
    }
    return p->pull->cancelled;
}

// ---- one HTTP request, retried ----

// Where a response body goes: memory (JSON) or a partial file being hashed.
typedef struct sink {
    CURL *curl;
    garlic_buf *mem; // JSON bodies
    int fd;          // the partial file, -1 for memory
    EVP_MD_CTX *sha; // running sha256 of the partial file
    EVP_MD_CTX *git; // its running git blob id (sha1), NULL when not wanted
    uint64_t size;   // the file's whole size (the git id hashes it first)
    uint64_t offset; // bytes in the file before this request
    progress *prog;  // told when the file starts again
    bool checked;    // the status of the response was looked at
    bool failed;     // a write failed
} sink;

// Starts both hashes of a file of size bytes again.
static void hashes_reset(EVP_MD_CTX *sha, EVP_MD_CTX *git, uint64_t size)
{
    EVP_DigestInit_ex(sha, EVP_sha256(), NULL);
    if (git) {
        char header[48];
        int n = snprintf(header, sizeof header, "blob %llu", (unsigned long long)size);
        EVP_DigestInit_ex(git, EVP_sha1(), NULL);
        EVP_DigestUpdate(git, header, (size_t)n + 1); // with its NUL
    }
}

static void hashes_update(EVP_MD_CTX *sha, EVP_MD_CTX *git, const void *data, size_t len)
{
    EVP_DigestUpdate(sha, data, len);
    if (git)
        EVP_DigestUpdate(git, data, len);
}

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
            hashes_reset(s->sha, s->git, s->size);
            s->offset = 0;
            if (s->prog)
                s->prog->offset = 0;
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
    hashes_update(s->sha, s->git, data, len);
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
    if (prog && (prog->out || prog->pull->o->on_event)) {
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

// Sleeps ms milliseconds in slices of 100, repeating the event e every second so that the
// caller may cancel a pull that waits; false when it did.
static bool wait_or_cancel(puller *p, uint64_t ms, const store_pull_event *e)
{
    for (uint64_t slept = 0; slept < ms && !p->cancelled; slept += 100) {
        uint64_t slice = ms - slept < 100 ? ms - slept : 100;
        struct timespec ts = {0, (long)slice * 1000000L};
        nanosleep(&ts, NULL);
        if ((slept + slice) % 1000 < 100)
            emit(p, e->status, e->digest, e->total, e->completed);
    }
    return !p->cancelled;
}

// Waits before retry number attempt + 1 of what (doubling from backoff_ms); false when the
// caller cancelled the pull meanwhile.
static bool backoff(puller *p, uint32_t attempt, const char *what, const store_pull_event *e)
{
    uint64_t ms = (uint64_t)p->o->backoff_ms << (attempt < 10 ? attempt : 10);
    if (p->o->progress)
        fprintf(p->o->progress, "%s: transient failure, retrying in %.1f s\n", what,
                (double)ms / 1000);
    return wait_or_cancel(p, ms, e);
}

// GETs r->url into a parsed JSON document (*out, freed by the caller with cJSON_Delete).
static int get_json(const request *r, puller *p, cJSON **out, garlic_error *err)
{
    const store_pull_options *o = p->o;
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
        if (!backoff(p, attempt, r->what, &(store_pull_event){.status = "pulling manifest"}))
            return cancelled_error(p, err);
    }
}

// ---- blobs ----

// Hashes the first n bytes of fd into both hashes (started again first).
static int hash_prefix(int fd, uint64_t n, sink *s)
{
    static _Thread_local unsigned char chunk[1 << 16];
    hashes_reset(s->sha, s->git, s->size);
    for (uint64_t at = 0; at < n;) {
        size_t want = n - at < sizeof chunk ? (size_t)(n - at) : sizeof chunk;
        ssize_t got = pread(fd, chunk, want, (off_t)at);
        if (got <= 0)
            return -1;
        hashes_update(s->sha, s->git, chunk, (size_t)got);
        at += (uint64_t)got;
    }
    return 0;
}

// Downloads b into partial (resuming what is there) until complete; the hashes go to s (whose
// sha and git are set). Events: one with the bytes already there, then as bytes arrive, then
// one with the whole size.
static int download(puller *p, const request *r, const char *partial, const blob *b, sink *hs,
                    garlic_error *err)
{
    const store_pull_options *o = p->o;
    int fd = open(partial, O_RDWR | O_CREAT, 0644);
    if (fd < 0)
        return garlic_error_set(err, GARLIC_EIO, "%s: cannot create: %s", partial, strerror(errno));
    progress prog = {.out = o->progress,
                     .terminal = o->progress && isatty(fileno(o->progress)),
                     .what = b->file,
                     .total = b->size,
                     .pull = p,
                     .b = b};
    prog.start = prog.last_event = now_seconds();
    int result = GARLIC_OK;
    for (uint32_t attempt = 0;; attempt++) {
        off_t have = lseek(fd, 0, SEEK_END);
        if (have < 0 || (b->size && (uint64_t)have > b->size)) {
            if (ftruncate(fd, 0) != 0) {
                result = garlic_error_set(err, GARLIC_EIO, "%s: cannot truncate: %s", partial,
                                          strerror(errno));
                break;
            }
            have = 0;
        }
        if (hash_prefix(fd, (uint64_t)have, hs) != 0) {
            result = garlic_error_set(err, GARLIC_EIO, "%s: cannot read", partial);
            break;
        }
        if (attempt == 0 && !emit(p, b->status, b->event_digest, b->size, (uint64_t)have)) {
            result = cancelled_error(p, err);
            break;
        }
        if (b->size && (uint64_t)have == b->size)
            break; // a previous pull got it all
        if (attempt == 0 && have > 0 && o->progress)
            fprintf(o->progress, "%s: resuming at %llu bytes\n", b->file, (unsigned long long)have);
        prog.offset = prog.start_bytes = (uint64_t)have;
        sink s = *hs;
        s.fd = fd, s.offset = (uint64_t)have, s.prog = &prog;
        CURLcode rc;
        long status;
        perform(r, &s, (uint64_t)have, &prog, &rc, &status);
        if (p->cancelled) {
            result = cancelled_error(p, err); // the partial file stays for the next pull
            break;
        }
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
        store_pull_event e = {.status = b->status,
                              .digest = b->event_digest,
                              .total = b->size,
                              .completed = (uint64_t)got < b->size ? (uint64_t)got : b->size};
        if (!backoff(p, attempt, b->file, &e)) {
            result = cancelled_error(p, err);
            break;
        }
    }
    if (result == GARLIC_OK && fsync(fd) != 0)
        result = garlic_error_set(err, GARLIC_EIO, "%s: fsync: %s", partial, strerror(errno));
    close(fd);
    if (result == GARLIC_OK && !emit(p, b->status, b->event_digest, b->size, b->size))
        result = cancelled_error(p, err);
    return result;
}

// Opens and flocks root/locks/<key>.lock into *fd without waiting: false (and *fd -1) when
// another pull holds it.
static bool lock_key_try(const puller *p, const char *key, int *fd)
{
    char lock[STORE_PATH_MAX + 96];
    snprintf(lock, sizeof lock, "%s/locks/%s.lock", p->root, key);
    *fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (*fd >= 0 && flock(*fd, LOCK_EX | LOCK_NB) != 0) {
        close(*fd);
        *fd = -1;
    }
    return *fd >= 0;
}

// Opens and flocks root/locks/<key>.lock into *fd, waiting while another pull holds it; while
// it waits, b's event is repeated every second with the bytes the other pull has so far, so
// that the caller sees them and may cancel.
static int lock_key(puller *p, const char *key, const blob *b, int *fd, garlic_error *err)
{
    char lock[STORE_PATH_MAX + 96], partial[STORE_PATH_MAX + 96];
    snprintf(lock, sizeof lock, "%s/locks/%s.lock", p->root, key);
    snprintf(partial, sizeof partial, "%s/blobs/%s-partial", p->root, key);
    *fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (*fd < 0)
        return garlic_error_set(err, GARLIC_EIO, "%s: cannot create: %s", lock, strerror(errno));
    for (bool told = false; flock(*fd, LOCK_EX | LOCK_NB) != 0;) {
        if (errno != EWOULDBLOCK && errno != EINTR)
            return garlic_error_set(err, GARLIC_EIO, "%s: flock: %s", lock, strerror(errno));
        if (!told && p->o->progress)
            fprintf(p->o->progress, "%s: another pull is downloading it; waiting\n", b->file);
        told = true;
        struct stat st;
        uint64_t have = stat(partial, &st) == 0 ? (uint64_t)st.st_size : 0;
        store_pull_event e = {.status = b->status,
                              .digest = b->event_digest,
                              .total = b->size,
                              .completed = have < b->size ? have : b->size};
        if (!wait_or_cancel(p, 1000, &e))
            return cancelled_error(p, err);
    }
    return GARLIC_OK;
}

static void hex_of(const unsigned char *md, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

// Downloads b into blobs/<key>-partial under its lock (b->lock_fd keeps it), unless the blob
// is already in the store; b->got and b->got_git get the hashes of what was downloaded.
static int fetch_blob(puller *p, request r, blob *b, garlic_error *err)
{
    char path[STORE_PATH_MAX], partial[STORE_PATH_MAX + 96];
    int rc = lock_key(p, b->key, b, &b->lock_fd, err);
    if (rc)
        return rc;
    struct stat st;
    store_blob_path(p->root, b->digest, path, sizeof path);
    if (b->digest[0] && stat(path, &st) == 0 && (uint64_t)st.st_size == b->size) {
        if (p->o->progress)
            fprintf(p->o->progress, "%s: already in the store\n", b->file);
        return emit(p, b->status, b->event_digest, b->size, b->size) ? GARLIC_OK
                                                                     : cancelled_error(p, err);
    }
    snprintf(partial, sizeof partial, "%s/blobs/%s-partial", p->root, b->key);
    sink hs = {
        .sha = EVP_MD_CTX_new(), .git = b->git_oid[0] ? EVP_MD_CTX_new() : NULL, .size = b->size};
    if (!hs.sha || (b->git_oid[0] && !hs.git))
        rc = garlic_error_set(err, GARLIC_ENOMEM, "out of memory");
    r.url = b->url;
    if (!rc)
        rc = download(p, &r, partial, b, &hs, err);
    unsigned char md[EVP_MAX_MD_SIZE];
    if (!rc) {
        EVP_DigestFinal_ex(hs.sha, md, NULL);
        hex_of(md, 32, b->got);
        if (hs.git) {
            EVP_DigestFinal_ex(hs.git, md, NULL);
            hex_of(md, 20, b->got_git);
        }
    }
    EVP_MD_CTX_free(hs.sha);
    EVP_MD_CTX_free(hs.git);
    return rc; // on failure the partial file stays for the next pull to resume
}

// Checks what fetch_blob downloaded against the sha256 (or git blob id) the source gave; a
// mismatch removes the partial file.
static int verify_blob(puller *p, blob *b, garlic_error *err)
{
    if (!b->got[0])
        return GARLIC_OK; // it was already in the store
    char partial[STORE_PATH_MAX + 96];
    snprintf(partial, sizeof partial, "%s/blobs/%s-partial", p->root, b->key);
    bool git = b->git_oid[0] != '\0';
    const char *want = git ? b->git_oid : b->digest, *got = git ? b->got_git : b->got;
    if (strcmp(want, got) != 0) {
        unlink(partial);
        return garlic_error_set(err, GARLIC_EFORMAT,
                                "%s: checksum mismatch (expected %s %s, got %s); the partial "
                                "download was removed",
                                b->file, git ? "git blob sha1" : "sha256", want, got);
    }
    if (!git)
        return GARLIC_OK;
    // Stored by its sha256 all the same, kept from garbage collection by that lock. When
    // another pull holds it, that pull is placing the same bytes and its lock (then its
    // manifest) keeps them; not waiting for it rules out two pulls waiting on each other.
    memcpy(b->digest, b->got, sizeof b->digest);
    char key[80];
    snprintf(key, sizeof key, "sha256-%s", b->digest);
    lock_key_try(p, key, &b->lock2_fd);
    return GARLIC_OK;
}

// Renames a verified download into place.
static int place_blob(puller *p, const blob *b, garlic_error *err)
{
    if (!b->got[0])
        return GARLIC_OK;
    char path[STORE_PATH_MAX], partial[STORE_PATH_MAX + 96];
    snprintf(partial, sizeof partial, "%s/blobs/%s-partial", p->root, b->key);
    store_blob_path(p->root, b->digest, path, sizeof path);
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
        char path[STORE_PATH_MAX], partial[STORE_PATH_MAX + 96];
        struct stat st;
        store_blob_path(root, blobs[i].digest, path, sizeof path);
        snprintf(partial, sizeof partial, "%s/blobs/%s-partial", root, blobs[i].key);
        if (blobs[i].digest[0] && stat(path, &st) == 0)
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

// The quantization of a folder model from its config.json (the blob named config.json in m):
// quantization_config's method ("FP8", "AWQ", "GPTQ", "MXFP4"), else torch_dtype ("BF16",
// "F16", "F32"), looked for at the top and in text_config; "" when neither says.
static void folder_quantization(const char *root, store_manifest *m)
{
    const store_file *config = NULL;
    for (size_t i = 0; i < m->n_files && !config; i++)
        if (strcmp(m->files[i].path, "config.json") == 0)
            config = &m->files[i];
    char path[STORE_PATH_MAX], *text = NULL;
    garlic_error e;
    m->quantization[0] = '\0';
    if (!config)
        return;
    store_blob_path(root, config->digest, path, sizeof path);
    if (garlic_file_read(path, CONFIG_MAX, &text, NULL, &e) != GARLIC_OK)
        return;
    cJSON *doc = cJSON_Parse(text);
    garlic_free(text);
    static const char *const dtypes[][2] = {
        {"bfloat16", "BF16"}, {"float16", "F16"}, {"float32", "F32"}};
    const cJSON *levels[] = {doc, cJSON_GetObjectItemCaseSensitive(doc, "text_config")};
    for (size_t l = 0; l < 2 && !m->quantization[0]; l++) {
        const cJSON *q = cJSON_GetObjectItemCaseSensitive(levels[l], "quantization_config");
        const cJSON *method = cJSON_GetObjectItemCaseSensitive(q, "quant_method");
        const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(levels[l], "torch_dtype");
        if (!cJSON_IsString(dtype))
            dtype = cJSON_GetObjectItemCaseSensitive(levels[l], "dtype");
        if (cJSON_IsString(method)) {
            const char *s = strcmp(method->valuestring, "compressed-tensors") == 0
                ? "FP8"
                : method->valuestring;
            size_t k = 0;
            for (; s[k] && k + 1 < sizeof m->quantization; k++)
                m->quantization[k] = (char)(s[k] >= 'a' && s[k] <= 'z' ? s[k] - 32 : s[k]);
            m->quantization[k] = '\0';
        }
        for (size_t i = 0; i < 3 && !m->quantization[0] && cJSON_IsString(dtype); i++)
            if (strcmp(dtype->valuestring, dtypes[i][0]) == 0)
                snprintf(m->quantization, sizeof m->quantization, "%s", dtypes[i][1]);
    }
    cJSON_Delete(doc);
}

// Fetches every blob, verifies them, then writes the manifest; releases the locks.
static int store_blobs(puller *p, request r, blob *blobs, size_t n, store_manifest *m,
                       garlic_error *err)
{
    int rc = check_space(p->root, blobs, n, err);
    for (size_t i = 0; i < n; i++)
        blobs[i].lock_fd = blobs[i].lock2_fd = -1;
    for (size_t i = 0; i < n && !rc; i++)
        rc = fetch_blob(p, r, &blobs[i], err);
    if (!rc && !emit(p, "verifying sha256 digest", NULL, 0, 0))
        rc = cancelled_error(p, err);
    for (size_t i = 0; i < n && !rc; i++)
        rc = verify_blob(p, &blobs[i], err);
    for (size_t i = 0; i < n && !rc; i++) // only once all are good: a fault leaves no blob
        rc = place_blob(p, &blobs[i], err);
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
        if (strcmp(m->format, "folder") == 0)
            folder_quantization(p->root, m);
        if (!emit(p, "writing manifest", NULL, 0, 0))
            rc = cancelled_error(p, err);
    }
    if (!rc)
        rc = store_manifest_write(p->root, m, err);
    for (size_t i = 0; i < n; i++) {
        if (blobs[i].lock_fd >= 0)
            close(blobs[i].lock_fd);
        if (blobs[i].lock2_fd >= 0)
            close(blobs[i].lock2_fd);
    }
    return rc;
}

static bool hex_id(const char *s, size_t len)
{
    if (!s || strlen(s) != len)
        return false;
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
            return false;
    return true;
}

static bool hex_digest(const char *s) { return hex_id(s, STORE_DIGEST_HEX); }

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

static int pull_registry(puller *p, store_manifest *m, garlic_error *err)
{
    const store_pull_options *o = p->o;
    const store_name *n = &m->name;
    char url[URL_MAX];
    const char *scheme = o->insecure ? "http" : "https";
    snprintf(url, sizeof url, "%s://%s/v2/%s/%s/manifests/%s", scheme, n->host, n->ns, n->model,
             n->tag);
    request r = {.url = url,
                 .what = p->what,
                 .accept = "application/vnd.docker.distribution.manifest.v2+json"};
    if (!emit(p, "pulling manifest", NULL, 0, 0))
        return cancelled_error(p, err);
    cJSON *doc;
    int rc = get_json(&r, p, &doc, err);
    if (rc)
        return rc;
    blob *b = garlic_calloc(1, sizeof *b);
    if (!b) {
        cJSON_Delete(doc);
        return garlic_error_set(err, GARLIC_ENOMEM, "out of memory");
    }
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
        memcpy(b->digest, digest->valuestring + 7, STORE_DIGEST_HEX);
        b->size = (uint64_t)size->valuedouble;
    }
    cJSON_Delete(doc);
    if (!b->digest[0]) {
        garlic_free(b);
        return garlic_error_set(err, GARLIC_EFORMAT,
                                "%s: the manifest at %s has no valid layer of type %s", p->what,
                                url, OLLAMA_MODEL_LAYER);
    }
    snprintf(b->url, sizeof b->url, "%s://%s/v2/%s/%s/blobs/sha256:%s", scheme, n->host, n->ns,
             n->model, b->digest);
    snprintf(b->file, sizeof b->file, "%.*s", (int)sizeof b->file - 1, p->what);
    blob_name(b);
    snprintf(m->source, sizeof m->source, "%.*s", (int)sizeof m->source - 1, url);
    snprintf(m->format, sizeof m->format, "gguf");
    quantization_of(n->tag, m->quantization, sizeof m->quantization);
    rc = store_blobs(p, r, b, 1, m, err);
    garlic_free(b);
    return rc;
}

static const char *entry_path(const cJSON *f)
{
    const cJSON *path = cJSON_GetObjectItemCaseSensitive(f, "path");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(f, "type");
    if (!cJSON_IsString(path) || (cJSON_IsString(type) && strcmp(type->valuestring, "file") != 0))
        return NULL;
    return path->valuestring;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcasecmp(s + n - k, suffix) == 0;
}

// Whether name is one part of a split GGUF ("...-00001-of-00003.gguf").
static bool split_part(const char *name)
{
    size_t n = strlen(name);
    if (n < 20 || !ends_with(name, ".gguf"))
        return false;
    const char *s = name + n - 20; // "-00001-of-00003.gguf"
    for (int i = 0; i < 15; i++) {
        bool digit = s[i] >= '0' && s[i] <= '9';
        bool want_digit = (i >= 1 && i <= 5) || (i >= 10 && i <= 14);
        if (digit != want_digit)
            return false;
    }
    return s[0] == '-' && strncmp(s + 6, "-of-", 4) == 0;
}

// The digest fields of a listing entry: the LFS sha256 into b->digest when there is one, else
// the git blob id into b->git_oid; b->size. Fails naming the file when neither is there or
// the size is missing.
static int entry_ids(const cJSON *f, const char *what, bool need_sha, blob *b, garlic_error *err)
{
    const char *path = entry_path(f);
    const cJSON *size = cJSON_GetObjectItemCaseSensitive(f, "size");
    const cJSON *lfs = cJSON_GetObjectItemCaseSensitive(f, "lfs");
    const cJSON *lfs_oid = cJSON_GetObjectItemCaseSensitive(lfs, "oid");
    const cJSON *sha = cJSON_GetObjectItemCaseSensitive(lfs, "sha256");
    const cJSON *oid = cJSON_GetObjectItemCaseSensitive(f, "oid");
    const char *digest = cJSON_IsString(sha) ? sha->valuestring
        : cJSON_IsString(lfs_oid)            ? lfs_oid->valuestring
                                             : NULL;
    if (digest && strncmp(digest, "sha256:", 7) == 0)
        digest += 7;
    if (!path)
        return garlic_error_set(err, GARLIC_EFORMAT, "%s: a listing entry has no path", what);
    if (!cJSON_IsNumber(size) || size->valuedouble < 0)
        return garlic_error_set(err, GARLIC_EFORMAT, "%s: the listing gives '%s' no size", what,
                                path);
    snprintf(b->file, sizeof b->file, "%s", path);
    b->size = (uint64_t)size->valuedouble;
    if (hex_digest(digest))
        memcpy(b->digest, digest, STORE_DIGEST_HEX + 1);
    else if (!lfs && cJSON_IsString(oid) && hex_id(oid->valuestring, GIT_OID_HEX) && !need_sha)
        memcpy(b->git_oid, oid->valuestring, GIT_OID_HEX + 1);
    else if (!need_sha)
        return garlic_error_set(err, GARLIC_EFORMAT,
                                "%s: the listing gives '%s' neither an LFS sha256 nor a git "
                                "blob id",
                                what, path);
    return GARLIC_OK; // a GGUF without an LFS sha256 asks the ETag (etag_digest)
}

// Adds name to a ", "-separated list in buf (truncated when full).
static void list_append(char *buf, size_t cap, const char *name)
{
    size_t used = strlen(buf);
    snprintf(buf + used, cap - used, "%s%s", used ? ", " : "", name);
}

// Picks from the hub's file listing the GGUF for the tag: its name holds the tag (any case);
// "latest" takes Q4_K_M, else the only GGUF. A GGUF split in parts (the tag's, or for "latest"
// the repository's only one) is refused, naming the parts. Fills b (file, size, and the digest
// when the listing has the LFS sha256) or fails.
static int pick_gguf(const cJSON *files, const char *tag, const char *what, blob *b,
                     garlic_error *err)
{
    bool latest = strcmp(tag, STORE_DEFAULT_TAG) == 0;
    const char *want = latest ? "Q4_K_M" : tag;
    size_t n_gguf = 0, n_split = 0, n_split_all = 0;
    const cJSON *f, *match = NULL, *only = NULL;
    char parts[1024] = "", parts_all[1024] = "";
    cJSON_ArrayForEach(f, files)
    {
        const char *path = entry_path(f);
        if (!path || !ends_with(path, ".gguf") || strstr(path, "mmproj"))
            continue;
        n_gguf++, only = f;
        bool split = split_part(path), wanted = strcasestr(path, want) != NULL;
        if (split) {
            n_split_all++, list_append(parts_all, sizeof parts_all, path);
            if (wanted)
                n_split++, list_append(parts, sizeof parts, path);
        } else if (wanted && (!match || strlen(path) < strlen(entry_path(match)))) {
            match = f;
        }
    }
    if (!match && latest && n_gguf == 1 && n_split_all == 0)
        match = only;
    if (!match && !n_split && latest && n_gguf > 0 && n_split_all == n_gguf)
        n_split = n_split_all, memcpy(parts, parts_all, sizeof parts);
    if (!match && n_split)
        return garlic_error_set(err, GARLIC_EUNSUPPORTED,
                                "%s: the GGUF for '%s' is split in %zu files (%s); garlic loads "
                                "single-file GGUFs: merge them with llama-gguf-split --merge, or "
                                "pull another quantization",
                                what, tag, n_split, parts);
    if (!match)
        return garlic_error_set(err, GARLIC_ENOTFOUND,
                                "%s: no GGUF file for '%s' in the repository (%zu GGUF files); "
                                "name one with :QUANT (as in :Q4_K_M)",
                                what, want, n_gguf);
    return entry_ids(match, what, true, b, err);
}

// Whether a file of a safetensors folder is one garlic reads: the config, the tokenizer, the
// chat template and the weights (not READMEs, other weight formats or sub-folders).
static bool folder_file(const char *path)
{
    static const char *const wanted[] = {
        "config.json",           "generation_config.json",  "tokenizer.json",
        "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model",
        "chat_template.jinja",   "chat_template.json",      "model.safetensors.index.json"};
    if (strchr(path, '/'))
        return false;
    for (size_t i = 0; i < sizeof wanted / sizeof wanted[0]; i++)
        if (strcmp(path, wanted[i]) == 0)
            return true;
    return ends_with(path, ".safetensors");
}

// The files of the repository's safetensors folder into *out (garlic_calloc'd, *n of them),
// with their ids; fails when it has no config.json or no *.safetensors.
static int pick_folder(const cJSON *files, const char *what, blob **out, size_t *n,
                       garlic_error *err)
{
    size_t count = 0, n_weights = 0;
    bool config = false;
    const cJSON *f;
    cJSON_ArrayForEach(f, files)
    {
        const char *path = entry_path(f);
        if (!path || !folder_file(path))
            continue;
        count++;
        config |= strcmp(path, "config.json") == 0;
        n_weights += ends_with(path, ".safetensors");
    }
    if (!config || !n_weights)
        return garlic_error_set(err, GARLIC_ENOTFOUND,
                                "%s: the repository has no GGUF file and no safetensors folder "
                                "(config.json and *.safetensors)",
                                what);
    if (count > STORE_FILES_MAX)
        return garlic_error_set(err, GARLIC_EUNSUPPORTED,
                                "%s: the folder has %zu files, more than the %d a stored model "
                                "may have",
                                what, count, STORE_FILES_MAX);
    blob *blobs = garlic_calloc(count, sizeof *blobs);
    if (!blobs)
        return garlic_error_set(err, GARLIC_ENOMEM, "out of memory");
    size_t i = 0;
    int rc = GARLIC_OK;
    cJSON_ArrayForEach(f, files)
    {
        const char *path = entry_path(f);
        if (rc || !path || !folder_file(path))
            continue;
        rc = entry_ids(f, what, false, &blobs[i++], err);
    }
    if (rc) {
        garlic_free(blobs);
        return rc;
    }
    *out = blobs, *n = count;
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

// Whether the listing has a GGUF (not a vision projector).
static bool has_gguf(const cJSON *files)
{
    const cJSON *f;
    cJSON_ArrayForEach(f, files)
    {
        const char *path = entry_path(f);
        if (path && ends_with(path, ".gguf") && !strstr(path, "mmproj"))
            return true;
    }
    return false;
}

// A Hugging Face repository: the GGUF of the tag's quantization, or, for the tag
// "safetensors" or for "latest" in a repository without GGUF files, the safetensors folder.
static int pull_hub(puller *p, store_manifest *m, garlic_error *err)
{
    const store_pull_options *o = p->o;
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
    char url[URL_MAX];
    snprintf(url, sizeof url, "%.*s/api/models/%s/%s/tree/main", (int)elen, endpoint, n->ns,
             n->model);
    request r = {.url = url,
                 .what = p->what,
                 .token = token,
                 .hub = true,
                 .stall_seconds = o->stall_seconds};
    if (!emit(p, "pulling manifest", NULL, 0, 0))
        return cancelled_error(p, err);
    cJSON *files;
    int rc = get_json(&r, p, &files, err);
    if (rc)
        return rc;
    bool folder = strcmp(n->tag, "safetensors") == 0 ||
        (strcmp(n->tag, STORE_DEFAULT_TAG) == 0 && !has_gguf(files));
    blob *blobs = NULL;
    size_t n_blobs = 1;
    if (folder)
        rc = pick_folder(files, p->what, &blobs, &n_blobs, err);
    else if (!(blobs = garlic_calloc(1, sizeof *blobs)))
        rc = garlic_error_set(err, GARLIC_ENOMEM, "out of memory");
    else
        rc = pick_gguf(files, n->tag, p->what, blobs, err);
    cJSON_Delete(files);
    for (size_t i = 0; i < n_blobs && !rc; i++) {
        blob *b = &blobs[i];
        char *escaped = curl_easy_escape(NULL, b->file, 0);
        snprintf(b->url, sizeof b->url, "%.*s/%s/%s/resolve/main/%s", (int)elen, endpoint, n->ns,
                 n->model, escaped ? escaped : b->file);
        curl_free(escaped);
        if (!b->digest[0] && !b->git_oid[0])
            rc = etag_digest(&r, b, err);
        blob_name(b);
    }
    if (!rc && folder) {
        snprintf(m->source, sizeof m->source, "%.*s/%s/%s", (int)elen, endpoint, n->ns, n->model);
        snprintf(m->format, sizeof m->format, "folder");
    } else if (!rc) {
        snprintf(m->source, sizeof m->source, "%.*s", (int)sizeof m->source - 1, blobs->url);
        snprintf(m->format, sizeof m->format, "gguf");
        quantization_of(blobs->file, m->quantization, sizeof m->quantization);
    }
    if (!rc)
        rc = store_blobs(p, r, blobs, n_blobs, m, err);
    garlic_free(blobs);
    return rc;
}

int store_pull(const char *root, const char *name, const store_pull_options *o, garlic_error *err)
{
    store_manifest *m = garlic_calloc(1, sizeof *m);
    puller *p = garlic_calloc(1, sizeof *p);
    if (!m || !p) {
        garlic_free(m), garlic_free(p);
        return garlic_error_set(err, GARLIC_ENOMEM, "out of memory");
    }
    p->root = root, p->o = o;
    char blobs[STORE_PATH_MAX], locks[STORE_PATH_MAX];
    snprintf(blobs, sizeof blobs, "%s/blobs", root);
    snprintf(locks, sizeof locks, "%s/locks", root);
    int rc = store_name_parse(name, &m->name, err);
    if (!rc)
        store_name_format(&m->name, p->what, sizeof p->what);
    if (!rc)
        rc = store_mkdirs(blobs, err);
    if (!rc)
        rc = store_mkdirs(locks, err);
    if (!rc && curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        rc = garlic_error_set(err, GARLIC_EIO, "libcurl failed to start");
    if (!rc)
        rc = store_name_is_hub(&m->name) ? pull_hub(p, m, err) : pull_registry(p, m, err);
    if (!rc)
        emit(p, "success", NULL, 0, 0); // done: too late to cancel
    garlic_free(m), garlic_free(p);
    return rc;
}
