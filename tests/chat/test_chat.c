// SPDX-License-Identifier: MIT
// Chat templates: every reference case in ../shared/reference/templates (rendered byte for
// byte like transformers' Jinja2, or failing where Jinja2 fails), unit tests of expressions,
// whitespace control, filters, tests, scoping and error positions, the limits that stop a
// hostile template, the fallback format, and `garlic chat-template` end to end.
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"
#include "chat/chat.h"
#include "gguf/gguf.h"
#include "util.h"

// Renders src with the variables in vars_json (a JSON object); returns the rendering
// (free()-able copy) or NULL with the error in *err.
static char *render(const char *src, const char *vars_json, const chat_limits *limits,
                    garlic_error *err)
{
    chat_template *t = chat_template_parse(src, strlen(src), "t", err);
    if (!t)
        return NULL;
    chat_vars vars = {.variables_json = vars_json ? vars_json : "{}",
                      .variables_len = strlen(vars_json ? vars_json : "{}"),
                      .now = "2026-01-15T10:30:00",
                      .limits = limits};
    char *out = NULL;
    size_t len = 0;
    int rc = chat_template_render(t, &vars, &out, &len, err);
    chat_template_free(t);
    if (rc)
        return NULL;
    char *copy = strdup(out);
    garlic_free(out);
    return copy;
}

static void expect_render(const char *src, const char *vars, const char *want)
{
    garlic_error err = {0};
    char *got = render(src, vars, NULL, &err);
    if (!got)
        fail_msg("%s\n  failed: %s", src, err.message);
    if (strcmp(got, want) != 0)
        fail_msg("%s\n  want: [%s]\n  got:  [%s]", src, want, got);
    free(got);
}

static void expect_error(const char *src, const char *vars, const char *fragment)
{
    garlic_error err = {0};
    char *got = render(src, vars, NULL, &err);
    if (got)
        fail_msg("%s\n  rendered [%s], expected an error containing '%s'", src, got, fragment);
    if (!strstr(err.message, fragment))
        fail_msg("%s\n  error '%s' lacks '%s'", src, err.message, fragment);
}

// Dicts of more than 16 keys are searched through a hash index, and unique() through one:
// keys equal in Python (1, 1.0, True) are one key, and the answers match a key-by-key search.
static void test_large_dicts(void **state)
{
    (void)state;
    char src[8192];
    size_t len = (size_t)snprintf(src, sizeof src, "{%% set d = {");
    for (int i = 0; i < 100; i++)
        len += (size_t)snprintf(src + len, sizeof src - len, "'k%d': %d, %d: 'v%d', ", i, i, i, i);
    snprintf(src + len, sizeof src - len,
             "1.0: 'one', 'k7': 70} %%}{{ d|length }} {{ d['k57'] }} {{ d[57.0] }} {{ d[true] }} "
             "{{ d['k7'] }} {{ 'k100' in d }} {{ 99 in d }} {{ d.get(100, 'none') }}");
    expect_render(src, NULL, "200 57 v57 one 70 False True none");
    expect_render(
        "{{ (range(3000)|list + range(3000)|list + [1.0, true, '1'])|unique|list|length }}", NULL,
        "3001");
    expect_render("{{ ['b', 'A', 'a', 'B', 'c']|unique|join }}", NULL, "bAc");
    expect_render("{{ ['b', 'A', 'a', 'B', 'c']|unique(case_sensitive=true)|join }}", NULL,
                  "bAaBc");
}

// ---- reference cases --------------------------------------------------------------------

typedef struct case_result {
    int total, passed;
    char failed[4096];
} case_result;

static void note_failure(case_result *r, const char *name, const char *case_id, const char *why)
{
    size_t used = strlen(r->failed);
    snprintf(r->failed + used, sizeof r->failed - used, "  %s/%s: %.160s\n", name, case_id, why);
}

// Runs one row of INDEX.tsv; returns true when it behaves like the reference.
static bool run_case(const chat_template *t, const char *name, const char *case_id,
                     const char *expected, case_result *r)
{
    char rel[512];
    snprintf(rel, sizeof rel, "reference/templates/%s/%s.json", name, case_id);
    size_t json_len;
    char *json = test_read_file(test_shared_path(rel), &json_len);
    if (!json) {
        note_failure(r, name, case_id, "cannot read the case file");
        return false;
    }
    cJSON *root = cJSON_ParseWithLength(json, json_len);
    const cJSON *now = cJSON_GetObjectItemCaseSensitive(root, "fixed_datetime");
    chat_vars vars = {.variables_json = json,
                      .variables_len = json_len,
                      .variables_member = "variables",
                      .now = cJSON_IsString(now) ? now->valuestring : NULL};
    char *out = NULL;
    size_t out_len = 0;
    garlic_error err = {0};
    int rc = chat_template_render(t, &vars, &out, &out_len, &err);
    snprintf(rel, sizeof rel, "reference/templates/%s/%s", name, expected);
    size_t want_len;
    char *want = test_read_file(test_shared_path(rel), &want_len);
    bool ok = false;
    bool want_error = strstr(expected, ".error") != NULL;
    if (!want)
        note_failure(r, name, case_id, "cannot read the expected file");
    else if (want_error && rc == GARLIC_OK)
        note_failure(r, name, case_id, "rendered, but the reference fails");
    else if (!want_error && rc != GARLIC_OK)
        note_failure(r, name, case_id, err.message);
    else if (!want_error && (out_len != want_len || memcmp(out, want, want_len) != 0)) {
        size_t at = 0;
        while (at < out_len && at < want_len && out[at] == want[at])
            at++;
        char why[200];
        snprintf(why, sizeof why, "differs at byte %zu: want '%.30s' got '%.30s'", at, want + at,
                 at < out_len ? out + at : "");
        note_failure(r, name, case_id, why);
    } else {
        ok = true;
    }
    // A raise_exception case must carry the template's own message.
    if (ok && want_error &&
        strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(root, "error_kind")), "raise_exception") ==
            0 &&
        strncmp(err.message, want,
                want_len < sizeof err.message ? want_len : sizeof err.message - 1) != 0) {
        note_failure(r, name, case_id, "raise_exception message differs");
        ok = false;
    }
    garlic_free(out);
    free(want);
    cJSON_Delete(root);
    free(json);
    return ok;
}

// Every case in INDEX.tsv. REFERENCE_FLOOR is how many must pass (all of them).
enum { REFERENCE_CASES = 169, REFERENCE_FLOOR = 169 };

