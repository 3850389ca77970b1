/*
 * Discovery modes: what a client sees of a catalog. The static mode lists every curated tool;
 * the lazy modes list a small fixed set of navigation tools whose size does not grow with the
 * API, and let the model pull in only the definitions it needs:
 *
 *   hierarchical  list_categories -> list_operations(category) -> describe_operation(name)
 *                 -> call_operation(name, arguments)
 *   search        search_operations(query, limit) (BM25, search.c) -> call_operation
 *
 * The catalog behind every mode is the same, so a call_operation resolves to the very tool a
 * static tools/call would use; this file never builds requests, it only says which tool to call
 * (the transport does the rest, with the same result mapping and secret scrubbing).
 */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/buf.h"
#include "openapi/openapi-int.h"

#define DISC_SEARCH_DEFAULT 5
#define DISC_SEARCH_MAX 10
#define DISC_SEARCH_FULL 2 /* matches answered with their full definition; the rest by name */
#define DISC_PAGE 40       /* operations per list_operations answer */
#define DISC_CATEGORY_DESC_MAX 120 /* bytes of a category's one-line description */
#define DISC_TITLE_MAX 60          /* bytes of the API title quoted in tool descriptions */
#define DISC_TEXT_MAX (1u << 20)   /* bytes of one search document or one answer */

struct category {
    char *name;
    char *description;
    size_t *tools; /* indexes into cat->tools, in catalog order */
    size_t ntools;
};

struct openapi_discovery {
    enum openapi_discovery_mode mode;
    struct openapi_catalog *cat; /* a reference */
    struct category *cats;       /* sorted by name */
    size_t ncats;
    struct openapi_bm25 *ix; /* search mode */
    json_t *tools;           /* the tools/list array */
};

const char *openapi_discovery_mode_str(enum openapi_discovery_mode mode)
{
    switch (mode) {
    case OPENAPI_DISCOVERY_STATIC:
        return "static";
    case OPENAPI_DISCOVERY_HIERARCHICAL:
        return "hierarchical";
    case OPENAPI_DISCOVERY_SEARCH:
        return "search";
    }
    return "?";
}

int openapi_discovery_mode_parse(const char *s)
{
    for (int m = OPENAPI_DISCOVERY_STATIC; m <= OPENAPI_DISCOVERY_SEARCH; m++)
        if (s && strcmp(s, openapi_discovery_mode_str((enum openapi_discovery_mode)m)) == 0)
            return m;
    return -1;
}

/* At most `max` bytes of s, not cutting a UTF-8 sequence, with "..." when cut. */
static char *cut_utf8(const char *s, size_t max)
{
    size_t len = strlen(s);
    if (len <= max)
        return oa_strdup(s);
    size_t n = max - 3;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
        n--;
    return oa_asprintf("%.*s...", (int)n, s);
}

/* ---- categories ------------------------------------------------------------------------------ */

/* The category of an operation: its first tag, else the first segment of its path. */
static char *category_of(const struct openapi_op *op, bool *by_tag)
{
    *by_tag = op->ntags > 0 && op->tags[0][0] != '\0';
    if (*by_tag)
        return oa_strdup(op->tags[0]);
    const char *p = op->path;
    while (*p == '/')
        p++;
    size_t n = strcspn(p, "/");
    if (n >= 2 && p[0] == '{' && p[n - 1] == '}') {
        p++;
        n -= 2;
    }
    return n ? oa_asprintf("%.*s", (int)n, p) : oa_strdup("root");
}

/* The document's description of tag `name` (first sentence, one line), or NULL. */
static char *tag_description(const struct openapi_doc *doc, const char *name)
{
    json_t *tags = json_object_get(doc->root, "tags");
    size_t i;
    json_t *t;
    json_array_foreach(tags, i, t)
    {
        const char *tn = json_string_value(json_object_get(t, "name"));
        const char *d = json_string_value(json_object_get(t, "description"));
        if (tn && d && d[0] && strcmp(tn, name) == 0) {
            bool trimmed;
            char *fs = oa_first_sentence(d, &trimmed);
            char *out = fs ? cut_utf8(fs, DISC_CATEGORY_DESC_MAX) : NULL;
            free(fs);
            return out;
        }
    }
    return NULL;
}

