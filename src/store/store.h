// SPDX-License-Identifier: MIT
// The model store: one directory ($GARLIC_MODELS, default $XDG_CACHE_HOME/garlic/models or
// ~/.cache/garlic/models) that holds models by name and tag, and pulling into it from an
// Ollama-compatible registry or a Hugging Face-compatible hub (pull.c, over libcurl).
//
// On disk:
//   blobs/sha256-<hex>                    a file, named by the SHA-256 of its bytes (two names
//                                         for the same file share it)
//   blobs/sha256-<hex>-partial            a download under way (resumed with HTTP Range)
//   blobs/git-<sha1>-partial              a hub file known only by its git blob id, under way
//   locks/sha256-<hex>.lock               flock'd by the pull writing that blob, until its
//                                         manifest is written (locks/git-<sha1>.lock alike)
//   manifests/<host>/<ns>/<name>/<tag>    a small JSON: {"schema": 1, "format": "gguf" or
//                                         "folder", "files": [{"path", "digest", "size"}],
//                                         "size", "quantization", "modified", "source"}
//   folders/<key>/<file>                  a stored "folder" model as a directory of symlinks
//                                         to ../../blobs/sha256-<hex>, made by store_resolve
//                                         (key: the sha256 of the manifest's files)
// A manifest is written (temp file, fsync, rename) only after every blob it names is in place,
// so a crash leaves at worst a -partial file, never a half model that looks complete.
#ifndef GARLIC_STORE_H
#define GARLIC_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "base/error.h"

enum {
    STORE_PATH_MAX = 4096,
    STORE_PART_MAX = 256,  // a host, namespace, name or tag
    STORE_DIGEST_HEX = 64, // hex digits of a SHA-256
};

#define STORE_DEFAULT_HOST "registry.ollama.ai"
#define STORE_DEFAULT_NAMESPACE "library"
#define STORE_DEFAULT_TAG "latest"
#define STORE_HUB_HOST "hf.co"

// A model name, resolved as Ollama resolves it: "name" is
// registry.ollama.ai/library/name:latest, "library/name:tag" and "host/ns/name:tag" fill in
// what is missing. "org/repo[:tag]" (two parts, the first not "library") is the Hugging Face
// repository hf.co/org/repo[:tag], as vLLM and llama.cpp's -hf read it; so is
// "hf.co/org/repo:Q4_K_M" (store_name_is_hub). A hub tag names the GGUF's quantization;
// ":safetensors", or ":latest" in a repository without GGUF files, is its safetensors folder.
typedef struct store_name {
    char host[STORE_PART_MAX]; // "registry.ollama.ai", "127.0.0.1:8080", "hf.co"
    char ns[STORE_PART_MAX];   // "library", the hub's organisation
    char model[STORE_PART_MAX];
    char tag[STORE_PART_MAX]; // "latest", "8b", a quantization ("Q4_K_M")
} store_name;

// Parses text into *out. Fails (GARLIC_EINVAL, naming text) on an empty part, more than three
// '/'-separated parts, "..", or characters outside [A-Za-z0-9._-] (and ':' in the host).
int store_name_parse(const char *text, store_name *out, garlic_error *err);

// "host/ns/model:tag" written in full (buf of cap bytes; truncates).
void store_name_format(const store_name *n, char *buf, size_t cap);

// The short form `garlic list` prints: the default host and namespace left out, as ollama does.
void store_name_display(const store_name *n, char *buf, size_t cap);

// Whether the name is a Hugging Face repository (host hf.co or huggingface.co).
bool store_name_is_hub(const store_name *n);

// Whether text names a file or folder rather than a store name: it exists on disk, starts with
// '/', './', '../' or '~', or ends in ".gguf".
bool store_is_path(const char *text);

// The store's root directory into buf: $GARLIC_MODELS, else $XDG_CACHE_HOME/garlic/models,
// else $HOME/.cache/garlic/models. Fails when none can be formed.
int store_root(char *buf, size_t cap, garlic_error *err);

// One file of a stored model.
typedef struct store_file {
    char path[STORE_PART_MAX];         // its name in the model ("model.gguf")
    char digest[STORE_DIGEST_HEX + 1]; // hex SHA-256
    uint64_t size;
} store_file;

// The most files a manifest lists (DeepSeek-V3's folder has 163 weight files). A manifest is
// about 170 KiB: keep it off the stack.
enum { STORE_FILES_MAX = 512 };

