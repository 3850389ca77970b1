/*
 * One tool call to one HTTP request, exactly as the document describes it: path parameters
 * percent-escaped (simple, label, matrix), query parameters by style and explode (form,
 * spaceDelimited, pipeDelimited, deepObject), headers and cookies, and the body as JSON,
 * application/x-www-form-urlencoded with nested keys (metadata[key]=v, items[0][price]=v) or
 * multipart/form-data. Arguments are validated first: unknown, missing and malformed ones are
 * refused with the argument's name. No argument can change the request's structure: values are
 * percent-encoded into their place, and a path segment that would be "." or ".." is refused.
 * Credentials are not handled here (the vault injects them).
 */
#include <ctype.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/buf.h"
#include "core/schema.h"
#include "openapi/openapi-int.h"

#define REQ_MAX (64u << 20) /* bound on any single part of a built request */

enum enc { ENC_NONE, ENC_STRICT };

static int enc(struct buf *b, const char *s, size_t n, enum enc mode)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        int rc;
        if (mode == ENC_NONE || isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
            rc = buf_append(b, &s[i], 1);
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            rc = buf_append(b, e, 3);
        }
        if (rc)
            return rc;
    }
    return 0;
}

/* The text of a scalar (nested values as compact JSON). */
static char *scalar_text(json_t *v)
{
    if (json_is_string(v))
        return strdup(json_string_value(v));
    if (json_is_null(v))
        return strdup("");
    return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
}

static int enc_value(struct buf *b, json_t *v, enum enc mode)
{
    if (json_is_string(v))
        return enc(b, json_string_value(v), json_string_length(v), mode);
    char *s = scalar_text(v);
    if (s == NULL)
        return ERR_NOMEM;
    int rc = enc(b, s, strlen(s), mode);
    free(s);
    return rc;
}

static int enc_str(struct buf *b, const char *s, enum enc mode)
{
    return enc(b, s, strlen(s), mode);
}

/* ---- path and header values (simple, label, matrix) ---- */

/* "name=" of the matrix style; the name is the document's, encoded all the same */
static int name_eq(struct buf *b, const char *name, enum enc mode)
{
    int rc = enc_str(b, name, mode);
    return rc ? rc : buf_append_str(b, "=");
}

static int ser_path(struct buf *b, const struct openapi_param *p, const char *name, json_t *v,
                    enum enc mode)
{
    const char *prefix = "", *sep = ",";
    enum openapi_style st = p ? p->style : OPENAPI_STYLE_SIMPLE;
    bool explode = p && p->explode;
    int rc = 0;
    if (st == OPENAPI_STYLE_LABEL) {
        prefix = ".";
        sep = explode ? "." : ",";
    } else if (st == OPENAPI_STYLE_MATRIX) {
        prefix = ";";
        sep = explode ? ";" : ",";
    }
    bool matrix = st == OPENAPI_STYLE_MATRIX;
    if ((rc = buf_append_str(b, prefix)))
        return rc;
    if (json_is_array(v)) {
        size_t i;
        json_t *e;
        if (matrix && !explode && (rc = name_eq(b, name, mode)))
            return rc;
        json_array_foreach(v, i, e)
        {
            if (i && (rc = buf_append_str(b, sep)))
                return rc;
            if (matrix && explode && (rc = name_eq(b, name, mode)))
                return rc;
            if ((rc = enc_value(b, e, mode)))
                return rc;
        }
        return 0;
    }
    if (json_is_object(v)) {
        const char *k;
        json_t *e;
        bool first = true;
        if (matrix && !explode && (rc = name_eq(b, name, mode)))
            return rc;
        json_object_foreach(v, k, e)
        {
            if (!first && (rc = buf_append_str(b, sep)))
                return rc;
            first = false;
            if ((rc = enc_str(b, k, mode)) || (rc = buf_append_str(b, explode ? "=" : ",")) ||
                (rc = enc_value(b, e, mode)))
                return rc;
        }
        return 0;
    }
    if (matrix && (rc = name_eq(b, name, mode)))
        return rc;
    return enc_value(b, v, mode);
}

