/*
 * Catalog construction and lookups; see catalog.h. Maps are jansson objects (hash tables keyed
 * by exposed name), routes are small arrays [server index, original name].
 */
#include "mcp/catalog.h"
#include "core/log.h"
#include "core/rand.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const kind_key[CAT_NKINDS] = {"tools", "prompts", "resources",
                                                 "resourceTemplates"};

struct view {
    json_t *items[CAT_NKINDS]; /* arrays of exposed items */
    json_t *
        routes[2]; /* tools, prompts: exposed name -> [server, original name, modes, inputSchema] */
    json_t *uris;  /* resource uri -> server */
    json_t *templates; /* array of [uriTemplate, server] */
    bool choice;       /* catalog_offers_choice */
};

struct catalog {
    atomic_int refcnt;
    uint64_t generation;
    size_t nservers;
    struct view agg;
    struct view *own; /* per server */
};

static int view_init(struct view *v)
{
    for (int k = 0; k < CAT_NKINDS; k++)
        v->items[k] = json_array();
    v->routes[0] = json_object();
    v->routes[1] = json_object();
    v->uris = json_object();
    v->templates = json_array();
    for (int k = 0; k < CAT_NKINDS; k++)
        if (!v->items[k])
            return ERR_NOMEM;
    return v->routes[0] && v->routes[1] && v->uris && v->templates ? 0 : ERR_NOMEM;
}

static void view_release(struct view *v)
{
    for (int k = 0; k < CAT_NKINDS; k++)
        json_decref(v->items[k]);
    json_decref(v->routes[0]);
    json_decref(v->routes[1]);
    json_decref(v->uris);
    json_decref(v->templates);
}

/* The discovery modes of an item, from its _meta tag, which is removed from `copy` (it is the
   gateway's business, not the client's). */
static unsigned modes_of(const json_t *item)
{
    json_t *tag = json_object_get(json_object_get(item, "_meta"), CONFIG_META_MODES);
    unsigned modes = 0;
    size_t i;
    json_t *m;
    json_array_foreach(tag, i, m)
    {
        int d = config_discovery_parse(json_string_value(m));
        if (d >= 0)
            modes |= 1u << d;
    }
    return modes;
}

size_t catalog_count_in_mode(const json_t *tools, enum config_discovery mode)
{
    size_t n = 0, i;
    json_t *t;
    json_array_foreach(tools, i, t)
    {
        unsigned modes = modes_of(t);
        n += modes == 0 || (modes & (1u << mode));
    }
    return n;
}

static unsigned take_modes(json_t *copy)
{
    json_t *meta = json_object_get(copy, "_meta");
    json_t *tag = json_object_get(meta, CONFIG_META_MODES);
    unsigned modes = modes_of(copy);
    if (tag) {
        json_t *rest = json_copy(meta);
        json_object_del(rest, CONFIG_META_MODES);
        if (json_object_size(rest))
            json_object_set_new(copy, "_meta", rest);
        else {
            json_object_del(copy, "_meta");
            json_decref(rest);
        }
    }
    return modes;
}

/* Add one named item (tool or prompt) to a view under `exposed`. */
static int add_named(struct view *v, int kind, json_t *item, const char *exposed, const char *orig,
                     int server)
{
    json_t *copy = json_copy(item);
    if (copy == NULL)
        return ERR_NOMEM;
    json_object_set_new(copy, "name", json_string(exposed));
    unsigned modes = take_modes(copy);
    json_array_append_new(v->items[kind], copy);
    json_t *schema = json_object_get(copy, "inputSchema");
    json_object_set_new(
        v->routes[kind], exposed,
        json_pack("[i,s,i,O]", server, orig, (int)modes, schema ? schema : json_null()));
    return 0;
}

/* Resources are listed once per URI (templates once per template): the first server to offer
   one owns it in this view, and a second offer is logged, since it could never be read here. */
