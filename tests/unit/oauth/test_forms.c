/*
 * oauth: the URL rules behind redirect URIs, resources and metadata-document client_ids. A
 * host is a DNS name or an IP literal and nothing else: it is echoed into the consent page's
 * Content-Security-Policy (form-action) and handed to curl, where ';', ',', quotes or a zone
 * id would mean something.
 */
#include "oauth/oauth.h"
#include "test.h"

#include <string.h>

static bool parses(const char *url)
{
    struct oauth_url u;
    struct err_info ei = {0};
    return oauth_url_parse(url, &u, &ei) == 0;
}

static void test_host_charset(void)
{
    static const char *const good[] = {
        "https://app.example/cb",         "https://a-b.example:8443/cb?x=1",
        "http://127.0.0.1:9/callback",    "http://[::1]:9/cb",
        "https://[2001:db8::1]/cb",       "https://xn--bcher-kva.example/",
        "https://under_score.example/cb", "https://APP.Example/cb",
        "https://[::ffff:192.0.2.1]/cb",
    };
    static const char *const bad[] = {
        "https://a.example;frame-ancestors/cb",
        "https://a.example,b/cb",
        "https://a'b.example/cb",
        "https://a(b).example/cb",
        "https://a%2eexample/cb",
        "https://a{b}.example/cb",
        "https://a|b.example/cb",
        "https://a^b.example/cb",
        "https://a!b.example/cb",
        "https://a$b.example/cb",
        "https://a*b.example/cb",
        "https://a=b.example/cb",
        "http://[::1%25lo]:9/cb",
        "http://[::1]x/cb",
        "https://[g::1]/cb",
        "https://[]/cb",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        if (!parses(good[i]))
            fprintf(stderr, "refused: %s\n", good[i]);
        CHECK(parses(good[i]));
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (parses(bad[i]))
            fprintf(stderr, "accepted: %s\n", bad[i]);
        CHECK(!parses(bad[i]));
    }
}

static void test_redirect_match(void)
{
    /* exact, except the port of an http loopback IP literal */
    CHECK(oauth_redirect_uri_match("http://127.0.0.1/cb", "http://127.0.0.1:5555/cb"));
    CHECK(oauth_redirect_uri_match("http://[::1]:1/cb", "http://[::1]:2/cb"));
    CHECK(!oauth_redirect_uri_match("http://localhost:1/cb", "http://localhost:2/cb"));
    CHECK(!oauth_redirect_uri_match("http://127.0.0.1/cb", "http://127.0.0.1:5555/cb/"));
    CHECK(!oauth_redirect_uri_match("http://127.0.0.1/cb", "http://127.0.0.2/cb"));
    CHECK(!oauth_redirect_uri_match("https://app.example/cb", "https://APP.example/cb"));
    CHECK(!oauth_redirect_uri_match("https://app.example/cb", "https://app.example/cb/"));
    CHECK(!oauth_redirect_uri_match("https://app.example/cb", "https://app.example:443/cb"));
    CHECK(!oauth_redirect_uri_match("https://app.example/cb", "https://app.example/cb#x"));
    CHECK(!oauth_redirect_uri_match("https://app.example/cb", "https://evil@app.example/cb"));
    struct err_info ei = {0};
    CHECK(oauth_redirect_uri_check("http://app.example/cb", &ei) != 0);
    CHECK(oauth_redirect_uri_check("http://127.evil.example/cb", &ei) != 0);
    CHECK(oauth_redirect_uri_check("http://127.0.0.1/cb", &ei) == 0);
}

TEST_MAIN(TEST(test_host_charset), TEST(test_redirect_match))
