/*
 * Response projection: what of an API's JSON answer a model gets to read. A list endpoint of a
 * REST API answers tens of kilobytes (GitHub's issue list: 30 issues, each with its user, labels,
 * milestone, reactions and two dozen API links), most of which no model asked for. Two layers:
 *
 *   fields     the operator's selection per operation (override `response: {fields: [...]}`):
 *              JSON pointers (`/user/login`) or dotted paths (`user.login`), `[]` for every
 *              element of an array (`items[].title`); a name applied to an array applies to each
 *              element, so `[]` is optional. Only the selected members are kept, in their place.
 *   defaults   (heuristics response_*): members that are null, "", [] or {} dropped; API links
 *              dropped (`_links`, and `url` / `*_url` members whose value points into the API's
 *              own base URL: the model reaches those resources through the tools, not by URL;
 *              links elsewhere, such as `html_url`, stay); arrays cut to response_array_max
 *              items with a string in the array saying how many were not shown.
 *
 * With fields selected, only the array cap applies on top (the operator chose what to see,
 * empty values included). Whatever was dropped is summed up in a note line for the model, so
 * that it never mistakes a projection for the whole answer.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "openapi/openapi-int.h"

#define FIELDS_MAX 64   /* fields per operation */
#define FIELD_BYTES 256 /* bytes per field path */
#define FIELD_STEPS 16  /* steps per field path */
#define TIDY_DEPTH 128  /* nesting below which a response is passed as it is */
#define NOTE_FIELDS 300 /* bytes of the field list quoted in the note */

/* One step of the selection trie: a member name (also an index on arrays), or every element. */
struct fnode {
    char *key; /* NULL: `[]` */
    bool leaf; /* a path ends here: the whole value is kept */
    struct fnode *kids;
    size_t nkids;
};

struct openapi_fields {
    struct fnode root;
    char *text; /* the paths as written, comma-separated, for the note */
};

static void fnode_release(struct fnode *n)
{
    for (size_t i = 0; i < n->nkids; i++)
        fnode_release(&n->kids[i]);
    free(n->kids);
    free(n->key);
}

void openapi_fields_free(struct openapi_fields *f)
{
    if (f == NULL)
        return;
    fnode_release(&f->root);
    free(f->text);
    free(f);
}

/* The child of n for `key` (NULL: every element), created when absent. NULL when out of memory. */
static struct fnode *fnode_child(struct fnode *n, const char *key, size_t klen)
{
    for (size_t i = 0; i < n->nkids; i++) {
        const char *k = n->kids[i].key;
        if (key == NULL ? k == NULL : k && strlen(k) == klen && memcmp(k, key, klen) == 0)
            return &n->kids[i];
    }
    struct fnode *kids = realloc(n->kids, (n->nkids + 1) * sizeof(*kids));
    if (kids == NULL)
        return NULL;
    n->kids = kids;
    struct fnode *c = &kids[n->nkids];
    memset(c, 0, sizeof(*c));
    if (key && (c->key = strndup(key, klen)) == NULL)
        return NULL;
    n->nkids++;
    return c;
}

/*
 * Add one path to the trie. Pointer form: `/a/b~1c/[]/d`, `/a[]/d` (~0 and ~1 unescaped).
 * Dotted form: `a.b[].c`, `[].a`. Errors name the character where the problem starts.
 */
static int field_add(struct openapi_fields *f, const char *path, const char *where,
                     struct err_info *ei)
{
    size_t len = strlen(path);
    if (len == 0)
        return oa_fail(ei, ERR_INVAL, where, "a response field is a non-empty path");
    if (len > FIELD_BYTES)
        return oa_fail(ei, ERR_INVAL, where, "response field longer than %d bytes", FIELD_BYTES);
    bool pointer = path[0] == '/';
    char sep = pointer ? '/' : '.';
    struct fnode *n = &f->root;
    char seg[FIELD_BYTES + 1];
    size_t steps = 0, i = pointer ? 1 : 0;
    for (;;) {
        size_t start = i, slen = 0;
        /* one segment: its name (unescaped), then any number of [] */
        while (i < len && path[i] != sep && path[i] != '[') {
            char c = path[i];
            if (pointer && c == '~') {
                if (path[i + 1] != '0' && path[i + 1] != '1')
                    return oa_fail(ei, ERR_INVAL, where,
                                   "response field '%s' at character %zu: '~' must be followed "
                                   "by 0 or 1 (JSON pointer escapes)",
                                   path, i + 1);
                c = path[++i] == '0' ? '~' : '/';
            } else if (c == ']') {
                return oa_fail(ei, ERR_INVAL, where,
                               "response field '%s' at character %zu: ']' without '['", path,
                               i + 1);
            }
            seg[slen++] = c;
            i++;
        }
        size_t each = 0;
        while (i < len && path[i] == '[') {
            if (path[i + 1] != ']')
                return oa_fail(ei, ERR_INVAL, where,
                               "response field '%s' at character %zu: only [] (every element) "
                               "may follow a name",
                               path, i + 1);
            i += 2;
            each++;
        }
        if (slen == 0 && each == 0)
            return oa_fail(ei, ERR_INVAL, where, "response field '%s' at character %zu: empty %s",
                           path, start + 1, pointer ? "reference token" : "segment");
        if (i < len && path[i] != sep)
            return oa_fail(ei, ERR_INVAL, where,
                           "response field '%s' at character %zu: '%c' or the end expected "
                           "after []",
                           path, i + 1, sep);
        steps += (slen > 0) + each;
        if (steps > FIELD_STEPS)
            return oa_fail(ei, ERR_INVAL, where, "response field '%s' has more than %d steps", path,
                           FIELD_STEPS);
        if (slen > 0 && (n = fnode_child(n, seg, slen)) == NULL)
            return ERR_NOMEM;
        for (size_t k = 0; k < each; k++)
            if ((n = fnode_child(n, NULL, 0)) == NULL)
                return ERR_NOMEM;
        if (i >= len)
            break;
        i++; /* the separator */
        if (i >= len)
            return oa_fail(ei, ERR_INVAL, where,
                           "response field '%s' at character %zu: empty %s at the end", path, i,
                           pointer ? "reference token" : "segment");
    }
    n->leaf = true;
    return 0;
}

