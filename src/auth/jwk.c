/*
 * Keys as JOSE sees them, over OpenSSL 3 EVP: the JWS signature primitives (ES256 signatures
 * are raw R||S on the wire and DER inside OpenSSL, so they are converted both ways here), key
 * generation, our public JWKs with their RFC 7638 thumbprints, and the import of an identity
 * provider's JWKs (RSA n/e, EC P-256 x/y, Ed25519 x) through EVP_PKEY_fromdata.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>
#include <sodium.h>

#include "auth/auth-int.h"
#include "core/rand.h"

#define P256_COORD 32
#define ED25519_PUB 32

static const char *const alg_names[] = {"ES256", "EdDSA", "RS256", "PS256"};

int auth_alg_parse(const char *name, enum auth_alg *out)
{
    for (size_t i = 0; i < sizeof(alg_names) / sizeof(alg_names[0]); i++)
        if (strcmp(name, alg_names[i]) == 0) {
            *out = (enum auth_alg)i;
            return 0;
        }
    return ERR_NOTFOUND;
}

const char *auth_alg_name(enum auth_alg alg)
{
    return alg_names[alg];
}

void auth_quote(const char *s, char *out, size_t out_size)
{
    size_t i = 0, max = out_size > 4 ? out_size - 4 : 0;
    for (; i < max && s[i]; i++)
        out[i] = (s[i] >= 0x20 && s[i] < 0x7f && s[i] != '"' && s[i] != '\\') ? s[i] : '?';
    if (s[i] && out_size >= 4) {
        memcpy(out + i, "...", 3);
        i += 3;
    }
    out[i] = '\0';
}

static int alg_key_fits(EVP_PKEY *pk, enum auth_alg alg)
{
    switch (alg) {
    case AUTH_ALG_ES256: {
        char group[32];
        return EVP_PKEY_is_a(pk, "EC") &&
               EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                              NULL) &&
               strcmp(group, "prime256v1") == 0;
    }
    case AUTH_ALG_EDDSA:
        return EVP_PKEY_is_a(pk, "ED25519");
    case AUTH_ALG_RS256:
    case AUTH_ALG_PS256:
        return EVP_PKEY_is_a(pk, "RSA") && EVP_PKEY_get_bits(pk) >= AUTH_RSA_MIN_BITS;
    }
    return 0;
}

/* PS256 (RFC 7518 §3.5): PSS, MGF1 with SHA-256, a salt as long as the digest. */
static int set_padding(EVP_PKEY_CTX *pctx, enum auth_alg alg)
{
    if (alg != AUTH_ALG_PS256)
        return 1;
    return EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) > 0 &&
           EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) > 0;
}

int auth_sig_sign(EVP_PKEY *pk, enum auth_alg alg, const void *data, size_t n, unsigned char *sig,
                  size_t *siglen)
{
    unsigned char der[AUTH_SIG_MAX];
    size_t len = sizeof(der);
    EVP_PKEY_CTX *pctx = NULL;
    ECDSA_SIG *es = NULL;
    int rc = ERR_INTERNAL;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (!md || !alg_key_fits(pk, alg) ||
        EVP_DigestSignInit_ex(md, &pctx, alg == AUTH_ALG_EDDSA ? NULL : "SHA256", NULL, NULL, pk,
                              NULL) != 1 ||
        !set_padding(pctx, alg) || EVP_DigestSign(md, der, &len, data, n) != 1)
        goto out;
    if (alg != AUTH_ALG_ES256) {
        memcpy(sig, der, len);
        *siglen = len;
        rc = 0;
        goto out;
    }
    const unsigned char *p = der;
    const BIGNUM *r, *s;
    es = d2i_ECDSA_SIG(NULL, &p, (long)len);
    if (!es)
        goto out;
    ECDSA_SIG_get0(es, &r, &s);
    if (BN_bn2binpad(r, sig, P256_COORD) != P256_COORD ||
        BN_bn2binpad(s, sig + P256_COORD, P256_COORD) != P256_COORD)
        goto out;
    *siglen = 2 * P256_COORD;
    rc = 0;
out:
    ECDSA_SIG_free(es);
    EVP_MD_CTX_free(md);
    return rc;
}

/* Raw R||S → DER. Returns the DER length or 0. */
static size_t es256_to_der(const unsigned char *sig, unsigned char *der, size_t der_size)
{
    size_t len = 0;
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(sig, P256_COORD, NULL),
           *s = BN_bin2bn(sig + P256_COORD, P256_COORD, NULL);
    if (!es || !r || !s || ECDSA_SIG_set0(es, r, s) != 1) {
        BN_free(r);
        BN_free(s);
        goto out;
    }
    int n = i2d_ECDSA_SIG(es, NULL);
    if (n > 0 && (size_t)n <= der_size) {
        unsigned char *p = der;
        len = (size_t)i2d_ECDSA_SIG(es, &p);
    }
out:
    ECDSA_SIG_free(es);
    return len;
}

