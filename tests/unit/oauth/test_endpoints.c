/*
 * oauth: the back-channel endpoints' refusals, one by one, through oauth_handle on a loopback
 * request (loopback.h): the token endpoint's client authentication and its three grants, the
 * revocation and introspection endpoints, dynamic registration, and the secret check on the
 * thread pool (verify.c), including a request that ends while its secret is checked. Each
 * refusal must carry its RFC 6749 error code and a description that names the cause.
 */
#include "loopback.h"
#include "core/rand.h"
#include "core/secret.h"
#include "store/store-int.h"

#include <sodium.h>

#define REDIRECT "http://127.0.0.1:9/cb"
#define RESOURCE LB_ISSUER "/mcp"
#define VERIFIER "verifier-0123456789-0123456789-0123456789-abcdef"
#define SECRET "conf-secret-0123456789"

static struct lb_env env;
static struct store_user alice;

static void put_client(const char *id, bool confidential, const char *grants_json)
{
    struct store_client c = {.kind = STORE_CLIENT_DCR, .confidential = confidential};
    snprintf(c.client_id, sizeof(c.client_id), "%s", id);
    char meta[512];
    snprintf(meta, sizeof(meta),
             "{\"redirect_uris\":[\"" REDIRECT "\"],\"token_endpoint_auth_method\":\"%s\","
             "\"grant_types\":%s}",
             confidential ? "client_secret_basic" : "none", grants_json);
    c.metadata = json_loads(meta, 0, NULL);
    CHECK(c.metadata != NULL);
    CHECK_INT(store_client_put(env.st, &c, confidential ? SECRET : NULL), 0);
    json_decref(c.metadata);
}

static void put_code(const char *code, const char *client_id)
{
    struct store_code c = {.user_id = alice.id, .expires_at = store_now() + 60};
    char h[TOKEN_HASH_SIZE];
    snprintf(c.client_id, sizeof(c.client_id), "%s", client_id);
    snprintf(c.redirect_uri, sizeof(c.redirect_uri), REDIRECT);
    token_hash(VERIFIER, strlen(VERIFIER), c.code_challenge);
    snprintf(c.resource, sizeof(c.resource), RESOURCE);
    snprintf(c.scope, sizeof(c.scope), "mcp");
    token_hash(code, strlen(code), h);
    CHECK_INT(store_code_put(env.st, h, &c), 0);
}

/* A refresh grant of alice for client_id whose current token is `rt`. */
static void put_refresh(const char *rt, const char *client_id, struct store_family *f)
{
    memset(f, 0, sizeof(*f));
    f->user_id = alice.id;
    f->expires_at = store_now() + 3600;
    snprintf(f->client_id, sizeof(f->client_id), "%s", client_id);
    snprintf(f->resource, sizeof(f->resource), RESOURCE);
    snprintf(f->scope, sizeof(f->scope), "mcp");
    CHECK_INT(store_family_new(env.st, f), 0);
    char h[TOKEN_HASH_SIZE];
    token_hash(rt, strlen(rt), h);
    CHECK_INT(store_refresh_put(env.st, f->id, h, f->expires_at), 0);
}

static const char *basic(const char *id, const char *secret)
{
    static char out[256];
    char raw[160];
    snprintf(raw, sizeof(raw), "%s:%s", id, secret);
    memcpy(out, "Basic ", 6);
    sodium_bin2base64(out + 6, sizeof(out) - 6, (const unsigned char *)raw, strlen(raw),
                      sodium_base64_VARIANT_ORIGINAL);
    return out;
}

static void test_setup(void)
{
    lb_env_init(&env,
                "  scopes: [mcp, admin]\n  required_scope: mcp\n"
                "  clients:\n    - client_id: rs\n      redirect_uris: [https://rs.example/cb]\n"
                "      secret_file: $DIR/rs.secret\n      introspect: true\n");
    struct err_info ei = {0};
    CHECK_INT(store_user_add(env.st, "alice", "alice@example.com", NULL, false, &alice, &ei), 0);
    put_client("pub", false, "[\"authorization_code\",\"refresh_token\"]");
    put_client("pub2", false, "[\"authorization_code\",\"refresh_token\"]");
    put_client("conf", true, "[\"authorization_code\",\"refresh_token\"]");
    put_client("coderonly", false, "[\"authorization_code\"]");
}

