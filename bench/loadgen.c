/*
 * A load generator for MCP over Streamable HTTP (HTTP/1.1 on loopback), with three modes:
 *
 *  rate      open loop at a fixed request rate (default). Request i is due at t0 + i/rate; it is
 *            sent on the first idle keep-alive connection, and its latency is measured from the
 *            time it was due, not from when it could be sent, so a stalled server is charged for
 *            the requests queued behind it (no coordinated omission). The send-to-response
 *            "service time" is reported beside it. A timerfd paces the schedule with microsecond
 *            precision (libuv timers have millisecond granularity).
 *  closed    --closed: every connection sends its next request as soon as the previous response
 *            ends; for saturation throughput.
 *  sessions  --sessions K: open K MCP sessions (initialize, then notifications/initialized),
 *            with --sse also a GET event stream per session that is kept open; print READY, then
 *            hold for --hold seconds (or until SIGUSR1/SIGINT/SIGTERM) so that a harness can
 *            read the server's memory while the sessions exist.
 *
 * --mcp-init performs an initialize first and sends its Mcp-Session-Id and the negotiated
 * MCP-Protocol-Version with every request; --init-only just prints them. A response ends at its
 * Content-Length, at the end of its chunked body, or when the server closes the connection, so a
 * text/event-stream answer that the server ends counts as one complete response. Latencies go
 * into a log-linear histogram, exact to 1 us below 1024 us and within 0.1% above. Every run is
 * bounded in requests and time. The last line of output is machine-readable ("RESULT k=v ...").
 *
 * HTTP responses are parsed with picohttpparser, which libh2o carries and exports but Debian
 * ships no header for, hence the declaration below.
 */
#include "core/rand.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <uv.h>

/* picohttpparser, as exported by libh2o. */
struct phr_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};
int phr_parse_response(const char *buf, size_t len, int *minor_version, int *status,
                       const char **msg, size_t *msg_len, struct phr_header *headers,
                       size_t *num_headers, size_t last_len);

#define LG_MAX_HEADERS 64
#define LG_IN_INITIAL 4096
#define LG_IN_MAX (64 * 1024)     /* a response head must fit in this */
#define LG_CAPTURE_MAX (8 * 1024) /* body bytes kept for --expect and for initialize */
#define LG_SESSION_ID_MAX 4096    /* longest Mcp-Session-Id accepted */
#define LG_MAX_CONNECTIONS 60000
#define LG_MAX_DURATION_S 600
#define LG_MAX_RATE 1000000
#define LG_MAX_CONNECT_ERRORS 1000
#define LG_DEFAULT_BODY                                                                            \
    "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\","       \
    "\"arguments\":{\"text\":\"hello from the benchmark\"}}}"

/* ---- clock ---------------------------------------------------------------------------------- */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- histogram (microseconds) --------------------------------------------------------------- */

#define HIST_SUB_BITS 10
#define HIST_SUB (1u << HIST_SUB_BITS) /* values below this have a bucket each */
#define HIST_HALF (HIST_SUB / 2)
#define HIST_MAX_EXP 40 /* values are clamped below 2^40 us */
#define HIST_BUCKETS (HIST_SUB + (HIST_MAX_EXP - HIST_SUB_BITS) * HIST_HALF)

struct hist {
    uint64_t count, sum, min, max;
    uint64_t b[HIST_BUCKETS];
};

static size_t hist_index(uint64_t v)
{
    if (v < HIST_SUB) {
        return (size_t)v;
    }
    if (v >= (1ull << HIST_MAX_EXP)) {
        v = (1ull << HIST_MAX_EXP) - 1;
    }
    int e = 63 - __builtin_clzll(v); /* HIST_SUB_BITS <= e < HIST_MAX_EXP */
    int shift = e - (HIST_SUB_BITS - 1);
    return HIST_SUB + (size_t)(e - HIST_SUB_BITS) * HIST_HALF + (size_t)((v >> shift) - HIST_HALF);
}

/* The largest value that falls in bucket idx (a percentile is never understated). */
static uint64_t hist_bucket_top(size_t idx)
{
    if (idx < HIST_SUB) {
        return idx;
    }
    size_t k = idx - HIST_SUB;
    int shift = (int)(k / HIST_HALF) + 1;
    uint64_t sub = k % HIST_HALF + HIST_HALF;
    return ((sub + 1) << shift) - 1;
}

static void hist_add(struct hist *h, uint64_t v)
{
    if (h->count == 0 || v < h->min) {
        h->min = v;
    }
    if (v > h->max) {
        h->max = v;
    }
    h->count++;
    h->sum += v;
    h->b[hist_index(v)]++;
}

static uint64_t hist_percentile(const struct hist *h, double q)
{
    if (h->count == 0) {
        return 0;
    }
    uint64_t want = (uint64_t)ceil(q * (double)h->count);
    uint64_t seen = 0;
    if (want == 0) {
        want = 1;
    }
    for (size_t i = 0; i < HIST_BUCKETS; i++) {
        seen += h->b[i];
        if (seen >= want) {
            uint64_t top = hist_bucket_top(i);
            return top < h->max ? top : h->max;
        }
    }
    return h->max;
}

/* ---- HTTP/1.1 response framing -------------------------------------------------------------- */

enum rp_state { RP_HEAD, RP_LENGTH, RP_CHUNKED, RP_UNTIL_EOF, RP_DONE };
enum ck_state {
    CK_SIZE,
    CK_EXT,
    CK_SIZE_LF,
    CK_DATA,
    CK_DATA_CR,
    CK_DATA_LF,
    CK_TRAILER,
    CK_TRAILER_LINE,
    CK_TRAILER_LF
};

struct resp_parser {
    enum rp_state state;
    int status;
    int keep_alive;
    int event_stream; /* Content-Type: text/event-stream */
    uint64_t remaining;
    enum ck_state ck;
    int ck_digits;
    char *session_id; /* Mcp-Session-Id of the response (malloc'd to its length), or NULL */
    char *capture;    /* NULL, or LG_CAPTURE_MAX bytes: the start of the body is kept here */
    size_t capture_len;
};

static void rp_reset(struct resp_parser *p)
{
    char *capture = p->capture;
    free(p->session_id);
    memset(p, 0, sizeof(*p));
    p->capture = capture;
}

static int header_is(const struct phr_header *h, const char *name)
{
    return h->name_len == strlen(name) && strncasecmp(h->name, name, h->name_len) == 0;
}

