/*
 * Redis through hiredis's asynchronous API, one connection per worker loop (see redis.h). A
 * connection goes through: connecting (a timer bounds it: hiredis 0.14 has no connect timeout
 * of its own) → set-up (AUTH, SELECT, PING pipelined; the subscriber then SUBSCRIBEs) → ready;
 * any failure drops it and a timer makes it again after a back-off (100 ms doubling to 2 s).
 * Calls made while a connection is not ready fail at once: nothing waits for Redis.
 */
#include "shared/redis.h"
#include "core/log.h"
#include "core/mailbox.h"
#include "core/rand.h"
#include "store/store.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wcast-qual"
#pragma GCC diagnostic ignored "-Wshadow"
#include <hiredis/adapters/libuv.h>
#pragma GCC diagnostic pop

#include <ctype.h>
#include <inttypes.h>
#include <pthread.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONNECT_TIMEOUT_MS 2000
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000
#define WATCH_MS 1000        /* a ready command connection is PINGed this often... */
#define WATCH_SILENT_MS 2000 /* ...and dropped when a PING goes unanswered this long */
#define KEY_MAX 320

/* The settings of shared_init, read-only afterwards. */
static struct {
    bool enabled;
    char host[256];
    int port;
    unsigned db;
    char user[128];
    char password[256]; /* wiped by shared_release */
    bool has_password;
    char prefix[80];
    char where[300]; /* host:port/db, for messages */
    uint32_t poll_ms;
    char replica[17]; /* a random name of this process, in its messages */
    bool blocking;    /* shared_init_cli: events published on a blocking connection */
} cfg;

/* What /readyz shows. */
static struct {
    atomic_uint connections, connected;
    atomic_bool events; /* the subscription is up */
    pthread_mutex_t lock;
    char error[256]; /* the last cause of a lost or refused connection */
} status = {.lock = PTHREAD_MUTEX_INITIALIZER};

struct conn {
    struct shared_worker *w;
    bool subscriber;
    redisAsyncContext *ac;
    bool ready;    /* set up (and subscribed, for the subscriber) */
    bool was_up;   /* ready at some point since the last outage was logged */
    bool stopping; /* shared_worker_stop: no reconnection */
    unsigned backoff_ms;
    uv_timer_t timer; /* connect timeout, reconnect back-off; once ready, the watchdog */
    bool ping_out;    /* the watchdog's PING is unanswered since ping_sent_ms */
    uint64_t ping_sent_ms;
};

struct shared_worker {
    uv_loop_t *loop;
    struct mailbox *mb;
    struct conn cmd, sub;
    bool has_sub;
    unsigned open_timers;
    /* The subscriber's worker: the standalone streams this replica holds writers of, by hash
       (shared_stream_watch): hash -> count * 4 + WATCH_* state. */
    json_t *watched;
    uv_timer_t sweep; /* unsubscribes the hashes no writer held for a while */
};

/* A watched hash's channel: not subscribed, subscribed (or the SUBSCRIBE sent), or UNSUBSCRIBE
   sent and not yet confirmed (a writer that comes meanwhile subscribes again on the
   confirmation: hiredis forgets a channel's callback when the unsubscription is confirmed). */
enum { WATCH_OFF = 0, WATCH_ON = 1, WATCH_LEAVING = 2, WATCH_AGAIN = 3 };
#define WATCH_SWEEP_MS 10000 /* a hash no writer holds is unsubscribed at the next sweep */

static _Thread_local struct shared_worker *current;
static void (*_Atomic ended_cb)(const char *hash);
static _Atomic shared_message_fn message_cb;
/* The worker that other threads post to (the subscriber's); NULL once it stops. Written and
   cleared on its own thread; read by any. */
static struct shared_worker *_Atomic home;

static void set_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void set_error(const char *fmt, ...)
{
    va_list ap;
    pthread_mutex_lock(&status.lock);
    va_start(ap, fmt);
    vsnprintf(status.error, sizeof(status.error), fmt, ap);
    va_end(ap);
    pthread_mutex_unlock(&status.lock);
}

/* ---- the URL ---- */

static int hexval(int c)
{
    return isdigit(c) ? c - '0' : isxdigit(c) ? (tolower(c) - 'a' + 10) : -1;
}

/* Percent-decode [s, s+n) into out (size > n). false for a bad escape or a NUL. */
static bool pct_decode(const char *s, size_t n, char *out, size_t size)
{
    size_t o = 0;
    if (n >= size)
        return false;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '%') {
            if (n - i < 3)
                return false;
            int hi = hexval((unsigned char)s[i + 1]), lo = hexval((unsigned char)s[i + 2]);
            if (hi < 0 || lo < 0)
                return false;
            c = hi * 16 + lo;
            i += 2;
        }
        if (c == 0)
            return false;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return true;
}

