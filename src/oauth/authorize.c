/*
 * The browser part of the authorization code flow: /oauth/authorize validates the request,
 * /oauth/login signs the user in (local password form; the SSO buttons lead to
 * /oauth/sso/<provider>), /oauth/consent shows what is asked and turns an approval into a code.
 *
 * Until the redirect URI is known to be the client's, errors are shown as a page (an unverified
 * URI never receives a redirect); after, they go back to the client with error,
 * error_description, state and iss (RFC 9207). Every piece of browser state is in the store's
 * ephemeral table under the SHA-256 of a 256-bit random value, so any worker of any replica can
 * serve the next step:
 *   "authz"  the pending authorization request (taken, i.e. single use, at the consent decision)
 *   "login"  a browser login session (the cookie's value)
 *   "loginform" a sign-in form's token, bound to the request (single use: taken when the form
 *            is posted, whatever the outcome; a page shown again gets a new one)
 *   "csrf"   a consent form's token, bound to the login session and the request (single use)
 * So a sign-in form, once posted, cannot be posted again (a replay signs nobody in), and every
 * POST must come from our own origin when the browser says where it comes from (Origin).
 */
#include "oauth/oauth-int.h"
#include "core/log.h"
#include "core/rand.h"
#include "core/secret.h"

#include <netdb.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AUTHZ_TTL_S 900 /* time to sign in and decide */
#define RAND_TOKEN_SIZE 48

/* ---- small helpers ---- */

static void new_token(char out[RAND_TOKEN_SIZE], char hash[TOKEN_HASH_SIZE])
{
    rand_token(out, RAND_TOKEN_SIZE, 32);
    token_hash(out, strlen(out), hash);
}

static void hash_of(const char *s, char hash[TOKEN_HASH_SIZE])
{
    token_hash(s, strlen(s), hash);
}

