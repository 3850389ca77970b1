/*
 * Tasks: the 2026-07-28 tasks extension (io.modelcontextprotocol/tasks, SEP-2663) and the
 * 2025-11-25 experimental tasks, served by the gateway for the tools its servers mark as
 * task-supporting (`execution.taskSupport` "optional" or "required" in their tools/list), of a
 * server of either era. See "Tasks" in docs/architecture.md.
 *
 * A server that runs tasks itself (server_runs_tasks) is asked for its own: the task's call
 * carries the `task` param, which the engine (upstreams.c) turns into a task request of the
 * server's revision and follows (tasks/result for a legacy server, tasks/get polled for a
 * 2026-07-28 one) as the call's answer; the task here does not see the difference, bar the
 * server's status messages.
 *
 * A task is a client's tools/call that the gateway runs as an ordinary call on a transient
 * session of its own (so that closing the client's response does not cancel it), watching the
 * call's answer stream as a writer would: the final answer completes (or fails) the task; an
 * InputRequiredResult (the MRTR bridge of mrtr.c turned the server's elicitation or sampling
 * into one, or a 2026-07-28 server sent it) puts the task in input_required, and tasks/update
 * resumes the call with the client's answers as an MRTR retry would. A 2026-07-28 client's call
 * becomes a task when it has not finished within TASK_PROMOTE_MS (an answer before that is the
 * answer, or for a tool that requires a task a task created finished; input asked before it is
 * an ordinary InputRequiredResult, whose retry may become the task); a 2025-11-25 client's call
 * with the `task` param becomes one at once.
 *
 * Task ids are the gateway's own: 192 random bits, never the server's, bound on every access to
 * the principal that created the task (2026-07-28) or to the session (2025-11-25); an id that is
 * unknown, malformed, expired or someone else's is the same -32602.
 *
 * Threads: a task's call, timer and stream writer live on the worker that created it (its
 * home); tasks/get, tasks/update and tasks/cancel read and change its state from any worker
 * under tasks.lock, and post the call's next step (a retry, a cancellation) to the home.
 */
#include "mcp/gateway.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/log.h"
#include "core/rand.h"
#include "mcp/catalog.h"
#include "mcp/gateway-int.h"

#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TASKS_EXT "io.modelcontextprotocol/tasks"
#define TASKS_MAX 4096 /* tasks held gateway-wide (running or kept for their ttl) */
#define TASKS_PER_OWNER                                                                            \
    256                     /* listed tasks of one session (2025-11-25) or one user (2026-07-28)   \
                             */
#define TASK_TTL_MS 600000  /* a task is kept this long after it was created (ttlMs) */
#define TASK_POLL_MS 500    /* pollIntervalMs */
#define TASK_PROMOTE_MS 100 /* a 2026-07-28 call still running this long becomes a task */
#define TASK_EVENTS_MAX (64u << 20) /* the largest answer a task takes from its call */

enum task_status { T_WORKING, T_INPUT, T_COMPLETED, T_FAILED, T_CANCELLED };
static const char *const status_names[] = {"working", "input_required", "completed", "failed",
                                           "cancelled"};

struct task {
    struct stream_writer sw; /* the call's answer stream is read through this (home thread) */
    /* set at creation */
    char id[MCP_TASK_ID_LEN + 1];
    char owner[SESSION_OWNER_MAX + 1];
    struct session *bound; /* 2025-11-25: the session that created it (a reference) */
    int view, server;
    bool required; /* the tool requires a task */
    struct principal who;
    struct mcp_worker *home;
    json_t *call; /* the client's tools/call, as retries repeat it */
    /* under tasks.lock */
    _Atomic unsigned refs;
    bool listed; /* in the table: its id was handed out */
    enum task_status status;
    char created[32], updated[32];
    uint64_t expires_ns;
    json_t *result, *error;
    char *status_msg;           /* the statusMessage of the server's own task, when it runs one */
    json_t *inputs;             /* input_required: the requests still unanswered, by key */
    char *state;                /* and the requestState that resumes the call with their answers */
    json_t *queued;             /* answers that came while the call was resuming */
    bool resuming;              /* a retry is on its way: state is spent */
    struct waiter *waiters;     /* 2025-11-25 tasks/result requests waiting for the end */
    json_t *asked;              /* 2025-11-25: the input keys sent to the client on a waiter */
    struct listener *listeners; /* 2026-07-28: subscriptions/listen streams that asked for it */
    struct task *next;
    /* home thread */
    struct session *ts; /* the transient session the call runs on */
    struct stream *st;  /* the call's answer stream, or NULL */
    uint64_t cursor;
    struct buf buf;
    void *cookie; /* the call (mcp_cancel_call) */
    json_int_t next_id;
    struct stream *reply; /* 2026-07-28: the creating request's answer, until promoted */
    json_t *reply_id;
    bool promoted, disposed;
    uv_timer_t timer; /* promotion, then expiry */
    bool timer_init;
};

struct listener {
    struct session *s; /* a listener session (a reference) */
    struct listener *next;
};

struct waiter {
    struct stream *st;
    json_t *id;
    struct waiter *next;
};

static struct {
    pthread_mutex_t lock;
    struct task *head; /* every task alive, listed or not */
    unsigned count;
} tasks = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* A call dispatched by a task runs the ordinary path: it must not be taken for a task again. */
static _Thread_local bool nested;

/* --- ids, visibility (pure) --- */

bool mcp_task_id_wellformed(const char *id, size_t len)
{
    if (id == NULL || len != MCP_TASK_ID_LEN)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = id[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return false;
    }
    return true;
}

bool mcp_task_visible(const char *task_owner, const void *task_session, const char *owner,
                      const void *session)
{
    if (task_session != NULL || session != NULL)
        return task_session == session; /* a 2025-11-25 task: its session only */
    return strcmp(task_owner, owner) == 0;
}

/* --- helpers --- */

