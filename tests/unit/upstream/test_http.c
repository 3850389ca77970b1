/*
 * Tests of the Streamable HTTP upstream transport against real HTTP servers on loopback.
 *
 * Normal behaviour is checked against the reference MCP server ("everything") when it is
 * installed: tests/interop/node_modules/.bin/mcp-server-everything, or $MCP_EVERYTHING_BIN;
 * without it that test fails, naming what to install (a test that could not run is no pass). Faults
 * a real server cannot be made to produce come from the fault injector below: a tiny HTTP/1.1
 * server on libuv (raw TCP, canned responses written in timed steps, one request per connection)
 * that records every request it gets. A watchdog bounds every wait, so a bug shows up as a failed
 * check, never a hung test.
 */
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/err.h"
#include "test.h"
#include "upstream/transport-int.h"
#include "upstream/upstream.h"

/* ==== the fault injector ===================================================================== */

struct fi;
struct fi_conn;

struct fi_req {
    char method[16];
    char path[256];
    const char *headers; /* raw header block */
    const char *body;
};

typedef void (*fi_handler)(struct fi *fi, struct fi_conn *c, const struct fi_req *rq);

struct fi_step {
    unsigned delay_ms;
    char *data;
    bool close;
    struct fi_step *next;
};

struct fi_conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    struct fi *fi;
    struct buf in;
    bool handled, closing;
    int handles;
    struct fi_step *steps, *tail;
    struct fi_conn *next;
};

struct fi {
    uv_loop_t *loop;
    uv_tcp_t listener;
    int port;
    fi_handler handler;
    struct buf log; /* every request: "METHOD path\nheaders\nbody\n----\n" */
    int nreq, nopen, max_open;
    int naccepted;   /* connections accepted in all */
    bool keep_alive; /* a connection serves request after request (handlers must not close) */
    int counter;     /* for handlers */
    struct fi_conn *conns;
    struct fi_conn *held; /* a connection a handler keeps for later writes */
};

static void fi_conn_closed(uv_handle_t *h)
{
    struct fi_conn *c = h->data;
    if (--c->handles > 0)
        return;
    struct fi_step *s = c->steps;
    while (s) {
        struct fi_step *n = s->next;
        free(s->data);
        free(s);
        s = n;
    }
    buf_release(&c->in);
    free(c);
}

static void fi_conn_close(struct fi_conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    c->fi->nopen--;
    if (c->fi->held == c)
        c->fi->held = NULL;
    struct fi_conn **pp = &c->fi->conns;
    while (*pp != c)
        pp = &(*pp)->next;
    *pp = c->next;
    uv_close((uv_handle_t *)&c->tcp, fi_conn_closed);
    uv_close((uv_handle_t *)&c->timer, fi_conn_closed);
}

struct fi_write {
    uv_write_t req;
    char *data;
};

static void fi_written(uv_write_t *w, int status)
{
    struct fi_write *fw = (struct fi_write *)w;
    free(fw->data);
    free(fw);
}

static void fi_step_cb(uv_timer_t *h);

static void fi_schedule(struct fi_conn *c)
{
    if (c->steps && !c->closing && !uv_is_active((uv_handle_t *)&c->timer))
        uv_timer_start(&c->timer, fi_step_cb, c->steps->delay_ms, 0);
}

static void fi_step_cb(uv_timer_t *h)
{
    struct fi_conn *c = h->data;
    struct fi_step *s = c->steps;
    if (s == NULL || c->closing)
        return;
    c->steps = s->next;
    if (c->steps == NULL)
        c->tail = NULL;
    if (s->data) {
        struct fi_write *fw = malloc(sizeof(*fw));
        fw->data = s->data;
        s->data = NULL;
        uv_buf_t b = uv_buf_init(fw->data, (unsigned)strlen(fw->data));
        uv_write(&fw->req, (uv_stream_t *)&c->tcp, &b, 1, fi_written);
    }
    bool close = s->close;
    free(s);
    if (close)
        fi_conn_close(c);
    else
        fi_schedule(c);
}

/* After delay_ms (counted from the previous step), write data (may be NULL), then maybe close. */
static void fi_push(struct fi_conn *c, unsigned delay_ms, const char *data, bool close)
{
    struct fi_step *s = calloc(1, sizeof(*s));
    s->delay_ms = delay_ms;
    s->data = data ? strdup(data) : NULL;
    s->close = close;
    if (c->tail)
        c->tail->next = s;
    else
        c->steps = s;
    c->tail = s;
    fi_schedule(c);
}

/* A complete response with a body and Connection: close. */
static void fi_respond(struct fi_conn *c, int status, const char *ctype, const char *extra_headers,
                       const char *body)
{
    struct buf b;
    buf_init(&b, 1 << 22);
    buf_printf(&b, "HTTP/1.1 %d X\r\nConnection: close\r\nContent-Length: %zu\r\n", status,
               strlen(body));
    if (ctype)
        buf_printf(&b, "Content-Type: %s\r\n", ctype);
    buf_printf(&b, "%s\r\n%s", extra_headers ? extra_headers : "", body);
    fi_push(c, 0, b.data, true);
    buf_release(&b);
}

/* Start an SSE response; events follow with fi_push. */
static void fi_sse_start(struct fi_conn *c, const char *extra_headers)
{
    char head[512];
    snprintf(head, sizeof(head),
             "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: text/event-stream\r\n"
             "Cache-Control: no-cache\r\n%s\r\n",
             extra_headers ? extra_headers : "");
    fi_push(c, 0, head, false);
}

static void fi_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    static char slab[65536];
    *b = uv_buf_init(slab, sizeof(slab));
}

static void fi_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct fi_conn *c = s->data;
    if (n < 0) {
        fi_conn_close(c);
        return;
    }
    if (c->handled && !c->fi->keep_alive)
        return;
    buf_append(&c->in, b->base, (size_t)n);
