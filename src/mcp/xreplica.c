/*
 * Traffic across replicas, over Redis (docs/architecture.md, "Redis"). Behind a
 * load balancer without stickiness, a client's GET stream may be held by replica A while the
 * upstream session that speaks to it lives on replica B, and a client's answer to a server
 * request B relayed may be POSTed to A. Only with Redis and shared seal keys (a master key);
 * without them nothing here runs and every message stays on the replica that made it.
 *
 *  - Streams: a message for the standalone stream of a sealed session that no writer here holds
 *    (session.c offers it to forward_cb) is PUBLISHed on {prefix}s2c:<hash of the id>; a replica
 *    subscribes to that channel while it holds a writer of the stream (watch_cb) and pushes what
 *    arrives into its own copy of the stream. PUBLISH says how many received it: none (nobody
 *    holds the stream), or Redis unreachable, and the message is kept here as before.
 *  - Answers: the id a client sees on a server request relayed by this replica is sealed
 *    (MCP_SEAL_ROUTE: the local id, this replica's name, the session's hash, an expiry), so that
 *    a replica receiving the answer knows where it goes and a client can neither forge nor move
 *    it. An answer for another replica is PUBLISHed on {prefix}replica:<name> with the caller's
 *    principal; that replica dispatches it as if it had been POSTed there.
 *  - Tasks: a 2026-07-28 task's id starts with the name of the replica that runs it; tasks/get,
 *    tasks/update or tasks/cancel for it on another replica is PUBLISHed on the owner's
 *    {prefix}replica:<name> with the caller's owner key and a sequence number; the owner answers
 *    it as its own caller would be answered (the owner key checked like a local one) and
 *    PUBLISHes the answer back on the asking replica's channel, which ends the client's answer
 *    stream with it (or with an error naming the cause after XR_TASK_WAIT_MS).
 */
#include "core/err.h"
#include "core/log.h"
#include "core/metrics.h"
#include "mcp/gateway-int.h"
#include "mcp/gateway.h"
#include "shared/redis.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define XR_MESSAGE_MAX (256 * 1024) /* a message larger than this is not sent across */
/* A relayed request's id routes an answer from another replica this long (past timeouts.total's
   default of 5 min by far); on the replica that relayed it, the pending request is the bound. */
#define XR_ANSWER_TTL_S 3600
#define XR_ID_PREFIX "ghr1."
#define XR_LOG_EVERY_S 10 /* "kept here" warnings: at most one per this many seconds */

static atomic_bool active;
static _Atomic int64_t last_warned;

/* gatehouse_xreplica_messages_total{kind, outcome}: kind "stream" (a message for a GET stream),
   "answer" (a client's answer to a server request) or "task" (a 2026-07-28 client's tasks/get,
   tasks/update or tasks/cancel for a task another replica holds); outcome "sent" (another
   replica received it), "kept" (a stream's message nobody else held the stream for, or Redis
   unreachable: kept here), "gone" (an answer or task request whose replica is gone),
   "unavailable" (one Redis could not carry), "unanswered" (a task request whose answer did not
   come in time), "received" (from another replica, delivered here). */
static void count(const char *kind, const char *outcome)
{
    static const char *const names[] = {"kind", "outcome"};
    struct metric *m = metrics_counter(
        "gatehouse_xreplica_messages_total",
        "Traffic across replicas over Redis: messages for GET streams, clients' answers and "
        "tasks requests, by what became of them",
        2, names);
    const char *values[] = {kind, outcome};
    metrics_inc(m, values, 1);
}

static int64_t wall_s(void)
{
    return (int64_t)time(NULL);
}

/* A warning at most every XR_LOG_EVERY_S (a flood while Redis is down is one line). */
static void warn_kept(const char *why)
{
    int64_t now = wall_s(), last = atomic_load(&last_warned);
    if (now - last < XR_LOG_EVERY_S || !atomic_compare_exchange_strong(&last_warned, &last, now))
        return;
    log_warn("xreplica",
             "a message for a client's stream held by another replica was kept on this replica "
             "(%s); the client gets it only if it opens its stream here",
             why);
}

