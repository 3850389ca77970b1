/* curl's multi_socket interface on a libuv loop; see curl_loop.h. */
#include "upstream/curl_loop.h"
#include "core/err.h"
#include "core/log.h"

#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

struct curl_loop_sock {
    uv_poll_t poll;
    curl_socket_t fd;
    struct curl_loop *cl;
    int events; /* what the poll watches now (UV_READABLE | UV_WRITABLE), 0 when stopped */
    bool idle;  /* curl stopped watching it (a connection back in its cache); still open */
    struct curl_loop_sock *prev, *next;
};

static void handle_closed(struct curl_loop *cl)
{
    if (--cl->open == 0 && cl->multi == NULL && cl->closed_cb)
        cl->closed_cb(cl->owner);
}

static void sock_closed(uv_handle_t *h)
{
    struct curl_loop_sock *s = h->data;
    struct curl_loop *cl = s->cl;
    free(s);
    handle_closed(cl);
}

static void sock_close(struct curl_loop_sock *s)
{
    struct curl_loop *cl = s->cl;
    if (s->prev)
        s->prev->next = s->next;
    else
        cl->socks = s->next;
    if (s->next)
        s->next->prev = s->prev;
    uv_poll_stop(&s->poll);
    uv_close((uv_handle_t *)&s->poll, sock_closed);
}

/* Tell curl what happened on fd (or that its timeout passed), then let the owner reap. */
static void drive(struct curl_loop *cl, curl_socket_t fd, int flags)
{
    int running = 0;
    if (cl->enter_cb)
        cl->enter_cb(cl->owner);
    if (cl->multi) {
        curl_multi_socket_action(cl->multi, fd, flags, &running);
        if (cl->progress_cb)
            cl->progress_cb(cl->owner);
    }
    if (cl->leave_cb)
        cl->leave_cb(cl->owner);
}

static void poll_cb(uv_poll_t *h, int status, int events)
{
    struct curl_loop_sock *s = h->data;
    if (s->idle) {
        /* An idle connection spoke (the server closed it, most likely): curl finds out when it
           next uses it; until then the socket is not watched, or it would wake the loop forever. */
        uv_poll_stop(&s->poll);
        s->events = 0;
        return;
    }
    int flags = 0;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    drive(s->cl, s->fd, flags);
}

static struct curl_loop_sock *sock_find(struct curl_loop *cl, curl_socket_t fd)
{
    for (struct curl_loop_sock *s = cl->socks; s; s = s->next)
        if (s->fd == fd)
            return s;
    return NULL;
}

static int socket_fn(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp)
{
    struct curl_loop *cl = userp;
    struct curl_loop_sock *s = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (s) {
            if (cl->keep_idle && cl->multi) {
                /* Kept, and left watching what it watched: if curl takes the connection again
                   for the next call and wants the same, nothing changes in epoll. It is closed
                   with the socket (closesocket_cb). */
                s->idle = true;
                uv_unref((uv_handle_t *)&s->poll); /* as before: an idle socket holds no loop */
            } else {
                sock_close(s);
            }
            if (cl->multi)
                curl_multi_assign(cl->multi, fd, NULL);
        }
        return 0;
    }
    if (s == NULL && cl->keep_idle && (s = sock_find(cl, fd)) != NULL) {
        s->idle = false;
        uv_ref((uv_handle_t *)&s->poll);
        curl_multi_assign(cl->multi, fd, s);
    }
    if (s == NULL) {
        if ((s = calloc(1, sizeof(*s))) == NULL)
            return -1;
        if (uv_poll_init_socket(cl->loop, &s->poll, fd) != 0) {
            log_error("upstream_poll", "cannot watch socket %d", (int)fd);
            free(s);
            return -1;
        }
        s->fd = fd;
        s->cl = cl;
        s->poll.data = s;
        cl->open++;
        s->next = cl->socks;
        if (cl->socks)
            cl->socks->prev = s;
        cl->socks = s;
        curl_multi_assign(cl->multi, fd, s);
    }
    int ev = 0;
    if (what & CURL_POLL_IN)
        ev |= UV_READABLE;
    if (what & CURL_POLL_OUT)
        ev |= UV_WRITABLE;
    /* uv_poll_start takes the socket out of epoll and puts it back even when nothing changes */
    if (ev != s->events || !uv_is_active((uv_handle_t *)&s->poll)) {
        uv_poll_start(&s->poll, ev, poll_cb);
        s->events = ev;
    }
    return 0;
}

