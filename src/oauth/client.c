/*
 * OAuth clients: how a request's client is authenticated (client_secret_basic,
 * client_secret_post, none), what registered metadata must look like (shared by Dynamic Client
 * Registration and Client ID Metadata Documents), the RFC 7591 endpoint, and the sync of the
 * clients pre-registered in the configuration into the store.
 */
#include "oauth/oauth-int.h"
#include "core/log.h"
#include "core/rand.h"
#include "core/secret.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define REGISTER_MAX_BODY (16u << 10)
#define MAX_REDIRECT_URIS 16

/* A back-channel request whose client is being authenticated; in the request's pool. */
struct client_call {
    struct oauth_form f;
    struct config *cfg;
    struct store_client c; /* filled once the client is known */
    oauth_client_next next;
    bool usable; /* the secret's client may authenticate (not revoked, owner enabled) */
    char id[STORE_CLIENT_ID_MAX + 1];
};

static void call_dispose(void *p)
{
    struct client_call *k = p;
    oauth_form_release(&k->f);
    store_client_release(&k->c);
    config_unref(k->cfg);
}

/* After the argon2id check of a known confidential client's secret. */
static void secret_checked_cb(struct oauth_ctx *o, h2o_req_t *req, void *arg, bool ok)
{
    struct client_call *k = arg;
    if (!ok)
        oauth_send_error(req, 401, "invalid_client",
                         "client authentication failed for \"%.200s\" (wrong secret)", k->id);
    else if (!k->usable)
        oauth_send_error(req, 401, "invalid_client",
                         "the client \"%.200s\" cannot authenticate: its user is disabled", k->id);
    else
        k->next(o, k->cfg, req, &k->f, &k->c);
}

/* After the same time was spent on an unknown client's secret (no client_id oracle). */
static void unknown_checked_cb(struct oauth_ctx *o, h2o_req_t *req, void *arg, bool ok)
{
    (void)o;
    (void)ok;
    struct client_call *k = arg;
    oauth_send_error(req, 401, "invalid_client", "unknown client_id \"%.200s\"", k->id);
}

/* Check `secret` against the client's hash on the thread pool; the answer comes from cb. */
static int check_secret_later(struct oauth_ctx *o, h2o_req_t *req, struct client_call *k,
                              const char *secret, bool known)
{
    char hash[SECRET_HASH_MAX];
    bool found = known && store_client_secret_hash(o->st, k->id, hash, &k->usable) == 0;
    int err = oauth_verify_secret(o, req, found ? hash : NULL, secret,
                                  known ? secret_checked_cb : unknown_checked_cb, k);
    if (found)
        sodium_memzero(hash, sizeof(hash));
    if (err)
        return oauth_send_error(req, 500, "server_error", "cannot check the client secret: %s",
                                err_str(err));
    return 0;
}

int oauth_client_auth(struct oauth_ctx *o, struct config *cfg, h2o_req_t *req, bool require_secret,
                      oauth_client_next next)
{
    struct client_call *k = h2o_mem_alloc_shared(&req->pool, sizeof(*k), call_dispose);
    memset(k, 0, sizeof(*k));
    k->cfg = config_ref(cfg);
    k->next = next;
    if (!oauth_read_form(req, false, &k->f))
        return req->res.status;
    char *bid = NULL, *bsecret = NULL;
    int status;
    struct err_info ei = {0};
    h2o_iovec_t a = oauth_header(req, H2O_STRLIT("authorization"));
    if (a.base != NULL) {
        int err = oauth_basic_decode(a.base, a.len, &bid, &bsecret, &ei);
        if (err == ERR_NOTFOUND)
            return oauth_send_error(req, 401, "invalid_client",
                                    "only Basic client authentication is accepted in the "
                                    "Authorization header here");
        if (err)
            return oauth_send_error(req, 401, "invalid_client", "%s", ei.msg);
    }
    const char *fid = oauth_form_get(&k->f, "client_id");
    const char *fsecret = oauth_form_get(&k->f, "client_secret");
    const char *id = bid ? bid : fid;
    const char *secret = bsecret ? bsecret : fsecret;
    if (bid && fsecret) {
        status = oauth_send_error(
            req, 400, "invalid_request",
            "the client authenticated twice (Basic and client_secret); use one method");
        goto out;
    }
    if (bid && fid && strcmp(bid, fid) != 0) {
        status =
            oauth_send_error(req, 400, "invalid_request",
                             "client_id in the form differs from the one in the Basic credentials");
        goto out;
    }
    if (id == NULL) {
        status = oauth_send_error(req, 401, "invalid_client",
                                  "client_id is required (in the form, or in Basic credentials)");
        goto out;
    }
    snprintf(k->id, sizeof(k->id), "%s", id);
    if (store_client_get(o->st, id, &k->c) != 0) {
        status = secret ? check_secret_later(o, req, k, secret, false)
                        : oauth_send_error(req, 401, "invalid_client",
                                           "unknown client_id \"%.200s\"", id);
        goto out;
    }
    if (k->c.revoked) {
        status =
            oauth_send_error(req, 401, "invalid_client", "the client \"%.200s\" was revoked", id);
    } else if (k->c.confidential && secret == NULL) {
        status = oauth_send_error(req, 401, "invalid_client",
                                  "the client \"%.200s\" is confidential: authenticate with "
                                  "client_secret_basic or client_secret_post",
                                  id);
    } else if (k->c.confidential) {
        status = check_secret_later(o, req, k, secret, true);
    } else if (secret != NULL || require_secret) {
        status =
            oauth_send_error(req, 401, "invalid_client",
                             require_secret ? "this endpoint requires a confidential client"
                                            : "the client \"%.200s\" is public and has no secret; "
                                              "send client_id only",
                             id);
    } else {
        status = next(o, k->cfg, req, &k->f, &k->c);
    }
out:
    free(bid);
    secret_free(bsecret);
    return status;
}