static int category_cmp(const void *a, const void *b)
{
    return strcmp(((const struct category *)a)->name, ((const struct category *)b)->name);
}

static const struct category *category_find(const struct openapi_discovery *d, const char *name)
{
    struct category key = {.name = (char *)(uintptr_t)name};
    return d->ncats ? bsearch(&key, d->cats, d->ncats, sizeof(*d->cats), category_cmp) : NULL;
}

static int build_categories(struct openapi_discovery *d)
{
    const struct openapi_catalog *cat = d->cat;
    if (cat->ntools && (d->cats = calloc(cat->ntools, sizeof(*d->cats))) == NULL)
        return ERR_NOMEM;
    for (size_t i = 0; i < cat->ntools; i++) {
        bool by_tag;
        char *name = category_of(cat->tools[i].op, &by_tag);
        if (name == NULL)
            return ERR_NOMEM;
        struct category *c = NULL;
        for (size_t k = 0; k < d->ncats && c == NULL; k++)
            if (strcmp(d->cats[k].name, name) == 0)
                c = &d->cats[k];
        if (c) {
            free(name);
        } else {
            c = &d->cats[d->ncats++];
            c->name = name;
            c->description = by_tag ? tag_description(cat->doc, name) : NULL;
            if (c->description == NULL)
                c->description = by_tag ? oa_asprintf("Operations tagged %s.", name)
                                        : oa_asprintf("Operations on /%s.", name);
            if (c->description == NULL || (c->tools = calloc(cat->ntools, sizeof(size_t))) == NULL)
                return ERR_NOMEM;
        }
        c->tools[c->ntools++] = i;
    }
    if (d->ncats > 1)
        qsort(d->cats, d->ncats, sizeof(*d->cats), category_cmp);
    return 0;
}

/* ---- the search index ------------------------------------------------------------------------ */

/*
 * What a tool is found by, in three fields of decreasing weight (search.c, BM25F): what the
 * tool is called and says it does (name, description); what the document says of the operation
 * (summary, whole description, operationId, the literal segments of its path, its tags and the
 * action its method implies: GET of a collection "list", of one item "get", POST "create", PUT
 * and PATCH "update", DELETE "delete"); and its arguments (names and descriptions), which say
 * more about what an operation takes than about what it does.
 */
#define SEARCH_W_TOOL 3.0
#define SEARCH_W_OPERATION 0.3
#define SEARCH_W_ARGS 0.1
#define SEARCH_FIELDS 3

static const char *method_action(const struct openapi_op *op)
{
    size_t n = strlen(op->path);
    if (strcmp(op->method, "GET") == 0)
        return n && op->path[n - 1] == '}' ? "get" : "list";
    if (strcmp(op->method, "POST") == 0) /* on one item: an update (Stripe, Google) */
        return n && op->path[n - 1] == '}' ? "update" : "create";
    if (strcmp(op->method, "PUT") == 0 || strcmp(op->method, "PATCH") == 0)
        return "update";
    if (strcmp(op->method, "DELETE") == 0)
        return "delete";
    return "";
}

