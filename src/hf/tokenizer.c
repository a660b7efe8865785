// SPDX-License-Identifier: MIT
// A Hugging Face folder's tokenizer as GGUF metadata: the vocabulary of tokenizer.json (model,
// added tokens, merges, normalizer, pre-tokenizer) turned into the tokenizer.ggml.* keys that
// llama.cpp's converter writes, so that garlic's tokenizer (src/tokenizer) and llama.cpp read
// a folder and its conversion alike. Byte-level BPE becomes "gpt2", its pre-tokenizer named by
// its regexes; BPE with byte fallback over "▁"-escaped text becomes SentencePiece ("llama")
// with scores that make score-ordered merging follow the merge list; WordPiece becomes
// "bert". The special tokens, BOS/EOS and chat templates of the companion files are read by
// tokenizer_config.c. What garlic would tokenize differently is refused, naming the file and
// the field.
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "base/alloc.h"
#include "base/buffer.h"
#include "base/file.h"
#include "hf/internal.h"

#define SPACE_MARK "\xe2\x96\x81" // U+2581, SentencePiece's space

// GPT-2's pattern, which a ByteLevel pre-tokenizer with use_regex applies.
#define RE_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"
#define RE_LLAMA3_HEAD "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
#define RE_LLAMA3_TAIL "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_O200K_UPPER "[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]"
#define RE_O200K_LOWER "[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]"
#define RE_O200K_CONTRACTION "(?i:'s|'t|'re|'ve|'m|'ll|'d)?"

// The pre-tokenizers garlic runs, spelled as tokenizer.json spells them: the Split regexes in
// order (GPT-2's pattern where a ByteLevel step applies it, \p{N} for a Digits step), and
// whether the model emits a pre-token that is a token whole (model.ignore_merges), which
// garlic ties to the pre-tokenizer's name.
typedef struct pre_pattern {
    const char *pre; // tokenizer.ggml.pre
    const char *regex[MAX_PRE_STEPS];
    bool ignore_merges;
} pre_pattern;

