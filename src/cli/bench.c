// SPDX-License-Identifier: MIT
// `garlic bench MODEL [-p N] [-n N] [-d N,...] [-r N] [-t N] [-b N] [--kv-type T] [--json]`:
// prompt processing (pp: a prompt of N random tokens, computed in steps of -b tokens) and
// generation (tg: N tokens decoded one at a time) throughput through the engine that serves
// requests, averaged over repetitions after one warm-up, printed as a table like llama-bench's
// or as JSON with llama-bench's field names. The figures are the engine's own timings of the
// request: prompt_seconds for pp, generate_seconds for tg. With -d N (llama-bench's depth) each
// test runs after a context of N random tokens: every request starts with the same N tokens,
// which the warm-up computes (untimed) and the prefix cache then holds, so a measured request
// computes only its own tokens on top of N cached positions ("pp512 @ d4096").
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/file.h"
#include "cli/bench.h"
#include "cli/cli.h"
#include "cli/local.h"
#include "dist/dist.h"
#include "gguf/gguf.h"
#include "hf/hf.h"
#include "kernels/kernels.h"
#include "model/info.h"
#include "model/model.h"
#include "sampler/grammar.h"
#include "tensor/types.h"

static const cli_command bench_command = {
    .name = "bench",
    .usage = "MODEL.gguf [options]",
    .about = "Measures prompt processing (pp: a prompt of -p random tokens) and generation (tg: "
             "-n tokens\ndecoded one at a time) through the engine that serves requests, "
             "averaged over -r runs after\na warm-up; a table like llama-bench's, or its JSON "
             "fields with --json. With --streams or\n--prefix: batched decoding through the "
             "scheduler, like llama-batched-bench.",
    .notes = "Defaults: -p 512 -n 128 -d 0; with --streams or --prefix, -p 128 -n 64 and streams "
             "1,2,4,8,16.",
};

// Parses "1,2,4" into o->streams.
static int parse_streams(void *dst, const char *opt, const char *text)
{
    bench_options *o = dst;
    o->n_streams = 0;
    o->batched = true;
    for (const char *p = text; *p;) {
        char *end;
        unsigned long v = strtoul(p, &end, 10);
        if (end == p || v == 0 || v > BENCH_MAX_STREAMS ||
            o->n_streams == BENCH_MAX_STREAM_COUNTS || (*end && *end != ','))
            return fprintf(stderr,
                           "garlic bench: %s: bad list '%s' (1 to %d streams, at most %d "
                           "counts)\n",
                           opt, text, BENCH_MAX_STREAMS, BENCH_MAX_STREAM_COUNTS),
                   -1;
        o->streams[o->n_streams++] = (uint32_t)v;
        p = *end ? end + 1 : end;
    }
    return o->n_streams ? 0 : -1;
}

// Parses "0,4096" into o->depths: multiples of the KV cache's block, so that the prefix cache
// holds exactly the depth.
static int parse_depths(void *dst, const char *opt, const char *text)
{
    bench_options *o = dst;
    o->n_depths = 0;
    for (const char *p = text; *p;) {
        char *end;
        unsigned long v = strtoul(p, &end, 10);
        if (end == p || v > (1u << 24) || v % KV_DEFAULT_BLOCK_TOKENS ||
            o->n_depths == BENCH_MAX_DEPTHS || (*end && *end != ','))
            return fprintf(stderr,
                           "garlic bench: %s: bad list '%s' (depths are multiples of %d, the KV "
                           "cache's block, at most %d of them)\n",
                           opt, text, KV_DEFAULT_BLOCK_TOKENS, BENCH_MAX_DEPTHS),
                   -1;
        o->depths[o->n_depths++] = (uint32_t)v;
        p = *end ? end + 1 : end;
    }
    return o->n_depths ? 0 : -1;
}

