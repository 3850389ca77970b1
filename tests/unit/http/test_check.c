/*
 * The front door's header checks (src/http/check.c): Host and Origin against the allow-lists
 * (DNS-rebinding protection), and the Accept and Content-Type of an MCP request. Every refusal
 * is checked for the cause its message names; the lenient parses these checks once had (a Host
 * "localhost:evil" or "[::1]evil", an Origin "http://localhost:evil", a Content-Type
 * "application/jsonx") are refused here.
 */
#include "http/server.h"
#include "test.h"

static char h_localhost[] = "localhost", h_loop4[] = "127.0.0.1", h_loop6[] = "[::1]",
            h_gw[] = "gw.example";
static char *hosts[] = {h_localhost, h_loop4, h_loop6, h_gw};
static char o_app[] = "https://app.example";
static char *origins[] = {o_app};

static struct config cfg_of(void)
{
    struct config c = {0};
    c.allowed_hosts = hosts;
    c.nallowed_hosts = 4;
    c.allowed_origins = origins;
    c.nallowed_origins = 1;
    return c;
}

static int check(const char *host, const char *origin, struct err_info *ei)
{
    struct config c = cfg_of();
    memset(ei, 0, sizeof(*ei));
    return http_check_host_origin(&c, host, host ? strlen(host) : 0, origin,
                                  origin ? strlen(origin) : 0, ei);
}

static void test_hosts_allowed(void)
{
    struct err_info ei;
    static const char *ok[] = {"localhost", "localhost:8080", "LOCALHOST:1", "127.0.0.1:65535",
                               "[::1]",     "[::1]:443",      "gw.example",  "Gw.Example:443"};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        CHECK_INT(check(ok[i], NULL, &ei), 0);
        CHECK_STR(ei.msg, "");
    }
}

static void test_hosts_refused(void)
{
    struct err_info ei;
    static const char *bad[] = {
        "evil.example",
        "localhost.evil.example",
        "evil.example:80",
        "localhost:evil",
        "localhost:",
        "localhost:80:80",
        "localhost:123456",
        "[::1]evil",
        "[::1]:",
        "[::1",
        "[::2]",
        "127.0.0.1 ",
        "gw.example@evil",
        ":8080",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK_INT(check(bad[i], NULL, &ei), ERR_DENIED);
        CHECK_CONTAINS(ei.msg, "Host \"");
        CHECK_CONTAINS(ei.msg, bad[i]);
        CHECK_CONTAINS(ei.msg, "allowed_hosts");
    }
    /* Bytes outside visible ASCII are quoted as \xNN: the message stays plain ASCII (a JSON
       string must be UTF-8: a raw 0xff once turned the 403 into a 500 "out of memory"). */
    CHECK_INT(check("localhost\r\nX:", NULL, &ei), ERR_DENIED);
    CHECK_CONTAINS(ei.msg, "Host \"localhost\\x0d\\x0aX:\" is not allowed");
    CHECK_INT(check("evil\xff.example", "x", &ei), ERR_DENIED);
    CHECK_CONTAINS(ei.msg, "Host \"evil\\xff.example\"");
    CHECK_INT(check("localhost", "http://\xc3(", &ei), ERR_DENIED);
    CHECK_CONTAINS(ei.msg, "Origin \"http://\\xc3(\"");
    CHECK_INT(check("a\\b", NULL, &ei), ERR_DENIED);
    CHECK_CONTAINS(ei.msg, "Host \"a\\x5cb\"");
    /* No Host at all (HTTP/1.0) is refused by name too. */
    CHECK_INT(check(NULL, NULL, &ei), ERR_DENIED);
    CHECK_CONTAINS(ei.msg, "Host \"\" is not allowed");
    CHECK_INT(check("", NULL, &ei), ERR_DENIED);
    /* A long value is quoted in part, never whole. */
    char longhost[1000];
    memset(longhost, 'a', sizeof(longhost) - 1);
    longhost[sizeof(longhost) - 1] = '\0';
    CHECK_INT(check(longhost, NULL, &ei), ERR_DENIED);
    CHECK(strlen(ei.msg) < 400);
    CHECK_CONTAINS(ei.msg, "aaa...\" is not allowed");
    CHECK_CONTAINS(ei.msg, "allowed_hosts");
    /* ... also when every byte is quoted as \xNN: the message still names the key. */
    memset(longhost, 0xff, sizeof(longhost) - 1);
    CHECK_INT(check(longhost, NULL, &ei), ERR_DENIED);
    CHECK_CONTAINS(ei.msg, "\\xff...\" is not allowed");
    CHECK_CONTAINS(ei.msg, "allowed_hosts in the configuration");
}

