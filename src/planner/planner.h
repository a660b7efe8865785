// SPDX-License-Identifier: MIT
// The memory planner: what serving a model costs, exactly. A planner_input describes a model
// (hyper-parameters and its weights by type) read from a GGUF file or a Hugging Face folder
// (config.json, and the safetensors headers when present, read by src/hf); planner_plan_make
// adds the KV pool (kv_cache_bytes_for, the very figure kv_cache_new allocates), the forward
// pass's scratch (model_scratch_bytes) and a fixed overhead, and answers how many sequences
// or how long a context fit a budget. `garlic estimate` prints it; the server sizes its pools
// with it.
#ifndef GARLIC_PLANNER_H
#define GARLIC_PLANNER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "kvcache/kvcache.h"
#include "model/model.h"

// Memory a serving process takes besides weights, KV pool and compute buffers. Measured
// (docs/planner.md): `garlic serve` idle with no model holds 5.0-5.5 MiB RSS (the binary's and
// its libraries' pages, the C runtime's heap, the HTTP and compute threads' stacks); a loaded
// tokenizer adds its vocabulary and merges (the Llama 3 one, 128,256 tokens and 280,147
// merges, 15.2 MiB of heap). The plan counts PLANNER_PROCESS_OVERHEAD plus
// PLANNER_TOKEN_BYTES per vocabulary entry and PLANNER_MERGE_BYTES per merge (rounded up from
// the measurement), per model; planner_overhead computes it.
#define PLANNER_PROCESS_OVERHEAD (6ull << 20)
#define PLANNER_TOKEN_BYTES 64
#define PLANNER_MERGE_BYTES 32

enum {
    PLANNER_BLOCK_TOKENS = 16,       // positions per KV block, as the server's pool uses
    PLANNER_DEFAULT_MAX_BATCH = 512, // tokens per forward call, as the server uses
    PLANNER_DEFAULT_PARALLEL = 4,    // full contexts the server's KV pool holds by default
    PLANNER_DEFAULT_CTX = 4096,      // the server's context when the model's is longer
    PLANNER_MAX_CTX = 1 << 24,       // longest context model_state_new accepts
    PLANNER_MAX_TYPES = 48,          // rows of the weights-by-type table
    PLANNER_TYPE_NAME = 24,
    PLANNER_MAX_LAYERS = 1024, // layers whose weights a planner_input counts one by one
    PLANNER_MAX_STAGES = 1024, // pipeline stages of a layout (at most one layer each)
};

// One row of the weights-by-type table: all tensors of one storage type ("Q4_K", "BF16",
// "F8_E4M3"), or the quantization scales of one type, kept apart because they are not
// parameters.
typedef struct planner_weight_type {
    char name[PLANNER_TYPE_NAME]; // the type as its format names it
    bool scales;                  // quantization scales (bytes, not parameters)
    uint64_t n_tensors;
    uint64_t n_elements; // values stored
    uint64_t bytes;
} planner_weight_type;

// A model's weights: the table by type, and the totals.
typedef struct planner_weights {
    planner_weight_type types[PLANNER_MAX_TYPES]; // (n_types) in order of first appearance
    uint32_t n_types;
    uint64_t n_tensors;
    uint64_t n_params;      // elements of every tensor except quantization scales
    uint64_t n_params_norm; // of which in norm tensors (names containing "norm")
    uint64_t tensor_bytes;  // data bytes of every tensor, scales included
    uint64_t mapping_bytes; // file bytes besides tensor data (headers, metadata, padding)
} planner_weights;

// Adds n_elements values taking bytes of type name (scales or not) to w, with overflow
// checks; norm counts toward n_params_norm. GARLIC_EINVAL on overflow or a full table.
int planner_weights_add(planner_weights *w, const char *name, bool scales, bool norm,
                        uint64_t n_elements, uint64_t bytes, garlic_error *err);

typedef enum planner_source {
    PLANNER_SOURCE_GGUF,        // a GGUF file: hyper-parameters as model_load reads them
    PLANNER_SOURCE_HF_CONFIG,   // config.json alone: weights derived from its dtypes
    PLANNER_SOURCE_SAFETENSORS, // config.json + the safetensors headers next to it
    PLANNER_SOURCE_COUNT
} planner_source;

