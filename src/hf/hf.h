// SPDX-License-Identifier: MIT
// Hugging Face model folders, read without touching tensor data: config.json (architecture,
// hyper-parameters, dtypes and quantization, every field checked for type and range), the
// weight files of a folder (those model.safetensors.index.json names, or every *.safetensors)
// and each safetensors header (tensors with their dtypes, shapes and data ranges). The
// planner turns what these readers return into a memory plan. Errors name the file and the
// field: "cfg/config.json: num_hidden_layers is missing".
//
// safetensors on-disk layout: u64 little-endian N | N bytes of JSON (UTF-8, may end in
// spaces) | data section. The JSON is an object: "__metadata__" (optional, an object of
// strings) and, per tensor,
//   "name": {"dtype": "BF16", "shape": [rows, cols], "data_offsets": [begin, end]}
// with offsets relative to the data section (byte 8 + N), end - begin = product(shape) x
// the dtype's size, and no two tensors overlapping.
#ifndef GARLIC_HF_H
#define GARLIC_HF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "gguf/gguf.h"
#include "model/model.h"

enum {
    HF_PATH_MAX = 4096, // longest path of a folder or file handled
    HF_MAX_CONFIG_BYTES = 16 << 20,
    HF_MAX_INDEX_BYTES = 64 << 20,      // model.safetensors.index.json
    HF_MAX_SHARDS = 4096,               // weight files of one folder
    HF_MAX_DIMS = 8,                    // dimensions of a safetensors shape
    HF_MAX_CTX = 1 << 24,               // largest max_position_embeddings (the longest run state)
    HF_MAX_ROT = 1024,                  // most rotated dimensions of a head
    HF_MAX_TOKENIZER_BYTES = 512 << 20, // tokenizer.json
    HF_MAX_VOCAB = 1 << 24,             // tokens of one vocabulary
    HF_MAX_VOCAB_HOLES = 1 << 16,       // ids no token names (padding rows of the embedding)
};
// Longest safetensors JSON header accepted (checked before it is read).
#define HF_SAFETENSORS_MAX_HEADER (100ull << 20)

// ---- config.json ----

// An architecture garlic knows, as a row of flags.
typedef struct hf_arch {
    const char *name;       // "architectures"[0]: "Qwen3ForCausalLM"
    const char *model_type; // "model_type", accepted when "architectures" is absent
    bool qkv_bias;          // q, k, v projections always have biases (Qwen2)
    bool qk_norm;           // per-head RMSNorm of q and k, head_dim weights each (Qwen3)
} hf_arch;

// How the decoder's linear layers are stored.
typedef enum hf_quant {
    HF_QUANT_NONE, // in torch_dtype like everything else
    HF_QUANT_FP8,  // quant_method fp8: one byte per weight, F32 scales
    HF_QUANT_INT,  // quant_method gptq or awq: packed integers, F16 scales, packed zeros
    HF_QUANT_COUNT
} hf_quant;

// The storage the config declares (torch_dtype, or dtype, and quantization_config).
typedef struct hf_storage {
    const char *dense;   // safetensors dtype of unquantized tensors ("BF16"; static)
    uint32_t dense_size; // its bytes per value
    hf_quant quant;
    const char *fp8;           // HF_QUANT_FP8: "F8_E4M3" or "F8_E5M2" (static)
    uint32_t block_n, block_k; // HF_QUANT_FP8: scale blocks (rows, columns); 0: per matrix
    uint32_t bits, group;      // HF_QUANT_INT: bits per weight, columns per group (0: a row)
    char qname[16];            // HF_QUANT_INT: "INT4"
} hf_storage;

// What config.json says about a model.
typedef struct hf_config {
    const hf_arch *arch; // a row of the known architectures (static)
    model_hparams hp;    // n_layer, dims, heads, head dims, vocabulary, context, RoPE base...
    hf_storage storage;
    bool tied;      // tie_word_embeddings: the LM head is the embedding
    bool attn_bias; // attention_bias: q, k, v and o projections have biases
} hf_config;

// Parses config.json text (len bytes, no NUL needed); name is used in messages. Supported
// architectures: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM.
// GARLIC_EFORMAT for a missing or ill-typed field, GARLIC_EUNSUPPORTED for an architecture,
// dtype or quantization method garlic does not know.
int hf_config_parse(const char *json, size_t len, const char *name, hf_config *cfg,
                    garlic_error *err);