static const char *jstr(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

/* The origin (scheme://host[:port]) of a URL, for CSP form-action. */
static void url_origin(const char *url, char *out, size_t size)
{
    struct oauth_url u;
    if (oauth_url_parse(url, &u, NULL) != 0) {
        out[0] = '\0';
        return;
    }
    snprintf(out, size, "%.*s", (int)u.path_off, url);
}

/* Send the browser back to the client: redirect_uri?k=v&...&iss=<issuer>. */
static int redirect_back(struct oauth_ctx *o, h2o_req_t *req, const char *redirect_uri,
                         const char *state, const char *k1, const char *v1, const char *k2,
                         const char *v2)
{
    struct buf b;
    buf_init(&b, 8192);
    buf_append_str(&b, redirect_uri);
    buf_append_str(&b, strchr(redirect_uri, '?') ? "&" : "?");
    buf_printf(&b, "%s=", k1);
    oauth_url_encode(&b, v1);
    if (k2 && v2) {
        buf_printf(&b, "&%s=", k2);
        oauth_url_encode(&b, v2);
    }
    if (state && *state) {
        buf_append_str(&b, "&state=");
        oauth_url_encode(&b, state);
    }
    buf_append_str(&b, "&iss=");
    oauth_url_encode(&b, o->issuer);
    buf_append(&b, "", 1);
    oauth_send_redirect(req, 302, b.data);
    buf_release(&b);
    return 302;
}

static int redirect_error(struct oauth_ctx *o, h2o_req_t *req, const char *redirect_uri,
                          const char *state, const char *error, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static int redirect_error(struct oauth_ctx *o, h2o_req_t *req, const char *redirect_uri,
                          const char *state, const char *error, const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return redirect_back(o, req, redirect_uri, state, "error", error, "error_description", msg);
}

/* The user of the browser's login session, if any (and still enabled). login_hash receives
   the session's key. */
bool oauth_login_user(struct oauth_ctx *o, h2o_req_t *req, struct store_user *u,
                      char login_hash[TOKEN_HASH_SIZE])
{
    char cookie[RAND_TOKEN_SIZE];
    if (!oauth_cookie(req, oauth_login_cookie_name(o), cookie, sizeof(cookie)))
        return false;
    hash_of(cookie, login_hash);
    sodium_memzero(cookie, sizeof(cookie));
    json_t *v = NULL;
    if (store_ephemeral_get(o->st, "login", login_hash, &v) != 0)
        return false;
    int64_t uid = json_integer_value(json_object_get(v, "user_id"));
    json_decref(v);
    struct store_user got;
    if (store_user_get(o->st, uid, &got) != 0 || got.disabled)
        return false;
    *u = got;
    return true;
}

/* ---- pages ---- */

/* The start of the SSO round trip for a pending request: /oauth/sso/<name>?authz=<id>. */
static void sso_start_url(struct buf *b, const char *provider, const char *authz_id)
{
    buf_append_str(b, "/oauth/sso/");
    oauth_url_encode(b, provider);
    buf_append_str(b, "?authz=");
    oauth_url_encode(b, authz_id);
}

/* The sign-in page; with an error, answered with `status` (else 200). When the only way in is
   one identity provider, there is nothing to choose: the browser goes straight to it. */
static int login_page_as(struct oauth_ctx *o, const struct config *cfg, h2o_req_t *req,
                         const char *authz_id, const json_t *authz, const char *error, int status)
{
    if (error == NULL && !cfg->auth.local_login && cfg->auth.nproviders == 1) {
        struct buf loc;
        buf_init(&loc, 1024);
        sso_start_url(&loc, cfg->auth.providers[0].name, authz_id);
        buf_append(&loc, "", 1);
        oauth_send_redirect(req, 302, loc.data ? loc.data : "/");
        buf_release(&loc);
        return 302;
    }
    char csrf[RAND_TOKEN_SIZE] = "", csrf_hash[TOKEN_HASH_SIZE];
    if (cfg->auth.local_login) {
        new_token(csrf, csrf_hash);
        json_t *rec = json_pack("{s:s}", "authz", authz_id);
        int err =
            rec ? store_ephemeral_put(o->st, "loginform", csrf_hash, rec, oauth_now() + AUTHZ_TTL_S)
                : ERR_NOMEM;
        json_decref(rec);
        if (err) {
            sodium_memzero(csrf, sizeof(csrf));
            return oauth_error_page(req, 500, "cannot record the sign-in form: %s", err_str(err));
        }
    }
    struct buf b;
    buf_init(&b, OAUTH_HTML_MAX);
    buf_append_str(&b, "<h1>Sign in to Gatehouse</h1>\n<p><strong>");
    oauth_html_escape(&b, jstr(authz, "client_name"));
    buf_append_str(&b, "</strong> asks to use your tools.</p>\n");
    if (error) {
        buf_append_str(&b, "<p id=\"error\" role=\"alert\">");
        oauth_html_escape(&b, error);
        buf_append_str(&b, "</p>\n");
    }
    if (cfg->auth.local_login) {
        buf_append_str(&b, "<form method=\"post\" action=\"/oauth/login\">\n"
                           "<input type=\"hidden\" name=\"authz\" value=\"");
        oauth_html_escape(&b, authz_id);
        buf_append_str(&b, "\"><input type=\"hidden\" name=\"csrf\" value=\"");
        oauth_html_escape(&b, csrf);
        sodium_memzero(csrf, sizeof(csrf));
        buf_append_str(&b, "\">\n<label>User name <input name=\"username\" "
                           "autocomplete=\"username\" required autofocus></label>\n"
                           "<label>Password <input name=\"password\" type=\"password\" "
                           "autocomplete=\"current-password\" required></label>\n"
                           "<button type=\"submit\">Sign in</button>\n</form>\n");
    }
    for (size_t i = 0; i < cfg->auth.nproviders; i++) {
        /* A link drawn as a button, not a form: a form's redirect to the provider would need
           the provider's origin in the page's CSP form-action. */
        buf_append_str(&b, "<p><a class=\"sso\" href=\"");
        sso_start_url(&b, cfg->auth.providers[i].name, authz_id);
        buf_append_str(&b, "\" role=\"button\">Sign in with ");
        oauth_html_escape(&b, cfg->auth.providers[i].name);
        buf_append_str(&b, "</a></p>\n");
    }
    if (!cfg->auth.local_login && cfg->auth.nproviders == 0)
        buf_append_str(&b, "<p>No sign-in method is configured (auth.login).</p>");
    oauth_send_page(req, error ? status : 200, "Sign in", b.data ? b.data : "", NULL);
    buf_release(&b);
    return error ? status : 200;
}

static int login_page(struct oauth_ctx *o, const struct config *cfg, h2o_req_t *req,
                      const char *authz_id, const json_t *authz, const char *error)
{
    return login_page_as(o, cfg, req, authz_id, authz, error, 401);
}

static int consent_page(struct oauth_ctx *o, h2o_req_t *req, const char *authz_id,
                        const json_t *authz, const struct store_user *u,
                        const char login_hash[TOKEN_HASH_SIZE])
{
    char csrf[RAND_TOKEN_SIZE], csrf_hash[TOKEN_HASH_SIZE];
    new_token(csrf, csrf_hash);
    json_t *rec = json_pack("{s:s, s:s}", "login", login_hash, "authz", authz_id);
    int err = store_ephemeral_put(o->st, "csrf", csrf_hash, rec, oauth_now() + AUTHZ_TTL_S);
    json_decref(rec);
    if (err)
        return oauth_error_page(req, 500, "cannot record the consent form: %s", err_str(err));
    const char *client_id = jstr(authz, "client_id");
    struct buf b;
    buf_init(&b, OAUTH_HTML_MAX);
    buf_append_str(&b, "<h1>Allow access?</h1>\n<p>Signed in as <strong>");
    oauth_html_escape(&b, u->name);
    buf_append_str(&b, "</strong>.</p>\n<p><strong id=\"client-name\">");
    oauth_html_escape(&b, jstr(authz, "client_name"));
    buf_append_str(&b,
                   "</strong> asks to act on your behalf.</p>\n<dl>\n<dt>Client</dt><dd><code>");
    oauth_html_escape(&b, client_id);
    buf_append_str(&b, "</code>");
    if (oauth_cimd_client_id(client_id)) {
        struct oauth_url cu;
        if (oauth_url_parse(client_id, &cu, NULL) == 0) {
            buf_append_str(&b, " (described by <strong>");
            oauth_html_escape(&b, cu.host);
            buf_append_str(&b, "</strong>)");
        }
    }
    buf_append_str(&b, "</dd>\n<dt>Returns to</dt><dd><code>");
    oauth_html_escape(&b, jstr(authz, "redirect_uri"));
    buf_append_str(&b, "</code></dd>\n<dt>Resource</dt><dd><code id=\"resource\">");
    oauth_html_escape(&b, jstr(authz, "resource"));
    buf_append_str(&b, "</code></dd>\n<dt>Scopes</dt><dd><code id=\"scope\">");
    oauth_html_escape(&b, jstr(authz, "scope"));
    buf_append_str(&b, "</code></dd>\n</dl>\n");
    static const char *const decisions[][2] = {{"approve", "Allow"}, {"deny", "Deny"}};
    for (int i = 0; i < 2; i++) {
        buf_printf(&b,
                   "<form method=\"post\" action=\"/oauth/consent\" id=\"%s\">"
                   "<input type=\"hidden\" name=\"authz\" value=\"",
                   decisions[i][0]);
        oauth_html_escape(&b, authz_id);
        buf_append_str(&b, "\"><input type=\"hidden\" name=\"csrf\" value=\"");
        oauth_html_escape(&b, csrf);
        buf_printf(&b,
                   "\"><input type=\"hidden\" name=\"decision\" value=\"%s\">"
                   "<button type=\"submit\">%s</button></form>\n",
                   decisions[i][0], decisions[i][1]);
    }
    sodium_memzero(csrf, sizeof(csrf));
    char origin[OAUTH_URL_MAX];
    url_origin(jstr(authz, "redirect_uri"), origin, sizeof(origin));
    oauth_send_page(req, 200, "Allow access?", b.data ? b.data : "", origin[0] ? origin : NULL);
    buf_release(&b);
    return 200;
}

/* Login or consent for a pending request, depending on whether the browser is signed in. */
static int next_step(struct oauth_ctx *o, const struct config *cfg, h2o_req_t *req,
                     const char *authz_id, const json_t *authz)
{
    struct store_user u;
    char login_hash[TOKEN_HASH_SIZE];
    if (oauth_login_user(o, req, &u, login_hash))
        return consent_page(o, req, authz_id, authz, &u, login_hash);
    return login_page(o, cfg, req, authz_id, authz, NULL);
}

/* ---- /oauth/authorize ---- */

struct authz_req {
    struct oauth_form f;
    struct config *cfg; /* the snapshot the request started with */
};

static void authz_req_dispose(void *p)
{
    struct authz_req *a = p;
    oauth_form_release(&a->f);
    config_unref(a->cfg);
}

static bool valid_challenge(const char *c)
{
    size_t n = strlen(c);
    if (n != 43) /* base64url of a SHA-256, the only S256 value */
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((c[i] >= 'A' && c[i] <= 'Z') || (c[i] >= 'a' && c[i] <= 'z') ||
              (c[i] >= '0' && c[i] <= '9') || c[i] == '-' || c[i] == '_'))
            return false;
    return true;
}

/* The client is known: check the rest and record the pending request. */
static int authorize_client(struct oauth_ctx *o, const struct config *cfg, h2o_req_t *req,
                            const struct oauth_form *f, const struct store_client *c)
{
    const char *client_id = c->client_id;
    const char *redirect_uri = oauth_form_get(f, "redirect_uri");
    if (c->revoked)
        return oauth_error_page(req, 400, "the client \"%s\" was revoked", client_id);
    if (redirect_uri == NULL)
        return oauth_error_page(req, 400, "redirect_uri is required");
    if (!oauth_client_redirect_ok(c, redirect_uri)) {
        const char *first =
            json_string_value(json_array_get(json_object_get(c->metadata, "redirect_uris"), 0));
        return oauth_error_page(req, 400,
                                "redirect_uri \"%.300s\" does not match the registered "
                                "%s for client \"%.200s\"",
                                redirect_uri, first ? first : "(none)", client_id);
    }
    /* From here on, errors go back to the client. */
    const char *state = oauth_form_get(f, "state");
    const char *rt = oauth_form_get(f, "response_type");
    if (rt == NULL || strcmp(rt, "code") != 0)
        return redirect_error(o, req, redirect_uri, state, "unsupported_response_type",
                              "response_type must be code (got %.40s)", rt ? rt : "nothing");
    const char *challenge = oauth_form_get(f, "code_challenge");
    const char *method = oauth_form_get(f, "code_challenge_method");
    if (challenge == NULL)
        return redirect_error(o, req, redirect_uri, state, "invalid_request",
                              "PKCE is required: send code_challenge with code_challenge_method "
                              "S256");
    if (method == NULL || strcmp(method, "S256") != 0)
        return redirect_error(o, req, redirect_uri, state, "invalid_request",
                              "code_challenge_method must be S256 (%s is refused)",
                              method ? "plain" : "a missing method, meaning plain,");
    if (!valid_challenge(challenge))
        return redirect_error(o, req, redirect_uri, state, "invalid_request",
                              "code_challenge must be the 43-character base64url SHA-256 of the "
                              "code_verifier");
    const char *resource = oauth_form_get(f, "resource");
    if (resource == NULL)
        return redirect_error(o, req, redirect_uri, state, "invalid_target",
                              "resource is required (RFC 8707): the MCP endpoint's URL, e.g. "
                              "%s/mcp",
                              o->issuer);
    if (!oauth_resource_known(o, cfg, resource))
        return redirect_error(o, req, redirect_uri, state, "invalid_target",
                              "resource \"%.300s\" is not an MCP endpoint of this gateway (%s/mcp "
                              "or %s/mcp/<server>)",
                              resource, o->issuer, o->issuer);
    const char *scope = oauth_form_get(f, "scope");
    if (scope == NULL)
        scope = cfg->auth.required_scope ? cfg->auth.required_scope : "mcp";
    struct err_info ei = {0};
    if (strlen(scope) > STORE_SCOPE_MAX || !oauth_scope_allowed(cfg, scope, &ei))
        return redirect_error(o, req, redirect_uri, state, "invalid_scope", "%s",
                              ei.msg[0] ? ei.msg : "scope is too long");
    if (state && strlen(state) > 1024)
        return redirect_error(o, req, redirect_uri, NULL, "invalid_request",
                              "state is longer than 1024 bytes");
    char id[RAND_TOKEN_SIZE], id_hash[TOKEN_HASH_SIZE];
    new_token(id, id_hash);
    json_t *rec =
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "client_id", client_id, "client_name",
                  oauth_client_name(c), "redirect_uri", redirect_uri, "state", state ? state : "",
                  "code_challenge", challenge, "resource", resource, "scope", scope);
    int err = rec ? store_ephemeral_put(o->st, "authz", id_hash, rec, oauth_now() + AUTHZ_TTL_S)
                  : ERR_NOMEM;
    int status = err ? redirect_error(o, req, redirect_uri, state, "server_error",
                                      "cannot record the request: %s", err_str(err))
                     : next_step(o, cfg, req, id, rec);
    json_decref(rec);
    return status;
}

