/*
 * The document model: reads a parsed OpenAPI 3.0/3.1 or Swagger 2.0 tree into struct openapi_doc.
 * Swagger 2.0 is normalised on the way in, so nothing downstream knows the difference: `body` and
 * `formData` parameters become a request body (formData as an object schema, `type: file` as a
 * binary string), `host` + `basePath` + `schemes` become the server URL, `collectionFormat`
 * becomes style/explode, `securityDefinitions` become security schemes.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "openapi/openapi-int.h"

struct loader {
    json_t *root;
    bool v2;
    struct oa_resolver *res;
    struct err_info *ei;
};

static const char *const methods[] = {"get",  "put",   "post",  "delete", "options",
                                      "head", "patch", "trace", NULL};

static const char *jstr(json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

static char *upper_dup(const char *s)
{
    char *u = strdup(s);
    for (char *p = u; p && *p; p++)
        *p = (char)toupper((unsigned char)*p);
    return u;
}

static void param_release(struct openapi_param *p)
{
    free(p->name);
    free(p->description);
    json_decref(p->schema);
}

static void strv_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void op_release(struct openapi_op *op)
{
    free(op->method);
    free(op->path);
    free(op->operation_id);
    free(op->summary);
    free(op->description);
    strv_free(op->tags, op->ntags);
    for (size_t i = 0; i < op->nparams; i++)
        param_release(&op->params[i]);
    free(op->params);
    strv_free(op->body_media_types, op->nbody_media_types);
    json_decref(op->body_schema);
    strv_free(op->response_media_types, op->nresponse_media_types);
    json_decref(op->response_schema);
    json_decref(op->security);
    free(op->pointer);
}

struct openapi_doc *openapi_doc_ref(struct openapi_doc *doc)
{
    __atomic_add_fetch(&doc->refs, 1, __ATOMIC_RELAXED);
    return doc;
}

void openapi_doc_unref(struct openapi_doc *doc)
{
    if (doc == NULL || __atomic_sub_fetch(&doc->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    for (size_t i = 0; i < doc->nops; i++)
        op_release(&doc->ops[i]);
    free(doc->ops);
    for (size_t i = 0; i < doc->nschemes; i++) {
        free(doc->schemes[i].name);
        free(doc->schemes[i].param_name);
        free(doc->schemes[i].http_scheme);
    }
    free(doc->schemes);
    free(doc->version);
    free(doc->title);
    free(doc->api_version);
    free(doc->server_url);
    json_decref(doc->root);
    for (size_t i = 0; i < doc->nwarnings; i++)
        free(doc->warnings[i]);
    free(doc->warnings);
    free(doc);
}

static int strv_from_json(json_t *arr, char ***out, size_t *n)
{
    size_t cnt = json_array_size(arr), k = 0;
    char **v = calloc(cnt ? cnt : 1, sizeof(*v));
    if (v == NULL)
        return ERR_NOMEM;
    size_t i;
    json_t *s;
    json_array_foreach(arr, i, s)
    {
        if (json_is_string(s) && (v[k++] = strdup(json_string_value(s))) == NULL) {
            strv_free(v, k);
            return ERR_NOMEM;
        }
    }
    *out = v;
    *n = k;
    return 0;
}

static int strv_push(char ***v, size_t *n, const char *s)
{
    char **nv = realloc(*v, (*n + 1) * sizeof(*nv));
    if (nv == NULL)
        return ERR_NOMEM;
    *v = nv;
    if ((nv[*n] = strdup(s)) == NULL)
        return ERR_NOMEM;
    (*n)++;
    return 0;
}

/* ---- server URL and security schemes ---- */

