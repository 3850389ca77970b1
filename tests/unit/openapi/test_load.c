/*
 * Loading OpenAPI 3.0 / 3.1 / Swagger 2.0 documents into the model: operations, parameters,
 * bodies, responses, servers, security; $ref resolution, cycles, allOf, discriminators; and the
 * precise errors bad documents get. Fixtures live in tests/openapi/.
 */
#include <stdlib.h>
#include <time.h>

#include "openapi/openapi.h"
#include "test.h"

static struct openapi_doc *load(const char *path)
{
    struct openapi_doc *doc = NULL;
    struct err_info ei = {0};
    int rc = openapi_doc_load_file(path, &doc, &ei);
    if (rc)
        fprintf(stderr, "%s: %s (%s) at %s\n", path, err_str(rc), ei.msg, ei.where);
    return doc;
}

static const struct openapi_op *find_op(const struct openapi_doc *doc, const char *id)
{
    for (size_t i = 0; i < doc->nops; i++)
        if (doc->ops[i].operation_id && strcmp(doc->ops[i].operation_id, id) == 0)
            return &doc->ops[i];
    return NULL;
}

static char *dump(const json_t *j)
{
    return json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
}

#define CHECK_JSON(j, expect)                                                                      \
    do {                                                                                           \
        char *s_ = dump(j);                                                                        \
        CHECK_STR(s_, expect);                                                                     \
        free(s_);                                                                                  \
    } while (0)

static void test_openapi30_model(void)
{
    struct openapi_doc *doc = load("tests/openapi/petstore-3.0.yaml");
    CHECK(doc != NULL);
    if (doc == NULL)
        return;
    CHECK_STR(doc->version, "3.0.3");
    CHECK_STR(doc->title, "Petstore");
    CHECK_STR(doc->server_url, "https://eu.pets.example/v1");
    CHECK_INT(doc->nops, 13);
    CHECK_INT(doc->nschemes, 2);
    CHECK_INT(doc->schemes[0].type, OPENAPI_SCHEME_API_KEY);
    CHECK_INT(doc->schemes[0].in, OPENAPI_IN_HEADER);
    CHECK_STR(doc->schemes[0].param_name, "X-API-Key");
    CHECK_STR(doc->schemes[1].http_scheme, "bearer");

    const struct openapi_op *op = find_op(doc, "listPets");
    CHECK(op != NULL);
    CHECK_STR(op->method, "GET");
    CHECK_STR(op->path, "/pets");
    CHECK_STR(op->pointer, "/paths/~1pets/get");
    CHECK_INT(op->nparams, 3);
    CHECK_INT(op->params[1].style, OPENAPI_STYLE_FORM);
    CHECK(op->params[1].explode);
    CHECK_JSON(op->security, "[{\"apiKey\":[]}]");
    CHECK_INT(op->ntags, 1);
    /* allOf merged through the array items */
    CHECK_JSON(json_object_get(op->response_schema, "items"),
               "{\"properties\":{\"id\":{\"format\":\"int64\",\"readOnly\":true,\"type\":"
               "\"integer\"},\"name\":{\"description\":\"The pet's name. Must be unique.\","
               "\"type\":\"string\"},\"status\":{\"enum\":[\"available\",\"pending\",\"sold\"],"
               "\"type\":\"string\"},\"tag\":{\"type\":\"string\"}},\"required\":[\"name\",\"id\"],"
               "\"type\":\"object\"}");

    op = find_op(doc, "updatePet");
    CHECK_INT(op->nparams, 1); /* path-level parameter inherited */
    CHECK_STR(op->params[0].name, "id");
    CHECK_INT(op->params[0].in, OPENAPI_IN_PATH);
    CHECK_INT(op->params[0].style, OPENAPI_STYLE_SIMPLE);
    CHECK_STR(op->body_media, "application/json");
    CHECK(!op->body_required);

    op = find_op(doc, "uploadPhoto");
    CHECK_STR(op->body_media, "application/octet-stream");

    /* a component parameter by $ref */
    op = find_op(doc, "getCategory");
    CHECK_STR(op->params[0].name, "categoryId");
    CHECK_JSON(op->params[0].schema, "{\"type\":\"integer\"}");
    /* cycles cut at the first re-entry */
    CHECK_JSON(json_object_get(json_object_get(op->response_schema, "properties"), "parent"),
               "{\"description\":\"(recursive: Category)\",\"type\":\"object\"}");
    CHECK_JSON(json_object_get(
                   json_object_get(json_object_get(op->response_schema, "properties"), "children"),
                   "items"),
               "{\"description\":\"(recursive: Category)\",\"type\":\"object\"}");

    /* oneOf kept, branches titled, discriminator mapping preserved */
    op = find_op(doc, "createShape");
    CHECK(op->body_required);
    json_t *one = json_object_get(op->body_schema, "oneOf");
    CHECK_INT(json_array_size(one), 2);
    CHECK_STR(json_string_value(json_object_get(json_array_get(one, 0), "title")), "Circle");
    CHECK_STR(json_string_value(json_object_get(json_array_get(one, 1), "title")), "Square");
    CHECK_JSON(json_object_get(op->body_schema, "discriminator"),
               "{\"mapping\":{\"circle\":\"#/components/schemas/Circle\",\"square\":\"#/"
               "components/schemas/Square\"},\"propertyName\":\"kind\"}");

    op = find_op(doc, "findPetsByStatus");
    CHECK(op->deprecated);
    openapi_doc_unref(doc);
}

