/*
 * Tests of JSON-RPC parsing and construction (src/mcp/jsonrpc.c): each message kind, every id
 * form MCP allows and refuses (0, negative, string, the int64 edges, null, float, bool), the
 * refusal of batches and duplicate keys (also nested), the id handed back on ERR_INVAL so the
 * error answer can carry it, and the builders' shapes and reference handling.
 */
#include "mcp/jsonrpc.h"

#include <stdint.h>
#include <stdlib.h>

#include "test.h"

/* Parse `body`; on success return the message (caller frees), and report kind and id. */
static int parse(const char *body, json_t **msg, enum jsonrpc_kind *kind, json_t **id,
                 struct err_info *ei)
{
    *msg = NULL;
    return jsonrpc_parse(body, strlen(body), msg, kind, id, ei);
}

#define EXPECT_KIND(body, k)                                                                       \
    do {                                                                                           \
        json_t *m_, *id_;                                                                          \
        enum jsonrpc_kind k_ = (enum jsonrpc_kind) - 1;                                            \
        struct err_info ei_ = {0};                                                                 \
        int e_ = parse((body), &m_, &k_, &id_, &ei_);                                              \
        if (e_)                                                                                    \
            fprintf(stderr, "%s: %s\n", (body), ei_.msg);                                          \
        CHECK_INT(e_, 0);                                                                          \
        CHECK_INT(k_, k);                                                                          \
        CHECK(m_ != NULL && json_is_object(m_));                                                   \
        json_decref(m_);                                                                           \
        json_decref(id_);                                                                          \
    } while (0)

/* Refused with `code` and a message containing `needle`; has_id says whether an id came back. */
#define EXPECT_REFUSED(body, code, needle, has_id)                                                 \
    do {                                                                                           \
        json_t *m_ = NULL, *id_ = (json_t *)1;                                                     \
        enum jsonrpc_kind k_;                                                                      \
        struct err_info ei_ = {0};                                                                 \
        CHECK_INT(parse((body), &m_, &k_, &id_, &ei_), code);                                      \
        CHECK(m_ == NULL);                                                                         \
        CHECK_CONTAINS(ei_.msg, needle);                                                           \
        CHECK_INT(id_ != NULL, has_id);                                                            \
        json_decref(id_);                                                                          \
    } while (0)

static void test_kinds(void)
{
    EXPECT_KIND("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}", JSONRPC_REQUEST);
    EXPECT_KIND("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{}}",
                JSONRPC_REQUEST);
    EXPECT_KIND("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}",
                JSONRPC_NOTIFICATION);
    EXPECT_KIND("{\"jsonrpc\":\"2.0\",\"id\":\"a\",\"result\":{}}", JSONRPC_RESULT);
    EXPECT_KIND("{\"jsonrpc\":\"2.0\",\"id\":\"a\",\"result\":null}", JSONRPC_RESULT);
    EXPECT_KIND("{\"jsonrpc\":\"2.0\",\"id\":7,\"error\":{\"code\":-32601,\"message\":\"no\"}}",
                JSONRPC_ERROR);
    EXPECT_KIND(
        "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32700,\"message\":\"x\",\"data\":[1]}}",
        JSONRPC_ERROR);
    /* Unknown members are kept, whitespace around the object is fine. */
    json_t *m, *id;
    enum jsonrpc_kind k;
    struct err_info ei = {0};
    CHECK_INT(parse(" \n{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\",\"_meta\":{\"a\":1}}\t\r\n",
                    &m, &k, &id, &ei),
              0);
    CHECK(json_object_get(m, "_meta") != NULL);
    CHECK_STR(jsonrpc_method(m), "x");
    CHECK_INT(json_integer_value(id), 1);
    json_decref(m);
    json_decref(id);
}

