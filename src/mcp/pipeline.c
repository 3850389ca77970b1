/*
 * The call pipeline (see pipeline.h): the stage list, the run of a call's request stages with
 * suspension, the one emitter of MCP messages to clients (era fields, message stages, the push,
 * the call's end), and the built-in stages.
 */
#include "mcp/pipeline.h"
#include "core/err.h"
#include "core/metrics.h"
#include "core/rand.h"
#include "mcp/jsonrpc.h"
#include "mcp/session.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct stage_list {
    struct stage *v;
    size_t n;
};

struct pipeline {
    _Atomic unsigned refs;
    struct stage_list request, message, done;
};

const char *call_outcome_str(enum call_outcome o)
{
    switch (o) {
    case CALL_OK:
        return "ok";
    case CALL_ERROR:
        return "error";
    case CALL_REFUSED:
        return "refused";
    case CALL_CANCELLED:
        return "cancelled";
    case CALL_TIMEOUT:
        return "timeout";
    }
    return "unknown";
}

/* --- the stage list --- */

struct pipeline *pipeline_new(void)
{
    struct pipeline *pl = calloc(1, sizeof(*pl));
    if (pl != NULL)
        atomic_init(&pl->refs, 1);
    return pl;
}

static int list_add(struct stage_list *l, const struct stage *s)
{
    struct stage *v = realloc(l->v, (l->n + 1) * sizeof(*v));
    if (v == NULL)
        return ERR_NOMEM;
    v[l->n++] = *s;
    l->v = v;
    return 0;
}

int pipeline_add(struct pipeline *pl, const struct stage *s)
{
    int err = 0;
    if (s->request != NULL)
        err = list_add(&pl->request, s);
    if (err == 0 && s->message != NULL)
        err = list_add(&pl->message, s);
    if (err == 0 && s->done != NULL)
        err = list_add(&pl->done, s);
    return err;
}

size_t pipeline_count(const struct pipeline *pl)
{
    return pl ? pl->request.n + pl->message.n + pl->done.n : 0;
}

struct pipeline *pipeline_seal(struct pipeline *pl)
{
    if (pl != NULL && pipeline_count(pl) == 0) {
        pipeline_unref(pl);
        return NULL;
    }
    return pl;
}

struct pipeline *pipeline_ref(struct pipeline *pl)
{
    if (pl != NULL)
        atomic_fetch_add(&pl->refs, 1);
    return pl;
}

void pipeline_unref(struct pipeline *pl)
{
    if (pl == NULL || atomic_fetch_sub(&pl->refs, 1) != 1)
        return;
    free(pl->request.v);
    free(pl->message.v);
    free(pl->done.v);
    free(pl);
}

/* --- one call --- */

struct call *call_new(struct pipeline *pl, const struct principal *who, const char *method,
                      int server, const char *server_name, const char *target, json_t *request)
{
    struct call *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        json_decref(request);
        return NULL;
    }
    if (who != NULL)
        c->who = *who;
    else
        principal_init_anonymous(&c->who);
    snprintf(c->method, sizeof(c->method), "%s", method ? method : "");
    c->server = server;
    c->server_name = server_name ? server_name : "";
    snprintf(c->target, sizeof(c->target), "%s", target ? target : "");
    c->request = request;
    json_t *args = json_object_get(json_object_get(request, "params"), "arguments");
    c->arguments = json_is_object(args) ? args : NULL;
    outbound_init(&c->out);
    c->pl = pipeline_ref(pl);
    c->started_ns = clock_now_ns();
    return c;
}

void call_free(struct call *c)
{
    if (c == NULL)
        return;
    if (!c->done)
        pipeline_done(c, CALL_CANCELLED, 0);
    json_decref(c->request);
    outbound_release(&c->out);
    pipeline_unref(c->pl);
    free(c);
}

void pipeline_done(struct call *c, enum call_outcome o, int code)
{
    if (c == NULL || c->done)
        return;
    c->done = true;
    if (c->pl == NULL || c->pl->done.n == 0)
        return;
    uint64_t took = clock_now_ns() - c->started_ns;
    for (size_t i = 0; i < c->pl->done.n; i++) {
        const struct stage *s = &c->pl->done.v[i];
        s->done(c, o, o == CALL_ERROR ? code : 0, took, s->conf);
    }
}