static void add_resourceish(struct view *v, int kind, json_t *item, int server,
                            const struct catalog_source *sources, bool log_collisions)
{
    if (kind == CAT_RESOURCES) {
        const char *uri = json_string_value(json_object_get(item, "uri"));
        if (uri == NULL)
            return;
        json_t *owner = json_object_get(v->uris, uri);
        if (owner != NULL) {
            if (log_collisions && json_integer_value(owner) != server)
                log_warn(
                    "catalog_collision",
                    "resource %s of server \"%s\" is hidden: server \"%s\" offers the same URI",
                    uri, sources[server].server, sources[json_integer_value(owner)].server);
            return;
        }
        json_object_set_new(v->uris, uri, json_integer(server));
    } else {
        const char *t = json_string_value(json_object_get(item, "uriTemplate"));
        if (t == NULL)
            return;
        size_t i;
        json_t *e;
        json_array_foreach(v->templates, i, e)
        {
            if (strcmp(json_string_value(json_array_get(e, 0)), t) == 0) {
                if (log_collisions && json_integer_value(json_array_get(e, 1)) != server)
                    log_warn(
                        "catalog_collision",
                        "resource template %s of server \"%s\" is hidden: server \"%s\" offers the same template",
                        t, sources[server].server,
                        sources[json_integer_value(json_array_get(e, 1))].server);
                return;
            }
        }
        json_array_append_new(v->templates, json_pack("[s,i]", t, server));
    }
    json_array_append(v->items[kind], item);
}

static const char *item_name(json_t *item)
{
    const char *n = json_string_value(json_object_get(item, "name"));
    return n && *n ? n : NULL;
}

int catalog_build(const struct config *cfg, const struct catalog_source *sources, size_t n,
                  uint64_t generation, int strict, struct catalog **out, struct err_info *ei)
{
    int err = ERR_NOMEM;
    json_t *owners = NULL;
    struct catalog *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return ERR_NOMEM;
    atomic_init(&c->refcnt, 1);
    c->generation = generation;
    c->nservers = n;
    c->own = calloc(n ? n : 1, sizeof(*c->own));
    if (c->own == NULL || view_init(&c->agg))
        goto out;
    for (size_t i = 0; i < n; i++)
        if (view_init(&c->own[i]))
            goto out;

    for (int kind = CAT_TOOLS; kind <= CAT_PROMPTS; kind++) {
        /* First pass: who offers each name (for when-needed, and for collisions). */
        json_decref(owners);
        owners = json_object();
        for (size_t i = 0; i < n; i++) {
            if (!sources[i].ready || !json_is_array(sources[i].lists[kind]))
                continue;
            size_t j;
            json_t *item;
            json_array_foreach(sources[i].lists[kind], j, item)
            {
                const char *name = item_name(item);
                if (name == NULL)
                    continue;
                json_t *o = json_object_get(owners, name);
                if (o == NULL)
                    json_object_set_new(owners, name, json_pack("[i]", (int)i));
                else if (json_integer_value(json_array_get(o, json_array_size(o) - 1)) !=
                         (json_int_t)i)
                    json_array_append_new(o, json_integer((json_int_t)i));
            }
        }
        /* Second pass: place each item in the server's own view and the aggregate. */
        for (size_t i = 0; i < n; i++) {
            if (!sources[i].ready || !json_is_array(sources[i].lists[kind]))
                continue;
            /* A source without its own configuration follows the global prefix mode. */
            const char *server = sources[i].server;
            enum config_prefix_mode mode =
                sources[i].srv ? config_server_prefix(cfg, sources[i].srv) : cfg->prefix_mode;
            size_t j;
            json_t *item;
            json_array_foreach(sources[i].lists[kind], j, item)
            {
                const char *name = item_name(item);
                if (name == NULL) {
                    log_warn("catalog", "server %s listed a %s without a name; skipped",
                             sources[i].server, kind == CAT_TOOLS ? "tool" : "prompt");
                    continue;
                }
                if (json_object_get(c->own[i].routes[kind], name))
                    continue; /* a server listing a name twice: first wins */
                if (add_named(&c->own[i], kind, item, name, name, (int)i))
                    goto out;
                json_t *o = json_object_get(owners, name);
                int shared = json_array_size(o) > 1;
                char exposed[CATALOG_NAME_MAX + 1];
                int len;
                if (mode == PREFIX_ALWAYS || (mode == PREFIX_WHEN_NEEDED && shared))
                    len = snprintf(exposed, sizeof(exposed), "%s%s%s", server,
                                   cfg->prefix_separator, name);
                else
                    len = snprintf(exposed, sizeof(exposed), "%s", name);
                const char *what = kind == CAT_TOOLS ? "tool" : "prompt";
                if (len < 0 || (size_t)len > CATALOG_NAME_MAX) {
                    log_warn(
                        "catalog",
                        "%s of server \"%s\" is not exposed: its name would be %d bytes, over %d",
                        what, server, len, CATALOG_NAME_MAX);
                    continue;
                }
                json_t *taken = json_object_get(c->agg.routes[kind], exposed);
                if (taken != NULL) {
                    const char *first =
                        sources[json_integer_value(json_array_get(taken, 0))].server;
                    const char *mode_name = mode == PREFIX_NEVER    ? "never"
                                            : mode == PREFIX_ALWAYS ? "always"
                                                                    : "when-needed";
                    if (strict) {
                        err = err_info_set(
                            ei, ERR_EXISTS, 0, 0,
                            "%s \"%s\" of server \"%s\" would be exposed as \"%s\", a name server \"%s\" already "
                            "exposes (prefix mode %s); rename one, or choose another prefix mode or separator",
                            what, name, server, exposed, first, mode_name);
                        goto out;
                    }
                    log_error(
                        "catalog_collision",
                        "%s \"%s\" of server \"%s\" is hidden: its exposed name \"%s\" is taken by server \"%s\" (prefix mode %s)",
                        what, name, server, exposed, first, mode_name);
                    continue;
                }
                if (add_named(&c->agg, kind, item, exposed, name, (int)i))
                    goto out;
            }
        }
    }
    for (int kind = CAT_RESOURCES; kind <= CAT_TEMPLATES; kind++)
        for (size_t i = 0; i < n; i++) {
            if (!sources[i].ready || !json_is_array(sources[i].lists[kind]))
                continue;
            size_t j;
            json_t *item;
            json_array_foreach(sources[i].lists[kind], j, item)
            {
                add_resourceish(&c->own[i], kind, item, (int)i, sources, false);
                add_resourceish(&c->agg, kind, item, (int)i, sources, true);
            }
        }
    for (size_t i = 0; i < n; i++) {
        const char *name;
        json_t *r;
        json_object_foreach(c->own[i].routes[CAT_TOOLS], name, r)
        {
            if (json_integer_value(json_array_get(r, 2)) != 0)
                c->own[i].choice = true;
        }
        if (json_object_size(c->own[i].routes[CAT_TOOLS]) >= 2)
            c->own[i].choice = true;
        c->agg.choice = c->agg.choice || c->own[i].choice;
    }
    err = 0;
out:
    json_decref(owners);
    if (err) {
        catalog_unref(c);
        return err;
    }
    *out = c;
    return 0;
}

