/*
 * Access tokens: issuing them (RFC 9068 claims) and validating the credential of every MCP
 * request. A validator belongs to one worker thread and takes no lock. Its cache maps the
 * SHA-256 of a presented credential to the verdict reached for it (the principal, or the
 * refusal's message), so a token costs one signature check and a few store reads the first
 * time and a hash and a table probe afterwards. The cache is flushed, and the keyring reloaded,
 * whenever the store's revocation sequence moves, which any revocation, disabled user or key
 * change does from any thread or process. Refusals are cached briefly too, so a flood of one
 * forged token costs one signature check per NEG_TTL_S; an absent credential is never cached.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <sodium.h>

#include "auth/auth-int.h"
#include "core/log.h"
#include "core/rand.h"

#define CACHE_SLOTS 32768 /* power of two; at most half used */
#define CACHE_MAX (CACHE_SLOTS / 2)
#define NEG_TTL_S 10     /* how long a refusal is remembered */
#define APIKEY_TTL_S 300 /* how long an API key's argon2id verdict is remembered */
#define APIKEY_PREFIX "ghk_"

/* One remembered verdict. The strings (name, client_id, scope, resource; or msg, resource) sit
   in one allocation after the struct. */
#define KEY_LEN 32 /* SHA-256 of the credential */

struct cache_entry {
    unsigned char key[KEY_LEN];
    enum auth_verdict verdict;
    enum principal_kind kind;
    int64_t id, expires_at, cache_until;
    char credential_id[48];
    const char *name, *client_id, *scope, *msg;
    const char *resource; /* the audience it was checked against; NULL for API keys */
};

struct auth_validator {
    struct store *st;
    unsigned char master[AUTH_MASTER_KEY_LEN];
    char *issuer;
    uint32_t access_ttl_s;
    struct auth_keyring *kr;
    uint64_t seq;
    bool seq_known;
    struct cache_entry **slots;
    size_t count;
    EVP_MD *sha256; /* fetched once: OpenSSL's (SHA-NI) SHA-256 is 4x libsodium's here */
    EVP_MD_CTX *md;
    /* Set by auth_lookup_apply for the auth_validate call that follows it: the store's answer
       for that credential, read off the loop; auth_validate then makes no store call. */
    const struct auth_lookup *ready;
    struct store_seq_memo memo; /* the last sequence a lookup read, and whether it stands */
};

/* The store's part of validating one credential, made on a store connection of any thread
   (auth_lookup_run): the revocation sequence, the keyring when it moved, and the checks of a
   credential the cache holds no verdict for. */
struct auth_lookup {
    struct auth_validator *v; /* only on the loop */
    unsigned char key[KEY_LEN];
    char *cred;
    size_t cred_len;
    bool apikey, cached, seq_known;
    const char *issuer; /* the validator's: it outlives the pool's jobs (stopped first) */
    char *resource;
    unsigned char master[AUTH_MASTER_KEY_LEN];
    uint32_t access_ttl_s;
    uint64_t seq_before;
    struct auth_keyring *kr; /* a reference to the validator's at submission */
    int64_t now;
    int64_t cached_user; /* the cached verdict's user id (0: not a user) */
    bool local;          /* the sequence is known without the store (memo) and the verdict cached */
    char *account;       /* a client certificate's service account (auth_lookup_account) */
    int acct_rc;
    struct store_account acct;
    struct store_seq_memo memo;
    /* results */
    int seq_rc;
    uint64_t seq;
    struct auth_keyring *new_kr; /* loaded when the sequence moved */
    bool checked;
    int rc;
    struct principal p;
    int64_t until;
    struct err_info ei;
};

int auth_issue_access(const struct auth_keyring *kr, const char *issuer, struct principal *p,
                      const char *resource, uint32_t ttl_s, char **out)
{
    char sub[32], jti[32];
    if (p->kind != PRINCIPAL_USER)
        return ERR_INVAL;
    int64_t now = (int64_t)time(NULL), exp = now + (int64_t)ttl_s;
    snprintf(sub, sizeof(sub), "user:%lld", (long long)p->id);
    rand_token(jti, sizeof(jti), 16);
    json_t *claims = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:s, s:s, s:s, s:s}", "iss", issuer,
                               "sub", sub, "aud", resource, "exp", (json_int_t)exp, "iat",
                               (json_int_t)now, "nbf", (json_int_t)now, "jti", jti, "client_id",
                               p->client_id, "scope", p->scope, "name", p->name);
    if (!claims)
        return ERR_NOMEM;
    int rc = auth_jwt_sign(kr, claims, out);
    json_decref(claims);
    if (rc == 0) {
        snprintf(p->credential_id, sizeof(p->credential_id), "%s", jti);
        p->expires_at = exp;
    }
    return rc;
}

