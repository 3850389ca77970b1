/*
 * The `openapi` upstream transport: a REST API described by an OpenAPI document, served
 * in-process as if it were an MCP server. The gateway talks to it exactly as to a stdio server:
 * it sends JSON-RPC requests and gets exactly one answer per request through message_cb (never
 * done_cb), so the gateway's own `total` timeout and bookkeeping apply unchanged.
 *
 *   initialize   answered here: the requested protocol version if known, capabilities {tools}
 *   ping         {}
 *   tools/list   the union of the three discovery modes' tools (the curated catalog of
 *                src/openapi, and the navigation tools of the lazy modes), one page, each tool
 *                tagged in _meta "gatehouse/modes" with the modes it belongs to: the gateway
 *                lists per principal the tools of one mode (docs/openapi.md, "Per-user views")
 *   tools/call   in the mode of params._meta "gatehouse/discovery" (set by the gateway only),
 *                else the configured one (key `discovery`), with the user's selection of
 *                "gatehouse/selection" narrowing the navigation answers;
 *                a navigation tool is answered here (src/openapi/discovery.c); a call of an
 *                operation (directly, or through call_operation) goes
 *                openapi_request_build → one HTTP request through libcurl multi on this loop →
 *                an MCP tool result (2xx JSON projected by openapi_response_project, as compact
 *                text with the projection's note, capped, plus structuredContent;
 *                other 2xx summarised; 4xx/5xx and transport failures as isError results)
 *   notifications/cancelled aborts the HTTP request of that id; other notifications are ignored
 *
 * The document is loaded on libuv's thread pool (a large one takes a second), then the state goes
 * UP, or STOPPED with a `why` naming the file and the JSON pointer of the failure.
 *
 * Answers are never delivered from inside transport_send: the gateway registers a request after
 * sending it, so every message goes through an outbox flushed by a zero-delay timer. User
 * callbacks run only from that flush, never inside a curl callback; a transport_close from a
 * callback is carried out once the flush unwinds.
 *
 * Safety as in http.c: no redirects, http/https only, no proxy from the environment. The static
 * headers of the configuration usually hold the API credential: their values are never logged,
 * never quoted in an error, and scrubbed from anything the API sends back. So are the apiKey
 * credentials of `credentials:` (read from their file or variable when the document loads), which
 * the gateway puts where the document's security scheme says (query, header or cookie) on every
 * operation whose security names that scheme; the catalog never shows the model that parameter.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/log.h"
#include "openapi/openapi.h"
#include "upstream/curl_loop.h"
#include "upstream/transport-int.h"
#include "upstream/upstream.h"

#define OA_RESULT_MAX (16 * 1024) /* bytes of response text given to the model */
#define OA_ERROR_BODY_MAX 2048    /* bytes of an error body quoted in an isError result */
#define OA_PREVIEW_MAX 1024       /* bytes of a non-JSON text body shown */
#define OA_URL_MAX (64u * 1024)   /* longest request URL sent (servers refuse far less) */
#define OA_QUEUE_FACTOR 4         /* calls in flight allowed per unit of max_concurrency */
#define OA_REDACTED "[redacted]"
#define OA_MIN_SECRET 4 /* shorter header values are not scrubbed (would mangle any text) */
#define OA_NMODES (OPENAPI_DISCOVERY_SEARCH + 1)

static const char *const oa_versions[] = {"2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05",
                                          NULL};

struct oa_transport;

/* A configured credential, resolved against the loaded document: an apiKey one goes where its
   scheme says; an http bearer, OAuth 2 or OpenID Connect one (a static access token) and an http
   basic one ("user:password") go in the Authorization header. */
struct oa_cred {
    const struct openapi_security_scheme *scheme; /* in cat->doc */
    char *value;                                  /* wiped on free */
    char *query;                                  /* value percent-encoded (query), wiped */
    char *authorization; /* "Bearer …" or "Basic …" for the non-apiKey schemes, wiped */
};

struct oa_call {
    struct oa_transport *t;
    struct oa_call *prev, *next;
    json_t *id;
    const struct openapi_tool *op_tool; /* in t->cat, which outlives the call */
    char tool[72];
    char host[256]; /* host[:port] of the URL, for messages */
    struct openapi_request req;
    CURL *easy;
    struct curl_slist *headers;
    char errbuf[CURL_ERROR_SIZE];
    struct buf body;
    bool too_big;
    bool first_byte;
    bool timed_out;
    uv_timer_t timer; /* first byte, then idle */
};

struct oa_transport {
    struct transport base;
    uv_loop_t *loop;
    const struct config_server *srv;
    struct transport_cbs cbs;
    enum transport_state state;

    /* loading (thread pool) */
    uv_work_t work;
    bool loading;
    int load_err;                   /* written by the pool thread, read after it */
    char load_why[1200];            /* likewise */
    struct openapi_catalog *loaded; /* likewise; moved to `cat` on the loop */
    struct openapi_discovery *loaded_disc[OA_NMODES]; /* likewise */
    struct oa_cred *creds;                            /* likewise, then kept: srv->credentials */
    size_t ncreds;
    struct openapi_catalog *cat;
    struct openapi_discovery *disc[OA_NMODES]; /* each discovery mode over `cat` */
    json_t *tools; /* the tools/list array (the union of the modes' tools), built once */

    struct curl_loop cl; /* the multi handle on this loop (counts as one of open_handles) */
    uv_timer_t flush_timer;
    struct oa_call *calls;
    unsigned ncalls;

    json_t *outbox;     /* messages waiting for message_cb */
    bool state_pending; /* state_cb owed for `state` */
    char state_why[1200];
    int busy; /* inside the flush */
    bool closing, closed;
    int open_handles; /* uv handles not yet closed (plus one while loading) */
};

static const char *srv_name(const struct oa_transport *t)
{
    return t->srv->name ? t->srv->name : "?";
}

/* ---- the outbox ------------------------------------------------------------------------------ */

static void flush_cb(uv_timer_t *h);

static void kick(struct oa_transport *t)
{
    if (!t->closing && !uv_is_active((uv_handle_t *)&t->flush_timer))
        uv_timer_start(&t->flush_timer, flush_cb, 0, 0);
}

static void post(struct oa_transport *t, json_t *msg) /* steals msg */
{
    if (msg == NULL)
        return;
    json_array_append_new(t->outbox, msg);
    kick(t);
}

static void set_state(struct oa_transport *t, enum transport_state st, const char *why)
{
    t->state = st;
    snprintf(t->state_why, sizeof(t->state_why), "%s", why);
    t->state_pending = true;
    if (st == TRANSPORT_UP)
        log_info("upstream_state", "upstream %s is %s: %s", srv_name(t), transport_state_str(st),
                 why);
    else
        log_warn("upstream_state", "upstream %s is %s: %s", srv_name(t), transport_state_str(st),
                 why);
    kick(t);
}

static json_t *result_msg(json_t *id, json_t *result)
{
    return json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id", id, "result", result);
}

