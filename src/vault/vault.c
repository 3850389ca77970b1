/*
 * The credential vault (see vault.h): sealing and opening a connection's record, keeping what a
 * token exchange produced, injecting the access token into an outgoing request, building a
 * refresh. A record is JSON inside the seal; its layout is private to this file.
 *
 * Sealed record: a version byte, a 24-byte random nonce, then the XChaCha20-Poly1305 ciphertext
 * and tag. The associated data is "gatehouse vault v1", the version byte, the user id (8 bytes,
 * big-endian) and the server name: a record opens only for the (user, server) it was sealed for.
 */
#include "vault/vault.h"

#include <sodium.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/rand.h"

#define VAULT_VERSION 1
#define VAULT_KDF_CONTEXT "ghvault1" /* crypto_kdf: 8 bytes */
#define VAULT_AD_LABEL "gatehouse vault v1"
#define NONCE_LEN crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define TAG_LEN crypto_aead_xchacha20poly1305_ietf_ABYTES
#define SECRET_MAX 8192 /* a token or a client secret, at most */

static unsigned char vault_key[crypto_aead_xchacha20poly1305_ietf_KEYBYTES];
static atomic_bool key_ready;

struct vault_entry {
    int64_t user_id;
    char server[STORE_SERVER_MAX + 1];
    json_t *rec; /* the opened record; its strings are wiped on free */
    int64_t expires_at;
};

void vault_init(const unsigned char master[VAULT_MASTER_KEY_LEN])
{
    crypto_kdf_derive_from_key(vault_key, sizeof(vault_key), 1, VAULT_KDF_CONTEXT, master);
    atomic_store(&key_ready, true);
}

void vault_release(void)
{
    atomic_store(&key_ready, false);
    sodium_memzero(vault_key, sizeof(vault_key));
}

bool vault_ready(void)
{
    return atomic_load(&key_ready);
}

/* The associated data of (user, server) into ad (at least 64 + STORE_SERVER_MAX bytes). */
static size_t make_ad(unsigned char *ad, int64_t user_id, const char *server)
{
    size_t n = sizeof(VAULT_AD_LABEL) - 1, sl = strlen(server);
    memcpy(ad, VAULT_AD_LABEL, n);
    ad[n++] = VAULT_VERSION;
    for (int i = 7; i >= 0; i--)
        ad[n++] = (unsigned char)((uint64_t)user_id >> (i * 8));
    memcpy(ad + n, server, sl);
    return n + sl;
}

/* Wipe every string of a record, then free it. */
static void record_free(json_t *rec)
{
    const char *k;
    json_t *v;
    if (rec == NULL)
        return;
    json_object_foreach(rec, k, v)
    {
        if (json_is_string(v))
            sodium_memzero((void *)(uintptr_t)json_string_value(v), json_string_length(v));
    }
    json_decref(rec);
}

void vault_entry_free(struct vault_entry *e)
{
    if (e == NULL)
        return;
    record_free(e->rec);
    free(e);
}

static const char *rec_str(const json_t *rec, const char *key)
{
    const char *s = json_string_value(json_object_get(rec, key));
    return s != NULL ? s : "";
}

static int seal_record(int64_t user_id, const char *server, const json_t *rec,
                       struct store_upstream_token *row)
{
    unsigned char ad[64 + STORE_SERVER_MAX];
    char *text = json_dumps(rec, JSON_COMPACT);
    if (text == NULL)
        return ERR_NOMEM;
    size_t tl = strlen(text), n = 1 + NONCE_LEN + tl + TAG_LEN;
    int err = 0;
    if (n > STORE_SEALED_MAX) {
        err = ERR_LIMIT;
        goto out;
    }
    if ((row->sealed = malloc(n)) == NULL) {
        err = ERR_NOMEM;
        goto out;
    }
    row->sealed[0] = VAULT_VERSION;
    rand_bytes(row->sealed + 1, NONCE_LEN);
    unsigned long long cl = 0;
    size_t adl = make_ad(ad, user_id, server);
    crypto_aead_xchacha20poly1305_ietf_encrypt(row->sealed + 1 + NONCE_LEN, &cl,
                                               (const unsigned char *)text, tl, ad, adl, NULL,
                                               row->sealed + 1, vault_key);
    row->sealed_len = 1 + NONCE_LEN + (size_t)cl;
out:
    sodium_memzero(text, tl);
    free(text);
    return err;
}

