/*
 * The call pipeline (src/mcp/pipeline.c) on the real engine: a tools/call from a legacy session
 * through mcp_handle_message, the worker's mailbox, the home thread's pending table and back.
 * The servers behind it are a fake transport (transport_set_factory): it answers initialize and
 * tools/list, records every call with the outbound additions it was given, and lets the test
 * answer, fail or never answer each call. A fake because what is tested is the order of stages
 * and the exactly-once end of a call under each way a call ends, at points a real server cannot
 * be stopped at; tests/integration/callpath.test.mjs and its neighbours run the same path against
 * real servers.
 *
 * What is checked: stages run in order; a refusal is the request's answer (its HTTP status,
 * code and message) and the server never sees the call; a suspended stage resumes the call (or
 * refuses it, on the stream); a message stage rewrites and replaces what the client gets (never
 * the server's message itself); the done stages run exactly once whether the call ends in a
 * result, an error, a timeout or a closed session, with late answers after; an empty list is a
 * NULL pipeline; the outbound additions reach the transport.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/rand.h"
#include "mcp/gateway.h"
#include "mcp/pipeline.h"
#include "test.h"
#include "upstream/transport-int.h"

/* --- the fake transport --- */

struct fake {
    struct transport base;
    struct transport_cbs cbs;
    const struct config_server *srv;
    uv_timer_t timer;
    bool up;
    json_t *outbox;  /* answers to deliver from the loop */
    json_t *calls;   /* tools/call requests received: {"msg": …, "out": [[where, name, value]]} */
    json_t *notes;   /* notifications received */
    json_t *answers; /* answers to the server's own requests */
};

static struct fake *fakes[2];

static void fake_flush_cb(uv_timer_t *t)
{
    struct fake *f = t->data;
    if (!f->up) {
        f->up = true;
        f->cbs.state_cb(f->cbs.owner, TRANSPORT_UP, "");
    }
    while (json_array_size(f->outbox) > 0) {
        json_t *m = json_incref(json_array_get(f->outbox, 0));
        json_array_remove(f->outbox, 0);
        f->cbs.message_cb(f->cbs.owner, m, NULL);
        json_decref(m);
    }
}

static void fake_later(struct fake *f, json_t *msg)
{
    json_array_append_new(f->outbox, msg);
    uv_timer_start(&f->timer, fake_flush_cb, 0, 0);
}

static int fake_send(struct transport *base, json_t *msg, void *related, const struct outbound *out)
{
    struct fake *f = (struct fake *)base;
    (void)related;
    const char *method = json_string_value(json_object_get(msg, "method"));
    json_t *id = json_object_get(msg, "id");
    if (method == NULL) {
        json_array_append(f->answers, msg);
        return 0;
    }
    if (id == NULL) {
        json_array_append(f->notes, msg);
        return 0;
    }
    if (strcmp(method, "initialize") == 0) {
        fake_later(f, json_pack("{s:s, s:O, s:{s:s, s:{s:{}}, s:{s:s, s:s}}}", "jsonrpc", "2.0",
                                "id", id, "result", "protocolVersion", "2025-11-25", "capabilities",
                                "tools", "serverInfo", "name", "fake", "version", "1"));
    } else if (strcmp(method, "tools/list") == 0) {
        const char *tool = strcmp(f->srv->name, "slow") == 0 ? "wait" : "echo";
        fake_later(f, json_pack("{s:s, s:O, s:{s:[{s:s, s:{s:s}}]}}", "jsonrpc", "2.0", "id", id,
                                "result", "tools", "name", tool, "inputSchema", "type", "object"));
    } else {
        json_t *entries = json_array();
        for (size_t i = 0; out != NULL && i < out->n; i++)
            json_array_append_new(entries, json_pack("[i, s, s]", (int)out->v[i].where,
                                                     out->v[i].name, out->v[i].value));
        json_array_append_new(f->calls, json_pack("{s:O, s:o}", "msg", msg, "out", entries));
    }
    return 0;
}

static void fake_closed_cb(uv_handle_t *h)
{
    struct fake *f = h->data;
    json_decref(f->outbox);
    json_decref(f->calls);
    json_decref(f->notes);
    json_decref(f->answers);
    for (int i = 0; i < 2; i++)
        if (fakes[i] == f)
            fakes[i] = NULL;
    free(f);
}

