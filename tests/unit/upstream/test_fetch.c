/*
 * Tests of the one-shot fetcher: the public-address judgement over every blocked range and its
 * IPv6 disguises, and real transfers against a small HTTP/1.1 server on a loopback thread —
 * which is exactly what the guard must refuse unless allow_private is set, including when the
 * loopback address is reached through a name ("localhost") or through a redirect.
 */
#include "upstream/fetch.h"
#include "core/err.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "test.h"

static bool pub4(const char *s)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    inet_pton(AF_INET, s, &a.sin_addr);
    return fetch_address_is_public((struct sockaddr *)&a);
}

static bool pub6(const char *s)
{
    struct sockaddr_in6 a = {.sin6_family = AF_INET6};
    CHECK_INT(inet_pton(AF_INET6, s, &a.sin6_addr), 1);
    return fetch_address_is_public((struct sockaddr *)&a);
}

static void test_public_addresses(void)
{
    static const char *const blocked4[] = {
        "0.0.0.0",   "10.0.0.1",        "10.255.255.255", "100.64.0.1",     "127.0.0.1",
        "127.1.2.3", "169.254.169.254", "172.16.0.1",     "172.31.255.255", "192.0.0.8",
        "192.0.2.1", "192.168.1.1",     "198.18.0.1",     "198.51.100.7",   "203.0.113.9",
        "224.0.0.1", "239.255.255.250", "240.0.0.1",      "255.255.255.255"};
    for (size_t i = 0; i < sizeof(blocked4) / sizeof(blocked4[0]); i++)
        if (pub4(blocked4[i])) {
            fprintf(stderr, "%s judged public\n", blocked4[i]);
            CHECK(0);
        }
    static const char *const open4[] = {"1.1.1.1",     "8.8.8.8",        "172.15.255.255",
                                        "172.32.0.0",  "100.63.255.255", "100.128.0.0",
                                        "192.169.0.1", "223.255.255.255"};
    for (size_t i = 0; i < sizeof(open4) / sizeof(open4[0]); i++)
        if (!pub4(open4[i])) {
            fprintf(stderr, "%s judged not public\n", open4[i]);
            CHECK(0);
        }
    static const char *const blocked6[] = {
        "::",          "::1",          "::ffff:127.0.0.1", "::ffff:10.1.2.3", "64:ff9b::a9fe:a9fe",
        "fc00::1",     "fd12:3456::1", "fe80::1",          "fec0::1",         "ff02::1",
        "2001:db8::1", "100::1",       "2002:7f00:1::1",   "::127.0.0.1"};
    for (size_t i = 0; i < sizeof(blocked6) / sizeof(blocked6[0]); i++)
        if (pub6(blocked6[i])) {
            fprintf(stderr, "%s judged public\n", blocked6[i]);
            CHECK(0);
        }
    CHECK(pub6("2606:4700:4700::1111"));
    CHECK(pub6("::ffff:8.8.8.8"));
    CHECK(pub6("2002:0808:0808::1"));
    struct sockaddr un = {.sa_family = AF_UNIX};
    CHECK(!fetch_address_is_public(&un));
}

/* ---- a loopback HTTP server answering by path ---- */

static int srv_fd;
static int srv_port;

