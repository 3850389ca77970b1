/*
 * Does a store lookup stay flat as the store grows? The lookups a request makes, each through
 * the store's own functions (src/store), on a small store and on a large one, on each backend:
 *
 *   small: 10,000 users, 10,000 tokens (revoked access tokens and refresh tokens each),
 *          1,000 sessions
 *   large: 100,000 users, 1,000,000 tokens (each kind), 10,000 sessions
 *
 * Lookups (random keys, one call at a time, µs per call): a user by name (login) and by id (every
 * token check), an access token's revocation (half the keys asked are revoked, half are not), a
 * refresh token with its family and user (a refresh), a browser login session (ephemeral row).
 * The rows are made in bulk with SQL (the revocation counter's trigger is dropped while they are
 * inserted and made again after, so that a million inserts do not bump one row a million times),
 * then ANALYZE. Each scale is a store of its own, and the two are measured in turn, seven rounds,
 * the best round of each kept. SQLite runs on files in a temporary directory; PostgreSQL on the
 * empty databases gh_fresh and gh_newer of the throwaway cluster (tests/unit/store/
 * with-postgres.sh), when GH_TEST_PG_HOST is set.
 *   build/store_scale [calls]                                      (SQLite only; default 5000)
 *   tests/unit/store/with-postgres.sh build/store_scale [calls]    (both)
 * BENCH_SQLITE_PRAGMA="PRAGMA mmap_size = 1073741824" runs the SQLite stores with that pragma
 * (an experiment: the store itself does not set it). Bounded: a fixed number of calls per lookup;
 * the large fill takes about a minute on PostgreSQL.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/rand.h"
#include "store/store-int.h"

enum { L_USER_NAME, L_USER_ID, L_JTI, L_REFRESH, L_SESSION, NLOOKUPS };
static const char *const lookup_names[NLOOKUPS] = {
    "store_user_find (name)", "store_user_get (id)",         "store_jti_revoked",
    "store_refresh_peek",     "store_ephemeral_get (login)",
};

struct scale {
    const char *name;
    long users, tokens, sessions;
};
static const struct scale scales[] = {
    {"small", 10000, 10000, 1000},
    {"large", 100000, 1000000, 10000},
};
#define NSCALES (sizeof(scales) / sizeof(scales[0]))

static void die(const char *what, int rc)
{
    fprintf(stderr, "store_scale: %s failed: %s\n", what, err_str(rc));
    exit(1);
}

static void exec_sql(struct store *st, const char *sql)
{
    int rc = store_exec_sql(st, sql);
    if (rc) {
        fprintf(stderr, "store_scale: %s\n", sql);
        die("bulk SQL", rc);
    }
}

/* Rows lo..hi of `table` (a row per integer i): INSERT INTO table (cols) SELECT exprs(i). */
static void fill(struct store *st, const char *table, const char *cols, const char *exprs, long lo,
                 long hi)
{
    if (lo > hi)
        return;
    char sql[1024];
    if (st->be->dialect == STORE_POSTGRES)
        snprintf(sql, sizeof(sql), "INSERT INTO %s (%s) SELECT %s FROM generate_series(%ld, %ld) i",
                 table, cols, exprs, lo, hi);
    else
        snprintf(sql, sizeof(sql),
                 "INSERT INTO %s (%s) WITH RECURSIVE n(i) AS (SELECT %ld UNION ALL SELECT i + 1 "
                 "FROM n WHERE i < %ld) SELECT %s FROM n",
                 table, cols, lo, hi, exprs);
    exec_sql(st, sql);
}