static void fake_close(struct transport *base)
{
    struct fake *f = (struct fake *)base;
    uv_close((uv_handle_t *)&f->timer, fake_closed_cb);
}

static void fake_nop(struct transport *t, void *related)
{
    (void)t;
    (void)related;
}
static void fake_version(struct transport *t, const char *v)
{
    (void)t;
    (void)v;
}
static void fake_reset(struct transport *t)
{
    (void)t;
}
static int fake_listen(struct transport *t)
{
    (void)t;
    return 0;
}
static enum transport_state fake_state(const struct transport *t)
{
    return ((const struct fake *)t)->up ? TRANSPORT_UP : TRANSPORT_STARTING;
}
static unsigned fake_restarts(const struct transport *t)
{
    (void)t;
    return 0;
}

static const struct transport_ops fake_ops = {
    .send = fake_send,
    .cancel = fake_nop,
    .set_protocol_version = fake_version,
    .reset_session = fake_reset,
    .listen = fake_listen,
    .state = fake_state,
    .restarts = fake_restarts,
    .close = fake_close,
};

static struct transport *fake_new(uv_loop_t *loop, const struct config_server *srv,
                                  const struct transport_cbs *cbs, const struct outbound *spawn)
{
    (void)spawn;
    struct fake *f = calloc(1, sizeof(*f));
    f->base.ops = &fake_ops;
    f->cbs = *cbs;
    f->srv = srv;
    f->outbox = json_array();
    f->calls = json_array();
    f->notes = json_array();
    f->answers = json_array();
    uv_timer_init(loop, &f->timer);
    f->timer.data = f;
    uv_timer_start(&f->timer, fake_flush_cb, 0, 0); /* up from the loop, as a child would be */
    fakes[strcmp(srv->name, "slow") == 0] = f;
    return &f->base;
}

/* --- the engine on this thread --- */

static uv_loop_t loop;
static struct mcp_worker worker;
static struct mcp_worker *workers[1] = {&worker};
static struct principal who;

static void spin_until(bool (*cond)(void *), void *arg, int ms)
{
    double end = test_now_ms_() + ms;
    while (!(cond && cond(arg)) && test_now_ms_() < end)
        uv_run(&loop, UV_RUN_NOWAIT);
}

static bool ready_cond(void *arg)
{
    (void)arg;
    return gateway_ready();
}

static void setup(void)
{
    CHECK_INT(core_init(), 0);
    session_table_init(100, 0, 64);
    uv_loop_init(&loop);
    worker.loop = &loop;
    worker.mb = mailbox_new(&loop);
    transport_set_factory(fake_new);
    const char *yaml = "servers:\n"
                       "  - name: fake\n    command: fake\n    protocol: 2025-11-25\n"
                       "  - name: slow\n    command: fake\n    protocol: 2025-11-25\n"
                       "    timeouts: {total: 150ms}\n";
    struct config *cfg = NULL;
    struct err_info ei = {0};
    int err = config_load_string(yaml, strlen(yaml), "t.yaml", &cfg, &ei);
    if (err)
        fprintf(stderr, "config: %s\n", ei.msg);
    CHECK_INT(err, 0);
    CHECK_INT(gateway_start(cfg, workers, 1), 0);
    config_unref(cfg);
    spin_until(ready_cond, NULL, 3000);
    CHECK(gateway_ready());
    principal_init_anonymous(&who);
}

/* gateway_stop waits for the home loop, which is this thread's: it runs on another. */
static _Atomic bool stop_done;

static void *stop_main(void *arg)
{
    (void)arg;
    gateway_stop();
    stop_done = true;
    return NULL;
}

static bool stopped_cond(void *arg)
{
    (void)arg;
    return stop_done;
}

static void teardown(void)
{
    pthread_t th;
    pthread_create(&th, NULL, stop_main, NULL);
    spin_until(stopped_cond, NULL, 6000);
    pthread_join(th, NULL);
    mcp_worker_release(&worker);
    session_table_close_all();
    mailbox_close(worker.mb);
    uv_run(&loop, UV_RUN_DEFAULT);
    gateway_free();
    CHECK_INT(uv_loop_close(&loop), 0);
    transport_set_factory(NULL);
}

/* --- the stages under test --- */