static void test_ids(void)
{
    static const struct {
        const char *id;
        int ok;
    } cases[] = {
        {"0", 1},
        {"-1", 1},
        {"-9223372036854775808", 1},
        {"9223372036854775807", 1},
        {"\"\"", 1},
        {"\"x\\u00e9\"", 1},
        {"null", 0},
        {"1.0", 0},
        {"1e3", 0},
        {"true", 0},
        {"[1]", 0},
        {"{}", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char body[256];
        snprintf(body, sizeof(body), "{\"jsonrpc\":\"2.0\",\"id\":%s,\"method\":\"m\"}",
                 cases[i].id);
        json_t *m = NULL, *id = NULL;
        enum jsonrpc_kind k;
        struct err_info ei = {0};
        int err = parse(body, &m, &k, &id, &ei);
        if (cases[i].ok) {
            CHECK_INT(err, 0);
            CHECK_INT(k, JSONRPC_REQUEST);
            CHECK(id != NULL && json_equal(id, json_object_get(m, "id")));
        } else {
            CHECK_INT(err, ERR_INVAL);
            CHECK(m == NULL && id == NULL);
            CHECK_CONTAINS(ei.msg, strcmp(cases[i].id, "null") == 0
                                       ? "\"id\" must not be null (MCP forbids null request ids)"
                                       : "\"id\" must be a string or an integer");
        }
        json_decref(m);
        json_decref(id);
    }
    /* Integers beyond int64 are not representable: refused as a parse error, not wrapped. */
    EXPECT_REFUSED("{\"jsonrpc\":\"2.0\",\"id\":9223372036854775808,\"method\":\"m\"}", ERR_PARSE,
                   "too big", 0);
    EXPECT_REFUSED("{\"jsonrpc\":\"2.0\",\"id\":-9223372036854775809,\"method\":\"m\"}", ERR_PARSE,
                   "too big", 0);
    /* Result ids: the same rules; an error may carry null or omit the id. */
    EXPECT_REFUSED("{\"jsonrpc\":\"2.0\",\"id\":null,\"result\":1}", ERR_INVAL,
                   "a result must carry a string or integer \"id\"", 0);
    EXPECT_REFUSED("{\"jsonrpc\":\"2.0\",\"result\":1}", ERR_INVAL,
                   "a result must carry a string or integer \"id\"", 0);
    EXPECT_REFUSED("{\"jsonrpc\":\"2.0\",\"id\":1.5,\"error\":{\"code\":1,\"message\":\"m\"}}",
                   ERR_INVAL, "an error must carry a string, integer or null \"id\"", 0);
}

static void test_refusals(void)
{
    /* JSON that is not an object is an invalid request, not a parse error. */
    EXPECT_REFUSED("42", ERR_INVAL, "a JSON-RPC message must be a JSON object", 0);
    EXPECT_REFUSED("\"x\"", ERR_INVAL, "a JSON-RPC message must be a JSON object", 0);
    EXPECT_REFUSED("null", ERR_INVAL, "a JSON-RPC message must be a JSON object", 0);
    /* A response always carries an id (null when unknown). */
    EXPECT_REFUSED("{\"jsonrpc\":\"2.0\",\"error\":{\"code\":1,\"message\":\"no id\"}}", ERR_INVAL,
                   "an error must carry a string, integer or null \"id\"", 0);
    EXPECT_REFUSED("", ERR_PARSE, "body is not valid JSON", 0);
    EXPECT_REFUSED("{", ERR_PARSE, "body is not valid JSON", 0);
    EXPECT_REFUSED("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"m\"} {}", ERR_PARSE,
                   "body is not valid JSON", 0);
    EXPECT_REFUSED("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"m\"}x", ERR_PARSE,
                   "body is not valid JSON", 0);
    /* \u0000 is valid JSON, but a NUL in the method would let two readers see different
       methods: refused as an invalid request, with the id kept for the answer. */
    EXPECT_REFUSED("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"a\\u0000b\"}", ERR_INVAL,
                   "\"method\" must not contain NUL characters", 1);
    EXPECT_REFUSED("{\"jsonrpc\":\"2.0\",\"method\":\"\\u0000\"}", ERR_INVAL,
                   "\"method\" must not contain NUL characters", 0);
    {
        /* Elsewhere (ids, params) a NUL is kept as data, length intact. */
        json_t *m = NULL, *id = NULL;
        enum jsonrpc_kind k;
        CHECK_INT(
            parse(
                "{\"jsonrpc\":\"2.0\",\"id\":\"a\\u0000b\",\"method\":\"m\",\"params\":{\"k\":\"\\u0000\"}}",
                &m, &k, &id, NULL),
            0);
        CHECK_INT(json_string_length(id), 3);
        CHECK(memcmp(json_string_value(id), "a\0b", 3) == 0);
        json_decref(m);
        json_decref(id);
    }
    /* Scalars and batches. */
    /* Top-level scalars are refused. (They are valid JSON, so -32600 would be the precise
       answer; jansson without JSON_DECODE_ANY reports them as not JSON: see the bug report.) */
    {
        static const char *const scalars[] = {"42", "\"x\"", "null", "true"};
        for (size_t i = 0; i < 4; i++) {
            json_t *m = NULL, *id = NULL;
            enum jsonrpc_kind k;
            CHECK(parse(scalars[i], &m, &k, &id, NULL) != 0);
            CHECK(m == NULL && id == NULL);
        }
    }
    EXPECT_REFUSED("[]", ERR_INVAL, "JSON-RPC batches are not supported", 0);
    EXPECT_REFUSED("[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"m\"}]", ERR_INVAL,
                   "JSON-RPC batches are not supported", 0);
    /* Version. */
    EXPECT_REFUSED("{\"id\":1,\"method\":\"m\"}", ERR_INVAL,
                   "\"jsonrpc\" must be the string \"2.0\"", 1);
    EXPECT_REFUSED("{\"jsonrpc\":2.0,\"id\":1,\"method\":\"m\"}", ERR_INVAL,
                   "\"jsonrpc\" must be the string \"2.0\"", 1);
    EXPECT_REFUSED("{\"jsonrpc\":\"2.00\",\"id\":\"z\",\"method\":\"m\"}", ERR_INVAL,
                   "\"jsonrpc\" must be the string \"2.0\"", 1);
    EXPECT_REFUSED("{\"jsonrpc\":\"1.0\",\"id\":1,\"method\":\"m\"}", ERR_INVAL,
                   "\"jsonrpc\" must be the string \"2.0\"", 1);
    /* Method. */
    EXPECT_REFUSED("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\"}", ERR_INVAL,
                   "\"method\" must be a non-empty string", 1);
    EXPECT_REFUSED("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":5}", ERR_INVAL,
                   "\"method\" must be a non-empty string", 1);
    EXPECT_REFUSED("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":null}", ERR_INVAL,
                   "\"method\" must be a non-empty string", 1);
    EXPECT_REFUSED("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"m\",\"result\":{}}", ERR_INVAL,
                   "a request must not carry \"result\" or \"error\"", 1);
    EXPECT_REFUSED("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"m\",\"error\":null}", ERR_INVAL,
                   "a request must not carry \"result\" or \"error\"", 1);
    /* Params must be an object; positional params are refused. */
    EXPECT_REFUSED("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"m\",\"params\":[1]}", ERR_INVAL,
                   "\"params\" must be an object", 1);
    EXPECT_REFUSED("{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"params\":null}", ERR_INVAL,
                   "\"params\" must be an object", 0);
    EXPECT_REFUSED("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"m\",\"params\":\"x\"}", ERR_INVAL,
                   "\"params\" must be an object", 1);
    /* Responses. */
    EXPECT_REFUSED(
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":1,\"error\":{\"code\":1,\"message\":\"m\"}}",
        ERR_INVAL, "must not carry both \"result\" and \"error\"", 1);
    EXPECT_REFUSED("{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":\"1\",\"message\":\"m\"}}",
                   ERR_INVAL, "\"error\" must be an object with an integer \"code\"", 1);
    EXPECT_REFUSED("{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":1}}", ERR_INVAL,
                   "\"error\" must be an object with an integer \"code\"", 1);
    EXPECT_REFUSED("{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":\"boom\"}", ERR_INVAL,
                   "\"error\" must be an object with an integer \"code\"", 1);
    EXPECT_REFUSED("{\"jsonrpc\":\"2.0\",\"id\":1}", ERR_INVAL,
                   "not a request (no \"method\") nor a response", 1);
    EXPECT_REFUSED("{}", ERR_INVAL, "\"jsonrpc\" must be the string \"2.0\"", 0);
}