/*
 * A path segment that holds an expansion must not be a dot segment. Every value is
 * percent-encoded except the unreserved characters, so "/", "?", "#", ";" and "%" in a value can
 * never add a segment, a query or a fragment; but "." is unreserved, and a segment that is "."
 * or ".." (or their %2E forms, which RFC 3986 6.2.2.2 makes equivalent and which servers such as
 * nginx decode before removing dot segments) would move the request to another resource:
 * DELETE /v1/invoices/{id} with id ".." is DELETE /v1/. Encoding the dots is not enough (the
 * server may decode them), so such a value is refused, naming the argument.
 */
static bool dot_segment(const char *s, size_t n)
{
    size_t dots = 0;
    for (size_t i = 0; i < n; dots++) {
        if (s[i] == '.')
            i++;
        else if (n - i >= 3 && s[i] == '%' && s[i + 1] == '2' &&
                 (s[i + 2] == 'e' || s[i + 2] == 'E'))
            i += 3;
        else
            return false;
    }
    return dots == 1 || dots == 2;
}

static int segment_check(const struct buf *url, size_t seg, const struct openapi_arg *a,
                         struct err_info *ei)
{
    if (!dot_segment(url->data + seg, url->len - seg))
        return 0;
    return oa_fail(ei, ERR_INVAL, a->name,
                   "path argument '%s' would make the path segment '%.*s', a dot segment that "
                   "names another resource; it is refused",
                   a->name, (int)(url->len - seg), url->data + seg);
}

/*
 * A header value is sent as it is (no encoding is defined for headers): a line break would start
 * a new header, a NUL would cut the value, and other control characters are not allowed by RFC
 * 9110 5.5; all are refused, naming the argument. Horizontal tab is allowed. So are the Unicode
 * line and paragraph separators and NEL (U+2028, U+2029, U+0085), which some servers and logs
 * take for line breaks.
 */
static int header_value_check(const struct buf *hv, const struct openapi_arg *a,
                              struct err_info *ei)
{
    for (size_t i = 0; i < hv->len; i++) {
        unsigned char c = (unsigned char)hv->data[i];
        const unsigned char *u = (const unsigned char *)hv->data + i;
        bool nel = c == 0xC2 && i + 1 < hv->len && u[1] == 0x85;
        bool sep = c == 0xE2 && i + 2 < hv->len && u[1] == 0x80 && (u[2] == 0xA8 || u[2] == 0xA9);
        if (nel || sep)
            return oa_fail(ei, ERR_INVAL, a->name,
                           "header argument '%s' contains %s, which may be taken for a line break",
                           a->name,
                           nel            ? "U+0085 (next line)"
                           : u[2] == 0xA8 ? "U+2028 (line separator)"
                                          : "U+2029 (paragraph separator)");
        if (c == '\r' || c == '\n')
            return oa_fail(ei, ERR_INVAL, a->name, "header argument '%s' contains a line break",
                           a->name);
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return oa_fail(ei, ERR_INVAL, a->name,
                           "header argument '%s' contains the control character 0x%02x", a->name,
                           c);
    }
    return 0;
}

/* ---- query values ---- */

static int form_flatten(struct buf *b, struct buf *key, json_t *v, int depth);

static int q_pair(struct buf *q, const char *k, json_t *v)
{
    int rc;
    if (q->len && (rc = buf_append_str(q, "&")))
        return rc;
    if ((rc = enc_str(q, k, ENC_STRICT)) || (rc = buf_append_str(q, "=")))
        return rc;
    return enc_value(q, v, ENC_STRICT);
}

