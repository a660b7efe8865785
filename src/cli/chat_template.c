// SPDX-License-Identifier: MIT
// `garlic chat-template MODEL.gguf|FILE.jinja --messages FILE.json`: prints exactly the
// prompt a model receives, and nothing else. FILE.json is a plain list of messages, an
// object of variables, or a reference case file (whose `variables` hold everything and whose
// `fixed_datetime` feeds strftime_now). For a GGUF, BOS/EOS come from its vocabulary, and a
// model without a template gets the documented fallback transcript.
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/file.h"
#include "chat/chat.h"
#include "cli/cli.h"
#include "gguf/gguf.h"
#include "hf/hf.h"
#include "model/info.h"

static const cli_command chat_template_command = {
    .name = "chat-template",
    .usage = "MODEL.gguf|FILE.jinja --messages FILE.json [options]",
    .about = "Prints exactly the prompt a chat template renders, and nothing else. FILE.json is "
             "a list of\nmessages, an object of variables, or a reference case file (its "
             "`variables` hold them, its\n`fixed_datetime` feeds strftime_now). A GGUF gives "
             "its own template (or the fallback transcript)\nand its BOS/EOS texts.",
};

enum { MAX_INPUT_BYTES = 64 << 20 }; // a template or a --messages file

// Reads a whole file into a NUL-terminated garlic_malloc'd buffer; NULL with a message.
static char *read_file(const char *path, size_t *len)
{
    char *text = NULL;
    garlic_error err = {0};
    if (garlic_file_read(path, MAX_INPUT_BYTES, &text, len, &err)) {
        fprintf(stderr, "garlic chat-template: %s\n", err.message);
        return NULL;
    }
    return text;
}

typedef struct template_source {
    char *text; // garlic_malloc'd, NULL: use the fallback
    size_t len;
    char *bos, *eos; // garlic_malloc'd token texts from a GGUF, or NULL
} template_source;

static char *token_text(const gguf_file *f, const model_info *info, int role)
{
    gguf_string s;
    if (info->special[role].id < 0 || !model_info_token_text(f, info->special[role].id, &s))
        return NULL;
    return garlic_strndup(s.data, s.len);
}

// Loads the template (and BOS/EOS texts) from a GGUF's metadata.
static int load_gguf(const char *path, template_source *src)
{
    garlic_error err;
    gguf_file *f = hf_open_model(path, &(hf_open_options){.meta_only = true}, &err);
    if (!f) {
        fprintf(stderr, "garlic chat-template: %s\n", err.message);
        return 1;
    }
    model_info info;
    if (model_info_read(f, &info, &err) != GARLIC_OK) {
        fprintf(stderr, "garlic chat-template: %s\n", err.message);
        gguf_close(f);
        return 1;
    }
    gguf_string tmpl;
    if (gguf_get_str(f, "tokenizer.chat_template", &tmpl) == GARLIC_OK) {
        src->text = garlic_strndup(tmpl.data, tmpl.len);
        src->len = tmpl.len;
    }
    src->bos = token_text(f, &info, 0);
    src->eos = token_text(f, &info, 1);
    gguf_close(f);
    return 0;
}

static bool is_gguf(const char *path)
{
    FILE *f = fopen(path, "rb");
    char magic[4] = {0};
    if (f) {
        if (fread(magic, 1, 4, f) != 4)
            magic[0] = 0;
        fclose(f);
    }
    return memcmp(magic, "GGUF", 4) == 0;
}

// Fills vars from the --messages file: a list (messages), a case file or an object.
static int messages_vars(const char *json, size_t len, chat_vars *vars, char **now)
{
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root) {
        fprintf(stderr, "garlic chat-template: --messages: not valid JSON\n");
        return 1;
    }
    if (cJSON_IsArray(root)) {
        vars->messages_json = json;
        vars->messages_len = len;
    } else if (cJSON_IsObject(root)) {
        vars->variables_json = json;
        vars->variables_len = len;
        if (cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(root, "variables")))
            vars->variables_member = "variables";
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "fixed_datetime");
        if (cJSON_IsString(t) && !*now)
            *now = garlic_strndup(t->valuestring, strlen(t->valuestring));
    } else {
        fprintf(stderr, "garlic chat-template: --messages: expected a list or an object\n");
        cJSON_Delete(root);
        return 1;
    }
    cJSON_Delete(root);
    return 0;
}

// Renders the template (or the fallback) and writes exactly the result to stdout.
static int render_and_print(const template_source *src, const chat_vars *vars, const char *name)
{
    garlic_error err = {0};
    char *out = NULL;
    size_t len = 0;
    int rc;
    if (src->text) {
        chat_template *t = chat_template_parse(src->text, src->len, name, &err);
        rc = t ? chat_template_render(t, vars, &out, &len, &err) : err.code;
        chat_template_free(t);
    } else {
        rc = chat_fallback_render(vars, &out, &len, &err);
    }
    if (rc) {
        fprintf(stderr, "garlic chat-template: %s\n", err.message);
        return 1;
    }
    fwrite(out, 1, len, stdout);
    garlic_free(out);
    return fflush(stdout) == 0 ? 0 : 1;
}

// `garlic chat-template`: parses options, loads the template and the variables, prints.
int cli_chat_template(int argc, char **argv)
{
    const char *path = NULL, *messages = NULL, *bos = NULL, *eos = NULL, *now_flag = NULL;
    bool no_gen_prompt = false;
    const cli_option options[] = {
        cli_arg("MODEL.gguf|FILE.jinja", "a model with a template, or a template file", &path),
        cli_string("--messages", "FILE.json",
                   "a list of messages, an object of variables, or "
                   "a case file",
                   &messages),
        cli_flag("--no-generation-prompt",
                 "add_generation_prompt=false (default true for a "
                 "list)",
                 &no_gen_prompt),
        cli_string("--bos", "TEXT", "bos_token (a GGUF gives its own)", &bos),
        cli_string("--eos", "TEXT", "eos_token (a GGUF gives its own)", &eos),
        cli_string("--now", "YYYY-MM-DDTHH:MM:SS", "the time strftime_now formats", &now_flag),
        {0},
    };
    int rc = cli_parse(&chat_template_command, options, argc, argv);
    if (rc != CLI_CONTINUE)
        return rc;
    if (!messages)
        return cli_usage_error(&chat_template_command, "--messages FILE.json is missing");
    bool gen_prompt = !no_gen_prompt;
    char *now = now_flag ? garlic_strndup(now_flag, strlen(now_flag)) : NULL;
    template_source src = {0};
    rc = 0;
    if (is_gguf(path))
        rc = load_gguf(path, &src);
    else if (!(src.text = read_file(path, &src.len)))
        rc = 1;
    size_t json_len = 0;
    char *json = rc ? NULL : read_file(messages, &json_len);
    chat_vars vars = {.add_generation_prompt = gen_prompt};
    if (!rc && !json)
        rc = 1;
    if (!rc)
        rc = messages_vars(json, json_len, &vars, &now);
    vars.bos_token = bos ? bos : src.bos;
    vars.eos_token = eos ? eos : src.eos;
    vars.now = now;
    if (!rc)
        rc = render_and_print(&src, &vars, path);
    garlic_free(json);
    garlic_free(src.text);
    garlic_free(src.bos);
    garlic_free(src.eos);
    garlic_free(now);
    return rc;
}