static const pre_pattern pre_patterns[] = {
    {"gpt-2", {RE_GPT2}, false},
    {"starcoder", {"\\p{N}", RE_GPT2}, false},
    {"llama-bpe", {RE_LLAMA3_HEAD "\\p{N}{1,3}" RE_LLAMA3_TAIL}, true},
    {"qwen2", {RE_LLAMA3_HEAD "\\p{N}" RE_LLAMA3_TAIL}, false},
    {"gpt-4o",
     {"[^\\r\\n\\p{L}\\p{N}]?" RE_O200K_UPPER "*" RE_O200K_LOWER "+" RE_O200K_CONTRACTION
      "|[^\\r\\n\\p{L}\\p{N}]?" RE_O200K_UPPER "+" RE_O200K_LOWER "*" RE_O200K_CONTRACTION
      "|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
     true},
    {"deepseek-coder",
     {"[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+",
      "[\xe4\xb8\x80-\xe9\xbe\xa5\xe0\xa0\x80-\xe4\xb8\x80\xea\xb0\x80-\xed\x9f\xbf]+", "\\p{N}"},
     false},
    {"deepseek-v3",
     {"\\p{N}{1,3}",
      "[\xe4\xb8\x80-\xe9\xbe\xa5\xe3\x81\x80-\xe3\x82\x9f\xe3\x82\xa0-\xe3\x83\xbf]+", // CJK, kana
      ("[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?"
       "[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+")},
     false},
};

// ---- small helpers ----

const cJSON *hf_json_member(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_IsObject(obj) ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
    return cJSON_IsNull(v) ? NULL : v;
}

const char *hf_shown(const char *s, char buf[HF_SHOWN])
{
    utf8_sanitize(s, strlen(s), buf, HF_SHOWN, true);
    return buf;
}

// The string member key of obj, or NULL when absent.
static const char *member_str(const cJSON *obj, const char *key)
{
    const cJSON *v = hf_json_member(obj, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

// A boolean member: dflt when absent, GARLIC_EFORMAT when of another type.
int hf_json_bool(const cJSON *obj, const char *key, bool dflt, bool *out, const char *file,
                 const char *where, garlic_error *err)
{
    const cJSON *v = hf_json_member(obj, key);
    *out = dflt;
    if (!v)
        return GARLIC_OK;
    if (!cJSON_IsBool(v))
        return garlic_error_set(err, GARLIC_EFORMAT, "%s: %s%s must be true or false", file, where,
                                key);
    *out = cJSON_IsTrue(v);
    return GARLIC_OK;
}

// A token id from JSON: an integer in [0, HF_MAX_VOCAB). Returns false otherwise.
bool hf_json_id(const cJSON *v, uint32_t *id)
{
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble < HF_MAX_VOCAB) ||
        v->valuedouble != floor(v->valuedouble))
        return false;
    *id = (uint32_t)v->valuedouble;
    return true;
}

// ---- the folder's files ----

static const char *const file_names[HF_FILE_COUNT] = {
    [HF_FILE_TOKENIZER] = "tokenizer.json",
    [HF_FILE_CONFIG] = "tokenizer_config.json",
    [HF_FILE_SPECIAL_MAP] = "special_tokens_map.json",
    [HF_FILE_GENERATION] = "generation_config.json",
    [HF_FILE_MODEL] = "config.json",
    [HF_FILE_CHAT_JSON] = "chat_template.json",
    [HF_FILE_CHAT_JINJA] = "chat_template.jinja",
};

// Names every file "dir/<file>" for messages.
static int name_files(hf_tokenizer_build *b, const char *dir, garlic_error *err)
{
    for (int f = 0; f < HF_FILE_COUNT; f++) {
        int n = snprintf(b->path[f], HF_PATH_MAX, "%s/%s", dir, file_names[f]);
        if (n < 0 || n >= HF_PATH_MAX)
            return garlic_error_set(err, GARLIC_EINVAL, "%.200s/%s: path too long", dir,
                                    file_names[f]);
    }
    return GARLIC_OK;
}

// Parses the texts of the JSON files that are there (tokenizer.json must be); keeps the
// text of chat_template.jinja (borrowed).
static int parse_files(hf_tokenizer_build *b, const char *const texts[HF_FILE_COUNT],
                       garlic_error *err)
{
    if (!texts[HF_FILE_TOKENIZER])
        return garlic_error_set(err, GARLIC_ENOTFOUND,
                                "%s: missing (garlic reads a folder's tokenizer from its "
                                "tokenizer.json)",
                                b->path[HF_FILE_TOKENIZER]);
    for (int f = 0; f < HF_FILE_COUNT; f++) {
        if (!texts[f] || f == HF_FILE_CHAT_JINJA)
            continue;
        // length + 1: the NUL after the text, so that anything after the JSON is refused
        b->json[f] = cJSON_ParseWithLengthOpts(texts[f], strlen(texts[f]) + 1, NULL, true);
        if (!cJSON_IsObject(b->json[f]))
            return garlic_error_set(err, GARLIC_EFORMAT, "%s: not a JSON object", b->path[f]);
    }
    b->jinja = texts[HF_FILE_CHAT_JINJA];
    return GARLIC_OK;
}

// Reads every file of the folder that exists into texts (garlic_malloc'd, NULL when absent).
static int read_files(const hf_tokenizer_build *b, char *texts[HF_FILE_COUNT], garlic_error *err)
{
    for (int f = 0; f < HF_FILE_COUNT; f++) {
        struct stat st;
        size_t len;
        if (stat(b->path[f], &st) != 0 && errno == ENOENT)
            continue;
        size_t max = f == HF_FILE_TOKENIZER ? HF_MAX_TOKENIZER_BYTES : HF_MAX_CONFIG_BYTES;
        int rc = garlic_file_read(b->path[f], max, &texts[f], &len, err);
        if (rc != GARLIC_OK)
            return rc;
        if (strlen(texts[f]) != len)
            return garlic_error_set(err, GARLIC_EFORMAT, "%s: holds a NUL byte", b->path[f]);
    }
    return GARLIC_OK;
}

// ---- the vocabulary ----

static uint64_t hash_text(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h ^ (h >> 29);
}

int32_t hf_token_find(const hf_tokenizer_build *b, const char *s, size_t n)
{
    for (uint64_t i = hash_text(s, n);; i++) {
        uint32_t v = b->slots[i & b->mask];
        if (v == 0)
            return -1;
        if (b->len[v - 1] == n && memcmp(b->text[v - 1], s, n) == 0)
            return (int32_t)(v - 1);
    }
}

// Builds the text -> id map; a later token with the same text replaces an earlier one (added
// tokens come after the model's, as in garlic's tokenizer).
static int build_map(hf_tokenizer_build *b)
{
    size_t cap = 16;
    while (cap < 2 * (size_t)b->n)
        cap *= 2;
    b->slots = garlic_calloc(cap, sizeof *b->slots);
    b->len = garlic_calloc(b->n, sizeof *b->len);
    if (!b->slots || !b->len)
        return GARLIC_ENOMEM;
    b->mask = (uint32_t)(cap - 1);
    for (uint32_t id = 0; id < b->n; id++) {
        size_t n = strlen(b->text[id]);
        b->len[id] = (uint32_t)n;
        for (uint64_t i = hash_text(b->text[id], n);; i++) {
            uint32_t *slot = &b->slots[i & b->mask];
            if (*slot == 0 ||
                (b->len[*slot - 1] == n && memcmp(b->text[*slot - 1], b->text[id], n) == 0)) {
                *slot = id + 1;
                break;
            }
        }
    }
    return GARLIC_OK;
}

// Gives token id the text s, owned by b (a copy is made).
static int set_owned_text(hf_tokenizer_build *b, uint32_t id, const char *s)
{
    char *copy = garlic_strndup(s, strlen(s));
    if (!copy)
        return GARLIC_ENOMEM;
    garlic_free(b->owned[id]);
    b->owned[id] = copy;
    b->text[id] = copy;
    return GARLIC_OK;
}

// The number of tokens: one past the largest id of model.vocab and added_tokens, or
// config.json's vocab_size (the model's embedding rows) when that is larger.
static int count_tokens(hf_tokenizer_build *b, const cJSON *vocab, const cJSON *added,
                        garlic_error *err)
{
    const char *file = b->path[HF_FILE_TOKENIZER];
    uint64_t n = 0, entries = 0;
    uint32_t id;
    for (const cJSON *e = vocab->child; e; e = e->next, entries++) {
        if (!hf_json_id(e, &id))
            return garlic_error_set(err, GARLIC_EFORMAT,
                                    "%s: model.vocab: entry %llu: the id must be an integer "
                                    "from 0 to %u",
                                    file, (unsigned long long)entries, HF_MAX_VOCAB - 1);
        if (id + 1ull > n)
            n = id + 1ull;
    }
    int k = 0;
    for (const cJSON *e = added ? added->child : NULL; e; e = e->next, k++) {
        if (!hf_json_id(hf_json_member(e, "id"), &id))
            return garlic_error_set(err, GARLIC_EFORMAT,
                                    "%s: added_tokens[%d].id must be an integer from 0 to %u", file,
                                    k, HF_MAX_VOCAB - 1);
        if (id + 1ull > n)
            n = id + 1ull;
    }
    if (n == 0)
        return garlic_error_set(err, GARLIC_EFORMAT, "%s: model.vocab is empty", file);
    const cJSON *cfg = b->json[HF_FILE_MODEL];
    const cJSON *size = hf_json_member(cfg, "vocab_size");
    if (!size)
        size = hf_json_member(hf_json_member(cfg, "text_config"), "vocab_size");
    if (size) {
        if (!hf_json_id(size, &id))
            return garlic_error_set(err, GARLIC_EFORMAT,
                                    "%s: vocab_size must be an integer from 1 to %u",
                                    b->path[HF_FILE_MODEL], HF_MAX_VOCAB - 1);
        if (id < n)
            return garlic_error_set(err, GARLIC_EFORMAT,
                                    "%s: vocab_size %u is smaller than the %llu tokens of %s",
                                    b->path[HF_FILE_MODEL], id, (unsigned long long)n, file);
        n = id;
    }
    // A real vocabulary lists nearly every id (padding rows of the embedding aside); a few
    // entries with huge ids would make every table of the vocabulary that large.
    uint64_t listed = entries + (uint64_t)k;
    if (n > listed + HF_MAX_VOCAB_HOLES)
        return garlic_error_set(err, GARLIC_EFORMAT,
                                "%s: the ids run to %llu but only %llu tokens are listed (at most "
                                "%d ids may have no token)",
                                file, (unsigned long long)n - 1, (unsigned long long)listed,
                                HF_MAX_VOCAB_HOLES);
    b->n = (uint32_t)n;
    return GARLIC_OK;
}

static int alloc_vocab(hf_tokenizer_build *b)
{
    b->text = garlic_calloc(b->n, sizeof *b->text);
    b->owned = garlic_calloc(b->n, sizeof *b->owned);
    b->type = garlic_calloc(b->n, sizeof *b->type);
    b->added = garlic_calloc(b->n, sizeof *b->added);
    b->score = garlic_calloc(b->n, sizeof *b->score);
    return b->text && b->owned && b->type && b->added && b->score ? GARLIC_OK : GARLIC_ENOMEM;
}

// Reads model.vocab ({"text": id}) and added_tokens ([{"id", "content", "special", ...}])
// into the token table: added tokens replace the model's text at their id and are CONTROL
// (special) or USER_DEFINED; ids nobody names become "[PAD<id>]" UNUSED, as llama.cpp's
// converter writes them.
static int read_vocab(hf_tokenizer_build *b, garlic_error *err)
{
    const char *file = b->path[HF_FILE_TOKENIZER];
    const cJSON *vocab = hf_json_member(b->model, "vocab");
    const cJSON *added = hf_json_member(b->json[HF_FILE_TOKENIZER], "added_tokens");
    if (!cJSON_IsObject(vocab))
        return garlic_error_set(err, GARLIC_EFORMAT,
                                "%s: model.vocab must be an object of token: id", file);
    if (added && !cJSON_IsArray(added))
        return garlic_error_set(err, GARLIC_EFORMAT, "%s: added_tokens must be a list", file);
    int rc = count_tokens(b, vocab, added, err);
    if (rc != GARLIC_OK)
        return rc;
    if (alloc_vocab(b) != GARLIC_OK)
        return garlic_error_set(err, GARLIC_ENOMEM, "%s: out of memory for %u tokens", file, b->n);
    char s1[HF_SHOWN], s2[HF_SHOWN];
    uint32_t id = 0;
    for (const cJSON *e = vocab->child; e; e = e->next) {
        hf_json_id(e, &id); // checked by count_tokens
        if (b->text[id])
            return garlic_error_set(err, GARLIC_EFORMAT,
                                    "%s: model.vocab: id %u is given to both '%s' and '%s'", file,
                                    id, hf_shown(b->text[id], s1), hf_shown(e->string, s2));
        b->text[id] = e->string;
        b->type[id] = TOKENIZER_TOKEN_NORMAL;
    }
    int k = 0;
    for (const cJSON *e = added ? added->child : NULL; e; e = e->next, k++) {
        const char *content = member_str(e, "content");
        bool special;
        hf_json_id(hf_json_member(e, "id"), &id);
        if (!content || !content[0])
            return garlic_error_set(err, GARLIC_EFORMAT,
                                    "%s: added_tokens[%d].content must be a non-empty string", file,
                                    k);
        if ((rc = hf_json_bool(e, "special", false, &special, file, "added_tokens[].", err)))
            return rc;
        b->text[id] = content;
        b->added[id] = true;
        b->type[id] = special ? TOKENIZER_TOKEN_CONTROL : TOKENIZER_TOKEN_USER_DEFINED;
    }
    for (id = 0; id < b->n; id++) {
        if (b->text[id])
            continue;
        char name[32];
        snprintf(name, sizeof name, "[PAD%u]", id);
        if (set_owned_text(b, id, name) != GARLIC_OK)
            return garlic_error_set(err, GARLIC_ENOMEM, "%s: out of memory", file);
        b->type[id] = TOKENIZER_TOKEN_UNUSED;
    }
    return GARLIC_OK;
}

// ---- merges ----

// The halves of merge i (a "left right" string or a [left, right] pair), pointing into the
// JSON tree. False when it is neither.
static bool merge_halves(const cJSON *m, const char **left, size_t *nl, const char **right,
                         size_t *nr)
{
    if (cJSON_IsString(m)) {
        const char *s = m->valuestring, *sp = strchr(s, ' ');
        if (!sp || strchr(sp + 1, ' '))
            return false;
        *left = s;
        *nl = (size_t)(sp - s);
        *right = sp + 1;
        *nr = strlen(sp + 1);
    } else {
        const cJSON *a = cJSON_GetArrayItem(m, 0), *c = cJSON_GetArrayItem(m, 1);
        if (!cJSON_IsArray(m) || cJSON_GetArraySize(m) != 2 || !cJSON_IsString(a) ||
            !cJSON_IsString(c))
            return false;
        *left = a->valuestring;
        *nl = strlen(a->valuestring);
        *right = c->valuestring;
        *nr = strlen(c->valuestring);
    }
    return *nl > 0 && *nr > 0;
}

// Checks every merge of model.merges: two tokens whose concatenation is a token (HF's BPE
// refuses anything else), each half free of spaces when the merges are written as
// "left right" strings. Calls fn(b, rank, left id, right id, merged id) for each.
typedef int (*merge_fn)(hf_tokenizer_build *b, uint32_t rank, int32_t left, int32_t right,
                        int32_t merged);

static int for_each_merge(hf_tokenizer_build *b, const cJSON *merges, bool spaceless, merge_fn fn,
                          garlic_error *err)
{
    const char *file = b->path[HF_FILE_TOKENIZER];
    garlic_buf both = {0};
    uint32_t rank = 0;
    int rc = GARLIC_OK;
    for (const cJSON *m = merges->child; m && rc == GARLIC_OK; m = m->next, rank++) {
        const char *l, *r;
        size_t nl, nr;
        if (!merge_halves(m, &l, &nl, &r, &nr) ||
            (spaceless && (memchr(l, ' ', nl) || memchr(r, ' ', nr)))) {
            rc = garlic_error_set(err, GARLIC_EFORMAT,
                                  "%s: model.merges[%u] is not a pair of tokens ('left right' "
                                  "or [left, right], no spaces inside)",
                                  file, rank);
            break;
        }
        garlic_buf_clear(&both);
        if (garlic_buf_append(&both, l, nl) != GARLIC_OK ||
            garlic_buf_append(&both, r, nr) != GARLIC_OK) {
            rc = garlic_error_set(err, GARLIC_ENOMEM, "%s: out of memory", file);
            break;
        }
        int32_t il = hf_token_find(b, l, nl), ir = hf_token_find(b, r, nr);
        int32_t im = hf_token_find(b, both.data, both.len);
        const char *missing = il < 0 ? l : ir < 0 ? r : im < 0 ? both.data : NULL;
        size_t n_missing = il < 0 ? nl : ir < 0 ? nr : both.len;
        if (missing) {
            char piece[HF_SHOWN];
            utf8_sanitize(missing, n_missing, piece, sizeof piece, true);
            rc = garlic_error_set(err, GARLIC_EFORMAT, "%s: model.merges[%u]: '%s' is not a token",
                                  file, rank, piece);
            break;
        }
        rc = fn(b, rank, il, ir, im);
    }
    garlic_buf_deinit(&both);
    return rc;
}

// Byte-level BPE keeps the merges as "left right" strings, one block for all.
static int keep_merge(hf_tokenizer_build *b, uint32_t rank, int32_t left, int32_t right,
                      int32_t merged)
{
    (void)merged;
    size_t nl = b->len[left], nr = b->len[right];
    if (garlic_buf_reserve(&b->merge_text, nl + nr + 2) != GARLIC_OK)
        return GARLIC_ENOMEM;
    b->merge_off[rank] = b->merge_text.len;
    garlic_buf_append(&b->merge_text, b->text[left], nl);
    garlic_buf_append(&b->merge_text, " ", 1);
    garlic_buf_append(&b->merge_text, b->text[right], nr + 1); // with the NUL
    return GARLIC_OK;
}

// Reads model.merges for byte-level BPE.
static int read_bpe_merges(hf_tokenizer_build *b, garlic_error *err)
{
    const char *file = b->path[HF_FILE_TOKENIZER];
    const cJSON *merges = hf_json_member(b->model, "merges");
    if (!cJSON_IsArray(merges))
        return garlic_error_set(err, GARLIC_EFORMAT, "%s: model.merges must be a list", file);
    int count = cJSON_GetArraySize(merges);
    b->n_merges = (uint32_t)count;
    b->merge_off = garlic_calloc(count ? (size_t)count : 1, sizeof *b->merge_off);
    if (!b->merge_off)
        return garlic_error_set(err, GARLIC_ENOMEM, "%s: out of memory for the merges", file);
    int rc = for_each_merge(b, merges, true, keep_merge, err);
    if (rc == GARLIC_ENOMEM)
        return garlic_error_set(err, rc, "%s: out of memory for the merges", file);
    return rc;
}

// ---- byte-level BPE: the pre-tokenizer by its regexes ----

// The steps of a byte-level pre-tokenizer, as regexes in order.
typedef struct pre_steps {
    const char *regex[MAX_PRE_STEPS];
    int n;
    bool byte_level; // a ByteLevel step was seen (it must be the last)
} pre_steps;

static int pre_step_push(pre_steps *s, const char *regex, const char *file, garlic_error *err)
{
    if (s->n == MAX_PRE_STEPS)
        return garlic_error_set(err, GARLIC_EUNSUPPORTED, "%s: pre_tokenizer: more than %d steps",
                                file, MAX_PRE_STEPS);
    s->regex[s->n++] = regex;
    return GARLIC_OK;
}

// Collects the steps of pre_tokenizer p (a Sequence is walked in order).
static int collect_pre_steps(const cJSON *p, int depth, const char *file, pre_steps *s,
                             garlic_error *err)
{
    const char *type = member_str(p, "type");
    if (!type || depth > MAX_DEPTH)
        return garlic_error_set(err, GARLIC_EFORMAT, "%s: pre_tokenizer: a step without a type",
                                file);
    if (s->byte_level)
        return garlic_error_set(err, GARLIC_EUNSUPPORTED,
                                "%s: pre_tokenizer: a step after ByteLevel", file);
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *list = hf_json_member(p, "pretokenizers");
        if (!cJSON_IsArray(list))
            return garlic_error_set(err, GARLIC_EFORMAT,
                                    "%s: pre_tokenizer: Sequence without pretokenizers", file);
        for (const cJSON *e = list->child; e; e = e->next) {
            int rc = collect_pre_steps(e, depth + 1, file, s, err);
            if (rc != GARLIC_OK)
                return rc;
        }
        return GARLIC_OK;
    }
    bool flag;
    int rc;
    if (strcmp(type, "Split") == 0) {
        const char *regex = member_str(hf_json_member(p, "pattern"), "Regex");
        const char *behavior = member_str(p, "behavior");
        if ((rc = hf_json_bool(p, "invert", false, &flag, file, "pre_tokenizer: Split.", err)))
            return rc;
        if (!regex || !behavior || strcmp(behavior, "Isolated") != 0 || flag)
            return garlic_error_set(err, GARLIC_EUNSUPPORTED,
                                    "%s: pre_tokenizer: only Split steps with a Regex pattern, "
                                    "behavior Isolated and invert false are supported",
                                    file);
        return pre_step_push(s, regex, file, err);
    }
    if (strcmp(type, "Digits") == 0) {
        if ((rc = hf_json_bool(p, "individual_digits", false, &flag, file, "pre_tokenizer: Digits.",
                               err)))
            return rc;
        return pre_step_push(s, flag ? "\\p{N}" : "\\p{N}+", file, err);
    }
    if (strcmp(type, "ByteLevel") == 0) {
        s->byte_level = true;
        if ((rc = hf_json_bool(p, "add_prefix_space", false, &flag, file,
                               "pre_tokenizer: ByteLevel.", err)))
            return rc;
        if (flag)
            return garlic_error_set(err, GARLIC_EUNSUPPORTED,
                                    "%s: pre_tokenizer: ByteLevel.add_prefix_space is not "
                                    "supported (garlic puts no space in front of byte-level text)",
                                    file);
        if ((rc = hf_json_bool(p, "use_regex", true, &flag, file, "pre_tokenizer: ByteLevel.",
                               err)))
            return rc;
        return flag ? pre_step_push(s, RE_GPT2, file, err) : GARLIC_OK;
    }
    char shown[HF_SHOWN];
    return garlic_error_set(err, GARLIC_EUNSUPPORTED,
                            "%s: pre_tokenizer: '%s' is not supported for byte-level BPE (garlic "
                            "knows Split, Digits and ByteLevel)",
                            file, hf_shown(type, shown));
}

