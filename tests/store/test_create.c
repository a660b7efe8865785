// SPDX-License-Identifier: MIT
// Models made here (src/store/create.c): Ollama's Modelfile parsed (every instruction, quoting,
// comments, stop lists, and each error with its line), parameters checked as Ollama's
// "options" are, and store_create from a synthesized GGUF file, from a stored model (extras
// inherited and overridden), over an existing name (the blobs it no longer needs collected),
// and from a Hugging Face folder; extras read back and a created model resolved to a GGUF that
// opens. Each test works in a store of its own under the test's temporary directory.
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "gguf/gguf.h"
#include "model/synth.h"
#include "store/store.h"
#include "tensor/types.h"
#include "util.h"

// A fresh store folder (created) named after the test.
static const char *new_store(const char *name)
{
    static char buf[4][600];
    static int next;
    char *s = buf[next++ % 4];
    snprintf(s, sizeof buf[0], "%s", test_temp_path(name));
    garlic_error err;
    if (store_mkdirs(s, &err))
        fail_msg("%s", err.message);
    return s;
}

// Writes a small random-weight GGUF (seed picks its bytes) at path.
static void synth_gguf(const char *path, uint64_t seed)
{
    model_synth_params p;
    model_synth_params_default(&p);
    p.type = TENSOR_TYPE_Q8_0;
    p.seed = seed;
    garlic_error err;
    if (model_synth_write(&p, path, &err))
        fail_msg("%s", err.message);
}

static void parse_ok(const char *text, const char *base_dir, store_modelfile *mf)
{
    garlic_error err;
    if (store_modelfile_parse(text, strlen(text), base_dir, mf, &err))
        fail_msg("%s", err.message);
}

static void test_modelfile_all_instructions(void **state)
{
    (void)state;
    const char *text = "# a comment\n"
                       "from ./m.gguf\n"
                       "\n"
                       "  PARAMETER temperature 0.25   \n"
                       "Parameter stop \"<|im_end|>\"\n"
                       "PARAMETER stop <|user|>\r\n"
                       "PARAMETER num_ctx 4096\n"
                       "PARAMETER seed -1\n"
                       "SYSTEM \"\"\"You are\n"
                       "  a \"helpful\" assistant.\"\"\"\n"
                       "TEMPLATE \"{{ .System }} \\\"q\\\" \\\\ {{ .Prompt }}\"\n"
                       "license \"\"\"MIT\"\"\"   # trailing comment\n"
                       "\t# indented comment\n";
    store_modelfile mf;
    parse_ok(text, "/models/here", &mf);
    assert_string_equal(mf.from, "/models/here/m.gguf");
    assert_string_equal(mf.system, "You are\n  a \"helpful\" assistant.");
    assert_string_equal(mf.template_text, "{{ .System }} \"q\" \\ {{ .Prompt }}");
    assert_string_equal(mf.license, "MIT");
    cJSON *p = cJSON_Parse(mf.params_json);
    assert_non_null(p);
    assert_true(cJSON_GetObjectItem(p, "temperature")->valuedouble == 0.25);
    assert_int_equal(cJSON_GetObjectItem(p, "num_ctx")->valueint, 4096);
    assert_int_equal(cJSON_GetObjectItem(p, "seed")->valueint, -1);
    const cJSON *stop = cJSON_GetObjectItem(p, "stop");
    assert_int_equal(cJSON_GetArraySize(stop), 2);
    assert_string_equal(cJSON_GetArrayItem(stop, 0)->valuestring, "<|im_end|>");
    assert_string_equal(cJSON_GetArrayItem(stop, 1)->valuestring, "<|user|>");
    cJSON_Delete(p);
    assert_int_equal(store_params_check(mf.params_json, NULL), 0);
    store_modelfile_deinit(&mf);
    assert_null(mf.from);

    // No PARAMETER: no params; a later SYSTEM replaces an earlier one.
    parse_ok("FROM llama3.2:1b\nSYSTEM one\nSYSTEM two", NULL, &mf);
    assert_string_equal(mf.from, "llama3.2:1b"); // a store name stays a name
    assert_string_equal(mf.system, "two");
    assert_null(mf.params_json);
    assert_null(mf.template_text);
    store_modelfile_deinit(&mf);
}

