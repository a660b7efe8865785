// SPDX-License-Identifier: MIT
// Byte-level BPE (tokenizer.ggml.model "gpt2"). A fragment of text is first cut into
// pre-tokens by the regexes of its `pre` value (PCRE2, UTF + Unicode properties, JIT): each
// regex cuts every piece left by the previous one into its matches and the gaps between them.
// Each pre-token's bytes are then spelled in the 256-character byte alphabet and merged pair
// by pair, lowest merge rank first (leftmost on ties), until no listed merge applies.
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/buffer.h"
#include "base/utf8.h"
#include "tokenizer/internal.h"

// The regexes below are written as in the models' tokenizer.json files. `\s` and `\S` are
// rewritten at compile time to the Unicode White_Space set (PCRE2's own \s also matches
// U+180E, which stopped being a space in Unicode 6.3).
#define RE_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"
#define RE_LLAMA3_HEAD                                                                             \
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
#define RE_LLAMA3_TAIL "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_CJK "[\\x{4E00}-\\x{9FA5}\\x{800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+"

// Letters with case (Lu, Ll, Lt), as listed by DeepSeek LLM's pre-tokenizer.
#define RE_DEEPSEEK_CASED                                                                          \
    "A-Za-z\\x{B5}\\x{C0}-\\x{D6}\\x{D8}-\\x{F6}\\x{F8}-\\x{1BA}\\x{1BC}-\\x{1BF}\\x{1C4}-"        \
    "\\x{293}\\x{295}-\\x{2AF}\\x{370}-\\x{373}\\x{376}\\x{377}\\x{37B}-\\x{37D}\\x{37F}"          \
    "\\x{386}\\x{388}-\\x{38A}\\x{38C}\\x{38E}-\\x{3A1}\\x{3A3}-\\x{3F5}\\x{3F7}-\\x{481}"         \
    "\\x{48A}-\\x{52F}\\x{531}-\\x{556}\\x{10A0}-\\x{10C5}\\x{13A0}-\\x{13F5}\\x{13F8}-"           \
    "\\x{13FD}\\x{1C90}-\\x{1CBA}\\x{1CBD}-\\x{1CBF}\\x{1D00}-\\x{1D2B}\\x{1D6B}-\\x{1D77}"        \
    "\\x{1D79}-\\x{1D9A}\\x{1E00}-\\x{1F15}\\x{1F18}-\\x{1F1D}\\x{1F20}-\\x{1F45}\\x{1F48}-"       \
    "\\x{1F4D}\\x{1F50}-\\x{1F57}\\x{1F59}\\x{1F5B}\\x{1F5D}\\x{1F5F}-\\x{1F7D}\\x{1F80}-"         \
    "\\x{1FB4}\\x{1FB6}-\\x{1FBC}\\x{1FBE}\\x{1FC2}-\\x{1FC4}\\x{1FC6}-\\x{1FCC}\\x{1FD0}-"        \
    "\\x{1FD3}\\x{1FD6}-\\x{1FDB}\\x{1FE0}-\\x{1FEC}\\x{1FF2}-\\x{1FF4}\\x{1FF6}-\\x{1FFC}"        \
    "\\x{2102}\\x{2107}\\x{210A}-\\x{2113}\\x{2115}\\x{2119}-\\x{211D}\\x{2124}\\x{2126}"          \
    "\\x{2128}\\x{212A}-\\x{212D}\\x{212F}-\\x{2134}\\x{2139}\\x{213C}-\\x{213F}\\x{2145}-"        \
    "\\x{2149}\\x{214E}\\x{2183}\\x{2184}\\x{2C00}-\\x{2C7B}\\x{2C7E}-\\x{2CE4}\\x{2CEB}-"         \
    "\\x{2CEE}\\x{2CF2}\\x{2CF3}\\x{A640}-\\x{A66D}\\x{A680}-\\x{A69B}\\x{A722}-\\x{A76F}"         \
    "\\x{A771}-\\x{A787}\\x{A78B}-\\x{A78E}\\x{AB70}-\\x{ABBF}\\x{FB00}-\\x{FB06}\\x{FB13}-"       \
    "\\x{FB17}\\x{FF21}-\\x{FF3A}\\x{FF41}-\\x{FF5A}\\x{10400}-\\x{1044F}\\x{104B0}-"              \
    "\\x{104D3}\\x{104D8}-\\x{104FB}\\x{10C80}-\\x{10CB2}\\x{10CC0}-\\x{10CF2}\\x{118A0}-"         \
    "\\x{118DF}\\x{1E900}-\\x{1E943}"

