// SPDX-License-Identifier: MIT
// Render inputs given as parsed JSON (cJSON trees, as the API layer and `garlic run` hold
// them) become template values directly: a walk over the tree, with no second parse of the
// request's text. Objects keep their key order; a number is an int when it is integral and
// within 2^53 (cJSON keeps no other trace of how it was written), else a float.
#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

#include "chat/internal.h"

enum { TREE_MAX_DEPTH = 200 }; // as deep as the template JSON reader goes

static int convert(chat_arena *a, const cJSON *item, int depth, chat_value *out);

static int convert_list(chat_arena *a, const cJSON *item, int depth, chat_value *out)
{
    chat_list *l = chat_list_new(a, (size_t)cJSON_GetArraySize(item));
    if (!l)
        return GARLIC_ENOMEM;
    for (const cJSON *e = item->child; e; e = e->next) {
        chat_value v;
        int rc = convert(a, e, depth + 1, &v);
        if (rc)
            return rc;
        if (chat_list_push(a, l, v))
            return GARLIC_ENOMEM;
    }
    *out = (chat_value){.type = CHAT_LIST, .list = l};
    return GARLIC_OK;
}

static int convert_dict(chat_arena *a, const cJSON *item, int depth, chat_value *out)
{
    chat_dict *d = chat_dict_new(a, (size_t)cJSON_GetArraySize(item));
    if (!d)
        return GARLIC_ENOMEM;
    for (const cJSON *e = item->child; e; e = e->next) {
        const char *name = e->string ? e->string : "";
        chat_value key = chat_str_copy(a, name, strlen(name)), v;
        if (key.type != CHAT_STRING)
            return GARLIC_ENOMEM;
        int rc = convert(a, e, depth + 1, &v);
        if (rc)
            return rc;
        if (chat_dict_set(a, d, key, v))
            return GARLIC_ENOMEM;
    }
    *out = (chat_value){.type = CHAT_DICT, .dict = d};
    return GARLIC_OK;
}

static int convert(chat_arena *a, const cJSON *item, int depth, chat_value *out)
{
    if (depth > TREE_MAX_DEPTH)
        return GARLIC_EINVAL;
    if (cJSON_IsNull(item)) {
        *out = chat_none();
    } else if (cJSON_IsBool(item)) {
        *out = chat_bool(cJSON_IsTrue(item));
    } else if (cJSON_IsNumber(item)) {
        double d = item->valuedouble;
        bool integral = isfinite(d) && d == floor(d) && fabs(d) <= 9007199254740992.0;
        *out = integral ? chat_int((int64_t)d) : chat_float(d);
    } else if (cJSON_IsString(item)) {
        *out = chat_str_copy(a, item->valuestring, strlen(item->valuestring));
        if (out->type != CHAT_STRING)
            return GARLIC_ENOMEM;
    } else if (cJSON_IsArray(item)) {
        return convert_list(a, item, depth, out);
    } else if (cJSON_IsObject(item)) {
        return convert_dict(a, item, depth, out);
    } else {
        return GARLIC_EINVAL; // a raw or invalid item: not JSON a client can send
    }
    return GARLIC_OK;
}

int chat_value_from_tree(chat_arena *a, const cJSON *item, chat_value *out, garlic_error *err)
{
    int rc = convert(a, item, 0, out);
    if (rc == GARLIC_ENOMEM)
        return garlic_error_set(err, rc, "out of memory");
    if (rc)
        return garlic_error_set(err, rc, "JSON nested deeper than %d levels, or not JSON",
                                TREE_MAX_DEPTH);
    return GARLIC_OK;
}
