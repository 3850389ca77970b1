/*
 * The back-channel endpoints: /oauth/token (authorization_code with PKCE, refresh_token with
 * rotation and reuse detection, client_credentials for a user's own clients), /oauth/revoke
 * (RFC 7009) and /oauth/introspect (RFC 7662). Every refusal is an RFC 6749 §5.2 error whose
 * error_description names the cause; no response or log line carries a token or a secret.
 */
#include "oauth/oauth-int.h"
#include "core/log.h"
#include "core/rand.h"
#include "core/secret.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REFRESH_SIZE 48

static bool grant_allowed(const struct store_client *c, const char *grant)
{
    json_t *gt = json_object_get(c->metadata, "grant_types");
    if (!json_is_array(gt))
        return true; /* pre-registered clients: every grant of their kind */
    size_t i;
    json_t *v;
    json_array_foreach(gt, i, v)
    {
        if (json_is_string(v) && strcmp(json_string_value(v), grant) == 0)
            return true;
    }
    return false;
}

/* Is every scope of `want` in `have` (both space-separated)? */
static bool scope_subset(const char *want, const char *have)
{
    const char *w;
    size_t len;
    for (const char *p = want; oauth_scope_next(&p, &w, &len);)
        if (!oauth_scope_has(have, w, len))
            return false;
    return true;
}

/* The store failed (a full disk, a lock held too long): a temporary condition, not the client's
   fault, so never an invalid_grant that would make it throw a valid token away. */
static int store_unavailable(h2o_req_t *req, int err, const char *what)
{
    oauth_add_header(req, "retry-after", "30");
    return oauth_send_error(req, 503, "temporarily_unavailable",
                            "%s: the store failed (%s); nothing was consumed, retry later", what,
                            err_str(err));
}

/* The store failed after something was consumed (an authorization code): retrying cannot
   help, so no 503. */
static int store_failed(h2o_req_t *req, int err, const char *what)
{
    return oauth_send_error(req, 500, "server_error", "%s: the store failed (%s)", what,
                            err_str(err));
}

/* The user behind a grant, refused when gone or disabled. */
static bool grant_user(struct oauth_ctx *o, h2o_req_t *req, int64_t user_id, struct store_user *u)
{
    int err = store_user_get(o->st, user_id, u);
    if (err == ERR_NOTFOUND) {
        oauth_send_error(req, 400, "invalid_grant", "the user of this grant no longer exists");
        return false;
    }
    if (err) {
        store_unavailable(req, err, "the grant's user cannot be read");
        return false;
    }
    if (u->disabled) {
        oauth_send_error(req, 400, "invalid_grant", "the user of this grant is disabled");
        return false;
    }
    return true;
}

static int refresh_refused(struct oauth_ctx *o, h2o_req_t *req, int err,
                           const struct store_family *fam);

/* Sign an access token (and make a refresh token in `family` when not NULL) and answer. With
   `rotate_from` (the hash of the refresh token presented), that token is spent in the same
   transaction that records the new one, and only once the access token is signed: a refusal
   or a failure before leaves it usable. */
static int answer_tokens(struct oauth_ctx *o, const struct config *cfg, h2o_req_t *req,
                         const struct store_user *u, const char *client_id, const char *resource,
                         const char *scope, const struct store_family *family,
                         const char *rotate_from)
{
    struct principal p = {0};
    p.kind = PRINCIPAL_USER;
    p.id = u->id;
    snprintf(p.name, sizeof(p.name), "%s", u->name);
    snprintf(p.client_id, sizeof(p.client_id), "%s", client_id);
    snprintf(p.scope, sizeof(p.scope), "%s", scope);
    uint32_t ttl = cfg->auth.access_token_ttl_s ? cfg->auth.access_token_ttl_s : 600;
    const struct auth_keyring *kr = auth_validator_keyring(o->v);
    char *at = NULL;
    int err = kr ? auth_issue_access(kr, o->issuer, &p, resource, ttl, &at) : ERR_UNAVAILABLE;
    if (err)
        return oauth_send_error(req, 500, "server_error", "cannot sign the access token: %s",
                                err_str(err));
    char rt[REFRESH_SIZE] = "";
    if (family != NULL) {
        char rt_hash[TOKEN_HASH_SIZE];
        rand_token(rt, sizeof(rt), 32);
        token_hash(rt, strlen(rt), rt_hash);
        if (rotate_from != NULL) {
            struct store_family now;
            err = store_refresh_rotate(o->st, rotate_from, rt_hash, &now);
            if (err) {
                secret_free(at);
                sodium_memzero(rt, sizeof(rt));
                return refresh_refused(o, req, err, &now);
            }
        } else if ((err = store_refresh_put(o->st, family->id, rt_hash, family->expires_at)) != 0) {
            secret_free(at);
            sodium_memzero(rt, sizeof(rt));
            return store_failed(req, err, "the refresh token cannot be recorded");
        }
    }
    json_t *res = json_pack("{s:s, s:s, s:I, s:s}", "access_token", at, "token_type", "Bearer",
                            "expires_in", (json_int_t)ttl, "scope", scope);
    if (family != NULL)
        json_object_set_new(res, "refresh_token", json_string(rt));
    oauth_send_json(req, 200, res);
    oauth_json_wipe(res, "access_token");
    oauth_json_wipe(res, "refresh_token");
    json_decref(res);
    sodium_memzero(rt, sizeof(rt));
    secret_free(at);
    return 200;
}