next_request:;
    char *end = c->in.data ? strstr(c->in.data, "\r\n\r\n") : NULL;
    if (end == NULL)
        return;
    size_t hlen = (size_t)(end - c->in.data) + 4, clen = 0;
    const char *cl = strcasestr(c->in.data, "\r\nContent-Length:");
    if (cl && cl < end)
        clen = strtoul(cl + 17, NULL, 10);
    if (c->in.len < hlen + clen)
        return;
    c->handled = true;
    struct fi_req rq = {0};
    sscanf(c->in.data, "%15s %255s", rq.method, rq.path);
    c->in.data[hlen - 2] = '\0';
    rq.headers = c->in.data;
    char *body = strndup(c->in.data + hlen, clen);
    rq.body = body;
    struct fi *fi = c->fi;
    fi->nreq++;
    buf_printf(&fi->log, "%s\n%s\n----\n", rq.headers, body);
    fi->handler(fi, c, &rq);
    free(body);
    if (fi->keep_alive && !c->closing) {
        buf_consume(&c->in, hlen + clen);
        c->handled = false;
        if (c->in.len > 0)
            goto next_request;
    }
}

static void fi_accept(uv_stream_t *l, int status)
{
    struct fi *fi = l->data;
    struct fi_conn *c = calloc(1, sizeof(*c));
    c->fi = fi;
    buf_init(&c->in, 1 << 22);
    uv_tcp_init(fi->loop, &c->tcp);
    uv_timer_init(fi->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->handles = 2;
    c->next = fi->conns;
    fi->conns = c;
    fi->nopen++;
    fi->naccepted++;
    if (fi->nopen > fi->max_open)
        fi->max_open = fi->nopen;
    if (uv_accept(l, (uv_stream_t *)&c->tcp) == 0)
        uv_read_start((uv_stream_t *)&c->tcp, fi_alloc, fi_read);
    else
        fi_conn_close(c);
}

static void fi_start(struct fi *fi, uv_loop_t *loop, fi_handler h)
{
    memset(fi, 0, sizeof(*fi));
    fi->loop = loop;
    fi->handler = h;
    buf_init(&fi->log, 1 << 22);
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    uv_tcp_init(loop, &fi->listener);
    fi->listener.data = fi;
    uv_tcp_bind(&fi->listener, (const struct sockaddr *)&a, 0);
    uv_listen((uv_stream_t *)&fi->listener, 64, fi_accept);
    struct sockaddr_in got;
    int len = sizeof(got);
    uv_tcp_getsockname(&fi->listener, (struct sockaddr *)&got, &len);
    fi->port = ntohs(got.sin_port);
}

static void fi_stop(struct fi *fi)
{
    while (fi->conns)
        fi_conn_close(fi->conns);
    uv_close((uv_handle_t *)&fi->listener, NULL);
}

/* ==== the transport harness ================================================================== */

struct rec {
    uv_loop_t *loop;
    struct transport *t;
    int ndone, nmsg, nstate;
    int done_err[64];
    char done_why[64][512];
    void *done_rel[64];
    uint64_t done_at[64];
    json_t *msg[64];
    void *msg_rel[64];
    uint64_t msg_at[64];
    enum transport_state states[16];
    /* re-entrancy probes */
    bool close_in_msg, cancel_in_msg, send_in_done;
    int sent_in_done;
};

static void rec_message(void *owner, json_t *msg, void *related)
{
    struct rec *r = owner;
    if (r->nmsg < 64) {
        r->msg[r->nmsg] = json_incref(msg);
        r->msg_rel[r->nmsg] = related;
        r->msg_at[r->nmsg] = uv_now(r->loop);
        r->nmsg++;
    }
    if (r->cancel_in_msg)
        transport_cancel(r->t, related);
    if (r->close_in_msg)
        transport_close(r->t);
}

static void rec_done(void *owner, void *related, int err, const char *why)
{
    struct rec *r = owner;
    if (r->ndone < 64) {
        r->done_err[r->ndone] = err;
        snprintf(r->done_why[r->ndone], sizeof(r->done_why[0]), "%s", why ? why : "");
        r->done_rel[r->ndone] = related;
        r->done_at[r->ndone] = uv_now(r->loop);
    }
    r->ndone++;
    if (r->send_in_done && r->sent_in_done < 3) {
        json_t *m = json_pack("{s:s,s:i,s:s}", "jsonrpc", "2.0", "id", 100, "method", "ping");
        CHECK_INT(transport_send(r->t, m, (void *)(intptr_t)(100 + r->sent_in_done)), 0);
        r->sent_in_done++;
        json_decref(m);
    }
}

static void rec_state(void *owner, enum transport_state st, const char *why)
{
    struct rec *r = owner;
    if (r->nstate < 16)
        r->states[r->nstate++] = st;
}

static void rec_release(struct rec *r)
{
    for (int i = 0; i < r->nmsg && i < 64; i++)
        json_decref(r->msg[i]);
}

static bool timed_out;
static void watchdog_cb(uv_timer_t *h)
{
    timed_out = true;
}

/* Run the loop until *counter >= want or ms pass. Returns whether it got there. */
static bool run_until(uv_loop_t *loop, const int *counter, int want, unsigned ms)
{
    uv_timer_t wd;
    timed_out = false;
    uv_timer_init(loop, &wd);
    uv_timer_start(&wd, watchdog_cb, ms, 0);
    while (*counter < want && !timed_out)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&wd, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return *counter >= want;
}

static void run_for(uv_loop_t *loop, unsigned ms)
{
    int never = 0;
    run_until(loop, &never, 1, ms);
}

static void srv_init(struct config_server *s, char *url)
{
    memset(s, 0, sizeof(*s));
    static char name[] = "fi";
    s->name = name;
    s->transport = TRANSPORT_HTTP;
    s->url = url;
    s->timeouts = (struct config_timeouts){2000, 3000, 3000, 10000};
    s->max_concurrency = 4;
    s->max_message = 1 << 20;
}

static struct transport_cbs rec_cbs(struct rec *r)
{
    return (struct transport_cbs){r, rec_message, rec_done, rec_state};
}

static json_t *request(int id, const char *method)
{
    return json_pack("{s:s,s:i,s:s,s:{}}", "jsonrpc", "2.0", "id", id, "method", method, "params");
}

static int send_req(struct transport *t, int id, const char *method, intptr_t related)
{
    json_t *m = request(id, method);
    int err = transport_send(t, m, (void *)related);
    json_decref(m);
    return err;
}

/* Close the transport and the injector; the loop must then drain to nothing. */
static void finish(uv_loop_t *loop, struct rec *r, struct fi *fi)
{
    if (r->t)
        transport_close(r->t);
    if (fi)
        fi_stop(fi);
    uv_run(loop, UV_RUN_DEFAULT);
    CHECK_INT(uv_loop_close(loop), 0);
    if (fi)
        buf_release(&fi->log);
    rec_release(r);
}

#define SETUP(handler)                                                                             \
    uv_loop_t loop;                                                                                \
    uv_loop_init(&loop);                                                                           \
    struct fi fi;                                                                                  \
    fi_start(&fi, &loop, handler);                                                                 \
    char url[128];                                                                                 \
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/mcp", fi.port);                                \
    struct config_server srv;                                                                      \
    srv_init(&srv, url);                                                                           \
    struct rec r = {.loop = &loop};                                                                \
    struct transport_cbs cbs = rec_cbs(&r)

#define START()                                                                                    \
    do {                                                                                           \
        r.t = transport_new(&loop, &srv, &cbs);                                                    \
        CHECK(r.t != NULL);                                                                        \
    } while (0)

/* ==== fault scenarios ======================================================================== */

static void h_session(struct fi *fi, struct fi_conn *c, const struct fi_req *rq)
{
    int n = fi->counter++;
    if (n == 0)
        fi_respond(
            c, 200, "application/json", "Mcp-Session-Id: s-123\r\n",
            "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"protocolVersion\":\"2025-11-25\"}}");
    else if (n == 1)
        fi_respond(c, 202, NULL, "Mcp-Session-Id: other\r\n", "");
    else if (n == 2) /* a batch, as an older server may send */
        fi_respond(c, 200, "application/json; charset=utf-8", NULL,
                   "[{\"jsonrpc\":\"2.0\",\"method\":\"n\"},{\"jsonrpc\":\"2.0\",\"id\":3,"
                   "\"result\":{}}]");
    else if (strcmp(rq->method, "DELETE") == 0)
        fi_respond(c, 200, NULL, NULL, "");
    else
        fi_respond(c, 404, "text/plain", NULL, "no such session");
}

static void test_json_session_and_expiry(void)
{
    SETUP(h_session);
    char hk[] = "X-Static", hv[] = "yes";
    struct config_kv hdr = {hk, hv};
    srv.headers = &hdr;
    srv.nheaders = 1;
    START();
    CHECK_INT(transport_state(r.t), TRANSPORT_STARTING);
    CHECK_INT(send_req(r.t, 1, "initialize", 1), 0);
    CHECK(run_until(&loop, &r.ndone, 1, 5000));
    CHECK_INT(r.done_err[0], 0);
    CHECK_INT(r.nmsg, 1);
    CHECK(r.msg_rel[0] == (void *)1);
    CHECK_INT(transport_state(r.t), TRANSPORT_UP);
    CHECK(r.nstate >= 1 && r.states[0] == TRANSPORT_UP);
    transport_set_protocol_version(r.t, "2025-11-25");

    json_t *note = json_pack("{s:s,s:s}", "jsonrpc", "2.0", "method", "notifications/initialized");
    CHECK_INT(transport_send(r.t, note, (void *)2), 0);
    json_decref(note);
    CHECK(run_until(&loop, &r.ndone, 2, 5000));
    CHECK_INT(r.done_err[1], 0); /* 202 */
    CHECK_INT(r.nmsg, 1);

    CHECK_INT(send_req(r.t, 3, "tools/list", 3), 0);
    CHECK(run_until(&loop, &r.ndone, 3, 5000));
    CHECK_INT(r.done_err[2], 0);
    CHECK_INT(r.nmsg, 3); /* both elements of the batch */
    CHECK(r.msg_rel[2] == (void *)3);

    CHECK_INT(send_req(r.t, 4, "tools/list", 4), 0);
    CHECK(run_until(&loop, &r.ndone, 4, 5000));
    CHECK_INT(r.done_err[3], ERR_NOTFOUND);
    CHECK_STR(r.done_why[3], "upstream session expired (HTTP 404)");

    /* What the server saw: the headers, the first session id kept, the version once set. */
    CHECK_CONTAINS(fi.log.data, "POST /mcp HTTP/1.1");
    CHECK_CONTAINS(fi.log.data, "Accept: application/json, text/event-stream");
    CHECK_CONTAINS(fi.log.data, "Content-Type: application/json");
    CHECK_CONTAINS(fi.log.data, "X-Static: yes");
    CHECK_CONTAINS(fi.log.data, "Mcp-Session-Id: s-123");
    CHECK_CONTAINS(fi.log.data, "MCP-Protocol-Version: 2025-11-25");
    CHECK(strstr(fi.log.data, "Mcp-Session-Id: other") == NULL);
    CHECK_CONTAINS(fi.log.data, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\"");

    /* Close sends DELETE with the session id, best effort. */
    int before = fi.nreq;
    transport_close(r.t);
    r.t = NULL;
    CHECK(run_until(&loop, &fi.nreq, before + 1, 3000));
    CHECK_CONTAINS(fi.log.data, "DELETE /mcp HTTP/1.1");
    finish(&loop, &r, &fi);
}

static void h_errors(struct fi *fi, struct fi_conn *c, const struct fi_req *rq)
{
    switch (fi->counter++) {
    case 0:
        fi_respond(c, 500, "text/plain", NULL, "boom\nsecond line");
        break;
    case 1:
        fi_respond(c, 503, "text/html", NULL, "<h1>overloaded</h1>");
        break;
    case 2:
        fi_respond(
            c, 400, "application/json", NULL,
            "{\"jsonrpc\":\"2.0\",\"id\":3,\"error\":{\"code\":-32602,\"message\":\"bad\"}}");
        break;
    case 3: {
        /* A long error body is quoted only in part. */
        char body[1000];
        memset(body, 'x', sizeof(body) - 1);
        body[sizeof(body) - 1] = '\0';
        fi_respond(c, 502, "text/plain", NULL, body);
        break;
    }
    default:
        fi_respond(c, 200, "text/plain", NULL, "hello");
        break;
    }
}

static void test_http_errors(void)
{
    SETUP(h_errors);
    START();
    CHECK_INT(send_req(r.t, 1, "tools/call", 1), 0);
    CHECK(run_until(&loop, &r.ndone, 1, 5000));
    CHECK_INT(r.done_err[0], ERR_PROTOCOL);
    CHECK_STR(r.done_why[0], "HTTP 500 from upstream fi: boom second line");

    CHECK_INT(send_req(r.t, 2, "tools/call", 2), 0);
    CHECK(run_until(&loop, &r.ndone, 2, 5000));
    CHECK_INT(r.done_err[1], ERR_UNAVAILABLE);
    CHECK_CONTAINS(r.done_why[1], "HTTP 503 from upstream fi: <h1>overloaded</h1>");
    CHECK_INT(transport_state(r.t), TRANSPORT_DOWN);

    CHECK_INT(send_req(r.t, 3, "tools/call", 3), 0);
    CHECK(run_until(&loop, &r.ndone, 3, 5000));
    CHECK_INT(r.done_err[2], 0);
    CHECK_INT(r.nmsg, 1);
    CHECK(json_object_get(r.msg[0], "error") != NULL);
    CHECK(r.msg_rel[0] == (void *)3);
    CHECK_INT(transport_state(r.t), TRANSPORT_UP);

    CHECK_INT(send_req(r.t, 4, "tools/call", 4), 0);
    CHECK(run_until(&loop, &r.ndone, 4, 5000));
    CHECK_INT(r.done_err[3], ERR_UNAVAILABLE);
    CHECK_INT(strlen(r.done_why[3]), strlen("HTTP 502 from upstream fi: ") + 200);

    CHECK_INT(send_req(r.t, 5, "tools/call", 5), 0);
    CHECK(run_until(&loop, &r.ndone, 5, 5000));
    CHECK_INT(r.done_err[4], ERR_PROTOCOL);
    CHECK_CONTAINS(r.done_why[4], "Content-Type text/plain");
    finish(&loop, &r, &fi);
}

#define PROGRESS "data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\n"
#define RESULT "data: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n\n"

static void h_stream(struct fi *fi, struct fi_conn *c, const struct fi_req *rq)
{
    fi_sse_start(c, NULL);
    fi_push(c, 0, "id: a\ndata:\n\n: comment\n\n" PROGRESS, false);
    fi_push(c, 300, "data: this is not json\n\nevent: other\ndata: {}\n\n", false);
    fi_push(c, 10, "data: {\"jsonrpc\":\"2.0\",\r\ndata: \"id\":1,\"result\":{}}\r\n\r\n", true);
}

static void test_sse_stream(void)
{
    SETUP(h_stream);
    START();
    CHECK_INT(send_req(r.t, 1, "tools/call", 7), 0);
    CHECK(run_until(&loop, &r.ndone, 1, 5000));
    CHECK_INT(r.done_err[0], 0);
    CHECK_INT(r.nmsg, 2); /* priming event, comment, garbage and other types skipped */
    CHECK(r.msg_rel[0] == (void *)7 && r.msg_rel[1] == (void *)7);
    CHECK_STR(json_string_value(json_object_get(r.msg[0], "method")), "notifications/progress");
    CHECK(json_object_get(r.msg[1], "result") != NULL);
    /* The first event was delivered as it arrived, not at the end. */
    CHECK(r.done_at[0] - r.msg_at[0] >= 250);
    finish(&loop, &r, &fi);
}

static void h_silent(struct fi *fi, struct fi_conn *c, const struct fi_req *rq)
{
    /* never answers */
}

static void test_first_byte_timeout(void)
{
    SETUP(h_silent);
    srv.timeouts.first_byte_ms = 200;
    START();
    CHECK_INT(send_req(r.t, 1, "tools/call", 1), 0);
    CHECK(run_until(&loop, &r.ndone, 1, 5000));
    CHECK_INT(r.done_err[0], ERR_TIMEOUT);
    CHECK_STR(r.done_why[0], "no first byte from upstream fi within 200 ms");
    finish(&loop, &r, &fi);
}

static void h_stall(struct fi *fi, struct fi_conn *c, const struct fi_req *rq)
{
    fi_sse_start(c, NULL);
    fi_push(c, 0, PROGRESS, false);
    if (fi->counter++ == 1) /* the second one keeps talking, but too long */
        for (int i = 0; i < 20; i++)
            fi_push(c, 100, ": tick\n\n", false);
}

static void test_idle_and_total_timeout(void)
{
    SETUP(h_stall);
    srv.timeouts.idle_ms = 250;
    srv.timeouts.total_ms = 700;
    START();
    CHECK_INT(send_req(r.t, 1, "tools/call", 1), 0);
    CHECK(run_until(&loop, &r.ndone, 1, 5000));
    CHECK_INT(r.nmsg, 1);
    CHECK_INT(r.done_err[0], ERR_TIMEOUT);
    CHECK_STR(r.done_why[0], "upstream fi sent nothing for 250 ms (idle stream)");

    CHECK_INT(send_req(r.t, 2, "tools/call", 2), 0);
    CHECK(run_until(&loop, &r.ndone, 2, 5000));
    CHECK_INT(r.done_err[1], ERR_TIMEOUT);
    CHECK_STR(r.done_why[1], "upstream fi did not complete the exchange within 700 ms");
    finish(&loop, &r, &fi);
}

static void h_big(struct fi *fi, struct fi_conn *c, const struct fi_req *rq)
{
    char *big = malloc(5004);
    memset(big, ' ', 4999);
    big[0] = '{';
    big[4997] = '}';
    big[4998] = '\0';
    if (fi->counter++ == 0) {
        fi_respond(c, 200, "application/json", NULL, big);
    } else {
        fi_sse_start(c, NULL);
        fi_push(c, 0, PROGRESS, false);
        memcpy(big, "data: ", 6);
        strcat(big, "\n\n");
        fi_push(c, 0, big, true);
    }
    free(big);
}

static void test_oversized(void)
{
    SETUP(h_big);
    srv.max_message = 1024;
    START();
    CHECK_INT(send_req(r.t, 1, "tools/call", 1), 0);
    CHECK(run_until(&loop, &r.ndone, 1, 5000));
    CHECK_INT(r.done_err[0], ERR_LIMIT);
    CHECK_STR(r.done_why[0], "response from upstream fi exceeds max_message (1024 bytes)");
    CHECK_INT(send_req(r.t, 2, "tools/call", 2), 0);
    CHECK(run_until(&loop, &r.ndone, 2, 5000));
    CHECK_INT(r.done_err[1], ERR_LIMIT);
    CHECK_CONTAINS(r.done_why[1], "an SSE event from upstream fi exceeds max_message");
    CHECK_INT(r.nmsg, 1);
    finish(&loop, &r, &fi);
}

static void test_connection_refused(void)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    /* A port that was just free: bind, learn it, close. */
    struct fi fi;
    fi_start(&fi, &loop, h_silent);
    int port = fi.port;
    fi_stop(&fi);
    uv_run(&loop, UV_RUN_DEFAULT);
    buf_release(&fi.log);
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/mcp", port);
    struct config_server srv;
    srv_init(&srv, url);
    struct rec r = {.loop = &loop};
    struct transport_cbs cbs = rec_cbs(&r);
    START();
    CHECK_INT(send_req(r.t, 1, "initialize", 1), 0);
    CHECK(run_until(&loop, &r.ndone, 1, 5000));
    CHECK_INT(r.done_err[0], ERR_UNAVAILABLE);
    CHECK_CONTAINS(r.done_why[0], "upstream fi unreachable: ");
    CHECK_INT(transport_state(r.t), TRANSPORT_DOWN);
    finish(&loop, &r, NULL);
}

