/*
 * The MCP engine's downstream side; see gateway.h for the model. Here: the dispatch of each
 * client message (the method table and its handlers), the calls' way through their request
 * stages (staged_dispatch; the stages themselves are pipeline.c's) to their server's home thread
 * (forward, the queue of calls waiting for a place), and the per-user views. The upstream side is
 * in upstreams.c, the MRTR bridge in mrtr.c; what they share is in gateway-int.h. Every message
 * to a client leaves through pipeline.c's emitter (mcp_emit, mcp_emit_reply).
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
 */
#include "mcp/gateway.h"
#include "core/err.h"
#include "core/idmap.h"
#include "core/log.h"
#include "core/rand.h"
#include "core/schema.h"
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

/* --- downstream dispatch (worker thread) --- */

unsigned gw_queue_limit(const struct upstream *up)
{
    return 4 * up->srv->max_concurrency;
}

/* Take f out of up's queue of calls waiting for a place; prev is the entry before it or NULL. */
void gw_unqueue(struct upstream *up, struct forward *prev, struct forward *f)
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
    p->up = up;
    pipeline_done(p->call, CALL_CANCELLED, 0); /* its client left, or cancelled it */
    /* for a client that resumes the stream */
    gw_emit_error(p, JSONRPC_GATEWAY_LIMIT, "the call was not sent to server \"%s\": %s",
                  up->srv->name, why);
    p->answered = true;
    gw_pending_free(p);
    json_decref(f->msg);
    free(f);
}

/* A client call left the server (answered, failed, cancelled): let a waiting one in. A waiting
   call whose client went away (its connection closed and was not resumed, its session ended) is
   not sent: a server saturated by calls nobody waits for would stay saturated for everyone. */
void gw_call_finished(struct upstream *up)
{
    if (up->inflight > 0)
        up->inflight--;
    while (up->queue_head != NULL && up->inflight < up->srv->max_concurrency) {
        struct forward *f = up->queue_head;
        gw_unqueue(up, NULL, f);
        if (stream_abandoned(f->p->stream)) {
            char why[160];
            snprintf(why, sizeof(why),
                     "its client went away while it waited for a place (max_concurrency %u)",
                     up->srv->max_concurrency);
            drop_queued(up, f, why);
            continue;
        }
        gw_forward_cb(f);
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
        gw_relisten(up);
        json_t *res = jsonrpc_result_new(p->client_id, json_object());
        gw_emit(p, res, true);
        json_decref(res);
        p->answered = true;
        gw_pending_free(p);
        return false;
    }
    json_t *params = json_object_get(msg, "params");
    const char *state = json_string_value(json_object_get(params, "requestState"));
    if (session_transient(p->session) && state != NULL &&
        strncmp(state, GW_TASK_STATE, strlen(GW_TASK_STATE)) == 0 && p->up_task == NULL &&
        (p->up_task = strdup(state + strlen(GW_TASK_STATE))) != NULL) {
        /* The retry of a gateway task waiting for the input of the server's own task: the state
           came out of the gateway's seal (upstreams.c, task_got_cb), so it names a task this
           call's task follows. The answers go to that task (tasks/update), which is then
           polled again. */
        json_object_set_new(msg, "method", json_string("tasks/update"));
        json_t *np = json_pack("{s:s, s:O}", "taskId", p->up_task, "inputResponses",
                               json_object_get(params, "inputResponses"));
        json_t *meta = json_object_get(params, "_meta");
        if (meta != NULL)
            json_object_set(np, "_meta", meta);
        json_object_set_new(msg, "params", np);
        p->task_aug = true;
        p->task_update = true;
    }
    json_t *caps = gw_relay_capabilities(p->session);
    if (p->task_aug) {
        /* A gateway task's call (tasks.c): the server runs it as a task of its own when the
           request declares the tasks extension; the 2025-11-25 `task` param is not its. */
        json_object_del(json_object_get(msg, "params"), "task");
        json_object_set_new(caps, "extensions",
                            json_pack("{s:{}}", "io.modelcontextprotocol/tasks"));
    }
    int rank = session_log_level(p->session); /* a legacy client's: its logging/setLevel */
    int err = mcp_era_add_meta(msg, caps, rank);
    json_decref(caps);
    if (err == 0 && !session_transient(p->session) && p->call_msg == NULL &&
        (strcmp(method, "tools/call") == 0 || strcmp(method, "prompts/get") == 0 ||
         strcmp(method, "resources/read") == 0))
        p->call_msg = json_deep_copy(msg); /* an InputRequiredResult is retried from it */
    return true;
}