static int value_has(const struct phr_header *h, const char *token)
{
    size_t n = strlen(token);
    for (size_t i = 0; i + n <= h->value_len; i++) {
        if (strncasecmp(h->value + i, token, n) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Parse a response head. Returns bytes consumed, 0 if incomplete, -1 if malformed. */
static int rp_head(struct resp_parser *p, const char *buf, size_t len)
{
    struct phr_header headers[LG_MAX_HEADERS];
    size_t num_headers = LG_MAX_HEADERS, msg_len;
    const char *msg;
    int minor, status;
    int n = phr_parse_response(buf, len, &minor, &status, &msg, &msg_len, headers, &num_headers, 0);
    if (n == -2) {
        return 0;
    }
    if (n < 0) {
        return -1;
    }
    if (status >= 100 && status < 200) {
        return n; /* an interim response: the real one follows */
    }
    int chunked = 0, has_length = 0;
    uint64_t length = 0;
    p->status = status;
    p->keep_alive = minor >= 1;
    for (size_t i = 0; i < num_headers; i++) {
        const struct phr_header *h = &headers[i];
        if (header_is(h, "content-length")) {
            char tmp[32];
            if (h->value_len == 0 || h->value_len >= sizeof(tmp)) {
                return -1;
            }
            memcpy(tmp, h->value, h->value_len);
            tmp[h->value_len] = '\0';
            char *end;
            errno = 0;
            length = strtoull(tmp, &end, 10);
            if (errno != 0 || *end != '\0') {
                return -1;
            }
            has_length = 1;
        } else if (header_is(h, "transfer-encoding")) {
            chunked = value_has(h, "chunked");
        } else if (header_is(h, "connection")) {
            if (value_has(h, "close")) {
                p->keep_alive = 0;
            } else if (value_has(h, "keep-alive")) {
                p->keep_alive = 1;
            }
        } else if (header_is(h, "content-type")) {
            p->event_stream = value_has(h, "text/event-stream");
        } else if (header_is(h, "mcp-session-id")) {
            /* Sized from the header: a gateway's session id carries sealed state and may be
               a few hundred characters long; refused only beyond LG_SESSION_ID_MAX. */
            if (h->value_len > LG_SESSION_ID_MAX) {
                fprintf(stderr, "loadgen: Mcp-Session-Id of %zu bytes, over %d\n", h->value_len,
                        LG_SESSION_ID_MAX);
                return -1;
            }
            free(p->session_id);
            if ((p->session_id = strndup(h->value, h->value_len)) == NULL)
                return -1;
        }
    }
    if (status == 204 || status == 304) {
        p->state = RP_DONE;
    } else if (chunked) {
        p->state = RP_CHUNKED;
        p->ck = CK_SIZE;
    } else if (has_length) {
        p->remaining = length;
        p->state = length ? RP_LENGTH : RP_DONE;
    } else {
        p->state = RP_UNTIL_EOF;
        p->keep_alive = 0;
    }
    return n;
}

static void rp_capture(struct resp_parser *p, const char *data, size_t len)
{
    if (p->capture == NULL || p->capture_len >= LG_CAPTURE_MAX - 1) {
        return;
    }
    size_t n =
        len < LG_CAPTURE_MAX - 1 - p->capture_len ? len : LG_CAPTURE_MAX - 1 - p->capture_len;
    memcpy(p->capture + p->capture_len, data, n);
    p->capture_len += n;
    p->capture[p->capture_len] = '\0';
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    c = (char)(c | 0x20);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Walk a chunked body, keeping the data. Returns bytes consumed or -1. */
static ssize_t rp_chunked(struct resp_parser *p, const char *buf, size_t len)
{
    size_t i = 0;
    while (i < len && p->state == RP_CHUNKED) {
        char c = buf[i];
        switch (p->ck) {
        case CK_SIZE:
            if (hexval(c) >= 0) {
                if (++p->ck_digits > 15) {
                    return -1;
                }
                p->remaining = p->remaining * 16 + (uint64_t)hexval(c);
            } else if (p->ck_digits == 0) {
                return -1;
            } else if (c == ';' || c == ' ' || c == '\t') {
                p->ck = CK_EXT;
            } else if (c == '\r') {
                p->ck = CK_SIZE_LF;
            } else if (c == '\n') {
                p->ck = p->remaining ? CK_DATA : CK_TRAILER;
            } else {
                return -1;
            }
            i++;
            break;
        case CK_EXT:
        case CK_SIZE_LF:
            if (c == '\n') {
                p->ck = p->remaining ? CK_DATA : CK_TRAILER;
            } else if (p->ck == CK_SIZE_LF) {
                return -1;
            }
            i++;
            break;
        case CK_DATA: {
            size_t n = len - i < p->remaining ? len - i : (size_t)p->remaining;
            rp_capture(p, buf + i, n);
            p->remaining -= n;
            i += n;
            if (p->remaining == 0) {
                p->ck = CK_DATA_CR;
            }
            break;
        }
        case CK_DATA_CR:
        case CK_DATA_LF:
            if (c == '\n') {
                p->ck = CK_SIZE;
                p->ck_digits = 0;
            } else if (c == '\r' && p->ck == CK_DATA_CR) {
                p->ck = CK_DATA_LF;
            } else {
                return -1;
            }
            i++;
            break;
        case CK_TRAILER: /* at the start of a trailer line; an empty one ends the body */
            if (c == '\n') {
                p->state = RP_DONE;
            } else {
                p->ck = c == '\r' ? CK_TRAILER_LF : CK_TRAILER_LINE;
            }
            i++;
            break;
        case CK_TRAILER_LINE:
            if (c == '\n') {
                p->ck = CK_TRAILER;
            }
            i++;
            break;
        case CK_TRAILER_LF:
            if (c != '\n') {
                return -1;
            }
            p->state = RP_DONE;
            i++;
            break;
        }
    }
    return (ssize_t)i;
}

/*
 * Feed the received bytes buf[0..*len). Returns 1 when a response has ended, 0 when more is
 * needed, -1 on malformed input. Consumed bytes are removed from the front of buf.
 */
static int rp_feed(struct resp_parser *p, char *buf, size_t *len)
{
    size_t off = 0;
    int r = 0;
    for (;;) {
        if (p->state == RP_DONE) {
            r = 1;
            break;
        }
        if (off == *len) {
            break;
        }
        const char *at = buf + off;
        size_t avail = *len - off;
        if (p->state == RP_HEAD) {
            int n = rp_head(p, at, avail);
            if (n <= 0) {
                r = n;
                break;
            }
            off += (size_t)n;
        } else if (p->state == RP_LENGTH) {
            size_t n = avail < p->remaining ? avail : (size_t)p->remaining;
            rp_capture(p, at, n);
            p->remaining -= n;
            off += n;
            if (p->remaining == 0) {
                p->state = RP_DONE;
            }
        } else if (p->state == RP_CHUNKED) {
            ssize_t n = rp_chunked(p, at, avail);
            if (n < 0) {
                r = -1;
                break;
            }
            off += (size_t)n;
        } else { /* RP_UNTIL_EOF */
            rp_capture(p, at, avail);
            off += avail;
        }
    }
    memmove(buf, buf + off, *len - off);
    *len -= off;
    return r;
}

/* The connection was closed by the peer: returns 1 if that ended the response. */
static int rp_eof(struct resp_parser *p)
{
    if (p->state == RP_UNTIL_EOF) {
        p->state = RP_DONE;
    }
    return p->state == RP_DONE;
}

/* ---- options and shared state ---------------------------------------------------------------- */

enum mode { MODE_RATE, MODE_CLOSED, MODE_SESSIONS, MODE_INIT_ONLY };

struct opts {
    enum mode mode;
    char host[64];
    int port;
    char path[512];
    struct sockaddr_in addr;
    double rate;
    double duration_s;
    double warmup_s;
    int connections;
    const char *body;
    size_t body_len;
    char *extra_headers; /* "Name: value\r\n" lines from -H */
    int mcp_init;
    const char *protocol_version;
    const char *expect;
    int timeout_ms;
    long sessions;
    int sse;
    int concurrency;
    double hold_s;
    double open_timeout_s;
};

struct errors {
    uint64_t connect, io, protocol, timeout, closed, non2xx, unexpected, no_session;
};

enum conn_state { CS_FREE, CS_CONNECTING, CS_IDLE, CS_BUSY, CS_HOLD, CS_CLOSING, CS_DONE };
enum session_step { SS_NONE, SS_INIT, SS_NOTIFY, SS_GET };

struct conn {
    uv_tcp_t tcp;
    uv_connect_t connect_req;
    uv_write_t write_req;
    enum conn_state state;
    int in_idle_list;
    uint64_t sched_ns, sent_ns;
    int measured; /* the request in flight is inside the measurement window */
    struct resp_parser rp;
    char *in;
    size_t in_len, in_cap;
    /* sessions mode */
    enum session_step step;
    int opening; /* counted in G.openers: working towards a session */
    char *out;   /* the request being sent (rate mode uses the shared template) */
    size_t out_len;
};

static struct opts o = {
    .host = "127.0.0.1",
    .port = 80,
    .path = "/mcp",
    .rate = 1000,
    .duration_s = 10,
    .warmup_s = 1,
    .connections = 16,
    .protocol_version = "2025-11-25",
    .timeout_ms = 5000,
    .concurrency = 64,
    .open_timeout_s = 120,
};

static struct {
    uv_loop_t *loop;
    struct conn *conns;
    int nconns;
    struct conn **idle;
    int nidle;
    char *request; /* rate and closed modes: the one request, sent verbatim */
    size_t request_len;
    char *session_id; /* --mcp-init, --init-only: from the initialize response, or NULL */
    char negotiated_version[32];
    /* schedule */
    uint64_t t0, measure_from, end_ns;
    uint64_t total, due, sent, busy;
    int scheduling;
    int tfd;
    uv_poll_t tick;
    uv_timer_t watchdog, drain_timer, hold_timer;
    uv_signal_t sigs[3];
    int stopping;
    uint64_t measured_done, measured_sched;
    uint64_t first_measured_done_ns, last_done_ns;
    struct hist lat, svc;
    struct errors err;
    uint64_t status_2xx, status_other;
    /* sessions */
    long started, established, dropped, next_conn;
    int openers;
    int ready;
    uint64_t start_ns;
} G;

__attribute__((format(printf, 1, 2), noreturn)) static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "loadgen: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

/* ---- request building ----------------------------------------------------------------------- */

static int has_extra_header(const char *name)
{
    size_t n = strlen(name);
    for (const char *l = o.extra_headers; l && *l; l = strstr(l, "\r\n") + 2) {
        if (strncasecmp(l, name, n) == 0 && l[n] == ':') {
            return 1;
        }
    }
    return 0;
}

/* Format a POST (body != NULL) or GET of o.path into a new buffer; the session headers are added
   when sid is not NULL. */
static char *build_request(const char *method, const char *body, size_t body_len, const char *sid,
                           const char *version, size_t *out_len)
{
    size_t cap = 1024 + strlen(o.path) + (o.extra_headers ? strlen(o.extra_headers) : 0) +
                 (sid ? strlen(sid) : 0) + body_len;
    char *buf = malloc(cap);
    if (buf == NULL) {
        die("%s", "out of memory");
    }
    int n = snprintf(buf, cap, "%s %s HTTP/1.1\r\nHost: %s:%d\r\n", method, o.path, o.host, o.port);
    if (!has_extra_header("accept")) {
        n += snprintf(buf + n, cap - (size_t)n, "Accept: %s\r\n",
                      body ? "application/json, text/event-stream" : "text/event-stream");
    }
    if (body && !has_extra_header("content-type")) {
        n += snprintf(buf + n, cap - (size_t)n, "Content-Type: application/json\r\n");
    }
    if (sid) {
        n += snprintf(buf + n, cap - (size_t)n, "Mcp-Session-Id: %s\r\n", sid);
    }
    if (version) {
        n += snprintf(buf + n, cap - (size_t)n, "MCP-Protocol-Version: %s\r\n", version);
    }
    n += snprintf(buf + n, cap - (size_t)n, "%s", o.extra_headers ? o.extra_headers : "");
    if (body) {
        n += snprintf(buf + n, cap - (size_t)n, "Content-Length: %zu\r\n\r\n", body_len);
        memcpy(buf + n, body, body_len);
        n += (int)body_len;
    } else {
        n += snprintf(buf + n, cap - (size_t)n, "\r\n");
    }
    *out_len = (size_t)n;
    return buf;
}

static char *initialize_body(void)
{
    json_t *msg =
        json_pack("{s:s, s:i, s:s, s:{s:s, s:{}, s:{s:s, s:s}}}", "jsonrpc", "2.0", "id", 0,
                  "method", "initialize", "params", "protocolVersion", o.protocol_version,
                  "capabilities", "clientInfo", "name", "gatehouse-loadgen", "version", "1.0.0");
    char *s = json_dumps(msg, JSON_COMPACT);
    json_decref(msg);
    return s;
}

static const char initialized_body[] =
    "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}";

/* The JSON-RPC message in a captured body: the body itself, or the first SSE data line. */
static json_t *captured_message(const struct resp_parser *p)
{
    const char *text = p->capture ? p->capture : "";
    if (p->event_stream) {
        const char *d = strstr(text, "data:");
        if (d == NULL) {
            return NULL;
        }
        d += 5;
        d += *d == ' ';
        size_t n = strcspn(d, "\r\n");
        return json_loadb(d, n, 0, NULL);
    }
    return json_loadb(text, p->capture_len, 0, NULL);
}

/* ---- the blocking initialize used by --mcp-init and --init-only ----------------------------- */

static int blocking_exchange(int fd, const char *req, size_t req_len, struct resp_parser *p)
{
    char buf[LG_IN_MAX];
    size_t len = 0;
    for (size_t off = 0; off < req_len;) {
        ssize_t n = write(fd, req + off, req_len - off);
        if (n <= 0) {
            return -1;
        }
        off += (size_t)n;
    }
    rp_reset(p);
    for (;;) {
        ssize_t n = read(fd, buf + len, sizeof(buf) - len);
        if (n < 0) {
            return -1;
        }
        if (n == 0) {
            return rp_eof(p) ? 0 : -1;
        }
        len += (size_t)n;
        int r = rp_feed(p, buf, &len);
        if (r != 0) {
            return r == 1 ? 0 : -1;
        }
        if (len == sizeof(buf)) {
            return -1;
        }
    }
}

static void mcp_initialize(void)
{
    struct resp_parser p = {0};
    struct timeval tv = {.tv_sec = 5};
    char capture[LG_CAPTURE_MAX];
    size_t len;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    p.capture = capture;
    capture[0] = '\0';
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&o.addr, sizeof(o.addr)) != 0) {
        die("initialize: connect: %s", strerror(errno));
    }
    char *body = initialize_body();
    char *req = build_request("POST", body, strlen(body), NULL, NULL, &len);
    if (blocking_exchange(fd, req, len, &p) != 0) {
        die("%s", "initialize: no complete HTTP response");
    }
    free(req);
    free(body);
    if (p.status != 200) {
        fprintf(stderr, "loadgen: initialize: HTTP %d: %.300s\n", p.status, capture);
        exit(1);
    }
    json_t *msg = captured_message(&p);
    const char *v =
        json_string_value(json_object_get(json_object_get(msg, "result"), "protocolVersion"));
    if (v == NULL) {
        fprintf(stderr, "loadgen: initialize: no result.protocolVersion in: %.300s\n", capture);
        exit(1);
    }
    snprintf(G.negotiated_version, sizeof(G.negotiated_version), "%s", v);
    json_decref(msg);
    G.session_id = p.session_id; /* taken: the next exchange resets p */
    p.session_id = NULL;

    req = build_request("POST", initialized_body, strlen(initialized_body), G.session_id,
                        G.negotiated_version, &len);
    if (blocking_exchange(fd, req, len, &p) != 0 || p.status < 200 || p.status > 299) {
        fprintf(stderr, "loadgen: notifications/initialized: HTTP %d\n", p.status);
        exit(1);
    }
    free(p.session_id);
    free(req);
    close(fd);
}

/* ---- connections ----------------------------------------------------------------------------- */

static void conn_open(struct conn *c);
static void on_response(struct conn *c);
static void stop_run(void);
static void pump(void);

static void idle_push(struct conn *c)
{
    c->state = CS_IDLE;
    if (!c->in_idle_list) {
        c->in_idle_list = 1;
        G.idle[G.nidle++] = c;
    }
}

static struct conn *idle_pop(void)
{
    while (G.nidle > 0) {
        struct conn *c = G.idle[--G.nidle];
        c->in_idle_list = 0;
        if (c->state == CS_IDLE) {
            return c;
        }
    }
    return NULL;
}

static void on_close_cb(uv_handle_t *h)
{
    struct conn *c = h->data;
    c->state = CS_FREE;
    c->in_len = 0;
    if (G.stopping) {
        return;
    }
    if (o.mode == MODE_RATE || o.mode == MODE_CLOSED) {
        if (G.err.connect < LG_MAX_CONNECT_ERRORS) {
            conn_open(c); /* keep the pool at its size */
        }
    } else if (o.mode == MODE_SESSIONS && !o.sse && G.started < o.sessions) {
        conn_open(c);
    }
}

/* This connection no longer works towards a session (it made one, or failed). */
static void opener_done(struct conn *c)
{
    if (c->opening) {
        c->opening = 0;
        G.openers--;
    }
}

static void conn_close(struct conn *c)
{
    if (c->state == CS_CLOSING || c->state == CS_FREE || c->state == CS_DONE) {
        return;
    }
    if (c->state == CS_BUSY) {
        G.busy--;
    }
    c->state = CS_CLOSING;
    uv_close((uv_handle_t *)&c->tcp, on_close_cb);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct conn *c = h->data;
    if (c->in_cap - c->in_len < 1024 && c->in_cap < LG_IN_MAX) {
        size_t cap = c->in_cap ? c->in_cap * 2 : LG_IN_INITIAL;
        char *in = realloc(c->in, cap > LG_IN_MAX ? LG_IN_MAX : cap);
        if (in != NULL) {
            c->in = in;
            c->in_cap = cap > LG_IN_MAX ? LG_IN_MAX : cap;
        }
    }
    buf->base = c->in + c->in_len;
    buf->len = c->in_cap - c->in_len;
}

/* A request failed on this connection: count it and drop the connection. */
static void conn_fail(struct conn *c, uint64_t *counter)
{
    if (c->state == CS_BUSY || c->state == CS_CONNECTING || c->state == CS_HOLD) {
        (*counter)++;
    }
    if (o.mode == MODE_SESSIONS) {
        if (c->state == CS_HOLD) {
            G.dropped++;
            G.established--;
        }
        opener_done(c);
    }
    conn_close(c);
    if (o.mode == MODE_SESSIONS) {
        pump();
    }
}

static void on_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = s->data;
    if (nread == UV_EOF) {
        if (c->state == CS_BUSY || c->state == CS_HOLD) {
            if (rp_eof(&c->rp) && c->state == CS_BUSY) {
                on_response(c);
                conn_close(c);
                return;
            }
            conn_fail(c, &G.err.closed);
            return;
        }
        conn_close(c); /* an idle keep-alive connection closed by the server */
        return;
    }
    if (nread < 0) {
        conn_fail(c, &G.err.io);
        return;
    }
    if (nread == 0) {
        return;
    }
    c->in_len += (size_t)nread;
    if (c->state != CS_BUSY && c->state != CS_HOLD) {
        conn_fail(c, &G.err.protocol); /* bytes nobody asked for */
        return;
    }
    int r = rp_feed(&c->rp, c->in, &c->in_len);
    if (r < 0 || (r == 0 && c->in_len == LG_IN_MAX)) {
        conn_fail(c, &G.err.protocol);
        return;
    }
    if (r == 1 && c->state == CS_HOLD) {
        conn_fail(c, &G.err.closed); /* the server ended a held event stream */
    } else if (r == 1) {
        on_response(c);
    } else if (c->step == SS_GET && c->state == CS_BUSY && c->rp.state != RP_HEAD) {
        on_response(c); /* the head of the event stream: the session is established */
    }
}

static void send_bytes(struct conn *c, char *bytes, size_t len)
{
    uv_buf_t b = uv_buf_init(bytes, (unsigned)len);
    int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (n == (int)len) {
        return;
    }
    if (n < 0 && n != UV_EAGAIN) {
        conn_fail(c, &G.err.io);
        return;
    }
    if (n > 0) {
        b = uv_buf_init(bytes + n, (unsigned)(len - (size_t)n));
    }
    /* The bytes outlive the write: the shared template, or c->out until the response. */
    if (uv_write(&c->write_req, (uv_stream_t *)&c->tcp, &b, 1, NULL) != 0) {
        conn_fail(c, &G.err.io);
    }
}

static void conn_send(struct conn *c, char *bytes, size_t len, uint64_t sched)
{
    c->state = CS_BUSY;
    G.busy++;
    c->sched_ns = sched;
    c->sent_ns = now_ns();
    c->measured = sched >= G.measure_from;
    rp_reset(&c->rp);
    c->rp.capture_len = 0;
    send_bytes(c, bytes, len);
}

static void on_connect_cb(uv_connect_t *req, int status);

static void conn_open(struct conn *c)
{
    uv_tcp_init(G.loop, &c->tcp);
    c->tcp.data = c;
    c->state = CS_CONNECTING;
    c->in_len = 0;
    c->sent_ns = now_ns(); /* for the connect timeout */
    int r = uv_tcp_connect(&c->connect_req, &c->tcp, (struct sockaddr *)&o.addr, on_connect_cb);
    if (r != 0) {
        G.err.connect++;
        opener_done(c);
        c->state = CS_CLOSING;
        uv_close((uv_handle_t *)&c->tcp, on_close_cb);
    }
}

/* ---- sessions mode ----------------------------------------------------------------------------
 */

static void session_send(struct conn *c, enum session_step step)
{
    static char *init_body;
    /* The id the initialize response gave, kept across the parser reset of the next request. */
    char *sid_copy = NULL;
    if (step != SS_INIT) { /* kept across the reset conn_send makes */
        sid_copy = c->rp.session_id;
        c->rp.session_id = NULL;
    }
    if (init_body == NULL) {
        init_body = initialize_body();
    }
    free(c->out);
    if (step == SS_INIT) {
        c->out = build_request("POST", init_body, strlen(init_body), NULL, NULL, &c->out_len);
    } else if (step == SS_NOTIFY) {
        c->out = build_request("POST", initialized_body, strlen(initialized_body), sid_copy,
                               o.protocol_version, &c->out_len);
    } else {
        c->out = build_request("GET", NULL, 0, sid_copy, o.protocol_version, &c->out_len);
    }
    c->step = step;
    conn_send(c, c->out, c->out_len, now_ns());
    c->rp.session_id = sid_copy;
}

static void sessions_maybe_ready(int force);

/* Start sessions while there is room: on a fresh connection per session with --sse, else on
   the idle connections in turn. */
static void sessions_pump(void)
{
    if (G.ready) {
        return;
    }
    while (G.started < o.sessions && G.openers < o.concurrency) {
        if (o.sse) {
            if (G.next_conn >= G.nconns) {
                break;
            }
            struct conn *c = &G.conns[G.next_conn++];
            G.openers++;
            G.started++; /* a failed connect is one failed session */
            c->opening = 1;
            c->step = SS_NONE;
            conn_open(c);
        } else {
            struct conn *c = idle_pop();
            if (c == NULL) {
                break;
            }
            G.openers++;
            G.started++;
            c->opening = 1;
            session_send(c, SS_INIT);
        }
    }
    sessions_maybe_ready(0);
}

static void session_response(struct conn *c)
{
    struct resp_parser *p = &c->rp;
    int ok = p->status >= 200 && p->status <= 299;
    G.busy--;
    c->state = CS_IDLE;
    if (!ok) {
        G.err.non2xx++;
        opener_done(c);
        conn_close(c);
        sessions_pump();
        return;
    }
    if (c->step == SS_INIT) {
        if (p->session_id == NULL || p->session_id[0] == '\0') {
            G.err.no_session++;
            opener_done(c);
            conn_close(c);
            sessions_pump();
            return;
        }
        session_send(c, SS_NOTIFY);
        return;
    }
    if (c->step == SS_NOTIFY && o.sse) {
        session_send(c, SS_GET);
        return;
    }
    if (c->step == SS_GET) {
        if (!p->event_stream) {
            G.err.unexpected++;
            opener_done(c);
            conn_close(c);
            sessions_pump();
            return;
        }
        c->state = CS_HOLD; /* keep reading; the end of the stream is a drop */
    }
    G.established++;
    opener_done(c);
    if (c->state == CS_IDLE) {
        if (p->keep_alive) {
            idle_push(c);
        } else {
            conn_close(c);
        }
    }
    sessions_pump();
}

static void on_hold_done(uv_timer_t *t)
{
    stop_run();
}

/* Print READY once every session has been tried (or, forced, at the open timeout). */
static void sessions_maybe_ready(int force)
{
    if (G.ready || (!force && (G.openers > 0 || G.started < o.sessions))) {
        return;
    }
    G.ready = 1;
    printf("READY established=%ld requested=%ld errors=%llu elapsed_s=%.2f\n", G.established,
           o.sessions,
           (unsigned long long)(G.err.connect + G.err.io + G.err.protocol + G.err.timeout +
                                G.err.closed + G.err.non2xx + G.err.unexpected + G.err.no_session),
           (double)(now_ns() - G.start_ns) / 1e9);
    fflush(stdout);
    uv_timer_start(&G.hold_timer, on_hold_done, (uint64_t)(o.hold_s * 1000), 0);
}

/* ---- rate and closed modes --------------------------------------------------------------------
 */

static uint64_t sched_of(uint64_t i)
{
    return G.t0 + (uint64_t)((double)i * 1e9 / o.rate);
}

/* Send due requests on idle connections, oldest first. */
static void pump(void)
{
    struct conn *c;
    if (o.mode == MODE_SESSIONS) {
        sessions_pump();
        return;
    }
    if (G.stopping) {
        return;
    }
    if (o.mode == MODE_CLOSED) {
        uint64_t t = now_ns();
        while (t < G.end_ns && (c = idle_pop()) != NULL) {
            conn_send(c, G.request, G.request_len, t);
            G.sent++;
        }
        return;
    }
    while (G.sent < G.due && (c = idle_pop()) != NULL) {
        conn_send(c, G.request, G.request_len, sched_of(G.sent));
        G.sent++;
    }
}

static void maybe_finished(void)
{
    if (G.scheduling || G.busy > 0) {
        return;
    }
    if (o.mode == MODE_RATE && G.sent < G.total) {
        return;
    }
    stop_run();
}

static void on_response(struct conn *c)
{
    if (o.mode == MODE_SESSIONS) {
        session_response(c);
        return;
    }
    uint64_t t = now_ns();
    struct resp_parser *p = &c->rp;
    G.busy--;
    c->state = CS_IDLE;
    if (c->measured) {
        int ok = p->status >= 200 && p->status <= 299;
        if (ok) {
            G.status_2xx++;
        } else {
            G.status_other++;
            G.err.non2xx++;
        }
        if (ok && o.expect && (p->capture == NULL || strstr(p->capture, o.expect) == NULL)) {
            G.err.unexpected++;
        }
        hist_add(&G.lat, (t - c->sched_ns) / 1000);
        hist_add(&G.svc, (t - c->sent_ns) / 1000);
        if (G.measured_done++ == 0) {
            G.first_measured_done_ns = t;
        }
        G.last_done_ns = t;
    }
    if (p->keep_alive) {
        idle_push(c);
        pump();
    } else {
        conn_close(c);
    }
    maybe_finished();
}

static void arm_tick(uint64_t at)
{
    struct itimerspec its = {0};
    its.it_value.tv_sec = (time_t)(at / 1000000000u);
    its.it_value.tv_nsec = (long)(at % 1000000000u);
    if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0) {
        its.it_value.tv_nsec = 1;
    }
    timerfd_settime(G.tfd, TFD_TIMER_ABSTIME, &its, NULL);
}

