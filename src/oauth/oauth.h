/*
 * Gatehouse as the OAuth 2.1 authorization server of its MCP endpoints (docs/auth.md): the
 * discovery documents (RFC 8414, RFC 9728), /oauth/authorize with its login and consent pages,
 * /oauth/token, /oauth/register (RFC 7591), Client ID Metadata Documents, /oauth/revoke
 * (RFC 7009), /oauth/introspect (RFC 7662), /oauth/jwks, and the bearer check in front of /mcp.
 *
 * One struct oauth_ctx per worker thread: its own store connection and token validator, its own
 * curl loop for CIMD fetches, no locks. Everything that must outlive a request or be seen by
 * another worker or replica (pending authorizations, login sessions, CSRF tokens, codes,
 * refresh families) is in the store. The parsers of untrusted input (forms, Basic credentials,
 * URLs) are pure functions declared below so that the fuzzer and the unit tests reach them.
 */
#ifndef GH_OAUTH_OAUTH_H
#define GH_OAUTH_OAUTH_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>
#include <uv.h>

#include "auth/auth.h"
#include "config/config.h"
#include "core/err.h"

struct st_h2o_req_t;

/* ---- parsers of untrusted input ---- */

#define OAUTH_FORM_MAX_SIZE (64u << 10) /* a form body or query string */
#define OAUTH_FORM_MAX_PARAMS 32
#define OAUTH_URL_MAX 1024 /* redirect URIs, resources, CIMD URLs */

/* An application/x-www-form-urlencoded form (a POST body or a query string), decoded. */
struct oauth_form {
    size_t n;
    char *name[OAUTH_FORM_MAX_PARAMS];
    char *value[OAUTH_FORM_MAX_PARAMS]; /* NUL-terminated; may hold secrets: wiped on release */
};

/* Parse `len` bytes. Strict: '%' must be followed by two hex digits, "%00" and raw control
   characters are refused, '+' is a space, a parameter given twice is refused (RFC 6749 §3.1),
   more than OAUTH_FORM_MAX_PARAMS parameters or more than OAUTH_FORM_MAX_SIZE bytes are
   refused. Returns 0, ERR_PARSE / ERR_LIMIT (ei names the parameter and the cause), ERR_NOMEM.
   On failure f is left empty. */
int oauth_form_parse(const char *s, size_t len, struct oauth_form *f, struct err_info *ei);
/* The value of `name`, or NULL when absent or empty (an empty parameter counts as omitted). */
const char *oauth_form_get(const struct oauth_form *f, const char *name);
/* Wipe and free the values. */
void oauth_form_release(struct oauth_form *f);

/* Decode an HTTP Basic client authentication header value ("Basic <base64>"): the client_id and
   secret inside are form-encoded (RFC 6749 §2.3.1). *id and *secret are malloc'd (the secret
   with secret_free). Returns 0, ERR_NOTFOUND (not a Basic header), ERR_PARSE (ei says why). */
int oauth_basic_decode(const char *hdr, size_t len, char **id, char **secret, struct err_info *ei);

/* The parts of an absolute http(s) URL that the rules below look at. */
struct oauth_url {
    bool https;
    bool loopback; /* host is 127.0.0.0/8, [::1] or localhost */
    char host[256];
    unsigned port;   /* 0 when absent */
    size_t path_off; /* offset of the path (after the authority) in the URL text */
};
/* Parse an absolute URL: scheme http or https, a host, an optional port, no user-info, no
   fragment, no whitespace or control characters, at most OAUTH_URL_MAX bytes. */
int oauth_url_parse(const char *s, struct oauth_url *u, struct err_info *ei);
/* A redirect URI a client may register (OAuth 2.1 §2.3.1, §8.4): https, or http on a loopback
   host (native clients). */
int oauth_redirect_uri_check(const char *uri, struct err_info *ei);
/* Does a presented redirect_uri match a registered one? Exact string match, except that for an
   http loopback IP literal the port may differ (OAuth 2.1 §8.4.2). */
bool oauth_redirect_uri_match(const char *registered, const char *presented);

/* A dynamic registration request's body (RFC 7591): JSON (duplicate members refused), then the
   client metadata rules of oauth_client_metadata_check (cimd false). 0 and *out (the
   normalised metadata, new reference), or ERR_PARSE / ERR_INVAL with ei naming the cause. */
int oauth_register_parse(const char *body, size_t len, json_t **out, struct err_info *ei);
/* A Client ID Metadata Document fetched from `client_id` (its URL): JSON (duplicate members
   refused), its client_id equal to the URL, and the client metadata rules (cimd true: no
   secret). 0 and *out (normalised, new reference), or ERR_PARSE / ERR_INVAL with ei. */
