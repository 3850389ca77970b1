/*
 * From documents to tools and from tool calls to requests: names (stable, unique, short),
 * inputSchema flattening with collision renaming, hidden credentials, annotations, the editorial
 * layer (rules, heuristics, overrides) and the exact HTTP requests built for each style and body
 * encoding.
 */
#include <stdlib.h>

#include "openapi/openapi.h"
#include "test.h"

static struct openapi_doc *load(const char *path)
{
    struct openapi_doc *doc = NULL;
    struct err_info ei = {0};
    if (openapi_doc_load_file(path, &doc, &ei))
        fprintf(stderr, "%s: %s at %s\n", path, ei.msg, ei.where);
    return doc;
}

static struct openapi_catalog *build(struct openapi_doc *doc, const struct openapi_editorial *ed)
{
    struct openapi_catalog *cat = NULL;
    struct err_info ei = {0};
    if (openapi_catalog_build(doc, ed, &cat, &ei))
        fprintf(stderr, "catalog: %s at %s\n", ei.msg, ei.where);
    return cat;
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

static bool valid_name(const char *n)
{
    size_t len = strlen(n);
    if (len < 1 || len > 64)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!((n[i] >= 'a' && n[i] <= 'z') || (n[i] >= 'A' && n[i] <= 'Z') ||
              (n[i] >= '0' && n[i] <= '9') || n[i] == '_' || n[i] == '-'))
            return false;
    return true;
}

static void test_default_catalog(void)
{
    struct openapi_doc *doc = load("tests/openapi/petstore-3.0.yaml");
    struct openapi_catalog *cat = doc ? build(doc, NULL) : NULL;
    CHECK(cat != NULL);
    if (cat == NULL)
        goto out;
    CHECK_INT(cat->ntools, 7);
    const struct openapi_tool *t = openapi_catalog_find(cat, "list_pets");
    CHECK(t != NULL);
    CHECK_STR(t->description, "List all pets.");
    CHECK(t->read_only && !t->destructive && !t->idempotent);
    /* the apiKey header is a credential: not a parameter; example dropped; first sentence */
    CHECK_JSON(t->input_schema,
               "{\"properties\":{\"limit\":{\"description\":\"How many items to return at one "
               "time.\",\"format\":\"int32\",\"type\":\"integer\"},\"tags\":{\"items\":{\"type\":"
               "\"string\"},\"type\":\"array\"}},\"type\":\"object\"}");
    /* body id vs path id -> body_id; required from the body only when the body is required */
    t = openapi_catalog_find(cat, "update_pet");
    CHECK(t->idempotent);
    CHECK_JSON(t->input_schema,
               "{\"properties\":{\"body_id\":{\"type\":\"integer\"},\"id\":{\"type\":\"string\"},"
               "\"name\":{\"type\":\"string\"},\"x-internal-note\":{\"type\":\"string\"}},"
               "\"required\":[\"id\"],\"type\":\"object\"}");
    CHECK_INT(t->nargs, 4);
    CHECK_STR(t->args[1].wire_name, "id");
    CHECK_INT(t->args[1].in, OPENAPI_IN_BODY);
    CHECK(openapi_catalog_find(cat, "delete_pet")->destructive);
    /* readOnly body properties are not arguments; allOf merged */
    t = openapi_catalog_find(cat, "create_pet");
    CHECK_STR(t->description, "Creates a pet in the store.");
    CHECK_JSON(json_object_get(t->input_schema, "required"), "[\"name\"]");
    CHECK(json_object_get(json_object_get(t->input_schema, "properties"), "id") == NULL);
    /* a oneOf body stays whole, with its discriminator */
    t = openapi_catalog_find(cat, "create_shape");
    CHECK_INT(t->nargs, 1);
    CHECK_INT(t->args[0].in, OPENAPI_IN_BODY_WHOLE);
    CHECK(json_object_get(json_object_get(json_object_get(t->input_schema, "properties"), "body"),
                          "discriminator") != NULL);
    /* reasons for every drop */
    size_t drops = 0;
    for (size_t i = 0; i < cat->nnotes; i++)
        drops += cat->notes[i].dropped;
    CHECK_INT(drops, 6);
    CHECK_STR(cat->notes[0].op, "GET /pets");
    CHECK_STR(cat->notes[0].tool, "list_pets");
    for (size_t i = 0; i < cat->ntools; i++) {
        CHECK(valid_name(cat->tools[i].name));
        CHECK(cat->tools[i].token_estimate > 0);
    }
    json_t *j = openapi_tool_to_json(openapi_catalog_find(cat, "show_pet_by_id"));
    CHECK_JSON(j, "{\"annotations\":{\"readOnlyHint\":true},\"description\":\"Info for a specific "
                  "pet\",\"inputSchema\":{\"properties\":{\"id\":{\"type\":\"string\"}},"
                  "\"required\":[\"id\"],\"type\":\"object\"},\"name\":\"show_pet_by_id\"}");
    json_decref(j);
out:
    openapi_catalog_unref(cat);
    openapi_doc_unref(doc);
}