// A manifest: what `garlic list` needs without opening the model.
typedef struct store_manifest {
    store_name name;
    char format[16];       // "gguf" (one file) or "folder" (several)
    char quantization[32]; // "Q4_K_M", "" when unknown
    char source[1024];     // where it was pulled from ("" for a copy made here)
    int64_t modified;      // Unix seconds
    uint64_t size;         // sum of the files' sizes
    size_t n_files;
    store_file files[STORE_FILES_MAX];
} store_manifest;

// The first file of m that is part of the model, not one of the extras a Modelfile adds
// ("template", "system", "params", "license"); NULL when there is none. It lives as long as m.
const store_file *store_manifest_weights(const store_manifest *m);

// Path of the blob with the given hex digest ("<root>/blobs/sha256-<hex>").
void store_blob_path(const char *root, const char *digest, char *buf, size_t cap);

// Path of a name's manifest.
void store_manifest_path(const char *root, const store_name *n, char *buf, size_t cap);

// Creates every missing directory of path (mode 0755), like mkdir -p.
int store_mkdirs(const char *path, garlic_error *err);

// Writes data to path atomically: a temporary file beside it, fsync, rename, fsync of the
// folder. Errors name path.
int store_write_atomic(const char *path, const void *data, size_t size, garlic_error *err);

// Reads the manifest of name; GARLIC_ENOTFOUND ("'x' is neither a file nor a model in the
// store (root)...") when
// absent, GARLIC_EFORMAT naming the file when damaged.
int store_manifest_read(const char *root, const store_name *name, store_manifest *m,
                        garlic_error *err);

// Writes m under m->name atomically, after checking that each of its blobs exists with its size.
int store_manifest_write(const char *root, const store_manifest *m, garlic_error *err);

// Every manifest in the store, newest first: *out (garlic_malloc'd, freed by the caller with
// garlic_free) gets *n of them. Damaged manifests are skipped with a warning on stderr.
int store_list(const char *root, store_manifest **out, size_t *n, garlic_error *err);

// Removes name's manifest, then every blob no manifest names any longer, and every folder of
// links (folders/) that no manifest needs.
int store_remove(const char *root, const char *name, garlic_error *err);

// Makes dst name the same blobs as src (no bytes are copied).
int store_copy(const char *root, const char *src, const char *dst, garlic_error *err);

// The file or folder to open for text: text itself when store_is_path(text); else, for a
// stored "gguf" model, its weights' blob (the file that is not one of the extras "template",
// "system", "params", "license"), and for a stored "folder" model the directory
// <root>/folders/<key> of symlinks to its blobs (made on first use, atomically: a temporary
// directory renamed into place; store_remove removes those no manifest needs).
// GARLIC_ENOTFOUND when text is not stored. buf gets the path.
int store_resolve(const char *text, char *buf, size_t cap, garlic_error *err);

// SHA-256 (OpenSSL's libcrypto) of a whole file into hex (65 bytes with the NUL).
int store_sha256_file(const char *path, char hex[STORE_DIGEST_HEX + 1], garlic_error *err);

// ---- pull.c ----

// What a pull reports as it goes, in the words of Ollama's /api/pull status lines, in this
// order: "pulling manifest"; for each blob "pulling <first 12 hex digits of the digest>" with
// completed = what is already there, then as bytes arrive (at most every 100 ms), then
// completed == total; "verifying sha256 digest"; "writing manifest"; "success". While a pull
// waits (on another pull's lock, before a retry, on a stalled transfer) its last event is
// repeated every second, with what the other pull has so far when it waits on one. The
// strings live until on_event returns.
typedef struct store_pull_event {
    const char *status; // "pulling manifest", "pulling <first 12 hex digits of the digest>",
                        // "verifying sha256 digest", "writing manifest", "success"
    const char *digest; // "sha256:<hex>" of the blob being fetched ("sha1:<git blob id>" for a
                        // small hub file whose sha256 is known only once it is down), else NULL
    uint64_t total;     // that blob's bytes (0 outside a blob)
    uint64_t completed; // bytes of it in place so far
} store_pull_event;

typedef struct store_pull_options {
    bool insecure;           // plain HTTP to an Ollama-compatible registry
    const char *hf_endpoint; // NULL: $HF_ENDPOINT, else https://huggingface.co
    const char *hf_token;    // NULL: $HF_TOKEN (sent as "Authorization: Bearer")
    uint32_t retries;        // attempts after the first on transient failures
    uint32_t backoff_ms;     // the first retry's wait, doubled each time
    uint32_t stall_seconds;  // a transfer that moves no byte this long is cut (and retried)
    FILE *progress;          // NULL: silent; a terminal gets a bar, anything else lines
    // Called on each step and, while a blob downloads, at most every 100 ms (NULL: none), on
    // the thread calling store_pull. Returning false cancels the pull (a download under way
    // is aborted): store_pull then fails with GARLIC_ESTOPPED ("pull of NAME cancelled"),
    // keeps the partial download for the next pull to resume, and releases its locks.
    bool (*on_event)(void *ctx, const store_pull_event *e);
    void *event_ctx;
} store_pull_options;

