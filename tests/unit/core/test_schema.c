/* The arguments check (core/schema.h) as the MCP path calls it, on a tool's whole arguments
   object: each rule refused with the path of the value and the rule, every keyword it does not
   support ignored, and malformed schemas never refusing a right value nor crashing. (The
   OpenAPI path, one argument at a time, is tested in tests/unit/openapi/test_request.c.) */
#include <jansson.h>

#include "core/schema.h"
#include "test.h"

static json_t *j(const char *text)
{
    json_error_t e;
    json_t *v = json_loads(text, JSON_DECODE_ANY, &e);
    if (v == NULL)
        fprintf(stderr, "bad test JSON %s: %s\n", text, e.text);
    return v;
}

/* args against schema, whole arguments of tool "t": 0, or the refusal's message and path */
static int run(const char *schema, const char *args, struct err_info *ei)
{
    json_t *s = j(schema), *a = j(args);
    *ei = (struct err_info){0};
    int rc = schema_check(s, a, NULL, "t", ei);
    json_decref(s);
    json_decref(a);
    return rc;
}

#define PASS(schema, args)                                                                         \
    do {                                                                                           \
        struct err_info e_;                                                                        \
        int rc_ = run(schema, args, &e_);                                                          \
        if (rc_ != 0)                                                                              \
            fprintf(stderr, "refused: %s\n", e_.msg);                                              \
        CHECK_INT(rc_, 0);                                                                         \
    } while (0)

#define REFUSE(schema, args, path, message)                                                        \
    do {                                                                                           \
        struct err_info e_;                                                                        \
        CHECK_INT(run(schema, args, &e_), ERR_INVAL);                                              \
        CHECK_STR(e_.msg, message);                                                                \
        CHECK_STR(e_.where, path);                                                                 \
    } while (0)

static const char sum[] = "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"number\"},"
                          "\"b\":{\"type\":\"number\"}},\"required\":[\"a\",\"b\"]}";

static void test_types(void)
{
    PASS(sum, "{\"a\":1,\"b\":2.5}");
    PASS(sum, "{\"a\":1,\"b\":2,\"extra\":\"not in the schema\"}");
    REFUSE(sum, "{\"a\":\"1\",\"b\":2}", "a",
           "argument 'a' of tool 't' must be a number, not a string");
    REFUSE(sum, "{\"a\":1,\"b\":{\"x\":1}}", "b",
           "argument 'b' of tool 't' must be a number, not an object");
    REFUSE(sum, "[1,2]", "", "the arguments of tool 't' must be an object, not an array");
    const char *s = "{\"properties\":{\"n\":{\"type\":\"integer\"},\"f\":{\"type\":\"boolean\"},"
                    "\"u\":{\"type\":[\"string\",\"null\"]},\"o\":{\"type\":\"string\","
                    "\"nullable\":true},\"l\":{\"type\":\"array\"}}}";
    PASS(s, "{\"n\":3,\"f\":false,\"u\":null,\"o\":null,\"l\":[]}");
    PASS(s, "{\"n\":3.0}"); /* an integer written with a fraction of zero */
    REFUSE(s, "{\"n\":3.5}", "n", "argument 'n' of tool 't' must be an integer, not a number");
    REFUSE(s, "{\"f\":\"true\"}", "f", "argument 'f' of tool 't' must be a boolean, not a string");
    REFUSE(s, "{\"u\":7}", "u",
           "argument 'u' of tool 't' must be a string or null, not an integer");
    REFUSE(s, "{\"l\":\"x\"}", "l", "argument 'l' of tool 't' must be an array, not a string");
}

static void test_required_enum(void)
{
    REFUSE(sum, "{\"a\":1}", "b", "missing required argument 'b' for tool 't'");
    REFUSE(sum, "{}", "a", "missing required argument 'a' for tool 't'");
    const char *s = "{\"properties\":{\"op\":{\"type\":\"string\",\"enum\":[\"add\",\"sub\"]},"
                    "\"n\":{\"enum\":[1,null,{\"k\":true}]}}}";
    PASS(s, "{\"op\":\"sub\",\"n\":{\"k\":true}}");
    PASS(s, "{\"n\":null}");
    REFUSE(s, "{\"op\":\"mul\"}", "op",
           "argument 'op' of tool 't' must be one of [\"add\",\"sub\"]");
    REFUSE(s, "{\"n\":2}", "n", "argument 'n' of tool 't' must be one of [1,null,{\"k\":true}]");
}

static void test_nested(void)
{
    const char *s = "{\"type\":\"object\",\"properties\":{\"filter\":{\"type\":\"object\","
                    "\"required\":[\"status\"],\"properties\":{\"status\":{\"enum\":[\"open\"]},"
                    "\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"object\",\"properties\":"
                    "{\"id\":{\"type\":\"integer\"}}}}}}}}";
    PASS(s, "{\"filter\":{\"status\":\"open\",\"tags\":[{\"id\":1},{\"id\":2}]}}");
    REFUSE(s, "{\"filter\":{\"status\":\"closed\"}}", "filter.status",
           "argument 'filter.status' of tool 't' must be one of [\"open\"]");
    REFUSE(s, "{\"filter\":{}}", "filter",
           "argument 'filter' of tool 't' lacks its required member 'status'");
    REFUSE(s, "{\"filter\":{\"status\":\"open\",\"tags\":[{\"id\":1},{\"id\":\"2\"}]}}",
           "filter.tags[1].id",
           "argument 'filter.tags[1].id' of tool 't' must be an integer, not a string");
    REFUSE("{\"properties\":{\"ids\":{\"items\":{\"type\":\"string\"}}}}", "{\"ids\":[\"a\",5]}",
           "ids[1]", "argument 'ids[1]' of tool 't' must be a string, not an integer");
}

