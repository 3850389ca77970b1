/*
 * Downstream MCP sessions (2025-11-25 era) and their SSE streams.
 *
 * A session is created by `initialize` and named by a random id (256 bits, base64url) that the
 * client echoes in Mcp-Session-Id. It is shared by every worker thread (any connection may carry
 * any session), reference-counted, and protected by its own mutex, held only for short copies.
 *
 * A stream is one SSE stream of a session: the answer stream of one POSTed request, or the
 * standalone stream a GET opens. Messages are pushed from any thread; each gets an event id
 * "<stream>-<seq>" and stays in a bounded replay ring so that a client that lost the connection
 * can resume with Last-Event-ID. A writer (the HTTP layer's response on some worker) attaches to
 * a stream and is woken through its worker's mailbox when events arrive.
 */
#ifndef GH_MCP_SESSION_H
#define GH_MCP_SESSION_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/mailbox.h"

#define SESSION_ID_BYTES 32
#define SESSION_ID_LEN 43   /* base64url of 32 bytes, unpadded: an id before it is sealed */
#define SESSION_ID_MAX 1024 /* a sealed id (see session_set_owner) is at most this long */

struct session;
struct stream;

/* The HTTP layer's side of a stream. wake_cb runs on mb's thread, posted by stream_push. */
struct stream_writer {
    struct mailbox *mb;
    void (*wake_cb)(struct stream_writer *w);
};

/*
 * What the session table needs of the engine, registered by the engine when it starts (the
 * table does not depend on the engine; before, no server exists): cancel_call cancels a call a
 * closed session still has (its session_track_call cookie: mcp_cancel_call); server_name and
 * find_server map a view's index to its server's name and back (NULL / -1 when none), for the
 * sealed ids. e must outlive the table.
 */
struct session_engine {
    void (*cancel_call)(void *cookie, const char *reason);
    const char *(*server_name)(int view);
    int (*find_server)(const char *name);
};
void session_table_set_engine(const struct session_engine *e);

/* Global table; call once at start-up. max_sessions bounds it; idle_ms expires sessions. */
void session_table_init(uint32_t max_sessions, uint32_t idle_ms, uint32_t replay_events);
/* Close every session (shutdown). Shutting down ends none: a restart may resume them. */
void session_table_close_all(void);
/* Keep the ended sealed ids (DELETE, idle expiry) in the SQLite store at sqlite_path as well
   (copied; NULL: memory only), so that a restart on the same store never resumes them. Used only
   when the seal keys are shared (mcp_seal_shared); opened on first use. close_store closes it
   (after the workers have stopped). */
void session_table_set_store(const char *sqlite_path);
void session_table_close_store(void);
/* From then on the request path asks the store whether a sealed id it does not hold was ended
   (session_needs_store_check, then session_store_ended in a store job, then session_note_ended
   when it was), before session_find, instead of session_find asking on the loop; with a pool
   (PostgreSQL), ended ids are recorded on its threads, not on the thread that ends them. */
struct store_pool;
struct store;
void session_table_use_caller(struct store_pool *pool);
/* true when `id` is a sealed id this replica neither holds nor knows to be ended and ended ids
   are kept in the store: hash (hex BLAKE2b of the id) is then what session_store_ended asks. */
bool session_needs_store_check(const char *id, size_t len, char hash[65]);
/* Any thread, any store connection: was the id of `hash` ended? 0 (*ended set) or the store's
   error. */
int session_store_ended(struct store *st, const char hash[65], bool *ended);
/* A DELETE is answered once its record is written: session_defer_record(true) before
   session_close makes the record of the session it ends wait on this thread
   (session_deferred_record: true, hash and expiry, when there is one; then write it with
   session_store_record_ended on any thread and connection, which logs a failure), and
   session_defer_record(false) after. */
void session_defer_record(bool on);
bool session_deferred_record(char hash[65], int64_t *until_s);
int session_store_record_ended(struct store *st, const char hash[65], int64_t until_s);
/* Expire idle sessions; returns how many were closed. Any thread. */
unsigned session_table_sweep(void);
unsigned session_table_count(void);

/*
 * Create a session for `view` (-1 = the aggregate /mcp, else one upstream's index), with the
 * negotiated protocol version and the client's declared capabilities (borrowed; copied).
 * Returns a new reference, or NULL with *err = ERR_LIMIT (too many sessions) or ERR_NOMEM.
 */
struct session *session_new(int view, const char *protocol_version, json_t *client_caps, int *err);
/*
 * A transient session for one 2026-07-28 request (stateless era): the client's capabilities come
 * from the request's _meta. It is never in the table (no id, unreachable by any other request,
 * never swept, never broadcast to); whoever created it closes it when the answer has ended.
 * Returns a new reference, or NULL with *err = ERR_NOMEM.
 */
struct session *session_new_transient(int view, const char *protocol_version, json_t *client_caps,
                                      int *err);
