/*
 * The MCP engine: the upstream servers (each pinned to one worker's loop, initialised, their
 * lists fetched and kept current), the catalog built from them, and the dispatch of every
 * downstream message: answered by the gateway (initialize, ping, lists), routed to one server
 * with its id rewritten (tools/call, prompts/get, resources/read, completion/complete, …), or
 * relayed back (a client's answer to a server's sampling/elicitation/roots request). The
 * dispatch is a table of methods (mcp_method_find): a new method is a new row.
 *
 * Threads: gateway_start/gateway_wait_ready/gateway_stop run on the main thread; the
 * mcp_handle_* functions on a worker thread (the one the HTTP request arrived on). Answers reach
 * the HTTP layer through streams (session.h), whatever thread produced them.
 */
#ifndef GH_MCP_GATEWAY_H
#define GH_MCP_GATEWAY_H

#include <jansson.h>
#include <stdbool.h>
#include <uv.h>

#include "config/config.h"
#include "core/mailbox.h"
#include "core/principal.h"
#include "mcp/jsonrpc.h"
#include "mcp/protocol.h"
#include "mcp/session.h"
#include "store/store.h"

#define GATEHOUSE_VERSION "0.1.0"

/* --- protocol eras (era.c) --- */

#define MCP_VERSION_2026 "2026-07-28"
enum {
    MCP_ERR_HEADER_MISMATCH = -32020,     /* 2026-07-28: headers do not mirror the body */
    MCP_ERR_MISSING_CLIENT_CAP = -32021,  /* 2026-07-28: a required client capability is missing */
    MCP_ERR_UNSUPPORTED_VERSION = -32022, /* 2026-07-28: data {supported, requested} */
};
/* The stateless revisions the gateway speaks downstream (newest first). */
extern const char *const mcp_modern_versions[];

/* The request headers the era checks read (pointers into the request; NULL when absent). */
struct mcp_era_headers {
    bool has_session; /* Mcp-Session-Id present */
    const char *version;
    size_t version_len;
    const char *method;
    size_t method_len;
    const char *name;
    size_t name_len;
};
struct mcp_era_refusal {
    int status;    /* HTTP status */
    json_t *error; /* a JSON-RPC error answer (new reference) */
};
/* Is this message a 2026-07-28 (stateless) request? Never when a session id is present. */
bool mcp_era_is_modern(const struct mcp_era_headers *h, json_t *msg);
/*
 * The 2026-07-28 "Server Validation" of a modern request: version (header and _meta, -32022 when
 * unsupported), required _meta fields (-32602), Mcp-Method and Mcp-Name against the body (-32020).
 * Returns 0, or ERR_INVAL with *r filled (the caller owns r->error).
 */
int mcp_era_validate(const struct mcp_era_headers *h, json_t *msg, struct mcp_era_refusal *r);
/* Decode a header value that may use the "=?base64?…?=" sentinel. Plain values must be visible
   ASCII, space or tab. Returns 0 with out[0..*out_len), ERR_INVAL (malformed) or ERR_LIMIT. */
int mcp_header_decode(const char *v, size_t len, char *out, size_t cap, size_t *out_len);
/*
 * Mcp-Param-{Name} headers (2026-07-28 "Custom Headers from Tool Parameters"): a tool's
 * inputSchema marks parameters with "x-mcp-header": Name, reachable from the root through
 * "properties" keys only.
 *
 * mcp_param_list: every such parameter of `schema`, as a new array of objects
 * {"header": Name, "path": "a.b", "value": the argument at that path (absent when args has none,
 * or null)}; an annotation on a non-primitive type or with a value that is not a token is left
 * out (a client must not call such a tool). mcp_param_text: the header text of a primitive value
 * ("true", "42", the string), or ERR_INVAL for any other type.
 */
json_t *mcp_param_list(json_t *schema, json_t *args);
int mcp_param_text(json_t *value, char *buf, size_t cap, const char **text, size_t *len);
/* The Mcp-Param-* headers a client sends for a call with `args` to the tool of `schema`: a new
   object of Name -> header text (before any base64), one per parameter with a primitive value;
   NULL when there are none (or out of memory: the server then refuses the call by name). */
