/*
 * The benchmark upstream: a minimal, stateless MCP server over Streamable HTTP (2025-11-25),
 * built on h2o (libuv flavour) the way the gateway uses it, and fast enough that it is never the
 * bottleneck of a measurement.
 *
 * POST /mcp answers initialize (with a random Mcp-Session-Id that is never checked afterwards:
 * holding no session state is what keeps it cheap), notifications (202), ping, tools/list (one
 * tool, `echo`) and tools/call echo. Responses are application/json, or with --sse-post a
 * chunked text/event-stream carrying one event (to exercise the SSE path of clients).
 * GET /mcp is 405 (no server-initiated stream) unless --sse-get, which holds an empty event
 * stream open until the client goes away (for testing the session tools against it).
 *
 * Threads: --threads N runs N event loops, each with its own listening socket bound to the same
 * port with SO_REUSEPORT, so the kernel spreads connections between them and no state is shared
 * on the request path. The h2o global configuration is built once and is read-only afterwards.
 *
 * Usage: fixture_server [--port N] [--threads N] [--sse-post] [--sse-get]
 * Prints "fixture: listening on 127.0.0.1:PORT threads=N" on stdout once it accepts connections;
 * --port 0 picks a free port. Stops on SIGINT/SIGTERM.
 */
#include "core/rand.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <h2o.h>
#include <jansson.h>
#include <uv.h>

#define FIXTURE_MAX_THREADS 64
#define FIXTURE_MAX_BODY (1024 * 1024)
#define FIXTURE_PROTOCOL_LATEST "2025-11-25"

/* JSON-RPC error codes used here. */
#define RPC_PARSE_ERROR (-32700)
#define RPC_INVALID_REQUEST (-32600)
#define RPC_METHOD_NOT_FOUND (-32601)
#define RPC_INVALID_PARAMS (-32602)

struct fixture_opts {
    int port;
    int threads;
    int sse_post;
    int sse_get;
};

/* One event loop, one h2o context, one listening socket. */
struct fixture_thread {
    pthread_t tid;
    int fd; /* bound listening socket, handed to libuv */
    uv_loop_t loop;
    uv_tcp_t listener;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
};

static struct fixture_opts opts = {.port = 8931, .threads = 1};
static h2o_globalconf_t config;
/* The tools/list result never changes: serialised once at start-up. */
static json_t *tools_list_result;

static const char *const supported_versions[] = {"2025-11-25", "2025-06-18", "2025-03-26",
                                                 "2024-11-05"};

static void set_content_type(h2o_req_t *req, const char *type, size_t len)
{
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, type, len);
}

/* Send `body` (a JSON-RPC message) with `status`, as JSON or as one SSE event. */
static void send_message(h2o_req_t *req, int status, const char *body, size_t len)
{
    static h2o_generator_t generator = {NULL, NULL};

    req->res.status = status;
    req->res.reason = status == 200 ? "OK" : "Bad Request";
    if (!opts.sse_post) {
        set_content_type(req, H2O_STRLIT("application/json"));
        req->res.content_length = len; /* h2o_send_inline leaves it to the caller */
        h2o_send_inline(req, body, len);
        return;
    }
    /* One event, then the end of the stream; no content-length, so HTTP/1.1 sends it chunked. */
    static const char prefix[] = "event: message\ndata: ";
    h2o_iovec_t ev = h2o_concat(&req->pool, h2o_iovec_init(H2O_STRLIT(prefix)),
                                h2o_iovec_init(body, len), h2o_iovec_init(H2O_STRLIT("\n\n")));
    set_content_type(req, H2O_STRLIT("text/event-stream"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL,
                   H2O_STRLIT("no-cache"));
    h2o_start_response(req, &generator);
    h2o_send(req, &ev, 1, H2O_SEND_STATE_FINAL);
}

/* Reply {"jsonrpc":"2.0","id":id,<key>:value}; steals `value`. */
static void reply(h2o_req_t *req, int status, json_t *id, const char *key, json_t *value)
{
    json_t *msg =
        json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id", id ? id : json_null(), key, value);
    char *text = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
    if (text == NULL) {
        h2o_send_error_500(req, "Internal Server Error", "out of memory", 0);
    } else {
        send_message(req, status, text, strlen(text));
    }
    free(text);
    json_decref(msg);
}

static void reply_error(h2o_req_t *req, int status, json_t *id, int code, const char *message)
{
    reply(req, status, id, "error", json_pack("{s:i, s:s}", "code", code, "message", message));
}

static json_t *do_initialize(h2o_req_t *req, json_t *params)
{
    const char *asked = json_string_value(json_object_get(params, "protocolVersion"));
    const char *version = FIXTURE_PROTOCOL_LATEST;
    for (size_t i = 0; asked && i < sizeof(supported_versions) / sizeof(supported_versions[0]);
         i++) {
        if (strcmp(asked, supported_versions[i]) == 0) {
            version = supported_versions[i];
        }
    }
    /* A session id is handed out as the spec requires, but never looked at again. */
    char *sid = h2o_mem_alloc_pool(&req->pool, 32);
    rand_token(sid, 32, 16);
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("mcp-session-id"), 0,
                          "Mcp-Session-Id", sid, strlen(sid));
    return json_pack("{s:s, s:{s:{}}, s:{s:s, s:s}}", "protocolVersion", version, "capabilities",
                     "tools", "serverInfo", "name", "gatehouse-bench-fixture", "version", "1.0.0");
}

