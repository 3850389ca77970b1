/*
 * Fuzz target for the strict HTTP/1.1 head check (src/http/framing.c), which reads the raw bytes
 * a client sends. Differential against h2o's own parser: libh2o 2.2 parses request heads with
 * picohttpparser (phr_parse_request, exported by libh2o) and frames the body from what it finds.
 * Whenever framing_parse_head accepts a head that picohttpparser also parses, both must agree
 * on where the head ends, and h2o must either refuse the head itself or frame the body exactly
 * as the check read it (h2o's rules: Transfer-Encoding wins, the first Content-Length counts),
 * so that nothing the check lets through can be read as two requests. A refusal must carry a
 * message.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http/framing.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* picohttpparser's interface as libh2o 2.2 exports it (its header is not installed). */
struct phr_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};
int phr_parse_request(const char *buf, size_t len, const char **method, size_t *method_len,
                      const char **path, size_t *path_len, int *minor_version,
                      struct phr_header *headers, size_t *num_headers, size_t last_len);

#define MAX_HEADERS 100 /* H2O_MAX_HEADERS in libh2o 2.2 */

static bool ieq(const char *a, size_t n, const char *lit)
{
    return strlen(lit) == n && strncasecmp(a, lit, n) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size ? size : 1); /* exact size: ASan sees any over-read */
    if (buf == NULL)
        return 0;
    memcpy(buf, data, size);
    struct framing_head h;
    struct err_info ei = {{0}};
    int err = framing_parse_head(buf, size, &h, &ei);
    if (err != 0) {
        if (ei.msg[0] == '\0' || memchr(ei.msg, '\0', sizeof(ei.msg)) == NULL)
            abort();
        goto out;
    }
    if (h.head_len < 4 || h.head_len > size || memcmp(buf + h.head_len - 4, "\r\n\r\n", 4) != 0)
        abort();
    if (h.has_content_length && h.chunked)
        abort();
    if (h.absolute_form && (h.authority_len == 0 || h.path_len == 0 || h.path[0] == '\0'))
        abort();

    const char *method, *path;
    size_t method_len, path_len, n = MAX_HEADERS;
    int minor;
    struct phr_header hs[MAX_HEADERS];
    int r = phr_parse_request(buf, size, &method, &method_len, &path, &path_len, &minor, hs, &n, 0);
    if (r == -2)
        abort(); /* we found a complete head where h2o would wait for more */
    if (r < 0)
        goto out; /* h2o refuses it before our check runs */
    if ((size_t)r != h.head_len || minor != h.minor_version)
        abort();
    const struct phr_header *te = NULL, *cl = NULL;
    for (size_t i = 0; i < n; i++) {
        if (hs[i].name == NULL)
            abort(); /* a continuation line that we accepted */
        if (ieq(hs[i].name, hs[i].name_len, "transfer-encoding"))
            te = &hs[i];
        else if (cl == NULL && ieq(hs[i].name, hs[i].name_len, "content-length"))
            cl = &hs[i];
    }
    /* How h2o frames the body from what picohttpparser found; a refusal by h2o is safe (it
       answers 400 and closes before any handler runs), a different framing is not. */
    if (te != NULL) {
        if (!ieq(te->value, te->value_len, "chunked"))
            goto out; /* h2o: 400 unknown transfer-encoding */
        if (!h.chunked)
            abort();
    } else if (cl != NULL) {
        uint64_t v = 0;
        for (size_t i = 0; i < cl->value_len; i++) {
            if (cl->value[i] < '0' || cl->value[i] > '9')
                goto out; /* h2o: 400 broken content-length */
            v = v * 10 + (uint64_t)(cl->value[i] - '0');
        }
        if (cl->value_len == 0)
            goto out;
        if (h.chunked || !h.has_content_length || v != h.content_length)
            abort();
    } else if (h.chunked || h.has_content_length) {
        abort();
    }
out:
    free(buf);
    return 0;
}
