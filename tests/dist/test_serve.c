// SPDX-License-Identifier: MIT
// `garlic serve` under tensor parallelism: `mpirun -np 2 garlic serve -m MODEL
// --tensor-parallel 2` must answer /v1/completions with the greedy text of a one-process
// server, for prompts one at a time, four at once (continuous batching: rank 0's steps hold
// several sequences) and a repeated prompt (the prefix cache: later requests reuse the first
// one's blocks, on every rank); SIGTERM to rank 0 or to mpirun must end every rank; a second
// -m model is served by rank 0 alone beside the split one; --keep-alive unloads and
// reloads the model on every rank (test_keep_alive); a rank that hangs or dies mid-stream
// ends the job after rank 0 told its clients and /health (test_rank_hung_clients,
// test_rank_killed_clients), and one that hangs while the server is idle is noticed through
// the heartbeat (test_rank_hung_idle). Skips with a message when mpirun is absent or garlic
// was built without MPI.
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

#include "base/clock.h"
#include "dist/dist.h"
#include "model/synth.h"
#include "tensor/types.h"

// The environment and launcher test_server_start puts before `garlic serve`.
static const char *const MPIRUN = "ASAN_OPTIONS=detect_leaks=0 OMPI_ALLOW_RUN_AS_ROOT=1 "
                                  "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 "
                                  "OMPI_MCA_rmaps_base_oversubscribe=1 mpirun -np 2 --mca btl "
                                  "self,vader";

// The servers a test started, stopped by the teardown when the test fails before it does.
static test_server started[2];

static int stop_started(void **state)
{
    (void)state;
    for (int i = 0; i < 2; i++)
        if (started[i].pid > 0)
            test_server_stop(&started[i]);
    return 0;
}

static const char *model_path(void)
{
    static char path[600];
    if (path[0])
        return path;
    model_synth_params p;
    model_synth_params_default(&p);
    p.n_head_kv = 4; // (2 ranks divide 8 heads and 4 KV heads)
    p.n_layer = 4;
    snprintf(path, sizeof path, "%s", test_temp_path("serve-tp.gguf"));
    garlic_error err;
    if (model_synth_write(&p, path, &err))
        fail_msg("%s", err.message);
    return path;
}

// The text of a greedy completion of prompt by s's model (max_tokens n), or fails the test.
static char *complete_by(const test_server *s, const char *model, const char *prompt, int n)
{
    char json[1200], *body = NULL;
    snprintf(json, sizeof json,
             "{\"model\": \"%s\", \"prompt\": \"%s\", \"max_tokens\": %d, \"temperature\": 0}",
             model, prompt, n);
    int status = test_http(s, "POST", "/v1/completions", json, NULL, &body, NULL);
    if (status != 200)
        fail_msg("HTTP %d: %s", status, body ? body : "");
    const char *at = strstr(body, "\"text\":");
    assert_non_null(at);
    const char *end = strstr(at, "\"logprobs\"");
    assert_non_null(end);
    char *text = strndup(at, (size_t)(end - at));
    free(body);
    return text;
}

static char *complete(const test_server *s, const char *prompt, int n)
{
    return complete_by(s, "m", prompt, n);
}

// A second, different model (2 layers, 6 heads: one rank could not split its heads with
// another), which rank 0 serves alone beside the split one.
static const char *local_model_path(void)
{
    static char path[600];
    if (path[0])
        return path;
    model_synth_params p;
    model_synth_params_default(&p);
    p.n_layer = 2, p.n_head = 6, p.n_head_kv = 3, p.dim = 192;
    p.seed = 7;
    snprintf(path, sizeof path, "%s", test_temp_path("serve-local.gguf"));
    garlic_error err;
    if (model_synth_write(&p, path, &err))
        fail_msg("%s", err.message);
    return path;
}

// Occurrences of needle in the text of the file at path.
static int count_in_file(const char *path, const char *needle)
{
    char *text = test_read_file(path, NULL);
    assert_non_null(text);
    int n = 0;
    for (const char *at = text; (at = strstr(at, needle)); at += strlen(needle))
        n++;
    free(text);
    return n;
}

