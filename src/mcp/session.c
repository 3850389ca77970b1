/*
 * Sessions and streams; see session.h for the model. Locking: one global mutex for the table
 * (lookups and inserts only), one mutex per session guarding the session and all its streams.
 * Neither lock is held while calling out (mailbox posts happen after unlocking).
 */
#include "mcp/session.h"
#include "core/err.h"
#include "core/idmap.h"
#include "core/log.h"
#include "core/mailbox.h"
#include "core/rand.h"
#include "mcp/protocol.h"
#include "shared/redis.h"
#include "store/store.h"

#include <inttypes.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_STREAMS_PER_SESSION 32
#define STREAM_HELD_PROGRESS_MAX 64 /* progress tokens held back per congested stream */
#define SESSION_SEALED_PREFIX "gs1."
#define SESSION_SEALED_TTL_S (24 * 3600) /* a sealed id is resumable this long after initialize */
#define SESSION_ENDED_MAX (1u << 20)     /* ended sealed ids remembered; beyond, none is resumed */

struct event {
    uint64_t seq;
    json_t *msg;
    bool final;
};

struct stream {
    atomic_int refcnt;
    struct session *s; /* strong reference */
    uint64_t number;
    bool standalone;
    bool listed;    /* in the session's list (for Last-Event-ID) */
    bool finished;  /* the final event was pushed */
    bool delivered; /* a writer pulled the final event */
    struct event *ring;
    size_t ring_cap, ring_len, ring_head; /* ring_head: index of the oldest event */
    size_t ring_max;                      /* ring_cap grows on demand up to this (replay_events) */
    uint64_t next_seq;                    /* seq of the next event; events start at 1 */
    uint64_t pulled; /* highest seq a writer has taken: events after it are undelivered */
    /* Held back while the ring is full of undelivered events (see stream_push): the latest
       progress per token (dumped token -> message), and what was dropped. */
    json_t *held_progress;
    uint64_t dropped_log, dropped_other, dropped_progress;
    bool summary_due;         /* something was dropped since the last summary */
    uint64_t evicted_message; /* seq of the last request or response evicted from the ring */
    /* stream_on_drain: whom to tell when the backlog is gone */
    struct mailbox *drain_mb;
    void (*drain_fn)(void *arg);
    void *drain_arg;
    struct stream_writer *writer;
    bool left; /* a writer detached and none has attached since: the client went away */
    bool wake_pending;
    struct stream *next;
};

struct tracked_request {
    void *upstream;
    json_t *up_id;
};

struct session {
    atomic_int refcnt;
    pthread_mutex_t lock;
    char id[SESSION_ID_MAX + 1];
    uint64_t key;
    uint64_t sealed_until;     /* a sealed id: its expiry (s since the epoch); 0 for a random id */
    unsigned char id_hash[32]; /* a sealed id's BLAKE2b (ended_hash): how Redis names it */
    int view;
    char owner[SESSION_OWNER_MAX + 1]; /* the principal's key; immutable once the id is out */
    bool transient; /* a 2026-07-28 request's session: never in the table, no id */
    char proto[32];
    json_t *caps;
    json_t *client_info; /* {name, version} from initialize, or NULL */
    bool closed;
    _Atomic uint64_t last_used;
    uint64_t next_req_id;
    struct idmap reqs;
    json_t *subs;
    json_t *calls;
    uint64_t next_stream;
    struct stream *streams; /* newest first */
    unsigned nstreams;
    struct stream *standalone;
    unsigned listen_mask; /* subscriptions/listen filter; set once, before it is listed */
    json_t *listen_id;    /* the listen request's id */
    atomic_int log_level; /* least severe notifications/message level wanted; -1 none */
    bool listening;       /* in table.listeners (under table.lock) */
    struct session *next_listener;
    atomic_uint
        writers; /* writers attached to its streams: a session being streamed to is not idle */
};

static struct {
    pthread_mutex_t lock;
    struct idmap map;
    unsigned count;
    uint32_t max;
    uint32_t idle_ms;
    uint32_t replay;
    unsigned char hash_key[crypto_shorthash_KEYBYTES];
    struct session *listeners; /* transient sessions of open subscriptions/listen streams */
    /* Sealed ids of sessions ended here (DELETE, idle expiry): never resumed again by this
       replica. key: id_key; value: the id's expiry (s), after which the seal refuses it anyway. */
    struct idmap ended;
    size_t nended;
    /* With the remote hook (Redis): the sealed sessions whose GET stream a writer here holds, by
       the first 64 bits of their id's hash, for the messages other replicas send them. */
    struct idmap watched;
} table = {.lock = PTHREAD_MUTEX_INITIALIZER};

/*
 * The ended sealed ids, also in the store, so that a restart (and a replica sharing the SQLite
 * file) honours them: an ephemeral row (kind ENDED_KIND, key: hex BLAKE2b of the id, never the id
 * itself, which is a bearer credential) that expires with the seal and is pruned by store_sweep.
 * Only with shared seal keys (mcp_seal_shared): with per-process keys no id outlives the process.
 * One connection, opened on first use, behind its own mutex: ending a session and resuming an
 * unknown id are rare next to the requests of live sessions.
 */
#define ENDED_KIND "mcp_session_ended"
static struct {
    pthread_mutex_t lock;
    char *path;       /* SQLite file; NULL: not kept */
    struct store *st; /* opened on first use */
    bool open_failed; /* logged once; not tried again */
    /* session_table_use_caller: the request path checks ended ids itself (a store job,
       session_store_ended) before session_find; records are written through the pool */
    bool caller_checks;
    struct store_pool *pool;
} ended_store = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void ended_elsewhere_cb(const char *hash);

/* Cross-replica hooks (session_set_remote); NULL without Redis. */
static const struct session_remote *_Atomic remote;

void session_set_remote(const struct session_remote *r)
{
    atomic_store(&remote, r);
}

void session_table_set_store(const char *sqlite_path)
{
    shared_set_ended_cb(ended_elsewhere_cb); /* with Redis: sessions ended by other replicas */
    pthread_mutex_lock(&ended_store.lock);
    free(ended_store.path);
    ended_store.path = sqlite_path ? strdup(sqlite_path) : NULL;
    ended_store.open_failed = false;
    pthread_mutex_unlock(&ended_store.lock);
}

void session_table_close_store(void)
{
    pthread_mutex_lock(&ended_store.lock);
    store_close(ended_store.st);
    ended_store.st = NULL;
    free(ended_store.path);
    ended_store.path = NULL;
    pthread_mutex_unlock(&ended_store.lock);
}

/* With ended_store.lock held: the store, or NULL. */
static struct store *ended_store_get(void)
{
    if (ended_store.st == NULL && ended_store.path != NULL && !ended_store.open_failed &&
        mcp_seal_shared()) {
        struct err_info ei = {0};
        if (store_open(ended_store.path, &ended_store.st, &ei) != 0) {
            ended_store.open_failed = true;
            log_warn("session_store",
                     "cannot open the store to remember ended sessions (%s); a restart may "
                     "resume them",
                     ei.msg[0] ? ei.msg : "unknown error");
        }
    }
    return ended_store.st;
}

static void ended_hash(const char *id, size_t len, char hex[65])
{
    unsigned char h[32];
    crypto_generichash(h, sizeof(h), (const unsigned char *)id, len, NULL, 0);
    sodium_bin2hex(hex, 65, h, sizeof(h));
}

static uint64_t wall_s(void);

void session_table_use_caller(struct store_pool *pool)
{
    pthread_mutex_lock(&ended_store.lock);
    ended_store.caller_checks = true;
    ended_store.pool = pool;
    pthread_mutex_unlock(&ended_store.lock);
}

/* An ended id's record, written on a pool thread (nobody waits for it). */
struct ended_record {
    char hex[65];
    int64_t until_s;
};

int session_store_record_ended(struct store *st, const char hash[65], int64_t until_s);

static int ended_record_job(struct store *st, void *arg)
{
    struct ended_record *r = arg;
    int err = session_store_record_ended(st, r->hex, r->until_s);
    free(r);
    return err;
}

