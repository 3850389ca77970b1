/*
 * An upstream transport moves JSON-RPC messages between the gateway and one MCP server: a
 * supervised child process over stdio (stdio.c) or a Streamable HTTP endpoint through libcurl
 * (http.c), with the 2024-11-05 HTTP+SSE transport as the HTTP fallback. It knows framing,
 * connections, sessions headers and timeouts; it does not know MCP semantics (initialize,
 * id mapping, routing): that is the mcp module's job, above it.
 *
 * Threading: a transport lives on one libuv loop (its "home"). Every function below must be
 * called on that loop's thread and every callback runs on it.
 *
 * Ownership of JSON: transport_send borrows `msg` (it serialises before returning). Callbacks
 * lend `msg` for the duration of the call; json_incref it to keep it.
 */
#ifndef GH_UPSTREAM_TRANSPORT_H
#define GH_UPSTREAM_TRANSPORT_H

#include <jansson.h>
#include <uv.h>

#include "config/config.h"

enum transport_state {
    TRANSPORT_STARTING = 0, /* spawning / not yet connected */
    TRANSPORT_UP,           /* ready for transport_send */
    TRANSPORT_DOWN,         /* lost; stdio: restart scheduled with back-off */
    TRANSPORT_STOPPED,      /* closed by transport_close, or gave up */
};
const char *transport_state_str(enum transport_state st);

struct transport;

struct transport_cbs {
    void *owner;
    /*
     * A message from the server: response, notification or request. `related` is the cookie of
     * the transport_send whose response stream carried it (HTTP), or NULL when no exchange
     * carried it (stdio; the HTTP GET stream; the old HTTP+SSE transport).
     */
    void (*message_cb)(void *owner, json_t *msg, void *related);
    /*
     * HTTP only: the exchange started by transport_send(…, related) is over. err is 0 when the
     * server answered (202, a JSON body, or an SSE stream that ended), or negative with `why`
     * naming the cause ("HTTP 500 from upstream", "no first byte within 30000 ms", "upstream
     * session expired (HTTP 404)" with err = ERR_NOTFOUND). Never called for stdio.
     */
    void (*done_cb)(void *owner, void *related, int err, const char *why);
    /* State changes, with a human-readable cause. */
    void (*state_cb)(void *owner, enum transport_state st, const char *why);
    /*
     * A message from the server that cannot be read (not JSON, not an object, too long), so
     * that the call it answers fails at once instead of at its timeout. `related` as for
     * message_cb; `id` is the integer top-level "id" the bytes seem to carry (line_find_id), or
     * -1. `why` names the cause and the size, never the bytes (they may be a tool's secret
     * output). Optional (NULL: such messages are only logged). HTTP: a POST's plain JSON body
     * that cannot be read ends its exchange through done_cb instead.
     */
    void (*bad_message_cb)(void *owner, void *related, long long id, const char *why);
};

/*
 * What the gateway adds to one outbound request besides the message itself, filled by the call
 * pipeline's request stages and by the engine (src/mcp/pipeline.h), and honoured by every
 * transport: HTTP headers (Streamable HTTP: on the call's POST; OpenAPI: on the API request),
 * query and cookie parameters (OpenAPI), environment entries (stdio, at spawn: see
 * transport_new_ex). An entry a transport has no place for is ignored by it (a query parameter
 * to a Streamable HTTP server, a header to a stdio child). Names and values are copied in; a
 * value may hold any bytes (value_len), but a header or cookie value a transport cannot put on
 * the wire as it is makes the send fail with ERR_INVAL, never sent altered, unless the entry is
 * OUTBOUND_MODERN_ONLY.
 */
enum outbound_where { OUTBOUND_HEADER = 0, OUTBOUND_QUERY, OUTBOUND_COOKIE, OUTBOUND_ENV };
enum {
    /* HTTP: sent only on a 2026-07-28 request (one whose params._meta carries the protocol
       version), in the "=?base64?…?=" form when the value is not plain visible ASCII: what the
       Mcp-Param-* headers of a tools/call need. */
    OUTBOUND_MODERN_ONLY = 1u << 0,
};
#define OUTBOUND_MAX 128 /* entries of one request */
struct outbound_entry {
    enum outbound_where where;
    unsigned flags;
    char *name;
    char *value; /* NUL-terminated, value_len bytes before the NUL */
    size_t value_len;
};
struct outbound {
    struct outbound_entry *v;
    size_t n, cap;
};
void outbound_init(struct outbound *o);
void outbound_release(struct outbound *o);
/* Append one entry (name and value copied). Returns 0, ERR_INVAL (an empty name, or a name with
   a NUL, CR, LF or ':' / '=' where those end a name), ERR_LIMIT (OUTBOUND_MAX entries) or
   ERR_NOMEM. */
