/*
 * Tests of the catalog (src/mcp/catalog.c): merged names under each prefix mode (when-needed,
 * always, never strict and lenient, a per-server override), a server listing one name twice,
 * servers that are down, nameless items, pagination with cursors followed to the end and
 * tampered with, routing by name in the aggregate and per-server views, routing resources by
 * exact URI and by template, and RFC 6570 level-1 template matching.
 */
#include "mcp/catalog.h"

#include <stdlib.h>

#include "core/rand.h"
#include "test.h"

static struct config *cfg_new(const char *prefix_yaml, const char *a_extra)
{
    char yaml[1024];
    snprintf(yaml, sizeof(yaml),
             "%s\n"
             "servers:\n"
             "  - name: a\n"
             "    transport: stdio\n"
             "    command: \"true\"\n"
             "%s"
             "  - name: b\n"
             "    transport: stdio\n"
             "    command: \"true\"\n",
             prefix_yaml, a_extra ? a_extra : "");
    struct config *c = NULL;
    struct err_info ei = {0};
    int err = config_load_string(yaml, strlen(yaml), "t.yaml", &c, &ei);
    if (err)
        fprintf(stderr, "config: %s\n", ei.msg);
    CHECK_INT(err, 0);
    return c;
}

/* Two sources from JSON texts (NULL = no list); tools_* / prompts_* / resources / templates. */
struct fixture {
    struct catalog_source src[2];
};

static void fixture_init(struct fixture *f, const char *tools_a, const char *tools_b)
{
    memset(f, 0, sizeof(*f));
    f->src[0].server = "a";
    f->src[1].server = "b";
    f->src[0].ready = f->src[1].ready = 1;
    if (tools_a)
        f->src[0].lists[CAT_TOOLS] = json_loads(tools_a, 0, NULL);
    if (tools_b)
        f->src[1].lists[CAT_TOOLS] = json_loads(tools_b, 0, NULL);
}

static void fixture_release(struct fixture *f)
{
    for (int i = 0; i < 2; i++)
        for (int k = 0; k < CAT_NKINDS; k++)
            json_decref(f->src[i].lists[k]);
}

/* The exposed names of a list page, "n1,n2,..." (or uris/uriTemplates for resources). */
static char *names(const struct catalog *c, int view, enum catalog_kind kind)
{
    static const char *const keys[] = {"tools", "prompts", "resources", "resourceTemplates"};
    static const char *const field[] = {"name", "name", "uri", "uriTemplate"};
    json_t *res = NULL;
    CHECK_INT(catalog_page(c, view, kind, NULL, 0, &res), 0);
    static char out[4096];
    out[0] = '\0';
    size_t i;
    json_t *it;
    json_array_foreach(json_object_get(res, keys[kind]), i, it)
    {
        if (i)
            strcat(out, ",");
        const char *n = json_string_value(json_object_get(it, field[kind]));
        strcat(out, n ? n : "?");
    }
    CHECK(json_object_get(res, "nextCursor") == NULL);
    json_decref(res);
    return out;
}

static void expect_route(const struct catalog *c, int view, enum catalog_kind kind,
                         const char *exposed, int server, const char *orig)
{
    int srv = -1;
    const char *o = NULL;
    int err = catalog_route(c, view, kind, exposed, &srv, &o);
    if (err)
        fprintf(stderr, "route %s in view %d: %d\n", exposed, view, err);
    CHECK_INT(err, 0);
    CHECK_INT(srv, server);
    CHECK_STR(o, orig);
}

static void expect_no_route(const struct catalog *c, int view, enum catalog_kind kind,
                            const char *exposed)
{
    int srv = 77;
    const char *o = "untouched";
    CHECK_INT(catalog_route(c, view, kind, exposed, &srv, &o), ERR_NOTFOUND);
    CHECK_INT(srv, 77);
    CHECK_STR(o, "untouched");
}