struct catalog *catalog_ref(struct catalog *c)
{
    atomic_fetch_add(&c->refcnt, 1);
    return c;
}

void catalog_unref(struct catalog *c)
{
    if (c == NULL || atomic_fetch_sub(&c->refcnt, 1) != 1)
        return;
    view_release(&c->agg);
    for (size_t i = 0; c->own && i < c->nservers; i++)
        view_release(&c->own[i]);
    free(c->own);
    free(c);
}

uint64_t catalog_generation(const struct catalog *c)
{
    return c->generation;
}

static const struct view *get_view(const struct catalog *c, int view)
{
    if (view < 0)
        return &c->agg;
    if ((size_t)view >= c->nservers)
        return NULL;
    return &c->own[view];
}

/* Cursors are "o<offset>" in base64url: opaque to clients, checked on the way back in. */
/* Should item i of a tools/prompts list go in the page? */
static bool keep_item(const struct view *v, enum catalog_kind kind, json_t *item,
                      catalog_keep_cb keep, void *ud)
{
    if (keep == NULL || kind > CAT_PROMPTS)
        return true;
    json_t *r = json_object_get(v->routes[kind], json_string_value(json_object_get(item, "name")));
    return r == NULL || keep(ud, (int)json_integer_value(json_array_get(r, 0)),
                             json_string_value(json_array_get(r, 1)),
                             (unsigned)json_integer_value(json_array_get(r, 2)));
}

int catalog_page(const struct catalog *c, int view, enum catalog_kind kind, const char *cursor,
                 size_t page_size, json_t **result)
{
    return catalog_page_filtered(c, view, kind, cursor, page_size, NULL, NULL, result);
}

