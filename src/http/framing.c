/*
 * Strict HTTP/1.1 framing and the lingering close; see framing.h.
 *
 * The head parser is written for refusal, not for tolerance: one grammar (RFC 9112 §2-§6 and
 * RFC 9110 §5), every deviation a named refusal, so that whatever this parser accepts, any
 * other HTTP/1.1 parser on the path (a reverse proxy in front, h2o's picohttpparser behind)
 * reads the same request boundaries from it. The fuzz target fuzz/fuzz_framing.c checks the
 * second half of that claim against picohttpparser itself.
 */
#define H2O_USE_EPOLL 0
#include <h2o.h>

#include "http/framing.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

/* --- the head parser --- */

/* tchar (RFC 9110 §5.6.2): ALPHA, DIGIT and !#$%&'*+-.^_`|~ */
static const unsigned char tchar[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1,         ['&'] = 1,         ['\''] = 1,
    ['*'] = 1, ['+'] = 1, ['-'] = 1, ['.'] = 1,         ['^'] = 1,         ['_'] = 1,
    ['`'] = 1, ['|'] = 1, ['~'] = 1, ['0' ... '9'] = 1, ['A' ... 'Z'] = 1, ['a' ... 'z'] = 1,
};

static bool is_tchar(unsigned char c)
{
    return tchar[c] != 0;
}

/* A field value may hold HTAB, SP, VCHAR and obs-text (RFC 9110 §5.5). */
static bool is_field_vchar(unsigned char c)
{
    return c == '\t' || c == ' ' || (c >= 0x21 && c != 0x7f);
}

static bool name_is(const char *name, size_t len, const char *lit)
{
    return strlen(lit) == len && strncasecmp(name, lit, len) == 0;
}

/*
 * The line starting at buf[*pos]: sets *end to the index of its CR and moves *pos past its CRLF.
 * Refuses a bare LF, a bare CR and a NUL anywhere in the line; ERR_PARSE "incomplete" when the
 * line does not end within len.
 */
static int next_line(const char *buf, size_t len, size_t *pos, size_t *end, int lineno,
                     struct err_info *ei)
{
    const char *start = buf + *pos;
    const char *cr = memchr(start, '\r', len - *pos);
    size_t n = cr != NULL ? (size_t)(cr - start) : len - *pos;
    if (memchr(start, '\n', n) != NULL)
        return err_info_set(ei, ERR_PARSE, lineno, 0,
                            "line %d of the request head ends in a bare LF, not CRLF", lineno);
    if (memchr(start, '\0', n) != NULL)
        return err_info_set(ei, ERR_PARSE, lineno, 0,
                            "line %d of the request head holds a NUL byte", lineno);
    if (cr == NULL || *pos + n + 1 >= len)
        return err_info_set(ei, ERR_PARSE, lineno, 0, "the request head is incomplete");
    if (cr[1] != '\n')
        return err_info_set(ei, ERR_PARSE, lineno, 0, "line %d of the request head holds a bare CR",
                            lineno);
    *end = *pos + n;
    *pos += n + 2;
    return 0;
}

/* Splits an absolute http(s) URI; refuses one without a host or with userinfo. */
static int parse_absolute(const char *t, size_t n, struct framing_head *h, struct err_info *ei)
{
    size_t skip;
    if (n >= 7 && strncasecmp(t, "http://", 7) == 0) {
        skip = 7;
        h->https = false;
    } else {
        skip = 8; /* the caller saw "https://" */
        h->https = true;
    }
    size_t a = skip, e = skip;
    while (e < n && t[e] != '/' && t[e] != '?')
        e++;
    if (e == a)
        return err_info_set(ei, ERR_PARSE, 1, 0, "the absolute-form request target has no host");
    if (memchr(t + a, '@', e - a) != NULL)
        return err_info_set(ei, ERR_PARSE, 1, 0,
                            "the absolute-form request target carries userinfo (user@host)");
    h->absolute_form = true;
    h->authority = t + a;
    h->authority_len = e - a;
    h->path = e < n ? t + e : "/";
    h->path_len = e < n ? n - e : 1;
    return 0;
}