// What the planner knows about one model.
typedef struct planner_input {
    planner_source source;
    char path[512];   // the file read (GGUF or config.json)
    char arch[64];    // "llama", "qwen3", ... (GGUF) or "Qwen3ForCausalLM" (HF)
    model_hparams hp; // n_layer, n_head_kv, head dims, dim, ffn, n_vocab, n_ctx_train...
    planner_weights weights;
    uint64_t n_files;           // weight files (1 for GGUF; safetensors shards)
    uint64_t n_merges;          // BPE merges of the tokenizer (GGUF; 0 when unknown)
    uint64_t act_row_bytes;     // widest converted activation row (model_act_row_bytes; 0:
                                // unknown, the F32 worst case)
    uint64_t moe_act_row_bytes; // the same over the experts (model_moe_act_row_bytes)
    kv_windows windows;         // the sliding-window layers, as model_kv_config marks them (GGUF;
                                // none for Hugging Face configs, which garlic runs without)
    char assumption[512];       // how the weights were derived when not read from files ("")
    // Where the weights lie, for splitting them (models garlic loads: planner_from_model):
    uint32_t tp_rank, tp_size; // the tensor-parallel share the weights are (1: the whole model)
    bool layers_known;         // the fields below are filled (n_layer <= PLANNER_MAX_LAYERS)
    uint64_t layer_bytes[PLANNER_MAX_LAYERS]; // (hp.n_layer) tensor bytes of "blk.N." in
                                              // the share
    uint64_t first_bytes; // the token embedding (and an encoder's other input tensors)
    uint64_t last_bytes;  // output_norm and output: the last pipeline stage's
    uint64_t every_bytes; // tensors outside the layers every stage needs (RoPE factors)
} planner_input;

// Reads a GGUF model as the server would load it (model_load: the architecture must be
// known and every tensor in place). Weights are the whole file, since the server maps it
// all: tensor bytes by type plus header, metadata and padding as mapping_bytes.
int planner_from_gguf(const char *path, planner_input *in, garlic_error *err);

// Reads a Hugging Face model: path is a config.json or the folder holding it. When
// *.safetensors files sit next to it (listed by model.safetensors.index.json, or all
// *.safetensors of the folder otherwise), the weights come from their headers; otherwise
// they are derived from the architecture, torch_dtype and quantization_config (the
// assumption made is written to in->assumption). Errors name the file and the field.
int planner_from_hf(const char *path, planner_input *in, garlic_error *err);

struct hf_config;
struct hf_tensor;

// The config.json part of planner_from_hf, on a config already parsed (hf_config_parse):
// the hyper-parameters and the weights derived from them. name is used in messages.
int planner_from_hf_config(const struct hf_config *cfg, const char *name, planner_input *in,
                           garlic_error *err);

// A model file or folder as model_load_with (quantize, meta_only) reads it: the weights are
// exactly what a load maps and makes (a folder's repacked or quantized tensors included).
int planner_from_model_path(const char *path, const char *quantize, planner_input *in,
                            garlic_error *err);

// planner_from_model_path for tensor-parallel rank tp_rank of tp_size: the model's shapes
// cut as model_shard cuts them (model_shard_shape: nothing is read or copied), so hp has the
// share's heads, KV heads and FFN width and the weights are the rank's share: the file's
// tensors less what the other ranks hold (model.tp_cuts). GARLIC_EUNSUPPORTED (naming what
// does not divide) when the model does not split so.
int planner_from_model_share(const char *path, const char *quantize, uint32_t tp_rank,
                             uint32_t tp_size, planner_input *in, garlic_error *err);

// Either of the above: a path ending in ".gguf" (or a file starting with "GGUF") is GGUF.
int planner_from_path(const char *path, planner_input *in, garlic_error *err);

// Adds one tensor of a safetensors header to the planner_weights at weights (an hf_tensor_fn,
// for hf_safetensors_parse and hf_safetensors_read). Bytes besides the tensors are the
// caller's to add to mapping_bytes.
int planner_weights_add_hf_tensor(void *weights, const struct hf_tensor *t, garlic_error *err);

// How the plan is made. planner_config_default fills the server's defaults.
typedef struct planner_config {
    uint32_t ctx;       // positions per sequence; 0: planner_default_ctx (as the server)
    uint32_t parallel;  // sequences at full context the KV pool holds, >= 1
                        // (PLANNER_DEFAULT_PARALLEL, as `garlic serve` by default)
    uint32_t kv_tokens; // positions of the pool instead (`--kv-tokens`); 0: parallel x ctx.
                        // Never less than one full context.
    uint32_t running;   // sequences run at once (`serve --parallel`): the logit rows of a
                        // step; 0: planner_default_running(pool positions)
    kv_type kv_type;
    uint32_t block_tokens; // PLANNER_BLOCK_TOKENS
    uint32_t max_batch;    // tokens per forward call (scratch), PLANNER_DEFAULT_MAX_BATCH
    uint32_t logit_rows;   // logit rows per call; 0: running (the server's rule)
    int n_threads;         // compute threads (attention rows); physical cores by default
    uint64_t overhead;     // the process and tokenizer overhead; 0: planner_overhead(input)
    uint64_t budget;       // bytes available; 0: no budget (max_parallel, max_ctx stay 0)
} planner_config;