static int server_url(struct loader *l, struct openapi_doc *doc)
{
    char url[2048] = "";
    if (l->v2) {
        const char *host = jstr(l->root, "host");
        const char *base = jstr(l->root, "basePath");
        json_t *schemes = json_object_get(l->root, "schemes");
        const char *scheme = "https";
        if (json_array_size(schemes) > 0) {
            scheme = json_string_value(json_array_get(schemes, 0));
            size_t i;
            json_t *s;
            json_array_foreach(schemes, i, s) if (json_string_value(s) &&
                                                  strcmp(json_string_value(s), "https") == 0)
                scheme = "https";
        }
        if (host)
            snprintf(url, sizeof(url), "%s://%s%s", scheme ? scheme : "https", host,
                     base ? base : "");
        else
            snprintf(url, sizeof(url), "%s", base ? base : "");
    } else {
        json_t *srv = json_array_get(json_object_get(l->root, "servers"), 0);
        const char *u = jstr(srv, "url");
        json_t *vars = json_object_get(srv, "variables");
        size_t n = 0;
        for (const char *p = u ? u : ""; *p && n + 1 < sizeof(url); p++) {
            const char *close = *p == '{' ? strchr(p, '}') : NULL;
            if (close) {
                char name[128];
                snprintf(name, sizeof(name), "%.*s", (int)(close - p - 1), p + 1);
                const char *def = jstr(json_object_get(vars, name), "default");
                if (def == NULL)
                    return oa_fail(l->ei, ERR_INVAL, "/servers/0/url",
                                   "server variable '%s' has no default", name);
                n += (size_t)snprintf(url + n, sizeof(url) - n, "%s", def);
                if (n >= sizeof(url))
                    n = sizeof(url) - 1;
                p = close;
                continue;
            }
            url[n++] = *p;
        }
        url[n] = '\0';
    }
    size_t len = strlen(url);
    while (len > 0 && url[len - 1] == '/')
        url[--len] = '\0';
    doc->server_url = strdup(url);
    return doc->server_url ? 0 : ERR_NOMEM;
}

static enum openapi_in in_from_str(const char *s, bool *ok)
{
    *ok = true;
    if (s && strcmp(s, "path") == 0)
        return OPENAPI_IN_PATH;
    if (s && strcmp(s, "query") == 0)
        return OPENAPI_IN_QUERY;
    if (s && strcmp(s, "header") == 0)
        return OPENAPI_IN_HEADER;
    if (s && strcmp(s, "cookie") == 0)
        return OPENAPI_IN_COOKIE;
    *ok = false;
    return OPENAPI_IN_QUERY;
}

static int security_schemes(struct loader *l, struct openapi_doc *doc)
{
    json_t *defs = l->v2
                       ? json_object_get(l->root, "securityDefinitions")
                       : json_object_get(json_object_get(l->root, "components"), "securitySchemes");
    size_t n = json_object_size(defs);
    if (n == 0)
        return 0;
    doc->schemes = calloc(n, sizeof(*doc->schemes));
    if (doc->schemes == NULL)
        return ERR_NOMEM;
    const char *name;
    json_t *s;
    json_object_foreach(defs, name, s)
    {
        char ptr[512];
        snprintf(ptr, sizeof(ptr), l->v2 ? "/securityDefinitions" : "/components/securitySchemes");
        oa_ptr_push(ptr, sizeof(ptr), name);
        int rc = oa_follow_ref(l->res, s, ptr, sizeof(ptr), &s, l->ei);
        if (rc)
            return rc;
        struct openapi_security_scheme *sc = &doc->schemes[doc->nschemes++];
        const char *type = jstr(s, "type");
        sc->name = strdup(name);
        if (sc->name == NULL)
            return ERR_NOMEM;
        if (type && strcmp(type, "apiKey") == 0) {
            bool ok;
            sc->type = OPENAPI_SCHEME_API_KEY;
            sc->in = in_from_str(jstr(s, "in"), &ok);
            sc->param_name = oa_strdup(jstr(s, "name"));
            if (!ok || sc->in == OPENAPI_IN_PATH || sc->param_name == NULL)
                return oa_fail(l->ei, ERR_INVAL, ptr,
                               "apiKey security scheme '%s' needs 'name' and 'in' "
                               "(header, query or cookie)",
                               name);
        } else if (type && (strcmp(type, "http") == 0 || strcmp(type, "basic") == 0)) {
            sc->type = OPENAPI_SCHEME_HTTP;
            sc->http_scheme = strdup(strcmp(type, "basic") == 0 ? "basic"
                                     : jstr(s, "scheme")        ? jstr(s, "scheme")
                                                                : "bearer");
        } else if (type && strcmp(type, "oauth2") == 0) {
            sc->type = OPENAPI_SCHEME_OAUTH2;
        } else if (type && strcmp(type, "openIdConnect") == 0) {
            sc->type = OPENAPI_SCHEME_OPENID;
        } else {
            sc->type = OPENAPI_SCHEME_OTHER;
        }
    }
    return 0;
}