/* ---- the cache ---- */

static size_t slot_of(const unsigned char *key)
{
    uint64_t h;
    memcpy(&h, key, sizeof(h)); /* a SHA-256 is uniform already */
    return (size_t)h & (CACHE_SLOTS - 1);
}

static int credential_key(struct auth_validator *v, const char *cred, size_t len,
                          unsigned char key[KEY_LEN])
{
    unsigned int n;
    return EVP_DigestInit_ex(v->md, v->sha256, NULL) == 1 &&
                   EVP_DigestUpdate(v->md, cred, len) == 1 &&
                   EVP_DigestFinal_ex(v->md, key, &n) == 1 && n == KEY_LEN
               ? 0
               : ERR_INTERNAL;
}

static void cache_flush(struct auth_validator *v)
{
    if (v->count == 0)
        return;
    for (size_t i = 0; i < CACHE_SLOTS; i++) {
        free(v->slots[i]);
        v->slots[i] = NULL;
    }
    v->count = 0;
}

/* The slot holding key, or the empty slot where it would go. */
static struct cache_entry **cache_probe(struct auth_validator *v, const unsigned char *key)
{
    size_t i = slot_of(key);
    while (v->slots[i] && memcmp(v->slots[i]->key, key, KEY_LEN) != 0)
        i = (i + 1) & (CACHE_SLOTS - 1);
    return &v->slots[i];
}

static char *put_str(char **at, const char *s)
{
    char *r = *at;
    size_t n = strlen(s) + 1;
    memcpy(r, s, n);
    *at += n;
    return r;
}

/* Remember a verdict: p on AUTH_OK, else msg. resource NULL = any resource (API keys). */
static void cache_put(struct auth_validator *v, const unsigned char *key, enum auth_verdict verdict,
                      const struct principal *p, const char *msg, const char *resource,
                      int64_t until)
{
    if (v->count >= CACHE_MAX)
        cache_flush(v); /* rare and bounded: every entry is one verification away */
    size_t n = sizeof(struct cache_entry) + (resource ? strlen(resource) + 1 : 0) +
               (verdict == AUTH_OK ? strlen(p->name) + strlen(p->client_id) + strlen(p->scope) + 3
                                   : strlen(msg) + 1);
    struct cache_entry *e = malloc(n);
    if (!e)
        return;
    char *at = (char *)(e + 1);
    memset(e, 0, sizeof(*e));
    memcpy(e->key, key, sizeof(e->key));
    e->verdict = verdict;
    e->cache_until = until;
    e->resource = resource ? put_str(&at, resource) : NULL;
    if (verdict == AUTH_OK) {
        e->kind = p->kind;
        e->id = p->id;
        e->expires_at = p->expires_at;
        memcpy(e->credential_id, p->credential_id, sizeof(e->credential_id));
        e->name = put_str(&at, p->name);
        e->client_id = put_str(&at, p->client_id);
        e->scope = put_str(&at, p->scope);
    } else {
        e->msg = put_str(&at, msg);
    }
    struct cache_entry **slot = cache_probe(v, key);
    if (*slot)
        free(*slot); /* an expired verdict, or one for another resource */
    else
        v->count++;
    *slot = e;
}

static void entry_principal(const struct cache_entry *e, struct principal *p)
{
    memset(p, 0, sizeof(*p));
    p->kind = e->kind;
    p->id = e->id;
    p->expires_at = e->expires_at;
    memcpy(p->credential_id, e->credential_id, sizeof(p->credential_id));
    /* the lengths were bounded by the same fields when the entry was made */
    memcpy(p->name, e->name, strlen(e->name) + 1);
    memcpy(p->client_id, e->client_id, strlen(e->client_id) + 1);
    memcpy(p->scope, e->scope, strlen(e->scope) + 1);
}

/* ---- the validator ---- */

/* Follow the store: when its revocation sequence moved, forget every verdict and reload the
   keys (a key rotation moves it too). A failure keeps the previous keyring and is logged. */
static void validator_sync(struct auth_validator *v)
{
    uint64_t seq;
    struct err_info ei = {0};
    struct auth_keyring *kr;
    if (store_revocation_seq(v->st, &seq) != 0) {
        log_warn("auth.seq", "cannot read the revocation sequence; cached verdicts flushed");
        cache_flush(v);
        return;
    }
    if (v->seq_known && seq == v->seq && v->kr)
        return;
    cache_flush(v);
    if (auth_keyring_load(v->st, v->master, v->access_ttl_s + AUTH_LEEWAY_S, &kr, &ei) == 0) {
        auth_keyring_unref(v->kr);
        v->kr = kr;
    } else {
        log_error("auth.keyring", "cannot reload the signing keys: %s", ei.msg);
    }
    v->seq = seq;
    v->seq_known = true;
}

