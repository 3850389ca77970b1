/*
 * The HTTP side of single sign-on (sso.h is the relying party itself): GET /oauth/sso/<name>
 * starts a login at a configured identity provider for a pending authorization request, and
 * GET /oauth/sso/callback is where every provider sends the browser back. A successful callback
 * signs the browser in exactly as the local password form does and goes on to the consent page.
 *
 * The round trip is bound to the browser that started it: /oauth/sso/<name> sets a short-lived
 * cookie of its own, only the hash of which is kept with the login's state, and the callback is
 * refused without it. A callback URL made by someone else (login CSRF: signing a victim in as
 * the attacker) therefore leads nowhere.
 *
 * Both steps may wait on the provider (discovery, token endpoint, JWKS). The h2o request is held
 * meanwhile; a record in its pool cancels the operation when the browser goes away first, and
 * oauth_sso_shutdown cancels whatever still waits when the worker stops.
 */
#include "oauth/oauth-int.h"
#include "core/log.h"
#include "core/rand.h"
#include "oauth/sso.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

#define SSO_COOKIE_TTL_S 600 /* sso.c's flow lifetime */
#define SSO_BROWSER_SIZE 48

struct sso_wait {
    struct sso_wait *next;
    struct oauth_ctx *o; /* NULL once detached (shutdown) */
    h2o_req_t *req;
    struct config *cfg; /* the snapshot the request started with */
    struct sso_op *op;  /* while the provider is asked */
    char browser[SSO_BROWSER_SIZE];
    char provider[CONFIG_NAME_MAX + 1];
};

static const char *sso_cookie_name(const struct oauth_ctx *o)
{
    return o->secure_cookie ? "__Host-gh_sso" : "gh_sso";
}

static void wait_unlink(struct sso_wait *w)
{
    if (w->o == NULL)
        return;
    for (struct sso_wait **p = &w->o->sso_waits; *p; p = &(*p)->next)
        if (*p == w) {
            *p = w->next;
            break;
        }
    w->o = NULL;
}

/* The request's pool is going: the browser went away or the answer was sent. */
static void wait_dispose(void *p)
{
    struct sso_wait *w = p;
    if (w->op != NULL)
        sso_op_cancel(w->op);
    wait_unlink(w);
    sodium_memzero(w->browser, sizeof(w->browser));
    config_unref(w->cfg);
}

static struct sso_wait *wait_new(struct oauth_ctx *o, struct config *cfg, h2o_req_t *req)
{
    struct sso_wait *w = h2o_mem_alloc_shared(&req->pool, sizeof(*w), wait_dispose);
    memset(w, 0, sizeof(*w));
    w->o = o;
    w->req = req;
    w->cfg = config_ref(cfg);
    w->next = o->sso_waits;
    o->sso_waits = w;
    return w;
}

static int refusal_status(int err)
{
    switch (err) {
    case ERR_DENIED:
        return 403;
    case ERR_NOTFOUND:
    case ERR_INVAL:
        return 400;
    case ERR_UNAVAILABLE:
    case ERR_TIMEOUT:
    case ERR_PROTOCOL:
    case ERR_PARSE:
    case ERR_LIMIT:
        return 502;
    default:
        return 500;
    }
}

static void set_sso_cookie(struct oauth_ctx *o, h2o_req_t *req, const char *value, unsigned ttl)
{
    char cookie[160];
    snprintf(cookie, sizeof(cookie), "%s=%s; Path=/; Max-Age=%u; HttpOnly; SameSite=Lax%s",
             sso_cookie_name(o), value, ttl, o->secure_cookie ? "; Secure" : "");
    oauth_add_header(req, "set-cookie", cookie);
    sodium_memzero(cookie, sizeof(cookie));
}

/* ---- GET /oauth/sso/<provider>?authz=... ---- */

