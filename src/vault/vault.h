/*
 * The credential vault: each user's credentials for each upstream server, behind a narrow
 * interface. Callers ask the vault to put the credential for (principal, server) into an
 * outgoing request (vault_inject), to keep what a token exchange produced (vault_keep), to build
 * and apply a refresh, and to forget a connection; no function hands a secret back to a caller
 * as a value it could log or copy. The interface is the seam along which the vault can move into
 * a separate privileged process (OpenSSH's privilege separation is the model) without changing
 * its callers: what crosses it is (user, server), a struct outbound to fill, and opaque entries.
 *
 * At rest a connection is one row of upstream_tokens (store.h), its record sealed with
 * XChaCha20-Poly1305 (libsodium) under a key derived from the store's master key (crypto_kdf,
 * context "ghvault1"), with (user, server) as associated data: a row copied onto another user or
 * another server does not open. The record holds the access and refresh tokens, their expiry and
 * scope, and the grant's context (authorization server issuer, token endpoint, resource, the
 * client registration and how it authenticates). Only expiry and scope sit beside it in clear.
 *
 * Threads: vault_init on the main thread before any other call; the rest on any thread. Store
 * calls block on the store (a PostgreSQL round trip): run them as store jobs (store_call), never
 * on a worker's loop.
 */
#ifndef GH_VAULT_VAULT_H
#define GH_VAULT_VAULT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "store/store.h"
#include "upstream/transport.h"

#define VAULT_MASTER_KEY_LEN 32

/* Derive the vault's key from the master key (the one auth/auth.h loads). Idempotent; the key
   lives until vault_release, which wipes it. */
void vault_init(const unsigned char master[VAULT_MASTER_KEY_LEN]);
void vault_release(void);
bool vault_ready(void);

/* One user's connection to one server, opened (the secrets stay inside). */
struct vault_entry;
void vault_entry_free(struct vault_entry *e); /* NULL-safe; wipes the secrets */

/*
 * Keep what a token exchange (authorization code or refresh) produced, for (user, server):
 * `tokens` is the token endpoint's JSON answer (access_token and token_type "Bearer" required;
 * expires_in, refresh_token and scope optional; a refresh answer without refresh_token keeps the
 * old one when `prev` holds it), `grant` the context to keep with it (strings: issuer,
 * token_endpoint, resource, client_id, client_secret, auth_method; any may be absent), `prev`
 * the entry being refreshed or NULL. Sealed and written in one store transaction (durable on
 * return). Returns 0, ERR_INVAL (ei says what the answer lacks, never with a token), ERR_NOTFOUND
 * (no such user), ERR_UNAVAILABLE (vault_init was not called) or a store error.
 */
int vault_keep(struct store *st, int64_t user_id, const char *server, const json_t *tokens,
               const json_t *grant, const struct vault_entry *prev, int64_t now,
               struct err_info *ei);

/* Open (user, server)'s connection: ERR_NOTFOUND when the user has not connected it, ERR_DENIED
   when the record does not open (another key, or a row moved to another user or server: it is
   not used), ERR_UNAVAILABLE before vault_init. */
int vault_open(struct store *st, int64_t user_id, const char *server, struct vault_entry **out);

/* What an entry can do now. */
enum vault_state {
    VAULT_FRESH = 0, /* the access token is valid (or has no known expiry) */
    VAULT_STALE,     /* expired, or expiring within VAULT_EXPIRY_SKEW_S; a refresh token is held */
    VAULT_DEAD,      /* expired with no refresh token: the user must authorize again */
};
#define VAULT_EXPIRY_SKEW_S 30
enum vault_state vault_entry_state(const struct vault_entry *e, int64_t now);
/* The granted scope ("" when the answer named none) and the expiry (0: unknown): not secret. */
const char *vault_entry_scope(const struct vault_entry *e);
int64_t vault_entry_expires_at(const struct vault_entry *e);

/* Add `Authorization: Bearer <access token>` to out (the call's outbound additions, which the
   HTTP transport sends with the call's POST). Returns 0 or outbound_add's error. */
int vault_inject(const struct vault_entry *e, struct outbound *out);

/*
 * The refresh request for e: *url (malloc'd) the token endpoint, *body (malloc'd, wipe after
 * use) the form (grant_type=refresh_token, the refresh token, resource, and client_id unless
 * the client authenticates with client_secret_basic), and into headers the Content-Type and,
 * for client_secret_basic, the Authorization header. ERR_NOTFOUND when e has no refresh token or
 * no token endpoint.
 */
int vault_refresh_request(const struct vault_entry *e, char **url, char **body,
                          struct outbound *headers);

/* Forget (user, server)'s connection. ERR_NOTFOUND when there was none. */
int vault_forget(struct store *st, int64_t user_id, const char *server);

/* cb for each server the user has connected (expiry and scope only), in name order. */
int vault_list(struct store *st, int64_t user_id,
               int (*cb)(const char *server, int64_t expires_at, const char *scope, void *arg),
               void *arg);

#endif