/* The 2024-11-05 HTTP+SSE transport: POST to the URL is 405, GET gives the endpoint. */
static void h_legacy(struct fi *fi, struct fi_conn *c, const struct fi_req *rq)
{
    if (strcmp(rq->method, "POST") == 0 && strcmp(rq->path, "/mcp") == 0) {
        fi_respond(c, 405, "text/plain", NULL, "Method Not Allowed");
    } else if (strcmp(rq->method, "GET") == 0) {
        fi_sse_start(c, NULL);
        fi_push(c, 0, "event: endpoint\ndata: /messages?sessionId=abc\n\n", false);
        fi->held = c;
    } else if (strncmp(rq->path, "/messages?sessionId=abc", 23) == 0 && fi->held) {
        fi_respond(c, 202, "text/plain", NULL, "Accepted");
        char ev[512];
        const char *id = strstr(rq->body, "\"id\":");
        snprintf(ev, sizeof(ev),
                 "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":%d,\"result\":{}}\n\n",
                 id ? atoi(id + 5) : 0);
        fi_push(fi->held, 20, ev, false);
    } else {
        fi_respond(c, 404, "text/plain", NULL, "?");
    }
}

static void test_legacy_fallback(void)
{
    SETUP(h_legacy);
    START();
    CHECK_INT(send_req(r.t, 1, "initialize", 1), 0);
    CHECK(run_until(&loop, &r.nmsg, 1, 5000));
    CHECK(run_until(&loop, &r.ndone, 1, 5000));
    CHECK_INT(r.done_err[0], 0);
    CHECK(r.done_rel[0] == (void *)1);
    CHECK(r.msg_rel[0] == NULL);
    CHECK_INT(json_integer_value(json_object_get(r.msg[0], "id")), 1);
    CHECK_INT(transport_state(r.t), TRANSPORT_UP);
    CHECK_INT(transport_listen(r.t), 0); /* nothing more to open */

    CHECK_INT(send_req(r.t, 2, "tools/list", 2), 0);
    CHECK(run_until(&loop, &r.nmsg, 2, 5000));
    CHECK(run_until(&loop, &r.ndone, 2, 5000));
    CHECK_INT(r.done_err[1], 0);
    CHECK_INT(json_integer_value(json_object_get(r.msg[1], "id")), 2);
    CHECK_CONTAINS(fi.log.data, "GET /mcp HTTP/1.1");
    CHECK_CONTAINS(fi.log.data, "Accept: text/event-stream");
    CHECK_CONTAINS(fi.log.data, "POST /messages?sessionId=abc HTTP/1.1");
    finish(&loop, &r, &fi);
}