static void test_editorial_file(void)
{
    struct openapi_doc *doc = load("tests/openapi/petstore-3.0.yaml");
    struct openapi_editorial *ed = NULL;
    struct err_info ei = {0};
    CHECK_INT(openapi_editorial_load_file("tests/openapi/editorial.yaml", &ed, &ei), 0);
    struct openapi_catalog *cat = doc && ed ? build(doc, ed) : NULL;
    CHECK(cat != NULL);
    if (cat == NULL)
        goto out;
    CHECK(openapi_catalog_find(cat, "delete_pet") == NULL);       /* rule 3 */
    CHECK(openapi_catalog_find(cat, "get_health") != NULL);       /* rule 2, forced */
    CHECK(openapi_catalog_find(cat, "admin_list_users") != NULL); /* heuristic off */
    const struct openapi_tool *t = openapi_catalog_find(cat, "pets_list");
    CHECK(t != NULL);
    CHECK_STR(t->description, "List pets, newest first.");
    CHECK_JSON(json_object_get(t->input_schema, "properties"), "{}");
    struct openapi_request req;
    CHECK_INT(openapi_request_build(cat, t, NULL, &req, &ei), 0);
    CHECK_STR(req.url, "https://eu.pets.example/v1/pets?limit=50");
    openapi_request_release(&req);
    CHECK_STR(openapi_catalog_find(cat, "update_pet")->description, "Replace a pet.");
    bool saw_rule = false;
    for (size_t i = 0; i < cat->nnotes; i++)
        saw_rule |= cat->notes[i].dropped && strcmp(cat->notes[i].op, "DELETE /pets/{id}") == 0 &&
                    strcmp(cat->notes[i].detail, "rule 3 (exclude)") == 0;
    CHECK(saw_rule);
out:
    openapi_catalog_unref(cat);
    openapi_editorial_free(ed);
    openapi_doc_unref(doc);
}

static void expect_editorial_error(const char *yaml, const char *where, const char *msg)
{
    struct openapi_doc *doc = load("tests/openapi/petstore-3.0.yaml");
    json_t *j = NULL;
    struct err_info ei = {0};
    struct openapi_editorial *ed = NULL;
    struct openapi_catalog *cat = NULL;
    CHECK_INT(openapi_parse_text(yaml, strlen(yaml), &j, &ei), 0);
    int rc = openapi_editorial_from_json(j, &ed, &ei);
    if (rc == 0)
        rc = openapi_catalog_build(doc, ed, &cat, &ei);
    CHECK_INT(rc, ERR_INVAL);
    CHECK_STR(ei.where, where);
    CHECK_CONTAINS(ei.msg, msg);
    json_decref(j);
    openapi_editorial_free(ed);
    openapi_catalog_unref(cat);
    openapi_doc_unref(doc);
}

static void test_editorial_errors(void)
{
    expect_editorial_error("overrides: {nope: {name: x}}\n", "/overrides/nope",
                           "matches no operation");
    expect_editorial_error("overrides: {showPetById: {hide: [id]}}\n", "/overrides/showPetById",
                           "hides required parameter 'id' without a fixed value");
    expect_editorial_error("overrides: {listPets: {hide: [limt]}}\n", "/overrides/listPets",
                           "unknown parameter 'limt'");
    expect_editorial_error("overrides: {listPets: {name: 'bad name'}}\n", "/overrides/listPets",
                           "does not match");
    expect_editorial_error("overrides: {listPets: {name: same}, createPet: {name: same}}\n",
                           "/overrides", "the same name 'same'");
    expect_editorial_error("rules: [{drop: {tag: x}}]\n", "/rules/0", "include");
    expect_editorial_error("heuristics: {deprecatd: true}\n", "/heuristics/deprecatd",
                           "unknown heuristic");
}

