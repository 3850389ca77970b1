/*
 * store pool: store calls run off the event loop, their results come back on the loop's thread
 * through its mailbox, and the loop keeps running while a call is slow. On SQLite by default;
 * with GH_TEST_STORE=postgres on the throwaway cluster of tests/unit/store/with-postgres.sh (a
 * slow call is then a real one: pg_sleep on the server).
 */
#include "core/mailbox.h"
#include "core/rand.h"
#include "store/store-int.h"
#include "test.h"

#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

static char dir[64];
static char where[512];
static bool postgres;
static pthread_t loop_thread;
static int64_t user_id;

static void remove_dir(void)
{
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

struct lookup {
    int64_t id;
    struct store_user u;
    int rc;
    bool done;
    int *ndone;
};

static int lookup_job(struct store *st, void *arg)
{
    struct lookup *l = arg;
    CHECK(!pthread_equal(pthread_self(), loop_thread)); /* off the loop */
    return store_user_get(st, l->id, &l->u);
}

static void lookup_done_cb(int rc, void *arg)
{
    struct lookup *l = arg;
    CHECK(pthread_equal(pthread_self(), loop_thread)); /* back on the loop */
    l->rc = rc;
    l->done = true;
    (*l->ndone)++;
}

static void test_setup(void)
{
    CHECK_INT(core_init(), 0);
    loop_thread = pthread_self();
    const char *which = getenv("GH_TEST_STORE");
    postgres = which != NULL && strcmp(which, "postgres") == 0;
    if (postgres) {
        snprintf(where, sizeof(where), "postgresql:///gh_store?host=%s&port=%s&user=postgres",
                 getenv("GH_TEST_PG_HOST"), getenv("GH_TEST_PG_PORT"));
    } else {
        snprintf(dir, sizeof(dir), "/tmp/gh-pool-XXXXXX");
        CHECK(mkdtemp(dir) != NULL);
        atexit(remove_dir);
        snprintf(where, sizeof(where), "%s/store.sqlite", dir);
    }
    struct store *st = NULL;
    struct err_info ei = {0};
    CHECK_INT(store_open(where, &st, &ei), 0);
    struct store_user u;
    CHECK_INT(store_user_add(st, "pool-user", NULL, NULL, false, &u, &ei), 0);
    user_id = u.id;
    store_close(st);
}

/* Many calls from the loop, two connections: every result arrives, on the loop, right. */
static void test_results_on_the_loop(void)
{
    uv_loop_t loop;
    CHECK_INT(uv_loop_init(&loop), 0);
    struct mailbox *mb = mailbox_new(&loop);
    struct store_pool *pool = NULL;
    struct err_info ei = {0};
    CHECK_INT(store_pool_new(where, 2, &pool, &ei), 0);
    enum { N = 200 };
    static struct lookup l[N];
    int ndone = 0;
    for (int i = 0; i < N; i++) {
        l[i] = (struct lookup){.id = i % 2 ? user_id : 987654, .ndone = &ndone};
        CHECK_INT(store_pool_submit(pool, mb, lookup_job, lookup_done_cb, &l[i]), 0);
    }
    while (ndone < N)
        uv_run(&loop, UV_RUN_ONCE);
    for (int i = 0; i < N; i++) {
        CHECK(l[i].done);
        CHECK_INT(l[i].rc, i % 2 ? 0 : ERR_NOTFOUND); /* errors come back as they are */
        if (i % 2)
            CHECK_STR(l[i].u.name, "pool-user");
    }
    store_pool_free(pool);
    mailbox_close(mb);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_INT(uv_loop_close(&loop), 0);

    /* a wrong location fails at creation, with the backend's message */
    CHECK(store_pool_new("postgresql://127.0.0.1:1/x?connect_timeout=2", 2, &pool, &ei) != 0);
    CHECK_CONTAINS(ei.msg, "postgres store");
}

/* A slow store call (300 ms) does not stall the loop: a 10 ms timer keeps firing meanwhile. */
static int slow_job(struct store *st, void *arg)
{
    (void)arg;
    if (postgres)
        return store_exec_sql(st, "SELECT pg_sleep(0.3)");
    usleep(300 * 1000); /* SQLite has no server to wait for: the call is made slow here */
    return 0;
}

static void slow_done_cb(int rc, void *arg)
{
    CHECK_INT(rc, 0);
    *(bool *)arg = true;
}

static void tick_cb(uv_timer_t *t)
{
    (*(int *)t->data)++;
}

static void test_loop_not_blocked(void)
{
    uv_loop_t loop;
    CHECK_INT(uv_loop_init(&loop), 0);
    struct mailbox *mb = mailbox_new(&loop);
    struct store_pool *pool = NULL;
    struct err_info ei = {0};
    CHECK_INT(store_pool_new(where, 1, &pool, &ei), 0);
    int ticks = 0;
    bool done = false;
    uv_timer_t timer;
    uv_timer_init(&loop, &timer);
    timer.data = &ticks;
    uv_timer_start(&timer, tick_cb, 10, 10);
    CHECK_INT(store_pool_submit(pool, mb, slow_job, slow_done_cb, &done), 0);
    while (!done)
        uv_run(&loop, UV_RUN_ONCE);
    CHECK(ticks >= 10); /* ~30 ticks in 300 ms; a blocked loop would have none */
    uv_timer_stop(&timer);
    uv_close((uv_handle_t *)&timer, NULL);

    /* stopping: what is queued completes with ERR_CLOSED, and nothing is taken after */
    bool d1 = false;
    int closed_rc = 0;
    CHECK_INT(store_pool_submit(pool, mb, slow_job, slow_done_cb, &d1), 0);
    struct lookup late = {.id = user_id, .ndone = &closed_rc};
    CHECK_INT(store_pool_submit(pool, mb, lookup_job, lookup_done_cb, &late), 0);
    usleep(50 * 1000); /* the slow job is running, the lookup queued */
    store_pool_free(pool);
    while (!late.done || !d1)
        uv_run(&loop, UV_RUN_ONCE);
    CHECK_INT(late.rc, ERR_CLOSED);
    mailbox_close(mb);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_INT(uv_loop_close(&loop), 0);
}

/* The caller the request path uses: inline (no pool: SQLite) completes before store_call
   returns, on the calling thread; through a pool it completes later, back on the loop. And a
   posted job (store_pool_post) runs with nobody waiting for it. */
static int posted_job(struct store *st, void *arg)
{
    struct lookup *l = arg;
    l->rc = store_user_get(st, l->id, &l->u);
    __atomic_store_n(&l->done, true, __ATOMIC_RELEASE);
    return l->rc;
}

static int inline_job(struct store *st, void *arg)
{
    struct lookup *l = arg;
    CHECK(pthread_equal(pthread_self(), loop_thread));
    return store_user_get(st, l->id, &l->u);
}

static void test_caller(void)
{
    uv_loop_t loop;
    CHECK_INT(uv_loop_init(&loop), 0);
    struct mailbox *mb = mailbox_new(&loop);
    struct store_pool *pool = NULL;
    struct store_caller *inl = NULL, *pooled = NULL;
    struct err_info ei = {0};
    CHECK_INT(store_pool_new(where, 2, &pool, &ei), 0);
    CHECK_INT(store_caller_new(where, NULL, mb, &inl, &ei), 0);
    CHECK_INT(store_caller_new(where, pool, mb, &pooled, &ei), 0);
    CHECK(store_location_remote("postgresql:///x") && store_location_remote("postgres://h/x"));
    CHECK(!store_location_remote("/var/lib/gatehouse.db") && !store_location_remote(NULL));

    int ndone = 0;
    struct lookup a = {.id = user_id, .ndone = &ndone}, b = {.id = user_id, .ndone = &ndone};
    /* inline: the job and its completion run on this thread, before store_call returns */
    CHECK_INT(store_call(inl, inline_job, lookup_done_cb, &a), 0);
    CHECK(a.done && a.rc == 0 && a.u.id == user_id);
    CHECK_INT(store_call(pooled, lookup_job, lookup_done_cb, &b), 0);
    CHECK(!b.done); /* later, through the mailbox */
    while (!b.done)
        uv_run(&loop, UV_RUN_ONCE);
    CHECK(b.rc == 0 && b.u.id == user_id);

    struct lookup c = {.id = user_id};
    CHECK_INT(store_pool_post(pool, posted_job, &c), 0);
    for (int i = 0; i < 500 && !__atomic_load_n(&c.done, __ATOMIC_ACQUIRE); i++)
        usleep(10 * 1000);
    CHECK(__atomic_load_n(&c.done, __ATOMIC_ACQUIRE) && c.rc == 0);

    store_caller_free(inl);
    store_caller_free(pooled);
    store_pool_free(pool);
    mailbox_close(mb);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_INT(uv_loop_close(&loop), 0);
}

TEST_MAIN(TEST(test_setup), TEST(test_results_on_the_loop), TEST(test_loop_not_blocked),
          TEST(test_caller))
