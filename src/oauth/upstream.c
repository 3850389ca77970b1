/*
 * Gatehouse as the OAuth client of an upstream MCP server (a server with auth.oauth): the
 * browser round trip that connects one user's account at the server's authorization server, and
 * keeps the tokens in the vault (src/vault). The MCP authorization specification (2025-11-25 and
 * 2026-07-28, client side) is the contract:
 *
 *   GET /oauth/upstream/<server>/start?t=<start token>
 *       t is sealed with the master key, short-lived and single-use, and names the user and the
 *       server (oauth_upstream_start_url makes it). The gateway then asks the server without a
 *       token and reads its 401's WWW-Authenticate (resource_metadata, scope); fetches the
 *       protected-resource metadata (RFC 9728: the header's URL, else the path-inserted then the
 *       root well-known URL) and checks its `resource` is the server's URL; fetches the
 *       authorization server's metadata (RFC 8414 and OpenID Connect discovery, in the
 *       specification's order) and checks its `issuer`; refuses an authorization server without
 *       S256 in code_challenge_methods_supported; gets a client (the configured one, a Client ID
 *       Metadata Document the gateway serves, or RFC 7591 dynamic registration); and redirects
 *       the browser to the authorization endpoint with PKCE S256, state, the RFC 8707 resource
 *       and the scope the specification picks (the challenge's, else the metadata's
 *       scopes_supported, else the configured scopes, else none; offline_access added when the
 *       authorization server offers it).
 *   GET /oauth/upstream/callback?code&state[&iss]
 *       the pending flow is taken by state (single use) and must come back to the browser that
 *       started it (a cookie only that browser holds); iss must be the recorded issuer when
 *       present, and present when the authorization server advertised it (RFC 9207). The code is
 *       exchanged (client_secret_basic, client_secret_post or none as the registration says),
 *       the answer kept in the vault, and the connection checked with one authenticated
 *       request to the server before the page says "connected".
 *   GET /oauth/upstream/client.json
 *       the gateway's own Client ID Metadata Document.
 *
 * Every outbound request goes through the worker's fetcher (curl on this loop, never blocking
 * it) and reaches only public addresses unless the server's auth.oauth.allow_private says
 * otherwise. A pending flow is kept sealed in the store's ephemeral rows (it holds the PKCE
 * verifier and maybe a client secret). Nothing secret is logged, shown or put in a URL.
 */
#include "oauth/oauth-int.h"
#include "auth/auth.h"
#include "core/log.h"
#include "core/rand.h"
#include "core/secret.h"
#include "upstream/fetch.h"
#include "vault/vault.h"

#include <ctype.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define UP_URL_MAX 1024     /* oauth-int.h says 1024 too */
#define UP_FLOW_TTL_S 600   /* from the redirect to the callback */
#define UP_START_TTL_S 900  /* a start link */
#define UP_TIMEOUT_MS 10000 /* each outbound request */
#define UP_MAX_SIZE (256u << 10)
#define UP_COOKIE_LEN 43

enum up_step { UP_PROBE, UP_PRM, UP_ASM, UP_REGISTER, UP_TOKEN, UP_CHECK };

/* The probe (without a token) and the check (with the new one) speak to the server as the
   gateway's sessions do: 2026-07-28's server/discover first, with its headers, and the legacy
   initialize when the server does not take that (as the gateway's own era probe falls back). */
#define DISCOVER_BODY                                                                              \
    "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"server/discover\",\"params\":{\"_meta\":{"         \
    "\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\",\"io.modelcontextprotocol/"        \
    "clientInfo\":{\"name\":\"gatehouse\",\"version\":\"1\"},\"io.modelcontextprotocol/"           \
    "clientCapabilities\":{}}}}"
static const char *const discover_headers[] = {"MCP-Protocol-Version: 2026-07-28",
                                               "Mcp-Method: server/discover", NULL};

struct upflow {
    struct upflow *next;
    struct oauth_ctx *o; /* NULL once detached (shutdown) */
    h2o_req_t *req;
    struct config *cfg;
    const struct config_server *srv;
    struct fetch *fx;
    enum up_step step;
    bool legacy; /* the probe or check now sent is the legacy initialize (after server/discover) */
    int64_t user_id;
    /* discovery */
    char wa_scope[STORE_SCOPE_MAX + 1];
    char step_up[STORE_SCOPE_MAX + 1]; /* the start link's: asked for besides the granted one */
    char urls[3][UP_URL_MAX];
    int nurls, try;
    json_t *prm, *asm_; /* the metadata documents */
    char issuer[UP_URL_MAX];
    char resource[UP_URL_MAX]; /* the protected-resource document's `resource` */
    /* the client */
    char client_id[STORE_CLIENT_ID_MAX + 1];
    char *client_secret; /* secret_free */
    char auth_method[32];
    /* the callback's */
    json_t *pending; /* the opened pending record */
    char *form;      /* the token request's body (wiped) */
    char *basic;     /* its Authorization header (wiped) */
    json_t *tokens;  /* the token endpoint's answer (wiped) */
};

/* ---- pieces without the network (oauth-int.h) ---- */

/* The origin ("https://host:port") and path of an http(s) URL (no query or fragment kept). */
static bool split_url(const char *url, char *origin, size_t osize, char *path, size_t psize)
{
    const char *s = strstr(url, "://");
    if (s == NULL || (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0))
        return false;
    const char *h = s + 3, *e = h + strcspn(h, "/?#");
    if (e == h || (size_t)(e - url) >= osize)
        return false;
    memcpy(origin, url, (size_t)(e - url));
    origin[e - url] = '\0';
    size_t pl = *e == '/' ? strcspn(e, "?#") : 0;
    while (pl > 0 && e[pl - 1] == '/')
        pl--;
    if (pl >= psize)
        return false;
    memcpy(path, e, pl);
    path[pl] = '\0';
    return true;
}

int oauth_upstream_prm_urls(const char *server_url, char out[][UP_URL_MAX])
{
    char origin[384], path[512]; /* with the longest well-known part, under UP_URL_MAX */
    if (!split_url(server_url, origin, sizeof(origin), path, sizeof(path)))
        return 0;
    int n = 0;
    if (path[0])
        snprintf(out[n++], UP_URL_MAX, "%s/.well-known/oauth-protected-resource%s", origin, path);
    snprintf(out[n++], UP_URL_MAX, "%s/.well-known/oauth-protected-resource", origin);
    return n;
}

