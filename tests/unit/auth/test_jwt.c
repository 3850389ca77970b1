/*
 * The store-independent half of src/auth: the master key file, sealing, our keys and JWKS,
 * compact JWS signing and verification with its refusals (alg none, HMAC keyed with our public
 * key, unknown kid, malformed segments, oversize), key rotation through keyrings built from
 * rows, and the verification of an identity provider's id_tokens from a JWKS (RSA included).
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/hmac.h>
#include <sodium.h>

#include "auth/auth-int.h"
#include "core/rand.h"
#include "test.h"

static const unsigned char master[AUTH_MASTER_KEY_LEN] = "0123456789abcdef0123456789abcde";

static void row_free(struct store_key *k)
{
    free(k->sealed);
    free(k->public_jwk);
}

/* A keyring holding one fresh key of alg (and the private key, for forging tests). */
static struct auth_keyring *ring(enum auth_alg alg)
{
    EVP_PKEY *pk = NULL;
    struct store_key row;
    struct auth_keyring *kr = NULL;
    CHECK_INT(auth_key_generate(alg, &pk), 0);
    CHECK_INT(auth_key_to_store(pk, alg, master, &row), 0);
    CHECK_INT(auth_keyring_build(&row, 1, master, 600, time(NULL), &kr, NULL), 0);
    row_free(&row);
    EVP_PKEY_free(pk);
    return kr;
}

/* header.payload.signature with the given JSON texts, signed by pk with alg (or a given sig). */
static char *make_token(const char *header, const char *payload, EVP_PKEY *pk, enum auth_alg alg)
{
    static char tok[16384];
    unsigned char sig[AUTH_SIG_MAX];
    size_t siglen = 0, n;
    b64url_encode(tok, sizeof(tok), header, strlen(header));
    n = strlen(tok);
    tok[n++] = '.';
    b64url_encode(tok + n, sizeof(tok) - n, payload, strlen(payload));
    n = strlen(tok);
    if (pk)
        CHECK_INT(auth_sig_sign(pk, alg, tok, n, sig, &siglen), 0);
    else
        memcpy(sig, "sig", siglen = 3);
    tok[n++] = '.';
    b64url_encode(tok + n, sizeof(tok) - n, sig, siglen);
    return tok;
}

static int verify(const struct auth_keyring *kr, const char *tok, struct err_info *ei)
{
    json_t *claims = NULL;
    memset(ei, 0, sizeof(*ei));
    int rc = auth_jwt_verify(kr, tok, strlen(tok), &claims, ei);
    json_decref(claims);
    return rc;
}

static void test_master_key(void)
{
    char path[] = "/tmp/gh-test-masterXXXXXX";
    unsigned char k1[AUTH_MASTER_KEY_LEN], k2[AUTH_MASTER_KEY_LEN];
    struct err_info ei = {0};
    struct stat sb;
    int fd = mkstemp(path);
    close(fd);
    unlink(path);
    CHECK_INT(auth_master_key_load(path, false, k1, &ei), ERR_NOTFOUND);
    CHECK_INT(auth_master_key_load(path, true, k1, &ei), 0);
    CHECK_INT(stat(path, &sb), 0);
    CHECK_INT(sb.st_mode & 0777, 0600);
    CHECK_INT(auth_master_key_load(path, true, k2, &ei), 0);
    CHECK(memcmp(k1, k2, sizeof(k1)) == 0);
    chmod(path, 0640);
    CHECK_INT(auth_master_key_load(path, false, k2, &ei), ERR_DENIED);
    CHECK_CONTAINS(ei.msg, "mode 0640");
    /* raw 32 bytes are accepted as well */
    FILE *f = fopen(path, "w");
    fwrite(master, 1, sizeof(master), f);
    fclose(f);
    chmod(path, 0600);
    CHECK_INT(auth_master_key_load(path, false, k2, &ei), 0);
    CHECK(memcmp(k2, master, sizeof(master)) == 0);
    f = fopen(path, "w");
    fputs("not a key\n", f);
    fclose(f);
    CHECK_INT(auth_master_key_load(path, false, k2, &ei), ERR_PARSE);
    unlink(path);
}

