/*
 * The SSE parser (see sse.h). Input is scanned for line terminators with the bytes between them
 * appended to the line buffer; a terminator completes the line, which is then interpreted as a
 * field or, when empty, dispatches the event. A CR at the end of a chunk leaves `after_cr` set so
 * that the LF starting the next chunk is taken as the second half of a CRLF, not a blank line.
 */
#include "upstream/sse.h"

#include <limits.h>
#include <string.h>

#include "core/err.h"

/* Give back a large data buffer after its event rather than keep the peak for the stream's life. */
#define SSE_KEEP_CAPACITY (64 * 1024)

static const unsigned char bom_bytes[3] = {0xEF, 0xBB, 0xBF};

void sse_parser_init(struct sse_parser *p, size_t max_event_bytes)
{
    memset(p, 0, sizeof(*p));
    p->max = max_event_bytes;
    buf_init(&p->line, max_event_bytes);
    buf_init(&p->data, max_event_bytes);
    buf_init(&p->type, max_event_bytes);
    buf_init(&p->last_id, max_event_bytes);
    p->retry_ms = -1;
    p->block_retry = -1;
}

void sse_parser_release(struct sse_parser *p)
{
    buf_release(&p->line);
    buf_release(&p->data);
    buf_release(&p->type);
    buf_release(&p->last_id);
}

void sse_parser_reset_stream(struct sse_parser *p)
{
    buf_release(&p->line);
    buf_release(&p->data);
    buf_release(&p->type);
    p->block_retry = -1;
    p->bom = 0;
    p->after_cr = false;
    p->skipping = false;
    p->err = 0;
}

const char *sse_parser_last_id(const struct sse_parser *p)
{
    return p->last_id.len ? p->last_id.data : NULL;
}

long long sse_parser_retry(const struct sse_parser *p)
{
    return p->retry_ms;
}

/* Bytes buffered for the current event. */
static size_t pending(const struct sse_parser *p)
{
    return p->line.len + p->data.len + p->type.len;
}

static int line_append(struct sse_parser *p, const void *s, size_t n)
{
    if (n > p->max - pending(p))
        return ERR_LIMIT;
    return buf_append(&p->line, s, n);
}

static int dispatch(struct sse_parser *p, sse_event_cb cb, void *arg)
{
    long long retry = p->block_retry;
    p->block_retry = -1;
    if (p->data.len == 0) {
        buf_reset(&p->type);
        return 0;
    }
    /* Every data line appended a '\n'; the last one is not part of the event. */
    size_t len = p->data.len - 1;
    p->data.data[len] = '\0';
    const char *type = p->type.len ? p->type.data : "message";
    int rc = cb(arg, type, p->data.data, len, sse_parser_last_id(p), retry);
    if (p->data.cap > SSE_KEEP_CAPACITY)
        buf_release(&p->data);
    else
        buf_reset(&p->data);
    buf_reset(&p->type);
    return rc;
}

static void set_retry(struct sse_parser *p, const char *v, size_t n)
{
    if (n == 0)
        return;
    long long ms = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return; /* not all ASCII digits: ignored, as the standard says */
        if (ms <= (LLONG_MAX - 9) / 10)
            ms = ms * 10 + (v[i] - '0');
        else
            ms = LLONG_MAX; /* saturate absurd values rather than wrap */
    }
    p->retry_ms = ms;
    p->block_retry = ms;
}

/* Interpret one complete, non-comment, non-empty line (in p->line). */
static int process_field(struct sse_parser *p)
{
    const char *line = p->line.data;
    size_t n = p->line.len;
    const char *colon = memchr(line, ':', n);
    size_t name_len = colon ? (size_t)(colon - line) : n;
    const char *value = colon ? colon + 1 : line + n;
    size_t value_len = n - (size_t)(value - line);
    if (value_len > 0 && value[0] == ' ') {
        value++;
        value_len--;
    }

#define FIELD_IS(s) (name_len == sizeof(s) - 1 && memcmp(line, s, sizeof(s) - 1) == 0)
    if (FIELD_IS("data")) {
        /* The line itself is about to be dropped, so count what remains: data + value + '\n'. */
        if (value_len + 1 > p->max - (p->data.len + p->type.len))
            return ERR_LIMIT;
        int err = buf_append(&p->data, value, value_len);
        if (err == 0)
            err = buf_append(&p->data, "\n", 1);
        return err;
    }
    if (FIELD_IS("event")) {
        if (value_len > p->max - p->data.len)
            return ERR_LIMIT;
        buf_reset(&p->type);
        return buf_append(&p->type, value, value_len);
    }
    if (FIELD_IS("id")) {
        if (memchr(value, '\0', value_len) != NULL)
            return 0; /* an id with NUL is ignored */
        buf_reset(&p->last_id);
        return buf_append(&p->last_id, value, value_len);
    }
    if (FIELD_IS("retry"))
        set_retry(p, value, value_len);
#undef FIELD_IS
    return 0; /* unknown fields are ignored */
}

static const unsigned char *find_eol(const unsigned char *s, const unsigned char *end)
{
    for (; s < end; s++) {
        if (*s == '\n' || *s == '\r')
            return s;
    }
    return end;
}

int sse_parser_feed(struct sse_parser *p, const void *data, size_t len, sse_event_cb cb, void *arg)
{
    const unsigned char *s = data, *end = s + len;
    int err = p->err;
    if (err)
        return err;

    /* One leading U+FEFF is dropped; a partial match that fails was ordinary bytes. */
    while (p->bom < 3 && s < end) {
        if (*s == bom_bytes[p->bom]) {
            p->bom++;
            s++;
            continue;
        }
        unsigned matched = p->bom;
        p->bom = 3;
        if (matched && (err = line_append(p, bom_bytes, matched)) != 0)
            goto out;
    }

    while (s < end) {
        if (p->after_cr) {
            p->after_cr = false;
            if (*s == '\n') {
                s++;
                continue;
            }
        }
        const unsigned char *eol = find_eol(s, end);
        size_t n = (size_t)(eol - s);
        if (n > 0 && !p->skipping) {
            if (p->line.len == 0 && s[0] == ':')
                p->skipping = true; /* a comment: never buffered */
            else if ((err = line_append(p, s, n)) != 0)
                goto out;
        }
        s = eol;
        if (s == end)
            break;
        p->after_cr = *s == '\r';
        s++;
        if (p->skipping)
            p->skipping = false;
        else if (p->line.len == 0)
            err = dispatch(p, cb, arg);
        else
            err = process_field(p);
        buf_reset(&p->line);
        if (err)
            goto out;
    }

out:
    p->err = err;
    return err;
}