bool oauth_resource_known(struct oauth_ctx *o, const struct config *cfg, const char *resource)
{
    size_t n = strlen(o->issuer);
    if (strncmp(resource, o->issuer, n) != 0 || strncmp(resource + n, "/mcp", 4) != 0)
        return false;
    const char *rest = resource + n + 4;
    if (*rest == '\0')
        return true;
    return *rest == '/' && config_find_server(cfg, rest + 1) != NULL;
}

bool oauth_scope_next(const char **cursor, const char **word, size_t *len)
{
    const char *p = *cursor;
    while (*p == ' ')
        p++;
    size_t n = strcspn(p, " ");
    *cursor = p + n;
    *word = p;
    *len = n;
    return n > 0;
}

bool oauth_scope_has(const char *list, const char *word, size_t len)
{
    const char *w;
    size_t n;
    for (const char *q = list; oauth_scope_next(&q, &w, &n);)
        if (n == len && memcmp(w, word, len) == 0)
            return true;
    return false;
}

bool oauth_scope_allowed(const struct config *cfg, const char *scope, struct err_info *ei)
{
    const char *w;
    size_t len;
    for (const char *p = scope; oauth_scope_next(&p, &w, &len);) {
        bool found = cfg->auth.nscopes == 0 && len == 3 && memcmp(w, "mcp", 3) == 0;
        for (size_t i = 0; i < cfg->auth.nscopes && !found; i++)
            found = strlen(cfg->auth.scopes[i]) == len && memcmp(cfg->auth.scopes[i], w, len) == 0;
        if (!found) {
            err_info_set(ei, ERR_INVAL, 0, 0,
                         "scope \"%.*s\" is not offered here (scopes: see scopes_supported)",
                         (int)(len > 64 ? 64 : len), w);
            return false;
        }
    }
    return true;
}

const char *oauth_client_name(const struct store_client *c)
{
    const char *n = json_string_value(json_object_get(c->metadata, "client_name"));
    return n && *n ? n : c->client_id;
}

bool oauth_client_redirect_ok(const struct store_client *c, const char *uri)
{
    json_t *list = json_object_get(c->metadata, "redirect_uris");
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v)
    {
        if (json_is_string(v) && oauth_redirect_uri_match(json_string_value(v), uri))
            return true;
    }
    return false;
}

static bool string_in(const char *s, const char *const *set)
{
    for (; *set; set++)
        if (strcmp(s, *set) == 0)
            return true;
    return false;
}