static void on_drain_timeout(uv_timer_t *t)
{
    stop_run();
}

static void end_scheduling(void)
{
    G.scheduling = 0;
    uv_poll_stop(&G.tick);
    /* In-flight requests get one request timeout to finish. */
    uv_timer_start(&G.drain_timer, on_drain_timeout, (uint64_t)o.timeout_ms, 0);
    maybe_finished();
}

static void on_tick_cb(uv_poll_t *h, int status, int events)
{
    uint64_t expirations;
    if (read(G.tfd, &expirations, sizeof(expirations)) < 0 && errno != EAGAIN) {
        return;
    }
    uint64_t t = now_ns();
    if (o.mode == MODE_CLOSED) {
        if (t >= G.end_ns) {
            end_scheduling();
        } else {
            arm_tick(G.end_ns);
        }
        return;
    }
    while (G.due < G.total && sched_of(G.due) <= t) {
        G.due++;
    }
    pump();
    if (G.due < G.total) {
        arm_tick(sched_of(G.due));
    } else {
        end_scheduling();
    }
}

/* Every 100 ms: expire requests that outlived --timeout. */
static void on_watchdog_cb(uv_timer_t *t)
{
    uint64_t now = now_ns();
    uint64_t limit = (uint64_t)o.timeout_ms * 1000000u;
    for (int i = 0; i < G.nconns; i++) {
        struct conn *c = &G.conns[i];
        if ((c->state == CS_BUSY || c->state == CS_CONNECTING) && now - c->sent_ns > limit) {
            conn_fail(c, &G.err.timeout);
        }
    }
    if (o.mode == MODE_SESSIONS && !G.ready &&
        now - G.start_ns > (uint64_t)(o.open_timeout_s * 1e9)) {
        fprintf(stderr, "loadgen: open timeout after %.0f s; reporting what was established\n",
                o.open_timeout_s);
        sessions_maybe_ready(1);
    }
}

