/*
 * The store's connection, whatever the engine: store_open picks the backend from the location
 * (a postgresql:// or postgres:// connection string is PostgreSQL, anything else a SQLite
 * path), keeps the per-connection cache of prepared statements, and provides the transaction and
 * statement helpers the data model (identity.c, oauth.c) is written with, the sweep of expired
 * rows and small helpers common to every part.
 */
#include "store/store-int.h"
#include "core/log.h"
#include "core/rand.h"

#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

bool store_secret_matches(bool found, char hash[SECRET_HASH_MAX], const char *secret, size_t len)
{
    if (!found) {
        secret_verify_dummy(secret, len);
        return false;
    }
    bool ok = secret_verify(hash, secret, len);
    sodium_memzero(hash, SECRET_HASH_MAX);
    return ok;
}

int64_t store_now(void)
{
    return (int64_t)time(NULL);
}

bool store_name_valid(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > STORE_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '@' || c == '+' || c == '-'))
            return false;
    }
    return true;
}

void store_random_id(char *out, size_t nbytes)
{
    unsigned char raw[32];
    GH_ASSERT(nbytes <= sizeof(raw));
    rand_bytes(raw, nbytes);
    sodium_bin2hex(out, 2 * nbytes + 1, raw, nbytes);
}

static uint32_t slot_of(const char *sql)
{
    uint64_t h = (uint64_t)(uintptr_t)sql * 0x9E3779B97F4A7C15ull;
    return (uint32_t)(h >> 40) & (STORE_STMT_SLOTS - 1);
}

struct store_stmt *store_stmt(struct store *st, const char *sql)
{
    uint32_t i = slot_of(sql);
    for (uint32_t n = 0; n < STORE_STMT_SLOTS; n++, i = (i + 1) & (STORE_STMT_SLOTS - 1)) {
        struct store_stmt_slot *s = &st->stmts[i];
        if (s->sql == sql)
            return s->stmt;
        if (s->sql != NULL)
            continue;
        if ((s->stmt = st->be->prepare(st, sql)) == NULL)
            return NULL; /* logged by the backend */
        s->sql = sql;
        return s->stmt;
    }
    GH_UNREACHABLE(); /* STORE_STMT_SLOTS is smaller than the number of statements */
}

int store_exec_step(struct store *st, struct store_stmt *s, const char *what)
{
    (void)what; /* the backend logs the statement that failed */
    int rc;
    while ((rc = store_step(st, s)) == STORE_ROW)
        ;
    store_done(s);
    return store_rc_err(rc);
}

void store_col_text(struct store_stmt *s, int col, char *out, size_t size)
{
    const char *t = store_col_str(s, col);
    size_t n = t ? strlen(t) : 0;
    if (n >= size)
        n = size - 1;
    if (n)
        memcpy(out, t, n);
    out[n] = '\0';
}

int store_begin(struct store *st)
{
    int err = st->be->begin(st);
    if (err == 0) {
        st->in_tx = true;
        st->tx_changed = false;
    }
    return err;
}

int store_commit(struct store *st)
{
    int err = st->be->commit(st);
    if (err) {
        store_rollback(st);
        return err;
    }
    bool changed = st->tx_changed;
    st->in_tx = st->tx_changed = false;
    if (changed)
        store_revocation_changed(st);
    return 0;
}

void store_rollback(struct store *st)
{
    st->be->rollback(st);
    st->in_tx = st->tx_changed = false;
}

int store_exec_change(struct store *st, struct store_stmt *s, const char *what)
{
    int err = store_exec_step(st, s, what);
    if (err == 0 && store_changes(st) == 0)
        err = ERR_NOTFOUND;
    return err;
}

int store_exec_sql(struct store *st, const char *sql)
{
    return st->be->exec(st, sql);
}

/*
 * Revocation events. Without them every call reads the counter from the database (on PostgreSQL
 * a round trip per request). With them (src/shared: Redis pub/sub) a connection reads it again
 * only when an event arrived since its last read (from this process or a peer), or when
 * poll_ms passed: the events make a change effective at once, the poll bounds what a lost event
 * or a change made without one (the CLI) can cost. `live` is true only while the events are
 * known to arrive (the subscription is up); otherwise every call reads, as without them.
 */
static struct {
    _Atomic uint64_t epoch; /* moves with every event */
    _Atomic uint32_t poll_ms;
    atomic_bool live;
    void (*_Atomic hook)(void);
} rev = {.poll_ms = 1000};

void store_revocation_set_hook(void (*fn)(void))
{
    atomic_store(&rev.hook, fn);
}

void store_revocation_follow(bool live, uint32_t poll_ms)
{
    atomic_store(&rev.poll_ms, poll_ms);
    /* going live: whatever happened while events were not arriving is read once more */
    atomic_fetch_add(&rev.epoch, 1);
    atomic_store(&rev.live, live);
}

void store_revocation_event(void)
{
    atomic_fetch_add(&rev.epoch, 1);
}

void store_revocation_changed(struct store *st)
{
    if (st->in_tx) { /* said at COMMIT: a peer reading earlier would see the old counter */
        st->tx_changed = true;
        return;
    }
    atomic_fetch_add(&rev.epoch, 1);
    void (*fn)(void) = atomic_load(&rev.hook);
    if (fn)
        fn();
}

