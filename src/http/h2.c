/*
 * HTTP/2 through nghttp2, under h2o's request API (see h2.h).
 *
 * A connection owns an nghttp2 server session and an h2o socket (TLS or not: the socket
 * decrypts). Bytes read go to nghttp2_session_mem_recv; what nghttp2 has to send is gathered
 * with nghttp2_session_mem_send into one buffer and written, one write in flight at a time.
 *
 * A stream is an h2o_req_t whose last output stream (do_send) hands the response to nghttp2: the
 * headers at the first call, then the data through a data provider that copies from the
 * generator's buffers. The generator is asked for more (h2o_proceed_response) only after what it
 * gave has been written to the socket, so a client that reads slowly holds back its own
 * responses, bounded by flow control and one write buffer.
 *
 * Nothing of h2o is ever called from inside an nghttp2 callback except h2o_dispose_request when
 * a stream closes, and nghttp2 is never driven (mem_recv, mem_send) from inside an h2o call:
 * requests are processed, and the session flushed, from a zero-delay timer (the "kick") or from
 * socket callbacks. So a stream cannot be freed under a generator that is sending on it.
 */
#include "http/h2.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <h2o/http1.h>
#include <nghttp2/nghttp2.h>

#include "core/log.h"

#define H2_PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define H2_PREFACE_LEN (sizeof(H2_PREFACE) - 1)
#define H2_WRITE_CHUNK (64u * 1024u) /* gather up to this much per socket write */
#define H2_KICK_ROUNDS 16            /* proceed/flush rounds per kick before yielding */

static char alpn_h2[] = "h2", alpn_http1[] = "http/1.1";
const h2o_iovec_t h2_alpn_protocols[] = {
    {alpn_h2, sizeof(alpn_h2) - 1},
    {alpn_http1, sizeof(alpn_http1) - 1},
    {NULL, 0},
};
/* nghttp2_nv wants non-const bytes (it never writes them) */
static uint8_t name_status[] = ":status", name_content_length[] = "content-length";

struct h2_server {
    uv_loop_t *loop;
    struct h2_limits lim;
    h2o_linklist_t conns; /* struct h2_conn.link */
    unsigned nconns;      /* HTTP/2 connections and handshakes in progress */
    bool stopping;
};

struct h2_stream;

struct h2_conn {
    h2o_conn_t super; /* first: req->conn */
    struct h2_server *hs;
    h2o_socket_t *sock;
    nghttp2_session *ng;
    h2o_linklist_t link;
    uv_timer_t kick;  /* zero-delay: process ready requests, run proceeds, flush */
    uv_timer_t watch; /* idle and write-progress timeout */
    unsigned handles; /* timers not yet closed; the struct is freed at 0 */
    bool tls;
    bool closed;
    bool writing;
    bool goaway; /* GOAWAY submitted: close once the streams are done */
    bool kick_pending;
    char *wbuf; /* the bytes of the write in flight */
    size_t wlen, wcap;
    uint64_t last_read;   /* uv_now of the last read */
    uint64_t write_since; /* uv_now when the write in flight started */
    unsigned nstreams;
    size_t body_bytes;       /* request bodies buffered, all streams */
    h2o_linklist_t streams;  /* every struct h2_stream.link */
    struct h2_stream *ready; /* requests complete, to process (FIFO) */
    struct h2_stream **ready_tail;
    struct h2_stream *proceed; /* generators to ask for more after the write completes */
};

struct h2_stream {
    h2o_req_t req; /* h2o_init_request'ed at the first HEADERS */
    h2o_ostream_t ostr;
    struct h2_conn *conn;
    int32_t id;
    h2o_linklist_t link; /* conn->streams */
    struct h2_stream *next_ready;
    struct h2_stream *next_proceed;
    bool in_ready, in_proceed;
    bool processed;         /* handed to h2o */
    bool request_done;      /* END_STREAM received */
    bool response_started;  /* HEADERS submitted */
    bool response_done;     /* our END_STREAM sent */
    bool headers_too_large; /* answered 431 */
    bool body_too_large;    /* answered 413 */
    h2o_send_state_t send_state;
    size_t header_bytes;
    h2o_iovec_t host; /* the Host field, used when :authority is absent */
    h2o_iovec_t cookie;
    char *body;
    size_t body_len, body_cap;
    h2o_iovec_t *bufs; /* the generator's buffers not yet copied to nghttp2 */
    size_t nbufs, bufs_cap, bi, boff;
};

