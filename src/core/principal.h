/*
 * The principal: who is calling, as one value. The HTTP layer fills it where the credential is
 * validated (src/auth) and from the connection (source address), adds the MCP session once it is
 * known, and hands it down the call path by pointer: the engine (src/mcp) reads the user id from
 * it for per-user settings, later stages (policy, limits, audit) will key on it. Nothing on the
 * path turns identity into a string and back; the one string form, principal_key, is a binding
 * key (a session's owner, sealed into its id and a requestState), compared and never parsed.
 *
 * A plain value with fixed-size fields (no pointers): copying it is how it is shared between
 * threads. Core-level because every layer that sees a call reads it and core depends on nothing.
 */
#ifndef GH_CORE_PRINCIPAL_H
#define GH_CORE_PRINCIPAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* The bounds of the identity fields; the store's columns have the same (auth checks it). */
#define PRINCIPAL_NAME_MAX 128
#define PRINCIPAL_CLIENT_ID_MAX 512
#define PRINCIPAL_SCOPE_MAX 512
#define PRINCIPAL_KEY_MAX 32     /* "u:<int64>" */
#define PRINCIPAL_SESSION_LEN 22 /* base64url of a 16-byte BLAKE2b of the session id */

enum principal_kind {
    PRINCIPAL_ANONYMOUS = 0, /* authentication is off: everybody is this one caller */
    PRINCIPAL_USER,          /* an OAuth access token of a user */
    PRINCIPAL_SERVICE,       /* an API key of a service account */
};

struct principal {
    enum principal_kind kind;
    int64_t id; /* user id or service-account id; 0 when anonymous */
    char name[PRINCIPAL_NAME_MAX + 1];
    char client_id[PRINCIPAL_CLIENT_ID_MAX + 1]; /* "" for API keys */
    char scope[PRINCIPAL_SCOPE_MAX + 1];         /* space-separated */
    char credential_id[48]; /* the token's jti or the API key's id: for revocation and audit */
    int64_t expires_at;     /* 0 for API keys */
    /* The MCP session the request belongs to, as a fingerprint (the id itself is a bearer
       handle and up to 1 KiB): "" before initialize and for a 2026-07-28 request. */
    char session[PRINCIPAL_SESSION_LEN + 1];
    /* Where the request came from (the TCP peer); addr_len 0 when unknown. */
    struct sockaddr_storage addr;
    socklen_t addr_len;
};

/* The anonymous principal (authentication off), with no address yet. */
void principal_init_anonymous(struct principal *p);
/* The user id when p is an authenticated user, else 0 (anonymous, service account): whose
   per-user settings apply. */
int64_t principal_user_id(const struct principal *p);
/* The binding key of p: "u:<id>" for a user, "s:<id>" for a service account, "" anonymous.
   Written into key (at least PRINCIPAL_KEY_MAX + 1 bytes). What a session's owner and a sealed
   requestState are bound to, and what a per_user server's upstream sessions are keyed by; the
   format is part of sealed session ids, so it never changes. */
const char *principal_key(const struct principal *p, char *key, size_t cap);
/* Record the MCP session id (id[0..len)) as its fingerprint. len 0 clears it. */
void principal_set_session(struct principal *p, const char *id, size_t len);
/* The source address as text ("192.0.2.1", "2001:db8::1"; "" when unknown) into buf. */
const char *principal_address(const struct principal *p, char *buf, size_t cap);

#endif
