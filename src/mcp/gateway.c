/*
 * The MCP engine; see gateway.h for the model.
 *
 * Each upstream lives on its home worker's loop: its transport, its pending-request map and its
 * list fetching are touched only there, so they need no lock. Requests from other workers reach
 * it through the home mailbox; answers go back through streams. The only shared state is the
 * catalog (swapped under gw.lock, noticed by workers through an atomic generation counter) and
 * each upstream's published state (under gw.lock).
 *
 * Ids: every request the gateway sends upstream gets a fresh integer id from its upstream's
 * counter; the client's id is restored on the answer. A client's progressToken is replaced by
 * that same integer so that tokens of different clients never collide on a shared server.
 *
 * MRTR bridging: a 2026-07-28 client cannot be sent requests, so when a legacy server asks for
 * sampling, elicitation or roots during such a client's call, the call is parked (still pending
 * upstream) and the client's POST is answered with an InputRequiredResult whose requestState is a
 * random token; the client's retry carries the answers, which go to the server under its own
 * ids, and the retry's response stream takes the call over.
 */
#include "mcp/gateway.h"
#include "core/err.h"
#include "core/idmap.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/rand.h"
#include "mcp/catalog.h"
#include "upstream/transport.h"

#include <inttypes.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *const mcp_supported_versions[] = {"2025-11-25", "2025-06-18", "2025-03-26", NULL};

#define LIST_PAGE_SIZE 500     /* items per page of the gateway's own lists */
#define MAX_UPSTREAM_PAGES 100 /* pages fetched from one server per list, at most */
#define INIT_RETRY_MAX_MS 30000
#define GW_MAX_SERVERS 1024 /* servers configured over the gateway's life, reloads included */

enum up_state { UP_STARTING = 0, UP_INITIALIZING, UP_READY, UP_DOWN, UP_FAILED, UP_STOPPED };
static const char *const up_state_names[] = {"starting", "initializing", "ready",
                                             "down",     "failed",       "stopped"};

struct pending;

struct upstream {
    int index;
    const struct config_server *srv;
    struct mcp_worker *home;
    struct transport *t;
    /* home thread only */
    enum up_state state;
    json_t *caps;
    struct idmap pending;
    _Atomic unsigned inflight;               /* atomic: /readyz reads both from any thread */
    struct forward *queue_head, *queue_tail; /* calls waiting for a place (max_concurrency) */
    _Atomic unsigned queued;
    struct pending *last_call; /* most recent client call, for relating stdio messages */
    json_t *fetching[CAT_NKINDS];
    int fetches_left;
    unsigned
        announce; /* bit per kind: tell clients the list changed once the refresh is published */
    uv_timer_t retry_timer;
    unsigned init_failures;
    _Atomic bool modern;    /* speaks 2026-07-28 (server/discover answered); else initialized */
    struct pending *listen; /* modern: the subscriptions/listen request in flight, or NULL */
    uv_timer_t listen_timer;
    unsigned listen_failures;
    json_t *listen_subs; /* modern: the resourceSubscriptions the open listen carries */
    /* session recovery (see "Upstream session recovery" in docs/architecture.md) */
    bool recovering;           /* the session was lost: calls are held until it is back */
    bool gave_up;              /* RECOVERY_MAX_ATTEMPTS failed: calls fail until one retries */
    unsigned recover_attempts; /* initializations that failed during this recovery */
    char recover_why[256];     /* how the session was lost */
    struct pending *held;      /* client calls to send (again) once the session is back */
    unsigned nheld;
    char log_level[16]; /* the last logging/setLevel a client sent through us, replayed */
    bool closing;
    struct config *cfg; /* the snapshot srv points into */
    bool retired;       /* removed or replaced by a reload: stopped, out of every view */
    /* under gw.lock */
    enum up_state pub_state;
    bool routable;     /* ready, or recovering (its calls wait or fail naming it): in the catalog */
    unsigned restarts; /* stdio: children started after the first */
    bool was_up;
    char why[512];
    json_t *lists[CAT_NKINDS];
    json_t *pub_caps;  /* the server's capabilities when its lists were last published */
    char protocol[16]; /* the version spoken with it ("2026-07-28", or initialize's), or "" */
    _Atomic int mode;  /* its default discovery mode (enum config_discovery), set when ready */
};

/* The discovery mode `up` serves by default (discovery: auto resolved on its last tools). */
static enum config_discovery up_mode(struct upstream *up)
{
    return up->srv->discovery_auto ? (enum config_discovery)atomic_load(&up->mode)
                                   : up->srv->discovery;
}

typedef void (*internal_cb)(struct upstream *up, json_t *msg, int err, const char *why, void *arg);

/* A client's request on its way to a server's home thread (or waiting there for a place). */
struct forward {
    struct upstream *up;
    json_t *msg; /* the request as the server must see it */
    struct pending *p;
    struct forward *next;
};

static void call_finished(struct upstream *up);
static void forward_cb(void *arg);

#define CALL_ID_BITS 48 /* bits of a request id (call_cookie packs it with the server) */

/* Any thread: an id for a request to a server, also its progress token there. Random (48 bits,
   CALL_ID_BITS, which every JSON reader keeps exact; never 0), not a counter: one upstream session
   carries every user's calls, and a server must not be able to guess the id of another user's
   call in flight. */
static uint64_t draw_id(void)
{
    uint64_t id = 0;
    while (id == 0) {
        rand_bytes(&id, sizeof(id));
        id &= (UINT64_C(1) << CALL_ID_BITS) - 1;
    }
    return id;
}
static void cancel_on_home_cb(void *arg);
static void reply_error(struct mcp_reply *r, json_t *id, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

struct mrtr;
static void mrtr_free(struct mrtr *m);
static void finish_recovery(struct upstream *up);
static unsigned replay_session_state(struct upstream *up);
static unsigned queue_limit(const struct upstream *up);
static void unqueue(struct upstream *up, struct forward *prev, struct forward *f);
static bool give_up_recovery(struct upstream *up, const char *why);

struct pending {
    uint64_t id;
    struct upstream *up;
    bool answered;      /* the response (or a failure) was delivered */
    bool exchange_open; /* HTTP: done_cb still to come; keeps this alive */
    /* internal requests */
    internal_cb cb;
    void *arg;
    /* client calls */
    struct session *session;
    struct stream *stream;
    json_t *client_id;
    json_t *client_token; /* the client's progressToken, or NULL */
    bool cacheable;       /* resources/read: a 2026-07-28 answer carries cache hints */
    uv_timer_t *timer;
    struct pending *prev_call; /* for last_call bookkeeping */
    /* 2026-07-28 client calls (MRTR bridging) */
    bool mrtr_ok;         /* tools/call, prompts/get or resources/read: may be parked */
    bool cancelling;      /* a cancellation is posted: no more input requests */
    char call_method[16]; /* and the call, as the server sees it, that a retry must repeat */
    char *call_target;    /* tool/prompt name or uri */
    struct mrtr *mrtr;    /* server requests awaiting the client's input, or NULL */
    /* calls to a 2026-07-28 server */
    uint32_t timeout_ms; /* internal requests: instead of timeouts.first_byte; UINT32_MAX none */
    json_t *sent;        /* client calls: the request as sent (id aside), to send again */
    json_t *params;      /* tools/call over HTTP: its Mcp-Param-* headers (Name -> text), sent
                            with it every time (retry, resend after recovery), or NULL */
    bool held;           /* in up->held, waiting for the session to come back */
    bool paused;         /* HTTP: its exchange is not read while its client is behind */
    bool resent;         /* already sent again once after a lost session */
    struct pending *held_next;
    json_t *call_msg; /* the call as first sent, for an MRTR retry with the client's answers */
    json_t *answers;  /* legacy client: the inputResponses collected so far */
    json_t *up_state; /* the server's requestState for the retry, or NULL */
    unsigned waiting; /* input requests the legacy client has not answered yet */
    unsigned rounds;  /* InputRequiredResults met so far */
};

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct config *cfg;
    struct mcp_worker **workers;
    unsigned nworkers;
    /* Append-only: a reload adds servers and retires others, so an index stays valid for the
       catalogs and sessions that hold it. nups is published after the entry is complete. */
    struct upstream *ups[GW_MAX_SERVERS];
    _Atomic size_t nups;
    struct catalog *catalog;
    _Atomic uint64_t generation;
} gw = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

bool mcp_version_supported(const char *v)
{
    for (int i = 0; v && mcp_supported_versions[i]; i++)
        if (strcmp(v, mcp_supported_versions[i]) == 0)
            return true;
    return false;
}

/* --- catalog publication --- */

/* With gw.lock held: rebuild the catalog from the published lists. */
static int rebuild_locked(int strict, struct err_info *ei)
{
    size_t n = atomic_load(&gw.nups);
    struct catalog_source *src = calloc(n ? n : 1, sizeof(*src));
    if (src == NULL)
        return ERR_NOMEM;
    for (size_t i = 0; i < n; i++) {
        src[i].server = gw.ups[i]->srv->name;
        src[i].srv = gw.ups[i]->srv;
        src[i].ready = gw.ups[i]->routable && !gw.ups[i]->retired;
        for (int k = 0; k < CAT_NKINDS; k++)
            src[i].lists[k] = gw.ups[i]->lists[k];
    }
    struct catalog *c;
    uint64_t gen = atomic_load(&gw.generation) + 1;
    int err = catalog_build(gw.cfg, src, n, gen, strict, &c, ei);
    free(src);
    if (err)
        return err;
    catalog_unref(gw.catalog);
    gw.catalog = c;
    atomic_store(&gw.generation, gen);
    return 0;
}

static struct catalog *worker_catalog(struct mcp_worker *w)
{
    uint64_t gen = atomic_load(&gw.generation);
    if (w->catalog == NULL || w->catalog_gen != gen) {
        pthread_mutex_lock(&gw.lock);
        struct catalog *c = gw.catalog ? catalog_ref(gw.catalog) : NULL;
        pthread_mutex_unlock(&gw.lock);
        if (c != NULL) {
            catalog_unref(w->catalog);
            w->catalog = c;
            w->catalog_gen = catalog_generation(c);
        }
    }
    return w->catalog;
}

/* Home thread: publish state (and lists, when given) and rebuild the catalog. */
static void publish(struct upstream *up, enum up_state st, const char *why, json_t **lists)
{
    pthread_mutex_lock(&gw.lock);
    up->pub_state = st;
    up->routable = st == UP_READY || up->recovering || up->gave_up;
    snprintf(up->why, sizeof(up->why), "%s", why ? why : "");
    if (lists != NULL) {
        for (int k = 0; k < CAT_NKINDS; k++) {
            json_decref(up->lists[k]);
            up->lists[k] = lists[k];
            lists[k] = NULL;
        }
        json_decref(up->pub_caps);
        up->pub_caps = json_deep_copy(up->caps);
    }
    struct err_info ei = {0};
    if (rebuild_locked(0, &ei) != 0)
        log_error("catalog", "could not rebuild the catalog: %s", ei.msg);
    pthread_cond_broadcast(&gw.cond);
    pthread_mutex_unlock(&gw.lock);
}

static void set_state(struct upstream *up, enum up_state st, const char *why)
{
    if (up->state == st)
        return;
    up->state = st;
    json_t *f = json_pack("{s:s, s:s, s:s}", "server", up->srv->name, "state", up_state_names[st],
                          "why", why ? why : "");
    log_fields(st == UP_READY || st == UP_INITIALIZING || st == UP_STARTING ? LOG_INFO : LOG_WARN,
               "upstream_state", f);
    publish(up, st, why, NULL);
}

/* --- sending to clients --- */

struct broadcast {
    int server;
    json_t *msg;
    const char *owner; /* only this principal's sessions, when set */
    const char *uri;   /* only sessions subscribed to it, when set */
};

/* The SESSION_LISTEN_* bit that lets a subscriptions/listen stream carry notification `method`;
   0 for anything else (request-scoped notifications never go on a listen stream). */
static unsigned listen_bit(const char *method)
{
    static const struct {
        const char *method;
        unsigned bit;
    } kinds[] = {{"notifications/tools/list_changed", SESSION_LISTEN_TOOLS},
                 {"notifications/prompts/list_changed", SESSION_LISTEN_PROMPTS},
                 {"notifications/resources/list_changed", SESSION_LISTEN_RESOURCES}};
    for (size_t i = 0; method && i < sizeof(kinds) / sizeof(kinds[0]); i++)
        if (strcmp(method, kinds[i].method) == 0)
            return kinds[i].bit;
    return 0;
}

static void broadcast_cb(struct session *s, void *arg)
{
    struct broadcast *b = arg;
    int view = session_view(s);
    if (b->server >= 0 && view >= 0 && view != b->server)
        return;
    if (b->uri && !session_subscribed(s, b->uri))
        return;
    if (b->owner && !session_owned_by(s, b->owner))
        return;
    json_t *msg = b->msg, *tagged = NULL;
    if (session_transient(s)) {
        /* A 2026-07-28 listener: only what it opted in to, tagged with its subscription id. */
        if ((session_listen_mask(s) & listen_bit(jsonrpc_method(b->msg))) == 0 ||
            session_listen_id(s) == NULL)
            return;
        msg = tagged = json_deep_copy(b->msg);
        if (msg == NULL)
            return;
        json_t *params = json_object_get(msg, "params");
        if (!json_is_object(params)) {
            params = json_object();
            json_object_set_new(msg, "params", params);
        }
        json_t *meta = json_object_get(params, "_meta");
        if (!json_is_object(meta)) {
            meta = json_object();
            json_object_set_new(params, "_meta", meta);
        }
        json_object_set(meta, "io.modelcontextprotocol/subscriptionId", session_listen_id(s));
    }
    struct stream *st = session_standalone_stream(s);
    if (st) {
        stream_push(st, msg, false);
        stream_unref(st);
    }
    json_decref(tagged);
}

/* Any thread: push a notification to the standalone stream of every session that sees server
   (server -1: every session). */
static void broadcast(int server, json_t *msg, const char *uri)
{
    struct broadcast b = {server, msg, NULL, uri};
    session_foreach(broadcast_cb, &b);
}

/* --- pending requests (home thread) --- */

/* What a session remembers of a client call, for cancellation: the server and our id, packed
   into the pointer-sized cookie the session stores (never dereferenced). */
static void *call_cookie(int server, uint64_t id)
{
    return (void *)(uintptr_t)(((uint64_t)server << CALL_ID_BITS) |
                               (id & ((1ULL << CALL_ID_BITS) - 1)));
}

/* Take p out of its server's chain of client calls in flight (wherever it is in it: calls end
   in any order). The chain is as long as the calls in flight, at most max_concurrency. */
static void unlink_call(struct upstream *up, struct pending *p)
{
    for (struct pending **pp = &up->last_call; *pp != NULL; pp = &(*pp)->prev_call)
        if (*pp == p) {
            *pp = p->prev_call;
            break;
        }
    p->prev_call = NULL;
}

static void unhold(struct upstream *up, struct pending *p);

static void pending_free(struct pending *p)
{
    if (p->paused && p->up != NULL && p->up->t != NULL)
        transport_resume(p->up->t, p); /* stdio: the pipe serves other calls too */
    if (p->timer) {
        uv_close((uv_handle_t *)p->timer, (uv_close_cb)free);
        p->timer = NULL;
    }
    if (p->session && p->client_id && p->up)
        session_untrack_call(p->session, p->client_id, call_cookie(p->up->index, p->id));
    if (p->up)
        unlink_call(p->up, p);
    if (p->stream)
        stream_unref(p->stream);
    if (p->session)
        session_unref(p->session);
    json_decref(p->client_id);
    json_decref(p->client_token);
    mrtr_free(p->mrtr);
    free(p->call_target);
    json_decref(p->call_msg);
    json_decref(p->answers);
    json_decref(p->up_state);
    json_decref(p->sent);
    json_decref(p->params);
    free(p);
}

static void pending_maybe_free(struct pending *p)
{
    if (p->answered && !p->exchange_open)
        pending_free(p);
}

/* Deliver a client call's final answer (a result or error object with the upstream's id). */
static void answer_client(struct pending *p, json_t *msg)
{
    json_t *copy = json_copy(msg);
    json_object_set(copy, "id", p->client_id);
    json_t *result = json_object_get(copy, "result");
    if (p->session && session_transient(p->session) && json_is_object(result)) {
        /* A 2026-07-28 client: the legacy server's result is complete by construction (it has
           no MRTR), and a read is cacheable only by this caller, never shared. */
        result = json_copy(result);
        json_object_set_new(copy, "result", result);
        if (json_object_get(result, "resultType") == NULL)
            json_object_set_new(result, "resultType", json_string("complete"));
        if (p->cacheable && json_object_get(result, "ttlMs") == NULL) {
            json_object_set_new(result, "ttlMs", json_integer(0));
            json_object_set_new(result, "cacheScope", json_string("private"));
        }
    } else if (p->session && atomic_load(&p->up->modern) && json_is_object(result)) {
        /* A legacy client of a 2026-07-28 server: the fields its revision does not have go. */
        result = json_copy(result);
        json_object_set_new(copy, "result", result);
        json_object_del(result, "resultType");
        json_object_del(result, "ttlMs");
        json_object_del(result, "cacheScope");
    }
    stream_push(p->stream, copy, true);
    json_decref(copy);
}

