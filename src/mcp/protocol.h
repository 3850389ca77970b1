/*
 * What both the session table (session.c) and the engine (gateway.c) need of the protocol: the
 * revisions spoken downstream, and sealing (what the gateway hands a client to give back later,
 * a session id or a 2026-07-28 server's requestState, sealed so that any replica sharing the
 * master key opens it). Its own header so that the session table does not depend on the engine
 * (gateway.h); the functions live in era.c.
 */
#ifndef GH_MCP_PROTOCOL_H
#define GH_MCP_PROTOCOL_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

/* The protocol revisions the gateway speaks downstream, newest first. */
extern const char *const mcp_supported_versions[];
bool mcp_version_supported(const char *v);

/*
 * Sealing (era.c): what the gateway hands a client to give back later (a 2026-07-28 server's
 * requestState, a resumable session id) is sealed with libsodium's secretbox under one key per
 * use. mcp_seal_init(master) derives those keys from the store's master key (crypto_kdf,
 * context "ghseal01", subkey MCP_SEAL_* + 1), so every replica sharing the store and its key file
 * opens what another sealed; mcp_seal_init(NULL), or no call, uses random keys of this process.
 * Call it once at start-up, before any worker runs. mcp_seal returns "<prefix><base64url>" (new
 * string) or NULL (ERR_NOMEM, or over 64 KiB); mcp_unseal returns the object (new reference) or
 * NULL when `sealed` is not one of ours for that key (wrong prefix, key, or altered).
 */
/* MCP_SEAL_ROUTE: the ids of server requests relayed to clients across replicas (xreplica.c). */
enum { MCP_SEAL_SESSION = 0, MCP_SEAL_STATE = 1, MCP_SEAL_ROUTE = 2, MCP_SEAL_NKEYS = 3 };
void mcp_seal_init(const unsigned char *master);
bool mcp_seal_shared(void); /* keys derived from a master key (replicas can open each other's) */
char *mcp_seal(int key, const char *prefix, json_t *doc);
json_t *mcp_unseal(int key, const char *prefix, const char *sealed, size_t len);
/*
 * requestState of a 2026-07-28 server, passed to a 2026-07-28 client sealed together with the
 * server, method and target it was issued for, the principal it was issued to (the session
 * owner key, "" without authentication) and an expiry, so that a retry can only reach the call
 * it belongs to, by the same principal. seal returns a new string (the caller frees it) or NULL;
 * open returns the server's state (new reference) when everything matches and it has not
 * expired, else NULL. mcp_era_is_sealed tells the gateway's format from anything else.
 */
#define MCP_SEALED_PREFIX "ghs1."
char *mcp_era_seal_state(const char *server, const char *method, const char *target,
                         const char *owner, json_t *state, uint64_t ttl_ms);
json_t *mcp_era_open_state(const char *sealed, const char *server, const char *method,
                           const char *target, const char *owner);
bool mcp_era_is_sealed(const char *s);

#endif
