/*
 * The OpenID Connect relying party; see sso.h. One login is two operations: sso_begin (discovery,
 * then the authorization URL with state, nonce and a PKCE challenge, the round trip's secrets kept
 * in the store's ephemeral table under the hash of the state) and sso_finish (state taken once,
 * code exchanged, id_token verified, user mapped). Provider metadata is cached process-wide as
 * text, so worker threads share no JSON objects.
 */
#include "oauth/sso.h"
#include "auth/auth.h"
#include "oauth/oauth-int.h"
#include "core/buf.h"
#include "core/log.h"
#include "core/rand.h"
#include "core/secret.h"
#include "upstream/fetch.h"

#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SSO_FLOW_TTL_S 600         /* a login must come back within ten minutes */
#define SSO_META_TTL_MS 3600000u   /* discovery documents and JWKS are refreshed hourly */
#define SSO_JWKS_MIN_AGE_MS 60000u /* an unknown kid refetches the JWKS at most once a minute */
#define SSO_LEEWAY_S 60
#define SSO_FETCH_MAX (256u << 10)
#define SSO_FETCH_TIMEOUT_MS 10000u

/* ---- process-wide provider metadata ---- */

struct meta {
    char issuer[512]; /* the configured issuer: the cache key */
    char *discovery;  /* JSON text */
    uint64_t discovery_at;
    char *jwks;
    uint64_t jwks_at;
};

static pthread_mutex_t meta_lock = PTHREAD_MUTEX_INITIALIZER;
static struct meta *metas;
static size_t nmetas;

static uint64_t mono_ms(void)
{
    return clock_now_ns() / 1000000u;
}

/* A copy of the cached text (discovery or JWKS) when fresh enough, else NULL. */
static char *meta_get(const char *issuer, bool jwks, uint64_t max_age_ms, uint64_t *age)
{
    char *out = NULL;
    pthread_mutex_lock(&meta_lock);
    for (size_t i = 0; i < nmetas; i++) {
        if (strcmp(metas[i].issuer, issuer) != 0)
            continue;
        const char *t = jwks ? metas[i].jwks : metas[i].discovery;
        uint64_t at = jwks ? metas[i].jwks_at : metas[i].discovery_at;
        if (t != NULL && mono_ms() - at < max_age_ms) {
            out = strdup(t);
            if (age)
                *age = mono_ms() - at;
        }
        break;
    }
    pthread_mutex_unlock(&meta_lock);
    return out;
}

static void meta_put(const char *issuer, bool jwks, const char *text)
{
    pthread_mutex_lock(&meta_lock);
    struct meta *m = NULL;
    for (size_t i = 0; i < nmetas && m == NULL; i++)
        if (strcmp(metas[i].issuer, issuer) == 0)
            m = &metas[i];
    if (m == NULL && strlen(issuer) < sizeof(m->issuer)) {
        struct meta *grown = realloc(metas, (nmetas + 1) * sizeof(*metas));
        if (grown != NULL) {
            metas = grown;
            m = &metas[nmetas++];
            memset(m, 0, sizeof(*m));
            snprintf(m->issuer, sizeof(m->issuer), "%s", issuer);
        }
    }
    char *copy = m ? strdup(text) : NULL;
    if (copy != NULL) {
        char **slot = jwks ? &m->jwks : &m->discovery;
        free(*slot);
        *slot = copy;
        *(jwks ? &m->jwks_at : &m->discovery_at) = mono_ms();
    }
    pthread_mutex_unlock(&meta_lock);
}

/* ---- the per-thread relying party ---- */

struct idp_secret {
    const struct config_idp *idp;
    char *secret; /* NULL for a public client; wiped on free */
};

struct sso {
    const struct config *cfg;
    char *issuer;
    char redirect_uri[600];
    struct store *st;
    struct fetcher *fetcher;
    struct idp_secret *secrets;
    size_t nsecrets;
    struct sso_op *ops;
};

enum op_stage { STAGE_DISCOVERY, STAGE_TOKEN, STAGE_JWKS };

struct sso_op {
    struct sso *s;
    struct sso_op *prev, *next;
    const struct config_idp *idp;
    enum op_stage stage;
    bool finishing; /* sso_finish rather than sso_begin */
    struct fetch *fetch;
    sso_begin_cb begin_cb;
    sso_finish_cb finish_cb;
    void *arg;
    char return_to[513];
    char browser[TOKEN_HASH_SIZE]; /* begin: the hash of the browser's binding cookie */
    json_t *flow;                  /* finish: the state's record (nonce, verifier, provider) */
    char *code;                    /* finish: the authorization code (wiped) */
    char *id_token;                /* finish: from the token response */
    bool jwks_fresh;               /* finish: the JWKS in hand was fetched by this operation */
};

