/*
 * What authenticating one MCP request costs (src/auth/validate.c), against a real SQLite store
 * in a temporary directory: an access token seen for the first time (signature check, claim
 * checks, the user/client/jti lookups) against one already in the validator's cache, for ES256
 * and EdDSA keys; the bare signature check for comparison; and an API key first seen (argon2id)
 * against cached. Prints ns/op and the cold/cached ratio, and what store_revocation_seq (the
 * part of every cached validation that asks SQLite whether anything was revoked) costs alone.
 *   build/auth_validate [tokens]      (default 2000 tokens per cold run)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/auth-int.h"
#include "core/rand.h"

#define ISSUER "https://gw.example"
#define RESOURCE "https://gw.example/mcp"
#define CACHED_RUNS 200000

static const unsigned char master[AUTH_MASTER_KEY_LEN] = "bench auth_validate master key!";

static void die(const char *what, int rc)
{
    fprintf(stderr, "auth_validate: %s failed: %s\n", what, err_str(rc));
    exit(1);
}

static double validate_ns(struct auth_validator *v, char **hdrs, size_t n, size_t runs)
{
    struct principal p;
    struct err_info ei;
    uint64_t t0 = clock_now_ns();
    for (size_t i = 0; i < runs; i++) {
        const char *h = hdrs[i % n];
        if (auth_validate(v, h, strlen(h), RESOURCE, "mcp", &p, &ei) != AUTH_OK) {
            fprintf(stderr, "auth_validate: refused: %s\n", ei.msg);
            exit(1);
        }
    }
    return (double)(clock_now_ns() - t0) / (double)runs;
}

static void report(const char *what, double cold, double cached)
{
    printf("%-8s cold %10.0f ns/op   cached %6.0f ns/op   ratio %6.0fx\n", what, cold, cached,
           cold / cached);
}

static void bench_tokens(struct store *st, struct auth_validator *v, const struct principal *who,
                         const char *alg, size_t n)
{
    char kid[64];
    struct err_info ei;
    int rc = auth_key_rotate(st, master, alg, kid, &ei);
    if (rc)
        die("key rotation", rc);
    char **hdrs = calloc(n, sizeof(*hdrs));
    const struct auth_keyring *kr = auth_validator_keyring(v);
    for (size_t i = 0; i < n; i++) {
        struct principal p = *who;
        char *tok;
        if ((rc = auth_issue_access(kr, ISSUER, &p, RESOURCE, 600, &tok)))
            die("issue", rc);
        hdrs[i] = malloc(strlen(tok) + 8);
        sprintf(hdrs[i], "Bearer %s", tok);
        free(tok);
    }
    /* the signature alone, for scale */
    uint64_t t0 = clock_now_ns();
    for (size_t i = 0; i < n; i++) {
        json_t *c;
        if (auth_jwt_verify(kr, hdrs[i] + 7, strlen(hdrs[i] + 7), &c, &ei))
            die("verify", ERR_DENIED);
        json_decref(c);
    }
    double verify = (double)(clock_now_ns() - t0) / (double)n;
    double cold = validate_ns(v, hdrs, n, n);
    double cached = validate_ns(v, hdrs, n, CACHED_RUNS);
    report(alg, cold, cached);
    printf("%-8s (of which JWS decode + signature verify %.0f ns/op, %zu-byte token)\n", alg,
           verify, strlen(hdrs[0]) - 7);
    for (size_t i = 0; i < n; i++)
        free(hdrs[i]);
    free(hdrs);
}

/* store_revocation_seq per call when nothing changed (a PRAGMA data_version step). */
static void bench_revocation_seq(struct store *st)
{
    uint64_t seq = 0;
    int n = CACHED_RUNS;
    uint64_t t0 = clock_now_ns();
    for (int i = 0; i < n; i++)
        if (store_revocation_seq(st, &seq) != 0)
            die("store_revocation_seq", ERR_IO);
    double ns = (double)(clock_now_ns() - t0) / n;
    printf("store_revocation_seq %.0f ns/op (%d calls)\n", ns, n);
}

static void bench_apikeys(struct store *st, struct auth_validator *v, size_t n)
{
    struct store_account a;
    struct err_info ei;
    char **hdrs = calloc(n, sizeof(*hdrs)), id[32];
    int rc = store_account_add(st, "bench-bot", &a, &ei);
    if (rc)
        die("account", rc);
    for (size_t i = 0; i < n; i++) {
        char key[STORE_APIKEY_SIZE];
        if ((rc = store_apikey_create(st, a.id, "bench", key, id)))
            die("apikey", rc);
        hdrs[i] = malloc(strlen(key) + 8);
        sprintf(hdrs[i], "Bearer %s", key);
    }
    double cold = validate_ns(v, hdrs, n, n);
    double cached = validate_ns(v, hdrs, n, CACHED_RUNS);
    report("API key", cold, cached);
    for (size_t i = 0; i < n; i++)
        free(hdrs[i]);
    free(hdrs);
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 2000;
    char dir[] = "/tmp/gh-bench-auth-XXXXXX", db[64], cmd[96];
    struct store *st;
    struct auth_validator *v;
    struct store_user u;
    struct err_info ei;
    char kid[64];
    if (n == 0 || core_init() || !mkdtemp(dir))
        return 1;
    snprintf(db, sizeof(db), "%s/gh.db", dir);
    int rc = store_open(db, &st, &ei);
    if (rc == 0)
        rc = auth_key_rotate(st, master, "ES256", kid, &ei);
    if (rc == 0)
        rc = store_user_add(st, "alice", "alice@example.com", NULL, false, &u, &ei);
    struct store_client c = {.kind = STORE_CLIENT_DCR};
    snprintf(c.client_id, sizeof(c.client_id), "bench-client");
    if (rc == 0)
        rc = store_client_put(st, &c, NULL);
    if (rc == 0)
        rc = auth_validator_new(st, master, ISSUER, 600, &v, &ei);
    if (rc) {
        fprintf(stderr, "auth_validate: set-up: %s\n", ei.msg);
        return 1;
    }
    struct principal who = {.kind = PRINCIPAL_USER, .id = u.id};
    snprintf(who.name, sizeof(who.name), "alice");
    snprintf(who.client_id, sizeof(who.client_id), "bench-client");
    snprintf(who.scope, sizeof(who.scope), "mcp");
    printf("auth_validate: %zu tokens per cold run, %d cached validations (SQLite store in %s)\n",
           n, CACHED_RUNS, dir);
    bench_tokens(st, v, &who, "ES256", n);
    bench_tokens(st, v, &who, "EdDSA", n);
    bench_apikeys(st, v, n / 100 ? n / 100 : 1);
    bench_revocation_seq(st);
    auth_validator_free(v);
    store_close(st);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : 1;
}
