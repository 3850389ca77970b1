/*
 * Server-to-client traffic across replicas, over Redis (docs/architecture.md, "Redis"). Behind a
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
 */
#include "core/err.h"
#include "core/log.h"
#include "core/metrics.h"
#include "mcp/gateway-int.h"
#include "mcp/gateway.h"
#include "shared/redis.h"

#include <inttypes.h>
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

/* gatehouse_xreplica_messages_total{kind, outcome}: kind "stream" (a message for a GET stream)
   or "answer" (a client's answer to a server request); outcome "sent" (another replica received
   it), "kept" (a stream's message nobody else held the stream for, or Redis unreachable: kept
   here), "gone" (an answer whose replica is gone), "unavailable" (an answer Redis could not
   carry), "received" (from another replica, delivered here). */
static void count(const char *kind, const char *outcome)
{
    static const char *const names[] = {"kind", "outcome"};
    struct metric *m = metrics_counter(
        "gatehouse_xreplica_messages_total",
        "Server-to-client traffic across replicas over Redis: messages for GET streams and "
        "clients' answers, by what became of them",
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

static void message_cb(enum shared_channel ch, const char *name, const char *payload, size_t len)
{
    if (!atomic_load(&active))
        return;
    if (ch == SHARED_CH_STREAM)
        stream_message(name, payload, len);
    else
        answer_message(payload, len);
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
