/*
 * The engine's upstream side (see gateway.h and "Upstream lifecycle" in docs/architecture.md):
 * the catalog published from the servers' lists, the requests pending on each server, every
 * upstream's life on its home worker's loop (start, era probe, initialize, list fetching, the
 * modern listen stream), session recovery, the messages servers send, and the engine's start,
 * reload, stop and status. The downstream dispatch is in gateway.c, the MRTR bridge in mrtr.c.
 */
#include "mcp/gateway.h"
#include "core/err.h"
#include "core/idmap.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/rand.h"
#include "mcp/catalog.h"
#include "mcp/gateway-int.h"
#include "upstream/transport.h"

#include <inttypes.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct gateway_state gw = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

const char *const up_state_names[] = {"starting", "initializing", "ready",
                                      "down",     "failed",       "stopped"};

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

struct catalog *gw_worker_catalog(struct mcp_worker *w)
{
    uint64_t gen = atomic_load(&gw.generation);
    if (w->catalog == NULL || w->catalog_gen != gen) {
        pthread_mutex_lock(&gw.lock);
        struct catalog *c = gw.catalog ? catalog_ref(gw.catalog) : NULL;
        struct pipeline *pl = pipeline_ref(gw.pipeline);
        pthread_mutex_unlock(&gw.lock);
        if (c != NULL) {
            catalog_unref(w->catalog);
            w->catalog = c;
            w->catalog_gen = catalog_generation(c);
        }
        pipeline_unref(w->pipeline);
        w->pipeline = pl;
    }
    return w->catalog;
}

struct pipeline *gw_worker_pipeline(struct mcp_worker *w)
{
    gw_worker_catalog(w); /* the two are taken together */
    return w->pipeline;
}

void gateway_set_pipeline(struct pipeline *pl)
{
    pipeline_ref(pl);
    pthread_mutex_lock(&gw.lock);
    struct pipeline *old = gw.pipeline;
    gw.pipeline = pl;
    /* Workers take the stages with the catalog: a new generation makes them look. */
    struct err_info ei = {0};
    if (rebuild_locked(0, &ei) != 0)
        log_error("catalog", "could not rebuild the catalog: %s", ei.msg);
    pthread_mutex_unlock(&gw.lock);
    pipeline_unref(old);
}

int gw_emit(struct pending *p, json_t *msg, bool final)
{
    unsigned flags = (final ? EMIT_FINAL : 0) |
                     (p->up != NULL && atomic_load(&p->up->modern) ? EMIT_FROM_MODERN : 0);
    return mcp_emit(p->call, NULL, p->stream, msg, flags);
}

void gw_emit_error(struct pending *p, int code, const char *fmt, ...)
{
    char m[800];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m, sizeof(m), fmt, ap);
    va_end(ap);
    mcp_emit_error(p->call, p->stream, p->client_id, code, p->up ? p->up->srv->name : NULL, m);
}

/* Home thread: publish state (and lists, when given) and rebuild the catalog. */
static void publish(struct upstream *up, enum up_state st, const char *why, json_t **lists)
{
    if (up->base != NULL) { /* a user's instance: in no catalog, no /readyz of its own */
        up->pub_state = st;
        snprintf(up->why, sizeof(up->why), "%s", why ? why : "");
        return;
    }
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
    if (up->base != NULL)
        json_object_set_new(f, "user", json_string(up->owner));
    log_fields(st == UP_READY || st == UP_INITIALIZING || st == UP_STARTING ? LOG_INFO : LOG_WARN,
               "upstream_state", f);
    publish(up, st, why, NULL);
}

/* --- sending to clients --- */

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

void gw_broadcast_cb(struct session *s, void *arg)
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
        mcp_emit(NULL, b->pl, st, msg, 0);
        stream_unref(st);
    }
    json_decref(tagged);
}

/* Any thread: push a notification to the standalone stream of every session that sees server
   (server -1: every session). */
static void broadcast(int server, json_t *msg, const char *uri)
{
    pthread_mutex_lock(&gw.lock);
    struct pipeline *pl = pipeline_ref(gw.pipeline);
    pthread_mutex_unlock(&gw.lock);
    struct broadcast b = {server, msg, NULL, uri, pl};
    session_foreach(gw_broadcast_cb, &b);
    pipeline_unref(pl);
}

/* Whose sessions hear what up sends outside a client's call (a resource update, a log message):
   an instance's user's only; for the entry of a per_user server, the sessions without a
   principal (authentication off) that it serves; for a shared server every session (NULL). */
static const char *audience(const struct upstream *up)
{
    if (up->base != NULL)
        return up->owner;
    return up->srv->sessions == SESSIONS_PER_USER ? "" : NULL;
}

/* broadcast to the sessions of server `up` that hear it (audience), subscribed to uri if set. */
static void tell_audience(struct upstream *up, json_t *msg, const char *uri)
{
    pthread_mutex_lock(&gw.lock);
    struct pipeline *pl = pipeline_ref(gw.pipeline);
    pthread_mutex_unlock(&gw.lock);
    struct broadcast b = {up->index, msg, audience(up), uri, pl};
    session_foreach(gw_broadcast_cb, &b);
    pipeline_unref(pl);
}

/* A user's instance whose session has not been ready yet: its calls wait for it to open. */
static bool opening(const struct upstream *up)
{
    return up->base != NULL && !up->opened;
}

/* --- pending requests (home thread) --- */

/* What a session remembers of a client call, for cancellation: the server and our id, packed
   into the pointer-sized cookie the session stores (never dereferenced). */
void *gw_call_cookie(int server, uint64_t id)
{
    return (void *)(uintptr_t)(((uint64_t)server << CALL_ID_BITS) |
                               (id & ((1ULL << CALL_ID_BITS) - 1)));
}

/* Any thread: an id for a request to a server, also its progress token there. Random (48 bits,
   CALL_ID_BITS, which every JSON reader keeps exact; never 0), not a counter: one upstream session
   carries every user's calls, and a server must not be able to guess the id of another user's
   call in flight. */
