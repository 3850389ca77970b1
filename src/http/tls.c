/*
 * TLS for the listeners; see tls.h.
 *
 * Choices (docs/architecture.md, "TLS"): TLS 1.2 and 1.3 only; on 1.2 only ECDHE key exchange
 * with AEAD ciphers (AES-GCM, ChaCha20-Poly1305), so every connection has forward secrecy and
 * no CBC padding oracle is reachable; 1.3 keeps OpenSSL's default suites (all AEAD). The server's
 * order of preference wins. Compression (CRIME) and renegotiation are off. Session resumption is
 * off too, tickets and cache alike: a ticket key that never rotates would undo forward secrecy
 * for every session it sealed, rotating and sharing keys across replicas is machinery that MCP
 * clients (few, long-lived connections) would hardly use, and a full handshake costs well under
 * a millisecond. A client certificate is requested, not required, when the listener has a
 * client CA: verification never fails the handshake (the verify callback accepts and records
 * the first error), so that a bad certificate is refused at the HTTP layer with a 401 naming
 * the cause instead of an opaque TLS alert.
 */
#include "http/tls.h"

#define H2O_USE_EPOLL 0
#include <h2o.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

/* TLS 1.2 suites: ECDHE + AEAD only, ECDSA before RSA, AES-128-GCM first (fast everywhere with
   AES-NI; ChaCha20 for clients that prefer it lacks nothing in security). */
#define TLS12_CIPHERS                                                                              \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                                   \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                                   \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define CLIENT_VERIFY_DEPTH 4

/* The first verification error of a connection's client certificate, stored as error + 1 in
   the SSL's ex_data (0: none). */
static int verify_idx = -1;
static pthread_once_t verify_once = PTHREAD_ONCE_INIT;

static void verify_idx_init(void)
{
    verify_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

static int verify_cb(int ok, X509_STORE_CTX *x)
{
    if (!ok) {
        SSL *ssl = X509_STORE_CTX_get_ex_data(x, SSL_get_ex_data_X509_STORE_CTX_idx());
        if (ssl != NULL && SSL_get_ex_data(ssl, verify_idx) == NULL)
            SSL_set_ex_data(ssl, verify_idx, (void *)(intptr_t)(X509_STORE_CTX_get_error(x) + 1));
    }
    return 1; /* decided at the HTTP layer, where the refusal can name its cause */
}

/* OpenSSL's reason for the last error, or fallback; the queue is emptied. */
static const char *ssl_reason(const char *fallback)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    ERR_clear_error();
    return r ? r : fallback;
}

/* Whether the last error says a key is not the certificate's (loading checks it already). */
static bool key_mismatch(void)
{
    unsigned long e = ERR_peek_last_error();
    if (ERR_GET_LIB(e) != ERR_LIB_X509 || (ERR_GET_REASON(e) != X509_R_KEY_VALUES_MISMATCH &&
                                           ERR_GET_REASON(e) != X509_R_KEY_TYPE_MISMATCH))
        return false;
    ERR_clear_error();
    return true;
}