static int search_fields(const struct openapi_tool *t, char **out)
{
    const struct openapi_op *op = t->op;
    struct buf b;
    buf_init(&b, DISC_TEXT_MAX);
    buf_printf(&b, "%s %s", t->name, t->description ? t->description : "");
    out[0] = b.data;
    buf_init(&b, DISC_TEXT_MAX);
    buf_printf(&b, "%s %s %s %s", method_action(op), op->summary ? op->summary : "",
               op->description ? op->description : "", op->operation_id ? op->operation_id : "");
    for (const char *p = op->path; *p;) { /* the path without its {parameters} */
        size_t lit = strcspn(p, "{");
        buf_printf(&b, " %.*s", (int)lit, p);
        p += lit;
        if (*p == '{')
            p += strcspn(p, "}") + (p[strcspn(p, "}")] == '}');
    }
    for (size_t i = 0; i < op->ntags; i++)
        buf_printf(&b, " %s", op->tags[i]);
    out[1] = b.data;
    buf_init(&b, DISC_TEXT_MAX);
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(t->input_schema, "properties"), k, v)
    {
        const char *desc = json_string_value(json_object_get(v, "description"));
        buf_printf(&b, " %s %s", k, desc ? desc : "");
    }
    out[2] = b.data ? b.data : oa_strdup("");
    return out[0] && out[1] && out[2] ? 0 : ERR_NOMEM;
}

static int build_index(struct openapi_discovery *d)
{
    const struct openapi_catalog *cat = d->cat;
    size_t n = cat->ntools;
    const char **names = calloc(n ? n : 1, sizeof(*names));
    bool *reads = calloc(n ? n : 1, sizeof(*reads));
    char **texts = calloc((n ? n : 1) * SEARCH_FIELDS, sizeof(*texts));
    static const double weights[SEARCH_FIELDS] = {SEARCH_W_TOOL, SEARCH_W_OPERATION, SEARCH_W_ARGS};
    int err = ERR_NOMEM;
    if (names == NULL || reads == NULL || texts == NULL)
        goto out;
    for (size_t i = 0; i < n; i++) {
        names[i] = cat->tools[i].name;
        reads[i] = strcmp(cat->tools[i].op->method, "GET") == 0;
        if ((err = search_fields(&cat->tools[i], texts + i * SEARCH_FIELDS)) != 0)
            goto out;
    }
    err = openapi_bm25_new_fields(names, (const char *const *)texts, SEARCH_FIELDS, weights, reads,
                                  n, &d->ix);
    for (size_t i = 0; err == 0 && i < n; i++) { /* a GET of one item, for plural requests */
        size_t len = strlen(cat->tools[i].op->path);
        reads[i] = reads[i] && len && cat->tools[i].op->path[len - 1] == '}';
    }
    if (err == 0)
        openapi_bm25_set_items(d->ix, reads);
out:
    for (size_t i = 0; texts && i < n * SEARCH_FIELDS; i++)
        free(texts[i]);
    free(texts);
    free(reads);
    free(names);
    return err;
}

/* ---- the navigation tools -------------------------------------------------------------------- */

static json_t *nav_tool(const char *name, char *description, json_t *props, json_t *required,
                        bool read_only) /* frees description, steals props and required */
{
    json_t *schema = json_pack("{s:s, s:o}", "type", "object", "properties", props);
    if (schema && required)
        json_object_set_new(schema, "required", required);
    else
        json_decref(required);
    json_t *ann = read_only ? json_pack("{s:b}", "readOnlyHint", 1) : json_object();
    json_t *t = description && schema && ann
                    ? json_pack("{s:s, s:s, s:O, s:O}", "name", name, "description", description,
                                "inputSchema", schema, "annotations", ann)
                    : NULL;
    free(description);
    json_decref(schema);
    json_decref(ann);
    return t;
}

static json_t *string_prop(const char *description)
{
    return json_pack("{s:s, s:s}", "type", "string", "description", description);
}

/* The same in both lazy modes (one tool in the transport's union of the modes' tools). */
static json_t *call_operation_tool(void)
{
    return nav_tool("call_operation",
                    oa_asprintf("Call an operation by name with arguments matching its "
                                "inputSchema."),
                    json_pack("{s:o, s:{s:s, s:s}}", "name", string_prop("operation name"),
                              "arguments", "type", "object", "description",
                              "the operation's arguments"),
                    json_pack("[s]", "name"), false);
}

