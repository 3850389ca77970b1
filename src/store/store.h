/*
 * The store: Gatehouse's durable state behind one interface. Identity (organisation, teams,
 * users, service accounts and their API keys), OAuth state (clients, authorization codes,
 * refresh-token families, revoked access tokens, signing keys) and short-lived browser state
 * (login sessions, pending authorizations) all live here.
 *
 The functions below are the whole contract; the database engine is a backend behind them
 * (store-int.h): SQLite (the default: WAL, synchronous=NORMAL, foreign keys on) or PostgreSQL
 * (libpq), chosen by the location given to store_open. A `struct store` is one connection: it
 * belongs to one thread at a time. Each worker thread opens its own; the CLI opens one too, and
 * changes it makes (a revocation, a disabled user, a new signing key) are seen by the running
 * daemon through store_revocation_seq() without any message passing.
 *
 * Every write is one transaction, durable across kill -9 (SQLite's WAL, PostgreSQL's). Secrets are
 never stored in
 * clear: argon2id for passwords, client secrets and API keys' secret part, SHA-256 for
 * high-entropy tokens (core/secret.h); signing keys are stored sealed (auth/auth.h).
 *
 * Times are Unix seconds. Functions return 0 or a negative ERR_* code (core/err.h); out-params
 * are written only on success. Names are bounded (STORE_NAME_MAX etc.); longer input is
 * ERR_INVAL with a message in ei.
 */
#ifndef GH_STORE_STORE_H
#define GH_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "core/err.h"
#include "core/secret.h"

#define STORE_NAME_MAX 128 /* user, team, account, provider names; [A-Za-z0-9._@+-] */
#define STORE_EMAIL_MAX 256
#define STORE_CLIENT_ID_MAX 512 /* a CIMD client_id is an https URL */
#define STORE_SCOPE_MAX 512
#define STORE_RESOURCE_MAX 512

struct store;

/* Open the store at `where`, creating the schema when missing and migrating an older one. A
   "postgresql://" or "postgres://" connection string (libpq's URI syntax) opens PostgreSQL;
   anything else is the path of a SQLite file, created 0600. Returns 0, ERR_IO (cannot connect,
   open or create; ei names the backend and says why, never with the password), ERR_PROTOCOL (a
   newer schema than this binary knows), ERR_NOMEM. */
int store_open(const char *where, struct store **out, struct err_info *ei);
void store_close(struct store *st);
/* "sqlite" or "postgres". */
const char *store_backend_name(const struct store *st);

/* ---- a pool of connections off the event loop ---- */

/* A store call on PostgreSQL waits for the server; on a worker's event loop that wait stalls
   every connection of the worker. A pool runs store calls on threads of its own, each with its
   own connection to `where`, and posts each result back to the submitter's loop through its
   mailbox (core/mailbox.h). */
struct store_pool;
struct mailbox;
/* Runs on a pool thread with that thread's connection: any store function; returns 0 or ERR_*. */
typedef int (*store_job_fn)(struct store *st, void *arg);
/* Runs on the loop of the mailbox given at submission, with what the job returned (ERR_CLOSED
   when the pool stopped before running it). Never called when that mailbox is closed. */
typedef void (*store_done_cb)(int rc, void *arg);
/* Open nthreads connections (ei names the backend and the cause when one fails) and start the
   threads. */
int store_pool_new(const char *where, unsigned nthreads, struct store_pool **out,
                   struct err_info *ei);
/* Any thread. ERR_LIMIT when 4096 jobs are queued already, ERR_CLOSED once the pool stops,
   ERR_NOMEM; done is then not called. `arg` must live until done runs. */
int store_pool_submit(struct store_pool *p, struct mailbox *reply, store_job_fn fn,
                      store_done_cb done, void *arg);
/* Let running jobs finish, complete queued ones with ERR_CLOSED, close the connections. */
void store_pool_free(struct store_pool *p);
/* Does `where` name a store across the network (PostgreSQL), whose calls belong off the loop? */
bool store_location_remote(const char *where);

/* A worker's way to the store on its request path, one code path for both backends: through a
   pool (PostgreSQL: the request waits, the loop does not) or inline on a connection of the
   caller's own (SQLite: local and fast, bench/store_call), where done runs before store_call
   returns. store_caller_new opens that connection when pool is NULL; mb is the loop's mailbox
   the pool posts completions to. One thread: the loop's. */
struct store_caller;
int store_caller_new(const char *where, struct store_pool *pool, struct mailbox *mb,
                     struct store_caller **out, struct err_info *ei);