int oauth_upstream_asm_urls(const char *issuer, char out[][UP_URL_MAX])
{
    char origin[384], path[512];
    if (!split_url(issuer, origin, sizeof(origin), path, sizeof(path)))
        return 0;
    if (path[0] == '\0') {
        snprintf(out[0], UP_URL_MAX, "%s/.well-known/oauth-authorization-server", origin);
        snprintf(out[1], UP_URL_MAX, "%s/.well-known/openid-configuration", origin);
        return 2;
    }
    snprintf(out[0], UP_URL_MAX, "%s/.well-known/oauth-authorization-server%s", origin, path);
    snprintf(out[1], UP_URL_MAX, "%s/.well-known/openid-configuration%s", origin, path);
    snprintf(out[2], UP_URL_MAX, "%s%s/.well-known/openid-configuration", origin, path);
    return 3;
}

/* Does the resource a protected-resource document names cover the server's URL: the same URL
   (but for trailing slashes), or a parent of it on the same origin, cut at a path segment (RFC
   9728's document at the origin's root names the origin)? */
bool oauth_upstream_resource_covers(const char *resource, const char *server_url)
{
    size_t rl = strlen(resource), sl = strlen(server_url);
    while (rl > 0 && resource[rl - 1] == '/')
        rl--;
    while (sl > 0 && server_url[sl - 1] == '/')
        sl--;
    if (rl == 0 || rl > sl || strncmp(resource, server_url, rl) != 0 || strchr(resource, '#'))
        return false;
    const char *auth = strstr(resource, "://");
    if (auth == NULL || (size_t)(auth + 3 - resource) >= rl) /* a scheme alone covers nothing */
        return false;
    return rl == sl || server_url[rl] == '/';
}

static bool list_has(const json_t *arr, const char *s)
{
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) if (json_is_string(v) &&
                                      strcmp(json_string_value(v), s) == 0) return true;
    return false;
}

/* ---- the start link ---- */

int oauth_upstream_start_url(const unsigned char master[AUTH_MASTER_KEY_LEN], const char *issuer,
                             int64_t user_id, const char *server, const char *scope, int64_t now,
                             char *out, size_t size)
{
    char nonce[32];
    rand_token(nonce, sizeof(nonce), 16);
    if (scope != NULL && strlen(scope) > STORE_SCOPE_MAX)
        return ERR_LIMIT;
    json_t *t = json_pack("{s:I, s:s, s:I, s:s}", "u", (json_int_t)user_id, "s", server, "x",
                          (json_int_t)(now + UP_START_TTL_S), "n", nonce);
    if (t != NULL && scope != NULL && *scope)
        json_object_set_new(t, "sc", json_string(scope));
    char *text = t ? json_dumps(t, JSON_COMPACT) : NULL;
    json_decref(t);
    if (text == NULL)
        return ERR_NOMEM;
    unsigned char *sealed = NULL;
    size_t sl = 0;
    int err = auth_seal(master, text, strlen(text), &sealed, &sl);
    free(text);
    if (err)
        return err;
    size_t el = b64url_encoded_len(sl) + 1;
    char *enc = malloc(el);
    if (enc == NULL) {
        free(sealed);
        return ERR_NOMEM;
    }
    b64url_encode(enc, el, sealed, sl);
    free(sealed);
    int n = snprintf(out, size, "%s/oauth/upstream/%s/start?t=%s", issuer, server, enc);
    free(enc);
    return n < 0 || (size_t)n >= size ? ERR_LIMIT : 0;
}

/* Open a start token: 0 with *user_id, *nonce and the step-up scope (or ""), or ERR_DENIED
   (forged, another server's, expired). */
static int start_token_open(const unsigned char *master, const char *tok, const char *server,
                            int64_t now, int64_t *user_id, char nonce[32],
                            char scope[STORE_SCOPE_MAX + 1])
{
    size_t tl = strlen(tok);
    unsigned char *raw = malloc(tl + 1), *plain = NULL;
    size_t pl = 0;
    int err = ERR_DENIED;
    long rl = raw ? b64url_decode(raw, tl + 1, tok, tl) : -1;
    if (rl <= 0 || auth_unseal(master, raw, (size_t)rl, &plain, &pl) != 0)
        goto out;
    json_t *t = json_loadb((const char *)plain, pl, 0, NULL);
    const char *s = json_string_value(json_object_get(t, "s"));
    const char *n = json_string_value(json_object_get(t, "n"));
    int64_t x = json_integer_value(json_object_get(t, "x"));
    int64_t u = json_integer_value(json_object_get(t, "u"));
    if (s != NULL && n != NULL && strcmp(s, server) == 0 && x > now && u > 0 && strlen(n) < 32) {
        *user_id = u;
        snprintf(nonce, 32, "%s", n);
        const char *sc = json_string_value(json_object_get(t, "sc"));
        snprintf(scope, STORE_SCOPE_MAX + 1, "%s", sc ? sc : "");
        err = 0;
    }
    json_decref(t);
out:
    if (plain) {
        sodium_memzero(plain, pl);
        free(plain);
    }
    free(raw);
    return err;
}

/* ---- the flow's life ---- */

static void flow_unlink(struct upflow *w)
{
    if (w->o == NULL)
        return;
    for (struct upflow **p = &w->o->upflows; *p; p = &(*p)->next)
        if (*p == w) {
            *p = w->next;
            break;
        }
    w->o = NULL;
}

static void flow_dispose(void *p)
{
    struct upflow *w = p;
    if (w->fx != NULL && w->o != NULL)
        fetch_cancel(w->fx);
    flow_unlink(w);
    json_decref(w->prm);
    json_decref(w->asm_);
    if (w->pending != NULL) {
        oauth_json_wipe(w->pending, "verifier");
        oauth_json_wipe(w->pending, "client_secret");
        json_decref(w->pending);
    }
    if (w->tokens != NULL) {
        oauth_json_wipe(w->tokens, "access_token");
        oauth_json_wipe(w->tokens, "refresh_token");
        oauth_json_wipe(w->tokens, "id_token");
        json_decref(w->tokens);
    }
    if (w->form) {
        sodium_memzero(w->form, strlen(w->form));
        free(w->form);
    }
    if (w->basic) {
        sodium_memzero(w->basic, strlen(w->basic));
        free(w->basic);
    }
    secret_free(w->client_secret);
    config_unref(w->cfg);
}

static struct upflow *flow_new(struct oauth_ctx *o, struct config *cfg, h2o_req_t *req,
                               const struct config_server *srv)
{
    struct upflow *w = h2o_mem_alloc_shared(&req->pool, sizeof(*w), flow_dispose);
    memset(w, 0, sizeof(*w));
    w->o = o;
    w->req = req;
    w->cfg = config_ref(cfg);
    w->srv = srv;
    w->next = o->upflows;
    o->upflows = w;
    return w;
}

