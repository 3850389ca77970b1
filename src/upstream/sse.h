/*
 * An incremental parser for Server-Sent Events, the "event stream interpretation" of the WHATWG
 * HTML standard. Bytes arrive in chunks split anywhere (inside a CRLF, inside a UTF-8 sequence,
 * inside the leading BOM); each complete event is handed to a callback as soon as its blank line
 * arrives. The upstream HTTP transport reads MCP servers' SSE responses with it and the
 * downstream side uses it in tests to read what the gateway streams.
 *
 * Bytes are passed through as they are: the parser does not decode UTF-8 (invalid sequences are
 * the JSON parser's business above it), so a split multi-byte sequence needs no special care.
 * An event type containing NUL is truncated at the NUL (it is handed out as a C string); `data`
 * is handed out with its length and may contain NUL.
 *
 * Every byte buffered for one event (the line in progress, the data so far, the event type) is
 * bounded by the maximum given at init; going past it is ERR_LIMIT and leaves the parser failed.
 * Comment lines are skipped without being buffered, so keep-alive comments cost nothing.
 * Not thread-safe; one owner.
 */
#ifndef GH_UPSTREAM_SSE_H
#define GH_UPSTREAM_SSE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"

/*
 * One dispatched event. `type` is the `event` field or "message"; `data` is the `data` lines
 * joined with '\n' (NUL-terminated for convenience; `len` excludes the NUL); `id` is the stream's
 * last event ID as of this event (it persists across events, as in EventSource) or NULL when it
 * is unset or empty; `retry_ms` is the value of a valid `retry` field seen in this event's block
 * of lines, or -1. All pointers are valid only during the call. Return 0 to continue; any other
 * value stops sse_parser_feed, which returns it; the parser is then failed (only release it).
 * The callback must not feed or release the parser it is called from.
 */
typedef int (*sse_event_cb)(void *arg, const char *type, const char *data, size_t len,
                            const char *id, long long retry_ms);

struct sse_parser {
    struct buf line;       /* the line in progress, without its terminator */
    struct buf data;       /* the data buffer of the event being built */
    struct buf type;       /* the event type buffer */
    struct buf last_id;    /* the last event ID buffer; persists across events and resets */
    size_t max;            /* bound on line + data + type bytes */
    long long retry_ms;    /* the latest valid `retry` value, or -1 */
    long long block_retry; /* `retry` seen since the last blank line, or -1 */
    unsigned bom;          /* leading-BOM bytes matched so far; 3 once decided */
    bool after_cr;         /* the last byte was CR: a following LF belongs to it */
    bool skipping;         /* inside a comment line */
    int err;               /* sticky: once set, feed returns it */
};

/* Prepare an embedded parser. max_event_bytes bounds what one event may buffer (> 0). */
void sse_parser_init(struct sse_parser *p, size_t max_event_bytes);
void sse_parser_release(struct sse_parser *p);

/*
 * Feed the next `len` bytes of the stream; cb runs for each event completed by them, in order.
 * Returns 0, ERR_LIMIT (an event outgrew the bound), ERR_NOMEM, or the callback's non-zero
 * return. After any error the parser is failed and every later call returns the same error.
 */
int sse_parser_feed(struct sse_parser *p, const void *data, size_t len, sse_event_cb cb, void *arg);

/*
 * The stream ended or was replaced by a new connection (a reconnect): discard the incomplete
 * event (as the standard does at end of stream), expect a new BOM, clear a failure, but keep the
 * last event ID and the retry value, which outlive one connection.
 */
void sse_parser_reset_stream(struct sse_parser *p);

/* The last event ID (for Last-Event-ID on reconnect), or NULL when unset or empty. */
const char *sse_parser_last_id(const struct sse_parser *p);
/* The latest reconnection time the stream asked for, in ms, or -1. */
long long sse_parser_retry(const struct sse_parser *p);

#endif