/* ---- parameters ---- */

/* Swagger 2.0 non-body parameters carry their schema inline. */
static json_t *v2_param_schema(json_t *p)
{
    static const char *const keys[] = {"type",
                                       "format",
                                       "items",
                                       "enum",
                                       "default",
                                       "minimum",
                                       "maximum",
                                       "exclusiveMinimum",
                                       "exclusiveMaximum",
                                       "minLength",
                                       "maxLength",
                                       "pattern",
                                       "minItems",
                                       "maxItems",
                                       "uniqueItems",
                                       "multipleOf",
                                       NULL};
    json_t *s = json_object();
    for (int i = 0; s && keys[i]; i++) {
        json_t *v = json_object_get(p, keys[i]);
        if (v)
            json_object_set(s, keys[i], v);
    }
    if (s && strcmp(jstr(s, "type") ? jstr(s, "type") : "", "file") == 0) {
        json_object_set_new(s, "type", json_string("string"));
        json_object_set_new(s, "format", json_string("binary"));
    }
    return s;
}

static int param_style(struct loader *l, json_t *p, struct openapi_param *out, const char *ptr)
{
    out->style = out->in == OPENAPI_IN_PATH || out->in == OPENAPI_IN_HEADER ? OPENAPI_STYLE_SIMPLE
                                                                            : OPENAPI_STYLE_FORM;
    if (l->v2) {
        const char *cf = jstr(p, "collectionFormat");
        out->explode = false; /* Swagger 2.0 default is csv */
        if (cf && strcmp(cf, "multi") == 0)
            out->explode = true;
        else if (cf && strcmp(cf, "ssv") == 0)
            out->style = OPENAPI_STYLE_SPACE_DELIMITED;
        else if (cf && strcmp(cf, "pipes") == 0)
            out->style = OPENAPI_STYLE_PIPE_DELIMITED;
        return 0;
    }
    const char *st = jstr(p, "style");
    if (st) {
        static const struct {
            const char *name;
            enum openapi_style style;
        } styles[] = {{"form", OPENAPI_STYLE_FORM},
                      {"simple", OPENAPI_STYLE_SIMPLE},
                      {"label", OPENAPI_STYLE_LABEL},
                      {"matrix", OPENAPI_STYLE_MATRIX},
                      {"spaceDelimited", OPENAPI_STYLE_SPACE_DELIMITED},
                      {"pipeDelimited", OPENAPI_STYLE_PIPE_DELIMITED},
                      {"deepObject", OPENAPI_STYLE_DEEP_OBJECT}};
        size_t i;
        for (i = 0; i < sizeof(styles) / sizeof(styles[0]); i++)
            if (strcmp(st, styles[i].name) == 0)
                break;
        if (i == sizeof(styles) / sizeof(styles[0]))
            return oa_fail(l->ei, ERR_INVAL, ptr, "unknown parameter style '%.64s'", st);
        out->style = styles[i].style;
    }
    json_t *ex = json_object_get(p, "explode");
    out->explode = ex ? json_is_true(ex) : out->style == OPENAPI_STYLE_FORM;
    return 0;
}

/*
 * Parse one parameter object. Swagger body/formData parameters are returned through *body_param
 * / appended to *form instead (their pointers, for the request body).
 */
