// SPDX-License-Identifier: MIT
// The tokenizer's private layout, shared by the files of src/tokenizer/ only: the vocabulary
// (texts, scores, types, decoded pieces in one blob), the two open-addressing hash maps
// (token text -> id, merge pair -> rank), the special-token list used to split text before
// the main algorithm runs, the compiled regexes, the merge loop SentencePiece and BPE share,
// each algorithm's entry points and the generated Unicode tables WordPiece reads.
#ifndef GARLIC_TOKENIZER_INTERNAL_H
#define GARLIC_TOKENIZER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "tokenizer/tokenizer.h"

enum { TOKENIZER_MAX_REGEX = 8 };

// When SentencePiece puts a space in front of a raw fragment (with add_space_prefix).
typedef enum tokenizer_prefix_rule {
    TOKENIZER_PREFIX_EVERY,     // every fragment: the start and after each special token
    TOKENIZER_PREFIX_METASPACE, // every fragment that does not start with a space (HF's
                                // Metaspace, prepend_scheme "always")
    TOKENIZER_PREFIX_FIRST,     // only a fragment at the very start that does not start with
                                // a space (Metaspace, prepend_scheme "first")
    TOKENIZER_PREFIX_COUNT
} tokenizer_prefix_rule;

// Per-token attributes that llama.cpp derives from the model name (not stored in GGUF).
enum {
    TOKEN_ATTR_LSTRIP = 1u << 0, // whitespace before a matched special token is dropped
    TOKEN_ATTR_RSTRIP = 1u << 1, // whitespace after it is dropped
};

// Open-addressing table of 1-based indices (0 = empty slot); capacity is a power of two.
typedef struct tokenizer_table {
    uint32_t *slots; // (mask + 1)
    uint32_t mask;
} tokenizer_table;

struct tokenizer {
    tokenizer_kind kind;
    char pre_name[64];
    int pre; // index into the pre-tokenizer table (BPE)
    uint32_t n_vocab;
    char *blob;                // every token text, then every decoded piece
    uint32_t *text_off;        // (n_vocab) token text in blob
    uint32_t *text_len;        // (n_vocab)
    uint32_t *piece_off;       // (n_vocab) decoded bytes in blob
    uint32_t *piece_len;       // (n_vocab)
    float *scores;             // (n_vocab) SPM merge priority; 0 when absent
    uint8_t *types;            // (n_vocab) tokenizer_token_type
    uint8_t *attrs;            // (n_vocab) TOKEN_ATTR_*
    size_t max_piece;          // longest piece or special text
    uint32_t max_token_len;    // longest token text in bytes (WordPiece's longest match)
    tokenizer_table token_map; // text -> id + 1 (a later duplicate wins)
    // Byte-level BPE merges: "left right" strings, split after split[i] bytes.
    uint32_t n_merges;
    char *merge_blob;
    uint32_t *merge_off;       // (n_merges)
    uint32_t *merge_len;       // (n_merges)
    uint32_t *merge_split;     // (n_merges) bytes of the left half
    tokenizer_table merge_map; // pair -> rank + 1 (the first occurrence wins)
    int32_t special[TOKENIZER_SPECIAL_COUNT];
    bool add_bos, add_eos, add_space_prefix;
    tokenizer_prefix_rule prefix_rule; // tokenizer.ggml.metaspace_prepend, else EVERY
    bool nfc;                // raw text is put in NFC first (tokenizer.ggml.normalizer.nfc)
    bool ignore_merges;      // a pre-token that is itself a token is not merged (llama3)
    int32_t byte_token[256]; // SPM: <0xNN> (or the 1-byte token); BPE: the 1-byte token; -1
    int32_t *specials;       // (n_specials) CONTROL/USER_DEFINED/UNKNOWN ids, longest first
    uint32_t n_specials;
    int n_regex;
    void *regex[TOKENIZER_MAX_REGEX]; // pcre2_code_8 *
    void *pcre_context;               // pcre2_general_context_8 *, routes PCRE2 memory
};

// FNV-1a over two concatenated byte ranges.
static inline uint64_t tokenizer_hash2(const char *a, size_t na, const char *b, size_t nb)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < na; i++)
        h = (h ^ (unsigned char)a[i]) * 1099511628211ull;
    for (size_t i = 0; i < nb; i++)
        h = (h ^ (unsigned char)b[i]) * 1099511628211ull;
    return h ^ (h >> 29);
}