// gpt-oss (o200k): cased words with their contraction, digits in threes, punctuation runs
// taking trailing newlines and slashes. Written as in its tokenizer.json; PCRE2 takes the
// (?i:...) groups as they are.
#define RE_O200K_UPPER "[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]"
#define RE_O200K_LOWER "[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]"
#define RE_O200K_CONTRACTION "(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
#define RE_O200K_SPACES "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

// Kimi-K2's tiktoken pattern is o200k's with Han runs first and Han taken out of the letter
// classes. Its `[X&&[^\p{Han}]]` (class intersection, which PCRE2 lacks) is written as
// `(?:(?!\p{Han})X)`; \p{Han} is Script_Extensions=Han in PCRE2 10.40+ as in Rust's regex.
#define RE_KIMI_UPPER "(?:(?!\\p{Han})" RE_O200K_UPPER ")"
#define RE_KIMI_LOWER "(?:(?!\\p{Han})" RE_O200K_LOWER ")"

static const char *const re_default[] = {"[\\p{P}\\$\\+<=>\\^~\\|]+", RE_GPT2, "\\p{N}+",
                                         "[0-9][0-9][0-9]"};
static const char *const re_gpt2[] = {RE_GPT2};
static const char *const re_llama3[] = {RE_LLAMA3_HEAD "\\p{N}{1,3}" RE_LLAMA3_TAIL};
static const char *const re_qwen2[] = {RE_LLAMA3_HEAD "\\p{N}" RE_LLAMA3_TAIL};
static const char *const re_falcon[] = {"[\\p{P}\\$\\+<=>\\^~\\|`]+", RE_GPT2, "[0-9][0-9][0-9]"};
static const char *const re_starcoder[] = {"\\p{N}", RE_GPT2};
static const char *const re_deepseek_coder[] = {"[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", RE_CJK,
                                                "\\p{N}"};
static const char *const re_deepseek_llm[] = {
    "[\r\n]",
    "\\s?[" RE_DEEPSEEK_CASED "]+",
    "\\s?[!-/:-~\\x{FF01}-\\x{FF0F}\\x{FF1A}-\\x{FF5E}\\x{2018}-\\x{201F}\\x{3000}-\\x{3002}]+",
    "\\s+$",
    RE_CJK,
    "\\p{N}+",
};

static const char *const re_gpt4o[] = {
    "[^\\r\\n\\p{L}\\p{N}]?" RE_O200K_UPPER "*" RE_O200K_LOWER "+" RE_O200K_CONTRACTION
    "|[^\\r\\n\\p{L}\\p{N}]?" RE_O200K_UPPER "+" RE_O200K_LOWER "*" RE_O200K_CONTRACTION
    "|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*" RE_O200K_SPACES};
static const char *const re_kimi_k2[] = {
    "\\p{Han}+"
    "|[^\\r\\n\\p{L}\\p{N}]?" RE_KIMI_UPPER "*" RE_KIMI_LOWER "+" RE_O200K_CONTRACTION
    "|[^\\r\\n\\p{L}\\p{N}]?" RE_KIMI_UPPER "+" RE_KIMI_LOWER "*" RE_O200K_CONTRACTION
    "|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*" RE_O200K_SPACES};
// DeepSeek-V3: digits in threes, then CJK and kana runs, then words (a punctuation mark may
// lead ASCII letters), punctuation and symbol runs, newlines and spaces.
static const char *const re_deepseek_v3[] = {
    "\\p{N}{1,3}",
    "[\\x{4E00}-\\x{9FA5}\\x{3040}-\\x{309F}\\x{30A0}-\\x{30FF}]+",
    ("[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\\r\\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+|"
     " ?[\\p{P}\\p{S}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"),
};