static void do_tools_call(h2o_req_t *req, json_t *id, json_t *params)
{
    const char *name = json_string_value(json_object_get(params, "name"));
    json_t *text = json_object_get(json_object_get(params, "arguments"), "text");
    if (name == NULL || strcmp(name, "echo") != 0) {
        reply_error(req, 200, id, RPC_INVALID_PARAMS, "unknown tool (this server has only echo)");
        return;
    }
    if (!json_is_string(text)) {
        reply_error(req, 200, id, RPC_INVALID_PARAMS, "echo: arguments.text must be a string");
        return;
    }
    reply(req, 200, id, "result",
          json_pack("{s:[{s:s, s:O}]}", "content", "type", "text", "text", text));
}

static void handle_post(h2o_req_t *req)
{
    json_error_t jerr;
    json_t *msg = NULL;

    if (req->entity.base == NULL || req->entity.len == 0) {
        reply_error(req, 400, NULL, RPC_INVALID_REQUEST, "empty request body");
        return;
    }
    msg = json_loadb(req->entity.base, req->entity.len, 0, &jerr);
    if (msg == NULL) {
        reply_error(req, 400, NULL, RPC_PARSE_ERROR, jerr.text);
        return;
    }
    if (!json_is_object(msg)) {
        reply_error(req, 400, NULL, RPC_INVALID_REQUEST, "expected one JSON-RPC message object");
        goto out;
    }

    json_t *id = json_object_get(msg, "id");
    const char *method = json_string_value(json_object_get(msg, "method"));
    json_t *params = json_object_get(msg, "params");
    if (id == NULL || method == NULL) {
        /* A notification or a response from the client: accepted, nothing to say. */
        static h2o_generator_t generator = {NULL, NULL};
        req->res.status = 202;
        req->res.reason = "Accepted";
        req->res.content_length = 0;
        h2o_start_response(req, &generator);
        h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
        goto out;
    }

    if (strcmp(method, "tools/call") == 0) {
        do_tools_call(req, id, params);
    } else if (strcmp(method, "tools/list") == 0) {
        reply(req, 200, id, "result", json_incref(tools_list_result));
    } else if (strcmp(method, "ping") == 0) {
        reply(req, 200, id, "result", json_object());
    } else if (strcmp(method, "initialize") == 0) {
        reply(req, 200, id, "result", do_initialize(req, params));
    } else {
        reply_error(req, 200, id, RPC_METHOD_NOT_FOUND, "method not found");
    }
out:
    json_decref(msg);
}

/* --sse-get: an event stream that stays open and silent; h2o calls these as the client reads. */
static void held_stream_proceed_cb(h2o_generator_t *self, h2o_req_t *req)
{
    /* Nothing more to send until the client disconnects. */
}

static void held_stream_stop_cb(h2o_generator_t *self, h2o_req_t *req)
{
}

static void handle_get(h2o_req_t *req)
{
    if (!opts.sse_get) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, H2O_STRLIT("POST"));
        h2o_send_error_generic(req, 405, "Method Not Allowed", "this server offers no GET stream",
                               H2O_SEND_ERROR_KEEP_HEADERS);
        return;
    }
    h2o_generator_t *gen = h2o_mem_alloc_pool(&req->pool, sizeof(*gen));
    gen->proceed = held_stream_proceed_cb;
    gen->stop = held_stream_stop_cb;
    req->res.status = 200;
    req->res.reason = "OK";
    set_content_type(req, H2O_STRLIT("text/event-stream"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL,
                   H2O_STRLIT("no-cache"));
    h2o_start_response(req, gen);
    /* A comment line, so that the client sees the headers and a first byte at once. */
    static char hello_text[] = ": stream open\n\n";
    h2o_iovec_t hello = h2o_iovec_init(hello_text, sizeof(hello_text) - 1);
    h2o_send(req, &hello, 1, H2O_SEND_STATE_IN_PROGRESS);
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST"))) {
        handle_post(req);
    } else if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET"))) {
        handle_get(req);
    } else if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("DELETE"))) {
        /* Session termination: there is no session to end. */
        h2o_send_error_generic(req, 405, "Method Not Allowed", "stateless server", 0);
    } else {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL,
                       H2O_STRLIT("GET, POST"));
        h2o_send_error_generic(req, 405, "Method Not Allowed", "method not allowed",
                               H2O_SEND_ERROR_KEEP_HEADERS);
    }
    return 0;
}