void store_caller_free(struct store_caller *c);
/* Run fn with a connection and then done(rc, arg) on the caller's loop. Returns 0 (done will
   run, maybe already has), or ERR_LIMIT / ERR_CLOSED / ERR_NOMEM from the pool (done will not
   run). */
int store_call(struct store_caller *c, store_job_fn fn, store_done_cb done, void *arg);
/* Any thread: run fn on a pool thread and forget it (its result is logged by fn if it matters):
   writes whose answer nobody waits for. store_pool_free runs those still queued before it
   closes the connections. Returns 0 or what store_pool_submit returns. */
int store_pool_post(struct store_pool *p, store_job_fn fn, void *arg);

/* A counter that moves whenever something that can invalidate a cached token verdict changes,
   from any process: a user disabled or revoked, a client revoked, an access token revoked, an
   API key revoked, a signing key added or retired, a user's settings of a server changed (the
   settings cache in src/mcp keys on it too). Cheap enough to call on every request (on SQLite it
   reads data_version first and the counter only when the file changed; on PostgreSQL it is one
   indexed read of one row). */
int store_revocation_seq(struct store *st, uint64_t *seq);

/* Revocation events between replicas (src/shared publishes and receives them over Redis). Any
   thread. `hook` runs after every change this process makes that moves the counter (on the
   thread that made it; it must not block). store_revocation_follow(true, poll_ms): events
   arrive, so a connection reads the counter only after an event or once poll_ms passed since
   its last read; (false, …): every call reads it (the default). store_revocation_event: a peer
   changed something; every connection reads the counter on its next call. */
/* What a connection's last store_revocation_seq read, so that a thread holding no connection
   (a worker whose store calls run on a pool) can tell whether the same call would answer
   without reading the database: with events arriving, none since that read and its poll not
   due. store_revocation_memo: after a successful store_revocation_seq on st (st's thread).
   store_revocation_memo_current: any thread; true and *seq when that call would not read. */
struct store_seq_memo {
    uint64_t read, epoch, until_ms;
    bool known;
};
void store_revocation_memo(const struct store *st, struct store_seq_memo *m);
bool store_revocation_memo_current(const struct store_seq_memo *m, uint64_t *seq);

void store_revocation_set_hook(void (*hook)(void));
void store_revocation_follow(bool live, uint32_t poll_ms);
void store_revocation_event(void);

/* ---- the master key's check value ---- */

#define STORE_KEY_CHECK_MAX 128
/* The check value of the master key the store was first used with (src/auth/seal.c computes it:
   a MAC of a fixed label, never the key). Records `kcv` when the store has none yet (the first
   start; atomic, so that of two replicas starting together exactly one records its value), then
   copies the recorded one into `found` (STORE_KEY_CHECK_MAX bytes). 0 or ERR_*. */
int store_key_check(struct store *st, const char *kcv, char found[STORE_KEY_CHECK_MAX]);

/* ---- users, teams, service accounts ---- */

enum store_role { STORE_ROLE_MEMBER = 0, STORE_ROLE_ADMIN = 1 };

struct store_user {
    int64_t id;
    char name[STORE_NAME_MAX + 1];
    char email[STORE_EMAIL_MAX + 1];
    bool admin;    /* organisation administrator */
    bool disabled; /* cannot log in; every token refused */
    int64_t created_at;
    int64_t tokens_valid_after; /* tokens issued before this are refused (revoke --user) */
};

/* Add a user. password may be NULL (SSO-only user). ERR_EXISTS when the name is taken. */
int store_user_add(struct store *st, const char *name, const char *email, const char *password,
                   bool admin, struct store_user *out, struct err_info *ei);
int store_user_get(struct store *st, int64_t id, struct store_user *out);        /* ERR_NOTFOUND */
int store_user_find(struct store *st, const char *name, struct store_user *out); /* ERR_NOTFOUND */
/* Local login: ERR_DENIED for an unknown user, a wrong password, a user without a password or a
   disabled user, all in the same time (secret_verify_dummy), so no user-name oracle. */
int store_user_check_password(struct store *st, const char *name, const char *password,
                              struct store_user *out);
/* The same in two halves, so that the slow argon2id check can run on another thread: the user
   (disabled or not) and their password's argon2id string. ERR_NOTFOUND for an unknown user or
   one without a password (then burn the time with secret_verify_dummy). */
int store_user_password_hash(struct store *st, const char *name, struct store_user *out,
                             char hash[SECRET_HASH_MAX]);