/* ---- streams ---- */

struct forward_job {
    struct stream *st;
    json_t *msg;
};

static void forwarded_cb(int err, long long receivers, void *arg)
{
    struct forward_job *j = arg;
    count("stream", err || receivers == 0 ? "kept" : "sent");
    if (err || receivers == 0) {
        if (err)
            warn_kept(err == ERR_CLOSED ? "shutting down" : "Redis is not reachable");
        stream_push_here(j->st, j->msg, false); /* nobody holds it elsewhere: as before */
    }
    stream_unref(j->st);
    json_decref(j->msg);
    free(j);
}

static bool forward_cb(struct stream *st, const char *hash, json_t *msg)
{
    char *payload = json_dumps(msg, JSON_COMPACT);
    if (payload == NULL)
        return false;
    size_t len = strlen(payload);
    struct forward_job *j = NULL;
    int err = ERR_LIMIT;
    if (len <= XR_MESSAGE_MAX && (j = malloc(sizeof(*j))) != NULL) {
        j->st = stream_ref(st);
        j->msg = json_incref(msg);
        err = shared_publish(SHARED_CH_STREAM, hash, payload, len, forwarded_cb, j);
        if (err) {
            stream_unref(j->st);
            json_decref(j->msg);
            free(j);
        }
    }
    free(payload);
    if (err)
        count("stream", "kept");
    if (err)
        warn_kept(err == ERR_LIMIT         ? "larger than the cross-replica limit of 256 KiB"
                  : err == ERR_UNAVAILABLE ? "Redis is not connected"
                                           : err_str(err));
    return err == 0;
}

static void watch_cb(const char *hash, bool on)
{
    shared_stream_watch(hash, on);
}

static const struct session_remote remote = {watch_cb, forward_cb};

/* Subscriber thread: another replica's message for a stream this replica holds. */
static void stream_message(const char *hash, const char *payload, size_t len)
{
    json_t *msg = json_loadb(payload, len, JSON_REJECT_DUPLICATES, NULL);
    struct session *s = json_is_object(msg) ? session_find_by_hash(hash) : NULL;
    struct stream *st = s ? session_standalone_stream(s) : NULL;
    if (st != NULL && stream_push_here(st, msg, false) == 0)
        count("stream", "received");
    stream_unref(st);
    session_unref(s);
    json_decref(msg);
}

/* ---- answers ---- */

json_t *gw_request_id(struct session *s, uint64_t down_id)
{
    char hash[SHARED_HASH_HEX];
    if (!atomic_load(&active) || !session_id_hash(s, hash))
        return json_integer((json_int_t)down_id);
    json_t *doc =
        json_pack("{s:I, s:s, s:s#, s:I}", "n", (json_int_t)down_id, "r", shared_replica(), "h",
                  hash, (int)16, "x", (json_int_t)(wall_s() + XR_ANSWER_TTL_S));
    char *sealed = doc ? mcp_seal(MCP_SEAL_ROUTE, XR_ID_PREFIX, doc) : NULL;
    json_decref(doc);
    if (sealed == NULL)
        return json_integer((json_int_t)down_id);
    json_t *id = json_string(sealed);
    free(sealed);
    return id;
}

struct mcp_xr_answer {
    char replica[SHARED_REPLICA_LEN + 1];
    char *payload;
    size_t len;
};

static json_t *principal_json(const struct principal *p)
{
    return json_pack("{s:i, s:I, s:s, s:s, s:s, s:s, s:I, s:s}", "k", (int)p->kind, "i",
                     (json_int_t)p->id, "n", p->name, "c", p->client_id, "s", p->scope, "j",
                     p->credential_id, "e", (json_int_t)p->expires_at, "x", p->session);
}

static void copy_field(char *out, size_t size, json_t *o, const char *key)
{
    const char *v = json_string_value(json_object_get(o, key));
    snprintf(out, size, "%s", v ? v : "");
}

