// SPDX-License-Identifier: MIT
// hf_tokenizer_metadata on small folders written here: byte-level BPE, SentencePiece-style BPE
// (normalizer or Metaspace) and WordPiece become the GGUF keys garlic's tokenizer loads and
// tokenize as expected; special tokens from each companion file, BOS/EOS from the config or
// the post-processor, end tokens of generation_config.json (generation ends on each), chat
// templates as a string, a list or chat_template.jinja; every malformed or unsupported field
// is refused with a message naming the file and the field; every allocation may fail.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

#include "base/alloc.h"
#include "engine/engine.h"
#include "hf/hf.h"
#include "sampler/sampler.h"
#include "tokenizer/tokenizer.h"

// Writes text to dir/name, with every ' turned into " (JSON reads better that way in C).
static void put_file(const char *dir, const char *name, const char *text)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    char *copy = strdup(text);
    assert_non_null(copy);
    for (char *c = copy; *c; c++)
        if (*c == '\'')
            *c = '"';
    assert_int_equal(test_write_file(path, copy, strlen(copy)), 0);
    free(copy);
}

// A fresh, empty folder under the temporary directory.
static const char *folder(const char *name)
{
    const char *dir = test_temp_path(name);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", dir, dir);
    assert_int_equal(system(cmd), 0);
    return dir;
}

// A byte-level BPE (GPT-2 pre-tokenizer) over "hello world": the alphabet letters it needs,
// merges up to "hello" and "Ġworld", two special tokens and one added non-special token.
static const char bpe_json[] =
    "{'model': {'type': 'BPE', 'vocab': {'h': 0, 'e': 1, 'l': 2, 'o': 3, 'Ġ': 4, 'w': 5, "
    "'r': 6, 'd': 7, 'he': 8, 'll': 9, 'hell': 10, 'hello': 11, 'Ġw': 12, 'or': 13, "
    "'Ġwor': 14, 'ld': 15, 'Ġworld': 16},"
    " 'merges': ['h e', 'l l', 'he ll', 'hell o', 'Ġ w', 'o r', 'Ġw or', 'l d', 'Ġwor ld']},"
    " 'added_tokens': [{'id': 17, 'content': '<|start|>', 'special': true},"
    "  {'id': 18, 'content': '<|end|>', 'special': true},"
    "  {'id': 19, 'content': '<think>', 'special': false},"
    "  {'id': 20, 'content': '</s>', 'special': false},"
    "  {'id': 21, 'content': '<|im_end|>', 'special': true}],"
    " 'normalizer': null,"
    " 'pre_tokenizer': {'type': 'ByteLevel', 'add_prefix_space': false, 'use_regex': true},"
    " 'post_processor': {'type': 'ByteLevel'}}";

static gguf_file *open_folder(const char *dir)
{
    garlic_error err = {0};
    gguf_file *f = hf_tokenizer_open(dir, &err);
    if (!f)
        fail_msg("%s", err.message);
    return f;
}

static void assert_key_str(const gguf_file *f, const char *key, const char *want)
{
    gguf_string s;
    assert_int_equal(gguf_get_str(f, key, &s), GARLIC_OK);
    if (!gguf_string_eq(s, want))
        fail_msg("%s: '%.*s', want '%s'", key, (int)s.len, s.data, want);
}

static int64_t key_int(const gguf_file *f, const char *key)
{
    int64_t v = -1;
    assert_int_equal(gguf_get_i64(f, key, &v), GARLIC_OK);
    return v;
}

static bool key_bool(const gguf_file *f, const char *key)
{
    bool v = false;
    assert_int_equal(gguf_get_bool(f, key, &v), GARLIC_OK);
    return v;
}

// Encodes text and formats the ids as " 1 2 3" (in a static buffer, valid until the next
// call).
static const char *encode_ids(const tokenizer *t, const char *text, unsigned flags)
{
    static char out[1 << 16];
    tokenizer_ids ids = {0};
    garlic_error err = {0};
    assert_int_equal(tokenizer_encode(t, text, strlen(text), flags, &ids, &err), GARLIC_OK);
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < ids.n; i++) {
        assert_true(o + 16 < sizeof out);
        o += (size_t)snprintf(out + o, sizeof out - o, " %d", ids.ids[i]);
    }
    tokenizer_ids_deinit(&ids);
    return out;
}

static tokenizer *load(const gguf_file *f)
{
    garlic_error err = {0};
    tokenizer *t = tokenizer_load(f, &err);
    if (!t)
        fail_msg("%s", err.message);
    return t;
}

