/*
 * One-shot outbound requests with an address guard; see fetch.h. The guard sits in curl's
 * open-socket callback, which receives the address curl resolved and is about to connect to:
 * checking there (rather than resolving the name ourselves beforehand) leaves no window between
 * the check and the connection for a DNS answer to change.
 */
#include "upstream/fetch.h"
#include "core/buf.h"
#include "core/err.h"
#include "upstream/curl_loop.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define FETCH_DEFAULT_MAX (1u << 20)
#define FETCH_DEFAULT_TIMEOUT_MS 10000u

struct fetcher {
    struct curl_loop cl;
    struct fetch *list;
    bool freeing;
    STACK_OF(X509) * extra_ca; /* fetcher_trust: added to the system's trust store */
};

struct fetch {
    struct fetcher *owner;
    struct fetch *prev, *next;
    CURL *easy;
    struct curl_slist *headers;
    fetch_cb cb;
    void *arg;
    char *url;
    char *body;
    size_t body_len;
    bool post;
    bool allow_private;
    unsigned redirects_left;
    uint64_t deadline_ms;
    struct buf resp;
    long max_age;
    char content_type[128];
    char www_authenticate[1024];
    char denied[256]; /* set by the socket guard: why a connection was refused */
};

/* ---- which addresses are public ---- */

static bool v4_is_public(uint32_t a) /* host byte order */
{
    static const struct {
        uint32_t net, mask;
    } blocked[] = {
        {0x00000000, 0xff000000}, /* 0.0.0.0/8 "this network" */
        {0x0a000000, 0xff000000}, /* 10/8 private */
        {0x64400000, 0xffc00000}, /* 100.64/10 carrier-grade NAT */
        {0x7f000000, 0xff000000}, /* 127/8 loopback */
        {0xa9fe0000, 0xffff0000}, /* 169.254/16 link-local (cloud metadata lives here) */
        {0xac100000, 0xfff00000}, /* 172.16/12 private */
        {0xc0000000, 0xffffff00}, /* 192.0.0/24 protocol assignments */
        {0xc0000200, 0xffffff00}, /* 192.0.2/24 documentation */
        {0xc0586300, 0xffffff00}, /* 192.88.99/24 6to4 relay */
        {0xc0a80000, 0xffff0000}, /* 192.168/16 private */
        {0xc6120000, 0xfffe0000}, /* 198.18/15 benchmarking */
        {0xc6336400, 0xffffff00}, /* 198.51.100/24 documentation */
        {0xcb007100, 0xffffff00}, /* 203.0.113/24 documentation */
        {0xe0000000, 0xf0000000}, /* 224/4 multicast */
        {0xf0000000, 0xf0000000}, /* 240/4 reserved, and broadcast */
    };
    for (size_t i = 0; i < sizeof(blocked) / sizeof(blocked[0]); i++)
        if ((a & blocked[i].mask) == blocked[i].net)
            return false;
    return true;
}

bool fetch_address_is_public(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return v4_is_public(ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr));
    if (sa->sa_family != AF_INET6)
        return false;
    const uint8_t *b = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const uint8_t nat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
    static const uint8_t zero[12] = {0};
    if (memcmp(b, mapped, 12) == 0 || memcmp(b, nat64, 12) == 0 || memcmp(b, zero, 12) == 0) {
        /* ::ffff:a.b.c.d, 64:ff9b::a.b.c.d and the deprecated ::a.b.c.d (which covers :: and
           ::1, whose embedded "addresses" 0.0.0.0 and 0.0.0.1 are refused too) */
        uint32_t v4 = (uint32_t)b[12] << 24 | (uint32_t)b[13] << 16 | (uint32_t)b[14] << 8 | b[15];
        return v4_is_public(v4);
    }
    if ((b[0] & 0xfe) == 0xfc) /* fc00::/7 unique local */
        return false;
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) /* fe80::/10 link-local */
        return false;
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0) /* fec0::/10 site-local (deprecated) */
        return false;
    if (b[0] == 0xff) /* multicast */
        return false;
    if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8) /* 2001:db8::/32 docs */
        return false;
    if (b[0] == 0x01 && b[1] == 0 && b[2] == 0 && b[3] == 0 && b[4] == 0 && b[5] == 0 &&
        b[6] == 0 && b[7] == 0) /* 100::/64 discard */
        return false;
    if (b[0] == 0x20 && b[1] == 0x02) /* 2002::/16 6to4: judge the embedded IPv4 */
        return v4_is_public((uint32_t)b[2] << 24 | (uint32_t)b[3] << 16 | (uint32_t)b[4] << 8 |
                            b[5]);
    return true;
}

