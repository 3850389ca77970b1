/*
 * store on a full file system: a real one, a small tmpfs mounted for the test (it runs as root;
 * without the right to mount it says so and skips) with a file that takes every free byte, so
 * that SQLite fails to grow its WAL with SQLITE_FULL as on a full disk. What must hold:
 * - a revocation that cannot be written returns the error but is in force at once, for every
 *   connection of the process, and moves the revocation sequence (cached verdicts go);
 * - a refresh rotation that cannot be written spends nothing (the token stays usable);
 * - once space is back, store_sweep (or store_close) writes the remembered revocations.
 */
#include "core/rand.h"
#include "store/store-int.h"
#include "test.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <unistd.h>

static char dir[64], path[128], filler[128];
static bool mounted;

static struct store *open_store(void)
{
    struct store *st = NULL;
    struct err_info ei = {0};
    int err = store_open(path, &st, &ei);
    if (err)
        fprintf(stderr, "store_open: %s\n", ei.msg);
    CHECK_INT(err, 0);
    return st;
}

static void fill(void)
{
    FILE *f = fopen(filler, "w");
    CHECK(f != NULL);
    if (f == NULL)
        return;
    setvbuf(f, NULL, _IONBF, 0);
    static char chunk[4096];
    while (fwrite(chunk, 1, sizeof(chunk), f) == sizeof(chunk))
        ;
    while (fwrite(chunk, 1, 1, f) == 1)
        ;
    fclose(f);
}

static void new_family(struct store *st, struct store_family *f, const char *rt)
{
    memset(f, 0, sizeof(*f));
    f->user_id = 1;
    f->expires_at = store_now() + 3600;
    snprintf(f->client_id, sizeof(f->client_id), "dcr-full");
    snprintf(f->resource, sizeof(f->resource), "https://gw/mcp");
    snprintf(f->scope, sizeof(f->scope), "mcp");
    CHECK_INT(store_family_new(st, f), 0);
    CHECK_INT(store_refresh_put(st, f->id, rt, store_now() + 3600), 0);
}

static int64_t count(struct store *st, const char *sql, const char *arg)
{
    struct store_stmt *s = store_stmt(st, sql); /* sql is a literal: cached by its address */
    CHECK(s != NULL);
    store_bind_text(s, 1, arg);
    int64_t n = store_step(st, s) == STORE_ROW ? store_col_int64(s, 0) : -1;
    store_done(s);
    return n;
}

static void test_full_disk(void)
{
    CHECK_INT(core_init(), 0);
    snprintf(dir, sizeof(dir), "/tmp/gh-store-full-XXXXXX");
    CHECK(mkdtemp(dir) != NULL);
    if (mount("tmpfs", dir, "tmpfs", 0, "size=2m,mode=0700") != 0) {
        printf("SKIP test_full_disk: cannot mount a tmpfs at %s (%s); run as root\n", dir,
               strerror(errno));
        return;
    }
    mounted = true;
    snprintf(path, sizeof(path), "%s/store.sqlite", dir);
    snprintf(filler, sizeof(filler), "%s/filler", dir);
    struct store *st = open_store(), *other = open_store();
    struct store_family a, b, g;
    new_family(st, &a, "rt-a"); /* rotated on the full disk */
    new_family(st, &b, "rt-b"); /* revoked on the full disk */
    uint64_t seq0 = 0, seq1 = 0;
    CHECK_INT(store_revocation_seq(other, &seq0), 0);

    fill();
    /* A rotation that cannot be written: an error that is not a verdict, and nothing spent. */
    int err = store_refresh_rotate(st, "rt-a", "rt-a2", &g);
    CHECK(err != 0 && err != ERR_NOTFOUND && err != ERR_DENIED && err != ERR_EXISTS);
    CHECK_INT(store_refresh_peek(st, "rt-a", &g), 0);

    /* Revocations that cannot be written: the error, and the effect, on both connections. */
    CHECK(store_family_revoke(st, b.id) != 0);
    CHECK_INT(store_refresh_peek(st, "rt-b", &g), ERR_DENIED);
    CHECK_INT(store_refresh_use(other, "rt-b", &g), ERR_DENIED);
    CHECK(store_jti_revoke(st, "jti-full", store_now() + 600) != 0);
    bool r = false;
    CHECK_INT(store_jti_revoked(other, "jti-full", &r), 0);
    CHECK(r);
    CHECK_INT(store_revocation_seq(other, &seq1), 0);
    CHECK(seq1 != seq0);                 /* validators flush their cached verdicts */
    CHECK(store_unsaved_flush(st) != 0); /* still full: nothing written yet */
    CHECK_INT(count(other, "SELECT count(*) FROM revoked_jtis WHERE jti = ?", "jti-full"), 0);

    /* Space is back: the sweep writes them, and the rotation works. */
    CHECK_INT(unlink(filler), 0);
    CHECK_INT(store_sweep(st, store_now()), 0);
    CHECK_INT(count(other, "SELECT count(*) FROM revoked_jtis WHERE jti = ?", "jti-full"), 1);
    CHECK_INT(count(other, "SELECT revoked FROM families WHERE id = ?", b.id), 1);
    CHECK_INT(store_jti_revoked(other, "jti-full", &r), 0);
    CHECK(r);
    CHECK_INT(store_refresh_peek(other, "rt-b", &g), ERR_DENIED);
    CHECK_INT(store_refresh_rotate(st, "rt-a", "rt-a2", &g), 0);
    CHECK_STR(g.id, a.id);
    CHECK_INT(store_refresh_peek(st, "rt-a2", &g), 0);
    CHECK_INT(store_refresh_use(st, "rt-a", &g), ERR_EXISTS); /* the old one is spent now */

    /* Full again: a revocation that fails, then space, then the connection closes before any
       sweep: closing writes it. */
    fill();
    CHECK(store_jti_revoke(st, "jti-close", store_now() + 600) != 0);
    CHECK_INT(unlink(filler), 0);
    store_close(st);
    CHECK_INT(count(other, "SELECT count(*) FROM revoked_jtis WHERE jti = ?", "jti-close"), 1);
    store_close(other);
}

static void test_cleanup(void)
{
    if (mounted)
        CHECK_INT(umount(dir), 0);
    CHECK_INT(rmdir(dir), 0);
}

TEST_MAIN(TEST(test_full_disk), TEST(test_cleanup))