static json_t *error_msg(json_t *id, int code, const char *message)
{
    return json_pack("{s:s, s:O, s:{s:i, s:s}}", "jsonrpc", "2.0", "id", id, "error", "code", code,
                     "message", message);
}

/* ---- secrets --------------------------------------------------------------------------------- */

/* Replace every occurrence of `secret` in `s` (owned, may be reallocated). */
static char *scrub_one(char *s, const char *secret, bool *hit)
{
    size_t n = strlen(secret);
    if (s == NULL || n < OA_MIN_SECRET || strstr(s, secret) == NULL)
        return s;
    struct buf b;
    buf_init(&b, strlen(s) + 64 + strlen(s) / n * sizeof(OA_REDACTED));
    const char *p = s, *q;
    while ((q = strstr(p, secret)) != NULL) {
        buf_append(&b, p, (size_t)(q - p));
        buf_append_str(&b, OA_REDACTED);
        p = q + n;
    }
    buf_append_str(&b, p);
    free(s);
    *hit = true;
    return b.data ? b.data : strdup("");
}

/* Replace every occurrence of a configured header value and of a credential (as configured and
   as sent in a query) in `s` (NUL-terminated, owned, may be reallocated). Returns the new string,
   and sets *hit when something was replaced. */
static char *scrub(const struct oa_transport *t, char *s, bool *hit)
{
    for (size_t i = 0; s && i < t->srv->nheaders; i++)
        s = scrub_one(s, t->srv->headers[i].value, hit);
    for (size_t i = 0; s && i < t->ncreds; i++) {
        s = scrub_one(s, t->creds[i].value, hit);
        s = scrub_one(s, t->creds[i].query, hit);
        if (t->creds[i].authorization) /* the Basic form is the value in base64 */
            s = scrub_one(s, strchr(t->creds[i].authorization, ' ') + 1, hit);
    }
    return s;
}

static void creds_free(struct oa_cred *creds, size_t n)
{
    for (size_t i = 0; creds && i < n; i++) {
        if (creds[i].value)
            sodium_memzero(creds[i].value, strlen(creds[i].value));
        if (creds[i].query)
            sodium_memzero(creds[i].query, strlen(creds[i].query));
        if (creds[i].authorization)
            sodium_memzero(creds[i].authorization, strlen(creds[i].authorization));
        free(creds[i].value);
        free(creds[i].query);
        free(creds[i].authorization);
    }
    free(creds);
}

/* Percent-encode for a query component: RFC 3986 unreserved characters stay. */
static char *query_encode(const char *v)
{
    size_t n = strlen(v);
    char *out = malloc(3 * n + 1), *o = out;
    if (out == NULL)
        return NULL;
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        if (isalnum(*p) || strchr("-._~", *p))
            *o++ = (char)*p;
        else
            o += sprintf(o, "%%%02X", *p);
    }
    *o = '\0';
    return out;
}

/* Read a credential's value (the first line of an owner-only file, or a variable). The value is
   never put in `why`. On the pool thread. */
static int cred_read(const struct config_server *srv, const struct config_credential *cc,
                     char **out, char *why, size_t whysz)
{
    char buf[8192];
    size_t n = 0;
    if (cc->env) {
        const char *v = getenv(cc->env);
        if (v == NULL || v[0] == '\0') {
            snprintf(why, whysz, "credential %s of server %s: the environment variable %s is %s",
                     cc->scheme, srv->name, cc->env, v ? "empty" : "not set");
            return ERR_INVAL;
        }
        n = strlen(v);
        if (n >= sizeof(buf)) {
            snprintf(why, whysz,
                     "credential %s of server %s: the environment variable %s holds %zu bytes; "
                     "expected at most %zu",
                     cc->scheme, srv->name, cc->env, n, sizeof(buf) - 1);
            return ERR_LIMIT;
        }
        memcpy(buf, v, n + 1);
    } else {
        int fd = open(cc->file, O_RDONLY | O_CLOEXEC);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) != 0) {
            snprintf(why, whysz, "credential %s of server %s: cannot read %s: %s", cc->scheme,
                     srv->name, cc->file, strerror(errno));
            if (fd >= 0)
                close(fd);
            return ERR_IO;
        }
        if (!S_ISREG(st.st_mode) || (st.st_mode & 077) != 0) {
            snprintf(why, whysz,
                     "credential %s of server %s: %s is %s (mode %04o); expected a regular file "
                     "only its owner can read or write (chmod 600)",
                     cc->scheme, srv->name, cc->file,
                     S_ISREG(st.st_mode) ? "open to others" : "not a regular file",
                     (unsigned)(st.st_mode & 07777));
            close(fd);
            return ERR_DENIED;
        }
        ssize_t r;
        while (n < sizeof(buf) - 1 && (r = read(fd, buf + n, sizeof(buf) - 1 - n)) > 0)
            n += (size_t)r;
        close(fd);
        buf[n] = '\0';
        n = strcspn(buf, "\r\n");
        buf[n] = '\0';
        if (n == 0) {
            sodium_memzero(buf, sizeof(buf));
            snprintf(why, whysz, "credential %s of server %s: the first line of %s is empty",
                     cc->scheme, srv->name, cc->file);
            return ERR_INVAL;
        }
    }
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)buf[i] < 0x20 || buf[i] == 0x7f) {
            sodium_memzero(buf, sizeof(buf));
            snprintf(why, whysz,
                     "credential %s of server %s: the value holds a control character (byte %zu); "
                     "expected printable text",
                     cc->scheme, srv->name, i + 1);
            return ERR_INVAL;
        }
    *out = strdup(buf);
    sodium_memzero(buf, sizeof(buf));
    return *out ? 0 : ERR_NOMEM;
}

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static bool header_configured(const struct config_server *srv, const char *name);

/* Which kind of credential a scheme takes from `credentials:`, or NULL when it takes none. */
static const char *cred_kind(const struct openapi_security_scheme *sc)
{
    switch (sc->type) {
    case OPENAPI_SCHEME_API_KEY:
        return "apiKey";
    case OPENAPI_SCHEME_OAUTH2:
    case OPENAPI_SCHEME_OPENID:
        return "bearer";
    case OPENAPI_SCHEME_HTTP:
        if (sc->http_scheme && strcasecmp(sc->http_scheme, "bearer") == 0)
            return "bearer";
        if (sc->http_scheme && strcasecmp(sc->http_scheme, "basic") == 0)
            return "basic";
        return NULL;
    default:
        return NULL;
    }
}

/* The Authorization header value of a bearer or basic credential (owned, wiped by the caller). */
static int cred_authorization(const struct config_server *srv, const struct config_credential *cc,
                              struct oa_cred *cr, char *why, size_t whysz)
{
    const char *kind = cred_kind(cr->scheme);
    if (strcmp(kind, "bearer") == 0)
        return (cr->authorization = fmt("Bearer %s", cr->value)) ? 0 : ERR_NOMEM;
    if (strchr(cr->value, ':') == NULL) {
        snprintf(why, whysz,
                 "credential %s of server %s: %s is an http basic scheme; expected the value "
                 "\"user:password\" (it holds no colon)",
                 cc->scheme, srv->name, cc->scheme);
        return ERR_INVAL;
    }
    size_t n = strlen(cr->value);
    size_t cap = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL);
    char *b64 = malloc(cap);
    if (b64 == NULL)
        return ERR_NOMEM;
    sodium_bin2base64(b64, cap, (const unsigned char *)cr->value, n,
                      sodium_base64_VARIANT_ORIGINAL);
    cr->authorization = fmt("Basic %s", b64);
    sodium_memzero(b64, cap);
    free(b64);
    return cr->authorization ? 0 : ERR_NOMEM;
}

