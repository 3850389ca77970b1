/*
 * The SQLite backend of the store (the default: embedded, nothing to set up): opening (file
 * created 0600, WAL, synchronous=NORMAL, foreign keys, busy timeout), the schema and its forward
 * migrations, statements, transactions (BEGIN IMMEDIATE: one writer at a time, across threads
 * and processes) and the revocation counter read cheaply through PRAGMA data_version. The data
 * model itself lives in identity.c and oauth.c, behind the backend table (store-int.h).
 *
 * The schema is a list of migrations applied in order; `schema_version` records how many ran.
 * Never edit a released migration: append a new one.
 */
#include "store/store-int.h"
#include "core/log.h"

#include <sqlite3.h>

#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SEQ_BUMP "UPDATE revocation SET seq = seq + 1 WHERE id = 1; END;"

static const char *const migrations[] = {
    /* 1: the identity store, OAuth state, revocation, signing keys, ephemeral state */
    "CREATE TABLE revocation (id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL);"
    "INSERT INTO revocation (id, seq) VALUES (1, 1);"
    "CREATE TABLE users ("
    "  id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, email TEXT NOT NULL DEFAULT '',"
    "  password_hash TEXT, admin INTEGER NOT NULL DEFAULT 0, disabled INTEGER NOT NULL DEFAULT 0,"
    "  created_at INTEGER NOT NULL, tokens_valid_after INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE identities ("
    "  provider TEXT NOT NULL, subject TEXT NOT NULL,"
    "  user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,"
    "  PRIMARY KEY (provider, subject));"
    "CREATE TABLE teams ("
    "  id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, synced INTEGER NOT NULL DEFAULT 0,"
    "  created_at INTEGER NOT NULL);"
    "CREATE TABLE team_members ("
    "  team_id INTEGER NOT NULL REFERENCES teams (id) ON DELETE CASCADE,"
    "  user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,"
    "  role INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (team_id, user_id));"
    "CREATE INDEX team_members_user ON team_members (user_id);"
    "CREATE TABLE accounts ("
    "  id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, disabled INTEGER NOT NULL DEFAULT 0,"
    "  created_at INTEGER NOT NULL);"
    "CREATE TABLE apikeys ("
    "  id TEXT PRIMARY KEY, account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,"
    "  label TEXT NOT NULL DEFAULT '', secret_hash TEXT NOT NULL, created_at INTEGER NOT NULL,"
    "  revoked_at INTEGER);"
    "CREATE TABLE clients ("
    "  client_id TEXT PRIMARY KEY, kind INTEGER NOT NULL,"
    "  user_id INTEGER REFERENCES users (id) ON DELETE CASCADE, secret_hash TEXT,"
    "  revoked INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL,"
    "  expires_at INTEGER NOT NULL DEFAULT 0, metadata TEXT NOT NULL DEFAULT '{}');"
    "CREATE INDEX clients_user ON clients (user_id);"
    "CREATE TABLE codes ("
    "  hash TEXT PRIMARY KEY, client_id TEXT NOT NULL, user_id INTEGER NOT NULL,"
    "  redirect_uri TEXT NOT NULL, code_challenge TEXT NOT NULL, resource TEXT NOT NULL,"
    "  scope TEXT NOT NULL, expires_at INTEGER NOT NULL, used INTEGER NOT NULL DEFAULT 0,"
    "  family_id TEXT);"
    "CREATE INDEX codes_user ON codes (user_id);"
    "CREATE TABLE families ("
    "  id TEXT PRIMARY KEY, client_id TEXT NOT NULL, user_id INTEGER NOT NULL,"
    "  resource TEXT NOT NULL, scope TEXT NOT NULL, created_at INTEGER NOT NULL,"
    "  expires_at INTEGER NOT NULL, revoked INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX families_user ON families (user_id);"
    "CREATE INDEX families_client ON families (client_id);"
    "CREATE TABLE refresh_tokens ("
    "  hash TEXT PRIMARY KEY,"
    "  family_id TEXT NOT NULL REFERENCES families (id) ON DELETE CASCADE,"
    "  expires_at INTEGER NOT NULL, used INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);"
    "CREATE TABLE revoked_jtis (jti TEXT PRIMARY KEY, expires_at INTEGER NOT NULL);"
    "CREATE TABLE signing_keys ("
    "  kid TEXT PRIMARY KEY, alg TEXT NOT NULL, sealed BLOB NOT NULL, public_jwk TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL, retired_at INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE ephemeral ("
    "  kind TEXT NOT NULL, key_hash TEXT NOT NULL, value TEXT NOT NULL,"
    "  expires_at INTEGER NOT NULL, user_id INTEGER, PRIMARY KEY (kind, key_hash));"
    "CREATE INDEX ephemeral_user ON ephemeral (user_id) WHERE user_id IS NOT NULL;"
    /* The revocation counter moves in the transaction of every change that can invalidate a
       cached token verdict, whichever code path (or process) makes it. */
    "CREATE TRIGGER users_seq AFTER UPDATE OF disabled, tokens_valid_after ON users BEGIN " SEQ_BUMP
    "CREATE TRIGGER accounts_seq AFTER UPDATE OF disabled ON accounts BEGIN " SEQ_BUMP
    "CREATE TRIGGER apikeys_seq AFTER UPDATE OF revoked_at ON apikeys BEGIN " SEQ_BUMP
    "CREATE TRIGGER apikeys_del_seq AFTER DELETE ON apikeys BEGIN " SEQ_BUMP
    "CREATE TRIGGER clients_seq AFTER UPDATE OF revoked ON clients BEGIN " SEQ_BUMP
    "CREATE TRIGGER clients_del_seq AFTER DELETE ON clients BEGIN " SEQ_BUMP
    "CREATE TRIGGER jtis_seq AFTER INSERT ON revoked_jtis BEGIN " SEQ_BUMP
    "CREATE TRIGGER keys_ins_seq AFTER INSERT ON signing_keys BEGIN " SEQ_BUMP
    "CREATE TRIGGER keys_upd_seq AFTER UPDATE OF retired_at ON signing_keys BEGIN " SEQ_BUMP
    "CREATE TRIGGER keys_del_seq AFTER DELETE ON signing_keys BEGIN " SEQ_BUMP
    /* a revoked client's grants die with it */
    "CREATE TRIGGER clients_revoke AFTER UPDATE OF revoked ON clients WHEN new.revoked = 1 BEGIN "
    "  UPDATE families SET revoked = 1 WHERE client_id = new.client_id; "
    "  DELETE FROM codes WHERE client_id = new.client_id AND used = 0; END;",
    /* 2: per-user settings of one server: discovery mode and tool selection (issue 5) */
    "CREATE TABLE user_settings ("
    "  user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,"
    "  server TEXT NOT NULL, discovery TEXT NOT NULL DEFAULT '', tools TEXT,"
    "  updated_at INTEGER NOT NULL, PRIMARY KEY (user_id, server));",
    /* 3: a change of a user's settings moves the revocation counter too, so that the workers'
       caches of settings (src/mcp/settings.c) see it on their next call, like a revocation.
       INSERT OR REPLACE fires the insert trigger (its delete half fires none). */
    "CREATE TRIGGER settings_ins_seq AFTER INSERT ON user_settings BEGIN " SEQ_BUMP
    "CREATE TRIGGER settings_upd_seq AFTER UPDATE ON user_settings BEGIN " SEQ_BUMP
    "CREATE TRIGGER settings_del_seq AFTER DELETE ON user_settings BEGIN " SEQ_BUMP,
    /* 4: the key check value of the master key the store was first used with (a MAC of a fixed
       label under that key, never the key), so that a replica started with another key file
       is refused instead of sealing what the others cannot open */
    ("CREATE TABLE key_check (id INTEGER PRIMARY KEY CHECK (id = 1), value TEXT NOT NULL,"
     "  created_at INTEGER NOT NULL);"),
    /* 5: each user's tokens at an upstream server (auth.oauth of an http server), sealed by the
       vault (src/vault) under a key derived from the master key; expiry and scope in clear for
       listing, never a token */
    ("CREATE TABLE upstream_tokens ("
     "  user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,"
     "  server TEXT NOT NULL, sealed BLOB NOT NULL, expires_at INTEGER NOT NULL,"
     "  scope TEXT NOT NULL, updated_at INTEGER NOT NULL, PRIMARY KEY (user_id, server));"),
};
#define NMIGRATIONS (sizeof(migrations) / sizeof(migrations[0]))

