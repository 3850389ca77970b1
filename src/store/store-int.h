/*
 * What the store's SQLite files share: the connection with its statement cache, transactions,
 * and the mapping of SQLite results to ERR_* codes. Private to src/store.
 */
#ifndef GH_STORE_STORE_INT_H
#define GH_STORE_STORE_INT_H

#include "store/store.h"

#include <sqlite3.h>
#include <stdbool.h>

#define STORE_STMT_SLOTS 256 /* a power of two, more than the store has SQL statements */
#define STORE_BUSY_TIMEOUT_MS 5000

struct store_stmt_slot {
    const char *sql; /* the literal at the call site: its address is the key */
    sqlite3_stmt *stmt;
};

struct store {
    sqlite3 *db;
    char *path;
    uint64_t seq;         /* the revocation counter as last read */
    int64_t data_version; /* PRAGMA data_version when seq was read */
    int64_t own_changes; /* sqlite3_total_changes64 then: our own commits don't move data_version */
    bool seq_known;      /* seq, data_version and own_changes hold a reading */
    struct store_stmt_slot stmts[STORE_STMT_SLOTS];
};

/* The prepared statement for `sql` (a string literal), prepared on first use and kept for the
   connection's life; reset with its bindings cleared. NULL on failure (logged). Statements are
   keyed by the literal's address, so a function's statement is never shared with another's;
   a list callback must not re-enter the function that called it. */
sqlite3_stmt *store_stmt(struct store *st, const char *sql);
/* Reset a statement after use (drops its read lock). */
void store_done(sqlite3_stmt *s);

/* Map an SQLite result code to ERR_*: constraint violations of a unique key are ERR_EXISTS, of a
   foreign key ERR_NOTFOUND, busy/locked ERR_TIMEOUT, the rest ERR_IO (logged with the message,
   which never holds a secret: values are always bound). */
int store_err(struct store *st, int rc, const char *what);

/* One statement to completion: bind nothing more, step until DONE. Returns 0 or ERR_*. */
int store_exec_step(struct store *st, sqlite3_stmt *s, const char *what);

/* BEGIN IMMEDIATE (the write lock first: read-modify-write sequences are race-free across
   threads and processes), COMMIT, ROLLBACK. */
int store_begin(struct store *st);
int store_commit(struct store *st);
void store_rollback(struct store *st);

/* store_exec_step, and ERR_NOTFOUND when the statement changed no row. (The revocation counter
   is moved by triggers in the schema, in the same transaction as the change.) */
int store_exec_change(struct store *st, sqlite3_stmt *s, const char *what);

/* Bind helpers: NULL text binds NULL. */
int store_bind_text(sqlite3_stmt *s, int i, const char *v);
/* Copy a text column into a bounded buffer ("" for NULL), truncating never: longer values were
   refused on the way in. */
void store_col_text(sqlite3_stmt *s, int col, char *out, size_t size);

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
