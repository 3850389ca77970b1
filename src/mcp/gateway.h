/*
 * The MCP engine: the upstream servers (each pinned to one worker's loop, initialised, their
 * lists fetched and kept current), the catalog built from them, and the dispatch of every
 * downstream message: answered by the gateway (initialize, ping, lists), routed to one server
 * with its id rewritten (tools/call, prompts/get, resources/read, completion/complete, …), or
 * relayed back (a client's answer to a server's sampling/elicitation/roots request).
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
#include "mcp/jsonrpc.h"
#include "mcp/session.h"

#define GATEHOUSE_VERSION "0.1.0"

/* The protocol revisions the gateway speaks downstream, newest first. */
extern const char *const mcp_supported_versions[];
bool mcp_version_supported(const char *v);

struct mcp_worker {
    int index;
    uv_loop_t *loop;
    struct mailbox *mb;
    /* private to gateway.c */
    struct catalog *catalog;
    uint64_t catalog_gen;
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
/* Main thread: close every upstream (children killed with their process group). */
void gateway_stop(void);
/* The worker's loop has stopped: drop what the engine left in it (its catalog reference). */
void mcp_worker_release(struct mcp_worker *w);
/* After the worker loops have stopped: free what the engine holds. */
void gateway_free(void);
/* True when every upstream is ready. */
bool gateway_ready(void);
/* A new object for /readyz: {"ready": bool, "servers": {name: {"state":…, "why":…, "restarts":n}}}. */
json_t *gateway_status(void);
/* Call fn for every server with its readiness and restart count (under the engine's lock: fn
   must not call back into the gateway). */
void gateway_foreach_server(void (*fn)(const char *name, bool ready, unsigned restarts, void *arg), void *arg);
/* Index of the server named `name`, or -1. */
int gateway_find_server(const char *name);
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
 * Handle one parsed downstream message. `session` is NULL only for initialize. `view` is -1 for
 * /mcp or a server index for /mcp/<server>. Fills *reply; never fails (errors are answers).
 */
void mcp_handle_message(struct mcp_worker *w, int view, struct session *session, json_t *msg,
                        enum jsonrpc_kind kind, struct mcp_reply *reply);
void mcp_reply_release(struct mcp_reply *reply);

#endif
