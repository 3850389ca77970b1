/*
 * OpenAPI Overlay 1.0 documents: ordered actions, each a JSONPath `target` (jsonpath.c) with an
 * `update` merged into every node it selects or `remove: true` to delete them, applied to the raw
 * document tree before it becomes the model. An overlay lets a team fix or trim an API
 * description it does not own (drop endpoints, rewrite descriptions, add tags the editorial rules
 * select on) without editing the file. An action whose target selects nothing is reported as a
 * warning that names it: a renamed path upstream must not silently turn a fix into a no-op.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "openapi/openapi-int.h"

#define OVERLAY_MAX_ACTIONS 10000

struct overlay_action {
    char *target;
    char *description; /* may be NULL */
    struct openapi_jsonpath *path;
    json_t *update; /* NULL with remove */
    bool remove;
};

struct openapi_overlay {
    char *name; /* the file name (or "<memory>"), for messages */
    char *title;
    struct overlay_action *actions;
    size_t nactions;
};

void openapi_overlay_free(struct openapi_overlay *ov)
{
    if (ov == NULL)
        return;
    for (size_t i = 0; i < ov->nactions; i++) {
        free(ov->actions[i].target);
        free(ov->actions[i].description);
        openapi_jsonpath_free(ov->actions[i].path);
        json_decref(ov->actions[i].update);
    }
    free(ov->actions);
    free(ov->name);
    free(ov->title);
    free(ov);
}

static bool only_keys(json_t *obj, const char *const *keys, const char **bad)
{
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v)
    {
        bool ok = strncmp(k, "x-", 2) == 0;
        for (size_t i = 0; !ok && keys[i]; i++)
            ok = strcmp(k, keys[i]) == 0;
        if (!ok) {
            *bad = k;
            return false;
        }
    }
    return true;
}

static int load_action(struct overlay_action *a, json_t *j, size_t idx, struct err_info *ei)
{
    static const char *const keys[] = {"target", "description", "update", "remove", NULL};
    char where[64];
    snprintf(where, sizeof(where), "/actions/%zu", idx);
    const char *bad;
    if (!json_is_object(j))
        return oa_fail(ei, ERR_INVAL, where,
                       "an action is an object with target and update or "
                       "remove");
    if (!only_keys(j, keys, &bad))
        return oa_fail(ei, ERR_INVAL, where,
                       "unknown action field '%.100s' (target, description, update, remove and "
                       "x-* are)",
                       bad);
    const char *t = json_string_value(json_object_get(j, "target"));
    if (t == NULL)
        return oa_fail(ei, ERR_INVAL, where, "action %zu has no target (a JSONPath string)",
                       idx + 1);
    json_t *d = json_object_get(j, "description"), *rm = json_object_get(j, "remove");
    if (d && !json_is_string(d))
        return oa_fail(ei, ERR_INVAL, where, "the description of action %zu is not a string",
                       idx + 1);
    if (rm && !json_is_boolean(rm))
        return oa_fail(ei, ERR_INVAL, where, "'remove' of action %zu must be true or false",
                       idx + 1);
    a->remove = json_is_true(rm);
    a->update = json_incref(json_object_get(j, "update"));
    if (a->remove && a->update)
        return oa_fail(ei, ERR_INVAL, where,
                       "action %zu has both update and remove: true; give one of them", idx + 1);
    if (!a->remove && a->update == NULL)
        return oa_fail(ei, ERR_INVAL, where, "action %zu has neither update nor remove: true",
                       idx + 1);
    if ((a->target = strdup(t)) == NULL ||
        (d && (a->description = strdup(json_string_value(d))) == NULL))
        return ERR_NOMEM;
    struct err_info pe = {0};
    int rc = openapi_jsonpath_compile(t, &a->path, &pe);
    if (rc) {
        snprintf(where, sizeof(where), "/actions/%zu/target", idx);
        return oa_fail(ei, rc, where, "%s", pe.msg);
    }
    if (a->remove && oa_jsonpath_is_root(a->path))
        return oa_fail(ei, ERR_INVAL, where, "action %zu removes the whole document ($)", idx + 1);
    return 0;
}