static void test_client_auth(void)
{
    struct lb_req *r;
    r = lb_post_form(&env, "/oauth/token", "grant_type=authorization_code", NULL);
    CHECK_OAUTH_ERROR(r, 401, "invalid_client", "client_id is required");
    lb_free(r);
    r = lb_post_form(&env, "/oauth/token", "grant_type=authorization_code&client_id=nobody", NULL);
    CHECK_OAUTH_ERROR(r, 401, "invalid_client", "unknown client_id \"nobody\"");
    lb_free(r);
    /* an unknown client with a secret costs the same argon2id (verify.c), then the same answer */
    r = lb_post_form(&env, "/oauth/token", "grant_type=authorization_code", "authorization",
                     basic("nobody", "x"), NULL);
    CHECK_OAUTH_ERROR(r, 401, "invalid_client", "unknown client_id \"nobody\"");
    lb_free(r);
    r = lb_post_form(&env, "/oauth/token", "grant_type=authorization_code&client_id=conf", NULL);
    CHECK_OAUTH_ERROR(r, 401, "invalid_client", "is confidential");
    lb_free(r);
    r = lb_post_form(&env, "/oauth/token", "grant_type=authorization_code", "authorization",
                     basic("conf", "wrong"), NULL);
    CHECK_OAUTH_ERROR(r, 401, "invalid_client", "wrong secret");
    CHECK(strstr(r->body, "wrong\"") == NULL); /* the presented secret is not echoed */
    lb_free(r);
    r = lb_post_form(&env, "/oauth/token",
                     "grant_type=authorization_code&client_id=pub&client_secret=x", NULL);
    CHECK_OAUTH_ERROR(r, 401, "invalid_client", "is public and has no secret");
    lb_free(r);
    r = lb_post_form(&env, "/oauth/token", "grant_type=authorization_code&client_secret=x",
                     "authorization", basic("conf", SECRET), NULL);
    CHECK_OAUTH_ERROR(r, 400, "invalid_request", "authenticated twice");
    lb_free(r);
    r = lb_post_form(&env, "/oauth/token", "grant_type=authorization_code&client_id=pub",
                     "authorization", basic("conf", SECRET), NULL);
    CHECK_OAUTH_ERROR(r, 400, "invalid_request", "differs from the one in the Basic");
    lb_free(r);
    r = lb_post_form(&env, "/oauth/token", "grant_type=x", "authorization", "Bearer abc", NULL);
    CHECK_OAUTH_ERROR(r, 401, "invalid_client", "only Basic client authentication");
    lb_free(r);
    /* a form that is no form */
    r = lb_post_form(&env, "/oauth/token", "grant_type=a&grant_type=b&client_id=pub", NULL);
    CHECK_INT(r->status, 400);
    CHECK_CONTAINS(r->body, "grant_type");
    lb_free(r);
    struct lb_req *j = lb_new(&env, "POST", "/oauth/token", "application/json", "{}", NULL);
    lb_send(j);
    CHECK_OAUTH_ERROR(j, 400, "invalid_request", "application/x-www-form-urlencoded");
    lb_free(j);
    /* the right secret passes to the grant */
    r = lb_post_form(&env, "/oauth/token", "grant_type=password", "authorization",
                     basic("conf", SECRET), NULL);
    CHECK_OAUTH_ERROR(r, 400, "unsupported_grant_type", "password is not supported");
    lb_free(r);
}

