/*
 * Per-user settings of a server (issue 5, "switchable per user at dispatch"): which tools of a
 * server a user has selected (dynamic filtering: tools/list shows them only, tools/call refuses
 * the others) and the discovery mode they asked for. The rules for changing them live here once,
 * for both ways of changing them: `gatehouse user settings` and the gateway's own
 * gatehouse__settings tool. The rows are in the store (store_settings_*).
 *
 * The gateway reads them through a per-worker cache (mcp_settings_cache_*): a tools/call or a
 * tools/list must not run a SQLite query and a JSON parse on the event loop each time. The cache
 * is emptied whenever the store's revocation counter moves, which every change of a settings row
 * does (a trigger, from any process: the CLI, another worker's settings tool), so a change is
 * seen on the next call, the way a revoked token is.
 */
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "mcp/gateway.h"

#define CACHE_BUCKETS 1024 /* a power of two */

struct settings_entry {
    struct settings_entry *next;
    int64_t user_id;
    bool found; /* false: the user has no settings of this server (every default applies) */
    struct store_settings v;
    char server[STORE_SERVER_MAX + 1];
};

struct mcp_settings_cache {
    struct settings_entry *buckets[CACHE_BUCKETS];
    size_t count, max;
    uint64_t seq;
    bool seq_known;
    bool followed; /* the sequence is told (mcp_settings_cache_follow), never read here */
    uint64_t hits, misses;
};

/* Every setting of one user, as read by mcp_settings_load. */
struct loaded_row {
    char server[STORE_SERVER_MAX + 1];
    struct store_settings v;
};
struct mcp_settings_loaded {
    int64_t user_id;
    size_t n, cap;
    struct loaded_row *rows;
};

struct mcp_settings_cache *mcp_settings_cache_new(size_t max_entries)
{
    struct mcp_settings_cache *c = calloc(1, sizeof(*c));
    if (c != NULL)
        c->max = max_entries ? max_entries : 1;
    return c;
}

static void cache_clear(struct mcp_settings_cache *c)
{
    for (size_t i = 0; i < CACHE_BUCKETS; i++) {
        for (struct settings_entry *e = c->buckets[i], *n; e != NULL; e = n) {
            n = e->next;
            store_settings_release(&e->v);
            free(e);
        }
        c->buckets[i] = NULL;
    }
    c->count = 0;
}

void mcp_settings_cache_free(struct mcp_settings_cache *c)
{
    if (c == NULL)
        return;
    cache_clear(c);
    free(c);
}

void mcp_settings_cache_stats(const struct mcp_settings_cache *c, uint64_t *hits, uint64_t *misses)
{
    *hits = c->hits;
    *misses = c->misses;
}

static size_t bucket_of(int64_t user_id, const char *server)
{
    uint64_t h = 1469598103934665603ULL ^ (uint64_t)user_id; /* FNV-1a over the server name */
    for (const unsigned char *p = (const unsigned char *)server; *p; p++)
        h = (h ^ *p) * 1099511628211ULL;
    return (size_t)(h ^ (h >> 29)) & (CACHE_BUCKETS - 1);
}

static void entry_copy(const struct settings_entry *e, struct store_settings *out)
{
    *out = e->v;
    out->tools = json_incref(e->v.tools); /* never changed once read: shared, not copied */
}

static struct settings_entry *find(const struct mcp_settings_cache *c, int64_t user_id,
                                   const char *server)
{
    for (struct settings_entry *e = c->buckets[bucket_of(user_id, server)]; e != NULL; e = e->next)
        if (e->user_id == user_id && strcmp(e->server, server) == 0)
            return e;
    return NULL;
}

/* Insert v (taken) for (user, server); "" is the marker "every row of this user is here". */
static struct settings_entry *insert(struct mcp_settings_cache *c, int64_t user_id,
                                     const char *server, bool found, struct store_settings v)
{
    struct settings_entry *e = NULL;
    if (strlen(server) > STORE_SERVER_MAX || (e = calloc(1, sizeof(*e))) == NULL)
        return NULL;
    size_t b = bucket_of(user_id, server);
    e->user_id = user_id;
    e->found = found;
    e->v = v;
    memcpy(e->server, server, strlen(server) + 1);
    e->next = c->buckets[b];
    c->buckets[b] = e;
    c->count++;
    return e;
}

int mcp_settings_cache_peek(struct mcp_settings_cache *c, int64_t user_id, const char *server,
                            struct store_settings *out)
{
    const struct settings_entry *e = find(c, user_id, server);
    if (e == NULL && find(c, user_id, "") != NULL) {
        c->hits++; /* every row of the user is here, and none for this server */
        memset(out, 0, sizeof(*out));
        return 0;
    }
    if (e == NULL)
        return ERR_NOTFOUND;
    c->hits++;
    entry_copy(e, out);
    return 0;
}

void mcp_settings_cache_follow(struct mcp_settings_cache *c, uint64_t seq)
{
    if (!c->seq_known || seq != c->seq) {
        cache_clear(c);
        c->seq = seq;
        c->seq_known = true;
    }
    c->followed = true;
}

bool mcp_settings_cache_seq(const struct mcp_settings_cache *c, uint64_t *seq)
{
    *seq = c->seq;
    return c->seq_known;
}

bool mcp_settings_cache_has_user(const struct mcp_settings_cache *c, int64_t user_id)
{
    return find(c, user_id, "") != NULL;
}