static void fail_pending(struct pending *p, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail_pending(struct pending *p, int code, const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (p->answered)
        return;
    p->answered = true;
    idmap_del(&p->up->pending, p->id);
    if (p->cb) {
        p->cb(p->up, NULL, code == JSONRPC_UPSTREAM_TIMEOUT ? ERR_TIMEOUT : ERR_UNAVAILABLE, msg,
              p->arg);
    } else {
        call_finished(p->up);
        json_t *err = jsonrpc_error_new(p->client_id, code, msg,
                                        json_pack("{s:s}", "server", p->up->srv->name));
        stream_push(p->stream, err, true);
        json_decref(err);
    }
}

/* Tell the server to stop call `id`: notifications/cancelled, except to a 2026-07-28 server over
   HTTP, where closing the call's response stream (transport_cancel) is the cancellation. */
static void send_cancelled(struct upstream *up, uint64_t id, const char *reason)
{
    if (atomic_load(&up->modern) && up->srv->transport == TRANSPORT_HTTP)
        return;
    json_t *n = jsonrpc_notification_new(
        "notifications/cancelled",
        json_pack("{s:I, s:s}", "requestId", (json_int_t)id, "reason", reason));
    transport_send(up->t, n, NULL);
    json_decref(n);
}

static void call_timeout_cb(uv_timer_t *t)
{
    struct pending *p = t->data;
    if (p->id == 0) { /* never sent: still waiting for a place (max_concurrency) */
        struct upstream *up = p->up;
        for (struct forward *q = up->queue_head, *prev = NULL; q != NULL; prev = q, q = q->next) {
            if (q->p != p)
                continue;
            unqueue(up, prev, q);
            char m[400];
            snprintf(m, sizeof(m),
                     "server \"%s\" did not answer within %u ms (timeouts.total, counted from the "
                     "call's arrival): the call waited all that time for a place (max_concurrency "
                     "%u) and was not sent",
                     up->srv->name, up->srv->timeouts.total_ms, up->srv->max_concurrency);
            log_info("call_dropped",
                     "a call to server %s was not sent: it waited %u ms for a place", up->srv->name,
                     up->srv->timeouts.total_ms);
            json_t *err = jsonrpc_error_new(p->client_id, JSONRPC_UPSTREAM_TIMEOUT, m,
                                            json_pack("{s:s}", "server", up->srv->name));
            stream_push(p->stream, err, true);
            json_decref(err);
            p->answered = true;
            pending_free(p);
            json_decref(q->msg);
            free(q);
            return;
        }
    }
    if (p->held) {
        /* Waiting for the server's session to come back, and out of time. */
        unhold(p->up, p); /* not counted in flight while held */
        p->answered = true;
        char m[600];
        snprintf(m, sizeof(m),
                 "server \"%s\" lost its session (%s) and was not re-initialised within %u ms "
                 "(timeouts.total)",
                 p->up->srv->name, p->up->recover_why, p->up->srv->timeouts.total_ms);
        json_t *err = jsonrpc_error_new(p->client_id, JSONRPC_UPSTREAM_TIMEOUT, m,
                                        json_pack("{s:s}", "server", p->up->srv->name));
        stream_push(p->stream, err, true);
        json_decref(err);
        pending_maybe_free(p);
        return;
    }
    /* Tell the server to stop, then answer the client. */
    send_cancelled(p->up, p->id, "gateway timeout");
    if (p->exchange_open) {
        transport_cancel(p->up->t, p);
        p->exchange_open = false;
    }
    if (p->timeout_ms)
        fail_pending(p, JSONRPC_UPSTREAM_TIMEOUT, "server \"%s\" did not answer within %u ms",
                     p->up->srv->name, p->timeout_ms);
    else
        fail_pending(p, JSONRPC_UPSTREAM_TIMEOUT,
                     "server \"%s\" did not answer within %u ms (timeouts.%s)", p->up->srv->name,
                     p->cb ? p->up->srv->timeouts.first_byte_ms : p->up->srv->timeouts.total_ms,
                     p->cb ? "first_byte" : "total");
    pending_maybe_free(p);
}

/* Send `msg` (whose id is replaced by a fresh one) to up as pending p. Takes ownership of p. */
static int send_pending(struct upstream *up, struct pending *p, json_t *msg)
{
    if (p->id == 0)
        p->id = draw_id();
    p->up = up;
    json_object_set_new(msg, "id", json_integer((json_int_t)p->id));
    if (p->cb == NULL && p->sent != msg) {
        json_decref(p->sent);
        p->sent = json_incref(msg); /* sent again if the server refuses it for a lost session */
    }
    int err = idmap_put(&up->pending, p->id, p);
    if (err)
        return err;
    if (up->srv->transport == TRANSPORT_HTTP)
        p->exchange_open = true;
    err = transport_send_call(up->t, msg, p, p->params);
    if (err) {
        idmap_del(&up->pending, p->id);
        p->exchange_open = false;
        return err;
    }
    /* A client's call may run as long as `total`; the gateway's own requests (initialize,
       lists) should answer quickly, so they get `first_byte`. A retry keeps its call's timer. */
    uint32_t total = p->cb ? up->srv->timeouts.first_byte_ms : up->srv->timeouts.total_ms;
    if (p->timeout_ms)
        total = p->timeout_ms == UINT32_MAX ? 0 : p->timeout_ms;
    if (total && p->timer == NULL && (p->timer = malloc(sizeof(*p->timer))) != NULL) {
        uv_timer_init(up->home->loop, p->timer);
        p->timer->data = p;
        uv_timer_start(p->timer, call_timeout_cb, total, 0);
    }
    return 0;
}

/* The client capabilities the gateway declares to a server: what it can relay or bridge. With a
   client (session not NULL), only those that client declared. New reference. */
static json_t *relay_capabilities(struct session *s)
{
    static const char *const relayed[] = {"sampling", "elicitation", "roots"};
    json_t *caps = json_object();
    json_t *client = s ? session_client_capabilities(s) : NULL;
    for (size_t i = 0; i < sizeof(relayed) / sizeof(relayed[0]); i++) {
        json_t *c = json_object_get(client, relayed[i]);
        if (s == NULL)
            c = strcmp(relayed[i], "elicitation") == 0 ? json_pack("{s:{}, s:{}}", "form", "url")
                : strcmp(relayed[i], "roots") == 0     ? json_pack("{s:b}", "listChanged", 1)
                                                       : json_object();
        else
            c = json_is_object(c) ? json_deep_copy(c) : NULL;
        if (c != NULL)
            json_object_set_new(caps, relayed[i], c);
    }
    return caps;
}

/* Send the gateway's own request `method` (params stolen) to up; cb gets the answer. A
   2026-07-28 server gets the per-request _meta. timeout_ms 0: timeouts.first_byte; UINT32_MAX:
   none. Returns the pending request (home thread; valid until cb), or NULL after cb ran. */
static struct pending *internal_request_ex(struct upstream *up, const char *method, json_t *params,
                                           internal_cb cb, void *arg, bool modern,
                                           uint32_t timeout_ms)
{
    struct pending *p = calloc(1, sizeof(*p));
    json_t *msg = jsonrpc_request_new(json_null(), method, params);
    json_t *caps = modern ? relay_capabilities(NULL) : NULL;
    if (p == NULL || msg == NULL || (modern && mcp_era_add_meta(msg, caps, -1) != 0)) {
        free(p);
        json_decref(msg);
        json_decref(caps);
        cb(up, NULL, ERR_NOMEM, "out of memory", arg);
        return NULL;
    }
    json_decref(caps);
    p->cb = cb;
    p->arg = arg;
    p->timeout_ms = timeout_ms;
    int err = send_pending(up, p, msg);
    json_decref(msg);
    if (err) {
        free(p);
        cb(up, NULL, err, err_str(err), arg);
        return NULL;
    }
    return p;
}

static void internal_request(struct upstream *up, const char *method, json_t *params,
                             internal_cb cb, void *arg)
{
    internal_request_ex(up, method, params, cb, arg, atomic_load(&up->modern), 0);
}

static void send_notification(struct upstream *up, const char *method, json_t *params)
{
    json_t *n = jsonrpc_notification_new(method, params);
    transport_send(up->t, n, NULL);
    json_decref(n);
}

/* --- upstream lifecycle (home thread) --- */

static void begin_init(struct upstream *up);

static void retry_timer_cb(uv_timer_t *t)
{
    struct upstream *up = t->data;
    if (!up->closing && transport_state(up->t) != TRANSPORT_STOPPED)
        begin_init(up);
}

/* Start the retry timer with exponential back-off; returns the delay. */
static unsigned schedule_reinit(struct upstream *up)
{
    unsigned delay = 500u << (up->init_failures < 6 ? up->init_failures : 6);
    if (delay > INIT_RETRY_MAX_MS)
        delay = INIT_RETRY_MAX_MS;
    up->init_failures++;
    if (!uv_is_active((uv_handle_t *)&up->retry_timer))
        uv_timer_start(&up->retry_timer, retry_timer_cb, delay, 0);
    return delay;
}

static void init_failed(struct upstream *up, const char *why)
{
    if (give_up_recovery(up, why))
        return;
    unsigned delay = schedule_reinit(up);
    char msg[400];
    snprintf(msg, sizeof(msg), "%s; retrying in %u ms", why, delay);
    set_state(up, UP_FAILED, msg);
}

#define LIST_RETRIES 2         /* a failed list page is fetched again at most this often */
#define LIST_RETRY_BASE_MS 250 /* then 500 ms: back-off doubles */

struct fetch {
    int kind;
    unsigned pages;
    unsigned attempts; /* failed tries of the current page */
    char *cursor;      /* of the current page, NULL for the first */
    uv_timer_t *timer; /* retry back-off */
    struct upstream *up_for_retry;
};

static void fetch_free(struct fetch *f)
{
    if (f->timer)
        uv_close((uv_handle_t *)f->timer, (uv_close_cb)free);
    free(f->cursor);
    free(f);
}

static const char *const list_methods[CAT_NKINDS] = {"tools/list", "prompts/list", "resources/list",
                                                     "resources/templates/list"};
static const char *const list_keys[CAT_NKINDS] = {"tools", "prompts", "resources",
                                                  "resourceTemplates"};
static const char *const changed_methods[CAT_NKINDS] = {
    "notifications/tools/list_changed", "notifications/prompts/list_changed",
    "notifications/resources/list_changed", NULL};

static void fetch_page(struct upstream *up, struct fetch *f, const char *cursor);

static void fetch_finished(struct upstream *up)
{
    if (--up->fetches_left > 0)
        return;
    up->init_failures = 0;
    json_t *lists[CAT_NKINDS];
    for (int k = 0; k < CAT_NKINDS; k++) {
        lists[k] = up->fetching[k];
        up->fetching[k] = NULL;
    }
    atomic_store(&up->mode,
                 (int)config_discovery_effective(
                     up->srv, catalog_count_in_mode(lists[CAT_TOOLS], DISCOVERY_STATIC)));
    if (up->state != UP_READY) {
        up->state = UP_READY;
        json_t *f = json_pack("{s:s, s:s, s:i, s:i}", "server", up->srv->name, "state", "ready",
                              "tools", (int)catalog_count_in_mode(lists[CAT_TOOLS], up_mode(up)),
                              "prompts", (int)json_array_size(lists[CAT_PROMPTS]));
        log_fields(LOG_INFO, "upstream_state", f);
    }
    publish(up, UP_READY, "", lists);
    for (int k = 0; k < CAT_NKINDS; k++)
        json_decref(lists[k]);
    if (up->recovering)
        finish_recovery(up);
    up->gave_up = false;
    for (int k = 0; k < CAT_NKINDS; k++) {
        if (!(up->announce & (1u << k)) || changed_methods[k] == NULL)
            continue;
        json_t *n = jsonrpc_notification_new(changed_methods[k], NULL);
        broadcast(up->index, n, NULL);
        json_decref(n);
    }
    up->announce = 0;
}

static void fetch_retry_cb(uv_timer_t *t)
{
    struct fetch *f = t->data;
    struct upstream *up = f->up_for_retry;
    fetch_page(up, f, f->cursor);
}

static void fetch_cb(struct upstream *up, json_t *msg, int err, const char *why, void *arg)
{
    struct fetch *f = arg;
    json_t *result = msg ? json_object_get(msg, "result") : NULL;
    /* Lists are idempotent: a transport failure (not an error answer) is tried again, a bounded
       number of times with back-off, while the server is still the one we initialised. */
    if (err && err != ERR_NOMEM && f->attempts < LIST_RETRIES && !up->closing &&
        (up->state == UP_INITIALIZING || up->state == UP_READY) &&
        transport_state(up->t) == TRANSPORT_UP) {
        unsigned delay = LIST_RETRY_BASE_MS << f->attempts++;
        log_warn("upstream_list", "server %s: %s failed (%s); trying again in %u ms", up->srv->name,
                 list_methods[f->kind], why ? why : err_str(err), delay);
        if (f->timer == NULL && (f->timer = malloc(sizeof(*f->timer))) != NULL) {
            uv_timer_init(up->home->loop, f->timer);
            f->timer->data = f;
        }
        if (f->timer != NULL) {
            f->up_for_retry = up;
            uv_timer_start(f->timer, fetch_retry_cb, delay, 0);
            return;
        }
    }
    if (err || !json_is_object(result)) {
        const char *emsg =
            msg ? json_string_value(json_object_get(json_object_get(msg, "error"), "message"))
                : NULL;
        log_warn("upstream_list", "server %s: %s failed: %s", up->srv->name, list_methods[f->kind],
                 why    ? why
                 : emsg ? emsg
                        : "no result");
        /* Keep what was fetched; a server that cannot list one kind still serves the others. */
    } else {
        json_t *items = json_object_get(result, list_keys[f->kind]);
        if (json_is_array(items))
            json_array_extend(up->fetching[f->kind], items);
        const char *next = json_string_value(json_object_get(result, "nextCursor"));
        if (next && *next && ++f->pages < MAX_UPSTREAM_PAGES) {
            free(f->cursor);
            f->cursor = strdup(next);
            f->attempts = 0;
            fetch_page(up, f, f->cursor);
            return;
        }
        if (next && *next)
            log_warn("upstream_list", "server %s: %s has more than %d pages; the rest is ignored",
                     up->srv->name, list_methods[f->kind], MAX_UPSTREAM_PAGES);
    }
    fetch_free(f);
    fetch_finished(up);
}

static void fetch_page(struct upstream *up, struct fetch *f, const char *cursor)
{
    json_t *params = cursor ? json_pack("{s:s}", "cursor", cursor) : json_object();
    internal_request(up, list_methods[f->kind], params, fetch_cb, f);
}

/* Fetch the lists the server's capabilities announce; kinds < 0 = all. */
static void refresh_lists(struct upstream *up, int only_kind)
{
    bool any = false;
    up->fetches_left = 1; /* held until every fetch is issued */
    for (int k = 0; k < CAT_NKINDS; k++) {
        const char *cap = k == CAT_TOOLS ? "tools" : k == CAT_PROMPTS ? "prompts" : "resources";
        if (only_kind >= 0 && k != only_kind &&
            !(only_kind == CAT_RESOURCES && k == CAT_TEMPLATES)) {
            /* keep the other kinds as they are */
            pthread_mutex_lock(&gw.lock);
            json_decref(up->fetching[k]);
            up->fetching[k] = up->lists[k] ? json_incref(up->lists[k]) : json_array();
            pthread_mutex_unlock(&gw.lock);
            continue;
        }
        json_decref(up->fetching[k]);
        up->fetching[k] = json_array();
        if (json_object_get(up->caps, cap) == NULL)
            continue;
        struct fetch *f = calloc(1, sizeof(*f));
        if (f == NULL)
            continue;
        f->kind = k;
        up->fetches_left++;
        any = true;
        fetch_page(up, f, NULL);
    }
    (void)any;
    fetch_finished(up);
}

static void init_cb(struct upstream *up, json_t *msg, int err, const char *why, void *arg)
{
    if (up->closing)
        return;
    json_t *result = msg ? json_object_get(msg, "result") : NULL;
    if (err || !json_is_object(result)) {
        char reason[300];
        const char *emsg =
            msg ? json_string_value(json_object_get(json_object_get(msg, "error"), "message"))
                : NULL;
        snprintf(reason, sizeof(reason), "initialize failed: %s",
                 why    ? why
                 : emsg ? emsg
                        : "no result");
        if (up->srv->transport == TRANSPORT_STDIO && transport_state(up->t) != TRANSPORT_UP) {
            /* The process died: its restart (with the server's own back-off) re-initialises. */
            set_state(up, UP_DOWN, reason);
            return;
        }
        init_failed(up, reason);
        return;
    }
    const char *version = json_string_value(json_object_get(result, "protocolVersion"));
    if (!mcp_version_supported(version)) {
        char reason[300];
        snprintf(reason, sizeof(reason),
                 "server offered protocol version \"%s\", which the gateway does not speak",
                 version ? version : "(none)");
        init_failed(up, reason);
        return;
    }
    json_decref(up->caps);
    up->caps = json_incref(json_object_get(result, "capabilities"));
    if (!json_is_object(up->caps)) {
        json_decref(up->caps);
        up->caps = json_object();
    }
    transport_set_protocol_version(up->t, version);
    pthread_mutex_lock(&gw.lock);
    snprintf(up->protocol, sizeof(up->protocol), "%s", version);
    pthread_mutex_unlock(&gw.lock);
    send_notification(up, "notifications/initialized", NULL);
    transport_listen(up->t);
    unsigned n = replay_session_state(up);
    if (n > 0 || (up->recovering && up->log_level[0]))
        log_info("upstream_replay", "server %s: replayed %u resource subscriptions%s%s",
                 up->srv->name, n, up->log_level[0] ? " and log level " : "", up->log_level);
    refresh_lists(up, -1);
}

struct sub_collect {
    int server;
    json_t *set;
};

static void collect_subs_cb(struct session *s, void *arg)
{
    struct sub_collect *c = arg;
    session_collect_subscriptions(s, c->server, c->set);
}

/* Every URI some client session is subscribed to on up, as the keys of a new object. */
static json_t *subscriptions_of(struct upstream *up)
{
    struct sub_collect c = {up->index, json_object()};
    session_foreach(collect_subs_cb, &c);
    return c.set;
}

static void replay_cb(struct upstream *up, json_t *msg, int err, const char *why, void *arg)
{
    const char *what = arg;
    json_t *error = msg ? json_object_get(msg, "error") : NULL;
    if (err || error != NULL)
        log_warn("upstream_replay", "server %s refused the replayed %s: %s", up->srv->name, what,
                 why ? why
                 : json_string_value(json_object_get(error, "message")) != NULL
                     ? json_string_value(json_object_get(error, "message"))
                     : "no result");
}

/* A legacy server has a new session (its first, or after it lost one): send it what the
   clients set on the old one that the protocol lets a client set again, the log level and the
   resource subscriptions. Returns how many subscriptions were replayed. */
static char what_level[] = "logging/setLevel", what_subscribe[] = "resources/subscribe";

static unsigned replay_session_state(struct upstream *up)
{
    if (up->log_level[0] && json_object_get(up->caps, "logging") != NULL)
        internal_request(up, "logging/setLevel", json_pack("{s:s}", "level", up->log_level),
                         replay_cb, what_level);
    json_t *subs = subscriptions_of(up);
    unsigned n = 0;
    if (json_is_true(json_object_get(json_object_get(up->caps, "resources"), "subscribe"))) {
        const char *uri;
        json_t *v;
        json_object_foreach(subs, uri, v)
        {
            (void)v;
            internal_request(up, "resources/subscribe", json_pack("{s:s}", "uri", uri), replay_cb,
                             what_subscribe);
            n++;
        }
    } else if (json_object_size(subs) > 0) {
        log_warn("upstream_replay",
                 "server %s: %zu resource subscriptions not replayed: its capabilities no longer "
                 "announce resources.subscribe",
                 up->srv->name, json_object_size(subs));
    }
    json_decref(subs);
    return n;
}

#define PROBE_STDIO_TIMEOUT_MS 5000 /* a silent stdio server is a legacy one (basic/transports) */
#define LISTEN_RETRY_MAX_MS 30000

static void open_listen(struct upstream *up);

static void listen_timer_cb(uv_timer_t *t)
{
    open_listen(t->data);
}

/* The subscriptions/listen request ended (the server closed it, the exchange broke, the server
   went away): open another one after a pause while the server is still the modern one. */
static void listen_cb(struct upstream *up, json_t *msg, int err, const char *why, void *arg)
{
    (void)msg;
    (void)arg;
    up->listen = NULL;
    if (up->closing || !atomic_load(&up->modern) ||
        !(up->state == UP_READY || up->state == UP_INITIALIZING))
        return;
    unsigned delay = 1000u << (up->listen_failures < 5 ? up->listen_failures : 5);
    if (delay > LISTEN_RETRY_MAX_MS)
        delay = LISTEN_RETRY_MAX_MS;
    if (err)
        up->listen_failures++;
    log_info("upstream_listen",
             "server %s: subscriptions/listen ended (%s); listening again in %u ms", up->srv->name,
             err ? (why ? why : err_str(err)) : "the server closed it", delay);
    uv_timer_start(&up->listen_timer, listen_timer_cb, delay, 0);
}

/* Modern server: ask for the list changes the gateway acts on (the 2026-07-28 replacement of the
   GET stream); they arrive as notifications like any other. */
static void open_listen(struct upstream *up)
{
    if (up->listen != NULL || up->closing || !atomic_load(&up->modern) ||
        transport_state(up->t) == TRANSPORT_STOPPED)
        return;
    json_t *filter = json_object();
    static const char *const caps[] = {"tools", "prompts", "resources"};
    static const char *const keys[] = {"toolsListChanged", "promptsListChanged",
                                       "resourcesListChanged"};
    for (int i = 0; i < 3; i++)
        if (json_is_true(json_object_get(json_object_get(up->caps, caps[i]), "listChanged")))
            json_object_set_new(filter, keys[i], json_true());
    /* The resources the gateway's (legacy) clients subscribed to on this server: 2026-07-28 has
       no resources/subscribe, the listen filter carries them. */
    json_t *subs = subscriptions_of(up), *uris = json_array();
    const char *uri;
    json_t *v;
    json_object_foreach(subs, uri, v)
    {
        (void)v;
        json_array_append_new(uris, json_string(uri));
    }
    json_decref(up->listen_subs);
    up->listen_subs = subs;
    if (json_array_size(uris) > 0)
        json_object_set_new(filter, "resourceSubscriptions", uris);
    else
        json_decref(uris);
    if (json_object_size(filter) == 0) {
        json_decref(filter);
        return;
    }
    up->listen =
        internal_request_ex(up, "subscriptions/listen", json_pack("{s:o}", "notifications", filter),
                            listen_cb, NULL, true, UINT32_MAX);
}

/* Modern server: the set of subscriptions changed; replace the listen request with one that
   carries the new filter (the old one is cancelled: closed over HTTP, notifications/cancelled on
   stdio). */
static void relisten(struct upstream *up)
{
    json_t *now = subscriptions_of(up);
    bool same = up->listen != NULL && json_equal(now, up->listen_subs);
    json_decref(now);
    if (same || up->closing || !atomic_load(&up->modern) || up->state != UP_READY)
        return;
    struct pending *l = up->listen;
    if (l != NULL) {
        up->listen = NULL;
        send_cancelled(up, l->id, "the gateway's subscriptions changed");
        idmap_del(&up->pending, l->id);
        if (l->exchange_open) {
            transport_cancel(up->t, l);
            l->exchange_open = false;
        }
        l->answered = true;
        pending_free(l);
    }
    uv_timer_stop(&up->listen_timer);
    up->listen_failures = 0;
    open_listen(up);
}

static void send_initialize(struct upstream *up);

/* The answer to the server/discover probe: a modern server is ready for its lists; anything
   else that is not a modern refusal means a legacy server, which gets initialize. */
static void discover_cb(struct upstream *up, json_t *msg, int err, const char *why, void *arg)
{
    (void)arg;
    if (up->closing)
        return;
    char account[400], reason[600];
    enum mcp_probe_outcome o = mcp_era_probe_outcome(msg, account, sizeof(account));
    if (msg == NULL && why != NULL)
        snprintf(account, sizeof(account), "no answer to server/discover: %s", why);
    if (err && up->srv->transport == TRANSPORT_STDIO && transport_state(up->t) != TRANSPORT_UP) {
        snprintf(reason, sizeof(reason), "server/discover failed: %s", account);
        set_state(up, UP_DOWN, reason); /* the restart probes again */
        return;
    }
    if (o == MCP_PROBE_LEGACY && up->srv->protocol == PROTOCOL_MODERN) {
        snprintf(reason, sizeof(reason),
                 "the server does not speak %s (%s), and protocol: %s allows no fallback",
                 MCP_VERSION_2026, account, MCP_VERSION_2026);
        init_failed(up, reason);
        return;
    }
    if (o == MCP_PROBE_REFUSED) {
        init_failed(up, account);
        return;
    }
    if (o == MCP_PROBE_LEGACY) {
        /* The usual case today, not a failure: a server without server/discover (-32601) is
           simply legacy; any other answer is worth its detail. */
        json_t *code = json_object_get(json_object_get(msg, "error"), "code");
        if (json_is_integer(code) && json_integer_value(code) == JSONRPC_METHOD_NOT_FOUND)
            log_info("upstream_era",
                     "server %s speaks the legacy era (%s; it has no server/discover): using "
                     "initialize",
                     up->srv->name, mcp_supported_versions[0]);
        else
            log_info("upstream_era", "server %s speaks the legacy era (%s): %s; using initialize",
                     up->srv->name, mcp_supported_versions[0], account);
        send_initialize(up);
        return;
    }
    json_t *caps = json_object_get(json_object_get(msg, "result"), "capabilities");
    json_decref(up->caps);
    up->caps = json_is_object(caps) ? json_incref(caps) : json_object();
    atomic_store(&up->modern, true);
    pthread_mutex_lock(&gw.lock);
    snprintf(up->protocol, sizeof(up->protocol), "%s", MCP_VERSION_2026);
    pthread_mutex_unlock(&gw.lock);
    log_info("upstream_era", "server %s speaks %s (%s)", up->srv->name, MCP_VERSION_2026, account);
    up->listen_failures = 0;
    open_listen(up);
    refresh_lists(up, -1);
}

static void begin_init(struct upstream *up)
{
    uv_timer_stop(&up->retry_timer);
    set_state(up, UP_INITIALIZING, "");
    atomic_store(&up->modern, false);
    if (up->srv->transport != TRANSPORT_OPENAPI && up->srv->protocol != PROTOCOL_LEGACY) {
        uint32_t t = up->srv->timeouts.first_byte_ms;
        if (up->srv->transport == TRANSPORT_STDIO && (t == 0 || t > PROBE_STDIO_TIMEOUT_MS))
            t = PROBE_STDIO_TIMEOUT_MS;
        internal_request_ex(up, "server/discover", json_object(), discover_cb, NULL, true, t);
        return;
    }
    send_initialize(up);
}

static void send_initialize(struct upstream *up)
{
    json_t *params = json_pack("{s:s, s:{s:{}, s:{s:{}, s:{}}, s:{s:b}}, s:{s:s, s:s}}",
                               "protocolVersion", mcp_supported_versions[0], "capabilities",
                               "sampling", "elicitation", "form", "url", "roots", "listChanged", 1,
                               "clientInfo", "name", "gatehouse", "version", GATEHOUSE_VERSION);
    internal_request(up, "initialize", params, init_cb, NULL);
}

static void fail_all_cb(uint64_t key, void *val, void *arg)
{
    struct pending *p = val;
    const char *why = arg;
    p->exchange_open = false; /* the transport forgets its exchanges when it goes down */
    if (!p->answered) {
        p->answered = true;
        if (p->cb) {
            p->cb(p->up, NULL, ERR_UNAVAILABLE, why, p->arg);
        } else {
            char msg[400];
            snprintf(msg, sizeof(msg), "server \"%s\" went away: %s", p->up->srv->name, why);
            json_t *err = jsonrpc_error_new(p->client_id, JSONRPC_UPSTREAM_UNAVAILABLE, msg,
                                            json_pack("{s:s}", "server", p->up->srv->name));
            stream_push(p->stream, err, true);
            json_decref(err);
        }
    }
    pending_free(p);
}

static void fail_all(struct upstream *up, const char *why)
{
    char reason[300];
    snprintf(reason, sizeof(reason), "%s", why);
    struct idmap old = up->pending;
    idmap_init(&up->pending);
    idmap_foreach(&old, fail_all_cb, reason);
    idmap_release(&old);
    up->inflight = 0;
    up->last_call = NULL;
    /* Calls still waiting for a place go the same way. */
    struct forward *f = up->queue_head;
    up->queue_head = up->queue_tail = NULL;
    up->queued = 0;
    while (f != NULL) {
        struct forward *next = f->next;
        char msg[400];
        snprintf(msg, sizeof(msg), "server \"%s\" went away: %s", up->srv->name, reason);
        json_t *err = jsonrpc_error_new(f->p->client_id, JSONRPC_UPSTREAM_UNAVAILABLE, msg,
                                        json_pack("{s:s}", "server", up->srv->name));
        stream_push(f->p->stream, err, true);
        json_decref(err);
        f->p->answered = true;
        f->p->up = up;
        pending_free(f->p);
        json_decref(f->msg);
        free(f);
        f = next;
    }
}

/* --- upstream session recovery (home thread) --- */

#define RECOVERY_MAX_ATTEMPTS 5 /* failed re-initialisations before calls fail */

static void unhold(struct upstream *up, struct pending *p)
{
    for (struct pending **pp = &up->held; *pp != NULL; pp = &(*pp)->held_next)
        if (*pp == p) {
            *pp = p->held_next;
            up->nheld--;
            break;
        }
    p->held = false;
    p->held_next = NULL;
}

/* Keep client call p (in flight when `sent`, else never sent) to send once the server has a
   session again. A call the server refused once for a lost session and that was sent again is
   not held twice. False when p cannot be held: the caller answers it. */
static bool hold_call(struct upstream *up, struct pending *p, bool sent)
{
    if (p->cb != NULL || p->sent == NULL || p->resent || p->held || up->gave_up ||
        up->nheld >= queue_limit(up) || up->closing)
        return false;
    if (sent) {
        idmap_del(&up->pending, p->id);
        if (p->exchange_open) {
            transport_cancel(up->t, p);
            p->exchange_open = false;
        }
        unlink_call(up, p);
        if (up->inflight > 0)
            up->inflight--;
    }
    p->answered = false;
    p->held = true;
    if (!sent && p->timer == NULL && up->srv->timeouts.total_ms) {
        /* Its timeouts.total runs from now, as it would have from the send; it goes on after. */
        if ((p->timer = malloc(sizeof(*p->timer))) != NULL) {
            uv_timer_init(up->home->loop, p->timer);
            p->timer->data = p;
            uv_timer_start(p->timer, call_timeout_cb, up->srv->timeouts.total_ms, 0);
        }
    }
    struct pending **tail = &up->held;
    while (*tail != NULL)
        tail = &(*tail)->held_next;
    *tail = p;
    up->nheld++;
    return true;
}

/* Take the next call off a list of held calls (detached from its server), or NULL. */
static struct pending *pop_held(struct pending **list)
{
    struct pending *p = *list;
    if (p != NULL) {
        *list = p->held_next;
        p->held = false;
        p->held_next = NULL;
    }
    return p;
}

/* Detach every held call of up, in order. */
static struct pending *take_held(struct upstream *up)
{
    struct pending *list = up->held;
    up->held = NULL;
    up->nheld = 0;
    return list;
}

/* The session is back: send the held calls again, in order, through the usual path. */
static void release_held(struct upstream *up)
{
    struct pending *list = take_held(up), *p;
    while ((p = pop_held(&list)) != NULL) {
        p->resent = true;
        struct forward *f = calloc(1, sizeof(*f));
        if (f == NULL) {
            p->answered = true;
            json_t *e =
                jsonrpc_error_new(p->client_id, JSONRPC_INTERNAL_ERROR, "out of memory", NULL);
            stream_push(p->stream, e, true);
            json_decref(e);
            pending_maybe_free(p);
        } else {
            f->up = up;
            f->p = p;
            f->msg = json_incref(p->sent);
            forward_cb(f);
        }
    }
}

/* Fail every held call with the reason the session could not be brought back. */
static void fail_held(struct upstream *up, const char *why)
{
    struct pending *list = take_held(up), *p;
    while ((p = pop_held(&list)) != NULL) {
        p->answered = true;
        char m[600];
        snprintf(m, sizeof(m), "server \"%s\" lost its session (%s) and %s", up->srv->name,
                 up->recover_why, why);
        json_t *e = jsonrpc_error_new(p->client_id, JSONRPC_UPSTREAM_UNAVAILABLE, m,
                                      json_pack("{s:s}", "server", up->srv->name));
        stream_push(p->stream, e, true);
        json_decref(e);
        pending_maybe_free(p);
    }
}

/* The server's session is gone (`why` says how): from now on calls are held, and what the
   clients set on the old session is replayed on the next one. */
static void mark_lost(struct upstream *up, const char *why)
{
    if (up->closing || up->srv->transport == TRANSPORT_OPENAPI)
        return;
    if (!up->recovering) {
        up->recovering = true;
        up->gave_up = false;
        up->recover_attempts = 0;
        snprintf(up->recover_why, sizeof(up->recover_why), "%s", why);
        json_t *f = json_pack("{s:s, s:s}", "server", up->srv->name, "why", why);
        log_fields(LOG_WARN, "upstream_session_lost", f);
    }
}

/* mark_lost, then re-initialise it now (unless that is under way, or a restart of its process
   will: stdio). */
static void begin_recovery(struct upstream *up, const char *why)
{
    mark_lost(up, why);
    if (!up->recovering || up->state == UP_INITIALIZING || up->t == NULL ||
        transport_state(up->t) == TRANSPORT_STOPPED ||
        (up->srv->transport == TRANSPORT_STDIO && transport_state(up->t) != TRANSPORT_UP))
        return;
    transport_reset_session(up->t);
    begin_init(up);
}

/* A re-initialisation failed: true when that was the last attempt (the held calls have their
   error, no retry is scheduled: the next client call starts a new round). */
static bool give_up_recovery(struct upstream *up, const char *why)
{
    if (!up->recovering || ++up->recover_attempts < RECOVERY_MAX_ATTEMPTS)
        return false;
    char m[600];
    snprintf(m, sizeof(m),
             "could not be re-initialised in %u attempts (last: %s); the next call tries again",
             up->recover_attempts, why);
    up->recovering = false;
    up->gave_up = true;
    uv_timer_stop(&up->retry_timer);
    fail_held(up, m);
    char state[1000];
    snprintf(state, sizeof(state), "lost its session (%.250s) and %.600s", up->recover_why, m);
    set_state(up, UP_FAILED, state);
    return true;
}

static void finish_recovery(struct upstream *up)
{
    json_t *f =
        json_pack("{s:s, s:s, s:i, s:i}", "server", up->srv->name, "was", up->recover_why,
                  "failed_attempts", (int)up->recover_attempts, "held_calls", (int)up->nheld);
    log_fields(LOG_INFO, "upstream_recovered", f);
    up->recovering = false;
    up->gave_up = false;
    up->recover_attempts = 0;
    release_held(up);
}

/*
 * Does error answer msg say, in prose only, that the server no longer knows our session? Some
 * servers (and proxies in front of them) answer a stale session with a JSON-RPC error instead
 * of HTTP 404. Only these phrasings of the message count, matched without regard to case, so
 * that a tool's own error is never taken for one. Returns the phrase that matched, or NULL.
 */
static const char *dead_session_rule(json_t *msg)
{
    static const char *const phrases[] = {
        "session expired",    "session has expired",   "session not found",
        "no such session",    "unknown session",       "invalid session",
        "session is invalid", "session id is invalid", "session is no longer valid",
    };
    const char *m = json_string_value(json_object_get(json_object_get(msg, "error"), "message"));
    char lower[256];
    size_t i;
    if (m == NULL)
        return NULL;
    for (i = 0; i < sizeof(lower) - 1 && m[i]; i++)
        lower[i] = (char)(m[i] >= 'A' && m[i] <= 'Z' ? m[i] - 'A' + 'a' : m[i]);
    lower[i] = '\0';
    for (i = 0; i < sizeof(phrases) / sizeof(phrases[0]); i++)
        if (strstr(lower, phrases[i]) != NULL)
            return phrases[i];
    return NULL;
}

static void state_cb(void *owner, enum transport_state st, const char *why)
{
    struct upstream *up = owner;
    if (up->closing)
        return;
    switch (st) {
    case TRANSPORT_UP:
        pthread_mutex_lock(&gw.lock);
        if (up->was_up && up->srv->transport == TRANSPORT_STDIO)
            up->restarts++;
        up->was_up = true;
        pthread_mutex_unlock(&gw.lock);
        if (up->srv->transport != TRANSPORT_HTTP) { /* stdio: child started; openapi: loaded */
            uv_timer_stop(&up->retry_timer);
            begin_init(up);
        }
        break;
    case TRANSPORT_DOWN:
    case TRANSPORT_STOPPED:
        if (up->srv->transport == TRANSPORT_STDIO || st == TRANSPORT_STOPPED) {
            if (st == TRANSPORT_STOPPED) {
                fail_held(up, "the server was stopped");
                up->recovering = false;
            } else if (up->state == UP_READY || up->recovering) {
                char m[300];
                snprintf(m, sizeof(m), "the process ended: %s", why ? why : "transport down");
                mark_lost(up, m); /* the restart re-initialises; calls wait for it */
                if (up->recovering && ++up->recover_attempts >= RECOVERY_MAX_ATTEMPTS + 1) {
                    up->recovering = false;
                    up->gave_up = true;
                    fail_held(up, "its process kept ending; calls fail until it is back");
                }
            }
            fail_all(up, why ? why : "transport down");
            uv_timer_stop(&up->retry_timer);
            set_state(up, st == TRANSPORT_STOPPED ? UP_STOPPED : UP_DOWN, why);
        } else if (up->state == UP_READY || up->state == UP_INITIALIZING) {
            /* HTTP: no exchange will be sent while it is down, so probe it again with a new
               initialize after a back-off; a server that forgot us gets a new session. */
            char m[300];
            snprintf(m, sizeof(m), "the server went down: %s", why ? why : "transport down");
            mark_lost(up, m);
            set_state(up, UP_DOWN, why);
            transport_reset_session(up->t);
            if (!give_up_recovery(up, why ? why : "the server is down"))
                schedule_reinit(up);
        }
        break;
    case TRANSPORT_STARTING:
        break;
    }
}

static void done_cb(void *owner, void *related, int err, const char *why)
{
    struct upstream *up = owner;
    struct pending *p = related;
    if (p == NULL)
        return;
    p->exchange_open = false;
    bool lost = err == ERR_NOTFOUND && !up->closing &&
                (up->state == UP_READY || up->state == UP_INITIALIZING);
    if (lost && !p->answered && hold_call(up, p, true)) {
        /* The server refused the call for the session it forgot: it never ran it, so it is sent
           again on the new session. */
        begin_recovery(up, "the server answered HTTP 404 for its session");
        return;
    }
    if (!p->answered) {
        if (err == 0)
            fail_pending(p, JSONRPC_UPSTREAM_UNAVAILABLE,
                         "server \"%s\" ended the exchange without answering", up->srv->name);
        else
            fail_pending(
                p, err == ERR_TIMEOUT ? JSONRPC_UPSTREAM_TIMEOUT : JSONRPC_UPSTREAM_UNAVAILABLE,
                "server \"%s\": %s", up->srv->name, why ? why : err_str(err));
    }
    if (lost) /* the server forgot our session: a new one; the client's session is unaffected */
        begin_recovery(up, "the server answered HTTP 404 for its session");
    pending_maybe_free(p);
}

/* The client call a server message relates to: the exchange that carried it, else the most
   recent call in flight (stdio has no other way to relate messages). */
static struct pending *related_call(struct upstream *up, void *related)
{
    struct pending *p = related;
    if (p != NULL && p->cb == NULL && !p->answered)
        return p;
    return up->last_call;
}

static const char *required_capability(const char *method)
{
    if (strcmp(method, "sampling/createMessage") == 0)
        return "sampling";
    if (strcmp(method, "elicitation/create") == 0)
        return "elicitation";
    if (strcmp(method, "roots/list") == 0)
        return "roots";
    return NULL;
}

static void answer_server(struct upstream *up, json_t *id, int code, const char *message)
{
    json_t *r =
        code ? jsonrpc_error_new(id, code, message, NULL) : jsonrpc_result_new(id, json_object());
    transport_send(up->t, r, NULL);
    json_decref(r);
}

/* Home thread: stop client call p upstream (notifications/cancelled) and forget it. */
static void cancel_call(struct upstream *up, struct pending *p, const char *reason)
{
    send_cancelled(up, p->id, reason);
    idmap_del(&up->pending, p->id);
    p->answered = true;
    stream_end(p->stream);
    if (p->exchange_open) {
        transport_cancel(up->t, p);
        p->exchange_open = false;
    }
    pending_free(p);
    call_finished(up);
}

/* Any thread: have call `id` of up cancelled on its home thread (where it may be gone by then).
   With refuse_id (borrowed), the server's request of that id is then refused with `refusal`. */
static int post_cancel(struct upstream *up, uint64_t id, const char *reason, json_t *refuse_id,
                       const char *refusal)
{
    struct forward *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return ERR_NOMEM;
    f->up = up;
    f->msg = json_pack("{s:I, s:s}", "id", (json_int_t)id, "reason", reason);
    if (f->msg != NULL && refuse_id != NULL) {
        json_object_set(f->msg, "refuse_id", refuse_id);
        json_object_set_new(f->msg, "refusal", json_string(refusal));
    }
    if (f->msg == NULL || mailbox_post(up->home->mb, cancel_on_home_cb, f) != 0) {
        json_decref(f->msg);
        free(f);
        return ERR_CLOSED;
    }
    return 0;
}

/* --- MRTR bridging: a legacy server's requests during a 2026-07-28 client's call --- */

#define MRTR_TOKEN_BYTES 32  /* requestState: 256 random bits */
#define MRTR_TOKEN_LEN 43    /* their unpadded base64url */
#define MRTR_MAX_PARKED 1024 /* calls waiting for a client's retry, gateway-wide */
#define MRTR_MAX_INPUTS 16   /* server requests one call may have awaiting the client */

struct input_request {
    char key[64];    /* the inputRequests key the client answers under */
    json_t *up_id;   /* the server's id for the request */
    json_t *request; /* {method, params} as the client sees it */
    bool asked;      /* sent to the client in an InputRequiredResult */
};

/* Home thread: a call's server requests awaiting the client. */
struct mrtr {
    struct input_request reqs[MRTR_MAX_INPUTS];
    unsigned n;
    unsigned next_key;
    bool parked; /* no client stream: waiting for the retry that carries `token` */
    char token[MRTR_TOKEN_LEN + 1];
};

/* What a retry needs to find its call; any thread, under parked.lock. Taking an entry out of
   the table is what decides between a retry and the expiry: whoever takes it owns the call's
   next step. */
struct park_entry {
    char token[MRTR_TOKEN_LEN + 1];
    int server;
    uint64_t call_id;
    char method[16];
    char *target;
    struct park_entry *next;
};

static struct {
    pthread_mutex_t lock;
    struct park_entry *head;
    unsigned count;
} parked = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void park_entry_free(struct park_entry *e)
{
    if (e == NULL)
        return;
    free(e->target);
    sodium_memzero(e->token, sizeof(e->token));
    free(e);
}

/* Returns 0, ERR_NOMEM, or ERR_LIMIT when MRTR_MAX_PARKED calls are parked already. */
static int park_insert(const char *token, int server, uint64_t call_id, const char *method,
                       const char *target)
{
    struct park_entry *e = calloc(1, sizeof(*e));
    if (e == NULL || (e->target = strdup(target ? target : "")) == NULL) {
        free(e);
        return ERR_NOMEM;
    }
    memcpy(e->token, token, MRTR_TOKEN_LEN);
    e->server = server;
    e->call_id = call_id;
    snprintf(e->method, sizeof(e->method), "%s", method);
    pthread_mutex_lock(&parked.lock);
    if (parked.count >= MRTR_MAX_PARKED) {
        pthread_mutex_unlock(&parked.lock);
        park_entry_free(e);
        return ERR_LIMIT;
    }
    e->next = parked.head;
    parked.head = e;
    parked.count++;
    pthread_mutex_unlock(&parked.lock);
    return 0;
}

/* Take the entry of `token` out of the table (the caller frees it), or NULL. With `method`, only
   an entry for that same server, method and target is taken; another one is left in place and
   *mismatch set. */
static struct park_entry *park_take(const char *token, size_t len, int server, const char *method,
                                    const char *target, bool *mismatch)
{
    struct park_entry *e = NULL;
    if (len != MRTR_TOKEN_LEN)
        return NULL;
    pthread_mutex_lock(&parked.lock);
    for (struct park_entry **pp = &parked.head; *pp != NULL; pp = &(*pp)->next) {
        if (sodium_memcmp((*pp)->token, token, MRTR_TOKEN_LEN) != 0)
            continue;
        if (method != NULL && ((*pp)->server != server || strcmp((*pp)->method, method) != 0 ||
                               strcmp((*pp)->target, target) != 0)) {
            *mismatch = true;
            break;
        }
        e = *pp;
        *pp = e->next;
        parked.count--;
        break;
    }
    pthread_mutex_unlock(&parked.lock);
    return e;
}

static void mrtr_free(struct mrtr *m)
{
    if (m == NULL)
        return;
    if (m->parked) /* the call ends while parked: a late retry finds nothing */
        park_entry_free(park_take(m->token, MRTR_TOKEN_LEN, 0, NULL, NULL, NULL));
    for (unsigned i = 0; i < m->n; i++) {
        json_decref(m->reqs[i].up_id);
        json_decref(m->reqs[i].request);
    }
    free(m);
}

/* limits.mrtr_ttl of the configuration in force. */
static uint32_t mrtr_ttl(void)
{
    pthread_mutex_lock(&gw.lock);
    uint32_t ttl = gw.cfg ? gw.cfg->mrtr_ttl_ms : 60000;
    pthread_mutex_unlock(&gw.lock);
    return ttl;
}

/* (Re)start p's timer with cb after ms; ms 0 stops it. */
static void arm_call_timer(struct pending *p, uv_timer_cb cb, uint32_t ms)
{
    if (p->timer == NULL) {
        if (ms == 0 || (p->timer = malloc(sizeof(*p->timer))) == NULL)
            return;
        uv_timer_init(p->up->home->loop, p->timer);
        p->timer->data = p;
    }
    uv_timer_stop(p->timer);
    if (ms)
        uv_timer_start(p->timer, cb, ms, 0);
}

/* Home thread: the client did not retry within limits.mrtr_ttl. */
static void mrtr_expired_cb(uv_timer_t *t)
{
    struct pending *p = t->data;
    struct park_entry *e = park_take(p->mrtr->token, MRTR_TOKEN_LEN, 0, NULL, NULL, NULL);
    if (e == NULL)
        return; /* a retry took it: its resume is on the way to this thread */
    park_entry_free(e);
    p->mrtr->parked = false;
    log_info("mrtr_expired",
             "server %s: a call waited for a 2026-07-28 client's input longer than "
             "limits.mrtr_ttl; cancelled",
             p->up->srv->name);
    cancel_call(p->up, p, "the client did not retry with the requested input in time");
}

/* Home thread: end client call p with error `err` (stolen) and cancel it upstream; the server's
   request refuse_id (may be NULL) is refused after the cancellation, so that the server cannot
   finish the call first. */
static void mrtr_abandon(struct upstream *up, struct pending *p, json_t *err, const char *reason,
                         json_t *refuse_id, const char *refusal)
{
    stream_push(p->stream, err, true);
    json_decref(err);
    p->cancelling = true;
    /* Deferred: this runs inside the transport's delivery of the server's message. */
    if (post_cancel(up, p->id, reason, refuse_id, refusal) != 0 && refuse_id != NULL)
        answer_server(up, refuse_id, JSONRPC_METHOD_NOT_FOUND, refusal);
}

/* Home thread: answer the client's POST with an InputRequiredResult carrying the requests not
   asked yet, and park the call until the retry (or limits.mrtr_ttl). */
static void mrtr_park(struct upstream *up, struct pending *p)
{
    struct mrtr *m = p->mrtr;
    char token[MRTR_TOKEN_LEN + 4];
    rand_token(token, sizeof(token), MRTR_TOKEN_BYTES);
    int err = park_insert(token, up->index, p->id, p->call_method, p->call_target);
    if (err) {
        char msg[300];
        snprintf(msg, sizeof(msg),
                 "server \"%s\" needs the client's input, but the gateway cannot hold the call: %s",
                 up->srv->name,
                 err == ERR_LIMIT ? "too many calls already wait for a client's input (1024)"
                                  : err_str(err));
        mrtr_abandon(up, p,
                     jsonrpc_error_new(p->client_id, JSONRPC_GATEWAY_LIMIT, msg,
                                       json_pack("{s:s}", "server", up->srv->name)),
                     "the gateway cannot hold the call", NULL, NULL);
        sodium_memzero(token, sizeof(token));
        return;
    }
    json_t *inputs = json_object();
    for (unsigned i = 0; i < m->n; i++) {
        if (!m->reqs[i].asked) {
            json_object_set(inputs, m->reqs[i].key, m->reqs[i].request);
            m->reqs[i].asked = true;
        }
    }
    json_t *res = jsonrpc_result_new(p->client_id,
                                     json_pack("{s:s, s:o, s:s}", "resultType", "input_required",
                                               "inputRequests", inputs, "requestState", token));
    stream_push(p->stream, res, true);
    json_decref(res);
    /* The POST is answered: its end is no longer a cancellation. */
    session_untrack_call(p->session, p->client_id, call_cookie(up->index, p->id));
    stream_unref(p->stream);
    p->stream = NULL;
    m->parked = true;
    memcpy(m->token, token, sizeof(m->token));
    sodium_memzero(token, sizeof(token));
    arm_call_timer(p, mrtr_expired_cb, mrtr_ttl());
}

/* Home thread: server request msg (sampling, elicitation, roots) during 2026-07-28 call p. */
static void mrtr_input_request(struct upstream *up, struct pending *p, json_t *msg)
{
    json_t *id = json_object_get(msg, "id");
    const char *method = jsonrpc_method(msg);
    const char *cap = required_capability(method);
    char m[400];
    if (cap == NULL || p->cancelling) {
        snprintf(m, sizeof(m), "%s: %s", method,
                 cap ? "the client's call is being cancelled"
                     : "the client speaks 2026-07-28, which has no such request");
        answer_server(up, id, JSONRPC_METHOD_NOT_FOUND, m);
        return;
    }
    if (!p->mrtr_ok) {
        snprintf(m, sizeof(m),
                 "the client speaks 2026-07-28: only its tools/call, prompts/get and "
                 "resources/read can carry a request for input, not this call");
        answer_server(up, id, JSONRPC_METHOD_NOT_FOUND, m);
        return;
    }
    if (!session_has_capability(p->session, cap)) {
        char refusal[100];
        snprintf(refusal, sizeof(refusal), "the client did not declare the \"%s\" capability", cap);
        snprintf(m, sizeof(m),
                 "Missing required client capability: %s (server \"%s\" sent %s during this "
                 "call; declare it in _meta io.modelcontextprotocol/clientCapabilities)",
                 cap, up->srv->name, method);
        mrtr_abandon(up, p,
                     jsonrpc_error_new(p->client_id, MCP_ERR_MISSING_CLIENT_CAP, m,
                                       json_pack("{s:{s:{}}, s:s}", "requiredCapabilities", cap,
                                                 "server", up->srv->name)),
                     "the client lacks a capability the server needs", id, refusal);
        return;
    }
    if (p->mrtr == NULL && (p->mrtr = calloc(1, sizeof(*p->mrtr))) == NULL) {
        answer_server(up, id, JSONRPC_INTERNAL_ERROR, "the gateway is out of memory");
        return;
    }
    struct mrtr *mr = p->mrtr;
    if (mr->n >= MRTR_MAX_INPUTS) {
        snprintf(m, sizeof(m), "the call already has %u requests awaiting the client (the limit)",
                 mr->n);
        answer_server(up, id, JSONRPC_GATEWAY_LIMIT, m);
        return;
    }
    json_t *params = json_object_get(msg, "params");
    struct input_request *q = &mr->reqs[mr->n++];
    /* The key is the server's own name for the request (its id, when a string that fits and is
       not in use in this call), else "<capability>-<n>". */
    const char *sid = json_string_value(id);
    bool taken =
        sid == NULL || strlen(sid) >= sizeof(q->key) || strlen(sid) != json_string_length(id);
    for (unsigned i = 0; !taken && i + 1 < mr->n; i++)
        taken = strcmp(mr->reqs[i].key, sid) == 0;
    if (taken)
        snprintf(q->key, sizeof(q->key), "%s-%u", cap, ++mr->next_key);
    else
        snprintf(q->key, sizeof(q->key), "%s", sid);
    q->up_id = json_incref(id);
    q->request = json_pack("{s:s, s:o}", "method", method, "params",
                           json_is_object(params) ? json_deep_copy(params) : json_object());
    q->asked = false;
    /* While parked, a request waits for the retry, which is answered with it. */
    if (!mr->parked)
        mrtr_park(up, p);
}

/* A retry on its way to the call's home thread. */
struct resume {
    struct upstream *up;
    uint64_t call_id;
    struct session *session;
    struct stream *stream;
    json_t *client_id;
    json_t *client_token;
    json_t *responses;
};

static void resume_free(struct resume *rs)
{
    session_unref(rs->session);
    stream_unref(rs->stream);
    json_decref(rs->client_id);
    json_decref(rs->client_token);
    json_decref(rs->responses);
    free(rs);
}

/* Home thread: the retry takes the parked call over; the answers go to the server. */
static void mrtr_resume_cb(void *arg)
{
    struct resume *rs = arg;
    struct upstream *up = rs->up;
    struct pending *p = idmap_get(&up->pending, rs->call_id);
    if (p == NULL || p->cb != NULL || p->answered || p->mrtr == NULL || !p->mrtr->parked) {
        char m[300];
        snprintf(m, sizeof(m), "the call that waited for this input has ended (server \"%s\")",
                 up->srv->name);
        json_t *e = jsonrpc_error_new(rs->client_id, JSONRPC_UPSTREAM_UNAVAILABLE, m,
                                      json_pack("{s:s}", "server", up->srv->name));
        stream_push(rs->stream, e, true);
        json_decref(e);
        session_untrack_call(rs->session, rs->client_id, call_cookie(up->index, rs->call_id));
        resume_free(rs);
        return;
    }
    struct mrtr *m = p->mrtr;
    m->parked = false;
    session_unref(p->session);
    p->session = rs->session;
    p->stream = rs->stream;
    json_decref(p->client_id);
    p->client_id = rs->client_id;
    json_decref(p->client_token);
    p->client_token = rs->client_token;
    rs->session = NULL;
    rs->stream = NULL;
    rs->client_id = rs->client_token = NULL;
    arm_call_timer(p, call_timeout_cb, up->srv->timeouts.total_ms);
    unsigned kept = 0;
    for (unsigned i = 0; i < m->n; i++) {
        struct input_request q = m->reqs[i];
        json_t *answer = q.asked ? json_object_get(rs->responses, q.key) : NULL;
        if (json_is_object(answer)) {
            json_t *reply = jsonrpc_result_new(q.up_id, json_incref(answer));
            transport_send(up->t, reply, NULL);
            json_decref(reply);
            json_decref(q.up_id);
            json_decref(q.request);
            continue;
        }
        q.asked = false; /* not answered: asked again, as the spec wants of a server */
        m->reqs[kept++] = q;
    }
    m->n = kept;
    if (kept > 0)
        mrtr_park(up, p);
    resume_free(rs);
}

/* Worker thread: a 2026-07-28 retry (params.requestState) of `method` on `target` at `server`. */
static void mrtr_resume(struct session *s, int server, json_t *msg, const char *target,
                        struct mcp_reply *r)
{
    json_t *id = json_object_get(msg, "id");
    json_t *params = json_object_get(msg, "params");
    json_t *state = json_object_get(params, "requestState");
    json_t *responses = json_object_get(params, "inputResponses");
    const char *method = jsonrpc_method(msg);
    struct upstream *up = gw.ups[server];
    r->server = up->srv->name;
    if (!json_is_string(state)) {
        reply_error(r, id, JSONRPC_INVALID_PARAMS,
                    "Invalid params: params.requestState must be the string the gateway issued");
        return;
    }
    if (responses != NULL && !json_is_object(responses)) {
        reply_error(r, id, JSONRPC_INVALID_PARAMS,
                    "Invalid params: params.inputResponses must be an object keyed like the "
                    "inputRequests it answers");
        return;
    }
    bool mismatch = false;
    struct park_entry *e = park_take(json_string_value(state), json_string_length(state), server,
                                     method, target, &mismatch);
    if (e == NULL) {
        if (mismatch)
            reply_error(r, id, JSONRPC_INVALID_PARAMS,
                        "Invalid params: params.requestState was issued for another request; "
                        "retry the same %s with the same %s",
                        method, method[0] == 'r' ? "uri" : "name");
        else
            reply_error(r, id, JSONRPC_INVALID_PARAMS,
                        "Invalid params: params.requestState is unknown or expired (the gateway "
                        "holds a call waiting for input for limits.mrtr_ttl, and each state "
                        "serves one retry); send the request again without requestState");
        return;
    }
    uint64_t call_id = e->call_id;
    park_entry_free(e);
    struct resume *rs = calloc(1, sizeof(*rs));
    struct stream *st = stream_new(s);
    if (rs == NULL || st == NULL) {
        free(rs);
        stream_unref(st);
        post_cancel(up, call_id, "the gateway is out of memory", NULL, NULL);
        reply_error(r, id, JSONRPC_INTERNAL_ERROR, "out of memory");
        return;
    }
    json_t *tok = json_object_get(json_object_get(params, "_meta"), "progressToken");
    rs->up = up;
    rs->call_id = call_id;
    rs->session = session_ref(s);
    rs->stream = stream_ref(st);
    rs->client_id = json_incref(id);
    rs->client_token = json_is_string(tok) || json_is_integer(tok) ? json_incref(tok) : NULL;
    rs->responses = responses ? json_deep_copy(responses) : json_object();
    session_track_call(s, id, call_cookie(server, call_id));
    r->stream = st;
    r->status = 200;
    if (mailbox_post(up->home->mb, mrtr_resume_cb, rs) != 0) {
        session_untrack_call(s, id, call_cookie(server, call_id));
        json_t *err = jsonrpc_error_new(id, JSONRPC_UPSTREAM_UNAVAILABLE,
                                        "the gateway is shutting down", NULL);
        stream_push(st, err, true);
        json_decref(err);
        resume_free(rs);
    }
}

/* --- MRTR from a 2026-07-28 server (home thread) --- */

#define MRTR_MAX_ROUNDS 16 /* InputRequiredResults one call may meet */

/* End client call p (answered by the server, or waiting for the legacy client's input) with an
   error naming the server; the caller frees p (pending_maybe_free). */
static void bridge_fail(struct upstream *up, struct pending *p, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void bridge_fail(struct upstream *up, struct pending *p, int code, const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (idmap_get(&up->pending, p->id) == p)
        idmap_del(&up->pending, p->id);
    if (p->answered)
        return;
    p->answered = true;
    json_t *err =
        jsonrpc_error_new(p->client_id, code, msg, json_pack("{s:s}", "server", up->srv->name));
    stream_push(p->stream, err, true);
    json_decref(err);
    call_finished(up);
}

/* The legacy client answered every input request: send the call again, with a new id, the
   answers as inputResponses and the server's requestState exactly as it came. */
static void bridge_retry(struct upstream *up, struct pending *p)
{
    json_t *msg = json_deep_copy(p->call_msg);
    json_t *params = json_object_get(msg, "params");
    if (msg == NULL || !json_is_object(params)) {
        json_decref(msg);
        bridge_fail(up, p, JSONRPC_INTERNAL_ERROR, "out of memory");
        return;
    }
    json_object_set_new(params, "inputResponses", p->answers ? p->answers : json_object());
    p->answers = NULL;
    if (p->up_state != NULL)
        json_object_set(params, "requestState", p->up_state);
    idmap_del(&up->pending, p->id);
    session_untrack_call(p->session, p->client_id, call_cookie(up->index, p->id));
    p->id = draw_id();
    if (p->client_token != NULL) /* progress of the retry reaches the same client token */
        json_object_set_new(json_object_get(params, "_meta"), "progressToken",
                            json_integer((json_int_t)p->id));
    session_track_call(p->session, p->client_id, call_cookie(up->index, p->id));
    int err = send_pending(up, p, msg);
    json_decref(msg);
    if (err)
        bridge_fail(up, p, JSONRPC_UPSTREAM_UNAVAILABLE,
                    "could not send the retry to server \"%s\": %s", up->srv->name, err_str(err));
}

/* An InputRequiredResult for a legacy client: each input request becomes a request on the
   client's call stream, answered through gateway_relay_answer_cb (the tracked "server id" is
   {"gatehouse/call": id, "key": key}, which no server id can be). */
static void bridge_ask(struct upstream *up, struct pending *p, json_t *result)
{
    json_t *reqs = json_object_get(result, "inputRequests");
    json_t *state = json_object_get(result, "requestState");
    const char *key;
    json_t *q;
    if (p->call_msg == NULL) {
        bridge_fail(up, p, JSONRPC_INTERNAL_ERROR,
                    "server \"%s\" answered with input_required a request that cannot carry it "
                    "(only tools/call, prompts/get and resources/read can)",
                    up->srv->name);
        return;
    }
    if (++p->rounds > MRTR_MAX_ROUNDS) {
        bridge_fail(up, p, JSONRPC_INTERNAL_ERROR,
                    "server \"%s\" asked for the client's input more than %d times in one call",
                    up->srv->name, MRTR_MAX_ROUNDS);
        return;
    }
    if ((reqs != NULL && !json_is_object(reqs)) || (state != NULL && !json_is_string(state)) ||
        (reqs == NULL && state == NULL) || json_object_size(reqs) > MRTR_MAX_INPUTS) {
        bridge_fail(up, p, JSONRPC_INTERNAL_ERROR,
                    "server \"%s\" sent an InputRequiredResult the gateway cannot use "
                    "(inputRequests must be an object of at most %d requests, requestState a "
                    "string, and one of them present)",
                    up->srv->name, MRTR_MAX_INPUTS);
        return;
    }
    json_object_foreach(reqs, key, q)
    {
        const char *method = json_string_value(json_object_get(q, "method"));
        const char *cap = method ? required_capability(method) : NULL;
        if (cap == NULL) {
            bridge_fail(up, p, JSONRPC_INTERNAL_ERROR,
                        "server \"%s\" asked for input \"%.64s\" with method %.64s, which is not "
                        "sampling/createMessage, elicitation/create or roots/list",
                        up->srv->name, key, method ? method : "(none)");
            return;
        }
        if (!session_has_capability(p->session, cap)) {
            bridge_fail(up, p, MCP_ERR_MISSING_CLIENT_CAP,
                        "server \"%s\" needs %s from the client, which did not declare the "
                        "\"%s\" capability",
                        up->srv->name, method, cap);
            return;
        }
    }
    json_decref(p->answers);
    p->answers = json_object();
    json_decref(p->up_state);
    p->up_state = state ? json_incref(state) : NULL;
    p->waiting = 0;
    json_object_foreach(reqs, key, q)
    {
        uint64_t down_id = session_next_request_id(p->session);
        json_t *tag = json_pack("{s:I, s:s}", "gatehouse/call", (json_int_t)p->id, "key", key);
        int err = tag ? session_track_request(p->session, down_id, up, tag) : ERR_NOMEM;
        json_decref(tag);
        if (err) {
            bridge_fail(up, p, JSONRPC_INTERNAL_ERROR, "the client session is closed");
            return;
        }
        json_t *params = json_object_get(q, "params");
        json_t *jid = json_integer((json_int_t)down_id);
        json_t *req =
            jsonrpc_request_new(jid, json_string_value(json_object_get(q, "method")),
                                json_is_object(params) ? json_deep_copy(params) : json_object());
        json_decref(jid);
        stream_push(p->stream, req, false);
        json_decref(req);
        p->waiting++;
    }
    if (p->waiting == 0)
        bridge_retry(up, p); /* only a requestState: the server wants the call again at once */
}

/* A legacy client's answer msg to a bridged input request (its id is the tag of bridge_ask). */
static void bridge_answer(struct upstream *up, json_t *msg)
{
    json_t *tag = json_object_get(msg, "id");
    json_t *jcall = json_object_get(tag, "gatehouse/call");
    const char *key = json_string_value(json_object_get(tag, "key"));
    struct pending *p = json_is_integer(jcall)
                            ? idmap_get(&up->pending, (uint64_t)json_integer_value(jcall))
                            : NULL;
    if (p == NULL || p->cb != NULL || p->answered || p->answers == NULL || key == NULL ||
        json_object_get(p->answers, key) != NULL)
        return; /* the call ended meanwhile, or a duplicate */
    json_t *result = json_object_get(msg, "result");
    if (!json_is_object(result)) {
        json_t *e = json_object_get(msg, "error");
        json_t *code = json_object_get(e, "code");
        const char *m = json_string_value(json_object_get(e, "message"));
        bridge_fail(up, p, json_is_integer(code) ? (int)json_integer_value(code) : -32603,
                    "the client could not answer server \"%s\"'s request for input \"%.64s\": "
                    "%.300s",
                    up->srv->name, key, m ? m : "(no message)");
        pending_maybe_free(p);
        return;
    }
    json_object_set(p->answers, key, result);
    if (--p->waiting == 0) {
        bridge_retry(up, p);
        pending_maybe_free(p); /* when the retry could not be sent */
    }
}

/* Home thread: a 2026-07-28 server answered client call p with msg. When it is an
   InputRequiredResult, a modern client gets it with the server's requestState sealed to this
   call, and a legacy client is asked the server's questions (bridge_ask). Returns false when msg
   is any other answer, for the caller to deliver. */
static bool input_required(struct upstream *up, struct pending *p, json_t *msg)
{
    json_t *result = json_object_get(msg, "result");
    const char *rt = json_string_value(json_object_get(result, "resultType"));
    if (!atomic_load(&up->modern) || rt == NULL || strcmp(rt, "input_required") != 0)
        return false;
    if (p->exchange_open) { /* HTTP: this answer ends the server's side of the exchange */
        transport_cancel(up->t, p);
        p->exchange_open = false;
    }
    p->answered = false; /* until the client has it, or the call goes on with its answers */
    if (session_transient(p->session)) {
        json_t *state = json_object_get(result, "requestState");
        char *sealed = NULL;
        if (state != NULL &&
            (!p->mrtr_ok ||
             (sealed = mcp_era_seal_state(up->srv->name, p->call_method, p->call_target,
                                          session_owner(p->session), state, mrtr_ttl())) == NULL)) {
            bridge_fail(up, p, JSONRPC_INTERNAL_ERROR,
                        "server \"%s\" sent a requestState the gateway cannot pass on (not a "
                        "tools/call, prompts/get or resources/read, or over 64 KiB)",
                        up->srv->name);
            return true;
        }
        json_t *copy = json_deep_copy(msg);
        if (sealed != NULL)
            json_object_set_new(json_object_get(copy, "result"), "requestState",
                                json_string(sealed));
        free(sealed);
        p->answered = true;
        answer_client(p, copy);
        json_decref(copy);
        call_finished(up);
        return true;
    }
    if (idmap_put(&up->pending, p->id, p) != 0) {
        bridge_fail(up, p, JSONRPC_INTERNAL_ERROR, "out of memory");
        return true;
    }
    bridge_ask(up, p, result);
    return true;
}

/* Count a request the server sent to a client, by what became of it, in
   gatehouse_server_requests_total{server, method, outcome}. The method label is one MCP defines
   for that direction or "(other)": a label never takes a value the server chooses. */
static void count_server_request(struct upstream *up, const char *method, const char *outcome)
{
    static const char *const names[] = {"server", "method", "outcome"};
    static const char *const known[] = {"ping", "roots/list", "sampling/createMessage",
                                        "elicitation/create"};
    const char *label = "(other)";
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (strcmp(method, known[i]) == 0)
            label = known[i];
    struct metric *m = metrics_counter(
        "gatehouse_server_requests_total",
        "Requests servers sent to clients, by server, method and what the gateway did with them "
        "(relayed, answered by the gateway, refused, unanswered when the answer could not be sent)",
        3, names);
    const char *values[] = {up->srv->name, label, outcome};
    metrics_inc(m, values, 1);
}

/* Answer the server's request `id` (code 0: an empty result) and count it under `outcome`; an
   answer that cannot be sent is logged and counted "unanswered", never lost without a trace. */
static void answer_server_request(struct upstream *up, json_t *id, const char *method, int code,
                                  const char *message, const char *outcome)
{
    json_t *r =
        code ? jsonrpc_error_new(id, code, message, NULL) : jsonrpc_result_new(id, json_object());
    int err = r ? transport_send(up->t, r, NULL) : ERR_NOMEM;
    json_decref(r);
    if (err) {
        log_warn("server_request_unanswered",
                 "server %s sent %s, which the gateway could not answer: %s", up->srv->name, method,
                 err_str(err));
        outcome = "unanswered";
    }
    count_server_request(up, method, outcome);
}

static void server_request(struct upstream *up, json_t *msg, void *related)
{
    json_t *id = json_object_get(msg, "id");
    const char *method = jsonrpc_method(msg);
    if (strcmp(method, "ping") == 0) {
        answer_server_request(up, id, method, 0, NULL, "answered");
        return;
    }
    struct pending *call = related_call(up, related);
    if (call == NULL && strcmp(method, "roots/list") == 0) {
        /* Outside a client's call (a server asks at start, after initialized), the roots are the
           gateway's own: it has none to offer. Declared roots must be answered (2025-11-25,
           client/roots); an empty list is the true answer. */
        json_t *r = jsonrpc_result_new(id, json_pack("{s:[]}", "roots"));
        int err = transport_send(up->t, r, NULL);
        json_decref(r);
        if (err)
            log_warn("server_request_unanswered",
                     "server %s sent %s, which the gateway could not answer: %s", up->srv->name,
                     method, err_str(err));
        count_server_request(up, method, err ? "unanswered" : "answered");
        return;
    }
    if (call == NULL) {
        answer_server_request(
            up, id, method, JSONRPC_INTERNAL_ERROR,
            "the gateway has no client request in flight to relay this request to", "refused");
        return;
    }
    if (session_transient(call->session)) {
        /* The 2026-07-28 carrier for this is an InputRequiredResult (MRTR) on the client's
           call, answered by a retry. */
        count_server_request(up, method, "relayed");
        mrtr_input_request(up, call, msg);
        return;
    }
    const char *cap = required_capability(method);
    if (cap != NULL && !session_has_capability(call->session, cap)) {
        char m[200];
        snprintf(m, sizeof(m), "the client did not declare the \"%s\" capability", cap);
        answer_server_request(up, id, method, JSONRPC_METHOD_NOT_FOUND, m, "refused");
        return;
    }
    uint64_t down_id = session_next_request_id(call->session);
    if (session_track_request(call->session, down_id, up, id) != 0) {
        answer_server_request(up, id, method, JSONRPC_INTERNAL_ERROR,
                              "the client session is closed", "refused");
        return;
    }
    json_t *copy = json_copy(msg);
    json_object_set_new(copy, "id", json_integer((json_int_t)down_id));
    stream_push(call->stream, copy, false);
    json_decref(copy);
    count_server_request(up, method, "relayed");
}

/* Home thread: the client of a stream is resuming reading; read call `id`'s exchange again. */
struct backpressure {
    struct upstream *up;
    uint64_t id;
};

static void resume_reading_cb(void *arg)
{
    struct backpressure *bp = arg;
    struct pending *p = idmap_get(&bp->up->pending, bp->id);
    if (p != NULL && p->paused) {
        p->paused = false;
        if (bp->up->t != NULL)
            transport_resume(bp->up->t, p);
    }
    free(bp);
}

/* Home thread, after pushing a message of call p: when its client has fallen behind, stop
   reading what carries p's messages until the client catches up (or leaves), rather than fill
   the stream's buffer and drop notifications. Over HTTP that is p's own exchange (only a message
   that came on it counts); over stdio the one pipe of every call. */
static void apply_backpressure(struct upstream *up, struct pending *p, void *related)
{
    bool stdio = up->srv->transport == TRANSPORT_STDIO;
    if (p == NULL || p->paused || up->t == NULL || !stream_backlogged(p->stream))
        return;
    if (stdio ? related != NULL : (p != related || !p->exchange_open))
        return;
    struct backpressure *bp = malloc(sizeof(*bp));
    if (bp == NULL)
        return;
    bp->up = up;
    bp->id = p->id;
    p->paused = true;
    transport_pause(up->t, p);
    if (stream_on_drain(p->stream, up->home->mb, resume_reading_cb, bp) != 0) {
        free(bp);
        p->paused = false;
        transport_resume(up->t, p);
    }
}

static void server_notification(struct upstream *up, json_t *msg, void *related)
{
    const char *method = jsonrpc_method(msg);
    json_t *params = json_object_get(msg, "params");
    if (strcmp(method, "notifications/progress") == 0) {
        json_t *tok = json_object_get(params, "progressToken");
        struct pending *p = json_is_integer(tok)
                                ? idmap_get(&up->pending, (uint64_t)json_integer_value(tok))
                                : NULL;
        if (p == NULL || p->cb || p->client_token == NULL)
            return;
        json_t *copy = json_deep_copy(msg);
        json_object_set(json_object_get(copy, "params"), "progressToken", p->client_token);
        stream_push(p->stream, copy, false);
        json_decref(copy);
        apply_backpressure(up, p, related);
        return;
    }
    for (int k = 0; k < CAT_NKINDS; k++) {
        if (changed_methods[k] && strcmp(method, changed_methods[k]) == 0) {
            /* Clients hear of it once the new catalog is published, so that a client listing again
               at once sees the change. */
            up->announce |= 1u << k;
            if (up->state == UP_READY && up->fetches_left == 0)
                refresh_lists(up, k);
            return;
        }
    }
    if (strcmp(method, "notifications/resources/updated") == 0) {
        broadcast(up->index, msg, json_string_value(json_object_get(params, "uri")));
        return;
    }
    if (strcmp(method, "notifications/subscriptions/acknowledged") == 0) {
        up->listen_failures = 0;
        return;
    }
    if (strcmp(method, "notifications/message") == 0) {
        struct pending *call = related_call(up, related);
        if (call && session_transient(call->session)) {
            /* 2026-07-28: only at or above the request's _meta logLevel; none without one. */
            int min = session_log_level(call->session);
            int level = mcp_log_level_rank(json_string_value(json_object_get(params, "level")));
            if (min >= 0 && level >= min)
                stream_push(call->stream, msg, false);
        } else if (call)
            stream_push(call->stream, msg, false);
        else
            broadcast(up->index, msg, NULL);
        apply_backpressure(up, call, related);
        return;
    }
    log_debug("upstream_notification", "server %s sent %s; not relayed", up->srv->name, method);
}

static void message_cb(void *owner, json_t *msg, void *related)
{
    struct upstream *up = owner;
    enum jsonrpc_kind kind;
    struct err_info ei = {0};
    if (up->closing)
        return;
    if (jsonrpc_classify(msg, &kind, &ei) != 0) {
        log_warn("upstream_protocol", "server %s sent an invalid message: %s", up->srv->name,
                 ei.msg);
        return;
    }
    if (kind == JSONRPC_REQUEST) {
        server_request(up, msg, related);
        return;
    }
    if (kind == JSONRPC_NOTIFICATION) {
        server_notification(up, msg, related);
        return;
    }
    json_t *id = json_object_get(msg, "id");
    struct pending *p =
        json_is_integer(id) ? idmap_get(&up->pending, (uint64_t)json_integer_value(id)) : NULL;
    if (p != NULL && related != NULL && related != p) {
        /* Over HTTP a POST's response stream belongs to the one request it carried: an answer
           to another request there (whose id the server knows: it is one of its sessions'
           calls, maybe another user's) is not that request's answer. The request keeps
           waiting for its own. */
        const struct pending *carrier = related;
        log_warn("upstream_crossed_answer",
                 "server %s answered request %" PRIu64 " on the exchange of request %" PRIu64
                 "; dropped: an answer is accepted only on the exchange that carried its request",
                 up->srv->name, p->id, carrier->id);
        return;
    }
    if (p != NULL)
        idmap_del(&up->pending, p->id);
    if (p == NULL) {
        log_debug("upstream_protocol", "server %s answered an unknown id", up->srv->name);
        return;
    }
    p->answered = true;
    const char *rule = NULL;
    if (json_object_get(msg, "error") != NULL && !atomic_load(&up->modern) &&
        up->state == UP_READY && (rule = dead_session_rule(msg)) != NULL) {
        char why[400];
        snprintf(why, sizeof(why), "its error \"%.200s\" matched the rule \"%s\"",
                 json_string_value(json_object_get(json_object_get(msg, "error"), "message")),
                 rule);
        if (p->cb == NULL && hold_call(up, p, true)) {
            begin_recovery(up, why);
            return;
        }
        begin_recovery(up, why);
    }
    if (p->cb) {
        p->cb(up, msg, 0, NULL, p->arg);
    } else if (!input_required(up, p, msg)) {
        answer_client(p, msg);
        call_finished(up);
    }
    pending_maybe_free(p);
}

/*
 * A server sent something that cannot be read. The call it answers must fail now, naming the
 * cause, rather than wait for timeouts.total. Which call: the exchange that carried it (HTTP: a
 * POST's response belongs to exactly one call), else the call whose id the bytes carry at their
 * top level (stdio: one line is one message). A line with no id is not taken for anyone's answer:
 * servers also write banners and log lines to stdout, and failing the one call in flight for
 * those would break calls that are about to be answered.
 */
static void bad_message_cb(void *owner, void *related, long long id, const char *why)
{
    struct upstream *up = owner;
    if (up->closing)
        return;
    struct pending *p = related;
    if (p == NULL || p->answered)
        p = id >= 0 ? idmap_get(&up->pending, (uint64_t)id) : NULL;
    if (p == NULL || p->answered)
        return;
    fail_pending(p, JSONRPC_UPSTREAM_UNAVAILABLE,
                 "server \"%s\" sent an answer that cannot be read: %s", up->srv->name, why);
    pending_maybe_free(p);
}

static void start_upstream_cb(void *arg)
{
    struct upstream *up = arg;
    static const struct transport_cbs cbs_template = {NULL, message_cb, done_cb, state_cb,
                                                      bad_message_cb};
    struct transport_cbs cbs = cbs_template;
    cbs.owner = up;
    uv_timer_init(up->home->loop, &up->retry_timer);
    up->retry_timer.data = up;
    uv_timer_init(up->home->loop, &up->listen_timer);
    up->listen_timer.data = up;
    up->t = transport_new(up->home->loop, up->srv, &cbs);
    if (up->t == NULL) {
        set_state(up, UP_FAILED, "could not create the transport (out of memory)");
        return;
    }
    if (up->srv->transport == TRANSPORT_HTTP)
        begin_init(up);
}

/* Main thread: a new upstream for srv (inside cfg), published in the table but not started. */
static struct upstream *add_upstream(struct config *cfg, const struct config_server *srv)
{
    size_t n = atomic_load(&gw.nups);
    if (n >= GW_MAX_SERVERS)
        return NULL;
    struct upstream *up = calloc(1, sizeof(*up));
    if (up == NULL)
        return NULL;
    up->index = (int)n;
    up->srv = srv;
    up->cfg = config_ref(cfg);
    up->home = gw.workers[n % gw.nworkers];
    up->pub_state = UP_STARTING;
    idmap_init(&up->pending);
    up->caps = json_object();
    snprintf(up->why, sizeof(up->why), "starting");
    pthread_mutex_lock(&gw.lock);
    gw.ups[n] = up;
    atomic_store(&gw.nups, n + 1); /* after the entry is complete: readers index below nups */
    pthread_mutex_unlock(&gw.lock);
    return up;
}

int gateway_start(struct config *cfg, struct mcp_worker **workers, unsigned nworkers)
{
    gw.cfg = config_ref(cfg);
    gw.workers = workers;
    gw.nworkers = nworkers;
    session_table_set_store(cfg->store.sqlite); /* ended sessions outlive a restart */
    struct upstream *fresh[GW_MAX_SERVERS];
    size_t nfresh = 0;
    for (size_t i = 0; i < cfg->nservers && nfresh < GW_MAX_SERVERS; i++)
        if ((fresh[nfresh] = add_upstream(cfg, &cfg->servers[i])) != NULL)
            nfresh++;
        else
            return ERR_NOMEM;
    pthread_mutex_lock(&gw.lock);
    struct err_info ei = {0};
    int err = rebuild_locked(0, &ei); /* an empty catalog until servers are ready */
    pthread_mutex_unlock(&gw.lock);
    if (err)
        return err;
    for (size_t i = 0; i < nfresh; i++)
        if ((err = mailbox_post(fresh[i]->home->mb, start_upstream_cb, fresh[i])) != 0)
            return err;
    return 0;
}

static bool str_eq(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

static bool kv_eq(const struct config_kv *a, size_t na, const struct config_kv *b, size_t nb)
{
    if (na != nb)
        return false;
    for (size_t i = 0; i < na; i++)
        if (!str_eq(a[i].key, b[i].key) || !str_eq(a[i].value, b[i].value))
            return false;
    return true;
}

/* Would a server configured as b behave exactly like the running a? */
static bool server_unchanged(const struct config_server *a, const struct config_server *b)
{
    if (!str_eq(a->name, b->name) || a->transport != b->transport ||
        !str_eq(a->command, b->command) || a->nargs != b->nargs || !str_eq(a->cwd, b->cwd) ||
        !str_eq(a->url, b->url) || !str_eq(a->spec, b->spec) ||
        !str_eq(a->overrides, b->overrides) || !str_eq(a->base_url, b->base_url) ||
        a->discovery != b->discovery || a->discovery_auto != b->discovery_auto ||
        !kv_eq(a->env, a->nenv, b->env, b->nenv) ||
        !kv_eq(a->headers, a->nheaders, b->headers, b->nheaders) ||
        memcmp(&a->timeouts, &b->timeouts, sizeof(a->timeouts)) != 0 ||
        a->restart_initial_ms != b->restart_initial_ms || a->restart_max_ms != b->restart_max_ms ||
        a->max_concurrency != b->max_concurrency || a->max_queue != b->max_queue ||
        a->max_message != b->max_message || a->prefix != b->prefix || a->protocol != b->protocol)
        return false;
    for (size_t i = 0; i < a->nargs; i++)
        if (!str_eq(a->args[i], b->args[i]))
            return false;
    if (a->noverlays != b->noverlays)
        return false;
    for (size_t i = 0; i < a->noverlays; i++)
        if (!str_eq(a->overlays[i], b->overlays[i]))
            return false;
    return true;
}

static void stop_upstream_cb(void *arg);

int gateway_reload(struct config *cfg, struct err_info *ei)
{
    size_t n = atomic_load(&gw.nups);
    struct upstream *keep[GW_MAX_SERVERS] = {0}; /* per new server: the running one it keeps */
    bool stays[GW_MAX_SERVERS] = {0};
    size_t added = 0, retired = 0;
    for (size_t j = 0; j < cfg->nservers; j++)
        for (size_t i = 0; i < n; i++) {
            struct upstream *up = gw.ups[i];
            if (!up->retired && server_unchanged(up->srv, &cfg->servers[j])) {
                keep[j] = up;
                stays[i] = true;
                break;
            }
        }
    size_t need = 0;
    for (size_t j = 0; j < cfg->nservers; j++)
        need += keep[j] == NULL;
    if (n + need > GW_MAX_SERVERS)
        return err_info_set(
            ei, ERR_LIMIT, 0, 0,
            "this reload would take the gateway past %d servers over its life; restart it instead",
            GW_MAX_SERVERS);
    /* Retire what is gone or changed: its calls in flight get an error naming it. */
    for (size_t i = 0; i < n; i++) {
        struct upstream *up = gw.ups[i];
        if (up->retired || stays[i])
            continue;
        pthread_mutex_lock(&gw.lock);
        up->retired = true;
        pthread_mutex_unlock(&gw.lock);
        mailbox_post(up->home->mb, stop_upstream_cb, up);
        retired++;
    }
    struct upstream *fresh[GW_MAX_SERVERS];
    for (size_t j = 0; j < cfg->nservers; j++)
        if (keep[j] == NULL && (fresh[added] = add_upstream(cfg, &cfg->servers[j])) != NULL) {
            /* Clients hear of its tools once they are fetched (see fetch_finished). */
            fresh[added]->announce =
                (1u << CAT_TOOLS) | (1u << CAT_PROMPTS) | (1u << CAT_RESOURCES);
            added++;
        }
    pthread_mutex_lock(&gw.lock);
    struct config *old = gw.cfg;
    gw.cfg = config_ref(cfg);
    int err = rebuild_locked(0, ei);
    pthread_mutex_unlock(&gw.lock);
    config_unref(old);
    for (size_t i = 0; i < added; i++)
        mailbox_post(fresh[i]->home->mb, start_upstream_cb, fresh[i]);
    if (retired > 0) { /* what they offered is gone from the catalog already */
        for (int k = 0; k < CAT_NKINDS; k++) {
            if (changed_methods[k] == NULL)
                continue;
            json_t *note = jsonrpc_notification_new(changed_methods[k], NULL);
            broadcast(-1, note, NULL);
            json_decref(note);
        }
    }
    log_info("reload_servers", "servers: %zu kept, %zu started, %zu stopped", cfg->nservers - added,
             added, retired);
    return err;
}

static bool all_settled_locked(void)
{
    for (size_t i = 0; i < atomic_load(&gw.nups); i++) {
        enum up_state st = gw.ups[i]->pub_state;
        if (gw.ups[i]->retired)
            continue;
        if (st == UP_STARTING || st == UP_INITIALIZING)
            return false;
    }
    return true;
}

int gateway_wait_ready(uint32_t timeout_ms, struct err_info *ei)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&gw.lock);
    while (!all_settled_locked())
        if (pthread_cond_timedwait(&gw.cond, &gw.lock, &deadline) != 0)
            break;
    int err = rebuild_locked(1, ei);
    pthread_mutex_unlock(&gw.lock);
    return err == ERR_EXISTS ? err : 0;
}

static void stop_upstream_cb(void *arg)
{
    struct upstream *up = arg;
    if (up->closing) { /* retired by a reload, and now the gateway stops: already done */
        pthread_mutex_lock(&gw.lock);
        pthread_cond_broadcast(&gw.cond);
        pthread_mutex_unlock(&gw.lock);
        return;
    }
    up->closing = true;
    fail_all(up, "the gateway is shutting down");
    if (up->t) {
        transport_close(up->t);
        up->t = NULL;
    }
    uv_close((uv_handle_t *)&up->retry_timer, NULL);
    uv_close((uv_handle_t *)&up->listen_timer, NULL);
    for (int k = 0; k < CAT_NKINDS; k++) {
        json_decref(up->fetching[k]);
        up->fetching[k] = NULL;
    }
    pthread_mutex_lock(&gw.lock);
    up->pub_state = UP_STOPPED;
    snprintf(up->why, sizeof(up->why), "%s",
             up->retired ? "removed by a reload" : "the gateway is stopping");
    pthread_cond_broadcast(&gw.cond);
    pthread_mutex_unlock(&gw.lock);
    log_info("upstream_stopped", "server %s stopped (%s)", up->srv->name, up->why);
}

void gateway_stop(void)
{
    size_t n = atomic_load(&gw.nups);
    for (size_t i = 0; i < n; i++)
        mailbox_post(gw.ups[i]->home->mb, stop_upstream_cb, gw.ups[i]);
    /* Wait (bounded) until every home loop has run its stop. */
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 5;
    pthread_mutex_lock(&gw.lock);
    for (;;) {
        bool all = true;
        for (size_t i = 0; i < n; i++)
            all = all && gw.ups[i]->pub_state == UP_STOPPED;
        if (all || pthread_cond_timedwait(&gw.cond, &gw.lock, &deadline) != 0)
            break;
    }
    pthread_mutex_unlock(&gw.lock);
}

void gateway_free(void)
{
    session_table_close_store();
    size_t n = atomic_load(&gw.nups);
    for (size_t i = 0; i < n; i++) {
        struct upstream *up = gw.ups[i];
        for (int k = 0; k < CAT_NKINDS; k++)
            json_decref(up->lists[k]);
        json_decref(up->caps);
        json_decref(up->pub_caps);
        json_decref(up->listen_subs);
        idmap_release(&up->pending);
        config_unref(up->cfg);
        free(up);
        gw.ups[i] = NULL;
    }
    atomic_store(&gw.nups, 0);
    catalog_unref(gw.catalog);
    gw.catalog = NULL;
    gw.workers = NULL;
    gw.nworkers = 0;
    config_unref(gw.cfg);
    gw.cfg = NULL;
}

bool gateway_ready(void)
{
    pthread_mutex_lock(&gw.lock);
    bool ready = true;
    for (size_t i = 0; i < atomic_load(&gw.nups); i++)
        ready = ready && (gw.ups[i]->retired || gw.ups[i]->pub_state == UP_READY);
    pthread_mutex_unlock(&gw.lock);
    return ready;
}

json_t *gateway_status(void)
{
    json_t *servers = json_object();
    json_t *saturated_list = json_array();
    bool ready = true;
    pthread_mutex_lock(&gw.lock);
    for (size_t i = 0; i < atomic_load(&gw.nups); i++) {
        struct upstream *up = gw.ups[i];
        if (up->retired)
            continue;
        ready = ready && up->pub_state == UP_READY;
        json_t *s =
            json_pack("{s:s, s:s, s:s}", "state", up_state_names[up->pub_state], "transport",
                      config_transport_str(up->srv->transport), "why", up->why);
        json_object_set_new(
            s, "tools",
            json_integer((json_int_t)catalog_count_in_mode(up->lists[CAT_TOOLS], up_mode(up))));
        json_object_set_new(s, "restarts", json_integer(up->restarts));
        /* Saturated: every place is taken, so a new call waits (or is refused when the queue
           is full) instead of being sent. Not ready, so a load balancer sends calls elsewhere. */
        unsigned inflight = atomic_load(&up->inflight), queued = atomic_load(&up->queued);
        bool saturated = up->pub_state == UP_READY && inflight >= up->srv->max_concurrency;
        json_object_set_new(s, "inflight", json_integer(inflight));
        json_object_set_new(s, "queued", json_integer(queued));
        json_object_set_new(s, "max_concurrency", json_integer(up->srv->max_concurrency));
        json_object_set_new(s, "saturated", json_boolean(saturated));
        if (saturated) {
            ready = false;
            json_array_append_new(saturated_list, json_string(up->srv->name));
        }
        if (up->protocol[0] && up->pub_state == UP_READY)
            json_object_set_new(s, "protocol", json_string(up->protocol));
        json_object_set_new(servers, up->srv->name, s);
    }
    pthread_mutex_unlock(&gw.lock);
    return json_pack("{s:b, s:o, s:o}", "ready", ready, "saturated", saturated_list, "servers",
                     servers);
}

int gateway_find_server(const char *name)
{
    for (size_t i = atomic_load(&gw.nups); i-- > 0;) /* newest first: a reload's replacement */
        if (!gw.ups[i]->retired && strcmp(gw.ups[i]->srv->name, name) == 0)
            return (int)i;
    return -1;
}

const char *gateway_server_name(int index)
{
    return index >= 0 && (size_t)index < atomic_load(&gw.nups) ? gw.ups[index]->srv->name : NULL;
}

/* --- downstream dispatch (worker thread) --- */

static unsigned queue_limit(const struct upstream *up)
{
    return 4 * up->srv->max_concurrency;
}

/* Take f out of up's queue of calls waiting for a place; prev is the entry before it or NULL. */
static void unqueue(struct upstream *up, struct forward *prev, struct forward *f)
{
    if (prev != NULL)
        prev->next = f->next;
    else
        up->queue_head = f->next;
    if (up->queue_tail == f)
        up->queue_tail = prev;
    f->next = NULL;
    up->queued--;
}

/* Answer a call taken out of the queue, never sent, with `why`, and free it. */
static void drop_queued(struct upstream *up, struct forward *f, const char *why)
{
    struct pending *p = f->p;
    log_info("call_dropped", "a call to server %s was not sent: %s", up->srv->name, why);
    char m[400];
    snprintf(m, sizeof(m), "the call was not sent to server \"%s\": %s", up->srv->name, why);
    json_t *err = jsonrpc_error_new(p->client_id, JSONRPC_GATEWAY_LIMIT, m,
                                    json_pack("{s:s}", "server", up->srv->name));
    stream_push(p->stream, err, true); /* for a client that resumes the stream */
    json_decref(err);
    p->answered = true;
    p->up = up;
    pending_free(p);
    json_decref(f->msg);
    free(f);
}

/* A client call left the server (answered, failed, cancelled): let a waiting one in. A waiting
   call whose client went away (its connection closed and was not resumed, its session ended) is
   not sent: a server saturated by calls nobody waits for would stay saturated for everyone. */
static void call_finished(struct upstream *up)
{
    if (up->inflight > 0)
        up->inflight--;
    while (up->queue_head != NULL && up->inflight < up->srv->max_concurrency) {
        struct forward *f = up->queue_head;
        unqueue(up, NULL, f);
        if (stream_abandoned(f->p->stream)) {
            char why[160];
            snprintf(why, sizeof(why),
                     "its client went away while it waited for a place (max_concurrency %u)",
                     up->srv->max_concurrency);
            drop_queued(up, f, why);
            continue;
        }
        forward_cb(f);
    }
}

/* Home thread: make client call p (msg) one a 2026-07-28 server takes: per-request _meta with
   the capabilities the client declared (the gateway bridges them) and, for a modern client, its
   logLevel. resources/subscribe and unsubscribe, which that revision does not have, are answered
   here (the gateway's own record routes notifications/resources/updated). Returns false when p
   was answered (and freed). */
static bool modern_call(struct upstream *up, struct pending *p, json_t *msg)
{
    const char *method = jsonrpc_method(msg);
    if (strncmp(method, "resources/", 10) == 0 &&
        (strcmp(method + 10, "subscribe") == 0 || strcmp(method + 10, "unsubscribe") == 0)) {
        /* The session's record is already updated: the listen filter follows it. */
        relisten(up);
        json_t *res = jsonrpc_result_new(p->client_id, json_object());
        stream_push(p->stream, res, true);
        json_decref(res);
        p->answered = true;
        pending_free(p);
        return false;
    }
    json_t *caps = relay_capabilities(p->session);
    int rank = session_log_level(p->session); /* a legacy client's: its logging/setLevel */
    int err = mcp_era_add_meta(msg, caps, rank);
    json_decref(caps);
    if (err == 0 && !session_transient(p->session) && p->call_msg == NULL &&
        (strcmp(method, "tools/call") == 0 || strcmp(method, "prompts/get") == 0 ||
         strcmp(method, "resources/read") == 0))
        p->call_msg = json_deep_copy(msg); /* an InputRequiredResult is retried from it */
    return true;
}

static void forward_cb(void *arg)
{
    struct forward *f = arg;
    struct upstream *up = f->up;
    struct pending *p = f->p;
    p->up = up;
    if (up->state != UP_READY && up->recovering && p->sent == NULL)
        p->sent = json_incref(f->msg);
    if (up->state != UP_READY && up->recovering && hold_call(up, p, false))
        goto out; /* sent once the session is back */
    if (up->state != UP_READY || up->t == NULL) {
        p->answered = true;
        char m[800];
        if (up->gave_up)
            snprintf(m, sizeof(m), "server \"%s\" is not available: %s", up->srv->name, up->why);
        else
            snprintf(m, sizeof(m), "server \"%s\" is not available (%s)", up->srv->name,
                     up_state_names[up->state]);
        if (up->gave_up && up->state == UP_FAILED && up->t != NULL &&
            transport_state(up->t) != TRANSPORT_STOPPED) {
            up->gave_up = false; /* a new, bounded round, started by demand rather than a loop */
            begin_recovery(up, "a client called it after recovery had given up");
        }
        json_t *err = jsonrpc_error_new(p->client_id, JSONRPC_UPSTREAM_UNAVAILABLE, m,
                                        json_pack("{s:s}", "server", up->srv->name));
        stream_push(p->stream, err, true);
        json_decref(err);
        pending_free(p);
        goto out;
    }
    if (up->inflight >= up->srv->max_concurrency) {
        /* Wait for a place, in order; the queue is bounded so that a stuck server cannot make
           the gateway hold requests without limit. */
        if (up->queued >= queue_limit(up)) {
            char m[300];
            snprintf(
                m, sizeof(m),
                "server \"%s\" has %u requests in flight and %u waiting (max_concurrency %u); try again later",
                up->srv->name, up->inflight, up->queued, up->srv->max_concurrency);
            json_t *err = jsonrpc_error_new(p->client_id, JSONRPC_GATEWAY_LIMIT, m,
                                            json_pack("{s:s}", "server", up->srv->name));
            stream_push(p->stream, err, true);
            json_decref(err);
            p->answered = true;
            pending_free(p);
            goto out;
        }
        /* timeouts.total counts from the call's arrival, so its timer runs while it waits
           (send_pending keeps a running timer). */
        if (p->cb == NULL && p->timer == NULL && up->srv->timeouts.total_ms &&
            (p->timer = malloc(sizeof(*p->timer))) != NULL) {
            uv_timer_init(up->home->loop, p->timer);
            p->timer->data = p;
            uv_timer_start(p->timer, call_timeout_cb, up->srv->timeouts.total_ms, 0);
        }
        f->next = NULL;
        if (up->queue_tail)
            up->queue_tail->next = f;
        else
            up->queue_head = f;
        up->queue_tail = f;
        up->queued++;
        return; /* f is owned by the queue */
    }
    if (atomic_load(&up->modern) && !modern_call(up, p, f->msg))
        goto out;
    int err = send_pending(up, p, f->msg);
    if (err) {
        char m[300];
        snprintf(m, sizeof(m), "could not send to server \"%s\": %s", up->srv->name, err_str(err));
        json_t *e = jsonrpc_error_new(
            p->client_id, err == ERR_LIMIT ? JSONRPC_GATEWAY_LIMIT : JSONRPC_UPSTREAM_UNAVAILABLE,
            m, NULL);
        stream_push(p->stream, e, true);
        json_decref(e);
        pending_free(p);
        goto out;
    }
    up->inflight++;
    p->prev_call = up->last_call;
    up->last_call = p;
out:
    json_decref(f->msg);
    free(f);
}

static void reply_error(struct mcp_reply *r, json_t *id, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void reply_error(struct mcp_reply *r, json_t *id, int code, const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    r->status = 200;
    r->body = jsonrpc_error_new(id, code, msg, NULL);
}

static void reply_result(struct mcp_reply *r, json_t *id, json_t *result)
{
    r->status = 200;
    r->body = jsonrpc_result_new(id, result);
}

/* Send a client's request (a private copy, taken) to `server`; `params` (taken, may be NULL)
   are its Mcp-Param-* headers. */
static void forward(struct mcp_worker *w, struct session *s, int server, json_t *msg,
                    json_t *params, struct mcp_reply *r)
{
    struct upstream *up = gw.ups[server];
    json_t *id = json_object_get(msg, "id");
    struct pending *p = calloc(1, sizeof(*p));
    struct forward *f = calloc(1, sizeof(*f));
    struct stream *st = stream_new(s);
    if (p == NULL || f == NULL || st == NULL) {
        free(p);
        free(f);
        stream_unref(st);
        json_decref(params);
        reply_error(r, id, JSONRPC_INTERNAL_ERROR, "out of memory");
        return;
    }
    p->params = params;
    p->session = session_ref(s);
    p->stream = stream_ref(st);
    p->client_id = json_incref(id);
    const char *method = jsonrpc_method(msg);
    p->cacheable = strcmp(method, "resources/read") == 0;
    if (session_transient(s) &&
        (strcmp(method, "tools/call") == 0 || strcmp(method, "prompts/get") == 0 || p->cacheable)) {
        /* A call a server may ask the client's input during (MRTR, 2026-07-28). */
        const char *t = json_string_value(
            json_object_get(json_object_get(msg, "params"), p->cacheable ? "uri" : "name"));
        p->call_target = strdup(t ? t : "");
        p->mrtr_ok = p->call_target != NULL;
        snprintf(p->call_method, sizeof(p->call_method), "%s", method);
    }
    p->id = draw_id();
    json_t *meta = json_object_get(json_object_get(msg, "params"), "_meta");
    json_t *tok = json_object_get(meta, "progressToken");
    if (json_is_string(tok) || json_is_integer(tok)) {
        /* The server sees our id as the token, so tokens of different clients never collide. */
        p->client_token = json_incref(tok);
        json_object_set_new(meta, "progressToken", json_integer((json_int_t)p->id));
    }
    session_track_call(s, id, call_cookie(server, p->id));
    f->up = up;
    f->msg = msg; /* already a private copy */
    f->p = p;
    r->server = up->srv->name;
    r->stream = st;
    r->status = 200;
    if (mailbox_post(up->home->mb, forward_cb, f) != 0) {
        session_untrack_call(s, id, call_cookie(server, p->id));
        json_decref(f->msg);
        free(f);
        p->answered = true;
        json_t *e = jsonrpc_error_new(id, JSONRPC_UPSTREAM_UNAVAILABLE,
                                      "the gateway is shutting down", NULL);
        stream_push(st, e, true);
        json_decref(e);
        pending_free(p);
    }
}

/* A private deep copy of msg with params.<field> set to value (when value is not NULL). */
static json_t *rewrite(json_t *msg, const char *field, const char *value)
{
    json_t *copy = json_deep_copy(msg);
    if (value != NULL)
        json_object_set_new(json_object_get(copy, "params"), field, json_string(value));
    return copy;
}

/* Worker thread: a 2026-07-28 client's retry (routed, a private copy) of a 2026-07-28 server's
   InputRequiredResult carries the state the gateway sealed: it goes back to that server, for
   that same method and target, as the server issued it. Returns 0 (no sealed state, or
   unsealed), or ERR_INVAL with the -32602 answer in r. */
static int unseal_state(struct session *s, int server, json_t *routed, const char *target,
                        struct mcp_reply *r)
{
    json_t *params = json_object_get(routed, "params");
    const char *sealed = json_string_value(json_object_get(params, "requestState"));
    if (!mcp_era_is_sealed(sealed))
        return 0;
    const char *method = jsonrpc_method(routed);
    json_t *state =
        mcp_era_open_state(sealed, gw.ups[server]->srv->name, method, target, session_owner(s));
    if (state == NULL) {
        reply_error(r, json_object_get(routed, "id"), JSONRPC_INVALID_PARAMS,
                    "Invalid params: params.requestState is not valid for this %s: it was issued "
                    "for another server, %s or principal, was altered, or is older than "
                    "limits.mrtr_ttl; "
                    "send the request again without requestState",
                    method, method[0] == 'r' ? "uri" : "name");
        r->server = gw.ups[server]->srv->name;
        return ERR_INVAL;
    }
    json_object_set_new(params, "requestState", state);
    return 0;
}

static void handle_initialize(int view, json_t *msg, struct mcp_reply *r)
{
    json_t *id = json_object_get(msg, "id");
    json_t *params = json_object_get(msg, "params");
    const char *asked = json_string_value(json_object_get(params, "protocolVersion"));
    if (asked == NULL) {
        reply_error(r, id, JSONRPC_INVALID_PARAMS,
                    "initialize: params.protocolVersion is required");
        r->status = 400;
        return;
    }
    const char *version = mcp_version_supported(asked) ? asked : mcp_supported_versions[0];
    int err = 0;
    struct session *s = session_new(view, version, json_object_get(params, "capabilities"), &err);
    if (s == NULL) {
        reply_error(r, id, JSONRPC_GATEWAY_LIMIT, "cannot open a session: %s",
                    err == ERR_LIMIT
                        ? "the gateway's session limit (limits.max_sessions) is reached"
                        : err_str(err));
        r->status = 503;
        return;
    }
    session_set_client_info(s, json_object_get(params, "clientInfo"));
    char name[160];
    snprintf(name, sizeof(name), "%s%s%s", "gatehouse", view >= 0 ? "/" : "",
             view >= 0 ? gw.ups[view]->srv->name : "");
    json_t *result =
        json_pack("{s:s, s:{s:{s:b}, s:{s:b}, s:{s:b, s:b}, s:{}, s:{}}, s:{s:s, s:s}}",
                  "protocolVersion", version, "capabilities", "tools", "listChanged", 1, "prompts",
                  "listChanged", 1, "resources", "subscribe", 1, "listChanged", 1, "completions",
                  "logging", "serverInfo", "name", name, "version", GATEHOUSE_VERSION);
    reply_result(r, id, result);
    r->session = s;
}

static void gateway_relay_answer_cb(void *arg);
static void gateway_set_level_cb(void *arg);

static int view_has_server(int view, int server)
{
    return view < 0 || view == server;
}

void mcp_cancel_call(void *cookie, const char *reason)
{
    uint64_t packed = (uint64_t)(uintptr_t)cookie;
    size_t server = (size_t)(packed >> CALL_ID_BITS);
    if (cookie != NULL && server < atomic_load(&gw.nups))
        post_cancel(gw.ups[server], packed & ((1ULL << CALL_ID_BITS) - 1), reason, NULL, NULL);
}

void mcp_cancel_request(struct session *s, json_t *client_id)
{
    /* NULL: finished already, or never forwarded */
    mcp_cancel_call(session_find_call(s, client_id), "cancelled by the client");
}

json_t *mcp_discover_result(int view)
{
    char name[160];
    snprintf(name, sizeof(name), "%s%s%s", "gatehouse", view >= 0 ? "/" : "",
             view >= 0 ? gw.ups[view]->srv->name : "");
    /* The capabilities are those the servers behind the view offer (listChanged always:
       subscriptions/listen carries the gateway's own list changes). No resources.subscribe yet:
       a listener's resourceSubscriptions would need the gateway to subscribe upstream for it.
       The versions: every server, of either era, is reachable in both through the bridges, so
       the view speaks every version the gateway speaks. The aggregate may change with any
       server's lists, and a future authenticated view depends on the caller: never cached across
       callers. */
    static const char *const kinds[] = {"tools", "prompts", "resources", "completions"};
    json_t *caps = json_object();
    pthread_mutex_lock(&gw.lock);
    for (size_t i = 0; i < atomic_load(&gw.nups); i++) {
        struct upstream *up = gw.ups[i];
        if (!view_has_server(view, (int)i) || up->retired || up->pub_state != UP_READY)
            continue;
        for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++)
            if (json_object_get(up->pub_caps, kinds[k]) != NULL &&
                json_object_get(caps, kinds[k]) == NULL)
                json_object_set_new(caps, kinds[k],
                                    k < 3 ? json_pack("{s:b}", "listChanged", 1) : json_object());
    }
    pthread_mutex_unlock(&gw.lock);
    return json_pack("{s:s, s:o, s:o, s:{s:{s:s, s:s}}, s:i, s:s}", "resultType", "complete",
                     "supportedVersions", mcp_era_supported_versions(), "capabilities", caps,
                     "_meta", "io.modelcontextprotocol/serverInfo", "name", name, "version",
                     GATEHOUSE_VERSION, "ttlMs", 0, "cacheScope", "private");
}

/* --- per-user views (auth on): the user's tool selection, the settings tool --- */

#define SETTINGS_TOOL "gatehouse__settings"

/* The user id of the session's principal; false without authentication or for a service
   account (their view is the configured one). */
static bool session_user(const struct session *s, int64_t *uid)
{
    const char *o = s ? session_owner(s) : "";
    if (!gw.cfg->auth.enabled || o[0] != 'u' || o[1] != ':')
        return false;
    *uid = strtoll(o + 2, NULL, 10);
    return *uid > 0;
}

static struct store *worker_store(struct mcp_worker *w)
{
    if (w->store == NULL) {
        struct err_info ei = {0};
        if (store_open(gw.cfg->store.sqlite, &w->store, &ei) != 0)
            log_warn("settings", "cannot open the store for per-user settings: %s", ei.msg);
    }
    return w->store;
}

/* What one principal sees of the servers during one request: a user's settings of the server
   last asked about (lists come grouped by server, so one is enough), or the configured view
   (uid 0: no authentication, a service account). */
struct user_view {
    struct mcp_worker *w;
    int64_t uid;
    int server; /* whose settings `v` holds; -1: none yet */
    struct store_settings v;
};

static void user_view_init(struct user_view *u, struct mcp_worker *w, int64_t uid)
{
    *u = (struct user_view){.w = w, .uid = uid, .server = -1};
}

static void user_view_release(struct user_view *u)
{
    store_settings_release(&u->v);
    u->server = -1;
}

static const struct store_settings *user_view_settings(struct user_view *u, int server)
{
    if (u->uid > 0 && server != u->server) {
        user_view_release(u);
        struct store *st = worker_store(u->w);
        if (st == NULL || store_settings_get(st, u->uid, gw.ups[server]->srv->name, &u->v) != 0)
            memset(&u->v, 0, sizeof(u->v));
        u->server = server;
    }
    return &u->v;
}

/* The discovery mode the principal is served in by `server`: the user's, else the configured. */
static enum config_discovery user_view_mode(struct user_view *u, int server)
{
    const struct config_server *srv = gw.ups[server]->srv;
    int mode = u->uid > 0 && srv->transport == TRANSPORT_OPENAPI
                   ? config_discovery_parse(user_view_settings(u, server)->discovery)
                   : -1;
    return mode >= 0 ? (enum config_discovery)mode : up_mode(gw.ups[server]);
}

/* Is `tool` (a server's own name) in the user's selection of server `server`? */
static bool user_view_selected(struct user_view *u, int server, const char *tool, size_t *nselected)
{
    const json_t *sel = u->uid > 0 ? user_view_settings(u, server)->tools : NULL;
    bool found = sel == NULL;
    size_t i;
    json_t *t;
    json_array_foreach(sel, i, t) found |= strcmp(json_string_value(t), tool) == 0;
    if (nselected)
        *nselected = json_array_size(sel);
    return found;
}

/* A navigation tool of a lazy mode (tagged, not in the static mode): never subject to the
   selection, which is of operations. */
static bool is_navigation(unsigned modes)
{
    return modes != 0 && !(modes & (1u << DISCOVERY_STATIC));
}

/* catalog_keep_cb: the tools of the principal's mode (untagged ones always), and of those the
   operations in their selection. */
static bool user_view_keep_cb(void *ud, int server, const char *orig, unsigned modes)
{
    struct user_view *u = ud;
    if (modes != 0 && !(modes & (1u << user_view_mode(u, server))))
        return false;
    return is_navigation(modes) || user_view_selected(u, server, orig, NULL);
}

/* params._meta of a call going to `server` (routed is the gateway's own copy): the client's keys
   in the gateway's namespace removed (a client does not pick its mode by forging them), then for
   a user of an openapi server their mode and selection. */
static void set_call_meta(json_t *routed, struct user_view *u, int server)
{
    json_t *params = json_object_get(routed, "params");
    json_t *meta = json_object_get(params, "_meta");
    const char *k;
    void *tmp;
    json_t *v;
    json_object_foreach_safe(meta, tmp, k, v)
    {
        if (strncmp(k, CONFIG_META_NS, strlen(CONFIG_META_NS)) == 0)
            json_object_del(meta, k);
    }
    if (u->uid <= 0 || gw.ups[server]->srv->transport != TRANSPORT_OPENAPI ||
        !json_is_object(params))
        return;
    if (!json_is_object(meta)) {
        meta = json_object();
        json_object_set_new(params, "_meta", meta);
    }
    json_object_set_new(meta, CONFIG_META_DISCOVERY,
                        json_string(config_discovery_str(user_view_mode(u, server))));
    const json_t *sel = user_view_settings(u, server)->tools;
    if (sel)
        json_object_set_new(meta, CONFIG_META_SELECTION, json_deep_copy(sel));
}

static json_t *settings_tool(void)
{
    return json_pack(
        "{s:s, s:s, s:{s:s, s:{s:{s:s, s:s}, s:{s:s, s:[s,s,s], s:s}, s:{s:s, s:{s:s}, s:s},"
        " s:{s:s, s:s}}, s:[s]}, s:{s:b}}",
        "name", SETTINGS_TOOL, "description",
        "Your own view of one server behind this gateway: select the tools you want (only those "
        "are listed and callable for you) and, for a REST API server, its discovery mode. With "
        "only `server`, shows your settings.",
        "inputSchema", "type", "object", "properties", "server", "type", "string", "description",
        "the server's name", "discovery", "type", "string", "enum", "static", "hierarchical",
        "search", "description", "how a REST API server lists its tools", "select", "type", "array",
        "items", "type", "string", "description", "the tools to keep, by the server's own names",
        "select_all", "type", "boolean", "description", "true: every tool again", "required",
        "server", "annotations", "idempotentHint", 1);
}

static json_t *settings_result(const char *text, bool is_error)
{
    return json_pack("{s:[{s:s, s:s}], s:b}", "content", "type", "text", "text", text, "isError",
                     is_error);
}

/* A tools/call of the settings tool by user uid. */
static void handle_settings_call(struct mcp_worker *w, struct session *s, int64_t uid, json_t *id,
                                 json_t *args, struct mcp_reply *r)
{
    const char *server = json_string_value(json_object_get(args, "server"));
    json_t *disc = json_object_get(args, "discovery");
    json_t *select = json_object_get(args, "select");
    json_t *all = json_object_get(args, "select_all");
    struct store *st = worker_store(w);
    struct catalog *cat = worker_catalog(w);
    char why[700] = "";
    int server_ix = server ? gateway_find_server(server) : -1;
    if (server == NULL)
        snprintf(why, sizeof(why), "%s needs the string argument \"server\"", SETTINGS_TOOL);
    else if (server_ix < 0)
        snprintf(why, sizeof(why), "no server named \"%.64s\" behind this gateway", server);
    else if (disc != NULL && !json_is_string(disc))
        snprintf(why, sizeof(why), "\"discovery\" is static, hierarchical or search");
    else if (select != NULL && !json_is_array(select))
        snprintf(why, sizeof(why), "\"select\" is a list of tool names");
    else if (select != NULL && json_is_true(all))
        snprintf(why, sizeof(why), "\"select\" and \"select_all\" exclude each other");
    else if (st == NULL)
        snprintf(why, sizeof(why), "the settings store is not available");
    size_t i;
    json_t *t;
    json_array_foreach(why[0] ? NULL : select, i, t)
    {
        int srv;
        const char *orig;
        const char *name = json_string_value(t);
        if (name == NULL || cat == NULL ||
            catalog_route(cat, server_ix, CAT_TOOLS, name, &srv, &orig) != 0)
            snprintf(why, sizeof(why), "server \"%s\" has no tool \"%.100s\"", server,
                     name ? name : "(not a string)");
        else if (is_navigation(catalog_modes(cat, server_ix, CAT_TOOLS, name)))
            snprintf(why, sizeof(why),
                     "\"%.100s\" is a navigation tool of server \"%s\", always there in its "
                     "mode; select operations",
                     name, server);
    }
    struct store_settings v = {0};
    struct err_info ei = {0};
    bool change = disc != NULL || select != NULL || json_is_true(all);
    if (why[0] == '\0') {
        int err = change ? mcp_settings_update(gw.cfg, st, uid, server, json_string_value(disc),
                                               json_is_true(all) ? json_null() : select, &v, &ei)
                         : store_settings_get(st, uid, server, &v);
        if (err && !(err == ERR_NOTFOUND && !change))
            snprintf(why, sizeof(why), "%s", ei.msg[0] ? ei.msg : err_str(err));
    }
    if (why[0]) {
        reply_result(r, id, settings_result(why, true));
        return;
    }
    json_t *d = mcp_settings_describe(server, &v);
    char *text = json_dumps(d, JSON_COMPACT);
    json_decref(d);
    store_settings_release(&v);
    reply_result(r, id, settings_result(text ? text : "{}", false));
    free(text);
    if (change) {
        /* this user's sessions (on any endpoint) list again; nobody else's view changed */
        json_t *n = jsonrpc_notification_new("notifications/tools/list_changed", NULL);
        struct broadcast b = {-1, n, session_owner(s), NULL};
        session_foreach(broadcast_cb, &b);
        json_decref(n);
    }
}

json_t *mcp_tool_input_schema(struct mcp_worker *w, int view, const char *name)
{
    struct catalog *cat = worker_catalog(w);
    json_t *schema = cat ? catalog_input_schema(cat, view, name) : NULL;
    return json_incref(schema);
}

void mcp_handle_message(struct mcp_worker *w, int view, struct session *s, json_t *msg,
                        enum jsonrpc_kind kind, struct mcp_reply *r)
{
    memset(r, 0, sizeof(*r));
    json_t *id = json_object_get(msg, "id");
    json_t *params = json_object_get(msg, "params");
    const char *method = jsonrpc_method(msg);

    if (kind == JSONRPC_RESULT || kind == JSONRPC_ERROR) {
        /* A client's answer to a request a server sent through us. */
        void *upv;
        json_t *up_id;
        r->status = 202;
        if (!json_is_integer(id) ||
            session_take_request(s, (uint64_t)json_integer_value(id), &upv, &up_id) != 0) {
            log_info("client_protocol", "client answered an id the gateway did not send; ignored");
            return;
        }
        struct upstream *up = upv;
        json_t *copy = json_copy(msg);
        json_object_set_new(copy, "id", up_id);
        struct forward *f = calloc(1, sizeof(*f));
        if (f == NULL) {
            json_decref(copy);
            return;
        }
        f->up = up;
        f->msg = copy;
        if (mailbox_post(up->home->mb, gateway_relay_answer_cb, f) != 0) {
            json_decref(copy);
            free(f);
        }
        r->server = up->srv->name;
        return;
    }

    if (kind == JSONRPC_NOTIFICATION) {
        r->status = 202;
        if (strcmp(method, "notifications/cancelled") == 0) {
            json_t *rid = json_object_get(params, "requestId");
            if (rid != NULL)
                mcp_cancel_request(s, rid);
        } else if (strcmp(method, "notifications/roots/list_changed") == 0) {
            for (size_t i = 0; i < atomic_load(&gw.nups); i++)
                if (view_has_server(view, (int)i) && !gw.ups[i]->retired) {
                    struct forward *f = calloc(1, sizeof(*f));
                    if (f == NULL)
                        continue;
                    f->up = gw.ups[i];
                    f->msg = json_incref(msg);
                    if (mailbox_post(f->up->home->mb, gateway_relay_answer_cb, f) != 0) {
                        json_decref(f->msg);
                        free(f);
                    }
                }
        }
        return;
    }

    /* Requests. */
    snprintf(r->target, sizeof(r->target), "%s", "");
    struct catalog *cat = worker_catalog(w);
    if (strcmp(method, "initialize") == 0) {
        if (s != NULL) {
            reply_error(
                r, id, JSONRPC_INVALID_REQUEST,
                "this session is already initialized; send initialize without Mcp-Session-Id to start a new one");
            r->status = 400;
            return;
        }
        handle_initialize(view, msg, r);
        return;
    }
    if (strcmp(method, "ping") == 0) {
        reply_result(r, id, json_object());
        return;
    }
    if (strcmp(method, "server/discover") == 0) {
        reply_result(r, id, mcp_discover_result(view));
        return;
    }
    static const struct {
        const char *method;
        enum catalog_kind kind;
    } lists[] = {{"tools/list", CAT_TOOLS},
                 {"prompts/list", CAT_PROMPTS},
                 {"resources/list", CAT_RESOURCES},
                 {"resources/templates/list", CAT_TEMPLATES}};
    for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
        if (strcmp(method, lists[i].method) != 0)
            continue;
        json_t *cursor = json_object_get(params, "cursor");
        if (cursor != NULL && !json_is_string(cursor)) {
            reply_error(r, id, JSONRPC_INVALID_PARAMS, "%s: params.cursor must be a string",
                        method);
            return;
        }
        json_t *result = NULL;
        int64_t uid = 0;
        bool user = lists[i].kind == CAT_TOOLS && session_user(s, &uid);
        struct user_view u;
        user_view_init(&u, w, user ? uid : 0);
        int err = cat ? catalog_page_filtered(cat, view, lists[i].kind, json_string_value(cursor),
                                              LIST_PAGE_SIZE, user_view_keep_cb, &u, &result)
                      : ERR_NOTFOUND;
        user_view_release(&u);
        if (err == ERR_INVAL)
            reply_error(r, id, JSONRPC_INVALID_PARAMS,
                        "%s: the cursor was not issued by this gateway", method);
        else if (err)
            reply_result(r, id,
                         json_pack("{s:[]}", method[0] == 't'   ? "tools"
                                             : method[0] == 'p' ? "prompts"
                                                                : "resources"));
        else {
            if (user && cursor == NULL) /* the settings tool first on the first page */
                json_array_insert_new(json_object_get(result, "tools"), 0, settings_tool());
            reply_result(r, id, result);
        }
        return;
    }
    if (strcmp(method, "tools/call") == 0 || strcmp(method, "prompts/get") == 0) {
        enum catalog_kind kind_ = method[0] == 't' ? CAT_TOOLS : CAT_PROMPTS;
        json_t *jname = json_object_get(params, "name");
        const char *name = json_string_value(jname);
        int server;
        const char *orig;
        if (name == NULL || strlen(name) != json_string_length(jname)) {
            reply_error(r, id, JSONRPC_INVALID_PARAMS,
                        "%s: params.name must be a string without NUL characters", method);
            return;
        }
        json_t *args = json_object_get(params, "arguments");
        if (args != NULL && !json_is_object(args)) {
            reply_error(r, id, JSONRPC_INVALID_PARAMS,
                        "%s: params.arguments must be an object (named arguments)", method);
            return;
        }
        snprintf(r->target, sizeof(r->target), "%s", name);
        int64_t uid = 0;
        bool user = kind_ == CAT_TOOLS && session_user(s, &uid);
        if (user && strcmp(name, SETTINGS_TOOL) == 0) {
            handle_settings_call(w, s, uid, id, args, r);
            return;
        }
        if (cat == NULL || catalog_route(cat, view, kind_, name, &server, &orig) != 0) {
            reply_error(r, id, JSONRPC_INVALID_PARAMS, "Unknown %s: %s",
                        kind_ == CAT_TOOLS ? "tool" : "prompt", name);
            return;
        }
        size_t nselected = 0;
        struct user_view u;
        user_view_init(&u, w, user ? uid : 0);
        unsigned modes = kind_ == CAT_TOOLS ? catalog_modes(cat, view, kind_, name) : 0;
        enum config_discovery mode = user_view_mode(&u, server);
        if (is_navigation(modes) && !(modes & (1u << mode))) {
            /* an operation stays callable by name in a lazy mode (docs/openapi.md) */
            reply_error(r, id, JSONRPC_INVALID_PARAMS,
                        "tool %s is not offered in discovery mode %s of server %s (%s); change "
                        "the mode with the %s tool",
                        name, config_discovery_str(mode), gw.ups[server]->srv->name,
                        user && user_view_settings(&u, server)->discovery[0]
                            ? "your setting"
                            : "the server's configured mode",
                        SETTINGS_TOOL);
            user_view_release(&u);
            return;
        }
        if (user && !is_navigation(modes) && !user_view_selected(&u, server, orig, &nselected)) {
            reply_error(r, id, JSONRPC_INVALID_PARAMS,
                        "tool %s is not in your selection of server %s (%zu tools selected); "
                        "add it with the %s tool or `gatehouse user settings`",
                        name, gw.ups[server]->srv->name, nselected, SETTINGS_TOOL);
            user_view_release(&u);
            return;
        }
        json_t *routed = rewrite(msg, "name", orig);
        set_call_meta(routed, &u, server);
        user_view_release(&u);
        if (session_transient(s) && json_object_get(params, "requestState") != NULL &&
            !mcp_era_is_sealed(json_string_value(json_object_get(params, "requestState")))) {
            mrtr_resume(s, server, routed, orig, r); /* a retry with the client's input */
            json_decref(routed);
            return;
        }
        if (session_transient(s) && unseal_state(s, server, routed, orig, r) != 0) {
            json_decref(routed);
            return;
        }
        /* A 2026-07-28 HTTP server wants the x-mcp-header arguments of its tool as headers
           too: the gateway sends them whether or not the client did (a legacy one cannot). */
        json_t *hdrs = kind_ == CAT_TOOLS && gw.ups[server]->srv->transport == TRANSPORT_HTTP
                           ? mcp_param_headers(catalog_input_schema(cat, view, name), args)
                           : NULL;
        forward(w, s, server, routed, hdrs, r);
        return;
    }
    if (strncmp(method, "resources/", 10) == 0 &&
        (strcmp(method + 10, "read") == 0 || strcmp(method + 10, "subscribe") == 0 ||
         strcmp(method + 10, "unsubscribe") == 0)) {
        json_t *juri = json_object_get(params, "uri");
        const char *uri = json_string_value(juri);
        int server;
        if (uri == NULL || strlen(uri) != json_string_length(juri)) {
            reply_error(r, id, JSONRPC_INVALID_PARAMS,
                        "%s: params.uri must be a string without NUL characters", method);
            return;
        }
        snprintf(r->target, sizeof(r->target), "%s", uri);
        if (cat == NULL || catalog_route_uri(cat, view, uri, &server) != 0) {
            char m[600];
            snprintf(m, sizeof(m),
                     "Resource not found: %s (no server behind this endpoint offers it)", uri);
            r->status = 200;
            /* 2026-07-28 (SEP-2164) says -32602 for an unknown resource; earlier revisions -32002.
             */
            r->body = jsonrpc_error_new(
                id, session_transient(s) ? JSONRPC_INVALID_PARAMS : JSONRPC_RESOURCE_NOT_FOUND, m,
                json_pack("{s:s}", "uri", uri));
            return;
        }
        if (method[10] != 'r')
            session_subscribe(s, uri, server, method[10] == 's');
        else if (session_transient(s) && json_object_get(params, "requestState") != NULL &&
                 !mcp_era_is_sealed(json_string_value(json_object_get(params, "requestState")))) {
            mrtr_resume(s, server, msg, uri, r); /* a retry with the client's input */
            return;
        }
        json_t *routed = rewrite(msg, "uri", NULL);
        if (method[10] == 'r' && session_transient(s) &&
            unseal_state(s, server, routed, uri, r) != 0) {
            json_decref(routed);
            return;
        }
        forward(w, s, server, routed, NULL, r);
        return;
    }
    if (strcmp(method, "completion/complete") == 0) {
        json_t *ref = json_object_get(params, "ref");
        const char *type = json_string_value(json_object_get(ref, "type"));
        int server;
        const char *orig;
        if (type && strcmp(type, "ref/prompt") == 0) {
            const char *name = json_string_value(json_object_get(ref, "name"));
            if (name == NULL || cat == NULL ||
                catalog_route(cat, view, CAT_PROMPTS, name, &server, &orig) != 0) {
                reply_error(r, id, JSONRPC_INVALID_PARAMS, "completion/complete: unknown prompt %s",
                            name ? name : "(none)");
                return;
            }
            json_t *copy = json_deep_copy(msg);
            json_object_set_new(json_object_get(json_object_get(copy, "params"), "ref"), "name",
                                json_string(orig));
            forward(w, s, server, copy, NULL, r);
            return;
        }
        if (type && strcmp(type, "ref/resource") == 0) {
            const char *uri = json_string_value(json_object_get(ref, "uri"));
            if (uri == NULL || cat == NULL || catalog_route_uri(cat, view, uri, &server) != 0) {
                /* A template reference names the template itself: find its owner. */
                server = -1;
                for (size_t i = 0; uri && i < atomic_load(&gw.nups) && server < 0; i++) {
                    if (!view_has_server(view, (int)i) || gw.ups[i]->retired)
                        continue;
                    pthread_mutex_lock(&gw.lock);
                    size_t j;
                    json_t *t;
                    json_array_foreach(gw.ups[i]->lists[CAT_TEMPLATES], j, t)
                    {
                        const char *ut = json_string_value(json_object_get(t, "uriTemplate"));
                        if (ut && strcmp(ut, uri) == 0)
                            server = (int)i;
                    }
                    pthread_mutex_unlock(&gw.lock);
                }
                if (server < 0) {
                    reply_error(r, id, JSONRPC_INVALID_PARAMS,
                                "completion/complete: unknown resource %s", uri ? uri : "(none)");
                    return;
                }
            }
            forward(w, s, server, json_deep_copy(msg), NULL, r);
            return;
        }
        reply_error(r, id, JSONRPC_INVALID_PARAMS,
                    "completion/complete: params.ref.type must be ref/prompt or ref/resource");
        return;
    }
    if (strcmp(method, "logging/setLevel") == 0) {
        const char *level = json_string_value(json_object_get(params, "level"));
        if (level == NULL || mcp_log_level_rank(level) < 0) {
            reply_error(r, id, JSONRPC_INVALID_PARAMS,
                        "logging/setLevel: params.level must be one of debug, info, notice, "
                        "warning, error, critical, alert, emergency");
            return;
        }
        session_set_log_level(s, mcp_log_level_rank(level)); /* for 2026-07-28 servers' _meta */
        for (size_t i = 0; i < atomic_load(&gw.nups); i++) {
            if (!view_has_server(view, (int)i) || gw.ups[i]->retired)
                continue;
            struct forward *f = calloc(1, sizeof(*f));
            if (f == NULL)
                continue;
            f->up = gw.ups[i];
            f->msg = json_incref(msg);
            if (mailbox_post(f->up->home->mb, gateway_set_level_cb, f) != 0) {
                json_decref(f->msg);
                free(f);
            }
        }
        reply_result(r, id, json_object());
        return;
    }
    reply_error(r, id, JSONRPC_METHOD_NOT_FOUND, "Method not found: %s", method);
}

