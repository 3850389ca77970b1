/*
 * What the engine's three files share (private to src/mcp): gateway.c (the downstream dispatch,
 * per-user views, the method table), upstreams.c (each upstream's life, its pending requests,
 * recovery, the catalog, start/reload/stop) and mrtr.c (the MRTR bridge). The threads each
 * field belongs to are noted on it; see gateway.c's header for the model.
 */
#ifndef GH_MCP_GATEWAY_INT_H
#define GH_MCP_GATEWAY_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "core/idmap.h"
#include "core/principal.h"
#include "mcp/catalog.h"
#include "mcp/gateway.h"
#include "mcp/pipeline.h"
#include "upstream/transport.h"

#define LIST_PAGE_SIZE 500     /* items per page of the gateway's own lists */
#define MAX_UPSTREAM_PAGES 100 /* pages fetched from one server per list, at most */
#define INIT_RETRY_MAX_MS 30000
#define GW_MAX_SERVERS 1024 /* servers configured over the gateway's life, reloads included */

enum up_state { UP_STARTING = 0, UP_INITIALIZING, UP_READY, UP_DOWN, UP_FAILED, UP_STOPPED };

struct pending;

struct upstream {
    int index;
    const struct config_server *srv;
    struct mcp_worker *home;
    struct transport *t;
    /* home thread only */
    enum up_state state;
    json_t *caps;
    struct idmap pending;
    _Atomic unsigned inflight;               /* atomic: /readyz reads both from any thread */
    struct forward *queue_head, *queue_tail; /* calls waiting for a place (max_concurrency) */
    _Atomic unsigned queued;
    struct pending *last_call; /* most recent client call, for relating stdio messages */
    json_t *fetching[CAT_NKINDS];
    int fetches_left;
    unsigned
        announce; /* bit per kind: tell clients the list changed once the refresh is published */
    uv_timer_t retry_timer;
    unsigned init_failures;
    bool probe_retried;     /* this probe already asked again after a -32022 (MCP_PROBE_RETRY) */
    _Atomic bool modern;    /* speaks 2026-07-28 (server/discover answered); else initialized */
    struct pending *listen; /* modern: the subscriptions/listen request in flight, or NULL */
    uv_timer_t listen_timer;
    unsigned listen_failures;
    json_t *listen_subs; /* modern: the resourceSubscriptions the open listen carries */
    /* session recovery (see "Upstream session recovery" in docs/architecture.md) */
    bool recovering;           /* the session was lost: calls are held until it is back */
    bool gave_up;              /* RECOVERY_MAX_ATTEMPTS failed: calls fail until one retries */
    unsigned recover_attempts; /* initializations that failed during this recovery */
    char recover_why[256];     /* how the session was lost */
    struct pending *held;      /* client calls to send (again) once the session is back */
    unsigned nheld;
    char log_level[16]; /* the last logging/setLevel a client sent through us, replayed */
    bool closing;
    struct config *cfg; /* the snapshot srv points into */
    bool retired;       /* removed or replaced by a reload: stopped, out of every view */
    /* under gw.lock */
    enum up_state pub_state;
    bool routable;     /* ready, or recovering (its calls wait or fail naming it): in the catalog */
    unsigned restarts; /* stdio: children started after the first */
    bool was_up;
    char why[512];
    json_t *lists[CAT_NKINDS];
    json_t *pub_caps;  /* the server's capabilities when its lists were last published */
    char protocol[16]; /* the version spoken with it ("2026-07-28", or initialize's), or "" */
    _Atomic int mode;  /* its default discovery mode (enum config_discovery), set when ready */
    /* sessions: per_user (see "Upstream sessions per user" in docs/architecture.md). Each
       user's session is an instance: a struct upstream of its own (transport, pending calls,
       recovery) on the server's home thread, outside gw.ups; the server's entry in gw.ups keeps
       the lists and serves callers without a principal. Home thread unless noted. */
    struct upstream *base;             /* an instance: its server's entry; NULL otherwise */
    char owner[PRINCIPAL_KEY_MAX + 1]; /* an instance: whose it is ("u:<id>", "s:<id>") */
    uint64_t last_used;                /* an instance: uv_now of its last call's start or end */
    bool opened;                       /* an instance: its session was ready once */
    unsigned closing_handles;          /* an instance being closed: its timers not yet closed */
    struct upstream **users;           /* the server's entry: its users' instances */
    unsigned nusers;
    _Atomic unsigned users_open; /* nusers, for /readyz (any thread) */
    uv_timer_t *reap_timer;      /* the server's entry: closes idle instances, or NULL */
};

/* The server's entry of up (itself, or the server of an instance). */
static inline struct upstream *up_server(struct upstream *up)
{
    return up->base ? up->base : up;
}

/* The discovery mode `up` serves by default (discovery: auto resolved on its last tools). */
static inline enum config_discovery up_mode(struct upstream *up)
{
    return up->srv->discovery_auto ? (enum config_discovery)atomic_load(&up->mode)
                                   : up->srv->discovery;
}

