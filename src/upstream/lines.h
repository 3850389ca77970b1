/*
 * Newline framing for the stdio transport, kept free of processes and sockets so that the fuzzer
 * and the unit tests can drive it with plain bytes. A line_splitter cuts a byte stream into
 * lines at '\n' (a "\r\n" ending loses its '\r'), holds at most `max_line` bytes of a line it has
 * not finished, and reports a longer line once, by its first `max_line` bytes, before skipping to
 * the next '\n'. line_parse_message turns one line into a JSON-RPC message (a JSON object) and
 * says precisely why it refused one; line_escape makes a printable preview of hostile bytes for
 * the log.
 */
#ifndef GH_UPSTREAM_LINES_H
#define GH_UPSTREAM_LINES_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "core/buf.h"
#include "core/err.h"

/*
 * Called for every non-empty line, without its "\n" or "\r\n". `line` is valid only during the
 * call (it may point into the caller's chunk or into the splitter's buffer) and is not
 * NUL-terminated. When `too_long` is true, the line was longer than max_line: `line` holds its
 * first max_line bytes and the rest of it is skipped without another call. The callback must not
 * feed, finish or release the splitter that called it.
 */
typedef void (*line_cb)(void *arg, const char *line, size_t len, bool too_long);

struct line_splitter {
    struct buf part; /* the unfinished line; bounded by max_line + 1 (room for a '\r') */
    size_t max_line;
    bool skipping; /* inside a line already reported as too long: drop bytes up to '\n' */
};

/* max_line >= 1; values above SIZE_MAX / 2 are clamped. Allocates nothing. */
void line_splitter_init(struct line_splitter *ls, size_t max_line);
/* Frees the buffer; the splitter may be fed again afterwards, as if new. */
void line_splitter_release(struct line_splitter *ls);

/*
 * Split n more bytes, calling cb for each line they complete. Returns 0, or ERR_NOMEM when the
 * unfinished line could not be buffered: that line is dropped (skipped to its '\n') and the
 * stream stays usable.
 */
int line_splitter_feed(struct line_splitter *ls, const char *data, size_t n, line_cb cb, void *arg);

/* End of stream: a last line without '\n' is delivered as if it had one. The splitter is left
   empty and may be fed again. */
void line_splitter_finish(struct line_splitter *ls, line_cb cb, void *arg);

/*
 * Parse one line as a JSON-RPC message. "\u0000" in a string is accepted (JSON allows it; the
 * string keeps its length). On success returns 0 and stores a new reference to a JSON object in
 * *out. Refuses, filling ei->msg (if ei is not NULL) with the reason:
 *   ERR_PARSE    not JSON: syntax, invalid UTF-8, a raw NUL byte, a duplicate key, trailing
 *                bytes (ei->column is the 1-based byte position jansson reports);
 *   ERR_PROTOCOL valid JSON that is not an object: an array (a JSON-RPC batch, which MCP no
 *                longer allows) or a scalar.
 * The reason never quotes the line: a server's output may carry secrets (tool output), and the
 * reason is logged and shown to clients.
 */
int line_parse_message(const char *line, size_t len, json_t **out, struct err_info *ei);

/*
 * jansson's reason for refusing a text (je->text) without the " near '…'" part that quotes the
 * text itself, into out (NUL-terminated). Returns out.
 */
char *line_json_reason(char *out, size_t out_size, const json_error_t *je);

/*
 * The integer "id" member of the top-level object of a line that is not valid JSON, found by a
 * tolerant scan that follows strings and nesting (so an "id" inside params or a result is not
 * taken), up to the first byte the scan cannot follow. Returns the id (>= 0), or -1 when there
 * is none. For relating an unreadable answer to the call it answers.
 */
long long line_find_id(const char *line, size_t len);

/*
 * Write a printable ASCII preview of at most `max_in` bytes of `in` into out (NUL-terminated,
 * out_size >= 1): printable ASCII is kept except '\\', which is doubled; every other byte
 * becomes \xNN; "..." is appended when input was cut (by max_in or by out_size). Returns out.
 */
char *line_escape(char *out, size_t out_size, const char *in, size_t n, size_t max_in);

#endif
