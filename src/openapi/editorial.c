/*
 * The editorial layer as data: ordered include/exclude rules, switchable heuristics and
 * per-operation overrides, loaded from a JSON or YAML file (format in docs/openapi.md). This file
 * only parses and matches; catalog.c applies the decisions and reports them.
 */
#include <ctype.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "openapi/openapi-int.h"

static const struct openapi_heuristics defaults = {
    .deprecated = true,
    .head_options = true,
    .infra = true,
    .admin = true,
    .auth_flow = true,
    .binary_only = true,
    .first_sentence = true,
    .drop_examples = true,
    .drop_extensions = true,
    .enum_cap = 10,
    .max_depth = 3,
    .desc_max = 80,
    .repeated_desc = 5,
    .tool_tokens = 250,
    .large_tool_tokens = 100,
    .response_array_max = 20,
    .response_drop_empty = true,
    .response_drop_links = true,
};

struct openapi_editorial *openapi_editorial_new(void)
{
    struct openapi_editorial *ed = calloc(1, sizeof(*ed));
    if (ed)
        ed->h = defaults;
    return ed;
}

struct openapi_editorial *openapi_editorial_new_naive(void)
{
    return calloc(1, sizeof(struct openapi_editorial));
}

struct openapi_heuristics *openapi_editorial_heuristics(struct openapi_editorial *ed)
{
    return &ed->h;
}

void openapi_editorial_free(struct openapi_editorial *ed)
{
    if (ed == NULL)
        return;
    for (size_t i = 0; i < ed->nrules; i++) {
        free(ed->rules[i].method);
        free(ed->rules[i].path);
        free(ed->rules[i].tag);
        free(ed->rules[i].operation_id);
    }
    free(ed->rules);
    for (size_t i = 0; i < ed->noverrides; i++) {
        struct oa_override *o = &ed->overrides[i];
        free(o->key);
        free(o->name);
        free(o->description);
        for (size_t k = 0; k < o->nhide; k++)
            free(o->hide[k]);
        free(o->hide);
        json_decref(o->fixed);
        json_decref(o->response_fields);
    }
    free(ed->overrides);
    free(ed);
}

/* `*` matches within a path segment, `**` across segments; `?` one character. */
bool oa_glob_match(const char *pat, const char *s)
{
    if (*pat == '\0')
        return *s == '\0';
    if (pat[0] == '*' && pat[1] == '*') {
        for (const char *t = s;; t++) {
            if (oa_glob_match(pat + 2, t))
                return true;
            if (*t == '\0')
                return false;
        }
    }
    if (*pat == '*') {
        for (const char *t = s;; t++) {
            if (oa_glob_match(pat + 1, t))
                return true;
            if (*t == '\0' || *t == '/')
                return false;
        }
    }
    if (*s == '\0')
        return false;
    if (*pat == '?' || *pat == *s)
        return oa_glob_match(pat + 1, s + 1);
    return false;
}

static bool rule_matches(const struct oa_rule *r, const struct openapi_op *op)
{
    if (r->method && strcasecmp(r->method, op->method) != 0)
        return false;
    if (r->path && !oa_glob_match(r->path, op->path))
        return false;
    if (r->operation_id &&
        (op->operation_id == NULL || !oa_glob_match(r->operation_id, op->operation_id)))
        return false;
    if (r->tag) {
        bool any = false;
        for (size_t i = 0; i < op->ntags; i++)
            any |= strcmp(op->tags[i], r->tag) == 0;
        if (!any)
            return false;
    }
    return true;
}

int oa_rules_match(const struct openapi_editorial *ed, const struct openapi_op *op)
{
    for (size_t i = 0; ed && i < ed->nrules; i++)
        if (rule_matches(&ed->rules[i], op))
            return (int)i;
    return -1;
}

