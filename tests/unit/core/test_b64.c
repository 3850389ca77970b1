/*
 * base64url decoding (src/core/rand.c), which JWS, JWK and sealed ids rest on: canonical input
 * round-trips; anything outside the URL-safe alphabet is refused. Debian 12's libsodium (1.0.18)
 * decodes every byte from 0x80 up as the digit 63 ('_'), so a token could be altered without
 * changing what it decodes to.
 */
#include "core/rand.h"
#include "test.h"

#include <stdbool.h>

static void test_round_trip(void)
{
    const char *in = "hello, gatehouse?";
    char enc[64];
    unsigned char dec[64];
    b64url_encode(enc, sizeof(enc), in, strlen(in));
    CHECK_INT(b64url_decode(dec, sizeof(dec), enc, strlen(enc)), (long)strlen(in));
    CHECK(memcmp(dec, in, strlen(in)) == 0);
    CHECK_INT(b64url_decode(dec, sizeof(dec), "__8", 3), 2); /* 0xff 0xff */
    CHECK_INT(dec[0], 0xff);
}

static void test_alphabet(void)
{
    unsigned char dec[64];
    static const char *bad[] = {"_\x80_", "__\xff", "AA+A", "AA/A", "AA=A",
                                "AA A",   "AA\nA",  "AA.A", "AAA="};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CHECK_INT(b64url_decode(dec, sizeof(dec), bad[i], strlen(bad[i])), -1);
    /* every byte that is not in the alphabet, in the place of a '_' */
    for (int c = 0; c < 256; c++) {
        char v[5] = {'_', '_', '_', (char)c, '\0'}; /* 24 bits: every digit is canonical */
        bool in_alphabet = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                           (c >= '0' && c <= '9') || c == '-' || c == '_';
        long rc = b64url_decode(dec, sizeof(dec), v, 4);
        if (in_alphabet ? rc != 3 : rc != -1)
            fprintf(stderr, "byte 0x%02x: %ld\n", c, rc);
        CHECK(in_alphabet ? rc == 3 : rc == -1);
    }
}

TEST_MAIN(TEST(test_round_trip), TEST(test_alphabet))
