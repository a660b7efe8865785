// SPDX-License-Identifier: MIT
// `garlic run MODEL [PROMPT] [flags]`: streams the continuation of a prompt to standard
// output (diagnostics and statistics go to standard error), or, without a prompt, chats
// interactively. For fidelity work, --prompt-ids feeds token ids and --dump-logits writes
// the logits of every prompt position (the prompt evaluated as one batch).
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/alloc.h"
#include "cli/cli.h"
#include "engine/generate.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

enum { MAX_STOPS = 16 };

typedef struct run_options {
    const char *model_path;
    const char *prompt;      // NULL: interactive
    const char *prompt_ids;  // token ids instead of text
    const char *dump_logits; // file for the prompt's logits
    uint32_t n_predict;      // -n (0: until the context is full)
    uint32_t n_ctx;          // -c (0: min(trained, 4096))
    uint32_t batch;          // -b
    int threads;             // -t
    kv_type kv_type;
    bool verbose;
    sampler_params sampling; // n_vocab filled after loading
    const char *stops[MAX_STOPS];
    size_t n_stops;
} run_options;

static int run_usage(void)
{
    fprintf(stderr,
            "usage: garlic run MODEL.gguf [PROMPT] [-n N] [--temp X] [--top-k N] [--top-p X]\n"
            "         [--min-p X] [--repeat-penalty X] [--seed N] [-c N] [-t N] [-b N]\n"
            "         [--kv-type f16|q8_0|fp8|f32] [--stop S]... [--verbose]\n"
            "         [--prompt-ids \"1 450 4996\"] [--dump-logits FILE]\n"
            "  Without PROMPT, chat interactively (end with Ctrl-D).\n");
    return 2;
}

int cli_parse_uint(const char *opt, const char *text, uint32_t min, uint32_t max, uint32_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno || *end || end == text || text[0] == '-' || v < min || v > max) {
        fprintf(stderr, "garlic: %s: '%s' is not an integer from %u to %u\n", opt, text, min, max);
        return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

int cli_parse_float(const char *opt, const char *text, float min, float max, float *out)
{
    char *end;
    errno = 0;
    float v = strtof(text, &end);
    if (errno || *end || end == text || !(v >= min && v <= max)) {
        fprintf(stderr, "garlic: %s: '%s' is not a number from %g to %g\n", opt, text, min, max);
        return -1;
    }
    *out = v;
    return 0;
}

// Options that take a value; returns 0, -1 on a bad value, 1 if opt is not one of them.
static int parse_valued(run_options *o, const char *opt, const char *val)
{
    sampler_params *sp = &o->sampling;
    uint32_t u;
    if (!strcmp(opt, "-n") || !strcmp(opt, "--num-predict"))
        return cli_parse_uint(opt, val, 0, UINT32_MAX, &o->n_predict);
    if (!strcmp(opt, "-c") || !strcmp(opt, "--ctx"))
        return cli_parse_uint(opt, val, 1, 1u << 24, &o->n_ctx);
    if (!strcmp(opt, "-b") || !strcmp(opt, "--batch"))
        return cli_parse_uint(opt, val, 1, 65536, &o->batch);
    if (!strcmp(opt, "-t") || !strcmp(opt, "--threads"))
        return cli_parse_uint(opt, val, 1, 1024, &u) ? -1 : (o->threads = (int)u, 0);
    if (!strcmp(opt, "--temp"))
        return cli_parse_float(opt, val, 0, 100, &sp->temperature);
    if (!strcmp(opt, "--top-k"))
        return cli_parse_uint(opt, val, 0, INT32_MAX, &u) ? -1 : (sp->top_k = (int32_t)u, 0);
    if (!strcmp(opt, "--top-p"))
        return cli_parse_float(opt, val, 0.0001f, 1, &sp->top_p);
    if (!strcmp(opt, "--min-p"))
        return cli_parse_float(opt, val, 0, 1, &sp->min_p);
    if (!strcmp(opt, "--repeat-penalty"))
        return cli_parse_float(opt, val, 0.0001f, 100, &sp->repeat_penalty);
    if (!strcmp(opt, "--seed")) {
        char *end;
        errno = 0;
        sp->seed = strtoull(val, &end, 10);
        return errno || *end || end == val ? (fprintf(stderr, "garlic: --seed: bad '%s'\n", val), -1) : 0;
    }
    if (!strcmp(opt, "--kv-type"))
        return kv_type_parse(val, &o->kv_type)
                   ? 0 : (fprintf(stderr, "garlic: --kv-type: '%s' (f16, q8_0, fp8 or f32)\n", val), -1);
    if (!strcmp(opt, "--stop")) {
        if (o->n_stops == MAX_STOPS)
            return fprintf(stderr, "garlic: at most %d --stop strings\n", MAX_STOPS), -1;
        o->stops[o->n_stops++] = val;
        return 0;
    }
    if (!strcmp(opt, "--prompt-ids"))
        return o->prompt_ids = val, 0;
    if (!strcmp(opt, "--dump-logits"))
        return o->dump_logits = val, 0;
    return 1;
}

static int parse_run_options(run_options *o, int argc, char **argv)
{
    memset(o, 0, sizeof *o);
    o->sampling = sampler_params_default(1);
    o->kv_type = KV_TYPE_F16;
    o->threads = thread_pool_default_threads();
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--verbose")) {
            o->verbose = true;
        } else if (a[0] == '-' && a[1]) {
            if (i + 1 >= argc)
                return fprintf(stderr, "garlic run: %s needs a value\n", a), run_usage();
            int rc = parse_valued(o, a, argv[++i]);
            if (rc > 0)
                return fprintf(stderr, "garlic run: unknown option '%s'\n", a), run_usage();
            if (rc < 0)
                return 2;
        } else if (!o->model_path) {
            o->model_path = a;
        } else if (!o->prompt) {
            o->prompt = a;
        } else {
            return fprintf(stderr, "garlic run: unexpected argument '%s'\n", a), run_usage();
        }
    }
    return o->model_path ? 0 : run_usage();
}

