/*
 * The Streamable HTTP upstream transport (MCP 2025-11-25 "Streamable HTTP"), with a fallback to
 * the 2024-11-05 HTTP+SSE transport. Each transport_send is one POST ("exchange"); its answer is
 * 202, a JSON body, or an SSE stream whose events are delivered as they arrive. An optional GET
 * stream carries server-initiated messages; DELETE ends the session on close. A POST's SSE stream
 * that ends before its response, after an event with an id, is resumed by a GET with
 * Last-Event-ID after the stream's `retry` (resume_later): the same exchange, a new transfer.
 *
 * libcurl's multi interface is driven by the transport's libuv loop: curl tells us which sockets
 * to watch (uv_poll_t each) and when to time out (one uv_timer_t), we call
 * curl_multi_socket_action when they fire. One curl multi per transport for now; the next step
 * is one multi per worker loop shared by all HTTP transports on it (connection reuse across
 * upstreams on the same origin, fewer timers).
 *
 * Re-entrancy. User callbacks (message_cb, done_cb, state_cb) may call back into the transport
 * (send, cancel, close). curl forbids adding or removing handles inside its callbacks, and we
 * must not free what is on the stack, so every entry from the loop runs between enter() and
 * leave(): while `busy`, API calls only record their intent (queue, mark cancelled, mark
 * closing) and leave() carries it out once the outermost frame unwinds.
 *
 * Timeouts per exchange, on one uv timer each: first byte (from send to the first response
 * header byte), idle (no byte for idle_ms once the response started), total (whole exchange, not
 * for the GET stream). Connect uses CURLOPT_CONNECTTIMEOUT_MS.
 *
 * Fallback (2024-11-05 HTTP+SSE). When the very first POST, an `initialize`, gets 404 or 405 (or
 * 400 when no session id was sent), the server may be an old HTTP+SSE one: we GET the URL with
 * Accept: text/event-stream; if the stream's first useful event is `endpoint`, its data is a URL
 * resolved against the configured one and required to be on the same origin (another origin is
 * refused, so a server cannot point our POSTs, with their static headers, somewhere else). From
 * then on every message is POSTed there and done_cb(0) fires once the POST is accepted; the
 * server's answers arrive as `message` events on the GET stream and go to message_cb with
 * related = NULL. The parked initialize is re-sent that way. If that stream is lost the state
 * goes DOWN and the GET is retried with back-off; the new connection is a new session on the
 * server, so the mcp layer must initialise again. If no endpoint comes, the initialize fails
 * with the original HTTP error.
 *
 * State: STARTING until the first exchange gets a 2xx answer, then UP; DOWN when an exchange
 * gets no HTTP answer at all (refused, DNS, TLS, reset: ERR_UNAVAILABLE) or 502/503/504, and UP
 * again with the next 2xx. Other 4xx/5xx fail only their exchange (ERR_PROTOCOL).
 *
 * Safety: no redirects are followed, only http/https, no proxy from the environment, the session
 * id and protocol version are checked to be header-safe before they are echoed.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <sodium.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/log.h"
#include "upstream/sse.h"
#include "upstream/transport-int.h"
#include "upstream/curl_loop.h"
#include "upstream/lines.h"
#include "upstream/upstream.h"

#define HTTP_QUEUE_FACTOR 4             /* queued exchanges allowed per unit of concurrency */
#define HTTP_ANSWERS_QUEUED_MAX 65536   /* more queued answers to the server's own requests */
#define HTTP_ERROR_BODY_MAX (64 * 1024) /* bytes of a non-2xx body kept for diagnosis */
#define HTTP_WHY_BODY 200               /* bytes of an error body quoted in `why` */
#define HTTP_SESSION_ID_MAX 1024
#define HTTP_DELETE_MS 1000        /* best-effort DELETE on close */
#define HTTP_KEEPALIVE_IDLE_S 30   /* long-lived streams: TCP keep-alive probes after 30 s idle */
#define HTTP_KEEPALIVE_INTVL_S 10  /* and every 10 s after that */
#define HTTP_RECONNECT_MIN_MS 1000 /* GET stream back-off, doubled up to the cap */
#define HTTP_RECONNECT_MAX_MS 30000
#define HTTP_RECONNECT_SERVER_MAX_MS 300000 /* a server's `retry` is honoured up to this */
#define HTTP_RESUME_MAX 8 /* GETs that resume one POST's stream before it fails unanswered */

enum ex_kind {
    EX_POST,       /* transport_send */
    EX_GET,        /* transport_listen's stream */
    EX_LEGACY_GET, /* the 2024-11-05 HTTP+SSE stream */
    EX_DELETE,     /* session end on close */
};

enum body_mode {
    BODY_NONE = 0, /* headers not complete yet */
    BODY_JSON,     /* 2xx application/json: buffered up to max_message */
    BODY_SSE,      /* 2xx text/event-stream: parsed as it arrives */
    BODY_OTHER,    /* anything else: kept up to HTTP_ERROR_BODY_MAX for the error message */
};

enum http_mode {
    MODE_STREAMABLE = 0,
    MODE_LEGACY_PROBING, /* HTTP+SSE GET open (or retrying), waiting for `endpoint` */
    MODE_LEGACY,         /* HTTP+SSE endpoint known */
};

enum close_phase { CLOSE_NONE = 0, CLOSE_REQUESTED, CLOSE_DELETING, CLOSE_FINAL };

struct http_transport;

struct exchange {
    struct http_transport *t;
    struct exchange *prev, *next; /* in t->active (started, any kind) or t->queue (POST) */
    enum ex_kind kind;
    void *related;
    char *body; /* compact JSON for POST */
    size_t body_len;
    bool is_initialize; /* a POST of method "initialize": may trigger the fallback */
    char www_auth[512]; /* the response's WWW-Authenticate (the first), or "" */
    bool long_lived;    /* subscriptions/listen: a stream, not an exchange (no total or idle
                           deadline once it started; TCP keep-alive finds a dead peer) */
    char *mirror[3];    /* 2026-07-28 request: its MCP-Protocol-Version, Mcp-Method, Mcp-Name */
    struct curl_slist *param_lines; /* and the call's outbound headers (transport_send_call) */
    bool parked;                    /* the initialize waiting for the HTTP+SSE endpoint */
    /* Resumption (2025-11-25): a POST's SSE stream that ends before its response, after an event
       with an id, is continued by a GET with Last-Event-ID once the server's `retry` has passed.
       The exchange stays the same (same related, same done_cb); only its transfer changes. */
    bool answered;       /* a JSON-RPC response arrived on this exchange */
    bool resuming;       /* the current (or next) transfer is the resuming GET */
    unsigned resumes;    /* resuming GETs started so far */
    char *resume_id;     /* the last event id of the stream, for Last-Event-ID */
    long long resume_ms; /* the last `retry` the stream sent, or -1 */

    CURL *easy;
    bool primed;                /* easy came from (and may go back to) post_pool */
    struct curl_slist *headers; /* this exchange's own header lines, or NULL when */
    struct header_set *hset;    /* it sends the transport's shared ones */
    char errbuf[CURL_ERROR_SIZE];
    bool sent_session;
    bool cancelled;    /* by transport_cancel or close: no done_cb, removed at settle */
    bool pause_wanted; /* transport_pause: the next bytes are refused (CURL_WRITEFUNC_PAUSE) */
    bool paused;       /* and libcurl holds the transfer paused */
    bool in_multi;

    uv_timer_t timer;        /* first byte / idle / total */
    uint64_t started;        /* uv_now at start */
    uint64_t total_deadline; /* 0 = none */
    bool first_byte;

    long status;
    enum body_mode mode;
    struct buf body_in;
    struct sse_parser own_sse;
    struct sse_parser *sse; /* &own_sse, or the transport's stream parser for GETs */

    int fail_err;   /* set when we abort the transfer ourselves */
    char *fail_why; /* why, FAIL_WHY_MAX bytes allocated by ex_fail: the exchange stays under
                       1 KiB, which glibc serves from its per-thread cache */
};

#define FAIL_WHY_MAX 512

#define EASY_POOL_MAX 32 /* idle curl easy handles kept for reuse (curl_easy_init is costly) */

/*
 * The header lines of a plain call POST (no mirror, no outbound lines), built once per session
 * and protocol version rather than formatted per request. Shared by reference: an exchange in
 * flight keeps the set it started with when the session changes under it.
 */
struct header_set {
    int refs;
    bool legacy;
    char *session_id; /* the key it was built for (NULL: none) */
    char *protocol_version;
    struct curl_slist *lines;
};

struct http_transport {
    struct transport base;
    uv_loop_t *loop;
    const struct config_server *srv;
    struct transport_cbs cbs;
    struct curl_loop cl; /* the multi handle on this loop (counts as one of open_handles) */
    CURL *easy_pool[EASY_POOL_MAX];
    int neasy_pool;
    /* Easy handles that ran a plain call POST, options kept (see ex_start): the next one sets
       only what differs per exchange. */
    CURL *post_pool[EASY_POOL_MAX];
    int npost_pool;
    struct header_set *post_headers; /* the current set of plain POSTs, or NULL */
    uv_timer_t listen_timer;         /* GET stream reconnect */
    uv_timer_t close_timer;          /* DELETE deadline */
    int open_handles;                /* uv handles not yet closed; freed when 0 after CLOSE_FINAL */

    enum transport_state state;
    char *session_id;
    char *protocol_version;

    struct exchange *active; /* started exchanges of every kind (or being reaped) */
    struct exchange *queue, *queue_tail;
    unsigned nactive, nqueued, cap; /* nactive counts POSTs only */

    int busy;
    enum close_phase closing;
    struct exchange *delete_ex;
    bool delete_done;

