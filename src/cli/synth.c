// SPDX-License-Identifier: MIT
// `garlic synth OUT.gguf [options]` (a developer command): writes a random-weight model with
// the synthesizer in model/synth.c, for tests and benchmarks, showing the percentage written
// on stderr for large files on a terminal (or always with --progress).
#include <float.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "model/model.h"
#include "model/synth.h"
#include "tensor/types.h"

static const cli_command synth_command = {
    .name = "synth",
    .usage = "OUT.gguf [options]",
    .about = "Writes a random-weight model, deterministic from --seed, for tests and "
             "benchmarks. The defaults\nare shape A of the shared test models: llama, dim 256, "
             "2 layers, 8 heads, 2 KV heads, FFN 768,\ncontext 512, vocabulary 512, F32.",
    .notes =
        "tinyllama: dim 2048, 22 layers, 32 heads, 4 KV heads, FFN 5632, context 2048, "
        "vocabulary 32000.\nT is a weight type garlic quantizes to (F32, F16, BF16, Q8_0, Q4_0, "
        "Q4_1, Q5_0, Q5_1, Q2_K,\nQ3_K, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS, MXFP4); --type also "
        "takes the mixtures Q4_K_M and Q5_K_M.\nOn a terminal, files over 256 MiB show the "
        "percentage written without --progress.",
};

static int parse_preset(void *dst, const char *opt, const char *val)
{
    model_synth_params *p = dst;
    if (strcmp(val, "tinyllama") != 0) {
        fprintf(stderr, "garlic synth: %s: unknown preset '%s' (tinyllama)\n", opt, val);
        return -1;
    }
    p->dim = 2048, p->n_layer = 22, p->n_head = 32, p->n_head_kv = 4, p->ffn = 5632;
    p->context = 2048, p->vocab = 32000, p->name = "TinyLlama-1.1B-shaped (synthetic)";
    return 0;
}

// A weight type by name; garlic's own in-memory types (F8_E4M3, Q4_Z) are refused by name:
// synth writes GGUF files, which cannot carry them.
static int parse_type(const char *opt, const char *text, uint32_t *out)
{
    tensor_type t;
    if (!tensor_type_from_name(text, &t)) {
        fprintf(stderr, "garlic synth: %s: unknown weight type '%s'\n", opt, text);
        return -1;
    }
    if (tensor_type_get(t)->internal) {
        fprintf(stderr,
                "garlic synth: %s: %s is garlic's own in-memory type (for Hugging Face "
                "weights), not a GGUF type\n",
                opt, tensor_type_get(t)->name);
        return -1;
    }
    *out = (uint32_t)t;
    return 0;
}

// --type: a weight type, or llama-quantize's mixtures: Q6_K for output.weight and for
// attn_v and ffn_down in the layers it gives more bits (synth.h), the base type elsewhere.
static int parse_weight_type(void *dst, const char *opt, const char *val)
{
    model_synth_params *p = dst;
    if (strcmp(val, "Q4_K_M") == 0 || strcmp(val, "Q5_K_M") == 0) {
        p->type = val[1] == '4' ? TENSOR_TYPE_Q4_K : TENSOR_TYPE_Q5_K;
        p->output_type = p->more_bits_type = TENSOR_TYPE_Q6_K;
        return 0;
    }
    return parse_type(opt, val, &p->type);
}

static int parse_output_type(void *dst, const char *opt, const char *val)
{
    model_synth_params *p = dst;
    uint32_t t;
    if (parse_type(opt, val, &t))
        return -1;
    p->output_type = (int32_t)t;
    return 0;
}

// --router: the experts' gating function, as DeepSeek's expert_gating_func numbers it.
static int parse_router(void *dst, const char *opt, const char *val)
{
    model_synth_params *p = dst;
    if (strcmp(val, "softmax") == 0 || strcmp(val, "sigmoid") == 0) {
        p->gating_func = val[1] == 'o' ? 1 : 2;
        return 0;
    }
    fprintf(stderr, "garlic synth: %s: unknown router '%s' (softmax, sigmoid)\n", opt, val);
    return -1;
}

static int parse_pooling(void *dst, const char *opt, const char *val)
{
    model_synth_params *p = dst;
    for (int i = MODEL_POOLING_NONE; i <= MODEL_POOLING_LAST; i++)
        if (strcmp(val, model_pooling_name((model_pooling)i)) == 0) {
            p->pooling = i;
            return 0;
        }
    fprintf(stderr, "garlic synth: %s: unknown pooling '%s' (none, mean, cls, last)\n", opt, val);
    return -1;
}

static int parse_expert_type(void *dst, const char *opt, const char *val)
{
    model_synth_params *p = dst;
    uint32_t t;
    if (parse_type(opt, val, &t))
        return -1;
    p->expert_type = (int32_t)t;
    return 0;
}

// How the progress is shown: on a terminal, one line rewritten in place for files over
// PROGRESS_MIN_BYTES; with --progress, also every 10 % as lines (for logs).
enum { PROGRESS_MIN_BYTES = 256 << 20 };

