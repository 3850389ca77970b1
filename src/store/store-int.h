/*
 * What the store's files share, private to src/store: the backend table that a database engine
 * implements (SQLite in sqlite.c, PostgreSQL in postgres.c), the connection with its cache of
 * prepared statements, transactions, and helpers common to the data model (identity.c,
 * oauth.c).
 *
 * The data model speaks one small statement interface — prepare, bind, step, read columns —
 * in the spirit of SQLite's VFS or nginx's modules: the model's SQL is written once in the
 * dialect both engines accept (positional "?" / "?N" parameters, ON CONFLICT with a target,
 * RETURNING, CAST(? AS BIGINT) where a parameter's type cannot be inferred); the few statements
 * the engines spell differently pick theirs with store_sql(). Each backend owns its schema
 * (a numbered list of migrations) and how the revocation counter is read cheaply.
 */
#ifndef GH_STORE_STORE_INT_H
#define GH_STORE_STORE_INT_H

#include "store/store.h"

#include <stdbool.h>

#define STORE_STMT_SLOTS 256 /* a power of two, more than the store has SQL statements */
#define STORE_BUSY_TIMEOUT_MS 5000

/* store_step results besides a negative ERR_* */
#define STORE_DONE 0
#define STORE_ROW 1

enum store_dialect { STORE_SQLITE, STORE_POSTGRES };

/* A backend's prepared statement starts with this header. */
struct store_stmt {
    const struct store_backend *be;
};

/* The functions a database engine provides. Parameters are numbered from 1, columns from 0.
   Bound text and blobs are kept by pointer until the statement is reset (the caller's buffers
   outlive the step); a parameter left unbound is NULL. step returns STORE_ROW, STORE_DONE or
   a negative ERR_* (logged with the backend's message, never a bound value). */
struct store_backend {
    const char *name; /* "sqlite", "postgres": named in every error */
    enum store_dialect dialect;
    /* Connect to `where` (a path, a connection string), create or migrate the schema; fill
       st->conn. ei names the backend and the cause, never a password. */
    int (*open)(struct store *st, const char *where, struct err_info *ei);
    void (*close)(struct store *st); /* statements are finalized before */
    struct store_stmt *(*prepare)(struct store *st, const char *sql);
    void (*finalize)(struct store_stmt *s);
    void (*bind_int64)(struct store_stmt *s, int i, int64_t v);
    void (*bind_text)(struct store_stmt *s, int i, const char *v); /* NULL binds NULL */
    void (*bind_blob)(struct store_stmt *s, int i, const void *v, size_t n);
    int (*param_count)(struct store_stmt *s);
    int (*step)(struct store *st, struct store_stmt *s);
    int64_t (*col_int64)(struct store_stmt *s, int col);    /* a boolean reads as 0 or 1 */
    const char *(*col_text)(struct store_stmt *s, int col); /* NULL for NULL */
    const void *(*col_blob)(struct store_stmt *s, int col, size_t *len);
    void (*reset)(struct store_stmt *s);  /* and clear the bindings */
    int64_t (*changes)(struct store *st); /* rows changed by the last INSERT/UPDATE/DELETE */
    int (*begin)(struct store *st);       /* a write transaction: see store_begin */
    int (*commit)(struct store *st);
    void (*rollback)(struct store *st); /* a no-op outside a transaction */
    int (*revocation_seq)(struct store *st, uint64_t *seq);
    /* Run SQL text with no parameters (tests, maintenance). */
    int (*exec)(struct store *st, const char *sql);
};

extern const struct store_backend store_sqlite_backend;
extern const struct store_backend store_postgres_backend;

struct store_stmt_slot {
    const char *sql; /* the literal at the call site: its address is the key */
    struct store_stmt *stmt;
};

struct store {
    const struct store_backend *be;
    void *conn;  /* the backend's connection */
    char *where; /* for messages: the path, or the connection string without its password */
    struct store_stmt_slot stmts[STORE_STMT_SLOTS];
    /* store_revocation_seq's last read of the counter, when events are followed */
    uint64_t seq_read, seq_epoch, seq_next_ms;
    bool seq_known;
    bool in_tx, tx_changed; /* inside store_begin; a change moved the counter (said at commit) */
};

/* After a change that moves the revocation counter (the schema's triggers): this process's
   connections read it again on their next call, and the hook (store_revocation_set_hook) tells
   the other replicas. Inside a transaction, at its COMMIT. */
void store_revocation_changed(struct store *st);
/* store_revocation_changed when err is 0; returns err. */
static inline int store_note_change(struct store *st, int err)
{
    if (err == 0)
        store_revocation_changed(st);
    return err;
}

/* The prepared statement for `sql` (a string literal), prepared on first use and kept for the
   connection's life. NULL on failure (logged). Statements are keyed by the literal's address,
   so a function's statement is never shared with another's; a list callback must not re-enter
   the function that called it. */