static void test_reference_cases(void **state)
{
    (void)state;
    skip_without_shared();
    size_t len;
    char *index = test_read_file(test_shared_path("reference/templates/INDEX.tsv"), &len);
    assert_non_null(index);
    case_result r = {0};
    char current[256] = "";
    chat_template *t = NULL;
    garlic_error parse_err = {0};
    char *save = NULL;
    strtok_r(index, "\n", &save); // header
    for (char *line = strtok_r(NULL, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char name[256], case_id[32], expected[64];
        if (sscanf(line, "%255s %31s %63s", name, case_id, expected) != 3)
            continue;
        r.total++;
        if (strcmp(name, current) != 0) {
            chat_template_free(t);
            snprintf(current, sizeof current, "%s", name);
            char rel[512];
            snprintf(rel, sizeof rel, "templates/%s.jinja", name);
            size_t src_len;
            char *src = test_read_file(test_shared_path(rel), &src_len);
            t = src ? chat_template_parse(src, src_len, rel, &parse_err) : NULL;
            free(src);
        }
        if (!t) {
            note_failure(&r, name, case_id, parse_err.message);
            continue;
        }
        r.passed += run_case(t, name, case_id, expected, &r);
    }
    chat_template_free(t);
    free(index);
    print_message("reference templates: %d/%d cases pass\n", r.passed, r.total);
    if (r.failed[0])
        print_message("failing cases:\n%s", r.failed);
    assert_int_equal(r.total, REFERENCE_CASES);
    assert_true(r.passed >= REFERENCE_FLOOR);
}

// Expected outputs below were produced by Jinja2 3.1 with transformers' settings (trim_blocks,
// lstrip_blocks, loop controls, its tojson, raise_exception and strftime_now at 2026-01-15
// 10:30:00) from the variables in unit_vars; error cases name the Python exception expected.
static const char *const render_cases[][2] = {
    {"{{ 7 // 2 }},{{ -7 // 2 }},{{ 7 % -3 }},{{ 2 ** 10 }},{{ 1 / 4 }},{{ 1e300 * 1e10 }},{{ 0.1 + 0.2 }},{{ 1e16 }},{{ 1.0 }},{{ 100000000000000000.0 }},{{ 0.00001 }}",
     "3,-4,-2,1024,0.25,inf,0.30000000000000004,1e+16,1.0,1e+17,1e-05"},
    {"{{ d }}|{{ x }}|{{ (1,) }}|{{ n }}|{{ \"it's\" ~ ['a', \"b'c\", 'd\"e'] }}|{{ d|tojson }}|{{ d|tojson(indent=2) }}|{{ d|tojson(sort_keys=true) }}",
     "{'b': 1, 'a': [1.5, None, True]}|[1, 2, 3]|(1,)|None|it's['a', \"b'c\", 'd\"e']|{\"b\": 1, \"a\": [1.5, null, true]}|{\n  \"b\": 1,\n  \"a\": [\n    1.5,\n    null,\n    true\n  ]\n}|{\"a\": [1.5, null, true], \"b\": 1}"},
    {"{{ s[1:3] }}|{{ s[::-1] }}|{{ s[-5:] }}|{{ x[1:] }}|{{ x[-1] }}|{{ s.split() }}|{{ s.lower() }}|{{ s|upper }}|{{ s.replace('o', '0', 1) }}|{{ \"  a b  \"|trim }}|{{ \"xxaxx\".strip(\"x\") }}",
     "el|dlroW olleH|World|[2, 3]|3|['Hello', 'World']|hello world|HELLO WORLD|Hell0 World|a b|a"},
    {"{% for a in x %}{{ loop.index }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{% if loop.previtem is defined %}<{{ loop.previtem }}{% endif %}{% endfor %}",
     "12TrueFalse21FalseFalse<130FalseTrue<2"},
    {"{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}{% for k in d %}{{ k }}{% endfor %}",
     "b=1;a=[1.5, None, True];ba"},
    {"{% for a in x if a > 1 %}{{ loop.length }}{{ a }}{% else %}none{% endfor %}{% for a in [] %}x{% else %}empty{% endfor %}",
     "2223empty"},
    {"{% for a in x %}{% if a == 2 %}{% continue %}{% endif %}{% if a == 3 %}{% break %}{% endif %}{{ a }}{% endfor %}",
     "1"},
    {"{% set ns = namespace(c=0) %}{% for a in x %}{% set ns.c = ns.c + a %}{% endfor %}{{ ns.c }}",
     "6"},
    {"{% set y = 1 %}{% for a in x %}{{ y }}{% set y = a * 10 %}{{ y }}{% endfor %}{{ y }}",
     "1101201301"},
    {"{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('Bob') }} {{ greet('Al', punct='?') }}",
     "Hi Bob! Hi Al?"},
    {"{% macro m() %}{{ late }}{% endmacro %}{% set late = 'seen' %}{{ m() }}", "seen"},
    {"{{ x|join(', ') }}|{{ x|length }}|{{ x|first }}|{{ x|last }}|{{ x|reverse|list }}|{{ [3,1,2]|sort }}|{{ ['b','A','a']|unique|list }}|{{ x|sum }}|{{ x|max }}",
     "1, 2, 3|3|1|3|[3, 2, 1]|[1, 2, 3]|['b', 'A']|6|3"},
    {"{{ [{'a':1},{'a':2},{'b':3}]|selectattr('a','defined')|map(attribute='a')|list }}|{{ x|select('odd')|list }}|{{ x|reject('equalto', 2)|list }}",
     "[1, 2]|[1, 3]|[1, 3]"},
    {"{{ 'a' is string }}{{ 1 is number }}{{ none is none }}{{ d is mapping }}{{ x is sequence }}{{ undefined_thing is defined }}{{ 3 is odd }}{{ 4 is divisibleby 2 }}{{ n is not none }}",
     "TrueTrueTrueTrueTrueFalseTrueTrueFalse"},
    {"{{ \"a\\nb\\n\"|indent(2) }}|{{ \"a\\nb\"|indent(2, true) }}|{{ \"5\"|int + 1 }}|{{ \"3.7\"|int }}|{{ \"x\"|int(7) }}|{{ 2.5|round }}|{{ 3.14159|round(2) }}",
     "a\n  b\n|  a\n  b|6|3|7|2.0|3.14"},
    {"{{ 'yes' if 1 > 2 }}|{{ 'a' if n is none else 'b' }}|{{ not n }}|{{ 1 < 2 < 3 }}|{{ 'b' in 'abc' }}|{{ 2 not in x }}|{{ n or 'dflt' }}|{{ 0 and 1 }}",
     "|a|True|True|True|False|dflt|0"},
    {"{{ \"{} and {}\".format(1, 'x') }}|{{ \"%s-%d\" % ('a', 3) }}|{{ d.get('zz', 5) }}|{{ d.get('b') }}|{{ d.keys()|list }}|{{ d['a'][0] }}|{{ d.a.1 }}",
     "1 and x|a-3|5|1|['b', 'a']|1.5|None"},
    {"{% set a, b = 1, 2 %}{{ a }}{{ b }}{% set blk %}in{{ a }}{% endset %}[{{ blk }}]", "12[in1]"},
    {"{% filter upper %}hello {{ s }}{% endfilter %}", "HELLO HELLO WORLD"},
    {"{% raw %}{{ not parsed }}{% endraw %}", "{{ not parsed }}"},
    {"{{ 'abc'|center(9) }}|{{ \"a b c\"|wordcount }}|{{ '<a href=\"x\">'|e }}|{{ x|map('string')|join }}|{{ d|dictsort }}|{{ d|items|list }}",
     "   abc   |3|&lt;a href=&#34;x&#34;&gt;|123|[('a', [1.5, None, True]), ('b', 1)]|[('b', 1), ('a', [1.5, None, True])]"},
    {"{{ \"a,b,,c\".split(\",\") }}|{{ \"a b c\".split(\" \", 1) }}|{{ \"a b c\".rsplit(\" \", 1) }}|{{ \"ab\".replace(\"\", \"-\") }}|{{ \"Hello\"[0] }}|{{ \"héllo\"|length }}|{{ \"héllo\"[1] }}",
     "['a', 'b', '', 'c']|['a', 'b c']|['a b', 'c']|-a-b-|H|5|é"},
    {"{{ {'a': {'b': 1}} }}|{{ [1, [2, 3]]|tojson }}|{{ \"é\\n\\\"<>\"|tojson }}|{{ \"é\"|tojson(ensure_ascii=true) }}|{{ 'x' * 3 }}|{{ [0] * 2 }}|{{ x + [4] }}",
     "{'a': {'b': 1}}|[1, [2, 3]]|\"é\\n\\\"<>\"|\"\\u00e9\"|xxx|[0, 0]|[1, 2, 3, 4]"},
    {"{{ loop is defined }}|{{ x.append is defined }}|{{ range(3)|list }}|{{ range(1, 7, 2)|list }}|{{ dict(a=1, b='x') }}|{{ strftime_now('%d %b %Y') }}|{{ strftime_now('%B %d, %Y %A') }}",
     "False|False|[0, 1, 2]|[1, 3, 5]|{'a': 1, 'b': 'x'}|15 Jan 2026|January 15, 2026 Thursday"},
    {"{{ '{{ data }}' }}{#- comment -#}  {{ 'x' }} {{- 'y' }}", "{{ data }}xy"},
    {"a\n  {# c #}\nb\n  {% if 1 %}\nx\n  {% endif %}\n{{ 1 }}\nend", "a\nb\nx\n1\nend"},
    {"  {%+ if true %}kept{% endif %}\n  {%- if true +%}\ntrim-off{% endif %}\n\n",
     "  kept\ntrim-off"},
    {"{{ s.split(' ', -1) }}|{{ '  a  b '.split() }}|{{ '  a  b '.rsplit(None, 1) }}|{{ 'a,b,c'.rsplit(',') }}|{{ ',a,'.split(',') }}",
     "['Hello', 'World']|['a', 'b']|['  a', 'b']|['a', 'b', 'c']|['', 'a', '']"},
    {"{{ u|length }}|{{ u[0] }}|{{ u[-1] }}|{{ u[2:5] }}|{{ u|upper }}|{{ u|tojson }}|{{ u|tojson(ensure_ascii=true) }}|{{ [u] }}",
     "12|Č|本|šti|ČEŠTINA 😀 日本|\"Čeština 😀 日本\"|\"\\u010ce\\u0161tina \\ud83d\\ude00 \\u65e5\\u672c\"|['Čeština 😀 日本']"},
    {"{{ f }}|{{ f * 2 }}|{{ f|int }}|{{ f|round }}|{{ 3.0 }}|{{ 1/3 }}|{{ 2**0.5 }}|{{ -0.0 }}|{{ 1e-7 }}|{{ 123456789.123 }}|{{ big * 1000 }}",
     "2.5|5.0|2|2.0|3.0|0.3333333333333333|1.4142135623730951|-0.0|1e-07|123456789.123|12345678901234000"},
    {"{{ t }}|{{ t + 1 }}|{{ t == 1 }}|{{ t is number }}|{{ t is integer }}|{{ 1 is sameas true }}|{{ none is sameas none }}",
     "True|2|True|True|False|False|True"},
    {"{{ m[1].tool_calls[0].function.arguments|tojson }}|{{ m[1].content is none }}|{{ m[1].content is defined }}|{{ m|map(attribute='role')|join(',') }}",
     "{\"q\": \"z\"}|True|True|user,assistant"},
    {"{{ m|selectattr('role', 'equalto', 'user')|list|length }}|{{ m|rejectattr('content')|map(attribute='role')|list }}|{{ m|selectattr('tool_calls', 'defined')|list|length }}",
     "1|['assistant']|1"},
    {"{% for k, v in d|dictsort %}{{ k }}{{ v }}{% endfor %}|{{ d|length }}|{{ d|list }}|{{ d.items()|list }}|{{ d.values()|list }}",
     "a[1.5, None, True]b1|2|['b', 'a']|[('b', 1), ('a', [1.5, None, True])]|[1, [1.5, None, True]]"},
    {"{{ e|first }}|{{ e|last }}|{{ e|join }}|{{ e|length }}|{{ e is iterable }}|{% for a in e %}x{% else %}empty{% endfor %}|{{ e|min }}",
     "|||0|True|empty|"},
    {"{{ x|map('string')|list }}|{{ x|map('tojson')|join }}|{{ x|sum(start=10) }}|{{ x|min }}|{{ [3,'a']|length }}",
     "['1', '2', '3']|123|16|1|2"},
    {"{% set ns = namespace(a=1, b=[]) %}{% set ns.b = ns.b + [ns.a] %}{{ ns.b }}{{ ns.a }}",
     "[1]1"},
    {"{% macro f(a, b=2, c=3) %}{{ a }}-{{ b }}-{{ c }}{% endmacro %}{{ f(1) }}|{{ f(1, c=9) }}|{{ f(1, 5, 6) }}|{{ f() }}",
     "1-2-3|1-2-9|1-5-6|-2-3"},
    {"{% macro outer() %}[{{ inner() }}]{% endmacro %}{% macro inner() %}in{% endmacro %}{{ outer() }}",
     "[in]"},
    {"{% for a in x %}{% for b in x %}{% if b > a %}{% break %}{% endif %}{{ loop.index }}{% endfor %};{{ loop.index }}{% endfor %}",
     "1;112;2123;3"},
    {"{% for a in x %}{{ loop.cycle('odd', 'even') }}{{ loop.depth }}{% endfor %}",
     "odd1even1odd1"},
    {"{{ 'abc' < 'abd' }}|{{ [1,2] < [1,3] }}|{{ (1,2) == [1,2] }}|{{ {'a':1} == {'a':1} }}|{{ 1 == 1.0 }}|{{ 'a' == none }}",
     "True|True|False|True|True|False"},
    {"{{ \"a\\tb\"|tojson }}|{{ '\\x01'|tojson }}|{{ \"it's\"|tojson }}|{{ '<&>'|tojson }}|{{ {\"k\": \"v\"}|tojson(indent=4) }}|{{ [[]]|tojson(indent=2) }}|{{ {}|tojson }}",
     "\"a\\tb\"|\"\\u0001\"|\"it's\"|\"<&>\"|{\n    \"k\": \"v\"\n}|[\n  []\n]|{}"},
    {"{{ {\"a\": 1, \"b\": [1, 2]}|tojson(separators=(',', ':')) }}|{{ x|tojson(indent='  ') }}",
     "{\"a\":1,\"b\":[1,2]}|[\n  1,\n  2,\n  3\n]"},
    {"{{ \"Hello\"|replace(\"l\", \"L\") }}|{{ \"hello world\"|title }}|{{ \"HELLO\"|capitalize }}|{{ \"  x  \"|trim(\"x \") }}|{{ s.startswith(('He', 'x')) }}|{{ s.endswith('ld') }}",
     "HeLLo|Hello World|Hello||True|True"},
    {"{{ \"x\"|default(\"y\") }}|{{ \"\"|default(\"y\") }}|{{ \"\"|default(\"y\", true) }}|{{ n|default(\"y\") }}|{{ undefined_var|d(\"z\") }}",
     "x||y|None|z"},
    {"{{ s.find('o') }}|{{ s.count('o') }}|{{ s|wordcount }}|{{ s.isalpha() }}|{{ '123'.isdigit() }}|{{ s.lower().islower() }}",
     "4|2|2|False|True|True"},
    {"{{ '%s and %s' % ('a', 'b') }}|{{ '%d%%' % 50 }}|{{ \"%s\"|format(x) }}|{{ '{0}{1}{0}'.format('a', 'b') }}|{{ '{x}'.format(x=1) }}",
     "a and b|50%|[1, 2, 3]|aba|1"},
    {"{% set a = [1, 2, 3] %}{{ a[::2] }}|{{ a[-2:] }}|{{ a[:-1] }}|{{ a[5:] }}|{{ a[::-2] }}|{{ 'abcdef'[1:5:2] }}",
     "[1, 3]|[2, 3]|[1, 2]|[]|[3, 1]|bd"},
    // Steps of nearly 2^63 (a fuzzer found the overflow): one item, as in Python.
    {"{% set a = [1, 2, 3] %}{{ a[::-9223372036854775807] }}|{{ a[::9223372036854775807] }}|{{ 'abc'[::-9223372036854775807] }}",
     "[3]|[1]|c"},
    {"{{ range(5)|reverse|list }}|{{ range(0)|list }}|{{ range(10, 0, -3)|list }}|{{ [1,2,3,2,1]|unique|list }}|{{ ['B', 'a', 'C']|sort }}|{{ ['B', 'a', 'C']|sort(case_sensitive=true) }}|{{ x|sort(reverse=true) }}",
     "[4, 3, 2, 1, 0]|[]|[10, 7, 4, 1]|[1, 2, 3]|['a', 'B', 'C']|['B', 'C', 'a']|[3, 2, 1]"},
    {"{{ m|sort(attribute='role')|map(attribute='role')|list }}|{{ [{'n': 2}, {'n': 1}]|sort(attribute='n') }}",
     "['assistant', 'user']|[{'n': 1}, {'n': 2}]"},
    {"{{ 10 / 4 }}|{{ 10 // 4 }}|{{ -10 // 4 }}|{{ 10 % 4 }}|{{ -10 % 4 }}|{{ 10.5 % 4 }}|{{ 2 ** -1 }}|{{ 7 / 7 }}",
     "2.5|2|-3|2|2|2.5|0.5|1.0"},
    {"{{ \"a\" ~ 1 ~ none ~ true ~ [1] }}|{{ \"a\" + \"b\" }}|{{ [1] + [2] }}|{{ x * 2 }}|{{ 3 * 'ab' }}",
     "a1NoneTrue[1]|ab|[1, 2]|[1, 2, 3, 1, 2, 3]|ababab"},
    {"{{ 'b' in d }}|{{ 'z' in d }}|{{ 2 in x }}|{{ 'ell' in s }}|{{ 'x' not in s }}|{{ none in x }}",
     "True|False|True|True|True|False"},
    {"{{ x if x else 'no' }}|{{ e if e else 'no' }}|{{ 'a' if false }}|{{ n or e or 'last' }}|{{ x and s }}",
     "[1, 2, 3]|no||last|Hello World"},
    {"{{ not 0 }}{{ not '' }}{{ not [] }}{{ not {} }}{{ not none }}{{ not 'a' }}{{ -f }}{{ +f }}{{ -(1) }}",
     "TrueTrueTrueTrueTrueFalse-2.52.5-1"},
    {"{% if m[0].content is string and m[0].content | length > 1 %}yes{% endif %}|{% if not m[1].content %}empty{% endif %}",
     "yes|empty"},
    {"{{ m[0]['role'] }}|{{ m[0].get('role') }}|{{ m[0].get('missing', 'dflt') }}|{{ m[0].keys()|list }}|{{ d['a'][1] }}|{{ d.a[2] }}",
     "user|user|dflt|['role', 'content']|None|True"},
    {"{%- for m2 in m -%}\n  {%- if m2.role == 'user' %}\n    <user>{{ m2.content }}\n  {%- else %}\n    <asst>\n  {%- endif %}\n{% endfor -%}\nend",
     "    <user>hi    <asst>end"},
    {"  line1\n    {%- if true %}\n  x\n    {% endif -%}\n  line2   \n{# comment #}   \n   {{ 'v' }}\ntail",
     "  line1  x\nline2   \n   \n   v\ntail"},
    {"{% set a %}\nblock {{ 1 }}\n{% endset %}[{{ a }}]", "[block 1\n]"},
    {"{{ 'a\\nb\\n\\nc'|indent(2) }}|{{ 'a\\n\\nb'|indent(2, blank=true) }}|{{ ''|indent(3, true) }}|{{ 'x'|indent('>>', first=true) }}",
     "a\n  b\n\n  c|a\n  \n  b|   |>>x"},
    {"{{ 'abc'|center(8) }}|{{ 'abcd'|center(9) }}|{{ 'é'|center(4) }}", "  abc   |   abcd  | é  "},
    {"{{ x|join(attribute='real') if false else 'skip' }}|{{ [{'a': 'p'}, {'a': 'q'}]|join(', ', attribute='a') }}",
     "skip|p, q"},
    {"{{ (1, 2) }}|{{ ('a',) }}|{{ () }}|{{ {'a': (1, 2)} }}|{{ [none, true, 1.0, 'x', \"y'z\"] }}",
     "(1, 2)|('a',)|()|{'a': (1, 2)}|[None, True, 1.0, 'x', \"y'z\"]"},
    {"{{ \"\\u00e9\\x41\\\\n\" }}|{{ 'tab\\there' }}|{{ \"q\\\"q\" }}|{{ 'multi' 'part' }}",
     "éA\\n|tab\there|q\"q|multipart"},
    {"{{ x[0] is odd }}|{{ x[1] is even }}|{{ 9 is divisibleby(3) }}|{{ s is lower }}|{{ 'ABC' is upper }}|{{ x is mapping }}|{{ d is iterable }}|{{ none is iterable }}",
     "True|True|True|False|True|False|True|False"},
    {"{{ 1 < 2 > 1 }}|{{ 1 == 1 == 1 }}|{{ 3 > 2 > 1 }}|{{ 1 < 3 < 2 }}", "True|True|True|False"},
    {"{{ \"ab\" * 0 }}|{{ [1] * -1 }}|{{ \"x\" * true }}", "|[]|x"},
    {"{{ \"5\"|float }}|{{ \"abc\"|float }}|{{ \"0x10\"|int(base=16) }}|{{ \" 42 \"|int }}|{{ none|int }}|{{ true|int }}|{{ \"1_000\"|int }}|{{ 3.99|int }}",
     "5.0|0.0|16|42|0|1|1000|3"},
    {"{{ 3.14159|round(3) }}|{{ 2.675|round(2) }}|{{ 0.5|round }}|{{ 1.5|round }}|{{ 7|round }}|{{ 3.7|round(method='floor') }}|{{ 3.2|round(0, 'ceil') }}",
     "3.142|2.67|0.0|2.0|7|3.0|4.0"},
    {"{{ x|abs if false else (-3)|abs }}|{{ -2.5|abs }}|{{ [-1, 2]|map('abs')|list }}",
     "3|2.5|[1, 2]"},
    {"{{ d.items() }}|{{ d.keys() }}",
     "dict_items([('b', 1), ('a', [1.5, None, True])])|dict_keys(['b', 'a'])"},
    {"{{ x.append }}", ""},
    {"{{ d.b.c }}|{{ d.b.c is defined }}", "|False"},
    {"{% for c in s %}{{ c }}.{% endfor %}", "H.e.l.l.o. .W.o.r.l.d."},
    {"{{ namespace(a=1) }}|{{ namespace(a=1).a }}", "<Namespace {'a': 1}>|1"},
    {"{{ dict(a=1) }}|{{ dict({'x': 2}, y=3) }}", "{'a': 1}|{'x': 2, 'y': 3}"},
    {"{{ strftime_now('%Y-%m-%d %H:%M:%S %a %j %p') }}", "2026-01-15 10:30:00 Thu 015 AM"},
    {"{{ x|first|string + '!' }}|{{ x|last * 2 }}|{{ s|list|length }}|{{ s|reverse }}",
     "1!|6|11|dlroW olleH"},
    {"{{ 'a-b_c d'.title() }}|{{ 'ÉCOLE'.lower() }}|{{ 'école'|upper }}\n", "A-B_C D|école|ÉCOLE"},
    {"a {%- if true -%} b {%- endif -%} c", "abc"},
    {"a  {% if true %}  b  {% endif %}  c", "a    b    c"},
    {"x\n    {% for i in [1,2] %}\n    item {{ i }}\n    {% endfor %}\ny",
     "x\n    item 1\n    item 2\ny"},
    {"{% for i in [1,2] -%}\n  [{{ i }}]\n{%- endfor %}", "[1][2]"},
    {"  {{ 'a' }}\n  {% set z = 1 %}\n  {{ z }}", "  a\n  1"},
    {"{{ 'a' -}}\n   \nb", "ab"},
    {"  {#- c -#}   x", "x"},
    {"{% if true %}\n{% endif %}\n\ntail", "\ntail"},
    {"{%- set ns = namespace(found=false) -%}\n{%- for m in x -%}\n    {%- if m == 2 -%}{%- set ns.found = true -%}{%- endif -%}\n{%- endfor -%}\n{{ ns.found }}",
     "True"},
    {"{% set a = 1 %}{% if true %}{% set a = 2 %}{% endif %}{{ a }}{% for i in x %}{% set a = i %}{% endfor %}{{ a }}",
     "22"},
    {"{% for i in x %}{% set inner = i %}{% endfor %}{{ inner }}|{{ inner is defined }}", "|False"},
    {"{% macro m(x) %}{{ x }}{{ s }}{% endmacro %}{{ m(5) }}{{ x }}", "5Hello World[1, 2, 3]"},
    {"{% for i in x %}{% macro p() %}{{ i }}{% endmacro %}{{ p() }}{% endfor %}", "123"},
    {"{% set x = x + [4] %}{{ x }}", "[1, 2, 3, 4]"},
    {"{{ x.0 }}{{ d.a.0 }}", "11.5"},
    {"{{ m[1]['tool_calls'][0]['function']['arguments']['q'] }}", "z"},
    {"{% for tc in m[1].tool_calls %}{% set tc = tc.function %}{{ tc.name }}({{ tc.arguments|tojson }}){% endfor %}",
     "f({\"q\": \"z\"})"},
    {"{% if m[1].tool_calls %}{% for a, b in m[1].tool_calls[0].function.arguments.items() %}{{ a }}={{ b }}{% endfor %}{% endif %}",
     "q=z"},
    {"{{ m|length }}{{ m[-1].role }}{{ (m|last).role }}{{ m[0:1]|length }}",
     "2assistantassistant1"},
    {"{% for msg in m if msg.role != 'user' %}{{ loop.index }}:{{ msg.role }}{% endfor %}",
     "1:assistant"},
    {"{% for i in range(3) %}{{ loop.nextitem if loop.nextitem is defined else 'END' }}{% endfor %}",
     "12END"},
    {"{{ \"{{\" }}{{ \"}}\" }}{{ '{%' }} raw {{ \"%}\" }}", "{{}}{% raw %}"},
    {"{% raw %}\n  {% if %}{{ x }}\n{% endraw %}", "\n  {% if %}{{ x }}\n"},
    {"{%- raw -%}\n  spaced  \n{%- endraw -%}", "spaced"},
    {"{{ [1, 2, 3,] }}|{{ {'a': 1,} }}|{{ (1, 2,) }}", "[1, 2, 3]|{'a': 1}|(1, 2)"},
    {"{{ 'a' if true else 'b' if false else 'c' }}|{{ 'x' if none else 'y' if 0 else 'z' }}",
     "a|z"},
    {"{{ x[1:]|join('-') }}|{{ x|join('-')|upper }}|{{ s|lower|replace('o','0')|title }}",
     "2-3|1-2-3|Hell0 W0rld"},
    {"{{ d|tojson(indent=2, sort_keys=true) }}",
     "{\n  \"a\": [\n    1.5,\n    null,\n    true\n  ],\n  \"b\": 1\n}"},
    {"{{ m|tojson }}",
     "[{\"role\": \"user\", \"content\": \"hi\"}, {\"role\": \"assistant\", \"content\": null, \"tool_calls\": [{\"function\": {\"name\": \"f\", \"arguments\": {\"q\": \"z\"}}}]}]"},
    {"{{ \"line\\nbreak\"|tojson }}{{ \"\\u2028\"|tojson }}{{ \"\\x7f\"|tojson }}",
     "\"line\\nbreak\"\" \"\"\""},
    {"{{ [1.0, 2.50, 1e100, -0.0, 1.5e-7]|tojson }}|{{ [1.0, 1e100] }}",
     "[1.0, 2.5, 1e+100, -0.0, 1.5e-07]|[1.0, 1e+100]"},
    {"{{ '%s' % none }}|{{ '%r' % 'x' }}|{{ '%s|%s' % (1, [2]) }}", "None|'x'|1|[2]"},
    {"{{ none|string|length }}|{{ true|string }}|{{ [none]|string }}|{{ 1.0|string }}",
     "4|True|[None]|1.0"},
    {"{{ x is not none and x|length > 2 }}|{{ s is not string }}|{{ n is not defined }}",
     "True|False|False"},
    {"{{ undefined_a is undefined }}|{{ (undefined_a or 'x') }}|{{ undefined_a|string }}|{{ undefined_a ~ 'z' }}|{{ [undefined_a] }}",
     "True|x||z|[Undefined]"},
    {"{{ x == [1, 2, 3] }}|{{ d == {'a': [1.5, none, true], 'b': 1} }}|{{ x != x }}",
     "True|True|False"},
    {"{% if d.a[1] is none %}none!{% endif %}{% if d['b'] == 1.0 %}float-eq{% endif %}",
     "none!float-eq"},
    {"{{ 'ab' in ['ab', 'cd'] }}|{{ ('a', 1) in d.items() }}|{{ 1 in d.values() }}",
     "True|False|True"},
    {"{{ s.strip('Hd') }}|{{ s.lstrip('Hel') }}|{{ s.rstrip('dlr') }}|{{ '\\n x \\t'.strip() }}|{{ 'xx'.replace('x', 'y', 0) }}",
     "ello Worl|o World|Hello Wo|x|xx"},
    {"{{ \"a\\r\\nb\" }}", "a\r\nb"},
    {"{{ s.split()|map('length')|list }}|{{ x|map('int')|sum }}|{{ ['1', '2']|map('int')|list }}",
     "[5, 5]|6|[1, 2]"},
    {"{{ x|select|list }}|{{ [0, 1, '', 'a', none]|select|list }}|{{ [0, 1, '', 'a', none]|reject|list }}",
     "[1, 2, 3]|[1, 'a']|[0, '', None]"},
    {"{{ m|map(attribute='content')|list }}|{{ m|map(attribute='missing', default='D')|list }}",
     "['hi', None]|['D', 'D']"},
    {"{{ x|batch(2)|list }}", "[[1, 2], [3]]"},
    {"{% for a in x %}{{ a }}{% endfor %}{{ a }}", "123"},
    {"{% set t = (1, 2) %}{{ t[0] }}{{ t|length }}{% set p, q = t %}{{ p + q }}", "123"},
    {"{{ e|sum }}|{{ e|join(', ') }}|{{ e|tojson }}|{{ e|max }}", "0||[]|"},
    {"{{ 'Hello'[::-1][0:2] }}|{{ 'abc'[10] }}|{{ 'abc'[-10:] }}", "ol||abc"},
    {"{{ range(3)|map('string')|join }}|{{ range(2, 5)|list|last }}\n", "012|4"},
    {"text {% if true %}inline{% endif %} more\n\t{% if true %}\n\ttabbed\n\t{% endif %}",
     "text inline more\n\ttabbed\n"},
    {"a\n{%- if true %}\n   b\n{%- else %}\n   c\n{% endif -%}\n   d", "a   bd"},
    {"{{ 'x' }}   {% if true %}y{% endif %}\n   {{ 'z' }}", "x   y   z"},
    {"  {# only comment #}\n  {#- stripped -#}\nend", "end"},
    {"{% for i in x %}\n  {{ i }}\n{% endfor %}", "  1\n  2\n  3\n"},
    {"{% for i in x -%}\n  {{ i }}\n{%- endfor %}", "123"},
    {"{%- macro m() -%}\n  body\n{%- endmacro -%}\n[{{ m() }}]", "[body]"},
    {"{% if true %}a{% elif false %}b{%- else -%} c {% endif %}", "a"},
    {"   {%- set v = 1 %}\n{{ v }}", "1"},
    {"line{{ '\\n' }}{% if true %}\n{% endif %}x", "line\nx"},
    {"{% for a in x %}{{ a }}{% if not loop.last %}, {% endif %}{% endfor %}", "1, 2, 3"},
    {"{% for k, v in {'a': 1, 'b': 2}.items() %}{{ loop.index0 }}{{ k }}{{ v }}{% endfor %}",
     "0a11b2"},
    {"{% for a in [[1, 2], [3, 4]] %}{% for b in a %}{{ loop.index }}.{{ b }} {% endfor %}|{{ loop.index }}{% endfor %}",
     "1.1 2.2 |11.3 2.4 |2"},
    {"{% for a in x %}{% set ns2 = namespace(v=a) %}{% endfor %}{{ ns2 is defined }}", "False"},
    {"{{ \"%-5s|\" % 'a' if false else 'x' }}", "x"},
    {"{% set d2 = {'z': 1, 'a': 2} %}{{ d2|dictsort(reverse=true) }}|{{ d2|dictsort(by='value') }}",
     "[('z', 1), ('a', 2)]|[('z', 1), ('a', 2)]"},
    {"{{ m[0].role|upper }}{{ m[0][\"role\"][0] }}{{ m[1].tool_calls|length }}", "USERu1"},
    {"{{ s[0:100] }}|{{ s[-100:2] }}|{{ x[1:1] }}|{{ x[::3] }}", "Hello World|He|[]|[1]"},
    {"{{ 'a' 'b' ~ 'c' }}|{{ ('x' ~ 1) * 2 }}", "abc|x1x1"},
    {"{%- for message in m %}\n{%- if message.role == 'assistant' and message.tool_calls is defined %}\n{{- message.tool_calls[0].function.name }}\n{%- endif %}\n{%- endfor %}",
     "f"},
    {"{{ x|map('string')|map('upper')|join('+') }}", "1+2+3"},
    {"{{ {'a': 1}['b'] }}|{{ {'a': 1}.b }}", "|"},
    {"{{ none.attr }}|{{ 1.attr is defined }}", "|False"},
    {"{% set x = 5 %}{{ x }}{% for y in [1] %}{% set x = 6 %}{{ x }}{% endfor %}{{ x }}", "565"},
    {"{% macro r(n) %}{% if n > 0 %}{{ n }}{{ r(n - 1) }}{% endif %}{% endmacro %}{{ r(5) }}",
     "54321"},
    {"{{ '%.2f' % 3.14159 if false else 1 }}", "1"},
    {"{{ [1, 'a', none]|join('-') }}|{{ [[1], [2]]|join }}", "1-a-None|[1][2]"},
    {"{{ 'x'|tojson|tojson }}|{{ '\"q\"'|tojson }}|{{ '\\\\'|tojson }}\n",
     "\"\\\"x\\\"\"|\"\\\"q\\\"\"|\"\\\\\""},
    // every test name and alias is known (one table); INT64_MIN % -1 must not trap
    {"{{ (-9223372036854775807 - 1) is divisibleby(-1) }}|{{ '==' is test }}|"
     "{{ 'lessthan' is test }}|{{ 'nope' is test }}|{{ 'trim' is filter }}|"
     "{{ [1, 2, 3]|select('>', 1)|list }}|{{ [1, 2, 3]|reject('==', 2)|list }}",
     "True|True|True|False|True|[2, 3]|[1, 3]"},
};

static const char *const error_cases[][2] = {
    {"{{ x.pop() }}", "SecurityError"},
    {"{{ s + none }}", "TypeError"},
    {"{{ 1 + none }}", "TypeError"},
    {"{{ m[5].content }}", "UndefinedError"},
    {"{{ undefined_var.foo }}", "UndefinedError"},
    {"{% for a, b in x %}{% endfor %}", "TypeError"},
    {"{% for k in d %}{{ k }}{% endfor %}{% for i in 5 %}{% endfor %}", "TypeError"},
    {"{{ x|length + 'a' }}", "TypeError"},
    {"{{ raise_exception('custom ' ~ x|length) }}", "custom 3"},
    {"{{ x|length is odd }}|{{ not x|length is odd }}|{{ -x|length }}", "TypeError"},
    {"{{ 1 + 2 ~ 3 }}|{{ 2 * 3 ~ 4 }}|{{ 'a' ~ 2 ** 3 }}|{{ 10 - 2 - 3 }}|{{ 2 ** 3 ** 2 }}|{{ -2 ** 2 }}",
     "TypeError"},
    {"{% include 'x' %}", "unsupported: the 'include' tag"},
    {"{{ x|nosuchfilter }}", "unsupported: the filter 'nosuchfilter'"},
    {"{{ \"a\" in none }}", "TypeError"},
    {"{{ 1 in \"abc\" }}", "TypeError"},
    {"{{ s.nosuchmethod() }}", "UndefinedError"},
};
static const char *const unit_vars =
    "{\"x\": [1, 2, 3], \"d\": {\"b\": 1, \"a\": [1.5, null, true]}, \"s\": \"Hello World\", \"n\": null, \"e\": [], \"m\": [{\"role\": \"user\", \"content\": \"hi\"}, {\"role\": \"assistant\", \"content\": null, \"tool_calls\": [{\"function\": {\"name\": \"f\", \"arguments\": {\"q\": \"z\"}}}]}], \"u\": \"\\u010ce\\u0161tina \\ud83d\\ude00 \\u65e5\\u672c\", \"f\": 2.5, \"t\": true, \"big\": 12345678901234}";

static void test_language(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof render_cases / sizeof render_cases[0]; i++)
        expect_render(render_cases[i][0], unit_vars, render_cases[i][1]);
    for (size_t i = 0; i < sizeof error_cases / sizeof error_cases[0]; i++)
        expect_error(error_cases[i][0], unit_vars, error_cases[i][1]);
    print_message("language: %zu renderings and %zu errors agree with Jinja2\n",
                  sizeof render_cases / sizeof render_cases[0],
                  sizeof error_cases / sizeof error_cases[0]);
}

