/*
 * Secrets at rest and in comparison. Client secrets, API keys' secret part and local passwords
 * are stored only as argon2id strings (libsodium crypto_pwhash_str); high-entropy bearer values
 * (refresh tokens, authorization codes, browser session ids) only as SHA-256, which is enough for
 * 256-bit random values and cheap enough to look up by. Comparisons are constant-time.
 *
 * Nothing here logs, and no function puts a secret into an error message.
 */
#ifndef GH_CORE_SECRET_H
#define GH_CORE_SECRET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SECRET_HASH_MAX 128 /* an argon2id string (crypto_pwhash_STRBYTES) fits, NUL included */
#define TOKEN_HASH_LEN 43   /* SHA-256 as unpadded base64url */
#define TOKEN_HASH_SIZE 44  /* ... with its NUL */

/* argon2id (libsodium's crypto_pwhash_str with OPSLIMIT/MEMLIMIT_INTERACTIVE) of `secret`, into
   out (SECRET_HASH_MAX bytes). Takes tens of milliseconds on purpose: call it off the hot path or
   cache its verdict. Returns 0, ERR_NOMEM (the memory limit could not be allocated). */
int secret_hash(const char *secret, size_t len, char out[SECRET_HASH_MAX]);
/* true when `secret` matches the argon2id string `hash`. Constant-time in the secret. */
bool secret_verify(const char *hash, const char *secret, size_t len);
/* Burn the same time as a failed secret_verify, for unknown users/clients (no oracle). */
void secret_verify_dummy(const char *secret, size_t len);

/* SHA-256 of a high-entropy token, as unpadded base64url into out. */
void token_hash(const char *token, size_t len, char out[TOKEN_HASH_SIZE]);

/* Constant-time equality of two byte strings (length is not secret). */
bool secret_equal(const void *a, size_t alen, const void *b, size_t blen);

/* Wipe and free a heap string that held a secret. NULL is ignored. */
void secret_free(char *s);

#endif