// Touches every page of the model's mapping so that the first forward pass does not stall
// on page faults, showing progress on a terminal for files over 256 MiB. Returns seconds.
// Progress of a prefault on the terminal.
static void show_progress(void *ctx, int percent)
{
    const model *m = ctx;
    fprintf(stderr, "\rloading %s %3d%%%s", m->file->path, percent, percent == 100 ? "\n" : "");
}

double cli_prefault(model *m)
{
    bool show = isatty(STDERR_FILENO) && m->file->size > (256u << 20);
    return model_prefault(m, show ? show_progress : NULL, (void *)m);
}

// Appends ids to prompt (growing it); false on allocation failure.
static bool ids_append(tokenizer_ids *prompt, const int32_t *ids, size_t n)
{
    if (prompt->n + n > prompt->cap) {
        size_t cap = (prompt->n + n) * 2;
        int32_t *p = garlic_realloc(prompt->ids, cap * sizeof *p);
        if (!p)
            return false;
        prompt->ids = p, prompt->cap = cap;
    }
    memcpy(prompt->ids + prompt->n, ids, n * sizeof *ids);
    prompt->n += n;
    return true;
}

// Parses "1 450 4996" (spaces or commas) into ids; -1 on a bad or out-of-range id.
static int parse_ids(const char *text, uint32_t n_vocab, tokenizer_ids *out)
{
    for (const char *p = text; *p;) {
        while (*p == ' ' || *p == ',' || *p == '\t' || *p == '\n')
            p++;
        if (!*p)
            break;
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || v >= (long)n_vocab) {
            fprintf(stderr, "garlic run: --prompt-ids: '%.20s' is not a token id below %u\n", p, n_vocab);
            return -1;
        }
        int32_t id = (int32_t)v;
        if (!ids_append(out, &id, 1))
            return -1;
        p = end;
    }
    return 0;
}