// Byte-level BPE with every companion file: the keys, the tokens, the end tokens.
static void test_byte_level(void **state)
{
    (void)state;
    const char *dir = folder("bpe");
    put_file(dir, "tokenizer.json", bpe_json);
    put_file(dir, "tokenizer_config.json",
             "{'bos_token': {'__type': 'AddedToken', 'content': '<|start|>'},"
             " 'eos_token': '<|end|>', 'add_bos_token': true,"
             " 'chat_template': [{'name': 'default', 'template': 'T{{ x }}'},"
             "                   {'name': 'tool use', 'template': 'U'}]}");
    put_file(dir, "generation_config.json", "{'eos_token_id': [18, 17, 19]}");
    put_file(dir, "config.json", "{'vocab_size': 24}");
    gguf_file *f = open_folder(dir);
    assert_key_str(f, "tokenizer.ggml.model", "gpt2");
    assert_key_str(f, "tokenizer.ggml.pre", "gpt-2");
    gguf_value arr;
    assert_int_equal(gguf_get_arr(f, "tokenizer.ggml.tokens", &arr), GARLIC_OK);
    assert_int_equal(arr.arr.count, 24); // padded to config.json's vocab_size
    assert_int_equal(gguf_get_arr(f, "tokenizer.ggml.token_type", &arr), GARLIC_OK);
    int64_t type;
    assert_true(gguf_array_get_i64(&arr, 17, &type) && type == TOKENIZER_TOKEN_CONTROL);
    assert_true(gguf_array_get_i64(&arr, 19, &type) && type == TOKENIZER_TOKEN_USER_DEFINED);
    assert_true(gguf_array_get_i64(&arr, 23, &type) && type == TOKENIZER_TOKEN_UNUSED);
    assert_int_equal(gguf_get_arr(f, "tokenizer.ggml.merges", &arr), GARLIC_OK);
    assert_int_equal(arr.arr.count, 9);
    assert_int_equal(key_int(f, "tokenizer.ggml.bos_token_id"), 17);
    assert_int_equal(key_int(f, "tokenizer.ggml.eos_token_id"), 18);
    assert_int_equal(key_int(f, "tokenizer.ggml.eot_token_id"), 17);
    assert_int_equal(key_int(f, "tokenizer.ggml.eom_token_id"), 19);
    assert_true(key_bool(f, "tokenizer.ggml.add_bos_token"));
    assert_false(key_bool(f, "tokenizer.ggml.add_eos_token"));
    assert_key_str(f, "tokenizer.chat_template", "T{{ x }}");
    assert_key_str(f, "tokenizer.chat_template.tool_use", "U");
    assert_true(key_bool(f, "tokenizer.ggml.token_type_final"));

    tokenizer *t = load(f);
    gguf_close(f);
    assert_string_equal(encode_ids(t, "hello world", 0), " 11 16");
    assert_string_equal(encode_ids(t, "hello world", TOKENIZER_ADD_SPECIAL), " 17 11 16");
    assert_string_equal(encode_ids(t, "<|end|><think>", TOKENIZER_PARSE_SPECIAL), " 18 19");
    // As Hugging Face: an added token with "special": false is matched in text always, even
    // one whose text llama.cpp makes a control token ("</s>"); a special one only when parsed.
    assert_string_equal(encode_ids(t, "hello</s><think>", 0), " 11 20 19");
    assert_string_equal(encode_ids(t, "hello</s><|im_end|>", TOKENIZER_PARSE_SPECIAL), " 11 20 21");
    assert_null(strstr(encode_ids(t, "hello<|im_end|><|end|>", 0), " 21"));
    assert_null(strstr(encode_ids(t, "hello<|im_end|><|end|>", 0), " 18"));
    sampler_end_tokens ends;
    engine_end_tokens(t, &ends);
    assert_true(sampler_is_end(&ends, 17) && sampler_is_end(&ends, 18) &&
                sampler_is_end(&ends, 19));
    tokenizer_free(t);
}