/* Resolve srv->credentials against the document: each names one of its security schemes that
   takes a credential (cred_kind). A credential that goes in the Authorization header may not
   meet a configured Authorization header: the API would get two. */
static int creds_load(const struct config_server *srv, const struct openapi_doc *doc,
                      struct oa_cred **out, size_t *nout, char *why, size_t whysz)
{
    if (srv->ncredentials == 0)
        return 0;
    struct oa_cred *creds = calloc(srv->ncredentials, sizeof(*creds));
    if (creds == NULL)
        return ERR_NOMEM;
    int err = 0;
    for (size_t i = 0; err == 0 && i < srv->ncredentials; i++) {
        const struct config_credential *cc = &srv->credentials[i];
        for (size_t k = 0; k < doc->nschemes; k++)
            if (strcmp(doc->schemes[k].name, cc->scheme) == 0)
                creds[i].scheme = &doc->schemes[k];
        if (creds[i].scheme == NULL || cred_kind(creds[i].scheme) == NULL) {
            char list[400] = "";
            size_t o = 0;
            for (size_t k = 0; k < doc->nschemes && o < sizeof(list); k++)
                if (cred_kind(&doc->schemes[k]) != NULL)
                    o += (size_t)snprintf(list + o, sizeof(list) - o, "%s%s", o ? ", " : "",
                                          doc->schemes[k].name);
            snprintf(why, whysz,
                     "credential %s of server %s: the document has %s \"%s\"; expected the name "
                     "of one of its apiKey, http bearer or basic, OAuth 2 or OpenID Connect "
                     "security schemes (%s)",
                     cc->scheme, srv->name,
                     creds[i].scheme ? "a security scheme that takes no credential from the "
                                       "configuration (http digest, mutualTLS, ...):"
                                     : "no security scheme",
                     cc->scheme, list[0] ? list : "it has none");
            err = ERR_INVAL;
            break;
        }
        bool authz = creds[i].scheme->type != OPENAPI_SCHEME_API_KEY;
        if (authz && header_configured(srv, "Authorization")) {
            snprintf(why, whysz,
                     "credential %s of server %s: it goes in the Authorization header, which "
                     "the server's headers set already; keep one of the two",
                     cc->scheme, srv->name);
            err = ERR_INVAL;
            break;
        }
        if ((err = cred_read(srv, cc, &creds[i].value, why, whysz)) == 0 &&
            (creds[i].query = query_encode(creds[i].value)) == NULL)
            err = ERR_NOMEM;
        if (err == 0 && authz)
            err = cred_authorization(srv, cc, &creds[i], why, whysz);
    }
    if (err) {
        creds_free(creds, srv->ncredentials);
        return err;
    }
    *out = creds;
    *nout = srv->ncredentials;
    return 0;
}

static bool op_uses_scheme(const struct openapi_op *op, const char *scheme)
{
    size_t i;
    json_t *req;
    json_array_foreach(op->security, i, req)
    {
        if (json_object_get(req, scheme) != NULL)
            return true;
    }
    return false;
}

/* ---- results --------------------------------------------------------------------------------- */

static bool media_is_json(const char *ct)
{
    if (ct == NULL)
        return false;
    size_t n = strcspn(ct, ";");
    while (n > 0 && isspace((unsigned char)ct[n - 1]))
        n--;
    if (n == 16 && strncasecmp(ct, "application/json", 16) == 0)
        return true;
    return n > 5 && strncasecmp(ct + n - 5, "+json", 5) == 0;
}

static bool media_is_text(const char *ct)
{
    if (ct == NULL)
        return false;
    return strncasecmp(ct, "text/", 5) == 0 || strstr(ct, "xml") != NULL ||
           strstr(ct, "javascript") != NULL || strstr(ct, "x-www-form-urlencoded") != NULL ||
           media_is_json(ct);
}

/* Length of the longest prefix of s[0..len) that is at most max bytes and does not cut a UTF-8
   sequence. */
static size_t utf8_cut(const char *s, size_t len, size_t max)
{
    if (len <= max)
        return len;
    size_t n = max;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
        n--;
    return n;
}

/* Text of at most `max` bytes of s, with an explicit marker when cut. Control bytes other than
   newline and tab become spaces (a body is untrusted). */
static char *trimmed(const char *s, size_t len, size_t max)
{
    size_t n = utf8_cut(s, len, max);
    struct buf b;
    buf_init(&b, n + 128);
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (((unsigned char)ch < 0x20 && ch != '\n' && ch != '\t') || ch == 0x7F)
            ch = ' ';
        buf_append(&b, &ch, 1);
    }
    if (n < len)
        buf_printf(&b, "\n[truncated by gatehouse: %zu of %zu bytes shown]", n, len);
    return b.data ? b.data : strdup("");
}

/* Length of the well-formed UTF-8 sequence at s[0..len) (RFC 3629: no overlong forms, no
   surrogates, nothing above U+10FFFF), or 0 when it is not one. */
static size_t utf8_seq(const unsigned char *s, size_t len)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t n;
    unsigned char lo = 0x80, hi = 0xBF; /* bounds of the second byte */
    if (c >= 0xC2 && c <= 0xDF)
        n = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        lo = c == 0xE0 ? 0xA0 : 0x80;
        hi = c == 0xED ? 0x9F : 0xBF;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        lo = c == 0xF0 ? 0x90 : 0x80;
        hi = c == 0xF4 ? 0x8F : 0xBF;
    } else
        return 0;
    if (len < n || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    return n;
}

/* Text a JSON string can hold: each ill-formed sequence of s (a REST API may send any bytes
   under any Content-Type) becomes U+FFFD, one per maximal bad run of bytes, and a note counts
   them. Frees s; returns s itself when it is well-formed, NULL when memory is short. */
static char *utf8_fix(char *s)
{
    if (s == NULL)
        return NULL;
    size_t len = strlen(s), bad = 0;
    for (size_t i = 0, n; i < len; i += n)
        if ((n = utf8_seq((const unsigned char *)s + i, len - i)) == 0) {
            bad++;
            n = 1;
        }
    if (bad == 0)
        return s;
    struct buf b;
    buf_init(&b, len * 3 + 128);
    size_t runs = 0;
    bool in_bad = false;
    for (size_t i = 0, n; i < len; i += n) {
        n = utf8_seq((const unsigned char *)s + i, len - i);
        if (n == 0) {
            n = 1;
            if (!in_bad) {
                buf_append_str(&b, "\xEF\xBF\xBD");
                runs++;
            }
            in_bad = true;
            continue;
        }
        in_bad = false;
        buf_append(&b, s + i, n);
    }
    buf_printf(&b, "\n[gatehouse: %zu bytes that were not UTF-8 shown as U+FFFD in %zu places]",
               bad, runs);
    free(s);
    return b.data; /* NULL only when memory is short */
}