static void principal_from_json(json_t *o, struct principal *p)
{
    principal_init_anonymous(p);
    int k = (int)json_integer_value(json_object_get(o, "k"));
    p->kind = k == PRINCIPAL_USER      ? PRINCIPAL_USER
              : k == PRINCIPAL_SERVICE ? PRINCIPAL_SERVICE
                                       : PRINCIPAL_ANONYMOUS;
    p->id = (int64_t)json_integer_value(json_object_get(o, "i"));
    p->expires_at = (int64_t)json_integer_value(json_object_get(o, "e"));
    copy_field(p->name, sizeof(p->name), o, "n");
    copy_field(p->client_id, sizeof(p->client_id), o, "c");
    copy_field(p->scope, sizeof(p->scope), o, "s");
    copy_field(p->credential_id, sizeof(p->credential_id), o, "j");
    copy_field(p->session, sizeof(p->session), o, "x");
}

int mcp_xr_answer_route(struct session *s, json_t *msg, const struct principal *who,
                        struct mcp_xr_answer **out, int *status, char *why, size_t whylen)
{
    json_t *id = json_object_get(msg, "id");
    const char *text = json_string_value(id);
    if (!atomic_load(&active) || text == NULL ||
        strncmp(text, XR_ID_PREFIX, strlen(XR_ID_PREFIX)) != 0)
        return 0; /* an integer id (or one the gateway never sent): the usual path */
    char hash[SHARED_HASH_HEX];
    json_t *doc = mcp_unseal(MCP_SEAL_ROUTE, XR_ID_PREFIX, text, strlen(text));
    const char *r = json_string_value(json_object_get(doc, "r"));
    const char *h = json_string_value(json_object_get(doc, "h"));
    json_t *n = json_object_get(doc, "n");
    int rc = -1;
    if (r == NULL || h == NULL || !json_is_integer(n) || !session_id_hash(s, hash) ||
        strncmp(hash, h, 16) != 0 || strlen(h) != 16) {
        *status = 400;
        snprintf(why, whylen, "the answer's id was not issued by the gateway for this session");
        goto out;
    }
    if (strcmp(r, shared_replica()) == 0) { /* this replica sent it: the local id */
        json_object_set(msg, "id", n);
        rc = 0;
        goto out;
    }
    if (json_integer_value(json_object_get(doc, "x")) < wall_s()) {
        *status = 410;
        snprintf(why, whylen,
                 "the request this answers was relayed by another replica more than %d s ago: an "
                 "answer reaches another replica within that time only",
                 XR_ANSWER_TTL_S);
        goto out;
    }
    json_t *fwd = json_copy(msg);
    json_t *env =
        fwd ? json_pack("{s:s, s:o, s:O}", "h", hash, "p", principal_json(who), "m", fwd) : NULL;
    if (env != NULL)
        json_object_set(json_object_get(env, "m"), "id", n);
    json_decref(fwd);
    struct mcp_xr_answer *a = env ? calloc(1, sizeof(*a)) : NULL;
    if (a != NULL)
        a->payload = json_dumps(env, JSON_COMPACT);
    json_decref(env);
    if (a == NULL || a->payload == NULL) {
        free(a);
        *status = 500;
        snprintf(why, whylen, "out of memory");
        goto out;
    }
    a->len = strlen(a->payload);
    if (a->len > XR_MESSAGE_MAX) {
        mcp_xr_answer_free(a);
        *status = 413;
        snprintf(why, whylen,
                 "the answer belongs to another replica and is larger than the cross-replica "
                 "limit of 256 KiB");
        goto out;
    }
    snprintf(a->replica, sizeof(a->replica), "%s", r);
    *out = a;
    rc = 1;
out:
    json_decref(doc);
    return rc;
}

void mcp_xr_answer_free(struct mcp_xr_answer *a)
{
    if (a == NULL)
        return;
    free(a->payload);
    free(a);
}

struct answer_job {
    shared_publish_cb cb;
    void *arg;
};

static void answer_sent_cb(int err, long long receivers, void *arg)
{
    struct answer_job j = *(struct answer_job *)arg;
    free(arg);
    count("answer", err ? "unavailable" : receivers > 0 ? "sent" : "gone");
    j.cb(err, receivers, j.arg);
}