static void op_unlink(struct sso_op *op)
{
    struct sso *s = op->s;
    if (op->prev)
        op->prev->next = op->next;
    else
        s->ops = op->next;
    if (op->next)
        op->next->prev = op->prev;
}

static void op_free(struct sso_op *op)
{
    op_unlink(op);
    if (op->fetch)
        fetch_cancel(op->fetch);
    json_decref(op->flow);
    secret_free(op->code);
    secret_free(op->id_token);
    free(op);
}

static struct sso_op *op_new(struct sso *s, const struct config_idp *idp, void *arg)
{
    struct sso_op *op = calloc(1, sizeof(*op));
    if (op == NULL)
        return NULL;
    op->s = s;
    op->idp = idp;
    op->arg = arg;
    op->next = s->ops;
    if (s->ops)
        s->ops->prev = op;
    s->ops = op;
    return op;
}

static void begin_done(struct sso_op *op, int err, const char *location, const char *why)
{
    sso_begin_cb cb = op->begin_cb;
    void *arg = op->arg;
    op->fetch = NULL;
    op_free(op);
    cb(arg, err, location, why);
}

static void finish_done(struct sso_op *op, int err, const struct store_user *u, const char *why)
{
    sso_finish_cb cb = op->finish_cb;
    void *arg = op->arg;
    char return_to[sizeof(op->return_to)];
    snprintf(return_to, sizeof(return_to), "%s", op->return_to);
    op->fetch = NULL;
    op_free(op);
    if (err)
        log_warn("sso", "login refused: %s", why);
    cb(arg, err, u, err ? NULL : return_to, why);
}

/* Read the first line of a secret file into a heap string. */
static int read_secret_file(const char *path, char **out, struct err_info *ei)
{
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return err_info_set(ei, ERR_IO, 0, 0, "cannot read the client secret file %s: %s", path,
                            strerror(errno));
    char line[1024];
    char *got = fgets(line, sizeof(line), f);
    fclose(f);
    size_t n = got ? strcspn(line, "\r\n") : 0;
    if (n == 0) {
        sodium_memzero(line, sizeof(line));
        return err_info_set(ei, ERR_IO, 0, 0, "the client secret file %s is empty", path);
    }
    char *s = malloc(n + 1);
    if (s != NULL) {
        memcpy(s, line, n);
        s[n] = '\0';
    }
    sodium_memzero(line, sizeof(line));
    if (s == NULL)
        return ERR_NOMEM;
    *out = s;
    return 0;
}

int sso_new(uv_loop_t *loop, const struct config *cfg, const char *issuer, struct store *st,
            struct sso **out, struct err_info *ei)
{
    struct sso *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return ERR_NOMEM;
    int err = ERR_NOMEM;
    s->cfg = cfg;
    s->st = st;
    if ((s->issuer = strdup(issuer)) == NULL)
        goto fail;
    snprintf(s->redirect_uri, sizeof(s->redirect_uri), "%s%s", issuer, SSO_CALLBACK_PATH);
    const struct config_auth *a = &cfg->auth;
    if (a->nproviders && (s->secrets = calloc(a->nproviders, sizeof(*s->secrets))) == NULL)
        goto fail;
    for (size_t i = 0; i < a->nproviders; i++) {
        s->secrets[i].idp = &a->providers[i];
        s->nsecrets++;
        if (a->providers[i].client_secret_file &&
            (err = read_secret_file(a->providers[i].client_secret_file, &s->secrets[i].secret,
                                    ei)) != 0)
            goto fail;
    }
    if ((err = fetcher_new(loop, &s->fetcher)) != 0)
        goto fail;
    if (cfg->outbound.ca_file && (err = fetcher_trust(s->fetcher, cfg->outbound.ca_file, ei)) != 0)
        goto fail;
    *out = s;
    return 0;
fail:
    sso_free(s);
    return err;
}

void sso_free(struct sso *s)
{
    if (s == NULL)
        return;
    while (s->ops)
        op_free(s->ops);
    for (size_t i = 0; i < s->nsecrets; i++)
        secret_free(s->secrets[i].secret);
    free(s->secrets);
    fetcher_free(s->fetcher);
    free(s->issuer);
    free(s);
}

const struct config_idp *sso_provider(const struct sso *s, const char *name)
{
    for (size_t i = 0; i < s->nsecrets; i++)
        if (strcmp(s->secrets[i].idp->name, name) == 0)
            return s->secrets[i].idp;
    return NULL;
}