static void test_swagger20_normalised(void)
{
    struct openapi_doc *doc = load("tests/openapi/swagger-2.0.json");
    CHECK(doc != NULL);
    if (doc == NULL)
        return;
    CHECK_STR(doc->version, "2.0");
    CHECK_STR(doc->server_url, "https://files.example/api");
    CHECK_INT(doc->nops, 4);
    CHECK_INT(doc->schemes[0].in, OPENAPI_IN_QUERY);
    CHECK_INT(doc->schemes[1].type, OPENAPI_SCHEME_HTTP);
    CHECK_STR(doc->schemes[1].http_scheme, "basic");

    const struct openapi_op *op = find_op(doc, "list_files");
    CHECK_INT(op->nparams, 4);
    CHECK(!op->params[0].explode); /* csv by default */
    CHECK_INT(op->params[0].style, OPENAPI_STYLE_FORM);
    CHECK(op->params[1].explode); /* multi */
    CHECK_INT(op->params[2].style, OPENAPI_STYLE_SPACE_DELIMITED);
    CHECK_JSON(op->params[0].schema, "{\"items\":{\"type\":\"integer\"},\"type\":\"array\"}");
    CHECK_JSON(json_object_get(op->response_schema, "items"),
               "{\"properties\":{\"id\":{\"type\":\"string\"},\"meta\":{\"properties\":{\"a~b/"
               "c\":{\"type\":\"string\"},\"title\":{\"type\":\"string\"}},\"type\":\"object\"}},"
               "\"type\":\"object\"}");

    op = find_op(doc, "uploadFile");
    CHECK_STR(op->body_media, "multipart/form-data");
    CHECK(op->body_required);
    CHECK_JSON(op->body_schema,
               "{\"properties\":{\"comment\":{\"type\":\"string\"},\"file\":{\"format\":"
               "\"binary\",\"type\":\"string\"}},\"required\":[\"file\"],\"type\":\"object\"}");

    op = find_op(doc, "setMeta");
    CHECK_STR(op->body_media, "application/x-www-form-urlencoded");
    CHECK_INT(op->nparams, 1);

    op = find_op(doc, "patchMeta");
    CHECK_STR(op->body_media, "application/json");
    CHECK(op->body_required);
    CHECK(json_object_get(json_object_get(op->body_schema, "properties"), "title") != NULL);
    openapi_doc_unref(doc);
}