void gw_forward_cb(void *arg)
{
    struct forward *f = arg;
    if (!gw_pick_instance(f)) /* per_user: the caller's own session of the server */
        return;
    struct upstream *up = f->up;
    struct pending *p = f->p;
    p->up = up;
    if (up->state != UP_READY && up->recovering && p->sent == NULL)
        p->sent = json_incref(f->msg);
    if (up->state != UP_READY && up->recovering && gw_hold_call(up, p, false))
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
            gw_begin_recovery(up, "a client called it after recovery had given up");
        }
        gw_emit_error(p, JSONRPC_UPSTREAM_UNAVAILABLE, "%s", m);
        gw_pending_free(p);
        goto out;
    }
    if (up->inflight >= up->srv->max_concurrency) {
        /* Wait for a place, in order; the queue is bounded so that a stuck server cannot make
           the gateway hold requests without limit. */
        if (up->queued >= gw_queue_limit(up)) {
            char m[300];
            snprintf(
                m, sizeof(m),
                "server \"%s\" has %u requests in flight and %u waiting (max_concurrency %u); try again later",
                up->srv->name, up->inflight, up->queued, up->srv->max_concurrency);
            gw_emit_error(p, JSONRPC_GATEWAY_LIMIT, "%s", m);
            p->answered = true;
            gw_pending_free(p);
            goto out;
        }
        /* timeouts.total counts from the call's arrival, so its timer runs while it waits
           (gw_send_pending keeps a running timer). */
        if (p->cb == NULL && p->timer == NULL && up->srv->timeouts.total_ms &&
            (p->timer = malloc(sizeof(*p->timer))) != NULL) {
            uv_timer_init(up->home->loop, p->timer);
            p->timer->data = p;
            uv_timer_start(p->timer, gw_call_timeout_cb, up->srv->timeouts.total_ms, 0);
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
    if (!atomic_load(&up->modern) && p->mrtr_ok) {
        /* A legacy server asks for input as the gateway declared at initialize; the caller's own
           capabilities go with its call, for a server that reads them (mrtr.c sorts the rest). */
        json_t *caps = gw_relay_capabilities(p->session);
        mcp_era_add_caps_meta(f->msg, caps); /* out of memory: the server sees none */
        json_decref(caps);
    }
    int err = gw_send_pending(up, p, f->msg);
    if (err) {
        char m[300];
        snprintf(m, sizeof(m), "could not send to server \"%s\": %s", up->srv->name, err_str(err));
        mcp_emit_error(p->call, p->stream, p->client_id,
                       err == ERR_LIMIT ? JSONRPC_GATEWAY_LIMIT : JSONRPC_UPSTREAM_UNAVAILABLE,
                       NULL, m);
        gw_pending_free(p);
        goto out;
    }
    up->inflight++;
    p->prev_call = up->last_call;
    up->last_call = p;
out:
    json_decref(f->msg);
    free(f);
}

/* One downstream message being dispatched: what every method handler gets. */
struct dispatch {
    struct mcp_worker *w;
    int view;
    const struct principal *who;
    struct session *s;
    json_t *msg, *id, *params;
    const char *method;
    struct catalog *cat; /* the worker's catalog (requests only) */
    struct mcp_reply *r;
    struct stream *stream; /* resumed after a suspended request stage: the answer stream the
                              client already has (staged_dispatch), else NULL */
};

void gw_reply_error(struct mcp_reply *r, json_t *id, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    r->status = 200;
    r->body = jsonrpc_error_newv(id, code, NULL, fmt, ap);
    va_end(ap);
}

static void reply_result(struct mcp_reply *r, json_t *id, json_t *result)
{
    r->status = 200;
    r->body = jsonrpc_result_new(id, result);
}

/* Worker thread: the call of f (its stages passed) goes to its server's home thread. */
static void post_forward(struct forward *f)
{
    struct pending *p = f->p;
    struct upstream *up = f->up;
    session_track_call(p->session, p->client_id, gw_call_cookie(up->index, p->id));
    if (mailbox_post(up->home->mb, gw_forward_cb, f) != 0) {
        session_untrack_call(p->session, p->client_id, gw_call_cookie(up->index, p->id));
        json_decref(f->msg);
        free(f);
        p->answered = true;
        mcp_emit_error(p->call, p->stream, p->client_id, JSONRPC_UPSTREAM_UNAVAILABLE, NULL,
                       "the gateway is shutting down");
        gw_pending_free(p);
    }
}

/* Send call c's request (c->request, the gateway's private copy) to server c->server, on the
   stream d->stream when the client has one already (after a suspension), else a new one given
   to the client in d->r. Takes c. */
static bool forward(struct dispatch *d, struct call *c)
{
    struct mcp_reply *r = d->r;
    struct session *s = d->s;
    int server = c->server;
    json_t *msg = c->request;
    struct upstream *up = gw.ups[server];
    json_t *id = json_object_get(msg, "id");
    struct pending *p = calloc(1, sizeof(*p));
    struct forward *f = calloc(1, sizeof(*f));
    struct stream *st = d->stream ? stream_ref(d->stream) : stream_new(s);
    if (p == NULL || f == NULL || st == NULL) {
        free(p);
        free(f);
        if (d->stream != NULL) {
            mcp_emit_error(c, st, id, JSONRPC_INTERNAL_ERROR, NULL, "out of memory");
        } else {
            gw_reply_error(r, id, JSONRPC_INTERNAL_ERROR, "out of memory");
            pipeline_done(c, CALL_ERROR, JSONRPC_INTERNAL_ERROR);
        }
        stream_unref(st);
        call_free(c);
        return true;
    }
    p->call = c;
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
    /* A gateway task's call to a server that runs tasks itself (tasks.c adds the `task` param,
       which a client's own call never keeps): the server's answer is its task, followed. */
    p->task_aug = session_transient(s) && strcmp(method, "tools/call") == 0 &&
                  json_is_object(json_object_get(json_object_get(msg, "params"), "task"));
    p->id = gw_draw_id();
    json_t *meta = json_object_get(json_object_get(msg, "params"), "_meta");
    json_t *tok = json_object_get(meta, "progressToken");
    if (json_is_string(tok) || json_is_integer(tok)) {
        /* The server sees our id as the token, so tokens of different clients never collide. */
        p->client_token = json_incref(tok);
        json_object_set_new(meta, "progressToken", json_integer((json_int_t)p->id));
    }
    f->up = up;
    snprintf(f->owner, sizeof(f->owner), "%s", session_owner(s));
    f->msg = json_incref(msg);
    f->p = p;
    if (d->stream == NULL) {
        r->server = up->srv->name;
        r->stream = stream_ref(st);
        r->status = 200;
    }
    stream_unref(st);
    post_forward(f);
    return true;
}

/* Worker thread: the answer of a request whose request stages refused it. */
static void reply_refusal(struct dispatch *d, const struct call *c)
{
    json_t *data = c->server_name[0] ? json_pack("{s:s}", "server", c->server_name) : NULL;
    if (data != NULL && c->refusal.code == JSONRPC_URL_ELICITATION_REQUIRED && c->refusal.url[0]) {
        /* URLElicitationRequiredError (MCP 2025-11-25): the URL-mode elicitation to complete */
        char id[40];
        rand_token(id, sizeof(id), 16);
        json_object_set_new(data, "elicitations",
                            json_pack("[{s:s, s:s, s:s, s:s}]", "mode", "url", "elicitationId", id,
                                      "url", c->refusal.url, "message", c->refusal.message));
    }
    if (d->stream != NULL) {
        json_t *e = jsonrpc_error_new(d->id, c->refusal.code, c->refusal.message, data);
        mcp_emit(NULL, NULL, d->stream, e, EMIT_FINAL);
        json_decref(e);
        return;
    }
    d->r->status = c->refusal.status;
    d->r->body = jsonrpc_error_new(d->id, c->refusal.code, c->refusal.message, data);
    d->r->server = c->server_name[0] ? c->server_name : NULL;
}

/* The rest of a request's dispatch once its request stages let it pass: true when it took c
   (and ends it), false when it answered in d->r->body (the call then ends with that answer). */
typedef bool (*staged_next)(struct dispatch *d, struct call *c);

/* A dispatch waiting for a suspended request stage: its own references to what d points at. */
struct staged {
    struct dispatch d;
    struct principal who;
    staged_next next;
};

static void staged_free(struct staged *sd)
{
    stream_unref(sd->d.stream);
    json_decref(sd->d.msg);
    session_unref(sd->d.s);
    free(sd);
}

/* End c with the answer in r (a gateway's own answer: a list, a refusal of the handler), or as
   cancelled when there is none, and free it. */
static void end_with_reply(struct call *c, const struct mcp_reply *r)
{
    int code = 0;
    if (r->body != NULL) {
        enum call_outcome o = call_outcome_of(r->body, &code);
        pipeline_done(c, o, code);
    }
    call_free(c);
}

/* Worker thread: a suspended stage gave its verdict and the stages after it ran. The client has
   the answer stream already: what the dispatch answers goes on it. */
static void staged_resumed_cb(struct call *c, enum stage_verdict v, void *arg)
{
    struct staged *sd = arg;
    struct mcp_reply r;
    memset(&r, 0, sizeof(r));
    sd->d.r = &r;
    sd->d.cat = gw_worker_catalog(sd->d.w);
    if (v == STAGE_REFUSE) {
        reply_refusal(&sd->d, c);
        call_free(c);
    } else if (stream_abandoned(sd->d.stream) || session_closed(sd->d.s)) {
        /* Its client went away (or cancelled, or ended its session) while the stage waited:
           nobody would read the answer, and a 2026-07-28 client's close is its cancellation. */
        pipeline_done(c, CALL_CANCELLED, 0);
        call_free(c);
        stream_end(sd->d.stream);
    } else if (!sd->next(&sd->d, c)) {
        if (r.body != NULL)
            mcp_emit(c, NULL, sd->d.stream, r.body, EMIT_FINAL);
        else
            stream_end(sd->d.stream); /* nothing to answer */
        end_with_reply(c, &r);
    }
    mcp_reply_release(&r);
    staged_free(sd);
}

static void dropped_resumed_cb(struct call *c, enum stage_verdict v, void *arg)
{
    (void)v;
    (void)arg;
    call_free(c);
}

/*
 * Run the request stages of call c (taken), made for request d, then next(d, c). A refusal is
 * the answer (its HTTP status and JSON-RPC error); a suspension gives the client an answer
 * stream now, and next runs when the stage resumes, answering on that stream.
 */
static void staged_dispatch(struct dispatch *d, struct call *c, staged_next next)
{
    if (c == NULL) {
        gw_reply_error(d->r, d->id, JSONRPC_INTERNAL_ERROR, "out of memory");
        return;
    }
    enum stage_verdict v = pipeline_request(c, staged_resumed_cb, NULL);
    if (v == STAGE_REFUSE) {
        reply_refusal(d, c);
        call_free(c);
        return;
    }
    if (v == STAGE_CONTINUE) {
        if (!next(d, c))
            end_with_reply(c, d->r);
        return;
    }
    /* Suspended: the stage holds c and resumes it on this thread from a later callback. */
    struct staged *sd = calloc(1, sizeof(*sd));
    struct stream *st = sd ? stream_new(d->s) : NULL;
    if (st == NULL) {
        /* Cannot wait for it: the call is dropped when the stage resumes. */
        free(sd);
        c->resume_cb = dropped_resumed_cb;
        log_warn("pipeline", "out of memory: a suspended %s cannot be answered", d->method);
        gw_reply_error(d->r, d->id, JSONRPC_INTERNAL_ERROR, "out of memory");
        return;
    }
    sd->d = *d;
    sd->who = *d->who;
    sd->d.who = &sd->who;
    sd->d.s = session_ref(d->s);
    sd->d.msg = json_incref(d->msg);
    sd->d.r = NULL;
    sd->d.cat = NULL;
    sd->d.stream = st;
    sd->next = next;
    c->resume_arg = sd;
    d->r->stream = stream_ref(st);
    d->r->status = 200;
    d->r->server = c->server_name[0] ? c->server_name : NULL;
}

/* A new call for request d towards `server` (-1: the gateway) on `target`; request taken. */
static struct call *call_for(struct dispatch *d, int server, const char *target, json_t *request)
{
    return call_new(gw_worker_pipeline(d->w), d->who, d->method, server,
                    server >= 0 ? gw.ups[server]->srv->name : "", target, request);
}

/* staged_next of a 2026-07-28 retry carrying the client's input for a parked call (mrtr.c). */
static bool mrtr_next(struct dispatch *d, struct call *c)
{
    gw_mrtr_resume(d->s, c->server, c->request, c->target, d->r, d->stream, c);
    return true;
}

/* Route request `routed` (taken) of d to `server` through the request stages. `hdrs` (taken,
   may be NULL) are the call's Mcp-Param-* headers (Name -> text), which go as its outbound
   headers. */
static void route(struct dispatch *d, int server, const char *target, json_t *routed, json_t *hdrs)
{
    struct call *c = call_for(d, server, target, routed);
    const char *name;
    json_t *text;
    json_object_foreach(c ? hdrs : NULL, name, text)
    {
        char h[256];
        snprintf(h, sizeof(h), "Mcp-Param-%s", name);
        if (json_is_string(text))
            outbound_add(&c->out, OUTBOUND_HEADER, OUTBOUND_MODERN_ONLY, h, json_string_value(text),
                         json_string_length(text));
    }
    json_decref(hdrs);
    staged_dispatch(d, c, forward);
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
        gw_reply_error(
            r, json_object_get(routed, "id"), JSONRPC_INVALID_PARAMS,
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
        gw_reply_error(r, id, JSONRPC_INVALID_PARAMS,
                       "initialize: params.protocolVersion is required");
        r->status = 400;
        return;
    }
    const char *version = mcp_version_supported(asked) ? asked : mcp_supported_versions[0];
    int err = 0;
    struct session *s = session_new(view, version, json_object_get(params, "capabilities"), &err);
    if (s == NULL) {
        gw_reply_error(r, id, JSONRPC_GATEWAY_LIMIT, "cannot open a session: %s",
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
    if (gw_tasks_offered(view)) /* 2025-11-25 tasks, run by the gateway (tasks.c) */
        json_object_set_new(
            json_object_get(result, "capabilities"), "tasks",
            json_pack("{s:{}, s:{}, s:{s:{s:{}}}}", "list", "cancel", "requests", "tools", "call"));
    reply_result(r, id, result);
    r->session = s;
}

static void gateway_relay_answer_cb(void *arg);
static void gateway_set_level_cb(void *arg);
static void relay_resumed_cb(struct call *c, enum stage_verdict v, void *arg);

static int view_has_server(int view, int server)
{
    return view < 0 || view == server;
}

void mcp_cancel_call(void *cookie, const char *reason)
{
    uint64_t packed = (uint64_t)(uintptr_t)cookie;
    size_t server = (size_t)(packed >> CALL_ID_BITS);
    if (cookie != NULL && server < atomic_load(&gw.nups))
        gw_post_cancel(gw.ups[server], packed & ((1ULL << CALL_ID_BITS) - 1), reason, NULL);
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
    if (gw_tasks_offered(view)) /* the gateway runs them (tasks.c) */
        json_object_set_new(caps, "extensions",
                            json_pack("{s:{}}", "io.modelcontextprotocol/tasks"));
    return json_pack("{s:s, s:o, s:o, s:{s:{s:s, s:s}}, s:i, s:s}", "resultType", "complete",
                     "supportedVersions", mcp_era_supported_versions(), "capabilities", caps,
                     "_meta", "io.modelcontextprotocol/serverInfo", "name", name, "version",
                     GATEHOUSE_VERSION, "ttlMs", 0, "cacheScope", "private");
}

/* --- per-user views (auth on): the user's tool selection, the settings tool --- */

#define SETTINGS_TOOL "gatehouse__settings"
#define SETTINGS_CACHE_MAX 16384 /* (user, server) pairs per worker */

/* The user id of the calling principal; false without authentication or for a service
   account (their view is the configured one). */
static bool principal_user(const struct principal *who, int64_t *uid)
{
    if (!gw.cfg->auth.enabled)
        return false;
    *uid = principal_user_id(who);
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

struct mcp_settings_cache *mcp_worker_settings(struct mcp_worker *w)
{
    if (w->settings == NULL)
        w->settings = mcp_settings_cache_new(SETTINGS_CACHE_MAX);
    return w->settings;
}

static const struct store_settings *user_view_settings(struct user_view *u, int server)
{
    if (u->uid > 0 && server != u->server) {
        user_view_release(u);
        const char *name = gw.ups[server]->srv->name;
        /* the request's store job filled the cache (the store is asked here only when it was
           emptied meanwhile) */
        struct mcp_settings_cache *c = mcp_worker_settings(u->w);
        int err = c != NULL ? mcp_settings_cache_peek(c, u->uid, name, &u->v) : ERR_NOTFOUND;
        if (err != 0) {
            struct store *st = worker_store(u->w);
            err = st == NULL  ? ERR_IO
                  : c == NULL ? store_settings_get(st, u->uid, name, &u->v)
                              : mcp_settings_cache_get(c, st, u->uid, name, &u->v);
        }
        if (err != 0)
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

/* Kept terse: every user's tools/list carries it (docs/openapi.md has its measured cost, and
   tests/integration/user_settings.test.mjs holds it to that budget). */
static json_t *settings_tool(void)
{
    return json_pack("{s:s, s:s, s:{s:s, s:{s:{s:s}, s:{s:s, s:[s,s,s]}, s:{s:s, s:{s:s}},"
                     " s:{s:s}}, s:[s]}}",
                     "name", SETTINGS_TOOL, "description",
                     "Choose the tools you see of a server (select; select_all undoes) and a REST "
                     "API server's discovery mode; server alone shows your settings.",
                     "inputSchema", "type", "object", "properties", "server", "type", "string",
                     "discovery", "type", "string", "enum", "static", "hierarchical", "search",
                     "select", "type", "array", "items", "type", "string", "select_all", "type",
                     "boolean", "required", "server");
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
    struct catalog *cat = gw_worker_catalog(w);
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
        struct broadcast b = {-1, n, session_owner(s), NULL, gw_worker_pipeline(w)};
        session_foreach(gw_broadcast_cb, &b);
        json_decref(n);
    }
}

json_t *mcp_tool_input_schema(struct mcp_worker *w, int view, const char *name)
{
    struct catalog *cat = gw_worker_catalog(w);
    json_t *schema = cat ? catalog_input_schema(cat, view, name) : NULL;
    return json_incref(schema);
}

/* --- the method table --- */

/* Worker thread: the request stages of a client's answer (f->call) are through: the answer goes
   to the server that asked; a refused one is replaced by an error naming the refusal, so that
   the server is not left waiting. */
static void relay_resumed_cb(struct call *c, enum stage_verdict v, void *arg)
{
    struct forward *f = arg;
    if (v == STAGE_REFUSE) {
        json_t *e = jsonrpc_error_new(json_object_get(f->msg, "id"), c->refusal.code,
                                      c->refusal.message, NULL);
        json_decref(f->msg);
        f->msg = e;
    }
    if (f->msg == NULL || mailbox_post(f->up->home->mb, gateway_relay_answer_cb, f) != 0) {
        json_decref(f->msg);
        call_free(f->call);
        free(f);
    }
}

/* A client's answer to a request a server sent through us. */
static void relay_answer(struct dispatch *d)
{
    void *upv;
    json_t *up_id;
    struct mcp_reply *r = d->r;
    r->status = 202;
    if (!json_is_integer(d->id) ||
        session_take_request(d->s, (uint64_t)json_integer_value(d->id), &upv, &up_id) != 0) {
        log_info("client_protocol", "client answered an id the gateway did not send; ignored");
        return;
    }
    if (gw_task_relay_answer(d->s, upv, up_id, d->msg)) {
        json_decref(up_id); /* a task's input, asked on tasks/result (tasks.c) */
        return;
    }
    struct upstream *up = upv;
    json_t *copy = json_copy(d->msg);
    json_object_set_new(copy, "id", up_id);
    struct forward *f = calloc(1, sizeof(*f));
    struct call *c = f ? call_new(gw_worker_pipeline(d->w), d->who, "(answer)", up->index,
                                  up->srv->name, "", json_incref(copy))
                       : NULL;
    if (c == NULL) {
        free(f);
        json_decref(copy);
        return;
    }
    f->up = up;
    f->msg = copy;
    snprintf(f->owner, sizeof(f->owner), "%s", session_owner(d->s));
    f->call = c;
    r->server = up->srv->name;
    enum stage_verdict v = pipeline_request(c, relay_resumed_cb, f);
    if (v == STAGE_REFUSE) {
        r->status = c->refusal.status;
        r->body = jsonrpc_error_new(NULL, c->refusal.code, c->refusal.message,
                                    json_pack("{s:s}", "server", up->srv->name));
    }
    if (v != STAGE_SUSPEND)
        relay_resumed_cb(c, v, f);
}

static void on_cancelled(struct dispatch *d)
{
    json_t *rid = json_object_get(d->params, "requestId");
    if (rid != NULL)
        mcp_cancel_request(d->s, rid);
}

static void on_roots_list_changed(struct dispatch *d)
{
    for (size_t i = 0; i < atomic_load(&gw.nups); i++)
        if (view_has_server(d->view, (int)i) && !gw.ups[i]->retired) {
            struct forward *f = calloc(1, sizeof(*f));
            if (f == NULL)
                continue;
            f->up = gw.ups[i];
            f->msg = json_incref(d->msg);
            snprintf(f->owner, sizeof(f->owner), "%s", session_owner(d->s));
            if (mailbox_post(f->up->home->mb, gateway_relay_answer_cb, f) != 0) {
                json_decref(f->msg);
                free(f);
            }
        }
}

static void on_initialized(struct dispatch *d)
{
    (void)d; /* nothing to do: the gateway answered initialize itself */
}

static void on_initialize(struct dispatch *d)
{
    if (d->s != NULL) {
        gw_reply_error(
            d->r, d->id, JSONRPC_INVALID_REQUEST,
            "this session is already initialized; send initialize without Mcp-Session-Id to start a new one");
        d->r->status = 400;
        return;
    }
    handle_initialize(d->view, d->msg, d->r);
}

static void on_ping(struct dispatch *d)
{
    reply_result(d->r, d->id, json_object());
}

/* tasks/get, tasks/update, tasks/cancel (2026-07-28); tasks/get, tasks/result, tasks/list,
   tasks/cancel (2025-11-25): tasks.c. */
static void on_tasks(struct dispatch *d)
{
    gw_tasks_method(d->w, d->s, d->msg, d->r);
}

static void on_discover(struct dispatch *d)
{
    reply_result(d->r, d->id, mcp_discover_result(d->view));
}

/* tools/list, prompts/list, resources/list, resources/templates/list: from the catalog. */
static bool list_next(struct dispatch *d, struct call *c);

static void on_list(struct dispatch *d)
{
    staged_dispatch(d, call_for(d, -1, "", NULL), list_next);
}

static bool list_next(struct dispatch *d, struct call *c)
{
    (void)c;
    struct mcp_reply *r = d->r;
    json_t *id = d->id;
    const char *method = d->method;
    enum catalog_kind kind = method[0] == 't'                   ? CAT_TOOLS
                             : method[0] == 'p'                 ? CAT_PROMPTS
                             : strchr(method + 10, '/') == NULL ? CAT_RESOURCES
                                                                : CAT_TEMPLATES;
    json_t *cursor = json_object_get(d->params, "cursor");
    if (cursor != NULL && !json_is_string(cursor)) {
        gw_reply_error(r, id, JSONRPC_INVALID_PARAMS, "%s: params.cursor must be a string", method);
        return false;
    }
    json_t *result = NULL;
    int64_t uid = 0;
    bool user = kind == CAT_TOOLS && principal_user(d->who, &uid);
    struct user_view u;
    user_view_init(&u, d->w, user ? uid : 0);
    int err = d->cat ? catalog_page_filtered(d->cat, d->view, kind, json_string_value(cursor),
                                             LIST_PAGE_SIZE, user_view_keep_cb, &u, &result)
                     : ERR_NOTFOUND;
    user_view_release(&u);
    if (err == ERR_INVAL)
        gw_reply_error(r, id, JSONRPC_INVALID_PARAMS,
                       "%s: the cursor was not issued by this gateway", method);
    else if (err)
        reply_result(r, id,
                     json_pack("{s:[]}", method[0] == 't'   ? "tools"
                                         : method[0] == 'p' ? "prompts"
                                                            : "resources"));
    else {
        /* the settings tool first on the first page, where the view offers a choice */
        if (user && cursor == NULL && catalog_offers_choice(d->cat, d->view))
            json_array_insert_new(json_object_get(result, "tools"), 0, settings_tool());
        reply_result(r, id, result);
    }
    return false;
}

/*
 * The arguments step of a tools/call (a server with validate_arguments): the arguments are
 * checked against the inputSchema the server published for the tool in its tools/list, as the
 * catalog holds it, before anything is sent. Absent arguments are checked as {}. A tool without
 * a schema is not checked; what a malformed schema does is schema.h's rule (it never refuses).
 * Returns true when the call was refused: -32602 naming the argument and the rule broken, and
 * the call never reaches the server.
 */
static bool arguments_refused(struct dispatch *d, int server, const char *name, json_t *args)
{
    if (!gw.ups[server]->srv->validate_arguments)
        return false;
    json_t *schema = catalog_input_schema(d->cat, d->view, name);
    if (schema == NULL)
        return false;
    json_t *empty = args ? NULL : json_object();
    struct err_info ei = {0};
    int err = schema_check(schema, args ? args : empty, NULL, name, &ei);
    json_decref(empty);
    if (err == 0)
        return false;
    gw_reply_error(d->r, d->id, JSONRPC_INVALID_PARAMS, "%s", ei.msg);
    return true;
}

/* tools/call, prompts/get: routed by name. */
static void on_call(struct dispatch *d)
{
    struct mcp_worker *w = d->w;
    struct session *s = d->s;
    struct mcp_reply *r = d->r;
    struct catalog *cat = d->cat;
    json_t *id = d->id, *msg = d->msg, *params = d->params;
    const char *method = d->method;
    int view = d->view;
    enum catalog_kind kind_ = method[0] == 't' ? CAT_TOOLS : CAT_PROMPTS;
    json_t *jname = json_object_get(params, "name");
    const char *name = json_string_value(jname);
    int server;
    const char *orig;
    if (name == NULL || strlen(name) != json_string_length(jname)) {
        gw_reply_error(r, id, JSONRPC_INVALID_PARAMS,
                       "%s: params.name must be a string without NUL characters", method);
        return;
    }
    json_t *args = json_object_get(params, "arguments");
    if (args != NULL && !json_is_object(args)) {
        gw_reply_error(r, id, JSONRPC_INVALID_PARAMS,
                       "%s: params.arguments must be an object (named arguments)", method);
        return;
    }
    snprintf(r->target, sizeof(r->target), "%s", name);
    int64_t uid = 0;
    bool user = kind_ == CAT_TOOLS && principal_user(d->who, &uid);
    if (user && strcmp(name, SETTINGS_TOOL) == 0) {
        handle_settings_call(w, s, uid, id, args, r);
        return;
    }
    if (cat == NULL || catalog_route(cat, view, kind_, name, &server, &orig) != 0) {
        gw_reply_error(r, id, JSONRPC_INVALID_PARAMS, "Unknown %s: %s",
                       kind_ == CAT_TOOLS ? "tool" : "prompt", name);
        return;
    }
    if (kind_ == CAT_TOOLS && gw_task_call(w, view, d->who, s, msg, server, orig, r))
        return; /* a task (tasks.c), which runs this call again as its own */
    size_t nselected = 0;
    struct user_view u;
    user_view_init(&u, w, user ? uid : 0);
    unsigned modes = kind_ == CAT_TOOLS ? catalog_modes(cat, view, kind_, name) : 0;
    enum config_discovery mode = user_view_mode(&u, server);
    if (is_navigation(modes) && !(modes & (1u << mode))) {
        /* an operation stays callable by name in a lazy mode (docs/openapi.md) */
        gw_reply_error(r, id, JSONRPC_INVALID_PARAMS,
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
        gw_reply_error(r, id, JSONRPC_INVALID_PARAMS,
                       "tool %s is not in your selection of server %s (%zu tools selected); "
                       "add it with the %s tool or `gatehouse user settings`",
                       name, gw.ups[server]->srv->name, nselected, SETTINGS_TOOL);
        user_view_release(&u);
        return;
    }
    if (kind_ == CAT_TOOLS && arguments_refused(d, server, name, args)) {
        user_view_release(&u);
        return;
    }
    json_t *routed = rewrite(msg, "name", orig);
    set_call_meta(routed, &u, server);
    user_view_release(&u);
    if (session_transient(s) && json_object_get(params, "requestState") != NULL &&
        !mcp_era_is_sealed(json_string_value(json_object_get(params, "requestState")))) {
        /* a retry with the client's input */
        staged_dispatch(d, call_for(d, server, orig, routed), mrtr_next);
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
    route(d, server, orig, routed, hdrs);
}

/* resources/read, resources/subscribe, resources/unsubscribe: routed by URI. */
static void on_resource(struct dispatch *d)
{
    struct session *s = d->s;
    struct mcp_reply *r = d->r;
    struct catalog *cat = d->cat;
    json_t *id = d->id, *msg = d->msg, *params = d->params;
    const char *method = d->method;
    int view = d->view;
    json_t *juri = json_object_get(params, "uri");
    const char *uri = json_string_value(juri);
    int server;
    if (uri == NULL || strlen(uri) != json_string_length(juri)) {
        gw_reply_error(r, id, JSONRPC_INVALID_PARAMS,
                       "%s: params.uri must be a string without NUL characters", method);
        return;
    }
    snprintf(r->target, sizeof(r->target), "%s", uri);
    /* A subscription may name a resource its server does not list (yet): with one server behind
       the endpoint it is that server's to accept or refuse. A read is answered here. */
    bool routed_uri =
        cat != NULL && (catalog_route_uri(cat, view, uri, &server) == 0 ||
                        (method[10] != 'r' && catalog_sole_server(cat, view, &server) == 0));
    if (!routed_uri) {
        char m[600];
        snprintf(m, sizeof(m), "Resource not found: %s (no server behind this endpoint offers it)",
                 uri);
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
        /* a retry with the client's input */
        staged_dispatch(d, call_for(d, server, uri, json_incref(msg)), mrtr_next);
        return;
    }
    json_t *routed = rewrite(msg, "uri", NULL);
    if (method[10] == 'r' && session_transient(s) && unseal_state(s, server, routed, uri, r) != 0) {
        json_decref(routed);
        return;
    }
    route(d, server, uri, routed, NULL);
}

/* completion/complete: routed by the prompt or resource it completes. */
static void on_complete(struct dispatch *d)
{
    struct mcp_reply *r = d->r;
    struct catalog *cat = d->cat;
    json_t *id = d->id, *msg = d->msg, *params = d->params;
    int view = d->view;
    json_t *ref = json_object_get(params, "ref");
    const char *type = json_string_value(json_object_get(ref, "type"));
    int server;
    const char *orig;
    if (type && strcmp(type, "ref/prompt") == 0) {
        const char *name = json_string_value(json_object_get(ref, "name"));
        if (name == NULL || cat == NULL ||
            catalog_route(cat, view, CAT_PROMPTS, name, &server, &orig) != 0) {
            gw_reply_error(r, id, JSONRPC_INVALID_PARAMS, "completion/complete: unknown prompt %s",
                           name ? name : "(none)");
            return;
        }
        json_t *copy = json_deep_copy(msg);
        json_object_set_new(json_object_get(json_object_get(copy, "params"), "ref"), "name",
                            json_string(orig));
        route(d, server, orig, copy, NULL);
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
                gw_reply_error(r, id, JSONRPC_INVALID_PARAMS,
                               "completion/complete: unknown resource %s", uri ? uri : "(none)");
                return;
            }
        }
        route(d, server, uri, json_deep_copy(msg), NULL);
        return;
    }
    gw_reply_error(r, id, JSONRPC_INVALID_PARAMS,
                   "completion/complete: params.ref.type must be ref/prompt or ref/resource");
}

/* logging/setLevel: kept for the session (2026-07-28 servers' _meta) and sent to every server
   of the view; answered by the gateway. */
static void on_set_level(struct dispatch *d)
{
    struct session *s = d->s;
    struct mcp_reply *r = d->r;
    json_t *id = d->id, *msg = d->msg, *params = d->params;
    int view = d->view;
    const char *level = json_string_value(json_object_get(params, "level"));
    if (level == NULL || mcp_log_level_rank(level) < 0) {
        gw_reply_error(r, id, JSONRPC_INVALID_PARAMS,
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
        snprintf(f->owner, sizeof(f->owner), "%s", session_owner(s));
        if (mailbox_post(f->up->home->mb, gateway_set_level_cb, f) != 0) {
            json_decref(f->msg);
            free(f);
        }
    }
    reply_result(r, id, json_object());
}

/*
 * Every method the engine serves, one row each, sorted by name (looked up by binary search; a
 * unit test checks the order). Flags: a request or a notification; whether it may come without
 * a session (initialize only); whether it is forwarded to one server or answered by the gateway;
 * the eras whose clients may send it. A method that is not here is -32601 as a request and
 * ignored as a notification. A new method is a new row, not a new branch.
 */
#define REQ MCP_METHOD_REQUEST
#define FWD MCP_METHOD_FORWARDED
#define LEGACY MCP_METHOD_LEGACY
#define MODERN MCP_METHOD_MODERN
#define BOTH (MCP_METHOD_LEGACY | MCP_METHOD_MODERN)
static const struct method_row {
    struct mcp_method m;
    void (*fn)(struct dispatch *d);
} methods[] = {
    {{"completion/complete", REQ | FWD | BOTH}, on_complete},
    {{"initialize", REQ | MCP_METHOD_NO_SESSION | LEGACY}, on_initialize},
    {{"logging/setLevel", REQ | LEGACY}, on_set_level},
    {{"notifications/cancelled", LEGACY}, on_cancelled},
    {{"notifications/initialized", LEGACY}, on_initialized},
    {{"notifications/roots/list_changed", LEGACY}, on_roots_list_changed},
    {{"ping", REQ | LEGACY}, on_ping},
    {{"prompts/get", REQ | FWD | BOTH}, on_call},
    {{"prompts/list", REQ | BOTH}, on_list},
    {{"resources/list", REQ | BOTH}, on_list},
    {{"resources/read", REQ | FWD | BOTH}, on_resource},
    {{"resources/subscribe", REQ | FWD | LEGACY}, on_resource},
    {{"resources/templates/list", REQ | BOTH}, on_list},
    {{"resources/unsubscribe", REQ | FWD | LEGACY}, on_resource},
    {{"server/discover", REQ | BOTH}, on_discover},
    {{"tasks/cancel", REQ | BOTH}, on_tasks},
    {{"tasks/get", REQ | BOTH}, on_tasks},
    {{"tasks/list", REQ | LEGACY}, on_tasks},
    {{"tasks/result", REQ | LEGACY}, on_tasks},
    {{"tasks/update", REQ | MODERN}, on_tasks},
    {{"tools/call", REQ | FWD | BOTH}, on_call},
    {{"tools/list", REQ | BOTH}, on_list},
};
#undef REQ
#undef FWD
#undef LEGACY
#undef MODERN
#undef BOTH

static int method_cmp(const void *key, const void *row)
{
    return strcmp(key, ((const struct method_row *)row)->m.name);
}

static const struct method_row *method_row(const char *name)
{
    if (name == NULL)
        return NULL;
    return bsearch(name, methods, sizeof(methods) / sizeof(methods[0]), sizeof(methods[0]),
                   method_cmp);
}

const struct mcp_method *mcp_method_find(const char *name)
{
    const struct method_row *row = method_row(name);
    return row ? &row->m : NULL;
}

const struct mcp_method *mcp_method_at(size_t i)
{
    return i < sizeof(methods) / sizeof(methods[0]) ? &methods[i].m : NULL;
}

static void dispatch_message(struct dispatch *dp, enum jsonrpc_kind kind)
{
    struct dispatch d = *dp;
    struct session *s = d.s;
    struct mcp_reply *r = d.r;
    if (kind != JSONRPC_REQUEST && s == NULL) {
        /* A notification or an answer outside a session: nothing to cancel or relay to. */
        r->status = 202;
        log_info("client_protocol", "client sent a %s without a session; ignored",
                 kind == JSONRPC_NOTIFICATION ? "notification" : "answer");
        return;
    }
    if (kind == JSONRPC_RESULT || kind == JSONRPC_ERROR) {
        relay_answer(&d);
        return;
    }
    const struct method_row *row = method_row(d.method);
    bool request = kind != JSONRPC_NOTIFICATION;
    unsigned era = s != NULL && session_transient(s) ? MCP_METHOD_MODERN : MCP_METHOD_LEGACY;
    if (row != NULL &&
        (((row->m.flags & MCP_METHOD_REQUEST) != 0) != request || !(row->m.flags & era)))
        row = NULL; /* a notification's name as a request, or a method of the other era */
    if (!request) {
        r->status = 202; /* a notification gets no answer, known or not */
        if (row != NULL)
            row->fn(&d);
        return;
    }
    snprintf(r->target, sizeof(r->target), "%s", "");
    if (row == NULL) {
        gw_reply_error(r, d.id, JSONRPC_METHOD_NOT_FOUND, "Method not found: %s", d.method);
        return;
    }
    if (s == NULL && !(row->m.flags & MCP_METHOD_NO_SESSION)) {
        gw_reply_error(r, d.id, JSONRPC_INVALID_REQUEST,
                       "%s needs a session; send initialize first to get one", d.method);
        r->status = 400;
        return;
    }
    d.cat = gw_worker_catalog(d.w);
    row->fn(&d);
}

void mcp_handle_message(struct mcp_worker *w, int view, const struct principal *who,
                        struct session *s, json_t *msg, enum jsonrpc_kind kind, struct mcp_reply *r)
{
    memset(r, 0, sizeof(*r));
    struct dispatch d = {.w = w,
                         .view = view,
                         .who = who,
                         .s = s,
                         .msg = msg,
                         .id = json_object_get(msg, "id"),
                         .params = json_object_get(msg, "params"),
                         .method = jsonrpc_method(msg),
                         .r = r};
    dispatch_message(&d, kind);
    /* The gateway's own answer leaves through the emitter's other half: era fields, then the
       message stages, as the servers' messages do. */
    if (r->body != NULL)
        mcp_emit_reply(gw_worker_pipeline(w), &r->body, d.method,
                       s != NULL && session_transient(s));
}

/* Home thread: pass a client's answer (or notification) to the server as it is. */
static void gateway_relay_answer_cb(void *arg)
{
    struct forward *f = arg;
    /* per_user: the sender's own session of the server (NULL: none open, nobody to tell) */
    struct upstream *up = gw_instance_for(f->up, f->owner);
    int err = 0;
    if (up != NULL && json_is_object(json_object_get(f->msg, "id")))
        gw_bridge_answer(up, f->msg); /* for an InputRequiredResult of a 2026-07-28 server */
    else if (up != NULL && up->t && up->state == UP_READY &&
             !(atomic_load(&up->modern) && jsonrpc_method(f->msg) != NULL))
        err = transport_send_call(up->t, f->msg, NULL, f->call ? &f->call->out : NULL);
    else
        err = ERR_UNAVAILABLE; /* nobody to tell; a modern server takes no notifications */
    pipeline_done(f->call, err ? CALL_ERROR : CALL_OK, err ? JSONRPC_UPSTREAM_UNAVAILABLE : 0);
    call_free(f->call);
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
    /* per_user: only the sender's own session of the server; one opened later takes the level
       from the client session that opens it (gw_pick_instance) */
    struct upstream *up = gw_instance_for(f->up, f->owner);
    const char *level =
        json_string_value(json_object_get(json_object_get(f->msg, "params"), "level"));
    if (up == NULL) {
        json_decref(f->msg);
        free(f);
        return;
    }
    if (level != NULL && mcp_log_level_rank(level) >= 0)
        snprintf(up->log_level, sizeof(up->log_level), "%s", level); /* replayed on a new session */
    if (up->t && up->state == UP_READY && json_object_get(up->caps, "logging") &&
        !atomic_load(&up->modern)) /* 2026-07-28: the level travels in each request's _meta */
        gw_internal_request(up, "logging/setLevel",
                            json_deep_copy(json_object_get(f->msg, "params")), level_cb, NULL);
    json_decref(f->msg);
    free(f);
}

/* Home thread: cancel call f->msg {id (ours), reason} on f->up. It may have finished already. */
void gw_cancel_on_home_cb(void *arg)
{
    struct forward *f = arg;
    uint64_t id = (uint64_t)json_integer_value(json_object_get(f->msg, "id"));
    /* per_user: the instance that has the call (or, by its principal, asked the refused
       request); f->up is the server's entry */
    struct upstream *up =
        f->owner[0] ? gw_instance_for(f->up, f->owner) : gw_instance_with_call(f->up, id);
    if (up == NULL) { /* that user's session is closed: nothing left to cancel or answer */
        json_decref(f->msg);
        free(f);
        return;
    }
    struct pending *target = idmap_get(&up->pending, id);
    if (target != NULL && target->cb == NULL && !target->answered)
        gw_cancel_call(up, target, json_string_value(json_object_get(f->msg, "reason")));
    /* Still waiting for a place: it leaves the queue unsent. */
    for (struct forward *q = up->queue_head, *prev = NULL; target == NULL && q != NULL;
         prev = q, q = q->next) {
        if (q->p->id == id) {
            gw_unqueue(up, prev, q);
            char why[200];
            snprintf(why, sizeof(why), "%s while it waited for a place",
                     json_string_value(json_object_get(f->msg, "reason")));
            drop_queued(up, q, why);
            break;
        }
    }
    size_t i;
    json_t *refusal;
    json_array_foreach(json_object_get(f->msg, "refuse"), i, refusal)
    {
        if (up->t != NULL)
            gw_answer_server(up, json_object_get(refusal, "id"), JSONRPC_METHOD_NOT_FOUND,
                             json_string_value(json_object_get(refusal, "message")));
    }
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
    pipeline_unref(w->pipeline);
    w->pipeline = NULL;
    mcp_settings_cache_free(w->settings);
    w->settings = NULL;
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