/* ---- curl callbacks ---- */

static curl_socket_t open_socket_cb(void *clientp, curlsocktype purpose, struct curl_sockaddr *addr)
{
    struct fetch *x = clientp;
    if (!x->allow_private && !fetch_address_is_public(&addr->addr)) {
        char host[INET6_ADDRSTRLEN] = "?";
        const void *a = addr->family == AF_INET6
                            ? (const void *)&((struct sockaddr_in6 *)&addr->addr)->sin6_addr
                            : (const void *)&((struct sockaddr_in *)&addr->addr)->sin_addr;
        inet_ntop(addr->family, a, host, sizeof(host));
        snprintf(x->denied, sizeof(x->denied),
                 "the address %s is not a public one (loopback, private, link-local or reserved "
                 "targets are refused)",
                 host);
        return CURL_SOCKET_BAD;
    }
    return socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
}

static size_t write_cb(char *p, size_t size, size_t n, void *arg)
{
    struct fetch *x = arg;
    return buf_append(&x->resp, p, size * n) == 0 ? size * n : 0;
}

/* Header lines of the final response: Content-Type, WWW-Authenticate and Cache-Control. */
static size_t header_cb(char *p, size_t size, size_t n, void *arg)
{
    struct fetch *x = arg;
    size_t len = size * n;
    if (len > 13 && strncasecmp(p, "content-type:", 13) == 0) {
        const char *v = p + 13;
        size_t vl = len - 13;
        while (vl && (*v == ' ' || *v == '\t'))
            v++, vl--;
        while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
            vl--;
        if (vl >= sizeof(x->content_type))
            vl = sizeof(x->content_type) - 1;
        memcpy(x->content_type, v, vl);
        x->content_type[vl] = '\0';
    } else if (len > 17 && strncasecmp(p, "www-authenticate:", 17) == 0 &&
               x->www_authenticate[0] == '\0') {
        const char *v = p + 17;
        size_t vl = len - 17;
        while (vl && (*v == ' ' || *v == '\t'))
            v++, vl--;
        while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
            vl--;
        if (vl >= sizeof(x->www_authenticate))
            vl = sizeof(x->www_authenticate) - 1;
        memcpy(x->www_authenticate, v, vl);
        x->www_authenticate[vl] = '\0';
    } else if (len > 14 && strncasecmp(p, "cache-control:", 14) == 0) {
        char v[256];
        size_t vl = len - 14 < sizeof(v) - 1 ? len - 14 : sizeof(v) - 1;
        memcpy(v, p + 14, vl);
        v[vl] = '\0';
        for (char *c = v; *c; c++)
            *c = (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c);
        const char *m = strstr(v, "max-age=");
        if (strstr(v, "no-store") || strstr(v, "no-cache"))
            x->max_age = 0;
        else if (m)
            x->max_age = strtol(m + 8, NULL, 10);
    }
    return len;
}

/* ---- lifecycle ---- */

static uint64_t now_ms(const struct fetcher *f)
{
    return uv_now(f->cl.loop);
}

static void fetch_free(struct fetch *x)
{
    struct fetcher *f = x->owner;
    if (x->prev)
        x->prev->next = x->next;
    else
        f->list = x->next;
    if (x->next)
        x->next->prev = x->prev;
    if (x->easy) {
        if (f->cl.multi)
            curl_multi_remove_handle(f->cl.multi, x->easy);
        curl_easy_cleanup(x->easy);
    }
    curl_slist_free_all(x->headers);
    buf_release(&x->resp);
    free(x->url);
    free(x->body);
    free(x);
}