/* "the X API" for the tool descriptions: the title (at most DISC_TITLE_MAX bytes) with " API"
   added unless it already ends with the word API ("Slack Web API", not "Slack Web API API"). */
static char *api_name(const char *doc_title)
{
    char *t = cut_utf8(doc_title && doc_title[0] ? doc_title : "this", DISC_TITLE_MAX);
    size_t n = t ? strlen(t) : 0;
    if (t == NULL || (n >= 3 && strcasecmp(t + n - 3, "api") == 0 &&
                      (n == 3 || !isalnum((unsigned char)t[n - 4]))))
        return t;
    char *out = oa_asprintf("%s API", t);
    free(t);
    return out;
}

static json_t *build_tools(const struct openapi_discovery *d)
{
    const struct openapi_catalog *cat = d->cat;
    const struct openapi_doc *doc = cat->doc;
    char *title = api_name(doc->title);
    json_t *a = json_array();
    if (title == NULL || a == NULL)
        goto fail;
    switch (d->mode) {
    case OPENAPI_DISCOVERY_STATIC:
        for (size_t i = 0; i < cat->ntools; i++)
            if (json_array_append_new(a, openapi_tool_to_json(&cat->tools[i])) != 0)
                goto fail;
        break;
    case OPENAPI_DISCOVERY_HIERARCHICAL:
        if (json_array_append_new(
                a, nav_tool("list_categories",
                            oa_asprintf("List the categories of the %s (%zu operations), "
                                        "each with its count and a summary. Start here.",
                                        title, cat->ntools),
                            json_object(), NULL, true)) != 0 ||
            json_array_append_new(
                a, nav_tool("list_operations",
                            oa_asprintf("List the operations of one category: name and "
                                        "one-line description, %d at a time.",
                                        DISC_PAGE),
                            json_pack("{s:o, s:{s:s, s:i}}", "category",
                                      string_prop("from list_categories"), "offset", "type",
                                      "integer", "minimum", 0),
                            json_pack("[s]", "category"), true)) != 0 ||
            json_array_append_new(
                a, nav_tool("describe_operation",
                            oa_asprintf("Full definition of one operation: description, "
                                        "inputSchema, annotations."),
                            json_pack("{s:o}", "name", string_prop("from list_operations")),
                            json_pack("[s]", "name"), true)) != 0 ||
            json_array_append_new(a, call_operation_tool()) != 0)
            goto fail;
        break;
    case OPENAPI_DISCOVERY_SEARCH:
        if (json_array_append_new(
                a,
                nav_tool("search_operations",
                         oa_asprintf("Search the %zu operations of the %s by keywords or "
                                     "name; returns the best matches, the first %d as full "
                                     "definitions.",
                                     cat->ntools, title, DISC_SEARCH_FULL),
                         json_pack("{s:o, s:{s:s, s:i, s:i, s:i}}", "query",
                                   string_prop("keywords"), "limit", "type", "integer", "minimum",
                                   1, "maximum", DISC_SEARCH_MAX, "default", DISC_SEARCH_DEFAULT),
                         json_pack("[s]", "query"), true)) != 0 ||
            json_array_append_new(a, call_operation_tool()) != 0)
            goto fail;
        break;
    }
    free(title);
    return a;
fail:
    free(title);
    json_decref(a);
    return NULL;
}

int openapi_discovery_new(struct openapi_catalog *cat, enum openapi_discovery_mode mode,
                          struct openapi_discovery **out)
{
    int err = ERR_NOMEM;
    struct openapi_discovery *d = calloc(1, sizeof(*d));
    if (d == NULL)
        return ERR_NOMEM;
    d->mode = mode;
    d->cat = openapi_catalog_ref(cat);
    if (mode == OPENAPI_DISCOVERY_HIERARCHICAL && (err = build_categories(d)) != 0)
        goto out;
    if (mode == OPENAPI_DISCOVERY_SEARCH && (err = build_index(d)) != 0)
        goto out;
    err = (d->tools = build_tools(d)) ? 0 : ERR_NOMEM;
out:
    if (err) {
        openapi_discovery_free(d);
        return err;
    }
    *out = d;
    return 0;
}

