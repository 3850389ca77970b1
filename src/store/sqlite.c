/*
 * The SQLite connection behind struct store: opening (file created 0600, WAL, synchronous=NORMAL,
 * foreign keys, busy timeout), the schema and its forward migrations, the per-connection cache of
 * prepared statements, transactions, the revocation counter and the sweep of expired rows. The
 * functions of each part of the data model live in identity.c and oauth.c.
 *
 * The schema is a list of migrations applied in order; `schema_version` records how many ran.
 * Never edit a released migration: append a new one.
 */
#include "store/store-int.h"
#include "core/log.h"
#include "core/rand.h"

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
};
#define NMIGRATIONS (sizeof(migrations) / sizeof(migrations[0]))

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

int store_err(struct store *st, int rc, const char *what)
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
    log_error("store", "%s: %s (%s)", what, sqlite3_errmsg(st->db), sqlite3_errstr(rc));
    if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED)
        return ERR_TIMEOUT;
    return ERR_IO;
}

static uint32_t slot_of(const char *sql)
{
    uint64_t h = (uint64_t)(uintptr_t)sql * 0x9E3779B97F4A7C15ull;
    return (uint32_t)(h >> 40) & (STORE_STMT_SLOTS - 1);
}

sqlite3_stmt *store_stmt(struct store *st, const char *sql)
{
    uint32_t i = slot_of(sql);
    for (uint32_t n = 0; n < STORE_STMT_SLOTS; n++, i = (i + 1) & (STORE_STMT_SLOTS - 1)) {
        struct store_stmt_slot *s = &st->stmts[i];
        if (s->sql == sql)
            return s->stmt;
        if (s->sql != NULL)
            continue;
        int rc = sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s->stmt, NULL);
        if (rc != SQLITE_OK) {
            log_error("store", "cannot prepare \"%.60s\": %s", sql, sqlite3_errmsg(st->db));
            return NULL;
        }
        s->sql = sql;
        return s->stmt;
    }
    GH_UNREACHABLE(); /* STORE_STMT_SLOTS is smaller than the number of statements */
}

void store_done(sqlite3_stmt *s)
{
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
}

int store_exec_step(struct store *st, sqlite3_stmt *s, const char *what)
{
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        ;
    int err = rc == SQLITE_DONE ? 0 : store_err(st, sqlite3_extended_errcode(st->db), what);
    store_done(s);
    return err;
}

int store_bind_text(sqlite3_stmt *s, int i, const char *v)
{
    return v ? sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(s, i);
}

void store_col_text(sqlite3_stmt *s, int col, char *out, size_t size)
{
    const unsigned char *t = sqlite3_column_text(s, col);
    size_t n = t ? (size_t)sqlite3_column_bytes(s, col) : 0;
    if (n >= size)
        n = size - 1;
    if (n)
        memcpy(out, t, n);
    out[n] = '\0';
}

static int exec(struct store *st, const char *sql, const char *what)
{
    sqlite3_stmt *s = store_stmt(st, sql);
    return s ? store_exec_step(st, s, what) : ERR_IO;
}

int store_begin(struct store *st)
{
    return exec(st, "BEGIN IMMEDIATE", "begin");
}

int store_commit(struct store *st)
{
    int err = exec(st, "COMMIT", "commit");
    if (err)
        store_rollback(st);
    return err;
}

void store_rollback(struct store *st)
{
    if (!sqlite3_get_autocommit(st->db))
        (void)exec(st, "ROLLBACK", "rollback");
}

int store_exec_change(struct store *st, sqlite3_stmt *s, const char *what)
{
    int err = store_exec_step(st, s, what);
    if (err == 0 && sqlite3_changes(st->db) == 0)
        err = ERR_NOTFOUND;
    return err;
}

int store_revocation_seq(struct store *st, uint64_t *seq)
{

    /* data_version moves when another connection (thread or process) committed; our own
       commits do not move it, hence total_changes. Reading it costs a WAL-index check, no I/O. */
    sqlite3_stmt *s = store_stmt(st, "PRAGMA data_version");
    if (s == NULL)
        return ERR_IO;
    int rc = sqlite3_step(s);
    int64_t dv = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : -1;
    store_done(s);
    if (rc != SQLITE_ROW)
        return store_err(st, sqlite3_extended_errcode(st->db), "data_version");
    int64_t changes = sqlite3_total_changes64(st->db);
    if (!st->seq_known || dv != st->data_version || changes != st->own_changes) {
        s = store_stmt(st, "SELECT seq FROM revocation WHERE id = 1");
        if (s == NULL)
            return ERR_IO;
        rc = sqlite3_step(s);
        uint64_t v = rc == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(s, 0) : 0;
        store_done(s);
        if (rc != SQLITE_ROW)
            return rc == SQLITE_DONE ? ERR_INTERNAL
                                     : store_err(st, sqlite3_extended_errcode(st->db), "seq");
        st->seq = v;
        st->data_version = dv;
        st->own_changes = changes;
        st->seq_known = true;
    }
    /* a revocation held in memory (not written: the disk is full) moves it too */
    *seq = st->seq + (store_unsaved_generation() << 32);
    return 0;
}