int store_user_set_password(struct store *st, int64_t id, const char *password);
int store_user_set_disabled(struct store *st, int64_t id, bool disabled);
/* Calls cb for each user in name order; stops early when cb returns non-zero (returned).
   In every *_list function the record passed to cb lives only during the call, and cb may call
   other store functions on the same connection but not the same list function. */
int store_user_list(struct store *st, int (*cb)(const struct store_user *u, void *arg), void *arg);

/* Federated identities: (provider name, subject) → user. */
int store_identity_find(struct store *st, const char *provider, const char *subject,
                        struct store_user *out); /* ERR_NOTFOUND */
int store_identity_link(struct store *st, int64_t user_id, const char *provider,
                        const char *subject);
/* Provisioning by an administrator (a provider with jit: false): link (provider, subject) to the
   user called `name` when that user has no password (created for SSO: user add --no-password)
   and no identity at this provider yet, and fill *out. ERR_NOTFOUND when there is no such user
   (unknown, a local account with a password, or linked to another subject already). */
int store_identity_adopt(struct store *st, const char *provider, const char *subject,
                         const char *name, struct store_user *out);

int store_team_add(struct store *st, const char *name, struct err_info *ei); /* ERR_EXISTS */
int store_team_add_member(struct store *st, const char *team, int64_t user_id, enum store_role role,
                          struct err_info *ei);
int store_team_remove_member(struct store *st, const char *team, int64_t user_id);
/* SSO group sync: make the user a member of these teams (created when missing, marked as
   managed by sync) and remove them from other sync-managed teams; teams created by hand are left
   alone. */
int store_team_sync(struct store *st, int64_t user_id, const char *const *teams, size_t nteams);
int store_team_list(struct store *st, int (*cb)(const char *team, size_t members, void *arg),
                    void *arg);
/* The teams a user belongs to, calling cb for each. */
int store_user_teams(struct store *st, int64_t user_id,
                     int (*cb)(const char *team, enum store_role role, void *arg), void *arg);

struct store_account {
    int64_t id;
    char name[STORE_NAME_MAX + 1];
    bool disabled;
    int64_t created_at;
};
int store_account_add(struct store *st, const char *name, struct store_account *out,
                      struct err_info *ei);
int store_account_find(struct store *st, const char *name, struct store_account *out);

/* API keys for service accounts: "ghk_<key id>_<secret>". The key is written to key_out
   (STORE_APIKEY_SIZE bytes) once and never again; the store keeps the id and an argon2id of the
   secret. */
#define STORE_APIKEY_SIZE 96
int store_apikey_create(struct store *st, int64_t account_id, const char *label,
                        char key_out[STORE_APIKEY_SIZE], char id_out[32]);
/* Check a presented key: ERR_DENIED (malformed, unknown, revoked, wrong secret, account
   disabled; same time for all), or the store's error when it failed. On success fills the
   account. Slow (argon2id): cache it. */
int store_apikey_check(struct store *st, const char *key, size_t len, struct store_account *out,
                       char id_out[32]);
int store_apikey_revoke(struct store *st, const char *key_id); /* ERR_NOTFOUND */

/* ---- OAuth clients ---- */

enum store_client_kind {
    STORE_CLIENT_CONFIG = 0, /* pre-registered in the configuration */
    STORE_CLIENT_DCR,        /* RFC 7591 dynamic registration */
    STORE_CLIENT_CIMD,       /* Client ID Metadata Document: client_id is its https URL */
    STORE_CLIENT_USER,       /* a user's own credentials (gatehouse client create --user) */
};

struct store_client {
    char client_id[STORE_CLIENT_ID_MAX + 1];
    enum store_client_kind kind;
    int64_t user_id;   /* owner for STORE_CLIENT_USER, else 0 */
    bool confidential; /* has a secret (client_secret_basic/post), else public ("none") */
    bool revoked;
    int64_t created_at;
    int64_t expires_at; /* CIMD cache expiry, else 0 */
    json_t *metadata;   /* the registered metadata (client_name, redirect_uris, grant_types,
                           token_endpoint_auth_method, scope, ...); owned: store_client_release */
};
void store_client_release(struct store_client *c);

/* Insert or replace (CIMD refresh, config sync) a client. secret may be NULL (public client). */
int store_client_put(struct store *st, const struct store_client *c, const char *secret);
int store_client_get(struct store *st, const char *client_id, struct store_client *out);
/* ERR_DENIED for unknown, revoked, public or wrong secret (same time for all). */
int store_client_check_secret(struct store *st, const char *client_id, const char *secret,
                              size_t len);