    /* GET stream (transport_listen) or HTTP+SSE stream */
    bool listening;      /* transport_listen asked for it */
    bool listen_refused; /* 405: the server has no GET stream */
    bool want_stream;    /* start the stream GET at the next settle */
    bool stream_healthy; /* the current stream got a 2xx event-stream */
    struct exchange *stream_ex;
    struct sse_parser stream_sse; /* persists across reconnects for Last-Event-ID and retry */
    uint64_t backoff_ms;

    enum http_mode mode;
    bool probed; /* the first POST got an answer: the fallback question is settled */
    bool legacy_established;
    char *legacy_endpoint;
    char probe_why[512]; /* the HTTP error that started the fallback */
};

static const struct transport_ops http_ops;

/* ---- small helpers ---------------------------------------------------------------------- */

static const char *srv_name(const struct http_transport *t)
{
    return t->srv->name ? t->srv->name : "?";
}

static bool callbacks_allowed(const struct http_transport *t)
{
    return t->closing == CLOSE_NONE;
}

static void set_state(struct http_transport *t, enum transport_state st, const char *why)
{
    if (t->state == st || !callbacks_allowed(t))
        return;
    t->state = st;
    log_info("upstream_state", "upstream %s is %s: %s", srv_name(t), transport_state_str(st), why);
    if (t->cbs.state_cb)
        t->cbs.state_cb(t->cbs.owner, st, why);
}

static void list_add(struct exchange **head, struct exchange *ex)
{
    ex->prev = NULL;
    ex->next = *head;
    if (*head)
        (*head)->prev = ex;
    *head = ex;
}

static void list_del(struct exchange **head, struct exchange *ex)
{
    if (ex->prev)
        ex->prev->next = ex->next;
    else
        *head = ex->next;
    if (ex->next)
        ex->next->prev = ex->prev;
    ex->prev = ex->next = NULL;
}

static void queue_push(struct http_transport *t, struct exchange *ex, bool front)
{
    ex->prev = ex->next = NULL;
    if (t->queue == NULL) {
        t->queue = t->queue_tail = ex;
    } else if (front) {
        ex->next = t->queue;
        t->queue->prev = ex;
        t->queue = ex;
    } else {
        ex->prev = t->queue_tail;
        t->queue_tail->next = ex;
        t->queue_tail = ex;
    }
    t->nqueued++;
}

static void queue_del(struct http_transport *t, struct exchange *ex)
{
    if (ex == t->queue_tail)
        t->queue_tail = ex->prev;
    list_del(&t->queue, ex);
    t->nqueued--;
}

/* Media type of a Content-Type value equals `want` (case-insensitive, parameters ignored). */
static bool media_type_is(const char *ct, const char *want)
{
    if (ct == NULL)
        return false;
    size_t n = strlen(want);
    if (strncasecmp(ct, want, n) != 0)
        return false;
    return ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ' || ct[n] == '\t';
}

/* Copy up to `max` bytes of untrusted text for a message: controls become spaces, and a
   multi-byte UTF-8 sequence cut by the limit is dropped. */
static void quote_body(char *out, size_t outsz, const char *s, size_t len, size_t max)
{
    if (len > max) {
        len = max;
        while (len > 0 && ((unsigned char)s[len] & 0xC0) == 0x80)
            len--;
    }
    if (len >= outsz)
        len = outsz - 1;
    for (size_t i = 0; i < len; i++)
        out[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7F ? ' ' : s[i];
    out[len] = '\0';
}

/* A session id or protocol version goes back into a header: visible ASCII only. */
static bool header_safe(const char *s, size_t len, size_t max)
{
    if (len == 0 || len > max)
        return false;
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7E)
            return false;
    }
    return true;
}

/* ---- exchange lifecycle ------------------------------------------------------------------ */

static void ex_timer_closed(uv_handle_t *h);

static struct exchange *ex_new(struct http_transport *t, enum ex_kind kind, void *related)
{
    struct exchange *ex = calloc(1, sizeof(*ex));
    if (ex == NULL)
        return NULL;
    ex->t = t;
    ex->kind = kind;
    ex->related = related;
    uv_timer_init(t->loop, &ex->timer);
    ex->timer.data = ex;
    t->open_handles++;
    buf_init(&ex->body_in, 0);
    return ex;
}

static void header_set_unref(struct header_set *hs)
{
    if (hs == NULL || --hs->refs > 0)
        return;
    curl_slist_free_all(hs->lines);
    free(hs->session_id);
    free(hs->protocol_version);
    free(hs);
}

/* Clear the pointers into the exchange a primed handle holds, so nothing dangles while it waits
   in the pool. Returns curl's result. */
static CURLcode easy_unbind(CURL *e)
{
    CURLcode cc = curl_easy_setopt(e, CURLOPT_PRIVATE, NULL);
    if (cc == CURLE_OK)
        cc = curl_easy_setopt(e, CURLOPT_ERRORBUFFER, NULL);
    if (cc == CURLE_OK)
        cc = curl_easy_setopt(e, CURLOPT_HTTPHEADER, NULL);
    if (cc == CURLE_OK)
        cc = curl_easy_setopt(e, CURLOPT_HEADERDATA, NULL);
    if (cc == CURLE_OK)
        cc = curl_easy_setopt(e, CURLOPT_WRITEDATA, NULL);
    if (cc == CURLE_OK)
        cc = curl_easy_setopt(e, CURLOPT_POSTFIELDS, NULL);
    return cc;
}

/* Drop the curl side and the response state (the exchange may be started again: fallback). */
static void ex_reset_transfer(struct exchange *ex)
{
    struct http_transport *t = ex->t;
    if (ex->easy) {
        if (ex->in_multi && t->cl.multi)
            curl_multi_remove_handle(t->cl.multi, ex->easy);
        /* A primed handle goes back primed, unless the transfer was ever paused (curl keeps
           pause state on the handle) or the transport's mode or URL changed since. */
        if (ex->primed && !ex->paused && !ex->pause_wanted && t->cl.multi &&
            t->closing == CLOSE_NONE && t->mode != MODE_LEGACY && t->npost_pool < EASY_POOL_MAX &&
            easy_unbind(ex->easy) == CURLE_OK) {
            t->post_pool[t->npost_pool++] = ex->easy;
        } else if (t->cl.multi && t->closing == CLOSE_NONE && t->neasy_pool < EASY_POOL_MAX) {
            curl_easy_reset(ex->easy); /* every option goes; connections stay in the multi */
            t->easy_pool[t->neasy_pool++] = ex->easy;
        } else {
            curl_easy_cleanup(ex->easy);
        }
        ex->easy = NULL;
    }
    ex->primed = false;
    ex->in_multi = false;
    curl_slist_free_all(ex->headers);
    ex->headers = NULL;
    header_set_unref(ex->hset);
    ex->hset = NULL;
    uv_timer_stop(&ex->timer);
    buf_release(&ex->body_in);
    if (ex->sse == &ex->own_sse)
        sse_parser_release(&ex->own_sse);
    ex->sse = NULL;
    ex->mode = BODY_NONE;
    ex->status = 0;
    ex->first_byte = false;
    ex->fail_err = 0;
    free(ex->fail_why);
    ex->fail_why = NULL;
    ex->errbuf[0] = '\0';
}

/* Free: the memory goes when the timer handle has closed. */
static void ex_free(struct exchange *ex)
{
    ex_reset_transfer(ex);
    free(ex->body);
    ex->body = NULL;
    free(ex->resume_id);
    ex->resume_id = NULL;
    for (int i = 0; i < 3; i++) {
        free(ex->mirror[i]);
        ex->mirror[i] = NULL;
    }
    curl_slist_free_all(ex->param_lines);
    ex->param_lines = NULL;
    uv_close((uv_handle_t *)&ex->timer, ex_timer_closed);
}

/* Take an active exchange out of the books and free it. */
static void ex_detach(struct exchange *ex)
{
    struct http_transport *t = ex->t;
    list_del(&t->active, ex);
    if (ex->kind == EX_POST)
        t->nactive--;
    if (ex == t->stream_ex)
        t->stream_ex = NULL;
    if (ex == t->delete_ex) {
        t->delete_ex = NULL;
        t->delete_done = true;
    }
    ex_free(ex);
}