/* redis://[[user]:password@]host[:port][/db]. The password is never quoted in a message. */
static int parse_url(const char *url, struct err_info *ei)
{
    static const char expect[] = "expected redis://[[user]:password@]host[:port][/db]";
    if (strncmp(url, "redis://", 8) != 0)
        return err_info_set(ei, ERR_INVAL, 0, 0, "redis.url is not a Redis URL; %s", expect);
    const char *p = url + 8;
    size_t alen = strcspn(p, "/?#");
    const char *at = NULL;
    for (const char *q = p; q < p + alen; q++)
        if (*q == '@')
            at = q;
    const char *host = p;
    if (at != NULL) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (colon == NULL)
            return err_info_set(ei, ERR_INVAL, 0, 0, "redis.url has a user without a password; %s",
                                expect);
        if (!pct_decode(p, (size_t)(colon - p), cfg.user, sizeof(cfg.user)) ||
            !pct_decode(colon + 1, (size_t)(at - colon - 1), cfg.password, sizeof(cfg.password)))
            return err_info_set(ei, ERR_INVAL, 0, 0,
                                "redis.url has a user or password that cannot be decoded (a bad "
                                "%%-escape, or too long); %s",
                                expect);
        cfg.has_password = true;
        host = at + 1;
    }
    const char *hend = p + alen, *port = NULL;
    size_t hlen;
    if (*host == '[') {
        const char *close = memchr(host, ']', (size_t)(hend - host));
        if (close == NULL)
            return err_info_set(ei, ERR_INVAL, 0, 0, "redis.url has an unclosed [; %s", expect);
        hlen = (size_t)(close - host - 1);
        host++;
        if (close + 1 < hend) {
            if (close[1] != ':')
                return err_info_set(ei, ERR_INVAL, 0, 0, "redis.url: %s", expect);
            port = close + 2;
        }
    } else {
        const char *colon = memchr(host, ':', (size_t)(hend - host));
        hlen = (size_t)((colon ? colon : hend) - host);
        if (colon)
            port = colon + 1;
    }
    if (hlen == 0 || hlen >= sizeof(cfg.host))
        return err_info_set(ei, ERR_INVAL, 0, 0, "redis.url has no host; %s", expect);
    memcpy(cfg.host, host, hlen);
    cfg.host[hlen] = '\0';
    cfg.port = 6379;
    if (port != NULL) {
        long v = 0;
        if (port == hend)
            return err_info_set(ei, ERR_INVAL, 0, 0, "redis.url has an empty port; %s", expect);
        for (const char *q = port; q < hend; q++) {
            if (!isdigit((unsigned char)*q) || (v = v * 10 + (*q - '0')) > 65535)
                return err_info_set(ei, ERR_INVAL, 0, 0,
                                    "redis.url has a port that is not 1..65535; %s", expect);
        }
        if (v == 0)
            return err_info_set(ei, ERR_INVAL, 0, 0,
                                "redis.url has a port that is not 1..65535; %s", expect);
        cfg.port = (int)v;
    }
    const char *rest = hend;
    cfg.db = 0;
    if (*rest == '/') {
        rest++;
        unsigned long v = 0;
        size_t n = 0;
        for (; isdigit((unsigned char)*rest) && n < 6; rest++, n++)
            v = v * 10 + (unsigned long)(*rest - '0');
        if (*rest != '\0' && *rest != '?' && *rest != '#')
            return err_info_set(ei, ERR_INVAL, 0, 0,
                                "redis.url has a database that is not a number; %s", expect);
        cfg.db = (unsigned)v;
    }
    if (*rest != '\0')
        return err_info_set(ei, ERR_INVAL, 0, 0,
                            "redis.url has something after the database (a query or fragment); "
                            "%s",
                            expect);
    snprintf(cfg.where, sizeof(cfg.where), "%s%s%s:%d/%u", strchr(cfg.host, ':') ? "[" : "",
             cfg.host, strchr(cfg.host, ':') ? "]" : "", cfg.port, cfg.db);
    return 0;
}

/* A message from Redis or hiredis, with the password taken out should it ever be quoted. */
static void scrub(char *msg)
{
    if (!cfg.has_password || cfg.password[0] == '\0')
        return;
    size_t n = strlen(cfg.password);
    for (char *p = strstr(msg, cfg.password); p; p = strstr(p, cfg.password))
        memset(p, '*', n);
}

/* ---- start-up check (blocking, on the main thread) ---- */

static int check_reply(redisContext *c, redisReply *r, const char *what, struct err_info *ei)
{
    char msg[200];
    if (r == NULL) {
        snprintf(msg, sizeof(msg), "%s", c->errstr[0] ? c->errstr : "no answer");
        scrub(msg);
        return err_info_set(ei, ERR_IO, 0, 0, "Redis at %s did not answer %s: %s", cfg.where, what,
                            msg);
    }
    int err = 0;
    if (r->type == REDIS_REPLY_ERROR) {
        snprintf(msg, sizeof(msg), "%s", r->str ? r->str : "error");
        scrub(msg);
        err = err_info_set(ei, ERR_IO, 0, 0, "Redis at %s refused %s: %s", cfg.where, what, msg);
    }
    freeReplyObject(r);
    return err;
}

/* Connect, AUTH, SELECT, PING; then, when `publish`, bump the revocation counter and publish an
   event. Blocking, 2 s at most per step. */