int auth_sig_verify(EVP_PKEY *pk, enum auth_alg alg, const void *data, size_t n,
                    const unsigned char *sig, size_t siglen)
{
    unsigned char der[80];
    EVP_PKEY_CTX *pctx = NULL;
    int rc = ERR_DENIED;
    if (!alg_key_fits(pk, alg))
        return ERR_DENIED;
    if (alg == AUTH_ALG_ES256) {
        if (siglen != 2 * P256_COORD || !(siglen = es256_to_der(sig, der, sizeof(der))))
            return ERR_DENIED;
        sig = der;
    } else if (alg == AUTH_ALG_EDDSA && siglen != 64) {
        return ERR_DENIED;
    } else if ((alg == AUTH_ALG_RS256 || alg == AUTH_ALG_PS256) &&
               siglen != (size_t)EVP_PKEY_get_size(pk)) {
        return ERR_DENIED;
    }
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (md &&
        EVP_DigestVerifyInit_ex(md, &pctx, alg == AUTH_ALG_EDDSA ? NULL : "SHA256", NULL, NULL, pk,
                                NULL) == 1 &&
        set_padding(pctx, alg) && EVP_DigestVerify(md, sig, siglen, data, n) == 1)
        rc = 0;
    EVP_MD_CTX_free(md);
    return rc;
}

int auth_key_generate(enum auth_alg alg, EVP_PKEY **out)
{
    EVP_PKEY *pk = NULL;
    if (alg == AUTH_ALG_ES256)
        pk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    else if (alg == AUTH_ALG_EDDSA)
        pk = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    else
        return ERR_INVAL;
    if (!pk)
        return ERR_INTERNAL;
    *out = pk;
    return 0;
}

int auth_jwk_public(EVP_PKEY *pk, enum auth_alg alg, json_t **jwk, char kid[64])
{
    unsigned char x[P256_COORD], y[P256_COORD], digest[32];
    char xs[48], ys[48], canon[256];
    BIGNUM *bx = NULL, *by = NULL;
    int rc = ERR_INTERNAL;
    json_t *j = NULL;
    if (!alg_key_fits(pk, alg))
        return ERR_INVAL;
    if (alg == AUTH_ALG_ES256) {
        if (!EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_EC_PUB_X, &bx) ||
            !EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_EC_PUB_Y, &by) ||
            BN_bn2binpad(bx, x, P256_COORD) != P256_COORD ||
            BN_bn2binpad(by, y, P256_COORD) != P256_COORD)
            goto out;
        b64url_encode(xs, sizeof(xs), x, P256_COORD);
        b64url_encode(ys, sizeof(ys), y, P256_COORD);
        /* RFC 7638 §3.2: the required members, lexicographic order, no whitespace. */
        snprintf(canon, sizeof(canon),
                 "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}", xs, ys);
        j = json_pack("{s:s, s:s, s:s, s:s}", "kty", "EC", "crv", "P-256", "x", xs, "y", ys);
    } else {
        size_t len = ED25519_PUB;
        if (EVP_PKEY_get_raw_public_key(pk, x, &len) != 1 || len != ED25519_PUB)
            goto out;
        b64url_encode(xs, sizeof(xs), x, ED25519_PUB);
        snprintf(canon, sizeof(canon), "{\"crv\":\"Ed25519\",\"kty\":\"OKP\",\"x\":\"%s\"}", xs);
        j = json_pack("{s:s, s:s, s:s}", "kty", "OKP", "crv", "Ed25519", "x", xs);
    }
    if (!j || EVP_Digest(canon, strlen(canon), digest, NULL, EVP_sha256(), NULL) != 1)
        goto out;
    b64url_encode(kid, 64, digest, sizeof(digest));
    if (json_object_set_new(j, "kid", json_string(kid)) ||
        json_object_set_new(j, "alg", json_string(auth_alg_name(alg))) ||
        json_object_set_new(j, "use", json_string("sig")))
        goto out;
    *jwk = j;
    j = NULL;
    rc = 0;
out:
    json_decref(j);
    BN_free(bx);
    BN_free(by);
    return rc;
}

/* A base64url member of a JWK, decoded into out; returns the length or -1. */
static long jwk_bytes(const json_t *jwk, const char *name, unsigned char *out, size_t out_size)
{
    const char *s = json_string_value(json_object_get(jwk, name));
    return s ? b64url_decode(out, out_size, s, strlen(s)) : -1;
}