/* Run request stages from c->next until one does not let the call pass. */
static enum stage_verdict run_request(struct call *c)
{
    while (c->pl != NULL && c->next < c->pl->request.n) {
        const struct stage *s = &c->pl->request.v[c->next++];
        struct call_refusal why; /* large (it may carry a URL): filled only when used */
        why.status = why.code = 0;
        why.message[0] = why.url[0] = '\0';
        enum stage_verdict v = s->request(c, s->conf, &why);
        if (v == STAGE_SUSPEND) {
            c->suspended = true;
            return v;
        }
        if (v == STAGE_REFUSE) {
            c->refusal = why;
            if (c->refusal.status == 0)
                c->refusal.status = 403;
            if (c->refusal.code == 0)
                c->refusal.code = JSONRPC_INVALID_REQUEST;
            if (c->refusal.message[0] == '\0')
                snprintf(c->refusal.message, sizeof(c->refusal.message),
                         "the gateway's %s stage refused this request", s->name);
            pipeline_done(c, CALL_REFUSED, 0);
            return v;
        }
    }
    return STAGE_CONTINUE;
}

enum stage_verdict pipeline_request(struct call *c, call_resume_cb cb, void *arg)
{
    if (c->pl == NULL || c->pl->request.n == 0)
        return STAGE_CONTINUE;
    c->resume_cb = cb;
    c->resume_arg = arg;
    return run_request(c);
}

void pipeline_resume(struct call *c, enum stage_verdict v, const struct call_refusal *why)
{
    if (!c->suspended || v == STAGE_SUSPEND)
        return;
    c->suspended = false;
    if (v == STAGE_REFUSE) {
        c->refusal = why ? *why : (struct call_refusal){0};
        if (c->refusal.status == 0)
            c->refusal.status = 403;
        if (c->refusal.code == 0)
            c->refusal.code = JSONRPC_INVALID_REQUEST;
        if (c->refusal.message[0] == '\0')
            snprintf(c->refusal.message, sizeof(c->refusal.message),
                     "the gateway's %s stage refused this request",
                     c->pl->request.v[c->next - 1].name);
        pipeline_done(c, CALL_REFUSED, 0);
    } else {
        v = run_request(c);
        if (v == STAGE_SUSPEND)
            return;
    }
    if (c->resume_cb != NULL)
        c->resume_cb(c, v, c->resume_arg);
}

enum call_outcome call_outcome_of(json_t *final, int *code)
{
    json_t *e = json_object_get(final, "error");
    if (e == NULL)
        return CALL_OK;
    int k = (int)json_integer_value(json_object_get(e, "code"));
    if (k == JSONRPC_UPSTREAM_TIMEOUT)
        return CALL_TIMEOUT;
    if (code)
        *code = k;
    return CALL_ERROR;
}

/* --- the emitter --- */

json_t *mcp_emit_era(json_t *msg, const char *method, bool client_modern, bool server_modern)
{
    json_t *result = json_object_get(msg, "result");
    if (!json_is_object(result) || (!client_modern && !server_modern))
        return json_incref(msg);
    bool cacheable = method != NULL &&
                     (strcmp(method, "resources/read") == 0 || strstr(method, "/list") != NULL);
    if (client_modern) {
        bool type = json_object_get(result, "resultType") == NULL;
        bool ttl = cacheable && json_object_get(result, "ttlMs") == NULL;
        if (!type && !ttl)
            return json_incref(msg);
        json_t *copy = json_copy(msg);
        result = json_copy(result);
        json_object_set_new(copy, "result", result);
        if (type)
            json_object_set_new(result, "resultType", json_string("complete"));
        if (ttl) {
            json_object_set_new(result, "ttlMs", json_integer(0));
            json_object_set_new(result, "cacheScope", json_string("private"));
        }
        return copy;
    }
    if (json_object_get(result, "resultType") == NULL && json_object_get(result, "ttlMs") == NULL &&
        json_object_get(result, "cacheScope") == NULL)
        return json_incref(msg);
    json_t *copy = json_copy(msg);
    result = json_copy(result);
    json_object_set_new(copy, "result", result);
    json_object_del(result, "resultType");
    json_object_del(result, "ttlMs");
    json_object_del(result, "cacheScope");
    return copy;
}