#define REGEXES(list) list, sizeof list / sizeof list[0]

// One row per tokenizer.ggml.pre value garlic knows (names are '|'-separated aliases).
typedef struct pre_entry {
    const char *names;
    const char *const *regex;
    int n_regex;
    bool add_bos;       // default for tokenizer.ggml.add_bos_token
    bool ignore_merges; // a pre-token that is already a token is emitted whole
} pre_entry;

static const pre_entry pre_table[] = {
    {"default", REGEXES(re_default), false, false},
    {"gpt-2|phi-2|gpt-neox|olmo|jais", REGEXES(re_gpt2), false, false},
    {"mpt", REGEXES(re_gpt2), false, false},
    {"llama-bpe|llama3|llama-v3|dbrx|smaug-bpe", REGEXES(re_llama3), true, true},
    {"qwen2|stablelm2", REGEXES(re_qwen2), false, false},
    {"deepseek-llm", REGEXES(re_deepseek_llm), false, false},
    {"deepseek-coder", REGEXES(re_deepseek_coder), false, false},
    {"falcon", REGEXES(re_falcon), false, false},
    {"starcoder|refact|command-r|smollm|codeshell|exaone", REGEXES(re_starcoder), false, false},
    // tokenizer.json and tiktoken emit a pre-token that is a token whole (llama.cpp merges it)
    {"gpt-4o", REGEXES(re_gpt4o), false, true},
    {"kimi-k2", REGEXES(re_kimi_k2), false, true},
    {"deepseek-v3", REGEXES(re_deepseek_v3), false, false},
};

size_t tokenizer_bpe_byte_char(unsigned char b, char *dst)
{
    uint32_t cp = b;
    if (b <= 32)
        cp = 256 + b;
    else if (b >= 127 && b <= 160)
        cp = 289 + (b - 127u);
    else if (b == 173)
        cp = 323;
    if (cp < 0x80) {
        dst[0] = (char)cp;
        return 1;
    }
    dst[0] = (char)(0xc0 | cp >> 6);
    dst[1] = (char)(0x80 | (cp & 0x3f));
    return 2;
}

int tokenizer_bpe_char_byte(uint32_t cp)
{
    if ((cp >= 33 && cp <= 126) || (cp >= 161 && cp <= 172) || (cp >= 174 && cp <= 255))
        return (int)cp;
    if (cp >= 256 && cp <= 288)
        return (int)(cp - 256);
    if (cp >= 289 && cp <= 322)
        return (int)(cp - 289 + 127);
    if (cp == 323)
        return 173;
    return -1;
}

// True when name is one of the '|'-separated aliases.
static bool name_in(const char *names, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = names; *p;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && memcmp(p, name, n) == 0)
            return true;
        if (!bar)
            break;
        p = bar + 1;
    }
    return false;
}

// Rewrites \s and \S into explicit White_Space classes. dst must hold 20x the source.
static void expand_pattern(const char *src, char *dst)
{
    static const char ws[] = "\\t-\\r\\x{85}\\p{Z}";
    bool in_class = false;
    size_t o = 0;
    for (size_t i = 0; src[i]; i++) {
        char c = src[i];
        if (c == '\\' && src[i + 1]) {
            char e = src[++i];
            if (e == 's' || e == 'S') {
                o += (size_t)sprintf(dst + o, "%s%s%s",
                                     in_class       ? ""
                                         : e == 's' ? "["
                                                    : "[^",
                                     ws, in_class ? "" : "]");
            } else {
                dst[o++] = '\\';
                dst[o++] = e;
            }
            continue;
        }
        if (c == '[' && !in_class)
            in_class = true;
        else if (c == ']' && in_class)
            in_class = false;
        dst[o++] = c;
    }
    dst[o] = '\0';
}

