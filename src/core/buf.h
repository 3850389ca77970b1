/*
 * A growable byte buffer with a hard maximum fixed when it is created: every buffer that holds
 * bytes from the network has a bound, and reaching it is an error (ERR_LIMIT), never a silent
 * truncation. Not thread-safe; one owner.
 */
#ifndef GH_CORE_BUF_H
#define GH_CORE_BUF_H

#include <stddef.h>

struct buf {
    char *data; /* always NUL-terminated when non-NULL (the NUL is not counted in len) */
    size_t len;
    size_t cap;
    size_t max; /* len never exceeds this */
};

void buf_init(struct buf *b, size_t max);
void buf_release(struct buf *b);
/* Append n bytes; ERR_LIMIT if len + n > max (nothing appended), ERR_NOMEM. */
int buf_append(struct buf *b, const void *p, size_t n);
int buf_append_str(struct buf *b, const char *s);
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Drop the first n bytes (n <= len). */
void buf_consume(struct buf *b, size_t n);
void buf_reset(struct buf *b);

#endif