int session_store_ended(struct store *st, const char hash[65], bool *ended)
{
    json_t *v = NULL;
    int err = store_ephemeral_get(st, ENDED_KIND, hash, &v);
    json_decref(v);
    if (err == 0 || err == ERR_NOTFOUND)
        *ended = err == 0;
    return err == ERR_NOTFOUND ? 0 : err;
}

/* session_defer_record: this thread writes the record itself (a DELETE answered once it is). */
static _Thread_local struct {
    bool defer, pending;
    char hex[65];
    int64_t until_s;
} deferred;

void session_defer_record(bool on)
{
    deferred.defer = on;
    deferred.pending = false;
}

bool session_deferred_record(char hash[65], int64_t *until_s)
{
    if (!deferred.pending)
        return false;
    memcpy(hash, deferred.hex, sizeof(deferred.hex));
    *until_s = deferred.until_s;
    deferred.pending = false;
    return true;
}

int session_store_record_ended(struct store *st, const char hash[65], int64_t until_s)
{
    json_t *v = json_object();
    int err = v == NULL ? ERR_NOMEM : store_ephemeral_put(st, ENDED_KIND, hash, v, until_s);
    json_decref(v);
    if (err)
        log_warn("session_store", "could not record an ended session in the store (%s)",
                 err_str(err));
    return err;
}

/* announce: tell the replicas that hold the session to end it too (a DELETE; not an idle
   expiry, since the session may be in use on another replica). */
static void ended_store_put(const char *id, uint64_t until_s, bool announce)
{
    char hex[65];
    ended_hash(id, strlen(id), hex);
    /* Redis first: every replica asks it before resuming an id it does not hold */
    uint64_t now = wall_s();
    shared_session_ended(hex, until_s > now ? until_s - now : 1, announce);
    pthread_mutex_lock(&ended_store.lock);
    if (deferred.defer && ended_store.caller_checks && ended_store.path != NULL &&
        mcp_seal_shared()) {
        pthread_mutex_unlock(&ended_store.lock);
        memcpy(deferred.hex, hex, sizeof(hex));
        deferred.until_s = (int64_t)until_s;
        deferred.pending = true;
        return;
    }
    struct ended_record *r = NULL;
    if (ended_store.pool != NULL && ended_store.path != NULL && mcp_seal_shared() &&
        (r = malloc(sizeof(*r))) != NULL) {
        memcpy(r->hex, hex, sizeof(r->hex));
        r->until_s = (int64_t)until_s;
        if (store_pool_post(ended_store.pool, ended_record_job, r) == 0) {
            pthread_mutex_unlock(&ended_store.lock);
            return; /* written off the loop */
        }
        free(r);
    }
    struct store *st = ended_store_get();
    json_t *v = json_object();
    if (st != NULL && v != NULL && store_ephemeral_put(st, ENDED_KIND, hex, v, (int64_t)until_s))
        log_warn("session_store", "could not record an ended session in the store");
    json_decref(v);
    pthread_mutex_unlock(&ended_store.lock);
}

/* Was this sealed id ended (here before a restart, or by a replica on the same store)? */
static bool ended_store_has(const char *id, size_t len)
{
    char hex[65];
    ended_hash(id, len, hex);
    pthread_mutex_lock(&ended_store.lock);
    struct store *st = ended_store_get();
    json_t *v = NULL;
    bool ended = st != NULL && store_ephemeral_get(st, ENDED_KIND, hex, &v) == 0;
    json_decref(v);
    pthread_mutex_unlock(&ended_store.lock);
    return ended;
}

static void ended_store_sweep(void)
{
    pthread_mutex_lock(&ended_store.lock);
    if (ended_store.st != NULL)
        store_sweep(ended_store.st, (int64_t)time(NULL));
    pthread_mutex_unlock(&ended_store.lock);
}

/* Seconds since the epoch: what a sealed id's created and expiry are in, so that another replica
   (another machine, another boot) reads them alike. now_ms is monotonic, for idle times only. */
static uint64_t wall_s(void)
{
    return (uint64_t)time(NULL);
}

static uint64_t now_ms(void)
{
    return clock_now_ns() / 1000000u;
}

static uint64_t id_key(const char *id, size_t len)
{
    uint64_t k;
    crypto_shorthash((unsigned char *)&k, (const unsigned char *)id, len, table.hash_key);
    /* 0 and UINT64_MAX are reserved by idmap. */
    if (k == 0 || k == UINT64_MAX)
        k = 1;
    return k;
}

void session_table_init(uint32_t max_sessions, uint32_t idle_ms, uint32_t replay_events)
{
    pthread_mutex_lock(&table.lock);
    if (table.map.cap == 0) {
        idmap_init(&table.map);
        idmap_init(&table.ended);
        idmap_init(&table.watched);
        crypto_shorthash_keygen(table.hash_key);
    }
    table.max = max_sessions;
    table.idle_ms = idle_ms;
    table.replay = replay_events ? replay_events : 1;
    pthread_mutex_unlock(&table.lock);
}

unsigned session_table_count(void)
{
    pthread_mutex_lock(&table.lock);
    unsigned n = table.count;
    pthread_mutex_unlock(&table.lock);
    return n;
}

struct collect {
    struct session **v;
    size_t n, cap;
    uint64_t older_than; /* 0 = all */
};

static void collect_cb(uint64_t key, void *val, void *arg)
{
    struct collect *c = arg;
    struct session *s = val;
    if (c->older_than &&
        (atomic_load(&s->last_used) >= c->older_than || atomic_load(&s->writers) > 0))
        return;
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 64;
        struct session **v = realloc(c->v, cap * sizeof(*v));
        if (v == NULL)
            return; /* the rest waits for the next sweep */
        c->v = v;
        c->cap = cap;
    }
    c->v[c->n++] = session_ref(s);
}

/* Why a session closes: what is remembered and told. */
enum close_why {
    CLOSE_SHUTDOWN,  /* not ended: a restart resumes it */
    CLOSE_IDLE,      /* ended: remembered here, in the store and in Redis */
    CLOSE_DELETE,    /* the same, and the replicas holding it end it too */
    CLOSE_ELSEWHERE, /* another replica ended it (DELETE): remembered here only */
};
static void close_session_as(struct session *s, enum close_why why);
static void close_session(struct session *s, bool ended)
{
    close_session_as(s, ended ? CLOSE_IDLE : CLOSE_SHUTDOWN);
}

static unsigned close_collected(struct collect *c, bool ended)
{
    for (size_t i = 0; i < c->n; i++) {
        close_session(c->v[i], ended);
        session_unref(c->v[i]);
    }
    free(c->v);
    return (unsigned)c->n;
}

struct keep_ended {
    struct idmap *into;
    size_t n;
    uint64_t now_s;
};

static void keep_ended_cb(uint64_t key, void *val, void *arg)
{
    struct keep_ended *k = arg;
    if ((uint64_t)(uintptr_t)val >= k->now_s && idmap_put(k->into, key, val) == 0)
        k->n++;
}

/* Forget the ended ids whose seal has expired (the seal refuses them by itself now). */
static void sweep_ended(void)
{
    struct idmap fresh;
    idmap_init(&fresh);
    struct keep_ended k = {&fresh, 0, wall_s()};
    pthread_mutex_lock(&table.lock);
    idmap_foreach(&table.ended, keep_ended_cb, &k);
    idmap_release(&table.ended);
    table.ended = fresh;
    table.nended = k.n;
    pthread_mutex_unlock(&table.lock);
}

unsigned session_table_sweep(void)
{
    struct collect c = {0};
    uint64_t now = now_ms();
    sweep_ended();
    ended_store_sweep();
    if (table.idle_ms == 0 || now <= table.idle_ms)
        return 0;
    c.older_than = now - table.idle_ms;
    pthread_mutex_lock(&table.lock);
    idmap_foreach(&table.map, collect_cb, &c);
    pthread_mutex_unlock(&table.lock);
    unsigned n = close_collected(&c, true);
    if (n)
        log_info("session_expired", "%u idle session(s) expired", n);
    return n;
}