static void iso_now(char *out, size_t cap)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(out, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    if (n > 0 && n + 6 <= cap)
        snprintf(out + n, cap - n, ".%03dZ", (int)(ts.tv_nsec / 1000000) % 1000);
}

static bool declared(struct session *s)
{
    json_t *ext = json_object_get(session_client_capabilities(s), "extensions");
    return json_is_object(json_object_get(ext, TASKS_EXT));
}

/* The taskSupport the server published for its tool `orig`: 0 none/forbidden, 1 optional,
   2 required. */
static int task_support(int server, const char *orig)
{
    int support = 0;
    pthread_mutex_lock(&gw.lock);
    size_t i;
    json_t *t;
    json_array_foreach(gw.ups[server]->lists[CAT_TOOLS], i, t)
    {
        const char *name = json_string_value(json_object_get(t, "name"));
        if (name == NULL || strcmp(name, orig) != 0)
            continue;
        const char *ts =
            json_string_value(json_object_get(json_object_get(t, "execution"), "taskSupport"));
        support = ts == NULL ? 0 : strcmp(ts, "required") == 0 ? 2 : strcmp(ts, "optional") == 0;
        break;
    }
    pthread_mutex_unlock(&gw.lock);
    return support;
}

/* Whether server runs tasks of its own for tools/call that the gateway can follow: a legacy
   server whose initialize declared capabilities.tasks.requests.tools.call, a 2026-07-28 one whose
   server/discover advertises the tasks extension. */
static bool server_runs_tasks(int server)
{
    pthread_mutex_lock(&gw.lock);
    struct upstream *up = gw.ups[server];
    json_t *call = json_object_get(
        json_object_get(json_object_get(json_object_get(up->pub_caps, "tasks"), "requests"),
                        "tools"),
        "call");
    bool runs = atomic_load(&up->modern)
                    ? json_is_object(
                          json_object_get(json_object_get(up->pub_caps, "extensions"), TASKS_EXT))
                    : json_is_object(call);
    pthread_mutex_unlock(&gw.lock);
    return runs;
}

bool gw_tasks_offered(int view)
{
    bool offered = false;
    pthread_mutex_lock(&gw.lock);
    for (size_t s = 0; s < atomic_load(&gw.nups) && !offered; s++) {
        struct upstream *up = gw.ups[s];
        if ((view >= 0 && view != (int)s) || up->retired || up->pub_state != UP_READY)
            continue;
        size_t i;
        json_t *t;
        json_array_foreach(up->lists[CAT_TOOLS], i, t)
        {
            const char *ts =
                json_string_value(json_object_get(json_object_get(t, "execution"), "taskSupport"));
            if (ts && (strcmp(ts, "optional") == 0 || strcmp(ts, "required") == 0))
                offered = true;
        }
    }
    pthread_mutex_unlock(&gw.lock);
    return offered;
}

static struct task *task_ref(struct task *t)
{
    atomic_fetch_add(&t->refs, 1);
    return t;
}

static void task_unref(struct task *t)
{
    if (t == NULL || atomic_fetch_sub(&t->refs, 1) != 1)
        return;
    json_decref(t->call);
    json_decref(t->result);
    json_decref(t->error);
    json_decref(t->inputs);
    json_decref(t->queued);
    json_decref(t->asked);
    free(t->state);
    free(t->status_msg);
    json_decref(t->reply_id);
    if (t->reply)
        stream_unref(t->reply);
    if (t->st)
        stream_unref(t->st);
    if (t->ts) {
        session_close(t->ts);
        session_unref(t->ts);
    }
    if (t->bound)
        session_unref(t->bound);
    for (struct waiter *wt = t->waiters, *n; wt != NULL; wt = n) {
        n = wt->next;
        stream_end(wt->st);
        stream_unref(wt->st);
        json_decref(wt->id);
        free(wt);
    }
    for (struct listener *l = t->listeners, *n; l != NULL; l = n) {
        n = l->next;
        session_unref(l->s);
        free(l);
    }
    buf_release(&t->buf);
    free(t);
}

/* With tasks.lock: the listed task `id` that the caller may see, or NULL. */
static struct task *find_locked(const char *id, size_t len, const char *owner, struct session *s)
{
    if (!mcp_task_id_wellformed(id, len))
        return NULL;
    uint64_t now = clock_now_ns();
    for (struct task *t = tasks.head; t != NULL; t = t->next)
        if (t->listed && t->expires_ns > now && sodium_memcmp(t->id, id, MCP_TASK_ID_LEN) == 0)
            return mcp_task_visible(t->owner, t->bound, owner,
                                    s == NULL || session_transient(s) ? NULL : s)
                       ? t
                       : NULL;
    return NULL;
}

static bool terminal(enum task_status st)
{
    return st == T_COMPLETED || st == T_FAILED || st == T_CANCELLED;
}

/* With tasks.lock: the task's fields in the era's shape (new object). */
static json_t *describe_locked(struct task *t, bool legacy, bool detailed)
{
    json_t *o =
        json_pack("{s:s, s:s, s:s, s:s}", "taskId", t->id, "status", status_names[t->status],
                  "createdAt", t->created, "lastUpdatedAt", t->updated);
    json_object_set_new(o, legacy ? "ttl" : "ttlMs", json_integer(TASK_TTL_MS));
    json_object_set_new(o, legacy ? "pollInterval" : "pollIntervalMs", json_integer(TASK_POLL_MS));
    if (t->status == T_FAILED && t->error != NULL) {
        const char *m = json_string_value(json_object_get(t->error, "message"));
        if (m != NULL)
            json_object_set_new(o, "statusMessage", json_string(m));
    } else if (t->status_msg != NULL && !terminal(t->status)) {
        json_object_set_new(o, "statusMessage", json_string(t->status_msg));
    }
    if (!detailed || legacy)
        return o;
    if (t->status == T_INPUT && t->inputs != NULL)
        json_object_set(o, "inputRequests", t->inputs);
    if (t->status == T_COMPLETED && t->result != NULL)
        json_object_set(o, "result", t->result);
    if (t->status == T_FAILED && t->error != NULL)
        json_object_set(o, "error", t->error);
    return o;
}