static void on_connect_cb(uv_connect_t *req, int status)
{
    struct conn *c = req->handle->data;
    if (c->state == CS_CLOSING) {
        return;
    }
    if (status != 0) {
        G.err.connect++;
        opener_done(c);
        c->state = CS_CONNECTING;
        conn_close(c);
        if (o.mode == MODE_SESSIONS) {
            sessions_pump();
        }
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, on_read_cb);
    if (o.mode == MODE_SESSIONS && o.sse) {
        session_send(c, SS_INIT);
        return;
    }
    idle_push(c);
    pump();
}

static void stop_run(void)
{
    if (G.stopping) {
        return;
    }
    G.stopping = 1;
    uv_stop(G.loop);
}

static void on_signal_cb(uv_signal_t *s, int signum)
{
    stop_run();
}

/* ---- report -----------------------------------------------------------------------------------
 */

static void print_hist(const char *name, const struct hist *h)
{
    printf(
        "  %-8s p50 %6llu  p90 %6llu  p99 %6llu  p99.9 %6llu  max %7llu  mean %7.1f us\n", name,
        (unsigned long long)hist_percentile(h, 0.50), (unsigned long long)hist_percentile(h, 0.90),
        (unsigned long long)hist_percentile(h, 0.99), (unsigned long long)hist_percentile(h, 0.999),
        (unsigned long long)h->max, h->count ? (double)h->sum / (double)h->count : 0.0);
}