static void conn_close(struct h2_conn *c);
static void conn_schedule(struct h2_conn *c);

/* ---- h2o's view of the connection -------------------------------------------------------------
 */

static socklen_t get_sockname(h2o_conn_t *conn, struct sockaddr *sa)
{
    struct h2_conn *c = (struct h2_conn *)conn;
    return c->sock ? h2o_socket_getsockname(c->sock, sa) : 0;
}

static socklen_t get_peername(h2o_conn_t *conn, struct sockaddr *sa)
{
    struct h2_conn *c = (struct h2_conn *)conn;
    return c->sock ? h2o_socket_getpeername(c->sock, sa) : 0;
}

static h2o_socket_t *get_socket(h2o_conn_t *conn)
{
    return ((struct h2_conn *)conn)->sock;
}

static const h2o_conn_callbacks_t conn_callbacks = {
    .get_sockname = get_sockname,
    .get_peername = get_peername,
    .get_socket = get_socket,
};

/* ---- streams ----------------------------------------------------------------------------------
 */

static void ready_push(struct h2_conn *c, struct h2_stream *st)
{
    if (st->in_ready)
        return;
    st->in_ready = true;
    st->next_ready = NULL;
    *c->ready_tail = st;
    c->ready_tail = &st->next_ready;
    conn_schedule(c);
}

static void ready_remove(struct h2_conn *c, struct h2_stream *st)
{
    if (!st->in_ready)
        return;
    for (struct h2_stream **p = &c->ready; *p; p = &(*p)->next_ready) {
        if (*p == st) {
            *p = st->next_ready;
            break;
        }
    }
    c->ready_tail = &c->ready;
    while (*c->ready_tail)
        c->ready_tail = &(*c->ready_tail)->next_ready;
    st->in_ready = false;
}

static void proceed_push(struct h2_conn *c, struct h2_stream *st)
{
    if (st->in_proceed)
        return;
    st->in_proceed = true;
    st->next_proceed = c->proceed;
    c->proceed = st;
}

static void proceed_remove(struct h2_conn *c, struct h2_stream *st)
{
    if (!st->in_proceed)
        return;
    for (struct h2_stream **p = &c->proceed; *p; p = &(*p)->next_proceed) {
        if (*p == st) {
            *p = st->next_proceed;
            break;
        }
    }
    st->in_proceed = false;
}

static void stream_free(struct h2_conn *c, struct h2_stream *st)
{
    ready_remove(c, st);
    proceed_remove(c, st);
    h2o_linklist_unlink(&st->link);
    c->body_bytes -= st->body_cap;
    /* Stops a generator still running (the client reset the stream, or the connection is
       going away) and frees the request's memory pool. */
    h2o_dispose_request(&st->req);
    free(st->bufs);
    free(st->body);
    free(st);
    c->nstreams--;
}

/* The data provider: copy what the generator gave, then EOF, a reset (error), or wait. */
static ssize_t data_read(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t length,
                         uint32_t *flags, nghttp2_data_source *source, void *user)
{
    (void)ng;
    (void)id;
    (void)user;
    struct h2_stream *st = source->ptr;
    size_t n = 0;
    while (n < length && st->bi < st->nbufs) {
        h2o_iovec_t *b = &st->bufs[st->bi];
        size_t take = b->len - st->boff;
        if (take > length - n)
            take = length - n;
        memcpy(buf + n, b->base + st->boff, take);
        n += take;
        st->boff += take;
        if (st->boff == b->len) {
            st->bi++;
            st->boff = 0;
        }
    }
    if (st->bi < st->nbufs)
        return (ssize_t)n;
    switch (st->send_state) {
    case H2O_SEND_STATE_FINAL:
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        return (ssize_t)n;
    case H2O_SEND_STATE_ERROR:
        /* the generator failed mid-response: what it sent goes out, then RST_STREAM */
        return n > 0 ? (ssize_t)n : NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    default:
        /* all copied: ask the generator for more once these bytes are on the socket */
        proceed_push(st->conn, st);
        return n > 0 ? (ssize_t)n : NGHTTP2_ERR_DEFERRED;
    }
}