/* Names: duplicates disambiguated by a hash of method + path, identical after reordering. */
static void test_names_stable_and_unique(void)
{
    const char *a = "openapi: 3.0.0\npaths:\n"
                    "  /a: {get: {operationId: getThing, responses: {}}}\n"
                    "  /b: {get: {operationId: getThing, responses: {}}}\n"
                    "  /c: {get: {operationId: get_thing, responses: {}}}\n"
                    "  /d: {get: {operationId: get_thing_f302dfbc, responses: {}}}\n"
                    "  /very/long/{id}: {post: {operationId: "
                    "createAVeryLongOperationNameThatGoesOnAndOnForeverAndEver, responses: {}}}\n"
                    "  /x/{y}/z: {get: {responses: {}}}\n";
    const char *b = "openapi: 3.0.0\npaths:\n"
                    "  /x/{y}/z: {get: {responses: {}}}\n"
                    "  /very/long/{id}: {post: {operationId: "
                    "createAVeryLongOperationNameThatGoesOnAndOnForeverAndEver, responses: {}}}\n"
                    "  /d: {get: {operationId: get_thing_f302dfbc, responses: {}}}\n"
                    "  /c: {get: {operationId: get_thing, responses: {}}}\n"
                    "  /b: {get: {operationId: getThing, responses: {}}}\n"
                    "  /a: {get: {operationId: getThing, responses: {}}}\n";
    struct openapi_doc *da = NULL, *db = NULL;
    struct err_info ei = {0};
    CHECK_INT(openapi_doc_load_mem(a, strlen(a), &da, &ei), 0);
    CHECK_INT(openapi_doc_load_mem(b, strlen(b), &db, &ei), 0);
    struct openapi_catalog *ca = build(da, NULL), *cb = build(db, NULL);
    CHECK(ca && cb);
    if (ca && cb) {
        CHECK_INT(ca->ntools, 6);
        for (size_t i = 0; i < ca->ntools; i++) {
            const struct openapi_tool *t = &ca->tools[i];
            CHECK(valid_name(t->name));
            CHECK(strlen(t->name) <= 48);
            for (size_t j = 0; j < i; j++)
                CHECK(strcmp(t->name, ca->tools[j].name) != 0);
            /* the same operation has the same name in the reordered document */
            bool same = false;
            for (size_t j = 0; j < cb->ntools; j++)
                same |= strcmp(cb->tools[j].op->path, t->op->path) == 0 &&
                        strcmp(cb->tools[j].name, t->name) == 0;
            CHECK(same);
        }
        CHECK_STR(ca->tools[5].name, "get_x_by_y_z");
        /* cut to 48 (minus a trailing '_'), ending in a hash of "POST /very/long/{id}" */
        CHECK_STR(ca->tools[4].name, "create_a_very_long_operation_name_that_0e69533c");
        /* an operationId equal to another operation's hashed name: the group rehashes */
        CHECK_CONTAINS(ca->tools[3].name, "get_thing_f302dfbc_");
    }
    openapi_catalog_unref(ca);
    openapi_catalog_unref(cb);
    openapi_doc_unref(da);
    openapi_doc_unref(db);
}

static void expect_request(struct openapi_catalog *cat, const char *tool, const char *args,
                           const char *method, const char *url, const char *ctype, const char *body)
{
    const struct openapi_tool *t = openapi_catalog_find(cat, tool);
    CHECK(t != NULL);
    if (t == NULL)
        return;
    json_t *a = json_loads(args, 0, NULL);
    struct openapi_request req;
    struct err_info ei = {0};
    int rc = openapi_request_build(cat, t, a, &req, &ei);
    CHECK_INT(rc, 0);
    if (rc == 0) {
        CHECK_STR(req.method, method);
        CHECK_STR(req.url, url);
        if (ctype) {
            CHECK_STR(openapi_request_header(&req, "Content-Type"), ctype);
            CHECK_INT(req.body_len, strlen(body));
            CHECK_STR(req.body, body);
        } else {
            CHECK(req.body == NULL);
        }
        openapi_request_release(&req);
    } else {
        fprintf(stderr, "%s: %s\n", tool, ei.msg);
    }
    json_decref(a);
}