void oauth_upstream_shutdown(struct oauth_ctx *o)
{
    while (o->upflows != NULL) {
        struct upflow *w = o->upflows;
        if (w->fx != NULL)
            fetch_cancel(w->fx);
        w->fx = NULL;
        flow_unlink(w);
        h2o_req_t *req = w->req;
        req->res.status = 503;
        req->res.reason = "Service Unavailable";
        h2o_send_inline(req, H2O_STRLIT("the gateway is stopping\n"));
    }
}

/* End the flow with an error page naming the server and the cause. */
__attribute__((format(printf, 3, 4))) static void flow_fail(struct upflow *w, int status,
                                                            const char *fmt, ...)
{
    char msg[700];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    log_warn("upstream_oauth", "connecting server \"%s\" for user %lld failed: %s", w->srv->name,
             (long long)w->user_id, msg);
    oauth_error_page(w->req, status, "connecting \"%s\" failed: %s", w->srv->name, msg);
}

static const struct config_server *find_server(const struct config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->nservers; i++)
        if (strcmp(cfg->servers[i].name, name) == 0 && cfg->servers[i].oauth.enabled)
            return &cfg->servers[i];
    return NULL;
}

static void step_cb(void *arg, int err, const struct fetch_response *r, const char *why);

/* Send one request of the flow; the answer comes to step_cb. */
static void flow_fetch(struct upflow *w, const char *url, const char *method, const char *body,
                       const char *content_type, const char *authorization)
{
    struct fetch_request fr = {
        .url = url,
        .method = method,
        .body = body,
        .body_len = body ? strlen(body) : 0,
        .content_type = content_type,
        .accept = w->step == UP_PROBE || w->step == UP_CHECK ? "application/json, text/event-stream"
                                                             : "application/json",
        .authorization = authorization,
        .headers =
            (w->step == UP_PROBE || w->step == UP_CHECK) && !w->legacy ? discover_headers : NULL,
        .max_size = UP_MAX_SIZE,
        .timeout_ms = UP_TIMEOUT_MS,
        .allow_private = w->srv->oauth.allow_private,
    };
    int err = fetch_start(w->o->fetcher, &fr, step_cb, w, &w->fx);
    if (err)
        flow_fail(w, 502, "cannot send a request to %s (%s)", url, err_str(err));
}

#define INIT_BODY                                                                                  \
    "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"protocolVersion\":"     \
    "\"2025-11-25\",\"capabilities\":{},\"clientInfo\":{\"name\":\"gatehouse\",\"version\":"       \
    "\"1\"}}}"

static void next_prm(struct upflow *w)
{
    if (w->try >= w->nurls) {
        flow_fail(w, 502,
                  "the server published no protected-resource metadata (RFC 9728) at %s%s%s",
                  w->urls[0], w->nurls > 1 ? " or " : "", w->nurls > 1 ? w->urls[1] : "");
        return;
    }
    w->step = UP_PRM;
    flow_fetch(w, w->urls[w->try++], "GET", NULL, NULL, NULL);
}

static void next_asm(struct upflow *w)
{
    if (w->try >= w->nurls) {
        flow_fail(w, 502,
                  "the authorization server %s published no metadata (RFC 8414 or OpenID "
                  "Connect discovery) at any of its well-known URLs",
                  w->issuer);
        return;
    }
    w->step = UP_ASM;
    flow_fetch(w, w->urls[w->try++], "GET", NULL, NULL, NULL);
}

static void got_prm(struct upflow *w, json_t *doc)
{
    const char *res = json_string_value(json_object_get(doc, "resource"));
    json_t *as = json_object_get(doc, "authorization_servers");
    if (res == NULL || strlen(res) >= sizeof(w->resource) ||
        !oauth_upstream_resource_covers(res, w->srv->url)) {
        flow_fail(w, 502,
                  "the protected-resource metadata names resource \"%.200s\", which is neither "
                  "this server's URL %s nor a parent of it; refusing to send its tokens there",
                  res ? res : "(none)", w->srv->url);
        json_decref(doc);
        return;
    }
    const char *iss = json_string_value(json_array_get(as, 0));
    if (iss == NULL || strlen(iss) >= sizeof(w->issuer)) {
        flow_fail(w, 502, "the protected-resource metadata names no authorization_servers");
        json_decref(doc);
        return;
    }
    w->prm = doc;
    snprintf(w->resource, sizeof(w->resource), "%s", res); /* sent as published (RFC 8707) */
    snprintf(w->issuer, sizeof(w->issuer), "%s", iss);
    w->nurls = oauth_upstream_asm_urls(w->issuer, w->urls);
    w->try = 0;
    if (w->nurls == 0) {
        flow_fail(w, 502, "the authorization server \"%.200s\" is not an http(s) URL", iss);
        return;
    }
    next_asm(w);
}

static void send_authorization(struct upflow *w);

/* Keep rec (not taken) sealed with the master key in the store's ephemeral rows under
   (kind, key_hash) until expires_at. Returns 0 or ERR_*. */
static int put_sealed(struct oauth_ctx *o, const char *kind, const char *key_hash,
                      const json_t *rec, int64_t user_id, int64_t expires_at)
{
    char *text = json_dumps(rec, JSON_COMPACT);
    unsigned char *sealed = NULL;
    size_t sl = 0;
    int err = text ? auth_seal(o->master, text, strlen(text), &sealed, &sl) : ERR_NOMEM;
    if (text) {
        sodium_memzero(text, strlen(text));
        free(text);
    }
    char *enc = NULL;
    if (err == 0 && (enc = malloc(b64url_encoded_len(sl) + 1)) != NULL)
        b64url_encode(enc, b64url_encoded_len(sl) + 1, sealed, sl);
    free(sealed);
    json_t *eph = enc ? json_pack("{s:s}", "sealed", enc) : NULL;
    if (eph != NULL && user_id > 0)
        json_object_set_new(eph, "user_id", json_integer(user_id));
    free(enc);
    if (err == 0)
        err = eph ? store_ephemeral_put(o->st, kind, key_hash, eph, expires_at) : ERR_NOMEM;
    json_decref(eph);
    return err;
}

/* The record put_sealed kept (taken when `take`): 0 with *out, ERR_NOTFOUND (absent, expired),
   ERR_DENIED (it does not open). */