static void free_handle_cb(uv_handle_t *handle)
{
    free(handle);
}

static void on_accept_cb(uv_stream_t *listener, int status)
{
    struct fixture_thread *t = listener->data;
    if (status != 0) {
        return;
    }
    uv_tcp_t *conn = h2o_mem_alloc(sizeof(*conn));
    uv_tcp_init(listener->loop, conn);
    if (uv_accept(listener, (uv_stream_t *)conn) != 0) {
        uv_close((uv_handle_t *)conn, free_handle_cb);
        return;
    }
    uv_tcp_nodelay(conn, 1);
    /* h2o owns the connection from here and closes it with free_handle_cb. */
    h2o_socket_t *sock = h2o_uv_socket_create((uv_stream_t *)conn, free_handle_cb);
    h2o_accept(&t->accept_ctx, sock);
}

/* A listening socket on 127.0.0.1:port with SO_REUSEPORT (libuv 1.44 has no flag for it).
   Returns the fd, or -1 with errno set. */
static int listen_socket(int port)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -1;
    }
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 ||
        bind(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 || listen(fd, SOMAXCONN) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

static int bound_port(int fd)
{
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);
    if (getsockname(fd, (struct sockaddr *)&sin, &len) != 0) {
        return -1;
    }
    return ntohs(sin.sin_port);
}

static void *thread_main(void *arg)
{
    struct fixture_thread *t = arg;
    uv_run(&t->loop, UV_RUN_DEFAULT);
    return NULL;
}

/* Set up the loop, the h2o context and the listener of one thread (on the main thread). */
static int thread_init(struct fixture_thread *t)
{
    int r;
    uv_loop_init(&t->loop);
    h2o_context_init(&t->ctx, &t->loop, &config);
    t->accept_ctx.ctx = &t->ctx;
    t->accept_ctx.hosts = config.hosts;
    uv_tcp_init(&t->loop, &t->listener);
    t->listener.data = t;
    if ((r = uv_tcp_open(&t->listener, t->fd)) != 0 ||
        (r = uv_listen((uv_stream_t *)&t->listener, SOMAXCONN, on_accept_cb)) != 0) {
        fprintf(stderr, "fixture: listen: %s\n", uv_strerror(r));
        return -1;
    }
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: fixture_server [--port N] [--threads N] [--sse-post] [--sse-get]\n");
    exit(2);
}

static void parse_args(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
            opts.port = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
            opts.threads = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--sse-post") == 0) {
            opts.sse_post = 1;
        } else if (strcmp(argv[i], "--sse-get") == 0) {
            opts.sse_get = 1;
        } else {
            usage();
        }
    }
    if (opts.port < 0 || opts.port > 65535 || opts.threads < 1 ||
        opts.threads > FIXTURE_MAX_THREADS) {
        usage();
    }
}

int main(int argc, char **argv)
{
    static struct fixture_thread threads[FIXTURE_MAX_THREADS];

    parse_args(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    if (core_init() != 0) {
        fprintf(stderr, "fixture: core_init failed\n");
        return 1;
    }
    tools_list_result =
        json_pack("{s:[{s:s, s:s, s:{s:s, s:{s:{s:s, s:s}}, s:[s]}}]}", "tools", "name", "echo",
                  "description", "Returns its text argument unchanged.", "inputSchema", "type",
                  "object", "properties", "text", "type", "string", "description",
                  "Text to echo back.", "required", "text");

    h2o_config_init(&config);
    config.server_name = h2o_iovec_init(H2O_STRLIT("gatehouse-bench-fixture"));
    config.max_request_entity_size = FIXTURE_MAX_BODY;
    h2o_hostconf_t *host =
        h2o_config_register_host(&config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/mcp", 0);
    h2o_handler_t *handler = h2o_create_handler(path, sizeof(*handler));
    handler->on_req = on_req;

    /* Bind every socket before any thread runs, so that a bind failure is reported at once and
       --port 0 resolves to one port shared by all threads. */
    for (int i = 0; i < opts.threads; i++) {
        threads[i].fd = listen_socket(opts.port);
        if (threads[i].fd < 0) {
            fprintf(stderr, "fixture: bind 127.0.0.1:%d: %s\n", opts.port, strerror(errno));
            return 1;
        }
        if (opts.port == 0) {
            opts.port = bound_port(threads[i].fd);
        }
        if (thread_init(&threads[i]) != 0) {
            return 1;
        }
    }
    printf("fixture: listening on 127.0.0.1:%d threads=%d\n", opts.port, opts.threads);
    fflush(stdout);

    for (int i = 1; i < opts.threads; i++) {
        if (pthread_create(&threads[i].tid, NULL, thread_main, &threads[i]) != 0) {
            fprintf(stderr, "fixture: pthread_create failed\n");
            return 1;
        }
    }
    thread_main(&threads[0]);
    return 0;
}
