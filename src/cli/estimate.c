// SPDX-License-Identifier: MIT
// `garlic estimate MODEL [options]`: the memory plan of serving MODEL (a GGUF file, or a
// Hugging Face config.json or its folder): weights by type, KV cache per token (of each kind
// of layer, when some have a sliding window) and in total, compute buffers, fixed overhead
// and total, and what fits a budget (--budget; the total and the budget are formatted
// together so that they read apart). With --tensor-parallel T and --pipeline-parallel P, also
// each rank's memory in that layout and, with --budget (per rank), the smallest layout that
// fits (the stages `--pipeline-parallel` runs). The numbers come from
// src/planner, which the server uses to size its pools.
#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

#include "backend/backend.h"
#include "base/alloc.h"
#include "base/units.h"
#include "base/utf8.h"
#include "cli/cli.h"
#include "hf/hf.h"
#include "planner/planner.h"

static const cli_command estimate_command = {
    .name = "estimate",
    .usage = "MODEL.gguf|config.json|FOLDER [options]",
    .about = "Prints the memory plan of serving MODEL, a GGUF file or a Hugging Face config.json "
             "(or its\nfolder): weights by type, the KV cache per token and in all, compute "
             "buffers, fixed overhead\nand total, and with --budget what fits. These are the "
             "figures `garlic serve` allocates.",
    .notes = "SIZE: bytes with an optional suffix: K, M, G, T (or KB, MB, GB, TB: powers of 10) "
             "or KiB, MiB,\nGiB, TiB (powers of 2).",
};

typedef struct estimate_options {
    const char *model_path;
    const char *quantize;
    planner_config cfg;
    bool json;
    uint32_t tp, pp;        // --tensor-parallel, --pipeline-parallel (0: not given)
    uint32_t max_ranks;     // --max-ranks: how far the smallest layout is searched
    const char *device;     // --device cuda[:N] (NULL: none)
    const char *gpu_layers; // --gpu-layers N|auto
    uint64_t gpu_memory;    // --gpu-memory: the device's memory (0: the device's free memory)
    uint64_t gpu_overhead;  // --gpu-overhead: context and libraries (0: measured, or none)
    bool gpu_overhead_set;
} estimate_options;

// What the device plan was made against, for printing it.
typedef struct device_report {
    planner_device_plan plan;
    char name[160]; // "cuda:0 (NVIDIA H100 ...)", or "cuda:0 (not present: ...)"
    bool measured;  // memory and overhead come from the device
    uint32_t n_layer;
} device_report;