// Parses the options into o; CLI_CONTINUE, or the status to exit with. The batched
// benchmark's defaults (-p 128 -n 64, streams 1,2,4,8,16) apply when --streams or --prefix is
// given.
static int parse_bench(bench_options *o, int argc, char **argv)
{
    *o = (bench_options){.n_prompt = 512,
                         .n_gen = 128,
                         .reps = 5,
                         .batch = 512,
                         .threads = thread_pool_default_threads(),
                         .dist_timeout = (float)DIST_DEFAULT_TIMEOUT,
                         .kv_type = KV_TYPE_F16};
    bool p_seen = false, n_seen = false, prefix_seen = false;
    const char *schema_file = NULL;
    const cli_option options[] = {
        cli_arg("MODEL.gguf", "the model: a GGUF file, a folder or a stored name", &o->model_path),
        cli_seen(cli_uint("-p|--n-prompt", "N", "prompt tokens", &o->n_prompt, 0, 1u << 20),
                 &p_seen),
        cli_seen(cli_uint("-n|--n-gen", "N", "generated tokens", &o->n_gen, 0, 1u << 20), &n_seen),
        cli_custom("-d|--n-depth", "N[,N...]",
                   "tokens already in the context before each test (default 0)", o, parse_depths),
        cli_uint("-r|--repetitions", "N", "runs averaged (default 5)", &o->reps, 1, 1000),
        cli_uint("-b|--batch", "N", "prompt tokens per forward pass (default 512)", &o->batch, 1,
                 65536),
        cli_int("-t|--threads", "N", "compute threads (default: physical cores)", &o->threads, 1,
                1024),
        CLI_DIST_OPTIONS(o),
        cli_kv_type("--kv-type", "KV cache type: f16 (default), q8_0, fp8 or f32", &o->kv_type),
        CLI_DEVICE_OPTIONS(o),
        cli_string("--quantize", "TYPE",
                   "quantize a Hugging Face folder's 16/32-bit weights at load (Q8_0, Q4_K_M...)",
                   &o->quantize),
        cli_flag("--json", "JSON with llama-bench's field names", &o->json),
        cli_string("--grammar", "FILE", "tg: constrain the output to this GBNF grammar",
                   &o->grammar_file),
        cli_string("--json-schema", "FILE", "tg: constrain the output to this JSON schema",
                   &schema_file),
        cli_custom("--streams", "N[,N...]", "batched decoding with these stream counts", o,
                   parse_streams),
        cli_seen(cli_uint("--prefix", "N",
                          "time to first token of a prompt sharing its first N "
                          "tokens (prefix cache)",
                          &o->prefix, 0, 1u << 16),
                 &prefix_seen),
        {0},
    };
    int status = cli_parse(&bench_command, options, argc, argv);
    if (status != CLI_CONTINUE)
        return status;
    if (o->grammar_file && schema_file)
        return cli_usage_error(&bench_command, "give --grammar or --json-schema, not both");
    if (schema_file)
        o->grammar_file = schema_file, o->grammar_is_schema = true;
    garlic_error err = {0};
    if (o->grammar_file &&
        garlic_file_read(o->grammar_file, 1 << 20, &o->grammar_text, NULL, &err) != GARLIC_OK)
        return fprintf(stderr, "garlic bench: %s\n", err.message), 1;
    o->batched |= prefix_seen;
    if (o->batched && (o->tensor_parallel > 1 || o->pipeline_parallel > 1))
        return cli_usage_error(&bench_command,
                               "--tensor-parallel and --pipeline-parallel run the -p/-n tests, "
                               "not --streams or --prefix (yet)");
    o->argc = argc, o->argv = argv;
    if (o->n_depths == 0)
        o->n_depths = 1, o->depths[0] = 0;
    if ((o->tensor_parallel > 1 || o->pipeline_parallel > 1) && (o->n_depths > 1 || o->depths[0]))
        return cli_usage_error(&bench_command,
                               "-d is not yet run under --tensor-parallel or --pipeline-parallel");
    if (o->batched && (o->n_depths > 1 || o->depths[0]))
        return cli_usage_error(&bench_command, "-d is for -p/-n runs, not --streams or --prefix");
    if (o->batched) {
        if (!p_seen)
            o->n_prompt = 128;
        if (!n_seen)
            o->n_gen = 64;
        if (o->n_streams == 0)
            parse_streams(o, "--streams", "1,2,4,8,16");
        if (o->n_prompt == 0 || o->n_gen < 2)
            return cli_usage_error(&bench_command, "--streams needs -p >= 1 and -n >= 2");
    }
    return CLI_CONTINUE;
}

