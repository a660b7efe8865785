// SPDX-License-Identifier: MIT
// Text <-> token ids, exactly as the model's own tokenizer does it. The vocabulary is read
// from GGUF metadata (tokenizer.ggml.*) into a self-contained, immutable tokenizer that any
// number of threads may use at once. Three algorithms: SentencePiece-style score-driven
// merging (`llama`), byte-level BPE with a PCRE2 pre-tokenizer (`gpt2`) and WordPiece
// (`bert`). Decoding turns ids back into bytes; the streaming decoder never emits half a
// UTF-8 character.
#ifndef GARLIC_TOKENIZER_H
#define GARLIC_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buffer.h"
#include "base/error.h"
#include "gguf/gguf.h"

typedef enum tokenizer_kind {
    TOKENIZER_KIND_SPM, // tokenizer.ggml.model "llama": SentencePiece BPE over characters
    TOKENIZER_KIND_BPE, // "gpt2": byte-level BPE with a regex pre-tokenizer
    TOKENIZER_KIND_WPM, // "bert": WordPiece (lowercased, accents stripped, longest match)
    TOKENIZER_KIND_COUNT
} tokenizer_kind;

// tokenizer.ggml.token_type values (as written by gguf-py).
typedef enum tokenizer_token_type {
    TOKENIZER_TOKEN_UNDEFINED = 0,
    TOKENIZER_TOKEN_NORMAL = 1,
    TOKENIZER_TOKEN_UNKNOWN = 2,
    TOKENIZER_TOKEN_CONTROL = 3,
    TOKENIZER_TOKEN_USER_DEFINED = 4,
    TOKENIZER_TOKEN_UNUSED = 5,
    TOKENIZER_TOKEN_BYTE = 6,
    TOKENIZER_TOKEN_COUNT
} tokenizer_token_type;

// Special token roles; an id of -1 means the vocabulary names none.
typedef enum tokenizer_special {
    TOKENIZER_SPECIAL_BOS,
    TOKENIZER_SPECIAL_EOS,
    TOKENIZER_SPECIAL_UNK,
    TOKENIZER_SPECIAL_SEP,
    TOKENIZER_SPECIAL_PAD,
    TOKENIZER_SPECIAL_CLS,
    TOKENIZER_SPECIAL_MASK,
    TOKENIZER_SPECIAL_EOT, // end of turn: generation ends on it as on EOS
    TOKENIZER_SPECIAL_EOM, // end of message (a tool call): generation ends on it too
    TOKENIZER_SPECIAL_COUNT
} tokenizer_special;

// Flags for tokenizer_encode.
enum {
    TOKENIZER_ADD_SPECIAL = 1u << 0,   // add BOS/EOS where the vocabulary asks for them
    TOKENIZER_PARSE_SPECIAL = 1u << 1, // text equal to a CONTROL token becomes that token
};

// Flags for decoding.
enum {
    TOKENIZER_RENDER_SPECIAL = 1u << 0, // CONTROL/UNKNOWN tokens render as their text ("<s>")
};

typedef struct tokenizer tokenizer;

// A growable id array owned by the caller; reuse it across calls to avoid allocating.
typedef struct tokenizer_ids {
    int32_t *ids; // (cap)
    size_t n;
    size_t cap;
} tokenizer_ids;

// A growable byte buffer owned by the caller, kept NUL-terminated (len excludes the NUL):
// base's garlic_buf, so decoded text can be handed on or taken with garlic_buf_take.
typedef garlic_buf tokenizer_text;

// Builds a tokenizer from an open GGUF file. Everything needed is copied, so the file may be
// closed afterwards. Returns NULL and fills err, naming the file and key, when the vocabulary
// is missing or malformed (length mismatches, ids out of range, an unknown
// tokenizer.ggml.model or tokenizer.ggml.pre value).
tokenizer *tokenizer_load(const gguf_file *f, garlic_error *err);

// Opens path, loads its tokenizer and closes the file.
tokenizer *tokenizer_open(const char *path, garlic_error *err);

// Releases everything; tokenizer_free(NULL) is a no-op.
void tokenizer_free(tokenizer *t);

