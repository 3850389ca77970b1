/*
 * A loopback h2o request for the OAuth endpoints' unit tests: a real oauth_ctx (its own SQLite
 * store in a temporary directory, signing key, validator) on a real libuv loop, and requests
 * built in memory and handed to oauth_handle as the server would, their response captured by an
 * output stream of ours instead of a socket. Secret checks run on libuv's thread pool as in the
 * daemon: lb_run turns the loop until the answer is complete.
 */
#ifndef GH_TEST_OAUTH_LOOPBACK_H
#define GH_TEST_OAUTH_LOOPBACK_H

#include "oauth/oauth-int.h"
#include "core/rand.h"
#include "store/store.h"
#include "test.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#define LB_ISSUER "http://127.0.0.1:8080"

struct lb_env {
    char dir[64];
    uv_loop_t loop;
    h2o_globalconf_t globalconf;
    h2o_hostconf_t *host;
    h2o_context_t ctx;
    struct config *cfg;
    unsigned char master[AUTH_MASTER_KEY_LEN];
    struct oauth_ctx *o;
    struct store *st; /* another connection, for seeding and looking */
};

struct lb_req {
    h2o_conn_t conn;
    h2o_req_t req;
    h2o_ostream_t ostr;
    struct lb_env *env;
    bool done;
    int status;
    char body[65536];
    size_t len;
    json_t *json; /* the body, when it is JSON */
};

static socklen_t lb_peername(h2o_conn_t *conn, struct sockaddr *sa)
{
    (void)conn;
    struct sockaddr_in *in = (struct sockaddr_in *)sa;
    memset(in, 0, sizeof(*in));
    in->sin_family = AF_INET;
    in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    in->sin_port = htons(40000);
    return sizeof(*in);
}

static const h2o_conn_callbacks_t lb_callbacks = {.get_sockname = lb_peername,
                                                  .get_peername = lb_peername};

static void lb_do_send(h2o_ostream_t *self, h2o_req_t *req, h2o_iovec_t *bufs, size_t n,
                       h2o_send_state_t state)
{
    struct lb_req *r = (struct lb_req *)((char *)self - offsetof(struct lb_req, ostr));
    for (size_t i = 0; i < n; i++) {
        size_t k =
            bufs[i].len < sizeof(r->body) - 1 - r->len ? bufs[i].len : sizeof(r->body) - 1 - r->len;
        memcpy(r->body + r->len, bufs[i].base, k);
        r->len += k;
    }
    r->body[r->len] = '\0';
    if (h2o_send_state_is_in_progress(state)) {
        h2o_proceed_response(req);
    } else {
        r->done = true;
        r->status = req->res.status;
    }
}

/* The environment: `auth_yaml` is the inside of the auth: mapping (indented by 2), where $DIR
   stands for the temporary directory; $DIR/rs.secret holds LB_RS_SECRET. */