// The grammar of o's --grammar or --json-schema, compiled (NULL with err set on failure).
static grammar *bench_grammar(const bench_options *o, garlic_error *err)
{
    if (!o->grammar_is_schema)
        return grammar_new(o->grammar_text, strlen(o->grammar_text), err);
    cJSON *schema = cJSON_Parse(o->grammar_text);
    if (!schema) {
        garlic_error_set(err, GARLIC_EFORMAT, "%s: not JSON", o->grammar_file);
        return NULL;
    }
    grammar *g = grammar_from_json_schema(schema, err);
    cJSON_Delete(schema);
    return g;
}

// Fills ids[0..n) with random tokens of the model's vocabulary, from seed.
static void random_ids(const cli_local *l, int32_t *ids, uint32_t n, uint64_t seed)
{
    uint32_t n_vocab = registry_model_weights(l->m)->hp.n_vocab;
    for (uint32_t i = 0; i < n; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        ids[i] = (int32_t)((seed >> 33) % n_vocab);
    }
}

// One timed run through the engine: pp computes a prompt of n random tokens (fresh ones each
// run, so the prefix cache holds none of them) and samples one token; tg decodes n tokens
// after a one-token prompt (n forward passes). Either comes after the depth's tokens, already
// in ids[0..depth). *cached gets the prompt positions the prefix cache gave. Returns seconds,
// or -1 on error.
static double run_once(cli_local *l, const bench_options *o, bool prompt, uint32_t n,
                       uint32_t depth, int32_t *ids, uint64_t seed, uint32_t *tokens,
                       uint32_t *cached, garlic_error *err)
{
    uint32_t n_vocab = registry_model_weights(l->m)->hp.n_vocab;
    uint32_t n_ids = prompt ? n : 1;
    random_ids(l, ids + depth, n_ids, seed);
    engine_request_params p = {
        .prompt = ids, .n_prompt = depth + n_ids, .n_choices = 1, .wake_at_end = true};
    p.generation.sampling = sampler_params_default((int32_t)n_vocab);
    p.generation.sampling.temperature = 0;
    p.generation.max_tokens = prompt ? 1 : n + 1;
    p.generation.ignore_eos = true;
    if (!prompt && o->grammar_text && !(p.grammar = bench_grammar(o, err)))
        return -1;
    engine_chunk end;
    if (cli_local_generate(l, &p, NULL, NULL, &end, err) != GARLIC_OK)
        return -1;
    // A grammar may end before n tokens: the speed is over the tokens decoded (the first
    // token's is not, as without a grammar).
    *tokens = prompt ? n : end.stats.n_generated > 0 ? end.stats.n_generated - 1 : 0;
    *cached = end.stats.n_cached;
    return prompt ? end.stats.prompt_seconds : end.stats.generate_seconds;
}

// The type most of the weights are in ("Q4_K"), by parameters.
static const char *main_type(const model_info *info)
{
    int best = 0;
    for (int t = 0; t < TENSOR_TYPE_COUNT; t++)
        if (info->type_params[t] > info->type_params[best])
            best = t;
    return tensor_type_get((uint32_t)best)->name;
}

typedef struct bench_result {
    char test[48];
    uint32_t n_prompt, n_gen, n_depth;
    uint32_t n_cached; // the fewest positions a measured run found in the cache
    double avg, stddev;
} bench_result;