SSL_CTX *tls_ctx_new(const struct config_listener *l, const h2o_iovec_t *alpn, struct err_info *ei)
{
    pthread_once(&verify_once, verify_idx_init);
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        err_info_set(ei, ERR_NOMEM, 0, 0, "TLS: cannot create a context");
        return NULL;
    }
    const char *files[3] = {l->tls_cert, l->tls_key, l->tls_client_ca};
    static const char *const kinds[3] = {"certificate", "key", "client CA"};
    for (int i = 0; i < 3; i++) {
        if (files[i] != NULL && access(files[i], R_OK) != 0) {
            err_info_set(ei, ERR_IO, 0, 0, "TLS %s %s: %s", kinds[i], files[i], strerror(errno));
            goto fail;
        }
    }
    int min = l->tls_min_version == TLS1_3_VERSION ? TLS1_3_VERSION : TLS1_2_VERSION;
    if (SSL_CTX_set_min_proto_version(ctx, min) != 1 ||
        SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1 ||
        SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS) != 1) {
        err_info_set(ei, ERR_INTERNAL, 0, 0, "TLS: the protocol versions or suites were refused");
        goto fail;
    }
    SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_TICKET);
    SSL_CTX_set_num_tickets(ctx, 0);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    if (SSL_CTX_use_certificate_chain_file(ctx, l->tls_cert) != 1) {
        err_info_set(ei, ERR_IO, 0, 0,
                     "TLS certificate %s could not be loaded (PEM chain expected): %s", l->tls_cert,
                     ssl_reason("no certificate"));
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, l->tls_key, SSL_FILETYPE_PEM) != 1 && key_mismatch()) {
        err_info_set(ei, ERR_IO, 0, 0, "TLS key %s does not match the certificate %s", l->tls_key,
                     l->tls_cert);
        goto fail;
    }
    if (SSL_CTX_get0_privatekey(ctx) == NULL) {
        err_info_set(ei, ERR_IO, 0, 0,
                     "TLS key %s could not be loaded (PEM private key expected): %s", l->tls_key,
                     ssl_reason("no key"));
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        ERR_clear_error();
        err_info_set(ei, ERR_IO, 0, 0, "TLS key %s does not match the certificate %s", l->tls_key,
                     l->tls_cert);
        goto fail;
    }
    if (l->tls_client_ca != NULL) {
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(l->tls_client_ca);
        if (names == NULL || SSL_CTX_load_verify_locations(ctx, l->tls_client_ca, NULL) != 1) {
            sk_X509_NAME_pop_free(names, X509_NAME_free);
            err_info_set(ei, ERR_IO, 0, 0,
                         "TLS client CA %s could not be loaded (PEM certificates expected): %s",
                         l->tls_client_ca, ssl_reason("no certificate"));
            goto fail;
        }
        SSL_CTX_set_client_CA_list(ctx, names);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, verify_cb);
        SSL_CTX_set_verify_depth(ctx, CLIENT_VERIFY_DEPTH);
    }
    if (alpn != NULL)
        h2o_ssl_register_alpn_protocols(ctx, alpn);
    return ctx;
fail:
    ERR_clear_error();
    SSL_CTX_free(ctx);
    return NULL;
}

static void fingerprint(X509 *cert, char *out, size_t cap, bool colons, size_t bytes)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    out[0] = '\0';
    if (cert == NULL || X509_digest(cert, EVP_sha256(), md, &n) != 1)
        return;
    size_t o = 0;
    for (unsigned i = 0; i < n && i < bytes && o + 4 <= cap; i++)
        o += (size_t)snprintf(out + o, cap - o, colons ? (i ? ":%02X" : "%02X") : "%02x", md[i]);
}

void tls_ctx_fingerprint(SSL_CTX *ctx, char out[96])
{
    fingerprint(SSL_CTX_get0_certificate(ctx), out, 96, true, 32);
}

/*
 * libh2o 2.2 keeps a connection's SSL in a private struct whose first members are the SSL_CTX
 * and the SSL (lib/common/socket.c, unchanged through the 2.2 line); h2o has no accessor for
 * it. The SSL found there is checked against the socket h2o set as its BIO's data before it is
 * used, so a different layout fails closed (the certificate is refused, never ignored).
 */
struct h2o_ssl_head {
    SSL_CTX *ssl_ctx;
    SSL *ossl;
};

static SSL *socket_ssl(h2o_socket_t *sock)
{
    if (sock == NULL || sock->ssl == NULL)
        return NULL;
    SSL *ssl = ((struct h2o_ssl_head *)(void *)sock->ssl)->ossl;
    BIO *b = ssl ? SSL_get_rbio(ssl) : NULL;
    return b != NULL && BIO_get_data(b) == sock ? ssl : NULL;
}

static bool subject_text(X509 *cert, char *out, size_t cap)
{
    out[0] = '\0';
    BIO *b = BIO_new(BIO_s_mem());
    if (b == NULL)
        return false;
    bool ok = X509_NAME_print_ex(b, X509_get_subject_name(cert), 0,
                                 XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) >= 0;
    char *p;
    long n = BIO_get_mem_data(b, &p);
    if (ok && n >= 0 && (size_t)n < cap) {
        memcpy(out, p, (size_t)n);
        out[n] = '\0';
    } else {
        ok = false;
    }
    BIO_free(b);
    return ok;
}