static int load_row_cb(const char *server, const struct store_settings *s, void *arg)
{
    struct mcp_settings_loaded *l = arg;
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 8;
        struct loaded_row *r = realloc(l->rows, cap * sizeof(*r));
        if (r == NULL)
            return ERR_NOMEM;
        l->rows = r;
        l->cap = cap;
    }
    struct loaded_row *r = &l->rows[l->n];
    if (strlen(server) > STORE_SERVER_MAX)
        return 0; /* not a server the gateway can have */
    memcpy(r->server, server, strlen(server) + 1);
    r->v = *s;
    r->v.tools = json_incref(s->tools);
    l->n++;
    return 0;
}

int mcp_settings_load(struct store *st, int64_t user_id, struct mcp_settings_loaded **out)
{
    struct mcp_settings_loaded *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return ERR_NOMEM;
    l->user_id = user_id;
    int err = store_settings_list(st, user_id, load_row_cb, l);
    if (err) {
        mcp_settings_loaded_free(l);
        return err;
    }
    *out = l;
    return 0;
}

void mcp_settings_loaded_free(struct mcp_settings_loaded *l)
{
    if (l == NULL)
        return;
    for (size_t i = 0; i < l->n; i++)
        store_settings_release(&l->rows[i].v);
    free(l->rows);
    free(l);
}

void mcp_settings_cache_fill(struct mcp_settings_cache *c, uint64_t seq,
                             struct mcp_settings_loaded *l)
{
    if (c->seq_known && seq != c->seq)
        return; /* read at another sequence: the next request reads again */
    if (c->count + l->n + 1 > c->max)
        cache_clear(c);
    for (size_t i = 0; i < l->n; i++) {
        struct settings_entry *old = find(c, l->user_id, l->rows[i].server);
        if (old != NULL)
            continue; /* the same row, read earlier at the same sequence */
        if (insert(c, l->user_id, l->rows[i].server, true, l->rows[i].v) == NULL)
            return; /* out of memory: no marker, the gateway reads what it misses */
        memset(&l->rows[i].v, 0, sizeof(l->rows[i].v)); /* taken */
    }
    if (find(c, l->user_id, "") == NULL)
        insert(c, l->user_id, "", false, (struct store_settings){0});
}

int mcp_settings_cache_get(struct mcp_settings_cache *c, struct store *st, int64_t user_id,
                           const char *server, struct store_settings *out)
{
    uint64_t seq;
    int err;
    if (!c->followed) {
        if ((err = store_revocation_seq(st, &seq)) != 0)
            return err;
        if (!c->seq_known || seq != c->seq) {
            cache_clear(c);
            c->seq = seq;
            c->seq_known = true;
        }
    }
    if (mcp_settings_cache_peek(c, user_id, server, out) == 0)
        return 0;
    c->misses++;
    if (st == NULL)
        return ERR_IO;
    size_t b = bucket_of(user_id, server);
    struct store_settings v = {0};
    err = store_settings_get(st, user_id, server, &v);
    if (err && err != ERR_NOTFOUND)
        return err; /* a store failure is never cached */
    struct settings_entry *e = NULL;
    if (strlen(server) <= STORE_SERVER_MAX && (e = calloc(1, sizeof(*e))) != NULL) {
        if (c->count >= c->max)
            cache_clear(c); /* bounded: emptied when full, refilled by the calls that follow */
        e->user_id = user_id;
        e->found = err == 0;
        e->v = v;
        memcpy(e->server, server, strlen(server) + 1);
        e->next = c->buckets[b];
        c->buckets[b] = e;
        c->count++;
        entry_copy(e, out);
    } else {
        *out = v; /* not kept: handed over as read */
    }
    return 0;
}

int mcp_settings_update(const struct config *cfg, struct store *st, int64_t user_id,
                        const char *server, const char *discovery, json_t *select,
                        struct store_settings *out, struct err_info *ei)
{
    const struct config_server *srv = config_find_server(cfg, server);
    if (srv == NULL)
        return err_info_set(ei, ERR_NOTFOUND, 0, 0, "no server named \"%.64s\" is configured",
                            server);
    if (discovery != NULL && srv->transport != TRANSPORT_OPENAPI)
        return err_info_set(ei, ERR_INVAL, 0, 0,
                            "discovery modes apply to openapi servers; \"%s\" is a %s server",
                            server, config_transport_str(srv->transport));
    struct store_settings v = {0};
    int err = store_settings_get(st, user_id, server, &v);
    if (err && err != ERR_NOTFOUND)
        return err_info_set(ei, err, 0, 0, "cannot read the settings: %s", err_str(err));
    if (discovery != NULL)
        snprintf(v.discovery, sizeof(v.discovery), "%s", discovery);
    if (select != NULL) {
        json_decref(v.tools);
        v.tools = json_is_null(select) ? NULL : json_incref(select);
    }
    if ((err = store_settings_put(st, user_id, server, &v, ei)) != 0) {
        store_settings_release(&v);
        return err;
    }
    *out = v;
    return 0;
}

json_t *mcp_settings_describe(const char *server, const struct store_settings *v)
{
    return json_pack("{s:s, s:s, s:O?}", "server", server, "discovery",
                     v->discovery[0] ? v->discovery : "(the server's)", "selected",
                     v->tools ? v->tools : NULL);
}