static void cimd_done_cb(struct oauth_ctx *o, h2o_req_t *req, void *arg, int err, const char *msg)
{
    struct authz_req *a = arg;
    const char *client_id = oauth_form_get(&a->f, "client_id");
    if (err) {
        oauth_error_page(req, 400, "the client's metadata document %s could not be used: %s",
                         client_id, msg);
        return;
    }
    struct store_client c = {0};
    if (store_client_get(o->st, client_id, &c) != 0) {
        oauth_error_page(req, 500, "the client's metadata document was fetched but not stored");
        return;
    }
    authorize_client(o, a->cfg, req, &a->f, &c);
    store_client_release(&c);
}

int oauth_authorize(struct oauth_ctx *o, struct config *cfg, h2o_req_t *req)
{
    struct authz_req *a = h2o_mem_alloc_shared(&req->pool, sizeof(*a), authz_req_dispose);
    memset(a, 0, sizeof(*a));
    a->cfg = config_ref(cfg);
    if (!oauth_read_form(req, true, &a->f))
        return req->res.status;
    const char *client_id = oauth_form_get(&a->f, "client_id");
    if (client_id == NULL)
        return oauth_error_page(req, 400, "client_id is required");
    if (strlen(client_id) > STORE_CLIENT_ID_MAX)
        return oauth_error_page(req, 400, "client_id is longer than %d bytes", STORE_CLIENT_ID_MAX);
    if (oauth_cimd_client_id(client_id)) {
        if (!cfg->auth.cimd)
            return oauth_error_page(req, 400,
                                    "client_id \"%s\" is a metadata document URL, but "
                                    "Client ID Metadata Documents are disabled here "
                                    "(auth.registration.cimd)",
                                    client_id);
        int err = oauth_cimd_resolve(o, cfg, req, client_id, cimd_done_cb, a);
        if (err)
            return oauth_error_page(req, 503, "cannot fetch the client's metadata document: %s",
                                    err_str(err));
        return req->res.status; /* 0 while the fetch runs */
    }
    struct store_client c = {0};
    if (store_client_get(o->st, client_id, &c) != 0)
        return oauth_error_page(req, 400, "unknown client_id \"%s\": register the client first",
                                client_id);
    int status = authorize_client(o, cfg, req, &a->f, &c);
    store_client_release(&c);
    return status;
}