/* Under table.lock. */
static void collect_listeners(struct collect *c)
{
    for (struct session *l = table.listeners; l; l = l->next_listener)
        collect_cb(0, l, c);
}

void session_table_close_all(void)
{
    struct collect c = {0};
    pthread_mutex_lock(&table.lock);
    idmap_foreach(&table.map, collect_cb, &c);
    collect_listeners(&c);
    pthread_mutex_unlock(&table.lock);
    close_collected(&c, false); /* shutting down ends no session: a restart resumes them */
}

struct foreach_arg {
    void (*fn)(struct session *, void *);
    void *arg;
};

void session_foreach(void (*fn)(struct session *s, void *arg), void *arg)
{
    struct collect c = {0};
    pthread_mutex_lock(&table.lock);
    idmap_foreach(&table.map, collect_cb, &c);
    collect_listeners(&c);
    pthread_mutex_unlock(&table.lock);
    for (size_t i = 0; i < c.n; i++) {
        fn(c.v[i], arg);
        session_unref(c.v[i]);
    }
    free(c.v);
}

/* The parts of a session that do not involve the table. */
static struct session *session_alloc(int view, const char *protocol_version, json_t *client_caps,
                                     int refs)
{
    struct session *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    atomic_init(&s->refcnt, refs);
    pthread_mutex_init(&s->lock, NULL);
    s->view = view;
    snprintf(s->proto, sizeof(s->proto), "%s", protocol_version);
    s->caps = json_is_object(client_caps) ? json_deep_copy(client_caps) : json_object();
    s->subs = json_object();
    s->calls = json_object();
    idmap_init(&s->reqs);
    s->next_req_id = 1;
    atomic_init(&s->last_used, now_ms());
    s->log_level = -1;
    return s;
}

struct session *session_new_transient(int view, const char *protocol_version, json_t *client_caps,
                                      int *err)
{
    struct session *s = session_alloc(view, protocol_version, client_caps, 1);
    if (s == NULL) {
        *err = ERR_NOMEM;
        return NULL;
    }
    s->transient = true;
    s->log_level = -1;
    return s;
}

bool session_transient(const struct session *s)
{
    return s->transient;
}

void session_set_log_level(struct session *s, int rank)
{
    s->log_level = rank;
}

int session_log_level(const struct session *s)
{
    return s->log_level;
}

int session_listen(struct session *s, unsigned mask, json_t *sub_id)
{
    if (!s->transient || s->listen_id != NULL)
        return ERR_INVAL;
    s->listen_mask = mask;
    s->listen_id = json_deep_copy(sub_id);
    if (s->listen_id == NULL)
        return ERR_NOMEM;
    pthread_mutex_lock(&table.lock);
    if (session_closed(s)) {
        pthread_mutex_unlock(&table.lock);
        return ERR_CLOSED;
    }
    s->listening = true;
    s->next_listener = table.listeners;
    table.listeners = s;
    pthread_mutex_unlock(&table.lock);
    return 0;
}

unsigned session_listen_mask(const struct session *s)
{
    return s->listen_mask;
}

json_t *session_listen_id(const struct session *s)
{
    return s->listen_id;
}

struct session *session_new(int view, const char *protocol_version, json_t *client_caps, int *err)
{
    struct session *s =
        session_alloc(view, protocol_version, client_caps, 2); /* the table's and the caller's */
    if (s == NULL) {
        *err = ERR_NOMEM;
        return NULL;
    }

    pthread_mutex_lock(&table.lock);
    if (table.count >= table.max) {
        pthread_mutex_unlock(&table.lock);
        *err = ERR_LIMIT;
        goto fail;
    }
    for (;;) {
        rand_token(s->id, sizeof(s->id), SESSION_ID_BYTES);
        s->key = id_key(s->id, strlen(s->id));
        int r = idmap_put(&table.map, s->key, s);
        if (r == 0)
            break;
        if (r != ERR_EXISTS) { /* ERR_EXISTS: a 64-bit hash collision; draw again */
            pthread_mutex_unlock(&table.lock);
            *err = r;
            goto fail;
        }
    }
    table.count++;
    pthread_mutex_unlock(&table.lock);
    return s;
fail:
    json_decref(s->caps);
    json_decref(s->subs);
    json_decref(s->calls);
    pthread_mutex_destroy(&s->lock);
    free(s);
    return NULL;
}

static struct session *session_resume(const char *id, size_t len);

struct session *session_find(const char *id, size_t len)
{
    if (len == 0 || len > SESSION_ID_MAX)
        return NULL;
    uint64_t key = id_key(id, len);
    pthread_mutex_lock(&table.lock);
    struct session *s = idmap_get(&table.map, key);
    if (s != NULL && s->id[len] == '\0' && sodium_memcmp(s->id, id, len) == 0)
        session_ref(s);
    else
        s = NULL;
    pthread_mutex_unlock(&table.lock);
    if (s == NULL)
        s = session_resume(id, len); /* initialised by another replica, or before a restart */
    if (s != NULL)
        atomic_store(&s->last_used, now_ms());
    return s;
}

/* A sealed id this replica neither holds nor knows to be ended: its hash goes in `hash` for a
   check elsewhere (Redis, the store). */
static bool unknown_sealed_id(const char *id, size_t len, char hash[65])
{
    if (len == 0 || len > SESSION_ID_MAX || len <= strlen(SESSION_SEALED_PREFIX) ||
        memcmp(id, SESSION_SEALED_PREFIX, strlen(SESSION_SEALED_PREFIX)) != 0)
        return false;
    uint64_t key = id_key(id, len);
    pthread_mutex_lock(&table.lock);
    struct session *s = idmap_get(&table.map, key);
    bool known = (s != NULL && s->id[len] == '\0' && sodium_memcmp(s->id, id, len) == 0) ||
                 idmap_get(&table.ended, key) != NULL;
    pthread_mutex_unlock(&table.lock);
    if (!known)
        ended_hash(id, len, hash);
    return !known;
}

bool session_needs_check(const char *id, size_t len, char hash[65])
{
    return shared_enabled() && unknown_sealed_id(id, len, hash);
}

bool session_needs_store_check(const char *id, size_t len, char hash[65])
{
    pthread_mutex_lock(&ended_store.lock);
    bool kept = ended_store.path != NULL && mcp_seal_shared();
    pthread_mutex_unlock(&ended_store.lock);
    return kept && unknown_sealed_id(id, len, hash);
}

bool session_id_hash(const struct session *s, char hash[65])
{
    if (s->sealed_until == 0)
        return false;
    sodium_bin2hex(hash, 65, s->id_hash, sizeof(s->id_hash));
    return true;
}

struct find_hash {
    unsigned char h[32];
    struct session *found;
};

static void find_hash_cb(uint64_t key, void *val, void *arg)
{
    struct find_hash *f = arg;
    struct session *s = val;
    if (f->found == NULL && s->sealed_until != 0 && sodium_memcmp(s->id_hash, f->h, 32) == 0)
        f->found = session_ref(s);
}

/* The key of a sealed id's hash in table.watched: 63 bits of it, never 0 (idmap reserves 0 and
   its tombstone, all ones). */
static uint64_t watched_key(const unsigned char h[32])
{
    uint64_t k;
    memcpy(&k, h, sizeof(k));
    k >>= 1;
    return k ? k : 1;
}

struct session *session_find_by_hash(const char *hash)
{
    struct find_hash f = {.found = NULL};
    size_t n;
    if (hash == NULL || sodium_hex2bin(f.h, sizeof(f.h), hash, strlen(hash), NULL, &n, NULL) != 0 ||
        n != 32)
        return NULL;
    pthread_mutex_lock(&table.lock);
    struct session *w = idmap_get(&table.watched, watched_key(f.h));
    if (w != NULL && memcmp(w->id_hash, f.h, 32) == 0) /* a hash, no secret */
        f.found = session_ref(w); /* a session whose GET stream is held here: no pass */
    else
        idmap_foreach(&table.map, find_hash_cb, &f);
    pthread_mutex_unlock(&table.lock);
    return f.found;
}