static json_t *tool_result(char *text, bool is_error, json_t *structured) /* frees text */
{
    text = utf8_fix(text);
    json_t *r = json_pack("{s:[{s:s, s:s}]}", "content", "type", "text", "text", text ? text : "");
    free(text);
    if (r == NULL) {
        json_decref(structured);
        return NULL;
    }
    if (is_error)
        json_object_set_new(r, "isError", json_true());
    if (structured)
        json_object_set_new(r, "structuredContent", structured);
    return r;
}

static char *fmt(const char *f, ...)
{
    char *s = NULL;
    va_list ap;
    va_start(ap, f);
    if (vasprintf(&s, f, ap) < 0)
        s = NULL;
    va_end(ap);
    return s;
}

/* The tool result for a completed HTTP exchange. */
static json_t *http_result(struct oa_call *c, long status, const char *ct)
{
    const char *data = c->body.data ? c->body.data : "";
    size_t len = c->body.len;
    bool hit = false;
    json_t *v = NULL;
    if (len > 0 && media_is_json(ct))
        v = json_loadb(data, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);

    if (status < 200 || status > 299) {
        char *body = NULL;
        if (v) {
            char *compact = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
            body = compact ? trimmed(compact, strlen(compact), OA_ERROR_BODY_MAX) : NULL;
            free(compact);
        } else if (len > 0 && (ct == NULL || media_is_text(ct))) {
            body = trimmed(data, len, OA_ERROR_BODY_MAX);
        } else if (len > 0) {
            body = fmt("%zu bytes of %s, not shown", len, ct);
        }
        char *text = fmt("HTTP %ld from %s (tool %s)%s%s", status, c->host, c->tool,
                         body ? ": " : "", body ? body : "");
        free(body);
        json_decref(v);
        return tool_result(scrub(c->t, text, &hit), true, NULL);
    }
    if (len == 0) {
        return tool_result(fmt("HTTP %ld, no content", status), false, NULL);
    }
    if (v) {
        /* what the model reads: the projection (fields, defaults, array cap), then the cap */
        struct openapi_projection_stats ps;
        json_t *pv = openapi_response_project(c->t->cat, c->op_tool, v, &ps);
        json_decref(v);
        if ((v = pv) == NULL)
            return NULL;
        char *note = openapi_projection_note(&ps);
        char *compact = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        size_t clen = compact ? strlen(compact) : 0;
        char *text = compact ? trimmed(compact, clen, OA_RESULT_MAX) : NULL;
        bool cut = clen > OA_RESULT_MAX;
        free(compact);
        if (note && text) {
            char *both = fmt("%s\n%s", text, note);
            free(text);
            text = both;
        }
        free(note);
        text = scrub(c->t, text, &hit);
        /* structuredContent only when the model sees the same, whole and unredacted */
        json_t *structured = json_is_object(v) && !cut && !hit ? json_incref(v) : NULL;
        json_decref(v);
        return tool_result(text, false, structured);
    }
    if (media_is_text(ct)) {
        char *preview = trimmed(data, len, OA_PREVIEW_MAX);
        char *text = fmt("HTTP %ld, %s, %zu bytes:\n%s", status, ct ? ct : "no Content-Type", len,
                         preview ? preview : "");
        free(preview);
        return tool_result(scrub(c->t, text, &hit), false, NULL);
    }
    return tool_result(fmt("HTTP %ld, %s, %zu bytes (binary content not shown)", status,
                           ct ? ct : "no Content-Type", len),
                       false, NULL);
}

/* ---- calls ----------------------------------------------------------------------------------- */

static void call_timer_closed(uv_handle_t *h);

/* Out of the books and freed (the memory goes when the timer has closed). No answer. */
static void call_free(struct oa_call *c)
{
    struct oa_transport *t = c->t;
    if (c->prev)
        c->prev->next = c->next;
    else
        t->calls = c->next;
    if (c->next)
        c->next->prev = c->prev;
    t->ncalls--;
    if (c->easy) {
        if (t->cl.multi)
            curl_multi_remove_handle(t->cl.multi, c->easy);
        curl_easy_cleanup(c->easy);
        c->easy = NULL;
    }
    curl_slist_free_all(c->headers);
    c->headers = NULL;
    openapi_request_release(&c->req);
    buf_release(&c->body);
    json_decref(c->id);
    c->id = NULL;
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, call_timer_closed);
}

static void call_answer(struct oa_call *c, json_t *result)
{
    if (result == NULL)
        post(c->t, error_msg(c->id, -32603, "out of memory building the tool result"));
    else
        post(c->t, result_msg(c->id, result));
    call_free(c);
}

static void call_timer_cb(uv_timer_t *h)
{
    struct oa_call *c = h->data;
    const struct config_timeouts *to = &c->t->srv->timeouts;
    char *text = c->first_byte
                     ? fmt("%s sent nothing for %u ms (timeouts.idle; tool %s)", c->host,
                           (unsigned)to->idle_ms, c->tool)
                     : fmt("no answer from %s within %u ms (timeouts.first_byte; tool %s)", c->host,
                           (unsigned)to->first_byte_ms, c->tool);
    call_answer(c, tool_result(text, true, NULL));
}

static void call_arm(struct oa_call *c)
{
    const struct config_timeouts *to = &c->t->srv->timeouts;
    uint32_t ms = c->first_byte ? to->idle_ms : to->first_byte_ms;
    if (ms)
        uv_timer_start(&c->timer, call_timer_cb, ms, 0);
}

static size_t header_cb(char *b, size_t size, size_t n, void *ud)
{
    struct oa_call *c = ud;
    if (!c->first_byte) {
        c->first_byte = true;
        call_arm(c);
    }
    return size * n;
}

static size_t write_cb(char *p, size_t size, size_t n, void *ud)
{
    struct oa_call *c = ud;
    size_t len = size * n;
    c->first_byte = true;
    call_arm(c);
    if (buf_append(&c->body, p, len) != 0) {
        c->too_big = true;
        return 0; /* abort the transfer */
    }
    return len;
}

/* host[:port] of an absolute URL, without user info. */
static void url_host(const char *url, char *out, size_t outsz)
{
    const char *h = strstr(url, "://");
    h = h ? h + 3 : url;
    size_t n = strcspn(h, "/?#");
    const char *at = memchr(h, '@', n);
    if (at) {
        n -= (size_t)(at + 1 - h);
        h = at + 1;
    }
    if (n >= outsz)
        n = outsz - 1;
    memcpy(out, h, n);
    out[n] = '\0';
}

static bool header_configured(const struct config_server *srv, const char *name)
{
    for (size_t i = 0; i < srv->nheaders; i++)
        if (strcasecmp(srv->headers[i].key, name) == 0)
            return true;
    return false;
}