static struct catalog *build(struct config *cfg, struct fixture *f, int strict, int expect_err,
                             struct err_info *ei)
{
    struct catalog *c = NULL;
    for (size_t i = 0; i < 2 && i < cfg->nservers; i++)
        f->src[i].srv = &cfg->servers[i]; /* each source's own prefix mode */
    CHECK_INT(catalog_build(cfg, f->src, 2, 42, strict, &c, ei), expect_err);
    CHECK((c != NULL) == (expect_err == 0));
    return c;
}

static void test_when_needed(void)
{
    struct config *cfg = cfg_new("prefix: {mode: when-needed}", NULL);
    struct fixture f;
    fixture_init(&f, "[{\"name\":\"x\",\"description\":\"ax\"},{\"name\":\"y\"}]",
                 "[{\"name\":\"x\",\"description\":\"bx\"},{\"name\":\"z\"}]");
    struct catalog *c = build(cfg, &f, 1, 0, NULL);
    CHECK_INT(catalog_generation(c), 42);
    CHECK_STR(names(c, -1, CAT_TOOLS), "a__x,y,b__x,z");
    CHECK_STR(names(c, 0, CAT_TOOLS), "x,y");
    CHECK_STR(names(c, 1, CAT_TOOLS), "x,z");
    expect_route(c, -1, CAT_TOOLS, "a__x", 0, "x");
    expect_route(c, -1, CAT_TOOLS, "b__x", 1, "x");
    expect_route(c, -1, CAT_TOOLS, "y", 0, "y");
    expect_route(c, -1, CAT_TOOLS, "z", 1, "z");
    expect_no_route(c, -1, CAT_TOOLS, "x");    /* ambiguous, so only the prefixed names exist */
    expect_no_route(c, -1, CAT_TOOLS, "a__y"); /* unique names are not prefixed */
    expect_route(c, 0, CAT_TOOLS, "x", 0, "x");
    expect_route(c, 1, CAT_TOOLS, "x", 1, "x");
    expect_no_route(c, 0, CAT_TOOLS, "z");
    expect_no_route(c, 1, CAT_TOOLS, "b__x");
    expect_no_route(c, 2, CAT_TOOLS, "x");
    expect_no_route(c, -1, CAT_PROMPTS, "y");
    expect_no_route(c, -1, CAT_TOOLS, "");
    expect_no_route(c, -1, CAT_TOOLS, NULL);
    expect_no_route(c, -1, CAT_RESOURCES, "y");

    /* Items are copies: the exposed name is set, the rest of the item is kept. */
    json_t *res;
    CHECK_INT(catalog_page(c, -1, CAT_TOOLS, NULL, 1, &res), 0);
    json_t *first = json_array_get(json_object_get(res, "tools"), 0);
    CHECK_STR(json_string_value(json_object_get(first, "description")), "ax");
    json_decref(res);
    CHECK_STR(
        json_string_value(json_object_get(json_array_get(f.src[0].lists[CAT_TOOLS], 0), "name")),
        "x");

    /* The catalog outlives its sources; references count. */
    fixture_release(&f);
    struct catalog *c2 = catalog_ref(c);
    catalog_unref(c);
    expect_route(c2, -1, CAT_TOOLS, "b__x", 1, "x");
    catalog_unref(c2);
    catalog_unref(NULL);
    config_unref(cfg);
}