// Names the pre-tokenizer of a byte-level BPE by its regexes (pre_patterns).
static int name_pre_tokenizer(hf_tokenizer_build *b, garlic_error *err)
{
    const char *file = b->path[HF_FILE_TOKENIZER];
    pre_steps s = {0};
    const cJSON *pre = hf_json_member(b->json[HF_FILE_TOKENIZER], "pre_tokenizer");
    int rc = pre ? collect_pre_steps(pre, 0, file, &s, err) : GARLIC_OK;
    if (rc != GARLIC_OK)
        return rc;
    if (!s.byte_level)
        return garlic_error_set(err, GARLIC_EUNSUPPORTED,
                                "%s: pre_tokenizer has no ByteLevel step, and model.byte_fallback "
                                "is false: neither byte-level BPE nor SentencePiece-style BPE",
                                file);
    bool ignore_merges;
    if ((rc = hf_json_bool(b->model, "ignore_merges", false, &ignore_merges, file, "model.", err)))
        return rc;
    for (size_t i = 0; i < sizeof pre_patterns / sizeof pre_patterns[0]; i++) {
        const pre_pattern *p = &pre_patterns[i];
        int k = 0;
        while (k < s.n && p->regex[k] && strcmp(p->regex[k], s.regex[k]) == 0)
            k++;
        if (k != s.n || (k < MAX_PRE_STEPS && p->regex[k]))
            continue;
        if (p->ignore_merges != ignore_merges)
            return garlic_error_set(err, GARLIC_EUNSUPPORTED,
                                    "%s: model.ignore_merges is %s, but garlic's '%s' "
                                    "pre-tokenizer %s merges for whole tokens",
                                    file, ignore_merges ? "true" : "false", p->pre,
                                    p->ignore_merges ? "skips" : "applies");
        b->pre = p->pre;
        return GARLIC_OK;
    }
    char shown[HF_SHOWN];
    return garlic_error_set(err, GARLIC_EUNSUPPORTED,
                            "%s: pre_tokenizer: the regex '%s'%s is not one garlic knows (known: "
                            "those of GPT-2, StarCoder, Llama 3, Qwen2/3, gpt-oss and DeepSeek-V3)",
                            file, s.n ? hf_shown(s.regex[0], shown) : "(none)",
                            s.n > 1 ? " and the ones after it" : "");
}

