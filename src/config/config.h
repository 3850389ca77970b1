/*
 * Gatehouse configuration: one YAML file parsed with libfyaml into an immutable, reference-counted
 * snapshot. A reload builds a new snapshot and swaps it in; requests in flight keep theirs.
 * Loading refuses unknown keys and bad values with "file:line:column: what is wrong, what was
 * expected" in the err_info. See docs/configuration.md for the file format.
 */
#ifndef GH_CONFIG_CONFIG_H
#define GH_CONFIG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#define CONFIG_NAME_MAX 64            /* server names match ^[a-zA-Z0-9_-]{1,64}$ */
#define CONFIG_MAX_SIZE (1024 * 1024) /* a larger configuration file is refused (ERR_LIMIT) */

enum config_prefix_mode {
    PREFIX_WHEN_NEEDED = 0, /* prefix a name only when two servers expose it */
    PREFIX_ALWAYS,          /* always "<server><sep><name>" */
    PREFIX_NEVER,           /* never; a collision is an error naming both servers */
};

enum config_transport { TRANSPORT_STDIO = 0, TRANSPORT_HTTP, TRANSPORT_OPENAPI };

/* How an openapi server presents its tools (docs/openapi.md, "Discovery modes"). */
enum config_discovery {
    DISCOVERY_STATIC = 0,   /* tools/list is the curated catalog */
    DISCOVERY_HIERARCHICAL, /* list_categories, list_operations, describe_operation, call_operation
                             */
    DISCOVERY_SEARCH,       /* search_operations, call_operation */
};
/* Which MCP era the gateway speaks to a server (stdio and http). */
enum config_protocol {
    PROTOCOL_AUTO = 0, /* probe with server/discover (2026-07-28), fall back to initialize */
    PROTOCOL_LEGACY,   /* "2025-11-25": initialize only */
    PROTOCOL_MODERN,   /* "2026-07-28": server/discover only, no fallback */
};
/* Who shares a server's upstream session (docs/configuration.md, "Upstream sessions per user"). */
enum config_sessions {
    SESSIONS_SHARED = 0, /* one upstream session (or child process) for every caller */
    SESSIONS_PER_USER,   /* one per user, created at the user's first call, reaped when idle */
};
#define CONFIG_USER_SESSIONS_MAX 10000 /* the largest user_sessions.max */
/* "auto", "2025-11-25" or "2026-07-28". */
const char *config_protocol_str(enum config_protocol p);
/* "static", "hierarchical" or "search". */
const char *config_discovery_str(enum config_discovery d);
/* The mode named s (as config_discovery_str writes it), or -1. */
int config_discovery_parse(const char *s);
struct config_server;
/* discovery: auto serves the curated tools (static) up to this many, else search. */
#define CONFIG_DISCOVERY_AUTO_MAX 40
/* The mode an openapi server is served in by default once its catalog has static_tools tools:
   the configured one, or for auto static up to CONFIG_DISCOVERY_AUTO_MAX tools, else search. */
enum config_discovery config_discovery_effective(const struct config_server *srv,
                                                 size_t static_tools);
/* The gateway's namespace in _meta, and its keys between the gateway and an openapi server's
   transport (docs/openapi.md, "Per-user views"): the modes a listed tool belongs to (an array of
   mode names), and the mode and selection (an array of tool names) a call is served in. The
   gateway strips every key of the namespace from what a client sends. */
#define CONFIG_META_NS "gatehouse/"
#define CONFIG_META_MODES CONFIG_META_NS "modes"
#define CONFIG_META_DISCOVERY CONFIG_META_NS "discovery"
#define CONFIG_META_SELECTION CONFIG_META_NS "selection"
/* "stdio", "http" or "openapi". */
const char *config_transport_str(enum config_transport t);

struct config_kv {
    char *key;
    char *value;
};

/* An API key an openapi server's requests carry where the document's apiKey security scheme
   says (query, header or cookie). Only its source is configured; the transport reads the value. */
struct config_credential {
    char *scheme; /* the scheme's name under components/securitySchemes (securityDefinitions) */
    char *file;   /* the value is this file's first line (the file readable by its owner only) */
    char *env;    /* or this environment variable's value */
};

/* How the gateway gets its client registration at an upstream's authorization server
   (docs/configuration.md, "Upstream OAuth"). */
