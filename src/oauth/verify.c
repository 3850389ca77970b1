/*
 * argon2id checks off the worker's loop. A password or client-secret check costs tens of
 * milliseconds on purpose; run on the loop it would stall every other request of that worker
 * (MCP traffic included) for as long. The store lookup stays on the loop (the connection
 * belongs to it); only secret_verify, a pure function of its inputs, runs on libuv's thread
 * pool, and the answer continues on the loop.
 *
 * The h2o request waits meanwhile and may end first (the client hangs up): a record in its pool
 * detaches the job then, and the outcome is dropped.
 */
#include "oauth/oauth-int.h"
#include "core/secret.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

struct verify_hold;

struct verify_job {
    uv_work_t work;
    struct oauth_ctx *o;
    h2o_req_t *req; /* NULL once the request ended */
    struct verify_hold *hold;
    oauth_verify_cb cb;
    void *arg;
    bool have_hash, ok;
    char hash[SECRET_HASH_MAX];
    size_t len;
    char secret[]; /* wiped before free */
};

struct verify_hold {
    struct verify_job *job;
};

static void hold_dispose(void *p)
{
    struct verify_hold *h = p;
    if (h->job != NULL) {
        h->job->req = NULL;
        h->job->hold = NULL;
    }
}

/* On a thread of the pool. */
static void work_cb(uv_work_t *w)
{
    struct verify_job *j = w->data;
    if (j->have_hash)
        j->ok = secret_verify(j->hash, j->secret, j->len);
    else
        secret_verify_dummy(j->secret, j->len);
}

/* Back on the worker's loop. */
static void after_cb(uv_work_t *w, int status)
{
    struct verify_job *j = w->data;
    if (j->hold != NULL)
        j->hold->job = NULL;
    if (j->req != NULL)
        j->cb(j->o, j->req, j->arg, status == 0 && j->ok);
    sodium_memzero(j->hash, sizeof(j->hash));
    sodium_memzero(j->secret, j->len);
    free(j);
}

int oauth_verify_secret(struct oauth_ctx *o, h2o_req_t *req, const char *hash, const char *secret,
                        oauth_verify_cb done_cb, void *arg)
{
    size_t len = strlen(secret);
    struct verify_job *j = calloc(1, sizeof(*j) + len + 1);
    if (j == NULL)
        return ERR_NOMEM;
    j->o = o;
    j->req = req;
    j->cb = done_cb;
    j->arg = arg;
    j->work.data = j;
    if (hash != NULL) {
        j->have_hash = strlen(hash) < sizeof(j->hash);
        memcpy(j->hash, hash, j->have_hash ? strlen(hash) + 1 : 0);
    }
    j->len = len;
    memcpy(j->secret, secret, len + 1);
    if (uv_queue_work(o->loop, &j->work, work_cb, after_cb) != 0) {
        sodium_memzero(j->secret, len);
        sodium_memzero(j->hash, sizeof(j->hash));
        free(j);
        return ERR_NOMEM;
    }
    struct verify_hold *h = h2o_mem_alloc_shared(&req->pool, sizeof(*h), hold_dispose);
    h->job = j;
    j->hold = h;
    return 0;
}