// The normalizer of a byte-level BPE: none, or NFC.
static int bpe_normalizer(hf_tokenizer_build *b, const cJSON *n, int depth, garlic_error *err)
{
    const char *file = b->path[HF_FILE_TOKENIZER];
    const char *type = member_str(n, "type");
    if (!n)
        return GARLIC_OK;
    if (!type || depth > MAX_DEPTH)
        return garlic_error_set(err, GARLIC_EFORMAT, "%s: normalizer: a step without a type", file);
    if (strcmp(type, "NFC") == 0) {
        b->nfc = true;
        return GARLIC_OK;
    }
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *list = hf_json_member(n, "normalizers");
        for (const cJSON *e = cJSON_IsArray(list) ? list->child : NULL; e; e = e->next) {
            int rc = bpe_normalizer(b, e, depth + 1, err);
            if (rc != GARLIC_OK)
                return rc;
        }
        return GARLIC_OK;
    }
    char shown[HF_SHOWN];
    return garlic_error_set(err, GARLIC_EUNSUPPORTED,
                            "%s: normalizer: '%s' is not supported for byte-level BPE (garlic "
                            "knows NFC)",
                            file, hf_shown(type, shown));
}

// ---- SentencePiece-style BPE (byte fallback over "▁"-escaped text) ----