static int get_sealed(struct oauth_ctx *o, const char *kind, const char *key_hash, bool take,
                      json_t **out)
{
    json_t *eph = NULL, *rec = NULL;
    int err = take ? store_ephemeral_take(o->st, kind, key_hash, &eph)
                   : store_ephemeral_get(o->st, kind, key_hash, &eph);
    if (err)
        return err;
    const char *enc = json_string_value(json_object_get(eph, "sealed"));
    size_t el = enc ? strlen(enc) : 0, pl = 0;
    unsigned char *raw = enc ? malloc(el + 1) : NULL, *plain = NULL;
    long rl = raw ? b64url_decode(raw, el + 1, enc, el) : -1;
    err = ERR_DENIED;
    if (rl > 0 && auth_unseal(o->master, raw, (size_t)rl, &plain, &pl) == 0 &&
        (rec = json_loadb((const char *)plain, pl, 0, NULL)) != NULL) {
        *out = rec;
        err = 0;
    }
    if (plain) {
        sodium_memzero(plain, pl);
        free(plain);
    }
    free(raw);
    json_decref(eph);
    return err;
}

/* The key of a dynamic registration kept for reuse: (server, authorization server). */
#define UP_REG_TTL_S (30 * 86400)
static void registration_key(const struct upflow *w, char out[TOKEN_HASH_SIZE])
{
    char k[CONFIG_NAME_MAX + UP_URL_MAX + 2];
    snprintf(k, sizeof(k), "%s\n%s", w->srv->name, w->issuer);
    token_hash(k, strlen(k), out);
}

/* Form-encode into a buffer. */
static int url_add(struct buf *b, const char *name, const char *value)
{
    if (b->len > 0 && buf_append(b, "&", 1) != 0)
        return ERR_NOMEM;
    if (buf_append(b, name, strlen(name)) != 0 || buf_append(b, "=", 1) != 0)
        return ERR_NOMEM;
    return oauth_url_encode(b, value);
}

/* OpenID Connect registration's application_type (SEP-837): "web" for a gateway at an https
   URL, "native" for one reached on loopback over http (a developer's machine). */
static const char *application_type(const struct oauth_ctx *o)
{
    return o->secure_cookie ? "web" : "native";
}

static void got_asm(struct upflow *w, json_t *doc)
{
    const char *iss = json_string_value(json_object_get(doc, "issuer"));
    if (iss == NULL || strcmp(iss, w->issuer) != 0) {
        flow_fail(w, 502,
                  "the authorization server's metadata has issuer \"%.200s\", not \"%s\" whose "
                  "well-known URL served it (RFC 8414 section 3.3); refusing it",
                  iss ? iss : "(none)", w->issuer);
        json_decref(doc);
        return;
    }
    w->asm_ = doc;
    if (!list_has(json_object_get(doc, "code_challenge_methods_supported"), "S256")) {
        flow_fail(w, 502,
                  "the authorization server %s does not list S256 in "
                  "code_challenge_methods_supported; the MCP authorization specification forbids "
                  "going on without PKCE S256",
                  w->issuer);
        return;
    }
    const char *ae = json_string_value(json_object_get(doc, "authorization_endpoint"));
    const char *te = json_string_value(json_object_get(doc, "token_endpoint"));
    if (ae == NULL || te == NULL) {
        flow_fail(w, 502, "the authorization server's metadata has no %s",
                  ae == NULL ? "authorization_endpoint" : "token_endpoint");
        return;
    }
    const struct config_upstream_oauth *u = &w->srv->oauth;
    json_t *methods = json_object_get(doc, "token_endpoint_auth_methods_supported");
    if (u->registration == UPSTREAM_REG_PRE) {
        snprintf(w->client_id, sizeof(w->client_id), "%s", u->client_id);
        if (u->client_secret_file != NULL) {
            struct err_info ei = {0};
            FILE *f = fopen(u->client_secret_file, "r");
            char line[1024] = "";
            if (f == NULL || fgets(line, sizeof(line), f) == NULL) {
                if (f)
                    fclose(f);
                flow_fail(w, 500, "cannot read auth.oauth.client_secret_file %s",
                          u->client_secret_file);
                return;
            }
            fclose(f);
            line[strcspn(line, "\r\n")] = '\0';
            w->client_secret = strdup(line);
            sodium_memzero(line, sizeof(line));
            (void)ei;
            /* basic unless the server lists methods without it but with post */
            bool basic = methods == NULL || list_has(methods, "client_secret_basic") ||
                         !list_has(methods, "client_secret_post");
            snprintf(w->auth_method, sizeof(w->auth_method), "%s",
                     basic ? "client_secret_basic" : "client_secret_post");
        } else {
            snprintf(w->auth_method, sizeof(w->auth_method), "none");
        }
        send_authorization(w);
        return;
    }
    bool cimd = json_is_true(json_object_get(doc, "client_id_metadata_document_supported"));
    if (u->registration == UPSTREAM_REG_CIMD || (u->registration == UPSTREAM_REG_AUTO && cimd)) {
        if (!cimd)
            log_warn("upstream_oauth",
                     "server \"%s\": registration cimd, but %s does not advertise "
                     "client_id_metadata_document_supported; trying it anyway",
                     w->srv->name, w->issuer);
        snprintf(w->client_id, sizeof(w->client_id), "%s/oauth/upstream/client.json", w->o->issuer);
        snprintf(w->auth_method, sizeof(w->auth_method), "none");
        send_authorization(w);
        return;
    }
    const char *re = json_string_value(json_object_get(doc, "registration_endpoint"));
    if (re == NULL) {
        flow_fail(w, 502,
                  "the authorization server %s offers neither dynamic registration "
                  "(registration_endpoint) nor Client ID Metadata Documents; configure a "
                  "pre-registered client (auth.oauth.client_id)",
                  w->issuer);
        return;
    }
    /* a client registered before at this authorization server, for this server: reused (every
       user's connection would otherwise register a client of its own) */
    char rkey[TOKEN_HASH_SIZE];
    json_t *kept = NULL;
    registration_key(w, rkey);
    if (get_sealed(w->o, "upreg", rkey, false, &kept) == 0) {
        const char *id = json_string_value(json_object_get(kept, "client_id"));
        const char *sec = json_string_value(json_object_get(kept, "client_secret"));
        const char *m = json_string_value(json_object_get(kept, "auth_method"));
        if (id != NULL && m != NULL && strlen(id) < sizeof(w->client_id)) {
            snprintf(w->client_id, sizeof(w->client_id), "%s", id);
            snprintf(w->auth_method, sizeof(w->auth_method), "%s", m);
            if (sec != NULL && *sec)
                w->client_secret = strdup(sec);
            oauth_json_wipe(kept, "client_secret");
            json_decref(kept);
            send_authorization(w);
            return;
        }
        json_decref(kept);
    }
    char cb[UP_URL_MAX];
    snprintf(cb, sizeof(cb), "%s/oauth/upstream/callback", w->o->issuer);
    json_t *reg = json_pack("{s:s, s:[s], s:[s,s], s:[s], s:s, s:s}", "client_name", "Gatehouse",
                            "redirect_uris", cb, "grant_types", "authorization_code",
                            "refresh_token", "response_types", "code", "token_endpoint_auth_method",
                            "none", "application_type", application_type(w->o));
    char *body = reg ? json_dumps(reg, JSON_COMPACT) : NULL;
    json_decref(reg);
    if (body == NULL) {
        flow_fail(w, 500, "out of memory");
        return;
    }
    w->step = UP_REGISTER;
    flow_fetch(w, re, "POST", body, "application/json", NULL);
    free(body);
}