json_t *mcp_param_headers(json_t *schema, json_t *args);
/* One Mcp-Param-* header of a request: its name after "Mcp-Param-", and its value. */
struct mcp_param_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};
/*
 * The server-side check of a tools/call's Mcp-Param-* headers hs[0..n) against its arguments,
 * for the tool whose inputSchema is `schema` (NULL: nothing to check). A parameter with a value
 * needs its header (missing: refused); the header, trimmed and decoded from "=?base64?…?=", must
 * equal the value (integers compared as numbers); a header for a parameter with no value, a
 * repeated one or an undecodable one is refused. Refusals are 400 + -32020 naming the header.
 * Returns 0, or ERR_INVAL with *r filled (the caller owns r->error).
 */
int mcp_era_validate_params(const struct mcp_param_header *hs, size_t n, json_t *schema,
                            json_t *msg, struct mcp_era_refusal *r);
/* Every version the gateway accepts, modern first (new array). */
json_t *mcp_era_supported_versions(void);
/* Methods a 2026-07-28 client may send to the gateway. */
bool mcp_era_method_stateless(const char *method);
/* The metrics label of a client's method: the method itself when it is one MCP defines (either
   revision) or one of the gateway's own "(…)" labels, else "(other)". Static string or `method`.
   A client choosing method names must not mint metric series. */
const char *mcp_era_method_label(const char *method);
/* Remove the io.modelcontextprotocol/ keys from params._meta (a legacy server must not see them).
 */
void mcp_era_strip_meta(json_t *msg);
/* A logging level's rank, "debug" 0 … "emergency" 7 (RFC 5424 order); -1 if level is not one. */
int mcp_log_level_rank(const char *level);
/* The level of a rank (the inverse of mcp_log_level_rank), or NULL. */
const char *mcp_log_level_name(int rank);

/* --- the upstream side of the eras (era.c) --- */

/*
 * Give request msg the 2026-07-28 per-request _meta (protocol version, the gateway as clientInfo,
 * client capabilities `caps` (borrowed, copied; NULL = none), and logLevel when log_rank >= 0),
 * keeping the keys already there (progressToken). Returns 0 or ERR_NOMEM.
 */
int mcp_era_add_meta(json_t *msg, json_t *caps, int log_rank);
/*
 * Give request msg, bound for a legacy server, the 2026-07-28 client's capabilities `caps`
 * (borrowed, copied) as _meta io.modelcontextprotocol/clientCapabilities: the server learnt the
 * gateway's at initialize, and may read the caller's here to ask only for what it can answer.
 * Returns 0 or ERR_NOMEM.
 */
int mcp_era_add_caps_meta(json_t *msg, json_t *caps);
/* What a server/discover probe said about a server's era. */
enum mcp_probe_outcome {
    MCP_PROBE_MODERN,  /* a DiscoverResult that lists 2026-07-28 */
    MCP_PROBE_LEGACY,  /* any other answer, or none: fall back to initialize */
    MCP_PROBE_REFUSED, /* a modern server that speaks no version the gateway speaks */
    MCP_PROBE_RETRY    /* -32022 whose data.supported lists 2026-07-28: ask again with it */
};
/* Classify the answer to a server/discover probe (msg NULL: no answer, the probe failed). `why`
   gets a human-readable account naming what the server said. Works on untrusted input. */
enum mcp_probe_outcome mcp_era_probe_outcome(json_t *msg, char *why, size_t whylen);

struct mcp_worker {
    int index;
    uv_loop_t *loop;
    struct mailbox *mb;
    /* private to gateway.c */
    struct catalog *catalog;
    uint64_t catalog_gen;
    struct store *store; /* this thread's store connection, for per-user settings (auth on) */
    struct mcp_settings_cache *settings; /* the users' settings read through `store` */
    struct pipeline *pipeline; /* the stages in force, taken with `catalog` (pipeline.h) */
};

/*
 * Start every configured upstream on the given workers (whose loops must be running or about to
 * run: start requests are posted to their mailboxes). cfg is referenced for the gateway's life.
 */