// Reads and parses the config.json at path (at most HF_MAX_CONFIG_BYTES).
int hf_config_read(const char *path, hf_config *cfg, garlic_error *err);

// ---- folders ----

// Where a model's files are: path is a config.json or the folder holding it.
typedef struct hf_folder {
    char dir[HF_PATH_MAX];    // the folder ("." for a bare file name)
    char config[HF_PATH_MAX]; // its config.json (path itself when a file was given)
} hf_folder;

// Fills out from path. GARLIC_EIO when path does not exist, GARLIC_EINVAL when it is too long.
int hf_folder_find(const char *path, hf_folder *out, garlic_error *err);

// The weight files of a folder, as paths "dir/name".
typedef struct hf_shards {
    char **paths; // (n) garlic_malloc'd
    size_t n;
} hf_shards;

// Lists the safetensors files of dir: the files model.safetensors.index.json names in its
// weight_map (each once, in order of first mention; a name with a '/' or ".." is an error),
// or, without an index, every *.safetensors of dir sorted by name (none is not an error).
// The caller frees the list with hf_shards_deinit, even after a failure.
int hf_shards_list(const char *dir, hf_shards *out, garlic_error *err);
void hf_shards_deinit(hf_shards *s);

// ---- safetensors headers ----

// One tensor of a header, as hf_safetensors_parse hands it to its callback.
typedef struct hf_tensor {
    const char *name;  // valid during the callback only
    const char *dtype; // "BF16", "F8_E4M3"...; valid during the callback only
    uint32_t dtype_size;
    uint32_t n_dims;
    uint64_t shape[HF_MAX_DIMS]; // (n_dims)
    uint64_t n_elements;
    uint64_t bytes;      // n_elements x dtype_size
    uint64_t begin, end; // data range, relative to the data section
    bool scales;         // quantization metadata (names ending in scale_inv, _scale, scales,
                         // qzeros, g_idx): bytes, not parameters
    bool norm;           // a norm weight (its name contains "norm")
} hf_tensor;

// Called for every tensor of a header in turn; a non-zero return stops the parse and is
// returned (fill err first).
typedef int (*hf_tensor_fn)(void *user, const hf_tensor *t, garlic_error *err);

// Parses one safetensors image: buf holds the first size bytes of a file of file_size bytes
// (at least the 8-byte header length and the JSON header). Validates the length (against
// the file and HF_SAFETENSORS_MAX_HEADER), every tensor's dtype, shape and data_offsets
// (inside the data section, of exactly shape x dtype bytes, no two overlapping) and calls fn
// for each tensor. Nothing is kept pointing into buf. On failure fn may have seen some of
// the file's tensors. name is used in messages; GARLIC_EFORMAT for a malformed header.
int hf_safetensors_parse(const void *buf, size_t size, uint64_t file_size, const char *name,
                         hf_tensor_fn fn, void *user, garlic_error *err);

// Reads the header of the safetensors file at path (its length first, checked against the
// file size and the cap before the JSON is read) and parses it as above; *file_size is the
// file's size. GARLIC_EIO when it cannot be opened or read.
int hf_safetensors_read(const char *path, hf_tensor_fn fn, void *user, uint64_t *file_size,
                        garlic_error *err);

// Bytes per value of a safetensors dtype ("BF16" -> 2), or 0 for an unknown name.
uint32_t hf_safetensors_dtype_size(const char *dtype);

// ---- a folder as a model ----

// How a folder's weights are made into tensors.
typedef struct hf_open_options {
    // The type a matrix (2 or 3 dimensions) is made in, given its GGUF name, shape and the type
    // its encoding gives (BF16, F8_E4M3, Q4_Z, MXFP4...): `--quantize` at load, `garlic
    // convert --type`. NULL keeps every encoding's own. A type garlic cannot quantize to, or
    // whose blocks the rows do not fill, keeps the tensor's own.
    uint32_t (*retype)(void *ctx, const char *name, uint32_t n_dims, const uint64_t *ne,
                       uint32_t type);
    void *retype_ctx;
    bool meta_only; // hf_open: metadata and tensor infos only; tensors that would be made point
                    // at a placeholder that must not be read (for describing or planning a
                    // model, not running it)
} hf_open_options;

