/* Unit tests for the stdio framing: line splitting over arbitrary chunkings, limits, parsing. */
#include "test.h"

#include "upstream/lines.h"

#include <stdlib.h>

struct got {
    char text[4096]; /* lines joined with '|', too-long ones as "!<prefix>" */
    size_t len;
    int lines;
    int too_long;
};

static void collect(void *arg, const char *line, size_t len, bool too_long)
{
    struct got *g = arg;
    CHECK(len > 0);
    CHECK(memchr(line, '\n', len) == NULL);
    g->lines++;
    g->too_long += too_long;
    int n = snprintf(g->text + g->len, sizeof(g->text) - g->len, "%s%s%.*s", g->len ? "|" : "",
                     too_long ? "!" : "", (int)len, line);
    if (n > 0)
        g->len += (size_t)n;
}

/* Split `in` with chunks of `step` bytes (0 = all at once) and finish. */
static void split(const char *in, size_t max_line, size_t step, struct got *g)
{
    struct line_splitter ls;
    size_t n = strlen(in);
    memset(g, 0, sizeof(*g));
    line_splitter_init(&ls, max_line);
    for (size_t off = 0; off < n;) {
        size_t k = step == 0 || n - off < step ? n - off : step;
        CHECK_INT(line_splitter_feed(&ls, in + off, k, collect, g), 0);
        off += k;
    }
    line_splitter_finish(&ls, collect, g);
    line_splitter_release(&ls);
}

static void test_split_any_chunking(void)
{
    const char *in = "{\"a\":1}\n\r\n\n{\"b\":2}\r\n  x \nlast";
    for (size_t step = 0; step <= 9; step++) {
        struct got g;
        split(in, 100, step, &g);
        CHECK_STR(g.text, "{\"a\":1}|{\"b\":2}|  x |last");
        CHECK_INT(g.lines, 4);
        CHECK_INT(g.too_long, 0);
    }
}

static void test_split_too_long_once(void)
{
    /* limit 5: "abcde" fits, "abcdef" does not; a '\r' before '\n' does not count */
    const char *in = "abcde\nabcdef\nabcde\r\n0123456789012345678901234\nok\nxxxxxxxxxxxxx";
    for (size_t step = 0; step <= 7; step++) {
        struct got g;
        split(in, 5, step, &g);
        CHECK_STR(g.text, "abcde|!abcde|abcde|!01234|ok|!xxxxx");
        CHECK_INT(g.too_long, 3);
    }
}

static void test_split_limit_one(void)
{
    struct got g;
    split("a\nbb\n\nc", 1, 1, &g);
    CHECK_STR(g.text, "a|!b|c");
}

static void test_split_finish_resets(void)
{
    struct line_splitter ls;
    struct got g;
    memset(&g, 0, sizeof(g));
    line_splitter_init(&ls, 4);
    line_splitter_feed(&ls, "toolong", 7, collect, &g); /* reported, then skipping */
    line_splitter_finish(&ls, collect, &g);             /* nothing more */
    line_splitter_feed(&ls, "ab\n", 3, collect, &g);    /* fresh stream */
    line_splitter_finish(&ls, collect, &g);
    line_splitter_release(&ls);
    CHECK_STR(g.text, "!tool|ab");
}

static void test_parse(void)
{
    struct err_info ei;
    json_t *m = NULL;
    const char *ok = "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}";
    CHECK_INT(line_parse_message(ok, strlen(ok), &m, &ei), 0);
    CHECK(json_is_object(m));
    json_decref(m);

    static const struct {
        const char *in;
        int err;
        const char *why;
    } bad[] = {
        {"[{\"jsonrpc\":\"2.0\"}]", ERR_PROTOCOL, "batches are not allowed"},
        {"42", ERR_PROTOCOL, "a JSON number"},
        {"\"s\"", ERR_PROTOCOL, "a JSON string"},
        {"null", ERR_PROTOCOL, "a JSON null"},
        {"not json", ERR_PARSE, "not JSON"},
        {"{\"a\":1,\"a\":2}", ERR_PARSE, "duplicate"},
        {"{} {}", ERR_PARSE, "not JSON"},
        {"{\"a\":\"\xff\"}", ERR_PARSE, "not JSON"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        m = NULL;
        CHECK_INT(line_parse_message(bad[i].in, strlen(bad[i].in), &m, &ei), bad[i].err);
        CHECK(m == NULL);
        CHECK_CONTAINS(ei.msg, bad[i].why);
    }
    /* a raw NUL byte inside the line */
    CHECK_INT(line_parse_message("{\"a\":\"x\0y\"}", 11, &m, &ei), ERR_PARSE);
    CHECK_INT(line_parse_message("{}", 2, &m, NULL), 0);
    json_decref(m);

    /* \u0000 is JSON: accepted, and the string keeps its length */
    const char *nul = "{\"a\":\"x\\u0000y\"}";
    m = NULL;
    CHECK_INT(line_parse_message(nul, strlen(nul), &m, &ei), 0);
    CHECK_INT((int)json_string_length(json_object_get(m, "a")), 3);
    json_decref(m);

    /* the reason never quotes the line (it may be a tool's secret output) */
    const char *secret = "{\"id\":3,\"result\":{\"text\":\"SECRET-TOKEN\\q\"}}";
    m = NULL;
    CHECK_INT(line_parse_message(secret, strlen(secret), &m, &ei), ERR_PARSE);
    CHECK(strstr(ei.msg, "SECRET") == NULL);
    CHECK_CONTAINS(ei.msg, "invalid escape (byte 40 of 43)");
}

static void test_find_id(void)
{
    static const struct {
        const char *in;
        long long id;
    } cases[] = {
        {"{\"jsonrpc\":\"2.0\",\"id\":17,\"result\":{\"t\":\"\\q\"}}", 17},
        {"{\"result\":{\"id\":5,\"t\":\"x\"},\"id\" : 9}", 9}, /* nested id skipped */
        {"{\"result\":{\"t\":\"\\\"id\\\":4\"},\"id\":6", 6},  /* an "id" inside a string */
        {"{\"method\":\"id\",\"x\":1}", -1},                   /* "id" as a value */
        {"{\"id\":\"abc\",\"result\":{}}", -1},                /* not an integer */
        {"{\"id\":-3}", -1},
        {"{\"id\":12x}", -1},
        {"{\"id\":12\t,\"result\":{}}", 12},
        {"this is not json", -1},
        {"[{\"id\":1}]", -1},
        {"{\"text\":\"unterminated", -1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        CHECK_INT((int)line_find_id(cases[i].in, strlen(cases[i].in)), (int)cases[i].id);
}

static void test_escape(void)
{
    char out[64];
    CHECK_STR(line_escape(out, sizeof(out), "a\\b\x01\xff", 5, 100), "a\\\\b\\x01\\xff");
    CHECK_STR(line_escape(out, sizeof(out), "abcdef", 6, 3), "abc...");
    char small[8];
    CHECK_STR(line_escape(small, sizeof(small), "abcdefghij", 10, 100), "abcd...");
    char tiny[2];
    CHECK_STR(line_escape(tiny, sizeof(tiny), "abc", 3, 100), "");
}

TEST_MAIN(TEST(test_split_any_chunking), TEST(test_split_too_long_once), TEST(test_split_limit_one),
          TEST(test_split_finish_resets), TEST(test_parse), TEST(test_find_id), TEST(test_escape))
