/*
 * The engine's method dispatch (mcp_handle_message in src/mcp/gateway.c) for every message the
 * gateway answers itself, on a real engine started with no servers (so nothing is forwarded:
 * forwarding is covered end to end by tests/integration): which methods need a session, which
 * are answered, the exact refusals (code, message, HTTP status), notifications and answers to
 * requests nobody sent. Written before the method table replaced the chain of comparisons, and
 * unchanged by it.
 */
#include <stdlib.h>
#include <string.h>

#include "core/rand.h"
#include "mcp/gateway.h"
#include "test.h"

static struct mcp_worker worker;
static struct principal anon;

static void setup(void)
{
    CHECK_INT(core_init(), 0);
    session_table_init(100, 0, 16);
    const char *yaml = "servers: []\n";
    struct config *cfg = NULL;
    struct err_info ei = {0};
    int err = config_load_string(yaml, strlen(yaml), "t.yaml", &cfg, &ei);
    if (err)
        fprintf(stderr, "config: %s\n", ei.msg);
    CHECK_INT(err, 0);
    CHECK_INT(gateway_start(cfg, NULL, 0), 0);
    config_unref(cfg);
    principal_init_anonymous(&anon);
}

static void teardown(void)
{
    mcp_worker_release(&worker);
    session_table_close_all();
    gateway_free();
}

/* Send `text` (a JSON-RPC message) on session s (NULL: none) to /mcp. */
static void handle(struct session *s, const char *text, struct mcp_reply *r)
{
    json_t *msg = NULL, *id = NULL;
    enum jsonrpc_kind kind;
    struct err_info ei = {0};
    CHECK_INT(jsonrpc_parse(text, strlen(text), &msg, &kind, &id, &ei), 0);
    json_decref(id);
    mcp_handle_message(&worker, -1, &anon, s, msg, kind, r);
    json_decref(msg);
}

/* The error code and message of an answer (0 and "" for a result). */
static int error_of(const struct mcp_reply *r, const char **message)
{
    json_t *e = json_object_get(r->body, "error");
    *message = e ? json_string_value(json_object_get(e, "message")) : "";
    return e ? (int)json_integer_value(json_object_get(e, "code")) : 0;
}

static struct session *new_session(void)
{
    struct mcp_reply r;
    handle(NULL,
           "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{"
           "\"protocolVersion\":\"2025-11-25\",\"capabilities\":{},"
           "\"clientInfo\":{\"name\":\"t\",\"version\":\"1\"}}}",
           &r);
    CHECK_INT(r.status, 200);
    CHECK(r.session != NULL);
    CHECK_STR(
        json_string_value(json_object_get(json_object_get(r.body, "result"), "protocolVersion")),
        "2025-11-25");
    struct session *s = r.session ? session_ref(r.session) : NULL;
    mcp_reply_release(&r);
    return s;
}

static void test_initialize(void)
{
    struct session *s = new_session();
    struct mcp_reply r;
    const char *m;
    /* a second initialize on a session is refused, 400 */
    handle(s,
           "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"initialize\",\"params\":{"
           "\"protocolVersion\":\"2025-11-25\",\"capabilities\":{},"
           "\"clientInfo\":{\"name\":\"t\",\"version\":\"1\"}}}",
           &r);
    CHECK_INT(r.status, 400);
    CHECK_INT(error_of(&r, &m), JSONRPC_INVALID_REQUEST);
    CHECK_CONTAINS(m, "this session is already initialized");
    CHECK(r.session == NULL);
    mcp_reply_release(&r);
    session_close(s);
    session_unref(s);
}

static void test_answered_by_the_gateway(void)
{
    struct session *s = new_session();
    struct mcp_reply r;
    const char *m;
    handle(s, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"ping\"}", &r);
    CHECK_INT(r.status, 200);
    CHECK_INT(error_of(&r, &m), 0);
    CHECK(json_is_object(json_object_get(r.body, "result")));
    CHECK_INT(json_integer_value(json_object_get(r.body, "id")), 3);
    CHECK(r.stream == NULL && r.server == NULL);
    mcp_reply_release(&r);

    handle(s, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"server/discover\"}", &r);
    CHECK_INT(error_of(&r, &m), 0);
    CHECK(json_is_array(json_object_get(json_object_get(r.body, "result"), "supportedVersions")));
    mcp_reply_release(&r);

    static const char *const lists[][2] = {{"tools/list", "tools"},
                                           {"prompts/list", "prompts"},
                                           {"resources/list", "resources"},
                                           {"resources/templates/list", "resourceTemplates"}};
    for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
        char text[200];
        snprintf(text, sizeof(text), "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"%s\"}",
                 lists[i][0]);
        handle(s, text, &r);
        CHECK_INT(r.status, 200);
        CHECK_INT(error_of(&r, &m), 0);
        json_t *result = json_object_get(r.body, "result");
        CHECK(json_is_array(json_object_get(result, lists[i][1])));
        mcp_reply_release(&r);
        /* a cursor that is not a string, or not ours */
        snprintf(text, sizeof(text),
                 "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"%s\",\"params\":{\"cursor\":5}}",
                 lists[i][0]);
        handle(s, text, &r);
        CHECK_INT(error_of(&r, &m), JSONRPC_INVALID_PARAMS);
        CHECK_CONTAINS(m, "params.cursor must be a string");
        CHECK_CONTAINS(m, lists[i][0]);
        mcp_reply_release(&r);
    }

    handle(s,
           "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"logging/setLevel\",\"params\":{\"level\":"
           "\"info\"}}",
           &r);
    CHECK_INT(error_of(&r, &m), 0);
    CHECK_INT(session_log_level(s), mcp_log_level_rank("info"));
    mcp_reply_release(&r);
    handle(s,
           "{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"logging/setLevel\",\"params\":{\"level\":"
           "\"loud\"}}",
           &r);
    CHECK_INT(error_of(&r, &m), JSONRPC_INVALID_PARAMS);
    CHECK_CONTAINS(m, "logging/setLevel: params.level must be one of debug");
    mcp_reply_release(&r);
    session_close(s);
    session_unref(s);
}