static void h_legacy_evil(struct fi *fi, struct fi_conn *c, const struct fi_req *rq)
{
    if (strcmp(rq->method, "POST") == 0) {
        fi_respond(c, 404, "text/plain", NULL, "Not Found");
    } else {
        fi_sse_start(c, NULL);
        fi_push(c, 0, "event: endpoint\ndata: http://198.51.100.7/steal\n\n", false);
    }
}

static void test_legacy_other_origin_refused(void)
{
    SETUP(h_legacy_evil);
    START();
    CHECK_INT(send_req(r.t, 1, "initialize", 1), 0);
    CHECK(run_until(&loop, &r.ndone, 1, 5000));
    CHECK_INT(r.done_err[0], ERR_PROTOCOL);
    CHECK_CONTAINS(r.done_why[0], "HTTP 404 from upstream fi: Not Found; and no HTTP+SSE endpoint");
    CHECK_CONTAINS(r.done_why[0], "unusable HTTP+SSE endpoint");
    CHECK_INT(fi.nreq, 2); /* nothing was posted to the other origin */
    finish(&loop, &r, &fi);
}

static void h_slow_ok(struct fi *fi, struct fi_conn *c, const struct fi_req *rq)
{
    fi_push(c, 150,
            "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: application/json\r\n"
            "Content-Length: 38\r\n\r\n{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n\n",
            true);
}

