/*
 * Unit tests for the SSE parser: the field rules of the WHATWG event stream interpretation, the
 * three line terminators, the BOM, comments, the bound, and chunking: a sample stream fed split
 * at every position (and every pair of positions) must give exactly the events fed in one piece.
 */
#include <stdlib.h>

#include "core/buf.h"
#include "core/err.h"
#include "test.h"
#include "upstream/sse.h"

/* Events are recorded as "type|len:data|id|retry\n" so that runs compare as one byte string. */
static int record_cb(void *arg, const char *type, const char *data, size_t len, const char *id,
                     long long retry_ms)
{
    struct buf *out = arg;
    int err = buf_printf(out, "%s|%zu:", type, len);
    if (err == 0)
        err = buf_append(out, data, len);
    if (err == 0)
        err = buf_printf(out, "|%s|%lld\n", id ? id : "-", retry_ms);
    return err;
}

/* Parse `in` in one feed; return the recording (caller frees) and the feed result. */
static char *parse_all(const char *in, size_t len, size_t max, int *rc)
{
    struct sse_parser p;
    struct buf out;
    buf_init(&out, 1 << 20);
    sse_parser_init(&p, max);
    *rc = sse_parser_feed(&p, in, len, record_cb, &out);
    sse_parser_release(&p);
    char *s = strdup(out.data ? out.data : "");
    buf_release(&out);
    return s;
}

static void expect(const char *in, const char *events)
{
    int rc;
    char *got = parse_all(in, strlen(in), 4096, &rc);
    CHECK_INT(rc, 0);
    CHECK_STR(got, events);
    free(got);
}

static void test_basic(void)
{
    expect("data: hello\n\n", "message|5:hello|-|-1\n");
    expect("data: a\ndata: b\n\n", "message|3:a\nb|-|-1\n");
    expect("event: ping\ndata: x\nid: 7\nretry: 1500\n\n", "ping|1:x|7|1500\n");
    expect("data:nospace\n\n", "message|7:nospace|-|-1\n");
    expect("data:  two\n\n", "message|4: two|-|-1\n");
    expect("data\n\n", "message|0:|-|-1\n");           /* a field with no colon: empty value */
    expect("data:\ndata:\n\n", "message|1:\n|-|-1\n"); /* two empty lines join to "\n" */
    expect("data: no blank line at the end\n", "");    /* an incomplete event is not dispatched */
    expect("foo: bar\ndata: y\nDATA: z\n\n", "message|1:y|-|-1\n"); /* unknown, case-sensitive */
}

static void test_line_endings(void)
{
    expect("data: a\r\n\r\n", "message|1:a|-|-1\n");
    expect("data: a\r\rdata: b\n\n", "message|1:a|-|-1\nmessage|1:b|-|-1\n");
    expect("data: a\rdata: b\r\n\n", "message|3:a\nb|-|-1\n");
    /* CR LF LF is a line end then a blank line; CR CR is two line ends. */
    expect("data: a\r\n\ndata: b\r\r", "message|1:a|-|-1\nmessage|1:b|-|-1\n");
}

static void test_comments(void)
{
    expect(": keep-alive\n\n", "");
    expect(":\ndata: x\n: in the middle\ndata: y\n\n", "message|3:x\ny|-|-1\n");
    /* A comment far longer than the bound is skipped, not buffered. */
    size_t big = 10000;
    char *in = malloc(big + 32);
    in[0] = ':';
    memset(in + 1, 'c', big);
    strcpy(in + 1 + big, "\ndata: ok\n\n");
    int rc;
    char *got = parse_all(in, strlen(in), 64, &rc);
    CHECK_INT(rc, 0);
    CHECK_STR(got, "message|2:ok|-|-1\n");
    free(got);
    free(in);
}