int openapi_fields_parse(const json_t *list_c, const char *where, struct openapi_fields **out,
                         struct err_info *ei)
{
    json_t *list = (json_t *)(uintptr_t)list_c; /* jansson's getters are not const-correct */
    if (!json_is_array(list) || json_array_size(list) == 0)
        return oa_fail(ei, ERR_INVAL, where,
                       "'fields' is a non-empty list of JSON pointers or dotted paths");
    if (json_array_size(list) > FIELDS_MAX)
        return oa_fail(ei, ERR_INVAL, where, "at most %d response fields per operation",
                       FIELDS_MAX);
    struct openapi_fields *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return ERR_NOMEM;
    struct buf text;
    buf_init(&text, (size_t)FIELDS_MAX * (FIELD_BYTES + 2));
    int rc = 0;
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v)
    {
        char w[300];
        snprintf(w, sizeof(w), "%s/%zu", where, i);
        if (!json_is_string(v)) {
            rc = oa_fail(ei, ERR_INVAL, w, "a response field is a string");
            break;
        }
        if ((rc = field_add(f, json_string_value(v), w, ei)) != 0)
            break;
        if ((i && buf_append_str(&text, ", ")) || buf_append_str(&text, json_string_value(v))) {
            rc = ERR_NOMEM;
            break;
        }
    }
    if (rc == 0 && (f->text = text.data ? strdup(text.data) : NULL) == NULL)
        rc = ERR_NOMEM;
    buf_release(&text);
    if (rc) {
        openapi_fields_free(f);
        return rc;
    }
    *out = f;
    return 0;
}

/* ---- projection ------------------------------------------------------------------------------ */

struct projector {
    const struct openapi_heuristics *h;
    const char *base; /* the API's absolute base URL, or NULL: no link is recognised */
    size_t base_len;
    bool defaults; /* drop empty values and links (no fields selected) */
    struct openapi_projection_stats *st;
};

static const struct fnode *fnode_find(const struct fnode *n, const char *key)
{
    for (size_t i = 0; i < n->nkids; i++)
        if (key == NULL ? n->kids[i].key == NULL : n->kids[i].key && !strcmp(n->kids[i].key, key))
            return &n->kids[i];
    return NULL;
}

/* The part of v that n selects (a new reference), or NULL when it selects nothing in v. */
static json_t *select_fields(json_t *v, const struct fnode *n, unsigned depth)
{
    if (n->leaf || depth > TIDY_DEPTH)
        return json_incref(v);
    if (json_is_array(v)) {
        const struct fnode *each = fnode_find(n, NULL);
        bool named = false;
        for (size_t i = 0; i < n->nkids && !named; i++)
            named = n->kids[i].key && !isdigit((unsigned char)n->kids[i].key[0]);
        json_t *out = json_array();
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e)
        {
            char idx[24];
            snprintf(idx, sizeof(idx), "%zu", i);
            const struct fnode *at = fnode_find(n, idx);
            /* an index, else [], else the names apply to each element */
            const struct fnode *use = at ? at : each ? each : named ? n : NULL;
            json_t *sub = use ? select_fields(e, use, depth + 1) : NULL;
            if (sub && json_array_append_new(out, sub) != 0) {
                json_decref(out);
                return NULL;
            }
        }
        return out;
    }
    if (!json_is_object(v))
        return NULL; /* the path goes on into a scalar: nothing there */
    json_t *out = json_object();
    for (size_t k = 0; out && k < n->nkids; k++) {
        const struct fnode *c = &n->kids[k];
        json_t *m = c->key ? json_object_get(v, c->key) : NULL;
        json_t *sub = m ? select_fields(m, c, depth + 1) : NULL;
        if (sub && json_object_set_new(out, c->key, sub) != 0) {
            json_decref(out);
            return NULL;
        }
    }
    return out;
}