// Takes the normalizer steps of SentencePiece-style BPE: Prepend("▁") (a space prefix),
// Replace(" " -> "▁") (the escape) and NFC.
static int spm_normalizer(hf_tokenizer_build *b, const cJSON *n, int depth, garlic_error *err)
{
    const char *file = b->path[HF_FILE_TOKENIZER];
    const char *type = member_str(n, "type");
    if (!n)
        return GARLIC_OK;
    if (!type || depth > MAX_DEPTH)
        return garlic_error_set(err, GARLIC_EFORMAT, "%s: normalizer: a step without a type", file);
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *list = hf_json_member(n, "normalizers");
        for (const cJSON *e = cJSON_IsArray(list) ? list->child : NULL; e; e = e->next) {
            int rc = spm_normalizer(b, e, depth + 1, err);
            if (rc != GARLIC_OK)
                return rc;
        }
        return GARLIC_OK;
    }
    const char *prepend = member_str(n, "prepend");
    const char *from = member_str(hf_json_member(n, "pattern"), "String");
    const char *to = member_str(n, "content");
    if (strcmp(type, "Prepend") == 0 && prepend && strcmp(prepend, SPACE_MARK) == 0) {
        b->space_prefix = true;
        return GARLIC_OK;
    }
    if (strcmp(type, "Replace") == 0 && from && to && strcmp(from, " ") == 0 &&
        strcmp(to, SPACE_MARK) == 0) {
        b->space_escape = true;
        return GARLIC_OK;
    }
    if (strcmp(type, "NFC") == 0) {
        b->nfc = true;
        return GARLIC_OK;
    }
    char shown[HF_SHOWN];
    return garlic_error_set(err, GARLIC_EUNSUPPORTED,
                            "%s: normalizer: '%s' is not supported for SentencePiece-style BPE "
                            "(garlic knows Prepend \"" SPACE_MARK
                            "\", Replace \" \" with \"" SPACE_MARK "\", and NFC)",
                            file, hf_shown(type, shown));
}

// True when some token has "▁" after its first character: then splitting the text at each
// "▁" (Metaspace's split) changes what merging can form.
static bool inner_space_marks(const hf_tokenizer_build *b)
{
    for (uint32_t id = 0; id < b->n; id++)
        if (b->len[id] > 3 && strstr(b->text[id] + 1, SPACE_MARK))
            return true;
    return false;
}

// Takes the pre-tokenizer of SentencePiece-style BPE: none, Metaspace (the escape and the
// space prefix), or a Split on " " after the escape has removed every space.
static int spm_pre_tokenizer(hf_tokenizer_build *b, const cJSON *p, int depth, garlic_error *err)
{
    const char *file = b->path[HF_FILE_TOKENIZER];
    const char *type = member_str(p, "type");
    if (!p)
        return GARLIC_OK;
    if (!type || depth > MAX_DEPTH)
        return garlic_error_set(err, GARLIC_EFORMAT, "%s: pre_tokenizer: a step without a type",
                                file);
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *list = hf_json_member(p, "pretokenizers");
        for (const cJSON *e = cJSON_IsArray(list) ? list->child : NULL; e; e = e->next) {
            int rc = spm_pre_tokenizer(b, e, depth + 1, err);
            if (rc != GARLIC_OK)
                return rc;
        }
        return GARLIC_OK;
    }
    if (strcmp(type, "Metaspace") == 0) {
        const char *mark = member_str(p, "replacement");
        const char *scheme = member_str(p, "prepend_scheme");
        bool prefix, split;
        int rc;
        if ((rc = hf_json_bool(p, "add_prefix_space", true, &prefix, file,
                               "pre_tokenizer: Metaspace.", err)) ||
            (rc = hf_json_bool(p, "split", true, &split, file, "pre_tokenizer: Metaspace.", err)))
            return rc;
        if (mark && strcmp(mark, SPACE_MARK) != 0)
            return garlic_error_set(
                err, GARLIC_EUNSUPPORTED,
                "%s: pre_tokenizer: Metaspace.replacement must be \"" SPACE_MARK "\"", file);
        if (split && inner_space_marks(b))
            return garlic_error_set(err, GARLIC_EUNSUPPORTED,
                                    "%s: pre_tokenizer: Metaspace.split is true and tokens hold "
                                    "\"" SPACE_MARK "\" inside: garlic merges across spaces",
                                    file);
        if (scheme && strcmp(scheme, "always") != 0 && strcmp(scheme, "first") != 0 &&
            strcmp(scheme, "never") != 0)
            return garlic_error_set(err, GARLIC_EUNSUPPORTED,
                                    "%s: pre_tokenizer: Metaspace.prepend_scheme must be always, "
                                    "first or never",
                                    file);
        b->space_escape = true;
        b->space_prefix = scheme ? strcmp(scheme, "never") != 0 : prefix;
        b->metaspace = !b->space_prefix              ? NULL
            : scheme && strcmp(scheme, "first") == 0 ? "first"
                                                     : "always";
        return GARLIC_OK;
    }
    const char *from = member_str(hf_json_member(p, "pattern"), "String");
    if (strcmp(type, "Split") == 0 && from && strcmp(from, " ") == 0 && b->space_escape)
        return GARLIC_OK; // no space is left to split at
    char shown[HF_SHOWN];
    return garlic_error_set(err, GARLIC_EUNSUPPORTED,
                            "%s: pre_tokenizer: '%s' is not supported for SentencePiece-style BPE "
                            "(garlic knows Metaspace)",
                            file, hf_shown(type, shown));
}

