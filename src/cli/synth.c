// SPDX-License-Identifier: MIT
// `garlic synth OUT.gguf [options]` (hidden developer command): writes a random-weight
// model with the synthesizer in model/synth.c, for tests and benchmarks.
#include <float.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "model/synth.h"
#include "tensor/types.h"

static int usage(void)
{
    fprintf(stderr,
            "usage: garlic synth OUT.gguf [--preset tinyllama] [--arch llama|qwen2|qwen3]\n"
            "         [--dim N] [--layers N] [--heads N] [--kv-heads N] [--head-dim N] [--ffn N]\n"
            "         [--ctx N] [--vocab N] [--type T|Q4_K_M|Q5_K_M] [--output-type T] [--tied]\n"
            "         [--tokenizer VOCAB.gguf] [--rope-theta X] [--rms-eps X] [--seed N] [--name S]\n");
    return 2;
}

static int parse_type(const char *opt, const char *text, uint32_t *out)
{
    tensor_type t;
    if (!tensor_type_from_name(text, &t)) {
        fprintf(stderr, "garlic synth: %s: unknown weight type '%s'\n", opt, text);
        return -1;
    }
    *out = (uint32_t)t;
    return 0;
}

static void preset_tinyllama(synth_params *p)
{
    p->dim = 2048, p->n_layer = 22, p->n_head = 32, p->n_head_kv = 4, p->ffn = 5632;
    p->context = 2048, p->vocab = 32000, p->name = "TinyLlama-1.1B-shaped (synthetic)";
}

static int parse_option(synth_params *p, const char *opt, const char *val)
{
    uint32_t u;
    if (strcmp(opt, "--preset") == 0) {
        if (strcmp(val, "tinyllama") != 0)
            return fprintf(stderr, "garlic synth: unknown preset '%s'\n", val), -1;
        preset_tinyllama(p);
        return 0;
    }
    if (strcmp(opt, "--arch") == 0)
        return p->arch = val, 0;
    if (strcmp(opt, "--tokenizer") == 0)
        return p->tokenizer_path = val, 0;
    if (strcmp(opt, "--name") == 0)
        return p->name = val, 0;
    if (strcmp(opt, "--type") == 0 && (strcmp(val, "Q4_K_M") == 0 || strcmp(val, "Q5_K_M") == 0)) {
        // llama-quantize's mixtures: Q6_K for output.weight and for attn_v and ffn_down in
        // the layers it gives more bits (synth.h), the base type elsewhere.
        p->type = val[1] == '4' ? TENSOR_TYPE_Q4_K : TENSOR_TYPE_Q5_K;
        p->output_type = p->more_bits_type = TENSOR_TYPE_Q6_K;
        return 0;
    }
    if (strcmp(opt, "--type") == 0)
        return parse_type(opt, val, &p->type);
    if (strcmp(opt, "--output-type") == 0)
        return parse_type(opt, val, &u) ? -1 : (p->output_type = (int32_t)u, 0);
    if (strcmp(opt, "--rope-theta") == 0)
        return cli_parse_float(opt, val, FLT_MIN, FLT_MAX, &p->rope_theta);
    if (strcmp(opt, "--rms-eps") == 0)
        return cli_parse_float(opt, val, FLT_MIN, FLT_MAX, &p->rms_eps);
    struct { const char *name; uint32_t *field; } ints[] = {
        {"--dim", &p->dim}, {"--layers", &p->n_layer}, {"--heads", &p->n_head},
        {"--kv-heads", &p->n_head_kv}, {"--head-dim", &p->head_dim}, {"--ffn", &p->ffn},
        {"--ctx", &p->context}, {"--vocab", &p->vocab},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        if (strcmp(opt, ints[i].name) == 0)
            return cli_parse_uint(opt, val, 1, UINT32_MAX, ints[i].field);
    if (strcmp(opt, "--seed") == 0) {
        char *end;
        p->seed = strtoull(val, &end, 10);
        return *end || end == val ? (fprintf(stderr, "garlic synth: bad --seed '%s'\n", val), -1) : 0;
    }
    fprintf(stderr, "garlic synth: unknown option '%s'\n", opt);
    return -1;
}

int cli_synth(int argc, char **argv)
{
    synth_params p;
    synth_params_default(&p);
    const char *out = NULL;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--tied") == 0) {
            p.tied = true;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            if (i + 1 >= argc)
                return fprintf(stderr, "garlic synth: %s needs a value\n", argv[i]), usage();
            if (parse_option(&p, argv[i], argv[i + 1]))
                return 2;
            i++;
        } else if (!out) {
            out = argv[i];
        } else {
            return usage();
        }
    }
    if (!out)
        return usage();
    garlic_error err = {0};
    if (synth_write(&p, out, &err) != GARLIC_OK) {
        fprintf(stderr, "garlic synth: %s: %s\n", out, err.message);
        return 1;
    }
    return 0;
}
