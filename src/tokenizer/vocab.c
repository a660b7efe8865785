// SPDX-License-Identifier: MIT
// Loading a vocabulary from GGUF metadata into a tokenizer: validates every array against
// tokenizer.ggml.tokens, copies texts into one blob, precomputes each token's decoded piece,
// and builds the hash maps (text -> id, merge pair -> rank) and the special-token list.
// Keys read: tokenizer.ggml.{model,pre,tokens,scores,token_type,merges,*_token_id,
// add_bos_token,add_eos_token,add_space_prefix,metaspace_prepend,normalizer.nfc,
// token_type_final} and general.name. Like llama.cpp, tokens whose text is a known ender or
// fill-in-the-middle marker become control tokens whatever their type. The lookups into those
// maps and the pair-merging loop SentencePiece and BPE share (a heap of bigrams) live here.
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/buffer.h"
#include "base/utf8.h"
#include "hf/hf.h"
#include "tokenizer/internal.h"

static const char *const special_keys[TOKENIZER_SPECIAL_COUNT] = {
    [TOKENIZER_SPECIAL_BOS] = "tokenizer.ggml.bos_token_id",
    [TOKENIZER_SPECIAL_EOS] = "tokenizer.ggml.eos_token_id",
    [TOKENIZER_SPECIAL_UNK] = "tokenizer.ggml.unknown_token_id",
    [TOKENIZER_SPECIAL_SEP] = "tokenizer.ggml.seperator_token_id", // sic, as gguf-py writes it
    [TOKENIZER_SPECIAL_PAD] = "tokenizer.ggml.padding_token_id",
    [TOKENIZER_SPECIAL_CLS] = "tokenizer.ggml.cls_token_id",
    [TOKENIZER_SPECIAL_MASK] = "tokenizer.ggml.mask_token_id",
    [TOKENIZER_SPECIAL_EOT] = "tokenizer.ggml.eot_token_id",
    [TOKENIZER_SPECIAL_EOM] = "tokenizer.ggml.eom_token_id",
};

int tokenizer_ids_push(tokenizer_ids *out, int32_t id)
{
    if (out->n == out->cap &&
        garlic_grow(&out->ids, &out->cap, out->n + 1, sizeof *out->ids) != GARLIC_OK)
        return GARLIC_ENOMEM;
    out->ids[out->n++] = id;
    return GARLIC_OK;
}

// A table with room for n entries at a load factor of at most 1/2.
static int table_init(tokenizer_table *tab, size_t n)
{
    size_t cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    tab->slots = garlic_calloc(cap, sizeof *tab->slots);
    tab->mask = (uint32_t)(cap - 1);
    return tab->slots ? GARLIC_OK : GARLIC_ENOMEM;
}

int32_t tokenizer_lookup2(const tokenizer *t, const char *a, size_t na, const char *b, size_t nb)
{
    const tokenizer_table *tab = &t->token_map;
    size_t n = na + nb;
    for (uint64_t i = tokenizer_hash2(a, na, b, nb);; i++) {
        uint32_t v = tab->slots[i & tab->mask];
        if (v == 0)
            return -1;
        uint32_t id = v - 1;
        const char *s = t->blob + t->text_off[id];
        if (t->text_len[id] == n && memcmp(s, a, na) == 0 && memcmp(s + na, b, nb) == 0)
            return (int32_t)id;
    }
}

int32_t tokenizer_merge_rank(const tokenizer *t, const char *left, size_t nl, const char *right,
                             size_t nr)
{
    const tokenizer_table *tab = &t->merge_map;
    if (!tab->slots)
        return -1;
    // Merges are stored as "left right"; the split point is part of the key.
    for (uint64_t i = tokenizer_hash2(left, nl, right, nr) ^ nl;; i++) {
        uint32_t v = tab->slots[i & tab->mask];
        if (v == 0)
            return -1;
        uint32_t m = v - 1;
        const char *s = t->merge_blob + t->merge_off[m];
        if (t->merge_split[m] == nl && t->merge_len[m] == nl + 1 + nr && memcmp(s, left, nl) == 0 &&
            memcmp(s + nl + 1, right, nr) == 0)
            return (int32_t)m;
    }
}

// Records a failure about key in file f: "<file>: key '<key>': <message>".
static int key_error(garlic_error *err, int code, const gguf_file *f, const char *key,
                     const char *what)
{
    return garlic_error_set(err, code, "%s: key '%s': %s", f->path, key, what);
}

// Reads an optional boolean key into *out (unchanged when absent).
static int read_flag(const gguf_file *f, const char *key, bool *out, garlic_error *err)
{
    int rc = gguf_get_bool(f, key, out);
    if (rc == GARLIC_ENOTFOUND)
        return GARLIC_OK;
    if (rc != GARLIC_OK)
        return key_error(err, GARLIC_EFORMAT, f, key, "not a boolean");
    return GARLIC_OK;
}