enum config_upstream_registration {
    UPSTREAM_REG_AUTO = 0, /* pre when client_id is set, else CIMD when the AS supports it, else
                              dynamic (RFC 7591) */
    UPSTREAM_REG_PRE,      /* the configured client_id (and client_secret_file) only */
    UPSTREAM_REG_DYNAMIC,  /* RFC 7591 dynamic client registration only */
    UPSTREAM_REG_CIMD,     /* a Client ID Metadata Document the gateway serves, only */
};
/* "auto", "pre", "dynamic" or "cimd". */
const char *config_upstream_registration_str(enum config_upstream_registration r);

/* An http server's `auth: {oauth: …}`: the gateway is an OAuth client of the server, with each
   user's own tokens (kept in the vault, src/vault). Implies sessions: per_user. */
struct config_upstream_oauth {
    bool enabled;             /* an auth.oauth block is present */
    char *client_id;          /* pre-registered client, or NULL */
    char *client_secret_file; /* its secret (first line of a file only its owner reads), or NULL:
                                 a public client */
    enum config_upstream_registration registration;
    char **scopes; /* asked for when neither the server's challenge nor its metadata names any;
                      NULL = none configured */
    size_t nscopes;
    bool allow_private; /* metadata, authorization and token endpoints on loopback, private or
                           link-local addresses are allowed; default false */
};

struct config_listener {
    char *address;  /* numeric IPv4/IPv6 literal or "localhost"; default 127.0.0.1 */
    uint16_t port;  /* 0 = ephemeral (the chosen port is logged and printed) */
    char *tls_cert; /* PEM paths, both NULL or both set */
    char *tls_key;
    int tls_min_version; /* tls.min_version as the protocol number: 0x0303 (1.2, default), 0x0304 */
    char *tls_client_ca; /* PEM CA file: client certificates are requested (not required) and
                            verified against it; NULL = none requested */
    bool share; /* another process may listen on the same address and port (SO_REUSEPORT across
                   processes, for a zero-downtime restart); default false: "address in use" */
};

/* Durations are in milliseconds; 0 means "no limit" only where documented. */
struct config_timeouts {
    uint32_t connect_ms;    /* default 5000 */
    uint32_t first_byte_ms; /* default 30000 */
    uint32_t idle_ms;       /* default 60000: no byte for this long on a stream */
    uint32_t total_ms;      /* default 300000: whole exchange */
};

struct config_server {
    char *name;
    enum config_transport transport;
    /* stdio */
    char *command; /* looked up in PATH when it has no '/' */
    char **args;   /* NULL-terminated, may be empty */
    size_t nargs;
    struct config_kv *env; /* added to (or replacing in) the inherited environment */
    size_t nenv;
    char *cwd;                   /* NULL = the gateway's */
    uint32_t restart_initial_ms; /* default 500 */
    uint32_t restart_max_ms;     /* default 30000 */
    /* http */
    char *url;
    /* http and openapi */
    struct config_kv *headers; /* static headers sent on every request */
    size_t nheaders;
    /* openapi: a REST API described by an OpenAPI document, served in-process */
    char *spec;      /* the document (JSON or YAML); not read at load time */
    char *overrides; /* the editorial file, or NULL */
    char **overlays; /* OpenAPI Overlay files applied in order, or NULL */
    size_t noverlays;
    char *base_url;                        /* replaces the document's server URL, or NULL */
    struct config_credential *credentials; /* apiKey credentials the gateway fills in */
    size_t ncredentials;
    enum config_discovery discovery; /* when !discovery_auto */
    bool discovery_auto; /* default ("auto"): static up to CONFIG_DISCOVERY_AUTO_MAX curated tools,
                            else search (config_discovery_effective) */
    /* both */
    struct config_timeouts timeouts;
    uint32_t max_concurrency;      /* requests in flight to this server; default 64 */
    size_t max_queue;              /* stdio write queue bytes; default 8 MiB */
    size_t max_message;            /* largest message accepted from the server; default 16 MiB */
    int prefix;                    /* -1 = inherit the global mode, else enum config_prefix_mode */
    enum config_protocol protocol; /* stdio and http; default auto */
    bool validate_arguments;       /* check tools/call arguments against the tool's published
                                      inputSchema before sending (docs/configuration.md); default
                                      false. OpenAPI servers always check theirs. */
    enum config_sessions sessions; /* stdio and http; default shared */
    uint32_t user_idle_ms;         /* per_user: an idle user's session is closed after this;
                                      default 10 minutes (user_sessions.idle_timeout) */
    uint32_t user_max;             /* per_user: users' sessions open at once, at most; default 100
                                      (user_sessions.max) */
    struct config_upstream_oauth oauth; /* http: auth.oauth; !enabled = none */
};