static const char *idp_secret(const struct sso *s, const struct config_idp *idp)
{
    for (size_t i = 0; i < s->nsecrets; i++)
        if (s->secrets[i].idp == idp)
            return s->secrets[i].secret;
    return NULL;
}

void sso_op_cancel(struct sso_op *op)
{
    if (op != NULL)
        op_free(op);
}

/* ---- helpers ---- */

/* Append "k=v" to a form, with "&" before it unless the buffer is empty. */
static int form_add(struct buf *b, const char *k, const char *v)
{
    int err = b->len ? buf_append(b, "&", 1) : 0;
    if (err == 0)
        err = oauth_url_encode(b, k);
    if (err == 0)
        err = buf_append(b, "=", 1);
    if (err == 0)
        err = oauth_url_encode(b, v);
    return err;
}

/* Whether op is still pending (not completed synchronously and freed). Only meaningful right
   after the call that may have completed it, before any other operation was created. */
static bool op_is_live(const struct sso *s, const struct sso_op *op)
{
    for (const struct sso_op *o = s->ops; o != NULL; o = o->next)
        if (o == op)
            return true;
    return false;
}

/* The provider's discovery document must name the configured issuer and the endpoints we use.
   NULL when it does, else the reason (in why, which every worker thread has its own of). */
#define SSO_WHY_MAX 800
static const char *check_discovery(const json_t *d, const struct config_idp *idp,
                                   char why[SSO_WHY_MAX])
{
    const char *iss = json_string_value(json_object_get(d, "issuer"));
    if (!json_is_object(d))
        return "the discovery document is not a JSON object";
    if (iss == NULL || strcmp(iss, idp->issuer) != 0) {
        snprintf(why, SSO_WHY_MAX,
                 "the discovery document names issuer \"%.200s\", not the "
                 "configured %.200s",
                 iss ? iss : "(none)", idp->issuer);
        return why;
    }
    static const char *const need[] = {"authorization_endpoint", "token_endpoint", "jwks_uri"};
    for (size_t i = 0; i < 3; i++) {
        const char *u = json_string_value(json_object_get(d, need[i]));
        if (u == NULL || (strncmp(u, "https://", 8) != 0 && strncmp(u, "http://", 7) != 0)) {
            snprintf(why, SSO_WHY_MAX, "the discovery document has no usable %s", need[i]);
            return why;
        }
    }
    return NULL;
}

static void start_fetch(struct sso_op *op, const char *url, const char *body, size_t body_len,
                        const char *authorization);

/* ---- sso_begin ---- */

static void begin_with_discovery(struct sso_op *op, json_t *d)
{
    struct sso *s = op->s;
    const struct config_idp *idp = op->idp;
    char buf[SSO_WHY_MAX];
    const char *why = check_discovery(d, idp, buf);
    if (why != NULL) {
        begin_done(op, ERR_PROTOCOL, NULL, why);
        return;
    }
    char state[64], nonce[64], verifier[64], challenge[64], state_hash[TOKEN_HASH_SIZE];
    unsigned char digest[crypto_hash_sha256_BYTES];
    rand_token(state, sizeof(state), 32);
    rand_token(nonce, sizeof(nonce), 32);
    rand_token(verifier, sizeof(verifier), 32);
    crypto_hash_sha256(digest, (const unsigned char *)verifier, strlen(verifier));
    b64url_encode(challenge, sizeof(challenge), digest, sizeof(digest));
    token_hash(state, strlen(state), state_hash);

    json_t *flow = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "provider", idp->name, "issuer",
                             idp->issuer, "nonce", nonce, "verifier", verifier, "return_to",
                             op->return_to, "browser", op->browser);
    int err = flow ? store_ephemeral_put(s->st, "sso", state_hash, flow,
                                         (int64_t)time(NULL) + SSO_FLOW_TTL_S)
                   : ERR_NOMEM;
    json_decref(flow);
    sodium_memzero(verifier, sizeof(verifier));
    if (err) {
        begin_done(op, err, NULL, "the login could not be recorded (store error)");
        return;
    }
    struct buf q;
    buf_init(&q, 16384);
    char scope[1024] = "";
    size_t o = 0;
    for (size_t i = 0; i < idp->nscopes && o < sizeof(scope); i++)
        o += (size_t)snprintf(scope + o, sizeof(scope) - o, "%s%s", i ? " " : "", idp->scopes[i]);
    const char *ep = json_string_value(json_object_get(d, "authorization_endpoint"));
    err = buf_append_str(&q, ep);
    if (err == 0)
        err = buf_append(&q, strchr(ep, '?') ? "&" : "?", 1);
    struct buf f; /* the query on its own, since form_add starts a list at an empty buffer */
    buf_init(&f, 8192);
    if (err == 0)
        err = form_add(&f, "response_type", "code");
    if (err == 0)
        err = form_add(&f, "client_id", idp->client_id);
    if (err == 0)
        err = form_add(&f, "redirect_uri", s->redirect_uri);
    if (err == 0)
        err = form_add(&f, "scope", scope);
    if (err == 0)
        err = form_add(&f, "state", state);
    if (err == 0)
        err = form_add(&f, "nonce", nonce);
    if (err == 0)
        err = form_add(&f, "code_challenge", challenge);
    if (err == 0)
        err = form_add(&f, "code_challenge_method", "S256");
    if (err == 0)
        err = buf_append(&q, f.data, f.len);
    buf_release(&f);
    if (err)
        begin_done(op, err, NULL, "the authorization URL is too long");
    else
        begin_done(op, 0, q.data, NULL);
    buf_release(&q);
}