void openapi_discovery_free(struct openapi_discovery *d)
{
    if (d == NULL)
        return;
    for (size_t i = 0; i < d->ncats; i++) {
        free(d->cats[i].name);
        free(d->cats[i].description);
        free(d->cats[i].tools);
    }
    free(d->cats);
    openapi_bm25_free(d->ix);
    json_decref(d->tools);
    openapi_catalog_unref(d->cat);
    free(d);
}

json_t *openapi_discovery_tools(const struct openapi_discovery *d)
{
    return json_incref(d->tools);
}

/* ---- calls ----------------------------------------------------------------------------------- */

static json_t *text_result(char *text, bool is_error) /* frees text */
{
    json_t *r =
        text ? json_pack("{s:[{s:s, s:s}]}", "content", "type", "text", "text", text) : NULL;
    free(text);
    if (r && is_error)
        json_object_set_new(r, "isError", json_true());
    return r;
}

static const char *where_to_look(const struct openapi_discovery *d)
{
    return d->mode == OPENAPI_DISCOVERY_SEARCH ? "search_operations" : "list_operations";
}

/* The string argument `key` of navigation tool `tool`, or NULL after setting *result. */
static const char *want_string(const json_t *args, const char *tool, const char *key,
                               json_t **result)
{
    const char *s = json_string_value(json_object_get(args, key));
    if (s == NULL)
        *result = text_result(oa_asprintf("%s needs the string argument \"%s\"", tool, key), true);
    return s;
}

/* Is operation `name` in the user's selection (an array of names; NULL = every operation)? */
static bool selected(const json_t *sel, const char *name)
{
    size_t i;
    json_t *v;
    json_array_foreach(sel, i, v)
    {
        if (strcmp(json_string_value(v) ? json_string_value(v) : "", name) == 0)
            return true;
    }
    return sel == NULL;
}

static json_t *not_selected(const json_t *sel, const char *name)
{
    return text_result(oa_asprintf("operation %.100s is not in your selection of this server (%zu "
                                   "operations selected); change it with the gatehouse__settings "
                                   "tool",
                                   name, json_array_size(sel)),
                       true);
}

static json_t *do_list_categories(const struct openapi_discovery *d)
{
    struct buf b;
    buf_init(&b, DISC_TEXT_MAX);
    buf_printf(&b, "%zu categories (name (operations): description); list_operations lists one:",
               d->ncats);
    for (size_t i = 0; i < d->ncats; i++)
        buf_printf(&b, "\n%s (%zu): %s", d->cats[i].name, d->cats[i].ntools,
                   d->cats[i].description);
    return text_result(b.data, false);
}