uint64_t gw_draw_id(void)
{
    uint64_t id = 0;
    while (id == 0) {
        rand_id_bytes(&id, sizeof(id));
        id &= (UINT64_C(1) << CALL_ID_BITS) - 1;
    }
    return id;
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

void gw_pending_free(struct pending *p)
{
    if (p->paused && p->up != NULL && p->up->t != NULL)
        transport_resume(p->up->t, p); /* stdio: the pipe serves other calls too */
    if (p->timer) {
        uv_close((uv_handle_t *)p->timer, (uv_close_cb)free);
        p->timer = NULL;
    }
    if (p->session && p->client_id && p->up)
        session_untrack_call(p->session, p->client_id, gw_call_cookie(p->up->index, p->id));
    if (p->up)
        unlink_call(p->up, p);
    if (p->up && p->up->base != NULL && p->cb == NULL)
        p->up->last_used = uv_now(p->up->home->loop); /* idle from now (user_sessions) */
    if (p->stream)
        stream_unref(p->stream);
    if (p->session)
        session_unref(p->session);
    json_decref(p->client_id);
    json_decref(p->client_token);
    gw_mrtr_free(p->mrtr);
    free(p->call_target);
    free(p->up_task);
    if (p->task_poll) {
        uv_close((uv_handle_t *)p->task_poll, (uv_close_cb)free);
        p->task_poll = NULL;
    }
    json_decref(p->call_msg);
    json_decref(p->answers);
    json_decref(p->up_state);
    json_decref(p->sent);
    call_free(p->call); /* ends it as cancelled unless it has ended */
    free(p);
}

void gw_pending_maybe_free(struct pending *p)
{
    if (p->answered && !p->exchange_open)
        gw_pending_free(p);
}

/* Deliver a client call's final answer (a result or error object with the upstream's id); the
   era fields are the emitter's (mcp_emit_era). */
void gw_answer_client(struct pending *p, json_t *msg)
{
    json_t *copy = json_copy(msg);
    json_object_set(copy, "id", p->client_id);
    gw_emit(p, copy, true);
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
        gw_call_finished(p->up);
        gw_emit_error(p, code, "%s", msg);
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

static void task_cancelled_cb(struct upstream *up, json_t *msg, int err, const char *why, void *arg)
{
    (void)arg;
    json_t *e = json_object_get(msg, "error");
    if (err != 0 || e != NULL) {
        log_info("upstream_task_cancel", "server %s did not cancel its task: %s", up->srv->name,
                 err ? (why ? why : err_str(err))
                     : json_string_value(json_object_get(e, "message")));
        return;
    }
    /* The server's word on its task: the status it answered tasks/cancel with. */
    const char *status =
        json_string_value(json_object_get(json_object_get(msg, "result"), "status"));
    log_info("upstream_task_cancel", "server %s answered tasks/cancel of its task: status %s",
             up->srv->name, status ? status : "(none)");
}

/* Tell the server to stop client call p: its own task first (tasks/cancel), when the call follows
   one (a gateway task's call to a server that runs tasks), then the request itself. */
static void cancel_upstream(struct upstream *up, struct pending *p, const char *reason)
{
    if (p->up_task != NULL && up->t != NULL)
        gw_internal_request(up, "tasks/cancel", json_pack("{s:s}", "taskId", p->up_task),
                            task_cancelled_cb, NULL);
    send_cancelled(up, p->id, reason);
}

void gw_call_timeout_cb(uv_timer_t *t)
{
    struct pending *p = t->data;
    {
        /* Never sent: still waiting for a place (max_concurrency). Its id is drawn already
           (forward), so only the queue can tell; it is at most gw_queue_limit long. */
        struct upstream *up = p->up;
        for (struct forward *q = up->queue_head, *prev = NULL; q != NULL; prev = q, q = q->next) {
            if (q->p != p)
                continue;
            gw_unqueue(up, prev, q);
            char m[400];
            snprintf(m, sizeof(m),
                     "server \"%s\" did not answer within %u ms (timeouts.total, counted from the "
                     "call's arrival): the call waited all that time for a place (max_concurrency "
                     "%u) and was not sent",
                     up->srv->name, up->srv->timeouts.total_ms, up->srv->max_concurrency);
            log_info("call_dropped",
                     "a call to server %s was not sent: it waited %u ms for a place", up->srv->name,
                     up->srv->timeouts.total_ms);
            gw_emit_error(p, JSONRPC_UPSTREAM_TIMEOUT, "%s", m);
            p->answered = true;
            gw_pending_free(p);
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
        if (opening(p->up))
            snprintf(m, sizeof(m),
                     "server \"%s\" did not open a session for this user within %u ms "
                     "(timeouts.total)",
                     p->up->srv->name, p->up->srv->timeouts.total_ms);
        else
            snprintf(m, sizeof(m),
                     "server \"%s\" lost its session (%s) and was not re-initialised within %u ms "
                     "(timeouts.total)",
                     p->up->srv->name, p->up->recover_why, p->up->srv->timeouts.total_ms);
        gw_emit_error(p, JSONRPC_UPSTREAM_TIMEOUT, "%s", m);
        gw_pending_maybe_free(p);
        return;
    }
    /* Tell the server to stop, then answer the client. */
    cancel_upstream(p->up, p, "gateway timeout");
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
    gw_pending_maybe_free(p);
}

/* Send `msg` (whose id is replaced by a fresh one) to up as pending p. Takes ownership of p. */
int gw_send_pending(struct upstream *up, struct pending *p, json_t *msg)
{
    if (p->id == 0)
        p->id = gw_draw_id();
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
    err = transport_send_call(up->t, msg, p, p->call ? &p->call->out : NULL);
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
        uv_timer_start(p->timer, gw_call_timeout_cb, total, 0);
    }
    return 0;
}

/* The client capabilities the gateway declares to a server: what it can relay or bridge. With a
   client (session not NULL), only those that client declared. New reference. */
json_t *gw_relay_capabilities(struct session *s)
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
    json_t *caps = modern ? gw_relay_capabilities(NULL) : NULL;
    if (caps != NULL && strncmp(method, "tasks/", 6) == 0) /* the server's own tasks (tasks.c) */
        json_object_set_new(caps, "extensions",
                            json_pack("{s:{}}", "io.modelcontextprotocol/tasks"));
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
    int err = gw_send_pending(up, p, msg);
    json_decref(msg);
    if (err) {
        free(p);
        cb(up, NULL, err, err_str(err), arg);
        return NULL;
    }
    return p;
}

void gw_internal_request(struct upstream *up, const char *method, json_t *params, internal_cb cb,
                         void *arg)
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
    if (gw_give_up_recovery(up, why))
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
    if (up->base != NULL) {
        /* A user's instance: the lists are its server's (see refresh_lists); it is ready. */
        if (up->state != UP_READY)
            set_state(up, UP_READY, "");
        if (up->recovering)
            gw_finish_recovery(up);
        up->opened = true;
        up->gave_up = false;
        return;
    }
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
        gw_finish_recovery(up);
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
    gw_internal_request(up, list_methods[f->kind], params, fetch_cb, f);
}

