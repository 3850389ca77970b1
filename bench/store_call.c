/*
 * What one store call costs on each backend (src/store): the calls a request makes most — the
 * revocation counter (every authenticated request), an access token's revocation check, a
 * user's settings of a server (every tools/list), a user by id — and one write (a token
 * revoked); and the settings read once more through a store pool (src/store/pool.c: the call
 * runs on a pool thread, its result is posted back to the calling loop), one call at a time; and
 * what the request path adds to each request to /mcp (one store_call of its store job: inline on
 * SQLite, through a pool on PostgreSQL, as the gateway does), for a credential whose verdict is
 * cached (the revocation sequence) and for one that is not (the sequence, the user, the client,
 * the jti and the user's settings; the signature check is not the store's). SQLite
 * runs on a file in a temporary directory; PostgreSQL on the server named by GH_TEST_PG_HOST /
 * GH_TEST_PG_PORT (the throwaway cluster of tests/unit/store/with-postgres.sh), over its Unix
 * socket, when those are set. Prints µs per call and the PostgreSQL/SQLite ratio. build/store_call
 * [calls]                                    (SQLite only; default 20000)
 *   tests/unit/store/with-postgres.sh build/store_call [calls]  (both, and the ratio)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/mailbox.h"
#include "core/rand.h"
#include "store/store.h"

enum { OP_SEQ, OP_JTI, OP_SETTINGS, OP_USER, OP_REVOKE, OP_POOL, OP_PATH_HIT, OP_PATH_MISS, NOPS };
static const char *const op_names[NOPS] = {
    "store_revocation_seq", "store_jti_revoked",        "store_settings_get",
    "store_user_get",       "store_jti_revoke (write)", "store_settings_get, pool",
    "request path, cached", "request path, token miss",
};

static void die(const char *what, int rc, const char *msg)
{
    fprintf(stderr, "store_call: %s failed: %s %s\n", what, err_str(rc), msg ? msg : "");
    exit(1);
}

/* ---- the same read through a store pool: submitted from a loop, the result posted back ---- */

struct pool_call {
    int64_t user_id;
    bool done;
    int rc;
};

static int settings_job(struct store *st, void *arg)
{
    struct pool_call *c = arg;
    struct store_settings got;
    int rc = store_settings_get(st, c->user_id, "github", &got);
    if (rc == 0)
        store_settings_release(&got);
    return rc;
}

static void settings_done_cb(int rc, void *arg)
{
    struct pool_call *c = arg;
    c->rc = rc;
    c->done = true;
}

/* ---- what the request path adds (src/http/server.c, store_wait): one store_call per request,
   inline on SQLite, through a pool on PostgreSQL, as the gateway chooses ---- */

/* A cached verdict: the job reads the revocation sequence. A token not cached: the sequence,
   the checks of check_claims (user, client, jti) and the user's settings (mcp_settings_load). */
static int path_job(struct store *st, void *arg)
{
    struct pool_call *c = arg;
    uint64_t seq;
    int rc = store_revocation_seq(st, &seq);
    if (rc != 0 || c->rc == 0) /* c->rc: 0 cached, 1 a miss (set by the caller) */
        return rc;
    struct store_user u;
    struct store_client cl;
    bool revoked;
    if ((rc = store_user_get(st, c->user_id, &u)) != 0)
        return rc;
    if (store_client_get(st, "bench-client", &cl) == 0)
        store_client_release(&cl);
    if ((rc = store_jti_revoked(st, "bench-jti", &revoked)) != 0)
        return rc;
    struct store_settings got;
    rc = store_settings_get(st, c->user_id, "github", &got);
    if (rc == 0)
        store_settings_release(&got);
    return rc;
}

static void path_done_cb(int rc, void *arg)
{
    struct pool_call *c = arg;
    c->rc = rc;
    c->done = true;
}

static double path_us(const char *where, int64_t user_id, size_t calls, bool miss)
{
    uv_loop_t loop;
    struct store_pool *pool = NULL;
    struct store_caller *caller = NULL;
    struct err_info ei = {0};
    int rc;
    if (uv_loop_init(&loop) != 0)
        die("uv_loop_init", ERR_NOMEM, NULL);
    struct mailbox *mb = mailbox_new(&loop);
    if (mb == NULL ||
        (store_location_remote(where) && (rc = store_pool_new(where, 4, &pool, &ei)) != 0) ||
        (rc = store_caller_new(where, pool, mb, &caller, &ei)) != 0)
        die("store_caller_new", ERR_NOMEM, ei.msg);
    uint64_t t0 = clock_now_ns();
    for (size_t i = 0; i < calls; i++) {
        struct pool_call c = {.user_id = user_id, .rc = miss};
        if ((rc = store_call(caller, path_job, path_done_cb, &c)) != 0)
            die("store_call", rc, NULL);
        while (!c.done)
            uv_run(&loop, UV_RUN_ONCE);
        if (c.rc)
            die("the request path's job", c.rc, NULL);
    }
    double us = (double)(clock_now_ns() - t0) / 1e3 / (double)calls;
    store_caller_free(caller);
    store_pool_free(pool);
    mailbox_close(mb);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return us;
}

