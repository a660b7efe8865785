// SPDX-License-Identifier: MIT
// Shared by the files of src/hf/ that turn a folder's tokenizer into GGUF metadata
// (tokenizer.c: the vocabulary of tokenizer.json; tokenizer_config.c: special tokens,
// BOS/EOS and chat templates): the state of one conversion and the JSON helpers both use.
// The state lives on the stack of hf_tokenizer_metadata and is never shared between threads.
#ifndef GARLIC_HF_INTERNAL_H
#define GARLIC_HF_INTERNAL_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/buffer.h"
#include "base/utf8.h"
#include "hf/hf.h"
#include "tokenizer/tokenizer.h"

enum {
    MAX_PRE_STEPS = 8, // regexes of one pre-tokenizer
    MAX_DEPTH = 8,     // nested Sequence steps
    HF_SHOWN = 72,     // bytes of a name or text quoted in a message
};

// Special token roles, in the order of their GGUF keys.
typedef enum hf_role {
    HF_ROLE_BOS,
    HF_ROLE_EOS,
    HF_ROLE_UNK,
    HF_ROLE_SEP,
    HF_ROLE_PAD,
    HF_ROLE_CLS,
    HF_ROLE_MASK,
    HF_ROLE_EOT, // more end-of-generation tokens (generation_config.json's eos_token_id list)
    HF_ROLE_EOM,
    HF_ROLE_COUNT
} hf_role;

// One conversion: the parsed files, the token table and what the settings say.
typedef struct hf_tokenizer_build {
    char path[HF_FILE_COUNT][HF_PATH_MAX]; // "dir/tokenizer.json", ... (for messages)
    cJSON *json[HF_FILE_COUNT];            // parsed JSON files, NULL when absent
    const char *jinja;                     // chat_template.jinja's text (borrowed), or NULL
    const cJSON *model; // tokenizer.json's "model" (inside json[HF_FILE_TOKENIZER])
    tokenizer_kind kind;
    uint32_t n;        // tokens (ids 0..n-1)
    const char **text; // (n) token texts: in the JSON trees or in owned
    char **owned;      // (n) texts made here (holes, WordPiece), else NULL
    uint32_t *len;     // (n) strlen(text[i])
    uint8_t *type;     // (n) tokenizer_token_type
    bool *added;       // (n) named by added_tokens
    float *score;      // (n) SentencePiece scores
    bool *made;        // (n) SentencePiece: some merge makes the token
    uint32_t *slots;   // (mask + 1) text -> id + 1, open addressing
    uint32_t mask;
    uint64_t *pairs; // (pair_mask + 1) SentencePiece: listed merges (left << 32 | right) + 1
    uint64_t pair_mask;
    uint32_t n_merges; // byte-level BPE
    size_t *merge_off; // (n_merges) "left right" strings in merge_text
    garlic_buf merge_text;
    const char *pre;                 // tokenizer.ggml.pre (static), NULL for "default"
    bool space_escape, space_prefix; // SentencePiece: " " -> "▁", a "▁" in front
    const char *metaspace;           // Metaspace's prepend_scheme ("always", "first"), or NULL
    bool nfc;                        // the normalizer composes to NFC
    int32_t special[HF_ROLE_COUNT];  // ids, -1 when none
    bool add_bos, add_eos;
} hf_tokenizer_build;

// Member key of obj, NULL when absent, null, or obj is not an object.
const cJSON *hf_json_member(const cJSON *obj, const char *key);
// A boolean member (dflt when absent); GARLIC_EFORMAT naming file, where and key otherwise.
int hf_json_bool(const cJSON *obj, const char *key, bool dflt, bool *out, const char *file,
                 const char *where, garlic_error *err);
// An integer in [0, HF_MAX_VOCAB): true and *id set, else false.
bool hf_json_id(const cJSON *v, uint32_t *id);
// s sanitized for a message (control characters escaped, at most HF_SHOWN bytes) in buf.
const char *hf_shown(const char *s, char buf[HF_SHOWN]);
// The id of the token whose text is s[0..n) (the last one with that text), or -1.
int32_t hf_token_find(const hf_tokenizer_build *b, const char *s, size_t n);

// tokenizer_config.c: finds the special tokens and whether BOS/EOS are added, from
// tokenizer_config.json, special_tokens_map.json, config.json, generation_config.json and
// the post-processor of tokenizer.json; then writes them and the chat templates.
int hf_tokenizer_specials(hf_tokenizer_build *b, garlic_error *err);
int hf_tokenizer_write_config(const hf_tokenizer_build *b, gguf_writer *w, garlic_error *err);

#endif