static bool is_hop_by_hop(const h2o_iovec_t *name)
{
    static const char *const names[] = {"connection", "keep-alive",        "proxy-connection",
                                        "upgrade",    "transfer-encoding", "te"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (h2o_lcstris(name->base, name->len, names[i], strlen(names[i])))
            return true;
    return false;
}

/* HTTP/2 field names are lower case (RFC 9113 §8.2.1); h2o's tokens are, our own names may not
   be. */
static h2o_iovec_t lower_name(h2o_mem_pool_t *pool, h2o_iovec_t name)
{
    for (size_t i = 0; i < name.len; i++) {
        if (isupper((unsigned char)name.base[i])) {
            char *p = h2o_mem_alloc_pool(pool, name.len);
            for (size_t j = 0; j < name.len; j++)
                p[j] = (char)tolower((unsigned char)name.base[j]);
            return h2o_iovec_init(p, name.len);
        }
    }
    return name;
}

static int submit_response(struct h2_stream *st)
{
    h2o_req_t *req = &st->req;
    size_t n = req->res.headers.size + 2;
    nghttp2_nv *nva = h2o_mem_alloc_pool(&req->pool, n * sizeof(*nva));
    size_t k = 0;
    char *status = h2o_mem_alloc_pool(&req->pool, 4);
    int code = req->res.status >= 100 && req->res.status <= 999 ? req->res.status : 500;
    snprintf(status, 4, "%03d", code);
    nva[k++] = (nghttp2_nv){name_status, (uint8_t *)status, 7, 3, NGHTTP2_NV_FLAG_NONE};
    for (size_t i = 0; i < req->res.headers.size; i++) {
        h2o_header_t *h = &req->res.headers.entries[i];
        if (is_hop_by_hop(h->name) ||
            h2o_lcstris(h->name->base, h->name->len, H2O_STRLIT("content-length")))
            continue;
        h2o_iovec_t name = lower_name(&req->pool, *h->name);
        nva[k++] = (nghttp2_nv){(uint8_t *)name.base, (uint8_t *)h->value.base, name.len,
                                h->value.len, NGHTTP2_NV_FLAG_NONE};
    }
    if (req->res.content_length != SIZE_MAX) {
        char *len = h2o_mem_alloc_pool(&req->pool, 24);
        int l = snprintf(len, 24, "%zu", req->res.content_length);
        nva[k++] =
            (nghttp2_nv){name_content_length, (uint8_t *)len, 14, (size_t)l, NGHTTP2_NV_FLAG_NONE};
    }
    size_t pending = 0;
    for (size_t i = 0; i < st->nbufs; i++)
        pending += st->bufs[i].len;
    bool head_only = st->send_state == H2O_SEND_STATE_FINAL && pending == 0;
    nghttp2_data_provider prd = {.source.ptr = st, .read_callback = data_read};
    int rv = nghttp2_submit_response(st->conn->ng, st->id, nva, k, head_only ? NULL : &prd);
    st->response_started = true;
    return rv;
}

/* The last output stream of every request: the response goes to nghttp2. */
static void do_send(h2o_ostream_t *self, h2o_req_t *req, h2o_iovec_t *bufs, size_t bufcnt,
                    h2o_send_state_t state)
{
    struct h2_stream *st = H2O_STRUCT_FROM_MEMBER(struct h2_stream, ostr, self);
    struct h2_conn *c = st->conn;
    (void)req;
    st->send_state = state;
    if (bufcnt > st->bufs_cap) {
        h2o_iovec_t *nb = realloc(st->bufs, bufcnt * sizeof(*nb));
        if (nb == NULL) {
            st->nbufs = 0;
            st->send_state = H2O_SEND_STATE_ERROR;
            bufcnt = 0;
        } else {
            st->bufs = nb;
            st->bufs_cap = bufcnt;
        }
    }
    if (bufcnt)
        memcpy(st->bufs, bufs, bufcnt * sizeof(*bufs));
    st->nbufs = bufcnt;
    st->bi = st->boff = 0;
    if (c->closed)
        return;
    if (!st->response_started) {
        int rv = submit_response(st);
        if (rv != 0) {
            log_warn("http2_response", "stream %d: the response could not be queued: %s",
                     (int)st->id, nghttp2_strerror(rv));
            nghttp2_submit_rst_stream(c->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
        }
    } else {
        nghttp2_session_resume_data(c->ng, st->id);
    }
    conn_schedule(c);
}

static void process_stream(struct h2_stream *st)
{
    h2o_req_t *req = &st->req;
    st->processed = true;
    if (req->input.authority.base == NULL && st->host.base != NULL)
        req->input.authority = st->host;
    if (req->input.scheme == NULL)
        req->input.scheme = st->conn->tls ? &H2O_URL_SCHEME_HTTPS : &H2O_URL_SCHEME_HTTP;
    if (st->cookie.base != NULL)
        h2o_add_header(&req->pool, &req->headers, H2O_TOKEN_COOKIE, NULL, st->cookie.base,
                       st->cookie.len);
    if (st->headers_too_large) {
        h2o_send_error_generic(req, 431, "Request Header Fields Too Large",
                               "the request's header fields are too large", 0);
        return;
    }
    if (st->body_too_large) {
        h2o_send_error_generic(req, 413, "Request Entity Too Large",
                               "the request body is too large", 0);
        return;
    }
    if (st->request_done && st->body != NULL)
        req->entity = h2o_iovec_init(st->body, st->body_len);
    h2o_process_request(req);
}

/* ---- nghttp2 callbacks ------------------------------------------------------------------------
 */

static int on_begin_headers(nghttp2_session *ng, const nghttp2_frame *frame, void *user)
{
    struct h2_conn *c = user;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    struct h2_stream *st = calloc(1, sizeof(*st));
    if (st == NULL)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    st->conn = c;
    st->id = frame->hd.stream_id;
    h2o_init_request(&st->req, &c->super, NULL);
    st->req.version = 0x200;
    st->ostr.do_send = do_send;
    st->req._ostr_top = &st->ostr;
    c->nstreams++;
    h2o_linklist_insert(&c->streams, &st->link);
    nghttp2_session_set_stream_user_data(ng, st->id, st);
    return 0;
}

static h2o_iovec_t pool_dup(h2o_mem_pool_t *pool, const uint8_t *p, size_t len)
{
    char *d = h2o_mem_alloc_pool(pool, len + 1);
    memcpy(d, p, len);
    d[len] = '\0';
    return h2o_iovec_init(d, len);
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *user)
{
    (void)flags;
    (void)user;
    if (frame->hd.type != NGHTTP2_HEADERS)
        return 0;
    struct h2_stream *st = nghttp2_session_get_stream_user_data(ng, frame->hd.stream_id);
    if (st == NULL || st->processed)
        return 0; /* trailers: ignored */
    struct h2_conn *c = st->conn;
    st->header_bytes += namelen + valuelen + 32; /* RFC 9113 §6.5.2 */
    if (st->header_bytes > c->hs->lim.max_header_list)
        st->headers_too_large = true;
    if (st->headers_too_large)
        return 0;
    h2o_req_t *req = &st->req;
#define IS(lit) (namelen == sizeof(lit) - 1 && memcmp(name, lit, namelen) == 0)
    if (name[0] == ':') { /* nghttp2 has checked presence, order and duplicates */
        h2o_iovec_t v = pool_dup(&req->pool, value, valuelen);
        if (IS(":method"))
            req->input.method = v;
        else if (IS(":path"))
            req->input.path = v;
        else if (IS(":authority"))
            req->input.authority = v;
        else if (IS(":scheme"))
            req->input.scheme = h2o_memis(v.base, v.len, H2O_STRLIT("https"))
                                    ? &H2O_URL_SCHEME_HTTPS
                                    : &H2O_URL_SCHEME_HTTP;
        return 0;
    }
    if (IS("host")) {
        if (st->host.base == NULL)
            st->host = pool_dup(&req->pool, value, valuelen);
        return 0;
    }
    if (IS("content-length"))
        return 0;       /* nghttp2 checks it against the DATA received */
    if (IS("cookie")) { /* split into several fields by clients; one field for the handlers */
        if (st->cookie.base == NULL) {
            st->cookie = pool_dup(&req->pool, value, valuelen);
        } else {
            size_t n = st->cookie.len + 2 + valuelen;
            char *j = h2o_mem_alloc_pool(&req->pool, n + 1);
            memcpy(j, st->cookie.base, st->cookie.len);
            memcpy(j + st->cookie.len, "; ", 2);
            memcpy(j + st->cookie.len + 2, value, valuelen);
            j[n] = '\0';
            st->cookie = h2o_iovec_init(j, n);
        }
        return 0;
    }
#undef IS
    h2o_iovec_t n = pool_dup(&req->pool, name, namelen);
    h2o_iovec_t v = pool_dup(&req->pool, value, valuelen);
    h2o_add_header_by_str(&req->pool, &req->headers, n.base, n.len, 1, NULL, v.base, v.len);
    return 0;
}

static int on_data_chunk(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data,
                         size_t len, void *user)
{
    (void)flags;
    (void)user;
    struct h2_stream *st = nghttp2_session_get_stream_user_data(ng, id);
    if (st == NULL || st->body_too_large || st->processed)
        return 0;
    struct h2_conn *c = st->conn;
    if (st->body_len + len > c->hs->lim.max_body) {
        /* answered at once; what the client still sends is discarded, and the stream is
           reset (NO_ERROR) after the answer (on_frame_send) */
        st->body_too_large = true;
        c->body_bytes -= st->body_cap;
        free(st->body);
        st->body = NULL;
        st->body_len = st->body_cap = 0;
        ready_push(c, st);
        return 0;
    }
    if (st->body_len + len > st->body_cap) {
        size_t cap = st->body_cap ? st->body_cap : 4096;
        while (cap < st->body_len + len)
            cap *= 2;
        if (cap > c->hs->lim.max_body)
            cap = c->hs->lim.max_body;
        if (c->body_bytes - st->body_cap + cap > c->hs->lim.max_conn_body) {
            /* Concurrent uploads on one connection would buffer more than a connection may:
               this stream is refused (the client may retry it when others are done). */
            log_info("http2_refused",
                     "stream %d refused: the connection's request bodies would "
                     "pass %zu bytes",
                     (int)id, c->hs->lim.max_conn_body);
            c->body_bytes -= st->body_cap;
            free(st->body);
            st->body = NULL;
            st->body_len = st->body_cap = 0;
            st->processed = true; /* never handed to h2o; freed when the stream closes */
            nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, id, NGHTTP2_REFUSED_STREAM);
            return 0;
        }
        char *nb = realloc(st->body, cap);
        if (nb == NULL)
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        c->body_bytes += cap - st->body_cap;
        st->body = nb;
        st->body_cap = cap;
    }
    memcpy(st->body + st->body_len, data, len);
    st->body_len += len;
    return 0;
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *frame, void *user)
{
    (void)user;
    if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA)
        return 0;
    struct h2_stream *st = nghttp2_session_get_stream_user_data(ng, frame->hd.stream_id);
    if (st == NULL)
        return 0;
    if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)
        st->request_done = true;
    if (st->processed)
        return 0;
    if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) {
        if (frame->hd.type == NGHTTP2_DATA && st->body == NULL)
            st->body = calloc(1, 1); /* an empty body: entity present, length 0 */
        ready_push(st->conn, st);
    } else if (frame->hd.type == NGHTTP2_HEADERS && st->headers_too_large) {
        ready_push(st->conn, st);
    }
    return 0;
}

