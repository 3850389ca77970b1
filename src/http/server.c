/*
 * HTTP server on h2o (libuv flavour); see server.h.
 *
 * A POST carrying a request either gets a JSON answer at once (answered by the gateway) or an
 * answer stream (forwarded to a server). A writer attached to the stream sends what arrives: as
 * a plain JSON body when the first thing to arrive is the final answer, otherwise as SSE. A GET
 * attaches a writer to the session's standalone stream, or resumes an earlier stream from
 * Last-Event-ID. h2o allows one h2o_send in flight per response, so a writer pulls more only from
 * its proceed callback.
 */
#include "http/server.h"
#include "core/buf.h"
#include "core/http_reason.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/rand.h"
#include "mcp/jsonrpc.h"
#include "mcp/pipeline.h"
#include "mcp/session.h"
#include "oauth/oauth.h"
#include "vault/vault.h"
#include "shared/redis.h"
#include "store/store.h"
#include "upstream/upstream.h"

#define H2O_USE_EPOLL 0
#include <h2o.h>
#include <h2o/http1.h>

#include "http/framing.h" /* after h2o.h: its h2o glue */
#include "http/h2.h"
#include "http/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <link.h>
#include <malloc.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define SSE_CHUNK_MAX (64u << 20) /* what one pull may gather for one send */
/* A forwarded call's SSE response starts with its first event, priming event and all, in one
   write; a call that has produced nothing after this long gets its priming event alone, so that a
   client whose connection drops early still has an id to resume from. */
#define PRIMING_DELAY_MS 100

struct server;

struct listener {
    uv_tcp_t handle;
    int fd;
    struct worker *w;
    bool open;
};

struct worker {
    struct mcp_worker mcp; /* first: the gateway sees this */
    struct server *srv;
    pthread_t thread;
    uv_loop_t loop;
    h2o_context_t ctx;
    h2o_accept_ctx_t *accept; /* one per configured listener */
    struct listener *listeners;
    size_t nlisteners;
    uv_timer_t keepalive;
    uv_timer_t priming;
    h2o_linklist_t writers; /* SSE writers, for keep-alive comments and drain */
    h2o_linklist_t waiting; /* answer writers not started yet, for the priming timer */
    atomic_uint inflight;   /* MCP requests not yet finished */
    unsigned open_conns;    /* accepted connections not yet closed (worker thread only) */
    uv_timer_t shutdown_poll;
    uint64_t shutdown_deadline;
    bool mailbox_closed;
    struct config *cfg; /* this worker's reference to the configuration in force */
    uint64_t cfg_gen;
    uint64_t next_req;
    bool draining;
    struct oauth_ctx *oauth;      /* when auth is enabled */
    struct h2_server *h2;         /* HTTP/2 (nghttp2) when http2 is on, else NULL */
    struct shared_worker *shared; /* with Redis */
    struct store_caller *store;   /* the request path's store calls (store_wait) */
};

struct server {
    struct config *cfg; /* under cfg_lock: swapped by reload */
    pthread_mutex_t cfg_lock;
    _Atomic uint64_t cfg_gen; /* bumped by a reload; workers refresh their reference then */
    h2o_globalconf_t globalconf;
    /* The configuration the listeners were made from: a reload changes them on restart only,
       so a certificate reload reads these. */
    struct config *listen_cfg;
    SSL_CTX **ssl; /* per listener, NULL for plain */
    int **fds;     /* fds[listener][worker] */
    int *locks;    /* locks[listener]: claim_address's lock, or -1 */
    size_t nlocks;
    uint16_t *ports;
    struct worker *workers;
    struct mcp_worker **mcp_workers;
    unsigned nworkers;
    bool started;
    bool auth;                                 /* auth.enabled at start */
    unsigned char master[AUTH_MASTER_KEY_LEN]; /* wiped in server_free */
    bool shared;                               /* Redis (shared_init) */
    struct store_pool *store_pool;             /* PostgreSQL: the request path's store calls */
    const char *store_name;                    /* "postgres" or "sqlite" */
    char issuer[256];                          /* the effective issuer */
};

static struct {
    struct metric *http_requests, *mcp_requests, *mcp_duration, *sessions, *upstream_up,
        *upstream_restarts;
} M;

static void metrics_init(void)
{
    static const char *const http_labels[] = {"endpoint", "code"};
    static const char *const mcp_labels[] = {"server", "method", "outcome"};
    static const char *const dur_labels[] = {"server", "method"};
    static const double buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                     0.25,   0.5,   1,      2.5,   5,    10,    30};
    if (M.http_requests)
        return;
    M.http_requests = metrics_counter("gatehouse_http_requests_total",
                                      "HTTP requests by endpoint and status code", 2, http_labels);
    M.mcp_requests = metrics_counter("gatehouse_mcp_requests_total",
                                     "MCP requests by server, method and outcome", 3, mcp_labels);
    M.mcp_duration =
        metrics_histogram("gatehouse_mcp_request_duration_seconds",
                          "Time from the request to the end of its answer, by server and method", 2,
                          dur_labels, buckets, (int)(sizeof(buckets) / sizeof(buckets[0])));
    M.sessions = metrics_gauge("gatehouse_sessions", "Open MCP sessions", 0, NULL);
    static const char *const server_label[] = {"server"};
    M.upstream_up = metrics_gauge("gatehouse_upstream_up",
                                  "1 when the server is initialised and serving", 1, server_label);
    M.upstream_restarts = metrics_gauge(
        "gatehouse_upstream_restarts", "Restarts of the server's process since the gateway started",
        1, server_label);
}

/* --- small helpers --- */

static h2o_iovec_t header_value(h2o_req_t *req, const char *name, size_t len)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, name, len, -1);
    return i < 0 ? h2o_iovec_init(NULL, 0) : req->headers.entries[i].value;
}

/* The configuration in force, as this worker holds it: no lock unless a reload happened. */
static const struct config *worker_config(struct worker *w)
{
    uint64_t gen = atomic_load(&w->srv->cfg_gen);
    if (w->cfg == NULL || w->cfg_gen != gen) {
        pthread_mutex_lock(&w->srv->cfg_lock);
        struct config *c = config_ref(w->srv->cfg);
        pthread_mutex_unlock(&w->srv->cfg_lock);
        if (w->cfg)
            config_unref(w->cfg);
        w->cfg = c;
        w->cfg_gen = gen;
    }
    return w->cfg;
}

static void add_header(h2o_req_t *req, const h2o_token_t *token, const char *value)
{
    h2o_add_header(&req->pool, &req->res.headers, token, NULL, value, strlen(value));
}

static void add_header_str(h2o_req_t *req, const char *name, const char *value)
{
    h2o_add_header_by_str(&req->pool, &req->res.headers, name, strlen(name), 0, NULL, value,
                          strlen(value));
}

static void upstream_metrics_cb(const char *name, bool ready, unsigned restarts, void *arg)
{
    const char *labels[] = {name};
    metrics_set(M.upstream_up, labels, ready ? 1 : 0);
    metrics_set(M.upstream_restarts, labels, restarts);
}

static void count_http(const char *endpoint, int status)
{
    char code[8];
    snprintf(code, sizeof(code), "%d", status);
    const char *labels[] = {endpoint, code};
    metrics_inc(M.http_requests, labels, 1);
}

/* Send a complete body (copied into the request's pool). */
static void send_body(h2o_req_t *req, int status, const char *content_type, const char *body,
                      size_t len)
{
    req->res.status = status;
    req->res.reason = http_reason(status);
    if (content_type)
        add_header(req, H2O_TOKEN_CONTENT_TYPE, content_type);
    add_header(req, H2O_TOKEN_CACHE_CONTROL, "no-store");
    /* h2o_send_inline leaves the length unset on purpose (it also serves 304s); without it an
       empty 202 goes out close-delimited and the client loses its keep-alive connection. */
    req->res.content_length = len;
    h2o_send_inline(req, body, len);
}

static void send_json(h2o_req_t *req, int status, json_t *body)
{
    char *text = json_dumps(body, JSON_COMPACT);
    if (text == NULL) {
        send_body(req, 500, "text/plain", "out of memory\n", 14);
        return;
    }
    send_body(req, status, "application/json", text, strlen(text));
    free(text);
}

/* A JSON-RPC error (id null) as the body of an HTTP refusal. */
static void send_refusal(h2o_req_t *req, int status, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* in[0..n) as printable ASCII into out (NUL-terminated): other bytes become \xNN, a '\\' is
   doubled, and "..." ends a text cut short by out_size. Returns out. */
static char *printable(char *out, size_t out_size, const char *in, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)in[i];
        char tmp[5];
        int k = c == '\\'               ? snprintf(tmp, sizeof(tmp), "\\\\")
                : c >= 0x20 && c < 0x7f ? snprintf(tmp, sizeof(tmp), "%c", c)
                                        : snprintf(tmp, sizeof(tmp), "\\x%02x", c);
        if (o + (size_t)k + 4 > out_size) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        memcpy(out + o, tmp, (size_t)k);
        o += (size_t)k;
    }
    out[o] = '\0';
    return out;
}

static void send_refusal(h2o_req_t *req, int status, int code, const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_t *e = jsonrpc_error_new(NULL, code, msg, NULL);
    if (e == NULL) { /* the message quotes bytes of the request that are not UTF-8 */
        char safe[4 * sizeof(msg) + 8];
        e = jsonrpc_error_new(NULL, code, printable(safe, sizeof(safe), msg, strlen(msg)), NULL);
    }
    send_json(req, status, e);
    json_decref(e);
}

/* --- writers: streaming an answer or a GET stream to one HTTP response --- */

struct writer {
    struct stream_writer sw; /* first */
    h2o_generator_t gen;
    h2o_req_t *req;
    struct worker *w;
    struct stream *stream;
    h2o_linklist_t link; /* in w->writers while streaming SSE, in w->waiting before */
    uint64_t attached_ns;
    bool force_start; /* the priming delay passed: start even with nothing to send */
    struct buf out;   /* bytes handed to h2o_send, valid until proceed */
    uint64_t cursor;
    uint64_t started_ns;
    bool json_ok; /* a single final answer may go out as plain JSON (not used for /mcp answers) */
    int status;   /* the HTTP status sent, for the access log */
    bool started; /* SSE response headers sent */
    bool sending; /* an h2o_send is in flight */
    bool done;    /* final sent */
    bool standalone;           /* a GET stream */
    bool final_sent;           /* the answer's last event went out (or the stream ended) */
    struct session *transient; /* a 2026-07-28 request's own session: closed with the response */
    json_t *client_id;         /* and its request id, to cancel it when the client hangs up */
    const char *server;
    char method[48];
    char outcome[16];
    char target[128];
    char path[80];
    bool http2; /* the request came over HTTP/2 */
};

static void log_line(struct worker *w, bool http2, const char *http_method, const char *path,
                     int status, const char *mcp_method, const char *server, const char *target,
                     const char *outcome, uint64_t start_ns);

static void writer_pump(struct writer *wr);

static void writer_wake_cb(struct stream_writer *sw)
{
    writer_pump((struct writer *)sw);
}

static void writer_proceed_cb(h2o_generator_t *gen, h2o_req_t *req)
{
    struct writer *wr = H2O_STRUCT_FROM_MEMBER(struct writer, gen, gen);
    wr->sending = false;
    buf_reset(&wr->out);
    writer_pump(wr);
}

static void writer_stop_cb(h2o_generator_t *gen, h2o_req_t *req)
{
    /* The client went away. The stream lives on for resumption; this writer is disposed with
       the request's pool (writer_dispose). */
    struct writer *wr = H2O_STRUCT_FROM_MEMBER(struct writer, gen, gen);
    wr->done = true;
    stream_detach(wr->stream, &wr->sw);
}

static void writer_dispose(void *p)
{
    struct writer *wr = p;
    stream_detach(wr->stream, &wr->sw);
    if (h2o_linklist_is_linked(&wr->link))
        h2o_linklist_unlink(&wr->link);
    if (!wr->standalone) {
        double secs = (double)(clock_now_ns() - wr->started_ns) / 1e9;
        const char *server = wr->server ? wr->server : "";
        const char *method = mcp_era_method_label(wr->method);
        const char *l3[] = {server, method, wr->outcome[0] ? wr->outcome : "disconnected"};
        metrics_inc(M.mcp_requests, l3, 1);
        const char *l2[] = {server, method};
        metrics_observe(M.mcp_duration, l2, secs);
        log_line(wr->w, wr->http2, "POST", wr->path, wr->status, wr->method, wr->server, wr->target,
                 l3[2], wr->started_ns);
        atomic_fetch_sub(&wr->w->inflight, 1);
    }
    if (wr->transient != NULL) {
        /* 2026-07-28: closing the response stream is cancellation (of a call; of a listen
           stream, the end of the subscription: session_close unlists the listener). */
        if (!wr->final_sent && wr->client_id != NULL)
            mcp_cancel_request(wr->transient, wr->client_id);
        session_close(wr->transient);
        session_unref(wr->transient);
        json_decref(wr->client_id);
    }
    stream_unref(wr->stream);
    buf_release(&wr->out);
}

static void note_outcome(struct writer *wr, json_t *final)
{
    json_t *res = json_object_get(final, "result");
    if (json_object_get(final, "error"))
        snprintf(wr->outcome, sizeof(wr->outcome), "error");
    else if (json_is_true(json_object_get(res, "isError")))
        snprintf(wr->outcome, sizeof(wr->outcome), "tool_error");
    else
        snprintf(wr->outcome, sizeof(wr->outcome), "ok");
}

/* msg is a JSON-RPC error -32021 (a 2026-07-28 request needs a client capability it did not
   declare). */
