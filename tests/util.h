// SPDX-License-Identifier: MIT
// Helpers shared by the test binaries: where ../shared is, temporary files, running the
// garlic binary and capturing its output, reading whole files, a deterministic RNG, and the
// request the engine and registry tests send to their synthesized models.
#ifndef GARLIC_TESTS_UTIL_H
#define GARLIC_TESTS_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <cmocka.h>

// The shared folder ($SHARED, default ../shared), or NULL when it is absent. Tests that
// need it call skip_without_shared() first, which prints why and skips.
const char *test_shared_dir(void);
#define skip_without_shared()                                                                      \
    do {                                                                                           \
        if (!test_shared_dir()) {                                                                  \
            print_message("skipped: ../shared is absent (set SHARED=path to run this)\n");         \
            skip();                                                                                \
        }                                                                                          \
    } while (0)

// "<shared>/<relative>" in a static buffer (valid until the next call).
const char *test_shared_path(const char *relative);

// A file name in a per-process temporary directory (removed at exit). The result lives in
// one of 16 rotating buffers: copy it if it must outlive 15 more calls.
const char *test_temp_path(const char *name);

// The garlic binary to run ($GARLIC, default ./garlic).
const char *test_garlic(void);

// Runs a shell command, captures stdout and stderr (separately, each NUL-terminated, at most
// 1 MiB kept) and returns the exit status (-1 if it did not exit normally). Pass NULL for an
// output that is not wanted. The caller frees *out and *err with free().
int test_run(char **out, char **err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

// Whether multi-rank runs can happen here (garlic built with MPI, mpirun installed); prints
// why not otherwise (the caller skips).
bool test_mpi_ready(void);

// Whether process pid has ended (gone, or a zombie waiting for its parent).
bool test_process_ended(pid_t pid);

// Reads a whole file; returns NULL on failure. The caller frees it with free().
void *test_read_file(const char *path, size_t *size);
int test_write_file(const char *path, const void *data, size_t size);

// xorshift64* random numbers: deterministic per seed.
typedef struct test_rng {
    uint64_t state;
} test_rng;
void test_rng_seed(test_rng *r, uint64_t seed);
uint64_t test_rng_u64(test_rng *r);
float test_rng_uniform(test_rng *r); // [0, 1)
float test_rng_normal(test_rng *r);  // N(0, 1)

typedef struct engine_request engine_request;
typedef struct engine_request_params engine_request_params;
typedef struct engine_chunk engine_chunk;

// The parameters of a request for the prompt {BOS, 300, 301, 302} of the synthesized models'
// vocabulary: n_choices choices of max_tokens tokens, sampled with seed 5 (choice i with
// 5 + i), with end-of-sequence (token 2) banned so that every choice runs to max_tokens. The
// prompt and the bias are static.
void test_request_params(engine_request_params *p, uint32_t max_tokens, uint32_t n_choices);

// A request with test_request_params. Fails the test when it cannot be made. The caller owns
// it (engine_request_release).
engine_request *test_request_new(uint32_t max_tokens, uint32_t n_choices);

// Reads r (submitted) until its stream ends, failing the test when a chunk carries an error
// or the end takes more than timeout_seconds. *last gets the final chunk, whose pointers live
// until r is read again or released. Returns the bytes of text read.
size_t test_request_finish(engine_request *r, double timeout_seconds, engine_chunk *last);

// ---- garlic serve, and the store tests' mirror, as child processes ----

#include <sys/types.h>

typedef struct test_server {
    pid_t pid;
    int port;
    char log[600];
} test_server;

// Starts `ENV garlic serve --host 127.0.0.1 --port 0 ARGS` (env: "" or shell assignments such
// as "GARLIC_MODELS=/x"), its standard error in test_temp_path(name), and waits until it
// says where it listens. Fails the test when it does not within 10 s.
void test_server_start(test_server *s, const char *name, const char *env, const char *args);

// SIGTERM, then the exit status (-1: it had to be killed). Nothing when it is not running.
int test_server_stop(test_server *s);

// A request to s with curl (-N: streams as they come): method, path, an optional JSON body
// and extra curl arguments. Returns the HTTP status; *body and *headers (each may be NULL)
// get the answer (free()).
int test_http(const test_server *s, const char *method, const char *path, const char *json,
              const char *extra, char **body, char **headers);

// A raw TCP connection to 127.0.0.1:port from the local address from (NULL: any, or another
// loopback address such as "127.0.0.7"); -1 on failure.
int test_connect(int port, const char *from);
// Sends all of text; 0 or -1.
int test_send(int fd, const char *text);
// Reads until the server closes or timeout_ms pass without a byte; the bytes read (free()).
char *test_recv_all(int fd, int timeout_ms);
// Closes fd with a reset (SO_LINGER 0): what a client that crashes or aborts looks like.
void test_reset(int fd);

// Starts tests/store/mirror.py over root (ORG/REPO/ folders of files): a Hugging Face hub and
// an Ollama registry on *port, with injected faults (see the script). 0, or -1 (printed)
// when python3 or the script is missing or it does not start. *pid is for test_mirror_stop.
int test_mirror_start(const char *root, int *port, pid_t *pid);
void test_mirror_stop(pid_t pid);

// ---- Reference sets (tests/data/<set>/: models.tsv, prompts.txt, <stem>/P<i>.ids) ----

// One row of a models.tsv: what to synthesize and how close garlic must come.
typedef struct test_ref_row {
    char stem[64];   // the folder of its references, and the test's name
    double tol;      // relative tolerance
    char args[1024]; // garlic synth arguments, space-separated (passed through the shell)
} test_ref_row;

// Reads dir/models.tsv (tab-separated stem, tolerance, synth arguments; blank lines and lines
// starting with '#' skipped) into rows (at most cap). Returns the count, or -1 with error
// (error_cap bytes) saying why (unreadable, a malformed row, no rows).
int test_ref_table(const char *dir, test_ref_row *rows, size_t cap, char *error, size_t error_cap);

// Reads dir/prompts.txt, one prompt per line (at most cap): prompts point into *text (free()).
// Fails the test when it is absent, empty or too long.
int test_ref_prompts(const char *dir, char **text, char **prompts, int cap);

// Whitespace-separated ids of path (at most cap); -1 when the file is absent.
int test_read_ids(const char *path, int32_t *ids, int cap);

struct tokenizer;

// Checks that tok gives prompt the ids of the reference file path (as test_read_ids reads
// them; ids[cap] receives them) and returns their count. Fails the test, naming path, when
// the file is missing (script: what writes it) or the ids differ.
int test_ref_check_ids(const struct tokenizer *tok, const char *prompt, const char *path,
                       int32_t *ids, int cap, const char *script);

#endif
