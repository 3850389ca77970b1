/*
 * Local $ref resolution for schemas. A resolved schema has no $ref left: each reference is
 * replaced by its (resolved) target, allOf is merged into one object schema, oneOf/anyOf are kept
 * with each branch titled after the component it came from so that a discriminator mapping still
 * names something the reader can see.
 *
 * Cycles are cut at the first re-entry: while resolving #/components/schemas/Node, a $ref back to
 * Node is replaced by {"type":"object","description":"(recursive: Node)"}. Every expansion is
 * memoised per $ref and shared between callers (the trees are DAGs: read-only), including one
 * that was cut at a schema entered above it: rebuilding those for each path that reaches them is
 * exponential in a large strongly connected set of schemas (Stripe's 86 took over 50 million
 * nodes before the budget stopped them). So a memoised B may carry a cut at A where A is not an
 * ancestor of this use; A and B are always in one cycle (B reached A and A reached B), so the
 * cut names a schema that really recurses, and the nesting stays bounded by the number of
 * schemas; the catalog collapses deep nesting anyway (heuristic max_depth). External references
 * (other files, URLs) are refused: fetching them would let a document make the gateway open
 * arbitrary URLs (SSRF).
 */
#include <stdlib.h>
#include <string.h>

#include "openapi/openapi-int.h"

#define REF_STACK_MAX OPENAPI_MAX_DEPTH
#define WORK_BUDGET 50000000u /* nodes visited per document, against pathological inputs */

struct oa_resolver {
    json_t *root;
    json_t *memo; /* $ref string -> resolved schema */
    const char *stack[REF_STACK_MAX];
    size_t nstack;
    size_t work;
};

struct oa_resolver *oa_resolver_new(json_t *root)
{
    struct oa_resolver *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    r->root = root;
    r->memo = json_object();
    if (r->memo == NULL) {
        free(r);
        return NULL;
    }
    return r;
}

void oa_resolver_free(struct oa_resolver *r)
{
    if (r == NULL)
        return;
    json_decref(r->memo);
    free(r);
}

/* The last token of a $ref, unescaped: "#/components/schemas/Pet" -> "Pet". */
static void ref_name(const char *ref, char *buf, size_t cap)
{
    const char *slash = strrchr(ref, '/');
    const char *s = slash ? slash + 1 : ref;
    size_t n = 0;
    for (; *s && n + 1 < cap; s++) {
        if (s[0] == '~' && s[1] == '1')
            buf[n++] = '/', s++;
        else if (s[0] == '~' && s[1] == '0')
            buf[n++] = '~', s++;
        else
            buf[n++] = *s;
    }
    buf[n] = '\0';
}

/* Checks a $ref string and finds its target. */
static int ref_target(struct oa_resolver *r, const char *ref, const char *where, json_t **out,
                      struct err_info *ei)
{
    if (ref[0] != '#')
        return oa_fail(ei, ERR_DENIED, where,
                       "external $ref '%.200s' refused: only local references (#/...) are "
                       "followed",
                       ref);
    json_t *t = oa_ptr_get(r->root, ref + 1);
    if (t == NULL)
        return oa_fail(ei, ERR_NOTFOUND, where, "$ref '%.200s' points to nothing in the document",
                       ref);
    *out = t;
    return 0;
}

static int resolve(struct oa_resolver *r, json_t *node, char *ptr, size_t cap, int depth,
                   json_t **out, struct err_info *ei);

/* Keys whose values are data, not schemas: copied as they are. */
static bool is_verbatim_key(const char *k)
{
    return strcmp(k, "example") == 0 || strcmp(k, "examples") == 0 || strcmp(k, "enum") == 0 ||
           strcmp(k, "default") == 0 || strcmp(k, "const") == 0 || strcmp(k, "required") == 0 ||
           strcmp(k, "discriminator") == 0 || strcmp(k, "xml") == 0 ||
           strcmp(k, "externalDocs") == 0 || (k[0] == 'x' && k[1] == '-');
}

