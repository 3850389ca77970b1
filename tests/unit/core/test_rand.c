/*
 * Random identifiers (src/core/rand.c): rand_id_bytes hands out bytes from a per-thread buffer;
 * across refills and sizes, what it gives stays distinct and is never the same twice.
 */
#include "core/rand.h"
#include "test.h"

#include <stdint.h>
#include <string.h>

static void init(void)
{
    CHECK_INT(core_init(), 0);
}

static void test_id_bytes_distinct(void)
{
    enum { N = 2000 };
    static uint64_t ids[N];
    for (int i = 0; i < N; i++) {
        ids[i] = 0;
        rand_id_bytes(&ids[i], sizeof(ids[i]));
        if (i % 7 == 0) { /* other sizes in between: the buffer's edges move */
            unsigned char odd[13];
            rand_id_bytes(odd, sizeof(odd));
        }
    }
    int dup = 0, zero = 0;
    for (int i = 0; i < N; i++) {
        zero += ids[i] == 0;
        for (int j = 0; j < i; j++)
            dup += ids[i] == ids[j];
    }
    CHECK_INT(zero, 0);
    CHECK_INT(dup, 0);
    /* Larger than the buffer's share: straight from the CSPRNG. */
    unsigned char big[200] = {0}, zeros[200] = {0};
    rand_id_bytes(big, sizeof(big));
    CHECK(memcmp(big, zeros, sizeof(big)) != 0);
}

TEST_MAIN(TEST(init), TEST(test_id_bytes_distinct))