/* Redis: another replica ended the session whose id hashes to `hash`. Any thread. */
static void ended_elsewhere_cb(const char *hash)
{
    struct find_hash f = {.found = NULL};
    size_t n;
    if (sodium_hex2bin(f.h, sizeof(f.h), hash, strlen(hash), NULL, &n, NULL) != 0 || n != 32)
        return;
    pthread_mutex_lock(&table.lock);
    idmap_foreach(&table.map, find_hash_cb, &f);
    pthread_mutex_unlock(&table.lock);
    if (f.found == NULL)
        return;
    log_info("session", "a session this replica held was ended by another replica");
    close_session_as(f.found, CLOSE_ELSEWHERE);
    session_unref(f.found);
}

void session_note_ended(const char *id, size_t len)
{
    if (len == 0 || len > SESSION_ID_MAX)
        return;
    uint64_t key = id_key(id, len);
    pthread_mutex_lock(&table.lock);
    if (table.nended < SESSION_ENDED_MAX && idmap_get(&table.ended, key) == NULL &&
        idmap_put(&table.ended, key, (void *)(uintptr_t)(wall_s() + SESSION_SEALED_TTL_S)) == 0)
        table.nended++;
    pthread_mutex_unlock(&table.lock);
}

struct session *session_ref(struct session *s)
{
    atomic_fetch_add(&s->refcnt, 1);
    return s;
}

static void free_tracked(uint64_t key, void *val, void *arg)
{
    struct tracked_request *t = val;
    json_decref(t->up_id);
    free(t);
}

void session_unref(struct session *s)
{
    if (s == NULL || atomic_fetch_sub(&s->refcnt, 1) != 1)
        return;
    GH_ASSERT(s->streams == NULL && s->standalone == NULL);
    idmap_foreach(&s->reqs, free_tracked, NULL);
    idmap_release(&s->reqs);
    json_decref(s->caps);
    json_decref(s->client_info);
    json_decref(s->subs);
    json_decref(s->calls);
    json_decref(s->listen_id);
    pthread_mutex_destroy(&s->lock);
    sodium_memzero(s->id, sizeof(s->id));
    free(s);
}

static void wake_writer(struct stream *st); /* below */

void session_close(struct session *s)
{
    close_session_as(s, CLOSE_DELETE);
}

/* What the session table asks of the engine (session_table_set_engine); NULL before. */
static const struct session_engine *_Atomic engine;

void session_table_set_engine(const struct session_engine *e)
{
    engine = e;
}

static const char *server_name(int view)
{
    const struct session_engine *e = engine;
    return e != NULL ? e->server_name(view) : NULL;
}

static int find_server(const char *name)
{
    const struct session_engine *e = engine;
    return e != NULL ? e->find_server(name) : -1;
}

/* A session that ended has nobody to answer: its calls in flight are cancelled upstream and
   its waiting ones never sent. (A 2026-07-28 request's are cancelled by its writer.) */
static void cancel_calls(struct session *s)
{
    const char *key;
    json_t *v;
    size_t n = 0;
    pthread_mutex_lock(&s->lock);
    void **cookies = malloc((json_object_size(s->calls) + 1) * sizeof(*cookies));
    json_object_foreach(s->calls, key, v)
    {
        (void)key;
        if (cookies != NULL)
            cookies[n++] = (void *)(intptr_t)json_integer_value(v);
    }
    pthread_mutex_unlock(&s->lock);
    for (size_t i = 0; i < n; i++)
        if (engine != NULL)
            engine->cancel_call(cookies[i], "the client ended its session");
    free(cookies);
}

/* Ended (all but CLOSE_SHUTDOWN): remembered, never resumed, its calls cancelled. */
static void close_session_as(struct session *s, enum close_why why)
{
    bool ended = why != CLOSE_SHUTDOWN;
    bool record = why == CLOSE_IDLE || why == CLOSE_DELETE; /* ELSEWHERE: that replica did */
    bool cancel = false;
    if (s->transient) {
        pthread_mutex_lock(&table.lock);
        if (s->listening) {
            struct session **pp = &table.listeners;
            while (*pp != s)
                pp = &(*pp)->next_listener;
            *pp = s->next_listener;
            s->listening = false;
        }
        pthread_mutex_unlock(&table.lock);
        goto streams;
    }
    pthread_mutex_lock(&table.lock);
    if (idmap_get(&table.map, s->key) == s) {
        idmap_del(&table.map, s->key);
        table.count--;
        if (s->sealed_until != 0 && table.nended < SESSION_ENDED_MAX &&
            idmap_put(&table.ended, s->key, (void *)(uintptr_t)s->sealed_until) == 0)
            table.nended++;
        pthread_mutex_unlock(&table.lock);
        if (record && s->sealed_until != 0)
            ended_store_put(s->id, s->sealed_until, why == CLOSE_DELETE);
        cancel = ended;
        session_unref(s); /* the table's reference */
    } else {
        pthread_mutex_unlock(&table.lock);
    }

streams:
    /* End every stream: writers are woken and find them finished. */
    pthread_mutex_lock(&s->lock);
    if (s->closed) {
        pthread_mutex_unlock(&s->lock);
        return;
    }
    s->closed = true;
    struct stream *list = s->streams, *standalone = s->standalone;
    s->streams = NULL;
    s->standalone = NULL;
    s->nstreams = 0;
    for (struct stream *st = list; st; st = st->next) {
        st->listed = false;
        st->finished = true;
    }
    if (standalone)
        standalone->finished = true;
    pthread_mutex_unlock(&s->lock);
    if (cancel) /* after its streams have ended: a waiting call sees its client gone */
        cancel_calls(s);

    while (list) {
        struct stream *next = list->next;
        wake_writer(list);
        stream_unref(list);
        list = next;
    }
    if (standalone) {
        wake_writer(standalone);
        stream_unref(standalone);
    }
}

bool session_closed(struct session *s)
{
    pthread_mutex_lock(&s->lock);
    bool c = s->closed;
    pthread_mutex_unlock(&s->lock);
    return c;
}

const char *session_id(const struct session *s)
{
    return s->id;
}

int session_view(const struct session *s)
{
    return s->view;
}

void session_set_client_info(struct session *s, json_t *client_info)
{
    const char *name = json_string_value(json_object_get(client_info, "name"));
    const char *version = json_string_value(json_object_get(client_info, "version"));
    json_decref(s->client_info);
    s->client_info =
        json_pack("{s:s%, s:s%}", "name", name ? name : "", name ? strnlen(name, 64) : 0, "version",
                  version ? version : "", version ? strnlen(version, 32) : 0);
}

const char *session_owner(const struct session *s)
{
    return s->owner;
}

/* The capabilities a sealed id keeps: those the gateway acts on (it relays or bridges them). */
static json_t *sealed_caps(json_t *caps)
{
    static const char *const kept[] = {"sampling", "elicitation", "roots"};
    json_t *out = json_object();
    for (size_t i = 0; i < sizeof(kept) / sizeof(kept[0]); i++) {
        json_t *c = json_object_get(caps, kept[i]);
        if (json_is_object(c))
            json_object_set_new(out, kept[i], json_deep_copy(c));
    }
    return out;
}

/* Give s an id that carries, sealed, what a replica that never saw it needs to serve it. The
   table's entry is moved to the new id (under table.lock). Keeps the random id when the sealed
   one would be too long (the session then lives on this replica only). */