int mcp_xr_answer_send(struct mcp_xr_answer *a, shared_publish_cb cb, void *arg)
{
    struct answer_job *j = malloc(sizeof(*j));
    int err = ERR_NOMEM;
    if (j != NULL) {
        *j = (struct answer_job){cb, arg};
        err = shared_publish(SHARED_CH_REPLICA, a->replica, a->payload, a->len, answer_sent_cb, j);
        if (err)
            free(j);
    }
    if (err)
        count("answer", "unavailable");
    mcp_xr_answer_free(a);
    return err;
}

/* Subscriber thread (worker 0): a client's answer, POSTed to another replica, to a request this
   one relayed. It is dispatched as if it had been POSTed here, by the principal that sent it. */
static void answer_message(const char *payload, size_t len)
{
    json_t *env = json_loadb(payload, len, JSON_REJECT_DUPLICATES, NULL);
    json_t *msg = json_object_get(env, "m");
    struct session *s = json_is_object(msg)
                            ? session_find_by_hash(json_string_value(json_object_get(env, "h")))
                            : NULL;
    struct mcp_worker *w = gw.workers != NULL ? gw.workers[0] : NULL;
    if (s == NULL || w == NULL || session_closed(s)) {
        log_info("xreplica", "a client's answer relayed by another replica found no session "
                             "here (it ended); dropped");
        goto out;
    }
    struct principal who;
    principal_from_json(json_object_get(env, "p"), &who);
    count("answer", "received");
    struct mcp_reply r;
    mcp_handle_message(w, session_view(s), &who, s, msg,
                       json_object_get(msg, "error") ? JSONRPC_ERROR : JSONRPC_RESULT, &r);
    mcp_reply_release(&r);
out:
    session_unref(s);
    json_decref(env);
}

/* ---- 2026-07-28 tasks ---- */

/* A request sent to the replica that holds the task waits this long for its answer. */
#define XR_TASK_WAIT_MS 5000

void gw_task_id_route(char *id)
{
    if (atomic_load(&active))
        memcpy(id, shared_replica(), SHARED_REPLICA_LEN);
}

bool gw_task_elsewhere(const char *id, size_t len)
{
    return atomic_load(&active) && len == MCP_TASK_ID_LEN &&
           memcmp(id, shared_replica(), SHARED_REPLICA_LEN) != 0;
}

/* A tasks request sent to another replica, waiting for its answer. Answered once, by whichever
   comes first: the answer (subscriber thread), the refusal of the send, or the timer (the
   worker's thread, which owns the memory and frees it when the timer closes; at shutdown
   gw_task_waits_free frees what the closed loops left). */
struct task_wait {
    uint64_t seq;
    struct stream *st;
    json_t *id;
    char task[MCP_TASK_ID_LEN + 1];
    bool pending; /* not answered yet (under waits.lock) */
    uv_timer_t timer;
    struct task_wait *prev, *next; /* in waits.head until freed */
};

static struct {
    pthread_mutex_t lock;
    struct task_wait *head;
    uint64_t seq;
} waits = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* Take the pending wait `seq`: the caller answers it. NULL when it was answered. */
static struct task_wait *wait_take(uint64_t seq)
{
    pthread_mutex_lock(&waits.lock);
    struct task_wait *tw = waits.head;
    while (tw != NULL && !(tw->pending && tw->seq == seq))
        tw = tw->next;
    if (tw != NULL)
        tw->pending = false;
    pthread_mutex_unlock(&waits.lock);
    return tw;
}

static void wait_free(struct task_wait *tw)
{
    pthread_mutex_lock(&waits.lock);
    if (tw->prev)
        tw->prev->next = tw->next;
    else
        waits.head = tw->next;
    if (tw->next)
        tw->next->prev = tw->prev;
    pthread_mutex_unlock(&waits.lock);
    stream_unref(tw->st);
    json_decref(tw->id);
    free(tw);
}

