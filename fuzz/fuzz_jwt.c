/*
 * Fuzz target for the JWT parser and verifiers (src/auth/jwt.c), which read tokens straight from
 * the Authorization header and from identity providers: auth_jwt_decode, auth_jwt_verify
 * against a fixed keyring (one ES256 and one EdDSA key, fixed so that the seed corpus holds
 * tokens that verify) and auth_jwt_verify_jwks against that keyring's JWKS. Whatever the input,
 * a success must hand back JSON objects, and a token that verifies must also decode.
 *
 * An input starting with byte 0x01 is "header JSON \0 payload JSON \0 signature bytes", which is
 * base64url-encoded into a token first: mutations then reach the JSON and the key selection
 * instead of dying in base64url.
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
                                "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgiVabK7czXEQqwwRh\n"
                                "zKe3T9fod7nQlpls3t7OnfoNPZ6hRANCAATbsBcsP/GrHkENLBPsuwzRJPVzDNQN\n"
                                "fJZD5bvTClfO9UaYuKKhBZp5ctBNEjCWlYFrz9ozVq9wotjv0cVB2cI3\n"
                                "-----END PRIVATE KEY-----\n";
static const unsigned char ed25519_seed[32] = "gatehouse fuzz_jwt ed25519 seed";
static const unsigned char master[AUTH_MASTER_KEY_LEN] = "gatehouse fuzz_jwt master key!!";

static struct auth_keyring *kr;
static json_t *jwks;

static void keyring_init(void)
{
    BIO *b = BIO_new_mem_buf(es256_pem, -1);
    EVP_PKEY *ec = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
    EVP_PKEY *ed = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, ed25519_seed, 32);
    struct store_key rows[2];
    BIO_free(b);
    if (!ec || !ed || auth_key_to_store(ed, AUTH_ALG_EDDSA, master, &rows[0]) != 0 ||
        auth_key_to_store(ec, AUTH_ALG_ES256, master, &rows[1]) != 0)
        abort();
    rows[0].retired_at = rows[0].created_at; /* the EdDSA key verifies; the ES256 key is current */
    if (auth_keyring_build(rows, 2, master, 3600, rows[0].created_at, &kr, NULL) != 0 ||
        kr->n != 2 || !(jwks = auth_keyring_jwks(kr)))
        abort();
    for (int i = 0; i < 2; i++) {
        free(rows[i].sealed);
        free(rows[i].public_jwk);
    }
    EVP_PKEY_free(ec);
    EVP_PKEY_free(ed);
}

/* Encode up to three NUL-separated parts as base64url segments joined by dots. */
static size_t structured(const uint8_t *data, size_t size, char *out, size_t out_size)
{
    size_t n = 0;
    for (int part = 0; part < 3; part++) {
        const uint8_t *end = part < 2 ? memchr(data, 0, size) : NULL;
        size_t len = end ? (size_t)(end - data) : size;
        if (b64url_encoded_len(len) + 2 > out_size - n)
            return n;
        b64url_encode(out + n, out_size - n, data, len);
        n += strlen(out + n);
        if (part < 2)
            out[n++] = '.';
        data += len + (end != NULL);
        size -= len + (end != NULL);
    }
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char enc[AUTH_JWT_MAX + 64];
    const char *tok = (const char *)data;
    if (size > 0 && data[0] == 0x01) {
        size = structured(data + 1, size - 1, enc, sizeof(enc));
        tok = enc;
    }
    json_t *h = NULL, *p = NULL, *c = NULL;
    struct err_info ei;
    memset(&ei, 0, sizeof(ei));
    if (!kr)
        keyring_init();
    int decoded = auth_jwt_decode(tok, size, &h, &p, &ei);
    if (decoded == 0 && (!json_is_object(h) || !json_is_object(p)))
        abort();
    json_decref(h);
    json_decref(p);
    if (auth_jwt_verify(kr, tok, size, &c, &ei) == 0 && (decoded != 0 || !json_is_object(c)))
        abort();
    json_decref(c);
    c = NULL;
    if (auth_jwt_verify_jwks(jwks, tok, size, &c, &ei) == 0 && (decoded != 0 || !json_is_object(c)))
        abort();
    json_decref(c);
    if (memchr(ei.msg, '\0', sizeof(ei.msg)) == NULL)
        abort(); /* every message is terminated */
    return 0;
}