static void test_bom(void)
{
    expect("\xEF\xBB\xBF"
           "data: x\n\n",
           "message|1:x|-|-1\n");
    /* Only one leading BOM is dropped; a second one is part of the field name (unknown field). */
    expect("\xEF\xBB\xBF\xEF\xBB\xBF"
           "data: x\n\ndata: y\n\n",
           "message|1:y|-|-1\n");
    /* A partial BOM is ordinary bytes. */
    expect("\xEF\xBB"
           "data: x\n\ndata: y\n\n",
           "message|1:y|-|-1\n");
    expect("\xEF\n"
           "data: y\n\n",
           "message|1:y|-|-1\n");
    /* BOM split over three feeds. */
    struct sse_parser p;
    struct buf out;
    buf_init(&out, 4096);
    sse_parser_init(&p, 4096);
    CHECK_INT(sse_parser_feed(&p, "\xEF", 1, record_cb, &out), 0);
    CHECK_INT(sse_parser_feed(&p, "\xBB", 1, record_cb, &out), 0);
    CHECK_INT(sse_parser_feed(&p,
                              "\xBF"
                              "data: z\n\n",
                              10, record_cb, &out),
              0);
    CHECK_STR(out.data, "message|1:z|-|-1\n");
    sse_parser_release(&p);
    buf_release(&out);
}

static void test_id_and_retry(void)
{
    /* The last event ID persists across events until changed; an empty id clears it. */
    expect("id: 1\ndata: a\n\ndata: b\n\nid\ndata: c\n\n",
           "message|1:a|1|-1\nmessage|1:b|1|-1\nmessage|1:c|-|-1\n");
    /* An id containing NUL is ignored. */
    {
        static const char in[] = "id: 5\ndata: a\n\nid: x\0y\ndata: b\n\n";
        int rc;
        char *got = parse_all(in, sizeof(in) - 1, 4096, &rc);
        CHECK_INT(rc, 0);
        CHECK_STR(got, "message|1:a|5|-1\nmessage|1:b|5|-1\n");
        free(got);
    }
    /* retry must be all digits; otherwise ignored. */
    expect("retry: 12a\ndata: a\n\n", "message|1:a|-|-1\n");
    expect("retry: -5\ndata: a\n\n", "message|1:a|-|-1\n");
    expect("retry:\ndata: a\n\n", "message|1:a|-|-1\n");
    expect("retry:99999999999999999999999\ndata: a\n\n", "message|1:a|-|9223372036854775807\n");
    /* A block with only retry/id does not dispatch, but the parser remembers both. */
    struct sse_parser p;
    struct buf out;
    buf_init(&out, 4096);
    sse_parser_init(&p, 4096);
    static const char in[] = "retry: 3000\nid: 42\nevent: ignored\n\ndata: a\n\n";
    CHECK_INT(sse_parser_feed(&p, in, sizeof(in) - 1, record_cb, &out), 0);
    CHECK_STR(out.data, "message|1:a|42|-1\n"); /* the event type did not carry over */
    CHECK_INT(sse_parser_retry(&p), 3000);
    CHECK_STR(sse_parser_last_id(&p), "42");
    /* Reset for a reconnect drops the partial event but keeps id and retry. */
    CHECK_INT(sse_parser_feed(&p, "data: partial\n", 14, record_cb, &out), 0);
    sse_parser_reset_stream(&p);
    CHECK_INT(sse_parser_feed(&p,
                              "\xEF\xBB\xBF"
                              "data: b\n\n",
                              12, record_cb, &out),
              0);
    CHECK_STR(out.data, "message|1:a|42|-1\nmessage|1:b|42|-1\n");
    CHECK_INT(sse_parser_retry(&p), 3000);
    sse_parser_release(&p);
    buf_release(&out);
}

static void test_nul_in_data(void)
{
    static const char in[] = "data: a\0b\n\n";
    int rc;
    char *got = parse_all(in, sizeof(in) - 1, 4096, &rc);
    CHECK_INT(rc, 0);
    CHECK(memcmp(got, "message|3:a", 11) == 0);
    free(got);
}

static void test_limit(void)
{
    int rc;
    /* Exactly at the bound passes: "data: " + 10 bytes is a 16-byte line. */
    char *got = parse_all("data: 0123456789\n\n", 18, 16, &rc);
    CHECK_INT(rc, 0);
    CHECK_STR(got, "message|10:0123456789|-|-1\n");
    free(got);
    got = parse_all("data: 0123456789X\n\n", 19, 16, &rc);
    CHECK_INT(rc, ERR_LIMIT);
    CHECK_STR(got, "");
    free(got);
    /* Many small lines add up to the bound too. */
    got = parse_all("data: 0123\ndata: 4567\ndata: 89ab\ndata: cdef\n\n", 46, 16, &rc);
    CHECK_INT(rc, ERR_LIMIT);
    free(got);

    /* After a failure the parser stays failed. */
    struct sse_parser p;
    struct buf out;
    buf_init(&out, 4096);
    sse_parser_init(&p, 8);
    CHECK_INT(sse_parser_feed(&p, "data: 123456789", 15, record_cb, &out), ERR_LIMIT);
    CHECK_INT(sse_parser_feed(&p, "\n\ndata: a\n\n", 11, record_cb, &out), ERR_LIMIT);
    CHECK(out.len == 0);
    sse_parser_release(&p);
    buf_release(&out);
}