// Defaults: secure, endpoints and token from the environment, 5 retries from 1 s, stalls cut
// after 60 s, progress on stderr.
void store_pull_options_default(store_pull_options *o);

// Downloads name into the store at root: its blobs first (resumed, each under a flock so that
// two pulls fetch it once), then, once all are down, verifies them (sha256; a small hub file
// that has only a git blob id by that, and it is still stored by its sha256) and renames them
// into place, then writes its manifest. From a hub: the GGUF of the tag, or the safetensors
// folder (config.json, generation_config.json, the tokenizer and chat template files,
// model.safetensors.index.json, every *.safetensors; format "folder"). Errors:
// GARLIC_ENOTFOUND (404, naming the model; no file for the tag), GARLIC_EINVAL (401/403: says
// to set HF_TOKEN; bad name), GARLIC_EFORMAT (a checksum mismatch, naming the file; the
// partial file is removed), GARLIC_EUNSUPPORTED (a GGUF split in parts, naming them),
// GARLIC_EIO (too little disk space, or the network after the retries), GARLIC_ESTOPPED
// (cancelled by on_event).
int store_pull(const char *root, const char *name, const store_pull_options *o, garlic_error *err);

// ---- create.c: models made here (Ollama's Modelfile and /api/create) ----

// What a stored model adds to its weights, as Ollama's Modelfile TEMPLATE, SYSTEM, PARAMETER
// and LICENSE give it: blobs the manifest lists under the paths "template", "system",
// "params" and "license" (the weights are the other files). Strings are garlic_malloc'd,
// NULL when absent.
typedef struct store_extras {
    char *template_text; // a chat template replacing the model's own
    char *system;        // the system message used when a request has none
    char *params_json;   // a JSON object of Ollama option names to default values:
                         // {"temperature": 0.2, "stop": ["<|end|>"], "num_ctx": 4096}
    char *license;
} store_extras;

// Reads the extras of m (all NULL when it has none). Errors name the blob.
int store_extras_read(const char *root, const store_manifest *m, store_extras *out,
                      garlic_error *err);
void store_extras_deinit(store_extras *e);

// A model to create: from a stored model (inheriting its extras) or from a GGUF file or a
// Hugging Face folder on disk (copied into the store), with extras set or replaced.
typedef struct store_create_request {
    const char *name;          // the new model's name
    const char *from;          // a stored model's name, or a path
    const char *template_text; // NULL: inherited (or none); "" removes it
    const char *system;        // NULL: inherited; "" removes it
    const char *params_json;   // NULL: inherited; else a JSON object replacing the inherited
                               // one key by key (checked: every key a known option)
    const char *license;       // NULL: inherited; "" removes it
} store_create_request;

// Creates r->name in the store (blobs first, the manifest last, as a pull does; a file is
// copied only when its blob is not there already). A name that exists is replaced, and the
// blobs no manifest names any longer are removed. Errors name the field or file at fault: an
// unknown or mistyped parameter, a missing FROM, a file that is not a GGUF or model folder
// (a folder with a config.json). progress (NULL: silent) gets a line per step.
int store_create(const char *root, const store_create_request *r, FILE *progress,
                 garlic_error *err);

// A Modelfile (FROM, PARAMETER, SYSTEM, TEMPLATE, LICENSE; """...""" for text over several
// lines; '#' comments), parsed. FROM paths are made absolute against base_dir (the
// Modelfile's folder; NULL: the working directory), "~/" expanded; a FROM that is not a path
// stays a store name. Strings are garlic_malloc'd, NULL when absent.
typedef struct store_modelfile {
    char *from;
    char *template_text, *system, *license;
    char *params_json; // compact JSON of the PARAMETER lines ("stop" a list); NULL: none
} store_modelfile;

// Parses text[0..len). Errors (GARLIC_EFORMAT) name the line and the instruction: an unknown
// instruction, no FROM, an unknown parameter or one of the wrong type, an unclosed """.
int store_modelfile_parse(const char *text, size_t len, const char *base_dir, store_modelfile *out,
                          garlic_error *err);
void store_modelfile_deinit(store_modelfile *m);

// Checks a params object (text of a JSON object) as Modelfile PARAMETER lines and /api/create's
// "parameters" give it: every key an option garlic honours, of its type ("stop" a string or a
// list of strings). Errors name the key.
int store_params_check(const char *json, garlic_error *err);

#endif