/* The result of a task for tasks/result (2025-11-25): without the fields of 2026-07-28. */
static json_t *legacy_result(json_t *result)
{
    json_t *r = json_deep_copy(result);
    json_object_del(r, "resultType");
    json_object_del(r, "ttlMs");
    json_object_del(r, "cacheScope");
    return r;
}

/* What a client's answer to a request the gateway sent for a task is tracked under (the
   session's "upstream" of session_track_request, never dereferenced): no server is its target. */
static char task_answers_target;

static void status_changed_locked(struct task *t);

/* With tasks.lock: a 2025-11-25 task waits for input. That revision asks the client on the
   tasks/result stream: each request not asked yet goes on a waiting tasks/result's stream as an
   ordinary server-to-client request, whose answer (gw_task_relay_answer) is taken as
   tasks/update would take it. */
static void ask_legacy_locked(struct task *t)
{
    if (t->bound == NULL || t->status != T_INPUT || t->waiters == NULL)
        return;
    const char *key;
    json_t *q;
    json_object_foreach(t->inputs, key, q)
    {
        if (json_object_get(t->asked, key) != NULL)
            continue;
        const char *method = json_string_value(json_object_get(q, "method"));
        json_t *params = json_object_get(q, "params");
        uint64_t down = session_next_request_id(t->bound);
        json_t *tag = json_pack("{s:s, s:s}", "gatehouse/task", t->id, "key", key);
        if (method == NULL || tag == NULL ||
            session_track_request(t->bound, down, &task_answers_target, tag) != 0) {
            json_decref(tag);
            continue;
        }
        json_decref(tag);
        json_t *p = json_is_object(params) ? json_deep_copy(params) : json_object();
        json_t *meta = json_object_get(p, "_meta");
        if (!json_is_object(meta)) {
            meta = json_object();
            json_object_set_new(p, "_meta", meta);
        }
        json_object_set_new(meta, "io.modelcontextprotocol/related-task",
                            json_pack("{s:s}", "taskId", t->id));
        json_t *jid = gw_request_id(t->bound, down);
        json_t *req = jsonrpc_request_new(jid, method, p);
        json_decref(jid);
        stream_push(t->waiters->st, req, false);
        json_decref(req);
        if (t->asked == NULL)
            t->asked = json_object();
        json_object_set_new(t->asked, key, json_true());
    }
}

static void post_step(struct task *t, json_t *answers, char *state, bool cancel);

/* With tasks.lock: answers (an object keyed like inputRequests; borrowed) for t. Keys it waits
   for leave inputRequests at once and resume the call (or wait for a resume on its way); others
   are ignored (a key answered before, or never asked). */
static void take_answers_locked(struct task *t, json_t *responses)
{
    json_t *answers = json_object();
    const char *k;
    json_t *v;
    json_object_foreach(responses, k, v)
    {
        if (t->status == T_INPUT && json_object_get(t->inputs, k) != NULL) {
            json_object_set(answers, k, v);
            json_object_del(t->inputs, k);
            json_object_del(t->asked, k);
        }
    }
    if (json_object_size(answers) > 0 && t->state != NULL && !t->resuming) {
        char *state = t->state;
        t->state = NULL;
        t->resuming = true;
        if (json_object_size(t->inputs) == 0)
            t->status = T_WORKING;
        status_changed_locked(t);
        post_step(t, answers, state, false);
        return;
    }
    if (json_object_size(answers) > 0) {
        /* the call is resuming with earlier answers: these go with the requests it asks again */
        if (t->queued == NULL)
            t->queued = json_object();
        json_object_update(t->queued, answers);
    }
    json_decref(answers);
}

#define TASK_LISTENERS_MAX 16 /* listen streams one task is sent to */

/* With tasks.lock: send notifications/tasks (the task as tasks/get shows it) on the listen
   streams that asked for this task; forget the ones that ended. */
static void notify_listeners_locked(struct task *t)
{
    for (struct listener **pp = &t->listeners; *pp != NULL;) {
        struct listener *l = *pp;
        struct stream *st = session_closed(l->s) ? NULL : session_standalone_stream(l->s);
        if (st == NULL) {
            *pp = l->next;
            session_unref(l->s);
            free(l);
            continue;
        }
        json_t *params = describe_locked(t, false, true);
        json_object_set_new(
            params, "_meta",
            json_pack("{s:O}", "io.modelcontextprotocol/subscriptionId", session_listen_id(l->s)));
        json_t *n = jsonrpc_notification_new("notifications/tasks", params);
        stream_push(st, n, false);
        json_decref(n);
        stream_unref(st);
        pp = &l->next;
    }
}

/* With tasks.lock: tell the 2025-11-25 session the task's new status, and answer the
   tasks/result requests waiting for its end. */
static void status_changed_locked(struct task *t)
{
    iso_now(t->updated, sizeof(t->updated));
    if (t->bound == NULL) {
        notify_listeners_locked(t);
        return;
    }
    if (!t->listed)
        return;
    json_t *n =
        jsonrpc_notification_new("notifications/tasks/status", describe_locked(t, true, false));
    struct stream *gs = session_standalone_stream(t->bound);
    if (gs != NULL) {
        stream_push(gs, n, false);
        stream_unref(gs);
    }
    json_decref(n);
    if (!terminal(t->status))
        return;
    json_decref(t->asked);
    t->asked = NULL;
    for (struct waiter *wt = t->waiters, *nx; wt != NULL; wt = nx) {
        nx = wt->next;
        json_t *m;
        json_t *meta =
            json_pack("{s:{s:s}}", "io.modelcontextprotocol/related-task", "taskId", t->id);
        if (t->status == T_COMPLETED && t->result != NULL) {
            json_t *res = legacy_result(t->result);
            json_object_set_new(res, "_meta", meta);
            m = jsonrpc_result_new(wt->id, res);
        } else if (t->status == T_FAILED && t->error != NULL) {
            json_decref(meta);
            json_t *e = t->error;
            m = jsonrpc_error_new(wt->id, (int)json_integer_value(json_object_get(e, "code")),
                                  json_string_value(json_object_get(e, "message")),
                                  json_incref(json_object_get(e, "data")));
        } else {
            json_decref(meta);
            m = jsonrpc_error_new(wt->id, JSONRPC_INVALID_PARAMS,
                                  "the task was cancelled: it has no result", NULL);
        }
        stream_push(wt->st, m, true);
        json_decref(m);
        stream_unref(wt->st);
        json_decref(wt->id);
        free(wt);
    }
    t->waiters = NULL;
}