static bool is_empty(const json_t *v)
{
    return json_is_null(v) || (json_is_string(v) && json_string_length(v) == 0) ||
           (json_is_array(v) && json_array_size(v) == 0) ||
           (json_is_object(v) && json_object_size(v) == 0);
}

/* `url` or `*_url` whose value points into the API itself (templates such as {/other} too). */
static bool is_api_link(const struct projector *p, const char *k, const json_t *v)
{
    size_t kl = strlen(k);
    if (p->base == NULL || !json_is_string(v) ||
        !(strcmp(k, "url") == 0 || (kl > 4 && strcmp(k + kl - 4, "_url") == 0)))
        return false;
    const char *s = json_string_value(v);
    if (strncmp(s, p->base, p->base_len) != 0)
        return false;
    char next = s[p->base_len];
    return next == '\0' || next == '/' || next == '?' || next == '{';
}

/* v with the defaults and the array cap applied (a new reference; NULL when out of memory). */
static json_t *tidy(const struct projector *p, json_t *v, unsigned depth)
{
    if (depth > TIDY_DEPTH)
        return json_incref(v);
    if (json_is_object(v)) {
        json_t *out = json_object();
        const char *k;
        json_t *m;
        json_object_foreach(v, k, m)
        {
            if (out == NULL)
                break;
            if (p->defaults && p->h->response_drop_links &&
                (strcmp(k, "_links") == 0 || is_api_link(p, k, m))) {
                p->st->links++;
                continue;
            }
            json_t *sub = tidy(p, m, depth + 1);
            if (sub == NULL) {
                json_decref(out);
                return NULL;
            }
            if (p->defaults && p->h->response_drop_empty && is_empty(sub)) {
                p->st->empty++;
                json_decref(sub);
                continue;
            }
            if (json_object_set_new(out, k, sub) != 0) {
                json_decref(out);
                return NULL;
            }
        }
        return out;
    }
    if (json_is_array(v)) {
        size_t n = json_array_size(v), max = p->h->response_array_max;
        size_t keep = max && n > max ? max : n;
        json_t *out = json_array();
        for (size_t i = 0; out && i < keep; i++) {
            json_t *sub = tidy(p, json_array_get(v, i), depth + 1);
            if (sub == NULL || json_array_append_new(out, sub) != 0) {
                json_decref(out);
                return NULL;
            }
        }
        if (out && keep < n) {
            char note[120];
            snprintf(note, sizeof(note), "[gatehouse: %zu more items not shown, %zu in all]",
                     n - keep, n);
            p->st->arrays_cut++;
            p->st->items_cut += n - keep;
            if (json_array_append_new(out, json_string(note)) != 0) {
                json_decref(out);
                return NULL;
            }
        }
        return out;
    }
    return json_incref(v);
}

json_t *openapi_response_project(const struct openapi_catalog *cat, const struct openapi_tool *tool,
                                 json_t *v, struct openapi_projection_stats *st)
{
    memset(st, 0, sizeof(*st));
    const char *base = cat->base_url;
    struct projector p = {
        .h = &cat->heuristics,
        .base = base && (strncmp(base, "http://", 7) == 0 || strncmp(base, "https://", 8) == 0)
                    ? base
                    : NULL,
        .base_len = base ? strlen(base) : 0,
        .defaults = tool->response_fields == NULL,
        .st = st,
    };
    if (tool->response_fields) {
        st->fields = tool->response_fields->text;
        json_t *sel = select_fields(v, &tool->response_fields->root, 0);
        if (sel == NULL) /* the answer has none of the fields */
            return json_is_array(v) ? json_array() : json_object();
        json_t *out = tidy(&p, sel, 0);
        json_decref(sel);
        return out;
    }
    return tidy(&p, v, 0);
}

char *openapi_projection_note(const struct openapi_projection_stats *st)
{
    struct buf b;
    buf_init(&b, 1024);
    if (st->fields)
        buf_printf(&b, "; only the response fields chosen by the operator: %.*s%s", NOTE_FIELDS,
                   st->fields, strlen(st->fields) > NOTE_FIELDS ? "..." : "");
    if (st->items_cut)
        buf_printf(&b, "; %zu array items not shown (%zu arrays cut)", st->items_cut,
                   st->arrays_cut);
    if (st->empty)
        buf_printf(&b, "; %zu empty or null fields omitted", st->empty);
    if (st->links)
        buf_printf(&b, "; %zu links into the API omitted", st->links);
    if (b.data == NULL)
        return NULL;
    char *note = oa_asprintf("[projected by gatehouse:%s]", b.data + 1);
    buf_release(&b);
    return note;
}
