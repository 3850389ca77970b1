/* The per-worker cache of users' settings (src/mcp/settings.c) over a real SQLite store: a
   lookup reads the store once, then the cache, until a settings row changes through any
   connection (the revocation counter moves); bounded; store failures are not cached. */
#include <stdlib.h>
#include <unistd.h>

#include "core/rand.h"
#include "mcp/gateway.h"
#include "store/store-int.h"
#include "test.h"

static char dir[64];
static char path[128];

static void remove_dir(void)
{
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

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

static void put(struct store *st, int64_t uid, const char *server, const char *discovery,
                const char *tools)
{
    struct store_settings v = {0};
    struct err_info ei = {0};
    snprintf(v.discovery, sizeof(v.discovery), "%s", discovery);
    v.tools = tools ? json_loads(tools, 0, NULL) : NULL;
    CHECK_INT(store_settings_put(st, uid, server, &v, &ei), 0);
    store_settings_release(&v);
}

/* The selection c gives for (uid, server), as compact JSON ("null": every tool). */
static char *selection(struct mcp_settings_cache *c, struct store *st, int64_t uid,
                       const char *server, char *disc, size_t cap)
{
    struct store_settings v;
    CHECK_INT(mcp_settings_cache_get(c, st, uid, server, &v), 0);
    snprintf(disc, cap, "%s", v.discovery);
    char *s = v.tools ? json_dumps(v.tools, JSON_COMPACT) : strdup("null");
    store_settings_release(&v);
    return s;
}

#define CHECK_SEL(c, st, uid, server, want_disc, want_tools)                                       \
    do {                                                                                           \
        char d_[16];                                                                               \
        char *s_ = selection(c, st, uid, server, d_, sizeof(d_));                                  \
        CHECK_STR(s_, want_tools);                                                                 \
        CHECK_STR(d_, want_disc);                                                                  \
        free(s_);                                                                                  \
    } while (0)

static void check_stats(struct mcp_settings_cache *c, uint64_t hits, uint64_t misses)
{
    uint64_t h, m;
    mcp_settings_cache_stats(c, &h, &m);
    CHECK_INT(h, hits);
    CHECK_INT(m, misses);
}

static int64_t alice, bob;

static void test_setup(void)
{
    CHECK_INT(core_init(), 0);
    snprintf(dir, sizeof(dir), "/tmp/gh-settings-XXXXXX");
    CHECK(mkdtemp(dir) != NULL);
    atexit(remove_dir);
    snprintf(path, sizeof(path), "%s/store.sqlite", dir);
    struct store *st = open_store();
    struct store_user u;
    struct err_info ei = {0};
    CHECK_INT(store_user_add(st, "alice", NULL, NULL, false, &u, &ei), 0);
    alice = u.id;
    CHECK_INT(store_user_add(st, "bob", NULL, NULL, false, &u, &ei), 0);
    bob = u.id;
    store_close(st);
}

static void test_hits_until_a_change(void)
{
    struct store *worker = open_store(), *cli = open_store();
    struct mcp_settings_cache *c = mcp_settings_cache_new(64);
    put(cli, alice, "pets", "", "[\"list_pets\"]");
    CHECK_SEL(c, worker, alice, "pets", "", "[\"list_pets\"]");
    check_stats(c, 0, 1);
    CHECK_SEL(c, worker, alice, "pets", "", "[\"list_pets\"]");
    CHECK_SEL(c, worker, alice, "pets", "", "[\"list_pets\"]");
    check_stats(c, 2, 1); /* the store was read once */
    /* no settings: defaults, cached as such */
    CHECK_SEL(c, worker, bob, "pets", "", "null");
    CHECK_SEL(c, worker, bob, "pets", "", "null");
    CHECK_SEL(c, worker, alice, "other", "", "null");
    check_stats(c, 3, 3);

    /* Another connection (the CLI, another process) changes alice's selection: the next lookup
       sees it, and the entries of others are read again too (the cache was emptied). */
    put(cli, alice, "pets", "search", "[\"list_pets\",\"get_pet\"]");
    CHECK_SEL(c, worker, alice, "pets", "search", "[\"list_pets\",\"get_pet\"]");
    CHECK_SEL(c, worker, bob, "pets", "", "null");
    check_stats(c, 3, 5);
    /* bob's first settings, written through the worker's own connection (the settings tool) */
    put(worker, bob, "pets", "", "[]");
    CHECK_SEL(c, worker, bob, "pets", "", "[]");
    check_stats(c, 3, 6);
    /* every tool again: the row stays, tools NULL */
    put(cli, alice, "pets", "", NULL);
    CHECK_SEL(c, worker, alice, "pets", "", "null");
    check_stats(c, 3, 7);
    /* rows deleted (a user deleted: ON DELETE CASCADE) move the counter as well */
    char sql[96];
    snprintf(sql, sizeof(sql), "DELETE FROM user_settings WHERE user_id = %lld", (long long)bob);
    CHECK_INT(store_exec_sql(cli, sql), 0);
    CHECK_SEL(c, worker, bob, "pets", "", "null");
    check_stats(c, 3, 8);
    mcp_settings_cache_free(c);
    store_close(worker);
    store_close(cli);
}

static void test_bounded(void)
{
    struct store *st = open_store();
    struct mcp_settings_cache *c = mcp_settings_cache_new(2);
    CHECK_SEL(c, st, alice, "a", "", "null");
    CHECK_SEL(c, st, alice, "b", "", "null");
    CHECK_SEL(c, st, alice, "a", "", "null");
    check_stats(c, 1, 2);
    CHECK_SEL(c, st, alice, "c", "", "null"); /* full: emptied, then c kept */
    CHECK_SEL(c, st, alice, "c", "", "null");
    CHECK_SEL(c, st, alice, "a", "", "null");
    check_stats(c, 2, 4);
    mcp_settings_cache_free(c);
    store_close(st);
}

TEST_MAIN(TEST(test_setup), TEST(test_hits_until_a_change), TEST(test_bounded))