struct store_stmt *store_stmt(struct store *st, const char *sql);
/* Reset a statement after use (drops its read lock, frees its result). */
static inline void store_done(struct store_stmt *s)
{
    s->be->reset(s);
}

/* The statement of this connection's dialect. */
static inline const char *store_sql(const struct store *st, const char *sqlite, const char *pg)
{
    return st->be->dialect == STORE_POSTGRES ? pg : sqlite;
}

static inline void store_bind_int64(struct store_stmt *s, int i, int64_t v)
{
    s->be->bind_int64(s, i, v);
}
/* NULL text binds NULL. */
static inline void store_bind_text(struct store_stmt *s, int i, const char *v)
{
    s->be->bind_text(s, i, v);
}
static inline void store_bind_blob(struct store_stmt *s, int i, const void *v, size_t n)
{
    s->be->bind_blob(s, i, v, n);
}
static inline int store_param_count(struct store_stmt *s)
{
    return s->be->param_count(s);
}
/* STORE_ROW, STORE_DONE or a negative ERR_*: unique key violated → ERR_EXISTS, foreign key →
   ERR_NOTFOUND, busy/locked/serialization → ERR_TIMEOUT, the rest ERR_IO (logged). */
static inline int store_step(struct store *st, struct store_stmt *s)
{
    return s->be->step(st, s);
}
/* The error of a step result: 0 for STORE_ROW and STORE_DONE. */
static inline int store_rc_err(int rc)
{
    return rc < 0 ? rc : 0;
}
static inline int64_t store_col_int64(struct store_stmt *s, int col)
{
    return s->be->col_int64(s, col);
}
static inline const char *store_col_str(struct store_stmt *s, int col)
{
    return s->be->col_text(s, col);
}
static inline const void *store_col_blob(struct store_stmt *s, int col, size_t *len)
{
    return s->be->col_blob(s, col, len);
}
static inline int64_t store_changes(struct store *st)
{
    return st->be->changes(st);
}

/* One statement to completion: bind nothing more, step until DONE. Returns 0 or ERR_*. */
int store_exec_step(struct store *st, struct store_stmt *s, const char *what);

/* A write transaction, serialized with every other writer of the store (SQLite: BEGIN
   IMMEDIATE; PostgreSQL: a transaction-scoped advisory lock), so that read-modify-write
   sequences are race-free across threads, processes and replicas. COMMIT (rolled back when it
   fails), ROLLBACK. */
int store_begin(struct store *st);
int store_commit(struct store *st);
void store_rollback(struct store *st);

/* store_exec_step, and ERR_NOTFOUND when the statement changed no row. (The revocation counter
   is moved by triggers in the schema, in the same transaction as the change.) */
int store_exec_change(struct store *st, struct store_stmt *s, const char *what);

/* Run SQL text with no parameters: 0 or ERR_*. */
int store_exec_sql(struct store *st, const char *sql);

/* Copy a text column into a bounded buffer ("" for NULL), truncating never: longer values were
   refused on the way in. */
void store_col_text(struct store_stmt *s, int col, char *out, size_t size);

/* A random id of `nbytes` bytes in lower-case hex (out: 2*nbytes+1). */
void store_random_id(char *out, size_t nbytes);

/* The name syntax of users, teams, accounts: 1..STORE_NAME_MAX of [A-Za-z0-9._@+-]. */
bool store_name_valid(const char *name);

int64_t store_now(void);

/* The common end of every secret check: true when `found` and secret matches the argon2id string
   in hash; when nothing was found, the same time is spent on a dummy hash so that the answer
   is no oracle for which names exist. hash is wiped either way. */
bool store_secret_matches(bool found, char hash[SECRET_HASH_MAX], const char *secret, size_t len);

/* ---- revocations not written yet (unsaved.c) ---- */

/* How long a refresh family revoked in memory only is remembered at most (longer than any
   refresh_token_ttl: the entry goes as soon as it is written). */
#define UNSAVED_FAMILY_KEEP_S (400 * 86400)

/* Remember a revocation the database refused (family: a refresh family id, else a jti), in
   force for every connection of this process from now on. ERR_LIMIT when the list is full of
   live entries, ERR_INVAL for an id too long. Thread-safe. */
int store_unsaved_add(bool family, const char *id, int64_t expires_at);
/* Is this jti (or family) revoked in memory? Thread-safe; lock-free while the list is empty. */
bool store_unsaved_has(bool family, const char *id);
/* Moves with every store_unsaved_add, so that cached verdicts are flushed (it is part of
   store_revocation_seq). */
uint64_t store_unsaved_generation(void);
/* Write the remembered revocations through st; each one written leaves the list. Returns 0 or
   the error of the last one that still failed. */
int store_unsaved_flush(struct store *st);

#endif