int oauth_client_metadata_check(const json_t *in, bool cimd, json_t **out, struct err_info *ei)
{
    static const char *const grants[] = {"authorization_code", "refresh_token", NULL};
    static const char *const methods[] = {"none", "client_secret_basic", "client_secret_post",
                                          NULL};
    static const char *const copied[] = {
        "client_name",      "client_uri", "logo_uri", "scope",      "software_id",
        "software_version", "contacts",   "tos_uri",  "policy_uri", NULL};
    if (!json_is_object(in))
        return err_info_set(ei, ERR_INVAL, 0, 0, "the client metadata must be a JSON object");
    json_t *m = json_object();
    int err = 0;
    json_t *uris = json_object_get(in, "redirect_uris");
    if (!json_is_array(uris) || json_array_size(uris) == 0 ||
        json_array_size(uris) > MAX_REDIRECT_URIS) {
        err =
            err_info_set(ei, ERR_INVAL, 0, 0, "redirect_uris is required: an array of 1 to %d URIs",
                         MAX_REDIRECT_URIS);
        goto out;
    }
    size_t i;
    json_t *v;
    json_array_foreach(uris, i, v)
    {
        if (!json_is_string(v)) {
            err = err_info_set(ei, ERR_INVAL, 0, 0, "redirect_uris[%zu] is not a string", i);
            goto out;
        }
        if ((err = oauth_redirect_uri_check(json_string_value(v), ei)) != 0)
            goto out;
    }
    json_object_set(m, "redirect_uris", uris);
    json_t *method = json_object_get(in, "token_endpoint_auth_method");
    const char *ms = method ? json_string_value(method) : (cimd ? "none" : "client_secret_basic");
    if (ms == NULL || !string_in(ms, methods)) {
        err = err_info_set(ei, ERR_INVAL, 0, 0,
                           "token_endpoint_auth_method must be none, client_secret_basic or "
                           "client_secret_post");
        goto out;
    }
    if (cimd && strcmp(ms, "none") != 0) {
        err = err_info_set(ei, ERR_INVAL, 0, 0,
                           "a Client ID Metadata Document's token_endpoint_auth_method must be "
                           "none here (a document cannot carry a shared secret)");
        goto out;
    }
    json_object_set_new(m, "token_endpoint_auth_method", json_string(ms));
    json_t *gt = json_object_get(in, "grant_types");
    if (gt != NULL) {
        if (!json_is_array(gt) || json_array_size(gt) == 0 || json_array_size(gt) > 4) {
            err = err_info_set(ei, ERR_INVAL, 0, 0, "grant_types must be a non-empty array");
            goto out;
        }
        json_array_foreach(gt, i, v)
        {
            if (!json_is_string(v) || !string_in(json_string_value(v), grants)) {
                err = err_info_set(ei, ERR_INVAL, 0, 0,
                                   "grant_types[%zu]: only authorization_code and refresh_token "
                                   "can be registered",
                                   i);
                goto out;
            }
        }
        json_object_set(m, "grant_types", gt);
    } else {
        json_object_set_new(m, "grant_types",
                            json_pack("[s,s]", "authorization_code", "refresh_token"));
    }
    json_t *rt = json_object_get(in, "response_types");
    if (rt != NULL &&
        !(json_is_array(rt) && json_array_size(rt) == 1 && json_is_string(json_array_get(rt, 0)) &&
          strcmp(json_string_value(json_array_get(rt, 0)), "code") == 0)) {
        err = err_info_set(ei, ERR_INVAL, 0, 0, "response_types must be [\"code\"]");
        goto out;
    }
    json_object_set_new(m, "response_types", json_pack("[s]", "code"));
    for (const char *const *k = copied; *k; k++) {
        json_t *val = json_object_get(in, *k);
        if (val == NULL)
            continue;
        if (strcmp(*k, "contacts") == 0
                ? !json_is_array(val)
                : !json_is_string(val) || strlen(json_string_value(val)) > 512) {
            err = err_info_set(ei, ERR_INVAL, 0, 0, "%s has the wrong type or is too long", *k);
            goto out;
        }
        json_object_set(m, *k, val);
    }
out:
    if (err) {
        json_decref(m);
        return err;
    }
    *out = m;
    return 0;
}

int oauth_register_parse(const char *body, size_t len, json_t **out, struct err_info *ei)
{
    json_error_t je;
    json_t *in = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (in == NULL)
        return err_info_set(ei, ERR_PARSE, je.line, je.column, "the body is not JSON: %s", je.text);
    int err = oauth_client_metadata_check(in, false, out, ei);
    json_decref(in);
    return err;
}