static void test_seal(void)
{
    unsigned char *s, *o;
    size_t sn, on;
    unsigned char other[AUTH_MASTER_KEY_LEN] = {1};
    CHECK_INT(auth_seal(master, "secret key", 10, &s, &sn), 0);
    CHECK_INT(auth_unseal(master, s, sn, &o, &on), 0);
    CHECK_INT(on, 10);
    CHECK(memcmp(o, "secret key", 10) == 0);
    free(o);
    CHECK_INT(auth_unseal(other, s, sn, &o, &on), ERR_DENIED);
    s[sn - 1] ^= 1;
    CHECK_INT(auth_unseal(master, s, sn, &o, &on), ERR_DENIED);
    CHECK_INT(auth_unseal(master, s, 10, &o, &on), ERR_DENIED);
    free(s);
    /* two seals of the same input differ (random nonce) */
    unsigned char *a, *b;
    size_t an, bn;
    auth_seal(master, "x", 1, &a, &an);
    auth_seal(master, "x", 1, &b, &bn);
    CHECK(an == bn && memcmp(a, b, an) != 0);
    free(a);
    free(b);
}

static void roundtrip(enum auth_alg alg, const char *crv)
{
    struct auth_keyring *kr = ring(alg);
    json_t *claims = json_pack("{s:s, s:i}", "sub", "user:42", "exp", 1), *out = NULL;
    json_t *h = NULL, *p = NULL;
    char *tok = NULL;
    struct err_info ei = {0};
    CHECK_INT(auth_jwt_sign(kr, claims, &tok), 0);
    CHECK_INT(auth_jwt_verify(kr, tok, strlen(tok), &out, &ei), 0);
    CHECK_STR(json_string_value(json_object_get(out, "sub")), "user:42");
    CHECK_INT(auth_jwt_decode(tok, strlen(tok), &h, &p, &ei), 0);
    CHECK_STR(json_string_value(json_object_get(h, "alg")), auth_alg_name(alg));
    CHECK_STR(json_string_value(json_object_get(h, "typ")), "at+jwt");
    CHECK_STR(json_string_value(json_object_get(h, "kid")), kr->current->kid);
    /* the JWKS shows the public key, named by its thumbprint */
    json_t *jwks = auth_keyring_jwks(kr);
    json_t *k = json_array_get(json_object_get(jwks, "keys"), 0);
    CHECK_STR(json_string_value(json_object_get(k, "kid")), kr->current->kid);
    CHECK_STR(json_string_value(json_object_get(k, "crv")), crv);
    CHECK_STR(json_string_value(json_object_get(k, "use")), "sig");
    CHECK(json_object_get(k, "d") == NULL);
    CHECK_INT(strlen(kr->current->kid), 43);
    /* ... and that JWKS verifies our tokens through the IdP path too */
    json_decref(out);
    out = NULL;
    CHECK_INT(auth_jwt_verify_jwks(jwks, tok, strlen(tok), &out, &ei), 0);
    /* a flipped signature bit is refused */
    tok[strlen(tok) - 3] = tok[strlen(tok) - 3] == 'A' ? 'B' : 'A';
    CHECK_INT(verify(kr, tok, &ei), ERR_DENIED);
    CHECK_STR(ei.msg, "the token signature does not verify");
    json_decref(jwks);
    json_decref(claims);
    json_decref(out);
    json_decref(h);
    json_decref(p);
    free(tok);
    auth_keyring_unref(kr);
}

static void test_es256(void)
{
    roundtrip(AUTH_ALG_ES256, "P-256");
}

static void test_eddsa(void)
{
    roundtrip(AUTH_ALG_EDDSA, "Ed25519");
}

/* The thumbprint is RFC 7638's: SHA-256 of the canonical members, checked independently here. */
static void test_thumbprint(void)
{
    struct auth_keyring *kr = ring(AUTH_ALG_EDDSA);
    const char *x = json_string_value(json_object_get(kr->current->jwk, "x"));
    char canon[128], kid[64];
    unsigned char d[32];
    snprintf(canon, sizeof(canon), "{\"crv\":\"Ed25519\",\"kty\":\"OKP\",\"x\":\"%s\"}", x);
    crypto_hash_sha256(d, (const unsigned char *)canon, strlen(canon));
    b64url_encode(kid, sizeof(kid), d, sizeof(d));
    CHECK_STR(kr->current->kid, kid);
    auth_keyring_unref(kr);
}