static void expect_refusal(struct openapi_catalog *cat, const char *tool, const char *args,
                           const char *msg)
{
    json_t *a = json_loads(args, 0, NULL);
    struct openapi_request req;
    struct err_info ei = {0};
    CHECK_INT(openapi_request_build(cat, openapi_catalog_find(cat, tool), a, &req, &ei), ERR_INVAL);
    CHECK_CONTAINS(ei.msg, msg);
    json_decref(a);
}

static void test_requests_styles(void)
{
    struct openapi_doc *doc = load("tests/openapi/styles-3.1.json");
    struct openapi_catalog *cat = doc ? build(doc, NULL) : NULL;
    CHECK(cat != NULL);
    if (cat == NULL)
        goto out;
    const struct openapi_tool *t = openapi_catalog_find(cat, "get_items_by_style");
    /* the session cookie is a credential: not an argument */
    CHECK(json_object_get(json_object_get(t->input_schema, "properties"), "sid") == NULL);
    CHECK(json_object_get(json_object_get(t->input_schema, "properties"), "pref") != NULL);
    json_t *a = json_loads(
        "{\"ids\":[1,2],\"label\":[\"a b\",\"c\"],\"matrix\":[\"x\",\"y/z\"],\"form\":[\"f1\","
        "\"f2\"],\"csv\":[\"c1\",\"c2\"],\"space\":[\"s1\",\"s2\"],\"pipe\":[\"p1\",\"p2\"],"
        "\"color\":{\"R\":100,\"G\":200},\"obj\":{\"R\":1,\"G\":2},\"flat\":{\"R\":3},"
        "\"X-Trace\":[\"t1\",\"t2\"],\"pref\":\"dark mode\",\"weird\":\"a&b=c\"}",
        0, NULL);
    struct openapi_request req;
    struct err_info ei = {0};
    CHECK_INT(openapi_request_build(cat, t, a, &req, &ei), 0);
    CHECK_STR(req.method, "GET");
    CHECK_STR(req.url, "https://api.example/items/1,2/.a%20b,c/;matrix=x;matrix=y%2Fz"
                       "?form=f1&form=f2&csv=c1,c2&space=s1%20s2&pipe=p1|p2"
                       "&color[R]=100&color[G]=200&obj=R,1,G,2&R=3&weird=a%26b%3Dc");
    CHECK_STR(openapi_request_header(&req, "X-Trace"), "t1,t2");
    CHECK_STR(openapi_request_header(&req, "Cookie"), "pref=dark%20mode");
    CHECK(req.body == NULL);
    openapi_request_release(&req);
    json_decref(a);

    expect_request(cat, "update_customer",
                   "{\"id\":\"cus 1\",\"body_id\":\"x\",\"email\":\"a@b.c\",\"metadata\":"
                   "{\"order\":\"7\"},\"items\":[{\"price\":\"p_1\",\"qty\":2}]}",
                   "POST", "https://api.example/customers/cus%201",
                   "application/x-www-form-urlencoded",
                   "id=x&email=a%40b.c&metadata[order]=7&items[0][price]=p_1&items[0][qty]=2");
    expect_request(cat, "replace_tags", "{\"body\":[\"a\",\"b\"]}", "PUT",
                   "https://api.example/tags", "application/json", "[\"a\",\"b\"]");
    const struct openapi_tool *up = openapi_catalog_find(cat, "upload_avatar");
    json_t *ua = json_loads("{\"file\":\"PNGDATA\",\"caption\":\"me\"}", 0, NULL);
    CHECK_INT(openapi_request_build(cat, up, ua, &req, &ei), 0);
    const char *ct = openapi_request_header(&req, "Content-Type");
    CHECK_CONTAINS(ct, "multipart/form-data; boundary=gatehouse-");
    const char *bd = strstr(ct, "boundary=") + 9;
    char expect[1024];
    snprintf(expect, sizeof(expect),
             "--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"file\"\r\n"
             "Content-Type: application/octet-stream\r\n\r\nPNGDATA\r\n"
             "--%s\r\nContent-Disposition: form-data; name=\"caption\"\r\n\r\nme\r\n--%s--\r\n",
             bd, bd, bd);
    CHECK_STR(req.body, expect);
    openapi_request_release(&req);
    json_decref(ua);

    expect_refusal(cat, "upload_avatar", "{\"caption\":\"x\"}",
                   "missing required argument 'file' for tool 'upload_avatar'");
    expect_refusal(cat, "replace_tags", "{\"tags\":[]}",
                   "unknown argument 'tags' for tool 'replace_tags'");
    expect_refusal(cat, "update_customer", "{\"id\":\"\"}", "path argument 'id' must not be empty");
    expect_refusal(
        cat, "get_items_by_style",
        "{\"ids\":[1],\"label\":[\"a\"],\"matrix\":[\"b\"],\"X-Trace\":[\"a\\r\\nX: y\"]}",
        "header argument 'X-Trace' contains a line break");
    /* Control characters other than HTAB, and the Unicode line breaks, never reach a header. */
    static const char *const controls[][2] = {
        {"a\\u000bb", "control character 0x0b"},
        {"a\\u000cb", "control character 0x0c"},
        {"a\\u001bb", "control character 0x1b"},
        {"a\\u0085b", "U+0085"},
        {"a\\u2028b", "U+2028"},
        {"a\\u2029b", "U+2029"},
    };
    for (size_t i = 0; i < sizeof(controls) / sizeof(controls[0]); i++) {
        char args[256];
        snprintf(args, sizeof(args),
                 "{\"ids\":[1],\"label\":[\"a\"],\"matrix\":[\"b\"],\"X-Trace\":[\"%s\"]}",
                 controls[i][0]);
        expect_refusal(cat, "get_items_by_style", args, controls[i][1]);
    }
    /* Arguments are checked against their schema, naming the field. */
    expect_refusal(
        cat, "get_items_by_style",
        "{\"ids\":[1],\"label\":[\"a\"],\"matrix\":[\"b\"],\"X-Trace\":\"t\"}",
        "argument 'X-Trace' of tool 'get_items_by_style' must be an array, not a string");
    expect_refusal(
        cat, "get_items_by_style",
        "{\"ids\":[1],\"label\":[\"a\"],\"matrix\":[\"b\"],\"X-Trace\":[\"t\",{}]}",
        "argument 'X-Trace[1]' of tool 'get_items_by_style' must be a string, not an object");
    expect_refusal(cat, "get_items_by_style", "{\"sid\":\"stolen\"}", "unknown argument 'sid'");
out:
    openapi_catalog_unref(cat);
    openapi_doc_unref(doc);
}

