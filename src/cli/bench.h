// SPDX-License-Identifier: MIT
// The options of `garlic bench` (bench.c parses them), shared with the batched-decoding
// benchmark (bench_batch.c) that runs when --streams or --prefix is given.
#ifndef GARLIC_CLI_BENCH_H
#define GARLIC_CLI_BENCH_H

#include <stdbool.h>
#include <stdint.h>

#include "kvcache/kvcache.h"

enum { BENCH_MAX_STREAM_COUNTS = 16, BENCH_MAX_STREAMS = 256, BENCH_MAX_DEPTHS = 16 };

typedef struct bench_options {
    const char *model_path;
    uint32_t n_prompt, n_gen, reps, batch;
    int threads;
    kv_type kv_type;
    const char *quantize; // --quantize: a folder's 16/32-bit matrices at load
    bool json;
    bool batched;                              // --streams or --prefix given: cli_bench_batch_run
    uint32_t streams[BENCH_MAX_STREAM_COUNTS]; // (n_streams) stream counts
    uint32_t n_streams;
    uint32_t depths[BENCH_MAX_DEPTHS]; // -d: (n_depths) tokens already in the cache (llama-bench)
    uint32_t n_depths;                 // 0: one depth, 0
    uint32_t prefix;            // --prefix: shared prefix length for the TTFT measure (0: none)
    const char *grammar_file;   // --grammar / --json-schema: tg constrained by it (NULL: free)
    bool grammar_is_schema;     // the file is a JSON schema, not GBNF
    char *grammar_text;         // its contents, read once (garlic_malloc'd)
    uint32_t tensor_parallel;   // --tensor-parallel: ranks (mpirun -np) sharing each layer
    uint32_t pipeline_parallel; // --pipeline-parallel: stages of contiguous layers
    float dist_timeout;         // --dist-timeout: seconds a collective may wait (0: no limit)
    const char *device;         // --device: cpu, cuda, cuda:N
    const char *gpu_layers;     // --gpu-layers: N or auto
    int argc;                   // the command's arguments, compared between the ranks
    char **argv;
} bench_options;

// Runs the batched benchmark with o's model, -p, -n, -t, --kv-type, --streams, --prefix and
// --json; returns the exit status.
int cli_bench_batch_run(const bench_options *o);

#endif