static void test_always(void)
{
    struct config *cfg = cfg_new("prefix: {mode: always, separator: \".\"}", NULL);
    struct fixture f;
    fixture_init(&f, "[{\"name\":\"x\"},{\"name\":\"y\"}]", "[{\"name\":\"x\"}]");
    f.src[1].lists[CAT_PROMPTS] = json_loads("[{\"name\":\"p\"}]", 0, NULL);
    struct catalog *c = build(cfg, &f, 1, 0, NULL);
    CHECK_STR(names(c, -1, CAT_TOOLS), "a.x,a.y,b.x");
    CHECK_STR(names(c, -1, CAT_PROMPTS), "b.p");
    CHECK_STR(names(c, 1, CAT_PROMPTS), "p");
    CHECK_STR(names(c, 0, CAT_PROMPTS), "");
    expect_route(c, -1, CAT_PROMPTS, "b.p", 1, "p");
    expect_no_route(c, -1, CAT_PROMPTS, "p");
    expect_no_route(c, -1, CAT_TOOLS, "b.p"); /* kinds are separate namespaces */
    expect_route(c, -1, CAT_TOOLS, "a.y", 0, "y");
    catalog_unref(c);
    fixture_release(&f);
    config_unref(cfg);
}

static void test_never(void)
{
    struct config *cfg = cfg_new("prefix: {mode: never}", NULL);
    struct fixture f;
    fixture_init(&f, "[{\"name\":\"x\",\"description\":\"from a\"},{\"name\":\"y\"}]",
                 "[{\"name\":\"x\",\"description\":\"from b\"},{\"name\":\"z\"}]");
    struct err_info ei = {0};
    build(cfg, &f, 1, ERR_EXISTS, &ei);
    CHECK_STR(
        ei.msg,
        "tool \"x\" of server \"b\" would be exposed as \"x\", a name server \"a\" already exposes "
        "(prefix mode never); rename one, or choose another prefix mode or separator");

    /* Lenient: the first server keeps the name; b's x stays reachable in b's own view. */
    struct catalog *c = build(cfg, &f, 0, 0, NULL);
    CHECK_STR(names(c, -1, CAT_TOOLS), "x,y,z");
    expect_route(c, -1, CAT_TOOLS, "x", 0, "x");
    expect_route(c, 1, CAT_TOOLS, "x", 1, "x");
    CHECK_STR(names(c, 1, CAT_TOOLS), "x,z");
    json_t *res;
    CHECK_INT(catalog_page(c, -1, CAT_TOOLS, NULL, 0, &res), 0);
    CHECK_STR(json_string_value(
                  json_object_get(json_array_get(json_object_get(res, "tools"), 0), "description")),
              "from a");
    json_decref(res);
    catalog_unref(c);
    fixture_release(&f);

    /* Prompts collide the same way, and the message says "prompt". */
    memset(&f, 0, sizeof(f));
    fixture_init(&f, NULL, NULL);
    f.src[0].lists[CAT_PROMPTS] = json_loads("[{\"name\":\"p\"}]", 0, NULL);
    f.src[1].lists[CAT_PROMPTS] = json_loads("[{\"name\":\"p\"}]", 0, NULL);
    build(cfg, &f, 1, ERR_EXISTS, &ei);
    CHECK_CONTAINS(
        ei.msg,
        "prompt \"p\" of server \"b\" would be exposed as \"p\", a name server \"a\" already exposes");
    fixture_release(&f);

    /* No collision: never is fine. */
    fixture_init(&f, "[{\"name\":\"x\"}]", "[{\"name\":\"y\"}]");
    c = build(cfg, &f, 1, 0, NULL);
    CHECK_STR(names(c, -1, CAT_TOOLS), "x,y");
    catalog_unref(c);
    fixture_release(&f);
    config_unref(cfg);
}

/* A per-server prefix mode overrides the global one. */
static void test_per_server_mode(void)
{
    struct config *cfg = cfg_new("prefix: {mode: always}", "    prefix: never\n");
    struct fixture f;
    fixture_init(&f, "[{\"name\":\"x\"}]", "[{\"name\":\"x\"}]");
    struct catalog *c = build(cfg, &f, 1, 0, NULL);
    CHECK_STR(names(c, -1, CAT_TOOLS), "x,b__x");
    expect_route(c, -1, CAT_TOOLS, "x", 0, "x");
    expect_route(c, -1, CAT_TOOLS, "b__x", 1, "x");
    catalog_unref(c);
    fixture_release(&f);
    config_unref(cfg);

    cfg = cfg_new("prefix: {mode: never}", "    prefix: when-needed\n");
    fixture_init(&f, "[{\"name\":\"x\"}]", "[{\"name\":\"x\"}]");
    c = build(cfg, &f, 1, 0, NULL);
    CHECK_STR(names(c, -1, CAT_TOOLS), "a__x,x");
    catalog_unref(c);
    fixture_release(&f);
    config_unref(cfg);
}