static void test_alg_none_and_hmac(void)
{
    struct auth_keyring *kr = ring(AUTH_ALG_ES256);
    struct err_info ei;
    char header[256], *tok;
    snprintf(header, sizeof(header), "{\"alg\":\"none\",\"kid\":\"%s\"}", kr->current->kid);
    tok = make_token(header, "{\"sub\":\"user:1\"}", NULL, 0);
    tok[strlen(tok) - 4] = '\0'; /* "none" tokens have an empty signature */
    CHECK_INT(verify(kr, tok, &ei), ERR_PARSE);
    tok = make_token(header, "{\"sub\":\"user:1\"}", NULL, 0);
    CHECK_INT(verify(kr, tok, &ei), ERR_DENIED);
    CHECK_STR(ei.msg, "token alg \"none\" is not accepted");
    /* HS256 keyed with our public JWK text: the classic confusion */
    char *pub = json_dumps(kr->current->jwk, JSON_COMPACT);
    snprintf(header, sizeof(header), "{\"alg\":\"HS256\",\"kid\":\"%s\"}", kr->current->kid);
    char signing[2048];
    tok = make_token(header, "{\"sub\":\"user:1\"}", NULL, 0);
    size_t n = (size_t)(strrchr(tok, '.') - tok);
    memcpy(signing, tok, n);
    unsigned char mac[32];
    unsigned int maclen;
    HMAC(EVP_sha256(), pub, (int)strlen(pub), (unsigned char *)signing, n, mac, &maclen);
    b64url_encode(tok + n + 1, 100, mac, maclen);
    CHECK_INT(verify(kr, tok, &ei), ERR_DENIED);
    CHECK_CONTAINS(ei.msg, "token alg \"HS256\" is not accepted");
    free(pub);
    /* alg of another family than the key's */
    snprintf(header, sizeof(header), "{\"alg\":\"EdDSA\",\"kid\":\"%s\"}", kr->current->kid);
    CHECK_INT(verify(kr, make_token(header, "{}", NULL, 0), &ei), ERR_DENIED);
    CHECK_CONTAINS(ei.msg, "does not match key");
    CHECK_INT(verify(kr, make_token("{\"kid\":\"a\"}", "{}", NULL, 0), &ei), ERR_DENIED);
    CHECK_STR(ei.msg, "the token header has no alg");
    auth_keyring_unref(kr);
}

static void test_unknown_kid(void)
{
    struct auth_keyring *kr = ring(AUTH_ALG_EDDSA), *other = ring(AUTH_ALG_EDDSA);
    struct err_info ei;
    char *tok = NULL;
    json_t *c = json_object();
    auth_jwt_sign(other, c, &tok);
    CHECK_INT(verify(kr, tok, &ei), ERR_DENIED);
    char want[128];
    snprintf(want, sizeof(want), "no key with kid \"%s\"", other->current->kid);
    CHECK_STR(ei.msg, want);
    /* a hostile kid is quoted safely and truncated */
    CHECK_INT(
        verify(kr,
               make_token("{\"alg\":\"EdDSA\",\"kid\":\"a\\\"b\\nc"
                          "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                          "xxxxxxxxxxxxxxxxxxxxx\"}",
                          "{}", NULL, 0),
               &ei),
        ERR_DENIED);
    CHECK_CONTAINS(ei.msg, "no key with kid \"a?b?c");
    CHECK_CONTAINS(ei.msg, "...\"");
    CHECK_INT(verify(kr, make_token("{\"alg\":\"EdDSA\"}", "{}", NULL, 0), &ei), ERR_DENIED);
    CHECK_STR(ei.msg, "the token header has no kid");
    free(tok);
    json_decref(c);
    auth_keyring_unref(kr);
    auth_keyring_unref(other);
}