static bool missing_capability(json_t *msg)
{
    json_t *code = json_object_get(json_object_get(msg, "error"), "code");
    return json_is_integer(code) && json_integer_value(code) == MCP_ERR_MISSING_CLIENT_CAP;
}

static void writer_pump(struct writer *wr)
{
    if (wr->sending || wr->done)
        return;
    bool finished = false;
    json_t *single = NULL;
    /* A 2026-07-28 answer is looked at whole when it is the stream's only event: a missing
       client capability then goes out as 400 (below). */
    int err = stream_pull(wr->stream, &wr->cursor, &wr->out, &finished,
                          (wr->json_ok || wr->transient != NULL) && !wr->started, &single);
    if (err == ERR_LIMIT && !wr->started) {
        wr->done = true;
        send_refusal(
            wr->req, 409, JSONRPC_INVALID_REQUEST,
            "the events after Last-Event-ID are no longer buffered (limits.replay_events); start over");
        return;
    }
    if (single != NULL && !wr->json_ok && !missing_capability(single)) {
        /* Not one to send as JSON: the SSE event stream_pull would have written. */
        char *text = json_dumps(single, JSON_COMPACT);
        json_decref(single);
        single = NULL;
        if (text == NULL || buf_printf(&wr->out, "id: %llu-1\ndata: %s\n\n",
                                       (unsigned long long)stream_number(wr->stream), text) != 0)
            err = ERR_PROTOCOL;
        free(text);
    }
    if (single != NULL) {
        note_outcome(wr, single);
        wr->done = true;
        wr->final_sent = true;
        /* 2026-07-28 over HTTP: MissingRequiredClientCapabilityError is 400 Bad Request. It can
           be only while the response has not started, i.e. when the server asked for the
           capability before the priming delay passed; later it goes in-band on the 200. */
        wr->status = wr->json_ok ? 200 : 400;
        send_json(wr->req, wr->status, single);
        json_decref(single);
        return;
    }
    if (err != 0)
        finished = true; /* cannot continue this stream (events dropped, or too large); end it */
    if (!wr->started) {
        if (wr->out.len == 0 && !finished && !wr->force_start) {
            /* Nothing yet: wait for the first event (or the priming timer). */
            if (!h2o_linklist_is_linked(&wr->link))
                h2o_linklist_insert(&wr->w->waiting, &wr->link);
            return;
        }
        if (h2o_linklist_is_linked(&wr->link))
            h2o_linklist_unlink(&wr->link);
        wr->started = true;
        wr->req->res.status = 200;
        wr->req->res.reason = "OK";
        add_header(wr->req, H2O_TOKEN_CONTENT_TYPE, "text/event-stream");
        add_header(wr->req, H2O_TOKEN_CACHE_CONTROL, "no-cache, no-store");
        add_header_str(wr->req, "x-accel-buffering", "no");
        h2o_start_response(wr->req, &wr->gen);
        /* Priming event: an id the client can resume from, and how soon to reconnect. */
        struct buf prime;
        buf_init(&prime, SSE_CHUNK_MAX + 256);
        if (buf_printf(&prime, "id: %llu-0\nretry: 1000\ndata: \n\n",
                       (unsigned long long)stream_number(wr->stream)) != 0 ||
            buf_append(&prime, wr->out.data ? wr->out.data : "", wr->out.len) != 0) {
            buf_release(&prime);
            wr->done = true;
            h2o_send(wr->req, NULL, 0, H2O_SEND_STATE_ERROR);
            return;
        }
        buf_release(&wr->out);
        wr->out = prime;
        h2o_linklist_insert(&wr->w->writers, &wr->link);
    }
    if (wr->out.len == 0 && !finished)
        return;
    if (finished) {
        wr->done = true;
        wr->final_sent = true;
        if (!wr->outcome[0])
            snprintf(wr->outcome, sizeof(wr->outcome), "ok");
        if (h2o_linklist_is_linked(&wr->link))
            h2o_linklist_unlink(&wr->link);
    }
    h2o_iovec_t v = h2o_iovec_init(wr->out.data ? wr->out.data : "", wr->out.len);
    wr->sending = true;
    h2o_send(wr->req, &v, 1, finished ? H2O_SEND_STATE_FINAL : H2O_SEND_STATE_IN_PROGRESS);
}

static struct writer *writer_new(h2o_req_t *req, struct worker *w, struct stream *st,
                                 bool standalone)
{
    struct writer *wr = h2o_mem_alloc_shared(&req->pool, sizeof(*wr), writer_dispose);
    memset(wr, 0, sizeof(*wr));
    wr->sw.mb = w->mcp.mb;
    wr->sw.wake_cb = writer_wake_cb;
    wr->gen.proceed = writer_proceed_cb;
    wr->gen.stop = writer_stop_cb;
    wr->req = req;
    wr->w = w;
    wr->stream = st; /* takes the reference */
    wr->standalone = standalone;
    wr->status = 200;
    wr->started_ns = clock_now_ns();
    wr->attached_ns = wr->started_ns;
    buf_init(&wr->out, SSE_CHUNK_MAX);
    if (!standalone)
        atomic_fetch_add(&w->inflight, 1);
    return wr;
}

static void priming_cb(uv_timer_t *t)
{
    struct worker *w = t->data;
    uint64_t now = clock_now_ns();
    h2o_linklist_t *l = w->waiting.next;
    while (l != &w->waiting) {
        struct writer *wr = H2O_STRUCT_FROM_MEMBER(struct writer, link, l);
        l = l->next;
        if (now - wr->attached_ns >= (uint64_t)PRIMING_DELAY_MS * 1000000u) {
            wr->force_start = true;
            writer_pump(wr); /* unlinks it from waiting */
        }
    }
}

static void keepalive_cb(uv_timer_t *t)
{
    struct worker *w = t->data;
    for (h2o_linklist_t *l = w->writers.next; l != &w->writers; l = l->next) {
        struct writer *wr = H2O_STRUCT_FROM_MEMBER(struct writer, link, l);
        if (wr->sending || wr->done || !wr->started)
            continue;
        bool superseded = !stream_has_writer(wr->stream, &wr->sw);
        buf_append_str(&wr->out,
                       superseded ? ": superseded by a newer connection\n\n" : ": keep-alive\n\n");
        h2o_iovec_t v = h2o_iovec_init(wr->out.data, wr->out.len);
        wr->sending = true;
        if (superseded) {
            wr->done = true;
            l = l->prev; /* unlinking below; keep the walk going */
            h2o_linklist_unlink(&wr->link);
        }
        h2o_send(wr->req, &v, 1, superseded ? H2O_SEND_STATE_FINAL : H2O_SEND_STATE_IN_PROGRESS);
    }
}

/* --- request handling --- */

/* DNS-rebinding protection: both Host and Origin must be ours. Answers and returns false if not. */
static bool check_host_origin(h2o_req_t *req, const struct config *cfg)
{
    h2o_iovec_t origin = header_value(req, H2O_STRLIT("origin"));
    struct err_info ei = {0};
    if (http_check_host_origin(cfg, req->authority.base, req->authority.len, origin.base,
                               origin.len, &ei) == 0)
        return true;
    send_refusal(req, 403, JSONRPC_INVALID_REQUEST, "%s", ei.msg);
    return false;
}

/* --- CORS: browser-based clients on another origin ---
   The one list is allowed_origins: an Origin listed there exactly gets CORS answers on /mcp and
   on the OAuth endpoints a client calls from script (metadata, registration, token, revocation,
   keys); no other origin does, and with the list empty no CORS header is ever sent. The
   authorization pages (/oauth/authorize, login, consent, sso) are navigations, never fetches,
   and get none. /mcp takes a bearer token in Authorization, not a cookie, so the answers never
   carry Access-Control-Allow-Credentials: a page can act only with a token it already holds. */

enum cors_kind { CORS_NONE, CORS_MCP, CORS_OAUTH_GET, CORS_OAUTH_POST };

#define CORS_MAX_AGE "600"
#define CORS_EXPOSE "Mcp-Session-Id, WWW-Authenticate, Mcp-Protocol-Version"

static enum cors_kind cors_kind(h2o_iovec_t p)
{
    static const char wk_pr[] = "/.well-known/oauth-protected-resource";
    if (h2o_memis(p.base, p.len, H2O_STRLIT("/mcp")) || (p.len > 5 && !memcmp(p.base, "/mcp/", 5)))
        return CORS_MCP;
    if (h2o_memis(p.base, p.len, H2O_STRLIT("/.well-known/oauth-authorization-server")) ||
        h2o_memis(p.base, p.len, H2O_STRLIT("/.well-known/openid-configuration")) ||
        h2o_memis(p.base, p.len, H2O_STRLIT("/oauth/jwks")) ||
        (p.len >= sizeof(wk_pr) - 1 && !memcmp(p.base, wk_pr, sizeof(wk_pr) - 1)))
        return CORS_OAUTH_GET;
    if (h2o_memis(p.base, p.len, H2O_STRLIT("/oauth/register")) ||
        h2o_memis(p.base, p.len, H2O_STRLIT("/oauth/token")) ||
        h2o_memis(p.base, p.len, H2O_STRLIT("/oauth/revoke")))
        return CORS_OAUTH_POST;
    return CORS_NONE;
}

static const char *cors_methods(enum cors_kind k)
{
    return k == CORS_MCP ? "GET, POST, DELETE" : k == CORS_OAUTH_GET ? "GET" : "POST";
}

/* Whether a request header (by name, any case) may be sent from another origin to this kind of
   endpoint: what an MCP client sends on /mcp (Mcp-Param-* included), what an OAuth client sends
   elsewhere. */
static bool cors_header_allowed(enum cors_kind k, const char *h, size_t n)
{
    static const char *const mcp[] = {"authorization",        "content-type", "accept",
                                      "mcp-session-id",       "mcp-method",   "mcp-name",
                                      "mcp-protocol-version", "last-event-id"};
    size_t count = k == CORS_MCP ? sizeof(mcp) / sizeof(mcp[0]) : 4;
    for (size_t i = 0; i < count; i++) {
        const char *a = k == CORS_MCP || i < 3 ? mcp[i] : "mcp-protocol-version";
        if (strlen(a) == n && strncasecmp(a, h, n) == 0)
            return true;
    }
    return k == CORS_MCP && n > 10 && strncasecmp(h, "mcp-param-", 10) == 0;
}

/* Headers every answer to a listed origin carries, added before the handler runs so that every
   answer (errors, 401s with WWW-Authenticate, SSE streams) has them. */
static void cors_add_headers(h2o_req_t *req, const struct config *cfg, h2o_iovec_t origin)
{
    if (cfg->nallowed_origins > 0)
        add_header(req, H2O_TOKEN_VARY, "Origin");
    if (origin.base == NULL || !http_origin_listed(cfg, origin.base, origin.len))
        return;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ACCESS_CONTROL_ALLOW_ORIGIN, NULL,
                   origin.base, origin.len);
    add_header_str(req, "access-control-expose-headers", CORS_EXPOSE);
}

/* A preflight (OPTIONS with Origin and Access-Control-Request-Method): 204 with the methods and
   the requested headers when the origin is listed and asks for what the endpoint takes; 403
   naming the origin, the method or the header otherwise. */
static void cors_preflight(h2o_req_t *req, const struct config *cfg, enum cors_kind k,
                           h2o_iovec_t origin, h2o_iovec_t method)
{
    char shown[4 * 64 + 8];
    h2o_iovec_t asked = header_value(req, H2O_STRLIT("access-control-request-headers"));
    if (req->authority.len == 0 ||
        !http_host_allowed(cfg, req->authority.base, req->authority.len)) {
        check_host_origin(req, cfg);
        return;
    }
    if (!http_origin_listed(cfg, origin.base, origin.len)) {
        send_refusal(
            req, 403, JSONRPC_INVALID_REQUEST,
            "CORS preflight refused: Origin \"%s\" is not in allowed_origins",
            printable(shown, sizeof(shown), origin.base, origin.len > 64 ? 64 : origin.len));
        return;
    }
    const char *methods = cors_methods(k);
    bool method_ok = false;
    for (const char *m = methods; *m && !method_ok;) {
        size_t n = strcspn(m, ",");
        method_ok = n == method.len && memcmp(m, method.base, n) == 0;
        m += n;
        while (*m == ',' || *m == ' ')
            m++;
    }
    if (!method_ok) {
        send_refusal(
            req, 403, JSONRPC_INVALID_REQUEST,
            "CORS preflight refused: method \"%s\" is not allowed here; use %s",
            printable(shown, sizeof(shown), method.base, method.len > 64 ? 64 : method.len),
            methods);
        return;
    }
    const char *p = asked.base, *end = asked.base ? asked.base + asked.len : NULL;
    while (p != NULL && p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *e = comma ? comma : end;
        while (p < e && (*p == ' ' || *p == '\t'))
            p++;
        size_t n = (size_t)(e - p);
        while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
            n--;
        if (n > 0 && !cors_header_allowed(k, p, n)) {
            send_refusal(req, 403, JSONRPC_INVALID_REQUEST,
                         "CORS preflight refused: request header \"%s\" is not allowed here",
                         printable(shown, sizeof(shown), p, n > 64 ? 64 : n));
            return;
        }
        p = comma ? comma + 1 : end;
    }
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ACCESS_CONTROL_ALLOW_ORIGIN, NULL,
                   origin.base, origin.len);
    add_header_str(req, "access-control-allow-methods", methods);
    if (asked.len > 0)
        h2o_add_header_by_str(&req->pool, &req->res.headers,
                              H2O_STRLIT("access-control-allow-headers"), 0, NULL, asked.base,
                              asked.len);
    add_header_str(req, "access-control-max-age", CORS_MAX_AGE);
    send_body(req, 204, NULL, "", 0);
}