// The same vocabulary spelled differently: merges as pairs, Split + ByteLevel with the Llama 3
// regex (ignore_merges), the special tokens from special_tokens_map.json and config.json, the
// chat template from chat_template.jinja, BOS from a TemplateProcessing post-processor.
static void test_byte_level_variants(void **state)
{
    (void)state;
    const char *dir = folder("bpe2");
    // Written as it is (the regex holds apostrophes).
    static const char json[] =
        "{\"model\": {\"type\": \"BPE\", \"ignore_merges\": true, \"vocab\": {\"h\": 0, \"e\": 1, "
        "\"l\": 2, \"o\": 3, \"Ġ\": 4, \"w\": 5, \"r\": 6, \"d\": 7, \"he\": 8, \"ll\": 9, "
        "\"hell\": 10, \"hello\": 11, \"Ġw\": 12, \"or\": 13, \"Ġwor\": 14, \"ld\": 15, "
        "\"Ġworld\": 16}, \"merges\": [[\"h\", \"e\"], [\"l\", \"l\"], [\"he\", \"ll\"], "
        "[\"hell\", \"o\"], [\"Ġ\", \"w\"], [\"o\", \"r\"], [\"Ġw\", \"or\"], [\"l\", \"d\"], "
        "[\"Ġwor\", \"ld\"]]},"
        " \"added_tokens\": [{\"id\": 17, \"content\": \"<|start|>\", \"special\": true},"
        "  {\"id\": 18, \"content\": \"<|end|>\", \"special\": true}],"
        " \"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", "
        "\"pattern\": {\"Regex\": \"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?"
        "\\\\p{L}+|\\\\p{N}{1,3}| ?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|"
        "\\\\s+(?!\\\\S)|\\\\s+\"}, \"behavior\": \"Isolated\", \"invert\": false},"
        " {\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"use_regex\": false}]},"
        " \"post_processor\": {\"type\": \"Sequence\", \"processors\": [{\"type\": \"ByteLevel\"},"
        " {\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": {\"id\": "
        "\"<|start|>\", \"type_id\": 0}}, {\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}],"
        " \"special_tokens\": {\"<|start|>\": {\"id\": \"<|start|>\", \"ids\": [17]}}}]}}";
    char path[600];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    assert_int_equal(test_write_file(path, json, strlen(json)), 0);
    put_file(dir, "special_tokens_map.json", "{'eos_token': {'content': '<|end|>'}}");
    put_file(dir, "config.json", "{'bos_token_id': 17}");
    put_file(dir, "chat_template.jinja", "{{ bos_token }}J");
    gguf_file *f = open_folder(dir);
    assert_key_str(f, "tokenizer.ggml.pre", "llama-bpe");
    assert_int_equal(key_int(f, "tokenizer.ggml.bos_token_id"), 17);
    assert_int_equal(key_int(f, "tokenizer.ggml.eos_token_id"), 18);
    assert_true(key_bool(f, "tokenizer.ggml.add_bos_token"));
    assert_key_str(f, "tokenizer.chat_template", "{{ bos_token }}J");
    tokenizer *t = load(f);
    gguf_close(f);
    assert_string_equal(encode_ids(t, "hello world", TOKENIZER_ADD_SPECIAL), " 17 11 16");
    tokenizer_free(t);
}

// SentencePiece-style BPE: byte fallback, "▁" for spaces, merges as scores.
static const char spm_vocab[] =
    "'<unk>': 0, '<s>': 1, '</s>': 2, '<0x0A>': 3, '<0x61>': 4, '<0x62>': 5, '<0xE4>': 6, "
    "'<0xB8>': 7, '<0xAD>': 8, '▁': 9, 'a': 10, 'b': 11, '▁a': 12, 'ab': 13, '▁ab': 14, "
    "'▁b': 15";
static const char spm_merges[] = "['▁ a', 'a b', '▁a b', '▁ ab', '▁ b']";

static void write_spm(const char *dir, const char *normalizer, const char *pre)
{
    char json[2048];
    snprintf(json, sizeof json,
             "{'model': {'type': 'BPE', 'byte_fallback': true, 'unk_token': '<unk>', "
             "'vocab': {%s}, 'merges': %s},"
             " 'added_tokens': [{'id': 0, 'content': '<unk>', 'special': true},"
             "  {'id': 1, 'content': '<s>', 'special': true},"
             "  {'id': 2, 'content': '</s>', 'special': true}],"
             " 'normalizer': %s, 'pre_tokenizer': %s,"
             " 'post_processor': {'type': 'TemplateProcessing', 'single': ["
             "{'SpecialToken': {'id': '<s>', 'type_id': 0}}, {'Sequence': {'id': 'A'}}],"
             " 'special_tokens': {'<s>': {'id': '<s>', 'ids': [1]}}}}",
             spm_vocab, spm_merges, normalizer, pre);
    put_file(dir, "tokenizer.json", json);
    put_file(dir, "tokenizer_config.json", "{'bos_token': '<s>', 'eos_token': '</s>'}");
}

static void test_sentencepiece(void **state)
{
    (void)state;
    const char *dir = folder("spm");
    write_spm(dir,
              "{'type': 'Sequence', 'normalizers': [{'type': 'Prepend', 'prepend': '▁'},"
              " {'type': 'Replace', 'pattern': {'String': ' '}, 'content': '▁'}]}",
              "null");
    gguf_file *f = open_folder(dir);
    assert_key_str(f, "tokenizer.ggml.model", "llama");
    assert_true(key_bool(f, "tokenizer.ggml.add_space_prefix"));
    assert_true(key_bool(f, "tokenizer.ggml.add_bos_token"));
    assert_int_equal(key_int(f, "tokenizer.ggml.unknown_token_id"), 0);
    gguf_value arr;
    double score;
    assert_int_equal(gguf_get_arr(f, "tokenizer.ggml.scores", &arr), GARLIC_OK);
    assert_true(gguf_array_get_f64(&arr, 14, &score) && score == -2); // first made by merge 2
    assert_int_equal(gguf_get_arr(f, "tokenizer.ggml.token_type", &arr), GARLIC_OK);
    int64_t type;
    assert_true(gguf_array_get_i64(&arr, 0, &type) && type == TOKENIZER_TOKEN_UNKNOWN);
    assert_true(gguf_array_get_i64(&arr, 3, &type) && type == TOKENIZER_TOKEN_BYTE);
    tokenizer *t = load(f);
    gguf_close(f);
    assert_string_equal(encode_ids(t, "ab b", TOKENIZER_ADD_SPECIAL), " 1 14 15");
    assert_string_equal(encode_ids(t, "a\n\xe4\xb8\xad", 0), " 12 3 6 7 8"); // byte fallback
    tokenizer_free(t);

    // Metaspace instead of the normalizer; Replace alone: no space prefix.
    write_spm(dir, "null",
              "{'type': 'Metaspace', 'replacement': '▁', 'prepend_scheme': 'always', "
              "'split': false}");
    f = open_folder(dir);
    assert_true(key_bool(f, "tokenizer.ggml.add_space_prefix"));
    assert_key_str(f, "tokenizer.ggml.metaspace_prepend", "always");
    t = load(f);
    gguf_close(f);
    // Metaspace puts no space mark in front of text that starts with a space; the Prepend
    // normalizer does ("▁▁ab" above would be 9 14).
    assert_string_equal(encode_ids(t, " ab", 0), " 14");
    assert_string_equal(encode_ids(t, "</s>ab", TOKENIZER_PARSE_SPECIAL), " 2 14");
    tokenizer_free(t);
    write_spm(dir, "null",
              "{'type': 'Metaspace', 'replacement': '▁', 'prepend_scheme': 'first', "
              "'split': false}");
    gguf_writer *w = gguf_writer_new();
    garlic_error err = {0};
    assert_int_equal(hf_tokenizer_metadata(dir, w, &err), GARLIC_OK);
    f = gguf_writer_open(w, "first", NULL, NULL, &err);
    assert_key_str(f, "tokenizer.ggml.metaspace_prepend", "first");
    t = load(f);
    gguf_close(f);
    assert_string_equal(encode_ids(t, "ab", 0), " 14");
    assert_string_equal(encode_ids(t, "</s>ab", TOKENIZER_PARSE_SPECIAL), " 2 13"); // not first
    tokenizer_free(t);
    assert_int_equal(gguf_writer_set_str(w, "tokenizer.ggml.metaspace_prepend", "sometimes"), 0);
    f = gguf_writer_open(w, "bad", NULL, NULL, &err);
    assert_null(tokenizer_load(f, &err));
    assert_non_null(strstr(err.message, "tokenizer.ggml.metaspace_prepend"));
    gguf_close(f);
    gguf_writer_free(w);
    write_spm(dir, "{'type': 'Replace', 'pattern': {'String': ' '}, 'content': '▁'}",
              "{'type': 'Split', 'pattern': {'String': ' '}, 'behavior': 'MergedWithPrevious'}");
    f = open_folder(dir);
    assert_false(key_bool(f, "tokenizer.ggml.add_space_prefix"));
    t = load(f);
    gguf_close(f);
    assert_string_equal(encode_ids(t, "ab b", 0), " 13 15");
    tokenizer_free(t);
}

static void test_wordpiece(void **state)
{
    (void)state;
    const char *dir = folder("bert");
    put_file(dir, "tokenizer.json",
             "{'model': {'type': 'WordPiece', 'unk_token': '[UNK]', "
             "'continuing_subword_prefix': '##', 'max_input_chars_per_word': 100, "
             "'vocab': {'[PAD]': 0, '[UNK]': 1, '[CLS]': 2, '[SEP]': 3, '[MASK]': 4, "
             "'hello': 5, 'wor': 6, '##ld': 7, '!': 8}},"
             " 'added_tokens': [{'id': 0, 'content': '[PAD]', 'special': true},"
             "  {'id': 1, 'content': '[UNK]', 'special': true},"
             "  {'id': 2, 'content': '[CLS]', 'special': true},"
             "  {'id': 3, 'content': '[SEP]', 'special': true},"
             "  {'id': 4, 'content': '[MASK]', 'special': true}],"
             " 'normalizer': {'type': 'BertNormalizer', 'clean_text': true, "
             "'handle_chinese_chars': true, 'strip_accents': null, 'lowercase': true},"
             " 'pre_tokenizer': {'type': 'BertPreTokenizer'},"
             " 'post_processor': {'type': 'TemplateProcessing', 'single': ["
             "{'SpecialToken': {'id': '[CLS]', 'type_id': 0}}, {'Sequence': {'id': 'A'}},"
             " {'SpecialToken': {'id': '[SEP]', 'type_id': 0}}], 'special_tokens': {"
             "'[CLS]': {'id': '[CLS]', 'ids': [2]}, '[SEP]': {'id': '[SEP]', 'ids': [3]}}}}");
    put_file(dir, "tokenizer_config.json",
             "{'cls_token': '[CLS]', 'sep_token': '[SEP]', 'pad_token': '[PAD]', "
             "'mask_token': '[MASK]', 'unk_token': '[UNK]'}");
    gguf_file *f = open_folder(dir);
    assert_key_str(f, "tokenizer.ggml.model", "bert");
    assert_int_equal(key_int(f, "tokenizer.ggml.cls_token_id"), 2);
    assert_int_equal(key_int(f, "tokenizer.ggml.seperator_token_id"), 3);
    assert_int_equal(key_int(f, "tokenizer.ggml.mask_token_id"), 4);
    tokenizer *t = load(f);
    gguf_close(f);
    size_t len;
    const char *text = tokenizer_token_text(t, 5, &len);
    assert_memory_equal(text, "\xe2\x96\x81hello", len); // "▁hello", as llama.cpp writes it
    assert_string_equal(encode_ids(t, "Hello World! xyz", TOKENIZER_ADD_SPECIAL), " 2 5 6 7 8 1 3");
    tokenizer_free(t);
}

// One refused folder: the call fails with code, and the message names file and field.
typedef struct refusal {
    const char *file;    // written into the folder (NULL: tokenizer.json is bpe_json)
    const char *content; // its content (JSON with ' for ")
    int code;
    const char *field; // text the message must contain besides the file name
} refusal;

static void check_refusal(const refusal *r)
{
    const char *dir = folder("bad");
    if (!r->file || strcmp(r->file, "tokenizer.json") != 0)
        put_file(dir, "tokenizer.json", bpe_json);
    if (r->file)
        put_file(dir, r->file, r->content);
    gguf_writer *w = gguf_writer_new();
    garlic_error err = {0};
    int rc = hf_tokenizer_metadata(dir, w, &err);
    gguf_writer_free(w);
    char path[600];
    snprintf(path, sizeof path, "%s/%s", dir, r->file ? r->file : "tokenizer.json");
    if (rc != r->code || !strstr(err.message, path) || !strstr(err.message, r->field))
        fail_msg("%s: %s\n  got %d '%s', want %d naming '%s'", r->file, r->content, rc, err.message,
                 r->code, r->field);
}

static void test_refusals(void **state)
{
    (void)state;
    const refusal cases[] = {
        {"tokenizer.json", "[1, 2]", GARLIC_EFORMAT, "not a JSON object"},
        {"tokenizer.json", "{'model': {'type': 'BPE'", GARLIC_EFORMAT, "not a JSON object"},
        {"tokenizer.json", "{}", GARLIC_EFORMAT, "model is missing"},
        {"tokenizer.json", "{'model': {'type': 'Unigram', 'vocab': [['a', 0]]}}",
         GARLIC_EUNSUPPORTED, "model.type 'Unigram'"},
        {"tokenizer.json", "{'model': {'type': 'BPE', 'vocab': [1], 'merges': []}}", GARLIC_EFORMAT,
         "model.vocab must be an object"},
        {"tokenizer.json", "{'model': {'type': 'BPE', 'vocab': {'a': -1}, 'merges': []}}",
         GARLIC_EFORMAT, "model.vocab: entry 0"},
        {"tokenizer.json", "{'model': {'type': 'BPE', 'vocab': {'a': 1.5}, 'merges': []}}",
         GARLIC_EFORMAT, "model.vocab: entry 0"},
        {"tokenizer.json", "{'model': {'type': 'BPE', 'vocab': {'a': 99999999}, 'merges': []}}",
         GARLIC_EFORMAT, "model.vocab: entry 0"},
        {"tokenizer.json", "{'model': {'type': 'BPE', 'vocab': {'a': 0, 'b': 0}, 'merges': []}}",
         GARLIC_EFORMAT, "id 0 is given to both 'a' and 'b'"},
        {"tokenizer.json", "{'model': {'type': 'BPE', 'vocab': {}, 'merges': []}}", GARLIC_EFORMAT,
         "model.vocab is empty"},
        // a few tokens with huge ids would make every table of the vocabulary that large
        {"tokenizer.json",
         "{'model': {'type': 'BPE', 'vocab': {'a': 0, 'b': 9000000}, 'merges': []}}",
         GARLIC_EFORMAT, "the ids run to 9000000 but only 2 tokens are listed"},
        {"tokenizer.json",
         "{'model': {'type': 'BPE', 'vocab': {'a': 0}, 'merges': []}, 'added_tokens': {}}",
         GARLIC_EFORMAT, "added_tokens must be a list"},
        {"tokenizer.json",
         "{'model': {'type': 'BPE', 'vocab': {'a': 0}, 'merges': []}, 'added_tokens': [{}]}",
         GARLIC_EFORMAT, "added_tokens[0].id"},
        {"tokenizer.json",
         "{'model': {'type': 'BPE', 'vocab': {'a': 0}, 'merges': []}, "
         "'added_tokens': [{'id': 1, 'content': ''}]}",
         GARLIC_EFORMAT, "added_tokens[0].content"},
        {"tokenizer.json",
         "{'model': {'type': 'BPE', 'vocab': {'a': 0}, 'merges': []}, "
         "'added_tokens': [{'id': 1, 'content': 'x', 'special': 1}]}",
         GARLIC_EFORMAT, "special must be true or false"},
        {"tokenizer.json",
         "{'model': {'type': 'BPE', 'vocab': {'a': 0}, 'merges': 5}, "
         "'pre_tokenizer': {'type': 'ByteLevel'}}",
         GARLIC_EFORMAT, "model.merges must be a list"},
        {"tokenizer.json",
         "{'model': {'type': 'BPE', 'vocab': {'a': 0, 'aa': 1}, 'merges': ['a a a']}, "
         "'pre_tokenizer': {'type': 'ByteLevel'}}",
         GARLIC_EFORMAT, "model.merges[0] is not a pair"},
        {"tokenizer.json",
         "{'model': {'type': 'BPE', 'vocab': {'a': 0, 'aa': 1}, 'merges': ['a a', 'a b']}, "
         "'pre_tokenizer': {'type': 'ByteLevel'}}",
         GARLIC_EFORMAT, "model.merges[1]: 'b' is not a token"},
        {"tokenizer.json",
         "{'model': {'type': 'BPE', 'vocab': {'a': 0}, 'merges': [['a', 'a']]}, "
         "'pre_tokenizer': {'type': 'ByteLevel'}}",
         GARLIC_EFORMAT, "model.merges[0]: 'aa' is not a token"},
        {"tokenizer.json",
         "{'model': {'type': 'BPE', 'vocab': {'a': 0}, 'merges': [], 'dropout': 0.1}}",
         GARLIC_EUNSUPPORTED, "model.dropout"},
        {"tokenizer.json",
         "{'model': {'type': 'BPE', 'vocab': {'a': 0}, 'merges': []}, "
         "'pre_tokenizer': {'type': 'Whitespace'}}",
         GARLIC_EUNSUPPORTED, "pre_tokenizer: 'Whitespace'"},
        {"tokenizer.json",
         "{'model': {'type': 'BPE', 'vocab': {'a': 0}, 'merges': []}, "
         "'pre_tokenizer': {'type': 'ByteLevel', 'add_prefix_space': true}}",
         GARLIC_EUNSUPPORTED, "ByteLevel.add_prefix_space"},
        {"tokenizer.json",
         "{'model': {'type': 'BPE', 'vocab': {'a': 0}, 'merges': []}, "
         "'pre_tokenizer': {'type': 'Sequence', 'pretokenizers': [{'type': 'Split', "
         "'pattern': {'Regex': '\\\\p{L}+'}, 'behavior': 'Isolated'}, {'type': 'ByteLevel', "
         "'use_regex': false}]}}",
         GARLIC_EUNSUPPORTED, "the regex '\\p{L}+' is not one garlic knows"},
        {"tokenizer.json",
         "{'model': {'type': 'BPE', 'vocab': {'a': 0}, 'merges': []}, "
         "'pre_tokenizer': {'type': 'Split', 'pattern': {'Regex': 'x'}, 'behavior': "
         "'Removed'}}",
         GARLIC_EUNSUPPORTED, "behavior Isolated"},
        {"tokenizer.json",
         "{'model': {'type': 'BPE', 'vocab': {'a': 0}, 'merges': [], 'ignore_merges': true}, "
         "'pre_tokenizer': {'type': 'ByteLevel'}}",
         GARLIC_EUNSUPPORTED, "model.ignore_merges is true"},
        {"tokenizer.json",
         "{'model': {'type': 'BPE', 'vocab': {'a': 0}, 'merges': []}, "
         "'normalizer': {'type': 'NFKC'}, 'pre_tokenizer': {'type': 'ByteLevel'}}",
         GARLIC_EUNSUPPORTED, "normalizer: 'NFKC'"},
        {"tokenizer.json",
         "{'model': {'type': 'BPE', 'vocab': {'a': 0}, 'merges': []}, "
         "'pre_tokenizer': {'type': 'ByteLevel'}, 'post_processor': {'type': "
         "'TemplateProcessing', 'single': [{'SpecialToken': {'id': 'a'}}, {'SpecialToken': "
         "{'id': 'a'}}, {'Sequence': {'id': 'A'}}], 'special_tokens': {'a': {'ids': [0]}}}}",
         GARLIC_EUNSUPPORTED, "2 before"},
        {"tokenizer.json",
         "{'model': {'type': 'BPE', 'vocab': {'a': 0}, 'merges': []}, "
         "'pre_tokenizer': {'type': 'ByteLevel'}, 'post_processor': {'type': "
         "'TemplateProcessing', 'single': [{'SpecialToken': {'id': 'a'}}, {'Sequence': "
         "{'id': 'A'}}], 'special_tokens': {'a': {'ids': [7]}}}}",
         GARLIC_EFORMAT, "special_tokens['a'].ids"},
        {"tokenizer.json",
         "{'model': {'type': 'BPE', 'byte_fallback': true, 'vocab': {'a': 0}, 'merges': []}}",
         GARLIC_EUNSUPPORTED, "spaces are not replaced"},
        {"tokenizer.json",
         "{'model': {'type': 'BPE', 'byte_fallback': true, 'vocab': {'▁': 0, 'a': 1, '▁a': 2, "
         "'a▁': 3}, 'merges': ['▁ a']}, 'normalizer': {'type': 'Replace', 'pattern': {"
         "'String': ' '}, 'content': '▁'}}",
         GARLIC_EUNSUPPORTED, "token 3 'a▁' can be made from two tokens"},
        {"tokenizer.json",
         "{'model': {'type': 'BPE', 'byte_fallback': true, 'vocab': {'▁': 0, 'a▁b': 1}, "
         "'merges': []}, 'pre_tokenizer': {'type': 'Metaspace', 'replacement': '▁', "
         "'split': true}}",
         GARLIC_EUNSUPPORTED, "Metaspace.split"},
        {"tokenizer.json",
         "{'model': {'type': 'WordPiece', 'vocab': {'a': 0}}, 'normalizer': {'type': "
         "'BertNormalizer', 'lowercase': false}, 'pre_tokenizer': {'type': 'BertPreTokenizer'}}",
         GARLIC_EUNSUPPORTED, "BertNormalizer"},
        {"tokenizer.json",
         "{'model': {'type': 'WordPiece', 'vocab': {'a': 0}, 'unk_token': '[UNK]'}, "
         "'normalizer': {'type': 'BertNormalizer'}, 'pre_tokenizer': {'type': "
         "'BertPreTokenizer'}}",
         GARLIC_EFORMAT, "model.unk_token '[UNK]' is not a token"},
        {"config.json", "{'vocab_size': 5}", GARLIC_EFORMAT, "vocab_size 5 is smaller"},
        {"config.json", "{'vocab_size': 'big'}", GARLIC_EFORMAT, "vocab_size must be"},
        {"config.json", "{'eos_token_id': 22}", GARLIC_EFORMAT, "eos_token_id must be a token"},
        {"tokenizer_config.json", "{'bos_token': 'nope'}", GARLIC_EFORMAT,
         "bos_token 'nope' is not a token"},
        {"tokenizer_config.json", "{'eos_token': 5}", GARLIC_EFORMAT, "eos_token must be"},
        {"tokenizer_config.json", "{'add_bos_token': 'yes'}", GARLIC_EFORMAT,
         "add_bos_token must be true or false"},
        {"tokenizer_config.json", "{'add_bos_token': true}", GARLIC_EFORMAT,
         "add_bos_token is set, but no bos_token"},
        {"tokenizer_config.json", "{'chat_template': 7}", GARLIC_EFORMAT,
         "chat_template must be a string or a list"},
        {"tokenizer_config.json", "{'chat_template': [{'name': 'x'}]}", GARLIC_EFORMAT,
         "chat_template: each entry needs a name and a template"},
        {"tokenizer_config.json", "{'eos_token': '<|end|>'}  trailing", GARLIC_EFORMAT,
         "not a JSON object"},
        {"generation_config.json", "{'eos_token_id': [18, 17, 19, 16]}", GARLIC_EUNSUPPORTED,
         "more than three end tokens"},
        {"generation_config.json", "{'eos_token_id': [18, -1]}", GARLIC_EFORMAT,
         "eos_token_id must be a token id"},
        {"generation_config.json", "{'eos_token_id': 'x'}", GARLIC_EFORMAT,
         "eos_token_id must be a token id"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_refusal(&cases[i]);

    // No tokenizer.json at all.
    const char *dir = folder("empty");
    garlic_error err = {0};
    gguf_writer *w = gguf_writer_new();
    assert_int_equal(hf_tokenizer_metadata(dir, w, &err), GARLIC_ENOTFOUND);
    assert_non_null(strstr(err.message, "tokenizer.json: missing"));
    gguf_writer_free(w);
}

// Every allocation hf_tokenizer_metadata and the in-memory file make may fail: each failure
// is GARLIC_ENOMEM, never a crash or a leak, and with enough memory the folder opens.
static void test_allocation_failures(void **state)
{
    (void)state;
    const char *dirs[2] = {folder("alloc-bpe"), NULL};
    char spm_dir[600];
    snprintf(spm_dir, sizeof spm_dir, "%s", folder("alloc-spm"));
    dirs[1] = spm_dir;
    put_file(dirs[0], "tokenizer.json", bpe_json);
    put_file(dirs[0], "tokenizer_config.json",
             "{'bos_token': '<|start|>', 'chat_template': [{'name': 'default', 'template': 'T'},"
             " {'name': 'b', 'template': 'U'}]}");
    write_spm(dirs[1], "{'type': 'Replace', 'pattern': {'String': ' '}, 'content': '▁'}", "null");
    for (int d = 0; d < 2; d++) {
        int failed = 0;
        for (long n = 0;; n++) {
            garlic_error err = {0};
            garlic_alloc_fail_after(n);
            gguf_file *f = hf_tokenizer_open(dirs[d], &err);
            garlic_alloc_fail_reset();
            if (f) {
                gguf_close(f);
                break;
            }
            if (err.code != GARLIC_ENOMEM)
                fail_msg("failing allocation %ld: %s", n, err.message);
            failed++;
        }
        assert_true(failed > 10);
    }
}

// `garlic tokenize FOLDER`: a folder with only the tokenizer files, and one that also holds a
// model's config.json; a folder without tokenizer.json is named in the error.
static void test_cli(void **state)
{
    (void)state;
    const char *dir = folder("cli");
    put_file(dir, "tokenizer.json", bpe_json);
    put_file(dir, "tokenizer_config.json", "{'bos_token': '<|start|>', 'add_bos_token': true}");
    char *out = NULL, *err = NULL;
    assert_int_equal(
        test_run(&out, NULL, "%s tokenize '%s' 'hello world' --ids", test_garlic(), dir), 0);
    assert_string_equal(out, "17 11 16\n");
    free(out);
    put_file(dir, "config.json",
             "{'architectures': ['LlamaForCausalLM'], 'vocab_size': 32, 'hidden_size': 64}");
    assert_int_equal(test_run(&out, NULL, "%s tokenize '%s' '<|end|>hello' --special --no-bos",
                              test_garlic(), dir),
                     0);
    assert_non_null(strstr(out, "18  '<|end|>'"));
    assert_non_null(strstr(out, "11  'hello'"));
    free(out);
    const char *empty = folder("cli-empty");
    assert_int_equal(test_run(NULL, &err, "%s tokenize '%s' hi", test_garlic(), empty), 1);
    assert_non_null(strstr(err, "tokenizer.json: missing"));
    free(err);
}

// The first python3 that has numpy (tools/hf_folder needs it), or NULL.
static const char *python_with_numpy(void)
{
    static const char *const candidates[] = {"python3", "/usr/bin/python3"};
    for (size_t i = 0; i < sizeof candidates / sizeof candidates[0]; i++)
        if (test_run(NULL, NULL, "%s -c 'import numpy' 2>/dev/null", candidates[i]) == 0)
            return candidates[i];
    return NULL;
}

// Splits a ../shared-style .inp file (strings separated by "\n__ggml_vocab_test__\n") in
// place; returns the number of strings, their starts in items.
static size_t split_inp(char *text, char **items, size_t cap)
{
    static const char sep[] = "\n__ggml_vocab_test__\n";
    size_t n = 0;
    for (char *p = text, *e; n < cap && (e = strstr(p, sep)); p = e + strlen(sep)) {
        *e = '\0';
        items[n++] = p;
    }
    return n;
}

// Writes the tokenizer files of the GGUF vocabulary at gguf into dir with the independent
// generator (tools/hf_folder: llama.cpp's converter in reverse).
static void generate_folder(const char *py, const char *gguf, const char *dir)
{
    char *err_text = NULL;
    if (test_run(NULL, &err_text,
                 "%s -c \"import sys; sys.path.insert(0, 'tools'); from hf_folder import gguf, "
                 "tokenizer; tokenizer.write(gguf.GGUF(sys.argv[1]), sys.argv[2], 4096)\" "
                 "'%s' '%s'",
                 py, gguf, dir) != 0)
        fail_msg("%s: the generator failed: %s", gguf, err_text);
    free(err_text);
}

// Every string of inp, with and without BOS and special-token parsing: the same ids from a
// and b. Returns the number of encodings compared.
static size_t compare_on(const tokenizer *a, const tokenizer *b, const char *inp, const char *name)
{
    char *text = test_read_file(inp, NULL);
    assert_non_null(text);
    static char *items[1024];
    size_t n = split_inp(text, items, 1024), compared = 0;
    for (size_t i = 0; i < n; i++)
        for (unsigned flags = 0; flags < 4; flags++, compared++) {
            static char want[1 << 16];
            snprintf(want, sizeof want, "%s", encode_ids(a, items[i], flags));
            const char *got = encode_ids(b, items[i], flags);
            if (strcmp(want, got) != 0)
                fail_msg("%s: string %zu, flags %u: GGUF%s, folder%s", name, i, flags, want, got);
        }
    free(text);
    return compared;
}

// Folders written from GGUF vocabularies by the independent generator (SentencePiece merges
// derived from the scores as transformers does, the pre-tokenizer regexes as the published
// files write them, added tokens) tokenize every string of the vocabulary's test file as the
// GGUF itself does, with and without BOS and special-token parsing.
static void test_generated_folders(void **state)
{
    (void)state;
    const char *py = python_with_numpy();
    if (!py) {
        print_message("skipped: no python3 with numpy (tools/setup.sh installs it)\n");
        skip();
    }
    static const char *const vocabs[] = {
        "tests/data/tokenizer/gpt-4o",        "tests/data/tokenizer/deepseek-v3",
        "tokenizer/ggml-vocab-llama-spm",     "tokenizer/ggml-vocab-phi-3",
        "tokenizer/ggml-vocab-gpt-2",         "tokenizer/ggml-vocab-llama-bpe",
        "tokenizer/ggml-vocab-refact",        "tokenizer/ggml-vocab-starcoder",
        "tokenizer/ggml-vocab-deepseek-coder"};
    if (!test_shared_dir())
        print_message("../shared is absent: only tests/data/tokenizer's vocabularies\n");
    for (size_t v = 0; v < sizeof vocabs / sizeof vocabs[0]; v++) {
        bool in_shared = strncmp(vocabs[v], "tests/", 6) != 0;
        if (in_shared && !test_shared_dir())
            continue;
        char gguf[600], inp[620];
        snprintf(gguf, sizeof gguf, "%s.gguf", in_shared ? test_shared_path(vocabs[v]) : vocabs[v]);
        // ../shared's strings are in <vocab>.gguf.inp, tests/data's in <vocab>.inp
        snprintf(inp, sizeof inp, "%s.inp", in_shared ? gguf : vocabs[v]);
        const char *dir = folder("generated");
        generate_folder(py, gguf, dir);
        garlic_error err = {0};
        tokenizer *want = tokenizer_open(gguf, &err);
        assert_non_null(want);
        gguf_file *f = open_folder(dir);
        tokenizer *got = load(f);
        gguf_close(f);
        size_t n = compare_on(want, got, inp, vocabs[v]);
        print_message("%s: %zu encodings, folder equal to GGUF\n", vocabs[v], n);
        tokenizer_free(want);
        tokenizer_free(got);
    }
}

// Every seed of fuzz/corpus/tokenizer_json (files separated by NUL bytes, as the fuzz target
// reads them) is accepted and loads: the corpus starts from folders that get all the way
// through.
static void test_fuzz_corpus(void **state)
{
    (void)state;
    static const char *const seeds[] = {"gpt2",        "llama3",    "qwen2_nfc",   "gpt4o",
                                        "deepseek_v3", "starcoder", "spm_prepend", "spm_metaspace",
                                        "spm_replace", "wordpiece"};
    for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++) {
        char path[256];
        snprintf(path, sizeof path, "fuzz/corpus/tokenizer_json/%s", seeds[i]);
        size_t size;
        char *data = test_read_file(path, &size);
        assert_non_null(data);
        char *buf = malloc(size + 1);
        assert_non_null(buf);
        memcpy(buf, data, size);
        buf[size] = '\0';
        const char *texts[HF_FILE_COUNT] = {0};
        const char *p = buf;
        for (int f = 0; f < HF_FILE_COUNT && p <= buf + size; f++) {
            texts[f] = *p ? p : NULL;
            p += strlen(p) + 1;
        }
        gguf_writer *w = gguf_writer_new();
        garlic_error err = {0};
        if (hf_tokenizer_metadata_texts("seed", texts, w, &err) != GARLIC_OK)
            fail_msg("%s: %s", seeds[i], err.message);
        gguf_file *f = gguf_writer_open(w, "seed/tokenizer.json", NULL, NULL, &err);
        assert_non_null(f);
        tokenizer_free(load(f));
        gguf_close(f);
        gguf_writer_free(w);
        free(buf);
        free(data);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_byte_level),        cmocka_unit_test(test_byte_level_variants),
        cmocka_unit_test(test_sentencepiece),     cmocka_unit_test(test_wordpiece),
        cmocka_unit_test(test_refusals),          cmocka_unit_test(test_allocation_failures),
        cmocka_unit_test(test_fuzz_corpus),       cmocka_unit_test(test_cli),
        cmocka_unit_test(test_generated_folders),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