static void report_load(void)
{
    uint64_t errors = G.err.connect + G.err.io + G.err.protocol + G.err.timeout + G.err.closed +
                      G.err.non2xx + G.err.unexpected;
    double window = o.duration_s - o.warmup_s;
    double achieved = window > 0 ? (double)G.measured_done / window : 0;
    uint64_t unsent = o.mode == MODE_RATE ? G.total - G.sent : 0;
    if (o.mode == MODE_CLOSED && G.measured_done > 1) {
        achieved = (double)G.measured_done / ((double)(G.end_ns - G.measure_from) / 1e9);
    }
    printf("%s %s:%d%s  connections=%d  %s\n", o.mode == MODE_RATE ? "rate" : "closed", o.host,
           o.port, o.path, o.connections, G.session_id ? "(MCP session)" : "");
    if (o.mode == MODE_RATE) {
        printf("  target %.0f req/s, achieved %.1f req/s over %.1f s (after %.1f s warm-up)\n",
               o.rate, achieved, window, o.warmup_s);
    } else {
        printf("  throughput %.1f req/s over %.1f s (after %.1f s warm-up)\n", achieved, window,
               o.warmup_s);
    }
    printf("  completed %llu, 2xx %llu, non-2xx %llu, errors %llu (connect %llu io %llu protocol "
           "%llu timeout %llu closed %llu unexpected-body %llu), unsent %llu\n",
           (unsigned long long)G.measured_done, (unsigned long long)G.status_2xx,
           (unsigned long long)G.status_other, (unsigned long long)errors,
           (unsigned long long)G.err.connect, (unsigned long long)G.err.io,
           (unsigned long long)G.err.protocol, (unsigned long long)G.err.timeout,
           (unsigned long long)G.err.closed, (unsigned long long)G.err.unexpected,
           (unsigned long long)unsent);
    if (o.mode == MODE_RATE) {
        print_hist("latency", &G.lat); /* from the scheduled time */
        print_hist("service", &G.svc); /* from the actual send */
    } else {
        print_hist("latency", &G.svc);
    }
    const struct hist *h = o.mode == MODE_RATE ? &G.lat : &G.svc;
    printf(
        "RESULT mode=%s target_rps=%.0f achieved_rps=%.1f completed=%llu errors=%llu "
        "non2xx=%llu unsent=%llu p50_us=%llu p90_us=%llu p99_us=%llu p999_us=%llu max_us=%llu "
        "mean_us=%.1f svc_p50_us=%llu svc_p99_us=%llu\n",
        o.mode == MODE_RATE ? "rate" : "closed", o.mode == MODE_RATE ? o.rate : 0, achieved,
        (unsigned long long)G.measured_done, (unsigned long long)errors,
        (unsigned long long)G.status_other, (unsigned long long)unsent,
        (unsigned long long)hist_percentile(h, 0.50), (unsigned long long)hist_percentile(h, 0.90),
        (unsigned long long)hist_percentile(h, 0.99), (unsigned long long)hist_percentile(h, 0.999),
        (unsigned long long)h->max, h->count ? (double)h->sum / (double)h->count : 0.0,
        (unsigned long long)hist_percentile(&G.svc, 0.50),
        (unsigned long long)hist_percentile(&G.svc, 0.99));
}