static void got_registration(struct upflow *w, json_t *doc)
{
    const char *id = json_string_value(json_object_get(doc, "client_id"));
    const char *sec = json_string_value(json_object_get(doc, "client_secret"));
    const char *m = json_string_value(json_object_get(doc, "token_endpoint_auth_method"));
    if (id == NULL || strlen(id) >= sizeof(w->client_id)) {
        flow_fail(w, 502, "the authorization server's registration answer has no client_id");
        goto out;
    }
    snprintf(w->client_id, sizeof(w->client_id), "%s", id);
    if (sec != NULL && *sec) {
        w->client_secret = strdup(sec);
        snprintf(w->auth_method, sizeof(w->auth_method), "%s",
                 m && strcmp(m, "client_secret_post") == 0 ? "client_secret_post"
                                                           : "client_secret_basic");
    } else {
        snprintf(w->auth_method, sizeof(w->auth_method), "none");
    }
    char rkey[TOKEN_HASH_SIZE];
    registration_key(w, rkey);
    json_t *keep =
        json_pack("{s:s, s:s, s:s}", "client_id", w->client_id, "client_secret",
                  w->client_secret ? w->client_secret : "", "auth_method", w->auth_method);
    if (keep == NULL || put_sealed(w->o, "upreg", rkey, keep, 0, oauth_now() + UP_REG_TTL_S) != 0)
        log_warn("upstream_oauth",
                 "server \"%s\": the registration at %s could not be kept for "
                 "reuse; the next connection registers again",
                 w->srv->name, w->issuer);
    if (keep) {
        oauth_json_wipe(keep, "client_secret");
        json_decref(keep);
    }
    send_authorization(w);
out:
    oauth_json_wipe(doc, "client_secret");
    json_decref(doc);
}

/* Append the words of `add` missing from the space-separated list in buf. */
static void scope_union(char *buf, size_t size, const char *add)
{
    const char *c = add, *word;
    size_t len;
    while (oauth_scope_next(&c, &word, &len)) {
        if (oauth_scope_has(buf, word, len))
            continue;
        size_t bl = strlen(buf);
        if (bl + 1 + len + 1 > size)
            return;
        if (bl)
            buf[bl++] = ' ';
        memcpy(buf + bl, word, len);
        buf[bl + len] = '\0';
    }
}

static const char *browser_cookie_name(const struct oauth_ctx *o)
{
    return o->secure_cookie ? "__Host-gh_upstream" : "gh_upstream";
}

static void send_authorization(struct upflow *w)
{
    const char *ae = json_string_value(json_object_get(w->asm_, "authorization_endpoint"));
    char scope[STORE_SCOPE_MAX + 1] = "";
    /* a step-up's scope (the granted one and the challenged one), else the challenge's, else
       every scope the resource lists, else the configured ones */
    if (w->step_up[0]) {
        snprintf(scope, sizeof(scope), "%s", w->step_up);
        scope_union(scope, sizeof(scope), w->wa_scope);
    } else if (w->wa_scope[0]) {
        snprintf(scope, sizeof(scope), "%s", w->wa_scope);
    } else if (json_array_size(json_object_get(w->prm, "scopes_supported")) > 0) {
        size_t i;
        json_t *v;
        json_array_foreach(json_object_get(w->prm, "scopes_supported"), i, v)
            scope_union(scope, sizeof(scope), json_string_value(v) ? json_string_value(v) : "");
    } else {
        for (size_t i = 0; i < w->srv->oauth.nscopes; i++)
            scope_union(scope, sizeof(scope), w->srv->oauth.scopes[i]);
    }
    if (scope[0] && list_has(json_object_get(w->asm_, "scopes_supported"), "offline_access"))
        scope_union(scope, sizeof(scope), "offline_access");
    unsigned char vbytes[32];
    char verifier[48], challenge[48], state[48], browser[48], cb[UP_URL_MAX];
    unsigned char digest[crypto_hash_sha256_BYTES];
    rand_bytes(vbytes, sizeof(vbytes));
    b64url_encode(verifier, sizeof(verifier), vbytes, sizeof(vbytes));
    crypto_hash_sha256(digest, (const unsigned char *)verifier, strlen(verifier));
    b64url_encode(challenge, sizeof(challenge), digest, sizeof(digest));
    rand_token(state, sizeof(state), 32);
    rand_token(browser, sizeof(browser), 32);
    snprintf(cb, sizeof(cb), "%s/oauth/upstream/callback", w->o->issuer);
    char state_hash[TOKEN_HASH_SIZE], browser_hash[TOKEN_HASH_SIZE];
    token_hash(state, strlen(state), state_hash);
    token_hash(browser, strlen(browser), browser_hash);
    bool iss_adv =
        json_is_true(json_object_get(w->asm_, "authorization_response_iss_parameter_supported"));
    json_t *rec = json_pack(
        "{s:I, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:b, s:s, s:s}", "u", (json_int_t)w->user_id,
        "server", w->srv->name, "verifier", verifier, "issuer", w->issuer, "token_endpoint",
        json_string_value(json_object_get(w->asm_, "token_endpoint")), "client_id", w->client_id,
        "client_secret", w->client_secret ? w->client_secret : "", "auth_method", w->auth_method,
        "resource", w->resource, "iss_supported", iss_adv, "browser", browser_hash, "scope", scope);
    int err =
        rec ? put_sealed(w->o, "upstream", state_hash, rec, w->user_id, oauth_now() + UP_FLOW_TTL_S)
            : ERR_NOMEM;
    if (rec) {
        oauth_json_wipe(rec, "verifier");
        oauth_json_wipe(rec, "client_secret");
        json_decref(rec);
    }
    sodium_memzero(verifier, sizeof(verifier));
    sodium_memzero(vbytes, sizeof(vbytes));
    if (err) {
        flow_fail(w, 503, "the store cannot keep the pending authorization (%s)", err_str(err));
        return;
    }
    struct buf b;
    buf_init(&b, 16384);
    int e = 0;
    e |= buf_append(&b, ae, strlen(ae));
    e |= buf_append(&b, strchr(ae, '?') ? "&" : "?", 1);
    struct buf q;
    buf_init(&q, 16384);
    e |= url_add(&q, "response_type", "code");
    e |= url_add(&q, "client_id", w->client_id);
    e |= url_add(&q, "redirect_uri", cb);
    e |= url_add(&q, "code_challenge", challenge);
    e |= url_add(&q, "code_challenge_method", "S256");
    e |= url_add(&q, "state", state);
    e |= url_add(&q, "resource", w->resource);
    if (scope[0])
        e |= url_add(&q, "scope", scope);
    e |= buf_append(&b, q.data, q.len);
    e |= buf_append(&b, "", 1);
    if (e) {
        buf_release(&q);
        buf_release(&b);
        flow_fail(w, 500, "the authorization URL is too long");
        return;
    }
    char cookie[200];
    snprintf(cookie, sizeof(cookie), "%s=%s; Path=/; Max-Age=%d; HttpOnly; SameSite=Lax%s",
             browser_cookie_name(w->o), browser, UP_FLOW_TTL_S,
             w->o->secure_cookie ? "; Secure" : "");
    oauth_add_header(w->req, "set-cookie", cookie);
    sodium_memzero(cookie, sizeof(cookie));
    sodium_memzero(browser, sizeof(browser));
    log_info("upstream_oauth", "user %lld: to %s for server \"%s\" (client %s, %s, scope \"%s\")",
             (long long)w->user_id, w->issuer, w->srv->name, w->client_id, w->auth_method, scope);
    oauth_send_redirect(w->req, 302, b.data);
    buf_release(&q);
    buf_release(&b);
}