/* Fetch the lists the server's capabilities announce; kinds < 0 = all. */
static void refresh_lists(struct upstream *up, int only_kind)
{
    bool any = false;
    up->fetches_left = 1; /* held until every fetch is issued */
    if (up->base != NULL) {
        /* A user's instance fetches no lists: the catalog is its server's, discovered by the
           server's own session (docs/architecture.md, "Upstream sessions per user"). */
        fetch_finished(up);
        return;
    }
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
    unsigned n = gw_replay_session_state(up);
    if (n > 0 || (up->recovering && up->log_level[0]))
        log_info("upstream_replay", "server %s: replayed %u resource subscriptions%s%s",
                 up->srv->name, n, up->log_level[0] ? " and log level " : "", up->log_level);
    refresh_lists(up, -1);
}

struct sub_collect {
    int server;
    json_t *set;
    const char *owner; /* only this principal's sessions, when set */
};

static void collect_subs_cb(struct session *s, void *arg)
{
    struct sub_collect *c = arg;
    if (c->owner == NULL || session_owned_by(s, c->owner))
        session_collect_subscriptions(s, c->server, c->set);
}

/* Every URI some client session that up serves (audience) is subscribed to on up, as the keys
   of a new object. */
static json_t *subscriptions_of(struct upstream *up)
{
    struct sub_collect c = {up->index, json_object(), audience(up)};
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

unsigned gw_replay_session_state(struct upstream *up)
{
    if (up->log_level[0] && json_object_get(up->caps, "logging") != NULL)
        gw_internal_request(up, "logging/setLevel", json_pack("{s:s}", "level", up->log_level),
                            replay_cb, what_level);
    json_t *subs = subscriptions_of(up);
    unsigned n = 0;
    if (json_is_true(json_object_get(json_object_get(up->caps, "resources"), "subscribe"))) {
        const char *uri;
        json_t *v;
        json_object_foreach(subs, uri, v)
        {
            (void)v;
            gw_internal_request(up, "resources/subscribe", json_pack("{s:s}", "uri", uri),
                                replay_cb, what_subscribe);
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
void gw_relisten(struct upstream *up)
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
        gw_pending_free(l);
    }
    uv_timer_stop(&up->listen_timer);
    up->listen_failures = 0;
    open_listen(up);
}

static void send_initialize(struct upstream *up);
static void send_discover(struct upstream *up);

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
    if (o == MCP_PROBE_RETRY && !up->probe_retried) {
        /* The server refused the version but lists it as supported (SEP-2575: retry with a
           supported version): once, so that a server that always answers so cannot loop us. */
        log_info("upstream_era", "server %s: %s", up->srv->name, account);
        up->probe_retried = true;
        send_discover(up);
        return;
    }
    if (o == MCP_PROBE_RETRY) {
        snprintf(reason, sizeof(reason), "%s; it refused the same version again", account);
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

/* The era probe: server/discover, answered in discover_cb. */
static void send_discover(struct upstream *up)
{
    uint32_t t = up->srv->timeouts.first_byte_ms;
    if (up->srv->transport == TRANSPORT_STDIO && (t == 0 || t > PROBE_STDIO_TIMEOUT_MS))
        t = PROBE_STDIO_TIMEOUT_MS;
    internal_request_ex(up, "server/discover", json_object(), discover_cb, NULL, true, t);
}

static void begin_init(struct upstream *up)
{
    uv_timer_stop(&up->retry_timer);
    set_state(up, UP_INITIALIZING, "");
    atomic_store(&up->modern, false);
    up->probe_retried = false;
    if (up->srv->transport != TRANSPORT_OPENAPI && up->srv->protocol != PROTOCOL_LEGACY) {
        send_discover(up);
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
    gw_internal_request(up, "initialize", params, init_cb, NULL);
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
            gw_emit_error(p, JSONRPC_UPSTREAM_UNAVAILABLE, "server \"%s\" went away: %s",
                          p->up->srv->name, why);
        }
    }
    gw_pending_free(p);
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
        f->p->up = up;
        gw_emit_error(f->p, JSONRPC_UPSTREAM_UNAVAILABLE, "server \"%s\" went away: %s",
                      up->srv->name, reason);
        f->p->answered = true;
        gw_pending_free(f->p);
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
bool gw_hold_call(struct upstream *up, struct pending *p, bool sent)
{
    if (p->cb != NULL || p->sent == NULL || p->resent || p->held || up->gave_up ||
        up->nheld >= gw_queue_limit(up) || up->closing)
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
            uv_timer_start(p->timer, gw_call_timeout_cb, up->srv->timeouts.total_ms, 0);
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
            mcp_emit_error(p->call, p->stream, p->client_id, JSONRPC_INTERNAL_ERROR, NULL,
                           "out of memory");
            gw_pending_maybe_free(p);
        } else {
            f->up = up;
            f->p = p;
            f->msg = json_incref(p->sent);
            gw_forward_cb(f);
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
        if (opening(up))
            snprintf(m, sizeof(m), "server \"%s\" could not open a session for this user: %s",
                     up->srv->name, why);
        else
            snprintf(m, sizeof(m), "server \"%s\" lost its session (%s) and %s", up->srv->name,
                     up->recover_why, why);
        gw_emit_error(p, JSONRPC_UPSTREAM_UNAVAILABLE, "%s", m);
        gw_pending_maybe_free(p);
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
void gw_begin_recovery(struct upstream *up, const char *why)
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
bool gw_give_up_recovery(struct upstream *up, const char *why)
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

void gw_finish_recovery(struct upstream *up)
{
    json_t *f =
        json_pack("{s:s, s:s, s:i, s:i}", "server", up->srv->name, "was", up->recover_why,
                  "failed_attempts", (int)up->recover_attempts, "held_calls", (int)up->nheld);
    if (up->base != NULL)
        json_object_set_new(f, "user", json_string(up->owner));
    log_fields(LOG_INFO, opening(up) ? "upstream_user_session_ready" : "upstream_recovered", f);
    up->opened = true;
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
            if (!gw_give_up_recovery(up, why ? why : "the server is down"))
                schedule_reinit(up);
        }
        break;
    case TRANSPORT_STARTING:
        break;
    }
}

/* Home thread: client call p (a gateway task's, tasks.c) made the server create a task of its
   own (p->up_task): ask for its result, which plays the part of the call's answer from now on
   (the server's requests for input come while it waits, related to it). */
static void follow_task(struct upstream *up, struct pending *p)
{
    json_t *msg =
        jsonrpc_request_new(json_null(), "tasks/result", json_pack("{s:s}", "taskId", p->up_task));
    idmap_del(&up->pending, p->id); /* gw_send_pending puts it back */
    int err = msg ? gw_send_pending(up, p, msg) : ERR_NOMEM;
    json_decref(msg);
    if (err) {
        fail_pending(
            p, JSONRPC_UPSTREAM_UNAVAILABLE,
            "server \"%s\" created its task, but the gateway could not ask for its result: "
            "%s",
            up->srv->name, err_str(err));
        gw_pending_maybe_free(p);
    }
}

static void task_poll_cb(uv_timer_t *t);

/* Home thread: poll the 2026-07-28 server's task that p follows after its poll interval. */
static void poll_task_later(struct upstream *up, struct pending *p)
{
    if (p->task_poll == NULL && (p->task_poll = malloc(sizeof(*p->task_poll))) != NULL) {
        uv_timer_init(up->home->loop, p->task_poll);
        p->task_poll->data = p;
    }
    if (p->task_poll == NULL) {
        fail_pending(p, JSONRPC_INTERNAL_ERROR, "out of memory");
        gw_pending_maybe_free(p);
        return;
    }
    uv_timer_start(p->task_poll, task_poll_cb, p->task_poll_ms, 0);
}

/* Home thread: p's final answer, from its server's task (msg: a result or error object). */
static void task_final(struct upstream *up, struct pending *p, json_t *msg)
{
    idmap_del(&up->pending, p->id);
    p->answered = true;
    gw_answer_client(p, msg);
    gw_call_finished(up);
    gw_pending_maybe_free(p);
}

/* Home thread: the server's tasks/get of the task that call `arg` (its id) follows. The call may
   have ended meanwhile (cancelled, timed out): then nothing is left to do. */
static void task_got_cb(struct upstream *up, json_t *msg, int err, const char *why, void *arg)
{
    struct pending *p = idmap_get(&up->pending, (uint64_t)(uintptr_t)arg);
    if (p == NULL || p->cb != NULL || p->answered || p->up_task == NULL)
        return;
    p->task_polling = false;
    json_t *e = json_object_get(msg, "error");
    if (err != 0 || e != NULL) {
        fail_pending(
            p, err == ERR_TIMEOUT ? JSONRPC_UPSTREAM_TIMEOUT : JSONRPC_UPSTREAM_UNAVAILABLE,
            "server \"%s\" ran the call as a task of its own, but its tasks/get failed: %s",
            up->srv->name,
            err ? (why ? why : err_str(err)) : json_string_value(json_object_get(e, "message")));
        gw_pending_maybe_free(p);
        return;
    }
    json_t *r = json_object_get(msg, "result");
    const char *status = json_string_value(json_object_get(r, "status"));
    json_t *answer = NULL;
    if (status != NULL && strcmp(status, "completed") == 0) {
        json_t *res = json_object_get(r, "result");
        json_t *jid = json_integer((json_int_t)p->id);
        answer = jsonrpc_result_new(jid, json_is_object(res) ? json_incref(res) : json_object());
        json_decref(jid);
    } else if (status != NULL && strcmp(status, "failed") == 0) {
        json_t *te = json_object_get(r, "error");
        te = json_is_object(te) ? json_incref(te)
                                : json_pack("{s:i, s:s}", "code", JSONRPC_INTERNAL_ERROR, "message",
                                            "the server's task failed");
        answer =
            json_pack("{s:s, s:I, s:o}", "jsonrpc", "2.0", "id", (json_int_t)p->id, "error", te);
    } else if (status != NULL && strcmp(status, "cancelled") == 0) {
        fail_pending(p, JSONRPC_UPSTREAM_UNAVAILABLE, "server \"%s\" cancelled its task",
                     up->srv->name);
        gw_pending_maybe_free(p);
        return;
    } else if (status != NULL && strcmp(status, "input_required") == 0 &&
               json_is_object(json_object_get(r, "inputRequests"))) {
        /* The call answers as an InputRequiredResult whose state (sealed by the MRTR bridge, bound
           to this server, tool and principal) names the server's task: the retry with the
           answers becomes tasks/update (gateway.c, modern_call). */
        char state[sizeof(GW_TASK_STATE) + 512];
        if (snprintf(state, sizeof(state), "%s%s", GW_TASK_STATE, p->up_task) <
            (int)sizeof(state)) {
            json_t *ir = json_pack("{s:s, s:I, s:{s:s, s:O, s:s}}", "jsonrpc", "2.0", "id",
                                   (json_int_t)p->id, "result", "resultType", "input_required",
                                   "inputRequests", json_object_get(r, "inputRequests"),
                                   "requestState", state);
            idmap_del(&up->pending, p->id);
            if (!gw_input_required(up, p, ir)) {
                p->answered = true;
                gw_answer_client(p, ir);
                gw_call_finished(up);
            }
            json_decref(ir);
            gw_pending_maybe_free(p);
            return;
        }
    }
    if (answer != NULL) {
        task_final(up, p, answer);
        json_decref(answer);
        return;
    }
    poll_task_later(up, p); /* working (or a status this revision does not name) */
}

static void task_poll_cb(uv_timer_t *t)
{
    struct pending *p = t->data;
    if (p->answered || p->task_polling || p->up == NULL || p->up->t == NULL)
        return;
    p->task_polling = true;
    gw_internal_request(p->up, "tasks/get", json_pack("{s:s}", "taskId", p->up_task), task_got_cb,
                        (void *)(uintptr_t)p->id);
}

/* Home thread: p made a 2026-07-28 server create its task: poll it (p stays among the calls in
   flight, where a cancellation finds it). */
static void task_follow_modern(struct upstream *up, struct pending *p)
{
    int err = idmap_put(&up->pending, p->id, p);
    if (err) {
        fail_pending(p, JSONRPC_INTERNAL_ERROR, "cannot follow the server's task: %s",
                     err_str(err));
        gw_pending_maybe_free(p);
        return;
    }
    poll_task_later(up, p);
}

/* Home thread: msg answers p; when p asked the server for a task (p->task_aug) and msg is the
   task the server created, p follows that task and true is returned. */
static bool task_made(struct upstream *up, struct pending *p, json_t *msg)
{
    if (p->cb == NULL && p->task_update) {
        /* the server took the answers of its task's input: poll it again */
        p->task_update = false;
        if (json_object_get(msg, "error") != NULL)
            return false; /* the error is the call's answer */
        p->answered = false;
        if (p->exchange_open)
            p->task_next = true;
        else
            task_follow_modern(up, p);
        return true;
    }
    if (p->cb != NULL || !p->task_aug || p->up_task != NULL)
        return false;
    bool modern = atomic_load(&up->modern);
    json_t *res = json_object_get(msg, "result");
    json_t *task = modern ? res : json_object_get(res, "task");
    const char *rt = json_string_value(json_object_get(res, "resultType"));
    const char *id = json_string_value(json_object_get(task, "taskId"));
    if (id == NULL || (modern && (rt == NULL || strcmp(rt, "task") != 0)) ||
        (p->up_task = strdup(id)) == NULL)
        return false; /* an ordinary answer (a server may run a call at once) */
    p->answered = false;
    if (modern) {
        json_t *ms = json_object_get(task, "pollIntervalMs");
        json_int_t v = json_is_integer(ms) ? json_integer_value(ms) : 500;
        p->task_poll_ms = v < 100 ? 100 : v > 5000 ? 5000 : (uint32_t)v;
    }
    if (p->exchange_open)
        p->task_next = true; /* HTTP: once this exchange is done (done_cb) */
    else if (modern)
        task_follow_modern(up, p);
    else
        follow_task(up, p);
    return true;
}

static void done_cb(void *owner, void *related, int err, const char *why)
{
    struct upstream *up = owner;
    struct pending *p = related;
    if (p == NULL)
        return;
    p->exchange_open = false;
    if (p->task_next) {
        p->task_next = false;
        if (err == 0 && !p->answered) {
            /* the creating exchange is over: now its result */
            if (atomic_load(&up->modern))
                task_follow_modern(up, p);
            else
                follow_task(up, p);
            return;
        }
    }
    bool lost = err == ERR_NOTFOUND && !up->closing &&
                (up->state == UP_READY || up->state == UP_INITIALIZING);
    if (lost && !p->answered && gw_hold_call(up, p, true)) {
        /* The server refused the call for the session it forgot: it never ran it, so it is sent
           again on the new session. */
        gw_begin_recovery(up, "the server answered HTTP 404 for its session");
        return;
    }
    if (!p->answered && err == ERR_DENIED && up->srv->oauth.enabled && p->cb == NULL &&
        p->call != NULL && why != NULL && strstr(why, TRANSPORT_WWW_AUTH) != NULL) {
        /* The server refused the user's token, or wants a wider scope: the user's link to
           connect again (vault_stage.c) */
        json_t *e = mcp_vault_challenge_error(
            &p->call->who, up->srv->name,
            strstr(why, TRANSPORT_WWW_AUTH) + sizeof(TRANSPORT_WWW_AUTH) - 1, p->client_id);
        if (e != NULL) {
            p->answered = true;
            idmap_del(&p->up->pending, p->id);
            gw_call_finished(p->up);
            mcp_emit(p->call, NULL, p->stream, e, EMIT_FINAL);
            json_decref(e);
        }
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
        gw_begin_recovery(up, "the server answered HTTP 404 for its session");
    gw_pending_maybe_free(p);
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

const char *gw_required_capability(const char *method)
{
    if (strcmp(method, "sampling/createMessage") == 0)
        return "sampling";
    if (strcmp(method, "elicitation/create") == 0)
        return "elicitation";
    if (strcmp(method, "roots/list") == 0)
        return "roots";
    return NULL;
}

void gw_answer_server(struct upstream *up, json_t *id, int code, const char *message)
{
    json_t *r =
        code ? jsonrpc_error_new(id, code, message, NULL) : jsonrpc_result_new(id, json_object());
    transport_send(up->t, r, NULL);
    json_decref(r);
}

/* Home thread: stop client call p upstream (notifications/cancelled) and forget it. */
void gw_cancel_call(struct upstream *up, struct pending *p, const char *reason)
{
    cancel_upstream(up, p, reason);
    idmap_del(&up->pending, p->id);
    p->answered = true;
    pipeline_done(p->call, CALL_CANCELLED, 0);
    stream_end(p->stream);
    if (p->exchange_open) {
        transport_cancel(up->t, p);
        p->exchange_open = false;
    }
    gw_pending_free(p);
    gw_call_finished(up);
}

/* Any thread: have call `id` of up cancelled on its home thread (where it may be gone by then).
   With refusals (borrowed: an array of {"id": the server's request id, "message": why}), those
   requests of the server are then refused, each with its message. */
int gw_post_cancel(struct upstream *up, uint64_t id, const char *reason, json_t *refusals)
{
    struct forward *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return ERR_NOMEM;
    f->up = up_server(up); /* an instance may be closed by the time this runs */
    snprintf(f->owner, sizeof(f->owner), "%s", up->base != NULL ? up->owner : "");
    f->msg = json_pack("{s:I, s:s}", "id", (json_int_t)id, "reason", reason);
    if (f->msg != NULL && json_array_size(refusals) > 0)
        json_object_set(f->msg, "refuse", refusals);
    if (f->msg == NULL || mailbox_post(up->home->mb, gw_cancel_on_home_cb, f) != 0) {
        json_decref(f->msg);
        free(f);
        return ERR_CLOSED;
    }
    return 0;
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

/* Send r (an answer to the server's request `method`) and count it under `outcome`; an answer
   that cannot be sent is logged and counted "unanswered", never lost without a trace. */
static void send_server_answer(struct upstream *up, json_t *r, const char *method,
                               const char *outcome)
{
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

/* Answer the server's request `id` (code 0: an empty result) and count it under `outcome`. */
static void answer_server_request(struct upstream *up, json_t *id, const char *method, int code,
                                  const char *message, const char *outcome)
{
    send_server_answer(up,
                       code ? jsonrpc_error_new(id, code, message, NULL)
                            : jsonrpc_result_new(id, json_object()),
                       method, outcome);
}

struct task_find {
    const char *id;
    struct pending *p;
};

static void find_task_cb(uint64_t key, void *val, void *arg)
{
    (void)key;
    struct pending *p = val;
    struct task_find *f = arg;
    if (p->cb == NULL && !p->answered && p->up_task != NULL && strcmp(p->up_task, f->id) == 0)
        f->p = p;
}

/* The client call following the server's task that msg (a server request or notification)
   names in _meta io.modelcontextprotocol/related-task, or NULL. The server's task id is the
   gateway's secret: it leaves msg (the call's own task takes its place where one is shown). */
static struct pending *task_related_call(struct upstream *up, json_t *msg)
{
    json_t *meta = json_object_get(json_object_get(msg, "params"), "_meta");
    const char *id = json_string_value(
        json_object_get(json_object_get(meta, "io.modelcontextprotocol/related-task"), "taskId"));
    if (id == NULL)
        return NULL;
    struct task_find f = {id, NULL};
    idmap_foreach(&up->pending, find_task_cb, &f);
    if (f.p != NULL)
        json_object_del(meta, "io.modelcontextprotocol/related-task");
    return f.p;
}

static void server_request(struct upstream *up, json_t *msg, void *related)
{
    json_t *id = json_object_get(msg, "id");
    const char *method = jsonrpc_method(msg);
    if (strcmp(method, "ping") == 0) {
        answer_server_request(up, id, method, 0, NULL, "answered");
        return;
    }
    struct pending *call = task_related_call(up, msg);
    if (call == NULL)
        call = related_call(up, related);
    if (call == NULL && strcmp(method, "roots/list") == 0) {
        /* Outside a client's call (a server asks at start, after initialized), the roots are the
           gateway's own: it has none to offer. Declared roots must be answered (2025-11-25,
           client/roots); an empty list is the true answer. */
        send_server_answer(up, jsonrpc_result_new(id, json_pack("{s:[]}", "roots")), method,
                           "answered");
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
        gw_mrtr_input_request(up, call, msg, call != related);
        return;
    }
    const char *cap = gw_required_capability(method);
    if (cap != NULL && !session_has_capability(call->session, cap)) {
        char m[200];
        snprintf(m, sizeof(m), "the client did not declare the \"%s\" capability", cap);
        answer_server_request(up, id, method, JSONRPC_METHOD_NOT_FOUND, m, "refused");
        return;
    }
    uint64_t down_id = session_next_request_id(call->session);
    /* The server's entry, not the instance: the client's answer finds the instance again by
       its principal (gateway_relay_answer_cb), and an instance may close meanwhile. */
    if (session_track_request(call->session, down_id, up_server(up), id) != 0) {
        answer_server_request(up, id, method, JSONRPC_INTERNAL_ERROR,
                              "the client session is closed", "refused");
        return;
    }
    json_t *copy = json_copy(msg);
    json_object_set_new(copy, "id", gw_request_id(call->session, down_id));
    gw_emit(call, copy, false);
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
    struct upstream *up = gw_instance_with_call(bp->up, bp->id);
    struct pending *p = idmap_get(&up->pending, bp->id);
    if (p != NULL && p->paused) {
        p->paused = false;
        if (up->t != NULL)
            transport_resume(up->t, p);
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
    bp->up = up_server(up); /* found again by the call's id: an instance may close meanwhile */
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
        gw_emit(p, copy, false);
        json_decref(copy);
        apply_backpressure(up, p, related);
        return;
    }
    for (int k = 0; k < CAT_NKINDS; k++) {
        if (changed_methods[k] && strcmp(method, changed_methods[k]) == 0) {
            if (up->base != NULL) {
                /* A user's instance: its user's sessions hear it, nobody else's; the catalog
                   stays the server's. */
                tell_audience(up, msg, NULL);
                return;
            }
            /* Clients hear of it once the new catalog is published, so that a client listing again
               at once sees the change. */
            up->announce |= 1u << k;
            if (up->state == UP_READY && up->fetches_left == 0)
                refresh_lists(up, k);
            return;
        }
    }
    if (strcmp(method, "notifications/resources/updated") == 0) {
        tell_audience(up, msg, json_string_value(json_object_get(params, "uri")));
        return;
    }
    if (strcmp(method, "notifications/tasks/status") == 0) {
        /* A server's task the gateway follows: its status message goes to the gateway task
           (tasks.c reads it from the call's stream), without the server's id. */
        const char *tid = json_string_value(json_object_get(params, "taskId"));
        struct task_find f = {tid, NULL};
        if (tid != NULL)
            idmap_foreach(&up->pending, find_task_cb, &f);
        if (f.p == NULL)
            return;
        json_t *status = json_object_get(params, "status");
        json_t *message = json_object_get(params, "statusMessage");
        json_t *n = jsonrpc_notification_new("notifications/tasks/status", json_object());
        json_t *np = json_object_get(n, "params");
        if (json_is_string(status))
            json_object_set(np, "status", status);
        if (json_is_string(message))
            json_object_set(np, "statusMessage", message);
        gw_emit(f.p, n, false);
        json_decref(n);
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
                gw_emit(call, msg, false);
        } else if (call)
            gw_emit(call, msg, false);
        else
            tell_audience(up, msg, NULL);
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
    if (task_made(up, p, msg))
        return;
    const char *rule = NULL;
    if (json_object_get(msg, "error") != NULL && !atomic_load(&up->modern) &&
        up->state == UP_READY && (rule = dead_session_rule(msg)) != NULL) {
        char why[400];
        snprintf(why, sizeof(why), "its error \"%.200s\" matched the rule \"%s\"",
                 json_string_value(json_object_get(json_object_get(msg, "error"), "message")),
                 rule);
        if (p->cb == NULL && gw_hold_call(up, p, true)) {
            gw_begin_recovery(up, why);
            return;
        }
        gw_begin_recovery(up, why);
    }
    if (p->cb) {
        p->cb(up, msg, 0, NULL, p->arg);
    } else if (!gw_input_required(up, p, msg)) {
        gw_answer_client(p, msg);
        gw_call_finished(up);
    }
    gw_pending_maybe_free(p);
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
    gw_pending_maybe_free(p);
}

static void start_reaper(struct upstream *up);

static void start_upstream_cb(void *arg)
{
    struct upstream *up = arg;
    static const struct transport_cbs cbs_template = {NULL, message_cb, done_cb, state_cb,
                                                      bad_message_cb};
    struct transport_cbs cbs = cbs_template;
    cbs.owner = up;
    start_reaper(up);
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

/* --- per-user instances (sessions: per_user; home thread) --- */

/* The number of up's users' sessions changed: /readyz and gatehouse_upstream_user_sessions. */
static void users_changed(struct upstream *up)
{
    static const char *const names[] = {"server"};
    atomic_store(&up->users_open, up->nusers);
    struct metric *m =
        metrics_gauge("gatehouse_upstream_user_sessions",
                      "Users' upstream sessions open, by server (sessions: per_user)", 1, names);
    const char *values[] = {up->srv->name};
    metrics_set(m, values, up->nusers);
}

static void reap_cb(uv_timer_t *t);

/* Every handle of instance `in` is closed: free what is left of it. */
static void instance_closed_cb(uv_handle_t *h)
{
    struct upstream *in = h->data;
    if (--in->closing_handles > 0)
        return;
    for (int k = 0; k < CAT_NKINDS; k++) {
        json_decref(in->lists[k]);
        json_decref(in->fetching[k]);
    }
    json_decref(in->caps);
    json_decref(in->pub_caps);
    json_decref(in->listen_subs);
    idmap_release(&in->pending);
    free(in);
}

/* Close instance `in` (why: for the log and its calls' errors), out of its server's table. */
static void instance_close(struct upstream *in, const char *why)
{
    struct upstream *up = in->base;
    for (unsigned i = 0; i < up->nusers; i++)
        if (up->users[i] == in) {
            up->users[i] = up->users[--up->nusers];
            break;
        }
    users_changed(up);
    json_t *f = json_pack("{s:s, s:s, s:s, s:i}", "server", up->srv->name, "user", in->owner, "why",
                          why, "open", (int)up->nusers);
    log_fields(LOG_INFO, "upstream_user_session_closed", f);
    in->closing = true;
    fail_held(in, why);
    fail_all(in, why);
    if (in->t != NULL) {
        transport_close(in->t); /* stdio: the child's process group ends; HTTP: DELETE */
        in->t = NULL;
    }
    in->closing_handles = 2;
    uv_close((uv_handle_t *)&in->retry_timer, instance_closed_cb);
    uv_close((uv_handle_t *)&in->listen_timer, instance_closed_cb);
}

/* A new instance of server up for owner, started (its session opens as a stdio child starts or
   at once over HTTP). Calls sent to it meanwhile are held, as during a recovery, and go out
   once it is ready. NULL: out of memory. */
static struct upstream *instance_new(struct upstream *up, const char *owner)
{
    struct upstream **users = realloc(up->users, (up->nusers + 1) * sizeof(*users));
    if (users == NULL)
        return NULL;
    up->users = users;
    struct upstream *in = calloc(1, sizeof(*in));
    if (in == NULL)
        return NULL;
    in->index = up->index;
    in->srv = up->srv;
    in->cfg = up->cfg; /* the server's entry holds the reference and outlives its instances */
    in->home = up->home;
    in->base = up;
    snprintf(in->owner, sizeof(in->owner), "%s", owner);
    in->pub_state = UP_STARTING;
    idmap_init(&in->pending);
    in->caps = json_object();
    in->last_used = uv_now(up->home->loop);
    in->recovering = true; /* its calls wait for the session, as after a lost one */
    snprintf(in->recover_why, sizeof(in->recover_why), "opening a session for user %s", owner);
    up->users[up->nusers++] = in;
    users_changed(up);
    json_t *f = json_pack("{s:s, s:s, s:i, s:i}", "server", up->srv->name, "user", owner, "open",
                          (int)up->nusers, "max", (int)up->srv->user_max);
    log_fields(LOG_INFO, "upstream_user_session_opened", f);
    start_upstream_cb(in);
    return in;
}

/* The instance of server up that serves `owner` (a principal_key), if it has one: up itself
   for a shared server and for "" (no principal: authentication off); NULL when that user has
   no session open. */
struct upstream *gw_instance_for(struct upstream *up, const char *owner)
{
    up = up_server(up);
    if (up->srv->sessions != SESSIONS_PER_USER || owner == NULL || owner[0] == '\0')
        return up;
    for (unsigned i = 0; i < up->nusers; i++)
        if (strcmp(up->users[i]->owner, owner) == 0)
            return up->users[i];
    return NULL;
}

/* The instance of server up (its entry or a user's) that has request id in flight; the server's
   entry when none has. */
struct upstream *gw_instance_with_call(struct upstream *up, uint64_t id)
{
    up = up_server(up);
    for (unsigned i = 0; i < up->nusers; i++)
        if (idmap_get(&up->users[i]->pending, id) != NULL)
            return up->users[i];
    return up;
}

/* Home thread, before a call is sent: send it to its principal's instance (f->owner) of a
   per_user server, opening the instance at the user's first call. False when the call was
   answered instead (user_sessions.max reached, out of memory); f and its call are then freed. */
bool gw_pick_instance(struct forward *f)
{
    struct upstream *up = f->up;
    if (f->owner[0] == '\0' || up->base != NULL || up->srv->sessions != SESSIONS_PER_USER)
        return true;
    struct upstream *in = gw_instance_for(up, f->owner);
    char m[400] = "";
    if (in == NULL && up->closing)
        snprintf(m, sizeof(m), "server \"%s\" is stopping", up->srv->name);
    else if (in == NULL && up->nusers >= up->srv->user_max)
        snprintf(m, sizeof(m),
                 "server \"%s\" has %u user sessions open, its limit (user_sessions.max %u); a "
                 "session closes after user_sessions.idle_timeout (%u s) without calls; try again "
                 "later",
                 up->srv->name, up->nusers, up->srv->user_max, up->srv->user_idle_ms / 1000);
    else if (in == NULL && (in = instance_new(up, f->owner)) == NULL)
        snprintf(m, sizeof(m),
                 "could not open a session of server \"%s\" for the user: out of memory",
                 up->srv->name);
    if (in == NULL) {
        static const char *const names[] = {"server"};
        const char *values[] = {up->srv->name};
        metrics_inc(metrics_counter("gatehouse_upstream_user_sessions_refused_total",
                                    "Calls refused because their server had user_sessions.max "
                                    "users' sessions open (or could not open one), by server",
                                    1, names),
                    values, 1);
        struct pending *p = f->p;
        log_info("call_dropped", "a call to server %s was not sent: %s", up->srv->name, m);
        p->up = up;
        gw_emit_error(p, JSONRPC_GATEWAY_LIMIT, "%s", m);
        p->answered = true;
        gw_pending_free(p);
        json_decref(f->msg);
        free(f);
        return false;
    }
    if (in->log_level[0] == '\0' && f->p->session != NULL) {
        /* The level this client set before the instance existed, replayed when it is ready. */
        const char *level = mcp_log_level_name(session_log_level(f->p->session));
        if (level != NULL)
            snprintf(in->log_level, sizeof(in->log_level), "%s", level);
    }
    in->last_used = uv_now(in->home->loop);
    f->up = in;
    f->owner[0] = '\0';
    return true;
}

/* Does instance in have a client's call in flight or waiting? */
static void count_calls_cb(uint64_t key, void *val, void *arg)
{
    (void)key;
    *(unsigned *)arg += ((struct pending *)val)->cb == NULL;
}

static bool instance_busy(struct upstream *in)
{
    unsigned calls = in->inflight + in->queued + in->nheld;
    if (calls == 0)
        idmap_foreach(&in->pending, count_calls_cb, &calls); /* parked MRTR calls too */
    return calls > 0;
}

/* The sweep of a per_user server: close the instances idle for user_sessions.idle_timeout. */
static void reap_cb(uv_timer_t *t)
{
    struct upstream *up = t->data;
    uint64_t now = uv_now(up->home->loop);
    for (unsigned i = up->nusers; i-- > 0;) {
        struct upstream *in = up->users[i];
        if (!instance_busy(in) && now - in->last_used >= up->srv->user_idle_ms) {
            char why[160];
            snprintf(why, sizeof(why), "idle for %u ms (user_sessions.idle_timeout)",
                     up->srv->user_idle_ms);
            instance_close(in, why);
        }
    }
}

/* Start the idle sweep of a per_user server's entry: four times per idle_timeout, between
   100 ms and 30 s apart. */
static void start_reaper(struct upstream *up)
{
    if (up->base != NULL || up->srv->sessions != SESSIONS_PER_USER ||
        (up->reap_timer = malloc(sizeof(*up->reap_timer))) == NULL)
        return;
    uint64_t every = up->srv->user_idle_ms / 4;
    every = every < 100 ? 100 : every > 30000 ? 30000 : every;
    uv_timer_init(up->home->loop, up->reap_timer);
    up->reap_timer->data = up;
    uv_timer_start(up->reap_timer, reap_cb, every, every);
}

/* Close every instance of server up and its sweep (the gateway stops, or a reload retires it). */
static void close_instances(struct upstream *up, const char *why)
{
    while (up->nusers > 0)
        instance_close(up->users[up->nusers - 1], why);
    free(up->users);
    up->users = NULL;
    if (up->reap_timer != NULL) {
        uv_close((uv_handle_t *)up->reap_timer, (uv_close_cb)free);
        up->reap_timer = NULL;
    }
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
    gw.pipeline = pipeline_builtin();
    gw.workers = workers;
    gw.nworkers = nworkers;
    session_table_set_store(cfg->store.sqlite); /* ended sessions outlive a restart */
    static const struct session_engine engine = {mcp_cancel_call, gateway_server_name,
                                                 gateway_find_server};
    session_table_set_engine(&engine);
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
        a->max_message != b->max_message || a->prefix != b->prefix || a->protocol != b->protocol ||
        a->validate_arguments != b->validate_arguments || a->sessions != b->sessions ||
        a->user_idle_ms != b->user_idle_ms || a->user_max != b->user_max)
        return false;
    for (size_t i = 0; i < a->nargs; i++)
        if (!str_eq(a->args[i], b->args[i]))
            return false;
    if (a->noverlays != b->noverlays)
        return false;
    for (size_t i = 0; i < a->noverlays; i++)
        if (!str_eq(a->overlays[i], b->overlays[i]))
            return false;
    if (a->ncredentials != b->ncredentials)
        return false;
    for (size_t i = 0; i < a->ncredentials; i++)
        if (!str_eq(a->credentials[i].scheme, b->credentials[i].scheme) ||
            !str_eq(a->credentials[i].file, b->credentials[i].file) ||
            !str_eq(a->credentials[i].env, b->credentials[i].env))
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
    struct pipeline *pl = pipeline_builtin(), *old_pl;
    pthread_mutex_lock(&gw.lock);
    struct config *old = gw.cfg;
    gw.cfg = config_ref(cfg);
    old_pl = gw.pipeline; /* swapped with the configuration; calls in flight keep theirs */
    gw.pipeline = pl;
    int err = rebuild_locked(0, ei);
    pthread_mutex_unlock(&gw.lock);
    config_unref(old);
    pipeline_unref(old_pl);
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
    close_instances(up, up->retired ? "the server was removed or changed by a reload"
                                    : "the gateway is shutting down");
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
    gw_tasks_free();
    gw_task_waits_free();
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
        free(up->users); /* NULL once its stop closed them (close_instances) */
        config_unref(up->cfg);
        free(up);
        gw.ups[i] = NULL;
    }
    atomic_store(&gw.nups, 0);
    catalog_unref(gw.catalog);
    gw.catalog = NULL;
    pipeline_unref(gw.pipeline);
    gw.pipeline = NULL;
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
        if (up->srv->sessions == SESSIONS_PER_USER) {
            json_object_set_new(s, "sessions", json_string("per_user"));
            json_object_set_new(s, "user_sessions", json_integer(atomic_load(&up->users_open)));
            json_object_set_new(s, "user_sessions_max", json_integer(up->srv->user_max));
        }
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

const struct config_server *gateway_server_config(int index)
{
    return index >= 0 && (size_t)index < atomic_load(&gw.nups) ? gw.ups[index]->srv : NULL;
}

const char *gateway_server_name(int index)
{
    return index >= 0 && (size_t)index < atomic_load(&gw.nups) ? gw.ups[index]->srv->name : NULL;
}