static void test_origins(void)
{
    struct err_info ei;
    static const char *ok[] = {"https://app.example",   "HTTPS://APP.EXAMPLE",
                               "http://localhost:6274", "https://127.0.0.1",
                               "http://[::1]:3000",     "https://gw.example"};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        CHECK_INT(check("localhost", ok[i], &ei), 0);
    static const char *bad[] = {
        "https://evil.example",
        "null",
        "",
        "https://app.example:8443",
        "https://app.example/",
        "http://localhost:evil.example",
        "http://localhost/path",
        "ftp://localhost",
        "file://localhost",
        "localhost",
        "http://",
        "//localhost",
        "http://localhost.evil",
        "https://[::1]evil",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK_INT(check("localhost", bad[i], &ei), ERR_DENIED);
        CHECK_CONTAINS(ei.msg, "Origin \"");
        CHECK_CONTAINS(ei.msg, "allowed_origins");
    }
    /* Host is judged first: both wrong names Host. */
    CHECK_INT(check("evil.example", "https://evil.example", &ei), ERR_DENIED);
    CHECK_CONTAINS(ei.msg, "Host \"evil.example\"");
}

static int post(const char *accept, const char *ctype, int *status, struct err_info *ei)
{
    memset(ei, 0, sizeof(*ei));
    *status = 0;
    return http_check_post_headers(accept, accept ? strlen(accept) : 0, ctype,
                                   ctype ? strlen(ctype) : 0, status, ei);
}

static void test_post_headers(void)
{
    struct err_info ei;
    int status;
    static const char *accept_ok[] = {"application/json, text/event-stream",
                                      "text/event-stream,application/json",
                                      "application/json;q=0.9, text/event-stream;q=1",
                                      "*/*",
                                      "text/html, */*;q=0.1",
                                      "APPLICATION/JSON , TEXT/EVENT-STREAM"};
    for (size_t i = 0; i < sizeof(accept_ok) / sizeof(accept_ok[0]); i++)
        CHECK_INT(post(accept_ok[i], "application/json", &status, &ei), 0);
    static const char *accept_bad[] = {NULL,
                                       "",
                                       "application/json",
                                       "text/event-stream",
                                       "application/jsonx, text/event-streamy",
                                       "application/json-seq, text/event-stream",
                                       "application/*, text/*",
                                       "*/*x"};
    for (size_t i = 0; i < sizeof(accept_bad) / sizeof(accept_bad[0]); i++) {
        CHECK_INT(post(accept_bad[i], "application/json", &status, &ei), ERR_INVAL);
        CHECK_INT(status, 406);
        CHECK_CONTAINS(ei.msg, "Accept header must list both");
    }
    static const char *ctype_ok[] = {"application/json", "application/json; charset=utf-8",
                                     "Application/JSON", " application/json ;charset=UTF-8"};
    for (size_t i = 0; i < sizeof(ctype_ok) / sizeof(ctype_ok[0]); i++)
        CHECK_INT(post("*/*", ctype_ok[i], &status, &ei), 0);
    static const char *ctype_bad[] = {NULL,
                                      "",
                                      "text/plain",
                                      "application/jsonx",
                                      "application/json-seq",
                                      "application/x-www-form-urlencoded",
                                      "application/jso"};
    for (size_t i = 0; i < sizeof(ctype_bad) / sizeof(ctype_bad[0]); i++) {
        CHECK_INT(post("*/*", ctype_bad[i], &status, &ei), ERR_INVAL);
        CHECK_INT(status, 415);
        CHECK_CONTAINS(ei.msg, "Content-Type must be application/json");
    }
    /* A GET's stream needs text/event-stream itself. */
    CHECK(http_accept_lists("text/event-stream", 17, "text/event-stream"));
    CHECK(!http_accept_lists("text/event-streams", 18, "text/event-stream"));
    CHECK(!http_accept_lists(NULL, 0, "text/event-stream"));
}

TEST_MAIN(TEST(test_hosts_allowed), TEST(test_hosts_refused), TEST(test_origins),
          TEST(test_post_headers))