static void ex_fail(struct exchange *ex, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static const char *ex_fail_why(const struct exchange *ex)
{
    return ex->fail_why ? ex->fail_why : "out of memory";
}

static void ex_fail(struct exchange *ex, int err, const char *fmt, ...)
{
    if (ex->fail_err)
        return; /* the first cause wins */
    if (ex->fail_why == NULL && (ex->fail_why = malloc(FAIL_WHY_MAX)) == NULL) {
        ex->fail_err = err;
        return; /* reported as "out of memory" (ex_fail_why) */
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ex->fail_why, FAIL_WHY_MAX, fmt, ap);
    va_end(ap);
    ex->fail_err = err;
}

/* ---- the per-exchange timer ---------------------------------------------------------------- */

static void ex_timer_cb(uv_timer_t *h);
static void ex_finish(struct exchange *ex, int err, const char *why);
static void stream_done(struct exchange *ex, CURLcode cc);
static void enter(struct http_transport *t);
static void leave(struct http_transport *t);

/* (Re)arm for the current phase: first byte or idle, bounded by the total deadline. */
static void ex_arm_timer(struct exchange *ex)
{
    const struct config_timeouts *to = &ex->t->srv->timeouts;
    uint64_t now = uv_now(ex->t->loop);
    /* The HTTP+SSE stream is the old transport's session: silence there is not a failure. */
    uint64_t phase = !ex->first_byte                               ? to->first_byte_ms
                     : ex->kind == EX_LEGACY_GET || ex->long_lived ? 0
                     : ex->paused ? 0 /* silent because the gateway stopped reading */
                                  : to->idle_ms;
    uint64_t due = phase ? now + phase : 0;
    if (ex->total_deadline && (due == 0 || ex->total_deadline < due))
        due = ex->total_deadline;
    if (due == 0) {
        uv_timer_stop(&ex->timer);
        return;
    }
    uv_timer_start(&ex->timer, ex_timer_cb, due > now ? due - now : 0, 0);
}

static void ex_timer_cb(uv_timer_t *h)
{
    struct exchange *ex = h->data;
    struct http_transport *t = ex->t;
    const struct config_timeouts *to = &t->srv->timeouts;
    char why[256];
    enter(t);
    if (ex->total_deadline && uv_now(t->loop) >= ex->total_deadline)
        snprintf(why, sizeof(why), "upstream %s did not complete the exchange within %u ms",
                 srv_name(t), (unsigned)to->total_ms);
    else if (!ex->first_byte)
        snprintf(why, sizeof(why), "no first byte from upstream %s within %u ms", srv_name(t),
                 (unsigned)to->first_byte_ms);
    else
        snprintf(why, sizeof(why), "upstream %s sent nothing for %u ms (idle stream)", srv_name(t),
                 (unsigned)to->idle_ms);
    if (ex->kind == EX_GET || ex->kind == EX_LEGACY_GET) {
        ex_fail(ex, ERR_TIMEOUT, "%s", why);
        stream_done(ex, CURLE_OK);
    } else {
        ex_finish(ex, ERR_TIMEOUT, why);
    }
    leave(t);
}

static void mark_bytes(struct exchange *ex)
{
    ex->first_byte = true;
    ex_arm_timer(ex);
}

/* ---- message delivery ------------------------------------------------------------------- */

static void deliver(struct exchange *ex, json_t *msg, void *related)
{
    struct http_transport *t = ex->t;
    if (!callbacks_allowed(t) || ex->cancelled)
        return;
    if (!json_is_object(msg)) {
        log_warn("upstream_bad_message",
                 "upstream %s sent a JSON-RPC message that is not an "
                 "object; skipped",
                 srv_name(t));
        return;
    }
    if (ex->kind == EX_POST && json_object_get(msg, "method") == NULL &&
        (json_object_get(msg, "result") != NULL || json_object_get(msg, "error") != NULL))
        ex->answered = true;
    if (t->cbs.message_cb)
        t->cbs.message_cb(t->cbs.owner, msg, related);
}

/* Deliver an object, or each element of an array (a batch from an older server). */
static void deliver_json(struct exchange *ex, json_t *v, void *related)
{
    if (json_is_array(v)) {
        size_t i;
        json_t *m;
        json_array_foreach(v, i, m)
        {
            deliver(ex, m, related);
            if (ex->cancelled || !callbacks_allowed(ex->t))
                break;
        }
    } else {
        deliver(ex, v, related);
    }
}

static int on_endpoint(struct exchange *ex, const char *data, size_t len);

static int sse_event(void *arg, const char *type, const char *data, size_t len, const char *id,
                     long long retry_ms)
{
    struct exchange *ex = arg;
    struct http_transport *t = ex->t;
    if (ex->kind == EX_LEGACY_GET && strcmp(type, "endpoint") == 0)
        return on_endpoint(ex, data, len);
    if (strcmp(type, "message") != 0) {
        log_debug("upstream_sse_event", "upstream %s: SSE event of type %s ignored", srv_name(t),
                  type);
        return 0;
    }
    size_t i = 0;
    while (i < len && isspace((unsigned char)data[i]))
        i++;
    if (i == len)
        return 0; /* an empty event (servers prime Last-Event-ID with one) */
    json_error_t jerr;
    json_t *v = json_loadb(data, len, JSON_ALLOW_NUL, &jerr);
    if (v == NULL) {
        /* The cause and the size, never the bytes: they may be a tool's secret output. */
        char reason[JSON_ERROR_TEXT_LENGTH], why[256];
        snprintf(why, sizeof(why), "an SSE message that is not JSON: %s (byte %d of %zu)",
                 line_json_reason(reason, sizeof(reason), &jerr), jerr.position, len);
        log_warn("upstream_bad_message", "upstream %s sent %s; skipped", srv_name(t), why);
        if (t->cbs.bad_message_cb != NULL)
            t->cbs.bad_message_cb(t->cbs.owner, ex->kind == EX_POST ? ex->related : NULL,
                                  line_find_id(data, len), why);
        return ex->cancelled || !callbacks_allowed(t) ? ERR_CANCELLED : 0;
    }
    /* On the POST stream the messages belong to the exchange; elsewhere to nobody. */
    deliver_json(ex, v, ex->kind == EX_POST ? ex->related : NULL);
    json_decref(v);
    return ex->cancelled || !callbacks_allowed(t) ? ERR_CANCELLED : 0;
}

/* ---- curl callbacks (no handle may be added or removed in here) ------------------------------ */

static void classify(struct exchange *ex)
{
    struct http_transport *t = ex->t;
    char *ct = NULL;
    curl_easy_getinfo(ex->easy, CURLINFO_RESPONSE_CODE, &ex->status);
    curl_easy_getinfo(ex->easy, CURLINFO_CONTENT_TYPE, &ct);
    bool ok = ex->status >= 200 && ex->status < 300;
    size_t max_msg = t->srv->max_message ? t->srv->max_message : 16 * 1024 * 1024;
    buf_release(&ex->body_in);
    if (ok && media_type_is(ct, "text/event-stream")) {
        ex->mode = BODY_SSE;
        if (ex->sse == NULL) {
            sse_parser_init(&ex->own_sse, max_msg + 64);
            ex->sse = &ex->own_sse;
        }
    } else if (ok && media_type_is(ct, "application/json")) {
        ex->mode = BODY_JSON;
        buf_init(&ex->body_in, max_msg);
    } else {
        ex->mode = BODY_OTHER;
        buf_init(&ex->body_in, HTTP_ERROR_BODY_MAX);
    }
    if (ok && ex->kind == EX_POST && t->mode != MODE_LEGACY_PROBING)
        set_state(t, TRANSPORT_UP, "upstream answered");
    if (ex->mode == BODY_SSE && ex->kind == EX_GET)
        t->backoff_ms = HTTP_RECONNECT_MIN_MS; /* a working stream: start the back-off over */
}

static size_t header_cb(char *b, size_t size, size_t n, void *ud)
{
    struct exchange *ex = ud;
    struct http_transport *t = ex->t;
    size_t len = size * n;
    if (!ex->first_byte)
        mark_bytes(ex);
    if (len >= 5 && memcmp(b, "HTTP/", 5) == 0) {
        ex->mode = BODY_NONE; /* a new response (after 100 Continue) */
        ex->www_auth[0] = '\0';
        return len;
    }
    static const char wa[] = "www-authenticate:";
    if (len > sizeof(wa) - 1 && strncasecmp(b, wa, sizeof(wa) - 1) == 0 && !ex->www_auth[0]) {
        const char *v = b + sizeof(wa) - 1, *end = b + len;
        while (v < end && (*v == ' ' || *v == '\t'))
            v++;
        while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
            end--;
        size_t vl =
            (size_t)(end - v) < sizeof(ex->www_auth) ? (size_t)(end - v) : sizeof(ex->www_auth) - 1;
        memcpy(ex->www_auth, v, vl);
        ex->www_auth[vl] = '\0';
        return len;
    }
    if (len <= 2 && (b[0] == '\r' || b[0] == '\n')) {
        long status = 0;
        curl_easy_getinfo(ex->easy, CURLINFO_RESPONSE_CODE, &status);
        if (status >= 200)
            classify(ex);
        return len;
    }
    static const char name[] = "mcp-session-id:";
    if (ex->kind != EX_DELETE && len > sizeof(name) - 1 &&
        strncasecmp(b, name, sizeof(name) - 1) == 0 && t->session_id == NULL) {
        const char *v = b + sizeof(name) - 1, *end = b + len;
        while (v < end && (*v == ' ' || *v == '\t'))
            v++;
        while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
            end--;
        if (header_safe(v, (size_t)(end - v), HTTP_SESSION_ID_MAX)) {
            t->session_id = strndup(v, (size_t)(end - v));
            log_debug("upstream_session", "upstream %s gave a session id", srv_name(t));
        } else {
            log_warn("upstream_bad_session",
                     "upstream %s sent an Mcp-Session-Id that is not "
                     "1-%d visible ASCII characters; ignored",
                     srv_name(t), HTTP_SESSION_ID_MAX);
        }
    }
    return len;
}

static size_t write_cb(char *p, size_t size, size_t n, void *ud)
{
    struct exchange *ex = ud;
    struct http_transport *t = ex->t;
    size_t len = size * n;
    if (ex->cancelled || t->closing != CLOSE_NONE)
        return 0; /* abort the transfer */
    if (ex->pause_wanted && ex->mode == BODY_SSE) {
        /* Back-pressure: nothing of this chunk is taken; libcurl delivers it again once
           transport_resume unpauses the transfer. */
        ex->paused = true;
        ex_arm_timer(ex);
        return CURL_WRITEFUNC_PAUSE;
    }
    mark_bytes(ex);
    if (ex->mode == BODY_NONE)
        classify(ex);
    int err;
    switch (ex->mode) {
    case BODY_SSE:
        err = ex->sse ? sse_parser_feed(ex->sse, p, len, sse_event, ex) : ERR_INTERNAL;
        if (err == ERR_LIMIT)
            ex_fail(ex, ERR_LIMIT,
                    "an SSE event from upstream %s exceeds max_message "
                    "(%zu bytes)",
                    srv_name(t), t->srv->max_message);
        else if (err && err != ERR_CANCELLED)
            ex_fail(ex, err, "reading the SSE stream of upstream %s: %s", srv_name(t),
                    err_str(err));
        return err ? 0 : len;
    case BODY_JSON:
        err = buf_append(&ex->body_in, p, len);
        if (err == ERR_LIMIT)
            ex_fail(ex, ERR_LIMIT, "response from upstream %s exceeds max_message (%zu bytes)",
                    srv_name(t), ex->body_in.max);
        else if (err)
            ex_fail(ex, err, "buffering the response of upstream %s: %s", srv_name(t),
                    err_str(err));
        return err ? 0 : len;
    default:
        if (ex->body_in.len < ex->body_in.max) {
            size_t room = ex->body_in.max - ex->body_in.len;
            buf_append(&ex->body_in, p, len < room ? len : room);
        }
        return len; /* the rest of an error body is drained, not kept */
    }
}

/* ---- starting transfers ------------------------------------------------------------------- */

/* Append one whole header line, of any length (the mirror lines are not bounded by 2048). */
static int append_line(struct curl_slist **h, const char *line)
{
    struct curl_slist *nh = curl_slist_append(*h, line);
    if (nh == NULL)
        return ERR_NOMEM;
    *h = nh;
    return 0;
}

static int add_header(struct curl_slist **h, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int add_header(struct curl_slist **h, const char *fmt, ...)
{
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(line))
        return ERR_LIMIT;
    return append_line(h, line);
}

/* The header lines of a request of this kind, with these mirror and outbound lines, into *h.
 *sent_session says whether the session id is among them. */
static int build_headers(const struct http_transport *t, struct curl_slist **h, enum ex_kind kind,
                         char *const *mirror, const struct curl_slist *param_lines,
                         const char *last_id, bool *sent_session)
{
    const struct config_server *s = t->srv;
    bool legacy = t->mode != MODE_STREAMABLE;
    const char *accept = "application/json, text/event-stream";
    if (kind == EX_GET || kind == EX_LEGACY_GET)
        accept = "text/event-stream";
    if (kind == EX_GET && last_id == NULL)
        last_id = sse_parser_last_id(&t->stream_sse);
    int err = add_header(h, "Accept: %s", accept);
    if (!err && kind == EX_POST)
        err = add_header(h, "Content-Type: application/json");
    if (!err)
        err = add_header(h, "Expect:"); /* no 100-continue round trip */
    for (int i = 0; !err && i < 3 && mirror[i]; i++)
        err = append_line(h, mirror[i]);
    for (const struct curl_slist *l = param_lines; !err && l; l = l->next)
        err = append_line(h, l->data);
    /* A 2026-07-28 request is stateless: its own version, no session. */
    if (!err && t->protocol_version && !legacy && mirror[0] == NULL)
        err = add_header(h, "MCP-Protocol-Version: %s", t->protocol_version);
    if (!err && t->session_id && !legacy && mirror[0] == NULL) {
        err = add_header(h, "Mcp-Session-Id: %s", t->session_id);
        *sent_session = true;
    }
    if (!err && kind == EX_GET && last_id && header_safe(last_id, strlen(last_id), 1024))
        err = add_header(h, "Last-Event-ID: %s", last_id);
    for (size_t i = 0; !err && i < s->nheaders; i++) {
        if (s->headers[i].value[0] == '\0')
            err = add_header(h, "%s;", s->headers[i].key); /* curl's empty value */
        else
            err = add_header(h, "%s: %s", s->headers[i].key, s->headers[i].value);
    }
    return err;
}

static bool same_str(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

/* The shared header lines of a plain call POST for the transport's current session and version,
   with a reference for the caller (built when they changed); NULL when out of memory. */
static struct header_set *post_header_set(struct http_transport *t)
{
    struct header_set *hs = t->post_headers;
    bool legacy = t->mode != MODE_STREAMABLE;
    if (hs == NULL || hs->legacy != legacy || !same_str(hs->session_id, t->session_id) ||
        !same_str(hs->protocol_version, t->protocol_version)) {
        char *const no_mirror[3] = {NULL, NULL, NULL};
        bool sent = false;
        if ((hs = calloc(1, sizeof(*hs))) == NULL)
            return NULL;
        hs->refs = 1;
        hs->legacy = legacy;
        if ((t->session_id && (hs->session_id = strdup(t->session_id)) == NULL) ||
            (t->protocol_version && (hs->protocol_version = strdup(t->protocol_version)) == NULL) ||
            build_headers(t, &hs->lines, EX_POST, no_mirror, NULL, NULL, &sent) != 0) {
            header_set_unref(hs);
            return NULL;
        }
        header_set_unref(t->post_headers);
        t->post_headers = hs;
    }
    hs->refs++;
    return hs;
}

static int ex_start(struct exchange *ex)
{
    struct http_transport *t = ex->t;
    const struct config_timeouts *to = &t->srv->timeouts;
    const char *url = t->srv->url;
    int err = ERR_NOMEM;

    if (ex->kind == EX_POST && t->mode == MODE_LEGACY)
        url = t->legacy_endpoint;
    /* A plain call POST (to the configured URL, not a stream): its easy handle keeps every option
       that does not depend on the exchange from one call to the next, and its header lines are
       the transport's shared ones when it has no lines of its own. */
    bool plain = ex->kind == EX_POST && !ex->long_lived && !ex->resuming && t->mode != MODE_LEGACY;
    bool primed = plain && t->npost_pool > 0;
    if (primed)
        ex->easy = t->post_pool[--t->npost_pool];
    else
        ex->easy = t->neasy_pool > 0 ? t->easy_pool[--t->neasy_pool] : curl_easy_init();
    if (ex->easy == NULL)
        goto out;
    ex->primed = plain;
    struct curl_slist *lines = NULL;
    if (plain && ex->mirror[0] == NULL && ex->param_lines == NULL) {
        if ((ex->hset = post_header_set(t)) == NULL)
            goto out;
        lines = ex->hset->lines;
        if (t->session_id && t->mode == MODE_STREAMABLE)
            ex->sent_session = true;
    } else {
        if ((err = build_headers(t, &ex->headers, ex->resuming ? EX_GET : ex->kind, ex->mirror,
                                 ex->param_lines, ex->resume_id, &ex->sent_session)) != 0)
            goto out;
        lines = ex->headers;
    }

    CURL *e = ex->easy;
    CURLcode cc = CURLE_OK;
#define SETOPT(opt, val)                                                                           \
    do {                                                                                           \
        if (cc == CURLE_OK)                                                                        \
            cc = curl_easy_setopt(e, opt, val);                                                    \
    } while (0)
    SETOPT(CURLOPT_PRIVATE, ex);
    SETOPT(CURLOPT_ERRORBUFFER, ex->errbuf);
    SETOPT(CURLOPT_HTTPHEADER, lines);
    SETOPT(CURLOPT_HEADERDATA, ex);
    SETOPT(CURLOPT_WRITEDATA, ex);
    if (!primed) {
        SETOPT(CURLOPT_URL, url);
        SETOPT(CURLOPT_HEADERFUNCTION, header_cb);
        SETOPT(CURLOPT_WRITEFUNCTION, write_cb);
        if (cc == CURLE_OK)
            cc = curl_loop_easy_defaults(e);
        if (cc == CURLE_OK)
            cc = curl_loop_easy_attach(&t->cl, e);
        if (to->connect_ms)
            SETOPT(CURLOPT_CONNECTTIMEOUT_MS, (long)to->connect_ms);
    }
    switch (ex->kind) {
    case EX_POST:
        if (ex->resuming) {
            SETOPT(CURLOPT_HTTPGET, 1L);
            SETOPT(CURLOPT_TCP_KEEPALIVE, 1L);
            break;
        }
        if (!primed)
            SETOPT(CURLOPT_POST, 1L);
        if (ex->long_lived) {
            SETOPT(CURLOPT_TCP_KEEPALIVE, 1L);
            SETOPT(CURLOPT_TCP_KEEPIDLE, (long)HTTP_KEEPALIVE_IDLE_S);
            SETOPT(CURLOPT_TCP_KEEPINTVL, (long)HTTP_KEEPALIVE_INTVL_S);
        }
        SETOPT(CURLOPT_POSTFIELDS, ex->body);
        SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)ex->body_len);
        break;
    case EX_GET:
    case EX_LEGACY_GET:
        SETOPT(CURLOPT_HTTPGET, 1L);
        SETOPT(CURLOPT_TCP_KEEPALIVE, 1L);
        break;
    case EX_DELETE:
        SETOPT(CURLOPT_CUSTOMREQUEST, "DELETE");
        SETOPT(CURLOPT_TIMEOUT_MS, (long)HTTP_DELETE_MS);
        break;
    }
#undef SETOPT
    if (cc != CURLE_OK) {
        log_error("upstream_curl", "upstream %s: curl_easy_setopt: %s", srv_name(t),
                  curl_easy_strerror(cc));
        err = ERR_INTERNAL;
        goto out;
    }
    if (ex->kind == EX_GET || ex->kind == EX_LEGACY_GET) {
        sse_parser_reset_stream(&t->stream_sse);
        ex->sse = &t->stream_sse;
    }
    ex->started = uv_now(t->loop);
    if (!ex->resuming) /* a resumption keeps the deadline of the whole exchange */
        ex->total_deadline = 0;
    if (!ex->resuming && ex->kind == EX_POST && to->total_ms && !ex->long_lived)
        ex->total_deadline = ex->started + to->total_ms;
    if (ex->kind != EX_DELETE)
        ex_arm_timer(ex);
    if (curl_multi_add_handle(t->cl.multi, e) != CURLM_OK) {
        err = ERR_INTERNAL;
        goto out;
    }
    ex->in_multi = true;
    err = 0;
out:
    if (err) {
        ex->primed = false; /* a handle half set up is reset, not pooled primed */
        ex_reset_transfer(ex);
    }
    return err;
}