/* --- the task's call (home thread) --- */

static void task_wake_cb(struct stream_writer *sw);
static void task_timer_cb(uv_timer_t *timer);

/* Stop reading the call's stream. */
static void drop_stream(struct task *t)
{
    if (t->st == NULL)
        return;
    stream_detach(t->st, &t->sw);
    stream_unref(t->st);
    t->st = NULL;
    t->cursor = 0;
    buf_reset(&t->buf);
}

/* Dispatch `call` (a tools/call, taken) on the task's session; on 0 the task reads its answer
   stream, else *body gets the immediate answer (new reference). */
static int dispatch(struct task *t, json_t *call, json_t **body, int *status)
{
    json_t *id = json_integer(++t->next_id);
    json_object_set(call, "id", id);
    struct mcp_reply r;
    nested = true;
    mcp_handle_message(t->home, t->view, &t->who, t->ts, call, JSONRPC_REQUEST, &r);
    nested = false;
    json_decref(call);
    int err = 0;
    if (r.stream != NULL) {
        drop_stream(t);
        t->st = stream_ref(r.stream);
        t->cookie = session_find_call(t->ts, id);
        t->sw.mb = t->home->mb;
        t->sw.wake_cb = task_wake_cb;
        stream_attach(t->st, &t->sw);
    } else {
        *body = json_incref(r.body);
        if (status)
            *status = r.status;
        err = ERR_INVAL;
    }
    json_decref(id);
    mcp_reply_release(&r);
    return err;
}

/* With tasks.lock: the CreateTaskResult (2026-07-28) or {task} (2025-11-25). */
static json_t *create_result_locked(struct task *t)
{
    json_t *task = describe_locked(t, t->bound != NULL, false);
    if (t->bound != NULL)
        return json_pack("{s:o}", "task", task);
    json_object_set_new(task, "resultType", json_string("task"));
    return task;
}

/* List t (its id becomes valid) and answer the creating request with it. Returns NULL, or why
   it cannot be listed (a limit: the caller answers). One principal or session cannot take the
   whole table from the others; anonymous 2026-07-28 clients share the gateway-wide bound. */
static const char *promote(struct task *t)
{
    pthread_mutex_lock(&tasks.lock);
    unsigned listed = 0, own = 0;
    for (struct task *x = tasks.head; x != NULL; x = x->next) {
        listed += x->listed;
        own += x->listed && (t->bound != NULL ? x->bound == t->bound
                                              : x->bound == NULL && t->owner[0] != '\0' &&
                                                    strcmp(x->owner, t->owner) == 0);
    }
    if (listed >= TASKS_MAX || own >= TASKS_PER_OWNER) {
        pthread_mutex_unlock(&tasks.lock);
        return listed >= TASKS_MAX ? "the gateway holds 4096 tasks (its limit); try later"
               : t->bound != NULL  ? "this session has 256 tasks (the limit per session); let some "
                                     "finish or cancel them"
                                   : "you have 256 tasks (the limit per user); let some finish or "
                                     "cancel them";
    }
    t->listed = true;
    t->promoted = true;
    t->expires_ns = clock_now_ns() + (uint64_t)TASK_TTL_MS * 1000000u;
    task_ref(t); /* the table's */
    json_t *res = create_result_locked(t);
    pthread_mutex_unlock(&tasks.lock);
    if (t->reply != NULL) {
        json_t *m = jsonrpc_result_new(t->reply_id, res);
        stream_push(t->reply, m, true);
        json_decref(m);
        stream_unref(t->reply);
        t->reply = NULL;
    } else {
        json_decref(res);
    }
    if (t->timer_init)
        uv_timer_start(&t->timer, task_timer_cb, TASK_TTL_MS, 0);
    return NULL;
}

static void timer_closed_cb(uv_handle_t *h)
{
    task_unref(h->data);
}

/* Home thread: the task is over for the gateway (expired, or never promoted): out of the table,
   its call cancelled if it still runs, its session closed. */
static void dispose(struct task *t)
{
    if (t->disposed)
        return;
    t->disposed = true;
    pthread_mutex_lock(&tasks.lock);
    bool running = !terminal(t->status) && t->promoted;
    if (running) {
        t->status = T_CANCELLED;
        status_changed_locked(t);
    }
    bool was_listed = t->listed;
    t->listed = false;
    for (struct task **pp = &tasks.head; *pp != NULL; pp = &(*pp)->next)
        if (*pp == t) {
            *pp = t->next;
            tasks.count--;
            break;
        }
    pthread_mutex_unlock(&tasks.lock);
    drop_stream(t);
    if (t->cookie != NULL && running)
        mcp_cancel_call(t->cookie, "the task expired (its ttlMs passed)");
    if (t->reply != NULL) {
        stream_end(t->reply);
        stream_unref(t->reply);
        t->reply = NULL;
    }
    if (was_listed)
        task_unref(t);
    if (t->timer_init) {
        t->timer_init = false;
        uv_timer_stop(&t->timer);
        uv_close((uv_handle_t *)&t->timer, timer_closed_cb); /* drops the home's reference */
    } else {
        task_unref(t);
    }
}