// Fails unless the job's log (both ranks write it) holds needle.
static void log_holds(const test_server *s, const char *needle)
{
    if (count_in_file(s->log, needle) == 0)
        fail_msg("%s lacks '%s'", s->log, needle);
}

static const char *const PROMPTS[] = {
    "Once upon a time",
    "the quick brown fox jumps over",
    "1 2 3 4 5 6 7 8",
    "a story of four requests at once",
};
enum { N_PROMPTS = 4, N_GEN = 32 };

// Four completions sent at once (curl in the background), their answers' texts in texts[].
static void complete_at_once(const test_server *s, char **texts)
{
    char cmd[6000] = "";
    size_t len = 0;
    for (int i = 0; i < N_PROMPTS; i++) {
        char out[600];
        snprintf(out, sizeof out, "%s.%d", test_temp_path("at-once"), i);
        len += (size_t)snprintf(cmd + len, sizeof cmd - len,
                                "curl -s -o '%s' -H 'Content-Type: application/json' -d "
                                "'{\"model\": \"m\", \"prompt\": \"%s\", \"max_tokens\": %d, "
                                "\"temperature\": 0}' http://127.0.0.1:%d/v1/completions & ",
                                out, PROMPTS[i], N_GEN, s->port);
    }
    snprintf(cmd + len, sizeof cmd - len, "wait");
    assert_int_equal(test_run(NULL, NULL, "%s", cmd), 0);
    for (int i = 0; i < N_PROMPTS; i++) {
        char out[600];
        snprintf(out, sizeof out, "%s.%d", test_temp_path("at-once"), i);
        char *body = test_read_file(out, NULL);
        assert_non_null(body);
        const char *at = strstr(body, "\"text\":"), *end = at ? strstr(at, "\"logprobs\"") : NULL;
        if (!end)
            fail_msg("request %d: %s", i, body);
        texts[i] = strndup(at, (size_t)(end - at));
        free(body);
    }
}

// A counter of /metrics (0 when absent).
static double metric(const test_server *s, const char *name)
{
    char *body = NULL;
    assert_int_equal(test_http(s, "GET", "/metrics", NULL, NULL, &body, NULL), 200);
    char key[128];
    snprintf(key, sizeof key, "\n%s ", name);
    const char *at = strstr(body, key);
    double v = at ? atof(at + strlen(key)) : 0;
    free(body);
    return v;
}

// The ranks mpirun (pid) started: their process ids by OMPI_COMM_WORLD_RANK (0 when absent).
static void find_ranks(pid_t mpirun, pid_t ranks[2])
{
    ranks[0] = ranks[1] = 0;
    DIR *d = opendir("/proc");
    assert_non_null(d);
    for (struct dirent *e; (e = readdir(d));) {
        int pid = atoi(e->d_name);
        char path[300], stat[600] = "";
        snprintf(path, sizeof path, "/proc/%d/stat", pid);
        FILE *f = pid > 0 ? fopen(path, "r") : NULL;
        if (!f)
            continue;
        size_t n = fread(stat, 1, sizeof stat - 1, f);
        fclose(f);
        stat[n] = '\0';
        const char *close = strrchr(stat, ')');
        int ppid = 0;
        if (!close || sscanf(close + 2, "%*c %d", &ppid) != 1 || ppid != mpirun)
            continue;
        snprintf(path, sizeof path, "/proc/%d/environ", pid);
        static char env[1 << 16]; // (procfs gives no size: read what there is)
        f = fopen(path, "r");
        size_t size = f ? fread(env, 1, sizeof env - 1, f) : 0;
        if (f)
            fclose(f);
        env[size] = '\0';
        for (size_t i = 0; i < size; i += strlen(env + i) + 1)
            if (strncmp(env + i, "OMPI_COMM_WORLD_RANK=", 21) == 0 && atoi(env + i + 21) < 2)
                ranks[atoi(env + i + 21)] = pid;
    }
    closedir(d);
}

// Starts `garlic serve args` under launcher (mpirun), logging to log, and finds its two
// ranks, or fails the test.
static void start_job(test_server *s, const char *log, const char *launcher, const char *args,
                      pid_t ranks[2])
{
    test_server_start(s, log, launcher, args);
    find_ranks(s->pid, ranks);
    assert_true(ranks[0] > 0 && ranks[1] > 0);
}