void planner_config_default(planner_config *cfg);

// The plan: every pool the server allocates for cfg, and what fits the budget. A server
// creates its pool with planner_kv_config(), n_blocks = kv_blocks (or budget_blocks to fill
// a budget) and n_window_blocks = kv_window_blocks, and its run state with
// model_state_config {ctx, max_batch, logit_rows, n_threads}: then kv_cache_bytes() and
// model_state_bytes() equal kv_bytes and scratch_bytes (tests/planner checks it).
typedef struct planner_plan {
    planner_config cfg;                 // as used (ctx resolved, defaults filled)
    uint64_t weight_bytes;              // tensor_bytes + mapping_bytes
    uint64_t kv_bytes_per_token;        // n_layer x (K row + V row) at cfg.kv_type: a position of
                                        // every layer, the sum of the two below
    uint64_t kv_full_bytes_per_token;   // the full-attention layers' rows of a position
    uint64_t kv_window_bytes_per_token; // the sliding-window layers' (0 without)
    uint32_t n_window_layers;           // layers with a window, and the window
    uint32_t window;
    uint32_t kv_blocks;        // full blocks: parallel x ceil(ctx / block_tokens)
    uint32_t kv_window_blocks; // window blocks: kv_window_blocks_for running sequences and
                               // steps of max_batch, at most kv_blocks (0 without windows)
    uint64_t kv_data_bytes;    // kv_blocks x block_tokens x kv_full_bytes_per_token +
                               // kv_window_blocks x block_tokens x kv_window_bytes_per_token
    uint64_t kv_bytes;         // kv_cache_bytes_for(kv_blocks): data + token ids, block
                               // metadata, prefix map, window links and the struct
    uint64_t kv_bytes_per_seq; // kv_bytes_for one sequence at ctx (blocks of ctx, window
                               // blocks for one sequence)
    uint64_t scratch_bytes;    // model_scratch_bytes for max_batch, logit_rows, ctx, n_threads
    uint64_t overhead_bytes;   // cfg.overhead
    uint64_t static_bytes;     // weights + scratch + overhead: what is spent before the KV pool
    uint64_t total_bytes;      // static_bytes + kv_bytes
    // With a budget (cfg.budget > 0):
    bool fits;              // total_bytes <= budget
    uint32_t max_parallel;  // largest parallel at ctx whose total fits (0: none)
    uint32_t max_ctx;       // largest ctx at parallel whose total fits (0: none)
    uint32_t budget_blocks; // KV blocks the budget leaves room for after static_bytes
} planner_plan;

// Plans in for cfg. GARLIC_EINVAL (naming the value) for impossible settings: parallel 0, a
// context past PLANNER_MAX_CTX, sizes that overflow; GARLIC_EUNSUPPORTED for a KV type the
// model's head dimensions do not allow (Q8_0 needs multiples of 32).
int planner_plan_make(const planner_input *in, const planner_config *cfg, planner_plan *plan,
                      garlic_error *err);

// The KV pool configuration for a model (its hyper-parameters and window layers: what the
// server passes to kv_cache_new), n_blocks 0, no budget, window blocks 0 (as many as full).
kv_cache_config planner_kv_config(const planner_input *in, kv_type type, uint32_t block_tokens);

// The server's default context: the trained one, at most PLANNER_DEFAULT_CTX (4096 when the
// model does not say).
uint32_t planner_default_ctx(uint32_t trained);

// The overhead the plan counts for in: PLANNER_PROCESS_OVERHEAD plus the tokenizer's tables
// (merges taken equal to the vocabulary when unknown and the model is not SentencePiece-like).
uint64_t planner_overhead(const planner_input *in);

// How many sequences the server runs at once for a pool of `positions` when --parallel is not
// given: one per 256 positions, between 1 and 64.
uint32_t planner_default_running(uint64_t positions);

// The planner's input for a model already loaded (what planner_from_gguf reads), path for
// messages.
int planner_from_model(const struct model *m, const char *path, planner_input *in,
                       garlic_error *err);

// The sizing note's rule: full-context sequences that fit, floor((budget - static) / per_seq);
// 0 when static exceeds the budget or per_seq is 0.
uint64_t planner_sequences_for_budget(uint64_t budget, uint64_t static_bytes, uint64_t per_seq);