// Compiles one pattern (after \s expansion) with UTF, UCP and JIT.
static int compile_one(tokenizer *t, const char *pattern, int index, const char *path,
                       garlic_error *err)
{
    char *expanded = garlic_malloc(strlen(pattern) * 20 + 1);
    pcre2_compile_context *cc = pcre2_compile_context_create(t->pcre_context);
    if (!expanded || !cc) {
        garlic_free(expanded);
        pcre2_compile_context_free(cc);
        return garlic_error_set(err, GARLIC_ENOMEM, "out of memory compiling a regex");
    }
    expand_pattern(pattern, expanded);
    int code;
    PCRE2_SIZE at;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)expanded, PCRE2_ZERO_TERMINATED,
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY, &code, &at, cc);
    garlic_free(expanded);
    pcre2_compile_context_free(cc);
    if (!re) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(code, msg, sizeof msg);
        return garlic_error_set(err, code == PCRE2_ERROR_NOMEMORY ? GARLIC_ENOMEM : GARLIC_EINVAL,
                                "%s: pre-tokenizer '%s': regex %d: %s at %zu", path, t->pre_name,
                                index, (const char *)msg, (size_t)at);
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); // without JIT, matching is slower but the same
    t->regex[index] = re;
    return GARLIC_OK;
}

int tokenizer_bpe_pre_setup(tokenizer *t, const char *path, garlic_error *err)
{
    const char *pre = t->pre_name;
    const pre_entry *entry = NULL;
    for (size_t i = 0; i < sizeof pre_table / sizeof pre_table[0]; i++)
        if (name_in(pre_table[i].names, pre)) {
            entry = &pre_table[i];
            t->pre = (int)i;
        }
    if (!entry)
        return garlic_error_set(err, GARLIC_EUNSUPPORTED,
                                "%s: key 'tokenizer.ggml.pre': unknown pre-tokenizer '%s'", path,
                                pre);
    t->add_bos = entry->add_bos;
    t->ignore_merges = entry->ignore_merges;
    t->pcre_context = tokenizer_pcre_context_new();
    if (!t->pcre_context)
        return garlic_error_set(err, GARLIC_ENOMEM, "out of memory for the regex context");
    for (int i = 0; i < entry->n_regex; i++) {
        int rc = compile_one(t, entry->regex[i], i, path, err);
        if (rc != GARLIC_OK)
            return rc;
        t->n_regex = i + 1;
    }
    return GARLIC_OK;
}

// A piece of the text being pre-tokenized: bytes [off, off + len).
typedef struct span {
    uint32_t off;
    uint32_t len;
} span;

// Growable scratch for one tokenizer_bpe_encode call.
typedef struct bpe_work {
    const char *match; // the text as valid UTF-8 (what the regexes see)
    const char *emit;  // the text as llama.cpp re-encodes it (what gets tokenized)
    char *owned[2];    // match and emit when they had to be rebuilt (invalid input)
    span *spans[2];    // (cap_spans[i]) pre-tokens before/after the current regex
    size_t n_spans[2], cap_spans[2];
    char *word; // (cap_word) a pre-token spelled in the byte alphabet
    size_t cap_word;
    tokenizer_symbol *symbols; // (cap_symbols) one per byte of the pre-token
    size_t cap_symbols;
    tokenizer_heap heap;
} bpe_work;

static void work_free(bpe_work *w)
{
    garlic_free(w->owned[0]);
    garlic_free(w->owned[1]);
    garlic_free(w->spans[0]);
    garlic_free(w->spans[1]);
    garlic_free(w->word);
    garlic_free(w->symbols);
    garlic_free(w->heap.items);
}

// Appends a span to the list spans[which] (0 or 1: the lists alternate between regexes).
static int span_push(bpe_work *w, int which, uint32_t off, uint32_t len)
{
    if (w->n_spans[which] == w->cap_spans[which] &&
        garlic_grow(&w->spans[which], &w->cap_spans[which], w->n_spans[which] + 1,
                    sizeof *w->spans[which]) != GARLIC_OK)
        return GARLIC_ENOMEM;
    w->spans[which][w->n_spans[which]++] = (span){off, len};
    return GARLIC_OK;
}