typedef void (*internal_cb)(struct upstream *up, json_t *msg, int err, const char *why, void *arg);

/* A client's request on its way to a server's home thread (or waiting there for a place). */
struct forward {
    struct upstream *up;
    json_t *msg; /* the request as the server must see it */
    struct pending *p;
    struct call *call; /* a client's answer to a server's request: its call (request stages) */
    struct forward *next;
    /* The principal it is for (principal_key): on a per_user server the home thread sends it
       to that user's instance (gw_pick_instance). "" for the server's own session. */
    char owner[PRINCIPAL_KEY_MAX + 1];
};

struct mrtr;

/* The requestState the gateway seals for a gateway task waiting for the input of a 2026-07-28
   server's own task: this prefix, then the server's task id. */
#define GW_TASK_STATE "gatehouse-task."

struct pending {
    uint64_t id;
    struct upstream *up;
    bool answered;      /* the response (or a failure) was delivered */
    bool exchange_open; /* HTTP: done_cb still to come; keeps this alive */
    /* internal requests */
    internal_cb cb;
    void *arg;
    /* client calls */
    struct session *session;
    struct stream *stream;
    json_t *client_id;
    json_t *client_token; /* the client's progressToken, or NULL */
    bool cacheable;       /* resources/read: a 2026-07-28 answer carries cache hints */
    uv_timer_t *timer;
    struct pending *prev_call; /* for last_call bookkeeping */
    /* 2026-07-28 client calls (MRTR bridging) */
    bool mrtr_ok;         /* tools/call, prompts/get or resources/read: may be parked */
    bool cancelling;      /* a cancellation is posted: no more input requests */
    char call_method[16]; /* and the call, as the server sees it, that a retry must repeat */
    char *call_target;    /* tool/prompt name or uri */
    struct mrtr *mrtr;    /* server requests awaiting the client's input, or NULL */
    /* calls to a 2026-07-28 server */
    uint32_t timeout_ms; /* internal requests: instead of timeouts.first_byte; UINT32_MAX none */
    json_t *sent;        /* client calls: the request as sent (id aside), to send again */
    struct call *call;   /* client calls: the call (pipeline.h): its stages, its outbound additions
                            (the Mcp-Param-* headers among them), sent with it every time (retry,
                            resend after recovery); NULL for the gateway's own requests */
    bool held;           /* in up->held, waiting for the session to come back */
    bool paused;         /* HTTP: its exchange is not read while its client is behind */
    bool resent;         /* already sent again once after a lost session */
    struct pending *held_next;
    json_t *call_msg; /* the call as first sent, for an MRTR retry with the client's answers */
    json_t *answers;  /* legacy client: the inputResponses collected so far */
    json_t *up_state; /* the server's requestState for the retry, or NULL */
    unsigned waiting; /* input requests the legacy client has not answered yet */
    unsigned rounds;  /* InputRequiredResults met so far */
    /* a gateway task's call to a legacy server that runs tasks itself (tasks.c) */
    bool task_aug;         /* sent with the `task` param: the server answers with its own task */
    bool task_next;        /* HTTP: tasks/result goes out once the creating exchange is done */
    char *up_task;         /* the server's task id (never shown to a client), once it made one */
    uv_timer_t *task_poll; /* 2026-07-28 server: its tasks/get at its pollIntervalMs */
    uint32_t task_poll_ms; /* that interval, bounded */
    bool task_polling;     /* a tasks/get is on its way */
    bool task_update;      /* this call is the tasks/update that answers its task's input */
};

struct gateway_state {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct config *cfg;
    struct mcp_worker **workers;
    unsigned nworkers;
    /* Append-only: a reload adds servers and retires others, so an index stays valid for the
       catalogs and sessions that hold it. nups is published after the entry is complete. */
    struct upstream *ups[GW_MAX_SERVERS];
    _Atomic size_t nups;
    struct catalog *catalog;
    _Atomic uint64_t generation;
    struct pipeline *pipeline; /* the stages of gw.cfg (pipeline.h), swapped with it; NULL: none */
};
/* The engine's state (defined in upstreams.c). */
extern struct gateway_state gw;

extern const char *const up_state_names[];
#define CALL_ID_BITS 48

/* A notification for every session that should hear it (gw_broadcast_cb). */
struct broadcast {
    int server;
    json_t *msg;
    const char *owner;   /* only this principal's sessions, when set */
    const char *uri;     /* only sessions subscribed to it, when set */
    struct pipeline *pl; /* whose message stages it passes (NULL: none) */
};

/* --- what each file offers the others; the contracts are at the definitions --- */

/* upstreams.c: the catalog, pending requests, upstream life and recovery (home thread unless
   noted) */
struct catalog *gw_worker_catalog(struct mcp_worker *w);
/* Worker thread: the stage list of the configuration in force (the worker's reference, taken
   with its catalog), or NULL. */