/* libcurl closes a socket: stop watching it first, while the descriptor is still its. */
static int closesocket_cb(void *clientp, curl_socket_t fd)
{
    struct curl_loop *cl = clientp;
    struct curl_loop_sock *s = sock_find(cl, fd);
    if (s) /* curl forgot it already (Curl_multi_closed): it is idle */
        sock_close(s);
    return close(fd);
}

CURLcode curl_loop_easy_attach(struct curl_loop *cl, CURL *e)
{
    CURLcode cc = curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, closesocket_cb);
    if (cc == CURLE_OK)
        cc = curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, cl);
    return cc;
}

static void timer_cb(uv_timer_t *h)
{
    drive(h->data, CURL_SOCKET_TIMEOUT, 0);
}

static int timer_fn(CURLM *m, long timeout_ms, void *userp)
{
    struct curl_loop *cl = userp;
    if (timeout_ms < 0)
        uv_timer_stop(&cl->timer);
    else
        uv_timer_start(&cl->timer, timer_cb, (uint64_t)timeout_ms, 0);
    return 0;
}

int curl_loop_init(struct curl_loop *cl, uv_loop_t *loop, void *owner)
{
    cl->multi = curl_multi_init();
    if (cl->multi == NULL)
        return ERR_NOMEM;
    cl->loop = loop;
    cl->owner = owner;
    cl->socks = NULL;
    cl->keep_idle = false;
    uv_timer_init(loop, &cl->timer);
    cl->timer.data = cl;
    cl->open = 1;
    curl_multi_setopt(cl->multi, CURLMOPT_SOCKETFUNCTION, socket_fn);
    curl_multi_setopt(cl->multi, CURLMOPT_SOCKETDATA, cl);
    curl_multi_setopt(cl->multi, CURLMOPT_TIMERFUNCTION, timer_fn);
    curl_multi_setopt(cl->multi, CURLMOPT_TIMERDATA, cl);
    return 0;
}

void curl_loop_keep_connections(struct curl_loop *cl, long n)
{
    if (cl->multi && n > 0)
        curl_multi_setopt(cl->multi, CURLMOPT_MAXCONNECTS, n);
}

static void timer_closed(uv_handle_t *h)
{
    handle_closed(h->data);
}

void curl_loop_close(struct curl_loop *cl)
{
    CURLM *m = cl->multi;
    if (m == NULL)
        return;
    cl->multi = NULL; /* socket_fn may run from the cleanup: it must not touch the multi */
    curl_multi_cleanup(m);
    while (cl->socks)
        sock_close(cl->socks);
    uv_close((uv_handle_t *)&cl->timer, timer_closed);
}

CURLcode curl_loop_easy_defaults(CURL *e)
{
    CURLcode cc = curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    if (cc == CURLE_OK)
        cc = curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    if (cc == CURLE_OK)
        cc = curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    if (cc == CURLE_OK)
        cc = curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    if (cc == CURLE_OK)
        cc = curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
    if (cc == CURLE_OK)
        cc = curl_easy_setopt(e, CURLOPT_USERAGENT, "gatehouse");
    /* The path goes exactly as built: libcurl would otherwise remove "." and ".." segments,
     * and a request must reach the resource it was built (and allowed) for, not another. */
    if (cc == CURLE_OK)
        cc = curl_easy_setopt(e, CURLOPT_PATH_AS_IS, 1L);
    return cc;
}