static char trail[128]; /* what ran, in order */
static enum stage_verdict b_verdict;
static struct call *held; /* a call stage B suspended */
static int ndone;
static enum call_outcome last_outcome;
static int last_code;
static char last_server[64], last_target[256], last_method[40];

static void mark(const char *s)
{
    strncat(trail, s, sizeof(trail) - strlen(trail) - 1);
}

static enum stage_verdict stage_a(struct call *c, void *conf, struct call_refusal *why)
{
    (void)why;
    (void)conf;
    mark("A");
    /* what the gateway adds to the request: a header, a query parameter, an environment entry */
    outbound_add(&c->out, OUTBOUND_HEADER, 0, "X-Gatehouse-Principal", "anonymous", 9);
    outbound_add(&c->out, OUTBOUND_QUERY, 0, "tenant", "t1", 2);
    return STAGE_CONTINUE;
}

static enum stage_verdict stage_b(struct call *c, void *conf, struct call_refusal *why)
{
    (void)conf;
    mark("B");
    if (b_verdict == STAGE_SUSPEND)
        held = c;
    if (b_verdict == STAGE_REFUSE) {
        why->status = 429;
        why->code = JSONRPC_GATEWAY_LIMIT;
        snprintf(why->message, sizeof(why->message), "quota: %s on %s used up", c->target,
                 c->server_name);
    }
    return b_verdict;
}

static enum stage_verdict stage_c(struct call *c, void *conf, struct call_refusal *why)
{
    (void)c;
    (void)conf;
    (void)why;
    mark("C");
    return STAGE_CONTINUE;
}

/* Message stages: the first rewrites a result in place, the second replaces progress. */
static void stage_rewrite(struct call *c, json_t **msg, void *conf)
{
    (void)c;
    (void)conf;
    mark("m");
    json_t *result = json_object_get(*msg, "result");
    if (json_is_object(result))
        json_object_set_new(result, "rewritten", json_true());
}

static void stage_replace(struct call *c, json_t **msg, void *conf)
{
    (void)conf;
    mark("n");
    const char *method = json_string_value(json_object_get(*msg, "method"));
    if (c != NULL && method != NULL && strcmp(method, "notifications/progress") == 0) {
        json_t *fresh = json_deep_copy(*msg);
        json_object_set_new(json_object_get(fresh, "params"), "message", json_string("replaced"));
        json_decref(*msg);
        *msg = fresh;
    }
}

static void stage_done(const struct call *c, enum call_outcome o, int code, uint64_t ns, void *conf)
{
    (void)conf;
    (void)ns;
    mark("D");
    ndone++;
    last_outcome = o;
    last_code = code;
    snprintf(last_server, sizeof(last_server), "%s", c->server_name);
    snprintf(last_target, sizeof(last_target), "%s", c->target);
    snprintf(last_method, sizeof(last_method), "%s", c->method);
}

/* Install A, B, C (request), the two message stages and the done stage. */
static void install(bool messages)
{
    struct pipeline *pl = pipeline_new();
    struct stage a = {.name = "a", .request = stage_a};
    struct stage b = {.name = "b", .request = stage_b};
    struct stage c = {.name = "c", .request = stage_c};
    struct stage m1 = {.name = "rewrite", .message = stage_rewrite};
    struct stage m2 = {.name = "replace", .message = stage_replace};
    struct stage d = {.name = "done", .done = stage_done};
    CHECK_INT(pipeline_add(pl, &a), 0);
    CHECK_INT(pipeline_add(pl, &b), 0);
    CHECK_INT(pipeline_add(pl, &c), 0);
    if (messages) {
        CHECK_INT(pipeline_add(pl, &m1), 0);
        CHECK_INT(pipeline_add(pl, &m2), 0);
    }
    CHECK_INT(pipeline_add(pl, &d), 0);
    pl = pipeline_seal(pl);
    gateway_set_pipeline(pl);
    pipeline_unref(pl);
    trail[0] = '\0';
    b_verdict = STAGE_CONTINUE;
    held = NULL;
    ndone = 0;
    last_code = 0;
}

/* --- helpers --- */

static void handle(struct session *s, const char *text, struct mcp_reply *r)
{
    json_t *msg = NULL, *id = NULL;
    enum jsonrpc_kind kind;
    struct err_info ei = {0};
    CHECK_INT(jsonrpc_parse(text, strlen(text), &msg, &kind, &id, &ei), 0);
    json_decref(id);
    mcp_handle_message(&worker, -1, &who, s, msg, kind, r);
    json_decref(msg);
}