static void test_openapi31_styles(void)
{
    struct openapi_doc *doc = load("tests/openapi/styles-3.1.json");
    CHECK(doc != NULL);
    if (doc == NULL)
        return;
    const struct openapi_op *op = find_op(doc, "getItemsByStyle");
    CHECK_INT(op->nparams, 14);
    CHECK_INT(op->params[1].style, OPENAPI_STYLE_LABEL);
    CHECK_INT(op->params[2].style, OPENAPI_STYLE_MATRIX);
    CHECK_INT(op->params[7].style, OPENAPI_STYLE_DEEP_OBJECT);
    CHECK_INT(op->params[11].in, OPENAPI_IN_COOKIE);
    /* ~0 ~1 escapes in $ref, and a 3.1 sibling description overriding the target's */
    CHECK_JSON(op->params[13].schema, "{\"description\":\"sibling wins\",\"type\":[\"string\","
                                      "\"null\"]}");
    openapi_doc_unref(doc);
}

static void expect_error(const char *path, int err, const char *where, const char *msg_part)
{
    struct openapi_doc *doc = NULL;
    struct err_info ei = {0};
    int rc = openapi_doc_load_file(path, &doc, &ei);
    CHECK_INT(rc, err);
    CHECK(doc == NULL);
    CHECK_STR(ei.where, where);
    CHECK_CONTAINS(ei.msg, msg_part);
}

static void test_bad_documents(void)
{
    expect_error("tests/openapi/broken-ref.yaml", ERR_NOTFOUND,
                 "/paths/~1a/get/responses/200/content/application~1json/schema/$ref",
                 "'#/components/schemas/Missing' points to nothing");
    expect_error("tests/openapi/external-ref.yaml", ERR_DENIED,
                 "/paths/~1a/post/requestBody/content/application~1json/schema/$ref",
                 "external $ref 'https://evil.example/schema.json#/Pet' refused");
    expect_error("tests/openapi/invalid.yaml", ERR_PARSE, "line 4, column 2", "invalid YAML");
    expect_error("tests/openapi/does-not-exist.yaml", ERR_IO, "tests/openapi/does-not-exist.yaml",
                 "cannot open");
}

static void expect_mem_error(const char *text, int err, const char *where, const char *msg_part)
{
    struct openapi_doc *doc = NULL;
    struct err_info ei = {0};
    int rc = openapi_doc_load_mem(text, strlen(text), &doc, &ei);
    CHECK_INT(rc, err);
    CHECK(doc == NULL);
    CHECK_STR(ei.where, where);
    CHECK_CONTAINS(ei.msg, msg_part);
}

static void test_bad_documents_mem(void)
{
    expect_mem_error("{\"openapi\": \"3.0.0\", \"paths\": {\"/a\": }}", ERR_PARSE,
                     "line 1, column 38", "invalid JSON");
    expect_mem_error("title: not openapi\n", ERR_INVAL, "", "neither 'openapi' nor 'swagger'");
    expect_mem_error("openapi: 4.0.0\npaths: {}\n", ERR_INVAL, "/openapi", "unsupported version");
    expect_mem_error("openapi: 3.0.0\n", ERR_INVAL, "/paths", "'paths' is missing");
    expect_mem_error("openapi: 3.0.0\npaths:\n  /a:\n    get:\n      parameters:\n"
                     "        - {name: x, in: body}\n",
                     ERR_INVAL, "/paths/~1a/get/parameters/0", "unknown parameter location");
    expect_mem_error("openapi: 3.0.0\npaths:\n  /a:\n    get:\n      parameters:\n"
                     "        - $ref: '#/components/parameters/nope'\n",
                     ERR_NOTFOUND, "/paths/~1a/get/parameters/0/$ref", "points to nothing");
    expect_mem_error("openapi: 3.0.0\npaths:\n  /a:\n    $ref: 'other.yaml#/paths/a'\n", ERR_DENIED,
                     "/paths/~1a/$ref", "external $ref");
    /* a broken ref inside a component reports the component's location */
    expect_mem_error("openapi: 3.0.0\npaths:\n  /a:\n    get:\n      parameters:\n"
                     "        - {name: x, in: query, schema: {$ref: '#/components/schemas/A'}}\n"
                     "components:\n  schemas:\n    A:\n      properties:\n"
                     "        b: {$ref: '#/components/schemas/B'}\n",
                     ERR_NOTFOUND, "/components/schemas/A/properties/b/$ref",
                     "'#/components/schemas/B'");
    /* a discriminator mapping to nothing */
    expect_mem_error("openapi: 3.0.0\npaths:\n  /a:\n    get:\n      parameters:\n"
                     "        - name: x\n          in: query\n          schema:\n"
                     "            oneOf: [{type: string}]\n"
                     "            discriminator: {propertyName: k, mapping: {a: '#/nope'}}\n",
                     ERR_NOTFOUND, "/paths/~1a/get/parameters/0/schema/discriminator/mapping/a",
                     "'#/nope' points to nothing");
}

