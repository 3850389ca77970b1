/*
 * vault: each user's upstream tokens against a real store (a SQLite file in a temporary
 * directory, or with GH_TEST_STORE=postgres the throwaway cluster of
 * tests/unit/store/with-postgres.sh): kept and injected, sealed at rest (no token anywhere in
 * the database's bytes), bound to (user, server) (a row moved to another user or server does
 * not open), one user never gets another's, refresh requests per client authentication method,
 * expiry states, refusals that name the cause without the token, and a kept token surviving
 * kill -9 of the process that kept it.
 */
#include "auth/auth.h"
#include "core/rand.h"
#include "store/store-int.h"
#include "test.h"
#include "vault/vault.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[64];
static char path[512];
static bool postgres;
static int64_t alice, bob;
static const char *const ACCESS = "acc-SECRET-7f3a9e1c";
static const char *const REFRESH = "ref-SECRET-c0ffee42";

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

static json_t *answer(const char *access, const char *refresh, int expires_in, const char *scope)
{
    json_t *a = json_pack("{s:s, s:s}", "access_token", access, "token_type", "Bearer");
    if (refresh)
        json_object_set_new(a, "refresh_token", json_string(refresh));
    if (expires_in >= 0)
        json_object_set_new(a, "expires_in", json_integer(expires_in));
    if (scope)
        json_object_set_new(a, "scope", json_string(scope));
    return a;
}

static void test_setup(void)
{
    CHECK_INT(core_init(), 0);
    snprintf(dir, sizeof(dir), "/tmp/gh-vault-XXXXXX");
    CHECK(mkdtemp(dir) != NULL);
    atexit(remove_dir);
    const char *ts = getenv("GH_TEST_STORE");
    if (ts != NULL && strcmp(ts, "postgres") == 0) {
        postgres = true;
        snprintf(path, sizeof(path), "postgresql:///gh_store?host=%s&port=%s&user=postgres",
                 getenv("GH_TEST_PG_HOST"), getenv("GH_TEST_PG_PORT"));
    } else {
        snprintf(path, sizeof(path), "%s/store.sqlite", dir);
    }
    unsigned char master[VAULT_MASTER_KEY_LEN];
    rand_bytes(master, sizeof(master));
    CHECK(!vault_ready());
    vault_init(master);
    CHECK(vault_ready());
    struct store *st = open_store();
    struct store_user u;
    CHECK_INT(store_user_add(st, "alice", NULL, NULL, false, &u, NULL), 0);
    alice = u.id;
    CHECK_INT(store_user_add(st, "bob", NULL, NULL, false, &u, NULL), 0);
    bob = u.id;
    store_close(st);
}

/* The value of the Authorization header vault_inject adds, or "". */
static void injected(const struct vault_entry *e, char *out, size_t size)
{
    struct outbound o;
    outbound_init(&o);
    CHECK_INT(vault_inject(e, &o), 0);
    CHECK_INT(outbound_count(&o, OUTBOUND_HEADER), 1);
    CHECK_STR(o.v[0].name, "Authorization");
    snprintf(out, size, "%s", o.v[0].value);
    outbound_release(&o);
}

static void test_keep_inject(void)
{
    struct store *st = open_store();
    struct err_info ei = {0};
    json_t *a = answer(ACCESS, REFRESH, 3600, "read write");
    json_t *g = json_pack("{s:s, s:s, s:s, s:s}", "issuer", "https://as.example", "token_endpoint",
                          "https://as.example/token", "resource", "https://up.example/mcp",
                          "client_id", "gw");
    CHECK_INT(vault_keep(st, alice, "linear", a, g, NULL, 1000, &ei), 0);
    struct vault_entry *e = NULL;
    CHECK_INT(vault_open(st, alice, "linear", &e), 0);
    char hv[128];
    injected(e, hv, sizeof(hv));
    CHECK_STR(hv, "Bearer acc-SECRET-7f3a9e1c");
    CHECK_STR(vault_entry_scope(e), "read write");
    CHECK_INT(vault_entry_expires_at(e), 4600);
    CHECK_INT(vault_entry_state(e, 1000), VAULT_FRESH);
    CHECK_INT(vault_entry_state(e, 4600 - VAULT_EXPIRY_SKEW_S), VAULT_STALE);
    vault_entry_free(e);
    /* another user, another server: nothing */
    CHECK_INT(vault_open(st, bob, "linear", &e), ERR_NOTFOUND);
    CHECK_INT(vault_open(st, alice, "github", &e), ERR_NOTFOUND);
    /* bob connects with his own token; each gets theirs */
    json_t *b = answer("bob-token-1", NULL, -1, NULL);
    CHECK_INT(vault_keep(st, bob, "linear", b, g, NULL, 1000, &ei), 0);
    CHECK_INT(vault_open(st, bob, "linear", &e), 0);
    injected(e, hv, sizeof(hv));
    CHECK_STR(hv, "Bearer bob-token-1");
    CHECK_INT(vault_entry_state(e, 1LL << 40), VAULT_FRESH); /* no expiry known */
    vault_entry_free(e);
    CHECK_INT(vault_open(st, alice, "linear", &e), 0);
    injected(e, hv, sizeof(hv));
    CHECK_STR(hv, "Bearer acc-SECRET-7f3a9e1c");
    vault_entry_free(e);
    json_decref(a);
    json_decref(b);
    json_decref(g);
    store_close(st);
}

