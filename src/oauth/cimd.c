/*
 * Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document): a client_id
 * that is an https URL names a JSON document describing the client; Gatehouse fetches it on the
 * worker's loop (libcurl multi) and keeps it in the store as a STORE_CLIENT_CIMD client until it
 * expires (auth.registration.cimd_cache, or the response's max-age when lower).
 *
 * The fetch is an SSRF risk, so it is fenced: the address curl actually connects to is checked
 * in CURLOPT_OPENSOCKETFUNCTION (after DNS, so a name resolving to 10.0.0.1 is caught) and
 * loopback, private, link-local, unique-local, multicast and reserved addresses are refused
 * unless auth.registration.cimd_allow_private; redirects are not followed by curl but by hand,
 * at most 3, each one re-checked; the body is capped (cimd_max_size) and the whole fetch timed
 * (cimd_timeout); the answer must be 200 with a JSON content type and a client_id equal to the
 * URL.
 *
 * The authorization request waits meanwhile. Its h2o request may end first (the browser goes
 * away): a small record in the request's pool detaches the fetch then, and the outcome is
 * still cached but nobody is called.
 */
#include "oauth/oauth-int.h"
#include "core/log.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#define CIMD_MAX_REDIRECTS 3

struct cimd_hold;

struct cimd_fetch {
    struct cimd_fetch *next;
    struct oauth_ctx *o;
    h2o_req_t *req; /* NULL once the request ended */
    struct cimd_hold *hold;
    oauth_cimd_cb cb;
    void *arg;
    CURL *e;
    struct curl_slist *hdrs;
    char client_id[STORE_CLIENT_ID_MAX + 1];
    char url[OAUTH_URL_MAX + 1];
    int redirects;
    bool allow_private;
    bool too_big;
    char refused[INET6_ADDRSTRLEN]; /* an address the socket callback refused */
    size_t max;
    uint32_t timeout_ms;
    uint32_t cache_s;
    long max_age; /* from Cache-Control, -1 if none */
    char ctype[128];
    char location[OAUTH_URL_MAX + 1];
    struct buf body;
};

struct cimd_hold {
    struct cimd_fetch *f;
};

bool oauth_cimd_client_id(const char *client_id)
{
    return strncmp(client_id, "https://", 8) == 0 || strncmp(client_id, "http://", 7) == 0;
}

/* ---- the address fence ---- */

static bool v4_private(const unsigned char a[4])
{
    return a[0] == 0 || a[0] == 10 || a[0] == 127 || (a[0] == 100 && (a[1] & 0xc0) == 64) ||
           (a[0] == 169 && a[1] == 254) || (a[0] == 172 && (a[1] & 0xf0) == 16) ||
           (a[0] == 192 && a[1] == 168) || (a[0] == 192 && a[1] == 0 && a[2] == 0) ||
           (a[0] == 192 && a[1] == 0 && a[2] == 2) || (a[0] == 198 && (a[1] & 0xfe) == 18) ||
           (a[0] == 198 && a[1] == 51 && a[2] == 100) || (a[0] == 203 && a[1] == 0 && a[2] == 113) ||
           a[0] >= 224;
}

/* Loopback, private, link-local, unique-local, multicast, documentation or reserved. */
static bool addr_private(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return v4_private((const unsigned char *)&((const struct sockaddr_in *)sa)->sin_addr);
    if (sa->sa_family != AF_INET6)
        return true;
    const unsigned char *a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
    static const unsigned char zero[12] = {0};
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const unsigned char nat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
    if (memcmp(a, zero, 12) == 0) /* ::, ::1 and the old IPv4-compatible block */
        return true;
    if (memcmp(a, mapped, 12) == 0 || memcmp(a, nat64, 12) == 0)
        return v4_private(a + 12);
    return (a[0] & 0xfe) == 0xfc ||                 /* fc00::/7 unique local */
           (a[0] == 0xfe && (a[1] & 0xc0) == 0x80) || /* fe80::/10 link-local */
           a[0] == 0xff ||                          /* multicast */
           (a[0] == 0x20 && a[1] == 0x01 && a[2] == 0x0d && a[3] == 0xb8) || /* documentation */
           (a[0] == 0x01 && a[1] == 0 && memcmp(a + 2, zero, 6) == 0);    /* 100::/64 discard */
}

static curl_socket_t open_socket_cb(void *clientp, curlsocktype purpose,
                                    struct curl_sockaddr *addr)
{
    struct cimd_fetch *f = clientp;
    (void)purpose;
    if (!f->allow_private && addr_private(&addr->addr)) {
        const void *p = addr->family == AF_INET
                            ? (const void *)&((struct sockaddr_in *)&addr->addr)->sin_addr
                            : (const void *)&((struct sockaddr_in6 *)&addr->addr)->sin6_addr;
        inet_ntop(addr->family, p, f->refused, sizeof(f->refused));
        return CURL_SOCKET_BAD;
    }
    return socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
}

/* ---- the transfer ---- */

static size_t write_cb(char *data, size_t size, size_t n, void *arg)
{
    struct cimd_fetch *f = arg;
    size_t len = size * n;
    if (f->body.len + len > f->max || buf_append(&f->body, data, len) != 0) {
        f->too_big = true;
        return 0;
    }
    return len;
}

