// SPDX-License-Identifier: MIT
// `garlic convert FOLDER OUT.gguf [--type T]`: writes a Hugging Face folder as the GGUF file
// llama.cpp's converter would (metadata, vocabulary, merges, chat template, tensors in GGUF
// names and layouts), streaming tensor by tensor: each tensor is made from the mapped shards,
// written, and its pages dropped, so the model is never held twice. The file is written under
// a temporary name and renamed when whole.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/clock.h"
#include "cli/cli.h"
#include "hf/hf.h"
#include "model/quantize.h"
#include "tensor/types.h"

static const cli_command convert_command = {
    .name = "convert",
    .usage = "FOLDER OUT.gguf [options]",
    .about = "Writes a Hugging Face model folder (config.json, *.safetensors, tokenizer files) as "
             "a GGUF file that\ngarlic and llama.cpp load. Tensors are made one at a time from "
             "the mapped shards.",
    .notes = "--type: F32, F16, BF16 and the quantized types and mixtures of garlic quantize "
             "(Q8_0, Q4_K_M,\nQ6_K...). By default 16- and 32-bit weights keep their type, "
             "MXFP4 experts stay MXFP4, and\nFP8, AWQ and GPTQ weights (which no GGUF type "
             "holds exactly) become Q8_0.",
};

typedef struct convert_ctx {
    model_quant_mix mix;
    bool has_mix;
    model_quant_model model;
    hf_model *h;
    size_t done, total;
    bool terminal;
} convert_ctx;

// The type of each matrix: the mixture's choice, or the encoding's own (GGUF types only).
static uint32_t retype(void *user, const char *name, uint32_t n_dims, const uint64_t *ne,
                       uint32_t type)
{
    convert_ctx *c = user;
    uint32_t keep = type < TENSOR_TYPE_GGUF_COUNT ? type : TENSOR_TYPE_Q8_0;
    if (!c->has_mix)
        return keep;
    return model_quant_mix_type(&c->mix, &c->model, name, ne, n_dims, keep).type;
}

static int fill(void *user, size_t index, void *dst, uint64_t nbytes, garlic_error *err)
{
    convert_ctx *c = user;
    int rc = hf_model_fill(c->h, index, dst, nbytes, err);
    c->done++;
    if (c->terminal && rc == GARLIC_OK)
        fprintf(stderr, "\rgarlic convert: %zu/%zu tensors", c->done, c->total);
    return rc;
}

static uint64_t file_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (uint64_t)sb.st_size : 0;
}

int cli_convert(int argc, char **argv)
{
    const char *folder = NULL, *out = NULL, *type = NULL;
    const cli_option options[] = {
        cli_arg("FOLDER", "the Hugging Face model folder (or its config.json)", &folder),
        cli_arg("OUT.gguf", "the file to write", &out),
        cli_string("--type", "T", "weight type or mixture of the matrices (default: see below)",
                   &type),
        {0},
    };
    int status = cli_parse(&convert_command, options, argc, argv);
    if (status != CLI_CONTINUE)
        return status;
    convert_ctx c = {.terminal = isatty(2)};
    garlic_error err = {0};
    if (type && model_quant_mix_parse(type, &c.mix, &err)) {
        fprintf(stderr, "garlic convert: --type: %s\n", err.message);
        return 2;
    }
    c.has_mix = type != NULL;
    // Shapes first (no tensor made), for the mixture's layer and expert counts.
    gguf_file *meta = hf_open(folder, &(hf_open_options){.meta_only = true}, &err);
    if (!meta) {
        fprintf(stderr, "garlic convert: %s\n", err.message);
        return 1;
    }
    int rc = model_quant_model_read(meta, &c.model, &err);
    gguf_close(meta);
    if (rc) {
        fprintf(stderr, "garlic convert: %s\n", err.message);
        return 1;
    }

    double t0 = garlic_now();
    c.h = hf_model_open(folder, &(hf_open_options){.retype = retype, .retype_ctx = &c}, &err);
    if (!c.h) {
        fprintf(stderr, "garlic convert: %s\n", err.message);
        return 1;
    }
    gguf_writer *w = hf_model_writer(c.h);
    rc = gguf_writer_set_u32(w, "general.quantization_version", 2) ||
            (c.has_mix && gguf_writer_set_u32(w, "general.file_type", c.mix.file_type))
        ? garlic_error_set(&err, GARLIC_ENOMEM, "out of memory")
        : GARLIC_OK;
    // Every tensor through fill: made or copied, then its source pages dropped.
    c.total = gguf_writer_n_tensors(w);
    for (size_t i = 0; i < c.total; i++)
        gguf_writer_set_data(w, i, NULL);
    char tmp[4096];
    if (!rc && snprintf(tmp, sizeof tmp, "%s.part", out) >= (int)sizeof tmp)
        rc = garlic_error_set(&err, GARLIC_EINVAL, "%s: path too long", out);
    if (!rc)
        rc = gguf_writer_write(w, tmp, fill, &c, &err);
    if (c.terminal)
        fprintf(stderr, "\n");
    if (!rc && rename(tmp, out) != 0)
        rc = garlic_error_set(&err, GARLIC_EIO, "%s: cannot rename %s", out, tmp);
    hf_model_free(c.h);
    if (rc) {
        unlink(tmp);
        fprintf(stderr, "garlic convert: %s\n", err.message);
        return 1;
    }
    printf("wrote %s: %zu tensors, %s, in %.1f s\n", out, c.total,
           cli_format_bytes((double)file_size(out)), garlic_now() - t0);
    return 0;
}