static struct session *new_session(void)
{
    struct mcp_reply r;
    handle(NULL,
           "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{"
           "\"protocolVersion\":\"2025-11-25\",\"capabilities\":{\"sampling\":{}},"
           "\"clientInfo\":{\"name\":\"t\",\"version\":\"1\"}}}",
           &r);
    struct session *s = r.session ? session_ref(r.session) : NULL;
    mcp_reply_release(&r);
    return s;
}

/* Every message pushed on st so far, in order (a new array). */
static json_t *events(struct stream *st)
{
    json_t *all = json_array();
    uint64_t cursor = 0;
    bool finished = false;
    struct buf b;
    buf_init(&b, 1 << 20);
    if (stream_pull(st, &cursor, &b, &finished, false, NULL) == 0 && b.len > 0) {
        buf_append(&b, "", 1);
        for (char *line = strstr(b.data, "data: "); line; line = strstr(line + 1, "\ndata: ")) {
            char *start = strchr(line, ' ') + 1, *end = strchr(start, '\n');
            json_t *m = json_loadb(start, (size_t)(end - start), 0, NULL);
            if (m)
                json_array_append_new(all, m);
        }
    }
    buf_release(&b);
    return all;
}

static bool calls_cond(void *arg)
{
    struct fake *f = arg;
    return f != NULL && json_array_size(f->calls) > 0;
}

/* The server's id of the last call fake f received (after spinning for it), or -1. */
static json_int_t last_call_id(struct fake *f)
{
    spin_until(calls_cond, f, 2000);
    json_t *c = json_array_get(f->calls, json_array_size(f->calls) - 1);
    json_t *id = json_object_get(json_object_get(c, "msg"), "id");
    return json_is_integer(id) ? json_integer_value(id) : -1;
}

/* The server answers call id with `result_or_error` (a JSON text of the member, e.g.
   "\"result\":{…}"). */
static void answer(struct fake *f, json_int_t id, const char *member)
{
    char text[512];
    snprintf(text, sizeof(text), "{\"jsonrpc\":\"2.0\",\"id\":%lld,%s}", (long long)id, member);
    json_t *m = json_loads(text, 0, NULL);
    f->cbs.message_cb(f->cbs.owner, m, NULL);
    json_decref(m);
}

static bool done_cond(void *arg)
{
    (void)arg;
    return ndone > 0;
}

/* A tools/call of `tool` on session s: returns its answer stream (a reference) or NULL, with
   the reply's status and body in *status / *body (a reference, when there is one). */
static struct stream *call_tool(struct session *s, const char *tool, int *status, json_t **body)
{
    char text[300];
    snprintf(text, sizeof(text),
             "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\",\"params\":{\"name\":\"%s\","
             "\"arguments\":{\"x\":1},\"_meta\":{\"progressToken\":\"tok\"}}}",
             tool);
    struct mcp_reply r;
    handle(s, text, &r);
    *status = r.status;
    *body = json_incref(r.body);
    struct stream *st = r.stream ? stream_ref(r.stream) : NULL;
    mcp_reply_release(&r);
    return st;
}

/* --- the tests --- */

static void test_empty_list(void)
{
    CHECK(pipeline_seal(pipeline_new()) == NULL);
    CHECK_INT(pipeline_count(NULL), 0);
    gateway_set_pipeline(NULL);
    trail[0] = '\0';
    struct session *s = new_session();
    int status;
    json_t *body;
    struct stream *st = call_tool(s, "echo", &status, &body);
    CHECK(st != NULL);
    json_int_t id = last_call_id(fakes[0]);
    CHECK(id > 0);
    CHECK_INT(json_array_size(json_object_get(json_array_get(fakes[0]->calls, 0), "out")), 0);
    answer(fakes[0], id, "\"result\":{\"content\":[]}");
    json_t *ev = events(st);
    CHECK_INT(json_array_size(ev), 1);
    CHECK_INT(json_integer_value(json_object_get(json_array_get(ev, 0), "id")), 7);
    CHECK(json_object_get(json_object_get(json_array_get(ev, 0), "result"), "rewritten") == NULL);
    CHECK_STR(trail, "");
    json_decref(ev);
    stream_unref(st);
    session_close(s);
    session_unref(s);
    json_array_clear(fakes[0]->calls);
}