/* (Re)start the transfer at x->url with what is left of the deadline. */
static int fetch_launch(struct fetch *x)
{
    struct fetcher *f = x->owner;
    uint64_t now = now_ms(f);
    long left = x->deadline_ms > now ? (long)(x->deadline_ms - now) : 1;
    CURL *e = x->easy;
    buf_reset(&x->resp);
    x->content_type[0] = '\0';
    x->www_authenticate[0] = '\0';
    x->max_age = -1;
    x->denied[0] = '\0';
    if (curl_easy_setopt(e, CURLOPT_URL, x->url) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, left) != CURLE_OK)
        return ERR_INVAL;
    return curl_multi_add_handle(f->cl.multi, e) == CURLM_OK ? 0 : ERR_NOMEM;
}

static void finish(struct fetch *x, int err, const char *why)
{
    struct fetch_response r = {0};
    if (err == 0) {
        curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &r.status);
        r.body = x->resp.data ? x->resp.data : "";
        r.len = x->resp.len;
        r.content_type = x->content_type[0] ? x->content_type : NULL;
        r.max_age = x->max_age;
        r.url = x->url;
        r.www_authenticate = x->www_authenticate[0] ? x->www_authenticate : NULL;
    }
    fetch_cb cb = x->cb;
    void *arg = x->arg;
    /* The response lives in x: call first, free after (the callback must not cancel x). */
    x->cb = NULL;
    cb(arg, err, err == 0 ? &r : NULL, why);
    fetch_free(x);
}

static void done(struct fetch *x, CURLcode cc)
{
    struct fetcher *f = x->owner;
    char why[512];
    curl_multi_remove_handle(f->cl.multi, x->easy);
    if (cc != CURLE_OK) {
        int err = ERR_UNAVAILABLE;
        if (x->denied[0]) {
            err = ERR_DENIED;
            snprintf(why, sizeof(why), "%s", x->denied);
        } else if (cc == CURLE_WRITE_ERROR || cc == CURLE_FILESIZE_EXCEEDED) {
            err = ERR_LIMIT;
            snprintf(why, sizeof(why), "the response is larger than %zu bytes", x->resp.max);
        } else if (cc == CURLE_OPERATION_TIMEDOUT) {
            err = ERR_TIMEOUT;
            snprintf(why, sizeof(why), "no complete response in time");
        } else {
            snprintf(why, sizeof(why), "%s", curl_easy_strerror(cc));
        }
        finish(x, err, why);
        return;
    }
    long status = 0;
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
    const char *loc = NULL;
    if (status >= 300 && status < 400 && status != 304 &&
        curl_easy_getinfo(x->easy, CURLINFO_REDIRECT_URL, &loc) == CURLE_OK && loc != NULL) {
        if (x->post || x->redirects_left == 0) {
            snprintf(why, sizeof(why), "the server redirected (HTTP %ld) %s", status,
                     x->post ? "a POST" : "more times than allowed");
            finish(x, ERR_LIMIT, why);
            return;
        }
        char *next = strdup(loc);
        if (next == NULL) {
            finish(x, ERR_NOMEM, "out of memory");
            return;
        }
        free(x->url);
        x->url = next;
        x->redirects_left--;
        int err = fetch_launch(x);
        if (err)
            finish(x, err, "the redirect target could not be requested");
        return;
    }
    finish(x, 0, NULL);
}

