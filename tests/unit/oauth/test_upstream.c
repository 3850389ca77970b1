/*
 * oauth/upstream: the pieces of the upstream OAuth client that need no network: reading a
 * WWW-Authenticate challenge, the protected-resource and authorization-server metadata URLs in
 * the MCP authorization specification's order, which `resource` covers a server's URL, and the
 * start link (sealed, bound to its server; the flow itself runs against real servers in
 * tests/integration/upstream_oauth.test.mjs and the conformance suite's auth scenarios).
 */
#include "auth/auth.h"
#include "core/rand.h"
#include "oauth/oauth-int.h"
#include "upstream/fetch.h"
#include "test.h"

static void test_challenge(void)
{
    char rm[1024], scope[256], err[64];
    fetch_bearer_challenge(
        "Bearer resource_metadata=\"https://r.example/.well-known/"
        "oauth-protected-resource/mcp\", scope=\"a b\", error=insufficient_scope",
        rm, sizeof(rm), scope, sizeof(scope), err, sizeof(err));
    CHECK_STR(rm, "https://r.example/.well-known/oauth-protected-resource/mcp");
    CHECK_STR(scope, "a b");
    CHECK_STR(err, "insufficient_scope");
    fetch_bearer_challenge("bearer realm=\"x\",scope=read", rm, sizeof(rm), scope, sizeof(scope),
                           err, sizeof(err));
    CHECK_STR(rm, "");
    CHECK_STR(scope, "read");
    /* another scheme's parameters are not a Bearer challenge's */
    fetch_bearer_challenge("Basic realm=\"x\", scope=\"a\"", rm, sizeof(rm), scope, sizeof(scope),
                           err, sizeof(err));
    CHECK_STR(scope, "");
    fetch_bearer_challenge(NULL, rm, sizeof(rm), scope, sizeof(scope), err, sizeof(err));
    CHECK_STR(rm, "");
    /* an escaped quote inside a quoted value */
    fetch_bearer_challenge("Bearer error_description=\"a \\\"b\\\"\", scope=\"s\"", rm, sizeof(rm),
                           scope, sizeof(scope), err, sizeof(err));
    CHECK_STR(scope, "s");
}

static void test_metadata_urls(void)
{
    char u[3][1024];
    CHECK_INT(oauth_upstream_prm_urls("https://r.example/public/mcp/", u), 2);
    CHECK_STR(u[0], "https://r.example/.well-known/oauth-protected-resource/public/mcp");
    CHECK_STR(u[1], "https://r.example/.well-known/oauth-protected-resource");
    CHECK_INT(oauth_upstream_prm_urls("http://127.0.0.1:8080", u), 1);
    CHECK_STR(u[0], "http://127.0.0.1:8080/.well-known/oauth-protected-resource");
    CHECK_INT(oauth_upstream_prm_urls("ftp://x/y", u), 0);
    CHECK_INT(oauth_upstream_asm_urls("https://as.example/tenant1", u), 3);
    CHECK_STR(u[0], "https://as.example/.well-known/oauth-authorization-server/tenant1");
    CHECK_STR(u[1], "https://as.example/.well-known/openid-configuration/tenant1");
    CHECK_STR(u[2], "https://as.example/tenant1/.well-known/openid-configuration");
    CHECK_INT(oauth_upstream_asm_urls("https://as.example", u), 2);
    CHECK_STR(u[0], "https://as.example/.well-known/oauth-authorization-server");
    CHECK_STR(u[1], "https://as.example/.well-known/openid-configuration");
}

static void test_resource_covers(void)
{
    CHECK(oauth_upstream_resource_covers("https://r.example/mcp", "https://r.example/mcp"));
    CHECK(oauth_upstream_resource_covers("https://r.example/mcp/", "https://r.example/mcp"));
    CHECK(oauth_upstream_resource_covers("https://r.example", "https://r.example/mcp"));
    CHECK(oauth_upstream_resource_covers("https://r.example/", "https://r.example/a/mcp"));
    /* another server, a sibling path, a longer one, a bare scheme, a fragment */
    CHECK(!oauth_upstream_resource_covers("https://evil.example/mcp", "https://r.example/mcp"));
    CHECK(!oauth_upstream_resource_covers("https://r.example/mc", "https://r.example/mcp"));
    CHECK(!oauth_upstream_resource_covers("https://r.example/mcp/x", "https://r.example/mcp"));
    CHECK(!oauth_upstream_resource_covers("https://r.example.evil", "https://r.example/mcp"));
    CHECK(!oauth_upstream_resource_covers("https://", "https://r.example/mcp"));
    CHECK(!oauth_upstream_resource_covers("https://r.example/mcp#x", "https://r.example/mcp"));
}

static void test_start_url(void)
{
    CHECK_INT(core_init(), 0);
    unsigned char master[AUTH_MASTER_KEY_LEN];
    rand_bytes(master, sizeof(master));
    char url[4096];
    CHECK_INT(oauth_upstream_start_url(master, "https://gw.example", 42, "linear", NULL, 1000, url,
                                       sizeof(url)),
              0);
    CHECK(strncmp(url, "https://gw.example/oauth/upstream/linear/start?t=", 49) == 0);
    CHECK(strstr(url, "42") == NULL || strstr(url + 49, "linear") == NULL); /* sealed */
    char small[40];
    CHECK_INT(oauth_upstream_start_url(master, "https://gw.example", 42, "linear", NULL, 1000,
                                       small, sizeof(small)),
              ERR_LIMIT);
}

TEST_MAIN(TEST(test_challenge), TEST(test_metadata_urls), TEST(test_resource_covers),
          TEST(test_start_url))
