/*
 * The OAuth side of the HTTP server: the per-worker context, the dispatcher of /oauth/... and
 * /.well-known/..., the discovery documents (RFC 8414, RFC 9728), the JWKS, the bearer check in
 * front of /mcp (RFC 6750 with RFC 9728's resource_metadata), and the response and request
 * helpers the endpoints share.
 */
#include "oauth/oauth-int.h"
#include "core/http_reason.h"
#include "core/log.h"
#include "core/secret.h"
#include "oauth/sso.h"
#include "upstream/fetch.h"

#include <sodium.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define SWEEP_INTERVAL_S 60

int64_t oauth_now(void)
{
    return (int64_t)time(NULL);
}

/* ---- set-up ---- */

static int first_key_cb(const struct store_key *k, void *arg)
{
    (void)k;
    *(bool *)arg = true;
    return 1;
}

int oauth_prepare(const struct config *cfg, unsigned char master[AUTH_MASTER_KEY_LEN],
                  struct err_info *ei)
{
    const char *db = cfg->store.sqlite ? cfg->store.sqlite : "gatehouse.db";
    char keyfile[1024];
    if (cfg->store.key_file)
        snprintf(keyfile, sizeof(keyfile), "%s", cfg->store.key_file);
    else
        snprintf(keyfile, sizeof(keyfile), "%s.key", db);
    int err = auth_master_key_load(keyfile, true, master, ei);
    if (err)
        return err;
    struct store *st = NULL;
    if ((err = store_open(db, &st, ei)) != 0)
        return err;
    if ((err = auth_master_key_verify(st, master, keyfile, ei)) != 0) {
        store_close(st);
        return err;
    }
    bool have = false;
    err = store_key_list(st, first_key_cb, &have);
    if (err >= 0 && !have) {
        char kid[64];
        err = auth_key_rotate(st, master, cfg->auth.signing_alg ? cfg->auth.signing_alg : "ES256",
                              kid, ei);
        if (err == 0)
            log_msg(LOG_INFO, "auth", "created the first signing key %s", kid);
    } else if (err > 0) {
        err = 0;
    }
    if (err == 0)
        err = oauth_clients_sync(st, cfg, ei);
    store_close(st);
    return err;
}

int oauth_ctx_new(uv_loop_t *loop, const unsigned char master[AUTH_MASTER_KEY_LEN],
                  const char *issuer, struct config *cfg, struct oauth_ctx **out,
                  struct err_info *ei)
{
    struct oauth_ctx *o = calloc(1, sizeof(*o));
    if (o == NULL)
        return ERR_NOMEM;
    o->loop = loop;
    memcpy(o->master, master, sizeof(o->master));
    snprintf(o->issuer, sizeof(o->issuer), "%s", issuer);
    o->secure_cookie = strncmp(issuer, "https://", 8) == 0;
    /* The providers (and their secrets) are read once: auth settings change on restart only. */
    o->cfg0 = config_ref(cfg);
    int err = store_open(cfg->store.sqlite ? cfg->store.sqlite : "gatehouse.db", &o->st, ei);
    if (err == 0)
        err = auth_validator_new(o->st, master, issuer, cfg->auth.access_token_ttl_s, &o->v, ei);
    /* The fetcher of CIMD documents, made now so that a bad outbound.ca_file stops the start. */
    if (err == 0 && (err = fetcher_new(loop, &o->fetcher)) != 0)
        err_info_set(ei, err, 0, 0, "cannot set up outbound requests: %s", err_str(err));
    if (err == 0 && cfg->outbound.ca_file)
        err = fetcher_trust(o->fetcher, cfg->outbound.ca_file, ei);
    if (err == 0 && cfg->auth.nproviders > 0)
        err = sso_new(loop, o->cfg0, issuer, o->st, &o->sso, ei);
    if (err) {
        oauth_ctx_free(o);
        return err;
    }
    *out = o;
    return 0;
}