static void test_concurrency_and_queue(void)
{
    SETUP(h_slow_ok);
    srv.max_concurrency = 2;
    START();
    for (int i = 0; i < 10; i++)
        CHECK_INT(send_req(r.t, i, "tools/call", 10 + i), 0);
    CHECK_INT(send_req(r.t, 99, "tools/call", 99), ERR_LIMIT);
    CHECK(run_until(&loop, &r.ndone, 10, 8000));
    for (int i = 0; i < 10; i++) {
        CHECK_INT(r.done_err[i], 0);
        CHECK(r.done_rel[i] == (void *)(intptr_t)(10 + i)); /* FIFO */
    }
    CHECK(fi.max_open <= 2);
    CHECK_INT(fi.nreq, 10);
    finish(&loop, &r, &fi);
}

static void h_keep_alive_ok(struct fi *fi, struct fi_conn *c, const struct fi_req *rq)
{
    fi_push(c, 20,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            "Content-Length: 36\r\n\r\n{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}",
            false);
}

/* Bursts of calls, each followed by a lull of one call at a time: the connections of a burst
   stay open for the next one (libcurl's default would keep only four per transfer left in
   flight and close the rest as the burst drains). */
static void test_connections_kept(void)
{
    SETUP(h_keep_alive_ok);
    fi.keep_alive = true;
    srv.max_concurrency = 8;
    START();
    int sent = 0;
    for (int round = 0; round < 5; round++) {
        for (int i = 0; i < 8; i++, sent++)
            CHECK_INT(send_req(r.t, sent, "tools/call", 100 + sent), 0);
        CHECK(run_until(&loop, &r.ndone, sent, 5000));
        CHECK_INT(send_req(r.t, sent, "tools/call", 100 + sent), 0);
        sent++;
        CHECK(run_until(&loop, &r.ndone, sent, 5000));
    }
    for (int i = 0; i < sent; i++)
        CHECK_INT(r.done_err[i], 0);
    CHECK_INT(fi.nreq, sent);
    CHECK(fi.naccepted <= 8);
    finish(&loop, &r, &fi);
}