static void test_requests_swagger(void)
{
    struct openapi_doc *doc = load("tests/openapi/swagger-2.0.json");
    struct openapi_catalog *cat = doc ? build(doc, NULL) : NULL;
    CHECK(cat != NULL);
    if (cat == NULL)
        goto out;
    /* api_key (the query credential) is not an argument */
    expect_request(
        cat, "list_files", "{\"ids\":[1,2],\"names\":[\"a\",\"b\"],\"words\":[\"x\",\"y\"]}", "GET",
        "https://files.example/api/files?ids=1,2&names=a&names=b&words=x%20y", NULL, NULL);
    expect_refusal(cat, "list_files", "{\"api_key\":\"k\"}", "unknown argument 'api_key'");
    expect_request(cat, "set_meta", "{\"fileId\":\"a/b\",\"title\":\"T 1\"}", "PUT",
                   "https://files.example/api/files/a%2Fb/meta",
                   "application/x-www-form-urlencoded", "title=T%201");
    expect_request(cat, "patch_meta", "{\"fileId\":\"f\",\"a_b_c\":\"v\"}", "PATCH",
                   "https://files.example/api/files/f/meta", "application/json",
                   "{\"a~b/c\":\"v\"}");
    CHECK(openapi_catalog_find(cat, "patch_meta")->args[1].name != NULL);
    CHECK_STR(openapi_catalog_find(cat, "patch_meta")->args[1].name, "title");
    CHECK_STR(openapi_catalog_find(cat, "patch_meta")->args[2].name, "a_b_c");
    CHECK_STR(openapi_catalog_find(cat, "patch_meta")->args[2].wire_name, "a~b/c");
out:
    openapi_catalog_unref(cat);
    openapi_doc_unref(doc);
}

