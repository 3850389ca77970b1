/*
 * One-shot outbound HTTP requests from a worker loop, for the gateway's own needs rather than an
 * MCP server's: fetching a Client ID Metadata Document, an identity provider's discovery document
 * and JWKS, exchanging an authorization code. Each request is bounded (size, time, redirects)
 * and, unless told otherwise, may only reach public addresses: the address curl is about to
 * connect to (after DNS resolution, so a name that resolves to 127.0.0.1 is caught) is checked
 * against loopback, private, link-local, unique-local, multicast and reserved ranges, and every
 * redirect is followed by hand and checked again.
 *
 * A struct fetcher belongs to one loop thread; callbacks run on that thread.
 */
#ifndef GH_UPSTREAM_FETCH_H
#define GH_UPSTREAM_FETCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <uv.h>

#include "core/err.h"

struct fetcher;
struct fetch;

struct fetch_request {
    const char *url;    /* http or https */
    const char *method; /* "GET" (default) or "POST" */
    const char *body;   /* POST body, or NULL */
    size_t body_len;
    const char *content_type;   /* of the body */
    const char *accept;         /* Accept header, or NULL */
    const char *authorization;  /* a whole Authorization header value, or NULL; never logged */
    const char *const *headers; /* more header lines ("Name: value"), NULL-terminated, or NULL */
    size_t max_size;            /* larger responses fail with ERR_LIMIT; 0 = 1 MiB */
    uint32_t timeout_ms;        /* whole exchange including redirects; 0 = 10 s */
    unsigned max_redirects;     /* followed by hand (GET only), each target re-checked */
    bool allow_private; /* allow non-public addresses (tests, internal identity providers) */
};

struct fetch_response {
    long status;
    const char *body; /* NUL-terminated; valid during the callback only */
    size_t len;
    const char *content_type; /* or NULL */
    long max_age;             /* Cache-Control max-age in seconds, -1 when absent; 0 for no-store
                                 or no-cache */
    const char *url;          /* the final URL after redirects */
    const char *www_authenticate; /* the WWW-Authenticate header (the first), or NULL */
};

/* err: 0 with r set, or ERR_DENIED (a non-public address; why names it), ERR_LIMIT (too large,
   too many redirects), ERR_TIMEOUT, ERR_UNAVAILABLE (connect/TLS/DNS failure), ERR_CANCELLED is
   never reported (a cancelled fetch calls nothing). `why` is a sentence safe to show. */
typedef void (*fetch_cb)(void *arg, int err, const struct fetch_response *r, const char *why);

int fetcher_new(uv_loop_t *loop, struct fetcher **out);
/* Trust the PEM certificates of ca_file too (besides the system's store) for this fetcher's
   https requests: an organisation's private CA, a test CA. ERR_IO / ERR_PARSE with ei naming the
   file. */
int fetcher_trust(struct fetcher *f, const char *ca_file, struct err_info *ei);
/* Cancel every fetch in flight (their callbacks are not called) and free once curl's handles
   have closed. */
void fetcher_free(struct fetcher *f);

/* Start a request. On success *handle (may be NULL) can cancel it until the callback ran.
   Returns 0, ERR_INVAL (bad URL or method; nothing started), ERR_NOMEM. */
int fetch_start(struct fetcher *f, const struct fetch_request *req, fetch_cb cb, void *arg,
                struct fetch **handle);
/* Cancel: the callback will not be called. */
void fetch_cancel(struct fetch *x);

/* true when the address is one a server on the public internet can have (not loopback,
   private, CGNAT, link-local, unique-local, multicast, documentation, benchmarking, reserved;
   IPv4-mapped and NAT64 IPv6 forms are judged by their IPv4 address). */
bool fetch_address_is_public(const struct sockaddr *sa);

/* The parameters of a WWW-Authenticate Bearer challenge that steer an OAuth client
   (resource_metadata, scope, error; RFC 6750 and RFC 9728): each copied into its buffer, ""
   when absent, when h is NULL, or when the challenge is not Bearer. */
void fetch_bearer_challenge(const char *h, char *resource_metadata, size_t rm_size, char *scope,
                            size_t scope_size, char *error, size_t error_size);

#endif