static void test_undefined(void **state)
{
    (void)state;
    expect_render(
        "[{{ nothing }}][{{ nothing|length }}][{{ nothing is defined }}][{% for a in nothing %}x{% endfor %}]",
        NULL, "[][0][False][]");
    expect_render(
        "{{ d.missing }}|{{ d['missing'] }}|{{ x[10] }}|{{ d.missing is defined }}|{{ nothing|default('dflt') }}",
        unit_vars, "|||False|dflt");
    expect_render("{{ n|string }}|{{ n is none }}|{{ n is defined }}|{{ tools is defined }}",
                  "{\"n\": null}", "None|True|True|False");
    expect_error("{{ nothing + 1 }}", NULL, "UndefinedError: 'nothing' is undefined");
    expect_error("{{ nothing.attr }}", NULL, "'nothing' is undefined");
    expect_error("{{ nothing() }}", NULL, "'nothing' is undefined");
    expect_error("{{ d.missing + 'x' }}", unit_vars, "has no attribute 'missing'");
}

static void test_errors(void **state)
{
    (void)state;
    // runtime errors name the position of the failing expression
    expect_error("line one\n  {{ 1 // 0 }}", NULL, "t:2:8: ZeroDivisionError");
    expect_error("{{ 'a' + 1 }}", NULL, "TypeError: can only concatenate str (not \"int\") to str");
    expect_error("{% for a in n %}{% endfor %}", "{\"n\": null}",
                 "'NoneType' object is not iterable");
    expect_error("{{ x.append(4) }}", unit_vars,
                 "SecurityError: access to attribute 'append' of 'list' object is unsafe.");
    expect_error("{{ d.update({}) }}", unit_vars, "SecurityError");
    expect_error("{{ x._private }}{{ x._private() }}", unit_vars, "SecurityError");
    expect_error("{{ 1 < 'a' }}", NULL,
                 "TypeError: '<' not supported between instances of 'int' and 'str'");
    expect_error("{{ s() }}", unit_vars, "'str' object is not callable");
    expect_error("{% set a, b = x %}", unit_vars, "too many values to unpack");
    expect_error("{{ undefined_var|tojson }}", NULL, "not JSON serializable");
    // raise_exception's message is the whole error
    garlic_error err = {0};
    assert_null(render("{{ raise_exception('Only user and assistant roles') }}", NULL, NULL, &err));
    assert_string_equal(err.message, "Only user and assistant roles");
    // syntax errors and unsupported constructs are found at parse time, with line:column
    static const char *const bad[][2] = {
        {"{% for a in x %}", "t:1:17: missing '{% endfor %}' for the tag at 1:4"},
        {"{% if a %}{% else %}{% else %}{% endif %}", "unexpected tag"},
        {"{% endif %}", "unexpected end tag"},
        {"a\n{{ 1 + }}", "t:2:8: expected an expression"},
        {"{{ x | nosuch }}", "t:1:8: unsupported: the filter 'nosuch'"},
        {"{{ x is nosuch }}", "unsupported: the test 'nosuch'"},
        {"{% include 'other.jinja' %}", "t:1:4: unsupported: the 'include' tag"},
        {"{% call m() %}{% endcall %}", "unsupported: the 'call' tag"},
        {"{% do x.append(1) %}", "t:1:4: unknown tag 'do'"},
        {"{% break %}", "'break' outside a for loop"},
        {"{{ 'unterminated }}", "unterminated string literal"},
        {"{# open comment", "unterminated comment"},
        {"{{ a ", "unterminated '{{'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        chat_template *t = chat_template_parse(bad[i][0], strlen(bad[i][0]), "t", &err);
        if (t)
            fail_msg("'%s' parsed, expected '%s'", bad[i][0], bad[i][1]);
        if (!strstr(err.message, bad[i][1]))
            fail_msg("'%s': error '%s' lacks '%s'", bad[i][0], err.message, bad[i][1]);
    }
    // deep nesting is refused before it can overflow the stack
    char deep[2048] = "{{ ";
    for (int i = 0; i < 600; i++)
        strcat(deep, "(");
    strcat(deep, "1");
    for (int i = 0; i < 600; i++)
        strcat(deep, ")");
    strcat(deep, " }}");
    assert_null(chat_template_parse(deep, strlen(deep), "t", &err));
    assert_non_null(strstr(err.message, "nested too deeply"));
}

// Templates must not be able to hang or exhaust memory: steps, depth, output and the
// arena are capped and each cap ends the render with an error, quickly.
static void test_limits(void **state)
{
    (void)state;
    chat_limits small = {
        .max_output = 1 << 20, .max_memory = 32 << 20, .max_steps = 1000000, .max_depth = 32};
    static const char *const hostile[][2] = {
        {"{% for a in range(2000) %}{% for b in range(2000) %}{% endfor %}{% endfor %}",
         "too long"},
        {"{% for a in range(1000000000000) %}{% endfor %}", "too long"},
        {"{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "nested too deeply"},
        {"{% for a in range(100000) %}{{ 'x' * 1000 }}{% endfor %}", "output exceeds its limit"},
        {"{{ 'x' * 1000000000000 }}", "exceeds its limit"},
        {"{{ [1, 2] * 1000000000000 }}", "exceeds its limit"},
        {"{% set ns = namespace(s='xx') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
         "limit"},
        {"{% set ns = namespace(l=[1]) %}{% for i in range(64) %}{% set ns.l = ns.l + ns.l %}{% endfor %}",
         "limit"},
        {"{{ 2 ** 100 }}", "integer overflow"},
        // work inside single steps counts too: scans of a large value repeated in a loop
        {"{% set x = range(100000)|list %}{% for i in range(2000) %}{% if -1 in x %}{% endif %}"
         "{% endfor %}",
         "too long"},
        {"{% set x = 'a' * 1000000 %}{% for i in range(5000) %}{% if 'b' in x %}{% endif %}"
         "{% endfor %}",
         "too long"},
        {"{% set x = range(100000)|list %}{% for i in range(2000) %}{% set y = x|sum %}"
         "{% endfor %}",
         "too long"},
        {"{% set x = range(100000)|list %}{% set y = range(100000)|list %}"
         "{% for i in range(2000) %}{% if x == y %}{% endif %}{% endfor %}",
         "too long"},
    };
    for (size_t i = 0; i < sizeof hostile / sizeof hostile[0]; i++) {
        garlic_error err = {0};
        char *out = render(hostile[i][0], NULL, &small, &err);
        if (out)
            fail_msg("'%s' rendered %zu bytes, expected '%s'", hostile[i][0], strlen(out),
                     hostile[i][1]);
        if (!strstr(err.message, hostile[i][1]))
            fail_msg("'%s': error '%s' lacks '%s'", hostile[i][0], err.message, hostile[i][1]);
    }
    // macro recursion through deeply nested expressions stays within a bounded C stack
    char deep[4096] = "{% macro f(n) %}{{ ";
    for (int i = 0; i < 180; i++)
        strcat(deep, "(");
    strcat(deep, "f(n + 1)");
    for (int i = 0; i < 180; i++)
        strcat(deep, ")");
    strcat(deep, " }}{% endmacro %}{{ f(0) }}");
    garlic_error deep_err = {0};
    assert_null(render(deep, NULL, NULL, &deep_err));
    assert_non_null(strstr(deep_err.message, "too deeply"));
    // a template-built 100000-deep list prints, compares and serializes without recursing away
    const char *nest =
        "{% set ns = namespace(l=[]) %}{% for i in range(100000) %}{% set ns.l = [ns.l] %}"
        "{% endfor %}";
    char src[512];
    snprintf(src, sizeof src, "%s{{ ns.l == ns.l }} {{ (ns.l|string)[:4] }}", nest);
    expect_render(src, NULL, "True [[[[");
    snprintf(src, sizeof src, "%s{{ ns.l|tojson }}", nest);
    expect_error(src, NULL, "nested too deeply");
    // the defaults stop a runaway template too
    garlic_error err = {0};
    assert_null(
        render("{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
               NULL, NULL, &err));
    assert_true(strstr(err.message, "too long") || strstr(err.message, "limit"));
}

// Allocation failure at every point of a parse and a render is an error, never a crash or leak.
static void test_allocation_failures(void **state)
{
    (void)state;
    const char *src =
        "{% set ns = namespace(n=0) %}{% for m in messages %}{{ m.role }}: {{ m.content|trim }}"
        "{% set ns.n = ns.n + 1 %}{% endfor %}{{ ns.n }}";
    const char *vars = "{\"messages\": [{\"role\": \"user\", \"content\": \" hi \"}]}";
    int failures = 0;
    for (long n = 0; n < 64; n++) {
        garlic_error err = {0};
        garlic_alloc_fail_after(n);
        char *out = render(src, vars, NULL, &err);
        garlic_alloc_fail_reset();
        if (out) {
            assert_string_equal(out, "user: hi1");
            free(out);
            break;
        }
        assert_int_not_equal(err.message[0], 0);
        failures++;
    }
    assert_true(failures > 0);
}

static void test_fallback(void **state)
{
    (void)state;
    const char *messages =
        "[{\"role\": \"system\", \"content\": \"Be brief.\"}, {\"role\": \"user\", \"content\": "
        "[{\"type\": \"text\", \"text\": \"Hi\"}]}, {\"role\": \"assistant\", \"content\": null, "
        "\"tool_calls\": [{\"function\": {\"name\": \"f\", \"arguments\": {\"a\": 1}}}]}]";
    chat_vars vars = {
        .messages_json = messages, .messages_len = strlen(messages), .add_generation_prompt = true};
    char *out;
    size_t len;
    garlic_error err = {0};
    assert_int_equal(chat_fallback_render(&vars, &out, &len, &err), GARLIC_OK);
    assert_string_equal(
        out, "system: Be brief.\n\nuser: Hi\n\nassistant:\ntool call: f({\"a\": 1})\n\nassistant:");
    garlic_free(out);
}

// The JSON reader takes numbers by RFC 8259's grammar, as Python's json module does: ints
// up to 64 bits stay ints (larger ones become the nearest float, garlic has no big ints);
// tojson(ensure_ascii) writes a byte that starts no UTF-8 sequence as U+FFFD and goes on.
static void test_json_reader(void **state)
{
    (void)state;
    expect_render("{{ a }}|{{ b }}|{{ c }}|{{ d }}|{{ e }}|{{ f }}",
                  "{\"a\": 9223372036854775807, \"b\": -9223372036854775808, \"c\": -0, "
                  "\"d\": 1E2, \"e\": 1e400, \"f\": 0.5e-1}",
                  "9223372036854775807|-9223372036854775808|0|100.0|inf|0.05");
    expect_render(
        "{{ a }}|{{ a is float }}",
        "{\"a\": 12345678901234567890123456789012345678901234567890123456789012345678901}",
        "1.2345678901234568e+70|True");
    static const char *const bad[] = {"{\"v\": 01}", "{\"v\": 1.}",  "{\"v\": -}",
                                      "{\"v\": .5}", "{\"v\": 1e+}", "{\"v\": 1.e5}",
                                      "{\"v\": +1}", "{\"v\": 0x10}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_error("{{ v }}", bad[i], "variables: JSON: ");
    // A NUL after a number is not part of it (it used to be taken in).
    static const char nul[] = "{\"v\": 1\0}";
    chat_template *t = chat_template_parse("{{ v }}", 7, "t", NULL);
    assert_non_null(t);
    chat_vars vars = {.variables_json = nul, .variables_len = sizeof nul - 1};
    char *out = NULL;
    size_t len;
    garlic_error err = {0};
    assert_int_equal(chat_template_render(t, &vars, &out, &len, &err), GARLIC_EFORMAT);
    assert_non_null(strstr(err.message, "at byte 7"));
    chat_template_free(t);
    expect_render("{{ s|tojson(ensure_ascii=true) }}|{{ u|tojson(ensure_ascii=true) }}",
                  "{\"s\": \"\xc3"
                  "A\xff\", \"u\": \"\\ud800x\\ud83d\\ude00\"}",
                  "\"\\ufffdA\\ufffd\"|\"\\ud800x\\ud83d\\ude00\"");
}

// The separate-fields form of chat_vars: tokens, tools, extra variables, documents=None.
static void test_vars_fields(void **state)
{
    (void)state;
    const char *src =
        "{{ bos_token }}|{{ eos_token is defined }}|{{ tools[0].name }}|{{ documents }}|"
        "{{ enable_thinking }}|{{ add_generation_prompt }}|{{ messages|length }}";
    chat_template *t = chat_template_parse(src, strlen(src), "t", NULL);
    assert_non_null(t);
    chat_vars vars = {.messages_json = "[{}, {}]",
                      .messages_len = 8,
                      .tools_json = "[{\"name\": \"w\"}]",
                      .tools_len = 15,
                      .extra_json = "{\"enable_thinking\": false}",
                      .extra_len = 26,
                      .bos_token = "<s>",
                      .add_generation_prompt = true};
    char *out;
    size_t len;
    garlic_error err = {0};
    assert_int_equal(chat_template_render(t, &vars, &out, &len, &err), GARLIC_OK);
    assert_string_equal(out, "<s>|False|w|None|False|True|2");
    garlic_free(out);
    vars.messages_json = "[{]";
    vars.messages_len = 3;
    assert_int_equal(chat_template_render(t, &vars, &out, &len, &err), GARLIC_EFORMAT);
    assert_non_null(strstr(err.message, "messages: JSON"));
    chat_template_free(t);
}

// `garlic chat-template` end to end, on a template file and on a GGUF with and without one.
static void test_cli(void **state)
{
    (void)state;
    if (access(test_garlic(), X_OK) != 0) {
        print_message("skipped: %s is not built\n", test_garlic());
        skip();
    }
    const char *tmpl = test_temp_path("t.jinja");
    const char *src =
        "{{ bos_token }}{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}"
        "{% if add_generation_prompt %}<assistant>{% endif %}{{ strftime_now('%Y') }}\n";
    assert_int_equal(test_write_file(tmpl, src, strlen(src)), 0);
    const char *msgs = test_temp_path("m.json");
    const char *list = "[{\"role\": \"user\", \"content\": \"Hi {{ x }}\"}]";
    assert_int_equal(test_write_file(msgs, list, strlen(list)), 0);
    char *out, *err;
    assert_int_equal(
        test_run(&out, &err,
                 "%s chat-template '%s' --messages '%s' --bos '<s>' --now 2026-01-15T10:30:00",
                 test_garlic(), tmpl, msgs),
        0);
    assert_string_equal(out, "<s><user>Hi {{ x }}<assistant>2026");
    free(out), free(err);
    // a case file: variables hold everything, fixed_datetime feeds strftime_now
    const char *case_file = test_temp_path("c.json");
    const char *case_json =
        "{\"fixed_datetime\": \"1999-12-31T23:59:59\", \"variables\": {\"messages\": [], "
        "\"add_generation_prompt\": false, \"bos_token\": \"B\"}}";
    assert_int_equal(test_write_file(case_file, case_json, strlen(case_json)), 0);
    assert_int_equal(test_run(&out, &err, "%s chat-template '%s' --messages '%s'", test_garlic(),
                              tmpl, case_file),
                     0);
    assert_string_equal(out, "B1999");
    free(out), free(err);
    // raise_exception: exit 1 with the message
    const char *raising = test_temp_path("r.jinja");
    const char *raise_src = "{{ raise_exception('no system role') }}";
    assert_int_equal(test_write_file(raising, raise_src, strlen(raise_src)), 0);
    assert_int_equal(
        test_run(&out, &err, "%s chat-template '%s' --messages '%s'", test_garlic(), raising, msgs),
        1);
    assert_string_equal(out, "");
    assert_non_null(strstr(err, "no system role"));
    free(out), free(err);
    assert_int_equal(test_run(&out, &err, "%s chat-template '%s'", test_garlic(), tmpl), 2);
    free(out), free(err);
    // a GGUF: its template and its vocabulary's BOS text
    const char *gguf = test_temp_path("m.gguf");
    gguf_writer *w = gguf_writer_new();
    const char *tokens[] = {"<unk>", "<|bos|>", "<|eos|>"};
    garlic_error gerr;
    assert_int_equal(gguf_writer_set_str(w, "general.architecture", "llama"), 0);
    assert_int_equal(gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", tokens, 3), 0);
    assert_int_equal(gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 1), 0);
    assert_int_equal(gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 2), 0);
    assert_int_equal(gguf_writer_set_str(w, "tokenizer.chat_template", src), 0);
    assert_int_equal(gguf_writer_write(w, gguf, NULL, NULL, &gerr), 0);
    gguf_writer_free(w);
    assert_int_equal(test_run(&out, &err,
                              "%s chat-template '%s' --messages '%s' --now 2026-01-15T10:30:00",
                              test_garlic(), gguf, msgs),
                     0);
    assert_string_equal(out, "<|bos|><user>Hi {{ x }}<assistant>2026");
    free(out), free(err);
    // a GGUF without a template gets the fallback transcript
    w = gguf_writer_new();
    assert_int_equal(gguf_writer_set_str(w, "general.architecture", "llama"), 0);
    assert_int_equal(gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", tokens, 3), 0);
    assert_int_equal(gguf_writer_write(w, gguf, NULL, NULL, &gerr), 0);
    gguf_writer_free(w);
    assert_int_equal(
        test_run(&out, &err, "%s chat-template '%s' --messages '%s'", test_garlic(), gguf, msgs),
        0);
    assert_string_equal(out, "user: Hi {{ x }}\n\nassistant:");
    free(out), free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_language),        cmocka_unit_test(test_undefined),
        cmocka_unit_test(test_errors),          cmocka_unit_test(test_limits),
        cmocka_unit_test(test_large_dicts),     cmocka_unit_test(test_allocation_failures),
        cmocka_unit_test(test_fallback),        cmocka_unit_test(test_vars_fields),
        cmocka_unit_test(test_json_reader),     cmocka_unit_test(test_cli),
        cmocka_unit_test(test_reference_cases),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