/* The durable store (docs/configuration.md, "store"). */
struct config_store {
    char *sqlite;      /* what store_open opens: the SQLite database path (default
                          "gatehouse.db"), or the same string as `postgres` when that is set */
    char *postgres;    /* a postgresql:// connection URI (may hold a password: never print it),
                          or NULL; key_file is then required */
    char *key_file;    /* the master key sealing signing keys (and later the vault); default
                          "<sqlite>.key", created 0600 when missing */
    bool key_file_set; /* key_file is in the file (without `auth`, the key file is read, or
                          created, only then) */
};

/* Redis, the state replicas share fast (docs/configuration.md, "redis"). Absent: none. */
struct config_redis {
    char *url;                   /* redis://[[user]:password@]host[:port][/db] (may hold a
                                    password: never print it); NULL = no Redis */
    uint32_t revocation_poll_ms; /* how often a worker reads the store's revocation counter while
                                    revocation events arrive over Redis; default 1000 */
    char *prefix;                /* of every key and channel; default "gatehouse:" */
};

/* A client registered in the configuration (RFC 6749 §2). */
struct config_oauth_client {
    char *client_id;
    char *name;
    char **redirect_uris; /* exact match; at least one */
    size_t nredirect_uris;
    char *secret_file; /* a confidential client's secret (first line of the file), or NULL for a
                          public client (PKCE only) */
    bool introspect;   /* a resource server: may introspect every token (others: their own) */
};

/* An OpenID Connect identity provider Gatehouse delegates login to (SSO). */
struct config_idp {
    char *name;   /* shown on the login page and in /oauth/sso/<name>; name syntax as servers */
    char *issuer; /* discovery at <issuer>/.well-known/openid-configuration */
    char *client_id;
    char *client_secret_file; /* NULL = public client at the IdP (PKCE only) */
    char **scopes;            /* default openid, profile, email */
    size_t nscopes;
    char *username_claim; /* default "preferred_username" (falling back to "email", then "sub") */
    char *groups_claim;   /* NULL = no group → team sync */
    bool jit;             /* create unknown users at first login; default true */
};

/* A client certificate (verified against a listener's tls.client_ca) that authenticates as a
   service account. Exactly one of subject and uri is set. */
struct config_client_cert {
    char *subject; /* the certificate's subject as RFC 4514 text ("CN=ci,O=Example"), exact */
    char *uri;     /* or a URI subjectAltName of the certificate ("spiffe://example/ci"), exact */
    char *account; /* the service account's name in the store */
};

/* Gatehouse as the OAuth 2.1 authorization server for MCP clients (docs/auth.md). */
struct config_auth {
    bool enabled; /* an `auth:` section without `enabled: false`; off = no authentication */
    char *issuer; /* public base URL ("https://gw.example", no path, no trailing slash); NULL =
                     derived at start from the first listener's bound address and port */
    uint32_t access_token_ttl_s;  /* default 600 */
    uint32_t refresh_token_ttl_s; /* absolute lifetime of a refresh family; default 30 days */
    uint32_t code_ttl_s;          /* default 60 */
    uint32_t login_ttl_s;         /* browser login session; default 8 hours */
    char *signing_alg;            /* "ES256" (default) or "EdDSA" */
    char **scopes;                /* scopes_supported; default "mcp" */
    size_t nscopes;
    char *required_scope;      /* scope every MCP request needs; default "mcp"; must be in scopes */
    bool dynamic_registration; /* RFC 7591 at /oauth/register; default true */
    bool cimd;                 /* Client ID Metadata Documents; default true */
    bool cimd_allow_private;   /* allow loopback/private/link-local CIMD targets; default false */
    size_t cimd_max_size;      /* default 16 KiB */
    uint32_t cimd_timeout_ms;  /* default 5000 */
    uint32_t cimd_cache_s;     /* default 600 (a response's Cache-Control max-age wins if lower) */
    bool local_login;          /* the local user store's password form; default true */
    struct config_oauth_client *clients;
    size_t nclients;
    struct config_idp *providers;
    size_t nproviders;
    struct config_client_cert *client_certs; /* auth.client_certificates */
    size_t nclient_certs;
};

