/*
 * Strict HTTP/1.1 message framing for the front door (RFC 9112), enforced in our own request
 * path on top of libh2o 2.2.
 *
 * h2o 2.2 parses the request head with picohttpparser and decides how many body bytes belong to
 * the request before any handler runs: Transfer-Encoding wins over Content-Length, the first of
 * several Content-Length headers wins, the last Host wins, and none of these headers reaches the
 * handler (they are not in req->headers). An ambiguous head therefore cannot be judged from the
 * h2o request; it is judged here from the raw head, which h2o keeps at the start of the
 * connection's input buffer until the response is sent. A refused request gets a 400 and the
 * connection is closed after it, so that whatever h2o left in the buffer (a smuggled request)
 * is never parsed.
 *
 * When the gateway closes a connection after an error answer, the client may still be sending
 * (a body over the limit, the rest of a refused request). Closing a socket with unread input
 * makes the kernel send a reset, which can destroy the answer before the client reads it. h2o
 * 2.2 has no lingering close, so this module adds one: it keeps a duplicate of the socket, and
 * after h2o has closed its own descriptor it half-closes the connection and reads and discards
 * what the client still sends, for a bounded time and size, before closing.
 *
 * Everything runs on the worker thread that owns the connection.
 */
#ifndef GH_HTTP_FRAMING_H
#define GH_HTTP_FRAMING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

/* What framing_parse_head found in an accepted head. Pointers point into the parsed buffer. */
struct framing_head {
    size_t head_len;   /* bytes of the head, up to and including the empty line */
    int minor_version; /* HTTP/1.0 or HTTP/1.1 */
    bool has_content_length;
    uint64_t content_length;
    bool chunked;          /* Transfer-Encoding: chunked */
    bool absolute_form;    /* the target is an absolute http(s) URI (RFC 9112 §3.2.2) */
    bool https;            /* absolute-form: its scheme is https */
    const char *authority; /* absolute-form: host[:port] of the target */
    size_t authority_len;
    const char *path; /* absolute-form: path and query of the target ("/" when empty) */
    size_t path_len;
};

/*
 * Check the request head at the start of buf[0..len): request line, header fields and the
 * framing they imply. Refuses (ERR_PARSE, ei->msg naming the cause, safe to show the client):
 * a line not ended by CRLF (bare LF, bare CR), a NUL or other control byte, obs-fold, whitespace
 * before a colon, a header name that is not a token, a version other than HTTP/1.0 or 1.1, a
 * target that is neither origin-form, absolute http(s) form nor "*", several Content-Length or
 * Transfer-Encoding or Host headers, a Content-Length that is not a plain decimal number,
 * Content-Length together with Transfer-Encoding, a transfer coding other than "chunked",
 * Transfer-Encoding in HTTP/1.0, and an HTTP/1.1 request without Host. ERR_PARSE also when buf
 * holds no complete head. On success fills *out. Pure function; any thread.
 */
int framing_parse_head(const char *buf, size_t len, struct framing_head *out, struct err_info *ei);

#ifdef H2O_VERSION /* the h2o glue, for src/http/server.c */

/*
 * Judge an HTTP/1.x request from its raw head (HTTP/2 requests pass: h2o frames them). On a
 * refusal: returns ERR_PARSE with ei->msg naming the cause and marks the connection to be
 * closed after the answer (the caller sends a 400). An absolute-form target is applied: the
 * request's authority, path and query become the target's (its Host header is ignored, RFC
 * 9112 §3.2.2), so that the Host checks that follow judge the target's authority.
 */
int framing_check_request(h2o_req_t *req, struct err_info *ei);

/* Give every error answer after which an HTTP/1 connection closes a lingering close. Register
   on every path configuration that answers requests, including the host's fallback_path (where
   h2o's own 400 and 413 for a body it refused are answered). */
void framing_register_linger(h2o_pathconf_t *pathconf);

/* Lingering closes still under way on the calling worker thread (shutdown waits for them). */
unsigned framing_lingering(void);

#endif

#endif
