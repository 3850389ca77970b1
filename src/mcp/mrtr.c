/*
 * The MRTR bridge (multi round-trip requests, 2026-07-28) in both directions; see "Protocol
 * eras" in docs/architecture.md. A legacy server's sampling/elicitation/roots request during a
 * 2026-07-28 client's call parks the call and answers the client with an InputRequiredResult
 * (the park table, the retry that resumes it, the expiry); a 2026-07-28 server's
 * InputRequiredResult is relayed to a modern client with its requestState sealed, or turned into
 * ordinary server-to-client requests for a legacy client, whose answers retry the call.
 * Home-thread code, except the park table (any thread, under its lock) and gw_mrtr_resume
 * (the retry's worker thread).
 */
#include "mcp/gateway.h"
#include "core/err.h"
#include "core/idmap.h"
#include "core/log.h"
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

/* --- MRTR bridging: a legacy server's requests during a 2026-07-28 client's call --- */

#define MRTR_TOKEN_BYTES 32  /* requestState: 256 random bits */
#define MRTR_TOKEN_LEN 43    /* their unpadded base64url */
#define MRTR_MAX_PARKED 1024 /* calls waiting for a client's retry, gateway-wide */
#define MRTR_MAX_INPUTS 16   /* server requests one call may have awaiting the client */
/* A server often asks for several inputs at once (one write each): the InputRequiredResult waits
   this long after the first for the others, so that one round carries them all. */
#define MRTR_GATHER_MS 20

struct input_request {
    char key[64];    /* the inputRequests key the client answers under */
    json_t *up_id;   /* the server's id for the request */
    json_t *request; /* {method, params} as the client sees it */
    const char *cap; /* the client capability it needs (gw_required_capability) */
    bool asked;      /* sent to the client in an InputRequiredResult */
};

/* Home thread: a call's server requests awaiting the client. */
struct mrtr {
    struct input_request reqs[MRTR_MAX_INPUTS];
    unsigned n;
    unsigned next_key;
    bool parked;    /* no client stream: waiting for the retry that carries `token` */
    bool gathering; /* a request arrived: the InputRequiredResult goes after MRTR_GATHER_MS */
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
    char owner[PRINCIPAL_KEY_MAX + 1]; /* the principal whose call it is: only theirs resumes it */
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
                       const char *target, const char *owner)
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
    snprintf(e->owner, sizeof(e->owner), "%s", owner ? owner : "");
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
   an entry for that same server, method, target and owner (principal_key) is taken; another one
   is left in place and *mismatch set. */