static void progress_cb(void *owner)
{
    struct fetcher *f = owner;
    CURLMsg *m;
    int left;
    while (f->cl.multi && (m = curl_multi_info_read(f->cl.multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE)
            continue;
        struct fetch *x = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        if (x != NULL)
            done(x, m->data.result);
    }
}

static void closed_cb(void *owner)
{
    struct fetcher *f = owner;
    sk_X509_pop_free(f->extra_ca, X509_free);
    free(f);
}

int fetcher_trust(struct fetcher *f, const char *ca_file, struct err_info *ei)
{
    FILE *fp = fopen(ca_file, "re");
    if (fp == NULL)
        return err_info_set(ei, ERR_IO, 0, 0, "cannot read the CA file %s: %s", ca_file,
                            strerror(errno));
    STACK_OF(X509) *sk = sk_X509_new_null();
    X509 *x;
    while (sk != NULL && (x = PEM_read_X509(fp, NULL, NULL, NULL)) != NULL)
        if (sk_X509_push(sk, x) == 0)
            X509_free(x);
    ERR_clear_error(); /* the end of the file reads as an error */
    fclose(fp);
    if (sk == NULL)
        return ERR_NOMEM;
    if (sk_X509_num(sk) == 0) {
        sk_X509_free(sk);
        return err_info_set(ei, ERR_PARSE, 0, 0, "the CA file %s holds no PEM certificate",
                            ca_file);
    }
    sk_X509_pop_free(f->extra_ca, X509_free);
    f->extra_ca = sk;
    return 0;
}

/* curl's OpenSSL context for a new connection: add the extra CAs to the default trust store. */
static CURLcode ssl_ctx_cb(CURL *e, void *ssl_ctx, void *arg)
{
    (void)e;
    const struct fetcher *f = arg;
    X509_STORE *store = SSL_CTX_get_cert_store(ssl_ctx);
    for (int i = 0; i < sk_X509_num(f->extra_ca); i++)
        X509_STORE_add_cert(store, sk_X509_value(f->extra_ca, i)); /* a duplicate is harmless */
    ERR_clear_error();
    return CURLE_OK;
}

int fetcher_new(uv_loop_t *loop, struct fetcher **out)
{
    struct fetcher *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return ERR_NOMEM;
    int err = curl_loop_init(&f->cl, loop, f);
    if (err) {
        free(f);
        return err;
    }
    f->cl.progress_cb = progress_cb;
    f->cl.closed_cb = closed_cb;
    *out = f;
    return 0;
}

void fetcher_free(struct fetcher *f)
{
    if (f == NULL || f->freeing)
        return;
    f->freeing = true;
    while (f->list)
        fetch_free(f->list);
    curl_loop_close(&f->cl);
}

int fetch_start(struct fetcher *f, const struct fetch_request *req, fetch_cb cb, void *arg,
                struct fetch **handle)
{
    if (f->freeing || req->url == NULL ||
        (strncmp(req->url, "http://", 7) != 0 && strncmp(req->url, "https://", 8) != 0))
        return ERR_INVAL;
    bool post = req->method != NULL && strcmp(req->method, "POST") == 0;
    if (req->method != NULL && !post && strcmp(req->method, "GET") != 0)
        return ERR_INVAL;
    struct fetch *x = calloc(1, sizeof(*x));
    if (x == NULL)
        return ERR_NOMEM;
    int err = ERR_NOMEM;
    x->owner = f;
    x->cb = cb;
    x->arg = arg;
    x->post = post;
    x->allow_private = req->allow_private;
    x->redirects_left = req->max_redirects;
    x->deadline_ms = now_ms(f) + (req->timeout_ms ? req->timeout_ms : FETCH_DEFAULT_TIMEOUT_MS);
    buf_init(&x->resp, req->max_size ? req->max_size : FETCH_DEFAULT_MAX);
    x->next = f->list;
    if (f->list)
        f->list->prev = x;
    f->list = x;
    if ((x->url = strdup(req->url)) == NULL || (x->easy = curl_easy_init()) == NULL)
        goto fail;
    if (post && req->body_len > 0) {
        if ((x->body = malloc(req->body_len)) == NULL)
            goto fail;
        memcpy(x->body, req->body, req->body_len);
        x->body_len = req->body_len;
    }
    char line[1024];
    if (req->accept) {
        snprintf(line, sizeof(line), "Accept: %s", req->accept);
        struct curl_slist *h = curl_slist_append(x->headers, line);
        if (h == NULL)
            goto fail;
        x->headers = h;
    }
    if (post && req->content_type) {
        snprintf(line, sizeof(line), "Content-Type: %s", req->content_type);
        struct curl_slist *h = curl_slist_append(x->headers, line);
        if (h == NULL)
            goto fail;
        x->headers = h;
    }
    for (size_t i = 0; req->headers != NULL && req->headers[i] != NULL; i++) {
        struct curl_slist *h = curl_slist_append(x->headers, req->headers[i]);
        if (h == NULL)
            goto fail;
        x->headers = h;
    }
    if (req->authorization) {
        size_t n = strlen(req->authorization) + sizeof("Authorization: ");
        char *a = malloc(n);
        if (a == NULL)
            goto fail;
        snprintf(a, n, "Authorization: %s", req->authorization);
        struct curl_slist *h = curl_slist_append(x->headers, a);
        explicit_bzero(a, n);
        free(a);
        if (h == NULL)
            goto fail;
        x->headers = h;
    }
    CURL *e = x->easy;
    err = ERR_INVAL;
    if (curl_loop_easy_defaults(e) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_PRIVATE, x) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, open_socket_cb) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, x) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_WRITEDATA, x) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_HEADERDATA, x) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->headers) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)x->resp.max) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "") != CURLE_OK)
        goto fail;
    if (f->extra_ca != NULL &&
        (curl_easy_setopt(e, CURLOPT_SSL_CTX_FUNCTION, ssl_ctx_cb) != CURLE_OK ||
         curl_easy_setopt(e, CURLOPT_SSL_CTX_DATA, f) != CURLE_OK))
        goto fail;
    if (post &&
        (curl_easy_setopt(e, CURLOPT_POST, 1L) != CURLE_OK ||
         curl_easy_setopt(e, CURLOPT_POSTFIELDS, x->body ? x->body : "") != CURLE_OK ||
         curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)x->body_len) != CURLE_OK))
        goto fail;
    if ((err = fetch_launch(x)) != 0)
        goto fail;
    if (handle)
        *handle = x;
    return 0;