int oauth_cimd_document_check(const char *body, size_t len, const char *client_id, json_t **out,
                              struct err_info *ei);
/* Validate a client's metadata (registration or a CIMD document) and normalise it into a new
   object: redirect_uris, token_endpoint_auth_method, grant_types, response_types, client_name,
   ... ERR_INVAL with ei naming the field. Applying it to its own output gives the same
   output. */
int oauth_client_metadata_check(const json_t *in, bool cimd, json_t **out, struct err_info *ei);

/* ---- the per-worker server side ---- */

struct oauth_ctx;

/* Once at start-up, before the workers: load (or create) the master key into `master`, open the
   store (creating it) and make sure a signing key exists (one of auth.signing_alg is made when
   there is none). Returns 0 or an ERR_* with ei naming the file and the cause. */
int oauth_prepare(const struct config *cfg, unsigned char master[AUTH_MASTER_KEY_LEN],
                  struct err_info *ei);

/* A worker's context: its own store connection, validator and SSO relying party (which reads
   the providers' client secret files now). `issuer` is the effective issuer (copied; fixed for
   the life of the process); cfg is referenced for the life of the context. Call on the worker's
   thread from then on. */
int oauth_ctx_new(uv_loop_t *loop, const unsigned char master[AUTH_MASTER_KEY_LEN],
                  const char *issuer, struct config *cfg, struct oauth_ctx **out,
                  struct err_info *ei);
/* On the worker's thread at shutdown: abandon CIMD fetches and close the curl loop's handles. */
void oauth_ctx_shutdown(struct oauth_ctx *o);
/* After the worker's loop has stopped. NULL is ignored. */
void oauth_ctx_free(struct oauth_ctx *o);

/* Is this path served here (/.well-known/oauth-*, /.well-known/openid-configuration,
   /oauth/...)? */
bool oauth_owns_path(const char *path, size_t len);
/* Answer a request on such a path (possibly later: a CIMD fetch holds the request, and a client
   that hangs up meanwhile is handled). Returns the status sent, or 0 when the answer is
   pending (the request holds a reference to cfg meanwhile). */
int oauth_handle(struct oauth_ctx *o, struct config *cfg, struct st_h2o_req_t *req);

/* The store's part of the bearer check of a request to /mcp (server NULL) or /mcp/<server>,
   made off the loop (auth.h, auth_lookup): new and apply on the worker's thread, with
   auth_lookup_run between them on any store connection; oauth_authenticate (or
   oauth_authenticate_certificate) follows apply at once. */
struct auth_lookup;
int oauth_lookup_new(struct oauth_ctx *o, struct st_h2o_req_t *req, const char *server,
                     struct auth_lookup **out);
void oauth_lookup_apply(struct oauth_ctx *o, struct auth_lookup *l);

/* The bearer check in front of /mcp (server NULL) and /mcp/<server>: on success fills *p and
   returns true; otherwise answers the request (401 with WWW-Authenticate and resource_metadata,
   403 insufficient_scope, 400 for a token in the query string, 503 with Retry-After and a
   JSON-RPC error naming the store when it could not check the credential) and returns false. */
bool oauth_authenticate(struct oauth_ctx *o, const struct config *cfg, struct st_h2o_req_t *req,
                        const char *server, struct principal *p);
/* The same check for a request that carries no Authorization header on a connection with a
   client certificate (a listener's tls.client_ca): refusal non-NULL is the TLS layer's reason
   to refuse the certificate (not verified, expired, mapped to no account); otherwise account
   is the service account auth.client_certificates maps it to, credential_id and not_after name
   the certificate. Success fills *p (a service account); a refusal answers 401 invalid_token
   with WWW-Authenticate and resource_metadata, naming the cause, and returns false. */
bool oauth_authenticate_certificate(struct oauth_ctx *o, struct st_h2o_req_t *req,
                                    const char *server, const char *refusal, const char *account,
                                    const char *credential_id, int64_t not_after,
                                    struct principal *p);

/* The link a user opens in a browser to connect their account at server `server` (one with
   auth.oauth): issuer + "/oauth/upstream/<server>/start?t=..." where t is sealed with the master
   key, names the user and the server, lasts 15 minutes and works once. `scope` (NULL: none)
   is asked for on top of the scope the user was granted before (a step-up after a 403
   insufficient_scope). Any thread (the CLI too). Returns 0, ERR_LIMIT (out too small), ERR_NOMEM.
 */
int oauth_upstream_start_url(const unsigned char master[AUTH_MASTER_KEY_LEN], const char *issuer,
                             int64_t user_id, const char *server, const char *scope, int64_t now,
                             char *out, size_t size);

#endif