int oauth_register(struct oauth_ctx *o, const struct config *cfg, h2o_req_t *req)
{
    if (!cfg->auth.dynamic_registration)
        return oauth_send_error(req, 403, "access_denied",
                                "dynamic client registration is disabled on this gateway "
                                "(auth.registration.dynamic: false); ask an administrator for a "
                                "client_id, or use a Client ID Metadata Document");
    if (req->entity.len > REGISTER_MAX_BODY)
        return oauth_send_error(req, 413, "invalid_client_metadata",
                                "the registration request has %zu bytes, more than %u",
                                req->entity.len, REGISTER_MAX_BODY);
    h2o_iovec_t ct = oauth_header(req, H2O_STRLIT("content-type"));
    if (ct.base == NULL || ct.len < 16 || strncasecmp(ct.base, "application/json", 16) != 0)
        return oauth_send_error(req, 400, "invalid_client_metadata",
                                "the registration request must be application/json");
    json_t *m = NULL;
    struct err_info ei = {0};
    int status;
    if (oauth_register_parse(req->entity.base ? req->entity.base : "", req->entity.len, &m, &ei) !=
        0) {
        status = oauth_send_error(req, 400,
                                  strstr(ei.msg, "redirect") ? "invalid_redirect_uri"
                                                             : "invalid_client_metadata",
                                  "%s", ei.msg);
        goto out;
    }
    const char *scope = json_string_value(json_object_get(m, "scope"));
    if (scope && !oauth_scope_allowed(cfg, scope, &ei)) {
        status = oauth_send_error(req, 400, "invalid_client_metadata", "%s", ei.msg);
        goto out;
    }
    struct store_client c = {0};
    char id[48];
    rand_token(id + 4, sizeof(id) - 4, 18);
    memcpy(id, "dcr_", 4);
    snprintf(c.client_id, sizeof(c.client_id), "%s", id);
    c.kind = STORE_CLIENT_DCR;
    c.confidential =
        strcmp(json_string_value(json_object_get(m, "token_endpoint_auth_method")), "none") != 0;
    c.created_at = oauth_now();
    c.metadata = m;
    char secret[64] = "";
    if (c.confidential)
        rand_token(secret, sizeof(secret), 32);
    int err = store_client_put(o->st, &c, c.confidential ? secret : NULL);
    if (err) {
        sodium_memzero(secret, sizeof(secret));
        status =
            oauth_send_error(req, 500, "server_error", "cannot store the client: %s", err_str(err));
        goto out;
    }
    json_t *res = json_deep_copy(m);
    json_object_set_new(res, "client_id", json_string(id));
    json_object_set_new(res, "client_id_issued_at", json_integer(c.created_at));
    if (c.confidential) {
        json_object_set_new(res, "client_secret", json_string(secret));
        json_object_set_new(res, "client_secret_expires_at", json_integer(0));
    }
    sodium_memzero(secret, sizeof(secret));
    oauth_send_json(req, 201, res);
    oauth_json_wipe(res, "client_secret");
    json_decref(res);
    log_msg(LOG_INFO, "oauth", "registered client %s (dynamic registration)", id);
    status = 201;
out:
    json_decref(m);
    return status;
}

/* The first line of a secret file, malloc'd (secret_free). */
static int read_secret_file(const char *path, char **out, struct err_info *ei)
{
    FILE *fp = fopen(path, "r");
    if (fp == NULL)
        return err_info_set(ei, ERR_IO, 0, 0, "client secret file %s cannot be read", path);
    char line[512];
    bool ok = fgets(line, sizeof(line), fp) != NULL;
    fclose(fp);
    if (ok)
        line[strcspn(line, "\r\n")] = '\0';
    if (!ok || line[0] == '\0') {
        sodium_memzero(line, sizeof(line));
        return err_info_set(ei, ERR_INVAL, 0, 0, "client secret file %s is empty", path);
    }
    *out = strdup(line);
    sodium_memzero(line, sizeof(line));
    return *out ? 0 : ERR_NOMEM;
}

int oauth_clients_sync(struct store *st, const struct config *cfg, struct err_info *ei)
{
    for (size_t i = 0; i < cfg->auth.nclients; i++) {
        const struct config_oauth_client *cc = &cfg->auth.clients[i];
        json_t *in = json_pack("{s:s, s:s}", "client_name", cc->name ? cc->name : cc->client_id,
                               "token_endpoint_auth_method",
                               cc->secret_file ? "client_secret_basic" : "none");
        json_t *uris = json_array();
        for (size_t k = 0; k < cc->nredirect_uris; k++)
            json_array_append_new(uris, json_string(cc->redirect_uris[k]));
        json_object_set_new(in, "redirect_uris", uris);
        json_t *m = NULL;
        struct err_info e = {0};
        int err = oauth_client_metadata_check(in, false, &m, &e);
        json_decref(in);
        if (err)
            return err_info_set(ei, err, 0, 0, "auth.clients %s: %s", cc->client_id, e.msg);
        json_object_del(m, "grant_types"); /* every grant of its kind */
        char *secret = NULL;
        if (cc->secret_file && (err = read_secret_file(cc->secret_file, &secret, ei)) != 0) {
            json_decref(m);
            return err;
        }
        struct store_client c = {0};
        snprintf(c.client_id, sizeof(c.client_id), "%s", cc->client_id);
        c.kind = STORE_CLIENT_CONFIG;
        c.confidential = secret != NULL;
        c.created_at = oauth_now();
        c.metadata = m;
        err = store_client_put(st, &c, secret);
        secret_free(secret);
        json_decref(m);
        if (err)
            return err_info_set(ei, err, 0, 0, "auth.clients %s: cannot store it: %s",
                                cc->client_id, err_str(err));
    }
    return 0;
}