static void test_yaml_scalars_and_aliases(void)
{
    const char *y = "a: true\nb: 'true'\nc: 12\nd: 1.5\ne: ~\nf: 0x10\ng: 1e3\nh: .inf\n"
                    "i: 012\nj: !!str 5\nbase: &B {x: 1, y: 2}\nk:\n  <<: *B\n  y: 3\n"
                    "l: *B\n";
    json_t *j = NULL;
    struct err_info ei = {0};
    CHECK_INT(openapi_parse_text(y, strlen(y), &j, &ei), 0);
    CHECK_JSON(j, "{\"a\":true,\"b\":\"true\",\"base\":{\"x\":1,\"y\":2},\"c\":12,\"d\":1.5,"
                  "\"e\":null,\"f\":16,\"g\":1000.0,\"h\":\".inf\",\"i\":12,\"j\":\"5\","
                  "\"k\":{\"x\":1,\"y\":3},\"l\":{\"x\":1,\"y\":2}}");
    json_decref(j);

    /* billion laughs: refused, not expanded */
    char bomb[2048];
    int n = snprintf(bomb, sizeof(bomb), "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for (int i = 1; i < 12; i++)
        n += snprintf(bomb + n, sizeof(bomb) - (size_t)n,
                      "a%d: &a%d [*a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d]\n", i,
                      i, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1);
    j = NULL;
    CHECK_INT(openapi_parse_text(bomb, (size_t)n, &j, &ei), ERR_LIMIT);
    CHECK(j == NULL);
    CHECK_CONTAINS(ei.msg, "too many nodes");
}

/* A synthetic ~10 MB document: 4,000 paths x 2 operations with shared component schemas. */
static void test_large_document(void)
{
    size_t cap = 12u << 20, n = 0;
    char *s = malloc(cap);
    n += (size_t)snprintf(s + n, cap - n,
                          "{\"openapi\":\"3.0.3\",\"info\":{\"title\":\"big\",\"version\":\"1\"},"
                          "\"paths\":{");
    int i = 0;
    while (n < (10u << 20)) {
        n += (size_t)snprintf(
            s + n, cap - n,
            "%s\"/r%d/{id}/items\":{\"get\":{\"operationId\":\"listItemsOfResourceNumber%d\","
            "\"summary\":\"List the items of resource %d.\",\"description\":\"%0900d\","
            "\"parameters\":[{\"name\":\"id\",\"in\":\"path\",\"required\":true,\"schema\":"
            "{\"type\":\"string\"}},{\"name\":\"page\",\"in\":\"query\",\"schema\":{\"type\":"
            "\"integer\"}}],\"responses\":{\"200\":{\"description\":\"ok\",\"content\":{"
            "\"application/json\":{\"schema\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/"
            "components/schemas/Item%d\"}}}}}}},\"post\":{\"requestBody\":{\"content\":{"
            "\"application/json\":{\"schema\":{\"$ref\":\"#/components/schemas/Item%d\"}}}},"
            "\"responses\":{\"201\":{\"description\":\"ok\"}}}}",
            i ? "," : "", i, i, i, i, i % 50, i % 50);
        i++;
    }
    n += (size_t)snprintf(s + n, cap - n, "},\"components\":{\"schemas\":{");
    for (int k = 0; k < 50; k++)
        n += (size_t)snprintf(s + n, cap - n,
                              "%s\"Item%d\":{\"type\":\"object\",\"properties\":{\"name\":{"
                              "\"type\":\"string\"},\"owner\":{\"$ref\":\"#/components/schemas/"
                              "Item%d\"},\"tags\":{\"type\":\"array\",\"items\":{\"type\":"
                              "\"string\"}}}}",
                              k ? "," : "", k, (k + 1) % 50);
    n += (size_t)snprintf(s + n, cap - n, "}}}");
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    struct openapi_doc *doc = NULL;
    struct err_info ei = {0};
    int rc = openapi_doc_load_mem(s, n, &doc, &ei);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("large document: %zu bytes, %d paths, loaded in %.3f s\n", n, i, secs);
    CHECK_INT(rc, 0);
    CHECK(secs < 5.0);
    if (doc)
        CHECK_INT(doc->nops, (size_t)i * 2);
    openapi_doc_unref(doc);
    free(s);
}

/* 24 schemas each referring to every other (Stripe has 86 in cycles): the paths through them are
   exponential in number, the expansion must not be. Every reference is expanded or cut. */
static void test_dense_cycles(void)
{
    enum { N = 24 };
    size_t cap = 1u << 20, n = 0;
    char *s = malloc(cap);
    n += (size_t)snprintf(s + n, cap - n,
                          "{\"openapi\":\"3.0.3\",\"info\":{\"title\":\"dense\",\"version\":\"1\"},"
                          "\"paths\":{\"/s\":{\"post\":{\"operationId\":\"make\",\"requestBody\":{"
                          "\"content\":{\"application/json\":{\"schema\":{\"$ref\":\"#/components/"
                          "schemas/S0\"}}}},\"responses\":{\"200\":{\"description\":\"ok\"}}}}},"
                          "\"components\":{\"schemas\":{");
    for (int k = 0; k < N; k++) {
        n += (size_t)snprintf(s + n, cap - n, "%s\"S%d\":{\"type\":\"object\",\"properties\":{",
                              k ? "," : "", k);
        for (int j = 0; j < N; j++)
            n += (size_t)snprintf(s + n, cap - n,
                                  "%s\"p%d\":{\"$ref\":\"#/components/schemas/S%d\"}", j ? "," : "",
                                  j, j);
        n += (size_t)snprintf(s + n, cap - n, "}}");
    }
    n += (size_t)snprintf(s + n, cap - n, "}}}");
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    struct openapi_doc *doc = NULL;
    struct err_info ei = {0};
    int rc = openapi_doc_load_mem(s, n, &doc, &ei);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    CHECK_INT(rc, 0);
    CHECK(secs < 2.0);
    if (doc && doc->nops == 1) {
        json_t *props = json_object_get(doc->ops[0].body_schema, "properties");
        CHECK_INT(json_object_size(props), N);
        CHECK_JSON(json_object_get(props, "p0"),
                   "{\"description\":\"(recursive: S0)\",\"type\":\"object\"}");
        /* S1 is expanded below S0, and its own reference to S0 is the cut */
        CHECK_JSON(
            json_object_get(json_object_get(json_object_get(props, "p1"), "properties"), "p0"),
            "{\"description\":\"(recursive: S0)\",\"type\":\"object\"}");
    }
    openapi_doc_unref(doc);
    free(s);
}

TEST_MAIN(TEST(test_openapi30_model), TEST(test_swagger20_normalised), TEST(test_openapi31_styles),
          TEST(test_bad_documents), TEST(test_bad_documents_mem),
          TEST(test_yaml_scalars_and_aliases), TEST(test_large_document), TEST(test_dense_cycles))