static void count_iteration(uv_prepare_t *h)
{
    (*(int *)h->data)++;
}

/* A server closes an idle keep-alive connection: the gateway stops watching that socket (the loop
   does not spin on its end of file) and the next call goes out on a new connection. */
static void test_idle_connection_closed(void)
{
    SETUP(h_keep_alive_ok);
    fi.keep_alive = true;
    START();
    CHECK_INT(send_req(r.t, 1, "tools/call", 1), 0);
    CHECK(run_until(&loop, &r.ndone, 1, 5000));
    CHECK_INT(fi.nopen, 1);
    while (fi.conns)
        fi_conn_close(fi.conns);
    int iterations = 0;
    uv_prepare_t prep;
    uv_prepare_init(&loop, &prep);
    prep.data = &iterations;
    uv_prepare_start(&prep, count_iteration);
    run_for(&loop, 200);
    uv_prepare_stop(&prep);
    uv_close((uv_handle_t *)&prep, NULL);
    CHECK(iterations < 50); /* a few wake-ups, not a busy loop */
    CHECK_INT(send_req(r.t, 2, "tools/call", 2), 0);
    CHECK(run_until(&loop, &r.ndone, 2, 5000));
    CHECK_INT(r.done_err[0], 0);
    CHECK_INT(r.done_err[1], 0);
    CHECK_INT(fi.naccepted, 2);
    finish(&loop, &r, &fi);
}

/* initialize answers with session s-<n>; everything else with an empty result. */
static void h_new_sessions(struct fi *fi, struct fi_conn *c, const struct fi_req *rq)
{
    if (strstr(rq->body, "\"initialize\"") != NULL) {
        char hdr[64];
        snprintf(hdr, sizeof(hdr), "Mcp-Session-Id: s-%d\r\n", ++fi->counter);
        fi_respond(
            c, 200, "application/json", hdr,
            "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"protocolVersion\":\"2025-11-25\"}}");
    } else {
        fi_respond(c, 200, "application/json", NULL,
                   "{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{}}");
    }
}

/* Calls carry the session they are sent in, also when it changes between two calls (the header
   lines of plain calls are built once per session and version, not per call). */
static void test_headers_follow_session(void)
{
    SETUP(h_new_sessions);
    START();
    CHECK_INT(send_req(r.t, 1, "initialize", 1), 0);
    CHECK(run_until(&loop, &r.ndone, 1, 5000));
    transport_set_protocol_version(r.t, "2025-11-25");
    CHECK_INT(send_req(r.t, 2, "tools/call", 2), 0);
    CHECK(run_until(&loop, &r.ndone, 2, 5000));
    transport_reset_session(r.t);
    CHECK_INT(send_req(r.t, 3, "initialize", 3), 0);
    CHECK(run_until(&loop, &r.ndone, 3, 5000));
    transport_set_protocol_version(r.t, "2025-06-18");
    size_t mark = fi.log.len;
    CHECK_INT(send_req(r.t, 4, "tools/call", 4), 0);
    CHECK(run_until(&loop, &r.ndone, 4, 5000));
    for (int i = 0; i < 4; i++)
        CHECK_INT(r.done_err[i], 0);
    const char *last = fi.log.data + mark;
    CHECK_CONTAINS(last, "Mcp-Session-Id: s-2\r\n");
    CHECK_CONTAINS(last, "MCP-Protocol-Version: 2025-06-18\r\n");
    CHECK(strstr(last, "s-1") == NULL);
    CHECK(strstr(last, "2025-11-25") == NULL);
    finish(&loop, &r, &fi);
}

static void h_hold_then_answer(struct fi *fi, struct fi_conn *c, const struct fi_req *rq)
{
    fi_sse_start(c, NULL);
    fi_push(c, 0, PROGRESS, false);
    fi_push(c, 200, RESULT, true);
}

static void test_cancel_and_reentrancy(void)
{
    SETUP(h_hold_then_answer);
    START();
    /* Cancel before anything came back: no done_cb. */
    CHECK_INT(send_req(r.t, 1, "tools/call", 1), 0);
    CHECK_INT(send_req(r.t, 2, "tools/call", 2), 0);
    transport_cancel(r.t, (void *)1);
    CHECK(run_until(&loop, &r.ndone, 1, 5000));
    run_for(&loop, 300);
    CHECK_INT(r.ndone, 1);
    CHECK(r.done_rel[0] == (void *)2);

    /* Cancel from inside message_cb: the stream stops there. */
    r.cancel_in_msg = true;
    int msgs = r.nmsg;
    CHECK_INT(send_req(r.t, 3, "tools/call", 3), 0);
    CHECK(run_until(&loop, &r.nmsg, msgs + 1, 5000));
    run_for(&loop, 400);
    CHECK_INT(r.nmsg, msgs + 1);
    CHECK_INT(r.ndone, 1);
    r.cancel_in_msg = false;

    /* Send from inside done_cb. */
    r.send_in_done = true;
    CHECK_INT(send_req(r.t, 4, "tools/call", 4), 0);
    CHECK(run_until(&loop, &r.ndone, 5, 5000));
    r.send_in_done = false;
    CHECK(run_until(&loop, &r.ndone, 5, 5000));

    /* Close from inside message_cb: nothing after that. */
    r.close_in_msg = true;
    msgs = r.nmsg;
    int done = r.ndone;
    CHECK_INT(send_req(r.t, 5, "tools/call", 5), 0);
    CHECK(run_until(&loop, &r.nmsg, msgs + 1, 5000));
    run_for(&loop, 400);
    CHECK_INT(r.nmsg, msgs + 1);
    CHECK(r.ndone <= done + 3); /* the pings sent from done_cb may have finished before */
    r.t = NULL;
    finish(&loop, &r, &fi);
}