fail:
    fetch_free(x);
    return err;
}

void fetch_cancel(struct fetch *x)
{
    if (x != NULL && x->cb != NULL)
        fetch_free(x);
}

/* ---- WWW-Authenticate ---- */

/* Copy the value of parameter `name` of a WWW-Authenticate Bearer challenge into out. */
static bool wa_param(const char *h, const char *name, char *out, size_t size)
{
    size_t nl = strlen(name);
    const char *p = h;
    if (strncasecmp(p, "Bearer", 6) != 0 || (p[6] != ' ' && p[6] != '\0'))
        return false;
    p += 6;
    while (*p) {
        while (*p == ' ' || *p == ',' || *p == '\t')
            p++;
        const char *k = p;
        while (*p && *p != '=' && *p != ' ' && *p != ',')
            p++;
        size_t kl = (size_t)(p - k);
        if (*p != '=')
            continue;
        p++;
        char v[1024];
        size_t vl = 0;
        if (*p == '"') {
            for (p++; *p && *p != '"'; p++) {
                if (*p == '\\' && p[1])
                    p++;
                if (vl + 1 < sizeof(v))
                    v[vl++] = *p;
            }
            if (*p == '"')
                p++;
        } else {
            while (*p && *p != ',' && *p != ' ')
                if (vl + 1 < sizeof(v))
                    v[vl++] = *p++;
                else
                    p++;
        }
        v[vl] = '\0';
        if (kl == nl && strncasecmp(k, name, nl) == 0) {
            snprintf(out, size, "%s", v);
            return true;
        }
    }
    return false;
}

void fetch_bearer_challenge(const char *h, char *resource_metadata, size_t rm_size, char *scope,
                            size_t scope_size, char *error, size_t error_size)
{
    resource_metadata[0] = scope[0] = error[0] = '\0';
    if (h == NULL)
        return;
    wa_param(h, "resource_metadata", resource_metadata, rm_size);
    wa_param(h, "scope", scope, scope_size);
    wa_param(h, "error", error, error_size);
}