static void begin_cb(void *arg, int err, const char *location, const char *why)
{
    struct sso_wait *w = arg;
    w->op = NULL;
    if (w->o == NULL)
        return;
    if (err) {
        oauth_error_page(w->req, refusal_status(err), "signing in with \"%s\" failed: %s",
                         w->provider, why ? why : err_str(err));
        return;
    }
    set_sso_cookie(w->o, w->req, w->browser, SSO_COOKIE_TTL_S);
    oauth_send_redirect(w->req, 302, location);
}

int oauth_sso_start(struct oauth_ctx *o, struct config *cfg, h2o_req_t *req, const char *name)
{
    const struct config_idp *idp = o->sso ? sso_provider(o->sso, name) : NULL;
    if (idp == NULL)
        return oauth_error_page(req, 404, "no identity provider called \"%.64s\" (auth.login)",
                                name);
    struct oauth_form f;
    if (!oauth_read_form(req, true, &f))
        return req->res.status;
    const char *authz = oauth_form_get(&f, "authz");
    int status;
    if (authz == NULL || strlen(authz) > 128) {
        status = oauth_error_page(req, 400,
                                  "authz (the pending authorization request) is missing; start "
                                  "from the application");
        goto out;
    }
    if (!oauth_authz_pending(o, req, authz)) {
        status = req->res.status;
        goto out;
    }
    struct sso_wait *w = wait_new(o, cfg, req);
    snprintf(w->provider, sizeof(w->provider), "%s", idp->name);
    rand_token(w->browser, sizeof(w->browser), 32);
    int err = sso_begin(o->sso, idp, authz, w->browser, begin_cb, w, &w->op);
    if (err) {
        status = oauth_error_page(req, 500, "cannot start signing in with \"%s\": %s", idp->name,
                                  err_str(err));
        goto out;
    }
    status = req->res.status; /* 0 while the discovery document is fetched */
out:
    oauth_form_release(&f);
    return status;
}

/* ---- GET /oauth/sso/callback ---- */

static void finish_cb(void *arg, int err, const struct store_user *u, const char *return_to,
                      const char *why)
{
    struct sso_wait *w = arg;
    w->op = NULL;
    if (w->o == NULL)
        return;
    set_sso_cookie(w->o, w->req, "", 0); /* spent, whatever the outcome */
    if (err) {
        oauth_error_page(w->req, refusal_status(err), "signing in was refused: %s",
                         why ? why : err_str(err));
        return;
    }
    if (!oauth_authz_pending(w->o, w->req, return_to))
        return;
    oauth_login_complete(w->o, w->cfg, w->req, u, return_to, "sso");
}

int oauth_sso_callback(struct oauth_ctx *o, struct config *cfg, h2o_req_t *req)
{
    if (o->sso == NULL)
        return oauth_error_page(req, 404, "no identity provider is configured (auth.login)");
    struct oauth_form f;
    if (!oauth_read_form(req, true, &f))
        return req->res.status;
    struct sso_wait *w = wait_new(o, cfg, req);
    char browser[SSO_BROWSER_SIZE];
    bool have = oauth_cookie(req, sso_cookie_name(o), browser, sizeof(browser));
    int err = sso_finish(o->sso, oauth_form_get(&f, "state"), oauth_form_get(&f, "code"),
                         oauth_form_get(&f, "iss"), oauth_form_get(&f, "error"),
                         oauth_form_get(&f, "error_description"), have ? browser : NULL, finish_cb,
                         w, &w->op);
    sodium_memzero(browser, sizeof(browser));
    oauth_form_release(&f);
    if (err)
        return oauth_error_page(req, 500, "cannot finish signing in: %s", err_str(err));
    return req->res.status; /* 0 while the provider is asked */
}

void oauth_sso_shutdown(struct oauth_ctx *o)
{
    while (o->sso_waits) {
        struct sso_wait *w = o->sso_waits;
        wait_unlink(w);
        if (w->op != NULL) {
            sso_op_cancel(w->op);
            w->op = NULL;
            oauth_error_page(w->req, 503, "the gateway is shutting down; sign in again");
        }
    }
    sso_free(o->sso);
    o->sso = NULL;
}