static int add_header(struct curl_slist **h, const char *name, const char *value)
{
    char *line = value[0] ? fmt("%s: %s", name, value) : fmt("%s;", name); /* curl's empty value */
    if (line == NULL)
        return ERR_NOMEM;
    struct curl_slist *nh = curl_slist_append(*h, line);
    free(line);
    if (nh == NULL)
        return ERR_NOMEM;
    *h = nh;
    return 0;
}

/* A header or cookie value the request can carry as it is: visible ASCII, space and tab. */
static bool value_plain(const struct outbound_entry *e)
{
    for (size_t k = 0; k < e->value_len; k++)
        if (((unsigned char)e->value[k] < 0x20 && e->value[k] != '\t') ||
            (unsigned char)e->value[k] > 0x7E)
            return false;
    return true;
}

/* Start the HTTP request of a built call, with what the gateway adds to it (`out`, may be NULL:
   query parameters on the URL, headers after the configured ones, cookies joined with the
   others). On error the call is still the caller's to answer. */
static int call_start(struct oa_call *c, const struct outbound *out, char *why, size_t whysz)
{
    struct oa_transport *t = c->t;
    const struct config_server *srv = t->srv;
    const struct config_timeouts *to = &srv->timeouts;
    int err = ERR_NOMEM;
    struct buf cookie; /* the Cookie header when a credential goes in one; wiped */
    buf_init(&cookie, 64 * 1024);
    if (strncasecmp(c->req.url, "http://", 7) != 0 && strncasecmp(c->req.url, "https://", 8) != 0) {
        snprintf(why, whysz,
                 "the API of server %s has no absolute http(s) base URL (the document says "
                 "\"%.100s\"); set base_url in the configuration",
                 srv_name(t), t->cat->base_url);
        err = ERR_INVAL;
        goto out;
    }
    /* The credentials the operation's security names, where their schemes say: a query one on
       the URL, header ones as headers, cookie ones joined with the document's cookies. */
    const struct openapi_op *op = c->op_tool->op;
    bool cred_header[64] = {false};
    int authz_cred = -1;
    for (size_t i = 0; i < t->ncreds; i++) {
        const struct oa_cred *cr = &t->creds[i];
        if (!op_uses_scheme(op, cr->scheme->name))
            continue;
        if (cr->authorization) {
            /* one Authorization header: the first configured scheme the operation names */
            if (authz_cred < 0)
                authz_cred = (int)i;
        } else if (cr->scheme->in == OPENAPI_IN_QUERY) {
            char *name = query_encode(cr->scheme->param_name);
            char *url = name ? fmt("%s%c%s=%s", c->req.url, strchr(c->req.url, '?') ? '&' : '?',
                                   name, cr->query)
                             : NULL;
            free(name);
            if (url == NULL)
                goto out;
            free(c->req.url);
            c->req.url = url;
        } else if (cr->scheme->in == OPENAPI_IN_COOKIE) {
            buf_append_str(&cookie, cookie.len ? "; " : "");
            buf_append_str(&cookie, cr->scheme->param_name);
            buf_append_str(&cookie, "=");
            buf_append_str(&cookie, cr->value);
        } else if (i < sizeof(cred_header) / sizeof(*cred_header)) {
            cred_header[i] = true;
        }
    }
    /* The document's headers, then the configured ones (which win over a same-named one). */
    for (size_t i = 0; i < c->req.nheaders; i++) {
        const char *name = c->req.headers[i].name;
        if (header_configured(srv, name))
            continue;
        if (cookie.len && strcasecmp(name, "Cookie") == 0) {
            buf_append_str(&cookie, "; ");
            buf_append_str(&cookie, c->req.headers[i].value);
            continue;
        }
        if ((err = add_header(&c->headers, name, c->req.headers[i].value)))
            goto out;
    }
    for (size_t i = 0; i < srv->nheaders; i++)
        if ((err = add_header(&c->headers, srv->headers[i].key, srv->headers[i].value)))
            goto out;
    for (size_t i = 0; i < t->ncreds && i < sizeof(cred_header) / sizeof(*cred_header); i++)
        if (cred_header[i] &&
            (err = add_header(&c->headers, t->creds[i].scheme->param_name, t->creds[i].value)))
            goto out;
    if (authz_cred >= 0 &&
        (err = add_header(&c->headers, "Authorization", t->creds[authz_cred].authorization)))
        goto out;
    for (size_t i = 0; out != NULL && i < out->n; i++) {
        const struct outbound_entry *e = &out->v[i];
        if (e->where == OUTBOUND_ENV || (e->flags & OUTBOUND_MODERN_ONLY))
            continue; /* a process's matter; a 2026-07-28 MCP server's headers */
        if (e->where != OUTBOUND_QUERY && !value_plain(e)) {
            snprintf(why, whysz, "the gateway's %s %s for %s cannot be sent as it is",
                     e->where == OUTBOUND_HEADER ? "header" : "cookie", e->name, c->host);
            err = ERR_INVAL;
            goto out;
        }
        if (e->where == OUTBOUND_HEADER) {
            if ((err = add_header(&c->headers, e->name, e->value)))
                goto out;
        } else if (e->where == OUTBOUND_COOKIE) {
            buf_append_str(&cookie, cookie.len ? "; " : "");
            buf_append_str(&cookie, e->name);
            buf_append_str(&cookie, "=");
            buf_append_str(&cookie, e->value);
        } else {
            char *name = query_encode(e->name), *value = query_encode(e->value);
            char *url = name && value ? fmt("%s%c%s=%s", c->req.url,
                                            strchr(c->req.url, '?') ? '&' : '?', name, value)
                                      : NULL;
            free(name);
            free(value);
            if (url == NULL)
                goto out;
            free(c->req.url);
            c->req.url = url;
        }
    }
    if (cookie.len && (err = add_header(&c->headers, "Cookie", cookie.data)))
        goto out;
    err = ERR_NOMEM;
    struct curl_slist *nh = curl_slist_append(c->headers, "Expect:"); /* no 100-continue wait */
    if (nh == NULL)
        goto out;
    c->headers = nh;
    /* A POST without a body: no Content-Type (libcurl would claim a form). */
    if (c->req.body == NULL) {
        if ((nh = curl_slist_append(c->headers, "Content-Type:")) == NULL)
            goto out;
        c->headers = nh;
    }
    if ((c->easy = curl_easy_init()) == NULL)
        goto out;
    CURL *e = c->easy;
    CURLcode cc = CURLE_OK;
#define SETOPT(opt, val)                                                                           \
    do {                                                                                           \
        if (cc == CURLE_OK)                                                                        \
            cc = curl_easy_setopt(e, opt, val);                                                    \
    } while (0)
    SETOPT(CURLOPT_URL, c->req.url);
    SETOPT(CURLOPT_PRIVATE, c);
    SETOPT(CURLOPT_ERRORBUFFER, c->errbuf);
    SETOPT(CURLOPT_HTTPHEADER, c->headers);
    SETOPT(CURLOPT_HEADERFUNCTION, header_cb);
    SETOPT(CURLOPT_HEADERDATA, c);
    SETOPT(CURLOPT_WRITEFUNCTION, write_cb);
    SETOPT(CURLOPT_WRITEDATA, c);
    if (cc == CURLE_OK)
        cc = curl_loop_easy_defaults(e);
    if (to->connect_ms)
        SETOPT(CURLOPT_CONNECTTIMEOUT_MS, (long)to->connect_ms);
    if (to->total_ms)
        SETOPT(CURLOPT_TIMEOUT_MS, (long)to->total_ms);
    if (strcmp(c->req.method, "GET") == 0 && c->req.body == NULL) {
        SETOPT(CURLOPT_HTTPGET, 1L);
    } else if (strcmp(c->req.method, "HEAD") == 0) {
        SETOPT(CURLOPT_NOBODY, 1L);
    } else {
        if (strcmp(c->req.method, "POST") != 0)
            SETOPT(CURLOPT_CUSTOMREQUEST, c->req.method);
        if (c->req.body || strcmp(c->req.method, "POST") == 0) {
            SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)c->req.body_len);
            SETOPT(CURLOPT_POSTFIELDS, c->req.body ? c->req.body : "");
        }
    }