// Parses the arguments into o; CLI_CONTINUE, or the status to exit with.
static int parse_estimate(estimate_options *o, int argc, char **argv)
{
    *o = (estimate_options){0};
    planner_config_default(&o->cfg);
    planner_config *c = &o->cfg;
    bool parallel_given = false;
    const cli_option options[] = {
        cli_arg("MODEL", "a GGUF file, or a Hugging Face config.json or its folder",
                &o->model_path),
        cli_uint("--ctx|-c", "N", "positions per sequence (default: trained, at most 4096)",
                 &c->ctx, 1, PLANNER_MAX_CTX),
        cli_seen(cli_uint("--parallel|-np", "N",
                          "full-context sequences the KV pool holds "
                          "(default 4)",
                          &c->parallel, 1, 1u << 20),
                 &parallel_given),
        cli_uint("--kv-tokens", "N", "KV pool positions instead of parallel x ctx", &c->kv_tokens,
                 16, UINT32_MAX / 2),
        cli_uint("--running", "N", "sequences run at once (default: --parallel if given)",
                 &c->running, 1, 4096),
        cli_kv_type("--kv-type", "KV cache type: f16 (default), q8_0, fp8 or f32", &c->kv_type),
        cli_size("--budget", "SIZE", "bytes available: what fits them", &c->budget),
        cli_uint("--step-tokens|--batch|-b", "N", "tokens per forward call (default 512)",
                 &c->max_batch, 1, 65536),
        cli_int("--threads|-t", "N", "compute threads (default: physical cores)", &c->n_threads, 1,
                1024),
        cli_string("--quantize", "TYPE",
                   "a Hugging Face folder quantized at load to TYPE (as serve --quantize)",
                   &o->quantize),
        cli_uint("--tensor-parallel", "T",
                 "each rank's memory when T ranks share every layer (as garlic run "
                 "--tensor-parallel)",
                 &o->tp, 1, 4096),
        cli_uint("--pipeline-parallel", "P",
                 "... and the layers are split into P stages of contiguous layers (as run, "
                 "serve and bench --pipeline-parallel split them)",
                 &o->pp, 1, PLANNER_MAX_STAGES),
        cli_uint("--max-ranks", "N",
                 "with --budget and a layout: search the smallest layout up to N ranks "
                 "(default 1024)",
                 &o->max_ranks, 1, 1u << 16),
        cli_string("--device", "NAME",
                   "plan the GPU's memory too: cuda or cuda:N (measured when it is present)",
                   &o->device),
        cli_string("--gpu-layers", "N",
                   "layers on the GPU from the first (default auto: as many as fit)",
                   &o->gpu_layers),
        cli_size("--gpu-memory", "SIZE", "the GPU's memory (default: the device's free memory)",
                 &o->gpu_memory),
        cli_seen(cli_size("--gpu-overhead", "SIZE",
                          "the CUDA context and cuBLAS workspaces (default: measured on the "
                          "device; none without one)",
                          &o->gpu_overhead),
                 &o->gpu_overhead_set),
        cli_flag("--json", "print one JSON object", &o->json),
        {0},
    };
    int status = cli_parse(&estimate_command, options, argc, argv);
    if (status != CLI_CONTINUE)
        return status;
    if (parallel_given && !c->running) // as `garlic serve --parallel N` runs N at once
        c->running = c->parallel;
    return CLI_CONTINUE;
}

// 14768307200 as "14,768,307,200" (4 rotating static buffers).
static const char *commas(uint64_t v)
{
    static char bufs[4][32];
    static int next;
    char *b = bufs[next++ % 4], digits[24];
    int n = snprintf(digits, sizeof digits, "%llu", (unsigned long long)v), len = 0;
    for (int i = 0; i < n; i++) {
        if (i && (n - i) % 3 == 0)
            b[len++] = ',';
        b[len++] = digits[i];
    }
    b[len] = '\0';
    return b;
}

static void print_weights(const planner_input *in, const planner_plan *p)
{
    const planner_weights *w = &in->weights;
    printf("  Weights (%s)%*s %18s %18s\n", planner_source_name(in->source),
           (int)(24 - strlen(planner_source_name(in->source))), "", "parameters", "bytes");
    for (uint32_t i = 0; i < w->n_types; i++) {
        const planner_weight_type *t = &w->types[i];
        char label[48];
        snprintf(label, sizeof label, "%s%s", t->name, t->scales ? " scales" : "");
        printf("    %-30s %18s %18s  %s\n", label, t->scales ? "-" : commas(t->n_elements),
               commas(t->bytes), cli_format_bytes((double)t->bytes));
    }
    if (w->mapping_bytes)
        printf("    %-30s %18s %18s  %s\n",
               in->source == PLANNER_SOURCE_GGUF ? "header and metadata (mapped)"
                                                 : "headers (safetensors)",
               "", commas(w->mapping_bytes), cli_format_bytes((double)w->mapping_bytes));
    printf("    %-30s %18s %18s  %s\n", "total", commas(w->n_params), commas(p->weight_bytes),
           cli_format_bytes((double)p->weight_bytes));
    printf("    %-30s %18s\n", "without norms", commas(w->n_params - w->n_params_norm));
    if (in->assumption[0])
        printf("    assumed: %s\n", in->assumption);
}

// Decimals that make two sizes read differently in GB (10^9 bytes): 2, or up to 9 (bytes).
static int gb_decimals(uint64_t a, uint64_t b)
{
    for (int d = 2; d < 9; d++) {
        char x[48], y[48];
        snprintf(x, sizeof x, "%.*f", d, (double)a / 1e9);
        snprintf(y, sizeof y, "%.*f", d, (double)b / 1e9);
        if (a == b || strcmp(x, y) != 0)
            return d;
    }
    return 9;
}

