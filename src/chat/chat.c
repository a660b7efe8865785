// SPDX-License-Identifier: MIT
// The public face of chat templates (chat.h): parsing a template into its own arena,
// turning a render's inputs (JSON variables, tokens, a fixed clock, limits) into the
// top-level scope of a render context, running the interpreter and handing back a plain
// string, and the fallback transcript for models that carry no template.
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "chat/chat.h"
#include "chat/internal.h"

enum { TEMPLATE_ARENA_LIMIT = 64 << 20 };

// Lexes and parses src into a template that owns its own arena; NULL and err on failure.
chat_template *chat_template_parse(const char *src, size_t len, const char *name, garlic_error *err)
{
    garlic_error local;
    if (!err)
        err = &local;
    err->code = GARLIC_OK;
    err->message[0] = '\0';
    if (!name)
        name = "template";
    chat_template *t = garlic_calloc(1, sizeof *t);
    if (!t || !(t->name = garlic_strndup(name, strlen(name)))) {
        garlic_free(t);
        garlic_error_set(err, GARLIC_ENOMEM, "%s: out of memory", name);
        return NULL;
    }
    t->arena.limit = TEMPLATE_ARENA_LIMIT;
    chat_token_list toks = {0};
    int rc = chat_lex(&t->arena, t->name, src ? src : "", src ? len : 0, &toks, err);
    if (rc == GARLIC_OK)
        rc = chat_parse_tokens(t, &toks, err);
    if (rc) {
        chat_template_free(t);
        return NULL;
    }
    return t;
}

void chat_template_free(chat_template *t)
{
    if (!t)
        return;
    chat_arena_release(&t->arena);
    garlic_free(t->name);
    garlic_free(t);
}

// Defines every member of a JSON object as a top-level variable.
static int define_members(render_ctx *c, const chat_value *obj, const char *what)
{
    if (obj->type != CHAT_DICT)
        return garlic_error_set(c->err, GARLIC_EINVAL, "%s: variables must be a JSON object", what);
    for (size_t i = 0; i < obj->dict->n; i++) {
        const chat_value *k = &obj->dict->keys[i];
        if (chat_render_define(c, k->s.ptr, obj->dict->vals[i]))
            return garlic_error_set(c->err, GARLIC_ENOMEM, "%s: out of memory", what);
    }
    return GARLIC_OK;
}

static int define_json(render_ctx *c, const char *name, const char *json, size_t len)
{
    chat_value v = chat_none();
    if (json) {
        garlic_error jerr;
        if (chat_json_parse(&c->arena, json, len, &v, &jerr))
            return garlic_error_set(c->err, jerr.code, "%s: %s", name, jerr.message);
    }
    return chat_render_define(c, name, v) ? garlic_error_set(c->err, GARLIC_ENOMEM, "out of memory")
                                          : GARLIC_OK;
}

static int define_string(render_ctx *c, const char *name, const char *text)
{
    if (!text)
        return GARLIC_OK; // NULL stays undefined, as transformers passes nothing
    chat_value v = chat_str_copy(&c->arena, text, strlen(text));
    if (v.type != CHAT_STRING || chat_render_define(c, name, v))
        return garlic_error_set(c->err, GARLIC_ENOMEM, "out of memory");
    return GARLIC_OK;
}

// Defines name from a parsed tree (cJSON) when it is set, else from JSON text.
static int define_input(render_ctx *c, const char *name, const struct cJSON *tree, const char *json,
                        size_t len)
{
    if (!tree)
        return define_json(c, name, json, len);
    chat_value v;
    garlic_error terr;
    if (chat_value_from_tree(&c->arena, tree, &v, &terr))
        return garlic_error_set(c->err, terr.code, "%s: %s", name, terr.message);
    return chat_render_define(c, name, v) ? garlic_error_set(c->err, GARLIC_ENOMEM, "out of memory")
                                          : GARLIC_OK;
}

// The variables of a render from the separate fields, in transformers' order.
static int define_fields(render_ctx *c, const chat_vars *v)
{
    int rc = v->messages || v->messages_json
        ? define_input(c, "messages", v->messages, v->messages_json, v->messages_len)
        : define_json(c, "messages", "[]", 2);
    if (rc || (rc = define_input(c, "tools", v->tools, v->tools_json, v->tools_len)) ||
        (rc = define_json(c, "documents", NULL, 0)))
        return rc;
    if (chat_render_define(c, "add_generation_prompt", chat_bool(v->add_generation_prompt)))
        return garlic_error_set(c->err, GARLIC_ENOMEM, "out of memory");
    if ((rc = define_string(c, "bos_token", v->bos_token)) ||
        (rc = define_string(c, "eos_token", v->eos_token)))
        return rc;
    if (!v->extra_json && !v->extra)
        return GARLIC_OK;
    chat_value extra;
    garlic_error jerr;
    if (v->extra ? chat_value_from_tree(&c->arena, v->extra, &extra, &jerr)
                 : chat_json_parse(&c->arena, v->extra_json, v->extra_len, &extra, &jerr))
        return garlic_error_set(c->err, jerr.code, "extra variables: %s", jerr.message);
    return define_members(c, &extra, "extra variables");
}

