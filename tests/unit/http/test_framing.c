/* http/framing: the strict request-head check, accepted heads and each named refusal. */
#include "http/framing.h"
#include "test.h"

#include <string.h>

static int parse(const char *s, struct framing_head *h, struct err_info *ei)
{
    memset(ei, 0, sizeof(*ei));
    return framing_parse_head(s, strlen(s), h, ei);
}

static void test_accepts(void)
{
    struct framing_head h;
    struct err_info ei;
    const char *get = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nGET /x HTTP/1.1\r\n";
    CHECK_INT(parse(get, &h, &ei), 0);
    CHECK_INT(h.head_len, strlen("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"));
    CHECK_INT(h.minor_version, 1);
    CHECK(!h.has_content_length && !h.chunked && !h.absolute_form);

    CHECK_INT(parse("POST /mcp HTTP/1.1\r\nhost: a\r\ncontent-length:\t42\r\n\r\n", &h, &ei), 0);
    CHECK(h.has_content_length);
    CHECK_INT(h.content_length, 42);
    CHECK_INT(parse("POST /mcp HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", &h, &ei), 0);
    CHECK_INT(h.content_length, 0);
    CHECK_INT(parse("POST /mcp HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n", &h, &ei),
              0);
    CHECK(h.chunked && !h.has_content_length);
    CHECK_INT(parse("GET / HTTP/1.0\r\n\r\n", &h, &ei), 0); /* HTTP/1.0 needs no Host */
    CHECK_INT(h.minor_version, 0);
    CHECK_INT(parse("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", &h, &ei), 0);
    CHECK_INT(parse("GET / HTTP/1.1\r\nHost: a\r\nX-A: caf\xc3\xa9 \"q\"\r\n\r\n", &h, &ei), 0);
}

static void test_absolute_form(void)
{
    struct framing_head h;
    struct err_info ei;
    CHECK_INT(parse("GET http://127.0.0.1:8080/mcp?a=b HTTP/1.1\r\nHost: x\r\n\r\n", &h, &ei), 0);
    CHECK(h.absolute_form && !h.https);
    CHECK_INT(h.authority_len, 14);
    CHECK(memcmp(h.authority, "127.0.0.1:8080", 14) == 0);
    CHECK_INT(h.path_len, 8);
    CHECK(memcmp(h.path, "/mcp?a=b", 8) == 0);
    CHECK_INT(parse("GET HTTPS://[::1] HTTP/1.1\r\nHost: x\r\n\r\n", &h, &ei), 0);
    CHECK(h.absolute_form && h.https);
    CHECK_INT(h.path_len, 1);
    CHECK(h.path[0] == '/');
    CHECK_INT(parse("GET http://a?q HTTP/1.1\r\nHost: x\r\n\r\n", &h, &ei), 0);
    CHECK_INT(h.authority_len, 1);
    CHECK_INT(h.path_len, 2); /* "?q": the query, without a path */
}

static void refused(const char *head, const char *cause)
{
    struct framing_head h;
    struct err_info ei;
    int err = parse(head, &h, &ei);
    CHECK_INT(err, ERR_PARSE);
    CHECK_CONTAINS(ei.msg, cause);
}

static void test_refusals(void)
{
    refused("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            "both Content-Length and Transfer-Encoding");
    refused("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nContent-Length: 44\r\n\r\n",
            "2 Content-Length headers");
    refused("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 7\r\nContent-Length: 7\r\n\r\n",
            "2 Content-Length headers");
    refused("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: "
            "chunked\r\n\r\n",
            "2 Transfer-Encoding headers");
    refused("GET / HTTP/1.1\r\nHost: evil\r\nHost: a\r\n\r\n", "2 Host headers");
    refused("GET / HTTP/1.1\r\n\r\n", "must carry a Host header");
    refused("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n", "is a list");
    refused("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", "plain decimal");
    refused("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 05\r\n\r\n", "plain decimal");
    refused("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n", "plain decimal");
    refused("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1234567890123456789\r\n\r\n",
            "plain decimal");
    refused("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n", "exactly");
    refused("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
            "exactly");
    refused("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", "HTTP/1.0");
    refused("GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", "obs-fold");
    refused("GET / HTTP/1.1\r\nHost: a\r\n\tX: b\r\n\r\n", "obs-fold");
    refused("GET / HTTP/1.1\r\nHost : a\r\n\r\n", "whitespace before its colon");
    refused("GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", "whitespace before its colon");
    refused("GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", "bare CR");
    refused("GET / HTTP/1.1\nHost: a\n\n", "bare LF");
    refused("GET / HTTP/1.1\r\nHost: a\r\nX: b\n\r\n", "bare LF");
    refused("GET / HTTP/1.1\r\nHost: a\r\nX: b\x0b\r\n\r\n", "control byte 0x0b");
    refused("GET / HTTP/1.1\r\nHost: a\r\nX\x01: b\r\n\r\n", "not a header field");
    refused("GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n", "not a header field");
    refused("GET / HTTP/2.0\r\nHost: a\r\n\r\n", "HTTP/1.0 or HTTP/1.1");
    refused("GET  / HTTP/1.1\r\nHost: a\r\n\r\n", "request target");
    refused("GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", "request line");
    refused("GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", "percent-encoded");
    refused("GET example.com:80 HTTP/1.1\r\nHost: a\r\n\r\n", "must be a path");
    refused("GET * HTTP/1.1\r\nHost: a\r\n\r\n", "must be a path");
    refused("GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n", "has no host");
    refused("GET http://u:p@a/ HTTP/1.1\r\nHost: a\r\n\r\n", "userinfo");
    refused("GET http://a/#f HTTP/1.1\r\nHost: a\r\n\r\n", "fragment");
    refused("GET / HTTP/1.1\r\nHost: a\r\n", "incomplete");
    refused("GET / HTTP/1.1\r\nHost: a\r\n\r", "incomplete");
    refused("", "incomplete");
}

static void test_nul(void)
{
    struct framing_head h;
    struct err_info ei = {{0}};
    static const char head[] = "GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n";
    CHECK_INT(framing_parse_head(head, sizeof(head) - 1, &h, &ei), ERR_PARSE);
    CHECK_CONTAINS(ei.msg, "NUL");
}

TEST_MAIN(TEST(test_accepts), TEST(test_absolute_form), TEST(test_refusals), TEST(test_nul))