static void header_copy(char *out, size_t size, const char *v, size_t len)
{
    while (len > 0 && (v[len - 1] == '\r' || v[len - 1] == '\n' || v[len - 1] == ' '))
        len--;
    while (len > 0 && *v == ' ')
        v++, len--;
    snprintf(out, size, "%.*s", (int)len, v);
}

static size_t header_cb(char *data, size_t size, size_t n, void *arg)
{
    struct cimd_fetch *f = arg;
    size_t len = size * n;
    if (len > 13 && strncasecmp(data, "content-type:", 13) == 0)
        header_copy(f->ctype, sizeof(f->ctype), data + 13, len - 13);
    else if (len > 9 && strncasecmp(data, "location:", 9) == 0)
        header_copy(f->location, sizeof(f->location), data + 9, len - 9);
    else if (len > 14 && strncasecmp(data, "cache-control:", 14) == 0) {
        char v[256];
        header_copy(v, sizeof(v), data + 14, len - 14);
        const char *m = strstr(v, "max-age=");
        if (m)
            f->max_age = strtol(m + 8, NULL, 10);
        if (strstr(v, "no-store") || strstr(v, "no-cache"))
            f->max_age = 0;
    }
    return len;
}

static int fetch_start(struct cimd_fetch *f)
{
    f->e = curl_easy_init();
    if (f->e == NULL)
        return ERR_NOMEM;
    buf_reset(&f->body);
    f->ctype[0] = f->location[0] = '\0';
    f->max_age = -1;
    curl_loop_easy_defaults(f->e);
    curl_easy_setopt(f->e, CURLOPT_URL, f->url);
    curl_easy_setopt(f->e, CURLOPT_PROTOCOLS_STR, f->allow_private ? "http,https" : "https");
    curl_easy_setopt(f->e, CURLOPT_PRIVATE, f);
    curl_easy_setopt(f->e, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(f->e, CURLOPT_WRITEDATA, f);
    curl_easy_setopt(f->e, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(f->e, CURLOPT_HEADERDATA, f);
    curl_easy_setopt(f->e, CURLOPT_OPENSOCKETFUNCTION, open_socket_cb);
    curl_easy_setopt(f->e, CURLOPT_OPENSOCKETDATA, f);
    curl_easy_setopt(f->e, CURLOPT_TIMEOUT_MS, (long)f->timeout_ms);
    curl_easy_setopt(f->e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)f->max);
    curl_easy_setopt(f->e, CURLOPT_ACCEPT_ENCODING, NULL);
    if (f->hdrs == NULL)
        f->hdrs = curl_slist_append(NULL, "Accept: application/json");
    curl_easy_setopt(f->e, CURLOPT_HTTPHEADER, f->hdrs);
    if (curl_multi_add_handle(f->o->cl.multi, f->e) != CURLM_OK) {
        curl_easy_cleanup(f->e);
        f->e = NULL;
        return ERR_IO;
    }
    return 0;
}

static void fetch_cleanup_easy(struct cimd_fetch *f)
{
    if (f->e == NULL)
        return;
    if (f->o->cl.multi)
        curl_multi_remove_handle(f->o->cl.multi, f->e);
    curl_easy_cleanup(f->e);
    f->e = NULL;
}

static void fetch_free(struct cimd_fetch *f)
{
    struct oauth_ctx *o = f->o;
    for (struct cimd_fetch **p = &o->fetches; *p; p = &(*p)->next)
        if (*p == f) {
            *p = f->next;
            break;
        }
    if (f->hold)
        f->hold->f = NULL;
    fetch_cleanup_easy(f);
    curl_slist_free_all(f->hdrs);
    buf_release(&f->body);
    free(f);
}

static void hold_dispose(void *p)
{
    struct cimd_hold *h = p;
    if (h->f) {
        h->f->req = NULL; /* the browser went away: finish (and cache) quietly */
        h->f->hold = NULL;
    }
}

/* Report the outcome to the waiting request, if it is still there, and free the fetch. */
static void fetch_finish(struct cimd_fetch *f, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fetch_finish(struct cimd_fetch *f, int err, const char *fmt, ...)
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
    h2o_req_t *req = f->req;
    oauth_cimd_cb cb = f->cb;
    void *arg = f->arg;
    struct oauth_ctx *o = f->o;
    fetch_free(f);
    if (req != NULL)
        cb(o, req, arg, err, msg);
}

static void fetch_done(struct cimd_fetch *f, CURLcode rc)
{
    long status = 0;
    curl_easy_getinfo(f->e, CURLINFO_RESPONSE_CODE, &status);
    if (rc != CURLE_OK) {
        if (f->refused[0])
            return fetch_finish(f, ERR_DENIED, "its host resolves to %s, a loopback, private, "
                                "link-local or reserved address, which is refused (SSRF "
                                "protection; auth.registration.cimd_allow_private)",
                                f->refused);
        if (f->too_big || rc == CURLE_FILESIZE_EXCEEDED)
            return fetch_finish(f, ERR_LIMIT, "the document is larger than %zu bytes "
                                "(auth.registration.cimd_max_size)",
                                f->max);
        if (rc == CURLE_OPERATION_TIMEDOUT)
            return fetch_finish(f, ERR_TIMEOUT, "no complete answer within %u ms "
                                "(auth.registration.cimd_timeout)",
                                f->timeout_ms);
        return fetch_finish(f, ERR_UNAVAILABLE, "the fetch failed: %s", curl_easy_strerror(rc));
    }
    if (status >= 300 && status < 400 && f->location[0]) {
        struct oauth_url u;
        struct err_info ei = {0};
        if (++f->redirects > CIMD_MAX_REDIRECTS)
            return fetch_finish(f, ERR_LIMIT, "more than %d redirects", CIMD_MAX_REDIRECTS);
        if (oauth_url_parse(f->location, &u, &ei) != 0)
            return fetch_finish(f, ERR_PROTOCOL, "a redirect to an unusable URL: %s", ei.msg);
        if (!u.https && !f->allow_private)
            return fetch_finish(f, ERR_DENIED, "a redirect to a non-https URL");
        snprintf(f->url, sizeof(f->url), "%s", f->location);
        fetch_cleanup_easy(f);
        if (fetch_start(f) != 0)
            return fetch_finish(f, ERR_IO, "cannot follow the redirect");
        return;
    }
    if (status != 200)
        return fetch_finish(f, ERR_PROTOCOL, "the server answered HTTP %ld", status);
    if (strncasecmp(f->ctype, "application/json", 16) != 0 && strstr(f->ctype, "+json") == NULL)
        return fetch_finish(f, ERR_PROTOCOL, "the content type is \"%.60s\", not application/json",
                            f->ctype);
    json_error_t je;
    json_t *doc = json_loadb(f->body.data ? f->body.data : "", f->body.len,
                             JSON_REJECT_DUPLICATES, &je);
    if (doc == NULL)
        return fetch_finish(f, ERR_PARSE, "the document is not JSON: %s", je.text);
    const char *cid = json_string_value(json_object_get(doc, "client_id"));
    if (cid == NULL || strcmp(cid, f->client_id) != 0) {
        json_decref(doc);
        return fetch_finish(f, ERR_INVAL, "the document's client_id must equal its URL");
    }
    json_t *m = NULL;
    struct err_info ei = {0};
    int err = oauth_client_metadata_check(doc, true, &m, &ei);
    json_decref(doc);
    if (err)
        return fetch_finish(f, err, "%s", ei.msg);
    struct store_client c = {0};
    snprintf(c.client_id, sizeof(c.client_id), "%s", f->client_id);
    c.kind = STORE_CLIENT_CIMD;
    c.created_at = oauth_now();
    uint32_t ttl = f->cache_s;
    if (f->max_age >= 0 && (uint64_t)f->max_age < ttl)
        ttl = (uint32_t)f->max_age;
    c.expires_at = c.created_at + (ttl ? ttl : 1);
    c.metadata = m;
    err = store_client_put(f->o->st, &c, NULL);
    json_decref(m);
    if (err)
        return fetch_finish(f, err, "cannot store the client: %s", err_str(err));
    fetch_finish(f, 0, NULL);
}

static void progress_cb(void *owner)
{
    struct oauth_ctx *o = owner;
    CURLMsg *msg;
    int left;
    while (o->cl.multi && (msg = curl_multi_info_read(o->cl.multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        struct cimd_fetch *f = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&f);
        if (f != NULL)
            fetch_done(f, msg->data.result);
    }
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
    if (!o->cl_ready) {
        if (curl_loop_init(&o->cl, o->loop, o) != 0)
            return ERR_NOMEM;
        o->cl.progress_cb = progress_cb;
        o->cl_ready = true;
    }
    struct cimd_fetch *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return ERR_NOMEM;
    f->o = o;
    f->req = req;
    f->cb = done_cb;
    f->arg = arg;
    snprintf(f->client_id, sizeof(f->client_id), "%s", client_id);
    snprintf(f->url, sizeof(f->url), "%s", client_id);
    f->allow_private = cfg->auth.cimd_allow_private;
    f->max = cfg->auth.cimd_max_size ? cfg->auth.cimd_max_size : 16384;
    f->timeout_ms = cfg->auth.cimd_timeout_ms ? cfg->auth.cimd_timeout_ms : 5000;
    f->cache_s = cfg->auth.cimd_cache_s;
    buf_init(&f->body, f->max + 1);
    f->next = o->fetches;
    o->fetches = f;
    int err = fetch_start(f);
    if (err) {
        f->req = NULL;
        fetch_free(f);
        return err;
    }
    struct cimd_hold *h = h2o_mem_alloc_shared(&req->pool, sizeof(*h), hold_dispose);
    h->f = f;
    f->hold = h;
    return 0;
}

void oauth_cimd_shutdown(struct oauth_ctx *o)
{
    while (o->fetches) {
        o->fetches->req = NULL;
        fetch_free(o->fetches);
    }
    if (o->cl_ready) {
        curl_loop_close(&o->cl);
        o->cl_ready = false;
    }
}
