/*
 * Fuzz the front door's header checks (src/http/check.c) and hold them to their contract, not
 * only to not crashing. Input layout: four fields separated by '\n' — Host, Origin, Accept,
 * Content-Type; a first byte with bit 0 set means the Origin header is absent, bit 1 the
 * Content-Type.
 *
 * Properties (a violation aborts, which the fuzzer and the corpus replay report):
 *   - a Host is accepted exactly when it is an allowed host, optionally followed by ":" and one
 *     to five digits (an oracle written separately from the parser below);
 *   - an Origin is accepted exactly when it is an allowed origin or "http://" / "https://"
 *     followed by an accepted Host;
 *   - what is refused names why: ERR_DENIED and a message that quotes the header by name and
 *     names the configuration key to change, in plain ASCII whatever bytes the value held;
 *     nothing is written on acceptance;
 *   - a POST's headers are accepted only with a Content-Type whose media type is
 *     application/json and an Accept naming both types or the wildcard; a refusal carries 406 or
 *     415 and a message naming the header.
 */
#include "http/server.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char h0[] = "localhost", h1[] = "127.0.0.1", h2[] = "[::1]", h3[] = "gw.example";
static char *hosts[] = {h0, h1, h2, h3};
static char o0[] = "https://app.example";
static char *origins[] = {o0};

static void violated(const char *what, const char *v, size_t n)
{
    fprintf(stderr, "fuzz_front: property violated: %s (value \"%.*s\")\n", what, (int)n, v);
    abort();
}

static const char *field(const char **p, const char *end, size_t *len)
{
    const char *start = *p;
    const char *nl = memchr(start, '\n', (size_t)(end - start));
    const char *stop = nl ? nl : end;
    *len = (size_t)(stop - start);
    *p = nl ? nl + 1 : end;
    return start;
}

/* The oracle for Host: one of the allowed names, then nothing or ':' and 1-5 digits. */
static int host_oracle(const char *v, size_t n)
{
    for (size_t i = 0; i < sizeof(hosts) / sizeof(hosts[0]); i++) {
        size_t k = strlen(hosts[i]);
        if (n < k || strncasecmp(v, hosts[i], k) != 0)
            continue;
        if (n == k)
            return 1;
        if (v[k] != ':' || n - k - 1 < 1 || n - k - 1 > 5)
            continue;
        size_t d = k + 1;
        while (d < n && v[d] >= '0' && v[d] <= '9')
            d++;
        if (d == n)
            return 1;
    }
    return 0;
}

static int origin_oracle(const char *v, size_t n)
{
    for (size_t i = 0; i < sizeof(origins) / sizeof(origins[0]); i++)
        if (strlen(origins[i]) == n && strncasecmp(v, origins[i], n) == 0)
            return 1;
    if (n >= 7 && strncasecmp(v, "http://", 7) == 0)
        return host_oracle(v + 7, n - 7);
    if (n >= 8 && strncasecmp(v, "https://", 8) == 0)
        return host_oracle(v + 8, n - 8);
    return 0;
}

/* The media type of a Content-Type, parameters and blanks stripped, is application/json. */
static int ctype_oracle(const char *v, size_t n)
{
    while (n > 0 && (*v == ' ' || *v == '\t'))
        v++, n--;
    static const char want[] = "application/json";
    if (n < 16 || strncasecmp(v, want, 16) != 0)
        return 0;
    for (size_t i = 16; i < n; i++) {
        if (v[i] == ';')
            return 1;
        if (v[i] != ' ' && v[i] != '\t')
            return 0;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 8192)
        return 0;
    struct config cfg = {0};
    cfg.allowed_hosts = hosts;
    cfg.nallowed_hosts = sizeof(hosts) / sizeof(hosts[0]);
    cfg.allowed_origins = origins;
    cfg.nallowed_origins = sizeof(origins) / sizeof(origins[0]);

    const char *p = (const char *)data + 1, *end = (const char *)data + size;
    size_t hlen, olen, alen, clen;
    const char *host = field(&p, end, &hlen);
    const char *origin = field(&p, end, &olen);
    const char *accept = field(&p, end, &alen);
    const char *ctype = field(&p, end, &clen);
    if (data[0] & 1)
        origin = NULL, olen = 0;
    if (data[0] & 2)
        ctype = NULL, clen = 0;

    int host_ok = hlen > 0 && host_oracle(host, hlen);
    if (http_host_allowed(&cfg, host, hlen) != (hlen > 0 && host_ok))
        violated("http_host_allowed disagrees with the oracle", host, hlen);

    struct err_info ei;
    memset(&ei, 0, sizeof(ei));
    int rc = http_check_host_origin(&cfg, host, hlen, origin, olen, &ei);
    int want_ok = host_ok && (origin == NULL || origin_oracle(origin, olen));
    if (rc == 0) {
        if (!want_ok && !host_ok)
            violated("a Host the oracle refuses was accepted", host, hlen);
        if (!want_ok)
            violated("an Origin the oracle refuses was accepted", origin, olen);
        if (ei.msg[0] != '\0')
            violated("an acceptance wrote a message", host, hlen);
    } else {
        if (want_ok)
            violated("a Host and Origin the oracle accepts were refused", ei.msg, strlen(ei.msg));
        if (rc != ERR_DENIED)
            violated("a refusal that is not ERR_DENIED", host, hlen);
        const char *named = !host_ok ? "Host \"" : "Origin \"";
        const char *key = !host_ok ? "allowed_hosts" : "allowed_origins";
        if (strncmp(ei.msg, named, strlen(named)) != 0 || strstr(ei.msg, key) == NULL)
            violated("a refusal that does not name its header and key", ei.msg, strlen(ei.msg));
        for (const char *m = ei.msg; *m; m++)
            if (*m < 0x20 || *m > 0x7e)
                violated("a refusal message that is not plain ASCII", ei.msg, strlen(ei.msg));
    }

    int status = 0;
    memset(&ei, 0, sizeof(ei));
    rc = http_check_post_headers(accept, alen, ctype, clen, &status, &ei);
    if (rc == 0) {
        if (ctype == NULL || !ctype_oracle(ctype, clen))
            violated("a Content-Type that is not application/json was accepted", ctype ? ctype : "",
                     clen);
        if (!http_accept_lists(accept, alen, "*/*") &&
            !(http_accept_lists(accept, alen, "application/json") &&
              http_accept_lists(accept, alen, "text/event-stream")))
            violated("an Accept without both types was accepted", accept, alen);
    } else {
        if (rc != ERR_INVAL || (status != 406 && status != 415) || ei.msg[0] == '\0')
            violated("a POST refusal without its status and reason", accept, alen);
        if (strstr(ei.msg, status == 406 ? "Accept" : "Content-Type") == NULL)
            violated("a POST refusal that does not name its header", ei.msg, strlen(ei.msg));
        if (status == 415 && ctype != NULL && ctype_oracle(ctype, clen) &&
            (http_accept_lists(accept, alen, "*/*") ||
             (http_accept_lists(accept, alen, "application/json") &&
              http_accept_lists(accept, alen, "text/event-stream"))))
            violated("an application/json Content-Type was refused", ctype, clen);
    }
    return 0;
}
