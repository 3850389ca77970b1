/*
 * Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document): a client_id
 * that is an https URL names a JSON document describing the client; Gatehouse fetches it on the
 * worker's loop and keeps it in the store as a STORE_CLIENT_CIMD client until it expires
 * (auth.registration.cimd_cache, or the response's max-age when lower).
 *
 * The fetch is an SSRF risk; upstream/fetch.h fences it: the address curl connects to is
 * checked after DNS (loopback, private, link-local, unique-local, multicast and reserved
 * addresses are refused unless auth.registration.cimd_allow_private), redirects are followed by
 * hand (at most 3) and re-checked, the body is capped (cimd_max_size) and the whole fetch timed
 * (cimd_timeout). Here: the answer must be 200 with a JSON content type, and its client_id must
 * equal the URL.
 *
 * The authorization request waits meanwhile. Its h2o request may end first (the browser goes
 * away): a small record in the request's pool detaches the fetch then; the outcome is still
 * cached, but nobody is called.
 */
#include "oauth/oauth-int.h"
#include "core/log.h"
#include "upstream/fetch.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CIMD_MAX_REDIRECTS 3

struct cimd_hold;

struct cimd_fetch {
    struct cimd_fetch *next;
    struct oauth_ctx *o;
    h2o_req_t *req; /* NULL once the request ended */
    struct cimd_hold *hold;
    struct fetch *x;
    oauth_cimd_cb cb;
    void *arg;
    size_t max;
    uint32_t cache_s;
    char client_id[STORE_CLIENT_ID_MAX + 1];
};

struct cimd_hold {
    struct cimd_fetch *f;
};

bool oauth_cimd_client_id(const char *client_id)
{
    return strncmp(client_id, "https://", 8) == 0 || strncmp(client_id, "http://", 7) == 0;
}

int oauth_cimd_document_check(const char *body, size_t len, const char *client_id, json_t **out,
                              struct err_info *ei)
{
    json_error_t je;
    json_t *doc = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (doc == NULL)
        return err_info_set(ei, ERR_PARSE, je.line, je.column, "the document is not JSON: %s",
                            je.text);
    const char *cid = json_string_value(json_object_get(doc, "client_id"));
    int err = cid == NULL || strcmp(cid, client_id) != 0
                  ? err_info_set(ei, ERR_INVAL, 0, 0, "the document's client_id must equal its URL")
                  : oauth_client_metadata_check(doc, true, out, ei);
    json_decref(doc);
    return err;
}

static void cimd_unlink(struct cimd_fetch *f)
{
    for (struct cimd_fetch **p = &f->o->fetches; *p; p = &(*p)->next)
        if (*p == f) {
            *p = f->next;
            break;
        }
    if (f->hold)
        f->hold->f = NULL;
}

static void hold_dispose(void *p)
{
    struct cimd_hold *h = p;
    if (h->f) {
        h->f->req = NULL; /* the browser went away: finish (and cache) quietly */
        h->f->hold = NULL;
    }
}

/* Report the outcome to the waiting request, if it is still there, and free the record. */
static void cimd_finish(struct cimd_fetch *f, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void cimd_finish(struct cimd_fetch *f, int err, const char *fmt, ...)
{
    char msg[600] = "";
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        log_msg(LOG_INFO, "oauth", "client metadata document %.200s refused: %s", f->client_id,
                msg);
    }
    cimd_unlink(f);
    if (f->req != NULL)
        f->cb(f->o, f->req, f->arg, err, msg);
    free(f);
}