static void test_duplicates(void)
{
    EXPECT_REFUSED("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"a\",\"method\":\"b\"}", ERR_PARSE,
                   "duplicate object key", 0);
    EXPECT_REFUSED("{\"jsonrpc\":\"2.0\",\"id\":1,\"id\":2,\"method\":\"a\"}", ERR_PARSE,
                   "duplicate object key", 0);
    EXPECT_REFUSED("{\"jsonrpc\":\"2.0\",\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"a\"}", ERR_PARSE,
                   "duplicate object key", 0);
    /* Nested objects too: "name" twice in tools/call params would route one way, run another. */
    EXPECT_REFUSED(
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"a\",\"name\":\"b\"}}",
        ERR_PARSE, "duplicate object key", 0);
    /* An escaped spelling of the same key is the same key. */
    EXPECT_REFUSED("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"a\",\"m\\u0065thod\":\"b\"}",
                   ERR_PARSE, "duplicate object key", 0);
    /* The location is reported. */
    json_t *m, *id;
    enum jsonrpc_kind k;
    struct err_info ei = {0};
    CHECK_INT(parse("{\"jsonrpc\":\"2.0\",\n\"id\":1,\n\"id\":2}", &m, &k, &id, &ei), ERR_PARSE);
    CHECK_INT(ei.line, 3);
    CHECK(ei.column > 0);
    CHECK_CONTAINS(ei.msg, "line 3");
}