static bool valid_verifier(const char *v)
{
    size_t n = strlen(v);
    if (n < 43 || n > 128)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((v[i] >= 'A' && v[i] <= 'Z') || (v[i] >= 'a' && v[i] <= 'z') ||
              (v[i] >= '0' && v[i] <= '9') || v[i] == '-' || v[i] == '.' || v[i] == '_' ||
              v[i] == '~'))
            return false;
    return true;
}

static int grant_code(struct oauth_ctx *o, const struct config *cfg, h2o_req_t *req,
                      const struct oauth_form *f, const struct store_client *client)
{
    const char *code = oauth_form_get(f, "code"), *redirect_uri = oauth_form_get(f, "redirect_uri");
    const char *verifier = oauth_form_get(f, "code_verifier");
    const char *resource = oauth_form_get(f, "resource");
    if (code == NULL)
        return oauth_send_error(req, 400, "invalid_request", "code is required");
    if (verifier == NULL)
        return oauth_send_error(req, 400, "invalid_request", "code_verifier is required (PKCE)");
    if (redirect_uri == NULL)
        return oauth_send_error(req, 400, "invalid_request",
                                "redirect_uri is required (the one of the authorization request)");
    char code_hash[TOKEN_HASH_SIZE];
    token_hash(code, strlen(code), code_hash);
    struct store_code c;
    int err = store_code_take(o->st, code_hash, &c);
    if (err == ERR_EXISTS) {
        if (c.family_id[0])
            store_family_revoke(o->st, c.family_id);
        log_msg(LOG_WARN, "oauth", "authorization code for client %s reused; its grant is revoked",
                c.client_id);
        return oauth_send_error(req, 400, "invalid_grant",
                                "the authorization code was already used; the tokens issued for "
                                "it are revoked");
    }
    if (err == ERR_NOTFOUND)
        return oauth_send_error(req, 400, "invalid_grant",
                                "the authorization code is unknown or expired");
    if (err)
        return store_unavailable(req, err, "the authorization code cannot be read");
    if (strcmp(c.client_id, client->client_id) != 0)
        return oauth_send_error(req, 400, "invalid_grant",
                                "the authorization code was issued to another client");
    if (c.expires_at < oauth_now())
        return oauth_send_error(req, 400, "invalid_grant", "the authorization code expired");
    if (strcmp(c.redirect_uri, redirect_uri) != 0)
        return oauth_send_error(req, 400, "invalid_grant",
                                "redirect_uri does not match the one of the authorization request "
                                "(%s)",
                                c.redirect_uri);
    char challenge[TOKEN_HASH_SIZE];
    if (!valid_verifier(verifier))
        return oauth_send_error(req, 400, "invalid_grant",
                                "code_verifier must be 43 to 128 unreserved characters (RFC 7636)");
    token_hash(verifier, strlen(verifier), challenge);
    if (!secret_equal(challenge, strlen(challenge), c.code_challenge, strlen(c.code_challenge)))
        return oauth_send_error(req, 400, "invalid_grant",
                                "code_verifier does not match the code_challenge (PKCE S256)");
    if (resource && strcmp(resource, c.resource) != 0)
        return oauth_send_error(req, 400, "invalid_target",
                                "resource differs from the one authorized (%s)", c.resource);
    struct store_user u;
    if (!grant_user(o, req, c.user_id, &u))
        return req->res.status;
    struct store_family fam = {0};
    bool refresh = grant_allowed(client, "refresh_token");
    if (refresh) {
        snprintf(fam.client_id, sizeof(fam.client_id), "%s", c.client_id);
        fam.user_id = c.user_id;
        snprintf(fam.resource, sizeof(fam.resource), "%s", c.resource);
        snprintf(fam.scope, sizeof(fam.scope), "%s", c.scope);
        fam.expires_at =
            oauth_now() + (cfg->auth.refresh_token_ttl_s ? cfg->auth.refresh_token_ttl_s : 2592000);
        if ((err = store_family_new(o->st, &fam)) != 0 ||
            (err = store_code_set_family(o->st, code_hash, fam.id)) != 0)
            return store_failed(req, err, "the grant cannot be recorded");
    }
    return answer_tokens(o, cfg, req, &u, c.client_id, c.resource, c.scope, refresh ? &fam : NULL,
                         NULL);
}