/* CORS for one request: adds the common headers and answers a preflight. Returns true when it
   answered. */
static bool cors_apply(struct worker *w, h2o_req_t *req)
{
    enum cors_kind k = cors_kind(req->path_normalized);
    if (k == CORS_NONE)
        return false;
    const struct config *cfg = worker_config(w);
    h2o_iovec_t origin = header_value(req, H2O_STRLIT("origin"));
    h2o_iovec_t method = header_value(req, H2O_STRLIT("access-control-request-method"));
    if (origin.base != NULL && method.base != NULL &&
        h2o_memis(req->method.base, req->method.len, H2O_STRLIT("OPTIONS"))) {
        if (cfg->nallowed_origins > 0)
            add_header(req, H2O_TOKEN_VARY, "Origin");
        cors_preflight(req, cfg, k, origin, method);
        count_http(k == CORS_MCP ? "mcp" : "oauth", req->res.status);
        return true;
    }
    cors_add_headers(req, cfg, origin);
    return false;
}

/* Bodies at least this large are followed by malloc_trim (see on_mcp). */
#define TRIM_AFTER_BODY (256u * 1024)

/* The session named by Mcp-Session-Id, owned by `owner` (the binding key of `who`, whose session
   it then records): answers 400/404 and returns NULL when there is none. */
static struct session *require_session(h2o_req_t *req, int view, const char *owner,
                                       struct principal *who)
{
    h2o_iovec_t sid = header_value(req, H2O_STRLIT("mcp-session-id"));
    if (sid.base == NULL) {
        send_refusal(req, 400, JSONRPC_INVALID_REQUEST,
                     "the Mcp-Session-Id header is required; send initialize first to get one");
        return NULL;
    }
    struct session *s = session_find(sid.base, sid.len);
    if (s == NULL) {
        send_refusal(req, 404, JSONRPC_INVALID_REQUEST,
                     "session not found: it expired or was closed; initialize a new one");
        return NULL;
    }
    if (!session_owned_by(s, owner)) {
        /* Another principal's session: as good as unknown (no oracle for ids). */
        session_unref(s);
        send_refusal(req, 404, JSONRPC_INVALID_REQUEST,
                     "session not found: it expired or was closed; initialize a new one");
        return NULL;
    }
    if (session_view(s) != view) {
        session_unref(s);
        send_refusal(req, 404, JSONRPC_INVALID_REQUEST,
                     "session not found on this endpoint; it belongs to another /mcp path");
        return NULL;
    }
    principal_set_session(who, sid.base, sid.len);
    return s;
}

static bool check_protocol_header(h2o_req_t *req)
{
    h2o_iovec_t v = header_value(req, H2O_STRLIT("mcp-protocol-version"));
    if (v.base == NULL)
        return true; /* the spec says: assume 2025-03-26 */
    char version[32];
    if (v.len < sizeof(version)) {
        memcpy(version, v.base, v.len);
        version[v.len] = '\0';
        if (mcp_version_supported(version))
            return true;
    }
    char list[128] = "";
    for (int i = 0; mcp_supported_versions[i]; i++)
        snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", i ? ", " : "",
                 mcp_supported_versions[i]);
    send_refusal(req, 400, JSONRPC_INVALID_REQUEST,
                 "unsupported MCP-Protocol-Version \"%.*s\"; supported: %s",
                 (int)(v.len > 40 ? 40 : v.len), v.base, list);
    return false;
}

static void log_line(struct worker *w, bool http2, const char *http_method, const char *path,
                     int status, const char *mcp_method, const char *server, const char *target,
                     const char *outcome, uint64_t start_ns)
{
    if (log_get_level() > LOG_INFO)
        return;
    char rid[32];
    snprintf(rid, sizeof(rid), "%d-%llu", w->mcp.index, (unsigned long long)++w->next_req);
    json_t *f = json_pack("{s:s, s:s, s:s, s:s, s:i, s:f}", "request_id", rid, "http_version",
                          http2 ? "2" : "1.1", "http_method", http_method, "path", path, "status",
                          status, "duration_ms", (double)(clock_now_ns() - start_ns) / 1e6);
    if (mcp_method)
        json_object_set_new(f, "mcp_method", json_string(mcp_method));
    if (server)
        json_object_set_new(f, "server", json_string(server));
    if (target && *target)
        json_object_set_new(f, "target", json_string(target));
    if (outcome)
        json_object_set_new(f, "outcome", json_string(outcome));
    log_fields(LOG_INFO, "request", f);
}

static void log_request(struct worker *w, h2o_req_t *req, int status, const char *mcp_method,
                        const char *server, const char *target, uint64_t start_ns)
{
    char method[16], path[256];
    snprintf(method, sizeof(method), "%.*s", (int)req->method.len, req->method.base);
    snprintf(path, sizeof(path), "%.*s",
             (int)(req->path_normalized.len > 255 ? 255 : req->path_normalized.len),
             req->path_normalized.base);
    log_line(w, req->version >= 0x200, method, path, status, mcp_method, server, target, NULL,
             start_ns);
}

/* What the access log line of one /mcp request says. Handlers fill it; on_mcp writes the line
   and counts the status, except for a streamed answer, whose writer does both when it ends. */
struct access {
    struct principal *who; /* the caller (anonymous without authentication) */
    const char *owner;     /* its binding key (principal_key): a session's owner */
    char mcp_method[48];
    const char *server;
    char target[128];
    bool streamed;
    bool suspended; /* waiting for Redis: answered and logged later (redis_wait) */
};

static bool iovec_is(h2o_iovec_t v, const char *s)
{
    return v.base != NULL && strlen(s) == v.len && memcmp(v.base, s, v.len) == 0;
}

/* Stream r's answer on req. transient (with client_id): a 2026-07-28 request's session, whose
   reference the writer takes and closes when the response ends. */
static void start_answer_stream(struct worker *w, h2o_req_t *req, struct mcp_reply *r,
                                uint64_t start, struct access *a, struct session *transient,
                                json_t *client_id)
{
    /* A forwarded request is answered as SSE: the priming event gives the client an event
       id, so it can resume with Last-Event-ID if the connection drops during a long call
       (a plain JSON answer could not be resumed). */
    struct writer *wr = writer_new(req, w, r->stream, false);
    r->stream = NULL;
    wr->json_ok = false;
    wr->server = r->server;
    wr->started_ns = start;
    snprintf(wr->method, sizeof(wr->method), "%s", a->mcp_method);
    snprintf(wr->target, sizeof(wr->target), "%s", r->target);
    wr->http2 = req->version >= 0x200;
    snprintf(wr->path, sizeof(wr->path), "%.*s",
             (int)(req->path_normalized.len < sizeof(wr->path) ? req->path_normalized.len
                                                               : sizeof(wr->path) - 1),
             req->path_normalized.base);
    if (transient != NULL) {
        wr->transient = session_ref(transient);
        wr->client_id = json_incref(client_id);
    }
    a->streamed = true;
    stream_attach(wr->stream, &wr->sw);
}

/*
 * 2026-07-28 subscriptions/listen: the answer is a long-lived SSE stream. Its first event is
 * notifications/subscriptions/acknowledged with the part of the filter the gateway honours; then
 * come the change notifications the client opted in to. The stream is the standalone stream of a
 * transient session registered as a listener (session_listen), so the gateway's broadcasts reach
 * it; keep-alive comments flow as on any SSE stream; the client closing it ends the subscription
 * (writer_dispose closes the session).
 */
static void handle_listen(struct worker *w, h2o_req_t *req, int view, struct access *a, json_t *msg)
{
    static const struct {
        const char *key;
        unsigned bit;
    } kinds[] = {{"toolsListChanged", SESSION_LISTEN_TOOLS},
                 {"promptsListChanged", SESSION_LISTEN_PROMPTS},
                 {"resourcesListChanged", SESSION_LISTEN_RESOURCES}};
    json_t *id = json_object_get(msg, "id");
    json_t *params = json_object_get(msg, "params");
    json_t *filter = json_object_get(params, "notifications");
    if (!json_is_object(filter)) {
        json_t *e = jsonrpc_error_new(
            id, JSONRPC_INVALID_PARAMS,
            "Invalid params: subscriptions/listen needs params.notifications (the notification filter) as an object",
            NULL);
        send_json(req, 400, e);
        json_decref(e);
        return;
    }
    /* The honoured subset: the list changes. resourceSubscriptions is left out (the gateway does
       not subscribe upstream on a listener's behalf yet), so the client knows not to wait. */
    unsigned mask = 0;
    json_t *honoured = json_object();
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        if (json_is_true(json_object_get(filter, kinds[i].key))) {
            mask |= kinds[i].bit;
            json_object_set_new(honoured, kinds[i].key, json_true());
        }
    }
    json_t *caps = json_deep_copy(json_object_get(json_object_get(params, "_meta"),
                                                  "io.modelcontextprotocol/clientCapabilities"));
    int err = 0;
    struct session *s = session_new_transient(view, MCP_VERSION_2026, caps, &err);
    json_decref(caps);
    struct stream *st = NULL;
    if (s != NULL)
        session_set_owner(s, a->owner); /* what is one user's (per_user servers) reaches theirs */
    if (s != NULL && (err = session_listen(s, mask, id)) == 0)
        st = session_standalone_stream(s);
    if (st == NULL) {
        json_decref(honoured);
        if (s != NULL) {
            session_close(s);
            session_unref(s);
        }
        send_refusal(req, 503, JSONRPC_INTERNAL_ERROR, "cannot open the listen stream: %s",
                     err_str(err ? err : ERR_NOMEM));
        return;
    }
    json_t *task_ids = mcp_tasks_listen(s, a->owner, json_object_get(filter, "taskIds"));
    if (task_ids != NULL) /* the tasks extension: status changes of these tasks (tasks.c) */
        json_object_set_new(honoured, "taskIds", task_ids);
    json_t *ack = jsonrpc_notification_new("notifications/subscriptions/acknowledged",
                                           json_pack("{s:{s:O}, s:o}", "_meta",
                                                     "io.modelcontextprotocol/subscriptionId", id,
                                                     "notifications", honoured));
    if (ack != NULL) /* through the engine's one emitter, as every MCP message to a client */
        mcp_emit(NULL, w->mcp.pipeline, st, ack, 0);
    json_decref(ack);
    struct writer *wr = writer_new(req, w, st, true); /* takes st */
    wr->transient = s;                                /* takes the reference */
    snprintf(wr->method, sizeof(wr->method), "subscriptions/listen");
    a->streamed = true;
    stream_attach(st, &wr->sw);
    writer_pump(wr); /* the acknowledgement is pending: the response starts now */
}

/* The Mcp-Param-* headers of a tools/call from a 2026-07-28 client, checked against the called
   tool's x-mcp-header parameters. Returns 0, or ERR_INVAL with *ref filled. */
static int check_param_headers(struct worker *w, h2o_req_t *req, int view, json_t *msg,
                               struct mcp_era_refusal *ref)
{
    static const char prefix[] = "mcp-param-";
    const size_t pl = sizeof(prefix) - 1;
    memset(ref, 0, sizeof(*ref));
    json_t *schema = mcp_tool_input_schema(
        &w->mcp, view, json_string_value(json_object_get(json_object_get(msg, "params"), "name")));
    if (schema == NULL)
        return 0;
    size_t n = 0;
    struct mcp_param_header *hs = calloc(req->headers.size + 1, sizeof(*hs));
    int err = ERR_NOMEM;
    if (hs == NULL) {
        ref->status = 500;
        ref->error = jsonrpc_error_new(json_object_get(msg, "id"), JSONRPC_INTERNAL_ERROR,
                                       "out of memory checking the Mcp-Param-* headers", NULL);
        goto out;
    }
    for (size_t i = 0; i < req->headers.size; i++) {
        const h2o_header_t *h = &req->headers.entries[i];
        if (h->name->len > pl && strncasecmp(h->name->base, prefix, pl) == 0)
            hs[n++] = (struct mcp_param_header){h->name->base + pl, h->name->len - pl,
                                                h->value.base, h->value.len};
    }
    err = mcp_era_validate_params(hs, n, schema, msg, ref);
out:
    free(hs);
    json_decref(schema);
    return err;
}

/*
 * A 2026-07-28 request (stateless): validated against its headers, then run through the same
 * engine as a legacy one, on a transient session made from its _meta. The session is closed
 * when the answer has ended; a client that closes the response stream cancels the request.
 */