int sso_begin(struct sso *s, const struct config_idp *idp, const char *return_to,
              const char *browser, sso_begin_cb cb, void *arg, struct sso_op **opp)
{
    if (strlen(return_to) >= sizeof(((struct sso_op *)0)->return_to) || browser == NULL ||
        browser[0] == '\0')
        return ERR_INVAL;
    struct sso_op *op = op_new(s, idp, arg);
    if (op == NULL)
        return ERR_NOMEM;
    op->begin_cb = cb;
    snprintf(op->return_to, sizeof(op->return_to), "%s", return_to);
    token_hash(browser, strlen(browser), op->browser);
    if (opp)
        *opp = NULL;
    char *text = meta_get(idp->issuer, false, SSO_META_TTL_MS, NULL);
    if (text != NULL) {
        json_t *d = json_loads(text, 0, NULL);
        free(text);
        begin_with_discovery(op, d);
        json_decref(d);
        return 0;
    }
    char url[700];
    const char *slash = idp->issuer[strlen(idp->issuer) - 1] == '/' ? "" : "/";
    snprintf(url, sizeof(url), "%s%s.well-known/openid-configuration", idp->issuer, slash);
    op->stage = STAGE_DISCOVERY;
    start_fetch(op, url, NULL, 0, NULL);
    if (opp && op_is_live(s, op))
        *opp = op;
    return 0;
}

/* ---- sso_finish ---- */

static void finish_token(struct sso_op *op, json_t *d);
static void finish_verify(struct sso_op *op, const char *jwks_text);

/* The user name for verified claims: the configured claim, else preferred_username, else a
   verified email, else the subject. An unverified email is never a name: with jit: false the
   name decides which prepared account is taken. */
static const char *claims_name(const struct config_idp *idp, const json_t *claims)
{
    const char *name = NULL;
    if (idp->username_claim)
        name = json_string_value(json_object_get(claims, idp->username_claim));
    if (name == NULL)
        name = json_string_value(json_object_get(claims, "preferred_username"));
    if (name == NULL && json_is_true(json_object_get(claims, "email_verified")))
        name = json_string_value(json_object_get(claims, "email"));
    return name ? name : json_string_value(json_object_get(claims, "sub"));
}