static bool has_uri(X509 *cert, const char *uri)
{
    GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    bool found = false;
    size_t n = strlen(uri);
    for (int i = 0; names != NULL && i < sk_GENERAL_NAME_num(names) && !found; i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
        if (g->type != GEN_URI)
            continue;
        const ASN1_STRING *s = g->d.uniformResourceIdentifier;
        found = (size_t)ASN1_STRING_length(s) == n && memcmp(ASN1_STRING_get0_data(s), uri, n) == 0;
    }
    GENERAL_NAMES_free(names);
    return found;
}

/* A subject for messages: printable ASCII only (quotes and backslashes replaced), bounded. */
static void shown(const char *in, char *out, size_t cap)
{
    size_t o = 0;
    for (; *in && o + 4 < cap; in++)
        out[o++] =
            ((unsigned char)*in < 0x20 || (unsigned char)*in > 0x7e || *in == '"' || *in == '\\')
                ? '?'
                : *in;
    if (*in)
        memcpy(out + o, "...", 3), o += 3;
    out[o] = '\0';
}

void tls_client_identify(h2o_socket_t *sock, const struct config *cfg, struct tls_client *out)
{
    memset(out, 0, sizeof(*out));
    if (sock == NULL || sock->ssl == NULL)
        return;
    SSL *ssl = socket_ssl(sock);
    if (ssl == NULL) {
        out->state = TLS_CLIENT_REFUSED;
        snprintf(out->cause, sizeof(out->cause),
                 "the connection's client certificate cannot be read (TLS layer not recognised)");
        return;
    }
    X509 *cert = SSL_get0_peer_certificate(ssl);
    if (cert == NULL)
        return;
    char subject[1024], subj[160];
    if (!subject_text(cert, subject, sizeof(subject)))
        snprintf(subject, sizeof(subject), "(unreadable)");
    shown(subject, subj, sizeof(subj));
    out->state = TLS_CLIENT_REFUSED;
    intptr_t bad = (intptr_t)SSL_get_ex_data(ssl, verify_idx);
    if (bad != 0 || SSL_get_verify_result(ssl) != X509_V_OK) {
        long e = bad != 0 ? (long)(bad - 1) : SSL_get_verify_result(ssl);
        snprintf(out->cause, sizeof(out->cause), "the client certificate \"%s\" is not valid: %s%s",
                 subj, X509_verify_cert_error_string(e),
                 e == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY ||
                         e == X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT ||
                         e == X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN ||
                         e == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT
                     ? " (not issued by a CA in the listener's tls.client_ca)"
                     : "");
        return;
    }
    /* Verified at the handshake; a connection can outlive its certificate. */
    int64_t not_after = 0;
    struct tm tm;
    const ASN1_TIME *na = X509_get0_notAfter(cert);
    if (na != NULL && ASN1_TIME_to_tm(na, &tm) == 1)
        not_after = (int64_t)timegm(&tm);
    if (not_after != 0 && not_after < (int64_t)time(NULL)) {
        snprintf(out->cause, sizeof(out->cause),
                 "the client certificate \"%s\" is not valid: certificate has expired (during "
                 "this connection)",
                 subj);
        return;
    }
    const struct config_client_cert *m = NULL;
    for (size_t i = 0; i < cfg->auth.nclient_certs && m == NULL; i++) {
        const struct config_client_cert *c = &cfg->auth.client_certs[i];
        if ((c->subject && strcmp(c->subject, subject) == 0) || (c->uri && has_uri(cert, c->uri)))
            m = c;
    }
    if (m == NULL) {
        snprintf(out->cause, sizeof(out->cause),
                 "the client certificate \"%s\" is valid but maps to no service account "
                 "(auth.client_certificates lists neither its subject nor a URI it names)",
                 subj);
        return;
    }
    out->state = TLS_CLIENT_MAPPED;
    snprintf(out->account, sizeof(out->account), "%s", m->account);
    char fp[33];
    fingerprint(cert, fp, sizeof(fp), false, 16);
    snprintf(out->credential_id, sizeof(out->credential_id), "cert:%s", fp);
    out->not_after = not_after;
}