// The budget against the total: budget_text and gb are the figures formatted with the
// total's so that the two read differently when they differ.
static void print_budget(const planner_plan *p, const planner_input *in, const char *budget_text,
                         int gb)
{
    const planner_config *c = &p->cfg;
    char label[64];
    printf("  Budget %s (%s bytes, %.*f GB): %s\n", budget_text, commas(c->budget), gb,
           (double)c->budget / 1e9, p->fits ? "fits" : "does not fit");
    printf("    %-30s %u\n", "KV blocks after static", p->budget_blocks);
    snprintf(label, sizeof label, "max --parallel at ctx %u", c->ctx);
    printf("    %-30s %u\n", label, p->max_parallel);
    snprintf(label, sizeof label, "max --ctx at parallel %u", c->parallel);
    if (p->max_ctx)
        printf("    %-30s %u%s\n", label, p->max_ctx,
               p->max_ctx > in->hp.n_ctx_train ? " (beyond the trained context)" : "");
    else
        printf("    %-30s none (not even 1 position fits)\n", label);
    uint64_t seq = planner_sequences_for_budget(c->budget, p->static_bytes, p->kv_bytes_per_seq);
    printf("    %-30s floor((budget - static) / KV per sequence)\n", "sizing rule");
    printf("    %-30s = floor((%s - %s) / %s) = %s\n", "", commas(c->budget),
           commas(p->static_bytes), commas(p->kv_bytes_per_seq), commas(seq));
}

// The KV bytes per token of each kind of layer: the full-attention layers keep every
// position, the sliding-window layers only their window (in blocks of their own).
static void print_window_kinds(const planner_input *in, const planner_plan *p)
{
    char label[64];
    snprintf(label, sizeof label, "  full layers (%u)", in->hp.n_layer - p->n_window_layers);
    printf("    %-30s %s  %s\n", label, commas(p->kv_full_bytes_per_token),
           cli_format_bytes((double)p->kv_full_bytes_per_token));
    snprintf(label, sizeof label, "  window layers (%u)", p->n_window_layers);
    printf("    %-30s %s  %s, for the last %u positions only\n", label,
           commas(p->kv_window_bytes_per_token),
           cli_format_bytes((double)p->kv_window_bytes_per_token), p->window);
}