// Parses a size: a number (decimals allowed) with an optional suffix: B, K/KB (10^3),
// M/MB (10^6), G/GB (10^9), T/TB (10^12), KiB/MiB/GiB/TiB (2^10...), case-insensitive;
// "28.8GB" is 28,800,000,000 bytes. False on anything else or past 2^64 - 1.
bool planner_parse_size(const char *text, uint64_t *bytes);

const char *planner_source_name(planner_source source);

// ---- Layouts: tensor parallelism (T ranks share each layer) x pipeline parallelism (P
// stages of contiguous layers), as --tensor-parallel and --pipeline-parallel run them.

// One rank of a layout: its place, its layers and its plan.
typedef struct planner_rank {
    uint32_t tp_rank;     // < T
    uint32_t stage;       // < P
    uint32_t first_layer; // its layers: [first_layer, first_layer + n_layers)
    uint32_t n_layers;
    planner_plan plan; // weights (its share of its layers' tensors, the embedding on the first
                       // stage, the output on the last, the file's header), the KV pool of its
                       // KV heads in its layers, the compute buffers, the overhead
} planner_rank;

// Splits the layers of in (layers_known) into p contiguous stages balanced by bytes: each
// layer's weights and KV data for the pool of plan (the whole model's or the share's), the
// embedding counted on the first stage and the output on the last; the split makes the
// largest stage as small as it can be. first[s] and count[s] (p entries each) receive the
// stages. GARLIC_EINVAL when p is 0, above n_layer or PLANNER_MAX_STAGES, or the layers are
// not known.
int planner_stages_make(const planner_input *in, const planner_plan *plan, uint32_t p,
                        uint32_t *first, uint32_t *count, garlic_error *err);

// The plan of the stage holding layers [first, first + count) of share (a tensor-parallel
// share, or the whole model) among p stages: planner_plan_make over those layers alone
// (their weights, their KV rows, sliding windows where they had them) plus the embedding when
// first is 0 and the output when the stage ends at the last layer. The compute buffers are a
// whole model's (every stage sizes them alike). cfg's budget is applied to this rank.
int planner_stage_plan(const planner_input *share, uint32_t first, uint32_t count,
                       const planner_config *cfg, planner_plan *plan, garlic_error *err);

// The ranks of layout T x P of the model at path (planner_from_model_share for each tensor
// rank): ranks[tp_rank + T * stage] for T * P ranks (the caller's array). Errors as
// planner_from_model_share's and planner_stages_make's.
int planner_layout_make(const char *path, const char *quantize, uint32_t t, uint32_t p,
                        const planner_config *cfg, planner_rank *ranks, garlic_error *err);

// The smallest layout of the model at path whose every rank fits cfg->budget (bytes per
// rank; one rank per node): the fewest ranks T x P up to max_ranks, and among as many the
// largest T (the one garlic runs). T ranges over what model_shard accepts, P up to the
// layers. *t and *p receive it; GARLIC_ENOTFOUND when none fits (with the message), other
// errors as planner_layout_make's.
int planner_layout_smallest(const char *path, const char *quantize, const planner_config *cfg,
                            uint32_t max_ranks, uint32_t *t, uint32_t *p, garlic_error *err);

// ---- a GPU: the first layers on the device (--device cuda --gpu-layers) ----

// What a device holds of a plan when its first `layers` layers run there (layers = n_layer:
// the output too): weights of those layers, their KV rows in the plan's pool, the activation
// buffers (the host's scratch, an upper bound of the device's) and the context's and
// libraries' bytes; and what the host keeps of the weights.
typedef struct planner_device_plan {
    uint32_t layers;
    bool output;                // the output norm and matrix (and the logits) on the device
    uint64_t weight_bytes;      // the layers' weights (and the output's)
    uint64_t kv_bytes;          // their KV rows (data only: the bookkeeping stays on the host)
    uint64_t scratch_bytes;     // activation buffers
    uint64_t overhead_bytes;    // context, stream and library workspaces (measured, or given)
    uint64_t total_bytes;       // the sum
    uint64_t host_weight_bytes; // the weights the host makes resident (the rest of the file)
    uint64_t memory;            // the device memory planned against (0: not known)
    bool fits;                  // total_bytes <= memory (true when memory is 0)
} planner_device_plan;

// The device plan of in (layers_known) under plan: `layers` layers, or with layers < 0 as many
// as fit memory after overhead and 256 MiB for the driver (the first layers whose weights and
// KV rows fit; all of them only with the output too); at most
// max_layers (the leading layers the device can run; UINT32_MAX: all). GARLIC_EINVAL when the
// layers are not known.
int planner_device_plan_make(const planner_input *in, const planner_plan *plan, int64_t layers,
                             uint32_t max_layers, uint64_t memory, uint64_t overhead,
                             planner_device_plan *out, garlic_error *err);

#endif