static int ser_query(struct buf *q, const struct openapi_param *p, const char *name, json_t *v)
{
    int rc = 0;
    if (p->style == OPENAPI_STYLE_DEEP_OBJECT && (json_is_object(v) || json_is_array(v))) {
        /* name[k]=v, nested and for arrays name[0]=v, as in form bodies (Stripe's expand[0]) */
        struct buf key;
        buf_init(&key, 4096);
        rc = enc_str(&key, name, ENC_STRICT);
        if (rc == 0)
            rc = form_flatten(q, &key, v, 0);
        buf_release(&key);
        return rc;
    }
    if (json_is_array(v)) {
        const char *sep = p->style == OPENAPI_STYLE_SPACE_DELIMITED  ? "%20"
                          : p->style == OPENAPI_STYLE_PIPE_DELIMITED ? "|"
                                                                     : ",";
        bool explode = p->explode && p->style != OPENAPI_STYLE_SPACE_DELIMITED &&
                       p->style != OPENAPI_STYLE_PIPE_DELIMITED;
        size_t i;
        json_t *e;
        if (explode) {
            json_array_foreach(v, i, e) if ((rc = q_pair(q, name, e))) return rc;
            return 0;
        }
        if (json_array_size(v) == 0)
            return 0;
        if ((q->len && (rc = buf_append_str(q, "&"))) || (rc = enc_str(q, name, ENC_STRICT)) ||
            (rc = buf_append_str(q, "=")))
            return rc;
        json_array_foreach(v, i, e)
        {
            if ((i && (rc = buf_append_str(q, sep))) || (rc = enc_value(q, e, ENC_STRICT)))
                return rc;
        }
        return 0;
    }
    if (json_is_object(v)) {
        const char *k;
        json_t *e;
        if (p->explode && p->style == OPENAPI_STYLE_FORM) {
            json_object_foreach(v, k, e) if ((rc = q_pair(q, k, e))) return rc;
            return 0;
        }
        const char *sep = p->style == OPENAPI_STYLE_SPACE_DELIMITED  ? "%20"
                          : p->style == OPENAPI_STYLE_PIPE_DELIMITED ? "|"
                                                                     : ",";
        if ((q->len && (rc = buf_append_str(q, "&"))) || (rc = enc_str(q, name, ENC_STRICT)) ||
            (rc = buf_append_str(q, "=")))
            return rc;
        bool first = true;
        json_object_foreach(v, k, e)
        {
            if ((!first && (rc = buf_append_str(q, sep))) || (rc = enc_str(q, k, ENC_STRICT)) ||
                (rc = buf_append_str(q, sep)) || (rc = enc_value(q, e, ENC_STRICT)))
                return rc;
            first = false;
        }
        return 0;
    }
    return q_pair(q, name, v);
}

/* ---- bodies ---- */

/* application/x-www-form-urlencoded with nested keys: a[b]=1, a[0][c]=2 */
static int form_flatten(struct buf *b, struct buf *key, json_t *v, int depth)
{
    int rc = 0;
    if (depth > OPENAPI_MAX_DEPTH)
        return ERR_LIMIT;
    size_t klen = key->len;
    if (json_is_object(v) || json_is_array(v)) {
        const char *k;
        size_t i;
        json_t *e;
        if (json_is_object(v)) {
            json_object_foreach(v, k, e)
            {
                if ((klen && (rc = buf_append_str(key, "["))) ||
                    (rc = enc_str(key, k, ENC_STRICT)) ||
                    (klen && (rc = buf_append_str(key, "]"))) ||
                    (rc = form_flatten(b, key, e, depth + 1)))
                    return rc;
                key->len = klen;
                key->data[klen] = '\0';
            }
        } else {
            json_array_foreach(v, i, e)
            {
                if ((rc = buf_printf(key, "[%zu]", i)) || (rc = form_flatten(b, key, e, depth + 1)))
                    return rc;
                key->len = klen;
                key->data[klen] = '\0';
            }
        }
        return 0;
    }
    /* the key is encoded already, with literal brackets, as the APIs that use them document
       (a bracket inside a name is escaped, so the nesting stays unambiguous) */
    if ((b->len && (rc = buf_append_str(b, "&"))) || (rc = buf_append(b, key->data, key->len)) ||
        (rc = buf_append_str(b, "=")))
        return rc;
    return enc_value(b, v, ENC_STRICT);
}