// SentencePiece merges the adjacent pair whose merged token scores highest; HF's BPE the
// listed pair of lowest rank. Scoring each token minus the rank of the first merge that makes
// it orders different tokens as the list does (tokenizer.json files converted from
// SentencePiece list merges by the merged token's score).
static int score_merge(hf_tokenizer_build *b, uint32_t rank, int32_t left, int32_t right,
                       int32_t merged)
{
    uint64_t key = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
    for (uint64_t i = key * 0x9e3779b97f4a7c15ull >> 20;; i++) { // the listed pairs
        uint64_t *slot = &b->pairs[i & b->pair_mask];
        if (*slot == key + 1)
            break;
        if (*slot == 0) {
            *slot = key + 1;
            break;
        }
    }
    if (!b->made[merged]) {
        b->made[merged] = true;
        b->score[merged] = -(float)rank;
    }
    return GARLIC_OK;
}

static bool pair_listed(const hf_tokenizer_build *b, int32_t left, int32_t right)
{
    uint64_t key = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
    for (uint64_t i = key * 0x9e3779b97f4a7c15ull >> 20;; i++) {
        uint64_t v = b->pairs[i & b->pair_mask];
        if (v == key + 1)
            return true;
        if (v == 0)
            return false;
    }
}

// Bytes of the character at s[0..n) as SentencePiece cuts text (by its lead byte, at most n).
static size_t char_len(const char *s, size_t n)
{
    static const uint8_t by_high_nibble[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    size_t k = by_high_nibble[(unsigned char)s[0] >> 4];
    return k < n ? k : n;
}

// Whether SentencePiece merging can hold text[0..n) as one symbol that is a token: one a merge
// makes (a single character that is a token counts too).
static bool reachable(const hf_tokenizer_build *b, const char *s, size_t n, int32_t *id)
{
    *id = hf_token_find(b, s, n);
    if (*id < 0)
        return false;
    return b->made[*id] || (n && n == char_len(s, n));
}

// SentencePiece merges any two adjacent symbols whose concatenation is a token; HF's BPE only
// listed pairs. Refuses a vocabulary where two tokens merging can hold would make a token
// without being a listed pair, since the two would then tokenize differently. (A character
// that is no token is a symbol too, which SentencePiece may merge where BPE falls back to
// bytes; vocabularies converted from SentencePiece hold every character of their pieces, so
// that case is left alone: folders written from small test vocabularies have it.)
static int check_unlisted_pairs(hf_tokenizer_build *b, garlic_error *err)
{
    for (uint32_t id = 0; id < b->n; id++) {
        const char *s = b->text[id];
        size_t n = b->len[id];
        if (b->type[id] == TOKENIZER_TOKEN_UNUSED)
            continue;
        for (size_t k = char_len(s, n); k < n; k += char_len(s + k, n - k)) {
            int32_t l, r;
            if (!reachable(b, s, k, &l) || !reachable(b, s + k, n - k, &r) || pair_listed(b, l, r))
                continue;
            char shown[HF_SHOWN];
            return garlic_error_set(err, GARLIC_EUNSUPPORTED,
                                    "%s: model.merges: token %u '%s' can be made from two tokens "
                                    "that are no listed merge (after %zu bytes): score-ordered "
                                    "merging would differ from BPE",
                                    b->path[HF_FILE_TOKENIZER], id, hf_shown(s, shown), k);
        }
    }
    return GARLIC_OK;
}

// Reads the merges of SentencePiece-style BPE into token scores and checks that score-ordered
// merging can follow them.
static int read_spm_merges(hf_tokenizer_build *b, garlic_error *err)
{
    const char *file = b->path[HF_FILE_TOKENIZER];
    const cJSON *merges = hf_json_member(b->model, "merges");
    if (!cJSON_IsArray(merges))
        return garlic_error_set(err, GARLIC_EFORMAT, "%s: model.merges must be a list", file);
    size_t count = (size_t)cJSON_GetArraySize(merges), cap = 16;
    while (cap < 2 * count)
        cap *= 2;
    b->pairs = garlic_calloc(cap, sizeof *b->pairs);
    b->made = garlic_calloc(b->n, sizeof *b->made);
    if (!b->pairs || !b->made)
        return garlic_error_set(err, GARLIC_ENOMEM, "%s: out of memory for the merges", file);
    b->pair_mask = cap - 1;
    int rc = for_each_merge(b, merges, false, score_merge, err);
    return rc == GARLIC_OK ? check_unlisted_pairs(b, err) : rc;
}

// Byte tokens "<0xNN>" of the model's vocabulary.
static void mark_byte_tokens(hf_tokenizer_build *b)
{
    static const char hex[] = "0123456789ABCDEF";
    for (int v = 0; v < 256; v++) {
        char name[7] = {'<', '0', 'x', hex[v >> 4], hex[v & 15], '>', 0};
        int32_t id = hf_token_find(b, name, 6);
        if (id >= 0 && !b->added[id])
            b->type[id] = TOKENIZER_TOKEN_BYTE;
    }
}

// SentencePiece-style BPE: byte fallback, "▁" for spaces, merges as scores.
static int read_spm(hf_tokenizer_build *b, garlic_error *err)
{
    const char *file = b->path[HF_FILE_TOKENIZER];
    const cJSON *root = b->json[HF_FILE_TOKENIZER];
    bool ignore;
    int rc = hf_json_bool(b->model, "ignore_merges", false, &ignore, file, "model.", err);
    if (rc == GARLIC_OK && ignore)
        rc = garlic_error_set(err, GARLIC_EUNSUPPORTED,
                              "%s: model.ignore_merges with byte_fallback is not supported", file);
    if (rc == GARLIC_OK)
        rc = spm_normalizer(b, hf_json_member(root, "normalizer"), 0, err);
    if (rc == GARLIC_OK)
        rc = spm_pre_tokenizer(b, hf_json_member(root, "pre_tokenizer"), 0, err);
    if (rc != GARLIC_OK)
        return rc;
    if (!b->space_escape)
        return garlic_error_set(err, GARLIC_EUNSUPPORTED,
                                "%s: normalizer: spaces are not replaced by \"" SPACE_MARK
                                "\" (a Replace normalizer or a Metaspace pre-tokenizer), as "
                                "SentencePiece-style BPE needs",
                                file);
    mark_byte_tokens(b);
    return read_spm_merges(b, err);
}

// ---- WordPiece ----

// WordPiece as garlic's "bert" runs it: BERT's uncased normalizer and pre-tokenizer, "##"
// continuations, words of at most 100 characters. Tokens are rewritten as llama.cpp's converter writes
// them: "##x" -> "x", a word-initial "x" -> "▁x"; added tokens stay as they are.
static int read_wordpiece(hf_tokenizer_build *b, garlic_error *err)
{
    const char *file = b->path[HF_FILE_TOKENIZER];
    const cJSON *root = b->json[HF_FILE_TOKENIZER];
    const cJSON *norm = hf_json_member(root, "normalizer");
    const char *prefix = member_str(b->model, "continuing_subword_prefix");
    const char *pre = member_str(hf_json_member(root, "pre_tokenizer"), "type");
    bool lowercase = false, chinese = false, clean = false, strip = true;
    const cJSON *strip_field = hf_json_member(norm, "strip_accents");
    int rc;
    const cJSON *max_chars = hf_json_member(b->model, "max_input_chars_per_word");
    if (prefix && strcmp(prefix, "##") != 0)
        return garlic_error_set(err, GARLIC_EUNSUPPORTED,
                                "%s: model.continuing_subword_prefix must be \"##\"", file);
    if (max_chars && !(cJSON_IsNumber(max_chars) && max_chars->valuedouble == 100))
        return garlic_error_set(err, GARLIC_EUNSUPPORTED,
                                "%s: model.max_input_chars_per_word must be 100 (BERT's)", file);
    if (!pre || strcmp(pre, "BertPreTokenizer") != 0)
        return garlic_error_set(err, GARLIC_EUNSUPPORTED,
                                "%s: pre_tokenizer must be BertPreTokenizer for WordPiece", file);
    const char *ntype = member_str(norm, "type");
    if (!ntype || strcmp(ntype, "BertNormalizer") != 0)
        return garlic_error_set(err, GARLIC_EUNSUPPORTED,
                                "%s: normalizer must be BertNormalizer for WordPiece", file);
    if ((rc = hf_json_bool(norm, "lowercase", true, &lowercase, file, "normalizer.", err)) ||
        (rc = hf_json_bool(norm, "handle_chinese_chars", true, &chinese, file, "normalizer.",
                           err)) ||
        (rc = hf_json_bool(norm, "clean_text", true, &clean, file, "normalizer.", err)) ||
        (strip_field &&
         (rc = hf_json_bool(norm, "strip_accents", true, &strip, file, "normalizer.", err))))
        return rc;
    if (!lowercase || !chinese || !clean || !strip)
        return garlic_error_set(err, GARLIC_EUNSUPPORTED,
                                "%s: normalizer: garlic's WordPiece lowercases, strips accents, "
                                "cleans text and splits CJK characters; this BertNormalizer "
                                "turns one of them off",
                                file);
    garlic_buf word = {0};
    for (uint32_t id = 0; id < b->n && rc == GARLIC_OK; id++) {
        if (b->added[id] || b->type[id] != TOKENIZER_TOKEN_NORMAL)
            continue;
        const char *s = b->text[id];
        garlic_buf_clear(&word);
        bool cont = strncmp(s, "##", 2) == 0;
        if ((!cont && garlic_buf_append_str(&word, SPACE_MARK) != GARLIC_OK) ||
            garlic_buf_append_str(&word, cont ? s + 2 : s) != GARLIC_OK ||
            set_owned_text(b, id, word.data ? word.data : "") != GARLIC_OK)
            rc = garlic_error_set(err, GARLIC_ENOMEM, "%s: out of memory", file);
    }
    garlic_buf_deinit(&word);
    return rc;
}

// ---- the whole ----

// Which of garlic's algorithms the model is, from model.type (or, in files without one, the
// fields present).
static int read_kind(hf_tokenizer_build *b, garlic_error *err)
{
    const char *file = b->path[HF_FILE_TOKENIZER];
    b->model = hf_json_member(b->json[HF_FILE_TOKENIZER], "model");
    if (!cJSON_IsObject(b->model))
        return garlic_error_set(err, GARLIC_EFORMAT, "%s: model is missing", file);
    const char *type = member_str(b->model, "type");
    if (!type)
        type = hf_json_member(b->model, "merges") ? "BPE" : "WordPiece";
    bool fallback;
    int rc = hf_json_bool(b->model, "byte_fallback", false, &fallback, file, "model.", err);
    if (rc != GARLIC_OK)
        return rc;
    if (strcmp(type, "WordPiece") == 0) {
        b->kind = TOKENIZER_KIND_WPM;
        return GARLIC_OK;
    }
    if (strcmp(type, "BPE") == 0) {
        const cJSON *dropout = hf_json_member(b->model, "dropout");
        const char *cont = member_str(b->model, "continuing_subword_prefix");
        const char *suffix = member_str(b->model, "end_of_word_suffix");
        if (dropout && !(cJSON_IsNumber(dropout) && dropout->valuedouble == 0))
            return garlic_error_set(err, GARLIC_EUNSUPPORTED,
                                    "%s: model.dropout is not supported (tokens would be random)",
                                    file);
        if ((cont && cont[0]) || (suffix && suffix[0]))
            return garlic_error_set(err, GARLIC_EUNSUPPORTED,
                                    "%s: model.continuing_subword_prefix and end_of_word_suffix "
                                    "must be empty for BPE",
                                    file);
        b->kind = fallback ? TOKENIZER_KIND_SPM : TOKENIZER_KIND_BPE;
        return GARLIC_OK;
    }
    char shown[HF_SHOWN];
    return garlic_error_set(err, GARLIC_EUNSUPPORTED,
                            "%s: model.type '%s' is not supported (garlic knows BPE and "
                            "WordPiece)",
                            file, hf_shown(type, shown));
}

// The unknown token of model.unk_token becomes UNKNOWN.
static int read_unknown(hf_tokenizer_build *b, garlic_error *err)
{
    const cJSON *unk = hf_json_member(b->model, "unk_token");
    if (!unk)
        return GARLIC_OK;
    char shown[HF_SHOWN];
    int32_t id = cJSON_IsString(unk) ? hf_token_find(b, unk->valuestring, strlen(unk->valuestring))
                                     : -1;
    if (id < 0)
        return garlic_error_set(err, GARLIC_EFORMAT, "%s: model.unk_token '%s' is not a token",
                                b->path[HF_FILE_TOKENIZER],
                                cJSON_IsString(unk) ? hf_shown(unk->valuestring, shown) : "?");
    b->type[id] = TOKENIZER_TOKEN_UNKNOWN;
    b->special[HF_ROLE_UNK] = id;
    return GARLIC_OK;
}

// Reads the vocabulary and the algorithm's settings of tokenizer.json.
static int read_tokenizer_json(hf_tokenizer_build *b, garlic_error *err)
{
    const cJSON *root = b->json[HF_FILE_TOKENIZER];
    int rc = read_kind(b, err);
    if (rc == GARLIC_OK)
        rc = read_vocab(b, err);
    if (rc == GARLIC_OK && b->kind == TOKENIZER_KIND_WPM)
        rc = read_wordpiece(b, err);
    if (rc == GARLIC_OK && build_map(b) != GARLIC_OK)
        rc = garlic_error_set(err, GARLIC_ENOMEM, "%s: out of memory for the token map",
                              b->path[HF_FILE_TOKENIZER]);
    if (rc == GARLIC_OK)
        rc = read_unknown(b, err);
    if (rc != GARLIC_OK)
        return rc;
    if (b->kind == TOKENIZER_KIND_SPM)
        return read_spm(b, err);
    if (b->kind == TOKENIZER_KIND_BPE) {
        rc = bpe_normalizer(b, hf_json_member(root, "normalizer"), 0, err);
        if (rc == GARLIC_OK)
            rc = name_pre_tokenizer(b, err);
        return rc == GARLIC_OK ? read_bpe_merges(b, err) : rc;
    }
    return GARLIC_OK;
}

// Writes the vocabulary keys: model, pre, tokens, types, scores or merges.
static int write_vocab(const hf_tokenizer_build *b, gguf_writer *w)
{
    static const char *const models[TOKENIZER_KIND_COUNT] = {[TOKENIZER_KIND_SPM] = "llama",
                                                             [TOKENIZER_KIND_BPE] = "gpt2",
                                                             [TOKENIZER_KIND_WPM] = "bert"};
    int32_t *types = garlic_calloc(b->n, sizeof *types);
    const char **merges = garlic_calloc(b->n_merges ? b->n_merges : 1, sizeof *merges);
    int rc = types && merges ? GARLIC_OK : GARLIC_ENOMEM;
    for (uint32_t i = 0; rc == GARLIC_OK && i < b->n; i++)
        types[i] = b->type[i];
    for (uint32_t i = 0; rc == GARLIC_OK && i < b->n_merges; i++)
        merges[i] = b->merge_text.data + b->merge_off[i];
    if (rc == GARLIC_OK)
        rc = gguf_writer_set_str(w, "tokenizer.ggml.model", models[b->kind]);
    if (rc == GARLIC_OK)
        rc = gguf_writer_set_str(w, "tokenizer.ggml.pre", b->pre ? b->pre : "default");
    if (rc == GARLIC_OK)
        rc = gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", b->text, b->n);
    if (rc == GARLIC_OK)
        rc = gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, types, b->n);
    if (rc == GARLIC_OK && b->kind == TOKENIZER_KIND_SPM)
        rc = gguf_writer_set_arr(w, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, b->score, b->n);
    if (rc == GARLIC_OK && b->kind == TOKENIZER_KIND_SPM)
        rc = gguf_writer_set_bool(w, "tokenizer.ggml.add_space_prefix", b->space_prefix);
    if (rc == GARLIC_OK && b->kind == TOKENIZER_KIND_BPE)
        rc = gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", merges, b->n_merges);
    if (rc == GARLIC_OK && b->kind == TOKENIZER_KIND_SPM && b->metaspace)
        rc = gguf_writer_set_str(w, "tokenizer.ggml.metaspace_prepend", b->metaspace);
    if (rc == GARLIC_OK && b->nfc)
        rc = gguf_writer_set_bool(w, "tokenizer.ggml.normalizer.nfc", true);
    // The added tokens' "special" flags say which are matched in text only when special
    // tokens are parsed: the tokenizer keeps them, without llama.cpp's promotions by text.
    if (rc == GARLIC_OK)
        rc = gguf_writer_set_bool(w, "tokenizer.ggml.token_type_final", true);
    garlic_free(types);
    garlic_free(merges);
    return rc;
}