static void handle_modern(struct worker *w, h2o_req_t *req, int view, uint64_t start,
                          struct access *a, json_t *msg, enum jsonrpc_kind kind,
                          const struct mcp_era_headers *h)
{
    if (kind == JSONRPC_RESULT || kind == JSONRPC_ERROR) {
        send_refusal(
            req, 400, JSONRPC_INVALID_REQUEST,
            "a 2026-07-28 client sends no JSON-RPC responses (server-to-client requests are MRTR results)");
        return;
    }
    if (kind == JSONRPC_NOTIFICATION) {
        /* 2026-07-28 defines no client notifications over HTTP (closing a stream cancels). */
        send_body(req, 202, NULL, "", 0);
        return;
    }
    struct mcp_era_refusal ref;
    if (mcp_era_validate(h, msg, &ref) != 0) {
        send_json(req, ref.status, ref.error);
        json_decref(ref.error);
        return;
    }
    json_t *id = json_object_get(msg, "id");
    const char *method = jsonrpc_method(msg);
    if (method != NULL && strcmp(method, "tools/call") == 0 &&
        check_param_headers(w, req, view, msg, &ref) != 0) {
        send_json(req, ref.status, ref.error);
        json_decref(ref.error);
        return;
    }
    if (method != NULL && strcmp(method, "subscriptions/listen") == 0) {
        handle_listen(w, req, view, a, msg);
        return;
    }
    if (!mcp_era_method_stateless(method)) {
        char m[300];
        snprintf(m, sizeof(m),
                 "Method not found: %.64s (not served to 2026-07-28 clients by this gateway)",
                 method);
        json_t *e = jsonrpc_error_new(id, JSONRPC_METHOD_NOT_FOUND, m, NULL);
        send_json(req, 404, e);
        json_decref(e);
        return;
    }
    json_t *meta = json_object_get(json_object_get(msg, "params"), "_meta");
    json_t *caps =
        json_deep_copy(json_object_get(meta, "io.modelcontextprotocol/clientCapabilities"));
    int log_level = mcp_log_level_rank(
        json_string_value(json_object_get(meta, "io.modelcontextprotocol/logLevel")));
    mcp_era_strip_meta(msg);
    int err = 0;
    struct session *s = session_new_transient(view, MCP_VERSION_2026, caps, &err);
    json_decref(caps);
    if (s == NULL) {
        send_refusal(req, 503, JSONRPC_INTERNAL_ERROR, "cannot serve the request: %s",
                     err_str(err));
        return;
    }
    session_set_log_level(s, log_level);
    session_set_owner(s, a->owner); /* binds the requestState it is given to this principal */
    struct mcp_reply r;
    mcp_handle_message(&w->mcp, view, a->who, s, msg, kind, &r);
    a->server = r.server;
    snprintf(a->target, sizeof(a->target), "%s", r.target);
    if (r.stream) {
        start_answer_stream(w, req, &r, start, a, s, id);
    } else if (r.body) {
        /* resultType, ttlMs and cacheScope are the engine's (mcp_emit_era) */
        json_t *e = json_object_get(r.body, "error");
        int status = json_integer_value(json_object_get(e, "code")) == JSONRPC_METHOD_NOT_FOUND
                         ? 404
                         : r.status;
        send_json(req, status, r.body);
        const char *labels[] = {r.server ? r.server : "gateway",
                                mcp_era_method_label(a->mcp_method), e ? "error" : "ok"};
        metrics_inc(M.mcp_requests, labels, 1);
    } else {
        send_body(req, 202, NULL, "", 0);
    }
    mcp_reply_release(&r);
    if (!a->streamed)
        session_close(s);
    session_unref(s);
}

static bool answer_elsewhere(struct worker *w, h2o_req_t *req, int view, uint64_t start,
                             struct access *a, struct session *s, json_t *msg);

static void handle_post(struct worker *w, h2o_req_t *req, int view, uint64_t start,
                        struct access *a)
{
    h2o_iovec_t accept = header_value(req, H2O_STRLIT("accept"));
    h2o_iovec_t ctype = header_value(req, H2O_STRLIT("content-type"));
    int status = 0;
    struct err_info hei = {0};
    if (http_check_post_headers(accept.base, accept.len, ctype.base, ctype.len, &status, &hei)) {
        send_refusal(req, status, JSONRPC_INVALID_REQUEST, "%s", hei.msg);
        return;
    }
    h2o_iovec_t sid = header_value(req, H2O_STRLIT("mcp-session-id"));
    h2o_iovec_t version = header_value(req, H2O_STRLIT("mcp-protocol-version"));
    bool modern_header = sid.base == NULL && iovec_is(version, MCP_VERSION_2026);
    /* With a session, the legacy order of checks; without one, the era is known only once the
       body is parsed (its _meta may name the version). */
    if (sid.base != NULL && !check_protocol_header(req))
        return;
    /* A session named by header is checked before the body is parsed: an unknown one costs
       the sender no parse. */
    struct session *s = NULL;
    if (sid.base != NULL && (s = require_session(req, view, a->owner, a->who)) == NULL)
        return;
    json_t *msg = NULL, *id = NULL;
    enum jsonrpc_kind kind;
    struct err_info ei = {0};
    int err = jsonrpc_parse(req->entity.base ? req->entity.base : "", req->entity.len, &msg, &kind,
                            &id, &ei);
    if (err && sid.base == NULL && !modern_header && !check_protocol_header(req)) {
        json_decref(id);
        return;
    }
    if (err) {
        json_t *e = jsonrpc_error_new(id,
                                      err == ERR_PARSE   ? JSONRPC_PARSE_ERROR
                                      : err == ERR_LIMIT ? JSONRPC_GATEWAY_LIMIT
                                                         : JSONRPC_INVALID_REQUEST,
                                      ei.msg, NULL);
        send_json(req, err == ERR_LIMIT ? 413 : 400, e);
        json_decref(e);
        json_decref(id);
        session_unref(s);
        return;
    }
    json_decref(id);
    const char *method = jsonrpc_method(msg);
    snprintf(a->mcp_method, sizeof(a->mcp_method), "%s",
             method                   ? method
             : kind == JSONRPC_RESULT ? "(result)"
                                      : "(error)");
    if (sid.base == NULL) {
        h2o_iovec_t m = header_value(req, H2O_STRLIT("mcp-method")),
                    n = header_value(req, H2O_STRLIT("mcp-name"));
        struct mcp_era_headers h = {false, version.base, version.len, m.base, m.len, n.base, n.len};
        if (mcp_era_is_modern(&h, msg)) {
            handle_modern(w, req, view, start, a, msg, kind, &h);
            json_decref(msg);
            return;
        }
        if (!check_protocol_header(req)) {
            json_decref(msg);
            return;
        }
    }
    bool is_init = kind == JSONRPC_REQUEST && strcmp(method, "initialize") == 0;
    if (s == NULL && !is_init) {
        s = require_session(req, view, a->owner, a->who);
        if (s == NULL) {
            json_decref(msg);
            return;
        }
    }
    if ((kind == JSONRPC_RESULT || kind == JSONRPC_ERROR) && s != NULL &&
        answer_elsewhere(w, req, view, start, a, s, msg)) {
        session_unref(s);
        json_decref(msg);
        return;
    }
    struct mcp_reply r;
    mcp_handle_message(&w->mcp, view, a->who, s, msg, kind, &r);
    a->server = r.server;
    snprintf(a->target, sizeof(a->target), "%s", r.target);
    if (r.session) {
        if (is_init && sid.base == NULL) {
            session_set_owner(r.session, a->owner);
            principal_set_session(a->who, session_id(r.session), strlen(session_id(r.session)));
        }
        add_header_str(req, "mcp-session-id", session_id(r.session));
        metrics_set(M.sessions, NULL, session_table_count());
    }
    if (r.stream) {
        start_answer_stream(w, req, &r, start, a, NULL, NULL);
    } else if (r.body) {
        send_json(req, r.status, r.body);
        const char *labels[] = {r.server ? r.server : "gateway",
                                mcp_era_method_label(a->mcp_method),
                                json_object_get(r.body, "error") ? "error" : "ok"};
        metrics_inc(M.mcp_requests, labels, 1);
    } else {
        send_body(req, 202, NULL, "", 0);
    }
    mcp_reply_release(&r);
    session_unref(s);
    json_decref(msg);
}

static void handle_get(struct worker *w, h2o_req_t *req, int view, uint64_t start, struct access *a)
{
    snprintf(a->mcp_method, sizeof(a->mcp_method), "(stream)");
    h2o_iovec_t accept = header_value(req, H2O_STRLIT("accept"));
    if (!http_accept_lists(accept.base, accept.len, "text/event-stream")) {
        send_refusal(
            req, 406, JSONRPC_INVALID_REQUEST,
            "a GET on the MCP endpoint opens an SSE stream: Accept must list text/event-stream");
        return;
    }
    if (!check_protocol_header(req))
        return;
    struct session *s = require_session(req, view, a->owner, a->who);
    if (s == NULL)
        return;
    h2o_iovec_t last = header_value(req, H2O_STRLIT("last-event-id"));
    struct stream *st = NULL;
    uint64_t after = 0;
    if (last.base != NULL) {
        char id[64];
        if (last.len < sizeof(id)) {
            memcpy(id, last.base, last.len);
            id[last.len] = '\0';
            st = session_find_stream(s, id, &after);
        }
        if (st == NULL) {
            session_unref(s);
            send_refusal(req, 404, JSONRPC_INVALID_REQUEST,
                         "Last-Event-ID \"%.*s\" names no stream of this session",
                         (int)(last.len > 60 ? 60 : last.len), last.base);
            return;
        }
    } else {
        st = session_standalone_stream(s);
    }
    session_unref(s);
    if (st == NULL) {
        send_refusal(req, 404, JSONRPC_INVALID_REQUEST, "session not found: it was closed");
        return;
    }
    struct writer *wr = writer_new(req, w, st, true);
    wr->cursor = after;
    snprintf(wr->method, sizeof(wr->method), "GET");
    stream_attach(st, &wr->sw);
    /* Send the headers and the priming event now: a GET stream may stay quiet for long. */
    wr->started = true;
    req->res.status = 200;
    req->res.reason = "OK";
    add_header(req, H2O_TOKEN_CONTENT_TYPE, "text/event-stream");
    add_header(req, H2O_TOKEN_CACHE_CONTROL, "no-cache, no-store");
    add_header_str(req, "x-accel-buffering", "no");
    h2o_start_response(req, &wr->gen);
    h2o_linklist_insert(&w->writers, &wr->link);
    buf_printf(&wr->out, "id: %llu-%llu\nretry: 1000\ndata: \n\n",
               (unsigned long long)stream_number(st), (unsigned long long)after);
    h2o_iovec_t v = h2o_iovec_init(wr->out.data, wr->out.len);
    wr->sending = true;
    h2o_send(req, &v, 1, H2O_SEND_STATE_IN_PROGRESS);
}

struct redis_wait;
static int redis_wait(struct worker *w, h2o_req_t *req, int view, uint64_t start, struct access *a,
                      const char hash[65],
                      void (*next)(struct redis_wait *, int, bool, const char *));
static void delete_recorded(struct redis_wait *rw, int err, bool ended, const char *err_msg);

static bool delete_record_wait(struct worker *w, h2o_req_t *req, int view, uint64_t start,
                               struct access *a, const char *hash, const char rec[65],
                               int64_t until);
static void delete_answer(struct worker *w, h2o_req_t *req, int view, uint64_t start,
                          struct access *a, const char *hash);
static void mcp_finish(struct worker *w, h2o_req_t *req, uint64_t start, struct access *a);

static void handle_delete(struct worker *w, h2o_req_t *req, int view, uint64_t start,
                          struct access *a)
{
    snprintf(a->mcp_method, sizeof(a->mcp_method), "(close session)");
    struct session *s = require_session(req, view, a->owner, a->who);
    if (s == NULL)
        return;
    char hash[65], rec[65];
    int64_t until;
    bool shared = shared_enabled() && session_id_hash(s, hash);
    session_defer_record(w->store != NULL); /* the store's record: delete_record_wait */
    session_close(s);
    bool record = session_deferred_record(rec, &until);
    session_defer_record(false);
    session_unref(s);
    metrics_set(M.sessions, NULL, session_table_count());
    if (record && delete_record_wait(w, req, view, start, a, shared ? hash : NULL, rec, until))
        return; /* answered once the store has the record */
    delete_answer(w, req, view, start, a, shared ? hash : NULL);
}

/* answered once Redis has the ended id (its write went first on this connection) */
static void delete_answer(struct worker *w, h2o_req_t *req, int view, uint64_t start,
                          struct access *a, const char *hash)
{
    if (hash == NULL || redis_wait(w, req, view, start, a, hash, delete_recorded) != 0)
        send_body(req, 200, NULL, "", 0);
}

/* A DELETE waits for the store's record of the ended id (through the worker's store caller: a
   pool thread on PostgreSQL, inline on SQLite), so that a replica on the same store that is
   asked next never resumes it; the record failing is logged and the DELETE still succeeds. */
struct delete_job;
struct delete_wait { /* the request's (its pool) */
    struct worker *w;
    h2o_req_t *req;
    int view;
    uint64_t start;
    struct principal who;
    char owner[PRINCIPAL_KEY_MAX + 1];
    struct access a;
    bool shared;
    char hash[65];
    struct delete_job *job; /* NULL once it is back */
};
struct delete_job {         /* the job's (malloc) */
    struct delete_wait *dw; /* NULL once the request is gone */
    char rec[65];
    int64_t until;
};

static void delete_wait_dispose(void *p)
{
    struct delete_wait *dw = p;
    if (dw->job != NULL)
        dw->job->dw = NULL;
}

static int delete_record_job(struct store *st, void *arg)
{
    struct delete_job *j = arg;
    return session_store_record_ended(st, j->rec, j->until);
}

static void delete_record_done_cb(int rc, void *arg)
{
    (void)rc; /* a failure is logged by the job */
    struct delete_job *j = arg;
    struct delete_wait *dw = j->dw;
    free(j);
    if (dw == NULL)
        return; /* the client went away */
    dw->job = NULL;
    dw->a.suspended = false;
    delete_answer(dw->w, dw->req, dw->view, dw->start, &dw->a, dw->shared ? dw->hash : NULL);
    if (!dw->a.suspended)
        mcp_finish(dw->w, dw->req, dw->start, &dw->a);
}