int openapi_overlay_from_json(const json_t *root_c, const char *name, struct openapi_overlay **out,
                              struct err_info *ei)
{
    static const char *const keys[] = {"overlay", "info", "extends", "actions", NULL};
    json_t *root = (json_t *)(uintptr_t)root_c; /* jansson's getters are not const-correct */
    const char *bad;
    if (!json_is_object(root))
        return oa_fail(ei, ERR_INVAL, "", "an overlay is an object with overlay, info and actions");
    const char *ver = json_string_value(json_object_get(root, "overlay"));
    if (ver == NULL)
        return oa_fail(ei, ERR_INVAL, "/overlay",
                       "not an Overlay document: 'overlay' (the version, 1.0.x) is not set");
    if (strncmp(ver, "1.0.", 4) != 0)
        return oa_fail(ei, ERR_INVAL, "/overlay",
                       "unsupported Overlay version '%.32s' (1.0.x is supported)", ver);
    if (!only_keys(root, keys, &bad))
        return oa_fail(ei, ERR_INVAL, "",
                       "unknown top-level key '%.100s' (overlay, info, extends, actions and x-* "
                       "are)",
                       bad);
    json_t *info = json_object_get(root, "info");
    if (!json_is_string(json_object_get(info, "title")) ||
        !json_is_string(json_object_get(info, "version")))
        return oa_fail(ei, ERR_INVAL, "/info", "info needs a title and a version (strings)");
    json_t *acts = json_object_get(root, "actions");
    if (!json_is_array(acts) || json_array_size(acts) == 0)
        return oa_fail(ei, ERR_INVAL, "/actions", "'actions' is a non-empty list of actions");
    if (json_array_size(acts) > OVERLAY_MAX_ACTIONS)
        return oa_fail(ei, ERR_LIMIT, "/actions", "more than %d actions", OVERLAY_MAX_ACTIONS);
    struct openapi_overlay *ov = calloc(1, sizeof(*ov));
    int rc = ERR_NOMEM;
    if (ov == NULL)
        goto out;
    ov->name = strdup(name ? name : "<memory>");
    ov->title = strdup(json_string_value(json_object_get(info, "title")));
    ov->actions = calloc(json_array_size(acts), sizeof(*ov->actions));
    if (ov->name == NULL || ov->title == NULL || ov->actions == NULL)
        goto out;
    rc = 0;
    size_t i;
    json_t *a;
    json_array_foreach(acts, i, a)
    {
        ov->nactions++;
        if ((rc = load_action(&ov->actions[i], a, i, ei)) != 0)
            goto out;
    }
    *out = ov;
    ov = NULL;
out:
    if (rc == ERR_NOMEM)
        oa_fail(ei, rc, "", "out of memory");
    openapi_overlay_free(ov);
    return rc;
}

int openapi_overlay_load_file(const char *path, struct openapi_overlay **out, struct err_info *ei)
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
        rc = openapi_overlay_from_json(root, path, out, ei);
    json_decref(root);
    return rc;
}

/* ---- applying ---- */

/* Merge `upd` into object `dst`: objects recursively, anything else replaced. */
static int merge_object(json_t *dst, json_t *upd, int depth)
{
    if (depth > OPENAPI_MAX_DEPTH)
        return ERR_LIMIT;
    const char *k;
    json_t *v;
    json_object_foreach(upd, k, v)
    {
        json_t *cur = json_object_get(dst, k);
        int rc;
        if (json_is_object(cur) && json_is_object(v))
            rc = merge_object(cur, v, depth + 1);
        else
            rc = json_object_set_new(dst, k, json_deep_copy(v)) == 0 ? 0 : ERR_NOMEM;
        if (rc)
            return rc;
    }
    return 0;
}