static void test_order_outbound_and_done(void)
{
    install(false);
    struct session *s = new_session();
    int status;
    json_t *body;
    struct stream *st = call_tool(s, "echo", &status, &body);
    CHECK(st != NULL);
    CHECK_INT(status, 200);
    json_int_t id = last_call_id(fakes[0]);
    CHECK_STR(trail, "ABC");
    /* the outbound additions reach the transport with the call */
    json_t *out = json_object_get(json_array_get(fakes[0]->calls, 0), "out");
    CHECK_INT(json_array_size(out), 2);
    CHECK_STR(json_string_value(json_array_get(json_array_get(out, 0), 1)),
              "X-Gatehouse-Principal");
    CHECK_INT(json_integer_value(json_array_get(json_array_get(out, 1), 0)), OUTBOUND_QUERY);
    answer(fakes[0], id, "\"result\":{\"content\":[]}");
    CHECK_INT(ndone, 1);
    CHECK_INT(last_outcome, CALL_OK);
    CHECK_STR(last_server, "fake");
    CHECK_STR(last_target, "echo");
    CHECK_STR(last_method, "tools/call");
    CHECK_STR(trail, "ABCD");
    answer(fakes[0], id, "\"result\":{\"content\":[]}"); /* a duplicate answer: no second end */
    CHECK_INT(ndone, 1);
    stream_unref(st);
    session_close(s);
    session_unref(s);
    json_array_clear(fakes[0]->calls);
}

static void test_refuse(void)
{
    install(false);
    b_verdict = STAGE_REFUSE;
    struct session *s = new_session();
    int status;
    json_t *body;
    struct stream *st = call_tool(s, "echo", &status, &body);
    CHECK(st == NULL);
    CHECK_INT(status, 429);
    json_t *e = json_object_get(body, "error");
    CHECK_INT(json_integer_value(json_object_get(e, "code")), JSONRPC_GATEWAY_LIMIT);
    CHECK_STR(json_string_value(json_object_get(e, "message")), "quota: echo on fake used up");
    CHECK_INT(json_integer_value(json_object_get(body, "id")), 7);
    CHECK_STR(trail, "ABD"); /* C never ran; the call ended at once */
    CHECK_INT(ndone, 1);
    CHECK_INT(last_outcome, CALL_REFUSED);
    spin_until(NULL, NULL, 50);
    CHECK_INT(json_array_size(fakes[0]->calls), 0); /* a refused request never reaches the server */
    json_decref(body);
    session_close(s);
    session_unref(s);
}

static void test_suspend_resume(void)
{
    install(false);
    b_verdict = STAGE_SUSPEND;
    struct session *s = new_session();
    int status;
    json_t *body;
    struct stream *st = call_tool(s, "echo", &status, &body);
    CHECK(st != NULL); /* the client has its answer stream while the stage waits */
    CHECK_INT(status, 200);
    CHECK(held != NULL);
    CHECK_STR(trail, "AB");
    spin_until(NULL, NULL, 50);
    CHECK_INT(json_array_size(fakes[0]->calls), 0);
    pipeline_resume(held, STAGE_CONTINUE, NULL);
    CHECK_STR(trail, "ABC");
    json_int_t id = last_call_id(fakes[0]);
    CHECK(id > 0);
    answer(fakes[0], id, "\"result\":{\"content\":[]}");
    json_t *ev = events(st);
    CHECK_INT(json_array_size(ev), 1);
    CHECK(json_object_get(json_array_get(ev, 0), "result") != NULL);
    CHECK_INT(ndone, 1);
    CHECK_INT(last_outcome, CALL_OK);
    json_decref(ev);
    stream_unref(st);
    json_array_clear(fakes[0]->calls);

    /* suspended, then refused: the refusal goes on the stream */
    trail[0] = '\0';
    ndone = 0;
    held = NULL;
    st = call_tool(s, "echo", &status, &body);
    CHECK(held != NULL);
    struct call_refusal why = {429, JSONRPC_GATEWAY_LIMIT, "quota: checked later, used up"};
    pipeline_resume(held, STAGE_REFUSE, &why);
    ev = events(st);
    json_t *e = json_object_get(json_array_get(ev, 0), "error");
    CHECK_INT(json_integer_value(json_object_get(e, "code")), JSONRPC_GATEWAY_LIMIT);
    CHECK_STR(json_string_value(json_object_get(e, "message")), "quota: checked later, used up");
    CHECK_STR(trail, "ABD");
    CHECK_INT(ndone, 1);
    CHECK_INT(last_outcome, CALL_REFUSED);
    spin_until(NULL, NULL, 50);
    CHECK_INT(json_array_size(fakes[0]->calls), 0);
    json_decref(ev);
    stream_unref(st);

    /* suspended, and the session ends meanwhile: never sent, ended as cancelled */
    trail[0] = '\0';
    ndone = 0;
    held = NULL;
    st = call_tool(s, "echo", &status, &body);
    CHECK(held != NULL);
    session_close(s);
    pipeline_resume(held, STAGE_CONTINUE, NULL);
    CHECK_STR(trail, "ABCD");
    CHECK_INT(ndone, 1);
    CHECK_INT(last_outcome, CALL_CANCELLED);
    spin_until(NULL, NULL, 50);
    CHECK_INT(json_array_size(fakes[0]->calls), 0);
    stream_unref(st);
    session_unref(s);
}

