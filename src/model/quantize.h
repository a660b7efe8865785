// SPDX-License-Identifier: MIT
// Quantization mixtures by the names people know them by ("Q4_K_M", "Q8_0", "IQ4_XS") and the
// type each one gives every tensor of a model, chosen as llama.cpp's llama-quantize chooses it
// (which tensors stay as they are, output.weight and token_embd, the layers whose attn_v and
// ffn_down get more bits, experts, rows that do not fit the type's block); the conversion of a
// tensor's rows between any two types, in parallel over rows; and the requantization of a
// whole GGUF file tensor by tensor (`garlic quantize`). `garlic convert` uses the same choice
// for the tensors of a Hugging Face folder.
#ifndef GARLIC_MODEL_QUANTIZE_H
#define GARLIC_MODEL_QUANTIZE_H

#include <stdbool.h>
#include <stdint.h>

#include "base/error.h"
#include "base/threadpool.h"
#include "gguf/gguf.h"
#include "tensor/types.h"

// A mixture: its name, the number llama.cpp writes in general.file_type (its LLAMA_FTYPE)
// and its base type, the one most matrices get.
typedef struct model_quant_mix {
    const char *name;   // "Q4_K_M" (static)
    uint32_t file_type; // general.file_type (15 for Q4_K_M)
    uint32_t type;      // tensor_type of most matrices (Q4_K)
} model_quant_mix;

// Finds the mixture called name (case-insensitive; "Q4_K" is Q4_K_M, "Q3_K" Q3_K_M, "Q5_K"
// Q5_K_M and "MXFP4" MXFP4_MOE, as llama-quantize reads them). GARLIC_ENOTFOUND with a message
// listing the names when there is none; GARLIC_EUNSUPPORTED, saying why, for llama.cpp's
// mixtures whose types garlic cannot write (IQ1/IQ2/IQ3, TQ) or that need an importance
// matrix (Q2_K_S).
int model_quant_mix_parse(const char *name, model_quant_mix *out, garlic_error *err);

// The name of the mixture whose general.file_type is file_type ("Q4_K_M" for 15), NULL when
// garlic does not know it.
const char *model_quant_mix_name(uint32_t file_type);

// The names model_quant_mix_parse takes, ", "-separated (static), for help and messages.
const char *model_quant_mix_names(void);

// What the choice needs to know about the model as a whole.
typedef struct model_quant_model {
    char arch[64];      // general.architecture: falcon and the 70B shapes have rules of their own
    uint32_t n_layer;   // block_count
    uint32_t n_head;    // attention heads and KV heads (of the first layer): the grouped-query
    uint32_t n_head_kv; // ratio n_head / n_head_kv picks attn_v's type in some mixtures
    uint32_t n_expert;  // expert_count (0: dense); 8 experts have rules of their own (Mixtral)
    bool has_output;    // output.weight exists; without it token_embd is also the output
                        // and is typed as output.weight would be
} model_quant_model;

// Reads the model_quant_model of an open GGUF file (general.architecture, "<arch>.*" counts,
// output.weight); fails with GARLIC_EFORMAT, naming the file and key, when a count has an
// impossible value.
int model_quant_model_read(const gguf_file *f, model_quant_model *out, garlic_error *err);

// The type a mixture gives one tensor.
typedef struct model_quant_choice {
    uint32_t type;  // tensor_type of the tensor in the mixture
    bool quantized; // false: the mixture leaves the tensor alone (1-D tensors, norms, routers,
                    // positional embeddings...) and type is the keep_type passed in
    bool fallback;  // the rows are not a whole number of the chosen type's blocks, so a type
                    // whose blocks fit was taken (Q4_K -> Q5_0, Q6_K -> Q8_0, ... -> F16)
} model_quant_choice;

// The type mix gives the tensor called name (its GGUF name, "blk.3.attn_v.weight"; the layer
// index is read from the "blk.N." prefix) of shape ne[0..n_dims) in model. keep_type is what
// a tensor the mixture does not quantize stays (its current type when requantizing, F32 for
// a 1-D tensor a converter writes as llama.cpp's does). attn_v and ffn_down's "more bits"
// layers are counted by layer index: llama-quantize counts attn_v tensors, which is the same
// when every layer has one (as in every architecture garlic runs).
model_quant_choice model_quant_mix_type(const model_quant_mix *mix, const model_quant_model *model,
                                        const char *name, const uint64_t *ne, uint32_t n_dims,
                                        uint32_t keep_type);

// Converts n_rows rows of n_per_row values from src (of src_type) to dst (of dst_type), in
// parallel over chunks of rows on pool (NULL: on the calling thread): each row is decoded to
// floats and coded again, so any type with a dequantizer goes to any type with a quantizer;
// equal types are copied. name is the tensor's, for messages. Fails, naming it, with
// GARLIC_EUNSUPPORTED when garlic cannot decode src_type or produce dst_type, GARLIC_EINVAL
// when n_per_row is not a whole number of either type's blocks or when a block-quantized
// dst_type would be given a value that is not finite (the first such row is named),
// GARLIC_ENOMEM. dst may be partly written on failure.
int model_quant_convert(thread_pool *pool, const char *name, uint32_t src_type, const void *src,
                        uint32_t dst_type, void *dst, uint64_t n_per_row, uint64_t n_rows,
                        garlic_error *err);

// ---- requantizing a GGUF file ----

typedef struct model_quantize_params {
    const char *in_path;
    const char *out_path;
    const char *temp_path; // written first and renamed to out_path when complete; NULL:
                           // out_path with ".part" appended
    model_quant_mix mix;
    int n_threads;         // compute threads (at least 1)
    bool allow_requantize; // convert block-quantized tensors to a type other than F32 (which
                           // loses precision a second time); refused without it
    // Called before each tensor with its name and the elements done so far and in all, and
    // once at the end with tensor NULL and done == total (NULL: no progress); progress_user
    // is handed back.
    void (*progress)(void *progress_user, const char *tensor, uint64_t done, uint64_t total);
    void *progress_user;
} model_quantize_params;

typedef struct model_quantize_result {
    uint64_t in_bytes, out_bytes; // file sizes
    uint64_t n_elements;          // of all tensors
    uint32_t n_tensors;
    uint32_t n_converted; // tensors whose type changed
    uint32_t n_fallback;  // tensors that took a fallback type (model_quant_choice.fallback)
    uint32_t type_tensors[TENSOR_TYPE_COUNT]; // tensors of each type in the output
    double seconds;                           // wall time of the whole run
} model_quantize_result;

// Writes p->out_path: p->in_path with every tensor of the type p->mix gives it, the metadata
// copied, general.file_type set to the mixture's number and general.quantization_version to 2.
// Streams tensor by tensor from the mapped input (whose pages are released after each tensor),
// so it holds at most one output tensor and one chunk of floats per thread. Writes the
// temporary file and renames it, so an interrupted or failed run never leaves a file at
// out_path that looks whole. Fails, naming the file and the tensor or key, when the input
// cannot be read, is a split file or is out_path itself, when a tensor would be requantized
// without p->allow_requantize (checked before anything is written), when garlic cannot decode
// a tensor it must convert, or when the output cannot be written. result may be NULL.
int model_quantize_file(const model_quantize_params *p, model_quantize_result *result,
                        garlic_error *err);

#endif
