/*
 * Fuzz target for the SSE parser (src/upstream/sse.c), which reads bytes straight from upstream
 * servers. Differential: the input is parsed in one feed and again in chunks whose sizes come
 * from the input itself; both runs must produce the same events and the same result, and every
 * event must respect the parser's bound. The first byte picks the bound (small bounds reach the
 * ERR_LIMIT paths).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/err.h"
#include "upstream/sse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct run {
    struct buf out;
    size_t max;
};

static int record_cb(void *arg, const char *type, const char *d, size_t len, const char *id,
                     long long retry_ms)
{
    struct run *r = arg;
    /* "message" is the default type, not buffered bytes, so it may exceed a tiny bound. */
    if (len > r->max || (strcmp(type, "message") != 0 && strlen(type) > r->max) ||
        (id && strlen(id) > r->max))
        abort(); /* an event outgrew the bound */
    if (retry_ms < -1 || d[len] != '\0')
        abort();
    buf_printf(&r->out, "%s|%zu:", type, len);
    buf_append(&r->out, d, len);
    buf_printf(&r->out, "|%s|%lld\n", id ? id : "-", retry_ms);
    return 0;
}

static int parse(const uint8_t *data, size_t size, size_t max, const uint8_t *steps, size_t nsteps,
                 struct run *r)
{
    struct sse_parser p;
    sse_parser_init(&p, max);
    buf_init(&r->out, 1 << 24);
    r->max = max;
    int rc = 0;
    size_t at = 0, k = 0;
    while (at < size) {
        size_t n = nsteps ? (size_t)steps[k++ % nsteps] % 17 + 1 : size;
        if (n > size - at)
            n = size - at;
        /* A private copy of each chunk, so a read past it is caught. */
        uint8_t *piece = malloc(n);
        memcpy(piece, data + at, n);
        rc = sse_parser_feed(&p, piece, n, record_cb, r);
        free(piece);
        at += n;
        if (rc)
            break;
    }
    if (rc == 0 && sse_parser_feed(&p, "", 0, record_cb, r) != 0)
        abort();
    sse_parser_release(&p);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t max = data[0] < 128 ? (size_t)data[0] + 1 : 1 << 16;
    data++;
    size--;
    struct run whole, split;
    int rc1 = parse(data, size, max, NULL, 0, &whole);
    int rc2 = parse(data, size, max, data, size, &split);
    if (rc1 != rc2 || whole.out.len != split.out.len ||
        (whole.out.len && memcmp(whole.out.data, split.out.data, whole.out.len) != 0)) {
        fprintf(stderr, "fuzz_sse: chunked parse differs from whole parse (%d vs %d)\n", rc1, rc2);
        abort();
    }
    if (rc1 != 0 && rc1 != ERR_LIMIT)
        abort();
    buf_release(&whole.out);
    buf_release(&split.out);
    return 0;
}
