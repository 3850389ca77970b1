/*
 * Tokens: the signing keys, the access tokens Gatehouse issues (short-lived JWTs, RFC 9068
 * shape, ES256 or EdDSA through OpenSSL EVP), their validation on every MCP request, and the
 * verification of identity providers' id_tokens against their JWKS.
 *
 * Keys live in the store sealed with the master key (XChaCha20-Poly1305, libsodium) read from
 * store.key_file. Rotation adds a key that signs from then on; the previous one keeps verifying
 * (and stays in the JWKS) until every token it signed has expired, so a rotation never refuses a
 * valid token.
 *
 * Validation is per worker thread (struct auth_validator, no locks): a verdict is cached by the
 * SHA-256 of the presented credential until the token expires or the store's revocation
 * sequence moves (a revocation from any thread or process flushes every cache on its next
 * request), so the steady-state cost is a hash and a table lookup.
 */
#ifndef GH_AUTH_AUTH_H
#define GH_AUTH_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "core/err.h"
#include "core/principal.h"
#include "store/store.h"

/* ---- the master key and sealing ---- */

#define AUTH_MASTER_KEY_LEN 32
/* Read the 32-byte master key from `path` (raw or base64url text). When the file is missing and
   create is true, make one (0600, random). A file readable by group or others is refused
   (ERR_DENIED, ei names the mode). */
int auth_master_key_load(const char *path, bool create, unsigned char key[AUTH_MASTER_KEY_LEN],
                         struct err_info *ei);
/* Check that the master key is the one the store was first used with: the first start records
   the key's check value (HMAC-SHA-256 of a fixed label under the key: it tells keys apart and
   reveals nothing of them) in the store, every later start compares. ERR_DENIED when they differ
   (ei says that key_file differs from the one the store's other users have, and names the file);
   ERR_IO when the store cannot be read (ei names the store). key_file is for messages only. */
int auth_master_key_verify(struct store *st, const unsigned char key[AUTH_MASTER_KEY_LEN],
                           const char *key_file, struct err_info *ei);
/* Seal/unseal with the master key; *out is malloc'd (unseal output is wiped on free by the
   caller with sodium_memzero). ERR_DENIED when unsealing fails (wrong key or tampering). */
int auth_seal(const unsigned char key[AUTH_MASTER_KEY_LEN], const void *in, size_t n,
              unsigned char **out, size_t *out_len);
int auth_unseal(const unsigned char key[AUTH_MASTER_KEY_LEN], const unsigned char *in, size_t n,
                unsigned char **out, size_t *out_len);

/* ---- signing keys ---- */

/* Generate a key of `alg` ("ES256" or "EdDSA"), seal it, store it as the current one (the
   previous one is retired). kid_out receives its kid (the JWK thumbprint, RFC 7638). */
int auth_key_rotate(struct store *st, const unsigned char master[AUTH_MASTER_KEY_LEN],
                    const char *alg, char kid_out[64], struct err_info *ei);

/* An immutable snapshot of the keys: the current one signs, every key not retired for longer
   than `verify_grace_s` verifies. Reference-counted; any thread may use it. */
struct auth_keyring;
int auth_keyring_load(struct store *st, const unsigned char master[AUTH_MASTER_KEY_LEN],
                      uint32_t verify_grace_s, struct auth_keyring **out, struct err_info *ei);
struct auth_keyring *auth_keyring_ref(struct auth_keyring *kr);
void auth_keyring_unref(struct auth_keyring *kr);
/* {"keys":[public JWKs]} for /oauth/jwks (new reference). */
json_t *auth_keyring_jwks(const struct auth_keyring *kr);

/* ---- JWT ---- */

/* Sign claims as a compact JWS with the current key (header: alg, kid, typ "at+jwt").
 *out is malloc'd. ERR_NOTFOUND when the keyring has no current key (the store holds none yet:
   auth_key_rotate makes one). */
int auth_jwt_sign(const struct auth_keyring *kr, const json_t *claims, char **out);
/* Split and decode a compact JWS without verifying it (header and payload must be JSON
   objects). Bounded: tokens over 8 KiB are refused. For the fuzzer and for the verifiers. */
int auth_jwt_decode(const char *tok, size_t len, json_t **header, json_t **payload,
                    struct err_info *ei);
/* Verify a token against our keyring: the header's alg must equal the key's ("none", HS*, and
   any mismatch are refused), kid must name a key we hold, the signature must verify. Fills
   *claims (new reference) on success. Claims are not checked here. ei says why, safe to show. */
int auth_jwt_verify(const struct auth_keyring *kr, const char *tok, size_t len, json_t **claims,
                    struct err_info *ei);
/* Verify against an external JWKS (an identity provider's): RS256, PS256, ES256 or EdDSA, by
   kid (or the only key of the right type when the token has no kid). */
int auth_jwt_verify_jwks(const json_t *jwks, const char *tok, size_t len, json_t **claims,
                         struct err_info *ei);

/* ---- principals and access tokens ---- */

/* struct principal (core/principal.h) is what validation fills: its identity fields have the
   store's bounds. */
_Static_assert(PRINCIPAL_NAME_MAX == STORE_NAME_MAX, "principal name bound");
_Static_assert(PRINCIPAL_CLIENT_ID_MAX == STORE_CLIENT_ID_MAX, "principal client_id bound");
_Static_assert(PRINCIPAL_SCOPE_MAX == STORE_SCOPE_MAX, "principal scope bound");

