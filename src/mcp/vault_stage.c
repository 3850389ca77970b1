/*
 * The vault stage: a request stage of the call pipeline (pipeline.h) that puts the caller's own
 * token into every call to a server with auth.oauth. It asks the vault (src/vault) for the
 * (user, server) connection in a store job (off the loop on PostgreSQL), and then:
 *
 *   fresh    vault_inject adds `Authorization: Bearer …` to the call's outbound additions (the
 *            HTTP transport sends them with the call's POST); the call continues.
 *   stale    (expired or about to) the vault builds a refresh request, sent through this
 *            worker's fetcher (curl on the same loop); the answer is kept by the vault (a store
 *            job) and the new token injected. The call waits, suspended, meanwhile.
 *   none     (never connected, refresh refused, no refresh token) the call is refused with
 *            -32042 (URLElicitationRequired, MCP 2025-11-25): data.elicitations carries one
 *            URL-mode elicitation whose url is the user's connect link (a start link the
 *            gateway's OAuth module makes: short-lived, single-use, sealed for this user and
 *            this server). The message names the URL too, for clients that show only messages.
 *
 * The stage never sees a token: the vault entry is opaque, and what it adds goes straight into
 * the call's struct outbound (wiped on release). Service accounts and anonymous callers have no
 * upstream connection: their calls to such a server are refused naming that.
 *
 * Per worker thread: mcp_vault_attach (on the worker's thread, before its first call) gives the
 * stage the worker's store caller, a fetcher of its own and the link maker; without it (no
 * store: authentication off, where auth.oauth is refused at load) the stage lets calls pass.
 */
#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "core/rand.h"
#include "mcp/gateway.h"
#include "mcp/jsonrpc.h"
#include "mcp/pipeline.h"
#include "upstream/fetch.h"
#include "vault/vault.h"

#define REFRESH_TIMEOUT_MS 10000

struct vault_thread {
    uv_loop_t *loop;
    struct store_caller *sc;
    struct fetcher *fetcher;
    mcp_vault_link_fn link;
};
static _Thread_local struct vault_thread *vt;

int mcp_vault_attach(uv_loop_t *loop, struct store_caller *sc, const char *ca_file,
                     mcp_vault_link_fn link)
{
    struct vault_thread *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return ERR_NOMEM;
    struct err_info ei = {0};
    int err = fetcher_new(loop, &t->fetcher);
    if (err == 0 && ca_file != NULL && (err = fetcher_trust(t->fetcher, ca_file, &ei)) != 0)
        log_error("vault", "outbound.ca_file: %s", ei.msg);
    if (err) {
        if (t->fetcher)
            fetcher_free(t->fetcher);
        free(t);
        return err;
    }
    t->loop = loop;
    t->sc = sc;
    t->link = link;
    vt = t;
    return 0;
}

void mcp_vault_detach(void)
{
    if (vt == NULL)
        return;
    fetcher_free(vt->fetcher);
    free(vt);
    vt = NULL;
}

enum job_phase { JOB_OPEN, JOB_REFRESH, JOB_KEEP };

struct vjob {
    struct call *c;
    int64_t uid;
    char server[STORE_SERVER_MAX + 1];
    bool allow_private;
    enum job_phase phase;
    bool in_stage;   /* the stage function has not returned yet (an inline store job) */
    bool done_early; /* ... and the job finished meanwhile */
    int rc;
    struct vault_entry *e;
    json_t *tokens; /* a refresh answer, until kept */
    char why[512];  /* err_info.msg */
};

static void job_free(struct vjob *j)
{
    vault_entry_free(j->e);
    if (j->tokens) {
        json_t *v = json_object_get(j->tokens, "access_token");
        if (json_is_string(v))
            sodium_memzero((void *)(uintptr_t)json_string_value(v), json_string_length(v));
        v = json_object_get(j->tokens, "refresh_token");
        if (json_is_string(v))
            sodium_memzero((void *)(uintptr_t)json_string_value(v), json_string_length(v));
        json_decref(j->tokens);
    }
    free(j);
}

/* The refusal that sends the user to connect (or reconnect) their account. */
static void refuse_with_link(struct vjob *j, struct call_refusal *why, const char *cause)
{
    char url[CALL_REFUSAL_URL_MAX];
    url[0] = '\0';
    if (vt->link == NULL || vt->link(j->uid, j->server, NULL, url, sizeof(url)) != 0)
        url[0] = '\0';
    why->status = 200; /* a JSON-RPC error the client reads, not an HTTP failure */
    why->code = JSONRPC_URL_ELICITATION_REQUIRED;
    snprintf(why->url, sizeof(why->url), "%s", url);
    if (url[0])
        snprintf(why->message, sizeof(why->message),
                 "server \"%s\" needs your authorization (%s): open %s in a browser to connect "
                 "your account, then retry",
                 j->server, cause, url);
    else
        snprintf(why->message, sizeof(why->message),
                 "server \"%s\" needs your authorization (%s), and the gateway cannot make a "
                 "link now; run `gatehouse user connect` for you",
                 j->server, cause);
}