int gateway_start(struct config *cfg, struct mcp_worker **workers, unsigned nworkers);
/*
 * Main thread, after a SIGHUP: apply cfg's server list. Servers whose configuration did not
 * change keep running untouched; removed or changed ones are stopped (their calls in flight get
 * an error naming them) and the new or changed ones started. The catalog is rebuilt; a name
 * collision under prefix mode never is logged, not fatal. Returns 0, or ERR_LIMIT with ei.
 */
int gateway_reload(struct config *cfg, struct err_info *ei);
/*
 * Main thread: wait until every upstream is ready or has failed, at most timeout_ms. Returns
 * ERR_EXISTS with ei filled when prefix mode "never" meets a name offered by two servers (the
 * caller refuses to start); 0 otherwise (servers still starting are reported by /readyz).
 */
int gateway_wait_ready(uint32_t timeout_ms, struct err_info *ei);
/* Main thread: run `pl` (a reference is taken; NULL: no stage) for the calls that start from
   now on, in place of the stages of the configuration; calls in flight keep theirs. For tests
   and for the configuration's own stages. */
struct pipeline;
void gateway_set_pipeline(struct pipeline *pl);
/* Main thread: close every upstream (children killed with their process group). */
void gateway_stop(void);
/* The worker's loop has stopped: drop what the engine left in it (its catalog reference). */
void mcp_worker_release(struct mcp_worker *w);
/* After the worker loops have stopped: free what the engine holds. */
void gateway_free(void);
/* True when every upstream is ready. */
bool gateway_ready(void);
/* A new object for /readyz: {"ready": bool, "servers": {name: {"state":…, "why":…, "restarts":n}}}.
 */
json_t *gateway_status(void);
/* Call fn for every server with its readiness and restart count (under the engine's lock: fn
   must not call back into the gateway). */
void gateway_foreach_server(void (*fn)(const char *name, bool ready, unsigned restarts, void *arg),
                            void *arg);
/* Index of the server named `name`, or -1. */
int gateway_find_server(const char *name);
/* The configuration of server `index` (lives as long as the engine), or NULL. */
const struct config_server *gateway_server_config(int index);

/* The vault stage's per-worker needs (vault_stage.c). The link maker writes a user's connect
   link for a server into out (0, or an error: no link); scope (NULL: none) is a scope the
   authorization must ask for besides what the flow picks (a step-up). */
typedef int (*mcp_vault_link_fn)(int64_t user_id, const char *server, const char *scope, char *out,
                                 size_t size);
struct store_caller;
/* On a worker's thread, before its first call: the worker's store caller, a fetcher of the
   stage's own (trusting ca_file too when not NULL) and the link maker. Returns 0 or ERR_*. */
int mcp_vault_attach(uv_loop_t *loop, struct store_caller *sc, const char *ca_file,
                     mcp_vault_link_fn link);
/* On the same thread, at its end: refreshes in flight are dropped. */
void mcp_vault_detach(void);
/* A server with auth.oauth refused a call of `who` with a Bearer challenge (401: the token is
   not accepted; 403 error="insufficient_scope": a wider scope is needed): the JSON-RPC error
   (with `id`, borrowed) that sends the user to connect again, -32042 with a URL-mode
   elicitation; for a step-up, the link asks for the challenge's scope on top of the granted
   one. A worker thread (the link maker is the thread's). NULL when no link can be made. */
json_t *mcp_vault_challenge_error(const struct principal *who, const char *server,
                                  const char *challenge, json_t *id);
const char *gateway_server_name(int index);

/* What the HTTP layer does with a downstream message. */
struct mcp_reply {
    int status;              /* HTTP status: 200, 202, 400, 404, … */
    json_t *body;            /* a complete JSON answer (new reference), or NULL */
    struct stream *stream;   /* or: attach to this answer stream (new reference) */
    struct session *session; /* initialize: the new session (new reference) */
    const char *server;      /* for the access log: the server it went to, or NULL */
    char target[128];        /* for the access log: tool/prompt/uri, or "" */
};