/* ---- /oauth/login ---- */

int oauth_login_complete(struct oauth_ctx *o, const struct config *cfg, h2o_req_t *req,
                         const struct store_user *u, const char *authz_id, const char *how)
{
    char session[RAND_TOKEN_SIZE], session_hash[TOKEN_HASH_SIZE];
    new_token(session, session_hash);
    json_t *rec = json_pack("{s:I, s:s}", "user_id", (json_int_t)u->id, "name", u->name);
    int err =
        store_ephemeral_put(o->st, "login", session_hash, rec, oauth_now() + cfg->auth.login_ttl_s);
    json_decref(rec);
    if (err) {
        sodium_memzero(session, sizeof(session));
        return oauth_error_page(req, 500, "cannot record the sign-in: %s", err_str(err));
    }
    char cookie[256];
    snprintf(cookie, sizeof(cookie), "%s=%s; Path=/; Max-Age=%u; HttpOnly; SameSite=Lax%s",
             oauth_login_cookie_name(o), session, cfg->auth.login_ttl_s,
             o->secure_cookie ? "; Secure" : "");
    sodium_memzero(session, sizeof(session));
    oauth_add_header(req, "set-cookie", cookie);
    sodium_memzero(cookie, sizeof(cookie));
    struct buf loc;
    buf_init(&loc, 512);
    buf_append_str(&loc, "/oauth/consent?authz=");
    oauth_url_encode(&loc, authz_id);
    oauth_send_redirect(req, 303, loc.data);
    buf_release(&loc);
    log_msg(LOG_INFO, "oauth", "user %s signed in (%s)", u->name, how);
    return 303;
}