static int blocking_session(bool publish, struct err_info *ei)
{
    struct timeval tv = {CONNECT_TIMEOUT_MS / 1000, 0};
    redisContext *c = redisConnectWithTimeout(cfg.host, cfg.port, tv);
    int err = 0;
    if (c == NULL)
        return err_info_set(ei, ERR_NOMEM, 0, 0, "Redis at %s: out of memory", cfg.where);
    if (c->err) {
        err = err_info_set(ei, ERR_IO, 0, 0, "cannot connect to Redis at %s: %s", cfg.where,
                           c->errstr);
        goto out;
    }
    redisSetTimeout(c, tv);
    if (cfg.has_password) {
        redisReply *r = cfg.user[0] ? redisCommand(c, "AUTH %s %s", cfg.user, cfg.password)
                                    : redisCommand(c, "AUTH %s", cfg.password);
        if ((err = check_reply(c, r, "the credentials in redis.url (AUTH)", ei)))
            goto out;
    }
    if (cfg.db != 0 &&
        (err = check_reply(c, redisCommand(c, "SELECT %u", cfg.db), "the database (SELECT)", ei)))
        goto out;
    if ((err = check_reply(c, redisCommand(c, "PING"), "a PING", ei)) || !publish)
        goto out;
    char key[KEY_MAX];
    snprintf(key, sizeof(key), "%srevocation", cfg.prefix);
    if ((err = check_reply(c, redisCommand(c, "INCR %s", key), "INCR", ei)) == 0)
        err = check_reply(c, redisCommand(c, "PUBLISH %s %s", key, cfg.replica), "PUBLISH", ei);
out:
    redisFree(c);
    return err;
}

static int check_server(struct err_info *ei)
{
    return blocking_session(false, ei);
}

/* The command-line tool's hook: it has no loop, and publishes each event on a connection of its
   own. A failure does not undo the change (it is stored); it is said. */
static void revocation_hook_blocking(void)
{
    struct err_info ei = {0};
    if (blocking_session(true, &ei) != 0)
        log_warn("redis",
                 "the change is stored, but no revocation event reached the replicas (%s); they "
                 "see it within redis.revocation_poll",
                 ei.msg);
}

int shared_init_cli(const char *url, const char *prefix, struct err_info *ei)
{
    memset(&cfg, 0, sizeof(cfg));
    int err = parse_url(url, ei);
    if (err) {
        sodium_memzero(&cfg, sizeof(cfg));
        return err;
    }
    snprintf(cfg.prefix, sizeof(cfg.prefix), "%s", prefix ? prefix : "gatehouse:");
    rand_token(cfg.replica, sizeof(cfg.replica), 12); /* 16 characters */
    cfg.blocking = true;
    store_revocation_set_hook(revocation_hook_blocking);
    return 0;
}

/* ---- connections ---- */

static void conn_connect(struct conn *c);
static void revocation_hook(void);
static void unsubscribed(struct conn *c, const char *channel);
static void watched_reset(struct conn *c);
static void subscribe_watched(struct conn *c);
static void timer_cb(uv_timer_t *t);

static void status_count(struct conn *c, bool up)
{
    if (c->ready == up)
        return;
    c->ready = up;
    if (up)
        atomic_fetch_add(&status.connected, 1);
    else
        atomic_fetch_sub(&status.connected, 1);
    if (c->subscriber) {
        atomic_store(&status.events, up);
        store_revocation_follow(up, cfg.poll_ms);
    }
}

/* The connection is gone (or never came): try again after the back-off. */
static void conn_lost(struct conn *c, const char *why)
{
    char msg[200];
    snprintf(msg, sizeof(msg), "%s", why && *why ? why : "connection closed");
    scrub(msg);
    status_count(c, false);
    c->ac = NULL;
    if (c->stopping)
        return;
    set_error("%s", msg);
    if (c->was_up) {
        log_warn("redis", "lost the %s connection to Redis at %s (%s); connecting again",
                 c->subscriber ? "subscriber" : "command", cfg.where, msg);
        c->was_up = false;
    }
    c->backoff_ms = c->backoff_ms == 0 ? BACKOFF_MIN_MS : c->backoff_ms * 2;
    if (c->backoff_ms > BACKOFF_MAX_MS)
        c->backoff_ms = BACKOFF_MAX_MS;
    uv_timer_start(&c->timer, timer_cb, c->backoff_ms, 0);
}

static void watch_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct conn *c = privdata;
    if (reply != NULL && c->ac == ac)
        c->ping_out = false;
}

/* The connect timeout of an attempt, the end of the back-off after one failed, or (once ready)
   the watchdog: a connection whose server stopped answering (a network that drops packets,
   a stalled server) would keep every call on it waiting; it is dropped instead, and its calls
   fail with ERR_UNAVAILABLE. */