/* The heuristics that keep a large API's tools small: desc_max, repeated_desc, tool_tokens. */
static void test_token_heuristics(void)
{
    char *doc_text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&doc_text, &len);
    fprintf(f, "{\"openapi\":\"3.0.3\",\"info\":{\"title\":\"T\",\"version\":\"1\"},\"paths\":{");
    /* six operations sharing one boilerplate parameter description */
    for (int i = 0; i < 6; i++)
        fprintf(f,
                "\"/r%d/{owner}\":{\"get\":{\"operationId\":\"get%d\",\"parameters\":[{\"name\":"
                "\"owner\",\"in\":\"path\",\"required\":true,\"description\":\"The account owner."
                "\",\"schema\":{\"type\":\"string\"}},{\"name\":\"q%d\",\"in\":\"query\","
                "\"description\":\"Only the results whose title or body mentions these words, "
                "compared without regard to case or accents\",\"schema\":{\"type\":\"string\"}}],"
                "\"responses\":{\"200\":{\"description\":\"ok\"}}}},",
                i, i, i);
    /* one operation whose body is far over the per-tool budget */
    fprintf(f, "\"/big\":{\"post\":{\"operationId\":\"big\",\"requestBody\":{\"content\":{"
               "\"application/json\":{\"schema\":{\"type\":\"object\",\"required\":[\"p0\"],"
               "\"properties\":{");
    for (int i = 0; i < 30; i++)
        fprintf(f,
                "%s\"p%d\":{\"type\":\"object\",\"description\":\"Setting number %d of the "
                "thing.\",\"properties\":{\"mode\":{\"type\":\"string\",\"enum\":[\"on\","
                "\"off\",\"auto\"],\"description\":\"How it runs.\"},\"level\":{\"type\":"
                "\"integer\"}}}",
                i ? "," : "", i, i);
    fprintf(f, "}}}}},\"responses\":{\"200\":{\"description\":\"ok\"}}}}}}");
    fclose(f);
    struct openapi_doc *doc = NULL;
    struct err_info ei = {0};
    CHECK_INT(openapi_doc_load_mem(doc_text, len, &doc, &ei), 0);
    free(doc_text);
    if (doc == NULL)
        return;
    struct openapi_catalog *cat = build(doc, NULL);
    if (cat == NULL)
        goto out;
    const struct openapi_tool *t = openapi_catalog_find(cat, "get0");
    json_t *props = json_object_get(t->input_schema, "properties");
    /* repeated on 6 >= 5 tools: dropped; the name says it */
    CHECK(json_object_get(json_object_get(props, "owner"), "description") == NULL);
    /* cut to 80 bytes at a word boundary */
    CHECK_STR(json_string_value(json_object_get(json_object_get(props, "q0"), "description")),
              "Only the results whose title or body mentions these words, compared without...");
    const struct openapi_tool *big = openapi_catalog_find(cat, "big");
    CHECK(big->token_estimate <= 250);
    /* every argument is still there, so the operation is still callable with all of them */
    CHECK_INT(json_object_size(json_object_get(big->input_schema, "properties")), 30);
    CHECK_JSON(json_object_get(json_object_get(big->input_schema, "properties"), "p1"),
               "{\"type\":\"object\"}");
    bool budget = false, repeated = false, cut = false;
    for (size_t i = 0; i < cat->nnotes; i++) {
        const struct openapi_note *n = &cat->notes[i];
        budget |= strcmp(n->reason, "tool_tokens") == 0 && strcmp(n->tool, "big") == 0 &&
                  strstr(n->detail, "over 250 estimated tokens") != NULL;
        repeated |= strcmp(n->reason, "repeated_desc") == 0 && strcmp(n->tool, "get3") == 0;
        cut |= strcmp(n->reason, "desc_max") == 0;
    }
    CHECK(budget && repeated && cut);
    /* the request still carries what the model sends, nested objects included */
    expect_request(cat, "big", "{\"p0\":{\"mode\":\"on\",\"level\":2},\"p7\":{\"mode\":\"off\"}}",
                   "POST", "/big", "application/json",
                   "{\"p0\":{\"mode\":\"on\",\"level\":2},\"p7\":{\"mode\":\"off\"}}");
    openapi_catalog_unref(cat);
    /* each can be switched off */
    struct openapi_editorial *ed = openapi_editorial_new();
    openapi_editorial_heuristics(ed)->repeated_desc = 0;
    openapi_editorial_heuristics(ed)->desc_max = 0;
    openapi_editorial_heuristics(ed)->tool_tokens = 0;
    cat = build(doc, ed);
    if (cat) {
        props = json_object_get(openapi_catalog_find(cat, "get0")->input_schema, "properties");
        CHECK_STR(
            json_string_value(json_object_get(json_object_get(props, "owner"), "description")),
            "The account owner.");
        CHECK(openapi_catalog_find(cat, "big")->token_estimate > 250);
        openapi_catalog_unref(cat);
    }
    openapi_editorial_free(ed);
out:
    openapi_doc_unref(doc);
}