static void task_timer_cb(uv_timer_t *timer)
{
    struct task *t = timer->data;
    if (!t->promoted && t->st != NULL) {
        const char *why = promote(t);
        if (why != NULL) {
            char m[300];
            snprintf(m, sizeof(m), "the call cannot become a task: %s", why);
            json_t *e = jsonrpc_error_new(t->reply_id, JSONRPC_GATEWAY_LIMIT, m, NULL);
            stream_push(t->reply, e, true);
            json_decref(e);
            if (t->cookie)
                mcp_cancel_call(t->cookie, "the call could not become a task (a limit)");
            dispose(t);
        }
        return;
    }
    dispose(t); /* its ttl passed */
}

/* Home thread: resume the call with answers (taken) to the requests of `state` (taken). */
static void resume(struct task *t, json_t *answers, char *state)
{
    json_t *call = json_deep_copy(t->call);
    json_t *params = json_object_get(call, "params");
    json_object_set_new(params, "inputResponses", answers);
    json_object_set_new(params, "requestState", json_string(state));
    free(state);
    json_t *body = NULL;
    if (dispatch(t, call, &body, NULL) != 0) {
        pthread_mutex_lock(&tasks.lock);
        if (!terminal(t->status)) {
            json_t *e = json_object_get(body, "error");
            t->status = T_FAILED;
            json_decref(t->error);
            t->error = e ? json_incref(e)
                         : json_pack("{s:i, s:s}", "code", JSONRPC_INTERNAL_ERROR, "message",
                                     "the call could not be resumed");
            t->resuming = false;
            status_changed_locked(t);
        }
        pthread_mutex_unlock(&tasks.lock);
        json_decref(body);
    }
}

/* Home thread: the call's final answer msg (a result or an error). */
static void final_answer(struct task *t, json_t *msg)
{
    json_t *result = json_object_get(msg, "result");
    json_t *error = json_object_get(msg, "error");
    const char *rt = json_string_value(json_object_get(result, "resultType"));
    bool input = rt != NULL && strcmp(rt, "input_required") == 0;
    if (!t->promoted) {
        if (input || !t->required || promote(t) != NULL) {
            /* Before it is a task: the answer (or the InputRequiredResult, whose retry may
               become the task) is the creating request's. */
            json_t *copy = json_copy(msg);
            json_object_set(copy, "id", t->reply_id);
            stream_push(t->reply, copy, true);
            json_decref(copy);
            stream_unref(t->reply);
            t->reply = NULL;
            dispose(t);
            return;
        }
    }
    pthread_mutex_lock(&tasks.lock);
    if (terminal(t->status)) { /* cancelled meanwhile */
        pthread_mutex_unlock(&tasks.lock);
        return;
    }
    if (input) {
        json_t *reqs = json_object_get(result, "inputRequests");
        const char *state = json_string_value(json_object_get(result, "requestState"));
        json_decref(t->inputs);
        t->inputs = json_is_object(reqs) ? json_deep_copy(reqs) : json_object();
        free(t->state);
        t->state = state ? strdup(state) : NULL;
        t->resuming = false;
        t->status = T_INPUT;
        /* answers that came while the call was resuming */
        json_t *answers = json_object();
        const char *k;
        json_t *v;
        json_object_foreach(t->queued, k, v)
        {
            if (json_object_get(t->inputs, k) != NULL) {
                json_object_set(answers, k, v);
                json_object_del(t->inputs, k);
            }
        }
        json_decref(t->queued);
        t->queued = NULL;
        char *st = NULL;
        if (json_object_size(answers) > 0 && t->state != NULL) {
            st = t->state;
            t->state = NULL;
            t->resuming = true;
            if (json_object_size(t->inputs) == 0)
                t->status = T_WORKING;
        }
        status_changed_locked(t);
        ask_legacy_locked(t);
        pthread_mutex_unlock(&tasks.lock);
        if (st != NULL)
            resume(t, answers, st);
        else
            json_decref(answers);
        return;
    }
    if (json_is_object(result)) {
        json_t *r = json_deep_copy(result); /* a complete result: resultType "complete" */
        json_t *meta = json_object_get(r, "_meta");
        json_object_del(meta, "io.modelcontextprotocol/related-task");
        t->result = r;
        t->status = T_COMPLETED;
    } else {
        t->error = json_is_object(error) ? json_deep_copy(error)
                                         : json_pack("{s:i, s:s}", "code", JSONRPC_INTERNAL_ERROR,
                                                     "message", "the call ended without an answer");
        t->status = T_FAILED;
    }
    status_changed_locked(t);
    pthread_mutex_unlock(&tasks.lock);
}

/* Home thread: what the call's stream holds now. */
/* The server's own task changed (its notifications/tasks/status, passed on the call's stream by
   the engine without the server's id): its status message is shown as the task's while the task
   runs. Its status is not taken: input the task waits for comes as requests (the MRTR bridge),
   and its end as the answer. */
static void server_status(struct task *t, json_t *params)
{
    const char *msg = json_string_value(json_object_get(params, "statusMessage"));
    if (msg == NULL)
        return;
    char *copy = strndup(msg, 1024);
    pthread_mutex_lock(&tasks.lock);
    if (copy != NULL && !terminal(t->status)) {
        free(t->status_msg);
        t->status_msg = copy;
        copy = NULL;
        status_changed_locked(t);
    }
    pthread_mutex_unlock(&tasks.lock);
    free(copy);
}