/* ---- the callback's exchange ---- */

static void exchange(struct upflow *w, const char *code)
{
    const json_t *p = w->pending;
    const char *method = json_string_value(json_object_get(p, "auth_method"));
    const char *cid = json_string_value(json_object_get(p, "client_id"));
    const char *sec = json_string_value(json_object_get(p, "client_secret"));
    char cb[UP_URL_MAX];
    snprintf(cb, sizeof(cb), "%s/oauth/upstream/callback", w->o->issuer);
    bool basic = strcmp(method, "client_secret_basic") == 0 && sec && *sec;
    bool post = strcmp(method, "client_secret_post") == 0 && sec && *sec;
    struct buf b;
    buf_init(&b, 16384);
    int e = 0;
    e |= url_add(&b, "grant_type", "authorization_code");
    e |= url_add(&b, "code", code);
    e |= url_add(&b, "redirect_uri", cb);
    e |= url_add(&b, "code_verifier", json_string_value(json_object_get(p, "verifier")));
    e |= url_add(&b, "resource", json_string_value(json_object_get(p, "resource")));
    if (!basic)
        e |= url_add(&b, "client_id", cid);
    if (post)
        e |= url_add(&b, "client_secret", sec);
    e |= buf_append(&b, "", 1);
    if (e) {
        buf_release(&b);
        flow_fail(w, 500, "out of memory");
        return;
    }
    w->form = strdup(b.data);
    sodium_memzero(b.data, b.len);
    buf_release(&b);
    if (basic) {
        struct buf ci, cs;
        buf_init(&ci, 4096);
        buf_init(&cs, 4096);
        if (oauth_url_encode(&ci, cid) == 0 && oauth_url_encode(&cs, sec) == 0) {
            size_t pl = ci.len + 1 + cs.len;
            char *pair = malloc(pl + 1);
            size_t hl = 6 + sodium_base64_ENCODED_LEN(pl, sodium_base64_VARIANT_ORIGINAL);
            w->basic = malloc(hl);
            if (pair && w->basic) {
                memcpy(pair, ci.data, ci.len);
                pair[ci.len] = ':';
                memcpy(pair + ci.len + 1, cs.data, cs.len);
                memcpy(w->basic, "Basic ", 6);
                sodium_bin2base64(w->basic + 6, hl - 6, (const unsigned char *)pair, pl,
                                  sodium_base64_VARIANT_ORIGINAL);
                sodium_memzero(pair, pl);
            }
            free(pair);
        }
        if (cs.data)
            sodium_memzero(cs.data, cs.len);
        buf_release(&ci);
        buf_release(&cs);
    }
    if (w->form == NULL || (basic && w->basic == NULL)) {
        flow_fail(w, 500, "out of memory");
        return;
    }
    w->step = UP_TOKEN;
    flow_fetch(w, json_string_value(json_object_get(p, "token_endpoint")), "POST", w->form,
               "application/x-www-form-urlencoded", w->basic);
}

static void got_tokens(struct upflow *w, json_t *doc)
{
    struct err_info ei = {0};
    const json_t *p = w->pending;
    json_t *grant = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "issuer",
                              json_string_value(json_object_get(p, "issuer")), "token_endpoint",
                              json_string_value(json_object_get(p, "token_endpoint")), "resource",
                              json_string_value(json_object_get(p, "resource")), "client_id",
                              json_string_value(json_object_get(p, "client_id")), "client_secret",
                              json_string_value(json_object_get(p, "client_secret")), "auth_method",
                              json_string_value(json_object_get(p, "auth_method")));
    if (grant != NULL && json_string_length(json_object_get(grant, "client_secret")) == 0)
        json_object_del(grant, "client_secret");
    w->tokens = doc;
    int err =
        grant ? vault_keep(w->o->st, w->user_id, w->srv->name, doc, grant, NULL, oauth_now(), &ei)
              : ERR_NOMEM;
    if (grant) {
        oauth_json_wipe(grant, "client_secret");
        json_decref(grant);
    }
    if (err) {
        flow_fail(w, err == ERR_INVAL ? 502 : 503, "the tokens could not be kept: %s",
                  ei.msg[0] ? ei.msg : err_str(err));
        return;
    }
    log_info("upstream_oauth", "user %lld connected server \"%s\" (scope \"%s\")",
             (long long)w->user_id, w->srv->name,
             json_string_value(json_object_get(doc, "scope"))
                 ? json_string_value(json_object_get(doc, "scope"))
                 : "");
    /* Check the connection: one authenticated request, as the user's session will make. */
    struct vault_entry *e = NULL;
    struct outbound out;
    outbound_init(&out);
    if (vault_open(w->o->st, w->user_id, w->srv->name, &e) != 0 || vault_inject(e, &out) != 0 ||
        out.n != 1) {
        vault_entry_free(e);
        outbound_release(&out);
        flow_fail(w, 500, "the kept tokens do not open");
        return;
    }
    vault_entry_free(e);
    if (w->basic) {
        sodium_memzero(w->basic, strlen(w->basic));
        free(w->basic);
    }
    w->basic = strdup(out.v[0].value);
    outbound_release(&out);
    w->step = UP_CHECK;
    w->legacy = false;
    flow_fetch(w, w->srv->url, "POST", DISCOVER_BODY, "application/json", w->basic);
}

