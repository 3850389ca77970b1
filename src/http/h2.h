/*
 * HTTP/2 on the front door, with nghttp2 under the request API the rest of the server uses.
 *
 * nghttp2 (security-maintained in Debian; the HTTP/2 library behind curl, Apache httpd and Node)
 * does the framing, HPACK, flow control and stream states, and carries the limits against the
 * 2023/2024 denial-of-service attacks (rapid reset, CONTINUATION floods, SETTINGS and PING
 * floods). This module feeds it the bytes of an h2o socket and turns each stream into an
 * h2o_req_t, so handlers, generators and h2o_send work exactly as they do over HTTP/1.1. libh2o
 * keeps HTTP/1.1 and TLS; its own HTTP/2 (2.2.5, without those fixes) is never used.
 *
 * h2_accept takes every accepted connection of a listener when HTTP/2 is on. On TLS it runs the
 * handshake and serves HTTP/2 when ALPN selected "h2"; on cleartext it reads the first bytes and
 * serves HTTP/2 when they are the connection preface (prior knowledge, RFC 9113 §3.3). Anything
 * else goes to h2o's HTTP/1.1 with the bytes already read. `Upgrade: h2c` is not offered (RFC
 * 9113 §3.1 deprecates it).
 *
 * Everything runs on the worker thread whose loop accepted the connection.
 */
#ifndef GH_HTTP_H2_H
#define GH_HTTP_H2_H

#include <stddef.h>
#include <stdint.h>

#include <h2o.h>

struct h2_limits {
    uint32_t max_streams;          /* SETTINGS_MAX_CONCURRENT_STREAMS */
    size_t max_header_list;        /* bytes of request header fields (RFC 9113 §6.5.2); 431 over */
    size_t max_body;               /* request body bytes; 413 and the stream reset over */
    size_t max_conn_body;          /* request body bytes buffered at once on one connection (all its
                                      streams); the stream that would pass it is reset (REFUSED_STREAM) */
    uint32_t idle_timeout_ms;      /* no open stream and nothing received: GOAWAY and close */
    uint32_t write_timeout_ms;     /* a write that makes no progress this long: close */
    uint32_t handshake_timeout_ms; /* TLS handshake, or the first bytes on cleartext */
    uint32_t reset_burst;          /* streams the client may reset at once … */
    uint32_t reset_rate; /* … and per second after that; then GOAWAY ENHANCE_YOUR_CALM */
};

/* The ALPN list of a TLS listener with HTTP/2 on ("h2", then "http/1.1"), for
   h2o_ssl_register_alpn_protocols. */
extern const h2o_iovec_t h2_alpn_protocols[];

struct h2_server; /* one per worker */

struct h2_server *h2_server_new(uv_loop_t *loop, const struct h2_limits *lim);

/* Serve an accepted socket of the listener whose accept context is actx (its ssl_ctx decides
   TLS). Takes the socket. */
void h2_accept(struct h2_server *hs, h2o_accept_ctx_t *actx, h2o_socket_t *sock);

/* Graceful stop: GOAWAY on every HTTP/2 connection; each closes once its open streams are done,
   an idle one at once. New connections are refused from now on. */
void h2_server_shutdown(struct h2_server *hs);

/* HTTP/2 connections open (and connections still in their handshake). */
unsigned h2_server_conns(const struct h2_server *hs);

/* Free after the loop has closed every handle (the connections are gone by then). */
void h2_server_free(struct h2_server *hs);

#endif