/* Find or create the user the verified claims describe, sync their teams. */
static void finish_user(struct sso_op *op, json_t *claims)
{
    struct sso *s = op->s;
    const struct config_idp *idp = op->idp;
    char why[640];
    const char *sub = json_string_value(json_object_get(claims, "sub"));
    struct store_user u;
    int err = store_identity_find(s->st, idp->name, sub, &u);
    const char *name = claims_name(idp, claims);
    if (err == ERR_NOTFOUND) {
        /* An account an administrator prepared for this person (no password, not linked yet). */
        err = store_identity_adopt(s->st, idp->name, sub, name, &u);
        if (err == 0)
            log_info("sso", "user \"%s\" linked at first login through provider \"%s\"", u.name,
                     idp->name);
    }
    if (err == ERR_NOTFOUND && !idp->jit) {
        snprintf(why, sizeof(why),
                 "\"%.128s\" is not provisioned in Gatehouse and provider \"%s\" has jit: false; "
                 "an administrator must add the user first (gatehouse user add %.128s "
                 "--no-password)",
                 name, idp->name, name);
        finish_done(op, ERR_DENIED, NULL, why);
        return;
    } else if (err == ERR_NOTFOUND) {
        const char *email = json_string_value(json_object_get(claims, "email"));
        struct err_info ei = {0};
        err = store_user_add(s->st, name, email ? email : "", NULL, false, &u, &ei);
        if (err == ERR_EXISTS) {
            snprintf(why, sizeof(why),
                     "a user named \"%.128s\" exists already and is not linked to provider "
                     "\"%s\"; it is not taken over automatically",
                     name, idp->name);
            finish_done(op, ERR_DENIED, NULL, why);
            return;
        }
        if (err == 0)
            err = store_identity_link(s->st, u.id, idp->name, sub);
        if (err) {
            snprintf(why, sizeof(why), "the user could not be created: %s",
                     ei.msg[0] ? ei.msg : err_str(err));
            finish_done(op, err, NULL, why);
            return;
        }
        log_info("sso", "user \"%s\" created at first login through provider \"%s\"", u.name,
                 idp->name);
    } else if (err) {
        finish_done(op, err, NULL, "the user could not be looked up (store error)");
        return;
    }
    if (u.disabled) {
        snprintf(why, sizeof(why), "user \"%s\" is disabled", u.name);
        finish_done(op, ERR_DENIED, NULL, why);
        return;
    }
    if (idp->groups_claim) {
        json_t *g = json_object_get(claims, idp->groups_claim);
        const char *teams[256];
        size_t n = 0;
        size_t i;
        json_t *v;
        json_array_foreach(g, i, v)
        {
            const char *t = json_string_value(v);
            if (t != NULL && n < sizeof(teams) / sizeof(teams[0]) && strlen(t) <= STORE_NAME_MAX)
                teams[n++] = t;
        }
        if (json_is_array(g) && (err = store_team_sync(s->st, u.id, teams, n)) != 0)
            log_warn("sso", "teams of \"%s\" not synchronised from provider \"%s\": %s", u.name,
                     idp->name, err_str(err));
    }
    finish_done(op, 0, &u, NULL);
}

static void finish_verify(struct sso_op *op, const char *jwks_text)
{
    const struct config_idp *idp = op->idp;
    char why[640];
    json_t *jwks = json_loads(jwks_text, 0, NULL);
    json_t *claims = NULL;
    struct err_info ei = {0};
    int err = jwks ? auth_jwt_verify_jwks(jwks, op->id_token, strlen(op->id_token), &claims, &ei)
                   : ERR_PARSE;
    json_decref(jwks);
    if (err && !op->jwks_fresh) {
        /* Perhaps the provider rotated its keys: fetch the JWKS again, once. */
        uint64_t age = 0;
        char *cached = meta_get(idp->issuer, true, SSO_META_TTL_MS, &age);
        free(cached);
        if (age >= SSO_JWKS_MIN_AGE_MS || cached == NULL) {
            char *dtext = meta_get(idp->issuer, false, UINT64_MAX, NULL);
            json_t *d = dtext ? json_loads(dtext, 0, NULL) : NULL;
            free(dtext);
            const char *uri = json_string_value(json_object_get(d, "jwks_uri"));
            if (uri != NULL) {
                op->stage = STAGE_JWKS;
                start_fetch(op, uri, NULL, 0, NULL);
                json_decref(d);
                return;
            }
            json_decref(d);
        }
    }
    if (err) {
        snprintf(why, sizeof(why), "the id_token from provider \"%s\" was refused: %s", idp->name,
                 ei.msg[0] ? ei.msg : err_str(err));
        finish_done(op, ERR_DENIED, NULL, why);
        return;
    }
    /* OpenID Connect Core §3.1.3.7 */
    int64_t now = (int64_t)time(NULL);
    const char *iss = json_string_value(json_object_get(claims, "iss"));
    const char *sub = json_string_value(json_object_get(claims, "sub"));
    const char *nonce = json_string_value(json_object_get(claims, "nonce"));
    const char *want_nonce = json_string_value(json_object_get(op->flow, "nonce"));
    const char *azp = json_string_value(json_object_get(claims, "azp"));
    json_t *aud = json_object_get(claims, "aud");
    json_t *exp = json_object_get(claims, "exp"), *iat = json_object_get(claims, "iat");
    bool aud_ok = false;
    size_t naud = 0;
    if (json_is_string(aud)) {
        aud_ok = strcmp(json_string_value(aud), idp->client_id) == 0;
        naud = 1;
    } else if (json_is_array(aud)) {
        size_t i;
        json_t *v;
        json_array_foreach(aud, i, v) aud_ok |=
            json_is_string(v) && strcmp(json_string_value(v), idp->client_id) == 0;
        naud = json_array_size(aud);
    }
    why[0] = '\0';
    if (iss == NULL || strcmp(iss, idp->issuer) != 0)
        snprintf(why, sizeof(why), "its issuer is \"%.200s\", not %.200s", iss ? iss : "(none)",
                 idp->issuer);
    else if (!aud_ok)
        snprintf(why, sizeof(why), "its audience does not include our client_id \"%.200s\"",
                 idp->client_id);
    else if ((naud > 1 || azp) && (azp == NULL || strcmp(azp, idp->client_id) != 0))
        snprintf(why, sizeof(why), "its authorized party (azp) is not our client_id");
    else if (!json_is_integer(exp) && !json_is_real(exp))
        snprintf(why, sizeof(why), "it has no exp claim");
    else if ((int64_t)json_number_value(exp) + SSO_LEEWAY_S < now)
        snprintf(why, sizeof(why), "it expired at %lld (now %lld)",
                 (long long)json_number_value(exp), (long long)now);
    else if (json_is_number(iat) && (int64_t)json_number_value(iat) > now + SSO_LEEWAY_S)
        snprintf(why, sizeof(why), "it was issued in the future (iat %lld)",
                 (long long)json_number_value(iat));
    else if (nonce == NULL || want_nonce == NULL ||
             !secret_equal(nonce, strlen(nonce), want_nonce, strlen(want_nonce)))
        snprintf(why, sizeof(why), "its nonce does not match the one this login sent");
    else if (sub == NULL || sub[0] == '\0' || strlen(sub) > 255)
        snprintf(why, sizeof(why), "it has no usable sub claim");
    if (why[0]) {
        char full[800];
        snprintf(full, sizeof(full), "the id_token from provider \"%s\" was refused: %s", idp->name,
                 why);
        json_decref(claims);
        finish_done(op, ERR_DENIED, NULL, full);
        return;
    }
    finish_user(op, claims);
    json_decref(claims);
}