static int param_parse(struct loader *l, json_t *p, const char *p_ptr, struct openapi_param *out,
                       bool *is_param, json_t **v2_body, json_t *v2_form, char *body_ptr,
                       size_t cap)
{
    char ptr[512];
    snprintf(ptr, sizeof(ptr), "%s", p_ptr);
    int rc = oa_follow_ref(l->res, p, ptr, sizeof(ptr), &p, l->ei);
    if (rc)
        return rc;
    const char *name = jstr(p, "name"), *in = jstr(p, "in");
    if (name == NULL || in == NULL)
        return oa_fail(l->ei, ERR_INVAL, ptr, "parameter needs 'name' and 'in'");
    *is_param = false;
    if (l->v2 && strcmp(in, "body") == 0) {
        *v2_body = p;
        snprintf(body_ptr, cap, "%s", ptr);
        return 0;
    }
    if (l->v2 && strcmp(in, "formData") == 0) {
        json_t *s = v2_param_schema(p);
        if (s == NULL)
            return ERR_NOMEM;
        if (jstr(p, "description"))
            json_object_set(s, "description", json_object_get(p, "description"));
        json_t *props = json_object_get(v2_form, "properties");
        json_object_set_new(props, name, s);
        if (json_is_true(json_object_get(p, "required")))
            json_array_append_new(json_object_get(v2_form, "required"), json_string(name));
        return 0;
    }
    bool ok;
    memset(out, 0, sizeof(*out));
    out->in = in_from_str(in, &ok);
    if (!ok)
        return oa_fail(l->ei, ERR_INVAL, ptr, "unknown parameter location in: '%.64s'", in);
    if ((rc = param_style(l, p, out, ptr)) != 0)
        return rc;
    out->required = out->in == OPENAPI_IN_PATH || json_is_true(json_object_get(p, "required"));
    out->deprecated = json_is_true(json_object_get(p, "deprecated"));
    json_t *schema = NULL;
    char sptr[512];
    snprintf(sptr, sizeof(sptr), "%s", ptr);
    if (l->v2) {
        json_t *s = v2_param_schema(p);
        if (s == NULL)
            return ERR_NOMEM;
        rc = oa_resolve_schema(l->res, s, sptr, &schema, l->ei);
        json_decref(s);
    } else {
        json_t *s = json_object_get(p, "schema");
        if (s) {
            oa_ptr_push(sptr, sizeof(sptr), "schema");
        } else {
            /* `content` parameters: the schema of the (single) media type */
            const char *mt;
            json_t *mv;
            json_object_foreach(json_object_get(p, "content"), mt, mv)
            {
                oa_ptr_push(sptr, sizeof(sptr), "content");
                oa_ptr_push(sptr, sizeof(sptr), mt);
                oa_ptr_push(sptr, sizeof(sptr), "schema");
                s = json_object_get(mv, "schema");
                break;
            }
        }
        if (s)
            rc = oa_resolve_schema(l->res, s, sptr, &schema, l->ei);
        else
            schema = json_pack("{s:s}", "type", "string");
    }
    if (rc)
        return rc;
    if (schema == NULL)
        return ERR_NOMEM;
    out->schema = schema;
    out->name = strdup(name);
    out->description = oa_strdup(jstr(p, "description"));
    if (out->name == NULL)
        return ERR_NOMEM;
    *is_param = true;
    return 0;
}

/* ---- media types ---- */

static bool media_is_json(const char *m)
{
    return strncasecmp(m, "application/json", 16) == 0 || strstr(m, "+json") != NULL ||
           strcmp(m, "*/*") == 0;
}

/* Preference: JSON, then form-urlencoded, then multipart, then whatever comes first. */
static size_t media_pick(char **types, size_t n)
{
    static const char *const pref[] = {"application/json", "application/x-www-form-urlencoded",
                                       "multipart/form-data", NULL};
    for (size_t i = 0; i < n; i++)
        if (strncasecmp(types[i], pref[0], strlen(pref[0])) == 0)
            return i;
    for (size_t i = 0; i < n; i++)
        if (strstr(types[i], "json") != NULL)
            return i;
    for (int k = 1; pref[k]; k++)
        for (size_t i = 0; i < n; i++)
            if (strncasecmp(types[i], pref[k], strlen(pref[k])) == 0)
                return i;
    return 0;
}