static void report_sessions(void)
{
    printf("RESULT mode=sessions sse=%d requested=%ld established=%ld dropped=%ld connect=%llu "
           "io=%llu protocol=%llu timeout=%llu closed=%llu non2xx=%llu no_session=%llu "
           "not_event_stream=%llu\n",
           o.sse, o.sessions, G.established, G.dropped, (unsigned long long)G.err.connect,
           (unsigned long long)G.err.io, (unsigned long long)G.err.protocol,
           (unsigned long long)G.err.timeout, (unsigned long long)G.err.closed,
           (unsigned long long)G.err.non2xx, (unsigned long long)G.err.no_session,
           (unsigned long long)G.err.unexpected);
}

/* ---- command line -----------------------------------------------------------------------------
 */

static void usage(void)
{
    fprintf(stderr,
            "usage: loadgen --url http://127.0.0.1:PORT/PATH [mode] [options]\n"
            "modes:\n"
            "  (default)          open loop at --rate R req/s for --duration S\n"
            "  --closed           closed loop: each connection sends as soon as it can\n"
            "  --sessions K       open K MCP sessions [--sse: and a GET stream each], print\n"
            "                     READY, hold --hold S (SIGUSR1/SIGINT/SIGTERM end the hold)\n"
            "  --init-only        MCP initialize; print session_id= and protocol_version=\n"
            "options:\n"
            "  --rate R (1000)  --duration S (10)  --warmup S (1)  -c|--connections N (16)\n"
            "  --body JSON | --body-file PATH     (default: tools/call echo)\n"
            "  -H 'Name: value'   extra request header (repeatable)\n"
            "  --mcp-init         initialize first; send its session id and protocol version\n"
            "  --protocol-version V (2025-11-25)  --expect STR (2xx bodies must contain STR)\n"
            "  --timeout MS (5000) per request  --concurrency N (64) sessions opened at once\n"
            "  --hold S (0)  --open-timeout S (120)\n");
    exit(2);
}