/* ---- completion ------------------------------------------------------------------------- */

static void stream_schedule(struct http_transport *t);

/* The end of an exchange: report (POST), then free. */
static void ex_finish(struct exchange *ex, int err, const char *why)
{
    struct http_transport *t = ex->t;
    if (ex->kind == EX_GET || ex->kind == EX_LEGACY_GET) {
        bool was_stream = ex == t->stream_ex;
        ex_detach(ex);
        if (was_stream && err)
            log_info("upstream_stream", "%s", why);
        if (was_stream)
            stream_schedule(t);
        return;
    }
    if (ex->kind == EX_DELETE) {
        log_debug("upstream_delete", "upstream %s: session DELETE %s", srv_name(t),
                  err ? why : "done");
        ex_detach(ex);
        return;
    }
    bool report = !ex->cancelled && callbacks_allowed(t);
    void *related = ex->related;
    char reason[1024] = "";
    if (why) /* it may live in the exchange */
        snprintf(reason, sizeof(reason), "%s", why);
    why = reason;
    ex_detach(ex);
    if (err == ERR_UNAVAILABLE)
        set_state(t, TRANSPORT_DOWN, why);
    else if (err == 0 && t->mode != MODE_LEGACY_PROBING)
        set_state(t, TRANSPORT_UP, "exchange completed");
    if (report && t->cbs.done_cb)
        t->cbs.done_cb(t->cbs.owner, related, err, err ? why : NULL);
}