#undef SETOPT
    if (cc != CURLE_OK) {
        snprintf(why, whysz, "cannot prepare the request to %s: %s", c->host,
                 curl_easy_strerror(cc));
        err = ERR_INTERNAL;
        goto out;
    }
    call_arm(c);
    if (curl_multi_add_handle(t->cl.multi, e) != CURLM_OK) {
        snprintf(why, whysz, "cannot start the request to %s", c->host);
        err = ERR_INTERNAL;
        goto out;
    }
    err = 0;
out:
    if (cookie.data)
        sodium_memzero(cookie.data, cookie.len);
    buf_release(&cookie);
    if (err == ERR_NOMEM)
        snprintf(why, whysz, "out of memory preparing the request to %s", c->host);
    return err;
}

/* A transfer ended (in the multi's info queue). */
static void call_done(struct oa_call *c, CURLcode cc)
{
    const struct config_server *srv = c->t->srv;
    long status = 0;
    char *ct = NULL;
    curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(c->easy, CURLINFO_CONTENT_TYPE, &ct);
    bool hit = false;
    char *text = NULL;
    if (c->too_big) {
        text = fmt("the response from %s exceeds max_message (%zu bytes; tool %s)", c->host,
                   c->body.max, c->tool);
    } else if (cc == CURLE_OPERATION_TIMEDOUT) {
        text = status == 0 && !c->first_byte
                   ? fmt("could not connect to %s within %u ms (timeouts.connect; tool %s): %s",
                         c->host, (unsigned)srv->timeouts.connect_ms, c->tool,
                         c->errbuf[0] ? c->errbuf : curl_easy_strerror(cc))
                   : fmt("%s did not complete the response within %u ms (timeouts.total; tool %s)",
                         c->host, (unsigned)srv->timeouts.total_ms, c->tool);
    } else if (cc == CURLE_OUT_OF_MEMORY) {
        /* libcurl's name for a request line or header past its own 1 MiB buffer, too */
        text = fmt("libcurl could not build the request to %s (tool %s): a header or the request "
                   "line is too long for it, or memory is short",
                   c->host, c->tool);
    } else if (cc != CURLE_OK) {
        text = fmt("could not reach %s (tool %s): %s", c->host, c->tool,
                   c->errbuf[0] ? c->errbuf : curl_easy_strerror(cc));
    }
    if (text) {
        call_answer(c, tool_result(scrub(c->t, text, &hit), true, NULL));
        return;
    }
    /* `ct` lives in the easy handle, which call_answer frees: build the result first. */
    json_t *r = http_result(c, status, ct);
    call_answer(c, r);
}

static void check_multi_info(struct oa_transport *t)
{
    CURLMsg *m;
    int left;
    while (t->cl.multi && (m = curl_multi_info_read(t->cl.multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE)
            continue;
        char *priv = NULL;
        CURLcode cc = m->data.result;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &priv);
        if (priv)
            call_done((struct oa_call *)priv, cc);
    }
}

/* ---- call timers and the curl loop's callbacks ----------------------------------------------- */

static void handle_gone(struct oa_transport *t);

static void call_timer_closed(uv_handle_t *h)
{
    struct oa_call *c = h->data;
    struct oa_transport *t = c->t;
    free(c);
    handle_gone(t);
}

/* The curl loop's callbacks (src/upstream/curl_loop.h). */
static void curl_progress_cb(void *owner)
{
    check_multi_info(owner);
}

static void curl_closed_cb(void *owner)
{
    handle_gone(owner);
}

/* ---- loading (thread pool) ------------------------------------------------------------------- */

static enum openapi_discovery_mode discovery_mode(enum config_discovery d)
{
    switch (d) {
    case DISCOVERY_HIERARCHICAL:
        return OPENAPI_DISCOVERY_HIERARCHICAL;
    case DISCOVERY_SEARCH:
        return OPENAPI_DISCOVERY_SEARCH;
    case DISCOVERY_STATIC:
        break;
    }
    return OPENAPI_DISCOVERY_STATIC;
}

static void load_work_cb(uv_work_t *w)
{
    struct oa_transport *t = w->data;
    const struct config_server *srv = t->srv;
    struct err_info ei = {0};
    struct openapi_doc *doc = NULL;
    struct openapi_editorial *ed = NULL;
    const char *file = srv->spec;
    int err = openapi_doc_load_overlaid(srv->spec, (const char *const *)srv->overlays,
                                        srv->noverlays, &doc, &ei);
    if (err == 0 && srv->overrides) {
        file = srv->overrides;
        err = openapi_editorial_load_file(srv->overrides, &ed, &ei);
    }
    if (err == 0)
        err = openapi_catalog_build(doc, ed, &t->loaded, &ei);
    if (err == 0 && srv->base_url)
        err = openapi_catalog_set_base_url(t->loaded, srv->base_url);
    /* every mode (a user may pick any): the categories and the search index built here, off the
       loop */
    for (int m = 0; err == 0 && m < OA_NMODES; m++)
        err = openapi_discovery_new(t->loaded, (enum openapi_discovery_mode)m, &t->loaded_disc[m]);
    bool cred_err = false;
    if (err == 0 && (err = creds_load(srv, t->loaded->doc, &t->creds, &t->ncreds, t->load_why,
                                      sizeof(t->load_why))) != 0)
        cred_err = true; /* load_why says which credential and why */
    if (err) {
        if (!cred_err)
            snprintf(t->load_why, sizeof(t->load_why),
                     "cannot load the OpenAPI %s %.200s: %s%s%s%s",
                     file == srv->spec ? "document" : "overrides", file,
                     ei.msg[0] ? ei.msg : err_str(err), ei.where[0] ? " (at " : "", ei.where,
                     ei.where[0] ? ")" : "");
        openapi_catalog_unref(t->loaded);
        t->loaded = NULL;
    }
    t->load_err = err;
    openapi_editorial_free(ed);
    openapi_doc_unref(doc);
}