static bool delete_record_wait(struct worker *w, h2o_req_t *req, int view, uint64_t start,
                               struct access *a, const char *hash, const char rec[65],
                               int64_t until)
{
    struct delete_job *j = malloc(sizeof(*j));
    if (j == NULL)
        return false;
    struct delete_wait *dw = h2o_mem_alloc_shared(&req->pool, sizeof(*dw), delete_wait_dispose);
    *dw = (struct delete_wait){
        .w = w, .req = req, .view = view, .start = start, .who = *a->who, .job = j};
    snprintf(dw->owner, sizeof(dw->owner), "%s", a->owner);
    dw->a = *a;
    dw->a.who = &dw->who;
    dw->a.owner = dw->owner;
    dw->a.suspended = true;
    if ((dw->shared = hash != NULL))
        memcpy(dw->hash, hash, sizeof(dw->hash));
    *j = (struct delete_job){.dw = dw, .until = until};
    memcpy(j->rec, rec, sizeof(j->rec));
    a->suspended = true; /* answered from delete_record_done_cb, maybe already */
    if (store_call(w->store, delete_record_job, delete_record_done_cb, j) != 0) {
        a->suspended = false;
        dw->job = NULL;
        free(j);
        log_warn("session_store", "could not record an ended session in the store (the store "
                                  "cannot take it now)");
        return false;
    }
    return true;
}

static void mcp_dispatch(struct worker *w, h2o_req_t *req, int view, uint64_t start,
                         struct access *a);

static void mcp_finish(struct worker *w, h2o_req_t *req, uint64_t start, struct access *a)
{
    count_http("mcp", a->streamed ? 200 : req->res.status);
    if (!a->streamed)
        log_request(w, req, req->res.status, a->mcp_method[0] ? a->mcp_method : NULL, a->server,
                    a->target, start);
}

/*
 * Requests that wait for Redis (the worker's loop does not). A sealed session id this replica
 * does not hold may have been ended by another replica: Redis is asked before the session is
 * resumed, and a request whose session cannot be checked (Redis unreachable) is refused with 503
 * rather than served on a session that may have ended: it fails closed. A DELETE is answered
 * once Redis has recorded the ended id (a command after it on the same connection has been
 * answered), so that a client that goes on to another replica finds it ended there.
 */
struct redis_wait {
    struct worker *w;
    h2o_req_t *req;
    int view;
    uint64_t start;
    struct principal who;
    char owner[PRINCIPAL_KEY_MAX + 1];
    struct access a;
    struct redis_token *tok; /* NULL once the answer came */
    void (*next)(struct redis_wait *rw, int err, bool ended, const char *err_msg);
};

/* What Redis's callback holds: the request's state, or NULL once the request is gone. */
struct redis_token {
    struct redis_wait *rw;
};

static void redis_wait_dispose(void *p)
{
    struct redis_wait *rw = p;
    if (rw->tok != NULL)
        rw->tok->rw = NULL; /* the answer finds nobody waiting */
}

static void redis_wait_cb(int err, bool ended, const char *err_msg, void *arg)
{
    struct redis_token *tok = arg;
    struct redis_wait *rw = tok->rw;
    free(tok);
    if (rw == NULL)
        return; /* the client went away */
    rw->tok = NULL;
    rw->a.suspended = false;
    rw->next(rw, err, ended, err_msg);
    if (!rw->a.suspended)
        mcp_finish(rw->w, rw->req, rw->start, &rw->a);
}

/* The state of a request about to wait for Redis, and the token Redis's callback gets; NULL out
   of memory. redis_wait_abort: the command could not be sent (nothing waits). */
static struct redis_token *
redis_wait_prepare(struct worker *w, h2o_req_t *req, int view, uint64_t start, struct access *a,
                   void (*next)(struct redis_wait *, int, bool, const char *))
{
    struct redis_token *tok = malloc(sizeof(*tok));
    if (tok == NULL)
        return NULL;
    struct redis_wait *rw = h2o_mem_alloc_shared(&req->pool, sizeof(*rw), redis_wait_dispose);
    *rw = (struct redis_wait){.w = w, .req = req, .view = view, .start = start, .who = *a->who};
    snprintf(rw->owner, sizeof(rw->owner), "%s", a->owner);
    rw->a = *a;
    rw->a.who = &rw->who;
    rw->a.owner = rw->owner;
    rw->next = next;
    tok->rw = rw;
    rw->tok = tok;
    return tok;
}

static void redis_wait_abort(struct redis_token *tok)
{
    tok->rw->tok = NULL;
    free(tok);
}

/* Ask Redis whether the session `hash` ended and go on with next(); a->suspended tells the
   caller that the request is answered later. Returns 0, or an error (nothing suspended). */
static int redis_wait(struct worker *w, h2o_req_t *req, int view, uint64_t start, struct access *a,
                      const char hash[65],
                      void (*next)(struct redis_wait *, int, bool, const char *))
{
    struct redis_token *tok = redis_wait_prepare(w, req, view, start, a, next);
    if (tok == NULL)
        return ERR_NOMEM;
    int err = shared_session_check(hash, redis_wait_cb, tok);
    if (err) {
        redis_wait_abort(tok);
        return err;
    }
    a->suspended = true;
    return 0;
}

/*
 * A client's answer to a server request that another replica relayed (its id says which:
 * mcp_xr_answer_route) is sent there through Redis, and the client is answered once Redis says
 * whether that replica received it: 202, 410 when it is gone, 503 when Redis cannot be reached.
 */
static void answer_published_cb(int err, long long receivers, void *arg)
{
    redis_wait_cb(err, receivers > 0, NULL, arg);
}

static void answer_forwarded(struct redis_wait *rw, int err, bool delivered, const char *err_msg)
{
    (void)err_msg;
    if (err)
        send_refusal(rw->req, 503, JSONRPC_INTERNAL_ERROR,
                     "this answer is for a request another replica relayed, and the connection "
                     "to Redis that carries it there was lost (%s); retry",
                     err_str(err));
    else if (!delivered)
        send_refusal(rw->req, 410, JSONRPC_INVALID_REQUEST,
                     "the replica that relayed the request this answers is gone (it stopped or "
                     "restarted): the call it belonged to cannot complete");
    else
        send_body(rw->req, 202, NULL, "", 0);
}

/* true when msg was answered (refused, or suspended until Redis answers) here. */
static bool answer_elsewhere(struct worker *w, h2o_req_t *req, int view, uint64_t start,
                             struct access *a, struct session *s, json_t *msg)
{
    struct mcp_xr_answer *xa = NULL;
    int status = 0;
    char why[256];
    int rc = mcp_xr_answer_route(s, msg, a->who, &xa, &status, why, sizeof(why));
    if (rc == 0)
        return false;
    if (rc < 0) {
        send_refusal(req, status, status >= 500 ? JSONRPC_INTERNAL_ERROR : JSONRPC_INVALID_REQUEST,
                     "%s", why);
        return true;
    }
    struct redis_token *tok = redis_wait_prepare(w, req, view, start, a, answer_forwarded);
    if (tok == NULL) {
        mcp_xr_answer_free(xa);
        send_refusal(req, 500, JSONRPC_INTERNAL_ERROR, "out of memory");
        return true;
    }
    int err = mcp_xr_answer_send(xa, answer_published_cb, tok);
    if (err) {
        redis_wait_abort(tok);
        send_refusal(req, 503, JSONRPC_INTERNAL_ERROR,
                     "this answer is for a request another replica relayed, and Redis, which "
                     "carries it there, is not connected (%s); retry",
                     err == ERR_UNAVAILABLE ? "not connected" : err_str(err));
        return true;
    }
    a->suspended = true;
    return true;
}

static void resume_refuse(h2o_req_t *req, const char *why)
{
    send_refusal(req, 503, JSONRPC_INTERNAL_ERROR,
                 "this replica cannot check whether the session was ended on another replica "
                 "(Redis: %s); retry, or initialize a new session",
                 why);
}

static void resume_checked(struct redis_wait *rw, int err, bool ended, const char *err_msg)
{
    h2o_iovec_t sid = header_value(rw->req, H2O_STRLIT("mcp-session-id"));
    if (err) {
        resume_refuse(rw->req, err_msg ? err_msg : "no answer");
        return;
    }
    if (ended)
        session_note_ended(sid.base, sid.len);
    mcp_dispatch(rw->w, rw->req, rw->view, rw->start, &rw->a);
}

/* true when the request was suspended (or answered) here. */
static bool resume_check(struct worker *w, h2o_req_t *req, int view, uint64_t start,
                         struct access *a)
{
    char hash[65];
    h2o_iovec_t sid = header_value(req, H2O_STRLIT("mcp-session-id"));
    if (sid.base == NULL || !session_needs_check(sid.base, sid.len, hash))
        return false;
    int err = redis_wait(w, req, view, start, a, hash, resume_checked);
    if (err == 0)
        return true;
    resume_refuse(req, err == ERR_UNAVAILABLE ? "not connected" : err_str(err));
    mcp_finish(w, req, start, a);
    return true;
}

static void delete_recorded(struct redis_wait *rw, int err, bool ended, const char *err_msg)
{
    send_body(rw->req, 200, NULL, "", 0);
}

/* The caller's credential: the bearer token when the request has an Authorization header (a
   token wins over a certificate); otherwise the client certificate of a TLS connection that
   presented one (tls.client_ca), which is a service account or a 401 naming why not, never
   anonymous; otherwise the bearer check, which answers 401. */
static bool authenticate(struct worker *w, const struct config *cfg, h2o_req_t *req, int view,
                         struct principal *who)
{
    const char *server = view < 0 ? NULL : gateway_server_name(view);
    if (h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, -1) < 0) {
        struct tls_client tc;
        tls_client_identify(req->conn->callbacks->get_socket(req->conn), cfg, &tc);
        if (tc.state != TLS_CLIENT_NONE)
            return oauth_authenticate_certificate(w->oauth, req, server,
                                                  tc.state == TLS_CLIENT_REFUSED ? tc.cause : NULL,
                                                  tc.account, tc.credential_id, tc.not_after, who);
    }
    return oauth_authenticate(w->oauth, cfg, req, server, who);
}

static bool store_wait(struct worker *w, h2o_req_t *req, int view, uint64_t start);
static void mcp_go_on(struct worker *w, h2o_req_t *req, int view, uint64_t start,
                      const char *unavailable);

static int on_mcp(struct worker *w, h2o_req_t *req, int view)
{
    uint64_t start = clock_now_ns();
    struct access a = {0};
    const struct config *cfg = worker_config(w);
    if (!check_host_origin(req, cfg))
        goto out;
    if (req->entity.len > cfg->max_body) {
        send_refusal(req, 413, JSONRPC_INVALID_REQUEST,
                     "the request body has %zu bytes, more than limits.max_body (%zu bytes)",
                     req->entity.len, cfg->max_body);
        goto out;
    }
    if (w->draining) {
        send_refusal(req, 503, JSONRPC_UPSTREAM_UNAVAILABLE, "the gateway is shutting down");
        goto out;
    }
    if (store_wait(w, req, view, start))
        return 0; /* answered once the store has (the loop goes on meanwhile) */
    mcp_go_on(w, req, view, start, NULL);
    return 0;
out:
    mcp_finish(w, req, start, &a);
    return 0;
}

/* The request once the store's part is in memory (store_wait): its caller, then its session
   and method. unavailable: what the store could not answer, refused after the caller is known
   (a bad token is still a 401). */
static void mcp_go_on(struct worker *w, h2o_req_t *req, int view, uint64_t start,
                      const char *unavailable)
{
    struct access a = {0};
    const struct config *cfg = worker_config(w);
    struct principal who;
    char owner[PRINCIPAL_KEY_MAX + 1] = "";
    principal_init_anonymous(&who);
    a.who = &who;
    a.owner = owner;
    if (cfg->auth.enabled) {
        if (w->oauth == NULL) {
            send_refusal(req, 503, JSONRPC_INTERNAL_ERROR,
                         "authentication was enabled by a reload; restart the gateway to apply it");
            goto out;
        }
        if (!authenticate(w, cfg, req, view, &who))
            goto out;
        principal_key(&who, owner, sizeof(owner));
    }
    if (unavailable != NULL) {
        add_header_str(req, "retry-after", "1");
        send_refusal(req, 503, JSONRPC_INTERNAL_ERROR, "%s", unavailable);
        goto out;
    }
    who.addr_len = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&who.addr);
    if (resume_check(w, req, view, start, &a))
        return; /* suspended until Redis answers, or answered */
    mcp_dispatch(w, req, view, start, &a);
out:
    if (!a.suspended)
        mcp_finish(w, req, start, &a);
}

/*
 * Requests that wait for the store (the worker's loop does not). What a request to /mcp may
 * need from the store is read first, in one store job through the worker's store caller: the
 * revocation sequence, the checks of a credential no verdict is cached for (auth_lookup), every
 * setting of its user when the settings cache does not hold them, and whether a sealed session
 * id this replica does not hold was ended. On PostgreSQL the job runs on a pool thread and the
 * request is answered once it is back; on SQLite it runs inline. The request then goes on from
 * memory (mcp_go_on). What the store could not answer is refused with 503 and Retry-After,
 * naming the store; cached verdicts and settings keep serving meanwhile.
 */
struct store_wait;
struct store_work {        /* the job's (malloc): freed when it is back */
    struct store_wait *sw; /* NULL once the request is gone */
    struct worker *w;
    struct auth_lookup *auth;
    int64_t settings_have; /* the user the cache holds every setting of, at settings_seq */
    uint64_t settings_seq;
    struct mcp_settings_loaded *loaded;
    int settings_rc;
    bool check_ended, ended;
    char hash[65];
    int ended_rc;
};

struct store_wait { /* the request's (its pool) */
    struct worker *w;
    h2o_req_t *req;
    int view;
    uint64_t start;
    struct store_work *work; /* NULL once it is back */
};

static void store_work_free(struct store_work *k)
{
    auth_lookup_free(k->auth);
    mcp_settings_loaded_free(k->loaded);
    free(k);
}