static int stop_cb(void *arg, const char *type, const char *data, size_t len, const char *id,
                   long long retry_ms)
{
    int *n = arg;
    return ++*n == 2 ? 77 : 0;
}

static void test_callback_stops(void)
{
    struct sse_parser p;
    int n = 0;
    sse_parser_init(&p, 4096);
    static const char in[] = "data: 1\n\ndata: 2\n\ndata: 3\n\n";
    CHECK_INT(sse_parser_feed(&p, in, sizeof(in) - 1, stop_cb, &n), 77);
    CHECK_INT(n, 2);
    CHECK_INT(sse_parser_feed(&p, in, sizeof(in) - 1, stop_cb, &n), 77);
    CHECK_INT(n, 2);
    sse_parser_release(&p);
}

/* A stream with every construct, including CR at places where a split separates it from LF. */
static const char sample[] = "\xEF\xBB\xBF"
                             ": hello\r\n"
                             "retry: 2500\r\n"
                             "event: message\r\n"
                             "id: 1\r\n"
                             "data: {\"jsonrpc\":\"2.0\",\"id\":1}\r\n"
                             "\r\n"
                             "data: caf\xC3\xA9\rdata:x\r\r"
                             "event: endpoint\n"
                             "data: /messages?sessionId=abc\n"
                             "\n"
                             "id\n"
                             ":\n"
                             "data\n"
                             "\n"
                             "data: tail";

static char *feed_split(const size_t *cuts, size_t ncuts)
{
    struct sse_parser p;
    struct buf out;
    buf_init(&out, 1 << 16);
    sse_parser_init(&p, 4096);
    size_t at = 0, len = sizeof(sample) - 1;
    for (size_t i = 0; i <= ncuts; i++) {
        size_t to = i < ncuts ? cuts[i] : len;
        /* Copy each piece so ASan catches a read past the chunk. */
        char *piece = malloc(to - at + 1);
        memcpy(piece, sample + at, to - at);
        CHECK_INT(sse_parser_feed(&p, piece, to - at, record_cb, &out), 0);
        free(piece);
        at = to;
    }
    sse_parser_release(&p);
    char *s = strdup(out.data ? out.data : "");
    buf_release(&out);
    return s;
}

static void test_every_split(void)
{
    const char *want = "message|24:{\"jsonrpc\":\"2.0\",\"id\":1}|1|2500\n"
                       "message|7:caf\xC3\xA9\nx|1|-1\n"
                       "endpoint|23:/messages?sessionId=abc|1|-1\n"
                       "message|0:|-|-1\n";
    char *whole = feed_split(NULL, 0);
    CHECK_STR(whole, want);
    free(whole);
    size_t len = sizeof(sample) - 1;
    for (size_t i = 0; i <= len; i++) {
        for (size_t j = i; j <= len; j++) {
            size_t cuts[2] = {i, j};
            char *got = feed_split(cuts, 2);
            if (strcmp(got, want) != 0) {
                fprintf(stderr, "split at %zu,%zu differs:\n%s\n", i, j, got);
                CHECK(0);
                free(got);
                return;
            }
            free(got);
        }
    }
    /* And one byte at a time. */
    size_t *cuts = malloc(len * sizeof(*cuts));
    for (size_t i = 0; i < len; i++)
        cuts[i] = i;
    char *got = feed_split(cuts, len);
    CHECK_STR(got, want);
    free(got);
    free(cuts);
}

TEST_MAIN(TEST(test_basic), TEST(test_line_endings), TEST(test_comments), TEST(test_bom),
          TEST(test_id_and_retry), TEST(test_nul_in_data), TEST(test_limit),
          TEST(test_callback_stops), TEST(test_every_split))