int catalog_page_filtered(const struct catalog *c, int view, enum catalog_kind kind,
                          const char *cursor, size_t page_size, catalog_keep_cb keep, void *ud,
                          json_t **result)
{
    const struct view *v = get_view(c, view);
    if (v == NULL)
        return ERR_NOTFOUND;
    size_t offset = 0;
    if (cursor != NULL) {
        char raw[32];
        size_t clen = strlen(cursor);
        long n = clen < 40 ? b64url_decode(raw, sizeof(raw) - 1, cursor, clen) : -1;
        /* Exactly what catalog_page issues: 'o' and a decimal offset without leading zeros. */
        if (n < 2 || n > 21 || raw[0] != 'o' || (raw[1] == '0' && n > 2))
            return ERR_INVAL;
        size_t off = 0;
        for (long i = 1; i < n; i++) {
            if (raw[i] < '0' || raw[i] > '9' || off > (SIZE_MAX - 9) / 10)
                return ERR_INVAL;
            off = off * 10 + (size_t)(raw[i] - '0');
        }
        if (off > json_array_size(v->items[kind]))
            return ERR_INVAL;
        offset = off;
    }
    /* offsets count every item; a page holds page_size kept ones, and ends where the next kept
       one is (or at the end: no cursor) */
    json_t *items = v->items[kind];
    size_t total = json_array_size(items), end = offset;
    json_t *page = json_array();
    for (; end < total; end++) {
        json_t *item = json_array_get(items, end);
        if (!keep_item(v, kind, item, keep, ud))
            continue;
        if (page_size && json_array_size(page) == page_size)
            break;
        json_array_append(page, item);
    }
    json_t *res = json_object();
    json_object_set_new(res, kind_key[kind], page);
    if (end < total) {
        char raw[32], enc[64];
        int len = snprintf(raw, sizeof(raw), "o%zu", end);
        b64url_encode(enc, sizeof(enc), raw, (size_t)len);
        json_object_set_new(res, "nextCursor", json_string(enc));
    }
    *result = res;
    return 0;
}

int catalog_route(const struct catalog *c, int view, enum catalog_kind kind, const char *name,
                  int *server, const char **orig_name)
{
    const struct view *v = get_view(c, view);
    if (v == NULL || kind > CAT_PROMPTS || name == NULL)
        return ERR_NOTFOUND;
    json_t *r = json_object_get(v->routes[kind], name);
    if (r == NULL)
        return ERR_NOTFOUND;
    *server = (int)json_integer_value(json_array_get(r, 0));
    *orig_name = json_string_value(json_array_get(r, 1));
    return 0;
}

unsigned catalog_modes(const struct catalog *c, int view, enum catalog_kind kind, const char *name)
{
    const struct view *v = get_view(c, view);
    json_t *r = v && kind <= CAT_PROMPTS && name ? json_object_get(v->routes[kind], name) : NULL;
    return (unsigned)json_integer_value(json_array_get(r, 2));
}

json_t *catalog_input_schema(const struct catalog *c, int view, const char *name)
{
    const struct view *v = get_view(c, view);
    json_t *r = v && name ? json_object_get(v->routes[CAT_TOOLS], name) : NULL;
    json_t *schema = json_array_get(r, 3);
    return json_is_object(schema) ? schema : NULL;
}

/* Match with backtracking: a variable takes one or more characters other than '/', as many as
   the rest of the template needs. Steps are bounded so that a hostile template and URI cannot
   make matching slow; past the bound the answer is "no match". */
static int match_from(const char *t, const char *u, unsigned *budget)
{
    while (*t) {
        if (*budget == 0)
            return 0;
        (*budget)--;
        if (*t == '{') {
            const char *close = strchr(t, '}');
            if (close == NULL)
                return 0;
            const char *rest = close + 1;
            for (size_t n = 1; u[n - 1] && u[n - 1] != '/'; n++)
                if (match_from(rest, u + n, budget))
                    return 1;
            return 0;
        }
        if (*t != *u)
            return 0;
        t++;
        u++;
    }
    return *u == '\0';
}

int catalog_template_match(const char *t, const char *u)
{
    unsigned budget = 100000;
    return match_from(t, u, &budget);
}

int catalog_route_uri(const struct catalog *c, int view, const char *uri, int *server)
{
    const struct view *v = get_view(c, view);
    if (v == NULL || uri == NULL)
        return ERR_NOTFOUND;
    json_t *r = json_object_get(v->uris, uri);
    if (r != NULL) {
        *server = (int)json_integer_value(r);
        return 0;
    }
    size_t i;
    json_t *t;
    json_array_foreach(v->templates, i, t)
    {
        if (catalog_template_match(json_string_value(json_array_get(t, 0)), uri)) {
            *server = (int)json_integer_value(json_array_get(t, 1));
            return 0;
        }
    }
    return ERR_NOTFOUND;
}

int catalog_sole_server(const struct catalog *c, int view, int *server)
{
    if (c == NULL || get_view(c, view) == NULL || (view < 0 && c->nservers != 1))
        return ERR_NOTFOUND;
    *server = view < 0 ? 0 : view;
    return 0;
}

bool catalog_offers_choice(const struct catalog *c, int view)
{
    const struct view *v = c ? get_view(c, view) : NULL;
    return v != NULL && v->choice;
}