/* What the check does not support is ignored, documented in docs/configuration.md. */
static void test_unsupported_ignored(void)
{
    PASS("{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{}}", "{\"x\":1}");
    PASS("{\"properties\":{\"a\":{\"$ref\":\"#/$defs/n\"}},\"$defs\":{\"n\":{\"type\":"
         "\"number\"}}}",
         "{\"a\":\"x\"}");
    PASS("{\"properties\":{\"a\":{\"oneOf\":[{\"type\":\"number\"}]},\"b\":{\"anyOf\":[{\"type\":"
         "\"number\"}]},\"c\":{\"allOf\":[{\"type\":\"number\"}]}}}",
         "{\"a\":\"x\",\"b\":\"x\",\"c\":\"x\"}");
    PASS("{\"properties\":{\"a\":{\"type\":\"string\",\"format\":\"email\",\"pattern\":\"^z$\","
         "\"minLength\":5},\"n\":{\"type\":\"number\",\"minimum\":10,\"maximum\":0}}}",
         "{\"a\":\"x\",\"n\":5}");
}

/* A schema the server sent that is itself malformed: a keyword the check cannot read holds
   nothing, so a right value always passes, and nothing crashes. */
static void test_malformed_schema(void)
{
    static const char *const schemas[] = {
        "null",
        "42",
        "\"object\"",
        "[]",
        "{\"type\":42}",
        "{\"type\":[]}",
        "{\"type\":[1,\"string\"]}",
        "{\"type\":\"file\"}",
        "{\"type\":[\"string\",\"file\"]}",
        "{\"type\":{\"not\":\"a name\"}}",
        "{\"required\":\"a\"}",
        "{\"required\":[1,null,{}]}",
        "{\"properties\":[{\"type\":\"string\"}]}",
        "{\"properties\":{\"a\":7,\"b\":[],\"c\":null}}",
        "{\"properties\":{\"a\":{\"type\":null,\"enum\":{},\"items\":5,\"properties\":\"x\"}}}",
        "{\"properties\":{\"a\":{\"enum\":[]}}}",
        "{\"properties\":{\"a\":{\"enum\":\"abc\"}}}",
        "{\"properties\":{\"a\":{\"items\":[{\"type\":\"string\"}]}}}",
        "{\"nullable\":\"yes\",\"properties\":{\"a\":{\"nullable\":1}}}",
    };
    for (size_t i = 0; i < sizeof(schemas) / sizeof(schemas[0]); i++) {
        PASS(schemas[i], "{\"a\":[1,{\"k\":\"v\"}],\"b\":\"s\",\"c\":3}");
        PASS(schemas[i], "{}");
    }
    struct err_info ei = {0};
    CHECK_INT(schema_check(NULL, NULL, NULL, NULL, &ei), 0);
}

/* Values nested deeper than SCHEMA_CHECK_DEPTH_MAX are not looked at; long names are cut in the
   message, never overflowing it. */
static void test_bounds(void)
{
    json_t *schema = json_pack("{s:s}", "type", "string");
    json_t *value = json_integer(1);
    for (int i = 0; i < 40; i++) {
        schema = json_pack("{s:{s:o}}", "properties", "k", schema);
        value = json_pack("{s:o}", "k", value);
    }
    struct err_info ei = {0};
    CHECK_INT(schema_check(schema, value, NULL, "t", &ei), 0);
    json_decref(schema);
    json_decref(value);

    char key[2000];
    memset(key, 'x', sizeof(key) - 1);
    key[sizeof(key) - 1] = '\0';
    schema = json_pack("{s:{s:{s:s}}}", "properties", key, "type", "string");
    value = json_pack("{s:i}", key, 1);
    CHECK_INT(schema_check(schema, value, NULL, "t", &ei), ERR_INVAL);
    CHECK_CONTAINS(ei.msg, "must be a string, not an integer");
    CHECK_INT(strlen(ei.where), 100); /* a name is cut at 100 bytes in the path */
    json_decref(schema);
    json_decref(value);
}

/* The OpenAPI path's form: one argument by its name. */
static void test_named_value(void)
{
    json_t *s = j("{\"type\":\"object\",\"required\":[\"q\"]}"), *v = j("{}");
    struct err_info ei = {0};
    CHECK_INT(schema_check(s, v, "filter", "t", &ei), ERR_INVAL);
    CHECK_STR(ei.msg, "argument 'filter' of tool 't' lacks its required member 'q'");
    CHECK_STR(ei.where, "filter");
    json_decref(s);
    json_decref(v);
}

TEST_MAIN(TEST(test_types), TEST(test_required_enum), TEST(test_nested),
          TEST(test_unsupported_ignored), TEST(test_malformed_schema), TEST(test_bounds),
          TEST(test_named_value))