// Reads the special token ids; -1 and 0xFFFFFFFF mean "none", anything else must be a
// valid id.
static int read_special_ids(tokenizer *t, const gguf_file *f, garlic_error *err)
{
    for (int i = 0; i < TOKENIZER_SPECIAL_COUNT; i++) {
        int64_t v;
        int rc = gguf_get_i64(f, special_keys[i], &v);
        if (rc == GARLIC_ENOTFOUND)
            continue;
        if (rc != GARLIC_OK)
            return key_error(err, GARLIC_EFORMAT, f, special_keys[i], "not an integer");
        if (v == -1 || v == 0xFFFFFFFFll) {
            t->special[i] = -1;
            continue;
        }
        if (v < 0 || v >= (int64_t)t->n_vocab) {
            garlic_error_set(err, GARLIC_EFORMAT,
                             "%s: key '%s': id %lld is out of range (%u tokens)", f->path,
                             special_keys[i], (long long)v, t->n_vocab);
            return GARLIC_EFORMAT;
        }
        t->special[i] = (int32_t)v;
    }
    return GARLIC_OK;
}

// Texts that llama.cpp makes control tokens whatever the file's token types say (it warns "this
// is probably a bug in the model"): the enders it stops generation on (phi-3's "</s>" is
// USER_DEFINED in its file, yet llama.cpp leaves it as text unless special tokens are parsed).
static const char *const ender_texts[] = {
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    "<\xef\xbd\x9c"
    "end\xe2\x96\x81"
    "of\xe2\x96\x81"
    "sentence\xef\xbd\x9c>",
    "[e~[",
};

