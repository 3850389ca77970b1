/*
 * Fuzz target for the stdio transport's framing (src/upstream/lines.c): the bytes an upstream
 * server writes on its stdout. Differential: the stream is split in one feed and again in chunks
 * whose sizes come from the input; both runs must produce the same lines, every line must respect
 * the bound and hold no '\n', and every line goes through the JSON-RPC line parser and the log
 * preview escaper exactly as the transport does. Byte 0 picks the line bound (small bounds reach
 * the too-long paths), byte 1 seeds the chunk sizes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "upstream/lines.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct run {
    struct buf out; /* one record per line: too_long flag, length, bytes */
    size_t max;
};

static void line_seen(void *arg, const char *line, size_t len, bool too_long)
{
    struct run *r = arg;
    if (len == 0 || len > r->max || memchr(line, '\n', len) != NULL)
        abort();

    json_t *msg = NULL;
    struct err_info ei;
    int err = too_long ? ERR_LIMIT : line_parse_message(line, len, &msg, &ei);
    if (err == 0 && !json_is_object(msg))
        abort();
    if (err != 0 && err != ERR_LIMIT && (msg != NULL || ei.msg[0] == '\0'))
        abort(); /* a refusal always says why and yields nothing */
    /* An id found in a readable message is its top-level integer id. */
    long long id = line_find_id(line, len);
    json_t *mid = json_object_get(msg, "id");
    if (id < -1 ||
        (err == 0 && id >= 0 && !(json_is_integer(mid) && json_integer_value(mid) == id)))
        abort();
    json_decref(msg);

    char preview[4 * 200 + 8];
    line_escape(preview, sizeof(preview), line, len, 200);
    for (const char *p = preview; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
            abort(); /* the preview must be printable ASCII */

    buf_printf(&r->out, "%d %zu:", too_long, len);
    buf_append(&r->out, line, len);
}

/* seed < 0: one feed; otherwise chunks of 1..17 bytes, sizes drawn from the data and the seed */
static void split(struct run *r, const uint8_t *data, size_t size, int seed)
{
    struct line_splitter ls;
    line_splitter_init(&ls, r->max);
    size_t off = 0, i = 0;
    while (off < size) {
        size_t k = seed < 0 ? size : (size_t)((data[i++ % size] ^ seed) % 17) + 1;
        if (k > size - off)
            k = size - off;
        line_splitter_feed(&ls, (const char *)data + off, k, line_seen, r);
        off += k;
    }
    line_splitter_finish(&ls, line_seen, r);
    line_splitter_release(&ls);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t max = data[0] & 0x80 ? (size_t)1 << 20 : (size_t)(data[0] % 64) + 1;
    int seed = data[1];
    data += 2;
    size -= 2;

    struct run whole = {.max = max}, chunked = {.max = max};
    buf_init(&whole.out, (size_t)64 << 20);
    buf_init(&chunked.out, (size_t)64 << 20);
    split(&whole, data, size, -1);
    split(&chunked, data, size, seed);
    if (whole.out.len != chunked.out.len ||
        (whole.out.len && memcmp(whole.out.data, chunked.out.data, whole.out.len) != 0))
        abort(); /* the chunking changed the lines */
    buf_release(&whole.out);
    buf_release(&chunked.out);
    return 0;
}