/* The tools of every mode, each once, tagged with its modes in _meta "gatehouse/modes". A name
   in two modes (call_operation) moves to the end, so that each mode's tools keep their order. */
static json_t *union_tools(const struct oa_transport *t)
{
    json_t *all = json_array();
    for (int m = 0; all && m < OA_NMODES; m++) {
        json_t *tools = openapi_discovery_tools(t->disc[m]);
        const char *mode = openapi_discovery_mode_str((enum openapi_discovery_mode)m);
        size_t i, k;
        json_t *tool, *seen;
        json_array_foreach(tools, i, tool)
        {
            const char *name = json_string_value(json_object_get(tool, "name"));
            json_t *modes = json_array();
            json_array_foreach(all, k, seen)
            {
                if (strcmp(json_string_value(json_object_get(seen, "name")), name) == 0) {
                    json_array_extend(
                        modes, json_object_get(json_object_get(seen, "_meta"), CONFIG_META_MODES));
                    json_array_remove(all, k);
                    break;
                }
            }
            json_t *copy = json_copy(tool);
            json_array_append_new(modes, json_string(mode));
            if (copy == NULL ||
                json_object_set_new(copy, "_meta", json_pack("{s:o}", CONFIG_META_MODES, modes)) !=
                    0 ||
                json_array_append_new(all, copy) != 0) {
                json_decref(all);
                all = NULL;
                break;
            }
        }
        json_decref(tools);
    }
    return all;
}

static void load_after_cb(uv_work_t *w, int status)
{
    struct oa_transport *t = w->data;
    t->loading = false;
    t->cat = t->loaded;
    t->loaded = NULL;
    memcpy(t->disc, t->loaded_disc, sizeof(t->disc));
    memset(t->loaded_disc, 0, sizeof(t->loaded_disc));
    if (t->closing) {
        handle_gone(t);
        return;
    }
    if (status != 0 && t->load_err == 0) {
        t->load_err = ERR_CANCELLED;
        snprintf(t->load_why, sizeof(t->load_why), "loading %s was cancelled", t->srv->spec);
    }
    if (t->load_err == 0) {
        t->tools = union_tools(t);
        if (t->tools == NULL) {
            t->load_err = ERR_NOMEM;
            snprintf(t->load_why, sizeof(t->load_why), "out of memory listing the tools of %s",
                     t->srv->spec);
        }
    }
    handle_gone(t); /* the load's share of open_handles */
    if (t->load_err) {
        set_state(t, TRANSPORT_STOPPED, t->load_why);
        return;
    }
    for (size_t i = 0; i < t->cat->doc->nwarnings; i++) /* overlay actions that did nothing */
        log_warn("openapi_overlay", "upstream %s: %s", srv_name(t), t->cat->doc->warnings[i]);
    char why[600];
    snprintf(why, sizeof(why), "%zu tools from %s (%zu operations, discovery %s), API at %s",
             t->cat->ntools, t->srv->spec, t->cat->doc->nops,
             config_discovery_str(config_discovery_effective(t->srv, t->cat->ntools)),
             t->cat->base_url[0] ? t->cat->base_url : "(none)");
    set_state(t, TRANSPORT_UP, why);
}

/* ---- requests from the gateway ------------------------------------------------------------- */

static json_t *answer_initialize(struct oa_transport *t, json_t *id, json_t *params)
{
    const char *want = json_string_value(json_object_get(params, "protocolVersion"));
    const char *version = oa_versions[0];
    for (int i = 0; want && oa_versions[i]; i++)
        if (strcmp(want, oa_versions[i]) == 0)
            version = oa_versions[i];
    const struct openapi_doc *doc = t->cat->doc;
    return result_msg(id, json_pack("{s:s, s:{s:{}}, s:{s:s, s:s}}", "protocolVersion", version,
                                    "capabilities", "tools", "serverInfo", "name",
                                    doc->title ? doc->title : srv_name(t), "version",
                                    doc->api_version ? doc->api_version : "0"));
}

static void start_call(struct oa_transport *t, json_t *id, json_t *params,
                       const struct outbound *out)
{
    const char *name = json_string_value(json_object_get(params, "name"));
    json_t *args = json_object_get(params, "arguments");
    json_t *meta = json_object_get(params, "_meta");
    const struct openapi_tool *tool = NULL;
    json_t *answer = NULL;
    char why[600];
    /* the user's mode and selection, from the gateway (which strips what a client sends) */
    int mode = openapi_discovery_mode_parse(
        json_string_value(json_object_get(meta, CONFIG_META_DISCOVERY)));
    if (mode < 0)
        mode = (int)discovery_mode(config_discovery_effective(t->srv, t->cat->ntools));
    json_t *sel = json_object_get(meta, CONFIG_META_SELECTION);
    int derr = openapi_discovery_call(t->disc[mode], name, args, json_is_array(sel) ? sel : NULL,
                                      &answer, &tool, &args);
    if (derr == ERR_NOTFOUND) {
        snprintf(why, sizeof(why), "unknown tool \"%.100s\" in server %s", name ? name : "",
                 srv_name(t));
        post(t, error_msg(id, -32602, why));
        return;
    }
    if (derr) {
        post(t, error_msg(id, -32603, "out of memory"));
        return;
    }
    if (answer) { /* a navigation tool of a lazy mode: nothing goes to the API */
        bool hit = false;
        json_t *item = json_array_get(json_object_get(answer, "content"), 0);
        const char *text = json_string_value(json_object_get(item, "text"));
        char *clean = text ? scrub(t, strdup(text), &hit) : NULL;
        if (hit && clean) /* a document that quotes the credential: never shown */
            json_object_set_new(item, "text", json_string(clean));
        free(clean);
        post(t, result_msg(id, answer));
        return;
    }
    if (args != NULL && !json_is_object(args)) {
        snprintf(why, sizeof(why), "the arguments of tool %s must be an object", tool->name);
        post(t, error_msg(id, -32602, why));
        return;
    }
    json_t *empty = args ? NULL : json_object();
    struct oa_call *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        json_decref(empty);
        post(t, error_msg(id, -32603, "out of memory"));
        return;
    }
    c->t = t;
    c->id = json_incref(id);
    c->op_tool = tool;
    snprintf(c->tool, sizeof(c->tool), "%s", tool->name);
    buf_init(&c->body, t->srv->max_message ? t->srv->max_message : (size_t)16 << 20);
    uv_timer_init(t->loop, &c->timer);
    c->timer.data = c;
    t->open_handles++;
    c->next = t->calls;
    if (t->calls)
        t->calls->prev = c;
    t->calls = c;
    t->ncalls++;

    struct err_info ei = {0};
    int err = openapi_request_build(t->cat, tool, args ? args : empty, &c->req, &ei);
    json_decref(empty);
    if (err) {
        /* A tool execution error, so that the model can correct its arguments. */
        call_answer(c, tool_result(fmt("invalid arguments for tool %s: %s", tool->name,
                                       ei.msg[0] ? ei.msg : err_str(err)),
                                   true, NULL));
        return;
    }
    size_t url_len = strlen(c->req.url);
    if (url_len > OA_URL_MAX) {
        /* libcurl would refuse it with "Out of memory" (its request buffer stops at 1 MiB), and
           servers refuse far shorter ones: say what is too long, send nothing. */
        call_answer(c, tool_result(fmt("invalid arguments for tool %s: the request URL would be "
                                       "%zu bytes, more than the gateway's limit of %u bytes "
                                       "(path and query parameters, encoded)",
                                       tool->name, url_len, (unsigned)OA_URL_MAX),
                                   true, NULL));
        return;
    }
    url_host(c->req.url, c->host, sizeof(c->host));
    if (call_start(c, out, why, sizeof(why)) != 0) {
        log_warn("upstream_openapi", "upstream %s: %s", srv_name(t), why);
        call_answer(c, tool_result(strdup(why), true, NULL));
        return;
    }
}