static void print_text(const planner_input *in, const planner_plan *p)
{
    const model_hparams *hp = &in->hp;
    const planner_config *c = &p->cfg;
    char path[300];
    utf8_sanitize(in->path, strlen(in->path), path, sizeof path, true);
    printf("  Model\n");
    printf("    %-30s %s\n", "file", path);
    printf("    %-30s %s\n", "architecture", in->arch);
    printf("    %-30s %u layers, dim %u, FFN %u, vocabulary %u\n", "shape", hp->n_layer, hp->dim,
           hp->ffn, hp->n_vocab);
    printf("    %-30s %u (KV %u), head dim %u", "heads", hp->n_head, hp->n_head_kv, hp->head_dim_k);
    if (model_hparams_mla(hp))
        printf(" (latent attention: K rows of latent %u + RoPE %u, no V rows)", hp->kv_lora_rank,
               hp->n_rot);
    else if (hp->head_dim_v != hp->head_dim_k)
        printf(" (V %u)", hp->head_dim_v);
    printf("\n    %-30s %u\n", "trained context", hp->n_ctx_train);
    print_weights(in, p);
    printf("  KV cache (%s, blocks of %u positions)\n", kv_type_name(c->kv_type), c->block_tokens);
    printf("    %-30s %s  %s\n", "per token", commas(p->kv_bytes_per_token),
           cli_format_bytes((double)p->kv_bytes_per_token));
    if (p->n_window_layers)
        print_window_kinds(in, p);
    printf("    %-30s %s  %s\n", "per sequence (data)", commas(p->kv_data_bytes / c->parallel),
           cli_format_bytes((double)(p->kv_data_bytes / c->parallel)));
    if (c->kv_tokens)
        printf("    %-30s %u positions (--kv-tokens) = %u blocks\n", "pool", c->kv_tokens,
               p->kv_blocks);
    else
        printf("    %-30s %u x %u positions = %u blocks\n", "pool", c->parallel, c->ctx,
               p->kv_blocks);
    if (p->n_window_layers)
        printf("    %-30s %u (%u running x a window of %u, steps of %u)\n", "window blocks",
               p->kv_window_blocks, c->running, p->window, c->max_batch);
    printf("    %-30s %s  %s\n", "pool data", commas(p->kv_data_bytes),
           cli_format_bytes((double)p->kv_data_bytes));
    printf("    %-30s %s\n", "pool bookkeeping", commas(p->kv_bytes - p->kv_data_bytes));
    printf("    %-30s %s  %s\n", "pool total", commas(p->kv_bytes),
           cli_format_bytes((double)p->kv_bytes));
    printf("  %-32s %s  %s (batch %u, %u logit rows for %u running, %d threads)\n",
           "Compute buffers", commas(p->scratch_bytes), cli_format_bytes((double)p->scratch_bytes),
           c->max_batch, c->logit_rows, c->running, c->n_threads);
    printf("  %-32s %s  %s (process, tokenizer)\n", "Fixed overhead", commas(p->overhead_bytes),
           cli_format_bytes((double)p->overhead_bytes));
    printf("  %-32s %s  %s\n", "Static (weights+compute+fixed)", commas(p->static_bytes),
           cli_format_bytes((double)p->static_bytes));
    uint64_t budget = c->budget ? c->budget : p->total_bytes;
    garlic_bytes_texts t = garlic_bytes_apart(2, (const uint64_t[]){p->total_bytes, budget});
    int gb = gb_decimals(p->total_bytes, budget);
    printf("  %-32s %s  %s (%.*f GB)\n", "Total", commas(p->total_bytes), t.text[0], gb,
           (double)p->total_bytes / 1e9);
    if (c->budget)
        print_budget(p, in, t.text[1], gb);
}

static cJSON *weights_json(const planner_input *in, const planner_plan *p)
{
    const planner_weights *w = &in->weights;
    cJSON *o = cJSON_CreateObject(), *types = cJSON_AddArrayToObject(o, "types");
    for (uint32_t i = 0; i < w->n_types; i++) {
        cJSON *t = cJSON_CreateObject();
        cJSON_AddStringToObject(t, "type", w->types[i].name);
        cJSON_AddBoolToObject(t, "scales", w->types[i].scales);
        cJSON_AddNumberToObject(t, "tensors", (double)w->types[i].n_tensors);
        cJSON_AddNumberToObject(t, "elements", (double)w->types[i].n_elements);
        cJSON_AddNumberToObject(t, "bytes", (double)w->types[i].bytes);
        cJSON_AddItemToArray(types, t);
    }
    cJSON_AddNumberToObject(o, "parameters", (double)w->n_params);
    cJSON_AddNumberToObject(o, "parameters_without_norms",
                            (double)(w->n_params - w->n_params_norm));
    cJSON_AddNumberToObject(o, "tensor_bytes", (double)w->tensor_bytes);
    cJSON_AddNumberToObject(o, "mapping_bytes", (double)w->mapping_bytes);
    cJSON_AddNumberToObject(o, "bytes", (double)p->weight_bytes);
    cJSON_AddNumberToObject(o, "files", (double)in->n_files);
    if (in->assumption[0])
        cJSON_AddStringToObject(o, "assumption", in->assumption);
    return o;
}

// A key and its number, for add_numbers.
typedef struct json_number {
    const char *key; // NULL ends a list
    double value;
} json_number;

// Adds the numbers of rows (ended by a NULL key) to o, in order.
static void add_numbers(cJSON *o, const json_number *rows)
{
    for (; rows->key; rows++)
        cJSON_AddNumberToObject(o, rows->key, rows->value);
}

// A layout's ranks (--tensor-parallel, --pipeline-parallel) and the smallest layout that fits
// the budget.
typedef struct layout_report {
    uint32_t t, p;
    planner_rank *ranks; // (t * p) rank r = tp_rank + t * stage
    bool searched;       // a budget was given: best_t x best_p, or none (found false)
    bool found;
    uint32_t best_t, best_p, max_ranks;
} layout_report;