static void timer_cb(uv_timer_t *t)
{
    struct conn *c = t->data;
    if (c->stopping)
        return;
    if (c->ready && c->ac != NULL) {
        uint64_t now = uv_now(c->w->loop);
        if (!c->ping_out) {
            c->ping_out = true;
            c->ping_sent_ms = now;
            redisAsyncCommand(c->ac, watch_cb, c, "PING");
            return;
        }
        if (now - c->ping_sent_ms < WATCH_SILENT_MS)
            return;
        redisAsyncContext *ac = c->ac;
        c->ac = NULL;
        redisAsyncFree(ac);
        conn_lost(c, "Redis did not answer for 2 s");
        return;
    }
    if (c->ac != NULL) { /* still connecting: give up on this attempt */
        redisAsyncContext *ac = c->ac;
        c->ac = NULL;
        redisAsyncFree(ac);
        conn_lost(c, "timed out connecting");
        return;
    }
    conn_connect(c);
}

static void on_ready(struct conn *c)
{
    uv_timer_stop(&c->timer);
    c->backoff_ms = 0;
    c->ping_out = false;
    if (!c->subscriber) /* the subscriber has TCP keepalives only: PING is no command there */
        uv_timer_start(&c->timer, timer_cb, WATCH_MS, WATCH_MS);
    if (!c->was_up)
        log_info("redis", "%s connection to Redis at %s is up",
                 c->subscriber ? "subscriber" : "command", cfg.where);
    c->was_up = true;
    status_count(c, true);
}

static void event_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct conn *c = privdata;
    redisReply *r = reply;
    if (r == NULL || c->ac != ac)
        return;
    if (r->type == REDIS_REPLY_ERROR) {
        char msg[200];
        snprintf(msg, sizeof(msg), "SUBSCRIBE refused: %s", r->str ? r->str : "");
        scrub(msg);
        set_error("%s", msg);
        redisAsyncDisconnect(ac);
        return;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 3 ||
        r->element[0]->type != REDIS_REPLY_STRING)
        return;
    const char *kind = r->element[0]->str;
    if (strcmp(kind, "subscribe") == 0) {
        if (!c->ready) {
            on_ready(c);
            subscribe_watched(c);
        }
        return;
    }
    if (strcmp(kind, "unsubscribe") == 0) {
        if (r->element[1]->type == REDIS_REPLY_STRING)
            unsubscribed(c, r->element[1]->str);
        return;
    }
    if (strcmp(kind, "message") != 0 || r->element[1]->type != REDIS_REPLY_STRING ||
        r->element[2]->type != REDIS_REPLY_STRING)
        return;
    char ch[KEY_MAX];
    const char *name = r->element[1]->str;
    size_t plen = strlen(cfg.prefix);
    if (strncmp(name, cfg.prefix, plen) == 0 &&
        (strncmp(name + plen, "s2c:", 4) == 0 || strncmp(name + plen, "replica:", 8) == 0)) {
        bool stream = name[plen] == 's';
        shared_message_fn fn = atomic_load(&message_cb);
        if (fn != NULL)
            fn(stream ? SHARED_CH_STREAM : SHARED_CH_REPLICA, name + plen + (stream ? 4 : 8),
               r->element[2]->str, r->element[2]->len);
        return;
    }
    snprintf(ch, sizeof(ch), "%ssession-ended", cfg.prefix);
    if (strcmp(name, ch) != 0) {
        store_revocation_event(); /* every connection reads the counter on its next call */
        return;
    }
    void (*fn)(const char *) = atomic_load(&ended_cb);
    const char *h = r->element[2]->str;
    if (fn != NULL && r->element[2]->len == SHARED_HASH_HEX - 1 &&
        strspn(h, "0123456789abcdef") == SHARED_HASH_HEX - 1)
        fn(h);
}

void shared_set_ended_cb(void (*fn)(const char *hash))
{
    atomic_store(&ended_cb, fn);
}

static void setup_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct conn *c = privdata;
    redisReply *r = reply;
    if (r == NULL || c->ac != ac)
        return;
    if (r->type == REDIS_REPLY_ERROR) {
        char msg[200];
        snprintf(msg, sizeof(msg), "%s", r->str ? r->str : "error");
        scrub(msg);
        log_error("redis", "Redis at %s refused the connection's set-up: %s", cfg.where, msg);
        set_error("set-up refused: %s", msg);
        redisAsyncDisconnect(ac); /* its callback makes it again after the back-off */
        return;
    }
    if (r->type != REDIS_REPLY_STATUS || strcmp(r->str, "PONG") != 0)
        return; /* AUTH's or SELECT's OK */
    if (c->subscriber) {
        char ch[KEY_MAX], ended[KEY_MAX], mine[KEY_MAX];
        snprintf(ch, sizeof(ch), "%srevocation", cfg.prefix);
        snprintf(ended, sizeof(ended), "%ssession-ended", cfg.prefix);
        snprintf(mine, sizeof(mine), "%sreplica:%s", cfg.prefix, cfg.replica);
        redisAsyncCommand(ac, event_cb, c, "SUBSCRIBE %s %s %s", ch, ended, mine);
        watched_reset(c); /* subscribed again once this subscription is confirmed */
    } else {
        on_ready(c);
    }
}

static void connect_cb(const redisAsyncContext *ac, int st)
{
    struct conn *c = ac->data;
    if (st != REDIS_OK && c != NULL && c->ac == ac) /* hiredis frees ac after this */
        conn_lost(c, ac->errstr);
}