/* Grow the store from `from` (NULL: empty) to `to`. */
static void grow(struct store *st, const struct scale *from, const struct scale *to)
{
    long u0 = from ? from->users : 0, t0 = from ? from->tokens : 0, s0 = from ? from->sessions : 0;
    int64_t far = store_now() + 30 * 86400;
    char exprs[512];
    bool pg = st->be->dialect == STORE_POSTGRES;
    exec_sql(st, pg ? "DROP TRIGGER jtis_seq ON revoked_jtis" : "DROP TRIGGER jtis_seq");
    exec_sql(st, "BEGIN");
    fill(st, "users", "name, created_at", "'user-' || i, 1", u0 + 1, to->users);
    snprintf(exprs, sizeof(exprs), "'jti-' || i, %lld", (long long)far);
    fill(st, "revoked_jtis", "jti, expires_at", exprs, t0 + 1, to->tokens);
    /* one refresh family per user, its tokens spread over them */
    snprintf(exprs, sizeof(exprs), "'fam-' || i, 'client', i, 'r', 'mcp', 1, %lld", (long long)far);
    fill(st, "families", "id, client_id, user_id, resource, scope, created_at, expires_at", exprs,
         u0 + 1, to->users);
    snprintf(exprs, sizeof(exprs), "'rt-' || i, 'fam-' || (i %% %ld + 1), %lld", to->users,
             (long long)far);
    fill(st, "refresh_tokens", "hash, family_id, expires_at", exprs, t0 + 1, to->tokens);
    snprintf(exprs, sizeof(exprs), "'login', 'sess-' || i, '{\"user_id\":' || i || '}', %lld",
             (long long)far);
    fill(st, "ephemeral", "kind, key_hash, value, expires_at", exprs, s0 + 1, to->sessions);
    exec_sql(st, "COMMIT");
    exec_sql(st, pg ? "CREATE TRIGGER jtis_seq AFTER INSERT ON revoked_jtis FOR EACH ROW "
                      "EXECUTE FUNCTION gh_seq_bump()"
                    : "CREATE TRIGGER jtis_seq AFTER INSERT ON revoked_jtis BEGIN "
                      "UPDATE revocation SET seq = seq + 1 WHERE id = 1; END");
    exec_sql(st, "ANALYZE");
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static long rnd(long n) /* 1..n */
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (long)(rng_state % (uint64_t)n) + 1;
}

static void measure(struct store *st, const struct scale *sc, size_t calls, double us[NLOOKUPS])
{
    for (int l = 0; l < NLOOKUPS; l++) {
        size_t found = 0;
        uint64_t t0 = clock_now_ns();
        for (size_t i = 0; i < calls; i++) {
            char key[64];
            int rc;
            struct store_user u;
            struct store_family f;
            bool revoked = false;
            json_t *v = NULL;
            switch (l) {
            case L_USER_NAME:
                snprintf(key, sizeof(key), "user-%ld", rnd(sc->users));
                rc = store_user_find(st, key, &u);
                break;
            case L_USER_ID:
                rc = store_user_get(st, rnd(sc->users), &u);
                break;
            case L_JTI: /* half of the keys are beyond the revoked ones */
                snprintf(key, sizeof(key), "jti-%ld", rnd(2 * sc->tokens));
                rc = store_jti_revoked(st, key, &revoked);
                break;
            case L_REFRESH:
                snprintf(key, sizeof(key), "rt-%ld", rnd(sc->tokens));
                rc = store_refresh_peek(st, key, &f);
                break;
            default:
                snprintf(key, sizeof(key), "sess-%ld", rnd(sc->sessions));
                rc = store_ephemeral_get(st, "login", key, &v);
                json_decref(v);
                break;
            }
            if (rc)
                die(lookup_names[l], rc);
            found += l == L_JTI ? revoked : 1;
        }
        us[l] = (double)(clock_now_ns() - t0) / 1e3 / (double)calls;
        if (l == L_JTI && (found < calls / 3 || found > 2 * calls / 3)) {
            fprintf(stderr, "store_scale: %zu of %zu jtis revoked; expected about half\n", found,
                    calls);
            exit(1);
        }
    }
}

/* Make one store per scale (`where` holds one location per scale), then measure them in turn,
   ROUNDS times, keeping each lookup's best round: the machine may be shared, and the small and
   the large store are measured side by side rather than minutes apart. */