static void test_modelfile_from_paths(void **state)
{
    (void)state;
    const char *dir = test_temp_path("mf-from");
    garlic_error err;
    assert_int_equal(store_mkdirs(dir, &err), 0);
    char file[700], text[800];
    snprintf(file, sizeof file, "%s/weights", dir);
    assert_int_equal(test_write_file(file, "x", 1), 0);
    store_modelfile mf;
    // A bare name that is a file beside the Modelfile is that file (made canonical).
    parse_ok("FROM weights", dir, &mf);
    char *real = realpath(file, NULL);
    assert_string_equal(mf.from, real);
    store_modelfile_deinit(&mf);
    snprintf(text, sizeof text, "FROM %s/../mf-from/weights", dir);
    parse_ok(text, "/elsewhere", &mf);
    assert_string_equal(mf.from, real);
    free(real);
    store_modelfile_deinit(&mf);
    // "~/" is $HOME.
    char *old_home = getenv("HOME") ? strdup(getenv("HOME")) : NULL;
    setenv("HOME", "/home/someone", 1);
    parse_ok("FROM ~/m/x.gguf", dir, &mf);
    assert_string_equal(mf.from, "/home/someone/m/x.gguf");
    store_modelfile_deinit(&mf);
    if (old_home)
        setenv("HOME", old_home, 1);
    free(old_home);
    // A relative base folder is taken under the working directory.
    char cwd[512], want[700];
    assert_non_null(getcwd(cwd, sizeof cwd));
    parse_ok("FROM absent.gguf", "sub", &mf);
    snprintf(want, sizeof want, "%s/sub/absent.gguf", cwd);
    assert_string_equal(mf.from, want);
    store_modelfile_deinit(&mf);
}