static void store_wait_dispose(void *p)
{
    struct store_wait *sw = p;
    if (sw->work != NULL)
        sw->work->sw = NULL; /* the answer finds nobody waiting */
}

/* On a pool thread (PostgreSQL), or inline (SQLite). */
static int store_work_job(struct store *st, void *arg)
{
    struct store_work *k = arg;
    uint64_t seq = 0;
    if (k->auth != NULL) {
        auth_lookup_run(st, k->auth);
        bool fresh = auth_lookup_seq(k->auth, &seq);
        int64_t uid = auth_lookup_user(k->auth);
        if (uid > 0 && (uid != k->settings_have || (fresh && seq != k->settings_seq))) {
            k->settings_rc = mcp_settings_load(st, uid, &k->loaded);
            k->settings_seq = seq;
        }
    }
    if (k->check_ended)
        k->ended_rc = session_store_ended(st, k->hash, &k->ended);
    return 0;
}

static void store_work_done_cb(int rc, void *arg)
{
    struct store_work *k = arg;
    struct store_wait *sw = k->sw;
    struct worker *w = k->w;
    char why[300];
    const char *unavailable = NULL;
    if (sw == NULL) { /* the client went away */
        store_work_free(k);
        return;
    }
    sw->work = NULL;
    uint64_t seq;
    struct mcp_settings_cache *c = k->auth ? mcp_worker_settings(&w->mcp) : NULL;
    if (k->auth != NULL && w->oauth != NULL)
        oauth_lookup_apply(w->oauth, k->auth);
    if (c != NULL && rc == 0 && auth_lookup_seq(k->auth, &seq)) {
        mcp_settings_cache_follow(c, seq);
        if (k->loaded != NULL)
            mcp_settings_cache_fill(c, k->settings_seq, k->loaded);
    }
    if (rc == 0 && k->check_ended && k->ended_rc == 0 && k->ended) {
        h2o_iovec_t sid = header_value(sw->req, H2O_STRLIT("mcp-session-id"));
        session_note_ended(sid.base, sid.len);
    }
    int failed = rc ? rc : k->settings_rc ? k->settings_rc : k->check_ended ? k->ended_rc : 0;
    if (failed) {
        snprintf(why, sizeof(why), "the store (%s) did not answer (%s): %s; retry shortly",
                 w->srv->store_name, err_str(failed),
                 rc               ? "the request could not be checked"
                 : k->settings_rc ? "the user's settings could not be read"
                                  : "whether the session was ended could not be checked");
        unavailable = why;
    }
    mcp_go_on(w, sw->req, sw->view, sw->start, unavailable);
    store_work_free(k); /* after the validation that used its answer */
}

/* true when the request went to the store (it is answered from store_work_done_cb, maybe
   already) or was refused here. */
static bool store_wait(struct worker *w, h2o_req_t *req, int view, uint64_t start)
{
    const struct config *cfg = worker_config(w);
    bool auth = cfg->auth.enabled && w->oauth != NULL;
    char hash[65];
    h2o_iovec_t sid = header_value(req, H2O_STRLIT("mcp-session-id"));
    bool check_ended = sid.base != NULL && session_needs_store_check(sid.base, sid.len, hash);
    struct tls_client tc = {.state = TLS_CLIENT_NONE};
    if (auth && h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, -1) < 0) {
        /* a client certificate instead (authenticate, below); with neither, the 401 needs no
           store */
        tls_client_identify(req->conn->callbacks->get_socket(req->conn), cfg, &tc);
        auth = tc.state == TLS_CLIENT_MAPPED;
    }
    if (w->store == NULL || (!auth && !check_ended))
        return false;
    struct store_work *k = calloc(1, sizeof(*k));
    int err = k == NULL ? ERR_NOMEM : 0;
    if (err == 0 && auth) {
        const char *server = view < 0 ? NULL : gateway_server_name(view);
        err = oauth_lookup_new(w->oauth, req, server, &k->auth);
        if (err == 0 && tc.state == TLS_CLIENT_MAPPED)
            err = auth_lookup_account(k->auth, tc.account, tc.credential_id);
        struct mcp_settings_cache *c = err ? NULL : mcp_worker_settings(&w->mcp);
        int64_t uid = err ? 0 : auth_lookup_user(k->auth); /* the cached verdict's */
        if (c != NULL && uid > 0 && mcp_settings_cache_has_user(c, uid) &&
            mcp_settings_cache_seq(c, &k->settings_seq))
            k->settings_have = uid;
    }
    if (err == 0 && !check_ended && k->auth != NULL && auth_lookup_local(k->auth)) {
        /* nothing to read (a cached verdict, the sequence known through events, the user's
           settings cached at it): no store call at all */
        uint64_t seq;
        int64_t uid = auth_lookup_user(k->auth);
        if (uid == 0 ||
            (uid == k->settings_have && auth_lookup_seq(k->auth, &seq) && seq == k->settings_seq)) {
            struct store_wait sw = {.w = w, .req = req, .view = view, .start = start};
            k->w = w;
            k->sw = &sw;
            store_work_done_cb(0, k);
            return true;
        }
    }
    if (err == 0) {
        struct store_wait *sw = h2o_mem_alloc_shared(&req->pool, sizeof(*sw), store_wait_dispose);
        *sw = (struct store_wait){.w = w, .req = req, .view = view, .start = start, .work = k};
        k->sw = sw;
        k->w = w;
        k->check_ended = check_ended;
        if (check_ended)
            memcpy(k->hash, hash, sizeof(k->hash));
        if ((err = store_call(w->store, store_work_job, store_work_done_cb, k)) != 0)
            sw->work = NULL;
    }
    if (err == 0)
        return true;
    if (k != NULL)
        store_work_free(k);
    struct access a = {0};
    add_header_str(req, "retry-after", "1");
    send_refusal(req, 503, JSONRPC_INTERNAL_ERROR,
                 "the store (%s) cannot take the request now (%s); retry shortly",
                 w->srv->store_name, err_str(err));
    mcp_finish(w, req, start, &a);
    return true;
}

/* The request by its HTTP method, once its caller is known. */
static void mcp_dispatch(struct worker *w, h2o_req_t *req, int view, uint64_t start,
                         struct access *a)
{
    if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST"))) {
        handle_post(w, req, view, start, a);
        /* A large body leaves the parse's memory in malloc's free lists, where glibc keeps it
           (per-thread arenas are rarely trimmed on their own): hand it back to the system. */
        if (req->entity.len >= TRIM_AFTER_BODY)
            malloc_trim(0);
    } else if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")))
        handle_get(w, req, view, start, a);
    else if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("DELETE")))
        handle_delete(w, req, view, start, a);
    else {
        add_header(req, H2O_TOKEN_ALLOW, "GET, POST, DELETE");
        send_refusal(req, 405, JSONRPC_INVALID_REQUEST,
                     "method %.*s is not allowed on the MCP endpoint; use POST, GET or DELETE",
                     (int)req->method.len, req->method.base);
    }
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    struct worker *w = H2O_STRUCT_FROM_MEMBER(struct worker, ctx, req->conn->ctx);
    struct err_info fe;
    if (framing_check_request(req, &fe) != 0) { /* 400, then the connection closes */
        send_refusal(req, 400, JSONRPC_INVALID_REQUEST, "%s", fe.msg);
        return 0;
    }
    if (cors_apply(w, req))
        return 0;
    h2o_iovec_t path = req->path_normalized;
    if (h2o_memis(path.base, path.len, H2O_STRLIT("/mcp")))
        return on_mcp(w, req, -1);
    if (path.len > 5 && memcmp(path.base, "/mcp/", 5) == 0) {
        char name[CONFIG_NAME_MAX + 1];
        size_t n = path.len - 5;
        int view = -1;
        /* A server name is printable ASCII: any other byte (a decoded %00 or %ff) names none,
           and is quoted escaped. */
        bool plain = true;
        for (size_t i = 0; i < n && plain; i++)
            plain =
                (unsigned char)path.base[5 + i] > 0x20 && (unsigned char)path.base[5 + i] < 0x7f;
        if (plain && n <= CONFIG_NAME_MAX) {
            memcpy(name, path.base + 5, n);
            name[n] = '\0';
            view = gateway_find_server(name);
        }
        if (view < 0) {
            char shown[4 * 64 + 8];
            send_refusal(req, 404, JSONRPC_INVALID_REQUEST,
                         "no server named \"%s\" behind this gateway",
                         printable(shown, sizeof(shown), path.base + 5, n > 64 ? 64 : n));
            count_http("mcp", 404);
            return 0;
        }
        return on_mcp(w, req, view);
    }
    if (oauth_owns_path(path.base, path.len)) {
        worker_config(w);
        struct config *cfg = w->cfg;
        h2o_iovec_t host = req->authority;
        if (host.len == 0 || !http_host_allowed(cfg, host.base, host.len)) {
            check_host_origin(req, cfg);
        } else if (w->oauth == NULL) {
            send_refusal(req, 404, JSONRPC_INVALID_REQUEST,
                         "authentication is not enabled on this gateway (auth:)");
        } else {
            int status = oauth_handle(w->oauth, cfg, req);
            if (status)
                count_http("oauth", status);
        }
        return 0;
    }
    if (h2o_memis(path.base, path.len, H2O_STRLIT("/healthz"))) {
        send_body(req, 200, "application/json", "{\"status\":\"ok\"}\n", 16);
        return 0;
    }
    if (h2o_memis(path.base, path.len, H2O_STRLIT("/readyz"))) {
        json_t *st = gateway_status(), *redis = shared_status();
        if (redis != NULL) /* shown, not counted in "ready": every replica shares it */
            json_object_set_new(st, "redis", redis);
        send_json(req, json_is_true(json_object_get(st, "ready")) ? 200 : 503, st);
        json_decref(st);
        return 0;
    }
    if (h2o_memis(path.base, path.len, H2O_STRLIT("/metrics"))) {
        struct buf b;
        buf_init(&b, 16u << 20);
        metrics_set(M.sessions, NULL, session_table_count());
        gateway_foreach_server(upstream_metrics_cb, NULL);
        if (metrics_render(&b) == 0)
            send_body(req, 200, "text/plain; version=0.0.4", b.data ? b.data : "", b.len);
        else
            send_body(req, 500, "text/plain", "metrics too large\n", 18);
        buf_release(&b);
        return 0;
    }
    send_refusal(req, 404, JSONRPC_INVALID_REQUEST, "nothing here; the MCP endpoint is /mcp");
    return 0;
}

/* --- sockets and threads --- */

static int address_in_use(const struct config_listener *l, uint16_t port, struct err_info *ei)
{
    bool v6 = strchr(l->address, ':') != NULL;
    return err_info_set(ei, ERR_IO, 0, 0,
                        "cannot listen on %s%s%s:%u: address in use (another process listens "
                        "there). To share the port on purpose, as in a zero-downtime restart, "
                        "start with --share or set share: true on the listener",
                        v6 ? "[" : "", l->address, v6 ? "]" : "", port);
}

static int bind_socket(const struct config_listener *l, uint16_t port, bool reuseport, int *fd_out,
                       uint16_t *bound, struct err_info *ei);

/* The workers' sockets share their port through SO_REUSEPORT, and the kernel lets any process of
   the same user join such a group: a second gatehouse on the same port would start silently and
   take part of the traffic. Unless the listener is shared on purpose (share: true, --share),
   the address is claimed first, in two steps:
   - a lock: an abstract Unix socket named after the address and port, bound for the life of the
     process (the kernel drops it when the process ends, however it ends), so that two gatehouses
     starting at the same instant cannot both pass the probe below;
   - a probe: a socket bound without SO_REUSEPORT, which the kernel refuses (EADDRINUSE) while
     any socket listens on that address and port, a gatehouse's or another program's.
   Port 0 needs neither: the kernel picks a free port. *lock_fd is -1 when there is no lock. */
static int claim_address(const struct config_listener *l, int *lock_fd, struct err_info *ei)
{
    *lock_fd = -1;
    if (l->share || l->port == 0)
        return 0;
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    int n = snprintf(un.sun_path + 1, sizeof(un.sun_path) - 1, "gatehouse/%u/%s/%u",
                     (unsigned)getuid(), l->address, l->port);
    socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return err_info_set(ei, ERR_IO, 0, 0, "cannot claim %s:%u: %s", l->address, l->port,
                            strerror(errno));
    if (bind(fd, (struct sockaddr *)&un, len) != 0) {
        int e = errno;
        close(fd);
        if (e == EADDRINUSE)
            return address_in_use(l, l->port, ei);
        return err_info_set(ei, ERR_IO, 0, 0, "cannot claim %s:%u: %s", l->address, l->port,
                            strerror(e));
    }
    int probe;
    uint16_t bound;
    int err = bind_socket(l, l->port, false, &probe, &bound, ei);
    if (err) {
        close(fd);
        return err;
    }
    close(probe);
    *lock_fd = fd;
    return 0;
}

/* A socket bound to l's address and `port`, listening, with SO_REUSEPORT when `reuseport` (every
   worker has its own socket on the same port). */
static int bind_socket(const struct config_listener *l, uint16_t port, bool reuseport, int *fd_out,
                       uint16_t *bound, struct err_info *ei)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV | AI_PASSIVE};
    struct addrinfo *ai = NULL;
    char portstr[8];
    snprintf(portstr, sizeof(portstr), "%u", port);
    int r = getaddrinfo(l->address, portstr, &hints, &ai);
    if (r != 0)
        return err_info_set(ei, ERR_INVAL, 0, 0, "listen address \"%s\": %s", l->address,
                            gai_strerror(r));
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int on = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0 ||
        (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) != 0) ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 4096) != 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        freeaddrinfo(ai);
        if (e == EADDRINUSE)
            return address_in_use(l, port, ei);
        return err_info_set(ei, ERR_IO, 0, 0, "cannot listen on %s:%u: %s", l->address, port,
                            strerror(e));
    }
    freeaddrinfo(ai);
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    getsockname(fd, (struct sockaddr *)&ss, &len);
    *bound = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                            : ((struct sockaddr_in *)&ss)->sin_port);
    *fd_out = fd;
    return 0;
}