static void test_id_returned_on_inval(void)
{
    json_t *m = NULL, *id = NULL;
    enum jsonrpc_kind k;
    struct err_info ei = {0};
    CHECK_INT(parse("{\"jsonrpc\":\"1.0\",\"id\":\"req-9\",\"method\":\"m\"}", &m, &k, &id, &ei),
              ERR_INVAL);
    CHECK(m == NULL);
    CHECK_STR(json_string_value(id), "req-9");
    json_decref(id);
    CHECK_INT(
        parse("{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"m\",\"params\":1}", &m, &k, &id, &ei),
        ERR_INVAL);
    CHECK(json_is_integer(id) && json_integer_value(id) == 0);
    json_decref(id);
    /* A refused id (a float) is not handed back. */
    CHECK_INT(parse("{\"jsonrpc\":\"2.0\",\"id\":1.5,\"method\":\"m\"}", &m, &k, &id, &ei),
              ERR_INVAL);
    CHECK(id == NULL);
    /* Not an object: no id. */
    CHECK_INT(parse("[{\"id\":1}]", &m, &k, &id, &ei), ERR_INVAL);
    CHECK(id == NULL);
    /* A NULL err_info is allowed. */
    CHECK_INT(parse("[]", &m, &k, &id, NULL), ERR_INVAL);
    CHECK_INT(parse("nope", &m, &k, &id, NULL), ERR_PARSE);
    /* Length is honoured: the body need not be NUL-terminated, and bytes past len are ignored. */
    static const char two[] = "{\"jsonrpc\":\"2.0\",\"method\":\"m\"}GARBAGE";
    CHECK_INT(jsonrpc_parse(two, sizeof(two) - 1 - 7, &m, &k, &id, &ei), 0);
    CHECK_INT(k, JSONRPC_NOTIFICATION);
    CHECK(id == NULL);
    json_decref(m);
}

static void test_classify(void)
{
    enum jsonrpc_kind k;
    struct err_info ei = {0};
    json_t *m = json_pack("{s:s, s:I, s:o}", "jsonrpc", "2.0", "id", (json_int_t)-5, "result",
                          json_object());
    CHECK_INT(jsonrpc_classify(m, &k, &ei), 0);
    CHECK_INT(k, JSONRPC_RESULT);
    json_decref(m);
    CHECK_INT(jsonrpc_classify(NULL, &k, &ei), ERR_INVAL);
    json_t *arr = json_array();
    CHECK_INT(jsonrpc_classify(arr, &k, NULL), ERR_INVAL);
    json_decref(arr);
    CHECK(jsonrpc_method(NULL) == NULL);
}

static void test_builders(void)
{
    json_t *id = json_integer(0);
    json_t *e = jsonrpc_error_new(id, JSONRPC_METHOD_NOT_FOUND, "no such method",
                                  json_pack("{s:s}", "method", "x"));
    char *s = json_dumps(e, JSON_COMPACT | JSON_SORT_KEYS);
    CHECK_STR(
        s,
        "{\"error\":{\"code\":-32601,\"data\":{\"method\":\"x\"},\"message\":\"no such method\"},"
        "\"id\":0,\"jsonrpc\":\"2.0\"}");
    free(s);
    json_decref(e);
    CHECK_INT(id->refcount, 1); /* borrowed, not stolen */

    e = jsonrpc_error_new(NULL, JSONRPC_PARSE_ERROR, "bad", NULL);
    s = json_dumps(e, JSON_COMPACT | JSON_SORT_KEYS);
    CHECK_STR(s,
              "{\"error\":{\"code\":-32700,\"message\":\"bad\"},\"id\":null,\"jsonrpc\":\"2.0\"}");
    free(s);
    /* An error we build is one we accept. */
    enum jsonrpc_kind k;
    CHECK_INT(jsonrpc_classify(e, &k, NULL), 0);
    CHECK_INT(k, JSONRPC_ERROR);
    json_decref(e);

    json_t *r = jsonrpc_result_new(id, json_pack("{s:b}", "ok", 1));
    CHECK_INT(jsonrpc_classify(r, &k, NULL), 0);
    CHECK_INT(k, JSONRPC_RESULT);
    CHECK(json_object_get(r, "id") == id);
    json_decref(r);

    json_t *q = jsonrpc_request_new(id, "sampling/createMessage", json_object());
    CHECK_INT(jsonrpc_classify(q, &k, NULL), 0);
    CHECK_INT(k, JSONRPC_REQUEST);
    CHECK_STR(jsonrpc_method(q), "sampling/createMessage");
    json_decref(q);
    q = jsonrpc_request_new(id, "ping", NULL);
    CHECK(json_object_get(q, "params") == NULL);
    json_decref(q);

    json_t *n = jsonrpc_notification_new("notifications/tools/list_changed", NULL);
    CHECK_INT(jsonrpc_classify(n, &k, NULL), 0);
    CHECK_INT(k, JSONRPC_NOTIFICATION);
    CHECK(json_object_get(n, "id") == NULL);
    json_decref(n);
    n = jsonrpc_notification_new("notifications/progress", json_pack("{s:i}", "progress", 1));
    CHECK_INT(json_integer_value(json_object_get(json_object_get(n, "params"), "progress")), 1);
    json_decref(n);
    CHECK_INT(id->refcount, 1);
    json_decref(id);

    /* A string id round-trips through a response. */
    json_t *sid = json_string("abc");
    r = jsonrpc_result_new(sid, json_object());
    CHECK_STR(json_string_value(json_object_get(r, "id")), "abc");
    json_decref(r);
    json_decref(sid);
}