// Accessors. tokenizer_token_text returns the vocabulary text of id (not NUL-terminated,
// valid while t lives) or NULL when id is out of range.
tokenizer_kind tokenizer_get_kind(const tokenizer *t);
const char *tokenizer_pre_name(const tokenizer *t); // "default", "llama-bpe", ...
uint32_t tokenizer_vocab_size(const tokenizer *t);
int32_t tokenizer_special_id(const tokenizer *t, tokenizer_special role);
bool tokenizer_adds_bos(const tokenizer *t);
bool tokenizer_adds_eos(const tokenizer *t);
const char *tokenizer_token_text(const tokenizer *t, int32_t id, size_t *len);
tokenizer_token_type tokenizer_token_get_type(const tokenizer *t, int32_t id);
// True when every byte valid UTF-8 can contain has a token (SPM: <0xNN>; BPE: its alphabet
// character), so that decode(encode(s)) == s for every valid UTF-8 s, except that SPM turns a
// literal U+2581 into a space and text that spells a CONTROL token may merge into it.
bool tokenizer_is_lossless(const tokenizer *t);

// Appends the ids of text[0..len) to out (out->n grows). flags: TOKENIZER_ADD_SPECIAL,
// TOKENIZER_PARSE_SPECIAL. USER_DEFINED tokens are always matched as whole tokens (except
// those loading made CONTROL by their text, as llama.cpp does: enders such as "</s>" and
// fill-in-the-middle markers, unless tokenizer.ggml.token_type_final is set). Returns
// GARLIC_OK, GARLIC_ENOMEM, or GARLIC_EINVAL when the regex engine gives up on the input.
int tokenizer_encode(const tokenizer *t, const char *text, size_t len, unsigned flags,
                     tokenizer_ids *out, garlic_error *err);

// Releases the buffers of ids or text (the structs themselves are the caller's).
void tokenizer_ids_deinit(tokenizer_ids *ids);
void tokenizer_text_deinit(tokenizer_text *text);

// The bytes token id decodes to, without any leading-space rule: SentencePiece's U+2581
// becomes a space, <0xNN> becomes byte NN, byte-level BPE text is mapped back to bytes,
// CONTROL/UNKNOWN tokens are empty unless TOKENIZER_RENDER_SPECIAL. Valid while t lives;
// NULL (and *len 0) when id is out of range.
const char *tokenizer_piece(const tokenizer *t, int32_t id, unsigned flags, size_t *len);

// The longest piece any token decodes to, in bytes (for sizing stream buffers).
size_t tokenizer_max_piece(const tokenizer *t);

// Appends the text of ids to out. For SentencePiece vocabularies that add a space prefix (and
// for WordPiece), the space in front of the first word is removed again, at the start and
// after BOS, so decode(encode(s)) == s. No HF-style clean-up of spaces. Returns GARLIC_OK,
// GARLIC_EINVAL (an id out of range) or GARLIC_ENOMEM.
int tokenizer_decode(const tokenizer *t, const int32_t *ids, size_t n, unsigned flags,
                     tokenizer_text *out, garlic_error *err);

// Streaming decoder: feed ids one at a time, get text out as soon as it is whole UTF-8.
// Bytes that can never become valid UTF-8 come out as U+FFFD. Owned by one thread.
typedef struct tokenizer_stream {
    const tokenizer *tok;     // borrowed; must outlive the stream
    unsigned flags;           // TOKENIZER_RENDER_SPECIAL
    bool strip_space;         // the next piece loses a leading space (SPM/WPM: start, after BOS)
    unsigned char pending[4]; // an incomplete UTF-8 sequence held back
    size_t n_pending;
} tokenizer_stream;

void tokenizer_stream_init(tokenizer_stream *s, const tokenizer *t, unsigned flags);

// Declares that the stream's text continues the n tokens before it (a prompt): the leading
// space of the first piece is then text (" a" after "Once upon"), not the SPM space prefix,
// unless the prompt is empty or ends with BOS, where the text starts afresh.
void tokenizer_stream_follow(tokenizer_stream *s, const int32_t *before, size_t n);

// Bytes of output buffer that one tokenizer_stream_push can need (every held-back byte may
// turn into a 3-byte U+FFFD).
size_t tokenizer_stream_max_output(const tokenizer *t);

// Decodes id and writes what is complete to out[0..cap), setting *written. Never allocates.
// GARLIC_EINVAL when id is out of range or cap < tokenizer_stream_max_output(t).
int tokenizer_stream_push(tokenizer_stream *s, int32_t id, char *out, size_t cap, size_t *written,
                          garlic_error *err);

// Ends the stream: a held-back incomplete sequence comes out as one U+FFFD (3 bytes).
size_t tokenizer_stream_flush(tokenizer_stream *s, char *out, size_t cap);

#endif