static void test_refusals(void)
{
    struct session *s = new_session();
    struct mcp_reply r;
    const char *m;
    static const struct {
        const char *text;
        int code;
        const char *message, *target;
    } cases[] = {
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"no/such\"}", JSONRPC_METHOD_NOT_FOUND,
         "Method not found: no/such", ""},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"subscriptions/listen\"}",
         JSONRPC_METHOD_NOT_FOUND, "Method not found: subscriptions/listen", ""},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"x\"}}",
         JSONRPC_INVALID_PARAMS, "Unknown tool: x", "x"},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"prompts/get\",\"params\":{\"name\":\"p\"}}",
         JSONRPC_INVALID_PARAMS, "Unknown prompt: p", "p"},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":5}}",
         JSONRPC_INVALID_PARAMS, "tools/call: params.name must be a string without NUL", ""},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"a\\u0000"
         "b\"}}",
         JSONRPC_INVALID_PARAMS, "tools/call: params.name must be a string without NUL", ""},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"x\","
         "\"arguments\":[1]}}",
         JSONRPC_INVALID_PARAMS, "tools/call: params.arguments must be an object", ""},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"resources/read\",\"params\":{\"uri\":"
         "\"file:///x\"}}",
         JSONRPC_RESOURCE_NOT_FOUND, "Resource not found: file:///x (no server", "file:///x"},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"resources/subscribe\",\"params\":{}}",
         JSONRPC_INVALID_PARAMS, "resources/subscribe: params.uri must be a string", ""},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"resources/unsubscribe\",\"params\":{\"uri\":"
         "\"u:x\"}}",
         JSONRPC_RESOURCE_NOT_FOUND, "Resource not found: u:x", "u:x"},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"completion/complete\",\"params\":{\"ref\":{"
         "\"type\":\"ref/prompt\",\"name\":\"p\"}}}",
         JSONRPC_INVALID_PARAMS, "completion/complete: unknown prompt p", ""},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"completion/complete\",\"params\":{\"ref\":{"
         "\"type\":\"ref/resource\",\"uri\":\"u:x\"}}}",
         JSONRPC_INVALID_PARAMS, "completion/complete: unknown resource u:x", ""},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"completion/complete\",\"params\":{}}",
         JSONRPC_INVALID_PARAMS,
         "completion/complete: params.ref.type must be ref/prompt or ref/resource", ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        handle(s, cases[i].text, &r);
        int code = error_of(&r, &m);
        if (code != cases[i].code || strstr(m, cases[i].message) == NULL)
            fprintf(stderr, "case %zu: %d %s\n", i, code, m);
        CHECK_INT(code, cases[i].code);
        CHECK_CONTAINS(m, cases[i].message);
        CHECK_STR(r.target, cases[i].target);
        CHECK_INT(r.status, 200);
        CHECK(r.stream == NULL && r.server == NULL);
        mcp_reply_release(&r);
    }
    session_close(s);
    session_unref(s);
}

static void test_notifications_and_answers(void)
{
    struct session *s = new_session();
    struct mcp_reply r;
    static const char *const texts[] = {
        "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}",
        "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{\"requestId\":9}}",
        "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/roots/list_changed\"}",
        "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/whatever\"}",
        /* answers to requests the gateway never sent: ignored */
        "{\"jsonrpc\":\"2.0\",\"id\":77,\"result\":{}}",
        "{\"jsonrpc\":\"2.0\",\"id\":\"x\",\"error\":{\"code\":1,\"message\":\"no\"}}",
    };
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        handle(s, texts[i], &r);
        CHECK_INT(r.status, 202);
        CHECK(r.body == NULL && r.stream == NULL && r.session == NULL && r.server == NULL);
        mcp_reply_release(&r);
    }
    session_close(s);
    session_unref(s);
}

/* The table: sorted (it is binary-searched), one row per name, and its flags say what the
   engine does: which methods go to a server, which 2026-07-28 clients may send. */