static int import_fromdata(const char *type, OSSL_PARAM *params, EVP_PKEY **out)
{
    EVP_PKEY *pk = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    int ok = ctx && EVP_PKEY_fromdata_init(ctx) == 1 &&
             EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_PUBLIC_KEY, params) == 1;
    EVP_PKEY_CTX_free(ctx);
    if (!ok)
        return ERR_INVAL;
    *out = pk;
    return 0;
}

static int import_rsa(const json_t *jwk, EVP_PKEY **out, struct err_info *ei)
{
    unsigned char n[1024], e[8];
    long nlen = jwk_bytes(jwk, "n", n, sizeof(n)), elen = jwk_bytes(jwk, "e", e, sizeof(e));
    if (nlen <= 0 || elen <= 0)
        return err_info_set(ei, ERR_INVAL, 0, 0, "the RSA JWK has no valid \"n\" and \"e\"");
    int rc = ERR_INVAL;
    OSSL_PARAM *params = NULL;
    BIGNUM *bn = BN_bin2bn(n, (int)nlen, NULL), *be = BN_bin2bn(e, (int)elen, NULL);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    if (!bn || !be || !bld || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be) ||
        !(params = OSSL_PARAM_BLD_to_param(bld))) {
        rc = ERR_NOMEM;
        goto out;
    }
    if (BN_num_bits(bn) < AUTH_RSA_MIN_BITS) {
        rc = err_info_set(ei, ERR_INVAL, 0, 0, "the RSA key has %d bits; at least %d are required",
                          BN_num_bits(bn), AUTH_RSA_MIN_BITS);
        goto out;
    }
    rc = import_fromdata("RSA", params, out);
    if (rc)
        err_info_set(ei, rc, 0, 0, "the RSA JWK is not a valid public key");
out:
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn);
    BN_free(be);
    return rc;
}

static int import_ec(const json_t *jwk, EVP_PKEY **out, struct err_info *ei)
{
    unsigned char pt[1 + 2 * P256_COORD];
    const char *crv = json_string_value(json_object_get(jwk, "crv"));
    if (!crv || strcmp(crv, "P-256") != 0)
        return err_info_set(ei, ERR_INVAL, 0, 0, "the EC JWK's curve is not P-256");
    pt[0] = 0x04; /* uncompressed point */
    if (jwk_bytes(jwk, "x", pt + 1, P256_COORD) != P256_COORD ||
        jwk_bytes(jwk, "y", pt + 1 + P256_COORD, P256_COORD) != P256_COORD)
        return err_info_set(ei, ERR_INVAL, 0, 0, "the EC JWK's x and y are not 32 bytes each");
    char group[] = "prime256v1";
    OSSL_PARAM params[] = {
        OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, 0),
        OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof(pt)),
        OSSL_PARAM_END,
    };
    int rc = import_fromdata("EC", params, out);
    return rc ? err_info_set(ei, rc, 0, 0, "the EC JWK is not a point on P-256") : 0;
}

static int import_okp(const json_t *jwk, EVP_PKEY **out, struct err_info *ei)
{
    unsigned char x[ED25519_PUB];
    const char *crv = json_string_value(json_object_get(jwk, "crv"));
    if (!crv || strcmp(crv, "Ed25519") != 0)
        return err_info_set(ei, ERR_INVAL, 0, 0, "the OKP JWK's curve is not Ed25519");
    if (jwk_bytes(jwk, "x", x, sizeof(x)) != ED25519_PUB)
        return err_info_set(ei, ERR_INVAL, 0, 0, "the OKP JWK's x is not 32 bytes");
    EVP_PKEY *pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, x, sizeof(x));
    if (!pk)
        return err_info_set(ei, ERR_INVAL, 0, 0, "the OKP JWK is not an Ed25519 key");
    *out = pk;
    return 0;
}

int auth_jwk_import(const json_t *jwk, enum auth_alg alg, EVP_PKEY **out, struct err_info *ei)
{
    static const char *const kty_of[] = {"EC", "OKP", "RSA", "RSA"};
    const char *kty = json_string_value(json_object_get(jwk, "kty"));
    if (!kty || strcmp(kty, kty_of[alg]) != 0)
        return err_info_set(ei, ERR_INVAL, 0, 0, "the key for %s must have kty %s",
                            auth_alg_name(alg), kty_of[alg]);
    switch (alg) {
    case AUTH_ALG_ES256:
        return import_ec(jwk, out, ei);
    case AUTH_ALG_EDDSA:
        return import_okp(jwk, out, ei);
    case AUTH_ALG_RS256:
    case AUTH_ALG_PS256:
        return import_rsa(jwk, out, ei);
    }
    return ERR_INVAL;
}