static void parse_url(const char *url)
{
    const char *p = url;
    if (strncmp(p, "http://", 7) != 0) {
        die("only http:// URLs: %s", url);
    }
    p += 7;
    size_t hn = strcspn(p, ":/");
    if (hn == 0 || hn >= sizeof(o.host)) {
        die("bad host in %s", url);
    }
    memcpy(o.host, p, hn);
    o.host[hn] = '\0';
    p += hn;
    if (*p == ':') {
        o.port = atoi(p + 1);
        p += 1 + strspn(p + 1, "0123456789");
    }
    snprintf(o.path, sizeof(o.path), "%s", *p ? p : "/");
    const char *ip = strcmp(o.host, "localhost") == 0 ? "127.0.0.1" : o.host;
    if (o.port <= 0 || o.port > 65535 || inet_pton(AF_INET, ip, &o.addr.sin_addr) != 1) {
        die("need an IPv4 literal host and a port: %s", url);
    }
    o.addr.sin_family = AF_INET;
    o.addr.sin_port = htons((uint16_t)o.port);
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        die("cannot open %s", path);
    }
    char *buf = malloc(1024 * 1024);
    if (buf == NULL) {
        die("%s", "out of memory");
    }
    *len = fread(buf, 1, 1024 * 1024 - 1, f);
    fclose(f);
    buf[*len] = '\0';
    while (*len > 0 && (buf[*len - 1] == '\n' || buf[*len - 1] == '\r')) {
        buf[--*len] = '\0';
    }
    return buf;
}

static void add_header(const char *h)
{
    if (strchr(h, ':') == NULL || strpbrk(h, "\r\n")) {
        die("bad header: %s", h);
    }
    size_t old = o.extra_headers ? strlen(o.extra_headers) : 0;
    o.extra_headers = realloc(o.extra_headers, old + strlen(h) + 3);
    sprintf(o.extra_headers + old, "%s\r\n", h);
}

