/*
 * Redis: the state replicas share fast (docs/architecture.md, "Redis"). Optional: without a
 * `redis:` section nothing here runs and a replica behaves as a single gateway.
 *
 * Each worker loop owns one connection (hiredis's asynchronous API on the worker's libuv loop);
 * worker 0 owns a second one, subscribed to the revocation channel. Connections are made again by
 * themselves with back-off. What is kept in Redis:
 *   - ended sessions: {prefix}session-ended:<hex BLAKE2b of the id> until the seal expires, and
 *     the hash published on {prefix}session-ended so that a replica holding the session ends it;
 *   - revocation events: {prefix}revocation, a counter bumped and a message published whenever
 *     this process changes something that moves the store's revocation counter; every replica's
 *     subscriber makes its workers read the counter on their next request (store.h,
 *     store_revocation_follow);
 *   - counters: INCRBY with an expiry, for limits shared by every replica;
 *   - server-to-client traffic across replicas (src/mcp/xreplica.c): {prefix}s2c:<hash>, one
 *     channel per session whose GET stream a replica holds (it subscribes), and
 *     {prefix}replica:<name>, one per replica, for clients' answers routed back to it.
 * A session id, a password or a token never reaches Redis or a log line.
 */
#ifndef GH_SHARED_REDIS_H
#define GH_SHARED_REDIS_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

#include "core/err.h"

struct mailbox;

#define SHARED_HASH_HEX 65 /* a key's hash: 64 hex digits and the NUL */

/* Check `url` (redis://[[user]:password@]host[:port][/db]) and that Redis answers it (connect,
   AUTH, SELECT, PING, 2 s at most each) on the calling thread, keep the settings for the workers
   and follow revocation events (store_revocation_set_hook). ERR_INVAL for a URL that cannot be
   read, ERR_IO when Redis cannot be reached or refuses the credentials: ei names Redis, where it
   is (never the password) and the cause. Call once, before shared_worker_new. */
int shared_init(const char *url, const char *prefix, uint32_t revocation_poll_ms,
                struct err_info *ei);
/* For a process without worker loops (the command-line tool): publish a revocation event after
   every change it makes that moves the store's revocation counter, each on a blocking connection
   of its own (2 s at most per step; a failure is logged as a warning, the change stays made).
   Nothing else of this module is used then. ERR_INVAL for a URL that cannot be read. */
int shared_init_cli(const char *url, const char *prefix, struct err_info *ei);
/* Forget the settings (the password is wiped); after every worker stopped. */
void shared_release(void);
bool shared_enabled(void);

struct shared_worker;
/* One worker's connections, on `loop` (call before the loop runs, or on its thread); mb is the
   worker's mailbox, through which other threads reach it. `subscriber`: also the subscription to
   revocation events (one worker per process). ERR_NOMEM. */
int shared_worker_new(uv_loop_t *loop, struct mailbox *mb, bool subscriber,
                      struct shared_worker **out);
/* On the worker's thread, before its loop runs: calls from this thread use its connection. */
void shared_worker_enter(struct shared_worker *w);
/* On the worker's thread: close the connections (their pending callbacks run with ERR_CLOSED);
   the object is freed once its handles are closed (the loop must run). NULL is a no-op. */
void shared_worker_stop(struct shared_worker *w);

/* For /readyz: {"state": "up"|"down", "connections": N, "connected": N, "events": bool,
   "address": "host:port/db", "error": "…" (while not up)}. NULL when Redis is not configured. */
json_t *shared_status(void);

/* ---- ended sessions ---- */

/* Record that the session whose id hashes to `hash` ended, until `ttl_s` from now, and when
   `announce`, tell the other replicas (which call their ended callback). Any thread; not waited
   for (a failure is logged). */
void shared_session_ended(const char hash[SHARED_HASH_HEX], uint64_t ttl_s, bool announce);
/* Called (on the subscriber's thread) with the hash of each session another replica ended (or
   this one: a session already closed is not found). */
void shared_set_ended_cb(void (*fn)(const char *hash));
/* Was it ended by any replica? On a worker's thread; cb runs on it with 0 and the answer, or
   ERR_UNAVAILABLE (Redis down; cb's err_msg names the cause) or ERR_CLOSED (shutting down).
   Returns ERR_UNAVAILABLE without calling cb when this worker is not connected. */
typedef void (*shared_check_cb)(int err, bool ended, const char *err_msg, void *arg);
int shared_session_check(const char hash[SHARED_HASH_HEX], shared_check_cb cb, void *arg);

/* ---- server-to-client traffic across replicas (src/mcp/xreplica.c) ---- */

/* Channels: {prefix}s2c:<hash> carries what another replica has for the standalone stream of
   the session whose id hashes to <hash> (the replica that holds the stream subscribes);
   {prefix}replica:<name> carries what other replicas send this one (clients' answers to the
   server requests it relayed). */
enum shared_channel { SHARED_CH_STREAM = 0, SHARED_CH_REPLICA = 1 };
#define SHARED_REPLICA_LEN 16 /* shared_replica(): 16 characters */
/* This process's name among the replicas (random at start; "" without Redis). */
const char *shared_replica(void);
/* Any thread: this replica holds (on) or no longer holds (off) a writer of the standalone stream
   of session `hash`; the subscriber subscribes to its channel on the first and unsubscribes on the
   last (counted). Not waited for. */
void shared_stream_watch(const char hash[SHARED_HASH_HEX], bool on);
/* Called on the subscriber's thread with each message of a channel above: `name` is the
   session's hash for SHARED_CH_STREAM, this replica's name for SHARED_CH_REPLICA. */
typedef void (*shared_message_fn)(enum shared_channel ch, const char *name, const char *payload,
                                  size_t len);
void shared_set_message_cb(shared_message_fn fn);
/* PUBLISH payload on channel (ch, name). On a worker's thread; cb runs on it with 0 and the
   number of subscribers that received it, or ERR_UNAVAILABLE / ERR_CLOSED. Returns
   ERR_UNAVAILABLE without calling cb when this thread's connection is not ready, ERR_INVAL for
   a name that is not a hash or a replica name. */
typedef void (*shared_publish_cb)(int err, long long receivers, void *arg);
int shared_publish(enum shared_channel ch, const char *name, const char *payload, size_t len,
                   shared_publish_cb cb, void *arg);

/* ---- counters ---- */

/* Add delta to the counter `key` (the prefix is added) and, when the counter has no expiry yet
   (a new window), make it expire in ttl_ms; cb gets the new value. On a worker's thread; cb runs
   on it (ERR_UNAVAILABLE, ERR_PROTOCOL for a key that holds something else, ERR_CLOSED).
   Returns ERR_UNAVAILABLE without calling cb when this worker is not connected, ERR_INVAL for a
   key over 200 bytes or a zero ttl. */
typedef void (*shared_count_cb)(int err, int64_t value, void *arg);
int shared_incr(const char *key, int64_t delta, uint32_t ttl_ms, shared_count_cb cb, void *arg);

#endif