/* Why a refresh token was not accepted (an error of store_refresh_use or _rotate). */
static int refresh_refused(struct oauth_ctx *o, h2o_req_t *req, int err,
                           const struct store_family *fam)
{
    (void)o;
    if (err == ERR_EXISTS) {
        log_msg(LOG_WARN, "oauth",
                "refresh token replayed for client %s, user %lld: grant %s revoked", fam->client_id,
                (long long)fam->user_id, fam->id);
        return oauth_send_error(req, 400, "invalid_grant",
                                "refresh token was already used; all tokens of this grant are "
                                "revoked");
    }
    if (err == ERR_DENIED)
        return oauth_send_error(req, 400, "invalid_grant",
                                "the refresh token's grant was revoked (or its user disabled)");
    if (err == ERR_NOTFOUND)
        return oauth_send_error(req, 400, "invalid_grant",
                                "the refresh token is unknown or expired");
    return store_unavailable(req, err, "the refresh token cannot be checked");
}

static int grant_refresh(struct oauth_ctx *o, const struct config *cfg, h2o_req_t *req,
                         const struct oauth_form *f, const struct store_client *client)
{
    const char *rt = oauth_form_get(f, "refresh_token"), *scope = oauth_form_get(f, "scope");
    const char *resource = oauth_form_get(f, "resource");
    if (rt == NULL)
        return oauth_send_error(req, 400, "invalid_request", "refresh_token is required");
    char h[TOKEN_HASH_SIZE];
    token_hash(rt, strlen(rt), h);
    struct store_family fam;
    /* Look first, consume last: a request refused for its resource or scope must leave the
       token usable, or the client's next, correct, refresh would count as a replay. */
    int err = store_refresh_peek(o->st, h, &fam);
    bool spent = false;
    if (err == ERR_DENIED) {
        /* used, revoked, expired or its user disabled: using it says which, and a replay
           revokes the grant */
        if ((err = store_refresh_use(o->st, h, &fam)) != 0)
            return refresh_refused(o, req, err, &fam);
        spent = true; /* a race: it became usable again between both reads */
    } else if (err) {
        return refresh_refused(o, req, err, &fam);
    }
    if (strcmp(fam.client_id, client->client_id) != 0) {
        store_family_revoke(o->st, fam.id); /* a stolen token: in memory at least on failure */
        return oauth_send_error(req, 400, "invalid_grant",
                                "the refresh token was issued to another client; its grant is "
                                "revoked");
    }
    if (resource && strcmp(resource, fam.resource) != 0)
        return oauth_send_error(req, 400, "invalid_target",
                                "resource differs from the one of the grant (%s)", fam.resource);
    if (scope && !scope_subset(scope, fam.scope))
        return oauth_send_error(req, 400, "invalid_scope",
                                "scope \"%.200s\" is wider than the grant's (%s)", scope,
                                fam.scope);
    struct store_user u;
    if (!grant_user(o, req, fam.user_id, &u))
        return req->res.status;
    return answer_tokens(o, cfg, req, &u, fam.client_id, fam.resource, scope ? scope : fam.scope,
                         &fam, spent ? NULL : h);
}

