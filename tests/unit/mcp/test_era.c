/*
 * Tests of the Mcp-Param-* header checks (src/mcp/era.c): which parameters an inputSchema marks
 * with x-mcp-header (nested properties chains only, primitive types only, token names), their
 * header text, and the server-side validation of a tools/call's headers against its arguments:
 * presence, "=?base64?…?=" decoding (padding, alphabet), literal values, numbers compared as
 * numbers, repeated headers, and a refusal (400, -32020) naming the header.
 */
#include "mcp/gateway.h"

#include <stdlib.h>

#include "test.h"

static const char *SCHEMA =
    "{\"type\":\"object\",\"properties\":{"
    "\"region\":{\"type\":\"string\",\"x-mcp-header\":\"Region\"},"
    "\"priority\":{\"type\":\"integer\",\"x-mcp-header\":\"Priority\"},"
    "\"verbose\":{\"type\":\"boolean\",\"x-mcp-header\":\"Verbose\"},"
    "\"score\":{\"type\":\"number\",\"x-mcp-header\":\"Score\"},"
    "\"bad\":{\"type\":\"string\",\"x-mcp-header\":\"My Region\"},"
    "\"plain\":{\"type\":\"string\"},"
    "\"nested\":{\"type\":\"object\",\"properties\":{"
    "\"tenant\":{\"type\":\"string\",\"x-mcp-header\":\"Tenant\"}}},"
    "\"list\":{\"type\":\"array\",\"items\":{\"type\":\"string\",\"x-mcp-header\":\"Item\"}}}}";

static json_t *load(const char *text)
{
    json_t *j = json_loads(text, 0, NULL);
    if (j == NULL)
        abort();
    return j;
}

static void test_list(void)
{
    json_t *schema = load(SCHEMA);
    json_t *args = load("{\"region\":\"eu\",\"priority\":null,\"nested\":{\"tenant\":\"t1\"}}");
    json_t *l = mcp_param_list(schema, args);
    CHECK_INT((int)json_array_size(l), 4); /* Region, Priority, Verbose, Tenant */
    size_t i;
    json_t *e;
    int seen = 0;
    json_array_foreach(l, i, e)
    {
        const char *h = json_string_value(json_object_get(e, "header"));
        json_t *v = json_object_get(e, "value");
        if (strcmp(h, "Region") == 0) {
            CHECK_STR(json_string_value(v), "eu");
            seen |= 1;
        } else if (strcmp(h, "Tenant") == 0) {
            CHECK_STR(json_string_value(v), "t1");
            CHECK_STR(json_string_value(json_object_get(e, "path")), "nested.tenant");
            seen |= 2;
        } else {
            CHECK(v == NULL); /* null or absent: no value, no header */
        }
    }
    CHECK_INT(seen, 3);
    json_decref(l);
    json_decref(args);
    json_decref(schema);
}

static void test_text(void)
{
    char buf[64];
    const char *t;
    size_t n;
    json_t *v = json_integer(-7);
    CHECK_INT(mcp_param_text(v, buf, sizeof(buf), &t, &n), 0);
    CHECK_STR(t, "-7");
    json_decref(v);
    CHECK_INT(mcp_param_text(json_true(), buf, sizeof(buf), &t, &n), 0);
    CHECK_STR(t, "true");
    v = json_object();
    CHECK_INT(mcp_param_text(v, buf, sizeof(buf), &t, &n), ERR_INVAL);
    json_decref(v);
}

/* What the gateway sends upstream: header text per parameter with a primitive value only. */
static void test_headers(void)
{
    json_t *schema = load(SCHEMA);
    json_t *args =
        load("{\"region\":\"Z\u00fcrich\",\"priority\":3,\"verbose\":null,\"plain\":\"p\","
             "\"nested\":{\"tenant\":{\"not\":\"primitive\"}}}");
    json_t *h = mcp_param_headers(schema, args);
    CHECK_INT((int)json_object_size(h), 2);
    CHECK_STR(json_string_value(json_object_get(h, "Region")), "Z\xc3\xbcrich");
    CHECK_STR(json_string_value(json_object_get(h, "Priority")), "3");
    json_decref(h);
    json_t *none = json_object();
    CHECK(mcp_param_headers(schema, none) == NULL);
    CHECK(mcp_param_headers(NULL, args) == NULL);
    json_decref(none);
    json_decref(args);
    json_decref(schema);
}

/* Validate a call with `args` and the given header (name NULL: none); returns the refusal's
   message (caller frees) or NULL when accepted. */