static void disconnect_cb(const redisAsyncContext *ac, int st)
{
    struct conn *c = ac->data;
    if (c != NULL && c->ac == ac)
        conn_lost(c, st == REDIS_OK ? "closed after an error" : ac->errstr);
}

static void conn_connect(struct conn *c)
{
    redisAsyncContext *ac = redisAsyncConnect(cfg.host, cfg.port);
    if (ac == NULL) {
        conn_lost(c, "out of memory");
        return;
    }
    if (ac->err) {
        char msg[200];
        snprintf(msg, sizeof(msg), "%s", ac->errstr);
        redisAsyncFree(ac);
        conn_lost(c, msg);
        return;
    }
    ac->data = c;
    if (redisLibuvAttach(ac, c->w->loop) != REDIS_OK) {
        redisAsyncFree(ac);
        conn_lost(c, "cannot attach to the event loop");
        return;
    }
    c->ac = ac;
    redisEnableKeepAlive(&ac->c);
    redisAsyncSetConnectCallback(ac, connect_cb);
    redisAsyncSetDisconnectCallback(ac, disconnect_cb);
    if (cfg.has_password) {
        if (cfg.user[0])
            redisAsyncCommand(ac, setup_cb, c, "AUTH %s %s", cfg.user, cfg.password);
        else
            redisAsyncCommand(ac, setup_cb, c, "AUTH %s", cfg.password);
    }
    if (cfg.db != 0)
        redisAsyncCommand(ac, setup_cb, c, "SELECT %u", cfg.db);
    redisAsyncCommand(ac, setup_cb, c, "PING");
    uv_timer_start(&c->timer, timer_cb, CONNECT_TIMEOUT_MS, 0);
}

static void conn_init(struct shared_worker *w, struct conn *c, bool subscriber)
{
    c->w = w;
    c->subscriber = subscriber;
    uv_timer_init(w->loop, &c->timer);
    c->timer.data = c;
    w->open_timers++;
    atomic_fetch_add(&status.connections, 1);
    conn_connect(c);
}

/* ---- the module ---- */

int shared_init(const char *url, const char *prefix, uint32_t revocation_poll_ms,
                struct err_info *ei)
{
    memset(&cfg, 0, sizeof(cfg));
    int err = parse_url(url, ei);
    if (err)
        goto fail;
    snprintf(cfg.prefix, sizeof(cfg.prefix), "%s", prefix ? prefix : "gatehouse:");
    cfg.poll_ms = revocation_poll_ms;
    rand_token(cfg.replica, sizeof(cfg.replica), 12); /* 16 characters */
    if ((err = check_server(ei)) != 0)
        goto fail;
    cfg.enabled = true;
    store_revocation_set_hook(revocation_hook);
    return 0;
fail:
    sodium_memzero(&cfg, sizeof(cfg));
    return err;
}

void shared_release(void)
{
    if (cfg.blocking) {
        store_revocation_set_hook(NULL);
        sodium_memzero(&cfg, sizeof(cfg));
        return;
    }
    if (!cfg.enabled)
        return;
    store_revocation_set_hook(NULL);
    store_revocation_follow(false, cfg.poll_ms);
    sodium_memzero(&cfg, sizeof(cfg));
    atomic_store(&status.connections, 0);
    atomic_store(&status.connected, 0);
}

bool shared_enabled(void)
{
    return cfg.enabled;
}

static void sweep_cb(uv_timer_t *t);

int shared_worker_new(uv_loop_t *loop, struct mailbox *mb, bool subscriber,
                      struct shared_worker **out)
{
    struct shared_worker *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return ERR_NOMEM;
    w->loop = loop;
    w->mb = mb;
    conn_init(w, &w->cmd, false);
    if (subscriber) {
        w->has_sub = true;
        w->watched = json_object();
        uv_timer_init(loop, &w->sweep);
        w->sweep.data = &w->sub;
        w->open_timers++;
        uv_timer_start(&w->sweep, sweep_cb, WATCH_SWEEP_MS, WATCH_SWEEP_MS);
        conn_init(w, &w->sub, true);
        atomic_store(&home, w);
    }
    *out = w;
    return 0;
}

void shared_worker_enter(struct shared_worker *w)
{
    current = w;
}

static void timer_closed_cb(uv_handle_t *h)
{
    struct conn *c = h->data;
    struct shared_worker *w = c->w;
    if (--w->open_timers == 0)
        free(w);
}

static void conn_stop(struct conn *c)
{
    c->stopping = true;
    status_count(c, false);
    atomic_fetch_sub(&status.connections, 1);
    redisAsyncContext *ac = c->ac;
    c->ac = NULL;
    if (ac != NULL)
        redisAsyncFree(ac); /* pending callbacks run with no reply: ERR_CLOSED */
    uv_close((uv_handle_t *)&c->timer, timer_closed_cb);
}