static struct park_entry *park_take(const char *token, size_t len, int server, const char *method,
                                    const char *target, const char *owner, bool *mismatch)
{
    struct park_entry *e = NULL;
    if (len != MRTR_TOKEN_LEN)
        return NULL;
    pthread_mutex_lock(&parked.lock);
    for (struct park_entry **pp = &parked.head; *pp != NULL; pp = &(*pp)->next) {
        if (sodium_memcmp((*pp)->token, token, MRTR_TOKEN_LEN) != 0)
            continue;
        if (method != NULL &&
            ((*pp)->server != server || strcmp((*pp)->method, method) != 0 ||
             strcmp((*pp)->target, target) != 0 || strcmp((*pp)->owner, owner) != 0)) {
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

void gw_mrtr_free(struct mrtr *m)
{
    if (m == NULL)
        return;
    if (m->parked) /* the call ends while parked: a late retry finds nothing */
        park_entry_free(park_take(m->token, MRTR_TOKEN_LEN, 0, NULL, NULL, NULL, NULL));
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
    struct park_entry *e = park_take(p->mrtr->token, MRTR_TOKEN_LEN, 0, NULL, NULL, NULL, NULL);
    if (e == NULL)
        return; /* a retry took it: its resume is on the way to this thread */
    park_entry_free(e);
    p->mrtr->parked = false;
    log_info("mrtr_expired",
             "server %s: a call waited for a 2026-07-28 client's input longer than "
             "limits.mrtr_ttl; cancelled",
             p->up->srv->name);
    gw_cancel_call(p->up, p, "the client did not retry with the requested input in time");
}

/* Home thread: end client call p with error `err` (stolen) and cancel it upstream; the server's
   requests in refusals (stolen, may be NULL: an array of {id, message}) are refused after the
   cancellation, so that the server cannot finish the call first. */
static void mrtr_abandon(struct upstream *up, struct pending *p, json_t *err, const char *reason,
                         json_t *refusals)
{
    gw_emit(p, err, true);
    json_decref(err);
    p->cancelling = true;
    /* Deferred: this runs inside the transport's delivery of the server's message. */
    if (gw_post_cancel(up, p->id, reason, refusals) != 0) {
        size_t i;
        json_t *r;
        json_array_foreach(refusals, i, r)
        {
            gw_answer_server(up, json_object_get(r, "id"), JSONRPC_METHOD_NOT_FOUND,
                             json_string_value(json_object_get(r, "message")));
        }
    }
    json_decref(refusals);
}

/* Home thread: sort the round (the requests not asked yet) by the capabilities the client
   declared (its _meta clientCapabilities). A request for an undeclared one is refused to the
   server, by the capability's name, when the round holds others the client can answer: the
   server may go on without it, and the client is asked the rest. A round of undeclared requests
   only ends the call with -32021 naming every capability missing (requiredCapabilities), and the
   call is cancelled upstream. Returns false when the call ended. */
static bool mrtr_sort_round(struct upstream *up, struct pending *p)
{
    struct mrtr *m = p->mrtr;
    unsigned declared = 0, undeclared = 0;
    for (unsigned i = 0; i < m->n; i++) {
        if (m->reqs[i].asked)
            continue;
        if (session_has_capability(p->session, m->reqs[i].cap))
            declared++;
        else
            undeclared++;
    }
    if (undeclared == 0)
        return true;
    char refusal[200];
    if (declared > 0) {
        unsigned kept = 0;
        for (unsigned i = 0; i < m->n; i++) {
            struct input_request q = m->reqs[i];
            if (!q.asked && !session_has_capability(p->session, q.cap)) {
                snprintf(refusal, sizeof(refusal),
                         "the client did not declare the \"%s\" capability (it is asked for the "
                         "other requests of this round)",
                         q.cap);
                gw_answer_server(up, q.up_id, JSONRPC_METHOD_NOT_FOUND, refusal);
                json_decref(q.up_id);
                json_decref(q.request);
                continue;
            }
            m->reqs[kept++] = q;
        }
        m->n = kept;
        return true;
    }
    json_t *required = json_object();
    json_t *refusals = json_array();
    char caps[100] = "", methods[200] = "";
    for (unsigned i = 0; i < m->n; i++) {
        struct input_request *q = &m->reqs[i];
        if (q->asked)
            continue;
        const char *method = json_string_value(json_object_get(q->request, "method"));
        if (json_object_get(required, q->cap) == NULL) {
            json_object_set_new(required, q->cap, json_object());
            size_t len = strlen(caps);
            snprintf(caps + len, sizeof(caps) - len, "%s%s", len ? ", " : "", q->cap);
            len = strlen(methods);
            snprintf(methods + len, sizeof(methods) - len, "%s%s", len ? ", " : "", method);
        }
        snprintf(refusal, sizeof(refusal), "the client did not declare the \"%s\" capability",
                 q->cap);
        json_array_append_new(refusals,
                              json_pack("{s:O, s:s}", "id", q->up_id, "message", refusal));
    }
    char msg[600];
    snprintf(msg, sizeof(msg),
             "Missing required client capability: %s (server \"%s\" sent %s during this call; "
             "declare it in _meta io.modelcontextprotocol/clientCapabilities)",
             caps, up->srv->name, methods);
    mrtr_abandon(up, p,
                 jsonrpc_error_new(p->client_id, MCP_ERR_MISSING_CLIENT_CAP, msg,
                                   json_pack("{s:o, s:s}", "requiredCapabilities", required,
                                             "server", up->srv->name)),
                 "the client lacks a capability the server needs", refusals);
    return false;
}

/* Home thread: answer the client's POST with an InputRequiredResult carrying the requests not
   asked yet, and park the call until the retry (or limits.mrtr_ttl). */
static void mrtr_park(struct upstream *up, struct pending *p)
{
    struct mrtr *m = p->mrtr;
    if (!mrtr_sort_round(up, p))
        return;
    char token[MRTR_TOKEN_LEN + 4];
    rand_token(token, sizeof(token), MRTR_TOKEN_BYTES);
    int err = park_insert(token, up->index, p->id, p->call_method, p->call_target,
                          session_owner(p->session));
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
                     "the gateway cannot hold the call", NULL);
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
    /* This answers the client's request: its call ends here; the retry is a call of its own. */
    gw_emit(p, res, true);
    json_decref(res);
    /* The POST is answered: its end is no longer a cancellation. */
    session_untrack_call(p->session, p->client_id, gw_call_cookie(up->index, p->id));
    stream_unref(p->stream);
    p->stream = NULL;
    m->parked = true;
    memcpy(m->token, token, sizeof(m->token));
    sodium_memzero(token, sizeof(token));
    arm_call_timer(p, mrtr_expired_cb, mrtr_ttl());
}

/* Home thread: the requests the server sent together go to the client in one
   InputRequiredResult. */
static void mrtr_gathered_cb(uv_timer_t *t)
{
    struct pending *p = t->data;
    p->mrtr->gathering = false;
    if (p->cancelling || p->mrtr->parked || p->stream == NULL) {
        arm_call_timer(p, gw_call_timeout_cb, p->up->srv->timeouts.total_ms);
        return;
    }
    mrtr_park(p->up, p);
}

/* Home thread: server request msg (sampling, elicitation, roots) during 2026-07-28 call p.
   `guessed`: the transport could not say which call the request belongs to (stdio), and p is
   only the most recent call. Roots are the client's, not an input of one call, and servers ask
   for them on their own schedule (server-everything asks 350 ms after it starts, whatever call
   is in flight then): a guessed roots/list the client cannot answer fails the request, not the
   call. Sampling and elicitation are asked for the call in flight, with the other requests of
   their round (MRTR_GATHER_MS); a request for a capability the client did not declare is judged
   with that round (mrtr_sort_round). */
void gw_mrtr_input_request(struct upstream *up, struct pending *p, json_t *msg, bool guessed)
{
    json_t *id = json_object_get(msg, "id");
    const char *method = jsonrpc_method(msg);
    const char *cap = gw_required_capability(method);
    char m[400];
    if (cap == NULL || p->cancelling) {
        snprintf(m, sizeof(m), "%s: %s", method,
                 cap ? "the client's call is being cancelled"
                     : "the client speaks 2026-07-28, which has no such request");
        gw_answer_server(up, id, JSONRPC_METHOD_NOT_FOUND, m);
        return;
    }
    if (!p->mrtr_ok) {
        snprintf(m, sizeof(m),
                 "the client speaks 2026-07-28: only its tools/call, prompts/get and "
                 "resources/read can carry a request for input, not this call");
        gw_answer_server(up, id, JSONRPC_METHOD_NOT_FOUND, m);
        return;
    }
    if (!session_has_capability(p->session, cap) && guessed && strcmp(cap, "roots") == 0) {
        snprintf(m, sizeof(m), "the client did not declare the \"%s\" capability", cap);
        gw_answer_server(up, id, JSONRPC_METHOD_NOT_FOUND, m);
        return;
    }
    /* Undeclared capabilities are judged with the round (mrtr_sort_round). */
    if (p->mrtr == NULL && (p->mrtr = calloc(1, sizeof(*p->mrtr))) == NULL) {
        gw_answer_server(up, id, JSONRPC_INTERNAL_ERROR, "the gateway is out of memory");
        return;
    }
    struct mrtr *mr = p->mrtr;
    if (mr->n >= MRTR_MAX_INPUTS) {
        snprintf(m, sizeof(m), "the call already has %u requests awaiting the client (the limit)",
                 mr->n);
        gw_answer_server(up, id, JSONRPC_GATEWAY_LIMIT, m);
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
    q->cap = cap;
    q->asked = false;
    /* While parked, a request waits for the retry, which is answered with it. Else the requests
       the server sends within MRTR_GATHER_MS go out together (the call's timer meanwhile: its
       total timeout is suspended while the call waits for the client anyway). */
    if (!mr->parked && !mr->gathering) {
        mr->gathering = true;
        arm_call_timer(p, mrtr_gathered_cb, MRTR_GATHER_MS);
    }
}

/* A retry on its way to the call's home thread. */
struct resume {
    struct upstream *up;
    struct call *call; /* the retry's (its request stages passed) */
    uint64_t call_id;
    struct session *session;
    struct stream *stream;
    json_t *client_id;
    json_t *client_token;
    json_t *responses;
};

static void resume_free(struct resume *rs)
{
    call_free(rs->call);
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
    struct upstream *up = gw_instance_with_call(rs->up, rs->call_id); /* per_user: the user's */
    struct pending *p = idmap_get(&up->pending, rs->call_id);
    if (p == NULL || p->cb != NULL || p->answered || p->mrtr == NULL || !p->mrtr->parked) {
        char m[300];
        snprintf(m, sizeof(m), "the call that waited for this input has ended (server \"%s\")",
                 up->srv->name);
        mcp_emit_error(rs->call, rs->stream, rs->client_id, JSONRPC_UPSTREAM_UNAVAILABLE,
                       up->srv->name, m);
        session_untrack_call(rs->session, rs->client_id, gw_call_cookie(up->index, rs->call_id));
        resume_free(rs);
        return;
    }
    struct mrtr *m = p->mrtr;
    m->parked = false;
    if (rs->call != NULL && rs->call->out.n == 0 && p->call != NULL) {
        rs->call->out = p->call->out; /* what the call is sent with again after a recovery */
        outbound_init(&p->call->out);
    }
    call_free(p->call); /* ended with the InputRequiredResult it answered */
    p->call = rs->call;
    rs->call = NULL;
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
    arm_call_timer(p, gw_call_timeout_cb, up->srv->timeouts.total_ms);
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

/* Worker thread: answer a retry with an error, in r, or on `given` (the client's stream after a
   suspended request stage); ends and frees c. */
static void retry_refuse(struct mcp_reply *r, struct stream *given, struct call *c, json_t *id,
                         int code, const char *msg)
{
    if (given != NULL) {
        mcp_emit_error(c, given, id, code, NULL, msg);
    } else {
        gw_reply_error(r, id, code, "%s", msg);
        pipeline_done(c, CALL_ERROR, code);
    }
    call_free(c);
}

/* Worker thread: a 2026-07-28 retry (params.requestState) of `method` on `target` at `server`,
   its request stages passed (call c, taken). */
void gw_mrtr_resume(struct session *s, int server, json_t *msg, const char *target,
                    struct mcp_reply *r, struct stream *given, struct call *c)
{
    json_t *id = json_object_get(msg, "id");
    json_t *params = json_object_get(msg, "params");
    json_t *state = json_object_get(params, "requestState");
    json_t *responses = json_object_get(params, "inputResponses");
    const char *method = jsonrpc_method(msg);
    struct upstream *up = gw.ups[server];
    r->server = up->srv->name;
    if (!json_is_string(state)) {
        retry_refuse(r, given, c, id, JSONRPC_INVALID_PARAMS,
                     "Invalid params: params.requestState must be the string the gateway issued");
        return;
    }
    if (responses != NULL && !json_is_object(responses)) {
        retry_refuse(r, given, c, id, JSONRPC_INVALID_PARAMS,
                     "Invalid params: params.inputResponses must be an object keyed like the "
                     "inputRequests it answers");
        return;
    }
    bool mismatch = false;
    struct park_entry *e = park_take(json_string_value(state), json_string_length(state), server,
                                     method, target, session_owner(s), &mismatch);
    if (e == NULL) {
        char m[300];
        if (mismatch)
            snprintf(m, sizeof(m),
                     "Invalid params: params.requestState was issued for another request "
                     "or another principal; retry the same %s with the same %s, as the "
                     "caller who made it",
                     method, method[0] == 'r' ? "uri" : "name");
        else
            snprintf(m, sizeof(m),
                     "Invalid params: params.requestState is unknown or expired (the gateway "
                     "holds a call waiting for input for limits.mrtr_ttl, and each state "
                     "serves one retry); send the request again without requestState");
        retry_refuse(r, given, c, id, JSONRPC_INVALID_PARAMS, m);
        return;
    }
    uint64_t call_id = e->call_id;
    park_entry_free(e);
    struct resume *rs = calloc(1, sizeof(*rs));
    struct stream *st = given ? stream_ref(given) : stream_new(s);
    if (rs == NULL || st == NULL) {
        free(rs);
        stream_unref(st);
        gw_post_cancel(up, call_id, "the gateway is out of memory", NULL);
        retry_refuse(r, given, c, id, JSONRPC_INTERNAL_ERROR, "out of memory");
        return;
    }
    json_t *tok = json_object_get(json_object_get(params, "_meta"), "progressToken");
    rs->up = up;
    rs->call = c;
    rs->call_id = call_id;
    rs->session = session_ref(s);
    rs->stream = stream_ref(st);
    rs->client_id = json_incref(id);
    rs->client_token = json_is_string(tok) || json_is_integer(tok) ? json_incref(tok) : NULL;
    rs->responses = responses ? json_deep_copy(responses) : json_object();
    session_track_call(s, id, gw_call_cookie(server, call_id));
    if (given == NULL) {
        r->stream = stream_ref(st);
        r->status = 200;
    }
    if (mailbox_post(up->home->mb, mrtr_resume_cb, rs) != 0) {
        session_untrack_call(s, id, gw_call_cookie(server, call_id));
        mcp_emit_error(rs->call, st, id, JSONRPC_UPSTREAM_UNAVAILABLE, NULL,
                       "the gateway is shutting down");
        resume_free(rs);
    }
    stream_unref(st);
}

/* --- MRTR from a 2026-07-28 server (home thread) --- */

#define MRTR_MAX_ROUNDS 16 /* InputRequiredResults one call may meet */

/* End client call p (answered by the server, or waiting for the legacy client's input) with an
   error naming the server; the caller frees p (gw_pending_maybe_free). */
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
    gw_emit_error(p, code, "%s", msg);
    gw_call_finished(up);
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
    session_untrack_call(p->session, p->client_id, gw_call_cookie(up->index, p->id));
    p->id = gw_draw_id();
    if (p->client_token != NULL) /* progress of the retry reaches the same client token */
        json_object_set_new(json_object_get(params, "_meta"), "progressToken",
                            json_integer((json_int_t)p->id));
    session_track_call(p->session, p->client_id, gw_call_cookie(up->index, p->id));
    int err = gw_send_pending(up, p, msg);
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
        const char *cap = method ? gw_required_capability(method) : NULL;
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
        int err = tag ? session_track_request(p->session, down_id, up_server(up), tag) : ERR_NOMEM;
        json_decref(tag);
        if (err) {
            bridge_fail(up, p, JSONRPC_INTERNAL_ERROR, "the client session is closed");
            return;
        }
        json_t *params = json_object_get(q, "params");
        json_t *jid = gw_request_id(p->session, down_id);
        json_t *req =
            jsonrpc_request_new(jid, json_string_value(json_object_get(q, "method")),
                                json_is_object(params) ? json_deep_copy(params) : json_object());
        json_decref(jid);
        gw_emit(p, req, false);
        json_decref(req);
        p->waiting++;
    }
    if (p->waiting == 0)
        bridge_retry(up, p); /* only a requestState: the server wants the call again at once */
}

/* A legacy client's answer msg to a bridged input request (its id is the tag of bridge_ask). */
void gw_bridge_answer(struct upstream *up, json_t *msg)
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
        gw_pending_maybe_free(p);
        return;
    }
    json_object_set(p->answers, key, result);
    if (--p->waiting == 0) {
        bridge_retry(up, p);
        gw_pending_maybe_free(p); /* when the retry could not be sent */
    }
}

/* Home thread: a 2026-07-28 server answered client call p with msg. When it is an
   InputRequiredResult, a modern client gets it with the server's requestState sealed to this
   call, and a legacy client is asked the server's questions (bridge_ask). Returns false when msg
   is any other answer, for the caller to deliver. */
bool gw_input_required(struct upstream *up, struct pending *p, json_t *msg)
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
        gw_answer_client(p, copy);
        json_decref(copy);
        gw_call_finished(up);
        return true;
    }
    if (idmap_put(&up->pending, p->id, p) != 0) {
        bridge_fail(up, p, JSONRPC_INTERNAL_ERROR, "out of memory");
        return true;
    }
    bridge_ask(up, p, result);
    return true;
}
