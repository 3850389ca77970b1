/*
 * Tasks (src/mcp/tasks.c): the ids the gateway issues and the rule of who may reach a task, then
 * the tasks methods on a real engine started with no servers (so no task exists: creating and
 * running tasks is covered end to end by tests/interop/tasks.test.mjs and the conformance suite):
 * the capability gate of 2026-07-28, the refusals of a malformed, unknown or missing id, the
 * methods of each era.
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
    CHECK_INT(config_load_string(yaml, strlen(yaml), "t.yaml", &cfg, &ei), 0);
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

/* The ids the gateway draws (rand_token of MCP_TASK_ID_BYTES) are exactly the well-formed ones:
   32 characters of base64url, nothing else. */
static void test_id_shape(void)
{
    for (int i = 0; i < 100; i++) {
        char id[MCP_TASK_ID_LEN + 1];
        rand_token(id, sizeof(id), MCP_TASK_ID_BYTES);
        CHECK_INT(strlen(id), MCP_TASK_ID_LEN);
        CHECK(mcp_task_id_wellformed(id, strlen(id)));
    }
    const char *good = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA-_";
    CHECK(mcp_task_id_wellformed(good, 32));
    CHECK(!mcp_task_id_wellformed(good, 31));
    CHECK(!mcp_task_id_wellformed("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", 33));
    CHECK(!mcp_task_id_wellformed(NULL, 0));
    CHECK(!mcp_task_id_wellformed("", 0));
    /* characters outside base64url, padding, a NUL inside (the length says 32) */
    static const char *const bad[] = {
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA+",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA/", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA "};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CHECK(!mcp_task_id_wellformed(bad[i], 32));
    char nul[33];
    memcpy(nul, good, 33);
    nul[10] = '\0';
    CHECK(!mcp_task_id_wellformed(nul, 32));
}

/* Who reaches a task: a 2026-07-28 task its owner's requests only; a 2025-11-25 task the session
   that created it only; never across the eras. */
static void test_visibility(void)
{
    int a, b; /* two sessions (only their addresses matter) */
    CHECK(mcp_task_visible("u:1", NULL, "u:1", NULL));
    CHECK(!mcp_task_visible("u:1", NULL, "u:2", NULL));
    CHECK(!mcp_task_visible("u:1", NULL, "", NULL));
    CHECK(!mcp_task_visible("", NULL, "u:1", NULL));
    CHECK(mcp_task_visible("", NULL, "", NULL)); /* authentication off: the id is the capability */
    CHECK(mcp_task_visible("u:1", &a, "u:1", &a));
    CHECK(!mcp_task_visible("u:1", &a, "u:1", &b)); /* same user, another session */
    CHECK(!mcp_task_visible("", &a, "", &b));
    CHECK(!mcp_task_visible("u:1", &a, "u:1", NULL)); /* a 2025-11-25 task, a 2026-07-28 request */
    CHECK(!mcp_task_visible("u:1", NULL, "u:1", &a)); /* and the other way */
}

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

static int error_of(const struct mcp_reply *r, const char **message)
{
    json_t *e = json_object_get(r->body, "error");
    *message = e ? json_string_value(json_object_get(e, "message")) : "";
    return e ? (int)json_integer_value(json_object_get(e, "code")) : 0;
}

static struct session *modern(const char *caps)
{
    json_t *c = json_loads(caps, 0, NULL);
    int err = 0;
    struct session *s = session_new_transient(-1, MCP_VERSION_2026, c, &err);
    json_decref(c);
    CHECK(s != NULL);
    return s;
}

#define EXT "{\"extensions\":{\"io.modelcontextprotocol/tasks\":{}}}"
#define ID32 "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"

/* 2026-07-28: without the extension every tasks method is -32021 (400) naming it, whatever the
   id; with it, an id no task has is -32602, a malformed or missing one too. */
static void test_modern(void)
{
    struct mcp_reply r;
    const char *m;
    struct session *s = modern("{}");
    static const char *const gated[] = {
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/get\",\"params\":{\"taskId\":\"gate\"}}",
        ("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/update\",\"params\":{\"taskId\":\"gate\","
         "\"inputResponses\":{}}}"),
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/cancel\",\"params\":{\"taskId\":\"gate\"}}"};
    for (size_t i = 0; i < sizeof(gated) / sizeof(gated[0]); i++) {
        handle(s, gated[i], &r);
        CHECK_INT(error_of(&r, &m), -32021);
        CHECK_INT(r.status, 400);
        CHECK_CONTAINS(m, "io.modelcontextprotocol/tasks");
        json_t *req = json_object_get(
            json_object_get(json_object_get(json_object_get(r.body, "error"), "data"),
                            "requiredCapabilities"),
            "extensions");
        CHECK(json_is_object(json_object_get(req, "io.modelcontextprotocol/tasks")));
        mcp_reply_release(&r);
    }
    /* the methods 2026-07-28 removed */
    handle(
        s,
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/result\",\"params\":{\"taskId\":\"" ID32
        "\"}}",
        &r);
    CHECK_INT(error_of(&r, &m), JSONRPC_METHOD_NOT_FOUND);
    mcp_reply_release(&r);
    handle(s, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/list\",\"params\":{}}", &r);
    CHECK_INT(error_of(&r, &m), JSONRPC_METHOD_NOT_FOUND);
    mcp_reply_release(&r);
    session_close(s);
    session_unref(s);

    s = modern(EXT);
    static const char *const unknown[] = {
        ("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/get\",\"params\":{\"taskId\":\"" ID32
         "\"}}"),
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/get\",\"params\":{\"taskId\":\"short\"}}",
        ("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/cancel\",\"params\":{\"taskId\":\"" ID32
         "\"}}"),
        ("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/update\",\"params\":{\"taskId\":\"" ID32
         "\",\"inputResponses\":{}}}")};
    for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
        handle(s, unknown[i], &r);
        CHECK_INT(error_of(&r, &m), JSONRPC_INVALID_PARAMS);
        CHECK_CONTAINS(m, "no task");
        CHECK_INT(r.status, 200);
        mcp_reply_release(&r);
    }
    handle(s, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/get\",\"params\":{}}", &r);
    CHECK_INT(error_of(&r, &m), JSONRPC_INVALID_PARAMS);
    CHECK_CONTAINS(m, "params.taskId");
    mcp_reply_release(&r);
    handle(
        s,
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/update\",\"params\":{\"taskId\":\"" ID32
        "\"}}",
        &r);
    CHECK_INT(error_of(&r, &m), JSONRPC_INVALID_PARAMS);
    CHECK_CONTAINS(m, "params.inputResponses");
    mcp_reply_release(&r);
    session_close(s);
    session_unref(s);
}