// Waits (at most 20 s from t0) for the job (mpirun, the server's pid) and both ranks to end.
// Returns mpirun's exit status (-1: killed by a signal).
static int wait_job_end(test_server *s, const pid_t ranks[2], double t0)
{
    int status = 0;
    while (waitpid(s->pid, &status, WNOHANG) == 0) {
        if (garlic_now() - t0 > 20) {
            kill(s->pid, SIGKILL);
            for (int r = 0; r < 2; r++)
                kill(ranks[r], SIGKILL);
            fail_msg("the job still ran 20 s after the signal");
        }
        usleep(20 * 1000);
    }
    s->pid = 0;
    while (!(test_process_ended(ranks[0]) && test_process_ended(ranks[1])) &&
           garlic_now() - t0 < 25)
        usleep(20 * 1000);
    assert_true(test_process_ended(ranks[0]) && test_process_ended(ranks[1]));
    print_message("the job ended %.2f s after the signal\n", garlic_now() - t0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// Sends sig to who and waits (at most 20 s) for the job and both ranks to end
// (wait_job_end).
static int stop_job(test_server *s, pid_t who, int sig, const pid_t ranks[2])
{
    double t0 = garlic_now();
    assert_int_equal(kill(who, sig), 0);
    return wait_job_end(s, ranks, t0);
}

// A server split between 2 ranks by `layout` answers as one process does.
static void check_same_text(const char *layout)
{
    char args[1500];
    snprintf(args, sizeof args,
             "-m '%s=m' -m '%s=b' --no-store -t 1 --kv-type f32 --parallel 4 --quiet", model_path(),
             local_model_path());
    test_server *one = &started[0], *tp = &started[1];
    test_server_start(one, "serve-one.log", "", args);
    char tp_args[1700];
    snprintf(tp_args, sizeof tp_args, "%s %s --dist-timeout 30", args, layout);
    pid_t ranks[2];
    start_job(tp, "serve-tp.log", MPIRUN, tp_args, ranks);
    // One at a time.
    char *want[N_PROMPTS];
    for (int i = 0; i < N_PROMPTS; i++) {
        want[i] = complete(one, PROMPTS[i], N_GEN);
        char *got = complete(tp, PROMPTS[i], N_GEN);
        if (strcmp(got, want[i]) != 0)
            fail_msg("'%s': 2 ranks answered %s, one process %s", PROMPTS[i], got, want[i]);
        free(got);
    }
    // Four at once: rank 0's steps batch them.
    char *got[N_PROMPTS];
    complete_at_once(tp, got);
    for (int i = 0; i < N_PROMPTS; i++) {
        if (strcmp(got[i], want[i]) != 0)
            fail_msg("'%s' among 4 at once: 2 ranks answered %s, one process %s", PROMPTS[i],
                     got[i], want[i]);
        free(got[i]);
    }
    // A prompt of 40 tokens, three times: the later ones find its first blocks cached.
    const char *longer = "one two three four five six seven eight nine ten eleven twelve "
                         "thirteen fourteen fifteen sixteen seventeen eighteen nineteen";
    double hits = metric(tp, "garlic_prefix_cache_hits_total");
    char *first = complete(one, longer, N_GEN);
    for (int k = 0; k < 3; k++) {
        char *again = complete(tp, longer, N_GEN);
        if (strcmp(again, first) != 0)
            fail_msg("repeated prompt, time %d: 2 ranks answered %s, one process %s", k + 1, again,
                     first);
        free(again);
    }
    double hits_after = metric(tp, "garlic_prefix_cache_hits_total");
    print_message("prefix cache hits under 2 ranks: %.0f\n", hits_after - hits);
    assert_true(hits_after > hits);
    free(first);
    // The second -m model: rank 0 alone loads it whole (one load line in the job's log, which
    // both ranks write) and answers as one process does; the split model still answers after.
    char *tags = NULL;
    assert_int_equal(test_http(tp, "GET", "/api/tags", NULL, NULL, &tags, NULL), 200);
    assert_non_null(strstr(tags, "\"name\":\"m\""));
    assert_non_null(strstr(tags, "\"name\":\"b\""));
    free(tags);
    for (int i = 0; i < 2; i++) {
        char *b_one = complete_by(one, "b", PROMPTS[i], N_GEN),
             *b_tp = complete_by(tp, "b", PROMPTS[i], N_GEN);
        if (strcmp(b_tp, b_one) != 0)
            fail_msg("'%s' to the local model: rank 0 answered %s, one process %s", PROMPTS[i],
                     b_tp, b_one);
        char *m_tp = complete(tp, PROMPTS[i], N_GEN);
        if (strcmp(m_tp, want[i]) != 0)
            fail_msg("'%s' after the local model: 2 ranks answered %s, one process %s", PROMPTS[i],
                     m_tp, want[i]);
        free(b_one), free(b_tp), free(m_tp);
    }
    int b_loads = count_in_file(tp->log, "model=b ");
    print_message("load lines of the local model in the job's log: %d\n", b_loads);
    assert_int_equal(b_loads, 1);
    for (int i = 0; i < N_PROMPTS; i++)
        free(want[i]);
    // SIGTERM to rank 0: it shuts down, its engine's stop ends the other rank.
    int status = stop_job(tp, ranks[0], SIGTERM, ranks);
    print_message("SIGTERM to rank 0: mpirun's exit status %d\n", status);
    assert_int_equal(status, 0);
    log_holds(tp, "(2 models; 'm' split between 2 ranks, the others on rank 0)");
    log_holds(tp, "SIGTERM: shutting down");
    test_server_stop(one);
}

static void test_same_text(void **state)
{
    (void)state;
    if (!test_mpi_ready())
        skip();
    check_same_text("--tensor-parallel 2");
}

// Pipeline parallelism: each rank holds one stage of the layers; the steps go through both.
static void test_same_text_pipeline(void **state)
{
    (void)state;
    if (!test_mpi_ready())
        skip();
    check_same_text("--pipeline-parallel 2");
}

// SIGTERM to mpirun (what a supervisor sends) ends every rank too.
static void test_stop_mpirun(void **state)
{
    (void)state;
    if (!test_mpi_ready())
        skip();
    char args[900];
    snprintf(args, sizeof args, "-m '%s=m' --no-store -t 1 --tensor-parallel 2", model_path());
    test_server *tp = &started[1];
    pid_t ranks[2];
    start_job(tp, "serve-tp2.log", MPIRUN, args, ranks);
    free(complete(tp, "hello", 4));
    int status = stop_job(tp, tp->pid, SIGTERM, ranks);
    print_message("SIGTERM to mpirun: its exit status %d\n", status);
}

// A model slow enough (8 layers of 512, Q8_0) that a long completion is still streaming when
// a rank is stopped, with room for it (8192 positions).
static const char *fault_model_path(void)
{
    static char path[600];
    if (path[0])
        return path;
    model_synth_params p;
    model_synth_params_default(&p);
    p.dim = 512, p.n_layer = 8, p.n_head = 8, p.n_head_kv = 4, p.ffn = 1536, p.context = 8192;
    p.type = TENSOR_TYPE_Q8_0;
    snprintf(path, sizeof path, "%s", test_temp_path("serve-fault.gguf"));
    garlic_error err;
    if (model_synth_write(&p, path, &err))
        fail_msg("%s", err.message);
    return path;
}

// Starts `curl -N` in the background: path's (streamed) answer to json goes to the file out,
// its status line and headers first.
static pid_t stream_in_background(const test_server *s, const char *path, const char *json,
                                  const char *out)
{
    unlink(out);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char url[200];
        snprintf(url, sizeof url, "http://127.0.0.1:%d%s", s->port, path);
        execlp("curl", "curl", "-sNi", "--max-time", "60", "-o", out, "-H",
               "Content-Type: application/json", "-d", json, url, (char *)NULL);
        _exit(127);
    }
    return pid;
}

// Waits (at most `limit` s) for the file at path to hold more than `bytes` bytes.
static bool file_grows(const char *path, off_t bytes, double limit)
{
    for (double t0 = garlic_now(); garlic_now() - t0 < limit; usleep(20 * 1000)) {
        struct stat st;
        if (stat(path, &st) == 0 && st.st_size > bytes)
            return true;
    }
    return false;
}

// During a fault's grace: /health turns 503, naming the rank, while rank 0 still answers,
// and a new request gets a 503 distributed_fault.
static void check_health_fault(const test_server *tp, double t0)
{
    char *body = NULL;
    int status = 200;
    while (status == 200 && garlic_now() - t0 < 10) {
        free(body), body = NULL;
        status = test_http(tp, "GET", "/health", NULL, "--max-time 2", &body, NULL);
        if (status == 200)
            usleep(100 * 1000);
    }
    double t_health = garlic_now() - t0;
    print_message("rank 1 stopped: /health answered %d after %.2f s: %s\n", status, t_health,
                  body ? body : "");
    assert_int_equal(status, 503);
    assert_non_null(strstr(body, "\"status\":\"error\""));
    assert_non_null(strstr(body, "rank 1"));
    assert_non_null(strstr(body, "--dist-timeout 2"));
    free(body), body = NULL;
    // A new request during the grace: 503, the same message.
    status = test_http(tp, "POST", "/v1/completions",
                       "{\"model\": \"m\", \"prompt\": \"hi\", \"max_tokens\": 4}", "--max-time 2",
                       &body, NULL);
    assert_int_equal(status, 503);
    assert_non_null(strstr(body, "\"code\":\"distributed_fault\""));
    free(body);
}

// Rank 1 hung or killed (sig: SIGSTOP or SIGKILL) while two answers stream and a whole one
// is computed, under `launcher`: rank 0's watchdog notices after --dist-timeout 2 and, for
// the grace before it ends the job, its HTTP side tells the truth: the OpenAI stream ends
// with an error event naming rank 1 then [DONE], the Ollama stream with an error line, the
// whole answer is a 503 distributed_fault; for a hung rank /health answers 503 with the
// message and a new request gets the 503 too. Then the job ends, non-zero.
static void check_fault_clients(int sig, const char *launcher)
{
    char args[900];
    snprintf(args, sizeof args,
             "-m '%s=m' --no-store -t 1 --ctx 8192 --tensor-parallel 2 --dist-timeout 2 --quiet",
             fault_model_path());
    test_server *tp = &started[1];
    pid_t ranks[2];
    start_job(tp, "serve-fault.log", launcher, args, ranks);
    char openai_out[600], ollama_out[600], whole_out[600];
    snprintf(openai_out, sizeof openai_out, "%s", test_temp_path("fault-openai.txt"));
    snprintf(ollama_out, sizeof ollama_out, "%s", test_temp_path("fault-ollama.txt"));
    snprintf(whole_out, sizeof whole_out, "%s", test_temp_path("fault-whole.txt"));
    pid_t openai = stream_in_background(tp, "/v1/completions",
                                        "{\"model\": \"m\", \"prompt\": [1, 45], \"max_tokens\": "
                                        "8000, \"temperature\": 0, \"stream\": true}",
                                        openai_out);
    pid_t ollama = stream_in_background(tp, "/api/generate",
                                        "{\"model\": \"m\", \"prompt\": \"a long story\", "
                                        "\"options\": {\"num_predict\": 8000, \"temperature\": 0}}",
                                        ollama_out);
    pid_t whole = stream_in_background(tp, "/v1/completions",
                                       "{\"model\": \"m\", \"prompt\": [1, 45], \"max_tokens\": "
                                       "8000, \"temperature\": 0}",
                                       whole_out);
    if (!file_grows(openai_out, 600, 60) || !file_grows(ollama_out, 600, 60))
        fail_msg("the two streams did not start within 60 s");
    char *before = test_read_file(openai_out, NULL);
    assert_non_null(before);
    assert_null(strstr(before, "[DONE]")); // (still streaming: the stop comes mid-answer)
    free(before);
    double t0 = garlic_now();
    assert_int_equal(kill(ranks[1], sig), 0);
    if (sig == SIGSTOP)
        check_health_fault(tp, t0);
    // The streams end with an error, not a bare close.
    int curl_status = 0;
    assert_int_equal(waitpid(openai, &curl_status, 0), openai);
    double t_stream = garlic_now() - t0;
    assert_true(WIFEXITED(curl_status) && WEXITSTATUS(curl_status) == 0);
    assert_int_equal(waitpid(ollama, &curl_status, 0), ollama);
    assert_true(WIFEXITED(curl_status) && WEXITSTATUS(curl_status) == 0);
    char *text = test_read_file(openai_out, NULL), *lines = test_read_file(ollama_out, NULL);
    assert_non_null(text);
    assert_non_null(lines);
    const char *event = strstr(text, "data: {\"error\":");
    if (!event || !strstr(event, "\"type\":\"server_error\"") ||
        !strstr(event, "\"code\":\"distributed_fault\"") || !strstr(event, "rank 1") ||
        !strstr(event, "\n\ndata: [DONE]\n\n"))
        fail_msg("the OpenAI stream did not end with the fault's error event: %.600s",
                 event ? event : text + (strlen(text) > 600 ? strlen(text) - 600 : 0));
    const char *line = strstr(lines, "{\"error\":");
    if (!line || !strstr(line, "rank 1"))
        fail_msg("the Ollama stream did not end with an error line: %.600s",
                 lines + (strlen(lines) > 600 ? strlen(lines) - 600 : 0));
    print_message("the streams ended with the error %.2f s after the stop: %.300s\n", t_stream,
                  event);
    assert_true(t_stream < 8);
    free(text), free(lines);
    // The whole answer that was being computed: a 503 with the message.
    assert_int_equal(waitpid(whole, &curl_status, 0), whole);
    text = test_read_file(whole_out, NULL);
    assert_non_null(text);
    if (strncmp(text, "HTTP/1.1 503", 12) != 0 || !strstr(text, "\"code\":\"distributed_fault\"") ||
        !strstr(text, "rank 1"))
        fail_msg("the whole answer was not a 503 naming the fault: %.600s", text);
    free(text);
    // Then the job ends, non-zero, every rank with it.
    int exit_status = wait_job_end(tp, ranks, t0);
    print_message("mpirun's exit status %d\n", exit_status);
    assert_int_not_equal(exit_status, 0);
    log_holds(tp, "a rank died or hangs");
    log_holds(tp, "ending the job in 2.0 s");
}

static void test_rank_hung_clients(void **state)
{
    (void)state;
    if (!test_mpi_ready())
        skip();
    check_fault_clients(SIGSTOP, MPIRUN);
}

// A rank killed outright: mpirun ends the others itself (SIGTERM, then SIGKILL after
// odls_base_sigkill_timeout, 1 s by default, before the watchdog could speak); given 3 s,
// the watchdog's 2 s come first and the clients are told as for a hung rank.
static void test_rank_killed_clients(void **state)
{
    (void)state;
    if (!test_mpi_ready())
        skip();
    char launcher[600];
    snprintf(launcher, sizeof launcher, "%s --mca odls_base_sigkill_timeout 3", MPIRUN);
    check_fault_clients(SIGKILL, launcher);
}

// A rank that hangs while the server is idle (no request running): with rank 1 stopped, the
// idle leader's heartbeat (every 2 s) waits for it, the watchdog notices after
// --dist-timeout 2, /health turns 503 and the job ends non-zero; with rank 0 stopped, rank 1
// hears no heartbeat for 2 + 2 s and ends the job itself.
static void check_idle_hang(int hung)
{
    char args[900];
    snprintf(args, sizeof args,
             "-m '%s=m' --no-store -t 1 --tensor-parallel 2 --dist-timeout 2 --quiet",
             model_path());
    test_server *tp = &started[1];
    pid_t ranks[2];
    start_job(tp, "serve-idle.log", MPIRUN, args, ranks);
    free(complete(tp, "hello", 4));
    usleep(2500 * 1000); // (idle: a heartbeat or two pass, and nothing fails)
    char *body = NULL;
    assert_int_equal(test_http(tp, "GET", "/health", NULL, NULL, &body, NULL), 200);
    free(body);
    double t0 = garlic_now();
    assert_int_equal(kill(ranks[hung], SIGSTOP), 0);
    if (hung == 1)
        check_health_fault(tp, t0);
    int exit_status = wait_job_end(tp, ranks, t0);
    print_message("rank %d stopped while idle: mpirun's exit status %d\n", hung, exit_status);
    assert_int_not_equal(exit_status, 0);
    log_holds(tp,
              hung == 1 ? "a heartbeat (MPI_Allreduce) of 4 bytes has waited"
                        : "rank 1 of 2: rank 0 sent nothing for");
}

static void test_rank_hung_idle(void **state)
{
    (void)state;
    if (!test_mpi_ready())
        skip();
    check_idle_hang(1);
    check_idle_hang(0);
}

// A process's resident memory (VmRSS of /proc/PID/status) in kB, or fails the test.
static long resident_kb(pid_t pid)
{
    char path[64], status[8192] = "";
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r"); // (procfs gives no size: read what there is)
    size_t n = f ? fread(status, 1, sizeof status - 1, f) : 0;
    if (f)
        fclose(f);
    status[n] = '\0';
    const char *at = strstr(status, "\nVmRSS:");
    if (!at)
        fail_msg("%s: no VmRSS", path);
    return atol(at + 8);
}

// Whether /api/ps lists a loaded model.
static bool model_listed(const test_server *s)
{
    char *body = NULL;
    assert_int_equal(test_http(s, "GET", "/api/ps", NULL, NULL, &body, NULL), 200);
    bool listed = strstr(body, "\"name\":\"m\"") != NULL;
    free(body);
    return listed;
}

// --keep-alive under a layout of 2 ranks: after 1 s unused the model is unloaded on every
// rank (/api/ps lists nothing, rank 1's resident memory falls), and the next request loads
// it on every rank again and answers the same greedy text; SIGTERM to rank 0 then ends both.
static void check_keep_alive(const char *layout)
{
    char args[900];
    snprintf(args, sizeof args,
             "-m '%s=m' --no-store -t 1 --kv-type f32 %s --keep-alive 1s --dist-timeout 30",
             fault_model_path(), layout);
    test_server *tp = &started[1];
    pid_t ranks[2];
    start_job(tp, "serve-keep.log", MPIRUN, args, ranks);
    for (int round = 0; round < 2; round++) { // (the second round after a reload)
        char *first = complete(tp, PROMPTS[0], N_GEN);
        assert_true(model_listed(tp));
        long loaded = resident_kb(ranks[1]);
        double t0 = garlic_now();
        while (model_listed(tp) && garlic_now() - t0 < 10)
            usleep(100 * 1000);
        assert_false(model_listed(tp));
        double t_gone = garlic_now() - t0;
        // (rank 1 unloads once rank 0's engine stopped: give it a moment)
        long unloaded = resident_kb(ranks[1]);
        for (double t1 = garlic_now(); unloaded > loaded * 3 / 4 && garlic_now() - t1 < 5;)
            usleep(50 * 1000), unloaded = resident_kb(ranks[1]);
        print_message("round %d: /api/ps empty %.1f s after the answer; rank 1's resident "
                      "memory %ld kB loaded, %ld kB unloaded\n",
                      round + 1, t_gone, loaded, unloaded);
#ifndef __SANITIZE_ADDRESS__ // (ASan's allocator keeps freed memory in quarantine)
        assert_true(unloaded < loaded * 3 / 4); // (the share of the weights it touched, its pools)
#endif
        char *again = complete(tp, PROMPTS[0], N_GEN);
        if (strcmp(again, first) != 0)
            fail_msg("after the reload, 2 ranks answered %s, before %s", again, first);
        free(first), free(again);
    }
    log_holds(tp, "keep_alive expired");
    int status = stop_job(tp, ranks[0], SIGTERM, ranks);
    assert_int_equal(status, 0);
}

static void test_keep_alive(void **state)
{
    (void)state;
    if (!test_mpi_ready())
        skip();
    check_keep_alive("--tensor-parallel 2");
}

// /api/ps's body holds needle.
static bool ps_shows(const test_server *s, const char *needle)
{
    char *body = NULL;
    assert_int_equal(test_http(s, "GET", "/api/ps", NULL, NULL, &body, NULL), 200);
    bool shows = strstr(body, needle) != NULL;
    free(body);
    return shows;
}

// Waits (at most 10 s) until /api/ps shows (or, when `gone`, no longer shows) needle.
static void wait_ps(const test_server *s, const char *needle, bool gone)
{
    for (double t0 = garlic_now(); ps_shows(s, needle) == gone; usleep(100 * 1000))
        if (garlic_now() - t0 > 10)
            fail_msg("/api/ps %s '%s' after 10 s", gone ? "still shows" : "does not show", needle);
}

// --sleep-after under a layout of 2 ranks: after 1 s unused the model sleeps on every rank
// (rank 0's /api/ps says asleep; the others stop their engines on its word), the next request
// wakes it on every rank with the same greedy text; asleep again, --keep-alive then unloads it
// on every rank, and the next request loads it again with the same text; SIGTERM ends both.
static void check_sleep(const char *layout)
{
    char args[900];
    snprintf(args, sizeof args,
             "-m '%s=m' --no-store -t 1 --kv-type f32 %s --sleep-after 1s --keep-alive 4s "
             "--dist-timeout 30",
             model_path(), layout);
    test_server *tp = &started[1];
    pid_t ranks[2];
    start_job(tp, "serve-sleep.log", MPIRUN, args, ranks);
    char *first = complete(tp, PROMPTS[1], N_GEN);
    wait_ps(tp, "\"state\":\"asleep\"", false);
    char *woken = complete(tp, PROMPTS[1], N_GEN);
    if (strcmp(woken, first) != 0)
        fail_msg("after a wake, 2 ranks answered %s, before %s", woken, first);
    assert_false(ps_shows(tp, "\"state\":\"asleep\""));
    wait_ps(tp, "\"state\":\"asleep\"", false);
    wait_ps(tp, "\"name\":\"m\"", true); // (unloaded while asleep)
    char *reloaded = complete(tp, PROMPTS[1], N_GEN);
    if (strcmp(reloaded, first) != 0)
        fail_msg("after a reload, 2 ranks answered %s, before %s", reloaded, first);
    free(first), free(woken), free(reloaded);
    int status = stop_job(tp, ranks[0], SIGTERM, ranks);
    assert_int_equal(status, 0);
    log_holds(tp, " sleep model=m");
    log_holds(tp, " wake model=m");
    log_holds(tp, "keep_alive expired");
}

static void test_sleep(void **state)
{
    (void)state;
    if (!test_mpi_ready())
        skip();
    check_sleep("--tensor-parallel 2");
    check_sleep("--pipeline-parallel 2");
}

static void test_keep_alive_pipeline(void **state)
{
    (void)state;
    if (!test_mpi_ready())
        skip();
    check_keep_alive("--pipeline-parallel 2");
}

// The split model is the first -m: a layout without one is refused (before any rank starts
// MPI work).
static void test_refusals(void **state)
{
    (void)state;
    char *err = NULL;
    const char *m = model_path();
    assert_int_equal(
        test_run(NULL, &err, "%s serve --models-dir /tmp --tensor-parallel 2", test_garlic()), 2);
    assert_non_null(strstr(err, "split the first -m model between the ranks"));
    free(err);
    // T must be the number of ranks, as for garlic run.
    assert_int_not_equal(test_run(NULL, &err,
                                  "%s serve -m '%s' --no-store --tensor-parallel 2 --port 0",
                                  test_garlic(), m),
                         0);
    assert_non_null(strstr(err, "--tensor-parallel 2, but 1 rank is running"));
    free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refusals),
        cmocka_unit_test_teardown(test_same_text, stop_started),
        cmocka_unit_test_teardown(test_same_text_pipeline, stop_started),
        cmocka_unit_test_teardown(test_stop_mpirun, stop_started),
        cmocka_unit_test_teardown(test_keep_alive, stop_started),
        cmocka_unit_test_teardown(test_keep_alive_pipeline, stop_started),
        cmocka_unit_test_teardown(test_sleep, stop_started),
        cmocka_unit_test_teardown(test_rank_hung_clients, stop_started),
        cmocka_unit_test_teardown(test_rank_killed_clients, stop_started),
        cmocka_unit_test_teardown(test_rank_hung_idle, stop_started),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