static void build_deinit(hf_tokenizer_build *b)
{
    for (int f = 0; f < HF_FILE_COUNT; f++)
        cJSON_Delete(b->json[f]);
    for (uint32_t i = 0; b->owned && i < b->n; i++)
        garlic_free(b->owned[i]);
    garlic_free(b->owned);
    garlic_free(b->text);
    garlic_free(b->len);
    garlic_free(b->type);
    garlic_free(b->added);
    garlic_free(b->score);
    garlic_free(b->made);
    garlic_free(b->slots);
    garlic_free(b->pairs);
    garlic_free(b->merge_off);
    garlic_buf_deinit(&b->merge_text);
}

// Everything after the files are named and their texts are at hand.
static int convert(hf_tokenizer_build *b, const char *const texts[HF_FILE_COUNT], gguf_writer *w,
                   garlic_error *err)
{
    for (int r = 0; r < HF_ROLE_COUNT; r++)
        b->special[r] = -1;
    int rc = parse_files(b, texts, err);
    if (rc == GARLIC_OK)
        rc = read_tokenizer_json(b, err);
    if (rc == GARLIC_OK)
        rc = hf_tokenizer_specials(b, err);
    if (rc == GARLIC_OK && write_vocab(b, w) != GARLIC_OK)
        rc = garlic_error_set(err, GARLIC_ENOMEM, "%s: out of memory", b->path[HF_FILE_TOKENIZER]);
    if (rc == GARLIC_OK)
        rc = hf_tokenizer_write_config(b, w, err);
    return rc;
}