static int parse_request_line(const char *l, size_t n, struct framing_head *h, struct err_info *ei)
{
    size_t i = 0;
    while (i < n && is_tchar((unsigned char)l[i]))
        i++;
    if (i == 0 || i >= n || l[i] != ' ')
        return err_info_set(ei, ERR_PARSE, 1, 0,
                            "the request line is not \"METHOD SP target SP HTTP/1.x\"");
    size_t method_len = i;
    size_t t0 = ++i;
    while (i < n && (unsigned char)l[i] > 0x20 && (unsigned char)l[i] < 0x7f)
        i++;
    if (i == t0 || i >= n || l[i] != ' ')
        return err_info_set(ei, ERR_PARSE, 1, 0,
                            "the request target is empty or holds a byte that must be "
                            "percent-encoded (space, control or non-ASCII)");
    size_t tn = i - t0;
    const char *t = l + t0;
    i++;
    if (n - i != 8 || memcmp(l + i, "HTTP/1.", 7) != 0 || (l[i + 7] != '0' && l[i + 7] != '1'))
        return err_info_set(ei, ERR_PARSE, 1, 0,
                            "the request line does not end in HTTP/1.0 or HTTP/1.1");
    h->minor_version = l[i + 7] - '0';
    if (memchr(t, '#', tn) != NULL)
        return err_info_set(ei, ERR_PARSE, 1, 0, "the request target carries a fragment (#)");
    if (t[0] == '/')
        return 0;
    if ((tn >= 7 && strncasecmp(t, "http://", 7) == 0) ||
        (tn >= 8 && strncasecmp(t, "https://", 8) == 0))
        return parse_absolute(t, tn, h, ei);
    if (tn == 1 && t[0] == '*' && method_len == 7 && memcmp(l, "OPTIONS", 7) == 0)
        return 0;
    return err_info_set(ei, ERR_PARSE, 1, 0,
                        "the request target must be a path starting with / or an absolute "
                        "http(s) URI");
}

/* Content-Length = 1*DIGIT, read strictly: no sign, no list, no leading zero, at most 18 digits. */
static int parse_content_length(const char *v, size_t n, uint64_t *out, int line,
                                struct err_info *ei)
{
    if (n == 0 || n > 18 || (n > 1 && v[0] == '0'))
        goto bad;
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            goto bad;
        x = x * 10 + (uint64_t)(v[i] - '0');
    }
    *out = x;
    return 0;
bad:
    if (memchr(v, ',', n) != NULL)
        return err_info_set(ei, ERR_PARSE, line, 0,
                            "Content-Length is a list; it must be one decimal number");
    return err_info_set(ei, ERR_PARSE, line, 0,
                        "Content-Length is not a plain decimal number (digits only, no sign, "
                        "no leading zero)");
}