typedef struct progress {
    const char *path;
    bool forced;   // --progress
    bool terminal; // stderr is a terminal
    int shown;     // the last percentage printed (-1: none)
} progress;

static void show_progress(void *user, uint64_t done, uint64_t total)
{
    progress *pr = user;
    if (!total || (!pr->forced && !(pr->terminal && total > PROGRESS_MIN_BYTES)))
        return;
    int percent = (int)(done * 100 / total);
    if (percent == pr->shown || (!pr->terminal && percent / 10 == pr->shown / 10))
        return;
    pr->shown = percent;
    if (pr->terminal)
        fprintf(stderr, "\rgarlic synth: writing %s %3d%%%s", pr->path, percent,
                percent == 100 ? "\n" : "");
    else
        fprintf(stderr, "garlic synth: writing %s %3d%%\n", pr->path, percent);
}

// --rope-scaling S --rope-factor X (the spelling of the deepseek2 reference rows) as
// --rope-linear X or --rope-yarn X; a usage error when incomplete or given with either.
static int rope_scaling_option(model_synth_params *p, const char *scaling, float factor)
{
    if (!scaling && !(factor > 0))
        return CLI_CONTINUE;
    if (!scaling || !(factor > 0))
        return cli_usage_error(&synth_command, "--rope-scaling and --rope-factor go together");
    bool yarn = strcmp(scaling, "yarn") == 0;
    if (!yarn && strcmp(scaling, "linear") != 0)
        return cli_usage_error(&synth_command, "--rope-scaling %s: linear or yarn", scaling);
    if (p->rope_linear > 0 || p->rope_yarn > 0)
        return cli_usage_error(&synth_command,
                               "--rope-scaling is --rope-linear or --rope-yarn: give one");
    *(yarn ? &p->rope_yarn : &p->rope_linear) = factor;
    return CLI_CONTINUE;
}