/* The same in two halves (the argon2id check on another thread): the client's secret hash, and
   whether it may authenticate (not revoked, its owner not disabled). ERR_NOTFOUND for an unknown
   or public client. */
int store_client_secret_hash(struct store *st, const char *client_id, char hash[SECRET_HASH_MAX],
                             bool *usable);
/* Also revokes the client's refresh families and drops its unused codes. ERR_NOTFOUND. */
int store_client_revoke(struct store *st, const char *client_id);
int store_client_list(struct store *st, int64_t user_id, /* 0 = all */
                      int (*cb)(const struct store_client *c, void *arg), void *arg);

/* ---- authorization codes (single use) ---- */

struct store_code {
    char client_id[STORE_CLIENT_ID_MAX + 1];
    int64_t user_id;
    char redirect_uri[1024];
    char code_challenge[64]; /* S256 only */
    char resource[STORE_RESOURCE_MAX + 1];
    char scope[STORE_SCOPE_MAX + 1];
    int64_t expires_at;
    char family_id[32]; /* set when the code was exchanged: the refresh family it started */
};
/* Keyed by token_hash(code). */
int store_code_put(struct store *st, const char *code_hash, const struct store_code *c);
/* Take a code for exchange: ERR_NOTFOUND (unknown or expired); ERR_EXISTS when it was already
   used — out is then filled so the caller can revoke the family it started (RFC 6749 §4.1.2). */
int store_code_take(struct store *st, const char *code_hash, struct store_code *out);
int store_code_set_family(struct store *st, const char *code_hash, const char *family_id);

/* ---- refresh-token families (rotation with reuse detection) ---- */

struct store_family {
    char id[32];
    char client_id[STORE_CLIENT_ID_MAX + 1];
    int64_t user_id;
    char resource[STORE_RESOURCE_MAX + 1];
    char scope[STORE_SCOPE_MAX + 1];
    int64_t created_at;
    int64_t expires_at; /* absolute lifetime of the family */
    bool revoked;
};
int store_family_new(struct store *st, struct store_family *f); /* fills f->id, created_at */
/* Record a refresh token (by hash) as the family's current one; any earlier unused token of the
   family is marked used (presenting it later counts as reuse). ERR_NOTFOUND: no such family. */
int store_refresh_put(struct store *st, const char *family_id, const char *token_hash,
                      int64_t expires_at);
/* Use a refresh token: on success it is marked used and fam is filled. ERR_NOTFOUND (unknown or
   expired), ERR_DENIED (family revoked), ERR_EXISTS (already used: the whole family is revoked
   in the same transaction; fam is filled so the caller can say which). */
int store_refresh_use(struct store *st, const char *token_hash, struct store_family *fam);
/* store_refresh_use and, in the same transaction, store_refresh_put of new_hash (with the
   family's expiry) when new_hash is not NULL: the old token is spent only if the new one is
   recorded, so a failed write (a full disk: ERR_IO) leaves the old token usable. */
int store_refresh_rotate(struct store *st, const char *token_hash, const char *new_hash,
                         struct store_family *fam);
/* Look at a refresh token without using it (introspection): 0 and fam when it would be accepted
   now, ERR_DENIED when used, revoked, expired or its user disabled, ERR_NOTFOUND. */
int store_refresh_peek(struct store *st, const char *token_hash, struct store_family *fam);
int store_family_revoke(struct store *st, const char *family_id);

/* ---- revocation ---- */

/* Access tokens revoked before their expiry (RFC 7009), by jti. A revocation (of a jti, or of a
   family by store_family_revoke) that cannot be written is still in force for every connection
   of this process at once, and written by a later store_sweep (or store_close, at the latest);
   the error is returned so that
   the caller can say it was not stored. */
int store_jti_revoke(struct store *st, const char *jti, int64_t expires_at);
int store_jti_revoked(struct store *st, const char *jti, bool *revoked);
/* Everything a user holds, effective at once: tokens_valid_after = now + 1 (so a token with
   iat == now, issued in the same second, is refused too: refuse iat < tokens_valid_after), their
   clients revoked, refresh families revoked, unused codes and ephemeral rows whose value has an
   integer "user_id" member (browser login sessions) deleted. Bumps the revocation seq.
   ERR_NOTFOUND for an unknown user. */
int store_revoke_user(struct store *st, int64_t user_id);

/* ---- signing keys ---- */