/* A server listing one name twice: the first item wins everywhere, and it does not count as
   "two servers" for when-needed. */
static void test_duplicate_in_one_server(void)
{
    static const char *const modes[] = {"prefix: {mode: when-needed}", "prefix: {mode: always}",
                                        "prefix: {mode: never}"};
    static const char *const want[] = {"x,y", "a__x,b__y", "x,y"};
    static const char *const xname[] = {"x", "a__x", "x"};
    for (int m = 0; m < 3; m++) {
        struct config *cfg = cfg_new(modes[m], NULL);
        struct fixture f;
        fixture_init(
            &f, "[{\"name\":\"x\",\"description\":\"1\"},{\"name\":\"x\",\"description\":\"2\"}]",
            "[{\"name\":\"y\"},{\"name\":\"y\"}]");
        struct catalog *c = build(cfg, &f, 1, 0, NULL);
        CHECK_STR(names(c, -1, CAT_TOOLS), want[m]);
        CHECK_STR(names(c, 0, CAT_TOOLS), "x");
        CHECK_STR(names(c, 1, CAT_TOOLS), "y");
        json_t *res;
        CHECK_INT(catalog_page(c, -1, CAT_TOOLS, NULL, 0, &res), 0);
        CHECK_STR(json_string_value(json_object_get(
                      json_array_get(json_object_get(res, "tools"), 0), "description")),
                  "1");
        json_decref(res);
        expect_route(c, -1, CAT_TOOLS, xname[m], 0, "x");
        catalog_unref(c);
        fixture_release(&f);

        /* Both list it, one of them twice: still one entry per server, both prefixed. */
        fixture_init(&f, "[{\"name\":\"x\"},{\"name\":\"x\"}]",
                     "[{\"name\":\"x\"},{\"name\":\"x\"}]");
        struct err_info ei = {0};
        c = build(cfg, &f, 1, m == 2 ? ERR_EXISTS : 0, &ei);
        if (m != 2) {
            CHECK_STR(names(c, -1, CAT_TOOLS), "a__x,b__x");
            catalog_unref(c);
        }
        fixture_release(&f);

        /* a, b, a again in the owners list (a lists x, b lists x, a lists x after other names). */
        fixture_init(&f, "[{\"name\":\"x\"},{\"name\":\"q\"},{\"name\":\"x\"}]",
                     "[{\"name\":\"x\"}]");
        c = build(cfg, &f, 0, 0, NULL);
        CHECK_STR(names(c, -1, CAT_TOOLS), m == 2   ? "x,q"
                                           : m == 1 ? "a__x,a__q,b__x"
                                                    : "a__x,q,b__x");
        catalog_unref(c);
        fixture_release(&f);
        config_unref(cfg);
    }
}

