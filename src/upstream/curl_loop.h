/*
 * A libcurl multi handle driven by a libuv loop: curl's sockets are watched with uv_poll and its
 * timeout with one uv_timer (the multi_socket interface). The HTTP and OpenAPI transports each
 * embed one; everything runs on the loop's thread.
 */
#ifndef GH_UPSTREAM_CURL_LOOP_H
#define GH_UPSTREAM_CURL_LOOP_H

#include <curl/curl.h>
#include <stdbool.h>
#include <uv.h>

struct curl_loop_sock;

struct curl_loop {
    CURLM *multi; /* NULL once curl_loop_close began */
    uv_loop_t *loop;
    uv_timer_t timer;
    struct curl_loop_sock *socks;
    int open; /* uv handles not yet closed (sockets and the timer) */
    void *owner;
    /* Keep watching the sockets of idle connections (see curl_loop_easy_attach). */
    bool keep_idle;
    /* After curl made progress: the owner reads finished transfers (curl_multi_info_read). */
    void (*progress_cb)(void *owner);
    /* Optional: called around every call into curl, for owners that defer re-entrant work. */
    void (*enter_cb)(void *owner);
    void (*leave_cb)(void *owner);
    /* After curl_loop_close, once every handle has closed: the memory may go. */
    void (*closed_cb)(void *owner);
};

/* Initialise an embedded curl_loop (the callbacks are set by the caller first, or after: they are
   only used once transfers run). Returns 0 or ERR_NOMEM. */
int curl_loop_init(struct curl_loop *cl, uv_loop_t *loop, void *owner);
/*
 * Keep up to n idle connections open for reuse (CURLMOPT_MAXCONNECTS). libcurl's default is four
 * times the transfers in the multi at the moment one ends, which under a bursty load drops to a
 * few and closes connections that the next burst opens again (a connect and a close per ~10
 * calls at saturation); owners set it to the most transfers they run at once.
 */
void curl_loop_keep_connections(struct curl_loop *cl, long n);
/*
 * The options every outbound transfer gets, whatever it is for: no signals; no redirects (a
 * server cannot send the gateway, or a credential it injected, elsewhere); http and https only;
 * no proxy taken from the environment; the gateway's user agent. Returns curl's result.
 */
CURLcode curl_loop_easy_defaults(CURL *e);

/*
 * Every easy handle of a curl_loop with keep_idle set must be attached (after any
 * curl_easy_reset): libcurl then closes its sockets through the loop, which stops watching a
 * socket before it is closed. With keep_idle, the socket of a connection that goes back to
 * libcurl's cache stays watched instead of leaving epoll and coming back for the next call on it
 * (six epoll_ctl calls per call, measured). Returns curl's result.
 */
CURLcode curl_loop_easy_attach(struct curl_loop *cl, CURL *e);

/* Clean the multi handle up (transfers must have been removed), stop watching, close the
   handles; closed_cb runs once all have closed. */
void curl_loop_close(struct curl_loop *cl);

#endif