static void test_malformed(void)
{
    struct auth_keyring *kr = ring(AUTH_ALG_EDDSA);
    struct err_info ei;
    char *tok = NULL, buf[4096];
    json_t *c = json_pack("{s:s}", "sub", "user:1");
    auth_jwt_sign(kr, c, &tok);
    size_t n = strlen(tok);
    CHECK_INT(verify(kr, tok, &ei), 0);
    /* truncated: two segments */
    snprintf(buf, sizeof(buf), "%.*s", (int)(strrchr(tok, '.') - tok), tok);
    CHECK_INT(verify(kr, buf, &ei), ERR_PARSE);
    CHECK_CONTAINS(ei.msg, "three base64url segments");
    /* extra segment */
    snprintf(buf, sizeof(buf), "%s.AAAA", tok);
    CHECK_INT(verify(kr, buf, &ei), ERR_PARSE);
    /* padding, whitespace, a non-canonical last character, standard alphabet */
    snprintf(buf, sizeof(buf), "%s=", tok);
    CHECK_INT(verify(kr, buf, &ei), ERR_PARSE);
    CHECK_CONTAINS(ei.msg, "signature is not base64url");
    snprintf(buf, sizeof(buf), " %s", tok);
    CHECK_INT(verify(kr, buf, &ei), ERR_PARSE);
    CHECK_CONTAINS(ei.msg, "header is not base64url");
    snprintf(buf, sizeof(buf), "%s", tok);
    char *dot = strchr(buf, '.');
    dot[1] = '+';
    CHECK_INT(verify(kr, buf, &ei), ERR_PARSE);
    /* the signature of an Ed25519 key is 64 bytes: 86 characters, the last one carrying 4 bits
       of which only "A", "Q", "g", "w" have zero trailing bits */
    snprintf(buf, sizeof(buf), "%s", tok);
    char last = buf[n - 1];
    buf[n - 1] = last == 'A' ? 'B' : (char)(last + 1);
    CHECK(verify(kr, buf, &ei) != 0);
    /* empty segments */
    CHECK_INT(verify(kr, "..", &ei), ERR_PARSE);
    CHECK_CONTAINS(ei.msg, "empty segment");
    /* non-object header and payload, duplicate members, crit */
    CHECK_INT(verify(kr, make_token("[\"EdDSA\"]", "{}", NULL, 0), &ei), ERR_PARSE);
    CHECK_STR(ei.msg, "the token's header is not a JSON object");
    CHECK_INT(verify(kr, make_token("{\"alg\":\"EdDSA\"}", "42", NULL, 0), &ei), ERR_PARSE);
    CHECK_STR(ei.msg, "the token's payload is not a JSON object");
    CHECK_INT(verify(kr, make_token("{\"alg\":\"none\",\"alg\":\"EdDSA\"}", "{}", NULL, 0), &ei),
              ERR_PARSE);
    CHECK_INT(verify(kr, make_token("{\"alg\":\"EdDSA\",\"crit\":[\"b64\"]}", "{}", NULL, 0), &ei),
              ERR_PARSE);
    CHECK_CONTAINS(ei.msg, "crit");
    /* huge */
    char *huge = malloc(AUTH_JWT_MAX + 2);
    memset(huge, 'A', AUTH_JWT_MAX + 1);
    huge[AUTH_JWT_MAX + 1] = '\0';
    CHECK_INT(verify(kr, huge, &ei), ERR_LIMIT);
    CHECK_CONTAINS(ei.msg, "longer than 8192 bytes");
    free(huge);
    /* no message ever echoes the token */
    CHECK(strstr(ei.msg, "AAAA") == NULL);
    free(tok);
    json_decref(c);
    auth_keyring_unref(kr);
}