/* A large but valid body parses; deep nesting is bounded by jansson, never a crash. */
static void test_large_and_deep(void)
{
    size_t n = 1 << 20;
    char *body = malloc(n + 128);
    int off = snprintf(body, n + 128, "{\"jsonrpc\":\"2.0\",\"id\":\"");
    memset(body + off, 'x', n);
    snprintf(body + off + n, 128, "\",\"method\":\"m\"}");
    json_t *m, *id;
    enum jsonrpc_kind k;
    struct err_info ei = {0};
    CHECK_INT(jsonrpc_parse(body, strlen(body), &m, &k, &id, &ei), 0);
    CHECK_INT(json_string_length(id), n);
    json_decref(m);
    json_decref(id);

    size_t depth = 100000;
    char *deep = malloc(2 * depth + 64);
    size_t p = (size_t)sprintf(deep, "{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"params\":{\"a\":");
    for (size_t i = 0; i < depth; i++)
        deep[p++] = '[';
    for (size_t i = 0; i < depth; i++)
        deep[p++] = ']';
    deep[p++] = '}';
    deep[p++] = '}';
    CHECK_INT(jsonrpc_parse(deep, p, &m, &k, &id, &ei), ERR_INVAL);
    CHECK_CONTAINS(ei.msg, "deeper than the gateway's limit of 128 levels");
    free(deep);
    free(body);
}

/* The pre-scan bounds containers and values before jansson allocates anything; brackets, commas
   and escaped quotes inside strings are not counted. */
static void test_parse_cost_bounds(void)
{
    json_t *m, *id;
    enum jsonrpc_kind k;
    struct err_info ei = {0};
    size_t n = JSONRPC_MAX_CONTAINERS + 1;
    char *body = malloc(3 * n + 128);
    size_t p = (size_t)sprintf(body, "{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"params\":[");
    for (size_t i = 0; i < n; i++)
        p += (size_t)sprintf(body + p, "%s{}", i ? "," : "");
    p += (size_t)sprintf(body + p, "]}");
    CHECK_INT(jsonrpc_parse(body, p, &m, &k, &id, &ei), ERR_LIMIT);
    CHECK_CONTAINS(ei.msg, "objects and arrays than the gateway's limit of 20000");
    free(body);

    n = JSONRPC_MAX_VALUES + 1;
    body = malloc(2 * n + 128);
    p = (size_t)sprintf(body, "{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"params\":[");
    for (size_t i = 0; i < n; i++)
        p += (size_t)sprintf(body + p, "%s0", i ? "," : "");
    p += (size_t)sprintf(body + p, "]}");
    CHECK_INT(jsonrpc_parse(body, p, &m, &k, &id, &ei), ERR_LIMIT);
    CHECK_CONTAINS(ei.msg, "more JSON values than the gateway's limit of 250000");
    free(body);

    /* The same bytes inside a string cost one value. */
    n = 1 << 20;
    body = malloc(n + 128);
    p = (size_t)sprintf(body, "{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"params\":{\"s\":\"\\\"");
    for (size_t i = 0; i < n / 4; i++)
        p += (size_t)sprintf(body + p, "{[,:");
    p += (size_t)sprintf(body + p, "\"}}");
    CHECK_INT(jsonrpc_parse(body, p, &m, &k, &id, &ei), 0);
    json_decref(m);
    free(body);
}

TEST_MAIN(TEST(test_kinds), TEST(test_ids), TEST(test_refusals), TEST(test_duplicates),
          TEST(test_id_returned_on_inval), TEST(test_classify), TEST(test_builders),
          TEST(test_large_and_deep), TEST(test_parse_cost_bounds))