static int on_frame_send(nghttp2_session *ng, const nghttp2_frame *frame, void *user)
{
    (void)user;
    if ((frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) ||
        !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
        return 0;
    struct h2_stream *st = nghttp2_session_get_stream_user_data(ng, frame->hd.stream_id);
    if (st == NULL)
        return 0;
    st->response_done = true;
    if (!st->request_done) /* answered before the request ended (413, 431): stop the upload */
        nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_NO_ERROR);
    return 0;
}

static int on_stream_close(nghttp2_session *ng, int32_t id, uint32_t error_code, void *user)
{
    (void)error_code;
    struct h2_conn *c = user;
    struct h2_stream *st = nghttp2_session_get_stream_user_data(ng, id);
    if (st == NULL)
        return 0;
    nghttp2_session_set_stream_user_data(ng, id, NULL);
    stream_free(c, st);
    return 0;
}

/* ---- the connection ---------------------------------------------------------------------------
 */

static void conn_free_cb(uv_handle_t *h)
{
    struct h2_conn *c = h->data;
    if (--c->handles == 0) {
        free(c->wbuf);
        free(c);
    }
}

static void conn_close(struct h2_conn *c)
{
    if (c->closed)
        return;
    c->closed = true;
    /* The streams first (their generators stop while the connection still exists), then the
       session: nghttp2_session_del does not report the streams it drops. */
    while (!h2o_linklist_is_empty(&c->streams)) {
        struct h2_stream *st = H2O_STRUCT_FROM_MEMBER(struct h2_stream, link, c->streams.next);
        if (c->ng)
            nghttp2_session_set_stream_user_data(c->ng, st->id, NULL);
        stream_free(c, st);
    }
    nghttp2_session_del(c->ng);
    c->ng = NULL;
    h2o_linklist_unlink(&c->link);
    c->hs->nconns--;
    if (c->sock) {
        h2o_socket_t *s = c->sock;
        c->sock = NULL;
        h2o_socket_close(s);
    }
    uv_close((uv_handle_t *)&c->kick, conn_free_cb);
    uv_close((uv_handle_t *)&c->watch, conn_free_cb);
}