int auth_validator_new(struct store *st, const unsigned char master[AUTH_MASTER_KEY_LEN],
                       const char *issuer, uint32_t access_ttl_s, struct auth_validator **out,
                       struct err_info *ei)
{
    struct auth_validator *v = calloc(1, sizeof(*v));
    if (!v || !(v->issuer = strdup(issuer)) ||
        !(v->slots = calloc(CACHE_SLOTS, sizeof(*v->slots))) ||
        !(v->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL)) || !(v->md = EVP_MD_CTX_new())) {
        auth_validator_free(v);
        return ERR_NOMEM;
    }
    v->st = st;
    memcpy(v->master, master, AUTH_MASTER_KEY_LEN);
    v->access_ttl_s = access_ttl_s;
    int rc = auth_keyring_load(st, master, access_ttl_s + AUTH_LEEWAY_S, &v->kr, ei);
    if (rc == 0)
        rc = store_revocation_seq(st, &v->seq);
    if (rc) {
        auth_validator_free(v);
        return rc;
    }
    v->seq_known = true;
    *out = v;
    return 0;
}

void auth_validator_free(struct auth_validator *v)
{
    if (!v)
        return;
    if (v->slots) {
        cache_flush(v);
        free(v->slots);
    }
    auth_keyring_unref(v->kr);
    EVP_MD_CTX_free(v->md);
    EVP_MD_free(v->sha256);
    free(v->issuer);
    sodium_memzero(v->master, sizeof(v->master));
    free(v);
}

const struct auth_keyring *auth_validator_keyring(struct auth_validator *v)
{
    validator_sync(v);
    return v->kr;
}