static int open_record(int64_t user_id, const char *server, const unsigned char *in, size_t n,
                       json_t **out)
{
    unsigned char ad[64 + STORE_SERVER_MAX];
    if (n < 1 + NONCE_LEN + TAG_LEN || in[0] != VAULT_VERSION)
        return ERR_DENIED;
    size_t ml = n - 1 - NONCE_LEN - TAG_LEN;
    unsigned char *m = malloc(ml + 1);
    if (m == NULL)
        return ERR_NOMEM;
    unsigned long long got = 0;
    size_t adl = make_ad(ad, user_id, server);
    int err = 0;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(m, &got, NULL, in + 1 + NONCE_LEN,
                                                   n - 1 - NONCE_LEN, ad, adl, in + 1,
                                                   vault_key) != 0) {
        err = ERR_DENIED;
        goto out;
    }
    m[got] = '\0';
    json_t *rec = json_loadb((const char *)m, (size_t)got, 0, NULL);
    if (!json_is_object(rec)) {
        json_decref(rec);
        err = ERR_DENIED;
        goto out;
    }
    *out = rec;
out:
    sodium_memzero(m, ml + 1);
    free(m);
    return err;
}

/* A string member of an answer or a grant, bounded; NULL when absent (or not a string). */
static const char *bounded_str(const json_t *o, const char *key, struct err_info *ei, int *err)
{
    const json_t *v = json_object_get(o, key);
    if (v == NULL || json_is_null(v))
        return NULL;
    if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > SECRET_MAX) {
        *err = err_info_set(ei, ERR_INVAL, 0, 0,
                            "the token endpoint's %s is not a string of 1 to %d characters", key,
                            SECRET_MAX);
        return NULL;
    }
    return json_string_value(v);
}

int vault_keep(struct store *st, int64_t user_id, const char *server, const json_t *tokens,
               const json_t *grant, const struct vault_entry *prev, int64_t now,
               struct err_info *ei)
{
    static const char *const grant_keys[] = {"issuer",    "token_endpoint", "resource",
                                             "client_id", "client_secret",  "auth_method"};
    struct store_upstream_token row = {0};
    json_t *rec = NULL;
    int err = 0;
    if (!vault_ready())
        return err_info_set(ei, ERR_UNAVAILABLE, 0, 0, "the vault has no key (vault_init)");
    if (server == NULL || *server == '\0' || strlen(server) > STORE_SERVER_MAX)
        return err_info_set(ei, ERR_INVAL, 0, 0, "a server name has 1 to %d characters",
                            STORE_SERVER_MAX);
    if (!json_is_object(tokens))
        return err_info_set(ei, ERR_INVAL, 0, 0, "the token endpoint's answer is not an object");
    const char *access = bounded_str(tokens, "access_token", ei, &err);
    const char *type = bounded_str(tokens, "token_type", ei, &err);
    const char *refresh = bounded_str(tokens, "refresh_token", ei, &err);
    const char *scope = bounded_str(tokens, "scope", ei, &err);
    if (err)
        return err;
    if (access == NULL)
        return err_info_set(ei, ERR_INVAL, 0, 0, "the token endpoint's answer has no access_token");
    if (type == NULL || strcasecmp(type, "bearer") != 0)
        return err_info_set(ei, ERR_INVAL, 0, 0,
                            "the token endpoint's token_type is %s%s%s; expected Bearer",
                            type ? "\"" : "", type ? type : "absent", type ? "\"" : "");
    for (const char *p = access; *p; p++)
        if ((unsigned char)*p < 0x21 || (unsigned char)*p > 0x7e)
            return err_info_set(ei, ERR_INVAL, 0, 0,
                                "the token endpoint's access_token has a character a header "
                                "cannot carry");
    if (scope != NULL && strlen(scope) > STORE_SCOPE_MAX)
        return err_info_set(ei, ERR_INVAL, 0, 0, "the granted scope is longer than %d bytes",
                            STORE_SCOPE_MAX);
    const json_t *ein = json_object_get(tokens, "expires_in");
    int64_t expires_at = 0;
    if (ein != NULL && !json_is_null(ein)) {
        if (!json_is_integer(ein) || json_integer_value(ein) < 0 ||
            json_integer_value(ein) > 10LL * 365 * 86400)
            return err_info_set(ei, ERR_INVAL, 0, 0,
                                "the token endpoint's expires_in is not a number of seconds");
        expires_at = now + json_integer_value(ein);
    }
    if ((rec = json_object()) == NULL)
        return ERR_NOMEM;
    json_object_set_new(rec, "access_token", json_string(access));
    if (refresh != NULL)
        json_object_set_new(rec, "refresh_token", json_string(refresh));
    else if (prev != NULL && json_object_get(prev->rec, "refresh_token") != NULL)
        json_object_set_new(rec, "refresh_token",
                            json_string(rec_str(prev->rec, "refresh_token"))); /* RFC 6749 6 */
    /* a refresh answer that names no scope keeps the granted one (RFC 6749 §5.1) */
    const char *kept_scope = scope ? scope : prev ? rec_str(prev->rec, "scope") : "";
    json_object_set_new(rec, "scope", json_string(kept_scope));
    json_object_set_new(rec, "expires_at", json_integer(expires_at));
    for (size_t i = 0; i < sizeof(grant_keys) / sizeof(grant_keys[0]); i++) {
        const char *v = json_is_object(grant) ? bounded_str(grant, grant_keys[i], ei, &err) : NULL;
        if (err)
            goto out;
        if (v == NULL && prev != NULL && json_object_get(prev->rec, grant_keys[i]) != NULL)
            v = rec_str(prev->rec, grant_keys[i]);
        if (v != NULL)
            json_object_set_new(rec, grant_keys[i], json_string(v));
    }
    if ((err = seal_record(user_id, server, rec, &row)) != 0) {
        if (err == ERR_LIMIT)
            err = err_info_set(ei, ERR_INVAL, 0, 0,
                               "the tokens are too large to keep (over %d bytes sealed)",
                               STORE_SEALED_MAX);
        goto out;
    }
    row.expires_at = expires_at;
    snprintf(row.scope, sizeof(row.scope), "%s", kept_scope);
    err = store_upstream_token_put(st, user_id, server, &row);
    if (err == ERR_NOTFOUND)
        err_info_set(ei, err, 0, 0, "user %lld does not exist", (long long)user_id);
out:
    store_upstream_token_release(&row);
    record_free(rec);
    return err;
}