/* The message stages of pl over m (taken; returned, maybe replaced, or NULL out of memory). */
static json_t *run_message(struct pipeline *pl, struct call *c, json_t *m)
{
    if (pl == NULL || pl->message.n == 0)
        return m;
    json_t *own = json_deep_copy(m); /* m may be shared (a broadcast, a server's message) */
    json_decref(m);
    m = own;
    for (size_t i = 0; m != NULL && i < pl->message.n; i++)
        pl->message.v[i].message(c, &m, pl->message.v[i].conf);
    return m;
}

void mcp_emit_reply(struct pipeline *pl, json_t **body, const char *method, bool client_modern)
{
    json_t *m = mcp_emit_era(*body, method, client_modern, false);
    json_decref(*body);
    m = run_message(pl, NULL, m);
    *body = m != NULL ? m : jsonrpc_error_new(NULL, JSONRPC_INTERNAL_ERROR, "out of memory", NULL);
}

int mcp_emit(struct call *c, struct pipeline *pl, struct stream *st, json_t *msg, unsigned flags)
{
    if (c != NULL)
        pl = c->pl;
    json_t *m;
    if (flags & EMIT_FINAL) {
        struct session *s = st ? stream_session(st) : NULL;
        m = mcp_emit_era(msg, c ? c->method : NULL, s != NULL && session_transient(s),
                         (flags & EMIT_FROM_MODERN) != 0);
    } else {
        m = json_incref(msg);
    }
    m = run_message(pl, c, m);
    int err = m != NULL ? stream_push(st, m, (flags & EMIT_FINAL) != 0) : ERR_NOMEM;
    if ((flags & EMIT_FINAL) && c != NULL && !c->done) {
        int code = 0;
        enum call_outcome o = call_outcome_of(m, &code);
        pipeline_done(c, o, code);
    }
    json_decref(m);
    return err;
}

int mcp_emit_error(struct call *c, struct stream *st, json_t *id, int code, const char *server,
                   const char *message)
{
    json_t *e =
        jsonrpc_error_new(id, code, message, server ? json_pack("{s:s}", "server", server) : NULL);
    int err = mcp_emit(c, NULL, st, e, EMIT_FINAL);
    json_decref(e);
    return err;
}

/* --- built-in stages --- */

/* call_outcomes: every call counted once by server and outcome, whether or not its client was
   still there to see the end (gatehouse_mcp_requests_total counts HTTP responses instead, and
   cannot tell a cancellation, a timeout or a refusal from other errors). */
static void call_outcomes_done(const struct call *c, enum call_outcome o, int code,
                               uint64_t duration_ns, void *conf)
{
    (void)code;
    (void)duration_ns;
    struct metric *m = conf;
    const char *labels[] = {c->server_name[0] ? c->server_name : "gateway", call_outcome_str(o)};
    metrics_inc(m, labels, 1);
}

struct pipeline *pipeline_builtin(void)
{
    static const char *const names[] = {"server", "outcome"};
    struct metric *m = metrics_counter(
        "gatehouse_calls_total",
        "Calls sent towards a server, by server and how each ended (ok, error, refused by a "
        "stage, cancelled, timeout), counted once whether or not the client saw the end",
        2, names);
    struct pipeline *pl = pipeline_new();
    if (pl == NULL)
        return NULL;
    if (mcp_vault_stage_add(pl) != 0) {
        pipeline_unref(pl);
        return NULL;
    }
    if (m != NULL) {
        struct stage s = {.name = "call_outcomes", .done = call_outcomes_done, .conf = m};
        if (pipeline_add(pl, &s) != 0) {
            pipeline_unref(pl);
            return NULL;
        }
    }
    return pipeline_seal(pl);
}