bool oauth_authz_pending(struct oauth_ctx *o, h2o_req_t *req, const char *authz_id)
{
    char id_hash[TOKEN_HASH_SIZE];
    json_t *authz = NULL;
    hash_of(authz_id, id_hash);
    if (store_ephemeral_get(o->st, "authz", id_hash, &authz) != 0) {
        oauth_error_page(req, 400,
                         "this sign-in request expired or was already used; start again from the "
                         "application");
        return false;
    }
    json_decref(authz);
    return true;
}

/* ---- back-off of failed sign-ins ----
 *
 * Password guessing is slowed per user name and per client address: after FAIL_USER_FREE
 * (resp. FAIL_IP_FREE) failures, each further one closes the door for FAIL_BASE_S seconds,
 * doubling up to FAIL_MAX_S; a closed door is answered 429 before any password is hashed (the
 * right password too, so a guesser learns nothing). A success clears the user name's count.
 * The counts live in the store's ephemeral table ("loginfail", under the SHA-256 of "u:<name>"
 * or "a:<address>"), so every worker and replica sees them; the read-then-write is not atomic,
 * which can only let a few concurrent guesses through uncounted. Behind a reverse proxy every
 * browser shares the proxy's address, hence the far higher per-address allowance. */
#define FAIL_USER_FREE 5
#define FAIL_IP_FREE 50
#define FAIL_BASE_S 30
#define FAIL_MAX_S 900
#define FAIL_WINDOW_S 900 /* a count is forgotten this long after its last failure */