static void test_inspect(void)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    CHECK_INT(
        openapi_inspect(&(struct openapi_sources){.spec = "tests/openapi/petstore-3.0.yaml"}, f),
        0);
    fclose(f);
    CHECK_CONTAINS(text, "curated static: 7 tools");
    CHECK_CONTAINS(text, "naive 1:1:      13 tools");
    CHECK_CONTAINS(text, "GET /health                              heuristic infra: path segment "
                         "'health'");
    free(text);
    f = open_memstream(&text, &len);
    CHECK_INT(
        openapi_inspect(&(struct openapi_sources){.spec = "tests/openapi/broken-ref.yaml"}, f),
        ERR_NOTFOUND);
    fclose(f);
    CHECK_CONTAINS(text, "points to nothing in the document (at /paths/~1a/get/responses/200/");
    free(text);
}

/* Stripe writes descriptions in HTML: first_sentence ships plain text. */
static void test_html_descriptions(void)
{
    static const char doc_text[] =
        "{\"openapi\":\"3.0.3\",\"info\":{\"title\":\"h\",\"version\":\"1\"},\"paths\":{"
        "\"/c\":{\"get\":{\"operationId\":\"listConfigs\",\"description\":\"<p>Returns a list "
        "of <code>Configuration</code> objects &amp; more.</p>\\n<p>Second paragraph.</p>\","
        "\"parameters\":[{\"name\":\"q\",\"in\":\"query\",\"description\":\"<p>Only "
        "<a href=\\\"/docs\\\">these</a><br>items, a &lt; b</p><p>More.</p>\",\"schema\":{"
        "\"type\":\"string\"}}],\"responses\":{\"200\":{\"description\":\"ok\"}}}}}}";
    struct openapi_doc *doc = NULL;
    struct err_info ei = {0};
    CHECK_INT(openapi_doc_load_mem(doc_text, strlen(doc_text), &doc, &ei), 0);
    struct openapi_catalog *cat = doc ? build(doc, NULL) : NULL;
    const struct openapi_tool *t = cat ? openapi_catalog_find(cat, "list_configs") : NULL;
    CHECK(t != NULL);
    if (t) {
        CHECK_STR(t->description, "Returns a list of Configuration objects & more.");
        json_t *q = json_object_get(json_object_get(t->input_schema, "properties"), "q");
        CHECK_STR(json_string_value(json_object_get(q, "description")), "Only these items, a < b");
    }
    openapi_catalog_unref(cat);
    openapi_doc_unref(doc);
}

/* Path keys with a fragment or a fixed query (as @readme/oas-examples writes them): the fragment
 * is never sent, the query arguments join the fixed query with '&'. */
static void test_requests_path_key_suffixes(void)
{
    static const char doc_text[] =
        "{\"openapi\":\"3.0.3\",\"info\":{\"title\":\"s\",\"version\":\"1\"},"
        "\"servers\":[{\"url\":\"https://api.example\"}],\"paths\":{"
        "\"/c#exploded\":{\"get\":{\"operationId\":\"frag\",\"parameters\":[{\"name\":"
        "\"q\",\"in\":\"query\",\"schema\":{\"type\":\"string\"}}],\"responses\":{"
        "\"200\":{\"description\":\"ok\"}}}},"
        "\"/s?v=2\":{\"get\":{\"operationId\":\"fixed\",\"parameters\":[{\"name\":\"q\","
        "\"in\":\"query\",\"schema\":{\"type\":\"string\"}}],\"responses\":{\"200\":{"
        "\"description\":\"ok\"}}}}}}";
    struct openapi_doc *doc = NULL;
    struct err_info ei = {0};
    CHECK_INT(openapi_doc_load_mem(doc_text, strlen(doc_text), &doc, &ei), 0);
    struct openapi_catalog *cat = doc ? build(doc, NULL) : NULL;
    CHECK(cat != NULL);
    if (cat) {
        expect_request(cat, "frag", "{\"q\":\"a\"}", "GET", "https://api.example/c?q=a", NULL,
                       NULL);
        expect_request(cat, "frag", "{}", "GET", "https://api.example/c", NULL, NULL);
        expect_request(cat, "fixed", "{\"q\":\"a\"}", "GET", "https://api.example/s?v=2&q=a", NULL,
                       NULL);
        expect_request(cat, "fixed", "{}", "GET", "https://api.example/s?v=2", NULL, NULL);
    }
    openapi_catalog_unref(cat);
    openapi_doc_unref(doc);
}

