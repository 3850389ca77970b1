/*
 * src/shared against a real redis-server (tests/unit/shared/with-redis.sh starts one with a
 * password): the URL and start-up errors (never the password), the counter primitive (INCRBY with
 * an expiry set once per window), the channels of server-to-client traffic across replicas
 * (a watched session's channel, this replica's own, again after a reconnection), and a connection
 * that comes back by itself after the server was killed and started again on the same port.
 */
#include "core/mailbox.h"
#include "shared/redis.h"
#include "test.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *port_s, *password;
static uv_loop_t loop;
static struct mailbox *mb;
static struct shared_worker *sw;

static void tick_cb(uv_timer_t *t)
{
    (void)t;
}

/* Run the loop until cond() or ms pass; returns cond(). */
static bool run_until(bool (*cond)(void), int ms)
{
    uv_timer_t tick;
    uv_timer_init(&loop, &tick);
    uv_timer_start(&tick, tick_cb, 10, 10);
    double end = test_now_ms_() + ms;
    while (!cond() && test_now_ms_() < end)
        uv_run(&loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
    return cond();
}

static bool redis_state_is(const char *state)
{
    json_t *s = shared_status();
    bool r = s && strcmp(json_string_value(json_object_get(s, "state")), state) == 0;
    json_decref(s);
    return r;
}
static bool is_up(void)
{
    return redis_state_is("up");
}
static bool is_down(void)
{
    return redis_state_is("down");
}

static char url[256];

static void test_url_errors(void)
{
    static const struct {
        const char *url, *msg;
    } bad[] = {
        {"http://127.0.0.1:6379", "not a Redis URL"},
        {"redis://", "no host"},
        {"redis://user@127.0.0.1", "a user without a password"},
        {"redis://:p%zzsecret@127.0.0.1", "cannot be decoded"},
        {"redis://127.0.0.1:99999", "port that is not 1..65535"},
        {"redis://127.0.0.1:", "empty port"},
        {"redis://127.0.0.1/x", "database that is not a number"},
        {"redis://:psecret@127.0.0.1/0?timeout=1", "something after the database"},
        {"redis://[::1", "unclosed ["},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct err_info ei = {0};
        CHECK_INT(shared_init(bad[i].url, NULL, 1000, &ei), ERR_INVAL);
        CHECK_CONTAINS(ei.msg, bad[i].msg);
        CHECK(strstr(ei.msg, "secret") == NULL);
        CHECK(!shared_enabled());
    }
}

static void test_start_errors(void)
{
    struct err_info ei = {0};
    char u[256];
    snprintf(u, sizeof(u), "redis://:not-the-secret-pw@127.0.0.1:%s/0", port_s);
    CHECK_INT(shared_init(u, NULL, 1000, &ei), ERR_IO);
    CHECK_CONTAINS(ei.msg, "refused the credentials");
    CHECK_CONTAINS(ei.msg, "WRONGPASS");
    CHECK(strstr(ei.msg, "not-the-secret-pw") == NULL);
    snprintf(u, sizeof(u), "redis://127.0.0.1:%s/0", port_s);
    CHECK_INT(shared_init(u, NULL, 1000, &ei), ERR_IO);
    CHECK_CONTAINS(ei.msg, "NOAUTH");
    snprintf(u, sizeof(u), "redis://:%s@127.0.0.1:%s/99999", password, port_s);
    CHECK_INT(shared_init(u, NULL, 1000, &ei), ERR_IO);
    CHECK_CONTAINS(ei.msg, "SELECT");
    CHECK(strstr(ei.msg, password) == NULL);
    CHECK(!shared_enabled());
}

/* A blocking client of the test's own, to look at what the gateway wrote. */
static long long sync_int(const char *fmt, const char *arg)
{
    redisContext *c = redisConnect("127.0.0.1", atoi(port_s));
    long long v = -100;
    redisReply *r = c && !c->err ? redisCommand(c, "AUTH %s", password) : NULL;
    freeReplyObject(r);
    r = c && !c->err ? redisCommand(c, "SELECT 5") : NULL;
    freeReplyObject(r);
    r = c && !c->err ? redisCommand(c, fmt, arg) : NULL;
    if (r && r->type == REDIS_REPLY_INTEGER)
        v = r->integer;
    freeReplyObject(r);
    redisFree(c);
    return v;
}

struct count_result {
    bool done;
    int err;
    int64_t value;
};
static struct count_result res;
static void count_cb(int err, int64_t value, void *arg)
{
    struct count_result *r = arg;
    r->done = true;
    r->err = err;
    r->value = value;
}
static bool count_done(void)
{
    return res.done;
}

static int incr(const char *key, int64_t delta, uint32_t ttl_ms, int64_t *value)
{
    memset(&res, 0, sizeof(res));
    int err = shared_incr(key, delta, ttl_ms, count_cb, &res);
    if (err)
        return err;
    if (!run_until(count_done, 3000))
        return ERR_TIMEOUT;
    *value = res.value;
    return res.err;
}

static void test_counters(void)
{
    struct err_info ei = {0};
    snprintf(url, sizeof(url), "redis://:%s@127.0.0.1:%s/5", password, port_s);
    CHECK_INT(shared_init(url, "ghtest:", 1000, &ei), 0);
    CHECK(shared_enabled());
    CHECK_INT(shared_worker_new(&loop, mb, true, &sw), 0);
    int64_t v = 0;
    CHECK_INT(shared_incr("c1", 1, 1000, count_cb, &res), ERR_UNAVAILABLE); /* not entered */
    shared_worker_enter(sw);
    CHECK(run_until(is_up, 5000));
    CHECK_INT(incr("c1", 5, 1000, &v), 0);
    CHECK_INT(v, 5);
    long long ttl = sync_int("PTTL %s", "ghtest:count:c1");
    CHECK(ttl > 0 && ttl <= 1000);
    usleep(300 * 1000);
    CHECK_INT(incr("c1", 3, 1000, &v), 0);
    CHECK_INT(v, 8);
    ttl = sync_int("PTTL %s", "ghtest:count:c1");
    CHECK(ttl > 0 && ttl <= 750); /* the window was not stretched */
    usleep((unsigned)(ttl + 100) * 1000);
    CHECK_INT(incr("c1", 2, 1000, &v), 0); /* a new window */
    CHECK_INT(v, 2);
    CHECK_INT(incr("c1", -2, 1000, &v), 0);
    CHECK_INT(v, 0);
    /* a key holding something else */
    CHECK_INT(sync_int("SADD %s x", "ghtest:count:set"), 1);
    CHECK_INT(incr("set", 1, 1000, &v), ERR_PROTOCOL);
    CHECK_INT(shared_incr("x", 1, 0, count_cb, &res), ERR_INVAL);
    char longkey[300];
    memset(longkey, 'k', sizeof(longkey) - 1);
    longkey[sizeof(longkey) - 1] = '\0';
    CHECK_INT(shared_incr(longkey, 1, 1000, count_cb, &res), ERR_INVAL);
}

/* ---- channels of server-to-client traffic across replicas ---- */

static const char HASH[] = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
                  HASH2[] = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";

static struct {
    int n;
    enum shared_channel ch;
    char name[80];
    char payload[64];
} got;
static void message_cb(enum shared_channel ch, const char *name, const char *payload, size_t len)
{
    got.n++;
    got.ch = ch;
    snprintf(got.name, sizeof(got.name), "%s", name);
    snprintf(got.payload, sizeof(got.payload), "%.*s", (int)len, payload);
}
static bool got_message(void)
{
    return got.n > 0;
}

struct publish_result {
    bool done;
    int err;
    long long receivers;
};
static struct publish_result pub;
static void publish_cb(int err, long long receivers, void *arg)
{
    struct publish_result *r = arg;
    r->done = true;
    r->err = err;
    r->receivers = receivers;
}
static bool publish_done(void)
{
    return pub.done;
}

/* PUBLISH and wait for its count; -1 on an error. */
static long long publish(enum shared_channel ch, const char *name, const char *payload)
{
    memset(&pub, 0, sizeof(pub));
    if (shared_publish(ch, name, payload, strlen(payload), publish_cb, &pub) != 0 ||
        !run_until(publish_done, 3000) || pub.err)
        return -1;
    return pub.receivers;
}

/* Publish on the stream channel of hash until this process's subscriber receives it. */
static bool delivered_on(const char *hash)
{
    memset(&got, 0, sizeof(got));
    double end = test_now_ms_() + 5000;
    while (test_now_ms_() < end) {
        if (publish(SHARED_CH_STREAM, hash, "hello") == 1)
            return run_until(got_message, 3000);
        usleep(50 * 1000);
    }
    return false;
}
static bool stream_delivered(void)
{
    return delivered_on(HASH);
}

static void test_channels(void)
{
    shared_set_message_cb(message_cb);
    CHECK_INT((int)strlen(shared_replica()), SHARED_REPLICA_LEN);
    /* Nobody holds the stream: PUBLISH reaches nobody, and says so. */
    CHECK_INT(publish(SHARED_CH_STREAM, HASH, "nobody"), 0);
    /* This replica holds a writer of it: the subscriber joins its channel. */
    shared_stream_watch(HASH, true);
    CHECK(stream_delivered());
    CHECK_INT(got.ch, SHARED_CH_STREAM);
    CHECK_STR(got.name, HASH);
    CHECK_STR(got.payload, "hello");
    /* Its own channel, subscribed from the start. */
    memset(&got, 0, sizeof(got));
    CHECK_INT(publish(SHARED_CH_REPLICA, shared_replica(), "answer"), 1);
    CHECK(run_until(got_message, 3000));
    CHECK_INT(got.ch, SHARED_CH_REPLICA);
    CHECK_STR(got.name, shared_replica());
    CHECK_STR(got.payload, "answer");
    /* Names that are not a hash or a replica's name never make a channel. */
    CHECK_INT(shared_publish(SHARED_CH_STREAM, "not-a-hash", "x", 1, publish_cb, &pub), ERR_INVAL);
    CHECK_INT(shared_publish(SHARED_CH_REPLICA, "../x", "x", 1, publish_cb, &pub), ERR_INVAL);
}

static void test_reconnects(void)
{
    const char *stop = getenv("GH_TEST_REDIS_STOP"), *start = getenv("GH_TEST_REDIS_START");
    CHECK(stop && start);
    if (!stop || !start)
        return;
    CHECK_INT(system(stop), 0);
    CHECK(run_until(is_down, 5000));
    int64_t v = 0;
    CHECK_INT(incr("c2", 1, 1000, &v), ERR_UNAVAILABLE); /* at once, nothing waits */
    shared_stream_watch(HASH2, true);                    /* a GET stream opened during the outage */
    json_t *s = shared_status();
    CHECK(json_string_value(json_object_get(s, "error")) != NULL);
    CHECK(!json_is_true(json_object_get(s, "events")));
    json_decref(s);
    CHECK_INT(system(start), 0);
    CHECK(run_until(is_up, 8000));
    CHECK_INT(incr("c2", 4, 1000, &v), 0);
    CHECK_INT(v, 4);
    /* The stream watched before the outage is subscribed again on the new connection. */
    CHECK(stream_delivered());
    CHECK_STR(got.payload, "hello");
    CHECK(delivered_on(HASH2));
    CHECK_STR(got.name, HASH2);
    s = shared_status();
    CHECK(json_is_true(json_object_get(s, "events")));
    json_decref(s);
}

/* A server that stops answering with its connections open: the watchdog drops the command
   connection, so a call waiting on it fails instead of hanging, and new calls fail at once. */
static void test_stall(void)
{
    const char *pause = getenv("GH_TEST_REDIS_PAUSE"), *resume = getenv("GH_TEST_REDIS_RESUME");
    CHECK(pause && resume);
    if (!pause || !resume)
        return;
    CHECK_INT(system(pause), 0);
    memset(&res, 0, sizeof(res));
    double t0 = test_now_ms_();
    CHECK_INT(shared_incr("c4", 1, 1000, count_cb, &res), 0);
    CHECK(run_until(count_done, 6000));
    CHECK_INT(res.err, ERR_UNAVAILABLE);
    CHECK(test_now_ms_() - t0 < 4500); /* a PING a second, dropped after 2 s without answer */
    CHECK(is_down());
    int64_t v = 0;
    CHECK_INT(incr("c4", 1, 1000, &v), ERR_UNAVAILABLE);
    CHECK_INT(system(resume), 0);
    CHECK(run_until(is_up, 8000));
    CHECK_INT(incr("c4", 1, 1000, &v), 0);
}

static void test_stop(void)
{
    memset(&res, 0, sizeof(res));
    CHECK_INT(shared_incr("c3", 1, 1000, count_cb, &res), 0);
    shared_worker_stop(sw); /* the pending call is completed with ERR_CLOSED */
    CHECK(res.done);
    CHECK_INT(res.err, ERR_CLOSED);
    sw = NULL;
    mailbox_close(mb);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_INT(uv_loop_close(&loop), 0);
    shared_release();
    CHECK(!shared_enabled());
}

int main(void)
{
    port_s = getenv("GH_TEST_REDIS_PORT");
    password = getenv("GH_TEST_REDIS_PASSWORD");
    if (!port_s || !password) {
        fprintf(stderr, "run under tests/unit/shared/with-redis.sh\n");
        return 1;
    }
    uv_loop_init(&loop);
    mb = mailbox_new(&loop);
    static const struct test_case cases[] = {
        TEST(test_url_errors), TEST(test_start_errors), TEST(test_counters), TEST(test_channels),
        TEST(test_reconnects), TEST(test_stall),        TEST(test_stop),
    };
    return test_run_all(cases, sizeof(cases) / sizeof(cases[0]));
}