const struct oa_override *oa_override_find(const struct openapi_editorial *ed,
                                           const struct openapi_op *op)
{
    if (ed == NULL)
        return NULL;
    char key[1024];
    snprintf(key, sizeof(key), "%s %s", op->method, op->path);
    for (size_t i = 0; op->operation_id && i < ed->noverrides; i++)
        if (strcmp(ed->overrides[i].key, op->operation_id) == 0)
            return &ed->overrides[i];
    for (size_t i = 0; i < ed->noverrides; i++) {
        /* "get /pets" is accepted too: the method part is case-insensitive */
        const char *k = ed->overrides[i].key, *sp = strchr(k, ' ');
        if (sp && (size_t)(sp - k) == strlen(op->method) &&
            strncasecmp(k, op->method, (size_t)(sp - k)) == 0 && strcmp(sp + 1, op->path) == 0)
            return &ed->overrides[i];
    }
    return NULL;
}

/* ---- loading ---- */

static int opt_str(json_t *obj, const char *key, char **out, const char *where, struct err_info *ei)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL)
        return 0;
    if (!json_is_string(v))
        return oa_fail(ei, ERR_INVAL, where, "'%s' must be a string", key);
    *out = strdup(json_string_value(v));
    return *out ? 0 : ERR_NOMEM;
}

static int load_heuristics(struct openapi_editorial *ed, json_t *h, struct err_info *ei)
{
    static const struct {
        const char *name;
        size_t off;
    } flags[] = {
        {"deprecated", offsetof(struct openapi_heuristics, deprecated)},
        {"head_options", offsetof(struct openapi_heuristics, head_options)},
        {"infra", offsetof(struct openapi_heuristics, infra)},
        {"admin", offsetof(struct openapi_heuristics, admin)},
        {"auth_flow", offsetof(struct openapi_heuristics, auth_flow)},
        {"binary_only", offsetof(struct openapi_heuristics, binary_only)},
        {"first_sentence", offsetof(struct openapi_heuristics, first_sentence)},
        {"drop_examples", offsetof(struct openapi_heuristics, drop_examples)},
        {"drop_extensions", offsetof(struct openapi_heuristics, drop_extensions)},
        {"response_drop_empty", offsetof(struct openapi_heuristics, response_drop_empty)},
        {"response_drop_links", offsetof(struct openapi_heuristics, response_drop_links)},
    };
    static const struct {
        const char *name;
        size_t off;
    } counts[] = {
        {"enum_cap", offsetof(struct openapi_heuristics, enum_cap)},
        {"max_depth", offsetof(struct openapi_heuristics, max_depth)},
        {"desc_max", offsetof(struct openapi_heuristics, desc_max)},
        {"repeated_desc", offsetof(struct openapi_heuristics, repeated_desc)},
        {"tool_tokens", offsetof(struct openapi_heuristics, tool_tokens)},
        {"large_tool_tokens", offsetof(struct openapi_heuristics, large_tool_tokens)},
        {"response_array_max", offsetof(struct openapi_heuristics, response_array_max)},
    };
    const char *k;
    json_t *v;
    json_object_foreach(h, k, v)
    {
        char where[128];
        snprintf(where, sizeof(where), "/heuristics/%.100s", k);
        size_t i;
        for (i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
            if (strcmp(k, flags[i].name) == 0)
                break;
        if (i < sizeof(flags) / sizeof(flags[0])) {
            if (!json_is_boolean(v))
                return oa_fail(ei, ERR_INVAL, where, "heuristic '%s' must be true or false", k);
            *(bool *)((char *)&ed->h + flags[i].off) = json_is_true(v);
            continue;
        }
        for (i = 0; i < sizeof(counts) / sizeof(counts[0]); i++)
            if (strcmp(k, counts[i].name) == 0)
                break;
        if (i < sizeof(counts) / sizeof(counts[0])) {
            if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 100000)
                return oa_fail(ei, ERR_INVAL, where, "'%s' must be an integer >= 0 (0 = off)", k);
            *(unsigned *)((char *)&ed->h + counts[i].off) = (unsigned)json_integer_value(v);
        } else {
            return oa_fail(ei, ERR_INVAL, where, "unknown heuristic '%s'", k);
        }
    }
    return 0;
}