static void test_grant_code(void)
{
    struct lb_req *r;
    r = lb_post_form(&env, "/oauth/token", "client_id=pub", NULL);
    CHECK_OAUTH_ERROR(r, 400, "invalid_request", "grant_type is required");
    lb_free(r);
    r = lb_post_form(&env, "/oauth/token",
                     "grant_type=refresh_token&client_id=coderonly&"
                     "refresh_token=x",
                     NULL);
    CHECK_OAUTH_ERROR(r, 400, "unauthorized_client", "did not register the refresh_token grant");
    lb_free(r);
    r = lb_post_form(&env, "/oauth/token", "grant_type=authorization_code&client_id=pub", NULL);
    CHECK_OAUTH_ERROR(r, 400, "invalid_request", "code is required");
    lb_free(r);
    r = lb_post_form(&env, "/oauth/token", "grant_type=authorization_code&client_id=pub&code=c",
                     NULL);
    CHECK_OAUTH_ERROR(r, 400, "invalid_request", "code_verifier is required (PKCE)");
    lb_free(r);
    r = lb_post_form(&env, "/oauth/token",
                     "grant_type=authorization_code&client_id=pub&code=c&code_verifier=" VERIFIER,
                     NULL);
    CHECK_OAUTH_ERROR(r, 400, "invalid_request", "redirect_uri is required");
    lb_free(r);
#define CODE_FORM(code, client, uri, verifier)                                                     \
    "grant_type=authorization_code&client_id=" client "&code=" code "&redirect_uri=" uri           \
    "&code_verifier=" verifier
    r = lb_post_form(&env, "/oauth/token", CODE_FORM("nope", "pub", REDIRECT, VERIFIER), NULL);
    CHECK_OAUTH_ERROR(r, 400, "invalid_grant", "unknown or expired");
    lb_free(r);
    put_code("code-other", "pub");
    r = lb_post_form(&env, "/oauth/token", CODE_FORM("code-other", "pub2", REDIRECT, VERIFIER),
                     NULL);
    CHECK_OAUTH_ERROR(r, 400, "invalid_grant", "issued to another client");
    lb_free(r);
    put_code("code-uri", "pub");
    r = lb_post_form(&env, "/oauth/token",
                     CODE_FORM("code-uri", "pub", "http://127.0.0.1:9/other", VERIFIER), NULL);
    CHECK_OAUTH_ERROR(r, 400, "invalid_grant", "redirect_uri does not match");
    lb_free(r);
    put_code("code-short", "pub");
    r = lb_post_form(&env, "/oauth/token", CODE_FORM("code-short", "pub", REDIRECT, "short"), NULL);
    CHECK_OAUTH_ERROR(r, 400, "invalid_grant", "43 to 128 unreserved characters");
    lb_free(r);
    put_code("code-pkce", "pub");
    r = lb_post_form(&env, "/oauth/token",
                     CODE_FORM("code-pkce", "pub", REDIRECT,
                               "another-verifier-0123456789-0123456789-0123456789"),
                     NULL);
    CHECK_OAUTH_ERROR(r, 400, "invalid_grant", "does not match the code_challenge");
    lb_free(r);
    put_code("code-res", "pub");
    r = lb_post_form(
        &env, "/oauth/token",
        CODE_FORM("code-res", "pub", REDIRECT, VERIFIER) "&resource=" LB_ISSUER "/mcp/a", NULL);
    CHECK_OAUTH_ERROR(r, 400, "invalid_target", "resource differs from the one authorized");
    lb_free(r);
    /* a good exchange, then its replay: refused, and the tokens it gave are revoked */
    put_code("code-ok", "pub");
    r = lb_post_form(&env, "/oauth/token", CODE_FORM("code-ok", "pub", REDIRECT, VERIFIER), NULL);
    CHECK_INT(r->status, 200);
    const char *rt = json_string_value(json_object_get(r->json, "refresh_token"));
    CHECK(rt != NULL && json_string_value(json_object_get(r->json, "access_token")) != NULL);
    char rt_copy[128];
    snprintf(rt_copy, sizeof(rt_copy), "%s", rt ? rt : "");
    lb_free(r);
    r = lb_post_form(&env, "/oauth/token", CODE_FORM("code-ok", "pub", REDIRECT, VERIFIER), NULL);
    CHECK_OAUTH_ERROR(r, 400, "invalid_grant",
                      "already used; the tokens issued for it are revoked");
    lb_free(r);
    char form[256];
    snprintf(form, sizeof(form), "grant_type=refresh_token&client_id=pub&refresh_token=%s",
             rt_copy);
    r = lb_post_form(&env, "/oauth/token", form, NULL);
    CHECK_OAUTH_ERROR(r, 400, "invalid_grant", "grant was revoked");
    lb_free(r);
    /* a disabled user's code */
    struct err_info ei = {0};
    struct store_user bob;
    CHECK_INT(store_user_add(env.st, "bob", "bob@example.com", NULL, false, &bob, &ei), 0);
    struct store_code c = {.user_id = bob.id, .expires_at = store_now() + 60};
    char h[TOKEN_HASH_SIZE];
    snprintf(c.client_id, sizeof(c.client_id), "pub");
    snprintf(c.redirect_uri, sizeof(c.redirect_uri), REDIRECT);
    token_hash(VERIFIER, strlen(VERIFIER), c.code_challenge);
    snprintf(c.resource, sizeof(c.resource), RESOURCE);
    snprintf(c.scope, sizeof(c.scope), "mcp");
    token_hash("code-bob", 8, h);
    CHECK_INT(store_code_put(env.st, h, &c), 0);
    CHECK_INT(store_user_set_disabled(env.st, bob.id, true), 0);
    r = lb_post_form(&env, "/oauth/token", CODE_FORM("code-bob", "pub", REDIRECT, VERIFIER), NULL);
    CHECK_OAUTH_ERROR(r, 400, "invalid_grant", "the user of this grant is disabled");
    lb_free(r);
}

