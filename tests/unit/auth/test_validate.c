/*
 * The validator against a real SQLite store: the Authorization header's syntax, every claim
 * check (typ, iss, aud, exp, nbf, iat), revocation through the store seen from another
 * connection (jti, user, disabled user, client), scopes, API keys, key rotation while tokens
 * are in flight, and the cache (hits, refusals remembered, flush on the revocation sequence).
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auth/auth-int.h"
#include "core/rand.h"
#include "test.h"

#define ISSUER "https://gw.example"
#define RESOURCE "https://gw.example/mcp"

static const unsigned char master[AUTH_MASTER_KEY_LEN] = "fedcba9876543210fedcba987654321";

struct fixture {
    char dir[64], db[96];
    struct store *st, *cli; /* the worker's connection and another one, like the CLI's */
    struct auth_validator *v;
    struct store_user alice;
    struct principal p;
};

static void setup(struct fixture *f, const char *alg)
{
    struct err_info ei = {0};
    char kid[64];
    memset(f, 0, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/gh-auth-XXXXXX");
    CHECK(mkdtemp(f->dir) != NULL);
    snprintf(f->db, sizeof(f->db), "%s/gh.db", f->dir);
    CHECK_INT(store_open(f->db, &f->st, &ei), 0);
    CHECK_INT(store_open(f->db, &f->cli, &ei), 0);
    CHECK_INT(auth_key_rotate(f->cli, master, alg, kid, &ei), 0);
    CHECK_INT(store_user_add(f->cli, "alice", "alice@example.com", NULL, false, &f->alice, &ei), 0);
    struct store_client c = {.kind = STORE_CLIENT_DCR};
    snprintf(c.client_id, sizeof(c.client_id), "client-1");
    CHECK_INT(store_client_put(f->cli, &c, NULL), 0);
    CHECK_INT(auth_validator_new(f->st, master, ISSUER, 600, &f->v, &ei), 0);
    f->p.kind = PRINCIPAL_USER;
    f->p.id = f->alice.id;
    snprintf(f->p.name, sizeof(f->p.name), "alice");
    snprintf(f->p.client_id, sizeof(f->p.client_id), "client-1");
    snprintf(f->p.scope, sizeof(f->p.scope), "openid mcp");
}

static void teardown(struct fixture *f)
{
    char cmd[128];
    auth_validator_free(f->v);
    store_close(f->st);
    store_close(f->cli);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    CHECK_INT(system(cmd), 0);
}

static char *issue(struct fixture *f)
{
    char *tok = NULL;
    CHECK_INT(auth_issue_access(auth_validator_keyring(f->v), ISSUER, &f->p, RESOURCE, 600, &tok),
              0);
    return tok;
}

static enum auth_verdict check(struct fixture *f, const char *tok, const char *resource,
                               const char *scope, struct principal *out, struct err_info *ei)
{
    char h[9000];
    snprintf(h, sizeof(h), "Bearer %s", tok);
    memset(ei, 0, sizeof(*ei));
    return auth_validate(f->v, h, strlen(h), resource, scope, out, ei);
}

/* A token with these claims (JSON text) and typ, signed by the validator's current key. */
static char *forge(struct fixture *f, const char *typ, const char *claims)
{
    const struct auth_keyring *kr = auth_validator_keyring(f->v);
    char header[256];
    static char tok[4096];
    unsigned char sig[AUTH_SIG_MAX];
    size_t siglen, n;
    snprintf(header, sizeof(header), "{\"alg\":\"%s\",\"kid\":\"%s\",\"typ\":\"%s\"}",
             auth_alg_name(kr->current->alg), kr->current->kid, typ);
    b64url_encode(tok, sizeof(tok), header, strlen(header));
    n = strlen(tok);
    tok[n++] = '.';
    b64url_encode(tok + n, sizeof(tok) - n, claims, strlen(claims));
    n = strlen(tok);
    CHECK_INT(auth_sig_sign(kr->current->pkey, kr->current->alg, tok, n, sig, &siglen), 0);
    tok[n++] = '.';
    b64url_encode(tok + n, sizeof(tok) - n, sig, siglen);
    return tok;
}

static char *claims_text(struct fixture *f, const char *iss, const char *aud, long long exp,
                         long long nbf, long long iat)
{
    static char c[1024];
    snprintf(c, sizeof(c),
             "{\"iss\":\"%s\",\"aud\":%s,\"sub\":\"user:%lld\",\"exp\":%lld,\"nbf\":%lld,"
             "\"iat\":%lld,\"jti\":\"j1\",\"client_id\":\"client-1\",\"scope\":\"mcp\"}",
             iss, aud, (long long)f->alice.id, exp, nbf, iat);
    return c;
}

static void test_header_syntax(void)
{
    struct fixture f;
    struct principal p;
    struct err_info ei;
    setup(&f, "ES256");
    char *tok = issue(&f), h[4096];
    CHECK_INT(auth_validate(f.v, NULL, 0, RESOURCE, "mcp", &p, &ei), AUTH_MISSING);
    CHECK_INT(auth_validate(f.v, "", 0, RESOURCE, "mcp", &p, &ei), AUTH_MISSING);
    snprintf(h, sizeof(h), "bEaReR %s", tok);
    CHECK_INT(auth_validate(f.v, h, strlen(h), RESOURCE, "mcp", &p, &ei), AUTH_OK);
    snprintf(h, sizeof(h), "Basic %s", tok);
    CHECK_INT(auth_validate(f.v, h, strlen(h), RESOURCE, "mcp", &p, &ei), AUTH_INVALID);
    CHECK_STR(ei.msg,
              "the Authorization scheme \"Basic\" is not accepted; send \"Bearer <token>\"");
    snprintf(h, sizeof(h), "Bearer  %s", tok);
    CHECK_INT(auth_validate(f.v, h, strlen(h), RESOURCE, "mcp", &p, &ei), AUTH_INVALID);
    snprintf(h, sizeof(h), "Bearer %s %s", tok, tok);
    CHECK_INT(auth_validate(f.v, h, strlen(h), RESOURCE, "mcp", &p, &ei), AUTH_INVALID);
    CHECK_CONTAINS(ei.msg, "more than one bearer token");
    CHECK_INT(auth_validate(f.v, "Bearer", 6, RESOURCE, "mcp", &p, &ei), AUTH_INVALID);
    CHECK_INT(auth_validate(f.v, "Bearer ", 7, RESOURCE, "mcp", &p, &ei), AUTH_INVALID);
    CHECK_CONTAINS(ei.msg, "no token after Bearer");
    CHECK_INT(check(&f, "not-a-jwt", RESOURCE, "mcp", &p, &ei), AUTH_INVALID);
    CHECK_CONTAINS(ei.msg, "not a JWT");
    free(tok);
    teardown(&f);
}

static void test_valid_and_cached(const char *alg)
{
    struct fixture f;
    struct principal p;
    struct err_info ei;
    setup(&f, alg);
    char *tok = issue(&f);
    CHECK_INT(check(&f, tok, RESOURCE, "mcp", &p, &ei), AUTH_OK);
    CHECK_INT(p.kind, PRINCIPAL_USER);
    CHECK_INT(p.id, f.alice.id);
    CHECK_STR(p.name, "alice");
    CHECK_STR(p.client_id, "client-1");
    CHECK_STR(p.scope, "openid mcp");
    CHECK_STR(p.credential_id, f.p.credential_id);
    CHECK(p.expires_at > time(NULL));
    struct principal q;
    CHECK_INT(check(&f, tok, RESOURCE, "mcp", &q, &ei), AUTH_OK); /* from the cache */
    CHECK(memcmp(&p, &q, sizeof(p)) == 0);
    CHECK_INT(check(&f, tok, RESOURCE, "admin", &q, &ei), AUTH_INSUFFICIENT_SCOPE);
    CHECK_STR(ei.msg, "scope \"admin\" is required");
    CHECK_INT(check(&f, tok, RESOURCE, NULL, &q, &ei), AUTH_OK);
    /* claims of RFC 9068 */
    json_t *h, *c;
    CHECK_INT(auth_jwt_decode(tok, strlen(tok), &h, &c, &ei), 0);
    const char *names[] = {"iss", "sub", "aud",       "exp",   "iat",
                           "nbf", "jti", "client_id", "scope", "name"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        CHECK(json_object_get(c, names[i]) != NULL);
    char sub[32];
    snprintf(sub, sizeof(sub), "user:%lld", (long long)f.alice.id);
    CHECK_STR(json_string_value(json_object_get(c, "sub")), sub);
    CHECK_STR(json_string_value(json_object_get(c, "aud")), RESOURCE);
    json_decref(h);
    json_decref(c);
    free(tok);
    teardown(&f);
}

static void test_valid_es256(void)
{
    test_valid_and_cached("ES256");
}

static void test_valid_eddsa(void)
{
    test_valid_and_cached("EdDSA");
}

static void test_claims(void)
{
    struct fixture f;
    struct principal p;
    struct err_info ei;
    long long now = time(NULL);
    setup(&f, "ES256");
    char *tok = issue(&f);
    CHECK_INT(check(&f, tok, RESOURCE "/a", "mcp", &p, &ei), AUTH_INVALID);
    CHECK_STR(ei.msg,
              "the token's audience is https://gw.example/mcp, not https://gw.example/mcp/a");
    CHECK_INT(check(&f, tok, RESOURCE "/a", "mcp", &p, &ei), AUTH_INVALID); /* cached refusal */
    CHECK_CONTAINS(ei.msg, "audience");
    CHECK_INT(check(&f, tok, RESOURCE, "mcp", &p, &ei), AUTH_OK); /* another resource */
    free(tok);
    const char *aud = "\"" RESOURCE "\"";
    CHECK_INT(check(&f, forge(&f, "at+jwt", claims_text(&f, ISSUER, aud, now + 60, now, now)),
                    RESOURCE, "mcp", &p, &ei),
              AUTH_OK);
    CHECK_INT(check(&f,
                    forge(&f, "at+jwt",
                          claims_text(&f, ISSUER, "[\"x\",\"" RESOURCE "\"]", now + 60, now, now)),
                    RESOURCE, "mcp", &p, &ei),
              AUTH_OK);
    CHECK_INT(check(&f, forge(&f, "at+jwt", claims_text(&f, ISSUER, "[\"x\"]", now + 60, now, now)),
                    RESOURCE, "mcp", &p, &ei),
              AUTH_INVALID);
    CHECK_INT(check(&f, forge(&f, "JWT", claims_text(&f, ISSUER, aud, now + 60, now, now)),
                    RESOURCE, "mcp", &p, &ei),
              AUTH_INVALID);
    CHECK_CONTAINS(ei.msg, "not an access token");
    CHECK_INT(check(&f,
                    forge(&f, "at+jwt", claims_text(&f, "https://evil", aud, now + 60, now, now)),
                    RESOURCE, "mcp", &p, &ei),
              AUTH_INVALID);
    CHECK_STR(ei.msg, "the token's issuer is https://evil, not https://gw.example");
    CHECK_INT(check(&f, forge(&f, "at+jwt", claims_text(&f, ISSUER, aud, now - 31, now, now)),
                    RESOURCE, "mcp", &p, &ei),
              AUTH_INVALID);
    CHECK_CONTAINS(ei.msg, "the token has expired (exp 20");
    /* within the 30 s leeway */
    CHECK_INT(check(&f, forge(&f, "at+jwt", claims_text(&f, ISSUER, aud, now - 10, now, now)),
                    RESOURCE, "mcp", &p, &ei),
              AUTH_OK);
    CHECK_INT(check(&f,
                    forge(&f, "at+jwt", claims_text(&f, ISSUER, aud, now + 600, now + 100, now)),
                    RESOURCE, "mcp", &p, &ei),
              AUTH_INVALID);
    CHECK_CONTAINS(ei.msg, "not valid yet (nbf 20");
    CHECK_INT(check(&f,
                    forge(&f, "at+jwt", claims_text(&f, ISSUER, aud, now + 600, now, now + 100)),
                    RESOURCE, "mcp", &p, &ei),
              AUTH_INVALID);
    CHECK_CONTAINS(ei.msg, "issued in the future");
    char noiat[512];
    snprintf(noiat, sizeof(noiat),
             "{\"iss\":\"%s\",\"aud\":%s,\"sub\":\"user:1\",\"exp\":%lld,\"jti\":\"j\","
             "\"client_id\":\"client-1\"}",
             ISSUER, aud, now + 60);
    CHECK_INT(check(&f, forge(&f, "at+jwt", noiat), RESOURCE, "mcp", &p, &ei), AUTH_INVALID);
    CHECK_CONTAINS(ei.msg, "lacks a valid exp or iat");
    const char *bad_times[] = {"1e300", "-1", "\"2030-01-01\"", "9223372036854775807"};
    for (size_t i = 0; i < sizeof(bad_times) / sizeof(bad_times[0]); i++) {
        snprintf(noiat, sizeof(noiat),
                 "{\"iss\":\"%s\",\"aud\":%s,\"sub\":\"user:1\",\"exp\":%s,\"iat\":%lld,"
                 "\"jti\":\"j\",\"client_id\":\"client-1\"}",
                 ISSUER, aud, bad_times[i], now);
        CHECK_INT(check(&f, forge(&f, "at+jwt", noiat), RESOURCE, "mcp", &p, &ei), AUTH_INVALID);
        CHECK_CONTAINS(ei.msg, "lacks a valid exp or iat");
    }
    teardown(&f);
}

/* Revocations made through another connection (the CLI's) take effect on the next request. */
static void test_revocation(void)
{
    struct fixture f;
    struct principal p;
    struct err_info ei;
    setup(&f, "EdDSA");
    char *t1 = issue(&f), *t2 = issue(&f);
    CHECK_INT(check(&f, t1, RESOURCE, "mcp", &p, &ei), AUTH_OK);
    CHECK_INT(check(&f, t2, RESOURCE, "mcp", &p, &ei), AUTH_OK);
    CHECK_INT(store_jti_revoke(f.cli, p.credential_id, p.expires_at), 0);
    CHECK_INT(check(&f, t2, RESOURCE, "mcp", &p, &ei), AUTH_INVALID);
    CHECK_STR(ei.msg, "the token was revoked");
    CHECK_INT(check(&f, t1, RESOURCE, "mcp", &p, &ei), AUTH_OK);
    /* disabled user */
    CHECK_INT(store_user_set_disabled(f.cli, f.alice.id, true), 0);
    CHECK_INT(check(&f, t1, RESOURCE, "mcp", &p, &ei), AUTH_INVALID);
    CHECK_STR(ei.msg, "user alice is disabled");
    CHECK_INT(store_user_set_disabled(f.cli, f.alice.id, false), 0);
    CHECK_INT(check(&f, t1, RESOURCE, "mcp", &p, &ei), AUTH_OK);
    /* revoked client */
    CHECK_INT(store_client_revoke(f.cli, "client-1"), 0);
    CHECK_INT(check(&f, t1, RESOURCE, "mcp", &p, &ei), AUTH_INVALID);
    CHECK_STR(ei.msg, "the token's client was revoked");
    free(t1);
    free(t2);
    teardown(&f);
}

static void test_revoke_user(void)
{
    struct fixture f;
    struct principal p;
    struct err_info ei;
    long long now = time(NULL);
    setup(&f, "ES256");
    const char *aud = "\"" RESOURCE "\"";
    char *old =
        strdup(forge(&f, "at+jwt", claims_text(&f, ISSUER, aud, now + 60, now - 5, now - 5)));
    CHECK_INT(check(&f, old, RESOURCE, "mcp", &p, &ei), AUTH_OK);
    CHECK_INT(store_revoke_user(f.cli, f.alice.id), 0);
    CHECK_INT(check(&f, old, RESOURCE, "mcp", &p, &ei), AUTH_INVALID);
    CHECK_CONTAINS(ei.msg, "the token was revoked (every token of user alice issued before 20");
    CHECK(strstr(ei.msg, old) == NULL);
    free(old);
    teardown(&f);
}

/* A rotation while tokens are out: the old ones keep verifying, new ones carry the new kid. */
static void test_rotation(void)
{
    struct fixture f;
    struct principal p;
    struct err_info ei;
    char kid[64];
    setup(&f, "ES256");
    char *old = issue(&f);
    char old_kid[64];
    snprintf(old_kid, sizeof(old_kid), "%s", auth_validator_keyring(f.v)->current->kid);
    CHECK_INT(auth_key_rotate(f.cli, master, "EdDSA", kid, &ei), 0);
    CHECK_INT(check(&f, old, RESOURCE, "mcp", &p, &ei), AUTH_OK);
    const struct auth_keyring *kr = auth_validator_keyring(f.v);
    CHECK_STR(kr->current->kid, kid);
    CHECK(strcmp(kid, old_kid) != 0);
    json_t *jwks = auth_keyring_jwks(kr);
    CHECK_INT(json_array_size(json_object_get(jwks, "keys")), 2);
    json_decref(jwks);
    char *new = issue(&f);
    CHECK_INT(check(&f, new, RESOURCE, "mcp", &p, &ei), AUTH_OK);
    json_t *h, *c;
    auth_jwt_decode(new, strlen(new), &h, &c, &ei);
    CHECK_STR(json_string_value(json_object_get(h, "kid")), kid);
    CHECK_STR(json_string_value(json_object_get(h, "alg")), "EdDSA");
    json_decref(h);
    json_decref(c);
    /* a validator with a zero token lifetime still verifies a key retired within the leeway */
    struct auth_validator *v2;
    CHECK_INT(auth_validator_new(f.st, master, ISSUER, 0, &v2, &ei), 0);
    CHECK_INT(auth_validator_keyring(v2)->n, 2);
    auth_validator_free(v2);
    CHECK_INT(store_key_delete_retired_before(f.cli, time(NULL) + 1), 0);
    CHECK_INT(check(&f, old, RESOURCE, "mcp", &p, &ei), AUTH_INVALID);
    CHECK_CONTAINS(ei.msg, "no key with kid");
    CHECK_INT(check(&f, new, RESOURCE, "mcp", &p, &ei), AUTH_OK);
    free(old);
    free(new);
    teardown(&f);
}

static void test_forged_cached(void)
{
    struct fixture f;
    struct principal p;
    struct err_info ei;
    setup(&f, "ES256");
    char *tok = issue(&f);
    size_t n = strlen(tok);
    tok[n - 5] = tok[n - 5] == 'A' ? 'B' : 'A';
    CHECK_INT(check(&f, tok, RESOURCE, "mcp", &p, &ei), AUTH_INVALID);
    CHECK_STR(ei.msg, "the token signature does not verify");
    CHECK_INT(check(&f, tok, RESOURCE, "mcp", &p, &ei), AUTH_INVALID);
    CHECK_STR(ei.msg, "the token signature does not verify");
    free(tok);
    teardown(&f);
}

static void test_apikey(void)
{
    struct fixture f;
    struct principal p;
    struct err_info ei;
    struct store_account acct;
    char key[STORE_APIKEY_SIZE], id[32];
    setup(&f, "ES256");
    CHECK_INT(store_account_add(f.cli, "ci-bot", &acct, &ei), 0);
    CHECK_INT(store_apikey_create(f.cli, acct.id, "ci", key, id), 0);
    CHECK_INT(check(&f, key, RESOURCE, "mcp", &p, &ei), AUTH_OK);
    CHECK_INT(p.kind, PRINCIPAL_SERVICE);
    CHECK_INT(p.id, acct.id);
    CHECK_STR(p.name, "ci-bot");
    CHECK_STR(p.credential_id, id);
    CHECK_STR(p.client_id, "");
    CHECK_INT(check(&f, key, RESOURCE "/other", "mcp", &p, &ei), AUTH_OK); /* cached */
    char wrong[STORE_APIKEY_SIZE];
    snprintf(wrong, sizeof(wrong), "%s", key);
    wrong[strlen(wrong) - 1] = wrong[strlen(wrong) - 1] == 'a' ? 'b' : 'a';
    CHECK_INT(check(&f, wrong, RESOURCE, "mcp", &p, &ei), AUTH_INVALID);
    CHECK_CONTAINS(ei.msg, "the API key is not valid");
    CHECK(strstr(ei.msg, id) == NULL);
    CHECK_INT(store_apikey_revoke(f.cli, id), 0);
    CHECK_INT(check(&f, key, RESOURCE, "mcp", &p, &ei), AUTH_INVALID);
    teardown(&f);
}

TEST_MAIN(TEST(test_header_syntax), TEST(test_valid_es256), TEST(test_valid_eddsa),
          TEST(test_claims), TEST(test_revocation), TEST(test_revoke_user), TEST(test_rotation),
          TEST(test_forged_cached), TEST(test_apikey))