int hf_tokenizer_metadata_texts(const char *dir, const char *const texts[HF_FILE_COUNT],
                                gguf_writer *w, garlic_error *err)
{
    hf_tokenizer_build b = {0};
    int rc = name_files(&b, dir, err);
    if (rc == GARLIC_OK)
        rc = convert(&b, texts, w, err);
    build_deinit(&b);
    return rc;
}

int hf_tokenizer_metadata(const char *dir, gguf_writer *w, garlic_error *err)
{
    hf_tokenizer_build b = {0};
    char *texts[HF_FILE_COUNT] = {0};
    int rc = name_files(&b, dir, err);
    if (rc == GARLIC_OK)
        rc = read_files(&b, texts, err);
    if (rc == GARLIC_OK)
        rc = convert(&b, (const char *const *)texts, w, err);
    build_deinit(&b);
    for (int f = 0; f < HF_FILE_COUNT; f++)
        garlic_free(texts[f]);
    return rc;
}

gguf_file *hf_tokenizer_open(const char *dir, garlic_error *err)
{
    char name[HF_PATH_MAX];
    int n = snprintf(name, sizeof name, "%s/tokenizer.json", dir);
    if (n < 0 || n >= (int)sizeof name) {
        garlic_error_set(err, GARLIC_EINVAL, "%.200s: path too long", dir);
        return NULL;
    }
    gguf_writer *w = gguf_writer_new();
    if (!w) {
        garlic_error_set(err, GARLIC_ENOMEM, "%s: out of memory", name);
        return NULL;
    }
    gguf_file *f = NULL;
    if (hf_tokenizer_metadata(dir, w, err) == GARLIC_OK)
        f = gguf_writer_open(w, name, NULL, NULL, err);
    gguf_writer_free(w);
    return f;
}