static void fail_key(const char *prefix, const char *v, char hash[TOKEN_HASH_SIZE])
{
    char buf[320];
    snprintf(buf, sizeof(buf), "%s:%.300s", prefix, v);
    hash_of(buf, hash);
}

static void peer_address(h2o_req_t *req, char *out, size_t size)
{
    struct sockaddr_storage ss;
    socklen_t len = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss);
    out[0] = '\0';
    if (len == 0 || h2o_socket_getnumerichost((struct sockaddr *)&ss, len, out) == SIZE_MAX)
        snprintf(out, size, "unknown");
}

/* Seconds the door stays closed for this key, 0 when open. */
static int64_t fail_wait(struct oauth_ctx *o, const char hash[TOKEN_HASH_SIZE])
{
    json_t *v = NULL;
    if (store_ephemeral_get(o->st, "loginfail", hash, &v) != 0)
        return 0;
    int64_t until = json_integer_value(json_object_get(v, "until")), now = oauth_now();
    json_decref(v);
    return until > now ? until - now : 0;
}

static void fail_count(struct oauth_ctx *o, const char hash[TOKEN_HASH_SIZE], int free_tries)
{
    json_t *v = NULL;
    int64_t n = 0, now = oauth_now(), until = 0;
    if (store_ephemeral_get(o->st, "loginfail", hash, &v) == 0)
        n = json_integer_value(json_object_get(v, "n"));
    json_decref(v);
    n++;
    if (n >= free_tries) {
        int64_t wait = FAIL_BASE_S;
        for (int64_t i = n - free_tries; i > 0 && wait < FAIL_MAX_S; i--)
            wait *= 2;
        until = now + (wait < FAIL_MAX_S ? wait : FAIL_MAX_S);
    }
    json_t *rec = json_pack("{s:I, s:I}", "n", (json_int_t)n, "until", (json_int_t)until);
    if (rec)
        store_ephemeral_put(o->st, "loginfail", hash, rec,
                            (until > now ? until : now) + FAIL_WINDOW_S);
    json_decref(rec);
}

/* A sign-in whose password is being checked; in the request's pool. */
struct login_call {
    struct oauth_form f;
    struct config *cfg;
    json_t *authz;
    struct store_user u;
    char user_key[TOKEN_HASH_SIZE], addr_key[TOKEN_HASH_SIZE];
};

static void login_call_dispose(void *p)
{
    struct login_call *l = p;
    oauth_form_release(&l->f);
    json_decref(l->authz);
    config_unref(l->cfg);
}

static void password_checked_cb(struct oauth_ctx *o, h2o_req_t *req, void *arg, bool ok)
{
    struct login_call *l = arg;
    const char *id = oauth_form_get(&l->f, "authz"), *name = oauth_form_get(&l->f, "username");
    if (!ok || l->u.disabled) {
        /* One answer for every cause: no oracle for user names or disabled accounts. */
        fail_count(o, l->user_key, FAIL_USER_FREE);
        fail_count(o, l->addr_key, FAIL_IP_FREE);
        login_page(o, l->cfg, req, id, l->authz, "Wrong user name or password.");
        log_msg(LOG_INFO, "oauth", "local sign-in refused for user \"%.64s\"", name);
        return;
    }
    store_ephemeral_delete(o->st, "loginfail", l->user_key);
    oauth_login_complete(o, l->cfg, req, &l->u, id, "local");
}

