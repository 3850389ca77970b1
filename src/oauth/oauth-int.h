/*
 * What the files of src/oauth share: the per-worker context, the response helpers (JSON errors
 * per RFC 6749 §5.2, HTML pages with their security headers, redirects), request helpers (form,
 * cookie, client authentication) and the entry points each file serves.
 */
#ifndef GH_OAUTH_INT_H
#define GH_OAUTH_INT_H

#define H2O_USE_EPOLL 0
#include <h2o.h>

#include "core/buf.h"
#include "oauth/oauth.h"

#define OAUTH_ISSUER_MAX 256
#define OAUTH_HTML_MAX (256u << 10)
/* The Referrer-Policy of every page and redirect. "same-origin": no Referer leaves for another
   site (the client, the identity provider: our URLs carry pending requests' ids), while a form
   posted from our own page keeps its Origin. "no-referrer" made browsers send "Origin: null" on
   those posts, which oauth_same_origin must refuse, as any page could cause it. */
#define OAUTH_REFERRER_POLICY "same-origin"

struct cimd_fetch;
struct sso;
struct sso_wait;
struct upflow;

struct oauth_ctx {
    uv_loop_t *loop;
    struct config *cfg0; /* the snapshot at start: auth settings change on restart only */
    struct store *st;
    struct auth_validator *v;
    char issuer[OAUTH_ISSUER_MAX];
    bool secure_cookie;      /* the issuer is https: __Host- cookie with Secure */
    struct fetcher *fetcher; /* CIMD fetches (trusting outbound.ca_file) */
    bool closing;
    struct cimd_fetch *fetches; /* in flight */
    struct sso *sso;            /* when auth.login.providers is not empty */
    struct sso_wait *sso_waits; /* requests waiting on an identity provider */
    struct upflow *upflows;     /* upstream authorizations waiting on a server (upstream.c) */
    unsigned char master[AUTH_MASTER_KEY_LEN]; /* seals start links and pending flows; wiped */
    int64_t next_sweep;
};

/* The current time in Unix seconds. */
int64_t oauth_now(void);

/* --- responses --- */

/* Add a response header; the value is copied. */
void oauth_add_header(h2o_req_t *req, const char *name, const char *value);
/* JSON with Cache-Control: no-store. Takes no reference. */
void oauth_send_json(h2o_req_t *req, int status, json_t *body);
/* {"error": code, "error_description": ...}; a 401 invalid_client also gets
   WWW-Authenticate: Basic. Returns status. */