/* The discovery document is in hand: exchange the code. */
static void finish_token(struct sso_op *op, json_t *d)
{
    struct sso *s = op->s;
    const struct config_idp *idp = op->idp;
    char buf[SSO_WHY_MAX];
    const char *why = check_discovery(d, idp, buf);
    if (why != NULL) {
        finish_done(op, ERR_PROTOCOL, NULL, why);
        return;
    }
    struct buf body;
    buf_init(&body, 16384);
    const char *secret = idp_secret(s, idp);
    int err = form_add(&body, "grant_type", "authorization_code");
    if (err == 0)
        err = form_add(&body, "code", op->code);
    if (err == 0)
        err = form_add(&body, "redirect_uri", s->redirect_uri);
    if (err == 0)
        err = form_add(&body, "code_verifier",
                       json_string_value(json_object_get(op->flow, "verifier")));
    if (err == 0 && secret == NULL)
        err = form_add(&body, "client_id", idp->client_id);
    char *authz = NULL;
    if (err == 0 && secret != NULL) {
        /* client_secret_basic: id and secret are form-encoded before base64 (RFC 6749 §2.3.1) */
        struct buf cred;
        buf_init(&cred, 4096);
        err = oauth_url_encode(&cred, idp->client_id);
        if (err == 0)
            err = buf_append(&cred, ":", 1);
        if (err == 0)
            err = oauth_url_encode(&cred, secret);
        if (err == 0) {
            size_t outlen = sodium_base64_ENCODED_LEN(cred.len, sodium_base64_VARIANT_ORIGINAL) + 6;
            if ((authz = malloc(outlen)) != NULL) {
                memcpy(authz, "Basic ", 6);
                sodium_bin2base64(authz + 6, outlen - 6, (const unsigned char *)cred.data, cred.len,
                                  sodium_base64_VARIANT_ORIGINAL);
            } else {
                err = ERR_NOMEM;
            }
        }
        sodium_memzero(cred.data, cred.cap);
        buf_release(&cred);
    }
    if (err) {
        buf_release(&body);
        secret_free(authz);
        finish_done(op, err, NULL, "the token request could not be built");
        return;
    }
    op->stage = STAGE_TOKEN;
    start_fetch(op, json_string_value(json_object_get(d, "token_endpoint")), body.data, body.len,
                authz);
    sodium_memzero(body.data, body.cap);
    buf_release(&body);
    secret_free(authz);
}