static int pragma(struct store *st, const char *sql, struct err_info *ei)
{
    char *msg = NULL;
    if (sqlite3_exec(st->db, sql, NULL, NULL, &msg) == SQLITE_OK)
        return 0;
    err_info_set(ei, ERR_IO, 0, 0, "%s: %s: %s", st->path, sql, msg ? msg : "failed");
    sqlite3_free(msg);
    return ERR_IO;
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
    sqlite3_stmt *s = store_stmt(st, "SELECT version FROM schema_version");
    if (s == NULL || sqlite3_step(s) != SQLITE_ROW) {
        err = err_info_set(ei, ERR_IO, 0, 0, "%s: cannot read the schema version: %s", st->path,
                           sqlite3_errmsg(st->db));
        if (s)
            store_done(s);
        goto out;
    }
    int64_t version = sqlite3_column_int64(s, 0);
    store_done(s);
    if (version > (int64_t)NMIGRATIONS) {
        err = err_info_set(ei, ERR_PROTOCOL, 0, 0,
                           "%s: schema version %lld is newer than this gatehouse knows (%zu); "
                           "run a newer gatehouse",
                           st->path, (long long)version, NMIGRATIONS);
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
        sqlite3_bind_int64(s, 1, (int64_t)NMIGRATIONS);
        if ((err = store_exec_step(st, s, "schema version")) != 0)
            goto out;
        log_info("store", "%s: schema migrated from version %lld to %zu", st->path,
                 (long long)version, NMIGRATIONS);
    }
    err = pragma(st, "COMMIT", ei);
out:
    if (err)
        store_rollback(st);
    return err;
}

int store_open(const char *path, struct store **out, struct err_info *ei)
{
    int err = 0;
    struct store *st = calloc(1, sizeof(*st));
    if (st == NULL || (st->path = strdup(path)) == NULL) {
        err = ERR_NOMEM;
        goto out;
    }
    /* A new file is made 0600 before anything is written to it (SQLite gives the -wal and -shm
       files the database file's mode when it creates them). Never open() and close() the file
       ourselves: closing any descriptor of a file drops every POSIX lock this process holds on
       it, including those of the other connections' (other threads'), after which another
       process would think itself alone and delete the WAL under us. */
    struct stat sb;
    bool fresh = stat(path, &sb) != 0 && errno == ENOENT;
    int rc = sqlite3_open_v2(path, &st->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX |
                                 SQLITE_OPEN_EXRESCODE,
                             NULL);
    if (rc != SQLITE_OK) {
        err = err_info_set(ei, rc == SQLITE_NOMEM ? ERR_NOMEM : ERR_IO, 0, 0,
                           "cannot open the store %s: %s", path,
                           st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc));
        goto out;
    }
    if (fresh && chmod(path, 0600) != 0) {
        err = err_info_set(ei, ERR_IO, 0, 0, "cannot make the new store %s private: %s", path,
                           strerror(errno));
        goto out;
    }
    sqlite3_extended_result_codes(st->db, 1);
    sqlite3_busy_timeout(st->db, STORE_BUSY_TIMEOUT_MS);
    if ((err = pragma(st, "PRAGMA journal_mode = WAL", ei)) != 0 ||
        (err = pragma(st, "PRAGMA synchronous = NORMAL", ei)) != 0 ||
        (err = pragma(st, "PRAGMA foreign_keys = ON", ei)) != 0 ||
        (err = pragma(st, "PRAGMA secure_delete = ON", ei)) != 0)
        goto out;
    if ((err = migrate(st, ei)) != 0)
        goto out;
    *out = st;
    st = NULL;
out:
    store_close(st);
    return err;
}

void store_close(struct store *st)
{
    if (st == NULL)
        return;
    (void)store_unsaved_flush(st); /* a last chance for revocations not written yet */
    for (size_t i = 0; i < STORE_STMT_SLOTS; i++)
        sqlite3_finalize(st->stmts[i].stmt);
    sqlite3_close(st->db);
    free(st->path);
    free(st);
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
        sqlite3_stmt *s = store_stmt(st, sweeps[i]);
        if (s == NULL) {
            err = ERR_IO;
            break;
        }
        sqlite3_bind_int64(s, 1, now);
        if ((err = store_exec_step(st, s, "sweep")) != 0)
            break;
    }
    if (err) {
        store_rollback(st);
        return err;
    }
    return store_commit(st);
}