static int load_rule(struct oa_rule *r, json_t *j, size_t idx, struct err_info *ei)
{
    char where[64];
    snprintf(where, sizeof(where), "/rules/%zu", idx);
    json_t *inc = json_object_get(j, "include"), *exc = json_object_get(j, "exclude");
    if (!json_is_object(j) || (inc == NULL) == (exc == NULL))
        return oa_fail(ei, ERR_INVAL, where,
                       "a rule is {include: {...}} or {exclude: {...}} (with optional force)");
    json_t *m = inc ? inc : exc;
    r->action = inc ? OA_RULE_INCLUDE : OA_RULE_EXCLUDE;
    r->force = json_is_true(json_object_get(j, "force"));
    if (!json_is_object(m) || json_object_size(m) == 0)
        return oa_fail(ei, ERR_INVAL, where, "a rule needs method, path, tag or operationId");
    const char *k;
    json_t *v;
    json_object_foreach(m, k, v)
    {
        if (strcmp(k, "method") && strcmp(k, "path") && strcmp(k, "tag") &&
            strcmp(k, "operationId"))
            return oa_fail(ei, ERR_INVAL, where, "unknown rule field '%s'", k);
    }
    int rc;
    if ((rc = opt_str(m, "method", &r->method, where, ei)) ||
        (rc = opt_str(m, "path", &r->path, where, ei)) ||
        (rc = opt_str(m, "tag", &r->tag, where, ei)) ||
        (rc = opt_str(m, "operationId", &r->operation_id, where, ei)))
        return rc;
    return 0;
}

static int load_override(struct oa_override *o, const char *key, json_t *j, struct err_info *ei)
{
    char where[300] = "/overrides";
    oa_ptr_push(where, sizeof(where), key);
    if (!json_is_object(j))
        return oa_fail(ei, ERR_INVAL, where, "an override is an object");
    if ((o->key = strdup(key)) == NULL)
        return ERR_NOMEM;
    const char *k;
    json_t *v;
    json_object_foreach(j, k, v)
    {
        if (strcmp(k, "name") && strcmp(k, "description") && strcmp(k, "hide") &&
            strcmp(k, "fixed") && strcmp(k, "response"))
            return oa_fail(ei, ERR_INVAL, where, "unknown override field '%s'", k);
    }
    int rc;
    if ((rc = opt_str(j, "name", &o->name, where, ei)) ||
        (rc = opt_str(j, "description", &o->description, where, ei)))
        return rc;
    if (o->name) {
        size_t n = strlen(o->name);
        bool ok = n >= 1 && n <= 64;
        for (size_t i = 0; ok && i < n; i++)
            ok = isalnum((unsigned char)o->name[i]) || o->name[i] == '_' || o->name[i] == '-';
        if (!ok)
            return oa_fail(ei, ERR_INVAL, where,
                           "tool name '%.80s' does not match "
                           "^[a-zA-Z0-9_-]{1,64}$",
                           o->name);
    }
    json_t *hide = json_object_get(j, "hide");
    if (hide) {
        if (!json_is_array(hide))
            return oa_fail(ei, ERR_INVAL, where, "'hide' is a list of parameter names");
        o->hide = calloc(json_array_size(hide) + 1, sizeof(*o->hide));
        if (o->hide == NULL)
            return ERR_NOMEM;
        size_t i;
        json_array_foreach(hide, i, v)
        {
            if (!json_is_string(v))
                return oa_fail(ei, ERR_INVAL, where, "'hide' is a list of parameter names");
            if ((o->hide[o->nhide++] = strdup(json_string_value(v))) == NULL)
                return ERR_NOMEM;
        }
    }
    json_t *fixed = json_object_get(j, "fixed");
    if (fixed && !json_is_object(fixed))
        return oa_fail(ei, ERR_INVAL, where, "'fixed' maps parameter names to values");
    o->fixed = json_incref(fixed);
    json_t *resp = json_object_get(j, "response");
    if (resp) {
        /* checked here, so that the error points into the editorial file; compiled per tool */
        size_t wl = strlen(where);
        const char *rk;
        json_object_foreach(resp, rk, v)
        {
            if (strcmp(rk, "fields"))
                return oa_fail(ei, ERR_INVAL, where, "unknown response field '%s' (fields only)",
                               rk);
        }
        if (!json_is_object(resp))
            return oa_fail(ei, ERR_INVAL, where, "'response' is an object: {fields: [...]}");
        oa_ptr_push(where, sizeof(where), "response");
        oa_ptr_push(where, sizeof(where), "fields");
        struct openapi_fields *f = NULL;
        int rc2 = openapi_fields_parse(json_object_get(resp, "fields"), where, &f, ei);
        where[wl] = '\0';
        if (rc2)
            return rc2;
        openapi_fields_free(f);
        o->response_fields = json_incref(json_object_get(resp, "fields"));
    }
    return 0;
}