static int curl_err_class(CURLcode cc)
{
    switch (cc) {
    case CURLE_OPERATION_TIMEDOUT:
        return ERR_TIMEOUT;
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_HTTP2:
    case CURLE_BAD_CONTENT_ENCODING:
        return ERR_PROTOCOL;
    case CURLE_OUT_OF_MEMORY:
        return ERR_NOMEM;
    default:
        return ERR_UNAVAILABLE; /* refused, DNS, TLS, reset, nothing received... */
    }
}

static void start_fallback(struct http_transport *t, struct exchange *ex, const char *why);

static void resume_timer_cb(uv_timer_t *h)
{
    struct exchange *ex = h->data;
    struct http_transport *t = ex->t;
    enter(t);
    if (!ex->cancelled && t->closing == CLOSE_NONE) {
        int err = ex_start(ex);
        if (err) {
            char why[256];
            snprintf(why, sizeof(why), "cannot resume the SSE stream of upstream %s: %s",
                     srv_name(t), err_str(err));
            ex_finish(ex, err, why);
        }
    }
    leave(t);
}

/*
 * A POST's SSE stream (or the GET resuming it) ended, or its connection was lost, before the
 * response. When the stream named an event id, the server can continue it (2025-11-25
 * "Resumability and Redelivery"): wait for its `retry` and GET with Last-Event-ID; the exchange
 * stays in t->active meanwhile. Returns false when the stream cannot be resumed: the exchange
 * then ends as before (unanswered, or with the broken stream's error).
 */
static bool resume_later(struct exchange *ex)
{
    struct http_transport *t = ex->t;
    if (ex->answered || ex->cancelled || ex->long_lived || ex->mirror[0] != NULL ||
        t->mode != MODE_STREAMABLE || t->closing != CLOSE_NONE || ex->sse == NULL)
        return false;
    const char *id = sse_parser_last_id(ex->sse);
    long long retry = sse_parser_retry(ex->sse);
    if (id != NULL) {
        char *copy = strdup(id);
        if (copy == NULL)
            return false;
        free(ex->resume_id);
        ex->resume_id = copy;
    }
    if (!ex->resuming)
        ex->resume_ms = -1;
    if (retry >= 0)
        ex->resume_ms = retry;
    if (ex->resume_id == NULL)
        return false;
    if (ex->resumes >= HTTP_RESUME_MAX) {
        log_warn("upstream_resume",
                 "upstream %s: the SSE stream of a request ended %u times without its answer; "
                 "giving up",
                 srv_name(t), ex->resumes + 1);
        return false;
    }
    uint64_t delay = ex->resume_ms < 0                              ? HTTP_RECONNECT_MIN_MS
                     : ex->resume_ms > HTTP_RECONNECT_SERVER_MAX_MS ? HTTP_RECONNECT_SERVER_MAX_MS
                                                                    : (uint64_t)ex->resume_ms;
    if (ex->total_deadline) {
        uint64_t now = uv_now(t->loop);
        if (now + delay >= ex->total_deadline)
            return false; /* no time left to resume in: ends unanswered */
    }
    ex_reset_transfer(ex);
    ex->resuming = true;
    ex->resumes++;
    log_info("upstream_resume",
             "upstream %s: the SSE stream of a request ended before its answer; resuming it with "
             "a GET (Last-Event-ID) in %llu ms",
             srv_name(t), (unsigned long long)delay);
    uv_timer_start(&ex->timer, resume_timer_cb, delay, 0);
    return true;
}

/* A POST's transfer ended with an HTTP answer (cc == OK) or not. */
static void post_done(struct exchange *ex, CURLcode cc)
{
    struct http_transport *t = ex->t;
    char why[768];
    const char *name = srv_name(t);

    if (ex->fail_err) {
        ex_finish(ex, ex->fail_err, ex_fail_why(ex));
        return;
    }
    if (cc != CURLE_OK) {
        int err = curl_err_class(cc);
        /* A connection lost in the middle of an SSE answer is a disconnection the server may let
           us resume, like a stream it ended. */
        if (err == ERR_UNAVAILABLE && ex->mode == BODY_SSE && ex->status >= 200 &&
            ex->status < 300 && resume_later(ex))
            return;
        if (err == ERR_TIMEOUT)
            snprintf(why, sizeof(why), "could not connect to upstream %s within %u ms", name,
                     (unsigned)t->srv->timeouts.connect_ms);
        else if (ex->mode == BODY_SSE)
            snprintf(why, sizeof(why), "the SSE stream of upstream %s broke: %s", name,
                     ex->errbuf[0] ? ex->errbuf : curl_easy_strerror(cc));
        else
            snprintf(why, sizeof(why), "upstream %s unreachable: %s", name,
                     ex->errbuf[0] ? ex->errbuf : curl_easy_strerror(cc));
        ex_finish(ex, err, why);
        return;
    }
    long st = ex->status;
    /* A 2026-07-28 probe (server/discover) that fails leaves the question open for the
       initialize that follows it. */
    bool first = !t->probed;
    if (ex->mirror[0] == NULL || (st >= 200 && st < 300))
        t->probed = true;
    if (st >= 200 && st < 300 && ex->mode == BODY_SSE && resume_later(ex))
        return;
    if (st >= 200 && st < 300) {
        if (ex->mode == BODY_JSON) {
            json_error_t jerr;
            json_t *v = json_loadb(ex->body_in.data ? ex->body_in.data : "", ex->body_in.len,
                                   JSON_ALLOW_NUL, &jerr);
            if (v == NULL) {
                char reason[JSON_ERROR_TEXT_LENGTH];
                snprintf(why, sizeof(why), "upstream %s sent invalid JSON: %s (byte %d of %zu)",
                         name, line_json_reason(reason, sizeof(reason), &jerr), jerr.position,
                         ex->body_in.len);
                ex_finish(ex, ERR_PROTOCOL, why);
                return;
            }
            deliver_json(ex, v, ex->related);
            json_decref(v);
        } else if (ex->mode == BODY_OTHER && ex->body_in.len > 0 && st != 202 &&
                   t->mode == MODE_STREAMABLE) {
            char *ct = NULL;
            curl_easy_getinfo(ex->easy, CURLINFO_CONTENT_TYPE, &ct);
            snprintf(why, sizeof(why),
                     "upstream %s answered HTTP %ld with Content-Type %s, "
                     "expected application/json or text/event-stream",
                     name, st, ct ? ct : "(none)");
            ex_finish(ex, ERR_PROTOCOL, why);
            return;
        }
        ex_finish(ex, 0, NULL);
        return;
    }

    char quoted[HTTP_WHY_BODY + 8];
    quote_body(quoted, sizeof(quoted), ex->body_in.data ? ex->body_in.data : "", ex->body_in.len,
               HTTP_WHY_BODY);
    if (st == 404 && ex->sent_session) {
        ex_finish(ex, ERR_NOTFOUND, "upstream session expired (HTTP 404)");
        return;
    }
    snprintf(why, sizeof(why), "HTTP %ld from upstream %s%s%s", st, name, quoted[0] ? ": " : "",
             quoted);
    if (first && ex->is_initialize && t->mode == MODE_STREAMABLE &&
        (st == 404 || st == 405 || (st == 400 && !ex->sent_session))) {
        start_fallback(t, ex, why);
        return;
    }
    /* The server refused the credential (or wants a wider one): its Bearer challenge is what
       the gateway's OAuth client acts on (docs/auth.md, "Upstream OAuth and the vault"). */
    if ((st == 401 || st == 403) && strncasecmp(ex->www_auth, "Bearer", 6) == 0) {
        snprintf(why, sizeof(why), "HTTP %ld from upstream %s" TRANSPORT_WWW_AUTH "%s", st, name,
                 ex->www_auth);
        ex_finish(ex, ERR_DENIED, why);
        return;
    }
    /* A JSON-RPC error response in the body is the server's answer: pass it on. */
    if (ex->body_in.len > 0) {
        json_t *v = json_loadb(ex->body_in.data, ex->body_in.len, JSON_ALLOW_NUL, NULL);
        bool is_error = json_is_object(v) && json_object_get(v, "error") != NULL &&
                        json_object_get(v, "result") == NULL;
        if (is_error)
            deliver(ex, v, ex->related);
        json_decref(v);
        if (is_error) {
            ex_finish(ex, 0, NULL);
            return;
        }
    }
    ex_finish(ex, st == 502 || st == 503 || st == 504 ? ERR_UNAVAILABLE : ERR_PROTOCOL, why);
}