static void test_grant_refresh(void)
{
    struct lb_req *r;
    struct store_family f;
    r = lb_post_form(&env, "/oauth/token", "grant_type=refresh_token&client_id=pub", NULL);
    CHECK_OAUTH_ERROR(r, 400, "invalid_request", "refresh_token is required");
    lb_free(r);
    r = lb_post_form(&env, "/oauth/token",
                     "grant_type=refresh_token&client_id=pub&refresh_token=nope", NULL);
    CHECK_OAUTH_ERROR(r, 400, "invalid_grant", "unknown or expired");
    lb_free(r);
    /* refused for its resource, then for its scope: the token survives both */
    put_refresh("rt-keep", "pub", &f);
    r = lb_post_form(
        &env, "/oauth/token",
        "grant_type=refresh_token&client_id=pub&refresh_token=rt-keep&resource=" LB_ISSUER "/mcp/a",
        NULL);
    CHECK_OAUTH_ERROR(r, 400, "invalid_target", "resource differs from the one of the grant");
    lb_free(r);
    r = lb_post_form(&env, "/oauth/token",
                     "grant_type=refresh_token&client_id=pub&refresh_token=rt-keep&scope=mcp+admin",
                     NULL);
    CHECK_OAUTH_ERROR(r, 400, "invalid_scope", "wider than the grant's (mcp)");
    lb_free(r);
    r = lb_post_form(&env, "/oauth/token",
                     "grant_type=refresh_token&client_id=pub&refresh_token=rt-keep", NULL);
    CHECK_INT(r->status, 200);
    CHECK(json_string_value(json_object_get(r->json, "refresh_token")) != NULL);
    lb_free(r);
    /* replayed: the grant dies */
    r = lb_post_form(&env, "/oauth/token",
                     "grant_type=refresh_token&client_id=pub&refresh_token=rt-keep", NULL);
    CHECK_OAUTH_ERROR(r, 400, "invalid_grant",
                      "already used; all tokens of this grant are revoked");
    lb_free(r);
    /* presented by another client: the grant dies too */
    struct store_family g;
    put_refresh("rt-stolen", "pub", &g);
    r = lb_post_form(&env, "/oauth/token",
                     "grant_type=refresh_token&client_id=pub2&refresh_token=rt-stolen", NULL);
    CHECK_OAUTH_ERROR(r, 400, "invalid_grant", "issued to another client; its grant is revoked");
    lb_free(r);
    r = lb_post_form(&env, "/oauth/token",
                     "grant_type=refresh_token&client_id=pub&refresh_token=rt-stolen", NULL);
    CHECK_OAUTH_ERROR(r, 400, "invalid_grant", "grant was revoked");
    lb_free(r);
}