int oauth_login(struct oauth_ctx *o, struct config *cfg, h2o_req_t *req)
{
    if (!oauth_same_origin(o, req))
        return 403;
    struct login_call *l = h2o_mem_alloc_shared(&req->pool, sizeof(*l), login_call_dispose);
    memset(l, 0, sizeof(*l));
    l->cfg = config_ref(cfg);
    if (!oauth_read_form(req, true, &l->f))
        return req->res.status;
    const char *id = oauth_form_get(&l->f, "authz"), *csrf = oauth_form_get(&l->f, "csrf");
    const char *name = oauth_form_get(&l->f, "username"), *pw = oauth_form_get(&l->f, "password");
    char id_hash[TOKEN_HASH_SIZE], csrf_hash[TOKEN_HASH_SIZE];
    if (!cfg->auth.local_login)
        return oauth_error_page(req, 403, "local sign-in is disabled (auth.login.local)");
    if (id == NULL || csrf == NULL)
        return oauth_error_page(req, 400, "the sign-in form is incomplete (authz, csrf)");
    /* The form's token is spent now, whatever comes next: a replay of this post finds nothing. */
    json_t *form = NULL;
    hash_of(csrf, csrf_hash);
    if (store_ephemeral_take(o->st, "loginform", csrf_hash, &form) != 0)
        return oauth_error_page(req, 403,
                                "the sign-in form's CSRF token is unknown, expired or already "
                                "used: this sign-in form was already used (a form is accepted "
                                "once) or is not one of ours; start again from the application");
    bool ours = strcmp(jstr(form, "authz"), id) == 0;
    json_decref(form);
    if (!ours)
        return oauth_error_page(req, 403,
                                "the sign-in form's CSRF token was issued for another "
                                "authorization request; start again from the application");
    hash_of(id, id_hash);
    if (store_ephemeral_get(o->st, "authz", id_hash, &l->authz) != 0)
        return oauth_error_page(req, 400,
                                "this sign-in request expired or was already used; start again "
                                "from the application");
    if (name == NULL || pw == NULL)
        return login_page(o, cfg, req, id, l->authz, "Enter a user name and a password.");
    char addr[NI_MAXHOST];
    peer_address(req, addr, sizeof(addr));
    fail_key("u", name, l->user_key);
    fail_key("a", addr, l->addr_key);
    int64_t wait;
    if ((wait = fail_wait(o, l->user_key)) > 0 || (wait = fail_wait(o, l->addr_key)) > 0) {
        bool user = fail_wait(o, l->user_key) > 0;
        log_msg(LOG_WARN, "oauth",
                "local sign-in for user \"%.64s\" from %s held back: too many "
                "failures %s",
                name, addr, user ? "for this user name" : "from this address");
        struct buf msg;
        buf_init(&msg, 256);
        buf_printf(&msg, "Too many failed sign-ins for this %s; wait %lld s and try again.",
                   user ? "user name" : "address", (long long)wait);
        login_page_as(o, cfg, req, id, l->authz, msg.data ? msg.data : "Too many failed sign-ins.",
                      429);
        buf_release(&msg);
        return 429;
    }
    /* The argon2id check runs on the thread pool (an unknown user costs the same time). */
    char hash[SECRET_HASH_MAX];
    bool found = store_user_password_hash(o->st, name, &l->u, hash) == 0;
    int err = oauth_verify_secret(o, req, found ? hash : NULL, pw, password_checked_cb, l);
    if (found)
        sodium_memzero(hash, sizeof(hash));
    if (err)
        return oauth_error_page(req, 500, "cannot check the password: %s", err_str(err));
    return 0;
}

/* ---- /oauth/consent ---- */

static int consent_show(struct oauth_ctx *o, const struct config *cfg, h2o_req_t *req,
                        const char *id)
{
    char id_hash[TOKEN_HASH_SIZE];
    json_t *authz = NULL;
    hash_of(id, id_hash);
    if (store_ephemeral_get(o->st, "authz", id_hash, &authz) != 0)
        return oauth_error_page(req, 400,
                                "this authorization request expired or was already "
                                "decided; start again from the application");
    int status = next_step(o, cfg, req, id, authz);
    json_decref(authz);
    return status;
}