static void print_layout(const layout_report *r, const planner_config *c, uint32_t n_layer)
{
    printf("  Layout: --tensor-parallel %u x --pipeline-parallel %u = %u ranks%s\n", r->t, r->p,
           r->t * r->p, r->p > 1 ? " (the stages --pipeline-parallel runs)" : "");
    printf("    %4s %4s %5s %-18s %15s %12s %12s %12s %15s%s\n", "rank", "tp", "stage", "layers",
           "weights", "KV pool", "compute", "overhead", "total", c->budget ? "  budget" : "");
    for (uint32_t i = 0; i < r->t * r->p; i++) {
        const planner_rank *k = &r->ranks[i];
        const planner_plan *p = &k->plan;
        char layers[48];
        snprintf(layers, sizeof layers, "%u-%u%s%s", k->first_layer,
                 k->first_layer + k->n_layers - 1, k->first_layer == 0 ? " +embd" : "",
                 k->first_layer + k->n_layers == n_layer ? " +out" : "");
        printf("    %4u %4u %5u %-18s %15s %12s %12s %12s %15s%s\n", i, k->tp_rank, k->stage,
               layers, commas(p->weight_bytes), cli_format_bytes((double)p->kv_bytes),
               cli_format_bytes((double)p->scratch_bytes),
               cli_format_bytes((double)p->overhead_bytes), commas(p->total_bytes),
               !c->budget    ? ""
                   : p->fits ? "  fits"
                             : "  does not fit");
    }
    if (r->searched && r->found)
        printf("  Smallest layout within %s per rank: --tensor-parallel %u --pipeline-parallel %u "
               "(%u ranks)\n",
               commas(c->budget), r->best_t, r->best_p, r->best_t * r->best_p);
    else if (r->searched)
        printf("  Smallest layout within %s per rank: none of up to %u ranks\n", commas(c->budget),
               r->max_ranks);
}

static cJSON *layout_json(const layout_report *r, const planner_config *c, uint32_t n_layer)
{
    cJSON *o = cJSON_CreateObject(), *ranks = cJSON_AddArrayToObject(o, "ranks");
    add_numbers(
        o,
        (const json_number[]){{"tensor_parallel", r->t}, {"pipeline_parallel", r->p}, {NULL, 0}});
    cJSON_AddBoolToObject(o, "pipeline_runs", true); // (garlic runs these stages)
    for (uint32_t i = 0; i < r->t * r->p; i++) {
        const planner_rank *k = &r->ranks[i];
        const planner_plan *p = &k->plan;
        cJSON *j = cJSON_CreateObject();
        add_numbers(j,
                    (const json_number[]){{"rank", i},
                                          {"tp_rank", k->tp_rank},
                                          {"stage", k->stage},
                                          {"first_layer", k->first_layer},
                                          {"n_layers", k->n_layers},
                                          {"weight_bytes", (double)p->weight_bytes},
                                          {"kv_bytes", (double)p->kv_bytes},
                                          {"kv_bytes_per_token", (double)p->kv_bytes_per_token},
                                          {"scratch_bytes", (double)p->scratch_bytes},
                                          {"overhead_bytes", (double)p->overhead_bytes},
                                          {"total_bytes", (double)p->total_bytes},
                                          {NULL, 0}});
        cJSON_AddBoolToObject(j, "embedding", k->first_layer == 0);
        cJSON_AddBoolToObject(j, "output", k->first_layer + k->n_layers == n_layer);
        if (c->budget)
            cJSON_AddBoolToObject(j, "fits", p->fits);
        cJSON_AddItemToArray(ranks, j);
    }
    if (r->searched && r->found)
        add_numbers(cJSON_AddObjectToObject(o, "smallest"),
                    (const json_number[]){{"tensor_parallel", r->best_t},
                                          {"pipeline_parallel", r->best_p},
                                          {"ranks", r->best_t * r->best_p},
                                          {NULL, 0}});
    else if (r->searched)
        cJSON_AddNullToObject(o, "smallest");
    return o;
}