bool session_transient(const struct session *s);
/* The least severe notifications/message level the client wants (mcp_log_level_rank). A
   transient session's comes from the request's _meta logLevel; -1 (the default): relay none, as
   2026-07-28 asks of a request without logLevel. A legacy session's is its last
   logging/setLevel (-1: never set), sent as _meta logLevel to 2026-07-28 servers. Any thread. */
void session_set_log_level(struct session *s, int rank);
int session_log_level(const struct session *s);
/* Look up by id (constant-time compare); a new reference, or NULL. Touches the idle clock. */
struct session *session_find(const char *id, size_t len);
/* With Redis (src/shared): true when `id` is a sealed id this replica neither holds nor knows to
   be ended, so that Redis must be asked (shared_session_check with `hash`, the hex BLAKE2b of
   the id) before session_find may resume it. */
bool session_needs_check(const char *id, size_t len, char hash[65]);
/* The hex BLAKE2b of a sealed session's id (what Redis and the store keep): false for an id
   that is not sealed (known to this replica only). */
bool session_id_hash(const struct session *s, char hash[65]);
/* Redis says `id` was ended by a replica: never resume it here. */
void session_note_ended(const char *id, size_t len);
struct session *session_ref(struct session *s);
void session_unref(struct session *s);
/* DELETE or expiry: remove from the table, end its streams and cancel its calls (mcp_cancel_call);
   a sealed id is remembered as ended (in memory, and in the store of session_table_set_store)
   and never resumed. Idempotent. */
void session_close(struct session *s);
bool session_closed(struct session *s);

const char *session_id(const struct session *s);
int session_view(const struct session *s);
/* The principal a session belongs to ("" when authentication is off): set once, right after
   initialize created it, before its id is handed out. It also gives the session its final id:
   "gs1." + base64url of its minimal state (view, protocol version, the client's sampling/
   elicitation/roots capabilities and clientInfo, owner, created, expiry) sealed with the
   session key of mcp_seal_init, so that a replica sharing the key resumes it (session_find)
   without having seen it; the replay ring, streams and subscriptions are not carried. A request
   presenting the session's id under another principal is answered as if the session did not exist.
   `owner` is copied (at most SESSION_OWNER_MAX bytes). */
#define SESSION_OWNER_MAX 64
void session_set_owner(struct session *s, const char *owner);
/* The owner key ("u:<user id>", "s:<account id>"; "" without authentication, or before
   session_set_owner). */
const char *session_owner(const struct session *s);
/* The client's clientInfo from initialize (name and version are kept, truncated); call before
   session_set_owner. */
void session_set_client_info(struct session *s, json_t *client_info);
bool session_owned_by(const struct session *s, const char *owner);
const char *session_protocol_version(const struct session *s);
/* The capabilities the client declared (borrowed; immutable while s is referenced). */
json_t *session_client_capabilities(const struct session *s);
/* Did the client declare capability `name` ("sampling", "elicitation", "roots")? */
bool session_has_capability(struct session *s, const char *name);

/* Server-to-client requests in flight: the gateway sends `downstream id` to the client and must
   route the answer to `upstream` with the server's own id. */
uint64_t session_next_request_id(struct session *s);
int session_track_request(struct session *s, uint64_t down_id, void *upstream, json_t *up_id);
/* Take the tracked request (ownership of *up_id moves to the caller). ERR_NOTFOUND if none. */
int session_take_request(struct session *s, uint64_t down_id, void **upstream, json_t **up_id);

/* Resource subscriptions, for routing notifications/resources/updated and for replaying them to
   a server that was re-initialised: `server` is the index of the server the URI routes to. */
int session_subscribe(struct session *s, const char *uri, int server, bool on);
/* Add (as keys of the object `set`) every URI s is subscribed to on `server`. Takes s's lock. */
void session_collect_subscriptions(struct session *s, int server, json_t *set);
bool session_subscribed(struct session *s, const char *uri);

/* In-flight client requests, for notifications/cancelled: key is the client's id. The cookie is
   opaque to the session (the mcp layer's call). */
int session_track_call(struct session *s, json_t *client_id, void *call);
void *session_find_call(struct session *s, json_t *client_id);
void session_untrack_call(struct session *s, json_t *client_id, void *call);

/* Call fn for every live session, listeners included (under the table lock: fn must only take
   session refs). */
void session_foreach(void (*fn)(struct session *s, void *arg), void *arg);

/*
 * 2026-07-28 subscriptions/listen. A listener is a transient session whose standalone stream is
 * the listen response: session_listen makes it visible to session_foreach (so the gateway's
 * broadcasts reach it) until session_close, which the listen response's writer calls when the
 * stream ends. `mask` is the notifications the client opted in to (SESSION_LISTEN_*); sub_id is
 * the listen request's id (copied), which every notification on the stream carries in _meta.
 * Returns 0, ERR_INVAL (not a transient session, or already listening) or ERR_CLOSED.
 */