/* A server that is down contributes nothing and does not force a prefix on the others. */
static void test_down_and_junk(void)
{
    struct config *cfg = cfg_new("prefix: {mode: when-needed}", NULL);
    struct fixture f;
    fixture_init(&f, "[{\"name\":\"x\"}]", "[{\"name\":\"x\"}]");
    f.src[1].ready = 0;
    struct catalog *c = build(cfg, &f, 1, 0, NULL);
    CHECK_STR(names(c, -1, CAT_TOOLS), "x");
    CHECK_STR(names(c, 1, CAT_TOOLS), "");
    expect_route(c, -1, CAT_TOOLS, "x", 0, "x");
    expect_no_route(c, 1, CAT_TOOLS, "x");
    catalog_unref(c);
    fixture_release(&f);

    /* Items without a usable name are skipped (not crashed on); a list that is not an array is
       ignored. */
    fixture_init(
        &f,
        "[{\"name\":\"\"},{\"description\":\"no name\"},{\"name\":5},\"str\",null,[1],{\"name\":\"ok\"}]",
        "{\"name\":\"not an array\"}");
    c = build(cfg, &f, 1, 0, NULL);
    CHECK_STR(names(c, -1, CAT_TOOLS), "ok");
    CHECK_STR(names(c, 1, CAT_TOOLS), "");
    catalog_unref(c);
    fixture_release(&f);

    /* No servers at all. */
    struct catalog *e = NULL;
    CHECK_INT(catalog_build(cfg, NULL, 0, 1, 1, &e, NULL), 0);
    CHECK_STR(names(e, -1, CAT_TOOLS), "");
    CHECK_STR(names(e, -1, CAT_TEMPLATES), "");
    expect_no_route(e, -1, CAT_TOOLS, "x");
    expect_no_route(e, 0, CAT_TOOLS, "x");
    json_t *res = NULL;
    CHECK_INT(catalog_page(e, 0, CAT_TOOLS, NULL, 0, &res), ERR_NOTFOUND);
    int srv;
    CHECK_INT(catalog_route_uri(e, -1, "file:///x", &srv), ERR_NOTFOUND);
    catalog_unref(e);
    config_unref(cfg);
}

/* Where a user has something to choose (the settings tool is listed): a server with two tools or
   more (a selection), or one with discovery modes (tools tagged with them). */
static void test_offers_choice(void)
{
    struct config *cfg = cfg_new("prefix: {mode: when-needed}", NULL);
    struct fixture f;
    fixture_init(&f, "[{\"name\":\"x\"}]", "[{\"name\":\"y\"},{\"name\":\"z\"}]");
    struct catalog *c = build(cfg, &f, 1, 0, NULL);
    CHECK(catalog_offers_choice(c, -1));
    CHECK(!catalog_offers_choice(c, 0));
    CHECK(catalog_offers_choice(c, 1));
    CHECK(!catalog_offers_choice(c, 7)); /* no such view */
    catalog_unref(c);
    f.src[1].ready = 0; /* down: nothing to choose there */
    c = build(cfg, &f, 1, 0, NULL);
    CHECK(!catalog_offers_choice(c, -1));
    CHECK(!catalog_offers_choice(c, 1));
    catalog_unref(c);
    fixture_release(&f);
    fixture_init(&f, "[{\"name\":\"s\",\"_meta\":{\"" CONFIG_META_MODES "\":[\"search\"]}}]", "[]");
    c = build(cfg, &f, 1, 0, NULL);
    CHECK(catalog_offers_choice(c, -1));
    CHECK(catalog_offers_choice(c, 0));
    CHECK(!catalog_offers_choice(c, 1));
    catalog_unref(c);
    fixture_release(&f);
    CHECK(!catalog_offers_choice(NULL, -1));
    config_unref(cfg);
}

