/*
 * Randomness and encodings for identifiers: session ids, event ids, opaque cursors. Random bytes
 * come from libsodium (getrandom(2) underneath); thread-safe after core_init().
 */
#ifndef GH_CORE_RAND_H
#define GH_CORE_RAND_H

#include <stddef.h>
#include <stdint.h>

/* Initialise libsodium; call once at start-up before threads. Returns 0 or ERR_INTERNAL. */
int core_init(void);

void rand_bytes(void *out, size_t n);
/*
 * Random bytes for identifiers that are unguessable but not secrets kept by the gateway (the id
 * of a request to a server): the same CSPRNG, through a per-thread buffer refilled 256 bytes at
 * a time, so a call costs a copy instead of a getrandom(2). Bytes handed out are wiped from the
 * buffer. Not for key material (rand_bytes). Any thread; not across fork() without exec().
 */
void rand_id_bytes(void *out, size_t n);
/* `nbytes` random bytes as unpadded base64url into out (size >= 4*nbytes/3 + 4), NUL-terminated. */
void rand_token(char *out, size_t out_size, size_t nbytes);

/* Unpadded base64url. encode: out_size >= b64url_encoded_len(n) + 1. decode: returns the decoded
   length, or -1 on bad input or short output. */
size_t b64url_encoded_len(size_t n);
void b64url_encode(char *out, size_t out_size, const void *in, size_t n);
long b64url_decode(void *out, size_t out_size, const char *in, size_t n);

/* Monotonic clock in nanoseconds. */
uint64_t clock_now_ns(void);

#endif