static void test_modelfile_errors(void **state)
{
    (void)state;
    static const struct {
        const char *text, *message;
    } cases[] = {
        {"FROM x\n# ok\nADAPTER ./lora.gguf\n", "line 3: ADAPTER is not supported by garlic"},
        {"FROM x\nmessage user hi\n", "line 2: MESSAGE is not supported by garlic"},
        {"FROM x\nREQUIRES 0.5\n", "line 2: REQUIRES is not supported by garlic"},
        {"FROM x\nFORM y\n", "line 2: unknown instruction 'FORM'"},
        {"SYSTEM hi\n", "no FROM line"},
        {"", "no FROM line"},
        {"# only a comment\n", "no FROM line"},
        {"FROM x\nPARAMETER mirostat 1\n", "line 2: PARAMETER 'mirostat' is not an option"},
        {"FROM x\nPARAMETER temperature hot\n",
         "line 2: PARAMETER temperature: 'hot' is not a "
         "number"},
        {"FROM x\n\nPARAMETER top_k 2.5\n", "line 3: parameter 'top_k' must be an integer"},
        {"FROM x\nPARAMETER top_p 2\n", "line 2: parameter 'top_p' is 2, must be from 0 to 1"},
        {"FROM x\nPARAMETER num_ctx 1e300\n", "line 2: parameter 'num_ctx' is 1e+300"},
        {"FROM x\nPARAMETER temperature\n", "line 2: PARAMETER needs a value"},
        {"FROM x\nPARAMETER\n", "line 2: PARAMETER needs a name and a value"},
        {"FROM x\nSYSTEM\n", "line 2: SYSTEM needs a value"},
        {"FROM x\nSYSTEM \"\"\"one\ntwo\n",
         "line 2: SYSTEM: the \"\"\" opened here is never "
         "closed"},
        {"FROM x\nTEMPLATE \"abc\n\"\n", "line 2: TEMPLATE: the quoted value is never closed"},
        {"FROM x\nSYSTEM \"\"\"a\nb\"\"\" extra\n",
         "line 3: unexpected text after the closing "
         "\"\"\""},
        {"FROM x\nFROM y\n", "line 2: a second FROM"},
        {"FROM \"\"\"x\"\"\"\nSYSTEM \"a\" b\n",
         "line 2: unexpected text after the closing "
         "quote"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        store_modelfile mf;
        garlic_error err;
        int rc = store_modelfile_parse(cases[i].text, strlen(cases[i].text), "/d", &mf, &err);
        if (rc == 0)
            fail_msg("case %zu parsed: %s", i, cases[i].text);
        if (!strstr(err.message, cases[i].message))
            fail_msg("case %zu: '%s' does not say '%s'", i, err.message, cases[i].message);
        assert_null(mf.from); // nothing is left to free after a failure
    }
    // Too many stop strings, and a NUL byte.
    char text[2048] = "FROM x\n";
    for (int i = 0; i < 17; i++)
        snprintf(text + strlen(text), sizeof text - strlen(text), "PARAMETER stop s%d\n", i);
    store_modelfile mf;
    garlic_error err;
    assert_int_not_equal(store_modelfile_parse(text, strlen(text), NULL, &mf, &err), 0);
    assert_non_null(strstr(err.message, "line 18: parameter 'stop' has 17 strings"));
    static const char nul[] = "FROM x\nSYSTEM a\0b\n";
    assert_int_not_equal(store_modelfile_parse(nul, sizeof nul - 1, NULL, &mf, &err), 0);
    assert_non_null(strstr(err.message, "line 2: a NUL byte"));
}

static void test_params_check(void **state)
{
    (void)state;
    garlic_error err;
    assert_int_equal(store_params_check("{}", &err), 0);
    assert_int_equal(store_params_check("{\"temperature\": 0, \"top_p\": 1, \"top_k\": 40, "
                                        "\"min_p\": 0.05, \"repeat_penalty\": 1.1, "
                                        "\"repeat_last_n\": -1, \"presence_penalty\": -2, "
                                        "\"frequency_penalty\": 2, \"seed\": 42, \"stop\": \"x\", "
                                        "\"num_predict\": -2, \"num_ctx\": 2048}",
                                        &err),
                     0);
    static const struct {
        const char *json, *message;
    } cases[] = {
        {"[1]", "must be a JSON object"},
        {"{", "not valid JSON"},
        {"{\"mirostat\": 1}", "'mirostat' is not an option garlic honours"},
        {"{\"temperature\": \"hot\"}", "'temperature' must be a number"},
        {"{\"num_ctx\": 1.5}", "'num_ctx' must be an integer"},
        {"{\"top_k\": \"40\"}", "'top_k' must be an integer"},
        {"{\"repeat_penalty\": 0}", "'repeat_penalty' is 0, must be from 0.0001 to 100"},
        {"{\"presence_penalty\": 3}", "'presence_penalty' is 3"},
        {"{\"stop\": [\"a\", 1]}", "'stop' must be a string or a list of strings"},
        {"{\"stop\": {}}", "'stop' must be a string or a list of strings"},
        {"{\"num_predict\": -3}", "'num_predict' is -3"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_not_equal(store_params_check(cases[i].json, &err), 0);
        if (!strstr(err.message, cases[i].message))
            fail_msg("%s: '%s' does not say '%s'", cases[i].json, err.message, cases[i].message);
    }
}

// The manifest of name in root (failing the test when it cannot be read).
static void read_manifest(const char *root, const char *name, store_manifest *m)
{
    store_name n;
    garlic_error err;
    if (store_name_parse(name, &n, &err) || store_manifest_read(root, &n, m, &err))
        fail_msg("%s", err.message);
}

static bool blob_exists(const char *root, const char *digest)
{
    char path[STORE_PATH_MAX];
    struct stat st;
    store_blob_path(root, digest, path, sizeof path);
    return stat(path, &st) == 0;
}

static void create_ok(const char *root, const store_create_request *r)
{
    garlic_error err;
    if (store_create(root, r, NULL, &err))
        fail_msg("create %s: %s", r->name, err.message);
}

static void test_create_from_gguf(void **state)
{
    (void)state;
    const char *root = new_store("from-gguf");
    char src[700];
    snprintf(src, sizeof src, "%s", test_temp_path("source-1.gguf"));
    synth_gguf(src, 1);
    create_ok(root, &(store_create_request){.name = "tiny", .from = src});
    store_manifest m;
    read_manifest(root, "tiny", &m);
    assert_string_equal(m.format, "gguf");
    assert_string_equal(m.quantization, "Q8_0"); // the type of most of its bytes
    assert_string_equal(m.source, "");
    assert_int_equal(m.n_files, 1);
    assert_string_equal(m.files[0].path, "source-1.gguf");
    char hex[STORE_DIGEST_HEX + 1], blob[STORE_PATH_MAX];
    garlic_error err;
    assert_int_equal(store_sha256_file(src, hex, &err), 0);
    assert_string_equal(m.files[0].digest, hex);
    size_t n1, n2;
    store_blob_path(root, hex, blob, sizeof blob);
    void *a = test_read_file(src, &n1), *b = test_read_file(blob, &n2);
    assert_non_null(b);
    assert_int_equal(n1, n2);
    assert_int_equal(m.size, n1);
    assert_memory_equal(a, b, n1);
    free(a), free(b);
    store_extras e;
    assert_int_equal(store_extras_read(root, &m, &e, &err), 0);
    assert_null(e.template_text), assert_null(e.system), assert_null(e.params_json);
    assert_null(e.license);
    // The name resolves to a GGUF that opens.
    setenv("GARLIC_MODELS", root, 1);
    char path[STORE_PATH_MAX];
    assert_int_equal(store_resolve("tiny:latest", path, sizeof path, &err), 0);
    assert_string_equal(path, blob);
    gguf_file *f = gguf_open(path, &err);
    assert_non_null(f);
    gguf_close(f);
    unsetenv("GARLIC_MODELS");
    // No temporary file or second blob is left behind, and creating again copies nothing new.
    create_ok(root, &(store_create_request){.name = "tiny", .from = src});
    char *out;
    test_run(&out, NULL, "ls '%s/blobs'", root);
    char want[100];
    snprintf(want, sizeof want, "sha256-%s\n", hex);
    assert_string_equal(out, want);
    free(out);
}

static void test_create_inherits_extras(void **state)
{
    (void)state;
    const char *root = new_store("inherit");
    char src[700];
    snprintf(src, sizeof src, "%s", test_temp_path("source-2.gguf"));
    synth_gguf(src, 2);
    create_ok(root,
              &(store_create_request){
                  .name = "base:v1",
                  .from = src,
                  .template_text = "{{ .Prompt }}",
                  .system = "Be brief.",
                  .params_json = "{\"temperature\": 0.2, \"stop\": [\"<end>\"]}",
                  .license = "MIT",
              });
    create_ok(root,
              &(store_create_request){
                  .name = "child",
                  .from = "base:v1",
                  .system = "Be kind.",
                  .params_json = "{\"temperature\": 0.9, \"num_ctx\": 512}",
                  .license = "", // removes the inherited licence
              });
    store_manifest base, child;
    read_manifest(root, "base:v1", &base);
    read_manifest(root, "child", &child);
    assert_int_equal(base.n_files, 5);
    assert_string_equal(base.files[0].path, "source-2.gguf"); // the weights come first
    assert_string_equal(base.files[1].path, "template");
    assert_string_equal(base.files[2].path, "system");
    assert_string_equal(base.files[3].path, "params");
    assert_string_equal(base.files[4].path, "license");
    assert_int_equal(child.n_files, 4);
    assert_string_equal(child.files[0].digest, base.files[0].digest); // shared, not copied
    assert_string_equal(child.quantization, base.quantization);
    assert_string_equal(child.format, "gguf");
    store_extras e;
    garlic_error err;
    assert_int_equal(store_extras_read(root, &child, &e, &err), 0);
    assert_string_equal(e.template_text, "{{ .Prompt }}");
    assert_string_equal(e.system, "Be kind.");
    assert_null(e.license);
    cJSON *p = cJSON_Parse(e.params_json);
    assert_true(cJSON_GetObjectItem(p, "temperature")->valuedouble == 0.9);
    assert_int_equal(cJSON_GetObjectItem(p, "num_ctx")->valueint, 512);
    assert_string_equal(cJSON_GetArrayItem(cJSON_GetObjectItem(p, "stop"), 0)->valuestring,
                        "<end>");
    cJSON_Delete(p);
    store_extras_deinit(&e);
    assert_null(e.system);
    assert_int_equal(store_extras_read(root, &base, &e, &err), 0);
    assert_string_equal(e.license, "MIT");
    assert_string_equal(e.params_json, "{\"temperature\":0.2,\"stop\":[\"<end>\"]}");
    store_extras_deinit(&e);
    // A missing extras blob is an error naming it.
    char blob[STORE_PATH_MAX];
    store_blob_path(root, base.files[4].digest, blob, sizeof blob);
    assert_int_equal(unlink(blob), 0);
    assert_int_not_equal(store_extras_read(root, &base, &e, &err), 0);
    assert_non_null(strstr(err.message, blob));
    assert_null(e.template_text); // nothing is left to free after a failure
}

static void test_create_over_existing(void **state)
{
    (void)state;
    const char *root = new_store("replace");
    char one[700], two[700];
    snprintf(one, sizeof one, "%s", test_temp_path("source-3.gguf"));
    snprintf(two, sizeof two, "%s", test_temp_path("source-4.gguf"));
    synth_gguf(one, 3);
    synth_gguf(two, 4);
    create_ok(root, &(store_create_request){.name = "m", .from = one, .system = "first"});
    create_ok(root, &(store_create_request){.name = "keeper", .from = "m"});
    store_manifest first, now;
    read_manifest(root, "m", &first);
    // Replacing m keeps the weights keeper names, and the system blob keeper inherited.
    create_ok(root, &(store_create_request){.name = "m", .from = two, .system = "second"});
    read_manifest(root, "m", &now);
    assert_string_not_equal(now.files[0].digest, first.files[0].digest);
    assert_true(blob_exists(root, first.files[0].digest));
    assert_true(blob_exists(root, first.files[1].digest));
    // Replacing it again drops the blob of "second", which nothing names any more.
    store_manifest second = now;
    create_ok(root, &(store_create_request){.name = "m", .from = "m", .system = "third"});
    read_manifest(root, "m", &now);
    assert_string_equal(now.files[0].digest, second.files[0].digest);
    assert_false(blob_exists(root, second.files[1].digest));
    assert_true(blob_exists(root, now.files[1].digest));
    store_extras e;
    garlic_error err;
    assert_int_equal(store_extras_read(root, &now, &e, &err), 0);
    assert_string_equal(e.system, "third");
    store_extras_deinit(&e);
}

static void test_create_from_folder(void **state)
{
    (void)state;
    const char *root = new_store("folder");
    char dir[600], path[700];
    snprintf(dir, sizeof dir, "%s", test_temp_path("hf-model"));
    garlic_error err;
    snprintf(path, sizeof path, "%s/sub", dir);
    assert_int_equal(store_mkdirs(path, &err), 0);
    static const struct {
        const char *name, *bytes;
    } files[] = {
        {"config.json", "{\"architectures\": [\"LlamaForCausalLM\"]}"},
        {"tokenizer.json", "{}"},
        {"model-00002-of-00002.safetensors", "second shard"},
        {"model-00001-of-00002.safetensors", "first shard"},
        {"chat_template.jinja", "{{ messages }}"},
        {"tokenizer.model", "spm"},
        {"README.md", "not needed"},
        {".hidden.json", "not needed"},
        {"sub/nested.json", "not needed"},
    };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i].name);
        assert_int_equal(test_write_file(path, files[i].bytes, strlen(files[i].bytes)), 0);
    }
    create_ok(root, &(store_create_request){.name = "hf-model", .from = dir, .system = "s"});
    store_manifest m;
    read_manifest(root, "hf-model", &m);
    assert_string_equal(m.format, "folder");
    assert_string_equal(m.quantization, "");
    static const char *const want[] = {"model-00001-of-00002.safetensors",
                                       "model-00002-of-00002.safetensors",
                                       "chat_template.jinja",
                                       "config.json",
                                       "tokenizer.json",
                                       "tokenizer.model",
                                       "system"};
    assert_int_equal(m.n_files, sizeof want / sizeof want[0]);
    for (size_t i = 0; i < m.n_files; i++) {
        assert_string_equal(m.files[i].path, want[i]);
        char blob[STORE_PATH_MAX];
        store_blob_path(root, m.files[i].digest, blob, sizeof blob);
        size_t n;
        char *bytes = test_read_file(blob, &n);
        assert_non_null(bytes);
        assert_int_equal(n, m.files[i].size);
        free(bytes);
    }
    // A stored folder resolves to a folder of links to its blobs, under the files' names.
    setenv("GARLIC_MODELS", root, 1);
    char resolved[STORE_PATH_MAX], config[STORE_PATH_MAX + 32];
    assert_int_equal(store_resolve("hf-model", resolved, sizeof resolved, &err), 0);
    snprintf(config, sizeof config, "%s/config.json", resolved);
    size_t n_config;
    char *bytes = test_read_file(config, &n_config);
    assert_non_null(bytes);
    free(bytes);
    unsetenv("GARLIC_MODELS");
}