static int multipart(struct buf *b, json_t *body, json_t *schema, char *boundary, size_t cap)
{
    /* a boundary derived from the content cannot occur in it (but for a SHA-256 collision) */
    char *all = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS);
    if (all == NULL)
        return ERR_NOMEM;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_Digest(all, strlen(all), md, &mdlen, EVP_sha256(), NULL);
    free(all);
    size_t n = (size_t)snprintf(boundary, cap, "gatehouse-");
    for (unsigned i = 0; i < 12 && n + 3 < cap; i++)
        n += (size_t)snprintf(boundary + n, cap - n, "%02x", md[i]);
    const char *k;
    json_t *v;
    int rc = 0;
    json_object_foreach(body, k, v)
    {
        json_t *ps = json_object_get(json_object_get(schema, "properties"), k);
        const char *fmt = json_string_value(json_object_get(ps, "format"));
        bool file = fmt && (strcmp(fmt, "binary") == 0 || strcmp(fmt, "base64") == 0);
        if ((rc = buf_printf(b, "--%s\r\nContent-Disposition: form-data; name=\"", boundary)) ||
            (rc = enc(b, k, strlen(k), ENC_NONE)) ||
            (rc = buf_printf(b,
                             file ? "\"; filename=\"%s\"\r\nContent-Type: "
                                    "application/octet-stream\r\n\r\n"
                                  : "\"\r\n%s\r\n",
                             file ? k
                             : (json_is_object(v) || json_is_array(v))
                                 ? "Content-Type: application/json\r\n"
                                 : "")))
            return rc;
        char *s = scalar_text(v);
        if (s == NULL)
            return ERR_NOMEM;
        rc = json_is_string(v) ? buf_append(b, json_string_value(v), json_string_length(v))
                               : buf_append_str(b, s);
        free(s);
        if (rc || (rc = buf_append_str(b, "\r\n")))
            return rc;
    }
    return buf_printf(b, "--%s--\r\n", boundary);
}

/* ---- the request ---- */

static int header_add(struct openapi_request *r, const char *name, const char *value)
{
    struct openapi_header *h = realloc(r->headers, (r->nheaders + 1) * sizeof(*h));
    if (h == NULL)
        return ERR_NOMEM;
    r->headers = h;
    h[r->nheaders].name = strdup(name);
    h[r->nheaders].value = strdup(value);
    r->nheaders++;
    return h[r->nheaders - 1].name && h[r->nheaders - 1].value ? 0 : ERR_NOMEM;
}

void openapi_request_release(struct openapi_request *r)
{
    free(r->method);
    free(r->url);
    for (size_t i = 0; i < r->nheaders; i++) {
        free(r->headers[i].name);
        free(r->headers[i].value);
    }
    free(r->headers);
    free(r->body);
    memset(r, 0, sizeof(*r));
}

const char *openapi_request_header(const struct openapi_request *r, const char *name)
{
    for (size_t i = 0; i < r->nheaders; i++)
        if (strcasecmp(r->headers[i].name, name) == 0)
            return r->headers[i].value;
    return NULL;
}

static const struct openapi_arg *arg_by_name(const struct openapi_tool *t, const char *name)
{
    for (size_t i = 0; i < t->nargs; i++)
        if (!t->args[i].hidden && strcmp(t->args[i].name, name) == 0)
            return &t->args[i];
    return NULL;
}

/* The value sent for arg a: fixed, given, or (hidden) the schema default; NULL = absent. */
static json_t *arg_value(const struct openapi_arg *a, const json_t *args)
{
    if (a->fixed)
        return a->fixed;
    if (a->hidden)
        return json_object_get(a->schema, "default");
    json_t *v = json_object_get(args, a->name);
    return json_is_null(v) && !a->required ? NULL : v;
}

static bool media_is(const char *m, const char *prefix)
{
    return m && strncasecmp(m, prefix, strlen(prefix)) == 0;
}