/* A parameter that carries the credential is never a tool argument: apiKey schemes by name, and
 * under an OAuth 2-only operation a parameter or form field named like a token (Slack's `token`,
 * Google's `access_token`); under an http (bearer) scheme a `token` field is data (Stripe's card
 * token) and stays. Calls without it are accepted. */
static void test_credential_params(void)
{
    static const char doc_text[] =
        "{\"openapi\":\"3.0.3\",\"info\":{\"title\":\"c\",\"version\":\"1\"},"
        "\"servers\":[{\"url\":\"https://api.example\"}],"
        "\"components\":{\"securitySchemes\":{\"o\":{\"type\":\"oauth2\",\"flows\":{"
        "\"implicit\":{\"authorizationUrl\":\"https://a.example\",\"scopes\":{}}}},"
        "\"b\":{\"type\":\"http\",\"scheme\":\"bearer\"}}},"
        "\"security\":[{\"o\":[]}],\"paths\":{"
        "\"/chat.history\":{\"get\":{\"operationId\":\"history\",\"parameters\":["
        "{\"name\":\"token\",\"in\":\"query\",\"required\":true,\"schema\":{\"type\":\"string\"}},"
        "{\"name\":\"channel\",\"in\":\"query\",\"schema\":{\"type\":\"string\"}}],"
        "\"responses\":{\"200\":{\"description\":\"ok\"}}}},"
        "\"/chat.post\":{\"post\":{\"operationId\":\"post\",\"parameters\":["
        "{\"name\":\"token\",\"in\":\"header\",\"required\":true,\"schema\":{\"type\":\"string\"}}],"
        "\"requestBody\":{\"content\":{\"application/x-www-form-urlencoded\":{\"schema\":{"
        "\"type\":\"object\",\"required\":[\"token\",\"text\"],\"properties\":{"
        "\"token\":{\"type\":\"string\"},\"text\":{\"type\":\"string\"}}}}}},"
        "\"responses\":{\"200\":{\"description\":\"ok\"}}}},"
        "\"/sources\":{\"post\":{\"operationId\":\"sources\",\"security\":[{\"b\":[]}],"
        "\"requestBody\":{\"content\":{\"application/x-www-form-urlencoded\":{\"schema\":{"
        "\"type\":\"object\",\"properties\":{\"token\":{\"type\":\"string\"}}}}}},"
        "\"responses\":{\"200\":{\"description\":\"ok\"}}}}}}";
    struct openapi_doc *doc = NULL;
    struct err_info ei = {0};
    CHECK_INT(openapi_doc_load_mem(doc_text, strlen(doc_text), &doc, &ei), 0);
    struct openapi_catalog *cat = doc ? build(doc, NULL) : NULL;
    CHECK(cat != NULL);
    if (cat == NULL) {
        openapi_doc_unref(doc);
        return;
    }
    const struct openapi_tool *h = openapi_catalog_find(cat, "history");
    const struct openapi_tool *p = openapi_catalog_find(cat, "post");
    const struct openapi_tool *s = openapi_catalog_find(cat, "sources");
    CHECK(h && p && s);
    if (h && p && s) {
        json_t *hp = json_object_get(h->input_schema, "properties");
        CHECK(json_object_get(hp, "token") == NULL);
        CHECK(json_object_get(hp, "channel") != NULL);
        CHECK(json_object_get(h->input_schema, "required") == NULL);
        CHECK(json_object_get(json_object_get(p->input_schema, "properties"), "token") == NULL);
        CHECK(json_object_get(json_object_get(p->input_schema, "properties"), "text") != NULL);
        CHECK(json_object_get(json_object_get(s->input_schema, "properties"), "token") != NULL);
        expect_request(cat, "history", "{\"channel\":\"C1\"}", "GET",
                       "https://api.example/chat.history?channel=C1", NULL, NULL);
    }
    openapi_catalog_unref(cat);
    openapi_doc_unref(doc);
}

TEST_MAIN(TEST(test_default_catalog), TEST(test_credential_params), TEST(test_html_descriptions),
          TEST(test_editorial_file), TEST(test_editorial_errors),
          TEST(test_names_stable_and_unique), TEST(test_requests_styles),
          TEST(test_requests_path_key_suffixes), TEST(test_requests_swagger),
          TEST(test_token_heuristics), TEST(test_inspect))
