/*
 * Compact JWS (RFC 7515) as Gatehouse accepts it: three non-empty segments of strict base64url
 * (no padding, no whitespace, canonical trailing bits), a header and a payload that are JSON
 * objects without duplicate members, no "crit", at most 8 KiB in all. The algorithm is chosen
 * by the key, never by the token: the header's alg must name the algorithm of the key its kid
 * selects, so "none", HMAC with a public key as the secret and other confusions fail before any
 * signature is computed.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth/auth-int.h"
#include "core/rand.h"

#define SEG_MAX (AUTH_JWT_MAX / 4 * 3 + 3) /* the largest decoded segment */

struct jws {
    json_t *header, *payload;
    size_t signed_len; /* header.payload: what the signature covers */
    unsigned char sig[AUTH_SIG_MAX];
    size_t siglen;
};

static void jws_release(struct jws *j)
{
    json_decref(j->header);
    json_decref(j->payload);
}

static int segment_json(const char *seg, size_t n, const char *what, json_t **out,
                        struct err_info *ei)
{
    unsigned char *raw = malloc(SEG_MAX);
    json_error_t je;
    int rc = 0;
    if (!raw)
        return ERR_NOMEM;
    long len = b64url_decode(raw, SEG_MAX, seg, n);
    if (len <= 0) {
        rc = err_info_set(ei, ERR_PARSE, 0, 0, "the token's %s is not base64url", what);
        goto out;
    }
    json_t *j = json_loadb((const char *)raw, (size_t)len, JSON_REJECT_DUPLICATES, &je);
    if (!json_is_object(j)) {
        json_decref(j);
        rc = err_info_set(ei, ERR_PARSE, 0, 0, "the token's %s is not a JSON object", what);
        goto out;
    }
    *out = j;
out:
    free(raw);
    return rc;
}

static int jws_split(const char *tok, size_t len, struct jws *j, struct err_info *ei)
{
    memset(j, 0, sizeof(*j));
    if (len > AUTH_JWT_MAX)
        return err_info_set(ei, ERR_LIMIT, 0, 0, "the token is longer than %d bytes", AUTH_JWT_MAX);
    const char *d1 = memchr(tok, '.', len);
    const char *d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - tok)) : NULL;
    if (!d2 || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - tok)))
        return err_info_set(ei, ERR_PARSE, 0, 0,
                            "the token is not a JWT (three base64url segments separated by dots)");
    size_t hlen = (size_t)(d1 - tok), plen = (size_t)(d2 - d1 - 1),
           slen = len - (size_t)(d2 + 1 - tok);
    if (hlen == 0 || plen == 0 || slen == 0)
        return err_info_set(ei, ERR_PARSE, 0, 0, "the token has an empty segment");
    int rc = segment_json(tok, hlen, "header", &j->header, ei);
    if (rc == 0)
        rc = segment_json(d1 + 1, plen, "payload", &j->payload, ei);
    if (rc == 0 && json_object_get(j->header, "crit"))
        rc = err_info_set(ei, ERR_PARSE, 0, 0,
                          "the token header's \"crit\" names extensions this server does not "
                          "support");
    if (rc == 0) {
        long n = b64url_decode(j->sig, sizeof(j->sig), d2 + 1, slen);
        if (n <= 0)
            rc = err_info_set(ei, ERR_PARSE, 0, 0, "the token's signature is not base64url");
        j->siglen = (size_t)n;
    }
    if (rc) {
        jws_release(j);
        memset(j, 0, sizeof(*j));
        return rc;
    }
    j->signed_len = (size_t)(d2 - tok);
    return 0;
}

int auth_jwt_decode(const char *tok, size_t len, json_t **header, json_t **payload,
                    struct err_info *ei)
{
    struct jws j;
    int rc = jws_split(tok, len, &j, ei);
    if (rc)
        return rc;
    *header = j.header;
    *payload = j.payload;
    return 0;
}

/* The header's alg as one we implement; refuses none, HS* and the unknown by name. */
static int header_alg(const json_t *header, enum auth_alg *alg, struct err_info *ei)
{
    char q[48];
    const char *name = json_string_value(json_object_get(header, "alg"));
    if (!name)
        return err_info_set(ei, ERR_DENIED, 0, 0, "the token header has no alg");
    if (auth_alg_parse(name, alg) == 0)
        return 0;
    auth_quote(name, q, sizeof(q));
    if (strncasecmp(name, "HS", 2) == 0)
        return err_info_set(ei, ERR_DENIED, 0, 0,
                            "token alg \"%s\" is not accepted (symmetric algorithms are never "
                            "used)",
                            q);
    return err_info_set(ei, ERR_DENIED, 0, 0, "token alg \"%s\" is not accepted", q);
}

int auth_jwt_sign(const struct auth_keyring *kr, const json_t *claims, char **out)
{
    const struct auth_key *k = kr->current;
    char *hs = NULL, *ps = NULL, *tok = NULL;
    unsigned char sig[AUTH_SIG_MAX];
    size_t siglen;
    int rc = ERR_NOMEM;
    if (!k)
        return ERR_NOTFOUND;
    json_t *h =
        json_pack("{s:s, s:s, s:s}", "alg", auth_alg_name(k->alg), "kid", k->kid, "typ", "at+jwt");
    if (!h || !(hs = json_dumps(h, JSON_COMPACT)) || !(ps = json_dumps(claims, JSON_COMPACT)))
        goto out;
    size_t hn = b64url_encoded_len(strlen(hs)), pn = b64url_encoded_len(strlen(ps));
    size_t total = hn + 1 + pn + 1 + b64url_encoded_len(AUTH_SIG_MAX) + 1;
    if (!(tok = malloc(total)))
        goto out;
    b64url_encode(tok, hn + 1, hs, strlen(hs));
    tok[hn] = '.';
    b64url_encode(tok + hn + 1, pn + 1, ps, strlen(ps));
    rc = auth_sig_sign(k->pkey, k->alg, tok, hn + 1 + pn, sig, &siglen);
    if (rc)
        goto out;
    tok[hn + 1 + pn] = '.';
    b64url_encode(tok + hn + 1 + pn + 1, total - (hn + 1 + pn + 1), sig, siglen);
    *out = tok;
    tok = NULL;
out:
    free(tok);
    free(hs);
    free(ps);
    json_decref(h);
    return rc;
}