static json_t *do_list_operations(const struct openapi_discovery *d, const json_t *args,
                                  const json_t *sel)
{
    json_t *r = NULL;
    const char *name = want_string(args, "list_operations", "category", &r);
    if (name == NULL)
        return r;
    const struct category *c = category_find(d, name);
    if (c == NULL)
        return text_result(oa_asprintf("unknown category \"%.100s\"; call list_categories for "
                                       "the categories",
                                       name),
                           true);
    /* the operations of the category in the user's selection */
    size_t n = 0, *ops = calloc(c->ntools ? c->ntools : 1, sizeof(*ops));
    if (ops == NULL)
        return NULL;
    for (size_t i = 0; i < c->ntools; i++)
        if (selected(sel, d->cat->tools[c->tools[i]].name))
            ops[n++] = c->tools[i];
    const char *of = sel ? " selected" : "";
    json_t *off = json_object_get(args, "offset");
    json_int_t from = 0;
    if (off && !json_is_null(off)) {
        from = json_is_integer(off) ? json_integer_value(off) : -1;
        if (from < 0 || (from > 0 && (size_t)from >= n)) {
            free(ops);
            return text_result(oa_asprintf("the offset of list_operations must be an integer from "
                                           "0 to %zu for category %s",
                                           n ? n - 1 : 0, c->name),
                               true);
        }
    }
    size_t first = (size_t)from, end = first + DISC_PAGE < n ? first + DISC_PAGE : n;
    struct buf b;
    buf_init(&b, DISC_TEXT_MAX);
    if (first == 0 && end == n)
        buf_printf(&b, "%zu%s operations in %s (describe_operation gives one's arguments):", n, of,
                   c->name);
    else
        buf_printf(&b,
                   "%zu%s operations in %s, %zu to %zu shown (describe_operation gives one's "
                   "arguments):",
                   n, of, c->name, first + 1, end);
    for (size_t i = first; i < end; i++) {
        const struct openapi_tool *t = &d->cat->tools[ops[i]];
        bool trimmed;
        char *fs = oa_first_sentence(t->description ? t->description : "", &trimmed);
        buf_printf(&b, "\n%s: %s", t->name, fs ? fs : "");
        free(fs);
    }
    if (end < n)
        buf_printf(&b, "\n(more: call list_operations with category %s and offset %zu)", c->name,
                   end);
    free(ops);
    return text_result(b.data, false);
}

static json_t *unknown_operation(const struct openapi_discovery *d, const char *name)
{
    return text_result(oa_asprintf("unknown operation \"%.100s\"; call %s to find its name%s", name,
                                   where_to_look(d),
                                   d->mode == OPENAPI_DISCOVERY_HIERARCHICAL
                                       ? " (list_categories gives the categories)"
                                       : ""),
                       true);
}

static json_t *do_describe(const struct openapi_discovery *d, const json_t *args, const json_t *sel)
{
    json_t *r = NULL;
    const char *name = want_string(args, "describe_operation", "name", &r);
    if (name == NULL)
        return r;
    const struct openapi_tool *t = openapi_catalog_find(d->cat, name);
    if (t == NULL)
        return unknown_operation(d, name);
    if (!selected(sel, t->name))
        return not_selected(sel, t->name);
    json_t *j = openapi_tool_to_json(t);
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return text_result(s, false);
}

static json_t *do_search(const struct openapi_discovery *d, const json_t *args, const json_t *sel)
{
    json_t *r = NULL;
    const char *query = want_string(args, "search_operations", "query", &r);
    if (query == NULL)
        return r;
    json_t *lim = json_object_get(args, "limit");
    json_int_t limit = DISC_SEARCH_DEFAULT;
    if (lim && !json_is_null(lim)) {
        limit = json_is_integer(lim) ? json_integer_value(lim) : 0;
        if (limit < 1 || limit > DISC_SEARCH_MAX)
            return text_result(oa_asprintf("the limit of search_operations must be an integer "
                                           "from 1 to %d",
                                           DISC_SEARCH_MAX),
                               true);
    }
    /* with a selection, rank them all and keep the best selected ones */
    size_t max = sel ? d->cat->ntools : (size_t)limit;
    size_t *hits = calloc(max + 1, sizeof(*hits));
    if (hits == NULL)
        return NULL;
    size_t ranked = 0, n = 0;
    /* a tool's own name (from an earlier answer) finds it first, for its full definition */
    const struct openapi_tool *named = openapi_catalog_find(d->cat, query);
    if (named && selected(sel, named->name))
        hits[ranked++] = (size_t)(named - d->cat->tools);
    ranked += openapi_bm25_rank(d->ix, query, max, hits + ranked, NULL);
    for (size_t i = 0; i < ranked && n < (size_t)limit; i++)
        if (selected(sel, d->cat->tools[hits[i]].name) &&
            (i == 0 || named == NULL || hits[i] != hits[0]))
            hits[n++] = hits[i];
    if (n == 0) {
        free(hits);
        if (sel)
            return text_result(oa_asprintf("none of your %zu selected operations matches "
                                           "\"%.100s\"; try other keywords",
                                           json_array_size(sel), query),
                               false);
        return text_result(
            oa_asprintf("no operation matches \"%.100s\"; try other keywords", query), false);
    }
    /* the best few in full, the others by name and their one-line description: most answers
       are used for their first match, and a name searched for gives its definition */
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++) {
        const struct openapi_tool *t = &d->cat->tools[hits[i]];
        json_array_append_new(a, i < DISC_SEARCH_FULL
                                     ? openapi_tool_to_json(t)
                                     : json_pack("{s:s, s:s}", "name", t->name, "description",
                                                 t->description ? t->description : ""));
    }
    free(hits);
    char *s = a ? json_dumps(a, JSON_COMPACT) : NULL;
    json_decref(a);
    return text_result(s, false);
}

