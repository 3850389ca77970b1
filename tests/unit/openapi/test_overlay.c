/*
 * OpenAPI Overlay 1.0: the JSONPath subset (what each selector selects, in which order, and the
 * located errors for what is not supported), the actions (update merges, appends and replaces;
 * remove), the warning for an action that matches nothing, and a document loaded with an overlay
 * through to its catalog.
 */
#include <stdlib.h>

#include "openapi/openapi.h"
#include "test.h"

static const char *sample = "{\"paths\":{"
                            "\"/a\":{\"get\":{\"operationId\":\"getA\",\"x-n\":3,"
                            "\"parameters\":[{\"name\":\"limit\",\"in\":\"query\"},"
                            "{\"name\":\"q\",\"in\":\"query\"}]},"
                            "\"delete\":{\"operationId\":\"delA\",\"x-n\":7,\"deprecated\":true}},"
                            "\"/b\":{\"post\":{\"operationId\":\"postB\",\"x-n\":5,"
                            "\"tags\":[\"x\",\"y\"]}}},"
                            "\"info\":{\"title\":\"T\"},\"it's\":1}";

/* The selected nodes of `path` in `sample`, as a compact JSON array. */
static char *select_json(const char *path)
{
    json_t *root = json_loads(sample, 0, NULL);
    struct openapi_jsonpath *jp = NULL;
    struct err_info ei = {0};
    char *s = NULL;
    if (openapi_jsonpath_compile(path, &jp, &ei) != 0) {
        fprintf(stderr, "%s: %s\n", path, ei.msg);
        goto out;
    }
    struct openapi_jsonpath_node *nodes = NULL;
    size_t n = 0;
    if (openapi_jsonpath_query(jp, root, &nodes, &n) == 0) {
        json_t *a = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append(a, nodes[i].node);
        s = json_dumps(a, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
        json_decref(a);
        free(nodes);
    }
out:
    openapi_jsonpath_free(jp);
    json_decref(root);
    return s;
}

#define CHECK_SELECT(path, expect)                                                                 \
    do {                                                                                           \
        char *s_ = select_json(path);                                                              \
        CHECK_STR(s_, expect);                                                                     \
        free(s_);                                                                                  \
    } while (0)

static void test_jsonpath_selectors(void)
{
    CHECK_SELECT("$.info.title", "[\"T\"]");
    CHECK_SELECT("$['info'][\"title\"]", "[\"T\"]");
    CHECK_SELECT("$['it\\'s']", "[1]");
    CHECK_SELECT("$.paths['/a'].get.operationId", "[\"getA\"]");
    CHECK_SELECT("$.paths.*.*.operationId", "[\"getA\",\"delA\",\"postB\"]");
    CHECK_SELECT("$.paths[*][*]['x-n']", "[3,7,5]");
    CHECK_SELECT("$..operationId", "[\"getA\",\"delA\",\"postB\"]");
    CHECK_SELECT("$..parameters[1].name", "[\"q\"]");
    CHECK_SELECT("$..parameters[-1].name", "[\"q\"]");
    CHECK_SELECT("$..tags[*]", "[\"x\",\"y\"]");
    CHECK_SELECT("$.nothing.here", "[]");
    CHECK_SELECT("$.info.title.deeper", "[]");
    /* filters select children of each node */
    CHECK_SELECT("$.paths.*[?(@.operationId == 'delA')].x-n", "[7]");
    CHECK_SELECT("$.paths.*[?@.deprecated].operationId", "[\"delA\"]");
    CHECK_SELECT("$.paths.*[?(!@.deprecated)].operationId", "[\"getA\",\"postB\"]");
    CHECK_SELECT("$.paths.*[?(@['x-n'] > 3 && @['x-n'] <= 7)].operationId", "[\"delA\",\"postB\"]");
    CHECK_SELECT("$.paths.*[?(@.x-n < 4 || @.operationId == \"postB\")].operationId",
                 "[\"getA\",\"postB\"]");
    CHECK_SELECT("$.paths.*[?(@.x-n == 5.0)].operationId", "[\"postB\"]");
    CHECK_SELECT("$.paths.*[?(@.x-n != 5)].operationId", "[\"getA\",\"delA\"]");
    CHECK_SELECT("$..[?(@.name == 'limit')].in", "[\"query\"]");
    CHECK_SELECT("$.paths.*[?(@.tags[0] == 'x')].operationId", "[\"postB\"]");
    CHECK_SELECT("$.paths.*[?($.info.title == 'T' && @.x-n >= 5)].operationId",
                 "[\"delA\",\"postB\"]");
    /* a node reached twice through .. is returned once */
    CHECK_SELECT("$..paths..operationId", "[\"getA\",\"delA\",\"postB\"]");
}

static void check_refused(const char *path, const char *msg)
{
    struct openapi_jsonpath *jp = NULL;
    struct err_info ei = {0};
    CHECK_INT(openapi_jsonpath_compile(path, &jp, &ei), ERR_INVAL);
    CHECK(jp == NULL);
    CHECK_CONTAINS(ei.msg, msg);
}

static void test_jsonpath_errors(void)
{
    check_refused("paths", "at character 1: a JSONPath starts with $");
    check_refused("$.a[1:2]", "at character 4: array slices ([start:end]) are not supported");
    check_refused("$.a[:2]", "at character 4: array slices");
    check_refused("$.a['x','y']", "at character 8: unions of selectors ([a,b]) are not supported");
    check_refused("$.a[?(length(@.x) > 1)]", "at character 7: functions");
    check_refused("$.a[?(@.x =~ /y/)]", "at character 11: regular expressions (=~)");
    check_refused("$.a[?(@..x == 1)]", "at character 8: a filter comparison needs a singular");
    check_refused("$.a[?(@.x == 'y'", "expected ')'");
    check_refused("$.a['x", "unterminated string");
    check_refused("$.a.", "expected a member name");
    check_refused("$.a]", "at character 4: expected '.', '..' or '['");
    check_refused("$.a[?('y')]", "a literal alone is not a test");
    check_refused("$.a[01]", "expected an integer");
    /* the message quotes the path it is about */
    check_refused("$.x[1:]", "JSONPath '$.x[1:]' at character 4");
}

static json_t *apply(const char *doc, const char *overlay, json_t *warnings, int *rc,
                     struct err_info *ei)
{
    json_t *root = json_loads(doc, 0, NULL), *oj = json_loads(overlay, 0, NULL);
    struct openapi_overlay *ov = NULL;
    *rc = openapi_overlay_from_json(oj, "t.yaml", &ov, ei);
    if (*rc == 0)
        *rc = openapi_overlay_apply(ov, root, warnings, ei);
    openapi_overlay_free(ov);
    json_decref(oj);
    return root;
}

#define OV(actions)                                                                                \
    "{\"overlay\":\"1.0.0\",\"info\":{\"title\":\"t\",\"version\":\"1\"},"                         \
    "\"actions\":" actions "}"

static void check_applied(const char *doc, const char *overlay, const char *expect)
{
    struct err_info ei = {0};
    int rc;
    json_t *root = apply(doc, overlay, NULL, &rc, &ei);
    CHECK_INT(rc, 0);
    if (rc)
        fprintf(stderr, "%s at %s\n", ei.msg, ei.where);
    char *s = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
    CHECK_STR(s, expect);
    free(s);
    json_decref(root);
}

static void test_overlay_actions(void)
{
    /* objects merge recursively, other values are replaced */
    check_applied("{\"a\":{\"b\":{\"c\":1,\"d\":[1]},\"e\":2}}",
                  OV("[{\"target\":\"$.a\",\"update\":{\"b\":{\"d\":[9],\"f\":3},\"g\":4}}]"),
                  "{\"a\":{\"b\":{\"c\":1,\"d\":[9],\"f\":3},\"e\":2,\"g\":4}}");
    /* arrays get the update appended; an array update item by item */
    check_applied("{\"t\":[1]}", OV("[{\"target\":\"$.t\",\"update\":2}]"), "{\"t\":[1,2]}");
    check_applied("{\"t\":[1]}", OV("[{\"target\":\"$.t\",\"update\":[2,3]}]"), "{\"t\":[1,2,3]}");
    /* a scalar is replaced */
    check_applied("{\"info\":{\"title\":\"old\"}}",
                  OV("[{\"target\":\"$.info.title\",\"update\":\"new\"}]"),
                  "{\"info\":{\"title\":\"new\"}}");
    /* remove: object members and array elements (several from one array) */
    check_applied("{\"p\":{\"a\":{\"x\":1},\"b\":{\"x\":2},\"c\":{\"x\":1}}}",
                  OV("[{\"target\":\"$.p[?(@.x == 1)]\",\"remove\":true}]"),
                  "{\"p\":{\"b\":{\"x\":2}}}");
    check_applied("{\"l\":[{\"n\":1},{\"n\":2},{\"n\":3},{\"n\":4}]}",
                  OV("[{\"target\":\"$.l[?(@.n != 3)]\",\"remove\":true}]"), "{\"l\":[{\"n\":3}]}");
    /* a node and one inside it removed by one action */
    check_applied("{\"a\":{\"x\":{\"x\":{}}}}", OV("[{\"target\":\"$..x\",\"remove\":true}]"),
                  "{\"a\":{}}");
    /* actions run in order: the second sees the first's result */
    check_applied("{\"a\":{}}",
                  OV("[{\"target\":\"$.a\",\"update\":{\"b\":{\"c\":1}}},"
                     "{\"target\":\"$.a.b.c\",\"update\":2}]"),
                  "{\"a\":{\"b\":{\"c\":2}}}");
    /* the root takes an object update */
    check_applied("{\"a\":1}", OV("[{\"target\":\"$\",\"update\":{\"b\":2}}]"),
                  "{\"a\":1,\"b\":2}");
}

static void check_overlay_error(const char *overlay, int err, const char *where, const char *msg)
{
    struct err_info ei = {0};
    int rc;
    json_t *root = apply("{\"a\":{}}", overlay, NULL, &rc, &ei);
    CHECK_INT(rc, err);
    CHECK_STR(ei.where, where);
    CHECK_CONTAINS(ei.msg, msg);
    json_decref(root);
}

static void test_overlay_errors(void)
{
    check_overlay_error("{\"info\":{}}", ERR_INVAL, "/overlay", "not an Overlay document");
    check_overlay_error("{\"overlay\":\"2.0.0\",\"info\":{\"title\":\"t\",\"version\":\"1\"},"
                        "\"actions\":[]}",
                        ERR_INVAL, "/overlay", "unsupported Overlay version '2.0.0'");
    check_overlay_error("{\"overlay\":\"1.0.0\",\"actions\":[{\"target\":\"$\"}]}", ERR_INVAL,
                        "/info", "info needs a title and a version");
    check_overlay_error(OV("[]"), ERR_INVAL, "/actions", "non-empty list");
    check_overlay_error(OV("[{\"target\":\"$.a\"}]"), ERR_INVAL, "/actions/0",
                        "action 1 has neither update nor remove: true");
    check_overlay_error(OV("[{\"target\":\"$.a\",\"update\":{},\"remove\":true}]"), ERR_INVAL,
                        "/actions/0", "both update and remove");
    check_overlay_error(OV("[{\"target\":\"$.a\",\"update\":{},\"merge\":1}]"), ERR_INVAL,
                        "/actions/0", "unknown action field 'merge'");
    check_overlay_error(OV("[{\"update\":{}}]"), ERR_INVAL, "/actions/0", "has no target");
    check_overlay_error(OV("[{\"target\":\"$.a\",\"update\":{}},"
                           "{\"target\":\"$.a[0:1]\",\"remove\":true}]"),
                        ERR_INVAL, "/actions/1/target",
                        "JSONPath '$.a[0:1]' at character 4: array slices");
    check_overlay_error(OV("[{\"target\":\"$\",\"remove\":true}]"), ERR_INVAL, "/actions/0",
                        "removes the whole document");
    check_overlay_error(OV("[{\"target\":\"$\",\"update\":[1]}]"), ERR_INVAL, "/actions/0",
                        "overlay t.yaml: action 1 targets the document root");
}

static void test_overlay_warns_unmatched(void)
{
    struct err_info ei = {0};
    int rc;
    json_t *w = json_array();
    json_t *root =
        apply("{\"a\":{}}",
              OV("[{\"target\":\"$.a\",\"update\":{\"b\":1}},"
                 "{\"target\":\"$.paths['/gone']\",\"description\":\"renamed\",\"remove\":true}]"),
              w, &rc, &ei);
    CHECK_INT(rc, 0);
    CHECK_INT(json_array_size(w), 1);
    CHECK_STR(json_string_value(json_array_get(w, 0)),
              "overlay t.yaml: action 2 (target $.paths['/gone'], \"renamed\") matches nothing "
              "in the document; it was not applied");
    json_decref(root);
    json_decref(w);
}

static void test_document_with_overlay(void)
{
    const char *ovs[] = {"tests/openapi/petstore-overlay.yaml"};
    struct openapi_doc *doc = NULL;
    struct err_info ei = {0};
    CHECK_INT(openapi_doc_load_overlaid("tests/openapi/petstore-3.0.yaml", ovs, 1, &doc, &ei), 0);
    if (doc == NULL) {
        fprintf(stderr, "%s at %s\n", ei.msg, ei.where);
        return;
    }
    CHECK_INT(doc->nwarnings, 1);
    CHECK_CONTAINS(doc->warnings[0], "overlay tests/openapi/petstore-overlay.yaml: action 4 "
                                     "(target $.paths['/no/such/path'], \"a path the API "
                                     "renamed\") matches nothing");
    struct openapi_catalog *cat = NULL;
    CHECK_INT(openapi_catalog_build(doc, NULL, &cat, &ei), 0);
    if (cat) {
        CHECK(openapi_catalog_find(cat, "delete_pet") == NULL);
        const struct openapi_tool *t = openapi_catalog_find(cat, "list_pets");
        CHECK(t != NULL);
        if (t) {
            CHECK_STR(t->description, "List pets, newest first.");
            CHECK_STR(json_string_value(json_object_get(
                          json_object_get(json_object_get(t->input_schema, "properties"), "limit"),
                          "description")),
                      "At most this many pets.");
        }
        openapi_catalog_unref(cat);
    }
    openapi_doc_unref(doc);
    /* a bad overlay names its file, the action and the place */
    const char *bad[] = {"tests/openapi/overlay-bad.yaml"};
    doc = NULL;
    CHECK_INT(openapi_doc_load_overlaid("tests/openapi/petstore-3.0.yaml", bad, 1, &doc, &ei),
              ERR_INVAL);
    CHECK(doc == NULL);
    CHECK_STR(ei.where, "/actions/1/target");
    CHECK_CONTAINS(ei.msg, "overlay tests/openapi/overlay-bad.yaml: JSONPath "
                           "'$.paths[0:2]' at character 8: array slices");
    const char *missing[] = {"tests/openapi/no-such-overlay.yaml"};
    CHECK_INT(openapi_doc_load_overlaid("tests/openapi/petstore-3.0.yaml", missing, 1, &doc, &ei),
              ERR_IO);
    CHECK_CONTAINS(ei.msg, "cannot open tests/openapi/no-such-overlay.yaml");
}

static void test_inspect_with_overlay(void)
{
    char *text = NULL;
    size_t len = 0;
    const char *ovs[] = {"tests/openapi/petstore-overlay.yaml"};
    FILE *f = open_memstream(&text, &len);
    CHECK_INT(openapi_inspect(&(struct openapi_sources){.spec = "tests/openapi/petstore-3.0.yaml",
                                                        .overlays = ovs,
                                                        .noverlays = 1},
                              f),
              0);
    fclose(f);
    CHECK_CONTAINS(text, "warnings (1):\n  overlay tests/openapi/petstore-overlay.yaml: action 4");
    CHECK_CONTAINS(text, "List pets, newest first.");
    free(text);
}

TEST_MAIN(TEST(test_jsonpath_selectors), TEST(test_jsonpath_errors), TEST(test_overlay_actions),
          TEST(test_overlay_errors), TEST(test_overlay_warns_unmatched),
          TEST(test_document_with_overlay), TEST(test_inspect_with_overlay))