int vault_open(struct store *st, int64_t user_id, const char *server, struct vault_entry **out)
{
    if (!vault_ready())
        return ERR_UNAVAILABLE;
    if (server == NULL || *server == '\0' || strlen(server) > STORE_SERVER_MAX)
        return ERR_INVAL;
    struct store_upstream_token row = {0};
    int err = store_upstream_token_get(st, user_id, server, &row);
    if (err)
        return err;
    json_t *rec = NULL;
    struct vault_entry *e = NULL;
    if ((err = open_record(user_id, server, row.sealed, row.sealed_len, &rec)) != 0)
        goto out;
    if ((e = calloc(1, sizeof(*e))) == NULL) {
        record_free(rec);
        err = ERR_NOMEM;
        goto out;
    }
    e->user_id = user_id;
    snprintf(e->server, sizeof(e->server), "%s", server);
    e->rec = rec;
    e->expires_at = json_integer_value(json_object_get(rec, "expires_at"));
    *out = e;
out:
    store_upstream_token_release(&row);
    return err;
}

enum vault_state vault_entry_state(const struct vault_entry *e, int64_t now)
{
    if (e->expires_at == 0 || now + VAULT_EXPIRY_SKEW_S < e->expires_at)
        return VAULT_FRESH;
    return json_object_get(e->rec, "refresh_token") != NULL ? VAULT_STALE : VAULT_DEAD;
}

const char *vault_entry_scope(const struct vault_entry *e)
{
    return rec_str(e->rec, "scope");
}

int64_t vault_entry_expires_at(const struct vault_entry *e)
{
    return e->expires_at;
}

int vault_inject(const struct vault_entry *e, struct outbound *out)
{
    const char *tok = rec_str(e->rec, "access_token");
    size_t tl = strlen(tok);
    char *v = malloc(7 + tl + 1);
    if (v == NULL)
        return ERR_NOMEM;
    memcpy(v, "Bearer ", 7);
    memcpy(v + 7, tok, tl + 1);
    int err = outbound_add(out, OUTBOUND_HEADER, 0, "Authorization", v, 7 + tl);
    sodium_memzero(v, 7 + tl);
    free(v);
    return err;
}

/* Append s to the buffer *b (size *cap, used *n), application/x-www-form-urlencoded. */
static int form_add(char **b, size_t *n, size_t *cap, const char *name, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t need = *n + strlen(name) + 2 + 3 * strlen(s) + 1;
    if (need > *cap) {
        size_t nc = need * 2;
        char *nb = malloc(nc);
        if (nb == NULL)
            return ERR_NOMEM;
        if (*b != NULL) {
            memcpy(nb, *b, *n);
            sodium_memzero(*b, *cap);
            free(*b);
        }
        *b = nb;
        *cap = nc;
    }
    char *p = *b + *n;
    if (*n > 0)
        *p++ = '&';
    p += sprintf(p, "%s=", name);
    for (const unsigned char *q = (const unsigned char *)s; *q; q++) {
        if ((*q >= 'A' && *q <= 'Z') || (*q >= 'a' && *q <= 'z') || (*q >= '0' && *q <= '9') ||
            *q == '-' || *q == '.' || *q == '_' || *q == '~') {
            *p++ = (char)*q;
        } else {
            *p++ = '%';
            *p++ = hex[*q >> 4];
            *p++ = hex[*q & 15];
        }
    }
    *p = '\0';
    *n = (size_t)(p - *b);
    return 0;
}

