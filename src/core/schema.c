/*
 * The JSON Schema subset of schema.h: enough to tell a model that it sent a string where a
 * number belongs, left out a required member or chose a value outside an enum, with the path of
 * the value, so that it can correct itself. It is not a full validator on purpose: formats,
 * patterns, bounds and combinators are the receiving side's business, and a schema the gateway
 * cannot read must never make it refuse calls the server would take.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/schema.h"

__attribute__((format(printf, 4, 5))) static int fail(struct err_info *ei, int err,
                                                      const char *where, const char *fmt, ...)
{
    if (ei == NULL)
        return err;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ei->msg, sizeof(ei->msg), fmt, ap);
    va_end(ap);
    snprintf(ei->where, sizeof(ei->where), "%s", where);
    ei->line = 0;
    ei->column = 0;
    return err;
}

static const char *json_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    default:
        return "null";
    }
}

static bool type_known(const char *type)
{
    static const char *const known[] = {"string", "integer", "number", "boolean",
                                        "array",  "object",  "null"};
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (strcmp(type, known[i]) == 0)
            return true;
    return false;
}

static bool type_matches(const char *type, const json_t *v)
{
    if (strcmp(type, "string") == 0)
        return json_is_string(v);
    if (strcmp(type, "integer") == 0) {
        double x = json_is_real(v) ? json_real_value(v) : 0.5;
        return json_is_integer(v) || (x > -9e15 && x < 9e15 && x == (double)(long long)x);
    }
    if (strcmp(type, "number") == 0)
        return json_is_number(v);
    if (strcmp(type, "boolean") == 0)
        return json_is_boolean(v);
    if (strcmp(type, "array") == 0)
        return json_is_array(v);
    if (strcmp(type, "object") == 0)
        return json_is_object(v);
    if (strcmp(type, "null") == 0)
        return json_is_null(v);
    return true; /* a type this check does not know: not its business */
}

/* "argument 'a.b' of tool 't'", or for the whole arguments "the arguments of tool 't'" */
static void subject(char *out, size_t cap, const char *path, const char *tool)
{
    if (path[0])
        snprintf(out, cap, "argument '%s' of tool '%s'", path, tool);
    else
        snprintf(out, cap, "the arguments of tool '%s'", tool);
}

static int check(const json_t *schema, const json_t *v, char *path, size_t pathsz, int depth,
                 const char *tool, struct err_info *ei)
{
    if (!json_is_object(schema) || depth > SCHEMA_CHECK_DEPTH_MAX)
        return 0;
    char who[700];
    json_t *type = json_object_get(schema, "type");
    bool nullable = json_is_true(json_object_get(schema, "nullable"));
    if (type != NULL && !(nullable && json_is_null(v))) {
        bool ok = true;
        char want[128] = "";
        if (json_is_string(type) && type_known(json_string_value(type))) {
            ok = type_matches(json_string_value(type), v);
            snprintf(want, sizeof(want), "%s", json_string_value(type));
        } else if (json_is_array(type) && json_array_size(type) > 0) {
            /* a list the check cannot read in full (an entry that is not a type name JSON
               Schema defines) holds nothing: the value may be of the type it cannot read */
            size_t i;
            json_t *t;
            ok = false;
            json_array_foreach(type, i, t)
            {
                if (!json_is_string(t) || !type_known(json_string_value(t))) {
                    ok = true;
                    break;
                }
                ok = ok || type_matches(json_string_value(t), v);
                size_t n = strlen(want);
                snprintf(want + n, sizeof(want) - n, "%s%s", n ? " or " : "", json_string_value(t));
            }
        }
        if (!ok) {
            subject(who, sizeof(who), path, tool);
            return fail(ei, ERR_INVAL, path, "%s must be %s %s, not %s", who,
                        strchr("aeiou", want[0]) ? "an" : "a", want, json_kind(v));
        }
    }
    json_t *en = json_object_get(schema, "enum");
    if (json_is_array(en) && json_array_size(en) > 0) {
        bool found = false;
        size_t i;
        json_t *e;
        json_array_foreach(en, i, e) found = found || json_equal(e, (json_t *)(uintptr_t)v);
        if (!found) {
            char *list = json_dumps(en, JSON_COMPACT);
            subject(who, sizeof(who), path, tool);
            int rc = fail(ei, ERR_INVAL, path, "%s must be one of %.300s", who,
                          list ? list : "the values its schema lists");
            free(list);
            return rc;
        }
    }
    size_t len = strlen(path);
    if (json_is_object(v)) {
        json_t *props = json_object_get(schema, "properties");
        size_t i;
        json_t *r;
        json_array_foreach(json_object_get(schema, "required"), i, r)
        {
            if (!json_is_string(r) || json_object_get(v, json_string_value(r)) != NULL)
                continue;
            if (path[0])
                return fail(ei, ERR_INVAL, path,
                            "argument '%s' of tool '%s' lacks its required member '%.100s'", path,
                            tool, json_string_value(r));
            return fail(ei, ERR_INVAL, json_string_value(r),
                        "missing required argument '%.100s' for tool '%s'", json_string_value(r),
                        tool);
        }
        const char *k;
        json_t *m;
        json_object_foreach((json_t *)(uintptr_t)v, k, m)
        {
            json_t *ps = json_object_get(props, k);
            if (ps == NULL)
                continue;
            snprintf(path + len, pathsz - len, "%s%.100s", len ? "." : "", k);
            int rc = check(ps, m, path, pathsz, depth + 1, tool, ei);
            path[len] = '\0';
            if (rc)
                return rc;
        }
    } else if (json_is_array(v)) {
        json_t *items = json_object_get(schema, "items");
        size_t i;
        json_t *m;
        json_array_foreach((json_t *)(uintptr_t)v, i, m)
        {
            snprintf(path + len, pathsz - len, "[%zu]", i);
            int rc = check(items, m, path, pathsz, depth + 1, tool, ei);
            path[len] = '\0';
            if (rc)
                return rc;
        }
    }
    return 0;
}

int schema_check(const json_t *schema, const json_t *value, const char *name, const char *tool,
                 struct err_info *ei)
{
    char path[512];
    snprintf(path, sizeof(path), "%s", name ? name : "");
    return check(schema, value, path, sizeof(path), 0, tool ? tool : "", ei);
}