/* What TLS listeners offer in ALPN besides HTTP/1.1 (the HTTP/2 switch). */
static const h2o_iovec_t *alpn_of(const struct config *cfg)
{
    return cfg->http2 ? h2_alpn_protocols : NULL;
}

int server_check_tls(const struct config *cfg, struct err_info *ei)
{
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        if (cfg->listeners[i].tls_cert == NULL)
            continue;
        SSL_CTX *ctx = tls_ctx_new(&cfg->listeners[i], alpn_of(cfg), ei);
        if (ctx == NULL)
            return ERR_IO;
        SSL_CTX_free(ctx);
    }
    return 0;
}

/* A worker's switch to new SSL_CTXs (ctx[i] NULL: listener i unchanged); references owned. */
struct tls_swap {
    struct worker *w;
    SSL_CTX *ctx[];
};

static void worker_tls_swap_cb(void *arg)
{
    struct tls_swap *sw = arg;
    for (size_t i = 0; i < sw->w->nlisteners; i++) {
        if (sw->ctx[i] == NULL)
            continue;
        /* Connections made with the old context hold references of their own (SSL_new). */
        SSL_CTX_free(sw->w->accept[i].ssl_ctx);
        sw->w->accept[i].ssl_ctx = sw->ctx[i];
    }
    free(sw);
}

int server_reload_tls(struct server *srv)
{
    const struct config *cfg = srv->listen_cfg;
    size_t n = cfg ? cfg->nlisteners : 0;
    int failed = 0;
    SSL_CTX **fresh = calloc(n ? n : 1, sizeof(*fresh));
    if (fresh == NULL)
        return ERR_NOMEM;
    for (size_t i = 0; i < n; i++) {
        const struct config_listener *l = &cfg->listeners[i];
        if (l->tls_cert == NULL)
            continue;
        struct err_info ei = {0};
        if ((fresh[i] = tls_ctx_new(l, alpn_of(cfg), &ei)) == NULL) {
            log_error("tls_reload", "listener #%zu (%s:%u) keeps the certificate it has: %s", i + 1,
                      l->address, srv->ports[i], ei.msg[0] ? ei.msg : "TLS context failed");
            failed++;
            continue;
        }
        char fp[96];
        tls_ctx_fingerprint(fresh[i], fp);
        log_info("tls_reload", "listener #%zu (%s:%u) serves the certificate %s (SHA-256 %s)",
                 i + 1, l->address, srv->ports[i], l->tls_cert, fp);
    }
    for (unsigned j = 0; srv->started && j < srv->nworkers; j++) {
        struct tls_swap *sw = calloc(1, sizeof(*sw) + n * sizeof(SSL_CTX *));
        if (sw == NULL)
            continue; /* that worker keeps the old certificate; nothing else breaks */
        sw->w = &srv->workers[j];
        for (size_t i = 0; i < n; i++)
            if ((sw->ctx[i] = fresh[i]) != NULL)
                SSL_CTX_up_ref(fresh[i]);
        if (mailbox_post(sw->w->mcp.mb, worker_tls_swap_cb, sw) != 0) {
            for (size_t i = 0; i < n; i++)
                SSL_CTX_free(sw->ctx[i]);
            free(sw);
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (fresh[i] == NULL)
            continue;
        SSL_CTX_free(srv->ssl[i]);
        srv->ssl[i] = fresh[i];
    }
    free(fresh);
    return failed ? ERR_IO : 0;
}

/* auth.issuer, or http(s)://<first listener>:<its bound port> (a wildcard address becomes
   localhost). Fixed for the life of the process: tokens carry it. */
static void set_issuer(struct server *srv, const struct config *cfg)
{
    if (cfg->auth.issuer) {
        snprintf(srv->issuer, sizeof(srv->issuer), "%s", cfg->auth.issuer);
        return;
    }
    const struct config_listener *l = &cfg->listeners[0];
    const char *host = l->address;
    if (strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0 || host[0] == '\0')
        host = "localhost";
    bool v6 = strchr(host, ':') != NULL;
    snprintf(srv->issuer, sizeof(srv->issuer), "%s://%s%s%s:%u", l->tls_cert ? "https" : "http",
             v6 ? "[" : "", host, v6 ? "]" : "", srv->ports[0]);
}

const char *server_issuer(struct server *srv)
{
    return srv->auth ? srv->issuer : NULL;
}

/* The request path's way to the store (store_wait): a pool of connections off the loops for
   PostgreSQL (two threads per worker, at least four: a query that waits on a lock holds one), or
   nothing shared for SQLite, whose calls run inline on each worker's connection. Only when a
   request can need the store: authentication, or ended session ids kept in it. */
static int server_store_init(struct server *srv, const struct config *cfg, struct err_info *ei)
{
    const char *where = cfg->store.sqlite;
    if (where == NULL || !(srv->auth || mcp_seal_shared()))
        return 0;
    bool remote = store_location_remote(where);
    srv->store_name = remote ? "postgres" : "sqlite";
    unsigned n = 2 * (cfg->workers ? cfg->workers : 1);
    int err = remote ? store_pool_new(where, n < 4 ? 4 : n > 16 ? 16 : n, &srv->store_pool, ei) : 0;
    if (err == 0)
        session_table_use_caller(srv->store_pool);
    return err;
}

int server_new(struct config *cfg, struct server **out, struct err_info *ei)
{
    int err = ERR_NOMEM;
    struct server *srv = calloc(1, sizeof(*srv));
    if (srv == NULL)
        return ERR_NOMEM;
    metrics_init();
    pthread_mutex_init(&srv->cfg_lock, NULL);
    srv->cfg = config_ref(cfg);
    srv->listen_cfg = config_ref(cfg);
    srv->nworkers = cfg->workers ? cfg->workers : (unsigned)sysconf(_SC_NPROCESSORS_ONLN);
    if (srv->nworkers == 0)
        srv->nworkers = 1;
    h2o_config_init(&srv->globalconf);
    /* h2o refuses bodies over its own limit with a plain-text 413 before any handler runs. Ours
       is checked in the handler, with a JSON-RPC answer that names it; h2o's is set above it
       (twice, at most 64 MiB more) so that only grossly oversized bodies get the plain one. */
    size_t slack = cfg->max_body < (64u << 20) ? cfg->max_body : (64u << 20);
    srv->globalconf.max_request_entity_size = cfg->max_body + slack;
    /* HTTP/2 is ours (h2.c, on nghttp2), never h2o's: no Upgrade: h2c, no preface in HTTP/1. */
    srv->globalconf.http1.upgrade_to_http2 = 0;
    srv->globalconf.server_name = h2o_iovec_init(H2O_STRLIT("gatehouse"));
    h2o_hostconf_t *host =
        h2o_config_register_host(&srv->globalconf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    h2o_handler_t *h = h2o_create_handler(path, sizeof(*h));
    h->on_req = on_req;
    framing_register_linger(path);
    framing_register_linger(&host->fallback_path);

    srv->ssl = calloc(cfg->nlisteners, sizeof(*srv->ssl));
    srv->fds = calloc(cfg->nlisteners, sizeof(*srv->fds));
    srv->ports = calloc(cfg->nlisteners, sizeof(*srv->ports));
    srv->locks = malloc(cfg->nlisteners * sizeof(*srv->locks));
    if (!srv->ssl || !srv->fds || !srv->ports || !srv->locks)
        goto fail;
    srv->nlocks = cfg->nlisteners;
    for (size_t i = 0; i < cfg->nlisteners; i++)
        srv->locks[i] = -1;
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        const struct config_listener *l = &cfg->listeners[i];
        srv->fds[i] = calloc(srv->nworkers, sizeof(int));
        if (srv->fds[i] == NULL)
            goto fail;
        for (unsigned j = 0; j < srv->nworkers; j++)
            srv->fds[i][j] = -1;
        if (l->tls_cert && (srv->ssl[i] = tls_ctx_new(l, alpn_of(cfg), ei)) == NULL) {
            err = ERR_IO;
            goto fail;
        }
        if ((err = claim_address(l, &srv->locks[i], ei)) != 0)
            goto fail;
        /* The first socket picks the port (it may be 0); the others share it via SO_REUSEPORT. */
        for (unsigned j = 0; j < srv->nworkers; j++) {
            err = bind_socket(l, j == 0 ? l->port : srv->ports[i], true, &srv->fds[i][j],
                              &srv->ports[i], ei);
            if (err)
                goto fail;
        }
    }
    if (cfg->auth.enabled) {
        if ((err = oauth_prepare(cfg, srv->master, ei)) != 0)
            goto fail;
        srv->auth = true;
        set_issuer(srv, cfg);
        mcp_seal_init(srv->master);
        vault_init(srv->master); /* users' upstream tokens (servers with auth.oauth) */
    } else if (cfg->store.key_file_set) {
        /* Replicas without authentication share session ids through the same key file; without
           one named, nothing is written to disk (session ids are sealed with a key of this
           process only, docs/configuration.md). */
        if ((err = auth_master_key_load(cfg->store.key_file, true, srv->master, ei)) != 0)
            goto fail;
        struct store *st = NULL;
        if ((err = store_open(cfg->store.sqlite ? cfg->store.sqlite : "gatehouse.db", &st, ei)) !=
            0)
            goto fail;
        err = auth_master_key_verify(st, srv->master, cfg->store.key_file, ei);
        store_close(st);
        if (err)
            goto fail;
        mcp_seal_init(srv->master);
    } else {
        mcp_seal_init(NULL);
    }
    if (cfg->redis.url != NULL) {
        if ((err = shared_init(cfg->redis.url, cfg->redis.prefix, cfg->redis.revocation_poll_ms,
                               ei)) != 0)
            goto fail;
        srv->shared = true;
    }
    if ((err = server_store_init(srv, cfg, ei)) != 0)
        goto fail;
    *out = srv;
    return 0;
fail:
    server_free(srv);
    return err;
}

static void worker_start_cb(void *arg);

/*
 * libh2o 2.2 keeps freed pool chunks, socket buffers and HTTP/2 write buffers in per-thread
 * caches (thread-local free lists of up to 16 entries each) that nothing empties when a thread
 * ends, and two of the three are private to the library. When a worker ends, that memory would
 * become unreachable, and a leak checker could not tell it from a leak of our own (the stacks
 * stop inside libh2o, which has no frame pointers). So each worker, just before it returns,
 * copies libh2o's thread-local block to a list that lives as long as the process: what h2o
 * caches stays accounted for, and any other h2o memory left behind is reported as a leak.
 */
struct h2o_tls_copy {
    struct h2o_tls_copy *next;
    size_t len;
    unsigned char bytes[];
};
static struct h2o_tls_copy *h2o_tls_copies;
static pthread_mutex_t h2o_tls_lock = PTHREAD_MUTEX_INITIALIZER;

static int h2o_tls_keep_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    (void)arg;
    if (info->dlpi_name == NULL || strstr(info->dlpi_name, "libh2o") == NULL ||
        info->dlpi_tls_data == NULL)
        return 0;
    for (ElfW(Half) i = 0; i < info->dlpi_phnum; i++) {
        if (info->dlpi_phdr[i].p_type != PT_TLS)
            continue;
        size_t len = info->dlpi_phdr[i].p_memsz;
        struct h2o_tls_copy *c = malloc(sizeof(*c) + len);
        if (c == NULL)
            return 1;
        c->len = len;
        memcpy(c->bytes, info->dlpi_tls_data, len);
        pthread_mutex_lock(&h2o_tls_lock);
        c->next = h2o_tls_copies;
        h2o_tls_copies = c;
        pthread_mutex_unlock(&h2o_tls_lock);
        return 1;
    }
    return 0;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    shared_worker_enter(w->shared);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    dl_iterate_phdr(h2o_tls_keep_cb, NULL);
    return NULL;
}