static int resolve_ref(struct oa_resolver *r, json_t *node, const char *ref, char *ptr, size_t cap,
                       int depth, json_t **out, struct err_info *ei)
{
    size_t plen = strlen(ptr);
    oa_ptr_push(ptr, cap, "$ref");
    json_t *target = NULL;
    int rc = ref_target(r, ref, ptr, &target, ei);
    ptr[plen] = '\0';
    if (rc)
        return rc;
    json_t *res = NULL;
    for (size_t i = 0; i < r->nstack; i++) {
        if (strcmp(r->stack[i], ref) == 0) {
            char name[128];
            ref_name(ref, name, sizeof(name));
            res = json_pack("{s:s, s:s++}", "type", "object", "description", "(recursive: ", name,
                            ")");
            if (res == NULL)
                return ERR_NOMEM;
            *out = res;
            return 0;
        }
    }
    res = json_incref(json_object_get(r->memo, ref));
    if (res == NULL) {
        if (r->nstack >= REF_STACK_MAX)
            return oa_fail(ei, ERR_LIMIT, ptr, "$ref chain deeper than %d", REF_STACK_MAX);
        char tptr[512];
        snprintf(tptr, sizeof(tptr), "%s", ref + 1);
        r->stack[r->nstack++] = ref;
        rc = resolve(r, target, tptr, sizeof(tptr), depth + 1, &res, ei);
        r->nstack--;
        if (rc)
            return rc;
        if (json_object_set(r->memo, ref, res) != 0) {
            json_decref(res);
            return ERR_NOMEM;
        }
    }
    /* siblings of $ref (3.1; tolerated in 3.0): they refine the target, e.g. a description */
    if (json_object_size(node) > 1 && json_is_object(res)) {
        json_t *copy = json_copy(res);
        json_decref(res);
        if (copy == NULL)
            return ERR_NOMEM;
        const char *k;
        json_t *v;
        json_object_foreach(node, k, v)
        {
            if (strcmp(k, "$ref") == 0)
                continue;
            json_t *rv = NULL;
            size_t pl = strlen(ptr);
            oa_ptr_push(ptr, cap, k);
            rc = is_verbatim_key(k) ? (rv = json_incref(v), 0)
                                    : resolve(r, v, ptr, cap, depth + 1, &rv, ei);
            ptr[pl] = '\0';
            if (rc == 0 && json_object_set_new(copy, k, rv) != 0)
                rc = ERR_NOMEM;
            if (rc) {
                json_decref(copy);
                return rc;
            }
        }
        res = copy;
    }
    *out = res;
    return 0;
}

/* Fold a resolved allOf member into the merged schema. */
static int merge_into(json_t *merged, json_t *sub)
{
    if (!json_is_object(sub))
        return 0;
    const char *k;
    json_t *v;
    json_object_foreach(sub, k, v)
    {
        if (strcmp(k, "properties") == 0 && json_is_object(v)) {
            json_t *props = json_object_get(merged, "properties");
            if (props == NULL) {
                props = json_object();
                if (props == NULL || json_object_set_new(merged, "properties", props) != 0)
                    return ERR_NOMEM;
            }
            if (json_object_update(props, v) != 0)
                return ERR_NOMEM;
        } else if (strcmp(k, "required") == 0 && json_is_array(v)) {
            json_t *req = json_object_get(merged, "required");
            if (req == NULL) {
                req = json_array();
                if (req == NULL || json_object_set_new(merged, "required", req) != 0)
                    return ERR_NOMEM;
            }
            size_t i, j;
            json_t *name, *have;
            json_array_foreach(v, i, name)
            {
                bool dup = false;
                json_array_foreach(req, j, have) dup |= json_equal(have, name);
                if (!dup && json_array_append(req, name) != 0)
                    return ERR_NOMEM;
            }
        } else if (json_object_get(merged, k) == NULL) {
            if (json_object_set(merged, k, v) != 0)
                return ERR_NOMEM;
        }
    }
    return 0;
}