static cJSON *device_json(const device_report *r);

static void print_json(const planner_input *in, const planner_plan *p, const layout_report *r,
                       const device_report *dev)
{
    const planner_config *c = &p->cfg;
    const model_hparams *hp = &in->hp;
    char path[1024];
    utf8_sanitize(in->path, strlen(in->path), path, sizeof path, false);
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "model", path);
    cJSON_AddStringToObject(root, "source", planner_source_name(in->source));
    cJSON_AddStringToObject(root, "architecture", in->arch);
    add_numbers(cJSON_AddObjectToObject(root, "hparams"),
                (const json_number[]){{"n_layer", hp->n_layer},
                                      {"dim", hp->dim},
                                      {"ffn", hp->ffn},
                                      {"n_head", hp->n_head},
                                      {"n_head_kv", hp->n_head_kv},
                                      {"head_dim_k", hp->head_dim_k},
                                      {"head_dim_v", hp->head_dim_v},
                                      {"q_lora_rank", hp->q_lora_rank},
                                      {"kv_lora_rank", hp->kv_lora_rank},
                                      {"n_vocab", hp->n_vocab},
                                      {"n_ctx_train", hp->n_ctx_train},
                                      {NULL, 0}});
    cJSON_AddItemToObject(root, "weights", weights_json(in, p));
    cJSON *kv = cJSON_AddObjectToObject(root, "kv_cache");
    cJSON_AddStringToObject(kv, "type", kv_type_name(c->kv_type));
    add_numbers(
        kv,
        (const json_number[]){{"block_tokens", c->block_tokens},
                              {"bytes_per_token", (double)p->kv_bytes_per_token},
                              {"full_bytes_per_token", (double)p->kv_full_bytes_per_token},
                              {"window_bytes_per_token", (double)p->kv_window_bytes_per_token},
                              {"window_layers", p->n_window_layers},
                              {"window", p->window},
                              {"window_blocks", p->kv_window_blocks},
                              {"ctx", c->ctx},
                              {"parallel", c->parallel},
                              {"kv_tokens", (double)p->kv_blocks * c->block_tokens},
                              {"blocks", p->kv_blocks},
                              {"data_bytes", (double)p->kv_data_bytes},
                              {"bytes", (double)p->kv_bytes},
                              {"bytes_per_sequence", (double)p->kv_bytes_per_seq},
                              {NULL, 0}});
    add_numbers(cJSON_AddObjectToObject(root, "compute"),
                (const json_number[]){{"bytes", (double)p->scratch_bytes},
                                      {"max_batch", c->max_batch},
                                      {"logit_rows", c->logit_rows},
                                      {"running", c->running},
                                      {"n_threads", c->n_threads},
                                      {NULL, 0}});
    add_numbers(root,
                (const json_number[]){{"overhead_bytes", (double)p->overhead_bytes},
                                      {"static_bytes", (double)p->static_bytes},
                                      {"total_bytes", (double)p->total_bytes},
                                      {NULL, 0}});
    if (c->budget) {
        cJSON *b = cJSON_AddObjectToObject(root, "budget");
        cJSON_AddNumberToObject(b, "bytes", (double)c->budget);
        cJSON_AddBoolToObject(b, "fits", p->fits);
        add_numbers(b,
                    (const json_number[]){{"kv_blocks", p->budget_blocks},
                                          {"max_parallel", p->max_parallel},
                                          {"max_ctx", p->max_ctx},
                                          {NULL, 0}});
    }
    if (r)
        cJSON_AddItemToObject(root, "layout", layout_json(r, c, hp->n_layer));
    if (dev)
        cJSON_AddItemToObject(root, "gpu", device_json(dev));
    char *text = cJSON_Print(root);
    if (text)
        printf("%s\n", text);
    cJSON_free(text);
    cJSON_Delete(root);
}