int framing_parse_head(const char *buf, size_t len, struct framing_head *out, struct err_info *ei)
{
    struct framing_head h = {0};
    size_t pos = 0, end = 0;
    int err = next_line(buf, len, &pos, &end, 1, ei);
    if (err)
        return err;
    if ((err = parse_request_line(buf, end, &h, ei)) != 0)
        return err;
    unsigned n_cl = 0, n_te = 0, n_host = 0;
    int cl_line = 0;
    const char *te = NULL, *cl = NULL;
    size_t te_len = 0, cl_len = 0;
    for (int lineno = 2;; lineno++) {
        size_t start = pos;
        if ((err = next_line(buf, len, &pos, &end, lineno, ei)) != 0)
            return err;
        if (end == start)
            break; /* the empty line: end of the head */
        const char *l = buf + start;
        size_t n = end - start;
        if (l[0] == ' ' || l[0] == '\t')
            return err_info_set(ei, ERR_PARSE, lineno, 0,
                                "line %d of the request head starts with whitespace (obs-fold "
                                "line folding is not accepted)",
                                lineno);
        size_t i = 0;
        while (i < n && is_tchar((unsigned char)l[i]))
            i++;
        if (i < n && (l[i] == ' ' || l[i] == '\t'))
            return err_info_set(ei, ERR_PARSE, lineno, 0,
                                "header \"%.*s\" has whitespace before its colon", (int)i, l);
        if (i == 0 || i >= n || l[i] != ':')
            return err_info_set(ei, ERR_PARSE, lineno, 0,
                                "line %d of the request head is not a header field "
                                "(\"name: value\" with a token name)",
                                lineno);
        size_t name_len = i++;
        for (size_t j = i; j < n; j++)
            if (!is_field_vchar((unsigned char)l[j]))
                return err_info_set(ei, ERR_PARSE, lineno, 0,
                                    "the value of header \"%.*s\" holds the control byte 0x%02x",
                                    (int)name_len, l, (unsigned char)l[j]);
        while (i < n && (l[i] == ' ' || l[i] == '\t'))
            i++;
        size_t vend = n;
        while (vend > i && (l[vend - 1] == ' ' || l[vend - 1] == '\t'))
            vend--;
        if (name_is(l, name_len, "content-length")) {
            n_cl++;
            cl = l + i;
            cl_len = vend - i;
            cl_line = lineno;
        } else if (name_is(l, name_len, "transfer-encoding")) {
            n_te++;
            te = l + i;
            te_len = vend - i;
        } else if (name_is(l, name_len, "host")) {
            n_host++;
        }
    }
    if (n_cl > 1)
        return err_info_set(ei, ERR_PARSE, 0, 0,
                            "the request has %u Content-Length headers; one at most", n_cl);
    if (n_te > 1)
        return err_info_set(ei, ERR_PARSE, 0, 0,
                            "the request has %u Transfer-Encoding headers; one at most", n_te);
    if (n_cl && n_te)
        return err_info_set(ei, ERR_PARSE, 0, 0,
                            "the request has both Content-Length and Transfer-Encoding; its "
                            "length is ambiguous (RFC 9112 section 6.1)");
    if (n_host > 1)
        return err_info_set(ei, ERR_PARSE, 0, 0,
                            "the request has %u Host headers; exactly one is allowed", n_host);
    if (n_host == 0 && h.minor_version == 1)
        return err_info_set(ei, ERR_PARSE, 0, 0, "an HTTP/1.1 request must carry a Host header");
    if (n_te) {
        if (h.minor_version == 0)
            return err_info_set(ei, ERR_PARSE, 0, 0,
                                "Transfer-Encoding is not allowed in an HTTP/1.0 request");
        if (!(te_len == 7 && strncasecmp(te, "chunked", 7) == 0))
            return err_info_set(ei, ERR_PARSE, 0, 0,
                                "Transfer-Encoding must be exactly \"chunked\" (no other "
                                "coding, no list)");
        h.chunked = true;
    }
    if (n_cl) {
        if ((err = parse_content_length(cl, cl_len, &h.content_length, cl_line, ei)) != 0)
            return err;
        h.has_content_length = true;
    }
    h.head_len = pos;
    *out = h;
    return 0;
}

/* --- the h2o glue --- */

int framing_check_request(h2o_req_t *req, struct err_info *ei)
{
    if (req->version >= 0x200)
        return 0;
    h2o_socket_t *sock = req->conn->callbacks->get_socket != NULL
                             ? req->conn->callbacks->get_socket(req->conn)
                             : NULL;
    struct framing_head h = {0};
    int err;
    /* h2o 2.2 keeps this request's head at the start of the input buffer until its answer is
       sent (the body follows it; a chunked body is decoded in place after the head). Fail
       closed if that ever stops being so. */
    if (sock == NULL || sock->input == NULL)
        err = err_info_set(ei, ERR_INTERNAL, 0, 0, "the request head could not be checked");
    else
        err = framing_parse_head(sock->input->bytes, sock->input->size, &h, ei);
    if (err == 0 && h.absolute_form && h.https != (sock->ssl != NULL))
        err = err_info_set(ei, ERR_PARSE, 1, 0,
                           "the absolute-form request target names the %s scheme on an %s "
                           "connection",
                           h.https ? "https" : "http", sock->ssl ? "https" : "http");
    if (err) {
        req->http1_is_persistent = 0;
        return err;
    }
    if (h.absolute_form) {
        /* The target's authority replaces Host; copy out of the input buffer, which h2o may
           reallocate while the answer is being sent. */
        req->input.authority = req->authority =
            h2o_strdup(&req->pool, h.authority, h.authority_len);
        req->input.path = req->path = h2o_strdup(&req->pool, h.path, h.path_len);
        req->path_normalized = h2o_url_normalize_path(&req->pool, req->path.base, req->path.len,
                                                      &req->query_at, &req->norm_indexes);
        req->input.query_at = req->query_at;
    }
    return 0;
}

/* --- lingering close --- */

#define LINGER_MAX_MS 2000u          /* drain at most this long after the answer */
#define LINGER_MAX_BYTES (64u << 20) /* ... and at most this much */
#define LINGER_MAX_SOCKETS 1024u     /* per worker; past it, close at once as before */
#define LINGER_TICK_MS 100u          /* how often a drain looks at its deadline and at shutdown */