// A folder read and planned: config.json as GGUF metadata, the tokenizer files as tokenizer
// metadata, every weight as a GGUF tensor (name, type, shape), made from the mapped shards
// on demand. Errors name the file and the field or tensor.
typedef struct hf_model hf_model;

// Whether path names a Hugging Face folder (a directory, or a config.json).
bool hf_is_folder(const char *path);

// Reads the folder at path (or its config.json). NULL and err filled on failure.
hf_model *hf_model_open(const char *path, const hf_open_options *opt, garlic_error *err);
void hf_model_free(hf_model *h);

// The metadata and tensors (in the order hf_model_fill numbers them; tensors whose bytes are
// in the shards as they are have borrowed data, the others none) as a GGUF writer: written
// with gguf_writer_write(w, path, hf_model_fill, h, err).
gguf_writer *hf_model_writer(hf_model *h);

// Makes tensor index of the writer into dst (nbytes): a gguf_tensor_fill over an hf_model.
int hf_model_fill(void *h, size_t index, void *dst, uint64_t nbytes, garlic_error *err);

// The folder as a model file: every tensor that is not in the shards as it is is made into
// memory of the model's own (the shards' pages it read are dropped), and the result reads
// like a GGUF file (gguf_file.detached). Closing it unmaps everything.
gguf_file *hf_open(const char *path, const hf_open_options *opt, garlic_error *err);

// A model file as garlic opens it: a GGUF file (gguf_open), or a folder or its config.json
// (hf_open). opt may be NULL.
gguf_file *hf_open_model(const char *path, const hf_open_options *opt, garlic_error *err);

// The Hugging Face architectures garlic loads, for messages.
const char *hf_arch_names(void);

// ---- the tokenizer ----

// The files of a folder the tokenizer is read from.
typedef enum hf_tokenizer_file {
    HF_FILE_TOKENIZER,   // tokenizer.json (required)
    HF_FILE_CONFIG,      // tokenizer_config.json
    HF_FILE_SPECIAL_MAP, // special_tokens_map.json
    HF_FILE_GENERATION,  // generation_config.json
    HF_FILE_MODEL,       // config.json
    HF_FILE_CHAT_JSON,   // chat_template.json
    HF_FILE_CHAT_JINJA,  // chat_template.jinja
    HF_FILE_COUNT
} hf_tokenizer_file;

// Adds the tokenizer metadata of the folder dir to w: the tokenizer.ggml.* keys (model, pre,
// tokens, token types, scores or merges, special token ids, add_bos_token/add_eos_token,
// add_space_prefix) and tokenizer.chat_template, as llama.cpp's converter writes them, from
// tokenizer.json (required), tokenizer_config.json, special_tokens_map.json,
// generation_config.json, chat_template.jinja or chat_template.json, and config.json's
// vocab_size and token ids. Byte-level BPE becomes "gpt2" (the pre-tokenizer named by its
// regexes), BPE with byte fallback "llama" (scores that follow the merge list), WordPiece
// "bert". Errors name the file and the field: GARLIC_ENOTFOUND (no tokenizer.json), GARLIC_EIO
// (a file cannot be read), GARLIC_EFORMAT (malformed), GARLIC_EUNSUPPORTED (something garlic
// would tokenize differently), GARLIC_ENOMEM.
int hf_tokenizer_metadata(const char *dir, gguf_writer *w, garlic_error *err);

// The same over the files' texts in memory (for fuzzing): texts[f] is the NUL-terminated
// content of file f (NULL when absent; tokenizer.json must be there), named "dir/<file>" in
// messages.
int hf_tokenizer_metadata_texts(const char *dir, const char *const texts[HF_FILE_COUNT],
                                gguf_writer *w, garlic_error *err);

// The tokenizer metadata of the folder dir as an in-memory GGUF file without tensors (named
// "dir/tokenizer.json" in messages), for tokenizer_load and the model summary. NULL and err
// on failure; the caller closes it with gguf_close.
gguf_file *hf_tokenizer_open(const char *dir, garlic_error *err);

#endif
