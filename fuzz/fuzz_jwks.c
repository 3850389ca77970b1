/*
 * Fuzz JWKS documents, which Gatehouse fetches from each identity provider's jwks_uri to verify
 * id_tokens (src/oauth/sso.c): every JWK through auth_jwk_import for each algorithm, and the
 * whole set through auth_jwt_verify_jwks for three fixed id_tokens (ES256 with a kid, EdDSA with
 * a kid, ES256 without one), signed at start-up by two fixed test keys. Properties:
 * - a refusal names its cause (a non-empty, terminated message);
 * - an imported key of ours (ES256, EdDSA) round-trips: exported as a JWK and imported again it
 *   is the same key;
 * - a token verifies only when the document holds the key that signed it (its public x), and
 *   then hands back exactly the signed claims: no document can make a forged token pass.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/pem.h>

#include "auth/auth-int.h"
#include "core/rand.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Test keys, generated for this file; they protect nothing. */
static const char es256_pem[] = "-----BEGIN PRIVATE KEY-----\n"
                                "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgDrfDj80L7ZdWej8X\n"
                                "E7z5SY1EA/4FLjtbXLAHDweaj6ChRANCAAQ/5X0QAbfXfjdm66ABN+MgoTLZbNBX\n"
                                "wE2xmbg0RfxU45OIKO7Bk4aEQKkFiIwor7BFvBFv04G7GOLeUc8mH1m6\n"
                                "-----END PRIVATE KEY-----\n";
static const unsigned char ed25519_seed[32] = "gatehouse fuzz_jwks ed25519 see";

#define NTOK 3
static struct {
    char tok[1024];
    char x[128]; /* the signer's public x, as its JWK says */
} toks[NTOK];
static json_t *claims_signed;

static void make_token(int i, EVP_PKEY *pk, enum auth_alg alg, bool with_kid)
{
    json_t *jwk = NULL;
    char kid[64];
    if (auth_jwk_public(pk, alg, &jwk, kid) != 0)
        abort();
    snprintf(toks[i].x, sizeof(toks[i].x), "%s", json_string_value(json_object_get(jwk, "x")));
    json_decref(jwk);
    json_t *h = json_pack("{s:s, s:s}", "alg", auth_alg_name(alg), "typ", "JWT");
    if (with_kid)
        json_object_set_new(h, "kid", json_string(kid));
    char *hs = json_dumps(h, JSON_COMPACT), *cs = json_dumps(claims_signed, JSON_COMPACT);
    json_decref(h);
    char *t = toks[i].tok;
    size_t cap = sizeof(toks[i].tok), n;
    b64url_encode(t, cap, hs, strlen(hs));
    n = strlen(t);
    t[n++] = '.';
    b64url_encode(t + n, cap - n, cs, strlen(cs));
    n += strlen(t + n);
    unsigned char sig[AUTH_SIG_MAX];
    size_t siglen = 0;
    if (auth_sig_sign(pk, alg, t, n, sig, &siglen) != 0)
        abort();
    t[n++] = '.';
    b64url_encode(t + n, cap - n, sig, siglen);
    free(hs);
    free(cs);
}

static void init(void)
{
    if (core_init() != 0)
        abort();
    BIO *b = BIO_new_mem_buf(es256_pem, -1);
    EVP_PKEY *ec = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
    EVP_PKEY *ed = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, ed25519_seed, 32);
    BIO_free(b);
    if (!ec || !ed)
        abort();
    claims_signed = json_pack("{s:s, s:s, s:s, s:I, s:I, s:s}", "iss", "https://idp.example", "aud",
                              "gatehouse", "sub", "fuzz-subject", "exp", (json_int_t)4102444800,
                              "iat", (json_int_t)1700000000, "nonce", "n");
    make_token(0, ec, AUTH_ALG_ES256, true);
    make_token(1, ed, AUTH_ALG_EDDSA, true);
    make_token(2, ec, AUTH_ALG_ES256, false);
    EVP_PKEY_free(ec);
    EVP_PKEY_free(ed);
}

static void message_or_abort(const struct err_info *ei)
{
    if (memchr(ei->msg, '\0', sizeof(ei->msg)) == NULL || ei->msg[0] == '\0')
        abort();
}

static bool holds_x(const json_t *jwks, const char *x)
{
    size_t i;
    json_t *k;
    json_array_foreach(json_object_get(jwks, "keys"), i, k)
    {
        const char *kx = json_string_value(json_object_get(k, "x"));
        if (kx != NULL && strcmp(kx, x) == 0)
            return true;
    }
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (claims_signed == NULL)
        init();
    json_error_t je;
    json_t *jwks = json_loadb((const char *)data, size, 0, &je);
    if (jwks == NULL)
        return 0;
    struct err_info ei;
    /* each key, each algorithm */
    json_t *keys = json_object_get(jwks, "keys"), *k;
    size_t i;
    json_array_foreach(keys, i, k)
    {
        if (i >= 8)
            break;
        for (int alg = AUTH_ALG_ES256; alg <= AUTH_ALG_PS256; alg++) {
            EVP_PKEY *pk = NULL;
            memset(&ei, 0, sizeof(ei));
            if (auth_jwk_import(k, (enum auth_alg)alg, &pk, &ei) != 0) {
                message_or_abort(&ei);
                continue;
            }
            if (pk == NULL)
                abort();
            if (alg == AUTH_ALG_ES256 || alg == AUTH_ALG_EDDSA) {
                json_t *again = NULL;
                char kid[64];
                EVP_PKEY *pk2 = NULL;
                if (auth_jwk_public(pk, (enum auth_alg)alg, &again, kid) != 0 ||
                    auth_jwk_import(again, (enum auth_alg)alg, &pk2, &ei) != 0 ||
                    EVP_PKEY_eq(pk, pk2) != 1)
                    abort();
                EVP_PKEY_free(pk2);
                json_decref(again);
            }
            EVP_PKEY_free(pk);
        }
    }
    /* the whole set, for tokens signed by keys the document may or may not hold */
    for (int t = 0; t < NTOK; t++) {
        json_t *c = NULL;
        memset(&ei, 0, sizeof(ei));
        if (auth_jwt_verify_jwks(jwks, toks[t].tok, strlen(toks[t].tok), &c, &ei) == 0) {
            if (!holds_x(jwks, toks[t].x) || !json_equal(c, claims_signed))
                abort();
        } else {
            message_or_abort(&ei);
        }
        json_decref(c);
    }
    json_decref(jwks);
    return 0;
}