void oauth_ctx_shutdown(struct oauth_ctx *o)
{
    if (o == NULL)
        return;
    o->closing = true;
    oauth_cimd_shutdown(o);
    oauth_sso_shutdown(o);
    oauth_upstream_shutdown(o);
}

void oauth_ctx_free(struct oauth_ctx *o)
{
    if (o == NULL)
        return;
    sso_free(o->sso); /* only when the worker never started (shutdown frees these) */
    fetcher_free(o->fetcher);
    auth_validator_free(o->v);
    store_close(o->st);
    if (o->cfg0)
        config_unref(o->cfg0);
    sodium_memzero(o->master, sizeof(o->master));
    free(o);
}

/* ---- responses ---- */

void oauth_add_header(h2o_req_t *req, const char *name, const char *value)
{
    /* h2o keeps the pointer: the value is copied into the request's pool. */
    h2o_iovec_t v = h2o_strdup(&req->pool, value, strlen(value));
    h2o_add_header_by_str(&req->pool, &req->res.headers, name, strlen(name), 0, NULL, v.base,
                          v.len);
}

static void send_text(h2o_req_t *req, int status, const char *ctype, const char *body, size_t len)
{
    req->res.status = status;
    req->res.reason = http_reason(status);
    oauth_add_header(req, "content-type", ctype);
    oauth_add_header(req, "cache-control", "no-store");
    oauth_add_header(req, "pragma", "no-cache");
    req->res.content_length = len;
    h2o_send_inline(req, body, len);
}

void oauth_send_json(h2o_req_t *req, int status, json_t *body)
{
    char *text = json_dumps(body, JSON_COMPACT);
    if (text == NULL) {
        send_text(req, 500, "application/json", "{\"error\":\"server_error\"}", 24);
        return;
    }
    send_text(req, status, "application/json", text, strlen(text));
    free(text);
}

/* Every refusal is logged with its cause and the endpoint, so that an operator sees what the
   client was told (descriptions name the client or user where it matters, never a secret). */
static void log_refusal(h2o_req_t *req, int status, const char *code, const char *msg)
{
    json_t *f =
        json_pack("{s:i, s:s, s:s, s:s%}", "status", status, "error", code, "error_description",
                  msg, "path", req->path_normalized.base, req->path_normalized.len);
    log_fields(LOG_INFO, "oauth_refused", f); /* takes f, even NULL */
}

int oauth_send_error(h2o_req_t *req, int status, const char *code, const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (status == 401)
        oauth_add_header(req, "www-authenticate", "Basic realm=\"gatehouse\"");
    log_refusal(req, status, code, msg);
    json_t *e = json_pack("{s:s, s:s}", "error", code, "error_description", msg);
    oauth_send_json(req, status, e);
    json_decref(e);
    return status;
}

void oauth_json_wipe(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    if (json_is_string(v))
        sodium_memzero((void *)(uintptr_t)json_string_value(v), json_string_length(v));
}

int oauth_html_escape(struct buf *b, const char *s)
{
    int err = 0;
    for (; *s && err == 0; s++) {
        switch (*s) {
        case '<':
            err = buf_append_str(b, "&lt;");
            break;
        case '>':
            err = buf_append_str(b, "&gt;");
            break;
        case '&':
            err = buf_append_str(b, "&amp;");
            break;
        case '"':
            err = buf_append_str(b, "&quot;");
            break;
        case '\'':
            err = buf_append_str(b, "&#39;");
            break;
        default:
            err = buf_append(b, s, 1);
        }
    }
    return err;
}

int oauth_url_encode(struct buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    int err = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p && err == 0; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '.' || *p == '_' || *p == '~') {
            err = buf_append(b, p, 1);
        } else {
            char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};
            err = buf_append(b, e, 3);
        }
    }
    return err;
}