int outbound_add(struct outbound *o, enum outbound_where where, unsigned flags, const char *name,
                 const char *value, size_t value_len);
/* How many entries of kind `where` o has (o may be NULL). */
size_t outbound_count(const struct outbound *o, enum outbound_where where);

/* HTTP: a call the server refused with 401 or 403 and a Bearer challenge ends with ERR_DENIED
   and a `why` of the form "HTTP <status> from upstream <name>; WWW-Authenticate: <challenge>"
   (TRANSPORT_WWW_AUTH marks where the challenge starts). */
#define TRANSPORT_WWW_AUTH "; WWW-Authenticate: "

/* Create and start (spawn / nothing to do for HTTP until the first send). The server config
   must outlive the transport (hold a config_ref). Returns NULL on allocation failure. */
struct transport *transport_new(uv_loop_t *loop, const struct config_server *srv,
                                const struct transport_cbs *cbs);
/* transport_new with what the instance adds to its requests for its whole life (borrowed, copied
   as needed; NULL for none): a stdio child is spawned, and respawned, with spawn's
   OUTBOUND_ENV entries added to (or replacing) its environment after the configured `env`. The
   other kinds and the other transports take what they need per request (transport_send_call).
   */
struct transport *transport_new_ex(uv_loop_t *loop, const struct config_server *srv,
                                   const struct transport_cbs *cbs, const struct outbound *spawn);

/*
 * Send one message. stdio: queued for the child's stdin as one line (ERR_LIMIT when the bounded
 * queue is full, ERR_UNAVAILABLE when the child is not running). HTTP: one POST; its response
 * messages come through message_cb(related) and the end through done_cb(related). Returns 0 or
 * a negative error; on error no callback will mention `related`.
 */
int transport_send(struct transport *t, json_t *msg, void *related);
/*
 * transport_send for a client's call, with what the gateway adds to it (`out`, borrowed; NULL
 * for nothing): HTTP sends its OUTBOUND_HEADER entries as headers of the call's POST (the
 * OUTBOUND_MODERN_ONLY ones, the call's Mcp-Param-* headers, only on a 2026-07-28 request);
 * OpenAPI puts its headers, query and cookie parameters on the API request (after the
 * document's and the configured ones); stdio has no place for them (its environment is set at
 * spawn). ERR_INVAL when an entry cannot be sent as it is (a header value with CR or LF).
 */
int transport_send_call(struct transport *t, json_t *msg, void *related,
                        const struct outbound *out);

/* HTTP: abort the exchange of `related` (its done_cb is then NOT called). stdio: no-op. */
void transport_cancel(struct transport *t, void *related);

/*
 * Back-pressure. HTTP: stop reading the response of `related`'s exchange (what was already
 * received is still delivered; the next bytes wait in the kernel and the server's own send
 * buffer, until the server blocks) until transport_resume. While paused, the exchange's idle
 * timeout does not run; its total deadline does. stdio: stop reading the child's stdout, which
 * carries every call (`related` is ignored). Unknown `related` and OpenAPI: no-op.
 */
void transport_pause(struct transport *t, void *related);
void transport_resume(struct transport *t, void *related);

/* HTTP session bookkeeping, set by the mcp layer after initialize. NULL clears. */
void transport_set_protocol_version(struct transport *t, const char *version);
/* HTTP: forget the Mcp-Session-Id (after a 404, before re-initialising). */
void transport_reset_session(struct transport *t);
/* HTTP: open the GET SSE stream for server-initiated messages (message_cb with related NULL);
   reconnected with Last-Event-ID on loss. No-op for stdio. */
int transport_listen(struct transport *t);

enum transport_state transport_state(const struct transport *t);
/* stdio: restarts so far; HTTP: 0. */
unsigned transport_restarts(const struct transport *t);

/* Stop: kill the child's process group (SIGTERM, then SIGKILL after 2 s) / abort transfers and
   send DELETE for the session. Callbacks stop; the object frees itself once handles close. */
void transport_close(struct transport *t);

#endif