static int grant_client_credentials(struct oauth_ctx *o, const struct config *cfg, h2o_req_t *req,
                                    const struct oauth_form *f, const struct store_client *client)
{
    if (client->kind != STORE_CLIENT_USER || !client->confidential)
        return oauth_send_error(req, 400, "unauthorized_client",
                                "client_credentials is only for a user's own confidential client "
                                "(gatehouse client create --user)");
    struct store_user u;
    if (!grant_user(o, req, client->user_id, &u))
        return req->res.status;
    char def[OAUTH_ISSUER_MAX + 8];
    snprintf(def, sizeof(def), "%s/mcp", o->issuer);
    const char *resource = oauth_form_get(f, "resource");
    if (resource == NULL)
        resource = def;
    if (!oauth_resource_known(o, cfg, resource))
        return oauth_send_error(req, 400, "invalid_target",
                                "resource \"%.300s\" is not an MCP endpoint of this gateway",
                                resource);
    const char *scope = oauth_form_get(f, "scope");
    if (scope == NULL)
        scope = cfg->auth.required_scope ? cfg->auth.required_scope : "mcp";
    struct err_info ei = {0};
    if (strlen(scope) > STORE_SCOPE_MAX || !oauth_scope_allowed(cfg, scope, &ei))
        return oauth_send_error(req, 400, "invalid_scope", "%s",
                                ei.msg[0] ? ei.msg : "scope is too long");
    return answer_tokens(o, cfg, req, &u, client->client_id, resource, scope, NULL, NULL);
}

static int token_next(struct oauth_ctx *o, const struct config *cfg, h2o_req_t *req,
                      const struct oauth_form *f, const struct store_client *client)
{
    const char *grant = oauth_form_get(f, "grant_type");
    if (grant == NULL)
        return oauth_send_error(req, 400, "invalid_request", "grant_type is required");
    if (strcmp(grant, "authorization_code") == 0 || strcmp(grant, "refresh_token") == 0) {
        if (!grant_allowed(client, grant))
            return oauth_send_error(req, 400, "unauthorized_client",
                                    "the client did not register the %s grant", grant);
        return grant[0] == 'a' ? grant_code(o, cfg, req, f, client)
                               : grant_refresh(o, cfg, req, f, client);
    }
    if (strcmp(grant, "client_credentials") == 0)
        return grant_client_credentials(o, cfg, req, f, client);
    return oauth_send_error(req, 400, "unsupported_grant_type",
                            "grant_type %.40s is not supported (authorization_code, "
                            "refresh_token, client_credentials)",
                            grant);
}

int oauth_token(struct oauth_ctx *o, struct config *cfg, h2o_req_t *req)
{
    return oauth_client_auth(o, cfg, req, false, token_next);
}

/* ---- revocation and introspection ---- */

static bool looks_like_jwt(const char *t)
{
    const char *d = strchr(t, '.');
    return d != NULL && strchr(d + 1, '.') != NULL;
}

/* RFC 7009 §2.2.1: the revocation could not be stored. It is in force on this process all the
   same (the store remembers it and writes it later), but the client must not believe it done
   everywhere: 503, so that it retries. */
static int revoke_unstored(h2o_req_t *req, int err)
{
    oauth_add_header(req, "retry-after", "30");
    return oauth_send_error(req, 503, "temporarily_unavailable",
                            "the revocation could not be written to the store (%s); it is in "
                            "force on this gateway process and will be written when the store "
                            "accepts it: retry the revocation later",
                            err_str(err));
}

static int revoke_next(struct oauth_ctx *o, const struct config *cfg, h2o_req_t *req,
                       const struct oauth_form *f, const struct store_client *client)
{
    (void)cfg;
    const char *tok = oauth_form_get(f, "token");
    if (tok == NULL)
        return oauth_send_error(req, 400, "invalid_request", "token is required");
    int err = 0;
    if (looks_like_jwt(tok)) {
        json_t *claims = NULL;
        const struct auth_keyring *kr = auth_validator_keyring(o->v);
        if (kr && auth_jwt_verify(kr, tok, strlen(tok), &claims, NULL) == 0) {
            const char *jti = json_string_value(json_object_get(claims, "jti"));
            const char *cid = json_string_value(json_object_get(claims, "client_id"));
            json_int_t exp = json_integer_value(json_object_get(claims, "exp"));
            if (jti && cid && strcmp(cid, client->client_id) != 0) {
                json_decref(claims);
                return oauth_send_error(req, 400, "invalid_request",
                                        "the token was issued to another client");
            }
            if (jti && cid && exp > oauth_now())
                err = store_jti_revoke(o->st, jti, exp);
        }
        json_decref(claims);
    } else {
        char h[TOKEN_HASH_SIZE];
        struct store_family fam;
        token_hash(tok, strlen(tok), h);
        /* RFC 7009 §2.1: only the client the token was issued to may revoke it (a public
           client's id is no secret, so anyone could otherwise end anyone's grant). A token
           that is spent, revoked or unknown has nothing left to revoke. */
        int peek = store_refresh_peek(o->st, h, &fam);
        if (peek == 0) {
            if (strcmp(fam.client_id, client->client_id) != 0)
                return oauth_send_error(req, 400, "invalid_request",
                                        "the token was issued to another client");
            /* the whole grant: its refresh tokens and what they would refresh */
            err = store_family_revoke(o->st, fam.id);
        } else if (peek != ERR_NOTFOUND && peek != ERR_DENIED) {
            err = peek; /* cannot even tell whether there is something to revoke */
        }
    }
    if (err)
        return revoke_unstored(req, err);
    /* RFC 7009 §2.2: 200 whether or not the token was known. */
    json_t *empty = json_object();
    oauth_send_json(req, 200, empty);
    json_decref(empty);
    return 200;
}