/* Follow nextCursor through a list, and refuse cursors we did not make. */
static void test_pagination(void)
{
    struct config *cfg = cfg_new("prefix: {mode: when-needed}", NULL);
    struct fixture f;
    fixture_init(
        &f,
        "[{\"name\":\"t0\"},{\"name\":\"t1\"},{\"name\":\"t2\"},{\"name\":\"t3\"},{\"name\":\"t4\"}]",
        "[{\"name\":\"u0\"},{\"name\":\"u1\"}]");
    struct catalog *c = build(cfg, &f, 1, 0, NULL);

    for (size_t ps = 1; ps <= 8; ps++) {
        char seen[256] = "";
        char cursor[128];
        const char *cur = NULL;
        int pages = 0;
        for (;;) {
            json_t *res = NULL;
            CHECK_INT(catalog_page(c, -1, CAT_TOOLS, cur, ps, &res), 0);
            if (res == NULL)
                break;
            json_t *arr = json_object_get(res, "tools");
            CHECK(json_array_size(arr) >= 1 && json_array_size(arr) <= ps);
            size_t i;
            json_t *it;
            json_array_foreach(arr, i, it)
            {
                strcat(seen, json_string_value(json_object_get(it, "name")));
                strcat(seen, " ");
            }
            pages++;
            const char *next = json_string_value(json_object_get(res, "nextCursor"));
            if (next == NULL) {
                json_decref(res);
                break;
            }
            snprintf(cursor, sizeof(cursor), "%s", next);
            cur = cursor;
            json_decref(res);
            if (pages > 10)
                break;
        }
        CHECK_STR(seen, "t0 t1 t2 t3 t4 u0 u1 ");
        CHECK_INT(pages, (7 + ps - 1) / ps);
    }

    /* Per-server views page independently. */
    json_t *res = NULL;
    CHECK_INT(catalog_page(c, 1, CAT_TOOLS, NULL, 1, &res), 0);
    CHECK(json_object_get(res, "nextCursor") != NULL);
    json_decref(res);

    /* Cursors: ours are "o<offset>" base64url; anything else is refused. */
    char enc[64];
    b64url_encode(enc, sizeof(enc), "o7", 2); /* exactly the end: an empty last page */
    CHECK_INT(catalog_page(c, -1, CAT_TOOLS, enc, 2, &res), 0);
    CHECK_INT(json_array_size(json_object_get(res, "tools")), 0);
    CHECK(json_object_get(res, "nextCursor") == NULL);
    json_decref(res);
    b64url_encode(enc, sizeof(enc), "o3", 2);
    CHECK_INT(catalog_page(c, -1, CAT_TOOLS, enc, 0, &res), 0);
    CHECK_INT(json_array_size(json_object_get(res, "tools")), 4);
    json_decref(res);

    static const char *const bad_raw[] = {"o8",
                                          "o99999999999999999999999",
                                          "o18446744073709551615",
                                          "o18446744073709551616",
                                          "x1",
                                          "o",
                                          "oo",
                                          "o1x",
                                          "o0x10",
                                          "O1",
                                          "o3141592653589793238462643383279"};
    for (size_t i = 0; i < sizeof(bad_raw) / sizeof(bad_raw[0]); i++) {
        b64url_encode(enc, sizeof(enc), bad_raw[i], strlen(bad_raw[i]));
        res = NULL;
        int err = catalog_page(c, -1, CAT_TOOLS, enc, 2, &res);
        if (err != ERR_INVAL)
            fprintf(stderr, "cursor raw \"%s\" -> %d\n", bad_raw[i], err);
        CHECK_INT(err, ERR_INVAL);
        CHECK(res == NULL);
    }
    static const char *const bad_enc[] = {"",      "!!!!", "bzE=",    "bzE====", "bz",  "b",
                                          "bzE\n", " bzE", "bzE\xff", "bzE/",    "bzE+"};
    for (size_t i = 0; i < sizeof(bad_enc) / sizeof(bad_enc[0]); i++) {
        res = NULL;
        int err = catalog_page(c, -1, CAT_TOOLS, bad_enc[i], 2, &res);
        if (err != ERR_INVAL)
            fprintf(stderr, "cursor \"%s\" -> %d\n", bad_enc[i], err);
        CHECK_INT(err, ERR_INVAL);
        CHECK(res == NULL);
    }
    /* A cursor from the aggregate beyond a per-server list's length is refused there. */
    b64url_encode(enc, sizeof(enc), "o5", 2);
    CHECK_INT(catalog_page(c, 1, CAT_TOOLS, enc, 2, &res), ERR_INVAL);
    /* A very long cursor does not overflow anything. */
    char *longc = malloc(10001);
    memset(longc, 'A', 10000);
    longc[10000] = '\0';
    CHECK_INT(catalog_page(c, -1, CAT_TOOLS, longc, 2, &res), ERR_INVAL);
    free(longc);
    CHECK_INT(catalog_page(c, 5, CAT_TOOLS, NULL, 2, &res), ERR_NOTFOUND);

    catalog_unref(c);
    fixture_release(&f);
    config_unref(cfg);
}