static void on_written(h2o_socket_t *sock, const char *err);

/* Ask the generators whose buffers nghttp2 has copied out for more (each at most once). */
static void run_proceeds(struct h2_conn *c)
{
    while (c->proceed && !c->closed) {
        struct h2_stream *st = c->proceed;
        proceed_remove(c, st);
        h2o_proceed_response(&st->req);
    }
}

/* Write what nghttp2 has to send; run the proceeds the previous write released. */
static void conn_flush(struct h2_conn *c)
{
    for (int round = 0; !c->closed && !c->writing && round < H2_KICK_ROUNDS; round++) {
        c->wlen = 0;
        while (c->wlen < H2_WRITE_CHUNK) {
            const uint8_t *d;
            ssize_t n = nghttp2_session_mem_send(c->ng, &d);
            if (n < 0) {
                log_info("http2_closed", "connection closed: %s", nghttp2_strerror((int)n));
                conn_close(c);
                return;
            }
            if (n == 0)
                break;
            if (c->wlen + (size_t)n > c->wcap) {
                size_t cap = c->wcap ? c->wcap : 16384;
                while (cap < c->wlen + (size_t)n)
                    cap *= 2;
                char *nb = realloc(c->wbuf, cap);
                if (nb == NULL) {
                    conn_close(c);
                    return;
                }
                c->wbuf = nb;
                c->wcap = cap;
            }
            memcpy(c->wbuf + c->wlen, d, (size_t)n);
            c->wlen += (size_t)n;
        }
        if (c->closed)
            return;
        if (c->wlen > 0) {
            h2o_iovec_t iov = h2o_iovec_init(c->wbuf, c->wlen);
            c->writing = true;
            c->write_since = uv_now(c->hs->loop);
            h2o_socket_write(c->sock, &iov, 1, on_written);
            return;
        }
        if (c->proceed == NULL)
            break;
        /* nothing to write, yet generators wait (they gave empty buffers): ask them now */
        run_proceeds(c);
    }
    if (c->closed || c->writing)
        return;
    if (!nghttp2_session_want_read(c->ng) && !nghttp2_session_want_write(c->ng)) {
        conn_close(c); /* GOAWAY exchanged, or a fatal error sent */
        return;
    }
    if (c->goaway && c->nstreams == 0)
        conn_close(c);
}