// Makes w->match (valid UTF-8 for PCRE2) and w->emit (the bytes to tokenize) from text.
// For valid input both are the text itself; otherwise invalid bytes become U+FFFD, and
// surrogates are kept in emit but shown to the regexes as U+FFFD.
static int normalize_text(bpe_work *w, const char *text, size_t len, size_t *out_len)
{
    w->match = w->emit = text;
    *out_len = len;
    if (utf8_valid(text, len))
        return GARLIC_OK;
    size_t cap;
    if (__builtin_mul_overflow(len, 3, &cap))
        return GARLIC_ENOMEM;
    char *match = w->owned[0] = garlic_malloc(cap + 1);
    char *emit = w->owned[1] = garlic_malloc(cap + 1);
    if (!match || !emit)
        return GARLIC_ENOMEM;
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        size_t used;
        uint32_t cp = tokenizer_next_code_point((const unsigned char *)text + i, len - i, &used);
        i += used;
        size_t k = utf8_encode(cp, emit + o);
        if (cp >= 0xd800 && cp <= 0xdfff)
            utf8_encode(0xfffd, match + o); // same length (3 bytes)
        else
            memcpy(match + o, emit + o, k);
        o += k;
    }
    w->match = match;
    w->emit = emit;
    *out_len = o;
    return GARLIC_OK;
}

// Cuts every span of spans[src] by regex re into matches and the gaps between them,
// writing the result to spans[1 - src].
static int split_by(const tokenizer *t, bpe_work *w, int src, const pcre2_code *re,
                    pcre2_match_data *md, garlic_error *err)
{
    int dst = 1 - src;
    w->n_spans[dst] = 0;
    for (size_t s = 0; s < w->n_spans[src]; s++) {
        span sp = w->spans[src][s];
        const PCRE2_SPTR subject = (PCRE2_SPTR)(w->match + sp.off);
        size_t pos = 0;
        while (pos < sp.len) {
            int rc = pcre2_match(re, subject, sp.len, pos, PCRE2_NO_UTF_CHECK, md, NULL);
            if (rc == PCRE2_ERROR_NOMATCH)
                break;
            if (rc < 0) {
                PCRE2_UCHAR msg[160];
                pcre2_get_error_message(rc, msg, sizeof msg);
                return garlic_error_set(err,
                                        rc == PCRE2_ERROR_NOMEMORY ? GARLIC_ENOMEM : GARLIC_EINVAL,
                                        "pre-tokenizer '%s': %s", t->pre_name, (const char *)msg);
            }
            const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            size_t start = ov[0], end = ov[1];
            if (end == start) { // no pattern matches empty text; step over a character anyway
                end = start + tokenizer_utf8_len(subject[start]);
                if (end > sp.len)
                    end = sp.len;
            }
            if ((start > pos &&
                 span_push(w, dst, sp.off + (uint32_t)pos, (uint32_t)(start - pos)) != GARLIC_OK) ||
                span_push(w, dst, sp.off + (uint32_t)start, (uint32_t)(end - start)) != GARLIC_OK)
                return garlic_error_set(err, GARLIC_ENOMEM, "out of memory pre-tokenizing");
            pos = end;
        }
        if (pos < sp.len &&
            span_push(w, dst, sp.off + (uint32_t)pos, (uint32_t)(sp.len - pos)) != GARLIC_OK)
            return garlic_error_set(err, GARLIC_ENOMEM, "out of memory pre-tokenizing");
    }
    return GARLIC_OK;
}

// Byte-level BPE merges the pair with the lowest merge rank.
static bool rank_key(const tokenizer *t, const char *a, size_t na, const char *b, size_t nb,
                     uint32_t *key)
{
    int32_t rank = tokenizer_merge_rank(t, a, na, b, nb);
    if (rank < 0)
        return false;
    *key = (uint32_t)rank;
    return true;
}

// Spells bytes [0, n) in the byte alphabet into w->word, one symbol per byte.
static int spell_word(bpe_work *w, const char *bytes, size_t n, size_t *word_len)
{
    // each byte spells as one or two bytes of the alphabet
    if (n > SIZE_MAX / 2 || garlic_grow(&w->word, &w->cap_word, 2 * n, 1) != GARLIC_OK ||
        garlic_grow(&w->symbols, &w->cap_symbols, n, sizeof *w->symbols) != GARLIC_OK)
        return GARLIC_ENOMEM;
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        size_t k = tokenizer_bpe_byte_char((unsigned char)bytes[i], w->word + len);
        w->symbols[i] = (tokenizer_symbol){(uint32_t)len, (uint32_t)k, (int32_t)i - 1,
                                           i + 1 < n ? (int32_t)i + 1 : -1};
        len += k;
    }
    *word_len = len;
    return GARLIC_OK;
}