/* Is `name` one of the navigation tools of the mode? */
static bool is_nav_tool(const struct openapi_discovery *d, const char *name)
{
    size_t i;
    json_t *t;
    json_array_foreach(d->tools, i, t)
    {
        if (d->mode != OPENAPI_DISCOVERY_STATIC &&
            strcmp(json_string_value(json_object_get(t, "name")), name) == 0)
            return true;
    }
    return false;
}

int openapi_discovery_call(const struct openapi_discovery *d, const char *name, json_t *args,
                           const json_t *selection, json_t **result,
                           const struct openapi_tool **tool, json_t **tool_args)
{
    json_t *r = NULL;
    bool nav = false;
    *result = NULL;
    *tool = NULL;
    *tool_args = NULL;
    if (name == NULL)
        return ERR_NOTFOUND;
    if (d->mode != OPENAPI_DISCOVERY_STATIC && args && !json_is_object(args) &&
        (is_nav_tool(d, name) || openapi_catalog_find(d->cat, name))) {
        r = text_result(oa_asprintf("the arguments of %.100s must be an object", name), true);
        nav = true;
    } else if (d->mode == OPENAPI_DISCOVERY_HIERARCHICAL) {
        nav = true;
        if (strcmp(name, "list_categories") == 0)
            r = do_list_categories(d);
        else if (strcmp(name, "list_operations") == 0)
            r = do_list_operations(d, args, selection);
        else if (strcmp(name, "describe_operation") == 0)
            r = do_describe(d, args, selection);
        else
            nav = false;
    } else if (d->mode == OPENAPI_DISCOVERY_SEARCH) {
        nav = strcmp(name, "search_operations") == 0;
        if (nav)
            r = do_search(d, args, selection);
    }
    if (!nav && d->mode != OPENAPI_DISCOVERY_STATIC && strcmp(name, "call_operation") == 0) {
        nav = true;
        const char *op = want_string(args, "call_operation", "name", &r);
        json_t *inner = json_object_get(args, "arguments");
        const struct openapi_tool *t = op ? openapi_catalog_find(d->cat, op) : NULL;
        if (op == NULL) {
            /* r says what is missing */
        } else if (t == NULL) {
            r = unknown_operation(d, op);
        } else if (!selected(selection, t->name)) {
            r = not_selected(selection, t->name);
        } else if (inner && !json_is_null(inner) && !json_is_object(inner)) {
            r = text_result(oa_asprintf("the arguments of operation %s must be an object", t->name),
                            true);
        } else {
            *tool = t;
            *tool_args = inner && !json_is_null(inner) ? inner : NULL;
            return 0;
        }
    }
    if (nav) {
        if (r == NULL)
            return ERR_NOMEM;
        *result = r;
        return 0;
    }
    /* A catalog tool called by its own name: in static mode the only way, in the lazy modes a
       shortcut for a model that learnt the name from describe_operation or search_operations. */
    const struct openapi_tool *t = openapi_catalog_find(d->cat, name);
    if (t == NULL)
        return ERR_NOTFOUND;
    *tool = t;
    *tool_args = args;
    return 0;
}