void store_revocation_memo(const struct store *st, struct store_seq_memo *m)
{
    *m = (struct store_seq_memo){.read = st->seq_read,
                                 .epoch = st->seq_epoch,
                                 .until_ms = st->seq_next_ms,
                                 .known = st->seq_known};
}

bool store_revocation_memo_current(const struct store_seq_memo *m, uint64_t *seq)
{
    uint64_t now = clock_now_ns() / 1000000u;
    if (!atomic_load(&rev.live) || !m->known || m->epoch != atomic_load(&rev.epoch) ||
        now >= m->until_ms)
        return false;
    *seq = m->read + (store_unsaved_generation() << 32);
    return true;
}

int store_revocation_seq(struct store *st, uint64_t *seq)
{
    uint64_t v, epoch = atomic_load(&rev.epoch), now = clock_now_ns() / 1000000u;
    if (atomic_load(&rev.live) && st->seq_known && epoch == st->seq_epoch &&
        now < st->seq_next_ms) {
        v = st->seq_read;
    } else {
        /* the epoch is taken before the read: an event during it makes the next call read */
        int err = st->be->revocation_seq(st, &v);
        if (err)
            return err;
        st->seq_read = v;
        st->seq_epoch = epoch;
        st->seq_next_ms = now + atomic_load(&rev.poll_ms);
        st->seq_known = true;
    }
    /* a revocation held in memory (not written: the disk is full) moves it too */
    *seq = v + (store_unsaved_generation() << 32);
    return 0;
}

static bool is_postgres(const char *where)
{
    return strncmp(where, "postgresql://", 13) == 0 || strncmp(where, "postgres://", 11) == 0;
}

/* Finalize the prepared statements and close the backend's connection, whatever state a failed
   open left it in (the backends' close functions accept a connection never opened). */
static void release(struct store *st)
{
    for (size_t i = 0; i < STORE_STMT_SLOTS; i++)
        if (st->stmts[i].stmt) {
            st->be->finalize(st->stmts[i].stmt);
            st->stmts[i].stmt = NULL;
            st->stmts[i].sql = NULL;
        }
    st->be->close(st);
}

int store_open(const char *where, struct store **out, struct err_info *ei)
{
    int err = 0;
    struct store *st = calloc(1, sizeof(*st));
    if (st == NULL) {
        err = ERR_NOMEM;
        goto out;
    }
    st->be = is_postgres(where) ? &store_postgres_backend : &store_sqlite_backend;
    if ((err = st->be->open(st, where, ei)) != 0) {
        release(st);
        free(st->where);
        free(st);
        st = NULL;
        goto out;
    }
    *out = st;
    st = NULL;
out:
    return err;
}

void store_close(struct store *st)
{
    if (st == NULL)
        return;
    (void)store_unsaved_flush(st); /* a last chance for revocations not written yet */
    release(st);
    free(st->where);
    free(st);
}

const char *store_backend_name(const struct store *st)
{
    return st->be->name;
}

int store_sweep(struct store *st, int64_t now)
{
    static const char *const sweeps[] = {
        "DELETE FROM ephemeral WHERE expires_at <= ?1",
        "DELETE FROM revoked_jtis WHERE expires_at <= ?1",
        "DELETE FROM families WHERE expires_at <= ?1", /* their refresh tokens go with them */
        "DELETE FROM refresh_tokens WHERE expires_at <= ?1",
        /* a used code stays while its family lives, so that a replay still revokes it */
        ("DELETE FROM codes WHERE expires_at <= ?1 AND (family_id IS NULL OR family_id NOT IN "
         "(SELECT id FROM families))"),
    };
    (void)store_unsaved_flush(st); /* revocations that could not be written before */
    int err = store_begin(st);
    if (err)
        return err;
    for (size_t i = 0; i < sizeof(sweeps) / sizeof(sweeps[0]); i++) {
        struct store_stmt *s = store_stmt(st, sweeps[i]);
        if (s == NULL) {
            err = ERR_IO;
            break;
        }
        store_bind_int64(s, 1, now);
        if ((err = store_exec_step(st, s, "sweep")) != 0)
            break;
    }
    if (err) {
        store_rollback(st);
        return err;
    }
    return store_commit(st);
}

int store_key_check(struct store *st, const char *kcv, char found[STORE_KEY_CHECK_MAX])
{
    struct store_stmt *s = store_stmt(st, "INSERT INTO key_check (id, value, created_at) "
                                          "VALUES (1, ?1, ?2) ON CONFLICT (id) DO NOTHING");
    if (s == NULL)
        return ERR_IO;
    store_bind_text(s, 1, kcv);
    store_bind_int64(s, 2, store_now());
    int err = store_exec_step(st, s, "key check");
    if (err)
        return err;
    if ((s = store_stmt(st, "SELECT value FROM key_check WHERE id = 1")) == NULL)
        return ERR_IO;
    int rc = store_step(st, s);
    if (rc == STORE_ROW)
        store_col_text(s, 0, found, STORE_KEY_CHECK_MAX);
    store_done(s);
    return rc == STORE_ROW ? 0 : rc == STORE_DONE ? ERR_NOTFOUND : rc;
}
