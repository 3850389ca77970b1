/*
 * Response projection (src/openapi/project.c): the field-path parser and its errors, selection by
 * pointer and dotted paths over objects and arrays, the default projection (empty values, links
 * into the API, the array cap and its visible note), the note line, and response fields set by an
 * override in an editorial file.
 */
#include <stdlib.h>

#include "openapi/openapi.h"
#include "test.h"

/* A document whose API lives at https://api.example.com/v1, with one list operation. */
static const char doc_text[] =
    "{\"openapi\":\"3.0.3\",\"info\":{\"title\":\"P\",\"version\":\"1\"},"
    "\"servers\":[{\"url\":\"https://api.example.com/v1\"}],\"paths\":{\"/items\":{\"get\":{"
    "\"operationId\":\"listItems\",\"responses\":{\"200\":{\"description\":\"ok\"}}}}}}";

static struct openapi_catalog *catalog(const char *editorial)
{
    struct openapi_doc *doc = NULL;
    struct openapi_editorial *ed = NULL;
    struct openapi_catalog *cat = NULL;
    struct err_info ei = {0};
    json_t *ej = editorial ? json_loads(editorial, 0, NULL) : NULL;
    if (openapi_doc_load_mem(doc_text, strlen(doc_text), &doc, &ei) == 0 &&
        (ej == NULL || openapi_editorial_from_json(ej, &ed, &ei) == 0) &&
        openapi_catalog_build(doc, ed, &cat, &ei) != 0)
        fprintf(stderr, "catalog: %s at %s\n", ei.msg, ei.where);
    json_decref(ej);
    openapi_editorial_free(ed);
    openapi_doc_unref(doc);
    return cat;
}