/* A key retired within the grace still verifies; the new one signs; past the grace it is gone. */
static void test_rotation(void)
{
    EVP_PKEY *k1 = NULL, *k2 = NULL;
    struct store_key rows[2];
    struct auth_keyring *kr1 = NULL, *kr2 = NULL, *kr3 = NULL;
    struct err_info ei;
    char *old = NULL, *new = NULL;
    json_t *c = json_object();
    int64_t now = time(NULL);
    auth_key_generate(AUTH_ALG_ES256, &k1);
    auth_key_generate(AUTH_ALG_EDDSA, &k2);
    auth_key_to_store(k1, AUTH_ALG_ES256, master, &rows[0]);
    auth_key_to_store(k2, AUTH_ALG_EDDSA, master, &rows[1]);
    CHECK_INT(auth_keyring_build(rows, 1, master, 600, now, &kr1, &ei), 0);
    CHECK_INT(auth_jwt_sign(kr1, c, &old), 0);
    rows[0].retired_at = now - 100;
    CHECK_INT(auth_keyring_build(rows, 2, master, 600, now, &kr2, &ei), 0);
    CHECK_INT(auth_jwt_sign(kr2, c, &new), 0);
    CHECK_INT(verify(kr2, old, &ei), 0);
    CHECK_INT(verify(kr2, new, &ei), 0);
    json_t *jwks = auth_keyring_jwks(kr2);
    CHECK_INT(json_array_size(json_object_get(jwks, "keys")), 2);
    json_decref(jwks);
    CHECK(strcmp(kr2->current->kid, rows[1].kid) == 0);
    json_t *h, *p;
    auth_jwt_decode(new, strlen(new), &h, &p, &ei);
    CHECK_STR(json_string_value(json_object_get(h, "kid")), rows[1].kid);
    json_decref(h);
    json_decref(p);
    CHECK_INT(auth_keyring_build(rows, 2, master, 60, now, &kr3, &ei), 0);
    CHECK_INT(kr3->n, 1);
    CHECK_INT(verify(kr3, old, &ei), ERR_DENIED);
    CHECK_CONTAINS(ei.msg, "no key with kid");
    CHECK_INT(verify(kr3, new, &ei), 0);
    /* a row whose sealed key is not the key its kid names is refused */
    struct auth_keyring *bad = NULL;
    memcpy(rows[1].kid, rows[0].kid, sizeof(rows[0].kid));
    CHECK_INT(auth_keyring_build(rows + 1, 1, master, 60, now, &bad, &ei), ERR_INVAL);
    CHECK_CONTAINS(ei.msg, "does not match its kid");
    unsigned char wrong[AUTH_MASTER_KEY_LEN] = {0};
    rows[0].retired_at = 0;
    CHECK_INT(auth_keyring_build(rows, 1, wrong, 60, now, &bad, &ei), ERR_DENIED);
    CHECK_CONTAINS(ei.msg, "cannot be unsealed");
    row_free(&rows[0]);
    row_free(&rows[1]);
    EVP_PKEY_free(k1);
    EVP_PKEY_free(k2);
    auth_keyring_unref(kr1);
    auth_keyring_unref(kr2);
    auth_keyring_unref(kr3);
    json_decref(c);
    free(old);
    free(new);
}

/* An RSA public JWK (n, e) built from an OpenSSL key, as an IdP would publish it. */
static json_t *rsa_jwk(EVP_PKEY *pk, const char *kid)
{
    BIGNUM *n = NULL, *e = NULL;
    unsigned char nb[512], eb[8];
    char ns[700], es[16];
    EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_N, &n);
    EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_E, &e);
    int nl = BN_bn2bin(n, nb), el = BN_bn2bin(e, eb);
    b64url_encode(ns, sizeof(ns), nb, (size_t)nl);
    b64url_encode(es, sizeof(es), eb, (size_t)el);
    BN_free(n);
    BN_free(e);
    return json_pack("{s:s, s:s, s:s, s:s}", "kty", "RSA", "kid", kid, "n", ns, "e", es);
}

static int verify_jwks(json_t *jwks, const char *tok, struct err_info *ei)
{
    json_t *claims = NULL;
    memset(ei, 0, sizeof(*ei));
    int rc = auth_jwt_verify_jwks(jwks, tok, strlen(tok), &claims, ei);
    json_decref(claims);
    return rc;
}