void shared_worker_stop(struct shared_worker *w)
{
    if (w == NULL)
        return;
    if (atomic_load(&home) == w)
        atomic_store(&home, NULL);
    if (current == w)
        current = NULL;
    conn_stop(&w->cmd);
    if (w->has_sub) {
        conn_stop(&w->sub);
        json_decref(w->watched);
        w->watched = NULL;
        uv_close((uv_handle_t *)&w->sweep, timer_closed_cb);
    }
}

json_t *shared_status(void)
{
    if (!cfg.enabled)
        return NULL;
    unsigned n = atomic_load(&status.connections), up = atomic_load(&status.connected);
    json_t *o = json_pack("{s:s, s:s, s:I, s:I, s:b}", "state", n > 0 && up == n ? "up" : "down",
                          "address", cfg.where, "connections", (json_int_t)n, "connected",
                          (json_int_t)up, "events", atomic_load(&status.events));
    if (o != NULL && up < n) {
        pthread_mutex_lock(&status.lock);
        json_object_set_new(o, "error", json_string(status.error[0] ? status.error : "connecting"));
        pthread_mutex_unlock(&status.lock);
    }
    return o;
}

/* The worker whose connection a call from this thread uses: its own, or NULL. */
static struct conn *ready_conn(void)
{
    struct shared_worker *w = current;
    return w != NULL && w->cmd.ready && w->cmd.ac != NULL ? &w->cmd : NULL;
}

/* ---- revocation events ---- */

static void publish(struct conn *c)
{
    char key[KEY_MAX];
    snprintf(key, sizeof(key), "%srevocation", cfg.prefix);
    redisAsyncCommand(c->ac, NULL, NULL, "INCR %s", key);
    redisAsyncCommand(c->ac, NULL, NULL, "PUBLISH %s %s", key, cfg.replica);
}

static void publish_home_cb(void *arg)
{
    (void)arg;
    struct shared_worker *w = atomic_load(&home); /* this thread clears it when it stops */
    if (w != NULL && w->cmd.ready && w->cmd.ac != NULL)
        publish(&w->cmd);
    else
        log_warn("redis",
                 "a revocation event was not published (Redis at %s is not connected); other "
                 "replicas see the change within redis.revocation_poll",
                 cfg.where);
}

/* store_revocation_set_hook: any thread, right after the change. */
static void revocation_hook(void)
{
    struct conn *c = ready_conn();
    if (c != NULL) {
        publish(c);
        return;
    }
    struct shared_worker *w = atomic_load(&home);
    if (w == NULL || mailbox_post(w->mb, publish_home_cb, NULL) != 0)
        log_warn("redis", "a revocation event was not published (shutting down); other replicas "
                          "see the change within redis.revocation_poll");
}

/* ---- ended sessions ---- */

struct ended_job {
    char key[KEY_MAX];
    char hash[SHARED_HASH_HEX];
    uint64_t ttl_s;
    bool announce;
};

static void ended_reply_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    redisReply *r = reply;
    if (r == NULL || r->type == REDIS_REPLY_ERROR)
        log_warn("redis",
                 "could not record an ended session in Redis at %s (%s); other replicas may "
                 "resume it unless they share the store",
                 cfg.where, r ? "refused" : "connection lost");
}

static void ended_send(struct conn *c, const struct ended_job *j)
{
    char ch[KEY_MAX];
    snprintf(ch, sizeof(ch), "%ssession-ended", cfg.prefix);
    redisAsyncCommand(c->ac, ended_reply_cb, NULL, "SET %s 1 EX %" PRIu64, j->key,
                      j->ttl_s ? j->ttl_s : 1);
    if (j->announce) /* replicas that hold the session end it too */
        redisAsyncCommand(c->ac, NULL, NULL, "PUBLISH %s %s", ch, j->hash);
}

static void ended_home_cb(void *arg)
{
    struct ended_job *j = arg;
    struct shared_worker *w = atomic_load(&home);
    if (w != NULL && w->cmd.ready && w->cmd.ac != NULL)
        ended_send(&w->cmd, j);
    else
        ended_reply_cb(NULL, NULL, NULL);
    free(j);
}

void shared_session_ended(const char hash[SHARED_HASH_HEX], uint64_t ttl_s, bool announce)
{
    if (!cfg.enabled)
        return;
    struct ended_job local, *j = &local;
    struct conn *c = ready_conn();
    if (c == NULL && (j = malloc(sizeof(*j))) == NULL)
        return;
    snprintf(j->key, sizeof(j->key), "%ssession-ended:%s", cfg.prefix, hash);
    snprintf(j->hash, sizeof(j->hash), "%s", hash);
    j->ttl_s = ttl_s;
    j->announce = announce;
    if (c != NULL) {
        ended_send(c, j);
        return;
    }
    struct shared_worker *w = atomic_load(&home);
    if (w == NULL || mailbox_post(w->mb, ended_home_cb, j) != 0) {
        ended_reply_cb(NULL, NULL, NULL);
        free(j);
    }
}

struct check_job {
    struct conn *c;
    shared_check_cb cb;
    void *arg;
};