static void on_written(h2o_socket_t *sock, const char *err)
{
    struct h2_conn *c = sock->data;
    c->writing = false;
    c->wlen = 0;
    if (err != NULL) {
        conn_close(c);
        return;
    }
    /* what the generators gave is on the socket: ask them for more */
    run_proceeds(c);
    if (!c->closed)
        conn_flush(c);
}

static void kick_cb(uv_timer_t *t)
{
    struct h2_conn *c = t->data;
    c->kick_pending = false;
    while (c->ready && !c->closed) {
        struct h2_stream *st = c->ready;
        ready_remove(c, st);
        process_stream(st);
    }
    if (!c->closed)
        conn_flush(c);
}

static void conn_schedule(struct h2_conn *c)
{
    if (c->closed || c->kick_pending)
        return;
    c->kick_pending = true;
    uv_timer_start(&c->kick, kick_cb, 0, 0);
}

static void on_read(h2o_socket_t *sock, const char *err)
{
    struct h2_conn *c = sock->data;
    if (err != NULL) {
        conn_close(c);
        return;
    }
    c->last_read = uv_now(c->hs->loop);
    ssize_t n =
        nghttp2_session_mem_recv(c->ng, (const uint8_t *)sock->input->bytes, sock->input->size);
    if (n < 0) {
        /* a connection error: nghttp2 has queued a GOAWAY naming it where it could */
        log_info("http2_error", "HTTP/2 connection error: %s", nghttp2_strerror((int)n));
        h2o_socket_read_stop(sock);
        nghttp2_session_terminate_session(c->ng, NGHTTP2_PROTOCOL_ERROR);
        conn_schedule(c);
        return;
    }
    h2o_buffer_consume(&sock->input, (size_t)n);
    conn_schedule(c);
}