static void seal_id(struct session *s)
{
    const char *view = s->view >= 0 ? server_name(s->view) : "";
    uint64_t now = wall_s();
    json_t *doc = json_pack("{s:s, s:s, s:o, s:O?, s:s, s:I, s:I}", "v", view ? view : "", "p",
                            s->proto, "c", sealed_caps(s->caps), "i", s->client_info, "o", s->owner,
                            "t", (json_int_t)now, "x", (json_int_t)(now + SESSION_SEALED_TTL_S));
    char *id = doc ? mcp_seal(MCP_SEAL_SESSION, SESSION_SEALED_PREFIX, doc) : NULL;
    json_decref(doc);
    if (id == NULL || strlen(id) > SESSION_ID_MAX) {
        log_warn("session",
                 "session state too large to seal into its id (%zu bytes); it can be "
                 "resumed by this replica only",
                 id ? strlen(id) : 0);
        free(id);
        return;
    }
    uint64_t key = id_key(id, strlen(id));
    pthread_mutex_lock(&table.lock);
    if (idmap_get(&table.map, s->key) == s && idmap_put(&table.map, key, s) == 0) {
        idmap_del(&table.map, s->key);
        s->key = key;
        s->sealed_until = now + SESSION_SEALED_TTL_S;
        snprintf(s->id, sizeof(s->id), "%s", id);
        crypto_generichash(s->id_hash, sizeof(s->id_hash), (const unsigned char *)s->id,
                           strlen(s->id), NULL, 0);
    }
    pthread_mutex_unlock(&table.lock);
    free(id);
}

void session_set_owner(struct session *s, const char *owner)
{
    snprintf(s->owner, sizeof(s->owner), "%s", owner ? owner : "");
    if (!s->transient)
        seal_id(s);
}

/* A sealed id this replica does not know: rebuild its session from what the id carries. */
static struct session *session_resume(const char *id, size_t len)
{
    json_t *doc = mcp_unseal(MCP_SEAL_SESSION, SESSION_SEALED_PREFIX, id, len);
    if (doc == NULL)
        return NULL;
    struct session *s = NULL;
    const char *view = json_string_value(json_object_get(doc, "v"));
    const char *proto = json_string_value(json_object_get(doc, "p"));
    const char *owner = json_string_value(json_object_get(doc, "o"));
    json_t *x = json_object_get(doc, "x");
    int v = view && *view ? find_server(view) : -1;
    if (view == NULL || proto == NULL || owner == NULL || strlen(owner) > SESSION_OWNER_MAX ||
        !json_is_integer(x) || (uint64_t)json_integer_value(x) < wall_s() || (*view && v < 0) ||
        !mcp_version_supported(proto))
        goto out;
    /* ended before a restart, or by a replica on this store (asked by the request's store job
       when the caller checks: then session_note_ended told the table) */
    if (!ended_store.caller_checks && ended_store_has(id, len))
        goto out;
    if ((s = session_alloc(v, proto, json_object_get(doc, "c"), 2)) == NULL)
        goto out;
    memcpy(s->id, id, len);
    s->id[len] = '\0';
    s->key = id_key(s->id, len);
    s->sealed_until = (uint64_t)json_integer_value(x);
    crypto_generichash(s->id_hash, sizeof(s->id_hash), (const unsigned char *)s->id, len, NULL, 0);
    snprintf(s->owner, sizeof(s->owner), "%s", owner);
    if (json_is_object(json_object_get(doc, "i")))
        s->client_info = json_incref(json_object_get(doc, "i"));
    pthread_mutex_lock(&table.lock);
    struct session *other = idmap_get(&table.map, s->key);
    if (other != NULL && sodium_memcmp(other->id, s->id, len) == 0 && strlen(other->id) == len) {
        session_ref(other); /* resumed meanwhile by another worker */
        pthread_mutex_unlock(&table.lock);
        atomic_store(&s->refcnt, 1);
        session_unref(s);
        s = other;
        goto out;
    }
    /* Ended here (DELETE, idle expiry), or too many ended to remember: not resumed. */
    bool ended = idmap_get(&table.ended, s->key) != NULL || table.nended >= SESSION_ENDED_MAX;
    if (other != NULL || ended || table.count >= table.max ||
        idmap_put(&table.map, s->key, s) != 0) {
        pthread_mutex_unlock(&table.lock);
        atomic_store(&s->refcnt, 1);
        session_unref(s);
        s = NULL;
        goto out;
    }
    table.count++;
    pthread_mutex_unlock(&table.lock);
    log_info("session", "resumed a session sealed by a replica (server view \"%s\")",
             *view ? view : "/mcp");
out:
    json_decref(doc);
    return s;
}

bool session_owned_by(const struct session *s, const char *owner)
{
    return strcmp(s->owner, owner ? owner : "") == 0;
}

const char *session_protocol_version(const struct session *s)
{
    return s->proto;
}

json_t *session_client_capabilities(const struct session *s)
{
    return s->caps; /* immutable after creation */
}

bool session_has_capability(struct session *s, const char *name)
{
    /* caps is immutable after creation: no lock needed. */
    return json_object_get(s->caps, name) != NULL;
}

uint64_t session_next_request_id(struct session *s)
{
    pthread_mutex_lock(&s->lock);
    uint64_t id = s->next_req_id++;
    pthread_mutex_unlock(&s->lock);
    return id;
}

int session_track_request(struct session *s, uint64_t down_id, void *upstream, json_t *up_id)
{
    struct tracked_request *t = malloc(sizeof(*t));
    if (t == NULL)
        return ERR_NOMEM;
    t->upstream = upstream;
    t->up_id = json_incref(up_id);
    pthread_mutex_lock(&s->lock);
    int err = s->closed ? ERR_CLOSED : idmap_put(&s->reqs, down_id, t);
    pthread_mutex_unlock(&s->lock);
    if (err) {
        json_decref(t->up_id);
        free(t);
    }
    return err;
}

int session_take_request(struct session *s, uint64_t down_id, void **upstream, json_t **up_id)
{
    pthread_mutex_lock(&s->lock);
    struct tracked_request *t = down_id ? idmap_del(&s->reqs, down_id) : NULL;
    pthread_mutex_unlock(&s->lock);
    if (t == NULL)
        return ERR_NOTFOUND;
    *upstream = t->upstream;
    *up_id = t->up_id;
    free(t);
    return 0;
}

int session_subscribe(struct session *s, const char *uri, int server, bool on)
{
    pthread_mutex_lock(&s->lock);
    int err = on ? json_object_set_new(s->subs, uri, json_integer(server))
                 : json_object_del(s->subs, uri);
    pthread_mutex_unlock(&s->lock);
    return err && on ? ERR_NOMEM : 0;
}

bool session_subscribed(struct session *s, const char *uri)
{
    pthread_mutex_lock(&s->lock);
    bool on = json_object_get(s->subs, uri) != NULL;
    pthread_mutex_unlock(&s->lock);
    return on;
}

void session_collect_subscriptions(struct session *s, int server, json_t *set)
{
    const char *uri;
    json_t *v;
    pthread_mutex_lock(&s->lock);
    json_object_foreach(s->subs, uri, v)
    {
        if (json_integer_value(v) == server)
            json_object_set_new(set, uri, json_true());
    }
    pthread_mutex_unlock(&s->lock);
}

/* A client id as a map key: its compact JSON text, which keeps 1 and "1" apart and escapes
   NUL. Returns a malloc'd string or NULL. */
static char *call_key(json_t *id)
{
    if (!json_is_integer(id) && !json_is_string(id))
        return NULL;
    return json_dumps(id, JSON_ENCODE_ANY | JSON_COMPACT);
}

int session_track_call(struct session *s, json_t *client_id, void *call)
{
    char *key = call_key(client_id);
    if (key == NULL)
        return ERR_INVAL;
    pthread_mutex_lock(&s->lock);
    /* The cookie is kept as an integer: the map is jansson's hash table, used as one. */
    int err = json_object_set_new(s->calls, key, json_integer((json_int_t)(intptr_t)call));
    pthread_mutex_unlock(&s->lock);
    free(key);
    return err ? ERR_NOMEM : 0;
}

void *session_find_call(struct session *s, json_t *client_id)
{
    char *key = call_key(client_id);
    if (key == NULL)
        return NULL;
    pthread_mutex_lock(&s->lock);
    json_t *v = json_object_get(s->calls, key);
    void *call = v ? (void *)(intptr_t)json_integer_value(v) : NULL;
    pthread_mutex_unlock(&s->lock);
    free(key);
    return call;
}