static void iso_time(int64_t t, char *out, size_t n)
{
    struct tm tm;
    time_t tt = (time_t)t;
    if (!gmtime_r(&tt, &tm) || !strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(out, n, "%lld", (long long)t);
}

/* Why a check could not be completed (not the token's fault): never cached. STORE_FAILED: the
   store did not answer (a temporary error, AUTH_UNAVAILABLE). */
#define UNCACHEABLE (-1)
#define STORE_FAILED (-2)

#define TIME_MAX 253402300799.0 /* 9999-12-31T23:59:59Z: keeps the arithmetic below in range */

/* A NumericDate claim in [0, TIME_MAX] (fractions truncated); false when absent or not one. */
static bool claim_time(const json_t *claims, const char *name, int64_t *out)
{
    const json_t *j = json_object_get(claims, name);
    double t = json_number_value(j);
    if (!json_is_number(j) || !(t >= 0 && t <= TIME_MAX)) /* NaN fails too */
        return false;
    *out = json_is_integer(j) ? (int64_t)json_integer_value(j) : (int64_t)t;
    return true;
}

static bool aud_has(const json_t *aud, const char *resource)
{
    size_t i;
    const json_t *a;
    if (json_is_string(aud))
        return strcmp(json_string_value(aud), resource) == 0;
    json_array_foreach(aud, i, a) if (json_is_string(a) &&
                                      strcmp(json_string_value(a), resource) == 0) return true;
    return false;
}

/* The claims of a verified token (RFC 9068 §4), then the store's word on its user, client and
   jti. Returns 0 (p filled, *until set), ERR_DENIED (refused, cacheable) or UNCACHEABLE. */
static int check_claims(struct store *st, const char *issuer, const json_t *header,
                        const json_t *claims, const char *resource, int64_t now,
                        struct principal *p, int64_t *until, struct err_info *ei)
{
    char q[STORE_RESOURCE_MAX + 8], t[40];
    int64_t exp, nbf, iat;
    long long uid;
    int n = 0;
    const char *typ = json_string_value(json_object_get(header, "typ"));
    if (!typ || (strcasecmp(typ, "at+jwt") != 0 && strcasecmp(typ, "application/at+jwt") != 0))
        return err_info_set(ei, ERR_DENIED, 0, 0, "the token is not an access token (typ %s)",
                            typ ? "is not at+jwt" : "is missing");
    const char *iss = json_string_value(json_object_get(claims, "iss"));
    if (!iss || strcmp(iss, issuer) != 0) {
        auth_quote(iss ? iss : "(none)", q, sizeof(q));
        return err_info_set(ei, ERR_DENIED, 0, 0, "the token's issuer is %s, not %s", q, issuer);
    }
    const json_t *aud = json_object_get(claims, "aud");
    if (!aud_has(aud, resource)) {
        auth_quote(json_is_string(aud) ? json_string_value(aud) : "not this resource", q,
                   sizeof(q));
        return err_info_set(ei, ERR_DENIED, 0, 0, "the token's audience is %s, not %s", q,
                            resource);
    }
    if (!claim_time(claims, "exp", &exp) || !claim_time(claims, "iat", &iat))
        return err_info_set(ei, ERR_DENIED, 0, 0, "the token lacks a valid exp or iat claim");
    if (now > exp + AUTH_LEEWAY_S) {
        iso_time(exp, t, sizeof(t));
        return err_info_set(ei, ERR_DENIED, 0, 0, "the token has expired (exp %s)", t);
    }
    if (json_object_get(claims, "nbf") && !claim_time(claims, "nbf", &nbf))
        return err_info_set(ei, ERR_DENIED, 0, 0, "the token's nbf is not a valid time");
    if (json_object_get(claims, "nbf") && now + AUTH_LEEWAY_S < nbf) {
        iso_time(nbf, t, sizeof(t));
        err_info_set(ei, ERR_DENIED, 0, 0, "the token is not valid yet (nbf %s)", t);
        return UNCACHEABLE; /* it will be */
    }
    if (iat > now + AUTH_LEEWAY_S)
        return err_info_set(ei, ERR_DENIED, 0, 0, "the token was issued in the future (iat)");
    const char *sub = json_string_value(json_object_get(claims, "sub"));
    const char *jti = json_string_value(json_object_get(claims, "jti"));
    const char *cid = json_string_value(json_object_get(claims, "client_id"));
    const char *scope = json_string_value(json_object_get(claims, "scope"));
    if (!sub || sscanf(sub, "user:%lld%n", &uid, &n) != 1 || sub[n] != '\0' || uid <= 0)
        return err_info_set(ei, ERR_DENIED, 0, 0, "the token's sub does not name a user");
    if (!jti || !*jti || strlen(jti) >= sizeof(p->credential_id) || !cid ||
        strlen(cid) > STORE_CLIENT_ID_MAX || (scope && strlen(scope) > STORE_SCOPE_MAX))
        return err_info_set(ei, ERR_DENIED, 0, 0, "the token lacks a valid jti or client_id");

    struct store_user u;
    struct store_client c;
    bool revoked = false;
    int rc = store_user_get(st, (int64_t)uid, &u);
    if (rc == ERR_NOTFOUND)
        return err_info_set(ei, ERR_DENIED, 0, 0, "the token's user no longer exists");
    if (rc)
        goto store_failed;
    if (u.disabled)
        return err_info_set(ei, ERR_DENIED, 0, 0, "user %s is disabled", u.name);
    if (u.tokens_valid_after > iat) {
        iso_time(u.tokens_valid_after, t, sizeof(t));
        return err_info_set(ei, ERR_DENIED, 0, 0,
                            "the token was revoked (every token of user %s issued before %s)",
                            u.name, t);
    }
    rc = store_client_get(st, cid, &c);
    if (rc == ERR_NOTFOUND)
        return err_info_set(ei, ERR_DENIED, 0, 0, "the token's client is no longer registered");
    if (rc)
        goto store_failed;
    revoked = c.revoked;
    store_client_release(&c);
    if (revoked)
        return err_info_set(ei, ERR_DENIED, 0, 0, "the token's client was revoked");
    if ((rc = store_jti_revoked(st, jti, &revoked)))
        goto store_failed;
    if (revoked)
        return err_info_set(ei, ERR_DENIED, 0, 0, "the token was revoked");

    memset(p, 0, sizeof(*p));
    p->kind = PRINCIPAL_USER;
    p->id = u.id;
    snprintf(p->name, sizeof(p->name), "%s", u.name);
    snprintf(p->client_id, sizeof(p->client_id), "%s", cid);
    snprintf(p->scope, sizeof(p->scope), "%s", scope ? scope : "");
    snprintf(p->credential_id, sizeof(p->credential_id), "%s", jti);
    p->expires_at = exp;
    *until = exp + AUTH_LEEWAY_S;
    return 0;
store_failed:
    err_info_set(ei, ERR_UNAVAILABLE, 0, 0,
                 "the token could not be checked: the store (%s) failed (%s); retry shortly",
                 store_backend_name(st), err_str(rc));
    return STORE_FAILED;
}

static int check_jwt(const struct auth_keyring *kr, struct store *st, const char *issuer,
                     const char *tok, size_t len, const char *resource, int64_t now,
                     struct principal *p, int64_t *until, struct err_info *ei)
{
    json_t *header = NULL, *claims = NULL;
    if (!kr)
        return err_info_set(ei, ERR_DENIED, 0, 0, "no signing keys are available");
    int rc = auth_jwt_verify_full(kr, tok, len, &header, &claims, ei);
    if (rc == ERR_NOMEM)
        rc = UNCACHEABLE;
    else if (rc)
        rc = ERR_DENIED;
    else
        rc = check_claims(st, issuer, header, claims, resource, now, p, until, ei);
    json_decref(header);
    json_decref(claims);
    return rc;
}

static int check_apikey(struct store *st, const char *key, size_t len, int64_t now,
                        struct principal *p, int64_t *until, struct err_info *ei)
{
    struct store_account a;
    char id[32];
    int rc = store_apikey_check(st, key, len, &a, id);
    if (rc == ERR_DENIED)
        return err_info_set(ei, ERR_DENIED, 0, 0,
                            "the API key is not valid (unknown, revoked, or its account is "
                            "disabled)");
    if (rc) {
        err_info_set(ei, ERR_UNAVAILABLE, 0, 0,
                     "the API key could not be checked: the store (%s) failed (%s); retry shortly",
                     store_backend_name(st), err_str(rc));
        return STORE_FAILED;
    }
    memset(p, 0, sizeof(*p));
    p->kind = PRINCIPAL_SERVICE;
    p->id = a.id;
    snprintf(p->name, sizeof(p->name), "%s", a.name);
    snprintf(p->credential_id, sizeof(p->credential_id), "%s", id);
    *until = now + APIKEY_TTL_S;
    return 0;
}

/* The characters of a token68 (RFC 7235 §2.1): letters, digits, -._~+/ and trailing =. */
static const bool token68[256] = {
    ['-'] = 1, ['.'] = 1, ['_'] = 1, ['~'] = 1, ['+'] = 1, ['/'] = 1, ['='] = 1, ['0'] = 1,
    ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1, ['8'] = 1,
    ['9'] = 1, ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1,
    ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1,
    ['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1,
    ['X'] = 1, ['Y'] = 1, ['Z'] = 1, ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1,
    ['f'] = 1, ['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1,
    ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1,
    ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1,
};

/* "Bearer <token>": the scheme case-insensitively, one space, one token68 (RFC 7235 §2.1). */
static enum auth_verdict parse_bearer(const char *h, size_t len, const char **tok, size_t *tlen,
                                      struct err_info *ei)
{
    char q[24];
    size_t i = 0;
    while (i < len && h[i] != ' ')
        i++;
    if (i != 6 || strncasecmp(h, "Bearer", 6) != 0) {
        snprintf(q, sizeof(q), "%.*s", (int)(i < 16 ? i : 16), h);
        auth_quote(q, q, sizeof(q));
        err_info_set(ei, ERR_DENIED, 0, 0,
                     "the Authorization scheme \"%s\" is not accepted; send \"Bearer <token>\"", q);
        return AUTH_INVALID;
    }
    *tok = h + 7;
    *tlen = len > 7 ? len - 7 : 0;
    if (*tlen == 0) {
        err_info_set(ei, ERR_DENIED, 0, 0, "the Authorization header has no token after Bearer");
        return AUTH_INVALID;
    }
    for (i = 0; i < *tlen; i++) {
        if (!token68[(unsigned char)(*tok)[i]]) {
            err_info_set(ei, ERR_DENIED, 0, 0,
                         "the Authorization header holds more than one bearer token, or "
                         "characters a token cannot have");
            return AUTH_INVALID;
        }
    }
    return AUTH_OK;
}

static bool scope_has(const char *scopes, const char *want)
{
    size_t n = strlen(want);
    for (const char *s = scopes; *s;) {
        size_t l = strcspn(s, " ");
        if (l == n && memcmp(s, want, n) == 0)
            return true;
        s += l;
        s += strspn(s, " ");
    }
    return false;
}

enum auth_verdict auth_validate(struct auth_validator *v, const char *authorization, size_t len,
                                const char *resource, const char *required_scope,
                                struct principal *p, struct err_info *ei)
{
    const char *tok;
    size_t tlen;
    unsigned char key[KEY_LEN];
    struct principal got;
    struct err_info local;
    int64_t now = (int64_t)time(NULL), until = 0;
    if (!ei)
        ei = &local; /* the message is cached with the verdict */
    if (!authorization || len == 0) {
        err_info_set(ei, ERR_DENIED, 0, 0, "no credential: send \"Authorization: Bearer <token>\"");
        return AUTH_MISSING;
    }
    const struct auth_lookup *l = v->ready;
    v->ready = NULL; /* for this call only */
    if (parse_bearer(authorization, len, &tok, &tlen, ei) != AUTH_OK)
        return AUTH_INVALID;
    if (l == NULL)
        validator_sync(v);
    bool apikey =
        tlen > strlen(APIKEY_PREFIX) && memcmp(tok, APIKEY_PREFIX, strlen(APIKEY_PREFIX)) == 0;
    if (l != NULL && l->account == NULL && l->cred_len == tlen && memcmp(l->cred, tok, tlen) == 0) {
        memcpy(key, l->key, KEY_LEN); /* hashed already by auth_lookup_new */
    } else if (credential_key(v, tok, tlen, key) != 0) {
        err_info_set(ei, ERR_INTERNAL, 0, 0, "the credential could not be hashed");
        return AUTH_INVALID;
    }
    struct cache_entry **slot = cache_probe(v, key), *e = *slot;
    if (!e || e->cache_until < now || (e->resource && strcmp(e->resource, resource) != 0)) {
        int rc;
        bool cache = true;
        if (l != NULL && l->checked && memcmp(l->key, key, KEY_LEN) == 0 &&
            strcmp(l->resource, resource) == 0) {
            /* what the store said off the loop; cached only when it was read at the sequence
               in force (an older read may predate a revocation this worker knows of) */
            rc = l->rc;
            got = l->p;
            until = l->until;
            *ei = l->ei;
            cache = l->seq_rc == 0 && v->seq_known && l->seq == v->seq;
        } else { /* no lookup, or the verdict it saw went meanwhile: ask the store here */
            rc = apikey ? check_apikey(v->st, tok, tlen, now, &got, &until, ei)
                        : check_jwt(v->kr, v->st, v->issuer, tok, tlen, resource, now, &got, &until,
                                    ei);
        }
        if (rc == STORE_FAILED)
            return AUTH_UNAVAILABLE;
        if (rc == UNCACHEABLE)
            return AUTH_INVALID;
        if (cache)
            cache_put(v, key, rc ? AUTH_INVALID : AUTH_OK, &got, ei->msg, apikey ? NULL : resource,
                      rc ? now + NEG_TTL_S : until);
        if (rc)
            return AUTH_INVALID;
    } else if (e->verdict != AUTH_OK) {
        err_info_set(ei, ERR_DENIED, 0, 0, "%s", e->msg);
        return e->verdict;
    } else {
        entry_principal(e, &got);
    }
    if (got.kind == PRINCIPAL_USER && required_scope && !scope_has(got.scope, required_scope)) {
        char q[STORE_SCOPE_MAX + 8];
        auth_quote(required_scope, q, sizeof(q));
        err_info_set(ei, ERR_DENIED, 0, 0, "scope \"%s\" is required", q);
        return AUTH_INSUFFICIENT_SCOPE;
    }
    *p = got;
    return AUTH_OK;
}

enum auth_verdict auth_validate_account(struct auth_validator *v, const char *account,
                                        const char *credential_id, int64_t not_after,
                                        struct principal *p, struct err_info *ei)
{
    unsigned char key[KEY_LEN];
    char cred[48 + STORE_NAME_MAX + 8];
    struct err_info local;
    int64_t now = (int64_t)time(NULL);
    if (!ei)
        ei = &local;
    /* Cached apart from bearer credentials: the text cannot be a token (it holds a space). */
    int n = snprintf(cred, sizeof(cred), "x509 %s %s", credential_id, account);
    const struct auth_lookup *l = v->ready;
    if (l == NULL)
        validator_sync(v);
    v->ready = NULL;
    if (n < 0 || (size_t)n >= sizeof(cred) || credential_key(v, cred, (size_t)n, key) != 0) {
        err_info_set(ei, ERR_INTERNAL, 0, 0, "the client certificate could not be checked");
        return AUTH_INVALID;
    }
    struct cache_entry **slot = cache_probe(v, key), *e = *slot;
    if (e && e->cache_until >= now) {
        if (e->verdict != AUTH_OK) {
            err_info_set(ei, ERR_DENIED, 0, 0, "%s", e->msg);
            return e->verdict;
        }
        entry_principal(e, p);
        return AUTH_OK;
    }
    struct store_account a;
    char q[STORE_NAME_MAX + 8];
    auth_quote(account, q, sizeof(q));
    bool cache = true;
    int rc;
    if (l != NULL && l->checked && l->account != NULL && memcmp(l->key, key, KEY_LEN) == 0 &&
        strcmp(l->account, account) == 0) {
        rc = l->acct_rc; /* what the store said off the loop */
        a = l->acct;
        cache = l->seq_rc == 0 && v->seq_known && l->seq == v->seq;
    } else {
        rc = store_account_find(v->st, account, &a);
    }
    if (rc != 0 && rc != ERR_NOTFOUND) {
        err_info_set(ei, ERR_UNAVAILABLE, 0, 0,
                     "the client certificate could not be checked: the store (%s) failed (%s); "
                     "retry shortly",
                     store_backend_name(v->st), err_str(rc));
        return AUTH_UNAVAILABLE; /* not cached */
    }
    struct principal got;
    memset(&got, 0, sizeof(got));
    if (rc == ERR_NOTFOUND || a.disabled) {
        err_info_set(ei, ERR_DENIED, 0, 0,
                     "the client certificate maps to service account \"%s\" "
                     "(auth.client_certificates), which %s",
                     q, rc ? "does not exist" : "is disabled");
        if (cache)
            cache_put(v, key, AUTH_INVALID, &got, ei->msg, NULL, now + NEG_TTL_S);
        return AUTH_INVALID;
    }
    got.kind = PRINCIPAL_SERVICE;
    got.id = a.id;
    snprintf(got.name, sizeof(got.name), "%s", a.name);
    snprintf(got.credential_id, sizeof(got.credential_id), "%s", credential_id);
    got.expires_at = not_after;
    int64_t until = now + APIKEY_TTL_S;
    if (not_after > 0 && not_after < until)
        until = not_after;
    if (cache)
        cache_put(v, key, AUTH_OK, &got, NULL, NULL, until);
    *p = got;
    return AUTH_OK;
}

/* ---- the store's part off the loop ---- */

static void lookup_release(struct auth_lookup *l)
{
    free(l->account);
    free(l->cred);
    free(l->resource);
    auth_keyring_unref(l->kr);
    auth_keyring_unref(l->new_kr);
    sodium_memzero(l->master, sizeof(l->master));
}

void auth_lookup_free(struct auth_lookup *l)
{
    if (l == NULL)
        return;
    if (l->v != NULL && l->v->ready == l)
        l->v->ready = NULL;
    lookup_release(l);
    free(l);
}

int auth_lookup_new(struct auth_validator *v, const char *authorization, size_t len,
                    const char *resource, struct auth_lookup **out)
{
    const char *tok = "";
    size_t tlen = 0;
    struct err_info ei = {0};
    struct auth_lookup *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return ERR_NOMEM;
    l->v = v;
    l->now = (int64_t)time(NULL);
    /* a credential auth_validate refuses without the store needs no check: the sequence only */
    if (authorization != NULL && len > 0 &&
        parse_bearer(authorization, len, &tok, &tlen, &ei) == AUTH_OK &&
        credential_key(v, tok, tlen, l->key) == 0) {
        struct cache_entry *e = *cache_probe(v, l->key);
        l->cached = e != NULL && e->cache_until >= l->now + 2 && /* still fresh on return */
                    (e->resource == NULL || strcmp(e->resource, resource) == 0);
        if (l->cached && e->verdict == AUTH_OK && e->kind == PRINCIPAL_USER)
            l->cached_user = e->id;
        l->apikey =
            tlen > strlen(APIKEY_PREFIX) && memcmp(tok, APIKEY_PREFIX, strlen(APIKEY_PREFIX)) == 0;
    } else {
        l->cached = true;
        tlen = 0;
    }
    l->cred = malloc(tlen + 1);
    l->issuer = v->issuer;
    l->resource = strdup(resource);
    if (l->cred == NULL || l->resource == NULL) {
        auth_lookup_free(l);
        return ERR_NOMEM;
    }
    memcpy(l->cred, tok, tlen);
    l->cred[tlen] = '\0';
    l->cred_len = tlen;
    memcpy(l->master, v->master, sizeof(l->master));
    l->access_ttl_s = v->access_ttl_s;
    l->seq_before = v->seq;
    l->seq_known = v->seq_known;
    l->kr = v->kr ? auth_keyring_ref(v->kr) : NULL;
    /* with revocation events arriving (Redis) and none since the last read, the sequence needs
       no store call: a cached verdict is then decided without the store at all */
    uint64_t seq;
    if (l->cached && v->seq_known && v->kr != NULL &&
        store_revocation_memo_current(&v->memo, &seq) && seq == v->seq) {
        l->local = true;
        l->seq = seq;
        l->memo = v->memo;
    }
    *out = l;
    return 0;
}

int auth_lookup_account(struct auth_lookup *l, const char *account, const char *credential_id)
{
    char cred[48 + STORE_NAME_MAX + 8];
    int n = snprintf(cred, sizeof(cred), "x509 %s %s", credential_id, account);
    if (n < 0 || (size_t)n >= sizeof(cred) || (l->account = strdup(account)) == NULL ||
        credential_key(l->v, cred, (size_t)n, l->key) != 0)
        return ERR_NOMEM;
    const struct cache_entry *e = *cache_probe(l->v, l->key);
    l->cached = e != NULL && e->cache_until >= l->now + 2;
    l->cached_user = 0;
    if (!l->cached)
        l->local = false;
    return 0;
}

bool auth_lookup_local(const struct auth_lookup *l)
{
    return l->local;
}

int auth_lookup_run(struct store *st, void *arg)
{
    struct auth_lookup *l = arg;
    if (l->local)
        return 0; /* the sequence and the verdict are known already */
    l->seq_rc = store_revocation_seq(st, &l->seq);
    /* a read is safe to repeat: the first statement on a connection the server closed (it
       restarted) fails, and the connection is made again for the next */
    if (l->seq_rc != 0)
        l->seq_rc = store_revocation_seq(st, &l->seq);
    if (l->seq_rc == 0)
        store_revocation_memo(st, &l->memo);
    bool moved = l->seq_rc == 0 && (!l->seq_known || l->seq != l->seq_before || l->kr == NULL);
    if (moved) {
        struct err_info ei = {0};
        if (auth_keyring_load(st, l->master, l->access_ttl_s + AUTH_LEEWAY_S, &l->new_kr, &ei))
            log_error("auth.keyring", "cannot reload the signing keys: %s", ei.msg);
    }
    if (l->cached && !moved)
        return 0; /* the verdict is in the worker's cache and still stands */
    l->checked = true;
    if (l->account != NULL) {
        l->acct_rc = store_account_find(st, l->account, &l->acct);
        return 0;
    }
    const struct auth_keyring *kr = l->new_kr ? l->new_kr : l->kr;
    l->rc = l->apikey ? check_apikey(st, l->cred, l->cred_len, l->now, &l->p, &l->until, &l->ei)
                      : check_jwt(kr, st, l->issuer, l->cred, l->cred_len, l->resource, l->now,
                                  &l->p, &l->until, &l->ei);
    return 0;
}

bool auth_lookup_seq(const struct auth_lookup *l, uint64_t *seq)
{
    if (l->seq_rc != 0)
        return false;
    *seq = l->seq;
    return true;
}

int64_t auth_lookup_user(const struct auth_lookup *l)
{
    if (l->account != NULL)
        return 0;
    if (l->checked)
        return l->rc == 0 && l->p.kind == PRINCIPAL_USER ? l->p.id : 0;
    return l->cached_user;
}

void auth_lookup_apply(struct auth_validator *v, struct auth_lookup *l)
{
    if (l->seq_rc != 0) {
        /* the store is down: cached verdicts keep working (nobody can revoke meanwhile on a store
           nobody reaches); what needs the store fails with a temporary error */
        static _Thread_local int64_t logged;
        if (l->now >= logged + 10) {
            logged = l->now;
            log_warn("auth.seq", "cannot read the revocation sequence (%s); cached verdicts kept",
                     err_str(l->seq_rc));
        }
    } else if (!v->seq_known || l->seq > v->seq || v->kr == NULL) {
        cache_flush(v);
        if (l->new_kr != NULL) {
            auth_keyring_unref(v->kr);
            v->kr = l->new_kr;
            l->new_kr = NULL;
        }
        v->seq = l->seq;
        v->seq_known = true;
    }
    if (l->seq_rc == 0 && l->seq == v->seq)
        v->memo = l->memo;
    v->ready = l;
}

int auth_introspect(struct auth_validator *v, const char *tok, size_t len, json_t **claims,
                    struct err_info *ei)
{
    json_t *header = NULL, *c = NULL;
    struct principal p;
    int64_t until = 0;
    validator_sync(v);
    if (!v->kr)
        return err_info_set(ei, ERR_DENIED, 0, 0, "no signing keys are available");
    int rc = auth_jwt_verify_full(v->kr, tok, len, &header, &c, ei);
    if (rc == 0) {
        /* the audience the token names, so that check_claims' audience test is moot */
        const json_t *aud = json_object_get(c, "aud");
        const char *res = json_is_string(aud) ? json_string_value(aud)
                                              : json_string_value(json_array_get(aud, 0));
        rc = res ? check_claims(v->st, v->issuer, header, c, res, (int64_t)time(NULL), &p, &until,
                                ei)
                 : err_info_set(ei, ERR_DENIED, 0, 0, "the token has no audience");
    }
    json_decref(header);
    if (rc) {
        json_decref(c);
        return ERR_DENIED;
    }
    *claims = c;
    return 0;
}