struct sqlite_conn {
    sqlite3 *db;
    uint64_t seq;         /* the revocation counter as last read */
    int64_t data_version; /* PRAGMA data_version when seq was read */
    int64_t own_changes; /* sqlite3_total_changes64 then: our own commits don't move data_version */
    bool seq_known;      /* seq, data_version and own_changes hold a reading */
};

struct sqlite_stmt {
    struct store_stmt base;
    sqlite3_stmt *s;
};

#define CONN(st) ((struct sqlite_conn *)(st)->conn)
#define STMT(x) (((struct sqlite_stmt *)(x))->s)

/* Map an SQLite result code to 0 or ERR_* (see store_step). */
static int sqlite_err(struct store *st, int rc, const char *what)
{
    switch (rc) {
    case SQLITE_OK:
    case SQLITE_DONE:
    case SQLITE_ROW:
        return 0;
    case SQLITE_CONSTRAINT_UNIQUE:
    case SQLITE_CONSTRAINT_PRIMARYKEY:
        return ERR_EXISTS;
    case SQLITE_CONSTRAINT_FOREIGNKEY:
        return ERR_NOTFOUND;
    case SQLITE_NOMEM:
        return ERR_NOMEM;
    default:
        break;
    }
    int primary = rc & 0xff;
    log_error("store", "sqlite: %.60s: %s (%s)", what, sqlite3_errmsg(CONN(st)->db),
              sqlite3_errstr(rc));
    if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED)
        return ERR_TIMEOUT;
    return ERR_IO;
}