int auth_jwt_verify_full(const struct auth_keyring *kr, const char *tok, size_t len,
                         json_t **header, json_t **claims, struct err_info *ei)
{
    struct jws j;
    enum auth_alg alg;
    const struct auth_key *key = NULL;
    char q[72];
    int rc = jws_split(tok, len, &j, ei);
    if (rc)
        return rc;
    if ((rc = header_alg(j.header, &alg, ei)))
        goto out;
    const char *kid = json_string_value(json_object_get(j.header, "kid"));
    if (!kid) {
        rc = err_info_set(ei, ERR_DENIED, 0, 0, "the token header has no kid");
        goto out;
    }
    for (size_t i = 0; i < kr->n && !key; i++)
        if (strcmp(kr->keys[i].kid, kid) == 0)
            key = &kr->keys[i];
    if (!key) {
        auth_quote(kid, q, sizeof(q));
        rc = err_info_set(ei, ERR_DENIED, 0, 0, "no key with kid \"%s\"", q);
        goto out;
    }
    if (key->alg != alg) {
        rc = err_info_set(ei, ERR_DENIED, 0, 0, "token alg \"%s\" does not match key %s (%s)",
                          auth_alg_name(alg), key->kid, auth_alg_name(key->alg));
        goto out;
    }
    if (auth_sig_verify(key->pkey, alg, tok, j.signed_len, j.sig, j.siglen) != 0) {
        rc = err_info_set(ei, ERR_DENIED, 0, 0, "the token signature does not verify");
        goto out;
    }
    if (header) {
        *header = j.header;
        j.header = NULL;
    }
    *claims = j.payload;
    j.payload = NULL;
out:
    jws_release(&j);
    return rc;
}

int auth_jwt_verify(const struct auth_keyring *kr, const char *tok, size_t len, json_t **claims,
                    struct err_info *ei)
{
    return auth_jwt_verify_full(kr, tok, len, NULL, claims, ei);
}

/* A JWKS member usable for alg: right kty, and its alg and use (when present) agree. */
static bool jwk_fits(const json_t *jwk, enum auth_alg alg)
{
    static const char *const kty_of[] = {"EC", "OKP", "RSA", "RSA"};
    const char *kty = json_string_value(json_object_get(jwk, "kty"));
    const char *a = json_string_value(json_object_get(jwk, "alg"));
    const char *use = json_string_value(json_object_get(jwk, "use"));
    return kty && strcmp(kty, kty_of[alg]) == 0 && (!a || strcmp(a, auth_alg_name(alg)) == 0) &&
           (!use || strcmp(use, "sig") == 0);
}

int auth_jwt_verify_jwks(const json_t *jwks, const char *tok, size_t len, json_t **claims,
                         struct err_info *ei)
{
    struct jws j;
    enum auth_alg alg;
    const json_t *key = NULL, *k;
    EVP_PKEY *pk = NULL;
    size_t i, nfit = 0;
    char q[72];
    int rc = jws_split(tok, len, &j, ei);
    if (rc)
        return rc;
    if ((rc = header_alg(j.header, &alg, ei)))
        goto out;
    const json_t *keys = json_object_get(jwks, "keys");
    const char *kid = json_string_value(json_object_get(j.header, "kid"));
    json_array_foreach(keys, i, k)
    {
        const char *kkid = json_string_value(json_object_get(k, "kid"));
        if (kid ? (kkid && strcmp(kkid, kid) == 0) : jwk_fits(k, alg)) {
            key = k;
            nfit++;
        }
    }
    if (kid && !key) {
        auth_quote(kid, q, sizeof(q));
        rc = err_info_set(ei, ERR_DENIED, 0, 0, "no key with kid \"%s\" in the issuer's JWKS", q);
        goto out;
    }
    if (!kid && nfit != 1) {
        rc = err_info_set(ei, ERR_DENIED, 0, 0,
                          "the token has no kid and the issuer's JWKS has %zu %s keys", nfit,
                          auth_alg_name(alg));
        goto out;
    }
    if (!jwk_fits(key, alg)) {
        rc = err_info_set(ei, ERR_DENIED, 0, 0,
                          "token alg \"%s\" does not match the issuer's key (its kty, alg or use)",
                          auth_alg_name(alg));
        goto out;
    }
    if ((rc = auth_jwk_import(key, alg, &pk, ei))) {
        rc = ERR_DENIED;
        goto out;
    }
    if (auth_sig_verify(pk, alg, tok, j.signed_len, j.sig, j.siglen) != 0) {
        rc = err_info_set(ei, ERR_DENIED, 0, 0, "the token signature does not verify");
        goto out;
    }
    *claims = j.payload;
    j.payload = NULL;
out:
    EVP_PKEY_free(pk);
    jws_release(&j);
    return rc;
}