static void parse_args(int argc, char **argv)
{
    int have_url = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define ARG(name) (strcmp(a, name) == 0 && v && (i++, 1))
        if (ARG("--url")) {
            parse_url(v);
            have_url = 1;
        } else if (ARG("--rate")) {
            o.rate = atof(v);
        } else if (ARG("--duration")) {
            o.duration_s = atof(v);
        } else if (ARG("--warmup")) {
            o.warmup_s = atof(v);
        } else if (ARG("-c") || ARG("--connections")) {
            o.connections = atoi(v);
        } else if (ARG("--body")) {
            o.body = v;
            o.body_len = strlen(v);
        } else if (ARG("--body-file")) {
            o.body = read_file(v, &o.body_len);
        } else if (ARG("-H") || ARG("--header")) {
            add_header(v);
        } else if (ARG("--protocol-version")) {
            o.protocol_version = v;
        } else if (ARG("--expect")) {
            o.expect = v;
        } else if (ARG("--timeout")) {
            o.timeout_ms = atoi(v);
        } else if (ARG("--sessions")) {
            o.mode = MODE_SESSIONS;
            o.sessions = atol(v);
        } else if (ARG("--concurrency")) {
            o.concurrency = atoi(v);
        } else if (ARG("--hold")) {
            o.hold_s = atof(v);
        } else if (ARG("--open-timeout")) {
            o.open_timeout_s = atof(v);
        } else if (strcmp(a, "--closed") == 0) {
            o.mode = MODE_CLOSED;
        } else if (strcmp(a, "--init-only") == 0) {
            o.mode = MODE_INIT_ONLY;
        } else if (strcmp(a, "--mcp-init") == 0) {
            o.mcp_init = 1;
        } else if (strcmp(a, "--sse") == 0) {
            o.sse = 1;
        } else {
            usage();
        }
#undef ARG
    }
    const char *bad =
        !have_url                                               ? "--url is required"
        : o.rate <= 0 || o.rate > LG_MAX_RATE                   ? "--rate is out of range"
        : o.duration_s <= 0 || o.duration_s > LG_MAX_DURATION_S ? "--duration is out of range"
        : o.warmup_s < 0 || o.warmup_s >= o.duration_s
            ? "--warmup must be at least 0 and less than --duration (the duration "
              "includes the warm-up)"
        : o.connections < 1 || o.connections > LG_MAX_CONNECTIONS ? "--connections is out of range"
        : o.timeout_ms < 1                                        ? "--timeout is out of range"
        : o.sessions < 0 || o.sessions > LG_MAX_CONNECTIONS       ? "--sessions is out of range"
        : o.concurrency < 1                                       ? "--concurrency is out of range"
        : o.hold_s < 0 || o.hold_s > 3600                         ? "--hold is out of range"
        : o.open_timeout_s <= 0                                   ? "--open-timeout is out of range"
                                                                  : NULL;
    if (bad != NULL) {
        fprintf(stderr, "loadgen: %s\n", bad);
        usage();
    }
    if (o.body == NULL) {
        o.body = LG_DEFAULT_BODY;
        o.body_len = strlen(o.body);
    }
}

/* Sessions with --sse hold one descriptor each: take what the hard limit allows. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && o.mode == MODE_SESSIONS && o.sse &&
        rl.rlim_cur < (rlim_t)o.sessions + 64) {
        fprintf(stderr, "loadgen: warning: RLIMIT_NOFILE %llu is below %ld sessions + 64\n",
                (unsigned long long)rl.rlim_cur, o.sessions);
    }
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit();
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0); /* wake-ups on time, to the microsecond */

    if (o.mode == MODE_INIT_ONLY || o.mcp_init) {
        mcp_initialize();
        if (o.mode == MODE_INIT_ONLY) {
            printf("session_id=%s\nprotocol_version=%s\n", G.session_id ? G.session_id : "",
                   G.negotiated_version);
            return 0;
        }
    }

    G.loop = uv_default_loop();
    G.nconns = o.mode == MODE_SESSIONS ? (o.sse ? (int)o.sessions : o.concurrency) : o.connections;
    G.conns = calloc((size_t)G.nconns + 1, sizeof(*G.conns));
    G.idle = calloc((size_t)G.nconns + 1, sizeof(*G.idle));
    if (G.conns == NULL || G.idle == NULL) {
        die("%s", "out of memory");
    }
    for (int i = 0; i < G.nconns; i++) {
        if (o.expect != NULL && o.mode != MODE_SESSIONS) {
            G.conns[i].rp.capture = malloc(LG_CAPTURE_MAX);
        }
    }
    if (o.mode != MODE_SESSIONS) {
        G.request = build_request("POST", o.body, o.body_len, G.session_id,
                                  o.mcp_init ? G.negotiated_version : NULL, &G.request_len);
    }

    uv_timer_init(G.loop, &G.watchdog);
    uv_timer_init(G.loop, &G.drain_timer);
    uv_timer_init(G.loop, &G.hold_timer);
    int signums[3] = {SIGINT, SIGTERM, SIGUSR1};
    for (int i = 0; i < 3; i++) {
        uv_signal_init(G.loop, &G.sigs[i]);
        uv_signal_start(&G.sigs[i], on_signal_cb, signums[i]);
    }
    uv_timer_start(&G.watchdog, on_watchdog_cb, 100, 100);
    G.start_ns = now_ns();

    if (o.mode == MODE_SESSIONS) {
        G.measure_from = UINT64_MAX;
        if (!o.sse) {
            for (int i = 0; i < G.nconns; i++) {
                conn_open(&G.conns[i]);
            }
        }
        sessions_pump();
        uv_run(G.loop, UV_RUN_DEFAULT);
        sessions_maybe_ready(1);
        report_sessions();
        return 0;
    }

    /* Connect the pool, then start the clock a little later so that connecting is not timed. */
    for (int i = 0; i < G.nconns; i++) {
        conn_open(&G.conns[i]);
    }
    G.t0 = now_ns() + 200 * 1000000u;
    G.measure_from = G.t0 + (uint64_t)(o.warmup_s * 1e9);
    G.end_ns = G.t0 + (uint64_t)(o.duration_s * 1e9);
    G.total = (uint64_t)(o.rate * o.duration_s);
    G.scheduling = 1;
    G.tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (G.tfd < 0) {
        die("timerfd_create: %s", strerror(errno));
    }
    uv_poll_init(G.loop, &G.tick, G.tfd);
    uv_poll_start(&G.tick, UV_READABLE, on_tick_cb);
    if (o.mode == MODE_CLOSED) {
        G.due = UINT64_MAX;
        G.t0 = now_ns(); /* closed loop: requests go out as soon as connections are up */
        G.measure_from = G.t0 + (uint64_t)(o.warmup_s * 1e9);
        G.end_ns = G.t0 + (uint64_t)(o.duration_s * 1e9);
        arm_tick(G.end_ns);
    } else {
        arm_tick(G.t0);
    }
    uv_run(G.loop, UV_RUN_DEFAULT);
    /* In-flight requests that never finished were timed out by the drain. */
    G.err.timeout += G.busy;
    report_load();
    return 0;
}
