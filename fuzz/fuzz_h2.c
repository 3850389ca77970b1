/*
 * Fuzz target for the HTTP/2 front (src/http/h2.c): the bytes a client sends on a cleartext
 * connection, through the protocol choice (the preface check), nghttp2's session and our
 * callbacks that turn streams into h2o requests, the request handling and the response path
 * (inline answers and a streaming generator that waits for proceed).
 *
 * One real libuv loop and h2o context for the process; each input is one connection over a
 * socketpair: the first byte's low bit chooses whether the connection preface is sent first (the
 * HTTP/2 path) or the input is sent as it is (the choice between HTTP/1.1 and HTTP/2 itself).
 * The input is written, the write side shut, and the loop run until the gateway side has closed
 * (it must: end of input is end of connection) or a bound is reached, which is a failure (a
 * hang on malformed input).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <h2o.h>

#include "http/h2.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uv_loop_t loop;
static h2o_globalconf_t conf;
static h2o_context_t ctx;
static h2o_accept_ctx_t actx;
static struct h2_server *hs;
static int closed_handles;

/* A streaming answer: three chunks, each sent when the previous one has been taken. */
struct stream_gen {
    h2o_generator_t super;
    int left;
};

static void stream_proceed(h2o_generator_t *g, h2o_req_t *req)
{
    struct stream_gen *sg = (struct stream_gen *)g;
    static char chunk[] = "data: chunk\n\n";
    h2o_iovec_t b = h2o_iovec_init(chunk, sizeof(chunk) - 1);
    sg->left--;
    h2o_send(req, &b, 1, sg->left > 0 ? H2O_SEND_STATE_IN_PROGRESS : H2O_SEND_STATE_FINAL);
}

static void stream_stop(h2o_generator_t *g, h2o_req_t *req)
{
    (void)g;
    (void)req;
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    (void)self;
    req->res.status = 200;
    req->res.reason = "OK";
    if (h2o_memis(req->path_normalized.base, req->path_normalized.len, H2O_STRLIT("/stream"))) {
        struct stream_gen *sg = h2o_mem_alloc_pool(&req->pool, sizeof(*sg));
        sg->super.proceed = stream_proceed;
        sg->super.stop = stream_stop;
        sg->left = 3;
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                       H2O_STRLIT("text/event-stream"));
        h2o_start_response(req, &sg->super);
        stream_proceed(&sg->super, req);
        return 0;
    }
    /* echo the body's length and the number of header fields */
    char *msg = h2o_mem_alloc_pool(&req->pool, 64);
    int n = snprintf(msg, 64, "%zu %zu\n", req->entity.len, req->headers.size);
    h2o_send_inline(req, msg, (size_t)n);
    return 0;
}

static void handle_closed(uv_handle_t *h)
{
    free(h);
    closed_handles++;
}

static void init(void)
{
    signal(SIGPIPE, SIG_IGN);
    uv_loop_init(&loop);
    h2o_config_init(&conf);
    conf.max_request_entity_size = 64 * 1024;
    h2o_hostconf_t *host =
        h2o_config_register_host(&conf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    h2o_handler_t *h = h2o_create_handler(path, sizeof(*h));
    h->on_req = on_req;
    h2o_context_init(&ctx, &loop, &conf);
    actx.ctx = &ctx;
    actx.hosts = conf.hosts;
    struct h2_limits lim = {
        .max_streams = 100,
        .max_header_list = 16 * 1024,
        .max_body = conf.max_request_entity_size,
        .max_conn_body = 2 * conf.max_request_entity_size,
        .idle_timeout_ms = 60000,
        .write_timeout_ms = 60000,
        .handshake_timeout_ms = 10000,
        .reset_burst = 1000,
        .reset_rate = 33,
    };
    hs = h2_server_new(&loop, &lim);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready;
    if (!ready) {
        init();
        ready = true;
    }
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
        abort();
    fcntl(sv[1], F_SETFL, O_NONBLOCK);
    uv_pipe_t *p = malloc(sizeof(*p));
    uv_pipe_init(&loop, p, 0);
    if (uv_pipe_open(p, sv[0]) != 0)
        abort();
    int before = closed_handles;
    h2o_socket_t *sock = h2o_uv_socket_create((uv_stream_t *)p, handle_closed);
    h2_accept(hs, &actx, sock);

    static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    size_t plen = size > 0 && (data[0] & 1) ? sizeof(preface) - 1 : 0;
    size_t total = plen + size, off = 0;
    uint8_t *in = malloc(total ? total : 1);
    memcpy(in, preface, plen);
    if (size)
        memcpy(in + plen, data, size);
    char sink[65536];
    bool shut = false;
    /* Bounded: every input ends with the connection closed well before this. */
    for (int round = 0; round < 20000 && closed_handles == before; round++) {
        if (off < total) {
            ssize_t w = write(sv[1], in + off, total - off);
            if (w > 0)
                off += (size_t)w;
            else if (w < 0 && errno != EAGAIN)
                off = total; /* the gateway closed on us */
        }
        if (off == total && !shut) {
            shutdown(sv[1], SHUT_WR);
            shut = true;
        }
        while (read(sv[1], sink, sizeof(sink)) > 0) {
        }
        uv_run(&loop, UV_RUN_NOWAIT);
    }
    if (closed_handles == before) {
        fprintf(stderr, "fuzz_h2: the connection was still open after the input ended\n");
        abort();
    }
    close(sv[1]);
    free(in);
    return 0;
}