static int v3_body(struct loader *l, struct openapi_op *op, json_t *rb, const char *opptr)
{
    char ptr[512];
    snprintf(ptr, sizeof(ptr), "%s", opptr);
    oa_ptr_push(ptr, sizeof(ptr), "requestBody");
    int rc = oa_follow_ref(l->res, rb, ptr, sizeof(ptr), &rb, l->ei);
    if (rc)
        return rc;
    json_t *content = json_object_get(rb, "content");
    const char *mt;
    json_t *mv;
    json_object_foreach(content, mt, mv)
    {
        if ((rc = strv_push(&op->body_media_types, &op->nbody_media_types, mt)) != 0)
            return rc;
    }
    if (op->nbody_media_types == 0)
        return 0;
    size_t pick = media_pick(op->body_media_types, op->nbody_media_types);
    op->body_media = op->body_media_types[pick];
    op->body_required = json_is_true(json_object_get(rb, "required"));
    json_t *s = json_object_get(json_object_get(content, op->body_media), "schema");
    oa_ptr_push(ptr, sizeof(ptr), "content");
    oa_ptr_push(ptr, sizeof(ptr), op->body_media);
    oa_ptr_push(ptr, sizeof(ptr), "schema");
    if (s == NULL) {
        bool binary = !media_is_json(op->body_media) &&
                      strncmp(op->body_media, "application/x-www-form", 22) != 0 &&
                      strncmp(op->body_media, "multipart/", 10) != 0;
        op->body_schema = binary ? json_pack("{s:s,s:s}", "type", "string", "format", "binary")
                                 : json_pack("{s:s}", "type", "object");
        return op->body_schema ? 0 : ERR_NOMEM;
    }
    return oa_resolve_schema(l->res, s, ptr, &op->body_schema, l->ei);
}

static json_t *consumes_of(struct loader *l, json_t *opj, const char *key)
{
    json_t *c = json_object_get(opj, key);
    return c ? c : json_object_get(l->root, key);
}

static int v2_body(struct loader *l, struct openapi_op *op, json_t *opj, json_t *body,
                   const char *body_ptr, json_t *form)
{
    json_t *consumes = consumes_of(l, opj, "consumes");
    int rc = 0;
    if (body) {
        rc = strv_from_json(consumes, &op->body_media_types, &op->nbody_media_types);
        if (rc == 0 && op->nbody_media_types == 0)
            rc = strv_push(&op->body_media_types, &op->nbody_media_types, "application/json");
        if (rc)
            return rc;
        op->body_media =
            op->body_media_types[media_pick(op->body_media_types, op->nbody_media_types)];
        op->body_required = json_is_true(json_object_get(body, "required"));
        char ptr[512];
        snprintf(ptr, sizeof(ptr), "%s", body_ptr);
        oa_ptr_push(ptr, sizeof(ptr), "schema");
        json_t *s = json_object_get(body, "schema");
        if (s == NULL)
            return oa_fail(l->ei, ERR_INVAL, body_ptr, "body parameter without a schema");
        return oa_resolve_schema(l->res, s, ptr, &op->body_schema, l->ei);
    }
    if (json_object_size(json_object_get(form, "properties")) == 0)
        return 0;
    bool has_file = false, multipart = false, urlenc = false;
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(form, "properties"), k, v)
    {
        const char *f = jstr(v, "format");
        has_file |= f && strcmp(f, "binary") == 0;
    }
    size_t i;
    json_array_foreach(consumes, i, v)
    {
        const char *m = json_string_value(v);
        multipart |= m && strncmp(m, "multipart/form-data", 19) == 0;
        urlenc |= m && strncmp(m, "application/x-www-form-urlencoded", 33) == 0;
    }
    const char *mt = (multipart && (has_file || !urlenc)) || (has_file && !urlenc)
                         ? "multipart/form-data"
                         : "application/x-www-form-urlencoded";
    if ((rc = strv_push(&op->body_media_types, &op->nbody_media_types, mt)) != 0)
        return rc;
    op->body_media = op->body_media_types[0];
    op->body_required = json_array_size(json_object_get(form, "required")) > 0;
    if (json_array_size(json_object_get(form, "required")) == 0)
        json_object_del(form, "required");
    op->body_schema = json_incref(form);
    return 0;
}