struct lingerer {
    uv_tcp_t tcp; /* first: the handle's close callback frees the struct */
    uv_timer_t timer;
    int fd;             /* the duplicate descriptor, until the handle owns it */
    size_t drained;     /* bytes read and discarded */
    uint64_t deadline;  /* uv_now, ms */
    h2o_context_t *ctx; /* the worker's: a shutdown ends the drain at once */
    unsigned closing;   /* handles closed so far (two) */
};

static _Thread_local unsigned lingering;
static _Thread_local char discard[64 * 1024];

unsigned framing_lingering(void)
{
    return lingering;
}

static void linger_handle_closed_cb(uv_handle_t *h)
{
    struct lingerer *l = h->data;
    if (++l->closing == 2) {
        lingering--;
        free(l);
    }
}

static void linger_end(struct lingerer *l)
{
    if (uv_is_closing((uv_handle_t *)&l->tcp))
        return;
    uv_close((uv_handle_t *)&l->tcp, linger_handle_closed_cb); /* closes the duplicate */
    uv_close((uv_handle_t *)&l->timer, linger_handle_closed_cb);
}

static void linger_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    (void)h;
    (void)suggested;
    *b = uv_buf_init(discard, sizeof(discard));
}

static void linger_read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    (void)b;
    struct lingerer *l = s->data;
    if (n < 0) { /* end of stream (the client closed) or an error */
        linger_end(l);
        return;
    }
    l->drained += (size_t)n;
    if (l->drained > LINGER_MAX_BYTES)
        linger_end(l);
}

static void linger_timer_cb(uv_timer_t *t)
{
    struct lingerer *l = t->data;
    if (l->ctx->shutdown_requested || uv_now(t->loop) >= l->deadline)
        linger_end(l);
}

/* h2o has closed its descriptor (h2o_socket_t.on_close, after the answer was written): the
   duplicate holds the connection open. Send our FIN, then drain. */
static void linger_start_cb(void *data)
{
    struct lingerer *l = data;
    shutdown(l->fd, SHUT_WR);
    if (uv_tcp_open(&l->tcp, l->fd) != 0) {
        close(l->fd);
        linger_end(l);
        return;
    }
    /* the handle owns the duplicate now */
    uv_read_start((uv_stream_t *)&l->tcp, linger_alloc_cb, linger_read_cb);
    l->deadline = uv_now(l->timer.loop) + LINGER_MAX_MS;
    uv_timer_start(&l->timer, linger_timer_cb, LINGER_TICK_MS, LINGER_TICK_MS);
}

/* Arms a lingering close for this connection: a duplicate descriptor and h2o's close hook. */
static void linger_arm(h2o_req_t *req)
{
    h2o_socket_t *sock = req->conn->callbacks->get_socket != NULL
                             ? req->conn->callbacks->get_socket(req->conn)
                             : NULL;
    if (sock == NULL || sock->on_close.cb != NULL || lingering >= LINGER_MAX_SOCKETS)
        return;
    int fd = h2o_socket_get_fd(sock);
    if (fd < 0)
        return;
    struct lingerer *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return;
    l->fd = dup(fd);
    if (l->fd < 0) {
        free(l);
        return;
    }
    uv_loop_t *loop = req->conn->ctx->loop;
    uv_tcp_init(loop, &l->tcp);
    uv_timer_init(loop, &l->timer);
    l->tcp.data = l->timer.data = l;
    l->ctx = req->conn->ctx;
    lingering++;
    sock->on_close.cb = linger_start_cb;
    sock->on_close.data = l;
}

static void linger_on_setup_ostream(h2o_filter_t *self, h2o_req_t *req, h2o_ostream_t **slot)
{
    (void)self;
    /* An HTTP/1 error answer after which the connection closes: the client may still be
       sending, and a close with unread input would reset the answer away. */
    if (req->version < 0x200 && !req->http1_is_persistent && req->res.status >= 400)
        linger_arm(req);
    h2o_setup_next_ostream(req, slot);
}

void framing_register_linger(h2o_pathconf_t *pathconf)
{
    h2o_filter_t *f = h2o_create_filter(pathconf, sizeof(*f));
    f->on_setup_ostream = linger_on_setup_ostream;
}
