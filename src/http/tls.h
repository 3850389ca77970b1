/*
 * TLS for the listeners (private to src/http): the one place where a listener's SSL_CTX is
 * built (protocol versions, cipher suites, options, certificate and key, the client CA), and
 * where a connection's client certificate is read and matched to a service account.
 *
 * h2o 2.2 takes an SSL_CTX per listener and calls SSL_new on it for each connection; an SSL holds
 * a reference to its SSL_CTX, so a listener's SSL_CTX can be replaced (certificate reload) while
 * connections made with the old one go on with it.
 */
#ifndef GH_HTTP_TLS_H
#define GH_HTTP_TLS_H

#include <stdbool.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "config/config.h"
#include "core/err.h"

struct st_h2o_socket_t;
struct st_h2o_iovec_t;

/* A new SSL_CTX for listener l (l->tls_cert set): TLS 1.2 (or l->tls_min_version) to 1.3,
   ECDHE+AEAD suites for 1.2, server preference, no compression, renegotiation, session tickets
   or session cache; ALPN offers alpn (h2o's list form; NULL: none, HTTP/1.1). With
   l->tls_client_ca, client certificates are requested (not required) and their verification result
   kept for tls_client_identify. NULL with ei naming the file and the cause. Any thread. */
SSL_CTX *tls_ctx_new(const struct config_listener *l, const struct st_h2o_iovec_t *alpn,
                     struct err_info *ei);

/* The SHA-256 fingerprint of ctx's certificate as "AB:CD:..." (for the log; 96 bytes). */
void tls_ctx_fingerprint(SSL_CTX *ctx, char out[96]);

enum tls_client_state {
    TLS_CLIENT_NONE = 0, /* no TLS, or no client certificate presented */
    TLS_CLIENT_MAPPED,   /* verified and mapped to a service account (account) */
    TLS_CLIENT_REFUSED,  /* presented but not verified, or mapped to nobody (cause) */
};

struct tls_client {
    enum tls_client_state state;
    char account[129];      /* MAPPED: the service account named by auth.client_certificates */
    char credential_id[40]; /* MAPPED: "cert:" + hex of the first 16 bytes of the SHA-256 */
    int64_t not_after;      /* MAPPED: the certificate's notAfter (Unix seconds) */
    char cause[480];        /* REFUSED: why, naming the certificate by subject */
};

/* Read the client certificate of the connection on sock (NULL or plain: NONE) and match it to
   cfg->auth.client_certificates. Worker thread of the connection. */
void tls_client_identify(struct st_h2o_socket_t *sock, const struct config *cfg,
                         struct tls_client *out);

#endif