static void test_message_stages(void)
{
    install(true);
    struct session *s = new_session();
    CHECK_STR(trail, "mn"); /* the gateway's own answers (initialize) pass them too */
    trail[0] = '\0';
    int status;
    json_t *body;
    struct stream *st = call_tool(s, "echo", &status, &body);
    json_int_t id = last_call_id(fakes[0]);
    char text[300];
    snprintf(text, sizeof(text),
             "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":"
             "{\"progressToken\":%lld,\"progress\":1,\"message\":\"original\"}}",
             (long long)id);
    json_t *progress = json_loads(text, 0, NULL);
    fakes[0]->cbs.message_cb(fakes[0]->cbs.owner, progress, NULL);
    /* the server's message itself is never changed: stages work on the client's copy */
    CHECK_STR(json_string_value(json_object_get(json_object_get(progress, "params"), "message")),
              "original");
    json_decref(progress);
    answer(fakes[0], id, "\"result\":{\"content\":[]}");
    json_t *ev = events(st);
    CHECK_INT(json_array_size(ev), 2);
    json_t *p = json_object_get(json_array_get(ev, 0), "params");
    CHECK_STR(json_string_value(json_object_get(p, "message")), "replaced");
    CHECK_STR(json_string_value(json_object_get(p, "progressToken")), "tok");
    CHECK(json_is_true(
        json_object_get(json_object_get(json_array_get(ev, 1), "result"), "rewritten")));
    CHECK_STR(trail, "ABCmnmnD"); /* each message passes both, in order, then the end */
    CHECK_INT(ndone, 1);
    json_decref(ev);
    stream_unref(st);
    session_close(s);
    session_unref(s);
    json_array_clear(fakes[0]->calls);
}

static void test_done_once_error_timeout_gone(void)
{
    install(false);
    struct session *s = new_session();
    int status;
    json_t *body;

    /* an error from the server */
    struct stream *st = call_tool(s, "echo", &status, &body);
    json_int_t id = last_call_id(fakes[0]);
    answer(fakes[0], id, "\"error\":{\"code\":-32050,\"message\":\"the tool broke\"}");
    CHECK_INT(ndone, 1);
    CHECK_INT(last_outcome, CALL_ERROR);
    CHECK_INT(last_code, -32050);
    stream_unref(st);

    /* no answer within timeouts.total */
    ndone = 0;
    st = call_tool(s, "wait", &status, &body);
    id = last_call_id(fakes[1]);
    spin_until(done_cond, NULL, 3000);
    CHECK_INT(ndone, 1);
    CHECK_INT(last_outcome, CALL_TIMEOUT);
    CHECK_STR(last_server, "slow");
    answer(fakes[1], id, "\"result\":{\"content\":[]}"); /* too late */
    spin_until(NULL, NULL, 20);
    CHECK_INT(ndone, 1);
    json_t *ev = events(st);
    CHECK_INT(json_integer_value(
                  json_object_get(json_object_get(json_array_get(ev, 0), "error"), "code")),
              JSONRPC_UPSTREAM_TIMEOUT);
    json_decref(ev);
    stream_unref(st);

    /* the client goes: its session ends, the call is cancelled upstream */
    ndone = 0;
    json_array_clear(fakes[0]->notes);
    st = call_tool(s, "echo", &status, &body);
    id = last_call_id(fakes[0]);
    session_close(s);
    spin_until(done_cond, NULL, 2000);
    CHECK_INT(ndone, 1);
    CHECK_INT(last_outcome, CALL_CANCELLED);
    CHECK_STR(json_string_value(json_object_get(json_array_get(fakes[0]->notes, 0), "method")),
              "notifications/cancelled");
    answer(fakes[0], id, "\"result\":{\"content\":[]}");
    spin_until(NULL, NULL, 20);
    CHECK_INT(ndone, 1);
    stream_unref(st);
    session_unref(s);
    json_array_clear(fakes[0]->calls);
    json_array_clear(fakes[1]->calls);
}