static void test_grant_client_credentials(void)
{
    struct lb_req *r;
    r = lb_post_form(&env, "/oauth/token", "grant_type=client_credentials&client_id=pub", NULL);
    CHECK_OAUTH_ERROR(r, 400, "unauthorized_client", "only for a user's own confidential client");
    lb_free(r);
    r = lb_post_form(&env, "/oauth/token", "grant_type=client_credentials", "authorization",
                     basic("conf", SECRET), NULL);
    CHECK_OAUTH_ERROR(r, 400, "unauthorized_client", "only for a user's own confidential client");
    lb_free(r);
    /* a user's own client: resource and scope refusals */
    struct store_client c = {.kind = STORE_CLIENT_USER, .confidential = true, .user_id = alice.id};
    snprintf(c.client_id, sizeof(c.client_id), "alice-own");
    c.metadata = json_object();
    CHECK_INT(store_client_put(env.st, &c, SECRET), 0);
    json_decref(c.metadata);
    r = lb_post_form(&env, "/oauth/token",
                     "grant_type=client_credentials&resource=https://other.example/mcp",
                     "authorization", basic("alice-own", SECRET), NULL);
    CHECK_OAUTH_ERROR(r, 400, "invalid_target", "is not an MCP endpoint of this gateway");
    lb_free(r);
    r = lb_post_form(&env, "/oauth/token",
                     "grant_type=client_credentials&resource=" LB_ISSUER "/mcp/nosuch",
                     "authorization", basic("alice-own", SECRET), NULL);
    CHECK_OAUTH_ERROR(r, 400, "invalid_target", "is not an MCP endpoint of this gateway");
    lb_free(r);
    r = lb_post_form(&env, "/oauth/token", "grant_type=client_credentials&scope=mcp+root",
                     "authorization", basic("alice-own", SECRET), NULL);
    CHECK_OAUTH_ERROR(r, 400, "invalid_scope", "scope \"root\" is not offered here");
    lb_free(r);
    r = lb_post_form(&env, "/oauth/token",
                     "grant_type=client_credentials&resource=" LB_ISSUER "/mcp/a", "authorization",
                     basic("alice-own", SECRET), NULL);
    CHECK_INT(r->status, 200);
    CHECK(json_object_get(r->json, "refresh_token") == NULL);
    lb_free(r);
}

static void test_revoke_introspect(void)
{
    struct lb_req *r;
    struct store_family f;
    r = lb_post_form(&env, "/oauth/revoke", "client_id=pub", NULL);
    CHECK_OAUTH_ERROR(r, 400, "invalid_request", "token is required");
    lb_free(r);
    put_refresh("rt-rev", "pub", &f);
    r = lb_post_form(&env, "/oauth/revoke", "client_id=pub2&token=rt-rev", NULL);
    CHECK_OAUTH_ERROR(r, 400, "invalid_request", "the token was issued to another client");
    lb_free(r);
    /* unknown tokens: 200 and nothing (RFC 7009 §2.2) */
    r = lb_post_form(&env, "/oauth/revoke", "client_id=pub&token=unknown", NULL);
    CHECK_INT(r->status, 200);
    lb_free(r);
    /* introspection: public clients are refused; a client that is neither the token's nor a
       resource server learns nothing */
    r = lb_post_form(&env, "/oauth/introspect", "client_id=pub&token=rt-rev", NULL);
    CHECK_OAUTH_ERROR(r, 401, "invalid_client", "requires a confidential client");
    lb_free(r);
    r = lb_post_form(&env, "/oauth/introspect", "token=rt-rev", "authorization",
                     basic("conf", SECRET), NULL);
    CHECK_INT(r->status, 200);
    CHECK_STR(r->body, "{\"active\":false}");
    lb_free(r);
    /* the configured resource server (introspect: true) does */
    r = lb_post_form(&env, "/oauth/introspect", "token=rt-rev", "authorization",
                     basic("rs", LB_RS_SECRET), NULL);
    CHECK_INT(r->status, 200);
    CHECK(json_is_true(json_object_get(r->json, "active")));
    CHECK_STR(json_string_value(json_object_get(r->json, "client_id")), "pub");
    lb_free(r);
    r = lb_post_form(&env, "/oauth/introspect", "", "authorization", basic("conf", SECRET), NULL);
    CHECK_OAUTH_ERROR(r, 400, "invalid_request", "token is required");
    lb_free(r);
    /* the owner revokes it; gone for everybody */
    r = lb_post_form(&env, "/oauth/revoke", "client_id=pub&token=rt-rev", NULL);
    CHECK_INT(r->status, 200);
    lb_free(r);
    struct store_family g;
    char h[TOKEN_HASH_SIZE];
    token_hash("rt-rev", 6, h);
    CHECK_INT(store_refresh_peek(env.st, h, &g), ERR_DENIED);
}