// The top-level variables of a render: a variables object (or its member), else the fields.
static int define_variables(render_ctx *c, const chat_vars *v)
{
    if (!v->variables_json)
        return define_fields(c, v);
    chat_value obj;
    garlic_error jerr;
    if (chat_json_parse(&c->arena, v->variables_json, v->variables_len, &obj, &jerr))
        return garlic_error_set(c->err, jerr.code, "variables: %s", jerr.message);
    if (v->variables_member) {
        const chat_value *member = obj.type == CHAT_DICT
            ? chat_dict_get(obj.dict, v->variables_member, strlen(v->variables_member))
            : NULL;
        if (!member)
            return garlic_error_set(c->err, GARLIC_EINVAL, "variables: no member '%s'",
                                    v->variables_member);
        obj = *member;
    }
    return define_members(c, &obj, "variables");
}

static void setup_limits(render_ctx *c, const chat_limits *l)
{
    c->max_output = l && l->max_output ? l->max_output : CHAT_DEFAULT_MAX_OUTPUT;
    c->arena.limit = l && l->max_memory ? l->max_memory : CHAT_DEFAULT_MAX_MEMORY;
    c->max_steps = l && l->max_steps ? l->max_steps : CHAT_DEFAULT_MAX_STEPS;
    c->max_depth = l && l->max_depth ? l->max_depth : CHAT_DEFAULT_MAX_DEPTH;
}

// Sets up a render context (limits, clock, variables), runs the template and releases the
// render's arena; only *out survives, owned by the caller.
int chat_template_render(const chat_template *t, const chat_vars *vars, char **out, size_t *out_len,
                         garlic_error *err)
{
    garlic_error local;
    if (!err)
        err = &local;
    *out = NULL;
    *out_len = 0;
    render_ctx c = {.tpl = t, .err = err, .work_start = chat_work_units};
    setup_limits(&c, vars->limits);
    if (vars->now) {
        int n = sscanf(vars->now, "%d-%d-%dT%d:%d:%d", &c.now[0], &c.now[1], &c.now[2], &c.now[3],
                       &c.now[4], &c.now[5]);
        if (n < 3)
            return garlic_error_set(err, GARLIC_EINVAL,
                                    "fixed time '%s' is not YYYY-MM-DDTHH:MM:SS", vars->now);
        c.has_now = true;
    }
    int rc = define_variables(&c, vars);
    if (rc == GARLIC_OK)
        rc = chat_render_template(&c, out, out_len);
    chat_arena_release(&c.arena);
    return rc;
}

static const char fallback_source[] =
    "{%- for message in messages -%}\n"
    "{%- if not loop.first %}{{ '\\n\\n' }}{% endif -%}\n"
    "{{ message.role }}:\n"
    "{%- if message.content is string %} {{ message.content }}\n"
    "{%- elif message.content is iterable and message.content is not mapping -%}\n"
    "{%- for part in message.content if part is mapping and part.type == 'text' %} {{ part.text }}{% endfor -%}\n"
    "{%- endif -%}\n"
    "{%- for call in message.tool_calls or [] %}\n"
    "{%- set fn = call.function if call.function is defined else call %}\n"
    "{{ '\\n' }}tool call: {{ fn.name }}({{ fn.arguments if fn.arguments is string else fn.arguments | tojson }})\n"
    "{%- endfor -%}\n"
    "{%- endfor -%}\n"
    "{%- if add_generation_prompt %}{% if messages %}{{ '\\n\\n' }}{% endif %}assistant:{% endif -%}\n";

const char *chat_fallback_source(void) { return fallback_source; }

int chat_fallback_render(const chat_vars *vars, char **out, size_t *out_len, garlic_error *err)
{
    chat_template *t = chat_template_parse(fallback_source, sizeof fallback_source - 1, "fallback",
                                           err);
    if (!t)
        return err ? err->code : GARLIC_EINVAL;
    int rc = chat_template_render(t, vars, out, out_len, err);
    chat_template_free(t);
    return rc;
}