static void test_table(void)
{
    size_t n = 0;
    for (const struct mcp_method *m; (m = mcp_method_at(n)) != NULL; n++) {
        if (n > 0 && strcmp(mcp_method_at(n - 1)->name, m->name) >= 0)
            fprintf(stderr, "row %zu (%s) is out of order\n", n, m->name);
        CHECK(n == 0 || strcmp(mcp_method_at(n - 1)->name, m->name) < 0);
        CHECK(mcp_method_find(m->name) == m);
        CHECK(m->flags & (MCP_METHOD_LEGACY | MCP_METHOD_MODERN));
        CHECK(!(m->flags & MCP_METHOD_FORWARDED) || (m->flags & MCP_METHOD_REQUEST));
    }
    CHECK_INT(n, 22);
    CHECK(mcp_method_find("no/such") == NULL);
    CHECK(mcp_method_find(NULL) == NULL);
    CHECK(mcp_method_find("tools/cal") == NULL);
    CHECK(mcp_method_find("subscriptions/listen") == NULL); /* the HTTP layer serves it */
    static const char *const forwarded[] = {
        "tools/call",          "prompts/get",           "resources/read",
        "resources/subscribe", "resources/unsubscribe", "completion/complete"};
    size_t nfwd = 0;
    for (size_t i = 0; i < n; i++)
        nfwd += (mcp_method_at(i)->flags & MCP_METHOD_FORWARDED) != 0;
    CHECK_INT(nfwd, sizeof(forwarded) / sizeof(forwarded[0]));
    for (size_t i = 0; i < sizeof(forwarded) / sizeof(forwarded[0]); i++)
        CHECK(mcp_method_find(forwarded[i])->flags & MCP_METHOD_FORWARDED);
    /* what a 2026-07-28 client may send, as the era checks (server.c) read it */
    static const char *const modern[] = {"server/discover",
                                         "tools/list",
                                         "tools/call",
                                         "prompts/list",
                                         "prompts/get",
                                         "resources/list",
                                         "resources/templates/list",
                                         "resources/read",
                                         "completion/complete",
                                         "tasks/get",
                                         "tasks/update",
                                         "tasks/cancel"};
    size_t nmodern = 0;
    for (size_t i = 0; i < n; i++)
        nmodern += mcp_era_method_stateless(mcp_method_at(i)->name);
    CHECK_INT(nmodern, sizeof(modern) / sizeof(modern[0]));
    for (size_t i = 0; i < sizeof(modern) / sizeof(modern[0]); i++)
        CHECK(mcp_era_method_stateless(modern[i]));
    CHECK(!mcp_era_method_stateless("ping"));
    CHECK(!mcp_era_method_stateless("initialize"));
    CHECK(!mcp_era_method_stateless("notifications/cancelled"));
    CHECK(!mcp_era_method_stateless("tasks/result")); /* removed by the tasks extension */
    CHECK(!mcp_era_method_stateless("tasks/list"));
    CHECK(mcp_method_find("initialize")->flags & MCP_METHOD_NO_SESSION);
    CHECK_INT(mcp_method_find("notifications/cancelled")->flags & MCP_METHOD_REQUEST, 0);
}

/* Only initialize comes without a session; a notification's name sent as a request is unknown. */
static void test_session_and_kind(void)
{
    struct mcp_reply r;
    const char *m;
    handle(NULL, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}", &r);
    CHECK_INT(r.status, 400);
    CHECK_INT(error_of(&r, &m), JSONRPC_INVALID_REQUEST);
    CHECK_STR(m, "tools/list needs a session; send initialize first to get one");
    mcp_reply_release(&r);
    /* a notification or an answer before initialize: ignored (nothing to cancel or relay to) */
    static const char *const sessionless[] = {
        "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{\"requestId\":1}}",
        "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":1,\"message\":\"no\"}}",
    };
    for (size_t i = 0; i < sizeof(sessionless) / sizeof(sessionless[0]); i++) {
        handle(NULL, sessionless[i], &r);
        CHECK_INT(r.status, 202);
        CHECK(r.body == NULL && r.stream == NULL && r.session == NULL && r.server == NULL);
        mcp_reply_release(&r);
    }
    struct session *s = new_session();
    handle(s, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"notifications/cancelled\"}", &r);
    CHECK_INT(error_of(&r, &m), JSONRPC_METHOD_NOT_FOUND);
    CHECK_STR(m, "Method not found: notifications/cancelled");
    mcp_reply_release(&r);
    /* a request's name sent as a notification: ignored */
    handle(s, "{\"jsonrpc\":\"2.0\",\"method\":\"tools/list\"}", &r);
    CHECK_INT(r.status, 202);
    CHECK(r.body == NULL);
    mcp_reply_release(&r);
    session_close(s);
    session_unref(s);
}

TEST_MAIN(TEST(setup), TEST(test_initialize), TEST(test_answered_by_the_gateway),
          TEST(test_refusals), TEST(test_notifications_and_answers), TEST(test_table),
          TEST(test_session_and_kind), TEST(teardown))