static void test_register(void)
{
    struct lb_req *r;
    r = lb_new(&env, "POST", "/oauth/register", "text/plain", "{}", NULL);
    lb_send(r);
    CHECK_OAUTH_ERROR(r, 400, "invalid_client_metadata", "must be application/json");
    lb_free(r);
    r = lb_new(&env, "POST", "/oauth/register", "application/json", "{\"redirect_uris\":", NULL);
    lb_send(r);
    CHECK_OAUTH_ERROR(r, 400, "invalid_client_metadata", "the body is not JSON");
    lb_free(r);
    r = lb_new(&env, "POST", "/oauth/register", "application/json",
               "{\"redirect_uris\":[\"http://evil.example/cb\"]}", NULL);
    lb_send(r);
    CHECK_OAUTH_ERROR(r, 400, "invalid_redirect_uri", "http://evil.example/cb");
    lb_free(r);
    r = lb_new(&env, "POST", "/oauth/register", "application/json",
               "{\"redirect_uris\":[\"https://a.example/cb\"],\"scope\":\"mcp root\"}", NULL);
    lb_send(r);
    CHECK_OAUTH_ERROR(r, 400, "invalid_client_metadata", "scope \"root\" is not offered here");
    lb_free(r);
    r = lb_new(&env, "POST", "/oauth/register", "application/json",
               "{\"redirect_uris\":[\"https://a.example/cb\"],\"token_endpoint_auth_method\":"
               "\"client_secret_post\"}",
               NULL);
    lb_send(r);
    CHECK_INT(r->status, 201);
    CHECK(json_string_value(json_object_get(r->json, "client_secret")) != NULL);
    CHECK_STR(json_string_value(json_object_get(r->json, "token_endpoint_auth_method")),
              "client_secret_post");
    lb_free(r);
}