void session_untrack_call(struct session *s, json_t *client_id, void *call)
{
    char *key = call_key(client_id);
    if (key == NULL)
        return;
    pthread_mutex_lock(&s->lock);
    json_t *v = json_object_get(s->calls, key);
    if (v && (void *)(intptr_t)json_integer_value(v) == call)
        json_object_del(s->calls, key);
    pthread_mutex_unlock(&s->lock);
    free(key);
}

/* --- streams --- */

static struct stream *stream_alloc(struct session *s, bool standalone)
{
    struct stream *st = calloc(1, sizeof(*st));
    if (st == NULL)
        return NULL;
    /* Most answer streams carry one event: start small, grow up to the replay bound. */
    st->ring_max = table.replay;
    st->ring_cap = st->ring_max < 4 ? st->ring_max : 4;
    st->ring = calloc(st->ring_cap, sizeof(*st->ring));
    if (st->ring == NULL) {
        free(st);
        return NULL;
    }
    atomic_init(&st->refcnt, 1);
    st->s = session_ref(s);
    st->standalone = standalone;
    st->next_seq = 1;
    return st;
}

/* Called with s->lock held: beyond the per-session bound, forget the oldest finished stream
   (it can no longer be resumed). Streams still running are kept whatever their number, so
   that closing the session reaches them; they are bounded by the requests in flight. */
static struct stream *trim_streams(struct session *s)
{
    if (s->nstreams <= MAX_STREAMS_PER_SESSION)
        return NULL;
    struct stream **victim_pp = NULL;
    for (struct stream **pp = &s->streams; *pp; pp = &(*pp)->next)
        if ((*pp)->finished)
            victim_pp = pp; /* the list is newest first: the last finished one is the oldest */
    if (victim_pp == NULL)
        return NULL;
    struct stream *victim = *victim_pp;
    *victim_pp = victim->next;
    victim->listed = false;
    s->nstreams--;
    return victim;
}

struct stream *stream_new(struct session *s)
{
    struct stream *st = stream_alloc(s, false), *dropped = NULL;
    if (st == NULL)
        return NULL;
    pthread_mutex_lock(&s->lock);
    if (s->closed) {
        st->finished = true;
    } else {
        st->number = ++s->next_stream;
        st->listed = true;
        atomic_fetch_add(&st->refcnt, 1); /* the session's list */
        st->next = s->streams;
        s->streams = st;
        s->nstreams++;
        dropped = trim_streams(s);
    }
    pthread_mutex_unlock(&s->lock);
    if (dropped)
        stream_unref(dropped);
    return st;
}

struct stream *session_standalone_stream(struct session *s)
{
    pthread_mutex_lock(&s->lock);
    struct stream *st = s->standalone;
    if (st == NULL && !s->closed) {
        pthread_mutex_unlock(&s->lock);
        struct stream *fresh = stream_alloc(s, true);
        if (fresh == NULL)
            return NULL;
        pthread_mutex_lock(&s->lock);
        if (s->standalone == NULL && !s->closed) {
            fresh->number = ++s->next_stream;
            s->standalone = fresh; /* the session's reference */
            fresh = NULL;
        }
        st = s->standalone;
        if (fresh) { /* lost a race, or closed meanwhile */
            pthread_mutex_unlock(&s->lock);
            stream_unref(fresh);
            pthread_mutex_lock(&s->lock);
            st = s->standalone;
        }
    }
    if (st)
        atomic_fetch_add(&st->refcnt, 1);
    pthread_mutex_unlock(&s->lock);
    return st;
}

/* Digits only, no sign or space, no overflow. Returns the end, or NULL. */
static const char *parse_u64(const char *p, uint64_t *out)
{
    uint64_t v = 0;
    const char *start = p;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
            return NULL;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    if (p == start || p - start > 20)
        return NULL;
    *out = v;
    return p;
}

struct stream *session_find_stream(struct session *s, const char *last_event_id,
                                   uint64_t *after_seq)
{
    uint64_t number, seq;
    const char *p = parse_u64(last_event_id, &number);
    if (p == NULL || *p != '-')
        return NULL;
    p = parse_u64(p + 1, &seq);
    if (p == NULL || *p != '\0')
        return NULL;
    pthread_mutex_lock(&s->lock);
    struct stream *found = NULL;
    if (s->standalone && s->standalone->number == number)
        found = s->standalone;
    for (struct stream *st = s->streams; st && !found; st = st->next)
        if (st->number == number)
            found = st;
    /* Only an id that was issued: a sequence beyond the last one would skip events to come. */
    if (found && seq >= found->next_seq)
        found = NULL;
    if (found)
        atomic_fetch_add(&found->refcnt, 1);
    pthread_mutex_unlock(&s->lock);
    if (found)
        *after_seq = seq;
    return found;
}

struct stream *stream_ref(struct stream *st)
{
    atomic_fetch_add(&st->refcnt, 1);
    return st;
}

void stream_unref(struct stream *st)
{
    if (st == NULL || atomic_fetch_sub(&st->refcnt, 1) != 1)
        return;
    for (size_t i = 0; i < st->ring_len; i++)
        json_decref(st->ring[(st->ring_head + i) % st->ring_cap].msg);
    free(st->ring);
    json_decref(st->held_progress);
    free(st->drain_arg); /* a drain never posted */
    session_unref(st->s);
    free(st);
}

struct session *stream_session(struct stream *st)
{
    return st->s;
}

uint64_t stream_number(const struct stream *st)
{
    return st->number;
}

struct wake {
    struct stream *st;
    struct mailbox *mb;
};

static void wake_cb(void *arg)
{
    struct wake *wk = arg;
    struct stream *st = wk->st;
    pthread_mutex_lock(&st->s->lock);
    struct stream_writer *w = st->writer;
    st->wake_pending = false;
    if (w != NULL && w->mb != wk->mb)
        w = NULL; /* the writer moved to another worker meanwhile; it was woken there */
    pthread_mutex_unlock(&st->s->lock);
    if (w != NULL)
        w->wake_cb(w);
    stream_unref(st);
    free(wk);
}

/* Post a wake to the attached writer, if any and none is pending. Takes s->lock itself. */
static void wake_writer(struct stream *st)
{
    pthread_mutex_lock(&st->s->lock);
    struct mailbox *mb = NULL;
    if (st->writer && !st->wake_pending) {
        st->wake_pending = true;
        mb = st->writer->mb;
    }
    pthread_mutex_unlock(&st->s->lock);
    if (mb == NULL)
        return;
    struct wake *wk = malloc(sizeof(*wk));
    if (wk == NULL)
        return;
    wk->st = stream_ref(st);
    wk->mb = mb;
    if (mailbox_post(mb, wake_cb, wk) != 0) {
        stream_unref(st);
        free(wk);
    }
}

/* With s->lock held: make room for `cap` events, laying them out from index 0, oldest first.
   Returns false when memory is short (the ring is unchanged). */
static bool ring_resize(struct stream *st, size_t cap)
{
    struct event *ring = malloc(cap * sizeof(*ring));
    if (ring == NULL)
        return false;
    for (size_t i = 0; i < st->ring_len; i++)
        ring[i] = st->ring[(st->ring_head + i) % st->ring_cap];
    free(st->ring);
    st->ring = ring;
    st->ring_cap = cap;
    st->ring_head = 0;
    return true;
}

/* With s->lock held: append an event. Evicts the oldest event when it was delivered already
   (only replay loses it); when the ring is full of undelivered events it grows past ring_max
   (the callers bound how often: responses, requests and the held-back summary only). */
static int ring_put(struct stream *st, json_t *msg, bool final)
{
    if (st->ring_len == st->ring_cap && st->ring_cap < st->ring_max) {
        size_t cap = st->ring_cap * 2 < st->ring_max ? st->ring_cap * 2 : st->ring_max;
        (void)ring_resize(st, cap); /* on failure: keep the smaller ring */
    }
    if (st->ring_len == st->ring_cap) {
        struct event *old = &st->ring[st->ring_head];
        if (old->seq <= st->pulled) { /* delivered: it can no longer be replayed, that is all */
            if (json_object_get(old->msg, "id") != NULL)
                st->evicted_message = old->seq; /* a resumption from before it lost a message */
            json_decref(old->msg);
            st->ring_head = (st->ring_head + 1) % st->ring_cap;
            st->ring_len--;
        } else if (!ring_resize(st, st->ring_cap * 2)) {
            return ERR_NOMEM;
        }
    }
    struct event *e = &st->ring[(st->ring_head + st->ring_len) % st->ring_cap];
    e->seq = st->next_seq++;
    e->msg = json_incref(msg);
    e->final = final;
    st->ring_len++;
    return 0;
}