static void watch_cb(uv_timer_t *t)
{
    struct h2_conn *c = t->data;
    uint64_t now = uv_now(c->hs->loop);
    const struct h2_limits *lim = &c->hs->lim;
    if (c->writing && now - c->write_since >= lim->write_timeout_ms) {
        log_info("http2_closed", "connection closed: the client read nothing for %u ms",
                 lim->write_timeout_ms);
        conn_close(c);
        return;
    }
    if (c->nstreams == 0 && now - c->last_read >= lim->idle_timeout_ms && !c->goaway) {
        c->goaway = true;
        nghttp2_submit_goaway(c->ng, NGHTTP2_FLAG_NONE,
                              nghttp2_session_get_last_proc_stream_id(c->ng), NGHTTP2_NO_ERROR,
                              NULL, 0);
        conn_schedule(c);
    }
}

static void conn_start(struct h2_server *hs, h2o_accept_ctx_t *actx, h2o_socket_t *sock)
{
    struct timeval now;
    gettimeofday(&now, NULL);
    struct h2_conn *c = (struct h2_conn *)h2o_create_connection(sizeof(*c), actx->ctx, actx->hosts,
                                                                now, &conn_callbacks);
    memset((char *)c + sizeof(c->super), 0, sizeof(*c) - sizeof(c->super));
    c->hs = hs;
    c->sock = sock;
    c->tls = sock->ssl != NULL;
    c->ready_tail = &c->ready;
    h2o_linklist_init_anchor(&c->streams);
    sock->data = c;
    h2o_linklist_insert(&hs->conns, &c->link);
    hs->nconns++;
    uv_timer_init(hs->loop, &c->kick);
    uv_timer_init(hs->loop, &c->watch);
    c->kick.data = c->watch.data = c;
    c->handles = 2;
    c->last_read = uv_now(hs->loop);

    nghttp2_session_callbacks *cbs;
    nghttp2_option *opt;
    if (nghttp2_session_callbacks_new(&cbs) != 0 || nghttp2_option_new(&opt) != 0) {
        conn_close(c);
        return;
    }
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
    /* the denial-of-service limits (nghttp2's own defaults are the same or close; set here so
       that they are ours to see and test) */
    nghttp2_option_set_stream_reset_rate_limit(opt, hs->lim.reset_burst, hs->lim.reset_rate);
    nghttp2_option_set_max_continuations(opt, 8);
    nghttp2_option_set_max_outbound_ack(opt, 1000);
    nghttp2_option_set_max_settings(opt, 32);
    nghttp2_option_set_no_closed_streams(opt, 1);
    int rv = nghttp2_session_server_new2(&c->ng, cbs, c, opt);
    nghttp2_session_callbacks_del(cbs);
    nghttp2_option_del(opt);
    if (rv != 0) {
        c->ng = NULL;
        conn_close(c);
        return;
    }
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, hs->lim.max_streams},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, (uint32_t)hs->lim.max_header_list},
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
    };
    nghttp2_submit_settings(c->ng, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0]));
    if (hs->stopping) {
        c->goaway = true;
        nghttp2_submit_goaway(c->ng, NGHTTP2_FLAG_NONE, 0, NGHTTP2_NO_ERROR, NULL, 0);
    }
    uint32_t period = hs->lim.idle_timeout_ms < hs->lim.write_timeout_ms ? hs->lim.idle_timeout_ms
                                                                         : hs->lim.write_timeout_ms;
    uv_timer_start(&c->watch, watch_cb, period / 4 + 1, period / 4 + 1);
    h2o_socket_read_start(sock, on_read);
    if (sock->input->size > 0)
        on_read(sock, NULL); /* the preface (and more) read while choosing the protocol */
    else
        conn_schedule(c); /* our SETTINGS */
}

/* ---- choosing the protocol --------------------------------------------------------------------
 */

struct accepting {
    struct h2_server *hs;
    h2o_accept_ctx_t *actx;
    h2o_socket_t *sock;
    uv_timer_t timer;
    struct timeval connected_at;
};

static void accepting_free_cb(uv_handle_t *h)
{
    free(h->data);
}