static void test_resources(void)
{
    struct config *cfg = cfg_new("prefix: {mode: always}", NULL);
    struct fixture f;
    fixture_init(&f, NULL, NULL);
    f.src[0].lists[CAT_RESOURCES] = json_loads(
        "[{\"uri\":\"file:///a.txt\",\"name\":\"a\"},{\"uri\":\"file:///same\"},{\"name\":\"no uri\"}]",
        0, NULL);
    f.src[1].lists[CAT_RESOURCES] =
        json_loads("[{\"uri\":\"file:///b.txt\"},{\"uri\":\"file:///same\"},{\"uri\":7}]", 0, NULL);
    f.src[0].lists[CAT_TEMPLATES] = json_loads(
        "[{\"uriTemplate\":\"db://{table}/rows/{id}\"},{\"uriTemplate\":\"mem://{k}\"}]", 0, NULL);
    f.src[1].lists[CAT_TEMPLATES] = json_loads(
        "[{\"uriTemplate\":\"mem://{k}\"},{\"uriTemplate\":\"gh://{owner}/{repo}/issues\"},{\"name\":\"x\"}]",
        0, NULL);
    struct catalog *c = build(cfg, &f, 1, 0, NULL);

    /* Resource URIs are never rewritten, whatever the prefix mode. Each URI (and template) is
       listed once, by the first server offering it; items without a string uri are dropped. */
    CHECK_STR(names(c, -1, CAT_RESOURCES), "file:///a.txt,file:///same,file:///b.txt");
    CHECK_STR(names(c, 0, CAT_RESOURCES), "file:///a.txt,file:///same");
    CHECK_STR(names(c, 1, CAT_RESOURCES), "file:///b.txt,file:///same");
    CHECK_STR(names(c, -1, CAT_TEMPLATES),
              "db://{table}/rows/{id},mem://{k},gh://{owner}/{repo}/issues");
    CHECK_STR(names(c, 1, CAT_TEMPLATES), "mem://{k},gh://{owner}/{repo}/issues");

    int srv = -1;
    CHECK_INT(catalog_route_uri(c, -1, "file:///a.txt", &srv), 0);
    CHECK_INT(srv, 0);
    CHECK_INT(catalog_route_uri(c, -1, "file:///b.txt", &srv), 0);
    CHECK_INT(srv, 1);
    CHECK_INT(catalog_route_uri(c, -1, "file:///same", &srv), 0); /* first server keeps it */
    CHECK_INT(srv, 0);
    CHECK_INT(catalog_route_uri(c, 1, "file:///same", &srv), 0); /* in b's own view: b */
    CHECK_INT(srv, 1);
    CHECK_INT(catalog_route_uri(c, 0, "file:///b.txt", &srv), ERR_NOTFOUND);
    CHECK_INT(catalog_route_uri(c, -1, "db://users/rows/42", &srv), 0);
    CHECK_INT(srv, 0);
    CHECK_INT(catalog_route_uri(c, -1, "mem://k1", &srv), 0); /* first template in order */
    CHECK_INT(srv, 0);
    CHECK_INT(catalog_route_uri(c, 1, "mem://k1", &srv), 0);
    CHECK_INT(srv, 1);
    CHECK_INT(catalog_route_uri(c, -1, "gh://o/r/issues", &srv), 0);
    CHECK_INT(srv, 1);
    srv = 99;
    CHECK_INT(catalog_route_uri(c, -1, "gh://o/r/pulls", &srv), ERR_NOTFOUND);
    CHECK_INT(catalog_route_uri(c, -1, "db://users/rows/", &srv), ERR_NOTFOUND);
    CHECK_INT(catalog_route_uri(c, -1, "db://users/rows/1/2", &srv), ERR_NOTFOUND);
    CHECK_INT(catalog_route_uri(c, -1, "file:///A.TXT", &srv), ERR_NOTFOUND);
    CHECK_INT(catalog_route_uri(c, -1, "", &srv), ERR_NOTFOUND);
    CHECK_INT(catalog_route_uri(c, -1, NULL, &srv), ERR_NOTFOUND);
    CHECK_INT(catalog_route_uri(c, 9, "file:///a.txt", &srv), ERR_NOTFOUND);
    CHECK_INT(srv, 99);
    /* Tools routes know nothing of resources. */
    expect_no_route(c, -1, CAT_TOOLS, "a");
    catalog_unref(c);
    fixture_release(&f);
    config_unref(cfg);
}