/* Issue an access token for p (kind user; ERR_INVAL otherwise) at `resource` (the aud), valid
   ttl_s seconds. *out is malloc'd; p->credential_id is set to its jti and p->expires_at to its
   exp. ERR_NOTFOUND as auth_jwt_sign. */
int auth_issue_access(const struct auth_keyring *kr, const char *issuer, struct principal *p,
                      const char *resource, uint32_t ttl_s, char **out);

/* ---- validation on every request (one validator per worker thread) ---- */

struct auth_validator;
/* st: this thread's store connection (borrowed); issuer: our issuer URL (copied). The validator
   loads the keyring itself and reloads it when the store's revocation sequence moves. */
int auth_validator_new(struct store *st, const unsigned char master[AUTH_MASTER_KEY_LEN],
                       const char *issuer, uint32_t access_ttl_s, struct auth_validator **out,
                       struct err_info *ei);
void auth_validator_free(struct auth_validator *v);
/* The current keyring (borrowed until the next call on v): the token endpoint signs with it. */
const struct auth_keyring *auth_validator_keyring(struct auth_validator *v);

enum auth_verdict {
    AUTH_OK = 0,
    AUTH_MISSING,            /* no credential: 401 with resource_metadata, no error code */
    AUTH_INVALID,            /* malformed, forged, expired, wrong audience/issuer, revoked:
                                401 error="invalid_token" */
    AUTH_INSUFFICIENT_SCOPE, /* 403 error="insufficient_scope" with scope="<required>" */
    AUTH_UNAVAILABLE,        /* the store did not answer: a temporary error (503, Retry-After) */
};
/* Check the credential in an Authorization header value ("Bearer <JWT>" or "Bearer ghk_..."
   API key) for `resource` (the exact aud expected) and `required_scope` (NULL = none). On
   AUTH_OK fills *p. Otherwise ei->msg is the error_description (names the cause, contains no
   part of the credential). */
enum auth_verdict auth_validate(struct auth_validator *v, const char *authorization, size_t len,
                                const char *resource, const char *required_scope,
                                struct principal *p, struct err_info *ei);
/* A verified client certificate that auth.client_certificates maps to service account `account`
   (credential_id names the certificate: "cert:<hex>"; not_after is its expiry, 0 unknown): the
   account exists and is not disabled. AUTH_OK fills *p (a service account, as with an API key);
   otherwise AUTH_INVALID with ei naming the cause (AUTH_UNAVAILABLE: the store did not answer).
   Verdicts are cached like API keys'. */
enum auth_verdict auth_validate_account(struct auth_validator *v, const char *account,
                                        const char *credential_id, int64_t not_after,
                                        struct principal *p, struct err_info *ei);
/* The store's part of auth_validate, off the event loop (a request waits on PostgreSQL, the
   loop does not). On the loop, auth_lookup_new copies what the check needs (the credential of
   the Authorization header, whether the cache holds a verdict for it, the keyring and sequence
   in force); auth_lookup_run, a store job (store_job_fn) on any thread with any connection,
   reads the revocation sequence, reloads the keyring when it moved and checks the credential
   when no verdict for it stands; back on the loop, auth_lookup_apply takes the sequence and
   keyring, and the auth_validate (or auth_validate_account) call that follows at once decides
   from memory and caches what the store said. A sequence that could not be read keeps the
   cached verdicts (a store restart does not refuse every client); a credential the store could
   not check is AUTH_UNAVAILABLE. Free on the loop, after the validate call. */
struct auth_lookup;
int auth_lookup_new(struct auth_validator *v, const char *authorization, size_t len,
                    const char *resource, struct auth_lookup **out);
int auth_lookup_run(struct store *st, void *arg);
void auth_lookup_apply(struct auth_validator *v, struct auth_lookup *l);
/* After auth_lookup_run (any thread): the id of the user the credential stands for, 0 when it is
   not a valid user's. */
int64_t auth_lookup_user(const struct auth_lookup *l);
/* The request presents a client certificate mapped to service account `account` (and no
   Authorization header): the lookup checks that account (auth_validate_account) instead. On the
   loop, before auth_lookup_run. */
int auth_lookup_account(struct auth_lookup *l, const char *account, const char *credential_id);
/* true when auth_lookup_run would make no store call: the verdict is cached and the sequence
   known to stand (revocation events arrive, none came since the last read: store.h,
   store_revocation_memo). The request may then skip the store job. */
bool auth_lookup_local(const struct auth_lookup *l);
/* After auth_lookup_run: the revocation sequence it read (false: the store did not answer). */
bool auth_lookup_seq(const struct auth_lookup *l, uint64_t *seq);
void auth_lookup_free(struct auth_lookup *l);

/* RFC 7662 for one of our access tokens: every check auth_validate makes (signature, typ,
   issuer, expiry, the user's state and revocations, the client, the jti) except the audience,
   which introspection reports instead. 0 and *claims (new reference) when active; otherwise
   ERR_DENIED with ei naming why. Never cached. */
int auth_introspect(struct auth_validator *v, const char *tok, size_t len, json_t **claims,
                    struct err_info *ei);

#endif