// Tokenizes one pre-token: merges the lowest-ranked listed pair until none applies.
static int merge_word(const tokenizer *t, bpe_work *w, const char *bytes, size_t n,
                      tokenizer_ids *out)
{
    size_t word_len;
    if (spell_word(w, bytes, n, &word_len) != GARLIC_OK)
        return GARLIC_ENOMEM;
    if (t->ignore_merges) {
        int32_t id = tokenizer_lookup2(t, w->word, word_len, "", 0);
        if (id >= 0)
            return tokenizer_ids_push(out, id);
    }
    if (tokenizer_merge_symbols(t, w->word, w->symbols, n, &w->heap, rank_key) != GARLIC_OK)
        return GARLIC_ENOMEM;
    for (int32_t i = 0; n && i >= 0; i = w->symbols[i].next)
        if (tokenizer_emit_symbol(t, w->word + w->symbols[i].start, w->symbols[i].n, -1, out) !=
            GARLIC_OK)
            return GARLIC_ENOMEM;
    return GARLIC_OK;
}

// Cuts text into pre-tokens: on success w->spans[*cur] lists them, in order. The caller
// frees w with work_free whatever the result.
static int pre_tokenize(const tokenizer *t, bpe_work *w, const char *text, size_t len, int *cur,
                        garlic_error *err)
{
    pcre2_match_data *md = NULL;
    size_t n;
    int rc = normalize_text(w, text, len, &n);
    if (rc == GARLIC_OK && n > UINT32_MAX / 2)
        rc = GARLIC_EINVAL;
    if (rc == GARLIC_OK && n && span_push(w, 0, 0, (uint32_t)n) != GARLIC_OK)
        rc = GARLIC_ENOMEM;
    if (rc == GARLIC_OK && !(md = pcre2_match_data_create(4, t->pcre_context)))
        rc = GARLIC_ENOMEM;
    if (rc != GARLIC_OK)
        return garlic_error_set(err, rc,
                                rc == GARLIC_EINVAL ? "text too long (2 GiB at most)"
                                                    : "out of memory tokenizing");
    *cur = 0;
    for (int i = 0; i < t->n_regex && rc == GARLIC_OK; i++) {
        rc = split_by(t, w, *cur, t->regex[i], md, err);
        *cur = 1 - *cur;
    }
    pcre2_match_data_free(md);
    return rc;
}

int tokenizer_bpe_encode(const tokenizer *t, const char *text, size_t len, tokenizer_ids *out,
                         garlic_error *err)
{
    bpe_work w = {0};
    int cur;
    int rc = pre_tokenize(t, &w, text, len, &cur, err);
    for (size_t s = 0; rc == GARLIC_OK && s < w.n_spans[cur]; s++) {
        span sp = w.spans[cur][s];
        rc = merge_word(t, &w, w.emit + sp.off, sp.len, out);
        if (rc != GARLIC_OK)
            garlic_error_set(err, rc, "out of memory tokenizing");
    }
    work_free(&w);
    return rc;
}

int tokenizer_bpe_split(const tokenizer *t, const char *text, size_t len, tokenizer_ids *ends,
                        garlic_error *err)
{
    bpe_work w = {0};
    int cur;
    int rc = pre_tokenize(t, &w, text, len, &cur, err);
    for (size_t s = 0; rc == GARLIC_OK && s < w.n_spans[cur]; s++) {
        span sp = w.spans[cur][s];
        rc = tokenizer_ids_push(ends, (int32_t)(sp.off + sp.len));
        if (rc != GARLIC_OK)
            garlic_error_set(err, rc, "out of memory pre-tokenizing");
    }
    work_free(&w);
    return rc;
}
