/*
 * The OpenAPI transport honours a call's outbound additions (transport_send_call): its header,
 * query and cookie entries go on the API request beside the operation's own parameters; a
 * header value that cannot go on the wire as it is fails the call with a tool error naming it,
 * and nothing is sent. The API is a real HTTP listener on loopback (libuv, one canned answer per
 * connection) that records what it receives.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/rand.h"
#include "test.h"
#include "upstream/transport-int.h"

struct api {
    uv_tcp_t listener;
    int port;
    struct buf seen; /* every request head received */
    int nreq;
};

struct conn {
    uv_tcp_t tcp;
    struct api *api;
    uv_write_t wr;
    char head[8192];
    size_t len;
};

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    struct conn *c = h->data;
    (void)suggested;
    *b = uv_buf_init(c->head + c->len, (unsigned)(sizeof(c->head) - 1 - c->len));
}

static void conn_closed(uv_handle_t *h)
{
    free(h->data);
}

static void written_cb(uv_write_t *w, int status)
{
    (void)status;
    uv_close((uv_handle_t *)w->handle, conn_closed);
}

static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct conn *c = s->data;
    (void)b;
    if (n < 0) {
        uv_close((uv_handle_t *)s, conn_closed);
        return;
    }
    c->len += (size_t)n;
    c->head[c->len] = '\0';
    if (strstr(c->head, "\r\n\r\n") == NULL)
        return;
    uv_read_stop(s);
    buf_append_str(&c->api->seen, c->head);
    buf_append_str(&c->api->seen, "----\n");
    c->api->nreq++;
    static char answer[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                           "11\r\nConnection: close\r\n\r\n{\"ok\":true}";
    uv_buf_t out = uv_buf_init(answer, (unsigned)strlen(answer));
    uv_write(&c->wr, s, &out, 1, written_cb);
}

static void accept_cb(uv_stream_t *l, int status)
{
    struct api *api = l->data;
    if (status < 0)
        return;
    struct conn *c = calloc(1, sizeof(*c));
    c->api = api;
    uv_tcp_init(l->loop, &c->tcp);
    c->tcp.data = c;
    if (uv_accept(l, (uv_stream_t *)&c->tcp) == 0)
        uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
    else
        uv_close((uv_handle_t *)&c->tcp, conn_closed);
}