int openapi_request_build(const struct openapi_catalog *cat, const struct openapi_tool *t,
                          const json_t *args_c, struct openapi_request *out, struct err_info *ei)
{
    json_t *args = (json_t *)(uintptr_t)args_c; /* jansson getters are not const-correct */
    const struct openapi_op *op = t->op;
    struct openapi_request r = {0};
    struct buf url, query, cookie, body, key;
    buf_init(&url, REQ_MAX);
    buf_init(&query, REQ_MAX);
    buf_init(&cookie, REQ_MAX);
    buf_init(&body, REQ_MAX);
    buf_init(&key, 4096);
    json_t *jbody = NULL;
    int rc = 0;
    if (args && !json_is_object(args)) {
        rc = oa_fail(ei, ERR_INVAL, t->name, "arguments of tool '%s' must be an object", t->name);
        goto out;
    }
    const char *k;
    json_t *v;
    json_object_foreach(args, k, v)
    {
        if (arg_by_name(t, k) == NULL) {
            rc = oa_fail(ei, ERR_INVAL, k, "unknown argument '%.100s' for tool '%s'", k, t->name);
            goto out;
        }
    }
    for (size_t i = 0; i < t->nargs; i++) {
        const struct openapi_arg *a = &t->args[i];
        if (a->required && arg_value(a, args) == NULL) {
            rc = oa_fail(ei, ERR_INVAL, a->name, "missing required argument '%s' for tool '%s'",
                         a->name, t->name);
            goto out;
        }
        json_t *given = a->hidden || a->fixed ? NULL : json_object_get(args, a->name);
        if (given != NULL && !json_is_null(given)) {
            /* type, enum, required, properties, items (src/core/schema.h) */
            if ((rc = schema_check(a->schema, given, a->name, t->name, ei)))
                goto out;
        }
    }
    /* URL: base + path template */
    if ((rc = buf_append_str(&url, cat->base_url)))
        goto out;
    /* A path key may carry a fragment (never sent: "/cookies#exploded" names a second operation
     * on /cookies) or a fixed query ("/search?v=2", to which the query arguments are added).
     * The segment being built starts at seg; seg_arg is the first argument expanded into it. */
    bool fixed_query = false;
    size_t seg = url.len;
    const struct openapi_arg *seg_arg = NULL;
    for (const char *p = op->path;; p++) {
        const char *close = *p == '{' ? strchr(p, '}') : NULL;
        if (close == NULL) {
            bool end = *p == '\0' || *p == '#';
            if (!fixed_query && (end || *p == '/' || *p == '?')) {
                if (seg_arg && (rc = segment_check(&url, seg, seg_arg, ei)))
                    goto out;
                seg = url.len + 1;
                seg_arg = NULL;
            }
            if (end)
                break;
            fixed_query = fixed_query || *p == '?';
            if ((rc = buf_append(&url, p, 1)))
                goto out;
            continue;
        }
        const struct openapi_arg *a = NULL;
        for (size_t i = 0; i < t->nargs; i++)
            if (t->args[i].in == OPENAPI_IN_PATH &&
                strlen(t->args[i].wire_name) == (size_t)(close - p - 1) &&
                strncmp(t->args[i].wire_name, p + 1, (size_t)(close - p - 1)) == 0)
                a = &t->args[i];
        json_t *val = a ? arg_value(a, args) : NULL;
        if (val == NULL) {
            rc = oa_fail(ei, ERR_INVAL, op->pointer, "path parameter '%.*s' has no value",
                         (int)(close - p - 1), p + 1);
            goto out;
        }
        size_t before = url.len;
        if ((rc = ser_path(&url, a->param, a->wire_name, val, ENC_STRICT)))
            goto out;
        if (url.len == before) { /* "", null, [], {}, [""]: the segment would vanish */
            rc = oa_fail(ei, ERR_INVAL, a->name, "path argument '%s' must not be empty", a->name);
            goto out;
        }
        seg_arg = seg_arg ? seg_arg : a;
        p = close;
    }
    for (size_t i = 0; i < t->nargs; i++) {
        const struct openapi_arg *a = &t->args[i];
        json_t *val = arg_value(a, args);
        if (val == NULL)
            continue;
        switch (a->in) {
        case OPENAPI_IN_PATH:
            break;
        case OPENAPI_IN_QUERY:
            rc = ser_query(&query, a->param, a->wire_name, val);
            break;
        case OPENAPI_IN_HEADER: {
            struct buf hv;
            buf_init(&hv, 16384);
            rc = ser_path(&hv, a->param, a->wire_name, val, ENC_NONE);
            if (rc == 0)
                rc = header_value_check(&hv, a, ei);
            if (rc == 0)
                rc = header_add(&r, a->wire_name, hv.data ? hv.data : "");
            buf_release(&hv);
            break;
        }
        case OPENAPI_IN_COOKIE:
            if ((cookie.len && (rc = buf_append_str(&cookie, "; "))) ||
                (rc = buf_printf(&cookie, "%s=", a->wire_name)) ||
                (rc = ser_path(&cookie, NULL, a->wire_name, val, ENC_STRICT)))
                break;
            break;
        case OPENAPI_IN_BODY:
            if (jbody == NULL && (jbody = json_object()) == NULL)
                rc = ERR_NOMEM;
            else
                rc = json_object_set(jbody, a->wire_name, val) ? ERR_NOMEM : 0;
            break;
        case OPENAPI_IN_BODY_WHOLE:
            jbody = json_incref(val);
            break;
        }
        if (rc)
            goto out;
    }
    if (query.len && ((rc = buf_append_str(&url, fixed_query ? "&" : "?")) ||
                      (rc = buf_append(&url, query.data, query.len))))
        goto out;
    if (cookie.len && (rc = header_add(&r, "Cookie", cookie.data)))
        goto out;
    for (size_t i = 0; i < op->nresponse_media_types; i++)
        if (strstr(op->response_media_types[i], "json")) {
            if ((rc = header_add(&r, "Accept", "application/json")))
                goto out;
            break;
        }
    if (jbody == NULL && op->body_required)
        jbody = json_object(); /* a required body with only optional fields */
    if (jbody) {
        const char *m = op->body_media;
        char ctype[256];
        snprintf(ctype, sizeof(ctype), "%s", m);
        if (media_is(m, "application/x-www-form-urlencoded")) {
            rc = form_flatten(&body, &key, jbody, 0);
        } else if (media_is(m, "multipart/form-data")) {
            char boundary[64] = "";
            if (!json_is_object(jbody))
                rc = oa_fail(ei, ERR_INVAL, "body", "a multipart body must be an object");
            else
                rc = multipart(&body, jbody, op->body_schema, boundary, sizeof(boundary));
            snprintf(ctype, sizeof(ctype), "multipart/form-data; boundary=%s", boundary);
        } else if (json_is_string(jbody) && !strstr(m, "json") && strcmp(m, "*/*") != 0) {
            rc = buf_append(&body, json_string_value(jbody), json_string_length(jbody));
        } else {
            char *s = json_dumps(jbody, JSON_COMPACT | JSON_ENCODE_ANY);
            rc = s ? buf_append_str(&body, s) : ERR_NOMEM;
            free(s);
            if (strcmp(m, "*/*") == 0)
                snprintf(ctype, sizeof(ctype), "application/json");
        }
        if (rc || (rc = header_add(&r, "Content-Type", ctype)))
            goto out;
        r.body = body.data ? body.data : strdup("");
        r.body_len = body.len;
        body.data = NULL;
        if (r.body == NULL) {
            rc = ERR_NOMEM;
            goto out;
        }
    }
    /* Whatever the document says, no header name or value may start another header. */
    for (size_t i = 0; i < r.nheaders; i++)
        if (strpbrk(r.headers[i].name, "\r\n") || strpbrk(r.headers[i].value, "\r\n")) {
            rc = oa_fail(ei, ERR_INVAL, op->pointer,
                         "the document gives tool '%s' a header name or value with a line break",
                         t->name);
            goto out;
        }
    r.method = strdup(op->method);
    r.url = url.data;
    url.data = NULL;
    if (r.method == NULL || r.url == NULL) {
        rc = ERR_NOMEM;
        goto out;
    }
    *out = r;
    memset(&r, 0, sizeof(r));
out:
    if (rc == ERR_LIMIT)
        oa_fail(ei, rc, t->name, "request for tool '%s' exceeds the size limit", t->name);
    else if (rc == ERR_NOMEM)
        oa_fail(ei, rc, t->name, "out of memory");
    openapi_request_release(&r);
    json_decref(jbody);
    buf_release(&url);
    buf_release(&query);
    buf_release(&cookie);
    buf_release(&body);
    buf_release(&key);
    return rc;
}