static void connected_page(struct upflow *w, const char *note)
{
    struct buf b;
    buf_init(&b, 8192);
    buf_printf(&b, "<h1>Connected</h1><p>Your account at <b>");
    oauth_html_escape(&b, w->srv->name);
    buf_printf(&b,
               "</b> is connected to Gatehouse.%s</p><p>Return to your agent: it can use "
               "the server now.</p>",
               note);
    buf_append(&b, "", 1);
    oauth_send_page(w->req, 200, "Connected", b.data, NULL);
    buf_release(&b);
}

/* ---- one answer of the flow ---- */

static json_t *json_answer(const struct fetch_response *r)
{
    if (r->status < 200 || r->status > 299)
        return NULL;
    json_t *doc = json_loadb(r->body, r->len, 0, NULL);
    if (!json_is_object(doc)) {
        json_decref(doc);
        return NULL;
    }
    return doc;
}

static void step_cb(void *arg, int err, const struct fetch_response *r, const char *why)
{
    struct upflow *w = arg;
    w->fx = NULL;
    if (w->o == NULL)
        return;
    bool discovery = w->step == UP_PRM || w->step == UP_ASM;
    if (err && !(discovery && err != ERR_DENIED)) {
        flow_fail(w, 502, "%s", why ? why : err_str(err));
        return;
    }
    json_t *doc = err ? NULL : json_answer(r);
    switch (w->step) {
    case UP_PROBE: {
        json_decref(doc);
        char rm[UP_URL_MAX], scope[STORE_SCOPE_MAX + 1], e[64];
        if (!w->legacy && r->status != 401 && (r->status < 200 || r->status > 299)) {
            w->legacy = true; /* not a 2026-07-28 server, perhaps: ask as a legacy client */
            flow_fetch(w, w->srv->url, "POST", INIT_BODY, "application/json", NULL);
            return;
        }
        if (r->status != 401 && (r->status < 200 || r->status > 299)) {
            flow_fail(w, 502, "the server answered HTTP %ld to a request without a token, not 401",
                      r->status);
            return;
        }
        /* 2xx: the server lets this request in without a token (it asks for one on others,
           perhaps): the well-known URLs tell where to authorize */
        fetch_bearer_challenge(r->www_authenticate, rm, sizeof(rm), scope, sizeof(scope), e,
                               sizeof(e));
        snprintf(w->wa_scope, sizeof(w->wa_scope), "%s", scope);
        w->try = 0;
        if (rm[0]) {
            snprintf(w->urls[0], UP_URL_MAX, "%s", rm);
            w->nurls = 1;
        } else {
            w->nurls = oauth_upstream_prm_urls(w->srv->url, w->urls);
        }
        next_prm(w);
        return;
    }
    case UP_PRM:
        if (doc == NULL)
            next_prm(w);
        else
            got_prm(w, doc);
        return;
    case UP_ASM:
        if (doc == NULL)
            next_asm(w);
        else
            got_asm(w, doc);
        return;
    case UP_REGISTER:
        if (doc == NULL) {
            flow_fail(w, 502,
                      "dynamic client registration at the authorization server failed "
                      "(HTTP %ld)",
                      r->status);
            return;
        }
        got_registration(w, doc);
        return;
    case UP_TOKEN:
        if (doc == NULL) {
            json_t *e = json_loadb(r->body, r->len, 0, NULL);
            const char *code = json_string_value(json_object_get(e, "error"));
            char c[64];
            snprintf(c, sizeof(c), "%s", code ? code : "");
            json_decref(e);
            if (strcmp(c, "invalid_client") == 0) {
                /* a registration kept for reuse that the server no longer knows: forgotten, so
                   that the next connection registers again */
                char rkey[TOKEN_HASH_SIZE];
                snprintf(w->issuer, sizeof(w->issuer), "%s",
                         json_string_value(json_object_get(w->pending, "issuer")));
                registration_key(w, rkey);
                store_ephemeral_delete(w->o->st, "upreg", rkey);
            }
            flow_fail(w, 502, "the token endpoint refused the code (HTTP %ld%s%s)", r->status,
                      c[0] ? ", " : "", c);
            return;
        }
        got_tokens(w, doc);
        return;
    case UP_CHECK:
        if (!w->legacy && !(r->status >= 200 && r->status < 300 &&
                            (json_is_object(json_object_get(doc, "result")) ||
                             (r->content_type && strstr(r->content_type, "event-stream"))))) {
            json_decref(doc);
            w->legacy = true; /* server/discover not taken: the legacy initialize */
            flow_fetch(w, w->srv->url, "POST", INIT_BODY, "application/json", w->basic);
            return;
        }
        json_decref(doc);
        connected_page(w, r->status >= 200 && r->status < 300
                              ? ""
                              : " (the server did not accept the first request made with it; "
                                "your agent will tell you if it keeps refusing)");
        return;
    }
}

/* ---- the endpoints ---- */

