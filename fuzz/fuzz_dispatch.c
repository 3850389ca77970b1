/*
 * Fuzz the engine's method dispatch (mcp_handle_message, src/mcp/gateway.c) with arbitrary
 * JSON-RPC messages, on a real engine started once with no servers (as tests/unit/mcp/
 * test_dispatch.c does: nothing is forwarded, every answer is the gateway's own) and with
 * authentication on, so that a user principal reads its settings from a real SQLite store.
 *
 * Input layout: the first byte chooses how the message arrives, the rest is the HTTP body.
 *   bit 0: the era: 0 a 2025-11-25 client (legacy sessions), 1 a 2026-07-28 stateless request
 *          (a transient session made from the request's _meta, as the HTTP layer makes it);
 *   bit 1: legacy only: on a session opened by initialize (else none, as before initialize);
 *   bit 2: the caller: an authenticated user (else the anonymous principal).
 *
 * Beyond not crashing, the dispatcher is held to its contract (a violation aborts):
 *   - a body that is not a JSON-RPC message never reaches the dispatcher, and its refusal names
 *     why (a non-empty message);
 *   - a request gets exactly one answer: a JSON-RPC 2.0 object with either a result object or
 *     an error object whose code is an integer and whose message is a non-empty string, echoing
 *     the request's id exactly; or an answer stream, never both, never neither;
 *   - a notification, or a client's answer to a request, gets no JSON-RPC reply (202, no body,
 *     no stream, no session);
 *   - only an initialize request without a session opens a session;
 *   - the reply survives json_dumps / json_loads unchanged (a client can read what we send).
 */
#include "core/rand.h"
#include "mcp/gateway.h"
#include "mcp/jsonrpc.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct mcp_worker worker;
static struct principal anon, user;

static void violated(const char *what, const char *body, size_t n, const json_t *reply)
{
    char *text = reply ? json_dumps(reply, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    fprintf(stderr, "fuzz_dispatch: property violated: %s\n  message: %.*s\n  reply: %s\n", what,
            (int)(n > 400 ? 400 : n), body, text ? text : "(none)");
    free(text);
    abort();
}

static char dir[] = "/tmp/gh-fuzz-dispatch-XXXXXX";

/* At exit: stop the engine and remove its store. */
static void stop_engine(void)
{
    mcp_worker_release(&worker);
    session_table_close_all();
    gateway_free();
    static const char *const files[] = {"gh.db", "gh.db-wal", "gh.db-shm", "gh.db-journal"};
    char path[sizeof(dir) + 32];
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
        unlink(path);
    }
    rmdir(dir);
}

/* The engine, once per process: no servers, authentication on, a store in a private directory. */
static int start_engine(void)
{
    if (core_init() != 0 || mkdtemp(dir) == NULL)
        return -1;
    session_table_init(100, 0, 16);
    char yaml[512];
    snprintf(yaml, sizeof(yaml),
             "servers: []\nstore:\n  sqlite: %s/gh.db\n"
             "auth:\n  enabled: true\n  issuer: https://gatehouse.test\n",
             dir);
    struct config *cfg = NULL;
    struct err_info ei = {0};
    if (config_load_string(yaml, strlen(yaml), "fuzz.yaml", &cfg, &ei) != 0) {
        fprintf(stderr, "fuzz_dispatch: config: %s\n", ei.msg);
        return -1;
    }
    int err = gateway_start(cfg, NULL, 0);
    config_unref(cfg);
    if (err)
        return -1;
    atexit(stop_engine);
    principal_init_anonymous(&anon);
    principal_init_anonymous(&user);
    user.kind = PRINCIPAL_USER;
    user.id = 1;
    snprintf(user.name, sizeof(user.name), "%s", "fuzz");
    return 0;
}

/* A legacy session, opened the way a client opens one. */
static struct session *open_session(const struct principal *who)
{
    static const char init[] =
        "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\",\"params\":{"
        "\"protocolVersion\":\"2025-11-25\",\"capabilities\":{},"
        "\"clientInfo\":{\"name\":\"fuzz\",\"version\":\"1\"}}}";
    json_t *msg = NULL, *id = NULL;
    enum jsonrpc_kind kind;
    if (jsonrpc_parse(init, sizeof(init) - 1, &msg, &kind, &id, NULL) != 0)
        abort();
    json_decref(id);
    struct mcp_reply r;
    mcp_handle_message(&worker, -1, who, NULL, msg, kind, &r);
    json_decref(msg);
    struct session *s = r.session ? session_ref(r.session) : NULL;
    mcp_reply_release(&r);
    if (s == NULL)
        abort(); /* initialize on a fresh engine must open a session */
    return s;
}