enum {
    SESSION_LISTEN_TOOLS = 1u << 0,
    SESSION_LISTEN_PROMPTS = 1u << 1,
    SESSION_LISTEN_RESOURCES = 1u << 2,
};
int session_listen(struct session *s, unsigned mask, json_t *sub_id);
/* The filter of a listener; 0 for any other session. */
unsigned session_listen_mask(const struct session *s);
/* A listener's subscription id (borrowed: valid while s is referenced); NULL for others. */
json_t *session_listen_id(const struct session *s);

/* --- streams --- */

/* A new answer stream (standalone=false) or the session's standalone GET stream (created on
   first use; the same one is returned afterwards). New reference. */
struct stream *stream_new(struct session *s);
struct stream *session_standalone_stream(struct session *s);
/* Find a stream by the "<stream>-" prefix of a Last-Event-ID; *after_seq is set from it. */
struct stream *session_find_stream(struct session *s, const char *last_event_id,
                                   uint64_t *after_seq);
struct stream *stream_ref(struct stream *st);
void stream_unref(struct stream *st);
struct session *stream_session(struct stream *st);
uint64_t stream_number(const struct stream *st);

/* Any thread. Appends (a reference to) msg; `final` marks the response that ends an answer
   stream. Returns 0, or ERR_CLOSED if the stream already ended or is NULL (a call parked for a
   2026-07-28 client's input has no stream until the client retries). A message for the
   standalone stream of a sealed session that no writer here holds is offered to the remote hook
   first (session_set_remote), which may deliver it through the replica that holds the stream.
   stream_push_here: never offered to the hook (what another replica sent). */
int stream_push(struct stream *st, json_t *msg, bool final);
int stream_push_here(struct stream *st, json_t *msg, bool final);

/*
 * Server-to-client traffic across replicas (xreplica.c registers this with Redis; NULL: none).
 * watch(hash, on): a writer attached to (on) or left (off) the standalone stream of the sealed
 * session whose id hashes to `hash` (the first writer and the last: counted by the hook).
 * forward(st, hash, msg): a message for such a stream that no writer here holds; true when the
 * hook took it (it pushes it here later with stream_push_here if no replica holds the stream),
 * false to push it here now. Both any thread, called without a session lock held.
 */
struct session_remote {
    void (*watch)(const char *hash, bool on);
    bool (*forward)(struct stream *st, const char *hash, json_t *msg);
};
void session_set_remote(const struct session_remote *r);
/* The session this replica holds whose sealed id hashes to `hash` (hex BLAKE2b), a new
   reference, or NULL (it may be closed). Found at once when a writer here holds its standalone
   stream (with the remote hook), else by a pass over the table. */
struct session *session_find_by_hash(const char *hash);

/*
 * Back-pressure, any thread. stream_backlogged: a writer is attached and at least half of
 * limits.replay_events wait for it (the client reads more slowly than the server writes).
 * stream_on_drain: post fn(arg) to mb once, when the backlog has drained to a quarter, the
 * writer left or the stream ended (at once if it is not backlogged now). One registration per
 * stream: returns ERR_LIMIT when one is pending, else 0. A stream freed first frees arg.
 */
bool stream_backlogged(struct stream *st);
int stream_on_drain(struct stream *st, struct mailbox *mb, void (*fn)(void *arg), void *arg);

/* Any thread: no more events will come (a cancelled request). Writers finish once drained.
   NULL is ignored. */
void stream_end(struct stream *st);

/* Writer side (on the writer's thread). attach replaces any writer already attached (the
   newest connection wins; the old writer sees stream_has_writer turn false and should end its
   response). detach is idempotent. Returns 0. */
int stream_attach(struct stream *st, struct stream_writer *w);
void stream_detach(struct stream *st, struct stream_writer *w);
bool stream_has_writer(struct stream *st, struct stream_writer *w);
/* Any thread: did the client go away from st? True when the connection that wrote it closed and
   no other has taken it over (a resumption clears it), or when st has ended (its session closed,
   or it was cancelled). False for NULL and for a stream no writer has attached to yet. */
bool stream_abandoned(struct stream *st);

/*
 * Copy the events after *cursor into out as SSE ("id: …\ndata: …\n\n") and advance *cursor.
 * *finished is set when the final event has been copied. If `json_if_single` is set, nothing was
 * pulled before (*cursor == 0) and the first pending event is the final one, its message is
 * returned in *single (new reference) instead, for a plain JSON answer. When `out` fills up the
 * pull stops early and returns 0: pull again after sending. ERR_LIMIT if events the cursor needs
 * were already dropped from the replay ring; ERR_PROTOCOL if one event exceeds out's maximum.
 */
int stream_pull(struct stream *st, uint64_t *cursor, struct buf *out, bool *finished,
                bool json_if_single, json_t **single);

#endif
