/*
 * store: every function of store.h against a real SQLite file in a temporary directory, and the
 * properties the rest of Gatehouse relies on: single-use codes, refresh rotation with reuse
 * detection (also when two threads race), revocation seen by a second connection, and rows that
 * survive kill -9.
 *
 * With GH_TEST_STORE=postgres the same tests run against a real PostgreSQL server: the throwaway
 * cluster that tests/unit/store/with-postgres.sh starts (GH_TEST_PG_HOST, GH_TEST_PG_PORT), plus
 * the errors of a wrong connection string or password, which never show the password.
 */
#include "auth/auth.h"
#include "core/rand.h"
#include "core/secret.h"
#include "store/store-int.h"
#include "test.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char dir[64];
static char path[512];
static bool postgres; /* GH_TEST_STORE=postgres */

/* The connection string of database `db` of the test cluster. */
static void pg_location(char *out, size_t size, const char *db)
{
    snprintf(out, size, "postgresql:///%s?host=%s&port=%s&user=postgres", db,
             getenv("GH_TEST_PG_HOST"), getenv("GH_TEST_PG_PORT"));
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

/* The first column of the first row of sql, read without the store (which would migrate). */
static int64_t raw_count(const char *where, const char *sql)
{
    int64_t n = -1;
    if (postgres) {
        PGconn *pg = PQconnectdb(where);
        PGresult *r = PQexec(pg, sql);
        if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
            n = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        PQclear(r);
        PQfinish(pg);
    } else {
        sqlite3 *db = NULL;
        sqlite3_stmt *s = NULL;
        if (sqlite3_open(where, &db) == SQLITE_OK &&
            sqlite3_prepare_v2(db, sql, -1, &s, NULL) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
            n = sqlite3_column_int64(s, 0);
        sqlite3_finalize(s);
        sqlite3_close(db);
    }
    return n;
}

static uint64_t seq_of(struct store *st)
{
    uint64_t seq = 0;
    CHECK_INT(store_revocation_seq(st, &seq), 0);
    return seq;
}

/* The temporary directory goes when the process ends (not a test: nothing is checked there). */
static void remove_dir(void)
{
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

/* PostgreSQL: open, reopen, a newer schema refused, and connection errors that name the backend
   and the cause but never the password. */
static void test_open_postgres(void)
{
    const char *test_store = getenv("GH_TEST_STORE");
    CHECK(getenv("GH_TEST_PG_HOST") != NULL && getenv("GH_TEST_PG_PORT") != NULL);
    if (getenv("GH_TEST_PG_HOST") == NULL || getenv("GH_TEST_PG_PORT") == NULL) {
        fprintf(stderr, "GH_TEST_STORE=%s needs the cluster of with-postgres.sh\n", test_store);
        exit(1);
    }
    pg_location(path, sizeof(path), "gh_store");
    struct store *st = open_store();
    CHECK_STR(store_backend_name(st), "postgres");
    store_close(st);
    st = open_store(); /* reopening migrates nothing */
    store_close(st);

    struct store *bad;
    struct err_info ei = {0};
    char newer[512];
    pg_location(newer, sizeof(newer), "gh_newer");
    CHECK_INT(store_open(newer, &bad, &ei), 0);
    CHECK_INT(store_exec_sql(bad, "UPDATE schema_version SET version = 999"), 0);
    store_close(bad);
    CHECK_INT(store_open(newer, &bad, &ei), ERR_PROTOCOL);
    CHECK_CONTAINS(ei.msg, "schema version 999 is newer");

    /* credentials: the right password opens (and migrates, as a role that is no superuser) */
    const char *role = getenv("GH_TEST_PG_PASSWORD_ROLE"), *pw = getenv("GH_TEST_PG_PASSWORD");
    CHECK(role != NULL && pw != NULL);
    char loc[512];
    snprintf(loc, sizeof(loc), "postgresql://%s:%s@127.0.0.1:%s/gh_full", role, pw,
             getenv("GH_TEST_PG_PORT"));
    CHECK_INT(store_open(loc, &bad, &ei), 0);
    store_close(bad);
    /* a wrong one: the backend and the cause, never the password */
    snprintf(loc, sizeof(loc), "postgresql://%s:Wrong-Pw-7Q2@127.0.0.1:%s/gh_full", role,
             getenv("GH_TEST_PG_PORT"));
    memset(&ei, 0, sizeof(ei));
    CHECK_INT(store_open(loc, &bad, &ei), ERR_IO);
    CHECK_CONTAINS(ei.msg, "postgres store postgresql://gh_pw@127.0.0.1:");
    CHECK_CONTAINS(ei.msg, "password authentication failed");
    CHECK(strstr(ei.msg, "Wrong-Pw-7Q2") == NULL);
    /* as a password= parameter, and in a string libpq cannot parse */
    snprintf(loc, sizeof(loc), "postgresql://127.0.0.1:%s/gh_full?user=%s&password=Wrong-Pw-7Q2",
             getenv("GH_TEST_PG_PORT"), role);
    memset(&ei, 0, sizeof(ei));
    CHECK_INT(store_open(loc, &bad, &ei), ERR_IO);
    CHECK_CONTAINS(ei.msg, "password authentication failed");
    CHECK(strstr(ei.msg, "Wrong-Pw-7Q2") == NULL);
    memset(&ei, 0, sizeof(ei));
    CHECK_INT(store_open("postgresql://gh:Wrong-Pw-7Q2@127.0.0.1:Wrong-Pw-7Q2/x", &bad, &ei),
              ERR_IO);
    CHECK_CONTAINS(ei.msg, "postgres store");
    CHECK_CONTAINS(ei.msg, "port");
    CHECK(strstr(ei.msg, "Wrong-Pw-7Q2") == NULL);
    /* nobody listening */
    memset(&ei, 0, sizeof(ei));
    CHECK_INT(store_open("postgresql://gh:Wrong-Pw-7Q2@127.0.0.1:1/x?connect_timeout=2", &bad, &ei),
              ERR_IO);
    CHECK_CONTAINS(ei.msg, "cannot connect");
    CHECK(strstr(ei.msg, "Wrong-Pw-7Q2") == NULL);
}

static void test_open(void)
{
    CHECK_INT(core_init(), 0);
    snprintf(dir, sizeof(dir), "/tmp/gh-store-XXXXXX");
    CHECK(mkdtemp(dir) != NULL);
    atexit(remove_dir);
    const char *test_store = getenv("GH_TEST_STORE");
    if (test_store != NULL && strcmp(test_store, "postgres") == 0) {
        postgres = true;
        test_open_postgres();
        return;
    }
    snprintf(path, sizeof(path), "%s/store.sqlite", dir);
    struct store *st = open_store();
    struct stat sb;
    CHECK_INT(stat(path, &sb), 0);
    CHECK_INT(sb.st_mode & 0777, 0600);
    store_close(st);
    st = open_store(); /* reopening an existing store migrates nothing */
    store_close(st);

    struct store *bad;
    struct err_info ei = {0};
    CHECK_INT(store_open("/nonexistent-dir/x.sqlite", &bad, &ei), ERR_IO);
    CHECK_CONTAINS(ei.msg, "/nonexistent-dir/x.sqlite");

    /* a schema newer than this binary is refused, by name */
    char newer[160];
    snprintf(newer, sizeof(newer), "%s/newer.sqlite", dir);
    CHECK_INT(store_open(newer, &bad, &ei), 0);
    CHECK_INT(store_exec_sql(bad, "UPDATE schema_version SET version = 999"), 0);
    store_close(bad);
    CHECK_INT(store_open(newer, &bad, &ei), ERR_PROTOCOL);
    CHECK_CONTAINS(ei.msg, "schema version 999 is newer");
}

static void test_users(void)
{
    struct store *st = open_store();
    struct store_user u, v;
    struct err_info ei = {0};
    CHECK_INT(store_user_add(st, "alice", "alice@example.com", "pw-alice-1", true, &u, &ei), 0);
    CHECK(u.id > 0);
    CHECK_STR(u.name, "alice");
    CHECK_STR(u.email, "alice@example.com");
    CHECK(u.admin && !u.disabled && u.created_at > 0);
    CHECK_INT(store_user_add(st, "alice", NULL, NULL, false, NULL, &ei), ERR_EXISTS);
    CHECK_STR(ei.msg, "user \"alice\" exists already");
    CHECK_INT(store_user_add(st, "bad name", NULL, NULL, false, NULL, &ei), ERR_INVAL);
    CHECK_CONTAINS(ei.msg, "user name \"bad name\"");
    CHECK_INT(store_user_add(st, "", NULL, NULL, false, NULL, &ei), ERR_INVAL);
    CHECK_INT(store_user_add(st, "bob", NULL, NULL, false, &v, &ei), 0); /* SSO only */

    CHECK_INT(store_user_get(st, u.id, &v), 0);
    CHECK_STR(v.name, "alice");
    CHECK_INT(store_user_get(st, 9999, &v), ERR_NOTFOUND);
    CHECK_INT(store_user_find(st, "bob", &v), 0);
    CHECK_STR(v.email, "");
    CHECK_INT(store_user_find(st, "carol", &v), ERR_NOTFOUND);
    CHECK_INT(store_user_find(st, "no such/name", &v), ERR_NOTFOUND);

    CHECK_INT(store_user_check_password(st, "alice", "pw-alice-1", &v), 0);
    CHECK_INT(v.id, u.id);
    CHECK_INT(store_user_check_password(st, "alice", "pw-alice-2", &v), ERR_DENIED);
    CHECK_INT(store_user_check_password(st, "bob", "", &v), ERR_DENIED);     /* no password */
    CHECK_INT(store_user_check_password(st, "nobody", "x", &v), ERR_DENIED); /* unknown */

    CHECK_INT(store_user_set_password(st, u.id, "pw-alice-2"), 0);
    CHECK_INT(store_user_check_password(st, "alice", "pw-alice-2", &v), 0);
    CHECK_INT(store_user_check_password(st, "alice", "pw-alice-1", &v), ERR_DENIED);
    CHECK_INT(store_user_set_password(st, 9999, "x"), ERR_NOTFOUND);

    uint64_t s0 = seq_of(st);
    CHECK_INT(store_user_set_disabled(st, u.id, true), 0);
    CHECK(seq_of(st) > s0);
    CHECK_INT(store_user_check_password(st, "alice", "pw-alice-2", &v), ERR_DENIED);
    CHECK_INT(store_user_set_disabled(st, u.id, false), 0);
    CHECK_INT(store_user_check_password(st, "alice", "pw-alice-2", &v), 0);
    CHECK_INT(store_user_set_disabled(st, 9999, true), ERR_NOTFOUND);

    /* the password is stored as argon2id only */
    struct store_stmt *s = store_stmt(st, "SELECT password_hash FROM users WHERE name = 'alice'");
    CHECK(s != NULL);
    CHECK_INT(store_step(st, s), STORE_ROW);
    CHECK(strncmp(store_col_str(s, 0), "$argon2id$", 10) == 0);
    store_done(s);
    store_close(st);
}

static int collect_user_cb(const struct store_user *u, void *arg)
{
    char *buf = arg;
    strcat(buf, u->name);
    strcat(buf, ",");
    return strcmp(u->name, "stop") == 0 ? 7 : 0;
}

static void test_user_list_identities(void)
{
    struct store *st = open_store();
    char names[256] = "";
    CHECK_INT(store_user_list(st, collect_user_cb, names), 0);
    CHECK_STR(names, "alice,bob,");
    struct store_user u, v;
    CHECK_INT(store_user_add(st, "stop", NULL, NULL, false, &u, NULL), 0);
    CHECK_INT(store_user_add(st, "zed", NULL, NULL, false, NULL, NULL), 0);
    names[0] = '\0';
    CHECK_INT(store_user_list(st, collect_user_cb, names), 7); /* stops early, returns cb's value */
    CHECK_STR(names, "alice,bob,stop,");

    CHECK_INT(store_identity_find(st, "corp", "sub-1", &v), ERR_NOTFOUND);
    CHECK_INT(store_identity_link(st, u.id, "corp", "sub-1"), 0);
    CHECK_INT(store_identity_link(st, u.id, "corp", "sub-1"), 0); /* again: same user */
    CHECK_INT(store_identity_find(st, "corp", "sub-1", &v), 0);
    CHECK_STR(v.name, "stop");
    CHECK_INT(store_identity_find(st, "other", "sub-1", &v), ERR_NOTFOUND);
    struct store_user bob;
    CHECK_INT(store_user_find(st, "bob", &bob), 0);
    CHECK_INT(store_identity_link(st, bob.id, "corp", "sub-1"), ERR_EXISTS); /* taken */
    CHECK_INT(store_identity_link(st, 9999, "corp", "sub-2"), ERR_NOTFOUND);
    store_close(st);
}

static int collect_team_cb(const char *team, size_t members, void *arg)
{
    char *buf = arg;
    char one[160];
    snprintf(one, sizeof(one), "%s:%zu,", team, members);
    strcat(buf, one);
    return 0;
}

static int collect_role_cb(const char *team, enum store_role role, void *arg)
{
    char *buf = arg;
    strcat(buf, team);
    strcat(buf, role == STORE_ROLE_ADMIN ? "(admin)," : ",");
    return 0;
}

static void test_teams(void)
{
    struct store *st = open_store();
    struct store_user alice, bob;
    struct err_info ei = {0};
    CHECK_INT(store_user_find(st, "alice", &alice), 0);
    CHECK_INT(store_user_find(st, "bob", &bob), 0);
    CHECK_INT(store_team_add(st, "eng", &ei), 0);
    CHECK_INT(store_team_add(st, "eng", &ei), ERR_EXISTS);
    CHECK_STR(ei.msg, "team \"eng\" exists already");
    CHECK_INT(store_team_add(st, "a b", &ei), ERR_INVAL);
    CHECK_INT(store_team_add_member(st, "eng", alice.id, STORE_ROLE_ADMIN, &ei), 0);
    CHECK_INT(store_team_add_member(st, "eng", bob.id, STORE_ROLE_ADMIN, &ei), 0);
    CHECK_INT(store_team_add_member(st, "eng", bob.id, STORE_ROLE_MEMBER, &ei), 0); /* role */
    CHECK_INT(store_team_add_member(st, "nope", bob.id, STORE_ROLE_MEMBER, &ei), ERR_NOTFOUND);
    CHECK_STR(ei.msg, "no team named \"nope\"");
    CHECK_INT(store_team_add_member(st, "eng", 9999, STORE_ROLE_MEMBER, &ei), ERR_NOTFOUND);

    char buf[512] = "";
    CHECK_INT(store_team_list(st, collect_team_cb, buf), 0);
    CHECK_STR(buf, "eng:2,");
    buf[0] = '\0';
    CHECK_INT(store_user_teams(st, alice.id, collect_role_cb, buf), 0);
    CHECK_STR(buf, "eng(admin),");

    CHECK_INT(store_team_remove_member(st, "eng", bob.id), 0);
    CHECK_INT(store_team_remove_member(st, "eng", bob.id), ERR_NOTFOUND);
    CHECK_INT(store_team_remove_member(st, "nope", bob.id), ERR_NOTFOUND);

    /* SSO sync: joins the groups (creating them), leaves only sync-managed teams */
    CHECK_INT(store_team_add_member(st, "eng", bob.id, STORE_ROLE_MEMBER, &ei), 0);
    const char *g1[] = {"sre", "ops", "Not A Team"};
    CHECK_INT(store_team_sync(st, bob.id, g1, 3), 0);
    buf[0] = '\0';
    CHECK_INT(store_user_teams(st, bob.id, collect_role_cb, buf), 0);
    CHECK_STR(buf, "eng,ops,sre,");
    const char *g2[] = {"ops"};
    CHECK_INT(store_team_sync(st, bob.id, g2, 1), 0);
    buf[0] = '\0';
    CHECK_INT(store_user_teams(st, bob.id, collect_role_cb, buf), 0);
    CHECK_STR(buf, "eng,ops,"); /* left sre (synced), kept eng (made by hand) */
    CHECK_INT(store_team_sync(st, bob.id, NULL, 0), 0);
    buf[0] = '\0';
    CHECK_INT(store_user_teams(st, bob.id, collect_role_cb, buf), 0);
    CHECK_STR(buf, "eng,");
    buf[0] = '\0';
    CHECK_INT(store_team_list(st, collect_team_cb, buf), 0);
    CHECK_STR(buf, "eng:2,ops:0,sre:0,");
    store_close(st);
}

static void test_accounts_apikeys(void)
{
    struct store *st = open_store();
    struct store_account a, b;
    struct err_info ei = {0};
    CHECK_INT(store_account_add(st, "ci-bot", &a, &ei), 0);
    CHECK(a.id > 0 && !a.disabled);
    CHECK_INT(store_account_add(st, "ci-bot", NULL, &ei), ERR_EXISTS);
    CHECK_STR(ei.msg, "account \"ci-bot\" exists already");
    CHECK_INT(store_account_add(st, "ci bot", NULL, &ei), ERR_INVAL);
    CHECK_INT(store_account_find(st, "ci-bot", &b), 0);
    CHECK_INT(b.id, a.id);
    CHECK_INT(store_account_find(st, "nobody", &b), ERR_NOTFOUND);

    char key[STORE_APIKEY_SIZE], id[32], id2[32];
    CHECK_INT(store_apikey_create(st, a.id, "deploys", key, id), 0);
    CHECK(strncmp(key, "ghk_", 4) == 0);
    CHECK(strncmp(key + 4, id, strlen(id)) == 0);
    CHECK_INT(store_apikey_create(st, 9999, NULL, key + 0, id2), ERR_NOTFOUND);
    CHECK_INT(store_apikey_create(st, a.id, NULL, key, id), 0);
    CHECK_INT(store_apikey_check(st, key, strlen(key), &b, id2), 0);
    CHECK_STR(b.name, "ci-bot");
    CHECK_STR(id2, id);
    char wrong[STORE_APIKEY_SIZE];
    snprintf(wrong, sizeof(wrong), "%s", key);
    wrong[strlen(wrong) - 1] ^= 1;
    CHECK_INT(store_apikey_check(st, wrong, strlen(wrong), &b, id2), ERR_DENIED);
    CHECK_INT(store_apikey_check(st, "ghk_nothex_x", 12, &b, id2), ERR_DENIED);
    CHECK_INT(store_apikey_check(st, "garbage", 7, &b, id2), ERR_DENIED);
    CHECK_INT(store_apikey_check(st, key, 20, &b, id2), ERR_DENIED); /* truncated */

    uint64_t s0 = seq_of(st);
    CHECK_INT(store_apikey_revoke(st, id), 0);
    CHECK(seq_of(st) > s0);
    CHECK_INT(store_apikey_check(st, key, strlen(key), &b, id2), ERR_DENIED);
    CHECK_INT(store_apikey_revoke(st, "0000000000000000"), ERR_NOTFOUND);
    store_close(st);
}

static int count_client_cb(const struct store_client *c, void *arg)
{
    (*(int *)arg)++;
    return 0;
}

static void test_clients(void)
{
    struct store *st = open_store();
    struct store_user alice;
    CHECK_INT(store_user_find(st, "alice", &alice), 0);
    struct store_client c = {.kind = STORE_CLIENT_USER, .user_id = alice.id, .confidential = true};
    snprintf(c.client_id, sizeof(c.client_id), "ghc_alice1");
    c.metadata =
        json_pack("{s:s, s:[s]}", "client_name", "alice's", "redirect_uris", "https://app/cb");
    CHECK_INT(store_client_put(st, &c, "client-secret-1"), 0);
    json_decref(c.metadata);

    struct store_client pub = {.kind = STORE_CLIENT_DCR};
    snprintf(pub.client_id, sizeof(pub.client_id), "dcr-1");
    CHECK_INT(store_client_put(st, &pub, NULL), 0); /* NULL metadata is {} */

    struct store_client got;
    CHECK_INT(store_client_get(st, "ghc_alice1", &got), 0);
    CHECK(got.kind == STORE_CLIENT_USER && got.confidential && !got.revoked);
    CHECK_INT(got.user_id, alice.id);
    CHECK_STR(json_string_value(json_object_get(got.metadata, "client_name")), "alice's");
    store_client_release(&got);
    CHECK_INT(store_client_get(st, "dcr-1", &got), 0);
    CHECK(!got.confidential && got.user_id == 0 && json_is_object(got.metadata));
    store_client_release(&got);
    CHECK_INT(store_client_get(st, "nope", &got), ERR_NOTFOUND);

    CHECK_INT(store_client_check_secret(st, "ghc_alice1", "client-secret-1", 15), 0);
    CHECK_INT(store_client_check_secret(st, "ghc_alice1", "client-secret-2", 15), ERR_DENIED);
    CHECK_INT(store_client_check_secret(st, "dcr-1", "", 0), ERR_DENIED); /* public */
    CHECK_INT(store_client_check_secret(st, "nope", "x", 1), ERR_DENIED);

    int n = 0;
    CHECK_INT(store_client_list(st, 0, count_client_cb, &n), 0);
    CHECK_INT(n, 2);
    n = 0;
    CHECK_INT(store_client_list(st, alice.id, count_client_cb, &n), 0);
    CHECK_INT(n, 1);

    /* a revoked client: its secret no longer works, its families die with it */
    struct store_family f = {.user_id = alice.id, .expires_at = store_now() + 3600};
    snprintf(f.client_id, sizeof(f.client_id), "ghc_alice1");
    CHECK_INT(store_family_new(st, &f), 0);
    CHECK_INT(store_refresh_put(st, f.id, "rt-client-1", store_now() + 3600), 0);
    uint64_t s0 = seq_of(st);
    CHECK_INT(store_client_revoke(st, "ghc_alice1"), 0);
    CHECK(seq_of(st) > s0);
    CHECK_INT(store_client_check_secret(st, "ghc_alice1", "client-secret-1", 15), ERR_DENIED);
    struct store_family g;
    CHECK_INT(store_refresh_use(st, "rt-client-1", &g), ERR_DENIED);
    CHECK_INT(store_client_revoke(st, "nope"), ERR_NOTFOUND);

    /* put replaces (CIMD refresh): the secret goes when the new one is public */
    c.metadata = NULL;
    snprintf(c.client_id, sizeof(c.client_id), "https://app.example/client.json");
    c.kind = STORE_CLIENT_CIMD;
    c.user_id = 0;
    c.expires_at = store_now() + 600;
    CHECK_INT(store_client_put(st, &c, "s"), 0);
    CHECK_INT(store_client_put(st, &c, NULL), 0);
    CHECK_INT(store_client_get(st, c.client_id, &got), 0);
    CHECK(!got.confidential && got.kind == STORE_CLIENT_CIMD && got.expires_at == c.expires_at);
    store_client_release(&got);
    store_close(st);
}

static void test_codes(void)
{
    struct store *st = open_store();
    struct store_code c = {.user_id = 1, .expires_at = store_now() + 60}, out;
    snprintf(c.client_id, sizeof(c.client_id), "dcr-1");
    snprintf(c.redirect_uri, sizeof(c.redirect_uri), "https://app/cb");
    snprintf(c.code_challenge, sizeof(c.code_challenge),
             "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
    snprintf(c.resource, sizeof(c.resource), "https://gw/mcp");
    snprintf(c.scope, sizeof(c.scope), "mcp");
    char h[TOKEN_HASH_SIZE];
    token_hash("the-code", 8, h);
    CHECK_INT(store_code_put(st, h, &c), 0);
    CHECK_INT(store_code_put(st, h, &c), ERR_EXISTS);
    CHECK_INT(store_code_take(st, h, &out), 0);
    CHECK_STR(out.redirect_uri, "https://app/cb");
    CHECK_STR(out.resource, "https://gw/mcp");
    CHECK_STR(out.family_id, "");
    CHECK_INT(store_code_set_family(st, h, "fam-x"), 0);
    memset(&out, 0, sizeof(out));
    CHECK_INT(store_code_take(st, h, &out), ERR_EXISTS); /* reuse, reported with the family */
    CHECK_STR(out.family_id, "fam-x");
    CHECK_INT(store_code_take(st, "unknown", &out), ERR_NOTFOUND);
    CHECK_INT(store_code_set_family(st, "unknown", "f"), ERR_NOTFOUND);

    c.expires_at = store_now() - 1; /* expired */
    token_hash("old-code", 8, h);
    CHECK_INT(store_code_put(st, h, &c), 0);
    CHECK_INT(store_code_take(st, h, &out), ERR_NOTFOUND);
    store_close(st);
}

static void test_refresh(void)
{
    struct store *st = open_store();
    struct store_family f = {.user_id = 2, .expires_at = store_now() + 3600}, g;
    snprintf(f.client_id, sizeof(f.client_id), "dcr-1");
    snprintf(f.resource, sizeof(f.resource), "https://gw/mcp");
    snprintf(f.scope, sizeof(f.scope), "mcp");
    CHECK_INT(store_family_new(st, &f), 0);
    CHECK_INT(strlen(f.id), 24);
    CHECK(f.created_at > 0);
    CHECK_INT(store_refresh_put(st, f.id, "rt1", store_now() + 3600), 0);
    CHECK_INT(store_refresh_put(st, "no-family", "rtx", store_now() + 3600), ERR_NOTFOUND);

    /* rotation: rt1 → rt2 → rt3 */
    CHECK_INT(store_refresh_use(st, "rt1", &g), 0);
    CHECK_STR(g.id, f.id);
    CHECK_STR(g.resource, "https://gw/mcp");
    CHECK_INT(store_refresh_put(st, f.id, "rt2", store_now() + 3600), 0);
    CHECK_INT(store_refresh_use(st, "rt2", &g), 0);
    CHECK_INT(store_refresh_put(st, f.id, "rt3", store_now() + 3600), 0);
    /* putting rt4 makes rt3 dead too: one live token per family */
    CHECK_INT(store_refresh_put(st, f.id, "rt4", store_now() + 3600), 0);

    /* replaying rt1 revokes the family, rt4 included */
    memset(&g, 0, sizeof(g));
    CHECK_INT(store_refresh_use(st, "rt1", &g), ERR_EXISTS);
    CHECK_STR(g.id, f.id);
    CHECK(g.revoked);
    CHECK_INT(store_refresh_use(st, "rt4", &g), ERR_DENIED); /* unused, but its family is revoked */
    CHECK_INT(store_refresh_use(st, "nope", &g), ERR_NOTFOUND);

    /* a revoked family refuses its live token with ERR_DENIED; an expired token is unknown */
    struct store_family f2 = f;
    CHECK_INT(store_family_new(st, &f2), 0);
    CHECK_INT(store_refresh_put(st, f2.id, "rt-f2", store_now() + 3600), 0);
    CHECK_INT(store_family_revoke(st, f2.id), 0);
    CHECK_INT(store_refresh_use(st, "rt-f2", &g), ERR_DENIED);
    CHECK_INT(store_family_revoke(st, "nope"), ERR_NOTFOUND);
    struct store_family f3 = f;
    CHECK_INT(store_family_new(st, &f3), 0);
    CHECK_INT(store_refresh_put(st, f3.id, "rt-old", store_now() - 1), 0);
    CHECK_INT(store_refresh_use(st, "rt-old", &g), ERR_NOTFOUND);
    store_close(st);
}

static void test_revocation(void)
{
    struct store *st = open_store();
    struct store *cli = open_store(); /* a second connection, as the CLI process would hold */
    bool r = true;
    CHECK_INT(store_jti_revoked(st, "jti-1", &r), 0);
    CHECK(!r);
    uint64_t s0 = seq_of(st);
    CHECK_INT(store_jti_revoke(cli, "jti-1", store_now() + 600), 0);
    CHECK(seq_of(st) > s0); /* another connection's change is seen */
    CHECK_INT(store_jti_revoke(cli, "jti-1", store_now() + 600), 0); /* idempotent */
    CHECK_INT(store_jti_revoked(st, "jti-1", &r), 0);
    CHECK(r);

    /* revoke everything a user holds */
    struct store_user u;
    CHECK_INT(store_user_add(st, "mallory", NULL, NULL, false, &u, NULL), 0);
    struct store_client c = {.kind = STORE_CLIENT_USER, .user_id = u.id};
    snprintf(c.client_id, sizeof(c.client_id), "ghc_mallory");
    CHECK_INT(store_client_put(st, &c, "sec"), 0);
    struct store_family f = {.user_id = u.id, .expires_at = store_now() + 3600}, g;
    snprintf(f.client_id, sizeof(f.client_id), "dcr-1");
    CHECK_INT(store_family_new(st, &f), 0);
    CHECK_INT(store_refresh_put(st, f.id, "rt-mallory", store_now() + 3600), 0);
    struct store_code code = {.user_id = u.id, .expires_at = store_now() + 60}, co;
    CHECK_INT(store_code_put(st, "code-mallory", &code), 0);
    json_t *login = json_pack("{s:I}", "user_id", (json_int_t)u.id), *other = json_object(), *v;
    CHECK_INT(store_ephemeral_put(st, "login", "sess-mallory", login, store_now() + 600), 0);
    CHECK_INT(store_ephemeral_put(st, "login", "sess-other", other, store_now() + 600), 0);

    uint64_t seq_daemon = seq_of(st);
    CHECK_INT(store_revoke_user(cli, u.id), 0);
    CHECK(seq_of(st) > seq_daemon);
    struct store_user after;
    CHECK_INT(store_user_get(st, u.id, &after), 0);
    CHECK(after.tokens_valid_after > store_now()); /* a token with iat = now is refused too */
    struct store_client got;
    CHECK_INT(store_client_get(st, "ghc_mallory", &got), 0);
    CHECK(got.revoked);
    store_client_release(&got);
    CHECK_INT(store_refresh_use(st, "rt-mallory", &g), ERR_DENIED);
    CHECK_INT(store_code_take(st, "code-mallory", &co), ERR_NOTFOUND);
    CHECK_INT(store_ephemeral_get(st, "login", "sess-mallory", &v), ERR_NOTFOUND);
    CHECK_INT(store_ephemeral_get(st, "login", "sess-other", &v), 0);
    json_decref(v);
    CHECK_INT(store_revoke_user(cli, 9999), ERR_NOTFOUND);
    json_decref(login);
    json_decref(other);

    /* a disabled user's family is refused */
    struct store_user w;
    CHECK_INT(store_user_add(st, "walter", NULL, NULL, false, &w, NULL), 0);
    f.user_id = w.id;
    CHECK_INT(store_family_new(st, &f), 0);
    CHECK_INT(store_refresh_put(st, f.id, "rt-walter", store_now() + 3600), 0);
    CHECK_INT(store_user_set_disabled(cli, w.id, true), 0);
    CHECK_INT(store_refresh_use(st, "rt-walter", &g), ERR_DENIED);

    /* the seq stays put when nothing changed, in either connection */
    uint64_t a = seq_of(st), b = seq_of(cli);
    CHECK_INT(a, b);
    CHECK_INT(seq_of(st), a);
    store_close(cli);
    store_close(st);
}

static int count_key_cb(const struct store_key *k, void *arg)
{
    char *buf = arg;
    strcat(buf, k->kid);
    strcat(buf, k->retired_at ? "(retired)," : ",");
    if (strcmp(k->kid, "k1") == 0)
        CHECK(k->sealed_len == 5 && memcmp(k->sealed, "\x01\x02\x00\x03\x04", 5) == 0);
    CHECK_CONTAINS(k->public_jwk, "\"kty\"");
    return 0;
}

static void test_keys(void)
{
    struct store *st = open_store();
    unsigned char sealed[5] = {1, 2, 0, 3, 4};
    char jwk[] = "{\"kty\":\"EC\"}";
    struct store_key k = {.sealed = sealed, .sealed_len = 5, .public_jwk = jwk};
    snprintf(k.kid, sizeof(k.kid), "k1");
    snprintf(k.alg, sizeof(k.alg), "ES256");
    uint64_t s0 = seq_of(st);
    CHECK_INT(store_key_add(st, &k), 0);
    CHECK(seq_of(st) > s0);
    CHECK_INT(store_key_add(st, &k), ERR_EXISTS);
    snprintf(k.kid, sizeof(k.kid), "k2");
    CHECK_INT(store_key_add(st, &k), 0);
    char buf[128] = "";
    CHECK_INT(store_key_list(st, count_key_cb, buf), 0);
    CHECK_STR(buf, "k2,k1(retired),");
    CHECK_INT(store_key_delete_retired_before(st, store_now() - 10), 0);
    buf[0] = '\0';
    CHECK_INT(store_key_list(st, count_key_cb, buf), 0);
    CHECK_STR(buf, "k2,k1(retired),");
    CHECK_INT(store_key_delete_retired_before(st, store_now() + 10), 0);
    buf[0] = '\0';
    CHECK_INT(store_key_list(st, count_key_cb, buf), 0);
    CHECK_STR(buf, "k2,");
    store_close(st);
}

/* The master key's check value: the first key recorded, the same key accepted again (also by a
   second connection, as a second replica opens it), another key refused with a message that
   says so; what the store holds is a MAC, not the key. */
static void test_master_key_check(void)
{
    unsigned char k1[AUTH_MASTER_KEY_LEN], k2[AUTH_MASTER_KEY_LEN];
    memset(k1, 0x11, sizeof(k1));
    memset(k2, 0x11, sizeof(k2));
    k2[31] ^= 1; /* one bit apart */
    struct store *a = open_store(), *b = open_store();
    struct err_info ei = {0};
    CHECK_INT(auth_master_key_verify(a, k1, "/etc/gh/one.key", &ei), 0);
    CHECK_INT(auth_master_key_verify(b, k1, "/etc/gh/one.key", &ei), 0);
    CHECK_INT(auth_master_key_verify(a, k1, "/etc/gh/one.key", &ei), 0);
    CHECK_INT(auth_master_key_verify(b, k2, "/etc/gh/other.key", &ei), ERR_DENIED);
    CHECK_CONTAINS(ei.msg, "the master key in /etc/gh/other.key is not the one this");
    CHECK_CONTAINS(ei.msg, postgres ? "postgres store" : "sqlite store");
    CHECK_CONTAINS(ei.msg, "same key file");
    /* the first key still passes: the refusal recorded nothing */
    memset(&ei, 0, sizeof(ei));
    CHECK_INT(auth_master_key_verify(b, k1, NULL, &ei), 0);
    char found[STORE_KEY_CHECK_MAX];
    CHECK_INT(store_key_check(a, "hmac-sha256:ignored", found), 0);
    CHECK(strncmp(found, "hmac-sha256:", 12) == 0 && strlen(found) == 12 + 64);
    CHECK(strstr(found, "1111111111") == NULL); /* not the key in hex */
    store_close(a);
    store_close(b);
}

static void test_ephemeral_sweep(void)
{
    struct store *st = open_store();
    json_t *v = json_pack("{s:s}", "state", "abc"), *got = NULL;
    CHECK_INT(store_ephemeral_put(st, "authz", "h1", v, store_now() + 600), 0);
    CHECK_INT(store_ephemeral_get(st, "authz", "h1", &got), 0);
    CHECK(json_equal(v, got));
    json_decref(got);
    CHECK_INT(store_ephemeral_get(st, "sso", "h1", &got), ERR_NOTFOUND); /* kinds apart */
    CHECK_INT(store_ephemeral_take(st, "authz", "h1", &got), 0);
    json_decref(got);
    CHECK_INT(store_ephemeral_take(st, "authz", "h1", &got), ERR_NOTFOUND); /* single use */
    CHECK_INT(store_ephemeral_put(st, "authz", "h2", v, store_now() + 600), 0);
    CHECK_INT(store_ephemeral_delete(st, "authz", "h2"), 0);
    CHECK_INT(store_ephemeral_get(st, "authz", "h2", &got), ERR_NOTFOUND);
    CHECK_INT(store_ephemeral_put(st, "authz", "old", v, store_now() - 1), 0);
    CHECK_INT(store_ephemeral_get(st, "authz", "old", &got), ERR_NOTFOUND); /* expired */
    json_decref(v);

    CHECK_INT(store_jti_revoke(st, "jti-old", store_now() - 1), 0);
    CHECK_INT(store_sweep(st, store_now()), 0);
    struct store_stmt *s =
        store_stmt(st, "SELECT (SELECT count(*) FROM ephemeral WHERE key_hash = 'old'),"
                       " (SELECT count(*) FROM revoked_jtis WHERE jti = 'jti-old'),"
                       " (SELECT count(*) FROM revoked_jtis WHERE jti = 'jti-1'),"
                       " (SELECT count(*) FROM refresh_tokens WHERE hash = 'rt-old')");
    CHECK(s != NULL);
    CHECK_INT(store_step(st, s), STORE_ROW);
    CHECK_INT(store_col_int64(s, 0), 0);
    CHECK_INT(store_col_int64(s, 1), 0);
    CHECK_INT(store_col_int64(s, 2), 1); /* not expired: kept */
    CHECK_INT(store_col_int64(s, 3), 0);
    store_done(s);
    store_close(st);
}

/* Two threads, two connections, one refresh token: exactly one wins. */
struct racer {
    pthread_barrier_t *barrier;
    const char *token;
    int result;
};

static void *race_cb(void *arg)
{
    struct racer *r = arg;
    struct store *st = open_store();
    struct store_family g;
    pthread_barrier_wait(r->barrier);
    r->result = store_refresh_use(st, r->token, &g);
    store_close(st);
    return NULL;
}

static void test_refresh_race(void)
{
    struct store *st = open_store();
    struct store_family f = {.user_id = 1, .expires_at = store_now() + 3600};
    snprintf(f.client_id, sizeof(f.client_id), "dcr-1");
    int wins = 0, reuses = 0, other = 0;
    for (int round = 0; round < 40; round++) {
        char tok[32];
        snprintf(tok, sizeof(tok), "race-%d", round);
        CHECK_INT(store_family_new(st, &f), 0);
        CHECK_INT(store_refresh_put(st, f.id, tok, store_now() + 3600), 0);
        pthread_barrier_t barrier;
        pthread_barrier_init(&barrier, NULL, 2);
        struct racer a = {&barrier, tok, 1}, b = {&barrier, tok, 1};
        pthread_t ta, tb;
        pthread_create(&ta, NULL, race_cb, &a);
        pthread_create(&tb, NULL, race_cb, &b);
        pthread_join(ta, NULL);
        pthread_join(tb, NULL);
        pthread_barrier_destroy(&barrier);
        wins += (a.result == 0) + (b.result == 0);
        reuses += (a.result == ERR_EXISTS) + (b.result == ERR_EXISTS);
        other +=
            (a.result != 0 && a.result != ERR_EXISTS) + (b.result != 0 && b.result != ERR_EXISTS);
    }
    CHECK_INT(wins, 40);
    CHECK_INT(reuses, 40);
    CHECK_INT(other, 0);
    store_close(st);
}

/* Replicas starting together on a new, empty database: each opens it at the same moment; the
   schema is made once (PostgreSQL: under an advisory lock; SQLite: BEGIN IMMEDIATE) and every
   one of them opens it without an error. */
struct opener {
    pthread_barrier_t *barrier;
    const char *where;
    int result;
};

static void *open_cb(void *arg)
{
    struct opener *o = arg;
    struct store *st = NULL;
    struct err_info ei = {0};
    pthread_barrier_wait(o->barrier);
    o->result = store_open(o->where, &st, &ei);
    if (o->result)
        fprintf(stderr, "concurrent store_open: %s\n", ei.msg);
    store_close(st);
    return NULL;
}

static void test_concurrent_open(void)
{
    char fresh[512];
    if (postgres)
        pg_location(fresh, sizeof(fresh), "gh_fresh");
    else
        snprintf(fresh, sizeof(fresh), "%s/fresh.sqlite", dir);
    enum { N = 4 };
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, N);
    struct opener o[N];
    pthread_t t[N];
    for (int i = 0; i < N; i++) {
        o[i] = (struct opener){&barrier, fresh, -1};
        pthread_create(&t[i], NULL, open_cb, &o[i]);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        CHECK_INT(o[i].result, 0);
    }
    pthread_barrier_destroy(&barrier);
    struct store *st = NULL;
    struct err_info ei = {0};
    CHECK_INT(store_open(fresh, &st, &ei), 0);
    struct store_stmt *s = store_stmt(st, "SELECT count(*), max(version) FROM schema_version");
    CHECK(s != NULL);
    CHECK_INT(store_step(st, s), STORE_ROW);
    CHECK_INT(store_col_int64(s, 0), 1); /* one row: migrated once */
    CHECK(store_col_int64(s, 1) >= 2);
    store_done(s);
    CHECK_INT(store_user_add(st, "after-race", NULL, NULL, false, NULL, &ei), 0);
    store_close(st);
}

/* A migration that fails leaves the schema as it was: here the database has a table of its own
   called "users" already, so migration 1 fails half-way through; the tables it made before are
   gone with it, the error names the migration and the cause, and nothing is recorded as done. */
static void test_failed_migration(void)
{
    char broken[512];
    if (postgres)
        pg_location(broken, sizeof(broken), "gh_broken");
    else
        snprintf(broken, sizeof(broken), "%s/broken.sqlite", dir);
    struct store *st = NULL;
    struct err_info ei = {0};
    CHECK_INT(store_open(broken, &st, &ei), 0); /* made, then emptied by hand */
    CHECK_INT(store_exec_sql(st, "DROP TABLE upstream_tokens"), 0);
    CHECK_INT(store_exec_sql(st, "DROP TABLE user_settings"), 0);
    CHECK_INT(store_exec_sql(st, "DROP TABLE ephemeral"), 0);
    CHECK_INT(store_exec_sql(st, "DROP TABLE signing_keys"), 0);
    CHECK_INT(store_exec_sql(st, "DROP TABLE revoked_jtis"), 0);
    CHECK_INT(store_exec_sql(st, "DROP TABLE refresh_tokens"), 0);
    CHECK_INT(store_exec_sql(st, "DROP TABLE families"), 0);
    CHECK_INT(store_exec_sql(st, "DROP TABLE codes"), 0);
    CHECK_INT(store_exec_sql(st, "DROP TABLE clients"), 0);
    CHECK_INT(store_exec_sql(st, "DROP TABLE apikeys"), 0);
    CHECK_INT(store_exec_sql(st, "DROP TABLE accounts"), 0);
    CHECK_INT(store_exec_sql(st, "DROP TABLE team_members"), 0);
    CHECK_INT(store_exec_sql(st, "DROP TABLE teams"), 0);
    CHECK_INT(store_exec_sql(st, "DROP TABLE identities"), 0);
    CHECK_INT(store_exec_sql(st, "DROP TABLE users"), 0);
    CHECK_INT(store_exec_sql(st, "DROP TABLE revocation"), 0);
    if (postgres)
        CHECK_INT(store_exec_sql(st, "DROP FUNCTION gh_seq_bump; DROP FUNCTION gh_clients_revoke"),
                  0);
    CHECK_INT(store_exec_sql(st, "UPDATE schema_version SET version = 0"), 0);
    CHECK_INT(store_exec_sql(st, "CREATE TABLE users (somebody_elses INTEGER)"), 0);
    store_close(st);

    memset(&ei, 0, sizeof(ei));
    CHECK_INT(store_open(broken, &st, &ei), ERR_IO);
    CHECK_CONTAINS(ei.msg, postgres ? "postgres store" : "sqlite store");
    if (postgres)
        CHECK_CONTAINS(ei.msg, "migration 1: relation \"users\" already exists");
    /* as it was: no table of migration 1 (revocation comes first in it), the version still 0 */
    CHECK_INT(raw_count(broken, "SELECT count(*) FROM schema_version WHERE version = 0"), 1);
    CHECK_INT(raw_count(broken, postgres ? "SELECT count(*) FROM pg_tables WHERE tablename = "
                                           "'revocation'"
                                         : "SELECT count(*) FROM sqlite_master WHERE name = "
                                           "'revocation'"),
              0);
}

/* PostgreSQL restarted under a connection: the call that meets the lost connection fails with a
   temporary error (ERR_TIMEOUT, never retried: it may have been done), and the connection is
   made again, so the next calls work, the prepared statements prepared anew. */
static void test_reconnect(void)
{
    if (!postgres)
        return; /* SQLite has no server to lose */
    struct store *st = open_store();
    struct store_user u;
    struct err_info ei = {0};
    CHECK_INT(store_user_add(st, "before-restart", NULL, NULL, false, &u, &ei), 0);
    CHECK_INT(store_user_get(st, u.id, &u), 0);
    CHECK(getenv("GH_TEST_PG_RESTART") != NULL);
    CHECK_INT(system(getenv("GH_TEST_PG_RESTART")), 0);
    CHECK_INT(store_user_get(st, u.id, &u), ERR_TIMEOUT);
    CHECK_INT(store_user_get(st, u.id, &u), 0);
    CHECK_STR(u.name, "before-restart");
    CHECK_INT(store_user_add(st, "after-restart", NULL, NULL, false, NULL, &ei), 0);
    uint64_t seq = 0;
    CHECK_INT(store_revocation_seq(st, &seq), 0);
    CHECK_INT(store_revoke_user(st, u.id), 0); /* a transaction on the new connection */
    CHECK(seq_of(st) > seq);

    /* lost inside a transaction: it is gone, and nothing of it runs on the new connection */
    CHECK_INT(store_begin(st), 0);
    CHECK_INT(store_exec_sql(st, "INSERT INTO users (name, created_at) VALUES ('tx-1', 0)"), 0);
    CHECK_INT(system(getenv("GH_TEST_PG_RESTART")), 0);
    CHECK_INT(store_exec_sql(st, "INSERT INTO users (name, created_at) VALUES ('tx-2', 0)"),
              ERR_TIMEOUT); /* in flight when the connection went */
    CHECK_INT(store_exec_sql(st, "INSERT INTO users (name, created_at) VALUES ('tx-3', 0)"),
              ERR_TIMEOUT); /* never run outside its transaction */
    CHECK_INT(store_commit(st), ERR_TIMEOUT);
    CHECK_INT(store_user_find(st, "tx-1", &u), ERR_NOTFOUND);
    CHECK_INT(store_user_find(st, "tx-3", &u), ERR_NOTFOUND);
    CHECK_INT(store_user_find(st, "before-restart", &u), 0);
    store_close(st);
}

/* PostgreSQL down for a while: calls fail at once with a temporary error (no hang, no connect
   attempt per call), and work again once the server is back, without reopening the store. */
static void test_server_down(void)
{
    if (!postgres)
        return;
    struct store *st = open_store();
    struct store_user u;
    struct err_info ei = {0};
    CHECK_INT(store_user_add(st, "through-outage", NULL, NULL, false, &u, &ei), 0);
    CHECK_INT(system(getenv("GH_TEST_PG_STOP")), 0);
    CHECK_INT(store_user_get(st, u.id, &u), ERR_TIMEOUT); /* finds it lost, cannot reconnect */
    uint64_t t0 = clock_now_ns();
    for (int i = 0; i < 200; i++)
        CHECK_INT(store_user_get(st, u.id, &u), ERR_TIMEOUT);
    CHECK(clock_now_ns() - t0 < 200ull * 1000 * 1000); /* fast: no attempt within the second */
    CHECK_INT(system(getenv("GH_TEST_PG_START")), 0);
    usleep(1100 * 1000); /* past the pause between attempts */
    CHECK_INT(store_user_get(st, u.id, &u), 0);
    CHECK_STR(u.name, "through-outage");
    CHECK_INT(store_user_add(st, "after-outage", NULL, NULL, false, NULL, &ei), 0);
    store_close(st);
}

/* A child commits users one by one, reporting each after its commit returned, then opens a
   transaction it never finishes and dies by SIGKILL. Every reported row is there afterwards; the
   unfinished one is not, and the store opens and writes as before. */
static void test_kill9(void)
{
    int fds[2];
    CHECK_INT(pipe(fds), 0);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        struct store *st = NULL;
        if (store_open(path, &st, NULL) != 0)
            _exit(3);
        for (int i = 0; i < 50; i++) {
            char name[32];
            snprintf(name, sizeof(name), "k9-%d", i);
            if (store_user_add(st, name, NULL, NULL, false, NULL, NULL) != 0)
                _exit(4);
            if (write(fds[1], &i, sizeof(i)) != (ssize_t)sizeof(i))
                _exit(5);
        }
        if (store_begin(st) != 0 || store_exec_sql(st, "INSERT INTO users (name, created_at) "
                                                       "VALUES ('k9-uncommitted', 0)") != 0)
            _exit(6);
        raise(SIGKILL);
        _exit(6);
    }
    close(fds[1]);
    int last = -1, i;
    while (read(fds[0], &i, sizeof(i)) == (ssize_t)sizeof(i))
        last = i;
    close(fds[0]);
    int status;
    CHECK_INT(waitpid(pid, &status, 0), pid);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    CHECK_INT(last, 49);
    struct store *st = open_store();
    struct store_user u;
    for (i = 0; i <= last; i++) {
        char name[32];
        snprintf(name, sizeof(name), "k9-%d", i);
        CHECK_INT(store_user_find(st, name, &u), 0);
    }
    CHECK_INT(store_user_find(st, "k9-uncommitted", &u), ERR_NOTFOUND);
    CHECK_INT(store_user_add(st, "k9-after", NULL, NULL, false, NULL, NULL), 0);
    store_close(st);
}

/* The other process of test_other_process_sees_through: a fresh exec of this binary (a fork
   would inherit SQLite's in-process lock bookkeeping and prove nothing), selected by an
   environment variable before main runs. It adds a user and revokes them. */
__attribute__((constructor)) static void other_process_main(void)
{
    const char *db = getenv("GH_TEST_STORE_CHILD");
    if (db == NULL)
        return;
    struct store *st = NULL;
    struct store_user u;
    core_init();
    if (store_open(db, &st, NULL) != 0 ||
        store_user_add(st, "other-process", NULL, NULL, false, &u, NULL) != 0 ||
        store_revoke_user(st, u.id) != 0)
        _exit(3);
    store_close(st);
    _exit(0);
}

/* Two connections in this process (as two worker threads have), then another process revokes:
   both must see it. Opening the second connection once closed a descriptor of the database file,
   which silently dropped the process's POSIX locks; the other process then believed itself alone
   and deleted the WAL ours were still using, so they never saw its write (nor any later one). */
static void test_other_process_sees_through(void)
{
    struct store *a = open_store();
    uint64_t before = seq_of(a);
    struct store *b = open_store();
    CHECK_INT(seq_of(b), before);
    char cmd[768];
    snprintf(cmd, sizeof(cmd), "GH_TEST_STORE_CHILD='%s' /proc/%d/exe", path, (int)getpid());
    CHECK_INT(system(cmd), 0);
    CHECK(seq_of(a) > before);
    CHECK(seq_of(b) > before);
    if (!postgres) {
        char wal[600];
        struct stat sb;
        snprintf(wal, sizeof(wal), "%s-wal", path);
        CHECK_INT(stat(wal, &sb), 0); /* still there: nobody deleted it under us */
    }
    store_close(b);
    store_close(a);
}

static int settings_count_cb(const char *server, const struct store_settings *v, void *arg)
{
    (void)v;
    CHECK(strcmp(server, "api") == 0 || strcmp(server, "github") == 0);
    (*(int *)arg)++;
    return 0;
}

static void test_settings(void)
{
    struct store *st = open_store();
    struct store_user u, b;
    struct err_info ei = {0};
    CHECK_INT(store_user_find(st, "alice", &u), 0);
    CHECK_INT(store_user_find(st, "bob", &b), 0);
    struct store_settings v = {0}, got;
    CHECK_INT(store_settings_get(st, u.id, "github", &got), ERR_NOTFOUND);
    snprintf(v.discovery, sizeof(v.discovery), "search");
    CHECK_INT(store_settings_put(st, u.id, "github", &v, &ei), 0);
    CHECK_INT(store_settings_get(st, u.id, "github", &got), 0);
    CHECK_STR(got.discovery, "search");
    CHECK(got.tools == NULL && got.updated_at > 0);
    /* replaced as a whole: a selection, the server's own mode */
    v.discovery[0] = '\0';
    v.tools = json_pack("[s,s]", "issues_create", "repos_get");
    CHECK_INT(store_settings_put(st, u.id, "github", &v, &ei), 0);
    CHECK_INT(store_settings_get(st, u.id, "github", &got), 0);
    CHECK_STR(got.discovery, "");
    CHECK(json_equal(got.tools, v.tools));
    store_settings_release(&got);
    CHECK_INT(store_settings_put(st, u.id, "api", &v, &ei), 0);
    /* others' settings are theirs */
    CHECK_INT(store_settings_get(st, b.id, "github", &got), ERR_NOTFOUND);
    int n = 0;
    CHECK_INT(store_settings_list(st, u.id, settings_count_cb, &n), 0);
    CHECK_INT(n, 2);
    /* refusals name the cause */
    snprintf(v.discovery, sizeof(v.discovery), "lazy");
    CHECK_INT(store_settings_put(st, u.id, "github", &v, &ei), ERR_INVAL);
    CHECK_CONTAINS(ei.msg, "\"lazy\" is not static, hierarchical or search");
    v.discovery[0] = '\0';
    CHECK_INT(store_settings_put(st, u.id, "", &v, &ei), ERR_INVAL);
    CHECK_CONTAINS(ei.msg, "server name");
    json_array_append_new(v.tools, json_integer(3));
    CHECK_INT(store_settings_put(st, u.id, "github", &v, &ei), ERR_INVAL);
    CHECK_CONTAINS(ei.msg, "selected tool 3 is not a name");
    json_decref(v.tools);
    v.tools = NULL;
    CHECK_INT(store_settings_put(st, 99999, "github", &v, &ei), ERR_NOTFOUND);
    store_close(st);
}

TEST_MAIN(TEST(test_open), TEST(test_users), TEST(test_settings), TEST(test_user_list_identities),
          TEST(test_teams), TEST(test_accounts_apikeys), TEST(test_clients), TEST(test_codes),
          TEST(test_refresh), TEST(test_revocation), TEST(test_keys), TEST(test_master_key_check),
          TEST(test_ephemeral_sweep), TEST(test_refresh_race), TEST(test_concurrent_open),
          TEST(test_failed_migration), TEST(test_kill9), TEST(test_other_process_sees_through),
          TEST(test_reconnect), TEST(test_server_down))