static char *run(const char *args, const char *name, const char *value, const char *name2,
                 const char *value2)
{
    json_t *schema = load(SCHEMA);
    json_t *msg = json_pack("{s:s, s:i, s:s, s:{s:s, s:o}}", "jsonrpc", "2.0", "id", 1, "method",
                            "tools/call", "params", "name", "t", "arguments", load(args));
    struct mcp_param_header hs[2];
    size_t n = 0;
    if (name)
        hs[n++] = (struct mcp_param_header){name, strlen(name), value, strlen(value)};
    if (name2)
        hs[n++] = (struct mcp_param_header){name2, strlen(name2), value2, strlen(value2)};
    struct mcp_era_refusal r;
    char *out = NULL;
    if (mcp_era_validate_params(hs, n, schema, msg, &r) != 0) {
        CHECK_INT(r.status, 400);
        json_t *e = json_object_get(r.error, "error");
        CHECK_INT((int)json_integer_value(json_object_get(e, "code")), MCP_ERR_HEADER_MISMATCH);
        out = strdup(json_string_value(json_object_get(e, "message")));
        json_decref(r.error);
    }
    json_decref(msg);
    json_decref(schema);
    return out;
}

#define ACCEPT(args, n, v)                                                                         \
    do {                                                                                           \
        char *m_ = run(args, n, v, NULL, NULL);                                                    \
        if (m_)                                                                                    \
            fprintf(stderr, "refused: %s\n", m_);                                                  \
        CHECK(m_ == NULL);                                                                         \
        free(m_);                                                                                  \
    } while (0)
#define REFUSE(args, n, v, needle)                                                                 \
    do {                                                                                           \
        char *m_ = run(args, n, v, NULL, NULL);                                                    \
        CHECK(m_ != NULL);                                                                         \
        if (m_)                                                                                    \
            CHECK_CONTAINS(m_, needle);                                                            \
        free(m_);                                                                                  \
    } while (0)

static void test_validate(void)
{
    ACCEPT("{\"region\":\"us-west1\"}", "Region", "us-west1");
    ACCEPT("{\"region\":\"us-west1\"}", "region", "  us-west1 "); /* name case, OWS */
    ACCEPT("{\"region\":\"Hello\"}", "Region", "=?base64?SGVsbG8=?=");
    ACCEPT("{\"region\":\"Hello, 世界\"}", "Region", "=?base64?SGVsbG8sIOS4lueVjA==?=");
    ACCEPT("{\"region\":\"SGVsbG8=\"}", "Region", "SGVsbG8=");                   /* literal */
    ACCEPT("{\"region\":\"=?base64?SGVsbG8=\"}", "Region", "=?base64?SGVsbG8="); /* no suffix */
    ACCEPT("{\"priority\":42}", "Priority", "42.0");
    ACCEPT("{\"verbose\":false}", "Verbose", "false");
    ACCEPT("{\"nested\":{\"tenant\":\"a\"}}", "Tenant", "a");
    ACCEPT("{\"region\":null}", NULL, NULL);
    ACCEPT("{\"plain\":\"x\"}", NULL, NULL);
    ACCEPT("{\"region\":\"x\"}", "Region", "x"); /* unknown Mcp-Param-* headers are ignored: */
    {
        char *m = run("{\"region\":\"x\"}", "Region", "x", "Other", "y");
        CHECK(m == NULL);
        free(m);
    }
    REFUSE("{\"region\":\"test-value\"}", NULL, NULL, "Mcp-Param-Region header is missing");
    REFUSE("{\"region\":\"Hello\"}", "Region", "=?base64?SGVsbG8?=", "Mcp-Param-Region");
    REFUSE("{\"region\":\"Hello\"}", "Region", "=?base64?SGVs!!!bG8=?=", "not valid");
    REFUSE("{\"region\":\"a\"}", "Region", "b", "does not match body value 'a'");
    REFUSE("{\"region\":\"a\\nb\"}", "Region", "a\nb", "not valid");
    REFUSE("{\"priority\":42}", "Priority", "43", "Mcp-Param-Priority");
    REFUSE("{\"priority\":42}", "Priority", "42abc", "does not match");
    REFUSE("{\"verbose\":true}", "Verbose", "True", "does not match");
    REFUSE("{}", "Region", "x", "present but arguments.region has no value");
    char *m = run("{\"region\":\"x\"}", "Region", "x", "REGION", "x");
    CHECK(m != NULL && strstr(m, "appears 2 times") != NULL);
    free(m);
}

static void test_method_label(void)
{
    CHECK_STR(mcp_era_method_label("tools/call"), "tools/call");
    CHECK_STR(mcp_era_method_label("server/discover"), "server/discover");
    CHECK_STR(mcp_era_method_label("(close session)"), "(close session)");
    CHECK_STR(mcp_era_method_label("bogus/1"), "(other)");
    CHECK_STR(mcp_era_method_label("(made up)"), "(other)"); /* only the gateway's own */
    CHECK_STR(mcp_era_method_label("tools/call "), "(other)");
    CHECK_STR(mcp_era_method_label(""), "(other)");
    CHECK_STR(mcp_era_method_label(NULL), "(other)");
}

TEST_MAIN(TEST(test_list), TEST(test_text), TEST(test_headers), TEST(test_validate),
          TEST(test_method_label))