int oauth_send_error(h2o_req_t *req, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* An HTML page with the security headers (CSP with `form_action` added to 'self' when not
   NULL, no framing, no caching, OAUTH_REFERRER_POLICY). `body` is the inside of <body>. */
void oauth_send_page(h2o_req_t *req, int status, const char *title, const char *body,
                     const char *form_action);
/* An error page (before the redirect URI is trusted): the message is escaped. */
int oauth_error_page(h2o_req_t *req, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* 302/303 to `location`. */
void oauth_send_redirect(h2o_req_t *req, int status, const char *location);
/* Wipe the string value under `key` of a response object that carried a secret (jansson keeps
   its own copy), before it is freed. */
void oauth_json_wipe(json_t *obj, const char *key);
/* Append s HTML-escaped. */
int oauth_html_escape(struct buf *b, const char *s);
/* Append s form/query-encoded. */
int oauth_url_encode(struct buf *b, const char *s);

/* --- requests --- */

/* The query string (GET) or the form body (POST; its Content-Type must be
   application/x-www-form-urlencoded): answers a 400 (JSON error, or an error page when `html`)
   and returns false when it cannot be parsed. */
bool oauth_read_form(h2o_req_t *req, bool html, struct oauth_form *f);
h2o_iovec_t oauth_header(h2o_req_t *req, const char *name, size_t len);
/* The value of cookie `name` copied into out, or false. */
bool oauth_cookie(h2o_req_t *req, const char *name, char *out, size_t size);
/* The login cookie's name for this issuer. */
const char *oauth_login_cookie_name(const struct oauth_ctx *o);
/* The user of the browser's login session, if any (and still enabled); login_hash receives the
   session's key. */
bool oauth_login_user(struct oauth_ctx *o, h2o_req_t *req, struct store_user *u,
                      char login_hash[TOKEN_HASH_SIZE]);
/* A POST from a page of ours: its Origin (when sent) must be the issuer; "null" (a hidden
   origin) is refused like a foreign one. Answers 403 naming the Origin if not. */
bool oauth_same_origin(struct oauth_ctx *o, h2o_req_t *req);

/* A back-channel request (token, revocation, introspection) once its client is authenticated:
   answer it and return the status. */
typedef int (*oauth_client_next)(struct oauth_ctx *o, const struct config *cfg, h2o_req_t *req,
                                 const struct oauth_form *f, const struct store_client *c);
/* Read the form of a back-channel request and authenticate its client (client_secret_basic,
   client_secret_post or none), then call next with both: at once for a public client, after
   the argon2id check on the thread pool for a secret (an unknown client_id with a secret costs
   the same time). Refusals are answered here (401 invalid_client, 400 invalid_request).
   `require_secret`: public clients are refused (introspection). Returns the status sent, or 0
   while the secret is checked (the form, the client and a reference to cfg stay in the
   request's pool until the answer). */
int oauth_client_auth(struct oauth_ctx *o, struct config *cfg, h2o_req_t *req, bool require_secret,
                      oauth_client_next next);

/* Check `secret` against an argon2id string (`hash` NULL: spend the same time, then fail) on
   libuv's thread pool; done_cb then runs on the worker's thread, unless the request ended first
   (arg is then not touched). Returns 0 or ERR_NOMEM. */
typedef void (*oauth_verify_cb)(struct oauth_ctx *o, h2o_req_t *req, void *arg, bool ok);
int oauth_verify_secret(struct oauth_ctx *o, h2o_req_t *req, const char *hash, const char *secret,
                        oauth_verify_cb done_cb, void *arg);

/* --- clients --- */

/* Is `resource` one of our MCP resources (issuer + "/mcp" or "/mcp/<configured server>")? */
bool oauth_resource_known(struct oauth_ctx *o, const struct config *cfg, const char *resource);
/* Is every scope of the space-separated list in auth.scopes? ei names the first one that is
   not. */
bool oauth_scope_allowed(const struct config *cfg, const char *scope, struct err_info *ei);
/* The words of a space-separated scope list: sets *word and *len to the next one and moves
 *cursor past it; false at the end. */
bool oauth_scope_next(const char **cursor, const char **word, size_t *len);
/* Whether the space-separated list holds exactly this word. */
bool oauth_scope_has(const char *list, const char *word, size_t len);
/* The name to show for a client. */
const char *oauth_client_name(const struct store_client *c);
/* Does the client's registered metadata list this redirect URI? */
bool oauth_client_redirect_ok(const struct store_client *c, const char *uri);

/* Put the clients of auth.clients into the store (replacing earlier versions). */
int oauth_clients_sync(struct store *st, const struct config *cfg, struct err_info *ei);

/* --- endpoints --- */

/* RFC 8414 metadata; `openid`: as /.well-known/openid-configuration, with the fields OpenID
   Connect Discovery requires on top. */
int oauth_metadata(struct oauth_ctx *o, const struct config *cfg, h2o_req_t *req, bool openid);
int oauth_protected_resource(struct oauth_ctx *o, const struct config *cfg, h2o_req_t *req,
                             const char *server);
int oauth_authorize(struct oauth_ctx *o, struct config *cfg, h2o_req_t *req);
int oauth_login(struct oauth_ctx *o, struct config *cfg, h2o_req_t *req);
/* The browser signed in as u (by password or SSO, `how` says which for the log): record a login
   session, set its cookie and send the browser on (303) to the consent page of the pending
   authorization request `authz_id`. Returns the status sent. */
int oauth_login_complete(struct oauth_ctx *o, const struct config *cfg, h2o_req_t *req,
                         const struct store_user *u, const char *authz_id, const char *how);
/* Is authz_id a pending authorization request? Otherwise answers an error page. */
bool oauth_authz_pending(struct oauth_ctx *o, h2o_req_t *req, const char *authz_id);
int oauth_consent(struct oauth_ctx *o, const struct config *cfg, h2o_req_t *req);
int oauth_token(struct oauth_ctx *o, struct config *cfg, h2o_req_t *req);
int oauth_register(struct oauth_ctx *o, const struct config *cfg, h2o_req_t *req);
int oauth_revoke(struct oauth_ctx *o, struct config *cfg, h2o_req_t *req);
int oauth_introspect(struct oauth_ctx *o, struct config *cfg, h2o_req_t *req);

/* --- CIMD --- */

/* Is this client_id a CIMD URL (https with a path)? */
bool oauth_cimd_client_id(const char *client_id);
/* Fetch (or take from the store's cache) the client behind a CIMD client_id, then call
   done_cb on the worker thread with the outcome (0 and the client, or an error and a message)
   — unless the request ended first, in which case done_cb is not called. Returns 0 (done_cb
   will run, possibly before this returns) or an error. */
typedef void (*oauth_cimd_cb)(struct oauth_ctx *o, h2o_req_t *req, void *arg, int err,
                              const char *msg);
int oauth_cimd_resolve(struct oauth_ctx *o, const struct config *cfg, h2o_req_t *req,
                       const char *client_id, oauth_cimd_cb done_cb, void *arg);
void oauth_cimd_shutdown(struct oauth_ctx *o);

/* --- SSO (sso_http.c; the relying party itself is sso.h) --- */

/* GET /oauth/sso/<provider>?authz=... (`name` is the rest of the path) and GET
   /oauth/sso/callback. Return the status sent, or 0 while an identity provider is asked. */
int oauth_sso_start(struct oauth_ctx *o, struct config *cfg, h2o_req_t *req, const char *name);
int oauth_sso_callback(struct oauth_ctx *o, struct config *cfg, h2o_req_t *req);
/* At shutdown: cancel what waits on a provider (those requests are answered 503) and free the
   relying party (its curl handles close on the loop). */
void oauth_sso_shutdown(struct oauth_ctx *o);

/* --- Gatehouse as an upstream server's OAuth client (upstream.c) --- */

/* GET /oauth/upstream/<server>/start?t=..., GET /oauth/upstream/callback and GET
   /oauth/upstream/client.json. Return the status sent, or 0 while the server or its
   authorization server is asked. */
int oauth_upstream_start(struct oauth_ctx *o, struct config *cfg, h2o_req_t *req,
                         const char *server);
int oauth_upstream_callback(struct oauth_ctx *o, struct config *cfg, h2o_req_t *req);
int oauth_upstream_client_metadata(struct oauth_ctx *o, h2o_req_t *req);
/* At shutdown: the flows still waiting are answered 503. */
void oauth_upstream_shutdown(struct oauth_ctx *o);
/* The protected-resource metadata URLs of an MCP server's URL, in the order to try them
   (path-inserted, then root): their count (0: not an http(s) URL). */
int oauth_upstream_prm_urls(const char *server_url, char out[][1024]);
/* The metadata URLs of an authorization server's issuer, in the specification's order (RFC 8414
   path-inserted, OpenID Connect path-inserted, OpenID Connect path-appended; without a path the
   two root ones): their count. */
int oauth_upstream_asm_urls(const char *issuer, char out[][1024]);
/* Does a protected-resource document's `resource` cover the server's URL (the same URL, or a
   parent of it on the same origin cut at a path segment)? */
bool oauth_upstream_resource_covers(const char *resource, const char *server_url);

#endif