static int success_response(struct loader *l, struct openapi_op *op, json_t *opj, const char *opptr)
{
    json_t *responses = json_object_get(opj, "responses");
    const char *best = NULL, *code;
    json_t *r;
    json_object_foreach(responses, code, r)
    {
        if (code[0] == '2' && (best == NULL || strcmp(code, best) < 0))
            best = code;
    }
    if (best == NULL && json_object_get(responses, "default"))
        best = "default";
    if (best == NULL)
        return 0;
    char ptr[512];
    snprintf(ptr, sizeof(ptr), "%s", opptr);
    oa_ptr_push(ptr, sizeof(ptr), "responses");
    oa_ptr_push(ptr, sizeof(ptr), best);
    int rc = oa_follow_ref(l->res, json_object_get(responses, best), ptr, sizeof(ptr), &r, l->ei);
    if (rc)
        return rc;
    json_t *schema = NULL;
    if (l->v2) {
        schema = json_object_get(r, "schema");
        rc = strv_from_json(consumes_of(l, opj, "produces"), &op->response_media_types,
                            &op->nresponse_media_types);
        oa_ptr_push(ptr, sizeof(ptr), "schema");
    } else {
        const char *mt;
        json_t *mv;
        json_t *content = json_object_get(r, "content");
        json_object_foreach(content, mt, mv)
        {
            if ((rc = strv_push(&op->response_media_types, &op->nresponse_media_types, mt)))
                return rc;
            if (schema == NULL && media_is_json(mt) && json_object_get(mv, "schema")) {
                schema = json_object_get(mv, "schema");
                oa_ptr_push(ptr, sizeof(ptr), "content");
                oa_ptr_push(ptr, sizeof(ptr), mt);
                oa_ptr_push(ptr, sizeof(ptr), "schema");
            }
        }
    }
    if (rc || schema == NULL)
        return rc;
    return oa_resolve_schema(l->res, schema, ptr, &op->response_schema, l->ei);
}

/* Parameters of the path item and of the operation; the operation's win on (in, name). */
static int op_params(struct loader *l, struct openapi_op *op, json_t *item, const char *itemptr,
                     json_t *opj, const char *opptr)
{
    json_t *lists[2] = {json_object_get(item, "parameters"), json_object_get(opj, "parameters")};
    const char *bases[2] = {itemptr, opptr};
    size_t total = json_array_size(lists[0]) + json_array_size(lists[1]);
    op->params = calloc(total ? total : 1, sizeof(*op->params));
    json_t *form = json_pack("{s:s,s:{},s:[]}", "type", "object", "properties", "required");
    if (op->params == NULL || form == NULL) {
        json_decref(form);
        return ERR_NOMEM;
    }
    json_t *body = NULL;
    char body_ptr[512] = "";
    int rc = 0;
    for (int li = 0; li < 2 && rc == 0; li++) {
        size_t i;
        json_t *p;
        json_array_foreach(lists[li], i, p)
        {
            char ptr[512];
            char idx[24];
            snprintf(idx, sizeof(idx), "%zu", i);
            snprintf(ptr, sizeof(ptr), "%s", bases[li]);
            oa_ptr_push(ptr, sizeof(ptr), "parameters");
            oa_ptr_push(ptr, sizeof(ptr), idx);
            struct openapi_param np;
            bool is_param = false;
            rc = param_parse(l, p, ptr, &np, &is_param, &body, form, body_ptr, sizeof(body_ptr));
            if (rc)
                break;
            if (!is_param)
                continue;
            size_t j;
            for (j = 0; j < op->nparams; j++)
                if (op->params[j].in == np.in && strcmp(op->params[j].name, np.name) == 0)
                    break;
            if (j < op->nparams) {
                if (li == 0) /* a duplicate within the path item: keep the first */
                    param_release(&np);
                else {
                    param_release(&op->params[j]);
                    op->params[j] = np;
                }
            } else {
                op->params[op->nparams++] = np;
            }
        }
    }
    if (rc == 0) {
        json_t *rb = json_object_get(opj, "requestBody");
        if (!l->v2 && rb)
            rc = v3_body(l, op, rb, opptr);
        else if (l->v2)
            rc = v2_body(l, op, opj, body, body_ptr, form);
    }
    json_decref(form);
    return rc;
}

static int op_parse(struct loader *l, struct openapi_op *op, const char *path, const char *method,
                    json_t *item, const char *itemptr, json_t *opj)
{
    char ptr[512];
    snprintf(ptr, sizeof(ptr), "%s", itemptr);
    oa_ptr_push(ptr, sizeof(ptr), method);
    if (!json_is_object(opj))
        return oa_fail(l->ei, ERR_INVAL, ptr, "operation is not an object");
    op->method = upper_dup(method);
    op->path = strdup(path);
    op->pointer = strdup(ptr);
    op->operation_id = oa_strdup(jstr(opj, "operationId"));
    op->summary = oa_strdup(jstr(opj, "summary"));
    op->description = oa_strdup(jstr(opj, "description"));
    op->deprecated = json_is_true(json_object_get(opj, "deprecated"));
    op->internal = json_is_true(json_object_get(opj, "x-internal"));
    if (op->method == NULL || op->path == NULL || op->pointer == NULL)
        return ERR_NOMEM;
    int rc = strv_from_json(json_object_get(opj, "tags"), &op->tags, &op->ntags);
    if (rc == 0)
        rc = op_params(l, op, item, itemptr, opj, ptr);
    if (rc == 0)
        rc = success_response(l, op, opj, ptr);
    if (rc)
        return rc;
    json_t *sec = json_object_get(opj, "security");
    if (!json_is_array(sec))
        sec = json_object_get(l->root, "security");
    op->security = json_is_array(sec) ? json_deep_copy(sec) : json_array();
    return op->security ? 0 : ERR_NOMEM;
}