void oauth_send_page(h2o_req_t *req, int status, const char *title, const char *body,
                     const char *form_action)
{
    struct buf b;
    buf_init(&b, OAUTH_HTML_MAX);
    buf_append_str(&b, "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                       "<meta name=\"viewport\" content=\"width=device-width\"><title>");
    oauth_html_escape(&b, title);
    buf_append_str(&b, "</title><style>body{font-family:sans-serif;max-width:32em;margin:3em "
                       "auto;padding:0 1em}input,button{font-size:1em;margin:.3em 0}"
                       "label{display:block}code{word-break:break-all}a.sso{display:inline-block;"
                       "padding:.4em 1em;border:1px solid #555;border-radius:4px;background:#eee;"
                       "color:inherit;text-decoration:none}</style></head><body>\n");
    buf_append_str(&b, body);
    buf_append_str(&b, "\n</body></html>\n");
    char csp[OAUTH_URL_MAX + 200];
    snprintf(csp, sizeof(csp),
             "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'%s%s; "
             "frame-ancestors 'none'; base-uri 'none'",
             form_action ? " " : "", form_action ? form_action : "");
    oauth_add_header(req, "content-security-policy", csp);
    oauth_add_header(req, "x-frame-options", "DENY");
    oauth_add_header(req, "referrer-policy", OAUTH_REFERRER_POLICY);
    oauth_add_header(req, "x-content-type-options", "nosniff");
    send_text(req, status, "text/html; charset=utf-8", b.data ? b.data : "", b.len);
    buf_release(&b);
}

int oauth_error_page(h2o_req_t *req, int status, const char *fmt, ...)
{
    char msg[800];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    log_refusal(req, status, "page", msg);
    struct buf b;
    buf_init(&b, 4096);
    buf_append_str(&b, "<h1>Authorization refused</h1>\n<p id=\"error\">");
    oauth_html_escape(&b, msg);
    buf_append_str(&b, "</p>\n<p>Return to the application and try again; if this persists, "
                       "tell its developer the message above.</p>");
    oauth_send_page(req, status, "Authorization refused", b.data ? b.data : "", NULL);
    buf_release(&b);
    return status;
}

void oauth_send_redirect(h2o_req_t *req, int status, const char *location)
{
    oauth_add_header(req, "location", location);
    oauth_add_header(req, "referrer-policy", OAUTH_REFERRER_POLICY);
    send_text(req, status, "text/plain", "", 0);
}

/* ---- requests ---- */

h2o_iovec_t oauth_header(h2o_req_t *req, const char *name, size_t len)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, name, len, -1);
    return i < 0 ? h2o_iovec_init(NULL, 0) : req->headers.entries[i].value;
}

bool oauth_read_form(h2o_req_t *req, bool html, struct oauth_form *f)
{
    const char *s = "";
    size_t len = 0;
    if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST"))) {
        h2o_iovec_t ct = oauth_header(req, H2O_STRLIT("content-type"));
        if (ct.base == NULL || ct.len < 33 ||
            strncasecmp(ct.base, "application/x-www-form-urlencoded", 33) != 0) {
            if (html)
                oauth_error_page(req, 415, "the form must be application/x-www-form-urlencoded");
            else
                oauth_send_error(req, 400, "invalid_request",
                                 "the Content-Type must be application/x-www-form-urlencoded");
            return false;
        }
        s = req->entity.base ? req->entity.base : "";
        len = req->entity.len;
    } else if (req->query_at != SIZE_MAX) {
        s = req->path.base + req->query_at + 1;
        len = req->path.len - req->query_at - 1;
    }
    struct err_info ei = {0};
    if (oauth_form_parse(s, len, f, &ei) != 0) {
        if (html)
            oauth_error_page(req, 400, "the request's parameters are malformed: %s", ei.msg);
        else
            oauth_send_error(req, 400, "invalid_request", "malformed parameters: %s", ei.msg);
        return false;
    }
    return true;
}