static void h_listen(struct fi *fi, struct fi_conn *c, const struct fi_req *rq)
{
    if (strcmp(rq->method, "POST") == 0) {
        fi_respond(c, 200, "application/json", "Mcp-Session-Id: sess-9\r\n",
                   "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}");
        return;
    }
    if (fi->counter++ == 0) {
        fi_sse_start(c, NULL);
        fi_push(c, 0, "retry: 100\nid: ev-5\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"x\"}\n\n",
                true);
    } else {
        fi_respond(c, 405, "text/plain", NULL, "no");
    }
}

static void test_listen_reconnect_and_405(void)
{
    SETUP(h_listen);
    START();
    CHECK_INT(send_req(r.t, 1, "initialize", 1), 0);
    CHECK(run_until(&loop, &r.ndone, 1, 5000));
    CHECK_INT(transport_listen(r.t), 0);
    CHECK(run_until(&loop, &r.nmsg, 2, 5000));
    CHECK(r.msg_rel[1] == NULL);
    CHECK(run_until(&loop, &fi.nreq, 3, 5000)); /* the reconnect, after >= 1 s */
    run_for(&loop, 2500);
    CHECK_INT(fi.nreq, 3); /* 405: no more tries */
    const char *second = strstr(fi.log.data, "GET /mcp");
    CHECK(second != NULL);
    CHECK_CONTAINS(second, "Mcp-Session-Id: sess-9");
    second = second ? strstr(second + 1, "GET /mcp") : NULL;
    CHECK_CONTAINS(second, "Last-Event-ID: ev-5");
    finish(&loop, &r, &fi);
}

/* ==== the reference server =================================================================== */

static const char *everything_bin(void)
{
    static const char local[] = "tests/interop/node_modules/.bin/mcp-server-everything";
    if (access(local, X_OK) == 0)
        return local;
    const char *env = getenv("MCP_EVERYTHING_BIN");
    if (env && access(env, X_OK) == 0)
        return env;
    return NULL;
}

static void test_reference_server(void)
{
    const char *bin = everything_bin();
    if (bin == NULL) {
        fprintf(stderr,
                "test_reference_server could not run: no %s and no $MCP_EVERYTHING_BIN "
                "(install it: scripts/deps.sh test)\n",
                "tests/interop/node_modules/.bin/mcp-server-everything");
        CHECK(bin != NULL);
        return;
    }
    uv_loop_t loop;
    uv_loop_init(&loop);
    /* An ephemeral port that is free right now. */
    struct fi probe;
    fi_start(&probe, &loop, h_silent);
    int port = probe.port;
    fi_stop(&probe);
    uv_run(&loop, UV_RUN_DEFAULT);
    buf_release(&probe.log);

    fflush(stdout); /* or the child flushes our buffered output a second time */
    pid_t pid = fork();
    if (pid == 0) {
        char p[16];
        snprintf(p, sizeof(p), "%d", port);
        setenv("PORT", p, 1);
        setpgid(0, 0);
        if (freopen("/dev/null", "w", stdout) == NULL || freopen("/dev/null", "w", stderr) == NULL)
            _exit(126);
        execl(bin, bin, "streamableHttp", (char *)NULL);
        _exit(127);
    }
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/mcp", port);
    struct config_server srv;
    srv_init(&srv, url);
    char name[] = "everything";
    srv.name = name;
    struct rec r = {.loop = &loop};
    struct transport_cbs cbs = rec_cbs(&r);
    r.t = transport_new(&loop, &srv, &cbs);

    /* Wait for the server to listen: retry initialize while the connection is refused. */
    json_t *init =
        json_pack("{s:s,s:i,s:s,s:{s:s,s:{},s:{s:s,s:s}}}", "jsonrpc", "2.0", "id", 1, "method",
                  "initialize", "params", "protocolVersion", "2025-11-25", "capabilities",
                  "clientInfo", "name", "gatehouse-test", "version", "0");
    for (int i = 0; i < 100; i++) {
        CHECK_INT(transport_send(r.t, init, (void *)1), 0);
        CHECK(run_until(&loop, &r.ndone, i + 1, 5000));
        if (r.done_err[i] != ERR_UNAVAILABLE)
            break;
        run_for(&loop, 100);
    }
    json_decref(init);
    int d = r.ndone;
    CHECK_INT(r.done_err[d - 1], 0);
    CHECK_INT(r.nmsg, 1);
    json_t *res = r.nmsg ? json_object_get(r.msg[0], "result") : NULL;
    CHECK_STR(json_string_value(json_object_get(res, "protocolVersion")), "2025-11-25");
    transport_set_protocol_version(r.t, "2025-11-25");

    json_t *m = json_pack("{s:s,s:s}", "jsonrpc", "2.0", "method", "notifications/initialized");
    CHECK_INT(transport_send(r.t, m, (void *)2), 0);
    json_decref(m);
    CHECK(run_until(&loop, &r.ndone, d + 1, 5000));
    CHECK_INT(r.done_err[d], 0);
    CHECK_INT(transport_listen(r.t), 0);

    CHECK_INT(send_req(r.t, 2, "tools/list", 3), 0);
    CHECK(run_until(&loop, &r.ndone, d + 2, 5000));
    CHECK_INT(r.done_err[d + 1], 0);
    CHECK_INT(r.nmsg, 2);
    json_t *tools =
        r.nmsg >= 2 ? json_object_get(json_object_get(r.msg[1], "result"), "tools") : NULL;
    CHECK(json_array_size(tools) > 3);

    m = json_pack("{s:s,s:i,s:s,s:{s:s,s:{s:s}}}", "jsonrpc", "2.0", "id", 3, "method",
                  "tools/call", "params", "name", "echo", "arguments", "message", "hi there");
    CHECK_INT(transport_send(r.t, m, (void *)4), 0);
    json_decref(m);
    CHECK(run_until(&loop, &r.ndone, d + 3, 5000));
    CHECK_INT(r.done_err[d + 2], 0);
    CHECK_INT(r.nmsg, 3);
    char *s = r.nmsg >= 3 ? json_dumps(r.msg[2], JSON_COMPACT) : NULL;
    CHECK_CONTAINS(s, "hi there");
    free(s);

    /* Progress streams over SSE while the call runs. */
    m = json_pack("{s:s,s:i,s:s,s:{s:s,s:{s:i,s:i},s:{s:s}}}", "jsonrpc", "2.0", "id", 4, "method",
                  "tools/call", "params", "name", "trigger-long-running-operation", "arguments",
                  "duration", 1, "steps", 3, "_meta", "progressToken", "p1");
    int before = r.nmsg;
    CHECK_INT(transport_send(r.t, m, (void *)5), 0);
    json_decref(m);
    CHECK(run_until(&loop, &r.ndone, d + 4, 10000));
    CHECK_INT(r.done_err[d + 3], 0);
    int progress = 0, result = 0;
    for (int i = before; i < r.nmsg; i++) {
        const char *meth = json_string_value(json_object_get(r.msg[i], "method"));
        if (meth && strcmp(meth, "notifications/progress") == 0 && r.msg_rel[i] == (void *)5)
            progress++;
        if (json_object_get(r.msg[i], "result") && r.msg_rel[i] == (void *)5) {
            result++;
            CHECK(r.msg_at[i] - r.msg_at[before] >= 500); /* progress came well before */
        }
    }
    CHECK_INT(progress, 3);
    CHECK_INT(result, 1);
    CHECK_INT(transport_state(r.t), TRANSPORT_UP);

    finish(&loop, &r, NULL);
    kill(-pid, SIGTERM);
    waitpid(pid, NULL, 0);
}