/* Home thread: pass a client's answer (or notification) to the server as it is. */
static void gateway_relay_answer_cb(void *arg)
{
    struct forward *f = arg;
    if (json_is_object(json_object_get(f->msg, "id")))
        bridge_answer(f->up, f->msg); /* for an InputRequiredResult of a 2026-07-28 server */
    else if (f->up->t && f->up->state == UP_READY &&
             !(atomic_load(&f->up->modern) && jsonrpc_method(f->msg) != NULL))
        transport_send(f->up->t, f->msg, NULL); /* a modern server takes no notifications */
    json_decref(f->msg);
    free(f);
}

static void level_cb(struct upstream *up, json_t *msg, int err, const char *why, void *arg)
{
    if (err || (msg && json_object_get(msg, "error")))
        log_debug("upstream_log_level", "server %s did not accept logging/setLevel", up->srv->name);
}

static void gateway_set_level_cb(void *arg)
{
    struct forward *f = arg;
    struct upstream *up = f->up;
    const char *level =
        json_string_value(json_object_get(json_object_get(f->msg, "params"), "level"));
    if (level != NULL && mcp_log_level_rank(level) >= 0)
        snprintf(up->log_level, sizeof(up->log_level), "%s", level); /* replayed on a new session */
    if (up->t && up->state == UP_READY && json_object_get(up->caps, "logging") &&
        !atomic_load(&up->modern)) /* 2026-07-28: the level travels in each request's _meta */
        internal_request(up, "logging/setLevel", json_deep_copy(json_object_get(f->msg, "params")),
                         level_cb, NULL);
    json_decref(f->msg);
    free(f);
}