bool oauth_cookie(h2o_req_t *req, const char *name, char *out, size_t size)
{
    size_t nlen = strlen(name);
    for (ssize_t i = -1; (i = h2o_find_header(&req->headers, H2O_TOKEN_COOKIE, i)) != -1;) {
        h2o_iovec_t v = req->headers.entries[i].value;
        size_t p = 0;
        while (p < v.len) {
            while (p < v.len && (v.base[p] == ' ' || v.base[p] == ';'))
                p++;
            size_t end = p;
            while (end < v.len && v.base[end] != ';')
                end++;
            if (end - p > nlen && memcmp(v.base + p, name, nlen) == 0 && v.base[p + nlen] == '=') {
                size_t vl = end - p - nlen - 1;
                if (vl == 0 || vl >= size)
                    return false;
                memcpy(out, v.base + p + nlen + 1, vl);
                out[vl] = '\0';
                return true;
            }
            p = end;
        }
    }
    return false;
}

const char *oauth_login_cookie_name(const struct oauth_ctx *o)
{
    return o->secure_cookie ? "__Host-gh_login" : "gh_login";
}

bool oauth_same_origin(struct oauth_ctx *o, h2o_req_t *req)
{
    h2o_iovec_t origin = oauth_header(req, H2O_STRLIT("origin"));
    if (origin.base == NULL ||
        (origin.len == strlen(o->issuer) && strncasecmp(origin.base, o->issuer, origin.len) == 0))
        return true;
    /* "null" is what a browser sends when the posting page's origin is hidden from us (a
       sandboxed frame, a data: URL, a page whose referrer policy withholds its origin): it may
       be any site, so it is refused like one. Our own pages never cause it (OAUTH_REFERRER_POLICY
       keeps the origin on same-origin posts). */
    if (h2o_memis(origin.base, origin.len, H2O_STRLIT("null"))) {
        oauth_error_page(req, 403,
                         "the page that posted this form hid its origin (Origin: null), so it may "
                         "be another site; forms are accepted only from pages of %s",
                         o->issuer);
        return false;
    }
    oauth_error_page(req, 403,
                     "this form was posted from another site (Origin %.*s); forms are accepted "
                     "only from %s",
                     (int)(origin.len > 200 ? 200 : origin.len), origin.base, o->issuer);
    return false;
}

/* ---- discovery ---- */

