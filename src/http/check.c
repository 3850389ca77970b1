/*
 * The checks the front door makes on a request's headers before anything else sees it, as pure
 * functions of the header values and the configuration (see server.h), so that the unit tests
 * and a fuzzer can hold them to their contract without a listener: DNS-rebinding protection
 * (Host, Origin) and the media types of an MCP POST or GET (Accept, Content-Type).
 */
#include "http/server.h"

#include <stdbool.h>
#include <string.h>
#include <strings.h>

#define QUOTE_MAX 200 /* how much of a message a refused value may take */

static bool all_digits(const char *p, size_t n)
{
    if (n == 0 || n > 5)
        return false;
    for (size_t i = 0; i < n; i++)
        if (p[i] < '0' || p[i] > '9')
            return false;
    return true;
}

/* The host part of "host", "host:port", "[v6]" or "[v6]:port": its length, or 0 when what
   follows it is not a port (digits only). */
static size_t host_part(const char *v, size_t len)
{
    size_t n;
    if (len > 0 && v[0] == '[') {
        const char *close = memchr(v, ']', len);
        if (close == NULL)
            return 0;
        n = (size_t)(close - v) + 1;
    } else {
        const char *colon = memchr(v, ':', len);
        n = colon ? (size_t)(colon - v) : len;
    }
    if (n == len)
        return n;
    if (v[n] != ':' || !all_digits(v + n + 1, len - n - 1))
        return 0;
    return n;
}

bool http_host_allowed(const struct config *cfg, const char *host, size_t len)
{
    size_t n = host_part(host, len);
    if (n == 0)
        return false;
    for (size_t i = 0; i < cfg->nallowed_hosts; i++)
        if (strlen(cfg->allowed_hosts[i]) == n && strncasecmp(cfg->allowed_hosts[i], host, n) == 0)
            return true;
    return false;
}

bool http_origin_listed(const struct config *cfg, const char *origin, size_t len)
{
    for (size_t i = 0; origin != NULL && i < cfg->nallowed_origins; i++)
        if (strlen(cfg->allowed_origins[i]) == len &&
            strncasecmp(cfg->allowed_origins[i], origin, len) == 0)
            return true;
    return false;
}

static bool origin_allowed(const struct config *cfg, const char *origin, size_t len)
{
    if (http_origin_listed(cfg, origin, len))
        return true;
    /* An http(s) origin on an allowed host (a local web client such as the Inspector) is
       allowed too. An origin is "scheme://host[:port]" and nothing more. */
    size_t skip;
    if (len > 7 && strncasecmp(origin, "http://", 7) == 0)
        skip = 7;
    else if (len > 8 && strncasecmp(origin, "https://", 8) == 0)
        skip = 8;
    else
        return false;
    return http_host_allowed(cfg, origin + skip, len - skip);
}

/* A header value as a message quotes it: at most QUOTE_MAX characters of message (then "..."),
   each byte outside visible ASCII written as \\xNN, so that the message is plain ASCII whatever
   the client sent (a JSON string must be UTF-8, and a log line must not take a client's control
   characters), and short enough that the rest of the message is never cut off. */
static const char *quote(const char *v, size_t len, char *out)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0, i;
    for (i = 0; v != NULL && i < len; i++) {
        unsigned char c = (unsigned char)v[i];
        bool plain = c >= 0x20 && c <= 0x7e && c != '\\';
        if (o + (plain ? 1 : 4) > QUOTE_MAX)
            break;
        if (plain) {
            out[o++] = (char)c;
        } else {
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    if (v != NULL && i < len)
        memcpy(out + o, "...", 3), o += 3;
    out[o] = '\0';
    return out;
}

int http_check_host_origin(const struct config *cfg, const char *host, size_t host_len,
                           const char *origin, size_t origin_len, struct err_info *ei)
{
    char q[QUOTE_MAX + 4];
    if (host == NULL || host_len == 0 || !http_host_allowed(cfg, host, host_len))
        return err_info_set(ei, ERR_DENIED, 0, 0,
                            "Host \"%s\" is not allowed (DNS-rebinding protection); add it to "
                            "allowed_hosts in the configuration",
                            quote(host, host_len, q));
    if (origin != NULL && !origin_allowed(cfg, origin, origin_len))
        return err_info_set(ei, ERR_DENIED, 0, 0,
                            "Origin \"%s\" is not allowed (DNS-rebinding protection); add it to "
                            "allowed_origins in the configuration",
                            quote(origin, origin_len, q));
    return 0;
}

/* The media type of one element of a header list ("type/sub; q=0.5"), without parameters or
   surrounding white space. */
static void media_type(const char *p, size_t n, const char **type, size_t *tlen)
{
    const char *semi = memchr(p, ';', n);
    if (semi)
        n = (size_t)(semi - p);
    while (n > 0 && (*p == ' ' || *p == '\t'))
        p++, n--;
    while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
        n--;
    *type = p;
    *tlen = n;
}

bool http_accept_lists(const char *accept, size_t len, const char *type)
{
    size_t want = strlen(type);
    const char *p = accept, *end = accept ? accept + len : NULL;
    while (p != NULL && p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        size_t n = comma ? (size_t)(comma - p) : (size_t)(end - p);
        const char *t;
        size_t tlen;
        media_type(p, n, &t, &tlen);
        if (tlen == want && strncasecmp(t, type, want) == 0)
            return true;
        p = comma ? comma + 1 : end;
    }
    return false;
}

int http_check_post_headers(const char *accept, size_t accept_len, const char *ctype,
                            size_t ctype_len, int *status, struct err_info *ei)
{
    if (!(http_accept_lists(accept, accept_len, "application/json") &&
          http_accept_lists(accept, accept_len, "text/event-stream")) &&
        !http_accept_lists(accept, accept_len, "*/*")) {
        *status = 406;
        return err_info_set(ei, ERR_INVAL, 0, 0,
                            "the Accept header must list both application/json and "
                            "text/event-stream");
    }
    const char *t = NULL;
    size_t tlen = 0;
    if (ctype != NULL)
        media_type(ctype, ctype_len, &t, &tlen);
    if (tlen != 16 || strncasecmp(t, "application/json", 16) != 0) {
        *status = 415;
        return err_info_set(ei, ERR_INVAL, 0, 0, "the Content-Type must be application/json");
    }
    return 0;
}