/* ---- store jobs (any thread, any connection) ---- */

static int open_job(struct store *st, void *arg)
{
    struct vjob *j = arg;
    vault_entry_free(j->e);
    j->e = NULL;
    j->rc = vault_open(st, j->uid, j->server, &j->e);
    return 0;
}

static int keep_job(struct store *st, void *arg)
{
    struct vjob *j = arg;
    struct err_info ei = {0};
    j->rc = vault_keep(st, j->uid, j->server, j->tokens, NULL, j->e, (int64_t)time(NULL), &ei);
    if (j->rc) {
        snprintf(j->why, sizeof(j->why), "%s", ei.msg[0] ? ei.msg : err_str(j->rc));
        return 0;
    }
    return open_job(st, arg);
}

static enum stage_verdict advance(struct vjob *j, struct call_refusal *why);

/* A verdict reached after the stage returned: resume the call. */
static void finish_later(struct vjob *j, enum stage_verdict v, struct call_refusal *why)
{
    struct call *c = j->c;
    job_free(j);
    pipeline_resume(c, v, v == STAGE_REFUSE ? why : NULL);
}

static void job_done_cb(int rc, void *arg)
{
    struct vjob *j = arg;
    if (rc != 0 && j->rc == 0)
        j->rc = rc;
    if (j->in_stage) {
        j->done_early = true; /* the stage function goes on from here */
        return;
    }
    struct call_refusal why = {0};
    enum stage_verdict v = advance(j, &why);
    if (v != STAGE_SUSPEND)
        finish_later(j, v, &why);
}

/* Run a store job; STAGE_SUSPEND, or the verdict when it ran inline and settled. */
static enum stage_verdict run_job(struct vjob *j, store_job_fn fn, struct call_refusal *why)
{
    j->done_early = false;
    j->in_stage = true;
    int err = store_call(vt->sc, fn, job_done_cb, j);
    j->in_stage = false;
    if (err) {
        j->rc = err;
        return advance(j, why);
    }
    if (j->done_early)
        return advance(j, why);
    return STAGE_SUSPEND;
}

static void refresh_cb(void *arg, int err, const struct fetch_response *r, const char *what)
{
    struct vjob *j = arg;
    struct call_refusal why = {0};
    json_t *doc = NULL;
    if (err == 0 && r->status >= 200 && r->status < 300)
        doc = json_loadb(r->body, r->len, 0, NULL);
    if (!json_is_object(doc)) {
        json_decref(doc);
        log_info("vault", "user %lld, server \"%s\": the refresh failed (%s)", (long long)j->uid,
                 j->server, err ? (what ? what : err_str(err)) : "the token endpoint refused it");
        refuse_with_link(j, &why, "your connection expired and could not be renewed");
        finish_later(j, STAGE_REFUSE, &why);
        return;
    }
    j->tokens = doc;
    j->phase = JOB_KEEP;
    enum stage_verdict v = run_job(j, keep_job, &why);
    if (v != STAGE_SUSPEND)
        finish_later(j, v, &why);
}

static enum stage_verdict start_refresh(struct vjob *j, struct call_refusal *why)
{
    char *url = NULL, *body = NULL;
    struct outbound h;
    outbound_init(&h);
    int err = vault_refresh_request(j->e, &url, &body, &h);
    if (err) {
        outbound_release(&h);
        refuse_with_link(j, why, "your connection expired");
        return STAGE_REFUSE;
    }
    const char *authz = NULL;
    for (size_t i = 0; i < h.n; i++)
        if (strcasecmp(h.v[i].name, "Authorization") == 0)
            authz = h.v[i].value;
    struct fetch_request fr = {
        .url = url,
        .method = "POST",
        .body = body,
        .body_len = strlen(body),
        .content_type = "application/x-www-form-urlencoded",
        .accept = "application/json",
        .authorization = authz,
        .timeout_ms = REFRESH_TIMEOUT_MS,
        .allow_private = j->allow_private,
    };
    j->phase = JOB_REFRESH;
    err = fetch_start(vt->fetcher, &fr, refresh_cb, j, NULL);
    sodium_memzero(body, strlen(body));
    free(body);
    free(url);
    outbound_release(&h);
    if (err) {
        refuse_with_link(j, why, "your connection expired and could not be renewed");
        return STAGE_REFUSE;
    }
    return STAGE_SUSPEND;
}