static void init(void)
{
    CHECK_INT(upstream_global_init(), 0);
    signal(SIGPIPE, SIG_IGN);
}

/* ==== what the gateway adds to a call (transport_send_call) ================================== */

static void h_ok(struct fi *fi, struct fi_conn *c, const struct fi_req *rq)
{
    (void)rq;
    char body[100];
    snprintf(body, sizeof(body), "{\"jsonrpc\":\"2.0\",\"id\":%d,\"result\":{}}", ++fi->counter);
    fi_respond(c, 200, "application/json", NULL, body);
}

static void test_outbound_headers(void)
{
    SETUP(h_ok);
    START();
    struct outbound out;
    outbound_init(&out);
    CHECK_INT(outbound_add(&out, OUTBOUND_HEADER, 0, "X-Gatehouse-User", "alice smith", 11), 0);
    CHECK_INT(outbound_add(&out, OUTBOUND_HEADER, OUTBOUND_MODERN_ONLY, "Mcp-Param-Region",
                           "\xc3\xa9u", 3),
              0);
    CHECK_INT(outbound_add(&out, OUTBOUND_QUERY, 0, "tenant", "t1", 2), 0); /* not HTTP's */
    CHECK_INT(outbound_add(&out, OUTBOUND_HEADER, 0, "Bad:Name", "x", 1), ERR_INVAL);
    /* A legacy request: the plain header only. */
    json_t *m = request(1, "tools/call");
    CHECK_INT(transport_send_call(r.t, m, (void *)1, &out), 0);
    json_decref(m);
    CHECK(run_until(&loop, &r.ndone, 1, 5000));
    CHECK_CONTAINS(fi.log.data, "X-Gatehouse-User: alice smith\r\n");
    CHECK(strstr(fi.log.data, "Mcp-Param-Region") == NULL);
    CHECK(strstr(fi.log.data, "tenant") == NULL);
    /* A 2026-07-28 request: the Mcp-Param-* one too, base64 when not plain ASCII. */
    m = json_pack("{s:s, s:i, s:s, s:{s:s, s:{s:s}}}", "jsonrpc", "2.0", "id", 2, "method",
                  "tools/call", "params", "name", "t", "_meta",
                  "io.modelcontextprotocol/protocolVersion", "2026-07-28");
    CHECK_INT(transport_send_call(r.t, m, (void *)2, &out), 0);
    json_decref(m);
    CHECK(run_until(&loop, &r.ndone, 2, 5000));
    CHECK_CONTAINS(fi.log.data, "Mcp-Param-Region: =?base64?w6l1?=\r\n");
    /* A value that cannot go on the wire as it is: refused, nothing sent. */
    struct outbound bad;
    outbound_init(&bad);
    CHECK_INT(outbound_add(&bad, OUTBOUND_HEADER, 0, "X-Injected", "a\r\nX-Evil: 1", 12), 0);
    int before = fi.nreq;
    m = request(3, "tools/call");
    CHECK_INT(transport_send_call(r.t, m, (void *)3, &bad), ERR_INVAL);
    json_decref(m);
    run_for(&loop, 100);
    CHECK_INT(fi.nreq, before);
    CHECK(strstr(fi.log.data, "X-Evil") == NULL);
    outbound_release(&bad);
    outbound_release(&out);
    finish(&loop, &r, &fi);
}

TEST_MAIN(TEST(init), TEST(test_json_session_and_expiry), TEST(test_http_errors),
          TEST(test_sse_stream), TEST(test_first_byte_timeout), TEST(test_idle_and_total_timeout),
          TEST(test_oversized), TEST(test_connection_refused), TEST(test_legacy_fallback),
          TEST(test_legacy_other_origin_refused), TEST(test_concurrency_and_queue),
          TEST(test_connections_kept), TEST(test_headers_follow_session),
          TEST(test_idle_connection_closed), TEST(test_cancel_and_reentrancy),
          TEST(test_listen_reconnect_and_405), TEST(test_reference_server),
          TEST(test_outbound_headers))