struct pipeline *gw_worker_pipeline(struct mcp_worker *w);
/* Client call p's message to its client through the one emitter (mcp_emit), with the era of
   p's server. `final`: p's answer. */
int gw_emit(struct pending *p, json_t *msg, bool final);
/* End client call p with a JSON-RPC error naming its server (final, through gw_emit). */
void gw_emit_error(struct pending *p, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void gw_broadcast_cb(struct session *s, void *arg);
void *gw_call_cookie(int server, uint64_t id);
uint64_t gw_draw_id(void);
void gw_pending_free(struct pending *p);
void gw_pending_maybe_free(struct pending *p);
void gw_answer_client(struct pending *p, json_t *msg);
void gw_call_timeout_cb(uv_timer_t *t);
int gw_send_pending(struct upstream *up, struct pending *p, json_t *msg);
json_t *gw_relay_capabilities(struct session *s);
void gw_internal_request(struct upstream *up, const char *method, json_t *params, internal_cb cb,
                         void *arg);
unsigned gw_replay_session_state(struct upstream *up);
void gw_relisten(struct upstream *up);
bool gw_hold_call(struct upstream *up, struct pending *p, bool sent);
void gw_begin_recovery(struct upstream *up, const char *why);
bool gw_give_up_recovery(struct upstream *up, const char *why);
void gw_finish_recovery(struct upstream *up);
const char *gw_required_capability(const char *method);
void gw_answer_server(struct upstream *up, json_t *id, int code, const char *message);
void gw_cancel_call(struct upstream *up, struct pending *p, const char *reason);
int gw_post_cancel(struct upstream *up, uint64_t id, const char *reason, json_t *refusals);
struct upstream *gw_instance_for(struct upstream *up, const char *owner);
struct upstream *gw_instance_with_call(struct upstream *up, uint64_t id);
bool gw_pick_instance(struct forward *f);

/* gateway.c: the calls' queue per server and the downstream replies (worker or home thread as
   noted at the definitions) */
unsigned gw_queue_limit(const struct upstream *up);
void gw_unqueue(struct upstream *up, struct forward *prev, struct forward *f);
void gw_call_finished(struct upstream *up);
void gw_forward_cb(void *arg);
void gw_reply_error(struct mcp_reply *r, json_t *id, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void gw_cancel_on_home_cb(void *arg);

/* xreplica.c: the id a client sees on server request down_id relayed to session s: the integer
   itself, or with Redis a sealed string that routes the client's answer back to this replica
   from any other (new reference; the integer when out of memory). */
json_t *gw_request_id(struct session *s, uint64_t down_id);
/* xreplica.c, 2026-07-28 tasks across replicas (only with Redis and shared seal keys): a new
   task id (MCP_TASK_ID_LEN characters, random) starts with this replica's name; a tasks/get,
   tasks/update or tasks/cancel for an id naming another replica is sent to that replica, which
   answers it (gw_task_remote) back over Redis. gw_task_elsewhere: does `id` name another
   replica? gw_task_forward: send msg there for `owner` and answer r with a stream that gets the
   answer (or an error naming the cause: Redis down, the replica gone, no answer in time). */
void gw_task_id_route(char *id);
bool gw_task_elsewhere(const char *id, size_t len);
void gw_task_forward(struct mcp_worker *w, struct session *s, const char *owner, json_t *msg,
                     struct mcp_reply *r);
/* After the worker loops closed: free the waits their timers left. */
void gw_task_waits_free(void);

/* mrtr.c: the MRTR bridge */
void gw_mrtr_free(struct mrtr *m);
void gw_mrtr_input_request(struct upstream *up, struct pending *p, json_t *msg, bool guessed);
void gw_mrtr_resume(struct session *s, int server, json_t *msg, const char *target,
                    struct mcp_reply *r, struct stream *given, struct call *c);
void gw_bridge_answer(struct upstream *up, json_t *msg);
bool gw_input_required(struct upstream *up, struct pending *p, json_t *msg);

/* tasks.c: the tasks extension (2026-07-28) and the 2025-11-25 experimental tasks */
bool gw_tasks_offered(int view);
bool gw_task_call(struct mcp_worker *w, int view, const struct principal *who, struct session *s,
                  json_t *msg, int server, const char *orig, struct mcp_reply *r);
void gw_tasks_method(struct mcp_worker *w, struct session *s, json_t *msg, struct mcp_reply *r);
/* tasks/get, tasks/update or tasks/cancel of a 2026-07-28 task of this replica, for `owner`, sent
   by another replica (the extension's declaration was checked there). */
void gw_task_remote(const char *owner, json_t *msg, struct mcp_reply *r);
/* A client's answer msg to a request tracked in s under (target, tag): true when it was one the
   tasks sent (then taken), false for a server's. */
bool gw_task_relay_answer(struct session *s, void *target, json_t *tag, json_t *msg);
void gw_tasks_free(void);

#endif