int cli_synth(int argc, char **argv)
{
    model_synth_params p;
    model_synth_params_default(&p);
    bool progress_flag = false;
    const char *rope_scaling = NULL;
    float rope_factor = 0;
    const char *out = NULL;
    const cli_option options[] = {
        cli_arg("OUT.gguf", "the file to write", &out),
        cli_custom("--preset", "NAME", "tinyllama: the TinyLlama-1.1B shape (see below)", &p,
                   parse_preset),
        cli_string("--arch", "ARCH",
                   "llama, qwen2 (q/k/v biases), qwen3 (q/k norms), qwen3moe, qwen2moe "
                   "(experts; llama with --experts is Mixtral), gemma3, phi3, gpt-oss (experts), "
                   "deepseek2 (latent attention, experts), bert, nomic-bert (encoders: "
                   "embeddings only, a built-in WordPiece vocabulary)",
                   &p.arch),
        cli_uint("--dim", "N", "embedding length", &p.dim, 1, UINT32_MAX),
        cli_uint("--layers", "N", "layers", &p.n_layer, 1, UINT32_MAX),
        cli_uint("--heads", "N", "attention heads", &p.n_head, 1, UINT32_MAX),
        cli_uint("--kv-heads", "N", "KV heads", &p.n_head_kv, 1, UINT32_MAX),
        cli_uint("--head-dim", "N", "head dimension (default: dim / heads)", &p.head_dim, 1,
                 UINT32_MAX),
        cli_uint("--ffn", "N", "feed-forward width", &p.ffn, 1, UINT32_MAX),
        cli_uint("--ctx", "N", "trained context length", &p.context, 1, UINT32_MAX),
        cli_uint("--vocab", "N", "vocabulary size of the built-in vocabulary", &p.vocab, 1,
                 UINT32_MAX),
        cli_custom("--type", "T", "type of the matrices", &p, parse_weight_type),
        cli_custom("--output-type", "T", "type of output.weight", &p, parse_output_type),
        cli_flag("--tied", "no output.weight (the embedding is reused)", &p.tied),
        cli_uint("--experts", "N", "experts per layer (default: a dense FFN)", &p.n_expert, 1,
                 UINT32_MAX),
        cli_uint("--experts-used", "N", "experts each token runs", &p.n_expert_used, 1, UINT32_MAX),
        cli_uint("--expert-ffn", "N", "an expert's width (default: --ffn)", &p.ffn_exp, 1,
                 UINT32_MAX),
        cli_uint("--shared-ffn", "N", "a shared expert of this width beside the experts",
                 &p.ffn_shexp, 1, UINT32_MAX),
        cli_custom("--expert-type", "T", "type of the experts' matrices", &p, parse_expert_type),
        cli_uint("--shared-experts", "N", "a shared expert N experts wide (expert_shared_count)",
                 &p.n_shared_experts, 1, 64),
        cli_uint("--dense-layers", "N", "the first N layers have a dense FFN", &p.n_dense_lead, 1,
                 UINT32_MAX),
        cli_uint("--expert-groups", "N", "experts chosen within the best groups of N",
                 &p.n_expert_groups, 1, 64),
        cli_uint("--groups-used", "N", "groups a token's experts come from", &p.n_group_used, 1,
                 64),
        cli_custom("--router", "R", "softmax or sigmoid (expert_gating_func)", &p, parse_router),
        cli_flag("--expert-bias", "exp_probs_b: a bias steering the choice of experts",
                 &p.expert_bias),
        cli_flag("--expert-norm", "the chosen experts' weights sum to 1", &p.expert_norm),
        cli_float("--expert-scale", "X", "the experts' weights times X", &p.expert_scale, FLT_MIN,
                  FLT_MAX),
        cli_uint("--q-lora-rank", "N", "deepseek2: the queries' low rank (default: attn_q)",
                 &p.q_lora_rank, 1, UINT32_MAX),
        cli_uint("--kv-lora-rank", "N", "deepseek2: the cached latent's width", &p.kv_lora_rank, 1,
                 UINT32_MAX),
        cli_uint("--v-head-dim", "N", "deepseek2: a head's value (default: head dim - RoPE dims)",
                 &p.v_head_dim, 1, UINT32_MAX),
        cli_custom("--pooling", "P",
                   "pooling_type written: none, mean, cls or last (encoders: default mean; a "
                   "decoder with last is an embedding model like Qwen3-Embedding)",
                   &p, parse_pooling),
        cli_string("--tokenizer", "VOCAB.gguf|FOLDER",
                   "copy the vocabulary (every tokenizer.* key) of a GGUF, or of a folder's "
                   "tokenizer.json",
                   &p.tokenizer_path),
        cli_float("--rope-theta", "X", "RoPE frequency base (default 10000)", &p.rope_theta,
                  FLT_MIN, FLT_MAX),
        cli_float("--rms-eps", "X", "RMS norm epsilon (default 1e-5)", &p.rms_eps, FLT_MIN,
                  FLT_MAX),
        cli_uint("--rope-dims|--rope-dim", "N",
                 "rotated dimensions of a head (default: all; deepseek2: its RoPE part, needed)",
                 &p.rope_dims, 2, UINT32_MAX),
        cli_float("--rope-linear", "X", "linear RoPE scaling by this factor", &p.rope_linear,
                  FLT_MIN, FLT_MAX),
        cli_float("--rope-yarn", "X", "YaRN RoPE scaling by this factor (see --rope-orig-ctx)",
                  &p.rope_yarn, FLT_MIN, FLT_MAX),
        cli_string("--rope-scaling", "S",
                   "linear or yarn, by --rope-factor X: the same as --rope-linear X or "
                   "--rope-yarn X",
                   &rope_scaling),
        cli_float("--rope-factor", "X", "the factor of --rope-scaling", &rope_factor, FLT_MIN,
                  FLT_MAX),
        cli_uint("--rope-orig-ctx", "N",
                 "RoPE's original context (default --ctx): phi3's LongRoPE threshold, YaRN's "
                 "trained context",
                 &p.rope_orig_ctx, 1, UINT32_MAX),
        cli_float("--yarn-log-mul", "X", "YaRN: DeepSeek's 0.1 x mscale_all_dim", &p.yarn_log_mul,
                  FLT_MIN, FLT_MAX),
        cli_uint("--sliding-window", "N",
                 "attention window of the sliding layers (gemma3: 5 of every 6; phi3: all; "
                 "gpt-oss: every other, default 128)",
                 &p.sliding_window, 1, UINT32_MAX),
        cli_float("--rope-theta-swa", "X",
                  "gemma3: RoPE base of the sliding layers (default 10000)", &p.rope_theta_swa,
                  FLT_MIN, FLT_MAX),
        cli_float("--final-softcap", "X", "gemma3: final logit soft-capping", &p.final_softcap,
                  FLT_MIN, FLT_MAX),
        cli_flag("--longrope",
                 "phi3: LongRoPE factors (long ones for a context beyond --rope-orig-ctx)",
                 &p.longrope),
        cli_u64("--seed", "N", "the same seed writes the same bytes (default 1)", &p.seed),
        cli_string("--name", "TEXT", "general.name", &p.name),
        cli_flag("--progress", "show the percentage written on stderr", &progress_flag),
        {0},
    };
    int status = cli_parse(&synth_command, options, argc, argv);
    if (status != CLI_CONTINUE)
        return status;
    int rc = rope_scaling_option(&p, rope_scaling, rope_factor);
    if (rc != CLI_CONTINUE)
        return rc;
    progress pr = {
        .path = out, .forced = progress_flag, .terminal = isatty(STDERR_FILENO), .shown = -1};
    p.progress = show_progress, p.progress_user = &pr;
    garlic_error err = {0};
    if (model_synth_write(&p, out, &err) != GARLIC_OK) {
        fprintf(stderr, "garlic synth: %s: %s\n", out, err.message);
        return 1;
    }
    return 0;
}