/* The GET stream (listen or HTTP+SSE) ended. */
static void stream_done(struct exchange *ex, CURLcode cc)
{
    struct http_transport *t = ex->t;
    char why[768];
    long st = ex->status;
    bool legacy = ex->kind == EX_LEGACY_GET;
    bool broken = cc != CURLE_OK || ex->fail_err;

    if (ex->fail_err)
        snprintf(why, sizeof(why), "%s", ex_fail_why(ex));
    else if (cc != CURLE_OK)
        snprintf(why, sizeof(why), "the %s stream of upstream %s broke: %s",
                 legacy ? "HTTP+SSE" : "GET", srv_name(t),
                 ex->errbuf[0] ? ex->errbuf : curl_easy_strerror(cc));
    else if (st >= 200 && st < 300 && ex->mode == BODY_SSE)
        snprintf(why, sizeof(why), "the %s stream of upstream %s ended",
                 legacy ? "HTTP+SSE" : "GET", srv_name(t));
    else
        snprintf(why, sizeof(why), "upstream %s answered the %s stream with HTTP %ld%s",
                 srv_name(t), legacy ? "HTTP+SSE" : "GET", st,
                 ex->mode == BODY_SSE || st < 200 || st >= 300 ? "" : " (not text/event-stream)");

    if (!legacy) {
        if (!broken && st == 405) {
            log_debug("upstream_stream", "upstream %s offers no GET stream (HTTP 405)",
                      srv_name(t));
            t->listen_refused = true;
            t->listening = false;
        } else if (!broken && (st < 200 || st >= 300 || ex->mode != BODY_SSE) && st < 500) {
            log_warn("upstream_stream", "%s; not reconnecting", why);
            t->listening = false;
        }
        ex_finish(ex, broken ? ERR_UNAVAILABLE : 0, why);
        return;
    }

    /* HTTP+SSE. */
    if (t->mode == MODE_LEGACY_PROBING && !t->legacy_established) {
        /* The probe failed: the server is neither kind. Fail the parked initialize. */
        struct exchange *init = t->queue && t->queue->parked ? t->queue : NULL;
        t->mode = MODE_STREAMABLE;
        ex_detach(ex);
        if (init) {
            char msg[2048];
            snprintf(msg, sizeof(msg), "%s; and no HTTP+SSE endpoint either: %s", t->probe_why,
                     why);
            queue_del(t, init);
            void *related = init->related;
            ex_free(init);
            if (callbacks_allowed(t) && t->cbs.done_cb)
                t->cbs.done_cb(t->cbs.owner, related, ERR_PROTOCOL, msg);
        }
        return;
    }
    /* The old transport's session lives and dies with this stream. */
    free(t->legacy_endpoint);
    t->legacy_endpoint = NULL;
    t->mode = MODE_LEGACY_PROBING;
    set_state(t, TRANSPORT_DOWN, why);
    if (broken) {
        /* Nothing will drain the queue while the server is unreachable. */
        while (t->queue) {
            struct exchange *q = t->queue;
            void *related = q->related;
            queue_del(t, q);
            ex_free(q);
            if (callbacks_allowed(t) && t->cbs.done_cb)
                t->cbs.done_cb(t->cbs.owner, related, ERR_UNAVAILABLE, why);
        }
    }
    ex_finish(ex, ERR_UNAVAILABLE, why);
}

static void check_multi_info(struct http_transport *t)
{
    CURLMsg *m;
    int left;
    while (t->cl.multi && (m = curl_multi_info_read(t->cl.multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE)
            continue;
        char *priv = NULL;
        CURLcode cc = m->data.result;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &priv);
        struct exchange *ex = (struct exchange *)priv;
        if (ex == NULL)
            continue;
        /* Out of the multi before anything else, so nothing reports it twice. */
        curl_multi_remove_handle(t->cl.multi, ex->easy);
        ex->in_multi = false;
        if (ex->status == 0)
            curl_easy_getinfo(ex->easy, CURLINFO_RESPONSE_CODE, &ex->status);
        if (ex->cancelled) {
            ex_detach(ex);
            continue;
        }
        switch (ex->kind) {
        case EX_POST:
            post_done(ex, cc);
            break;
        case EX_GET:
        case EX_LEGACY_GET:
            stream_done(ex, cc);
            break;
        case EX_DELETE:
            ex_finish(ex, cc == CURLE_OK ? 0 : ERR_UNAVAILABLE, curl_easy_strerror(cc));
            break;
        }
    }
}

/* ---- the GET streams ---------------------------------------------------------------------- */

static void stream_timer_cb(uv_timer_t *h)
{
    struct http_transport *t = h->data;
    enter(t);
    t->want_stream = true;
    leave(t);
}

/* A stream ended: reconnect if still wanted, never in a tight loop. */
static void stream_schedule(struct http_transport *t)
{
    bool want = t->mode == MODE_STREAMABLE ? t->listening : t->mode == MODE_LEGACY_PROBING;
    if (!want || t->closing != CLOSE_NONE)
        return;
    uint64_t delay = t->backoff_ms;
    long long server = sse_parser_retry(&t->stream_sse);
    if (server > (long long)delay)
        delay =
            server > HTTP_RECONNECT_SERVER_MAX_MS ? HTTP_RECONNECT_SERVER_MAX_MS : (uint64_t)server;
    t->backoff_ms =
        t->backoff_ms * 2 > HTTP_RECONNECT_MAX_MS ? HTTP_RECONNECT_MAX_MS : t->backoff_ms * 2;
    log_debug("upstream_stream", "upstream %s: reconnecting the stream in %llu ms", srv_name(t),
              (unsigned long long)delay);
    uv_timer_start(&t->listen_timer, stream_timer_cb, delay, 0);
}

static int stream_start(struct http_transport *t)
{
    if (t->stream_ex || t->closing != CLOSE_NONE)
        return 0;
    enum ex_kind kind = t->mode == MODE_STREAMABLE ? EX_GET : EX_LEGACY_GET;
    struct exchange *ex = ex_new(t, kind, NULL);
    if (ex == NULL)
        return ERR_NOMEM;
    int err = ex_start(ex);
    if (err) {
        ex_free(ex);
        return err;
    }
    list_add(&t->active, ex);
    t->stream_ex = ex;
    return 0;
}

static int on_endpoint(struct exchange *ex, const char *data, size_t len)
{
    struct http_transport *t = ex->t;
    char *resolved = NULL, *s1 = NULL, *h1 = NULL, *p1 = NULL, *s2 = NULL, *h2 = NULL, *p2 = NULL;
    CURLU *base = curl_url(), *u = curl_url();
    char *rel = strndup(data, len);
    int err = ERR_NOMEM;
    if (base == NULL || u == NULL || rel == NULL)
        goto out;
    /* Trim the whitespace some servers put around the URL. */
    char *r = rel;
    while (isspace((unsigned char)*r))
        r++;
    for (size_t n = strlen(r); n > 0 && isspace((unsigned char)r[n - 1]); n--)
        r[n - 1] = '\0';
    err = ERR_PROTOCOL;
    if (curl_url_set(base, CURLUPART_URL, t->srv->url, 0) != CURLUE_OK ||
        curl_url_set(u, CURLUPART_URL, t->srv->url, 0) != CURLUE_OK ||
        curl_url_set(u, CURLUPART_URL, r, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_URL, &resolved, 0) != CURLUE_OK) {
        log_warn("upstream_legacy",
                 "upstream %s announced an HTTP+SSE endpoint that is not a "
                 "URL; ignored",
                 srv_name(t));
        goto out;
    }
    if (curl_url_get(base, CURLUPART_SCHEME, &s1, 0) || curl_url_get(u, CURLUPART_SCHEME, &s2, 0) ||
        curl_url_get(base, CURLUPART_HOST, &h1, 0) || curl_url_get(u, CURLUPART_HOST, &h2, 0) ||
        curl_url_get(base, CURLUPART_PORT, &p1, CURLU_DEFAULT_PORT) ||
        curl_url_get(u, CURLUPART_PORT, &p2, CURLU_DEFAULT_PORT) || strcasecmp(s1, s2) != 0 ||
        strcasecmp(h1, h2) != 0 || strcmp(p1, p2) != 0) {
        log_warn("upstream_legacy",
                 "upstream %s announced an HTTP+SSE endpoint on another "
                 "origin (%s://%s:%s); refused",
                 srv_name(t), s2 ? s2 : "?", h2 ? h2 : "?", p2 ? p2 : "?");
        goto out;
    }
    free(t->legacy_endpoint);
    t->legacy_endpoint = resolved;
    resolved = NULL;
    t->mode = MODE_LEGACY;
    t->legacy_established = true;
    t->backoff_ms = HTTP_RECONNECT_MIN_MS;
    log_info("upstream_legacy", "upstream %s speaks the 2024-11-05 HTTP+SSE transport",
             srv_name(t));
    err = 0; /* the parked initialize goes out at the next settle */
out:
    free(rel);
    curl_free(resolved);
    curl_free(s1);
    curl_free(h1);
    curl_free(p1);
    curl_free(s2);
    curl_free(h2);
    curl_free(p2);
    curl_url_cleanup(base);
    curl_url_cleanup(u);
    if (err == ERR_PROTOCOL)
        ex_fail(ex, ERR_PROTOCOL, "upstream %s announced an unusable HTTP+SSE endpoint",
                srv_name(t));
    return err;
}