static int issue_code(struct oauth_ctx *o, const struct config *cfg, h2o_req_t *req,
                      const json_t *authz, const struct store_user *u)
{
    const char *redirect_uri = jstr(authz, "redirect_uri"), *state = jstr(authz, "state");
    struct store_code c = {0};
    snprintf(c.client_id, sizeof(c.client_id), "%s", jstr(authz, "client_id"));
    c.user_id = u->id;
    snprintf(c.redirect_uri, sizeof(c.redirect_uri), "%s", redirect_uri);
    snprintf(c.code_challenge, sizeof(c.code_challenge), "%s", jstr(authz, "code_challenge"));
    snprintf(c.resource, sizeof(c.resource), "%s", jstr(authz, "resource"));
    snprintf(c.scope, sizeof(c.scope), "%s", jstr(authz, "scope"));
    c.expires_at = oauth_now() + (cfg->auth.code_ttl_s ? cfg->auth.code_ttl_s : 60);
    char code[RAND_TOKEN_SIZE], code_hash[TOKEN_HASH_SIZE];
    new_token(code, code_hash);
    int err = store_code_put(o->st, code_hash, &c);
    int status = err ? redirect_error(o, req, redirect_uri, state, "server_error",
                                      "cannot record the authorization code: %s", err_str(err))
                     : redirect_back(o, req, redirect_uri, state, "code", code, NULL, NULL);
    sodium_memzero(code, sizeof(code));
    if (!err)
        log_msg(LOG_INFO, "oauth", "user %s authorized client %s for %s", u->name, c.client_id,
                c.resource);
    return status;
}

int oauth_consent(struct oauth_ctx *o, const struct config *cfg, h2o_req_t *req)
{
    bool post = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST"));
    if (post && !oauth_same_origin(o, req))
        return 403;
    struct oauth_form f;
    if (!oauth_read_form(req, true, &f))
        return req->res.status;
    int status;
    json_t *csrf_rec = NULL, *authz = NULL;
    const char *id = oauth_form_get(&f, "authz");
    if (id == NULL) {
        status = oauth_error_page(req, 400, "authz is missing");
        goto out;
    }
    if (!post) {
        status = consent_show(o, cfg, req, id);
        goto out;
    }
    const char *csrf = oauth_form_get(&f, "csrf"), *decision = oauth_form_get(&f, "decision");
    char csrf_hash[TOKEN_HASH_SIZE], id_hash[TOKEN_HASH_SIZE], login_hash[TOKEN_HASH_SIZE];
    struct store_user u;
    if (csrf == NULL || decision == NULL) {
        status = oauth_error_page(req, 400, "the consent form is incomplete (csrf, decision)");
        goto out;
    }
    hash_of(csrf, csrf_hash);
    hash_of(id, id_hash);
    if (store_ephemeral_take(o->st, "csrf", csrf_hash, &csrf_rec) != 0) {
        status = oauth_error_page(req, 403,
                                  "the consent form's CSRF token is unknown, expired or "
                                  "already used; start again from the application");
        goto out;
    }
    if (!oauth_login_user(o, req, &u, login_hash)) {
        status = oauth_error_page(req, 403,
                                  "you are not signed in any more; start again from "
                                  "the application");
        goto out;
    }
    if (strcmp(jstr(csrf_rec, "login"), login_hash) != 0 ||
        strcmp(jstr(csrf_rec, "authz"), id) != 0) {
        status = oauth_error_page(req, 403,
                                  "the consent form was not issued to this sign-in "
                                  "session for this request");
        goto out;
    }
    if (store_ephemeral_take(o->st, "authz", id_hash, &authz) != 0) {
        status = oauth_error_page(req, 400,
                                  "this authorization request expired or was already "
                                  "decided; start again from the application");
        goto out;
    }
    if (strcmp(decision, "approve") == 0)
        status = issue_code(o, cfg, req, authz, &u);
    else
        status = redirect_error(o, req, jstr(authz, "redirect_uri"), jstr(authz, "state"),
                                "access_denied", "the user denied the request");
out:
    json_decref(csrf_rec);
    json_decref(authz);
    oauth_form_release(&f);
    return status;
}
