/*
 * Secrets at rest and in comparison (see secret.h): argon2id strings for low-entropy or
 * long-lived secrets, SHA-256 in base64url for high-entropy bearer values, libsodium's
 * constant-time compare. The dummy verification for unknown names uses one argon2id string made
 * once per process from a random secret, so that it costs exactly what a real failure costs.
 */
#include "core/secret.h"
#include "core/err.h"
#include "core/rand.h"

#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(crypto_pwhash_STRBYTES <= SECRET_HASH_MAX, "an argon2id string fits");
_Static_assert(TOKEN_HASH_SIZE == 44, "SHA-256 is 43 base64url characters");

int secret_hash(const char *secret, size_t len, char out[SECRET_HASH_MAX])
{
    char h[crypto_pwhash_STRBYTES];
    if (crypto_pwhash_str_alg(h, secret, len, crypto_pwhash_OPSLIMIT_INTERACTIVE,
                              crypto_pwhash_MEMLIMIT_INTERACTIVE,
                              crypto_pwhash_ALG_ARGON2ID13) != 0)
        return ERR_NOMEM;
    memcpy(out, h, sizeof(h));
    return 0;
}

bool secret_verify(const char *hash, const char *secret, size_t len)
{
    if (hash == NULL || memchr(hash, '\0', SECRET_HASH_MAX) == NULL)
        return false;
    return crypto_pwhash_str_verify(hash, secret, len) == 0;
}

static char dummy_hash[SECRET_HASH_MAX];
static pthread_once_t dummy_once = PTHREAD_ONCE_INIT;

static void dummy_init(void)
{
    char s[32];
    rand_token(s, sizeof(s), 16);
    if (secret_hash(s, strlen(s), dummy_hash) != 0)
        dummy_hash[0] = '\0';
    sodium_memzero(s, sizeof(s));
}

void secret_verify_dummy(const char *secret, size_t len)
{
    pthread_once(&dummy_once, dummy_init);
    (void)secret_verify(dummy_hash, secret, len);
}

void token_hash(const char *token, size_t len, char out[TOKEN_HASH_SIZE])
{
    unsigned char d[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(d, (const unsigned char *)token, len);
    b64url_encode(out, TOKEN_HASH_SIZE, d, sizeof(d));
}

bool secret_equal(const void *a, size_t alen, const void *b, size_t blen)
{
    if (alen != blen)
        return false;
    if (alen == 0)
        return true;
    return sodium_memcmp(a, b, alen) == 0;
}

void secret_free(char *s)
{
    if (s == NULL)
        return;
    sodium_memzero(s, strlen(s));
    free(s);
}