static void accepting_end(struct accepting *a)
{
    a->hs->nconns--;
    uv_close((uv_handle_t *)&a->timer, accepting_free_cb);
}

static void accepting_timeout(uv_timer_t *t)
{
    struct accepting *a = t->data;
    a->sock->data = NULL;
    h2o_socket_close(a->sock);
    accepting_end(a);
}

static void to_http1(struct accepting *a)
{
    h2o_socket_t *sock = a->sock;
    h2o_accept_ctx_t *actx = a->actx;
    struct timeval at = a->connected_at;
    accepting_end(a);
    h2o_http1_accept(actx, sock, at); /* parses what was already read */
}

static void to_http2(struct accepting *a)
{
    struct h2_server *hs = a->hs;
    h2o_accept_ctx_t *actx = a->actx;
    h2o_socket_t *sock = a->sock;
    accepting_end(a);
    conn_start(hs, actx, sock);
}

static void on_handshake(h2o_socket_t *sock, const char *err)
{
    struct accepting *a = sock->data;
    sock->data = NULL;
    uv_timer_stop(&a->timer);
    if (err != NULL) {
        h2o_socket_close(sock);
        accepting_end(a);
        return;
    }
    h2o_iovec_t proto = h2o_socket_ssl_get_selected_protocol(sock);
    if (h2o_memis(proto.base, proto.len, H2O_STRLIT("h2")))
        to_http2(a);
    else
        to_http1(a);
}

static void on_first_bytes(h2o_socket_t *sock, const char *err)
{
    struct accepting *a = sock->data;
    if (err != NULL) {
        uv_timer_stop(&a->timer);
        sock->data = NULL;
        h2o_socket_close(sock);
        accepting_end(a);
        return;
    }
    size_t n = sock->input->size < H2_PREFACE_LEN ? sock->input->size : H2_PREFACE_LEN;
    if (memcmp(sock->input->bytes, H2_PREFACE, n) != 0 || n == H2_PREFACE_LEN) {
        uv_timer_stop(&a->timer);
        h2o_socket_read_stop(sock);
        sock->data = NULL;
        if (n == H2_PREFACE_LEN && memcmp(sock->input->bytes, H2_PREFACE, n) == 0)
            to_http2(a);
        else
            to_http1(a);
    }
    /* else: a prefix of the preface so far; read on */
}

void h2_accept(struct h2_server *hs, h2o_accept_ctx_t *actx, h2o_socket_t *sock)
{
    struct accepting *a = calloc(1, sizeof(*a));
    if (a == NULL) {
        h2o_socket_close(sock);
        return;
    }
    a->hs = hs;
    a->actx = actx;
    a->sock = sock;
    gettimeofday(&a->connected_at, NULL);
    uv_timer_init(hs->loop, &a->timer);
    a->timer.data = a;
    hs->nconns++;
    uv_timer_start(&a->timer, accepting_timeout, hs->lim.handshake_timeout_ms, 0);
    sock->data = a;
    if (actx->ssl_ctx != NULL)
        h2o_socket_ssl_handshake(sock, actx->ssl_ctx, NULL, on_handshake);
    else
        h2o_socket_read_start(sock, on_first_bytes);
}

/* ---- the server -------------------------------------------------------------------------------
 */

struct h2_server *h2_server_new(uv_loop_t *loop, const struct h2_limits *lim)
{
    struct h2_server *hs = calloc(1, sizeof(*hs));
    if (hs == NULL)
        return NULL;
    hs->loop = loop;
    hs->lim = *lim;
    h2o_linklist_init_anchor(&hs->conns);
    return hs;
}

void h2_server_shutdown(struct h2_server *hs)
{
    hs->stopping = true;
    for (h2o_linklist_t *l = hs->conns.next; l != &hs->conns; l = l->next) {
        struct h2_conn *c = H2O_STRUCT_FROM_MEMBER(struct h2_conn, link, l);
        if (c->goaway)
            continue;
        c->goaway = true;
        nghttp2_submit_goaway(c->ng, NGHTTP2_FLAG_NONE,
                              nghttp2_session_get_last_proc_stream_id(c->ng), NGHTTP2_NO_ERROR,
                              NULL, 0);
        conn_schedule(c);
    }
}

unsigned h2_server_conns(const struct h2_server *hs)
{
    return hs->nconns;
}

void h2_server_free(struct h2_server *hs)
{
    free(hs);
}