int oauth_revoke(struct oauth_ctx *o, struct config *cfg, h2o_req_t *req)
{
    return oauth_client_auth(o, cfg, req, false, revoke_next);
}

/* RFC 7662 for a refresh token: active while it could be used, described by its grant. */
static json_t *introspect_refresh(struct oauth_ctx *o, const char *tok)
{
    char h[TOKEN_HASH_SIZE];
    struct store_family fam;
    struct store_user u;
    token_hash(tok, strlen(tok), h);
    if (store_refresh_peek(o->st, h, &fam) != 0 || store_user_get(o->st, fam.user_id, &u) != 0)
        return NULL;
    return json_pack("{s:b, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:s}", "active", 1, "token_type",
                     "refresh_token", "client_id", fam.client_id, "scope", fam.scope, "aud",
                     fam.resource, "username", u.name, "exp", (json_int_t)fam.expires_at, "iat",
                     (json_int_t)fam.created_at, "iss", o->issuer);
}

/* A configured client with `introspect: true`: a resource server, which may look at any token. */
static bool resource_server(const struct config *cfg, const char *client_id)
{
    for (size_t i = 0; i < cfg->auth.nclients; i++)
        if (cfg->auth.clients[i].introspect &&
            strcmp(cfg->auth.clients[i].client_id, client_id) == 0)
            return true;
    return false;
}

static int introspect_next(struct oauth_ctx *o, const struct config *cfg, h2o_req_t *req,
                           const struct oauth_form *f, const struct store_client *client)
{
    const char *tok = oauth_form_get(f, "token");
    if (tok == NULL)
        return oauth_send_error(req, 400, "invalid_request", "token is required");
    json_t *claims = NULL, *res = NULL;
    if (!looks_like_jwt(tok)) {
        res = introspect_refresh(o, tok);
    } else if (auth_introspect(o->v, tok, strlen(tok), &claims, NULL) == 0) {
        /* the same verdict as at /mcp: revoke --user, a disabled user or a revoked client
           make the token inactive here too */
        json_int_t exp = json_integer_value(json_object_get(claims, "exp"));
        if (exp > oauth_now()) {
            res = json_deep_copy(claims);
            json_object_set_new(res, "active", json_true());
            json_object_set_new(res, "token_type", json_string("Bearer"));
        }
    }
    /* A client sees its own tokens; only a configured resource server sees anybody's (else a
       client registered anonymously could read every token's user, scope and audience). The
       answer for a foreign token is the one for an unknown token (RFC 7662 §2.2). */
    bool rs = client->kind == STORE_CLIENT_CONFIG && resource_server(cfg, client->client_id);
    if (res != NULL && !rs) {
        const char *cid = json_string_value(json_object_get(res, "client_id"));
        if (cid == NULL || strcmp(cid, client->client_id) != 0) {
            log_info("oauth.introspect",
                     "client %s asked about a token of client %s: answered inactive (not a "
                     "resource server with introspect: true)",
                     client->client_id, cid ? cid : "(none)");
            json_decref(res);
            res = NULL;
        }
    }
    if (res == NULL)
        res = json_pack("{s:b}", "active", 0);
    oauth_send_json(req, 200, res);
    json_decref(res);
    json_decref(claims);
    return 200;
}

int oauth_introspect(struct oauth_ctx *o, struct config *cfg, h2o_req_t *req)
{
    return oauth_client_auth(o, cfg, req, true, introspect_next);
}