/* 2025-11-25: tasks/get, tasks/result, tasks/list and tasks/cancel; tasks/update is not of that
   revision. A session with no task lists none. */
static void test_legacy(void)
{
    struct mcp_reply r;
    const char *m;
    int err = 0;
    struct session *s = session_new(-1, "2025-11-25", NULL, &err);
    CHECK(s != NULL);
    handle(s, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/list\",\"params\":{}}", &r);
    CHECK_INT(error_of(&r, &m), 0);
    CHECK_INT(json_array_size(json_object_get(json_object_get(r.body, "result"), "tasks")), 0);
    mcp_reply_release(&r);
    static const char *const verbs[] = {"get", "result", "cancel"};
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
        char text[200];
        snprintf(
            text, sizeof(text),
            "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/%s\",\"params\":{\"taskId\":\"" ID32
            "\"}}",
            verbs[i]);
        handle(s, text, &r);
        CHECK_INT(error_of(&r, &m), JSONRPC_INVALID_PARAMS);
        CHECK_CONTAINS(m, "no task");
        mcp_reply_release(&r);
    }
    handle(
        s,
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/update\",\"params\":{\"taskId\":\"" ID32
        "\",\"inputResponses\":{}}}",
        &r);
    CHECK_INT(error_of(&r, &m), JSONRPC_METHOD_NOT_FOUND);
    mcp_reply_release(&r);
    session_close(s);
    session_unref(s);
}

TEST_MAIN(TEST(setup), TEST(test_id_shape), TEST(test_visibility), TEST(test_modern),
          TEST(test_legacy), TEST(teardown))
