/*
 * Process-wide set-up of the upstream module. libcurl's global initialisation is not thread-safe
 * and must run once before any thread starts, so main (and each test) calls this first.
 */
#ifndef GH_UPSTREAM_UPSTREAM_H
#define GH_UPSTREAM_UPSTREAM_H

/* Call once at start-up, before threads. Returns 0, or ERR_INTERNAL when libcurl cannot be
   initialised or lacks what the HTTP transport needs (libcurl >= 7.85). Idempotent. */
int upstream_global_init(void);

/* Transports alive (created, not yet freed; closing ones included). Implementations call inc
   when created and dec when freed; shutdown waits for the count to reach 0. Any thread. */
void transport_live_inc(void);
void transport_live_dec(void);
int transport_live_count(void);

#endif