static int merge_all_of(json_t *obj, json_t **out)
{
    json_t *all = json_object_get(obj, "allOf");
    json_t *merged = json_object();
    if (merged == NULL)
        return ERR_NOMEM;
    size_t i;
    json_t *sub;
    int rc = 0;
    json_array_foreach(all, i, sub)
    {
        /* a nested allOf was merged already by resolve() */
        if ((rc = merge_into(merged, sub)) != 0)
            goto fail;
    }
    /* the schema's own keys win over what allOf brought, except that lists are unioned */
    json_t *own = json_copy(obj);
    if (own == NULL) {
        rc = ERR_NOMEM;
        goto fail;
    }
    json_object_del(own, "allOf");
    json_t *ownprops = json_object_get(own, "properties");
    json_t *ownreq = json_object_get(own, "required");
    if (ownprops) {
        json_t *tmp = json_pack("{s:O}", "properties", ownprops);
        rc = tmp ? merge_into(merged, tmp) : ERR_NOMEM;
        json_decref(tmp);
        json_object_del(own, "properties");
    }
    if (rc == 0 && ownreq) {
        json_t *tmp = json_pack("{s:O}", "required", ownreq);
        rc = tmp ? merge_into(merged, tmp) : ERR_NOMEM;
        json_decref(tmp);
        json_object_del(own, "required");
    }
    if (rc == 0 && json_object_update(merged, own) != 0)
        rc = ERR_NOMEM;
    json_decref(own);
    if (rc)
        goto fail;
    if (json_object_get(merged, "type") == NULL && json_object_get(merged, "properties"))
        json_object_set_new(merged, "type", json_string("object"));
    *out = merged;
    return 0;
fail:
    json_decref(merged);
    return rc;
}

static int check_discriminator(struct oa_resolver *r, json_t *disc, char *ptr, size_t cap,
                               struct err_info *ei)
{
    json_t *mapping = json_object_get(disc, "mapping");
    const char *k;
    json_t *v;
    json_object_foreach(mapping, k, v)
    {
        const char *ref = json_string_value(v);
        if (ref == NULL || strchr(ref, '#') == NULL)
            continue; /* a bare schema name */
        size_t pl = strlen(ptr);
        oa_ptr_push(ptr, cap, "discriminator");
        oa_ptr_push(ptr, cap, "mapping");
        oa_ptr_push(ptr, cap, k);
        json_t *t;
        int rc = ref_target(r, ref, ptr, &t, ei);
        ptr[pl] = '\0';
        if (rc)
            return rc;
    }
    return 0;
}