static void test_create_errors(void **state)
{
    (void)state;
    const char *root = new_store("errors");
    char text_file[700], bare_dir[700], missing[700];
    snprintf(text_file, sizeof text_file, "%s", test_temp_path("not-a-model.gguf"));
    assert_int_equal(test_write_file(text_file, "hello, world\n", 13), 0);
    snprintf(bare_dir, sizeof bare_dir, "%s", test_temp_path("bare-folder"));
    garlic_error err;
    assert_int_equal(store_mkdirs(bare_dir, &err), 0);
    snprintf(missing, sizeof missing, "%s", test_temp_path("missing.gguf"));
    char good[700];
    snprintf(good, sizeof good, "%s", test_temp_path("source-5.gguf"));
    synth_gguf(good, 5);
    const struct {
        store_create_request r;
        const char *message;
    } cases[] = {
        {{.name = "x", .from = text_file}, text_file},
        {{.name = "x", .from = bare_dir}, "without config.json"},
        {{.name = "x", .from = missing}, missing},
        {{.name = "x", .from = "not-stored"}, "not-stored"},
        {{.name = "x", .from = NULL}, "no FROM"},
        {{.name = "x", .from = ""}, "no FROM"},
        {{.name = "bad name!", .from = good}, "bad name!"},
        {{.name = NULL, .from = good}, "needs a name"},
        {{.name = "x", .from = good, .params_json = "{\"bogus\": 1}"}, "'bogus'"},
        {{.name = "x", .from = good, .params_json = "{\"seed\": \"x\"}"}, "'seed'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_not_equal(store_create(root, &cases[i].r, NULL, &err), 0);
        if (!strstr(err.message, cases[i].message))
            fail_msg("case %zu: '%s' does not say '%s'", i, err.message, cases[i].message);
    }
    // Nothing became visible, and no blob or temporary file was left.
    char *out;
    test_run(&out, NULL, "cd '%s' && find blobs manifests -type f 2>/dev/null", root);
    assert_string_equal(out, "");
    free(out);
}

// Fails the Nth allocation of a create for each N until it succeeds: each failure is a clean
// error and leaves no model behind.
static void test_create_out_of_memory(void **state)
{
    (void)state;
    const char *root = new_store("oom");
    char src[700];
    snprintf(src, sizeof src, "%s", test_temp_path("source-6.gguf"));
    synth_gguf(src, 6);
    const char *text = "FROM ./source-6.gguf\nSYSTEM s\nPARAMETER stop a\nPARAMETER top_k 4\n";
    char dir[600];
    snprintf(dir, sizeof dir, "%s", test_temp_path(""));
    for (long n = 0;; n++) {
        garlic_error err = {0};
        store_modelfile mf;
        garlic_alloc_fail_after(n);
        int rc = store_modelfile_parse(text, strlen(text), dir, &mf, &err);
        if (rc == 0) {
            store_create_request r = {
                .name = "oom", .from = mf.from, .system = mf.system, .params_json = mf.params_json};
            rc = store_create(root, &r, NULL, &err);
            store_modelfile_deinit(&mf);
        }
        garlic_alloc_fail_reset();
        if (rc == 0)
            break;
        assert_int_equal(rc, GARLIC_ENOMEM);
        assert_true(n < 1000);
    }
    store_manifest m;
    read_manifest(root, "oom", &m);
    assert_int_equal(m.n_files, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_modelfile_all_instructions),
        cmocka_unit_test(test_modelfile_from_paths),
        cmocka_unit_test(test_modelfile_errors),
        cmocka_unit_test(test_params_check),
        cmocka_unit_test(test_create_from_gguf),
        cmocka_unit_test(test_create_inherits_extras),
        cmocka_unit_test(test_create_over_existing),
        cmocka_unit_test(test_create_from_folder),
        cmocka_unit_test(test_create_errors),
        cmocka_unit_test(test_create_out_of_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