#define LB_RS_SECRET "resource-server-secret-0123456789"
static void lb_env_init(struct lb_env *e, const char *auth_yaml)
{
    struct err_info ei = {0};
    memset(e, 0, sizeof(*e));
    CHECK_INT(core_init(), 0);
    snprintf(e->dir, sizeof(e->dir), "/tmp/gh-oauth-unit-XXXXXX");
    CHECK(mkdtemp(e->dir) != NULL);
    char path[128], auth[2048] = "", yaml[4096];
    snprintf(path, sizeof(path), "%s/rs.secret", e->dir);
    FILE *fp = fopen(path, "w");
    CHECK(fp != NULL);
    if (fp != NULL) {
        fputs(LB_RS_SECRET "\n", fp);
        fclose(fp);
    }
    for (const char *p = auth_yaml ? auth_yaml : ""; *p;) {
        size_t n = strlen(auth);
        if (strncmp(p, "$DIR", 4) == 0) {
            snprintf(auth + n, sizeof(auth) - n, "%s", e->dir);
            p += 4;
        } else if (n + 1 < sizeof(auth)) {
            auth[n] = *p++;
            auth[n + 1] = '\0';
        } else {
            break;
        }
    }
    snprintf(yaml, sizeof(yaml),
             "listen: [{address: 127.0.0.1, port: 8080}]\n"
             "servers:\n  - name: a\n    url: http://127.0.0.1:9/mcp\n"
             "store:\n  sqlite: %s/gh.db\n"
             "auth:\n  enabled: true\n  issuer: %s\n%s",
             e->dir, LB_ISSUER, auth);
    int err = config_load_string(yaml, strlen(yaml), "<test>", &e->cfg, &ei);
    if (err)
        fprintf(stderr, "config: %s\n", ei.msg);
    CHECK_INT(err, 0);
    err = oauth_prepare(e->cfg, e->master, &ei);
    if (err)
        fprintf(stderr, "oauth_prepare: %s\n", ei.msg);
    CHECK_INT(err, 0);
    CHECK_INT(uv_loop_init(&e->loop), 0);
    h2o_config_init(&e->globalconf);
    e->host =
        h2o_config_register_host(&e->globalconf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_context_init(&e->ctx, &e->loop, &e->globalconf);
    err = oauth_ctx_new(&e->loop, e->master, LB_ISSUER, e->cfg, &e->o, &ei);
    if (err)
        fprintf(stderr, "oauth_ctx_new: %s\n", ei.msg);
    CHECK_INT(err, 0);
    CHECK_INT(store_open(e->cfg->store.sqlite, &e->st, &ei), 0);
}

static void lb_env_release(struct lb_env *e)
{
    oauth_ctx_shutdown(e->o);
    for (int i = 0; i < 100 && uv_run(&e->loop, UV_RUN_NOWAIT) != 0; i++)
        ;
    oauth_ctx_free(e->o);
    store_close(e->st);
    h2o_context_dispose(&e->ctx);
    h2o_config_dispose(&e->globalconf);
    uv_walk(&e->loop, (uv_walk_cb)(void (*)(void))uv_close, NULL);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    uv_loop_close(&e->loop);
    config_unref(e->cfg);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", e->dir);
    CHECK_INT(system(cmd), 0);
}

/* A new request: method, path, optional content type and body, then NULL-terminated header
   name/value pairs. Not yet handled: lb_send does that. */
static struct lb_req *lb_new(struct lb_env *e, const char *method, const char *path,
                             const char *content_type, const char *body, ...)
{
    struct lb_req *r = calloc(1, sizeof(*r));
    r->env = e;
    r->conn.ctx = &e->ctx;
    r->conn.hosts = e->globalconf.hosts;
    r->conn.callbacks = &lb_callbacks;
    h2o_init_request(&r->req, &r->conn, NULL);
    h2o_req_t *q = &r->req;
    q->input.method = q->method = h2o_strdup(&q->pool, method, SIZE_MAX);
    q->input.path = q->path = q->path_normalized = h2o_strdup(&q->pool, path, SIZE_MAX);
    char *qs = strchr(q->path.base, '?');
    if (qs != NULL) {
        q->path_normalized.len = (size_t)(qs - q->path.base);
        q->query_at = q->path_normalized.len;
    }
    q->input.authority = q->authority = h2o_iovec_init(H2O_STRLIT("127.0.0.1:8080"));
    q->input.scheme = q->scheme = &H2O_URL_SCHEME_HTTP;
    q->version = 0x101;
    q->hostconf = e->host;
    q->pathconf = &e->host->fallback_path;
    if (content_type != NULL)
        h2o_add_header(&q->pool, &q->headers, H2O_TOKEN_CONTENT_TYPE, NULL, content_type,
                       strlen(content_type));
    if (body != NULL)
        q->entity = h2o_strdup(&q->pool, body, SIZE_MAX);
    va_list ap;
    va_start(ap, body);
    for (const char *name; (name = va_arg(ap, const char *)) != NULL;) {
        const char *value = va_arg(ap, const char *);
        h2o_add_header_by_str(&q->pool, &q->headers, name, strlen(name), 1, NULL, value,
                              strlen(value));
    }
    va_end(ap);
    r->ostr.do_send = lb_do_send;
    q->_ostr_top = &r->ostr;
    return r;
}

/* Hand the request to oauth_handle and turn the loop until it is answered. */
static void lb_send(struct lb_req *r)
{
    int status = oauth_handle(r->env->o, r->env->cfg, &r->req);
    for (int i = 0; !r->done && i < 1000; i++)
        uv_run(&r->env->loop, UV_RUN_ONCE);
    CHECK(r->done);
    if (status != 0)
        CHECK_INT(status, r->status);
    r->json = json_loadb(r->body, r->len, 0, NULL);
}

static void lb_free(struct lb_req *r)
{
    json_decref(r->json);
    h2o_dispose_request(&r->req);
    free(r);
}

/* A form POST to `path`; extra headers as in lb_new. Returns the answered request. */
static struct lb_req *lb_post_form(struct lb_env *e, const char *path, const char *form, ...)
    __attribute__((sentinel));
static struct lb_req *lb_post_form(struct lb_env *e, const char *path, const char *form, ...)
{
    va_list ap;
    va_start(ap, form);
    const char *n1 = va_arg(ap, const char *), *v1 = n1 ? va_arg(ap, const char *) : NULL;
    va_end(ap);
    struct lb_req *r =
        lb_new(e, "POST", path, "application/x-www-form-urlencoded", form, n1, v1, NULL);
    lb_send(r);
    return r;
}

/* The OAuth error of an answer: status, error code, and the description must contain `why`. */
#define CHECK_OAUTH_ERROR(r, st, code, why)                                                        \
    do {                                                                                           \
        CHECK_INT((r)->status, st);                                                                \
        CHECK_STR(json_string_value(json_object_get((r)->json, "error")), code);                   \
        CHECK_CONTAINS(json_string_value(json_object_get((r)->json, "error_description")), why);   \
        if ((r)->status != (st))                                                                   \
            fprintf(stderr, "  body: %s\n", (r)->body);                                            \
    } while (0)

#endif