/* Home thread: cancel call f->msg {id (ours), reason} on f->up. It may have finished already. */
static void cancel_on_home_cb(void *arg)
{
    struct forward *f = arg;
    struct upstream *up = f->up;
    uint64_t id = (uint64_t)json_integer_value(json_object_get(f->msg, "id"));
    struct pending *target = idmap_get(&up->pending, id);
    if (target != NULL && target->cb == NULL && !target->answered)
        cancel_call(up, target, json_string_value(json_object_get(f->msg, "reason")));
    /* Still waiting for a place: it leaves the queue unsent. */
    for (struct forward *q = up->queue_head, *prev = NULL; target == NULL && q != NULL;
         prev = q, q = q->next) {
        if (q->p->id == id) {
            unqueue(up, prev, q);
            char why[200];
            snprintf(why, sizeof(why), "%s while it waited for a place",
                     json_string_value(json_object_get(f->msg, "reason")));
            drop_queued(up, q, why);
            break;
        }
    }
    json_t *refuse = json_object_get(f->msg, "refuse_id");
    if (refuse != NULL && up->t != NULL)
        answer_server(up, refuse, JSONRPC_METHOD_NOT_FOUND,
                      json_string_value(json_object_get(f->msg, "refusal")));
    json_decref(f->msg);
    free(f);
}

void mcp_reply_release(struct mcp_reply *r)
{
    json_decref(r->body);
    if (r->stream)
        stream_unref(r->stream);
    if (r->session)
        session_unref(r->session);
    memset(r, 0, sizeof(*r));
}

void mcp_worker_release(struct mcp_worker *w)
{
    catalog_unref(w->catalog);
    w->catalog = NULL;
    store_close(w->store);
    w->store = NULL;
}

void gateway_foreach_server(void (*fn)(const char *name, bool ready, unsigned restarts, void *arg),
                            void *arg)
{
    pthread_mutex_lock(&gw.lock);
    for (size_t i = 0; i < atomic_load(&gw.nups); i++)
        if (!gw.ups[i]->retired)
            fn(gw.ups[i]->srv->name, gw.ups[i]->pub_state == UP_READY, gw.ups[i]->restarts, arg);
    pthread_mutex_unlock(&gw.lock);
}
