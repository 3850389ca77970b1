/* Random identifiers and base64url; see rand.h. */
#include "core/rand.h"
#include "core/err.h"

#include <sodium.h>
#include <string.h>
#include <time.h>

int core_init(void)
{
    return sodium_init() < 0 ? ERR_INTERNAL : 0;
}

void rand_bytes(void *out, size_t n)
{
    randombytes_buf(out, n);
}

#define RAND_ID_POOL 256

void rand_id_bytes(void *out, size_t n)
{
    static _Thread_local unsigned char pool[RAND_ID_POOL];
    static _Thread_local size_t left;
    if (n > RAND_ID_POOL / 4) {
        randombytes_buf(out, n);
        return;
    }
    if (left < n) {
        randombytes_buf(pool, sizeof(pool));
        left = sizeof(pool);
    }
    unsigned char *p = pool + sizeof(pool) - left;
    memcpy(out, p, n);
    sodium_memzero(p, n);
    left -= n;
}

void rand_token(char *out, size_t out_size, size_t nbytes)
{
    unsigned char raw[64];
    GH_ASSERT(nbytes <= sizeof(raw));
    randombytes_buf(raw, nbytes);
    b64url_encode(out, out_size, raw, nbytes);
    sodium_memzero(raw, sizeof(raw));
}

size_t b64url_encoded_len(size_t n)
{
    return sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_URLSAFE_NO_PADDING) - 1;
}

void b64url_encode(char *out, size_t out_size, const void *in, size_t n)
{
    GH_ASSERT(out_size >= b64url_encoded_len(n) + 1);
    sodium_bin2base64(out, out_size, in, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

long b64url_decode(void *out, size_t out_size, const char *in, size_t n)
{
    size_t len;
    const char *end;
    /* libsodium 1.0.18 (Debian 12) decodes every byte from 0x80 up as the digit 63: without this
       check a JWS signature with a '_' in it verified as well with any such byte in its place. */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)in[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return -1;
    }
    if (sodium_base642bin(out, out_size, in, n, NULL, &len, &end,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
        end != in + n)
        return -1;
    return (long)len;
}

uint64_t clock_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
