/*
 * Tests of sessions and their streams (src/mcp/session.c): ids and lookup (wrong lengths, one
 * changed character), the session limit, close and idle sweep, server-to-client request
 * tracking, subscriptions, call tracking, and streams: SSE formatting, the replay ring and its
 * ERR_LIMIT, the plain-JSON path, Last-Event-ID lookup, stream_end, the per-session stream bound,
 * writers woken through a real mailbox on a uv loop, and four threads pushing into one stream
 * while a woken reader pulls, every event seen exactly once and in order.
 */
#include "mcp/gateway.h"
#include "mcp/session.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>
#include <uv.h>

#include "core/err.h"
#include "core/rand.h"
#include "test.h"

#define REPLAY 8

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Reset the table's bounds and make sure a test starts with no session. */
static void table_reset(uint32_t max, uint32_t idle_ms, uint32_t replay)
{
    session_table_close_all();
    session_table_init(max, idle_ms, replay);
    CHECK_INT(session_table_count(), 0);
}

static struct session *new_session(int view)
{
    int err = 0;
    json_t *caps = json_pack("{s:{}, s:{s:b}}", "sampling", "roots", "listChanged", 1);
    struct session *s = session_new(view, "2025-11-25", caps, &err);
    json_decref(caps);
    CHECK(s != NULL);
    return s;
}

static json_t *msg_n(int n)
{
    return json_pack("{s:s, s:s, s:{s:i}}", "jsonrpc", "2.0", "method", "notifications/progress",
                     "params", "n", n);
}

static int push_n(struct stream *st, int n, bool final)
{
    json_t *m = msg_n(n);
    int err = stream_push(st, m, final);
    json_decref(m);
    return err;
}

/* --- sessions --- */