#define ROUNDS 7
static void run(const char *backend, const char *const where[NSCALES], size_t calls,
                double us[NSCALES][NLOOKUPS])
{
    struct store *st[NSCALES] = {0};
    for (size_t s = 0; s < NSCALES; s++) {
        struct err_info ei = {0};
        int rc = store_open(where[s], &st[s], &ei);
        if (rc) {
            fprintf(stderr, "store_scale: %s\n", ei.msg);
            die("store_open", rc);
        }
        const char *pragma = getenv("BENCH_SQLITE_PRAGMA");
        if (pragma && st[s]->be->dialect == STORE_SQLITE)
            exec_sql(st[s], pragma);
        uint64_t t0 = clock_now_ns();
        grow(st[s], NULL, &scales[s]);
        fprintf(stderr, "store_scale: %s %s store made in %.1f s\n", backend, scales[s].name,
                (double)(clock_now_ns() - t0) / 1e9);
        for (int l = 0; l < NLOOKUPS; l++)
            us[s][l] = 1e30;
    }
    for (int r = 0; r < ROUNDS; r++)
        for (size_t s = 0; s < NSCALES; s++) {
            double got[NLOOKUPS];
            measure(st[s], &scales[s], calls, got);
            for (int l = 0; l < NLOOKUPS; l++)
                if (got[l] < us[s][l])
                    us[s][l] = got[l];
        }
    for (size_t s = 0; s < NSCALES; s++)
        store_close(st[s]);
}

int main(int argc, char **argv)
{
    size_t calls = argc > 1 ? (size_t)strtoul(argv[1], NULL, 10) : 5000;
    if (calls < 10 || core_init() != 0)
        return 2;
    char dir[] = "/tmp/gh-store-scale-XXXXXX", paths[NSCALES][64], cmd[96];
    if (mkdtemp(dir) == NULL)
        return 2;
    const char *where[NSCALES];
    for (size_t s = 0; s < NSCALES; s++) {
        snprintf(paths[s], sizeof(paths[s]), "%s/%s.sqlite", dir, scales[s].name);
        where[s] = paths[s];
    }
    double sq[NSCALES][NLOOKUPS], pg[NSCALES][NLOOKUPS];
    run("sqlite", where, calls, sq);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "store_scale: could not remove %s\n", dir);
    const char *host = getenv("GH_TEST_PG_HOST"), *port = getenv("GH_TEST_PG_PORT");
    bool have_pg = host && port;
    if (have_pg) {
        /* two empty databases of the throwaway cluster */
        static const char *const dbs[NSCALES] = {"gh_fresh", "gh_newer"};
        char locs[NSCALES][512];
        for (size_t s = 0; s < NSCALES; s++) {
            snprintf(locs[s], sizeof(locs[s]), "postgresql:///%s?host=%s&port=%s&user=postgres",
                     dbs[s], host, port);
            where[s] = locs[s];
        }
        run("postgres", where, calls, pg);
    }
    printf("store lookups, µs per call (%zu random keys each, one at a time, best of %d rounds)\n",
           calls, ROUNDS);
    for (size_t s = 0; s < NSCALES; s++)
        printf("  %s: %ld users, %ld tokens (revoked and refresh, each), %ld sessions\n",
               scales[s].name, scales[s].users, scales[s].tokens, scales[s].sessions);
    printf("%-28s %10s %10s %6s %10s %10s %6s\n", "lookup", "sqlite sm", "sqlite lg", "lg/sm",
           "pg small", "pg large", "lg/sm");
    for (int l = 0; l < NLOOKUPS; l++) {
        printf("%-28s %10.2f %10.2f %5.2fx", lookup_names[l], sq[0][l], sq[1][l],
               sq[1][l] / sq[0][l]);
        if (have_pg)
            printf(" %10.2f %10.2f %5.2fx\n", pg[0][l], pg[1][l], pg[1][l] / pg[0][l]);
        else
            printf(" %10s %10s %6s\n", "-", "-", "-");
    }
    return 0;
}