static void test_lists_pass_request_stages(void)
{
    install(false);
    struct session *s = new_session();
    struct mcp_reply r;
    handle(s, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/list\"}", &r);
    CHECK_INT(json_array_size(json_object_get(json_object_get(r.body, "result"), "tools")), 2);
    CHECK_STR(trail, "ABCD");
    CHECK_STR(last_server, "");
    CHECK_INT(last_outcome, CALL_OK);
    mcp_reply_release(&r);
    b_verdict = STAGE_REFUSE;
    trail[0] = '\0';
    handle(s, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"tools/list\"}", &r);
    CHECK_INT(r.status, 429);
    CHECK_STR(trail, "ABD");
    mcp_reply_release(&r);
    session_close(s);
    session_unref(s);
    gateway_set_pipeline(NULL);
}

static bool answers_cond(void *arg)
{
    struct fake *f = arg;
    return json_array_size(f->answers) > 0;
}

/* A client's answer to a server's request passes the request stages too; a refused one reaches
   the server as an error naming the refusal, so that the server is not left waiting. */
static void test_client_answers_pass_request_stages(void)
{
    for (int refuse = 0; refuse < 2; refuse++) {
        install(false);
        struct session *s = new_session();
        int status;
        json_t *body;
        struct stream *st = call_tool(s, "echo", &status, &body);
        json_int_t id = last_call_id(fakes[0]);
        json_t *ask = json_loads("{\"jsonrpc\":\"2.0\",\"id\":\"srv-1\",\"method\":"
                                 "\"sampling/createMessage\",\"params\":{}}",
                                 0, NULL);
        fakes[0]->cbs.message_cb(fakes[0]->cbs.owner, ask, NULL);
        json_decref(ask);
        json_t *ev = events(st);
        json_t *down = json_object_get(json_array_get(ev, 0), "id");
        CHECK(json_is_integer(down));
        char text[200];
        snprintf(text, sizeof(text),
                 "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"result\":{\"role\":\"assistant\"}}",
                 (long long)json_integer_value(down));
        json_decref(ev);
        trail[0] = '\0';
        ndone = 0;
        b_verdict = refuse ? STAGE_REFUSE : STAGE_CONTINUE;
        json_array_clear(fakes[0]->answers);
        struct mcp_reply r;
        handle(s, text, &r);
        CHECK_INT(r.status, refuse ? 429 : 202);
        mcp_reply_release(&r);
        spin_until(answers_cond, fakes[0], 2000);
        json_t *a = json_array_get(fakes[0]->answers, 0);
        CHECK_STR(json_string_value(json_object_get(a, "id")), "srv-1");
        if (refuse) {
            CHECK_INT(json_integer_value(json_object_get(json_object_get(a, "error"), "code")),
                      JSONRPC_GATEWAY_LIMIT);
            CHECK_STR(trail, "ABD");
            CHECK_INT(last_outcome, CALL_REFUSED);
        } else {
            CHECK(json_object_get(a, "result") != NULL);
            CHECK_STR(trail, "ABCD");
            CHECK_INT(last_outcome, CALL_OK);
            CHECK_STR(last_method, "(answer)");
        }
        CHECK_INT(ndone, 1);
        CHECK_STR(last_server, "fake");
        b_verdict = STAGE_CONTINUE;
        answer(fakes[0], id, "\"result\":{\"content\":[]}");
        stream_unref(st);
        session_close(s);
        session_unref(s);
        json_array_clear(fakes[0]->calls);
    }
    gateway_set_pipeline(NULL);
}