static struct store_stmt *sq_prepare(struct store *st, const char *sql)
{
    struct sqlite_stmt *x = calloc(1, sizeof(*x));
    if (x == NULL)
        return NULL;
    x->base.be = &store_sqlite_backend;
    int rc = sqlite3_prepare_v3(CONN(st)->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &x->s, NULL);
    if (rc != SQLITE_OK) {
        log_error("store", "sqlite: cannot prepare \"%.60s\": %s", sql,
                  sqlite3_errmsg(CONN(st)->db));
        sqlite3_finalize(x->s);
        free(x);
        return NULL;
    }
    return &x->base;
}

static void sq_finalize(struct store_stmt *s)
{
    sqlite3_finalize(STMT(s));
    free(s);
}

static void sq_bind_int64(struct store_stmt *s, int i, int64_t v)
{
    sqlite3_bind_int64(STMT(s), i, v);
}

static void sq_bind_text(struct store_stmt *s, int i, const char *v)
{
    if (v)
        sqlite3_bind_text(STMT(s), i, v, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(STMT(s), i);
}

static void sq_bind_blob(struct store_stmt *s, int i, const void *v, size_t n)
{
    sqlite3_bind_blob64(STMT(s), i, v, n, SQLITE_STATIC);
}

static int sq_param_count(struct store_stmt *s)
{
    return sqlite3_bind_parameter_count(STMT(s));
}

static int sq_step(struct store *st, struct store_stmt *s)
{
    int rc = sqlite3_step(STMT(s));
    if (rc == SQLITE_ROW)
        return STORE_ROW;
    if (rc == SQLITE_DONE)
        return STORE_DONE;
    int err = sqlite_err(st, sqlite3_extended_errcode(CONN(st)->db), sqlite3_sql(STMT(s)));
    return err ? err : ERR_IO;
}

static int64_t sq_col_int64(struct store_stmt *s, int col)
{
    return sqlite3_column_int64(STMT(s), col);
}

static const char *sq_col_text(struct store_stmt *s, int col)
{
    return (const char *)sqlite3_column_text(STMT(s), col);
}

static const void *sq_col_blob(struct store_stmt *s, int col, size_t *len)
{
    const void *b = sqlite3_column_blob(STMT(s), col);
    *len = (size_t)sqlite3_column_bytes(STMT(s), col);
    return b;
}

static void sq_reset(struct store_stmt *s)
{
    sqlite3_reset(STMT(s));
    sqlite3_clear_bindings(STMT(s));
}

static int64_t sq_changes(struct store *st)
{
    return sqlite3_changes64(CONN(st)->db);
}

static int exec(struct store *st, const char *sql)
{
    struct store_stmt *s = store_stmt(st, sql);
    return s ? store_exec_step(st, s, sql) : ERR_IO;
}

static int sq_begin(struct store *st)
{
    return exec(st, "BEGIN IMMEDIATE");
}

static int sq_commit(struct store *st)
{
    return exec(st, "COMMIT");
}

static void sq_rollback(struct store *st)
{
    if (!sqlite3_get_autocommit(CONN(st)->db))
        (void)exec(st, "ROLLBACK");
}

static int sq_exec(struct store *st, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(CONN(st)->db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK)
        log_error("store", "sqlite: %.60s: %s", sql, msg ? msg : "failed");
    sqlite3_free(msg);
    int err = rc == SQLITE_OK ? 0 : sqlite_err(st, sqlite3_extended_errcode(CONN(st)->db), sql);
    return rc == SQLITE_OK ? 0 : (err ? err : ERR_IO);
}

static int sq_revocation_seq(struct store *st, uint64_t *seq)
{
    struct sqlite_conn *c = CONN(st);
    /* data_version moves when another connection (thread or process) committed; our own
       commits do not move it, hence total_changes. Reading it costs a WAL-index check, no I/O. */
    struct store_stmt *s = store_stmt(st, "PRAGMA data_version");
    if (s == NULL)
        return ERR_IO;
    int rc = store_step(st, s);
    int64_t dv = rc == STORE_ROW ? store_col_int64(s, 0) : -1;
    store_done(s);
    if (rc != STORE_ROW)
        return rc < 0 ? rc : ERR_INTERNAL;
    int64_t changes = sqlite3_total_changes64(c->db);
    if (!c->seq_known || dv != c->data_version || changes != c->own_changes) {
        s = store_stmt(st, "SELECT seq FROM revocation WHERE id = 1");
        if (s == NULL)
            return ERR_IO;
        rc = store_step(st, s);
        uint64_t v = rc == STORE_ROW ? (uint64_t)store_col_int64(s, 0) : 0;
        store_done(s);
        if (rc != STORE_ROW)
            return rc == STORE_DONE ? ERR_INTERNAL : rc;
        c->seq = v;
        c->data_version = dv;
        c->own_changes = changes;
        c->seq_known = true;
    }
    *seq = c->seq;
    return 0;
}

static int pragma(struct store *st, const char *sql, struct err_info *ei)
{
    char *msg = NULL;
    if (sqlite3_exec(CONN(st)->db, sql, NULL, NULL, &msg) == SQLITE_OK)
        return 0;
    err_info_set(ei, ERR_IO, 0, 0, "sqlite store %s: %s: %s", st->where, sql, msg ? msg : "failed");
    sqlite3_free(msg);
    return ERR_IO;
}

/* PRAGMA journal_mode = WAL, retried while another connection holds the lock it needs. Switching
   a new file to WAL takes an exclusive lock, and SQLite does not call the busy handler where
   waiting could deadlock (a connection that holds a shared lock and wants more), so replicas or
   threads opening a new store together can get SQLITE_BUSY at once: wait for them here, for at
   most STORE_BUSY_TIMEOUT_MS. */
static int journal_wal(struct store *st, struct err_info *ei)
{
    for (int waited_ms = 0;; waited_ms += 5) {
        int rc = sqlite3_exec(CONN(st)->db, "PRAGMA journal_mode = WAL", NULL, NULL, NULL);
        if (rc == SQLITE_OK)
            return 0;
        if ((rc & 0xff) != SQLITE_BUSY || waited_ms >= STORE_BUSY_TIMEOUT_MS)
            return pragma(st, "PRAGMA journal_mode = WAL", ei); /* the error, with its message */
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

static int migrate(struct store *st, struct err_info *ei)
{
    int err = pragma(st,
                     "BEGIN IMMEDIATE;"
                     "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);"
                     "INSERT INTO schema_version SELECT 0 WHERE NOT EXISTS "
                     "(SELECT 1 FROM schema_version)",
                     ei);
    if (err)
        goto out;
    struct store_stmt *s = store_stmt(st, "SELECT version FROM schema_version");
    if (s == NULL || store_step(st, s) != STORE_ROW) {
        err = err_info_set(ei, ERR_IO, 0, 0, "sqlite store %s: cannot read the schema version: %s",
                           st->where, sqlite3_errmsg(CONN(st)->db));
        if (s)
            store_done(s);
        goto out;
    }
    int64_t version = store_col_int64(s, 0);
    store_done(s);
    if (version > (int64_t)NMIGRATIONS) {
        err = err_info_set(ei, ERR_PROTOCOL, 0, 0,
                           "%s: schema version %lld is newer than this gatehouse knows (%zu); "
                           "run a newer gatehouse",
                           st->where, (long long)version, NMIGRATIONS);
        goto out;
    }
    for (size_t v = (size_t)version; v < NMIGRATIONS; v++) {
        if ((err = pragma(st, migrations[v], ei)) != 0)
            goto out;
    }
    if (version < (int64_t)NMIGRATIONS) {
        s = store_stmt(st, "UPDATE schema_version SET version = ?");
        if (s == NULL) {
            err = ERR_IO;
            goto out;
        }
        store_bind_int64(s, 1, (int64_t)NMIGRATIONS);
        if ((err = store_exec_step(st, s, "schema version")) != 0)
            goto out;
        log_info("store", "%s: schema migrated from version %lld to %zu", st->where,
                 (long long)version, NMIGRATIONS);
    }
    err = pragma(st, "COMMIT", ei);
out:
    if (err)
        sq_rollback(st);
    return err;
}

static void sq_close(struct store *st)
{
    struct sqlite_conn *c = CONN(st);
    if (c == NULL)
        return;
    sqlite3_close(c->db);
    free(c);
    st->conn = NULL;
}

static int sq_open(struct store *st, const char *path, struct err_info *ei)
{
    int err = 0;
    struct sqlite_conn *c = calloc(1, sizeof(*c));
    if (c == NULL || (st->where = strdup(path)) == NULL) {
        free(c);
        return ERR_NOMEM;
    }
    st->conn = c;
    /* A new file is made 0600 before anything is written to it (SQLite gives the -wal and -shm
       files the database file's mode when it creates them). Never open() and close() the file
       ourselves: closing any descriptor of a file drops every POSIX lock this process holds on
       it, including those of the other connections' (other threads'), after which another
       process would think itself alone and delete the WAL under us. */
    struct stat sb;
    bool fresh = stat(path, &sb) != 0 && errno == ENOENT;
    int rc = sqlite3_open_v2(path, &c->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX |
                                 SQLITE_OPEN_EXRESCODE,
                             NULL);
    if (rc != SQLITE_OK) {
        err = err_info_set(ei, rc == SQLITE_NOMEM ? ERR_NOMEM : ERR_IO, 0, 0,
                           "cannot open the store %s: %s", path,
                           c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
        goto out;
    }
    if (fresh && chmod(path, 0600) != 0) {
        err = err_info_set(ei, ERR_IO, 0, 0, "cannot make the new store %s private: %s", path,
                           strerror(errno));
        goto out;
    }
    sqlite3_extended_result_codes(c->db, 1);
    sqlite3_busy_timeout(c->db, STORE_BUSY_TIMEOUT_MS);
    if ((err = journal_wal(st, ei)) != 0 ||
        (err = pragma(st, "PRAGMA synchronous = NORMAL", ei)) != 0 ||
        (err = pragma(st, "PRAGMA foreign_keys = ON", ei)) != 0 ||
        (err = pragma(st, "PRAGMA secure_delete = ON", ei)) != 0)
        goto out;
    err = migrate(st, ei);
out:
    return err; /* on failure store_open releases what was opened */
}

const struct store_backend store_sqlite_backend = {
    .name = "sqlite",
    .dialect = STORE_SQLITE,
    .open = sq_open,
    .close = sq_close,
    .prepare = sq_prepare,
    .finalize = sq_finalize,
    .bind_int64 = sq_bind_int64,
    .bind_text = sq_bind_text,
    .bind_blob = sq_bind_blob,
    .param_count = sq_param_count,
    .step = sq_step,
    .col_int64 = sq_col_int64,
    .col_text = sq_col_text,
    .col_blob = sq_col_blob,
    .reset = sq_reset,
    .changes = sq_changes,
    .begin = sq_begin,
    .commit = sq_commit,
    .rollback = sq_rollback,
    .revocation_seq = sq_revocation_seq,
    .exec = sq_exec,
};
