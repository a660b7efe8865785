// SPDX-License-Identifier: MIT
// Test helpers; see util.h.
#include "util.h"

#include "dist/dist.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "engine/engine.h"
#include "tokenizer/tokenizer.h"

const char *test_shared_dir(void)
{
    static char dir[4096];
    static int state; // 0 unknown, 1 present, 2 absent
    if (state == 0) {
        const char *env = getenv("SHARED");
        snprintf(dir, sizeof dir, "%s", env && *env ? env : "../shared");
        char probe[4200];
        snprintf(probe, sizeof probe, "%s/models", dir);
        struct stat st;
        state = stat(probe, &st) == 0 && S_ISDIR(st.st_mode) ? 1 : 2;
    }
    return state == 1 ? dir : NULL;
}

const char *test_shared_path(const char *relative)
{
    static char path[8192];
    snprintf(path, sizeof path, "%s/%s", test_shared_dir() ? test_shared_dir() : "../shared",
             relative);
    return path;
}

static char temp_dir[256];

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)ftw;
    if (flag == FTW_DP)
        rmdir(path);
    else
        unlink(path);
    return 0; // (on: what cannot be removed stays)
}

// Removes the temporary directory and everything in it (folders the tests made included).
static void remove_temp_dir(void)
{
    if (temp_dir[0])
        nftw(temp_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

const char *test_temp_path(const char *name)
{
    static char paths[16][600]; // rotating, so that a few paths can be held at once
    static int next;
    char *path = paths[next++ % 16];
    if (!temp_dir[0]) {
        const char *base = getenv("TMPDIR");
        snprintf(temp_dir, sizeof temp_dir, "%s/garlic-test-XXXXXX", base && *base ? base : "/tmp");
        if (!mkdtemp(temp_dir)) {
            temp_dir[0] = '\0';
            return NULL;
        }
        atexit(remove_temp_dir);
    }
    snprintf(path, 600, "%s/%s", temp_dir, name);
    return path;
}

const char *test_garlic(void)
{
    const char *env = getenv("GARLIC");
    return env && *env ? env : "./garlic";
}

static char *slurp_fd(int fd)
{
    size_t cap = 4096, len = 0, limit = 1 << 20;
    char *buf = malloc(cap);
    for (;;) {
        if (len + 1 >= cap && cap < limit + 1) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
        char sink[4096];
        char *dst = len + 1 < cap ? buf + len : sink;
        size_t room = len + 1 < cap ? cap - len - 1 : sizeof sink;
        ssize_t n = read(fd, dst, room);
        if (n <= 0)
            break;
        if (dst == buf + len)
            len += (size_t)n;
    }
    buf[len] = '\0';
    return buf;
}

int test_run(char **out, char **err, const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    char out_path[600], err_path[600];
    snprintf(out_path, sizeof out_path, "%s", test_temp_path("run.stdout"));
    snprintf(err_path, sizeof err_path, "%s", test_temp_path("run.stderr"));
    char full[10000];
    snprintf(full, sizeof full, "( %s ) >'%s' 2>'%s' </dev/null", cmd, out_path, err_path);
    int status = system(full);
    int fd;
    if (out) {
        fd = open(out_path, O_RDONLY);
        *out = fd >= 0 ? slurp_fd(fd) : strdup("");
        if (fd >= 0)
            close(fd);
    }
    if (err) {
        fd = open(err_path, O_RDONLY);
        *err = fd >= 0 ? slurp_fd(fd) : strdup("");
        if (fd >= 0)
            close(fd);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

bool test_mpi_ready(void)
{
    if (!dist_built_with_mpi()) {
        print_message("skipped: garlic was built without MPI (install libopenmpi-dev)\n");
        return false;
    }
    if (test_run(NULL, NULL, "command -v mpirun") != 0) {
        print_message("skipped: mpirun is absent (install openmpi-bin)\n");
        return false;
    }
    return true;
}

bool test_process_ended(pid_t pid)
{
    char path[64], text[512] = "";
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return true;
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    const char *state = strrchr(text, ')'); // "pid (comm) S ..."
    return state && state[1] == ' ' && state[2] == 'Z';
}

void *test_read_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) {
        buf[n] = '\0';
        if (size)
            *size = (size_t)n;
    }
    return buf;
}

int test_write_file(const char *path, const void *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t n = fwrite(data, 1, size, f);
    return fclose(f) == 0 && n == size ? 0 : -1;
}

void test_rng_seed(test_rng *r, uint64_t seed) { r->state = seed * 0x9E3779B97F4A7C15ull + 1; }

uint64_t test_rng_u64(test_rng *r)
{
    uint64_t x = r->state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

float test_rng_uniform(test_rng *r) { return (float)(test_rng_u64(r) >> 40) / (float)(1 << 24); }

float test_rng_normal(test_rng *r)
{
    float u1 = test_rng_uniform(r), u2 = test_rng_uniform(r);
    if (u1 < 1e-7f)
        u1 = 1e-7f;
    return sqrtf(-2.0f * logf(u1)) * cosf(6.2831853f * u2);
}

void test_request_params(engine_request_params *p, uint32_t max_tokens, uint32_t n_choices)
{
    static const int32_t prompt[] = {1, 300, 301, 302};
    static const sampler_bias no_eos = {.token = 2, .bias = -INFINITY};
    *p = (engine_request_params){
        .prompt = prompt, .n_prompt = 4, .n_choices = n_choices, .seeded = true};
    p->generation.sampling = sampler_params_default(512);
    p->generation.sampling.seed = 5;
    p->generation.sampling.logit_bias = &no_eos;
    p->generation.sampling.n_logit_bias = 1;
    p->generation.max_tokens = max_tokens;
}

engine_request *test_request_new(uint32_t max_tokens, uint32_t n_choices)
{
    engine_request_params p;
    test_request_params(&p, max_tokens, n_choices);
    garlic_error err = {0};
    engine_request *r = engine_request_new(&p, &err);
    if (!r)
        fail_msg("engine_request_new: %s", err.message);
    return r;
}

size_t test_request_finish(engine_request *r, double timeout_seconds, engine_chunk *last)
{
    double deadline = garlic_now() + timeout_seconds;
    size_t text = 0;
    for (;;) {
        if (garlic_now() > deadline)
            fail_msg("the request did not end within %.0f s", timeout_seconds);
        if (!engine_request_next(r, last, 100))
            continue;
        if (last->error != GARLIC_OK)
            fail_msg("the request failed: %s", last->error_message);
        text += last->len;
        if (last->all_done)
            return text;
    }
}

// ---- child processes ----

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

void test_server_start(test_server *s, const char *name, const char *env, const char *args)
{
    snprintf(s->log, sizeof s->log, "%s", test_temp_path(name));
    unlink(s->log); // (a log of an earlier server of that name would give its port)
    s->port = 0;
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "exec env %s '%s' serve --host 127.0.0.1 --port 0 %s 2>'%s'",
             env ? env : "", test_garlic(), args, s->log);
    s->pid = fork();
    if (s->pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    const char *mark = "listening on http://127.0.0.1:";
    for (int i = 0; i < 200 && !s->port; i++) {
        char *log = test_read_file(s->log, NULL);
        const char *at = log ? strstr(log, mark) : NULL;
        if (at)
            s->port = atoi(at + strlen(mark));
        free(log);
        if (!s->port)
            sleep_ms(50);
    }
    if (!s->port)
        fail_msg("garlic serve did not start (log %s)", s->log);
}

int test_server_stop(test_server *s)
{
    if (s->pid <= 0)
        return -1;
    kill(s->pid, SIGTERM);
    int status = 0;
    for (int i = 0; i < 300; i++) {
        if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
            s->pid = 0;
            return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        }
        sleep_ms(20);
    }
    kill(s->pid, SIGKILL);
    waitpid(s->pid, &status, 0);
    s->pid = 0;
    return -1;
}

int test_http(const test_server *s, const char *method, const char *path, const char *json,
              const char *extra, char **body, char **headers)
{
    char body_file[600], head_file[600], data_file[600], data_arg[700] = "";
    snprintf(body_file, sizeof body_file, "%s", test_temp_path("http_body.out"));
    snprintf(head_file, sizeof head_file, "%s", test_temp_path("http_head.out"));
    snprintf(data_file, sizeof data_file, "%s", test_temp_path("http_body.in"));
    if (json) {
        assert_int_equal(test_write_file(data_file, json, strlen(json)), 0);
        snprintf(data_arg, sizeof data_arg,
                 "-H 'Content-Type: application/json' --data-binary @'%s'", data_file);
    }
    char *out = NULL;
    test_run(&out, NULL,
             "curl -s -N -X %s %s %s -D '%s' -o '%s' -w '%%{http_code}' "
             "'http://127.0.0.1:%d%s'",
             method, data_arg, extra ? extra : "", head_file, body_file, s->port, path);
    int status = out ? atoi(out) : 0;
    free(out);
    if (body)
        *body = test_read_file(body_file, NULL);
    if (headers)
        *headers = test_read_file(head_file, NULL);
    return status;
}

int test_mirror_start(const char *root, int *port, pid_t *pid)
{
    if (system("python3 -c 'import http.server' 2>/dev/null") != 0) {
        print_message("python3 is missing: the store tests cannot start their mirror\n");
        return -1;
    }
    char ports[600];
    snprintf(ports, sizeof ports, "%s.ports", root);
    unlink(ports);
    *pid = fork();
    if (*pid == 0) {
        execlp("python3", "python3", "tests/store/mirror.py", "--root", root, "--port-file", ports,
               (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 200; i++) {
        FILE *f = fopen(ports, "r");
        int cdn;
        if (f && fscanf(f, "%d %d", port, &cdn) == 2) {
            fclose(f);
            return 0;
        }
        if (f)
            fclose(f);
        sleep_ms(50);
    }
    print_message("tests/store/mirror.py did not start\n");
    return -1;
}

void test_mirror_stop(pid_t pid)
{
    if (pid > 0) {
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
    }
}

// ---- Reference sets ----

int test_ref_table(const char *dir, test_ref_row *rows, size_t cap, char *error, size_t error_cap)
{
    char path[512];
    snprintf(path, sizeof path, "%s/models.tsv", dir);
    char *text = test_read_file(path, NULL);
    if (!text) {
        snprintf(error, error_cap, "%s: cannot read (run from the repository root)", path);
        return -1;
    }
    int line_no = 0;
    size_t n = 0;
    bool ok = true;
    for (char *line = text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        line_no++;
        if (line[0] == '\0' || line[0] == '#')
            continue;
        char *tab1 = strchr(line, '\t'), *tab2 = tab1 ? strchr(tab1 + 1, '\t') : NULL;
        char *end = NULL;
        double tol = tab1 ? strtod(tab1 + 1, &end) : 0;
        if (!tab2 || end != tab2 || !(tol > 0) || (size_t)(tab1 - line) >= sizeof rows[0].stem ||
            strlen(tab2 + 1) >= sizeof rows[0].args || n == cap) {
            snprintf(error, error_cap,
                     "%s: line %d: want 'stem<TAB>tolerance<TAB>synth arguments' (at most %zu "
                     "rows)",
                     path, line_no, cap);
            ok = false;
            break;
        }
        test_ref_row *r = &rows[n++];
        memcpy(r->stem, line, (size_t)(tab1 - line));
        r->stem[tab1 - line] = '\0';
        r->tol = tol;
        snprintf(r->args, sizeof r->args, "%s", tab2 + 1);
    }
    free(text);
    if (ok && n == 0) {
        snprintf(error, error_cap, "%s: no rows", path);
        ok = false;
    }
    return ok ? (int)n : -1;
}

int test_ref_prompts(const char *dir, char **text, char **prompts, int cap)
{
    char path[512];
    snprintf(path, sizeof path, "%s/prompts.txt", dir);
    *text = test_read_file(path, NULL);
    if (!*text)
        fail_msg("%s: cannot read", path);
    int n = 0;
    char *save = NULL;
    for (char *line = strtok_r(*text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (n == cap)
            fail_msg("%s: more than %d prompts", path, cap);
        prompts[n++] = line;
    }
    if (n == 0)
        fail_msg("%s: no prompts", path);
    return n;
}

int test_read_ids(const char *path, int32_t *ids, int cap)
{
    char *text = test_read_file(path, NULL);
    if (!text)
        return -1;
    int n = 0;
    for (char *p = text, *end; n < cap; p = end) {
        long v = strtol(p, &end, 10);
        if (end == p)
            break;
        ids[n++] = (int32_t)v;
    }
    free(text);
    return n;
}

int test_ref_check_ids(const struct tokenizer *tok, const char *prompt, const char *path,
                       int32_t *ids, int cap, const char *script)
{
    int n = test_read_ids(path, ids, cap);
    if (n < 0)
        fail_msg("%s: missing (run %s)", path, script);
    tokenizer_ids got = {0};
    garlic_error err;
    if (tokenizer_encode(tok, prompt, strlen(prompt), TOKENIZER_ADD_SPECIAL, &got, &err))
        fail_msg("%s: %s", path, err.message);
    if (got.n != (size_t)n)
        fail_msg("%s: garlic gives %zu tokens, the reference %d", path, got.n, n);
    for (int i = 0; i < n; i++)
        if (got.ids[i] != ids[i])
            fail_msg("%s: token %d is %d, reference %d", path, i, got.ids[i], ids[i]);
    tokenizer_ids_deinit(&got);
    return n;
}

int test_connect(int port, const char *from)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (from) {
        struct sockaddr_in local = {.sin_family = AF_INET};
        if (inet_pton(AF_INET, from, &local.sin_addr) != 1 ||
            bind(fd, (struct sockaddr *)&local, sizeof local) != 0) {
            close(fd);
            return -1;
        }
    }
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int test_send(int fd, const char *text)
{
    size_t len = strlen(text);
    while (len) {
        ssize_t n = send(fd, text, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        text += n, len -= (size_t)n;
    }
    return 0;
}

char *test_recv_all(int fd, int timeout_ms)
{
    size_t len = 0, cap = 4096;
    char *out = malloc(cap);
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, timeout_ms) <= 0)
            break;
        if (len + 4096 > cap)
            out = realloc(out, cap *= 2);
        ssize_t n = recv(fd, out + len, cap - len - 1, 0);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    out[len] = '\0';
    return out;
}

void test_reset(int fd)
{
    struct linger l = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    close(fd);
}
