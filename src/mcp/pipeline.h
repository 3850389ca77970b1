/*
 * The call pipeline: one object per client request that goes to a server (`struct call`) and an
 * ordered list of stages it passes (nginx's phases and h2o's handlers and filters are the model).
 *
 *   request stages  client → server, once per request, in order: see the principal, the method,
 *                   the server, the tool/prompt/URI, the arguments, the request itself and its
 *                   outbound additions; continue, refuse (a structured refusal) or suspend (the
 *                   stage keeps the call and later calls pipeline_resume on the same thread).
 *   message stages  server → client, every message of the call as it streams (results, errors,
 *                   progress, log messages, server requests), and messages that belong to no call
 *                   (list changes); pass, rewrite in place or replace.
 *   done stages     once per call, with its outcome and duration.
 *
 * The stage list is a `struct pipeline`: immutable and reference-counted, built when the
 * configuration is loaded or reloaded and swapped with it, so a call keeps the list it started
 * with. No stage at all is a NULL pipeline, and a kind of stage with none costs one test.
 *
 * mcp_emit is the one way an MCP message reaches a client's stream: it applies the era fields,
 * runs the message stages, pushes, and ends the call (done stages) with its final message.
 *
 * Threads: a call is made and its request stages run on the worker that received the request
 * (a suspended stage resumes there); it then moves with the request to its server's home
 * thread, where its message stages run and it ends. Stages must not block the loop they run on:
 * no store call, no network wait, no lock held across a callback. Work that must wait is a
 * suspension, resumed from the loop (a mailbox post from a thread pool, a timer).
 */
#ifndef GH_MCP_PIPELINE_H
#define GH_MCP_PIPELINE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/principal.h"
#include "upstream/transport.h"

struct stream;
struct pipeline;

enum stage_verdict { STAGE_CONTINUE = 0, STAGE_REFUSE, STAGE_SUSPEND };

/* Why a request stage refused a call: what the client gets, and what the audit records. */
#define CALL_REFUSAL_URL_MAX 2048
struct call_refusal {
    int status;         /* HTTP status when the refusal is the request's whole answer (403, 429) */
    int code;           /* JSON-RPC error code */
    char message[2600]; /* names the stage and the rule: "policy: tool x is not allowed for …" */
    char url[CALL_REFUSAL_URL_MAX]; /* with code -32042: the URL the user must open (a URL-mode
                                       elicitation in the error's data); "" for none */
};

enum call_outcome {
    CALL_OK = 0,    /* a result (a tool's isError result included) */
    CALL_ERROR,     /* a JSON-RPC error; its code is given */
    CALL_REFUSED,   /* a request stage refused it: it never reached the server */
    CALL_CANCELLED, /* cancelled, or dropped unsent because its client went away */
    CALL_TIMEOUT,   /* the gateway gave up waiting (-32004) */
};
const char *call_outcome_str(enum call_outcome o);

struct call;
typedef void (*call_resume_cb)(struct call *c, enum stage_verdict v, void *arg);

struct call {
    /* What stages read (set before the request stages; never changed after). */
    struct principal who;    /* a copy: the call crosses threads */
    char method[40];         /* as the client sent it: "tools/call", "(answer)" for a client's
                                answer to a server's request */
    int server;              /* the server's index, -1 for none (the gateway answers) */
    const char *server_name; /* the server's name (lives as long as the engine), "" for none */
    char target[256];        /* tool or prompt name (as the server knows it), URI, or "" */
    json_t *arguments;       /* params.arguments of `request`, or NULL */
    /* What request stages may change. */
    json_t *request;     /* the request as it will be sent (the gateway's own copy) */
    struct outbound out; /* headers, query, cookie, environment added to it */
    /* The engine's. */
    struct pipeline *pl; /* the stage list the call started with (a reference), or NULL */
    size_t next;         /* the next request stage to run */
    bool suspended, done;
    uint64_t started_ns;
    struct call_refusal refusal; /* valid once the request stages refused */
    call_resume_cb resume_cb;
    void *resume_arg;
};

/* One stage: a name (it appears in refusals and logs) and the hooks it has (NULL: not that
   kind). `conf` is the stage's own configuration, passed back to every hook. */
struct stage {
    const char *name;
    /* Request: return STAGE_CONTINUE, STAGE_REFUSE with *why filled (status 0 means 403), or
       STAGE_SUSPEND having kept `c` to pipeline_resume later, on this thread, from a later
       callback (never before returning). c->who, method, server, target and arguments are
       read-only; request (its params) and out are the stage's to change. */
    enum stage_verdict (*request)(struct call *c, void *conf, struct call_refusal *why);
    /* Message: *msg is the stage's to change in place (a private copy), or to replace (decref
       the old one, store a new reference). c is NULL for a message of no call. */
    void (*message)(struct call *c, json_t **msg, void *conf);
    /* Done: once per call. `code` is the JSON-RPC error code for CALL_ERROR, else 0. */
    void (*done)(const struct call *c, enum call_outcome o, int code, uint64_t duration_ns,
                 void *conf);
    void *conf;
};

/* --- building the stage list (main thread, at configuration load) --- */