/* Every byte of the database (SQLite: the file and its WAL) holds no token. */
static bool file_has(const char *file, const char *needle)
{
    FILE *f = fopen(file, "rb");
    if (f == NULL)
        return false;
    size_t cap = 1 << 20, n = 0, r;
    char *buf = malloc(cap);
    while ((r = fread(buf + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap)
            buf = realloc(buf, cap *= 2);
    }
    fclose(f);
    bool found = memmem(buf, n, needle, strlen(needle)) != NULL;
    free(buf);
    return found;
}

static void test_ciphertext_at_rest(void)
{
    struct store *st = open_store();
    struct store_upstream_token row;
    CHECK_INT(store_upstream_token_get(st, alice, "linear", &row), 0);
    CHECK(row.sealed_len > 40);
    CHECK(memmem(row.sealed, row.sealed_len, ACCESS, strlen(ACCESS)) == NULL);
    CHECK(memmem(row.sealed, row.sealed_len, REFRESH, strlen(REFRESH)) == NULL);
    CHECK(memmem(row.sealed, row.sealed_len, "as.example", 10) == NULL);
    CHECK_STR(row.scope, "read write"); /* in clear, for listing */
    store_upstream_token_release(&row);
    store_close(st);
    if (!postgres) {
        char wal[600];
        snprintf(wal, sizeof(wal), "%s-wal", path);
        CHECK(file_has(path, "alice")); /* the search works: names are in clear */
        CHECK(!file_has(path, ACCESS) && !file_has(path, REFRESH));
        CHECK(!file_has(wal, ACCESS) && !file_has(wal, REFRESH));
    }
}

/* A row moved to another user or another server does not open: (user, server) is the
   associated data. */
static void test_bound_to_user_and_server(void)
{
    struct store *st = open_store();
    char sql[300];
    struct vault_entry *e = NULL;
    CHECK_INT(store_exec_sql(st, "DELETE FROM upstream_tokens WHERE server = 'stolen'"), 0);
    snprintf(sql, sizeof(sql),
             "INSERT INTO upstream_tokens (user_id, server, sealed, expires_at, scope, updated_at)"
             " SELECT %lld, 'linear2', sealed, expires_at, scope, updated_at FROM upstream_tokens"
             " WHERE user_id = %lld AND server = 'linear'",
             (long long)alice, (long long)alice);
    CHECK_INT(store_exec_sql(st, sql), 0);
    CHECK_INT(vault_open(st, alice, "linear2", &e), ERR_DENIED);
    /* bob's row replaced by alice's sealed record: refused, never alice's token */
    snprintf(sql, sizeof(sql),
             "UPDATE upstream_tokens SET sealed = (SELECT sealed FROM upstream_tokens WHERE "
             "user_id = %lld AND server = 'linear') WHERE user_id = %lld AND server = 'linear'",
             (long long)alice, (long long)bob);
    CHECK_INT(store_exec_sql(st, sql), 0);
    CHECK_INT(vault_open(st, bob, "linear", &e), ERR_DENIED);
    /* a flipped byte */
    CHECK_INT(vault_open(st, alice, "linear", &e), 0);
    vault_entry_free(e);
    struct store_upstream_token row;
    CHECK_INT(store_upstream_token_get(st, alice, "linear", &row), 0);
    row.sealed[row.sealed_len - 3] ^= 1;
    CHECK_INT(store_upstream_token_put(st, alice, "tampered", &row), 0);
    CHECK_INT(vault_open(st, alice, "tampered", &e), ERR_DENIED);
    store_upstream_token_release(&row);
    CHECK_INT(vault_forget(st, alice, "tampered"), 0);
    CHECK_INT(vault_forget(st, alice, "linear2"), 0);
    CHECK_INT(vault_forget(st, alice, "linear2"), ERR_NOTFOUND);
    CHECK_INT(vault_forget(st, bob, "linear"), 0);
    store_close(st);
}

static int count_cb(const char *server, int64_t expires_at, const char *scope, void *arg)
{
    (void)expires_at;
    (void)scope;
    char *names = arg;
    strcat(names, server);
    strcat(names, ",");
    return 0;
}

/* A refresh keeps what its answer does not replace (the refresh token, the scope, the grant),
   and its request authenticates the client as the registration says. */
static void test_refresh(void)
{
    struct store *st = open_store();
    struct err_info ei = {0};
    struct vault_entry *e = NULL, *e2 = NULL;
    CHECK_INT(vault_open(st, alice, "linear", &e), 0);
    char *url = NULL, *body = NULL;
    struct outbound h;
    outbound_init(&h);
    CHECK_INT(vault_refresh_request(e, &url, &body, &h), 0);
    CHECK_STR(url, "https://as.example/token");
    CHECK_STR(body, "grant_type=refresh_token&refresh_token=ref-SECRET-c0ffee42&resource="
                    "https%3A%2F%2Fup.example%2Fmcp&client_id=gw");
    CHECK_INT(outbound_count(&h, OUTBOUND_HEADER), 1); /* Content-Type only: a public client */
    free(url);
    free(body);
    outbound_release(&h);
    json_t *a = answer("acc-2", NULL, 60, NULL); /* no new refresh token, no scope */
    CHECK_INT(vault_keep(st, alice, "linear", a, NULL, e, 5000, &ei), 0);
    json_decref(a);
    vault_entry_free(e);
    CHECK_INT(vault_open(st, alice, "linear", &e2), 0);
    char hv[64];
    injected(e2, hv, sizeof(hv));
    CHECK_STR(hv, "Bearer acc-2");
    CHECK_STR(vault_entry_scope(e2), "read write");
    CHECK_INT(vault_entry_expires_at(e2), 5060);
    outbound_init(&h);
    CHECK_INT(vault_refresh_request(e2, &url, &body, &h), 0);
    CHECK_CONTAINS(body, "refresh_token=ref-SECRET-c0ffee42"); /* kept */
    CHECK_STR(url, "https://as.example/token");                /* the grant kept */
    free(url);
    free(body);
    outbound_release(&h);
    vault_entry_free(e2);

    /* client_secret_basic: the pair in the header, not in the body */
    json_t *g =
        json_pack("{s:s, s:s, s:s, s:s}", "token_endpoint", "https://as.example/t", "client_id",
                  "gw:1", "client_secret", "s3cr&t", "auth_method", "client_secret_basic");
    a = answer("acc-3", "ref-3", 60, "x");
    CHECK_INT(vault_keep(st, alice, "basic", a, g, NULL, 1, &ei), 0);
    CHECK_INT(vault_open(st, alice, "basic", &e), 0);
    outbound_init(&h);
    CHECK_INT(vault_refresh_request(e, &url, &body, &h), 0);
    CHECK_STR(body, "grant_type=refresh_token&refresh_token=ref-3");
    CHECK_INT(outbound_count(&h, OUTBOUND_HEADER), 2);
    CHECK_STR(h.v[1].name, "Authorization");
    CHECK_STR(h.v[1].value, "Basic Z3clM0ExOnMzY3IlMjZ0"); /* base64("gw%3A1:s3cr%26t") */
    free(url);
    free(body);
    outbound_release(&h);
    vault_entry_free(e);
    /* client_secret_post: both in the body */
    json_object_set_new(g, "auth_method", json_string("client_secret_post"));
    CHECK_INT(vault_keep(st, alice, "post", a, g, NULL, 1, &ei), 0);
    CHECK_INT(vault_open(st, alice, "post", &e), 0);
    outbound_init(&h);
    CHECK_INT(vault_refresh_request(e, &url, &body, &h), 0);
    CHECK_STR(body, "grant_type=refresh_token&refresh_token=ref-3&client_id=gw%3A1&client_secret="
                    "s3cr%26t");
    CHECK_INT(outbound_count(&h, OUTBOUND_HEADER), 1);
    free(url);
    free(body);
    outbound_release(&h);
    vault_entry_free(e);
    json_decref(a);
    json_decref(g);
    /* no refresh token: DEAD once expired, and no refresh request */
    a = answer("acc-4", NULL, 10, NULL);
    CHECK_INT(vault_keep(st, alice, "short", a, NULL, NULL, 100, &ei), 0);
    json_decref(a);
    CHECK_INT(vault_open(st, alice, "short", &e), 0);
    CHECK_INT(vault_entry_state(e, 100), VAULT_DEAD); /* within the skew */
    CHECK_INT(vault_entry_state(e, 200), VAULT_DEAD);
    outbound_init(&h);
    CHECK_INT(vault_refresh_request(e, &url, &body, &h), ERR_NOTFOUND);
    outbound_release(&h);
    vault_entry_free(e);
    char names[128] = "";
    CHECK_INT(vault_list(st, alice, count_cb, names), 0);
    CHECK_STR(names, "basic,linear,post,short,");
    store_close(st);
}

/* Answers the vault does not keep: the refusal names what is wrong, never the token. */
static void test_refusals(void)
{
    struct store *st = open_store();
    struct err_info ei = {0};
    json_t *a = json_pack("{s:s}", "token_type", "Bearer");
    CHECK_INT(vault_keep(st, alice, "x", a, NULL, NULL, 1, &ei), ERR_INVAL);
    CHECK_STR(ei.msg, "the token endpoint's answer has no access_token");
    json_decref(a);
    a = json_pack("{s:s, s:s}", "access_token", ACCESS, "token_type", "mac");
    CHECK_INT(vault_keep(st, alice, "x", a, NULL, NULL, 1, &ei), ERR_INVAL);
    CHECK_STR(ei.msg, "the token endpoint's token_type is \"mac\"; expected Bearer");
    json_decref(a);
    a = json_pack("{s:s, s:s}", "access_token", "a\r\nX-Evil: 1", "token_type", "Bearer");
    CHECK_INT(vault_keep(st, alice, "x", a, NULL, NULL, 1, &ei), ERR_INVAL);
    CHECK_STR(ei.msg, "the token endpoint's access_token has a character a header cannot carry");
    json_decref(a);
    a = json_pack("{s:s, s:s, s:s}", "access_token", ACCESS, "token_type", "Bearer", "expires_in",
                  "soon");
    CHECK_INT(vault_keep(st, alice, "x", a, NULL, NULL, 1, &ei), ERR_INVAL);
    CHECK_STR(ei.msg, "the token endpoint's expires_in is not a number of seconds");
    json_decref(a);
    a = answer(ACCESS, NULL, -1, NULL);
    CHECK_INT(vault_keep(st, 999999, "x", a, NULL, NULL, 1, &ei), ERR_NOTFOUND);
    CHECK_INT(vault_keep(st, alice, "", a, NULL, NULL, 1, &ei), ERR_INVAL);
    json_decref(a);
    struct vault_entry *e;
    CHECK_INT(vault_open(st, alice, "x", &e), ERR_NOTFOUND);
    store_close(st);
}

/* Kept means durable: a process killed right after vault_keep returned leaves the token. */
static void test_kill9(void)
{
    pid_t pid = fork();
    if (pid == 0) {
        struct store *st = NULL;
        json_t *a = answer("k9-token", "k9-refresh", 600, NULL);
        if (store_open(path, &st, NULL) != 0 || vault_keep(st, bob, "k9", a, NULL, NULL, 1, NULL))
            _exit(3);
        raise(SIGKILL);
        _exit(4);
    }
    int status;
    CHECK_INT(waitpid(pid, &status, 0), pid);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    struct store *st = open_store();
    struct vault_entry *e = NULL;
    CHECK_INT(vault_open(st, bob, "k9", &e), 0);
    char hv[64];
    injected(e, hv, sizeof(hv));
    CHECK_STR(hv, "Bearer k9-token");
    vault_entry_free(e);
    store_close(st);
}

/* Another master key opens nothing (and says so with ERR_DENIED, not a wrong token). */
static void test_other_key(void)
{
    unsigned char other[VAULT_MASTER_KEY_LEN];
    rand_bytes(other, sizeof(other));
    vault_init(other);
    struct store *st = open_store();
    struct vault_entry *e = NULL;
    CHECK_INT(vault_open(st, alice, "linear", &e), ERR_DENIED);
    store_close(st);
    vault_release();
    CHECK(!vault_ready());
    st = open_store();
    CHECK_INT(vault_open(st, alice, "linear", &e), ERR_UNAVAILABLE);
    store_close(st);
}

TEST_MAIN(TEST(test_setup), TEST(test_keep_inject), TEST(test_ciphertext_at_rest),
          TEST(test_bound_to_user_and_server), TEST(test_refresh), TEST(test_refusals),
          TEST(test_kill9), TEST(test_other_key))