static int load_paths(struct loader *l, struct openapi_doc *doc)
{
    json_t *paths = json_object_get(l->root, "paths");
    if (paths == NULL && !l->v2 && json_object_get(l->root, "webhooks"))
        return 0; /* 3.1 allows documents with webhooks only */
    if (!json_is_object(paths))
        return oa_fail(l->ei, ERR_INVAL, "/paths", "'paths' is missing or not an object");
    size_t cap = 0;
    const char *path;
    json_t *item;
    json_object_foreach(paths, path, item) cap += json_object_size(item);
    doc->ops = calloc(cap ? cap : 1, sizeof(*doc->ops));
    if (doc->ops == NULL)
        return ERR_NOMEM;
    json_object_foreach(paths, path, item)
    {
        char ptr[512] = "/paths";
        oa_ptr_push(ptr, sizeof(ptr), path);
        if (path[0] != '/')
            return oa_fail(l->ei, ERR_INVAL, ptr, "path '%.200s' does not start with '/'", path);
        int rc = oa_follow_ref(l->res, item, ptr, sizeof(ptr), &item, l->ei);
        if (rc)
            return rc;
        if (!json_is_object(item))
            return oa_fail(l->ei, ERR_INVAL, ptr, "path item is not an object");
        const char *m;
        json_t *opj;
        json_object_foreach(item, m, opj)
        {
            bool is_method = false;
            for (int i = 0; methods[i]; i++)
                is_method |= strcmp(m, methods[i]) == 0;
            if (!is_method)
                continue;
            if (doc->nops == cap) /* a $ref path item can be larger than counted */
                return oa_fail(l->ei, ERR_LIMIT, ptr, "too many operations");
            struct openapi_op *op = &doc->ops[doc->nops++];
            if ((rc = op_parse(l, op, path, m, item, ptr, opj)) != 0)
                return rc;
        }
    }
    return 0;
}

static int doc_build(json_t *root, json_t *warnings, struct openapi_doc **out, struct err_info *ei)
{
    if (!json_is_object(root))
        return oa_fail(ei, ERR_INVAL, "",
                       "not an OpenAPI document: the top level is not an object");
    struct loader l = {.root = root, .ei = ei};
    const char *oa = jstr(root, "openapi"), *sw = jstr(root, "swagger");
    if (sw && strcmp(sw, "2.0") == 0)
        l.v2 = true;
    else if (oa && (strncmp(oa, "3.0", 3) == 0 || strncmp(oa, "3.1", 3) == 0))
        l.v2 = false;
    else if (oa || sw)
        return oa_fail(ei, ERR_INVAL, oa ? "/openapi" : "/swagger",
                       "unsupported version '%.32s' (OpenAPI 3.0, 3.1 and Swagger 2.0 are)",
                       oa ? oa : sw);
    else
        return oa_fail(ei, ERR_INVAL, "",
                       "not an OpenAPI document: neither 'openapi' nor 'swagger' is set");
    struct openapi_doc *doc = calloc(1, sizeof(*doc));
    if (doc == NULL)
        return ERR_NOMEM;
    doc->refs = 1;
    doc->root = json_incref(root);
    int rc = ERR_NOMEM;
    l.res = oa_resolver_new(root);
    if (l.res == NULL)
        goto out;
    doc->version = strdup(l.v2 ? sw : oa);
    json_t *info = json_object_get(root, "info");
    doc->title = oa_strdup(jstr(info, "title"));
    doc->api_version = oa_strdup(jstr(info, "version"));
    if (doc->version == NULL)
        goto out;
    if ((rc = server_url(&l, doc)) != 0 || (rc = security_schemes(&l, doc)) != 0 ||
        (rc = load_paths(&l, doc)) != 0)
        goto out;
    if (json_array_size(warnings)) {
        rc = ERR_NOMEM;
        if ((doc->warnings = calloc(json_array_size(warnings), sizeof(char *))) == NULL)
            goto out;
        for (; doc->nwarnings < json_array_size(warnings); doc->nwarnings++)
            if ((doc->warnings[doc->nwarnings] =
                     strdup(json_string_value(json_array_get(warnings, doc->nwarnings)))) == NULL)
                goto out;
        rc = 0;
    }
    *out = doc;
    doc = NULL;
out:
    oa_resolver_free(l.res);
    openapi_doc_unref(doc);
    if (rc == ERR_NOMEM)
        oa_fail(ei, rc, "", "out of memory");
    return rc;
}