/* With s->lock held: is every slot of a full ring an event no writer has taken yet? */
static bool ring_congested(const struct stream *st)
{
    if (st->ring_len < st->ring_max)
        return false;
    return st->ring_len > 0 && st->ring[st->ring_head].seq > st->pulled;
}

/* With s->lock held: put what was held back into the ring: a summary of what was dropped (a
   notifications/message from the logger "gatehouse" with the counts so far), then the latest
   progress of each token. Bounded: one summary and STREAM_HELD_PROGRESS_MAX progress events. */
static void flush_held(struct stream *st)
{
    if (st->summary_due) {
        char text[400];
        snprintf(text, sizeof(text),
                 "the gateway dropped %" PRIu64 " log messages, %" PRIu64
                 " progress notifications and %" PRIu64
                 " other notifications of this stream so far: the client read more slowly than "
                 "the server wrote, and at most %zu undelivered events are held per stream "
                 "(limits.replay_events); progress keeps the latest of each token, responses "
                 "and requests are never dropped",
                 st->dropped_log, st->dropped_progress, st->dropped_other, st->ring_max);
        json_t *note = json_pack(
            "{s:s, s:s, s:{s:s, s:s, s:s, s:{s:I, s:I, s:I}}}", "jsonrpc", "2.0", "method",
            "notifications/message", "params", "level", "warning", "logger", "gatehouse", "data",
            text, "_meta", "dropped", (json_int_t)st->dropped_log, "droppedProgress",
            (json_int_t)st->dropped_progress, "droppedOther", (json_int_t)st->dropped_other);
        if (note != NULL && ring_put(st, note, false) == 0)
            st->summary_due = false;
        json_decref(note);
    }
    if (st->held_progress != NULL) {
        const char *key;
        json_t *msg;
        json_object_foreach(st->held_progress, key, msg)(void) ring_put(st, msg, false);
        json_decref(st->held_progress);
        st->held_progress = NULL;
    }
}

/* With s->lock held: the ring is full of undelivered events and msg is a notification. Progress
   keeps the latest per token; a notification equal to one still waiting is redundant; anything
   else is dropped and counted. */