// Measures pp (prompt) or tg at a depth: a warm-up, which also computes the depth's tokens
// (untimed), then o->reps runs, each of which must find the whole depth in the cache.
static int measure(cli_local *l, const bench_options *o, bool prompt, uint32_t depth,
                   bench_result *r, garlic_error *err)
{
    uint32_t n = prompt ? o->n_prompt : o->n_gen;
    int32_t *ids = garlic_calloc(depth + (n ? n : 1), sizeof *ids);
    if (!ids)
        return garlic_error_set(err, GARLIC_ENOMEM, "out of memory");
    random_ids(l, ids, depth, 777 + depth); // the context, the same for every run
    double sum = 0, sq = 0;
    uint32_t tokens = 0, cached = 0;
    r->n_cached = UINT32_MAX;
    int rc = run_once(l, o, prompt, n, depth, ids, 12345, &tokens, &cached, err) < 0 ? -1 : 0;
    for (uint32_t i = 0; i < o->reps && rc == 0; i++) {
        double secs = run_once(l, o, prompt, n, depth, ids, 12346 + i, &tokens, &cached, err);
        if (secs < 0)
            rc = -1;
        else if (cached != depth)
            rc = garlic_error_set(err, GARLIC_EINVAL,
                                  "-d %u: a measured run found %u of the depth's positions in "
                                  "the cache",
                                  depth, cached);
        r->n_cached = cached < r->n_cached ? cached : r->n_cached;
        double ts = tokens / (secs > 0 ? secs : 1e-9);
        sum += ts, sq += ts * ts;
    }
    garlic_free(ids);
    r->avg = sum / o->reps;
    r->stddev = o->reps > 1 ? sqrt(fmax(0, (sq - sum * sum / o->reps) / (o->reps - 1))) : 0;
    r->n_prompt = prompt ? n : 0;
    r->n_gen = prompt ? 0 : n;
    r->n_depth = depth;
    snprintf(r->test, sizeof r->test, depth ? "%s%u @ d%u" : "%s%u", prompt ? "pp" : "tg", n,
             depth);
    return rc ? (err->code ? err->code : GARLIC_EINVAL) : GARLIC_OK;
}

// The time of one all-reduce of a layer's activations (one token's dim floats, and a
// prompt step's batch x dim), which tensor parallelism does twice a layer: every rank
// measures, rank 0 prints (to stderr, after the table).
static void report_all_reduce(const bench_options *o, uint32_t dim)
{
    uint32_t rows = o->n_prompt < o->batch ? o->n_prompt : o->batch;
    rows = rows ? rows : 1;
    double one = dist_time_all_reduce(dim, 1000);
    double batch = dist_time_all_reduce((size_t)rows * dim, 50);
    if (cli_local_prints())
        fprintf(stderr,
                "tensor parallel %u: all-reduce (median) of %u floats (a token's activations) "
                "%.1f us, of %u x %u floats (a step of %u tokens) %.1f us; twice per layer\n",
                dist_size(), dim, one * 1e6, rows, dim, rows, batch * 1e6);
}

static void print_results(const bench_options *o, const model_info *info, const bench_result *r,
                          int n)
{
    if (!cli_local_prints())
        return;
    char model_type[96];
    snprintf(model_type, sizeof model_type, "%s %s %s", info->arch,
             cli_format_count((double)info->n_params), main_type(info));
    if (o->json) {
        printf("[\n");
        for (int i = 0; i < n; i++)
            printf("  {\"model\": \"%s\", \"model_type\": \"%s\", \"type\": \"%s\", "
                   "\"model_size\": %llu, \"model_n_params\": %llu, \"backends\": \"CPU\", "
                   "\"kernels\": \"%s\", \"n_threads\": %d, \"n_batch\": %u, \"type_kv\": \"%s\", "
                   "\"n_ranks\": %u, \"test\": \"%s\", \"n_prompt\": %u, \"n_gen\": %u, "
                   "\"n_depth\": %u, \"n_cached\": %u, \"avg_ts\": %.6f, \"stddev_ts\": %.6f}%s\n",
                   o->model_path, model_type, main_type(info),
                   (unsigned long long)info->weight_bytes, (unsigned long long)info->n_params,
                   kernel_variant_name(), o->threads, o->batch, kv_type_name(o->kv_type),
                   dist_size(), r[i].test, r[i].n_prompt, r[i].n_gen, r[i].n_depth, r[i].n_cached,
                   r[i].avg, r[i].stddev, i + 1 < n ? "," : "");
        printf("]\n");
        return;
    }
    int tw = 8; // the test column, wider for "pp512 @ d16384"
    for (int i = 0; i < n; i++)
        tw = (int)strlen(r[i].test) > tw ? (int)strlen(r[i].test) : tw;
    printf("| %-28s | %10s | %8s | %-16s | %7s | %*s | %20s |\n", "model", "size", "params",
           "backend", "threads", tw, "test", "t/s");
    printf("| %.28s | %.10s | %.8s | %.16s | %.7s | %.*s | %.20s |\n",
           "------------------------------", "----------", "--------", "----------------",
           "-------", tw, "------------------------------------------------",
           "--------------------");
    for (int i = 0; i < n; i++)
        printf("| %-28s | %10s | %8s | CPU %-12s | %7d | %*s | %12.2f \u00b1 %5.2f |\n", model_type,
               cli_format_bytes((double)info->weight_bytes),
               cli_format_count((double)info->n_params), kernel_variant_name(), o->threads, tw,
               r[i].test, r[i].avg, r[i].stddev);
}