static void task_wake_cb(struct stream_writer *sw)
{
    struct task *t = (struct task *)sw;
    task_ref(t);
    while (t->st != NULL) {
        bool finished = false;
        buf_reset(&t->buf);
        int err = stream_pull(t->st, &t->cursor, &t->buf, &finished, false, NULL);
        if (err != 0)
            finished = true;
        if (t->buf.len == 0 && !finished)
            break; /* nothing more now: woken again by the next event */
        json_t *final = NULL;
        for (char *line = t->buf.data; line != NULL && *line;) {
            char *end = strchr(line, '\n');
            if (end)
                *end = '\0';
            if (strncmp(line, "data: ", 6) == 0) {
                json_t *m = json_loads(line + 6, 0, NULL);
                if (m != NULL && jsonrpc_method(m) == NULL &&
                    (json_object_get(m, "result") || json_object_get(m, "error"))) {
                    json_decref(final);
                    final = m; /* notifications (progress, log) stay with the call */
                } else if (m != NULL && jsonrpc_method(m) != NULL &&
                           strcmp(jsonrpc_method(m), "notifications/tasks/status") == 0) {
                    server_status(t, json_object_get(m, "params"));
                    json_decref(m);
                } else {
                    json_decref(m);
                }
            }
            line = end ? end + 1 : NULL;
        }
        if (final != NULL) {
            drop_stream(t);
            final_answer(t, final); /* may dispatch a retry: a new stream, woken on attach */
            json_decref(final);
            break;
        }
        if (finished) {
            drop_stream(t); /* ended without an answer: cancelled */
            break;
        }
    }
    task_unref(t);
}

/* --- what clients send --- */