// Writes the logits of every prompt position, evaluated as one batch: one line per
// position, values as %.7g separated by spaces.
static int dump_logits(const model *m, const run_options *o, const tokenizer_ids *ids)
{
    garlic_error err = {0};
    uint32_t n = (uint32_t)ids->n;
    model_state_config cfg = {.n_ctx = n, .max_batch = n, .logit_rows = n, .kv_type = o->kv_type,
                              .n_threads = o->threads};
    model_state *s = model_state_new(m, &cfg, &err);
    const float *logits;
    FILE *f = s ? fopen(o->dump_logits, "w") : NULL;
    int rc = s && f ? model_forward(s, ids->ids, n, 0, true, &logits, &err) : 1;
    if (s && !f)
        fprintf(stderr, "garlic run: %s: %s\n", o->dump_logits, strerror(errno));
    else if (rc)
        fprintf(stderr, "garlic run: %s\n", err.message);
    for (uint32_t p = 0; rc == 0 && p < n; p++)
        for (uint32_t v = 0; v < m->hp.n_vocab; v++)
            fprintf(f, "%.7g%c", logits[(size_t)p * m->hp.n_vocab + v],
                    v + 1 == m->hp.n_vocab ? '\n' : ' ');
    if (f && fclose(f) != 0 && rc == 0) {
        fprintf(stderr, "garlic run: %s: write failed\n", o->dump_logits);
        rc = 1;
    }
    model_state_free(s);
    return rc ? 1 : 0;
}

static int emit_stdout(void *user, const char *text, size_t len)
{
    (void)user;
    fwrite(text, 1, len, stdout);
    fflush(stdout);
    return 0;
}

static void print_stats(const engine_stats *st, double load_seconds)
{
    fprintf(stderr, "\nload time:        %8.2f ms\n", load_seconds * 1e3);
    fprintf(stderr, "prompt eval:      %8u tokens %10.2f ms %9.2f tokens/s\n", st->n_prompt,
            st->prompt_seconds * 1e3, st->n_prompt / (st->prompt_seconds > 0 ? st->prompt_seconds : 1e-9));
    fprintf(stderr, "generation:       %8u tokens %10.2f ms %9.2f tokens/s\n", st->n_generated,
            st->generate_seconds * 1e3,
            st->n_generated / (st->generate_seconds > 0 ? st->generate_seconds : 1e-9));
}

// Interactive chat with a simple built-in format ("User: ...\nAssistant:"). The
// conversation stays in the KV cache, so each turn evaluates only its new tokens; when the
// context fills up the conversation starts over.
static int chat(model_state *s, const tokenizer *t, const run_options *o, engine_params *ep)
{
    const char *stops[MAX_STOPS + 1] = {"\nUser:"};
    memcpy(stops + 1, o->stops, o->n_stops * sizeof *stops);
    ep->stops = stops, ep->n_stops = o->n_stops + 1;
    uint32_t pos = 0, n_ctx = model_state_n_ctx(s);
    int32_t pending = -1;
    sampler_end_tokens ends; // found once, not at every turn
    engine_end_tokens(t, &ends);
    ep->end_tokens = &ends;
    char *line = NULL;
    size_t line_cap = 0;
    tokenizer_ids text_ids = {0}, prompt = {0};
    bool tty = isatty(STDIN_FILENO);
    fprintf(stderr, "chatting with %s (context %u); end with Ctrl-D\n", o->model_path, n_ctx);
    int status = 0;
    for (;;) {
        if (tty)
            fprintf(stderr, ">>> ");
        ssize_t len = getline(&line, &line_cap, stdin);
        if (len < 0)
            break;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (len == 0)
            continue;
        garlic_error err = {0};
        for (int attempt = 0; attempt < 2; attempt++) {
            char *turn = garlic_malloc((size_t)len + 32);
            if (!turn)
                break;
            snprintf(turn, (size_t)len + 32, "%sUser: %s\nAssistant:", pos ? "\n" : "", line);
            text_ids.n = prompt.n = 0;
            int rc = tokenizer_encode(t, turn, strlen(turn), pos ? 0 : TOKENIZER_ADD_SPECIAL, &text_ids, &err);
            garlic_free(turn);
            if (rc || (pending >= 0 && !ids_append(&prompt, &pending, 1)) ||
                !ids_append(&prompt, text_ids.ids, text_ids.n))
                break;
            if (pos + prompt.n + 16 <= n_ctx || pos == 0)
                break;
            fprintf(stderr, "(context full: starting a new conversation)\n");
            pos = 0, pending = -1;
        }
        engine_stats st;
        if (prompt.n == 0 || engine_generate(s, t, prompt.ids, prompt.n, &pos, ep, emit_stdout, NULL, &st, &err)) {
            fprintf(stderr, "garlic run: %s\n", err.message[0] ? err.message : "out of memory");
            status = 1;
            pos = 0, pending = -1;
            continue;
        }
        pending = st.unevaluated;
        printf("\n");
        if (o->verbose)
            print_stats(&st, 0);
    }
    free(line);
    tokenizer_ids_deinit(&text_ids);
    garlic_free(prompt.ids);
    return status;
}