static void test_idp_jwks(void)
{
    EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    EVP_PKEY *small = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    EVP_PKEY *ec = NULL, *ed = NULL;
    json_t *ecjwk, *edjwk;
    char eckid[64], edkid[64];
    struct err_info ei;
    const char *payload = "{\"iss\":\"https://idp\",\"sub\":\"alice\"}";
    auth_key_generate(AUTH_ALG_ES256, &ec);
    auth_key_generate(AUTH_ALG_EDDSA, &ed);
    auth_jwk_public(ec, AUTH_ALG_ES256, &ecjwk, eckid);
    auth_jwk_public(ed, AUTH_ALG_EDDSA, &edjwk, edkid);
    json_t *jwks = json_pack("{s:[o, o, o, o]}", "keys", rsa_jwk(rsa, "r1"), ecjwk, edjwk,
                             rsa_jwk(small, "weak"));
    CHECK_INT(
        verify_jwks(jwks,
                    make_token("{\"alg\":\"RS256\",\"kid\":\"r1\"}", payload, rsa, AUTH_ALG_RS256),
                    &ei),
        0);
    CHECK_INT(
        verify_jwks(jwks,
                    make_token("{\"alg\":\"PS256\",\"kid\":\"r1\"}", payload, rsa, AUTH_ALG_PS256),
                    &ei),
        0);
    /* RS256 signature presented as PS256 */
    CHECK_INT(
        verify_jwks(jwks,
                    make_token("{\"alg\":\"PS256\",\"kid\":\"r1\"}", payload, rsa, AUTH_ALG_RS256),
                    &ei),
        ERR_DENIED);
    CHECK_STR(ei.msg, "the token signature does not verify");
    char h[160];
    snprintf(h, sizeof(h), "{\"alg\":\"ES256\",\"kid\":\"%s\"}", eckid);
    CHECK_INT(verify_jwks(jwks, make_token(h, payload, ec, AUTH_ALG_ES256), &ei), 0);
    /* no kid: the only key of the type is used */
    CHECK_INT(
        verify_jwks(jwks, make_token("{\"alg\":\"EdDSA\"}", payload, ed, AUTH_ALG_EDDSA), &ei), 0);
    CHECK_INT(
        verify_jwks(jwks, make_token("{\"alg\":\"RS256\"}", payload, rsa, AUTH_ALG_RS256), &ei),
        ERR_DENIED);
    CHECK_CONTAINS(ei.msg, "has 2 RS256 keys");
    /* an RSA key presented for an EC alg; a weak RSA key; HS256 with the RSA modulus */
    CHECK_INT(
        verify_jwks(jwks,
                    make_token("{\"alg\":\"ES256\",\"kid\":\"r1\"}", payload, ec, AUTH_ALG_ES256),
                    &ei),
        ERR_DENIED);
    CHECK_CONTAINS(ei.msg, "does not match the issuer's key");
    CHECK_INT(verify_jwks(
                  jwks,
                  make_token("{\"alg\":\"RS256\",\"kid\":\"weak\"}", payload, rsa, AUTH_ALG_RS256),
                  &ei),
              ERR_DENIED);
    CHECK_CONTAINS(ei.msg, "1024 bits");
    CHECK_INT(
        verify_jwks(jwks, make_token("{\"alg\":\"HS256\",\"kid\":\"r1\"}", payload, NULL, 0), &ei),
        ERR_DENIED);
    CHECK_CONTAINS(ei.msg, "\"HS256\" is not accepted");
    CHECK_INT(
        verify_jwks(jwks,
                    make_token("{\"alg\":\"RS256\",\"kid\":\"r9\"}", payload, rsa, AUTH_ALG_RS256),
                    &ei),
        ERR_DENIED);
    CHECK_STR(ei.msg, "no key with kid \"r9\" in the issuer's JWKS");
    /* a point not on the curve */
    json_t *badec = json_deep_copy(ecjwk);
    json_object_set_new(badec, "kid", json_string("bad"));
    json_object_set_new(badec, "y", json_string("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"));
    json_array_append_new(json_object_get(jwks, "keys"), badec);
    CHECK_INT(
        verify_jwks(jwks,
                    make_token("{\"alg\":\"ES256\",\"kid\":\"bad\"}", payload, ec, AUTH_ALG_ES256),
                    &ei),
        ERR_DENIED);
    json_decref(jwks);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(small);
    EVP_PKEY_free(ec);
    EVP_PKEY_free(ed);
}

TEST_MAIN(TEST(test_master_key), TEST(test_seal), TEST(test_es256), TEST(test_eddsa),
          TEST(test_thumbprint), TEST(test_alg_none_and_hmac), TEST(test_unknown_kid),
          TEST(test_malformed), TEST(test_rotation), TEST(test_idp_jwks))
