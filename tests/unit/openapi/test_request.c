/*
 * Hostile argument values against every parameter style (tests/openapi/hostile.json): a value
 * can never change the structure of the request it fills. Each value is either percent-encoded
 * into its own place or refused with a message naming the argument; a path segment that would
 * be "." or ".." is refused, since the server would resolve it to another resource.
 */
#include <stdlib.h>

#include "openapi/openapi.h"
#include "test.h"

#define BASE "https://api.example/base"

static struct openapi_catalog *hostile_catalog(struct openapi_doc **doc)
{
    struct openapi_catalog *cat = NULL;
    struct err_info ei = {0};
    *doc = NULL;
    if (openapi_doc_load_file("tests/openapi/hostile.json", doc, &ei) ||
        openapi_catalog_build(*doc, NULL, &cat, &ei))
        fprintf(stderr, "hostile.json: %s at %s\n", ei.msg, ei.where);
    return cat;
}

struct row {
    const char *tool;
    const char *args; /* JSON */
    const char *url;  /* the URL built, or NULL: refused */
    const char *want; /* the header "Name: value" expected, or the refusal's message */
};

static const struct row rows[] = {
    /* path, simple: dot segments refused, everything else encoded into the one segment */
    {"delete_invoice", "{\"id\":\"..\"}", NULL,
     "path argument 'id' would make the path segment '..', a dot segment"},
    {"delete_invoice", "{\"id\":\".\"}", NULL,
     "path argument 'id' would make the path segment '.', a dot segment"},
    {"delete_invoice", "{\"id\":[\"..\"]}", NULL, "path segment '..'"},
    {"delete_invoice", "{\"id\":\"\"}", NULL, "path argument 'id' must not be empty"},
    {"delete_invoice", "{\"id\":[]}", NULL, "path argument 'id' must not be empty"},
    {"delete_invoice", "{\"id\":{}}", NULL, "path argument 'id' must not be empty"},
    {"delete_invoice", "{\"id\":[\"\"]}", NULL, "path argument 'id' must not be empty"},
    {"delete_invoice", "{\"id\":null}", NULL, "path argument 'id' must not be empty"},
    {"delete_invoice", "{\"id\":\"%2e%2e\"}", BASE "/v1/invoices/%252e%252e", NULL},
    {"delete_invoice", "{\"id\":\"...\"}", BASE "/v1/invoices/...", NULL},
    {"delete_invoice", "{\"id\":\"../x\"}", BASE "/v1/invoices/..%2Fx", NULL},
    {"delete_invoice", "{\"id\":\"a/b\"}", BASE "/v1/invoices/a%2Fb", NULL},
    {"delete_invoice", "{\"id\":\"?x=1\"}", BASE "/v1/invoices/%3Fx%3D1", NULL},
    {"delete_invoice", "{\"id\":\"#frag\"}", BASE "/v1/invoices/%23frag", NULL},
    {"delete_invoice", "{\"id\":\";x\"}", BASE "/v1/invoices/%3Bx", NULL},
    {"delete_invoice", "{\"id\":\"a\\r\\nb\"}", BASE "/v1/invoices/a%0D%0Ab", NULL},
    {"delete_invoice", "{\"id\":\"a\\u0000b\"}", BASE "/v1/invoices/a%00b", NULL},
    {"delete_invoice", "{\"id\":\"\\u00e9\\u4e2d\"}", BASE "/v1/invoices/%C3%A9%E4%B8%AD", NULL},
    {"delete_invoice", "{\"id\":[\"..\",\"a/b\"]}", BASE "/v1/invoices/..,a%2Fb", NULL},
    {"delete_invoice", "{\"id\":{\"..\":\"?\"}}", BASE "/v1/invoices/..,%3F", NULL},
    {"delete_invoice", "{\"id\":\" \"}", BASE "/v1/invoices/%20", NULL},
    /* two expansions in one segment: the segment is checked, not each value */
    {"get_pair", "{\"a\":\".\",\"b\":\".\"}", NULL,
     "path argument 'a' would make the path segment '..'"},
    {"get_pair", "{\"a\":\".\",\"b\":\"x\"}", BASE "/v1/pair/.x/end", NULL},
    {"get_file", "{\"name\":\".\"}", BASE "/v1/files/..json", NULL},
    /* a dot segment written in the document's path key is the document's: sent as written */
    {"get_literal_dots", "{\"id\":\"x\"}", BASE "/v1/dots/./a/../x", NULL},
    {"get_literal_dots", "{\"id\":\"..\"}", NULL, "path argument 'id' would make"},
    /* label: the style's own "." prefix counts */
    {"get_label", "{\"l\":\".\"}", NULL, "path argument 'l' would make the path segment '..'"},
    {"get_label", "{\"l\":\"\"}", NULL, "path argument 'l' would make the path segment '.'"},
    {"get_label", "{\"l\":[]}", NULL, "path segment '.'"},
    {"get_label", "{\"l\":\"a/b?c#d\"}", BASE "/v1/label/.a%2Fb%3Fc%23d", NULL},
    {"get_label", "{\"l\":[\"..\",\"x\"]}", BASE "/v1/label/...,x", NULL},
    {"get_label_exploded", "{\"l\":[\".\",\"/\"]}", BASE "/v1/labelx/...%2F", NULL},
    /* matrix */
    {"get_matrix", "{\"m\":\"..\"}", BASE "/v1/matrix/;m=..", NULL},
    {"get_matrix", "{\"m\":\"a;b=c/d\"}", BASE "/v1/matrix/;m=a%3Bb%3Dc%2Fd", NULL},
    {"get_matrix", "{\"m\":[\"?\",\"#\"]}", BASE "/v1/matrix/;m=%3F,%23", NULL},
    {"get_matrix_exploded", "{\"m\":[\".\",\"a\\nb\"]}", BASE "/v1/matrixx/;m=.;m=a%0Ab", NULL},
    /* query: every style; names and values encoded, brackets of deepObject literal */
    {"search", "{\"f\":[\"..\",\"a&b=c\",\"#frag\"]}", BASE "/v1/search?f=..&f=a%26b%3Dc&f=%23frag",
     NULL},
    {"search", "{\"f\":\"?x=1/../\"}", BASE "/v1/search?f=%3Fx%3D1%2F..%2F", NULL},
    {"search", "{\"fc\":[\"a,b\",\"\\u0000\"]}", BASE "/v1/search?fc=a%2Cb,%00", NULL},
    {"search", "{\"s\":[\"a b\",\";x\"]}", BASE "/v1/search?s=a%20b%20%3Bx", NULL},
    {"search", "{\"pd\":[\"a|b\",\"\\r\\n\"]}", BASE "/v1/search?pd=a%7Cb|%0D%0A", NULL},
    {"search", "{\"d\":{\"a]b\":\"x\",\"k\":[\"/\",\"#\"]}}",
     BASE "/v1/search?d[a%5Db]=x&d[k][0]=%2F&d[k][1]=%23", NULL},
    {"search", "{\"f\":{\"a=b\":\"&\"}}", BASE "/v1/search?a%3Db=%26", NULL},
    /* header: sent as is, so control characters are refused */
    {"get_header", "{\"X-Tag\":\"a\\r\\nX-Evil: 1\"}", NULL,
     "header argument 'X-Tag' contains a line break"},
    {"get_header", "{\"X-Tag\":\"a\\u0000b\"}", NULL,
     "header argument 'X-Tag' contains the control character 0x00"},
    {"get_header", "{\"X-Tag\":[\"a\",\"\\u001b\"]}", NULL, "control character 0x1b"},
    {"get_header", "{\"X-Tag\":{\"k\":\"\\n\"}}", NULL, "contains a line break"},
    {"get_header", "{\"X-Tag\":\"../x?y#z;\\t\\u00e9\"}", BASE "/v1/header",
     "X-Tag: ../x?y#z;\t\xc3\xa9"},
    /* cookie: encoded, so no value can add a cookie or a header */
    {"get_cookie", "{\"pref\":\"a; evil=1\"}", BASE "/v1/cookie", "Cookie: pref=a%3B%20evil%3D1"},
    {"get_cookie", "{\"pref\":\"\\r\\nX: y\\u0000\"}", BASE "/v1/cookie",
     "Cookie: pref=%0D%0AX%3A%20y%00"},
    {"get_cookie", "{\"pref\":[\"..\",\";\"]}", BASE "/v1/cookie", "Cookie: pref=..,%3B"},
};