/* µs per call, one call at a time (the latency a request sees, not the throughput). */
static double pool_us(const char *where, int64_t user_id, size_t calls)
{
    uv_loop_t loop;
    struct store_pool *pool = NULL;
    struct err_info ei = {0};
    int rc;
    if (uv_loop_init(&loop) != 0)
        die("uv_loop_init", ERR_NOMEM, NULL);
    struct mailbox *mb = mailbox_new(&loop);
    if (mb == NULL || (rc = store_pool_new(where, 1, &pool, &ei)) != 0)
        die("store_pool_new", ERR_NOMEM, ei.msg);
    uint64_t t0 = clock_now_ns();
    for (size_t i = 0; i < calls; i++) {
        struct pool_call c = {.user_id = user_id};
        if ((rc = store_pool_submit(pool, mb, settings_job, settings_done_cb, &c)) != 0)
            die("store_pool_submit", rc, NULL);
        while (!c.done)
            uv_run(&loop, UV_RUN_ONCE);
        if (c.rc)
            die("store_settings_get (pool)", c.rc, NULL);
    }
    double us = (double)(clock_now_ns() - t0) / 1e3 / (double)calls;
    store_pool_free(pool);
    mailbox_close(mb);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return us;
}

/* µs per call of each operation on the store at `where`. */
static void measure(const char *where, size_t calls, double us[NOPS])
{
    struct store *st = NULL;
    struct err_info ei = {0};
    int rc = store_open(where, &st, &ei);
    if (rc)
        die("store_open", rc, ei.msg);
    struct store_user u;
    char name[64];
    snprintf(name, sizeof(name), "bench-%d", (int)getpid());
    if ((rc = store_user_add(st, name, NULL, NULL, false, &u, &ei)) != 0)
        die("store_user_add", rc, ei.msg);
    struct store_settings set = {.tools = json_pack("[s,s]", "issues_create", "repos_get")};
    snprintf(set.discovery, sizeof(set.discovery), "search");
    if ((rc = store_settings_put(st, u.id, "github", &set, &ei)) != 0)
        die("store_settings_put", rc, ei.msg);
    json_decref(set.tools);
    for (int i = 0; i < 1000; i++) { /* some revoked tokens to look among */
        char jti[96];
        snprintf(jti, sizeof(jti), "%s-old-%d", name, i);
        if ((rc = store_jti_revoke(st, jti, (int64_t)time(NULL) + 3600)) != 0)
            die("store_jti_revoke", rc, NULL);
    }
    for (int op = 0; op < OP_POOL; op++) {
        size_t n = op == OP_REVOKE ? calls / 4 : calls;
        uint64_t t0 = clock_now_ns();
        for (size_t i = 0; i < n; i++) {
            char jti[96];
            uint64_t seq;
            bool revoked;
            struct store_settings got;
            struct store_user v;
            switch (op) {
            case OP_SEQ:
                rc = store_revocation_seq(st, &seq);
                break;
            case OP_JTI:
                snprintf(jti, sizeof(jti), "%s-old-%zu", name, i % 2000); /* half are revoked */
                rc = store_jti_revoked(st, jti, &revoked);
                break;
            case OP_SETTINGS:
                rc = store_settings_get(st, u.id, "github", &got);
                if (rc == 0)
                    store_settings_release(&got);
                break;
            case OP_USER:
                rc = store_user_get(st, u.id, &v);
                break;
            default:
                snprintf(jti, sizeof(jti), "%s-new-%zu", name, i);
                rc = store_jti_revoke(st, jti, (int64_t)time(NULL) + 3600);
                break;
            }
            if (rc)
                die(op_names[op], rc, NULL);
        }
        us[op] = (double)(clock_now_ns() - t0) / 1e3 / (double)n;
    }
    store_close(st);
    us[OP_POOL] = pool_us(where, u.id, calls);
    us[OP_PATH_HIT] = path_us(where, u.id, calls, false);
    us[OP_PATH_MISS] = path_us(where, u.id, calls / 4, true);
}

int main(int argc, char **argv)
{
    size_t calls = argc > 1 ? (size_t)strtoul(argv[1], NULL, 10) : 20000;
    if (calls < 4 || core_init() != 0)
        return 2;
    char dir[] = "/tmp/gh-store-bench-XXXXXX", path[64], cmd[96];
    if (mkdtemp(dir) == NULL)
        return 2;
    snprintf(path, sizeof(path), "%s/store.sqlite", dir);
    double sq[NOPS], pg[NOPS];
    measure(path, calls, sq);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "store_call: could not remove %s\n", dir);
    const char *host = getenv("GH_TEST_PG_HOST"), *port = getenv("GH_TEST_PG_PORT");
    bool have_pg = host && port;
    if (have_pg) {
        char where[512];
        snprintf(where, sizeof(where), "postgresql:///gh_store?host=%s&port=%s&user=postgres", host,
                 port);
        measure(where, calls, pg);
    }
    printf("%-26s %12s %14s %8s\n", "call", "sqlite µs", "postgres µs", "ratio");
    for (int op = 0; op < NOPS; op++) {
        if (have_pg)
            printf("%-26s %12.2f %14.2f %7.1fx\n", op_names[op], sq[op], pg[op], pg[op] / sq[op]);
        else
            printf("%-26s %12.2f %14s %8s\n", op_names[op], sq[op], "-", "-");
    }
    return 0;
}