/*
 * The method table: one row per method the engine serves (mcp_handle_message dispatches on it).
 * mcp_method_find: the row of `name`, or NULL when the engine does not serve it (then a request
 * is -32601 and a notification is ignored). mcp_method_at: row i in name order, NULL past the
 * end (for tests and documentation).
 */
enum {
    MCP_METHOD_REQUEST = 1u << 0,    /* a request (else a notification) */
    MCP_METHOD_NO_SESSION = 1u << 1, /* served without a session: initialize */
    MCP_METHOD_FORWARDED = 1u << 2,  /* routed to one server (else answered by the gateway) */
    MCP_METHOD_LEGACY = 1u << 3,     /* served to 2025-11-25 clients (sessions) */
    MCP_METHOD_MODERN = 1u << 4,     /* served to 2026-07-28 clients (stateless requests) */
};
struct mcp_method {
    const char *name;
    unsigned flags;
};
const struct mcp_method *mcp_method_find(const char *name);
const struct mcp_method *mcp_method_at(size_t i);

/*
 * Handle one parsed downstream message from principal `who` (borrowed for the call; the
 * anonymous principal without authentication). `session` is NULL before initialize: then a
 * request other than initialize is refused and a notification or an answer is ignored. `view` is
 * -1 for /mcp or a server index for /mcp/<server>. Fills *reply; never fails (errors are answers).
 */
void mcp_handle_message(struct mcp_worker *w, int view, const struct principal *who,
                        struct session *session, json_t *msg, enum jsonrpc_kind kind,
                        struct mcp_reply *reply);
void mcp_reply_release(struct mcp_reply *reply);

/* --- server-to-client traffic across replicas (xreplica.c; with Redis only) --- */

/* Main thread, after gateway_start: route streams' messages and clients' answers across
   replicas when Redis is configured and the seal keys are shared; a no-op otherwise. stop:
   before the workers stop. */
void mcp_xr_start(void);
void mcp_xr_stop(void);
/*
 * A client's answer msg (a result or an error) POSTed in session s by `who`: 0 when it is for
 * this replica (an id this replica sealed is replaced in msg by its own integer id; an integer id
 * is left alone); 1 when another replica relayed the request: *out is what mcp_xr_answer_send
 * sends there; -1 when it is refused: *status and why name the cause (an id not issued for this
 * session: 400; expired: 410; too large: 413). Worker thread.
 */
struct mcp_xr_answer;
int mcp_xr_answer_route(struct session *s, json_t *msg, const struct principal *who,
                        struct mcp_xr_answer **out, int *status, char *why, size_t whylen);
/* Send a (taken, freed) on this worker's Redis connection; cb gets 0 and the number of replicas
   that received it (0: the replica that relayed the request is gone), or an error. Returns
   ERR_UNAVAILABLE (not connected) without calling cb. */
int mcp_xr_answer_send(struct mcp_xr_answer *a, void (*cb)(int err, long long receivers, void *arg),
                       void *arg);
void mcp_xr_answer_free(struct mcp_xr_answer *a);
/* The inputSchema of the tool `name` exposed in `view`, as the worker's catalog has it (a new
   reference), or NULL: what a tools/call's Mcp-Param-* headers are checked against. */
json_t *mcp_tool_input_schema(struct mcp_worker *w, int view, const char *name);

/* A 2026-07-28 client closed the response stream of request `client_id` of transient session s:
   cancel it upstream (notifications/cancelled), as a legacy client's notification would. */
void mcp_cancel_request(struct session *s, json_t *client_id);
/* Cancel the call of a session_track_call cookie (session_close does so for every call of a
   session that ended): stopped upstream if sent, taken out of the queue if waiting. Any thread. */
void mcp_cancel_call(void *cookie, const char *reason);
/* --- per-user settings (settings.c) --- */

/*
 * Change a user's settings of `server` and store them: `discovery` (NULL = keep; only for
 * openapi servers), `select` (NULL = keep, JSON null = every tool, else an array of the server's
 * own tool names). *out gets the result (store_settings_release it). Refusals name their cause
 * in ei: ERR_NOTFOUND (no such server), ERR_INVAL (a mode for a non-openapi server, a bad mode
 * or list), or the store's error.
 */