static void test_new_and_find(void)
{
    table_reset(16, 0, REPLAY);
    struct session *s = new_session(-1);
    const char *id = session_id(s);
    CHECK_INT(strlen(id), SESSION_ID_LEN);
    for (const char *p = id; *p; p++)
        CHECK((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_');
    CHECK_INT(session_view(s), -1);
    CHECK_STR(session_protocol_version(s), "2025-11-25");
    CHECK(session_has_capability(s, "sampling"));
    CHECK(session_has_capability(s, "roots"));
    CHECK(!session_has_capability(s, "elicitation"));
    CHECK(!session_closed(s));
    CHECK_INT(session_table_count(), 1);

    struct session *f = session_find(id, SESSION_ID_LEN);
    CHECK(f == s);
    session_unref(f);
    /* Wrong lengths: a prefix, the id plus one byte, nothing. */
    char buf[SESSION_ID_LEN + 2];
    memcpy(buf, id, SESSION_ID_LEN);
    buf[SESSION_ID_LEN] = 'A';
    buf[SESSION_ID_LEN + 1] = '\0';
    CHECK(session_find(id, SESSION_ID_LEN - 1) == NULL);
    CHECK(session_find(buf, SESSION_ID_LEN + 1) == NULL);
    CHECK(session_find(id, 0) == NULL);
    CHECK(session_find("", 0) == NULL);
    /* One character changed, at either end. */
    buf[SESSION_ID_LEN] = '\0';
    buf[0] = buf[0] == 'A' ? 'B' : 'A';
    CHECK(session_find(buf, SESSION_ID_LEN) == NULL);
    memcpy(buf, id, SESSION_ID_LEN);
    buf[SESSION_ID_LEN - 1] = buf[SESSION_ID_LEN - 1] == 'A' ? 'B' : 'A';
    CHECK(session_find(buf, SESSION_ID_LEN) == NULL);
    /* Not NUL-terminated input: only len bytes are read. */
    memcpy(buf, id, SESSION_ID_LEN);
    buf[SESSION_ID_LEN] = 'Z';
    f = session_find(buf, SESSION_ID_LEN);
    CHECK(f == s);
    session_unref(f);

    /* Ids differ between sessions; each finds its own. */
    struct session *t = new_session(3);
    CHECK(strcmp(session_id(s), session_id(t)) != 0);
    CHECK_INT(session_view(t), 3);
    f = session_find(session_id(t), SESSION_ID_LEN);
    CHECK(f == t);
    session_unref(f);

    /* Capabilities are copied, and a non-object means none. */
    int err = 0;
    json_t *caps = json_pack("{s:{}}", "elicitation");
    struct session *u = session_new(-1, "2025-06-18", caps, &err);
    json_object_set_new(caps, "sampling", json_object());
    CHECK(session_has_capability(u, "elicitation"));
    CHECK(!session_has_capability(u, "sampling"));
    json_decref(caps);
    struct session *v = session_new(-1, "2025-06-18", NULL, &err);
    CHECK(!session_has_capability(v, "sampling"));
    json_t *arr = json_pack("[s]", "sampling");
    struct session *w = session_new(-1, "2025-06-18", arr, &err);
    CHECK(!session_has_capability(w, "sampling"));
    json_decref(arr);

    session_close(s);
    CHECK(session_closed(s));
    CHECK(session_find(id, SESSION_ID_LEN) == NULL);
    session_close(s); /* idempotent */
    CHECK_INT(session_table_count(), 4);
    session_unref(s);
    session_unref(t);
    session_unref(u);
    session_unref(v);
    session_unref(w);
    session_table_close_all();
    CHECK_INT(session_table_count(), 0);
}

static void test_limit(void)
{
    table_reset(3, 0, REPLAY);
    struct session *s[3];
    for (int i = 0; i < 3; i++)
        s[i] = new_session(-1);
    int err = 0;
    CHECK(session_new(-1, "2025-11-25", NULL, &err) == NULL);
    CHECK_INT(err, ERR_LIMIT);
    CHECK_INT(session_table_count(), 3);
    /* Closing one frees a slot; a reference still held does not keep the slot. */
    session_close(s[1]);
    struct session *n = new_session(-1);
    CHECK(n != NULL);
    err = 0;
    CHECK(session_new(-1, "2025-11-25", NULL, &err) == NULL);
    CHECK_INT(err, ERR_LIMIT);
    session_unref(n);
    for (int i = 0; i < 3; i++)
        session_unref(s[i]);

    table_reset(0, 0, REPLAY);
    err = 0;
    CHECK(session_new(-1, "x", NULL, &err) == NULL);
    CHECK_INT(err, ERR_LIMIT);
    table_reset(1000, 0, REPLAY);
}

static void count_cb(struct session *s, void *arg)
{
    (*(int *)arg)++;
    CHECK(!session_closed(s));
}

static void test_sweep(void)
{
    /* idle_ms 0: never expire. */
    table_reset(100, 0, REPLAY);
    struct session *z = new_session(-1);
    sleep_ms(5);
    CHECK_INT(session_table_sweep(), 0);
    session_unref(z);

    table_reset(100, 300, REPLAY);
    struct session *a = new_session(-1), *b = new_session(-1), *c = new_session(-1);
    struct stream *st = session_standalone_stream(c);
    CHECK_INT(session_table_sweep(), 0); /* all fresh */
    sleep_ms(200);
    struct session *f = session_find(session_id(b), SESSION_ID_LEN); /* touch b */
    session_unref(f);
    sleep_ms(200);
    /* a and c were idle 400 ms (> 300), b only 200 ms. */
    CHECK_INT(session_table_sweep(), 2);
    CHECK(session_closed(a));
    CHECK(!session_closed(b));
    CHECK(session_closed(c));
    CHECK_INT(session_table_count(), 1);
    CHECK(session_find(session_id(a), SESSION_ID_LEN) == NULL);
    /* The expired session's stream was ended. */
    CHECK_INT(push_n(st, 1, false), ERR_CLOSED);
    stream_unref(st);
    int n = 0;
    session_foreach(count_cb, &n);
    CHECK_INT(n, 1);
    sleep_ms(350);
    CHECK_INT(session_table_sweep(), 1);
    CHECK_INT(session_table_sweep(), 0);
    n = 0;
    session_foreach(count_cb, &n);
    CHECK_INT(n, 0);
    session_unref(a);
    session_unref(b);
    session_unref(c);
    table_reset(1000, 0, REPLAY);
}

static void test_requests(void)
{
    table_reset(100, 0, REPLAY);
    struct session *s = new_session(-1);
    uint64_t i1 = session_next_request_id(s), i2 = session_next_request_id(s);
    CHECK(i1 >= 1);
    CHECK_INT(i2, i1 + 1);
    int up1, up2;
    json_t *uid1 = json_string("server-req-1"), *uid2 = json_integer(0);
    CHECK_INT(session_track_request(s, i1, &up1, uid1), 0);
    CHECK_INT(session_track_request(s, i2, &up2, uid2), 0);
    CHECK_INT(session_track_request(s, i1, &up2, uid2), ERR_EXISTS);
    CHECK_INT(uid2->refcount, 2); /* the failed track kept no reference */
    void *up = NULL;
    json_t *got = NULL;
    CHECK_INT(session_take_request(s, 0, &up, &got), ERR_NOTFOUND);
    CHECK_INT(session_take_request(s, UINT64_MAX, &up, &got), ERR_NOTFOUND);
    CHECK_INT(session_take_request(s, i2 + 100, &up, &got), ERR_NOTFOUND);
    CHECK(up == NULL && got == NULL);
    CHECK_INT(session_take_request(s, i2, &up, &got), 0);
    CHECK(up == &up2 && got == uid2);
    json_decref(got);
    CHECK_INT(session_take_request(s, i2, &up, &got), ERR_NOTFOUND);
    /* Many in flight (the map grows), each taken once. */
    int ups[500];
    uint64_t ids[500];
    for (int i = 0; i < 500; i++) {
        ids[i] = session_next_request_id(s);
        json_t *u = json_integer(i);
        CHECK_INT(session_track_request(s, ids[i], &ups[i], u), 0);
        json_decref(u);
    }
    for (int i = 499; i >= 0; i--) {
        CHECK_INT(session_take_request(s, ids[i], &up, &got), 0);
        CHECK(up == &ups[i]);
        CHECK_INT(json_integer_value(got), i);
        json_decref(got);
    }
    /* i1 is still tracked when the session closes: freed with it; new tracks refused. */
    session_close(s);
    CHECK_INT(session_track_request(s, session_next_request_id(s), &up1, uid1), ERR_CLOSED);
    CHECK_INT(uid1->refcount, 2);
    session_unref(s);
    CHECK_INT(uid1->refcount, 1);
    json_decref(uid1);
    json_decref(uid2);
}

static void test_subscriptions(void)
{
    table_reset(100, 0, REPLAY);
    struct session *s = new_session(-1);
    CHECK(!session_subscribed(s, "file:///a"));
    CHECK_INT(session_subscribe(s, "file:///a", 0, true), 0);
    CHECK_INT(session_subscribe(s, "file:///a", 0, true), 0);
    CHECK(session_subscribed(s, "file:///a"));
    CHECK(!session_subscribed(s, "file:///A"));
    CHECK(!session_subscribed(s, "file:///a/"));
    CHECK_INT(session_subscribe(s, "file:///a", 0, false), 0);
    CHECK(!session_subscribed(s, "file:///a"));
    CHECK_INT(session_subscribe(s, "file:///never", 0, false), 0);
    CHECK_INT(session_subscribe(s, "", 0, true), 0);
    CHECK(session_subscribed(s, ""));
    session_close(s);
    session_unref(s);
}

static void test_calls(void)
{
    table_reset(100, 0, REPLAY);
    struct session *s = new_session(-1);
    int c1, c2, c3;
    json_t *i1 = json_integer(1), *s1 = json_string("1"), *neg = json_integer(-1),
           *zero = json_integer(0);
    json_t *big = json_integer(INT64_MIN), *empty = json_string("");
    CHECK_INT(session_track_call(s, i1, &c1), 0);
    CHECK_INT(session_track_call(s, s1, &c2), 0);
    CHECK_INT(session_track_call(s, neg, &c3), 0);
    CHECK_INT(session_track_call(s, big, &c3), 0);
    CHECK_INT(session_track_call(s, empty, &c1), 0);
    CHECK(session_find_call(s, i1) == &c1); /* 1 and "1" are different ids */
    CHECK(session_find_call(s, s1) == &c2);
    CHECK(session_find_call(s, neg) == &c3);
    CHECK(session_find_call(s, big) == &c3);
    CHECK(session_find_call(s, empty) == &c1);
    CHECK(session_find_call(s, zero) == NULL);
    /* Untrack only removes the call that is tracked under that id. */
    session_untrack_call(s, i1, &c2);
    CHECK(session_find_call(s, i1) == &c1);
    session_untrack_call(s, i1, &c1);
    CHECK(session_find_call(s, i1) == NULL);
    session_untrack_call(s, i1, &c1); /* already gone: no effect */
    CHECK(session_find_call(s, s1) == &c2);
    /* A reused id replaces the cookie; the old call's untrack leaves the new one. */
    CHECK_INT(session_track_call(s, s1, &c3), 0);
    session_untrack_call(s, s1, &c2);
    CHECK(session_find_call(s, s1) == &c3);
    /* Ids that are neither integers nor strings are refused. */
    json_t *f = json_real(1.0), *nul = json_null();
    CHECK_INT(session_track_call(s, f, &c1), ERR_INVAL);
    CHECK_INT(session_track_call(s, nul, &c1), ERR_INVAL);
    CHECK_INT(session_track_call(s, NULL, &c1), ERR_INVAL);
    CHECK(session_find_call(s, f) == NULL);
    CHECK(session_find_call(s, NULL) == NULL);
    session_untrack_call(s, NULL, &c1);
    /* Long string ids up to the key bound work. */
    char longid[297];
    memset(longid, 'q', 296);
    longid[296] = '\0';
    json_t *l = json_string(longid);
    CHECK_INT(session_track_call(s, l, &c2), 0);
    CHECK(session_find_call(s, l) == &c2);
    json_decref(l);
    json_decref(i1);
    json_decref(s1);
    json_decref(neg);
    json_decref(zero);
    json_decref(big);
    json_decref(empty);
    json_decref(f);
    json_decref(nul);
    session_close(s);
    session_unref(s);
}

/* --- streams --- */

static void test_stream_sse(void)
{
    table_reset(100, 0, REPLAY);
    struct session *s = new_session(-1);
    struct stream *st = stream_new(s);
    CHECK(stream_session(st) == s);
    uint64_t num = stream_number(st);
    CHECK(num >= 1);
    struct stream *st2 = stream_new(s);
    CHECK_INT(stream_number(st2), num + 1);

    struct buf out;
    buf_init(&out, 1 << 20);
    uint64_t cur = 0;
    bool fin = true;
    json_t *single = (json_t *)1;
    CHECK_INT(stream_pull(st, &cur, &out, &fin, true, &single), 0);
    CHECK(!fin && single == NULL && out.len == 0 && cur == 0);

    CHECK_INT(push_n(st, 1, false), 0);
    CHECK_INT(push_n(st, 2, false), 0);
    CHECK_INT(stream_pull(st, &cur, &out, &fin, true, &single), 0);
    CHECK(single == NULL); /* the first event is not final: SSE */
    CHECK(!fin);
    CHECK_INT(cur, 2);
    char want[512];
    snprintf(
        want, sizeof(want),
        "id: %" PRIu64
        "-1\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"n\":1}}\n\n"
        "id: %" PRIu64
        "-2\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"n\":2}}\n\n",
        num, num);
    CHECK_STR(out.data, want);
    buf_reset(&out);
    /* Nothing new: nothing copied. */
    CHECK_INT(stream_pull(st, &cur, &out, &fin, false, NULL), 0);
    CHECK(out.len == 0 && !fin && cur == 2);

    /* A message with a newline in a string stays on one data line (compact JSON escapes it). */
    json_t *m =
        json_pack("{s:s, s:i, s:{s:s}}", "jsonrpc", "2.0", "id", 5, "result", "text", "a\nb\r\nc");
    CHECK_INT(stream_push(st, m, true), 0);
    json_decref(m);
    CHECK_INT(push_n(st, 9, false), ERR_CLOSED); /* ended by the final event */
    CHECK_INT(stream_pull(st, &cur, &out, &fin, false, NULL), 0);
    CHECK(fin);
    CHECK_INT(cur, 3);
    snprintf(want, sizeof(want),
             "id: %" PRIu64
             "-3\ndata: {\"jsonrpc\":\"2.0\",\"id\":5,\"result\":{\"text\":\"a\\nb\\r\\nc\"}}\n\n",
             num);
    CHECK_STR(out.data, want);
    /* Delivered: the stream is no longer found by Last-Event-ID. */
    uint64_t after = 0;
    char lei[64];
    snprintf(lei, sizeof(lei), "%" PRIu64 "-2", num);
    CHECK(session_find_stream(s, lei, &after) == NULL);
    /* A second reader replaying from 0 (it holds a reference) still gets all three. */
    buf_reset(&out);
    uint64_t cur2 = 0;
    CHECK_INT(stream_pull(st, &cur2, &out, &fin, false, NULL), 0);
    CHECK(fin);
    CHECK_INT(cur2, 3);
    stream_unref(st);

    buf_release(&out);
    stream_unref(st2);
    session_close(s);
    session_unref(s);
}

static void test_json_if_single(void)
{
    table_reset(100, 0, REPLAY);
    struct session *s = new_session(-1);
    struct stream *st = stream_new(s);
    json_t *m = json_pack("{s:s, s:i, s:{}}", "jsonrpc", "2.0", "id", 1, "result");
    CHECK_INT(stream_push(st, m, true), 0);
    struct buf out;
    buf_init(&out, 1 << 16);
    uint64_t cur = 0;
    bool fin = false;
    json_t *single = NULL;
    CHECK_INT(stream_pull(st, &cur, &out, &fin, true, &single), 0);
    CHECK(single == m);
    CHECK(fin);
    CHECK_INT(cur, 1);
    CHECK_INT(out.len, 0);
    json_decref(single);
    /* Pulled again (cursor 1): nothing more, still finished. */
    single = (json_t *)1;
    CHECK_INT(stream_pull(st, &cur, &out, &fin, true, &single), 0);
    CHECK(single == NULL && fin && out.len == 0);
    stream_unref(st);

    /* Without json_if_single the same stream gives SSE. */
    st = stream_new(s);
    CHECK_INT(stream_push(st, m, true), 0);
    cur = 0;
    CHECK_INT(stream_pull(st, &cur, &out, &fin, false, &single), 0);
    CHECK(single == NULL && fin);
    CHECK_CONTAINS(out.data, "data: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n\n");
    buf_reset(&out);
    stream_unref(st);

    /* A resumed reader (cursor > 0) never gets the plain form. */
    st = stream_new(s);
    CHECK_INT(push_n(st, 1, false), 0);
    cur = 0;
    CHECK_INT(stream_pull(st, &cur, &out, &fin, false, NULL), 0);
    CHECK_INT(stream_push(st, m, true), 0);
    CHECK_INT(stream_pull(st, &cur, &out, &fin, true, &single), 0);
    CHECK(single == NULL && fin && cur == 2);
    buf_reset(&out);
    stream_unref(st);
    json_decref(m);
    buf_release(&out);
    session_close(s);
    session_unref(s);
}

static int push_json(struct stream *st, json_t *m, bool final) /* steals m */
{
    int err = stream_push(st, m, final);
    json_decref(m);
    return err;
}

static void test_replay_ring(void)
{
    table_reset(100, 0, 4);
    struct session *s = new_session(-1);
    struct stream *st = stream_new(s);
    struct buf out;
    buf_init(&out, 1 << 16);
    bool fin;
    uint64_t cur = 0, taken = 0;
    /* A writer takes every event as it comes: the ring keeps the last 4 for replay. */
    for (int i = 1; i <= 6; i++) {
        CHECK_INT(push_n(st, i, false), 0);
        CHECK_INT(stream_pull(st, &taken, &out, &fin, false, NULL), 0);
    }
    CHECK_INT(taken, 6);
    buf_reset(&out);
    /* Events 1 and 2 are gone, and they were notifications: a reader from before them is told
       how many it missed (no event id) and goes on from 3. */
    cur = 0;
    CHECK_INT(stream_pull(st, &cur, &out, &fin, false, NULL), 0);
    CHECK_INT(cur, 6);
    CHECK(strncmp(out.data, "data: ", 6) == 0);
    CHECK_CONTAINS(out.data, "\"missed\":2");
    char want[64];
    snprintf(want, sizeof(want), "id: %" PRIu64 "-3\n", stream_number(st));
    CHECK_CONTAINS(out.data, want);
    CHECK(strstr(out.data, "-2\n") == NULL);
    buf_reset(&out);
    /* A json_if_single reader at 0 is not given a later event as if it were the only one. */
    cur = 0;
    json_t *single = NULL;
    CHECK_INT(stream_pull(st, &cur, &out, &fin, true, &single), 0);
    CHECK(single == NULL && cur == 6);
    buf_reset(&out);
    cur = 2; /* has seen 1 and 2: 3..6 are all still buffered, nothing missed */
    CHECK_INT(stream_pull(st, &cur, &out, &fin, false, NULL), 0);
    CHECK_INT(cur, 6);
    snprintf(want, sizeof(want), "id: %" PRIu64 "-3\n", stream_number(st));
    CHECK(strncmp(out.data, want, strlen(want)) == 0);
    snprintf(want, sizeof(want), "id: %" PRIu64 "-6\n", stream_number(st));
    CHECK_CONTAINS(out.data, want);
    buf_reset(&out);
    cur = 4;
    CHECK_INT(stream_pull(st, &cur, &out, &fin, false, NULL), 0);
    CHECK_INT(cur, 6);
    CHECK(strstr(out.data, "-5\n") != NULL && strstr(out.data, "-4\n") == NULL);
    buf_reset(&out);
    /* A server request (it has an id) taken and then pushed out: a reader from before it lost a
       message, a real loss (ERR_LIMIT, the 409). */
    CHECK_INT(
        push_json(st,
                  json_pack("{s:s, s:i, s:s}", "jsonrpc", "2.0", "id", 9, "method", "roots/list"),
                  false),
        0);
    CHECK_INT(stream_pull(st, &taken, &out, &fin, false, NULL), 0);
    for (int i = 8; i <= 11; i++) {
        CHECK_INT(push_n(st, i, false), 0);
        CHECK_INT(stream_pull(st, &taken, &out, &fin, false, NULL), 0);
    }
    buf_reset(&out);
    cur = 6;
    CHECK_INT(stream_pull(st, &cur, &out, &fin, false, NULL), ERR_LIMIT);
    CHECK_INT(cur, 6);
    CHECK_INT(out.len, 0);
    cur = 7; /* has seen the request */
    CHECK_INT(stream_pull(st, &cur, &out, &fin, false, NULL), 0);
    buf_reset(&out);
    /* The final event still fits after drops. */
    CHECK_INT(push_n(st, 12, true), 0);
    cur = 11;
    CHECK_INT(stream_pull(st, &cur, &out, &fin, false, NULL), 0);
    CHECK(fin && cur == 12);
    buf_reset(&out);
    stream_unref(st);

    /* Nobody takes the events: the ring keeps what it holds, later notifications meet the
       held-back rule, and the response comes after a summary and the latest progress. */
    st = stream_new(s);
    for (int i = 1; i <= 4; i++)
        CHECK_INT(push_n(st, i, false), 0);
    for (int i = 0; i < 10; i++)
        CHECK_INT(
            push_json(st,
                      json_pack("{s:s, s:s, s:{s:s, s:i}}", "jsonrpc", "2.0", "method",
                                "notifications/message", "params", "level", "info", "data", i),
                      false),
            0);
    for (int i = 1; i <= 5; i++)
        CHECK_INT(push_json(st,
                            json_pack("{s:s, s:s, s:{s:s, s:i}}", "jsonrpc", "2.0", "method",
                                      "notifications/progress", "params", "progressToken", "t",
                                      "progress", i),
                            false),
                  0);
    CHECK_INT(
        push_json(st, json_pack("{s:s, s:i, s:{}}", "jsonrpc", "2.0", "id", 1, "result"), true), 0);
    cur = 0;
    CHECK_INT(stream_pull(st, &cur, &out, &fin, false, NULL), 0);
    CHECK(fin);
    snprintf(want, sizeof(want), "id: %" PRIu64 "-1\n", stream_number(st));
    CHECK(strncmp(out.data, want, strlen(want)) == 0);
    CHECK_CONTAINS(out.data, "dropped 10 log messages, 4 progress notifications");
    CHECK_CONTAINS(out.data, "\"progress\":5");
    CHECK(strstr(out.data, "\"progress\":4") == NULL);
    const char *sum = strstr(out.data, "dropped 10"), *res = strstr(out.data, "\"result\"");
    CHECK(sum != NULL && res != NULL && sum < res);
    buf_release(&out);
    stream_unref(st);

    /* A ring of one (replay 0 is raised to 1). */
    session_table_init(100, 0, 0);
    st = stream_new(s);
    buf_init(&out, 1 << 16);
    taken = 0;
    CHECK_INT(push_n(st, 1, false), 0);
    CHECK_INT(stream_pull(st, &taken, &out, &fin, false, NULL), 0);
    CHECK_INT(push_n(st, 2, false), 0);
    CHECK_INT(stream_pull(st, &taken, &out, &fin, false, NULL), 0);
    buf_reset(&out);
    cur = 0;
    CHECK_INT(stream_pull(st, &cur, &out, &fin, false, NULL), 0);
    CHECK_CONTAINS(out.data, "\"missed\":1");
    CHECK_INT(cur, 2);
    buf_reset(&out);
    cur = 1;
    CHECK_INT(stream_pull(st, &cur, &out, &fin, false, NULL), 0);
    CHECK_INT(cur, 2);
    buf_release(&out);
    stream_unref(st);
    session_close(s);
    session_unref(s);
    table_reset(1000, 0, REPLAY);
}

static void test_find_stream(void)
{
    table_reset(100, 0, REPLAY);
    struct session *s = new_session(-1), *other = new_session(-1);
    struct stream *a = stream_new(s), *b = stream_new(s);
    struct stream *g = session_standalone_stream(s);
    struct stream *g2 = session_standalone_stream(s);
    CHECK(g == g2); /* the same standalone stream each time */
    stream_unref(g2);
    char lei[64];
    uint64_t after = 12345;
    snprintf(lei, sizeof(lei), "%" PRIu64 "-0", stream_number(a));
    struct stream *f = session_find_stream(s, lei, &after);
    CHECK(f == a);
    CHECK_INT(after, 0);
    stream_unref(f);
    /* Only an id that was issued: b-17 names an event b never had. */
    snprintf(lei, sizeof(lei), "%" PRIu64 "-17", stream_number(b));
    CHECK(session_find_stream(s, lei, &after) == NULL);
    for (int i = 0; i < 17; i++) /* requests: never held back, each gets an event id */
        CHECK_INT(push_json(b,
                            json_pack("{s:s, s:i, s:s}", "jsonrpc", "2.0", "id", i, "method",
                                      "roots/list"),
                            false),
                  0);
    f = session_find_stream(s, lei, &after);
    CHECK(f == b);
    CHECK_INT(after, 17);
    stream_unref(f);
    snprintf(lei, sizeof(lei), "%" PRIu64 "-18", stream_number(b));
    CHECK(session_find_stream(s, lei, &after) == NULL);
    for (int i = 0; i < 3; i++)
        CHECK_INT(push_n(g, i, false), 0);
    snprintf(lei, sizeof(lei), "%" PRIu64 "-3", stream_number(g));
    f = session_find_stream(s, lei, &after);
    CHECK(f == g);
    CHECK_INT(after, 3);
    stream_unref(f);
    /* Digits only: no sign, no space, no overflow. */
    static const char *const malformed[] = {" 2-0",
                                            "+2-0",
                                            "2- 0",
                                            "2-+0",
                                            "-1-0",
                                            "2--1",
                                            "2-0 ",
                                            "99999999999999999999999-0",
                                            "2-18446744073709551616",
                                            "2",
                                            "2-",
                                            "-0"};
    for (size_t i = 0; i < sizeof(malformed) / sizeof(malformed[0]); i++)
        CHECK(session_find_stream(s, malformed[i], &after) == NULL);
    /* Another session's streams are not found through this one. */
    after = 99;
    snprintf(lei, sizeof(lei), "%" PRIu64 "-0", stream_number(a));
    CHECK(session_find_stream(other, lei, &after) == NULL);
    CHECK_INT(after, 99);
    /* Malformed ids. */
    static const char *const bad[] = {"",
                                      "-",
                                      "1",
                                      "1-",
                                      "-1",
                                      "1-2-3",
                                      "a-1",
                                      "1-a",
                                      "1-1x",
                                      "1_1",
                                      "99-1",
                                      "0-0",
                                      "18446744073709551616-0"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        f = session_find_stream(s, bad[i], &after);
        if (f != NULL)
            fprintf(stderr, "Last-Event-ID \"%s\" found stream %" PRIu64 "\n", bad[i],
                    stream_number(f));
        CHECK(f == NULL);
        stream_unref(f);
        CHECK_INT(after, 99);
    }
    stream_unref(a);
    stream_unref(b);
    stream_unref(g);
    session_close(s);
    session_close(other);
    /* Closed: no standalone stream, and new answer streams are born ended. */
    CHECK(session_standalone_stream(s) == NULL);
    struct stream *late = stream_new(s);
    CHECK(late != NULL);
    CHECK_INT(push_n(late, 1, false), ERR_CLOSED);
    struct buf out;
    buf_init(&out, 1024);
    uint64_t cur = 0;
    bool fin = false;
    json_t *single = NULL;
    CHECK_INT(stream_pull(late, &cur, &out, &fin, true, &single), 0);
    CHECK(fin && single == NULL);
    buf_release(&out);
    stream_unref(late);
    session_unref(s);
    session_unref(other);
}

static void test_stream_end_and_close(void)
{
    table_reset(100, 0, REPLAY);
    struct session *s = new_session(-1);
    struct stream *st = stream_new(s);
    CHECK_INT(push_n(st, 1, false), 0);
    stream_end(st);
    CHECK_INT(push_n(st, 2, false), ERR_CLOSED);
    struct buf out;
    buf_init(&out, 4096);
    uint64_t cur = 0;
    bool fin = false;
    json_t *single = NULL;
    CHECK_INT(stream_pull(st, &cur, &out, &fin, true, &single), 0);
    CHECK(single == NULL); /* the one event is not a final answer */
    CHECK(fin);            /* but nothing more will come */
    CHECK_INT(cur, 1);
    stream_end(st); /* idempotent */
    buf_reset(&out);

    /* stream_end with nothing pulled yet: finished only once drained. */
    struct stream *st2 = stream_new(s);
    CHECK_INT(push_n(st2, 1, false), 0);
    CHECK_INT(push_n(st2, 2, false), 0);
    stream_end(st2);
    cur = 1;
    CHECK_INT(stream_pull(st2, &cur, &out, &fin, false, NULL), 0);
    CHECK(fin && cur == 2);
    buf_reset(&out);

    /* Session close ends the answer streams and the standalone stream. */
    struct stream *st3 = stream_new(s), *g = session_standalone_stream(s);
    CHECK_INT(push_n(st3, 1, false), 0);
    CHECK_INT(push_n(g, 1, false), 0);
    session_close(s);
    CHECK_INT(push_n(st3, 2, false), ERR_CLOSED);
    CHECK_INT(push_n(g, 2, false), ERR_CLOSED);
    cur = 0;
    CHECK_INT(stream_pull(st3, &cur, &out, &fin, false, NULL), 0);
    CHECK(fin && cur == 1);
    cur = 0;
    CHECK_INT(stream_pull(g, &cur, &out, &fin, false, NULL), 0);
    CHECK(fin && cur == 1);
    buf_release(&out);
    stream_unref(st);
    stream_unref(st2);
    stream_unref(st3);
    stream_unref(g);
    session_unref(s);
}

/* More than 32 answer streams: finished ones are dropped first, then the oldest. */
static void test_stream_bound(void)
{
    table_reset(100, 0, REPLAY);
    struct session *s = new_session(-1);
    struct stream *st[40];
    for (int i = 0; i < 32; i++)
        st[i] = stream_new(s);
    stream_end(st[5]);
    st[32] = stream_new(s); /* 33 listed: st[5] goes */
    char lei[64];
    uint64_t after;
    struct stream *f;
#define FOUND(i)                                                                                   \
    (snprintf(lei, sizeof(lei), "%" PRIu64 "-0", stream_number(st[i])),                            \
     f = session_find_stream(s, lei, &after), stream_unref(f), f != NULL)
    CHECK(!FOUND(5));
    CHECK(FOUND(0));
    CHECK(FOUND(32));
    st[33] = stream_new(s); /* none finished: running streams are never forgotten */
    CHECK(FOUND(0));
    CHECK(FOUND(1));
    CHECK(FOUND(33));
    CHECK_INT(push_n(st[0], 1, true), 0); /* st[0] finishes... */
    st[34] = stream_new(s);               /* ...and, the oldest finished one, goes */
    CHECK(!FOUND(0));
    CHECK(FOUND(1));
    for (int i = 35; i < 40; i++)
        st[i] = stream_new(s);
    CHECK(FOUND(6));
    CHECK(FOUND(39));
#undef FOUND
    /* Closing the session ends every running stream, however many there were. */
    session_close(s);
    for (int i = 1; i < 40; i++)
        if (i != 5)
            CHECK_INT(push_n(st[i], 1, false), ERR_CLOSED);
    for (int i = 0; i < 40; i++)
        stream_unref(st[i]);
    session_unref(s);
}

/* --- writers and mailboxes --- */

struct test_writer {
    struct stream_writer w;
    int wakes;
};

static void count_wake_cb(struct stream_writer *w)
{
    ((struct test_writer *)w)->wakes++;
}

static void run_loop(uv_loop_t *loop)
{
    for (int i = 0; i < 5; i++)
        uv_run(loop, UV_RUN_NOWAIT);
}

static void close_loop(uv_loop_t *loop, struct mailbox *mb)
{
    mailbox_close(mb);
    uv_run(loop, UV_RUN_DEFAULT);
    CHECK_INT(uv_loop_close(loop), 0);
}

static void test_writer_wake(void)
{
    table_reset(100, 0, REPLAY);
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct mailbox *mb = mailbox_new(&loop);
    struct session *s = new_session(-1);
    struct stream *st = stream_new(s);

    struct test_writer tw = {{mb, count_wake_cb}, 0}, tw2 = {{mb, count_wake_cb}, 0};
    CHECK_INT(stream_attach(st, &tw.w), 0);
    run_loop(&loop);
    int base = tw.wakes; /* attach may wake to deliver what is buffered */
    CHECK(base <= 1);
    /* (A second writer's attach is not tested here: its semantics, refuse vs replace, are
       being changed in src/mcp/session.c.) The same writer again is fine. */
    CHECK_INT(stream_attach(st, &tw.w), 0);
    run_loop(&loop);
    base = tw.wakes;

    CHECK_INT(push_n(st, 1, false), 0);
    CHECK_INT(tw.wakes, base); /* woken on the loop's thread, not inside push */
    run_loop(&loop);
    CHECK_INT(tw.wakes, base + 1);
    /* Pushes before the loop runs coalesce into one wake. */
    CHECK_INT(push_n(st, 2, false), 0);
    CHECK_INT(push_n(st, 3, false), 0);
    CHECK_INT(push_n(st, 4, false), 0);
    run_loop(&loop);
    CHECK_INT(tw.wakes, base + 2);
    /* Detached: no wake. Detach is idempotent; a stranger's detach does nothing. */
    stream_detach(st, &tw2.w);
    CHECK_INT(push_n(st, 5, false), 0);
    run_loop(&loop);
    CHECK_INT(tw.wakes, base + 3);
    stream_detach(st, &tw.w);
    stream_detach(st, &tw.w);
    CHECK_INT(push_n(st, 6, false), 0);
    run_loop(&loop);
    CHECK_INT(tw.wakes, base + 3);
    /* Attaching to a stream with buffered events wakes the new writer at once. */
    CHECK_INT(stream_attach(st, &tw2.w), 0);
    run_loop(&loop);
    CHECK_INT(tw2.wakes, 1);
    /* Detached while a wake is queued: the callback does not reach the old writer. */
    CHECK_INT(push_n(st, 7, false), 0);
    stream_detach(st, &tw2.w);
    run_loop(&loop);
    CHECK_INT(tw2.wakes, 1);
    /* stream_end and session_close wake the writer too. */
    CHECK_INT(stream_attach(st, &tw.w), 0);
    run_loop(&loop);
    int w0 = tw.wakes;
    stream_end(st);
    run_loop(&loop);
    CHECK_INT(tw.wakes, w0 + 1);
    struct stream *g = session_standalone_stream(s);
    struct test_writer tg = {{mb, count_wake_cb}, 0};
    CHECK_INT(stream_attach(g, &tg.w), 0);
    run_loop(&loop);
    int g0 = tg.wakes;
    session_close(s);
    run_loop(&loop);
    CHECK_INT(tg.wakes, g0 + 1);
    stream_detach(g, &tg.w);
    stream_detach(st, &tw.w);
    /* A stream outliving its writer's closed mailbox: posting fails quietly. */
    stream_unref(g);
    stream_unref(st);
    session_unref(s);
    close_loop(&loop, mb);
}

/* --- concurrency: 4 pushers, one woken reader --- */

#define PUSHERS 4
#define PER_PUSHER 20000

struct conc {
    struct stream *st;
    uv_loop_t loop;
    struct mailbox *mb;
    uv_timer_t watchdog;
    struct stream_writer w;
    struct buf out;
    uint64_t cursor;
    bool finished;
    int err;
    int next_n[PUSHERS];
    uint64_t next_seq;
    long events, dup_or_gap, out_of_order, wakes, watchdog_pulls;
    char carry[256];
};

/* The end of the event that starts at p: its "\n\n", or NULL. A plain loop on purpose: under
   ASan, strstr and memmem check their whole haystack on every call, which made this parse of a
   pull of many megabytes quadratic (110 s instead of 1 s). */
static char *event_end(char *p, const char *limit)
{
    for (; p + 1 < limit; p++)
        if (p[0] == '\n' && p[1] == '\n')
            return p;
    return NULL;
}

static void conc_parse(struct conc *c)
{
    /* Every event: "id: <stream>-<seq>\ndata: {...,"params":{"t":T,"n":N}}\n\n" */
    char *p = c->out.data;
    const char *limit = c->out.data ? c->out.data + c->out.len : NULL;
    while (p && p < limit) {
        char *end = event_end(p, limit);
        if (end == NULL)
            break;
        *end = '\0';
        unsigned long long num, seq;
        int t, n;
        char *data = strstr(p, "\ndata: ");
        if (sscanf(p, "id: %llu-%llu", &num, &seq) != 2 || data == NULL) {
            c->dup_or_gap++;
            p = end + 2;
            continue;
        }
        json_t *m = json_loads(data + 7, 0, NULL);
        json_t *params = json_object_get(m, "params");
        t = (int)json_integer_value(json_object_get(params, "t"));
        n = (int)json_integer_value(json_object_get(params, "n"));
        if (seq != c->next_seq)
            c->dup_or_gap++;
        c->next_seq = seq + 1;
        if (json_object_get(params, "t") != NULL) {
            if (t < 0 || t >= PUSHERS || n != c->next_n[t])
                c->out_of_order++;
            else
                c->next_n[t]++;
        }
        json_decref(m);
        c->events++;
        p = end + 2;
    }
    buf_reset(&c->out);
}

static void conc_pull(struct conc *c)
{
    if (c->finished)
        return;
    int err = stream_pull(c->st, &c->cursor, &c->out, &c->finished, false, NULL);
    if (err)
        c->err = err;
    conc_parse(c);
    if (c->finished || err) {
        stream_detach(c->st, &c->w);
        uv_timer_stop(&c->watchdog);
        uv_close((uv_handle_t *)&c->watchdog, NULL);
        mailbox_close(c->mb);
    }
}

static void conc_wake_cb(struct stream_writer *w)
{
    struct conc *c = (struct conc *)((char *)w - offsetof(struct conc, w));
    c->wakes++;
    conc_pull(c);
}

static void watchdog_cb(uv_timer_t *t)
{
    /* A lost wake-up would otherwise hang the test: count it and pull anyway. */
    struct conc *c = t->data;
    c->watchdog_pulls++;
    conc_pull(c);
}

struct pusher {
    struct stream *st;
    int t;
};

static void *pusher_main(void *arg)
{
    struct pusher *p = arg;
    for (int n = 0; n < PER_PUSHER; n++) {
        json_t *m = json_pack("{s:s, s:s, s:{s:i, s:i}}", "jsonrpc", "2.0", "method",
                              "notifications/message", "params", "t", p->t, "n", n);
        if (stream_push(p->st, m, false) != 0)
            abort();
        json_decref(m);
    }
    return NULL;
}

static void *reader_main(void *arg)
{
    struct conc *c = arg;
    uv_run(&c->loop, UV_RUN_DEFAULT);
    return NULL;
}

/* Regressions for bugs found by review; each names what used to go wrong. */
static void test_regressions(void)
{
    /* A session whose stream has a writer attached is not idle, however long it is quiet. */
    table_reset(100, 50, REPLAY);
    uv_loop_t l1, l2;
    uv_loop_init(&l1);
    uv_loop_init(&l2);
    struct mailbox *mb1 = mailbox_new(&l1), *mb2 = mailbox_new(&l2);
    struct session *s = new_session(-1);
    struct stream *st = stream_new(s);
    struct test_writer a = {{mb1, count_wake_cb}, 0}, b = {{mb2, count_wake_cb}, 0};
    CHECK_INT(stream_attach(st, &a.w), 0);
    run_loop(&l1);
    sleep_ms(100);
    CHECK_INT(session_table_sweep(), 0);
    /* A writer that moves to another worker is woken there, even while a wake for the old one
       is still queued (it used to be dropped, and the new writer waited forever). */
    int a0 = a.wakes;
    CHECK_INT(push_n(st, 1, false), 0);
    stream_detach(st, &a.w);
    CHECK_INT(stream_attach(st, &b.w), 0);
    run_loop(&l1);
    run_loop(&l2);
    CHECK_INT(a.wakes, a0);
    CHECK(b.wakes >= 1);
    stream_detach(st, &b.w);
    sleep_ms(100);
    CHECK_INT(session_table_sweep(), 1); /* detached and quiet: now it is idle */

    /* A full output buffer is partial progress, not "events dropped". */
    table_reset(100, 0, REPLAY);
    struct session *s2 = new_session(-1);
    struct stream *st2 = stream_new(s2);
    for (int i = 0; i < 3; i++)
        CHECK_INT(push_n(st2, i, i == 2), 0);
    struct buf out;
    uint64_t cur = 0;
    bool fin = false;
    int rounds = 0;
    /* Measure the three events, then allow room for one and a half of them at a time. */
    buf_init(&out, 1 << 16);
    CHECK_INT(stream_pull(st2, &cur, &out, &fin, false, NULL), 0);
    size_t one = out.len / 3;
    buf_release(&out);
    buf_init(&out, one + one / 2);
    cur = 0;
    fin = false;
    while (!fin && rounds++ < 10) {
        buf_reset(&out);
        CHECK_INT(stream_pull(st2, &cur, &out, &fin, false, NULL), 0);
    }
    CHECK(fin);
    CHECK_INT(cur, 3);
    CHECK(rounds > 1);
    /* One event larger than the whole buffer is its own error. */
    struct stream *st3 = stream_new(s2);
    json_t *big = json_pack(
        "{s:s}", "text",
        "012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789"
        "012345678901234567890123456789012345678901234567890123456789");
    CHECK_INT(stream_push(st3, big, false), 0);
    json_decref(big);
    buf_reset(&out);
    cur = 0;
    CHECK_INT(stream_pull(st3, &cur, &out, &fin, false, NULL), ERR_PROTOCOL);
    buf_release(&out);

    /* Client ids that differ only after a NUL are different calls; long ids are fine. */
    json_t *ida = json_loads("\"x\\u0000A\"", JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    json_t *idb = json_loads("\"x\\u0000B\"", JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    json_t *idx = json_string("x");
    char longid[400];
    memset(longid, 'l', sizeof(longid) - 1);
    longid[sizeof(longid) - 1] = '\0';
    json_t *idl = json_string(longid);
    int ca, cb, cl;
    CHECK_INT(session_track_call(s2, ida, &ca), 0);
    CHECK_INT(session_track_call(s2, idb, &cb), 0);
    CHECK_INT(session_track_call(s2, idl, &cl), 0);
    CHECK(session_find_call(s2, ida) == &ca);
    CHECK(session_find_call(s2, idb) == &cb);
    CHECK(session_find_call(s2, idx) == NULL);
    CHECK(session_find_call(s2, idl) == &cl);
    session_untrack_call(s2, idb, &cb);
    CHECK(session_find_call(s2, ida) == &ca);
    json_decref(ida);
    json_decref(idb);
    json_decref(idx);
    json_decref(idl);

    stream_unref(st);
    stream_unref(st2);
    stream_unref(st3);
    session_close(s2);
    session_unref(s2);
    session_unref(s);
    close_loop(&l1, mb1);
    close_loop(&l2, mb2);
    table_reset(1000, 0, REPLAY);
}

static void test_concurrent_push_pull(void)
{
    /* The ring holds every event, so the reader never falls out of it: all must arrive. */
    table_reset(100, 0, PUSHERS * PER_PUSHER + 1);
    struct session *s = new_session(-1);
    static struct conc c;
    memset(&c, 0, sizeof(c));
    c.st = stream_new(s);
    c.next_seq = 1;
    uv_loop_init(&c.loop);
    c.mb = mailbox_new(&c.loop);
    uv_timer_init(&c.loop, &c.watchdog);
    c.watchdog.data = &c;
    uv_timer_start(&c.watchdog, watchdog_cb, 2000, 2000);
    c.w.mb = c.mb;
    c.w.wake_cb = conc_wake_cb;
    buf_init(&c.out, 64u << 20);
    CHECK_INT(stream_attach(c.st, &c.w), 0);

    pthread_t reader, th[PUSHERS];
    struct pusher ps[PUSHERS];
    pthread_create(&reader, NULL, reader_main, &c);
    for (int i = 0; i < PUSHERS; i++) {
        ps[i].st = c.st;
        ps[i].t = i;
        pthread_create(&th[i], NULL, pusher_main, &ps[i]);
    }
    for (int i = 0; i < PUSHERS; i++)
        pthread_join(th[i], NULL);
    json_t *fin = json_pack("{s:s, s:i, s:{}}", "jsonrpc", "2.0", "id", 1, "result");
    CHECK_INT(stream_push(c.st, fin, true), 0);
    json_decref(fin);
    pthread_join(reader, NULL);

    CHECK_INT(c.err, 0);
    CHECK(c.finished);
    CHECK_INT(c.events, PUSHERS * PER_PUSHER + 1);
    CHECK_INT(c.dup_or_gap, 0);
    CHECK_INT(c.out_of_order, 0);
    for (int i = 0; i < PUSHERS; i++)
        CHECK_INT(c.next_n[i], PER_PUSHER);
    CHECK_INT(c.cursor, PUSHERS * PER_PUSHER + 1);
    CHECK(c.wakes >= 1);
    CHECK_INT(c.watchdog_pulls, 0);
    CHECK_INT(uv_loop_close(&c.loop), 0);
    buf_release(&c.out);
    stream_unref(c.st);
    session_close(s);
    session_unref(s);
    table_reset(1000, 0, REPLAY);
}

/* Sessions created, found and closed from several threads at once. */
static void *churn_main(void *arg)
{
    (void)arg;
    for (int i = 0; i < 300; i++) {
        int err = 0;
        struct session *s = session_new(-1, "2025-11-25", NULL, &err);
        if (s == NULL)
            continue;
        struct session *f = session_find(session_id(s), SESSION_ID_LEN);
        if (f != s)
            abort();
        struct stream *st = stream_new(s);
        json_t *m = json_integer(i);
        stream_push(st, m, false);
        json_decref(m);
        session_unref(f);
        if (i % 2)
            session_close(s);
        stream_unref(st);
        session_unref(s);
    }
    return NULL;
}

static void test_concurrent_sessions(void)
{
    table_reset(100000, 0, REPLAY);
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, churn_main, NULL);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    CHECK_INT(session_table_count(), 4 * 150);
    session_table_close_all();
    CHECK_INT(session_table_count(), 0);
}

/* Sealed ids: a session resumes from its id alone (as on another replica), a DELETEd one does
   not, an altered one does not; requestState seals are bound to the principal. */
static void test_sealed(void)
{
    static const unsigned char master[32] = {1, 2, 3};
    mcp_seal_init(master);
    CHECK(mcp_seal_shared());
    int err = 0;
    json_t *caps = json_pack("{s:{}, s:{s:b}}", "sampling", "experimental", "x", 1);
    struct session *s = session_new(-1, "2025-11-25", caps, &err);
    json_decref(caps);
    CHECK(s != NULL);
    json_t *info = json_pack("{s:s, s:s}", "name", "unit", "version", "9");
    session_set_client_info(s, info);
    json_decref(info);
    session_set_owner(s, "u:1");
    char id[SESSION_ID_MAX + 1];
    snprintf(id, sizeof(id), "%s", session_id(s));
    CHECK(strncmp(id, "gs1.", 4) == 0);
    /* Forget it without ending it (another replica never saw it): drop the table's entry. */
    struct session *f = session_find(id, strlen(id));
    CHECK(f == s);
    session_unref(f);
    char bad[SESSION_ID_MAX + 1];
    snprintf(bad, sizeof(bad), "%s", id);
    bad[strlen(bad) - 5] = bad[strlen(bad) - 5] == 'A' ? 'B' : 'A';
    CHECK(session_find(bad, strlen(bad)) == NULL);
    session_close(s); /* DELETE: this replica never resumes it */
    session_unref(s);
    CHECK(session_find(id, strlen(id)) == NULL);

    json_t *state = json_string("opaque");
    char *sealed = mcp_era_seal_state("srv", "tools/call", "t", "u:1", state, 60000);
    CHECK(sealed != NULL);
    json_t *open = mcp_era_open_state(sealed, "srv", "tools/call", "t", "u:1");
    CHECK(json_equal(open, state));
    json_decref(open);
    CHECK(mcp_era_open_state(sealed, "srv", "tools/call", "t", "u:2") == NULL);
    CHECK(mcp_era_open_state(sealed, "srv", "tools/call", "t", "") == NULL);
    /* A session key never opens a state seal, nor the other way round. */
    CHECK(mcp_unseal(MCP_SEAL_SESSION, MCP_SEALED_PREFIX, sealed, strlen(sealed)) == NULL);
    CHECK(mcp_unseal(MCP_SEAL_STATE, "gs1.", id, strlen(id)) == NULL);
    free(sealed);
    json_decref(state);
}

/* --- the remote hook (server-to-client traffic across replicas, xreplica.c) --- */

static struct {
    int on, off, offered;
    bool take;
    char hash[65];
} rh;
static void rh_watch(const char *hash, bool on)
{
    snprintf(rh.hash, sizeof(rh.hash), "%s", hash);
    if (on)
        rh.on++;
    else
        rh.off++;
}
static bool rh_forward(struct stream *st, const char *hash, json_t *msg)
{
    (void)st;
    (void)msg;
    snprintf(rh.hash, sizeof(rh.hash), "%s", hash);
    rh.offered++;
    return rh.take;
}
static const struct session_remote rh_ops = {rh_watch, rh_forward};

/* How many events the ring of st holds after the cursor 0 (pulled into a scratch buffer). */
static int ring_events(struct stream *st)
{
    struct buf out;
    buf_init(&out, 1 << 20);
    uint64_t cur = 0;
    bool fin = false;
    stream_pull(st, &cur, &out, &fin, false, NULL);
    buf_release(&out);
    return (int)cur;
}

static void test_remote_hook(void)
{
    static const unsigned char master[32] = {1, 2, 3};
    mcp_seal_init(master);
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct mailbox *mb = mailbox_new(&loop);
    memset(&rh, 0, sizeof(rh));
    session_set_remote(&rh_ops);
    int err = 0;
    struct session *s = session_new(-1, "2025-11-25", NULL, &err);
    CHECK(s != NULL);
    session_set_owner(s, "u:1"); /* a sealed id: Redis knows it by its hash */
    char hash[65];
    CHECK(session_id_hash(s, hash));
    struct stream *g = session_standalone_stream(s), *answer = stream_new(s);

    /* No writer here: offered to the hook, which takes it (another replica holds the stream)... */
    rh.take = true;
    CHECK_INT(push_n(g, 1, false), 0);
    CHECK_INT(rh.offered, 1);
    CHECK_STR(rh.hash, hash);
    CHECK_INT(ring_events(g), 0);
    /* ...or leaves it here (nobody does). */
    rh.take = false;
    CHECK_INT(push_n(g, 2, false), 0);
    CHECK_INT(rh.offered, 2);
    CHECK_INT(ring_events(g), 1);
    /* A call's answer stream is never offered; nor is stream_push_here. */
    CHECK_INT(push_n(answer, 3, false), 0);
    json_t *m = msg_n(4);
    CHECK_INT(stream_push_here(g, m, false), 0);
    json_decref(m);
    CHECK_INT(rh.offered, 2);

    /* A writer attaches: the hook hears of the first one only, the session is found by its
       hash at once, and what is pushed goes to the writer here. */
    struct test_writer tw = {{mb, count_wake_cb}, 0}, tw2 = {{mb, count_wake_cb}, 0};
    CHECK_INT(stream_attach(g, &tw.w), 0);
    CHECK_INT(rh.on, 1);
    CHECK_STR(rh.hash, hash);
    CHECK_INT(stream_attach(g, &tw2.w), 0); /* a reconnection replaces it */
    CHECK_INT(rh.on, 1);
    struct session *f = session_find_by_hash(hash);
    CHECK(f == s);
    session_unref(f);
    CHECK(session_find_by_hash("00") == NULL);
    CHECK_INT(push_n(g, 5, false), 0);
    CHECK_INT(rh.offered, 2);
    stream_detach(g, &tw.w); /* the replaced one: nothing */
    CHECK_INT(rh.off, 0);
    stream_detach(g, &tw2.w);
    CHECK_INT(rh.off, 1);
    /* Still found once no writer holds it (by a pass over the table). */
    f = session_find_by_hash(hash);
    CHECK(f == s);
    session_unref(f);

    /* The hook goes (shutdown) while a writer holds the stream: its detach still takes the
       session out of the map, which never outlives it. */
    CHECK_INT(stream_attach(g, &tw.w), 0);
    session_set_remote(NULL);
    stream_detach(g, &tw.w);
    CHECK_INT(rh.off, 1);
    stream_unref(answer);
    stream_unref(g);
    session_close(s);
    session_unref(s);
    CHECK(session_find_by_hash(hash) == NULL); /* (ASan: no read of the freed session) */
    run_loop(&loop);
    close_loop(&loop, mb);
}

int main(void)
{
    if (core_init() != 0)
        return 1;
    session_table_init(1000, 0, REPLAY);
    static const struct test_case cases[] = {
        TEST(test_new_and_find),
        TEST(test_limit),
        TEST(test_sweep),
        TEST(test_requests),
        TEST(test_subscriptions),
        TEST(test_calls),
        TEST(test_stream_sse),
        TEST(test_json_if_single),
        TEST(test_replay_ring),
        TEST(test_find_stream),
        TEST(test_stream_end_and_close),
        TEST(test_stream_bound),
        TEST(test_writer_wake),
        TEST(test_regressions),
        TEST(test_concurrent_push_pull),
        TEST(test_concurrent_sessions),
        TEST(test_sealed),
        TEST(test_remote_hook),
    };
    int rc = test_run_all(cases, sizeof(cases) / sizeof(cases[0]));
    session_table_close_all();
    return rc;
}