// The device plan of o's --device: measured on the device when this build and machine have it
// (its free memory, what its context and libraries took), else from --gpu-memory and
// --gpu-overhead.
static int make_device(const estimate_options *o, const planner_input *in, const planner_plan *plan,
                       device_report *r, garlic_error *err)
{
    int index;
    garlic_error why = {0};
    int rc = backend_parse_device(o->device, &index, &why);
    if (rc && rc != GARLIC_EUNSUPPORTED) { // (a build without CUDA still plans)
        *err = why;
        return rc;
    }
    if (index < 0)
        return garlic_error_set(err, GARLIC_EINVAL, "--device %s: a GPU (cuda or cuda:N) to plan",
                                o->device);
    int64_t layers;
    if ((rc = backend_parse_layers(o->gpu_layers, &layers, err)))
        return rc;
    uint64_t memory = o->gpu_memory, overhead = o->gpu_overhead;
    backend *d = rc == GARLIC_OK ? backend_cuda_new(index, &why) : NULL;
    if (d) {
        backend_device_info info;
        d->ops->info(d, &info);
        snprintf(r->name, sizeof r->name, "cuda:%d (%s)", index, info.name);
        // The context is created: free memory is what is left after it, so nothing more is
        // subtracted unless asked (its bytes are shown).
        memory = memory ? memory : info.free_bytes;
        overhead = o->gpu_overhead_set ? overhead : o->gpu_memory ? info.context_bytes : 0;
        r->measured = true;
        backend_free(d);
    } else {
        snprintf(r->name, sizeof r->name, "cuda:%d (not measured: %.100s)", index, why.message);
    }
    if (layers < 0 && !memory)
        return garlic_error_set(err, GARLIC_EINVAL,
                                "--gpu-layers auto needs the GPU's memory: no device here "
                                "(%s); give --gpu-memory SIZE (and --gpu-overhead SIZE for its "
                                "context)",
                                why.message);
    r->n_layer = in->hp.n_layer;
    return planner_device_plan_make(in, plan, layers, UINT32_MAX, memory, overhead, &r->plan, err);
}

static void print_device(const device_report *r)
{
    const planner_device_plan *p = &r->plan;
    printf("  GPU %s\n", r->name);
    printf("    layers on the GPU %29u of %u%s\n", p->layers, r->n_layer,
           p->output ? ", and the output" : "");
    const struct {
        const char *label;
        uint64_t bytes;
    } rows[] = {{"weights", p->weight_bytes},
                {"KV rows", p->kv_bytes},
                {"activation buffers", p->scratch_bytes},
                {"context and libraries", p->overhead_bytes},
                {"total on the GPU", p->total_bytes}};
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        printf("    %-30s %18s  %s\n", rows[i].label, commas(rows[i].bytes),
               cli_format_bytes((double)rows[i].bytes));
    if (p->memory)
        printf("    %-30s %18s  %s: %s\n", "GPU memory", commas(p->memory),
               cli_format_bytes((double)p->memory), p->fits ? "fits" : "does not fit");
    printf("    %-30s %18s  %s\n", "weights the host keeps", commas(p->host_weight_bytes),
           cli_format_bytes((double)p->host_weight_bytes));
    if (!r->measured)
        printf("    (no GPU measured here: the context and libraries are --gpu-overhead's, "
               "the memory --gpu-memory's)\n");
}

static cJSON *device_json(const device_report *r)
{
    const planner_device_plan *p = &r->plan;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "device", r->name);
    cJSON_AddBoolToObject(o, "measured", r->measured);
    cJSON_AddBoolToObject(o, "output", p->output);
    cJSON_AddBoolToObject(o, "fits", p->fits);
    add_numbers(o,
                (const json_number[]){{"gpu_layers", p->layers},
                                      {"weight_bytes", (double)p->weight_bytes},
                                      {"kv_bytes", (double)p->kv_bytes},
                                      {"scratch_bytes", (double)p->scratch_bytes},
                                      {"overhead_bytes", (double)p->overhead_bytes},
                                      {"total_bytes", (double)p->total_bytes},
                                      {"memory", (double)p->memory},
                                      {"host_weight_bytes", (double)p->host_weight_bytes},
                                      {NULL, 0}});
    return o;
}