static void respond(int c, const char *path)
{
    char out[4096];
    const char *body = "";
    int n;
    if (strcmp(path, "/ok") == 0) {
        body = "{\"hello\":\"world\"}";
        n = snprintf(out, sizeof(out),
                     "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     "Cache-Control: public, max-age=120\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n%s",
                     strlen(body), body);
    } else if (strcmp(path, "/redirect") == 0) {
        n = snprintf(out, sizeof(out),
                     "HTTP/1.1 302 Found\r\nLocation: /ok\r\nContent-Length: 0\r\n"
                     "Connection: close\r\n\r\n");
    } else if (strcmp(path, "/loop") == 0) {
        n = snprintf(out, sizeof(out),
                     "HTTP/1.1 302 Found\r\nLocation: /loop\r\nContent-Length: 0\r\n"
                     "Connection: close\r\n\r\n");
    } else if (strcmp(path, "/big") == 0) {
        n = snprintf(out, sizeof(out),
                     "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n");
        if (write(c, out, (size_t)n) < 0)
            return;
        memset(out, 'x', sizeof(out));
        for (int i = 0; i < 64; i++)
            if (write(c, out, sizeof(out)) < 0)
                return;
        return;
    } else if (strcmp(path, "/slow") == 0) {
        usleep(1500 * 1000);
        n = snprintf(out, sizeof(out), "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
    } else {
        n = snprintf(out, sizeof(out),
                     "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    }
    if (write(c, out, (size_t)n) < 0)
        return;
}

static void *server_main(void *arg)
{
    for (;;) {
        int c = accept(srv_fd, NULL, NULL);
        if (c < 0)
            return NULL;
        char req[4096];
        ssize_t n = read(c, req, sizeof(req) - 1);
        if (n > 0) {
            req[n] = '\0';
            char path[256] = "";
            sscanf(req, "%*s %255s", path);
            if (strcmp(path, "/quit") == 0) {
                close(c);
                return NULL;
            }
            respond(c, path);
        }
        close(c);
    }
}

static pthread_t server_start(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    srv_fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(bind(srv_fd, (struct sockaddr *)&a, sizeof(a)) == 0);
    CHECK(listen(srv_fd, 16) == 0);
    getsockname(srv_fd, (struct sockaddr *)&a, &len);
    srv_port = ntohs(a.sin_port);
    pthread_t t;
    pthread_create(&t, NULL, server_main, NULL);
    return t;
}

struct outcome {
    bool called;
    int err;
    long status;
    char body[128];
    char content_type[64];
    long max_age;
    char why[512];
};

static void done_cb(void *arg, int err, const struct fetch_response *r, const char *why)
{
    struct outcome *o = arg;
    o->called = true;
    o->err = err;
    if (r) {
        o->status = r->status;
        snprintf(o->body, sizeof(o->body), "%s", r->body);
        snprintf(o->content_type, sizeof(o->content_type), "%s",
                 r->content_type ? r->content_type : "");
        o->max_age = r->max_age;
    }
    snprintf(o->why, sizeof(o->why), "%s", why ? why : "");
}

/* Run one fetch to completion on a private loop. */
static struct outcome run(const char *host, const char *path, bool allow_private,
                          unsigned redirects, size_t max_size, uint32_t timeout_ms)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct fetcher *f = NULL;
    CHECK_INT(fetcher_new(&loop, &f), 0);
    char url[256];
    snprintf(url, sizeof(url), "http://%s:%d%s", host, srv_port, path);
    struct fetch_request req = {.url = url,
                                .accept = "application/json",
                                .allow_private = allow_private,
                                .max_redirects = redirects,
                                .max_size = max_size,
                                .timeout_ms = timeout_ms};
    struct outcome o = {0};
    CHECK_INT(fetch_start(f, &req, done_cb, &o, NULL), 0);
    while (!o.called && uv_run(&loop, UV_RUN_ONCE))
        ;
    fetcher_free(f);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_INT(uv_loop_close(&loop), 0);
    CHECK(o.called);
    return o;
}

static void test_transfers(void)
{
    pthread_t t = server_start();

    struct outcome o = run("127.0.0.1", "/ok", true, 0, 0, 0);
    CHECK_INT(o.err, 0);
    CHECK_INT(o.status, 200);
    CHECK_STR(o.body, "{\"hello\":\"world\"}");
    CHECK_STR(o.content_type, "application/json");
    CHECK_INT(o.max_age, 120);

    /* The guard: loopback refused by address, by name, and behind a redirect. */
    o = run("127.0.0.1", "/ok", false, 0, 0, 0);
    CHECK_INT(o.err, ERR_DENIED);
    CHECK_CONTAINS(o.why, "the address 127.0.0.1 is not a public one");
    o = run("localhost", "/ok", false, 0, 0, 0);
    CHECK_INT(o.err, ERR_DENIED);

    o = run("127.0.0.1", "/redirect", true, 1, 0, 0);
    CHECK_INT(o.err, 0);
    CHECK_INT(o.status, 200);
    o = run("127.0.0.1", "/redirect", true, 0, 0, 0);
    CHECK_INT(o.err, ERR_LIMIT);
    CHECK_CONTAINS(o.why, "redirected (HTTP 302) more times than allowed");
    o = run("127.0.0.1", "/loop", true, 3, 0, 0);
    CHECK_INT(o.err, ERR_LIMIT);

    o = run("127.0.0.1", "/big", true, 0, 16384, 0);
    CHECK_INT(o.err, ERR_LIMIT);
    CHECK_CONTAINS(o.why, "larger than 16384 bytes");

    o = run("127.0.0.1", "/slow", true, 0, 0, 300);
    CHECK_INT(o.err, ERR_TIMEOUT);

    o = run("127.0.0.1", "/missing", true, 0, 0, 0);
    CHECK_INT(o.err, 0);
    CHECK_INT(o.status, 404);

    /* Let the slow handler finish, then stop the server. */
    int c = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)srv_port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(c, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        write(c, "GET /quit HTTP/1.1\r\n\r\n", 22) < 0)
        CHECK(0);
    close(c);
    pthread_join(t, NULL);
    close(srv_fd);
}

static void test_bad_requests(void)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct fetcher *f = NULL;
    CHECK_INT(fetcher_new(&loop, &f), 0);
    struct outcome o = {0};
    struct fetch_request r1 = {.url = "file:///etc/passwd"};
    CHECK_INT(fetch_start(f, &r1, done_cb, &o, NULL), ERR_INVAL);
    struct fetch_request r2 = {.url = "http://example.com/", .method = "DELETE"};
    CHECK_INT(fetch_start(f, &r2, done_cb, &o, NULL), ERR_INVAL);
    /* A cancelled fetch never calls back. */
    struct fetch_request r3 = {.url = "http://10.255.255.1/", .timeout_ms = 200};
    struct fetch *x = NULL;
    CHECK_INT(fetch_start(f, &r3, done_cb, &o, &x), 0);
    fetch_cancel(x);
    fetcher_free(f);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(!o.called);
    CHECK_INT(uv_loop_close(&loop), 0);
}

TEST_MAIN(TEST(test_public_addresses), TEST(test_transfers), TEST(test_bad_requests))