static void hold_back(struct stream *st, json_t *msg, const char *method)
{
    if (strcmp(method, "notifications/progress") == 0) {
        json_t *token = json_object_get(json_object_get(msg, "params"), "progressToken");
        char *key = token ? json_dumps(token, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
        if (st->held_progress == NULL)
            st->held_progress = json_object();
        if (key != NULL && st->held_progress != NULL &&
            (json_object_get(st->held_progress, key) != NULL ||
             json_object_size(st->held_progress) < STREAM_HELD_PROGRESS_MAX)) {
            if (json_object_get(st->held_progress, key) != NULL)
                st->dropped_progress++; /* superseded by this one */
            json_object_set(st->held_progress, key, msg);
        } else {
            st->dropped_progress++;
            st->summary_due = true;
        }
        free(key);
        return;
    }
    if (strcmp(method, "notifications/message") == 0) {
        st->dropped_log++;
        st->summary_due = true;
        return;
    }
    for (size_t i = 0; i < st->ring_len; i++) {
        struct event *e = &st->ring[(st->ring_head + i) % st->ring_cap];
        if (e->seq > st->pulled && json_equal(e->msg, msg))
            return; /* the same notification is still on its way */
    }
    st->dropped_other++;
    st->summary_due = true;
}

/* With s->lock held: events no writer has taken yet. */
static size_t undelivered(const struct stream *st)
{
    return st->next_seq - 1 > st->pulled ? (size_t)(st->next_seq - 1 - st->pulled) : 0;
}

bool stream_backlogged(struct stream *st)
{
    if (st == NULL)
        return false;
    pthread_mutex_lock(&st->s->lock);
    bool yes = st->writer != NULL && !st->finished && undelivered(st) * 2 >= st->ring_max;
    pthread_mutex_unlock(&st->s->lock);
    return yes;
}

/* With s->lock held: if a drain is registered and due, take it for posting after unlock. */
static bool take_drain(struct stream *st, struct mailbox **mb, void (**fn)(void *), void **arg)
{
    if (st->drain_fn == NULL)
        return false;
    bool due =
        st->writer == NULL || st->finished || st->s->closed || undelivered(st) * 4 <= st->ring_max;
    if (!due)
        return false;
    *mb = st->drain_mb;
    *fn = st->drain_fn;
    *arg = st->drain_arg;
    st->drain_mb = NULL;
    st->drain_fn = NULL;
    st->drain_arg = NULL;
    return true;
}

static void post_drain(struct mailbox *mb, void (*fn)(void *), void *arg)
{
    if (mailbox_post(mb, fn, arg) != 0)
        free(arg); /* the loop is gone: so is whatever was paused */
}

int stream_on_drain(struct stream *st, struct mailbox *mb, void (*fn)(void *arg), void *arg)
{
    pthread_mutex_lock(&st->s->lock);
    if (st->drain_fn != NULL) {
        pthread_mutex_unlock(&st->s->lock);
        return ERR_LIMIT;
    }
    st->drain_mb = mb;
    st->drain_fn = fn;
    st->drain_arg = arg;
    struct mailbox *pmb;
    void (*pfn)(void *);
    void *parg;
    bool post = take_drain(st, &pmb, &pfn, &parg);
    pthread_mutex_unlock(&st->s->lock);
    if (post)
        post_drain(pmb, pfn, parg);
    return 0;
}

/* The hex hash of st's session when st is the standalone stream of a sealed session that no
   writer here holds, and a remote hook may take what is pushed to it: else false. */
static bool remote_candidate(struct stream *st, const struct session_remote *r, char hash[65])
{
    bool yes = false;
    if (r == NULL || !st->standalone || st->s->transient || st->s->sealed_until == 0)
        return false;
    pthread_mutex_lock(&st->s->lock);
    yes = st->writer == NULL && !st->finished && !st->s->closed;
    pthread_mutex_unlock(&st->s->lock);
    if (yes)
        sodium_bin2hex(hash, 65, st->s->id_hash, sizeof(st->s->id_hash));
    return yes;
}

int stream_push(struct stream *st, json_t *msg, bool final)
{
    char hash[65];
    const struct session_remote *r = atomic_load(&remote);
    if (st != NULL && !final && remote_candidate(st, r, hash) && r->forward(st, hash, msg))
        return 0;
    return stream_push_here(st, msg, final);
}

int stream_push_here(struct stream *st, json_t *msg, bool final)
{
    if (st == NULL)
        return ERR_CLOSED;
    atomic_store(&st->s->last_used, now_ms());
    pthread_mutex_lock(&st->s->lock);
    if (st->finished || st->s->closed) {
        pthread_mutex_unlock(&st->s->lock);
        return ERR_CLOSED;
    }
    int err = 0;
    const char *method = json_string_value(json_object_get(msg, "method"));
    bool notification = !final && method != NULL && json_object_get(msg, "id") == NULL;
    if (notification && ring_congested(st)) {
        /* The client has not taken what is waiting: never evict an undelivered event (that
           would cost the client events, and the response after them its place in the order),
           hold this one back instead. The writer wakes anyway: it is already behind. */
        hold_back(st, msg, method);
        pthread_mutex_unlock(&st->s->lock);
        return 0;
    }
    if (final || !ring_congested(st))
        flush_held(st); /* there is room again, or this is the last chance */
    err = ring_put(st, msg, final);
    if (err == 0 && final)
        st->finished = true;
    pthread_mutex_unlock(&st->s->lock);
    wake_writer(st);
    return err;
}

void stream_end(struct stream *st)
{
    if (st == NULL)
        return;
    struct mailbox *mb;
    void (*fn)(void *);
    void *arg;
    pthread_mutex_lock(&st->s->lock);
    st->finished = true;
    bool post = take_drain(st, &mb, &fn, &arg);
    pthread_mutex_unlock(&st->s->lock);
    if (post)
        post_drain(mb, fn, arg);
    wake_writer(st);
}

/* Tell the remote hook that this replica now holds (or no longer holds) a writer of st, when st
   is the standalone stream of a sealed session. */
static void remote_watch(struct stream *st, bool on)
{
    const struct session_remote *r = atomic_load(&remote);
    if ((on && r == NULL) || !st->standalone || st->s->transient || st->s->sealed_until == 0)
        return;
    /* The stream holds its session: it is in the map only while a writer holds the stream
       (taken out even once the hook is gone, so that the map never outlives a session). */
    uint64_t k = watched_key(st->s->id_hash);
    pthread_mutex_lock(&table.lock);
    if (on && idmap_get(&table.watched, k) == NULL) {
        idmap_put(&table.watched, k, st->s); /* ERR_NOMEM: found by a pass instead */
    } else if (!on && idmap_get(&table.watched, k) == st->s) {
        idmap_del(&table.watched, k);
    }
    pthread_mutex_unlock(&table.lock);
    if (r == NULL)
        return;
    char hash[65];
    sodium_bin2hex(hash, sizeof(hash), st->s->id_hash, sizeof(st->s->id_hash));
    r->watch(hash, on);
}

int stream_attach(struct stream *st, struct stream_writer *w)
{
    /* The newest writer wins: a client that reconnects (Last-Event-ID, or a new GET) is more
       likely alive than the connection it replaces, which HTTP cannot tell is dead until a
       write fails. The replaced writer notices through stream_has_writer and ends itself. */
    pthread_mutex_lock(&st->s->lock);
    bool first = st->writer == NULL;
    if (first)
        atomic_fetch_add(&st->s->writers, 1);
    st->writer = w;
    st->left = false;
    st->wake_pending = false;
    pthread_mutex_unlock(&st->s->lock);
    if (first)
        remote_watch(st, true);
    wake_writer(st); /* deliver what is already buffered */
    return 0;
}

bool stream_has_writer(struct stream *st, struct stream_writer *w)
{
    pthread_mutex_lock(&st->s->lock);
    bool yes = st->writer == w;
    pthread_mutex_unlock(&st->s->lock);
    return yes;
}

void stream_detach(struct stream *st, struct stream_writer *w)
{
    struct mailbox *mb;
    void (*fn)(void *);
    void *arg;
    bool post = false, left = false;
    pthread_mutex_lock(&st->s->lock);
    if (st->writer == w) {
        left = true;
        st->writer = NULL;
        st->left = true;
        atomic_fetch_sub(&st->s->writers, 1);
        /* What the writer took may not have reached the client: keep what the ring still
           holds for a resumption (only notifications are held back from now on). */
        if (st->ring_len > 0 && st->pulled >= st->ring[st->ring_head].seq)
            st->pulled = st->ring[st->ring_head].seq - 1;
        atomic_store(&st->s->last_used, now_ms());
        /* Nobody reads now: holding the server back would only make the answer wait for a
           resumption that may never come; the held-back rule bounds the buffer instead. */
        post = take_drain(st, &mb, &fn, &arg);
    }
    pthread_mutex_unlock(&st->s->lock);
    if (left)
        remote_watch(st, false);
    if (post)
        post_drain(mb, fn, arg);
}

bool stream_abandoned(struct stream *st)
{
    if (st == NULL)
        return false;
    pthread_mutex_lock(&st->s->lock);
    bool gone = (st->left && st->writer == NULL) || st->finished;
    pthread_mutex_unlock(&st->s->lock);
    return gone;
}

/* With s->lock held: unlist a delivered answer stream. Returns it if the list's ref must go. */
static struct stream *unlist(struct stream *st)
{
    if (!st->listed)
        return NULL;
    for (struct stream **pp = &st->s->streams; *pp; pp = &(*pp)->next)
        if (*pp == st) {
            *pp = st->next;
            st->listed = false;
            st->s->nstreams--;
            return st;
        }
    return NULL;
}

int stream_pull(struct stream *st, uint64_t *cursor, struct buf *out, bool *finished,
                bool json_if_single, json_t **single)
{
    int err = 0;
    struct stream *drop = NULL;
    *finished = false;
    if (single)
        *single = NULL;
    pthread_mutex_lock(&st->s->lock);
    uint64_t oldest = st->ring_len ? st->ring[st->ring_head].seq : st->next_seq;
    if (*cursor + 1 < oldest && *cursor < st->evicted_message) {
        err = ERR_LIMIT; /* a request or response it never saw is gone: a real loss */
        goto out;
    }
    if (*cursor + 1 < oldest) {
        /* Only notifications are gone (the client read more slowly than the server wrote, then
           resumed): say how many, without an event id, and go on from the oldest kept. */
        json_t *note = json_pack(
            "{s:s, s:s, s:{s:s, s:s, s:s, s:{s:I}}}", "jsonrpc", "2.0", "method",
            "notifications/message", "params", "level", "warning", "logger", "gatehouse", "data",
            "notifications of this stream after Last-Event-ID are no longer buffered "
            "(limits.replay_events); the events that follow are the oldest kept, and no request "
            "or response was lost",
            "_meta", "missed", (json_int_t)(oldest - 1 - *cursor));
        char *text = note ? json_dumps(note, JSON_COMPACT) : NULL;
        json_decref(note);
        err = text ? buf_printf(out, "data: %s\n\n", text) : ERR_NOMEM;
        free(text);
        if (err)
            goto out;
        *cursor = oldest - 1;
        json_if_single = false;
    }
    if (json_if_single && *cursor == 0 && st->ring_len > 0 && st->ring[st->ring_head].final &&
        st->ring[st->ring_head].seq == 1) {
        *single = json_incref(st->ring[st->ring_head].msg);
        *cursor = 1;
        st->pulled = 1;
        *finished = true;
        st->delivered = true;
        drop = unlist(st);
        goto out;
    }
    bool flushed = false;
again:
    for (size_t i = 0; i < st->ring_len; i++) {
        struct event *e = &st->ring[(st->ring_head + i) % st->ring_cap];
        if (e->seq <= *cursor)
            continue;
        char *text = json_dumps(e->msg, JSON_COMPACT);
        if (text == NULL) {
            err = ERR_NOMEM;
            goto out;
        }
        err =
            buf_printf(out, "id: %" PRIu64 "-%" PRIu64 "\ndata: %s\n\n", st->number, e->seq, text);
        free(text);
        if (err == ERR_LIMIT && out->len > 0) {
            err = 0; /* the buffer is full: the cursor says where to go on next time */
            goto out;
        }
        if (err == ERR_LIMIT)
            err = ERR_PROTOCOL; /* one event larger than the whole buffer */
        if (err)
            goto out;
        *cursor = e->seq;
        if (e->seq > st->pulled)
            st->pulled = e->seq;
        if (e->final) {
            *finished = true;
            st->delivered = true;
            drop = unlist(st);
        }
    }
    /* The writer caught up: what was held back while it was behind goes out now. */
    if (!flushed && !st->finished && (st->summary_due || st->held_progress != NULL)) {
        flushed = true;
        flush_held(st);
        goto again;
    }
    /* Ended without a final event (cancelled, or the session closed) and fully pulled. */
    if ((st->finished || st->s->closed) && *cursor + 1 >= st->next_seq)
        *finished = true;
out:;
    struct mailbox *mb;
    void (*fn)(void *);
    void *arg;
    bool post = take_drain(st, &mb, &fn, &arg);
    pthread_mutex_unlock(&st->s->lock);
    if (post)
        post_drain(mb, fn, arg);
    if (drop)
        stream_unref(drop);
    return err;
}