int vault_refresh_request(const struct vault_entry *e, char **url, char **body,
                          struct outbound *headers)
{
    const char *rt = rec_str(e->rec, "refresh_token"), *te = rec_str(e->rec, "token_endpoint");
    const char *method = rec_str(e->rec, "auth_method"), *cid = rec_str(e->rec, "client_id");
    const char *secret = rec_str(e->rec, "client_secret");
    bool basic = strcmp(method, "client_secret_basic") == 0 && *secret;
    bool post = strcmp(method, "client_secret_post") == 0 && *secret;
    char *b = NULL, *u = NULL;
    size_t n = 0, cap = 0;
    int err = 0;
    if (*rt == '\0' || *te == '\0')
        return ERR_NOTFOUND;
    if ((err = form_add(&b, &n, &cap, "grant_type", "refresh_token")) ||
        (err = form_add(&b, &n, &cap, "refresh_token", rt)))
        goto out;
    if (*rec_str(e->rec, "resource") &&
        (err = form_add(&b, &n, &cap, "resource", rec_str(e->rec, "resource"))))
        goto out;
    if (!basic && *cid && (err = form_add(&b, &n, &cap, "client_id", cid)))
        goto out;
    if (post && (err = form_add(&b, &n, &cap, "client_secret", secret)))
        goto out;
    if ((err = outbound_add(headers, OUTBOUND_HEADER, 0, "Content-Type",
                            "application/x-www-form-urlencoded", 33)))
        goto out;
    if (basic) {
        /* RFC 6749 §2.3.1: each part form-encoded, then "id:secret" in base64 */
        char *ci = NULL, *cs = NULL;
        size_t a = 0, ac = 0, c2 = 0, cc = 0;
        if ((err = form_add(&ci, &a, &ac, "", cid)) == 0)
            err = form_add(&cs, &c2, &cc, "", secret);
        if (err == 0) {
            size_t pl = (a - 1) + 1 + (c2 - 1);
            char *pair = malloc(pl + 1),
                 *hv = malloc(6 + sodium_base64_ENCODED_LEN(pl, sodium_base64_VARIANT_ORIGINAL));
            if (pair == NULL || hv == NULL) {
                err = ERR_NOMEM;
            } else {
                snprintf(pair, pl + 1, "%s:%s", ci + 1, cs + 1);
                memcpy(hv, "Basic ", 6);
                sodium_bin2base64(hv + 6,
                                  sodium_base64_ENCODED_LEN(pl, sodium_base64_VARIANT_ORIGINAL),
                                  (const unsigned char *)pair, pl, sodium_base64_VARIANT_ORIGINAL);
                err = outbound_add(headers, OUTBOUND_HEADER, 0, "Authorization", hv, strlen(hv));
                sodium_memzero(pair, pl);
                sodium_memzero(hv, strlen(hv));
            }
            free(pair);
            free(hv);
        }
        if (ci)
            sodium_memzero(ci, ac);
        if (cs)
            sodium_memzero(cs, cc);
        free(ci);
        free(cs);
        if (err)
            goto out;
    }
    if ((u = strdup(te)) == NULL) {
        err = ERR_NOMEM;
        goto out;
    }
    *url = u;
    *body = b;
    b = NULL;
out:
    if (b != NULL) {
        sodium_memzero(b, cap);
        free(b);
    }
    return err;
}

int vault_forget(struct store *st, int64_t user_id, const char *server)
{
    return store_upstream_token_delete(st, user_id, server);
}

struct list_ctx {
    int (*cb)(const char *server, int64_t expires_at, const char *scope, void *arg);
    void *arg;
};

static int list_cb(const char *server, const struct store_upstream_token *t, void *arg)
{
    struct list_ctx *l = arg;
    return l->cb(server, t->expires_at, t->scope, l->arg);
}

int vault_list(struct store *st, int64_t user_id,
               int (*cb)(const char *server, int64_t expires_at, const char *scope, void *arg),
               void *arg)
{
    struct list_ctx l = {cb, arg};
    return store_upstream_token_list(st, user_id, list_cb, &l);
}