static void cancel_call(struct oa_transport *t, json_t *request_id)
{
    for (struct oa_call *c = t->calls; c; c = c->next) {
        if (json_equal(c->id, request_id)) {
            log_debug("upstream_openapi", "upstream %s: call of %s cancelled", srv_name(t),
                      c->tool);
            call_free(c);
            return;
        }
    }
}

static int oa_send(struct transport *base, json_t *msg, void *related, const struct outbound *out)
{
    struct oa_transport *t = (struct oa_transport *)base;
    if (t->closing)
        return ERR_CLOSED;
    const char *method = json_string_value(json_object_get(msg, "method"));
    json_t *id = json_object_get(msg, "id");
    json_t *params = json_object_get(msg, "params");
    if (method == NULL)
        return 0; /* an answer to a request of ours: we send none */
    if (id == NULL || json_is_null(id)) {
        if (strcmp(method, "notifications/cancelled") == 0)
            cancel_call(t, json_object_get(params, "requestId"));
        return 0;
    }
    if (t->state != TRANSPORT_UP || t->cat == NULL)
        return ERR_UNAVAILABLE;
    if (strcmp(method, "initialize") == 0) {
        post(t, answer_initialize(t, id, params));
    } else if (strcmp(method, "ping") == 0) {
        post(t, result_msg(id, json_object()));
    } else if (strcmp(method, "tools/list") == 0) {
        post(t, result_msg(id, json_pack("{s:O}", "tools", t->tools)));
    } else if (strcmp(method, "tools/call") == 0) {
        unsigned cap = t->srv->max_concurrency ? t->srv->max_concurrency : 64;
        if (t->ncalls >= cap * OA_QUEUE_FACTOR)
            return ERR_LIMIT;
        start_call(t, id, params, out);
    } else {
        char m[200];
        snprintf(m, sizeof(m), "method %.80s is not offered by the OpenAPI server %s", method,
                 srv_name(t));
        post(t, error_msg(id, -32601, m));
    }
    return 0;
}

/* ---- flush, close ---------------------------------------------------------------------------- */

static void close_now(struct oa_transport *t);

static void flush_cb(uv_timer_t *h)
{
    struct oa_transport *t = h->data;
    t->busy++;
    if (t->state_pending && !t->closing) {
        t->state_pending = false;
        if (t->cbs.state_cb)
            t->cbs.state_cb(t->cbs.owner, t->state, t->state_why);
    }
    while (!t->closing && json_array_size(t->outbox) > 0) {
        json_t *msg = json_incref(json_array_get(t->outbox, 0));
        json_array_remove(t->outbox, 0);
        if (t->cbs.message_cb)
            t->cbs.message_cb(t->cbs.owner, msg, NULL);
        json_decref(msg);
    }
    t->busy--;
    if (t->closing && !t->closed && t->busy == 0)
        close_now(t);
}

static void handle_gone(struct oa_transport *t)
{
    if (--t->open_handles > 0 || !t->closed)
        return;
    json_decref(t->outbox);
    json_decref(t->tools);
    for (int m = 0; m < OA_NMODES; m++) {
        openapi_discovery_free(t->disc[m]);
        openapi_discovery_free(t->loaded_disc[m]);
    }
    openapi_catalog_unref(t->cat);
    creds_free(t->creds, t->ncreds);
    free(t);
    transport_live_dec();
}

static void handle_closed(uv_handle_t *h)
{
    handle_gone(h->data);
}

static void close_now(struct oa_transport *t)
{
    t->closed = true;
    t->state = TRANSPORT_STOPPED;
    while (t->calls)
        call_free(t->calls);
    curl_loop_close(&t->cl); /* its closed_cb counts as one handle gone */
    json_array_clear(t->outbox);
    uv_close((uv_handle_t *)&t->flush_timer, handle_closed);
}

static void oa_close(struct transport *base)
{
    struct oa_transport *t = (struct oa_transport *)base;
    if (t->closing)
        return;
    t->closing = true; /* from here on, no callbacks */
    if (t->busy == 0)
        close_now(t);
}

static void oa_cancel(struct transport *base, void *related)
{
}

static void oa_set_protocol_version(struct transport *base, const char *version)
{
}

static void oa_reset_session(struct transport *base)
{
}

static int oa_listen(struct transport *base)
{
    return 0;
}

static enum transport_state oa_state(const struct transport *base)
{
    return ((const struct oa_transport *)base)->state;
}

static unsigned oa_restarts(const struct transport *base)
{
    return 0;
}

static const struct transport_ops oa_ops = {
    .send = oa_send,
    .cancel = oa_cancel,
    .set_protocol_version = oa_set_protocol_version,
    .reset_session = oa_reset_session,
    .listen = oa_listen,
    .state = oa_state,
    .restarts = oa_restarts,
    .close = oa_close,
};

struct transport *openapi_transport_new(uv_loop_t *loop, const struct config_server *srv,
                                        const struct transport_cbs *cbs)
{
    struct oa_transport *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    if ((t->outbox = json_array()) == NULL || curl_loop_init(&t->cl, loop, t) != 0) {
        json_decref(t->outbox);
        free(t);
        return NULL;
    }
    curl_loop_keep_connections(&t->cl, srv->max_concurrency ? (long)srv->max_concurrency : 64);
    t->cl.progress_cb = curl_progress_cb;
    t->cl.closed_cb = curl_closed_cb;
    t->base.ops = &oa_ops;
    t->loop = loop;
    t->srv = srv;
    t->cbs = *cbs;
    t->state = TRANSPORT_STARTING;
    uv_timer_init(loop, &t->flush_timer);
    t->flush_timer.data = t;
    t->open_handles = 2; /* the curl loop and flush_timer */
    unsigned cap = srv->max_concurrency ? srv->max_concurrency : 64;
    curl_multi_setopt(t->cl.multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)cap);

    t->work.data = t;
    t->loading = true;
    t->open_handles++; /* released by load_after_cb */
    if (uv_queue_work(loop, &t->work, load_work_cb, load_after_cb) != 0) {
        t->loading = false;
        t->open_handles--;
        set_state(t, TRANSPORT_STOPPED, "cannot queue the loading of the OpenAPI document");
    }
    transport_live_inc();
    return &t->base;
}