// Builds the prompt: --prompt-ids as given, else the text tokenized as a prompt (BOS if the
// vocabulary adds it, special-token text not parsed); "" gives BOS alone.
static int build_prompt(const run_options *o, const model *m, const tokenizer *t, tokenizer_ids *ids)
{
    garlic_error err = {0};
    if (o->prompt_ids)
        return parse_ids(o->prompt_ids, m->hp.n_vocab, ids) ? 1 : 0;
    if (tokenizer_encode(t, o->prompt, strlen(o->prompt), TOKENIZER_ADD_SPECIAL, ids, &err)) {
        fprintf(stderr, "garlic run: %s\n", err.message);
        return 1;
    }
    int32_t bos = tokenizer_special_id(t, TOKENIZER_SPECIAL_BOS);
    if (ids->n == 0 && bos >= 0 && !ids_append(ids, &bos, 1))
        return 1;
    if (ids->n == 0) {
        fprintf(stderr, "garlic run: the prompt is empty and the vocabulary has no BOS token\n");
        return 1;
    }
    return 0;
}

int cli_run(int argc, char **argv)
{
    run_options o;
    int status = parse_run_options(&o, argc, argv);
    if (status)
        return status;
    garlic_error err = {0};
    double t0 = garlic_now();
    model *m = model_load(o.model_path, &err);
    tokenizer *t = m ? tokenizer_load(m->file, &err) : NULL;
    if (!t) {
        fprintf(stderr, "garlic run: %s\n", err.message);
        model_free(m);
        return 1;
    }
    cli_prefault(m);
    double load_seconds = garlic_now() - t0;
    uint32_t n_ctx = o.n_ctx ? o.n_ctx : (m->hp.n_ctx_train < 4096 ? m->hp.n_ctx_train : 4096);
    engine_params ep = {.sampling = o.sampling, .max_tokens = o.n_predict, .stops = o.stops,
                        .n_stops = o.n_stops, .batch = o.batch};
    ep.sampling.n_vocab = (int32_t)m->hp.n_vocab;
    tokenizer_ids ids = {0};
    model_state *s = NULL;
    if (o.prompt || o.prompt_ids)
        status = build_prompt(&o, m, t, &ids);
    if (status == 0 && o.dump_logits)
        status = dump_logits(m, &o, &ids);
    if (status == 0) {
        model_state_config cfg = {.n_ctx = n_ctx, .max_batch = o.batch ? o.batch : 512,
                                  .logit_rows = 1, .kv_type = o.kv_type, .n_threads = o.threads};
        s = model_state_new(m, &cfg, &err);
        if (!s)
            fprintf(stderr, "garlic run: %s\n", err.message), status = 1;
    }
    if (status == 0 && !o.prompt && !o.prompt_ids) {
        status = chat(s, t, &o, &ep);
    } else if (status == 0) {
        engine_stats st;
        uint32_t pos = 0;
        if (engine_generate(s, t, ids.ids, ids.n, &pos, &ep, emit_stdout, NULL, &st, &err)) {
            fprintf(stderr, "garlic run: %s\n", err.message);
            status = 1;
        } else if (o.verbose) {
            print_stats(&st, load_seconds);
        }
    }
    garlic_free(ids.ids);
    model_state_free(s);
    tokenizer_free(t);
    model_free(m);
    return status;
}