int oauth_upstream_start(struct oauth_ctx *o, struct config *cfg, h2o_req_t *req,
                         const char *server)
{
    const struct config_server *srv = find_server(cfg, server);
    if (srv == NULL)
        return oauth_error_page(req, 404, "no server called \"%.64s\" with auth.oauth", server);
    struct oauth_form f;
    if (!oauth_read_form(req, true, &f))
        return req->res.status;
    const char *t = oauth_form_get(&f, "t");
    int64_t uid = 0;
    char nonce[32], nonce_hash[TOKEN_HASH_SIZE], step_up[STORE_SCOPE_MAX + 1] = "";
    int status = 0;
    if (t == NULL || strlen(t) > 2048 ||
        start_token_open(o->master, t, server, oauth_now(), &uid, nonce, step_up) != 0) {
        status = oauth_error_page(req, 403,
                                  "this link to connect \"%s\" is not valid, or has expired "
                                  "(links last %d minutes); ask your agent for a new one",
                                  server, UP_START_TTL_S / 60);
        goto out;
    }
    token_hash(nonce, strlen(nonce), nonce_hash);
    json_t *used = NULL;
    if (store_ephemeral_get(o->st, "upstart", nonce_hash, &used) == 0) {
        json_decref(used);
        status = oauth_error_page(req, 403,
                                  "this link to connect \"%s\" was used already; each link "
                                  "works once: ask your agent for a new one",
                                  server);
        goto out;
    }
    json_t *mark = json_pack("{s:I}", "user_id", (json_int_t)uid);
    int err =
        mark ? store_ephemeral_put(o->st, "upstart", nonce_hash, mark, oauth_now() + UP_START_TTL_S)
             : ERR_NOMEM;
    json_decref(mark);
    struct store_user u, signed_in;
    char login_hash[TOKEN_HASH_SIZE];
    if (oauth_login_user(o, req, &signed_in, login_hash) && signed_in.id != uid) {
        /* someone else's link in a browser signed in to the gateway: connecting there would
           put this browser's upstream account in another user's hands */
        status = oauth_error_page(req, 403,
                                  "this browser is signed in to Gatehouse as \"%s\", but the link "
                                  "to connect \"%s\" is another user's; open your own link",
                                  signed_in.name, server);
        goto out;
    }
    if (err == 0 && (err = store_user_get(o->st, uid, &u)) == 0 && u.disabled)
        err = ERR_DENIED;
    if (err) {
        status = oauth_error_page(req, err == ERR_DENIED || err == ERR_NOTFOUND ? 403 : 503,
                                  "connecting \"%s\" cannot start: %s", server,
                                  err == ERR_DENIED     ? "the user is disabled"
                                  : err == ERR_NOTFOUND ? "the user no longer exists"
                                                        : "the store did not answer");
        goto out;
    }
    struct upflow *w = flow_new(o, cfg, req, srv);
    w->user_id = uid;
    if (step_up[0]) {
        /* a step-up: the scope granted before, and the one the server asked for (SEP-2350) */
        struct vault_entry *e = NULL;
        if (vault_open(o->st, uid, srv->name, &e) == 0)
            scope_union(w->step_up, sizeof(w->step_up), vault_entry_scope(e));
        vault_entry_free(e);
        scope_union(w->step_up, sizeof(w->step_up), step_up);
    }
    w->step = UP_PROBE;
    w->legacy = false;
    flow_fetch(w, srv->url, "POST", DISCOVER_BODY, "application/json", NULL);
out:
    oauth_form_release(&f);
    return status;
}

int oauth_upstream_callback(struct oauth_ctx *o, struct config *cfg, h2o_req_t *req)
{
    struct oauth_form f;
    if (!oauth_read_form(req, true, &f))
        return req->res.status;
    const char *state = oauth_form_get(&f, "state"), *code = oauth_form_get(&f, "code");
    const char *error = oauth_form_get(&f, "error"), *iss = oauth_form_get(&f, "iss");
    char state_hash[TOKEN_HASH_SIZE], browser[64], browser_hash[TOKEN_HASH_SIZE];
    json_t *rec = NULL;
    int status = 0;
    if (state == NULL || strlen(state) > 128) {
        status = oauth_error_page(req, 400, "the authorization server sent no state back");
        goto out;
    }
    token_hash(state, strlen(state), state_hash);
    int err = get_sealed(o, "upstream", state_hash, true, &rec);
    if (err) {
        status = err == ERR_DENIED
                     ? oauth_error_page(req, 400, "the pending connection does not open")
                     : oauth_error_page(req, 400,
                                        "this authorization answer matches no pending connection "
                                        "(used already, or older than %d minutes); start again "
                                        "from your agent",
                                        UP_FLOW_TTL_S / 60);
        goto out;
    }
    const char *server = json_string_value(json_object_get(rec, "server"));
    const struct config_server *srv = server ? find_server(cfg, server) : NULL;
    if (srv == NULL) {
        status = oauth_error_page(req, 404,
                                  "the server of this connection is no longer "
                                  "configured with auth.oauth");
        goto out;
    }
    /* the browser that started it, and only it */
    if (!oauth_cookie(req, browser_cookie_name(o), browser, sizeof(browser)) ||
        (token_hash(browser, strlen(browser), browser_hash),
         !secret_equal(browser_hash, strlen(browser_hash),
                       json_string_value(json_object_get(rec, "browser")),
                       json_string_length(json_object_get(rec, "browser"))))) {
        status = oauth_error_page(req, 403,
                                  "this authorization answer did not come back to the browser "
                                  "that started connecting \"%s\"; start again from your agent",
                                  srv->name);
        goto out;
    }
    if (error != NULL) {
        const char *d = oauth_form_get(&f, "error_description");
        status =
            oauth_error_page(req, 403, "the authorization server of \"%s\" refused: %.64s%s%.200s",
                             srv->name, error, d ? ": " : "", d ? d : "");
        goto out;
    }
    const char *issuer = json_string_value(json_object_get(rec, "issuer"));
    if (iss != NULL ? strcmp(iss, issuer) != 0
                    : json_is_true(json_object_get(rec, "iss_supported"))) {
        status = oauth_error_page(
            req, 403,
            iss ? "the authorization answer names issuer \"%.200s\", not %s that the flow was "
                  "started with (RFC 9207); refused"
                : "%.0sthe authorization server %s advertises the iss parameter but its answer "
                  "has none (RFC 9207); refused",
            iss ? iss : "", issuer);
        goto out;
    }
    if (code == NULL) {
        status = oauth_error_page(req, 400, "the authorization server sent no code");
        goto out;
    }
    struct upflow *w = flow_new(o, cfg, req, srv);
    w->user_id = json_integer_value(json_object_get(rec, "u"));
    w->pending = rec;
    rec = NULL;
    exchange(w, code);
out:
    if (rec) {
        oauth_json_wipe(rec, "verifier");
        oauth_json_wipe(rec, "client_secret");
        json_decref(rec);
    }
    sodium_memzero(browser, sizeof(browser));
    oauth_form_release(&f);
    return status;
}

int oauth_upstream_client_metadata(struct oauth_ctx *o, h2o_req_t *req)
{
    char id[UP_URL_MAX], cb[UP_URL_MAX];
    snprintf(id, sizeof(id), "%s/oauth/upstream/client.json", o->issuer);
    snprintf(cb, sizeof(cb), "%s/oauth/upstream/callback", o->issuer);
    json_t *doc =
        json_pack("{s:s, s:s, s:s, s:[s], s:[s,s], s:[s], s:s, s:s}", "client_id", id,
                  "client_name", "Gatehouse", "client_uri", o->issuer, "redirect_uris", cb,
                  "grant_types", "authorization_code", "refresh_token", "response_types", "code",
                  "token_endpoint_auth_method", "none", "application_type", application_type(o));
    oauth_send_json(req, 200, doc);
    json_decref(doc);
    return 200;
}