// The ranks of o's layout and, with a budget, the smallest layout that fits it.
static int make_layout(const estimate_options *o, layout_report *r, garlic_error *err)
{
    r->t = o->tp ? o->tp : 1, r->p = o->pp ? o->pp : 1;
    r->max_ranks = o->max_ranks ? o->max_ranks : 1024;
    if ((uint64_t)r->t * r->p > 1u << 16)
        return garlic_error_set(err, GARLIC_EINVAL, "%u x %u ranks: too many", r->t, r->p);
    r->ranks = garlic_calloc((size_t)r->t * r->p, sizeof *r->ranks);
    if (!r->ranks)
        return garlic_error_set(err, GARLIC_ENOMEM, "out of memory");
    int rc = planner_layout_make(o->model_path, o->quantize, r->t, r->p, &o->cfg, r->ranks, err);
    if (rc != GARLIC_OK || !o->cfg.budget)
        return rc;
    r->searched = true;
    garlic_error search = {0};
    rc = planner_layout_smallest(o->model_path, o->quantize, &o->cfg, r->max_ranks, &r->best_t,
                                 &r->best_p, &search);
    r->found = rc == GARLIC_OK;
    if (rc == GARLIC_ENOTFOUND)
        return GARLIC_OK;
    if (rc)
        *err = search;
    return rc;
}

int cli_estimate(int argc, char **argv)
{
    estimate_options o;
    int status = parse_estimate(&o, argc, argv);
    if (status != CLI_CONTINUE)
        return status;
    planner_input in;
    garlic_error err = {0};
    planner_plan plan;
    // A folder garlic loads is planned from the model it makes (exact, --quantize included);
    // one it cannot load (or a config.json alone) from config.json and the safetensors headers.
    int rc = hf_is_folder(o.model_path) || o.quantize
        ? planner_from_model_path(o.model_path, o.quantize, &in, &err)
        : planner_from_path(o.model_path, &in, &err);
    if (rc && hf_is_folder(o.model_path) && !o.quantize && err.code != GARLIC_ENOMEM) {
        fprintf(stderr, "garlic estimate: note: %s; estimating from config.json\n", err.message);
        err = (garlic_error){0};
        rc = planner_from_path(o.model_path, &in, &err);
    }
    if (rc) {
        fprintf(stderr, "garlic estimate: %s\n", err.message);
        return 1;
    }
    if (planner_plan_make(&in, &o.cfg, &plan, &err)) {
        fprintf(stderr, "garlic estimate: %s: %s\n", o.model_path, err.message);
        return 1;
    }
    layout_report layout = {0};
    if ((o.tp || o.pp) && make_layout(&o, &layout, &err) != GARLIC_OK) {
        fprintf(stderr, "garlic estimate: %s\n", err.message);
        garlic_free(layout.ranks);
        return 1;
    }
    device_report dev = {0};
    if (o.device || o.gpu_layers || o.gpu_memory) {
        // The bytes of each layer: a file garlic loads, read as it loads it (shapes only).
        planner_input *by_layer = garlic_malloc(sizeof *by_layer);
        if (!o.device)
            o.device = "cuda";
        rc = !by_layer        ? garlic_error_set(&err, GARLIC_ENOMEM, "out of memory")
            : in.layers_known ? (*by_layer = in, GARLIC_OK)
                              : planner_from_model_path(o.model_path, o.quantize, by_layer, &err);
        if (rc == GARLIC_OK)
            rc = make_device(&o, by_layer, &plan, &dev, &err);
        garlic_free(by_layer);
        if (rc) {
            fprintf(stderr, "garlic estimate: %s: %s\n", o.model_path, err.message);
            garlic_free(layout.ranks);
            return 1;
        }
    }
    bool gpu = o.device != NULL;
    if (o.json) {
        print_json(&in, &plan, o.tp || o.pp ? &layout : NULL, gpu ? &dev : NULL);
    } else {
        print_text(&in, &plan);
        if (o.tp || o.pp)
            print_layout(&layout, &o.cfg, in.hp.n_layer);
        if (gpu)
            print_device(&dev);
    }
    garlic_free(layout.ranks);
    return 0;
}