static void check_row(struct openapi_catalog *cat, const struct row *w)
{
    const struct openapi_tool *t = openapi_catalog_find(cat, w->tool);
    json_error_t je;
    json_t *a = json_loads(w->args, JSON_ALLOW_NUL, &je);
    CHECK(t != NULL && a != NULL);
    if (t == NULL || a == NULL) {
        fprintf(stderr, "%s %s: %s\n", w->tool, w->args, je.text);
        json_decref(a);
        return;
    }
    struct openapi_request req;
    struct err_info ei = {0};
    int rc = openapi_request_build(cat, t, a, &req, &ei);
    if (w->url == NULL) {
        CHECK_INT(rc, ERR_INVAL);
        CHECK_CONTAINS(ei.msg, w->want);
        if (rc == 0)
            openapi_request_release(&req);
    } else {
        CHECK_INT(rc, 0);
        if (rc == 0) {
            CHECK_STR(req.url, w->url);
            if (w->want) {
                const char *colon = strchr(w->want, ':');
                char name[64];
                snprintf(name, sizeof(name), "%.*s", (int)(colon - w->want), w->want);
                CHECK_STR(openapi_request_header(&req, name), colon + 2);
            }
            openapi_request_release(&req);
        } else {
            fprintf(stderr, "%s %s: %s\n", w->tool, w->args, ei.msg);
        }
    }
    json_decref(a);
}