static void check_reply_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct check_job *j = privdata;
    redisReply *r = reply;
    if (r == NULL)
        j->cb(j->c->stopping ? ERR_CLOSED : ERR_UNAVAILABLE, false,
              j->c->stopping ? "the gateway is shutting down" : "the connection to Redis was lost",
              j->arg);
    else if (r->type != REDIS_REPLY_INTEGER)
        j->cb(ERR_UNAVAILABLE, false, "Redis answered EXISTS with an error", j->arg);
    else
        j->cb(0, r->integer > 0, NULL, j->arg);
    free(j);
}

int shared_session_check(const char hash[SHARED_HASH_HEX], shared_check_cb cb, void *arg)
{
    struct conn *c = ready_conn();
    if (c == NULL)
        return ERR_UNAVAILABLE;
    struct check_job *j = malloc(sizeof(*j));
    if (j == NULL)
        return ERR_NOMEM;
    *j = (struct check_job){c, cb, arg};
    char key[KEY_MAX];
    snprintf(key, sizeof(key), "%ssession-ended:%s", cfg.prefix, hash);
    if (redisAsyncCommand(c->ac, check_reply_cb, j, "EXISTS %s", key) != REDIS_OK) {
        free(j);
        return ERR_UNAVAILABLE;
    }
    return 0;
}

/* ---- counters ---- */

/* The expiry is set only when the counter has none: the first increment of a window starts it,
   and the window is not stretched by later ones. */
static const char INCR_SCRIPT[] =
    "local v = redis.call('INCRBY', KEYS[1], ARGV[1]) "
    "if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end "
    "return v";

struct count_job {
    struct conn *c;
    shared_count_cb cb;
    void *arg;
};

static void count_reply_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct count_job *j = privdata;
    redisReply *r = reply;
    if (r == NULL)
        j->cb(j->c->stopping ? ERR_CLOSED : ERR_UNAVAILABLE, 0, j->arg);
    else if (r->type == REDIS_REPLY_INTEGER)
        j->cb(0, (int64_t)r->integer, j->arg);
    else
        j->cb(ERR_PROTOCOL, 0, j->arg); /* WRONGTYPE: the key holds something else */
    free(j);
}

int shared_incr(const char *key, int64_t delta, uint32_t ttl_ms, shared_count_cb cb, void *arg)
{
    if (key == NULL || strlen(key) > 200 || ttl_ms == 0)
        return ERR_INVAL;
    struct conn *c = ready_conn();
    if (c == NULL)
        return ERR_UNAVAILABLE;
    struct count_job *j = malloc(sizeof(*j));
    if (j == NULL)
        return ERR_NOMEM;
    *j = (struct count_job){c, cb, arg};
    char full[KEY_MAX];
    snprintf(full, sizeof(full), "%scount:%s", cfg.prefix, key);
    if (redisAsyncCommand(c->ac, count_reply_cb, j, "EVAL %s 1 %s %lld %u", INCR_SCRIPT, full,
                          (long long)delta, ttl_ms) != REDIS_OK) {
        free(j);
        return ERR_UNAVAILABLE;
    }
    return 0;
}

/* ---- server-to-client traffic across replicas ---- */

const char *shared_replica(void)
{
    return cfg.enabled ? cfg.replica : "";
}

void shared_set_message_cb(shared_message_fn fn)
{
    atomic_store(&message_cb, fn);
}

#define B64URL_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

static bool is_hash(const char *h)
{
    return strlen(h) == SHARED_HASH_HEX - 1 && strspn(h, "0123456789abcdef") == SHARED_HASH_HEX - 1;
}

static void channel_name(char *out, size_t size, enum shared_channel ch, const char *name)
{
    snprintf(out, size, "%s%s%s", cfg.prefix, ch == SHARED_CH_STREAM ? "s2c:" : "replica:", name);
}

static bool sub_ready(struct shared_worker *w)
{
    return w->sub.ready && w->sub.ac != NULL;
}

static void subscribe_one(struct shared_worker *w, const char *hash, bool on)
{
    char ch[KEY_MAX];
    channel_name(ch, sizeof(ch), SHARED_CH_STREAM, hash);
    redisAsyncCommand(w->sub.ac, event_cb, &w->sub, on ? "SUBSCRIBE %s" : "UNSUBSCRIBE %s", ch);
}

/* A new subscriber connection: nothing is subscribed on it yet, and the hashes no writer holds
   are forgotten (there is nothing to unsubscribe). */
static void watched_reset(struct conn *c)
{
    struct shared_worker *w = c->w;
    const char *hash;
    json_t *v;
    void *tmp;
    json_object_foreach_safe(w->watched, tmp, hash, v)
    {
        json_int_t count = json_integer_value(v) / 4;
        if (count == 0)
            json_object_del(w->watched, hash);
        else
            json_integer_set(v, count * 4 + WATCH_OFF);
    }
}

/* The subscriber is ready: subscribe every watched hash a writer holds (those that came while it
   was being made too). */
static void subscribe_watched(struct conn *c)
{
    struct shared_worker *w = c->w;
    const char *hash;
    json_t *v;
    json_object_foreach(w->watched, hash, v)
    {
        json_int_t e = json_integer_value(v);
        if (e / 4 > 0 && e % 4 == WATCH_OFF) {
            json_integer_set(v, e - WATCH_OFF + WATCH_ON);
            subscribe_one(w, hash, true);
        }
    }
}