// Fill-in-the-middle markers by role: where the file names no token for a role (its keys), the
// first token with one of the role's texts becomes a control token too. (llama.cpp takes the
// first its hash map yields; garlic the lowest id. They differ only for a vocabulary with two
// markers of one role.)
typedef struct fim_role {
    const char *keys[2];
    const char *texts[8];
} fim_role;
static const fim_role fim_roles[] = {
    {{"tokenizer.ggml.fim_pre_token_id", "tokenizer.ggml.prefix_token_id"},
     {"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>",
      "<\xef\xbd\x9c"
      "fim\xe2\x96\x81"
      "begin\xef\xbd\x9c>",
      "<PRE>", "\xe2\x96\x81<PRE>", "<|code_prefix|>", "<|prefix|>"}},
    {{"tokenizer.ggml.fim_suf_token_id", "tokenizer.ggml.suffix_token_id"},
     {"<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>",
      "<\xef\xbd\x9c"
      "fim\xe2\x96\x81"
      "hole\xef\xbd\x9c>",
      "<SUF>", "\xe2\x96\x81<SUF>", "<|code_suffix|>", "<|suffix|>"}},
    {{"tokenizer.ggml.fim_mid_token_id", "tokenizer.ggml.middle_token_id"},
     {"<|fim_middle|>", "<fim-middle>", "<fim_middle>",
      "<\xef\xbd\x9c"
      "fim\xe2\x96\x81"
      "end\xef\xbd\x9c>",
      "<MID>", "\xe2\x96\x81<MID>", "<|code_middle|>", "<|middle|>"}},
    {{"tokenizer.ggml.fim_pad_token_id", NULL},
     {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"}},
    {{"tokenizer.ggml.fim_rep_token_id", NULL},
     {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"}},
    {{"tokenizer.ggml.fim_sep_token_id", NULL}, {"<|file_sep|>"}},
};

// Makes token id a control token, unless it is one already or the unknown token (which is
// matched and rendered the same way).
static void make_control(tokenizer *t, int32_t id)
{
    if (id >= 0 && t->types[id] != TOKENIZER_TOKEN_UNKNOWN)
        t->types[id] = TOKENIZER_TOKEN_CONTROL;
}

// Whether the file names an in-range token under key.
static bool names_token(const tokenizer *t, const gguf_file *f, const char *key)
{
    int64_t v;
    return key && gguf_get_i64(f, key, &v) == GARLIC_OK && v >= 0 && v < (int64_t)t->n_vocab;
}

// Applies llama.cpp's text-based control tokens (above), so that text spelling them stays text
// when special tokens are not parsed and they render only with TOKENIZER_RENDER_SPECIAL. Not
// for vocabularies whose types are final (tokenizer.ggml.token_type_final, which garlic writes
// for a tokenizer.json: there "special": false means matched in text, as Hugging Face does).
// Needs the token map.
static int apply_control_texts(tokenizer *t, const gguf_file *f, garlic_error *err)
{
    bool final = false;
    int rc = read_flag(f, "tokenizer.ggml.token_type_final", &final, err);
    if (rc != GARLIC_OK || final)
        return rc;
    for (size_t i = 0; i < sizeof ender_texts / sizeof ender_texts[0]; i++)
        make_control(t, tokenizer_lookup2(t, ender_texts[i], strlen(ender_texts[i]), "", 0));
    for (size_t r = 0; r < sizeof fim_roles / sizeof fim_roles[0]; r++) {
        const fim_role *role = &fim_roles[r];
        if (names_token(t, f, role->keys[0]) || names_token(t, f, role->keys[1]))
            continue;
        int32_t first = -1;
        for (size_t k = 0; k < 8 && role->texts[k]; k++) {
            int32_t id = tokenizer_lookup2(t, role->texts[k], strlen(role->texts[k]), "", 0);
            if (id >= 0 && (first < 0 || id < first))
                first = id;
        }
        make_control(t, first);
    }
    return GARLIC_OK;
}

// What the elements of a vocabulary array must be.
typedef enum array_class {
    ARRAY_CLASS_STRINGS,  // token texts, merges
    ARRAY_CLASS_NUMBERS,  // scores: integers or floats
    ARRAY_CLASS_INTEGERS, // token types
    ARRAY_CLASS_COUNT
} array_class;

// Whether elements of GGUF type et belong to class want.
static bool array_class_accepts(array_class want, gguf_type et)
{
    bool number = et != GGUF_TYPE_STRING && et != GGUF_TYPE_ARRAY;
    switch (want) {
    case ARRAY_CLASS_STRINGS: return et == GGUF_TYPE_STRING;
    case ARRAY_CLASS_INTEGERS: return number && et != GGUF_TYPE_FLOAT32 && et != GGUF_TYPE_FLOAT64;
    default: return number;
    }
}

// Fetches an array key whose elements must be of class want and whose count must equal
// expect (0: any). Returns ENOTFOUND when absent.
static int get_array(const gguf_file *f, const char *key, array_class want, uint64_t expect,
                     gguf_value *arr, garlic_error *err)
{
    static const char *const class_names[ARRAY_CLASS_COUNT] = {
        [ARRAY_CLASS_STRINGS] = "strings",
        [ARRAY_CLASS_NUMBERS] = "numbers",
        [ARRAY_CLASS_INTEGERS] = "integers",
    };
    int rc = gguf_get_arr(f, key, arr);
    if (rc == GARLIC_ENOTFOUND)
        return rc;
    if (rc != GARLIC_OK)
        return key_error(err, GARLIC_EFORMAT, f, key, "not an array");
    gguf_type et = arr->arr.type;
    if (!array_class_accepts(want, et)) {
        garlic_error_set(err, GARLIC_EFORMAT, "%s: key '%s': array of %s, expected %s", f->path,
                         key, gguf_type_name(et), class_names[want]);
        return GARLIC_EFORMAT;
    }
    if (expect && arr->arr.count != expect) {
        garlic_error_set(err, GARLIC_EFORMAT,
                         "%s: key '%s': %llu entries, but tokenizer.ggml.tokens has %llu", f->path,
                         key, (unsigned long long)arr->arr.count, (unsigned long long)expect);
        return GARLIC_EFORMAT;
    }
    return GARLIC_OK;
}

// The string array key, which must be there (missing: what the error says when it is not):
// at most INT32_MAX strings, *total bytes of text in all.
static int string_array(const gguf_file *f, const char *key, const char *missing, gguf_value *arr,
                        uint64_t *total, garlic_error *err)
{
    int rc = get_array(f, key, ARRAY_CLASS_STRINGS, 0, arr, err);
    if (rc == GARLIC_ENOTFOUND)
        return key_error(err, GARLIC_EFORMAT, f, key, missing);
    if (rc != GARLIC_OK)
        return rc;
    if (arr->arr.count > INT32_MAX)
        return key_error(err, GARLIC_EFORMAT, f, key, "more than 2^31 strings");
    *total = 0;
    gguf_array_iter it;
    gguf_value v;
    gguf_array_iter_init(&it, arr);
    while (gguf_array_next(&it, &v))
        *total += v.str.len;
    return GARLIC_OK;
}

// Copies the token texts into t->blob (twice the text bytes: pieces go in the second half).
static int read_tokens(tokenizer *t, const gguf_file *f, garlic_error *err)
{
    const char *key = "tokenizer.ggml.tokens";
    gguf_value arr;
    uint64_t total;
    int rc = string_array(f, key, "missing: no vocabulary in this file", &arr, &total, err);
    if (rc != GARLIC_OK)
        return rc;
    if (arr.arr.count == 0)
        return key_error(err, GARLIC_EFORMAT, f, key, "vocabulary size out of range");
    t->n_vocab = (uint32_t)arr.arr.count;
    gguf_array_iter it;
    gguf_value v;
    if (total >= UINT32_MAX / 2)
        return key_error(err, GARLIC_EFORMAT, f, key, "token texts larger than 2 GiB");
    t->blob = garlic_malloc(2 * total + 1);
    t->text_off = garlic_calloc(t->n_vocab, sizeof *t->text_off);
    t->text_len = garlic_calloc(t->n_vocab, sizeof *t->text_len);
    t->piece_off = garlic_calloc(t->n_vocab, sizeof *t->piece_off);
    t->piece_len = garlic_calloc(t->n_vocab, sizeof *t->piece_len);
    t->scores = garlic_calloc(t->n_vocab, sizeof *t->scores);
    t->types = garlic_calloc(t->n_vocab, 1);
    t->attrs = garlic_calloc(t->n_vocab, 1);
    if (!t->blob || !t->text_off || !t->text_len || !t->piece_off || !t->piece_len || !t->scores ||
        !t->types || !t->attrs)
        return garlic_error_set(err, GARLIC_ENOMEM, "%s: out of memory for the vocabulary",
                                f->path);
    uint32_t off = 0, id = 0;
    gguf_array_iter_init(&it, &arr);
    while (gguf_array_next(&it, &v)) {
        memcpy(t->blob + off, v.str.data, v.str.len);
        t->text_off[id] = off;
        t->text_len[id] = (uint32_t)v.str.len;
        t->types[id] = TOKENIZER_TOKEN_NORMAL;
        off += (uint32_t)v.str.len;
        id++;
    }
    return GARLIC_OK;
}

// Reads the optional scores and token types (their lengths must match the vocabulary).
static int read_scores_and_types(tokenizer *t, const gguf_file *f, garlic_error *err)
{
    gguf_value arr;
    int rc = get_array(f, "tokenizer.ggml.scores", ARRAY_CLASS_NUMBERS, t->n_vocab, &arr, err);
    if (rc != GARLIC_OK && rc != GARLIC_ENOTFOUND)
        return rc;
    for (uint32_t i = 0; rc == GARLIC_OK && i < t->n_vocab; i++) {
        double d = 0;
        gguf_array_get_f64(&arr, i, &d);
        t->scores[i] = (float)d;
    }
    const char *key = "tokenizer.ggml.token_type";
    rc = get_array(f, key, ARRAY_CLASS_INTEGERS, t->n_vocab, &arr, err);
    if (rc == GARLIC_ENOTFOUND)
        return GARLIC_OK;
    if (rc != GARLIC_OK)
        return rc;
    for (uint32_t i = 0; i < t->n_vocab; i++) {
        int64_t type = -1;
        gguf_array_get_i64(&arr, i, &type);
        if (type < 0 || type >= TOKENIZER_TOKEN_COUNT) {
            garlic_error_set(err, GARLIC_EFORMAT, "%s: key '%s': token %u has type %lld (0..6)",
                             f->path, key, i, (long long)type);
            return GARLIC_EFORMAT;
        }
        t->types[i] = (uint8_t)type;
    }
    return GARLIC_OK;
}

// Reads tokenizer.ggml.merges ("left right" strings; rank = index) into the merge map.
static int read_merges(tokenizer *t, const gguf_file *f, garlic_error *err)
{
    const char *key = "tokenizer.ggml.merges";
    gguf_value arr;
    uint64_t total;
    int rc = string_array(f, key, "missing (a gpt2 vocabulary needs merges)", &arr, &total, err);
    if (rc != GARLIC_OK)
        return rc;
    t->n_merges = (uint32_t)arr.arr.count;
    gguf_array_iter it;
    gguf_value v;
    if (total >= UINT32_MAX)
        return key_error(err, GARLIC_EFORMAT, f, key, "merges larger than 4 GiB");
    t->merge_blob = garlic_malloc(total + 1);
    t->merge_off = garlic_calloc(t->n_merges + 1, sizeof *t->merge_off);
    t->merge_len = garlic_calloc(t->n_merges + 1, sizeof *t->merge_len);
    t->merge_split = garlic_calloc(t->n_merges + 1, sizeof *t->merge_split);
    if (!t->merge_blob || !t->merge_off || !t->merge_len || !t->merge_split ||
        table_init(&t->merge_map, t->n_merges) != GARLIC_OK)
        return garlic_error_set(err, GARLIC_ENOMEM, "%s: out of memory for the merges", f->path);
    uint32_t off = 0, m = 0;
    gguf_array_iter_init(&it, &arr);
    while (gguf_array_next(&it, &v)) {
        const char *s = t->merge_blob + off;
        memcpy(t->merge_blob + off, v.str.data, v.str.len);
        t->merge_off[m] = off;
        t->merge_len[m] = (uint32_t)v.str.len;
        off += (uint32_t)v.str.len;
        // The split is the first space after the first byte; a merge without one never applies.
        const char *sp = v.str.len > 1 ? memchr(s + 1, ' ', v.str.len - 1) : NULL;
        if (sp) {
            uint32_t nl = (uint32_t)(sp - s), nr = (uint32_t)v.str.len - nl - 1;
            t->merge_split[m] = nl;
            if (tokenizer_merge_rank(t, s, nl, sp + 1, nr) < 0) { // the first occurrence wins
                uint64_t i = tokenizer_hash2(s, nl, sp + 1, nr) ^ nl;
                while (t->merge_map.slots[i & t->merge_map.mask])
                    i++;
                t->merge_map.slots[i & t->merge_map.mask] = m + 1;
            }
        }
        m++;
    }
    return GARLIC_OK;
}

// Builds the text -> id map; a later token with the same text replaces an earlier one.
static int build_token_map(tokenizer *t)
{
    if (table_init(&t->token_map, t->n_vocab) != GARLIC_OK)
        return GARLIC_ENOMEM;
    tokenizer_table *tab = &t->token_map;
    for (uint32_t id = 0; id < t->n_vocab; id++) {
        const char *s = t->blob + t->text_off[id];
        size_t n = t->text_len[id];
        if (n == 0)
            continue;
        for (uint64_t i = tokenizer_hash2(s, n, "", 0);; i++) {
            uint32_t *slot = &tab->slots[i & tab->mask];
            if (*slot == 0 ||
                (t->text_len[*slot - 1] == n &&
                 memcmp(t->blob + t->text_off[*slot - 1], s, n) == 0)) {
                *slot = id + 1;
                break;
            }
        }
    }
    return GARLIC_OK;
}

// Decoded bytes of an SPM token into dst (capacity >= its text length); returns the length.
static size_t spm_piece(const tokenizer *t, uint32_t id, char *dst)
{
    const char *s = t->blob + t->text_off[id];
    size_t n = t->text_len[id], len = 0;
    switch (t->types[id]) {
    case TOKENIZER_TOKEN_USER_DEFINED: break; // "▁" is a space here too (Gemma's "▁▁" runs)
    case TOKENIZER_TOKEN_BYTE:
        if (n == 6 && memcmp(s, "<0x", 3) == 0 && isxdigit((unsigned char)s[3]) &&
            isxdigit((unsigned char)s[4]) && s[5] == '>') {
            char hex[3] = {s[3], s[4], 0};
            dst[0] = (char)strtol(hex, NULL, 16);
            return 1;
        }
        break; // a malformed byte token decodes as ordinary text
    case TOKENIZER_TOKEN_NORMAL: break;
    default: // CONTROL, UNKNOWN, UNUSED, UNDEFINED render as nothing
        return 0;
    }
    for (size_t i = 0; i < n;) {
        if (i + 3 <= n && memcmp(s + i, "\xe2\x96\x81", 3) == 0) { // U+2581 -> space
            dst[len++] = ' ';
            i += 3;
        } else {
            dst[len++] = s[i++];
        }
    }
    return len;
}

// Decoded bytes of a byte-level BPE token: each character of the byte alphabet becomes its
// byte; a character outside the alphabet is kept as it is.
static size_t bpe_piece(const tokenizer *t, uint32_t id, char *dst)
{
    const char *s = t->blob + t->text_off[id];
    size_t n = t->text_len[id], len = 0;
    if (t->types[id] == TOKENIZER_TOKEN_USER_DEFINED) {
        memcpy(dst, s, n);
        return n;
    }
    if (t->types[id] != TOKENIZER_TOKEN_NORMAL)
        return 0;
    for (size_t i = 0; i < n;) {
        size_t k = utf8_sequence_length(s + i, n - i);
        if (k == 0) {
            dst[len++] = s[i++];
            continue;
        }
        uint32_t cp = (unsigned char)s[i] & (k == 1 ? 0x7f : k == 2 ? 0x1f : k == 3 ? 0x0f : 0x07);
        for (size_t j = 1; j < k; j++)
            cp = cp << 6 | ((unsigned char)s[i + j] & 0x3f);
        int b = tokenizer_bpe_char_byte(cp);
        if (b >= 0) {
            dst[len++] = (char)b;
        } else {
            memcpy(dst + len, s + i, k);
            len += k;
        }
        i += k;
    }
    return len;
}

// Fills the second half of the blob with every token's decoded piece.
static void build_pieces(tokenizer *t)
{
    uint32_t off = t->n_vocab ? t->text_off[t->n_vocab - 1] + t->text_len[t->n_vocab - 1] : 0;
    t->max_piece = 0;
    for (uint32_t id = 0; id < t->n_vocab; id++) {
        char *dst = t->blob + off;
        size_t n = t->kind == TOKENIZER_KIND_BPE ? bpe_piece(t, id, dst) : spm_piece(t, id, dst);
        t->piece_off[id] = off;
        t->piece_len[id] = (uint32_t)n;
        off += (uint32_t)n;
        if (n > t->max_piece)
            t->max_piece = n;
        if (t->text_len[id] > t->max_piece)
            t->max_piece = t->text_len[id]; // rendered special text
    }
}

// Byte fallback ids: SPM uses <0xNN> (else the 1-byte token), BPE the 1-byte token.
static void build_byte_tokens(tokenizer *t)
{
    static const char hex[] = "0123456789ABCDEF";
    for (int b = 0; b < 256; b++) {
        char one = (char)b, name[6] = {'<', '0', 'x', hex[b >> 4], hex[b & 15], '>'};
        int32_t id = -1;
        if (t->kind == TOKENIZER_KIND_SPM)
            id = tokenizer_lookup2(t, name, 6, "", 0);
        if (id < 0)
            id = tokenizer_lookup2(t, &one, 1, "", 0);
        t->byte_token[b] = id;
    }
}

static int compare_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

// Lists the CONTROL, USER_DEFINED and UNKNOWN tokens, longest text first (then by id): the
// order in which they are cut out of the text before tokenizing.
static int build_specials(tokenizer *t)
{
    uint32_t n = 0;
    for (uint32_t id = 0; id < t->n_vocab; id++) {
        uint8_t ty = t->types[id];
        if ((ty == TOKENIZER_TOKEN_CONTROL || ty == TOKENIZER_TOKEN_USER_DEFINED ||
             ty == TOKENIZER_TOKEN_UNKNOWN) &&
            t->text_len[id] > 0)
            n++;
    }
    uint64_t *keys = garlic_calloc(n ? n : 1, sizeof *keys);
    t->specials = garlic_calloc(n ? n : 1, sizeof *t->specials);
    if (!keys || !t->specials) {
        garlic_free(keys);
        return GARLIC_ENOMEM;
    }
    n = 0;
    for (uint32_t id = 0; id < t->n_vocab; id++) {
        uint8_t ty = t->types[id];
        if ((ty == TOKENIZER_TOKEN_CONTROL || ty == TOKENIZER_TOKEN_USER_DEFINED ||
             ty == TOKENIZER_TOKEN_UNKNOWN) &&
            t->text_len[id] > 0)
            keys[n++] = (uint64_t)(UINT32_MAX - t->text_len[id]) << 32 | id;
    }
    qsort(keys, n, sizeof *keys, compare_u64);
    for (uint32_t i = 0; i < n; i++)
        t->specials[i] = (int32_t)(keys[i] & 0xffffffffu);
    t->n_specials = n;
    garlic_free(keys);
    return GARLIC_OK;
}

// Phi-3 models strip whitespace after most of their special tokens (a rule llama.cpp keys on
// general.name, since GGUF has no field for it).
static void apply_name_rules(tokenizer *t, const gguf_file *f)
{
    gguf_string name;
    char lower[256];
    if (gguf_get_str(f, "general.name", &name) != GARLIC_OK)
        return;
    size_t n = name.len < sizeof lower - 1 ? name.len : sizeof lower - 1;
    for (size_t i = 0; i < n; i++)
        lower[i] = (char)tolower((unsigned char)name.data[i]);
    lower[n] = '\0';
    if (!strstr(lower, "phi-3") && !strstr(lower, "phi3"))
        return;
    for (uint32_t i = 0; i < t->n_specials; i++)
        t->attrs[t->specials[i]] |= TOKEN_ATTR_RSTRIP;
    int32_t id = tokenizer_lookup2(t, "</s>", 4, "", 0);
    if (id >= 0)
        t->attrs[id] |= TOKEN_ATTR_RSTRIP;
    const char *keep[] = {"<unk>", "<s>", "<|endoftext|>"};
    for (size_t i = 0; i < 3; i++) {
        id = tokenizer_lookup2(t, keep[i], strlen(keep[i]), "", 0);
        if (id >= 0)
            t->attrs[id] &= (uint8_t)~TOKEN_ATTR_RSTRIP;
    }
}

// Reads tokenizer.ggml.metaspace_prepend (garlic's key for HF's Metaspace pre-tokenizer):
// "always" or "first" says when the SentencePiece space prefix applies.
static int read_prefix_rule(tokenizer *t, const gguf_file *f, garlic_error *err)
{
    const char *key = "tokenizer.ggml.metaspace_prepend";
    gguf_string v;
    int rc = gguf_get_str(f, key, &v);
    if (rc == GARLIC_ENOTFOUND)
        return GARLIC_OK;
    if (rc == GARLIC_OK && gguf_string_eq(v, "always"))
        t->prefix_rule = TOKENIZER_PREFIX_METASPACE;
    else if (rc == GARLIC_OK && gguf_string_eq(v, "first"))
        t->prefix_rule = TOKENIZER_PREFIX_FIRST;
    else
        return key_error(err, GARLIC_EUNSUPPORTED, f, key, "must be \"always\" or \"first\"");
    return GARLIC_OK;
}

// Reads tokenizer.ggml.model and .pre and sets the algorithm and its defaults.
static int read_model(tokenizer *t, const gguf_file *f, garlic_error *err)
{
    const char *key = "tokenizer.ggml.model";
    gguf_string kind, pre = {0, ""};
    int rc = gguf_get_str(f, key, &kind);
    if (rc == GARLIC_ENOTFOUND)
        return key_error(err, GARLIC_EFORMAT, f, key, "missing");
    if (rc != GARLIC_OK)
        return key_error(err, GARLIC_EFORMAT, f, key, "not a string");
    rc = gguf_get_str(f, "tokenizer.ggml.pre", &pre);
    if (rc != GARLIC_OK && rc != GARLIC_ENOTFOUND)
        return key_error(err, GARLIC_EFORMAT, f, "tokenizer.ggml.pre", "not a string");
    if (rc == GARLIC_ENOTFOUND || pre.len == 0)
        pre = (gguf_string){7, "default"};
    if (pre.len >= sizeof t->pre_name)
        return key_error(err, GARLIC_EUNSUPPORTED, f, "tokenizer.ggml.pre", "unknown value");
    memcpy(t->pre_name, pre.data, pre.len);
    t->pre_name[pre.len] = '\0';
    if (gguf_string_eq(kind, "llama")) {
        t->kind = TOKENIZER_KIND_SPM;
        t->add_bos = true;
        t->add_space_prefix = true;
        return GARLIC_OK;
    }
    if (gguf_string_eq(kind, "gpt2")) {
        t->kind = TOKENIZER_KIND_BPE;
        return GARLIC_OK;
    }
    if (gguf_string_eq(kind, "bert")) {
        t->kind = TOKENIZER_KIND_WPM;
        t->add_bos = t->add_eos = true; // [CLS] ... [SEP]
        return GARLIC_OK;
    }
    char shown[64];
    snprintf(shown, sizeof shown, "%.*s", (int)(kind.len < 48 ? kind.len : 48), kind.data);
    garlic_error_set(err, GARLIC_EUNSUPPORTED,
                     "%s: key '%s': tokenizer '%s' is not supported (known: llama, gpt2, bert)",
                     f->path, key, shown);
    return GARLIC_EUNSUPPORTED;
}

// SPM defaults (bos 1, eos 2, unk 0) where the vocabulary is large enough.
static void set_default_ids(tokenizer *t)
{
    for (int i = 0; i < TOKENIZER_SPECIAL_COUNT; i++)
        t->special[i] = -1;
    if (t->kind == TOKENIZER_KIND_SPM && t->n_vocab > 2) {
        t->special[TOKENIZER_SPECIAL_UNK] = 0;
        t->special[TOKENIZER_SPECIAL_BOS] = 1;
        t->special[TOKENIZER_SPECIAL_EOS] = 2;
    }
}

// Everything after the model kind is known; split out to keep tokenizer_load short.
static int load_rest(tokenizer *t, const gguf_file *f, garlic_error *err)
{
    int rc = read_tokens(t, f, err);
    if (rc == GARLIC_OK)
        rc = read_scores_and_types(t, f, err);
    if (rc == GARLIC_OK && t->kind == TOKENIZER_KIND_BPE)
        rc = read_merges(t, f, err);
    if (rc == GARLIC_OK && t->kind == TOKENIZER_KIND_BPE)
        rc = tokenizer_bpe_pre_setup(t, f->path, err); // may set add_bos and ignore_merges
    if (rc == GARLIC_OK && t->kind == TOKENIZER_KIND_WPM)
        rc = tokenizer_wpm_setup(t, f->path, err);
    if (rc != GARLIC_OK)
        return rc;
    set_default_ids(t);
    if ((rc = read_special_ids(t, f, err)) != GARLIC_OK)
        return rc;
    if (t->kind == TOKENIZER_KIND_WPM && t->special[TOKENIZER_SPECIAL_BOS] < 0)
        t->special[TOKENIZER_SPECIAL_BOS] = t->special[TOKENIZER_SPECIAL_CLS];
    if (t->kind == TOKENIZER_KIND_WPM && t->special[TOKENIZER_SPECIAL_EOS] < 0)
        t->special[TOKENIZER_SPECIAL_EOS] = t->special[TOKENIZER_SPECIAL_SEP];
    if ((rc = read_flag(f, "tokenizer.ggml.add_bos_token", &t->add_bos, err)) != GARLIC_OK ||
        (rc = read_flag(f, "tokenizer.ggml.add_eos_token", &t->add_eos, err)) != GARLIC_OK ||
        (rc = read_flag(f, "tokenizer.ggml.add_space_prefix", &t->add_space_prefix, err)) !=
            GARLIC_OK ||
        (rc = read_flag(f, "tokenizer.ggml.normalizer.nfc", &t->nfc, err)) != GARLIC_OK ||
        (rc = read_prefix_rule(t, f, err)) != GARLIC_OK)
        return rc;
    if (t->add_bos && t->special[TOKENIZER_SPECIAL_BOS] < 0)
        return key_error(err, GARLIC_EFORMAT, f, "tokenizer.ggml.bos_token_id",
                         "missing, but tokenizer.ggml.add_bos_token is set");
    if (t->add_eos && t->special[TOKENIZER_SPECIAL_EOS] < 0)
        return key_error(err, GARLIC_EFORMAT, f, "tokenizer.ggml.eos_token_id",
                         "missing, but tokenizer.ggml.add_eos_token is set");
    if (build_token_map(t) != GARLIC_OK)
        return garlic_error_set(err, GARLIC_ENOMEM, "%s: out of memory for the token map", f->path);
    if ((rc = apply_control_texts(t, f, err)) != GARLIC_OK)
        return rc;
    if (build_specials(t) != GARLIC_OK)
        return garlic_error_set(err, GARLIC_ENOMEM, "%s: out of memory for the token map", f->path);
    build_pieces(t);
    build_byte_tokens(t);
    apply_name_rules(t, f);
    return GARLIC_OK;
}

tokenizer *tokenizer_load(const gguf_file *f, garlic_error *err)
{
    tokenizer *t = garlic_calloc(1, sizeof *t);
    if (!t) {
        garlic_error_set(err, GARLIC_ENOMEM, "%s: out of memory", f->path);
        return NULL;
    }
    int rc = read_model(t, f, err);
    if (rc == GARLIC_OK)
        rc = load_rest(t, f, err);
    if (rc != GARLIC_OK) {
        tokenizer_free(t);
        return NULL;
    }
    return t;
}

tokenizer *tokenizer_open(const char *path, garlic_error *err)
{
    gguf_file *f = hf_open_model(path, &(hf_open_options){.meta_only = true}, err);
    if (!f)
        return NULL;
    tokenizer *t = tokenizer_load(f, err);
    gguf_close(f);
    return t;
}

void tokenizer_free(tokenizer *t)
{
    if (!t)
        return;
    tokenizer_regex_release(t);
    garlic_free(t->blob);
    garlic_free(t->text_off);
    garlic_free(t->text_len);
    garlic_free(t->piece_off);
    garlic_free(t->piece_len);
    garlic_free(t->scores);
    garlic_free(t->types);
    garlic_free(t->attrs);
    garlic_free(t->token_map.slots);
    garlic_free(t->merge_blob);
    garlic_free(t->merge_off);
    garlic_free(t->merge_len);
    garlic_free(t->merge_split);
    garlic_free(t->merge_map.slots);
    garlic_free(t->specials);
    garlic_free(t);
}

tokenizer_kind tokenizer_get_kind(const tokenizer *t) { return t->kind; }
const char *tokenizer_pre_name(const tokenizer *t) { return t->pre_name; }
uint32_t tokenizer_vocab_size(const tokenizer *t) { return t->n_vocab; }
bool tokenizer_adds_bos(const tokenizer *t) { return t->add_bos; }
bool tokenizer_adds_eos(const tokenizer *t) { return t->add_eos; }
size_t tokenizer_max_piece(const tokenizer *t) { return t->max_piece; }

int32_t tokenizer_special_id(const tokenizer *t, tokenizer_special role)
{
    return role >= 0 && role < TOKENIZER_SPECIAL_COUNT ? t->special[role] : -1;
}

const char *tokenizer_token_text(const tokenizer *t, int32_t id, size_t *len)
{
    if (id < 0 || (uint32_t)id >= t->n_vocab) {
        *len = 0;
        return NULL;
    }
    *len = t->text_len[id];
    return t->blob + t->text_off[id];
}

tokenizer_token_type tokenizer_token_get_type(const tokenizer *t, int32_t id)
{
    if (id < 0 || (uint32_t)id >= t->n_vocab)
        return TOKENIZER_TOKEN_UNDEFINED;
    return (tokenizer_token_type)t->types[id];
}

bool tokenizer_is_lossless(const tokenizer *t)
{
    if (t->kind == TOKENIZER_KIND_WPM || t->nfc)
        return false; // lowercases, strips accents and drops whitespace; or composes to NFC
    for (int b = 0; b < 256; b++) {
        if (b == 0xc0 || b == 0xc1 || b >= 0xf5)
            continue; // never part of valid UTF-8
        if (t->kind == TOKENIZER_KIND_SPM && t->byte_token[b] < 0)
            return false;
        if (t->kind == TOKENIZER_KIND_BPE) { // every byte's alphabet character is a token
            char c[2];
            size_t n = tokenizer_bpe_byte_char((unsigned char)b, c);
            if (tokenizer_lookup2(t, c, n, "", 0) < 0)
                return false;
        }
    }
    return true;
}

int tokenizer_heap_push(tokenizer_heap *h, tokenizer_bigram item)
{
    if (h->n == h->cap && garlic_grow(&h->items, &h->cap, h->n + 1, sizeof *h->items) != GARLIC_OK)
        return GARLIC_ENOMEM;
    size_t i = h->n++;
    while (i > 0) { // sift up
        size_t parent = (i - 1) / 2;
        if (!tokenizer_bigram_before(&item, &h->items[parent]))
            break;
        h->items[i] = h->items[parent];
        i = parent;
    }
    h->items[i] = item;
    return GARLIC_OK;
}

tokenizer_bigram tokenizer_heap_pop(tokenizer_heap *h)
{
    tokenizer_bigram top = h->items[0], last = h->items[--h->n];
    size_t i = 0;
    for (;;) { // sift the last item down from the root
        size_t child = 2 * i + 1;
        if (child >= h->n)
            break;
        if (child + 1 < h->n && tokenizer_bigram_before(&h->items[child + 1], &h->items[child]))
            child++;
        if (!tokenizer_bigram_before(&h->items[child], &last))
            break;
        h->items[i] = h->items[child];
        i = child;
    }
    if (h->n)
        h->items[i] = last;
    return top;
}

// Queues the pair (left, right) when both exist and key says they merge.
static int queue_pair(const tokenizer *t, const char *text, const tokenizer_symbol *symbols,
                      tokenizer_heap *heap, tokenizer_pair_key_fn key, int32_t left, int32_t right)
{
    if (left < 0 || right < 0)
        return GARLIC_OK;
    const tokenizer_symbol *l = &symbols[left], *r = &symbols[right];
    uint32_t k;
    if (!key(t, text + l->start, l->n, text + r->start, r->n, &k))
        return GARLIC_OK;
    return tokenizer_heap_push(heap, (tokenizer_bigram){k, left, right, l->n + r->n});
}

int tokenizer_merge_symbols(const tokenizer *t, const char *text, tokenizer_symbol *symbols,
                            size_t n, tokenizer_heap *heap, tokenizer_pair_key_fn key)
{
    heap->n = 0;
    for (size_t i = 1; i < n; i++)
        if (queue_pair(t, text, symbols, heap, key, (int32_t)i - 1, (int32_t)i) != GARLIC_OK)
            return GARLIC_ENOMEM;
    while (heap->n) {
        tokenizer_bigram b = tokenizer_heap_pop(heap);
        tokenizer_symbol *l = &symbols[b.left], *r = &symbols[b.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != b.size)
            continue; // one side changed since this pair was queued
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0)
            symbols[r->next].prev = b.left;
        if (queue_pair(t, text, symbols, heap, key, l->prev, b.left) != GARLIC_OK ||
            queue_pair(t, text, symbols, heap, key, b.left, l->next) != GARLIC_OK)
            return GARLIC_ENOMEM;
    }
    return GARLIC_OK;
}