/* The node's current place in its parent (earlier actions may have moved array elements). */
static bool replace_in_parent(const struct openapi_jsonpath_node *n, json_t *v)
{
    if (json_is_object(n->parent))
        return json_object_get(n->parent, n->key) == n->node &&
               json_object_set_new(n->parent, n->key, v) == 0;
    for (size_t i = 0; i < json_array_size(n->parent); i++)
        if (json_array_get(n->parent, i) == n->node)
            return json_array_set_new(n->parent, i, v) == 0;
    json_decref(v);
    return false;
}

static int apply_one(const struct overlay_action *a, const struct openapi_jsonpath_node *n)
{
    if (a->remove) {
        if (json_is_object(n->parent)) {
            if (json_object_get(n->parent, n->key) == n->node)
                json_object_del(n->parent, n->key);
        } else {
            for (size_t i = 0; i < json_array_size(n->parent); i++)
                if (json_array_get(n->parent, i) == n->node) {
                    json_array_remove(n->parent, i);
                    break;
                }
        }
        return 0;
    }
    if (json_is_object(n->node) && json_is_object(a->update))
        return merge_object(n->node, a->update, 0);
    if (json_is_array(n->node)) {
        /* an array target gets the update appended; an array update is appended item by item */
        json_t *copy = json_deep_copy(a->update);
        int rc = copy == NULL               ? -1
                 : json_is_array(a->update) ? json_array_extend(n->node, copy)
                                            : json_array_append(n->node, copy);
        json_decref(copy);
        return rc == 0 ? 0 : ERR_NOMEM;
    }
    if (n->parent == NULL)
        return ERR_INVAL; /* the root is an object; refused by the caller */
    json_t *copy = json_deep_copy(a->update);
    if (copy == NULL)
        return ERR_NOMEM;
    replace_in_parent(n, copy);
    return 0;
}

int openapi_overlay_apply(const struct openapi_overlay *ov, json_t *root, json_t *warnings,
                          struct err_info *ei)
{
    for (size_t i = 0; i < ov->nactions; i++) {
        const struct overlay_action *a = &ov->actions[i];
        char where[64];
        snprintf(where, sizeof(where), "/actions/%zu", i);
        if (oa_jsonpath_is_root(a->path) && !json_is_object(a->update))
            return oa_fail(ei, ERR_INVAL, where,
                           "overlay %s: action %zu targets the document root ($) with an update "
                           "that is not an object",
                           ov->name, i + 1);
        struct openapi_jsonpath_node *nodes = NULL;
        size_t n = 0;
        int rc = openapi_jsonpath_query(a->path, root, &nodes, &n);
        if (rc)
            return oa_fail(ei, rc, where, "overlay %s: action %zu (target %.200s): %s", ov->name,
                           i + 1, a->target,
                           rc == ERR_LIMIT ? "the target selects too many nodes" : err_str(rc));
        /* hold every node and parent: removing one may free another's parent otherwise */
        for (size_t k = 0; k < n; k++) {
            json_incref(nodes[k].node);
            json_incref(nodes[k].parent);
        }
        /* keys point into parents; an update of an earlier node never removes a later key */
        for (size_t k = 0; k < n && rc == 0; k++)
            rc = apply_one(a, &nodes[k]);
        for (size_t k = 0; k < n; k++) {
            json_decref(nodes[k].node);
            json_decref(nodes[k].parent);
        }
        free(nodes);
        if (rc)
            return oa_fail(ei, rc, where, "overlay %s: action %zu (target %.200s): %s", ov->name,
                           i + 1, a->target, err_str(rc));
        if (n == 0 && warnings) {
            char *w = oa_asprintf("overlay %s: action %zu (target %s%s%s%s) matches nothing in "
                                  "the document; it was not applied",
                                  ov->name, i + 1, a->target, a->description ? ", \"" : "",
                                  a->description ? a->description : "", a->description ? "\"" : "");
            if (w == NULL || json_array_append_new(warnings, json_string(w)) != 0) {
                free(w);
                return oa_fail(ei, ERR_NOMEM, "", "out of memory");
            }
            free(w);
        }
    }
    return 0;
}