// pp and tg of one stream (llama-bench's tests); returns the exit status.
static int bench_one_stream(const bench_options *opts)
{
    const bench_options o = *opts;
    int status = 0;
    garlic_error err = {0};
    model_info info;
    gguf_file *f = hf_open_model(o.model_path, &(hf_open_options){.meta_only = true}, &err);
    int rc = f ? model_info_read(f, &info, &err) : err.code;
    gguf_close(f);
    // A context for the longer test (a prompt plus its token, or a token plus n_gen) after the
    // deepest context, one sequence, steps of -b tokens: the engine's figures for one stream.
    uint32_t depth = 0;
    for (uint32_t i = 0; i < o.n_depths; i++)
        depth = o.depths[i] > depth ? o.depths[i] : depth;
    uint32_t longest = o.n_prompt > o.n_gen ? o.n_prompt : o.n_gen;
    if (rc == GARLIC_OK && info.context_length && depth + longest > info.context_length)
        rc = garlic_error_set(&err, GARLIC_EINVAL,
                              "-d %u: the test needs %u positions (-d %u + %u), more than the "
                              "model's context of %llu (%s)",
                              depth, depth + longest, depth, longest,
                              (unsigned long long)info.context_length, o.model_path);
    uint32_t n_ctx = depth + (o.n_prompt + 1 > o.n_gen + 2 ? o.n_prompt + 1 : o.n_gen + 2);
    registry_config cfg = {.n_ctx = n_ctx,
                           .parallel = 1,
                           .step_tokens = o.batch,
                           .n_threads = o.threads,
                           .kv_type = o.kv_type,
                           .quantize = o.quantize};
    cli_local l = {0};
    if (rc == GARLIC_OK)
        rc = cli_local_tensor_parallel(o.tensor_parallel, o.pipeline_parallel, o.dist_timeout,
                                       o.argc, o.argv, &cfg, &err);
    if (rc == GARLIC_OK)
        rc = cli_local_device(o.device, o.gpu_layers, &cfg, &err);
    if (rc == GARLIC_OK)
        rc = cli_local_open(&l, o.model_path, &cfg, &err);
    // the weights as loaded (a folder quantized at load has its new types and size)
    if (rc == GARLIC_OK && o.quantize)
        rc = model_info_read(registry_model_weights(l.m)->file, &info, &err);
    bench_result r[2 * BENCH_MAX_DEPTHS];
    int n = 0;
    for (uint32_t d = 0; d < o.n_depths && rc == GARLIC_OK; d++) {
        if (o.n_prompt)
            rc = measure(&l, &o, true, o.depths[d], &r[n++], &err);
        if (rc == GARLIC_OK && o.n_gen)
            rc = measure(&l, &o, false, o.depths[d], &r[n++], &err);
    }
    if (rc != GARLIC_OK) {
        fprintf(stderr, "garlic bench: %s\n", err.message), status = 1;
    } else {
        print_results(&o, &info, r, n);
        if (cfg.tp_size > 1)
            report_all_reduce(&o, registry_model_weights(l.m)->hp.dim);
    }
    cli_local_close(&l);
    return status;
}

int cli_bench(int argc, char **argv)
{
    bench_options o;
    int status = parse_bench(&o, argc, argv);
    if (status != CLI_CONTINUE)
        return status;
    if (o.batched && o.grammar_text) {
        garlic_free(o.grammar_text);
        return cli_usage_error(&bench_command,
                               "--grammar and --json-schema are for -p/-n runs, "
                               "not --streams or --prefix");
    }
    status = o.batched ? cli_bench_batch_run(&o) : bench_one_stream(&o);
    garlic_free(o.grammar_text);
    return status;
}