static void start_fallback(struct http_transport *t, struct exchange *ex, const char *why)
{
    log_info("upstream_legacy", "%s to initialize; trying the 2024-11-05 HTTP+SSE transport", why);
    size_t n = strnlen(why, sizeof(t->probe_why) - 1);
    memcpy(t->probe_why, why, n);
    t->probe_why[n] = '\0';
    list_del(&t->active, ex);
    t->nactive--;
    ex_reset_transfer(ex);
    ex->parked = true;
    queue_push(t, ex, true);
    t->mode = MODE_LEGACY_PROBING;
    /* A GET stream of the new transport, if any, is not what we want now. */
    if (t->stream_ex)
        t->stream_ex->cancelled = true;
    t->stream_ex = NULL;
    sse_parser_release(&t->stream_sse);
    sse_parser_init(&t->stream_sse, (t->srv->max_message ? t->srv->max_message : 16 << 20) + 64);
    t->backoff_ms = HTTP_RECONNECT_MIN_MS;
    t->want_stream = true;
}

/* ---- settling deferred work ---------------------------------------------------------------- */

static void close_now(struct http_transport *t);
static void finish_close(struct http_transport *t);

static void enter(struct http_transport *t)
{
    t->busy++;
}

/* Start queued exchanges up to the cap. Returns true when something happened. */
static bool pump(struct http_transport *t)
{
    bool progress = false;
    if (t->want_stream && !t->stream_ex) {
        t->want_stream = false;
        progress = true;
        int err = stream_start(t);
        if (err) {
            log_warn("upstream_stream", "upstream %s: cannot open the stream: %s", srv_name(t),
                     err_str(err));
            stream_schedule(t);
        }
    }
    unsigned cap = t->cap;
    while (t->queue && t->nactive < cap && t->mode != MODE_LEGACY_PROBING &&
           t->closing == CLOSE_NONE) {
        struct exchange *ex = t->queue;
        queue_del(t, ex);
        ex->parked = false;
        progress = true;
        int err = ex_start(ex);
        if (err == 0) {
            list_add(&t->active, ex);
            t->nactive++;
            continue;
        }
        void *related = ex->related;
        ex_free(ex);
        if (callbacks_allowed(t) && t->cbs.done_cb) {
            char why[256];
            snprintf(why, sizeof(why), "cannot start a request to upstream %s: %s", srv_name(t),
                     err_str(err));
            t->cbs.done_cb(t->cbs.owner, related, err, why);
        }
    }
    return progress;
}

/* Remove exchanges cancelled while busy. */
static bool reap(struct http_transport *t)
{
    bool progress = false;
    struct exchange *ex = t->active, *next;
    for (; ex; ex = next) {
        next = ex->next;
        if (ex->cancelled) {
            ex_detach(ex);
            progress = true;
        }
    }
    return progress;
}

static void leave(struct http_transport *t)
{
    if (t->busy > 1) {
        t->busy--;
        return;
    }
    /* The outermost frame: carry out what callbacks asked for, still "busy" so that callbacks
       run from here defer again, until nothing is left to do. */
    for (;;) {
        if (t->closing == CLOSE_REQUESTED) {
            close_now(t);
            break;
        }
        if (t->closing == CLOSE_DELETING) {
            if (t->delete_done)
                finish_close(t);
            break;
        }
        if (t->closing == CLOSE_FINAL)
            break;
        bool progress = reap(t);
        progress |= pump(t);
        if (!progress)
            break;
    }
    t->busy--;
}

/* ---- exchange timers and the curl loop's callbacks ------------------------------------------ */

static void handle_gone(struct http_transport *t);

static void ex_timer_closed(uv_handle_t *h)
{
    struct exchange *ex = h->data;
    struct http_transport *t = ex->t;
    free(ex);
    handle_gone(t);
}

/* The curl loop's callbacks (src/upstream/curl_loop.h). */
static void curl_progress_cb(void *owner)
{
    check_multi_info(owner);
}

static void curl_enter_cb(void *owner)
{
    enter(owner);
}

static void curl_leave_cb(void *owner)
{
    leave(owner);
}

static void curl_closed_cb(void *owner)
{
    handle_gone(owner);
}

/* ---- close ----------------------------------------------------------------------------------- */

/* Every uv handle of the transport reports here when closed; the last one frees it. */
static void handle_gone(struct http_transport *t)
{
    if (--t->open_handles > 0 || t->closing != CLOSE_FINAL)
        return;
    sse_parser_release(&t->stream_sse);
    free(t->session_id);
    free(t->protocol_version);
    free(t->legacy_endpoint);
    free(t);
    transport_live_dec();
}

static void handle_closed(uv_handle_t *h)
{
    handle_gone(h->data);
}

static void close_timer_cb(uv_timer_t *h)
{
    struct http_transport *t = h->data;
    enter(t);
    if (t->closing == CLOSE_DELETING)
        finish_close(t);
    leave(t);
}

/* All transfers are gone (or the DELETE's time is up): drop curl, close every handle. */
static void finish_close(struct http_transport *t)
{
    if (t->closing == CLOSE_FINAL)
        return;
    t->closing = CLOSE_FINAL;
    if (t->delete_ex)
        ex_detach(t->delete_ex);
    curl_loop_close(&t->cl); /* its closed_cb counts as one handle gone */
    while (t->neasy_pool > 0)
        curl_easy_cleanup(t->easy_pool[--t->neasy_pool]);
    while (t->npost_pool > 0)
        curl_easy_cleanup(t->post_pool[--t->npost_pool]);
    header_set_unref(t->post_headers);
    t->post_headers = NULL;
    uv_close((uv_handle_t *)&t->listen_timer, handle_closed);
    uv_close((uv_handle_t *)&t->close_timer, handle_closed);
}

static void close_now(struct http_transport *t)
{
    t->closing = CLOSE_DELETING;
    t->state = TRANSPORT_STOPPED;
    uv_timer_stop(&t->listen_timer);
    while (t->active) {
        struct exchange *ex = t->active;
        ex->cancelled = true;
        ex_detach(ex);
    }
    while (t->queue) {
        struct exchange *ex = t->queue;
        queue_del(t, ex);
        ex_free(ex);
    }

    t->delete_done = true;
    if (t->session_id && t->mode == MODE_STREAMABLE) {
        struct exchange *ex = ex_new(t, EX_DELETE, NULL);
        if (ex && ex_start(ex) == 0) {
            list_add(&t->active, ex);
            t->delete_ex = ex;
            t->delete_done = false;
            uv_timer_start(&t->close_timer, close_timer_cb, HTTP_DELETE_MS + 100, 0);
        } else if (ex) {
            ex_free(ex);
        }
    }
    if (t->delete_done)
        finish_close(t);
}

/* ---- the transport API ------------------------------------------------------------------------
 */

/* One "Name: value" header line (new string); the value is sent as is when it is plain visible
   ASCII (inner spaces allowed), else in the "=?base64?…?=" form of the 2026-07-28 transport. */
static char *mirror_line(const char *name, const char *v, size_t len)
{
    bool plain = len > 0 && v[0] != ' ' && v[len - 1] != ' ' &&
                 !(len >= 11 && strncmp(v, "=?base64?", 9) == 0 && strcmp(v + len - 2, "?=") == 0);
    for (size_t i = 0; plain && i < len; i++)
        plain = (unsigned char)v[i] >= 0x20 && (unsigned char)v[i] <= 0x7E;
    size_t cap =
        strlen(name) + 2 +
        (plain ? len : sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL) + 11) + 1;
    char *line = malloc(cap);
    if (line == NULL)
        return NULL;
    int n = snprintf(line, cap, "%s: %s", name, plain ? "" : "=?base64?");
    if (plain) {
        memcpy(line + n, v, len);
        line[n + len] = '\0';
    } else {
        sodium_bin2base64(line + n, cap - (size_t)n, (const unsigned char *)v, len,
                          sodium_base64_VARIANT_ORIGINAL);
        strcat(line, "?=");
    }
    return line;
}

/* One header line per OUTBOUND_HEADER entry of `out` (see transport_send_call); the
   OUTBOUND_MODERN_ONLY ones (Mcp-Param-*) only on a 2026-07-28 request (`modern`), in the
   "=?base64?…?=" form when not plain. Any other value must go as it is: ERR_INVAL when it
   cannot. */
static int outbound_lines(struct exchange *ex, const struct outbound *out, bool modern)
{
    for (size_t i = 0; out != NULL && i < out->n; i++) {
        const struct outbound_entry *e = &out->v[i];
        if (e->where != OUTBOUND_HEADER || ((e->flags & OUTBOUND_MODERN_ONLY) && !modern))
            continue;
        size_t nl = strlen(e->name);
        if (!header_safe(e->name, nl, 256) || strchr(e->name, ':') != NULL ||
            strchr(e->name, ' ') != NULL)
            return ERR_INVAL;
        char *line = NULL;
        if (e->flags & OUTBOUND_MODERN_ONLY) {
            line = mirror_line(e->name, e->value, e->value_len);
        } else {
            for (size_t k = 0; k < e->value_len; k++) /* visible ASCII, space and tab */
                if (((unsigned char)e->value[k] < 0x20 && e->value[k] != '\t') ||
                    (unsigned char)e->value[k] > 0x7E)
                    return ERR_INVAL;
            size_t cap = nl + 2 + e->value_len + 1;
            if ((line = malloc(cap)) != NULL && e->value_len)
                snprintf(line, cap, "%s: %s", e->name, e->value);
            else if (line != NULL) /* libcurl's way to send an empty value */
                snprintf(line, cap, "%s;", e->name);
        }
        struct curl_slist *l = line ? curl_slist_append(ex->param_lines, line) : NULL;
        free(line);
        if (l == NULL)
            return ERR_NOMEM;
        ex->param_lines = l;
    }
    return 0;
}