static void reply_error(struct mcp_reply *r, json_t *id, int code, int status, json_t *data,
                        const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static void reply_error(struct mcp_reply *r, json_t *id, int code, int status, json_t *data,
                        const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    r->status = status;
    r->body = jsonrpc_error_newv(id, code, data, fmt, ap);
    va_end(ap);
}

bool gw_task_call(struct mcp_worker *w, int view, const struct principal *who, struct session *s,
                  json_t *msg, int server, const char *orig, struct mcp_reply *r)
{
    if (nested)
        return false;
    json_t *id = json_object_get(msg, "id");
    json_t *params = json_object_get(msg, "params");
    bool modern = session_transient(s);
    bool hint = json_object_get(params, "task") != NULL;
    /* A 2025-11-25 client's task hint: acted on for such a client, never for a 2026-07-28 one
       (the server decides there), and never sent on: a server sees an ordinary call. */
    json_object_del(params, "task");
    if (!modern && !hint)
        return false; /* an ordinary call (a tool that requires a task too: the server decides) */
    int support = task_support(server, orig);
    if (support == 0)
        return false;
    if (modern && !declared(s)) {
        if (support < 2)
            return false; /* runs as an ordinary call */
        reply_error(r, id, MCP_ERR_MISSING_CLIENT_CAP, 400,
                    json_pack("{s:{s:{s:{}}}}", "requiredCapabilities", "extensions", TASKS_EXT),
                    "Missing required client capability: tool %s runs only as a task; declare "
                    "the %s extension in _meta io.modelcontextprotocol/clientCapabilities",
                    orig, TASKS_EXT);
        return true;
    }
    struct task *t = calloc(1, sizeof(*t));
    int err = 0;
    if (t == NULL)
        return false;
    atomic_init(&t->refs, 1); /* the home's, dropped by dispose */
    rand_token(t->id, sizeof(t->id), MCP_TASK_ID_BYTES);
    if (modern)
        gw_task_id_route(t->id); /* with Redis: any replica finds it */
    snprintf(t->owner, sizeof(t->owner), "%s", session_owner(s));
    t->bound = modern ? NULL : session_ref(s);
    t->view = view;
    t->server = server;
    t->required = support == 2;
    t->who = *who;
    t->home = w;
    t->call = json_deep_copy(msg);
    json_object_del(json_object_get(t->call, "params"), "inputResponses");
    json_object_del(json_object_get(t->call, "params"), "requestState");
    if (server_runs_tasks(server)) /* the server's own task, followed by the call upstream */
        json_object_set_new(json_object_get(t->call, "params"), "task",
                            json_pack("{s:i}", "ttl", TASK_TTL_MS));
    buf_init(&t->buf, TASK_EVENTS_MAX);
    iso_now(t->created, sizeof(t->created));
    memcpy(t->updated, t->created, sizeof(t->updated));
    t->ts = session_new_transient(view, MCP_VERSION_2026, session_client_capabilities(s), &err);
    if (t->ts == NULL || t->call == NULL) {
        task_unref(t);
        reply_error(r, id, JSONRPC_INTERNAL_ERROR, 200, NULL, "cannot run a task: %s",
                    err_str(err ? err : ERR_NOMEM));
        return true;
    }
    session_set_owner(t->ts, t->owner);
    pthread_mutex_lock(&tasks.lock);
    t->next = tasks.head;
    tasks.head = t;
    tasks.count++;
    pthread_mutex_unlock(&tasks.lock);
    uv_timer_init(w->loop, &t->timer);
    t->timer.data = t;
    t->timer_init = true;
    json_t *body = NULL;
    int status = 200;
    json_t *call = json_deep_copy(msg);
    json_t *aug = json_object_get(json_object_get(t->call, "params"), "task");
    if (aug != NULL)
        json_object_set(json_object_get(call, "params"), "task", aug);
    if (dispatch(t, call, &body, &status) != 0) {
        r->body = body; /* refused before it ran (unknown tool, view, arguments, state, …) */
        r->status = status;
        r->server = gw.ups[server]->srv->name;
        dispose(t);
        return true;
    }
    r->server = gw.ups[server]->srv->name;
    if (!modern) {
        /* 2025-11-25: a task-augmented request is answered with the task at once. */
        const char *why = promote(t);
        if (why != NULL) {
            if (t->cookie)
                mcp_cancel_call(t->cookie, "the call could not become a task (a limit)");
            dispose(t);
            reply_error(r, id, JSONRPC_GATEWAY_LIMIT, 200, NULL,
                        "the call cannot become a task: %s", why);
            return true;
        }
        pthread_mutex_lock(&tasks.lock);
        r->body = jsonrpc_result_new(id, create_result_locked(t));
        pthread_mutex_unlock(&tasks.lock);
        r->status = 200;
        return true;
    }
    struct stream *st = stream_new(s);
    if (st == NULL) {
        if (t->cookie)
            mcp_cancel_call(t->cookie, "out of memory");
        dispose(t);
        reply_error(r, id, JSONRPC_INTERNAL_ERROR, 200, NULL, "out of memory");
        return true;
    }
    t->reply = stream_ref(st);
    t->reply_id = json_incref(id);
    r->stream = st;
    r->status = 200;
    uv_timer_start(&t->timer, task_timer_cb, TASK_PROMOTE_MS, 0);
    return true;
}

/* A task's next step, posted to its home. */
struct step {
    struct task *t;
    json_t *answers; /* a resume */
    char *state;
    bool cancel;
};

static void step_cb(void *arg)
{
    struct step *sp = arg;
    struct task *t = sp->t;
    if (sp->cancel) {
        drop_stream(t);
        if (t->cookie)
            mcp_cancel_call(t->cookie, "the client cancelled the task (tasks/cancel)");
    } else if (!t->disposed) {
        resume(t, sp->answers, sp->state);
        sp->answers = NULL;
        sp->state = NULL;
    }
    json_decref(sp->answers);
    free(sp->state);
    task_unref(t);
    free(sp);
}

static void post_step(struct task *t, json_t *answers, char *state, bool cancel)
{
    struct step *sp = calloc(1, sizeof(*sp));
    if (sp == NULL) {
        json_decref(answers);
        free(state);
        return;
    }
    sp->t = task_ref(t);
    sp->answers = answers;
    sp->state = state;
    sp->cancel = cancel;
    if (mailbox_post(t->home->mb, step_cb, sp) != 0) {
        json_decref(answers);
        free(state);
        task_unref(t);
        free(sp);
    }
}

/* A tasks method for `owner`: of session s (a 2025-11-25 one, or a 2026-07-28 client's transient
   one), or with s NULL of a 2026-07-28 client of another replica (remote: its answer goes back
   there). w is the worker it arrived on (NULL for remote). */
static void tasks_method(struct mcp_worker *w, struct session *s, const char *owner, bool modern,
                         json_t *msg, struct mcp_reply *r)
{
    json_t *id = json_object_get(msg, "id");
    json_t *params = json_object_get(msg, "params");
    const char *method = jsonrpc_method(msg);
    const char *verb = method + 6; /* after "tasks/" */
    r->status = 200;
    if (strcmp(verb, "list") == 0) {
        json_t *list = json_array();
        pthread_mutex_lock(&tasks.lock);
        uint64_t now = clock_now_ns();
        for (struct task *t = tasks.head; t != NULL; t = t->next)
            if (t->listed && t->expires_ns > now && t->bound == s)
                json_array_append_new(list, describe_locked(t, true, false));
        pthread_mutex_unlock(&tasks.lock);
        r->body = jsonrpc_result_new(id, json_pack("{s:o}", "tasks", list));
        return;
    }
    json_t *jtid = json_object_get(params, "taskId");
    const char *tid = json_string_value(jtid);
    if (tid == NULL) {
        reply_error(r, id, JSONRPC_INVALID_PARAMS, 200, NULL,
                    "Invalid params: %s needs params.taskId, the string a task's creation "
                    "returned",
                    method);
        return;
    }
    json_t *responses = json_object_get(params, "inputResponses");
    if (strcmp(verb, "update") == 0 && !json_is_object(responses)) {
        reply_error(r, id, JSONRPC_INVALID_PARAMS, 200, NULL,
                    "Invalid params: tasks/update needs params.inputResponses, an object keyed "
                    "like the task's inputRequests");
        return;
    }
    if (modern && s != NULL && gw_task_elsewhere(tid, json_string_length(jtid))) {
        gw_task_forward(w, s, owner, msg, r);
        return;
    }
    pthread_mutex_lock(&tasks.lock);
    struct task *t = find_locked(tid, json_string_length(jtid), owner, modern ? NULL : s);
    if (t == NULL) {
        pthread_mutex_unlock(&tasks.lock);
        reply_error(r, id, JSONRPC_INVALID_PARAMS, 200, json_pack("{s:O}", "taskId", jtid),
                    "Invalid params: no task %.64s (unknown, expired, or not yours)", tid);
        return;
    }
    r->server = gw.ups[t->server]->srv->name;
    if (strcmp(verb, "get") == 0) {
        json_t *o = describe_locked(t, !modern, true);
        pthread_mutex_unlock(&tasks.lock);
        if (modern)
            json_object_set_new(o, "resultType", json_string("complete"));
        r->body = jsonrpc_result_new(id, o);
        return;
    }
    if (strcmp(verb, "cancel") == 0) {
        bool was_terminal = terminal(t->status);
        const char *was = status_names[t->status]; /* t is not ours once the lock is let go */
        if (!was_terminal) {
            t->status = T_CANCELLED;
            json_decref(t->inputs);
            t->inputs = NULL;
            status_changed_locked(t);
            post_step(t, NULL, NULL, true);
        }
        json_t *o =
            modern ? json_pack("{s:s}", "resultType", "complete") : describe_locked(t, true, false);
        pthread_mutex_unlock(&tasks.lock);
        if (!modern && was_terminal) {
            json_decref(o);
            reply_error(r, id, JSONRPC_INVALID_PARAMS, 200, NULL,
                        "Invalid params: task %.64s is already %s and cannot be cancelled", tid,
                        was);
            return;
        }
        r->body = jsonrpc_result_new(id, o);
        return;
    }
    if (strcmp(verb, "result") == 0) {
        if (!terminal(t->status)) {
            struct waiter *wt = calloc(1, sizeof(*wt));
            struct stream *st = wt ? stream_new(s) : NULL;
            if (st == NULL) {
                pthread_mutex_unlock(&tasks.lock);
                free(wt);
                reply_error(r, id, JSONRPC_INTERNAL_ERROR, 200, NULL, "out of memory");
                return;
            }
            wt->st = stream_ref(st);
            wt->id = json_incref(id);
            wt->next = t->waiters;
            t->waiters = wt;
            ask_legacy_locked(t); /* what it waits for, asked on this stream */
            pthread_mutex_unlock(&tasks.lock);
            r->stream = st;
            return;
        }
        json_t *m;
        if (t->status == T_COMPLETED) {
            json_t *res = legacy_result(t->result);
            json_object_set_new(
                res, "_meta",
                json_pack("{s:{s:s}}", "io.modelcontextprotocol/related-task", "taskId", t->id));
            m = jsonrpc_result_new(id, res);
        } else if (t->status == T_FAILED) {
            json_t *e = t->error;
            m = jsonrpc_error_new(id, (int)json_integer_value(json_object_get(e, "code")),
                                  json_string_value(json_object_get(e, "message")),
                                  json_incref(json_object_get(e, "data")));
        } else {
            m = jsonrpc_error_new(id, JSONRPC_INVALID_PARAMS,
                                  "the task was cancelled: it has no result", NULL);
        }
        pthread_mutex_unlock(&tasks.lock);
        r->body = m;
        return;
    }
    take_answers_locked(t, responses); /* tasks/update */
    pthread_mutex_unlock(&tasks.lock);
    r->body = jsonrpc_result_new(id, json_pack("{s:s}", "resultType", "complete"));
}

void gw_tasks_method(struct mcp_worker *w, struct session *s, json_t *msg, struct mcp_reply *r)
{
    bool modern = session_transient(s);
    if (modern && !declared(s)) {
        r->status = 200;
        reply_error(r, json_object_get(msg, "id"), MCP_ERR_MISSING_CLIENT_CAP, 400,
                    json_pack("{s:{s:{s:{}}}}", "requiredCapabilities", "extensions", TASKS_EXT),
                    "Missing required client capability: %s needs the %s extension in _meta "
                    "io.modelcontextprotocol/clientCapabilities",
                    jsonrpc_method(msg), TASKS_EXT);
        return;
    }
    tasks_method(w, s, session_owner(s), modern, msg, r);
}

void gw_task_remote(const char *owner, json_t *msg, struct mcp_reply *r)
{
    const char *method = jsonrpc_method(msg);
    memset(r, 0, sizeof(*r));
    if (method == NULL ||
        (strcmp(method, "tasks/get") != 0 && strcmp(method, "tasks/update") != 0 &&
         strcmp(method, "tasks/cancel") != 0)) {
        r->status = 200;
        reply_error(r, json_object_get(msg, "id"), JSONRPC_INVALID_REQUEST, 200, NULL,
                    "another replica sent %.40s for a task; only tasks/get, tasks/update and "
                    "tasks/cancel cross replicas",
                    method ? method : "a message without a method");
        return;
    }
    tasks_method(NULL, NULL, owner, true, msg, r);
}

bool gw_task_relay_answer(struct session *s, void *target, json_t *tag, json_t *msg)
{
    if (target != &task_answers_target)
        return false;
    json_t *jtid = json_object_get(tag, "gatehouse/task");
    const char *key = json_string_value(json_object_get(tag, "key"));
    pthread_mutex_lock(&tasks.lock);
    struct task *t =
        find_locked(json_string_value(jtid), json_string_length(jtid), session_owner(s), s);
    json_t *result = json_object_get(msg, "result");
    if (t != NULL && key != NULL && json_is_object(result)) {
        json_t *responses = json_pack("{s:O}", key, result);
        take_answers_locked(t, responses);
        json_decref(responses);
    } else if (t != NULL && key != NULL && !terminal(t->status) &&
               json_object_get(t->inputs, key) != NULL) {
        /* The client could not answer: the task fails with its error, and its call is cancelled. */
        json_t *e = json_object_get(msg, "error");
        json_decref(t->error);
        t->error = json_is_object(e) ? json_deep_copy(e)
                                     : json_pack("{s:i, s:s}", "code", JSONRPC_INTERNAL_ERROR,
                                                 "message", "the client's answer was not a result");
        t->status = T_FAILED;
        json_decref(t->inputs);
        t->inputs = NULL;
        status_changed_locked(t);
        post_step(t, NULL, NULL, true);
    }
    pthread_mutex_unlock(&tasks.lock);
    return true;
}

json_t *mcp_tasks_listen(struct session *s, const char *owner, json_t *ids)
{
    if (!json_is_array(ids) || !declared(s))
        return NULL;
    json_t *accepted = json_array();
    size_t i;
    json_t *jid;
    pthread_mutex_lock(&tasks.lock);
    json_array_foreach(ids, i, jid)
    {
        const char *id = json_string_value(jid);
        struct task *t = id ? find_locked(id, json_string_length(jid), owner, s) : NULL;
        if (t == NULL || t->bound != NULL)
            continue; /* not one of this principal's 2026-07-28 tasks: not honoured */
        unsigned n = 0;
        for (struct listener *l = t->listeners; l != NULL; l = l->next)
            n++;
        struct listener *l = n < TASK_LISTENERS_MAX ? calloc(1, sizeof(*l)) : NULL;
        if (l == NULL)
            continue;
        l->s = session_ref(s);
        l->next = t->listeners;
        t->listeners = l;
        json_array_append(accepted, jid);
    }
    pthread_mutex_unlock(&tasks.lock);
    return accepted;
}

void gw_tasks_free(void)
{
    /* After the worker loops are gone (their handles closed by the servers' walk). */
    pthread_mutex_lock(&tasks.lock);
    struct task *t = tasks.head;
    tasks.head = NULL;
    tasks.count = 0;
    pthread_mutex_unlock(&tasks.lock);
    while (t != NULL) {
        struct task *n = t->next;
        if (t->st != NULL) {
            stream_detach(t->st, &t->sw);
        }
        t->listed = false;
        atomic_store(&t->refs, 1);
        task_unref(t);
        t = n;
    }
}