int openapi_editorial_from_json(const json_t *root_c, struct openapi_editorial **out,
                                struct err_info *ei)
{
    json_t *root = (json_t *)(uintptr_t)root_c; /* jansson's getters are not const-correct */
    if (!json_is_object(root))
        return oa_fail(ei, ERR_INVAL, "",
                       "an editorial file is an object with rules, "
                       "heuristics and overrides");
    struct openapi_editorial *ed = openapi_editorial_new();
    if (ed == NULL)
        return ERR_NOMEM;
    int rc = 0;
    const char *k;
    json_t *v;
    json_object_foreach(root, k, v)
    {
        if (strcmp(k, "rules") && strcmp(k, "heuristics") && strcmp(k, "overrides") &&
            strcmp(k, "default")) {
            rc = oa_fail(ei, ERR_INVAL, "", "unknown top-level key '%.100s'", k);
            goto out;
        }
    }
    const char *def = json_string_value(json_object_get(root, "default"));
    if (json_object_get(root, "default") &&
        (def == NULL || (strcmp(def, "include") && strcmp(def, "exclude")))) {
        rc = oa_fail(ei, ERR_INVAL, "/default", "'default' is include or exclude");
        goto out;
    }
    ed->default_exclude = def && strcmp(def, "exclude") == 0;
    json_t *h = json_object_get(root, "heuristics");
    if (h && !json_is_object(h)) {
        rc = oa_fail(ei, ERR_INVAL, "/heuristics", "'heuristics' is an object");
        goto out;
    }
    if (h && (rc = load_heuristics(ed, h, ei)) != 0)
        goto out;
    json_t *rules = json_object_get(root, "rules");
    if (rules && !json_is_array(rules)) {
        rc = oa_fail(ei, ERR_INVAL, "/rules", "'rules' is a list");
        goto out;
    }
    if (json_array_size(rules)) {
        ed->rules = calloc(json_array_size(rules), sizeof(*ed->rules));
        if (ed->rules == NULL) {
            rc = ERR_NOMEM;
            goto out;
        }
        size_t i;
        json_array_foreach(rules, i, v)
        {
            ed->nrules++;
            if ((rc = load_rule(&ed->rules[i], v, i, ei)) != 0)
                goto out;
        }
    }
    json_t *ovs = json_object_get(root, "overrides");
    if (ovs && !json_is_object(ovs)) {
        rc = oa_fail(ei, ERR_INVAL, "/overrides",
                     "'overrides' maps operationId or \"METHOD /path\" to an override");
        goto out;
    }
    if (json_object_size(ovs)) {
        ed->overrides = calloc(json_object_size(ovs), sizeof(*ed->overrides));
        if (ed->overrides == NULL) {
            rc = ERR_NOMEM;
            goto out;
        }
        json_object_foreach(ovs, k, v)
        {
            if ((rc = load_override(&ed->overrides[ed->noverrides++], k, v, ei)) != 0)
                goto out;
        }
    }
    *out = ed;
    ed = NULL;
out:
    openapi_editorial_free(ed);
    return rc;
}

int openapi_editorial_load_file(const char *path, struct openapi_editorial **out,
                                struct err_info *ei)
{
    char *data;
    size_t len;
    int rc = oa_read_file(path, &data, &len, ei);
    if (rc)
        return rc;
    json_t *root = NULL;
    rc = openapi_parse_text(data, len, &root, ei);
    free(data);
    if (rc == 0)
        rc = openapi_editorial_from_json(root, out, ei);
    json_decref(root);
    return rc;
}