/* A request carrying the 2026-07-28 per-request _meta gets the transport's mirror headers:
   MCP-Protocol-Version, Mcp-Method and, for tools/call, prompts/get and resources/read,
   Mcp-Name. Returns 0, ERR_INVAL (a value that cannot go in a header) or ERR_NOMEM. */
static int mirror_headers(struct exchange *ex, json_t *msg)
{
    json_t *params = json_object_get(msg, "params");
    json_t *jv = json_object_get(json_object_get(params, "_meta"),
                                 "io.modelcontextprotocol/protocolVersion");
    const char *version = json_string_value(jv);
    const char *method = json_string_value(json_object_get(msg, "method"));
    if (version == NULL || method == NULL || json_object_get(msg, "id") == NULL)
        return 0;
    if (!header_safe(version, strlen(version), 64) || !header_safe(method, strlen(method), 256))
        return ERR_INVAL;
    const char *field = strcmp(method, "tools/call") == 0 || strcmp(method, "prompts/get") == 0
                            ? "name"
                        : strcmp(method, "resources/read") == 0 ? "uri"
                                                                : NULL;
    json_t *jname = field ? json_object_get(params, field) : NULL;
    ex->mirror[0] = mirror_line("MCP-Protocol-Version", version, strlen(version));
    ex->mirror[1] = mirror_line("Mcp-Method", method, strlen(method));
    if (ex->mirror[0] == NULL || ex->mirror[1] == NULL)
        return ERR_NOMEM;
    if (json_is_string(jname) && (ex->mirror[2] = mirror_line("Mcp-Name", json_string_value(jname),
                                                              json_string_length(jname))) == NULL)
        return ERR_NOMEM;
    return 0;
}

static int http_send(struct transport *base, json_t *msg, void *related, const struct outbound *out)
{
    struct http_transport *t = (struct http_transport *)base;
    if (t->closing != CLOSE_NONE)
        return ERR_CLOSED;
    bool direct =
        !t->busy && t->queue == NULL && t->nactive < t->cap && t->mode != MODE_LEGACY_PROBING;
    /* The gateway's answers to the server's own requests (no method) are the server's doing:
       a server that sends thousands of requests at once is owed thousands of answers, which
       must not be lost to the bound on calls. They have a larger bound of their own. */
    bool answer = json_object_get(msg, "method") == NULL;
    size_t bound = (size_t)t->cap * HTTP_QUEUE_FACTOR + (answer ? HTTP_ANSWERS_QUEUED_MAX : 0);
    if (!direct && t->nqueued >= bound)
        return ERR_LIMIT;
    struct exchange *ex = ex_new(t, EX_POST, related);
    if (ex == NULL)
        return ERR_NOMEM;
    int err = ERR_NOMEM;
    ex->body = json_dumps(msg, JSON_COMPACT);
    if (ex->body == NULL)
        goto out;
    ex->body_len = strlen(ex->body);
    const char *method = json_string_value(json_object_get(msg, "method"));
    ex->is_initialize = method && strcmp(method, "initialize") == 0;
    ex->long_lived = method && strcmp(method, "subscriptions/listen") == 0;
    if ((err = mirror_headers(ex, msg)) != 0 ||
        (err = outbound_lines(ex, out, ex->mirror[0] != NULL)) != 0)
        goto out;
    if (direct) {
        if ((err = ex_start(ex)) != 0)
            goto out;
        list_add(&t->active, ex);
        t->nactive++;
    } else {
        queue_push(t, ex, false);
    }
    err = 0;
out:
    if (err)
        ex_free(ex);
    return err;
}

static struct exchange *find_related(struct exchange *list, void *related)
{
    for (; list; list = list->next) {
        if (list->kind == EX_POST && list->related == related && !list->cancelled)
            return list;
    }
    return NULL;
}

static void http_cancel(struct transport *base, void *related)
{
    struct http_transport *t = (struct http_transport *)base;
    if (related == NULL || t->closing != CLOSE_NONE)
        return;
    struct exchange *ex = find_related(t->queue, related);
    if (ex) {
        queue_del(t, ex);
        ex_free(ex);
        return;
    }
    ex = find_related(t->active, related);
    if (ex == NULL)
        return;
    ex->cancelled = true;
    uv_timer_stop(&ex->timer);
    if (!t->busy)
        ex_detach(ex);
}

static void http_set_protocol_version(struct transport *base, const char *version)
{
    struct http_transport *t = (struct http_transport *)base;
    free(t->protocol_version);
    t->protocol_version = NULL;
    if (version == NULL)
        return;
    if (!header_safe(version, strlen(version), 64)) {
        log_warn("upstream_version", "upstream %s: protocol version is not header-safe; not sent",
                 srv_name(t));
        return;
    }
    t->protocol_version = strdup(version);
}

static void stop_stream(struct http_transport *t)
{
    uv_timer_stop(&t->listen_timer);
    t->want_stream = false;
    if (t->stream_ex) {
        struct exchange *ex = t->stream_ex;
        ex->cancelled = true;
        if (!t->busy)
            ex_detach(ex);
    }
}

static void http_reset_session(struct transport *base)
{
    struct http_transport *t = (struct http_transport *)base;
    if (t->mode != MODE_STREAMABLE)
        return; /* HTTP+SSE has no session header; its session is the stream */
    free(t->session_id);
    t->session_id = NULL;
    t->listening = false;
    stop_stream(t);
    /* Event ids belong to the old session. */
    sse_parser_release(&t->stream_sse);
    sse_parser_init(&t->stream_sse, (t->srv->max_message ? t->srv->max_message : 16 << 20) + 64);
}

static int http_listen(struct transport *base)
{
    struct http_transport *t = (struct http_transport *)base;
    if (t->closing != CLOSE_NONE)
        return ERR_CLOSED;
    if (t->mode != MODE_STREAMABLE || t->listen_refused || t->listening)
        return 0;
    t->listening = true;
    t->backoff_ms = HTTP_RECONNECT_MIN_MS;
    if (t->busy) {
        t->want_stream = true;
        return 0;
    }
    int err = stream_start(t);
    if (err)
        t->listening = false;
    return err;
}

static enum transport_state http_state(const struct transport *base)
{
    return ((const struct http_transport *)base)->state;
}

static unsigned http_restarts(const struct transport *base)
{
    return 0;
}

static void http_close(struct transport *base)
{
    struct http_transport *t = (struct http_transport *)base;
    if (t->closing != CLOSE_NONE)
        return;
    t->closing = CLOSE_REQUESTED; /* from here on, no callbacks */
    if (!t->busy) {
        enter(t);
        leave(t);
    }
}

static void http_pause(struct transport *base, void *related, bool on)
{
    struct http_transport *t = (struct http_transport *)base;
    if (related == NULL || t->closing != CLOSE_NONE)
        return;
    struct exchange *ex = find_related(t->active, related);
    if (ex == NULL)
        return;
    ex->pause_wanted = on;
    if (on || !ex->paused)
        return;
    ex->paused = false;
    enter(t);
    ex_arm_timer(ex);
    /* libcurl may deliver the held chunk from inside this call */
    CURLcode cc = curl_easy_pause(ex->easy, CURLPAUSE_CONT);
    if (cc != CURLE_OK) {
        char why[256];
        snprintf(why, sizeof(why), "cannot resume reading the response of upstream %s: %s",
                 srv_name(t), curl_easy_strerror(cc));
        ex_finish(ex, ERR_INTERNAL, why);
    }
    leave(t);
}

static const struct transport_ops http_ops = {
    .send = http_send,
    .cancel = http_cancel,
    .pause = http_pause,
    .set_protocol_version = http_set_protocol_version,
    .reset_session = http_reset_session,
    .listen = http_listen,
    .state = http_state,
    .restarts = http_restarts,
    .close = http_close,
};

struct transport *http_transport_new(uv_loop_t *loop, const struct config_server *srv,
                                     const struct transport_cbs *cbs)
{
    struct http_transport *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    if (curl_loop_init(&t->cl, loop, t) != 0) {
        free(t);
        return NULL;
    }
    /* Every call in flight, the GET stream, a DELETE and a few answers to the server's requests. */
    curl_loop_keep_connections(&t->cl, (long)srv->max_concurrency + 4);
    t->cl.keep_idle = true; /* every easy handle is attached in ex_start */
    t->cl.progress_cb = curl_progress_cb;
    t->cl.enter_cb = curl_enter_cb;
    t->cl.leave_cb = curl_leave_cb;
    t->cl.closed_cb = curl_closed_cb;
    t->base.ops = &http_ops;
    t->loop = loop;
    t->srv = srv;
    t->cbs = *cbs;
    t->state = TRANSPORT_STARTING;
    t->cap = srv->max_concurrency ? srv->max_concurrency : 64;
    t->backoff_ms = HTTP_RECONNECT_MIN_MS;
    sse_parser_init(&t->stream_sse, (srv->max_message ? srv->max_message : 16 << 20) + 64);
    uv_timer_init(loop, &t->listen_timer);
    uv_timer_init(loop, &t->close_timer);
    t->listen_timer.data = t->close_timer.data = t;
    t->open_handles = 3; /* the curl loop, listen_timer, close_timer */
    transport_live_inc();
    return &t->base;
}

int upstream_global_init(void)
{
    static bool done;
    if (done)
        return 0;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return ERR_INTERNAL;
    const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
    if (v->version_num < 0x075500) {
        log_error("upstream_init", "libcurl %s is too old; 7.85 or later is needed", v->version);
        return ERR_INTERNAL;
    }
    done = true;
    return 0;
}