static void api_start(struct api *api, uv_loop_t *loop)
{
    memset(api, 0, sizeof(*api));
    buf_init(&api->seen, 1 << 20);
    uv_tcp_init(loop, &api->listener);
    api->listener.data = api;
    struct sockaddr_in sa;
    uv_ip4_addr("127.0.0.1", 0, &sa);
    CHECK_INT(uv_tcp_bind(&api->listener, (const struct sockaddr *)&sa, 0), 0);
    CHECK_INT(uv_listen((uv_stream_t *)&api->listener, 16, accept_cb), 0);
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    uv_tcp_getsockname(&api->listener, (struct sockaddr *)&ss, &len);
    api->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

/* --- the transport's owner --- */

struct rec {
    bool up;
    json_t *msgs;
};

static void on_message(void *owner, json_t *msg, void *related)
{
    struct rec *r = owner;
    (void)related;
    json_array_append(r->msgs, msg);
}

static void on_state(void *owner, enum transport_state st, const char *why)
{
    struct rec *r = owner;
    if (st != TRANSPORT_UP)
        fprintf(stderr, "state %d: %s\n", (int)st, why ? why : "");
    r->up = st == TRANSPORT_UP;
}

static void run_until(uv_loop_t *loop, bool (*pred)(void *), void *arg, int ms)
{
    double end = test_now_ms_() + ms;
    while (!pred(arg) && test_now_ms_() < end)
        uv_run(loop, UV_RUN_NOWAIT);
}

static bool is_up(void *arg)
{
    return ((struct rec *)arg)->up;
}

static size_t want;
static bool has_msgs(void *arg)
{
    return json_array_size(((struct rec *)arg)->msgs) >= want;
}

static void test_outbound_on_api_requests(void)
{
    CHECK_INT(core_init(), 0);
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct api api;
    api_start(&api, &loop);
    char spec[] = "/tmp/gh-oa-outbound-XXXXXX.json";
    int fd = mkstemps(spec, 5);
    CHECK(fd >= 0);
    const char *doc = "{\"openapi\":\"3.0.3\",\"info\":{\"title\":\"t\",\"version\":\"1\"},"
                      "\"paths\":{\"/items\":{\"get\":{\"operationId\":\"listItems\","
                      "\"parameters\":[{\"name\":\"limit\",\"in\":\"query\",\"schema\":{\"type\":"
                      "\"integer\"}}],\"responses\":{\"200\":{\"description\":\"ok\"}}}}}}";
    CHECK(write(fd, doc, strlen(doc)) == (ssize_t)strlen(doc));
    close(fd);
    char yaml[600];
    snprintf(yaml, sizeof(yaml),
             "servers: [{name: api, spec: \"%s\", base_url: \"http://127.0.0.1:%d\"}]\n", spec,
             api.port);
    struct config *cfg = NULL;
    struct err_info ei = {0};
    CHECK_INT(config_load_string(yaml, strlen(yaml), "t.yaml", &cfg, &ei), 0);
    if (cfg == NULL) {
        fprintf(stderr, "%s\n", ei.msg);
        return;
    }
    struct rec r = {.msgs = json_array()};
    struct transport_cbs cbs = {.owner = &r, .message_cb = on_message, .state_cb = on_state};
    struct transport *t = transport_new(&loop, &cfg->servers[0], &cbs);
    CHECK(t != NULL);
    run_until(&loop, is_up, &r, 10000);
    CHECK(r.up);

    struct outbound out;
    outbound_init(&out);
    outbound_add(&out, OUTBOUND_HEADER, 0, "X-Gatehouse-User", "alice", 5);
    outbound_add(&out, OUTBOUND_QUERY, 0, "tenant", "t 1&x", 5);
    outbound_add(&out, OUTBOUND_COOKIE, 0, "sid", "abc", 3);
    outbound_add(&out, OUTBOUND_ENV, 0, "NOT_HERE", "1", 1);
    outbound_add(&out, OUTBOUND_HEADER, OUTBOUND_MODERN_ONLY, "Mcp-Param-X", "1", 1);
    json_t *call =
        json_pack("{s:s, s:i, s:s, s:{s:s, s:{s:i}}}", "jsonrpc", "2.0", "id", 1, "method",
                  "tools/call", "params", "name", "list_items", "arguments", "limit", 5);
    CHECK_INT(transport_send_call(t, call, NULL, &out), 0);
    want = 1;
    run_until(&loop, has_msgs, &r, 10000);
    json_t *res = json_object_get(json_array_get(r.msgs, 0), "result");
    CHECK(res != NULL);
    CHECK(!json_is_true(json_object_get(res, "isError")));
    CHECK_INT(api.nreq, 1);
    CHECK_CONTAINS(api.seen.data, "GET /items?limit=5&tenant=t%201%26x HTTP/1.1\r\n");
    CHECK_CONTAINS(api.seen.data, "\r\nX-Gatehouse-User: alice\r\n");
    CHECK_CONTAINS(api.seen.data, "\r\nCookie: sid=abc\r\n");
    CHECK(strstr(api.seen.data, "NOT_HERE") == NULL);
    CHECK(strstr(api.seen.data, "Mcp-Param-X") == NULL); /* an MCP server's matter */

    /* A header value with CR LF: a tool error naming it, nothing sent. */
    struct outbound bad;
    outbound_init(&bad);
    outbound_add(&bad, OUTBOUND_HEADER, 0, "X-Injected", "a\r\nX-Evil: 1", 12);
    json_object_set_new(call, "id", json_integer(2));
    CHECK_INT(transport_send_call(t, call, NULL, &bad), 0);
    want = 2;
    run_until(&loop, has_msgs, &r, 10000);
    res = json_object_get(json_array_get(r.msgs, 1), "result");
    CHECK(json_is_true(json_object_get(res, "isError")));
    const char *text = json_string_value(
        json_object_get(json_array_get(json_object_get(res, "content"), 0), "text"));
    CHECK_CONTAINS(text, "header X-Injected");
    CHECK_INT(api.nreq, 1);
    CHECK(strstr(api.seen.data, "X-Evil") == NULL);

    outbound_release(&bad);
    outbound_release(&out);
    json_decref(call);
    transport_close(t);
    uv_close((uv_handle_t *)&api.listener, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_INT(uv_loop_close(&loop), 0);
    buf_release(&api.seen);
    json_decref(r.msgs);
    config_unref(cfg);
    unlink(spec);
}

TEST_MAIN(TEST(test_outbound_on_api_requests))