static void test_hostile_values(void)
{
    struct openapi_doc *doc = NULL;
    struct openapi_catalog *cat = hostile_catalog(&doc);
    CHECK(cat != NULL);
    if (cat)
        for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
            check_row(cat, &rows[i]);
    openapi_catalog_unref(cat);
    openapi_doc_unref(doc);
}

/* A very long value stays in its segment, up to the request size bound. */
static void test_long_value(void)
{
    struct openapi_doc *doc = NULL;
    struct openapi_catalog *cat = hostile_catalog(&doc);
    CHECK(cat != NULL);
    if (cat == NULL)
        goto out;
    size_t n = 100000;
    char *v = malloc(n + 1);
    for (size_t i = 0; i < n; i++)
        v[i] = "./"[i % 2];
    v[n] = '\0';
    json_t *a = json_pack("{s:s}", "id", v);
    struct openapi_request req;
    struct err_info ei = {0};
    CHECK_INT(openapi_request_build(cat, openapi_catalog_find(cat, "delete_invoice"), a, &req, &ei),
              0);
    if (req.url) {
        const char *seg = req.url + strlen(BASE "/v1/invoices/");
        CHECK_INT(strlen(seg), n / 2 * 4);
        CHECK(strchr(seg, '/') == NULL);
        openapi_request_release(&req);
    }
    json_decref(a);
    free(v);
out:
    openapi_catalog_unref(cat);
    openapi_doc_unref(doc);
}

/* What the document itself says cannot start a header or add a path segment either. */
static void test_hostile_document(void)
{
    const char *text =
        "{\"openapi\":\"3.0.3\",\"info\":{\"title\":\"T\",\"version\":\"1\"},"
        "\"servers\":[{\"url\":\"https://api.example\"}],\"paths\":{"
        "\"/m/{a/b}\":{\"get\":{\"operationId\":\"mat\",\"parameters\":[{\"name\":\"a/b\","
        "\"in\":\"path\",\"required\":true,\"style\":\"matrix\",\"schema\":{}}],"
        "\"responses\":{\"200\":{\"description\":\"ok\"}}}},"
        "\"/c\":{\"get\":{\"operationId\":\"ck\",\"parameters\":[{\"name\":\"a\\r\\nX\","
        "\"in\":\"cookie\",\"schema\":{}}],\"responses\":{\"200\":{\"description\":\"ok\"}}}},"
        "\"/p\":{\"post\":{\"operationId\":\"post\",\"requestBody\":{\"content\":{"
        "\"text/plain\\r\\nX-Evil: 1\":{\"schema\":{\"type\":\"string\"}}}},"
        "\"responses\":{\"200\":{\"description\":\"ok\"}}}}}}";
    struct openapi_doc *doc = NULL;
    struct openapi_catalog *cat = NULL;
    struct err_info ei = {0};
    CHECK_INT(openapi_doc_load_mem(text, strlen(text), &doc, &ei), 0);
    if (doc == NULL || openapi_catalog_build(doc, NULL, &cat, &ei)) {
        fprintf(stderr, "%s at %s\n", ei.msg, ei.where);
        CHECK(cat != NULL);
        goto out;
    }
    const struct row ok = {"mat", "{\"a_b\":\"x\"}", "https://api.example/m/;a%2Fb=x", NULL};
    const struct openapi_tool *t = openapi_catalog_find(cat, "mat");
    if (t && t->nargs == 1) {
        struct row r = ok;
        char args[64];
        snprintf(args, sizeof(args), "{\"%s\":\"x\"}", t->args[0].name);
        r.args = args;
        check_row(cat, &r);
    } else {
        CHECK(t != NULL && t->nargs == 1);
    }
    const struct openapi_tool *ck = openapi_catalog_find(cat, "ck");
    if (ck && ck->nargs == 1) {
        char args[64];
        snprintf(args, sizeof(args), "{\"%s\":\"v\"}", ck->args[0].name);
        const struct row r = {"ck", args, NULL, "a header name or value with a line break"};
        check_row(cat, &r);
    } else {
        CHECK(ck != NULL && ck->nargs == 1);
    }
    const struct row body = {"post", "{\"body\":\"x\"}", NULL,
                             "the document gives tool 'post' a header name or value with a line "
                             "break"};
    check_row(cat, &body);
out:
    openapi_catalog_unref(cat);
    openapi_doc_unref(doc);
}

TEST_MAIN(TEST(test_hostile_values), TEST(test_long_value), TEST(test_hostile_document))
