// SPDX-License-Identifier: MIT
// `garlic quantize IN.gguf OUT.gguf TYPE [options]`: rewrites a model in a quantization
// mixture (model/quantize.h does the work), with a progress bar on a terminal (lines with
// --progress), and the sizes before and after. OUT is written under OUT.part and renamed when
// complete; an interrupt (SIGINT, SIGTERM) removes the partial file.
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/threadpool.h"
#include "cli/cli.h"
#include "model/quantize.h"
#include "tensor/types.h"

static const cli_command quantize_command = {
    .name = "quantize",
    .usage = "IN.gguf OUT.gguf TYPE [options]",
    .about = "Writes the model of IN.gguf to OUT.gguf in the quantization mixture TYPE, each "
             "tensor of the type\nllama.cpp's llama-quantize gives it: 1-D tensors and norms "
             "stay as they are, output.weight\n(or a tied token_embd) gets Q6_K, attn_v and "
             "ffn_down get more bits in some layers, and rows\nthat are not whole blocks of a "
             "type fall back to one whose blocks fit.",
    .notes = "TYPE is one of F32, F16, BF16, Q8_0, Q6_K, Q5_K_M, Q5_K_S, Q5_1, Q5_0, Q4_K_M, "
             "Q4_K_S, Q4_1, Q4_0,\nIQ4_NL, IQ4_XS, MXFP4_MOE, Q3_K_L, Q3_K_M, Q3_K_S, Q2_K "
             "(Q4_K, Q5_K, Q3_K and MXFP4 stand for\nQ4_K_M, Q5_K_M, Q3_K_M and MXFP4_MOE). "
             "general.file_type is set to llama.cpp's number for it.\nTensors that are already "
             "quantized are converted only with --allow-requantize (to F32 always).\nOUT is "
             "written as OUT.part and renamed when complete.",
};

// How the progress is shown: a bar rewritten in place on a terminal; with --progress, also a
// line every 10 % when standard error is not one (for logs).
typedef struct progress {
    const char *path;
    bool forced;   // --progress
    bool terminal; // stderr is a terminal
    int shown;     // the last percentage printed (-1: none)
    bool finished; // the last call came (the terminal's line is ended)
} progress;

enum { BAR_WIDTH = 30 };

static void show_progress(void *user, const char *tensor, uint64_t done, uint64_t total)
{
    progress *pr = user;
    pr->finished = tensor == NULL;
    if (!total || (!pr->forced && !pr->terminal))
        return;
    int percent = (int)(done * 100 / total);
    if (pr->terminal) {
        pr->shown = percent;
        char bar[BAR_WIDTH + 1];
        int full = percent * BAR_WIDTH / 100;
        for (int i = 0; i < BAR_WIDTH; i++)
            bar[i] = i < full ? '#' : '.';
        bar[BAR_WIDTH] = '\0';
        fprintf(stderr, "\r\033[Kgarlic quantize: [%s] %3d%% %.40s%s", bar, percent,
                tensor ? tensor : "", tensor ? "" : "\n");
        return;
    }
    if (percent / 10 == pr->shown / 10 && pr->shown >= 0)
        return;
    pr->shown = percent;
    fprintf(stderr, "garlic quantize: writing %s %3d%%\n", pr->path, percent);
}

// The partial file an interrupt removes (unlink is async-signal-safe).
static char partial_path[4096];

static void remove_partial(int sig)
{
    unlink(partial_path);
    signal(sig, SIG_DFL);
    raise(sig);
}

// "155 Q4_K, 23 Q6_K, 45 F32": the output's tensors by type, most numerous first.
static void print_types(const model_quantize_result *r)
{
    bool printed[TENSOR_TYPE_COUNT] = {0};
    for (int n = 0;; n++) {
        uint32_t best = TENSOR_TYPE_COUNT;
        for (uint32_t t = 0; t < TENSOR_TYPE_COUNT; t++)
            if (r->type_tensors[t] && !printed[t] &&
                (best == TENSOR_TYPE_COUNT || r->type_tensors[t] > r->type_tensors[best]))
                best = t;
        if (best == TENSOR_TYPE_COUNT)
            break;
        printed[best] = true;
        printf("%s%u %s", n ? ", " : "", r->type_tensors[best], tensor_type_get(best)->name);
    }
}

static void print_summary(const char *in, const char *out, const model_quantize_params *p,
                          const model_quantize_result *r)
{
    double n = r->n_elements ? (double)r->n_elements : 1;
    printf("%s: %s (%.2f bits per weight)\n", in, cli_format_bytes((double)r->in_bytes),
           8.0 * (double)r->in_bytes / n);
    printf("%s: %s (%.2f bits per weight), %s: ", out, cli_format_bytes((double)r->out_bytes),
           8.0 * (double)r->out_bytes / n, p->mix.name);
    print_types(r);
    printf("\n%u of %u tensors converted", r->n_converted, r->n_tensors);
    if (r->n_fallback)
        printf(" (%u took a fallback type: rows not whole blocks)", r->n_fallback);
    printf(" in %.1f s on %d thread%s\n", r->seconds, p->n_threads, p->n_threads == 1 ? "" : "s");
}

int cli_quantize(int argc, char **argv)
{
    const char *in = NULL, *out = NULL, *type = NULL;
    model_quantize_params p = {.n_threads = thread_pool_default_threads()};
    bool progress_flag = false;
    const cli_option options[] = {
        cli_arg("IN.gguf", "the model to read", &in),
        cli_arg("OUT.gguf", "the file to write", &out),
        cli_arg("TYPE", "the mixture: Q4_K_M, Q8_0, ... (see below)", &type),
        cli_int("-t|--threads", "N", "compute threads (default: the physical cores)", &p.n_threads,
                1, 1024),
        cli_flag("--allow-requantize",
                 "convert tensors that are already quantized (loses precision again)",
                 &p.allow_requantize),
        cli_flag("--progress",
                 "show the percentage written on stderr, also when it is not a "
                 "terminal",
                 &progress_flag),
        {0},
    };
    int status = cli_parse(&quantize_command, options, argc, argv);
    if (status != CLI_CONTINUE)
        return status;
    garlic_error err = {0};
    if (model_quant_mix_parse(type, &p.mix, &err) != GARLIC_OK)
        return cli_usage_error(&quantize_command, "%s", err.message);
    if ((size_t)snprintf(partial_path, sizeof partial_path, "%s.part", out) >= sizeof partial_path)
        return cli_usage_error(&quantize_command, "OUT.gguf: path too long");
    progress pr = {
        .path = out, .forced = progress_flag, .terminal = isatty(STDERR_FILENO), .shown = -1};
    p.in_path = in, p.out_path = out, p.temp_path = partial_path;
    p.progress = show_progress, p.progress_user = &pr;
    signal(SIGINT, remove_partial);
    signal(SIGTERM, remove_partial);
    model_quantize_result r;
    int rc = model_quantize_file(&p, &r, &err);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    if (rc != GARLIC_OK) {
        if (pr.terminal && pr.shown >= 0 && !pr.finished)
            fputc('\n', stderr);
        fprintf(stderr, "garlic quantize: %s\n", err.message);
        return 1;
    }
    print_summary(in, out, &p, &r);
    return 0;
}