int sso_finish(struct sso *s, const char *state, const char *code, const char *iss,
               const char *error, const char *error_description, const char *browser,
               sso_finish_cb cb, void *arg, struct sso_op **opp)
{
    char why[700];
    char state_hash[TOKEN_HASH_SIZE];
    json_t *flow = NULL;
    if (opp)
        *opp = NULL;
    if (state == NULL || state[0] == '\0') {
        cb(arg, ERR_INVAL, NULL, NULL, "the identity provider's answer has no state parameter");
        return 0;
    }
    token_hash(state, strlen(state), state_hash);
    if (store_ephemeral_take(s->st, "sso", state_hash, &flow) != 0) {
        cb(arg, ERR_NOTFOUND, NULL, NULL,
           "this login is unknown, already finished or expired (logins must come back within "
           "10 minutes); start again");
        return 0;
    }
    const char *provider = json_string_value(json_object_get(flow, "provider"));
    const struct config_idp *idp = provider ? sso_provider(s, provider) : NULL;
    const char *flow_iss = json_string_value(json_object_get(flow, "issuer"));
    if (idp == NULL || flow_iss == NULL || strcmp(flow_iss, idp->issuer) != 0) {
        json_decref(flow);
        cb(arg, ERR_NOTFOUND, NULL, NULL,
           "the identity provider of this login is no longer configured; start again");
        return 0;
    }
    /* Login CSRF: the callback must come back to the browser that started this login. */
    const char *want = json_string_value(json_object_get(flow, "browser"));
    char got[TOKEN_HASH_SIZE] = "";
    if (browser != NULL && browser[0] != '\0')
        token_hash(browser, strlen(browser), got);
    if (want == NULL || !secret_equal(want, strlen(want), got, strlen(got))) {
        json_decref(flow);
        cb(arg, ERR_DENIED, NULL, NULL,
           "this login was started in another browser (its sign-in cookie is missing or "
           "different), so its answer is refused; start again from the application");
        return 0;
    }
    struct sso_op *op = op_new(s, idp, arg);
    if (op == NULL) {
        json_decref(flow);
        return ERR_NOMEM;
    }
    op->finishing = true;
    op->finish_cb = cb;
    op->flow = flow;
    const char *return_to = json_string_value(json_object_get(flow, "return_to"));
    snprintf(op->return_to, sizeof(op->return_to), "%s", return_to ? return_to : "");
    if (error != NULL) {
        snprintf(why, sizeof(why), "identity provider \"%s\" refused the login: %.64s%s%.300s",
                 idp->name, error, error_description ? ": " : "",
                 error_description ? error_description : "");
        for (char *p = why; *p;
             p++) /* the provider's words go into HTML and logs: keep them tame */
            if ((unsigned char)*p < 0x20 || *p == '<' || *p == '>')
                *p = ' ';
        finish_done(op, ERR_DENIED, NULL, why);
        return 0;
    }
    /* RFC 9207: the iss parameter, when present, must name the provider this login went to. */
    if (iss != NULL && strcmp(iss, idp->issuer) != 0) {
        snprintf(why, sizeof(why),
                 "the answer claims to come from issuer \"%.200s\", but this login went to "
                 "provider \"%s\" (%.200s); refused as a mix-up",
                 iss, idp->name, idp->issuer);
        finish_done(op, ERR_DENIED, NULL, why);
        return 0;
    }
    if (code == NULL || code[0] == '\0' || (op->code = strdup(code)) == NULL) {
        finish_done(op, ERR_INVAL, NULL, "the identity provider's answer has no code");
        return 0;
    }
    char *text = meta_get(idp->issuer, false, UINT64_MAX, NULL);
    json_t *d = text ? json_loads(text, 0, NULL) : NULL;
    free(text);
    if (d != NULL && iss == NULL &&
        json_is_true(json_object_get(d, "authorization_response_iss_parameter_supported"))) {
        json_decref(d);
        snprintf(why, sizeof(why),
                 "provider \"%s\" promises the iss parameter (RFC 9207) but the answer has none; "
                 "refused as a possible mix-up",
                 idp->name);
        finish_done(op, ERR_DENIED, NULL, why);
        return 0;
    }
    if (d == NULL) {
        char url[700];
        snprintf(url, sizeof(url), "%s%s.well-known/openid-configuration", idp->issuer,
                 idp->issuer[strlen(idp->issuer) - 1] == '/' ? "" : "/");
        op->stage = STAGE_DISCOVERY;
        start_fetch(op, url, NULL, 0, NULL);
    } else {
        finish_token(op, d);
        json_decref(d);
    }
    if (opp && op_is_live(s, op))
        *opp = op;
    return 0;
}

/* ---- fetch completion, for every stage ---- */

