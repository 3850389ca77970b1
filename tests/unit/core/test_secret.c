/* core/secret: argon2id round trip, the dummy verification, token hashes, constant-time compare. */
#include "core/rand.h"
#include "core/secret.h"
#include "test.h"

#include <stdlib.h>
#include <string.h>

static void test_hash_verify(void)
{
    char h[SECRET_HASH_MAX];
    CHECK_INT(core_init(), 0);
    CHECK_INT(secret_hash("correct horse", 13, h), 0);
    CHECK(strncmp(h, "$argon2id$", 10) == 0);
    CHECK(strstr(h, "correct") == NULL);
    CHECK(secret_verify(h, "correct horse", 13));
    CHECK(!secret_verify(h, "correct hors", 12));
    CHECK(!secret_verify(h, "correct horsf", 13));
    CHECK(!secret_verify("", "x", 1));
    CHECK(!secret_verify(NULL, "x", 1));
    char h2[SECRET_HASH_MAX];
    CHECK_INT(secret_hash("correct horse", 13, h2), 0);
    CHECK(strcmp(h, h2) != 0); /* salted */
    secret_verify_dummy("anything", 8);
    secret_verify_dummy("anything", 8);
}

static void test_token_hash(void)
{
    char out[TOKEN_HASH_SIZE];
    token_hash("abc", 3, out);
    /* SHA-256("abc") = ba7816bf..., base64url without padding */
    CHECK_STR(out, "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0");
    CHECK_INT(strlen(out), TOKEN_HASH_LEN);
}

static void test_equal_free(void)
{
    CHECK(secret_equal("abc", 3, "abc", 3));
    CHECK(!secret_equal("abc", 3, "abd", 3));
    CHECK(!secret_equal("abc", 3, "abcd", 4));
    CHECK(secret_equal("", 0, "", 0));
    secret_free(NULL);
    char *s = strdup("topsecret");
    secret_free(s);
}

TEST_MAIN(TEST(test_hash_verify), TEST(test_token_hash), TEST(test_equal_free))