void gw_task_waits_free(void)
{
    while (waits.head != NULL)
        wait_free(waits.head);
}

static void wait_answer(struct task_wait *tw, json_t *msg) /* steals msg */
{
    stream_push(tw->st, msg, true);
    json_decref(msg);
}

static void wait_refuse(struct task_wait *tw, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void wait_refuse(struct task_wait *tw, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    wait_answer(tw,
                jsonrpc_error_newv(tw->id, code, json_pack("{s:s}", "taskId", tw->task), fmt, ap));
    va_end(ap);
}

static void wait_closed_cb(uv_handle_t *h)
{
    wait_free(h->data);
}

static void wait_timer_cb(uv_timer_t *timer)
{
    struct task_wait *tw = timer->data;
    if (wait_take(tw->seq) != NULL) {
        count("task", "unanswered");
        wait_refuse(tw, JSONRPC_INTERNAL_ERROR,
                    "task %.32s is held by another replica, which did not answer within %d ms "
                    "(through Redis); retry",
                    tw->task, XR_TASK_WAIT_MS);
    }
    uv_close((uv_handle_t *)timer, wait_closed_cb);
}

static void task_sent_cb(int err, long long receivers, void *arg)
{
    uint64_t seq = (uint64_t)(uintptr_t)arg;
    if (err == 0 && receivers > 0)
        return; /* the answer, or the timer, comes */
    struct task_wait *tw = wait_take(seq);
    if (tw == NULL)
        return;
    count("task", err ? "unavailable" : "gone");
    if (err == ERR_LIMIT)
        wait_refuse(tw, JSONRPC_INVALID_REQUEST,
                    "task %.32s is held by another replica, and this request is larger than the "
                    "cross-replica limit of 256 KiB",
                    tw->task);
    else if (err)
        wait_refuse(tw, JSONRPC_INTERNAL_ERROR,
                    "task %.32s is held by another replica, which cannot be reached now (%s); "
                    "retry shortly",
                    tw->task, err == ERR_CLOSED ? "shutting down" : "Redis is not reachable");
    else /* nobody listens on that replica's channel: it stopped, and its tasks with it */
        wait_refuse(tw, JSONRPC_INVALID_PARAMS,
                    "Invalid params: no task %.32s (the replica that ran it is gone)", tw->task);
}

void gw_task_forward(struct mcp_worker *w, struct session *s, const char *owner, json_t *msg,
                     struct mcp_reply *r)
{
    json_t *id = json_object_get(msg, "id");
    const char *task = json_string_value(json_object_get(json_object_get(msg, "params"), "taskId"));
    char replica[SHARED_REPLICA_LEN + 1];
    snprintf(replica, sizeof(replica), "%.*s", SHARED_REPLICA_LEN, task);
    struct task_wait *tw = w != NULL ? calloc(1, sizeof(*tw)) : NULL;
    struct stream *st = tw ? stream_new(s) : NULL;
    json_t *env = NULL;
    char *payload = NULL;
    if (st == NULL)
        goto nomem;
    pthread_mutex_lock(&waits.lock);
    tw->seq = ++waits.seq;
    pthread_mutex_unlock(&waits.lock);
    env = json_pack("{s:s, s:I, s:s, s:s, s:O}", "t", "task", "q", (json_int_t)tw->seq, "r",
                    shared_replica(), "o", owner, "m", msg);
    payload = env ? json_dumps(env, JSON_COMPACT) : NULL;
    json_decref(env);
    if (payload == NULL)
        goto nomem;
    tw->st = stream_ref(st);
    tw->id = json_incref(id);
    snprintf(tw->task, sizeof(tw->task), "%s", task);
    uv_timer_init(w->loop, &tw->timer);
    tw->timer.data = tw;
    pthread_mutex_lock(&waits.lock);
    tw->pending = true;
    tw->next = waits.head;
    if (waits.head)
        waits.head->prev = tw;
    waits.head = tw;
    pthread_mutex_unlock(&waits.lock);
    uv_timer_start(&tw->timer, wait_timer_cb, XR_TASK_WAIT_MS, 0);
    size_t len = strlen(payload);
    int err = len > XR_MESSAGE_MAX ? ERR_LIMIT
                                   : shared_publish(SHARED_CH_REPLICA, replica, payload, len,
                                                    task_sent_cb, (void *)(uintptr_t)tw->seq);
    free(payload);
    if (err)
        task_sent_cb(err, 0, (void *)(uintptr_t)tw->seq);
    else
        count("task", "sent");
    r->status = 200;
    r->stream = st;
    return;
nomem:
    if (st != NULL)
        stream_unref(st);
    free(tw);
    gw_reply_error(r, id, JSONRPC_INTERNAL_ERROR, "out of memory");
}

static void task_answer_sent_cb(int err, long long receivers, void *arg)
{
    (void)arg;
    if (err || receivers == 0) /* that replica times its request out */
        log_warn("xreplica", "the answer to another replica's tasks request reached no one (%s)",
                 err ? err_str(err) : "the replica is gone");
}

/* Subscriber thread: a tasks request from another replica for a task of this one; answered
   back on that replica's channel. */
static void task_request(json_t *env)
{
    const char *from = json_string_value(json_object_get(env, "r"));
    const char *owner = json_string_value(json_object_get(env, "o"));
    json_t *q = json_object_get(env, "q");
    json_t *msg = json_object_get(env, "m");
    if (from == NULL || owner == NULL || !json_is_integer(q) || !json_is_object(msg) ||
        strlen(from) != SHARED_REPLICA_LEN)
        return;
    struct mcp_reply r;
    gw_task_remote(owner, msg, &r);
    json_t *back =
        r.body ? json_pack("{s:s, s:O, s:O}", "t", "task-answer", "q", q, "m", r.body) : NULL;
    mcp_reply_release(&r);
    char *payload = back ? json_dumps(back, JSON_COMPACT) : NULL;
    json_decref(back);
    count("task", "received");
    if (payload != NULL && strlen(payload) <= XR_MESSAGE_MAX)
        shared_publish(SHARED_CH_REPLICA, from, payload, strlen(payload), task_answer_sent_cb,
                       NULL);
    else
        log_warn("xreplica", "the answer to another replica's tasks request was not sent (%s)",
                 payload ? "larger than the cross-replica limit of 256 KiB" : "out of memory");
    free(payload);
}

/* Subscriber thread: the answer to a tasks request this replica sent. */
static void task_answer(json_t *env)
{
    json_t *msg = json_object_get(env, "m");
    struct task_wait *tw = json_is_object(msg)
                               ? wait_take((uint64_t)json_integer_value(json_object_get(env, "q")))
                               : NULL;
    if (tw == NULL)
        return; /* answered already (the timer) */
    json_object_set(msg, "id", tw->id);
    wait_answer(tw, json_incref(msg));
}

static void replica_message(const char *payload, size_t len)
{
    json_t *env = json_loadb(payload, len, JSON_REJECT_DUPLICATES, NULL);
    const char *t = json_string_value(json_object_get(env, "t"));
    if (t != NULL && strcmp(t, "task") == 0)
        task_request(env);
    else if (t != NULL && strcmp(t, "task-answer") == 0)
        task_answer(env);
    else
        answer_message(payload, len);
    json_decref(env);
}

static void message_cb(enum shared_channel ch, const char *name, const char *payload, size_t len)
{
    if (!atomic_load(&active))
        return;
    if (ch == SHARED_CH_STREAM)
        stream_message(name, payload, len);
    else
        replica_message(payload, len);
}

void mcp_xr_start(void)
{
    if (!shared_enabled() || !mcp_seal_shared())
        return;
    atomic_store(&active, true);
    shared_set_message_cb(message_cb);
    session_set_remote(&remote);
    log_info("xreplica", "server-to-client traffic crosses replicas through Redis (replica %s)",
             shared_replica());
}

void mcp_xr_stop(void)
{
    if (!atomic_exchange(&active, false))
        return;
    session_set_remote(NULL);
    shared_set_message_cb(NULL);
}