static void fetch_done(void *arg, int err, const struct fetch_response *r, const char *fwhy)
{
    struct sso_op *op = arg;
    const struct config_idp *idp = op->idp;
    char why[800];
    op->fetch = NULL;
    static const char *const what[] = {"discovery document", "token endpoint", "JWKS"};
    json_t *j = NULL;
    if (err == 0) {
        json_error_t je;
        j = json_loadb(r->body, r->len, 0, &je);
        if (r->status != 200 && op->stage == STAGE_TOKEN) {
            const char *e = json_string_value(json_object_get(j, "error"));
            const char *ed = json_string_value(json_object_get(j, "error_description"));
            snprintf(why, sizeof(why),
                     "the token endpoint of provider \"%s\" answered HTTP %ld%s%.64s%s%.300s",
                     idp->name, r->status, e ? ": " : "", e ? e : "", ed ? ": " : "", ed ? ed : "");
            err = ERR_DENIED;
        } else if (r->status != 200) {
            snprintf(why, sizeof(why), "the %s of provider \"%s\" answered HTTP %ld",
                     what[op->stage], idp->name, r->status);
            err = ERR_UNAVAILABLE;
        } else if (!json_is_object(j)) {
            snprintf(why, sizeof(why), "the %s of provider \"%s\" is not a JSON object",
                     what[op->stage], idp->name);
            err = ERR_PROTOCOL;
        }
    } else {
        snprintf(why, sizeof(why), "the %s of provider \"%s\" could not be fetched: %s",
                 what[op->stage], idp->name, fwhy ? fwhy : err_str(err));
    }
    if (err) {
        json_decref(j);
        if (op->finishing)
            finish_done(op, err, NULL, why);
        else
            begin_done(op, err, NULL, why);
        return;
    }
    switch (op->stage) {
    case STAGE_DISCOVERY:
        if (check_discovery(j, idp, why) == NULL) {
            char *text = json_dumps(j, JSON_COMPACT);
            if (text)
                meta_put(idp->issuer, false, text);
            free(text);
        }
        if (op->finishing)
            finish_token(op, j);
        else
            begin_with_discovery(op, j);
        break;
    case STAGE_TOKEN: {
        const char *idt = json_string_value(json_object_get(j, "id_token"));
        if (idt == NULL || (op->id_token = strdup(idt)) == NULL) {
            snprintf(why, sizeof(why),
                     "the token response of provider \"%s\" has no id_token (is \"openid\" among "
                     "the scopes?)",
                     idp->name);
            finish_done(op, ERR_PROTOCOL, NULL, why);
            break;
        }
        char *jwks = meta_get(idp->issuer, true, SSO_META_TTL_MS, NULL);
        if (jwks != NULL) {
            finish_verify(op, jwks);
            free(jwks);
            break;
        }
        char *dtext = meta_get(idp->issuer, false, UINT64_MAX, NULL);
        json_t *d = dtext ? json_loads(dtext, 0, NULL) : NULL;
        free(dtext);
        op->stage = STAGE_JWKS;
        start_fetch(op, json_string_value(json_object_get(d, "jwks_uri")), NULL, 0, NULL);
        json_decref(d);
        break;
    }
    case STAGE_JWKS: {
        char *text = json_dumps(j, JSON_COMPACT);
        if (text != NULL) {
            meta_put(idp->issuer, true, text);
            op->jwks_fresh = true;
            finish_verify(op, text);
        } else {
            finish_done(op, ERR_NOMEM, NULL, "out of memory");
        }
        free(text);
        break;
    }
    }
    json_decref(j);
}

static void start_fetch(struct sso_op *op, const char *url, const char *body, size_t body_len,
                        const char *authorization)
{
    struct fetch_request req = {
        .url = url,
        .method = body ? "POST" : "GET",
        .body = body,
        .body_len = body_len,
        .content_type = body ? "application/x-www-form-urlencoded" : NULL,
        .accept = "application/json",
        .authorization = authorization,
        .max_size = SSO_FETCH_MAX,
        .timeout_ms = SSO_FETCH_TIMEOUT_MS,
        .max_redirects = body ? 0 : 2,
        /* The providers are configured by the administrator, and are often internal. */
        .allow_private = true,
    };
    int err = url ? fetch_start(op->s->fetcher, &req, fetch_done, op, &op->fetch) : ERR_INVAL;
    if (err) {
        char why[300];
        snprintf(why, sizeof(why), "provider \"%s\" could not be contacted: %s", op->idp->name,
                 err == ERR_INVAL ? "its URL is not http(s)" : err_str(err));
        if (op->finishing)
            finish_done(op, err, NULL, why);
        else
            begin_done(op, err, NULL, why);
    }
}