static bool events_cond(void *arg)
{
    json_t *ev = events(arg);
    bool any = json_array_size(ev) > 0;
    json_decref(ev);
    return any;
}

/* A 2026-07-28 request on a transient session of its own, as the HTTP layer makes one. */
static struct stream *modern_call(const char *text, int *status, json_t **body)
{
    int err = 0;
    json_t *caps = json_pack("{s:{}}", "sampling");
    struct session *t = session_new_transient(-1, "2026-07-28", caps, &err);
    json_decref(caps);
    struct mcp_reply r;
    handle(t, text, &r);
    *status = r.status;
    *body = json_incref(r.body);
    struct stream *st = r.stream ? stream_ref(r.stream) : NULL;
    mcp_reply_release(&r);
    session_unref(t); /* the stream keeps what it needs */
    return st;
}

/* The retry of a 2026-07-28 client carrying the input a parked call waits for passes the
   request stages as a request of its own: refused, the call stays parked for another retry;
   let through, it takes the call over and ends with the call's answer. */
static void test_mrtr_retry_passes_request_stages(void)
{
    install(false);
    json_array_clear(fakes[0]->answers);
    int status;
    json_t *body;
    struct stream *st = modern_call("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\","
                                    "\"params\":{\"name\":\"echo\",\"arguments\":{}}}",
                                    &status, &body);
    CHECK(st != NULL);
    json_int_t id = last_call_id(fakes[0]);
    json_t *ask = json_loads("{\"jsonrpc\":\"2.0\",\"id\":\"srv-2\",\"method\":"
                             "\"sampling/createMessage\",\"params\":{}}",
                             0, NULL);
    fakes[0]->cbs.message_cb(fakes[0]->cbs.owner, ask, NULL);
    json_decref(ask);
    spin_until(events_cond, st, 2000);
    json_t *ev = events(st);
    json_t *res = json_object_get(json_array_get(ev, 0), "result");
    CHECK_STR(json_string_value(json_object_get(res, "resultType")), "input_required");
    const char *state = json_string_value(json_object_get(res, "requestState"));
    CHECK(state != NULL);
    CHECK_INT(ndone, 1); /* the InputRequiredResult answered the first request */
    char text[400];
    snprintf(text, sizeof(text),
             "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":"
             "\"echo\",\"arguments\":{},\"requestState\":\"%s\",\"inputResponses\":{"
             "\"srv-2\":{\"role\":\"assistant\"}}}}",
             state ? state : "");
    json_decref(ev);
    stream_unref(st);

    /* refused: the answer says why, and the call stays parked */
    b_verdict = STAGE_REFUSE;
    trail[0] = '\0';
    st = modern_call(text, &status, &body);
    CHECK(st == NULL);
    CHECK_INT(status, 429);
    CHECK_STR(trail, "ABD");
    CHECK_INT(ndone, 2);
    json_decref(body);

    /* let through: the answer reaches the server, and the call ends once, on the retry */
    b_verdict = STAGE_CONTINUE;
    trail[0] = '\0';
    st = modern_call(text, &status, &body);
    CHECK(st != NULL);
    CHECK_STR(trail, "ABC");
    spin_until(answers_cond, fakes[0], 2000);
    CHECK_STR(json_string_value(json_object_get(json_array_get(fakes[0]->answers, 0), "id")),
              "srv-2");
    answer(fakes[0], id, "\"result\":{\"content\":[]}");
    ev = events(st);
    CHECK_STR(json_string_value(
                  json_object_get(json_object_get(json_array_get(ev, 0), "result"), "resultType")),
              "complete");
    CHECK_STR(trail, "ABCD");
    CHECK_INT(ndone, 3);
    CHECK_INT(last_outcome, CALL_OK);
    json_decref(ev);
    stream_unref(st);
    json_array_clear(fakes[0]->calls);
    json_array_clear(fakes[0]->answers);
    gateway_set_pipeline(NULL);
}

TEST_MAIN(TEST(setup), TEST(test_empty_list), TEST(test_order_outbound_and_done), TEST(test_refuse),
          TEST(test_suspend_resume), TEST(test_message_stages),
          TEST(test_done_once_error_timeout_gone), TEST(test_lists_pass_request_stages),
          TEST(test_client_answers_pass_request_stages),
          TEST(test_mrtr_retry_passes_request_stages), TEST(teardown))