int openapi_doc_load_mem(const char *data, size_t len, struct openapi_doc **out,
                         struct err_info *ei)
{
    if (len > OPENAPI_MAX_DOC_BYTES)
        return oa_fail(ei, ERR_LIMIT, "", "document larger than %u bytes", OPENAPI_MAX_DOC_BYTES);
    json_t *root = NULL;
    int rc = openapi_parse_text(data, len, &root, ei);
    if (rc)
        return rc;
    rc = doc_build(root, NULL, out, ei);
    json_decref(root);
    return rc;
}

int oa_read_file(const char *path, char **data, size_t *len, struct err_info *ei)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return oa_fail(ei, ERR_IO, path, "cannot open %s: %m", path);
    struct stat st;
    int rc = 0;
    char *buf = NULL;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = oa_fail(ei, ERR_IO, path, "%s is not a regular file", path);
        goto out;
    }
    if ((unsigned long long)st.st_size > OPENAPI_MAX_DOC_BYTES) {
        rc =
            oa_fail(ei, ERR_LIMIT, path, "%s is larger than %u bytes", path, OPENAPI_MAX_DOC_BYTES);
        goto out;
    }
    buf = malloc((size_t)st.st_size + 1);
    if (buf == NULL) {
        rc = ERR_NOMEM;
        goto out;
    }
    size_t got = fread(buf, 1, (size_t)st.st_size, f);
    if (got != (size_t)st.st_size) {
        rc = oa_fail(ei, ERR_IO, path, "short read on %s", path);
        goto out;
    }
    buf[got] = '\0';
    *data = buf;
    *len = got;
    buf = NULL;
out:
    free(buf);
    fclose(f);
    return rc;
}

int openapi_doc_load_file(const char *path, struct openapi_doc **out, struct err_info *ei)
{
    return openapi_doc_load_overlaid(path, NULL, 0, out, ei);
}

int openapi_doc_load_overlaid(const char *path, const char *const *overlays, size_t noverlays,
                              struct openapi_doc **out, struct err_info *ei)
{
    char *data;
    size_t len;
    json_t *root = NULL, *warnings = NULL;
    int rc = oa_read_file(path, &data, &len, ei);
    if (rc)
        return rc;
    rc = openapi_parse_text(data, len, &root, ei);
    free(data);
    if (rc == 0 && noverlays && (warnings = json_array()) == NULL)
        rc = oa_fail(ei, ERR_NOMEM, "", "out of memory");
    for (size_t i = 0; rc == 0 && i < noverlays; i++) {
        struct openapi_overlay *ov = NULL;
        struct err_info oe = {0};
        rc = openapi_overlay_load_file(overlays[i], &ov, &oe);
        if (rc == 0)
            rc = openapi_overlay_apply(ov, root, warnings, &oe);
        if (rc) /* every message names the overlay file, once */
            oa_fail(ei, rc, oe.where, "%s%s%s%s", strstr(oe.msg, overlays[i]) ? "" : "overlay ",
                    strstr(oe.msg, overlays[i]) ? "" : overlays[i],
                    strstr(oe.msg, overlays[i]) ? "" : ": ", oe.msg);
        openapi_overlay_free(ov);
    }
    if (rc == 0)
        rc = doc_build(root, warnings, out, ei);
    json_decref(warnings);
    json_decref(root);
    return rc;
}