// The id of the token whose text is a[0..na) followed by b[0..nb), or -1.
int32_t tokenizer_lookup2(const tokenizer *t, const char *a, size_t na, const char *b, size_t nb);

// The rank of the merge (left, right), or -1.
int32_t tokenizer_merge_rank(const tokenizer *t, const char *left, size_t nl, const char *right,
                             size_t nr);

// Bytes of the UTF-8 sequence whose lead byte is c, as a lenient decoder counts them
// (continuation bytes are not checked; the caller caps at the remaining length).
static inline size_t tokenizer_utf8_len(unsigned char c)
{
    static const uint8_t by_high_nibble[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return by_high_nibble[c >> 4];
}

// A pending merge of two adjacent symbols. Lower key first, then the leftmost; size is the
// merged length in bytes, used to notice that either side changed since it was queued.
typedef struct tokenizer_bigram {
    uint32_t key; // BPE: merge rank; SPM: tokenizer_score_key of the merged token's score
    int32_t left;
    int32_t right;
    uint32_t size;
} tokenizer_bigram;

// Maps a score to a key that sorts the higher score first (16-byte bigrams keep the heap
// cache-friendly); -0 and +0 compare equal, as floats do.
static inline uint32_t tokenizer_score_key(float score)
{
    uint32_t bits;
    if (score == 0)
        score = 0;
    memcpy(&bits, &score, sizeof bits);
    bits = bits & 0x80000000u ? ~bits : bits | 0x80000000u; // ascending as the floats
    return ~bits;
}

// A binary min-heap of bigrams in caller-owned growable storage.
typedef struct tokenizer_heap {
    tokenizer_bigram *items; // (cap)
    size_t n;
    size_t cap;
} tokenizer_heap;

static inline bool tokenizer_bigram_before(const tokenizer_bigram *a, const tokenizer_bigram *b)
{
    return a->key < b->key || (a->key == b->key && a->left < b->left);
}

int tokenizer_heap_push(tokenizer_heap *h, tokenizer_bigram item);
tokenizer_bigram tokenizer_heap_pop(tokenizer_heap *h); // the heap must not be empty

// A symbol of the word being merged: bytes [start, start + n) and its neighbours in the chain.
typedef struct tokenizer_symbol {
    uint32_t start;
    uint32_t n; // 0 once merged into its left neighbour
    int32_t prev;
    int32_t next;
} tokenizer_symbol;

// The merge priority of two adjacent symbols' texts (lower merges first): SentencePiece uses
// the merged token's score, byte-level BPE the merge rank. False when they do not merge.
typedef bool (*tokenizer_pair_key_fn)(const tokenizer *t, const char *a, size_t na, const char *b,
                                      size_t nb, uint32_t *key);

// Merges the n symbols of text (linked through prev/next, in order) pair by pair: the queued
// pair with the lowest key (then the leftmost) merges if neither side changed since it was
// queued, and the new symbol's pairs with its neighbours are queued. heap is scratch owned
// by the caller. Returns GARLIC_OK or GARLIC_ENOMEM.
int tokenizer_merge_symbols(const tokenizer *t, const char *text, tokenizer_symbol *symbols,
                            size_t n, tokenizer_heap *heap, tokenizer_pair_key_fn key);

// Decodes one code point leniently (lead byte and continuation bits only, as llama.cpp
// does): a byte that starts no sequence, or a truncated one, is U+FFFD and uses one byte.
uint32_t tokenizer_next_code_point(const unsigned char *s, size_t n, size_t *used);
// The first code point of c's lowercase form (unicode_tables.c).
uint32_t tokenizer_to_lower(uint32_t c);
// A pcre2_general_context whose allocations go through garlic_malloc, or NULL.
void *tokenizer_pcre_context_new(void);
// Frees t's compiled regexes (BPE pre-tokenizers or WordPiece's classifier) and its context.
void tokenizer_regex_release(tokenizer *t);

// Appends one id to out, growing it. GARLIC_OK or GARLIC_ENOMEM.
int tokenizer_ids_push(tokenizer_ids *out, int32_t id);

// Emits one final symbol of a merge (encode.c): its token, else one byte token per byte
// (<0xNN> or the byte alphabet's), else fallback for a byte without one (-1: the byte is
// dropped; SentencePiece passes its unknown token). GARLIC_OK or GARLIC_ENOMEM.
int tokenizer_emit_symbol(const tokenizer *t, const char *s, size_t n, int32_t fallback,
                          tokenizer_ids *out);

// Algorithms: each tokenizes one raw-text fragment (no special tokens inside) and appends.
int tokenizer_spm_encode(const tokenizer *t, const char *text, size_t len, bool space_prefix,
                         tokenizer_ids *out, garlic_error *err);
int tokenizer_bpe_encode(const tokenizer *t, const char *text, size_t len, tokenizer_ids *out,
                         garlic_error *err);
// Appends where each pre-token of a byte-level BPE fragment ends (byte offsets into the text
// as the regexes see it: the same as text when it is valid UTF-8); for tests.
int tokenizer_bpe_split(const tokenizer *t, const char *text, size_t len, tokenizer_ids *ends,
                        garlic_error *err);

// WordPiece (wpm.c): compiles the character classifier; tokenizes one raw-text fragment.
int tokenizer_wpm_setup(tokenizer *t, const char *path, garlic_error *err);
int tokenizer_wpm_encode(const tokenizer *t, const char *text, size_t len, tokenizer_ids *out,
                         garlic_error *err);

// Unicode data (unicode_tables.c), sorted by first code point.
typedef struct tokenizer_case_range {
    uint32_t first, last; // code points [first, last], every step-th
    int32_t step;
    int32_t delta; // lowercase = c + delta
} tokenizer_case_range;
typedef struct tokenizer_ccc_range {
    uint32_t first, last; // code points [first, last]
    uint32_t ccc;         // their canonical combining class (non-zero)
} tokenizer_ccc_range;
typedef struct tokenizer_decomposition {
    uint32_t cp;          // a code point with a canonical decomposition
    uint32_t off, length; // its full decomposition in tokenizer_decomposition_pool
} tokenizer_decomposition;
typedef struct tokenizer_composition {
    uint32_t first, second; // a canonical pair
    uint32_t composite;     // the primary composite it makes
} tokenizer_composition;
extern const tokenizer_case_range tokenizer_lower_ranges[];
extern const size_t tokenizer_lower_count;
extern const tokenizer_ccc_range tokenizer_ccc_ranges[];
extern const size_t tokenizer_ccc_count;
extern const tokenizer_decomposition tokenizer_decompositions[];
extern const size_t tokenizer_decomposition_count;
extern const uint32_t tokenizer_decomposition_pool[];
extern const tokenizer_composition tokenizer_compositions[];
extern const size_t tokenizer_composition_count;

enum { TOKENIZER_NFD_MAX = 4 }; // code points of the longest full canonical decomposition

// Writes the full canonical decomposition of c (c itself when it has none) to out; returns
// how many code points (normalize.c). Not in canonical order across characters.
size_t tokenizer_nfd(uint32_t c, uint32_t out[TOKENIZER_NFD_MAX]);

// Writes NFC(text[0..len)) to *out (garlic_malloc'd, *out_len bytes, NUL-terminated): Unicode
// canonical composition, as HF's NFC normalizer applies it. Bytes that are not valid UTF-8
// pass through unchanged and compose with nothing. GARLIC_OK or GARLIC_ENOMEM.
int tokenizer_nfc(const char *text, size_t len, char **out, size_t *out_len);
// True when text[0..len) may change under NFC (it holds a code point from U+0300 on).
bool tokenizer_nfc_may_change(const char *text, size_t len);

// Pre-tokenizers (bpe.c): finds the table entry for t->pre_name and compiles its regexes.
// GARLIC_EUNSUPPORTED for an unknown name; path names the file in messages.
int tokenizer_bpe_pre_setup(tokenizer *t, const char *path, garlic_error *err);
// Appends the UTF-8 of the byte-level BPE alphabet for byte b to dst; returns its length.
size_t tokenizer_bpe_byte_char(unsigned char b, char *dst);
// Maps a code point of the byte-level alphabet back to its byte, or -1.
int tokenizer_bpe_char_byte(uint32_t cp);

#endif