/* The metadata rules behind registration and metadata documents, refusal by refusal. */
static void test_client_metadata(void)
{
    static const struct {
        const char *body, *why;
    } bad[] = {
        {"[]", "must be a JSON object"},
        {"{}", "redirect_uris is required"},
        {"{\"redirect_uris\":[]}", "redirect_uris is required"},
        {"{\"redirect_uris\":[1]}", "redirect_uris[0] is not a string"},
        {"{\"redirect_uris\":[\"https://a.example/cb#f\"]}", "fragment"},
        {"{\"redirect_uris\":[\"ftp://a.example/cb\"]}", "http"},
        {"{\"redirect_uris\":[\"https://a.example/cb\"],\"token_endpoint_auth_method\":"
         "\"private_key_jwt\"}",
         "token_endpoint_auth_method must be none"},
        {"{\"redirect_uris\":[\"https://a.example/cb\"],\"grant_types\":[]}",
         "grant_types must be a non-empty array"},
        {"{\"redirect_uris\":[\"https://a.example/cb\"],\"grant_types\":[\"client_credentials\"]}",
         "grant_types[0]: only authorization_code and refresh_token"},
        {"{\"redirect_uris\":[\"https://a.example/cb\"],\"response_types\":[\"token\"]}",
         "response_types must be [\"code\"]"},
        {"{\"redirect_uris\":[\"https://a.example/cb\"],\"client_name\":7}",
         "client_name has the wrong type"},
        {"{\"redirect_uris\":[\"https://a.example/cb\"],\"contacts\":\"x\"}",
         "contacts has the wrong type"},
        {"{\"redirect_uris\":[\"https://a.example/cb\"],\"redirect_uris\":[\"https://b/cb\"]}",
         "the body is not JSON"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *m = NULL;
        struct err_info ei = {0};
        CHECK(oauth_register_parse(bad[i].body, strlen(bad[i].body), &m, &ei) != 0);
        CHECK(m == NULL);
        CHECK_CONTAINS(ei.msg, bad[i].why);
    }
    json_t *m = NULL;
    struct err_info ei = {0};
    const char *ok = "{\"redirect_uris\":[\"http://127.0.0.1/cb\"],\"client_name\":\"A\"}";
    CHECK_INT(oauth_register_parse(ok, strlen(ok), &m, &ei), 0);
    CHECK_STR(json_string_value(json_object_get(m, "token_endpoint_auth_method")),
              "client_secret_basic"); /* RFC 7591 §2: the default */
    json_decref(m);
}

static void test_cimd_document(void)
{
    const char *url = "https://app.example/client.json";
    static const struct {
        const char *body, *why;
    } bad[] = {
        {"not json", "the document is not JSON"},
        {"{\"redirect_uris\":[\"https://app.example/cb\"]}", "client_id must equal its URL"},
        {"{\"client_id\":\"https://evil.example/client.json\",\"redirect_uris\":[\"https://"
         "app.example/cb\"]}",
         "client_id must equal its URL"},
        {"{\"client_id\":\"https://app.example/client.json\",\"redirect_uris\":[\"https://"
         "app.example/cb\"],\"token_endpoint_auth_method\":\"client_secret_basic\"}",
         "cannot carry a shared secret"},
        {"{\"client_id\":\"https://app.example/client.json\"}", "redirect_uris is required"},
        {"{\"client_id\":\"https://app.example/client.json\",\"client_id\":\"https://"
         "app.example/client.json\",\"redirect_uris\":[\"https://app.example/cb\"]}",
         "the document is not JSON"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *m = NULL;
        struct err_info ei = {0};
        CHECK(oauth_cimd_document_check(bad[i].body, strlen(bad[i].body), url, &m, &ei) != 0);
        CHECK(m == NULL);
        CHECK_CONTAINS(ei.msg, bad[i].why);
    }
    const char *ok = "{\"client_id\":\"https://app.example/client.json\",\"redirect_uris\":["
                     "\"https://app.example/cb\"]}";
    json_t *m = NULL;
    struct err_info ei = {0};
    CHECK_INT(oauth_cimd_document_check(ok, strlen(ok), url, &m, &ei), 0);
    CHECK_STR(json_string_value(json_object_get(m, "token_endpoint_auth_method")), "none");
    json_decref(m);
}

/* verify.c: a request that ends while its secret is checked on the thread pool is not answered
   (its memory is gone); the check's end is then dropped without touching it. */
static void test_verify_request_gone(void)
{
    struct lb_req *r =
        lb_new(&env, "POST", "/oauth/token", "application/x-www-form-urlencoded",
               "grant_type=client_credentials", "authorization", basic("conf", SECRET), NULL);
    CHECK_INT(oauth_handle(env.o, env.cfg, &r->req), 0); /* pending: the argon2id check runs */
    h2o_dispose_request(&r->req);                        /* the client hung up */
    for (int i = 0; i < 100 && uv_run(&env.loop, UV_RUN_NOWAIT) != 0; i++)
        usleep(20000);
    CHECK(!r->done);
    free(r);
    /* and the context still works */
    struct lb_req *q = lb_post_form(&env, "/oauth/token", "grant_type=x", "authorization",
                                    basic("conf", SECRET), NULL);
    CHECK_OAUTH_ERROR(q, 400, "unsupported_grant_type", "is not supported");
    lb_free(q);
}

static void test_teardown(void)
{
    lb_env_release(&env);
}

TEST_MAIN(TEST(test_setup), TEST(test_client_auth), TEST(test_grant_code), TEST(test_grant_refresh),
          TEST(test_grant_client_credentials), TEST(test_revoke_introspect), TEST(test_register),
          TEST(test_client_metadata), TEST(test_cimd_document), TEST(test_verify_request_gone),
          TEST(test_teardown))