struct config {
    _Atomic int refcnt; /* use config_ref/config_unref */
    char *source;       /* file name the snapshot was loaded from, or "<string>" */

    struct config_listener *listeners;
    size_t nlisteners;
    unsigned workers; /* 0 = number of cores */
    bool http2;       /* default true: HTTP/2 through nghttp2 (h2.c) */

    char **allowed_hosts; /* Host header allow-list (host part, port ignored); default
                             localhost,127.0.0.1,[::1] */
    size_t nallowed_hosts;
    char **allowed_origins; /* Origin allow-list (exact "scheme://host[:port]"); requests without
                               Origin pass */
    size_t nallowed_origins;

    size_t max_body;            /* request body limit, default 4 MiB */
    uint32_t session_idle_ms;   /* downstream session idle expiry, default 30 min */
    uint32_t max_sessions;      /* default 100000 */
    uint32_t replay_events;     /* SSE replay buffer per stream, default 256 events */
    uint32_t sse_keepalive_ms;  /* SSE comment keep-alive interval, default 15000 */
    uint32_t write_timeout_ms;  /* HTTP/2: a connection whose writes stall this long is closed */
    uint32_t shutdown_grace_ms; /* SIGTERM drain deadline, default 10000 */
    uint32_t mrtr_ttl_ms; /* how long a call parked for a 2026-07-28 client's input waits for the
                             retry, default 60000 */

    char *log_level; /* "debug" | "info" | "warn" | "error", default "info" */

    enum config_prefix_mode prefix_mode; /* default PREFIX_WHEN_NEEDED */
    char *prefix_separator;              /* default "__" */

    struct config_server *servers;
    size_t nservers;

    struct config_store store;
    struct config_redis redis;
    struct config_auth auth;
    struct {
        /* PEM certificates trusted, besides the system's, by the gateway's own HTTPS requests
           (CIMD documents, identity providers); read when a worker starts. NULL = none. */
        char *ca_file;
    } outbound;
};

/* Load and validate. On success *out holds a snapshot with refcnt 1. On failure returns
   ERR_PARSE (YAML syntax), ERR_INVAL (schema or value), ERR_LIMIT (input larger than
   CONFIG_MAX_SIZE), ERR_IO or ERR_NOMEM and fills ei: msg is "file:line:column: what is wrong,
   what was expected", where = the file name (or `name`), line/column 1-based (0 when the error
   is about the whole file). Thread-safe; the snapshot owns every string and array in it. */
int config_load_file(const char *path, struct config **out, struct err_info *ei);
int config_load_string(const char *text, size_t len, const char *name, struct config **out,
                       struct err_info *ei);

/* The configuration file every command reads, by one rule: `given` (-c FILE) when not NULL, else
   $GATEHOUSE_CONFIG when set and not empty, else ./gatehouse.yaml when it exists, else NULL (the
   built-in defaults). *how is set to the rule that decided: "-c", "GATEHOUSE_CONFIG",
   "./gatehouse.yaml" or "none". */
const char *config_locate(const char *given, const char **how);

/* Relative paths in a file loaded with config_load_file (store, key file, TLS files, OpenAPI
   documents, secret files, a stdio server's cwd) are resolved against the file's folder, and a
   stdio server without cwd runs there (its relative command and arguments are relative to its
   cwd). */

/* Take another reference (atomic; any thread). Returns c. */
struct config *config_ref(struct config *c);
/* Drop a reference (atomic; any thread); the last one frees the snapshot and everything in it.
   NULL is ignored. */
void config_unref(struct config *c);

/* The server named `name`, or NULL. */
const struct config_server *config_find_server(const struct config *c, const char *name);
/* The prefix mode in force for a server (its own, or the global one). */
enum config_prefix_mode config_server_prefix(const struct config *c, const struct config_server *s);

/* The value syntaxes of the file, for other modules that accept the same notation.
   Duration: "500ms", "30s", "5m", "1h" or a bare integer of milliseconds; at most UINT32_MAX ms.
   Size: "100B", "512KiB", "4MiB", "1GiB" or a bare integer of bytes.
   Both return 0 and set *out, ERR_INVAL when the text is not of that form, ERR_LIMIT on overflow.
   `s` is NUL-terminated; no sign, no fraction, no space. */
int config_parse_duration(const char *s, uint32_t *out_ms);
int config_parse_size(const char *s, size_t *out);

#endif