static void fetched_cb(void *arg, int err, const struct fetch_response *r, const char *why)
{
    struct cimd_fetch *f = arg;
    f->x = NULL;
    if (err == ERR_LIMIT && why && strstr(why, "redirect") == NULL)
        return cimd_finish(f, err,
                           "the document is larger than %zu bytes "
                           "(auth.registration.cimd_max_size)",
                           f->max);
    if (err)
        return cimd_finish(f, err, "%s%s", why ? why : err_str(err),
                           err == ERR_DENIED ? " (SSRF protection; "
                                               "auth.registration.cimd_allow_private)"
                                             : "");
    if (r->status != 200)
        return cimd_finish(f, ERR_PROTOCOL, "the server answered HTTP %ld", r->status);
    const char *ct = r->content_type ? r->content_type : "";
    if (strncasecmp(ct, "application/json", 16) != 0 && strstr(ct, "+json") == NULL)
        return cimd_finish(f, ERR_PROTOCOL, "the content type is \"%.60s\", not application/json",
                           ct);
    json_t *m = NULL;
    struct err_info ei = {0};
    if ((err = oauth_cimd_document_check(r->body, r->len, f->client_id, &m, &ei)) != 0)
        return cimd_finish(f, err, "%s", ei.msg);
    struct store_client c = {0};
    snprintf(c.client_id, sizeof(c.client_id), "%s", f->client_id);
    c.kind = STORE_CLIENT_CIMD;
    c.created_at = oauth_now();
    uint32_t ttl = f->cache_s;
    if (r->max_age >= 0 && (uint64_t)r->max_age < ttl)
        ttl = (uint32_t)r->max_age;
    c.expires_at = c.created_at + (ttl ? ttl : 1);
    c.metadata = m;
    err = store_client_put(f->o->st, &c, NULL);
    json_decref(m);
    if (err)
        return cimd_finish(f, err, "cannot store the client: %s", err_str(err));
    cimd_finish(f, 0, NULL);
}

int oauth_cimd_resolve(struct oauth_ctx *o, const struct config *cfg, h2o_req_t *req,
                       const char *client_id, oauth_cimd_cb done_cb, void *arg)
{
    struct store_client c = {0};
    if (store_client_get(o->st, client_id, &c) == 0) {
        bool fresh = c.kind == STORE_CLIENT_CIMD && c.expires_at > oauth_now() && !c.revoked;
        bool revoked = c.revoked;
        store_client_release(&c);
        if (revoked) {
            done_cb(o, req, arg, ERR_DENIED, "the client was revoked");
            return 0;
        }
        if (fresh) {
            done_cb(o, req, arg, 0, NULL);
            return 0;
        }
    }
    struct oauth_url u;
    struct err_info ei = {0};
    if (oauth_url_parse(client_id, &u, &ei) != 0) {
        done_cb(o, req, arg, ERR_INVAL, ei.msg);
        return 0;
    }
    /* https only; http is let through with cimd_allow_private, for tests on loopback. */
    if (!u.https && !cfg->auth.cimd_allow_private) {
        done_cb(o, req, arg, ERR_INVAL, "a metadata document URL must be https");
        return 0;
    }
    const char *path = client_id + u.path_off;
    if (path[0] != '/' || path[1] == '\0' || path[1] == '?') {
        done_cb(o, req, arg, ERR_INVAL, "a metadata document URL must have a path");
        return 0;
    }
    if (o->closing)
        return ERR_CLOSED;
    if (o->fetcher == NULL)
        return ERR_CLOSED;
    struct cimd_fetch *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return ERR_NOMEM;
    f->o = o;
    f->req = req;
    f->cb = done_cb;
    f->arg = arg;
    f->max = cfg->auth.cimd_max_size ? cfg->auth.cimd_max_size : 16384;
    f->cache_s = cfg->auth.cimd_cache_s;
    snprintf(f->client_id, sizeof(f->client_id), "%s", client_id);
    struct fetch_request fr = {.url = client_id,
                               .accept = "application/json",
                               .max_size = f->max,
                               .timeout_ms =
                                   cfg->auth.cimd_timeout_ms ? cfg->auth.cimd_timeout_ms : 5000,
                               .max_redirects = CIMD_MAX_REDIRECTS,
                               .allow_private = cfg->auth.cimd_allow_private};
    int err = fetch_start(o->fetcher, &fr, fetched_cb, f, &f->x);
    if (err) {
        free(f);
        return err;
    }
    f->next = o->fetches;
    o->fetches = f;
    struct cimd_hold *h = h2o_mem_alloc_shared(&req->pool, sizeof(*h), hold_dispose);
    h->f = f;
    f->hold = h;
    return 0;
}

void oauth_cimd_shutdown(struct oauth_ctx *o)
{
    while (o->fetches) {
        struct cimd_fetch *f = o->fetches;
        if (f->x)
            fetch_cancel(f->x);
        cimd_unlink(f);
        if (f->req != NULL)
            oauth_error_page(f->req, 503, "the gateway is shutting down; try again");
        free(f);
    }
    if (o->fetcher) {
        fetcher_free(o->fetcher);
        o->fetcher = NULL;
    }
}
