/*
 * The HTTP front of the gateway: N worker threads, each with its own libuv loop, h2o context and
 * listening sockets (SO_REUSEPORT), serving
 *   /mcp, /mcp/<server>   the MCP Streamable HTTP transport (POST, GET stream, DELETE)
 *   /healthz, /readyz     liveness, and readiness with each upstream's state
 *   /metrics              Prometheus text
 * with Host/Origin validation (DNS-rebinding protection) and a request body limit.
 *
 * Lifecycle, all on the main thread: server_new binds (so that a taken port fails early),
 * server_start runs the workers, server_listen starts accepting, server_drain stops accepting
 * and waits for requests in flight, server_free joins and frees.
 */
#ifndef GH_HTTP_SERVER_H
#define GH_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "core/err.h"
#include "mcp/gateway.h"

struct server;

int server_new(struct config *cfg, struct server **out, struct err_info *ei);
/* Load every listener's TLS certificate and key, as server_new would, and discard them (for
   check-config). 0, or ERR_IO with ei naming the file and the cause. */
int server_check_tls(const struct config *cfg, struct err_info *ei);
/* Start the worker threads (loops running, not yet accepting). */
int server_start(struct server *srv);
struct mcp_worker **server_workers(struct server *srv, unsigned *n);
/* Start accepting on every worker. */
void server_listen(struct server *srv);
/* The port actually bound by listener i (after port 0). */
uint16_t server_port(struct server *srv, size_t i);
/* The effective OAuth issuer (auth.issuer or derived from the first listener), or NULL when
   authentication is off. */
const char *server_issuer(struct server *srv);
/* Stop accepting and wait for requests in flight (at most grace_ms). */
void server_drain(struct server *srv, uint32_t grace_ms);
/* Wait until no request is in flight, at most timeout_ms; returns how many still are. */
unsigned server_wait_idle(struct server *srv, uint32_t timeout_ms);
/* Swap in a reloaded configuration for the settings that apply live (hosts, origins, limits
   checked per request). Listeners and servers are not changed by a reload. */
void server_reconfigure(struct server *srv, struct config *cfg);
/* Load every TLS listener's certificate and key again from the files the running listeners
   name (SIGHUP): new connections get the new ones, open connections keep theirs. A listener
   whose files fail (unreadable, not PEM, a key that does not match) keeps the certificate it
   has, and the log names the file and the cause. Main thread. 0, or ERR_IO when any failed. */
int server_reload_tls(struct server *srv);
/* Stop the loops, join the threads, free everything. */
void server_free(struct server *srv);

/* The front door's header checks (check.c): pure functions of the header values, any thread. */

/* Whether a Host value ("host", "host:port", "[v6]:port"; the port digits only) names one of
   cfg->allowed_hosts (case-insensitively). */
bool http_host_allowed(const struct config *cfg, const char *host, size_t len);
/* Whether an Origin value is exactly (case-insensitively) one of cfg->allowed_origins: such an
   origin, and no other, gets CORS answers (an origin that passes the rebinding check only by
   being on an allowed host does not). */
bool http_origin_listed(const struct config *cfg, const char *origin, size_t len);
/* DNS-rebinding protection: 0 when Host is allowed and Origin (NULL: the header is absent) is
   on cfg->allowed_origins or is an http(s) origin on an allowed host. Otherwise ERR_DENIED, and
   ei->msg names the header, quotes its value and names the configuration key. */
int http_check_host_origin(const struct config *cfg, const char *host, size_t host_len,
                           const char *origin, size_t origin_len, struct err_info *ei);
/* Whether an Accept value lists this media type (parameters such as q= are ignored). */
bool http_accept_lists(const char *accept, size_t len, const char *type);
/* The headers of an MCP POST: Accept lists application/json and text/event-stream (or the
   wildcard), Content-Type is application/json (parameters allowed). 0, or ERR_INVAL with
   *status (406 or 415) and ei->msg naming the header. NULL values are absent headers. */
int http_check_post_headers(const char *accept, size_t accept_len, const char *ctype,
                            size_t ctype_len, int *status, struct err_info *ei);

#endif