struct store_key {
    char kid[64];
    char alg[16];          /* "ES256" | "EdDSA" */
    unsigned char *sealed; /* the private key, sealed (auth_seal); owned: store_key_release */
    size_t sealed_len;
    char *public_jwk; /* JSON text of the public JWK; owned */
    int64_t created_at;
    int64_t retired_at; /* 0 = current; a retired key still verifies until retired_at + the
                           access-token lifetime, then is dropped from the JWKS */
};
void store_key_release(struct store_key *k);
int store_key_add(struct store *st, const struct store_key *k); /* also retires the previous */
int store_key_list(struct store *st, int (*cb)(const struct store_key *k, void *arg), void *arg);
int store_key_delete_retired_before(struct store *st, int64_t t);

/* ---- per-user settings of a server (discovery mode, tool selection) ---- */

#define STORE_SERVER_MAX 64 /* CONFIG_NAME_MAX */
#define STORE_SETTINGS_TOOLS_MAX 4096

struct store_settings {
    char discovery[16]; /* "static", "hierarchical" or "search"; "" = the server's own mode */
    json_t *tools;      /* the selected tool names (the server's own names), an array of strings;
                           NULL = every tool. Owned: store_settings_release */
    int64_t updated_at;
};
void store_settings_release(struct store_settings *s);
/* A user's settings of `server`. ERR_NOTFOUND when they have none (every default applies). */
int store_settings_get(struct store *st, int64_t user_id, const char *server,
                       struct store_settings *out);
/* Insert or replace them (updated_at is set to now). Neither the mode nor the tool names are
   checked against the running servers here: the caller does that (the gateway knows them).
   ERR_INVAL (ei says why) for a server name or mode out of bounds, more than
   STORE_SETTINGS_TOOLS_MAX tools or a tool that is not a string; ERR_NOTFOUND for an unknown
   user. */
int store_settings_put(struct store *st, int64_t user_id, const char *server,
                       const struct store_settings *s, struct err_info *ei);
/* Calls cb for each server a user has settings for, in server-name order. */
int store_settings_list(struct store *st, int64_t user_id,
                        int (*cb)(const char *server, const struct store_settings *s, void *arg),
                        void *arg);

/* ---- upstream connections: each user's tokens at an upstream server (the vault's rows) ---- */

#define STORE_SEALED_MAX 16384 /* a sealed token record, at most */

/* One row: `sealed` is the vault's ciphertext (src/vault), opaque here; expires_at is the access
   token's expiry (0: unknown) and scope its granted scope, both kept in clear for listing. */
struct store_upstream_token {
    unsigned char *sealed; /* malloc'd; store_upstream_token_release wipes and frees it */
    size_t sealed_len;
    int64_t expires_at, updated_at;
    char scope[STORE_SCOPE_MAX + 1];
};
void store_upstream_token_release(struct store_upstream_token *t);
/* The row of (user, server). ERR_NOTFOUND when the user has not connected the server. */
int store_upstream_token_get(struct store *st, int64_t user_id, const char *server,
                             struct store_upstream_token *out);
/* Insert or replace the row (updated_at is set to now). ERR_INVAL for a server name or a sealed
   record out of bounds, ERR_NOTFOUND for an unknown user. */
int store_upstream_token_put(struct store *st, int64_t user_id, const char *server,
                             const struct store_upstream_token *t);
/* Delete it. ERR_NOTFOUND when there was none. */
int store_upstream_token_delete(struct store *st, int64_t user_id, const char *server);
/* cb(server, row without `sealed`, arg) for each server the user has connected, in name order;
   a non-zero return from cb stops the walk and is returned. */
int store_upstream_token_list(struct store *st, int64_t user_id,
                              int (*cb)(const char *server, const struct store_upstream_token *t,
                                        void *arg),
                              void *arg);

/* ---- short-lived browser and flow state ---- */

/* A small JSON value under (kind, key hash) until expires_at: browser login sessions ("login"),
   pending authorization requests and SSO round trips ("authz", "sso"), consent CSRF tokens.
   take = get and delete in one transaction (single use). ERR_NOTFOUND when absent or expired. */
int store_ephemeral_put(struct store *st, const char *kind, const char *key_hash,
                        const json_t *value, int64_t expires_at);
int store_ephemeral_get(struct store *st, const char *kind, const char *key_hash, json_t **out);
int store_ephemeral_take(struct store *st, const char *kind, const char *key_hash, json_t **out);
int store_ephemeral_delete(struct store *st, const char *kind, const char *key_hash);
/* Drop expired ephemeral rows, codes, revoked jtis and dead families; call now and then. */
int store_sweep(struct store *st, int64_t now);

#endif