static void test_template_match(void)
{
    static const struct {
        const char *t, *u;
        int want;
    } cases[] = {
        {"", "", 1},
        {"", "x", 0},
        {"abc", "abc", 1},
        {"abc", "abd", 0},
        {"abc", "ab", 0},
        {"ab", "abc", 0},
        {"{x}", "v", 1},
        {"{x}", "value", 1},
        {"{x}", "", 0},    /* a variable takes at least one character */
        {"{x}", "a/b", 0}, /* and never a '/' (level 1 percent-encodes it) */
        {"r://{id}", "r://42", 1},
        {"r://{id}", "r://", 0},
        {"r://{id}/", "r://42/", 1}, /* trailing literal */
        {"r://{id}/", "r://42", 0},
        {"r://{id}.json", "r://42.json", 1},
        {"r://{id}.json", "r://42.jso", 0},
        {"r://{id}.json", "r://42.json/", 0},
        {"r://{id}.json", "r://.json", 0},
        {"a/{x}/b/{y}", "a/1/b/2", 1},
        {"a/{x}/b/{y}", "a/1/c/2", 0},
        {"a/{x}/b/{y}", "a//b/2", 0},
        {"x://{a}-{b}", "x://1-2", 1},
        {"x://{a}-{b}", "x://1-2-3", 1},
        {"r://{id", "r://{id", 0}, /* unclosed brace: never matches */
        {"r://{id", "r://5", 0},
        {"r://}{id}", "r://}5", 1}, /* a lone '}' is a literal */
        {"{}", "z", 1},
        {"r://{id}", "r://%2Fetc", 1},
        {"r://{id}?x", "r://5?x", 1},
        {"users/{id}", "users/\xc3\xa9", 1},
        /* A variable takes as much as the rest of the template leaves (backtracking). */
        {"{a}{b}", "xy", 1},
        {"file:///{name}.txt", "file:///a.b.txt", 1},
        {"r://{x}x", "r://axx", 1},
        {"x://{a}.{b}.json", "x://a.b.c.json", 1},
        {"r://{id}-v", "r://a-b-v", 1},
        {"r://{id}-v", "r://a-b-w", 0},
        {"{a}{b}", "x", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int got = catalog_template_match(cases[i].t, cases[i].u);
        if (got != cases[i].want)
            fprintf(stderr, "template \"%s\" uri \"%s\": %d, expected %d\n", cases[i].t, cases[i].u,
                    got, cases[i].want);
        CHECK_INT(got, cases[i].want);
    }
}

int main(void)
{
    if (core_init() != 0)
        return 1;
    static const struct test_case cases[] = {
        TEST(test_when_needed),
        TEST(test_always),
        TEST(test_never),
        TEST(test_per_server_mode),
        TEST(test_duplicate_in_one_server),
        TEST(test_down_and_junk),
        TEST(test_offers_choice),
        TEST(test_pagination),
        TEST(test_resources),
        TEST(test_template_match),
    };
    return test_run_all(cases, sizeof(cases) / sizeof(cases[0]));
}