int server_start(struct server *srv)
{
    srv->workers = calloc(srv->nworkers, sizeof(*srv->workers));
    srv->mcp_workers = calloc(srv->nworkers, sizeof(*srv->mcp_workers));
    if (!srv->workers || !srv->mcp_workers)
        return ERR_NOMEM;
    const struct config *cfg = srv->cfg;
    for (unsigned j = 0; j < srv->nworkers; j++) {
        struct worker *w = &srv->workers[j];
        w->srv = srv;
        uv_loop_init(&w->loop);
        w->mcp.index = (int)j;
        w->mcp.loop = &w->loop;
        w->mcp.mb = mailbox_new(&w->loop);
        if (w->mcp.mb == NULL)
            return ERR_NOMEM;
        srv->mcp_workers[j] = &w->mcp;
        h2o_context_init(&w->ctx, &w->loop, &srv->globalconf);
        h2o_linklist_init_anchor(&w->writers);
        h2o_linklist_init_anchor(&w->waiting);
        w->nlisteners = cfg->nlisteners;
        w->accept = calloc(cfg->nlisteners, sizeof(*w->accept));
        w->listeners = calloc(cfg->nlisteners, sizeof(*w->listeners));
        if (!w->accept || !w->listeners)
            return ERR_NOMEM;
        for (size_t i = 0; i < cfg->nlisteners; i++) {
            w->accept[i].ctx = &w->ctx;
            w->accept[i].hosts = srv->globalconf.hosts;
            w->accept[i].ssl_ctx = srv->ssl[i]; /* the worker's own reference */
            if (srv->ssl[i] != NULL)
                SSL_CTX_up_ref(srv->ssl[i]);
            w->listeners[i].fd = srv->fds[i][j];
            w->listeners[i].w = w;
        }
        if (cfg->http2) {
            struct h2_limits lim = {
                .max_streams = 100,
                .max_header_list = 64u * 1024u,
                .max_body = srv->globalconf.max_request_entity_size,
                /* what one HTTP/1.1 connection can make us hold, twice */
                .max_conn_body = 2 * srv->globalconf.max_request_entity_size,
                .idle_timeout_ms = 60000,
                .write_timeout_ms = cfg->write_timeout_ms,
                .handshake_timeout_ms = 10000,
                .reset_burst = 1000,
                .reset_rate = 33,
            };
            if ((w->h2 = h2_server_new(&w->loop, &lim)) == NULL)
                return ERR_NOMEM;
        }
        if (srv->auth) {
            struct err_info ei = {0};
            if (oauth_ctx_new(&w->loop, srv->master, srv->issuer, srv->cfg, &w->oauth, &ei) != 0) {
                log_error("auth", "worker %u: %s", j, ei.msg);
                return ERR_IO;
            }
        }
        if (srv->shared && shared_worker_new(&w->loop, w->mcp.mb, j == 0, &w->shared) != 0)
            return ERR_NOMEM;
        if (srv->store_name != NULL) {
            struct err_info ei = {0};
            if (store_caller_new(srv->cfg->store.sqlite, srv->store_pool, w->mcp.mb, &w->store,
                                 &ei) != 0) {
                log_error("store", "worker %u: %s", j, ei.msg);
                return ERR_IO;
            }
        }
        uv_timer_init(&w->loop, &w->keepalive);
        w->keepalive.data = w;
        if (cfg->sse_keepalive_ms)
            uv_timer_start(&w->keepalive, keepalive_cb, cfg->sse_keepalive_ms,
                           cfg->sse_keepalive_ms);
        uv_timer_init(&w->loop, &w->priming);
        w->priming.data = w;
        uv_timer_start(&w->priming, priming_cb, PRIMING_DELAY_MS / 2, PRIMING_DELAY_MS / 2);
        mailbox_post(w->mcp.mb, worker_start_cb, w);
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0)
            return ERR_IO;
    }
    srv->started = true;
    return 0;
}

/* The server whose master key and issuer make users' connect links (one per process). */
static struct server *link_server;

static int connect_link(int64_t user_id, const char *server, const char *scope, char *out,
                        size_t size)
{
    struct server *srv = link_server;
    if (srv == NULL || !srv->auth)
        return ERR_UNAVAILABLE;
    return oauth_upstream_start_url(srv->master, srv->issuer, user_id, server, scope,
                                    (int64_t)time(NULL), out, size);
}

static void worker_start_cb(void *arg)
{
    struct worker *w = arg;
    /* the vault stage's needs, on this thread (servers with auth.oauth need auth on, and with
       it the worker's store caller) */
    if (w->store != NULL && w->srv->auth) {
        link_server = w->srv;
        if (mcp_vault_attach(&w->loop, w->store, w->srv->cfg->outbound.ca_file, connect_link) != 0)
            log_error("vault",
                      "worker %d: cannot set up the vault stage; calls to servers with "
                      "auth.oauth are let through without a token",
                      w->mcp.index);
    }
}

struct mcp_worker **server_workers(struct server *srv, unsigned *n)
{
    *n = srv->nworkers;
    return srv->mcp_workers;
}

/* One accepted connection's libuv handle, counted so that shutdown knows when all are gone. */
struct conn {
    uv_tcp_t tcp; /* first: h2o hands this pointer back to conn_closed */
    struct worker *w;
};

static void conn_closed(uv_handle_t *h)
{
    struct conn *c = (struct conn *)h;
    c->w->open_conns--;
    free(c);
}

static void on_connection(uv_stream_t *listener, int status)
{
    struct listener *l = listener->data;
    if (status != 0)
        return;
    struct conn *c = malloc(sizeof(*c));
    if (c == NULL)
        return;
    c->w = l->w;
    uv_tcp_t *conn = &c->tcp;
    uv_tcp_init(listener->loop, conn);
    l->w->open_conns++;
    if (uv_accept(listener, (uv_stream_t *)conn) != 0) {
        uv_close((uv_handle_t *)conn, conn_closed);
        return;
    }
    uv_tcp_nodelay(conn, 1);
    h2o_socket_t *sock = h2o_uv_socket_create((uv_stream_t *)conn, conn_closed);
    size_t idx = (size_t)(l - l->w->listeners);
    if (l->w->h2 != NULL)
        h2_accept(l->w->h2, &l->w->accept[idx], sock);
    else
        h2o_accept(&l->w->accept[idx], sock);
}

static void worker_listen_cb(void *arg)
{
    struct worker *w = arg;
    for (size_t i = 0; i < w->nlisteners; i++) {
        struct listener *l = &w->listeners[i];
        uv_tcp_init(&w->loop, &l->handle);
        l->handle.data = l;
        if (uv_tcp_open(&l->handle, l->fd) != 0 ||
            uv_listen((uv_stream_t *)&l->handle, 4096, on_connection) != 0) {
            log_error("listen", "worker %d could not accept on fd %d", w->mcp.index, l->fd);
            continue;
        }
        l->open = true;
    }
}

void server_listen(struct server *srv)
{
    for (unsigned j = 0; j < srv->nworkers; j++)
        mailbox_post(srv->workers[j].mcp.mb, worker_listen_cb, &srv->workers[j]);
}

uint16_t server_port(struct server *srv, size_t i)
{
    return srv->ports[i];
}

static void worker_drain_cb(void *arg)
{
    struct worker *w = arg;
    w->draining = true;
    for (size_t i = 0; i < w->nlisteners; i++)
        if (w->listeners[i].open) {
            uv_close((uv_handle_t *)&w->listeners[i].handle, NULL);
            w->listeners[i].open = false;
            w->listeners[i].fd = -1; /* closed with the handle */
        }
}

void server_drain(struct server *srv, uint32_t grace_ms)
{
    if (!srv->started)
        return;
    for (unsigned j = 0; j < srv->nworkers; j++)
        mailbox_post(srv->workers[j].mcp.mb, worker_drain_cb, &srv->workers[j]);
    unsigned busy = server_wait_idle(srv, grace_ms);
    if (busy)
        log_warn("drain",
                 "%u request(s) still in flight after %u ms; they will be answered with an error",
                 busy, grace_ms);
}

unsigned server_wait_idle(struct server *srv, uint32_t timeout_ms)
{
    uint64_t deadline = clock_now_ns() + (uint64_t)timeout_ms * 1000000u;
    for (;;) {
        unsigned busy = 0;
        for (unsigned j = 0; srv->started && j < srv->nworkers; j++)
            busy += atomic_load(&srv->workers[j].inflight);
        if (busy == 0 || clock_now_ns() >= deadline)
            return busy;
        usleep(10000);
    }
}

void server_reconfigure(struct server *srv, struct config *cfg)
{
    pthread_mutex_lock(&srv->cfg_lock);
    struct config *old = srv->cfg;
    srv->cfg = config_ref(cfg);
    atomic_fetch_add(&srv->cfg_gen, 1);
    pthread_mutex_unlock(&srv->cfg_lock);
    config_unref(old);
}

static void close_walk_cb(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

#define SHUTDOWN_WAIT_MS 4000 /* connections and upstream transports get this long to close */

static void shutdown_poll_cb(uv_timer_t *t)
{
    struct worker *w = t->data;
    bool quiet = w->open_conns == 0 && transport_live_count() <= 0 && framing_lingering() == 0;
    if (!quiet && clock_now_ns() < w->shutdown_deadline)
        return;
    if (!quiet) {
        log_warn(
            "shutdown",
            "worker %d: %u connection(s) and %d upstream transport(s) still open after %d ms; stopping anyway",
            w->mcp.index, w->open_conns, transport_live_count(), SHUTDOWN_WAIT_MS);
        uv_stop(&w->loop);
        return;
    }
    /* Everything that carried traffic is closed: close our handles and stop; server_free closes
       h2o's own timers. (h2o_context_dispose is not used: in h2o 2.2 it asserts that every
       timeout list is empty, and a closed connection can leave an entry behind.) */
    uv_close((uv_handle_t *)&w->shutdown_poll, NULL);
    mailbox_close(w->mcp.mb);
    w->mailbox_closed = true;
    uv_stop(&w->loop);
}

/* On the worker: stop accepting, ask h2o to close its connections, and wait (bounded) until
   they and the upstream transports (closed by gateway_stop) are gone. */
static void worker_stop_cb(void *arg)
{
    struct worker *w = arg;
    worker_drain_cb(w);
    oauth_ctx_shutdown(w->oauth);
    mcp_vault_detach();
    shared_worker_stop(w->shared);
    w->shared = NULL;
    uv_close((uv_handle_t *)&w->keepalive, NULL);
    uv_close((uv_handle_t *)&w->priming, NULL);
    h2o_context_request_shutdown(&w->ctx);
    /* h2o 2.2 closes an idle HTTP/1 keep-alive connection only when its request timeout
       expires (and an HTTP/2 one on its idle timeout): make them expire now, so that idle
       clients do not hold the shutdown for seconds. Busy connections close after their
       response, keep-alive being off once shutdown is requested. */
    w->ctx.http1.req_timeout.timeout = 0;
    h2o_timeout_run(&w->loop, &w->ctx.http1.req_timeout, h2o_now(&w->loop));
    if (w->h2 != NULL)
        h2_server_shutdown(w->h2); /* GOAWAY; each connection closes when its streams end */
    w->shutdown_deadline = clock_now_ns() + (uint64_t)SHUTDOWN_WAIT_MS * 1000000u;
    uv_timer_init(&w->loop, &w->shutdown_poll);
    w->shutdown_poll.data = w;
    uv_timer_start(&w->shutdown_poll, shutdown_poll_cb, 10, 10);
}

void server_free(struct server *srv)
{
    if (srv == NULL)
        return;
    if (srv->started) {
        for (unsigned j = 0; j < srv->nworkers; j++)
            mailbox_post(srv->workers[j].mcp.mb, worker_stop_cb, &srv->workers[j]);
        for (unsigned j = 0; j < srv->nworkers; j++)
            pthread_join(srv->workers[j].thread, NULL);
    }
    if (srv->store_pool != NULL) { /* the loops have stopped: nothing submits any more */
        session_table_use_caller(NULL);
        store_pool_free(srv->store_pool);
        srv->store_pool = NULL;
    }
    for (unsigned j = 0; srv->workers && j < srv->nworkers; j++) {
        struct worker *w = &srv->workers[j];
        if (w->mcp.mb == NULL)
            continue;
        /* Close what is left (h2o's timers; after a timed-out wait, connections too) and let
           the close callbacks run. */
        if (!w->mailbox_closed)
            mailbox_close(w->mcp.mb);
        uv_walk(&w->loop, close_walk_cb, NULL);
        uv_run(&w->loop, UV_RUN_DEFAULT);
        uv_loop_close(&w->loop);
        /* What h2o_context_dispose would free, without it (see worker_stop_cb): the cached Date
           string, the module configs, the pathconf list, the file cache, and the message
           queue (its async handle closed by the walk above; allocated by h2o with calloc). */
        if (w->ctx._timestamp_cache.value != NULL) {
            h2o_mem_release_shared(w->ctx._timestamp_cache.value);
            w->ctx._timestamp_cache.value = NULL;
        }
        free(w->ctx._module_configs);
        free(w->ctx._pathconfs_inited.entries);
        if (w->ctx.filecache != NULL)
            h2o_filecache_destroy(w->ctx.filecache);
        free(w->ctx.queue);
        w->ctx._module_configs = NULL;
        w->ctx._pathconfs_inited.entries = NULL;
        w->ctx.filecache = NULL;
        w->ctx.queue = NULL;
        mcp_worker_release(&w->mcp);
        oauth_ctx_free(w->oauth);
        store_caller_free(w->store);
        if (w->cfg)
            config_unref(w->cfg);
        for (size_t i = 0; w->accept && i < w->nlisteners; i++)
            SSL_CTX_free(w->accept[i].ssl_ctx); /* NULL for plain listeners */
        free(w->accept);
        free(w->listeners);
        h2_server_free(w->h2);
    }
    for (size_t i = 0; srv->listen_cfg && i < srv->listen_cfg->nlisteners; i++) {
        if (srv->fds && srv->fds[i]) {
            for (unsigned j = 0; j < srv->nworkers; j++)
                if (srv->fds[i][j] >= 0 && !(srv->workers && srv->workers[j].listeners))
                    close(srv->fds[i][j]);
            free(srv->fds[i]);
        }
        if (srv->ssl && srv->ssl[i])
            SSL_CTX_free(srv->ssl[i]);
    }
    for (size_t i = 0; srv->locks && i < srv->nlocks; i++)
        if (srv->locks[i] >= 0)
            close(srv->locks[i]);
    free(srv->locks);
    free(srv->fds);
    free(srv->ssl);
    free(srv->ports);
    free(srv->workers);
    free(srv->mcp_workers);
    h2o_config_dispose(&srv->globalconf);
    config_unref(srv->cfg);
    if (srv->listen_cfg)
        config_unref(srv->listen_cfg);
    pthread_mutex_destroy(&srv->cfg_lock);
    sodium_memzero(srv->master, sizeof(srv->master));
    vault_release();
    if (srv->shared)
        shared_release();
    free(srv);
}