static json_t *string_array(char *const *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

static json_t *scopes_supported(const struct config *cfg)
{
    if (cfg->auth.nscopes == 0)
        return json_pack("[s]", "mcp");
    return string_array(cfg->auth.scopes, cfg->auth.nscopes);
}

/* The distinct "alg" of the keys in our JWKS: what the tokens we sign are signed with. */
static json_t *signing_algs(struct oauth_ctx *o)
{
    json_t *algs = json_array();
    const struct auth_keyring *kr = auth_validator_keyring(o->v);
    json_t *jwks = kr ? auth_keyring_jwks(kr) : NULL;
    size_t i, j;
    json_t *k, *a;
    json_array_foreach(json_object_get(jwks, "keys"), i, k)
    {
        const char *alg = json_string_value(json_object_get(k, "alg"));
        bool seen = alg == NULL;
        json_array_foreach(algs, j, a) seen |= alg && strcmp(json_string_value(a), alg) == 0;
        if (!seen)
            json_array_append_new(algs, json_string(alg));
    }
    json_decref(jwks);
    return algs;
}

int oauth_metadata(struct oauth_ctx *o, const struct config *cfg, h2o_req_t *req, bool openid)
{
    char url[OAUTH_ISSUER_MAX + 64];
    json_t *m = json_object();
    json_object_set_new(m, "issuer", json_string(o->issuer));
#define EP(key, path)                                                                              \
    do {                                                                                           \
        snprintf(url, sizeof(url), "%s%s", o->issuer, path);                                       \
        json_object_set_new(m, key, json_string(url));                                             \
    } while (0)
    EP("authorization_endpoint", "/oauth/authorize");
    EP("token_endpoint", "/oauth/token");
    if (cfg->auth.dynamic_registration)
        EP("registration_endpoint", "/oauth/register");
    EP("revocation_endpoint", "/oauth/revoke");
    EP("introspection_endpoint", "/oauth/introspect");
    EP("jwks_uri", "/oauth/jwks");
#undef EP
    json_object_set_new(m, "scopes_supported", scopes_supported(cfg));
    json_object_set_new(m, "response_types_supported", json_pack("[s]", "code"));
    json_object_set_new(m, "response_modes_supported", json_pack("[s]", "query"));
    json_object_set_new(
        m, "grant_types_supported",
        json_pack("[s,s,s]", "authorization_code", "refresh_token", "client_credentials"));
    json_t *methods = json_pack("[s,s,s]", "client_secret_basic", "client_secret_post", "none");
    json_object_set(m, "token_endpoint_auth_methods_supported", methods);
    json_object_set(m, "revocation_endpoint_auth_methods_supported", methods);
    json_object_set_new(m, "introspection_endpoint_auth_methods_supported",
                        json_pack("[s,s]", "client_secret_basic", "client_secret_post"));
    json_decref(methods);
    json_object_set_new(m, "code_challenge_methods_supported", json_pack("[s]", "S256"));
    json_object_set_new(m, "authorization_response_iss_parameter_supported", json_true());
    json_object_set_new(m, "client_id_metadata_document_supported", json_boolean(cfg->auth.cimd));
    if (openid) {
        /* What OpenID Connect Discovery 1.0 §3 requires beyond RFC 8414, and only what is true:
           a user's "sub" (user:<id>) is the same for every client, and our tokens are signed
           with these algorithms. No ID token or userinfo is served (scopes_supported has no
           "openid"), so neither is the RS256 that an OpenID Provider must offer. */
        json_object_set_new(m, "subject_types_supported", json_pack("[s]", "public"));
        json_object_set_new(m, "id_token_signing_alg_values_supported", signing_algs(o));
    }
    oauth_send_json(req, 200, m);
    json_decref(m);
    return 200;
}

int oauth_protected_resource(struct oauth_ctx *o, const struct config *cfg, h2o_req_t *req,
                             const char *server)
{
    if (server != NULL && config_find_server(cfg, server) == NULL)
        return oauth_send_error(req, 404, "not_found",
                                "no server named \"%.64s\" behind this "
                                "gateway",
                                server);
    char resource[OAUTH_ISSUER_MAX + CONFIG_NAME_MAX + 8];
    snprintf(resource, sizeof(resource), "%s/mcp%s%s", o->issuer, server ? "/" : "",
             server ? server : "");
    json_t *m =
        json_pack("{s:s, s:[s], s:o, s:[s], s:s}", "resource", resource, "authorization_servers",
                  o->issuer, "scopes_supported", scopes_supported(cfg), "bearer_methods_supported",
                  "header", "resource_name", server ? server : "Gatehouse MCP gateway");
    oauth_send_json(req, 200, m);
    json_decref(m);
    return 200;
}

static int jwks(struct oauth_ctx *o, h2o_req_t *req)
{
    const struct auth_keyring *kr = auth_validator_keyring(o->v);
    json_t *k = kr ? auth_keyring_jwks(kr) : NULL;
    if (k == NULL)
        return oauth_send_error(req, 503, "temporarily_unavailable", "no signing key is loaded");
    /* Public and cacheable, unlike everything else here. */
    char *text = json_dumps(k, JSON_COMPACT);
    json_decref(k);
    if (text == NULL)
        return oauth_send_error(req, 500, "server_error", "out of memory");
    req->res.status = 200;
    req->res.reason = "OK";
    oauth_add_header(req, "content-type", "application/jwk-set+json");
    oauth_add_header(req, "cache-control", "max-age=300");
    req->res.content_length = strlen(text);
    h2o_send_inline(req, text, strlen(text));
    free(text);
    return 200;
}

/* ---- dispatch ---- */

#define WK_PR "/.well-known/oauth-protected-resource"
#define SSO_PREFIX "/oauth/sso/"
#define UP_PREFIX "/oauth/upstream/"

bool oauth_owns_path(const char *path, size_t len)
{
    return (len >= 7 && memcmp(path, "/oauth/", 7) == 0) ||
           (len >= 13 && memcmp(path, "/.well-known/", 13) == 0);
}

static bool path_is(h2o_iovec_t p, const char *s)
{
    return h2o_memis(p.base, p.len, s, strlen(s));
}

static bool method_is(h2o_req_t *req, const char *m)
{
    return h2o_memis(req->method.base, req->method.len, m, strlen(m));
}

int oauth_handle(struct oauth_ctx *o, struct config *cfg, h2o_req_t *req)
{
    h2o_iovec_t p = req->path_normalized;
    if (!cfg->auth.enabled)
        return oauth_send_error(req, 404, "not_found",
                                "authentication is not enabled on this gateway (auth.enabled)");
    int64_t now = oauth_now();
    if (now >= o->next_sweep) {
        o->next_sweep = now + SWEEP_INTERVAL_S;
        store_sweep(o->st, now);
    }
    bool get = method_is(req, "GET") || method_is(req, "HEAD");
    bool post = method_is(req, "POST");
    if (path_is(p, "/.well-known/oauth-authorization-server") ||
        path_is(p, "/.well-known/openid-configuration"))
        return get ? oauth_metadata(o, cfg, req, path_is(p, "/.well-known/openid-configuration"))
                   : oauth_send_error(req, 405, "invalid_request", "use GET");
    if (path_is(p, WK_PR) || path_is(p, WK_PR "/mcp"))
        return oauth_protected_resource(o, cfg, req, NULL);
    if (p.len > sizeof(WK_PR "/mcp/") - 1 &&
        memcmp(p.base, WK_PR "/mcp/", sizeof(WK_PR "/mcp/") - 1) == 0) {
        char name[CONFIG_NAME_MAX + 1];
        size_t n = p.len - (sizeof(WK_PR "/mcp/") - 1);
        if (n > CONFIG_NAME_MAX)
            return oauth_send_error(req, 404, "not_found", "no such server");
        memcpy(name, p.base + sizeof(WK_PR "/mcp/") - 1, n);
        name[n] = '\0';
        return oauth_protected_resource(o, cfg, req, name);
    }
    if (path_is(p, "/oauth/authorize"))
        return get || post ? oauth_authorize(o, cfg, req)
                           : oauth_error_page(req, 405, "use GET on /oauth/authorize");
    if (path_is(p, "/oauth/login"))
        return post ? oauth_login(o, cfg, req)
                    : oauth_error_page(req, 405, "the login form is posted");
    if (path_is(p, "/oauth/consent"))
        return oauth_consent(o, cfg, req);
    if (path_is(p, "/oauth/token"))
        return post
                   ? oauth_token(o, cfg, req)
                   : oauth_send_error(req, 405, "invalid_request", "the token endpoint takes POST");
    if (path_is(p, "/oauth/register"))
        return post ? oauth_register(o, cfg, req)
                    : oauth_send_error(req, 405, "invalid_request", "registration takes POST");
    if (path_is(p, "/oauth/revoke"))
        return post ? oauth_revoke(o, cfg, req)
                    : oauth_send_error(req, 405, "invalid_request", "revocation takes POST");
    if (path_is(p, "/oauth/introspect"))
        return post ? oauth_introspect(o, cfg, req)
                    : oauth_send_error(req, 405, "invalid_request", "introspection takes POST");
    if (path_is(p, "/oauth/jwks"))
        return jwks(o, req);
    if (p.len > sizeof(UP_PREFIX) - 1 && memcmp(p.base, UP_PREFIX, sizeof(UP_PREFIX) - 1) == 0) {
        if (!get)
            return oauth_error_page(req, 405, "use GET on %s", UP_PREFIX "...");
        if (path_is(p, UP_PREFIX "callback"))
            return oauth_upstream_callback(o, cfg, req);
        if (path_is(p, UP_PREFIX "client.json"))
            return oauth_upstream_client_metadata(o, req);
        /* <server>/start */
        size_t n = p.len - (sizeof(UP_PREFIX) - 1);
        const char *name = p.base + sizeof(UP_PREFIX) - 1;
        char server[CONFIG_NAME_MAX + 1];
        if (n <= 6 || n - 6 > CONFIG_NAME_MAX || memcmp(name + n - 6, "/start", 6) != 0)
            return oauth_error_page(req, 404, "nothing here");
        memcpy(server, name, n - 6);
        server[n - 6] = '\0';
        return oauth_upstream_start(o, cfg, req, server);
    }
    if (p.len > sizeof(SSO_PREFIX) - 1 && memcmp(p.base, SSO_PREFIX, sizeof(SSO_PREFIX) - 1) == 0) {
        if (!get)
            return oauth_error_page(req, 405, "use GET on %s", SSO_PREFIX "...");
        if (path_is(p, SSO_CALLBACK_PATH))
            return oauth_sso_callback(o, cfg, req);
        char name[CONFIG_NAME_MAX + 1];
        size_t n = p.len - (sizeof(SSO_PREFIX) - 1);
        if (n > CONFIG_NAME_MAX)
            return oauth_error_page(req, 404, "no such identity provider");
        memcpy(name, p.base + sizeof(SSO_PREFIX) - 1, n);
        name[n] = '\0';
        return oauth_sso_start(o, cfg, req, name);
    }
    return oauth_send_error(req, 404, "not_found", "nothing here");
}

/* ---- the bearer check on /mcp ---- */

/* A quoted-string for WWW-Authenticate: no quote, backslash or control character inside. */
static void quoted(char *out, size_t size, const char *s)
{
    size_t n = 0;
    for (; *s && n + 1 < size; s++)
        out[n++] = (*s == '"' || *s == '\\' || (unsigned char)*s < 0x20) ? '\'' : *s;
    out[n] = '\0';
}

static bool query_has_token(h2o_req_t *req)
{
    if (req->query_at == SIZE_MAX)
        return false;
    const char *q = req->path.base + req->query_at + 1;
    size_t len = req->path.len - req->query_at - 1;
    for (size_t i = 0; i + 13 <= len; i++)
        if ((i == 0 || q[i - 1] == '&') && memcmp(q + i, "access_token=", 13) == 0)
            return true;
    return false;
}

/* 503 with Retry-After and a JSON-RPC error (the /mcp endpoint's kind of answer) naming the
   store that did not answer. */
static void oauth_send_unavailable(h2o_req_t *req, const char *msg)
{
    oauth_add_header(req, "retry-after", "1");
    json_t *e = json_pack("{s:s, s:n, s:{s:i, s:s}}", "jsonrpc", "2.0", "id", "error", "code",
                          -32603, "message", msg[0] ? msg : "the store is unavailable; retry");
    req->res.status = 503;
    oauth_send_json(req, 503, e);
    json_decref(e);
}

static void resource_of(const struct oauth_ctx *o, const char *server, char *out, size_t n)
{
    snprintf(out, n, "%s/mcp%s%s", o->issuer, server ? "/" : "", server ? server : "");
}

int oauth_lookup_new(struct oauth_ctx *o, h2o_req_t *req, const char *server,
                     struct auth_lookup **out)
{
    char resource[OAUTH_ISSUER_MAX + CONFIG_NAME_MAX + 8];
    resource_of(o, server, resource, sizeof(resource));
    h2o_iovec_t a = oauth_header(req, H2O_STRLIT("authorization"));
    return auth_lookup_new(o->v, a.base, a.base ? a.len : 0, resource, out);
}

void oauth_lookup_apply(struct oauth_ctx *o, struct auth_lookup *l)
{
    auth_lookup_apply(o->v, l);
}

bool oauth_authenticate(struct oauth_ctx *o, const struct config *cfg, h2o_req_t *req,
                        const char *server, struct principal *p)
{
    char resource[OAUTH_ISSUER_MAX + CONFIG_NAME_MAX + 8];
    resource_of(o, server, resource, sizeof(resource));
    char hdr[1400];
    int n = snprintf(hdr, sizeof(hdr),
                     "Bearer resource_metadata=\"%s/.well-known/"
                     "oauth-protected-resource/mcp%s%s\"",
                     o->issuer, server ? "/" : "", server ? server : "");
    const char *required = cfg->auth.required_scope ? cfg->auth.required_scope : "mcp";
    if (query_has_token(req)) {
        snprintf(hdr + n, sizeof(hdr) - (size_t)n, ", error=\"invalid_request\"");
        oauth_add_header(req, "www-authenticate", hdr);
        oauth_send_error(req, 400, "invalid_request",
                         "an access token in the query string is refused (it ends up in logs and "
                         "histories); send it in the Authorization header");
        return false;
    }
    h2o_iovec_t a = oauth_header(req, H2O_STRLIT("authorization"));
    struct err_info ei = {0};
    enum auth_verdict v =
        auth_validate(o->v, a.base, a.base ? a.len : 0, resource, required, p, &ei);
    if (v == AUTH_OK)
        return true;
    if (v == AUTH_UNAVAILABLE) {
        oauth_send_unavailable(req, ei.msg);
        return false;
    }
    char desc[600];
    quoted(desc, sizeof(desc), ei.msg[0] ? ei.msg : "authentication required");
    int status = 401;
    const char *code = "invalid_token";
    if (v == AUTH_MISSING) {
        snprintf(hdr + n, sizeof(hdr) - (size_t)n, ", scope=\"%s\"", required);
        code = "unauthorized";
    } else if (v == AUTH_INSUFFICIENT_SCOPE) {
        status = 403;
        code = "insufficient_scope";
        snprintf(hdr + n, sizeof(hdr) - (size_t)n,
                 ", error=\"insufficient_scope\", scope=\"%s\", error_description=\"%s\"", required,
                 desc);
    } else {
        snprintf(hdr + n, sizeof(hdr) - (size_t)n,
                 ", error=\"invalid_token\", "
                 "error_description=\"%s\"",
                 desc);
    }
    oauth_add_header(req, "www-authenticate", hdr);
    json_t *e = json_pack("{s:s, s:s}", "error", code, "error_description", desc);
    req->res.status = status;
    oauth_send_json(req, status, e);
    json_decref(e);
    return false;
}

bool oauth_authenticate_certificate(struct oauth_ctx *o, h2o_req_t *req, const char *server,
                                    const char *refusal, const char *account,
                                    const char *credential_id, int64_t not_after,
                                    struct principal *p)
{
    struct err_info ei = {0};
    enum auth_verdict v =
        refusal == NULL ? auth_validate_account(o->v, account, credential_id, not_after, p, &ei)
                        : AUTH_INVALID;
    if (v == AUTH_OK)
        return true;
    if (v == AUTH_UNAVAILABLE) {
        oauth_send_unavailable(req, ei.msg);
        return false;
    }
    char desc[600], hdr[1400];
    quoted(desc, sizeof(desc), refusal ? refusal : ei.msg[0] ? ei.msg : "certificate refused");
    snprintf(hdr, sizeof(hdr),
             "Bearer resource_metadata=\"%s/.well-known/oauth-protected-resource/mcp%s%s\", "
             "error=\"invalid_token\", error_description=\"%s\"",
             o->issuer, server ? "/" : "", server ? server : "", desc);
    oauth_add_header(req, "www-authenticate", hdr);
    json_t *e = json_pack("{s:s, s:s}", "error", "invalid_token", "error_description", desc);
    req->res.status = 401;
    oauth_send_json(req, 401, e);
    json_decref(e);
    return false;
}