static int resolve(struct oa_resolver *r, json_t *node, char *ptr, size_t cap, int depth,
                   json_t **out, struct err_info *ei)
{
    if (++r->work > WORK_BUDGET)
        return oa_fail(ei, ERR_LIMIT, ptr, "schema expansion exceeds %u nodes", WORK_BUDGET);
    if (depth > OPENAPI_MAX_DEPTH)
        return oa_fail(ei, ERR_LIMIT, ptr, "schema nesting deeper than %d", OPENAPI_MAX_DEPTH);
    int rc = 0;
    size_t pl = strlen(ptr);
    if (json_is_array(node)) {
        json_t *arr = json_array();
        if (arr == NULL)
            return ERR_NOMEM;
        size_t i;
        json_t *v;
        json_array_foreach(node, i, v)
        {
            char idx[24];
            snprintf(idx, sizeof(idx), "%zu", i);
            oa_ptr_push(ptr, cap, idx);
            json_t *rv = NULL;
            rc = resolve(r, v, ptr, cap, depth + 1, &rv, ei);
            ptr[pl] = '\0';
            if (rc == 0 && json_array_append_new(arr, rv) != 0)
                rc = ERR_NOMEM;
            if (rc) {
                json_decref(arr);
                return rc;
            }
        }
        *out = arr;
        return 0;
    }
    if (!json_is_object(node)) {
        *out = json_incref(node);
        return 0;
    }
    const char *ref = json_string_value(json_object_get(node, "$ref"));
    if (ref)
        return resolve_ref(r, node, ref, ptr, cap, depth, out, ei);

    json_t *obj = json_object();
    if (obj == NULL)
        return ERR_NOMEM;
    const char *k;
    json_t *v;
    json_object_foreach(node, k, v)
    {
        json_t *rv = NULL;
        oa_ptr_push(ptr, cap, k);
        if (is_verbatim_key(k)) {
            rv = json_incref(v);
        } else if ((strcmp(k, "properties") == 0 || strcmp(k, "patternProperties") == 0 ||
                    strcmp(k, "$defs") == 0 || strcmp(k, "definitions") == 0) &&
                   json_is_object(v)) {
            /* maps of name -> schema: a property may be called "example" or "$ref" */
            rv = json_object();
            const char *pk;
            json_t *pv;
            size_t ql = strlen(ptr);
            json_object_foreach(v, pk, pv)
            {
                if (rv == NULL)
                    break;
                json_t *rpv = NULL;
                oa_ptr_push(ptr, cap, pk);
                rc = resolve(r, pv, ptr, cap, depth + 1, &rpv, ei);
                ptr[ql] = '\0';
                if (rc == 0 && json_object_set_new(rv, pk, rpv) != 0)
                    rc = ERR_NOMEM;
                if (rc)
                    break;
            }
            if (rv == NULL)
                rc = ERR_NOMEM;
        } else {
            rc = resolve(r, v, ptr, cap, depth + 1, &rv, ei);
            /* name each oneOf/anyOf branch after its component so a discriminator reads well */
            if (rc == 0 && (strcmp(k, "oneOf") == 0 || strcmp(k, "anyOf") == 0) &&
                json_is_array(v)) {
                size_t i;
                json_t *br;
                json_array_foreach(v, i, br)
                {
                    const char *bref = json_string_value(json_object_get(br, "$ref"));
                    json_t *rb = json_array_get(rv, i);
                    if (bref == NULL || !json_is_object(rb) || json_object_get(rb, "title"))
                        continue;
                    char name[128];
                    ref_name(bref, name, sizeof(name));
                    json_t *titled = json_copy(rb);
                    if (titled == NULL || json_object_set_new(titled, "title", json_string(name)) ||
                        json_array_set_new(rv, i, titled)) {
                        rc = ERR_NOMEM;
                        break;
                    }
                }
            }
        }
        ptr[pl] = '\0';
        if (rc) {
            json_decref(rv);
            json_decref(obj);
            return rc;
        }
        if (json_object_set_new(obj, k, rv) != 0) {
            json_decref(obj);
            return ERR_NOMEM;
        }
    }
    json_t *disc = json_object_get(node, "discriminator");
    if (json_is_object(disc) && (rc = check_discriminator(r, disc, ptr, cap, ei)) != 0) {
        json_decref(obj);
        return rc;
    }
    if (json_is_array(json_object_get(obj, "allOf"))) {
        json_t *merged = NULL;
        rc = merge_all_of(obj, &merged);
        json_decref(obj);
        if (rc)
            return rc;
        obj = merged;
    }
    *out = obj;
    return 0;
}

int oa_resolve_schema(struct oa_resolver *r, json_t *schema, const char *ptr, json_t **out,
                      struct err_info *ei)
{
    char buf[512];
    snprintf(buf, sizeof(buf), "%s", ptr);
    r->nstack = 0;
    return resolve(r, schema, buf, sizeof(buf), 0, out, ei);
}

int oa_follow_ref(struct oa_resolver *r, json_t *obj, char *ptr, size_t cap, json_t **out,
                  struct err_info *ei)
{
    for (int hops = 0; hops < 32; hops++) {
        const char *ref = json_string_value(json_object_get(obj, "$ref"));
        if (ref == NULL) {
            *out = obj;
            return 0;
        }
        oa_ptr_push(ptr, cap, "$ref");
        json_t *t = NULL;
        int rc = ref_target(r, ref, ptr, &t, ei);
        if (rc)
            return rc;
        snprintf(ptr, cap, "%s", ref + 1);
        obj = t;
    }
    return oa_fail(ei, ERR_LIMIT, ptr, "$ref chain longer than 32 hops (a cycle?)");
}