/* Where the job stands after its store job: the verdict, or STAGE_SUSPEND for more waiting. */
static enum stage_verdict advance(struct vjob *j, struct call_refusal *why)
{
    if (j->phase == JOB_KEEP && j->rc != 0 && j->why[0]) {
        log_warn("vault", "user %lld, server \"%s\": the renewed tokens were not kept: %s",
                 (long long)j->uid, j->server, j->why);
        refuse_with_link(j, why, "your connection could not be renewed");
        return STAGE_REFUSE;
    }
    switch (j->rc) {
    case 0:
        break;
    case ERR_NOTFOUND:
        refuse_with_link(j, why, "you have not connected your account yet");
        return STAGE_REFUSE;
    case ERR_DENIED:
        log_warn("vault",
                 "user %lld, server \"%s\": the stored connection does not open (another "
                 "master key, or a row moved); asking the user to connect again",
                 (long long)j->uid, j->server);
        refuse_with_link(j, why, "your stored connection cannot be used");
        return STAGE_REFUSE;
    default:
        why->status = 503;
        why->code = JSONRPC_INTERNAL_ERROR;
        snprintf(why->message, sizeof(why->message),
                 "vault: the store did not answer (%s) reading your connection to server \"%s\"; "
                 "retry shortly",
                 err_str(j->rc), j->server);
        return STAGE_REFUSE;
    }
    switch (vault_entry_state(j->e, (int64_t)time(NULL))) {
    case VAULT_FRESH:
        if (vault_inject(j->e, &j->c->out) != 0) {
            why->status = 500;
            why->code = JSONRPC_INTERNAL_ERROR;
            snprintf(why->message, sizeof(why->message),
                     "vault: the token for server \"%s\" cannot be added to the request",
                     j->server);
            return STAGE_REFUSE;
        }
        return STAGE_CONTINUE;
    case VAULT_STALE:
        if (j->phase == JOB_OPEN)
            return start_refresh(j, why);
        /* a refresh answer that expires at once: use it for this call anyway */
        return vault_inject(j->e, &j->c->out) == 0 ? STAGE_CONTINUE : STAGE_REFUSE;
    case VAULT_DEAD:
        refuse_with_link(j, why, "your connection expired");
        return STAGE_REFUSE;
    }
    return STAGE_REFUSE;
}

static enum stage_verdict vault_request(struct call *c, void *conf, struct call_refusal *why)
{
    (void)conf;
    const struct config_server *srv = c->server >= 0 ? gateway_server_config(c->server) : NULL;
    if (srv == NULL || !srv->oauth.enabled || vt == NULL)
        return STAGE_CONTINUE;
    int64_t uid = principal_user_id(&c->who);
    if (uid <= 0) {
        why->status = 403;
        why->code = JSONRPC_INVALID_REQUEST;
        snprintf(why->message, sizeof(why->message),
                 "vault: server \"%s\" is used with each user's own account (auth.oauth); %s has "
                 "no account there: sign in as a user",
                 srv->name, c->who.name[0] ? "this service account" : "an anonymous caller");
        return STAGE_REFUSE;
    }
    struct vjob *j = calloc(1, sizeof(*j));
    if (j == NULL) {
        why->status = 500;
        why->code = JSONRPC_INTERNAL_ERROR;
        snprintf(why->message, sizeof(why->message), "vault: out of memory");
        return STAGE_REFUSE;
    }
    j->c = c;
    j->uid = uid;
    snprintf(j->server, sizeof(j->server), "%s", srv->name);
    j->allow_private = srv->oauth.allow_private;
    j->phase = JOB_OPEN;
    enum stage_verdict v = run_job(j, open_job, why);
    if (v != STAGE_SUSPEND)
        job_free(j);
    return v;
}

int mcp_vault_stage_add(struct pipeline *pl)
{
    struct stage s = {.name = "vault", .request = vault_request};
    return pipeline_add(pl, &s);
}

json_t *mcp_vault_challenge_error(const struct principal *who, const char *server,
                                  const char *challenge, json_t *id)
{
    char rm[1024], scope[STORE_SCOPE_MAX + 1], error[64], url[CALL_REFUSAL_URL_MAX], msg[3200];
    int64_t uid = principal_user_id(who);
    if (vt == NULL || vt->link == NULL || uid <= 0)
        return NULL;
    fetch_bearer_challenge(challenge, rm, sizeof(rm), scope, sizeof(scope), error, sizeof(error));
    bool step_up = strcmp(error, "insufficient_scope") == 0 && scope[0];
    if (vt->link(uid, server, step_up ? scope : NULL, url, sizeof(url)) != 0)
        return NULL;
    if (step_up)
        snprintf(msg, sizeof(msg),
                 "server \"%s\" needs more access than you granted (scope \"%s\"): open %s in a "
                 "browser to authorize it, then retry",
                 server, scope, url);
    else
        snprintf(msg, sizeof(msg),
                 "server \"%s\" did not accept your token (%s): open %s in a browser to connect "
                 "your account again, then retry",
                 server, error[0] ? error : "HTTP 401", url);
    log_info("vault", "user %lld, server \"%s\": %s; the user is sent a new link", (long long)uid,
             server, step_up ? "step-up asked" : "the token was refused");
    char eid[40];
    rand_token(eid, sizeof(eid), 16);
    return jsonrpc_error_new(id, JSONRPC_URL_ELICITATION_REQUIRED, msg,
                             json_pack("{s:s, s:[{s:s, s:s, s:s, s:s}]}", "server", server,
                                       "elicitations", "mode", "url", "elicitationId", eid, "url",
                                       url, "message", msg));
}