/* A 2026-07-28 request's transient session, as the HTTP layer makes it (src/http/server.c). */
static struct session *transient_session(json_t *msg, const struct principal *who)
{
    json_t *meta = json_object_get(json_object_get(msg, "params"), "_meta");
    json_t *caps =
        json_deep_copy(json_object_get(meta, "io.modelcontextprotocol/clientCapabilities"));
    int level = mcp_log_level_rank(
        json_string_value(json_object_get(meta, "io.modelcontextprotocol/logLevel")));
    mcp_era_strip_meta(msg);
    int err = 0;
    struct session *s = session_new_transient(-1, MCP_VERSION_2026, caps, &err);
    json_decref(caps);
    if (s == NULL)
        abort();
    char key[PRINCIPAL_KEY_MAX + 1];
    session_set_log_level(s, level);
    session_set_owner(s, principal_key(who, key, sizeof(key)));
    return s;
}

static void check_reply(const struct mcp_reply *r, json_t *msg, enum jsonrpc_kind kind,
                        bool had_session, const char *body, size_t n)
{
    const char *method = jsonrpc_method(msg);
    if (kind != JSONRPC_REQUEST) {
        if (r->status != 202 || r->body != NULL || r->stream != NULL || r->session != NULL)
            violated("a notification or a client's answer got a reply", body, n, r->body);
        return;
    }
    if ((r->body != NULL) == (r->stream != NULL))
        violated("a request got no answer, or two", body, n, r->body);
    if (r->session != NULL && (had_session || strcmp(method, "initialize") != 0 ||
                               r->body == NULL || json_object_get(r->body, "result") == NULL))
        violated("a session was opened by something other than a successful initialize", body, n,
                 r->body);
    if (r->stream != NULL)
        return; /* answered by a server later (never here: the engine has none) */
    if (r->status != 200 && (r->status < 400 || r->status > 499))
        violated("an answer with a status that is neither 200 nor 4xx", body, n, r->body);
    json_t *b = r->body;
    if (!json_is_object(b) || !json_is_string(json_object_get(b, "jsonrpc")) ||
        strcmp(json_string_value(json_object_get(b, "jsonrpc")), "2.0") != 0)
        violated("an answer that is not a JSON-RPC 2.0 object", body, n, b);
    json_t *result = json_object_get(b, "result"), *error = json_object_get(b, "error");
    if ((result != NULL) == (error != NULL))
        violated("an answer with both or neither of result and error", body, n, b);
    if (json_object_size(b) != 3)
        violated("an answer with members beyond jsonrpc, id and result or error", body, n, b);
    if (result != NULL && !json_is_object(result))
        violated("a result that is not an object", body, n, b);
    if (error != NULL) {
        const char *m = json_string_value(json_object_get(error, "message"));
        if (!json_is_integer(json_object_get(error, "code")) || m == NULL || *m == '\0')
            violated("an error without an integer code and a non-empty message", body, n, b);
        if (r->status != 200 && r->status != 400)
            violated("a refusal with a status other than 200 or 400", body, n, b);
    } else if (r->status != 200) {
        violated("a result with a status other than 200", body, n, b);
    }
    json_t *id = json_object_get(msg, "id"), *rid = json_object_get(b, "id");
    if (rid == NULL || !json_equal(id, rid) || json_typeof(id) != json_typeof(rid))
        violated("an answer that does not echo the request's id exactly", body, n, b);
    char *text = json_dumps(b, JSON_COMPACT);
    if (text == NULL)
        violated("an answer json_dumps cannot write", body, n, b);
    json_error_t jerr;
    json_t *back = json_loads(text, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (back == NULL || !json_equal(back, b))
        violated("an answer that does not read back as it was written", body, n, b);
    json_decref(back);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int started;
    if (!started)
        started = start_engine() == 0 ? 1 : -1;
    if (started < 0)
        abort();
    if (size < 1 || size > 65536)
        return 0;
    bool modern = data[0] & 1, with_session = data[0] & 2;
    const struct principal *who = data[0] & 4 ? &user : &anon;
    const char *body = (const char *)data + 1;
    size_t n = size - 1;

    json_t *msg = NULL, *id = NULL;
    enum jsonrpc_kind kind;
    struct err_info ei = {0};
    if (jsonrpc_parse(body, n, &msg, &kind, &id, &ei) != 0) {
        if (msg != NULL)
            violated("a refused body still came out as a message", body, n, NULL);
        if (ei.msg[0] == '\0')
            violated("a body was refused without a reason", body, n, NULL);
        json_decref(id);
        return 0;
    }
    json_decref(id);
    struct session *s = NULL;
    if (modern)
        s = transient_session(msg, who);
    else if (with_session)
        s = open_session(who);
    struct mcp_reply r;
    mcp_handle_message(&worker, -1, who, s, msg, kind, &r);
    check_reply(&r, msg, kind, s != NULL, body, n);
    if (r.session != NULL)
        session_close(r.session);
    mcp_reply_release(&r);
    if (s != NULL) {
        session_close(s);
        session_unref(s);
    }
    json_decref(msg);
    return 0;
}