int mcp_settings_update(const struct config *cfg, struct store *st, int64_t user_id,
                        const char *server, const char *discovery, json_t *select,
                        struct store_settings *out, struct err_info *ei);
/*
 * The settings cache of one worker thread (no lock: one thread uses it). Holds at most
 * max_entries (user, server) pairs, emptied when full and whenever the store's revocation
 * counter moves (every change of a settings row moves it, from any process).
 * mcp_settings_cache_get: the user's settings of `server` into *out (store_settings_release it;
 * all defaults when the user has none), from the cache or read from st (this thread's store
 * connection) and kept. Returns 0 or the store's error (nothing is cached then).
 */
struct mcp_settings_cache;
struct mcp_settings_cache *mcp_settings_cache_new(size_t max_entries);
void mcp_settings_cache_free(struct mcp_settings_cache *c);
int mcp_settings_cache_get(struct mcp_settings_cache *c, struct store *st, int64_t user_id,
                           const char *server, struct store_settings *out);
/* The same from memory only: 0, or ERR_NOTFOUND when the cache cannot answer. */
int mcp_settings_cache_peek(struct mcp_settings_cache *c, int64_t user_id, const char *server,
                            struct store_settings *out);
/*
 * Reading them off the event loop (the request path on PostgreSQL): a request waits while a
 * store job (any thread, any connection) reads every setting of its user at once
 * (mcp_settings_load), and back on the loop mcp_settings_cache_fill keeps them all with a marker
 * that the user has no others, so that the lookups of the request answer from memory. The cache
 * then follows the revocation sequence it is told (mcp_settings_cache_follow, emptied when it
 * moves) instead of reading it itself; rows read at another sequence are not kept.
 */
struct mcp_settings_loaded;
int mcp_settings_load(struct store *st, int64_t user_id, struct mcp_settings_loaded **out);
void mcp_settings_loaded_free(struct mcp_settings_loaded *l);
void mcp_settings_cache_follow(struct mcp_settings_cache *c, uint64_t seq);
bool mcp_settings_cache_has_user(const struct mcp_settings_cache *c, int64_t user_id);
/* The sequence the cache holds rows at (false: none yet). */
bool mcp_settings_cache_seq(const struct mcp_settings_cache *c, uint64_t *seq);
void mcp_settings_cache_fill(struct mcp_settings_cache *c, uint64_t seq,
                             struct mcp_settings_loaded *l);
/* This worker's cache (made on first use; NULL when out of memory). */
struct mcp_settings_cache *mcp_worker_settings(struct mcp_worker *w);
/* Lookups answered from the cache and lookups that read the store, since it was made. */
void mcp_settings_cache_stats(const struct mcp_settings_cache *c, uint64_t *hits, uint64_t *misses);
/* {"server", "discovery", "selected"} for people and the settings tool (new reference). */
json_t *mcp_settings_describe(const char *server, const struct store_settings *v);

/* --- tasks (tasks.c) --- */

/* A task id the gateway issues: 24 random bytes as unpadded base64url. */
#define MCP_TASK_ID_BYTES 24
#define MCP_TASK_ID_LEN 32
/* Is id[0..len) shaped like an id the gateway issues? (Anything else is refused unlooked-up.) */
bool mcp_task_id_wellformed(const char *id, size_t len);
/* May a request see a task? A 2025-11-25 task (task_session not NULL) only from the session that
   created it; a 2026-07-28 task (no session) only from its owner's requests (principal_key;
   session NULL). Never across the eras. */
bool mcp_task_visible(const char *task_owner, const void *task_session, const char *owner,
                      const void *session);
/* subscriptions/listen (2026-07-28) with params.notifications.taskIds: listener s (of principal
   `owner`, declaring the tasks extension) is sent notifications/tasks for each of those tasks
   that is the principal's, at each change of its status. Returns the ids honoured (a new
   array, for the acknowledgement), or NULL when ids is not an array or the extension is not
   declared (taskIds is then not honoured at all). */
json_t *mcp_tasks_listen(struct session *s, const char *owner, json_t *ids);

/* The server/discover answer for view (-1 = /mcp). New reference to the result object. */
json_t *mcp_discover_result(int view);

#endif