/* Home thread: Redis confirmed an UNSUBSCRIBE. */
static void unsubscribed(struct conn *c, const char *channel)
{
    char pre[KEY_MAX];
    channel_name(pre, sizeof(pre), SHARED_CH_STREAM, "");
    size_t n = strlen(pre);
    if (c->w->watched == NULL || strncmp(channel, pre, n) != 0)
        return;
    const char *hash = channel + n;
    json_t *v = json_object_get(c->w->watched, hash);
    if (v == NULL)
        return;
    json_int_t e = json_integer_value(v);
    if (e % 4 == WATCH_AGAIN && c->ready) { /* a writer came meanwhile */
        json_integer_set(v, (e / 4) * 4 + WATCH_ON);
        subscribe_one(c->w, hash, true);
    } else if (e / 4 == 0) {
        json_object_del(c->w->watched, hash);
    } else {
        json_integer_set(v, (e / 4) * 4 + WATCH_OFF);
    }
}

/* Home thread: unsubscribe the hashes no writer holds (since the last sweep at least: a client
   that reconnects its GET at once costs no command). */
static void sweep_cb(uv_timer_t *t)
{
    struct conn *c = t->data;
    struct shared_worker *w = c->w;
    const char *hash;
    json_t *v;
    void *tmp;
    json_object_foreach_safe(w->watched, tmp, hash, v)
    {
        json_int_t e = json_integer_value(v);
        if (e / 4 != 0 || e % 4 == WATCH_LEAVING)
            continue;
        if (e % 4 == WATCH_ON && sub_ready(w)) {
            json_integer_set(v, WATCH_LEAVING);
            subscribe_one(w, hash, false);
        } else if (e % 4 != WATCH_ON) {
            json_object_del(w->watched, hash);
        }
    }
}

struct watch_job {
    char hash[SHARED_HASH_HEX];
    bool on;
};

static void watch_home(struct shared_worker *w, const char *hash, bool on)
{
    if (w->watched == NULL)
        return;
    json_t *v = json_object_get(w->watched, hash);
    json_int_t e = v ? json_integer_value(v) : WATCH_OFF;
    json_int_t count = e / 4, state = e % 4;
    if (!on) {
        if (count > 0)
            count--;
        json_object_set_new(w->watched, hash, json_integer(count * 4 + state));
        return;
    }
    count++;
    if (state == WATCH_OFF && sub_ready(w)) {
        state = WATCH_ON;
        subscribe_one(w, hash, true);
    } else if (state == WATCH_LEAVING) {
        state = WATCH_AGAIN;
    }
    json_object_set_new(w->watched, hash, json_integer(count * 4 + state));
}

static void watch_home_cb(void *arg)
{
    struct watch_job *j = arg;
    struct shared_worker *w = atomic_load(&home);
    if (w != NULL)
        watch_home(w, j->hash, j->on);
    free(j);
}

void shared_stream_watch(const char hash[SHARED_HASH_HEX], bool on)
{
    if (!cfg.enabled || !is_hash(hash))
        return;
    struct shared_worker *w = atomic_load(&home);
    if (w == NULL)
        return;
    if (current == w) {
        watch_home(w, hash, on);
        return;
    }
    struct watch_job *j = malloc(sizeof(*j));
    if (j == NULL)
        return;
    memcpy(j->hash, hash, SHARED_HASH_HEX);
    j->on = on;
    if (mailbox_post(w->mb, watch_home_cb, j) != 0)
        free(j);
}

struct publish_job {
    struct conn *c;
    shared_publish_cb cb;
    void *arg;
};

static void publish_reply_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct publish_job *j = privdata;
    redisReply *r = reply;
    if (r == NULL)
        j->cb(j->c->stopping ? ERR_CLOSED : ERR_UNAVAILABLE, 0, j->arg);
    else if (r->type != REDIS_REPLY_INTEGER)
        j->cb(ERR_UNAVAILABLE, 0, j->arg);
    else
        j->cb(0, r->integer, j->arg);
    free(j);
}

int shared_publish(enum shared_channel ch, const char *name, const char *payload, size_t len,
                   shared_publish_cb cb, void *arg)
{
    if (name == NULL ||
        (ch == SHARED_CH_STREAM ? !is_hash(name)
                                : strlen(name) != SHARED_REPLICA_LEN ||
                                      strspn(name, B64URL_CHARS) != SHARED_REPLICA_LEN))
        return ERR_INVAL;
    struct conn *c = ready_conn();
    if (c == NULL)
        return ERR_UNAVAILABLE;
    struct publish_job *j = malloc(sizeof(*j));
    if (j == NULL)
        return ERR_NOMEM;
    *j = (struct publish_job){c, cb, arg};
    char full[KEY_MAX];
    channel_name(full, sizeof(full), ch, name);
    if (redisAsyncCommand(c->ac, publish_reply_cb, j, "PUBLISH %s %b", full, payload, len) !=
        REDIS_OK) {
        free(j);
        return ERR_UNAVAILABLE;
    }
    return 0;
}