/* Project `body` as the answer of listItems; returns the compact JSON and the note (or ""). */
static char *project(const struct openapi_catalog *cat, const char *body, char **note)
{
    json_t *v = json_loads(body, JSON_DECODE_ANY, NULL);
    struct openapi_projection_stats st;
    json_t *p = cat && v ? openapi_response_project(cat, &cat->tools[0], v, &st) : NULL;
    char *s = p ? json_dumps(p, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    char *n = p ? openapi_projection_note(&st) : NULL;
    *note = n ? n : strdup("");
    json_decref(p);
    json_decref(v);
    return s;
}

#define CHECK_PROJECT(cat, body, expect, expect_note)                                              \
    do {                                                                                           \
        char *note_;                                                                               \
        char *got_ = project(cat, body, &note_);                                                   \
        CHECK_STR(got_, expect);                                                                   \
        CHECK_STR(note_, expect_note);                                                             \
        free(got_);                                                                                \
        free(note_);                                                                               \
    } while (0)

static void expect_fields_error(const char *list, const char *msg_part, const char *where)
{
    json_t *j = json_loads(list, JSON_DECODE_ANY, NULL);
    struct openapi_fields *f = NULL;
    struct err_info ei = {0};
    CHECK_INT(openapi_fields_parse(j, "/f", &f, &ei), ERR_INVAL);
    CHECK(f == NULL);
    CHECK_CONTAINS(ei.msg, msg_part);
    CHECK_STR(ei.where, where);
    json_decref(j);
}

static void test_field_errors(void)
{
    expect_fields_error("[]", "non-empty list", "/f");
    expect_fields_error("\"a\"", "non-empty list", "/f");
    expect_fields_error("[\"a\", 3]", "a response field is a string", "/f/1");
    expect_fields_error("[\"\"]", "non-empty path", "/f/0");
    expect_fields_error("[\"a..b\"]", "'a..b' at character 3: empty segment", "/f/0");
    expect_fields_error("[\"a.\"]", "empty segment at the end", "/f/0");
    expect_fields_error("[\"/a//b\"]", "at character 4: empty reference token", "/f/0");
    expect_fields_error("[\"a[0].b\"]", "at character 2: only [] (every element)", "/f/0");
    expect_fields_error("[\"a[]b\"]", "at character 4: '.' or the end expected after []", "/f/0");
    expect_fields_error("[\"a]\"]", "at character 2: ']' without '['", "/f/0");
    expect_fields_error("[\"/a~2\"]", "at character 3: '~' must be followed by 0 or 1", "/f/0");
    expect_fields_error("[\"a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q\"]", "more than 16 steps", "/f/0");
    char big[400];
    memset(big, 'a', sizeof(big));
    snprintf(big, sizeof(big), "[\"%0300d\"]", 1);
    expect_fields_error(big, "longer than 256 bytes", "/f/0");
    /* the editorial file names the override and the field */
    json_t *ej = json_loads("{\"overrides\":{\"listItems\":{\"response\":{\"fields\":[\"id\","
                            "\"a..b\"]}}}}",
                            0, NULL);
    struct openapi_editorial *ed = NULL;
    struct err_info ei = {0};
    CHECK_INT(openapi_editorial_from_json(ej, &ed, &ei), ERR_INVAL);
    CHECK_STR(ei.where, "/overrides/listItems/response/fields/1");
    json_decref(ej);
    ej = json_loads("{\"overrides\":{\"listItems\":{\"response\":{\"field\":[\"id\"]}}}}", 0, NULL);
    CHECK_INT(openapi_editorial_from_json(ej, &ed, &ei), ERR_INVAL);
    CHECK_CONTAINS(ei.msg, "unknown response field 'field' (fields only)");
    json_decref(ej);
}

static void test_fields_select(void)
{
    struct openapi_catalog *cat = catalog(
        "{\"overrides\":{\"listItems\":{\"response\":{\"fields\":[\"number\",\"user.login\","
        "\"/labels[]/name\",\"/a~1b\",\"deep.list[].x\",\"matrix[][].v\",\"pick/1\"]}}}}");
    CHECK(cat != NULL && cat->tools[0].response_fields != NULL);
    /* an object: only the chosen members, in place; a missing one is simply absent */
    CHECK_PROJECT(cat,
                  "{\"number\":7,\"title\":\"t\",\"user\":{\"login\":\"octo\",\"id\":1},"
                  "\"labels\":[{\"name\":\"bug\",\"color\":\"f00\"},{\"name\":\"ui\"}],"
                  "\"a/b\":null,\"deep\":{\"list\":[{\"x\":1,\"y\":2},{\"y\":3}]},"
                  "\"matrix\":[[{\"v\":1,\"w\":2}]]}",
                  "{\"number\":7,\"user\":{\"login\":\"octo\"},\"labels\":[{\"name\":\"bug\"},"
                  "{\"name\":\"ui\"}],\"a/b\":null,\"deep\":{\"list\":[{\"x\":1},{}]},"
                  "\"matrix\":[[{\"v\":1}]]}",
                  "[projected by gatehouse: only the response fields chosen by the operator: "
                  "number, user.login, /labels[]/name, /a~1b, deep.list[].x, matrix[][].v, "
                  "pick/1]");
    /* a top-level array: the names apply to each element ([] optional) */
    CHECK_PROJECT(cat, "[{\"number\":1,\"title\":\"a\"},{\"number\":2},3]",
                  "[{\"number\":1},{\"number\":2}]",
                  "[projected by gatehouse: only the response fields chosen by the operator: "
                  "number, user.login, /labels[]/name, /a~1b, deep.list[].x, matrix[][].v, "
                  "pick/1]");
    openapi_catalog_unref(cat);
    /* an index selects one element; a path into a scalar selects nothing */
    cat = catalog("{\"overrides\":{\"listItems\":{\"response\":{\"fields\":[\"/1/id\"]}}}}");
    char *note;
    char *got = project(cat, "[{\"id\":1},{\"id\":2,\"x\":0},{\"id\":3}]", &note);
    CHECK_STR(got, "[{\"id\":2}]");
    free(got);
    free(note);
    openapi_catalog_unref(cat);
    cat = catalog("{\"overrides\":{\"listItems\":{\"response\":{\"fields\":[\"name.first\"]}}}}");
    got = project(cat, "{\"name\":\"plain\"}", &note);
    CHECK_STR(got, "{}");
    free(got);
    free(note);
    openapi_catalog_unref(cat);
}

static void test_defaults(void)
{
    struct openapi_catalog *cat = catalog(NULL);
    CHECK(cat != NULL && cat->tools[0].response_fields == NULL);
    /* empty values, _links and links into the API go; html_url, false and 0 stay */
    CHECK_PROJECT(cat,
                  "{\"id\":1,\"url\":\"https://api.example.com/v1/items/1\",\"html_url\":"
                  "\"https://example.com/items/1\",\"events_url\":\"https://api.example.com/v1/"
                  "items/1/events{/id}\",\"other_url\":\"https://api.example.com/v10/x\","
                  "\"note\":null,\"tags\":[],\"meta\":{},\"body\":\"\",\"draft\":false,\"n\":0,"
                  "\"_links\":{\"self\":{\"href\":\"x\"}},\"owner\":{\"gravatar\":\"\","
                  "\"repos_url\":\"https://api.example.com/v1/u/r\"}}",
                  "{\"id\":1,\"html_url\":\"https://example.com/items/1\",\"other_url\":"
                  "\"https://api.example.com/v10/x\",\"draft\":false,\"n\":0}",
                  "[projected by gatehouse: 6 empty or null fields omitted; 4 links into the API "
                  "omitted]");
    /* arrays cut to 20 items with a note in the array; nested arrays too */
    char body[4096] = "[", expect[4096] = "[";
    for (int i = 0; i < 25; i++) {
        size_t bl = strlen(body), el = strlen(expect);
        snprintf(body + bl, sizeof(body) - bl, "%s{\"i\":%d,\"x\":null}", i ? "," : "", i);
        if (i < 20)
            snprintf(expect + el, sizeof(expect) - el, "%s{\"i\":%d}", i ? "," : "", i);
    }
    strcat(body, "]");
    strcat(expect, ",\"[gatehouse: 5 more items not shown, 25 in all]\"]");
    CHECK_PROJECT(cat, body, expect,
                  "[projected by gatehouse: 5 array items not shown (1 arrays cut); 20 empty or "
                  "null fields omitted]");
    /* nothing to drop: no note */
    CHECK_PROJECT(cat, "{\"a\":[1,2],\"b\":\"x\"}", "{\"a\":[1,2],\"b\":\"x\"}", "");
    openapi_catalog_unref(cat);

    /* each default can be switched off; a relative base URL recognises no link */
    cat = catalog("{\"heuristics\":{\"response_drop_empty\":false,\"response_drop_links\":false,"
                  "\"response_array_max\":2}}");
    CHECK_PROJECT(cat, "{\"url\":\"https://api.example.com/v1/x\",\"n\":null,\"a\":[1,2,3]}",
                  "{\"url\":\"https://api.example.com/v1/x\",\"n\":null,\"a\":[1,2,"
                  "\"[gatehouse: 1 more items not shown, 3 in all]\"]}",
                  "[projected by gatehouse: 1 array items not shown (1 arrays cut)]");
    openapi_catalog_unref(cat);
    cat = catalog(NULL);
    CHECK_INT(openapi_catalog_set_base_url(cat, "/v1"), 0);
    CHECK_PROJECT(cat, "{\"url\":\"/v1/x\"}", "{\"url\":\"/v1/x\"}", "");
    openapi_catalog_unref(cat);

    /* with fields chosen, the array cap still applies and empty values stay */
    cat = catalog("{\"overrides\":{\"listItems\":{\"response\":{\"fields\":[\"[].id\"]}}},"
                  "\"heuristics\":{\"response_array_max\":1}}");
    CHECK_PROJECT(cat, "[{\"id\":null},{\"id\":2}]",
                  "[{\"id\":null},\"[gatehouse: 1 more items not shown, 2 in all]\"]",
                  "[projected by gatehouse: only the response fields chosen by the operator: "
                  "[].id; 1 array items not shown (1 arrays cut)]");
    openapi_catalog_unref(cat);
}

TEST_MAIN(TEST(test_field_errors), TEST(test_fields_select), TEST(test_defaults))