/* A new, empty list (refcount 1), or NULL when out of memory. Stages run in the order they are
   added. */
struct pipeline *pipeline_new(void);
/* Add a stage (copied; its conf is borrowed for the pipeline's life). Returns 0 or ERR_NOMEM. */
int pipeline_add(struct pipeline *pl, const struct stage *s);
/* NULL when pl has no stage at all (pl is then freed): what the engine keeps, so that a call
   with no stage pays one pointer test. */
struct pipeline *pipeline_seal(struct pipeline *pl);
struct pipeline *pipeline_ref(struct pipeline *pl); /* NULL-safe */
void pipeline_unref(struct pipeline *pl);           /* NULL-safe */
size_t pipeline_count(const struct pipeline *pl);   /* stages of every kind */

/* The built-in stages the engine runs (the list for a configuration). Today: vault, a request
   stage injecting each user's upstream token (vault_stage.c), and call_outcomes, a done stage
   counting every call in gatehouse_calls_total{server, outcome}. */
struct pipeline *pipeline_builtin(void);
/* Add the vault stage (vault_stage.c): each user's own token into calls to servers with
   auth.oauth, refreshed when stale; a call of a user who has not connected is refused with
   -32042 and their connect link. Returns pipeline_add's result. */
int mcp_vault_stage_add(struct pipeline *pl);

/* --- one call --- */

/* A call of `method` on `server` (-1 with name "" for the gateway) for principal `who`; request
   is taken (the gateway's own copy; may be NULL). The pipeline reference is taken too. Returns
   NULL when out of memory. */
struct call *call_new(struct pipeline *pl, const struct principal *who, const char *method,
                      int server, const char *server_name, const char *target, json_t *request);
/* Free; a call that has not ended ends now as CALL_CANCELLED (done stages run exactly once). */
void call_free(struct call *c);

/* Run the request stages from where the call stands. STAGE_CONTINUE: every stage let it pass;
   STAGE_REFUSE: c->refusal says why, and the call has ended (done stages ran); STAGE_SUSPEND: a
   stage holds it, and cb(c, verdict, arg) will be called when the rest of the stages have run
   (CONTINUE or REFUSE, as above). cb is not called for a verdict returned here. */
enum stage_verdict pipeline_request(struct call *c, call_resume_cb cb, void *arg);
/* A suspended stage's verdict (why: its refusal for STAGE_REFUSE, else NULL). The stages after
   it run, then the resume callback. STAGE_SUSPEND here means "still waiting" (ignored). */
void pipeline_resume(struct call *c, enum stage_verdict v, const struct call_refusal *why);
/* End the call with outcome o (code for CALL_ERROR): the done stages run, once. */
void pipeline_done(struct call *c, enum call_outcome o, int code);
/* The outcome a final message means: a result is CALL_OK, -32004 CALL_TIMEOUT, any other error
   CALL_ERROR with *code set. */
enum call_outcome call_outcome_of(json_t *final, int *code);

/* --- emitting to the client --- */

enum {
    EMIT_FINAL = 1u << 0,       /* the answer that ends the stream (and the call) */
    EMIT_FROM_MODERN = 1u << 1, /* the message came from a 2026-07-28 server */
};
/*
 * The one way an MCP message reaches a client's stream. Any thread (the call's, when c is not
 * NULL). In order: the era fields of a final result (mcp_emit_era, for the stream's client
 * and `method`: c's, or the given one when c is NULL), the message stages (of c's pipeline, or
 * of `pl` for a message of no call, on a private deep copy: msg itself is never changed), the
 * push, then for EMIT_FINAL the end of c with the outcome the message means (unless it ended
 * already). msg is borrowed. Returns stream_push's result.
 */
int mcp_emit(struct call *c, struct pipeline *pl, struct stream *st, json_t *msg, unsigned flags);
/* mcp_emit of a new JSON-RPC error {code, message, data: {"server": server}} with `id`
   (borrowed), final. server may be NULL (no data). */
int mcp_emit_error(struct call *c, struct stream *st, json_t *id, int code, const char *server,
                   const char *message);
/*
 * The other half of the emitter: the gateway's own answer to a request, which goes to the client
 * as the HTTP response's body rather than on a stream (initialize, ping, the lists, a refusal).
 * *body (a reference, replaced by a new one) gets the era fields (client_modern: a 2026-07-28
 * client; method: the request's), then passes the message stages of pl (with no call) on a
 * private copy. Worker thread.
 */
void mcp_emit_reply(struct pipeline *pl, json_t **body, const char *method, bool client_modern);
/*
 * The era fields of an answer going to a client, in one place (the gateway's own answers and
 * the servers' alike). A 2026-07-28 client's result gets resultType "complete" when it has none,
 * and a list's or a resources/read's gets ttlMs 0 and cacheScope "private" (never shared
 * between callers); a legacy client's result from a 2026-07-28 server loses resultType, ttlMs
 * and cacheScope. Returns msg itself when nothing changes, else a new message that shares the
 * rest of msg; either way a new reference (msg is not changed).
 */
json_t *mcp_emit_era(json_t *msg, const char *method, bool client_modern, bool server_modern);

#endif
