/*
 * What the files of src/auth share and nobody else needs: the algorithms, a key in memory, the
 * keyring's layout, the raw sign/verify primitives (JWS signature encodings over OpenSSL EVP),
 * JWK import/export, and a keyring built from store rows without a store (for the fuzzer and the
 * tests of the store-independent parts).
 */
#ifndef GH_AUTH_AUTH_INT_H
#define GH_AUTH_AUTH_INT_H

#include <stdatomic.h>

#include <openssl/evp.h>

#include "auth/auth.h"

#define AUTH_JWT_MAX 8192 /* a compact JWS longer than this is refused before decoding */
#define AUTH_SIG_MAX 1024 /* RSA up to 8192 bits */
#define AUTH_RSA_MIN_BITS 2048
#define AUTH_LEEWAY_S 30 /* clock skew tolerated on exp, nbf and iat */

enum auth_alg { AUTH_ALG_ES256 = 0, AUTH_ALG_EDDSA, AUTH_ALG_RS256, AUTH_ALG_PS256 };

/* "ES256" → AUTH_ALG_ES256 ...; ERR_NOTFOUND for anything else (HS*, none, unknown). */
int auth_alg_parse(const char *name, enum auth_alg *out);
const char *auth_alg_name(enum auth_alg alg);

/* One key of a keyring: the private key (ours) or public key (an IdP's), ready for EVP. */
struct auth_key {
    char kid[64];
    enum auth_alg alg;
    EVP_PKEY *pkey;
    json_t *jwk;        /* the public JWK (ours only) */
    int64_t retired_at; /* 0 = current */
};

struct auth_keyring {
    atomic_int refcnt;
    struct auth_key *keys;
    size_t n;
    const struct auth_key *current; /* NULL when the store holds no current key */
};

/* Sign `n` bytes with pk as a JWS signature of `alg` (ES256: raw R||S, 64 bytes). sig has
   AUTH_SIG_MAX bytes. Returns 0 or ERR_INTERNAL. */
int auth_sig_sign(EVP_PKEY *pk, enum auth_alg alg, const void *data, size_t n, unsigned char *sig,
                  size_t *siglen);
/* 0 when sig is a valid JWS signature of `alg` over data by pk, else ERR_DENIED. */
int auth_sig_verify(EVP_PKEY *pk, enum auth_alg alg, const void *data, size_t n,
                    const unsigned char *sig, size_t siglen);

/* A fresh private key for alg (ES256 or EdDSA). */
int auth_key_generate(enum auth_alg alg, EVP_PKEY **out);
/* The public JWK of our key pk (kty, crv, x[, y], kid, alg, use "sig") and its kid (RFC 7638
   thumbprint). */
int auth_jwk_public(EVP_PKEY *pk, enum auth_alg alg, json_t **jwk, char kid[64]);
/* A public key from a JWK for verifying `alg` (RSA n/e for RS256/PS256, EC P-256 x/y, OKP
   Ed25519 x). ERR_INVAL with ei naming what does not fit. */
int auth_jwk_import(const json_t *jwk, enum auth_alg alg, EVP_PKEY **out, struct err_info *ei);

/* Fill a store row for pk: kid, alg, the sealed private key (DER), the public JWK text,
   created_at = now. Release with store_key_release. */
int auth_key_to_store(EVP_PKEY *pk, enum auth_alg alg,
                      const unsigned char master[AUTH_MASTER_KEY_LEN], struct store_key *out);
/* Build a keyring from store rows: unseal each key, check it against its kid, skip the ones
   retired before now - verify_grace_s. The last row with retired_at == 0 is current. */
int auth_keyring_build(const struct store_key *rows, size_t n,
                       const unsigned char master[AUTH_MASTER_KEY_LEN], uint32_t verify_grace_s,
                       int64_t now, struct auth_keyring **out, struct err_info *ei);

/* auth_jwt_verify that also hands back the header (new reference), for the typ check. */
int auth_jwt_verify_full(const struct auth_keyring *kr, const char *tok, size_t len,
                         json_t **header, json_t **claims, struct err_info *ei);

/* Copy s into out (size >= 2) for quoting in an error message: printable ASCII without quotes
   or backslashes, at most out_size - 4 characters then "...". Attacker-supplied header values
   pass through here before they reach a message. */
void auth_quote(const char *s, char *out, size_t out_size);

#endif
